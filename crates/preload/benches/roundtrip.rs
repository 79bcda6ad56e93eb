//! Round trip of an ioctl through the interposer, against a real system call
//! measured in the same run.
//!
//! `cargo bench -p softiommu-preload` builds the interposer (release), compiles
//! `benches/c/roundtrip.c` with `cc -O2`, and runs it twice: bare (the real
//! `FIONREAD` on a pipe, and one `process_vm_readv` — what each copy from the
//! program's memory costs the interposer when it cannot use its fault-catching
//! `memcpy`, see `src/safecopy.c`) and under `LD_PRELOAD`
//! (`IOMMU_OPTION` get of RLIMIT_MODE, an `IOAS_ALLOC` + `IOMMU_DESTROY` pair,
//! and `FIONREAD` again, through the interposer's fast path), and an
//! open+close of `/dev/null` both ways (each open reads its path safely). Each figure is the
//! best of 7 rounds. `SOFTIOMMU_BENCH_ITERS` sets the calls per round.

#[path = "../tests/common/mod.rs"]
mod common;

use std::collections::BTreeMap;
use std::process::Command;

fn parse(out: &[u8]) -> BTreeMap<String, f64> {
    String::from_utf8_lossy(out)
        .lines()
        .filter_map(|l| {
            let (k, v) = l.split_once(' ')?;
            Some((k.to_string(), v.parse().ok()?))
        })
        .collect()
}

fn main() {
    // `cargo bench` passes --bench (and a filter); `cargo test --benches` runs
    // this too, with fewer iterations, as a smoke test.
    let quick = !std::env::args().any(|a| a == "--bench");
    let iters: u64 = std::env::var("SOFTIOMMU_BENCH_ITERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(if quick { 2_000 } else { 200_000 });
    let a = common::artifacts(!quick);
    let exe = common::compile(a, "benches/c/roundtrip.c", "-O2");

    let bare = Command::new(&exe)
        .arg(iters.to_string())
        .arg("syscalls-only")
        .env_remove("LD_PRELOAD")
        .output()
        .expect("run roundtrip");
    common::assert_ok("roundtrip (bare)", &bare);
    let pre = common::run_preloaded(a, &exe, &[&iters.to_string()], &[]);
    common::assert_ok("roundtrip (preloaded)", &pre);
    let bare = parse(&bare.stdout);
    let pre = parse(&pre.stdout);

    let floor = bare["fionread"];
    println!(
        "roundtrip: ns per call, best of 7 rounds of {iters}{}",
        if quick {
            " (quick run; use cargo bench)"
        } else {
            ""
        }
    );
    let rows = [
        ("FIONREAD on a pipe, bare (the floor)", floor),
        (
            "process_vm_readv of 4 bytes, bare",
            bare["process_vm_readv"],
        ),
        (
            "FIONREAD on a pipe, through the interposer",
            pre["fionread_with_ours"],
        ),
        ("IOMMU_OPTION get RLIMIT_MODE", pre["option_get"]),
        ("IOAS_ALLOC + IOMMU_DESTROY, per pair", pre["alloc_destroy"]),
        (
            "IOAS_ALLOC + IOMMU_DESTROY, per ioctl",
            pre["alloc_destroy"] / 2.0,
        ),
        ("open+close /dev/null, bare", bare["open_close"]),
        (
            "open+close /dev/null, through the interposer",
            pre["open_close_with_ours"],
        ),
    ];
    for (name, ns) in rows {
        println!("  {name:<46} {ns:>9.1} ns  {:>6.2}x the floor", ns / floor);
    }
    let goal = pre["option_get"] < floor;
    println!(
        "goal (an iommufd ioctl cheaper than the real syscall): {}",
        if goal { "met" } else { "not met" }
    );
}
