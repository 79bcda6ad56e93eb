//! Cross-checks this crate against `iommufd-bindings`, which bindgen generated from
//! the Linux v7.1 headers: two independent descriptions of the same ABI must agree.
//!
//! - `same_struct!` compares, for one struct, the size, the alignment, and the offset
//!   and size of every field. It also builds both structs with a struct literal that
//!   names exactly the listed fields, so a field missing from the list on either side
//!   is a compile error.
//! - `same_consts!` compares the value of every constant both crates define.
//! - `lists_cover_the_bindings` reads the bindings' source at test time and fails if
//!   it defines a struct, constant or enum type that is missing here or in our crate.

use iommufd_bindings as b;

/// Our side, with the ioctl helpers' constants next to the iommufd ones as in the
/// bindings.
mod o {
    pub use softiommu_uapi::ioctl::*;
    pub use softiommu_uapi::iommufd::*;
}

macro_rules! same_struct {
    ($t:ident { $($f:ident),+ $(,)? }) => {
        same_struct!($t => { $($f => $f),+ });
    };
    ($t:ident => { $($ours:ident => $theirs:ident),+ $(,)? }) => {
        #[allow(non_snake_case)]
        mod $t {
            use core::mem::{align_of, offset_of, size_of, size_of_val};

            #[test]
            fn layout() {
                assert_eq!(size_of::<crate::o::$t>(), size_of::<crate::b::$t>(), "size");
                assert_eq!(align_of::<crate::o::$t>(), align_of::<crate::b::$t>(), "align");
                let ours = crate::o::$t { $($ours: Default::default()),+ };
                let theirs = crate::b::$t { $($theirs: Default::default()),+ };
                $(
                    assert_eq!(
                        offset_of!(crate::o::$t, $ours),
                        offset_of!(crate::b::$t, $theirs),
                        concat!("offset of ", stringify!($ours)),
                    );
                    assert_eq!(
                        size_of_val(&ours.$ours),
                        size_of_val(&theirs.$theirs),
                        concat!("size of ", stringify!($ours)),
                    );
                )+
            }
        }
    };
}

macro_rules! same_consts {
    ($($ours:ident = $theirs:ident),+ $(,)?) => {
        /// Every constant both crates define, with the bindgen name on the right.
        const CONST_PAIRS: &[(&str, &str)] = &[$((stringify!($ours), stringify!($theirs))),+];

        #[test]
        fn constants() {
            $(
                assert_eq!(
                    o::$ours as u64,
                    b::$theirs as u64,
                    concat!(stringify!($ours), " differs from the bindings"),
                );
            )+
        }
    };
}

same_struct!(iommu_destroy { size, id });
same_struct!(iommu_ioas_alloc {
    size,
    flags,
    out_ioas_id
});
same_struct!(iommu_iova_range { start, last });
same_struct!(iommu_ioas_iova_ranges {
    size,
    ioas_id,
    num_iovas,
    __reserved,
    allowed_iovas,
    out_iova_alignment
});
same_struct!(iommu_ioas_allow_iovas {
    size,
    ioas_id,
    num_iovas,
    __reserved,
    allowed_iovas
});
same_struct!(iommu_ioas_map {
    size,
    flags,
    ioas_id,
    __reserved,
    user_va,
    length,
    iova
});
same_struct!(iommu_ioas_map_file {
    size,
    flags,
    ioas_id,
    fd,
    start,
    length,
    iova
});
same_struct!(iommu_ioas_copy {
    size,
    flags,
    dst_ioas_id,
    src_ioas_id,
    length,
    dst_iova,
    src_iova
});
same_struct!(iommu_ioas_unmap {
    size,
    ioas_id,
    iova,
    length
});
same_struct!(iommu_option {
    size,
    option_id,
    op,
    __reserved,
    object_id,
    val64
});
same_struct!(iommu_vfio_ioas {
    size,
    ioas_id,
    op,
    __reserved
});
same_struct!(iommu_hwpt_vtd_s1 {
    flags,
    pgtbl_addr,
    addr_width,
    __reserved
});
same_struct!(iommu_hwpt_arm_smmuv3 { ste });
same_struct!(iommu_hwpt_amd_guest { dte });
same_struct!(iommu_hwpt_alloc {
    size,
    flags,
    dev_id,
    pt_id,
    out_hwpt_id,
    __reserved,
    data_type,
    data_len,
    data_uptr,
    fault_id,
    __reserved2
});
same_struct!(iommu_hw_info_vtd {
    flags,
    __reserved,
    cap_reg,
    ecap_reg
});
same_struct!(iommu_hw_info_arm_smmuv3 {
    flags,
    __reserved,
    idr,
    iidr,
    aidr
});
same_struct!(iommu_hw_info_tegra241_cmdqv {
    flags,
    version,
    log2vcmdqs,
    log2vsids,
    __reserved
});
same_struct!(iommu_hw_info_amd { efr, efr2 });
same_struct!(iommu_hw_info => {
    size => size,
    flags => flags,
    dev_id => dev_id,
    data_len => data_len,
    data_uptr => data_uptr,
    data_type => __bindgen_anon_1,
    out_max_pasid_log2 => out_max_pasid_log2,
    __reserved => __reserved,
    out_capabilities => out_capabilities,
});
same_struct!(iommu_hwpt_set_dirty_tracking {
    size,
    flags,
    hwpt_id,
    __reserved
});
same_struct!(iommu_hwpt_get_dirty_bitmap {
    size,
    hwpt_id,
    flags,
    __reserved,
    iova,
    length,
    page_size,
    data
});
same_struct!(iommu_hwpt_vtd_s1_invalidate {
    addr,
    npages,
    flags,
    __reserved
});
same_struct!(iommu_viommu_arm_smmuv3_invalidate { cmd });
same_struct!(iommu_hwpt_invalidate {
    size,
    hwpt_id,
    data_uptr,
    data_type,
    entry_len,
    entry_num,
    __reserved
});
same_struct!(iommu_hwpt_pgfault {
    flags,
    dev_id,
    pasid,
    grpid,
    perm,
    __reserved,
    addr,
    length,
    cookie
});
same_struct!(iommu_hwpt_page_response { cookie, code });
same_struct!(iommu_fault_alloc {
    size,
    flags,
    out_fault_id,
    out_fault_fd
});
same_struct!(iommu_viommu_tegra241_cmdqv {
    out_vintf_mmap_offset,
    out_vintf_mmap_length
});
same_struct!(iommu_viommu_alloc {
    size,
    flags,
    type_,
    dev_id,
    hwpt_id,
    out_viommu_id,
    data_len,
    __reserved,
    data_uptr
});
same_struct!(iommu_vdevice_alloc {
    size,
    viommu_id,
    dev_id,
    out_vdevice_id,
    virt_id
});
same_struct!(iommu_ioas_change_process { size, __reserved });
same_struct!(iommufd_vevent_header { flags, sequence });
same_struct!(iommu_vevent_arm_smmuv3 { evt });
same_struct!(iommu_vevent_tegra241_cmdqv { lvcmdq_err_map });
same_struct!(iommu_veventq_alloc {
    size,
    flags,
    viommu_id,
    type_,
    veventq_depth,
    out_veventq_id,
    out_veventq_fd,
    __reserved
});
same_struct!(iommu_hw_queue_alloc {
    size,
    flags,
    viommu_id,
    type_,
    index,
    out_hw_queue_id,
    nesting_parent_iova,
    length
});

same_consts! {
    _IOC_NRBITS = _IOC_NRBITS,
    _IOC_TYPEBITS = _IOC_TYPEBITS,
    _IOC_SIZEBITS = _IOC_SIZEBITS,
    _IOC_DIRBITS = _IOC_DIRBITS,
    _IOC_NRMASK = _IOC_NRMASK,
    _IOC_TYPEMASK = _IOC_TYPEMASK,
    _IOC_SIZEMASK = _IOC_SIZEMASK,
    _IOC_DIRMASK = _IOC_DIRMASK,
    _IOC_NRSHIFT = _IOC_NRSHIFT,
    _IOC_TYPESHIFT = _IOC_TYPESHIFT,
    _IOC_SIZESHIFT = _IOC_SIZESHIFT,
    _IOC_DIRSHIFT = _IOC_DIRSHIFT,
    _IOC_NONE = _IOC_NONE,
    _IOC_WRITE = _IOC_WRITE,
    _IOC_READ = _IOC_READ,
    IOC_IN = IOC_IN,
    IOC_OUT = IOC_OUT,
    IOC_INOUT = IOC_INOUT,
    IOCSIZE_MASK = IOCSIZE_MASK,
    IOCSIZE_SHIFT = IOCSIZE_SHIFT,
    IOMMUFD_TYPE = IOMMUFD_TYPE,
    IOMMUFD_CMD_BASE = IOMMUFD_CMD_BASE,
    IOMMUFD_CMD_DESTROY = IOMMUFD_CMD_DESTROY,
    IOMMUFD_CMD_IOAS_ALLOC = IOMMUFD_CMD_IOAS_ALLOC,
    IOMMUFD_CMD_IOAS_ALLOW_IOVAS = IOMMUFD_CMD_IOAS_ALLOW_IOVAS,
    IOMMUFD_CMD_IOAS_COPY = IOMMUFD_CMD_IOAS_COPY,
    IOMMUFD_CMD_IOAS_IOVA_RANGES = IOMMUFD_CMD_IOAS_IOVA_RANGES,
    IOMMUFD_CMD_IOAS_MAP = IOMMUFD_CMD_IOAS_MAP,
    IOMMUFD_CMD_IOAS_UNMAP = IOMMUFD_CMD_IOAS_UNMAP,
    IOMMUFD_CMD_OPTION = IOMMUFD_CMD_OPTION,
    IOMMUFD_CMD_VFIO_IOAS = IOMMUFD_CMD_VFIO_IOAS,
    IOMMUFD_CMD_HWPT_ALLOC = IOMMUFD_CMD_HWPT_ALLOC,
    IOMMUFD_CMD_GET_HW_INFO = IOMMUFD_CMD_GET_HW_INFO,
    IOMMUFD_CMD_HWPT_SET_DIRTY_TRACKING = IOMMUFD_CMD_HWPT_SET_DIRTY_TRACKING,
    IOMMUFD_CMD_HWPT_GET_DIRTY_BITMAP = IOMMUFD_CMD_HWPT_GET_DIRTY_BITMAP,
    IOMMUFD_CMD_HWPT_INVALIDATE = IOMMUFD_CMD_HWPT_INVALIDATE,
    IOMMUFD_CMD_FAULT_QUEUE_ALLOC = IOMMUFD_CMD_FAULT_QUEUE_ALLOC,
    IOMMUFD_CMD_IOAS_MAP_FILE = IOMMUFD_CMD_IOAS_MAP_FILE,
    IOMMUFD_CMD_VIOMMU_ALLOC = IOMMUFD_CMD_VIOMMU_ALLOC,
    IOMMUFD_CMD_VDEVICE_ALLOC = IOMMUFD_CMD_VDEVICE_ALLOC,
    IOMMUFD_CMD_IOAS_CHANGE_PROCESS = IOMMUFD_CMD_IOAS_CHANGE_PROCESS,
    IOMMUFD_CMD_VEVENTQ_ALLOC = IOMMUFD_CMD_VEVENTQ_ALLOC,
    IOMMUFD_CMD_HW_QUEUE_ALLOC = IOMMUFD_CMD_HW_QUEUE_ALLOC,
    IOMMU_IOAS_MAP_FIXED_IOVA = iommufd_ioas_map_flags_IOMMU_IOAS_MAP_FIXED_IOVA,
    IOMMU_IOAS_MAP_WRITEABLE = iommufd_ioas_map_flags_IOMMU_IOAS_MAP_WRITEABLE,
    IOMMU_IOAS_MAP_READABLE = iommufd_ioas_map_flags_IOMMU_IOAS_MAP_READABLE,
    IOMMU_OPTION_RLIMIT_MODE = iommufd_option_IOMMU_OPTION_RLIMIT_MODE,
    IOMMU_OPTION_HUGE_PAGES = iommufd_option_IOMMU_OPTION_HUGE_PAGES,
    IOMMU_OPTION_OP_SET = iommufd_option_ops_IOMMU_OPTION_OP_SET,
    IOMMU_OPTION_OP_GET = iommufd_option_ops_IOMMU_OPTION_OP_GET,
    IOMMU_VFIO_IOAS_GET = iommufd_vfio_ioas_op_IOMMU_VFIO_IOAS_GET,
    IOMMU_VFIO_IOAS_SET = iommufd_vfio_ioas_op_IOMMU_VFIO_IOAS_SET,
    IOMMU_VFIO_IOAS_CLEAR = iommufd_vfio_ioas_op_IOMMU_VFIO_IOAS_CLEAR,
    IOMMU_HWPT_ALLOC_NEST_PARENT = iommufd_hwpt_alloc_flags_IOMMU_HWPT_ALLOC_NEST_PARENT,
    IOMMU_HWPT_ALLOC_DIRTY_TRACKING = iommufd_hwpt_alloc_flags_IOMMU_HWPT_ALLOC_DIRTY_TRACKING,
    IOMMU_HWPT_FAULT_ID_VALID = iommufd_hwpt_alloc_flags_IOMMU_HWPT_FAULT_ID_VALID,
    IOMMU_HWPT_ALLOC_PASID = iommufd_hwpt_alloc_flags_IOMMU_HWPT_ALLOC_PASID,
    IOMMU_VTD_S1_SRE = iommu_hwpt_vtd_s1_flags_IOMMU_VTD_S1_SRE,
    IOMMU_VTD_S1_EAFE = iommu_hwpt_vtd_s1_flags_IOMMU_VTD_S1_EAFE,
    IOMMU_VTD_S1_WPE = iommu_hwpt_vtd_s1_flags_IOMMU_VTD_S1_WPE,
    IOMMU_HWPT_DATA_NONE = iommu_hwpt_data_type_IOMMU_HWPT_DATA_NONE,
    IOMMU_HWPT_DATA_VTD_S1 = iommu_hwpt_data_type_IOMMU_HWPT_DATA_VTD_S1,
    IOMMU_HWPT_DATA_ARM_SMMUV3 = iommu_hwpt_data_type_IOMMU_HWPT_DATA_ARM_SMMUV3,
    IOMMU_HWPT_DATA_AMD_GUEST = iommu_hwpt_data_type_IOMMU_HWPT_DATA_AMD_GUEST,
    IOMMU_HW_INFO_VTD_ERRATA_772415_SPR17 = iommu_hw_info_vtd_flags_IOMMU_HW_INFO_VTD_ERRATA_772415_SPR17,
    IOMMU_HW_INFO_TYPE_NONE = iommu_hw_info_type_IOMMU_HW_INFO_TYPE_NONE,
    IOMMU_HW_INFO_TYPE_DEFAULT = iommu_hw_info_type_IOMMU_HW_INFO_TYPE_DEFAULT,
    IOMMU_HW_INFO_TYPE_INTEL_VTD = iommu_hw_info_type_IOMMU_HW_INFO_TYPE_INTEL_VTD,
    IOMMU_HW_INFO_TYPE_ARM_SMMUV3 = iommu_hw_info_type_IOMMU_HW_INFO_TYPE_ARM_SMMUV3,
    IOMMU_HW_INFO_TYPE_TEGRA241_CMDQV = iommu_hw_info_type_IOMMU_HW_INFO_TYPE_TEGRA241_CMDQV,
    IOMMU_HW_INFO_TYPE_AMD = iommu_hw_info_type_IOMMU_HW_INFO_TYPE_AMD,
    IOMMU_HW_CAP_DIRTY_TRACKING = iommufd_hw_capabilities_IOMMU_HW_CAP_DIRTY_TRACKING,
    IOMMU_HW_CAP_PCI_PASID_EXEC = iommufd_hw_capabilities_IOMMU_HW_CAP_PCI_PASID_EXEC,
    IOMMU_HW_CAP_PCI_PASID_PRIV = iommufd_hw_capabilities_IOMMU_HW_CAP_PCI_PASID_PRIV,
    IOMMU_HW_CAP_PCI_ATS_NOT_SUPPORTED = iommufd_hw_capabilities_IOMMU_HW_CAP_PCI_ATS_NOT_SUPPORTED,
    IOMMU_HW_INFO_FLAG_INPUT_TYPE = iommufd_hw_info_flags_IOMMU_HW_INFO_FLAG_INPUT_TYPE,
    IOMMU_HWPT_DIRTY_TRACKING_ENABLE = iommufd_hwpt_set_dirty_tracking_flags_IOMMU_HWPT_DIRTY_TRACKING_ENABLE,
    IOMMU_HWPT_GET_DIRTY_BITMAP_NO_CLEAR = iommufd_hwpt_get_dirty_bitmap_flags_IOMMU_HWPT_GET_DIRTY_BITMAP_NO_CLEAR,
    IOMMU_HWPT_INVALIDATE_DATA_VTD_S1 = iommu_hwpt_invalidate_data_type_IOMMU_HWPT_INVALIDATE_DATA_VTD_S1,
    IOMMU_VIOMMU_INVALIDATE_DATA_ARM_SMMUV3 = iommu_hwpt_invalidate_data_type_IOMMU_VIOMMU_INVALIDATE_DATA_ARM_SMMUV3,
    IOMMU_VTD_INV_FLAGS_LEAF = iommu_hwpt_vtd_s1_invalidate_flags_IOMMU_VTD_INV_FLAGS_LEAF,
    IOMMU_PGFAULT_FLAGS_PASID_VALID = iommu_hwpt_pgfault_flags_IOMMU_PGFAULT_FLAGS_PASID_VALID,
    IOMMU_PGFAULT_FLAGS_LAST_PAGE = iommu_hwpt_pgfault_flags_IOMMU_PGFAULT_FLAGS_LAST_PAGE,
    IOMMU_PGFAULT_PERM_READ = iommu_hwpt_pgfault_perm_IOMMU_PGFAULT_PERM_READ,
    IOMMU_PGFAULT_PERM_WRITE = iommu_hwpt_pgfault_perm_IOMMU_PGFAULT_PERM_WRITE,
    IOMMU_PGFAULT_PERM_EXEC = iommu_hwpt_pgfault_perm_IOMMU_PGFAULT_PERM_EXEC,
    IOMMU_PGFAULT_PERM_PRIV = iommu_hwpt_pgfault_perm_IOMMU_PGFAULT_PERM_PRIV,
    IOMMUFD_PAGE_RESP_SUCCESS = iommufd_page_response_code_IOMMUFD_PAGE_RESP_SUCCESS,
    IOMMUFD_PAGE_RESP_INVALID = iommufd_page_response_code_IOMMUFD_PAGE_RESP_INVALID,
    IOMMU_VIOMMU_TYPE_DEFAULT = iommu_viommu_type_IOMMU_VIOMMU_TYPE_DEFAULT,
    IOMMU_VIOMMU_TYPE_ARM_SMMUV3 = iommu_viommu_type_IOMMU_VIOMMU_TYPE_ARM_SMMUV3,
    IOMMU_VIOMMU_TYPE_TEGRA241_CMDQV = iommu_viommu_type_IOMMU_VIOMMU_TYPE_TEGRA241_CMDQV,
    IOMMU_VEVENTQ_FLAG_LOST_EVENTS = iommu_veventq_flag_IOMMU_VEVENTQ_FLAG_LOST_EVENTS,
    IOMMU_VEVENTQ_TYPE_DEFAULT = iommu_veventq_type_IOMMU_VEVENTQ_TYPE_DEFAULT,
    IOMMU_VEVENTQ_TYPE_ARM_SMMUV3 = iommu_veventq_type_IOMMU_VEVENTQ_TYPE_ARM_SMMUV3,
    IOMMU_VEVENTQ_TYPE_TEGRA241_CMDQV = iommu_veventq_type_IOMMU_VEVENTQ_TYPE_TEGRA241_CMDQV,
    IOMMU_HW_QUEUE_TYPE_DEFAULT = iommu_hw_queue_type_IOMMU_HW_QUEUE_TYPE_DEFAULT,
    IOMMU_HW_QUEUE_TYPE_TEGRA241_CMDQV = iommu_hw_queue_type_IOMMU_HW_QUEUE_TYPE_TEGRA241_CMDQV,
}

/// Items of the bindings that come from `<linux/posix_types.h>` and `<asm/bitsperlong.h>`
/// (pulled in by `<linux/types.h>`), not from the iommufd uAPI.
const NOT_IOMMUFD: &[&str] = &[
    "__kernel_fd_set",
    "__kernel_fsid_t",
    "__BITS_PER_LONG",
    "__BITS_PER_LONG_LONG",
    "__FD_SETSIZE",
];

/// The C name bindgen mangled: `enum_name_ENUM_VALUE` → `ENUM_VALUE`; names without
/// lower-case letters are kept as they are.
fn c_name(bindgen_name: &str) -> &str {
    if !bindgen_name.bytes().any(|c| c.is_ascii_lowercase()) {
        return bindgen_name;
    }
    let mut start = 0;
    for token in bindgen_name.split('_') {
        let has_upper = token.bytes().any(|c| c.is_ascii_uppercase());
        let has_lower = token.bytes().any(|c| c.is_ascii_lowercase());
        if has_upper && !has_lower {
            return &bindgen_name[start..];
        }
        start += token.len() + 1;
    }
    bindgen_name
}

/// Names following `keyword` at the start of a line (`pub struct`, `pub const`, ...).
fn declared<'a>(source: &'a str, keyword: &str) -> Vec<&'a str> {
    source
        .lines()
        .filter_map(|line| line.trim_start().strip_prefix(keyword))
        .filter_map(|rest| {
            let end = rest
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(rest.len());
            (end > 0).then(|| &rest[..end])
        })
        .collect()
}

/// The version of `iommufd-bindings` that Cargo.lock resolved.
fn locked_bindings_version() -> String {
    let lock_path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../Cargo.lock");
    let lock = std::fs::read_to_string(&lock_path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", lock_path.display()));
    let mut lines = lock.lines();
    while let Some(line) = lines.next() {
        if line.trim() == r#"name = "iommufd-bindings""# {
            let version = lines.next().expect("a version line follows the name");
            return version
                .trim()
                .strip_prefix("version = \"")
                .and_then(|v| v.strip_suffix('"'))
                .expect("version = \"x.y.z\"")
                .to_string();
        }
    }
    panic!("iommufd-bindings is not in {}", lock_path.display());
}

/// Finds `iommufd.rs` of the locked `iommufd-bindings` in Cargo's registry sources.
fn bindings_source() -> String {
    let version = locked_bindings_version();
    let cargo_home = std::env::var_os("CARGO_HOME")
        .map(std::path::PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| std::path::Path::new(&h).join(".cargo")))
        .expect("neither CARGO_HOME nor HOME is set");
    let registry = cargo_home.join("registry/src");
    let mut tried = Vec::new();
    if let Ok(indexes) = std::fs::read_dir(&registry) {
        for index in indexes.flatten() {
            let file = index
                .path()
                .join(format!("iommufd-bindings-{version}/src/iommufd.rs"));
            if let Ok(text) = std::fs::read_to_string(&file) {
                return text;
            }
            tried.push(file);
        }
    }
    panic!(
        "cannot find the source of iommufd-bindings {version}: looked in {} ({tried:?}). \
         Run `cargo fetch`, or set CARGO_HOME to the Cargo home that holds the registry.",
        registry.display()
    );
}

/// Our crate's source, all modules concatenated.
fn our_source() -> String {
    let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    ["ioctl.rs", "iommufd.rs", "test.rs"]
        .iter()
        .map(|f| std::fs::read_to_string(src.join(f)).expect("our source is readable"))
        .collect()
}

#[test]
fn lists_cover_the_bindings() {
    let theirs = bindings_source();
    let ours = our_source();
    let this_file = include_str!("bindings.rs");
    let mut missing = Vec::new();

    let structs = declared(&theirs, "pub struct ");
    assert!(
        structs.len() > 30,
        "the bindings source looks wrong: {structs:?}"
    );
    for name in structs.into_iter().filter(|n| !NOT_IOMMUFD.contains(n)) {
        if !ours.contains(&format!("pub struct {name} ")) {
            missing.push(format!("struct {name} in softiommu-uapi"));
        }
        let compared = this_file.contains(&format!("same_struct!({name} {{"))
            || this_file.contains(&format!("same_struct!({name} => {{"));
        if !compared {
            missing.push(format!("same_struct!({name}) in tests/bindings.rs"));
        }
    }

    let consts = declared(&theirs, "pub const ");
    assert!(
        consts.len() > 90,
        "the bindings source looks wrong: {consts:?}"
    );
    for raw in consts.into_iter().filter(|n| !NOT_IOMMUFD.contains(n)) {
        let name = c_name(raw);
        if !ours.contains(&format!("pub const {name}: ")) {
            missing.push(format!("const {name} in softiommu-uapi"));
        }
        if !CONST_PAIRS.contains(&(name, raw)) {
            missing.push(format!("{name} = {raw} in same_consts!"));
        }
    }

    for alias in declared(&theirs, "pub type ") {
        if alias.starts_with("iommu") && !ours.contains(&format!("pub type {alias} = ")) {
            missing.push(format!("type {alias} in softiommu-uapi"));
        }
    }

    assert!(missing.is_empty(), "missing: {missing:#?}");
}

#[test]
fn c_name_strips_bindgen_enum_prefixes() {
    assert_eq!(
        c_name("iommu_hw_info_vtd_flags_IOMMU_HW_INFO_VTD_ERRATA_772415_SPR17"),
        "IOMMU_HW_INFO_VTD_ERRATA_772415_SPR17"
    );
    assert_eq!(
        c_name("iommufd_page_response_code_IOMMUFD_PAGE_RESP_SUCCESS"),
        "IOMMUFD_PAGE_RESP_SUCCESS"
    );
    assert_eq!(c_name("_IOC_NRBITS"), "_IOC_NRBITS");
    assert_eq!(c_name("IOMMUFD_CMD_BASE"), "IOMMUFD_CMD_BASE");
}
