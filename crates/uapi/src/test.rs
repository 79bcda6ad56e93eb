//! `drivers/iommu/iommufd/iommufd_test.h`: the selftest ioctl and the mock driver's formats.
//!
//! A kernel built with `CONFIG_IOMMUFD_TEST` accepts one extra ioctl on `/dev/iommu`,
//! [`IOMMU_TEST_CMD`], whose argument [`iommu_test_cmd`] multiplexes test operations
//! (`IOMMU_TEST_OP_*`) that poke at internals: create mock devices and domains, check
//! what a mock domain maps, act as an in-kernel "access" user, inject faults and
//! events. The same header fixes the mock driver's data formats (hw_info, nested
//! HWPT data, invalidation entries, vIOMMU data, vEVENTs) and the type numbers that
//! select them. The kernel's own selftests are written against these, so a model
//! that implements them can run those tests unmodified.
//!
//! This follows the newest mainline header found (with the DMABUF test operations
//! and the `MOCK_IOMMUPT_*` page-table selector, after `MOCK_IOMMUPT_AMDV1` was
//! dropped again). Operation numbers are append-only, so older selftests work
//! against it, with the two differences noted on [`MOCK_FLAGS_DEVICE_HUGE_IOVA`]
//! and [`iommu_hwpt_selftest`].
//!
//! The C union inside `iommu_test_cmd` is the byte payload
//! [`iommu_test_cmd::payload`], with one `#[repr(C)]` struct per union member
//! (`iommu_test_cmd_<member>`). The [`TestCmdPayload`] trait ties each member struct
//! to the operation that uses it and gives safe, zerocopy-based views of the payload.

#![allow(non_camel_case_types)]

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

use crate::ioctl::_IO;
use crate::iommufd::{IOMMUFD_CMD_BASE, IOMMUFD_TYPE};

// ---------------------------------------------------------------------------------
// Operations

/// Test operation: reserve an IOVA range in an IOAS ([`iommu_test_cmd_add_reserved`]).
pub const IOMMU_TEST_OP_ADD_RESERVED: u32 = 1;
/// Test operation: create a mock device attached to a new mock domain ([`iommu_test_cmd_mock_domain`]).
pub const IOMMU_TEST_OP_MOCK_DOMAIN: u32 = 2;
/// Test operation: check that a mock domain maps a range to a user buffer ([`iommu_test_cmd_check_map`]).
pub const IOMMU_TEST_OP_MD_CHECK_MAP: u32 = 3;
/// Test operation: check the pin count of a user buffer's pages ([`iommu_test_cmd_check_refs`]).
pub const IOMMU_TEST_OP_MD_CHECK_REFS: u32 = 4;
/// Test operation: create an access object and its fd ([`iommu_test_cmd_create_access`]).
pub const IOMMU_TEST_OP_CREATE_ACCESS: u32 = 5;
/// Test operation: unpin pages pinned through an access ([`iommu_test_cmd_destroy_access_pages`]).
pub const IOMMU_TEST_OP_DESTROY_ACCESS_PAGES: u32 = 6;
/// Test operation: pin pages of an IOVA range through an access ([`iommu_test_cmd_access_pages`]).
pub const IOMMU_TEST_OP_ACCESS_PAGES: u32 = 7;
/// Test operation: copy to or from an IOVA range through an access ([`iommu_test_cmd_access_rw`]).
pub const IOMMU_TEST_OP_ACCESS_RW: u32 = 8;
/// Test operation: lower the page-pinning limit temporarily ([`iommu_test_cmd_memory_limit`]).
pub const IOMMU_TEST_OP_SET_TEMP_MEMORY_LIMIT: u32 = 9;
/// Test operation: move a mock device to another HWPT or IOAS ([`iommu_test_cmd_mock_domain_replace`]).
pub const IOMMU_TEST_OP_MOCK_DOMAIN_REPLACE: u32 = 10;
/// Test operation: move an access to another IOAS ([`iommu_test_cmd_access_replace_ioas`]).
pub const IOMMU_TEST_OP_ACCESS_REPLACE_IOAS: u32 = 11;
/// Test operation: [`IOMMU_TEST_OP_MOCK_DOMAIN`] with device flags ([`iommu_test_cmd_mock_domain_flags`]).
pub const IOMMU_TEST_OP_MOCK_DOMAIN_FLAGS: u32 = 12;
/// Test operation: mark pages of a mock domain dirty ([`iommu_test_cmd_dirty`]).
pub const IOMMU_TEST_OP_DIRTY: u32 = 13;
/// Test operation: check a mock nested domain's IOTLB entry ([`iommu_test_cmd_check_iotlb`]).
pub const IOMMU_TEST_OP_MD_CHECK_IOTLB: u32 = 14;
/// Test operation: raise an I/O page fault from a mock device ([`iommu_test_cmd_trigger_iopf`]).
pub const IOMMU_TEST_OP_TRIGGER_IOPF: u32 = 15;
/// Test operation: check a mock device's cache entry ([`iommu_test_cmd_check_dev_cache`]).
pub const IOMMU_TEST_OP_DEV_CHECK_CACHE: u32 = 16;
/// Test operation: raise a vEVENT for a mock device ([`iommu_test_cmd_trigger_vevent`]).
pub const IOMMU_TEST_OP_TRIGGER_VEVENT: u32 = 17;
/// Test operation: attach a HWPT to a PASID of a mock device ([`iommu_test_cmd_pasid_attach`]).
pub const IOMMU_TEST_OP_PASID_ATTACH: u32 = 18;
/// Test operation: replace the HWPT on a PASID of a mock device ([`iommu_test_cmd_pasid_replace`]).
pub const IOMMU_TEST_OP_PASID_REPLACE: u32 = 19;
/// Test operation: detach a PASID of a mock device ([`iommu_test_cmd_pasid_detach`]).
pub const IOMMU_TEST_OP_PASID_DETACH: u32 = 20;
/// Test operation: check which HWPT a PASID of a mock device uses ([`iommu_test_cmd_pasid_check`]).
pub const IOMMU_TEST_OP_PASID_CHECK_HWPT: u32 = 21;
/// Test operation: create a test dma-buf and return its fd ([`iommu_test_cmd_dmabuf_get`]).
pub const IOMMU_TEST_OP_DMABUF_GET: u32 = 22;
/// Test operation: revoke or restore a test dma-buf ([`iommu_test_cmd_dmabuf_revoke`]).
pub const IOMMU_TEST_OP_DMABUF_REVOKE: u32 = 23;

// ---------------------------------------------------------------------------------
// Mock page-table formats and mock domain geometry

/// Mock page-table format (in [`iommu_hwpt_selftest::pagetable_type`]): the default.
pub const MOCK_IOMMUPT_DEFAULT: u32 = 0;
/// Mock page-table format that also maps huge pages.
pub const MOCK_IOMMUPT_HUGE: u32 = 1;

/// First IOVA of a default mock domain's aperture.
pub const MOCK_APERTURE_START: u64 = 1 << 24;
/// Last IOVA (inclusive) of a default mock domain's aperture.
pub const MOCK_APERTURE_LAST: u64 = (1 << 31) - 1;
/// I/O page size of the default mock domain: half of a 4 KiB CPU page, on purpose.
pub const MOCK_PAGE_SIZE: u64 = 2048;
/// Huge page size of the mock domain.
pub const MOCK_HUGE_PAGE_SIZE: u64 = 512 * MOCK_PAGE_SIZE;

// ---------------------------------------------------------------------------------
// Flags

/// [`iommu_test_cmd_access_pages::flags`]: pin for writing.
pub const MOCK_FLAGS_ACCESS_WRITE: u32 = 1 << 0;
/// [`iommu_test_cmd_access_pages::flags`]: syzkaller mode, `uptr` is taken as an offset.
pub const MOCK_FLAGS_ACCESS_SYZ: u32 = 1 << 16;

/// [`iommu_test_cmd_access_rw::flags`]: write to the IOVA (clear: read from it).
pub const MOCK_ACCESS_RW_WRITE: u32 = 1 << 0;
/// [`iommu_test_cmd_access_rw::flags`]: force the slow, page-by-page copy.
pub const MOCK_ACCESS_RW_SLOW_PATH: u32 = 1 << 2;

/// [`iommu_test_cmd_create_access::flags`]: the access pins pages (needs an unmap callback).
pub const MOCK_FLAGS_ACCESS_CREATE_NEEDS_PIN_PAGES: u32 = 1 << 0;

/// [`iommu_test_cmd_mock_domain_flags::dev_flags`]: the mock device cannot track dirty pages.
pub const MOCK_FLAGS_DEVICE_NO_DIRTY: u32 = 1 << 0;
/// Legacy device flag: the mock domain uses huge IOVA pages.
///
/// Defined by headers up to the generic page-table rework and still passed by the
/// selftests of that era; the newest header drops it in favour of
/// [`MOCK_IOMMUPT_HUGE`], leaving bit 1 unused.
pub const MOCK_FLAGS_DEVICE_HUGE_IOVA: u32 = 1 << 1;
/// [`iommu_test_cmd_mock_domain_flags::dev_flags`]: the mock device supports PASID.
pub const MOCK_FLAGS_DEVICE_PASID: u32 = 1 << 2;

/// Largest IOTLB entry index of a mock nested domain.
pub const MOCK_NESTED_DOMAIN_IOTLB_ID_MAX: u32 = 3;
/// Number of IOTLB entries of a mock nested domain.
pub const MOCK_NESTED_DOMAIN_IOTLB_NUM: u32 = 4;

/// Largest cache entry index of a mock device.
pub const MOCK_DEV_CACHE_ID_MAX: u32 = 3;
/// Number of cache entries of a mock device.
pub const MOCK_DEV_CACHE_NUM: u32 = 4;

/// A PASID the selftests keep for a special replace case.
pub const IOMMU_TEST_PASID_RESERVED: u32 = 1024;

// ---------------------------------------------------------------------------------
// IOMMU_TEST_CMD

/// Argument of [`IOMMU_TEST_CMD`].
///
/// The C struct holds an anonymous union of per-operation structs at offset 16; here
/// it is [`payload`](Self::payload), 48 bytes (its largest member, `dirty`) aligned
/// to 8. Read and write it through [`iommu_test_cmd::payload_as`],
/// [`iommu_test_cmd::payload_mut`] and [`iommu_test_cmd::set_payload`].
///
/// `__pad` names the 4 bytes of tail padding that C leaves after `last`
/// (`sizeof` is 72 on 64-bit targets); it is not in the header.
#[repr(C)]
#[derive(
    Debug, Default, Clone, Copy, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct iommu_test_cmd {
    /// `sizeof(struct iommu_test_cmd)`.
    pub size: u32,
    /// One of `IOMMU_TEST_OP_*`.
    pub op: u32,
    /// Object the operation acts on (IOAS, HWPT, mock device or access, per op).
    pub id: u32,
    /// Must be 0.
    pub __reserved: u32,
    /// The C union of per-operation arguments, as raw words.
    pub payload: [u64; 6],
    /// Scratch field after the union; the kernel ignores it.
    pub last: u32,
    /// Tail padding of the C struct, made explicit.
    pub __pad: u32,
}
layout!(iommu_test_cmd, 72;
    size 0, op 4, id 8, __reserved 12,
    payload 16 [union
        add_reserved: iommu_test_cmd_add_reserved,
        mock_domain: iommu_test_cmd_mock_domain,
        mock_domain_flags: iommu_test_cmd_mock_domain_flags,
        mock_domain_replace: iommu_test_cmd_mock_domain_replace,
        check_map: iommu_test_cmd_check_map,
        check_refs: iommu_test_cmd_check_refs,
        create_access: iommu_test_cmd_create_access,
        destroy_access_pages: iommu_test_cmd_destroy_access_pages,
        access_pages: iommu_test_cmd_access_pages,
        access_rw: iommu_test_cmd_access_rw,
        memory_limit: iommu_test_cmd_memory_limit,
        access_replace_ioas: iommu_test_cmd_access_replace_ioas,
        dirty: iommu_test_cmd_dirty,
        check_iotlb: iommu_test_cmd_check_iotlb,
        trigger_iopf: iommu_test_cmd_trigger_iopf,
        check_dev_cache: iommu_test_cmd_check_dev_cache,
        trigger_vevent: iommu_test_cmd_trigger_vevent,
        pasid_attach: iommu_test_cmd_pasid_attach,
        pasid_replace: iommu_test_cmd_pasid_replace,
        pasid_detach: iommu_test_cmd_pasid_detach,
        pasid_check: iommu_test_cmd_pasid_check,
        dmabuf_get: iommu_test_cmd_dmabuf_get,
        dmabuf_revoke: iommu_test_cmd_dmabuf_revoke],
    last 64, __pad 68 [pad]);

/// Size in bytes of the union in [`iommu_test_cmd`].
pub const IOMMU_TEST_CMD_PAYLOAD_SIZE: usize = core::mem::size_of::<[u64; 6]>();

/// Runs a test operation.
pub const IOMMU_TEST_CMD: u32 = _IO(IOMMUFD_TYPE, IOMMUFD_CMD_BASE + 32);

mod sealed {
    pub trait Sealed {}
}

/// A member of the union in [`iommu_test_cmd`], tied to the operation that uses it.
///
/// Implemented only by the `iommu_test_cmd_*` structs of this module, each checked at
/// compile time to fit the payload, which is what lets the payload views below be
/// infallible.
pub trait TestCmdPayload:
    sealed::Sealed + FromBytes + IntoBytes + Immutable + KnownLayout + Copy
{
    /// The `IOMMU_TEST_OP_*` that reads this member.
    const OP: u32;
}

impl iommu_test_cmd {
    /// A command for `T::OP` on object `id` with the given payload; `size` is filled in.
    pub fn new<T: TestCmdPayload>(id: u32, payload: &T) -> Self {
        let mut cmd = iommu_test_cmd {
            size: core::mem::size_of::<Self>() as u32,
            op: T::OP,
            id,
            ..Default::default()
        };
        cmd.set_payload(payload);
        cmd
    }

    /// The payload read as union member `T`, whatever `op` says.
    pub fn payload_as<T: TestCmdPayload>(&self) -> T {
        let (value, _) = T::read_from_prefix(self.payload.as_bytes())
            .expect("TestCmdPayload types fit the payload, checked at compile time");
        value
    }

    /// The payload viewed in place as union member `T`, for writing outputs back.
    pub fn payload_mut<T: TestCmdPayload>(&mut self) -> &mut T {
        let (value, _) = T::mut_from_prefix(self.payload.as_mut_bytes())
            .expect("TestCmdPayload types fit the 8-aligned payload, checked at compile time");
        value
    }

    /// Replaces the payload with `value`, zeroing the bytes past it.
    pub fn set_payload<T: TestCmdPayload>(&mut self, value: &T) {
        let bytes = value.as_bytes();
        let dst = self.payload.as_mut_bytes();
        dst.fill(0);
        dst[..bytes.len()].copy_from_slice(bytes);
    }
}

/// Declares which operation reads a union member, and checks that it fits.
macro_rules! test_payload {
    ($($t:ident => $op:ident,)*) => {$(
        impl sealed::Sealed for $t {}
        impl TestCmdPayload for $t {
            const OP: u32 = $op;
        }
        const _: () = assert!(
            core::mem::size_of::<$t>() <= IOMMU_TEST_CMD_PAYLOAD_SIZE
                && core::mem::align_of::<$t>() <= core::mem::align_of::<[u64; 6]>(),
            concat!(stringify!($t), " does not fit the iommu_test_cmd payload"),
        );
    )*};
}

/// Union member `add_reserved` of [`iommu_test_cmd`].
#[repr(C)]
#[derive(
    Debug, Default, Clone, Copy, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct iommu_test_cmd_add_reserved {
    /// First IOVA to reserve.
    pub start: u64,
    /// Length of the reserved range.
    pub length: u64,
}
layout!(iommu_test_cmd_add_reserved, 16; start 0, length 8);

/// Union member `mock_domain` of [`iommu_test_cmd`]; `id` is the IOAS or HWPT to attach.
#[repr(C)]
#[derive(
    Debug, Default, Clone, Copy, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct iommu_test_cmd_mock_domain {
    /// Output: ID of the selftest device object (destroying it unplugs the device).
    pub out_stdev_id: u32,
    /// Output: HWPT the device got attached to.
    pub out_hwpt_id: u32,
    /// Output: ID of the device as bound to the iommufd (the usual `dev_id`).
    pub out_idev_id: u32,
}
layout!(iommu_test_cmd_mock_domain, 12; out_stdev_id 0, out_hwpt_id 4, out_idev_id 8);

/// Union member `mock_domain_flags` of [`iommu_test_cmd`]: `mock_domain` plus device flags.
#[repr(C)]
#[derive(
    Debug, Default, Clone, Copy, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct iommu_test_cmd_mock_domain_flags {
    /// Output: as in [`iommu_test_cmd_mock_domain::out_stdev_id`].
    pub out_stdev_id: u32,
    /// Output: as in [`iommu_test_cmd_mock_domain::out_hwpt_id`].
    pub out_hwpt_id: u32,
    /// Output: as in [`iommu_test_cmd_mock_domain::out_idev_id`].
    pub out_idev_id: u32,
    /// Combination of `MOCK_FLAGS_DEVICE_*`.
    pub dev_flags: u32,
}
layout!(iommu_test_cmd_mock_domain_flags, 16;
    out_stdev_id 0, out_hwpt_id 4, out_idev_id 8, dev_flags 12);

/// Union member `mock_domain_replace` of [`iommu_test_cmd`]; `id` is the selftest device.
#[repr(C)]
#[derive(
    Debug, Default, Clone, Copy, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct iommu_test_cmd_mock_domain_replace {
    /// In: new IOAS or HWPT; out: the HWPT now attached.
    pub pt_id: u32,
}
layout!(iommu_test_cmd_mock_domain_replace, 4; pt_id 0);

/// Union member `check_map` of [`iommu_test_cmd`]; `id` is the IOAS or HWPT to check.
#[repr(C)]
#[derive(
    Debug, Default, Clone, Copy, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct iommu_test_cmd_check_map {
    /// First IOVA to check.
    pub iova: u64,
    /// Length of the range.
    pub length: u64,
    /// User address that the range must map, page by page.
    pub uptr: u64,
}
layout!(iommu_test_cmd_check_map, 24; iova 0, length 8, uptr 16);

/// Union member `check_refs` of [`iommu_test_cmd`].
///
/// `__pad` names the 4 bytes of tail padding after `refs` (not in the header).
#[repr(C)]
#[derive(
    Debug, Default, Clone, Copy, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct iommu_test_cmd_check_refs {
    /// Length of the user range.
    pub length: u64,
    /// Start of the user range.
    pub uptr: u64,
    /// Expected pin count of every page in the range.
    pub refs: u32,
    /// Tail padding of the C struct, made explicit.
    pub __pad: u32,
}
layout!(iommu_test_cmd_check_refs, 24; length 0, uptr 8, refs 16, __pad 20 [pad]);

/// Union member `create_access` of [`iommu_test_cmd`]; `id` is the IOAS.
#[repr(C)]
#[derive(
    Debug, Default, Clone, Copy, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct iommu_test_cmd_create_access {
    /// Output: fd of the new access; closing it destroys the access.
    pub out_access_fd: u32,
    /// Combination of `MOCK_FLAGS_ACCESS_CREATE_*`.
    pub flags: u32,
}
layout!(iommu_test_cmd_create_access, 8; out_access_fd 0, flags 4);

/// Union member `destroy_access_pages` of [`iommu_test_cmd`]; `id` is the access fd.
#[repr(C)]
#[derive(
    Debug, Default, Clone, Copy, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct iommu_test_cmd_destroy_access_pages {
    /// ID returned by [`IOMMU_TEST_OP_ACCESS_PAGES`].
    pub access_pages_id: u32,
}
layout!(iommu_test_cmd_destroy_access_pages, 4; access_pages_id 0);

/// Union member `access_pages` of [`iommu_test_cmd`]; `id` is the access fd.
#[repr(C)]
#[derive(
    Debug, Default, Clone, Copy, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct iommu_test_cmd_access_pages {
    /// Combination of `MOCK_FLAGS_ACCESS_*`.
    pub flags: u32,
    /// Output: ID naming this pin, for [`IOMMU_TEST_OP_DESTROY_ACCESS_PAGES`].
    pub out_access_pages_id: u32,
    /// First IOVA to pin.
    pub iova: u64,
    /// Length of the range.
    pub length: u64,
    /// User address the pinned pages are expected to back.
    pub uptr: u64,
}
layout!(iommu_test_cmd_access_pages, 32;
    flags 0, out_access_pages_id 4, iova 8, length 16, uptr 24);

/// Union member `access_rw` of [`iommu_test_cmd`]; `id` is the access fd.
///
/// `__pad` names the 4 bytes of tail padding after `flags` (not in the header).
#[repr(C)]
#[derive(
    Debug, Default, Clone, Copy, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct iommu_test_cmd_access_rw {
    /// First IOVA to access.
    pub iova: u64,
    /// Number of bytes.
    pub length: u64,
    /// User buffer to copy from or to.
    pub uptr: u64,
    /// Combination of `MOCK_ACCESS_RW_*`.
    pub flags: u32,
    /// Tail padding of the C struct, made explicit.
    pub __pad: u32,
}
layout!(iommu_test_cmd_access_rw, 32; iova 0, length 8, uptr 16, flags 24, __pad 28 [pad]);

/// Union member `memory_limit` of [`iommu_test_cmd`].
#[repr(C)]
#[derive(
    Debug, Default, Clone, Copy, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct iommu_test_cmd_memory_limit {
    /// New limit, in pages.
    pub limit: u32,
}
layout!(iommu_test_cmd_memory_limit, 4; limit 0);

/// Union member `access_replace_ioas` of [`iommu_test_cmd`]; `id` is the access fd.
#[repr(C)]
#[derive(
    Debug, Default, Clone, Copy, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct iommu_test_cmd_access_replace_ioas {
    /// IOAS to move the access to.
    pub ioas_id: u32,
}
layout!(iommu_test_cmd_access_replace_ioas, 4; ioas_id 0);

/// Union member `dirty` of [`iommu_test_cmd`] (the largest); `id` is the HWPT.
///
/// `__pad` names the 4 bytes of padding that C puts after `flags` (not in the header).
#[repr(C)]
#[derive(
    Debug, Default, Clone, Copy, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct iommu_test_cmd_dirty {
    /// Must be 0.
    pub flags: u32,
    /// Padding of the C struct, made explicit.
    pub __pad: u32,
    /// First IOVA of the range.
    pub iova: u64,
    /// Length of the range.
    pub length: u64,
    /// Bytes of IOVA per bitmap bit.
    pub page_size: u64,
    /// User pointer to the bitmap of pages to mark dirty.
    pub uptr: u64,
    /// Output: number of pages marked dirty.
    pub out_nr_dirty: u64,
}
layout!(iommu_test_cmd_dirty, 48;
    flags 0, __pad 4 [pad], iova 8, length 16, page_size 24, uptr 32, out_nr_dirty 40);

/// Union member `check_iotlb` of [`iommu_test_cmd`]; `id` is the nested HWPT.
#[repr(C)]
#[derive(
    Debug, Default, Clone, Copy, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct iommu_test_cmd_check_iotlb {
    /// IOTLB entry index, at most [`MOCK_NESTED_DOMAIN_IOTLB_ID_MAX`].
    pub id: u32,
    /// Expected value of the entry.
    pub iotlb: u32,
}
layout!(iommu_test_cmd_check_iotlb, 8; id 0, iotlb 4);

/// Union member `trigger_iopf` of [`iommu_test_cmd`].
#[repr(C)]
#[derive(
    Debug, Default, Clone, Copy, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct iommu_test_cmd_trigger_iopf {
    /// Mock device that faults.
    pub dev_id: u32,
    /// PASID of the faulting access.
    pub pasid: u32,
    /// Page request group index.
    pub grpid: u32,
    /// Combination of `IOMMU_PGFAULT_PERM_*`.
    pub perm: u32,
    /// Faulting address (a plain `__u64` in C, 8-aligned here as there).
    pub addr: u64,
}
layout!(iommu_test_cmd_trigger_iopf, 24; dev_id 0, pasid 4, grpid 8, perm 12, addr 16 [c "__u64"]);

/// Union member `check_dev_cache` of [`iommu_test_cmd`]; `id` is the mock device.
#[repr(C)]
#[derive(
    Debug, Default, Clone, Copy, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct iommu_test_cmd_check_dev_cache {
    /// Cache entry index, at most [`MOCK_DEV_CACHE_ID_MAX`].
    pub id: u32,
    /// Expected value of the entry.
    pub cache: u32,
}
layout!(iommu_test_cmd_check_dev_cache, 8; id 0, cache 4);

/// Union member `trigger_vevent` of [`iommu_test_cmd`].
#[repr(C)]
#[derive(
    Debug, Default, Clone, Copy, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct iommu_test_cmd_trigger_vevent {
    /// Mock device the event is about.
    pub dev_id: u32,
}
layout!(iommu_test_cmd_trigger_vevent, 4; dev_id 0);

/// Union member `pasid_attach` of [`iommu_test_cmd`]; `id` is the selftest device.
#[repr(C)]
#[derive(
    Debug, Default, Clone, Copy, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct iommu_test_cmd_pasid_attach {
    /// PASID to attach.
    pub pasid: u32,
    /// In: IOAS or HWPT; out: the HWPT attached.
    pub pt_id: u32,
}
layout!(iommu_test_cmd_pasid_attach, 8; pasid 0, pt_id 4);

/// Union member `pasid_replace` of [`iommu_test_cmd`]; `id` is the selftest device.
#[repr(C)]
#[derive(
    Debug, Default, Clone, Copy, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct iommu_test_cmd_pasid_replace {
    /// PASID whose attachment to replace.
    pub pasid: u32,
    /// In: IOAS or HWPT; out: the HWPT attached.
    pub pt_id: u32,
}
layout!(iommu_test_cmd_pasid_replace, 8; pasid 0, pt_id 4);

/// Union member `pasid_detach` of [`iommu_test_cmd`]; `id` is the selftest device.
#[repr(C)]
#[derive(
    Debug, Default, Clone, Copy, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct iommu_test_cmd_pasid_detach {
    /// PASID to detach.
    pub pasid: u32,
}
layout!(iommu_test_cmd_pasid_detach, 4; pasid 0);

/// Union member `pasid_check` of [`iommu_test_cmd`]; `id` is the selftest device.
#[repr(C)]
#[derive(
    Debug, Default, Clone, Copy, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct iommu_test_cmd_pasid_check {
    /// PASID to look at.
    pub pasid: u32,
    /// Expected HWPT (0: nothing attached).
    pub hwpt_id: u32,
}
layout!(iommu_test_cmd_pasid_check, 8; pasid 0, hwpt_id 4);

/// Union member `dmabuf_get` of [`iommu_test_cmd`]; the new fd is the ioctl's return value.
#[repr(C)]
#[derive(
    Debug, Default, Clone, Copy, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct iommu_test_cmd_dmabuf_get {
    /// Size of the dma-buf in bytes.
    pub length: u32,
    /// `open(2)`-style flags for the dma-buf fd.
    pub open_flags: u32,
}
layout!(iommu_test_cmd_dmabuf_get, 8; length 0, open_flags 4);

/// Union member `dmabuf_revoke` of [`iommu_test_cmd`].
#[repr(C)]
#[derive(
    Debug, Default, Clone, Copy, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct iommu_test_cmd_dmabuf_revoke {
    /// fd of a test dma-buf.
    pub dmabuf_fd: i32,
    /// Non-zero revokes the dma-buf, zero makes it usable again.
    pub revoked: u32,
}
layout!(iommu_test_cmd_dmabuf_revoke, 8; dmabuf_fd 0, revoked 4);

test_payload! {
    iommu_test_cmd_add_reserved => IOMMU_TEST_OP_ADD_RESERVED,
    iommu_test_cmd_mock_domain => IOMMU_TEST_OP_MOCK_DOMAIN,
    iommu_test_cmd_check_map => IOMMU_TEST_OP_MD_CHECK_MAP,
    iommu_test_cmd_check_refs => IOMMU_TEST_OP_MD_CHECK_REFS,
    iommu_test_cmd_create_access => IOMMU_TEST_OP_CREATE_ACCESS,
    iommu_test_cmd_destroy_access_pages => IOMMU_TEST_OP_DESTROY_ACCESS_PAGES,
    iommu_test_cmd_access_pages => IOMMU_TEST_OP_ACCESS_PAGES,
    iommu_test_cmd_access_rw => IOMMU_TEST_OP_ACCESS_RW,
    iommu_test_cmd_memory_limit => IOMMU_TEST_OP_SET_TEMP_MEMORY_LIMIT,
    iommu_test_cmd_mock_domain_replace => IOMMU_TEST_OP_MOCK_DOMAIN_REPLACE,
    iommu_test_cmd_access_replace_ioas => IOMMU_TEST_OP_ACCESS_REPLACE_IOAS,
    iommu_test_cmd_mock_domain_flags => IOMMU_TEST_OP_MOCK_DOMAIN_FLAGS,
    iommu_test_cmd_dirty => IOMMU_TEST_OP_DIRTY,
    iommu_test_cmd_check_iotlb => IOMMU_TEST_OP_MD_CHECK_IOTLB,
    iommu_test_cmd_trigger_iopf => IOMMU_TEST_OP_TRIGGER_IOPF,
    iommu_test_cmd_check_dev_cache => IOMMU_TEST_OP_DEV_CHECK_CACHE,
    iommu_test_cmd_trigger_vevent => IOMMU_TEST_OP_TRIGGER_VEVENT,
    iommu_test_cmd_pasid_attach => IOMMU_TEST_OP_PASID_ATTACH,
    iommu_test_cmd_pasid_replace => IOMMU_TEST_OP_PASID_REPLACE,
    iommu_test_cmd_pasid_detach => IOMMU_TEST_OP_PASID_DETACH,
    iommu_test_cmd_pasid_check => IOMMU_TEST_OP_PASID_CHECK_HWPT,
    iommu_test_cmd_dmabuf_get => IOMMU_TEST_OP_DMABUF_GET,
    iommu_test_cmd_dmabuf_revoke => IOMMU_TEST_OP_DMABUF_REVOKE,
}

// The union is exactly as large as its largest member, as in C.
const _: () = assert!(core::mem::size_of::<iommu_test_cmd_dirty>() == IOMMU_TEST_CMD_PAYLOAD_SIZE);

// ---------------------------------------------------------------------------------
// Mock driver data formats

/// PASID width, in bits, of mock devices and the mock IOMMU.
pub const MOCK_PASID_WIDTH: u32 = 20;

/// [`iommu_hw_info`](crate::iommufd::iommu_hw_info) data type of the mock driver.
pub const IOMMU_HW_INFO_TYPE_SELFTEST: u32 = 0xfeedbeef;
/// Value the mock driver reports in [`iommu_test_hw_info::test_reg`].
pub const IOMMU_HW_INFO_SELFTEST_REGVAL: u32 = 0xdeadbeef;

/// Hardware information of type [`IOMMU_HW_INFO_TYPE_SELFTEST`].
#[repr(C)]
#[derive(
    Debug, Default, Clone, Copy, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct iommu_test_hw_info {
    /// Always 0.
    pub flags: u32,
    /// Always [`IOMMU_HW_INFO_SELFTEST_REGVAL`].
    pub test_reg: u32,
}
layout!(iommu_test_hw_info, 8; flags 0, test_reg 4);

/// Nested-HWPT data type of the mock driver (outside the real `IOMMU_HWPT_DATA_*` values).
pub const IOMMU_HWPT_DATA_SELFTEST: u32 = 0xdead;
/// Initial value of every mock nested-domain IOTLB entry.
pub const IOMMU_TEST_IOTLB_DEFAULT: u32 = 0xbadbeef;
/// Initial value of every mock device cache entry.
pub const IOMMU_TEST_DEV_CACHE_DEFAULT: u32 = 0xbaddad;

/// Nested-HWPT data of type [`IOMMU_HWPT_DATA_SELFTEST`].
///
/// Older headers stop after `iotlb` (4 bytes); the kernel zero-extends such input,
/// which selects [`MOCK_IOMMUPT_DEFAULT`].
#[repr(C)]
#[derive(
    Debug, Default, Clone, Copy, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct iommu_hwpt_selftest {
    /// Initial value for the IOTLB entries, normally [`IOMMU_TEST_IOTLB_DEFAULT`].
    pub iotlb: u32,
    /// One of `MOCK_IOMMUPT_*`.
    pub pagetable_type: u32,
}
layout!(iommu_hwpt_selftest, 8; iotlb 0, pagetable_type 4);

/// HWPT invalidation data type of the mock driver.
pub const IOMMU_HWPT_INVALIDATE_DATA_SELFTEST: u32 = 0xdeadbeef;
/// A HWPT invalidation data type the mock driver rejects.
pub const IOMMU_HWPT_INVALIDATE_DATA_SELFTEST_INVALID: u32 = 0xdadbeef;

/// Flag of the mock invalidation entries: invalidate every entry, ignore the index.
pub const IOMMU_TEST_INVALIDATE_FLAG_ALL: u32 = 1 << 0;

/// One HWPT invalidation entry of type [`IOMMU_HWPT_INVALIDATE_DATA_SELFTEST`].
#[repr(C)]
#[derive(
    Debug, Default, Clone, Copy, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct iommu_hwpt_invalidate_selftest {
    /// Combination of `IOMMU_TEST_INVALIDATE_FLAG_*`.
    pub flags: u32,
    /// IOTLB entry to invalidate, unless `FLAG_ALL`.
    pub iotlb_id: u32,
}
layout!(iommu_hwpt_invalidate_selftest, 8; flags 0, iotlb_id 4);

/// vIOMMU type of the mock driver.
pub const IOMMU_VIOMMU_TYPE_SELFTEST: u32 = 0xdeadbeef;

/// vIOMMU data of type [`IOMMU_VIOMMU_TYPE_SELFTEST`].
#[repr(C)]
#[derive(
    Debug, Default, Clone, Copy, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct iommu_viommu_selftest {
    /// Input: any value.
    pub in_data: u32,
    /// Output: a copy of `in_data` (loopback).
    pub out_data: u32,
    /// Output: mmap offset (on the iommufd) of a page the mock vIOMMU exposes.
    pub out_mmap_offset: u64,
    /// Output: mmap length of that page.
    pub out_mmap_length: u64,
}
layout!(iommu_viommu_selftest, 24;
    in_data 0, out_data 4, out_mmap_offset 8, out_mmap_length 16);

/// vIOMMU invalidation data type of the mock driver.
pub const IOMMU_VIOMMU_INVALIDATE_DATA_SELFTEST: u32 = 0xdeadbeef;
/// A vIOMMU invalidation data type the mock driver rejects.
pub const IOMMU_VIOMMU_INVALIDATE_DATA_SELFTEST_INVALID: u32 = 0xdadbeef;

/// One vIOMMU invalidation entry of type [`IOMMU_VIOMMU_INVALIDATE_DATA_SELFTEST`].
#[repr(C)]
#[derive(
    Debug, Default, Clone, Copy, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct iommu_viommu_invalidate_selftest {
    /// Combination of `IOMMU_TEST_INVALIDATE_FLAG_*`.
    pub flags: u32,
    /// Virtual device ID whose cache to invalidate.
    pub vdev_id: u32,
    /// Cache entry to invalidate, unless `FLAG_ALL`.
    pub cache_id: u32,
}
layout!(iommu_viommu_invalidate_selftest, 12; flags 0, vdev_id 4, cache_id 8);

/// vEVENTQ type of the mock driver.
pub const IOMMU_VEVENTQ_TYPE_SELFTEST: u32 = 0xbeefbeef;

/// vEVENT record of type [`IOMMU_VEVENTQ_TYPE_SELFTEST`].
#[repr(C)]
#[derive(
    Debug, Default, Clone, Copy, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct iommu_viommu_event_selftest {
    /// Virtual ID of the device the event is about.
    pub virt_id: u32,
}
layout!(iommu_viommu_event_selftest, 4; virt_id 0);

/// HW queue type of the mock driver.
pub const IOMMU_HW_QUEUE_TYPE_SELFTEST: u32 = 0xdeadbeef;
/// Number of HW queues a mock vIOMMU accepts.
pub const IOMMU_TEST_HW_QUEUE_MAX: u32 = 2;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_sets_size_op_and_payload() {
        let cmd = iommu_test_cmd::new(
            7,
            &iommu_test_cmd_add_reserved {
                start: 0x1000,
                length: 0x2000,
            },
        );
        assert_eq!(cmd.size, 72);
        assert_eq!(cmd.op, IOMMU_TEST_OP_ADD_RESERVED);
        assert_eq!(cmd.id, 7);
        assert_eq!(cmd.payload, [0x1000, 0x2000, 0, 0, 0, 0]);
        let back: iommu_test_cmd_add_reserved = cmd.payload_as();
        assert_eq!((back.start, back.length), (0x1000, 0x2000));
    }

    #[test]
    fn payload_views_follow_c_offsets() {
        let mut cmd = iommu_test_cmd::new(
            1,
            &iommu_test_cmd_dirty {
                flags: 0,
                __pad: 0,
                iova: 0x10,
                length: 0x20,
                page_size: 0x30,
                uptr: 0x40,
                out_nr_dirty: 0,
            },
        );
        cmd.payload_mut::<iommu_test_cmd_dirty>().out_nr_dirty = 9;
        assert_eq!(cmd.payload, [0, 0x10, 0x20, 0x30, 0x40, 9]);
        // In the kernel's layout `dirty.out_nr_dirty` sits at byte 56 of the command.
        assert_eq!(&cmd.as_bytes()[56..64], &9u64.to_ne_bytes());

        // A shorter member overwrites only its prefix view and zeroes the rest.
        cmd.set_payload(&iommu_test_cmd_mock_domain_replace { pt_id: 5 });
        assert_eq!(
            cmd.payload_as::<iommu_test_cmd_mock_domain_replace>().pt_id,
            5
        );
        assert_eq!(&cmd.payload[1..], &[0; 5]);
    }

    #[test]
    fn test_cmd_ioctl_number() {
        assert_eq!(IOMMU_TEST_CMD, 0x3ba0);
    }
}
