//! The VT-d model through iommufd: hardware info, domain allocation rules, DMA
//! through first- and second-stage tables, nested translation through a stage-1
//! table in the user's memory — with the stale IOTLB entry that only
//! `IOMMU_HWPT_INVALIDATE` removes — dirty tracking by device writes, and an
//! isolation property under random maps, unmaps and replaces.

mod common;

use common::{expect_errno, Fixture, Rng};
use softiommu::iommu::dma::{DmaEngine, NO_PASID};
use softiommu::iommu::pt::vtd::{FL_A, FL_D, FL_P, FL_RW, FL_US, SL_D, SL_PS, SL_R, SL_W};
use softiommu::iommu::vtd::{VtdCaps, VtdDomain, VtdDriver};
use softiommu::iommu::Device;
use softiommu::iommufd::{IommufdDevice, MapFlags};
use softiommu::mem::PAGE_SIZE;
use softiommu::uapi::iommufd::*;
use softiommu::uapi::Errno;
use std::collections::BTreeMap;
use std::sync::Arc;
use zerocopy::{FromBytes, IntoBytes};

const ECAP_NEST: u64 = 1 << 26;
const ECAP_SSADS: u64 = 1 << 45;

/// A VT-d device with a 16-bit PASID capability on a unit with `caps`, bound to
/// the fixture's context, and its DMA engine.
fn vtd_device(f: &Fixture, caps: VtdCaps) -> (Arc<IommufdDevice>, DmaEngine) {
    let driver = VtdDriver::new(caps, f.mem.clone());
    let dev = Arc::new(Device::new("0000:00:03.0", driver, 16));
    let idev = f.ctx().device_bind(dev.clone()).unwrap();
    (idev, DmaEngine::new(dev, f.mem.clone()))
}

fn domain(f: &Fixture, hwpt: u32) -> Arc<dyn softiommu::iommu::Domain> {
    f.ctx().get_hwpt_paging(hwpt).unwrap().domain.clone()
}

fn vtd(d: &Arc<dyn softiommu::iommu::Domain>) -> &VtdDomain {
    d.as_any().downcast_ref::<VtdDomain>().unwrap()
}

#[test]
fn hw_info_reports_the_registers() {
    let f = Fixture::new();
    let caps = VtdCaps::default();
    let (idev, _) = vtd_device(&f, caps);
    let info = f.ctx().get_hw_info(idev.id, 0).unwrap();
    assert_eq!(info.data_type, IOMMU_HW_INFO_TYPE_INTEL_VTD);
    let vtd = iommu_hw_info_vtd::read_from_bytes(&info.data).unwrap();
    assert_eq!(vtd.flags, IOMMU_HW_INFO_VTD_ERRATA_772415_SPR17);
    assert_eq!((vtd.cap_reg, vtd.ecap_reg), (caps.cap, caps.ecap));
    assert_eq!(info.capabilities, IOMMU_HW_CAP_DIRTY_TRACKING);
    // The device's 16 bits, under the unit's 20.
    assert_eq!(info.max_pasid_log2, 16);
    expect_errno(
        f.ctx().get_hw_info(idev.id, IOMMU_HW_INFO_TYPE_ARM_SMMUV3),
        Errno::EOPNOTSUPP,
    );
    let (bare, _) = vtd_device(
        &f,
        VtdCaps {
            ecap: caps.ecap & !ECAP_SSADS,
            ..caps
        },
    );
    assert_eq!(f.ctx().get_hw_info(bare.id, 0).unwrap().capabilities, 0);
}

#[test]
fn domain_allocation_follows_the_unit() {
    let f = Fixture::new();
    let ioas = f.ioas_alloc();
    let (idev, _) = vtd_device(&f, VtdCaps::default());
    let fs = f.hwpt_alloc(idev.id, ioas, 0).unwrap();
    assert!(!vtd(&domain(&f, fs)).second_stage());
    // 5-level first stage: the lower half of 57 bits.
    assert_eq!(domain(&f, fs).aperture().last, (1 << 56) - 1);
    let ss = f
        .hwpt_alloc(idev.id, ioas, IOMMU_HWPT_ALLOC_NEST_PARENT)
        .unwrap();
    assert!(vtd(&domain(&f, ss)).second_stage());
    assert_eq!(domain(&f, ss).aperture().last, (1 << 57) - 1);
    assert_eq!(domain(&f, ss).pgsize_bitmap(), 4096 | 1 << 21 | 1 << 30);
    let dirty = f
        .hwpt_alloc(idev.id, ioas, IOMMU_HWPT_ALLOC_DIRTY_TRACKING)
        .unwrap();
    assert!(vtd(&domain(&f, dirty)).second_stage());

    let caps = VtdCaps::default();
    let (plain, _) = vtd_device(
        &f,
        VtdCaps {
            ecap: caps.ecap & !(ECAP_NEST | ECAP_SSADS),
            ..caps
        },
    );
    expect_errno(
        f.hwpt_alloc(plain.id, ioas, IOMMU_HWPT_ALLOC_NEST_PARENT),
        Errno::EOPNOTSUPP,
    );
    expect_errno(
        f.hwpt_alloc(plain.id, ioas, IOMMU_HWPT_ALLOC_DIRTY_TRACKING),
        Errno::EOPNOTSUPP,
    );
    // The plain unit cannot use a nesting parent or a dirty-tracking domain.
    expect_errno(f.ctx().device_attach(&plain, NO_PASID, ss), Errno::EINVAL);
    expect_errno(
        f.ctx().device_attach(&plain, NO_PASID, dirty),
        Errno::EINVAL,
    );
    f.ctx().device_attach(&plain, NO_PASID, fs).unwrap();
    f.check();
}

#[test]
fn second_stage_entries_are_the_real_format() {
    let f = Fixture::new();
    let ioas = f.ioas_alloc();
    let (idev, dma) = vtd_device(&f, VtdCaps::default());
    let ss = f
        .hwpt_alloc(idev.id, ioas, IOMMU_HWPT_ALLOC_DIRTY_TRACKING)
        .unwrap();
    f.ctx().device_attach(&idev, NO_PASID, ss).unwrap();
    // 4 MiB of physically contiguous memory at a 2 MiB aligned IOVA: 2 MiB leaves
    // where the frames are aligned too.
    let va = f.mmap_aligned(4 << 20);
    let iova = 1 << 30;
    f.map_fixed(ioas, va, 4 << 20, iova).unwrap();
    let d = domain(&f, ss);
    let v = vtd(&d);
    let phys = d.iova_to_phys(iova).unwrap();
    let entry = v.leaf_entry(iova).unwrap();
    if phys % (2 << 20) == 0 {
        assert_eq!(entry, phys | SL_PS | SL_R | SL_W);
    } else {
        assert_eq!(entry, phys | SL_R | SL_W);
    }
    // A device write sets D only while tracking is on.
    dma.write(NO_PASID, iova, &[1; 8]).unwrap();
    assert_eq!(v.leaf_entry(iova).unwrap() & SL_D, 0);
    f.set_dirty_tracking(ss, true).unwrap();
    dma.write(NO_PASID, iova + 8, &[1; 8]).unwrap();
    assert_ne!(v.leaf_entry(iova).unwrap() & SL_D, 0);
    let bitmap = f.mmap(PAGE_SIZE);
    f.get_dirty_bitmap(ss, iova, 4 << 20, PAGE_SIZE, false, bitmap)
        .unwrap();
    let bits = f.read(bitmap, 128);
    let dirty_pages: u32 = bits.iter().map(|b| b.count_ones()).sum();
    let leaf_pages = if phys % (2 << 20) == 0 { 512 } else { 1 };
    assert_eq!(dirty_pages, leaf_pages);
    assert_eq!(v.leaf_entry(iova).unwrap() & SL_D, 0);
    // Cleared: the next write goes to the table again, though the IOTLB held
    // the page.
    dma.write(NO_PASID, iova + 16, &[1; 8]).unwrap();
    assert_ne!(v.leaf_entry(iova).unwrap() & SL_D, 0);
}

/// Writes the 64-bit `entry` at guest-physical `gpa`, which the test maps at
/// IOVA == GPA from `guest_va`.
fn put(f: &Fixture, guest_va: u64, gpa: u64, entry: u64) {
    f.write(guest_va + gpa, &entry.to_le_bytes());
}

fn get(f: &Fixture, guest_va: u64, gpa: u64) -> u64 {
    u64::from_le_bytes(f.read(guest_va + gpa, 8).try_into().unwrap())
}

/// The guest IOVA the stage-1 tables below translate.
const GIOVA: u64 = 0x4020_1000;
/// Guest-physical addresses of the stage-1 tables: PML4, PDPT, PD, PT.
const PML4: u64 = 0x1000;
const PD: u64 = 0x3000;
const PT: u64 = 0x4000;
/// Present, writable, user: what every stage-1 table entry here allows.
const TABLE: u64 = FL_P | FL_RW | FL_US;

/// A VT-d device attached to a nested HWPT whose stage-1 table lives in 1 MiB
/// of guest memory at GPA 0 (IOVA 0 of the parent's IOAS): PML4 -> PDPT -> PD
/// for `GIOVA`, the PD entry pointing at the table at `PT`, whose entries the
/// test writes. Returns the guest memory's address, the nested HWPT's ID, the
/// IOAS and the device's DMA engine.
fn nested_guest(f: &Fixture) -> (u64, u32, u32, DmaEngine) {
    let ioas = f.ioas_alloc();
    let (idev, dma) = vtd_device(f, VtdCaps::default());
    let guest = f.mmap(1 << 20);
    f.map_fixed(ioas, guest, 1 << 20, 0).unwrap();
    let parent = f
        .hwpt_alloc(idev.id, ioas, IOMMU_HWPT_ALLOC_NEST_PARENT)
        .unwrap();
    put(f, guest, PML4, 0x2000 | TABLE);
    put(f, guest, 0x2000 + 8, PD | TABLE);
    put(f, guest, PD + 8, PT | TABLE);
    let s1 = iommu_hwpt_vtd_s1 {
        flags: 0,
        pgtbl_addr: PML4,
        addr_width: 48,
        __reserved: 0,
    };
    let nested = f
        .hwpt_alloc_data(idev.id, parent, 0, IOMMU_HWPT_DATA_VTD_S1, s1.as_bytes())
        .unwrap();
    f.ctx().device_attach(&idev, NO_PASID, nested).unwrap();
    (guest, nested, ioas, dma)
}

/// `HWPT_INVALIDATE` of the nested HWPT with VT-d stage-1 `entries`: the result
/// and the number handled.
fn invalidate(
    f: &Fixture,
    nested: u32,
    entries: &[iommu_hwpt_vtd_s1_invalidate],
) -> (Result<(), softiommu::error::Error>, u32) {
    let len = std::mem::size_of::<iommu_hwpt_vtd_s1_invalidate>() as u32;
    f.hwpt_invalidate(
        nested,
        IOMMU_HWPT_INVALIDATE_DATA_VTD_S1,
        entries.as_bytes(),
        len,
        entries.len() as u32,
    )
}

/// An invalidation of the page at `GIOVA`.
fn inv_page(flags: u32) -> iommu_hwpt_vtd_s1_invalidate {
    iommu_hwpt_vtd_s1_invalidate {
        addr: GIOVA,
        npages: 1,
        flags,
        __reserved: 0,
    }
}

#[test]
fn nested_translation_walks_the_users_table_and_caches_it() {
    let f = Fixture::new();
    let (guest, nested, ioas, dma) = nested_guest(&f);
    // GIOVA -> GPA 0x8000 read-write, the next page -> GPA 0x9000 read-only.
    put(&f, guest, PT + 8, 0x8000 | TABLE);
    put(&f, guest, PT + 16, 0x9000 | FL_P | FL_US);
    f.write(guest + 0x8000, b"page eight");
    f.write(guest + 0x9000, b"page nine!");

    let mut buf = [0u8; 10];
    dma.read(NO_PASID, GIOVA, &mut buf).unwrap();
    assert_eq!(&buf, b"page eight");
    // The hardware set the stage-1 accessed bit, not dirty.
    assert_eq!(get(&f, guest, PT + 8) & (FL_A | FL_D), FL_A);
    dma.write(NO_PASID, GIOVA, b"dev").unwrap();
    assert_ne!(get(&f, guest, PT + 8) & FL_D, 0);
    assert_eq!(f.read(guest + 0x8000, 3), b"dev");
    // Read-only in stage 1.
    dma.read(NO_PASID, GIOVA + 0x1000, &mut buf).unwrap();
    assert_eq!(&buf, b"page nine!");
    assert!(dma.write(NO_PASID, GIOVA + 0x1000, b"x").is_err());

    // The guest retargets the page without invalidating: the IOTLB still
    // serves the old translation — software must invalidate.
    put(&f, guest, PT + 8, 0x9000 | TABLE);
    dma.read(NO_PASID, GIOVA, &mut buf).unwrap();
    assert_eq!(&buf[..3], b"dev");
    let (r, n) = invalidate(&f, nested, &[inv_page(IOMMU_VTD_INV_FLAGS_LEAF)]);
    r.unwrap();
    assert_eq!(n, 1);
    dma.read(NO_PASID, GIOVA, &mut buf).unwrap();
    assert_eq!(&buf, b"page nine!");

    // Bad requests: the handled count stops at the failure.
    let misaligned = iommu_hwpt_vtd_s1_invalidate {
        addr: 0x123,
        ..inv_page(0)
    };
    let (r, n) = invalidate(&f, nested, &[inv_page(0), misaligned]);
    assert_eq!((r.unwrap_err().errno(), n), (Errno::EINVAL, 1));
    let (r, n) = invalidate(&f, nested, &[inv_page(2)]);
    assert_eq!((r.unwrap_err().errno(), n), (Errno::EOPNOTSUPP, 0));
    let all_from_nonzero = iommu_hwpt_vtd_s1_invalidate {
        npages: u64::MAX,
        ..inv_page(0)
    };
    let (r, n) = invalidate(&f, nested, &[all_from_nonzero]);
    assert_eq!((r.unwrap_err().errno(), n), (Errno::EINVAL, 0));

    // Unmapping guest memory from the parent drops the nested translations.
    f.unmap(ioas, 0, 1 << 20).unwrap();
    assert!(dma.read(NO_PASID, GIOVA, &mut buf).is_err());
}

#[test]
fn nested_configuration_is_checked_at_attach() {
    let f = Fixture::new();
    let ioas = f.ioas_alloc();
    let (idev, _) = vtd_device(&f, VtdCaps::default());
    let parent = f
        .hwpt_alloc(idev.id, ioas, IOMMU_HWPT_ALLOC_NEST_PARENT)
        .unwrap();
    let s1 = iommu_hwpt_vtd_s1 {
        flags: 0,
        pgtbl_addr: 0x1000,
        addr_width: 39,
        __reserved: 0,
    };
    let nested = f
        .hwpt_alloc_data(idev.id, parent, 0, IOMMU_HWPT_DATA_VTD_S1, s1.as_bytes())
        .unwrap();
    expect_errno(
        f.ctx().device_attach(&idev, NO_PASID, nested),
        Errno::EINVAL,
    );
    // Only a nesting parent; a first-stage domain is not one.
    let fs = f.hwpt_alloc(idev.id, ioas, 0).unwrap();
    expect_errno(
        f.hwpt_alloc_data(idev.id, fs, 0, IOMMU_HWPT_DATA_VTD_S1, s1.as_bytes()),
        Errno::EINVAL,
    );
    // A nesting parent refuses read-only mappings (erratum 772415).
    f.ctx().device_attach(&idev, NO_PASID, parent).unwrap();
    let va = f.mmap(PAGE_SIZE);
    let ro = MapFlags {
        readable: true,
        writeable: false,
    };
    expect_errno(f.map_flags(ioas, va, PAGE_SIZE, None, ro), Errno::EINVAL);
}

/// Random maps, unmaps and replaces between two IOASes: after every step a
/// device's DMA reads exactly the bytes its current IOAS maps at each probed
/// IOVA, and faults where nothing is mapped.
#[test]
fn isolation_under_random_changes() {
    let f = Fixture::new();
    let ioas = [f.ioas_alloc(), f.ioas_alloc()];
    let (idev, dma) = vtd_device(&f, VtdCaps::default());
    f.ctx().device_attach(&idev, NO_PASID, ioas[0]).unwrap();
    let mut cur = 0usize;
    let pages = 64u64;
    let memory = f.mmap(pages * PAGE_SIZE);
    // Each page of memory starts with its own number.
    for p in 0..pages {
        f.write(memory + p * PAGE_SIZE, &p.to_le_bytes());
    }
    // Per IOAS: IOVA page -> memory page.
    let mut model: [BTreeMap<u64, u64>; 2] = Default::default();
    let base = 1u64 << 32;
    let mut rng = Rng::new(7);
    for _ in 0..600 {
        match rng.next_u64() % 4 {
            0 | 1 => {
                let which = (rng.next_u64() % 2) as usize;
                let (slot, src, n) = (
                    rng.next_u64() % 32,
                    rng.next_u64() % (pages - 4),
                    1 + rng.next_u64() % 4,
                );
                let iova = base + slot * PAGE_SIZE;
                let va = memory + src * PAGE_SIZE;
                if f.map_fixed(ioas[which], va, n * PAGE_SIZE, iova).is_ok() {
                    for i in 0..n {
                        model[which].insert(slot + i, src + i);
                    }
                }
            }
            2 => {
                let which = (rng.next_u64() % 2) as usize;
                let Some((&slot, _)) = model[which]
                    .iter()
                    .nth((rng.next_u64() as usize) % model[which].len().max(1))
                else {
                    continue;
                };
                let iova = base + slot * PAGE_SIZE;
                // Unmap the area holding it (areas are whole here).
                if let Ok(len) = f.unmap(ioas[which], iova, PAGE_SIZE) {
                    for i in 0..len / PAGE_SIZE {
                        model[which].remove(&(slot + i));
                    }
                } else {
                    // It starts earlier: unmap everything instead.
                    f.unmap(ioas[which], 0, u64::MAX).unwrap();
                    model[which].clear();
                }
            }
            _ => {
                cur ^= 1;
                f.ctx().device_replace(&idev, NO_PASID, ioas[cur]).unwrap();
            }
        }
        for slot in 0..36 {
            let mut got = [0u8; 8];
            let r = dma.read(NO_PASID, base + slot * PAGE_SIZE, &mut got);
            match model[cur].get(&slot) {
                Some(&src) => assert_eq!(u64::from_le_bytes(got), src, "slot {slot}"),
                None => assert!(r.is_err(), "slot {slot} reachable"),
            }
        }
    }
    f.check();
}

/// The paging-structure cache: a directory entry the guest rewrites is still
/// followed after an invalidation with the leaf hint, and not after one
/// without it.
#[test]
fn leaf_hint_keeps_cached_table_entries() {
    let f = Fixture::new();
    let (guest, nested, _, dma) = nested_guest(&f);
    let pt_b = 0x5000;
    put(&f, guest, PT + 8, 0x8000 | TABLE);
    put(&f, guest, pt_b + 8, 0x9000 | TABLE);
    f.write(guest + 0x8000, b"A");
    f.write(guest + 0x9000, b"B");
    let read = || {
        let mut b = [0u8; 1];
        dma.read(NO_PASID, GIOVA, &mut b).unwrap();
        b[0]
    };
    assert_eq!(read(), b'A');
    put(&f, guest, PD + 8, pt_b | TABLE);
    invalidate(&f, nested, &[inv_page(IOMMU_VTD_INV_FLAGS_LEAF)])
        .0
        .unwrap();
    assert_eq!(read(), b'A');
    invalidate(&f, nested, &[inv_page(0)]).0.unwrap();
    assert_eq!(read(), b'B');
}
