//! IO page-table formats and the one walker that drives them all.
//!
//! The kernel's `generic_pt` splits a page table into a handful of per-format
//! primitives (how many levels, how an index is cut out of an IOVA, which levels
//! may hold leaves, how a table pointer and a leaf are encoded) and one set of
//! algorithms written against them. This module is the same split: a format is a
//! [`PtFormat`] (Intel VT-d second and first stage in [`vtd`], a toy in [`mock`]),
//! and [`PageTable`] is the walker: map, unmap, translate, dirty tracking. A format
//! never walks; the walker never looks at a bit.
//!
//! Levels are numbered as `generic_pt` numbers them: level 0 is the table whose
//! entries cover the smallest page, the top level is `levels() - 1`. (The VT-d
//! specification counts from 1: its level-*n* table is our level *n - 1*.) Every
//! table is 4 KiB, 512 entries of 8 bytes; a format may use fewer index bits at the
//! top level. IOVAs are bytes, sizes are logs (`_lg2`) where they are powers of two.
//!
//! Table memory is behind [`TableMem`]: read and write one `u64` entry at (table
//! physical address, index), allocate and free a zeroed table. [`TableArena`] is the
//! owned implementation a domain uses. Its tables live at fake physical addresses
//! from [`TABLE_PHYS_BASE`] up, inside the 52-bit address field of every format
//! here, in a range that machine memory never hands out; a table's address is
//! stable for the arena's life. Stage-1 tables of a nested domain live in the user's
//! memory instead, and are only ever read: [`walk_foreign`] walks such a tree
//! through a caller's closure (which translates each table address through stage 2
//! first), and is the same function the owned walk uses.
//!
//! Invariants of an owned table tree:
//! - an entry that is not present is 0, so "empty" is "all zero" and a freed table
//!   is already clean for its next user;
//! - apart from the root, no linked table is empty: unmap frees a table as soon as
//!   the last entry in it goes, and a failed map removes the tables it created;
//! - table-pointer entries grant read and write; permissions live in leaves.
//!
//! Cost: a map descends from the root once per leaf table, not per page, and fills
//! a table it has just created without collision checks; unmap clears a leaf table
//! in one branch-free pass and frees it without a scan when the range covers it.
//! Freed tables are reused lowest address first, so a big map walks memory
//! forwards. 16 GiB of 4 KiB pages map and unmap in about 2.5 times the time of a
//! loop that writes one `u64` per page.
//!
//! Locks: map, unmap and dirty read/clear of one table serialize on
//! [`PageTable`]'s writer mutex. Translation ([`PageTable::walk`],
//! [`PageTable::iova_to_phys`]) and the DMA-side [`PageTable::mark_accessed`] take
//! no lock at all: entries are atomics, table pointers are published with release
//! after the table is zero, and [`TableArena`] resolves an address through a fixed
//! directory of `OnceLock`ed chunks. A reader that races an unmap may follow a
//! pointer to a table that was freed and reused: that is what hardware with a stale
//! walk does (the IOTLB flush after unmap is the caller's), and here it is memory
//! safe because arena memory is never returned before the arena itself is dropped.
//! A/D updates from DMA are compare-exchanges against the entry the walk read, so a
//! stale walk can never turn a cleared entry into a non-zero one.
//!
//! Semantics that follow the kernel's IOMMU drivers:
//! - map picks, per step, the largest leaf the alignment of both `iova` and `phys`
//!   and the remaining length allow; mapping over any present entry fails with
//!   [`Error::Exists`] and removes everything the call had added;
//! - unmap removes every leaf that intersects the range, a huge leaf only partly
//!   covered included, and counts its whole size (as VT-d and the other drivers
//!   do for the core's `iommu_unmap`). Holes are skipped: the kernel's core stops
//!   at the first one, but iommufd only ever unmaps what it mapped, so no caller
//!   sees the difference, and "never fails" stays simple;
//! - dirty read reports each dirty leaf as its whole range, huge leaves included,
//!   coalescing neighbours into one report.
//!
//! A VT-d second-stage domain's table, and what a DMA does with it:
//!
//! ```
//! use softiommu::iommu::pt::{vtd::VtdSl, PageTable, TableArena};
//! use softiommu::iommu::{IOMMU_READ, IOMMU_WRITE};
//!
//! let pt = PageTable::new(VtdSl::new(4)?, TableArena::new())?;
//! // The context entry's SLPTPTR would hold pt.root().
//! pt.map(0x20_0000, 0x8000_0000, 0x40_0000, IOMMU_READ | IOMMU_WRITE)?;
//! let t = pt.walk(0x20_1234);
//! let leaf = t.leaf.expect("mapped");
//! assert_eq!((leaf.phys, leaf.size_lg2), (0x8000_1234, 21));
//! pt.mark_accessed(&t, true); // the write sets A and D
//! let mut dirty = Vec::new();
//! pt.read_and_clear_dirty(0, 1 << 30, false, &mut |iova, len| dirty.push((iova, len)));
//! assert_eq!(dirty, [(0x20_0000, 0x20_0000)]);
//! assert_eq!(pt.unmap(0x20_0000, 0x40_0000), 0x40_0000);
//! # Ok::<(), softiommu::error::Error>(())
//! ```

pub mod mock;
pub mod vtd;

use crate::error::{Error, Result};
use crate::inject;
use crate::iommu::{IOMMU_READ, IOMMU_WRITE};
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::convert::Infallible;
use std::fmt::Debug;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock, PoisonError};

/// Entries in every table.
pub const TABLE_ENTRIES: usize = 512;
/// Log2 of a table's size in bytes.
pub const TABLE_SIZE_LG2: u32 = 12;
/// The most levels a format may have.
pub const MAX_LEVELS: usize = 6;
/// First fake physical address of [`TableArena`] tables: the top 1/16 of the
/// 52-bit physical space (`0xF_0000_0000_0000` up), which every format here can
/// encode and which machine memory never hands out.
pub const TABLE_PHYS_BASE: u64 = 0x000F_0000_0000_0000;

/// The per-format primitives of a page table. Levels count from 0 at the
/// smallest page. All methods are cheap and inlined into the walker.
pub trait PtFormat: Copy + Send + Sync + Debug + 'static {
    /// Number of table levels.
    fn levels(&self) -> u32;
    /// Log2 of the bytes one entry at `level` covers.
    fn item_lg2(&self, level: u32) -> u32;
    /// Index bits a table at `level` uses (at most 9).
    fn index_bits(&self, _level: u32) -> u32 {
        9
    }
    /// Log2 of the IOVA space the table translates: IOVAs are below `1 << max_va_lg2`.
    fn max_va_lg2(&self) -> u32 {
        let top = self.levels() - 1;
        self.item_lg2(top) + self.index_bits(top)
    }
    /// Log2 of the physical space a leaf or table pointer can encode.
    fn max_phys_lg2(&self) -> u32;
    /// Whether an entry at `level` may be a leaf.
    fn leaf_ok(&self, level: u32) -> bool;
    /// Whether `entry` is present.
    fn present(&self, entry: u64) -> bool;
    /// Whether the present `entry` at `level` is a leaf (always at level 0).
    fn is_leaf(&self, entry: u64, level: u32) -> bool;
    /// The entry pointing at the table at `table_phys`.
    fn make_table(&self, table_phys: u64) -> u64;
    /// The table a table-pointer entry points at.
    fn table_phys(&self, entry: u64) -> u64;
    /// `IOMMU_READ`/`IOMMU_WRITE` a table-pointer entry allows below it.
    fn table_prot(&self, entry: u64) -> u32;
    /// The leaf at `level` mapping `phys` with `IOMMU_*` permissions `prot`.
    fn make_leaf(&self, phys: u64, level: u32, prot: u32) -> u64;
    /// The physical address a leaf at `level` maps (its first byte).
    fn leaf_phys(&self, entry: u64, level: u32) -> u64;
    /// The `IOMMU_*` permissions of a leaf.
    fn leaf_prot(&self, entry: u64) -> u32;
    /// The access bit(s) DMA sets in a leaf, 0 if the format has none.
    fn accessed_mask(&self) -> u64;
    /// The dirty bit(s) a DMA write sets in a leaf, 0 if the format has none.
    fn dirty_mask(&self) -> u64;

    /// Whether a leaf is dirty.
    fn dirty(&self, entry: u64) -> bool {
        entry & self.dirty_mask() != 0
    }
    /// Whether a leaf was accessed.
    fn accessed(&self, entry: u64) -> bool {
        entry & self.accessed_mask() != 0
    }
    /// The page sizes the format can map, as a bitmap of sizes.
    fn pgsize_bitmap(&self) -> u64 {
        (0..self.levels())
            .filter(|&l| self.leaf_ok(l))
            .fold(0, |m, l| m | 1 << self.item_lg2(l))
    }
}

/// Memory that holds 4 KiB tables of 512 `u64` entries, addressed by physical
/// address. Reads and writes of an address that is no table read 0 and do nothing.
pub trait TableMem: Send + Sync {
    /// A new, all-zero table.
    fn alloc(&self) -> Result<u64>;
    /// Gives back a table that is all zero.
    fn free(&self, table: u64);
    /// Entry `index` of `table` (acquire).
    fn read(&self, table: u64, index: usize) -> u64;
    /// Stores entry `index` of `table` (release).
    fn write(&self, table: u64, index: usize, entry: u64);
    /// Replaces entry `index` with `new` if it still is `current`.
    fn compare_exchange(&self, table: u64, index: usize, current: u64, new: u64) -> bool;
    /// Atomically ANDs `mask` into entry `index`; returns the old entry.
    fn fetch_and(&self, table: u64, index: usize, mask: u64) -> u64;

    /// Writes `entry(i)` into slot `first + i` for `i < count`, stopping at the
    /// first slot that is not zero; returns how many were written.
    fn fill(
        &self,
        table: u64,
        first: usize,
        count: usize,
        mut entry: impl FnMut(usize) -> u64,
    ) -> usize
    where
        Self: Sized,
    {
        for i in 0..count {
            if self.read(table, first + i) != 0 {
                return i;
            }
            self.write(table, first + i, entry(i));
        }
        count
    }
    /// Writes `entry(i)` into slot `first + i` for `i < count` of a table the
    /// caller knows to be all zero (it just allocated it).
    fn fill_fresh(
        &self,
        table: u64,
        first: usize,
        count: usize,
        mut entry: impl FnMut(usize) -> u64,
    ) where
        Self: Sized,
    {
        for i in 0..count {
            self.write(table, first + i, entry(i));
        }
    }
    /// Zeroes slots `first..first + count`; returns how many were not zero.
    fn clear(&self, table: u64, first: usize, count: usize) -> usize {
        let mut n = 0;
        for i in first..first + count {
            if self.read(table, i) != 0 {
                self.write(table, i, 0);
                n += 1;
            }
        }
        n
    }
    /// Whether every entry of `table` is zero.
    fn is_empty(&self, table: u64) -> bool {
        (0..TABLE_ENTRIES).all(|i| self.read(table, i) == 0)
    }
}

type Table = [AtomicU64; TABLE_ENTRIES];

fn empty_table() -> Table {
    [const { AtomicU64::new(0) }; TABLE_ENTRIES]
}

/// Log2 of the tables in chunk 0; chunk `c` holds `1 << (c + CHUNK0_LG2)`.
const CHUNK0_LG2: u32 = 3;
/// Chunks in the directory: room for about `1 << 32` tables (16 TiB).
const CHUNKS: usize = 29;

/// Owned table memory: tables at stable fake physical addresses from
/// [`TABLE_PHYS_BASE`], in chunks that double in size and are never moved or
/// returned before the arena drops. Table `n` is in chunk `c = log2(n + 8) - 3`.
///
/// Lookups are lock free (a fixed directory of `OnceLock`s). `alloc`/`free` take
/// `alloc`, held only to pop or push a free-list entry or to create a chunk; only
/// mappers ever wait on it.
#[derive(Debug)]
pub struct TableArena {
    chunks: [OnceLock<Box<[Table]>>; CHUNKS],
    /// Guards the allocator's bookkeeping: next fresh index, free list, counts.
    alloc: Mutex<ArenaAlloc>,
}

#[derive(Debug)]
struct ArenaAlloc {
    next: u64,
    /// Freed tables, lowest address first: reuse stays dense and in address
    /// order, which a big map then walks forwards.
    free: BinaryHeap<Reverse<u64>>,
    in_use: usize,
    limit: u64,
}

impl Default for TableArena {
    fn default() -> Self {
        Self::new()
    }
}

impl TableArena {
    /// An empty arena.
    pub fn new() -> Self {
        Self::with_limit(u64::MAX)
    }

    /// An arena that gives out at most `max_tables` tables at a time.
    pub fn with_limit(max_tables: u64) -> Self {
        TableArena {
            chunks: std::array::from_fn(|_| OnceLock::new()),
            alloc: Mutex::new(ArenaAlloc {
                next: 0,
                free: BinaryHeap::new(),
                in_use: 0,
                limit: max_tables,
            }),
        }
    }

    /// Tables allocated and not freed.
    pub fn tables_in_use(&self) -> usize {
        self.alloc
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .in_use
    }

    fn locate(n: u64) -> (usize, usize) {
        let k = n + (1 << CHUNK0_LG2);
        let top = 63 - k.leading_zeros();
        ((top - CHUNK0_LG2) as usize, (k - (1 << top)) as usize)
    }

    /// The table at `phys`, if it is one of ours.
    #[inline]
    fn table(&self, phys: u64) -> Option<&Table> {
        let off = phys.checked_sub(TABLE_PHYS_BASE)?;
        if off & ((1 << TABLE_SIZE_LG2) - 1) != 0 {
            return None;
        }
        let (chunk, at) = Self::locate(off >> TABLE_SIZE_LG2);
        self.chunks.get(chunk)?.get()?.get(at)
    }
}

impl TableMem for TableArena {
    fn alloc(&self) -> Result<u64> {
        inject::point("pt.table_alloc")?;
        let mut a = self.alloc.lock().unwrap_or_else(PoisonError::into_inner);
        if a.in_use as u64 >= a.limit {
            return Err(Error::NoMem("page-table memory limit"));
        }
        let phys = match a.free.pop() {
            Some(Reverse(phys)) => phys,
            None => {
                let n = a.next;
                let (chunk, _) = Self::locate(n);
                let slot = self
                    .chunks
                    .get(chunk)
                    .ok_or(Error::NoMem("page-table arena full"))?;
                slot.get_or_init(|| {
                    (0..1usize << (chunk as u32 + CHUNK0_LG2))
                        .map(|_| empty_table())
                        .collect()
                });
                a.next = n + 1;
                TABLE_PHYS_BASE + (n << TABLE_SIZE_LG2)
            }
        };
        a.in_use += 1;
        Ok(phys)
    }

    fn free(&self, table: u64) {
        if self.table(table).is_none() {
            return;
        }
        let mut a = self.alloc.lock().unwrap_or_else(PoisonError::into_inner);
        a.free.push(Reverse(table));
        a.in_use -= 1;
    }

    #[inline]
    fn read(&self, table: u64, index: usize) -> u64 {
        self.table(table)
            .and_then(|t| t.get(index))
            .map_or(0, |e| e.load(Ordering::Acquire))
    }

    #[inline]
    fn write(&self, table: u64, index: usize, entry: u64) {
        if let Some(e) = self.table(table).and_then(|t| t.get(index)) {
            e.store(entry, Ordering::Release);
        }
    }

    fn compare_exchange(&self, table: u64, index: usize, current: u64, new: u64) -> bool {
        self.table(table)
            .and_then(|t| t.get(index))
            .is_some_and(|e| {
                e.compare_exchange(current, new, Ordering::AcqRel, Ordering::Acquire)
                    .is_ok()
            })
    }

    fn fetch_and(&self, table: u64, index: usize, mask: u64) -> u64 {
        self.table(table)
            .and_then(|t| t.get(index))
            .map_or(0, |e| e.fetch_and(mask, Ordering::AcqRel))
    }

    // Leaves need no release: nothing is reached through them, and the table
    // they sit in was published (release) before.
    fn fill(
        &self,
        table: u64,
        first: usize,
        count: usize,
        mut entry: impl FnMut(usize) -> u64,
    ) -> usize {
        let Some(slots) = self.table(table).and_then(|t| t.get(first..first + count)) else {
            return 0;
        };
        for (i, slot) in slots.iter().enumerate() {
            if slot.load(Ordering::Relaxed) != 0 {
                return i;
            }
            slot.store(entry(i), Ordering::Relaxed);
        }
        count
    }

    fn fill_fresh(
        &self,
        table: u64,
        first: usize,
        count: usize,
        mut entry: impl FnMut(usize) -> u64,
    ) {
        if let Some(slots) = self.table(table).and_then(|t| t.get(first..first + count)) {
            for (i, slot) in slots.iter().enumerate() {
                slot.store(entry(i), Ordering::Relaxed);
            }
        }
    }

    // Branch free: storing 0 over 0 is harmless, and a DMA's compare-exchange
    // against the old leaf fails once the store lands.
    fn clear(&self, table: u64, first: usize, count: usize) -> usize {
        let Some(slots) = self.table(table).and_then(|t| t.get(first..first + count)) else {
            return 0;
        };
        let mut n = 0;
        for slot in slots {
            n += usize::from(slot.load(Ordering::Relaxed) != 0);
            slot.store(0, Ordering::Relaxed);
        }
        n
    }

    fn is_empty(&self, table: u64) -> bool {
        self.table(table)
            .is_none_or(|t| t.iter().all(|e| e.load(Ordering::Acquire) == 0))
    }
}

/// One entry read by a walk.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Step {
    /// Level of the table the entry is in.
    pub level: u32,
    /// Physical address of that table.
    pub table: u64,
    /// Index of the entry in it.
    pub index: usize,
    /// The entry.
    pub entry: u64,
}

/// The leaf a walk ended on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Leaf {
    /// The leaf entry.
    pub entry: u64,
    /// Its level.
    pub level: u32,
    /// Log2 of the bytes it maps.
    pub size_lg2: u32,
    /// The physical address the walked IOVA translates to.
    pub phys: u64,
    /// Effective `IOMMU_*` permissions: the leaf's, with read and write also
    /// required of every table entry above it.
    pub prot: u32,
}

/// What a walk of one IOVA read: every entry visited, top level first, and the
/// leaf if it found one (then the last step is the leaf's own slot).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Translation {
    /// The IOVA walked.
    pub iova: u64,
    steps: [Step; MAX_LEVELS],
    depth: usize,
    /// The leaf, `None` if the walk met a non-present entry, an IOVA outside the
    /// table, or a leaf at a level that may not hold one.
    pub leaf: Option<Leaf>,
}

impl Translation {
    /// The entries read, top level first.
    pub fn steps(&self) -> &[Step] {
        &self.steps[..self.depth]
    }
}

fn va_last<F: PtFormat>(fmt: &F) -> u64 {
    u64::MAX >> (64 - fmt.max_va_lg2())
}

#[inline]
fn index_of<F: PtFormat>(fmt: &F, iova: u64, level: u32) -> usize {
    ((iova >> fmt.item_lg2(level)) & ((1 << fmt.index_bits(level)) - 1)) as usize
}

/// Walks the table tree at `root` for `iova`, reading each entry through
/// `read(table_phys, index)`. Nothing is written. This is the only walk: owned
/// tables use it with a reader of their [`TableMem`], and a nested stage 1 uses it
/// with a reader that translates `table_phys` through stage 2 and reads the
/// user's memory; the first error of `read` ends the walk.
pub fn walk_foreign<F: PtFormat, E>(
    fmt: &F,
    root: u64,
    iova: u64,
    mut read: impl FnMut(u64, usize) -> Result<u64, E>,
) -> Result<Translation, E> {
    let mut t = Translation {
        iova,
        steps: [Step::default(); MAX_LEVELS],
        depth: 0,
        leaf: None,
    };
    if iova > va_last(fmt) {
        return Ok(t);
    }
    let mut allow = IOMMU_READ | IOMMU_WRITE;
    let mut table = root;
    for level in (0..fmt.levels().min(MAX_LEVELS as u32)).rev() {
        let index = index_of(fmt, iova, level);
        let entry = read(table, index)?;
        t.steps[t.depth] = Step {
            level,
            table,
            index,
            entry,
        };
        t.depth += 1;
        if !fmt.present(entry) {
            break;
        }
        if level == 0 || fmt.is_leaf(entry, level) {
            if fmt.leaf_ok(level) {
                let size_lg2 = fmt.item_lg2(level);
                let offset = iova & ((1 << size_lg2) - 1);
                t.leaf = Some(Leaf {
                    entry,
                    level,
                    size_lg2,
                    phys: fmt.leaf_phys(entry, level) | offset,
                    prot: fmt.leaf_prot(entry) & (allow | !(IOMMU_READ | IOMMU_WRITE)),
                });
            }
            break;
        }
        allow &= fmt.table_prot(entry);
        table = fmt.table_phys(entry);
    }
    Ok(t)
}

/// Tables one map step created, to be removed again if the step fails.
type Created = ([(u64, usize, u64); MAX_LEVELS], usize);

/// An IO page table of format `F` whose tables live in `M`.
///
/// Dropping it gives nothing back to `M`: a [`TableArena`] goes with it.
#[derive(Debug)]
pub struct PageTable<F: PtFormat, M: TableMem = TableArena> {
    fmt: F,
    mem: M,
    root: u64,
    /// Serializes map, unmap and dirty read/clear; guards the tree's shape.
    /// Readers never take it.
    writer: Mutex<()>,
}

impl<F: PtFormat, M: TableMem> PageTable<F, M> {
    /// An empty table of format `fmt` in `mem`; allocates the root.
    pub fn new(fmt: F, mem: M) -> Result<Self> {
        let levels = fmt.levels();
        if levels == 0
            || levels as usize > MAX_LEVELS
            || !fmt.leaf_ok(0)
            || !(1..=63).contains(&fmt.max_va_lg2())
            || (0..levels).any(|l| !(1..=9).contains(&fmt.index_bits(l)))
        {
            return Err(Error::Invalid("page-table format"));
        }
        let root = mem.alloc()?;
        Ok(PageTable {
            fmt,
            mem,
            root,
            writer: Mutex::new(()),
        })
    }

    /// Physical address of the top-level table (what a context or PASID entry
    /// points at).
    pub fn root(&self) -> u64 {
        self.root
    }

    /// The format.
    pub fn format(&self) -> &F {
        &self.fmt
    }

    /// The table memory.
    pub fn mem(&self) -> &M {
        &self.mem
    }

    /// The last IOVA the table can translate.
    pub fn va_last(&self) -> u64 {
        va_last(&self.fmt)
    }

    /// Maps `len` bytes at `iova` to the physically contiguous `phys` with
    /// `IOMMU_*` permissions `prot`, using the largest leaves alignment allows.
    /// Fails with [`Error::Exists`] if anything in the range is mapped; on any
    /// failure nothing new stays mapped.
    pub fn map(&self, iova: u64, phys: u64, len: u64, prot: u32) -> Result<()> {
        let granule = 1u64 << self.fmt.item_lg2(0);
        if len == 0 {
            return Err(Error::Invalid("zero length"));
        }
        if (iova | phys | len) & (granule - 1) != 0 {
            return Err(Error::Invalid("map not aligned to the smallest page"));
        }
        if prot & (IOMMU_READ | IOMMU_WRITE) == 0 {
            return Err(Error::Invalid("map allows neither read nor write"));
        }
        let last = iova
            .checked_add(len - 1)
            .ok_or(Error::Overflow("iova + length"))?;
        let phys_last = phys
            .checked_add(len - 1)
            .ok_or(Error::Overflow("phys + length"))?;
        if last > self.va_last() {
            return Err(Error::Invalid("iova beyond the table's address width"));
        }
        if phys_last >> self.fmt.max_phys_lg2() != 0 {
            return Err(Error::Invalid("phys beyond the format's address width"));
        }
        let _writer = self.writer.lock().unwrap_or_else(PoisonError::into_inner);
        let mut done = 0;
        let mut created: Created = ([(0, 0, 0); MAX_LEVELS], 0);
        while done < len {
            if let Err(e) = self.map_step(
                iova + done,
                phys + done,
                len - done,
                prot,
                &mut done,
                &mut created,
            ) {
                if done > 0 {
                    self.unmap_range(self.root, self.fmt.levels() - 1, iova, iova + (done - 1));
                }
                self.remove_created(&created);
                return Err(e);
            }
        }
        Ok(())
    }

    /// Descends once from the root and fills one run of leaves in one table.
    fn map_step(
        &self,
        iova: u64,
        phys: u64,
        left: u64,
        prot: u32,
        done: &mut u64,
        created: &mut Created,
    ) -> Result<()> {
        created.1 = 0;
        let mut table = self.root;
        let mut level = self.fmt.levels() - 1;
        loop {
            let lg2 = self.fmt.item_lg2(level);
            let index = index_of(&self.fmt, iova, level);
            if self.fmt.leaf_ok(level) && (iova | phys) & ((1 << lg2) - 1) == 0 && left >> lg2 != 0
            {
                let room = (1usize << self.fmt.index_bits(level)) - index;
                let count = room.min(usize::try_from(left >> lg2).unwrap_or(usize::MAX));
                let fmt = &self.fmt;
                let leaf = |i: usize| fmt.make_leaf(phys + ((i as u64) << lg2), level, prot);
                // A table this step created is all zero: nothing to collide with.
                if created.1 > 0 && created.0[created.1 - 1].2 == table {
                    self.mem.fill_fresh(table, index, count, leaf);
                    *done += (count as u64) << lg2;
                    return Ok(());
                }
                let wrote = self.mem.fill(table, index, count, leaf);
                *done += (wrote as u64) << lg2;
                return if wrote == count {
                    Ok(())
                } else {
                    Err(Error::Exists)
                };
            }
            if level == 0 {
                return Err(Error::Invalid("format has no leaf at level 0"));
            }
            let entry = self.mem.read(table, index);
            let next = if !self.fmt.present(entry) {
                let child = self.mem.alloc()?;
                self.mem.write(table, index, self.fmt.make_table(child));
                created.0[created.1] = (table, index, child);
                created.1 += 1;
                child
            } else if self.fmt.is_leaf(entry, level) {
                return Err(Error::Exists);
            } else {
                self.fmt.table_phys(entry)
            };
            table = next;
            level -= 1;
        }
    }

    /// Unlinks and frees the tables a failed step created and left empty.
    fn remove_created(&self, created: &Created) {
        for &(parent, index, child) in created.0[..created.1].iter().rev() {
            if self.mem.read(parent, index) == self.fmt.make_table(child)
                && self.mem.is_empty(child)
            {
                self.mem.write(parent, index, 0);
                self.mem.free(child);
            }
        }
    }

    /// Unmaps every leaf that intersects `[iova, iova + len)`, a huge leaf only
    /// partly inside the range included, and frees the tables that become empty.
    /// Returns the bytes of all leaves removed, which can exceed `len` when a huge
    /// leaf sticks out. Never fails; a zero length unmaps nothing.
    pub fn unmap(&self, iova: u64, len: u64) -> u64 {
        if len == 0 || iova > self.va_last() {
            return 0;
        }
        let last = iova.saturating_add(len - 1).min(self.va_last());
        let _writer = self.writer.lock().unwrap_or_else(PoisonError::into_inner);
        self.unmap_range(self.root, self.fmt.levels() - 1, iova, last)
    }

    /// Unmaps within `table` at `level`; `[start, last]` lies inside the table's span.
    fn unmap_range(&self, table: u64, level: u32, start: u64, last: u64) -> u64 {
        let lg2 = self.fmt.item_lg2(level);
        let first = index_of(&self.fmt, start, level);
        let end = index_of(&self.fmt, last, level);
        if level == 0 {
            return (self.mem.clear(table, first, end - first + 1) as u64) << lg2;
        }
        let mut bytes = 0;
        let mut item = start >> lg2 << lg2;
        for index in first..=end {
            let item_last = item + ((1 << lg2) - 1);
            let entry = self.mem.read(table, index);
            if self.fmt.present(entry) {
                if self.fmt.is_leaf(entry, level) {
                    self.mem.write(table, index, 0);
                    bytes += 1 << lg2;
                } else {
                    let (s, l) = (start.max(item), last.min(item_last));
                    let child = self.fmt.table_phys(entry);
                    bytes += self.unmap_range(child, level - 1, s, l);
                    if (s == item && l == item_last) || self.mem.is_empty(child) {
                        self.mem.write(table, index, 0);
                        self.mem.free(child);
                    }
                }
            }
            item = item_last.wrapping_add(1);
        }
        bytes
    }

    /// Walks `iova`: every entry read and the leaf, if any.
    pub fn walk(&self, iova: u64) -> Translation {
        match walk_foreign(&self.fmt, self.root, iova, |t, i| {
            Ok::<u64, Infallible>(self.mem.read(t, i))
        }) {
            Ok(t) => t,
            Err(never) => match never {},
        }
    }

    /// `(phys, prot, leaf size in bytes)` that `iova` translates to, if mapped.
    pub fn iova_to_phys(&self, iova: u64) -> Option<(u64, u32, u64)> {
        self.walk(iova)
            .leaf
            .map(|l| (l.phys, l.prot, 1 << l.size_lg2))
    }

    /// What hardware does on a DMA through the leaf `t` found: sets its access
    /// bit, and its dirty bit too for a `write`, atomically and only if the entry
    /// is still the one the walk read. Returns whether the leaf now has the bits.
    pub fn mark_accessed(&self, t: &Translation, write: bool) -> bool {
        let (Some(leaf), Some(step)) = (t.leaf, t.steps().last()) else {
            return false;
        };
        let mut bits = self.fmt.accessed_mask();
        if write {
            bits |= self.fmt.dirty_mask();
        }
        let mut current = leaf.entry;
        loop {
            if current & bits == bits {
                return true;
            }
            if self
                .mem
                .compare_exchange(step.table, step.index, current, current | bits)
            {
                return true;
            }
            let now = self.mem.read(step.table, step.index);
            // Another walker may have set some bits; anything else means the leaf changed.
            if now & !bits != leaf.entry & !bits {
                return false;
            }
            current = now;
        }
    }

    /// Calls `report(iova, len)` for the dirty leaves intersecting
    /// `[iova, iova + len)`, each as its whole range, neighbours coalesced; clears
    /// their dirty bits unless `no_clear`.
    pub fn read_and_clear_dirty(
        &self,
        iova: u64,
        len: u64,
        no_clear: bool,
        report: &mut dyn FnMut(u64, u64),
    ) {
        if len == 0 || iova > self.va_last() || self.fmt.dirty_mask() == 0 {
            return;
        }
        let last = iova.saturating_add(len - 1).min(self.va_last());
        let _writer = self.writer.lock().unwrap_or_else(PoisonError::into_inner);
        let mut run = DirtyRun {
            start: 0,
            len: 0,
            report,
        };
        self.dirty_range(
            self.root,
            self.fmt.levels() - 1,
            iova,
            last,
            no_clear,
            &mut run,
        );
        run.flush();
    }

    fn dirty_range(
        &self,
        table: u64,
        level: u32,
        start: u64,
        last: u64,
        no_clear: bool,
        run: &mut DirtyRun<'_>,
    ) {
        let lg2 = self.fmt.item_lg2(level);
        let first = index_of(&self.fmt, start, level);
        let end = index_of(&self.fmt, last, level);
        let mut item = start >> lg2 << lg2;
        for index in first..=end {
            let item_last = item + ((1 << lg2) - 1);
            let entry = self.mem.read(table, index);
            if self.fmt.present(entry) {
                if level == 0 || self.fmt.is_leaf(entry, level) {
                    if self.fmt.dirty(entry) {
                        run.add(item, 1 << lg2);
                        if !no_clear {
                            self.mem.fetch_and(table, index, !self.fmt.dirty_mask());
                        }
                    }
                } else {
                    let (s, l) = (start.max(item), last.min(item_last));
                    self.dirty_range(self.fmt.table_phys(entry), level - 1, s, l, no_clear, run);
                }
            }
            item = item_last.wrapping_add(1);
        }
    }
}

/// Dirty ranges being coalesced before they are reported.
struct DirtyRun<'a> {
    start: u64,
    len: u64,
    report: &'a mut dyn FnMut(u64, u64),
}

impl DirtyRun<'_> {
    fn add(&mut self, iova: u64, len: u64) {
        if self.len != 0 && self.start.wrapping_add(self.len) == iova {
            self.len += len;
            return;
        }
        self.flush();
        self.start = iova;
        self.len = len;
    }

    fn flush(&mut self) {
        if self.len != 0 {
            (self.report)(self.start, self.len);
            self.len = 0;
        }
    }
}

#[cfg(test)]
mod tests;
