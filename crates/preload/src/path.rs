//! Which paths are ours.
//!
//! `/dev/iommu`, `/dev/vfio/vfio`, `/dev/vfio/<N>` and
//! `/dev/vfio/devices/vfioN`, however
//! spelled: repeated slashes and `.` components are dropped (the kernel's path
//! walk ignores them), and a relative path is taken against the directory it is
//! relative to — the working directory for `AT_FDCWD`, or what
//! `/proc/self/fd/N` names for a directory descriptor. That lookup costs a
//! system call, so it is made only for paths whose last component could name
//! one of ours. A path with `..` is left to libc: which directory `..` leads to
//! depends on symlinks, and guessing wrong would take a file that is not ours.
//! A trailing slash is left to libc too (the kernel says ENOTDIR or ENOENT).

/// The paths softiommu answers for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ours {
    /// `/dev/iommu`.
    Iommu,
    /// `/dev/vfio/vfio`: the VFIO container, an iommufd speaking type1.
    VfioContainer,
    /// `/dev/vfio/devices/vfioN`: a VFIO device's cdev.
    VfioDevice(u32),
    /// `/dev/vfio/<N>`: the VFIO group of IOMMU group `N`.
    VfioGroup(u32),
}

/// A decimal number without a sign or leading zeros (as the kernel names its
/// nodes).
fn number(s: &[u8]) -> Option<u32> {
    if s.is_empty() || (s.len() > 1 && s[0] == b'0') || !s.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(s).ok()?.parse().ok()
}

/// Which of our nodes the components of an absolute path name.
fn node(comps: &[&[u8]]) -> Option<Ours> {
    match comps {
        [b"dev", b"iommu"] => Some(Ours::Iommu),
        [b"dev", b"vfio", b"vfio"] => Some(Ours::VfioContainer),
        [b"dev", b"vfio", n] => number(n).map(Ours::VfioGroup),
        [b"dev", b"vfio", b"devices", name] => name
            .strip_prefix(b"vfio")
            .and_then(number)
            .map(Ours::VfioDevice),
        _ => None,
    }
}

/// Whether a last component could name one of our nodes.
fn plausible(last: &[u8]) -> bool {
    last == b"iommu" || last.starts_with(b"vfio") || number(last).is_some()
}

/// Classifies `path` (without its NUL). `dir` gives the absolute directory a
/// relative path is relative to, and is only called for a plausible one.
pub fn classify(path: &[u8], dir: impl FnOnce() -> Option<Vec<u8>>) -> Option<Ours> {
    if path.is_empty() || path.ends_with(b"/") {
        return None;
    }
    if !path.rsplit(|b| *b == b'/').next().is_some_and(plausible) {
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
    node(&comps)
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
        assert_eq!(abs("/dev/vfio/vfio"), Some(Ours::VfioContainer));
        assert_eq!(abs("//dev/vfio//vfio"), Some(Ours::VfioContainer));
        assert_eq!(abs("/dev/vfio/devices/vfio0"), Some(Ours::VfioDevice(0)));
        assert_eq!(abs("/dev/vfio/devices/vfio12"), Some(Ours::VfioDevice(12)));
        assert_eq!(abs("/dev/vfio/devices/vfio01"), None);
        assert_eq!(abs("/dev/vfio/devices/vfio"), None);
        assert_eq!(abs("/dev/vfio/devices/vfio-1"), None);
        assert_eq!(abs("/dev/vfio/devices/vfio99999999999"), None);
        assert_eq!(abs("/dev/vfio/vfio0"), None);
        assert_eq!(abs("/etc/passwd"), None);
        assert_eq!(abs("/dev/vfio/4"), Some(Ours::VfioGroup(4)));
        assert_eq!(abs("//dev/./vfio//12"), Some(Ours::VfioGroup(12)));
        assert_eq!(abs("/dev/vfio/0"), Some(Ours::VfioGroup(0)));
        assert_eq!(abs("/dev/vfio/04"), None);
        assert_eq!(abs("/dev/vfio/4a"), None);
        assert_eq!(abs("/dev/vfio/-4"), None);
        assert_eq!(abs("/dev/vfio/noiommu-4"), None);
        assert_eq!(abs("/dev/vfio/99999999999"), None);
        assert_eq!(abs("/dev/vfio/4/"), None);
        assert_eq!(abs("/dev/4"), None);
        assert_eq!(abs("/dev/vfio/devices/4"), None);
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
        assert_eq!(
            classify(b"4", || Some(b"/dev/vfio".to_vec())),
            Some(Ours::VfioGroup(4))
        );
        assert_eq!(classify(b"4", || Some(b"/tmp".to_vec())), None);
        assert_eq!(classify(b"04", || panic!("looked up")), None);
    }
}
