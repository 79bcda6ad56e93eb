//! The consistency checker: every invariant of a context, checked from outside.
//!
//! Tests call [`check`] after every operation. It recomputes from first
//! principles what the structures should hold and compares:
//! - object users: each IOAS is used by its paging HWPTs and accesses, each
//!   nesting parent by its nested HWPTs, each HWPT by its attached devices, each
//!   selftest device's idev by the selftest object, each vIOMMU's parent by
//!   the vIOMMU, each vIOMMU by its vDEVICEs and the nested HWPTs it made;
//! - each vIOMMU's table of virtual IDs holds exactly its published vDEVICEs,
//!   and each device names exactly the vDEVICE that names it;
//! - each nested HWPT's parent is a published, explicitly allocated nesting
//!   parent, and each attached device's HWPT is the one published under its ID;
//! - each IOAS: areas clear of reserved ranges and aligned; the alignment is what
//!   its domains and accesses need; each domain's outside-aperture reservations
//!   exist; its domains are exactly its HWPTs' domains;
//! - each mock domain maps exactly the IOAS's areas onto the frames of their pages,
//!   was never misused, and holds dirty bits only for mapped IO pages (and none
//!   at all without dirty tracking);
//! - each `Pages` is held exactly by the areas loaded in domains and the access
//!   pins over it, its pinned count matches, and areas count their access pins;
//! - optionally, a pin table counts exactly the pins of the context's pages.

use super::context::{Iommufd, Object};
use super::hw_pagetable::Hwpt;
use super::io_pagetable::{domain_key, ReservedOwner};
use super::pages::Pages;
use crate::iommu::dma::AttachedDomain;
use crate::iommu::mock::{MockDomain, MOCK_IO_PAGE_SIZE};
use crate::iommu::Device;
use crate::mem::{PinTable, PAGE_SHIFT, PAGE_SIZE};
use crate::range::{CountMap, IovaRange};
use std::collections::HashMap;
use std::sync::Arc;

/// What the checker learnt, for tests that compare it with process counters.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Summary {
    /// Pinned pages over all the context's `Pages`.
    pub pinned_pages: u64,
    /// Distinct `Pages` reachable from the context's IOASes.
    pub pages_objects: usize,
}

macro_rules! ensure {
    ($cond:expr, $($fmt:tt)*) => {
        if !$cond {
            return Err(format!($($fmt)*));
        }
    };
}

/// Merges `(iova, phys, len)` pieces that continue each other.
fn merge(pieces: impl IntoIterator<Item = (u64, u64, u64)>) -> Vec<(u64, u64, u64)> {
    let mut out: Vec<(u64, u64, u64)> = Vec::new();
    for (iova, phys, len) in pieces {
        if let Some(last) = out.last_mut() {
            if last.0 + last.2 == iova && last.1 + last.2 == phys {
                last.2 += len;
                continue;
            }
        }
        out.push((iova, phys, len));
    }
    out
}

fn iopt_holes_empty(iopt: &super::io_pagetable::IoPagetable, within: IovaRange) -> bool {
    let mut cur = within.start;
    for (r, _) in iopt.areas().filter(|(r, _)| r.overlaps(&within)) {
        if r.start > cur {
            return false;
        }
        match r.last.checked_add(1) {
            Some(n) => cur = n,
            None => return true,
        }
    }
    cur > within.last
}

/// Checks every invariant of `ctx`; the error says which one broke.
pub fn check(ctx: &Iommufd) -> Result<Summary, String> {
    let objects = ctx.objects();
    let mut expect_users: HashMap<u32, u32> = HashMap::new();
    let mut ioases = Vec::new();
    let mut hwpts = Vec::new();
    let mut accesses = Vec::new();
    for (id, obj, _) in &objects {
        match obj {
            Object::Ioas(i) => ioases.push(i.clone()),
            Object::HwptPaging(h) => {
                *expect_users.entry(h.ioas.id).or_default() += 1;
                if let Some(f) = &h.fault {
                    *expect_users.entry(f.id).or_default() += 1;
                }
                ensure!(h.id == *id, "HWPT {} filed under {}", h.id, id);
                hwpts.push(h.clone());
            }
            Object::HwptNested(h) => {
                *expect_users.entry(h.used_id()).or_default() += 1;
                if let Some(v) = &h.viommu {
                    let viommu_ok = matches!(
                        objects.iter().find(|(vid, ..)| *vid == v.id),
                        Some((_, Object::Viommu(p), _)) if Arc::ptr_eq(p, v)
                    );
                    ensure!(
                        viommu_ok && Arc::ptr_eq(&v.hwpt, &h.parent),
                        "nested HWPT {}: vIOMMU {} is not published or not on its parent",
                        h.id,
                        v.id
                    );
                }
                if let Some(f) = &h.fault {
                    *expect_users.entry(f.id).or_default() += 1;
                }
                ensure!(h.id == *id, "nested HWPT {} filed under {}", h.id, id);
                let parent_ok = matches!(
                    objects.iter().find(|(pid, ..)| *pid == h.parent.id),
                    Some((_, Object::HwptPaging(p), _)) if Arc::ptr_eq(p, &h.parent)
                );
                ensure!(
                    parent_ok && h.parent.flags.nest_parent && !h.parent.auto_domain,
                    "nested HWPT {}: parent {} is not a published nesting parent",
                    h.id,
                    h.parent.id
                );
            }
            Object::Device(d) => {
                if d.owned {
                    *expect_users.entry(d.id).or_default() += 1;
                }
                if let Some(vid) = d.vdev() {
                    let named = matches!(
                        objects.iter().find(|(oid, ..)| *oid == vid),
                        Some((_, Object::Vdevice(v), _)) if Arc::ptr_eq(&v.idev, d)
                    );
                    ensure!(
                        named,
                        "device {} names vDEVICE {vid}, which is not its",
                        d.id
                    );
                }
                for (pasid, h) in d.attachments() {
                    *expect_users.entry(h.id()).or_default() += 1;
                    let published = objects.iter().any(|(hid, o, _)| {
                        *hid == h.id()
                            && match (o, &h) {
                                (Object::HwptPaging(a), Hwpt::Paging(b)) => Arc::ptr_eq(a, b),
                                (Object::HwptNested(a), Hwpt::Nested(b)) => Arc::ptr_eq(a, b),
                                _ => false,
                            }
                    });
                    ensure!(
                        published,
                        "device {} PASID {pasid} attached to HWPT {} that is not in the table",
                        d.id,
                        h.id()
                    );
                    ensure!(
                        programmed(&d.dev, pasid, &h),
                        "device {} PASID {pasid}: the IOMMU does not translate through HWPT {}",
                        d.id,
                        h.id()
                    );
                }
            }
            Object::Access(a) => {
                *expect_users.entry(a.id).or_default() += 1;
                if let Some(i) = a.ioas() {
                    *expect_users.entry(i.id).or_default() += 1;
                }
                accesses.push(a.clone());
            }
            Object::Selftest(m) => {
                ensure!(
                    m.idev.owned,
                    "mock device {} does not hold its device",
                    m.id
                );
            }
            Object::Viommu(v) => {
                ensure!(v.id == *id, "vIOMMU {} filed under {}", v.id, id);
                *expect_users.entry(v.hwpt.id).or_default() += 1;
                ensure!(
                    v.hwpt.flags.nest_parent,
                    "vIOMMU {}: HWPT {} is not a nesting parent",
                    v.id,
                    v.hwpt.id
                );
                for (virt_id, vdev_id) in v.vdevs.entries() {
                    let named = matches!(
                        objects.iter().find(|(oid, ..)| *oid == vdev_id),
                        Some((_, Object::Vdevice(d), _))
                            if Arc::ptr_eq(&d.viommu, v) && d.virt_id == virt_id
                    );
                    ensure!(
                        named,
                        "vIOMMU {}: virtual ID {virt_id:#x} names {vdev_id}, not its vDEVICE",
                        v.id
                    );
                }
            }
            Object::Vdevice(d) => {
                ensure!(d.id == *id, "vDEVICE {} filed under {}", d.id, id);
                *expect_users.entry(d.viommu.id).or_default() += 1;
                let device_ok = matches!(
                    objects.iter().find(|(oid, ..)| *oid == d.idev.id),
                    Some((_, Object::Device(i), _)) if Arc::ptr_eq(i, &d.idev)
                );
                ensure!(
                    device_ok && d.idev.vdev() == Some(d.id),
                    "vDEVICE {}: device {} is not bound or names another vDEVICE",
                    d.id,
                    d.idev.id
                );
                ensure!(
                    d.viommu.vdevs.entries().contains(&(d.virt_id, d.id)),
                    "vDEVICE {} is missing from vIOMMU {}",
                    d.id,
                    d.viommu.id
                );
            }
            Object::Fault(f) => {
                ensure!(f.id == *id, "fault queue {} filed under {}", f.id, id);
                if f.is_open() {
                    *expect_users.entry(f.id).or_default() += 1;
                }
            }
        }
    }
    for (id, obj, users) in &objects {
        let want = expect_users.get(id).copied().unwrap_or(0);
        ensure!(
            *users == want,
            "{} {} has {} users, expected {}",
            obj.type_name(),
            id,
            users,
            want
        );
    }

    let mut holders: HashMap<usize, (Arc<Pages>, CountMap)> = HashMap::new();
    for ioas in &ioases {
        let iopt = ioas.iopt();
        let align = iopt.iova_alignment();
        let mask = align - 1;
        // Domains are exactly the HWPTs' domains on this IOAS.
        let mut want: Vec<usize> = hwpts
            .iter()
            .filter(|h| h.ioas.id == ioas.id)
            .map(|h| domain_key(&h.domain))
            .collect();
        let mut have: Vec<usize> = iopt.domains().iter().map(domain_key).collect();
        want.sort_unstable();
        have.sort_unstable();
        ensure!(
            want == have,
            "IOAS {}: domains {:?} but HWPTs {:?}",
            ioas.id,
            have,
            want
        );
        // Alignment is what the domains and accesses need.
        let mut need = if iopt.large_pages_disabled() {
            PAGE_SIZE
        } else {
            1
        };
        for d in iopt.domains() {
            need = need.max(1 << d.pgsize_bitmap().trailing_zeros());
        }
        for (_, a) in &iopt.accesses {
            need = need.max(*a);
        }
        ensure!(
            need == align,
            "IOAS {}: alignment {} but needs {}",
            ioas.id,
            align,
            need
        );
        let reserved = iopt.reserved_union();
        let mut union = CountMap::new();
        for (r, _) in iopt.reserved() {
            union.add(r);
        }
        let union: Vec<IovaRange> = union.iter(IovaRange::ALL).map(|(r, _)| r).collect();
        let mut merged: Vec<IovaRange> = Vec::new();
        for r in union {
            match merged.last_mut() {
                Some(m) if m.last.checked_add(1) == Some(r.start) => m.last = r.last,
                _ => merged.push(r),
            }
        }
        let cached: Vec<IovaRange> = reserved.iter().map(|(r, _)| r).collect();
        ensure!(
            cached == merged,
            "IOAS {}: reserved union {:?}, expected {:?}",
            ioas.id,
            cached,
            merged
        );
        if iopt.covered_to() > PAGE_SIZE {
            let below = IovaRange::new(PAGE_SIZE, iopt.covered_to() - 1);
            for hole in reserved.holes_iter(below) {
                ensure!(
                    iopt_holes_empty(&iopt, hole),
                    "IOAS {}: free IOVA below the allocation hint {:#x}",
                    ioas.id,
                    iopt.covered_to()
                );
            }
        }
        for d in iopt.domains() {
            let ap = d.aperture();
            let owner = ReservedOwner::Domain(domain_key(d));
            let mine: Vec<IovaRange> = iopt
                .reserved()
                .filter(|(_, o)| **o == owner)
                .map(|(r, _)| r)
                .collect();
            let mut outside = Vec::new();
            if ap.start != 0 {
                outside.push(IovaRange::new(0, ap.start - 1));
            }
            if ap.last != u64::MAX {
                outside.push(IovaRange::new(ap.last + 1, u64::MAX));
            }
            ensure!(
                mine == outside,
                "IOAS {}: domain reservations {:?}, expected {:?}",
                ioas.id,
                mine,
                outside
            );
        }
        let loaded = !iopt.domains().is_empty();
        let mut expected_map = Vec::new();
        for (r, area) in iopt.areas() {
            ensure!(
                reserved.first_overlap(r).is_none(),
                "IOAS {}: area {:?} is reserved",
                ioas.id,
                r
            );
            ensure!(
                r.start & mask == 0
                    && r.len().is_some_and(|l| l & mask == 0)
                    && (area.start_byte % PAGE_SIZE) & mask == 0,
                "IOAS {}: area {:?} not aligned to {}",
                ioas.id,
                r,
                align
            );
            let idx = area.index_range(r, r);
            ensure!(
                idx.last < area.pages.npages(),
                "IOAS {}: area {:?} beyond its pages",
                ioas.id,
                r
            );
            let entry = holders
                .entry(Arc::as_ptr(&area.pages) as usize)
                .or_insert_with(|| (area.pages.clone(), CountMap::new()));
            if loaded {
                entry.1.add(idx);
                let end = area.start_byte + (r.last - r.start) + 1;
                let mut index = idx.start;
                for run in area.pages.frames(idx) {
                    let first = (index << PAGE_SHIFT).max(area.start_byte);
                    let stop = ((index + run.npages) << PAGE_SHIFT).min(end);
                    expected_map.push((
                        r.start + (first - area.start_byte),
                        run.phys + (first - (index << PAGE_SHIFT)),
                        stop - first,
                    ));
                    index += run.npages;
                }
            }
            let pins_here = accesses
                .iter()
                .filter(|a| a.ioas().is_some_and(|i| i.id == ioas.id))
                .flat_map(|a| a.pinned())
                .filter(|p| p.overlaps(&r))
                .count() as u32;
            ensure!(
                area.num_accesses == pins_here,
                "IOAS {}: area {:?} counts {} access pins, has {}",
                ioas.id,
                r,
                area.num_accesses,
                pins_here
            );
        }
        let expected_map = merge(expected_map);
        for d in iopt.domains() {
            let Some(mock) = d.as_any().downcast_ref::<MockDomain>() else {
                continue;
            };
            ensure!(
                mock.warnings() == 0,
                "IOAS {}: mock domain warned {} times",
                ioas.id,
                mock.warnings()
            );
            let got = merge(
                mock.extents()
                    .into_iter()
                    .map(|(r, e)| (r.start, e.phys, r.last - r.start + 1)),
            );
            ensure!(
                got == expected_map,
                "IOAS {}: mock domain maps {:x?}, expected {:x?}",
                ioas.id,
                got,
                expected_map
            );
            let dirty = mock.dirty_pages();
            ensure!(
                dirty.is_empty() || d.has_dirty_ops(),
                "IOAS {}: mock domain without dirty tracking has dirty pages",
                ioas.id
            );
            for index in dirty {
                let iova = index.checked_mul(MOCK_IO_PAGE_SIZE);
                ensure!(
                    iova.is_some_and(|i| mock.lookup(i).is_some()),
                    "IOAS {}: mock domain IO page {:#x} is dirty but not mapped",
                    ioas.id,
                    index
                );
            }
        }
        // Access pins hold the pages under them.
        for a in accesses
            .iter()
            .filter(|a| a.ioas().is_some_and(|i| i.id == ioas.id))
        {
            for p in a.pinned() {
                let pieces = iopt
                    .contig_starts(p)
                    .map_err(|e| format!("access {} pin {:?}: {}", a.id, p, e))?;
                for (r, sub) in pieces {
                    let (_, area) = iopt
                        .areas()
                        .find(|(ar, _)| *ar == r)
                        .expect("area just found");
                    let e = holders
                        .entry(Arc::as_ptr(&area.pages) as usize)
                        .or_insert_with(|| (area.pages.clone(), CountMap::new()));
                    e.1.add(area.index_range(r, sub));
                }
            }
        }
    }
    let mut summary = Summary::default();
    for (pages, expect) in holders.values() {
        let got = pages.holder_runs();
        let want: Vec<(IovaRange, u32)> = expect.iter(IovaRange::ALL).collect();
        ensure!(
            got == want,
            "pages {:p}: holders {:?}, expected {:?}",
            Arc::as_ptr(pages),
            got,
            want
        );
        let held: u64 = want.iter().map(|(r, _)| r.last - r.start + 1).sum();
        ensure!(
            pages.npinned() == held,
            "pages {:p}: {} pinned, {} held",
            Arc::as_ptr(pages),
            pages.npinned(),
            held
        );
        for (r, _) in &want {
            let n: u64 = pages.frames(*r).iter().map(|f| f.npages).sum();
            ensure!(
                n == r.last - r.start + 1,
                "pages {:p}: frames missing in {:?}",
                Arc::as_ptr(pages),
                r
            );
        }
        summary.pinned_pages += held;
    }
    summary.pages_objects = holders.len();
    Ok(summary)
}

/// Checks that `pins` holds exactly one pin per page pinned by each `Pages` of
/// `ctx` (for tests whose memory no one else pins).
pub fn check_pins(ctx: &Iommufd, pins: &PinTable) -> Result<(), String> {
    let mut expect = CountMap::new();
    let mut seen = std::collections::HashSet::new();
    for (_, obj, _) in ctx.objects() {
        let Object::Ioas(ioas) = obj else { continue };
        for (_, area) in ioas.iopt().areas() {
            if !seen.insert(Arc::as_ptr(&area.pages) as usize) {
                continue;
            }
            for (r, _) in area.pages.holder_runs() {
                for f in area.pages.frames(r) {
                    let pfn = f.phys >> PAGE_SHIFT;
                    expect.add(IovaRange::new(pfn, pfn + f.npages - 1));
                }
            }
        }
    }
    let want: Vec<(IovaRange, u32)> = expect.iter(IovaRange::ALL).collect();
    let got = pins.snapshot();
    ensure!(got == want, "pin table {:?}, expected {:?}", got, want);
    Ok(())
}

/// Whether the IOMMU translates `pasid` of `dev` through `hwpt`'s domain.
fn programmed(dev: &Device, pasid: u32, hwpt: &Hwpt) -> bool {
    match (dev.attachment(pasid).map(|a| a.domain), hwpt) {
        (Some(AttachedDomain::Paging(a)), Hwpt::Paging(b)) => Arc::ptr_eq(&a, &b.domain),
        (Some(AttachedDomain::Nested(a)), Hwpt::Nested(b)) => Arc::ptr_eq(&a, &b.domain),
        _ => false,
    }
}
