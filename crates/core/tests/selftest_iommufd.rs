//! Ports of the kernel selftest's `iommufd` fixture
//! (`tools/testing/selftests/iommu/iommufd.c`, Linux 6.12–6.17): a bare context with
//! no objects. `cmd_length` and `cmd_ex_fail`, and the bad-pointer and unknown-ioctl
//! halves of `cmd_fail`, test the ioctl ABI (struct sizes, EFAULT, ENOTTY, E2BIG),
//! which the typed API has no way to express; they belong to the ABI layer's tests.
#![allow(non_snake_case)]

mod common;

use common::{expect_errno, Fixture};
use softiommu::uapi::iommufd::{
    IOMMU_OPTION_HUGE_PAGES, IOMMU_OPTION_OP_GET, IOMMU_OPTION_OP_SET, IOMMU_OPTION_RLIMIT_MODE,
};
use softiommu::uapi::Errno;

#[test]
fn iommufd__simple_close() {
    let f = Fixture::new();
    f.check();
}

#[test]
fn iommufd__cmd_fail() {
    let f = Fixture::new();
    // Object 0 never exists.
    expect_errno(f.destroy(0), Errno::ENOENT);
}

#[test]
fn iommufd__global_options() {
    let f = Fixture::new();
    assert_eq!(
        f.option(IOMMU_OPTION_RLIMIT_MODE, IOMMU_OPTION_OP_GET, 0, 1)
            .unwrap(),
        0
    );

    // Setting it needs CAP_SYS_RESOURCE; the fixture's process runs as root.
    f.option(IOMMU_OPTION_RLIMIT_MODE, IOMMU_OPTION_OP_SET, 0, 1)
        .unwrap();
    expect_errno(
        f.option(IOMMU_OPTION_RLIMIT_MODE, IOMMU_OPTION_OP_SET, 0, 2),
        Errno::EINVAL,
    );

    assert_eq!(
        f.option(IOMMU_OPTION_RLIMIT_MODE, IOMMU_OPTION_OP_GET, 0, 0)
            .unwrap(),
        1
    );

    f.option(IOMMU_OPTION_RLIMIT_MODE, IOMMU_OPTION_OP_SET, 0, 0)
        .unwrap();

    // HUGE_PAGES is per IOAS: object 0 is no IOAS.
    expect_errno(
        f.option(IOMMU_OPTION_HUGE_PAGES, IOMMU_OPTION_OP_GET, 0, 0),
        Errno::ENOENT,
    );
    expect_errno(
        f.option(IOMMU_OPTION_HUGE_PAGES, IOMMU_OPTION_OP_SET, 0, 0),
        Errno::ENOENT,
    );
}

/// Not a kernel test: without the privilege the kernel's test takes for granted,
/// setting RLIMIT_MODE fails with EPERM (`capable(CAP_SYS_RESOURCE)`).
#[test]
fn iommufd__global_options_unprivileged() {
    let f = Fixture::new();
    f.process.set_cap_sys_resource(false);
    expect_errno(
        f.option(IOMMU_OPTION_RLIMIT_MODE, IOMMU_OPTION_OP_SET, 0, 1),
        Errno::EPERM,
    );
    assert_eq!(
        f.option(IOMMU_OPTION_RLIMIT_MODE, IOMMU_OPTION_OP_GET, 0, 0)
            .unwrap(),
        0
    );
}
