//! Memory: address spaces, files, frames, pins and the locked-memory accounting.
//!
//! A *frame* is a page of the model's physical memory. It has two faces: a physical
//! address, which is its identity (what a mock domain records, what `MD_CHECK_MAP`
//! compares, what pin counts are kept against), and a host pointer, through which
//! accesses and DMA read and write its bytes. Both come in runs: a [`FrameRun`] is
//! a stretch of frames contiguous in physical and host memory, and every cost in the
//! core follows runs, not pages.
//!
//! An [`AddressSpace`] is a process's memory seen by virtual address; a
//! [`FileSource`] is a file seen by offset (what `IOMMU_IOAS_MAP_FILE` pins). Each
//! resolves ranges to frame runs and names the [`PinTable`] of the physical memory
//! its frames live in, so that a page pinned through a virtual address and through a
//! file offset is counted once per pin, as the kernel counts `FOLL_PIN`s.
//!
//! Two implementations: [`sim`] (simulated memory: deterministic, for tests,
//! fuzzing and benchmarks) and [`process`] (the calling process itself, for the
//! interposer).
//!
//! [`Process`] and [`User`] carry what the kernel charges pins to: the mm's
//! `locked_vm` and `pinned_vm`, the user's `locked_vm`, and `RLIMIT_MEMLOCK`.

pub mod host;
pub mod process;
pub mod sim;

use crate::error::{Error, Result};
use crate::range::{CountMap, IovaRange};
use std::fmt::Debug;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// The CPU page size the model works in (the kernel's `PAGE_SIZE` on x86_64).
pub const PAGE_SIZE: u64 = 4096;
/// log2 of [`PAGE_SIZE`].
pub const PAGE_SHIFT: u32 = 12;

/// A run of frames contiguous in physical and in host memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FrameRun {
    /// Physical address of the first frame (page aligned).
    pub phys: u64,
    /// Host address of the first byte of the first frame.
    pub host: usize,
    /// Number of frames.
    pub npages: u64,
}

impl FrameRun {
    /// The run's physical range.
    pub fn phys_range(&self) -> IovaRange {
        IovaRange::new(self.phys, self.phys + (self.npages << PAGE_SHIFT) - 1)
    }

    /// The first `n` frames and the rest.
    pub fn split(&self, n: u64) -> (FrameRun, FrameRun) {
        debug_assert!(n > 0 && n < self.npages);
        let bytes = n << PAGE_SHIFT;
        (
            FrameRun { npages: n, ..*self },
            FrameRun {
                phys: self.phys + bytes,
                host: self.host + bytes as usize,
                npages: self.npages - n,
            },
        )
    }
}

/// Pushes `run` onto `out`, merging it with the last run when contiguous.
pub fn push_run(out: &mut Vec<FrameRun>, run: FrameRun) {
    if let Some(last) = out.last_mut() {
        let bytes = last.npages << PAGE_SHIFT;
        if last.phys + bytes == run.phys && last.host + bytes as usize == run.host {
            last.npages += run.npages;
            return;
        }
    }
    out.push(run);
}

/// Checks that the file pages `[offset, offset + npages * PAGE_SIZE)` lie in a
/// file of `size` bytes (a page partly inside counts, as memfd's do); returns the
/// end offset. EINVAL past the end, EOVERFLOW on overflow.
pub fn file_range_end(offset: u64, npages: u64, size: u64) -> Result<u64> {
    let end = npages
        .checked_mul(PAGE_SIZE)
        .and_then(|len| offset.checked_add(len))
        .ok_or(Error::Overflow("file range"))?;
    if !offset.is_multiple_of(PAGE_SIZE) || end > size.next_multiple_of(PAGE_SIZE) {
        return Err(Error::Invalid("file range past the end of the file"));
    }
    Ok(end)
}

/// Pin counts of one physical memory, by page frame number.
#[derive(Debug, Default)]
pub struct PinTable {
    counts: Mutex<CountMap>,
    /// Told about the runs of each pin (outside the table's lock).
    on_pin: Option<fn(&[FrameRun])>,
    /// Told about page frame ranges whose last pin went.
    on_free: Option<fn(IovaRange)>,
}

impl PinTable {
    fn pfns(run: &FrameRun) -> IovaRange {
        let pfn = run.phys >> PAGE_SHIFT;
        IovaRange::new(pfn, pfn + run.npages - 1)
    }

    /// Takes one pin on every frame of `runs`.
    pub fn pin(&self, runs: &[FrameRun]) {
        {
            let mut counts = self.counts.lock().expect("pin table poisoned");
            for r in runs {
                counts.add(Self::pfns(r));
            }
        }
        if let Some(hook) = self.on_pin {
            hook(runs);
        }
    }

    /// A table that calls `on_pin` with the runs of every pin and `on_free`
    /// with each page frame range whose last pin goes (outside the table's
    /// lock).
    pub fn with_hooks(on_pin: fn(&[FrameRun]), on_free: fn(IovaRange)) -> PinTable {
        PinTable {
            counts: Mutex::default(),
            on_pin: Some(on_pin),
            on_free: Some(on_free),
        }
    }

    /// Drops one pin from every frame of `runs`.
    pub fn unpin(&self, runs: &[FrameRun]) {
        let mut freed = Vec::new();
        {
            let mut counts = self.counts.lock().expect("pin table poisoned");
            for r in runs {
                freed.extend(counts.sub(Self::pfns(r)));
            }
        }
        if let Some(hook) = self.on_free {
            freed.into_iter().for_each(hook);
        }
    }

    /// The pinned page frame ranges inside the page frame range `pfns`.
    pub fn pinned_in(&self, pfns: IovaRange) -> Vec<IovaRange> {
        let counts = self.counts.lock().expect("pin table poisoned");
        let mut out: Vec<IovaRange> = Vec::new();
        for (r, _) in counts.iter(pfns) {
            match out.last_mut() {
                Some(last) if last.last + 1 == r.start => last.last = r.last,
                _ => out.push(r),
            }
        }
        out
    }

    /// The number of pins on the frame at `phys`.
    pub fn count(&self, phys: u64) -> u32 {
        self.counts
            .lock()
            .expect("pin table poisoned")
            .get(phys >> PAGE_SHIFT)
    }

    /// Every run of pinned page frame numbers with its pin count.
    pub fn snapshot(&self) -> Vec<(IovaRange, u32)> {
        self.counts
            .lock()
            .expect("pin table poisoned")
            .iter(IovaRange::ALL)
            .collect()
    }

    /// Whether any frame is pinned.
    pub fn is_empty(&self) -> bool {
        self.counts.lock().expect("pin table poisoned").is_empty()
    }
}

/// The machine's memory by physical address: where a device's DMA lands once the
/// IOMMU has translated it.
pub trait PhysMemory: Send + Sync + Debug {
    /// Copies `buf.len()` bytes at `phys` into `buf`. Fails with
    /// [`Error::Fault`] where there is no memory.
    fn read(&self, phys: u64, buf: &mut [u8]) -> Result<()>;

    /// Copies `buf` to `phys`; as [`PhysMemory::read`].
    fn write(&self, phys: u64, buf: &[u8]) -> Result<()>;
}

/// A process's memory, by virtual address.
pub trait AddressSpace: Send + Sync + Debug {
    /// Appends the frames behind the pages `[va, va + npages * PAGE_SIZE)` to `out`
    /// in order. `va` is page aligned. Fails with [`Error::Fault`] naming the first
    /// address that is not mapped, or not writable when `write` is asked.
    fn resolve(&self, va: u64, npages: u64, write: bool, out: &mut Vec<FrameRun>) -> Result<()>;

    /// The pin counts of the physical memory behind this address space.
    fn pins(&self) -> &PinTable;

    /// Where the pinned page `phys`, resolved at host address `host`, is now (it
    /// moves when the program unmaps memory that is still pinned).
    fn host_at(&self, phys: u64, host: usize) -> usize {
        let _ = phys;
        host
    }

    /// Copies `buf.len()` bytes at `va` out of the program's memory (as
    /// `copy_from_user` would). Fails with [`Error::Fault`] where not readable.
    fn read(&self, va: u64, buf: &mut [u8]) -> Result<()>;

    /// Copies `buf` into the program's memory at `va` (as `copy_to_user` would).
    fn write(&self, va: u64, buf: &[u8]) -> Result<()>;
}

/// A file, by offset: the source of `IOMMU_IOAS_MAP_FILE`.
pub trait FileSource: Send + Sync + Debug {
    /// Appends the frames behind the file pages `[offset, offset + npages *
    /// PAGE_SIZE)` to `out`. Fails with EINVAL past the end of the file.
    fn resolve(&self, offset: u64, npages: u64, write: bool, out: &mut Vec<FrameRun>)
        -> Result<()>;

    /// The pin counts of the physical memory the file's pages live in.
    fn pins(&self) -> &PinTable;

    /// Where the pinned page `phys`, resolved at host address `host`, is now.
    fn host_at(&self, phys: u64, host: usize) -> usize {
        let _ = phys;
        host
    }
}

/// The user a process runs as: the kernel's `user_struct`, which carries the
/// per-user `locked_vm` that `IOMMU_OPTION_RLIMIT_MODE` 0 charges.
#[derive(Debug, Default)]
pub struct User {
    locked_vm: AtomicU64,
}

impl User {
    /// A new user with nothing charged.
    pub fn new() -> Arc<User> {
        Arc::new(User::default())
    }

    /// Pages charged to this user.
    pub fn locked_vm(&self) -> u64 {
        self.locked_vm.load(Ordering::Relaxed)
    }
}

/// A process: its address space, its user, its limits and the pin charges on its mm.
#[derive(Debug)]
pub struct Process {
    /// The process's memory.
    pub space: Arc<dyn AddressSpace>,
    /// The user it runs as.
    pub user: Arc<User>,
    locked_vm: AtomicU64,
    pinned_vm: AtomicU64,
    rlimit_memlock: AtomicU64,
    cap_ipc_lock: AtomicBool,
    cap_sys_resource: AtomicBool,
}

/// Who a [`crate::iommufd::pages::Pages`] charges its pins to, fixed when it is
/// created (the kernel's `IOPT_PAGES_ACCOUNT_*`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AccountMode {
    /// The process may lock memory without limit (CAP_IPC_LOCK): nothing is charged
    /// but `pinned_vm`.
    None,
    /// Charged to the user's `locked_vm`, limited by RLIMIT_MEMLOCK.
    User,
    /// Charged to the process's `locked_vm`, limited by RLIMIT_MEMLOCK.
    Mm,
}

impl Process {
    /// A process over `space`, running as `user`, with unlimited RLIMIT_MEMLOCK
    /// and no capabilities.
    pub fn new(space: Arc<dyn AddressSpace>, user: Arc<User>) -> Arc<Process> {
        Arc::new(Process {
            space,
            user,
            locked_vm: AtomicU64::new(0),
            pinned_vm: AtomicU64::new(0),
            rlimit_memlock: AtomicU64::new(u64::MAX),
            cap_ipc_lock: AtomicBool::new(false),
            cap_sys_resource: AtomicBool::new(false),
        })
    }

    /// Sets RLIMIT_MEMLOCK in bytes (`u64::MAX`: unlimited).
    pub fn set_rlimit_memlock(&self, bytes: u64) {
        self.rlimit_memlock.store(bytes, Ordering::Relaxed);
    }

    /// Grants or drops CAP_IPC_LOCK (lock memory beyond RLIMIT_MEMLOCK).
    pub fn set_cap_ipc_lock(&self, on: bool) {
        self.cap_ipc_lock.store(on, Ordering::Relaxed);
    }

    /// Grants or drops CAP_SYS_RESOURCE (needed to set the RLIMIT_MODE option).
    pub fn set_cap_sys_resource(&self, on: bool) {
        self.cap_sys_resource.store(on, Ordering::Relaxed);
    }

    /// Whether the process has CAP_IPC_LOCK.
    pub fn cap_ipc_lock(&self) -> bool {
        self.cap_ipc_lock.load(Ordering::Relaxed)
    }

    /// Whether the process has CAP_SYS_RESOURCE.
    pub fn cap_sys_resource(&self) -> bool {
        self.cap_sys_resource.load(Ordering::Relaxed)
    }

    /// Pages charged to this process's `locked_vm` (`VmLck`).
    pub fn locked_vm(&self) -> u64 {
        self.locked_vm.load(Ordering::Relaxed)
    }

    /// Pages pinned on behalf of this process (`VmPin`).
    pub fn pinned_vm(&self) -> u64 {
        self.pinned_vm.load(Ordering::Relaxed)
    }

    /// The account mode a new set of pages created by this process gets.
    pub fn default_account_mode(&self) -> AccountMode {
        if self.cap_ipc_lock() {
            AccountMode::None
        } else {
            AccountMode::User
        }
    }

    fn limit_pages(&self) -> u64 {
        self.rlimit_memlock.load(Ordering::Relaxed) >> PAGE_SHIFT
    }

    /// Charges `npages` pinned pages in `mode`; ENOMEM over RLIMIT_MEMLOCK.
    pub fn charge(&self, mode: AccountMode, npages: u64) -> Result<()> {
        if npages == 0 {
            return Ok(());
        }
        let counter = match mode {
            AccountMode::None => None,
            AccountMode::User => Some(&self.user.locked_vm),
            AccountMode::Mm => Some(&self.locked_vm),
        };
        if let Some(counter) = counter {
            let limit = self.limit_pages();
            counter
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |cur| {
                    cur.checked_add(npages).filter(|n| *n <= limit)
                })
                .map_err(|_| Error::NoMem("RLIMIT_MEMLOCK exceeded"))?;
        }
        self.pinned_vm.fetch_add(npages, Ordering::Relaxed);
        Ok(())
    }

    /// Returns a charge made by [`Process::charge`].
    pub fn uncharge(&self, mode: AccountMode, npages: u64) {
        let counter = match mode {
            AccountMode::None => None,
            AccountMode::User => Some(&self.user.locked_vm),
            AccountMode::Mm => Some(&self.locked_vm),
        };
        if let Some(counter) = counter {
            let prev = counter.fetch_sub(npages, Ordering::Relaxed);
            debug_assert!(prev >= npages, "locked_vm underflow");
        }
        let prev = self.pinned_vm.fetch_sub(npages, Ordering::Relaxed);
        debug_assert!(prev >= npages, "pinned_vm underflow");
    }
}
