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
layout!(vfio_iommu_type1_info_cap_iova_range, 16; header 0, nr_iovas 8, reserved 12;
    flex "struct vfio_iova_range" iova_ranges);

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
layout!(vfio_iommu_type1_dma_unmap, 24; argsz 0, flags 4, iova 8, size 16; flex "__u8" data);
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

// ---------------------------------------------------------------------------------
// Groups (`/dev/vfio/<group>`)

/// `struct vfio_group_status`: argument of [`VFIO_GROUP_GET_STATUS`].
#[repr(C)]
#[derive(
    Debug, Default, Clone, Copy, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct vfio_group_status {
    /// The caller's struct size.
    pub argsz: u32,
    /// Out: `VFIO_GROUP_FLAGS_*`.
    pub flags: u32,
}
layout!(vfio_group_status, 8; argsz 0, flags 4);
/// Every device of the group may be used (none has a DMA kernel driver).
pub const VFIO_GROUP_FLAGS_VIABLE: u32 = 1 << 0;
/// The group has a container (or an iommufd).
pub const VFIO_GROUP_FLAGS_CONTAINER_SET: u32 = 1 << 1;
/// Reports a group's viability and whether it has a container.
pub const VFIO_GROUP_GET_STATUS: u32 = _IO(VFIO_TYPE, VFIO_BASE + 3);
/// Puts the group in a container (the argument points to the container's fd).
pub const VFIO_GROUP_SET_CONTAINER: u32 = _IO(VFIO_TYPE, VFIO_BASE + 4);
/// Takes the group out of its container.
pub const VFIO_GROUP_UNSET_CONTAINER: u32 = _IO(VFIO_TYPE, VFIO_BASE + 5);
/// Opens a device of the group by name (the argument is a NUL-terminated string);
/// returns the new fd.
pub const VFIO_GROUP_GET_DEVICE_FD: u32 = _IO(VFIO_TYPE, VFIO_BASE + 6);

// ---------------------------------------------------------------------------------
// Devices (`/dev/vfio/devices/vfioN`, or a group's device fd)

/// `struct vfio_device_info`: argument of [`VFIO_DEVICE_GET_INFO`].
#[repr(C)]
#[derive(
    Debug, Default, Clone, Copy, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct vfio_device_info {
    /// In: the buffer's size. Out: the size the answer with its capabilities needs.
    pub argsz: u32,
    /// Out: `VFIO_DEVICE_FLAGS_*`.
    pub flags: u32,
    /// Out: number of regions.
    pub num_regions: u32,
    /// Out: number of interrupt indexes.
    pub num_irqs: u32,
    /// Out: offset of the first capability, 0 when none was written.
    pub cap_offset: u32,
    /// C's tail padding.
    pub pad: u32,
}
layout!(vfio_device_info, 24; argsz 0, flags 4, num_regions 8, num_irqs 12, cap_offset 16, pad 20);
/// The device supports [`VFIO_DEVICE_RESET`].
pub const VFIO_DEVICE_FLAGS_RESET: u32 = 1 << 0;
/// A PCI device.
pub const VFIO_DEVICE_FLAGS_PCI: u32 = 1 << 1;
/// A platform device.
pub const VFIO_DEVICE_FLAGS_PLATFORM: u32 = 1 << 2;
/// An AMBA device.
pub const VFIO_DEVICE_FLAGS_AMBA: u32 = 1 << 3;
/// A CCW device.
pub const VFIO_DEVICE_FLAGS_CCW: u32 = 1 << 4;
/// An AP device.
pub const VFIO_DEVICE_FLAGS_AP: u32 = 1 << 5;
/// An fsl-mc device.
pub const VFIO_DEVICE_FLAGS_FSL_MC: u32 = 1 << 6;
/// `cap_offset` is valid.
pub const VFIO_DEVICE_FLAGS_CAPS: u32 = 1 << 7;
/// A CDX device.
pub const VFIO_DEVICE_FLAGS_CDX: u32 = 1 << 8;
/// Reports the device's type, regions and interrupts.
pub const VFIO_DEVICE_GET_INFO: u32 = _IO(VFIO_TYPE, VFIO_BASE + 7);

/// `struct vfio_region_info`: argument of [`VFIO_DEVICE_GET_REGION_INFO`].
#[repr(C)]
#[derive(
    Debug, Default, Clone, Copy, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct vfio_region_info {
    /// In: the buffer's size. Out: the size the answer with its capabilities needs.
    pub argsz: u32,
    /// Out: `VFIO_REGION_INFO_FLAG_*`.
    pub flags: u32,
    /// In: the region's index.
    pub index: u32,
    /// Out: offset of the first capability, 0 when none was written.
    pub cap_offset: u32,
    /// Out: the region's size in bytes.
    pub size: u64,
    /// Out: where the region starts in the device fd (for `pread`/`pwrite`).
    pub offset: u64,
}
layout!(vfio_region_info, 32; argsz 0, flags 4, index 8, cap_offset 12, size 16, offset 24);
/// The region may be read.
pub const VFIO_REGION_INFO_FLAG_READ: u32 = 1 << 0;
/// The region may be written.
pub const VFIO_REGION_INFO_FLAG_WRITE: u32 = 1 << 1;
/// The region may be mapped.
pub const VFIO_REGION_INFO_FLAG_MMAP: u32 = 1 << 2;
/// `cap_offset` is valid.
pub const VFIO_REGION_INFO_FLAG_CAPS: u32 = 1 << 3;
/// Reports one region: its size, where it is in the device fd and how to reach it.
pub const VFIO_DEVICE_GET_REGION_INFO: u32 = _IO(VFIO_TYPE, VFIO_BASE + 8);

/// `struct vfio_irq_info`: argument of [`VFIO_DEVICE_GET_IRQ_INFO`].
#[repr(C)]
#[derive(
    Debug, Default, Clone, Copy, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct vfio_irq_info {
    /// The caller's struct size.
    pub argsz: u32,
    /// Out: `VFIO_IRQ_INFO_*`.
    pub flags: u32,
    /// In: the interrupt index.
    pub index: u32,
    /// Out: number of interrupts at the index.
    pub count: u32,
}
layout!(vfio_irq_info, 16; argsz 0, flags 4, index 8, count 12);
/// Interrupts are signalled through eventfds.
pub const VFIO_IRQ_INFO_EVENTFD: u32 = 1 << 0;
/// The interrupts can be masked.
pub const VFIO_IRQ_INFO_MASKABLE: u32 = 1 << 1;
/// The interrupts are masked when they fire (level-triggered).
pub const VFIO_IRQ_INFO_AUTOMASKED: u32 = 1 << 2;
/// The number of interrupts cannot change once enabled.
pub const VFIO_IRQ_INFO_NORESIZE: u32 = 1 << 3;
/// Reports one interrupt index.
pub const VFIO_DEVICE_GET_IRQ_INFO: u32 = _IO(VFIO_TYPE, VFIO_BASE + 9);

/// `struct vfio_irq_set`: argument of [`VFIO_DEVICE_SET_IRQS`], without its
/// flexible `data[]` (a `u8` per interrupt for `DATA_BOOL`, an `s32` eventfd for
/// `DATA_EVENTFD`), which follows it.
#[repr(C)]
#[derive(
    Debug, Default, Clone, Copy, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct vfio_irq_set {
    /// The caller's size, `data` included.
    pub argsz: u32,
    /// `VFIO_IRQ_SET_DATA_*` | `VFIO_IRQ_SET_ACTION_*`.
    pub flags: u32,
    /// The interrupt index.
    pub index: u32,
    /// The first interrupt of the index concerned.
    pub start: u32,
    /// How many interrupts from `start`.
    pub count: u32,
}
layout!(vfio_irq_set, 20; argsz 0, flags 4, index 8, start 12, count 16; flex "__u8" data);
/// No data.
pub const VFIO_IRQ_SET_DATA_NONE: u32 = 1 << 0;
/// A `u8` per interrupt.
pub const VFIO_IRQ_SET_DATA_BOOL: u32 = 1 << 1;
/// An `s32` eventfd per interrupt (-1: none).
pub const VFIO_IRQ_SET_DATA_EVENTFD: u32 = 1 << 2;
/// Mask the interrupts.
pub const VFIO_IRQ_SET_ACTION_MASK: u32 = 1 << 3;
/// Unmask the interrupts.
pub const VFIO_IRQ_SET_ACTION_UNMASK: u32 = 1 << 4;
/// Set up (eventfds) or fire (none, bool) the interrupts.
pub const VFIO_IRQ_SET_ACTION_TRIGGER: u32 = 1 << 5;
/// All data type bits.
pub const VFIO_IRQ_SET_DATA_TYPE_MASK: u32 =
    VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_DATA_BOOL | VFIO_IRQ_SET_DATA_EVENTFD;
/// All action bits.
pub const VFIO_IRQ_SET_ACTION_TYPE_MASK: u32 =
    VFIO_IRQ_SET_ACTION_MASK | VFIO_IRQ_SET_ACTION_UNMASK | VFIO_IRQ_SET_ACTION_TRIGGER;
/// Configures, masks, unmasks or fires interrupts.
pub const VFIO_DEVICE_SET_IRQS: u32 = _IO(VFIO_TYPE, VFIO_BASE + 10);
/// Resets the device (function-level).
pub const VFIO_DEVICE_RESET: u32 = _IO(VFIO_TYPE, VFIO_BASE + 11);

/// Region index of BAR 0 (BARs 1-5 follow).
pub const VFIO_PCI_BAR0_REGION_INDEX: u32 = 0;
/// Region index of BAR 1.
pub const VFIO_PCI_BAR1_REGION_INDEX: u32 = 1;
/// Region index of BAR 2.
pub const VFIO_PCI_BAR2_REGION_INDEX: u32 = 2;
/// Region index of BAR 3.
pub const VFIO_PCI_BAR3_REGION_INDEX: u32 = 3;
/// Region index of BAR 4.
pub const VFIO_PCI_BAR4_REGION_INDEX: u32 = 4;
/// Region index of BAR 5.
pub const VFIO_PCI_BAR5_REGION_INDEX: u32 = 5;
/// Region index of the expansion ROM.
pub const VFIO_PCI_ROM_REGION_INDEX: u32 = 6;
/// Region index of the configuration space.
pub const VFIO_PCI_CONFIG_REGION_INDEX: u32 = 7;
/// Region index of the legacy VGA ranges.
pub const VFIO_PCI_VGA_REGION_INDEX: u32 = 8;
/// Number of fixed PCI regions.
pub const VFIO_PCI_NUM_REGIONS: u32 = 9;

/// Interrupt index of INTx.
pub const VFIO_PCI_INTX_IRQ_INDEX: u32 = 0;
/// Interrupt index of MSI.
pub const VFIO_PCI_MSI_IRQ_INDEX: u32 = 1;
/// Interrupt index of MSI-X.
pub const VFIO_PCI_MSIX_IRQ_INDEX: u32 = 2;
/// Interrupt index of the error notification.
pub const VFIO_PCI_ERR_IRQ_INDEX: u32 = 3;
/// Interrupt index of the device request notification.
pub const VFIO_PCI_REQ_IRQ_INDEX: u32 = 4;
/// Number of PCI interrupt indexes.
pub const VFIO_PCI_NUM_IRQS: u32 = 5;

/// `struct vfio_pci_dependent_device`: one function a hot reset affects.
#[repr(C)]
#[derive(
    Debug, Default, Clone, Copy, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct vfio_pci_dependent_device {
    /// Its group (group-opened devices) or its devid (cdev-opened devices:
    /// [`VFIO_PCI_DEVID_OWNED`], [`VFIO_PCI_DEVID_NOT_OWNED`] or a devid).
    pub group_id: u32,
    /// PCI segment.
    pub segment: u16,
    /// Bus number.
    pub bus: u8,
    /// Device and function number.
    pub devfn: u8,
}
layout!(vfio_pci_dependent_device, 8; group_id 0 [union group_id, devid], segment 4, bus 6, devfn 7);
/// Not bound to the caller's iommufd, but in a group that has a device bound there.
pub const VFIO_PCI_DEVID_OWNED: u32 = 0;
/// Not owned by the caller.
pub const VFIO_PCI_DEVID_NOT_OWNED: u32 = u32::MAX;

/// `struct vfio_pci_hot_reset_info`: argument of
/// [`VFIO_DEVICE_GET_PCI_HOT_RESET_INFO`], without its flexible `devices[]`.
#[repr(C)]
#[derive(
    Debug, Default, Clone, Copy, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct vfio_pci_hot_reset_info {
    /// The caller's size, `devices` included.
    pub argsz: u32,
    /// Out: `VFIO_PCI_HOT_RESET_FLAG_*`.
    pub flags: u32,
    /// Out: number of affected functions.
    pub count: u32,
}
layout!(vfio_pci_hot_reset_info, 12; argsz 0, flags 4, count 8;
    flex "struct vfio_pci_dependent_device" devices);
/// `devices[]` carry devids, not group numbers.
pub const VFIO_PCI_HOT_RESET_FLAG_DEV_ID: u32 = 1 << 0;
/// Every affected function is owned by the caller.
pub const VFIO_PCI_HOT_RESET_FLAG_DEV_ID_OWNED: u32 = 1 << 1;
/// Lists the functions a hot reset of the device's bus or slot would reset.
pub const VFIO_DEVICE_GET_PCI_HOT_RESET_INFO: u32 = _IO(VFIO_TYPE, VFIO_BASE + 12);

/// `struct vfio_pci_hot_reset`: argument of [`VFIO_DEVICE_PCI_HOT_RESET`],
/// without its flexible `group_fds[]` (empty for cdev-opened devices).
#[repr(C)]
#[derive(
    Debug, Default, Clone, Copy, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct vfio_pci_hot_reset {
    /// The caller's size, `group_fds` included.
    pub argsz: u32,
    /// Must be 0.
    pub flags: u32,
    /// Number of group fds that follow.
    pub count: u32,
}
layout!(vfio_pci_hot_reset, 12; argsz 0, flags 4, count 8; flex "__s32" group_fds);
/// Resets the device's bus or slot.
pub const VFIO_DEVICE_PCI_HOT_RESET: u32 = _IO(VFIO_TYPE, VFIO_BASE + 13);

/// `struct vfio_device_feature`: argument of [`VFIO_DEVICE_FEATURE`], without
/// its flexible `data[]`.
#[repr(C)]
#[derive(
    Debug, Default, Clone, Copy, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct vfio_device_feature {
    /// The caller's size, `data` included.
    pub argsz: u32,
    /// The feature (`VFIO_DEVICE_FEATURE_MASK`) and `VFIO_DEVICE_FEATURE_*` bits.
    pub flags: u32,
}
layout!(vfio_device_feature, 8; argsz 0, flags 4; flex "__u8" data);
/// The feature number's bits.
pub const VFIO_DEVICE_FEATURE_MASK: u32 = 0xffff;
/// Read the feature.
pub const VFIO_DEVICE_FEATURE_GET: u32 = 1 << 16;
/// Write the feature.
pub const VFIO_DEVICE_FEATURE_SET: u32 = 1 << 17;
/// Only ask whether GET/SET would be supported.
pub const VFIO_DEVICE_FEATURE_PROBE: u32 = 1 << 18;
/// Gets, sets or probes a device feature.
pub const VFIO_DEVICE_FEATURE: u32 = _IO(VFIO_TYPE, VFIO_BASE + 17);

/// `struct vfio_device_bind_iommufd`: argument of [`VFIO_DEVICE_BIND_IOMMUFD`]
/// (16 bytes before the token was added in Linux 6.17).
#[repr(C)]
#[derive(
    Debug, Default, Clone, Copy, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct vfio_device_bind_iommufd {
    /// The caller's struct size (at least 16).
    pub argsz: u32,
    /// `VFIO_DEVICE_BIND_FLAG_*`.
    pub flags: u32,
    /// The iommufd to bind to.
    pub iommufd: i32,
    /// Out: the device's ID in that iommufd.
    pub out_devid: u32,
    /// With [`VFIO_DEVICE_BIND_FLAG_TOKEN`]: pointer to a 16-byte VF token.
    pub token_uuid_ptr: u64,
}
layout!(vfio_device_bind_iommufd, 24; argsz 0, flags 4, iommufd 8, out_devid 12, token_uuid_ptr 16 [c "__aligned_u64"]);
/// `token_uuid_ptr` is valid.
pub const VFIO_DEVICE_BIND_FLAG_TOKEN: u32 = 1 << 0;
/// Binds a device file to an iommufd (claims the device's DMA).
pub const VFIO_DEVICE_BIND_IOMMUFD: u32 = _IO(VFIO_TYPE, VFIO_BASE + 18);

/// `struct vfio_device_attach_iommufd_pt`: argument of
/// [`VFIO_DEVICE_ATTACH_IOMMUFD_PT`].
#[repr(C)]
#[derive(
    Debug, Default, Clone, Copy, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct vfio_device_attach_iommufd_pt {
    /// The caller's struct size (at least 12).
    pub argsz: u32,
    /// `VFIO_DEVICE_ATTACH_*`.
    pub flags: u32,
    /// In: an IOAS or HWPT ID. Out: the HWPT attached.
    pub pt_id: u32,
    /// With [`VFIO_DEVICE_ATTACH_PASID`]: the PASID.
    pub pasid: u32,
}
layout!(vfio_device_attach_iommufd_pt, 16; argsz 0, flags 4, pt_id 8, pasid 12);
/// Attach a PASID of the device, not the device itself.
pub const VFIO_DEVICE_ATTACH_PASID: u32 = 1 << 0;
/// Attaches the device (or a PASID) to an IOAS or HWPT; replaces if attached.
pub const VFIO_DEVICE_ATTACH_IOMMUFD_PT: u32 = _IO(VFIO_TYPE, VFIO_BASE + 19);

/// `struct vfio_device_detach_iommufd_pt`: argument of
/// [`VFIO_DEVICE_DETACH_IOMMUFD_PT`].
#[repr(C)]
#[derive(
    Debug, Default, Clone, Copy, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct vfio_device_detach_iommufd_pt {
    /// The caller's struct size (at least 8).
    pub argsz: u32,
    /// `VFIO_DEVICE_DETACH_*`.
    pub flags: u32,
    /// With [`VFIO_DEVICE_DETACH_PASID`]: the PASID.
    pub pasid: u32,
}
layout!(vfio_device_detach_iommufd_pt, 12; argsz 0, flags 4, pasid 8);
/// Detach a PASID of the device, not the device itself.
pub const VFIO_DEVICE_DETACH_PASID: u32 = 1 << 0;
/// Detaches the device (or a PASID); DMA is blocked after.
pub const VFIO_DEVICE_DETACH_IOMMUFD_PT: u32 = _IO(VFIO_TYPE, VFIO_BASE + 20);

/// Where region `index` starts in a vfio-pci device fd: `index << 40`.
pub const VFIO_PCI_OFFSET_SHIFT: u32 = 40;

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
        assert_eq!(VFIO_GROUP_GET_STATUS, 0x3b67);
        assert_eq!(VFIO_GROUP_GET_DEVICE_FD, 0x3b6a);
        assert_eq!(VFIO_DEVICE_GET_INFO, 0x3b6b);
        assert_eq!(VFIO_DEVICE_SET_IRQS, 0x3b6e);
        assert_eq!(VFIO_DEVICE_PCI_HOT_RESET, 0x3b71);
        assert_eq!(VFIO_DEVICE_FEATURE, 0x3b75);
        assert_eq!(VFIO_DEVICE_BIND_IOMMUFD, 0x3b76);
        assert_eq!(VFIO_DEVICE_DETACH_IOMMUFD_PT, 0x3b78);
    }
}
