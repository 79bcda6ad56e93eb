//! vIOMMUs and vDEVICEs (the kernel's `viommu.c`).
//!
//! A vIOMMU is the VMM's handle on one physical IOMMU instance as its guest
//! sees it: it sits on a nesting-parent paging HWPT (its stage 2), makes nested
//! HWPTs (`IOMMU_HWPT_ALLOC` with the vIOMMU as `pt_id`) and takes cache
//! invalidations that name devices by their guest-visible IDs
//! (`IOMMU_HWPT_INVALIDATE` with the vIOMMU's ID). What it models is the
//! driver's business ([`DriverViommu`]); the core keeps the objects, their
//! users, and the table of virtual IDs the driver looks devices up in
//! ([`VdevTable`], the driver's [`ViommuCore`]).
//!
//! A vDEVICE gives one bound device a virtual ID on one vIOMMU. As in the
//! kernel: a device has at most one vDEVICE, a virtual ID names at most one
//! device per vIOMMU (both EEXIST), and the device must sit behind the vIOMMU's
//! IOMMU instance (EINVAL).
//!
//! Users: a vIOMMU uses its parent HWPT; a vDEVICE and a nested HWPT made by
//! the vIOMMU use the vIOMMU. So the parent cannot be destroyed while the vIOMMU
//! lives, nor the vIOMMU while it has vDEVICEs or nested HWPTs (EBUSY). A
//! vDEVICE does not hold its device: unbinding the device destroys the vDEVICE
//! and leaves its ID a *tombstone* — taken, but naming nothing (ENOENT), until
//! the context closes — as the kernel does since Linux 6.17.
//!
//! Locks: a [`VdevTable`]'s map is taken inside the object table lock or on its
//! own, never around it; the driver reads it during invalidation.

use super::context::{CtxInner, Iommufd, Object};
use super::device::IommufdDevice;
use super::hw_pagetable::HwptPaging;
use crate::error::{Error, Result};
use crate::iommu::{Device, DriverViommu, UserData, ViommuCore};
use softiommu_uapi::iommufd::IOMMU_VIOMMU_TYPE_DEFAULT;
use softiommu_uapi::Errno;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, Weak};

/// A vIOMMU's virtual IDs: the devices with a vDEVICE on it.
#[derive(Debug, Default)]
pub struct VdevTable {
    /// By virtual ID: the vDEVICE's object ID and its device.
    map: Mutex<BTreeMap<u64, (u32, Arc<Device>)>>,
}

impl VdevTable {
    fn map(&self) -> std::sync::MutexGuard<'_, BTreeMap<u64, (u32, Arc<Device>)>> {
        self.map.lock().expect("vIOMMU vDEVICE table poisoned")
    }

    /// Every entry: virtual ID and vDEVICE object ID.
    pub fn entries(&self) -> Vec<(u64, u32)> {
        self.map().iter().map(|(v, (id, _))| (*v, *id)).collect()
    }
}

impl ViommuCore for VdevTable {
    fn find_dev(&self, virt_id: u64) -> Option<Arc<Device>> {
        self.map().get(&virt_id).map(|(_, d)| d.clone())
    }

    fn vdev_id(&self, dev: &Device) -> Option<u64> {
        self.map()
            .iter()
            .find(|(_, (_, d))| std::ptr::eq(&**d, dev))
            .map(|(v, _)| *v)
    }
}

/// A vIOMMU.
#[derive(Debug)]
pub struct Viommu {
    /// The object ID.
    pub id: u32,
    /// Its `IOMMU_VIOMMU_TYPE_*`.
    pub viommu_type: u32,
    /// Its nesting parent (stage 2).
    pub hwpt: Arc<HwptPaging>,
    /// The device it was made for: it names the IOMMU instance.
    pub dev: Arc<Device>,
    /// The driver's side.
    pub driver: Arc<dyn DriverViommu>,
    /// Its virtual IDs.
    pub vdevs: Arc<VdevTable>,
}

impl Viommu {
    pub(crate) fn destroy(&self, ctx: &CtxInner) {
        debug_assert!(
            self.vdevs.map().is_empty(),
            "vIOMMU destroyed with vDEVICEs"
        );
        ctx.table().remove_user(self.hwpt.id);
    }
}

/// A vDEVICE: a device's virtual ID on a vIOMMU.
#[derive(Debug)]
pub struct Vdevice {
    /// The object ID.
    pub id: u32,
    /// The vIOMMU.
    pub viommu: Arc<Viommu>,
    /// The device.
    pub idev: Arc<IommufdDevice>,
    /// The guest-visible ID (vSID, vDeviceID, vRID...).
    pub virt_id: u64,
}

impl Vdevice {
    pub(crate) fn destroy(&self, ctx: &CtxInner) {
        self.viommu.vdevs.map().remove(&self.virt_id);
        self.idev.set_vdev(None);
        ctx.table().remove_user(self.viommu.id);
    }
}

impl Iommufd {
    /// Looks up the vIOMMU `id`.
    pub fn get_viommu(&self, id: u32) -> Result<Arc<Viommu>> {
        match self.table().get(id) {
            Some(Object::Viommu(v)) => Ok(v.clone()),
            _ => Err(Error::NoObject { id }),
        }
    }

    /// `IOMMU_VIOMMU_ALLOC`: a vIOMMU of `viommu_type` for the IOMMU behind the
    /// device `dev_id`, on the nesting parent `hwpt_id`, configured by the
    /// driver data at `data_uptr` (`data_len` bytes, of type `viommu_type`; none
    /// when 0). EOPNOTSUPP for flags, the default type or a type the driver
    /// does not model; ENOENT for no such device or paging HWPT; EINVAL for a
    /// HWPT that is not a nesting parent.
    pub fn viommu_alloc(
        &self,
        dev_id: u32,
        hwpt_id: u32,
        viommu_type: u32,
        flags: u32,
        data_len: u32,
        data_uptr: u64,
    ) -> Result<u32> {
        if flags != 0 || viommu_type == IOMMU_VIOMMU_TYPE_DEFAULT {
            return Err(Error::NotSupported("vIOMMU flags or type"));
        }
        let idev = self.get_device(dev_id)?;
        if !idev.dev.driver.viommu_supported(&idev.dev, viommu_type) {
            return Err(Error::NotSupported("vIOMMU type"));
        }
        let hwpt = self.get_hwpt_paging(hwpt_id)?;
        if !hwpt.flags.nest_parent || hwpt.auto_domain {
            return Err(Error::Invalid("HWPT is not a nesting parent"));
        }
        let id = self.table().reserve()?;
        let vdevs = Arc::new(VdevTable::default());
        let space = self.process().space.clone();
        let data = UserData {
            data_type: viommu_type,
            uptr: data_uptr,
            len: data_len,
            mem: &*space,
        };
        let core: Weak<dyn ViommuCore> = Arc::downgrade(&vdevs) as Weak<dyn ViommuCore>;
        let result = idev.dev.driver.viommu_alloc(
            &idev.dev,
            viommu_type,
            &hwpt.domain,
            (data_len != 0).then_some(&data),
            core,
        );
        let mut t = self.table();
        match result {
            Ok(driver) => {
                t.add_user(hwpt.id);
                let viommu = Arc::new(Viommu {
                    id,
                    viommu_type,
                    hwpt,
                    dev: idev.dev.clone(),
                    driver,
                    vdevs,
                });
                t.finalize(id, Object::Viommu(viommu));
                Ok(id)
            }
            Err(e) => {
                t.abort(id);
                Err(e)
            }
        }
    }

    /// `IOMMU_VDEVICE_ALLOC`: gives the device `dev_id` the virtual ID `virt_id`
    /// on the vIOMMU `viommu_id`. ENOENT for no such vIOMMU or device; EINVAL
    /// for a device behind another IOMMU; EEXIST when the device already has a
    /// vDEVICE or the vIOMMU already has `virt_id`.
    pub fn vdevice_alloc(&self, viommu_id: u32, dev_id: u32, virt_id: u64) -> Result<u32> {
        let viommu = self.get_viommu(viommu_id)?;
        let idev = self.get_device(dev_id)?;
        if !viommu.dev.same_iommu(&idev.dev) {
            return Err(Error::Invalid("device is behind another IOMMU"));
        }
        let exists = Error::Other {
            what: "device or virtual ID already has a vDEVICE",
            errno: Errno::EEXIST,
        };
        // The object table serialises vDEVICE creation and destruction.
        let mut t = self.table();
        if idev.vdev().is_some() {
            return Err(exists);
        }
        let id = t.reserve()?;
        {
            let mut map = viommu.vdevs.map();
            if map.contains_key(&virt_id) {
                drop(map);
                t.abort(id);
                return Err(exists);
            }
            map.insert(virt_id, (id, idev.dev.clone()));
        }
        idev.set_vdev(Some(id));
        t.add_user(viommu.id);
        let vdev = Arc::new(Vdevice {
            id,
            viommu,
            idev,
            virt_id,
        });
        t.finalize(id, Object::Vdevice(vdev));
        Ok(id)
    }
}

impl CtxInner {
    /// Destroys the vDEVICE of a device being unbound, leaving its ID a
    /// tombstone.
    pub(crate) fn vdevice_revoke(&self, idev: &IommufdDevice) {
        let Some(id) = idev.vdev() else { return };
        let obj = self.table().tombstone(id);
        match obj {
            Some(obj) => self.teardown(obj),
            None => debug_assert!(false, "device's vDEVICE missing"),
        }
    }
}
