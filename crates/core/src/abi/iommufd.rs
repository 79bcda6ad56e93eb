//! The `/dev/iommu` ioctls: the kernel's `main.c` dispatch table and the argument
//! handling of each command, in front of the typed API.

use super::{Env, File, Trace, Ucmd};
use crate::iommufd::{AccessHandle, Iommufd, MapFlags};
use crate::range::IovaRange;
use softiommu_uapi::ioctl::{_IOC_NR, _IOC_TYPE};
use softiommu_uapi::iommufd::*;
use softiommu_uapi::test::*;
use softiommu_uapi::Errno;
use std::fmt::Debug;
use std::mem::{offset_of, size_of};
use std::sync::Arc;
use zerocopy::{FromBytes, Immutable, IntoBytes};

/// One iommufd ioctl: its number, name, and the sizes the extensible-struct rules
/// use.
#[derive(Debug, Clone, Copy)]
pub struct IoctlOp {
    /// The ioctl number.
    pub cmd: u32,
    /// The kernel's name for it.
    pub name: &'static str,
    /// The smallest argument size accepted: the end of the struct's last field
    /// when the command was introduced.
    pub min_size: usize,
    /// Our size of the argument struct.
    pub size: usize,
}

macro_rules! end_of {
    ($t:ty, $f:ident) => {{
        const fn field_size<T, F>(_: fn(&T) -> &F) -> usize {
            size_of::<F>()
        }
        offset_of!($t, $f) + field_size(|s: &$t| &s.$f)
    }};
}

macro_rules! op {
    ($cmd:ident, $t:ty, $last:ident) => {
        IoctlOp {
            cmd: $cmd,
            name: stringify!($cmd),
            min_size: end_of!($t, $last),
            size: size_of::<$t>(),
        }
    };
}

/// Every ioctl softiommu answers on an iommufd.
pub static IOCTLS: &[IoctlOp] = &[
    op!(IOMMU_DESTROY, iommu_destroy, id),
    op!(IOMMU_FAULT_QUEUE_ALLOC, iommu_fault_alloc, out_fault_fd),
    op!(IOMMU_GET_HW_INFO, iommu_hw_info, __reserved),
    op!(IOMMU_HWPT_ALLOC, iommu_hwpt_alloc, __reserved),
    op!(
        IOMMU_HWPT_GET_DIRTY_BITMAP,
        iommu_hwpt_get_dirty_bitmap,
        data
    ),
    op!(IOMMU_HWPT_INVALIDATE, iommu_hwpt_invalidate, __reserved),
    op!(
        IOMMU_HWPT_SET_DIRTY_TRACKING,
        iommu_hwpt_set_dirty_tracking,
        __reserved
    ),
    op!(IOMMU_IOAS_ALLOC, iommu_ioas_alloc, out_ioas_id),
    op!(
        IOMMU_IOAS_ALLOW_IOVAS,
        iommu_ioas_allow_iovas,
        allowed_iovas
    ),
    op!(
        IOMMU_IOAS_CHANGE_PROCESS,
        iommu_ioas_change_process,
        __reserved
    ),
    op!(IOMMU_IOAS_COPY, iommu_ioas_copy, src_iova),
    op!(
        IOMMU_IOAS_IOVA_RANGES,
        iommu_ioas_iova_ranges,
        out_iova_alignment
    ),
    op!(IOMMU_IOAS_MAP, iommu_ioas_map, iova),
    op!(IOMMU_IOAS_MAP_FILE, iommu_ioas_map_file, iova),
    op!(IOMMU_IOAS_UNMAP, iommu_ioas_unmap, length),
    op!(IOMMU_OPTION, iommu_option, val64),
    op!(IOMMU_TEST_CMD, iommu_test_cmd, last),
    // Both grew driver data after their first release; the minimum is the
    // original struct.
    op!(IOMMU_VIOMMU_ALLOC, iommu_viommu_alloc, out_viommu_id),
    op!(IOMMU_VDEVICE_ALLOC, iommu_vdevice_alloc, virt_id),
    op!(IOMMU_VFIO_IOAS, iommu_vfio_ioas, __reserved),
];

/// The name of an iommufd ioctl number.
pub fn command_name(cmd: u32) -> Option<&'static str> {
    IOCTLS
        .iter()
        .find(|o| o.cmd == cmd)
        .map(|o| o.name)
        .or_else(|| super::vfio::command_name(cmd))
}

fn test_op_name(op: u32) -> &'static str {
    match op {
        IOMMU_TEST_OP_ADD_RESERVED => "ADD_RESERVED",
        IOMMU_TEST_OP_MOCK_DOMAIN => "MOCK_DOMAIN",
        IOMMU_TEST_OP_MD_CHECK_MAP => "MD_CHECK_MAP",
        IOMMU_TEST_OP_MD_CHECK_REFS => "MD_CHECK_REFS",
        IOMMU_TEST_OP_CREATE_ACCESS => "CREATE_ACCESS",
        IOMMU_TEST_OP_DESTROY_ACCESS_PAGES => "DESTROY_ACCESS_PAGES",
        IOMMU_TEST_OP_ACCESS_PAGES => "ACCESS_PAGES",
        IOMMU_TEST_OP_ACCESS_RW => "ACCESS_RW",
        IOMMU_TEST_OP_SET_TEMP_MEMORY_LIMIT => "SET_TEMP_MEMORY_LIMIT",
        IOMMU_TEST_OP_MOCK_DOMAIN_REPLACE => "MOCK_DOMAIN_REPLACE",
        IOMMU_TEST_OP_ACCESS_REPLACE_IOAS => "ACCESS_REPLACE_IOAS",
        IOMMU_TEST_OP_MOCK_DOMAIN_FLAGS => "MOCK_DOMAIN_FLAGS",
        IOMMU_TEST_OP_DIRTY => "DIRTY",
        IOMMU_TEST_OP_MD_CHECK_IOTLB => "MD_CHECK_IOTLB",
        IOMMU_TEST_OP_TRIGGER_IOPF => "TRIGGER_IOPF",
        IOMMU_TEST_OP_PASID_ATTACH => "PASID_ATTACH",
        IOMMU_TEST_OP_PASID_REPLACE => "PASID_REPLACE",
        IOMMU_TEST_OP_PASID_DETACH => "PASID_DETACH",
        IOMMU_TEST_OP_PASID_CHECK_HWPT => "PASID_CHECK_HWPT",
        IOMMU_TEST_OP_DEV_CHECK_CACHE => "DEV_CHECK_CACHE",
        _ => "?",
    }
}

/// An argument struct as a trace line shows it: field names, numbers in hex
/// with `0x` (single decimal digits as they are).
trait Describe {
    fn describe(&self) -> String;
}

/// `{:x?}` output with `0x` in front of every number but single digits.
pub(super) fn hex<T: Debug>(v: &T) -> String {
    let raw = format!("{v:x?}");
    let mut out = String::with_capacity(raw.len() + 32);
    let bytes = raw.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        if c.is_ascii_alphanumeric() || c == b'_' {
            let start = i;
            while i < bytes.len() && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'_') {
                i += 1;
            }
            let word = &raw[start..i];
            let is_name = bytes.get(i) == Some(&b':')
                || bytes.get(i) == Some(&b' ') && bytes.get(i + 1) == Some(&b'{');
            let is_number = word.bytes().all(|b| b.is_ascii_hexdigit());
            if !is_name && is_number && (word.len() > 1 || !word.as_bytes()[0].is_ascii_digit()) {
                out.push_str("0x");
            }
            out.push_str(word);
        } else {
            out.push(c as char);
            i += 1;
        }
    }
    out
}

macro_rules! describe_debug {
    ($($t:ty),*) => {$(
        impl Describe for $t {
            fn describe(&self) -> String {
                hex(self)
            }
        }
    )*};
}

describe_debug!(
    iommu_vdevice_alloc,
    iommu_viommu_alloc,
    iommu_destroy,
    iommu_fault_alloc,
    iommu_hw_info,
    iommu_hwpt_alloc,
    iommu_hwpt_get_dirty_bitmap,
    iommu_hwpt_invalidate,
    iommu_hwpt_set_dirty_tracking,
    iommu_ioas_alloc,
    iommu_ioas_allow_iovas,
    iommu_ioas_change_process,
    iommu_ioas_copy,
    iommu_ioas_iova_ranges,
    iommu_ioas_map,
    iommu_ioas_map_file,
    iommu_ioas_unmap,
    iommu_option,
    iommu_vfio_ioas
);

impl Describe for iommu_test_cmd {
    /// The union shown as the member the operation reads.
    fn describe(&self) -> String {
        let member = match self.op {
            IOMMU_TEST_OP_ADD_RESERVED => hex(&self.payload_as::<iommu_test_cmd_add_reserved>()),
            IOMMU_TEST_OP_MOCK_DOMAIN => hex(&self.payload_as::<iommu_test_cmd_mock_domain>()),
            IOMMU_TEST_OP_MOCK_DOMAIN_FLAGS => {
                hex(&self.payload_as::<iommu_test_cmd_mock_domain_flags>())
            }
            IOMMU_TEST_OP_MOCK_DOMAIN_REPLACE => {
                hex(&self.payload_as::<iommu_test_cmd_mock_domain_replace>())
            }
            IOMMU_TEST_OP_MD_CHECK_MAP => hex(&self.payload_as::<iommu_test_cmd_check_map>()),
            IOMMU_TEST_OP_MD_CHECK_REFS => hex(&self.payload_as::<iommu_test_cmd_check_refs>()),
            IOMMU_TEST_OP_CREATE_ACCESS => hex(&self.payload_as::<iommu_test_cmd_create_access>()),
            IOMMU_TEST_OP_DESTROY_ACCESS_PAGES => {
                hex(&self.payload_as::<iommu_test_cmd_destroy_access_pages>())
            }
            IOMMU_TEST_OP_ACCESS_PAGES => hex(&self.payload_as::<iommu_test_cmd_access_pages>()),
            IOMMU_TEST_OP_ACCESS_RW => hex(&self.payload_as::<iommu_test_cmd_access_rw>()),
            IOMMU_TEST_OP_SET_TEMP_MEMORY_LIMIT => {
                hex(&self.payload_as::<iommu_test_cmd_memory_limit>())
            }
            IOMMU_TEST_OP_ACCESS_REPLACE_IOAS => {
                hex(&self.payload_as::<iommu_test_cmd_access_replace_ioas>())
            }
            IOMMU_TEST_OP_DIRTY => hex(&self.payload_as::<iommu_test_cmd_dirty>()),
            IOMMU_TEST_OP_MD_CHECK_IOTLB => hex(&self.payload_as::<iommu_test_cmd_check_iotlb>()),
            IOMMU_TEST_OP_TRIGGER_IOPF => hex(&self.payload_as::<iommu_test_cmd_trigger_iopf>()),
            IOMMU_TEST_OP_PASID_ATTACH => hex(&self.payload_as::<iommu_test_cmd_pasid_attach>()),
            IOMMU_TEST_OP_PASID_REPLACE => hex(&self.payload_as::<iommu_test_cmd_pasid_replace>()),
            IOMMU_TEST_OP_PASID_DETACH => hex(&self.payload_as::<iommu_test_cmd_pasid_detach>()),
            IOMMU_TEST_OP_PASID_CHECK_HWPT => hex(&self.payload_as::<iommu_test_cmd_pasid_check>()),
            IOMMU_TEST_OP_DEV_CHECK_CACHE => {
                hex(&self.payload_as::<iommu_test_cmd_check_dev_cache>())
            }
            _ => hex(&self.payload),
        };
        format!(
            "{{ size: {}, op: {}, id: {}, {member} }}",
            self.size,
            test_op_name(self.op),
            self.id
        )
    }
}

/// What a handler asks for once its work is done.
enum Reply {
    /// Nothing to write back.
    None,
    /// Write the argument back.
    Respond,
    /// Write the argument back; if that fails, run the undo.
    RespondOrUndo(Box<dyn FnOnce()>),
}

/// Reads the argument as `T`, runs `f` on it, and writes back as `f` asks.
fn run<T>(
    u: &Ucmd,
    min_size: usize,
    trace: &mut Option<&mut Trace>,
    f: impl FnOnce(&mut T) -> Result<Reply, Errno>,
) -> Result<i32, Errno>
where
    T: FromBytes + IntoBytes + Immutable + Default + Describe,
{
    let mut cmd: T = u.read(min_size)?;
    if let Some(t) = trace.as_deref_mut() {
        t.input = cmd.describe();
    }
    let reply = f(&mut cmd)?;
    let undo = match reply {
        Reply::None => return Ok(0),
        Reply::Respond => None,
        Reply::RespondOrUndo(undo) => Some(undo),
    };
    if let Err(e) = u.respond(&cmd) {
        if let Some(undo) = undo {
            undo();
        }
        return Err(e);
    }
    if let Some(t) = trace.as_deref_mut() {
        t.output = cmd.describe();
    }
    Ok(0)
}

fn map_flags(flags: u32) -> Result<(MapFlags, bool), Errno> {
    const KNOWN: u32 =
        IOMMU_IOAS_MAP_FIXED_IOVA | IOMMU_IOAS_MAP_WRITEABLE | IOMMU_IOAS_MAP_READABLE;
    if flags & !KNOWN != 0 {
        return Err(Errno::EOPNOTSUPP);
    }
    Ok((
        MapFlags::from_bits(flags),
        flags & IOMMU_IOAS_MAP_FIXED_IOVA != 0,
    ))
}

fn overflow(values: &[u64]) -> Result<(), Errno> {
    if values.contains(&u64::MAX) {
        return Err(Errno::EOVERFLOW);
    }
    Ok(())
}

pub(super) fn ioctl(
    env: &dyn Env,
    ctx: &Iommufd,
    cmd: u32,
    arg: u64,
    mut trace: Option<&mut Trace>,
) -> Result<i32, Errno> {
    let nr = _IOC_NR(cmd);
    if let Some(t) = trace.as_deref_mut() {
        t.name = command_name(cmd).map_or_else(|| format!("{cmd:#x}"), str::to_string);
    }
    // Numbers outside the iommufd range are VFIO's (the kernel's main.c looks
    // at the number alone); commands of the range read their size first, as the
    // kernel does.
    if !(IOMMUFD_CMD_BASE..=IOMMUFD_CMD_BASE + 32).contains(&nr) {
        return super::vfio::ioctl(ctx, cmd, arg, trace);
    }
    if _IOC_TYPE(cmd) != IOMMUFD_TYPE {
        return Err(Errno::ENOTTY);
    }
    let space = ctx.process().space.clone();
    let mut size = [0u8; 4];
    space.read(arg, &mut size).map_err(|_| Errno::EFAULT)?;
    let op = IOCTLS.iter().find(|o| o.cmd == cmd).ok_or(Errno::ENOTTY)?;
    let u = Ucmd {
        mem: &*space,
        arg,
        user_size: u32::from_ne_bytes(size),
    };
    let t = &mut trace;
    let min = op.min_size;
    match cmd {
        IOMMU_DESTROY => run(&u, min, t, |c: &mut iommu_destroy| {
            ctx.destroy(c.id)?;
            Ok(Reply::None)
        }),
        IOMMU_IOAS_ALLOC => run(&u, min, t, |c: &mut iommu_ioas_alloc| {
            if c.flags != 0 {
                return Err(Errno::EOPNOTSUPP);
            }
            let id = ctx.ioas_alloc()?;
            c.out_ioas_id = id;
            let ctx = ctx.clone();
            Ok(Reply::RespondOrUndo(Box::new(move || {
                let _ = ctx.destroy(id);
            })))
        }),
        IOMMU_GET_HW_INFO => run(&u, min, t, |c: &mut iommu_hw_info| {
            if c.flags & !IOMMU_HW_INFO_FLAG_INPUT_TYPE != 0 || c.__reserved != [0; 3] {
                return Err(Errno::EOPNOTSUPP);
            }
            let in_type = if c.flags & IOMMU_HW_INFO_FLAG_INPUT_TYPE != 0 {
                c.in_data_type()
            } else {
                IOMMU_HW_INFO_TYPE_DEFAULT
            };
            let info = ctx.get_hw_info(c.dev_id, in_type)?;
            // The caller's buffer gets what fits, and zeroes past what we have.
            let want = c.data_len as usize;
            let n = want.min(info.data.len());
            if n > 0 {
                u.mem
                    .write(c.data_uptr, &info.data[..n])
                    .map_err(|_| Errno::EFAULT)?;
            }
            let zeroes = [0u8; 256];
            let mut at = n;
            while at < want {
                let k = (want - at).min(zeroes.len());
                let addr = c.data_uptr.wrapping_add(at as u64);
                u.mem.write(addr, &zeroes[..k]).map_err(|_| Errno::EFAULT)?;
                at += k;
            }
            c.data_len = info.data.len() as u32;
            c.set_out_data_type(info.data_type);
            c.out_capabilities = info.capabilities;
            c.out_max_pasid_log2 = info.max_pasid_log2;
            Ok(Reply::Respond)
        }),
        IOMMU_FAULT_QUEUE_ALLOC => run(&u, min, t, |c: &mut iommu_fault_alloc| {
            if c.flags != 0 {
                return Err(Errno::EOPNOTSUPP);
            }
            let handle = ctx.fault_alloc()?;
            let id = handle.fault().id;
            let fd = match env.install(File::Fault(handle)) {
                Ok(fd) => fd,
                Err(e) => {
                    // The handle went with the failed install; the queue follows.
                    let _ = ctx.destroy(id);
                    return Err(e);
                }
            };
            c.out_fault_id = id;
            c.out_fault_fd = fd as u32;
            Ok(Reply::Respond)
        }),
        IOMMU_HWPT_ALLOC => run(&u, min, t, |c: &mut iommu_hwpt_alloc| {
            if c.__reserved != 0 {
                return Err(Errno::EOPNOTSUPP);
            }
            let id = ctx.hwpt_alloc_fault(
                c.dev_id,
                c.pt_id,
                c.flags,
                c.data_type,
                c.data_len,
                c.data_uptr,
                c.fault_id,
            )?;
            c.out_hwpt_id = id;
            let ctx = ctx.clone();
            Ok(Reply::RespondOrUndo(Box::new(move || {
                let _ = ctx.destroy(id);
            })))
        }),
        IOMMU_VIOMMU_ALLOC => run(&u, min, t, |c: &mut iommu_viommu_alloc| {
            let id = ctx.viommu_alloc(
                c.dev_id,
                c.hwpt_id,
                c.type_,
                c.flags,
                c.data_len,
                c.data_uptr,
            )?;
            c.out_viommu_id = id;
            let ctx = ctx.clone();
            Ok(Reply::RespondOrUndo(Box::new(move || {
                let _ = ctx.destroy(id);
            })))
        }),
        IOMMU_VDEVICE_ALLOC => run(&u, min, t, |c: &mut iommu_vdevice_alloc| {
            let id = ctx.vdevice_alloc(c.viommu_id, c.dev_id, c.virt_id)?;
            c.out_vdevice_id = id;
            let ctx = ctx.clone();
            Ok(Reply::RespondOrUndo(Box::new(move || {
                let _ = ctx.destroy(id);
            })))
        }),
        IOMMU_HWPT_SET_DIRTY_TRACKING => {
            run(&u, min, t, |c: &mut iommu_hwpt_set_dirty_tracking| {
                if c.flags & !IOMMU_HWPT_DIRTY_TRACKING_ENABLE != 0 || c.__reserved != 0 {
                    return Err(Errno::EOPNOTSUPP);
                }
                let enable = c.flags & IOMMU_HWPT_DIRTY_TRACKING_ENABLE != 0;
                ctx.hwpt_set_dirty_tracking(c.hwpt_id, enable)?;
                Ok(Reply::None)
            })
        }
        IOMMU_HWPT_GET_DIRTY_BITMAP => run(&u, min, t, |c: &mut iommu_hwpt_get_dirty_bitmap| {
            if c.flags & !IOMMU_HWPT_GET_DIRTY_BITMAP_NO_CLEAR != 0 || c.__reserved != 0 {
                return Err(Errno::EOPNOTSUPP);
            }
            let no_clear = c.flags & IOMMU_HWPT_GET_DIRTY_BITMAP_NO_CLEAR != 0;
            ctx.hwpt_get_dirty_bitmap(c.hwpt_id, c.iova, c.length, c.page_size, no_clear, c.data)?;
            Ok(Reply::None)
        }),
        IOMMU_HWPT_INVALIDATE => hwpt_invalidate(&u, ctx, min, t),
        IOMMU_IOAS_IOVA_RANGES => iova_ranges(&u, ctx, min, t),
        IOMMU_IOAS_ALLOW_IOVAS => run(&u, min, t, |c: &mut iommu_ioas_allow_iovas| {
            if c.__reserved != 0 {
                return Err(Errno::EOPNOTSUPP);
            }
            ctx.get_ioas(c.ioas_id)?;
            let mut ranges = Vec::new();
            for i in 0..u64::from(c.num_iovas) {
                let mut r = iommu_iova_range::default();
                let at = c
                    .allowed_iovas
                    .wrapping_add(i * size_of::<iommu_iova_range>() as u64);
                if u.mem.read(at, r.as_mut_bytes()).is_err() {
                    // The kernel checks each range as it copies it in.
                    crate::iommufd::ioas::allowed_ranges(&ranges)?;
                    return Err(Errno::EFAULT);
                }
                ranges.push(IovaRange {
                    start: r.start,
                    last: r.last,
                });
            }
            ctx.ioas_allow_iovas(c.ioas_id, &ranges)?;
            Ok(Reply::None)
        }),
        IOMMU_IOAS_MAP => run(&u, min, t, |c: &mut iommu_ioas_map| {
            let (flags, fixed) = map_flags(c.flags)?;
            if c.__reserved != 0 {
                return Err(Errno::EOPNOTSUPP);
            }
            overflow(&[c.iova, c.length])?;
            c.iova = ctx.ioas_map(
                c.ioas_id,
                c.user_va,
                c.length,
                fixed.then_some(c.iova),
                flags,
            )?;
            Ok(Reply::Respond)
        }),
        IOMMU_IOAS_MAP_FILE => run(&u, min, t, |c: &mut iommu_ioas_map_file| {
            let (flags, fixed) = map_flags(c.flags)?;
            overflow(&[c.iova, c.length])?;
            if !flags.readable && !flags.writeable {
                return Err(Errno::EINVAL);
            }
            ctx.get_ioas(c.ioas_id)?;
            let file = env.map_file(c.fd)?;
            c.iova = ctx.ioas_map_file(
                c.ioas_id,
                file,
                c.start,
                c.length,
                fixed.then_some(c.iova),
                flags,
            )?;
            Ok(Reply::Respond)
        }),
        IOMMU_IOAS_COPY => run(&u, min, t, |c: &mut iommu_ioas_copy| {
            let (flags, fixed) = map_flags(c.flags)?;
            overflow(&[c.length, c.src_iova, c.dst_iova])?;
            let dst = fixed.then_some(c.dst_iova);
            c.dst_iova = ctx.ioas_copy(
                c.dst_ioas_id,
                c.src_ioas_id,
                c.src_iova,
                c.length,
                dst,
                flags,
            )?;
            Ok(Reply::Respond)
        }),
        IOMMU_IOAS_UNMAP => run(&u, min, t, |c: &mut iommu_ioas_unmap| {
            c.length = ctx.ioas_unmap(c.ioas_id, c.iova, c.length)?;
            Ok(Reply::Respond)
        }),
        IOMMU_OPTION => run(&u, min, t, |c: &mut iommu_option| {
            if c.__reserved != 0 {
                return Err(Errno::EOPNOTSUPP);
            }
            c.val64 = ctx.option(c.option_id, c.op, c.object_id, c.val64)?;
            Ok(Reply::Respond)
        }),
        IOMMU_IOAS_CHANGE_PROCESS => run(&u, min, t, |c: &mut iommu_ioas_change_process| {
            if c.__reserved != 0 {
                return Err(Errno::EOPNOTSUPP);
            }
            ctx.ioas_change_process()?;
            Ok(Reply::None)
        }),
        IOMMU_VFIO_IOAS => run(&u, min, t, |c: &mut iommu_vfio_ioas| {
            if c.__reserved != 0 {
                return Err(Errno::EOPNOTSUPP);
            }
            match c.op {
                IOMMU_VFIO_IOAS_GET => {
                    c.ioas_id = ctx.vfio_ioas_get()?;
                    Ok(Reply::Respond)
                }
                IOMMU_VFIO_IOAS_SET => {
                    ctx.vfio_ioas_set(c.ioas_id)?;
                    Ok(Reply::None)
                }
                IOMMU_VFIO_IOAS_CLEAR => {
                    ctx.vfio_ioas_clear();
                    Ok(Reply::None)
                }
                _ => Err(Errno::EOPNOTSUPP),
            }
        }),
        IOMMU_TEST_CMD => {
            let op = std::cell::Cell::new(None);
            let result = run(&u, min, t, |c: &mut iommu_test_cmd| {
                op.set(Some(c.op));
                test_cmd(env, ctx, c)
            });
            if let (Some(tr), Some(op)) = (trace, op.get()) {
                tr.name = format!("IOMMU_TEST_CMD/{}", test_op_name(op));
            }
            result
        }
        _ => Err(Errno::ENOTTY),
    }
}

/// `IOMMU_HWPT_INVALIDATE`: `entry_num` is written back as the number of
/// requests handled whatever the result, as the kernel does; a failed write-back
/// is EFAULT.
fn hwpt_invalidate(
    u: &Ucmd,
    ctx: &Iommufd,
    min: usize,
    trace: &mut Option<&mut Trace>,
) -> Result<i32, Errno> {
    let mut c: iommu_hwpt_invalidate = u.read(min)?;
    if let Some(t) = trace.as_deref_mut() {
        t.input = c.describe();
    }
    let (result, done) = if c.__reserved != 0 {
        (Err(Errno::EOPNOTSUPP), 0)
    } else {
        let (r, done) = ctx.hwpt_invalidate(
            c.hwpt_id,
            c.data_type,
            c.data_uptr,
            c.entry_len,
            c.entry_num,
        );
        (r.map_err(Errno::from), done)
    };
    c.entry_num = done;
    u.respond(&c)?;
    if let Some(t) = trace.as_deref_mut() {
        t.output = c.describe();
    }
    result.map(|()| 0)
}

/// `IOMMU_IOAS_IOVA_RANGES`: the ranges are written as far as the caller's array
/// reaches, the count and alignment always; EMSGSIZE after the reply when the array
/// was too small.
fn iova_ranges(
    u: &Ucmd,
    ctx: &Iommufd,
    min: usize,
    trace: &mut Option<&mut Trace>,
) -> Result<i32, Errno> {
    let mut c: iommu_ioas_iova_ranges = u.read(min)?;
    if let Some(t) = trace.as_deref_mut() {
        t.input = c.describe();
    }
    if c.__reserved != 0 {
        return Err(Errno::EOPNOTSUPP);
    }
    let ranges = ctx.ioas_iova_ranges(c.ioas_id)?;
    let max = c.num_iovas as usize;
    for (i, r) in ranges.ranges.iter().take(max).enumerate() {
        let elm = iommu_iova_range {
            start: r.start,
            last: r.last,
        };
        let at = c
            .allowed_iovas
            .wrapping_add((i * size_of::<iommu_iova_range>()) as u64);
        u.mem.write(at, elm.as_bytes()).map_err(|_| Errno::EFAULT)?;
    }
    c.num_iovas = ranges.ranges.len() as u32;
    c.out_iova_alignment = ranges.alignment;
    u.respond(&c)?;
    if let Some(t) = trace.as_deref_mut() {
        t.output = c.describe();
    }
    if ranges.ranges.len() > max {
        return Err(Errno::EMSGSIZE);
    }
    Ok(0)
}

/// The selftest access behind descriptor `fd`; EBADFD if it is not one.
fn access(env: &dyn Env, fd: u32) -> Result<Arc<File>, Errno> {
    match env.file(fd as i32) {
        Some(f) if matches!(*f, File::Access(_)) => Ok(f),
        _ => Err(Errno::EBADFD),
    }
}

fn with_access<R>(
    env: &dyn Env,
    fd: u32,
    f: impl FnOnce(&AccessHandle) -> Result<R, Errno>,
) -> Result<R, Errno> {
    let file = access(env, fd)?;
    match &*file {
        File::Access(a) => f(a),
        _ => Err(Errno::EBADFD),
    }
}

fn test_cmd(env: &dyn Env, ctx: &Iommufd, c: &mut iommu_test_cmd) -> Result<Reply, Errno> {
    match c.op {
        IOMMU_TEST_OP_ADD_RESERVED => {
            let p: iommu_test_cmd_add_reserved = c.payload_as();
            ctx.test_add_reserved(c.id, p.start, p.length)?;
            Ok(Reply::None)
        }
        IOMMU_TEST_OP_MOCK_DOMAIN | IOMMU_TEST_OP_MOCK_DOMAIN_FLAGS => {
            let flags = if c.op == IOMMU_TEST_OP_MOCK_DOMAIN_FLAGS {
                c.payload_as::<iommu_test_cmd_mock_domain_flags>().dev_flags
            } else {
                0
            };
            let ids = ctx.test_mock_domain_flags(c.id, flags)?;
            let p = c.payload_mut::<iommu_test_cmd_mock_domain>();
            p.out_stdev_id = ids.stdev_id;
            p.out_hwpt_id = ids.hwpt_id;
            p.out_idev_id = ids.idev_id;
            let ctx = ctx.clone();
            Ok(Reply::RespondOrUndo(Box::new(move || {
                let _ = ctx.destroy(ids.stdev_id);
            })))
        }
        IOMMU_TEST_OP_MOCK_DOMAIN_REPLACE => {
            let p: iommu_test_cmd_mock_domain_replace = c.payload_as();
            let pt_id = ctx.test_mock_domain_replace(c.id, p.pt_id)?;
            c.payload_mut::<iommu_test_cmd_mock_domain_replace>().pt_id = pt_id;
            Ok(Reply::Respond)
        }
        IOMMU_TEST_OP_MD_CHECK_MAP => {
            let p: iommu_test_cmd_check_map = c.payload_as();
            ctx.test_md_check_map(c.id, p.iova, p.length, p.uptr)?;
            Ok(Reply::None)
        }
        IOMMU_TEST_OP_MD_CHECK_REFS => {
            let p: iommu_test_cmd_check_refs = c.payload_as();
            ctx.test_md_check_refs(p.uptr, p.length, p.refs)?;
            Ok(Reply::None)
        }
        IOMMU_TEST_OP_CREATE_ACCESS => {
            let p: iommu_test_cmd_create_access = c.payload_as();
            let handle = ctx.test_create_access(c.id, p.flags)?;
            let fd = env.install(File::Access(handle))?;
            c.payload_mut::<iommu_test_cmd_create_access>()
                .out_access_fd = fd as u32;
            Ok(Reply::Respond)
        }
        IOMMU_TEST_OP_DESTROY_ACCESS_PAGES => {
            let p: iommu_test_cmd_destroy_access_pages = c.payload_as();
            with_access(env, c.id, |a| Ok(a.destroy_pages(p.access_pages_id)?))?;
            Ok(Reply::None)
        }
        IOMMU_TEST_OP_ACCESS_PAGES => {
            let p: iommu_test_cmd_access_pages = c.payload_as();
            let id = with_access(env, c.id, |a| {
                Ok(a.pages(p.iova, p.length, p.uptr, p.flags)?)
            })?;
            c.payload_mut::<iommu_test_cmd_access_pages>()
                .out_access_pages_id = id;
            Ok(Reply::Respond)
        }
        IOMMU_TEST_OP_ACCESS_RW => {
            let p: iommu_test_cmd_access_rw = c.payload_as();
            with_access(env, c.id, |a| Ok(a.rw(p.iova, p.uptr, p.length, p.flags)?))?;
            Ok(Reply::None)
        }
        IOMMU_TEST_OP_SET_TEMP_MEMORY_LIMIT => {
            let p: iommu_test_cmd_memory_limit = c.payload_as();
            ctx.test_set_temp_memory_limit(p.limit)?;
            Ok(Reply::None)
        }
        IOMMU_TEST_OP_ACCESS_REPLACE_IOAS => {
            let p: iommu_test_cmd_access_replace_ioas = c.payload_as();
            with_access(env, c.id, |a| Ok(a.replace_ioas(p.ioas_id)?))?;
            Ok(Reply::None)
        }
        IOMMU_TEST_OP_DIRTY => {
            let p: iommu_test_cmd_dirty = c.payload_as();
            let n = ctx.test_dirty(c.id, p.iova, p.length, p.page_size, p.uptr)?;
            c.payload_mut::<iommu_test_cmd_dirty>().out_nr_dirty = n;
            Ok(Reply::Respond)
        }
        IOMMU_TEST_OP_MD_CHECK_IOTLB => {
            let p: iommu_test_cmd_check_iotlb = c.payload_as();
            ctx.test_md_check_iotlb(c.id, p.id, p.iotlb)?;
            Ok(Reply::None)
        }
        IOMMU_TEST_OP_TRIGGER_IOPF => {
            let p: iommu_test_cmd_trigger_iopf = c.payload_as();
            ctx.test_trigger_iopf(p.dev_id, p.pasid, p.grpid, p.perm, p.addr)?;
            Ok(Reply::None)
        }
        IOMMU_TEST_OP_PASID_ATTACH => {
            let p: iommu_test_cmd_pasid_attach = c.payload_as();
            let pt_id = ctx.test_pasid_attach(c.id, p.pasid, p.pt_id)?;
            c.payload_mut::<iommu_test_cmd_pasid_attach>().pt_id = pt_id;
            let (ctx, stdev_id) = (ctx.clone(), c.id);
            Ok(Reply::RespondOrUndo(Box::new(move || {
                let _ = ctx.test_pasid_detach(stdev_id, p.pasid);
            })))
        }
        IOMMU_TEST_OP_PASID_REPLACE => {
            let p: iommu_test_cmd_pasid_replace = c.payload_as();
            let pt_id = ctx.test_pasid_replace(c.id, p.pasid, p.pt_id)?;
            c.payload_mut::<iommu_test_cmd_pasid_replace>().pt_id = pt_id;
            Ok(Reply::Respond)
        }
        IOMMU_TEST_OP_PASID_DETACH => {
            let p: iommu_test_cmd_pasid_detach = c.payload_as();
            ctx.test_pasid_detach(c.id, p.pasid)?;
            Ok(Reply::None)
        }
        IOMMU_TEST_OP_DEV_CHECK_CACHE => {
            let p: iommu_test_cmd_check_dev_cache = c.payload_as();
            ctx.test_dev_check_cache(c.id, p.id, p.cache)?;
            Ok(Reply::None)
        }
        IOMMU_TEST_OP_PASID_CHECK_HWPT => {
            let p: iommu_test_cmd_pasid_check = c.payload_as();
            ctx.test_pasid_check_hwpt(c.id, p.pasid, p.hwpt_id)?;
            Ok(Reply::None)
        }
        _ => Err(Errno::EOPNOTSUPP),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn min_sizes_are_the_kernels() {
        let min = |cmd| IOCTLS.iter().find(|o| o.cmd == cmd).unwrap().min_size;
        assert_eq!(min(IOMMU_DESTROY), 8);
        assert_eq!(min(IOMMU_IOAS_ALLOC), 12);
        assert_eq!(min(IOMMU_HWPT_ALLOC), 24);
        assert_eq!(min(IOMMU_HWPT_SET_DIRTY_TRACKING), 16);
        assert_eq!(min(IOMMU_HWPT_GET_DIRTY_BITMAP), 48);
        assert_eq!(min(IOMMU_HWPT_INVALIDATE), 32);
        assert_eq!(min(IOMMU_GET_HW_INFO), 32);
        assert_eq!(min(IOMMU_IOAS_ALLOW_IOVAS), 24);
        assert_eq!(min(IOMMU_IOAS_COPY), 40);
        assert_eq!(min(IOMMU_IOAS_IOVA_RANGES), 32);
        assert_eq!(min(IOMMU_IOAS_MAP), 40);
        assert_eq!(min(IOMMU_IOAS_MAP_FILE), 40);
        assert_eq!(min(IOMMU_IOAS_UNMAP), 24);
        assert_eq!(min(IOMMU_OPTION), 24);
        assert_eq!(min(IOMMU_IOAS_CHANGE_PROCESS), 8);
        assert_eq!(min(IOMMU_TEST_CMD), 68);
        assert_eq!(min(IOMMU_FAULT_QUEUE_ALLOC), 16);
        assert_eq!(min(IOMMU_VFIO_IOAS), 12);
        assert_eq!(min(IOMMU_VIOMMU_ALLOC), 24);
        assert_eq!(min(IOMMU_VDEVICE_ALLOC), 24);
    }

    #[test]
    fn trace_numbers_are_hex() {
        let m = iommu_ioas_map {
            size: 40,
            flags: 7,
            ioas_id: 1,
            user_va: 0x7f00,
            length: 4096,
            ..Default::default()
        };
        assert_eq!(
            m.describe(),
            "iommu_ioas_map { size: 0x28, flags: 7, ioas_id: 1, __reserved: 0, user_va: 0x7f00, length: 0x1000, iova: 0 }"
        );
        let c = iommu_test_cmd::new(
            1,
            &iommu_test_cmd_add_reserved {
                start: 0x1000,
                length: 0x2000,
            },
        );
        assert_eq!(
            c.describe(),
            "{ size: 72, op: ADD_RESERVED, id: 1, iommu_test_cmd_add_reserved { start: 0x1000, length: 0x2000 } }"
        );
    }

    #[test]
    fn test_op_names() {
        assert_eq!(test_op_name(IOMMU_TEST_OP_MOCK_DOMAIN), "MOCK_DOMAIN");
        assert_eq!(test_op_name(IOMMU_TEST_OP_MD_CHECK_IOTLB), "MD_CHECK_IOTLB");
        assert_eq!(test_op_name(999), "?");
        let c = iommu_test_cmd::new(
            3,
            &iommu_test_cmd_check_iotlb {
                id: 2,
                iotlb: 0xbadbeef,
            },
        );
        assert_eq!(
            c.describe(),
            "{ size: 72, op: MD_CHECK_IOTLB, id: 3, iommu_test_cmd_check_iotlb { id: 2, iotlb: 0xbadbeef } }"
        );
        assert_eq!(
            command_name(IOMMU_HWPT_INVALIDATE),
            Some("IOMMU_HWPT_INVALIDATE")
        );
        assert_eq!(command_name(IOMMU_VIOMMU_ALLOC), Some("IOMMU_VIOMMU_ALLOC"));
        assert_eq!(
            command_name(IOMMU_VDEVICE_ALLOC),
            Some("IOMMU_VDEVICE_ALLOC")
        );
        let c = iommu_test_cmd::new(
            5,
            &iommu_test_cmd_check_dev_cache {
                id: 1,
                cache: 0xbaddad,
            },
        );
        assert_eq!(
            c.describe(),
            "{ size: 72, op: DEV_CHECK_CACHE, id: 5, iommu_test_cmd_check_dev_cache { id: 1, cache: 0xbaddad } }"
        );
    }
}
