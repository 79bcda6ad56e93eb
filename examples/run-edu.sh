#!/bin/sh
# Builds softiommu, compiles the C edu driver (examples/c/edu_driver.c) against
# the uAPI headers softiommu writes, and runs it under the interposer with a
# trace of every call on our files: a user-space driver binding a VFIO device
# to iommufd, mapping memory and moving data by DMA through the emulated
# IOMMU, then a DMA the IOMMU refuses. Then the same driver in Rust
# (examples/rust-edu, iommufd through the iommufd-ioctls crate).
set -e
cd "$(dirname "$0")/.."
cargo build --quiet --workspace
./target/debug/softiommu headers target/include >/dev/null
cc -Wall -I target/include examples/c/edu_driver.c -o target/edu_driver
./target/debug/softiommu run --trace -- target/edu_driver
./target/debug/softiommu run -- target/debug/edu-driver-rs
