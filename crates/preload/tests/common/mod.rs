//! Shared by the tests and the benchmark: builds the interposer and the CLI,
//! writes the uAPI headers, compiles C programs with the system `cc`.
//!
//! `cargo test` does not build a package's cdylib for its integration tests, so
//! the first use runs `cargo build -p softiommu-preload -p softiommu-cli` into the
//! same target directory (profile `test`, or `bench` for the benchmark): a no-op when they are fresh, and never a stale
//! interposer.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

/// The built interposer, CLI and headers.
pub struct Artifacts {
    /// `libsoftiommu_preload.so`.
    pub preload: PathBuf,
    /// The `softiommu` executable.
    pub cli: PathBuf,
    /// `-I` directory of the generated headers.
    pub include: PathBuf,
    /// Where compiled test programs go.
    pub scratch: PathBuf,
}

/// Builds everything once per test binary; `release` picks the optimised profile.
pub fn artifacts(release: bool) -> &'static Artifacts {
    static DEBUG: OnceLock<Artifacts> = OnceLock::new();
    static RELEASE: OnceLock<Artifacts> = OnceLock::new();
    let cell = if release { &RELEASE } else { &DEBUG };
    cell.get_or_init(|| build(release))
}

fn build(release: bool) -> Artifacts {
    let tmp = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    let target = tmp
        .parent()
        .expect("CARGO_TARGET_TMPDIR is <target>/tmp")
        .to_path_buf();
    let mut cmd = Command::new(env!("CARGO"));
    cmd.args([
        "build",
        "--quiet",
        "-p",
        "softiommu-preload",
        "-p",
        "softiommu-cli",
    ])
    .arg("--target-dir")
    .arg(&target)
    .current_dir(env!("CARGO_MANIFEST_DIR"));
    // The profiles `cargo test` and `cargo bench` build with: the dependencies
    // they compiled are reused, only the two packages are linked.
    cmd.args(["--profile", if release { "bench" } else { "test" }]);
    let out = cmd.output().expect("run cargo build");
    assert!(
        out.status.success(),
        "cargo build of the interposer failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let dir = target.join(if release { "release" } else { "debug" });
    let scratch = tmp.join(format!("preload-{}", std::process::id()));
    let include = scratch.join("include");
    std::fs::create_dir_all(&include).unwrap();
    softiommu_uapi::cheader::write(&include).expect("write the uAPI headers");
    let a = Artifacts {
        preload: dir.join("libsoftiommu_preload.so"),
        cli: dir.join("softiommu"),
        include,
        scratch,
    };
    assert!(a.preload.exists(), "{} missing", a.preload.display());
    a
}

/// Compiles `src` (relative to the package) with optimisation `opt` into an
/// executable; returns its path.
pub fn compile(a: &Artifacts, src: &str, opt: &str) -> PathBuf {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join(src);
    let stem = src.file_stem().expect("a C file").to_string_lossy();
    let exe = a.scratch.join(format!("{stem}{opt}"));
    let out = Command::new(std::env::var("CC").unwrap_or_else(|_| "cc".into()))
        .args([
            "-std=gnu11",
            "-Wall",
            "-Wextra",
            "-Werror",
            "-g",
            "-pthread",
            opt,
        ])
        .arg("-I")
        .arg(&a.include)
        .arg(&src)
        .arg("-o")
        .arg(&exe)
        .output()
        .expect("run the C compiler");
    assert!(
        out.status.success(),
        "cc {} failed:\n{}",
        src.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    exe
}

/// Runs `exe args` with the interposer preloaded (and `env` set).
pub fn run_preloaded(a: &Artifacts, exe: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(exe);
    cmd.args(args)
        .env("LD_PRELOAD", &a.preload)
        .env_remove("SOFTIOMMU_TRACE");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("run the test program")
}

/// Panics with the program's output unless it exited 0.
pub fn assert_ok(what: &str, out: &Output) {
    assert!(
        out.status.success(),
        "{what}: {}\n--- stdout\n{}--- stderr\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
