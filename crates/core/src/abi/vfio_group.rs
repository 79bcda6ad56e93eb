//! The ioctls of a VFIO group file, decoded (`group.c`'s
//! `vfio_group_fops_unl_ioctl`).
//!
//! `VFIO_GROUP_GET_STATUS` follows VFIO's argsz rules (exactly `minsz` bytes
//! read and written, an `argsz` below it EINVAL); `SET_CONTAINER` reads an
//! `s32` fd; `GET_DEVICE_FD` reads a NUL-terminated name of at most a page
//! (`strndup_user`: EFAULT if it cannot be read, EINVAL without a NUL in the
//! page) and installs the new device file as a close-on-exec descriptor.

use super::vfio::{describe, read_min, write_bytes};
use super::{Env, File, Trace};
use crate::mem::{AddressSpace, Process};
use crate::vfio::GroupFile;
use softiommu_uapi::vfio::*;
use softiommu_uapi::Errno;
use std::mem::size_of;
use std::sync::Arc;
use zerocopy::IntoBytes;

/// The ioctls of a VFIO group file, with their names.
pub static VFIO_GROUP_IOCTLS: &[(u32, &str)] = &[
    (VFIO_GROUP_GET_STATUS, "VFIO_GROUP_GET_STATUS"),
    (VFIO_GROUP_SET_CONTAINER, "VFIO_GROUP_SET_CONTAINER"),
    (VFIO_GROUP_UNSET_CONTAINER, "VFIO_GROUP_UNSET_CONTAINER"),
    (VFIO_GROUP_GET_DEVICE_FD, "VFIO_GROUP_GET_DEVICE_FD"),
];

/// Longest device name, NUL included (`PAGE_SIZE`).
const NAME_MAX: usize = 4096;

fn name(cmd: u32) -> Option<&'static str> {
    VFIO_GROUP_IOCTLS
        .iter()
        .find(|(c, _)| *c == cmd)
        .map(|(_, n)| *n)
}

fn errno_err(errno: Errno) -> crate::Error {
    crate::Error::Other {
        what: "VFIO_GROUP_SET_CONTAINER",
        errno,
    }
}

pub(super) fn ioctl(
    env: &dyn Env,
    process: &Arc<Process>,
    group: &GroupFile,
    cmd: u32,
    arg: u64,
    mut trace: Option<&mut Trace>,
) -> Result<i32, Errno> {
    let Some(cmd_name) = name(cmd) else {
        return Err(Errno::ENOTTY);
    };
    if let Some(t) = trace.as_deref_mut() {
        t.name = cmd_name.to_string();
    }
    let mem: &dyn AddressSpace = &*process.space;
    match cmd {
        VFIO_GROUP_GET_STATUS => {
            const MINSZ: usize = size_of::<vfio_group_status>();
            let mut status: vfio_group_status = read_min(mem, arg, MINSZ)?;
            if let Some(t) = trace.as_deref_mut() {
                t.input = describe(&status);
            }
            if (status.argsz as usize) < MINSZ {
                return Err(Errno::EINVAL);
            }
            status.flags = group.status()?;
            write_bytes(mem, arg, status.as_bytes())?;
            if let Some(t) = trace {
                t.output = describe(&status);
            }
            Ok(0)
        }
        VFIO_GROUP_SET_CONTAINER => {
            let fd: i32 = read_min(mem, arg, size_of::<i32>())?;
            if let Some(t) = trace {
                t.input = format!("[{fd}]");
            }
            let file = env.file(fd);
            if file.is_none() && !env.is_open(fd) {
                return Err(Errno::EBADF);
            }
            group.set_container_with(|| match file.as_deref() {
                Some(File::Iommufd(ctx)) => Ok(ctx.clone()),
                _ => Err(errno_err(Errno::EBADFD)),
            })?;
            Ok(0)
        }
        VFIO_GROUP_UNSET_CONTAINER => {
            group.unset_container()?;
            Ok(0)
        }
        VFIO_GROUP_GET_DEVICE_FD => {
            let name = read_name(mem, arg)?;
            if let Some(t) = trace.as_deref_mut() {
                t.input = format!("{:?}", String::from_utf8_lossy(&name));
            }
            let dev = group.get_device_fd(&name)?;
            let fd = env.install(File::VfioDevice(dev, process.clone()))?;
            if let Some(t) = trace {
                t.output = format!("fd {fd}");
            }
            Ok(fd)
        }
        _ => Err(Errno::ENOTTY),
    }
}

/// The NUL-terminated string at `arg`, without its NUL: EFAULT when a byte
/// before the NUL cannot be read, EINVAL when the first [`NAME_MAX`] bytes
/// hold no NUL. Read up to page boundaries, so that a short string at the end
/// of readable memory is found.
fn read_name(mem: &dyn AddressSpace, arg: u64) -> Result<Vec<u8>, Errno> {
    const PAGE: u64 = 4096;
    let mut name = Vec::new();
    let mut at = arg;
    while name.len() < NAME_MAX {
        let to_page_end = PAGE - at % PAGE;
        let n = (to_page_end as usize).min(NAME_MAX - name.len());
        let mut chunk = vec![0u8; n];
        mem.read(at, &mut chunk).map_err(|_| Errno::EFAULT)?;
        if let Some(end) = chunk.iter().position(|b| *b == 0) {
            name.extend_from_slice(&chunk[..end]);
            return Ok(name);
        }
        name.extend_from_slice(&chunk);
        at = at.wrapping_add(n as u64);
    }
    Err(Errno::EINVAL)
}
