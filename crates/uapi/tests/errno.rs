//! Checks every `Errno` constant against the values libc takes from the C headers.

use softiommu_uapi::Errno;

macro_rules! same_as_libc {
    ($($name:ident),+ $(,)?) => {
        #[test]
        fn values_match_libc() {
            $(
                assert_eq!(Errno::$name.raw(), libc::$name, stringify!($name));
            )+
        }

        #[test]
        fn names_round_trip() {
            $(
                let name = Errno::$name.name().expect(stringify!($name));
                // Aliases report the canonical name, which must have the same value.
                assert_eq!(Errno(libc::$name).name(), Some(name), stringify!($name));
            )+
        }
    };
}

same_as_libc!(
    EPERM,
    ENOENT,
    ESRCH,
    EINTR,
    EIO,
    ENXIO,
    E2BIG,
    ENOEXEC,
    EBADF,
    ECHILD,
    EAGAIN,
    ENOMEM,
    EACCES,
    EFAULT,
    ENOTBLK,
    EBUSY,
    EEXIST,
    EXDEV,
    ENODEV,
    ENOTDIR,
    EISDIR,
    EINVAL,
    ENFILE,
    EMFILE,
    ENOTTY,
    ETXTBSY,
    EFBIG,
    ENOSPC,
    ESPIPE,
    EROFS,
    EMLINK,
    EPIPE,
    EDOM,
    ERANGE,
    EDEADLK,
    ENAMETOOLONG,
    ENOLCK,
    ENOSYS,
    ENOTEMPTY,
    ELOOP,
    EBADE,
    ENODATA,
    EBADMSG,
    EOVERFLOW,
    EBADFD,
    EMSGSIZE,
    EOPNOTSUPP,
    ENOTSUP,
    EADDRINUSE,
    ENOTCONN,
    ETIMEDOUT,
    EALREADY,
    ECANCELED,
    EWOULDBLOCK,
);

#[test]
fn aliases_share_values() {
    assert_eq!(Errno::ENOTSUP, Errno::EOPNOTSUPP);
    assert_eq!(Errno::EWOULDBLOCK, Errno::EAGAIN);
    assert_eq!(Errno::ENOTSUP.name(), Some("EOPNOTSUPP"));
}
