//! The uAPI boundary: ioctls on virtual files, decoded and answered to the byte.
//!
//! A front end (the `LD_PRELOAD` interposer, a test) hands each call on one of our
//! files to [`ioctl`] with the raw command number and argument pointer. This module
//! reads the argument struct out of the caller's memory, applies the kernel's
//! extensible-struct rules, calls the typed API, and writes the answer back:
//!
//! - the first `u32` of the argument is its size; a size below the command's
//!   minimum (`offsetofend` of its last original field) is EINVAL;
//! - a shorter size than ours is zero-extended; bytes past ours must be zero, or
//!   E2BIG;
//! - output is copied back, `min(user size, our size)` bytes, only on success
//!   (except where the kernel copies before failing, e.g. EMSGSIZE);
//! - an unknown command number is ENOTTY; numbers below iommufd's range go to
//!   VFIO's type1 container ioctls, which have their own `argsz` rules;
//! - every user pointer is read and written through the caller's
//!   [`crate::mem::AddressSpace`], so a bad pointer is EFAULT, never a fault in our
//!   code.
//!
//! Files are [`File`]s; the front end keeps the table from descriptors to files
//! (keyed by open file description, so `dup` shares one) and gives this module an
//! [`Env`] to install new descriptors (the selftest's access fds) and to look
//! descriptors up.
//!
//! The kvm-vfio device's file ([`File::Kvm`]) is made by [`kvm::create_device`],
//! which the front end calls for the one VM ioctl it recognises on any fd.
//!
//! A fault queue's file also has [`read()`] and [`write()`], with the kernel's
//! whole-record rules; its readiness for `poll` is the front end's to show,
//! through [`FaultHandle::set_readiness`].

mod iommufd;
pub mod kvm;
mod vfio;
mod vfio_device;
mod vfio_group;

use crate::error::Error;
use crate::iommufd::{AccessHandle, FaultHandle, Iommufd};
use crate::kvm::KvmVfio;
use crate::mem::{AddressSpace, FileSource, Process};
use crate::vfio::{DeviceFile, EventFd, GroupFile};
use softiommu_uapi::iommufd::{iommu_hwpt_page_response, iommu_hwpt_pgfault};
use softiommu_uapi::Errno;
use std::sync::Arc;
use zerocopy::{FromBytes, Immutable, IntoBytes};

pub use iommufd::{command_name, IOCTLS};
pub use vfio::VFIO_IOCTLS;
pub use vfio_device::VFIO_DEVICE_IOCTLS;
pub use vfio_group::VFIO_GROUP_IOCTLS;

/// A file softiommu answers for.
#[derive(Debug)]
pub enum File {
    /// An open `/dev/iommu`.
    Iommufd(Iommufd),
    /// A selftest access (`IOMMU_TEST_OP_CREATE_ACCESS`'s fd).
    Access(AccessHandle),
    /// A fault queue (`IOMMU_FAULT_QUEUE_ALLOC`'s fd).
    Fault(FaultHandle),
    /// A VFIO device (`/dev/vfio/devices/vfioN`, or a group's device fd),
    /// with the process whose memory its ioctls read.
    VfioDevice(DeviceFile, Arc<Process>),
    /// A kvm-vfio device (`KVM_CREATE_DEVICE`'s fd, see [`kvm`]), with the
    /// process whose memory its ioctls read.
    Kvm(KvmVfio, Arc<Process>),
    /// A VFIO group (`/dev/vfio/<N>`), with the process whose memory its
    /// ioctls read.
    VfioGroup(GroupFile, Arc<Process>),
}

impl File {
    /// `Some(coherent)` for a VFIO file (a group or a device): whether every
    /// device behind it has its DMA forced cache coherent by its IOMMU (see
    /// [`crate::kvm::VfioFile`]); `None` for any other file. What the
    /// kvm-vfio device accepts and tracks.
    pub fn vfio_enforced_coherent(&self) -> Option<bool> {
        match self {
            File::VfioDevice(dev, _) => Some(crate::kvm::VfioFile::enforced_coherent(dev)),
            File::VfioGroup(group, _) => Some(crate::kvm::VfioFile::enforced_coherent(group)),
            File::Iommufd(_) | File::Access(_) | File::Fault(_) | File::Kvm(..) => None,
        }
    }
}

/// What the boundary needs from the front end.
pub trait Env {
    /// Installs `file` as a new close-on-exec descriptor; returns its number.
    fn install(&self, file: File) -> Result<i32, Errno>;

    /// The file behind descriptor `fd`, if it is one of ours.
    fn file(&self, fd: i32) -> Option<Arc<File>>;

    /// Whether `fd` is an open descriptor at all (ours or not).
    fn is_open(&self, fd: i32) -> bool;

    /// The eventfd behind descriptor `fd`, held until dropped: EBADF if `fd`
    /// is not open, EINVAL if it is not an eventfd.
    fn eventfd(&self, fd: i32) -> Result<Arc<dyn EventFd>, Errno>;

    /// The real file behind descriptor `fd`, to be pinned by offset
    /// (`IOMMU_IOAS_MAP_FILE`); EBADF if it is not open.
    fn map_file(&self, fd: i32) -> Result<Arc<dyn FileSource>, Errno>;
}

/// One decoded call, for `--trace`.
#[derive(Debug, Clone, Default)]
pub struct Trace {
    /// The command's name (`IOMMU_IOAS_MAP`), or its number in hex.
    pub name: String,
    /// The argument as read, decoded.
    pub input: String,
    /// The argument as written back, decoded (empty when nothing was written).
    pub output: String,
}

impl From<Error> for Errno {
    fn from(e: Error) -> Errno {
        e.errno()
    }
}

/// An ioctl in flight: the caller's memory, the argument pointer and the size the
/// caller gave.
pub(crate) struct Ucmd<'a> {
    pub mem: &'a dyn AddressSpace,
    pub arg: u64,
    pub user_size: u32,
}

impl Ucmd<'_> {
    /// Reads the argument as `T` under the extensible-struct rules.
    pub fn read<T: FromBytes + IntoBytes + Default>(&self, min_size: usize) -> Result<T, Errno> {
        let user_size = self.user_size as usize;
        if user_size < min_size {
            return Err(Errno::EINVAL);
        }
        let ksize = std::mem::size_of::<T>();
        if user_size > ksize {
            let mut tail = [0u8; 256];
            let mut at = ksize;
            while at < user_size {
                let n = (user_size - at).min(tail.len());
                self.mem
                    .read(self.arg + at as u64, &mut tail[..n])
                    .map_err(|_| Errno::EFAULT)?;
                if tail[..n].iter().any(|b| *b != 0) {
                    return Err(Errno::E2BIG);
                }
                at += n;
            }
        }
        let mut cmd = T::default();
        let n = user_size.min(ksize);
        self.mem
            .read(self.arg, &mut cmd.as_mut_bytes()[..n])
            .map_err(|_| Errno::EFAULT)?;
        Ok(cmd)
    }

    /// Writes `cmd` back: as many bytes as both sides know.
    pub fn respond<T: IntoBytes + Immutable>(&self, cmd: &T) -> Result<(), Errno> {
        let n = (self.user_size as usize).min(std::mem::size_of::<T>());
        self.mem
            .write(self.arg, &cmd.as_bytes()[..n])
            .map_err(|_| Errno::EFAULT)
    }
}

/// Runs the ioctl `cmd` with argument pointer `arg` on `file`. Returns the
/// ioctl's non-negative result or the errno. `trace`, when given, receives the
/// decoded call.
pub fn ioctl(
    env: &dyn Env,
    file: &File,
    cmd: u32,
    arg: u64,
    trace: Option<&mut Trace>,
) -> Result<i32, Errno> {
    match file {
        File::Iommufd(ctx) => iommufd::ioctl(env, ctx, cmd, arg, trace),
        File::VfioDevice(dev, process) => {
            vfio_device::ioctl(env, &*process.space, dev, cmd, arg, trace)
        }
        File::Kvm(dev, process) => kvm::ioctl(env, &*process.space, dev, cmd, arg, trace),
        File::VfioGroup(group, process) => vfio_group::ioctl(env, process, group, cmd, arg, trace),
        // The selftest's access fd and the fault fd have no ioctls.
        File::Access(_) | File::Fault(_) => Err(Errno::ENOTTY),
    }
}

/// `pread` of `count` bytes at `pos` into the caller's `buf`: a VFIO device
/// region (see [`crate::vfio`]); EINVAL on other files (`read` is theirs).
/// EFAULT when the buffer cannot be written.
pub fn pread(file: &File, buf: u64, count: usize, pos: u64) -> Result<usize, Errno> {
    let File::VfioDevice(dev, process) = file else {
        return Err(Errno::EINVAL);
    };
    let mut bytes = vec![0u8; count.min(REGION_IO_MAX)];
    let n = dev.read(pos, &mut bytes)?;
    process
        .space
        .write(buf, &bytes[..n])
        .map_err(|_| Errno::EFAULT)?;
    Ok(n)
}

/// `pwrite` of `count` bytes at `pos` from the caller's `buf` to a VFIO
/// device region; EINVAL on other files.
pub fn pwrite(file: &File, buf: u64, count: usize, pos: u64) -> Result<usize, Errno> {
    let File::VfioDevice(dev, process) = file else {
        return Err(Errno::EINVAL);
    };
    let mut bytes = vec![0u8; count.min(REGION_IO_MAX)];
    process
        .space
        .read(buf, &mut bytes)
        .map_err(|_| Errno::EFAULT)?;
    Ok(dev.write(pos, &bytes)?)
}

/// Most bytes one region access moves (the rest is a short count).
const REGION_IO_MAX: usize = 1 << 20;

/// `read` of `count` bytes into the caller's `buf` on `file`: whole
/// `iommu_hwpt_pgfault` records from a fault queue, as many as fit and are
/// queued (0 when none is). ESPIPE for a count that is not a whole number of
/// records; EFAULT when not even the first record could be written. Files
/// without a read give EINVAL.
pub fn read(file: &File, buf: u64, count: usize) -> Result<usize, Errno> {
    let File::Fault(handle) = file else {
        return Err(Errno::EINVAL);
    };
    let size = std::mem::size_of::<iommu_hwpt_pgfault>();
    if !count.is_multiple_of(size) {
        return Err(Errno::ESPIPE);
    }
    let space = handle.context().process().space.clone();
    let mut at = buf;
    let n = handle.read::<Errno>(count / size, &mut |rec| {
        space.write(at, rec.as_bytes()).map_err(|_| Errno::EFAULT)?;
        at = at.wrapping_add(size as u64);
        Ok(())
    })?;
    Ok(n * size)
}

/// `write` of `count` bytes from the caller's `buf` to `file`: whole
/// `iommu_hwpt_page_response` records answering requests read from a fault
/// queue, in order. ESPIPE for a count that is not a whole number of records;
/// the first record that fails (EFAULT, or EINVAL for an unknown cookie or
/// code) ends the write, which then returns the bytes done, or that error if
/// none. Files without a write give EINVAL.
pub fn write(file: &File, buf: u64, count: usize) -> Result<usize, Errno> {
    let File::Fault(handle) = file else {
        return Err(Errno::EINVAL);
    };
    let size = std::mem::size_of::<iommu_hwpt_page_response>();
    if !count.is_multiple_of(size) {
        return Err(Errno::ESPIPE);
    }
    let space = handle.context().process().space.clone();
    let mut done = 0;
    while done < count {
        let mut r = iommu_hwpt_page_response::default();
        let step = space
            .read(buf.wrapping_add(done as u64), r.as_mut_bytes())
            .map_err(|_| Errno::EFAULT)
            .and_then(|()| Ok(handle.respond(r.cookie, r.code)?));
        if let Err(e) = step {
            return if done == 0 { Err(e) } else { Ok(done) };
        }
        done += size;
    }
    Ok(done)
}
