//! IO address spaces: the `IOMMU_IOAS_*` operations (the kernel's `ioas.c`).
//!
//! These are the thin handlers: they check the caller's arguments the way the
//! kernel's ioctls do, in the same order so that the same errno comes back, find
//! the objects and call into [`IoPagetable`], which does the work.
//!
//! An [`Ioas`] owns its page table behind one mutex, a list of the accesses that
//! read through it (told about unmaps), and the list of paging HWPTs made from it
//! (searched for a compatible domain when a device attaches to the IOAS).

use super::context::{Iommufd, Object};
use super::device::Access;
use super::hw_pagetable::HwptPaging;
use super::io_pagetable::{IoPagetable, PagesSlice, ReservedOwner};
use super::pages::Pages;
use crate::error::{Error, Result};
use crate::iommu::{IOMMU_CACHE, IOMMU_READ, IOMMU_WRITE};
use crate::mem::{AccountMode, FileSource, Process};
use crate::range::{IovaRange, RangeMap};
use softiommu_uapi::iommufd::{
    IOMMU_IOAS_MAP_READABLE, IOMMU_IOAS_MAP_WRITEABLE, IOMMU_OPTION_HUGE_PAGES,
    IOMMU_OPTION_OP_GET, IOMMU_OPTION_OP_SET, IOMMU_OPTION_RLIMIT_MODE,
};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, Weak};

/// How many times an unmap asks accesses to let go before giving up (EDEADLK).
const UNMAP_TRIES: u32 = 100;

/// An IO address space.
#[derive(Debug)]
pub struct Ioas {
    /// The object ID.
    pub id: u32,
    iopt: Mutex<IoPagetable>,
    /// Accesses attached to this IOAS, told about unmaps.
    accesses: Mutex<Vec<Weak<Access>>>,
    /// Paging HWPTs made from this IOAS. Also serialises device attach to it.
    pub(crate) hwpts: Mutex<Vec<Weak<HwptPaging>>>,
}

/// The usable IOVA ranges of an IOAS and its alignment (`IOMMU_IOAS_IOVA_RANGES`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IovaRanges {
    /// Every usable range, in order.
    pub ranges: Vec<IovaRange>,
    /// The alignment every mapping must keep.
    pub alignment: u64,
}

/// Permissions and placement of a map request (the `IOMMU_IOAS_MAP_*` flags).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MapFlags {
    /// DMA may read.
    pub readable: bool,
    /// DMA may write.
    pub writeable: bool,
}

impl MapFlags {
    /// Read and write.
    pub const RW: MapFlags = MapFlags {
        readable: true,
        writeable: true,
    };
    /// Read only.
    pub const RO: MapFlags = MapFlags {
        readable: true,
        writeable: false,
    };

    /// From `IOMMU_IOAS_MAP_*` flags (the FIXED_IOVA bit is the caller's).
    pub fn from_bits(flags: u32) -> MapFlags {
        MapFlags {
            readable: flags & IOMMU_IOAS_MAP_READABLE != 0,
            writeable: flags & IOMMU_IOAS_MAP_WRITEABLE != 0,
        }
    }

    fn prot(self) -> Result<u32> {
        if !self.readable && !self.writeable {
            return Err(Error::Invalid("neither readable nor writeable"));
        }
        Ok(IOMMU_CACHE
            | if self.readable { IOMMU_READ } else { 0 }
            | if self.writeable { IOMMU_WRITE } else { 0 })
    }
}

/// Rejects what the kernel rejects as EOVERFLOW before looking at anything else:
/// values that do not fit the kernel's `unsigned long` arithmetic.
fn check_ulong(values: &[u64]) -> Result<()> {
    if values.contains(&u64::MAX) {
        return Err(Error::Overflow("value does not fit"));
    }
    Ok(())
}

/// Checks allowed ranges as `IOMMU_IOAS_ALLOW_IOVAS` loads them, in order: each
/// must have `start < last` and not overlap an earlier one (EINVAL).
pub fn allowed_ranges(ranges: &[IovaRange]) -> Result<RangeMap<()>> {
    let mut allowed = RangeMap::new();
    for r in ranges {
        if r.start >= r.last {
            return Err(Error::Invalid("allowed range start >= last"));
        }
        if allowed.first_overlap(*r).is_some() {
            return Err(Error::Invalid("allowed ranges overlap"));
        }
        crate::inject::point("allow iova")?;
        allowed.insert(*r, ());
    }
    Ok(allowed)
}

impl Ioas {
    pub(crate) fn new(id: u32) -> Ioas {
        Ioas {
            id,
            iopt: Mutex::default(),
            accesses: Mutex::default(),
            hwpts: Mutex::default(),
        }
    }

    /// Locks and returns the page table.
    pub fn iopt(&self) -> MutexGuard<'_, IoPagetable> {
        self.iopt.lock().expect("IOAS lock poisoned")
    }

    pub(crate) fn add_access_ref(&self, access: &Arc<Access>) {
        self.accesses
            .lock()
            .expect("IOAS accesses poisoned")
            .push(Arc::downgrade(access));
    }

    pub(crate) fn remove_access_ref(&self, access: &Access) {
        self.accesses
            .lock()
            .expect("IOAS accesses poisoned")
            .retain(|a| a.upgrade().is_some_and(|a| !std::ptr::eq(&*a, access)));
    }

    /// Unmaps every area inside `range`, first asking accesses that pin pages
    /// there to let go. ENOENT when the range cuts an area; nothing changes then.
    pub fn unmap_range(&self, range: IovaRange) -> Result<u64> {
        for _ in 0..UNMAP_TRIES {
            let pinned = {
                let mut iopt = self.iopt();
                let pinned = iopt.unmap_check(range)?;
                if pinned.is_empty() {
                    return Ok(iopt.unmap_areas(range));
                }
                pinned
            };
            let accesses: Vec<Arc<Access>> = self
                .accesses
                .lock()
                .expect("IOAS accesses poisoned")
                .iter()
                .filter_map(Weak::upgrade)
                .collect();
            for r in pinned {
                for a in &accesses {
                    a.notify_unmap(r.start, r.last - r.start + 1);
                }
            }
        }
        Err(Error::Other {
            what: "accesses do not release their pins",
            errno: softiommu_uapi::Errno::EDEADLK,
        })
    }

    /// Tears the IOAS down when its object is destroyed.
    pub(crate) fn destroy(&self) {
        let r = self.unmap_range(IovaRange::ALL);
        debug_assert!(r.is_ok(), "IOAS destroyed with pinned accesses");
        let iopt = self.iopt();
        debug_assert!(iopt.domains().is_empty(), "IOAS destroyed with domains");
    }
}

impl Iommufd {
    /// `IOMMU_IOAS_ALLOC`: a new, empty IOAS; returns its ID.
    pub fn ioas_alloc(&self) -> Result<u32> {
        let mut t = self.table();
        let id = t.reserve()?;
        t.finalize(id, Object::Ioas(Arc::new(Ioas::new(id))));
        Ok(id)
    }

    /// `IOMMU_IOAS_IOVA_RANGES`: the usable IOVA ranges and the alignment.
    pub fn ioas_iova_ranges(&self, ioas_id: u32) -> Result<IovaRanges> {
        let ioas = self.get_ioas(ioas_id)?;
        let iopt = ioas.iopt();
        Ok(IovaRanges {
            ranges: iopt.iova_ranges(),
            alignment: iopt.iova_alignment(),
        })
    }

    /// `IOMMU_IOAS_ALLOW_IOVAS`: automatic IOVA allocation stays inside `ranges`
    /// (none: anywhere). Each range must have `start < last` and they must not
    /// overlap each other (EINVAL) or a reserved range (EADDRINUSE).
    pub fn ioas_allow_iovas(&self, ioas_id: u32, ranges: &[IovaRange]) -> Result<()> {
        let ioas = self.get_ioas(ioas_id)?;
        let allowed = allowed_ranges(ranges)?;
        let mut iopt = ioas.iopt();
        iopt.set_allowed(allowed)
    }

    /// The common part of `IOMMU_IOAS_MAP` and `IOMMU_IOAS_MAP_FILE`: checks in the
    /// kernel's order, makes the pages with `make` and maps them.
    fn map_new(
        &self,
        ioas_id: u32,
        length: u64,
        iova: Option<u64>,
        flags: MapFlags,
        make: impl FnOnce(&Arc<Process>, bool) -> Result<(Arc<Pages>, u64)>,
    ) -> Result<u64> {
        check_ulong(&[iova.unwrap_or(0), length])?;
        let prot = flags.prot()?;
        let ioas = self.get_ioas(ioas_id)?;
        let (pages, start_byte) = make(&self.process(), flags.writeable)?;
        if *self
            .inner
            .account_mode
            .lock()
            .expect("context lock poisoned")
            == AccountMode::Mm
        {
            pages.set_account_mm();
        }
        let slice = PagesSlice {
            pages,
            start_byte,
            length,
        };
        let mapped = ioas.iopt().map_pages(&[slice], length, iova, prot);
        mapped
    }

    /// `IOMMU_IOAS_MAP`: maps `length` bytes of the caller's memory at `user_va`,
    /// at `iova` or wherever there is room when `None`; returns the IOVA.
    pub fn ioas_map(
        &self,
        ioas_id: u32,
        user_va: u64,
        length: u64,
        iova: Option<u64>,
        flags: MapFlags,
    ) -> Result<u64> {
        self.map_new(ioas_id, length, iova, flags, |p, w| {
            Pages::new_user(p, user_va, length, w)
        })
    }

    /// `IOMMU_IOAS_MAP_FILE`: maps `length` bytes of `file` from `start`; returns
    /// the IOVA. The pages are pinned by file and offset.
    pub fn ioas_map_file(
        &self,
        ioas_id: u32,
        file: Arc<dyn FileSource>,
        start: u64,
        length: u64,
        iova: Option<u64>,
        flags: MapFlags,
    ) -> Result<u64> {
        self.map_new(ioas_id, length, iova, flags, |p, w| {
            Pages::new_file(p, file, start, length, w)
        })
    }

    /// `IOMMU_IOAS_COPY`: maps in `dst` the pages `src` maps at
    /// `[src_iova, src_iova + length)`, sharing their pins; returns the IOVA.
    pub fn ioas_copy(
        &self,
        dst_ioas_id: u32,
        src_ioas_id: u32,
        src_iova: u64,
        length: u64,
        dst_iova: Option<u64>,
        flags: MapFlags,
    ) -> Result<u64> {
        check_ulong(&[length, src_iova, dst_iova.unwrap_or(0)])?;
        let prot = flags.prot()?;
        let src = self.get_ioas(src_ioas_id)?;
        let slices = src.iopt().get_pages(src_iova, length)?;
        let dst = self.get_ioas(dst_ioas_id)?;
        let mut iopt = dst.iopt();
        iopt.map_pages(&slices, length, dst_iova, prot)
    }

    /// `IOMMU_IOAS_UNMAP`: unmaps the areas inside `[iova, iova + length)`;
    /// `iova == 0, length == u64::MAX` unmaps everything. Returns the bytes
    /// unmapped. ENOENT when the range cuts a mapping or holds none.
    pub fn ioas_unmap(&self, ioas_id: u32, iova: u64, length: u64) -> Result<u64> {
        let ioas = self.get_ioas(ioas_id)?;
        if iova == 0 && length == u64::MAX {
            return ioas.unmap_range(IovaRange::ALL);
        }
        check_ulong(&[iova, length])?;
        if length == 0 {
            return Err(Error::Invalid("length"));
        }
        let range = IovaRange::from_len(iova, length).ok_or(Error::Overflow("IOVA + length"))?;
        match ioas.unmap_range(range)? {
            0 => Err(Error::NotMapped("nothing mapped in the range")),
            n => Ok(n),
        }
    }

    /// `IOMMU_OPTION`: gets (`op` = `IOMMU_OPTION_OP_GET`) or sets an option;
    /// returns the value (`val64`).
    pub fn option(&self, option_id: u32, op: u16, object_id: u32, val64: u64) -> Result<u64> {
        match option_id {
            IOMMU_OPTION_RLIMIT_MODE => {
                if object_id != 0 {
                    return Err(Error::NotSupported("RLIMIT_MODE takes no object"));
                }
                match op {
                    IOMMU_OPTION_OP_GET => Ok((*self
                        .inner
                        .account_mode
                        .lock()
                        .expect("context lock poisoned")
                        == AccountMode::Mm) as u64),
                    IOMMU_OPTION_OP_SET => {
                        if !self.process().cap_sys_resource() {
                            return Err(Error::Perm("RLIMIT_MODE needs CAP_SYS_RESOURCE"));
                        }
                        let t = self.table();
                        if !t.is_empty() {
                            return Err(Error::Busy("objects exist"));
                        }
                        let mode = match val64 {
                            0 => AccountMode::User,
                            1 => AccountMode::Mm,
                            _ => return Err(Error::Invalid("RLIMIT_MODE value")),
                        };
                        *self
                            .inner
                            .account_mode
                            .lock()
                            .expect("context lock poisoned") = mode;
                        Ok(val64)
                    }
                    _ => Err(Error::NotSupported("option op")),
                }
            }
            IOMMU_OPTION_HUGE_PAGES => {
                let ioas = self.get_ioas(object_id)?;
                let mut iopt = ioas.iopt();
                match op {
                    IOMMU_OPTION_OP_GET => Ok(!iopt.large_pages_disabled() as u64),
                    IOMMU_OPTION_OP_SET => match val64 {
                        0 => iopt.disable_large_pages().map(|_| val64),
                        1 => {
                            iopt.enable_large_pages();
                            Ok(val64)
                        }
                        _ => Err(Error::Invalid("HUGE_PAGES value")),
                    },
                    _ => Err(Error::NotSupported("option op")),
                }
            }
            _ => Err(Error::NotSupported("option")),
        }
    }

    /// `IOMMU_IOAS_CHANGE_PROCESS`: charges every pinned page of the context to the
    /// calling process instead of the one that mapped it. Only file mappings can
    /// move (EINVAL otherwise); ENOMEM over the caller's limit; nothing changes on
    /// failure.
    pub fn ioas_change_process(&self) -> Result<()> {
        let current = self.process();
        let ioases: Vec<Arc<Ioas>> = self
            .objects()
            .into_iter()
            .filter_map(|(_, o, _)| match o {
                Object::Ioas(i) => Some(i),
                _ => None,
            })
            .collect();
        // Every page table stays locked until the move is done (IDs ascending).
        let iopts: Vec<_> = ioases.iter().map(|i| i.iopt()).collect();
        let mut all: HashMap<usize, Arc<Pages>> = HashMap::new();
        for iopt in &iopts {
            for (_, area) in iopt.areas() {
                if !area.pages.is_file() {
                    return Err(Error::Invalid("only file mappings can change process"));
                }
                all.insert(Arc::as_ptr(&area.pages) as usize, area.pages.clone());
            }
        }
        let moving: Vec<Arc<Pages>> = all
            .into_values()
            .filter(|p| !Arc::ptr_eq(&p.process(), &current))
            .collect();
        let mut charged: Vec<(AccountMode, u64)> = Vec::new();
        for mode in [AccountMode::None, AccountMode::User, AccountMode::Mm] {
            let n: u64 = moving
                .iter()
                .filter(|p| p.account_mode() == mode)
                .map(|p| p.npinned())
                .sum();
            let result =
                crate::inject::point("change process charge").and_then(|_| current.charge(mode, n));
            if let Err(e) = result {
                for (m, n) in charged {
                    current.uncharge(m, n);
                }
                return Err(e);
            }
            charged.push((mode, n));
        }
        for p in moving {
            p.change_process(&current);
        }
        drop(iopts);
        Ok(())
    }

    /// The selftest's `ADD_RESERVED`: reserves `[start, start + length)` in an IOAS.
    pub fn test_add_reserved(&self, ioas_id: u32, start: u64, length: u64) -> Result<()> {
        let ioas = self.get_ioas(ioas_id)?;
        let range = IovaRange::from_len(start, length).ok_or(Error::Invalid("reserved range"))?;
        let mut iopt = ioas.iopt();
        iopt.reserve(range, ReservedOwner::Test)
    }
}
