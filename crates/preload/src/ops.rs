//! What each interposed call does once it is known to concern one of our fds or
//! paths. Every function here runs with the re-entry flag set and under
//! `catch_unwind` (see `ffi`), and answers `Ok(value)` or `Err(errno)`.

use crate::machine;
use crate::path::Ours;
use crate::process;
use crate::real::{self, OpenKind};
use crate::safecopy;
use crate::sysfs::{self, Attr};
use crate::table::{self, Desc, Kind};
use crate::trace::{self, Dirfd, OpenFlags, Ret};
use softiommu::abi::{self, Env, File, Trace};
use softiommu::iommufd::Iommufd;
use softiommu::kvm::Kvm;
use softiommu::mem::process::ProcessFile;
use softiommu::mem::FileSource;
use softiommu::uapi::Errno;
use softiommu::vfio::EventFd;
use std::sync::{Arc, Mutex, PoisonError, Weak};

/// The front end's side of the boundary: our fd table.
struct PreloadEnv;

impl Env for PreloadEnv {
    fn install(&self, file: File) -> Result<i32, Errno> {
        let (fd, key) = if let File::Fault(handle) = &file {
            // Pollable: readable exactly while faults are queued.
            let (fd, key, readiness) = real::pollable_fd(true)?;
            handle.set_readiness(Box::new(move |ready| readiness.set(ready)));
            (fd, key)
        } else if let File::Kvm(..) = &file {
            real::backing_fd(c"softiommu:kvm-vfio", true)?
        } else if let File::VfioDevice(..) = &file {
            real::backing_fd(c"softiommu:vfio-device", true)?
        } else {
            real::backing_fd(c"softiommu:access", true)?
        };
        let desc = Arc::new(Desc {
            key,
            readable: true,
            writable: true,
            kind: Kind::Core(Arc::new(file)),
        });
        table::write().insert(fd, desc);
        Ok(fd)
    }

    fn file(&self, fd: i32) -> Option<Arc<File>> {
        table::lookup(fd).and_then(|d| d.core().cloned())
    }

    fn is_open(&self, fd: i32) -> bool {
        real::fcntl_int(fd, libc::F_GETFD, 0) >= 0
    }

    fn eventfd(&self, fd: i32) -> Result<Arc<dyn EventFd>, Errno> {
        let link = std::fs::read_link(format!("/proc/self/fd/{fd}")).map_err(|_| Errno::EBADF)?;
        if fd < 0 || link.as_os_str() != "anon_inode:[eventfd]" {
            return Err(Errno::EINVAL);
        }
        let dup = real::fcntl_int(fd, libc::F_DUPFD_CLOEXEC, 1000);
        if dup < 0 {
            return Err(last_errno());
        }
        match real::file_key(dup) {
            Ok(key) => Ok(Arc::new(HeldEventFd { fd: dup, key })),
            Err(e) => {
                real::close(dup);
                Err(e)
            }
        }
    }

    fn map_file(&self, fd: i32) -> Result<Arc<dyn FileSource>, Errno> {
        match ProcessFile::from_fd(fd) {
            Ok(f) => Ok(f),
            Err(e) => Err(e.errno()),
        }
    }
}

/// Our duplicate of an eventfd the program handed over, kept out of the way
/// of its numbering. Before each signal we check the number still holds an
/// eventfd (the program could close it behind our back), so a signal never
/// lands in one of the program's other files.
#[derive(Debug)]
struct HeldEventFd {
    fd: i32,
    key: (u64, u64),
}

impl EventFd for HeldEventFd {
    fn signal(&self) {
        if real::file_key(self.fd).ok() == Some(self.key) {
            real::write_all(self.fd, &1u64.to_ne_bytes());
        }
    }
}

impl Drop for HeldEventFd {
    fn drop(&mut self) {
        if real::file_key(self.fd).ok() == Some(self.key) {
            real::close(self.fd);
        }
    }
}

fn last_errno() -> Errno {
    Errno(real::errno())
}

/// The trace line of an open of ours.
fn trace_open(kind: OpenKind, dirfd: i32, path: &[u8], flags: i32, r: &Result<i32, Errno>) {
    if !trace::enabled() {
        return;
    }
    let path = String::from_utf8_lossy(path);
    let flags = OpenFlags(flags);
    let r = Ret(r);
    if kind.has_dirfd() {
        trace::line(format_args!(
            "{}({}, {path:?}, {flags}) {r}",
            kind.name(),
            Dirfd(dirfd)
        ));
    } else {
        trace::line(format_args!("{}({path:?}, {flags}) {r}", kind.name()));
    }
}

/// Opens one of our paths.
pub fn open(kind: OpenKind, dirfd: i32, path: &[u8], flags: i32, ours: Ours) -> Result<i32, Errno> {
    let _gate = table::gate();
    let r = open_inner(flags, ours);
    trace_open(kind, dirfd, path, flags, &r);
    r
}

fn open_inner(flags: i32, ours: Ours) -> Result<i32, Errno> {
    if flags & libc::O_DIRECTORY != 0 {
        return Err(Errno::ENOTDIR);
    }
    if flags & (libc::O_CREAT | libc::O_EXCL) == libc::O_CREAT | libc::O_EXCL {
        return Err(Errno::EEXIST);
    }
    table::init();
    let (file, name) = match ours {
        Ours::Iommu | Ours::VfioContainer => (
            File::Iommufd(Iommufd::open(&process::get())),
            c"softiommu:iommufd",
        ),
        Ours::VfioDevice(n) => (
            File::VfioDevice(machine::vfio()?.open_cdev(n)?, process::get()),
            c"softiommu:vfio-device",
        ),
        Ours::VfioGroup(n) => (
            File::VfioGroup(machine::vfio()?.open_group(n)?, process::get()),
            c"softiommu:vfio-group",
        ),
    };
    let (fd, key) = real::backing_fd(name, flags & libc::O_CLOEXEC != 0)?;
    if flags & libc::O_NONBLOCK != 0 {
        // Only so that F_GETFL shows what the program asked for.
        let _ = real::fcntl_int(fd, libc::F_SETFL, libc::O_NONBLOCK);
    }
    let access = flags & libc::O_ACCMODE;
    let desc = Arc::new(Desc {
        key,
        readable: access == libc::O_RDONLY || access == libc::O_RDWR,
        writable: access == libc::O_WRONLY || access == libc::O_RDWR,
        kind: Kind::Core(Arc::new(file)),
    });
    table::write().insert(fd, desc);
    Ok(fd)
}

/// Opens a writable sysfs attribute of ours (see `sysfs`): EACCES for a
/// direction the attribute lacks, as kernfs answers.
pub fn open_sysfs(
    kind: OpenKind,
    dirfd: i32,
    path: &[u8],
    flags: i32,
    attr: Attr,
) -> Result<i32, Errno> {
    let _gate = table::gate();
    let r = open_sysfs_inner(flags, attr);
    trace_open(kind, dirfd, path, flags, &r);
    r
}

fn open_sysfs_inner(flags: i32, attr: Attr) -> Result<i32, Errno> {
    if flags & libc::O_DIRECTORY != 0 {
        return Err(Errno::ENOTDIR);
    }
    if flags & (libc::O_CREAT | libc::O_EXCL) == libc::O_CREAT | libc::O_EXCL {
        return Err(Errno::EEXIST);
    }
    let access = flags & libc::O_ACCMODE;
    let readable = access == libc::O_RDONLY || access == libc::O_RDWR;
    let writable = access == libc::O_WRONLY || access == libc::O_RDWR;
    if readable && !attr.readable() {
        return Err(Errno::EACCES);
    }
    table::init();
    let (fd, key) = real::backing_fd(c"softiommu:sysfs", flags & libc::O_CLOEXEC != 0)?;
    let desc = Arc::new(Desc {
        key,
        readable,
        writable,
        kind: Kind::Sysfs(attr),
    });
    table::write().insert(fd, desc);
    Ok(fd)
}

/// `ioctl` on one of our fds.
pub fn ioctl(fd: i32, desc: &Desc, request: u64, arg: u64) -> Result<i32, Errno> {
    let _gate = table::gate();
    // The kernel takes the command as an unsigned int.
    let cmd = request as u32;
    let Some(file) = desc.core() else {
        // sysfs attributes have no ioctls.
        return Err(Errno::ENOTTY);
    };
    if !trace::enabled() {
        return abi::ioctl(&PreloadEnv, file, cmd, arg, None);
    }
    let mut t = Trace::default();
    let r = abi::ioctl(&PreloadEnv, file, cmd, arg, Some(&mut t));
    let name = if t.name.is_empty() {
        format!("{cmd:#x}")
    } else {
        t.name
    };
    let input = if t.input.is_empty() {
        format!("{arg:#x}")
    } else {
        trace::strip_type(&t.input).to_string()
    };
    if t.output.is_empty() {
        trace::line(format_args!("ioctl({fd}, {name}, {input}) {}", Ret(&r)));
    } else {
        trace::line(format_args!(
            "ioctl({fd}, {name}, {input}) {} => {}",
            Ret(&r),
            trace::strip_type(&t.output)
        ));
    }
    r
}

/// `close` of one of our fds: forgets it, then closes the backing fd; the
/// description (and with its last fd the context) goes after the lock.
pub fn close(fd: i32) -> Result<i32, Errno> {
    let _gate = table::gate();
    let (r, desc) = {
        let mut t = table::write();
        let desc = t.remove(fd);
        let r = real::close(fd);
        (if r < 0 { Err(last_errno()) } else { Ok(r) }, desc)
    };
    drop(desc);
    trace::line(format_args!("close({fd}) {}", Ret(&r)));
    r
}

/// `dup`, `fcntl(F_DUPFD*)` of one of our fds: the new fd shares the
/// description. `dupfd` is `None` for `dup`, `Some((cmd, min))` for fcntl.
pub fn dup(fd: i32, dupfd: Option<(i32, i32)>) -> Result<i32, Errno> {
    let _gate = table::gate();
    let r = {
        let mut t = table::write();
        let n = match dupfd {
            None => real::dup(fd),
            Some((cmd, min)) => real::fcntl_int(fd, cmd, min),
        };
        if n < 0 {
            Err(last_errno())
        } else {
            if let Some(d) = t.get(fd) {
                t.insert(n, d);
            }
            Ok(n)
        }
    };
    if trace::enabled() {
        match dupfd {
            None => trace::line(format_args!("dup({fd}) {}", Ret(&r))),
            Some((cmd, min)) => {
                let cmd = if cmd == libc::F_DUPFD_CLOEXEC {
                    "F_DUPFD_CLOEXEC"
                } else {
                    "F_DUPFD"
                };
                trace::line(format_args!("fcntl({fd}, {cmd}, {min}) {}", Ret(&r)));
            }
        }
    }
    r
}

/// `dup2`/`dup3` where `old` or `new` is ours: `new` leaves the table (its
/// description is dropped if that was its last fd) and takes `old`'s place.
pub fn dup2(old: i32, new: i32, flags: Option<i32>) -> Result<i32, Errno> {
    let _gate = table::gate();
    let (r, dropped) = {
        let mut t = table::write();
        let n = match flags {
            None => real::dup2(old, new),
            Some(flags) => real::dup3(old, new, flags),
        };
        if n < 0 {
            (Err(last_errno()), None)
        } else if old == new {
            (Ok(n), None)
        } else {
            let src = t.get(old);
            let dropped = t.remove(new);
            if let Some(src) = src {
                t.insert(new, src);
            }
            (Ok(n), dropped)
        }
    };
    drop(dropped);
    match flags {
        None => trace::line(format_args!("dup2({old}, {new}) {}", Ret(&r))),
        Some(f) => trace::line(format_args!("dup3({old}, {new}, {f:#x}) {}", Ret(&r))),
    }
    r
}

/// `read`/`write` on one of ours. The VFS answers EBADF when the file is not
/// open for that direction; then the file does: a fault queue reads and writes
/// records, a VFIO device its regions at the file position (which moves on),
/// the iommufd and access files have neither (EINVAL).
pub fn read_write(
    fd: i32,
    desc: &Desc,
    write: bool,
    buf: u64,
    count: usize,
) -> Result<isize, Errno> {
    let _gate = table::gate();
    let open_for_it = if write { desc.writable } else { desc.readable };
    let r = match &desc.kind {
        _ if !open_for_it => Err(Errno::EBADF),
        Kind::Sysfs(attr) => {
            // The backing memfd keeps the file position.
            let pos = real::lseek(fd, 0, libc::SEEK_CUR)?;
            let n = sysfs_rw(attr, write, buf, count, pos)?;
            real::lseek(fd, pos + n as u64, libc::SEEK_SET)?;
            Ok(n as isize)
        }
        Kind::Core(file) if matches!(**file, File::VfioDevice(..)) => {
            let pos = real::lseek(fd, 0, libc::SEEK_CUR)?;
            let n = region_rw(file, write, buf, count, pos)?;
            real::lseek(fd, pos + n as u64, libc::SEEK_SET)?;
            Ok(n as isize)
        }
        Kind::Core(file) if write => abi::write(file, buf, count).map(|n| n as isize),
        Kind::Core(file) => abi::read(file, buf, count).map(|n| n as isize),
    };
    let name = if write { "write" } else { "read" };
    trace::line(format_args!(
        "{name}({fd}, ..., {count}) {}",
        Ret(&r.map(|n| n as i32))
    ));
    r
}

fn region_rw(file: &File, write: bool, buf: u64, count: usize, pos: u64) -> Result<usize, Errno> {
    if write {
        abi::pwrite(file, buf, count, pos)
    } else {
        abi::pread(file, buf, count, pos)
    }
}

/// A read or write of a sysfs attribute at `pos`: a write is stored whole
/// (sysfs hands the attribute the buffer, wherever the position is); a read
/// shows the attribute's current text from `pos`.
fn sysfs_rw(attr: &Attr, write: bool, buf: u64, count: usize, pos: u64) -> Result<usize, Errno> {
    if write {
        return sysfs::store(attr, buf, count);
    }
    let text = sysfs::show(attr)?;
    let from = usize::try_from(pos).map_or(text.len(), |p| p.min(text.len()));
    let part = &text[from..];
    let n = part.len().min(count);
    if n > 0 && !safecopy::write(buf as usize, &part[..n]) {
        return Err(Errno::EFAULT);
    }
    Ok(n)
}

/// `pread`/`pwrite` on one of ours: EBADF when not open for that direction,
/// EINVAL for a negative position; then the file: a VFIO device's regions,
/// EINVAL for the others.
pub fn pread_write(
    fd: i32,
    desc: &Desc,
    write: bool,
    buf: u64,
    count: usize,
    pos: i64,
) -> Result<isize, Errno> {
    let _gate = table::gate();
    let open_for_it = if write { desc.writable } else { desc.readable };
    let r = if !open_for_it {
        Err(Errno::EBADF)
    } else if pos < 0 {
        Err(Errno::EINVAL)
    } else {
        match &desc.kind {
            Kind::Sysfs(attr) => sysfs_rw(attr, write, buf, count, pos as u64),
            Kind::Core(file) => region_rw(file, write, buf, count, pos as u64),
        }
        .map(|n| n as isize)
    };
    if trace::enabled() {
        let name = if write { "pwrite" } else { "pread" };
        trace::line(format_args!(
            "{name}({fd}, ..., {count}, {pos:#x}) {}",
            Ret(&r.map(|n| n as i32))
        ));
    }
    r
}

/// `mmap` of one of ours: the mode checks the kernel makes first, then ENODEV
/// (iommufd has no mmap in Linux 6.12; the access fd never had one).
pub fn mmap(fd: i32, desc: &Desc, len: usize, prot: i32, flags: i32) -> Result<(), Errno> {
    let r = if len == 0 {
        Err(Errno::EINVAL)
    } else if !desc.readable
        || (flags & libc::MAP_TYPE == libc::MAP_SHARED
            && prot & libc::PROT_WRITE != 0
            && !desc.writable)
    {
        Err(Errno::EACCES)
    } else {
        Err(Errno::ENODEV)
    };
    trace::line(format_args!(
        "mmap(..., {len}, {prot:#x}, {flags:#x}, {fd}, ...) {}",
        Ret(&r.map(|()| 0))
    ));
    r
}

/// `close_range` while we have fds: the kernel call and the table change under
/// the table lock.
pub fn close_range(first: u32, last: u32, flags: i32) -> Result<i32, Errno> {
    let _gate = table::gate();
    let (r, dropped) = {
        let mut t = table::write();
        let r = real::close_range(first, last, flags);
        if r < 0 {
            (Err(last_errno()), Vec::new())
        } else if flags as u32 & libc::CLOSE_RANGE_CLOEXEC != 0 {
            (Ok(r), Vec::new())
        } else {
            (Ok(r), t.remove_range(first, last))
        }
    };
    drop(dropped);
    r
}

/// `closefrom` while we have fds.
pub fn closefrom(lowfd: i32) -> Result<i32, Errno> {
    let _gate = table::gate();
    let dropped = {
        let mut t = table::write();
        if !real::closefrom(lowfd) {
            return Err(Errno::ENOSYS);
        }
        t.remove_range(lowfd.max(0) as u32, u32::MAX)
    };
    drop(dropped);
    Ok(0)
}

/// Whether `ioctl(fd, request, arg)` on a descriptor that is not ours is the
/// one VM call we answer: `KVM_CREATE_DEVICE` of type `KVM_DEV_TYPE_VFIO`. The
/// argument is read without trusting the pointer; no system call.
pub fn is_kvm_vfio_create(request: u32, arg: u64) -> bool {
    if request != softiommu::uapi::kvm::KVM_CREATE_DEVICE {
        return false;
    }
    let mut head = [0u8; 4];
    crate::safecopy::read(arg as usize, &mut head)
        && abi::kvm::is_vfio_create_device(request, &head)
}

/// A VM as we know it: our duplicate of the descriptor a `KVM_CREATE_DEVICE`
/// came on, which keeps its open file description alive while the VM's
/// kvm-vfio device lives (as the kernel's device holds its VM), and lets us
/// recognise the description behind another descriptor.
#[derive(Debug)]
struct VmAnchor {
    fd: i32,
    key: (u64, u64),
}

impl VmAnchor {
    /// Whether `fd` refers to this VM's open file description. Where the
    /// kernel cannot compare descriptions, the file's identity stands in.
    fn is(&self, fd: i32) -> bool {
        if real::file_key(self.fd).ok() != Some(self.key) {
            return false;
        }
        match real::same_description(fd, self.fd) {
            Some(same) => same,
            None => real::file_key(fd).ok() == Some(self.key),
        }
    }
}

impl Drop for VmAnchor {
    fn drop(&mut self) {
        if real::file_key(self.fd).ok() == Some(self.key) {
            real::close(self.fd);
        }
    }
}

/// The VMs that have a kvm-vfio device; each goes with its device.
static VMS: Mutex<Vec<Weak<Kvm>>> = Mutex::new(Vec::new());

/// The VM of the description behind `fd`: the one already known, or a new one.
fn vm_of(fd: i32) -> Result<Arc<Kvm>, Errno> {
    let mut vms = VMS.lock().unwrap_or_else(PoisonError::into_inner);
    vms.retain(|w| w.strong_count() > 0);
    let known = vms.iter().filter_map(Weak::upgrade).find(|kvm| {
        kvm.anchor()
            .and_then(|a| a.downcast_ref::<VmAnchor>())
            .is_some_and(|a| a.is(fd))
    });
    if let Some(kvm) = known {
        return Ok(kvm);
    }
    let held = real::fcntl_int(fd, libc::F_DUPFD_CLOEXEC, 1000);
    if held < 0 {
        return Err(last_errno());
    }
    let key = match real::file_key(held) {
        Ok(key) => key,
        Err(e) => {
            real::close(held);
            return Err(e);
        }
    };
    let kvm = Kvm::new();
    kvm.set_anchor(Box::new(VmAnchor { fd: held, key }));
    kvm.set_notify(Box::new(|registered| {
        let what = if registered {
            "registered"
        } else {
            "unregistered"
        };
        trace::line(format_args!("kvm-vfio: VM noncoherent DMA: {what}"));
    }));
    vms.push(Arc::downgrade(&kvm));
    Ok(kvm)
}

/// `KVM_CREATE_DEVICE` of type VFIO on `fd`, any descriptor (see
/// [`is_kvm_vfio_create`]): our kvm-vfio device for the VM that `fd`'s open
/// file description stands for.
pub fn kvm_create_device(fd: i32, arg: u64) -> Result<i32, Errno> {
    let _gate = table::gate();
    table::init();
    let process = process::get();
    let mut t = Trace::default();
    let tr = trace::enabled().then_some(&mut t);
    let r = abi::kvm::create_device(&PreloadEnv, &process, arg, || vm_of(fd), tr);
    if trace::enabled() {
        let input = trace::strip_type(&t.input);
        if t.output.is_empty() {
            trace::line(format_args!(
                "ioctl({fd}, KVM_CREATE_DEVICE, {input}) {}",
                Ret(&r)
            ));
        } else {
            trace::line(format_args!(
                "ioctl({fd}, KVM_CREATE_DEVICE, {input}) {} => {}",
                Ret(&r),
                trace::strip_type(&t.output)
            ));
        }
    }
    r
}
