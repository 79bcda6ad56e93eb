//! The exported entry points.
//!
//! Each one: if this thread is already inside the interposer, straight to libc;
//! if the fd (or path) is not ours, straight to libc, with no system call of our
//! own for an fd; otherwise into [`crate::ops`] through [`run`], which sets the
//! re-entry flag, catches panics and sets `errno` the way libc does. The variadic
//! ones (`open*`, `ioctl`, `fcntl*`) arrive from `variadic.c` as `softiommu_*`.
#![allow(unsafe_code)]

use crate::ops;
use crate::path;
use crate::real::{self, OpenKind};
use crate::safecopy;
use crate::sysfs::{self, Target};
use crate::table::{self, Desc};
use libc::{c_char, c_int, c_uint, c_ulong, c_void, off_t, size_t, ssize_t};
use softiommu::uapi::Errno;
use std::cell::Cell;
use std::ffi::CString;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;

thread_local! {
    /// Set while this thread runs interposer code.
    static BUSY: Cell<bool> = const { Cell::new(false) };
}

/// Whether this thread is inside the interposer (or past its thread-local
/// storage, at thread exit, where we stay out of the way).
fn reentered() -> bool {
    BUSY.try_with(Cell::get).unwrap_or(true)
}

/// The re-entry flag, cleared on drop (also when unwinding).
struct Busy;

impl Busy {
    fn enter() -> Busy {
        let _ = BUSY.try_with(|b| b.set(true));
        Busy
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        let _ = BUSY.try_with(|b| b.set(false));
    }
}

/// Runs `f` as the interposer: re-entry flag set, panics caught. Failure is
/// `fail` with `errno` set; success leaves `errno` as the program had it.
fn run<T>(fail: T, f: impl FnOnce() -> Result<T, Errno>) -> T {
    let saved = real::errno();
    let _busy = Busy::enter();
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(v)) => {
            real::set_errno(saved);
            v
        }
        Ok(Err(e)) => {
            real::set_errno(e.0);
            fail
        }
        Err(_) => {
            real::set_errno(libc::EIO);
            fail
        }
    }
}

/// Our description behind `fd`, if any; never panics, never a system call.
fn ours(fd: c_int) -> Option<Arc<Desc>> {
    catch_unwind(|| table::lookup(fd)).unwrap_or(None)
}

/// What an open of `path` would be: ours or not. Reads the path without
/// trusting the pointer; keeps the program's errno.
fn classify(
    kind: OpenKind,
    dirfd: c_int,
    path: *const c_char,
    flags: c_int,
) -> Option<(Vec<u8>, path::Ours)> {
    if path.is_null() || flags & libc::O_PATH != 0 {
        return None;
    }
    let saved = real::errno();
    let _busy = Busy::enter();
    let r = catch_unwind(|| {
        let bytes = safecopy::read_cstr(path)?;
        let dirfd = if kind.has_dirfd() {
            dirfd
        } else {
            libc::AT_FDCWD
        };
        let ours = path::classify(&bytes, || {
            let dir = if dirfd == libc::AT_FDCWD {
                std::env::current_dir().ok()?
            } else {
                std::fs::read_link(format!("/proc/self/fd/{dirfd}")).ok()?
            };
            Some(dir.into_os_string().into_encoded_bytes())
        })?;
        Some((bytes, ours))
    })
    .unwrap_or(None);
    real::set_errno(saved);
    r
}

/// Where a call on `path` goes when it names one of our sysfs paths (see
/// `sysfs`): `None` for libc. Reads the path without trusting the pointer;
/// keeps the program's errno. A path that starts neither `/sys/` nor `//`
/// costs at most five guarded byte reads.
fn sysfs_target(path: *const c_char, open: bool) -> Option<Target> {
    if path.is_null() || reentered() {
        return None;
    }
    let saved = real::errno();
    let _busy = Busy::enter();
    let r = catch_unwind(|| {
        // Byte by byte: a short path may end just before an unmapped page.
        for (i, want) in b"/sys/".iter().enumerate() {
            let mut b = [0u8; 1];
            if !safecopy::read(path as usize + i, &mut b)
                || (b[0] != *want && !(i == 1 && b[0] == b'/'))
            {
                return None;
            }
            if i == 1 && b[0] == b'/' {
                break;
            }
        }
        sysfs::lookup(&safecopy::read_cstr(path)?, open)
    })
    .unwrap_or(None);
    real::set_errno(saved);
    r
}

/// The path in our sysfs tree to use instead of `path`, if it is one of ours.
fn sysfs_tree(path: *const c_char) -> Option<CString> {
    match sysfs_target(path, false)? {
        Target::Tree(p) => Some(p),
        Target::Attr(_) => None,
    }
}

/// An open of a sysfs path of ours: a writable attribute becomes our
/// descriptor; anything else opens its file in the tree, read-only (sysfs
/// refuses writes to read-only attributes: EACCES, or the tree's ENOENT).
fn open_sysfs(
    kind: OpenKind,
    dirfd: c_int,
    path: *const c_char,
    flags: c_int,
    mode: c_uint,
    target: Target,
) -> c_int {
    match target {
        Target::Attr(attr) => run(-1, || {
            // The path again, for the trace (read without trusting it).
            let bytes = safecopy::read_cstr(path).unwrap_or_default();
            ops::open_sysfs(kind, dirfd, &bytes, flags, attr)
        }),
        Target::Tree(tree) => {
            let path_only = flags & libc::O_PATH != 0;
            let writes = flags & libc::O_ACCMODE != libc::O_RDONLY || flags & libc::O_TRUNC != 0;
            let mut flags = flags;
            if !path_only && (writes || flags & libc::O_CREAT != 0) {
                // The tree is ours to keep unchanged: sysfs creates nothing
                // and refuses writers of read-only attributes.
                // SAFETY: `tree` is a live NUL-terminated path; O_PATH opens
                // nothing for reading or writing.
                let probe = unsafe {
                    real::open(
                        OpenKind::Open,
                        libc::AT_FDCWD,
                        tree.as_ptr(),
                        libc::O_PATH | libc::O_CLOEXEC,
                        0,
                    )
                };
                if probe < 0 {
                    if real::errno() == libc::ENOENT && flags & libc::O_CREAT != 0 {
                        real::set_errno(libc::EACCES);
                    }
                    return -1;
                }
                real::close(probe);
                let excl = flags & libc::O_EXCL != 0;
                if writes || excl {
                    real::set_errno(if excl { libc::EEXIST } else { libc::EACCES });
                    return -1;
                }
                flags &= !libc::O_CREAT;
            }
            // SAFETY: the program's flags and mode, with a live path of ours
            // in place of its path (absolute, so the dirfd is unused).
            unsafe { real::open(kind, dirfd, tree.as_ptr(), flags, mode) }
        }
    }
}

/// `open`, `open64`, `openat`, `openat64` (from variadic.c).
///
/// # Safety
/// Called by libc-using code with libc's contract for these functions.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn softiommu_openat(
    dirfd: c_int,
    path: *const c_char,
    flags: c_int,
    mode: c_uint,
    which: c_int,
) -> c_int {
    let kind = OpenKind::from_c(which);
    if !reentered() {
        if let Some((bytes, ours)) = classify(kind, dirfd, path, flags) {
            return run(-1, || ops::open(kind, dirfd, &bytes, flags, ours));
        }
        if let Some(target) = sysfs_target(path, flags & libc::O_PATH == 0) {
            return open_sysfs(kind, dirfd, path, flags, mode, target);
        }
    }
    // SAFETY: the program's own arguments, passed to the function it called.
    unsafe { real::open(kind, dirfd, path, flags, mode) }
}

/// Fortified `open`.
///
/// # Safety
/// libc's contract for `__open_2`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn __open_2(path: *const c_char, flags: c_int) -> c_int {
    // SAFETY: forwarded with the same contract.
    unsafe { softiommu_openat(libc::AT_FDCWD, path, flags, 0, OpenKind::Open2 as c_int) }
}

/// Fortified `open64`.
///
/// # Safety
/// libc's contract for `__open64_2`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn __open64_2(path: *const c_char, flags: c_int) -> c_int {
    // SAFETY: forwarded with the same contract.
    unsafe { softiommu_openat(libc::AT_FDCWD, path, flags, 0, OpenKind::Open64_2 as c_int) }
}

/// Fortified `openat`.
///
/// # Safety
/// libc's contract for `__openat_2`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn __openat_2(dirfd: c_int, path: *const c_char, flags: c_int) -> c_int {
    // SAFETY: forwarded with the same contract.
    unsafe { softiommu_openat(dirfd, path, flags, 0, OpenKind::Openat2 as c_int) }
}

/// Fortified `openat64`.
///
/// # Safety
/// libc's contract for `__openat64_2`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn __openat64_2(dirfd: c_int, path: *const c_char, flags: c_int) -> c_int {
    // SAFETY: forwarded with the same contract.
    unsafe { softiommu_openat(dirfd, path, flags, 0, OpenKind::Openat64_2 as c_int) }
}

/// `ioctl` (from variadic.c).
///
/// # Safety
/// libc's contract for `ioctl`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn softiommu_ioctl(fd: c_int, request: c_ulong, arg: *mut c_void) -> c_int {
    if !reentered() {
        if let Some(desc) = ours(fd) {
            return run(-1, || ops::ioctl(fd, &desc, request, arg as u64));
        }
        // The kernel takes the command as an unsigned int. One comparison
        // for every other call; the argument is read only for this command.
        if catch_unwind(|| ops::is_kvm_vfio_create(request as u32, arg as u64)).unwrap_or(false) {
            return run(-1, || ops::kvm_create_device(fd, arg as u64));
        }
    }
    // SAFETY: the program's own arguments, passed to the function it called.
    unsafe { real::ioctl(fd, request, arg) }
}

/// `fcntl`, `fcntl64` (from variadic.c): F_DUPFD and F_DUPFD_CLOEXEC of our fds
/// make our fds; everything else is the backing fd's business.
///
/// # Safety
/// libc's contract for `fcntl`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn softiommu_fcntl(
    fd: c_int,
    cmd: c_int,
    arg: c_ulong,
    which: c_int,
) -> c_int {
    if !reentered() && (cmd == libc::F_DUPFD || cmd == libc::F_DUPFD_CLOEXEC) && ours(fd).is_some()
    {
        // The argument of F_DUPFD is an int.
        return run(-1, || ops::dup(fd, Some((cmd, arg as c_int))));
    }
    // SAFETY: the program's own arguments, passed to the function it called.
    unsafe { real::fcntl(fd, cmd, arg, which != 0) }
}

/// `close`.
///
/// # Safety
/// libc's contract for `close`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn close(fd: c_int) -> c_int {
    if !reentered() && ours(fd).is_some() {
        return run(-1, || ops::close(fd));
    }
    real::close(fd)
}

/// `dup`.
///
/// # Safety
/// libc's contract for `dup`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn dup(fd: c_int) -> c_int {
    if !reentered() && ours(fd).is_some() {
        return run(-1, || ops::dup(fd, None));
    }
    real::dup(fd)
}

/// `dup2`.
///
/// # Safety
/// libc's contract for `dup2`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn dup2(old: c_int, new: c_int) -> c_int {
    if !reentered() && (ours(old).is_some() || ours(new).is_some()) {
        return run(-1, || ops::dup2(old, new, None));
    }
    real::dup2(old, new)
}

/// `dup3`.
///
/// # Safety
/// libc's contract for `dup3`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn dup3(old: c_int, new: c_int, flags: c_int) -> c_int {
    if !reentered() && (ours(old).is_some() || ours(new).is_some()) {
        return run(-1, || ops::dup2(old, new, Some(flags)));
    }
    real::dup3(old, new, flags)
}

/// `read`.
///
/// # Safety
/// libc's contract for `read`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn read(fd: c_int, buf: *mut c_void, count: size_t) -> ssize_t {
    if !reentered() {
        if let Some(desc) = ours(fd) {
            return run(-1, || ops::read_write(fd, &desc, false, buf as u64, count));
        }
    }
    // SAFETY: the program's own arguments, passed to the function it called.
    unsafe { real::read(fd, buf, count) }
}

/// Fortified `read`.
///
/// # Safety
/// libc's contract for `__read_chk`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn __read_chk(
    fd: c_int,
    buf: *mut c_void,
    count: size_t,
    buflen: size_t,
) -> ssize_t {
    // An overflowing call goes to libc, which reports it and aborts.
    if !reentered() && count <= buflen {
        if let Some(desc) = ours(fd) {
            return run(-1, || ops::read_write(fd, &desc, false, buf as u64, count));
        }
    }
    // SAFETY: the program's own arguments, passed to the function it called.
    unsafe { real::read_chk(fd, buf, count, buflen) }
}

/// `write`.
///
/// # Safety
/// libc's contract for `write`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn write(fd: c_int, buf: *const c_void, count: size_t) -> ssize_t {
    if !reentered() {
        if let Some(desc) = ours(fd) {
            return run(-1, || ops::read_write(fd, &desc, true, buf as u64, count));
        }
    }
    // SAFETY: the program's own arguments, passed to the function it called.
    unsafe { real::write(fd, buf, count) }
}

fn pread_write(fd: c_int, buf: *mut c_void, count: size_t, pos: off_t, write: bool) -> ssize_t {
    if !reentered() {
        if let Some(desc) = ours(fd) {
            return run(-1, || {
                ops::pread_write(fd, &desc, write, buf as u64, count, pos)
            });
        }
    }
    // SAFETY: the program's own arguments, passed to the function it called.
    unsafe { real::pread_write(fd, buf, count, pos, write) }
}

/// `pread` (`pread64` is the same function on 64-bit targets).
///
/// # Safety
/// libc's contract for `pread`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn pread(fd: c_int, buf: *mut c_void, count: size_t, pos: off_t) -> ssize_t {
    pread_write(fd, buf, count, pos, false)
}

/// `pread64`.
///
/// # Safety
/// libc's contract for `pread64`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn pread64(
    fd: c_int,
    buf: *mut c_void,
    count: size_t,
    pos: off_t,
) -> ssize_t {
    pread_write(fd, buf, count, pos, false)
}

/// `pwrite`.
///
/// # Safety
/// libc's contract for `pwrite`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn pwrite(
    fd: c_int,
    buf: *const c_void,
    count: size_t,
    pos: off_t,
) -> ssize_t {
    pread_write(fd, buf.cast_mut(), count, pos, true)
}

/// `pwrite64`.
///
/// # Safety
/// libc's contract for `pwrite64`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn pwrite64(
    fd: c_int,
    buf: *const c_void,
    count: size_t,
    pos: off_t,
) -> ssize_t {
    pread_write(fd, buf.cast_mut(), count, pos, true)
}

/// Fortified `pread` (and `__pread64_chk`, the same on 64-bit targets).
///
/// # Safety
/// libc's contract for `__pread_chk`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn __pread_chk(
    fd: c_int,
    buf: *mut c_void,
    count: size_t,
    pos: off_t,
    buflen: size_t,
) -> ssize_t {
    // An overflowing call goes to libc, which reports it and aborts.
    if !reentered() && count <= buflen {
        if let Some(desc) = ours(fd) {
            return run(-1, || {
                ops::pread_write(fd, &desc, false, buf as u64, count, pos)
            });
        }
    }
    // SAFETY: the program's own arguments, passed to the function it called.
    unsafe { real::pread_chk(fd, buf, count, pos, buflen) }
}

/// Fortified `pread64`.
///
/// # Safety
/// libc's contract for `__pread64_chk`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn __pread64_chk(
    fd: c_int,
    buf: *mut c_void,
    count: size_t,
    pos: off_t,
    buflen: size_t,
) -> ssize_t {
    // SAFETY: the same contract as __pread_chk on 64-bit targets.
    unsafe { __pread_chk(fd, buf, count, pos, buflen) }
}

/// The program is about to unmap `[addr, addr + len)`: pages pinned there are
/// moved aside first, so the IOMMU and accesses keep reaching them (the kernel's
/// pinning guarantee).
fn before_unmap(addr: *mut c_void, len: size_t) {
    if !reentered() {
        run((), || {
            softiommu::mem::process::before_unmap(addr as u64, len as u64);
            Ok(())
        });
    }
}

/// `munmap`.
///
/// # Safety
/// libc's contract for `munmap`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn munmap(addr: *mut c_void, len: size_t) -> c_int {
    before_unmap(addr, len);
    // SAFETY: the program's own arguments, passed to the function it called.
    unsafe { real::munmap(addr, len) }
}

fn mmap_common(
    addr: *mut c_void,
    len: size_t,
    prot: c_int,
    flags: c_int,
    fd: c_int,
    off: off_t,
    is64: bool,
) -> *mut c_void {
    if !reentered() && flags & libc::MAP_ANONYMOUS == 0 {
        if let Some(desc) = ours(fd) {
            return run(libc::MAP_FAILED, || {
                ops::mmap(fd, &desc, len, prot, flags).map(|()| libc::MAP_FAILED)
            });
        }
    }
    if flags & libc::MAP_FIXED != 0 {
        // A fixed mapping replaces whatever was there.
        before_unmap(addr, len);
    }
    // SAFETY: the program's own arguments, passed to the function it called.
    unsafe { real::mmap(addr, len, prot, flags, fd, off, is64) }
}

/// `mmap`.
///
/// # Safety
/// libc's contract for `mmap`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mmap(
    addr: *mut c_void,
    len: size_t,
    prot: c_int,
    flags: c_int,
    fd: c_int,
    off: off_t,
) -> *mut c_void {
    mmap_common(addr, len, prot, flags, fd, off, false)
}

/// `mmap64`.
///
/// # Safety
/// libc's contract for `mmap64`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mmap64(
    addr: *mut c_void,
    len: size_t,
    prot: c_int,
    flags: c_int,
    fd: c_int,
    off: off_t,
) -> *mut c_void {
    mmap_common(addr, len, prot, flags, fd, off, true)
}

/// `close_range`.
///
/// # Safety
/// libc's contract for `close_range`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn close_range(first: c_uint, last: c_uint, flags: c_int) -> c_int {
    if !reentered() && table::any() {
        return run(-1, || ops::close_range(first, last, flags));
    }
    real::close_range(first, last, flags)
}

/// `closefrom`.
///
/// # Safety
/// libc's contract for `closefrom`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn closefrom(lowfd: c_int) {
    if !reentered() && table::any() {
        run(-1, || ops::closefrom(lowfd));
        return;
    }
    real::closefrom(lowfd);
}

/// Defines entry points that take a path: a sysfs path of ours is replaced by
/// its file in our tree (see `sysfs`), and the call goes to libc either way.
macro_rules! sysfs_path_calls {
    ($( $(#[$m:meta])* fn $name:ident($($arg:ident: $ty:ty),*) -> $ret:ty = $real:ident, path = $path:ident; )*) => {
        $(
            $(#[$m])*
            ///
            /// # Safety
            /// libc's contract for this function.
            #[unsafe(no_mangle)]
            pub unsafe extern "C" fn $name($($arg: $ty),*) -> $ret {
                let ours = sysfs_tree($path);
                let $path = ours.as_ref().map_or($path, |p| p.as_ptr());
                // SAFETY: the program's own arguments, or a live path of ours
                // (absolute, so any dirfd is unused) in place of its path.
                unsafe { real::$real($($arg),*) }
            }
        )*
    };
}

sysfs_path_calls! {
    /// `stat`.
    fn stat(path: *const c_char, buf: *mut c_void) -> c_int = stat, path = path;
    /// `stat64`.
    fn stat64(path: *const c_char, buf: *mut c_void) -> c_int = stat64, path = path;
    /// `lstat`.
    fn lstat(path: *const c_char, buf: *mut c_void) -> c_int = lstat, path = path;
    /// `lstat64`.
    fn lstat64(path: *const c_char, buf: *mut c_void) -> c_int = lstat64, path = path;
    /// `fstatat`.
    fn fstatat(dirfd: c_int, path: *const c_char, buf: *mut c_void, flags: c_int) -> c_int = fstatat, path = path;
    /// `fstatat64`.
    fn fstatat64(dirfd: c_int, path: *const c_char, buf: *mut c_void, flags: c_int) -> c_int = fstatat64, path = path;
    /// `statx`.
    fn statx(dirfd: c_int, path: *const c_char, flags: c_int, mask: c_uint, buf: *mut c_void) -> c_int = statx, path = path;
    /// `__xstat`.
    fn __xstat(ver: c_int, path: *const c_char, buf: *mut c_void) -> c_int = xstat, path = path;
    /// `__xstat64`.
    fn __xstat64(ver: c_int, path: *const c_char, buf: *mut c_void) -> c_int = xstat64, path = path;
    /// `__lxstat`.
    fn __lxstat(ver: c_int, path: *const c_char, buf: *mut c_void) -> c_int = lxstat, path = path;
    /// `__lxstat64`.
    fn __lxstat64(ver: c_int, path: *const c_char, buf: *mut c_void) -> c_int = lxstat64, path = path;
    /// `__fxstatat`.
    fn __fxstatat(ver: c_int, dirfd: c_int, path: *const c_char, buf: *mut c_void, flags: c_int) -> c_int = fxstatat, path = path;
    /// `__fxstatat64`.
    fn __fxstatat64(ver: c_int, dirfd: c_int, path: *const c_char, buf: *mut c_void, flags: c_int) -> c_int = fxstatat64, path = path;
    /// `access`.
    fn access(path: *const c_char, mode: c_int) -> c_int = access, path = path;
    /// `euidaccess`.
    fn euidaccess(path: *const c_char, mode: c_int) -> c_int = euidaccess, path = path;
    /// `eaccess`.
    fn eaccess(path: *const c_char, mode: c_int) -> c_int = eaccess, path = path;
    /// `faccessat`.
    fn faccessat(dirfd: c_int, path: *const c_char, mode: c_int, flags: c_int) -> c_int = faccessat, path = path;
    /// `readlink`.
    fn readlink(path: *const c_char, buf: *mut c_char, len: size_t) -> ssize_t = readlink, path = path;
    /// `readlinkat`.
    fn readlinkat(dirfd: c_int, path: *const c_char, buf: *mut c_char, len: size_t) -> ssize_t = readlinkat, path = path;
    /// Fortified `readlink`.
    fn __readlink_chk(path: *const c_char, buf: *mut c_char, len: size_t, buflen: size_t) -> ssize_t = readlink_chk, path = path;
    /// Fortified `readlinkat`.
    fn __readlinkat_chk(dirfd: c_int, path: *const c_char, buf: *mut c_char, len: size_t, buflen: size_t) -> ssize_t = readlinkat_chk, path = path;
    /// `getxattr` (`ls -l` asks for ACLs).
    fn getxattr(path: *const c_char, name: *const c_char, value: *mut c_void, size: size_t) -> ssize_t = getxattr, path = path;
    /// `lgetxattr`.
    fn lgetxattr(path: *const c_char, name: *const c_char, value: *mut c_void, size: size_t) -> ssize_t = lgetxattr, path = path;
    /// `listxattr`.
    fn listxattr(path: *const c_char, list: *mut c_char, size: size_t) -> ssize_t = listxattr, path = path;
    /// `llistxattr`.
    fn llistxattr(path: *const c_char, list: *mut c_char, size: size_t) -> ssize_t = llistxattr, path = path;
    /// `opendir`.
    fn opendir(path: *const c_char) -> *mut libc::DIR = opendir, path = path;
}

/// One `fopen` of a writable sysfs attribute: a stdio stream whose flushes
/// are sysfs writes (stdio inside libc writes with its own system calls,
/// which we would not see on a descriptor).
struct AttrStream {
    attr: sysfs::Attr,
    readable: bool,
    writable: bool,
    pos: usize,
}

unsafe extern "C" fn attr_stream_read(
    cookie: *mut c_void,
    buf: *mut c_char,
    len: size_t,
) -> ssize_t {
    // SAFETY: stdio hands back the cookie fopen_common made, alive until close.
    let s = unsafe { &mut *cookie.cast::<AttrStream>() };
    run(-1, || {
        if !s.readable {
            return Err(Errno::EBADF);
        }
        let text = sysfs::show(&s.attr)?;
        let part = text.get(s.pos..).unwrap_or_default();
        let n = part.len().min(len);
        if n > 0 && !safecopy::write(buf as usize, &part[..n]) {
            return Err(Errno::EFAULT);
        }
        s.pos += n;
        Ok(n as ssize_t)
    })
}

unsafe extern "C" fn attr_stream_write(
    cookie: *mut c_void,
    buf: *const c_char,
    len: size_t,
) -> ssize_t {
    // SAFETY: as in attr_stream_read.
    let s = unsafe { &mut *cookie.cast::<AttrStream>() };
    run(-1, || {
        if !s.writable {
            return Err(Errno::EBADF);
        }
        let _gate = table::gate();
        sysfs::store(&s.attr, buf as u64, len).map(|n| n as ssize_t)
    })
}

unsafe extern "C" fn attr_stream_close(cookie: *mut c_void) -> c_int {
    // SAFETY: the Box fopen_common leaked into the cookie; stdio closes once.
    drop(unsafe { Box::from_raw(cookie.cast::<AttrStream>()) });
    0
}

fn fopen_common(path: *const c_char, mode: *const c_char, is64: bool) -> *mut libc::FILE {
    let mode_bytes = if mode.is_null() || reentered() {
        None
    } else {
        let _busy = Busy::enter();
        catch_unwind(|| safecopy::read_cstr(mode)).unwrap_or(None)
    };
    if let Some(m) = mode_bytes {
        let writes = m.iter().any(|b| matches!(b, b'w' | b'a' | b'+'));
        let reads = m.first() == Some(&b'r') || m.contains(&b'+');
        match sysfs_target(path, true) {
            Some(Target::Attr(attr)) => {
                if reads && !attr.readable() {
                    real::set_errno(libc::EACCES);
                    return std::ptr::null_mut();
                }
                let cookie = Box::into_raw(Box::new(AttrStream {
                    attr,
                    readable: reads,
                    writable: writes,
                    pos: 0,
                }));
                let io = real::CookieIo {
                    read: Some(attr_stream_read),
                    write: Some(attr_stream_write),
                    seek: None,
                    close: Some(attr_stream_close),
                };
                // SAFETY: `mode` was read above; the cookie is a live
                // AttrStream that attr_stream_close frees.
                let f = unsafe { real::fopencookie(cookie.cast(), mode, io) };
                if f.is_null() {
                    // SAFETY: not handed to stdio: ours to free.
                    drop(unsafe { Box::from_raw(cookie) });
                }
                return f;
            }
            Some(Target::Tree(_)) if writes => {
                // sysfs refuses writers of read-only attributes.
                real::set_errno(libc::EACCES);
                return std::ptr::null_mut();
            }
            // SAFETY: a live path of ours in place of the program's.
            Some(Target::Tree(tree)) => return unsafe { real::fopen(tree.as_ptr(), mode, is64) },
            None => {}
        }
    }
    // SAFETY: the program's own arguments, passed to the function it called.
    unsafe { real::fopen(path, mode, is64) }
}

/// `fopen`: a sysfs path of ours reads its file in our tree, or (a writable
/// attribute) is a stream whose writes reach the host.
///
/// # Safety
/// libc's contract for `fopen`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn fopen(path: *const c_char, mode: *const c_char) -> *mut libc::FILE {
    fopen_common(path, mode, false)
}

/// `fopen64`: as [`fopen`].
///
/// # Safety
/// libc's contract for `fopen64`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn fopen64(path: *const c_char, mode: *const c_char) -> *mut libc::FILE {
    fopen_common(path, mode, true)
}
