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
use crate::table::{self, Desc};
use libc::{c_char, c_int, c_uint, c_ulong, c_void, off_t, size_t, ssize_t};
use softiommu::uapi::Errno;
use std::cell::Cell;
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
