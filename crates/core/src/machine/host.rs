//! The running host: a [`Machine`] brought up, with IOMMU groups that have DMA
//! ownership and devices that have drivers bound, as Linux's IOMMU core
//! (`iommu.c`) and driver core keep them.
//!
//! # What it owns
//!
//! [`Host::new`] instantiates the machine: one IOMMU driver per IOMMU unit
//! (VT-d or mock), an [`iommu::Device`] per PCI function (bridges included,
//! named by the BDF), a device model per emulated endpoint (`edu`), the IOMMU
//! groups of [`Machine::groups`] each with a *default domain* (a paging domain
//! of its unit's driver that the kernel's DMA API would use; it maps nothing
//! here, because no kernel driver in the model does DMA), and the driver each
//! function is bound to.
//!
//! # Ownership (the kernel's `owner` / `owner_cnt` of a group)
//!
//! A group is either used by the kernel ([`GroupOwner::Kernel`], counting the
//! bound drivers that use the default domain, as
//! `iommu_device_use_default_domain` counts them) or owned by user space
//! ([`GroupOwner::User`], an opaque cookie — the iommufd context — and a claim
//! count). [`Host::claim_dma_owner`] follows `iommu_device_claim_dma_owner`:
//! - a zero cookie is EINVAL (the kernel's NULL owner means "the kernel");
//! - the group already has users: a different owner is **EPERM** — that
//!   covers a kernel DMA driver bound to any device of the group (its owner is
//!   the kernel) and another cookie; the same cookie counts one more claim, so
//!   several devices of a group can be bound to one iommufd;
//! - the group has no users: it must be on its default domain with no PASID
//!   attached (else **EBUSY**); then every device is switched to blocking (no
//!   attachment at all) and the cookie recorded with a count of one.
//!
//! [`Host::release_dma_owner`] drops one claim; the last one puts the group
//! back on its default domain: every PASID attachment of every device goes
//! (whatever domains user space attached through iommufd) and the default
//! domain is attached again. It cannot fail halfway: nothing in it can fail.
//!
//! # Driver binding (sysfs `bind` / `unbind` / `driver_override`)
//!
//! Drivers that set `driver_managed_dma` — `vfio-pci`, `pci-stub` and
//! `pcieport` — do not use the default domain and do not count; any other
//! kernel driver does. [`Host::bind`] follows the driver core's order: no such
//! function, or a `driver_override` naming another driver, is **ENODEV**; an
//! already bound function is **EBUSY**; then `dma_configure` runs, and a DMA
//! driver into a group owned by user space is **EBUSY**
//! (`iommu_device_use_default_domain`, returned as is by `really_probe`).
//! [`Host::unbind`] of an unbound function is **ENODEV**; unbinding `vfio-pci`
//! while user space holds a claim on the device makes the kernel's `remove`
//! wait (it sends the device's request IRQ until the fds close): we cannot
//! block a caller that may be the one holding the claim, so that is **EBUSY**.
//! [`Host::driver_override`] stores the name and probes nothing.
//!
//! A function added later ([`Host::hot_add`]) joins the group Linux's
//! `pci_device_group` would give it; in a group owned by user space it gets no
//! attachment (the group is blocked) and its kernel DMA driver, if it asks for
//! one, fails to probe, so it stays unbound and isolation holds.
//!
//! # Invariants
//!
//! - `GroupOwner::Kernel { users }` equals the number of group members bound to
//!   a default-domain driver; `GroupOwner::User { count }` equals the sum of
//!   the members' claims, and is never zero. So a user-owned group never has a
//!   member on a DMA kernel driver.
//! - A group on its default domain has each member attached at `NO_PASID` to
//!   that domain and nothing else; a user-owned group's attachments belong to
//!   user space (iommufd).
//! - A call that fails changes nothing: each one checks everything first and
//!   only then writes.
//!
//! # Locks
//!
//! One mutex guards the whole host state; these are slow-path operations. It
//! is taken before a device's attachment table (the only lock it nests), and
//! never held while calling into iommufd or a device model's registers (a
//! hot-added model is constructed under it, which only starts its thread).
//!
//! Not modelled: PCI id tables (every driver matches every function unless a
//! `driver_override` says otherwise, as if `new_id` had been written, so
//! vfio-pci's override-only static id is not enforced), probe failures of the
//! drivers themselves, `drivers_probe` and autoprobe, group claims of the
//! legacy container path (`iommu_group_claim_dma_owner`), hot removal, and the
//! kernel's deferred probe.

use super::{Bdf, Driver, IommuKind, Machine, Model};
use crate::devices::edu::Edu;
use crate::devices::PciDevice;
use crate::error::{Error, Result};
use crate::iommu::dma::{AttachedDomain, Attachment, NO_PASID};
use crate::iommu::mock::MockDriver;
use crate::iommu::vtd::VtdDriver;
use crate::iommu::{self, Domain, PagingFlags};
use crate::mem::PhysMemory;
use softiommu_uapi::Errno;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

/// PASID width (log2) of an emulated `edu` behind VT-d.
const EDU_PASID_WIDTH: u32 = 20;

/// Longest `driver_override` sysfs takes (a write of `PAGE_SIZE` or more is EINVAL).
const DRIVER_OVERRIDE_MAX: usize = 4095;

/// Who a group's DMA belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GroupOwner {
    /// The kernel: the group is on its default domain and `users` bound
    /// drivers use it (the kernel's `owner == NULL`, `owner_cnt == users`).
    Kernel {
        /// Bound drivers that use the default domain.
        users: u32,
    },
    /// User space, through the owner `cookie` (an iommufd context), with
    /// `count` claims (one per device bind), never zero.
    User {
        /// The opaque owner.
        cookie: u64,
        /// Claims held.
        count: u32,
    },
}

/// The domain a group's devices are on, as far as the host knows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GroupDomain {
    /// The default domain (the kernel's DMA API).
    Default,
    /// The blocking domain installed when user space claimed the group; user
    /// space may since have attached its own domains through iommufd.
    Blocked,
}

/// A PCI function of the running host, as [`Host::device`] reports it.
#[derive(Clone, Debug)]
pub struct HostDevice {
    /// Its address.
    pub bdf: Bdf,
    /// Whether it is a bridge.
    pub bridge: bool,
    /// Its IOMMU device, named by the BDF.
    pub dev: Arc<iommu::Device>,
    /// The model that emulates it (endpoints with [`Model::Edu`]).
    pub model: Option<Arc<dyn PciDevice>>,
    /// The driver bound.
    pub driver: Driver,
    /// The driver it may only be bound to, if set (sysfs `driver_override`).
    pub driver_override: Option<String>,
    /// DMA ownership claims user space holds through this device.
    pub claims: u32,
    /// Its IOMMU group.
    pub group: u32,
}

/// An IOMMU group of the running host, as [`Host::group`] reports it.
#[derive(Clone, Debug)]
pub struct HostGroup {
    /// Its number.
    pub id: u32,
    /// Index of its IOMMU unit.
    pub unit: usize,
    /// Its members, in probe order.
    pub devices: Vec<Bdf>,
    /// Who owns its DMA.
    pub owner: GroupOwner,
    /// Which domain it is on.
    pub domain: GroupDomain,
    /// Its default domain.
    pub default_domain: Arc<dyn Domain>,
}

#[derive(Debug)]
struct DevState {
    bridge: bool,
    dev: Arc<iommu::Device>,
    model: Option<Arc<dyn PciDevice>>,
    driver: Driver,
    driver_override: Option<String>,
    claims: u32,
    group: u32,
}

#[derive(Debug)]
struct State {
    /// The machine as it is now (hot-added functions included).
    machine: Machine,
    devices: BTreeMap<Bdf, DevState>,
    groups: BTreeMap<u32, HostGroup>,
}

/// The running host. See the module documentation.
#[derive(Debug)]
pub struct Host {
    mem: Arc<dyn PhysMemory>,
    /// The driver of each IOMMU unit, by unit index.
    units: Vec<Arc<dyn iommu::Driver>>,
    /// Whether each unit is VT-d (whose device flags carry the PASID width).
    vtd: Vec<bool>,
    /// Everything that changes.
    state: Mutex<State>,
}

fn enodev(what: &'static str) -> Error {
    Error::Other {
        what,
        errno: Errno::ENODEV,
    }
}

/// The function at `bdf`; ENODEV if there is none.
fn function_mut(devices: &mut BTreeMap<Bdf, DevState>, bdf: Bdf) -> Result<&mut DevState> {
    devices.get_mut(&bdf).ok_or(enodev("no such PCI function"))
}

/// Whether a bound driver uses the group's default domain: every kernel
/// driver except those that set `driver_managed_dma`.
pub fn uses_default_domain(driver: &Driver) -> bool {
    matches!(driver, Driver::Kernel(name) if name != "pcieport")
}

fn default_attachment(domain: &Arc<dyn Domain>) -> Attachment {
    Attachment {
        domain: AttachedDomain::Paging(domain.clone()),
        iopf: None,
    }
}

impl Host {
    /// Brings `machine` up with its DMA reaching `mem`: drivers, devices,
    /// models, groups on their default domains, drivers bound as described.
    /// Fails only if a unit's driver cannot allocate a default domain.
    pub fn new(machine: Machine, mem: Arc<dyn PhysMemory>) -> Result<Arc<Host>> {
        let units: Vec<Arc<dyn iommu::Driver>> = machine
            .units()
            .iter()
            .map(|u| -> Arc<dyn iommu::Driver> {
                match &u.kind {
                    IommuKind::Vtd(caps) => VtdDriver::new(*caps, mem.clone()),
                    IommuKind::Mock => MockDriver::new(),
                }
            })
            .collect();
        let vtd = machine
            .units()
            .iter()
            .map(|u| matches!(u.kind, IommuKind::Vtd(_)))
            .collect();
        let host = Host {
            mem,
            units,
            vtd,
            state: Mutex::new(State {
                machine: machine.clone(),
                devices: BTreeMap::new(),
                groups: BTreeMap::new(),
            }),
        };
        let mut devices = BTreeMap::new();
        for b in machine.bridges() {
            let dev = host.iommu_device(b.bdf, b.unit, false);
            devices.insert(b.bdf, (true, dev, None, b.driver.clone()));
        }
        for d in machine.devices() {
            let dev = host.iommu_device(d.bdf, d.unit, d.model == Model::Edu);
            let model = host.model(d.model, &dev);
            devices.insert(d.bdf, (false, dev, model, d.driver.clone()));
        }
        let mut state = State {
            machine: machine.clone(),
            devices: BTreeMap::new(),
            groups: BTreeMap::new(),
        };
        for g in machine.groups() {
            let first = g
                .devices
                .first()
                .and_then(|b| devices.get(b))
                .expect("groups partition the machine's functions and are never empty");
            let default_domain =
                host.units[g.unit].domain_alloc_paging(&first.1, PagingFlags::default())?;
            let mut users = 0;
            for bdf in &g.devices {
                let (bridge, dev, model, driver) = devices
                    .remove(bdf)
                    .expect("groups partition the machine's functions");
                dev.set_attachment(NO_PASID, Some(default_attachment(&default_domain)));
                users += u32::from(uses_default_domain(&driver));
                state.devices.insert(
                    *bdf,
                    DevState {
                        bridge,
                        dev,
                        model,
                        driver,
                        driver_override: None,
                        claims: 0,
                        group: g.id,
                    },
                );
            }
            state.groups.insert(
                g.id,
                HostGroup {
                    id: g.id,
                    unit: g.unit,
                    devices: g.devices.clone(),
                    owner: GroupOwner::Kernel { users },
                    domain: GroupDomain::Default,
                    default_domain,
                },
            );
        }
        *host.lock() = state;
        Ok(Arc::new(host))
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn iommu_device(&self, bdf: Bdf, unit: usize, pasid: bool) -> Arc<iommu::Device> {
        let driver = self.units[unit].clone();
        let flags = if self.vtd[unit] && pasid {
            EDU_PASID_WIDTH
        } else {
            0
        };
        Arc::new(iommu::Device::new(bdf.to_string(), driver, flags))
    }

    fn model(&self, model: Model, dev: &Arc<iommu::Device>) -> Option<Arc<dyn PciDevice>> {
        match model {
            Model::Edu => Some(Edu::new(dev.clone(), self.mem.clone())),
            Model::Passive => None,
        }
    }

    /// The function at `bdf`.
    pub fn device(&self, bdf: Bdf) -> Option<HostDevice> {
        let st = self.lock();
        st.devices.get(&bdf).map(|d| snapshot(bdf, d))
    }

    /// Every function, by address.
    pub fn devices(&self) -> Vec<HostDevice> {
        let st = self.lock();
        st.devices.iter().map(|(b, d)| snapshot(*b, d)).collect()
    }

    /// The group numbered `id`.
    pub fn group(&self, id: u32) -> Option<HostGroup> {
        self.lock().groups.get(&id).cloned()
    }

    /// Every group, by number.
    pub fn groups(&self) -> Vec<HostGroup> {
        self.lock().groups.values().cloned().collect()
    }

    /// Who owns group `id`'s DMA.
    pub fn owner(&self, id: u32) -> Option<GroupOwner> {
        self.lock().groups.get(&id).map(|g| g.owner)
    }

    /// The machine as it is now, hot-added functions included.
    pub fn machine(&self) -> Machine {
        self.lock().machine.clone()
    }

    /// Whether VFIO may use group `id`: every member is unbound or bound to a
    /// driver that leaves DMA alone (`vfio-pci`, `pci-stub`, `pcieport`).
    /// VFIO's `GET_STATUS` adds its own condition (no other owner unless its
    /// container is set); this is the drivers' part. False for no such group.
    pub fn viable(&self, id: u32) -> bool {
        let st = self.lock();
        st.groups.get(&id).is_some_and(|g| {
            g.devices
                .iter()
                .filter_map(|b| st.devices.get(b))
                .all(|d| !uses_default_domain(&d.driver))
        })
    }

    /// Claims the DMA of `bdf`'s group for `cookie` (the kernel's
    /// `iommu_device_claim_dma_owner`): ENODEV without such a function, EINVAL
    /// for cookie 0, EPERM when a kernel driver or another cookie uses the
    /// group, EBUSY when an unowned group is off its default domain.
    pub fn claim_dma_owner(&self, bdf: Bdf, cookie: u64) -> Result<()> {
        let mut st = self.lock();
        let st = &mut *st;
        let dev = function_mut(&mut st.devices, bdf)?;
        if cookie == 0 {
            return Err(Error::Invalid("DMA owner cookie 0"));
        }
        let group = st
            .groups
            .get_mut(&dev.group)
            .expect("a device's group exists");
        match group.owner {
            GroupOwner::User { cookie: c, count } if c == cookie => {
                group.owner = GroupOwner::User {
                    cookie,
                    count: count + 1,
                };
            }
            GroupOwner::User { .. } => return Err(Error::Perm("group owned by another user")),
            GroupOwner::Kernel { users } if users > 0 => {
                return Err(Error::Perm("a kernel DMA driver uses the group"))
            }
            GroupOwner::Kernel { .. } => {
                let members: Vec<&Arc<iommu::Device>> =
                    group.devices.iter().map(|b| &st.devices[b].dev).collect();
                if group.domain != GroupDomain::Default
                    || members
                        .iter()
                        .any(|d| !on_default_domain(d, &group.default_domain))
                {
                    return Err(Error::Busy("group off its default domain"));
                }
                for d in members {
                    d.set_attachment(NO_PASID, None);
                }
                group.domain = GroupDomain::Blocked;
                group.owner = GroupOwner::User { cookie, count: 1 };
            }
        }
        st.devices.get_mut(&bdf).expect("looked up above").claims += 1;
        Ok(())
    }

    /// Drops one claim made through `bdf` (`iommu_device_release_dma_owner`);
    /// the last claim of the group puts it back on its default domain, every
    /// attachment user space made gone. ENODEV without such a function,
    /// EINVAL if the device holds no claim.
    pub fn release_dma_owner(&self, bdf: Bdf) -> Result<()> {
        let mut st = self.lock();
        let st = &mut *st;
        let dev = function_mut(&mut st.devices, bdf)?;
        if dev.claims == 0 {
            return Err(Error::Invalid("device holds no DMA ownership claim"));
        }
        dev.claims -= 1;
        let group = st
            .groups
            .get_mut(&dev.group)
            .expect("a device's group exists");
        let GroupOwner::User { cookie, count } = group.owner else {
            unreachable!("a claim held means the group is owned by user space");
        };
        if count > 1 {
            group.owner = GroupOwner::User {
                cookie,
                count: count - 1,
            };
            return Ok(());
        }
        for b in &group.devices {
            let d = &st.devices[b].dev;
            d.clear_attachments();
            d.set_attachment(NO_PASID, Some(default_attachment(&group.default_domain)));
        }
        group.domain = GroupDomain::Default;
        group.owner = GroupOwner::Kernel { users: 0 };
        Ok(())
    }

    /// Binds `driver` to `bdf` (sysfs `drivers/<name>/bind`): ENODEV without
    /// such a function or when its `driver_override` names another driver,
    /// EINVAL for [`Driver::None`], EBUSY when already bound or when a DMA
    /// driver would join a group user space owns.
    pub fn bind(&self, bdf: Bdf, driver: Driver) -> Result<()> {
        let mut st = self.lock();
        let st = &mut *st;
        let dev = function_mut(&mut st.devices, bdf)?;
        if driver == Driver::None {
            return Err(Error::Invalid("no driver to bind"));
        }
        if dev
            .driver_override
            .as_deref()
            .is_some_and(|o| o != driver.name())
        {
            return Err(enodev("driver_override names another driver"));
        }
        if dev.driver != Driver::None {
            return Err(Error::Busy("device already has a driver"));
        }
        let group = st
            .groups
            .get_mut(&dev.group)
            .expect("a device's group exists");
        if uses_default_domain(&driver) {
            let GroupOwner::Kernel { users } = group.owner else {
                return Err(Error::Busy("group owned by user space"));
            };
            group.owner = GroupOwner::Kernel { users: users + 1 };
        }
        dev.driver = driver;
        Ok(())
    }

    /// Unbinds `bdf`'s driver (sysfs `unbind`): ENODEV without such a function
    /// or when unbound, EBUSY for `vfio-pci` while user space holds a claim
    /// through the device (the kernel would block until it lets go).
    pub fn unbind(&self, bdf: Bdf) -> Result<()> {
        let mut st = self.lock();
        let st = &mut *st;
        let dev = function_mut(&mut st.devices, bdf)?;
        if dev.driver == Driver::None {
            return Err(enodev("device has no driver"));
        }
        if dev.driver == Driver::VfioPci && dev.claims > 0 {
            return Err(Error::Busy("vfio-pci device in use by user space"));
        }
        if uses_default_domain(&dev.driver) {
            let group = st
                .groups
                .get_mut(&dev.group)
                .expect("a device's group exists");
            let GroupOwner::Kernel { users } = group.owner else {
                unreachable!("a user-owned group has no DMA kernel driver bound");
            };
            group.owner = GroupOwner::Kernel { users: users - 1 };
        }
        dev.driver = Driver::None;
        Ok(())
    }

    /// Moves `bdf` to `driver` as a user does through sysfs: unbinds its
    /// driver (if any), then binds `driver` (unless [`Driver::None`]). The
    /// errors of [`Host::unbind`] and [`Host::bind`]; a failed bind leaves the
    /// function unbound, as it would in Linux.
    pub fn rebind(&self, bdf: Bdf, driver: Driver) -> Result<()> {
        let bound = self
            .device(bdf)
            .ok_or(enodev("no such PCI function"))?
            .driver;
        if bound != Driver::None {
            self.unbind(bdf)?;
        }
        match driver {
            Driver::None => Ok(()),
            d => self.bind(bdf, d),
        }
    }

    /// Applies `BDF=DRIVER` rebinds in order (see [`Host::rebind`]); the
    /// first that fails ends it, with its errno and what it was.
    pub fn rebind_all(&self, list: &str) -> std::result::Result<(), String> {
        for item in list.split(',').filter(|s| !s.is_empty()) {
            let (bdf, driver) = item
                .split_once('=')
                .ok_or_else(|| format!("`{item}`: not BDF=DRIVER"))?;
            let bdf: Bdf = bdf.parse().map_err(|e| format!("`{item}`: {e}"))?;
            self.rebind(bdf, Driver::from_name(driver))
                .map_err(|e| format!("`{item}`: {e}"))?;
        }
        Ok(())
    }

    /// Sets or clears (`None` or an empty name) `bdf`'s `driver_override`; a
    /// trailing newline is dropped as sysfs does. Probes nothing. ENODEV
    /// without such a function, EINVAL for a name of a page or more.
    pub fn driver_override(&self, bdf: Bdf, name: Option<String>) -> Result<()> {
        let mut st = self.lock();
        let dev = function_mut(&mut st.devices, bdf)?;
        let name = name.map(|mut n| {
            if n.ends_with('\n') {
                n.pop();
            }
            n
        });
        if name.as_ref().is_some_and(|n| n.len() > DRIVER_OVERRIDE_MAX) {
            return Err(Error::Invalid("driver_override too long"));
        }
        dev.driver_override = name.filter(|n| !n.is_empty());
        Ok(())
    }

    /// Adds an endpoint as PCI hotplug does: it joins the group Linux would
    /// give it (the group of the first existing function it cannot be told
    /// apart from, else a new group numbered after the others) and asks for
    /// `device.driver`. In a group user space owns it stays blocked, and a DMA
    /// kernel driver is refused (it stays unbound). EINVAL (from the
    /// machine's validation) for an address in use or a bad topology; the
    /// errors of the unit's driver for a new group's default domain.
    pub fn hot_add(&self, device: super::Device) -> Result<HostDevice> {
        let mut st = self.lock();
        let machine = st.machine.clone().with_device(device.clone())?;
        let formed = machine
            .group_of(device.bdf)
            .expect("every function has a group");
        let joined = formed
            .devices
            .iter()
            .find_map(|b| st.devices.get(b).map(|d| d.group));
        let dev = self.iommu_device(device.bdf, device.unit, device.model == Model::Edu);
        let model = self.model(device.model, &dev);
        let id = match joined {
            Some(id) => id,
            None => {
                let id = st.groups.keys().next_back().map_or(0, |id| id + 1);
                let default_domain =
                    self.units[device.unit].domain_alloc_paging(&dev, PagingFlags::default())?;
                st.groups.insert(
                    id,
                    HostGroup {
                        id,
                        unit: device.unit,
                        devices: Vec::new(),
                        owner: GroupOwner::Kernel { users: 0 },
                        domain: GroupDomain::Default,
                        default_domain,
                    },
                );
                id
            }
        };
        let group = st.groups.get_mut(&id).expect("found or made above");
        group.devices.push(device.bdf);
        let driver = match (&mut group.owner, uses_default_domain(&device.driver)) {
            (GroupOwner::Kernel { users }, true) => {
                *users += 1;
                device.driver.clone()
            }
            (GroupOwner::User { .. }, true) => Driver::None,
            (_, false) => device.driver.clone(),
        };
        if group.domain == GroupDomain::Default {
            dev.set_attachment(NO_PASID, Some(default_attachment(&group.default_domain)));
        }
        let state = DevState {
            bridge: false,
            dev,
            model,
            driver,
            driver_override: None,
            claims: 0,
            group: id,
        };
        let out = snapshot(device.bdf, &state);
        st.devices.insert(device.bdf, state);
        st.machine = machine;
        Ok(out)
    }
}

fn snapshot(bdf: Bdf, d: &DevState) -> HostDevice {
    HostDevice {
        bdf,
        bridge: d.bridge,
        dev: d.dev.clone(),
        model: d.model.clone(),
        driver: d.driver.clone(),
        driver_override: d.driver_override.clone(),
        claims: d.claims,
        group: d.group,
    }
}

/// Whether `dev` is attached at `NO_PASID` to `domain` and nowhere else.
fn on_default_domain(dev: &iommu::Device, domain: &Arc<dyn Domain>) -> bool {
    let at_rid = match dev.attachment(NO_PASID).map(|a| a.domain) {
        Some(AttachedDomain::Paging(d)) => Arc::ptr_eq(&d, domain),
        _ => false,
    };
    at_rid && dev.attached_pasids() == [NO_PASID]
}
