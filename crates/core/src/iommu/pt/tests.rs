//! Tests of the walker over every format: hand-computed entries, a model-based
//! property test, dirty tracking, the foreign walk and concurrent readers.

use super::mock::*;
use super::vtd::*;
use super::*;
use crate::iommu::IOMMU_CACHE;
use proptest::prelude::*;
use std::collections::{BTreeMap, HashMap};

const RW: u32 = IOMMU_READ | IOMMU_WRITE;
const B: u64 = TABLE_PHYS_BASE;
const KIB4: u64 = 1 << 12;
const MIB2: u64 = 1 << 21;
const GIB1: u64 = 1 << 30;

fn table<F: PtFormat>(fmt: F) -> PageTable<F> {
    PageTable::new(fmt, TableArena::new()).unwrap()
}

/// The entry at `index` of each table on the walk, top first.
fn entries<F: PtFormat>(pt: &PageTable<F>, iova: u64) -> Vec<(u64, usize, u64)> {
    pt.walk(iova)
        .steps()
        .iter()
        .map(|s| (s.table, s.index, s.entry))
        .collect()
}

#[test]
fn sl4_entries_per_level() {
    let pt = table(VtdSl::new(4).unwrap());
    pt.map(0x4020_1000, 0x1234_5000, KIB4, RW).unwrap();
    // Indexes of 0x4020_1000: level 3: 0, level 2: 1, level 1: 1, level 0: 1.
    // Tables are allocated root first: B, B + 0x1000, B + 0x2000, B + 0x3000.
    assert_eq!(
        entries(&pt, 0x4020_1000),
        vec![
            (B, 0, 0x000F_0000_0000_1003),
            (B + 0x1000, 1, 0x000F_0000_0000_2003),
            (B + 0x2000, 1, 0x000F_0000_0000_3003),
            (B + 0x3000, 1, 0x1234_5003),
        ]
    );
    assert_eq!(pt.iova_to_phys(0x4020_1abc), Some((0x1234_5abc, RW, KIB4)));
    let leaf = pt.walk(0x4020_1000).leaf.unwrap();
    assert_eq!((leaf.level, leaf.size_lg2), (0, 12));

    // 2 MiB, read-only and snooped, at level 1 index 2 of the same level-1 table.
    pt.map(0x4040_0000, 0x8000_0000, MIB2, IOMMU_READ | IOMMU_CACHE)
        .unwrap();
    assert_eq!(
        entries(&pt, 0x4040_0000)[2],
        (B + 0x2000, 2, 0x8000_0000 | SL_SNP | SL_PS | SL_R)
    );
    assert_eq!(pt.mem().read(B + 0x2000, 2), 0x8000_0881);
    assert_eq!(
        pt.iova_to_phys(0x405f_f008),
        Some((0x801f_f008, IOMMU_READ | IOMMU_CACHE, MIB2))
    );

    // 1 GiB, write-only, at level 2 index 3.
    pt.map(3 * GIB1, 0x1_4000_0000, GIB1, IOMMU_WRITE).unwrap();
    assert_eq!(pt.mem().read(B + 0x1000, 3), 0x1_4000_0082);
    assert_eq!(
        pt.iova_to_phys(3 * GIB1 + 0x1234_5678),
        Some((0x1_5234_5678, IOMMU_WRITE, GIB1))
    );
    assert_eq!(pt.mem().tables_in_use(), 4);
    assert_eq!(pt.va_last(), (1 << 48) - 1);
    assert_eq!(pt.format().pgsize_bitmap(), KIB4 | MIB2 | GIB1);
}

#[test]
fn sl5_entries_per_level() {
    let pt = table(VtdSl::new(5).unwrap());
    let iova = (3 << 48) | (5 << 39) | 0x4020_1000;
    pt.map(iova, 0x1234_5000, KIB4, RW).unwrap();
    assert_eq!(
        entries(&pt, iova),
        vec![
            (B, 3, B + 0x1003),
            (B + 0x1000, 5, B + 0x2003),
            (B + 0x2000, 1, B + 0x3003),
            (B + 0x3000, 1, B + 0x4003),
            (B + 0x4000, 1, 0x1234_5003),
        ]
    );
    assert_eq!(pt.va_last(), (1 << 57) - 1);
    pt.map((1 << 57) - GIB1, 0x4000_0000, GIB1, RW).unwrap();
    assert_eq!(pt.walk((1 << 57) - 1).leaf.unwrap().entry, 0x4000_0083);
    assert!(pt.map(1 << 57, 0, KIB4, RW).is_err());
}

#[test]
fn fl4_entries_per_level() {
    let pt = table(VtdFl::new(4).unwrap());
    pt.map(0x4020_1000, 0x1234_5000, KIB4, RW).unwrap();
    assert_eq!(
        entries(&pt, 0x4020_1000),
        vec![
            (B, 0, 0x000F_0000_0000_1007),
            (B + 0x1000, 1, 0x000F_0000_0000_2007),
            (B + 0x2000, 1, 0x000F_0000_0000_3007),
            (B + 0x3000, 1, 0x1234_5007),
        ]
    );
    // Read-only: P|U/S, no R/W. IOMMU_CACHE has no first-stage bit.
    pt.map(0x4020_2000, 0x1234_6000, KIB4, IOMMU_READ | IOMMU_CACHE)
        .unwrap();
    assert_eq!(pt.mem().read(B + 0x3000, 2), 0x1234_6005);
    assert_eq!(
        pt.iova_to_phys(0x4020_2010),
        Some((0x1234_6010, IOMMU_READ, KIB4))
    );
    // Write-only cannot be expressed: it reads back read-write.
    pt.map(0x4020_3000, 0x1234_7000, KIB4, IOMMU_WRITE).unwrap();
    assert_eq!(pt.iova_to_phys(0x4020_3000).unwrap().1, RW);
    // 2 MiB and 1 GiB leaves carry PS.
    pt.map(0x4060_0000, 0x8020_0000, MIB2, RW).unwrap();
    assert_eq!(pt.mem().read(B + 0x2000, 3), 0x8020_0087);
    pt.map(2 * GIB1, 0x1_8000_0000, GIB1, IOMMU_READ).unwrap();
    assert_eq!(pt.mem().read(B + 0x1000, 2), 0x1_8000_0085);
    // The lower canonical half only.
    assert_eq!(pt.va_last(), (1 << 47) - 1);
    assert!(pt.map(1 << 47, 0, KIB4, RW).is_err());
}

#[test]
fn fl5_entries_per_level() {
    let pt = table(VtdFl::new(5).unwrap());
    let iova = (3 << 48) | (5 << 39) | 0x4020_1000;
    pt.map(iova, 0x1234_5000, KIB4, RW).unwrap();
    assert_eq!(
        entries(&pt, iova),
        vec![
            (B, 3, B + 0x1007),
            (B + 0x1000, 5, B + 0x2007),
            (B + 0x2000, 1, B + 0x3007),
            (B + 0x3000, 1, B + 0x4007),
            (B + 0x4000, 1, 0x1234_5007),
        ]
    );
    assert_eq!(pt.va_last(), (1 << 56) - 1);
}

#[test]
fn fl_huge_leaf_ignores_pat_and_needs_rw_at_every_level() {
    let fl = VtdFl::new(4).unwrap();
    // root[0] -> 0x1000, whose [0] -> 0x2000 (R/W clear), whose [0] is a 2 MiB
    // leaf with PAT (bit 12) set.
    let mem: HashMap<(u64, usize), u64> = [
        ((0, 0), 0x1000 | FL_P | FL_RW | FL_US),
        ((0x1000, 0), 0x2000 | FL_P | FL_US),
        ((0x2000, 0), 0x4000_1000 | FL_P | FL_RW | FL_PS),
    ]
    .into();
    let t = walk_foreign(&fl, 0, 0x1_2345, |t, i| {
        Ok::<_, Error>(mem.get(&(t, i)).copied().unwrap_or(0))
    })
    .unwrap();
    let leaf = t.leaf.unwrap();
    assert_eq!(leaf.phys, 0x4000_0000 + 0x1_2345);
    assert_eq!(leaf.prot, IOMMU_READ);
    assert_eq!((leaf.level, leaf.size_lg2), (1, 21));
    // A PS bit at a level that may not hold a leaf ends the walk without one.
    let bad: HashMap<(u64, usize), u64> = [((0, 0), 0x1000 | FL_P | FL_PS)].into();
    let t = walk_foreign(&fl, 0, 0, |t, i| {
        Ok::<_, Error>(bad.get(&(t, i)).copied().unwrap_or(0))
    })
    .unwrap();
    assert_eq!((t.leaf, t.steps().len()), (None, 1));
}

#[test]
fn mock_entries_per_level() {
    let pt = table(MockPt);
    pt.map(0x10_0800, 0x4_0000_0800, 0x800, RW).unwrap();
    assert_eq!(
        entries(&pt, 0x10_0800),
        vec![(B, 1, B + 0x1000 + 0x7), (B + 0x1000, 1, 0x4_0000_0807)]
    );
    pt.map(0x20_0000, 0x30_0000, 1 << 20, IOMMU_READ).unwrap();
    assert_eq!(pt.mem().read(B, 2), 0x30_000B);
    assert_eq!(
        pt.iova_to_phys(0x2f_ffff),
        Some((0x3f_ffff, IOMMU_READ, 1 << 20))
    );
    assert_eq!(pt.va_last(), (1 << 29) - 1);
    assert_eq!(pt.format().pgsize_bitmap(), 0x800 | 1 << 20);
}

#[test]
fn map_rejects_bad_arguments() {
    let pt = table(VtdSl::new(4).unwrap());
    assert_eq!(pt.map(0, 0, 0, RW), Err(Error::Invalid("zero length")));
    assert!(matches!(pt.map(0x800, 0, KIB4, RW), Err(Error::Invalid(_))));
    assert!(matches!(pt.map(0, 0x800, KIB4, RW), Err(Error::Invalid(_))));
    assert!(matches!(pt.map(0, 0, 0x1800, RW), Err(Error::Invalid(_))));
    assert!(matches!(
        pt.map(0, 0, KIB4, IOMMU_CACHE),
        Err(Error::Invalid(_))
    ));
    assert!(matches!(
        pt.map(u64::MAX - 0xfff, 0, 2 * KIB4, RW),
        Err(Error::Overflow(_))
    ));
    assert!(matches!(
        pt.map(0, 1 << 52, KIB4, RW),
        Err(Error::Invalid(_))
    ));
    assert_eq!(pt.mem().tables_in_use(), 1);
}

#[test]
fn largest_leaf_alignment_allows() {
    let pt = table(VtdSl::new(4).unwrap());
    // 4 KiB before the 1 GiB boundary, then 1 GiB, then 2 MiB + 4 KiB.
    let iova = GIB1 - KIB4;
    let len = KIB4 + GIB1 + MIB2 + KIB4;
    pt.map(iova, iova, len, RW).unwrap();
    let sizes: Vec<u64> = [iova, GIB1, 2 * GIB1, 2 * GIB1 + MIB2]
        .iter()
        .map(|&i| pt.iova_to_phys(i).unwrap().2)
        .collect();
    assert_eq!(sizes, vec![KIB4, GIB1, MIB2, KIB4]);
    // phys misaligned against iova by 4 KiB: only small pages.
    pt.map(8 * GIB1, 16 * GIB1 + KIB4, 4 * MIB2, RW).unwrap();
    assert_eq!(pt.iova_to_phys(8 * GIB1 + MIB2).unwrap().2, KIB4);
    // Without SLLPS 1 GiB: 2 MiB leaves.
    let pt = table(VtdSl::new(4).unwrap().with_max_leaf_level(1));
    pt.map(0, 0, GIB1, RW).unwrap();
    assert_eq!(pt.iova_to_phys(0).unwrap().2, MIB2);
    assert_eq!(pt.format().pgsize_bitmap(), KIB4 | MIB2);
}

#[test]
fn map_over_mapped_fails_and_leaves_nothing() {
    let pt = table(VtdSl::new(4).unwrap());
    pt.map(GIB1 + MIB2 + 5 * KIB4, 0x9000, KIB4, RW).unwrap();
    let tables = pt.mem().tables_in_use();
    // Would be 4 KiB pages up to the 2 MiB boundary, then collide in the next table.
    assert_eq!(pt.map(GIB1 + 5 * KIB4, 0, 2 * MIB2, RW), Err(Error::Exists));
    assert_eq!(pt.mem().tables_in_use(), tables);
    assert_eq!(pt.iova_to_phys(GIB1 + 5 * KIB4), None);
    assert_eq!(pt.iova_to_phys(GIB1 + MIB2), None);
    assert!(pt.iova_to_phys(GIB1 + MIB2 + 5 * KIB4).is_some());
    // A huge leaf in the way of a small map: the descent meets it.
    pt.map(4 * GIB1, 0, MIB2, RW).unwrap();
    assert_eq!(pt.map(4 * GIB1 + KIB4, 0, KIB4, RW), Err(Error::Exists));
    assert_eq!(pt.mem().tables_in_use(), tables + 1);
}

#[test]
fn failed_allocation_unwinds_at_every_point() {
    let pt = table(VtdSl::new(5).unwrap());
    pt.map(0, 0, KIB4, RW).unwrap();
    let tables = pt.mem().tables_in_use();
    // Crosses a level-3 boundary: needs many new tables.
    let (iova, len) = ((1 << 39) - 2 * MIB2, 4 * MIB2 + KIB4);
    let mut nth = 1;
    loop {
        inject::arm(nth);
        let r = pt.map(iova, 0x10_0000_0000, len, RW);
        inject::disarm();
        if r.is_ok() {
            break;
        }
        assert!(matches!(r, Err(Error::Injected { .. })));
        assert_eq!(pt.mem().tables_in_use(), tables, "after failing at {nth}");
        assert_eq!(pt.iova_to_phys(iova), None);
        assert_eq!(pt.iova_to_phys(1 << 39), None);
        nth += 1;
    }
    assert!(nth > 3);
    assert_eq!(pt.unmap(iova, len), len);
    assert_eq!(pt.mem().tables_in_use(), tables);

    // The arena's own limit.
    let pt = PageTable::new(VtdSl::new(4).unwrap(), TableArena::with_limit(3)).unwrap();
    assert_eq!(
        pt.map(0, 0, KIB4, RW),
        Err(Error::NoMem("page-table memory limit"))
    );
    assert_eq!(pt.mem().tables_in_use(), 1);
}

#[test]
fn unmap_huge_leaf_partly_covered_removes_all_of_it() {
    let pt = table(VtdSl::new(4).unwrap());
    pt.map(MIB2, 0, MIB2, RW).unwrap();
    pt.map(2 * MIB2, 0x1000_0000, 2 * KIB4, RW).unwrap();
    // One 4 KiB page inside the 2 MiB leaf, and the first small page after it.
    assert_eq!(pt.unmap(MIB2 + 16 * KIB4, MIB2 - 15 * KIB4), MIB2 + KIB4);
    assert_eq!(pt.iova_to_phys(MIB2), None);
    assert!(pt.iova_to_phys(2 * MIB2 + KIB4).is_some());
    // Holes are skipped.
    assert_eq!(pt.unmap(0, 1 << 40), KIB4);
    assert_eq!(pt.unmap(0, 1 << 40), 0);
    assert_eq!(pt.unmap(u64::MAX, 1), 0);
    assert_eq!(pt.unmap(0, 0), 0);
    assert_eq!(pt.mem().tables_in_use(), 1);
}

#[test]
fn freed_tables_are_reused() {
    let pt = table(VtdSl::new(4).unwrap());
    pt.map(0, 0, KIB4, RW).unwrap();
    let before = entries(&pt, 0);
    assert_eq!(pt.unmap(0, KIB4), KIB4);
    assert_eq!(pt.mem().tables_in_use(), 1);
    pt.map(0, 0, KIB4, RW).unwrap();
    let mut again: Vec<u64> = entries(&pt, 0).iter().map(|e| e.0).collect();
    let mut first: Vec<u64> = before.iter().map(|e| e.0).collect();
    again.sort();
    first.sort();
    assert_eq!(again, first);
}

fn collect_dirty<F: PtFormat>(
    pt: &PageTable<F>,
    iova: u64,
    len: u64,
    no_clear: bool,
) -> Vec<(u64, u64)> {
    let mut out = Vec::new();
    pt.read_and_clear_dirty(iova, len, no_clear, &mut |i, l| out.push((i, l)));
    out
}

fn dma<F: PtFormat>(pt: &PageTable<F>, iova: u64, write: bool) {
    let t = pt.walk(iova);
    assert!(pt.mark_accessed(&t, write));
}

#[test]
fn dirty_read_and_clear() {
    for sl in [true, false] {
        let run = |pt: &PageTable<_>, a: u64, d: u64| {
            pt.map(0, 0, 8 * KIB4, RW).unwrap();
            pt.map(MIB2, 0x4000_0000, MIB2, RW).unwrap();
            dma(pt, 0, false);
            dma(pt, KIB4, true);
            dma(pt, 2 * KIB4 + 5, true);
            dma(pt, 5 * KIB4, true);
            dma(pt, MIB2 + 0x1234, true);
            let leaf = pt.walk(0).leaf.unwrap();
            assert_eq!(leaf.entry & (a | d), a);
            let leaf = pt.walk(KIB4).leaf.unwrap();
            assert_eq!(leaf.entry & (a | d), a | d);
            let want = vec![(KIB4, 2 * KIB4), (5 * KIB4, KIB4), (MIB2, MIB2)];
            assert_eq!(collect_dirty(pt, 0, 4 * MIB2, true), want);
            assert_eq!(collect_dirty(pt, 0, 4 * MIB2, false), want);
            assert_eq!(collect_dirty(pt, 0, 4 * MIB2, false), vec![]);
            // Access bits stay; a range inside the huge leaf reports all of it.
            assert_eq!(pt.walk(KIB4).leaf.unwrap().entry & a, a);
            dma(pt, MIB2, true);
            assert_eq!(
                collect_dirty(pt, MIB2 + KIB4, KIB4, false),
                vec![(MIB2, MIB2)]
            );
        };
        if sl {
            run(&table(VtdSl::new(4).unwrap()), SL_A, SL_D);
        } else {
            let pt = table(VtdFl::new(4).unwrap());
            pt.map(0, 0, 8 * KIB4, RW).unwrap();
            dma(&pt, 3 * KIB4, true);
            assert_eq!(collect_dirty(&pt, 0, MIB2, false), vec![(3 * KIB4, KIB4)]);
            assert_eq!(pt.walk(3 * KIB4).leaf.unwrap().entry & (FL_A | FL_D), FL_A);
        }
    }
    let pt = table(MockPt);
    pt.map(0, 0, 1 << 20, RW).unwrap();
    dma(&pt, 0x800, true);
    assert_eq!(collect_dirty(&pt, 0, 1 << 29, false), vec![(0, 1 << 20)]);
}

#[test]
fn mark_accessed_refuses_a_changed_leaf() {
    let pt = table(VtdSl::new(4).unwrap());
    pt.map(0, 0, KIB4, RW).unwrap();
    let stale = pt.walk(0);
    pt.unmap(0, KIB4);
    pt.map(0, KIB4, KIB4, RW).unwrap();
    assert!(!pt.mark_accessed(&stale, true));
    assert_eq!(pt.walk(0).leaf.unwrap().entry & (SL_A | SL_D), 0);
    assert!(!pt.mark_accessed(&pt.walk(MIB2), true));
}

/// Copies an owned tree into "guest memory" at other addresses, as a guest's
/// stage-1 tables would be: `(gpa -> table)` plus the new root.
fn copy_tree<F: PtFormat>(pt: &PageTable<F>, gpa_base: u64) -> (HashMap<u64, Vec<u64>>, u64) {
    fn copy<F: PtFormat>(
        pt: &PageTable<F>,
        table: u64,
        level: u32,
        out: &mut HashMap<u64, Vec<u64>>,
        next: &mut u64,
    ) -> u64 {
        let gpa = *next;
        *next += KIB4;
        let mut t = vec![0; TABLE_ENTRIES];
        for (i, e) in t.iter_mut().enumerate() {
            let entry = pt.mem().read(table, i);
            *e = if pt.format().present(entry) && level > 0 && !pt.format().is_leaf(entry, level) {
                let child = copy(pt, pt.format().table_phys(entry), level - 1, out, next);
                pt.format().make_table(child)
            } else {
                entry
            };
        }
        out.insert(gpa, t);
        gpa
    }
    let mut out = HashMap::new();
    let mut next = gpa_base;
    let root = copy(pt, pt.root(), pt.format().levels() - 1, &mut out, &mut next);
    (out, root)
}

#[test]
fn foreign_walk_matches_owned_walk() {
    let pt = table(VtdFl::new(4).unwrap());
    pt.map(0x4020_1000, 0x1234_5000, 3 * KIB4, RW).unwrap();
    pt.map(0x8000_0000, 0x2_0000_0000, GIB1 + MIB2, IOMMU_READ)
        .unwrap();
    pt.map(0x7f_0000_0000, 0x3000, KIB4, IOMMU_WRITE).unwrap();
    // Guest tables at GPA 0x100_0000 up; "stage 2" maps GPA g to g + 0x5000_0000.
    let (guest, root) = copy_tree(&pt, 0x100_0000);
    let host: HashMap<u64, Vec<u64>> = guest
        .into_iter()
        .map(|(g, t)| (g + 0x5000_0000, t))
        .collect();
    let mut reads = 0;
    for iova in [
        0x4020_1000,
        0x4020_3fff,
        0x4020_4000,
        0x8000_0000,
        0x8123_4567,
        0xc01f_ffff,
        0xc020_0000,
        0x7f_0000_0010,
        0,
        (1 << 47) - 1,
        1 << 47,
    ] {
        let foreign = walk_foreign(pt.format(), root, iova, |gpa, i| {
            reads += 1;
            host.get(&(gpa + 0x5000_0000))
                .map(|t| t[i])
                .ok_or(Error::Fault { addr: gpa })
        })
        .unwrap();
        let owned = pt.walk(iova);
        assert_eq!(foreign.leaf, owned.leaf, "{iova:#x}");
        assert_eq!(foreign.steps().len(), owned.steps().len());
        assert_eq!(
            foreign.steps().iter().map(|s| s.index).collect::<Vec<_>>(),
            owned.steps().iter().map(|s| s.index).collect::<Vec<_>>()
        );
    }
    assert!(reads > 20);
    // A table address stage 2 does not map: the closure's error ends the walk.
    let r = walk_foreign(pt.format(), root, 0x4020_1000, |gpa, _| {
        if gpa == root {
            Ok(host[&(root + 0x5000_0000)][0])
        } else {
            Err(Error::Fault { addr: gpa })
        }
    });
    assert!(matches!(r, Err(Error::Fault { .. })));
}

#[test]
fn concurrent_readers_see_consistent_translations() {
    let pt = table(VtdSl::new(4).unwrap());
    // Stable: 0..4 MiB. Churn: 1 GiB up, mapped and unmapped with both sizes.
    pt.map(0, 0x10_0000_0000, 2 * MIB2, RW).unwrap();
    let stop = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|s| {
        for r in 0..2u64 {
            let (pt, stop) = (&pt, &stop);
            s.spawn(move || {
                let mut i = r;
                while !stop.load(Ordering::Relaxed) {
                    i = i
                        .wrapping_mul(6364136223846793005)
                        .wrapping_add(1442695040888963407);
                    let off = (i >> 20) % (2 * MIB2);
                    assert_eq!(pt.iova_to_phys(off), Some((0x10_0000_0000 + off, RW, MIB2)));
                    let churn = GIB1 + off;
                    if let Some((phys, prot, size)) = pt.iova_to_phys(churn) {
                        assert_eq!(phys, 0x20_0000_0000 + off);
                        assert_eq!(prot, IOMMU_READ);
                        assert!(size == KIB4 || size == MIB2);
                    }
                    let t = pt.walk(churn);
                    pt.mark_accessed(&t, true);
                }
            });
        }
        for round in 0..300u64 {
            let phys = if round % 2 == 0 {
                0x20_0000_0000
            } else {
                0x20_0000_0000 + KIB4
            };
            let iova = GIB1 + (phys - 0x20_0000_0000);
            pt.map(iova, phys, 2 * MIB2 - KIB4, IOMMU_READ).unwrap();
            assert_eq!(pt.unmap(iova, 2 * MIB2 - KIB4), 2 * MIB2 - KIB4);
        }
        stop.store(true, Ordering::Relaxed);
    });
    assert_eq!(pt.mem().tables_in_use(), 3);
}

#[test]
fn arena_addresses_are_stable_and_checked() {
    let arena = TableArena::new();
    let tables: Vec<u64> = (0..100).map(|_| arena.alloc().unwrap()).collect();
    for (n, &t) in tables.iter().enumerate() {
        assert_eq!(t, B + ((n as u64) << 12));
        arena.write(t, 511, n as u64 + 1);
    }
    for (n, &t) in tables.iter().enumerate() {
        assert_eq!(arena.read(t, 511), n as u64 + 1);
    }
    // Not a table, misaligned, out of range: read 0, writes ignored.
    assert_eq!(arena.read(0x1000, 0), 0);
    assert_eq!(arena.read(B + 8, 0), 0);
    assert_eq!(arena.read(B + (1000 << 12), 0), 0);
    assert_eq!(arena.read(tables[0], 512), 0);
    arena.write(B + (1000 << 12), 0, 1);
    assert_eq!(arena.tables_in_use(), 100);
}

// ---- model-based property test ----

/// The model: extents `start -> (last, phys, prot)`, never overlapping.
#[derive(Default, Debug)]
struct Model(BTreeMap<u64, (u64, u64, u32)>);

impl Model {
    fn overlaps(&self, start: u64, last: u64) -> bool {
        self.0
            .range(..=last)
            .next_back()
            .is_some_and(|(_, &(l, _, _))| l >= start)
    }

    fn lookup(&self, iova: u64) -> Option<(u64, u32)> {
        let (&s, &(l, phys, prot)) = self.0.range(..=iova).next_back()?;
        (l >= iova).then_some((phys + (iova - s), prot))
    }

    /// Removes `[start, last]`; returns the bytes removed.
    fn remove(&mut self, start: u64, last: u64) -> u64 {
        let hit: Vec<u64> = self
            .0
            .range(..=last)
            .filter(|(_, &(l, _, _))| l >= start)
            .map(|(&s, _)| s)
            .collect();
        let mut bytes = 0;
        for s in hit {
            let (l, phys, prot) = self.0.remove(&s).unwrap();
            if s < start {
                self.0.insert(s, (start - 1, phys, prot));
            }
            if l > last {
                self.0.insert(last + 1, (l, phys + (last + 1 - s), prot));
            }
            bytes += l.min(last) - s.max(start) + 1;
        }
        bytes
    }
}

#[derive(Clone, Debug)]
enum Op {
    Map {
        iova: Pos,
        len: Pos,
        phys: Pos,
        write: bool,
    },
    Unmap {
        iova: Pos,
        len: Pos,
    },
    Query {
        iova: Pos,
    },
}

/// A value made of page sizes: `mult << lg2s[size] + jitter` granules.
#[derive(Clone, Copy, Debug)]
struct Pos {
    size: usize,
    mult: u64,
    jitter: u64,
}

fn pos(mult: u64) -> impl Strategy<Value = Pos> {
    (0..3usize, 0..mult, 0..3u64).prop_map(|(size, mult, jitter)| Pos { size, mult, jitter })
}

fn ops() -> impl Strategy<Value = Vec<Op>> {
    let op = prop_oneof![
        3 => (pos(6), pos(3), pos(6), any::<bool>())
            .prop_map(|(iova, len, phys, write)| Op::Map { iova, len, phys, write }),
        2 => (pos(6), pos(3)).prop_map(|(iova, len)| Op::Unmap { iova, len }),
        2 => pos(7).prop_map(|iova| Op::Query { iova }),
    ];
    prop::collection::vec(op, 1..16)
}

fn run_model<F: PtFormat>(fmt: F, ops: &[Op]) {
    let pt = table(fmt);
    let lg2s: Vec<u32> = (0..fmt.levels())
        .filter(|&l| fmt.leaf_ok(l))
        .map(|l| fmt.item_lg2(l))
        .collect();
    let granule = 1u64 << lg2s[0];
    let val = |p: Pos| (p.mult << lg2s[p.size.min(lg2s.len() - 1)]) + p.jitter * granule;
    let mut model = Model::default();
    for op in ops {
        match *op {
            Op::Map {
                iova,
                len,
                phys,
                write,
            } => {
                let (iova, phys) = (val(iova), val(phys));
                let len = val(len).max(granule);
                let last = iova + len - 1;
                let prot = if write { RW } else { IOMMU_READ };
                let r = pt.map(iova, phys, len, prot);
                if last > pt.va_last() {
                    assert!(matches!(r, Err(Error::Invalid(_))));
                } else if model.overlaps(iova, last) {
                    assert_eq!(r, Err(Error::Exists));
                } else {
                    r.unwrap();
                    model.0.insert(iova, (last, phys, prot));
                    // Greedy leaf choice: the largest size both addresses and the
                    // rest of the length allow.
                    // Every leaf of a short map; the first and last 2048 of a long one.
                    let mut at = iova;
                    let mut leaves = 0;
                    while at <= last {
                        leaves += 1;
                        if leaves == 2048 && last - at > (2048 * granule) << 9 {
                            at = (last + 1 - 2048 * granule) >> (lg2s[0] + 9) << (lg2s[0] + 9);
                            at = at.max(iova);
                        }
                        let ph = phys + (at - iova);
                        let want = lg2s
                            .iter()
                            .rev()
                            .map(|&l| 1u64 << l)
                            .find(|&s| (at | ph) % s == 0 && s <= last - at + 1)
                            .unwrap();
                        assert_eq!(pt.iova_to_phys(at), Some((ph, prot, want)));
                        at += want;
                    }
                }
            }
            Op::Unmap { iova, len } => {
                let (iova, len) = (val(iova), val(len).max(granule));
                let last = (iova + len - 1).min(pt.va_last());
                // Leaves at either end may stick out; they go as a whole.
                let leaf_start =
                    |i: u64| pt.walk(i).leaf.map_or(i, |l| i >> l.size_lg2 << l.size_lg2);
                let leaf_last = |i: u64| pt.walk(i).leaf.map_or(i, |l| i | ((1 << l.size_lg2) - 1));
                let want = if iova > pt.va_last() {
                    0
                } else {
                    model.remove(leaf_start(iova), leaf_last(last))
                };
                assert_eq!(pt.unmap(iova, len), want);
            }
            Op::Query { iova } => {
                let iova = val(iova) + granule / 2;
                let got = pt.iova_to_phys(iova).map(|(p, prot, _)| (p, prot));
                assert_eq!(got, model.lookup(iova), "query {iova:#x}");
            }
        }
        for (&s, &(l, phys, prot)) in &model.0 {
            assert_eq!(pt.iova_to_phys(s).map(|m| (m.0, m.1)), Some((phys, prot)));
            assert_eq!(
                pt.iova_to_phys(l).map(|m| (m.0, m.1)),
                Some((phys + (l - s), prot))
            );
        }
    }
    let total: u64 = model.0.iter().map(|(&s, &(l, _, _))| l - s + 1).sum();
    assert_eq!(pt.unmap(0, pt.va_last() + 1), total);
    assert_eq!(pt.mem().tables_in_use(), 1);
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 64,
        max_shrink_iters: 512,
        ..ProptestConfig::default()
    })]

    #[test]
    fn model_vtd_sl4(ops in ops()) {
        run_model(VtdSl::new(4).unwrap(), &ops);
    }

    #[test]
    fn model_vtd_sl5(ops in ops()) {
        run_model(VtdSl::new(5).unwrap(), &ops);
    }

    #[test]
    fn model_vtd_fl4(ops in ops()) {
        run_model(VtdFl::new(4).unwrap(), &ops);
    }

    #[test]
    fn model_mock(ops in ops()) {
        run_model(MockPt, &ops);
    }
}
