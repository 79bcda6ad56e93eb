//! Simulated memory: deterministic processes and files for tests and benchmarks.
//!
//! A [`SimMemory`] is a physical memory: one lazily committed host region, handed
//! out front to back in contiguous objects, with one [`PinTable`]. A
//! [`SimAddressSpace`] is a process's page table over it: virtual ranges (VMAs) each
//! backed by a contiguous stretch of one object, so resolving a range costs one step
//! per VMA. A [`SimFile`] is a memfd: a fixed-capacity object with a size that
//! `truncate` moves; mapping it in two places, or pinning it by offset, reaches the
//! same frames.
//!
//! Memory is never returned to the region: an object outlives its mappings, which is
//! what keeps pinned pages reachable after the program unmaps them, as the kernel's
//! pins do.

use super::host::{self, HostRegion};
use super::{
    file_range_end, push_run, AddressSpace, FileSource, FrameRun, PhysMemory, PinTable, PAGE_SHIFT,
    PAGE_SIZE,
};
use crate::error::{Error, Result};
use crate::range::{IovaRange, RangeMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

/// Physical address of the first simulated frame. Nothing maps below it, so a
/// zero physical address is never a valid frame.
pub const SIM_PHYS_BASE: u64 = 1 << 32;

/// A simulated physical memory.
#[derive(Debug)]
pub struct SimMemory {
    region: HostRegion,
    /// Bytes handed out so far.
    used: Mutex<u64>,
    pins: PinTable,
}

/// A contiguous stretch of simulated physical memory.
#[derive(Clone, Copy, Debug)]
struct Object {
    phys: u64,
    host: usize,
    npages: u64,
}

impl SimMemory {
    /// A memory of `capacity` bytes (rounded down to pages), committed on use.
    pub fn new(capacity: u64) -> Result<Arc<SimMemory>> {
        let len = usize::try_from(capacity & !(PAGE_SIZE - 1))
            .map_err(|_| Error::Overflow("capacity"))?;
        Ok(Arc::new(SimMemory {
            region: HostRegion::new(len)?,
            used: Mutex::new(0),
            pins: PinTable::default(),
        }))
    }

    fn alloc(&self, npages: u64) -> Result<Object> {
        let bytes = npages
            .checked_mul(PAGE_SIZE)
            .ok_or(Error::Overflow("allocation size"))?;
        let mut used = self.used.lock().expect("sim memory poisoned");
        let end = used
            .checked_add(bytes)
            .ok_or(Error::Overflow("allocation size"))?;
        if end > self.region.len() as u64 {
            return Err(Error::NoMem("simulated memory exhausted"));
        }
        let obj = Object {
            phys: SIM_PHYS_BASE + *used,
            host: self.region.base() + *used as usize,
            npages,
        };
        *used = end;
        Ok(obj)
    }

    /// The pin counts of this memory.
    pub fn pins(&self) -> &PinTable {
        &self.pins
    }
}

impl SimMemory {
    /// The host address of `[phys, phys + len)`. The whole region counts as
    /// memory, handed out or not, so that the DMA path takes no lock.
    fn host(&self, phys: u64, len: usize) -> Result<usize> {
        phys.checked_sub(SIM_PHYS_BASE)
            .filter(|o| {
                o.checked_add(len as u64)
                    .is_some_and(|end| end <= self.region.len() as u64)
            })
            .map(|o| self.region.base() + o as usize)
            .ok_or(Error::Fault { addr: phys })
    }
}

impl PhysMemory for SimMemory {
    fn read(&self, phys: u64, buf: &mut [u8]) -> Result<()> {
        unsafe_copy_out(self.host(phys, buf.len())?, buf);
        Ok(())
    }

    fn write(&self, phys: u64, buf: &[u8]) -> Result<()> {
        unsafe_copy_in(self.host(phys, buf.len())?, buf);
        Ok(())
    }
}

/// One mapping of a simulated process: `[va, last]` onto frames from `phys`.
#[derive(Clone, Copy, Debug)]
struct Vma {
    phys: u64,
    host: usize,
    writable: bool,
}

/// A simulated process address space.
#[derive(Debug)]
pub struct SimAddressSpace {
    mem: Arc<SimMemory>,
    vmas: RwLock<RangeMap<Vma>>,
    next_va: Mutex<u64>,
}

/// Where [`SimAddressSpace`] places mappings that do not ask for an address.
const SIM_MMAP_BASE: u64 = 0x7f00_0000_0000;

impl SimAddressSpace {
    /// An empty address space over `mem`.
    pub fn new(mem: &Arc<SimMemory>) -> Arc<SimAddressSpace> {
        Arc::new(SimAddressSpace {
            mem: mem.clone(),
            vmas: RwLock::default(),
            next_va: Mutex::new(SIM_MMAP_BASE),
        })
    }

    /// The physical memory behind this address space.
    pub fn memory(&self) -> &Arc<SimMemory> {
        &self.mem
    }

    fn place(&self, va: Option<u64>, len: u64) -> Result<IovaRange> {
        if len == 0 || !len.is_multiple_of(PAGE_SIZE) {
            return Err(Error::Invalid("mapping length"));
        }
        let va = match va {
            Some(va) if va % PAGE_SIZE == 0 => va,
            Some(_) => return Err(Error::Invalid("mapping address")),
            None => {
                let mut next = self.next_va.lock().expect("sim address space poisoned");
                let va = *next;
                // Leave a guard page between mappings, as mmap usually does.
                *next = va
                    .checked_add(len + PAGE_SIZE)
                    .ok_or(Error::NoMem("address space exhausted"))?;
                va
            }
        };
        IovaRange::from_len(va, len).ok_or(Error::Overflow("mapping range"))
    }

    fn install(&self, range: IovaRange, vma: Vma) {
        let mut vmas = self.vmas.write().expect("sim address space poisoned");
        Self::punch(&mut vmas, range);
        vmas.insert(range, vma);
    }

    /// Removes `range` from the VMAs, splitting those that straddle its ends.
    fn punch(vmas: &mut RangeMap<Vma>, range: IovaRange) {
        for start in vmas.overlapping_starts(range) {
            let Some((r, v)) = vmas.remove(start) else {
                continue;
            };
            if r.start < range.start {
                vmas.insert(IovaRange::new(r.start, range.start - 1), v);
            }
            if r.last > range.last {
                let skip = range.last + 1 - r.start;
                let tail = Vma {
                    phys: v.phys + skip,
                    host: v.host + skip as usize,
                    ..v
                };
                vmas.insert(IovaRange::new(range.last + 1, r.last), tail);
            }
        }
    }

    /// Maps `len` bytes of fresh zeroed private memory, at `va` if given (replacing
    /// what was there, as `MAP_FIXED`); returns the address.
    pub fn mmap_anon(&self, va: Option<u64>, len: u64, writable: bool) -> Result<u64> {
        let range = self.place(va, len)?;
        let obj = self.mem.alloc(len >> PAGE_SHIFT)?;
        self.install(
            range,
            Vma {
                phys: obj.phys,
                host: obj.host,
                writable,
            },
        );
        Ok(range.start)
    }

    /// Maps `len` bytes of `file` from `offset` shared (as `mmap(MAP_SHARED)` of a
    /// memfd); returns the address.
    pub fn mmap_file(
        &self,
        va: Option<u64>,
        file: &SimFile,
        offset: u64,
        len: u64,
        writable: bool,
    ) -> Result<u64> {
        if !offset.is_multiple_of(PAGE_SIZE) {
            return Err(Error::Invalid("file offset"));
        }
        let end = offset
            .checked_add(len)
            .ok_or(Error::Overflow("file range"))?;
        if end > file.obj.npages << PAGE_SHIFT {
            return Err(Error::Invalid("beyond the file's capacity"));
        }
        let range = self.place(va, len)?;
        let vma = Vma {
            phys: file.obj.phys + offset,
            host: file.obj.host + offset as usize,
            writable,
        };
        self.install(range, vma);
        Ok(range.start)
    }

    /// Unmaps `[va, va + len)`. Pinned frames stay reachable through their pins.
    pub fn munmap(&self, va: u64, len: u64) -> Result<()> {
        let range = IovaRange::from_len(va, len).ok_or(Error::Invalid("munmap range"))?;
        Self::punch(
            &mut self.vmas.write().expect("sim address space poisoned"),
            range,
        );
        Ok(())
    }

    /// Walks `[va, va + len)` calling `f(host, len)` per VMA piece.
    fn walk(
        &self,
        va: u64,
        len: u64,
        write: bool,
        mut f: impl FnMut(usize, u64, u64),
    ) -> Result<()> {
        if len == 0 {
            return Ok(());
        }
        let range = IovaRange::from_len(va, len).ok_or(Error::Fault { addr: va })?;
        let vmas = self.vmas.read().expect("sim address space poisoned");
        let mut cur = va;
        for (r, v) in vmas.overlapping(range) {
            if r.start > cur || (write && !v.writable) {
                return Err(Error::Fault { addr: cur });
            }
            let piece_last = r.last.min(range.last);
            let skip = cur - r.start;
            f(v.host + skip as usize, v.phys + skip, piece_last - cur + 1);
            match piece_last.checked_add(1) {
                Some(n) if piece_last < range.last => cur = n,
                _ => return Ok(()),
            }
        }
        Err(Error::Fault { addr: cur })
    }
}

impl AddressSpace for SimAddressSpace {
    fn resolve(&self, va: u64, npages: u64, write: bool, out: &mut Vec<FrameRun>) -> Result<()> {
        let len = npages
            .checked_mul(PAGE_SIZE)
            .ok_or(Error::Overflow("resolve length"))?;
        self.walk(va, len, write, |host, phys, len| {
            push_run(
                out,
                FrameRun {
                    phys,
                    host,
                    npages: len >> PAGE_SHIFT,
                },
            )
        })
    }

    fn pins(&self) -> &PinTable {
        &self.mem.pins
    }

    fn read(&self, va: u64, buf: &mut [u8]) -> Result<()> {
        let mut done = 0usize;
        self.walk(va, buf.len() as u64, false, |host, _, len| {
            let n = len as usize;
            // SAFETY: host lies inside the SimMemory region, which lives as long
            // as self.mem; the VMA covers `len` bytes from it.
            unsafe_copy_out(host, &mut buf[done..done + n]);
            done += n;
        })
    }

    fn write(&self, va: u64, buf: &[u8]) -> Result<()> {
        let mut done = 0usize;
        self.walk(va, buf.len() as u64, true, |host, _, len| {
            let n = len as usize;
            unsafe_copy_in(host, &buf[done..done + n]);
            done += n;
        })
    }
}

// The simulated region is always mapped while its SimMemory lives, so copies into
// and out of it are safe to expose here, and infallible: they bypass the
// front end's fault-catching copy (host.rs), which only real memory needs.
fn unsafe_copy_out(host: usize, buf: &mut [u8]) {
    #[allow(unsafe_code)]
    // SAFETY: callers pass host addresses inside a live SimMemory region.
    unsafe {
        host::copy_out_mapped(host, buf)
    }
}

fn unsafe_copy_in(host: usize, buf: &[u8]) {
    #[allow(unsafe_code)]
    // SAFETY: callers pass host addresses inside a live SimMemory region.
    unsafe {
        host::copy_in_mapped(host, buf)
    }
}

/// A simulated memfd.
#[derive(Debug)]
pub struct SimFile {
    mem: Arc<SimMemory>,
    obj: Object,
    size: AtomicU64,
}

impl SimFile {
    /// A file that can grow to `capacity` bytes, `size` bytes long now.
    pub fn new(mem: &Arc<SimMemory>, capacity: u64, size: u64) -> Result<Arc<SimFile>> {
        let npages = capacity.div_ceil(PAGE_SIZE);
        let obj = mem.alloc(npages)?;
        let file = SimFile {
            mem: mem.clone(),
            obj,
            size: AtomicU64::new(0),
        };
        file.truncate(size)?;
        Ok(Arc::new(file))
    }

    /// Sets the file size (as `ftruncate`).
    pub fn truncate(&self, size: u64) -> Result<()> {
        if size > self.obj.npages << PAGE_SHIFT {
            return Err(Error::Invalid("beyond the file's capacity"));
        }
        self.size.store(size, Ordering::Relaxed);
        Ok(())
    }

    /// The file size.
    pub fn size(&self) -> u64 {
        self.size.load(Ordering::Relaxed)
    }
}

impl FileSource for SimFile {
    fn resolve(
        &self,
        offset: u64,
        npages: u64,
        _write: bool,
        out: &mut Vec<FrameRun>,
    ) -> Result<()> {
        file_range_end(offset, npages, self.size())?;
        push_run(
            out,
            FrameRun {
                phys: self.obj.phys + offset,
                host: self.obj.host + offset as usize,
                npages,
            },
        );
        Ok(())
    }

    fn pins(&self) -> &PinTable {
        &self.mem.pins
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shared_file_mappings_share_frames() {
        let mem = SimMemory::new(1 << 30).unwrap();
        let space = SimAddressSpace::new(&mem);
        let file = SimFile::new(&mem, 8 * PAGE_SIZE, 8 * PAGE_SIZE).unwrap();
        let a = space
            .mmap_file(None, &file, 0, 8 * PAGE_SIZE, true)
            .unwrap();
        let b = space
            .mmap_file(None, &file, 2 * PAGE_SIZE, 4 * PAGE_SIZE, true)
            .unwrap();
        let (mut ra, mut rb, mut rf) = (Vec::new(), Vec::new(), Vec::new());
        space.resolve(a + 2 * PAGE_SIZE, 1, false, &mut ra).unwrap();
        space.resolve(b, 1, false, &mut rb).unwrap();
        file.resolve(2 * PAGE_SIZE, 1, false, &mut rf).unwrap();
        assert_eq!(ra, rb);
        assert_eq!(ra, rf);
        space.write(a + 2 * PAGE_SIZE + 5, b"hi").unwrap();
        let mut buf = [0u8; 2];
        space.read(b + 5, &mut buf).unwrap();
        assert_eq!(&buf, b"hi");
    }

    #[test]
    fn munmap_punches_and_faults() {
        let mem = SimMemory::new(1 << 30).unwrap();
        let space = SimAddressSpace::new(&mem);
        let a = space.mmap_anon(None, 4 * PAGE_SIZE, true).unwrap();
        space.munmap(a + PAGE_SIZE, PAGE_SIZE).unwrap();
        let mut out = Vec::new();
        assert_eq!(
            space.resolve(a, 4, false, &mut out),
            Err(Error::Fault {
                addr: a + PAGE_SIZE
            })
        );
        out.clear();
        space
            .resolve(a + 2 * PAGE_SIZE, 2, false, &mut out)
            .unwrap();
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].npages, 2);
        let ro = space.mmap_anon(None, PAGE_SIZE, false).unwrap();
        assert!(space.resolve(ro, 1, true, &mut out).is_err());
        assert!(space.write(ro, b"x").is_err());
    }
}
