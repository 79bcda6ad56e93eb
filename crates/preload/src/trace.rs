//! `SOFTIOMMU_TRACE`: one line per call on our fds, decoded like strace does.
//!
//! `SOFTIOMMU_TRACE=stderr` (or `1`, or empty) writes to fd 2; any other value is
//! a file, opened for appending (so a parent and its forked child interleave
//! whole lines). The variable is read once, at the first traced call. The trace
//! file's descriptor is the program's to close too: before each line we check it
//! is still the file we opened, so a line never lands in one of the program's
//! files.

use crate::real;
use softiommu::uapi::Errno;
use std::fmt;
use std::fs::OpenOptions;
use std::os::fd::IntoRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::sync::OnceLock;

#[derive(Debug)]
enum Out {
    Stderr,
    /// The trace file: a descriptor of ours, moved up out of the way of the
    /// program's numbering, and its identity.
    File {
        fd: i32,
        key: (u64, u64),
    },
}

fn out() -> Option<&'static Out> {
    static OUT: OnceLock<Option<Out>> = OnceLock::new();
    OUT.get_or_init(|| {
        let v = std::env::var_os("SOFTIOMMU_TRACE")?;
        if v.is_empty() || v == "stderr" || v == "1" {
            return Some(Out::Stderr);
        }
        let file = OpenOptions::new()
            .append(true)
            .create(true)
            .custom_flags(libc::O_CLOEXEC)
            .open(&v)
            .ok()?;
        let fd = real::move_high(file.into_raw_fd());
        let key = real::file_key(fd).ok()?;
        Some(Out::File { fd, key })
    })
    .as_ref()
}

/// Whether calls are traced.
pub fn enabled() -> bool {
    out().is_some()
}

/// Writes one line.
pub fn line(args: fmt::Arguments) {
    let Some(out) = out() else { return };
    let mut s = fmt::format(args);
    s.push('\n');
    match out {
        Out::Stderr => real::write_all(2, s.as_bytes()),
        Out::File { fd, key } => {
            if real::file_key(*fd).ok() == Some(*key) {
                real::write_all(*fd, s.as_bytes());
            }
        }
    }
}

/// `= 3`, `= -1 ENOENT`.
pub struct Ret<'a>(pub &'a Result<i32, Errno>);

impl fmt::Display for Ret<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Ok(v) => write!(f, "= {v}"),
            Err(e) => match e.name() {
                Some(name) => write!(f, "= -1 {name}"),
                None => write!(f, "= -1 errno {}", e.0),
            },
        }
    }
}

/// A directory descriptor as strace prints it.
pub struct Dirfd(pub i32);

impl fmt::Display for Dirfd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0 == libc::AT_FDCWD {
            f.write_str("AT_FDCWD")
        } else {
            write!(f, "{}", self.0)
        }
    }
}

/// Open flags as strace prints them: `O_RDWR|O_CLOEXEC`.
pub struct OpenFlags(pub i32);

impl fmt::Display for OpenFlags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const NAMES: &[(i32, &str)] = &[
            (libc::O_CREAT, "O_CREAT"),
            (libc::O_EXCL, "O_EXCL"),
            (libc::O_NOCTTY, "O_NOCTTY"),
            (libc::O_TRUNC, "O_TRUNC"),
            (libc::O_APPEND, "O_APPEND"),
            (libc::O_NONBLOCK, "O_NONBLOCK"),
            (libc::O_DSYNC, "O_DSYNC"),
            (libc::O_DIRECT, "O_DIRECT"),
            (libc::O_LARGEFILE, "O_LARGEFILE"),
            (libc::O_DIRECTORY, "O_DIRECTORY"),
            (libc::O_NOFOLLOW, "O_NOFOLLOW"),
            (libc::O_NOATIME, "O_NOATIME"),
            (libc::O_CLOEXEC, "O_CLOEXEC"),
        ];
        let mut rest = self.0;
        f.write_str(match rest & libc::O_ACCMODE {
            libc::O_RDONLY => "O_RDONLY",
            libc::O_WRONLY => "O_WRONLY",
            libc::O_RDWR => "O_RDWR",
            _ => "O_ACCMODE",
        })?;
        rest &= !libc::O_ACCMODE;
        for &(bit, name) in NAMES {
            if bit != 0 && rest & bit == bit {
                write!(f, "|{name}")?;
                rest &= !bit;
            }
        }
        if rest != 0 {
            write!(f, "|{rest:#o}")?;
        }
        Ok(())
    }
}

/// Strips the leading struct name of a `{:x?}` rendering, leaving `{ ... }`.
pub fn strip_type(s: &str) -> &str {
    match s.find('{') {
        Some(i)
            if s[..i]
                .trim()
                .chars()
                .all(|c| c.is_alphanumeric() || c == '_') =>
        {
            &s[i..]
        }
        _ => s,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats() {
        assert_eq!(Ret(&Ok(3)).to_string(), "= 3");
        assert_eq!(Ret(&Err(Errno::ENOENT)).to_string(), "= -1 ENOENT");
        assert_eq!(
            OpenFlags(libc::O_RDWR | libc::O_CLOEXEC).to_string(),
            "O_RDWR|O_CLOEXEC"
        );
        assert_eq!(Dirfd(libc::AT_FDCWD).to_string(), "AT_FDCWD");
        assert_eq!(
            strip_type("iommu_destroy { size: 0x8, id: 0x1 }"),
            "{ size: 0x8, id: 0x1 }"
        );
    }
}
