//! KVM's device control ioctls for the kvm-vfio device, decoded
//! (`kvm_main.c`'s `kvm_ioctl_create_device` and `kvm_device_ioctl`,
//! `vfio.c`'s attribute handlers), over [`crate::kvm`].
//!
//! KVM's structs have no size field: exactly `size_of` bytes are copied in
//! (EFAULT when they cannot be) and, for `KVM_CREATE_DEVICE`, back out.
//!
//! `KVM_CREATE_DEVICE` arrives on a VM fd, which is not ours: the front end
//! recognises the one call we answer (type `KVM_DEV_TYPE_VFIO`, see
//! [`is_vfio_create_device`]), says which VM it came on, and calls
//! [`create_device`]. Every other call on a VM fd is the kernel's.
//!
//! On the device fd: `KVM_SET_DEVICE_ATTR` adds or deletes a VFIO file (group
//! [`KVM_DEV_VFIO_FILE`], the fd an `s32` at `addr`), `KVM_HAS_DEVICE_ATTR`
//! answers for the two attributes, and `KVM_GET_DEVICE_ATTR` is EPERM (the
//! device has no readable attributes), before the argument is read. Anything
//! else is ENOTTY.

use super::{Env, File, Trace};
use crate::kvm::{Kvm, KvmVfio, VfioFile};
use crate::mem::{AddressSpace, Process};
use softiommu_uapi::kvm::*;
use softiommu_uapi::Errno;
use std::sync::Arc;
use zerocopy::{FromBytes, IntoBytes};

/// The ioctls of a kvm-vfio device file (and the VM's one we answer), with
/// their names.
pub static KVM_IOCTLS: &[(u32, &str)] = &[
    (KVM_CREATE_DEVICE, "KVM_CREATE_DEVICE"),
    (KVM_SET_DEVICE_ATTR, "KVM_SET_DEVICE_ATTR"),
    (KVM_GET_DEVICE_ATTR, "KVM_GET_DEVICE_ATTR"),
    (KVM_HAS_DEVICE_ATTR, "KVM_HAS_DEVICE_ATTR"),
];

impl VfioFile for File {
    /// A VFIO file's answer; any other file counts as coherent, as in the
    /// kernel (the abi layer never adds one).
    fn enforced_coherent(&self) -> bool {
        self.vfio_enforced_coherent().unwrap_or(true)
    }
}

fn read<T: FromBytes + IntoBytes + Default>(mem: &dyn AddressSpace, at: u64) -> Result<T, Errno> {
    let mut v = T::default();
    mem.read(at, v.as_mut_bytes()).map_err(|_| Errno::EFAULT)?;
    Ok(v)
}

/// Whether `request` with the bytes of its argument `head` (the first
/// [`kvm_create_device`], or fewer when they could not be read) is the one
/// VM ioctl we answer: `KVM_CREATE_DEVICE` of type `KVM_DEV_TYPE_VFIO`. The
/// front end asks this on any fd, so that every other call goes on to the
/// kernel untouched.
pub fn is_vfio_create_device(request: u32, head: &[u8]) -> bool {
    request == KVM_CREATE_DEVICE
        && head
            .get(..4)
            .and_then(|b| b.try_into().ok())
            .map(u32::from_ne_bytes)
            == Some(KVM_DEV_TYPE_VFIO)
}

/// `KVM_CREATE_DEVICE` of type VFIO with argument `arg` in `process`'s memory,
/// on the VM that `vm` finds or makes (called only when a device is to be
/// made). With `KVM_CREATE_DEVICE_TEST` nothing is made and the answer is 0;
/// otherwise the device is installed through `env` (EBUSY while the VM has
/// one) and its fd written to the argument's `fd`. ENODEV for another type
/// (the front end sends those to the kernel instead).
pub fn create_device(
    env: &dyn Env,
    process: &Arc<Process>,
    arg: u64,
    vm: impl FnOnce() -> Result<Arc<Kvm>, Errno>,
    trace: Option<&mut Trace>,
) -> Result<i32, Errno> {
    let mem = &*process.space;
    let input = trace
        .is_some()
        .then(|| read::<kvm_create_device>(mem, arg).ok())
        .flatten();
    let r = (|| {
        let mut cd: kvm_create_device = read(mem, arg)?;
        if cd.type_ != KVM_DEV_TYPE_VFIO {
            return Err(Errno::ENODEV);
        }
        if cd.flags & KVM_CREATE_DEVICE_TEST != 0 {
            return Ok((0, None));
        }
        let dev = vm()?.create_vfio_device()?;
        let fd = env.install(File::Kvm(dev, process.clone()))?;
        cd.fd = fd as u32;
        // As the kernel: the fd stays installed when the answer cannot be
        // written.
        mem.write(arg, cd.as_bytes()).map_err(|_| Errno::EFAULT)?;
        Ok((0, Some(cd)))
    })();
    if let Some(t) = trace {
        t.name = "KVM_CREATE_DEVICE".into();
        if let Some(cd) = input {
            t.input = format!("{cd:?}");
        }
        if let Ok((_, Some(cd))) = &r {
            t.output = format!("{cd:?}");
        }
    }
    r.map(|(v, _)| v)
}

pub(super) fn ioctl(
    env: &dyn Env,
    mem: &dyn AddressSpace,
    dev: &KvmVfio,
    cmd: u32,
    arg: u64,
    trace: Option<&mut Trace>,
) -> Result<i32, Errno> {
    let name = match KVM_IOCTLS.iter().find(|(c, _)| *c == cmd) {
        Some((_, n)) if cmd != KVM_CREATE_DEVICE => *n,
        _ => return Err(Errno::ENOTTY),
    };
    if let Some(t) = trace {
        t.name = name.into();
        if let Ok(a) = read::<kvm_device_attr>(mem, arg) {
            t.input = format!("{a:?}");
        }
    }
    // The device has no get_attr: EPERM before the argument is read.
    if cmd == KVM_GET_DEVICE_ATTR {
        return Err(Errno::EPERM);
    }
    let attr: kvm_device_attr = read(mem, arg)?;
    if cmd == KVM_SET_DEVICE_ATTR {
        set_attr(env, mem, dev, &attr)?;
    } else {
        has_attr(&attr)?;
    }
    Ok(0)
}

fn has_attr(attr: &kvm_device_attr) -> Result<(), Errno> {
    match (attr.group, attr.attr) {
        (KVM_DEV_VFIO_FILE, KVM_DEV_VFIO_FILE_ADD | KVM_DEV_VFIO_FILE_DEL) => Ok(()),
        _ => Err(Errno::ENXIO),
    }
}

fn set_attr(
    env: &dyn Env,
    mem: &dyn AddressSpace,
    dev: &KvmVfio,
    attr: &kvm_device_attr,
) -> Result<(), Errno> {
    if attr.group != KVM_DEV_VFIO_FILE {
        return Err(Errno::ENXIO);
    }
    let add = match attr.attr {
        KVM_DEV_VFIO_FILE_ADD => true,
        KVM_DEV_VFIO_FILE_DEL => false,
        _ => return Err(Errno::ENXIO),
    };
    let fd: i32 = read(mem, attr.addr)?;
    let file: Arc<dyn VfioFile> = match env.file(fd) {
        Some(f) if add && f.vfio_enforced_coherent().is_none() => return Err(Errno::EINVAL),
        Some(f) => f,
        // Deleting a file that is not ours: it cannot have been added.
        None if !add && env.is_open(fd) => return Err(Errno::ENOENT),
        None if env.is_open(fd) => return Err(Errno::EINVAL),
        None => return Err(Errno::EBADF),
    };
    if add {
        dev.file_add(file)?;
    } else {
        dev.file_del(&file)?;
    }
    Ok(())
}
