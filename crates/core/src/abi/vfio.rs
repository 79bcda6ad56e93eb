//! VFIO's type1 container ioctls on an iommufd, decoded (the ioctl half of the
//! kernel's `vfio_compat.c`).
//!
//! An ioctl number outside iommufd's command range goes here, as the kernel's
//! `main.c` sends it to its VFIO handler; a number this module does not know is
//! ENOTTY.
//!
//! VFIO's structs follow their own rules, not iommufd's extensible-struct ones:
//! exactly `minsz` bytes (the end of the fields the ioctl has always had) are
//! read, an `argsz` below `minsz` is EINVAL, and bytes past `minsz` are neither
//! read nor checked. `VFIO_CHECK_EXTENSION` and `VFIO_SET_IOMMU` take an integer,
//! not a pointer.

use super::Trace;
use crate::iommufd::{Iommufd, MapFlags};
use crate::mem::AddressSpace;
use softiommu_uapi::vfio::*;
use softiommu_uapi::Errno;
use std::mem::{offset_of, size_of};
use zerocopy::{FromBytes, Immutable, IntoBytes};

/// The VFIO ioctls an iommufd answers, with their names.
pub static VFIO_IOCTLS: &[(u32, &str)] = &[
    (VFIO_GET_API_VERSION, "VFIO_GET_API_VERSION"),
    (VFIO_CHECK_EXTENSION, "VFIO_CHECK_EXTENSION"),
    (VFIO_SET_IOMMU, "VFIO_SET_IOMMU"),
    (VFIO_IOMMU_GET_INFO, "VFIO_IOMMU_GET_INFO"),
    (VFIO_IOMMU_MAP_DMA, "VFIO_IOMMU_MAP_DMA"),
    (VFIO_IOMMU_UNMAP_DMA, "VFIO_IOMMU_UNMAP_DMA"),
];

/// The name of a VFIO ioctl number an iommufd answers.
pub fn command_name(cmd: u32) -> Option<&'static str> {
    VFIO_IOCTLS.iter().find(|(c, _)| *c == cmd).map(|(_, n)| *n)
}

/// Reads the first `minsz` bytes of a `T` at `arg` (the rest stays zero).
pub(super) fn read_min<T: FromBytes + IntoBytes + Default>(
    mem: &dyn AddressSpace,
    arg: u64,
    minsz: usize,
) -> Result<T, Errno> {
    let mut v = T::default();
    mem.read(arg, &mut v.as_mut_bytes()[..minsz])
        .map_err(|_| Errno::EFAULT)?;
    Ok(v)
}

pub(super) fn write_bytes(mem: &dyn AddressSpace, at: u64, bytes: &[u8]) -> Result<(), Errno> {
    mem.write(at, bytes).map_err(|_| Errno::EFAULT)
}

pub(super) fn describe<T: std::fmt::Debug>(v: &T) -> String {
    super::iommufd::hex(v)
}

pub(super) fn ioctl(
    ctx: &Iommufd,
    cmd: u32,
    arg: u64,
    mut trace: Option<&mut Trace>,
) -> Result<i32, Errno> {
    let Some(name) = command_name(cmd) else {
        return Err(Errno::ENOTTY);
    };
    if let Some(t) = trace.as_deref_mut() {
        t.name = name.to_string();
        if matches!(cmd, VFIO_CHECK_EXTENSION | VFIO_SET_IOMMU) {
            t.input = format!("{arg}");
        }
    }
    let space = ctx.process().space.clone();
    let mem: &dyn AddressSpace = &*space;
    match cmd {
        VFIO_GET_API_VERSION => Ok(VFIO_API_VERSION),
        VFIO_CHECK_EXTENSION => Ok(ctx.vfio_check_extension(arg)?),
        VFIO_SET_IOMMU => {
            ctx.vfio_set_iommu(arg)?;
            Ok(0)
        }
        VFIO_IOMMU_MAP_DMA => {
            const MINSZ: usize = offset_of!(vfio_iommu_type1_dma_map, size) + 8;
            let map: vfio_iommu_type1_dma_map = read_min(mem, arg, MINSZ)?;
            if let Some(t) = trace.as_deref_mut() {
                t.input = describe(&map);
            }
            const KNOWN: u32 = VFIO_DMA_MAP_FLAG_READ | VFIO_DMA_MAP_FLAG_WRITE;
            if (map.argsz as usize) < MINSZ || map.flags & !KNOWN != 0 {
                return Err(Errno::EINVAL);
            }
            let flags = MapFlags {
                readable: map.flags & VFIO_DMA_MAP_FLAG_READ != 0,
                writeable: map.flags & VFIO_DMA_MAP_FLAG_WRITE != 0,
            };
            ctx.vfio_map_dma(map.vaddr, map.iova, map.size, flags)?;
            Ok(0)
        }
        VFIO_IOMMU_UNMAP_DMA => {
            const MINSZ: usize = offset_of!(vfio_iommu_type1_dma_unmap, size) + 8;
            let mut unmap: vfio_iommu_type1_dma_unmap = read_min(mem, arg, MINSZ)?;
            if let Some(t) = trace.as_deref_mut() {
                t.input = describe(&unmap);
            }
            if (unmap.argsz as usize) < MINSZ || unmap.flags & !VFIO_DMA_UNMAP_FLAG_ALL != 0 {
                return Err(Errno::EINVAL);
            }
            let unmapped = if unmap.flags & VFIO_DMA_UNMAP_FLAG_ALL != 0 {
                if unmap.iova != 0 || unmap.size != 0 {
                    return Err(Errno::EINVAL);
                }
                ctx.vfio_unmap_all()?
            } else {
                ctx.vfio_unmap_dma(unmap.iova, unmap.size)?
            };
            unmap.size = unmapped;
            write_bytes(mem, arg, &unmap.as_bytes()[..MINSZ])?;
            if let Some(t) = trace.as_deref_mut() {
                t.output = describe(&unmap);
            }
            Ok(0)
        }
        VFIO_IOMMU_GET_INFO => get_info(ctx, mem, arg, trace),
        _ => Err(Errno::ENOTTY),
    }
}

/// The bytes of `v`, for writing a capability.
fn bytes_of<T: IntoBytes + Immutable>(v: &T) -> &[u8] {
    v.as_bytes()
}

/// `VFIO_IOMMU_GET_INFO`: the info struct, then as much of the capability
/// chain (DMA-available, then IOVA ranges) as `argsz` has room for. A
/// capability is written whole or not at all; the `next` link of the previous
/// one is written when `argsz` reaches the start of the next. `argsz` comes back
/// as the size everything needs, and `cap_offset` is set only when it all fit.
fn get_info(
    ctx: &Iommufd,
    mem: &dyn AddressSpace,
    arg: u64,
    mut trace: Option<&mut Trace>,
) -> Result<i32, Errno> {
    const MINSZ: usize = offset_of!(vfio_iommu_type1_info, iova_pgsizes) + 8;
    let mut info: vfio_iommu_type1_info = read_min(mem, arg, MINSZ)?;
    if let Some(t) = trace.as_deref_mut() {
        t.input = describe(&info);
    }
    let argsz = info.argsz as u64;
    if argsz < MINSZ as u64 {
        return Err(Errno::EINVAL);
    }
    let outsz = (info.argsz as usize).min(size_of::<vfio_iommu_type1_info>());
    let reply = ctx.vfio_iommu_info()?;
    info.flags = VFIO_IOMMU_INFO_PGSIZES;
    info.iova_pgsizes = reply.iova_pgsizes;
    info.cap_offset = 0;

    let mut total = size_of::<vfio_iommu_type1_info>() as u64;
    let mut last_cap: Option<u64> = None;
    for which in 0..2 {
        let cur = arg.wrapping_add(total);
        let avail = argsz.saturating_sub(total);
        let cap_size = match which {
            0 => {
                let cap = vfio_iommu_type1_info_dma_avail {
                    header: vfio_info_cap_header {
                        id: VFIO_IOMMU_TYPE1_INFO_DMA_AVAIL,
                        version: 1,
                        next: 0,
                    },
                    // iommufd's limit is the memory limit, not a count.
                    avail: u32::MAX,
                };
                let size = size_of::<vfio_iommu_type1_info_dma_avail>() as u64;
                if avail >= size {
                    write_bytes(mem, cur, bytes_of(&cap))?;
                }
                size
            }
            _ => {
                let head = size_of::<vfio_iommu_type1_info_cap_iova_range>() as u64;
                let elm = size_of::<vfio_iova_range>() as u64;
                let n = reply.iova_ranges.len() as u64;
                for (i, r) in reply.iova_ranges.iter().enumerate() {
                    let i = i as u64;
                    if avail >= head + elm * (i + 1) {
                        let range = vfio_iova_range {
                            start: r.start,
                            end: r.last,
                        };
                        write_bytes(mem, cur.wrapping_add(head + elm * i), bytes_of(&range))?;
                    }
                }
                let cap = vfio_iommu_type1_info_cap_iova_range {
                    header: vfio_info_cap_header {
                        id: VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE,
                        version: 1,
                        next: 0,
                    },
                    nr_iovas: n as u32,
                    reserved: 0,
                };
                if avail >= head + elm * n {
                    write_bytes(mem, cur, bytes_of(&cap))?;
                }
                head + elm * n
            }
        };
        if let Some(last) = last_cap {
            if argsz >= total {
                let next_at = last + offset_of!(vfio_info_cap_header, next) as u64;
                write_bytes(mem, next_at, &(total as u32).to_ne_bytes())?;
            }
        }
        last_cap = Some(cur);
        total += cap_size;
    }
    if argsz >= total {
        info.cap_offset = size_of::<vfio_iommu_type1_info>() as u32;
    }
    info.argsz = total as u32;
    info.flags |= VFIO_IOMMU_INFO_CAPS;
    write_bytes(mem, arg, &info.as_bytes()[..outsz])?;
    if let Some(t) = trace {
        t.output = describe(&info);
    }
    Ok(0)
}
