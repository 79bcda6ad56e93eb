//! Unmodified C programs under `LD_PRELOAD=libsoftiommu_preload.so`, and under
//! `softiommu run`.

mod common;

use common::*;
use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

fn program() -> &'static PathBuf {
    static EXE: OnceLock<PathBuf> = OnceLock::new();
    EXE.get_or_init(|| compile(artifacts(false), "tests/c/preload.c", "-O1"))
}

fn case(name: &str) {
    let out = run_preloaded(artifacts(false), program(), &[name], &[]);
    assert_ok(name, &out);
}

#[test]
fn map_check_unmap_close() {
    case("basic");
}

#[test]
fn bad_pointers_are_efault() {
    case("efault");
}

#[test]
fn unknown_ioctls_are_enotty() {
    case("enotty");
}

#[test]
fn dup_shares_the_context() {
    case("dup");
}

#[test]
fn last_close_frees_everything() {
    case("close_frees");
}

#[test]
fn forked_child_has_its_own_copy() {
    case("fork");
}

#[test]
fn other_files_are_untouched() {
    case("untouched");
}

#[test]
fn read_write_mmap_poll() {
    case("file_ops");
}

#[test]
fn fault_queue_fd_polls_reads_and_writes() {
    case("fault_queue");
}

#[test]
fn unmapped_pinned_pages_do_not_crash() {
    case("unmapped_pinned");
}

#[test]
fn the_programs_sigsegv_handling_is_kept() {
    case("signals");
}

#[test]
fn threads_fault_concurrently() {
    case("threads");
}

#[test]
fn without_the_interposer_the_program_sees_the_host() {
    // The same program without LD_PRELOAD: the host has no iommufd we could use
    // (or one we must not), so `basic` cannot pass — proof that the cases above
    // test the interposer and not the machine.
    let out = Command::new(program()).arg("basic").output().unwrap();
    assert!(!out.status.success());
}

#[test]
fn trace_to_stderr() {
    let a = artifacts(false);
    let out = run_preloaded(a, program(), &["efault"], &[("SOFTIOMMU_TRACE", "stderr")]);
    assert_ok("efault traced", &out);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("open(\"/dev/iommu\", O_RDWR|O_CLOEXEC) = 3\n"),
        "{err}"
    );
    assert!(
        err.contains("ioctl(3, IOMMU_IOAS_ALLOC, 0x8) = -1 EFAULT\n"),
        "{err}"
    );
    assert!(
        err.contains("ioctl(3, IOMMU_IOAS_ALLOC, { size: 0xc, flags: 0, out_ioas_id: 0 }) = 0 => { size: 0xc, flags: 0, out_ioas_id: 1 }\n"),
        "{err}"
    );
    assert!(err.contains("close(3) = 0\n"), "{err}");
    // Opens of other paths are not traced, bad path pointers included.
    assert!(
        !err.contains("open((null)") && err.lines().all(|l| !l.starts_with("open(\"/nonexistent"))
    );
}

#[test]
fn softiommu_run_traces_and_keeps_the_exit_status() {
    let a = artifacts(false);
    let out = Command::new(&a.cli)
        .args(["run", "--trace", "--"])
        .arg(program())
        .arg("basic")
        .env_remove("SOFTIOMMU_TRACE")
        .output()
        .unwrap();
    assert_ok("softiommu run --trace", &out);
    let err = String::from_utf8_lossy(&out.stderr);
    for want in [
        "open(\"/dev/iommu\", O_RDWR|O_CLOEXEC) = 3",
        "ioctl(3, IOMMU_TEST_CMD/MOCK_DOMAIN, {",
        "ioctl(3, IOMMU_IOAS_MAP, {",
        "ioctl(3, IOMMU_TEST_CMD/MD_CHECK_MAP, {",
        "ioctl(3, IOMMU_IOAS_UNMAP, {",
        "= -1 ENOENT",
        "= -1 EBUSY",
    ] {
        assert!(err.contains(want), "no `{want}` in:\n{err}");
    }

    // --trace-file, and the program's exit status comes through.
    let log = a.scratch.join("trace.log");
    let _ = std::fs::remove_file(&log);
    let out = Command::new(&a.cli)
        .arg("run")
        .arg("--trace-file")
        .arg(&log)
        .arg(program())
        .arg("dup")
        .output()
        .unwrap();
    assert_ok("softiommu run --trace-file", &out);
    let trace = std::fs::read_to_string(&log).unwrap();
    assert!(trace.contains("dup(3) = 4\n"), "{trace}");
    assert!(
        trace.contains("fcntl(3, F_DUPFD_CLOEXEC, 100) = 100\n"),
        "{trace}"
    );
    assert!(trace.contains("dup2(3, 200) = 200\n"), "{trace}");
    // dup2 of a pipe onto one of ours is traced; the pipe's FIONREAD is not.
    assert!(trace.contains("dup2(3, 4) = 4\n"), "{trace}");
    assert!(
        !trace.contains("FIONREAD") && !trace.contains("0x541b"),
        "{trace}"
    );
    let out = Command::new(&a.cli)
        .args(["run", "--", "sh", "-c", "echo \"$LD_PRELOAD\"; exit 7"])
        .env("LD_PRELOAD", "/nonexistent-other.so")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(7));
    let preload = String::from_utf8_lossy(&out.stdout);
    assert!(
        preload
            .trim_end()
            .ends_with("libsoftiommu_preload.so:/nonexistent-other.so"),
        "{preload}"
    );
}

#[test]
fn softiommu_run_reports_a_missing_interposer_or_program() {
    let a = artifacts(false);
    let out = Command::new(&a.cli)
        .args(["run", "--preload", "/nonexistent/lib.so", "true"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no interposer at /nonexistent/lib.so"));
    let out = Command::new(&a.cli)
        .args(["run", "/nonexistent/program"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(127));
}
