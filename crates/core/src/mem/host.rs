//! The unsafe edge of the memory model: host mappings and byte copies.
//!
//! Everything here that dereferences a host address is in this file, so that one
//! look finds the whole surface. The invariant the rest of the crate keeps: a host
//! address is only dereferenced while the frames it belongs to are pinned by a
//! [`super::FrameRun`] holder, and every implementation of
//! [`super::AddressSpace`] / [`super::FileSource`] hands out host addresses that stay
//! valid for as long as the frames are pinned.
#![allow(unsafe_code)]

use crate::error::{Error, Result};

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

/// Copies `buf.len()` bytes from host address `host` into `buf`.
///
/// # Safety
/// `[host, host + buf.len())` must be readable memory that stays mapped for the
/// duration of the call (pinned frames, or a region owned by the caller).
pub unsafe fn copy_out(host: usize, buf: &mut [u8]) {
    // SAFETY: the caller guarantees the source is mapped; `buf` is a distinct Rust
    // slice, so the two cannot overlap.
    unsafe { std::ptr::copy_nonoverlapping(host as *const u8, buf.as_mut_ptr(), buf.len()) }
}

/// Copies `buf` to host address `host`.
///
/// # Safety
/// `[host, host + buf.len())` must be writable memory that stays mapped for the
/// duration of the call.
pub unsafe fn copy_in(host: usize, buf: &[u8]) {
    // SAFETY: the caller guarantees the destination is mapped and writable; `buf`
    // is a distinct Rust slice.
    unsafe { std::ptr::copy_nonoverlapping(buf.as_ptr(), host as *mut u8, buf.len()) }
}

/// Reads the calling process's memory at `va` without trusting it: an address the
/// process does not have gives EFAULT instead of a fault in our code.
pub fn read_self(va: u64, buf: &mut [u8]) -> Result<()> {
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
