//! The C tests of the uAPI boundary.
//!
//! This crate has no code of its own. Its integration tests (`tests/c_programs.rs`)
//! compile every C program under `c/` with the system `cc` against the headers that
//! `softiommu headers` generates, run each one under the interposer with
//! `softiommu run -- PROGRAM`, and expect exit status 0. Each C program checks its
//! own expectations and prints every check that failed.
//!
//! Run them with `cargo test -p softiommu-ctests`.
