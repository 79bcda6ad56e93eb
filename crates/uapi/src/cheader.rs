//! C headers rendered from this crate's Rust definitions.
//!
//! A C program that talks to `/dev/iommu` needs `linux/iommufd.h`, and the kernel's
//! selftests also need `iommufd_test.h`. A distribution's kernel headers are often
//! older than the uAPI softiommu implements, so this module writes both headers from
//! the Rust definitions in [`crate::iommufd`] and [`crate::test`]: the same structs,
//! field names, enumerators and ioctl numbers, spelled the way C code (the selftests
//! in particular) expects, including the anonymous unions.
//!
//! # How the text is produced
//!
//! Nothing here is C text kept on the side. Two kinds of table feed the renderer:
//!
//! - Structs: the `layout!` macro that asserts each struct's size and field offsets
//!   also implements [`CLayout`] for it. Its [`CStruct`] lists the same fields, with
//!   offsets from `offset_of!`, sizes from the field types, and C types derived from
//!   the Rust types (`u32` → `__u32`, `i32` → `__s32`, `u64` → `__aligned_u64`,
//!   arrays keep their length). A few fields carry a note where C differs: a renamed
//!   field (`type_` → `type`), another C type (`__aligned_le64`), padding that Rust
//!   spells out and C leaves implicit, and the anonymous unions.
//! - Everything else: [`IOMMUFD_H`] and [`IOMMUFD_TEST_H`] list the header's items in
//!   header order ([`Item`]). Each entry names a Rust constant, struct or type alias,
//!   so a misspelt name does not compile and every value comes from Rust. Ioctl
//!   numbers are written as `_IO(IOMMUFD_TYPE, nr)`, as C code expects, and a
//!   compile-time assertion checks that this expression equals the Rust constant.
//!   Enumerators are checked at compile time to fit a C `int`.
//!
//! Whether a constant is an enumerator or a `#define` follows the kernel header,
//! because C code depends on the difference: the selftests of Linux 6.12 to 6.18
//! `#define MOCK_PAGE_SIZE` themselves, which is harmless after an enumerator of that
//! name but would be a redefinition after a macro.
//!
//! The tests of this module check that every public constant, struct and enum alias
//! of the two Rust modules appears in a header; `tests/cheader.rs` compiles the
//! headers with the system C compiler and compares every size, offset and value with
//! the tables.

use std::fmt::Write as _;
use std::io;
use std::path::Path;

use crate::ioctl::_IO;
use crate::iommufd::*;
use crate::test::*;
use crate::vfio::*;

// ---------------------------------------------------------------------------------
// Tables

/// The C type of a struct field.
#[derive(Debug, Clone, Copy)]
pub enum CType {
    /// A scalar type from `linux/types.h` (`__u32`, `__aligned_u64`, ...).
    Scalar(&'static str),
    /// A fixed-length array of a scalar type.
    Array(&'static str, usize),
    /// An anonymous `struct` laid out as the given table (a member of a union).
    Struct(&'static CStruct),
    /// An anonymous `union` of the given members, each at offset 0 within it.
    Union(&'static [CField]),
    /// Padding that the Rust struct names and C leaves implicit; not rendered.
    Padding,
}

impl CType {
    /// The same shape with another scalar (element) type; other kinds are unchanged.
    pub const fn with_scalar(self, scalar: &'static str) -> CType {
        match self {
            CType::Scalar(_) => CType::Scalar(scalar),
            CType::Array(_, len) => CType::Array(scalar, len),
            other => other,
        }
    }
}

/// One field of a [`CStruct`].
#[derive(Debug, Clone, Copy)]
pub struct CField {
    /// The C name (for an anonymous union, the Rust field's name, which C lacks).
    pub name: &'static str,
    /// Offset in bytes from the start of the enclosing struct or union.
    pub offset: usize,
    /// Size in bytes.
    pub size: usize,
    /// How C declares it.
    pub ty: CType,
}

/// The C view of one `#[repr(C)]` struct.
#[derive(Debug)]
pub struct CStruct {
    /// The struct tag, identical to the Rust type's name.
    pub name: &'static str,
    /// `size_of` the Rust struct, which `sizeof` in C must equal.
    pub size: usize,
    /// `align_of` the Rust struct, which `_Alignof` in C must equal.
    pub align: usize,
    /// Fields in declaration order, padding included (as [`CType::Padding`]).
    pub fields: &'static [CField],
    /// A flexible array member C declares after the fields (`__u8 data[]`),
    /// which the Rust struct leaves out: its element type and name.
    pub flex: Option<(&'static str, &'static str)>,
}

/// A uAPI struct's C description, implemented by the `layout!` macro.
pub trait CLayout {
    /// The struct's table.
    const C_STRUCT: CStruct;
}

/// Rust field types that have a C spelling.
pub(crate) trait CRepr {
    const C_TYPE: CType;
}

macro_rules! c_scalars {
    ($($t:ty => $c:literal),*) => {$(
        impl CRepr for $t {
            const C_TYPE: CType = CType::Scalar($c);
        }
        impl<const N: usize> CRepr for [$t; N] {
            const C_TYPE: CType = CType::Array($c, N);
        }
    )*};
}

// `__aligned_u64` rather than `__u64`: the uAPI aligns its 64-bit fields to 8 even
// on 32-bit targets, and so does Rust on every target this crate supports.
c_scalars!(u8 => "__u8", u16 => "__u16", u32 => "__u32", i32 => "__s32", u64 => "__aligned_u64");

/// The C type of the field that `field` projects to (used by `layout!`).
pub(crate) const fn field_ctype<S, T: CRepr>(_field: fn(&S) -> &T) -> CType {
    T::C_TYPE
}

/// The size of the field that `field` projects to (used by `layout!`).
pub(crate) const fn field_size<S, T>(_field: fn(&S) -> &T) -> usize {
    core::mem::size_of::<T>()
}

/// A named integer constant.
#[derive(Debug, Clone, Copy)]
pub struct CConst {
    /// The C (and Rust) name.
    pub name: &'static str,
    /// The value, widened.
    pub value: u64,
}

/// An ioctl number, rendered as `#define NAME _IO(IOMMUFD_TYPE, NR)`.
#[derive(Debug, Clone, Copy)]
pub struct CIoctl {
    /// The C (and Rust) name.
    pub name: &'static str,
    /// The C expression of the command number, e.g. `IOMMUFD_CMD_IOAS_MAP`.
    pub nr: &'static str,
    /// The request number, which `_IO(IOMMUFD_TYPE, NR)` equals.
    pub value: u32,
}

/// One item of a header, in header order.
#[derive(Debug, Clone, Copy)]
pub enum Item {
    /// A comment line of our own.
    Comment(&'static str),
    /// `#define NAME VALUE`.
    Define(CConst),
    /// `enum TAG { ... };`, or an anonymous `enum { ... };` without a tag.
    Enum {
        /// The enum tag, `None` for an anonymous enum.
        tag: Option<&'static str>,
        /// The enumerators, each with its explicit value.
        values: &'static [CConst],
    },
    /// `struct NAME { ... };`.
    Struct(&'static CStruct),
    /// An ioctl number.
    Ioctl(CIoctl),
}

/// A header file: its place under the include directory and its items.
#[derive(Debug)]
pub struct Header {
    /// Path relative to the include directory, e.g. `linux/iommufd.h`.
    pub path: &'static str,
    /// The include guard macro (the kernel's, so that only one copy is ever used).
    pub guard: &'static str,
    /// Headers it includes, in `<...>` form.
    pub includes: &'static [&'static str],
    /// C text after the includes (fallbacks for old system headers), or empty.
    pub prelude: &'static str,
    /// The macro its ioctls name as their type byte (`IOMMUFD_TYPE`).
    pub ioctl_type: &'static str,
    /// Items in order.
    pub items: &'static [Item],
}

const fn enumerator(c: CConst) -> CConst {
    assert!(
        c.value <= i32::MAX as u64,
        "a C enumerator must fit in an int"
    );
    c
}

const fn ioctl(name: &'static str, value: u32, nr: &'static str, nr_value: u32) -> CIoctl {
    assert!(
        _IO(IOMMUFD_TYPE, nr_value) == value,
        "an ioctl number differs from _IO(IOMMUFD_TYPE, nr)"
    );
    CIoctl { name, nr, value }
}

macro_rules! c_const {
    ($name:ident) => {
        CConst {
            name: stringify!($name),
            value: $name as u64,
        }
    };
}

macro_rules! c_define {
    ($name:ident) => {
        Item::Define(c_const!($name))
    };
}

macro_rules! c_enum {
    (_ { $($v:ident),+ $(,)? }) => {
        Item::Enum { tag: None, values: &[$(enumerator(c_const!($v))),+] }
    };
    ($tag:ident { $($v:ident),+ $(,)? }) => {
        Item::Enum {
            tag: Some({
                // The tag must be the name of a Rust alias of this crate.
                let _: Option<$tag> = None;
                stringify!($tag)
            }),
            values: &[$(enumerator(c_const!($v))),+],
        }
    };
}

macro_rules! c_struct {
    ($t:ident) => {
        Item::Struct(&<$t as CLayout>::C_STRUCT)
    };
}

macro_rules! c_ioctl {
    ($name:ident = $nr:expr) => {
        Item::Ioctl(ioctl(stringify!($name), $name, stringify!($nr), $nr))
    };
}

// ---------------------------------------------------------------------------------
// The headers

/// Fallbacks for `linux/types.h` releases that predate a type the uAPI uses
/// (`__aligned_le64` appeared in Linux 6.14). Both are macros there, so `#ifndef`
/// finds them.
const TYPE_FALLBACKS: &str = "\
#ifndef __aligned_u64
#define __aligned_u64 __u64 __attribute__((aligned(8)))
#endif
#ifndef __aligned_le64
#define __aligned_le64 __le64 __attribute__((aligned(8)))
#endif
";

/// `linux/iommufd.h`.
pub static IOMMUFD_H: Header = Header {
    path: "linux/iommufd.h",
    guard: "_UAPI_IOMMUFD_H",
    includes: &["linux/types.h", "linux/ioctl.h"],
    prelude: TYPE_FALLBACKS,
    ioctl_type: "IOMMUFD_TYPE",
    items: &[
        Item::Comment("The ioctl type byte of iommufd, ';' (shared with VFIO)."),
        c_define!(IOMMUFD_TYPE),
        Item::Comment("Command numbers; each request number is _IO(IOMMUFD_TYPE, cmd)."),
        c_enum!(_ {
            IOMMUFD_CMD_BASE,
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
        }),
        Item::Comment("Destroy any object by its ID."),
        c_struct!(iommu_destroy),
        c_ioctl!(IOMMU_DESTROY = IOMMUFD_CMD_DESTROY),
        Item::Comment("I/O address spaces."),
        c_struct!(iommu_ioas_alloc),
        c_ioctl!(IOMMU_IOAS_ALLOC = IOMMUFD_CMD_IOAS_ALLOC),
        c_struct!(iommu_iova_range),
        c_struct!(iommu_ioas_iova_ranges),
        c_ioctl!(IOMMU_IOAS_IOVA_RANGES = IOMMUFD_CMD_IOAS_IOVA_RANGES),
        c_struct!(iommu_ioas_allow_iovas),
        c_ioctl!(IOMMU_IOAS_ALLOW_IOVAS = IOMMUFD_CMD_IOAS_ALLOW_IOVAS),
        c_enum!(iommufd_ioas_map_flags {
            IOMMU_IOAS_MAP_FIXED_IOVA,
            IOMMU_IOAS_MAP_WRITEABLE,
            IOMMU_IOAS_MAP_READABLE,
        }),
        c_struct!(iommu_ioas_map),
        c_ioctl!(IOMMU_IOAS_MAP = IOMMUFD_CMD_IOAS_MAP),
        c_struct!(iommu_ioas_map_file),
        c_ioctl!(IOMMU_IOAS_MAP_FILE = IOMMUFD_CMD_IOAS_MAP_FILE),
        c_struct!(iommu_ioas_copy),
        c_ioctl!(IOMMU_IOAS_COPY = IOMMUFD_CMD_IOAS_COPY),
        c_struct!(iommu_ioas_unmap),
        c_ioctl!(IOMMU_IOAS_UNMAP = IOMMUFD_CMD_IOAS_UNMAP),
        Item::Comment("Options, global or per object."),
        c_enum!(iommufd_option {
            IOMMU_OPTION_RLIMIT_MODE,
            IOMMU_OPTION_HUGE_PAGES,
        }),
        c_enum!(iommufd_option_ops {
            IOMMU_OPTION_OP_SET,
            IOMMU_OPTION_OP_GET,
        }),
        c_struct!(iommu_option),
        c_ioctl!(IOMMU_OPTION = IOMMUFD_CMD_OPTION),
        Item::Comment("The IOAS behind the VFIO container emulation."),
        c_enum!(iommufd_vfio_ioas_op {
            IOMMU_VFIO_IOAS_GET,
            IOMMU_VFIO_IOAS_SET,
            IOMMU_VFIO_IOAS_CLEAR,
        }),
        c_struct!(iommu_vfio_ioas),
        c_ioctl!(IOMMU_VFIO_IOAS = IOMMUFD_CMD_VFIO_IOAS),
        Item::Comment("Hardware page tables and their driver-specific data."),
        c_enum!(iommufd_hwpt_alloc_flags {
            IOMMU_HWPT_ALLOC_NEST_PARENT,
            IOMMU_HWPT_ALLOC_DIRTY_TRACKING,
            IOMMU_HWPT_FAULT_ID_VALID,
            IOMMU_HWPT_ALLOC_PASID,
        }),
        c_enum!(iommu_hwpt_vtd_s1_flags {
            IOMMU_VTD_S1_SRE,
            IOMMU_VTD_S1_EAFE,
            IOMMU_VTD_S1_WPE,
        }),
        c_struct!(iommu_hwpt_vtd_s1),
        c_struct!(iommu_hwpt_arm_smmuv3),
        c_struct!(iommu_hwpt_amd_guest),
        c_enum!(iommu_hwpt_data_type {
            IOMMU_HWPT_DATA_NONE,
            IOMMU_HWPT_DATA_VTD_S1,
            IOMMU_HWPT_DATA_ARM_SMMUV3,
            IOMMU_HWPT_DATA_AMD_GUEST,
        }),
        c_struct!(iommu_hwpt_alloc),
        c_ioctl!(IOMMU_HWPT_ALLOC = IOMMUFD_CMD_HWPT_ALLOC),
        Item::Comment("IOMMU hardware information."),
        c_enum!(iommu_hw_info_vtd_flags {
            IOMMU_HW_INFO_VTD_ERRATA_772415_SPR17,
        }),
        c_struct!(iommu_hw_info_vtd),
        c_struct!(iommu_hw_info_arm_smmuv3),
        c_struct!(iommu_hw_info_tegra241_cmdqv),
        c_struct!(iommu_hw_info_amd),
        c_enum!(iommu_hw_info_type {
            IOMMU_HW_INFO_TYPE_NONE,
            IOMMU_HW_INFO_TYPE_DEFAULT,
            IOMMU_HW_INFO_TYPE_INTEL_VTD,
            IOMMU_HW_INFO_TYPE_ARM_SMMUV3,
            IOMMU_HW_INFO_TYPE_TEGRA241_CMDQV,
            IOMMU_HW_INFO_TYPE_AMD,
        }),
        c_enum!(iommufd_hw_capabilities {
            IOMMU_HW_CAP_DIRTY_TRACKING,
            IOMMU_HW_CAP_PCI_PASID_EXEC,
            IOMMU_HW_CAP_PCI_PASID_PRIV,
            IOMMU_HW_CAP_PCI_ATS_NOT_SUPPORTED,
        }),
        c_enum!(iommufd_hw_info_flags {
            IOMMU_HW_INFO_FLAG_INPUT_TYPE,
        }),
        c_struct!(iommu_hw_info),
        c_ioctl!(IOMMU_GET_HW_INFO = IOMMUFD_CMD_GET_HW_INFO),
        Item::Comment("Dirty tracking."),
        c_enum!(iommufd_hwpt_set_dirty_tracking_flags {
            IOMMU_HWPT_DIRTY_TRACKING_ENABLE,
        }),
        c_struct!(iommu_hwpt_set_dirty_tracking),
        c_ioctl!(IOMMU_HWPT_SET_DIRTY_TRACKING = IOMMUFD_CMD_HWPT_SET_DIRTY_TRACKING),
        c_enum!(iommufd_hwpt_get_dirty_bitmap_flags {
            IOMMU_HWPT_GET_DIRTY_BITMAP_NO_CLEAR,
        }),
        c_struct!(iommu_hwpt_get_dirty_bitmap),
        c_ioctl!(IOMMU_HWPT_GET_DIRTY_BITMAP = IOMMUFD_CMD_HWPT_GET_DIRTY_BITMAP),
        Item::Comment("Cache invalidation of nested HWPTs and vIOMMUs."),
        c_enum!(iommu_hwpt_invalidate_data_type {
            IOMMU_HWPT_INVALIDATE_DATA_VTD_S1,
            IOMMU_VIOMMU_INVALIDATE_DATA_ARM_SMMUV3,
        }),
        c_enum!(iommu_hwpt_vtd_s1_invalidate_flags {
            IOMMU_VTD_INV_FLAGS_LEAF,
        }),
        c_struct!(iommu_hwpt_vtd_s1_invalidate),
        c_struct!(iommu_viommu_arm_smmuv3_invalidate),
        c_struct!(iommu_hwpt_invalidate),
        c_ioctl!(IOMMU_HWPT_INVALIDATE = IOMMUFD_CMD_HWPT_INVALIDATE),
        Item::Comment("I/O page faults, read from and answered through a fault fd."),
        c_enum!(iommu_hwpt_pgfault_flags {
            IOMMU_PGFAULT_FLAGS_PASID_VALID,
            IOMMU_PGFAULT_FLAGS_LAST_PAGE,
        }),
        c_enum!(iommu_hwpt_pgfault_perm {
            IOMMU_PGFAULT_PERM_READ,
            IOMMU_PGFAULT_PERM_WRITE,
            IOMMU_PGFAULT_PERM_EXEC,
            IOMMU_PGFAULT_PERM_PRIV,
        }),
        c_struct!(iommu_hwpt_pgfault),
        c_enum!(iommufd_page_response_code {
            IOMMUFD_PAGE_RESP_SUCCESS,
            IOMMUFD_PAGE_RESP_INVALID,
        }),
        c_struct!(iommu_hwpt_page_response),
        c_struct!(iommu_fault_alloc),
        c_ioctl!(IOMMU_FAULT_QUEUE_ALLOC = IOMMUFD_CMD_FAULT_QUEUE_ALLOC),
        Item::Comment("Virtual IOMMUs and virtual devices."),
        c_enum!(iommu_viommu_type {
            IOMMU_VIOMMU_TYPE_DEFAULT,
            IOMMU_VIOMMU_TYPE_ARM_SMMUV3,
            IOMMU_VIOMMU_TYPE_TEGRA241_CMDQV,
        }),
        c_struct!(iommu_viommu_tegra241_cmdqv),
        c_struct!(iommu_viommu_alloc),
        c_ioctl!(IOMMU_VIOMMU_ALLOC = IOMMUFD_CMD_VIOMMU_ALLOC),
        c_struct!(iommu_vdevice_alloc),
        c_ioctl!(IOMMU_VDEVICE_ALLOC = IOMMUFD_CMD_VDEVICE_ALLOC),
        Item::Comment("Move pinned-page accounting to the calling process."),
        c_struct!(iommu_ioas_change_process),
        c_ioctl!(IOMMU_IOAS_CHANGE_PROCESS = IOMMUFD_CMD_IOAS_CHANGE_PROCESS),
        Item::Comment("Virtual event queues."),
        c_enum!(iommu_veventq_flag {
            IOMMU_VEVENTQ_FLAG_LOST_EVENTS,
        }),
        c_struct!(iommufd_vevent_header),
        c_enum!(iommu_veventq_type {
            IOMMU_VEVENTQ_TYPE_DEFAULT,
            IOMMU_VEVENTQ_TYPE_ARM_SMMUV3,
            IOMMU_VEVENTQ_TYPE_TEGRA241_CMDQV,
        }),
        c_struct!(iommu_vevent_arm_smmuv3),
        c_struct!(iommu_vevent_tegra241_cmdqv),
        c_struct!(iommu_veventq_alloc),
        c_ioctl!(IOMMU_VEVENTQ_ALLOC = IOMMUFD_CMD_VEVENTQ_ALLOC),
        Item::Comment("Hardware-accelerated queues of a vIOMMU."),
        c_enum!(iommu_hw_queue_type {
            IOMMU_HW_QUEUE_TYPE_DEFAULT,
            IOMMU_HW_QUEUE_TYPE_TEGRA241_CMDQV,
        }),
        c_struct!(iommu_hw_queue_alloc),
        c_ioctl!(IOMMU_HW_QUEUE_ALLOC = IOMMUFD_CMD_HW_QUEUE_ALLOC),
    ],
};

/// `iommufd_test.h`, the selftest ioctl and the mock driver's formats.
pub static IOMMUFD_TEST_H: Header = Header {
    path: "iommufd_test.h",
    guard: "_UAPI_IOMMUFD_TEST_H",
    includes: &["linux/iommufd.h", "linux/types.h"],
    prelude: "",
    ioctl_type: "IOMMUFD_TYPE",
    items: &[
        Item::Comment("Test operations, the op field of struct iommu_test_cmd."),
        c_enum!(_ {
            IOMMU_TEST_OP_ADD_RESERVED,
            IOMMU_TEST_OP_MOCK_DOMAIN,
            IOMMU_TEST_OP_MD_CHECK_MAP,
            IOMMU_TEST_OP_MD_CHECK_REFS,
            IOMMU_TEST_OP_CREATE_ACCESS,
            IOMMU_TEST_OP_DESTROY_ACCESS_PAGES,
            IOMMU_TEST_OP_ACCESS_PAGES,
            IOMMU_TEST_OP_ACCESS_RW,
            IOMMU_TEST_OP_SET_TEMP_MEMORY_LIMIT,
            IOMMU_TEST_OP_MOCK_DOMAIN_REPLACE,
            IOMMU_TEST_OP_ACCESS_REPLACE_IOAS,
            IOMMU_TEST_OP_MOCK_DOMAIN_FLAGS,
            IOMMU_TEST_OP_DIRTY,
            IOMMU_TEST_OP_MD_CHECK_IOTLB,
            IOMMU_TEST_OP_TRIGGER_IOPF,
            IOMMU_TEST_OP_DEV_CHECK_CACHE,
            IOMMU_TEST_OP_TRIGGER_VEVENT,
            IOMMU_TEST_OP_PASID_ATTACH,
            IOMMU_TEST_OP_PASID_REPLACE,
            IOMMU_TEST_OP_PASID_DETACH,
            IOMMU_TEST_OP_PASID_CHECK_HWPT,
            IOMMU_TEST_OP_DMABUF_GET,
            IOMMU_TEST_OP_DMABUF_REVOKE,
        }),
        Item::Comment("Mock page-table formats (iommu_hwpt_selftest.pagetable_type)."),
        c_enum!(_ {
            MOCK_IOMMUPT_DEFAULT,
            MOCK_IOMMUPT_HUGE,
        }),
        Item::Comment("Geometry of the default mock domain."),
        c_enum!(_ {
            MOCK_APERTURE_START,
            MOCK_APERTURE_LAST,
            MOCK_PAGE_SIZE,
            MOCK_HUGE_PAGE_SIZE,
        }),
        c_enum!(_ {
            MOCK_FLAGS_ACCESS_WRITE,
            MOCK_FLAGS_ACCESS_SYZ,
        }),
        c_enum!(_ {
            MOCK_ACCESS_RW_WRITE,
            MOCK_ACCESS_RW_SLOW_PATH,
        }),
        c_enum!(_ {
            MOCK_FLAGS_ACCESS_CREATE_NEEDS_PIN_PAGES,
        }),
        Item::Comment("Mock device flags; HUGE_IOVA is kept for selftests before 6.19."),
        c_enum!(_ {
            MOCK_FLAGS_DEVICE_NO_DIRTY,
            MOCK_FLAGS_DEVICE_HUGE_IOVA,
            MOCK_FLAGS_DEVICE_PASID,
        }),
        c_enum!(_ {
            MOCK_NESTED_DOMAIN_IOTLB_ID_MAX,
            MOCK_NESTED_DOMAIN_IOTLB_NUM,
        }),
        c_enum!(_ {
            MOCK_DEV_CACHE_ID_MAX,
            MOCK_DEV_CACHE_NUM,
        }),
        c_define!(IOMMU_TEST_PASID_RESERVED),
        Item::Comment("Argument of IOMMU_TEST_CMD; the union member matches op."),
        c_struct!(iommu_test_cmd),
        c_ioctl!(IOMMU_TEST_CMD = IOMMUFD_CMD_BASE + 32),
        Item::Comment("Data formats and type numbers of the mock driver."),
        c_define!(MOCK_PASID_WIDTH),
        c_define!(IOMMU_HW_INFO_TYPE_SELFTEST),
        c_define!(IOMMU_HW_INFO_SELFTEST_REGVAL),
        c_struct!(iommu_test_hw_info),
        c_define!(IOMMU_HWPT_DATA_SELFTEST),
        c_define!(IOMMU_TEST_IOTLB_DEFAULT),
        c_define!(IOMMU_TEST_DEV_CACHE_DEFAULT),
        c_struct!(iommu_hwpt_selftest),
        c_define!(IOMMU_HWPT_INVALIDATE_DATA_SELFTEST),
        c_define!(IOMMU_HWPT_INVALIDATE_DATA_SELFTEST_INVALID),
        c_define!(IOMMU_TEST_INVALIDATE_FLAG_ALL),
        c_struct!(iommu_hwpt_invalidate_selftest),
        c_define!(IOMMU_VIOMMU_TYPE_SELFTEST),
        c_struct!(iommu_viommu_selftest),
        c_define!(IOMMU_VIOMMU_INVALIDATE_DATA_SELFTEST),
        c_define!(IOMMU_VIOMMU_INVALIDATE_DATA_SELFTEST_INVALID),
        c_struct!(iommu_viommu_invalidate_selftest),
        c_define!(IOMMU_VEVENTQ_TYPE_SELFTEST),
        c_struct!(iommu_viommu_event_selftest),
        c_define!(IOMMU_HW_QUEUE_TYPE_SELFTEST),
        c_define!(IOMMU_TEST_HW_QUEUE_MAX),
    ],
};

/// `linux/vfio.h`: the container, group and device items softiommu answers.
pub static VFIO_H: Header = Header {
    path: "linux/vfio.h",
    guard: "_UAPIVFIO_H",
    includes: &["linux/types.h", "linux/ioctl.h"],
    prelude: TYPE_FALLBACKS,
    ioctl_type: "VFIO_TYPE",
    items: &[
        c_define!(VFIO_TYPE),
        c_define!(VFIO_BASE),
        c_define!(VFIO_API_VERSION),
        c_define!(VFIO_TYPE1_IOMMU),
        c_define!(VFIO_SPAPR_TCE_IOMMU),
        c_define!(VFIO_TYPE1v2_IOMMU),
        c_define!(VFIO_DMA_CC_IOMMU),
        c_define!(VFIO_EEH),
        c_define!(VFIO_TYPE1_NESTING_IOMMU),
        c_define!(VFIO_SPAPR_TCE_v2_IOMMU),
        c_define!(VFIO_NOIOMMU_IOMMU),
        c_define!(VFIO_UNMAP_ALL),
        c_define!(VFIO_UPDATE_VADDR),
        c_ioctl!(VFIO_GET_API_VERSION = VFIO_BASE),
        c_ioctl!(VFIO_CHECK_EXTENSION = VFIO_BASE + 1),
        c_ioctl!(VFIO_SET_IOMMU = VFIO_BASE + 2),
        c_struct!(vfio_info_cap_header),
        c_struct!(vfio_iommu_type1_info),
        c_define!(VFIO_IOMMU_INFO_PGSIZES),
        c_define!(VFIO_IOMMU_INFO_CAPS),
        c_define!(VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE),
        c_struct!(vfio_iova_range),
        c_struct!(vfio_iommu_type1_info_cap_iova_range),
        c_define!(VFIO_IOMMU_TYPE1_INFO_DMA_AVAIL),
        c_struct!(vfio_iommu_type1_info_dma_avail),
        c_ioctl!(VFIO_IOMMU_GET_INFO = VFIO_BASE + 12),
        c_struct!(vfio_iommu_type1_dma_map),
        c_define!(VFIO_DMA_MAP_FLAG_READ),
        c_define!(VFIO_DMA_MAP_FLAG_WRITE),
        c_define!(VFIO_DMA_MAP_FLAG_VADDR),
        c_ioctl!(VFIO_IOMMU_MAP_DMA = VFIO_BASE + 13),
        c_struct!(vfio_iommu_type1_dma_unmap),
        c_define!(VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP),
        c_define!(VFIO_DMA_UNMAP_FLAG_ALL),
        c_define!(VFIO_DMA_UNMAP_FLAG_VADDR),
        c_ioctl!(VFIO_IOMMU_UNMAP_DMA = VFIO_BASE + 14),
        c_ioctl!(VFIO_IOMMU_DIRTY_PAGES = VFIO_BASE + 17),
        c_struct!(vfio_group_status),
        c_define!(VFIO_GROUP_FLAGS_VIABLE),
        c_define!(VFIO_GROUP_FLAGS_CONTAINER_SET),
        c_ioctl!(VFIO_GROUP_GET_STATUS = VFIO_BASE + 3),
        c_ioctl!(VFIO_GROUP_SET_CONTAINER = VFIO_BASE + 4),
        c_ioctl!(VFIO_GROUP_UNSET_CONTAINER = VFIO_BASE + 5),
        c_ioctl!(VFIO_GROUP_GET_DEVICE_FD = VFIO_BASE + 6),
        c_struct!(vfio_device_info),
        c_define!(VFIO_DEVICE_FLAGS_RESET),
        c_define!(VFIO_DEVICE_FLAGS_PCI),
        c_define!(VFIO_DEVICE_FLAGS_PLATFORM),
        c_define!(VFIO_DEVICE_FLAGS_AMBA),
        c_define!(VFIO_DEVICE_FLAGS_CCW),
        c_define!(VFIO_DEVICE_FLAGS_AP),
        c_define!(VFIO_DEVICE_FLAGS_FSL_MC),
        c_define!(VFIO_DEVICE_FLAGS_CAPS),
        c_define!(VFIO_DEVICE_FLAGS_CDX),
        c_ioctl!(VFIO_DEVICE_GET_INFO = VFIO_BASE + 7),
        c_struct!(vfio_region_info),
        c_define!(VFIO_REGION_INFO_FLAG_READ),
        c_define!(VFIO_REGION_INFO_FLAG_WRITE),
        c_define!(VFIO_REGION_INFO_FLAG_MMAP),
        c_define!(VFIO_REGION_INFO_FLAG_CAPS),
        c_ioctl!(VFIO_DEVICE_GET_REGION_INFO = VFIO_BASE + 8),
        c_struct!(vfio_irq_info),
        c_define!(VFIO_IRQ_INFO_EVENTFD),
        c_define!(VFIO_IRQ_INFO_MASKABLE),
        c_define!(VFIO_IRQ_INFO_AUTOMASKED),
        c_define!(VFIO_IRQ_INFO_NORESIZE),
        c_ioctl!(VFIO_DEVICE_GET_IRQ_INFO = VFIO_BASE + 9),
        c_struct!(vfio_irq_set),
        c_define!(VFIO_IRQ_SET_DATA_NONE),
        c_define!(VFIO_IRQ_SET_DATA_BOOL),
        c_define!(VFIO_IRQ_SET_DATA_EVENTFD),
        c_define!(VFIO_IRQ_SET_ACTION_MASK),
        c_define!(VFIO_IRQ_SET_ACTION_UNMASK),
        c_define!(VFIO_IRQ_SET_ACTION_TRIGGER),
        c_define!(VFIO_IRQ_SET_DATA_TYPE_MASK),
        c_define!(VFIO_IRQ_SET_ACTION_TYPE_MASK),
        c_ioctl!(VFIO_DEVICE_SET_IRQS = VFIO_BASE + 10),
        c_ioctl!(VFIO_DEVICE_RESET = VFIO_BASE + 11),
        c_define!(VFIO_PCI_BAR0_REGION_INDEX),
        c_define!(VFIO_PCI_BAR1_REGION_INDEX),
        c_define!(VFIO_PCI_BAR2_REGION_INDEX),
        c_define!(VFIO_PCI_BAR3_REGION_INDEX),
        c_define!(VFIO_PCI_BAR4_REGION_INDEX),
        c_define!(VFIO_PCI_BAR5_REGION_INDEX),
        c_define!(VFIO_PCI_ROM_REGION_INDEX),
        c_define!(VFIO_PCI_CONFIG_REGION_INDEX),
        c_define!(VFIO_PCI_VGA_REGION_INDEX),
        c_define!(VFIO_PCI_NUM_REGIONS),
        c_define!(VFIO_PCI_INTX_IRQ_INDEX),
        c_define!(VFIO_PCI_MSI_IRQ_INDEX),
        c_define!(VFIO_PCI_MSIX_IRQ_INDEX),
        c_define!(VFIO_PCI_ERR_IRQ_INDEX),
        c_define!(VFIO_PCI_REQ_IRQ_INDEX),
        c_define!(VFIO_PCI_NUM_IRQS),
        c_struct!(vfio_pci_dependent_device),
        c_define!(VFIO_PCI_DEVID_OWNED),
        c_define!(VFIO_PCI_DEVID_NOT_OWNED),
        c_struct!(vfio_pci_hot_reset_info),
        c_define!(VFIO_PCI_HOT_RESET_FLAG_DEV_ID),
        c_define!(VFIO_PCI_HOT_RESET_FLAG_DEV_ID_OWNED),
        c_ioctl!(VFIO_DEVICE_GET_PCI_HOT_RESET_INFO = VFIO_BASE + 12),
        c_struct!(vfio_pci_hot_reset),
        c_ioctl!(VFIO_DEVICE_PCI_HOT_RESET = VFIO_BASE + 13),
        c_struct!(vfio_device_feature),
        c_define!(VFIO_DEVICE_FEATURE_MASK),
        c_define!(VFIO_DEVICE_FEATURE_GET),
        c_define!(VFIO_DEVICE_FEATURE_SET),
        c_define!(VFIO_DEVICE_FEATURE_PROBE),
        c_ioctl!(VFIO_DEVICE_FEATURE = VFIO_BASE + 17),
        c_struct!(vfio_device_bind_iommufd),
        c_define!(VFIO_DEVICE_BIND_FLAG_TOKEN),
        c_ioctl!(VFIO_DEVICE_BIND_IOMMUFD = VFIO_BASE + 18),
        c_struct!(vfio_device_attach_iommufd_pt),
        c_define!(VFIO_DEVICE_ATTACH_PASID),
        c_ioctl!(VFIO_DEVICE_ATTACH_IOMMUFD_PT = VFIO_BASE + 19),
        c_struct!(vfio_device_detach_iommufd_pt),
        c_define!(VFIO_DEVICE_DETACH_PASID),
        c_ioctl!(VFIO_DEVICE_DETACH_IOMMUFD_PT = VFIO_BASE + 20),
    ],
};

// ---------------------------------------------------------------------------------
// Rendering

/// The text of `linux/iommufd.h`.
pub fn iommufd_h() -> String {
    IOMMUFD_H.render()
}

/// The text of `iommufd_test.h`.
pub fn iommufd_test_h() -> String {
    IOMMUFD_TEST_H.render()
}

/// Writes `dir/linux/iommufd.h`, `dir/iommufd_test.h` and `dir/linux/vfio.h`, creating directories as
/// needed, so that `cc -I dir` finds them.
pub fn write(dir: &Path) -> io::Result<()> {
    for header in [&IOMMUFD_H, &IOMMUFD_TEST_H, &VFIO_H] {
        let path = dir.join(header.path);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(&path, header.render())?;
    }
    Ok(())
}

impl Header {
    /// The header's text.
    pub fn render(&self) -> String {
        let mut out = String::new();
        // `fmt::Write` for `String` never fails; the results below are ignored.
        let _ = writeln!(
            out,
            "/* SPDX-License-Identifier: MIT */\n\
             /*\n \
             * {} for the iommufd uAPI implemented by softiommu.\n \
             * Generated by softiommu-uapi from its Rust definitions; do not edit.\n \
             */\n\
             #ifndef {guard}\n\
             #define {guard}\n",
            self.path,
            guard = self.guard,
        );
        for include in self.includes {
            let _ = writeln!(out, "#include <{include}>");
        }
        if !self.prelude.is_empty() {
            let _ = write!(out, "\n{}", self.prelude);
        }
        let mut previous: Option<&Item> = None;
        for item in self.items {
            // A blank line opens each group; an ioctl stays next to its struct and a
            // run of defines stays together.
            let joined = matches!(
                (previous, item),
                (Some(Item::Comment(_)), _)
                    | (Some(Item::Struct(_)), Item::Ioctl(_))
                    | (Some(Item::Define(_)), Item::Define(_))
            );
            if !joined {
                out.push('\n');
            }
            render_item(&mut out, self, item);
            previous = Some(item);
        }
        let _ = writeln!(out, "\n#endif /* {} */", self.guard);
        out
    }
}

fn render_item(out: &mut String, header: &Header, item: &Item) {
    match item {
        Item::Comment(text) => {
            let _ = writeln!(out, "/* {text} */");
        }
        Item::Define(c) => {
            let _ = writeln!(out, "#define {} {}", c.name, c_literal(c.value));
        }
        Item::Ioctl(i) => {
            let _ = writeln!(
                out,
                "#define {} _IO({}, {})",
                i.name, header.ioctl_type, i.nr
            );
        }
        Item::Enum { tag, values } => {
            match tag {
                Some(tag) => {
                    let _ = writeln!(out, "enum {tag} {{");
                }
                None => out.push_str("enum {\n"),
            }
            for v in *values {
                let _ = writeln!(out, "\t{} = {},", v.name, c_literal(v.value));
            }
            out.push_str("};\n");
        }
        Item::Struct(s) => {
            let _ = writeln!(out, "struct {} {{", s.name);
            render_fields(out, s.fields, 1);
            if let Some((ty, name)) = s.flex {
                let _ = writeln!(out, "\t{ty} {name}[];");
            }
            out.push_str("};\n");
        }
    }
}

fn render_fields(out: &mut String, fields: &[CField], depth: usize) {
    let indent = "\t".repeat(depth);
    for f in fields {
        match f.ty {
            CType::Scalar(ty) => {
                let _ = writeln!(out, "{indent}{ty} {};", f.name);
            }
            CType::Array(ty, len) => {
                let _ = writeln!(out, "{indent}{ty} {}[{len}];", f.name);
            }
            CType::Struct(s) => {
                let _ = writeln!(out, "{indent}struct {{");
                render_fields(out, s.fields, depth + 1);
                let _ = writeln!(out, "{indent}}} {};", f.name);
            }
            CType::Union(members) => {
                let _ = writeln!(out, "{indent}union {{");
                render_fields(out, members, depth + 1);
                let _ = writeln!(out, "{indent}}};");
            }
            CType::Padding => {}
        }
    }
}

/// An integer literal with the value `v`: decimal when short, hex otherwise, with a
/// suffix where the value needs 64 bits.
fn c_literal(v: u64) -> String {
    if v < 4096 {
        v.to_string()
    } else if v <= u64::from(u32::MAX) {
        format!("{v:#x}")
    } else {
        format!("{v:#x}ULL")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Names of the items of both headers, with the structs inside unions.
    fn rendered_names() -> Vec<&'static str> {
        fn struct_names(s: &'static CStruct, names: &mut Vec<&'static str>) {
            names.push(s.name);
            for f in s.fields {
                if let CType::Union(members) = f.ty {
                    for m in members {
                        if let CType::Struct(inner) = m.ty {
                            struct_names(inner, names);
                        }
                    }
                }
            }
        }
        let mut names = Vec::new();
        for item in IOMMUFD_H
            .items
            .iter()
            .chain(IOMMUFD_TEST_H.items)
            .chain(VFIO_H.items)
        {
            match item {
                Item::Comment(_) => {}
                Item::Define(c) => names.push(c.name),
                Item::Ioctl(i) => names.push(i.name),
                Item::Enum { tag, values } => {
                    names.extend(tag);
                    names.extend(values.iter().map(|v| v.name));
                }
                Item::Struct(s) => struct_names(s, &mut names),
            }
        }
        names
    }

    /// Every `pub const`, `pub struct` and `pub type` of the two Rust modules is in a
    /// header, so a definition added there without a header entry fails here.
    #[test]
    fn headers_cover_the_rust_definitions() {
        // Rust-only helpers that have no C counterpart.
        const RUST_ONLY: &[&str] = &["IOMMU_TEST_CMD_PAYLOAD_SIZE", "VFIO_PCI_OFFSET_SHIFT"];
        let names = rendered_names();
        let mut missing = Vec::new();
        for source in [
            include_str!("iommufd.rs"),
            include_str!("test.rs"),
            include_str!("vfio.rs"),
        ] {
            for line in source.lines() {
                let Some(rest) = ["pub const ", "pub struct ", "pub type "]
                    .iter()
                    .find_map(|p| line.strip_prefix(p))
                else {
                    continue;
                };
                let name: String = rest
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                if !RUST_ONLY.contains(&name.as_str()) && !names.contains(&name.as_str()) {
                    missing.push(name);
                }
            }
        }
        assert!(missing.is_empty(), "not in any header: {missing:?}");
    }

    #[test]
    fn no_name_is_rendered_twice() {
        let mut names = rendered_names();
        names.sort_unstable();
        let before = names.len();
        names.dedup();
        assert_eq!(before, names.len(), "a name appears twice in the headers");
    }

    #[test]
    fn anonymous_unions_are_rendered_inline() {
        let text = iommufd_test_h();
        assert!(text.contains(
            "\tunion {\n\t\tstruct {\n\t\t\t__aligned_u64 start;\n\t\t\t__aligned_u64 length;\n\t\t} add_reserved;\n"
        ));
        assert!(!text.contains("__pad"), "padding fields are Rust-only");
        let text = iommufd_h();
        assert!(
            text.contains("\tunion {\n\t\t__u32 in_data_type;\n\t\t__u32 out_data_type;\n\t};\n")
        );
        assert!(text.contains("\t__u32 type;\n"));
        assert!(text.contains("\t__aligned_le64 ste[2];\n"));
    }

    #[test]
    fn ioctls_are_written_with_io() {
        let text = iommufd_h();
        assert!(text.contains("#define IOMMU_IOAS_MAP _IO(IOMMUFD_TYPE, IOMMUFD_CMD_IOAS_MAP)\n"));
        let text = iommufd_test_h();
        assert!(text.contains("#define IOMMU_TEST_CMD _IO(IOMMUFD_TYPE, IOMMUFD_CMD_BASE + 32)\n"));
    }

    #[test]
    fn literals() {
        assert_eq!(c_literal(59), "59");
        assert_eq!(c_literal(0xfeedbeef), "0xfeedbeef");
        assert_eq!(c_literal(1 << 40), "0x10000000000ULL");
    }
}
