//! Pins every ioctl number to its literal value, and checks the `_IOC` helpers
//! against request numbers that other Linux subsystems are known to use.

use softiommu_uapi::ioctl::*;
use softiommu_uapi::iommufd::*;
use softiommu_uapi::test::IOMMU_TEST_CMD;

#[test]
fn iommufd_ioctl_numbers() {
    let pinned: &[(&str, u32, u32)] = &[
        ("IOMMU_DESTROY", IOMMU_DESTROY, 0x3b80),
        ("IOMMU_IOAS_ALLOC", IOMMU_IOAS_ALLOC, 0x3b81),
        ("IOMMU_IOAS_ALLOW_IOVAS", IOMMU_IOAS_ALLOW_IOVAS, 0x3b82),
        ("IOMMU_IOAS_COPY", IOMMU_IOAS_COPY, 0x3b83),
        ("IOMMU_IOAS_IOVA_RANGES", IOMMU_IOAS_IOVA_RANGES, 0x3b84),
        ("IOMMU_IOAS_MAP", IOMMU_IOAS_MAP, 0x3b85),
        ("IOMMU_IOAS_UNMAP", IOMMU_IOAS_UNMAP, 0x3b86),
        ("IOMMU_OPTION", IOMMU_OPTION, 0x3b87),
        ("IOMMU_VFIO_IOAS", IOMMU_VFIO_IOAS, 0x3b88),
        ("IOMMU_HWPT_ALLOC", IOMMU_HWPT_ALLOC, 0x3b89),
        ("IOMMU_GET_HW_INFO", IOMMU_GET_HW_INFO, 0x3b8a),
        (
            "IOMMU_HWPT_SET_DIRTY_TRACKING",
            IOMMU_HWPT_SET_DIRTY_TRACKING,
            0x3b8b,
        ),
        (
            "IOMMU_HWPT_GET_DIRTY_BITMAP",
            IOMMU_HWPT_GET_DIRTY_BITMAP,
            0x3b8c,
        ),
        ("IOMMU_HWPT_INVALIDATE", IOMMU_HWPT_INVALIDATE, 0x3b8d),
        ("IOMMU_FAULT_QUEUE_ALLOC", IOMMU_FAULT_QUEUE_ALLOC, 0x3b8e),
        ("IOMMU_IOAS_MAP_FILE", IOMMU_IOAS_MAP_FILE, 0x3b8f),
        ("IOMMU_VIOMMU_ALLOC", IOMMU_VIOMMU_ALLOC, 0x3b90),
        ("IOMMU_VDEVICE_ALLOC", IOMMU_VDEVICE_ALLOC, 0x3b91),
        (
            "IOMMU_IOAS_CHANGE_PROCESS",
            IOMMU_IOAS_CHANGE_PROCESS,
            0x3b92,
        ),
        ("IOMMU_VEVENTQ_ALLOC", IOMMU_VEVENTQ_ALLOC, 0x3b93),
        ("IOMMU_HW_QUEUE_ALLOC", IOMMU_HW_QUEUE_ALLOC, 0x3b94),
        ("IOMMU_TEST_CMD", IOMMU_TEST_CMD, 0x3ba0),
    ];
    for &(name, ours, literal) in pinned {
        assert_eq!(ours, literal, "{name} is {ours:#x}, expected {literal:#x}");
        // iommufd requests carry no direction and no size: the length lives in the
        // argument's own leading `size` field.
        assert_eq!(_IOC_DIR(ours), _IOC_NONE, "{name}");
        assert_eq!(_IOC_SIZE(ours), 0, "{name}");
        assert_eq!(_IOC_TYPE(ours), u32::from(b';'), "{name}");
    }
}

#[test]
fn command_numbers_are_consecutive() {
    let cmds = [
        IOMMUFD_CMD_DESTROY,
        IOMMUFD_CMD_IOAS_ALLOC,
        IOMMUFD_CMD_IOAS_ALLOW_IOVAS,
        IOMMUFD_CMD_IOAS_COPY,
        IOMMUFD_CMD_IOAS_IOVA_RANGES,
        IOMMUFD_CMD_IOAS_MAP,
        IOMMUFD_CMD_IOAS_UNMAP,
        IOMMUFD_CMD_OPTION,
        IOMMUFD_CMD_VFIO_IOAS,
        IOMMUFD_CMD_HWPT_ALLOC,
        IOMMUFD_CMD_GET_HW_INFO,
        IOMMUFD_CMD_HWPT_SET_DIRTY_TRACKING,
        IOMMUFD_CMD_HWPT_GET_DIRTY_BITMAP,
        IOMMUFD_CMD_HWPT_INVALIDATE,
        IOMMUFD_CMD_FAULT_QUEUE_ALLOC,
        IOMMUFD_CMD_IOAS_MAP_FILE,
        IOMMUFD_CMD_VIOMMU_ALLOC,
        IOMMUFD_CMD_VDEVICE_ALLOC,
        IOMMUFD_CMD_IOAS_CHANGE_PROCESS,
        IOMMUFD_CMD_VEVENTQ_ALLOC,
        IOMMUFD_CMD_HW_QUEUE_ALLOC,
    ];
    for (i, &cmd) in cmds.iter().enumerate() {
        assert_eq!(cmd, 0x80 + i as u32);
    }
    assert_eq!(IOMMUFD_CMD_BASE, 0x80);
}

#[test]
fn helpers_match_known_linux_numbers() {
    // VFIO_GET_API_VERSION = _IO(VFIO_TYPE, VFIO_BASE + 0), VFIO_TYPE = ';', VFIO_BASE = 100.
    assert_eq!(_IO(u32::from(b';'), 100), 0x3b64);
    // KVM_GET_API_VERSION and KVM_CREATE_VM: _IO(KVMIO, 0x00 / 0x01), KVMIO = 0xAE.
    assert_eq!(_IO(0xae, 0x00), 0xae00);
    assert_eq!(_IO(0xae, 0x01), 0xae01);
    // FS_IOC_GETFLAGS / FS_IOC_SETFLAGS: _IOR/_IOW('f', 1/2, long) on 64-bit.
    assert_eq!(_IOR::<i64>(u32::from(b'f'), 1), 0x8008_6601);
    assert_eq!(_IOW::<i64>(u32::from(b'f'), 2), 0x4008_6602);
    // TUNSETIFF: _IOW('T', 202, int).
    assert_eq!(_IOW::<i32>(u32::from(b'T'), 202), 0x4004_54ca);
    // KVM_SET_USER_MEMORY_REGION: _IOW(KVMIO, 0x46, 32-byte struct).
    assert_eq!(_IOW::<[u64; 4]>(0xae, 0x46), 0x4020_ae46);
    // KVM_GET_REGS: _IOR(KVMIO, 0x81, 144-byte struct kvm_regs on x86).
    assert_eq!(_IOR::<[u64; 18]>(0xae, 0x81), 0x8090_ae81);
    // KVM_GET_SUPPORTED_CPUID: _IOWR(KVMIO, 0x05, 8-byte struct kvm_cpuid2 header).
    assert_eq!(_IOWR::<[u32; 2]>(0xae, 0x05), 0xc008_ae05);
}

#[test]
fn helpers_match_libc() {
    // libc derives these from its own copy of the C headers: an independent source.
    // Compared as u32 because libc's request type is c_ulong on glibc, c_int on musl.
    assert_eq!(_IOW::<i32>(u32::from(b'T'), 202), libc::TUNSETIFF as u32);
    assert_eq!(
        _IOR::<libc::c_long>(u32::from(b'f'), 1),
        libc::FS_IOC_GETFLAGS as u32
    );
    assert_eq!(
        _IOW::<libc::c_long>(u32::from(b'f'), 2),
        libc::FS_IOC_SETFLAGS as u32
    );
}

#[test]
fn decoders_take_numbers_apart() {
    let req = 0x4020_ae46; // KVM_SET_USER_MEMORY_REGION
    assert_eq!(_IOC_DIR(req), _IOC_WRITE);
    assert_eq!(_IOC_TYPE(req), 0xae);
    assert_eq!(_IOC_NR(req), 0x46);
    assert_eq!(_IOC_SIZE(req), 32);
    let req = 0xc008_ae05; // KVM_GET_SUPPORTED_CPUID
    assert_eq!(_IOC_DIR(req), _IOC_READ | _IOC_WRITE);
    assert_eq!(_IOC_SIZE(req), 8);
    assert_eq!(IOC_INOUT, 0xc000_0000);
    assert_eq!(IOC_IN, 0x4000_0000);
    assert_eq!(IOC_OUT, 0x8000_0000);
    assert_eq!(IOCSIZE_MASK, 0x3fff_0000);
}
