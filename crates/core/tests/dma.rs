//! The DMA engine on the mock IOMMU: a device's reads and writes reach exactly
//! what its domain maps, fail where it does not (recorded, or turned into a page
//! request when the HWPT has a fault queue), set dirty bits, and follow
//! attach, replace, detach and PASIDs.

mod common;

use common::Fixture;
use softiommu::iommu::dma::{DmaEngine, DmaFault, NO_PASID};
use softiommu::iommufd::{MapFlags, MockDomainIds};
use softiommu::mem::PAGE_SIZE;
use softiommu::uapi::iommufd::*;
use softiommu::uapi::test::MOCK_FLAGS_DEVICE_PASID;
use std::sync::Arc;

fn engine(f: &Fixture, ids: &MockDomainIds) -> DmaEngine {
    let mock = f.ctx().get_mock_dev(ids.stdev_id).unwrap();
    DmaEngine::new(mock.idev.dev.clone(), f.mem.clone())
}

#[test]
fn dma_reaches_what_the_domain_maps() {
    let f = Fixture::new();
    let ioas = f.ioas_alloc();
    let ids = f.mock_domain(ioas).unwrap();
    let dma = engine(&f, &ids);
    let len = 4 * PAGE_SIZE;
    let va = f.mmap(len);
    let pattern: Vec<u8> = (0..len).map(|i| (i * 7 % 251) as u8).collect();
    f.write(va, &pattern);
    let iova = f.map(ioas, va, len).unwrap();

    // Reads see the program's memory, across page boundaries.
    let mut buf = vec![0u8; 3 * PAGE_SIZE as usize];
    dma.read(NO_PASID, iova + 100, &mut buf).unwrap();
    assert_eq!(buf, pattern[100..100 + buf.len()]);
    // Writes land in it.
    dma.write(NO_PASID, iova + PAGE_SIZE - 5, b"device wrote this")
        .unwrap();
    let got = f.read(va + PAGE_SIZE - 5, 17);
    assert_eq!(got, b"device wrote this");

    // Past the mapping: a translation fault, recorded, nothing copied beyond.
    let mut buf = vec![0u8; 2 * PAGE_SIZE as usize];
    let err = dma
        .read(NO_PASID, iova + 3 * PAGE_SIZE, &mut buf)
        .unwrap_err();
    assert_eq!(
        err,
        DmaFault::Translation {
            pasid: NO_PASID,
            iova: iova + len,
            write: false
        }
    );
    assert_eq!(dma.faults(), vec![err]);

    // After unmap the device reaches nothing.
    f.unmap(ioas, iova, len).unwrap();
    assert!(dma.read(NO_PASID, iova, &mut [0u8; 8]).is_err());
    // Another PASID is blocked.
    assert_eq!(
        dma.read(5, iova, &mut [0u8; 8]).unwrap_err(),
        DmaFault::Blocked { pasid: 5, iova }
    );
}

#[test]
fn read_only_mappings_refuse_writes() {
    let f = Fixture::new();
    let ioas = f.ioas_alloc();
    let ids = f.mock_domain(ioas).unwrap();
    let dma = engine(&f, &ids);
    let va = f.mmap(PAGE_SIZE);
    let iova = f
        .map_flags(
            ioas,
            va,
            PAGE_SIZE,
            None,
            MapFlags {
                readable: true,
                writeable: false,
            },
        )
        .unwrap();
    dma.read(NO_PASID, iova, &mut [0u8; 16]).unwrap();
    assert_eq!(
        dma.write(NO_PASID, iova, &[1u8; 16]).unwrap_err(),
        DmaFault::Translation {
            pasid: NO_PASID,
            iova,
            write: true
        }
    );
    assert_eq!(f.read(va, 16), vec![0u8; 16]);
}

#[test]
fn device_writes_set_dirty_bits() {
    let f = Fixture::new();
    let ioas = f.ioas_alloc();
    let ids = f.mock_domain(ioas).unwrap();
    let hwpt = f
        .hwpt_alloc(ids.idev_id, ioas, IOMMU_HWPT_ALLOC_DIRTY_TRACKING)
        .unwrap();
    f.mock_domain_replace(ids.stdev_id, hwpt).unwrap();
    let dma = engine(&f, &ids);
    let len = 8 * PAGE_SIZE;
    let va = f.mmap(len);
    let iova = f.map(ioas, va, len).unwrap();

    // Tracking off: writes leave no trace.
    dma.write(NO_PASID, iova, &[1u8; 64]).unwrap();
    f.set_dirty_tracking(hwpt, true).unwrap();
    dma.write(NO_PASID, iova + 3 * PAGE_SIZE, &[2u8; 64])
        .unwrap();
    dma.read(NO_PASID, iova + 5 * PAGE_SIZE, &mut [0u8; 64])
        .unwrap();
    let bitmap = f.mmap(PAGE_SIZE);
    f.get_dirty_bitmap(hwpt, iova, len, PAGE_SIZE, false, bitmap)
        .unwrap();
    assert_eq!(f.read(bitmap, 1), vec![1 << 3]);
}

#[test]
fn replace_and_detach_move_the_device() {
    let f = Fixture::new();
    let (a, b) = (f.ioas_alloc(), f.ioas_alloc());
    let ids = f.mock_domain(a).unwrap();
    let dma = engine(&f, &ids);
    let (va_a, va_b) = (f.mmap(PAGE_SIZE), f.mmap(PAGE_SIZE));
    f.write(va_a, b"in a");
    f.write(va_b, b"in b");
    let iova = 1 << 24;
    f.map_fixed(a, va_a, PAGE_SIZE, iova).unwrap();
    f.map_fixed(b, va_b, PAGE_SIZE, iova).unwrap();
    let mut buf = [0u8; 4];
    dma.read(NO_PASID, iova, &mut buf).unwrap();
    assert_eq!(&buf, b"in a");
    f.mock_domain_replace(ids.stdev_id, b).unwrap();
    dma.read(NO_PASID, iova, &mut buf).unwrap();
    assert_eq!(&buf, b"in b");
    f.destroy(ids.stdev_id).unwrap();
    assert!(matches!(
        dma.read(NO_PASID, iova, &mut buf),
        Err(DmaFault::Blocked { .. })
    ));
}

#[test]
fn pasids_translate_through_their_own_hwpt() {
    let f = Fixture::new();
    let (a, b) = (f.ioas_alloc(), f.ioas_alloc());
    let ids = f.mock_domain_flags(a, MOCK_FLAGS_DEVICE_PASID).unwrap();
    let rid = f
        .hwpt_alloc(ids.idev_id, a, IOMMU_HWPT_ALLOC_PASID)
        .unwrap();
    let other = f
        .hwpt_alloc(ids.idev_id, b, IOMMU_HWPT_ALLOC_PASID)
        .unwrap();
    f.mock_domain_replace(ids.stdev_id, rid).unwrap();
    f.pasid_attach(ids.stdev_id, 9, other).unwrap();
    let dma = engine(&f, &ids);
    let (va_a, va_b) = (f.mmap(PAGE_SIZE), f.mmap(PAGE_SIZE));
    f.write(va_a, b"rid!");
    f.write(va_b, b"pasid");
    let iova = 1 << 24;
    f.map_fixed(a, va_a, PAGE_SIZE, iova).unwrap();
    f.map_fixed(b, va_b, PAGE_SIZE, iova).unwrap();
    let mut buf = [0u8; 4];
    dma.read(NO_PASID, iova, &mut buf).unwrap();
    assert_eq!(&buf, b"rid!");
    dma.read(9, iova, &mut buf).unwrap();
    assert_eq!(&buf, b"pasi");
    f.pasid_detach(ids.stdev_id, 9).unwrap();
    assert!(matches!(
        dma.read(9, iova, &mut buf),
        Err(DmaFault::Blocked { pasid: 9, .. })
    ));
}

/// A translation fault on a HWPT with a fault queue is a page request: the
/// device waits; the user maps the page and answers; the access completes.
#[test]
fn page_requests_wait_for_the_answer() {
    let f = Fixture::new();
    let ioas = f.ioas_alloc();
    let ids = f.mock_domain(ioas).unwrap();
    let fault = f.ctx().fault_alloc().unwrap();
    let hwpt = f
        .ctx()
        .hwpt_alloc_fault(
            ids.idev_id,
            ioas,
            IOMMU_HWPT_FAULT_ID_VALID,
            0,
            0,
            0,
            fault.fault().id,
        )
        .unwrap();
    f.mock_domain_replace(ids.stdev_id, hwpt).unwrap();
    let dma = Arc::new(engine(&f, &ids));
    let va = f.mmap(2 * PAGE_SIZE);
    f.write(va + PAGE_SIZE, b"demand paged");
    let iova = 1 << 24;

    let device = {
        let dma = dma.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 12];
            dma.read(NO_PASID, iova + PAGE_SIZE, &mut buf).map(|()| buf)
        })
    };
    // The request arrives; answering success after mapping lets it finish.
    while !fault.fault().readable() {
        std::thread::yield_now();
    }
    let mut recs = Vec::new();
    fault
        .read::<()>(4, &mut |r| {
            recs.push(*r);
            Ok(())
        })
        .unwrap();
    assert_eq!(recs.len(), 1);
    assert_eq!(recs[0].addr, iova + PAGE_SIZE);
    assert_eq!(recs[0].perm, IOMMU_PGFAULT_PERM_READ);
    f.map_fixed(ioas, va, 2 * PAGE_SIZE, iova).unwrap();
    fault
        .respond(recs[0].cookie, IOMMUFD_PAGE_RESP_SUCCESS)
        .unwrap();
    assert_eq!(&device.join().unwrap().unwrap(), b"demand paged");

    // An INVALID answer fails the access, and nothing is recorded as an
    // unhandled fault.
    let device = {
        let dma = dma.clone();
        std::thread::spawn(move || dma.write(NO_PASID, 0, &[0u8; 4]))
    };
    while !fault.fault().readable() {
        std::thread::yield_now();
    }
    let mut cookie = 0;
    fault
        .read::<()>(1, &mut |r| {
            cookie = r.cookie;
            Ok(())
        })
        .unwrap();
    fault.respond(cookie, IOMMUFD_PAGE_RESP_INVALID).unwrap();
    assert!(device.join().unwrap().is_err());
    assert!(dma.faults().is_empty());

    // A device waiting when it leaves the HWPT is answered with failure.
    let device = {
        let dma = dma.clone();
        std::thread::spawn(move || dma.read(NO_PASID, 0, &mut [0u8; 4]))
    };
    while !fault.fault().readable() {
        std::thread::yield_now();
    }
    f.mock_domain_replace(ids.stdev_id, ioas).unwrap();
    assert!(device.join().unwrap().is_err());
}

/// Unmap returns only when no access that translated through the old entries
/// is still copying: after it returns, the memory no longer changes, however
/// busy the device is.
#[test]
fn unmap_waits_for_dma_in_flight() {
    let f = Fixture::new();
    let ioas = f.ioas_alloc();
    let ids = f.mock_domain(ioas).unwrap();
    let dma = Arc::new(engine(&f, &ids));
    let len = 256 * 1024;
    let va = f.mmap(len);
    for round in 0..20u8 {
        let iova = f.map(ioas, va, len).unwrap();
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let device = {
            let (dma, stop) = (dma.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut n = round;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    n = n.wrapping_add(1);
                    let _ = dma.write(NO_PASID, iova, &vec![n; len as usize]);
                }
            })
        };
        std::thread::sleep(std::time::Duration::from_micros(200));
        f.unmap(ioas, iova, len).unwrap();
        let after = f.read(va, len);
        std::thread::sleep(std::time::Duration::from_millis(2));
        assert!(f.read(va, len) == after, "DMA landed after unmap returned");
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        device.join().unwrap();
    }
}
