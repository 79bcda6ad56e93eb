//! The unsafe edge of the memory model: host mappings and byte copies.
//!
//! Everything here that dereferences a host address is in this file, so that one
//! look finds the whole surface. The invariant the rest of the crate keeps: a host
//! address is only dereferenced while the frames it belongs to are pinned by a
//! [`super::FrameRun`] holder, and every implementation of
//! [`super::AddressSpace`] / [`super::FileSource`] hands out host addresses that stay
//! valid for as long as the frames are pinned.
//!
//! # Copies that never fault
//!
//! A front end that lives inside the program (the `LD_PRELOAD` interposer) cannot
//! keep that invariant alone: the program may unmap a pinned page's mapping, and a
//! bad argument pointer must be EFAULT, not a crash. Such a front end registers a
//! copy routine that turns a fault into an error ([`set_safe_copy`]; the interposer's
//! catches SIGSEGV/SIGBUS). Once registered, [`read_self`]/[`write_self`] use it
//! instead of `process_vm_readv`/`writev` (a system call of ~1.4 µs per argument
//! copy, several per ioctl), and [`copy_out`]/[`copy_in`] use it for pinned frames,
//! whose failure is then EFAULT. Without one (the library, tests) nothing changes:
//! process memory goes through the kernel, frames are copied directly.
#![allow(unsafe_code)]

use crate::error::{Error, Result};
use std::sync::OnceLock;

/// A copy that never faults: copies `n` bytes from `src` to `dst` and returns 0,
/// or returns non-zero (with the destination partly written) where either side is
/// not mapped with the access needed.
pub type SafeCopy = unsafe extern "C" fn(dst: *mut u8, src: *const u8, n: usize) -> i32;

/// The registered [`SafeCopy`]; see the module docs.
static SAFE_COPY: OnceLock<SafeCopy> = OnceLock::new();

/// Registers `f` as the copy for process memory and pinned frames (see the module
/// docs). The first registration wins; later ones are ignored.
///
/// # Safety
/// `f` must be a [`SafeCopy`]: callable from any thread with any addresses, it
/// must either copy and return 0, or return non-zero, and never fault, block or
/// unwind; and it must stay callable for the life of the process.
pub unsafe fn set_safe_copy(f: SafeCopy) {
    let _ = SAFE_COPY.set(f);
}

fn safe_copy() -> Option<SafeCopy> {
    SAFE_COPY.get().copied()
}

/// The end of user addresses: the kernel half and, on x86_64, the non-canonical
/// hole above it are never the program's (4-level paging; a 5-level program that
/// asked for addresses above 47 bits gets EFAULT here, as with a 47-bit kernel).
#[cfg(target_arch = "x86_64")]
const USER_END: u64 = 0x8000_0000_0000;
#[cfg(not(target_arch = "x86_64"))]
const USER_END: u64 = 1 << 63;

/// EFAULT unless `[va, va + len)` is a range of user addresses (no wrap).
fn user_range(va: u64, len: usize) -> Result<()> {
    match va.checked_add(len as u64) {
        Some(end) if end <= USER_END => Ok(()),
        _ => Err(Error::Fault { addr: va }),
    }
}

/// An anonymous host mapping reserved without commitment: pages cost memory only
/// once written. Simulated physical memory lives in one of these.
#[derive(Debug)]
pub struct HostRegion {
    base: *mut u8,
    len: usize,
}

// SAFETY: the region is plain memory owned by this value; access to its bytes is
// synchronised by the owners of the frames inside it, not by the region.
unsafe impl Send for HostRegion {}
// SAFETY: as above; `&HostRegion` only exposes the base address and length.
unsafe impl Sync for HostRegion {}

impl HostRegion {
    /// Reserves `len` bytes of zeroed, lazily committed memory.
    pub fn new(len: usize) -> Result<HostRegion> {
        // SAFETY: an anonymous private mapping at an address the kernel chooses
        // touches no existing memory; the result is checked before use.
        let base = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
                -1,
                0,
            )
        };
        if base == libc::MAP_FAILED {
            return Err(Error::NoMem("cannot reserve simulated memory"));
        }
        Ok(HostRegion {
            base: base.cast(),
            len,
        })
    }

    /// Host address of the first byte.
    pub fn base(&self) -> usize {
        self.base as usize
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the region is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

impl Drop for HostRegion {
    fn drop(&mut self) {
        // SAFETY: base/len are exactly what mmap returned; nothing refers to the
        // region once its owner is dropped.
        unsafe {
            libc::munmap(self.base.cast(), self.len);
        }
    }
}

/// Copies `buf.len()` bytes from host address `host` into `buf`: through the
/// registered [`SafeCopy`] if there is one (EFAULT where the memory is gone),
/// directly otherwise.
///
/// # Safety
/// Without a [`SafeCopy`], `[host, host + buf.len())` must be readable memory that
/// stays mapped for the duration of the call (pinned frames, or a region owned by
/// the caller).
pub unsafe fn copy_out(host: usize, buf: &mut [u8]) -> Result<()> {
    match safe_copy() {
        // SAFETY: a SafeCopy accepts any source and reports a fault; `buf` is a
        // writable Rust slice of exactly `buf.len()` bytes.
        Some(copy) => match unsafe { copy(buf.as_mut_ptr(), host as *const u8, buf.len()) } {
            0 => Ok(()),
            _ => Err(Error::Fault { addr: host as u64 }),
        },
        None => {
            // SAFETY: forwarded from the caller.
            unsafe { copy_out_mapped(host, buf) };
            Ok(())
        }
    }
}

/// Copies `buf` to host address `host`; as [`copy_out`].
///
/// # Safety
/// Without a [`SafeCopy`], `[host, host + buf.len())` must be writable memory that
/// stays mapped for the duration of the call.
pub unsafe fn copy_in(host: usize, buf: &[u8]) -> Result<()> {
    match safe_copy() {
        // SAFETY: a SafeCopy accepts any destination and reports a fault; `buf` is
        // a readable Rust slice.
        Some(copy) => match unsafe { copy(host as *mut u8, buf.as_ptr(), buf.len()) } {
            0 => Ok(()),
            _ => Err(Error::Fault { addr: host as u64 }),
        },
        None => {
            // SAFETY: forwarded from the caller.
            unsafe { copy_in_mapped(host, buf) };
            Ok(())
        }
    }
}

/// Copies `buf.len()` bytes from host address `host` into `buf`, infallibly: for
/// memory that cannot go away (a [`HostRegion`] owned by the caller).
///
/// # Safety
/// `[host, host + buf.len())` must be readable memory that stays mapped for the
/// duration of the call.
pub unsafe fn copy_out_mapped(host: usize, buf: &mut [u8]) {
    // SAFETY: the caller guarantees the source is mapped; `buf` is a distinct Rust
    // slice, so the two cannot overlap.
    unsafe { std::ptr::copy_nonoverlapping(host as *const u8, buf.as_mut_ptr(), buf.len()) }
}

/// Copies `buf` to host address `host`, infallibly; as [`copy_out_mapped`].
///
/// # Safety
/// `[host, host + buf.len())` must be writable memory that stays mapped for the
/// duration of the call.
pub unsafe fn copy_in_mapped(host: usize, buf: &[u8]) {
    // SAFETY: the caller guarantees the destination is mapped and writable; `buf`
    // is a distinct Rust slice.
    unsafe { std::ptr::copy_nonoverlapping(buf.as_ptr(), host as *mut u8, buf.len()) }
}

/// Reads the calling process's memory at `va` without trusting it: an address the
/// process does not have gives EFAULT instead of a fault in our code.
pub fn read_self(va: u64, buf: &mut [u8]) -> Result<()> {
    if let Some(copy) = safe_copy() {
        user_range(va, buf.len())?;
        // SAFETY: a SafeCopy accepts any source and reports a fault; `buf` is a
        // writable Rust slice of exactly `buf.len()` bytes.
        if unsafe { copy(buf.as_mut_ptr(), va as *const u8, buf.len()) } != 0 {
            return Err(Error::Fault { addr: va });
        }
        return Ok(());
    }
    let local = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    let remote = libc::iovec {
        iov_base: va as *mut libc::c_void,
        iov_len: buf.len(),
    };
    // SAFETY: the local iovec covers `buf` exactly; the kernel checks the remote
    // one and reports a bad address as an error, never as a fault.
    let n = unsafe { libc::process_vm_readv(libc::getpid(), &local, 1, &remote, 1, 0) };
    if n < 0 || n as usize != buf.len() {
        return Err(Error::Fault {
            addr: va.wrapping_add(n.max(0) as u64),
        });
    }
    Ok(())
}

/// Writes the calling process's memory at `va`, EFAULT where it is not writable.
pub fn write_self(va: u64, buf: &[u8]) -> Result<()> {
    if let Some(copy) = safe_copy() {
        user_range(va, buf.len())?;
        // SAFETY: a SafeCopy accepts any destination and reports a fault; `buf` is
        // a readable Rust slice.
        if unsafe { copy(va as *mut u8, buf.as_ptr(), buf.len()) } != 0 {
            return Err(Error::Fault { addr: va });
        }
        return Ok(());
    }
    let local = libc::iovec {
        iov_base: buf.as_ptr() as *mut libc::c_void,
        iov_len: buf.len(),
    };
    let remote = libc::iovec {
        iov_base: va as *mut libc::c_void,
        iov_len: buf.len(),
    };
    // SAFETY: as in read_self; the local buffer is only read by the kernel.
    let n = unsafe { libc::process_vm_writev(libc::getpid(), &local, 1, &remote, 1, 0) };
    if n < 0 || n as usize != buf.len() {
        return Err(Error::Fault {
            addr: va.wrapping_add(n.max(0) as u64),
        });
    }
    Ok(())
}

/// Maps `len` bytes of the file `fd` at `offset` shared, for pinning by offset.
pub fn map_file(fd: i32, offset: u64, len: usize, write: bool) -> Result<usize> {
    let prot = libc::PROT_READ | if write { libc::PROT_WRITE } else { 0 };
    let off = libc::off_t::try_from(offset).map_err(|_| Error::Overflow("file offset"))?;
    // SAFETY: a new shared mapping at a kernel-chosen address touches no existing
    // memory; the result is checked.
    let p = unsafe { libc::mmap(std::ptr::null_mut(), len, prot, libc::MAP_SHARED, fd, off) };
    if p == libc::MAP_FAILED {
        return Err(Error::Invalid("file cannot be mapped"));
    }
    Ok(p as usize)
}

/// Undoes [`map_file`].
///
/// # Safety
/// `addr`/`len` must be a mapping returned by [`map_file`] that nothing refers to.
pub unsafe fn unmap(addr: usize, len: usize) {
    // SAFETY: guaranteed by the caller.
    unsafe {
        libc::munmap(addr as *mut libc::c_void, len);
    }
}

/// Moves the pages of `[va, va + len)` (one mapping, page aligned) to a new
/// hidden address, keeping their contents; the old range is left unmapped.
/// Returns the new address.
pub fn move_pages(va: usize, len: usize) -> Result<usize> {
    // SAFETY: a fresh inaccessible reservation at a kernel-chosen address touches
    // no existing memory; the result is checked.
    let hidden = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_NONE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
            -1,
            0,
        )
    };
    if hidden == libc::MAP_FAILED {
        return Err(Error::NoMem("cannot reserve room for moved pages"));
    }
    // SAFETY: the destination is our own reservation of the same length, which
    // MREMAP_FIXED replaces; the source is the caller's range, which the program
    // is about to unmap anyway. On failure nothing moved and the reservation is
    // released.
    let moved = unsafe {
        libc::mremap(
            va as *mut libc::c_void,
            len,
            len,
            libc::MREMAP_MAYMOVE | libc::MREMAP_FIXED,
            hidden,
        )
    };
    if moved == libc::MAP_FAILED {
        // SAFETY: `hidden` is the reservation made above; nothing refers to it.
        unsafe { libc::munmap(hidden, len) };
        return Err(Error::Fault { addr: va as u64 });
    }
    Ok(moved as usize)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_ranges_stop_below_the_kernel_half_and_never_wrap() {
        assert!(user_range(0x1000, 8).is_ok());
        assert!(user_range(USER_END - 8, 8).is_ok());
        assert!(user_range(USER_END - 8, 9).is_err());
        assert!(user_range(u64::MAX - 3, 8).is_err());
        assert!(user_range(0, 0).is_ok());
    }
}
