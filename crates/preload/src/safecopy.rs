//! The fault-catching copy of `safecopy.c`, for Rust.
//!
//! Registered with the core at load ([`REGISTER`]), so that every read and write
//! of the program's memory — ioctl arguments, pinned pages — is a `memcpy` that
//! turns a bad address into EFAULT instead of a `process_vm_readv`/`writev`
//! system call each. Also used here for open() paths.
#![allow(unsafe_code)]

use libc::{c_char, c_int};
use softiommu::mem::host;

extern "C" {
    /// `dst[..n] = src[..n]`; 0, or -1 where either side faulted (see safecopy.c).
    fn softiommu_safe_copy(dst: *mut u8, src: *const u8, n: usize) -> c_int;
}

/// Hands the copy to the core; run by the dynamic loader when the library loads.
extern "C" fn register() {
    // SAFETY: softiommu_safe_copy is a SafeCopy as set_safe_copy requires: it
    // takes any addresses, returns 0 or -1, never faults (SIGSEGV/SIGBUS during
    // its memcpy are caught, or it lets the kernel copy), never blocks or
    // unwinds, and lives as long as the process (a preloaded library is never
    // unloaded).
    unsafe { host::set_safe_copy(softiommu_safe_copy) };
}

/// A constructor: `.init_array` entries run at load, before `main`.
#[used]
#[link_section = ".init_array"]
static REGISTER: extern "C" fn() = register;

/// Copies `buf.len()` bytes from `src` in our own memory; false where they are
/// not all readable.
pub fn read(src: usize, buf: &mut [u8]) -> bool {
    // SAFETY: `buf` is a writable slice of exactly `buf.len()` bytes; the source
    // may be anything, the copy reports a fault instead of taking it.
    unsafe { softiommu_safe_copy(buf.as_mut_ptr(), src as *const u8, buf.len()) == 0 }
}

/// Copies `buf` to `dst` in our own memory; false where it is not all
/// writable.
pub fn write(dst: usize, buf: &[u8]) -> bool {
    // SAFETY: `buf` is a readable slice of exactly `buf.len()` bytes; the
    // destination may be anything, the copy reports a fault instead of taking
    // it.
    unsafe { softiommu_safe_copy(dst as *mut u8, buf.as_ptr(), buf.len()) == 0 }
}

/// Copies the NUL-terminated string at `ptr` (at most `PATH_MAX` bytes, NUL
/// excluded) without trusting the pointer: `None` where it is not readable or
/// too long. Reads up to each page end, so a string that ends just before an
/// unmapped page is read whole.
pub fn read_cstr(ptr: *const c_char) -> Option<Vec<u8>> {
    const PATH_MAX: usize = libc::PATH_MAX as usize;
    const PAGE: usize = 4096;
    let mut out = Vec::new();
    let mut at = ptr as usize;
    while out.len() <= PATH_MAX {
        let chunk = PAGE - at % PAGE;
        let start = out.len();
        out.resize(start + chunk, 0);
        if !read(at, &mut out[start..]) {
            return None;
        }
        if let Some(nul) = out[start..].iter().position(|b| *b == 0) {
            out.truncate(start + nul);
            return (out.len() <= PATH_MAX).then_some(out);
        }
        at = at.checked_add(chunk)?;
    }
    None
}
