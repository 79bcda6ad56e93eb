//! The IO page table: which IOVA maps which pages, and the domains that mirror it.
//!
//! An [`IoPagetable`] is the data behind an IOAS. It holds
//! - *areas*: non-overlapping IOVA ranges, each a slice of one [`Pages`];
//! - *reserved* ranges, which nothing may map (outside a domain's aperture, a
//!   device's reserved regions, the selftest's `ADD_RESERVED`), each with an owner so
//!   it goes when its owner does;
//! - *allowed* ranges: when any are set, automatic IOVA allocation stays inside them;
//! - the *domains* loaded from it, and the IOVA alignment every area must keep,
//!   the largest minimum page size of its domains and accesses.
//!
//! Invariants, checked by [`super::check`]:
//! - no area intersects a reserved range, and every area is aligned (IOVA, length
//!   and offset within its first page) to `iova_alignment`;
//! - when there is at least one domain, every area holds its index range of its
//!   pages (so they are pinned) and is mapped, whole, in every domain; with no
//!   domain no area holds anything;
//! - every domain maps exactly the areas and nothing else.
//!
//! Every operation here either completes or changes nothing. The owner ([`super::ioas::Ioas`])
//! guards an `IoPagetable` with one mutex; callbacks to accesses happen outside it.

use super::pages::Pages;
use crate::error::{Error, Result};
use crate::inject;
use crate::iommu::Domain;
use crate::mem::{PAGE_SHIFT, PAGE_SIZE};
use crate::range::{IovaRange, RangeMap};
use std::sync::Arc;

/// A slice of one [`Pages`] mapped at an IOVA range.
#[derive(Clone, Debug)]
pub struct Area {
    /// The pages.
    pub pages: Arc<Pages>,
    /// Byte offset in `pages` of the area's first IOVA.
    pub start_byte: u64,
    /// `IOMMU_*` permissions of the mapping.
    pub prot: u32,
    /// Access pins inside the area.
    pub num_accesses: u32,
    /// An unmap is waiting for accesses to let go: no new access pins.
    pub prevent_access: bool,
}

impl Area {
    /// The page indexes of `pages` behind the IOVA range `r` of this area.
    pub fn index_range(&self, area: IovaRange, r: IovaRange) -> IovaRange {
        let first = self.start_byte + (r.start - area.start);
        let last = self.start_byte + (r.last - area.start);
        IovaRange::new(first >> PAGE_SHIFT, last >> PAGE_SHIFT)
    }

    /// Byte offset in the pages of `iova`, an IOVA of the area `area`.
    pub fn start_byte_at(&self, area: IovaRange, iova: u64) -> u64 {
        self.start_byte + (iova - area.start)
    }
}

/// Who a reserved range belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReservedOwner {
    /// Added by the selftest's `ADD_RESERVED`; stays for the IOAS's life.
    Test,
    /// Outside the aperture of a domain (identified by its address).
    Domain(usize),
    /// A device's reserved region (identified by the iommufd device ID).
    Device(u32),
}

/// A slice of pages to map: what `IOMMU_IOAS_COPY` takes from the source IOAS.
#[derive(Clone, Debug)]
pub struct PagesSlice {
    /// The pages.
    pub pages: Arc<Pages>,
    /// Byte offset of the slice in the pages.
    pub start_byte: u64,
    /// Length in bytes.
    pub length: u64,
}

/// Identity of a domain inside an IO page table.
pub fn domain_key(domain: &Arc<dyn Domain>) -> usize {
    Arc::as_ptr(domain) as *const () as usize
}

/// The IOVA-to-pages map of one IOAS.
#[derive(Debug)]
pub struct IoPagetable {
    pub(crate) areas: RangeMap<Area>,
    pub(crate) allowed: RangeMap<()>,
    /// Reserved ranges; ranges of different owners may overlap.
    pub(crate) reserved: Vec<(IovaRange, ReservedOwner)>,
    /// The union of `reserved`, kept up to date by `reserve`/`remove_reserved`.
    reserved_union: RangeMap<()>,
    /// `[PAGE_SIZE, covered_to)` is all mapped or reserved: the automatic IOVA
    /// search starts its walk here instead of at the bottom, which keeps packing
    /// mappings one after another logarithmic. Only a hint: lowered whenever
    /// something below it is freed.
    covered_to: u64,
    pub(crate) domains: Vec<Arc<dyn Domain>>,
    /// (access id, IOVA alignment the access needs).
    pub(crate) accesses: Vec<(u32, u64)>,
    pub(crate) iova_alignment: u64,
    pub(crate) disable_large_pages: bool,
}

impl Default for IoPagetable {
    fn default() -> Self {
        IoPagetable {
            areas: RangeMap::new(),
            allowed: RangeMap::new(),
            reserved: Vec::new(),
            reserved_union: RangeMap::new(),
            covered_to: PAGE_SIZE,
            domains: Vec::new(),
            accesses: Vec::new(),
            // A table without domains is software only: any byte alignment works.
            iova_alignment: 1,
            disable_large_pages: false,
        }
    }
}

fn align_up(x: u64, align: u64) -> Option<u64> {
    Some(x.checked_add(align - 1)? & !(align - 1))
}

/// Places `length` bytes inside `span` at `align` plus `page_offset`.
fn fit(span: IovaRange, length: u64, align: u64, page_offset: u64) -> Option<u64> {
    if span.last - span.start < length - 1 {
        return None;
    }
    let start = align_up(span.start, align)? | page_offset;
    (start <= span.last && span.last - start >= length - 1).then_some(start)
}

impl IoPagetable {
    /// The IOVA alignment every mapping must keep.
    pub fn iova_alignment(&self) -> u64 {
        self.iova_alignment
    }

    /// Whether large pages are disabled (`IOMMU_OPTION_HUGE_PAGES` 0).
    pub fn large_pages_disabled(&self) -> bool {
        self.disable_large_pages
    }

    /// The domains loaded from this table.
    pub fn domains(&self) -> &[Arc<dyn Domain>] {
        &self.domains
    }

    /// The areas, in IOVA order.
    pub fn areas(&self) -> impl Iterator<Item = (IovaRange, &Area)> + '_ {
        self.areas.iter()
    }

    /// The reserved ranges with their owners.
    pub fn reserved(&self) -> impl Iterator<Item = (IovaRange, &ReservedOwner)> + '_ {
        self.reserved.iter().map(|(r, o)| (*r, o))
    }

    /// Where the automatic IOVA search starts (everything from `PAGE_SIZE` below
    /// it is mapped or reserved).
    pub fn covered_to(&self) -> u64 {
        self.covered_to
    }

    /// The union of the reserved ranges.
    pub fn reserved_union(&self) -> &RangeMap<()> {
        &self.reserved_union
    }

    fn rebuild_reserved_union(&mut self) {
        let mut sorted: Vec<IovaRange> = self.reserved.iter().map(|(r, _)| *r).collect();
        sorted.sort();
        let mut union = RangeMap::new();
        let mut cur: Option<IovaRange> = None;
        for r in sorted {
            match cur {
                Some(c) if c.last == u64::MAX || r.start <= c.last + 1 => {
                    cur = Some(IovaRange::new(c.start, c.last.max(r.last)));
                }
                Some(c) => {
                    union.insert(c, ());
                    cur = Some(r);
                }
                None => cur = Some(r),
            }
        }
        if let Some(c) = cur {
            union.insert(c, ());
        }
        self.reserved_union = union;
        self.covered_to = PAGE_SIZE;
        self.advance_covered();
    }

    /// Moves `covered_to` past the mappings and reservations that hold it.
    fn advance_covered(&mut self) {
        loop {
            let at = self.covered_to;
            let held = match self.areas.find(at) {
                Some((r, _)) => Some(r),
                None => self.reserved_union.find(at).map(|(r, _)| r),
            };
            match held.and_then(|r| r.last.checked_add(1)) {
                Some(next) => self.covered_to = next,
                None => return,
            }
        }
    }

    fn reserved_overlaps(&self, range: IovaRange) -> bool {
        self.reserved.iter().any(|(r, _)| r.overlaps(&range))
    }

    /// The allowed ranges.
    pub fn allowed(&self) -> Vec<IovaRange> {
        self.allowed.iter().map(|(r, _)| r).collect()
    }

    /// The usable IOVA ranges: the gaps between reserved ranges.
    pub fn iova_ranges(&self) -> Vec<IovaRange> {
        self.reserved_union.holes(IovaRange::ALL)
    }

    /// Picks a free IOVA for `length` bytes whose source address is `addr`: aligned
    /// as far as the length and the address allow (to keep huge pages possible),
    /// inside the allowed ranges, never 0.
    fn alloc_iova(&self, addr: u64, length: u64) -> Result<u64> {
        if length == 0 || length >= u64::MAX / 2 {
            return Err(Error::Overflow("length"));
        }
        let page_offset = addr % PAGE_SIZE;
        let mut align = length.next_power_of_two();
        if addr != 0 {
            align = align.min(1 << addr.trailing_zeros());
        }
        if align < self.iova_alignment {
            return Err(Error::Invalid("address alignment below the IOVA alignment"));
        }
        let window = IovaRange::new(PAGE_SIZE, u64::MAX - PAGE_SIZE);
        let allowed: Vec<IovaRange> = if self.allowed.is_empty() {
            vec![window]
        } else {
            self.allowed
                .iter()
                .filter_map(|(r, _)| r.intersect(&window))
                .collect()
        };
        for span in allowed {
            let Some(start) = fit(span, length, align, page_offset) else {
                continue;
            };
            // Nothing is free below covered_to, so the walk can start there.
            let Some(span) = IovaRange::new(start, span.last)
                .intersect(&IovaRange::new(self.covered_to, u64::MAX))
            else {
                continue;
            };
            for reserved_hole in self.reserved_union.holes_iter(span) {
                for hole in self.areas.holes_iter(reserved_hole) {
                    if let Some(iova) = fit(hole, length, align, page_offset) {
                        return Ok(iova);
                    }
                }
            }
        }
        Err(Error::NoSpace)
    }

    /// Checks that `[iova, iova + length)` can take a new mapping.
    fn check_iova(&self, iova: u64, length: u64) -> Result<IovaRange> {
        if iova & (self.iova_alignment - 1) != 0 {
            return Err(Error::Invalid("IOVA not aligned"));
        }
        let range = IovaRange::from_len(iova, length).ok_or(Error::Overflow("IOVA + length"))?;
        if self.reserved_overlaps(range) {
            return Err(Error::Invalid("IOVA range reserved"));
        }
        if self.areas.first_overlap(range).is_some() {
            return Err(Error::Exists);
        }
        Ok(range)
    }

    /// Maps `slices` back to back at `iova` (or at a free IOVA when `None`);
    /// returns the IOVA. Pins and fills the domains when there are any.
    pub fn map_pages(
        &mut self,
        slices: &[PagesSlice],
        length: u64,
        iova: Option<u64>,
        prot: u32,
    ) -> Result<u64> {
        if length == 0 || length & (self.iova_alignment - 1) != 0 {
            return Err(Error::Invalid("length not aligned"));
        }
        let first = slices.first().ok_or(Error::Invalid("nothing to map"))?;
        let iova = match iova {
            None => {
                let iova = self.alloc_iova(first.pages.base_addr() + first.start_byte, length)?;
                debug_assert!(self.check_iova(iova, length).is_ok());
                iova
            }
            Some(iova) => self.check_iova(iova, length)?.start,
        };
        let mut new = Vec::with_capacity(slices.len());
        let mut at = iova;
        for s in slices {
            if prot & crate::iommu::IOMMU_WRITE != 0 && !s.pages.writable() {
                return Err(Error::Perm("pages are not writable"));
            }
            if (s.start_byte % PAGE_SIZE) & (self.iova_alignment - 1) != 0 {
                return Err(Error::Invalid("offset in page not aligned"));
            }
            // A copy's slices end where the source areas end; in a table with a
            // larger alignment than the source's, a slice may start unaligned.
            if at & (self.iova_alignment - 1) != 0 {
                return Err(Error::Invalid("slice IOVA not aligned"));
            }
            let range =
                IovaRange::from_len(at, s.length).ok_or(Error::Overflow("IOVA + length"))?;
            let area = Area {
                pages: s.pages.clone(),
                start_byte: s.start_byte,
                prot,
                num_accesses: 0,
                prevent_access: false,
            };
            debug_assert!(area.index_range(range, range).last < s.pages.npages());
            new.push((range, area));
            at = at.wrapping_add(s.length);
        }
        inject::point("iopt insert area")?;
        for i in 0..new.len() {
            if let Err(e) = self.fill_area(new[i].0, &new[i].1) {
                for (r, a) in &new[..i] {
                    self.unfill_area(*r, a);
                }
                return Err(e);
            }
        }
        for (r, a) in new {
            self.areas.insert(r, a);
        }
        self.advance_covered();
        Ok(iova)
    }

    /// Maps an area into `domain`, piece by piece of contiguous frames. On failure
    /// the domain is left as it was.
    fn map_area(&self, domain: &dyn Domain, range: IovaRange, area: &Area) -> Result<()> {
        let indexes = area.index_range(range, range);
        let end_byte = area.start_byte + (range.last - range.start) + 1;
        let mut byte = area.start_byte;
        let mut iova = range.start;
        let mut index = indexes.start;
        let result = (|| {
            for run in area.pages.frames(indexes) {
                let run_first = index << PAGE_SHIFT;
                let run_end = (index + run.npages) << PAGE_SHIFT;
                while byte < run_end.min(end_byte) {
                    let mut piece_end = run_end.min(end_byte);
                    if self.disable_large_pages {
                        // Page by page, so no huge IOPTE can form and a later
                        // split (VFIO compat) never cuts one.
                        piece_end = piece_end.min((byte & !(PAGE_SIZE - 1)) + PAGE_SIZE);
                    }
                    let len = piece_end - byte;
                    domain.map(iova, run.phys + (byte - run_first), len, area.prot)?;
                    byte += len;
                    iova += len;
                }
                index += run.npages;
            }
            Ok(())
        })();
        if result.is_err() && iova > range.start {
            domain.unmap(range.start, iova - range.start);
        }
        result
    }

    /// Pins an area's pages and maps it in every domain; nothing when there is no
    /// domain. On failure nothing changes.
    fn fill_area(&self, range: IovaRange, area: &Area) -> Result<()> {
        if self.domains.is_empty() {
            return Ok(());
        }
        let indexes = area.index_range(range, range);
        area.pages.hold(indexes)?;
        for (i, d) in self.domains.iter().enumerate() {
            if let Err(e) = self.map_area(&**d, range, area) {
                for d in &self.domains[..i] {
                    d.unmap(range.start, range.last - range.start + 1);
                }
                area.pages.release(indexes);
                return Err(e);
            }
        }
        Ok(())
    }

    /// Undoes [`IoPagetable::fill_area`].
    fn unfill_area(&self, range: IovaRange, area: &Area) {
        if self.domains.is_empty() {
            return;
        }
        for d in &self.domains {
            d.unmap(range.start, range.last - range.start + 1);
        }
        area.pages.release(area.index_range(range, range));
    }

    /// Checks an unmap of `range` can go ahead: every area it touches lies inside
    /// it. Returns the areas that accesses still pin (marking them so that no new
    /// pins start), which must be released before the unmap.
    pub fn unmap_check(&mut self, range: IovaRange) -> Result<Vec<IovaRange>> {
        let mut pinned = Vec::new();
        for (r, _) in self.areas.overlapping(range) {
            if !range.contains(&r) {
                return Err(Error::NotMapped("unmap range cuts a mapping"));
            }
        }
        for start in self.areas.overlapping_starts(range) {
            let area = self.areas.get_mut(start).expect("area just found");
            if area.num_accesses > 0 {
                area.prevent_access = true;
                pinned.push(self.areas.get(start).expect("area just found").0);
            }
        }
        Ok(pinned)
    }

    /// Removes every area inside `range` (after [`IoPagetable::unmap_check`]);
    /// returns the bytes unmapped.
    pub fn unmap_areas(&mut self, range: IovaRange) -> u64 {
        let mut unmapped = 0u64;
        for start in self.areas.overlapping_starts(range) {
            let (r, area) = self.areas.remove(start).expect("area just found");
            self.covered_to = self.covered_to.min(r.start);
            debug_assert_eq!(area.num_accesses, 0);
            self.unfill_area(r, &area);
            unmapped = unmapped.saturating_add(r.len().unwrap_or(u64::MAX));
        }
        unmapped
    }

    /// The slices of pages behind `[iova, iova + length)`, which must be mapped
    /// without a gap (ENOENT otherwise).
    pub fn get_pages(&self, iova: u64, length: u64) -> Result<Vec<PagesSlice>> {
        if length == 0 {
            return Err(Error::Invalid("length"));
        }
        let range = IovaRange::from_len(iova, length).ok_or(Error::Overflow("IOVA + length"))?;
        let mut out = Vec::new();
        self.for_each_contig(range, |r, sub, area| {
            out.push(PagesSlice {
                pages: area.pages.clone(),
                start_byte: area.start_byte_at(r, sub.start),
                length: sub.last - sub.start + 1,
            });
            Ok(())
        })?;
        inject::point("iopt get pages")?;
        Ok(out)
    }

    /// Calls `f(area range, covered part, area)` for the areas covering `range`
    /// back to back; ENOENT where a gap is.
    pub fn for_each_contig(
        &self,
        range: IovaRange,
        mut f: impl FnMut(IovaRange, IovaRange, &Area) -> Result<()>,
    ) -> Result<()> {
        let mut cur = range.start;
        for (r, area) in self.areas.overlapping(range) {
            if r.start > cur {
                break;
            }
            let sub = IovaRange::new(cur, r.last.min(range.last));
            f(r, sub, area)?;
            if sub.last == range.last {
                return Ok(());
            }
            cur = sub.last + 1;
        }
        Err(Error::NotMapped("IOVA range not fully mapped"))
    }

    /// The checks of `IOMMU_HWPT_GET_DIRTY_BITMAP`'s range (the kernel's
    /// `iommufd_check_iova_range`): EOVERFLOW when `iova + length - 1` does not
    /// fit, EINVAL when either end is not aligned to the table's IOVA alignment or
    /// to `page_size`, or `page_size` is 0.
    pub fn check_dirty_range(&self, iova: u64, length: u64, page_size: u64) -> Result<()> {
        let last = iova
            .checked_add(length.wrapping_sub(1))
            .ok_or(Error::Overflow("IOVA + length"))?;
        let end = last.wrapping_add(1);
        let align = self.iova_alignment;
        if iova & (align - 1) != 0 || end & (align - 1) != 0 {
            return Err(Error::Invalid(
                "dirty range not aligned to the IOVA alignment",
            ));
        }
        if page_size == 0 {
            return Err(Error::Invalid("dirty bitmap page size 0"));
        }
        if iova & (page_size - 1) != 0 || end & (page_size - 1) != 0 {
            return Err(Error::Invalid("dirty range not aligned to the page size"));
        }
        Ok(())
    }

    /// Starts or stops dirty tracking in `domain`; starting first clears what
    /// the domain holds as dirty in every area, so that the first read is a clean
    /// snapshot. EOPNOTSUPP for a domain without dirty tracking.
    pub fn set_dirty_tracking(&self, domain: &dyn Domain, enable: bool) -> Result<()> {
        if !domain.has_dirty_ops() {
            return Err(Error::NotSupported("domain has no dirty tracking"));
        }
        if enable {
            for (r, _) in self.areas.iter() {
                domain.read_and_clear_dirty(r.start, r.last - r.start + 1, false, None)?;
            }
        }
        domain.set_dirty_tracking(enable)
    }

    /// Reads (and, unless `no_clear`, clears) the dirty state of `domain` over
    /// `range`, area by area, reporting dirty pieces to `report`. The range must
    /// be mapped without a gap: EINVAL at the first gap, after the areas before
    /// it were walked (as the kernel does).
    pub fn read_and_clear_dirty(
        &self,
        domain: &dyn Domain,
        range: IovaRange,
        no_clear: bool,
        report: &mut dyn FnMut(u64, u64),
    ) -> Result<()> {
        if !domain.has_dirty_ops() {
            return Err(Error::NotSupported("domain has no dirty tracking"));
        }
        let mut cur = range.start;
        for (r, _) in self.areas.overlapping(range) {
            if r.start > cur {
                break;
            }
            let last = r.last.min(range.last);
            domain.read_and_clear_dirty(cur, last - cur + 1, no_clear, Some(&mut *report))?;
            if last == range.last {
                return Ok(());
            }
            cur = last + 1;
        }
        Err(Error::Invalid("dirty range not fully mapped"))
    }

    /// Mutable variant of [`IoPagetable::for_each_contig`] over area starts.
    pub fn contig_starts(&self, range: IovaRange) -> Result<Vec<(IovaRange, IovaRange)>> {
        let mut out = Vec::new();
        self.for_each_contig(range, |r, sub, _| {
            out.push((r, sub));
            Ok(())
        })?;
        Ok(out)
    }

    /// Mutable access to the area starting at `start`.
    pub fn area_mut(&mut self, start: u64) -> Option<&mut Area> {
        self.areas.get_mut(start)
    }

    /// Replaces the allowed ranges. EADDRINUSE if one intersects a reserved
    /// range; nothing changes then.
    pub fn set_allowed(&mut self, ranges: RangeMap<()>) -> Result<()> {
        for (r, _) in ranges.iter() {
            if self.reserved_overlaps(r) {
                return Err(Error::AddrInUse("allowed range overlaps a reserved range"));
            }
        }
        self.allowed = ranges;
        Ok(())
    }

    /// Reserves `range` for `owner`; EADDRINUSE over a mapping or an allowed range.
    pub fn reserve(&mut self, range: IovaRange, owner: ReservedOwner) -> Result<()> {
        if self.areas.first_overlap(range).is_some() || self.allowed.first_overlap(range).is_some()
        {
            return Err(Error::AddrInUse(
                "reserved range overlaps a mapping or an allowed range",
            ));
        }
        inject::point("iopt reserve")?;
        self.reserved.push((range, owner));
        self.rebuild_reserved_union();
        Ok(())
    }

    /// Drops every reserved range of `owner`.
    pub fn remove_reserved(&mut self, owner: ReservedOwner) {
        self.reserved.retain(|(_, o)| *o != owner);
        self.rebuild_reserved_union();
    }

    fn areas_aligned(&self, align: u64) -> bool {
        let mask = align - 1;
        self.areas.iter().all(|(r, a)| {
            r.start & mask == 0
                && r.len().is_some_and(|l| l & mask == 0)
                && (a.start_byte % PAGE_SIZE) & mask == 0
        })
    }

    /// Recomputes the IOVA alignment from the domains, accesses and options;
    /// EADDRINUSE if existing areas do not meet a larger one.
    fn recalc_alignment(&mut self) -> Result<()> {
        let mut align = if self.disable_large_pages {
            PAGE_SIZE
        } else {
            1
        };
        for d in &self.domains {
            align = align.max(1 << d.pgsize_bitmap().trailing_zeros());
        }
        for (_, a) in &self.accesses {
            align = align.max(*a);
        }
        if align > self.iova_alignment && !self.areas_aligned(align) {
            return Err(Error::AddrInUse("existing mappings are not aligned"));
        }
        self.iova_alignment = align;
        Ok(())
    }

    /// Loads `domain` with every area. On failure nothing changes.
    pub fn add_domain(&mut self, domain: &Arc<dyn Domain>) -> Result<()> {
        let key = domain_key(domain);
        if self.domains.iter().any(|d| domain_key(d) == key) {
            return Err(Error::Exists);
        }
        let align = self
            .iova_alignment
            .max(1 << domain.pgsize_bitmap().trailing_zeros());
        if align > PAGE_SIZE {
            return Err(Error::Invalid("domain page size larger than a CPU page"));
        }
        if align != self.iova_alignment && !self.areas_aligned(align) {
            return Err(Error::AddrInUse("existing mappings are not aligned"));
        }
        let aperture = domain.aperture();
        let owner = ReservedOwner::Domain(key);
        let mut outside = Vec::new();
        if aperture.start != 0 {
            outside.push(IovaRange::new(0, aperture.start - 1));
        }
        if aperture.last != u64::MAX {
            outside.push(IovaRange::new(aperture.last + 1, u64::MAX));
        }
        for r in outside {
            if let Err(e) = self.reserve(r, owner) {
                self.remove_reserved(owner);
                return Err(e);
            }
        }
        let first = self.domains.is_empty();
        let areas: Vec<(IovaRange, Area)> =
            self.areas.iter().map(|(r, a)| (r, a.clone())).collect();
        let mut done = 0;
        let mut result = Ok(());
        for (r, a) in &areas {
            if first {
                if let Err(e) = a.pages.hold(a.index_range(*r, *r)) {
                    result = Err(e);
                    break;
                }
            }
            if let Err(e) = self.map_area(&**domain, *r, a) {
                if first {
                    a.pages.release(a.index_range(*r, *r));
                }
                result = Err(e);
                break;
            }
            done += 1;
        }
        if let Err(e) = result {
            for (r, a) in &areas[..done] {
                domain.unmap(r.start, r.last - r.start + 1);
                if first {
                    a.pages.release(a.index_range(*r, *r));
                }
            }
            self.remove_reserved(owner);
            return Err(e);
        }
        self.iova_alignment = align;
        self.domains.push(domain.clone());
        Ok(())
    }

    /// Unloads `domain`: unmaps every area from it, unpins what only the domains
    /// held, and drops its reserved ranges.
    pub fn remove_domain(&mut self, domain: &Arc<dyn Domain>) {
        let key = domain_key(domain);
        let Some(i) = self.domains.iter().position(|d| domain_key(d) == key) else {
            debug_assert!(false, "removing a domain that is not loaded");
            return;
        };
        self.domains.swap_remove(i);
        let last = self.domains.is_empty();
        for (r, a) in self.areas.iter() {
            domain.unmap(r.start, r.last - r.start + 1);
            if last {
                a.pages.release(a.index_range(r, r));
            }
        }
        self.remove_reserved(ReservedOwner::Domain(key));
        let ok = self.recalc_alignment();
        debug_assert!(ok.is_ok(), "alignment only shrinks on removal");
    }

    /// Registers an access that needs `alignment`. EADDRINUSE if existing areas
    /// do not meet it.
    pub fn add_access(&mut self, id: u32, alignment: u64) -> Result<()> {
        inject::point("iopt add access")?;
        self.accesses.push((id, alignment));
        if let Err(e) = self.recalc_alignment() {
            self.accesses.pop();
            return Err(e);
        }
        Ok(())
    }

    /// Unregisters an access.
    pub fn remove_access(&mut self, id: u32) {
        self.accesses.retain(|(a, _)| *a != id);
        let ok = self.recalc_alignment();
        debug_assert!(ok.is_ok(), "alignment only shrinks on removal");
    }

    /// `IOMMU_OPTION_HUGE_PAGES` 0: map page by page. EINVAL once domains hold
    /// mappings.
    pub fn disable_large_pages(&mut self) -> Result<()> {
        if self.disable_large_pages {
            return Ok(());
        }
        if !self.domains.is_empty() && !self.areas.is_empty() {
            return Err(Error::Invalid("domains already hold mappings"));
        }
        self.disable_large_pages = true;
        if let Err(e) = self.recalc_alignment() {
            self.disable_large_pages = false;
            return Err(e);
        }
        Ok(())
    }

    /// Splits the area holding `iova` so that `iova` is the last IOVA of one area
    /// (the kernel's `iopt_area_split`, for VFIO type1's unmap of part of a
    /// mapping). Nothing to do when no area holds `iova` or it already ends or
    /// starts one. EBUSY while an unmap waits on the area; EINVAL when the cut
    /// is not aligned, an access pins the area, or a domain may hold large
    /// IOPTEs across the cut (large pages not disabled).
    pub fn split_area(&mut self, iova: u64) -> Result<()> {
        let Some((r, area)) = self.areas.find(iova) else {
            return Ok(());
        };
        if iova == r.start || iova == r.last {
            return Ok(());
        }
        if area.prevent_access {
            return Err(Error::Busy("an unmap waits on the area"));
        }
        let new_start = iova + 1;
        let align = self.iova_alignment;
        if new_start & (align - 1) != 0 || area.start_byte_at(r, new_start) & (align - 1) != 0 {
            return Err(Error::Invalid("cut not aligned"));
        }
        if area.num_accesses > 0 {
            return Err(Error::Invalid("an access pins the area"));
        }
        if !self.domains.is_empty() && !self.disable_large_pages {
            return Err(Error::Invalid("domains may hold large IOPTEs"));
        }
        inject::point("area split")?;
        let (r, area) = self.areas.remove(r.start).expect("area just found");
        let rhs = Area {
            start_byte: area.start_byte_at(r, new_start),
            ..area.clone()
        };
        // Each half holds its own index range: the cut is page aligned whenever
        // there is a domain (the alignment is at least a page then), so the two
        // ranges do not share a page and the holds need no change.
        self.areas.insert(IovaRange::new(r.start, iova), area);
        self.areas.insert(IovaRange::new(new_start, r.last), rhs);
        Ok(())
    }

    /// Makes each of `iovas` the last IOVA of an area, in order (the kernel's
    /// `iopt_cut_iova`); stops at the first failure, keeping earlier cuts.
    pub fn cut_iova(&mut self, iovas: &[u64]) -> Result<()> {
        for &iova in iovas {
            self.split_area(iova)?;
        }
        Ok(())
    }

    /// The holes between reserved ranges: what VFIO reports as usable IOVA.
    pub fn reserved_holes(&self) -> Vec<IovaRange> {
        self.reserved_union.holes(IovaRange::ALL)
    }

    /// The page sizes VFIO reports (`iova_pgsizes`): those every domain has, with
    /// everything below a page folded into the page size, and at least the IOVA
    /// alignment.
    pub fn vfio_pgsizes(&self) -> u64 {
        let mut bitmap = self
            .domains
            .iter()
            .fold(u64::MAX, |b, d| b & d.pgsize_bitmap());
        if bitmap & (PAGE_SIZE - 1) != 0 {
            bitmap = (bitmap & !(PAGE_SIZE - 1)) | PAGE_SIZE;
        }
        bitmap.max(self.iova_alignment)
    }

    /// `IOMMU_OPTION_HUGE_PAGES` 1.
    pub fn enable_large_pages(&mut self) {
        self.disable_large_pages = false;
        let ok = self.recalc_alignment();
        debug_assert!(ok.is_ok(), "alignment only shrinks");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mem::sim::{SimAddressSpace, SimMemory};
    use crate::mem::{Process, User};
    use proptest::prelude::*;

    proptest! {
        // The allocation hint never changes which IOVA is chosen: the answer with
        // the hint equals a walk from the bottom.
        #[test]
        fn hint_matches_full_walk(ops in proptest::collection::vec((0u8..4, 1u64..6, 0u64..64), 1..60)) {
            let mem = SimMemory::new(1 << 30).unwrap();
            let space = SimAddressSpace::new(&mem);
            let process = Process::new(space.clone(), User::new());
            let va = space.mmap_anon(None, 8 * PAGE_SIZE, true).unwrap();
            let mut iopt = IoPagetable::default();
            let mut mapped: Vec<u64> = Vec::new();
            for (kind, pages, at) in ops {
                let len = pages * PAGE_SIZE;
                match kind {
                    0 | 1 => {
                        let (p, sb) = Pages::new_user(&process, va, len, true).unwrap();
                        let slice = PagesSlice { pages: p, start_byte: sb, length: len };
                        let hint = iopt.covered_to;
                        iopt.covered_to = PAGE_SIZE;
                        let reference = iopt.alloc_iova(va, len);
                        iopt.covered_to = hint;
                        let fixed = (kind == 1).then_some(at * PAGE_SIZE);
                        let got = iopt.map_pages(&[slice], len, fixed, 0);
                        if fixed.is_none() {
                            prop_assert_eq!(got.as_ref().ok(), reference.as_ref().ok());
                        }
                        if let Ok(iova) = got {
                            mapped.push(iova);
                        }
                    }
                    2 if !mapped.is_empty() => {
                        let iova = mapped.swap_remove((at as usize) % mapped.len());
                        let (r, _) = iopt.areas.find(iova).unwrap();
                        prop_assert!(iopt.unmap_areas(r) > 0);
                    }
                    _ => {
                        let r = IovaRange::new(at * PAGE_SIZE, at * PAGE_SIZE + len - 1);
                        let _ = iopt.reserve(r, ReservedOwner::Test);
                    }
                }
            }
        }
    }
}
