//! `include/uapi/linux/vfio.h`, the part an iommufd answers: VFIO's type1
//! container ioctls, which `/dev/iommu` implements for compatibility
//! (`drivers/iommu/iommufd/vfio_compat.c`).
//!
//! Only the container (`VFIO_*` API version, extension and IOMMU selection) and
//! type1 IOMMU (`VFIO_IOMMU_*`) items are here; group and device ioctls are not
//! an iommufd's to answer.
//!
//! Unlike iommufd's structs, VFIO's start with `argsz`: the caller's buffer size.
//! The kernel reads a fixed minimum (`minsz`, the end of the last field the ioctl
//! was introduced with), rejects an `argsz` below it with `EINVAL`, and ignores
//! what lies past it; `VFIO_IOMMU_GET_INFO` writes back `argsz` as the size the
//! whole answer, capability chain included, needs.
//!
//! The ioctls are `_IO(VFIO_TYPE, VFIO_BASE + n)`: no size or direction in the
//! number, and VFIO's type byte is iommufd's (`';'`), with numbers below iommufd's
//! `IOMMUFD_CMD_BASE`.

#![allow(non_camel_case_types, non_upper_case_globals)]

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

use crate::cheader::{CLayout, CRepr, CType};
use crate::ioctl::_IO;

/// The ioctl type byte of VFIO: ASCII `';'`, shared with iommufd.
pub const VFIO_TYPE: u32 = b';' as u32;
/// The first VFIO command number.
pub const VFIO_BASE: u32 = 100;

/// What `VFIO_GET_API_VERSION` returns.
pub const VFIO_API_VERSION: i32 = 0;

/// Extension: the type1 IOMMU.
pub const VFIO_TYPE1_IOMMU: u64 = 1;
/// Extension: the sPAPR TCE IOMMU.
pub const VFIO_SPAPR_TCE_IOMMU: u64 = 2;
/// Extension: type1 v2 (no unmap of part of a mapping).
pub const VFIO_TYPE1v2_IOMMU: u64 = 3;
/// Extension: every domain of the container enforces cache coherency.
pub const VFIO_DMA_CC_IOMMU: u64 = 4;
/// Extension: EEH.
pub const VFIO_EEH: u64 = 5;
/// Extension: type1 nesting (obsolete).
pub const VFIO_TYPE1_NESTING_IOMMU: u64 = 6;
/// Extension: sPAPR TCE v2.
pub const VFIO_SPAPR_TCE_v2_IOMMU: u64 = 7;
/// Extension: no IOMMU.
pub const VFIO_NOIOMMU_IOMMU: u64 = 8;
/// Extension: `VFIO_DMA_UNMAP_FLAG_ALL`.
pub const VFIO_UNMAP_ALL: u64 = 9;
/// Extension: `VFIO_DMA_MAP_FLAG_VADDR` / `VFIO_DMA_UNMAP_FLAG_VADDR`.
pub const VFIO_UPDATE_VADDR: u64 = 10;

/// Returns [`VFIO_API_VERSION`].
pub const VFIO_GET_API_VERSION: u32 = _IO(VFIO_TYPE, VFIO_BASE);
/// Whether an extension (the argument, an integer) is supported: 0 or 1.
pub const VFIO_CHECK_EXTENSION: u32 = _IO(VFIO_TYPE, VFIO_BASE + 1);
/// Selects the IOMMU model (the argument, an integer extension number).
pub const VFIO_SET_IOMMU: u32 = _IO(VFIO_TYPE, VFIO_BASE + 2);

/// `struct vfio_info_cap_header`: the head of each capability in a chain.
#[repr(C)]
#[derive(
    Debug, Default, Clone, Copy, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct vfio_info_cap_header {
    /// Which capability.
    pub id: u16,
    /// Version of that capability's layout.
    pub version: u16,
    /// Offset of the next capability from the start of the info struct; 0 ends.
    pub next: u32,
}
layout!(vfio_info_cap_header, 8; id 0, version 2, next 4);

impl CRepr for vfio_info_cap_header {
    const C_TYPE: CType = CType::Struct(&<vfio_info_cap_header as CLayout>::C_STRUCT);
}

/// `struct vfio_iommu_type1_info`: argument of [`VFIO_IOMMU_GET_INFO`].
#[repr(C)]
#[derive(
    Debug, Default, Clone, Copy, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct vfio_iommu_type1_info {
    /// In: the buffer's size. Out: the size the whole answer needs.
    pub argsz: u32,
    /// Out: `VFIO_IOMMU_INFO_*`.
    pub flags: u32,
    /// Out: bitmap of supported page sizes.
    pub iova_pgsizes: u64,
    /// Out: offset of the first capability, 0 when none was written.
    pub cap_offset: u32,
    /// C's tail padding.
    pub __pad: u32,
}
layout!(vfio_iommu_type1_info, 24; argsz 0, flags 4, iova_pgsizes 8, cap_offset 16, __pad 20 [pad]);
/// `iova_pgsizes` is valid.
pub const VFIO_IOMMU_INFO_PGSIZES: u32 = 1 << 0;
/// `cap_offset` is valid (a capability chain was reported).
pub const VFIO_IOMMU_INFO_CAPS: u32 = 1 << 1;

/// Capability: the usable IOVA ranges.
pub const VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE: u16 = 1;

/// `struct vfio_iova_range`: one usable range, both ends inclusive.
#[repr(C)]
#[derive(
    Debug, Default, Clone, Copy, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct vfio_iova_range {
    /// First IOVA.
    pub start: u64,
    /// Last IOVA (inclusive).
    pub end: u64,
}
layout!(vfio_iova_range, 16; start 0, end 8);

/// `struct vfio_iommu_type1_info_cap_iova_range`, without its flexible
/// `iova_ranges[nr_iovas]` array of [`vfio_iova_range`], which follows it.
#[repr(C)]
#[derive(
    Debug, Default, Clone, Copy, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct vfio_iommu_type1_info_cap_iova_range {
    /// `id` [`VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE`], version 1.
    pub header: vfio_info_cap_header,
    /// How many ranges follow.
    pub nr_iovas: u32,
    /// Reserved.
    pub reserved: u32,
}
layout!(vfio_iommu_type1_info_cap_iova_range, 16; header 0, nr_iovas 8, reserved 12);

/// Capability: how many more DMA mappings may be made.
pub const VFIO_IOMMU_TYPE1_INFO_DMA_AVAIL: u16 = 3;

/// `struct vfio_iommu_type1_info_dma_avail`.
#[repr(C)]
#[derive(
    Debug, Default, Clone, Copy, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct vfio_iommu_type1_info_dma_avail {
    /// `id` [`VFIO_IOMMU_TYPE1_INFO_DMA_AVAIL`], version 1.
    pub header: vfio_info_cap_header,
    /// Mappings still available.
    pub avail: u32,
}
layout!(vfio_iommu_type1_info_dma_avail, 12; header 0, avail 8);

/// Reports the type1 IOMMU's page sizes and capabilities.
pub const VFIO_IOMMU_GET_INFO: u32 = _IO(VFIO_TYPE, VFIO_BASE + 12);

/// `struct vfio_iommu_type1_dma_map`: argument of [`VFIO_IOMMU_MAP_DMA`].
#[repr(C)]
#[derive(
    Debug, Default, Clone, Copy, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct vfio_iommu_type1_dma_map {
    /// The caller's struct size.
    pub argsz: u32,
    /// `VFIO_DMA_MAP_FLAG_*`.
    pub flags: u32,
    /// Process virtual address of the memory.
    pub vaddr: u64,
    /// IOVA to map at (always fixed).
    pub iova: u64,
    /// Bytes to map.
    pub size: u64,
}
layout!(vfio_iommu_type1_dma_map, 32; argsz 0, flags 4, vaddr 8, iova 16, size 24);
/// The device may read.
pub const VFIO_DMA_MAP_FLAG_READ: u32 = 1 << 0;
/// The device may write.
pub const VFIO_DMA_MAP_FLAG_WRITE: u32 = 1 << 1;
/// Update the virtual address of an existing mapping.
pub const VFIO_DMA_MAP_FLAG_VADDR: u32 = 1 << 2;
/// Maps user memory at a fixed IOVA.
pub const VFIO_IOMMU_MAP_DMA: u32 = _IO(VFIO_TYPE, VFIO_BASE + 13);

/// `struct vfio_iommu_type1_dma_unmap`: argument of [`VFIO_IOMMU_UNMAP_DMA`],
/// without its flexible `data[]` (the obsolete dirty bitmap).
#[repr(C)]
#[derive(
    Debug, Default, Clone, Copy, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct vfio_iommu_type1_dma_unmap {
    /// The caller's struct size.
    pub argsz: u32,
    /// `VFIO_DMA_UNMAP_FLAG_*`.
    pub flags: u32,
    /// First IOVA to unmap.
    pub iova: u64,
    /// In: bytes to unmap. Out: bytes unmapped.
    pub size: u64,
}
layout!(vfio_iommu_type1_dma_unmap, 24; argsz 0, flags 4, iova 8, size 16);
/// Also report dirty pages (not supported by iommufd).
pub const VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP: u32 = 1 << 0;
/// Unmap everything (`iova` and `size` must be 0).
pub const VFIO_DMA_UNMAP_FLAG_ALL: u32 = 1 << 1;
/// Invalidate the virtual address of mappings.
pub const VFIO_DMA_UNMAP_FLAG_VADDR: u32 = 1 << 2;
/// Unmaps an IOVA range.
pub const VFIO_IOMMU_UNMAP_DMA: u32 = _IO(VFIO_TYPE, VFIO_BASE + 14);
/// Type1 dirty-page tracking (not supported by iommufd).
pub const VFIO_IOMMU_DIRTY_PAGES: u32 = _IO(VFIO_TYPE, VFIO_BASE + 17);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ioctl_numbers_are_the_kernels() {
        assert_eq!(VFIO_GET_API_VERSION, 0x3b64);
        assert_eq!(VFIO_CHECK_EXTENSION, 0x3b65);
        assert_eq!(VFIO_SET_IOMMU, 0x3b66);
        assert_eq!(VFIO_IOMMU_GET_INFO, 0x3b70);
        assert_eq!(VFIO_IOMMU_MAP_DMA, 0x3b71);
        assert_eq!(VFIO_IOMMU_UNMAP_DMA, 0x3b72);
    }
}
