//! Compiles each C program in `c/` against the generated uAPI headers and runs it
//! under the interposer (`softiommu run -- PROGRAM`), expecting exit status 0.
//!
//! The programs check their own expectations and print every failed check, so a
//! failure here shows the program's output. The first test to run builds the
//! workspace's binaries (`cargo build --workspace`, a no-op when they are up to
//! date) and writes the headers with `softiommu headers`.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// How long one C program may run under the interposer.
const TIMEOUT: Duration = Duration::from_secs(120);

/// What every test needs: the `softiommu` binary, the headers and a place for
/// the compiled programs.
struct Setup {
    softiommu: PathBuf,
    include: PathBuf,
    bin: PathBuf,
}

fn setup() -> &'static Setup {
    static SETUP: OnceLock<Result<Setup, String>> = OnceLock::new();
    match SETUP.get_or_init(prepare) {
        Ok(s) => s,
        Err(e) => panic!("{e}"),
    }
}

/// The profile directory (`target/debug`) this test binary was built into.
fn profile_dir() -> Result<PathBuf, String> {
    let exe = std::env::current_exe().map_err(|e| format!("current_exe: {e}"))?;
    // target/<profile>/deps/c_programs-<hash>
    exe.parent()
        .and_then(Path::parent)
        .map(Path::to_path_buf)
        .ok_or_else(|| format!("unexpected test binary path {}", exe.display()))
}

fn prepare() -> Result<Setup, String> {
    let profile = profile_dir()?;
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_string());
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let mut build = Command::new(cargo);
    build
        .args(["build", "--workspace", "--quiet"])
        .current_dir(&workspace);
    if profile.file_name().is_some_and(|n| n == "release") {
        build.arg("--release");
    }
    let status = build
        .status()
        .map_err(|e| format!("running cargo build: {e}"))?;
    if !status.success() {
        return Err(format!("cargo build --workspace failed: {status}"));
    }

    let softiommu = profile.join("softiommu");
    let out = profile.join("ctests");
    let include = out.join("include");
    let bin = out.join("bin");
    std::fs::create_dir_all(&bin).map_err(|e| format!("{}: {e}", bin.display()))?;
    let headers = Command::new(&softiommu)
        .arg("headers")
        .arg(&include)
        .output()
        .map_err(|e| format!("running {}: {e}", softiommu.display()))?;
    if !headers.status.success() {
        return Err(format!(
            "`softiommu headers {}` failed ({}):\n{}{}",
            include.display(),
            headers.status,
            String::from_utf8_lossy(&headers.stdout),
            String::from_utf8_lossy(&headers.stderr)
        ));
    }
    Ok(Setup {
        softiommu,
        include,
        bin,
    })
}

/// Runs `cmd` to completion, killing it after [`TIMEOUT`].
fn run_with_timeout(mut cmd: Command) -> Result<Output, String> {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("spawn: {e}"))?;
    // Drain both pipes in the background so that a chatty program cannot block.
    let mut stdout = child.stdout.take().expect("stdout is piped");
    let mut stderr = child.stderr.take().expect("stderr is piped");
    let out = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = stdout.read_to_end(&mut v);
        v
    });
    let err = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = stderr.read_to_end(&mut v);
        v
    });
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().map_err(|e| format!("wait: {e}"))? {
            break status;
        }
        if start.elapsed() > TIMEOUT {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!("timed out after {TIMEOUT:?}"));
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Ok(Output {
        status,
        stdout: out.join().unwrap_or_default(),
        stderr: err.join().unwrap_or_default(),
    })
}

/// Compiles `c/<name>.c` and runs it under the interposer; panics with its
/// output unless it exits with status 0.
fn run_c(name: &str) {
    run_c_with(name, name, None, &[]);
}

/// [`run_c`] with `softiommu run --machine c/<machine>` when given, the trace
/// in `<bin>/<tag>.trace` (its path in the program's `KVM_TRACE`), and `env`
/// set for the program. `tag` names the compiled program and its trace.
fn run_c_with(name: &str, tag: &str, machine: Option<&str>, env: &[(&str, &str)]) {
    let s = setup();
    let src_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("c");
    let src = src_dir.join(format!("{name}.c"));
    let exe = s.bin.join(tag);
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".to_string());
    let compiled = Command::new(&cc)
        .args(["-std=gnu11", "-O1", "-g", "-Wall", "-pthread"])
        .arg("-I")
        .arg(&s.include)
        .arg("-I")
        .arg(&src_dir)
        .arg(&src)
        .arg("-o")
        .arg(&exe)
        .output()
        .unwrap_or_else(|e| panic!("running {cc}: {e}"));
    assert!(
        compiled.status.success(),
        "compiling {} failed:\n{}",
        src.display(),
        String::from_utf8_lossy(&compiled.stderr)
    );

    let mut cmd = Command::new(&s.softiommu);
    cmd.arg("run");
    if let Some(m) = machine {
        cmd.arg("--machine").arg(src_dir.join(m));
    }
    if tag != name || machine.is_some() || !env.is_empty() {
        let trace = s.bin.join(format!("{tag}.trace"));
        let _ = std::fs::remove_file(&trace);
        cmd.arg("--trace-file").arg(&trace).env("KVM_TRACE", &trace);
    }
    cmd.envs(env.iter().copied());
    cmd.arg("--").arg(&exe);
    let out = run_with_timeout(cmd).unwrap_or_else(|e| panic!("{name}: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "{name} under `softiommu run` failed ({}):\n--- stdout\n{stdout}--- stderr\n{stderr}",
        out.status
    );
    assert!(
        stdout.contains("all checks passed"),
        "{name} exited 0 without finishing:\n--- stdout\n{stdout}--- stderr\n{stderr}"
    );
}

#[test]
fn ioas() {
    run_c("ioas");
}

#[test]
fn map_file() {
    run_c("map_file");
}

#[test]
fn option() {
    run_c("option");
}

#[test]
fn change_process() {
    run_c("change_process");
}

#[test]
fn test_ops() {
    run_c("test_ops");
}

#[test]
fn pasid() {
    run_c("pasid");
}

#[test]
fn vfio_cdev() {
    run_c("vfio_cdev");
}

#[test]
fn errnos() {
    run_c("errnos");
}

#[test]
fn cmd_length() {
    run_c("cmd_length");
}

#[test]
fn efault() {
    run_c("efault");
}

#[test]
fn threads() {
    run_c("threads");
}

#[test]
fn dup() {
    run_c("dup");
}

#[test]
fn fork() {
    run_c("fork");
}

#[test]
fn vfio_group() {
    run_c("vfio_group");
}

#[test]
fn close_frees() {
    run_c("close_frees");
}

/// The pinning guarantee: pages the program munmaps (or maps over with
/// `MAP_FIXED`) while an IOAS maps them stay reachable with their contents: the
/// interposer moves pinned pages aside before the program's unmap.
#[test]
fn munmap_pinned() {
    run_c("munmap_pinned");
}

#[test]
fn sysfs() {
    run_c("sysfs");
}

/// The kvm-vfio stand-in on the default machine, whose VT-d unit has snoop
/// control: the VM stays coherent.
#[test]
fn kvm() {
    run_c_with("kvm", "kvm_coherent", None, &[]);
}

/// The same on a machine whose IOMMU cannot force snooping: each add of the
/// device registers non-coherent DMA, each delete or release unregisters it.
#[test]
fn kvm_noncoherent() {
    run_c_with(
        "kvm",
        "kvm_noncoherent",
        Some("kvm_nosnoop.toml"),
        &[("KVM_NONCOHERENT", "1")],
    );
}
