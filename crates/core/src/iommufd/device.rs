//! Devices and accesses (the kernel's `device.c`).
//!
//! An [`IommufdDevice`] is a device bound to a context. Attaching it to an IOAS
//! finds, or makes, an automatic paging HWPT of that IOAS the device is compatible
//! with (the driver says EINVAL for an incompatible domain, and the search moves
//! on); attaching it to a paging or nested HWPT uses that one, if the driver
//! accepts the device there. Replace moves an attached device to
//! another HWPT or IOAS without a window where it is detached; detach drops it.
//!
//! An [`Access`] is how an emulated device (an mdev, a vIOMMU's software queue,
//! the selftest) reaches an IOAS without a domain: it pins pages and gets their
//! frames, or reads and writes through the IOAS. The IOAS tells its accesses when a
//! range is about to be unmapped; an access that pins pages there must unpin them
//! from its [`AccessOps::unmap`], and only then does the unmap complete.
//!
//! Locks: an access's `state` is taken before the IOAS page table; the unmap
//! callback is called with no IOAS lock held.

use super::context::{CtxInner, Iommufd, Object};
use super::fault::Fault;
use super::hw_pagetable::{Hwpt, HwptPaging};
use super::ioas::Ioas;
use crate::error::{Error, Result};
use crate::iommu::dma::{AttachedDomain, Attachment, IopfHandler, PageResponse, NO_PASID};
use crate::iommu::{Device, PagingFlags, IOMMU_WRITE};
use crate::mem::{FrameRun, PAGE_SIZE};
use crate::range::IovaRange;
use softiommu_uapi::iommufd::IOMMUFD_PAGE_RESP_SUCCESS;
use std::collections::BTreeMap;
use std::fmt::Debug;
use std::sync::{Arc, Mutex, MutexGuard, Weak};

/// A device bound to a context.
#[derive(Debug)]
pub struct IommufdDevice {
    /// The object ID (the `dev_id` user space sees).
    pub id: u32,
    /// The device.
    pub dev: Arc<Device>,
    /// The HWPT each PASID is attached to ([`NO_PASID`]: the device itself).
    attached: Mutex<BTreeMap<u32, Hwpt>>,
    /// The object ID of its vDEVICE, if it has one. Changed under the object
    /// table lock.
    vdev: Mutex<Option<u32>>,
    /// Bound by a driver that holds the object (VFIO, a selftest mock
    /// device): it counts one user until unbound.
    pub owned: bool,
}

impl IommufdDevice {
    /// The HWPT the device (its requester ID) is attached to.
    pub fn hwpt(&self) -> Option<Hwpt> {
        self.hwpt_at(NO_PASID)
    }

    /// The HWPT `pasid` is attached to.
    pub fn hwpt_at(&self, pasid: u32) -> Option<Hwpt> {
        self.attached().get(&pasid).cloned()
    }

    /// Every attachment, by PASID.
    pub fn attachments(&self) -> Vec<(u32, Hwpt)> {
        self.attached()
            .iter()
            .map(|(p, h)| (*p, h.clone()))
            .collect()
    }

    /// The object ID of the device's vDEVICE, if it has one.
    pub fn vdev(&self) -> Option<u32> {
        *self.vdev.lock().expect("device lock poisoned")
    }

    pub(crate) fn set_vdev(&self, vdev: Option<u32>) {
        *self.vdev.lock().expect("device lock poisoned") = vdev;
    }

    fn attached(&self) -> MutexGuard<'_, BTreeMap<u32, Hwpt>> {
        self.attached.lock().expect("device lock poisoned")
    }

    /// Programs the IOMMU: DMA at `pasid` now goes through `hwpt` (`None`:
    /// blocked). Page requests go to the HWPT's fault queue, tagged with our ID.
    fn program(&self, pasid: u32, hwpt: Option<&Hwpt>) {
        let attachment = hwpt.map(|h| Attachment {
            domain: match h {
                Hwpt::Paging(p) => AttachedDomain::Paging(p.domain.clone()),
                Hwpt::Nested(n) => AttachedDomain::Nested(n.domain.clone()),
            },
            iopf: h.fault().map(|f| {
                Arc::new(FaultSink {
                    fault: f.clone(),
                    dev_id: self.id,
                }) as Arc<dyn IopfHandler>
            }),
        });
        self.dev.set_attachment(pasid, attachment);
    }

    /// Unbinding (or closing the context) detaches every PASID first, then
    /// destroys the device's vDEVICE.
    pub(crate) fn destroy(&self, ctx: &CtxInner) {
        ctx.device_detach_all(self);
        ctx.vdevice_revoke(self);
    }
}

/// A HWPT's fault queue as the page request handler of one bound device.
#[derive(Debug)]
struct FaultSink {
    fault: Arc<Fault>,
    dev_id: u32,
}

impl IopfHandler for FaultSink {
    fn page_request(&self, _dev: &Device, pasid: u32, addr: u64, perm: u32) -> PageResponse {
        match self.fault.request(self.dev_id, pasid, perm, addr) {
            IOMMUFD_PAGE_RESP_SUCCESS => PageResponse::Success,
            _ => PageResponse::Invalid,
        }
    }
}

/// What an attach names: a HWPT, or an IOAS to find or make an automatic one in.
enum Target {
    Hwpt(Hwpt),
    Ioas(Arc<Ioas>),
}

impl Target {
    /// Whether the HWPT may share the device with PASID attachments (allocated
    /// with `IOMMU_HWPT_ALLOC_PASID`); automatic domains never are.
    fn pasid_compat(&self) -> bool {
        match self {
            Target::Hwpt(h) => h.pasid_compat(),
            Target::Ioas(_) => false,
        }
    }
}

/// What `IOMMU_GET_HW_INFO` reports about a device's IOMMU.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HwInfo {
    /// `IOMMU_HW_INFO_TYPE_*` of `data`.
    pub data_type: u32,
    /// The driver's information, in that type's layout.
    pub data: Vec<u8>,
    /// `IOMMU_HW_CAP_*`.
    pub capabilities: u64,
    /// log2 of the PASIDs the device supports; 0 for none.
    pub max_pasid_log2: u8,
}

impl Iommufd {
    /// `IOMMU_GET_HW_INFO`: the hardware information of the device `dev_id`'s
    /// IOMMU in the format `in_type` (`IOMMU_HW_INFO_TYPE_DEFAULT`: the driver's).
    pub fn get_hw_info(&self, dev_id: u32, in_type: u32) -> Result<HwInfo> {
        let idev = match self.table().get(dev_id) {
            Some(Object::Device(d)) => d.clone(),
            _ => return Err(Error::NoObject { id: dev_id }),
        };
        let driver = &idev.dev.driver;
        let (data_type, data) = driver.hw_info(&idev.dev, in_type)?;
        let mut capabilities = 0;
        if driver.dirty_tracking_capable(&idev.dev) {
            capabilities |= softiommu_uapi::iommufd::IOMMU_HW_CAP_DIRTY_TRACKING;
        }
        Ok(HwInfo {
            data_type,
            data,
            capabilities,
            max_pasid_log2: driver.max_pasid_log2(&idev.dev),
        })
    }

    /// Binds `dev` to the context; returns the bound device.
    pub fn device_bind(&self, dev: Arc<Device>) -> Result<Arc<IommufdDevice>> {
        self.bind(dev, false)
    }

    /// Binds `dev` for a driver that holds the binding (VFIO): as
    /// [`Iommufd::device_bind`], and the object counts a user, so that
    /// `IOMMU_DESTROY` of it is EBUSY until [`Iommufd::device_unbind`].
    pub fn device_bind_owned(&self, dev: Arc<Device>) -> Result<Arc<IommufdDevice>> {
        self.bind(dev, true)
    }

    fn bind(&self, dev: Arc<Device>, owned: bool) -> Result<Arc<IommufdDevice>> {
        let mut t = self.table();
        let id = t.reserve()?;
        let idev = Arc::new(IommufdDevice {
            id,
            dev,
            attached: Mutex::default(),
            vdev: Mutex::default(),
            owned,
        });
        t.finalize(id, Object::Device(idev.clone()));
        if owned {
            t.add_user(id);
        }
        Ok(idev)
    }

    /// Unbinds a device bound with [`Iommufd::device_bind_owned`]: every PASID
    /// detached, its vDEVICE revoked, the object gone. Cannot fail.
    pub fn device_unbind(&self, idev: &IommufdDevice) {
        self.inner.device_unbind(idev);
    }

    /// The context's identity as a DMA owner (the kernel passes the context
    /// itself to `iommu_device_claim_dma_owner`): never 0, unique while the
    /// context lives.
    pub fn cookie(&self) -> u64 {
        Arc::as_ptr(&self.inner) as u64
    }

    /// What `pt_id` names, for an attach.
    fn attach_lookup(&self, pt_id: u32) -> Result<Target> {
        match self.table().get(pt_id) {
            Some(Object::HwptPaging(h)) => Ok(Target::Hwpt(Hwpt::Paging(h.clone()))),
            Some(Object::HwptNested(h)) => Ok(Target::Hwpt(Hwpt::Nested(h.clone()))),
            Some(Object::Ioas(ioas)) => Ok(Target::Ioas(ioas.clone())),
            Some(_) => Err(Error::Invalid("not an IOAS or a HWPT")),
            None => Err(Error::NoObject { id: pt_id }),
        }
    }

    /// Counts `idev` as a user of the HWPT `target` names, if the driver accepts
    /// the device there; for an IOAS, of a compatible automatic HWPT, made when
    /// there is none.
    fn attach_take(&self, idev: &IommufdDevice, target: Target) -> Result<Hwpt> {
        match target {
            Target::Hwpt(Hwpt::Paging(hwpt)) => {
                idev.dev.driver.attach_check(&*hwpt.domain, &idev.dev)?;
                self.table().add_user(hwpt.id);
                Ok(Hwpt::Paging(hwpt))
            }
            Target::Hwpt(Hwpt::Nested(hwpt)) => {
                idev.dev
                    .driver
                    .attach_check_nested(&*hwpt.domain, &idev.dev)?;
                self.table().add_user(hwpt.id);
                Ok(Hwpt::Nested(hwpt))
            }
            Target::Ioas(ioas) => self.auto_domain(idev, &ioas).map(Hwpt::Paging),
        }
    }

    fn auto_domain(&self, idev: &IommufdDevice, ioas: &Arc<Ioas>) -> Result<Arc<HwptPaging>> {
        let mut list = ioas.hwpts.lock().expect("IOAS HWPT list poisoned");
        for hwpt in list
            .iter()
            .filter_map(Weak::upgrade)
            .filter(|h| h.auto_domain)
        {
            match idev.dev.driver.attach_check(&*hwpt.domain, &idev.dev) {
                Ok(()) => {
                    self.table().add_user(hwpt.id);
                    return Ok(hwpt);
                }
                Err(e) if e.errno() == softiommu_uapi::Errno::EINVAL => continue,
                Err(e) => return Err(e),
            }
        }
        let hwpt = self.hwpt_paging_alloc(ioas, &idev.dev, PagingFlags::default(), true, None)?;
        list.push(Arc::downgrade(&hwpt));
        Ok(hwpt)
    }

    /// The PASID rules: while a PASID is attached, the device itself may only
    /// move to a PASID-compatible HWPT, and a PASID may only be attached (to a
    /// compatible HWPT) while the device itself is on a compatible HWPT or on
    /// none. EINVAL otherwise, and for a PASID beyond the device's width.
    fn pasid_check(
        idev: &IommufdDevice,
        attached: &BTreeMap<u32, Hwpt>,
        pasid: u32,
        target: &Target,
    ) -> Result<()> {
        if pasid == NO_PASID {
            if !target.pasid_compat() && attached.keys().any(|&p| p != NO_PASID) {
                return Err(Error::Invalid("PASIDs attached; HWPT not PASID compatible"));
            }
            return Ok(());
        }
        if !target.pasid_compat() {
            return Err(Error::Invalid("HWPT not PASID compatible"));
        }
        if attached.get(&NO_PASID).is_some_and(|h| !h.pasid_compat()) {
            return Err(Error::Invalid(
                "device on a HWPT that is not PASID compatible",
            ));
        }
        let width = idev.dev.driver.max_pasid_log2(&idev.dev);
        if u64::from(pasid) >> width != 0 {
            return Err(Error::Invalid("PASID out of the device's range"));
        }
        Ok(())
    }

    /// Attaches `pasid` of `idev` ([`NO_PASID`]: the device itself) to the IOAS
    /// or HWPT `pt_id`; returns the HWPT's ID. EBUSY when that PASID is attached
    /// already; EINVAL when incompatible.
    pub fn device_attach(&self, idev: &IommufdDevice, pasid: u32, pt_id: u32) -> Result<u32> {
        let target = self.attach_lookup(pt_id)?;
        let mut attached = idev.attached();
        if attached.contains_key(&pasid) {
            return Err(Error::Busy("PASID already attached"));
        }
        Self::pasid_check(idev, &attached, pasid, &target)?;
        let hwpt = self.attach_take(idev, target)?;
        if pasid != NO_PASID {
            if let Err(e) = idev.dev.driver.set_dev_pasid(&idev.dev, pasid, true) {
                drop(attached);
                self.inner.hwpt_put(&hwpt);
                return Err(e);
            }
        }
        let id = hwpt.id();
        idev.program(pasid, Some(&hwpt));
        attached.insert(pasid, hwpt);
        Ok(id)
    }

    /// Moves the attached `pasid` of `idev` to the IOAS or HWPT `pt_id` without
    /// a window where it is blocked; returns the new HWPT's ID. EINVAL when the
    /// PASID is not attached; on failure the old HWPT stays.
    pub fn device_replace(&self, idev: &IommufdDevice, pasid: u32, pt_id: u32) -> Result<u32> {
        let target = self.attach_lookup(pt_id)?;
        let mut attached = idev.attached();
        let Some(old) = attached.get(&pasid).cloned() else {
            return Err(Error::Invalid("PASID not attached"));
        };
        let rules = Self::pasid_check(idev, &attached, pasid, &target);
        let unchanged = match &target {
            Target::Hwpt(h) => h.id() == old.id(),
            // The IOAS's automatic HWPTs are tried in order: the current one is
            // nothing to do, one the PASID rules refuse is passed over.
            Target::Ioas(ioas) => {
                let first = ioas
                    .hwpts
                    .lock()
                    .expect("IOAS HWPT list poisoned")
                    .iter()
                    .filter_map(Weak::upgrade)
                    .filter(|h| h.auto_domain)
                    .filter(|h| idev.dev.driver.attach_check(&*h.domain, &idev.dev).is_ok())
                    .find(|h| rules.is_ok() || h.id == old.id())
                    .map(|h| h.id);
                first == Some(old.id())
            }
        };
        if unchanged {
            return Ok(old.id());
        }
        rules?;
        let new = self.attach_take(idev, target)?;
        if pasid != NO_PASID {
            if let Err(e) = idev.dev.driver.set_dev_pasid(&idev.dev, pasid, true) {
                drop(attached);
                self.inner.hwpt_put(&new);
                return Err(e);
            }
        }
        let id = new.id();
        idev.program(pasid, Some(&new));
        attached.insert(pasid, new);
        drop(attached);
        if let Some(f) = old.fault() {
            f.auto_respond(idev.id);
        }
        self.inner.hwpt_put(&old);
        Ok(id)
    }

    /// Detaches `pasid` of `idev` from its HWPT; nothing when it is not attached.
    pub fn device_detach(&self, idev: &IommufdDevice, pasid: u32) {
        self.inner.device_detach(idev, pasid);
    }
}

impl CtxInner {
    pub(crate) fn device_detach(&self, idev: &IommufdDevice, pasid: u32) {
        let old = idev.attached().remove(&pasid);
        if let Some(old) = old {
            if pasid != NO_PASID {
                // Blocking a PASID cannot fail.
                let _ = idev.dev.driver.set_dev_pasid(&idev.dev, pasid, false);
            }
            idev.program(pasid, None);
            // Requests the device is waiting on are answered with failure.
            if let Some(f) = old.fault() {
                f.auto_respond(idev.id);
            }
            self.hwpt_put(&old);
        }
    }

    /// Detaches every PASID of `idev`, the device itself last.
    /// Detaches everything of a device whose binding holds a user, and
    /// destroys its object.
    pub(crate) fn device_unbind(&self, idev: &IommufdDevice) {
        self.device_detach_all(idev);
        let obj = {
            let mut t = self.table();
            t.remove_user(idev.id);
            t.remove(idev.id)
        };
        match obj {
            Ok(obj) => self.teardown(obj),
            Err(_) => debug_assert!(false, "bound device {} missing", idev.id),
        }
    }

    pub(crate) fn device_detach_all(&self, idev: &IommufdDevice) {
        let pasids: Vec<u32> = idev.attached().keys().rev().copied().collect();
        for pasid in pasids {
            self.device_detach(idev, pasid);
        }
    }
}

/// What the owner of an access provides.
pub trait AccessOps: Send + Sync + Debug {
    /// Whether the access pins pages (and so needs page-aligned IOVAs).
    fn needs_pin_pages(&self) -> bool;

    /// `[iova, iova + length)` is about to be unmapped: unpin everything pinned
    /// there before returning.
    fn unmap(&self, access: &Access, iova: u64, length: u64);
}

#[derive(Debug, Default)]
struct AccessState {
    /// Where new pins and reads go; `None` while detached or being moved.
    ioas: Option<Arc<Ioas>>,
    /// Where existing pins were taken.
    ioas_unpin: Option<Arc<Ioas>>,
}

/// An emulated device's window on an IOAS.
#[derive(Debug)]
pub struct Access {
    /// The object ID.
    pub id: u32,
    ctx: Weak<CtxInner>,
    state: Mutex<AccessState>,
    /// The IOVA alignment the access needs of the IOAS.
    pub iova_alignment: u64,
    ops: Arc<dyn AccessOps>,
    /// The IOVA ranges pinned through this access (one entry per pin).
    pins: Mutex<Vec<IovaRange>>,
}

impl Iommufd {
    /// Creates an access with `ops` (not attached to anything yet).
    pub fn access_create(&self, ops: Arc<dyn AccessOps>) -> Result<Arc<Access>> {
        let mut t = self.table();
        let id = t.reserve()?;
        let iova_alignment = if ops.needs_pin_pages() { PAGE_SIZE } else { 1 };
        let access = Arc::new(Access {
            id,
            ctx: Arc::downgrade(&self.inner),
            state: Mutex::default(),
            iova_alignment,
            ops,
            pins: Mutex::default(),
        });
        // The creator is a user until it destroys the access.
        t.finalize(id, Object::Access(access.clone()));
        t.add_user(id);
        Ok(access)
    }

    /// Attaches a new access to the IOAS `ioas_id`.
    pub fn access_attach(&self, access: &Arc<Access>, ioas_id: u32) -> Result<()> {
        let mut st = access.state.lock().expect("access lock poisoned");
        if st.ioas.is_some() || st.ioas_unpin.is_some() {
            return Err(Error::Invalid("access already attached"));
        }
        let ioas = self.get_ioas(ioas_id)?;
        ioas.iopt().add_access(access.id, access.iova_alignment)?;
        self.table().add_user(ioas.id);
        ioas.add_access_ref(access);
        st.ioas = Some(ioas.clone());
        st.ioas_unpin = Some(ioas);
        Ok(())
    }

    /// Moves an attached access to the IOAS `ioas_id`; every pin it holds is
    /// dropped through its unmap callback first.
    pub fn access_replace(&self, access: &Arc<Access>, ioas_id: u32) -> Result<()> {
        let cur = {
            let st = access.state.lock().expect("access lock poisoned");
            match (&st.ioas, &st.ioas_unpin) {
                (Some(a), Some(b)) if Arc::ptr_eq(a, b) => a.clone(),
                (None, _) => return Err(Error::NoObject { id: ioas_id }),
                _ => return Err(Error::Busy("access being moved")),
            }
        };
        let new = self.get_ioas(ioas_id)?;
        if Arc::ptr_eq(&cur, &new) {
            return Ok(());
        }
        new.iopt().add_access(access.id, access.iova_alignment)?;
        self.table().add_user(new.id);
        new.add_access_ref(access);
        access.state.lock().expect("access lock poisoned").ioas = None;
        access.ops.unmap(access, 0, u64::MAX);
        access.detach_from(&cur, self.inner.as_ref());
        let mut st = access.state.lock().expect("access lock poisoned");
        st.ioas = Some(new.clone());
        st.ioas_unpin = Some(new);
        Ok(())
    }

    /// Destroys an access on behalf of its creator (closing the selftest's
    /// access fd): its pins are dropped through its unmap callback.
    pub fn access_destroy(&self, access: &Arc<Access>) {
        let obj = {
            let mut t = self.table();
            t.remove_user(access.id);
            t.remove(access.id)
        };
        match obj {
            Ok(obj) => self.inner.teardown(obj),
            Err(_) => debug_assert!(false, "access destroyed twice"),
        }
    }
}

impl Access {
    pub(crate) fn destroy(&self, ctx: &CtxInner) {
        let cur = {
            let mut st = self.state.lock().expect("access lock poisoned");
            st.ioas = None;
            st.ioas_unpin.clone()
        };
        if let Some(cur) = cur {
            self.ops.unmap(self, 0, u64::MAX);
            self.detach_from(&cur, ctx);
        }
        debug_assert!(
            self.pins.lock().expect("access pins poisoned").is_empty(),
            "access destroyed with pins"
        );
    }

    fn detach_from(&self, ioas: &Arc<Ioas>, ctx: &CtxInner) {
        ioas.iopt().remove_access(self.id);
        ioas.remove_access_ref(self);
        ctx.table().remove_user(ioas.id);
        let mut st = self.state.lock().expect("access lock poisoned");
        if st.ioas_unpin.as_ref().is_some_and(|i| Arc::ptr_eq(i, ioas)) {
            st.ioas_unpin = None;
        }
    }

    /// The context the access belongs to, while it is open.
    pub fn context(&self) -> Option<Iommufd> {
        self.ctx.upgrade().map(|inner| Iommufd { inner })
    }

    /// The IOAS the access is attached to.
    pub fn ioas(&self) -> Option<Arc<Ioas>> {
        self.state
            .lock()
            .expect("access lock poisoned")
            .ioas
            .clone()
    }

    /// The IOVA ranges pinned through this access, one entry per pin.
    pub fn pinned(&self) -> Vec<IovaRange> {
        self.pins.lock().expect("access pins poisoned").clone()
    }

    pub(crate) fn notify_unmap(&self, iova: u64, length: u64) {
        self.ops.unmap(self, iova, length);
    }

    /// Pins the pages behind `[iova, iova + length)` and returns their frames,
    /// one run per page-contiguous stretch. `write` asks for writable mappings.
    pub fn pin_pages(&self, iova: u64, length: u64, write: bool) -> Result<Vec<FrameRun>> {
        if length == 0 {
            return Err(Error::Invalid("length"));
        }
        let range = IovaRange::from_len(iova, length).ok_or(Error::Overflow("IOVA + length"))?;
        let st = self.state.lock().expect("access lock poisoned");
        let ioas = st.ioas.clone().ok_or(Error::NoObject { id: 0 })?;
        let mut iopt = ioas.iopt();
        let pieces = iopt.contig_starts(range)?;
        let mut done = Vec::new();
        let mut frames = Vec::new();
        let mut result = Ok(());
        for (i, (r, sub)) in pieces.iter().enumerate() {
            let area = iopt.areas.get(r.start).expect("area just found").1.clone();
            let not_last = i + 1 < pieces.len();
            let aligned = area.start_byte_at(*r, sub.start) % PAGE_SIZE == 0
                && (!not_last || area.start_byte_at(*r, r.last) % PAGE_SIZE == PAGE_SIZE - 1);
            if area.prevent_access || !aligned {
                result = Err(Error::Invalid(
                    "access range not page aligned or being unmapped",
                ));
                break;
            }
            if write && area.prot & IOMMU_WRITE == 0 {
                result = Err(Error::Perm("mapping is not writable"));
                break;
            }
            let indexes = area.index_range(*r, *sub);
            if let Err(e) = area.pages.hold(indexes) {
                result = Err(e);
                break;
            }
            frames.extend(area.pages.frames(indexes));
            iopt.area_mut(r.start)
                .expect("area just found")
                .num_accesses += 1;
            done.push((*r, *sub));
        }
        if let Err(e) = result {
            for (r, sub) in done {
                let area = iopt.area_mut(r.start).expect("area just found");
                area.num_accesses -= 1;
                area.pages.release(area.index_range(r, sub));
            }
            return Err(e);
        }
        self.pins.lock().expect("access pins poisoned").push(range);
        Ok(frames)
    }

    /// Unpins what [`Access::pin_pages`] pinned for `[iova, iova + length)`.
    pub fn unpin_pages(&self, iova: u64, length: u64) {
        let Some(range) = IovaRange::from_len(iova, length) else {
            return;
        };
        let ioas = self
            .state
            .lock()
            .expect("access lock poisoned")
            .ioas_unpin
            .clone();
        let Some(ioas) = ioas else {
            debug_assert!(false, "unpin without an IOAS");
            return;
        };
        {
            let mut pins = self.pins.lock().expect("access pins poisoned");
            match pins.iter().position(|p| *p == range) {
                Some(i) => {
                    pins.swap_remove(i);
                }
                None => {
                    debug_assert!(false, "unpin of a range that was not pinned");
                    return;
                }
            }
        }
        let mut iopt = ioas.iopt();
        let Ok(pieces) = iopt.contig_starts(range) else {
            debug_assert!(false, "pinned range no longer mapped");
            return;
        };
        for (r, sub) in pieces {
            let area = iopt.area_mut(r.start).expect("area just found");
            area.num_accesses -= 1;
            area.pages.release(area.index_range(r, sub));
        }
    }

    /// Reads (`write == false`) or writes `buf` at `iova` through the IOAS,
    /// pinned or not.
    pub fn rw(&self, iova: u64, buf: &mut [u8], write: bool) -> Result<()> {
        if buf.is_empty() {
            return Err(Error::Invalid("length"));
        }
        let range =
            IovaRange::from_len(iova, buf.len() as u64).ok_or(Error::Overflow("IOVA + length"))?;
        let st = self.state.lock().expect("access lock poisoned");
        let ioas = st.ioas.clone().ok_or(Error::NoObject { id: 0 })?;
        let iopt = ioas.iopt();
        let mut done = 0usize;
        iopt.for_each_contig(range, |r, sub, area| {
            if area.prevent_access {
                return Err(Error::Invalid("range being unmapped"));
            }
            if write && area.prot & IOMMU_WRITE == 0 {
                return Err(Error::Perm("mapping is not writable"));
            }
            let n = (sub.last - sub.start + 1) as usize;
            area.pages.rw(
                area.start_byte_at(r, sub.start),
                &mut buf[done..done + n],
                write,
            )?;
            done += n;
            Ok(())
        })
    }
}
