//! An IOTLB: the translations a hardware IOMMU caches, and keeps using until
//! software invalidates them.
//!
//! A fixed number of entries, direct-mapped by (page size, page number): a walk
//! fills the entry its page hashes to, evicting whatever was there, and a lookup
//! probes one entry per page size the domain uses. Nothing but an invalidation
//! removes an entry early, so a translation changed in the page table without an
//! invalidation keeps being served from here — as on hardware, and as tests must
//! be able to observe.
//!
//! Lookups take no lock: each entry is a small seqlock (a sequence word that is
//! odd while a writer is in the entry, then the tag and the value), so a reader
//! that races a writer retries or misses, and never sees half an entry. Writers
//! (fills and invalidations) claim an entry by moving its sequence from even to
//! odd.

use super::dma::Translation;
use super::{IOMMU_READ, IOMMU_WRITE};
use std::sync::atomic::{AtomicU64, Ordering};

/// Entries in an IOTLB.
pub const IOTLB_ENTRIES: usize = 1024;

/// Ranges of fewer small pages than this are invalidated page by page.
const SCAN_THRESHOLD: u64 = 64;
/// Value bit: the page's dirty bit is known to be set, so a write needs no walk.
const VAL_DIRTY: u64 = 1 << 2;
/// Value bits: `IOMMU_READ | IOMMU_WRITE`.
const VAL_PROT: u64 = (IOMMU_READ | IOMMU_WRITE) as u64;
/// Tag bit: the entry is valid.
const TAG_VALID: u64 = 1;

#[derive(Debug, Default)]
struct Entry {
    seq: AtomicU64,
    /// `page number << 8 | size_lg2 << 1 | TAG_VALID`.
    tag: AtomicU64,
    /// `phys | VAL_DIRTY? | prot`.
    val: AtomicU64,
}

/// A cached translation: what a lookup returns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cached {
    /// The translation.
    pub translation: Translation,
    /// Whether the page's dirty bit is known to be set.
    pub dirty: bool,
}

/// An IOTLB.
#[derive(Debug)]
pub struct Iotlb {
    entries: Box<[Entry]>,
    /// The page sizes lookups probe, as log2s, smallest first.
    sizes_lg2: Vec<u8>,
}

fn tag(iova: u64, size_lg2: u8) -> u64 {
    (iova >> size_lg2) << 8 | u64::from(size_lg2) << 1 | TAG_VALID
}

impl Iotlb {
    /// An empty IOTLB for a domain with the page sizes of `pgsize_bitmap`.
    pub fn new(pgsize_bitmap: u64) -> Iotlb {
        let sizes_lg2 = (0..64u8)
            .filter(|b| pgsize_bitmap & (1 << b) != 0)
            .collect();
        Iotlb {
            entries: (0..IOTLB_ENTRIES).map(|_| Entry::default()).collect(),
            sizes_lg2,
        }
    }

    fn index(iova: u64, size_lg2: u8) -> usize {
        let key = (iova >> size_lg2) ^ u64::from(size_lg2) << 40;
        (key.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 54) as usize % IOTLB_ENTRIES
    }

    /// The cached translation of `iova`, if any.
    pub fn lookup(&self, iova: u64) -> Option<Cached> {
        for &lg2 in &self.sizes_lg2 {
            let e = &self.entries[Self::index(iova, lg2)];
            let seq = e.seq.load(Ordering::Acquire);
            if seq & 1 != 0 {
                continue;
            }
            let (t, v) = (e.tag.load(Ordering::Acquire), e.val.load(Ordering::Acquire));
            if e.seq.load(Ordering::Acquire) != seq || t != tag(iova, lg2) {
                continue;
            }
            let size = 1u64 << lg2;
            return Some(Cached {
                translation: Translation {
                    iova: iova & !(size - 1),
                    phys: v & !(size - 1),
                    size,
                    prot: (v & VAL_PROT) as u32,
                },
                dirty: v & VAL_DIRTY != 0,
            });
        }
        None
    }

    /// Runs `f` on the entry at `index` with writers excluded.
    fn with_entry(&self, index: usize, f: impl FnOnce(&Entry)) {
        let e = &self.entries[index];
        let mut seq = e.seq.load(Ordering::Relaxed);
        loop {
            if seq & 1 != 0 {
                std::hint::spin_loop();
                seq = e.seq.load(Ordering::Relaxed);
                continue;
            }
            match e
                .seq
                .compare_exchange_weak(seq, seq + 1, Ordering::Acquire, Ordering::Relaxed)
            {
                Ok(_) => break,
                Err(s) => seq = s,
            }
        }
        f(e);
        e.seq.store(seq + 2, Ordering::Release);
    }

    /// Caches `t` (a page of a size the IOTLB was made for).
    pub fn fill(&self, t: Translation, dirty: bool) {
        let lg2 = t.size.trailing_zeros() as u8;
        debug_assert!(self.sizes_lg2.contains(&lg2));
        let val = t.phys | u64::from(t.prot) & VAL_PROT | if dirty { VAL_DIRTY } else { 0 };
        self.with_entry(Self::index(t.iova, lg2), |e| {
            e.tag.store(tag(t.iova, lg2), Ordering::Release);
            e.val.store(val, Ordering::Release);
        });
    }

    /// Drops every cached page that overlaps `[iova, last]`.
    pub fn invalidate(&self, iova: u64, last: u64) {
        let overlaps = |t: u64| {
            let lg2 = ((t >> 1) & 0x7f) as u32;
            let start = (t >> 8) << lg2;
            t & TAG_VALID != 0 && start <= last && iova <= start + ((1u64 << lg2) - 1)
        };
        let drop_entry = |i: usize| {
            if overlaps(self.entries[i].tag.load(Ordering::Acquire)) {
                self.with_entry(i, |e| {
                    // Refilled since we looked: keep it unless it overlaps too.
                    if overlaps(e.tag.load(Ordering::Relaxed)) {
                        e.tag.store(0, Ordering::Release);
                    }
                });
            }
        };
        // A short range probes the entries its pages hash to; a long one scans.
        let small_pages = (last - iova) >> self.sizes_lg2.first().copied().unwrap_or(12);
        if small_pages < SCAN_THRESHOLD {
            for &lg2 in &self.sizes_lg2 {
                let mut page = iova >> lg2;
                while page <= last >> lg2 {
                    drop_entry(Self::index(page << lg2, lg2));
                    page += 1;
                }
            }
        } else {
            (0..IOTLB_ENTRIES).for_each(drop_entry);
        }
    }

    /// Drops everything.
    pub fn invalidate_all(&self) {
        self.invalidate(0, u64::MAX);
    }

    /// How many entries are valid (for tests).
    pub fn len(&self) -> usize {
        self.entries
            .iter()
            .filter(|e| e.tag.load(Ordering::Acquire) & TAG_VALID != 0)
            .count()
    }

    /// Whether nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(iova: u64, phys: u64, size: u64) -> Translation {
        Translation {
            iova,
            phys,
            size,
            prot: IOMMU_READ | IOMMU_WRITE,
        }
    }

    #[test]
    fn fill_lookup_invalidate() {
        let tlb = Iotlb::new(4096 | 1 << 21);
        assert!(tlb.lookup(0x1000).is_none());
        tlb.fill(t(0x1000, 0x5000, 4096), false);
        tlb.fill(t(0x40_0000, 0x80_0000, 1 << 21), true);
        let c = tlb.lookup(0x1234).unwrap();
        assert_eq!(c.translation, t(0x1000, 0x5000, 4096));
        assert!(!c.dirty);
        let c = tlb.lookup(0x41_2345).unwrap();
        assert_eq!(c.translation, t(0x40_0000, 0x80_0000, 1 << 21));
        assert!(c.dirty);
        assert!(tlb.lookup(0x2000).is_none());
        assert_eq!(tlb.len(), 2);
        // An invalidation of one byte of the huge page drops all of it.
        tlb.invalidate(0x5f_ffff, 0x5f_ffff);
        assert!(tlb.lookup(0x41_2345).is_none());
        assert!(tlb.lookup(0x1000).is_some());
        tlb.invalidate_all();
        assert!(tlb.is_empty());
    }

    #[test]
    fn concurrent_readers_never_see_torn_entries() {
        let tlb = std::sync::Arc::new(Iotlb::new(4096));
        let writer = {
            let tlb = tlb.clone();
            std::thread::spawn(move || {
                for i in 0..20_000u64 {
                    // Every fill keeps phys == iova * 2, so a torn entry shows.
                    let iova = (i % 4096) << 12;
                    tlb.fill(t(iova, iova * 2, 4096), false);
                    if i % 7 == 0 {
                        tlb.invalidate(iova, iova);
                    }
                }
            })
        };
        for i in 0..200_000u64 {
            let iova = (i % 4096) << 12;
            if let Some(c) = tlb.lookup(iova) {
                assert_eq!(c.translation.phys, c.translation.iova * 2);
                assert_eq!(c.translation.iova, iova);
            }
        }
        writer.join().unwrap();
    }
}
