//! sysfs as VFIO clients read it, for the functions of our machine only.
//!
//! Programs find their device through sysfs before they open anything: the
//! basename of `<dev>/iommu_group`, the `vfioN` entry of `<dev>/vfio-dev/`,
//! `vendor`/`device`/`class`, the `driver` link; and they move functions
//! between drivers by writing a BDF to `drivers/<drv>/bind` or `unbind` and a
//! name to `<dev>/driver_override`.
//!
//! # A real tree, and three live attributes
//!
//! Read-only sysfs is *materialized*: a real directory tree laid out like
//! `/sys` under `$TMPDIR/softiommu-sysfs-<pid>` (the *root*), with small
//! regular files for attributes and relative symlinks exactly where sysfs has
//! them:
//!
//! ```text
//! devices/pci0000:00/<BDF>/{vendor,device,class,driver_override}
//! devices/pci0000:00/<BDF>/iommu_group -> ../../../kernel/iommu_groups/<N>
//! devices/pci0000:00/<BDF>/driver      -> ../../../bus/pci/drivers/<drv>   (when bound)
//! devices/pci0000:00/<BDF>/vfio-dev/vfio<I>/dev = "511:<I>\n"              (while registered)
//! bus/pci/devices/<BDF>                -> ../../../devices/pci0000:00/<BDF>
//! bus/pci/drivers/<drv>/{bind,unbind}, <BDF> -> ../../../../devices/pci0000:00/<BDF>
//! kernel/iommu_groups/<N>/devices/<BDF> -> ../../../../devices/pci0000:00/<BDF>
//! kernel/iommu_groups/<N>/type = "DMA\n"
//! class/vfio-dev/vfio<I>               -> ../../devices/pci0000:00/<BDF>/vfio-dev/vfio<I>
//! ```
//!
//! Every function hangs directly off the host bridge (`pci0000:00`), whatever
//! the machine's topology: that keeps each link's depth fixed, and clients
//! only take basenames. An interposed call whose absolute path names one of
//! ours (see [`lookup`]) is made on the same path under the root instead, so
//! `stat`, `access`, `readlink`, `opendir`/`readdir`, `open`+`read`, and every
//! call on the descriptors that come back (`fstat`, `openat` relative to a
//! directory fd, `fdopendir`) are the kernel's own answers about real files.
//!
//! The three writable attributes cannot be files: a write must reach the
//! [`Host`](softiommu::machine::host::Host) and fail with its errno. Opening
//! `drivers/<drv>/bind`, `drivers/<drv>/unbind` or `<dev>/driver_override`
//! gives one of our descriptors ([`Attr`], in the fd table like `/dev/iommu`);
//! a write parses the buffer and calls `Host::bind`, `unbind` or
//! `driver_override`, returning the count or `-1` with the host's errno; a
//! read (driver_override only) shows the current value. The tree has files
//! of the same names and modes, so `stat` and `access` see them. `fopen`
//! of an attribute is a `fopencookie` stream over the same calls (stdio
//! writes with libc's internal system calls, which a descriptor of ours
//! would not see); the host's errno shows at `fflush`/`fclose`. After each
//! successful write the tree is rebuilt from the host (the `driver` links,
//! `vfio-dev/`, `class/vfio-dev/` change).
//!
//! The cdev number: Linux allocates the `vfio` character major dynamically
//! (from 234–254 or 384–511); we report major [`VFIO_CDEV_MAJOR`] = 511,
//! minor = the device index, stable for a run.
//!
//! # Which paths, and what they cost
//!
//! Only absolute paths, starting `/sys/` after repeated slashes and `.` are
//! dropped (a path with `..` goes to libc, as in `path.rs`); and only these
//! shapes, with a BDF, group, driver or index that our machine has:
//! `/sys/bus/pci/devices/<BDF>[/...]`, `/sys/devices/pci0000:00/<BDF>[/...]`,
//! `/sys/kernel/iommu_groups/<N>[/...]`, `/sys/class/vfio-dev/vfio<I>[/...]`,
//! `/sys/bus/pci/drivers/<drv>/{bind,unbind,<BDF>[/...]}` where `<drv>` is a
//! driver name the machine has used. Everything else — `/sys/bus/pci/devices`
//! itself, other BDFs, `/sys/kernel/mm` — goes to libc untouched. A path that
//! does not start with `/` costs one guarded byte read, one that does a copy
//! of the path and a comparison, never a system call. One of those shapes
//! loads the machine and builds the tree the first time (a few dozen system
//! calls, once), then costs a lock and a lookup. A
//! real device with the same BDF as one of ours is hidden behind ours. A
//! driver directory (`drivers/vfio-pci/`) is the host's; only its `bind`,
//! `unbind` and links to our functions are ours, and a BDF written there that
//! is not ours is ENODEV (the kernel's answer for an unknown device), not
//! passed on to the host's sysfs.
//!
//! # Lifetime
//!
//! The tree is built on first use and removed at `exit` (an `atexit`
//! handler) by the process that built it. A child of `fork` (counted by a
//! `pthread_atfork` handler, so no lookup asks for the pid) builds its own
//! under its own pid at its first use (its machine is a copy). Lookups hold
//! the fd table's gate, so `fork` never copies the tree's lock held. A
//! process that leaves by `_exit` or `exec`, or dies by a signal, leaves its
//! tree behind; the next tree built (by any process) removes the trees of
//! pids that no longer exist, and a process with the same pid replaces it. A
//! thread that lists a directory while another thread's write rebuilds the
//! tree may see it half built.
//!
//! # Not covered
//!
//! Relative paths and paths relative to a directory fd that is not in the
//! tree; libc's internal lookups (`realpath`, `nftw`, `scandir`, `freopen`
//! through their own system calls); a listing of `/sys/bus/pci/devices/`
//! (the host's, without our functions); the other attributes of a PCI function (`config`,
//! `resource*`, `reset`, `remove`), `drivers_probe`, `new_id`.

use crate::machine;
use crate::real;
use crate::safecopy;
use crate::table;
use softiommu::machine::host::HostDevice;
use softiommu::machine::{Bdf, Driver, Machine};
use softiommu::uapi::Errno;
use softiommu::vfio::Vfio;
use std::collections::{BTreeMap, BTreeSet};
use std::ffi::CString;
use std::io;
use std::os::unix::fs::{symlink, DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};

/// The character major reported for `/dev/vfio/devices/vfioN` (see the
/// module documentation).
pub const VFIO_CDEV_MAJOR: u32 = 511;

/// The most one sysfs write may carry (the kernel's PAGE_SIZE).
const PAGE_SIZE: usize = 4096;

/// A writable attribute of ours, behind one of our descriptors.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Attr {
    /// `/sys/bus/pci/drivers/<driver>/bind`.
    Bind(String),
    /// `/sys/bus/pci/drivers/<driver>/unbind`.
    Unbind(String),
    /// `<dev>/driver_override`.
    DriverOverride(Bdf),
}

impl Attr {
    /// Whether the attribute can be read (kernfs refuses to open one without
    /// a show method for reading: EACCES).
    pub fn readable(&self) -> bool {
        matches!(self, Attr::DriverOverride(_))
    }
}

/// What an absolute path under `/sys` names, before asking the machine.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Node {
    /// `bus/pci/devices/<bdf>/...` or `devices/pci0000:00/<bdf>/...`.
    Function { bdf: Bdf, rest: Vec<String> },
    /// `kernel/iommu_groups/<id>/...`.
    Group(u32),
    /// `class/vfio-dev/vfio<index>/...`.
    VfioDev(u32),
    /// `bus/pci/drivers/<driver>/<rest...>` (rest not empty).
    Driver { driver: String, rest: Vec<String> },
}

/// A parsed path: the node and the path relative to `/sys` (with a leading
/// `/`, a trailing `/` kept).
#[derive(Clone, Debug, PartialEq, Eq)]
struct Parsed {
    node: Node,
    rel: String,
}

/// A decimal number as the kernel prints one (no sign, no leading zero).
fn number(s: &str) -> Option<u32> {
    if s.is_empty() || (s.len() > 1 && s.starts_with('0')) || !s.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    s.parse().ok()
}

/// A BDF spelled exactly as sysfs names it (`0000:01:00.0`).
fn bdf(s: &str) -> Option<Bdf> {
    let b: Bdf = s.parse().ok()?;
    (b.to_string() == s).then_some(b)
}

fn strings(c: &[&str]) -> Vec<String> {
    c.iter().map(|s| (*s).to_owned()).collect()
}

/// Parses an absolute path into one of the shapes we may answer for.
fn parse(path: &[u8]) -> Option<Parsed> {
    if !path.starts_with(b"/") {
        return None;
    }
    let path = std::str::from_utf8(path).ok()?;
    let mut comps: Vec<&str> = Vec::new();
    for c in path.split('/') {
        match c {
            "" | "." => {}
            ".." => return None,
            c => comps.push(c),
        }
    }
    let (&first, comps) = comps.split_first()?;
    if first != "sys" {
        return None;
    }
    let node = match comps {
        ["bus", "pci", "devices", b, rest @ ..] | ["devices", "pci0000:00", b, rest @ ..] => {
            Node::Function {
                bdf: bdf(b)?,
                rest: strings(rest),
            }
        }
        ["kernel", "iommu_groups", n, ..] => Node::Group(number(n)?),
        ["class", "vfio-dev", v, ..] => Node::VfioDev(number(v.strip_prefix("vfio")?)?),
        ["bus", "pci", "drivers", d, rest @ ..] if !rest.is_empty() => Node::Driver {
            driver: (*d).to_owned(),
            rest: strings(rest),
        },
        _ => return None,
    };
    let mut rel = String::new();
    for c in comps {
        rel.push('/');
        rel.push_str(c);
    }
    if path.ends_with('/') {
        rel.push('/');
    }
    Some(Parsed { node, rel })
}

/// What the machine has, as far as paths go; taken when the tree is built.
#[derive(Clone, Debug, Default)]
struct Snapshot {
    functions: BTreeSet<Bdf>,
    groups: BTreeSet<u32>,
    vfio: BTreeSet<u32>,
    drivers: BTreeSet<String>,
}

/// Where an interposed call on a path of ours goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    /// The same call on this path in the tree.
    Tree(CString),
    /// One of our descriptors (only for an open).
    Attr(Attr),
}

/// Our answer for `parsed`, given what the machine has: `None` for not ours.
fn resolve(parsed: &Parsed, snap: &Snapshot, open: bool) -> Option<Resolved> {
    let slash = parsed.rel.ends_with('/');
    let attr = match &parsed.node {
        Node::Function { bdf, rest } => {
            if !snap.functions.contains(bdf) {
                return None;
            }
            (rest.len() == 1 && rest[0] == "driver_override").then_some(Attr::DriverOverride(*bdf))
        }
        Node::Group(id) => {
            snap.groups.contains(id).then_some(())?;
            None
        }
        Node::VfioDev(index) => {
            snap.vfio.contains(index).then_some(())?;
            None
        }
        Node::Driver { driver, rest } => {
            if !snap.drivers.contains(driver) {
                return None;
            }
            match rest.first().map(String::as_str) {
                Some("bind") if rest.len() == 1 => Some(Attr::Bind(driver.clone())),
                Some("unbind") if rest.len() == 1 => Some(Attr::Unbind(driver.clone())),
                Some(b) => {
                    let b = bdf(b)?;
                    snap.functions.contains(&b).then_some(())?;
                    (rest.len() == 2 && rest[1] == "driver_override")
                        .then_some(Attr::DriverOverride(b))
                }
                None => return None,
            }
        }
    };
    match attr {
        // `attr/` is ENOTDIR in the tree as in sysfs.
        Some(a) if open && !slash => Some(Resolved::Attr(a)),
        _ => Some(Resolved::Tree(parsed.rel.clone())),
    }
}

/// [`resolve`]'s answer before the root is prefixed.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Resolved {
    Tree(String),
    Attr(Attr),
}

/// The built tree of this process.
struct State {
    /// The [`FORKS`] count it was built under: a child of `fork` sees a
    /// larger one and builds its own tree.
    forks: u64,
    pid: i32,
    root: PathBuf,
    snap: Snapshot,
    /// Every driver name the machine has used, kept across rebuilds so that
    /// `drivers/<drv>/bind` stays ours after the last device left `<drv>`.
    drivers: BTreeSet<String>,
}

/// The tree, once built; see the module documentation.
static STATE: Mutex<Option<State>> = Mutex::new(None);

/// Forks this process image has been the child of (see [`State::forks`]);
/// counting them spares a `getpid` system call per lookup.
static FORKS: AtomicU64 = AtomicU64::new(0);

extern "C" fn fork_nothing() {}

extern "C" fn fork_child() {
    FORKS.fetch_add(1, Ordering::Relaxed);
}

fn state() -> MutexGuard<'static, Option<State>> {
    STATE.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Where an interposed call on `path` (absolute; others are not ours) goes:
/// `None` for libc. `open` asks for [`Target::Attr`] on writable attributes.
/// Loads the machine and builds the tree on first use.
pub fn lookup(path: &[u8], open: bool) -> Option<Target> {
    // The cheap test first: nearly every path a program uses fails it.
    if !path.starts_with(b"/sys/") && !path.starts_with(b"//") {
        return None;
    }
    let parsed = parse(path)?;
    let vfio = machine::vfio().ok()?;
    // Held so that no fork copies STATE's lock held (see `table`).
    let _gate = table::gate();
    let mut st = state();
    let forks = FORKS.load(Ordering::Relaxed);
    if st.as_ref().is_none_or(|s| s.forks != forks) {
        register_handlers();
        *st = Some(build_state(&vfio, BTreeSet::new()).ok()?);
    }
    let s = st.as_ref()?;
    match resolve(&parsed, &s.snap, open)? {
        Resolved::Attr(a) => Some(Target::Attr(a)),
        Resolved::Tree(rel) => {
            let mut full = s.root.clone().into_os_string().into_encoded_bytes();
            full.extend_from_slice(rel.as_bytes());
            CString::new(full).ok().map(Target::Tree)
        }
    }
}

/// `$TMPDIR`, or `/tmp` where it is unset or not absolute (an empty one
/// would put the tree in the working directory).
fn tmp_dir() -> PathBuf {
    let dir = std::env::temp_dir();
    if dir.is_absolute() {
        dir
    } else {
        PathBuf::from("/tmp")
    }
}

/// The root of process `pid`'s tree.
fn root_for(pid: i32) -> PathBuf {
    tmp_dir().join(format!("softiommu-sysfs-{pid}"))
}

/// Removes the trees of processes that are gone without removing theirs
/// (`_exit`, `exec`, a signal): `softiommu-sysfs-<pid>` where no process
/// `<pid>` exists. A tree whose pid was reused stays until that process goes.
fn sweep(pid: i32) {
    let Ok(entries) = std::fs::read_dir(tmp_dir()) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name();
        let Some(other) = name
            .to_str()
            .and_then(|n| n.strip_prefix("softiommu-sysfs-"))
            .and_then(|n| n.parse::<i32>().ok())
        else {
            continue;
        };
        if other != pid && other > 0 && !real::process_exists(other) {
            let _ = std::fs::remove_dir_all(e.path());
        }
    }
}

fn build_state(vfio: &Vfio, mut drivers: BTreeSet<String>) -> io::Result<State> {
    let pid = real::getpid();
    sweep(pid);
    let root = root_for(pid);
    let snap = build(vfio, &root, &mut drivers)?;
    Ok(State {
        forks: FORKS.load(Ordering::Relaxed),
        pid,
        root,
        snap,
        drivers,
    })
}

/// Rebuilds the tree after the host changed (a successful write; the caller
/// holds the table's gate).
fn rebuild(vfio: &Vfio) {
    let mut st = state();
    let forks = FORKS.load(Ordering::Relaxed);
    let drivers = match st.take() {
        Some(s) if s.forks == forks => s.drivers,
        _ => BTreeSet::new(),
    };
    register_handlers();
    *st = build_state(vfio, drivers).ok();
}

/// Removes this process's tree at exit.
extern "C" fn remove_at_exit() {
    let st = state();
    if let Some(s) = st.as_ref() {
        if s.pid == real::getpid() {
            let _ = std::fs::remove_dir_all(&s.root);
        }
    }
}

fn register_handlers() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    // A forked child inherits the registrations; the exit handler only
    // removes the tree of the process it runs in. The table's fork handlers
    // (which take the gate) come with its first descriptor.
    ONCE.call_once(|| {
        real::atexit(remove_at_exit);
        real::atfork(fork_nothing, fork_nothing, fork_child);
        table::init();
    });
}

/// Vendor, device and class of a function.
fn ids(machine: &Machine, d: &HostDevice) -> (u16, u16, u32) {
    if let Some(m) = &d.model {
        let mut id = [0u8; 4];
        let mut class = [0u8; 4];
        m.config_read(0, &mut id);
        m.config_read(8, &mut class);
        let id = u32::from_le_bytes(id);
        return (id as u16, (id >> 16) as u16, u32::from_le_bytes(class) >> 8);
    }
    if let Some(b) = machine.bridge(d.bdf) {
        // PCI-to-PCI bridge.
        return (b.vendor, b.device, 0x06_04_00);
    }
    match machine.device(d.bdf) {
        Some(e) => (e.vendor, e.device, 0),
        None => (0xffff, 0xffff, 0),
    }
}

fn file(path: &Path, text: &str, mode: u32) -> io::Result<()> {
    std::fs::write(path, text)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
}

fn dir(path: &Path) -> io::Result<()> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o755)
        .create(path)
}

/// Builds the tree of `vfio`'s host at `root` (replacing what is there);
/// adds the driver names in use to `drivers`.
fn build(vfio: &Vfio, root: &Path, drivers: &mut BTreeSet<String>) -> io::Result<Snapshot> {
    match std::fs::remove_dir_all(root) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
        _ => {}
    }
    std::fs::DirBuilder::new().mode(0o700).create(root)?;
    let host = vfio.host();
    let machine = host.machine();
    let functions = host.devices();
    let registered: BTreeMap<Bdf, u32> = vfio.devices().iter().map(|d| (d.bdf, d.index)).collect();
    drivers.insert(Driver::VfioPci.name().to_owned());
    drivers.insert(Driver::PciStub.name().to_owned());
    for d in &functions {
        if d.driver != Driver::None {
            drivers.insert(d.driver.name().to_owned());
        }
        if let Some(o) = &d.driver_override {
            drivers.insert(o.clone());
        }
    }
    let mut snap = Snapshot {
        drivers: drivers.clone(),
        ..Snapshot::default()
    };
    for drv in drivers.iter() {
        let ddir = root.join("bus/pci/drivers").join(drv);
        dir(&ddir)?;
        file(&ddir.join("bind"), "", 0o200)?;
        file(&ddir.join("unbind"), "", 0o200)?;
    }
    dir(&root.join("bus/pci/devices"))?;
    dir(&root.join("class/vfio-dev"))?;
    for d in &functions {
        let name = d.bdf.to_string();
        let ddir = root.join("devices/pci0000:00").join(&name);
        dir(&ddir)?;
        let (vendor, device, class) = ids(&machine, d);
        file(&ddir.join("vendor"), &format!("{vendor:#06x}\n"), 0o444)?;
        file(&ddir.join("device"), &format!("{device:#06x}\n"), 0o444)?;
        file(&ddir.join("class"), &format!("{class:#08x}\n"), 0o444)?;
        let over = d.driver_override.as_deref().unwrap_or("(null)");
        file(&ddir.join("driver_override"), &format!("{over}\n"), 0o644)?;
        symlink(
            format!("../../../kernel/iommu_groups/{}", d.group),
            ddir.join("iommu_group"),
        )?;
        if d.driver != Driver::None {
            let drv = d.driver.name();
            symlink(
                format!("../../../bus/pci/drivers/{drv}"),
                ddir.join("driver"),
            )?;
            symlink(
                format!("../../../../devices/pci0000:00/{name}"),
                root.join("bus/pci/drivers").join(drv).join(&name),
            )?;
        }
        if let Some(index) = registered.get(&d.bdf) {
            let vdir = ddir.join(format!("vfio-dev/vfio{index}"));
            dir(&vdir)?;
            file(
                &vdir.join("dev"),
                &format!("{VFIO_CDEV_MAJOR}:{index}\n"),
                0o444,
            )?;
            symlink(
                format!("../../devices/pci0000:00/{name}/vfio-dev/vfio{index}"),
                root.join(format!("class/vfio-dev/vfio{index}")),
            )?;
            snap.vfio.insert(*index);
        }
        symlink(
            format!("../../../devices/pci0000:00/{name}"),
            root.join("bus/pci/devices").join(&name),
        )?;
        let gdir = root.join(format!("kernel/iommu_groups/{}", d.group));
        if !gdir.exists() {
            dir(&gdir.join("devices"))?;
            file(&gdir.join("type"), "DMA\n", 0o444)?;
        }
        symlink(
            format!("../../../../devices/pci0000:00/{name}"),
            gdir.join("devices").join(&name),
        )?;
        snap.functions.insert(d.bdf);
        snap.groups.insert(d.group);
    }
    Ok(snap)
}

/// The current text of a readable attribute.
pub fn show(attr: &Attr) -> Result<Vec<u8>, Errno> {
    let Attr::DriverOverride(b) = attr else {
        return Err(Errno::EACCES);
    };
    let vfio = machine::vfio()?;
    let d = vfio.host().device(*b).ok_or(Errno::ENODEV)?;
    let over = d.driver_override.as_deref().unwrap_or("(null)");
    Ok(format!("{over}\n").into_bytes())
}

/// A write of `count` bytes at `buf` (the program's memory) to `attr`: the
/// count, or the host's errno.
pub fn store(attr: &Attr, buf: u64, count: usize) -> Result<usize, Errno> {
    if count > PAGE_SIZE {
        // sysfs takes a write whole or not at all.
        return Err(Errno::E2BIG);
    }
    let n = count;
    let mut bytes = vec![0u8; n];
    if n > 0 && !safecopy::read(buf as usize, &mut bytes) {
        return Err(Errno::EFAULT);
    }
    let vfio = machine::vfio()?;
    let host = vfio.host();
    let r = match attr {
        Attr::Bind(drv) | Attr::Unbind(drv) => {
            let text = String::from_utf8_lossy(&bytes);
            let name = text.strip_suffix('\n').unwrap_or(&text);
            let b = bdf(name).ok_or(Errno::ENODEV)?;
            if matches!(attr, Attr::Bind(_)) {
                host.bind(b, Driver::from_name(drv))
            } else {
                let d = host.device(b).ok_or(Errno::ENODEV)?;
                if d.driver.name() != drv {
                    return Err(Errno::ENODEV);
                }
                host.unbind(b)
            }
        }
        Attr::DriverOverride(b) => {
            if count >= PAGE_SIZE {
                return Err(Errno::EINVAL);
            }
            let text = String::from_utf8(bytes).map_err(|_| Errno::EINVAL)?;
            host.driver_override(*b, Some(text))
        }
    };
    r.map_err(|e| e.errno())?;
    rebuild(&vfio);
    Ok(count)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(s: &str) -> Bdf {
        s.parse().unwrap()
    }

    fn snap() -> Snapshot {
        Snapshot {
            functions: [b("0000:01:00.0"), b("0000:03:00.1")].into(),
            groups: [4, 6].into(),
            vfio: [0].into(),
            drivers: ["vfio-pci".to_owned(), "snd_hda_intel".to_owned()].into(),
        }
    }

    fn res(p: &str, open: bool) -> Option<Resolved> {
        resolve(&parse(p.as_bytes())?, &snap(), open)
    }

    fn tree(rel: &str) -> Option<Resolved> {
        Some(Resolved::Tree(rel.to_owned()))
    }

    #[test]
    fn parses_only_sysfs_shapes() {
        assert_eq!(parse(b"/etc/passwd"), None);
        assert_eq!(parse(b"sys/bus/pci/devices/0000:01:00.0"), None);
        assert_eq!(parse(b"/sys/kernel/mm"), None);
        assert_eq!(parse(b"/sys/bus/pci/devices"), None);
        assert_eq!(parse(b"/sys/bus/pci/devices/"), None);
        assert_eq!(parse(b"/sys/bus/pci/devices/01:00.0"), None);
        assert_eq!(parse(b"/sys/bus/pci/devices/0000:01:00.0/../x"), None);
        assert_eq!(parse(b"/sys/bus/pci/drivers/vfio-pci"), None);
        assert_eq!(parse(b"/sys/kernel/iommu_groups/04"), None);
        assert_eq!(parse(b"/sys/class/vfio-dev/vfio"), None);
        let p = parse(b"//sys/./bus/pci//devices/0000:01:00.0/vfio-dev/").unwrap();
        assert_eq!(p.rel, "/bus/pci/devices/0000:01:00.0/vfio-dev/");
        assert_eq!(
            p.node,
            Node::Function {
                bdf: b("0000:01:00.0"),
                rest: vec!["vfio-dev".to_owned()]
            }
        );
    }

    #[test]
    fn resolves_our_functions_groups_and_drivers_only() {
        assert_eq!(
            res("/sys/bus/pci/devices/0000:01:00.0/iommu_group", false),
            tree("/bus/pci/devices/0000:01:00.0/iommu_group")
        );
        assert_eq!(
            res("/sys/devices/pci0000:00/0000:01:00.0", false),
            tree("/devices/pci0000:00/0000:01:00.0")
        );
        assert_eq!(res("/sys/bus/pci/devices/0000:7f:1f.7/vendor", false), None);
        assert_eq!(
            res("/sys/kernel/iommu_groups/6/devices", false),
            tree("/kernel/iommu_groups/6/devices")
        );
        assert_eq!(res("/sys/kernel/iommu_groups/5/devices", false), None);
        assert_eq!(
            res("/sys/class/vfio-dev/vfio0/dev", false),
            tree("/class/vfio-dev/vfio0/dev")
        );
        assert_eq!(res("/sys/class/vfio-dev/vfio1", false), None);
        assert_eq!(res("/sys/bus/pci/drivers/nvme/bind", true), None);
        assert_eq!(res("/sys/bus/pci/drivers/vfio-pci/new_id", true), None);
        assert_eq!(
            res("/sys/bus/pci/drivers/vfio-pci/0000:01:00.0", false),
            tree("/bus/pci/drivers/vfio-pci/0000:01:00.0")
        );
        assert_eq!(
            res("/sys/bus/pci/drivers/vfio-pci/0000:02:00.0", false),
            None
        );
    }

    #[test]
    fn writable_attributes_open_as_ours_and_stat_in_the_tree() {
        assert_eq!(
            res("/sys/bus/pci/drivers/snd_hda_intel/unbind", true),
            Some(Resolved::Attr(Attr::Unbind("snd_hda_intel".to_owned())))
        );
        assert_eq!(
            res("/sys/bus/pci/drivers/vfio-pci/bind", true),
            Some(Resolved::Attr(Attr::Bind("vfio-pci".to_owned())))
        );
        assert_eq!(
            res("/sys/bus/pci/drivers/vfio-pci/bind", false),
            tree("/bus/pci/drivers/vfio-pci/bind")
        );
        assert_eq!(
            res("/sys/bus/pci/devices/0000:03:00.1/driver_override", true),
            Some(Resolved::Attr(Attr::DriverOverride(b("0000:03:00.1"))))
        );
        assert_eq!(
            res("/sys/bus/pci/devices/0000:03:00.1/driver_override/", true),
            tree("/bus/pci/devices/0000:03:00.1/driver_override/")
        );
        assert_eq!(
            res("/sys/bus/pci/devices/0000:03:00.1/driver_override", false),
            tree("/bus/pci/devices/0000:03:00.1/driver_override")
        );
    }

    #[test]
    fn only_driver_override_is_readable() {
        assert!(Attr::DriverOverride(b("0000:01:00.0")).readable());
        assert!(!Attr::Bind("vfio-pci".to_owned()).readable());
        assert!(!Attr::Unbind("vfio-pci".to_owned()).readable());
    }
}
