//! Benchmark of `IOMMU_IOAS_MAP` / `IOMMU_IOAS_UNMAP` through the typed API.
//!
//! Every number is printed next to a floor measured in the same run, as the style
//! guide asks, never as a bare time:
//! - map+unmap of a large range, per 4 KiB page, against "write one u64 per page
//!   into an array" (the least any page-table fill can cost), over simulated memory,
//!   real pre-faulted process memory, and simulated memory whose every page is
//!   physically discontiguous (the worst case: one frame run per page);
//! - map+unmap with no domain at 1, 4 and 16 GiB (the cost must not grow with
//!   length);
//! - many separate 4 KiB mappings, mapped and unmapped one by one: per-operation
//!   cost with few and with many mappings present (the ratio is the growth), and the
//!   heap bytes each mapping keeps, counted by this binary's global allocator.
//!
//! The mock domain's aperture is `[16 MiB, 2 GiB)`, so with a domain a 16 GiB range
//! is swept through it 1 GiB at a time, and the many-mappings case stops at 500,000
//! 4 KiB mappings. There is no public `HWPT_ALLOC` yet, and a second mock device on
//! the same IOAS reuses the first auto domain, so the second domain is loaded into
//! the IOAS's page table directly (`IoPagetable::add_domain`), the same path a
//! second HWPT takes.
//!
//! `--quick` runs small sizes (a CI smoke run). The binary always exits 0: goals
//! missed are reported in the table, not failed.
#![allow(unsafe_code)]

use softiommu::iommu::mock::MockDriver;
use softiommu::iommu::{Device, Domain, Driver, PagingFlags};
use softiommu::iommufd::{Iommufd, MapFlags};
use softiommu::mem::process::ProcessAddressSpace;
use softiommu::mem::sim::{SimAddressSpace, SimMemory};
use softiommu::mem::{Process, User, PAGE_SIZE};
use softiommu::uapi::test::MOCK_APERTURE_START;
use std::alloc::{GlobalAlloc, Layout, System};
use std::collections::BTreeMap;
use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Instant;

const MIB: u64 = 1 << 20;
const GIB: u64 = 1 << 30;
/// Where the large-range cases map: inside the mock aperture, room for 1 GiB.
const IOVA: u64 = GIB;
/// The most one map may cover with a mock domain attached (aperture ends at 2 GiB).
const DOMAIN_CHUNK: u64 = GIB;
/// Goal for one domain, ns per 4 KiB page (the kernel's VFIO type1: ~64).
const GOAL_NS_PER_PAGE: f64 = 20.0;

/// Counts heap bytes so the bench can tell what each mapping keeps.
struct Counting;

static ALLOCATED: AtomicU64 = AtomicU64::new(0);
static FREED: AtomicU64 = AtomicU64::new(0);

// SAFETY: every method forwards its arguments unchanged to `System`, so the
// allocator contract is `System`'s; the counters are only side effects.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATED.fetch_add(layout.size() as u64, Relaxed);
        // SAFETY: the caller upholds `alloc`'s contract, which is System's.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        ALLOCATED.fetch_add(layout.size() as u64, Relaxed);
        // SAFETY: as for `alloc`.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        FREED.fetch_add(layout.size() as u64, Relaxed);
        // SAFETY: `ptr` came from this allocator, i.e. from System, with `layout`.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATED.fetch_add(new_size as u64, Relaxed);
        FREED.fetch_add(layout.size() as u64, Relaxed);
        // SAFETY: `ptr` came from System with `layout`; the caller upholds the rest.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Heap bytes allocated and not yet freed.
fn live_bytes() -> i64 {
    ALLOCATED.load(Relaxed) as i64 - FREED.load(Relaxed) as i64
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn time_ns(f: impl FnOnce()) -> f64 {
    let t = Instant::now();
    f();
    t.elapsed().as_nanos() as f64
}

/// One line of the final table.
struct Row {
    case: String,
    value: String,
    floor: String,
    ratio: f64,
    goal: String,
    met: Option<bool>,
}

#[derive(Default)]
struct Table {
    rows: Vec<Row>,
}

impl Table {
    #[allow(clippy::too_many_arguments)]
    fn add(
        &mut self,
        case: &str,
        value: f64,
        unit: &str,
        floor: f64,
        floor_name: &str,
        goal: &str,
        met: Option<bool>,
    ) {
        let row = Row {
            case: case.to_string(),
            value: format!("{} {unit}", fmt(value)),
            floor: format!("{} {floor_name}", fmt(floor)),
            ratio: value / floor,
            goal: goal.to_string(),
            met,
        };
        println!(
            "  {:<50} {:>14}   floor {:<26} ratio {:>9}",
            row.case,
            row.value,
            row.floor,
            fmt(row.ratio)
        );
        self.rows.push(row);
    }

    fn print(&self) {
        println!();
        println!(
            "{:<50} {:>14} {:<26} {:>9}  {:<16} met",
            "case", "value", "floor", "ratio", "goal"
        );
        println!("{}", "-".repeat(124));
        for r in &self.rows {
            let met = match r.met {
                Some(true) => "yes",
                Some(false) => "NO",
                None => "-",
            };
            println!(
                "{:<50} {:>14} {:<26} {:>9}  {:<16} {met}",
                r.case,
                r.value,
                r.floor,
                fmt(r.ratio),
                r.goal
            );
        }
    }
}

/// Three significant digits or so, without scientific notation for ordinary sizes.
fn fmt(x: f64) -> String {
    if x == 0.0 {
        "0".into()
    } else if x.abs() >= 100.0 {
        format!("{x:.0}")
    } else if x.abs() >= 10.0 {
        format!("{x:.1}")
    } else if x.abs() >= 1.0 {
        format!("{x:.2}")
    } else if x.abs() >= 0.001 {
        format!("{x:.4}")
    } else {
        format!("{x:.2e}")
    }
}

/// The floor of a page-table fill: ns to write one u64 (an IOPTE-shaped value) per
/// page into an array of `npages` entries; median of `reps` passes.
fn pte_floor(npages: u64, reps: usize) -> f64 {
    let mut table = vec![0u64; npages as usize];
    let mut samples = Vec::new();
    for r in 0..reps {
        let base = black_box(r as u64) << 40;
        let ns = time_ns(|| {
            for (i, pte) in table.iter_mut().enumerate() {
                *pte = base | ((i as u64) << 12) | 3;
            }
            black_box(&mut table);
        });
        samples.push(ns / npages as f64);
    }
    median(samples)
}

/// Map and unmap times of one sweep, ns per page.
#[derive(Clone, Copy)]
struct Sweep {
    map: f64,
    unmap: f64,
}

impl Sweep {
    fn total(&self) -> f64 {
        self.map + self.unmap
    }
}

/// Maps and unmaps `len` bytes at `va`, `chunk` bytes per call at [`IOVA`]; the
/// median over `reps` sweeps of ns per 4 KiB page.
fn sweep(ctx: &Iommufd, ioas: u32, va: u64, len: u64, chunk: u64, reps: usize) -> Sweep {
    let (mut maps, mut unmaps, mut totals) = (Vec::new(), Vec::new(), Vec::new());
    let pages = (len / PAGE_SIZE) as f64;
    for _ in 0..reps {
        let (mut m, mut u) = (0.0, 0.0);
        let mut off = 0;
        while off < len {
            let n = chunk.min(len - off);
            m += time_ns(|| {
                ctx.ioas_map(ioas, va + off, n, Some(IOVA), MapFlags::RW)
                    .expect("map");
            });
            u += time_ns(|| {
                ctx.ioas_unmap(ioas, IOVA, n).expect("unmap");
            });
            off += n;
        }
        maps.push(m / pages);
        unmaps.push(u / pages);
        totals.push((m + u) / pages);
    }
    // Report the sweep whose total is the median, split into its two halves.
    let mid = median(totals.clone());
    let i = totals
        .iter()
        .position(|t| *t == mid)
        .expect("median is a sample");
    Sweep {
        map: maps[i],
        unmap: unmaps[i],
    }
}

/// A second mock domain, loaded straight into the IOAS's page table.
fn second_domain(ctx: &Iommufd, ioas: u32) -> Arc<dyn Domain> {
    let dev = Device::new("bench_mock", MockDriver::new(), 0);
    let domain = MockDriver
        .domain_alloc_paging(&dev, PagingFlags::default())
        .expect("mock domain");
    ctx.get_ioas(ioas)
        .expect("ioas")
        .iopt()
        .add_domain(&domain)
        .expect("add domain");
    domain
}

fn remove_domain(ctx: &Iommufd, ioas: u32, domain: &Arc<dyn Domain>) {
    ctx.get_ioas(ioas)
        .expect("ioas")
        .iopt()
        .remove_domain(domain);
}

/// Case 1 over one memory: no domain, one and two mock domains.
fn large_range(t: &mut Table, label: &str, ctx: &Iommufd, va: u64, len: u64, reps: usize) {
    let pages = len / PAGE_SIZE;
    let floor = pte_floor(pages, reps.max(5));
    println!(
        "{label}: {} MiB = {pages} pages; floor {} ns/page (u64 write per page, median)",
        len / MIB,
        fmt(floor)
    );
    let ioas = ctx.ioas_alloc().expect("ioas");
    let chunk = len.min(DOMAIN_CHUNK);

    let s0 = sweep(ctx, ioas, va, len, len, reps);
    println!(
        "  no domain:   map {} + unmap {} ns/page (one call each)",
        fmt(s0.map),
        fmt(s0.unmap)
    );
    let ids = ctx.test_mock_domain(ioas).expect("mock domain");
    let s1 = sweep(ctx, ioas, va, len, chunk, reps);
    println!(
        "  1 domain:    map {} + unmap {} ns/page ({} calls each)",
        fmt(s1.map),
        fmt(s1.unmap),
        len / chunk
    );
    let d2 = second_domain(ctx, ioas);
    let s2 = sweep(ctx, ioas, va, len, chunk, reps);
    println!(
        "  2 domains:   map {} + unmap {} ns/page",
        fmt(s2.map),
        fmt(s2.unmap)
    );
    remove_domain(ctx, ioas, &d2);
    ctx.destroy(ids.stdev_id).expect("detach");
    ctx.destroy(ioas).expect("destroy ioas");

    let f = "ns u64/page";
    t.add(
        &format!("{label}, no domain (ns/page)"),
        s0.total(),
        "ns",
        floor,
        f,
        "-",
        None,
    );
    let g = format!("<= {GOAL_NS_PER_PAGE} ns/page");
    let met = Some(s1.total() <= GOAL_NS_PER_PAGE);
    t.add(
        &format!("{label}, 1 domain (ns/page)"),
        s1.total(),
        "ns",
        floor,
        f,
        &g,
        met,
    );
    t.add(
        &format!("{label}, 2 domains (ns/page)"),
        s2.total(),
        "ns",
        floor,
        f,
        "-",
        None,
    );
}

/// A simulated process over fresh memory of `capacity` bytes.
fn sim(capacity: u64) -> (Arc<SimAddressSpace>, Iommufd) {
    let mem = SimMemory::new(capacity).expect("sim memory");
    let space = SimAddressSpace::new(&mem);
    let ctx = Iommufd::open(&Process::new(space.clone(), User::new()));
    (space, ctx)
}

/// 1(a) and the length scaling: simulated memory, lazily committed.
fn case_sim(t: &mut Table, quick: bool) {
    let (space, ctx) = sim(17 * GIB);
    let va = space.mmap_anon(None, 16 * GIB, true).expect("mmap");
    let len = if quick { GIB } else { 16 * GIB };
    large_range(
        t,
        &format!("1a sim {} GiB map+unmap", len / GIB),
        &ctx,
        va,
        len,
        if quick { 5 } else { 11 },
    );

    // With no domain, nothing is pinned: one map and one unmap cost the same at
    // any length.
    let ioas = ctx.ioas_alloc().expect("ioas");
    let (batches, per) = if quick { (11, 50) } else { (31, 200) };
    let mut per_call = Vec::new();
    for gib in [1u64, 4, 16] {
        let mut s = Vec::new();
        for _ in 0..batches {
            let ns = time_ns(|| {
                for _ in 0..per {
                    ctx.ioas_map(ioas, va, gib * GIB, Some(IOVA), MapFlags::RW)
                        .expect("map");
                    ctx.ioas_unmap(ioas, IOVA, gib * GIB).expect("unmap");
                }
            });
            s.push(ns / per as f64);
        }
        per_call.push(median(s));
    }
    println!(
        "1d no domain map+unmap per call: 1 GiB {} ns, 4 GiB {} ns, 16 GiB {} ns",
        fmt(per_call[0]),
        fmt(per_call[1]),
        fmt(per_call[2])
    );
    ctx.destroy(ioas).expect("destroy ioas");
    let r = per_call[2] / per_call[0];
    t.add(
        "1d no domain, 4 GiB map+unmap (ns/call)",
        per_call[1],
        "ns",
        per_call[0],
        "ns at 1 GiB",
        "-",
        None,
    );
    t.add(
        "1d no domain, 16 GiB map+unmap (ns/call)",
        per_call[2],
        "ns",
        per_call[0],
        "ns at 1 GiB",
        "16G/1G <= 1.5",
        Some(r <= 1.5),
    );
}

fn mem_available() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kb: u64 = line.split_ascii_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// 1(b): the calling process's own memory, pre-faulted, small pages.
fn case_process(t: &mut Table, quick: bool) {
    let len = if quick {
        64 * MIB
    } else {
        let Some(avail) = mem_available() else {
            println!("1b process memory: skipped, cannot read MemAvailable");
            return;
        };
        if avail / 2 < 256 * MIB {
            println!(
                "1b process memory: skipped, only {} MiB available",
                avail / MIB
            );
            return;
        }
        let want = (16 * GIB).min(avail / 2);
        if want >= GIB {
            want & !(GIB - 1)
        } else {
            want & !(2 * MIB - 1)
        }
    };
    // SAFETY: a fresh anonymous private mapping at an address the kernel picks
    // touches no existing memory; the result is checked below.
    let base = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len as usize,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    if base == libc::MAP_FAILED {
        println!(
            "1b process memory: skipped, mmap of {} MiB failed",
            len / MIB
        );
        return;
    }
    // SAFETY: `base..base + len` is the mapping just made and owned here.
    let rc = unsafe { libc::madvise(base, len as usize, libc::MADV_NOHUGEPAGE) };
    if rc != 0 {
        println!("1b: madvise(MADV_NOHUGEPAGE) failed; pages may be huge");
    }
    let start = Instant::now();
    for off in (0..len as usize).step_by(PAGE_SIZE as usize) {
        // SAFETY: `off` is inside the writable mapping made above, which nothing
        // else refers to.
        unsafe { base.cast::<u8>().add(off).write_volatile(1) };
    }
    println!(
        "1b: pre-faulted {} MiB of process memory in {:.1} s",
        len / MIB,
        start.elapsed().as_secs_f64()
    );
    let ctx = Iommufd::open(&Process::new(ProcessAddressSpace::new(), User::new()));
    let label = if len >= GIB {
        format!("1b process {} GiB map+unmap", len / GIB)
    } else {
        format!("1b process {} MiB map+unmap", len / MIB)
    };
    large_range(t, &label, &ctx, base as u64, len, if quick { 5 } else { 7 });
    drop(ctx);
    // SAFETY: the mapping made above; nothing pins it any more (every IOAS and
    // domain is destroyed) and no reference into it remains.
    unsafe { libc::munmap(base, len as usize) };
}

/// 1(c): every page physically discontiguous, one mock domain.
fn case_discontiguous(t: &mut Table, quick: bool) {
    let len = if quick { 16 * MIB } else { GIB };
    let pages = len / PAGE_SIZE;
    let (space, ctx) = sim(len + 16 * MIB);
    let va = 0x1000_0000_0000u64;
    // Single pages in reverse VA order: each takes the next frame of the memory, so
    // frame order runs opposite to VA order and no two neighbours merge.
    let setup = Instant::now();
    for i in (0..pages).rev() {
        space
            .mmap_anon(Some(va + i * PAGE_SIZE), PAGE_SIZE, true)
            .expect("mmap page");
    }
    let floor = pte_floor(pages, 7);
    println!(
        "1c discontiguous: {} MiB = {pages} single-page VMAs (set up in {:.2} s); floor {} ns/page",
        len / MIB,
        setup.elapsed().as_secs_f64(),
        fmt(floor)
    );
    let ioas = ctx.ioas_alloc().expect("ioas");
    let ids = ctx.test_mock_domain(ioas).expect("mock domain");
    let s = sweep(&ctx, ioas, va, len, len, 5);
    println!(
        "  1 domain:    map {} + unmap {} ns/page",
        fmt(s.map),
        fmt(s.unmap)
    );
    ctx.destroy(ids.stdev_id).expect("detach");
    ctx.destroy(ioas).expect("destroy ioas");
    let g = format!("<= {GOAL_NS_PER_PAGE} ns/page");
    let name = format!("1c discontig {} MiB, 1 domain (ns/page)", len / MIB);
    t.add(
        &name,
        s.total(),
        "ns",
        floor,
        "ns u64/page",
        &g,
        Some(s.total() <= GOAL_NS_PER_PAGE),
    );
}

/// Peer floor for case 2: a `BTreeMap<u64, u64>` with one key per mapping.
struct TreeFloor {
    insert_small: f64,
    remove_small: f64,
    bytes_per_entry: f64,
    /// Insert ns/op over the last 10,000 of `n` ascending inserts.
    insert_tail: f64,
}

fn tree_floor(small: u64, n: u64) -> TreeFloor {
    let (mut ins, mut rem) = (Vec::new(), Vec::new());
    for _ in 0..21 {
        let mut m = BTreeMap::new();
        ins.push(
            time_ns(|| {
                (0..small).for_each(|i| {
                    black_box(m.insert(black_box(i << 12), i));
                })
            }) / small as f64,
        );
        rem.push(
            time_ns(|| {
                (0..small).for_each(|i| {
                    black_box(m.remove(&black_box(i << 12)));
                })
            }) / small as f64,
        );
    }
    let before = live_bytes();
    let mut m = BTreeMap::new();
    let window = 10_000.min(n / 10);
    for i in 0..n - window {
        m.insert(i << 12, i);
    }
    let insert_tail = time_ns(|| {
        for i in n - window..n {
            black_box(m.insert(black_box(i << 12), i));
        }
    }) / window as f64;
    let bytes_per_entry = (live_bytes() - before) as f64 / n as f64;
    drop(black_box(m));
    TreeFloor {
        insert_small: median(ins),
        remove_small: median(rem),
        bytes_per_entry,
        insert_tail,
    }
}

/// Case 2: `n` separate 4 KiB mappings, mapped and unmapped one by one.
fn case_many(t: &mut Table, quick: bool, domain: bool, n: u64, auto_n: u64) {
    const SMALL: u64 = 1000;
    let window = 10_000.min(n / 10);
    let tag = if domain { "1 domain" } else { "no domain" };
    let floor = tree_floor(SMALL, n);
    let (space, ctx) = sim((n + 16) * PAGE_SIZE + 16 * MIB);
    let va = space.mmap_anon(None, n * PAGE_SIZE, true).expect("mmap");
    let ioas = ctx.ioas_alloc().expect("ioas");
    let ids = domain.then(|| ctx.test_mock_domain(ioas).expect("mock domain"));
    let base = MOCK_APERTURE_START;
    let map = |i: u64| {
        ctx.ioas_map(
            ioas,
            va + i * PAGE_SIZE,
            PAGE_SIZE,
            Some(base + i * PAGE_SIZE),
            MapFlags::RW,
        )
        .expect("map");
    };
    let unmap = |i: u64| {
        ctx.ioas_unmap(ioas, base + i * PAGE_SIZE, PAGE_SIZE)
            .expect("unmap");
    };

    // A few mappings present: 1K mapped then unmapped, repeated.
    let (mut m_small, mut u_small) = (Vec::new(), Vec::new());
    for _ in 0..if quick { 7 } else { 21 } {
        m_small.push(time_ns(|| (0..SMALL).for_each(map)) / SMALL as f64);
        u_small.push(time_ns(|| (0..SMALL).for_each(unmap)) / SMALL as f64);
    }
    let (m_small, u_small) = (median(m_small), median(u_small));

    // Many: the last `window` maps and the first `window` unmaps run with about
    // `n` mappings present.
    let before = live_bytes();
    let t_all = Instant::now();
    (0..n - window).for_each(map);
    // Ten slices of the window, median: robust against a stray interruption.
    let slice = window / 10;
    let m_tail = median(
        (0..10)
            .map(|j| {
                let from = n - window + j * slice;
                time_ns(|| (from..from + slice).for_each(map)) / slice as f64
            })
            .collect(),
    );
    let m_avg = t_all.elapsed().as_nanos() as f64 / n as f64;
    let bytes = (live_bytes() - before) as f64 / n as f64;
    let t_all = Instant::now();
    let u_head = median(
        (0..10)
            .map(|j| time_ns(|| (j * slice..(j + 1) * slice).for_each(unmap)) / slice as f64)
            .collect(),
    );
    (window..n).for_each(unmap);
    let u_avg = t_all.elapsed().as_nanos() as f64 / n as f64;
    let residue = live_bytes() - before;
    println!(
        "2 {tag}: {n} x 4 KiB fixed IOVA: map {} ns/op at {SMALL}, {} at {n} (avg over all {}); unmap {} at {SMALL}, {} at {n} (avg {}); \
         {} heap bytes/mapping (BTreeMap<u64,u64>: {}); {} bytes left after unmapping all; \
         peer BTreeMap insert {} ns/op at {SMALL}, {} at {n}",
        fmt(m_small),
        fmt(m_tail),
        fmt(m_avg),
        fmt(u_small),
        fmt(u_head),
        fmt(u_avg),
        fmt(bytes),
        fmt(floor.bytes_per_entry),
        residue,
        fmt(floor.insert_small),
        fmt(floor.insert_tail)
    );
    let k = |x: u64| {
        if x >= 1_000_000 {
            format!("{}M", x / 1_000_000)
        } else {
            format!("{}K", x / 1000)
        }
    };
    let nk = k(n);
    t.add(
        &format!("2 {tag}: map/op, 1K present"),
        m_small,
        "ns",
        floor.insert_small,
        "ns btree ins",
        "-",
        None,
    );
    t.add(
        &format!("2 {tag}: map/op, {nk} present"),
        m_tail,
        "ns",
        m_small,
        "ns at 1K",
        "<= 2x",
        Some(m_tail <= 2.0 * m_small),
    );
    t.add(
        &format!("2 {tag}: unmap/op, 1K present"),
        u_small,
        "ns",
        floor.remove_small,
        "ns btree rm",
        "-",
        None,
    );
    t.add(
        &format!("2 {tag}: unmap/op, {nk} present"),
        u_head,
        "ns",
        u_small,
        "ns at 1K",
        "<= 2x",
        Some(u_head <= 2.0 * u_small),
    );
    t.add(
        &format!("2 {tag}: heap bytes/mapping ({nk})"),
        bytes,
        "B",
        floor.bytes_per_entry,
        "B btree entry",
        "< 200 B",
        Some(bytes < 200.0),
    );

    // Automatic IOVA: per-op cost in windows ending at 1K, 10K, 100K mappings,
    // within a time budget.
    let budget = if quick { 5.0 } else { 120.0 };
    let marks: Vec<u64> = [SMALL, 10_000, 100_000]
        .into_iter()
        .filter(|m| *m <= auto_n)
        .collect();
    let mut iovas = Vec::with_capacity(auto_n as usize);
    let mut at = Vec::new();
    let started = Instant::now();
    let mut stopped = None;
    let mut done = 0u64;
    for &mark in &marks {
        let w = (mark / 10).min(1000);
        while done < mark - w {
            iovas.push(
                ctx.ioas_map(ioas, va + done * PAGE_SIZE, PAGE_SIZE, None, MapFlags::RW)
                    .expect("auto map"),
            );
            done += 1;
            if started.elapsed().as_secs_f64() > budget {
                stopped = Some(done);
                break;
            }
        }
        if stopped.is_some() {
            break;
        }
        let ns = time_ns(|| {
            for _ in 0..w {
                iovas.push(
                    ctx.ioas_map(ioas, va + done * PAGE_SIZE, PAGE_SIZE, None, MapFlags::RW)
                        .expect("auto map"),
                );
                done += 1;
            }
        });
        at.push((mark, ns / w as f64));
    }
    let auto_secs = started.elapsed().as_secs_f64();
    for iova in iovas {
        ctx.ioas_unmap(ioas, iova, PAGE_SIZE).expect("unmap auto");
    }
    let desc: Vec<String> = at
        .iter()
        .map(|(m, ns)| format!("{} ns/op at {}", fmt(*ns), k(*m)))
        .collect();
    println!(
        "2 {tag}: automatic IOVA: {}{} ({done} maps in {auto_secs:.1} s)",
        desc.join(", "),
        stopped.map_or(String::new(), |d| format!(
            "; stopped at {d} mappings: over the {budget} s budget"
        ))
    );
    if let (Some(first), Some(last)) = (at.first(), at.last()) {
        if at.len() > 1 {
            let name = format!("2 {tag}: auto-IOVA map/op, {} present", k(last.0));
            t.add(
                &name,
                last.1,
                "ns",
                first.1,
                "ns at 1K",
                "<= 2x",
                Some(last.1 <= 2.0 * first.1),
            );
        }
    }
    if let Some(ids) = ids {
        ctx.destroy(ids.stdev_id).expect("detach");
    }
    ctx.destroy(ioas).expect("destroy ioas");
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let quick = args.iter().any(|a| a == "--quick");
    // `--only 1c` (or 1a, 1b, 2) runs one case, e.g. under `perf record`.
    let only = args
        .iter()
        .position(|a| a == "--only")
        .and_then(|i| args.get(i + 1));
    let run = |case: &str| !matches!(only, Some(o) if o != case);
    let started = Instant::now();
    println!(
        "softiommu IOAS benchmark ({})",
        if quick { "quick" } else { "full" }
    );
    let mut t = Table::default();
    if run("1a") {
        case_sim(&mut t, quick);
    }
    if run("1b") {
        case_process(&mut t, quick);
    }
    if run("1c") {
        case_discontiguous(&mut t, quick);
    }
    if run("2") {
        // The mock aperture holds 520,192 4 KiB pages: 500K mappings with a domain.
        let (n0, n1, auto_n) = if quick {
            (100_000, 100_000, 10_000)
        } else {
            (1_000_000, 500_000, 100_000)
        };
        case_many(&mut t, quick, false, n0, auto_n);
        case_many(&mut t, quick, true, n1, auto_n);
    }
    t.print();
    println!("(ran in {:.1} s)", started.elapsed().as_secs_f64());
}
