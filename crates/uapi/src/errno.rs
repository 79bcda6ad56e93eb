//! Linux error numbers as an open newtype.
//!
//! [`Errno`] wraps the raw `i32` that a system call leaves in `errno`. It is a newtype
//! with associated constants rather than an exhaustive enum, the way rustix does it:
//! the host kernel (or a program talking to us) may hand back an error number this
//! crate has never heard of, and such a value must survive a round trip unchanged.
//!
//! The values are those of the generic Linux table (`asm-generic/errno-base.h` and
//! `asm-generic/errno.h`), which x86_64, aarch64 and riscv64 use. Architectures with
//! their own numbering (alpha, mips, parisc, sparc) are not supported by this project.
//!
//! The iommufd uAPI gives a handful of these a fixed meaning for every ioctl
//! (ENOTTY, E2BIG, EOPNOTSUPP, EINVAL, ENOENT, ENOMEM, EOVERFLOW); the mapping from
//! internal errors to those lives in the core crate, at the boundary, not here.

use core::fmt;

/// A Linux error number (the positive value stored in `errno`).
///
/// Unknown values are kept as they are; [`Errno::name`] returns `None` for them and
/// formatting falls back to the number.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Errno(pub i32);

/// Defines the associated constants and the name table from one list, so the two
/// cannot drift apart.
macro_rules! errnos {
    ($($(#[$doc:meta])* $name:ident = $value:literal,)*) => {
        impl Errno {
            $(
                $(#[$doc])*
                pub const $name: Errno = Errno($value);
            )*

            /// The symbolic name (`"ENOENT"`), or `None` for a number this crate does
            /// not know. Aliases report their canonical name (`ENOTSUP` → `"EOPNOTSUPP"`).
            pub const fn name(self) -> Option<&'static str> {
                match self.0 {
                    $($value => Some(stringify!($name)),)*
                    _ => None,
                }
            }
        }
    };
}

errnos! {
    /// Not permitted: the caller lacks the needed privilege or ownership.
    EPERM = 1,
    /// No such file, directory, object ID or IOVA.
    ENOENT = 2,
    /// No such process.
    ESRCH = 3,
    /// Interrupted by a signal before completion.
    EINTR = 4,
    /// Input/output error; iommufd drivers also use it for rejected hardware data.
    EIO = 5,
    /// No such device or address (e.g. a bad mmap offset on the iommufd).
    ENXIO = 6,
    /// Argument too big: for iommufd, non-zero bytes past the part the kernel knows.
    E2BIG = 7,
    /// Not an executable format.
    ENOEXEC = 8,
    /// Not an open file descriptor.
    EBADF = 9,
    /// No child process to wait for.
    ECHILD = 10,
    /// Try again later (same value as `EWOULDBLOCK`).
    EAGAIN = 11,
    /// Out of memory.
    ENOMEM = 12,
    /// Access denied by permissions.
    EACCES = 13,
    /// A user pointer does not point at accessible memory.
    EFAULT = 14,
    /// A block device was required.
    ENOTBLK = 15,
    /// The object is in use.
    EBUSY = 16,
    /// The object already exists.
    EEXIST = 17,
    /// Cross-device link.
    EXDEV = 18,
    /// No such device, or the device does not support the operation.
    ENODEV = 19,
    /// A path component is not a directory.
    ENOTDIR = 20,
    /// The path is a directory.
    EISDIR = 21,
    /// An argument is understood but not acceptable.
    EINVAL = 22,
    /// The system-wide open file table is full.
    ENFILE = 23,
    /// The per-process file descriptor limit is reached.
    EMFILE = 24,
    /// The ioctl number is not supported by this file.
    ENOTTY = 25,
    /// The executable file is busy.
    ETXTBSY = 26,
    /// The file would grow too large.
    EFBIG = 27,
    /// No space left (for iommufd: no free IOVA range).
    ENOSPC = 28,
    /// The file cannot seek.
    ESPIPE = 29,
    /// The file system is read-only.
    EROFS = 30,
    /// Too many hard links.
    EMLINK = 31,
    /// The reading end of a pipe is closed.
    EPIPE = 32,
    /// A math argument is out of the function's domain.
    EDOM = 33,
    /// A result is out of range.
    ERANGE = 34,
    /// The operation would deadlock.
    EDEADLK = 35,
    /// A file name is too long.
    ENAMETOOLONG = 36,
    /// No record locks are available.
    ENOLCK = 37,
    /// The system call or operation is not implemented.
    ENOSYS = 38,
    /// The directory is not empty.
    ENOTEMPTY = 39,
    /// Too many levels of symbolic links.
    ELOOP = 40,
    /// Invalid exchange.
    EBADE = 52,
    /// No data is available.
    ENODATA = 61,
    /// The message is malformed.
    EBADMSG = 74,
    /// An arithmetic result does not fit its type.
    EOVERFLOW = 75,
    /// The file descriptor is in a bad state.
    EBADFD = 77,
    /// The message or buffer size is wrong (iommufd: output array too small).
    EMSGSIZE = 90,
    /// The request is understood but a value in it is not supported.
    EOPNOTSUPP = 95,
    /// The address (for iommufd: the IOVA range) is already in use.
    EADDRINUSE = 98,
    /// The endpoint is not connected.
    ENOTCONN = 107,
    /// The operation timed out.
    ETIMEDOUT = 110,
    /// The operation is already in progress or done.
    EALREADY = 114,
    /// The operation was cancelled.
    ECANCELED = 125,
}

impl Errno {
    /// Alias of [`Errno::EOPNOTSUPP`]; Linux gives both names the same number.
    pub const ENOTSUP: Errno = Errno::EOPNOTSUPP;
    /// Alias of [`Errno::EAGAIN`]; Linux gives both names the same number.
    pub const EWOULDBLOCK: Errno = Errno::EAGAIN;

    /// Wraps a raw, positive error number.
    pub const fn from_raw(raw: i32) -> Errno {
        Errno(raw)
    }

    /// The raw, positive error number.
    pub const fn raw(self) -> i32 {
        self.0
    }
}

impl fmt::Debug for Errno {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl fmt::Display for Errno {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(name) => f.write_str(name),
            None => write!(f, "{}", self.0),
        }
    }
}

impl std::error::Error for Errno {}

#[cfg(test)]
mod tests {
    use super::Errno;

    #[test]
    fn names_and_formatting() {
        assert_eq!(Errno::ENOENT.name(), Some("ENOENT"));
        assert_eq!(Errno::ENOTSUP.name(), Some("EOPNOTSUPP"));
        assert_eq!(Errno(4095).name(), None);
        assert_eq!(Errno::E2BIG.to_string(), "E2BIG");
        assert_eq!(format!("{:?}", Errno::EOVERFLOW), "EOVERFLOW");
        assert_eq!(Errno(4095).to_string(), "4095");
        assert_eq!(format!("{:?}", Errno(-3)), "-3");
        assert_eq!(Errno::from_raw(22), Errno::EINVAL);
        assert_eq!(Errno::EINVAL.raw(), 22);
    }

    #[test]
    fn boxed_as_std_error() {
        let err: Box<dyn std::error::Error> = Box::new(Errno::EBUSY);
        assert_eq!(err.to_string(), "EBUSY");
    }
}
