//! The real libc functions, and the raw system calls the interposer makes itself.
//!
//! Each libc function we also define is resolved once with `dlsym(RTLD_NEXT)` —
//! the next definition after this library, normally libc's — and cached in an
//! atomic (a resolve that races another stores the same pointer). Calling
//! `libc::close` and friends directly from this crate would call *our* `close`
//! (symbol lookup finds the preloaded library first), so nothing here does that
//! for an interposed name.
//!
//! Two kinds of wrapper: `unsafe fn`s that pass a program's call through
//! unchanged (their pointers are the program's, and only the kernel or libc looks
//! at them), and safe `fn`s for calls on descriptors and buffers we own.
#![allow(unsafe_code)]

use libc::{c_char, c_int, c_uint, c_ulong, c_void, off_t, size_t, ssize_t};
use softiommu::uapi::Errno;
use std::ffi::CStr;
use std::sync::atomic::{AtomicPtr, Ordering};

/// A libc symbol resolved on first use.
struct Sym {
    name: &'static CStr,
    ptr: AtomicPtr<c_void>,
}

impl Sym {
    const fn new(name: &'static CStr) -> Sym {
        Sym {
            name,
            ptr: AtomicPtr::new(std::ptr::null_mut()),
        }
    }

    /// The address of the next definition of the symbol, if there is one.
    fn get(&self) -> Option<*mut c_void> {
        let p = self.ptr.load(Ordering::Acquire);
        if !p.is_null() {
            return Some(p);
        }
        // SAFETY: dlsym takes a pseudo-handle and a NUL-terminated name, both valid;
        // it only looks the name up.
        let p = unsafe { libc::dlsym(libc::RTLD_NEXT, self.name.as_ptr()) };
        if p.is_null() {
            return None;
        }
        self.ptr.store(p, Ordering::Release);
        Some(p)
    }
}

type OpenFn = unsafe extern "C" fn(*const c_char, c_int, ...) -> c_int;
type OpenatFn = unsafe extern "C" fn(c_int, *const c_char, c_int, ...) -> c_int;
type Open2Fn = unsafe extern "C" fn(*const c_char, c_int) -> c_int;
type Openat2Fn = unsafe extern "C" fn(c_int, *const c_char, c_int) -> c_int;
type IoctlFn = unsafe extern "C" fn(c_int, c_ulong, ...) -> c_int;
type FcntlFn = unsafe extern "C" fn(c_int, c_int, ...) -> c_int;
type Fd1Fn = unsafe extern "C" fn(c_int) -> c_int;
type Fd2Fn = unsafe extern "C" fn(c_int, c_int) -> c_int;
type Fd3Fn = unsafe extern "C" fn(c_int, c_int, c_int) -> c_int;
type ReadFn = unsafe extern "C" fn(c_int, *mut c_void, size_t) -> ssize_t;
type ReadChkFn = unsafe extern "C" fn(c_int, *mut c_void, size_t, size_t) -> ssize_t;
type WriteFn = unsafe extern "C" fn(c_int, *const c_void, size_t) -> ssize_t;
type PreadFn = unsafe extern "C" fn(c_int, *mut c_void, size_t, off_t) -> ssize_t;
type PreadChkFn = unsafe extern "C" fn(c_int, *mut c_void, size_t, off_t, size_t) -> ssize_t;
type MmapFn = unsafe extern "C" fn(*mut c_void, size_t, c_int, c_int, c_int, off_t) -> *mut c_void;
type MunmapFn = unsafe extern "C" fn(*mut c_void, size_t) -> c_int;
type CloseRangeFn = unsafe extern "C" fn(c_uint, c_uint, c_int) -> c_int;
type ClosefromFn = unsafe extern "C" fn(c_int);

static OPEN: Sym = Sym::new(c"open");
static OPEN64: Sym = Sym::new(c"open64");
static OPENAT: Sym = Sym::new(c"openat");
static OPENAT64: Sym = Sym::new(c"openat64");
static OPEN_2: Sym = Sym::new(c"__open_2");
static OPEN64_2: Sym = Sym::new(c"__open64_2");
static OPENAT_2: Sym = Sym::new(c"__openat_2");
static OPENAT64_2: Sym = Sym::new(c"__openat64_2");
static IOCTL: Sym = Sym::new(c"ioctl");
static FCNTL: Sym = Sym::new(c"fcntl");
static FCNTL64: Sym = Sym::new(c"fcntl64");
static CLOSE: Sym = Sym::new(c"close");
static DUP: Sym = Sym::new(c"dup");
static DUP2: Sym = Sym::new(c"dup2");
static DUP3: Sym = Sym::new(c"dup3");
static READ: Sym = Sym::new(c"read");
static READ_CHK: Sym = Sym::new(c"__read_chk");
static WRITE: Sym = Sym::new(c"write");
static PREAD: Sym = Sym::new(c"pread");
static PWRITE: Sym = Sym::new(c"pwrite");
static PREAD_CHK: Sym = Sym::new(c"__pread_chk");
static MMAP: Sym = Sym::new(c"mmap");
static MMAP64: Sym = Sym::new(c"mmap64");
static MUNMAP: Sym = Sym::new(c"munmap");
static CLOSE_RANGE: Sym = Sym::new(c"close_range");
static CLOSEFROM: Sym = Sym::new(c"closefrom");

/// Looks `sym` up as a `T` (a function-pointer type of the right signature).
fn lookup<T: Copy>(sym: &Sym) -> Option<T> {
    debug_assert_eq!(size_of::<T>(), size_of::<*mut c_void>());
    let p = sym.get()?;
    // SAFETY: T is one of the `unsafe extern "C" fn` types above, pointer-sized,
    // and `sym` names a libc function of exactly that C signature; a code
    // address read as a function pointer is how dlsym results are used.
    Some(unsafe { std::mem::transmute_copy::<*mut c_void, T>(&p) })
}

/// The thread's `errno`.
pub fn errno() -> c_int {
    // SAFETY: __errno_location returns the calling thread's errno slot, always
    // valid for the thread's lifetime.
    unsafe { *libc::__errno_location() }
}

/// Sets the thread's `errno`.
pub fn set_errno(e: c_int) {
    // SAFETY: as in `errno`.
    unsafe { *libc::__errno_location() = e }
}

/// `-1` with `errno` = ENOSYS: the libc below us lacks the function.
fn missing<T: From<i8>>() -> T {
    set_errno(libc::ENOSYS);
    T::from(-1)
}

/// Which libc open function a call came in as (the numbers are variadic.c's).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OpenKind {
    /// `open(path, flags, mode)`.
    Open = 0,
    /// `open64(path, flags, mode)`.
    Open64 = 1,
    /// `openat(dirfd, path, flags, mode)`.
    Openat = 2,
    /// `openat64(dirfd, path, flags, mode)`.
    Openat64 = 3,
    /// `__open_2(path, flags)` (fortified).
    Open2 = 4,
    /// `__open64_2(path, flags)`.
    Open64_2 = 5,
    /// `__openat_2(dirfd, path, flags)`.
    Openat2 = 6,
    /// `__openat64_2(dirfd, path, flags)`.
    Openat64_2 = 7,
}

impl OpenKind {
    /// From variadic.c's number.
    pub fn from_c(which: c_int) -> OpenKind {
        match which {
            1 => OpenKind::Open64,
            2 => OpenKind::Openat,
            3 => OpenKind::Openat64,
            4 => OpenKind::Open2,
            5 => OpenKind::Open64_2,
            6 => OpenKind::Openat2,
            7 => OpenKind::Openat64_2,
            _ => OpenKind::Open,
        }
    }

    /// The libc name.
    pub fn name(self) -> &'static str {
        match self {
            OpenKind::Open => "open",
            OpenKind::Open64 => "open64",
            OpenKind::Openat => "openat",
            OpenKind::Openat64 => "openat64",
            OpenKind::Open2 => "__open_2",
            OpenKind::Open64_2 => "__open64_2",
            OpenKind::Openat2 => "__openat_2",
            OpenKind::Openat64_2 => "__openat64_2",
        }
    }

    /// Whether the call takes a directory descriptor.
    pub fn has_dirfd(self) -> bool {
        matches!(
            self,
            OpenKind::Openat | OpenKind::Openat64 | OpenKind::Openat2 | OpenKind::Openat64_2
        )
    }
}

/// The program's open call, passed through.
///
/// # Safety
/// `path` is the program's argument, handed to libc unchanged.
pub unsafe fn open(
    kind: OpenKind,
    dirfd: c_int,
    path: *const c_char,
    flags: c_int,
    mode: c_uint,
) -> c_int {
    // SAFETY: in each arm, the function pointer was resolved under the name whose
    // C signature its type spells; the arguments are the program's own, and libc
    // and the kernel validate them (a bad path is EFAULT).
    unsafe {
        match kind {
            OpenKind::Open => {
                lookup::<OpenFn>(&OPEN).map_or_else(missing, |f| f(path, flags, mode))
            }
            OpenKind::Open64 => {
                lookup::<OpenFn>(&OPEN64).map_or_else(missing, |f| f(path, flags, mode))
            }
            OpenKind::Openat => {
                lookup::<OpenatFn>(&OPENAT).map_or_else(missing, |f| f(dirfd, path, flags, mode))
            }
            OpenKind::Openat64 => {
                lookup::<OpenatFn>(&OPENAT64).map_or_else(missing, |f| f(dirfd, path, flags, mode))
            }
            OpenKind::Open2 => lookup::<Open2Fn>(&OPEN_2).map_or_else(missing, |f| f(path, flags)),
            OpenKind::Open64_2 => {
                lookup::<Open2Fn>(&OPEN64_2).map_or_else(missing, |f| f(path, flags))
            }
            OpenKind::Openat2 => {
                lookup::<Openat2Fn>(&OPENAT_2).map_or_else(missing, |f| f(dirfd, path, flags))
            }
            OpenKind::Openat64_2 => {
                lookup::<Openat2Fn>(&OPENAT64_2).map_or_else(missing, |f| f(dirfd, path, flags))
            }
        }
    }
}

/// The program's ioctl, passed through.
///
/// # Safety
/// `arg` is the program's argument, handed to libc unchanged.
pub unsafe fn ioctl(fd: c_int, request: c_ulong, arg: *mut c_void) -> c_int {
    // SAFETY: `ioctl` resolved as IoctlFn; the argument is the program's, checked
    // by the kernel.
    unsafe { lookup::<IoctlFn>(&IOCTL).map_or_else(missing, |f| f(fd, request, arg)) }
}

/// The program's fcntl (`fcntl64` when `is64`), passed through.
///
/// # Safety
/// `arg` is the program's argument (an int or a pointer), handed on unchanged.
pub unsafe fn fcntl(fd: c_int, cmd: c_int, arg: c_ulong, is64: bool) -> c_int {
    let sym = if is64 { &FCNTL64 } else { &FCNTL };
    // SAFETY: resolved as FcntlFn; libc reads the argument the way the command
    // says, exactly as it would have from the program.
    unsafe { lookup::<FcntlFn>(sym).map_or_else(missing, |f| f(fd, cmd, arg)) }
}

/// The program's read, passed through.
///
/// # Safety
/// `buf`/`count` are the program's, handed to libc unchanged.
pub unsafe fn read(fd: c_int, buf: *mut c_void, count: size_t) -> ssize_t {
    // SAFETY: resolved as ReadFn; the kernel checks the buffer.
    unsafe { lookup::<ReadFn>(&READ).map_or_else(missing, |f| f(fd, buf, count)) }
}

/// The program's fortified read, passed through.
///
/// # Safety
/// As for [`read`].
pub unsafe fn read_chk(fd: c_int, buf: *mut c_void, count: size_t, buflen: size_t) -> ssize_t {
    // SAFETY: resolved as ReadChkFn; libc checks count against buflen, the kernel
    // the buffer.
    unsafe { lookup::<ReadChkFn>(&READ_CHK).map_or_else(missing, |f| f(fd, buf, count, buflen)) }
}

/// The program's write, passed through.
///
/// # Safety
/// As for [`read`].
pub unsafe fn write(fd: c_int, buf: *const c_void, count: size_t) -> ssize_t {
    // SAFETY: resolved as WriteFn; the kernel checks the buffer.
    unsafe { lookup::<WriteFn>(&WRITE).map_or_else(missing, |f| f(fd, buf, count)) }
}

/// The program's mmap (`mmap64` when `is64`), passed through.
///
/// # Safety
/// The arguments are the program's; the mapping is the program's business.
pub unsafe fn mmap(
    addr: *mut c_void,
    len: size_t,
    prot: c_int,
    flags: c_int,
    fd: c_int,
    off: off_t,
    is64: bool,
) -> *mut c_void {
    let sym = if is64 { &MMAP64 } else { &MMAP };
    match lookup::<MmapFn>(sym) {
        // SAFETY: resolved as MmapFn; the program asked for exactly this mapping.
        Some(f) => unsafe { f(addr, len, prot, flags, fd, off) },
        None => {
            set_errno(libc::ENOSYS);
            libc::MAP_FAILED
        }
    }
}

/// The program's munmap, passed through.
///
/// # Safety
/// The arguments are the program's; the mapping is the program's business.
pub unsafe fn munmap(addr: *mut c_void, len: size_t) -> c_int {
    // SAFETY: resolved as MunmapFn; the program asked for exactly this unmap.
    unsafe { lookup::<MunmapFn>(&MUNMAP).map_or_else(missing, |f| f(addr, len)) }
}

/// `lseek(fd, off, whence)` on our own descriptor; the new position.
pub fn lseek(fd: c_int, off: u64, whence: c_int) -> Result<u64, Errno> {
    let off = i64::try_from(off).map_err(|_| Errno::EINVAL)?;
    // SAFETY: lseek takes no memory and is not interposed.
    let r = unsafe { libc::lseek(fd, off, whence) };
    u64::try_from(r).map_err(|_| Errno(errno()))
}

/// The program's pread (`pwrite` when `write`), passed through.
///
/// # Safety
/// As for [`read`].
pub unsafe fn pread_write(
    fd: c_int,
    buf: *mut c_void,
    count: size_t,
    pos: off_t,
    write: bool,
) -> ssize_t {
    let sym = if write { &PWRITE } else { &PREAD };
    // SAFETY: resolved as PreadFn (pwrite's buffer is const, same ABI); the
    // kernel checks the buffer.
    unsafe { lookup::<PreadFn>(sym).map_or_else(missing, |f| f(fd, buf, count, pos)) }
}

/// The program's fortified pread, passed through.
///
/// # Safety
/// As for [`read`].
pub unsafe fn pread_chk(
    fd: c_int,
    buf: *mut c_void,
    count: size_t,
    pos: off_t,
    buflen: size_t,
) -> ssize_t {
    // SAFETY: resolved as PreadChkFn; libc checks count against buflen.
    unsafe {
        lookup::<PreadChkFn>(&PREAD_CHK).map_or_else(missing, |f| f(fd, buf, count, pos, buflen))
    }
}

/// `close(fd)`.
pub fn close(fd: c_int) -> c_int {
    // SAFETY: resolved as Fd1Fn; closing a descriptor number touches no memory.
    unsafe { lookup::<Fd1Fn>(&CLOSE).map_or_else(missing, |f| f(fd)) }
}

/// `dup(fd)`.
pub fn dup(fd: c_int) -> c_int {
    // SAFETY: resolved as Fd1Fn; no memory is involved.
    unsafe { lookup::<Fd1Fn>(&DUP).map_or_else(missing, |f| f(fd)) }
}

/// `dup2(old, new)`.
pub fn dup2(old: c_int, new: c_int) -> c_int {
    // SAFETY: resolved as Fd2Fn; no memory is involved.
    unsafe { lookup::<Fd2Fn>(&DUP2).map_or_else(missing, |f| f(old, new)) }
}

/// `dup3(old, new, flags)`.
pub fn dup3(old: c_int, new: c_int, flags: c_int) -> c_int {
    // SAFETY: resolved as Fd3Fn; no memory is involved.
    unsafe { lookup::<Fd3Fn>(&DUP3).map_or_else(missing, |f| f(old, new, flags)) }
}

/// `fcntl(fd, cmd, int_arg)` for commands whose argument is an integer.
pub fn fcntl_int(fd: c_int, cmd: c_int, arg: c_int) -> c_int {
    // SAFETY: resolved as FcntlFn; callers only pass integer-argument commands
    // (F_DUPFD*, F_ADD_SEALS, F_SETFL), which touch no memory.
    unsafe { lookup::<FcntlFn>(&FCNTL).map_or_else(missing, |f| f(fd, cmd, arg)) }
}

/// `close_range(first, last, flags)`.
pub fn close_range(first: c_uint, last: c_uint, flags: c_int) -> c_int {
    // SAFETY: resolved as CloseRangeFn; no memory is involved.
    unsafe { lookup::<CloseRangeFn>(&CLOSE_RANGE).map_or_else(missing, |f| f(first, last, flags)) }
}

/// `closefrom(lowfd)`; false if libc has none.
pub fn closefrom(lowfd: c_int) -> bool {
    match lookup::<ClosefromFn>(&CLOSEFROM) {
        Some(f) => {
            // SAFETY: resolved as ClosefromFn; no memory is involved.
            unsafe { f(lowfd) };
            true
        }
        None => false,
    }
}

/// Writes all of `buf` to `fd` (our own trace output).
pub fn write_all(fd: c_int, mut buf: &[u8]) {
    while !buf.is_empty() {
        // SAFETY: `buf` is a live slice; the kernel only reads it.
        let n = unsafe { write(fd, buf.as_ptr().cast(), buf.len()) };
        if n <= 0 {
            if n < 0 && errno() == libc::EINTR {
                continue;
            }
            return;
        }
        buf = &buf[n as usize..];
    }
}

/// Moves our descriptor `fd` to a number at or above 1000 where it does not
/// shift the numbers the program gets (keeps it where it is if it cannot).
pub fn move_high(fd: c_int) -> c_int {
    let high = fcntl_int(fd, libc::F_DUPFD_CLOEXEC, 1000);
    if high < 0 {
        return fd;
    }
    close(fd);
    high
}

/// Whether descriptors `a` and `b` of this process refer to the same open
/// file description (`kcmp(KCMP_FILE)`); `None` where the kernel cannot say
/// (no `kcmp`, or a seccomp filter refuses it).
pub fn same_description(a: c_int, b: c_int) -> Option<bool> {
    const KCMP_FILE: libc::c_long = 0;
    // SAFETY: kcmp with KCMP_FILE takes two pids and two descriptor numbers
    // and touches no memory of ours.
    let pid = unsafe { libc::getpid() };
    // SAFETY: as above.
    let r = unsafe { libc::syscall(libc::SYS_kcmp, pid, pid, KCMP_FILE, a, b) };
    (r >= 0).then_some(r == 0)
}

/// `(st_dev, st_ino)` of an open descriptor.
pub fn file_key(fd: c_int) -> Result<(u64, u64), Errno> {
    // SAFETY: an all-zero `stat` is a valid value of this plain C struct.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: `st` is a valid, writable stat buffer; fstat is not interposed.
    if unsafe { libc::fstat(fd, &mut st) } != 0 {
        return Err(Errno(errno()));
    }
    Ok((st.st_dev, st.st_ino))
}

/// A new backing descriptor: an empty memfd named `name`, sealed so that it stays
/// empty whatever the program does with it through calls we do not interpose.
/// Returns the descriptor and its `(st_dev, st_ino)`.
pub fn backing_fd(name: &CStr, cloexec: bool) -> Result<(c_int, (u64, u64)), Errno> {
    let flags = libc::MFD_ALLOW_SEALING | if cloexec { libc::MFD_CLOEXEC } else { 0 };
    // SAFETY: `name` is NUL-terminated; memfd_create is not interposed.
    let fd = unsafe { libc::memfd_create(name.as_ptr(), flags) };
    if fd < 0 {
        return Err(Errno(errno()));
    }
    let seals = libc::F_SEAL_SEAL | libc::F_SEAL_SHRINK | libc::F_SEAL_GROW | libc::F_SEAL_WRITE;
    // Sealing is hardening only; a kernel without it still gives a usable fd.
    let _ = fcntl_int(fd, libc::F_ADD_SEALS, seals);
    match file_key(fd) {
        Ok(key) => Ok((fd, key)),
        Err(e) => {
            close(fd);
            Err(e)
        }
    }
}

/// RLIMIT_MEMLOCK's soft limit in bytes (`u64::MAX`: unlimited).
pub fn rlimit_memlock() -> u64 {
    let mut rl = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `rl` is a valid rlimit buffer; getrlimit is not interposed.
    if unsafe { libc::getrlimit(libc::RLIMIT_MEMLOCK, &mut rl) } != 0 {
        return u64::MAX;
    }
    if rl.rlim_cur == libc::RLIM_INFINITY {
        u64::MAX
    } else {
        rl.rlim_cur
    }
}

/// Registers the fork handlers.
pub fn atfork(prepare: extern "C" fn(), parent: extern "C" fn(), child: extern "C" fn()) {
    // SAFETY: the handlers are plain functions of this library, which is never
    // unloaded (LD_PRELOAD); registering touches no program state.
    unsafe { libc::pthread_atfork(Some(prepare), Some(parent), Some(child)) };
}

/// The readiness of a fault-queue descriptor: the program's end of a Unix
/// socket pair, readable exactly while we have put a byte into the other end.
/// The socket is always writable, so `poll` shows POLLOUT as the kernel's
/// fault file does. We keep the peer (to make it readable) and a duplicate of
/// the program's end (to drain it whatever the program does with its number),
/// both close-on-exec above the program's descriptors; they close on drop.
#[derive(Debug)]
pub struct Readiness {
    peer: c_int,
    drain: c_int,
}

impl Readiness {
    /// Makes the program's end readable (`true`) or not.
    pub fn set(&self, ready: bool) {
        if ready {
            let byte = 1u8;
            // SAFETY: `byte` is a live one-byte buffer; send is not interposed.
            let _ = unsafe {
                libc::send(
                    self.peer,
                    (&raw const byte).cast(),
                    1,
                    libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL,
                )
            };
        } else {
            let mut buf = [0u8; 64];
            loop {
                // SAFETY: `buf` is a live, writable buffer of that length; recv
                // is not interposed.
                let n = unsafe {
                    libc::recv(
                        self.drain,
                        buf.as_mut_ptr().cast(),
                        buf.len(),
                        libc::MSG_DONTWAIT,
                    )
                };
                if n <= 0 && !(n < 0 && errno() == libc::EINTR) {
                    break;
                }
            }
        }
    }
}

impl Drop for Readiness {
    fn drop(&mut self) {
        close(self.peer);
        close(self.drain);
    }
}

/// A new pollable backing descriptor for a fault queue (see [`Readiness`]):
/// returns the program's descriptor, its `(st_dev, st_ino)` and its readiness.
pub fn pollable_fd(cloexec: bool) -> Result<(c_int, (u64, u64), Readiness), Errno> {
    let mut sv = [-1 as c_int; 2];
    let flags = libc::SOCK_STREAM | if cloexec { libc::SOCK_CLOEXEC } else { 0 };
    // SAFETY: `sv` is a valid array of two ints; socketpair is not interposed.
    if unsafe { libc::socketpair(libc::AF_UNIX, flags, 0, sv.as_mut_ptr()) } != 0 {
        return Err(Errno(errno()));
    }
    let peer = move_high(fcntl_int(sv[1], libc::F_DUPFD_CLOEXEC, 0));
    close(sv[1]);
    let drain = fcntl_int(sv[0], libc::F_DUPFD_CLOEXEC, 1000);
    if peer < 0 || drain < 0 {
        let e = Errno(errno());
        for fd in [sv[0], peer, drain] {
            if fd >= 0 {
                close(fd);
            }
        }
        return Err(e);
    }
    let readiness = Readiness { peer, drain };
    match file_key(sv[0]) {
        Ok(key) => Ok((sv[0], key, readiness)),
        Err(e) => {
            close(sv[0]);
            Err(e)
        }
    }
}

/// Defines pass-through wrappers for libc functions that take a path: each
/// resolves its symbol once and calls it with the arguments unchanged.
macro_rules! path_passthrough {
    ($( $(#[$m:meta])* fn $name:ident = $sym:literal ($($arg:ident: $ty:ty),*) -> $ret:ty; )*) => {
        $(
            $(#[$m])*
            ///
            /// # Safety
            /// The arguments are the program's (or a path of ours, a live
            /// NUL-terminated string), handed to libc unchanged.
            pub unsafe fn $name($($arg: $ty),*) -> $ret {
                static SYM: Sym = Sym::new($sym);
                type F = unsafe extern "C" fn($($ty),*) -> $ret;
                // SAFETY: resolved under the name whose C signature `F`
                // spells; libc and the kernel check the arguments.
                unsafe { lookup::<F>(&SYM).map_or_else(missing, |f| f($($arg),*)) }
            }
        )*
    };
}

path_passthrough! {
    /// `stat`.
    fn stat = c"stat" (path: *const c_char, buf: *mut c_void) -> c_int;
    /// `stat64`.
    fn stat64 = c"stat64" (path: *const c_char, buf: *mut c_void) -> c_int;
    /// `lstat`.
    fn lstat = c"lstat" (path: *const c_char, buf: *mut c_void) -> c_int;
    /// `lstat64`.
    fn lstat64 = c"lstat64" (path: *const c_char, buf: *mut c_void) -> c_int;
    /// `fstatat`.
    fn fstatat = c"fstatat" (dirfd: c_int, path: *const c_char, buf: *mut c_void, flags: c_int) -> c_int;
    /// `fstatat64`.
    fn fstatat64 = c"fstatat64" (dirfd: c_int, path: *const c_char, buf: *mut c_void, flags: c_int) -> c_int;
    /// `statx`.
    fn statx = c"statx" (dirfd: c_int, path: *const c_char, flags: c_int, mask: c_uint, buf: *mut c_void) -> c_int;
    /// `__xstat` (binaries built against glibc before 2.33).
    fn xstat = c"__xstat" (ver: c_int, path: *const c_char, buf: *mut c_void) -> c_int;
    /// `__xstat64`.
    fn xstat64 = c"__xstat64" (ver: c_int, path: *const c_char, buf: *mut c_void) -> c_int;
    /// `__lxstat`.
    fn lxstat = c"__lxstat" (ver: c_int, path: *const c_char, buf: *mut c_void) -> c_int;
    /// `__lxstat64`.
    fn lxstat64 = c"__lxstat64" (ver: c_int, path: *const c_char, buf: *mut c_void) -> c_int;
    /// `__fxstatat`.
    fn fxstatat = c"__fxstatat" (ver: c_int, dirfd: c_int, path: *const c_char, buf: *mut c_void, flags: c_int) -> c_int;
    /// `__fxstatat64`.
    fn fxstatat64 = c"__fxstatat64" (ver: c_int, dirfd: c_int, path: *const c_char, buf: *mut c_void, flags: c_int) -> c_int;
    /// `access`.
    fn access = c"access" (path: *const c_char, mode: c_int) -> c_int;
    /// `euidaccess`.
    fn euidaccess = c"euidaccess" (path: *const c_char, mode: c_int) -> c_int;
    /// `eaccess`.
    fn eaccess = c"eaccess" (path: *const c_char, mode: c_int) -> c_int;
    /// `faccessat`.
    fn faccessat = c"faccessat" (dirfd: c_int, path: *const c_char, mode: c_int, flags: c_int) -> c_int;
    /// `readlink`.
    fn readlink = c"readlink" (path: *const c_char, buf: *mut c_char, len: size_t) -> ssize_t;
    /// `readlinkat`.
    fn readlinkat = c"readlinkat" (dirfd: c_int, path: *const c_char, buf: *mut c_char, len: size_t) -> ssize_t;
    /// Fortified `readlink`.
    fn readlink_chk = c"__readlink_chk" (path: *const c_char, buf: *mut c_char, len: size_t, buflen: size_t) -> ssize_t;
    /// `getxattr`.
    fn getxattr = c"getxattr" (path: *const c_char, name: *const c_char, value: *mut c_void, size: size_t) -> ssize_t;
    /// `lgetxattr`.
    fn lgetxattr = c"lgetxattr" (path: *const c_char, name: *const c_char, value: *mut c_void, size: size_t) -> ssize_t;
    /// `listxattr`.
    fn listxattr = c"listxattr" (path: *const c_char, list: *mut c_char, size: size_t) -> ssize_t;
    /// `llistxattr`.
    fn llistxattr = c"llistxattr" (path: *const c_char, list: *mut c_char, size: size_t) -> ssize_t;
    /// Fortified `readlinkat`.
    fn readlinkat_chk = c"__readlinkat_chk" (dirfd: c_int, path: *const c_char, buf: *mut c_char, len: size_t, buflen: size_t) -> ssize_t;
}

/// The program's `opendir`, passed through.
///
/// # Safety
/// `path` is the program's (or a live NUL-terminated path of ours).
pub unsafe fn opendir(path: *const c_char) -> *mut libc::DIR {
    static OPENDIR: Sym = Sym::new(c"opendir");
    type F = unsafe extern "C" fn(*const c_char) -> *mut libc::DIR;
    match lookup::<F>(&OPENDIR) {
        // SAFETY: resolved as `opendir`'s signature; libc checks the path.
        Some(f) => unsafe { f(path) },
        None => {
            set_errno(libc::ENOSYS);
            std::ptr::null_mut()
        }
    }
}

/// The calling process's id.
pub fn getpid() -> c_int {
    // SAFETY: getpid takes nothing and is not interposed.
    unsafe { libc::getpid() }
}

/// Whether a process `pid` exists (one we may not signal exists too).
pub fn process_exists(pid: c_int) -> bool {
    // SAFETY: signal 0 only checks the target; kill is not interposed.
    unsafe { libc::kill(pid, 0) == 0 || errno() != libc::ESRCH }
}

/// Registers `f` to run at `exit`.
pub fn atexit(f: extern "C" fn()) {
    // SAFETY: `f` is a plain function of this library, which is never
    // unloaded (LD_PRELOAD).
    unsafe { libc::atexit(f) };
}

/// glibc's `cookie_io_functions_t`: the callbacks of a `fopencookie` stream.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct CookieIo {
    /// Reads into the buffer; bytes read, 0 at end, -1 with errno.
    pub read: Option<unsafe extern "C" fn(*mut c_void, *mut c_char, size_t) -> ssize_t>,
    /// Writes the buffer; bytes taken, -1 with errno.
    pub write: Option<unsafe extern "C" fn(*mut c_void, *const c_char, size_t) -> ssize_t>,
    /// Seeks; none here (the stream is not seekable).
    pub seek: Option<unsafe extern "C" fn(*mut c_void, *mut i64, c_int) -> c_int>,
    /// Releases the cookie.
    pub close: Option<unsafe extern "C" fn(*mut c_void) -> c_int>,
}

extern "C" {
    #[link_name = "fopencookie"]
    fn libc_fopencookie(cookie: *mut c_void, mode: *const c_char, io: CookieIo) -> *mut libc::FILE;
}

/// A stdio stream over `io` with `cookie`; null with errno on failure.
///
/// # Safety
/// `mode` is a live NUL-terminated string; `cookie` is what `io`'s callbacks
/// expect, valid until `close` releases it.
pub unsafe fn fopencookie(
    cookie: *mut c_void,
    mode: *const c_char,
    io: CookieIo,
) -> *mut libc::FILE {
    // SAFETY: the caller's contract; fopencookie is not interposed.
    unsafe { libc_fopencookie(cookie, mode, io) }
}

/// The program's `fopen` (`fopen64` when `is64`), passed through.
///
/// # Safety
/// The arguments are the program's (or a live path of ours).
pub unsafe fn fopen(path: *const c_char, mode: *const c_char, is64: bool) -> *mut libc::FILE {
    static FOPEN: Sym = Sym::new(c"fopen");
    static FOPEN64: Sym = Sym::new(c"fopen64");
    type F = unsafe extern "C" fn(*const c_char, *const c_char) -> *mut libc::FILE;
    match lookup::<F>(if is64 { &FOPEN64 } else { &FOPEN }) {
        // SAFETY: resolved as fopen's signature; libc checks the arguments.
        Some(f) => unsafe { f(path, mode) },
        None => {
            set_errno(libc::ENOSYS);
            std::ptr::null_mut()
        }
    }
}
