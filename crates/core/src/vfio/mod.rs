//! VFIO over a running host: the device files of functions bound to
//! `vfio-pci` (the kernel's `drivers/vfio/`: `vfio_main.c`, `device_cdev.c`,
//! `group.c`, `iommufd.c` and `pci/vfio_pci_core.c`).
//!
//! [`Vfio`] is the subsystem of one [`Host`]: every function bound to
//! `vfio-pci` is *registered* as a [`VfioDevice`] with an index `N` (its
//! `/dev/vfio/devices/vfioN`), the lowest free one, as the kernel's ida hands
//! them out; a function that leaves `vfio-pci` is unregistered. Registration
//! follows the host's drivers lazily: each lookup brings it up to date.
//!
//! A [`DeviceFile`] is one open of a device (the kernel's `vfio_device_file`).
//! Opened through the cdev it may do nothing but `VFIO_DEVICE_BIND_IOMMUFD`
//! until bound (EINVAL); binding claims the DMA of the device's group for the
//! iommufd context ([`Host::claim_dma_owner`], EPERM/EBUSY) and binds the
//! device to it, after which the device can be attached to the context's IOAS
//! and HWPTs, its regions read and written, its interrupts routed to eventfds,
//! and it can be reset. Closing the bound file detaches everything, releases
//! the claim (the group goes back to its default domain when it was the last),
//! and quiesces the device: interrupts off, bus mastering off, a function reset.
//!
//! The legacy group path (`/dev/vfio/<N>`, [`GroupFile`], see its module)
//! opens devices through a group file attached to an iommufd context instead;
//! a group's file and the cdev binds of its devices exclude each other
//! ([`Vfio::open_group`], `VFIO_DEVICE_BIND_IOMMUFD`). Either kind of device
//! file can hot-reset the bus its device is on
//! ([`DeviceFile::hot_reset`]), when it owns every function there.
//!
//! The per-device state the kernel keeps in `vfio_device` (open count, the
//! iommufd binding, the interrupt configuration) lives in [`VfioDevice`]; what
//! each open keeps (access granted, how it was opened) in [`DeviceFile`].
//!
//! Lock order: a device's `state` → the host's lock or an iommufd context's
//! locks (bind, attach, close); a device's `irqs` is a leaf, also taken by the
//! device model's thread when it raises an interrupt. The subsystem's registry
//! lock is taken before a device's `state` and never while calling into a
//! device.

mod device;
mod group;

pub use device::{DeviceFile, DeviceInfo, HotResetInfo, IrqData, IrqInfo, RegionInfo, VfioDevice};
pub use group::GroupFile;

use crate::error::{Error, Result};
use crate::machine::host::{Host, HostDevice};
use crate::machine::{Bdf, Driver};
use std::collections::BTreeMap;
use std::fmt::Debug;
use std::sync::{Arc, Mutex, MutexGuard};

/// An eventfd a program handed over (`VFIO_DEVICE_SET_IRQS`): signalling
/// adds one to its counter. The front end holds its own reference to the file
/// (the kernel's `eventfd_ctx`), dropped with this.
pub trait EventFd: Send + Sync + Debug {
    /// Signals the eventfd.
    fn signal(&self);
}

/// The VFIO subsystem of a host. See the module documentation.
#[derive(Debug)]
pub struct Vfio {
    host: Arc<Host>,
    /// Registered devices by function.
    registry: Mutex<BTreeMap<Bdf, Arc<VfioDevice>>>,
    /// Per IOMMU group: how many of its devices are bound through their cdev
    /// (the kernel's `cdev_device_open_cnt`), and whether its group file is
    /// open. Each excludes the other.
    groups: Mutex<BTreeMap<u32, GroupUse>>,
}

/// How a group is in use; see [`Vfio`]'s `groups`.
#[derive(Clone, Copy, Debug, Default)]
struct GroupUse {
    cdev_bound: u32,
    file_open: bool,
}

impl Vfio {
    /// VFIO over `host`, with every function bound to `vfio-pci` registered.
    pub fn new(host: Arc<Host>) -> Arc<Vfio> {
        let vfio = Arc::new(Vfio {
            host,
            registry: Mutex::new(BTreeMap::new()),
            groups: Mutex::new(BTreeMap::new()),
        });
        drop(vfio.sync());
        vfio
    }

    /// The host.
    pub fn host(&self) -> &Arc<Host> {
        &self.host
    }

    /// The registry, brought up to date with the host's drivers.
    fn sync(&self) -> MutexGuard<'_, BTreeMap<Bdf, Arc<VfioDevice>>> {
        let mut reg = self.registry.lock().unwrap_or_else(|e| e.into_inner());
        let functions = self.host.devices();
        reg.retain(|bdf, _| {
            functions
                .iter()
                .any(|f| f.bdf == *bdf && f.driver == Driver::VfioPci)
        });
        for f in functions {
            if f.driver != Driver::VfioPci || f.bridge || reg.contains_key(&f.bdf) {
                continue;
            }
            let mut index = 0;
            while reg.values().any(|d| d.index == index) {
                index += 1;
            }
            reg.insert(f.bdf, VfioDevice::new(&f, index));
        }
        reg
    }

    /// Every registered device, by function.
    pub fn devices(&self) -> Vec<Arc<VfioDevice>> {
        self.sync().values().cloned().collect()
    }

    /// The registered device of function `bdf`.
    pub fn device(&self, bdf: Bdf) -> Option<Arc<VfioDevice>> {
        self.sync().get(&bdf).cloned()
    }

    /// The registered device with index `index` (`vfio<index>`).
    pub fn device_by_index(&self, index: u32) -> Option<Arc<VfioDevice>> {
        self.sync().values().find(|d| d.index == index).cloned()
    }

    /// Opens `/dev/vfio/devices/vfio<index>`: ENOENT if no device has that
    /// index. Claims nothing.
    pub fn open_cdev(self: &Arc<Self>, index: u32) -> Result<DeviceFile> {
        let dev = self.device_by_index(index).ok_or(Error::Other {
            what: "no such VFIO device",
            errno: crate::uapi::Errno::ENOENT,
        })?;
        Ok(DeviceFile::new(self.clone(), dev))
    }

    /// Opens `/dev/vfio/<group>`, in the kernel's order: ENOENT when no
    /// registered device is in the group (there is no such node), EBUSY while
    /// a device of the group is bound through its cdev, EBUSY when the group
    /// is open already (its node is single-open).
    pub fn open_group(self: &Arc<Self>, group: u32) -> Result<GroupFile> {
        if !self.devices().iter().any(|d| d.group == group) {
            return Err(Error::Other {
                what: "no VFIO group",
                errno: crate::uapi::Errno::ENOENT,
            });
        }
        let mut groups = self.groups();
        let g = groups.entry(group).or_default();
        if g.cdev_bound > 0 {
            return Err(Error::Busy(
                "a device of the group is bound through its cdev",
            ));
        }
        if g.file_open {
            return Err(Error::Busy("the group is open already"));
        }
        g.file_open = true;
        Ok(GroupFile::new(self.clone(), group))
    }

    /// Undoes [`Vfio::open_group`].
    fn close_group(&self, group: u32) {
        if let Some(g) = self.groups().get_mut(&group) {
            g.file_open = false;
        }
    }

    /// The functions a hot reset of `bdf` reaches: every function on its bus
    /// (the bus reset of the bridge above it; our machines have no reset
    /// slots). ENODEV on a root bus, which no bridge can reset.
    fn reset_scope(&self, bdf: Bdf) -> Result<Vec<HostDevice>> {
        if self.host.machine().bridge_to(bdf.bus()).is_none() {
            return Err(Error::Other {
                what: "no bridge can reset the bus",
                errno: crate::uapi::Errno::ENODEV,
            });
        }
        let mut scope = self.host.devices();
        scope.retain(|f| f.bdf.bus() == bdf.bus());
        Ok(scope)
    }

    fn groups(&self) -> MutexGuard<'_, BTreeMap<u32, GroupUse>> {
        self.groups.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A device of `group` is being bound through its cdev: EBUSY while the
    /// group's file is open (`vfio_device_block_group`).
    fn block_group(&self, group: u32) -> Result<()> {
        let mut groups = self.groups();
        let g = groups.entry(group).or_default();
        if g.file_open {
            return Err(Error::Busy("the device's group file is open"));
        }
        g.cdev_bound += 1;
        Ok(())
    }

    /// Undoes [`Vfio::block_group`].
    fn unblock_group(&self, group: u32) {
        if let Some(g) = self.groups().get_mut(&group) {
            g.cdev_bound = g.cdev_bound.saturating_sub(1);
        }
    }

    /// Whether `dev` is still registered (not unbound from `vfio-pci` since).
    fn registered(&self, dev: &VfioDevice) -> bool {
        self.sync()
            .get(&dev.bdf)
            .is_some_and(|d| std::ptr::eq(&**d, dev))
    }
}
