//! The calling process itself as an address space, and its files.
//!
//! Frame identity follows what the kernel would see, as far as an unprivileged
//! process can tell: a page of a shared mapping (a memfd, `MAP_SHARED` anonymous
//! memory, a shared file) is identified by its file and offset, so two mappings of
//! the same memfd, or a memfd pinned by offset, reach the same frame; a page of a
//! private mapping is identified by its virtual address. Physical addresses encode
//! that identity: `backing << 48 | offset`, with backing 0 for private memory (whose
//! offset is its virtual address) and a small number per (device, inode) otherwise.
//!
//! # Pinned memory the program unmaps
//!
//! The kernel keeps a pinned page alive, with its contents, after the program
//! unmaps it, until it is unpinned. Here a private page *is* the program's memory,
//! so the interposer tells us before it unmaps a range ([`before_unmap`]): every
//! pinned stretch in it is moved aside with `mremap` into a hidden mapping, which
//! keeps the pages (and their physical identity) alive, and [`host_at`] sends later
//! reads and writes of those frames there. The vacated addresses get a new
//! identity, so memory the program maps there later is a different page, as it
//! would be. The hidden mapping goes when the last pin on it does.
//!
//! Mappings are read from `/proc/self/maps` on every resolve, so the answer is
//! right even after the program remaps its memory. The host address of a frame is
//! its current virtual address (private and shared mappings) or an address in our
//! own mapping of the file, made in 64 MiB windows on first use (files pinned by
//! offset).

use super::host;
use super::{
    file_range_end, push_run, AddressSpace, FileSource, FrameRun, PhysMemory, PinTable, PAGE_SHIFT,
    PAGE_SIZE,
};
use crate::error::{Error, Result};
use crate::range::{IovaRange, RangeMap};
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, RwLock};

/// Size of the windows a pinned file is mapped in.
const FILE_WINDOW: u64 = 64 << 20;

/// Bits of a physical address that hold the offset within its backing.
const BACKING_SHIFT: u32 = 48;

/// Pin counts for the host's memory: one table for the whole process.
fn process_pins() -> &'static PinTable {
    static PINS: OnceLock<PinTable> = OnceLock::new();
    PINS.get_or_init(|| PinTable::with_hooks(record_hosts, unpinned))
}

/// Where pinned frames are: physical range → host address of its first byte,
/// as resolved when pinned (see [`host_at`] for frames moved since). What
/// [`ProcessMemory`] reads DMA through.
static HOSTS: RwLock<RangeMap<usize>> = RwLock::new(RangeMap::new_const());

/// Removes `cut` from `hosts`, keeping the parts of entries outside it.
fn punch_hosts(hosts: &mut RangeMap<usize>, cut: IovaRange) {
    for start in hosts.overlapping_starts(cut) {
        let Some((r, host)) = hosts.remove(start) else {
            continue;
        };
        if r.start < cut.start {
            hosts.insert(IovaRange::new(r.start, cut.start - 1), host);
        }
        if r.last > cut.last {
            let skip = (cut.last + 1 - r.start) as usize;
            hosts.insert(IovaRange::new(cut.last + 1, r.last), host + skip);
        }
    }
}

/// A pin's runs: remembered by physical address.
fn record_hosts(runs: &[FrameRun]) {
    let mut hosts = HOSTS.write().unwrap_or_else(|e| e.into_inner());
    for run in runs {
        let r = run.phys_range();
        punch_hosts(&mut hosts, r);
        hosts.insert(r, run.host);
    }
}

/// The last pin on `pfns` went: forgotten, and moved copies released.
fn unpinned(pfns: IovaRange) {
    let phys = IovaRange::new(
        pfns.start << PAGE_SHIFT,
        ((pfns.last + 1) << PAGE_SHIFT) - 1,
    );
    punch_hosts(&mut HOSTS.write().unwrap_or_else(|e| e.into_inner()), phys);
    release_moved(pfns);
}

/// The calling process's pinned memory by physical address: what devices
/// emulated in the process DMA into. Frames that are not pinned are not memory
/// to a device (EFAULT), as unpinned pages are not mapped by any IOMMU.
#[derive(Debug, Default)]
pub struct ProcessMemory;

impl ProcessMemory {
    /// Calls `f(host, offset, n)` for each piece of `[phys, phys + len)`, or
    /// fails with EFAULT at the first byte that is not pinned memory.
    fn pieces(
        &self,
        phys: u64,
        len: usize,
        f: &mut dyn FnMut(usize, usize, usize) -> Result<()>,
    ) -> Result<()> {
        let hosts = HOSTS.read().unwrap_or_else(|e| e.into_inner());
        let mut done = 0usize;
        while done < len {
            let p = phys
                .checked_add(done as u64)
                .ok_or(Error::Fault { addr: phys })?;
            let (r, host) = hosts.find(p).ok_or(Error::Fault { addr: p })?;
            // Frames moved aside go one page at a time: a run may be split.
            let end = if ANY_MOVED.load(Ordering::Acquire) {
                (p | (PAGE_SIZE - 1)).min(r.last)
            } else {
                r.last
            };
            let n = (len - done).min((end - p + 1) as usize);
            f(host_at(p, host + (p - r.start) as usize), done, n)?;
            done += n;
        }
        Ok(())
    }
}

impl PhysMemory for ProcessMemory {
    fn read(&self, phys: u64, buf: &mut [u8]) -> Result<()> {
        self.pieces(phys, buf.len(), &mut |host, off, n| {
            #[allow(unsafe_code)]
            // SAFETY: `host` is a pinned frame's current host address, which
            // stays mapped while pinned (moved aside, not unmapped, when the
            // program unmaps it); with a fault-catching copy registered a gone
            // page is EFAULT.
            unsafe {
                host::copy_out(host, &mut buf[off..off + n])
            }
        })
    }

    fn write(&self, phys: u64, buf: &[u8]) -> Result<()> {
        self.pieces(phys, buf.len(), &mut |host, off, n| {
            #[allow(unsafe_code)]
            // SAFETY: as in `read`.
            unsafe {
                host::copy_in(host, &buf[off..off + n])
            }
        })
    }
}

/// First backing number used for re-identified private memory; file backings
/// stay below it.
const GEN_BACKING: u64 = 0x8000;

/// Private memory whose identity is not its virtual address: VA range → the
/// physical address of its first byte. Written when pinned memory is moved aside.
static IDENTITY: RwLock<RangeMap<u64>> = RwLock::new(RangeMap::new_const());

/// Pinned frames moved aside: physical range → host address of its first byte.
static MOVED: RwLock<RangeMap<usize>> = RwLock::new(RangeMap::new_const());

/// Whether `MOVED` has anything (the common case is no: one load, no lock).
static ANY_MOVED: AtomicBool = AtomicBool::new(false);

/// The physical address of the private page at `va`.
fn private_phys(identity: &RangeMap<u64>, va: u64) -> (u64, u64) {
    match identity.find(va) {
        Some((r, base)) => (base + (va - r.start), r.last),
        None => {
            // Up to the next re-identified range, the identity is the address.
            let next = identity
                .overlapping(IovaRange::new(va, u64::MAX))
                .next()
                .map_or(u64::MAX, |(r, _)| r.start - 1);
            (va, next)
        }
    }
}

/// Where the pinned page `phys` (resolved at `host`) is now.
pub fn host_at(phys: u64, host: usize) -> usize {
    if !ANY_MOVED.load(Ordering::Acquire) {
        return host;
    }
    match MOVED.read().expect("moved frames poisoned").find(phys) {
        Some((r, base)) => base + (phys - r.start) as usize,
        None => host,
    }
}

/// Called with page frame ranges whose last pin went: hidden mappings that hold
/// nothing pinned any more are unmapped.
fn release_moved(pfns: IovaRange) {
    if !ANY_MOVED.load(Ordering::Acquire) {
        return;
    }
    let phys = IovaRange::new(
        pfns.start << PAGE_SHIFT,
        ((pfns.last + 1) << PAGE_SHIFT) - 1,
    );
    let mut moved = MOVED.write().expect("moved frames poisoned");
    for start in moved.overlapping_starts(phys) {
        let Some((r, _)) = moved.get(start) else {
            continue;
        };
        let pfn_range = IovaRange::new(r.start >> PAGE_SHIFT, r.last >> PAGE_SHIFT);
        if process_pins().pinned_in(pfn_range).is_empty() {
            let (r, hidden) = moved.remove(start).expect("entry just found");
            let len = (r.last - r.start + 1) as usize;
            #[allow(unsafe_code)]
            // SAFETY: `hidden` is a mapping made by before_unmap for these frames,
            // and nothing is pinned in it any more, so nothing refers to it.
            unsafe {
                host::unmap(hidden, len)
            };
        }
    }
    ANY_MOVED.store(!moved.is_empty(), Ordering::Release);
}

/// The program is about to unmap `[va, va + len)` (munmap, or a `MAP_FIXED`
/// mapping on top): pinned pages there are moved aside first, so the IOMMU and
/// accesses keep reaching them with their contents. Never fails: a stretch that
/// cannot be moved stays where it is (reads of it then fail with EFAULT).
pub fn before_unmap(va: u64, len: u64) {
    let Some(range) = IovaRange::from_len(va & !(PAGE_SIZE - 1), len) else {
        return;
    };
    let pins = process_pins();
    if pins.is_empty() {
        return;
    }
    let Ok(maps) = std::fs::read_to_string("/proc/self/maps") else {
        return;
    };
    for vma in parse_maps(&maps) {
        let Some(piece) = range.intersect(&IovaRange::new(vma.start, vma.end - 1)) else {
            continue;
        };
        let piece = IovaRange::new(piece.start, piece.last | (PAGE_SIZE - 1));
        let mut at = piece.start;
        while at <= piece.last {
            // One stretch of constant identity at a time.
            let (phys, last) = if vma.shared {
                match shared_phys(vma.dev, vma.ino, vma.offset + (at - vma.start)) {
                    Ok(p) => (p, piece.last),
                    Err(_) => break,
                }
            } else {
                let (p, last) = private_phys(&IDENTITY.read().expect("identity poisoned"), at);
                (p, last.min(piece.last))
            };
            let pfns = IovaRange::new(phys >> PAGE_SHIFT, (phys + (last - at)) >> PAGE_SHIFT);
            for pinned in pins.pinned_in(pfns) {
                let off = (pinned.start << PAGE_SHIFT) - phys;
                let bytes = (pinned.last - pinned.start + 1) << PAGE_SHIFT;
                move_aside(at + off, bytes, pinned.start << PAGE_SHIFT, !vma.shared);
            }
            match last.checked_add(1) {
                Some(n) => at = n,
                None => break,
            }
        }
    }
}

/// Moves the pinned stretch `[va, va + len)` (identity `phys`) into a hidden
/// mapping and records where it went.
fn move_aside(va: u64, len: u64, phys: u64, private: bool) {
    let Ok(hidden) = host::move_pages(va as usize, len as usize) else {
        return;
    };
    let phys_range = IovaRange::new(phys, phys + len - 1);
    {
        let mut moved = MOVED.write().expect("moved frames poisoned");
        for start in moved.overlapping_starts(phys_range) {
            moved.remove(start);
        }
        moved.insert(phys_range, hidden);
        ANY_MOVED.store(true, Ordering::Release);
    }
    if private {
        static NEXT_GEN: AtomicU64 = AtomicU64::new(0);
        let gen = NEXT_GEN.fetch_add(1, Ordering::Relaxed) % GEN_BACKING;
        let base = (GEN_BACKING + gen) << BACKING_SHIFT | va;
        let range = IovaRange::new(va, va + len - 1);
        let mut identity = IDENTITY.write().expect("identity poisoned");
        for start in identity.overlapping_starts(range) {
            let (r, b) = identity.remove(start).expect("entry just found");
            if r.start < range.start {
                identity.insert(IovaRange::new(r.start, range.start - 1), b);
            }
            if r.last > range.last {
                identity.insert(
                    IovaRange::new(range.last + 1, r.last),
                    b + (range.last + 1 - r.start),
                );
            }
        }
        identity.insert(range, base);
    }
}

/// The number standing for a (device, inode) in physical addresses.
fn backing_id(dev: u64, ino: u64) -> Result<u64> {
    static IDS: OnceLock<Mutex<HashMap<(u64, u64), u64>>> = OnceLock::new();
    let mut ids = IDS
        .get_or_init(Default::default)
        .lock()
        .expect("backing ids poisoned");
    let next = ids.len() as u64 + 1;
    if next >= GEN_BACKING {
        return Err(Error::NoMem("too many distinct files pinned"));
    }
    Ok(*ids.entry((dev, ino)).or_insert(next))
}

fn shared_phys(dev: u64, ino: u64, offset: u64) -> Result<u64> {
    if offset >= 1 << BACKING_SHIFT {
        return Err(Error::Overflow("file offset too large to pin"));
    }
    Ok(backing_id(dev, ino)? << BACKING_SHIFT | offset)
}

/// One line of `/proc/self/maps`.
#[derive(Debug, Clone, Copy)]
struct Vma {
    start: u64,
    end: u64,
    read: bool,
    write: bool,
    shared: bool,
    offset: u64,
    dev: u64,
    ino: u64,
}

fn parse_maps(text: &str) -> Vec<Vma> {
    text.lines()
        .filter_map(|line| {
            let mut f = line.split_ascii_whitespace();
            let (start, end) = f.next()?.split_once('-')?;
            let perms = f.next()?.as_bytes();
            let offset = u64::from_str_radix(f.next()?, 16).ok()?;
            let (major, minor) = f.next()?.split_once(':')?;
            let ino = f.next()?.parse().ok()?;
            Some(Vma {
                start: u64::from_str_radix(start, 16).ok()?,
                end: u64::from_str_radix(end, 16).ok()?,
                read: perms.first() == Some(&b'r'),
                write: perms.get(1) == Some(&b'w'),
                shared: perms.get(3) == Some(&b's'),
                offset,
                dev: libc::makedev(
                    u32::from_str_radix(major, 16).ok()?,
                    u32::from_str_radix(minor, 16).ok()?,
                ),
                ino,
            })
        })
        .collect()
}

/// The calling process's own memory.
#[derive(Debug, Default)]
pub struct ProcessAddressSpace {
    _private: (),
}

impl ProcessAddressSpace {
    /// The address space of the calling process.
    pub fn new() -> Arc<ProcessAddressSpace> {
        Arc::new(ProcessAddressSpace::default())
    }
}

impl AddressSpace for ProcessAddressSpace {
    fn resolve(&self, va: u64, npages: u64, write: bool, out: &mut Vec<FrameRun>) -> Result<()> {
        let len = npages
            .checked_mul(PAGE_SIZE)
            .ok_or(Error::Overflow("resolve length"))?;
        let end = va.checked_add(len).ok_or(Error::Fault { addr: va })?;
        let maps =
            std::fs::read_to_string("/proc/self/maps").map_err(|_| Error::Fault { addr: va })?;
        let mut cur = va;
        for vma in parse_maps(&maps) {
            if cur >= end {
                break;
            }
            if vma.end <= cur {
                continue;
            }
            if vma.start > cur || !vma.read || (write && !vma.write) {
                return Err(Error::Fault { addr: cur });
            }
            let piece_end = vma.end.min(end);
            while cur < piece_end {
                // One stretch of constant identity at a time.
                let (phys, stop) = if vma.shared {
                    let phys = shared_phys(vma.dev, vma.ino, vma.offset + (cur - vma.start))?;
                    (phys, piece_end)
                } else {
                    let (phys, last) =
                        private_phys(&IDENTITY.read().expect("identity poisoned"), cur);
                    (phys, last.saturating_add(1).min(piece_end))
                };
                let npages = (stop - cur) >> PAGE_SHIFT;
                push_run(
                    out,
                    FrameRun {
                        phys,
                        host: cur as usize,
                        npages,
                    },
                );
                cur = stop;
            }
        }
        if cur < end {
            return Err(Error::Fault { addr: cur });
        }
        Ok(())
    }

    fn pins(&self) -> &PinTable {
        process_pins()
    }

    fn host_at(&self, phys: u64, host: usize) -> usize {
        host_at(phys, host)
    }

    fn read(&self, va: u64, buf: &mut [u8]) -> Result<()> {
        host::read_self(va, buf)
    }

    fn write(&self, va: u64, buf: &[u8]) -> Result<()> {
        host::write_self(va, buf)
    }
}

/// A file of the calling process, pinned by offset (`IOMMU_IOAS_MAP_FILE`).
///
/// Holds its own descriptor, so the file stays alive as long as any mapping of it
/// does, whatever the program does with its own descriptor.
#[derive(Debug)]
pub struct ProcessFile {
    fd: i32,
    dev: u64,
    ino: u64,
    /// Host mappings of the file by window number: (host address, writable). Made
    /// on first use and kept while the file lives, so a pinned page stays
    /// reachable and repeated pins cost no new mappings.
    windows: Mutex<BTreeMap<u64, (usize, bool)>>,
}

impl ProcessFile {
    /// Takes a reference to the open file `fd` (EBADF if it is not open).
    pub fn from_fd(fd: i32) -> Result<Arc<ProcessFile>> {
        #[allow(unsafe_code)]
        // SAFETY: F_DUPFD_CLOEXEC on any integer is harmless; failure is checked.
        let dup = unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 0) };
        if dup < 0 {
            return Err(Error::Other {
                what: "not an open file",
                errno: softiommu_uapi::Errno::EBADF,
            });
        }
        let mut file = ProcessFile {
            fd: dup,
            dev: 0,
            ino: 0,
            windows: Mutex::default(),
        };
        let st = file.stat()?;
        file.dev = st.st_dev;
        file.ino = st.st_ino;
        Ok(Arc::new(file))
    }

    fn stat(&self) -> Result<libc::stat> {
        #[allow(unsafe_code)]
        // SAFETY: an all-zero `stat` is a valid value of this plain C struct.
        let mut st: libc::stat = unsafe { std::mem::zeroed() };
        #[allow(unsafe_code)]
        // SAFETY: `st` is a valid, writable stat buffer and fd is ours.
        let rc = unsafe { libc::fstat(self.fd, &mut st) };
        if rc != 0 {
            return Err(Error::Other {
                what: "fstat failed",
                errno: softiommu_uapi::Errno::EBADF,
            });
        }
        Ok(st)
    }
}

impl Drop for ProcessFile {
    fn drop(&mut self) {
        for &(host, _) in self
            .windows
            .get_mut()
            .expect("file windows poisoned")
            .values()
        {
            #[allow(unsafe_code)]
            // SAFETY: the windows were made by host::map_file and, with the file
            // gone, no pin refers to them any more.
            unsafe {
                host::unmap(host, FILE_WINDOW as usize)
            };
        }
        #[allow(unsafe_code)]
        // SAFETY: fd is the descriptor this value owns.
        unsafe {
            libc::close(self.fd)
        };
    }
}

impl FileSource for ProcessFile {
    fn resolve(
        &self,
        offset: u64,
        npages: u64,
        write: bool,
        out: &mut Vec<FrameRun>,
    ) -> Result<()> {
        let end = file_range_end(offset, npages, self.stat()?.st_size as u64)?;
        let mut windows = self.windows.lock().expect("file windows poisoned");
        let mut at = offset;
        while at < end {
            let w = at / FILE_WINDOW;
            let (host, writable) = match windows.get(&w) {
                Some(&m) => m,
                None => {
                    let m = host::map_file(self.fd, w * FILE_WINDOW, FILE_WINDOW as usize, true)
                        .map(|h| (h, true))
                        .or_else(|_| {
                            host::map_file(self.fd, w * FILE_WINDOW, FILE_WINDOW as usize, false)
                                .map(|h| (h, false))
                        })?;
                    windows.insert(w, m);
                    m
                }
            };
            if write && !writable {
                return Err(Error::Perm("file is not open for writing"));
            }
            let piece_end = end.min((w + 1) * FILE_WINDOW);
            let host = host + (at - w * FILE_WINDOW) as usize;
            let phys = shared_phys(self.dev, self.ino, at)?;
            let npages = (piece_end - at) / PAGE_SIZE;
            push_run(out, FrameRun { phys, host, npages });
            at = piece_end;
        }
        Ok(())
    }

    fn pins(&self) -> &PinTable {
        process_pins()
    }

    fn host_at(&self, phys: u64, host: usize) -> usize {
        host_at(phys, host)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_maps_lines() {
        let v = parse_maps(
            "7f0000000000-7f0000002000 rw-s 00001000 00:01 42   /memfd:x (deleted)\n\
             55d000000000-55d000001000 r--p 00000000 fd:01 7 /bin/x\n",
        );
        assert_eq!(v.len(), 2);
        assert!(v[0].shared && v[0].write && v[0].read);
        assert_eq!(v[0].offset, 0x1000);
        assert_eq!(v[0].ino, 42);
        assert!(!v[1].shared && !v[1].write);
        assert_eq!(v[1].dev, libc::makedev(0xfd, 1));
    }

    #[test]
    fn private_memory_is_identified_by_address() {
        let buf = vec![7u8; 3 * PAGE_SIZE as usize];
        let va = (buf.as_ptr() as u64).next_multiple_of(PAGE_SIZE);
        let mut out = Vec::new();
        ProcessAddressSpace::new()
            .resolve(va, 1, true, &mut out)
            .unwrap();
        assert_eq!(
            out,
            vec![FrameRun {
                phys: va,
                host: va as usize,
                npages: 1
            }]
        );
        let mut b = [0u8; 1];
        ProcessAddressSpace::new().read(va, &mut b).unwrap();
        assert_eq!(b[0], 7);
        assert!(ProcessAddressSpace::new().read(8, &mut b).is_err());
    }

    #[test]
    fn devices_reach_pinned_memory_only() {
        let mut buf = vec![0u8; 3 * PAGE_SIZE as usize];
        let va = (buf.as_ptr() as u64).next_multiple_of(PAGE_SIZE);
        let off = (va - buf.as_ptr() as u64) as usize;
        buf[off..off + 5].copy_from_slice(b"hello");
        let mut runs = Vec::new();
        ProcessAddressSpace::new()
            .resolve(va, 2, true, &mut runs)
            .unwrap();
        let phys = runs[0].phys;
        let mem = ProcessMemory;
        let mut got = [0u8; 5];
        // Not pinned: not memory to a device.
        assert!(mem.read(phys, &mut got).is_err());
        process_pins().pin(&runs);
        mem.read(phys, &mut got).unwrap();
        assert_eq!(&got, b"hello");
        // Across the page boundary.
        mem.write(phys + PAGE_SIZE - 2, b"wxyz").unwrap();
        let p = PAGE_SIZE as usize;
        assert_eq!(&buf[off + p - 2..off + p + 2], b"wxyz");
        // Past the pinned pages.
        assert!(mem.write(phys + 2 * PAGE_SIZE - 1, b"ab").is_err());
        process_pins().unpin(&runs);
        assert!(mem.read(phys, &mut got).is_err());
    }

    #[test]
    fn memfd_pages_have_one_identity() {
        #[allow(unsafe_code)]
        // SAFETY: plain libc calls on a fresh memfd and a mapping of it that this
        // test owns; results are checked.
        unsafe {
            let fd = libc::memfd_create(c"softiommu-test".as_ptr(), 0);
            assert!(fd >= 0);
            assert_eq!(libc::ftruncate(fd, 4 * PAGE_SIZE as i64), 0);
            let p = libc::mmap(
                std::ptr::null_mut(),
                4 * PAGE_SIZE as usize,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                fd,
                0,
            );
            assert_ne!(p, libc::MAP_FAILED);
            *(p as *mut u8).add(PAGE_SIZE as usize) = 42;
            let file = ProcessFile::from_fd(fd).unwrap();
            let (mut by_va, mut by_off) = (Vec::new(), Vec::new());
            ProcessAddressSpace::new()
                .resolve(p as u64 + PAGE_SIZE, 1, true, &mut by_va)
                .unwrap();
            file.resolve(PAGE_SIZE, 1, true, &mut by_off).unwrap();
            assert_eq!(by_va[0].phys, by_off[0].phys);
            assert_eq!(*(by_off[0].host as *const u8), 42);
            assert!(file.resolve(4 * PAGE_SIZE, 1, false, &mut by_off).is_err());
            libc::munmap(p, 4 * PAGE_SIZE as usize);
            libc::close(fd);
        }
    }

    #[test]
    fn pinned_pages_survive_munmap() {
        let len = 4 * PAGE_SIZE as usize;
        #[allow(unsafe_code)]
        // SAFETY: a fresh anonymous mapping owned by this test; result checked.
        let va = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        } as u64;
        let space = ProcessAddressSpace::new();
        space.write(va + PAGE_SIZE, b"pinned").unwrap();
        // Pin the middle two pages, as a domain would.
        let mut runs = Vec::new();
        space.resolve(va + PAGE_SIZE, 2, true, &mut runs).unwrap();
        space.pins().pin(&runs);
        let phys = runs[0].phys;
        before_unmap(va, len as u64);
        #[allow(unsafe_code)]
        // SAFETY: the test's own mapping; the pinned part was moved aside.
        unsafe {
            libc::munmap(va as *mut libc::c_void, len)
        };
        // The pinned page is still reachable, with its contents, at a new place.
        let moved = space.host_at(phys, runs[0].host);
        assert_ne!(moved, runs[0].host);
        let mut buf = [0u8; 6];
        host::read_self(moved as u64, &mut buf).unwrap();
        assert_eq!(&buf, b"pinned");
        // The old address is gone, and memory mapped there later is another page.
        let mut again = Vec::new();
        assert!(space.resolve(va + PAGE_SIZE, 1, false, &mut again).is_err());
        #[allow(unsafe_code)]
        // SAFETY: maps fresh memory at the test's own, now unmapped, range.
        let p = unsafe {
            libc::mmap(
                va as *mut libc::c_void,
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_FIXED,
                -1,
                0,
            )
        };
        assert_eq!(p as u64, va);
        space.resolve(va + PAGE_SIZE, 1, false, &mut again).unwrap();
        assert_ne!(again[0].phys, phys);
        // The last unpin releases the hidden mapping.
        space.pins().unpin(&runs);
        assert_eq!(space.host_at(phys, runs[0].host), runs[0].host);
        #[allow(unsafe_code)]
        // SAFETY: the test's own mapping.
        unsafe {
            libc::munmap(va as *mut libc::c_void, len)
        };
    }
}
