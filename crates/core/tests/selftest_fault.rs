//! Fault queues through the typed API: queueing by TRIGGER_IOPF, reading with
//! cookies, responses, and the failure answers on detach and destroy.

use softiommu::error::Error;
use softiommu::iommufd::check::check;
use softiommu::iommufd::{FaultHandle, Iommufd, MockDomainIds};
use softiommu::mem::sim::{SimAddressSpace, SimMemory};
use softiommu::mem::{AddressSpace, Process, User};
use softiommu::uapi::iommufd::*;
use softiommu::uapi::Errno;
use std::sync::{Arc, Mutex};

fn open_in() -> (Iommufd, Arc<SimAddressSpace>) {
    let mem = SimMemory::new(1 << 24).unwrap();
    let space = SimAddressSpace::new(&mem);
    (
        Iommufd::open(&Process::new(space.clone(), User::new())),
        space,
    )
}

fn open() -> Iommufd {
    open_in().0
}

fn errno<T: std::fmt::Debug>(r: Result<T, Error>) -> Errno {
    r.unwrap_err().errno()
}

/// Reads up to `max` records.
fn read(h: &FaultHandle, max: usize) -> Vec<iommu_hwpt_pgfault> {
    let mut out = Vec::new();
    let n = h
        .read::<()>(max, &mut |r| {
            out.push(*r);
            Ok(())
        })
        .unwrap();
    assert_eq!(n, out.len());
    out
}

/// A mock device on a fresh IOAS and a paging HWPT reporting to a new queue.
fn setup(ctx: &Iommufd) -> (MockDomainIds, FaultHandle, u32) {
    let ioas = ctx.ioas_alloc().unwrap();
    let ids = ctx.test_mock_domain(ioas).unwrap();
    let h = ctx.fault_alloc().unwrap();
    let fid = h.fault().id;
    assert_eq!(
        errno(ctx.hwpt_alloc_fault(ids.idev_id, ioas, IOMMU_HWPT_FAULT_ID_VALID, 0, 0, 0, ioas)),
        Errno::ENOENT
    );
    let hwpt = ctx
        .hwpt_alloc_fault(ids.idev_id, ioas, IOMMU_HWPT_FAULT_ID_VALID, 0, 0, 0, fid)
        .unwrap();
    (ids, h, hwpt)
}

#[test]
fn trigger_read_respond() {
    let ctx = open();
    let (ids, h, hwpt) = setup(&ctx);
    let ready = Arc::new(Mutex::new(Vec::new()));
    let r = ready.clone();
    h.set_readiness(Box::new(move |b| r.lock().unwrap().push(b)));

    // Not attached to the HWPT with the queue: nothing is queued.
    ctx.test_trigger_iopf(ids.idev_id, 0, 2, 3, 0x1000).unwrap();
    assert_eq!(h.fault().queued(), 0);
    assert_eq!(
        errno(ctx.test_trigger_iopf(ids.stdev_id, 0, 2, 3, 0x1000)),
        Errno::ENOENT
    );

    ctx.test_mock_domain_replace(ids.stdev_id, hwpt).unwrap();
    // A PASID is not attached, and the HWPT is not nested: no fallback.
    ctx.test_trigger_iopf(ids.idev_id, 5, 2, 3, 0x1000).unwrap();
    assert!(!h.fault().readable());
    for addr in [0x1000, 0x2000, 0x3000] {
        ctx.test_trigger_iopf(ids.idev_id, 0, 2, 3, addr).unwrap();
    }
    assert!(h.fault().readable());
    check(&ctx).unwrap();

    let got = read(&h, 2);
    assert_eq!(got.len(), 2);
    assert_eq!(
        got[0],
        iommu_hwpt_pgfault {
            flags: IOMMU_PGFAULT_FLAGS_LAST_PAGE,
            dev_id: ids.idev_id,
            pasid: 0,
            grpid: 2,
            perm: 3,
            addr: 0x1000,
            length: 0,
            cookie: 1,
            ..Default::default()
        }
    );
    assert_eq!((got[1].addr, got[1].cookie), (0x2000, 2));
    assert!(h.fault().readable());
    // Cookies are the lowest free: answering 1 frees it for the next read.
    h.respond(1, IOMMUFD_PAGE_RESP_SUCCESS).unwrap();
    assert_eq!(
        errno(h.respond(1, IOMMUFD_PAGE_RESP_SUCCESS)),
        Errno::EINVAL
    );
    assert_eq!(errno(h.respond(2, 2)), Errno::EINVAL);
    let got = read(&h, 5);
    assert_eq!((got.len(), got[0].addr, got[0].cookie), (1, 0x3000, 1));
    assert!(!h.fault().readable());
    assert!(read(&h, 5).is_empty());
    assert_eq!(*ready.lock().unwrap(), [false, true, false]);
    assert_eq!(h.fault().awaiting(), [1, 2]);

    // The queue is in use by the HWPT and the file.
    assert_eq!(errno(ctx.destroy(h.fault().id)), Errno::EBUSY);
    // Leaving the HWPT answers the device's requests with failure.
    ctx.test_trigger_iopf(ids.idev_id, 0, 2, 3, 0x4000).unwrap();
    let ioas = ctx.get_hwpt_paging(hwpt).unwrap().ioas.id;
    ctx.test_mock_domain_replace(ids.stdev_id, ioas).unwrap();
    assert!(h.fault().awaiting().is_empty());
    assert_eq!(h.fault().queued(), 0);
    assert_eq!(
        h.fault().answered(),
        [
            (1, IOMMUFD_PAGE_RESP_SUCCESS),
            (0, IOMMUFD_PAGE_RESP_INVALID),
            (1, IOMMUFD_PAGE_RESP_INVALID),
            (2, IOMMUFD_PAGE_RESP_INVALID),
        ]
    );
    check(&ctx).unwrap();
    ctx.destroy(hwpt).unwrap();
    let fault = h.fault().clone();
    drop(h);
    check(&ctx).unwrap();
    ctx.destroy(fault.id).unwrap();
    assert!(!fault.is_open());
}

#[test]
fn pasid_falls_back_to_a_nested_hwpt_and_destroy_answers() {
    let (ctx, space) = open_in();
    let ioas = ctx.ioas_alloc().unwrap();
    let ids = ctx.test_mock_domain(ioas).unwrap();
    let parent = ctx
        .hwpt_alloc(ids.idev_id, ioas, IOMMU_HWPT_ALLOC_NEST_PARENT, 0, 0, 0)
        .unwrap();
    let h = ctx.fault_alloc().unwrap();
    let fid = h.fault().id;
    let data = space
        .mmap_anon(None, softiommu::mem::PAGE_SIZE, true)
        .unwrap();
    space.write(data, &0xbadbeefu32.to_ne_bytes()).unwrap();
    assert_eq!(
        errno(ctx.hwpt_alloc_fault(
            ids.idev_id,
            parent,
            IOMMU_HWPT_FAULT_ID_VALID | 1 << 31,
            softiommu::uapi::test::IOMMU_HWPT_DATA_SELFTEST,
            4,
            data,
            fid
        )),
        Errno::EOPNOTSUPP
    );
    let nested = ctx
        .hwpt_alloc_fault(
            ids.idev_id,
            parent,
            IOMMU_HWPT_FAULT_ID_VALID,
            softiommu::uapi::test::IOMMU_HWPT_DATA_SELFTEST,
            4,
            data,
            fid,
        )
        .unwrap();
    ctx.test_mock_domain_replace(ids.stdev_id, nested).unwrap();
    ctx.test_trigger_iopf(ids.idev_id, 1, 2, 3, 0xdeadbeaf)
        .unwrap();
    let got = read(&h, 1);
    assert_eq!(
        (got[0].flags, got[0].pasid),
        (
            IOMMU_PGFAULT_FLAGS_LAST_PAGE | IOMMU_PGFAULT_FLAGS_PASID_VALID,
            1
        )
    );
    ctx.test_trigger_iopf(ids.idev_id, 0, 2, 3, 0x1000).unwrap();
    check(&ctx).unwrap();
    let fault = h.fault().clone();
    drop(h);
    // Closing the context destroys the queue: what was pending is answered.
    drop(ctx);
    assert_eq!(
        fault.answered(),
        [
            (0, IOMMUFD_PAGE_RESP_INVALID),
            (1, IOMMUFD_PAGE_RESP_INVALID)
        ]
    );
}
