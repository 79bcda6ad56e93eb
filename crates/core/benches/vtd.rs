//! Benchmark of the VT-d model: translation, bulk DMA and map/unmap, each
//! printed as a ratio to a peer or a floor measured in the same run.
//!
//! 1. Translation of random 4 KiB pages of a domain with 4,096 mappings:
//!    - IOTLB hits (a working set of 512 pages, which the 1,024-entry IOTLB
//!      holds) through `Domain::translate`, against `vm_memory::iommu::Iotlb`
//!      (feature `iommu`) looking up the same pages — both as a DMA engine
//!      would use them, the peer behind the `RwLock` its `IommuMemory` keeps it
//!      in. Goal: at least 3x faster.
//!    - misses: a full 5-level walk of the table (`iova_to_phys`), against the
//!      same peer.
//! 2. Bulk DMA: 64 KiB reads by a device through 2 MiB and through 4 KiB
//!    mappings (every 4 KiB page elsewhere in memory), against `memcpy` of 64
//!    KiB between buffers of the same working-set size. Goals: 0.9 of memcpy
//!    with 2 MiB pages, 0.5 with 4 KiB pages.
//! 3. Map + unmap of 16 GiB into a second-stage domain with 4 KiB and with
//!    2 MiB leaves, ns per 4 KiB page, against writing one u64 per page into an
//!    array and clearing it again. Goal: within 4x of that floor.
//!
//! `--quick` runs small sizes (a CI smoke run); the binary always exits 0.

use softiommu::iommu::dma::{AttachedDomain, Attachment, DmaEngine, NO_PASID};
use softiommu::iommu::vtd::{VtdCaps, VtdDriver};
use softiommu::iommu::{Device, Domain, Driver, PagingFlags, IOMMU_READ, IOMMU_WRITE};
use softiommu::mem::sim::{SimMemory, SIM_PHYS_BASE};
use softiommu::mem::{PhysMemory, PAGE_SIZE};
use std::hint::black_box;
use std::sync::{Arc, RwLock};
use std::time::Instant;
use vm_memory::iommu::Iotlb as PeerIotlb;
use vm_memory::{GuestAddress, Permissions};

const MIB: u64 = 1 << 20;
const GIB: u64 = 1 << 30;
const RW: u32 = IOMMU_READ | IOMMU_WRITE;

/// xorshift: the same pseudo-random sequence for every contender.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// Nanoseconds per iteration of `f` run `n` times, best of 3.
fn ns_per(n: u64, mut f: impl FnMut()) -> f64 {
    (0..3)
        .map(|_| {
            let t = Instant::now();
            for _ in 0..n {
                f();
            }
            t.elapsed().as_nanos() as f64 / n as f64
        })
        .fold(f64::MAX, f64::min)
}

fn row(name: &str, ours: f64, peer_name: &str, peer: f64, unit: &str, goal: &str) {
    println!(
        "{name:42} {ours:9.2} {unit}  {peer_name:>14} {peer:9.2} {unit}  ratio {:6.2}  {goal}",
        ours / peer
    );
}

fn vtd() -> (Arc<VtdDriver>, Arc<SimMemory>) {
    let mem = SimMemory::new(256 * MIB).expect("simulated memory");
    (VtdDriver::new(VtdCaps::default(), mem.clone()), mem)
}

fn domain(driver: &Arc<VtdDriver>, flags: PagingFlags) -> Arc<dyn Domain> {
    let dev = Device::new("bench", driver.clone(), 0);
    driver.domain_alloc_paging(&dev, flags).expect("domain")
}

fn translation(quick: bool) {
    let (driver, _) = vtd();
    let d = domain(&driver, PagingFlags::default());
    let mut peer = PeerIotlb::new();
    let pages = 4096u64;
    let base = GIB;
    for i in 0..pages {
        // Scattered frames, so that no two pages merge.
        let phys = SIM_PHYS_BASE + ((i * 7919) % pages) * PAGE_SIZE;
        d.map(base + i * PAGE_SIZE, phys, PAGE_SIZE, RW).unwrap();
        peer.set_mapping(
            GuestAddress(base + i * PAGE_SIZE),
            GuestAddress(phys),
            PAGE_SIZE as usize,
            Permissions::ReadWrite,
        )
        .unwrap();
    }
    let peer = RwLock::new(peer);
    let n = if quick { 200_000 } else { 5_000_000 };
    let working_set = 512;
    let peer_lookup = |iova: u64| {
        let tlb = peer.read().unwrap();
        let m = PeerIotlb::lookup(&*tlb, GuestAddress(iova), 8, Permissions::Read)
            .ok()
            .and_then(|mut it| it.next())
            .expect("mapped");
        black_box(m);
    };
    let mut rng = Rng(1);
    let hit = ns_per(n, || {
        let iova = base + (rng.next() % working_set) * PAGE_SIZE + 8;
        black_box(d.translate(iova, false).expect("mapped"));
    });
    let mut rng = Rng(1);
    let peer_hit = ns_per(n, || {
        peer_lookup(base + (rng.next() % working_set) * PAGE_SIZE + 8)
    });
    row(
        "translate, IOTLB hit",
        hit,
        "vm-memory",
        peer_hit,
        "ns",
        "(goal: ratio <= 0.33)",
    );
    let mut rng = Rng(2);
    let walk = ns_per(n, || {
        let iova = base + (rng.next() % pages) * PAGE_SIZE + 8;
        black_box(d.iova_to_phys(iova).expect("mapped"));
    });
    let mut rng = Rng(2);
    let peer_any = ns_per(n, || {
        peer_lookup(base + (rng.next() % pages) * PAGE_SIZE + 8)
    });
    row(
        "translate, miss (5-level walk)",
        walk,
        "vm-memory",
        peer_any,
        "ns",
        "",
    );
}

fn bulk_dma(quick: bool) {
    let (driver, mem) = vtd();
    let region = if quick { 8 * MIB } else { 64 * MIB };
    let chunk = 64 * 1024u64;
    let n = if quick { 2_000 } else { 20_000 };
    // memcpy floor between buffers of the same size.
    let src = vec![7u8; region as usize];
    let mut dst = vec![0u8; chunk as usize];
    let mut rng = Rng(3);
    let floor = ns_per(n, || {
        let at = (rng.next() % (region / chunk)) * chunk;
        dst.copy_from_slice(&src[at as usize..(at + chunk) as usize]);
        black_box(&dst);
    });
    // Touch the simulated memory the device reads, as memcpy's source is.
    let phys = SIM_PHYS_BASE + 2 * MIB;
    for at in (0..region).step_by(MIB as usize) {
        mem.write(phys + at, &src[..MIB as usize]).unwrap();
    }
    let cases = [
        ("DMA read 64 KiB, 2 MiB pages", 2 * MIB, 1, Some(0.9)),
        ("DMA read 64 KiB, 4 KiB pages", PAGE_SIZE, 1, Some(0.5)),
        (
            "DMA read 64 KiB, 4 KiB pages, scattered",
            PAGE_SIZE,
            7919,
            None,
        ),
    ];
    for (name, leaf, stride, goal) in cases {
        let d = domain(&driver, PagingFlags::default());
        let iova = GIB;
        // One map per leaf: 4 KiB leaves even over contiguous frames. With a
        // stride, consecutive IOVA pages are far apart in memory.
        let leaves = region / leaf;
        for i in 0..leaves {
            let p = phys + ((i * stride) % leaves) * leaf;
            d.map(iova + i * leaf, p, leaf, RW).unwrap();
        }
        let dev = Arc::new(Device::new("bench", driver.clone(), 0));
        dev.set_attachment(
            NO_PASID,
            Some(Attachment {
                domain: AttachedDomain::Paging(d),
                iopf: None,
            }),
        );
        let dma = DmaEngine::new(dev, mem.clone());
        let mut rng = Rng(3);
        let ours = ns_per(n, || {
            let at = (rng.next() % (region / chunk)) * chunk;
            dma.read(NO_PASID, iova + at, &mut dst).expect("mapped");
            black_box(&dst);
        });
        let goal = goal.map_or(String::new(), |g| format!("(goal: >= {g})"));
        println!(
            "{name:42} {:9.2} GB/s  {:>14} {:9.2} GB/s  of memcpy {:5.2}  {goal}",
            chunk as f64 / ours,
            "memcpy",
            chunk as f64 / floor,
            floor / ours,
        );
    }
}

fn map_unmap(quick: bool) {
    let (driver, _) = vtd();
    let len = if quick { GIB } else { 16 * GIB };
    let pages = len / PAGE_SIZE;
    // Floor: one u64 written per page and cleared again (map writes a PTE,
    // unmap clears it).
    let mut ptes = vec![0u64; pages as usize];
    let floor = ns_per(1, || {
        for (i, p) in ptes.iter_mut().enumerate() {
            *p = (i as u64) << 12 | 3;
        }
        black_box(&ptes);
        for p in ptes.iter_mut() {
            *p = 0;
        }
        black_box(&ptes);
    }) / pages as f64;
    drop(ptes);
    for (name, offset) in [
        ("map+unmap 4 KiB leaves", PAGE_SIZE),
        ("map+unmap 2 MiB leaves", 2 * MIB),
    ] {
        let d = domain(
            &driver,
            PagingFlags {
                nest_parent: true,
                ..PagingFlags::default()
            },
        );
        let iova = GIB;
        // 1 GiB + offset: aligned to the offset's size only.
        let phys = SIM_PHYS_BASE + GIB + offset;
        let ours = ns_per(1, || {
            d.map(iova, phys, len, RW).unwrap();
            assert_eq!(d.unmap(iova, len), len);
        }) / pages as f64;
        row(
            &format!("{name}, {} GiB", len / GIB),
            ours,
            "u64 set+clear",
            floor,
            "ns/4K",
            "(goal: ratio <= 4)",
        );
    }
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    println!(
        "softiommu VT-d benchmark ({})",
        if quick { "quick" } else { "full" }
    );
    translation(quick);
    bulk_dma(quick);
    map_unmap(quick);
}
