//! vIOMMUs and vDEVICEs on the mock IOMMU: a port of the kernel selftest's
//! `iommufd_viommu` fixture (`tools/testing/selftests/iommu/iommufd.c`) in its
//! two variants, without what needs objects not modelled yet (vEVENTQs, HW
//! queues, the mmap of the mock vIOMMU's page), plus the object lifetimes and
//! errno paths around vIOMMUs. The checker runs after every step.

mod common;

use common::*;
use softiommu::uapi::iommufd::{
    IOMMU_HWPT_ALLOC_NEST_PARENT, IOMMU_HWPT_FAULT_ID_VALID, IOMMU_VIOMMU_TYPE_DEFAULT,
};
use softiommu::uapi::test::{
    iommu_hwpt_selftest, iommu_viommu_invalidate_selftest, iommu_viommu_selftest,
    IOMMU_HWPT_DATA_SELFTEST, IOMMU_TEST_DEV_CACHE_DEFAULT, IOMMU_TEST_INVALIDATE_FLAG_ALL,
    IOMMU_TEST_IOTLB_DEFAULT, IOMMU_VIOMMU_INVALIDATE_DATA_SELFTEST,
    IOMMU_VIOMMU_INVALIDATE_DATA_SELFTEST_INVALID, IOMMU_VIOMMU_TYPE_SELFTEST,
    MOCK_DEV_CACHE_ID_MAX, MOCK_DEV_CACHE_NUM,
};
use softiommu::uapi::Errno;
use zerocopy::{FromBytes, IntoBytes};

const SELFTEST: u32 = IOMMU_VIOMMU_TYPE_SELFTEST;
const DATA: iommu_hwpt_selftest = iommu_hwpt_selftest {
    iotlb: IOMMU_TEST_IOTLB_DEFAULT,
    pagetable_type: 0,
};
const ENTRY_LEN: u32 = std::mem::size_of::<iommu_viommu_invalidate_selftest>() as u32;
const DEFAULT: u32 = IOMMU_TEST_DEV_CACHE_DEFAULT;

/// The kernel's `iommufd_viommu` fixture; all IDs 0 in the `no_viommu` variant.
struct ViommuFixture {
    f: Fixture,
    ioas_id: u32,
    stdev_id: u32,
    hwpt_id: u32,
    nested_hwpt_id: u32,
    device_id: u32,
    viommu_id: u32,
}

impl ViommuFixture {
    fn new(viommu: bool) -> ViommuFixture {
        let f = Fixture::new();
        let ioas_id = f.ioas_alloc();
        let mut s = ViommuFixture {
            f,
            ioas_id,
            stdev_id: 0,
            hwpt_id: 0,
            nested_hwpt_id: 0,
            device_id: 0,
            viommu_id: 0,
        };
        if viommu {
            let ids = s.f.mock_domain(ioas_id).unwrap();
            (s.stdev_id, s.device_id) = (ids.stdev_id, ids.idev_id);
            s.hwpt_id =
                s.f.hwpt_alloc(s.device_id, ioas_id, IOMMU_HWPT_ALLOC_NEST_PARENT)
                    .unwrap();
            s.viommu_id = s.viommu_alloc(s.device_id, s.hwpt_id, SELFTEST).unwrap();
            s.nested_hwpt_id = s.nested(s.device_id, s.viommu_id, 0).unwrap();
        }
        s
    }

    fn viommu_alloc(&self, dev: u32, hwpt: u32, ty: u32) -> softiommu::error::Result<u32> {
        self.f
            .step(self.f.ctx().viommu_alloc(dev, hwpt, ty, 0, 0, 0))
    }

    fn nested(&self, dev: u32, pt: u32, flags: u32) -> softiommu::error::Result<u32> {
        self.f
            .hwpt_alloc_data(dev, pt, flags, IOMMU_HWPT_DATA_SELFTEST, DATA.as_bytes())
    }

    fn vdevice_alloc(&self, viommu: u32, dev: u32, virt_id: u64) -> softiommu::error::Result<u32> {
        self.f
            .step(self.f.ctx().vdevice_alloc(viommu, dev, virt_id))
    }

    fn check_cache(&self, dev: u32, id: u32, cache: u32) -> softiommu::error::Result<()> {
        self.f
            .step(self.f.ctx().test_dev_check_cache(dev, id, cache))
    }

    #[track_caller]
    fn check_caches(&self, want: [u32; MOCK_DEV_CACHE_NUM as usize]) {
        for (i, w) in want.iter().enumerate() {
            self.check_cache(self.device_id, i as u32, *w).unwrap();
        }
    }

    /// `HWPT_INVALIDATE` on the vIOMMU: the result's errno (if any) and the
    /// number of requests handled.
    fn invalidate(
        &self,
        reqs: &[iommu_viommu_invalidate_selftest],
        data_type: u32,
        entry_len: u32,
        entry_num: u32,
    ) -> (Option<Errno>, u32) {
        let bytes: Vec<u8> = reqs.iter().flat_map(|r| r.as_bytes().to_vec()).collect();
        let (r, done) =
            self.f
                .hwpt_invalidate(self.viommu_id, data_type, &bytes, entry_len, entry_num);
        (r.err().map(|e| e.errno()), done)
    }
}

fn inv(flags: u32, vdev_id: u32, cache_id: u32) -> iommu_viommu_invalidate_selftest {
    iommu_viommu_invalidate_selftest {
        flags,
        vdev_id,
        cache_id,
    }
}

fn both(test: impl Fn(&ViommuFixture)) {
    for viommu in [false, true] {
        let s = ViommuFixture::new(viommu);
        test(&s);
        s.f.check();
    }
}

#[test]
fn viommu_auto_destroy() {
    both(|_| {});
}

#[test]
fn viommu_negative_tests() {
    both(|s| {
        let f = &s.f;
        if s.device_id == 0 {
            expect_errno(s.viommu_alloc(0, s.hwpt_id, SELFTEST), Errno::ENOENT);
            return;
        }
        let dev = s.device_id;
        expect_errno(s.viommu_alloc(dev, 0, SELFTEST), Errno::ENOENT);
        let not_parent = f.hwpt_alloc(dev, s.ioas_id, 0).unwrap();
        expect_errno(s.viommu_alloc(dev, not_parent, SELFTEST), Errno::EINVAL);
        f.destroy(not_parent).unwrap();
        expect_errno(s.viommu_alloc(dev, s.hwpt_id, 0xdead), Errno::EOPNOTSUPP);
        expect_errno(f.destroy(s.hwpt_id), Errno::EBUSY);
        expect_errno(f.destroy(s.viommu_id), Errno::EBUSY);

        // Beyond the kernel's test: flags and the default type come first.
        let ctx = f.ctx();
        expect_errno(
            f.step(ctx.viommu_alloc(0, 0, IOMMU_VIOMMU_TYPE_DEFAULT, 0, 0, 0)),
            Errno::EOPNOTSUPP,
        );
        expect_errno(
            f.step(ctx.viommu_alloc(dev, s.hwpt_id, SELFTEST, 1, 0, 0)),
            Errno::EOPNOTSUPP,
        );
        // An IOAS or a nested HWPT is not a paging HWPT.
        expect_errno(s.viommu_alloc(dev, s.ioas_id, SELFTEST), Errno::ENOENT);
        expect_errno(
            s.viommu_alloc(dev, s.nested_hwpt_id, SELFTEST),
            Errno::ENOENT,
        );
        // An automatic HWPT is no nesting parent.
        let ids = f.mock_domain(s.ioas_id).unwrap();
        expect_errno(
            s.viommu_alloc(ids.idev_id, ids.hwpt_id, SELFTEST),
            Errno::EINVAL,
        );
        // Nested HWPTs on a vIOMMU: data is required, flags as the driver says.
        expect_errno(
            f.step(ctx.hwpt_alloc(dev, s.viommu_id, 0, 0, 0, 0)),
            Errno::EOPNOTSUPP,
        );
        expect_errno(
            f.hwpt_alloc_data(
                dev,
                s.viommu_id,
                0,
                IOMMU_HWPT_DATA_SELFTEST + 1,
                DATA.as_bytes(),
            ),
            Errno::EOPNOTSUPP,
        );
        expect_errno(
            s.nested(dev, s.viommu_id, IOMMU_HWPT_ALLOC_NEST_PARENT),
            Errno::EOPNOTSUPP,
        );
    });
}

#[test]
fn viommu_alloc_nested_iopf() {
    both(|s| {
        let (f, dev) = (&s.f, s.device_id);
        if dev == 0 {
            return;
        }
        let ctx = f.ctx();
        let fault = ctx.fault_alloc().unwrap();
        let fault_id = fault.fault().id;
        let data = DATA.as_bytes();
        let alloc = |flags, fid| {
            let uptr = f.mmap(4096);
            f.write(uptr, data);
            let r = ctx.hwpt_alloc_fault(
                dev,
                s.viommu_id,
                flags,
                IOMMU_HWPT_DATA_SELFTEST,
                data.len() as u32,
                uptr,
                fid,
            );
            f.step(r)
        };
        expect_errno(alloc(IOMMU_HWPT_FAULT_ID_VALID, u32::MAX), Errno::ENOENT);
        expect_errno(
            alloc(IOMMU_HWPT_FAULT_ID_VALID | (1 << 31), fault_id),
            Errno::EOPNOTSUPP,
        );
        let iopf_hwpt = alloc(IOMMU_HWPT_FAULT_ID_VALID, fault_id).unwrap();

        // A device needs a vDEVICE before it attaches to the vIOMMU's HWPT.
        expect_errno(f.mock_domain_replace(s.stdev_id, iopf_hwpt), Errno::ENOENT);
        let vdev = s.vdevice_alloc(s.viommu_id, dev, 0x99).unwrap();
        assert_eq!(
            f.mock_domain_replace(s.stdev_id, iopf_hwpt).unwrap(),
            iopf_hwpt
        );
        expect_errno(f.destroy(iopf_hwpt), Errno::EBUSY);
        f.step(ctx.test_trigger_iopf(dev, 0, 1, 2, 0x1000)).unwrap();
        assert_eq!(fault.fault().queued(), 1);

        f.mock_domain_replace(s.stdev_id, s.ioas_id).unwrap();
        f.destroy(iopf_hwpt).unwrap();
        drop(fault);
        f.check();
        f.destroy(vdev).unwrap();
    });
}

#[test]
fn viommu_alloc_with_data() {
    both(|s| {
        let (f, dev) = (&s.f, s.device_id);
        if dev == 0 {
            return;
        }
        let data = iommu_viommu_selftest {
            in_data: 0xbeef,
            ..Default::default()
        };
        let uptr = f.mmap(4096);
        f.write(uptr, data.as_bytes());
        let len = std::mem::size_of::<iommu_viommu_selftest>() as u32;
        let id = f
            .step(f.ctx().viommu_alloc(dev, s.hwpt_id, SELFTEST, 0, len, uptr))
            .unwrap();
        let out = iommu_viommu_selftest::read_from_bytes(&f.read(uptr, len as u64)).unwrap();
        assert_eq!(out.out_data, 0xbeef);
        // Too short for the original struct; unreadable memory.
        expect_errno(
            f.step(f.ctx().viommu_alloc(dev, s.hwpt_id, SELFTEST, 0, 4, uptr)),
            Errno::EINVAL,
        );
        expect_errno(
            f.step(f.ctx().viommu_alloc(dev, s.hwpt_id, SELFTEST, 0, len, 8)),
            Errno::EFAULT,
        );
        f.destroy(id).unwrap();
    });
}

#[test]
fn vdevice_alloc() {
    both(|s| {
        let (f, dev) = (&s.f, s.device_id);
        if dev == 0 {
            expect_errno(s.vdevice_alloc(s.viommu_id, dev, 0x99), Errno::ENOENT);
            return;
        }
        expect_errno(
            f.mock_domain_replace(s.stdev_id, s.nested_hwpt_id),
            Errno::ENOENT,
        );
        let vdev = s.vdevice_alloc(s.viommu_id, dev, 0x99).unwrap();
        f.mock_domain_replace(s.stdev_id, s.nested_hwpt_id).unwrap();
        expect_errno(s.vdevice_alloc(s.viommu_id, dev, 0x99), Errno::EEXIST);
        // One vDEVICE per device, whatever the virtual ID.
        expect_errno(s.vdevice_alloc(s.viommu_id, dev, 0x77), Errno::EEXIST);
        // The vIOMMU is busy with its vDEVICE and nested HWPT.
        expect_errno(f.destroy(s.viommu_id), Errno::EBUSY);

        f.mock_domain_replace(s.stdev_id, s.ioas_id).unwrap();
        f.destroy(vdev).unwrap();
        let vdev = s.vdevice_alloc(s.viommu_id, dev, 0x88).unwrap();
        f.mock_domain_replace(s.stdev_id, s.nested_hwpt_id).unwrap();
        f.mock_domain_replace(s.stdev_id, s.ioas_id).unwrap();

        // A virtual ID names one device per vIOMMU.
        let other = f.mock_domain(s.ioas_id).unwrap();
        expect_errno(
            s.vdevice_alloc(s.viommu_id, other.idev_id, 0x88),
            Errno::EEXIST,
        );
        let vdev2 = s.vdevice_alloc(s.viommu_id, other.idev_id, 0x89).unwrap();
        // Lookups of the wrong type are ENOENT.
        expect_errno(s.vdevice_alloc(s.hwpt_id, dev, 1), Errno::ENOENT);
        expect_errno(s.vdevice_alloc(s.viommu_id, vdev, 1), Errno::ENOENT);

        // Dependents first: vDEVICEs and the nested HWPT, then the vIOMMU, then
        // its parent.
        f.destroy(vdev).unwrap();
        f.destroy(vdev2).unwrap();
        expect_errno(f.destroy(s.viommu_id), Errno::EBUSY);
        f.destroy(s.nested_hwpt_id).unwrap();
        expect_errno(f.destroy(s.hwpt_id), Errno::EBUSY);
        f.destroy(s.viommu_id).unwrap();
        f.destroy(s.hwpt_id).unwrap();
    });
}

#[test]
fn vdevice_cache() {
    both(|s| {
        let (f, dev) = (&s.f, s.device_id);
        if dev == 0 {
            return;
        }
        let d = IOMMU_VIOMMU_INVALIDATE_DATA_SELFTEST;
        let vdev = s.vdevice_alloc(s.viommu_id, dev, 0x99).unwrap();
        s.check_caches([DEFAULT; 4]);

        let zero = [inv(0, 0, 0), inv(0, 0, 0)];
        // An empty array checks the type only.
        assert_eq!(s.invalidate(&zero, d, ENTRY_LEN, 0), (None, 0));
        let einval = Some(Errno::EINVAL);
        let invalid = IOMMU_VIOMMU_INVALIDATE_DATA_SELFTEST_INVALID;
        assert_eq!(s.invalidate(&zero, invalid, ENTRY_LEN, 1), (einval, 0));
        assert_eq!(s.invalidate(&zero, d, ENTRY_LEN + 1, 1), (einval, 0));
        assert_eq!(s.invalidate(&zero, d, 1, 1), (einval, 0));
        let bad_flags = [inv(u32::MAX, 0x99, 0)];
        assert_eq!(
            s.invalidate(&bad_flags, d, ENTRY_LEN, 1),
            (Some(Errno::EOPNOTSUPP), 0)
        );
        // A null array pointer, a zero entry length.
        let (r, done) = f.ctx().hwpt_invalidate(s.viommu_id, d, 0, ENTRY_LEN, 1);
        f.check();
        assert_eq!((r.unwrap_err().errno(), done), (Errno::EINVAL, 0));
        assert_eq!(s.invalidate(&[inv(0, 0x99, 0)], d, 0, 1), (einval, 0));
        let bad_cache = [inv(0, 0x99, MOCK_DEV_CACHE_ID_MAX + 1)];
        assert_eq!(s.invalidate(&bad_cache, d, ENTRY_LEN, 1), (einval, 0));
        assert_eq!(
            s.invalidate(&[inv(0, 0x9, 0)], d, ENTRY_LEN, 1),
            (einval, 0)
        );

        // The first request is handled, the second fails.
        let two = [inv(0, 0x99, 0), inv(u32::MAX, 0x99, 1)];
        assert_eq!(
            s.invalidate(&two, d, ENTRY_LEN, 2),
            (Some(Errno::EOPNOTSUPP), 1)
        );
        s.check_caches([0, DEFAULT, DEFAULT, DEFAULT]);
        let two = [inv(0, 0x99, 0), inv(0, 0x99, MOCK_DEV_CACHE_ID_MAX + 1)];
        assert_eq!(s.invalidate(&two, d, ENTRY_LEN, 2), (einval, 1));
        s.check_caches([0, DEFAULT, DEFAULT, DEFAULT]);

        assert_eq!(s.invalidate(&[inv(0, 0x99, 1)], d, ENTRY_LEN, 1), (None, 1));
        s.check_caches([0, 0, DEFAULT, DEFAULT]);
        let two = [inv(0, 0x99, 2), inv(0, 0x99, 3)];
        assert_eq!(s.invalidate(&two, d, ENTRY_LEN, 2), (None, 2));
        s.check_caches([0; 4]);

        // FLAG_ALL on a fresh device cache: a second device, its own vDEVICE.
        let other = f.mock_domain(s.ioas_id).unwrap();
        let vdev2 = s.vdevice_alloc(s.viommu_id, other.idev_id, 0x98).unwrap();
        for i in 0..MOCK_DEV_CACHE_NUM {
            s.check_cache(other.idev_id, i, DEFAULT).unwrap();
        }
        let all = [inv(IOMMU_TEST_INVALIDATE_FLAG_ALL, 0x98, 0)];
        assert_eq!(s.invalidate(&all, d, ENTRY_LEN, 1), (None, 1));
        for i in 0..MOCK_DEV_CACHE_NUM {
            s.check_cache(other.idev_id, i, 0).unwrap();
        }

        // DEV_CHECK_CACHE: index, value and object are checked.
        expect_errno(
            s.check_cache(dev, MOCK_DEV_CACHE_ID_MAX + 1, 0),
            Errno::EINVAL,
        );
        expect_errno(s.check_cache(dev, 0, DEFAULT), Errno::EINVAL);
        expect_errno(s.check_cache(s.stdev_id, 0, 0), Errno::ENOENT);

        // A nested HWPT still takes its own invalidations; a paging HWPT none.
        let (r, _) = f.hwpt_invalidate(s.hwpt_id, d, &[], ENTRY_LEN, 0);
        expect_errno(r, Errno::EINVAL);
        f.destroy(vdev2).unwrap();
        f.destroy(vdev).unwrap();
        // Without a vDEVICE the virtual ID names nothing.
        assert_eq!(
            s.invalidate(&[inv(0, 0x99, 0)], d, ENTRY_LEN, 1),
            (einval, 0)
        );
    });
}

#[test]
fn vdevice_tombstone() {
    both(|s| {
        let (f, dev) = (&s.f, s.device_id);
        if dev == 0 {
            return;
        }
        let vdev = s.vdevice_alloc(s.viommu_id, dev, 0x99).unwrap();
        f.destroy(s.stdev_id).unwrap();
        expect_errno(f.destroy(vdev), Errno::ENOENT);
        // The ID stays taken; the vIOMMU is free of it.
        let next = f.ioas_alloc();
        assert_ne!(next, vdev);
        f.destroy(s.nested_hwpt_id).unwrap();
        f.destroy(s.viommu_id).unwrap();
    });
}

#[test]
fn close_with_everything_alive() {
    let s = ViommuFixture::new(true);
    let f = &s.f;
    s.vdevice_alloc(s.viommu_id, s.device_id, 0x99).unwrap();
    f.mock_domain_replace(s.stdev_id, s.nested_hwpt_id).unwrap();
    let other = f.mock_domain(s.ioas_id).unwrap();
    s.vdevice_alloc(s.viommu_id, other.idev_id, 0x98).unwrap();
    f.check();
    // Dropping the fixture closes the context: every object goes, in order.
}

#[test]
fn other_iommu_and_driver_without_viommu() {
    use softiommu::iommu::vtd::{VtdCaps, VtdDriver};
    use softiommu::iommu::Device;
    use std::sync::Arc;

    let s = ViommuFixture::new(true);
    let f = &s.f;
    let driver = VtdDriver::new(VtdCaps::default(), f.mem.clone());
    let dev = Arc::new(Device::new("0000:00:03.0", driver, 0));
    let vtd = f.step(f.ctx().device_bind(dev)).unwrap();
    // A device behind another IOMMU gets no virtual ID on the mock's vIOMMU.
    expect_errno(s.vdevice_alloc(s.viommu_id, vtd.id, 0x99), Errno::EINVAL);
    // A driver without vIOMMUs refuses the type before the HWPT is looked up.
    expect_errno(s.viommu_alloc(vtd.id, 0, SELFTEST), Errno::EOPNOTSUPP);
    // Nor is its device a mock device for DEV_CHECK_CACHE.
    expect_errno(s.check_cache(vtd.id, 0, DEFAULT), Errno::EINVAL);
}

#[test]
fn unbind_while_attached_through_vdevice() {
    let s = ViommuFixture::new(true);
    let f = &s.f;
    let vdev = s.vdevice_alloc(s.viommu_id, s.device_id, 0x99).unwrap();
    f.mock_domain_replace(s.stdev_id, s.nested_hwpt_id).unwrap();
    f.destroy(s.stdev_id).unwrap();
    expect_errno(f.destroy(vdev), Errno::ENOENT);
    // The virtual ID is free again on the vIOMMU.
    let ids = f.mock_domain(s.ioas_id).unwrap();
    s.vdevice_alloc(s.viommu_id, ids.idev_id, 0x99).unwrap();
    assert_eq!(
        s.invalidate(
            &[inv(0, 0x99, 0)],
            IOMMU_VIOMMU_INVALIDATE_DATA_SELFTEST,
            ENTRY_LEN,
            1
        ),
        (None, 1)
    );
    s.check_cache(ids.idev_id, 0, 0).unwrap();
}
