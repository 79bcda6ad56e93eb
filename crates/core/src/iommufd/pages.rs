//! Pages: a range of user memory or of a file, pinned on demand.
//!
//! A [`Pages`] is what one `IOMMU_IOAS_MAP` or `IOMMU_IOAS_MAP_FILE` call creates:
//! `npages` CPU pages starting at a page-aligned user address or file offset. Every
//! area that maps (part of) it shares it — `IOMMU_IOAS_COPY` makes new areas over the
//! same `Pages` — so a page is pinned once however many IOASes and domains reach it.
//!
//! Nothing is pinned when a `Pages` is made. A page is pinned while it has at least
//! one *holder*: an area that is loaded into the domains of its IOAS, or an access
//! that pinned it. [`Pages::hold`] and [`Pages::release`] add and drop one holder
//! over an index range; the ranges whose holder count crosses zero are pinned and
//! unpinned, charged and uncharged. Frames of pinned pages are kept here as runs,
//! so domains can be filled from them, accesses can read them, and a page the
//! program has since unmapped stays reachable until its last holder goes.
//!
//! Accounting follows the kernel: every pinned page is charged to the source
//! process's `pinned_vm`, and, by the account mode fixed at creation, to the user's
//! or the process's `locked_vm` under RLIMIT_MEMLOCK (`IOMMU_OPTION_RLIMIT_MODE`).
//!
//! Lock: `inner` guards everything that changes; it nests inside the IOAS lock and
//! outside the pin table's lock. A failed `hold` changes nothing.

use crate::error::{Error, Result};
use crate::inject;
use crate::mem::{host, AccountMode, FileSource, FrameRun, Process, PAGE_SHIFT, PAGE_SIZE};
use crate::range::{CountMap, IovaRange, RangeMap};
use std::sync::{Arc, Mutex, MutexGuard};

/// Where the pages come from.
#[derive(Clone, Debug)]
pub enum Source {
    /// User memory of the source process, from this page-aligned address.
    User {
        /// Page-aligned user address of index 0.
        va: u64,
    },
    /// A file, from this page-aligned offset.
    File {
        /// The file.
        file: Arc<dyn FileSource>,
        /// Page-aligned file offset of index 0.
        offset: u64,
    },
}

/// A shared, lazily pinned range of user memory.
#[derive(Debug)]
pub struct Pages {
    source: Source,
    npages: u64,
    writable: bool,
    inner: Mutex<PagesInner>,
}

/// The pinned part of a [`Pages`].
#[derive(Debug, Default)]
struct Pinned {
    /// Holders per page index.
    holders: CountMap,
    /// Frames of every held index, by index range.
    frames: RangeMap<FrameRun>,
}

static NOTHING_PINNED: std::sync::LazyLock<Pinned> = std::sync::LazyLock::new(Pinned::default);

#[derive(Debug)]
struct PagesInner {
    /// The process the pins are charged to (and whose memory `Source::User` is).
    process: Arc<Process>,
    account_mode: AccountMode,
    /// What is pinned; allocated with the first pin, freed with the last, so
    /// that the many mappings nothing pins stay small.
    pinned: Option<Box<Pinned>>,
    npinned: u64,
}

impl Pages {
    /// Pages over `length` bytes of `process`'s memory at `uptr`; returns the pages
    /// and the byte offset of `uptr` in them. Pins nothing.
    pub fn new_user(
        process: &Arc<Process>,
        uptr: u64,
        length: u64,
        writable: bool,
    ) -> Result<(Arc<Pages>, u64)> {
        uptr.checked_add(length)
            .ok_or(Error::Overflow("user address + length"))?;
        let start_byte = uptr % PAGE_SIZE;
        let pages = Self::new(
            process,
            Source::User {
                va: uptr - start_byte,
            },
            start_byte,
            length,
            writable,
        )?;
        Ok((pages, start_byte))
    }

    /// Pages over `length` bytes of `file` from `start`; returns the pages and the
    /// byte offset of `start` in them. Pins nothing.
    pub fn new_file(
        process: &Arc<Process>,
        file: Arc<dyn FileSource>,
        start: u64,
        length: u64,
        writable: bool,
    ) -> Result<(Arc<Pages>, u64)> {
        start
            .checked_add(length)
            .ok_or(Error::Overflow("file offset + length"))?;
        let start_byte = start % PAGE_SIZE;
        let source = Source::File {
            file,
            offset: start - start_byte,
        };
        Ok((
            Self::new(process, source, start_byte, length, writable)?,
            start_byte,
        ))
    }

    fn new(
        process: &Arc<Process>,
        source: Source,
        start_byte: u64,
        length: u64,
        writable: bool,
    ) -> Result<Arc<Pages>> {
        if length == 0 || length > u64::MAX - PAGE_SIZE {
            return Err(Error::Invalid("length"));
        }
        inject::point("pages alloc")?;
        let npages = (start_byte + length).div_ceil(PAGE_SIZE);
        let inner = PagesInner {
            process: process.clone(),
            account_mode: process.default_account_mode(),
            pinned: None,
            npinned: 0,
        };
        Ok(Arc::new(Pages {
            source,
            npages,
            writable,
            inner: Mutex::new(inner),
        }))
    }

    fn lock(&self) -> MutexGuard<'_, PagesInner> {
        self.inner.lock().expect("pages lock poisoned")
    }

    /// Number of CPU pages.
    pub fn npages(&self) -> u64 {
        self.npages
    }

    /// Whether the pages may be mapped writable.
    pub fn writable(&self) -> bool {
        self.writable
    }

    /// Where the pages come from.
    pub fn source(&self) -> &Source {
        &self.source
    }

    /// The address (user VA or file offset) of index 0: the kernel guesses IOVA
    /// alignment from it.
    pub fn base_addr(&self) -> u64 {
        match self.source {
            Source::User { va } => va,
            Source::File { offset, .. } => offset,
        }
    }

    /// Whether the pages come from a file.
    pub fn is_file(&self) -> bool {
        matches!(self.source, Source::File { .. })
    }

    /// How pins are charged.
    pub fn account_mode(&self) -> AccountMode {
        self.lock().account_mode
    }

    /// Switches user accounting to per-process accounting (the context's
    /// RLIMIT_MODE is 1). Only before anything is pinned.
    pub fn set_account_mm(&self) {
        let mut inner = self.lock();
        if inner.account_mode == AccountMode::User && inner.npinned == 0 {
            inner.account_mode = AccountMode::Mm;
        }
    }

    /// The process pins are charged to.
    pub fn process(&self) -> Arc<Process> {
        self.lock().process.clone()
    }

    /// Number of pinned pages.
    pub fn npinned(&self) -> u64 {
        self.lock().npinned
    }

    /// Holders of index `index`.
    pub fn holders_at(&self, index: u64) -> u32 {
        self.lock().pinned().holders.get(index)
    }

    /// Every run of held indexes with its holder count.
    pub fn holder_runs(&self) -> Vec<(IovaRange, u32)> {
        self.lock().pinned().holders.iter(IovaRange::ALL).collect()
    }

    fn resolve(&self, process: &Process, range: IovaRange, out: &mut Vec<FrameRun>) -> Result<()> {
        let n = range.last - range.start + 1;
        match &self.source {
            Source::User { va } => {
                process
                    .space
                    .resolve(va + (range.start << PAGE_SHIFT), n, self.writable, out)
            }
            Source::File { file, offset } => {
                file.resolve(offset + (range.start << PAGE_SHIFT), n, self.writable, out)
            }
        }
    }

    fn pin_table<'a>(&'a self, process: &'a Process) -> &'a crate::mem::PinTable {
        match &self.source {
            Source::User { .. } => process.space.pins(),
            Source::File { file, .. } => file.pins(),
        }
    }

    /// Adds one holder over the indexes `range`, pinning what was not pinned.
    /// On failure nothing changes.
    pub fn hold(&self, range: IovaRange) -> Result<()> {
        debug_assert!(range.last < self.npages);
        let mut guard = self.lock();
        let inner = &mut *guard;
        let mut runs_by_hole = Vec::new();
        let mut total = 0;
        for hole in inner.pinned().frames.holes(range) {
            let mut runs = Vec::new();
            self.resolve(&inner.process, hole, &mut runs)?;
            total += hole.last - hole.start + 1;
            runs_by_hole.push((hole, runs));
        }
        inject::point("pages pin")?;
        inner.process.charge(inner.account_mode, total)?;
        let pinned = inner.pinned.get_or_insert_with(Box::default);
        let went_up = pinned.holders.add(range);
        debug_assert_eq!(
            went_up,
            runs_by_hole.iter().map(|(h, _)| *h).collect::<Vec<_>>()
        );
        let pins = self.pin_table(&inner.process);
        for (hole, runs) in runs_by_hole {
            pins.pin(&runs);
            let mut index = hole.start;
            for run in runs {
                pinned
                    .frames
                    .insert(IovaRange::new(index, index + run.npages - 1), run);
                index += run.npages;
            }
        }
        inner.npinned += total;
        Ok(())
    }

    /// Drops one holder over the indexes `range`, unpinning what nobody holds now.
    pub fn release(&self, range: IovaRange) {
        let mut guard = self.lock();
        let inner = &mut *guard;
        let Some(pinned) = inner.pinned.as_mut() else {
            debug_assert!(false, "release of pages that hold nothing");
            return;
        };
        let freed = pinned.holders.sub(range);
        let mut total = 0;
        let pins = self.pin_table(&inner.process);
        for hole in freed {
            let runs = take_frames(&mut pinned.frames, hole);
            pins.unpin(&runs);
            total += hole.last - hole.start + 1;
        }
        if pinned.holders.is_empty() {
            inner.pinned = None;
        }
        inner.npinned -= total;
        let mode = inner.account_mode;
        inner.process.uncharge(mode, total);
    }

    /// Frames of the held indexes `range`, in order.
    pub fn frames(&self, range: IovaRange) -> Vec<FrameRun> {
        clip_frames(&self.lock().pinned().frames, range)
    }

    /// Copies bytes at `offset` of the pages into or out of `buf`: through pinned
    /// frames where pinned, otherwise through the source (the program's memory or
    /// the file), as the kernel's access path does.
    pub fn rw(&self, offset: u64, buf: &mut [u8], write: bool) -> Result<()> {
        let inner = self.lock();
        let mut done = 0usize;
        while done < buf.len() {
            let at = offset + done as u64;
            let index = at >> PAGE_SHIFT;
            let in_page = (at % PAGE_SIZE) as usize;
            let n = (PAGE_SIZE as usize - in_page).min(buf.len() - done);
            let chunk = &mut buf[done..done + n];
            let run = match inner.pinned().frames.find(index) {
                Some((r, run)) => {
                    let skip = (index - r.start) << PAGE_SHIFT;
                    FrameRun {
                        phys: run.phys + skip,
                        host: run.host + skip as usize,
                        npages: 1,
                    }
                }
                None => match &self.source {
                    Source::User { va } => {
                        let addr = va + at;
                        if write {
                            inner.process.space.write(addr, chunk)?;
                        } else {
                            inner.process.space.read(addr, chunk)?;
                        }
                        done += n;
                        continue;
                    }
                    Source::File { .. } => {
                        let mut runs = Vec::new();
                        self.resolve(&inner.process, IovaRange::new(index, index), &mut runs)?;
                        runs[0]
                    }
                },
            };
            let host = match &self.source {
                Source::User { .. } => inner.process.space.host_at(run.phys, run.host),
                Source::File { file, .. } => file.host_at(run.phys, run.host),
            };
            copy_frame(host + in_page, chunk, write)?;
            done += n;
        }
        Ok(())
    }

    /// Moves the charge for the pinned pages to `to` (`IOMMU_IOAS_CHANGE_PROCESS`).
    /// The caller has already charged `to`; this drops the old charge.
    pub fn change_process(&self, to: &Arc<Process>) {
        let mut inner = self.lock();
        let (npinned, mode) = (inner.npinned, inner.account_mode);
        inner.process.uncharge(mode, npinned);
        inner.process = to.clone();
    }
}

impl PagesInner {
    fn pinned(&self) -> &Pinned {
        self.pinned.as_deref().unwrap_or(&NOTHING_PINNED)
    }
}

impl Drop for Pages {
    fn drop(&mut self) {
        let inner = self.inner.get_mut().map(|i| i.npinned);
        debug_assert!(
            matches!(inner, Ok(0) | Err(_)),
            "pages dropped while pinned"
        );
    }
}

/// Copies one piece between a pinned frame and `buf`. Fails (EFAULT) only under a
/// front end that catches faults (`mem::host`), where the program has pulled the
/// memory out from under the pin; without one that would be a crash.
fn copy_frame(host: usize, buf: &mut [u8], write: bool) -> Result<()> {
    #[allow(unsafe_code)]
    // SAFETY: `host` points into a frame that is pinned (or was just resolved from
    // a file mapping that lives as long as the file), and the piece does not cross
    // the end of its page.
    unsafe {
        if write {
            host::copy_in(host, buf)
        } else {
            host::copy_out(host, buf)
        }
    }
}

/// The frame runs of `frames` inside `range`, clipped to it.
fn clip_frames(frames: &RangeMap<FrameRun>, range: IovaRange) -> Vec<FrameRun> {
    let mut out = Vec::new();
    for (r, run) in frames.overlapping(range) {
        let mut run = *run;
        if r.start < range.start {
            run = run.split(range.start - r.start).1;
        }
        let covered = r.intersect(&range).expect("overlapping range");
        if covered.last < r.last {
            run = run.split(covered.last - covered.start + 1).0;
        }
        out.push(run);
    }
    out
}

/// Removes the frames of `range` from `frames`, splitting runs at its ends.
fn take_frames(frames: &mut RangeMap<FrameRun>, range: IovaRange) -> Vec<FrameRun> {
    let taken = clip_frames(frames, range);
    for start in frames.overlapping_starts(range) {
        let Some((r, run)) = frames.remove(start) else {
            continue;
        };
        if r.start < range.start {
            let (head, _) = run.split(range.start - r.start);
            frames.insert(IovaRange::new(r.start, range.start - 1), head);
        }
        if r.last > range.last {
            let (_, tail) = run.split(range.last + 1 - r.start);
            frames.insert(IovaRange::new(range.last + 1, r.last), tail);
        }
    }
    taken
}
