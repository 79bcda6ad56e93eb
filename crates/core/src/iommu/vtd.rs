//! An Intel VT-d IOMMU: its capability registers, paging domains in the real
//! first- and second-stage formats, nested domains whose stage-1 table lives in
//! the user's memory, IOTLBs, and the driver that the iommufd core talks to.
//!
//! The driver behaves as Linux's `intel-iommu` does towards iommufd (the
//! behaviour is written down in `shared/notes`-style notes, not code): a paging
//! domain without flags is first-stage when the unit has first-stage
//! translation; `NEST_PARENT` or `DIRTY_TRACKING` make it second-stage; every
//! combination the unit cannot do is EOPNOTSUPP at allocation and every
//! incompatibility at attach is EINVAL. A nest parent refuses read-only maps
//! (erratum 772415, which `GET_HW_INFO` reports). Nested allocation checks only
//! the data type, the flags and the parent; the stage-1 configuration
//! (`addr_width`, `SRE`, `EAFE`) is checked at attach, as the hardware's PASID
//! entry is programmed then.
//!
//! # Translation
//!
//! Each domain has its own [`Iotlb`], which stands for the IOTLB entries the
//! hardware tags with the domain's DID. A DMA translation looks there first and
//! walks the table only on a miss; nothing leaves the IOTLB but an invalidation.
//! The driver invalidates what the core changes (unmap, dirty-bit clearing); the
//! stage-1 table of a nested domain is the user's, so changes to it are seen only
//! after the user's `IOMMU_HWPT_INVALIDATE` — until then the old translation is
//! served, exactly as on hardware. An unmap of the nesting parent drops every
//! cached translation of its nested domains (which GPA a nested entry went
//! through is not known, so the driver flushes them whole, as Linux does).
//!
//! A nested walk reads each stage-1 table entry at its guest-physical address,
//! translated through stage 2 and read from machine memory; the stage-1 leaf's
//! output address goes through stage 2 again. The result is the smaller of the
//! two pages, with the permissions both allow. Hardware sets the stage-1 access
//! (and, for writes, dirty) bit in the user's table; so does this model, through
//! stage 2.
//!
//! Second-stage A/D bits are set by DMA only while dirty tracking is on (the
//! PASID entry's SSADE); first-stage A/D bits always. A cached translation
//! remembers whether its dirty bit is known set, so a write that hits an entry
//! filled by a read walks again to set it — and clearing dirty bits invalidates
//! the range, as the core's IOTLB sync does.
//!
//! A nested domain also has a paging-structure cache: the stage-1 table-pointer
//! entries its walks read, by level and IOVA, used instead of the user's table
//! on later walks. An invalidation with `IOMMU_VTD_INV_FLAGS_LEAF` (only leaves
//! changed) keeps it; one without drops it, as the invalidation hint does on
//! hardware. So a guest that rewrites a directory entry and invalidates with
//! the leaf hint keeps walking the old table.
//!
//! Not modelled: PASID tables and context entries in memory (a device's PASID
//! attachments are the [`super::Device`] attachment table), second-stage
//! paging-structure caches, device TLBs, caching mode, interrupt remapping.

use super::dma::{DmaFence, Translation};
use super::iotlb::Iotlb;
use super::pt::vtd::{VtdFl, VtdSl, ADDR_MASK, FL_A, FL_D};
use super::pt::{walk_foreign, PageTable, PtFormat};
use super::{
    Device, Domain, Driver, NestedDomain, PagingFlags, UserData, UserDataArray, IOMMU_CACHE,
    IOMMU_READ, IOMMU_WRITE,
};
use crate::error::{Error, Result};
use crate::mem::{PhysMemory, PAGE_SIZE};
use crate::range::IovaRange;
use softiommu_uapi::iommufd::{
    iommu_hw_info_vtd, iommu_hwpt_vtd_s1, iommu_hwpt_vtd_s1_invalidate, IOMMU_HWPT_ALLOC_PASID,
    IOMMU_HWPT_DATA_VTD_S1, IOMMU_HWPT_INVALIDATE_DATA_VTD_S1, IOMMU_HW_INFO_TYPE_DEFAULT,
    IOMMU_HW_INFO_TYPE_INTEL_VTD, IOMMU_HW_INFO_VTD_ERRATA_772415_SPR17, IOMMU_VTD_INV_FLAGS_LEAF,
    IOMMU_VTD_S1_EAFE, IOMMU_VTD_S1_SRE,
};
use std::any::Any;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use zerocopy::IntoBytes;

/// A VT-d unit's capability and extended capability registers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VtdCaps {
    /// `CAP_REG`.
    pub cap: u64,
    /// `ECAP_REG`.
    pub ecap: u64,
}

fn bit(reg: u64, b: u32) -> bool {
    reg >> b & 1 != 0
}

impl Default for VtdCaps {
    /// A modern scalable-mode unit (Sapphire Rapids-like): 4- and 5-level
    /// second stage, 57-bit guest addresses, 2 MiB and 1 GiB pages in both
    /// stages, snoop control, nesting, page requests, 20-bit PASIDs,
    /// second-stage A/D bits.
    fn default() -> VtdCaps {
        VtdCaps {
            cap: 0xd9d2_078c_4078_0c66,
            ecap: 0x3_ef9c_a4f0_50df,
        }
    }
}

impl VtdCaps {
    /// `SAGAW`: supported second-stage depths (bit 2: 4-level, bit 3: 5-level).
    pub fn sagaw(&self) -> u64 {
        self.cap >> 8 & 0x1f
    }
    /// `MGAW + 1`: the widest guest address in bits.
    pub fn mgaw(&self) -> u32 {
        (self.cap >> 16 & 0x3f) as u32 + 1
    }
    /// `SLLPS`: second-stage large pages (bit 0: 2 MiB, bit 1: 1 GiB).
    pub fn sllps(&self) -> u64 {
        self.cap >> 34 & 0xf
    }
    /// `FL1GP`: first-stage 1 GiB pages.
    pub fn fl1gp(&self) -> bool {
        bit(self.cap, 56)
    }
    /// `FL5LP`: first-stage 5-level paging.
    pub fn fl5lp(&self) -> bool {
        bit(self.cap, 60)
    }
    /// `SC`: snoop control.
    pub fn sc(&self) -> bool {
        bit(self.ecap, 7)
    }
    /// `SMTS`: scalable mode.
    pub fn smts(&self) -> bool {
        bit(self.ecap, 43)
    }
    /// Nested translation (scalable mode and `NEST`).
    pub fn nested(&self) -> bool {
        self.smts() && bit(self.ecap, 26)
    }
    /// Second-stage A/D bits (scalable mode and `SSADS`).
    pub fn ssads(&self) -> bool {
        self.smts() && bit(self.ecap, 45)
    }
    /// First-stage translation (scalable mode and `FSTS`).
    pub fn fsts(&self) -> bool {
        self.smts() && bit(self.ecap, 47)
    }
    /// Second-stage translation (`SSTS` in scalable mode).
    pub fn ssts(&self) -> bool {
        !self.smts() || bit(self.ecap, 46)
    }
    /// `SRS`: supervisor requests.
    pub fn srs(&self) -> bool {
        bit(self.ecap, 31)
    }
    /// `EAFS`: extended accessed flag.
    pub fn eafs(&self) -> bool {
        bit(self.ecap, 34)
    }
    /// log2 of the PASIDs the unit supports (`PSS + 1`), 0 without PASIDs.
    pub fn pasid_lg2(&self) -> u8 {
        if self.smts() && bit(self.ecap, 40) {
            (self.ecap >> 35 & 0x1f) as u8 + 1
        } else {
            0
        }
    }

    /// The second-stage depth and address width for this unit, if any.
    fn ss_levels(&self) -> Option<(u32, u32)> {
        let mgaw = self.mgaw();
        if mgaw > 48 && self.sagaw() & 1 << 3 != 0 {
            Some((5, mgaw.min(57)))
        } else if mgaw > 39 && self.sagaw() & 1 << 2 != 0 {
            Some((4, mgaw.min(48)))
        } else {
            None
        }
    }

    /// The first-stage depth and address width for this unit.
    fn fs_levels(&self) -> (u32, u32) {
        let mgaw = self.mgaw();
        if mgaw > 48 && self.fl5lp() {
            (5, mgaw.min(57))
        } else {
            (4, mgaw.min(48))
        }
    }
}

/// The page table of a VT-d paging domain: first or second stage.
#[derive(Debug)]
enum Table {
    First(PageTable<VtdFl>),
    Second(PageTable<VtdSl>),
}

/// Runs `$body` with `$pt` bound to the domain's page table, whatever its format.
macro_rules! with_table {
    ($table:expr, $pt:ident => $body:expr) => {
        match $table {
            Table::First($pt) => $body,
            Table::Second($pt) => $body,
        }
    };
}

/// A VT-d paging domain.
#[derive(Debug)]
pub struct VtdDomain {
    table: Table,
    aperture: IovaRange,
    pgsize_bitmap: u64,
    flags: PagingFlags,
    iotlb: Iotlb,
    fence: DmaFence,
    /// Dirty tracking on (second stage: the PASID entry's SSADE).
    tracking: AtomicBool,
    /// Every map sets the snoop bit (enforce_cache_coherency happened).
    force_snoop: AtomicBool,
    /// Whether the unit that made it has snoop control.
    unit_sc: bool,
    /// Nested domains on this parent, for invalidation.
    children: Mutex<Vec<Weak<VtdNestedDomain>>>,
}

impl VtdDomain {
    /// Whether it is a second-stage domain.
    pub fn second_stage(&self) -> bool {
        matches!(self.table, Table::Second(_))
    }

    /// The domain's IOTLB.
    pub fn iotlb(&self) -> &Iotlb {
        &self.iotlb
    }

    /// The physical address of the root table.
    pub fn root(&self) -> u64 {
        with_table!(&self.table, pt => pt.root())
    }

    /// The raw leaf entry mapping `iova`, if any (for tests).
    pub fn leaf_entry(&self, iova: u64) -> Option<u64> {
        with_table!(&self.table, pt => pt.walk(iova).leaf.map(|l| l.entry))
    }

    /// Walks the table (no IOTLB): the translation of `iova` and whether the
    /// leaf's dirty bit is now set. Sets A (and D for `write`) as the hardware
    /// does: always in the first stage, in the second only while tracking.
    fn walk(&self, iova: u64, write: bool) -> Option<(Translation, bool)> {
        let set_ad = !self.second_stage() || self.tracking.load(Ordering::Relaxed);
        with_table!(&self.table, pt => {
            let t = pt.walk(iova);
            let leaf = t.leaf?;
            let size = 1u64 << leaf.size_lg2;
            let tr = Translation {
                iova: iova & !(size - 1),
                phys: leaf.phys & !(size - 1),
                size,
                prot: leaf.prot & (IOMMU_READ | IOMMU_WRITE),
            };
            if !tr.allows(write) {
                return None;
            }
            let mut dirty = pt.format().dirty(leaf.entry);
            if set_ad && pt.mark_accessed(&t, write) && write {
                dirty = true;
            }
            Some((tr, dirty))
        })
    }

    fn flush(&self, iova: u64, last: u64) {
        self.iotlb.invalidate(iova, last);
        let children = self.children.lock().unwrap_or_else(|e| e.into_inner());
        for c in children.iter().filter_map(Weak::upgrade) {
            c.flush_all();
        }
    }
}

impl Domain for VtdDomain {
    fn aperture(&self) -> IovaRange {
        self.aperture
    }

    fn pgsize_bitmap(&self) -> u64 {
        self.pgsize_bitmap
    }

    fn map(&self, iova: u64, phys: u64, len: u64, prot: u32) -> Result<()> {
        if self.flags.nest_parent && prot & IOMMU_WRITE == 0 {
            return Err(Error::Invalid(
                "read-only map in a nesting parent (erratum 772415)",
            ));
        }
        let range = IovaRange::from_len(iova, len).ok_or(Error::Overflow("map range"))?;
        if !self.aperture.contains(&range) {
            return Err(Error::Invalid("map outside the aperture"));
        }
        let mut prot = prot & (IOMMU_READ | IOMMU_WRITE);
        if self.force_snoop.load(Ordering::Relaxed) {
            prot |= IOMMU_CACHE;
        }
        with_table!(&self.table, pt => pt.map(iova, phys, len, prot))
    }

    fn unmap(&self, iova: u64, len: u64) -> u64 {
        let Some(range) = IovaRange::from_len(iova, len) else {
            return 0;
        };
        let n = with_table!(&self.table, pt => pt.unmap(iova, len));
        // Every cached page overlapping the range goes, a huge one partly
        // covered included (it was unmapped whole).
        self.flush(range.start, range.last);
        self.fence.drain();
        n
    }

    fn iova_to_phys(&self, iova: u64) -> Option<u64> {
        with_table!(&self.table, pt => pt.iova_to_phys(iova).map(|(p, _, _)| p))
    }

    fn translate(&self, iova: u64, write: bool) -> Option<Translation> {
        if let Some(c) = self.iotlb.lookup(iova) {
            if !c.translation.allows(write) {
                return None;
            }
            // A write through an entry whose dirty bit is not known set walks.
            let tracked = !self.second_stage() || self.tracking.load(Ordering::Relaxed);
            if !write || c.dirty || !tracked {
                return Some(c.translation);
            }
        }
        let (t, dirty) = self.walk(iova, write)?;
        self.iotlb.fill(t, dirty);
        Some(t)
    }

    fn fence(&self) -> &DmaFence {
        &self.fence
    }

    fn has_dirty_ops(&self) -> bool {
        self.flags.dirty_tracking
    }

    fn enforce_cache_coherency(&self) -> bool {
        if !self.unit_sc {
            return false;
        }
        self.force_snoop.store(true, Ordering::Relaxed);
        true
    }

    fn set_dirty_tracking(&self, enable: bool) -> Result<()> {
        if !self.has_dirty_ops() {
            return Err(Error::NotSupported("domain has no dirty tracking"));
        }
        self.tracking.store(enable, Ordering::Relaxed);
        // Cached entries say nothing about dirty bits set under the old mode.
        self.iotlb.invalidate_all();
        Ok(())
    }

    fn read_and_clear_dirty(
        &self,
        iova: u64,
        length: u64,
        no_clear: bool,
        report: Option<&mut dyn FnMut(u64, u64)>,
    ) -> Result<()> {
        if !self.has_dirty_ops() {
            return Err(Error::NotSupported("domain has no dirty tracking"));
        }
        let mut ignore = |_: u64, _: u64| {};
        let report = report.unwrap_or(&mut ignore);
        with_table!(&self.table, pt => pt.read_and_clear_dirty(iova, length, no_clear, report));
        if !no_clear && length > 0 {
            // The core's IOTLB sync after clearing: the next write must walk.
            self.iotlb.invalidate(iova, iova.saturating_add(length - 1));
        }
        Ok(())
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// A nested domain: the user's stage-1 table on a second-stage parent.
#[derive(Debug)]
pub struct VtdNestedDomain {
    parent: Arc<VtdDomain>,
    cfg: iommu_hwpt_vtd_s1,
    fmt: VtdFl,
    flags: u32,
    iotlb: Iotlb,
    /// The paging-structure cache: stage-1 table-pointer entries by (level,
    /// IOVA >> the bytes an entry of that level covers).
    psc: Mutex<HashMap<(u32, u64), u64>>,
    mem: Arc<dyn PhysMemory>,
}

impl VtdNestedDomain {
    /// The stage-1 configuration the user gave.
    pub fn config(&self) -> iommu_hwpt_vtd_s1 {
        self.cfg
    }

    /// The domain's IOTLB.
    pub fn iotlb(&self) -> &Iotlb {
        &self.iotlb
    }

    /// Drops every cached translation and table entry.
    fn flush_all(&self) {
        self.iotlb.invalidate_all();
        self.flush_psc();
    }

    fn flush_psc(&self) {
        self.psc.lock().unwrap_or_else(|e| e.into_inner()).clear();
    }

    /// The `IOMMU_HWPT_ALLOC_*` flags it was allocated with.
    pub fn flags(&self) -> u32 {
        self.flags
    }

    /// Reads the stage-1 entry `index` of the table at guest-physical `table`.
    fn read_s1(&self, table: u64, index: usize) -> Option<u64> {
        let gpa = table + index as u64 * 8;
        let (t, _) = self.parent.walk(gpa, false)?;
        let mut e = [0u8; 8];
        self.mem.read(t.phys + (gpa - t.iova), &mut e).ok()?;
        Some(u64::from_le_bytes(e))
    }

    /// Sets the stage-1 leaf's access (and dirty) bit in the user's table, as
    /// hardware does, through stage 2 (which must allow the write).
    fn set_s1_ad(&self, table: u64, index: usize, entry: u64, write: bool) {
        let want = entry | FL_A | if write { FL_D } else { 0 };
        if want == entry {
            return;
        }
        let gpa = table + index as u64 * 8;
        if let Some((t, _)) = self.parent.walk(gpa, true) {
            let _ = self.mem.write(t.phys + (gpa - t.iova), &want.to_le_bytes());
        }
    }

    /// The two-stage walk of `iova`.
    fn walk(&self, iova: u64, write: bool) -> Option<(Translation, bool)> {
        let root = self.cfg.pgtbl_addr & ADDR_MASK;
        // Table-pointer entries come from the paging-structure cache when it
        // has them (stale or not), and go into it when read.
        let mut level = self.fmt.levels();
        let mut psc = self.psc.lock().unwrap_or_else(|e| e.into_inner());
        let t1 = walk_foreign(&self.fmt, root, iova, |table, index| {
            level -= 1;
            if level == 0 {
                return self.read_s1(table, index).ok_or(());
            }
            let key = (level, iova >> self.fmt.item_lg2(level));
            if let Some(&e) = psc.get(&key) {
                return Ok(e);
            }
            let e = self.read_s1(table, index).ok_or(())?;
            if self.fmt.present(e) && !self.fmt.is_leaf(e, level) {
                psc.insert(key, e);
            }
            Ok(e)
        })
        .ok()?;
        drop(psc);
        let leaf = t1.leaf?;
        let s1_size = 1u64 << leaf.size_lg2;
        let s1 = Translation {
            iova: iova & !(s1_size - 1),
            phys: leaf.phys & !(s1_size - 1),
            size: s1_size,
            prot: leaf.prot & (IOMMU_READ | IOMMU_WRITE),
        };
        if !s1.allows(write) {
            return None;
        }
        let gpa = leaf.phys;
        let (s2, s2_dirty) = self.parent.walk(gpa, write)?;
        let step = t1.steps().last()?;
        self.set_s1_ad(step.table, step.index, leaf.entry, write);
        // Whether a later write through the cached entry needs no walk: both
        // dirty bits that matter are set.
        let dirty = (write || leaf.entry & FL_D != 0)
            && (s2_dirty || !self.parent.tracking.load(Ordering::Relaxed));
        let size = s1.size.min(s2.size);
        let t = Translation {
            iova: iova & !(size - 1),
            phys: (s2.phys + (gpa - s2.iova)) & !(size - 1),
            size,
            prot: s1.prot & s2.prot,
        };
        Some((t, dirty))
    }
}

impl NestedDomain for VtdNestedDomain {
    fn cache_invalidate_user(&self, array: &mut UserDataArray<'_>) -> Result<()> {
        let min_len = std::mem::size_of::<iommu_hwpt_vtd_s1_invalidate>();
        array.for_each_entry(
            IOMMU_HWPT_INVALIDATE_DATA_VTD_S1,
            min_len,
            |inv: iommu_hwpt_vtd_s1_invalidate| {
                if inv.flags & !IOMMU_VTD_INV_FLAGS_LEAF != 0 || inv.__reserved != 0 {
                    return Err(Error::NotSupported("invalidation flags"));
                }
                if !inv.addr.is_multiple_of(PAGE_SIZE) || (inv.npages == u64::MAX && inv.addr != 0)
                {
                    return Err(Error::Invalid("invalidation range"));
                }
                // A range past the top (or "all") flushes everything; zero
                // pages flushes the one page at `addr`, as an address mask of
                // zero does.
                let last = inv
                    .npages
                    .max(1)
                    .checked_mul(PAGE_SIZE)
                    .and_then(|len| inv.addr.checked_add(len - 1));
                match last {
                    Some(last) => self.iotlb.invalidate(inv.addr, last),
                    None => self.iotlb.invalidate_all(),
                }
                // Without the leaf hint, table entries may have changed too.
                if inv.flags & IOMMU_VTD_INV_FLAGS_LEAF == 0 {
                    self.flush_psc();
                }
                Ok(())
            },
        )
    }

    fn translate(&self, iova: u64, write: bool) -> Option<Translation> {
        if let Some(c) = self.iotlb.lookup(iova) {
            if !c.translation.allows(write) {
                return None;
            }
            if !write || c.dirty {
                return Some(c.translation);
            }
        }
        let (t, dirty) = self.walk(iova, write)?;
        self.iotlb.fill(t, dirty);
        Some(t)
    }

    fn fence(&self) -> &DmaFence {
        self.parent.fence()
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// Device flags of a VT-d device: the low 5 bits are the width of its PCI PASID
/// capability (0: none).
pub const VTD_DEVICE_PASID_WIDTH_MASK: u32 = 0x1f;

/// The driver of one VT-d unit.
#[derive(Debug)]
pub struct VtdDriver {
    caps: VtdCaps,
    mem: Arc<dyn PhysMemory>,
}

impl VtdDriver {
    /// The driver of a unit with `caps`, whose DMA reaches `mem`.
    pub fn new(caps: VtdCaps, mem: Arc<dyn PhysMemory>) -> Arc<VtdDriver> {
        Arc::new(VtdDriver { caps, mem })
    }

    /// The unit's registers.
    pub fn caps(&self) -> VtdCaps {
        self.caps
    }

    fn first_stage(&self, flags: PagingFlags) -> Result<VtdDomain> {
        let (levels, width) = self.caps.fs_levels();
        let fmt = VtdFl::new(levels)?.with_max_leaf_level(if self.caps.fl1gp() { 2 } else { 1 });
        let pgsize_bitmap = fmt.pgsize_bitmap();
        Ok(self.domain(
            Table::First(PageTable::new(fmt, Default::default())?),
            // Sign-extended addresses: the lower half only.
            (1u64 << (width - 1)) - 1,
            pgsize_bitmap,
            flags,
        ))
    }

    fn second_stage(&self, flags: PagingFlags) -> Result<VtdDomain> {
        if flags.nest_parent && !self.caps.nested() {
            return Err(Error::NotSupported("unit cannot nest"));
        }
        if flags.dirty_tracking && !self.caps.ssads() {
            return Err(Error::NotSupported("unit has no second-stage dirty bits"));
        }
        let Some((levels, width)) = self.caps.ss_levels().filter(|_| self.caps.ssts()) else {
            return Err(Error::NotSupported("unit has no second stage"));
        };
        let large = match self.caps.sllps() & 3 {
            0 => 0,
            1 => 1,
            _ => 2,
        };
        let fmt = VtdSl::new(levels)?.with_max_leaf_level(large);
        let pgsize_bitmap = fmt.pgsize_bitmap();
        Ok(self.domain(
            Table::Second(PageTable::new(fmt, Default::default())?),
            u64::MAX >> (64 - width),
            pgsize_bitmap,
            flags,
        ))
    }

    fn domain(&self, table: Table, last: u64, pgsize_bitmap: u64, flags: PagingFlags) -> VtdDomain {
        VtdDomain {
            table,
            aperture: IovaRange::new(0, last),
            pgsize_bitmap,
            flags,
            iotlb: Iotlb::new(pgsize_bitmap),
            fence: DmaFence::default(),
            tracking: AtomicBool::new(false),
            force_snoop: AtomicBool::new(false),
            unit_sc: self.caps.sc(),
            children: Mutex::default(),
        }
    }

    /// EINVAL unless this unit can translate through `d`.
    fn compatible(&self, d: &VtdDomain) -> Result<()> {
        let c = &self.caps;
        let ok = match &d.table {
            Table::First(pt) => {
                c.fsts()
                    && (pt.format().levels() < 5 || c.fl5lp())
                    && (d.pgsize_bitmap >> 30 & 1 == 0 || c.fl1gp())
            }
            Table::Second(pt) => {
                let levels = pt.format().levels();
                (!d.flags.dirty_tracking || c.ssads())
                    && (!d.flags.nest_parent || c.nested())
                    && c.ssts()
                    && c.sagaw() & 1 << (levels - 2) != 0
                    && d.aperture.last >> c.mgaw().min(63) == 0
                    && (d.pgsize_bitmap >> 21 & 1 == 0 || c.sllps() & 1 != 0)
                    && (d.pgsize_bitmap >> 30 & 1 == 0 || c.sllps() & 2 != 0)
                    && (!d.force_snoop.load(Ordering::Relaxed) || c.sc())
            }
        };
        if ok {
            Ok(())
        } else {
            Err(Error::Invalid("domain incompatible with this VT-d unit"))
        }
    }
}

impl Driver for VtdDriver {
    fn domain_alloc_paging(&self, _dev: &Device, flags: PagingFlags) -> Result<Arc<dyn Domain>> {
        let domain = if !flags.nest_parent && !flags.dirty_tracking && self.caps.fsts() {
            self.first_stage(flags)?
        } else {
            self.second_stage(flags)?
        };
        Ok(Arc::new(domain))
    }

    fn attach_check(&self, domain: &dyn Domain, _dev: &Device) -> Result<()> {
        let d = domain
            .as_any()
            .downcast_ref::<VtdDomain>()
            .ok_or(Error::Invalid("not a VT-d domain"))?;
        self.compatible(d)
    }

    fn domain_alloc_nested(
        &self,
        _dev: &Device,
        parent: &Arc<dyn Domain>,
        flags: u32,
        data: &UserData<'_>,
    ) -> Result<Arc<dyn NestedDomain>> {
        if !self.caps.nested() || flags & !IOMMU_HWPT_ALLOC_PASID != 0 {
            return Err(Error::NotSupported("nested VT-d domain flags"));
        }
        if data.data_type != IOMMU_HWPT_DATA_VTD_S1 {
            return Err(Error::NotSupported("nested VT-d domain data type"));
        }
        let any: Arc<dyn Any + Send + Sync> = parent.clone();
        let parent = match any.downcast::<VtdDomain>() {
            Ok(p) if p.second_stage() && p.flags.nest_parent => p,
            _ => return Err(Error::Invalid("parent is not a VT-d nesting parent")),
        };
        let cfg: iommu_hwpt_vtd_s1 = data.copy_struct(
            IOMMU_HWPT_DATA_VTD_S1,
            std::mem::size_of::<iommu_hwpt_vtd_s1>(),
        )?;
        let levels = if cfg.addr_width == 57 { 5 } else { 4 };
        let fmt = VtdFl::new(levels)?.with_max_leaf_level(if self.caps.fl1gp() { 2 } else { 1 });
        let nested = Arc::new(VtdNestedDomain {
            cfg,
            iotlb: Iotlb::new(fmt.pgsize_bitmap()),
            psc: Mutex::default(),
            fmt,
            flags,
            mem: self.mem.clone(),
            parent: parent.clone(),
        });
        let mut children = parent.children.lock().unwrap_or_else(|e| e.into_inner());
        children.retain(|w| w.strong_count() > 0);
        children.push(Arc::downgrade(&nested));
        Ok(nested)
    }

    fn attach_check_nested(&self, domain: &dyn NestedDomain, _dev: &Device) -> Result<()> {
        let d = domain
            .as_any()
            .downcast_ref::<VtdNestedDomain>()
            .ok_or(Error::Invalid("not a VT-d nested domain"))?;
        let cfg = &d.cfg;
        let width_ok = cfg.addr_width == 48 || (cfg.addr_width == 57 && self.caps.fl5lp());
        if !width_ok
            || (cfg.flags & IOMMU_VTD_S1_SRE != 0 && !self.caps.srs())
            || (cfg.flags & IOMMU_VTD_S1_EAFE != 0 && !self.caps.eafs())
        {
            return Err(Error::Invalid("stage-1 configuration unsupported"));
        }
        self.compatible(&d.parent)
    }

    fn set_dev_pasid(&self, _dev: &Device, _pasid: u32, _attach: bool) -> Result<()> {
        if self.caps.pasid_lg2() == 0 {
            return Err(Error::NotSupported("unit has no PASIDs"));
        }
        Ok(())
    }

    fn hw_info(&self, _dev: &Device, in_type: u32) -> Result<(u32, Vec<u8>)> {
        if in_type != IOMMU_HW_INFO_TYPE_DEFAULT && in_type != IOMMU_HW_INFO_TYPE_INTEL_VTD {
            return Err(Error::NotSupported("hw_info type"));
        }
        let info = iommu_hw_info_vtd {
            flags: IOMMU_HW_INFO_VTD_ERRATA_772415_SPR17,
            __reserved: 0,
            cap_reg: self.caps.cap,
            ecap_reg: self.caps.ecap,
        };
        Ok((IOMMU_HW_INFO_TYPE_INTEL_VTD, info.as_bytes().to_vec()))
    }

    fn dirty_tracking_capable(&self, _dev: &Device) -> bool {
        self.caps.ssads()
    }

    fn enforce_cache_coherency_capable(&self, _dev: &Device) -> bool {
        // Snoop control: the unit can set the snoop bit on every mapping.
        self.caps.sc()
    }

    fn max_pasid_log2(&self, dev: &Device) -> u8 {
        let dev_width = (dev.flags & VTD_DEVICE_PASID_WIDTH_MASK) as u8;
        dev_width.min(self.caps.pasid_lg2())
    }
}
