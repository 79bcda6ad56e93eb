//! `include/uapi/linux/iommufd.h`: the `/dev/iommu` ioctl interface.
//!
//! Every struct, enum value, flag and ioctl number of the header as of Linux v7.1,
//! with the C names kept verbatim so that code here reads like code against the
//! header. Items appear in header order.
//!
//! How the C header maps to Rust:
//!
//! - `struct x` → `#[repr(C)] pub struct x`, fields in uAPI order, every
//!   `__reserved` kept. `__aligned_u64`, `__aligned_le64` and `__u64` all become
//!   `u64` (Rust's `u64` is 8-aligned on every 64-bit target this project supports;
//!   the `layout!` assertions would catch a target where that is not so). The
//!   little-endian arrays (`__aligned_le64`) hold raw little-endian words: convert
//!   with `u64::from_le` when interpreting them.
//! - A field named `type` is spelled `type_`, as bindgen and linux-raw-sys do.
//! - Each `enum` becomes a type alias plus one `pub const` per value. The alias has
//!   the width of the field the values are stored in (`u16` for `op` fields, `u64`
//!   for `flags`/`out_capabilities` fields that are 64-bit, `u32` otherwise), so the
//!   constants can be used without casts.
//! - Ioctl numbers are computed with [`_IO`] exactly as the header computes them.
//! - The one union in the header, `iommu_hw_info`'s `in_data_type`/`out_data_type`,
//!   joins two `u32` views of the same word; it is a single `data_type` field with
//!   accessors named after the two C members.
//!
//! None of these structs has implicit padding, so all of them derive zerocopy's
//! [`IntoBytes`] and can be read from and written to user memory as plain bytes.
//! Every struct carries a compile-time check of its size and of each field offset,
//! computed by hand from the C layout.
//!
//! Extensibility rule of the uAPI: each ioctl argument starts with a `u32 size`;
//! newer kernels append fields, and a caller's shorter struct is zero-extended,
//! while non-zero bytes past what the kernel knows give `E2BIG`.

#![allow(non_camel_case_types)]

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

use crate::ioctl::_IO;

/// The ioctl "magic" type byte of iommufd: ASCII `';'` (shared with VFIO).
pub const IOMMUFD_TYPE: u32 = b';' as u32;

// Command numbers: the low byte of each ioctl number (an anonymous enum in C).

/// First iommufd command number.
pub const IOMMUFD_CMD_BASE: u32 = 0x80;
/// Command number of [`IOMMU_DESTROY`].
pub const IOMMUFD_CMD_DESTROY: u32 = IOMMUFD_CMD_BASE;
/// Command number of [`IOMMU_IOAS_ALLOC`].
pub const IOMMUFD_CMD_IOAS_ALLOC: u32 = 0x81;
/// Command number of [`IOMMU_IOAS_ALLOW_IOVAS`].
pub const IOMMUFD_CMD_IOAS_ALLOW_IOVAS: u32 = 0x82;
/// Command number of [`IOMMU_IOAS_COPY`].
pub const IOMMUFD_CMD_IOAS_COPY: u32 = 0x83;
/// Command number of [`IOMMU_IOAS_IOVA_RANGES`].
pub const IOMMUFD_CMD_IOAS_IOVA_RANGES: u32 = 0x84;
/// Command number of [`IOMMU_IOAS_MAP`].
pub const IOMMUFD_CMD_IOAS_MAP: u32 = 0x85;
/// Command number of [`IOMMU_IOAS_UNMAP`].
pub const IOMMUFD_CMD_IOAS_UNMAP: u32 = 0x86;
/// Command number of [`IOMMU_OPTION`].
pub const IOMMUFD_CMD_OPTION: u32 = 0x87;
/// Command number of [`IOMMU_VFIO_IOAS`].
pub const IOMMUFD_CMD_VFIO_IOAS: u32 = 0x88;
/// Command number of [`IOMMU_HWPT_ALLOC`].
pub const IOMMUFD_CMD_HWPT_ALLOC: u32 = 0x89;
/// Command number of [`IOMMU_GET_HW_INFO`].
pub const IOMMUFD_CMD_GET_HW_INFO: u32 = 0x8a;
/// Command number of [`IOMMU_HWPT_SET_DIRTY_TRACKING`].
pub const IOMMUFD_CMD_HWPT_SET_DIRTY_TRACKING: u32 = 0x8b;
/// Command number of [`IOMMU_HWPT_GET_DIRTY_BITMAP`].
pub const IOMMUFD_CMD_HWPT_GET_DIRTY_BITMAP: u32 = 0x8c;
/// Command number of [`IOMMU_HWPT_INVALIDATE`].
pub const IOMMUFD_CMD_HWPT_INVALIDATE: u32 = 0x8d;
/// Command number of [`IOMMU_FAULT_QUEUE_ALLOC`].
pub const IOMMUFD_CMD_FAULT_QUEUE_ALLOC: u32 = 0x8e;
/// Command number of [`IOMMU_IOAS_MAP_FILE`].
pub const IOMMUFD_CMD_IOAS_MAP_FILE: u32 = 0x8f;
/// Command number of [`IOMMU_VIOMMU_ALLOC`].
pub const IOMMUFD_CMD_VIOMMU_ALLOC: u32 = 0x90;
/// Command number of [`IOMMU_VDEVICE_ALLOC`].
pub const IOMMUFD_CMD_VDEVICE_ALLOC: u32 = 0x91;
/// Command number of [`IOMMU_IOAS_CHANGE_PROCESS`].
pub const IOMMUFD_CMD_IOAS_CHANGE_PROCESS: u32 = 0x92;
/// Command number of [`IOMMU_VEVENTQ_ALLOC`].
pub const IOMMUFD_CMD_VEVENTQ_ALLOC: u32 = 0x93;
/// Command number of [`IOMMU_HW_QUEUE_ALLOC`].
pub const IOMMUFD_CMD_HW_QUEUE_ALLOC: u32 = 0x94;

// ---------------------------------------------------------------------------------
// IOMMU_DESTROY

/// Argument of [`IOMMU_DESTROY`]: destroy any destroyable object by ID.
#[repr(C)]
#[derive(
    Debug, Default, Clone, Copy, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct iommu_destroy {
    /// `sizeof(struct iommu_destroy)`.
    pub size: u32,
    /// ID of the object to destroy.
    pub id: u32,
}
layout!(iommu_destroy, 8; size 0, id 4);
/// Destroys an object held by the iommufd.
pub const IOMMU_DESTROY: u32 = _IO(IOMMUFD_TYPE, IOMMUFD_CMD_DESTROY);

// ---------------------------------------------------------------------------------
// IOMMU_IOAS_ALLOC

/// Argument of [`IOMMU_IOAS_ALLOC`]: create an empty I/O address space.
#[repr(C)]
#[derive(
    Debug, Default, Clone, Copy, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct iommu_ioas_alloc {
    /// `sizeof(struct iommu_ioas_alloc)`.
    pub size: u32,
    /// Must be 0.
    pub flags: u32,
    /// Output: ID of the new IOAS.
    pub out_ioas_id: u32,
}
layout!(iommu_ioas_alloc, 12; size 0, flags 4, out_ioas_id 8);
/// Allocates an IOAS.
pub const IOMMU_IOAS_ALLOC: u32 = _IO(IOMMUFD_TYPE, IOMMUFD_CMD_IOAS_ALLOC);

// ---------------------------------------------------------------------------------
// IOMMU_IOAS_IOVA_RANGES / IOMMU_IOAS_ALLOW_IOVAS

/// An inclusive IOVA interval, the element of the user arrays in the range ioctls.
#[repr(C)]
#[derive(
    Debug, Default, Clone, Copy, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct iommu_iova_range {
    /// First IOVA of the interval.
    pub start: u64,
    /// Last IOVA of the interval (inclusive).
    pub last: u64,
}
layout!(iommu_iova_range, 16; start 0, last 8);

/// Argument of [`IOMMU_IOAS_IOVA_RANGES`]: list the IOVA ranges usable for mapping.
#[repr(C)]
#[derive(
    Debug, Default, Clone, Copy, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct iommu_ioas_iova_ranges {
    /// `sizeof(struct iommu_ioas_iova_ranges)`.
    pub size: u32,
    /// IOAS to query.
    pub ioas_id: u32,
    /// In: capacity of `allowed_iovas`; out: number of ranges (EMSGSIZE if it did not fit).
    pub num_iovas: u32,
    /// Must be 0.
    pub __reserved: u32,
    /// User pointer to an array of [`iommu_iova_range`] to fill.
    pub allowed_iovas: u64,
    /// Output: required alignment of IOVA and length for map and copy.
    pub out_iova_alignment: u64,
}
layout!(iommu_ioas_iova_ranges, 32;
    size 0, ioas_id 4, num_iovas 8, __reserved 12, allowed_iovas 16, out_iova_alignment 24);
/// Reports the usable IOVA ranges of an IOAS.
pub const IOMMU_IOAS_IOVA_RANGES: u32 = _IO(IOMMUFD_TYPE, IOMMUFD_CMD_IOAS_IOVA_RANGES);

/// Argument of [`IOMMU_IOAS_ALLOW_IOVAS`]: pin down ranges that must stay usable.
#[repr(C)]
#[derive(
    Debug, Default, Clone, Copy, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct iommu_ioas_allow_iovas {
    /// `sizeof(struct iommu_ioas_allow_iovas)`.
    pub size: u32,
    /// IOAS to change.
    pub ioas_id: u32,
    /// Number of entries in `allowed_iovas`.
    pub num_iovas: u32,
    /// Must be 0.
    pub __reserved: u32,
    /// User pointer to an array of [`iommu_iova_range`]; replaces the allowed list.
    pub allowed_iovas: u64,
}
layout!(iommu_ioas_allow_iovas, 24;
    size 0, ioas_id 4, num_iovas 8, __reserved 12, allowed_iovas 16);
/// Sets the list of IOVA ranges that must remain available.
pub const IOMMU_IOAS_ALLOW_IOVAS: u32 = _IO(IOMMUFD_TYPE, IOMMUFD_CMD_IOAS_ALLOW_IOVAS);

// ---------------------------------------------------------------------------------
// IOMMU_IOAS_MAP / IOMMU_IOAS_MAP_FILE / IOMMU_IOAS_COPY / IOMMU_IOAS_UNMAP

/// `enum iommufd_ioas_map_flags`: flags of map, map-file and copy.
pub type iommufd_ioas_map_flags = u32;
/// Place the mapping at the given `iova` instead of letting the kernel choose.
pub const IOMMU_IOAS_MAP_FIXED_IOVA: iommufd_ioas_map_flags = 1 << 0;
/// Devices may write through the mapping.
pub const IOMMU_IOAS_MAP_WRITEABLE: iommufd_ioas_map_flags = 1 << 1;
/// Devices may read through the mapping.
pub const IOMMU_IOAS_MAP_READABLE: iommufd_ioas_map_flags = 1 << 2;

/// Argument of [`IOMMU_IOAS_MAP`]: map user memory into an IOAS.
#[repr(C)]
#[derive(
    Debug, Default, Clone, Copy, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct iommu_ioas_map {
    /// `sizeof(struct iommu_ioas_map)`.
    pub size: u32,
    /// Combination of `IOMMU_IOAS_MAP_*`.
    pub flags: u32,
    /// IOAS to map into.
    pub ioas_id: u32,
    /// Must be 0.
    pub __reserved: u32,
    /// User virtual address of the memory to map.
    pub user_va: u64,
    /// Length in bytes.
    pub length: u64,
    /// In with `FIXED_IOVA`: where to map; out otherwise: where it was mapped.
    pub iova: u64,
}
layout!(iommu_ioas_map, 40;
    size 0, flags 4, ioas_id 8, __reserved 12, user_va 16, length 24, iova 32);
/// Maps a user VA range into an IOAS.
pub const IOMMU_IOAS_MAP: u32 = _IO(IOMMUFD_TYPE, IOMMUFD_CMD_IOAS_MAP);

/// Argument of [`IOMMU_IOAS_MAP_FILE`]: map a range of a memfd into an IOAS.
#[repr(C)]
#[derive(
    Debug, Default, Clone, Copy, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct iommu_ioas_map_file {
    /// `sizeof(struct iommu_ioas_map_file)`.
    pub size: u32,
    /// Combination of `IOMMU_IOAS_MAP_*`.
    pub flags: u32,
    /// IOAS to map into.
    pub ioas_id: u32,
    /// File descriptor of the memfd.
    pub fd: i32,
    /// Byte offset in the file where the mapping starts.
    pub start: u64,
    /// Length in bytes.
    pub length: u64,
    /// As in [`iommu_ioas_map::iova`].
    pub iova: u64,
}
layout!(iommu_ioas_map_file, 40;
    size 0, flags 4, ioas_id 8, fd 12, start 16, length 24, iova 32);
/// Maps a memfd range into an IOAS.
pub const IOMMU_IOAS_MAP_FILE: u32 = _IO(IOMMUFD_TYPE, IOMMUFD_CMD_IOAS_MAP_FILE);

/// Argument of [`IOMMU_IOAS_COPY`]: map into one IOAS the pages of an existing map of another.
#[repr(C)]
#[derive(
    Debug, Default, Clone, Copy, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct iommu_ioas_copy {
    /// `sizeof(struct iommu_ioas_copy)`.
    pub size: u32,
    /// Combination of `IOMMU_IOAS_MAP_*`.
    pub flags: u32,
    /// IOAS that receives the new mapping.
    pub dst_ioas_id: u32,
    /// IOAS that holds the source mapping.
    pub src_ioas_id: u32,
    /// Length in bytes.
    pub length: u64,
    /// As in [`iommu_ioas_map::iova`], for the destination.
    pub dst_iova: u64,
    /// Start of the source range; must match whole earlier maps.
    pub src_iova: u64,
}
layout!(iommu_ioas_copy, 40;
    size 0, flags 4, dst_ioas_id 8, src_ioas_id 12, length 16, dst_iova 24, src_iova 32);
/// Copies a mapping from one IOAS to another, sharing the pinned pages.
pub const IOMMU_IOAS_COPY: u32 = _IO(IOMMUFD_TYPE, IOMMUFD_CMD_IOAS_COPY);

/// Argument of [`IOMMU_IOAS_UNMAP`]: remove whole mappings from an IOAS.
#[repr(C)]
#[derive(
    Debug, Default, Clone, Copy, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct iommu_ioas_unmap {
    /// `sizeof(struct iommu_ioas_unmap)`.
    pub size: u32,
    /// IOAS to unmap from.
    pub ioas_id: u32,
    /// First IOVA of the range.
    pub iova: u64,
    /// In: length of the range (0 with iova 0 and `u64::MAX` means all);
    /// out: bytes actually unmapped.
    pub length: u64,
}
layout!(iommu_ioas_unmap, 24; size 0, ioas_id 4, iova 8, length 16);
/// Unmaps an IOVA range.
pub const IOMMU_IOAS_UNMAP: u32 = _IO(IOMMUFD_TYPE, IOMMUFD_CMD_IOAS_UNMAP);

// ---------------------------------------------------------------------------------
// IOMMU_OPTION

/// `enum iommufd_option`: the option selected by [`iommu_option::option_id`].
pub type iommufd_option = u32;
/// Global: 0 accounts pinned memory per user, 1 per process (privileged to set).
pub const IOMMU_OPTION_RLIMIT_MODE: iommufd_option = 0;
/// Per IOAS: 1 (default) lets contiguous pages be mapped as large pages, 0 forbids it.
pub const IOMMU_OPTION_HUGE_PAGES: iommufd_option = 1;

/// `enum iommufd_option_ops`: what [`IOMMU_OPTION`] does (stored in a `u16` field).
pub type iommufd_option_ops = u16;
/// Set the option to `val64`.
pub const IOMMU_OPTION_OP_SET: iommufd_option_ops = 0;
/// Return the option in `val64`.
pub const IOMMU_OPTION_OP_GET: iommufd_option_ops = 1;

/// Argument of [`IOMMU_OPTION`]: get or set an option.
#[repr(C)]
#[derive(
    Debug, Default, Clone, Copy, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct iommu_option {
    /// `sizeof(struct iommu_option)`.
    pub size: u32,
    /// One of `IOMMU_OPTION_*` ([`iommufd_option`]).
    pub option_id: u32,
    /// One of `IOMMU_OPTION_OP_*`.
    pub op: u16,
    /// Must be 0.
    pub __reserved: u16,
    /// Object the option applies to, or 0 for global options.
    pub object_id: u32,
    /// Value to set, or the value read.
    pub val64: u64,
}
layout!(iommu_option, 24; size 0, option_id 4, op 8, __reserved 10, object_id 12, val64 16);
/// Gets or sets an option.
pub const IOMMU_OPTION: u32 = _IO(IOMMUFD_TYPE, IOMMUFD_CMD_OPTION);

// ---------------------------------------------------------------------------------
// IOMMU_VFIO_IOAS

/// `enum iommufd_vfio_ioas_op`: what [`IOMMU_VFIO_IOAS`] does (stored in a `u16` field).
pub type iommufd_vfio_ioas_op = u16;
/// Return the IOAS used for VFIO compatibility.
pub const IOMMU_VFIO_IOAS_GET: iommufd_vfio_ioas_op = 0;
/// Choose the IOAS used for VFIO compatibility.
pub const IOMMU_VFIO_IOAS_SET: iommufd_vfio_ioas_op = 1;
/// Turn VFIO compatibility off.
pub const IOMMU_VFIO_IOAS_CLEAR: iommufd_vfio_ioas_op = 2;

/// Argument of [`IOMMU_VFIO_IOAS`]: manage the IOAS behind the VFIO container emulation.
#[repr(C)]
#[derive(
    Debug, Default, Clone, Copy, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct iommu_vfio_ioas {
    /// `sizeof(struct iommu_vfio_ioas)`.
    pub size: u32,
    /// In for SET, out for GET: the compatibility IOAS.
    pub ioas_id: u32,
    /// One of `IOMMU_VFIO_IOAS_*`.
    pub op: u16,
    /// Must be 0.
    pub __reserved: u16,
}
layout!(iommu_vfio_ioas, 12; size 0, ioas_id 4, op 8, __reserved 10);
/// Gets, sets or clears the VFIO compatibility IOAS.
pub const IOMMU_VFIO_IOAS: u32 = _IO(IOMMUFD_TYPE, IOMMUFD_CMD_VFIO_IOAS);

// ---------------------------------------------------------------------------------
// IOMMU_HWPT_ALLOC

/// `enum iommufd_hwpt_alloc_flags`: flags of [`iommu_hwpt_alloc`].
pub type iommufd_hwpt_alloc_flags = u32;
/// The HWPT may be the parent (stage 2) of nested HWPTs.
pub const IOMMU_HWPT_ALLOC_NEST_PARENT: iommufd_hwpt_alloc_flags = 1 << 0;
/// The HWPT must support dirty tracking; attach fails for devices that cannot.
pub const IOMMU_HWPT_ALLOC_DIRTY_TRACKING: iommufd_hwpt_alloc_flags = 1 << 1;
/// [`iommu_hwpt_alloc::fault_id`] is valid: report I/O page faults to that queue.
pub const IOMMU_HWPT_FAULT_ID_VALID: iommufd_hwpt_alloc_flags = 1 << 2;
/// The HWPT may be attached to PASIDs (EOPNOTSUPP if the IOMMU lacks PASID).
pub const IOMMU_HWPT_ALLOC_PASID: iommufd_hwpt_alloc_flags = 1 << 3;

/// `enum iommu_hwpt_vtd_s1_flags`: bits of [`iommu_hwpt_vtd_s1::flags`] (a `u64`).
pub type iommu_hwpt_vtd_s1_flags = u64;
/// VT-d stage 1: supervisor requests allowed.
pub const IOMMU_VTD_S1_SRE: iommu_hwpt_vtd_s1_flags = 1 << 0;
/// VT-d stage 1: extended access flag enabled.
pub const IOMMU_VTD_S1_EAFE: iommu_hwpt_vtd_s1_flags = 1 << 1;
/// VT-d stage 1: write protection enforced for supervisor accesses.
pub const IOMMU_VTD_S1_WPE: iommu_hwpt_vtd_s1_flags = 1 << 2;

/// Nested-HWPT data for [`IOMMU_HWPT_DATA_VTD_S1`]: an Intel VT-d stage-1 table.
#[repr(C)]
#[derive(
    Debug, Default, Clone, Copy, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct iommu_hwpt_vtd_s1 {
    /// Combination of `IOMMU_VTD_S1_*`.
    pub flags: u64,
    /// Guest-physical address of the stage-1 page table root.
    pub pgtbl_addr: u64,
    /// Address width of the stage-1 table, in bits.
    pub addr_width: u32,
    /// Must be 0.
    pub __reserved: u32,
}
layout!(iommu_hwpt_vtd_s1, 24; flags 0, pgtbl_addr 8, addr_width 16, __reserved 20);

/// Nested-HWPT data for [`IOMMU_HWPT_DATA_ARM_SMMUV3`]: guest Stream Table Entry words.
#[repr(C)]
#[derive(
    Debug, Default, Clone, Copy, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct iommu_hwpt_arm_smmuv3 {
    /// The first two 64-bit words of the guest STE, little-endian.
    pub ste: [u64; 2],
}
layout!(iommu_hwpt_arm_smmuv3, 16; ste 0 [c "__aligned_le64"]);

/// Nested-HWPT data for [`IOMMU_HWPT_DATA_AMD_GUEST`]: a guest Device Table Entry.
#[repr(C)]
#[derive(
    Debug, Default, Clone, Copy, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct iommu_hwpt_amd_guest {
    /// The four 64-bit words of the guest DTE.
    pub dte: [u64; 4],
}
layout!(iommu_hwpt_amd_guest, 32; dte 0);

/// `enum iommu_hwpt_data_type`: format of [`iommu_hwpt_alloc::data_uptr`].
pub type iommu_hwpt_data_type = u32;
/// No data: a paging HWPT built from an IOAS.
pub const IOMMU_HWPT_DATA_NONE: iommu_hwpt_data_type = 0;
/// [`iommu_hwpt_vtd_s1`].
pub const IOMMU_HWPT_DATA_VTD_S1: iommu_hwpt_data_type = 1;
/// [`iommu_hwpt_arm_smmuv3`].
pub const IOMMU_HWPT_DATA_ARM_SMMUV3: iommu_hwpt_data_type = 2;
/// [`iommu_hwpt_amd_guest`].
pub const IOMMU_HWPT_DATA_AMD_GUEST: iommu_hwpt_data_type = 3;

/// Argument of [`IOMMU_HWPT_ALLOC`]: create a hardware page table.
#[repr(C)]
#[derive(
    Debug, Default, Clone, Copy, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct iommu_hwpt_alloc {
    /// `sizeof(struct iommu_hwpt_alloc)`.
    pub size: u32,
    /// Combination of `IOMMU_HWPT_ALLOC_*` and [`IOMMU_HWPT_FAULT_ID_VALID`].
    pub flags: u32,
    /// Device the HWPT is made for.
    pub dev_id: u32,
    /// Parent: an IOAS (paging HWPT), or a nesting-parent HWPT or vIOMMU (nested HWPT).
    pub pt_id: u32,
    /// Output: ID of the new HWPT.
    pub out_hwpt_id: u32,
    /// Must be 0.
    pub __reserved: u32,
    /// One of `IOMMU_HWPT_DATA_*`.
    pub data_type: u32,
    /// Length of the data at `data_uptr`.
    pub data_len: u32,
    /// User pointer to the type-specific data.
    pub data_uptr: u64,
    /// Fault queue to report to, used with [`IOMMU_HWPT_FAULT_ID_VALID`].
    pub fault_id: u32,
    /// Must be 0 (pads to 8 bytes).
    pub __reserved2: u32,
}
layout!(iommu_hwpt_alloc, 48;
    size 0, flags 4, dev_id 8, pt_id 12, out_hwpt_id 16, __reserved 20, data_type 24,
    data_len 28, data_uptr 32, fault_id 40, __reserved2 44);
/// Allocates a HWPT.
pub const IOMMU_HWPT_ALLOC: u32 = _IO(IOMMUFD_TYPE, IOMMUFD_CMD_HWPT_ALLOC);

// ---------------------------------------------------------------------------------
// IOMMU_GET_HW_INFO

/// `enum iommu_hw_info_vtd_flags`: bits of [`iommu_hw_info_vtd::flags`].
pub type iommu_hw_info_vtd_flags = u32;
/// Erratum 772415 (SPR17): read-only mappings are not allowed in a nesting parent.
pub const IOMMU_HW_INFO_VTD_ERRATA_772415_SPR17: iommu_hw_info_vtd_flags = 1 << 0;

/// Hardware information of type [`IOMMU_HW_INFO_TYPE_INTEL_VTD`].
#[repr(C)]
#[derive(
    Debug, Default, Clone, Copy, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct iommu_hw_info_vtd {
    /// Combination of `IOMMU_HW_INFO_VTD_*`.
    pub flags: u32,
    /// Must be 0.
    pub __reserved: u32,
    /// The VT-d Capability Register.
    pub cap_reg: u64,
    /// The VT-d Extended Capability Register.
    pub ecap_reg: u64,
}
layout!(iommu_hw_info_vtd, 24; flags 0, __reserved 4, cap_reg 8, ecap_reg 16);

/// Hardware information of type [`IOMMU_HW_INFO_TYPE_ARM_SMMUV3`].
#[repr(C)]
#[derive(
    Debug, Default, Clone, Copy, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct iommu_hw_info_arm_smmuv3 {
    /// Must be 0.
    pub flags: u32,
    /// Must be 0.
    pub __reserved: u32,
    /// Raw SMMU_IDR0..SMMU_IDR5 registers.
    pub idr: [u32; 6],
    /// Raw SMMU_IIDR register.
    pub iidr: u32,
    /// Raw SMMU_AIDR register.
    pub aidr: u32,
}
layout!(iommu_hw_info_arm_smmuv3, 40; flags 0, __reserved 4, idr 8, iidr 32, aidr 36);

/// Hardware information of type [`IOMMU_HW_INFO_TYPE_TEGRA241_CMDQV`].
#[repr(C)]
#[derive(
    Debug, Default, Clone, Copy, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct iommu_hw_info_tegra241_cmdqv {
    /// Must be 0.
    pub flags: u32,
    /// CMDQV hardware version (PARAM bits 3:0).
    pub version: u8,
    /// Log2 of the number of virtual command queues (PARAM bits 7:4).
    pub log2vcmdqs: u8,
    /// Log2 of the number of stream-ID replacements (PARAM bits 15:12).
    pub log2vsids: u8,
    /// Must be 0.
    pub __reserved: u8,
}
layout!(iommu_hw_info_tegra241_cmdqv, 8;
    flags 0, version 4, log2vcmdqs 5, log2vsids 6, __reserved 7);

/// Hardware information of type [`IOMMU_HW_INFO_TYPE_AMD`].
#[repr(C)]
#[derive(
    Debug, Default, Clone, Copy, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct iommu_hw_info_amd {
    /// The Extended Feature Register.
    pub efr: u64,
    /// The Extended Feature 2 Register.
    pub efr2: u64,
}
layout!(iommu_hw_info_amd, 16; efr 0, efr2 8);

/// `enum iommu_hw_info_type`: format of the data [`IOMMU_GET_HW_INFO`] returns.
pub type iommu_hw_info_type = u32;
/// Output: the driver reports no hardware information.
pub const IOMMU_HW_INFO_TYPE_NONE: iommu_hw_info_type = 0;
/// Input: ask for the driver's default type (same value as `NONE`).
pub const IOMMU_HW_INFO_TYPE_DEFAULT: iommu_hw_info_type = 0;
/// [`iommu_hw_info_vtd`].
pub const IOMMU_HW_INFO_TYPE_INTEL_VTD: iommu_hw_info_type = 1;
/// [`iommu_hw_info_arm_smmuv3`].
pub const IOMMU_HW_INFO_TYPE_ARM_SMMUV3: iommu_hw_info_type = 2;
/// [`iommu_hw_info_tegra241_cmdqv`].
pub const IOMMU_HW_INFO_TYPE_TEGRA241_CMDQV: iommu_hw_info_type = 3;
/// [`iommu_hw_info_amd`].
pub const IOMMU_HW_INFO_TYPE_AMD: iommu_hw_info_type = 4;

/// `enum iommufd_hw_capabilities`: bits of [`iommu_hw_info::out_capabilities`] (a `u64`).
pub type iommufd_hw_capabilities = u64;
/// The IOMMU can track dirty IOVAs (the dirty-tracking ioctls work).
pub const IOMMU_HW_CAP_DIRTY_TRACKING: iommufd_hw_capabilities = 1 << 0;
/// PCI PASID execute permission is supported (ignore when PASID width is 0).
pub const IOMMU_HW_CAP_PCI_PASID_EXEC: iommufd_hw_capabilities = 1 << 1;
/// PCI PASID privileged mode is supported (ignore when PASID width is 0).
pub const IOMMU_HW_CAP_PCI_PASID_PRIV: iommufd_hw_capabilities = 1 << 2;
/// ATS cannot be used for this device (clear means it may be).
pub const IOMMU_HW_CAP_PCI_ATS_NOT_SUPPORTED: iommufd_hw_capabilities = 1 << 3;

/// `enum iommufd_hw_info_flags`: bits of [`iommu_hw_info::flags`].
pub type iommufd_hw_info_flags = u32;
/// The input type in [`iommu_hw_info::data_type`] selects which info to return.
pub const IOMMU_HW_INFO_FLAG_INPUT_TYPE: iommufd_hw_info_flags = 1 << 0;

/// Argument of [`IOMMU_GET_HW_INFO`]: query the IOMMU behind a device.
///
/// The C struct has an anonymous union `{ __u32 in_data_type; __u32 out_data_type; }`
/// at offset 24. Both members are the same `u32`, so it is the single field
/// [`data_type`](Self::data_type); the accessors name the direction being used.
#[repr(C)]
#[derive(
    Debug, Default, Clone, Copy, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct iommu_hw_info {
    /// `sizeof(struct iommu_hw_info)`.
    pub size: u32,
    /// Combination of `IOMMU_HW_INFO_FLAG_*`.
    pub flags: u32,
    /// Device to query.
    pub dev_id: u32,
    /// In: size of the user buffer; out: size of the data the kernel has.
    pub data_len: u32,
    /// User pointer to the buffer for the type-specific data.
    pub data_uptr: u64,
    /// C union `in_data_type` / `out_data_type`: requested type in, reported type out.
    pub data_type: u32,
    /// Output: log2 of the PASID width; 0 means no PASID support.
    pub out_max_pasid_log2: u8,
    /// Must be 0.
    pub __reserved: [u8; 3],
    /// Output: combination of `IOMMU_HW_CAP_*`.
    pub out_capabilities: u64,
}
layout!(iommu_hw_info, 40;
    size 0, flags 4, dev_id 8, data_len 12, data_uptr 16, data_type 24 [union in_data_type, out_data_type],
    out_max_pasid_log2 28, __reserved 29, out_capabilities 32);

impl iommu_hw_info {
    /// The union read as `in_data_type` (meaningful with [`IOMMU_HW_INFO_FLAG_INPUT_TYPE`]).
    pub const fn in_data_type(&self) -> iommu_hw_info_type {
        self.data_type
    }

    /// The union read as `out_data_type`.
    pub const fn out_data_type(&self) -> iommu_hw_info_type {
        self.data_type
    }

    /// Writes the union as `in_data_type`.
    pub fn set_in_data_type(&mut self, ty: iommu_hw_info_type) {
        self.data_type = ty;
    }

    /// Writes the union as `out_data_type`.
    pub fn set_out_data_type(&mut self, ty: iommu_hw_info_type) {
        self.data_type = ty;
    }
}
/// Reads hardware information of a device's IOMMU.
pub const IOMMU_GET_HW_INFO: u32 = _IO(IOMMUFD_TYPE, IOMMUFD_CMD_GET_HW_INFO);

// ---------------------------------------------------------------------------------
// Dirty tracking

/// `enum iommufd_hwpt_set_dirty_tracking_flags`: flags of [`iommu_hwpt_set_dirty_tracking`].
pub type iommufd_hwpt_set_dirty_tracking_flags = u32;
/// Turn dirty tracking on (clear: off).
pub const IOMMU_HWPT_DIRTY_TRACKING_ENABLE: iommufd_hwpt_set_dirty_tracking_flags = 1;

/// Argument of [`IOMMU_HWPT_SET_DIRTY_TRACKING`]: start or stop dirty tracking.
#[repr(C)]
#[derive(
    Debug, Default, Clone, Copy, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct iommu_hwpt_set_dirty_tracking {
    /// `sizeof(struct iommu_hwpt_set_dirty_tracking)`.
    pub size: u32,
    /// Combination of `IOMMU_HWPT_DIRTY_TRACKING_*`.
    pub flags: u32,
    /// HWPT to change.
    pub hwpt_id: u32,
    /// Must be 0.
    pub __reserved: u32,
}
layout!(iommu_hwpt_set_dirty_tracking, 16; size 0, flags 4, hwpt_id 8, __reserved 12);
/// Enables or disables dirty tracking on a HWPT.
pub const IOMMU_HWPT_SET_DIRTY_TRACKING: u32 =
    _IO(IOMMUFD_TYPE, IOMMUFD_CMD_HWPT_SET_DIRTY_TRACKING);

/// `enum iommufd_hwpt_get_dirty_bitmap_flags`: flags of [`iommu_hwpt_get_dirty_bitmap`].
pub type iommufd_hwpt_get_dirty_bitmap_flags = u32;
/// Report dirty bits without clearing them.
pub const IOMMU_HWPT_GET_DIRTY_BITMAP_NO_CLEAR: iommufd_hwpt_get_dirty_bitmap_flags = 1;

/// Argument of [`IOMMU_HWPT_GET_DIRTY_BITMAP`]: read (and clear) dirty bits of a range.
///
/// Bit `n` of the bitmap at `data` stands for the `page_size` bytes at
/// `iova + n * page_size`, in 64-bit words.
#[repr(C)]
#[derive(
    Debug, Default, Clone, Copy, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct iommu_hwpt_get_dirty_bitmap {
    /// `sizeof(struct iommu_hwpt_get_dirty_bitmap)`.
    pub size: u32,
    /// HWPT to read.
    pub hwpt_id: u32,
    /// Combination of `IOMMU_HWPT_GET_DIRTY_BITMAP_*`.
    pub flags: u32,
    /// Must be 0.
    pub __reserved: u32,
    /// IOVA of the first bit.
    pub iova: u64,
    /// Length of the IOVA range.
    pub length: u64,
    /// Bytes of IOVA per bit.
    pub page_size: u64,
    /// User pointer to the bitmap.
    pub data: u64,
}
layout!(iommu_hwpt_get_dirty_bitmap, 48;
    size 0, hwpt_id 4, flags 8, __reserved 12, iova 16, length 24, page_size 32, data 40);
/// Reads the dirty bitmap of an IOVA range.
pub const IOMMU_HWPT_GET_DIRTY_BITMAP: u32 = _IO(IOMMUFD_TYPE, IOMMUFD_CMD_HWPT_GET_DIRTY_BITMAP);

// ---------------------------------------------------------------------------------
// IOMMU_HWPT_INVALIDATE

/// `enum iommu_hwpt_invalidate_data_type`: format of the invalidation array entries.
pub type iommu_hwpt_invalidate_data_type = u32;
/// Entries are [`iommu_hwpt_vtd_s1_invalidate`].
pub const IOMMU_HWPT_INVALIDATE_DATA_VTD_S1: iommu_hwpt_invalidate_data_type = 0;
/// Entries are [`iommu_viommu_arm_smmuv3_invalidate`] (sent to a vIOMMU).
pub const IOMMU_VIOMMU_INVALIDATE_DATA_ARM_SMMUV3: iommu_hwpt_invalidate_data_type = 1;

/// `enum iommu_hwpt_vtd_s1_invalidate_flags`: bits of [`iommu_hwpt_vtd_s1_invalidate::flags`].
pub type iommu_hwpt_vtd_s1_invalidate_flags = u32;
/// Invalidate leaf entries only, not the paging-structure caches.
pub const IOMMU_VTD_INV_FLAGS_LEAF: iommu_hwpt_vtd_s1_invalidate_flags = 1 << 0;

/// One VT-d stage-1 invalidation request ([`IOMMU_HWPT_INVALIDATE_DATA_VTD_S1`]).
#[repr(C)]
#[derive(
    Debug, Default, Clone, Copy, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct iommu_hwpt_vtd_s1_invalidate {
    /// 4 KiB-aligned start address (0 with `npages == u64::MAX` means everything).
    pub addr: u64,
    /// Number of 4 KiB pages.
    pub npages: u64,
    /// Combination of `IOMMU_VTD_INV_FLAGS_*`.
    pub flags: u32,
    /// Must be 0.
    pub __reserved: u32,
}
layout!(iommu_hwpt_vtd_s1_invalidate, 24; addr 0, npages 8, flags 16, __reserved 20);

/// One SMMUv3 command ([`IOMMU_VIOMMU_INVALIDATE_DATA_ARM_SMMUV3`]).
#[repr(C)]
#[derive(
    Debug, Default, Clone, Copy, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct iommu_viommu_arm_smmuv3_invalidate {
    /// The 128-bit command-queue entry, two little-endian words.
    pub cmd: [u64; 2],
}
layout!(iommu_viommu_arm_smmuv3_invalidate, 16; cmd 0 [c "__aligned_le64"]);

/// Argument of [`IOMMU_HWPT_INVALIDATE`]: flush caches of a nested HWPT or a vIOMMU.
#[repr(C)]
#[derive(
    Debug, Default, Clone, Copy, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct iommu_hwpt_invalidate {
    /// `sizeof(struct iommu_hwpt_invalidate)`.
    pub size: u32,
    /// Nested HWPT or vIOMMU whose caches to invalidate.
    pub hwpt_id: u32,
    /// User pointer to the array of requests.
    pub data_uptr: u64,
    /// One of the invalidation data types.
    pub data_type: u32,
    /// Size in bytes of one array entry.
    pub entry_len: u32,
    /// In: number of entries; out: number handled. 0 probes support for `data_type`.
    pub entry_num: u32,
    /// Must be 0.
    pub __reserved: u32,
}
layout!(iommu_hwpt_invalidate, 32;
    size 0, hwpt_id 4, data_uptr 8, data_type 16, entry_len 20, entry_num 24, __reserved 28);
/// Invalidates caches of a nested HWPT or a vIOMMU.
pub const IOMMU_HWPT_INVALIDATE: u32 = _IO(IOMMUFD_TYPE, IOMMUFD_CMD_HWPT_INVALIDATE);

// ---------------------------------------------------------------------------------
// I/O page faults

/// `enum iommu_hwpt_pgfault_flags`: bits of [`iommu_hwpt_pgfault::flags`].
pub type iommu_hwpt_pgfault_flags = u32;
/// [`iommu_hwpt_pgfault::pasid`] is valid.
pub const IOMMU_PGFAULT_FLAGS_PASID_VALID: iommu_hwpt_pgfault_flags = 1 << 0;
/// Last fault of its group: respond with this fault's cookie.
pub const IOMMU_PGFAULT_FLAGS_LAST_PAGE: iommu_hwpt_pgfault_flags = 1 << 1;

/// `enum iommu_hwpt_pgfault_perm`: bits of [`iommu_hwpt_pgfault::perm`].
pub type iommu_hwpt_pgfault_perm = u32;
/// Read access requested.
pub const IOMMU_PGFAULT_PERM_READ: iommu_hwpt_pgfault_perm = 1 << 0;
/// Write access requested.
pub const IOMMU_PGFAULT_PERM_WRITE: iommu_hwpt_pgfault_perm = 1 << 1;
/// Execute access requested (PCIe PASID prefix).
pub const IOMMU_PGFAULT_PERM_EXEC: iommu_hwpt_pgfault_perm = 1 << 2;
/// Privileged-mode access requested (PCIe PASID prefix).
pub const IOMMU_PGFAULT_PERM_PRIV: iommu_hwpt_pgfault_perm = 1 << 3;

/// One fault record read from a fault-queue fd.
#[repr(C)]
#[derive(
    Debug, Default, Clone, Copy, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct iommu_hwpt_pgfault {
    /// Combination of `IOMMU_PGFAULT_FLAGS_*`.
    pub flags: u32,
    /// Device that faulted.
    pub dev_id: u32,
    /// PASID of the access, if `PASID_VALID`.
    pub pasid: u32,
    /// Page request group index.
    pub grpid: u32,
    /// Combination of `IOMMU_PGFAULT_PERM_*`.
    pub perm: u32,
    /// Must be 0.
    pub __reserved: u32,
    /// Faulting address.
    pub addr: u64,
    /// Hint of how many bytes the device will access; 0 if unknown.
    pub length: u32,
    /// Kernel cookie to echo in the response.
    pub cookie: u32,
}
layout!(iommu_hwpt_pgfault, 40;
    flags 0, dev_id 4, pasid 8, grpid 12, perm 16, __reserved 20, addr 24, length 32,
    cookie 36);

/// `enum iommufd_page_response_code`: [`iommu_hwpt_page_response::code`].
pub type iommufd_page_response_code = u32;
/// Fault handled: the device should retry.
pub const IOMMUFD_PAGE_RESP_SUCCESS: iommufd_page_response_code = 0;
/// Fault not handled: the device should not retry.
pub const IOMMUFD_PAGE_RESP_INVALID: iommufd_page_response_code = 1;

/// One response record written to a fault-queue fd.
#[repr(C)]
#[derive(
    Debug, Default, Clone, Copy, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct iommu_hwpt_page_response {
    /// Cookie of the group's last fault.
    pub cookie: u32,
    /// One of `IOMMUFD_PAGE_RESP_*`.
    pub code: u32,
}
layout!(iommu_hwpt_page_response, 8; cookie 0, code 4);

/// Argument of [`IOMMU_FAULT_QUEUE_ALLOC`]: create a fault queue and its fd.
#[repr(C)]
#[derive(
    Debug, Default, Clone, Copy, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct iommu_fault_alloc {
    /// `sizeof(struct iommu_fault_alloc)`.
    pub size: u32,
    /// Must be 0.
    pub flags: u32,
    /// Output: ID of the new fault object.
    pub out_fault_id: u32,
    /// Output: fd to read faults from and write responses to.
    pub out_fault_fd: u32,
}
layout!(iommu_fault_alloc, 16; size 0, flags 4, out_fault_id 8, out_fault_fd 12);
/// Allocates a fault queue.
pub const IOMMU_FAULT_QUEUE_ALLOC: u32 = _IO(IOMMUFD_TYPE, IOMMUFD_CMD_FAULT_QUEUE_ALLOC);

// ---------------------------------------------------------------------------------
// vIOMMU and vDEVICE

/// `enum iommu_viommu_type`: [`iommu_viommu_alloc::type_`].
pub type iommu_viommu_type = u32;
/// Reserved.
pub const IOMMU_VIOMMU_TYPE_DEFAULT: iommu_viommu_type = 0;
/// ARM SMMUv3 vIOMMU.
pub const IOMMU_VIOMMU_TYPE_ARM_SMMUV3: iommu_viommu_type = 1;
/// ARM SMMUv3 with the NVIDIA Tegra241 CMDQV extension (data: [`iommu_viommu_tegra241_cmdqv`]).
pub const IOMMU_VIOMMU_TYPE_TEGRA241_CMDQV: iommu_viommu_type = 2;

/// vIOMMU data for [`IOMMU_VIOMMU_TYPE_TEGRA241_CMDQV`]: where to mmap the VINTF page.
#[repr(C)]
#[derive(
    Debug, Default, Clone, Copy, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct iommu_viommu_tegra241_cmdqv {
    /// Output: mmap offset (on the iommufd) of VINTF page 0.
    pub out_vintf_mmap_offset: u64,
    /// Output: mmap length of VINTF page 0.
    pub out_vintf_mmap_length: u64,
}
layout!(iommu_viommu_tegra241_cmdqv, 16; out_vintf_mmap_offset 0, out_vintf_mmap_length 8);

/// Argument of [`IOMMU_VIOMMU_ALLOC`]: create a virtual IOMMU on a nesting parent.
#[repr(C)]
#[derive(
    Debug, Default, Clone, Copy, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct iommu_viommu_alloc {
    /// `sizeof(struct iommu_viommu_alloc)`.
    pub size: u32,
    /// Must be 0.
    pub flags: u32,
    /// One of `IOMMU_VIOMMU_TYPE_*` (C name `type`).
    pub type_: u32,
    /// Device whose physical IOMMU backs the vIOMMU.
    pub dev_id: u32,
    /// Nesting-parent HWPT to use as stage 2.
    pub hwpt_id: u32,
    /// Output: ID of the new vIOMMU.
    pub out_viommu_id: u32,
    /// Length of the data at `data_uptr`.
    pub data_len: u32,
    /// Must be 0.
    pub __reserved: u32,
    /// User pointer to type-specific data.
    pub data_uptr: u64,
}
layout!(iommu_viommu_alloc, 40;
    size 0, flags 4, type_ 8 [as "type"], dev_id 12, hwpt_id 16, out_viommu_id 20, data_len 24,
    __reserved 28, data_uptr 32);
/// Allocates a vIOMMU.
pub const IOMMU_VIOMMU_ALLOC: u32 = _IO(IOMMUFD_TYPE, IOMMUFD_CMD_VIOMMU_ALLOC);

/// Argument of [`IOMMU_VDEVICE_ALLOC`]: give a device its guest-visible ID on a vIOMMU.
#[repr(C)]
#[derive(
    Debug, Default, Clone, Copy, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct iommu_vdevice_alloc {
    /// `sizeof(struct iommu_vdevice_alloc)`.
    pub size: u32,
    /// vIOMMU the device is virtualised on.
    pub viommu_id: u32,
    /// The physical device.
    pub dev_id: u32,
    /// Output: ID of the new vDEVICE.
    pub out_vdevice_id: u32,
    /// Virtual device ID on the vIOMMU (vSID, vDeviceID, vRID...).
    pub virt_id: u64,
}
layout!(iommu_vdevice_alloc, 24;
    size 0, viommu_id 4, dev_id 8, out_vdevice_id 12, virt_id 16);
/// Allocates a vDEVICE.
pub const IOMMU_VDEVICE_ALLOC: u32 = _IO(IOMMUFD_TYPE, IOMMUFD_CMD_VDEVICE_ALLOC);

// ---------------------------------------------------------------------------------
// IOMMU_IOAS_CHANGE_PROCESS

/// Argument of [`IOMMU_IOAS_CHANGE_PROCESS`]: move pin accounting to the calling process.
#[repr(C)]
#[derive(
    Debug, Default, Clone, Copy, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct iommu_ioas_change_process {
    /// `sizeof(struct iommu_ioas_change_process)`.
    pub size: u32,
    /// Must be 0.
    pub __reserved: u32,
}
layout!(iommu_ioas_change_process, 8; size 0, __reserved 4);
/// Transfers the pinned-memory accounting of all file maps to the caller.
pub const IOMMU_IOAS_CHANGE_PROCESS: u32 = _IO(IOMMUFD_TYPE, IOMMUFD_CMD_IOAS_CHANGE_PROCESS);

// ---------------------------------------------------------------------------------
// vEVENTQ

/// `enum iommu_veventq_flag`: bits of [`iommufd_vevent_header::flags`].
pub type iommu_veventq_flag = u32;
/// Events were lost; no payload follows this header.
pub const IOMMU_VEVENTQ_FLAG_LOST_EVENTS: iommu_veventq_flag = 1 << 0;

/// Header before each record read from a vEVENTQ fd.
#[repr(C)]
#[derive(
    Debug, Default, Clone, Copy, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct iommufd_vevent_header {
    /// Combination of `IOMMU_VEVENTQ_FLAG_*`.
    pub flags: u32,
    /// Sequence number in `0..=i32::MAX`, wrapping to 0; gaps mean lost events.
    pub sequence: u32,
}
layout!(iommufd_vevent_header, 8; flags 0, sequence 4);

/// `enum iommu_veventq_type`: [`iommu_veventq_alloc::type_`].
pub type iommu_veventq_type = u32;
/// Reserved.
pub const IOMMU_VEVENTQ_TYPE_DEFAULT: iommu_veventq_type = 0;
/// Records are [`iommu_vevent_arm_smmuv3`].
pub const IOMMU_VEVENTQ_TYPE_ARM_SMMUV3: iommu_veventq_type = 1;
/// Records are [`iommu_vevent_tegra241_cmdqv`].
pub const IOMMU_VEVENTQ_TYPE_TEGRA241_CMDQV: iommu_veventq_type = 2;

/// An SMMUv3 event record for the guest.
#[repr(C)]
#[derive(
    Debug, Default, Clone, Copy, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct iommu_vevent_arm_smmuv3 {
    /// The 256-bit event record, four little-endian words; StreamID holds the virtual ID.
    pub evt: [u64; 4],
}
layout!(iommu_vevent_arm_smmuv3, 32; evt 0 [c "__aligned_le64"]);

/// A Tegra241 CMDQV error interrupt for the guest.
#[repr(C)]
#[derive(
    Debug, Default, Clone, Copy, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct iommu_vevent_tegra241_cmdqv {
    /// The 128-bit LVCMDQ error map, two little-endian words.
    pub lvcmdq_err_map: [u64; 2],
}
layout!(iommu_vevent_tegra241_cmdqv, 16; lvcmdq_err_map 0 [c "__aligned_le64"]);

/// Argument of [`IOMMU_VEVENTQ_ALLOC`]: create a virtual event queue on a vIOMMU.
#[repr(C)]
#[derive(
    Debug, Default, Clone, Copy, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct iommu_veventq_alloc {
    /// `sizeof(struct iommu_veventq_alloc)`.
    pub size: u32,
    /// Must be 0.
    pub flags: u32,
    /// vIOMMU the queue belongs to.
    pub viommu_id: u32,
    /// One of `IOMMU_VEVENTQ_TYPE_*`, at most one queue per type (C name `type`).
    pub type_: u32,
    /// Maximum number of queued events before events are lost.
    pub veventq_depth: u32,
    /// Output: ID of the new vEVENTQ.
    pub out_veventq_id: u32,
    /// Output: fd to read events from.
    pub out_veventq_fd: u32,
    /// Must be 0.
    pub __reserved: u32,
}
layout!(iommu_veventq_alloc, 32;
    size 0, flags 4, viommu_id 8, type_ 12 [as "type"], veventq_depth 16, out_veventq_id 20,
    out_veventq_fd 24, __reserved 28);
/// Allocates a vEVENTQ.
pub const IOMMU_VEVENTQ_ALLOC: u32 = _IO(IOMMUFD_TYPE, IOMMUFD_CMD_VEVENTQ_ALLOC);

// ---------------------------------------------------------------------------------
// HW queue

/// `enum iommu_hw_queue_type`: [`iommu_hw_queue_alloc::type_`].
pub type iommu_hw_queue_type = u32;
/// Reserved.
pub const IOMMU_HW_QUEUE_TYPE_DEFAULT: iommu_hw_queue_type = 0;
/// NVIDIA Tegra241 CMDQV virtual command queue.
pub const IOMMU_HW_QUEUE_TYPE_TEGRA241_CMDQV: iommu_hw_queue_type = 1;

/// Argument of [`IOMMU_HW_QUEUE_ALLOC`]: give a vIOMMU a hardware-accelerated queue.
#[repr(C)]
#[derive(
    Debug, Default, Clone, Copy, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct iommu_hw_queue_alloc {
    /// `sizeof(struct iommu_hw_queue_alloc)`.
    pub size: u32,
    /// Must be 0.
    pub flags: u32,
    /// vIOMMU the queue belongs to.
    pub viommu_id: u32,
    /// One of `IOMMU_HW_QUEUE_TYPE_*` (C name `type`).
    pub type_: u32,
    /// Index of the queue among the vIOMMU's queues of this type.
    pub index: u32,
    /// Output: ID of the new HW queue.
    pub out_hw_queue_id: u32,
    /// Base of the queue memory in the nesting parent's (guest-physical) IOVA space.
    pub nesting_parent_iova: u64,
    /// Length of the queue memory in bytes.
    pub length: u64,
}
layout!(iommu_hw_queue_alloc, 40;
    size 0, flags 4, viommu_id 8, type_ 12 [as "type"], index 16, out_hw_queue_id 20,
    nesting_parent_iova 24, length 32);
/// Allocates a HW queue.
pub const IOMMU_HW_QUEUE_ALLOC: u32 = _IO(IOMMUFD_TYPE, IOMMUFD_CMD_HW_QUEUE_ALLOC);
