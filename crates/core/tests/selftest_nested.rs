//! Nested HWPTs on the mock IOMMU: a port of the kernel selftest's
//! `iommufd_ioas.alloc_hwpt_nested` (`tools/testing/selftests/iommu/iommufd.c`)
//! without its fault-queue part (`IOMMU_FAULT_QUEUE_ALLOC` and IOPF are not
//! modelled yet), in the fixture's four variants, plus the user-data copy rules
//! and the object lifetimes around nesting parents.
//!
//! `HWPT_INVALIDATE` on a paging HWPT is EINVAL, as mainline gives since 6.13
//! (Linux 6.12's selftest still expects ENOENT there).

mod common;

use common::*;
use softiommu::uapi::iommufd::{
    IOMMU_HWPT_ALLOC_NEST_PARENT, IOMMU_HWPT_ALLOC_PASID, IOMMU_HWPT_DATA_NONE,
    IOMMU_HWPT_FAULT_ID_VALID,
};
use softiommu::uapi::test::{
    iommu_hwpt_invalidate_selftest, iommu_hwpt_selftest, IOMMU_HWPT_DATA_SELFTEST,
    IOMMU_HWPT_INVALIDATE_DATA_SELFTEST, IOMMU_HWPT_INVALIDATE_DATA_SELFTEST_INVALID,
    IOMMU_TEST_INVALIDATE_FLAG_ALL, IOMMU_TEST_IOTLB_DEFAULT, MOCK_NESTED_DOMAIN_IOTLB_ID_MAX,
    MOCK_NESTED_DOMAIN_IOTLB_NUM,
};
use softiommu::uapi::Errno;
use zerocopy::IntoBytes;

const DATA: iommu_hwpt_selftest = iommu_hwpt_selftest {
    iotlb: IOMMU_TEST_IOTLB_DEFAULT,
    pagetable_type: 0,
};
const ENTRY_LEN: u32 = std::mem::size_of::<iommu_hwpt_invalidate_selftest>() as u32;

fn inv(flags: u32, iotlb_id: u32) -> iommu_hwpt_invalidate_selftest {
    iommu_hwpt_invalidate_selftest { flags, iotlb_id }
}

fn entries(reqs: &[iommu_hwpt_invalidate_selftest]) -> Vec<u8> {
    reqs.iter().flat_map(|r| r.as_bytes().to_vec()).collect()
}

fn nested(f: &Fixture, dev: u32, parent: u32) -> Result<u32, softiommu::error::Error> {
    f.hwpt_alloc_data(dev, parent, 0, IOMMU_HWPT_DATA_SELFTEST, DATA.as_bytes())
}

#[track_caller]
fn check_iotlbs(f: &Fixture, hwpt: u32, want: [u32; 4]) {
    for (i, w) in want.iter().enumerate() {
        f.check_iotlb(hwpt, i as u32, *w).unwrap();
    }
}

fn alloc_hwpt_nested(v: IoasVariant) {
    let s = IoasFixture::new(v);
    let f = &s.f;
    if s.device_id == 0 {
        expect_errno(f.hwpt_alloc(s.device_id, s.ioas_id, 0), Errno::ENOENT);
        expect_errno(nested(f, s.device_id, 0), Errno::ENOENT);
        expect_errno(f.mock_domain_replace(s.stdev_id, 0), Errno::ENOENT);
        return;
    }
    let dev = s.device_id;
    // Negative paging tests.
    expect_errno(f.hwpt_alloc(s.ioas_id, dev, 0), Errno::ENOENT);
    expect_errno(f.hwpt_alloc(dev, dev, 0), Errno::EINVAL);
    expect_errno(
        f.hwpt_alloc(
            dev,
            s.ioas_id,
            IOMMU_HWPT_ALLOC_NEST_PARENT | IOMMU_HWPT_FAULT_ID_VALID,
        ),
        Errno::EOPNOTSUPP,
    );
    let parent = f
        .hwpt_alloc(dev, s.ioas_id, IOMMU_HWPT_ALLOC_NEST_PARENT)
        .unwrap();
    let not_parent = f.hwpt_alloc(dev, s.ioas_id, 0).unwrap();

    // Negative nested tests.
    let data = DATA.as_bytes();
    expect_errno(
        f.hwpt_alloc_data(dev, parent, 0, IOMMU_HWPT_DATA_NONE, data),
        Errno::EINVAL,
    );
    expect_errno(
        f.hwpt_alloc_data(dev, parent, 0, IOMMU_HWPT_DATA_SELFTEST + 1, data),
        Errno::EOPNOTSUPP,
    );
    expect_errno(
        f.hwpt_alloc_data(dev, parent, 0, IOMMU_HWPT_DATA_SELFTEST, &data[..3]),
        Errno::EINVAL,
    );
    expect_errno(
        f.step(
            f.ctx()
                .hwpt_alloc(dev, parent, 0, IOMMU_HWPT_DATA_SELFTEST, 8, 0),
        ),
        Errno::EFAULT,
    );
    expect_errno(
        f.hwpt_alloc_data(
            dev,
            parent,
            IOMMU_HWPT_ALLOC_NEST_PARENT,
            IOMMU_HWPT_DATA_SELFTEST,
            data,
        ),
        Errno::EOPNOTSUPP,
    );
    expect_errno(nested(f, dev, not_parent), Errno::EINVAL);

    // Two nested HWPTs on one parent.
    let n0 = nested(f, dev, parent).unwrap();
    let n1 = nested(f, dev, parent).unwrap();
    // No fault queue can be named yet.
    expect_errno(
        f.hwpt_alloc_data(
            dev,
            parent,
            IOMMU_HWPT_FAULT_ID_VALID,
            IOMMU_HWPT_DATA_SELFTEST,
            data,
        ),
        Errno::ENOENT,
    );
    check_iotlbs(f, n0, [IOMMU_TEST_IOTLB_DEFAULT; 4]);
    check_iotlbs(f, n1, [IOMMU_TEST_IOTLB_DEFAULT; 4]);

    // A nested HWPT cannot be a parent; the parent is busy.
    expect_errno(nested(f, dev, n0), Errno::EINVAL);
    expect_errno(f.destroy(parent), Errno::EBUSY);

    let d = IOMMU_HWPT_INVALIDATE_DATA_SELFTEST;
    let zero = entries(&[inv(0, 0), inv(0, 0)]);
    // Only nested HWPTs take invalidations.
    assert_eq!(
        f.hwpt_invalidate(parent, d, &zero, ENTRY_LEN, 1)
            .0
            .unwrap_err()
            .errno(),
        Errno::EINVAL
    );
    assert_eq!(
        f.hwpt_invalidate(9999, d, &zero, ENTRY_LEN, 1)
            .0
            .unwrap_err()
            .errno(),
        Errno::ENOENT
    );
    // An empty array of the right type checks only the type.
    assert_eq!(f.hwpt_invalidate(n0, d, &zero, ENTRY_LEN, 0), (Ok(()), 0));
    let err = |bytes: &[u8], ty: u32, len: u32, num: u32| {
        let (r, done) = f.hwpt_invalidate(n0, ty, bytes, len, num);
        (r.unwrap_err().errno(), done)
    };
    let invalid = IOMMU_HWPT_INVALIDATE_DATA_SELFTEST_INVALID;
    assert_eq!(err(&zero, invalid, ENTRY_LEN, 1), (Errno::EINVAL, 0));
    assert_eq!(err(&zero, d, ENTRY_LEN + 1, 1), (Errno::EINVAL, 0));
    assert_eq!(err(&zero, d, 1, 1), (Errno::EINVAL, 0));
    assert_eq!(err(&zero, d, 0, 1), (Errno::EINVAL, 0));
    let bad_flags = entries(&[inv(u32::MAX, 0)]);
    assert_eq!(err(&bad_flags, d, ENTRY_LEN, 1), (Errno::EOPNOTSUPP, 0));
    // A null array pointer with entries to read.
    let (r, done) = f.ctx().hwpt_invalidate(n0, d, 0, ENTRY_LEN, 1);
    f.check();
    assert_eq!((r.unwrap_err().errno(), done), (Errno::EINVAL, 0));
    let bad_id = entries(&[inv(0, MOCK_NESTED_DOMAIN_IOTLB_ID_MAX + 1)]);
    assert_eq!(err(&bad_id, d, ENTRY_LEN, 1), (Errno::EINVAL, 0));

    // The first request is handled, the second fails: one is reported.
    let d0 = IOMMU_TEST_IOTLB_DEFAULT;
    let two = entries(&[inv(0, 0), inv(u32::MAX, 1)]);
    assert_eq!(err(&two, d, ENTRY_LEN, 2), (Errno::EOPNOTSUPP, 1));
    check_iotlbs(f, n0, [0, d0, d0, d0]);
    let two = entries(&[inv(0, 0), inv(0, MOCK_NESTED_DOMAIN_IOTLB_ID_MAX + 1)]);
    assert_eq!(err(&two, d, ENTRY_LEN, 2), (Errno::EINVAL, 1));
    check_iotlbs(f, n0, [0, d0, d0, d0]);

    let one = entries(&[inv(0, 1)]);
    assert_eq!(f.hwpt_invalidate(n0, d, &one, ENTRY_LEN, 1), (Ok(()), 1));
    check_iotlbs(f, n0, [0, 0, d0, d0]);
    let two = entries(&[inv(0, 2), inv(0, 3)]);
    assert_eq!(f.hwpt_invalidate(n0, d, &two, ENTRY_LEN, 2), (Ok(()), 2));
    check_iotlbs(f, n0, [0; 4]);
    let all = entries(&[inv(IOMMU_TEST_INVALIDATE_FLAG_ALL, 0)]);
    assert_eq!(f.hwpt_invalidate(n1, d, &all, ENTRY_LEN, 1), (Ok(()), 1));
    check_iotlbs(f, n1, [0; 4]);
    // Entries longer than ours are refused, even with a zero tail.
    assert_eq!(err(&one, d, ENTRY_LEN * 2, 1), (Errno::EINVAL, 0));

    // MD_CHECK_IOTLB: index and value are checked; other HWPTs are not nested.
    expect_errno(
        f.check_iotlb(n1, MOCK_NESTED_DOMAIN_IOTLB_NUM, 0),
        Errno::EINVAL,
    );
    expect_errno(f.check_iotlb(n1, 0, 1), Errno::EINVAL);
    expect_errno(f.check_iotlb(parent, 0, 0), Errno::ENOENT);

    // Devices attach to nested HWPTs, which are then busy.
    assert_eq!(f.mock_domain_replace(s.stdev_id, n0).unwrap(), n0);
    expect_errno(f.destroy(n0), Errno::EBUSY);
    assert_eq!(f.mock_domain_replace(s.stdev_id, n1).unwrap(), n1);
    expect_errno(f.destroy(n1), Errno::EBUSY);
    f.destroy(n0).unwrap();
    // MD_CHECK_MAP and dirty tracking want a paging HWPT.
    expect_errno(f.check_map(n1, MOCK_APERTURE_START, 0, 0), Errno::ENOENT);
    expect_errno(f.set_dirty_tracking(n1, true), Errno::ENOENT);

    f.mock_domain_replace(s.stdev_id, parent).unwrap();
    f.destroy(n1).unwrap();
    f.mock_domain_replace(s.stdev_id, s.ioas_id).unwrap();
    f.destroy(parent).unwrap();
    f.destroy(not_parent).unwrap();
}

/// The kernel's user-data copy for nested allocation: a shorter length
/// zero-extends down to the original struct, a longer one is EINVAL even with a
/// zero tail; the PASID flag is the only one the mock takes.
fn nested_data_rules(v: IoasVariant) {
    let s = IoasFixture::new(v);
    let f = &s.f;
    if s.device_id == 0 {
        return;
    }
    let dev = s.device_id;
    let parent = f
        .hwpt_alloc(dev, s.ioas_id, IOMMU_HWPT_ALLOC_NEST_PARENT)
        .unwrap();
    let t = IOMMU_HWPT_DATA_SELFTEST;
    let short = f
        .hwpt_alloc_data(dev, parent, 0, t, &0x1234u32.to_ne_bytes())
        .unwrap();
    check_iotlbs(f, short, [0x1234; 4]);
    let mut long = DATA.as_bytes().to_vec();
    long.extend_from_slice(&[0; 4]);
    expect_errno(f.hwpt_alloc_data(dev, parent, 0, t, &long), Errno::EINVAL);
    let pasid = f
        .hwpt_alloc_data(dev, parent, IOMMU_HWPT_ALLOC_PASID, t, DATA.as_bytes())
        .unwrap();
    check_iotlbs(f, pasid, [IOMMU_TEST_IOTLB_DEFAULT; 4]);
    // An automatic HWPT is never a parent.
    expect_errno(nested(f, dev, s.hwpt_id), Errno::EINVAL);
    // A new device attaches straight to a nested HWPT; closing the context with
    // everything in place tears it down children first.
    let ids = f.mock_domain(pasid).unwrap();
    assert_eq!(ids.hwpt_id, pasid);
    expect_errno(f.destroy(parent), Errno::EBUSY);
}

macro_rules! per_variant {
    ($($test:ident),* $(,)?) => {
        per_variant!(@variant no_domain, NoDomain, $($test),*);
        per_variant!(@variant mock_domain, MockDomain, $($test),*);
        per_variant!(@variant two_mock_domain, TwoMockDomain, $($test),*);
        per_variant!(@variant mock_domain_limit, MockDomainLimit, $($test),*);
    };
    (@variant $module:ident, $variant:ident, $($test:ident),*) => {
        mod $module {
            $(
                #[test]
                fn $test() {
                    super::$test(super::IoasVariant::$variant);
                }
            )*
        }
    };
}

per_variant!(alloc_hwpt_nested, nested_data_rules);
