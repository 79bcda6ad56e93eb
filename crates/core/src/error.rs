//! The crate's error type.
//!
//! Inside the library an [`Error`] says what went wrong in words a reader of a log
//! understands; at the uAPI boundary [`Error::errno`] gives the one errno the kernel
//! returns for the same condition. Most variants carry the errno the kernel uses for
//! the condition they describe, so that adding a condition never means touching a
//! second table.

use softiommu_uapi::Errno;

/// Everything that can go wrong in softiommu.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// A user argument is wrong; the message names the argument.
    #[error("invalid argument: {0}")]
    Invalid(&'static str),
    /// A flag, option or type value that the model does not support.
    #[error("not supported: {0}")]
    NotSupported(&'static str),
    /// An object ID does not exist or is of the wrong type.
    #[error("no object {id} of the requested type")]
    NoObject {
        /// The ID that was looked up.
        id: u32,
    },
    /// An IOVA range holds nothing to operate on.
    #[error("nothing is mapped at {0}")]
    NotMapped(&'static str),
    /// Arithmetic on user values overflowed.
    #[error("arithmetic overflow: {0}")]
    Overflow(&'static str),
    /// The object or range is in use by someone else.
    #[error("busy: {0}")]
    Busy(&'static str),
    /// The IOVA range is already mapped.
    #[error("IOVA range already mapped")]
    Exists,
    /// The IOVA range collides with a reserved or allowed range.
    #[error("IOVA range in use: {0}")]
    AddrInUse(&'static str),
    /// No free IOVA range of the requested size and alignment.
    #[error("no free IOVA space")]
    NoSpace,
    /// User memory that is not mapped, or not with the permission asked for.
    #[error("bad address {addr:#x}")]
    Fault {
        /// The first user address that failed.
        addr: u64,
    },
    /// Out of memory, or over the locked-memory limit.
    #[error("out of memory: {0}")]
    NoMem(&'static str),
    /// Writing a mapping whose memory is read-only.
    #[error("permission denied: {0}")]
    Perm(&'static str),
    /// A test check found a mismatch; carries the errno the kernel's check returns.
    #[error("check failed: {what}")]
    Check {
        /// What did not match.
        what: &'static str,
        /// The errno the kernel's check returns for it.
        errno: Errno,
    },
    /// An armed fault-injection point fired.
    #[error("injected failure at {point}")]
    Injected {
        /// Name of the injection point.
        point: &'static str,
        /// The errno the real failure at this point would give.
        errno: Errno,
    },
    /// A machine description that cannot be parsed, or that describes no
    /// possible machine; the message names the key or the device.
    #[error("bad machine description: {0}")]
    Machine(String),
    /// Any other condition, described by its errno.
    #[error("{what} ({errno})")]
    Other {
        /// What happened.
        what: &'static str,
        /// The kernel's errno for it.
        errno: Errno,
    },
}

impl Error {
    /// The errno the kernel returns for this condition.
    pub fn errno(&self) -> Errno {
        match self {
            Error::Invalid(_) | Error::Machine(_) => Errno::EINVAL,
            Error::NotSupported(_) => Errno::EOPNOTSUPP,
            Error::NoObject { .. } | Error::NotMapped(_) => Errno::ENOENT,
            Error::Overflow(_) => Errno::EOVERFLOW,
            Error::Busy(_) => Errno::EBUSY,
            Error::Exists => Errno::EEXIST,
            Error::AddrInUse(_) => Errno::EADDRINUSE,
            Error::NoSpace => Errno::ENOSPC,
            Error::Fault { .. } => Errno::EFAULT,
            Error::NoMem(_) => Errno::ENOMEM,
            Error::Perm(_) => Errno::EPERM,
            Error::Check { errno, .. }
            | Error::Injected { errno, .. }
            | Error::Other { errno, .. } => *errno,
        }
    }
}

/// The crate's result type.
pub type Result<T, E = Error> = core::result::Result<T, E>;
