//! The user's dirty bitmap (the kernel's `iova_bitmap.c`).
//!
//! `IOMMU_HWPT_GET_DIRTY_BITMAP` hands over a bitmap in the caller's memory in
//! which bit `n` stands for the `page_size` bytes at `iova + n * page_size`, in
//! 64-bit little-endian words (on the little-endian hosts we run on, bit `n` is bit
//! `n % 8` of byte `n / 8`). A walk of the domain reports dirty IOVA ranges;
//! [`IovaBitmap::set`] turns each into bits and ORs them into the caller's bytes:
//! bits already set stay set and no bit is ever cleared, as the kernel's
//! `iova_bitmap_set` does. A report that reaches past the bitmap's range (a huge
//! IOPTE that straddles its end) is clipped to it.
//!
//! The bitmap is written as the walk goes, one read-modify-write of the bytes a
//! report covers, so memory stays proportional to what is dirty. The first
//! failed access to the caller's memory is kept and ends the operation with
//! EFAULT; bits written before it stay, as with the kernel's pinned pages.

use crate::error::{Error, Result};
use crate::mem::AddressSpace;

/// A dirty bitmap in the caller's memory.
#[derive(Debug)]
pub struct IovaBitmap<'a> {
    mem: &'a dyn AddressSpace,
    /// IOVA of bit 0.
    iova: u64,
    /// log2 of the bytes of IOVA per bit.
    pgshift: u32,
    /// Number of bits: the range's length in pages.
    nbits: u64,
    /// User address of the bitmap.
    data: u64,
    /// The first failure to write the caller's memory.
    error: Option<Error>,
}

impl<'a> IovaBitmap<'a> {
    /// The bitmap at `data` for `[iova, iova + length)` with `page_size` bytes per
    /// bit. `page_size` is a non-zero power of two and `length` a multiple of it
    /// (the caller has checked the range).
    pub fn new(
        mem: &'a dyn AddressSpace,
        iova: u64,
        length: u64,
        page_size: u64,
        data: u64,
    ) -> Self {
        let pgshift = page_size.trailing_zeros();
        IovaBitmap {
            mem,
            iova,
            pgshift,
            nbits: length >> pgshift,
            data,
            error: None,
        }
    }

    /// Sets the bits of `[iova, iova + length)`, clipped to the bitmap.
    pub fn set(&mut self, iova: u64, length: u64) {
        if self.error.is_some() || length == 0 || self.nbits == 0 {
            return;
        }
        let Some(last_iova) = iova.checked_add(length - 1) else {
            return;
        };
        if last_iova < self.iova {
            return;
        }
        let first = iova.saturating_sub(self.iova) >> self.pgshift;
        let last = ((last_iova - self.iova) >> self.pgshift).min(self.nbits - 1);
        if first > last {
            return;
        }
        if let Err(e) = self.or_bits(first, last) {
            self.error = Some(e);
        }
    }

    fn or_bits(&self, first: u64, last: u64) -> Result<()> {
        let first_byte = first / 8;
        let n = (last / 8 - first_byte + 1) as usize;
        let addr = self
            .data
            .checked_add(first_byte)
            .ok_or(Error::Fault { addr: self.data })?;
        let mut bytes = vec![0u8; n];
        self.mem.read(addr, &mut bytes)?;
        for bit in first..=last {
            bytes[(bit / 8 - first_byte) as usize] |= 1 << (bit % 8);
        }
        self.mem.write(addr, &bytes)
    }

    /// Ends the walk: the first failure to reach the caller's memory, if any.
    pub fn finish(self) -> Result<()> {
        match self.error {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}
