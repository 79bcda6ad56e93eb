//! Linux ioctl request numbers, built and taken apart.
//!
//! These are `const fn` counterparts of the `_IOC` family from
//! `asm-generic/ioctl.h`, the layout shared by x86_64, aarch64 and riscv64:
//!
//! ```text
//!  31 30 29                 16 15         8 7          0
//! +-----+---------------------+------------+------------+
//! | dir |        size         |    type    |     nr     |
//! +-----+---------------------+------------+------------+
//! ```
//!
//! Request numbers are `u32` here: every field fits in 32 bits, and callers widen to
//! the `c_ulong` (glibc) or `c_int` (musl) that their `ioctl` prototype wants.
//!
//! The C macros silently let an oversized field spill into its neighbour (only the
//! size is checked, and only at compile time). These functions check every field and
//! panic instead, which in a `const` item is a compile error.
//!
//! Note that iommufd itself builds all its numbers with [`_IO`]: no direction and no
//! size, because every argument carries its own length in its first `u32`.
//!
//! The names keep the C spelling so that code can be compared with the header.

#![allow(non_snake_case)]

/// Width of the command-number field.
pub const _IOC_NRBITS: u32 = 8;
/// Width of the type (driver "magic") field.
pub const _IOC_TYPEBITS: u32 = 8;
/// Width of the argument-size field.
pub const _IOC_SIZEBITS: u32 = 14;
/// Width of the direction field.
pub const _IOC_DIRBITS: u32 = 2;

/// Mask for the command number, after shifting.
pub const _IOC_NRMASK: u32 = (1 << _IOC_NRBITS) - 1;
/// Mask for the type, after shifting.
pub const _IOC_TYPEMASK: u32 = (1 << _IOC_TYPEBITS) - 1;
/// Mask for the size, after shifting.
pub const _IOC_SIZEMASK: u32 = (1 << _IOC_SIZEBITS) - 1;
/// Mask for the direction, after shifting.
pub const _IOC_DIRMASK: u32 = (1 << _IOC_DIRBITS) - 1;

/// Bit position of the command number.
pub const _IOC_NRSHIFT: u32 = 0;
/// Bit position of the type.
pub const _IOC_TYPESHIFT: u32 = _IOC_NRSHIFT + _IOC_NRBITS;
/// Bit position of the size.
pub const _IOC_SIZESHIFT: u32 = _IOC_TYPESHIFT + _IOC_TYPEBITS;
/// Bit position of the direction.
pub const _IOC_DIRSHIFT: u32 = _IOC_SIZESHIFT + _IOC_SIZEBITS;

/// Direction: no data transfer.
pub const _IOC_NONE: u32 = 0;
/// Direction: user space writes, the kernel reads the argument.
pub const _IOC_WRITE: u32 = 1;
/// Direction: the kernel writes, user space reads the argument.
pub const _IOC_READ: u32 = 2;

/// Pre-shifted `_IOC_WRITE`, as some user-space code spells it.
pub const IOC_IN: u32 = _IOC_WRITE << _IOC_DIRSHIFT;
/// Pre-shifted `_IOC_READ`.
pub const IOC_OUT: u32 = _IOC_READ << _IOC_DIRSHIFT;
/// Pre-shifted `_IOC_READ | _IOC_WRITE`.
pub const IOC_INOUT: u32 = (_IOC_WRITE | _IOC_READ) << _IOC_DIRSHIFT;
/// The size field in place.
pub const IOCSIZE_MASK: u32 = _IOC_SIZEMASK << _IOC_SIZESHIFT;
/// Same as [`_IOC_SIZESHIFT`].
pub const IOCSIZE_SHIFT: u32 = _IOC_SIZESHIFT;

/// Builds a request number from its four fields.
///
/// # Panics
///
/// If a field does not fit its width (a compile error when evaluated in a `const`).
pub const fn _IOC(dir: u32, ty: u32, nr: u32, size: u32) -> u32 {
    assert!(
        dir <= _IOC_DIRMASK,
        "ioctl direction does not fit in 2 bits"
    );
    assert!(ty <= _IOC_TYPEMASK, "ioctl type does not fit in 8 bits");
    assert!(nr <= _IOC_NRMASK, "ioctl number does not fit in 8 bits");
    assert!(
        size <= _IOC_SIZEMASK,
        "ioctl argument size does not fit in 14 bits"
    );
    (dir << _IOC_DIRSHIFT)
        | (ty << _IOC_TYPESHIFT)
        | (nr << _IOC_NRSHIFT)
        | (size << _IOC_SIZESHIFT)
}

/// The size of `T` as an ioctl size field; the counterpart of `_IOC_TYPECHECK`.
///
/// # Panics
///
/// If `T` is larger than the 14-bit size field allows.
pub const fn _IOC_TYPECHECK<T>() -> u32 {
    let size = core::mem::size_of::<T>();
    assert!(
        size <= _IOC_SIZEMASK as usize,
        "ioctl argument type is too large"
    );
    size as u32
}

/// A request with no argument data (iommufd uses this for all its requests).
pub const fn _IO(ty: u32, nr: u32) -> u32 {
    _IOC(_IOC_NONE, ty, nr, 0)
}

/// A request whose argument of type `T` the kernel writes.
pub const fn _IOR<T>(ty: u32, nr: u32) -> u32 {
    _IOC(_IOC_READ, ty, nr, _IOC_TYPECHECK::<T>())
}

/// A request whose argument of type `T` the kernel reads.
pub const fn _IOW<T>(ty: u32, nr: u32) -> u32 {
    _IOC(_IOC_WRITE, ty, nr, _IOC_TYPECHECK::<T>())
}

/// A request whose argument of type `T` the kernel both reads and writes.
pub const fn _IOWR<T>(ty: u32, nr: u32) -> u32 {
    _IOC(_IOC_READ | _IOC_WRITE, ty, nr, _IOC_TYPECHECK::<T>())
}

/// The direction field of a request number.
pub const fn _IOC_DIR(req: u32) -> u32 {
    (req >> _IOC_DIRSHIFT) & _IOC_DIRMASK
}

/// The type field of a request number.
pub const fn _IOC_TYPE(req: u32) -> u32 {
    (req >> _IOC_TYPESHIFT) & _IOC_TYPEMASK
}

/// The command-number field of a request number.
pub const fn _IOC_NR(req: u32) -> u32 {
    (req >> _IOC_NRSHIFT) & _IOC_NRMASK
}

/// The argument-size field of a request number.
pub const fn _IOC_SIZE(req: u32) -> u32 {
    (req >> _IOC_SIZESHIFT) & _IOC_SIZEMASK
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_round_trip() {
        let req = _IOC(_IOC_READ | _IOC_WRITE, 0xab, 0xcd, 0x1234);
        assert_eq!(_IOC_DIR(req), _IOC_READ | _IOC_WRITE);
        assert_eq!(_IOC_TYPE(req), 0xab);
        assert_eq!(_IOC_NR(req), 0xcd);
        assert_eq!(_IOC_SIZE(req), 0x1234);
    }

    #[test]
    #[should_panic(expected = "ioctl number does not fit")]
    fn oversized_nr_is_rejected() {
        let nr = std::hint::black_box(0x100);
        _IO(0x3b, nr);
    }

    #[test]
    #[should_panic(expected = "ioctl argument size does not fit")]
    fn oversized_size_is_rejected() {
        let size = std::hint::black_box(1 << 14);
        _IOC(_IOC_READ, 0x3b, 0, size);
    }
}
