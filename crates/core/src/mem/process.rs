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
//! Mappings are read from `/proc/self/maps` on every resolve, so the answer is
//! right even after the program remaps its memory. The host address of a frame is
//! its current virtual address (private and shared mappings) or an address in our
//! own mapping of the file, made in 64 MiB windows on first use (files pinned by
//! offset).

use super::host;
use super::{
    file_range_end, push_run, AddressSpace, FileSource, FrameRun, PinTable, PAGE_SHIFT, PAGE_SIZE,
};
use crate::error::{Error, Result};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, OnceLock};

/// Size of the windows a pinned file is mapped in.
const FILE_WINDOW: u64 = 64 << 20;

/// Bits of a physical address that hold the offset within its backing.
const BACKING_SHIFT: u32 = 48;

/// Pin counts for the host's memory: one table for the whole process.
fn process_pins() -> &'static PinTable {
    static PINS: OnceLock<PinTable> = OnceLock::new();
    PINS.get_or_init(PinTable::default)
}

/// The number standing for a (device, inode) in physical addresses.
fn backing_id(dev: u64, ino: u64) -> Result<u64> {
    static IDS: OnceLock<Mutex<HashMap<(u64, u64), u64>>> = OnceLock::new();
    let mut ids = IDS
        .get_or_init(Default::default)
        .lock()
        .expect("backing ids poisoned");
    let next = ids.len() as u64 + 1;
    if next >= 1 << (64 - BACKING_SHIFT) {
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
            let phys = if vma.shared {
                shared_phys(vma.dev, vma.ino, vma.offset + (cur - vma.start))?
            } else {
                cur
            };
            push_run(
                out,
                FrameRun {
                    phys,
                    host: cur as usize,
                    npages: (piece_end - cur) >> PAGE_SHIFT,
                },
            );
            cur = piece_end;
        }
        if cur < end {
            return Err(Error::Fault { addr: cur });
        }
        Ok(())
    }

    fn pins(&self) -> &PinTable {
        process_pins()
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
}
