//! Hardware page tables (the kernel's `hw_pagetable.c`).
//!
//! A paging HWPT wraps a driver's domain that is loaded from an IOAS: every area of
//! the IOAS is mapped in it while it lives. It is made either explicitly
//! (`IOMMU_HWPT_ALLOC`) or automatically when a device is attached to
//! an IOAS and no existing automatic HWPT of that IOAS is compatible with the
//! device. An automatic HWPT goes away with its last device.
//!
//! A nested HWPT (`IOMMU_HWPT_ALLOC` on a paging HWPT allocated with
//! `NEST_PARENT`) wraps a driver's nested domain: a stage-1 table the user owns,
//! translated through its parent. It has no IOAS of its own and maps nothing; the
//! user tells the driver what changed with `IOMMU_HWPT_INVALIDATE`. A nested
//! HWPT may also be made by a vIOMMU ([`super::viommu`]; `pt_id` names the
//! vIOMMU): its parent is then the vIOMMU's, and it uses the vIOMMU instead.
//! `IOMMU_HWPT_INVALIDATE` on a vIOMMU goes to the vIOMMU's driver.
//!
//! Users: a paging HWPT is a user of its IOAS for its whole life, a nested HWPT
//! of its parent; each attached device is a user of its HWPT. So a parent cannot
//! be destroyed while a nested HWPT on it exists (EBUSY).
//!
//! Dirty tracking (`IOMMU_HWPT_SET_DIRTY_TRACKING`, `IOMMU_HWPT_GET_DIRTY_BITMAP`)
//! is the domain's business; the HWPT finds the domain and its IOAS, and the IO
//! page table ([`super::io_pagetable`]) checks the range and walks it area by
//! area under the IOAS's lock, so no area can go away during a walk. The
//! caller's bitmap is [`super::iova_bitmap`].

use super::context::{CtxInner, Iommufd, Object};
use super::fault::Fault;
use super::ioas::Ioas;
use super::iova_bitmap::IovaBitmap;
use super::viommu::Viommu;
use crate::error::{Error, Result};
use crate::iommu::{Device, Domain, NestedDomain, PagingFlags, UserData, UserDataArray};
use crate::range::IovaRange;
use softiommu_uapi::iommufd::{
    IOMMU_HWPT_ALLOC_DIRTY_TRACKING, IOMMU_HWPT_ALLOC_NEST_PARENT, IOMMU_HWPT_ALLOC_PASID,
    IOMMU_HWPT_DATA_NONE, IOMMU_HWPT_FAULT_ID_VALID,
};
use std::sync::Arc;

/// A paging hardware page table.
#[derive(Debug)]
pub struct HwptPaging {
    /// The object ID.
    pub id: u32,
    /// The IOAS the domain is loaded from.
    pub ioas: Arc<Ioas>,
    /// The driver's domain.
    pub domain: Arc<dyn Domain>,
    /// Made automatically for a device attach; destroyed with its last device.
    pub auto_domain: bool,
    /// The flags it was allocated with.
    pub flags: PagingFlags,
    /// The fault queue its page requests go to (`IOMMU_HWPT_FAULT_ID_VALID`).
    pub fault: Option<Arc<Fault>>,
}

/// A nested hardware page table.
#[derive(Debug)]
pub struct HwptNested {
    /// The object ID.
    pub id: u32,
    /// The nesting parent it translates through.
    pub parent: Arc<HwptPaging>,
    /// The driver's nested domain.
    pub domain: Arc<dyn NestedDomain>,
    /// The `IOMMU_HWPT_ALLOC_*` flags it was allocated with.
    pub flags: u32,
    /// The fault queue its page requests go to (`IOMMU_HWPT_FAULT_ID_VALID`).
    pub fault: Option<Arc<Fault>>,
    /// The vIOMMU that made it, which it uses instead of its parent.
    pub viommu: Option<Arc<Viommu>>,
}

impl HwptNested {
    /// The object it uses: its vIOMMU if one made it, else its parent.
    pub fn used_id(&self) -> u32 {
        self.viommu.as_ref().map_or(self.parent.id, |v| v.id)
    }

    pub(crate) fn destroy(&self, ctx: &CtxInner) {
        let mut t = ctx.table();
        t.remove_user(self.used_id());
        if let Some(f) = &self.fault {
            t.remove_user(f.id);
        }
    }
}

/// A HWPT a device can be attached to.
#[derive(Clone, Debug)]
pub enum Hwpt {
    /// A paging HWPT.
    Paging(Arc<HwptPaging>),
    /// A nested HWPT.
    Nested(Arc<HwptNested>),
}

impl Hwpt {
    /// The object ID.
    pub fn id(&self) -> u32 {
        match self {
            Hwpt::Paging(h) => h.id,
            Hwpt::Nested(h) => h.id,
        }
    }

    /// Whether it may share a device with PASID attachments (allocated with
    /// `IOMMU_HWPT_ALLOC_PASID`; automatic HWPTs never are).
    pub fn pasid_compat(&self) -> bool {
        match self {
            Hwpt::Paging(h) => h.flags.pasid,
            Hwpt::Nested(h) => h.flags & IOMMU_HWPT_ALLOC_PASID != 0,
        }
    }

    /// The fault queue its page requests go to, if any.
    pub fn fault(&self) -> Option<&Arc<Fault>> {
        match self {
            Hwpt::Paging(h) => h.fault.as_ref(),
            Hwpt::Nested(h) => h.fault.as_ref(),
        }
    }
}

impl HwptPaging {
    pub(crate) fn destroy(&self, ctx: &CtxInner) {
        // The HWPT list before the page table, as attach takes them.
        let mut list = self.ioas.hwpts.lock().expect("IOAS HWPT list poisoned");
        list.retain(|h| h.upgrade().is_some_and(|h| h.id != self.id));
        self.ioas.iopt().remove_domain(&self.domain);
        drop(list);
        let mut t = ctx.table();
        t.remove_user(self.ioas.id);
        if let Some(f) = &self.fault {
            t.remove_user(f.id);
        }
    }
}

impl Iommufd {
    /// Allocates a paging HWPT on `ioas` for `dev`, loads it and publishes it,
    /// with `dev` counted as attached for an automatic domain. The caller, holding
    /// the IOAS's HWPT list, adds it there. On failure nothing is left.
    pub(crate) fn hwpt_paging_alloc(
        &self,
        ioas: &Arc<Ioas>,
        dev: &Device,
        flags: PagingFlags,
        auto_domain: bool,
        fault: Option<Arc<Fault>>,
    ) -> Result<Arc<HwptPaging>> {
        let id = self.table().reserve()?;
        let result = (|| {
            let domain = dev.driver.domain_alloc_paging(dev, flags)?;
            if auto_domain {
                dev.driver.attach_check(&*domain, dev)?;
            }
            ioas.iopt().add_domain(&domain)?;
            Ok(Arc::new(HwptPaging {
                id,
                ioas: ioas.clone(),
                domain,
                auto_domain,
                flags,
                fault: fault.clone(),
            }))
        })();
        let mut t = self.table();
        match result {
            Ok(hwpt) => {
                t.add_user(ioas.id);
                if let Some(f) = &fault {
                    t.add_user(f.id);
                }
                if auto_domain {
                    t.add_user(id);
                }
                t.finalize(id, Object::HwptPaging(hwpt.clone()));
                Ok(hwpt)
            }
            Err(e) => {
                t.abort(id);
                Err(e)
            }
        }
    }
}

/// `IOMMU_HWPT_ALLOC` flags a paging HWPT accepts.
const PAGING_FLAGS: u32 = IOMMU_HWPT_ALLOC_NEST_PARENT
    | IOMMU_HWPT_ALLOC_DIRTY_TRACKING
    | IOMMU_HWPT_FAULT_ID_VALID
    | IOMMU_HWPT_ALLOC_PASID;

/// `IOMMU_HWPT_ALLOC` flags a nested HWPT accepts (the fault flag stays with the
/// core; the rest reaches the driver).
const NESTED_FLAGS: u32 = IOMMU_HWPT_FAULT_ID_VALID | IOMMU_HWPT_ALLOC_PASID;

impl Iommufd {
    /// `IOMMU_HWPT_ALLOC`: a HWPT for the device `dev_id` on `pt_id`. For an IOAS
    /// that is a paging HWPT loaded from it (nothing is attached); for a paging
    /// HWPT allocated as a nesting parent, a nested HWPT configured by the
    /// driver data of type `data_type` at `data_uptr` (`data_len` bytes). EINVAL
    /// for a `pt_id` that names neither.
    pub fn hwpt_alloc(
        &self,
        dev_id: u32,
        pt_id: u32,
        flags: u32,
        data_type: u32,
        data_len: u32,
        data_uptr: u64,
    ) -> Result<u32> {
        self.hwpt_alloc_fault(dev_id, pt_id, flags, data_type, data_len, data_uptr, 0)
    }

    /// `IOMMU_HWPT_ALLOC` with `fault_id`: as [`Iommufd::hwpt_alloc`]; with
    /// `IOMMU_HWPT_FAULT_ID_VALID` in `flags` the HWPT's page requests go to the
    /// fault queue `fault_id` (ENOENT if it is not one), which it then uses.
    #[allow(clippy::too_many_arguments)]
    pub fn hwpt_alloc_fault(
        &self,
        dev_id: u32,
        pt_id: u32,
        flags: u32,
        data_type: u32,
        data_len: u32,
        data_uptr: u64,
        fault_id: u32,
    ) -> Result<u32> {
        if (data_type == IOMMU_HWPT_DATA_NONE) != (data_len == 0) {
            return Err(Error::Invalid("data type and length disagree"));
        }
        let idev = match self.table().get(dev_id) {
            Some(Object::Device(d)) => d.clone(),
            _ => return Err(Error::NoObject { id: dev_id }),
        };
        let pt = self.table().get(pt_id).cloned();
        // The queue is looked up once the driver has made the domain, as the
        // kernel does; a name that is not a queue is ENOENT.
        let fault = |flags: u32| -> Result<Option<Arc<Fault>>> {
            if flags & IOMMU_HWPT_FAULT_ID_VALID == 0 {
                return Ok(None);
            }
            self.get_fault(fault_id).map(Some)
        };
        let ioas = match pt {
            Some(Object::Ioas(ioas)) => ioas,
            Some(Object::HwptPaging(parent)) => {
                let space = self.process().space.clone();
                let data = UserData {
                    data_type,
                    uptr: data_uptr,
                    len: data_len,
                    mem: &*space,
                };
                return self
                    .hwpt_nested_alloc(&idev.dev, &parent, flags, &data, &fault, None)
                    .map(|h| h.id);
            }
            Some(Object::Viommu(viommu)) => {
                let space = self.process().space.clone();
                let data = UserData {
                    data_type,
                    uptr: data_uptr,
                    len: data_len,
                    mem: &*space,
                };
                let parent = viommu.hwpt.clone();
                return self
                    .hwpt_nested_alloc(&idev.dev, &parent, flags, &data, &fault, Some(viommu))
                    .map(|h| h.id);
            }
            _ => return Err(Error::Invalid("not an IOAS, a HWPT or a vIOMMU")),
        };
        if flags & !PAGING_FLAGS != 0 {
            return Err(Error::NotSupported("HWPT flags"));
        }
        if data_len != 0 {
            return Err(Error::NotSupported("driver data for a paging HWPT"));
        }
        if flags & IOMMU_HWPT_FAULT_ID_VALID != 0 && flags & IOMMU_HWPT_ALLOC_NEST_PARENT != 0 {
            return Err(Error::NotSupported("a nesting parent cannot report faults"));
        }
        let fault = fault(flags)?;
        let paging = PagingFlags {
            nest_parent: flags & IOMMU_HWPT_ALLOC_NEST_PARENT != 0,
            dirty_tracking: flags & IOMMU_HWPT_ALLOC_DIRTY_TRACKING != 0,
            pasid: flags & IOMMU_HWPT_ALLOC_PASID != 0,
        };
        let mut list = ioas.hwpts.lock().expect("IOAS HWPT list poisoned");
        let hwpt = self.hwpt_paging_alloc(&ioas, &idev.dev, paging, false, fault)?;
        list.push(Arc::downgrade(&hwpt));
        Ok(hwpt.id)
    }

    /// A nested HWPT on `parent` for `dev`, published with `parent` (or
    /// `viommu`, which then makes the domain) counting it as a user. EOPNOTSUPP
    /// for flags other than PASID (and the fault flag) or no driver data;
    /// EINVAL unless `parent` was allocated explicitly as a nesting parent by
    /// `dev`'s driver.
    fn hwpt_nested_alloc(
        &self,
        dev: &Device,
        parent: &Arc<HwptPaging>,
        flags: u32,
        data: &UserData<'_>,
        fault: &dyn Fn(u32) -> Result<Option<Arc<Fault>>>,
        viommu: Option<Arc<Viommu>>,
    ) -> Result<Arc<HwptNested>> {
        if flags & !NESTED_FLAGS != 0 || data.len == 0 {
            return Err(Error::NotSupported("nested HWPT flags or data"));
        }
        if parent.auto_domain || !parent.flags.nest_parent {
            return Err(Error::Invalid("parent is not a nesting parent"));
        }
        let id = self.table().reserve()?;
        let result = (|| {
            let driver_flags = flags & !IOMMU_HWPT_FAULT_ID_VALID;
            let domain = match &viommu {
                Some(v) => v.driver.alloc_domain_nested(driver_flags, data)?,
                None => dev
                    .driver
                    .domain_alloc_nested(dev, &parent.domain, driver_flags, data)?,
            };
            let fault = fault(flags)?;
            Ok(Arc::new(HwptNested {
                id,
                parent: parent.clone(),
                domain,
                flags,
                fault,
                viommu: viommu.clone(),
            }))
        })();
        let mut t = self.table();
        match result {
            Ok(hwpt) => {
                t.add_user(hwpt.used_id());
                if let Some(f) = &hwpt.fault {
                    t.add_user(f.id);
                }
                t.finalize(id, Object::HwptNested(hwpt.clone()));
                Ok(hwpt)
            }
            Err(e) => {
                t.abort(id);
                Err(e)
            }
        }
    }

    /// `IOMMU_HWPT_INVALIDATE`: hands the `entry_num` requests of type
    /// `data_type`, `entry_len` bytes each at `data_uptr`, to the driver of the
    /// nested HWPT or vIOMMU `hwpt_id`. Returns the result and the number of
    /// requests handled, which the caller reports also on failure. EINVAL for
    /// requests without a pointer or length, or an object that is neither;
    /// ENOENT for no object.
    pub fn hwpt_invalidate(
        &self,
        hwpt_id: u32,
        data_type: u32,
        data_uptr: u64,
        entry_len: u32,
        entry_num: u32,
    ) -> (Result<()>, u32) {
        if entry_num != 0 && (data_uptr == 0 || entry_len == 0) {
            return (Err(Error::Invalid("invalidation array")), 0);
        }
        let target = match self.table().get(hwpt_id) {
            Some(Object::HwptNested(h)) => Ok(h.clone()),
            Some(Object::Viommu(v)) => Err(v.clone()),
            Some(_) => return (Err(Error::Invalid("not a nested HWPT or vIOMMU")), 0),
            None => return (Err(Error::NoObject { id: hwpt_id }), 0),
        };
        let space = self.process().space.clone();
        let mut array = UserDataArray {
            data_type,
            uptr: data_uptr,
            entry_len,
            entry_num,
            mem: &*space,
        };
        let result = match target {
            Ok(hwpt) => hwpt.domain.cache_invalidate_user(&mut array),
            Err(viommu) => viommu.driver.cache_invalidate(&mut array),
        };
        (result, array.entry_num)
    }
}

impl Iommufd {
    /// `IOMMU_HWPT_SET_DIRTY_TRACKING`: starts (`enable`) or stops dirty tracking
    /// in the paging HWPT `hwpt_id` (ENOENT if there is none). EOPNOTSUPP when its
    /// domain cannot track dirty pages.
    pub fn hwpt_set_dirty_tracking(&self, hwpt_id: u32, enable: bool) -> Result<()> {
        let hwpt = self.get_hwpt_paging(hwpt_id)?;
        let iopt = hwpt.ioas.iopt();
        iopt.set_dirty_tracking(&*hwpt.domain, enable)
    }

    /// `IOMMU_HWPT_GET_DIRTY_BITMAP`: sets, in the caller's bitmap at `data`, bit
    /// `n` for each dirty `page_size` piece at `iova + n * page_size` in
    /// `[iova, iova + length)` of the paging HWPT `hwpt_id`, and clears the dirty
    /// state unless `no_clear`. Bits already set stay set. The range must be
    /// aligned (see [`super::io_pagetable::IoPagetable::check_dirty_range`]) and
    /// fully mapped (EINVAL); tracking must be on (the mock: EINVAL).
    pub fn hwpt_get_dirty_bitmap(
        &self,
        hwpt_id: u32,
        iova: u64,
        length: u64,
        page_size: u64,
        no_clear: bool,
        data: u64,
    ) -> Result<()> {
        let hwpt = self.get_hwpt_paging(hwpt_id)?;
        let iopt = hwpt.ioas.iopt();
        if !hwpt.domain.has_dirty_ops() {
            return Err(Error::NotSupported("domain has no dirty tracking"));
        }
        iopt.check_dirty_range(iova, length, page_size)?;
        let range = IovaRange::from_len(iova, length).ok_or(Error::Overflow("IOVA + length"))?;
        let space = self.process().space.clone();
        let mut bitmap = IovaBitmap::new(&*space, iova, length, page_size, data);
        iopt.read_and_clear_dirty(&*hwpt.domain, range, no_clear, &mut |i, l| bitmap.set(i, l))?;
        bitmap.finish()
    }
}

impl CtxInner {
    /// Drops a device's use of `hwpt`; an automatic HWPT goes with its last device.
    pub(crate) fn hwpt_put(&self, hwpt: &Hwpt) {
        let removed = {
            let mut t = self.table();
            t.remove_user(hwpt.id());
            let auto = matches!(hwpt, Hwpt::Paging(h) if h.auto_domain);
            if auto && t.users(hwpt.id()) == 0 {
                t.remove(hwpt.id()).ok()
            } else {
                None
            }
        };
        if let Some(obj) = removed {
            self.teardown(obj);
        }
    }
}
