//! The ioctls of a VFIO device file, decoded (`vfio_main.c`,
//! `device_cdev.c` and vfio-pci's `vfio_pci_core_ioctl`).
//!
//! VFIO's argsz rules, as in [`super::vfio`]: exactly `minsz` bytes are read,
//! an `argsz` below it is EINVAL, and only what the ioctl has always had is
//! written back. `VFIO_DEVICE_BIND_IOMMUFD` is the exception: it is copied
//! the extensible way (`copy_struct_from_user`, so bytes past 24 must be
//! zero). Before a cdev file is bound every ioctl but the bind is EINVAL,
//! whatever its number.

use super::vfio::{describe, read_min, write_bytes};
use super::{Env, File, Trace};
use crate::mem::AddressSpace;
use crate::vfio::{DeviceFile, IrqData};
use softiommu_uapi::vfio::*;
use softiommu_uapi::Errno;
use std::mem::{offset_of, size_of};
use zerocopy::IntoBytes;

/// The ioctls of a VFIO device file, with their names.
pub static VFIO_DEVICE_IOCTLS: &[(u32, &str)] = &[
    (VFIO_DEVICE_GET_INFO, "VFIO_DEVICE_GET_INFO"),
    (VFIO_DEVICE_GET_REGION_INFO, "VFIO_DEVICE_GET_REGION_INFO"),
    (VFIO_DEVICE_GET_IRQ_INFO, "VFIO_DEVICE_GET_IRQ_INFO"),
    (VFIO_DEVICE_SET_IRQS, "VFIO_DEVICE_SET_IRQS"),
    (VFIO_DEVICE_RESET, "VFIO_DEVICE_RESET"),
    (
        VFIO_DEVICE_GET_PCI_HOT_RESET_INFO,
        "VFIO_DEVICE_GET_PCI_HOT_RESET_INFO",
    ),
    (VFIO_DEVICE_PCI_HOT_RESET, "VFIO_DEVICE_PCI_HOT_RESET"),
    (VFIO_DEVICE_FEATURE, "VFIO_DEVICE_FEATURE"),
    (VFIO_DEVICE_BIND_IOMMUFD, "VFIO_DEVICE_BIND_IOMMUFD"),
    (
        VFIO_DEVICE_ATTACH_IOMMUFD_PT,
        "VFIO_DEVICE_ATTACH_IOMMUFD_PT",
    ),
    (
        VFIO_DEVICE_DETACH_IOMMUFD_PT,
        "VFIO_DEVICE_DETACH_IOMMUFD_PT",
    ),
];

fn name(cmd: u32) -> Option<&'static str> {
    VFIO_DEVICE_IOCTLS
        .iter()
        .find(|(c, _)| *c == cmd)
        .map(|(_, n)| *n)
}

fn errno_err(errno: Errno) -> crate::Error {
    crate::Error::Other {
        what: "VFIO_DEVICE_BIND_IOMMUFD",
        errno,
    }
}

/// Size of a VF token.
const TOKEN_SIZE: usize = 16;

pub(super) fn ioctl(
    env: &dyn Env,
    mem: &dyn AddressSpace,
    file: &DeviceFile,
    cmd: u32,
    arg: u64,
    mut trace: Option<&mut Trace>,
) -> Result<i32, Errno> {
    if let (Some(t), Some(n)) = (trace.as_deref_mut(), name(cmd)) {
        t.name = n.to_string();
    }
    if cmd == VFIO_DEVICE_BIND_IOMMUFD {
        return bind(env, mem, file, arg, trace);
    }
    if !file.has_access() {
        return Err(Errno::EINVAL);
    }
    match cmd {
        VFIO_DEVICE_ATTACH_IOMMUFD_PT => {
            const MINSZ: usize = offset_of!(vfio_device_attach_iommufd_pt, pt_id) + 4;
            let mut at: vfio_device_attach_iommufd_pt = read_min(mem, arg, MINSZ)?;
            if (at.argsz as usize) < MINSZ || at.flags & !VFIO_DEVICE_ATTACH_PASID != 0 {
                return Err(Errno::EINVAL);
            }
            let pasid = if at.flags & VFIO_DEVICE_ATTACH_PASID != 0 {
                at = read_pasid(mem, arg, at, size_of::<vfio_device_attach_iommufd_pt>())?;
                Some(at.pasid)
            } else {
                None
            };
            trace_in(&mut trace, &at);
            at.pt_id = file.attach(pasid, at.pt_id)?;
            let pt_id_at =
                arg.wrapping_add(offset_of!(vfio_device_attach_iommufd_pt, pt_id) as u64);
            if let Err(e) = write_bytes(mem, pt_id_at, at.pt_id.as_bytes()) {
                let _ = file.detach(pasid);
                return Err(e);
            }
            trace_out(&mut trace, &at);
            Ok(0)
        }
        VFIO_DEVICE_DETACH_IOMMUFD_PT => {
            const MINSZ: usize = offset_of!(vfio_device_detach_iommufd_pt, flags) + 4;
            let mut det: vfio_device_detach_iommufd_pt = read_min(mem, arg, MINSZ)?;
            if (det.argsz as usize) < MINSZ || det.flags & !VFIO_DEVICE_DETACH_PASID != 0 {
                return Err(Errno::EINVAL);
            }
            let pasid = if det.flags & VFIO_DEVICE_DETACH_PASID != 0 {
                det = read_pasid(mem, arg, det, size_of::<vfio_device_detach_iommufd_pt>())?;
                Some(det.pasid)
            } else {
                None
            };
            trace_in(&mut trace, &det);
            file.detach(pasid)?;
            Ok(0)
        }
        VFIO_DEVICE_GET_INFO => {
            const MINSZ: usize = offset_of!(vfio_device_info, num_irqs) + 4;
            let mut info: vfio_device_info = read_checked(mem, arg, MINSZ, &mut trace)?;
            let i = file.info()?;
            info.flags = i.flags;
            info.num_regions = i.num_regions;
            info.num_irqs = i.num_irqs;
            let n = (info.argsz as usize).min(size_of::<vfio_device_info>());
            write_bytes(mem, arg, &info.as_bytes()[..n])?;
            trace_out(&mut trace, &info);
            Ok(0)
        }
        VFIO_DEVICE_GET_REGION_INFO => {
            const MINSZ: usize = offset_of!(vfio_region_info, offset) + 8;
            let mut info: vfio_region_info = read_checked(mem, arg, MINSZ, &mut trace)?;
            let r = file.region_info(info.index)?;
            info.flags = r.flags;
            info.size = r.size;
            info.offset = r.offset;
            write_bytes(mem, arg, &info.as_bytes()[..MINSZ])?;
            trace_out(&mut trace, &info);
            Ok(0)
        }
        VFIO_DEVICE_GET_IRQ_INFO => {
            const MINSZ: usize = offset_of!(vfio_irq_info, count) + 4;
            let mut info: vfio_irq_info = read_checked(mem, arg, MINSZ, &mut trace)?;
            let r = file.irq_info(info.index)?;
            info.flags = r.flags;
            info.count = r.count;
            write_bytes(mem, arg, &info.as_bytes()[..MINSZ])?;
            trace_out(&mut trace, &info);
            Ok(0)
        }
        VFIO_DEVICE_SET_IRQS => {
            const MINSZ: usize = size_of::<vfio_irq_set>();
            let set: vfio_irq_set = read_checked(mem, arg, MINSZ, &mut trace)?;
            let elem = file.set_irqs_check(set.flags, set.index, set.start, set.count)?;
            let len = elem * set.count as usize;
            if (set.argsz as usize - MINSZ) < len {
                return Err(Errno::EINVAL);
            }
            let mut bytes = vec![0u8; len];
            mem.read(arg.wrapping_add(MINSZ as u64), &mut bytes)
                .map_err(|_| Errno::EFAULT)?;
            let data = match elem {
                0 => IrqData::None,
                1 => IrqData::Bool(bytes.iter().map(|b| *b != 0).collect()),
                _ => {
                    let mut fds = Vec::with_capacity(set.count as usize);
                    for c in bytes.chunks_exact(4) {
                        let fd = i32::from_ne_bytes([c[0], c[1], c[2], c[3]]);
                        fds.push(match fd {
                            -1 => None,
                            fd if fd < 0 => return Err(Errno::EINVAL),
                            fd => Some(env.eventfd(fd)?),
                        });
                    }
                    if let Some(t) = trace.as_deref_mut() {
                        t.input = format!("{} fds {:?}", t.input, fds_of(&bytes));
                    }
                    IrqData::Eventfd(fds)
                }
            };
            file.set_irqs(set.flags, set.index, set.start, set.count, data)?;
            Ok(0)
        }
        VFIO_DEVICE_RESET => {
            file.reset()?;
            Ok(0)
        }
        VFIO_DEVICE_GET_PCI_HOT_RESET_INFO => hot_reset_info(mem, file, arg, trace),
        VFIO_DEVICE_PCI_HOT_RESET => hot_reset(env, mem, file, arg, trace),
        VFIO_DEVICE_FEATURE => {
            const MINSZ: usize = size_of::<vfio_device_feature>();
            let f: vfio_device_feature = read_min(mem, arg, MINSZ)?;
            trace_in(&mut trace, &f);
            const KNOWN: u32 = VFIO_DEVICE_FEATURE_MASK
                | VFIO_DEVICE_FEATURE_GET
                | VFIO_DEVICE_FEATURE_SET
                | VFIO_DEVICE_FEATURE_PROBE;
            let get_and_set = VFIO_DEVICE_FEATURE_GET | VFIO_DEVICE_FEATURE_SET;
            if (f.argsz as usize) < MINSZ
                || f.flags & !KNOWN != 0
                || (f.flags & VFIO_DEVICE_FEATURE_PROBE == 0
                    && f.flags & get_and_set == get_and_set)
            {
                return Err(Errno::EINVAL);
            }
            // Plain vfio-pci over our functions: no migration, no DMA logging,
            // no power management, not an SR-IOV PF.
            Err(Errno::ENOTTY)
        }
        _ => Err(Errno::ENOTTY),
    }
}

/// `VFIO_DEVICE_GET_PCI_HOT_RESET_INFO` (notes §5.7): the header, then the
/// affected functions if `argsz` has room for them all; else the header
/// with the count and ENOSPC.
fn hot_reset_info(
    mem: &dyn AddressSpace,
    file: &DeviceFile,
    arg: u64,
    mut trace: Option<&mut Trace>,
) -> Result<i32, Errno> {
    const MINSZ: usize = size_of::<vfio_pci_hot_reset_info>();
    let mut hdr: vfio_pci_hot_reset_info = read_min(mem, arg, MINSZ)?;
    trace_in(&mut trace, &hdr);
    if (hdr.argsz as usize) < MINSZ {
        return Err(Errno::EINVAL);
    }
    hdr.flags = 0;
    let count = file.hot_reset_scope()?.len();
    let room = (hdr.argsz as usize - MINSZ) / size_of::<vfio_pci_dependent_device>();
    if count > room {
        hdr.count = count as u32;
        write_bytes(mem, arg, hdr.as_bytes())?;
        trace_out(&mut trace, &hdr);
        return Err(Errno::ENOSPC);
    }
    let info = file.hot_reset_info()?;
    let devices: Vec<vfio_pci_dependent_device> = info
        .devices
        .iter()
        .map(|(bdf, id)| vfio_pci_dependent_device {
            group_id: *id,
            segment: 0,
            bus: bdf.bus(),
            devfn: bdf.devfn(),
        })
        .collect();
    hdr.flags = info.flags;
    hdr.count = devices.len() as u32;
    write_bytes(mem, arg.wrapping_add(MINSZ as u64), devices.as_bytes())?;
    write_bytes(mem, arg, hdr.as_bytes())?;
    if let Some(t) = trace {
        t.output = format!("{} {:x?}", describe(&hdr), info.devices);
    }
    Ok(0)
}

/// `VFIO_DEVICE_PCI_HOT_RESET` (notes §5.7), in the kernel's order: the
/// header, the form, whether the bus can be reset, the group count, then
/// each group fd (EBADF when not open, EINVAL when not a VFIO group).
fn hot_reset(
    env: &dyn Env,
    mem: &dyn AddressSpace,
    file: &DeviceFile,
    arg: u64,
    mut trace: Option<&mut Trace>,
) -> Result<i32, Errno> {
    const MINSZ: usize = size_of::<vfio_pci_hot_reset>();
    let hdr: vfio_pci_hot_reset = read_min(mem, arg, MINSZ)?;
    trace_in(&mut trace, &hdr);
    if (hdr.argsz as usize) < MINSZ || hdr.flags != 0 {
        return Err(Errno::EINVAL);
    }
    if (hdr.count == 0) == file.group_path() {
        return Err(Errno::EINVAL);
    }
    let scope = file.hot_reset_scope()?.len();
    if hdr.count as usize > scope {
        return Err(Errno::EINVAL);
    }
    let mut bytes = vec![0u8; hdr.count as usize * size_of::<i32>()];
    mem.read(arg.wrapping_add(MINSZ as u64), &mut bytes)
        .map_err(|_| Errno::EFAULT)?;
    let fds = fds_of(&bytes);
    if let Some(t) = trace {
        t.input = format!("{} fds {fds:?}", t.input);
    }
    let mut groups = Vec::with_capacity(fds.len());
    for fd in fds {
        match env.file(fd).as_deref() {
            Some(File::VfioGroup(g, _)) => groups.push(g.group()),
            Some(_) => return Err(Errno::EINVAL),
            None if env.is_open(fd) => return Err(Errno::EINVAL),
            None => return Err(Errno::EBADF),
        }
    }
    file.hot_reset(&groups)?;
    Ok(0)
}

/// With the PASID flag: EINVAL unless `argsz` covers the whole `T` (whose
/// last field is the PASID), which is then read whole.
fn read_pasid<T: zerocopy::FromBytes + IntoBytes + zerocopy::Immutable + Default>(
    mem: &dyn AddressSpace,
    arg: u64,
    head: T,
    argsz: usize,
) -> Result<T, Errno> {
    let user = u32::from_ne_bytes(head.as_bytes()[..4].try_into().unwrap_or_default());
    if (user as usize) < argsz {
        return Err(Errno::EINVAL);
    }
    read_min(mem, arg, argsz)
}

/// Reads the first `minsz` bytes of a `T` whose first field is `argsz`,
/// traces it, and checks that `argsz` covers them (EINVAL).
fn read_checked<T>(
    mem: &dyn AddressSpace,
    arg: u64,
    minsz: usize,
    trace: &mut Option<&mut Trace>,
) -> Result<T, Errno>
where
    T: zerocopy::FromBytes + IntoBytes + zerocopy::Immutable + Default + std::fmt::Debug,
{
    let v: T = read_min(mem, arg, minsz)?;
    trace_in(trace, &v);
    let argsz = u32::from_ne_bytes(v.as_bytes()[..4].try_into().unwrap_or_default());
    if (argsz as usize) < minsz {
        return Err(Errno::EINVAL);
    }
    Ok(v)
}

fn trace_in<T: std::fmt::Debug>(trace: &mut Option<&mut Trace>, v: &T) {
    if let Some(t) = trace.as_deref_mut() {
        t.input = describe(v);
    }
}

fn trace_out<T: std::fmt::Debug>(trace: &mut Option<&mut Trace>, v: &T) {
    if let Some(t) = trace.as_deref_mut() {
        t.output = describe(v);
    }
}

fn fds_of(bytes: &[u8]) -> Vec<i32> {
    bytes
        .chunks_exact(4)
        .map(|c| i32::from_ne_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

/// `VFIO_DEVICE_BIND_IOMMUFD`, in the kernel's order (see
/// `docs/kernel-notes/vfio.md` §2.2).
fn bind(
    env: &dyn Env,
    mem: &dyn AddressSpace,
    file: &DeviceFile,
    arg: u64,
    mut trace: Option<&mut Trace>,
) -> Result<i32, Errno> {
    const MINSZ: usize = offset_of!(vfio_device_bind_iommufd, out_devid) + 4;
    let argsz = read_min::<u32>(mem, arg, 4)?;
    if (argsz as usize) < MINSZ {
        return Err(Errno::EINVAL);
    }
    let ucmd = super::Ucmd {
        mem,
        arg,
        user_size: argsz,
    };
    let mut bind: vfio_device_bind_iommufd = ucmd.read(MINSZ)?;
    trace_in(&mut trace, &bind);
    if bind.iommufd < 0 || bind.flags & !VFIO_DEVICE_BIND_FLAG_TOKEN != 0 {
        return Err(Errno::EINVAL);
    }
    bind.out_devid = file.bind_with(|| {
        let token = if bind.flags & VFIO_DEVICE_BIND_FLAG_TOKEN != 0 {
            let mut t = [0u8; TOKEN_SIZE];
            mem.read(bind.token_uuid_ptr, &mut t)
                .map_err(|_| errno_err(Errno::EFAULT))?;
            Some(t)
        } else {
            None
        };
        let ctx = match env.file(bind.iommufd).as_deref() {
            Some(File::Iommufd(ctx)) => ctx.clone(),
            Some(_) => return Err(errno_err(Errno::EBADFD)),
            None if env.is_open(bind.iommufd) => return Err(errno_err(Errno::EBADFD)),
            None => return Err(errno_err(Errno::EBADF)),
        };
        Ok((token, ctx))
    })?;
    let devid_at = arg.wrapping_add(offset_of!(vfio_device_bind_iommufd, out_devid) as u64);
    if let Err(e) = write_bytes(mem, devid_at, bind.out_devid.as_bytes()) {
        file.unbind();
        return Err(e);
    }
    trace_out(&mut trace, &bind);
    Ok(0)
}
