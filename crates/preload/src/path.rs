//! Which paths are ours.
//!
//! `/dev/iommu`, however spelled: repeated slashes and `.` components are
//! dropped (the kernel's path walk ignores them), and a relative path is taken
//! against the directory it is relative to — the working directory for
//! `AT_FDCWD`, or what `/proc/self/fd/N` names for a directory descriptor. That
//! lookup costs a system call, so it is made only for paths whose last component
//! is `iommu`. A path with `..` is left to libc: which directory `..` leads to
//! depends on symlinks, and guessing wrong would take a file that is not ours.
//! A trailing slash is left to libc too (the kernel says ENOTDIR or ENOENT).

/// The paths softiommu answers for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ours {
    /// `/dev/iommu`.
    Iommu,
}

/// Classifies `path` (without its NUL). `dir` gives the absolute directory a
/// relative path is relative to, and is only called for a plausible one.
pub fn classify(path: &[u8], dir: impl FnOnce() -> Option<Vec<u8>>) -> Option<Ours> {
    if path.is_empty() || path.ends_with(b"/") {
        return None;
    }
    if path.rsplit(|b| *b == b'/').next() != Some(b"iommu") {
        return None;
    }
    let base = if path[0] == b'/' { Vec::new() } else { dir()? };
    if !base.starts_with(b"/") && !base.is_empty() {
        return None;
    }
    let mut comps: Vec<&[u8]> = Vec::new();
    for c in base.split(|b| *b == b'/').chain(path.split(|b| *b == b'/')) {
        match c {
            b"" | b"." => {}
            b".." => return None,
            c => comps.push(c),
        }
    }
    (comps == [b"dev".as_slice(), b"iommu".as_slice()]).then_some(Ours::Iommu)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn abs(p: &str) -> Option<Ours> {
        classify(p.as_bytes(), || panic!("no directory lookup for {p}"))
    }

    #[test]
    fn absolute_spellings() {
        assert_eq!(abs("/dev/iommu"), Some(Ours::Iommu));
        assert_eq!(abs("//dev//iommu"), Some(Ours::Iommu));
        assert_eq!(abs("/./dev/./iommu"), Some(Ours::Iommu));
        assert_eq!(abs("/dev/iommu/"), None);
        assert_eq!(abs("/dev/../dev/iommu"), None);
        assert_eq!(abs("/tmp/dev/iommu"), None);
        assert_eq!(abs("/dev/iommu0"), None);
        assert_eq!(abs("/dev/vfio/vfio"), None);
        assert_eq!(abs("/etc/passwd"), None);
    }

    #[test]
    fn relative_paths_ask_for_the_directory_only_when_plausible() {
        let dev = || Some(b"/dev".to_vec());
        assert_eq!(classify(b"iommu", dev), Some(Ours::Iommu));
        assert_eq!(classify(b"./iommu", dev), Some(Ours::Iommu));
        assert_eq!(
            classify(b"dev/iommu", || Some(b"/".to_vec())),
            Some(Ours::Iommu)
        );
        assert_eq!(classify(b"iommu", || Some(b"/tmp".to_vec())), None);
        assert_eq!(classify(b"iommu", || None), None);
        assert_eq!(classify(b"null", || panic!("looked up")), None);
        assert_eq!(classify(b"", || panic!("looked up")), None);
    }
}
