//! The iommufd context: one per open of `/dev/iommu` (the kernel's `main.c`).
//!
//! A context owns an object table. IDs are handed out lowest-free first from 1, as
//! the kernel's xarray allocator does. Creation is two-phase: [`Table::reserve`]
//! takes an ID that lookups cannot see, [`Table::finalize`] publishes the object,
//! [`Table::abort`] gives the ID back — so a creation that fails half-way leaves
//! nothing. Each entry counts its *users*: other objects that depend on it (a HWPT
//! on its IOAS, a nested HWPT on its parent, a device on its HWPT, an access on its IOAS, a HWPT and an open fault file on a fault queue, a vIOMMU on its parent, a
//! vDEVICE or nested HWPT on its vIOMMU). `destroy` refuses with EBUSY while
//! there are users. A *tombstone* is an ID that stays taken but names nothing
//! (a vDEVICE whose device was unbound): lookups and `destroy` give ENOENT.
//!
//! Closing the context — dropping the last [`Iommufd`] handle and every handle that
//! keeps the context alive (access handles) — destroys every object, dependents
//! first.
//!
//! Lock order (outermost first): the object table (never held across other
//! locks' acquisition except to read an entry) → an access's state → an IOAS's
//! attach lock → an IOAS's page table → a `Pages` → the pin table / a domain.

use super::device::{Access, IommufdDevice};
use super::fault::Fault;
use super::hw_pagetable::{HwptNested, HwptPaging};
use super::ioas::Ioas;
use super::selftest::MockDev;
use super::viommu::{Vdevice, Viommu};
use crate::error::{Error, Result};
use crate::inject;
use crate::mem::{AccountMode, Process};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, MutexGuard};

/// An object in a context's table.
#[derive(Clone, Debug)]
pub enum Object {
    /// An IO address space.
    Ioas(Arc<Ioas>),
    /// A paging hardware page table.
    HwptPaging(Arc<HwptPaging>),
    /// A nested hardware page table.
    HwptNested(Arc<HwptNested>),
    /// A device bound to the context.
    Device(Arc<IommufdDevice>),
    /// An access (an emulated device's window on an IOAS).
    Access(Arc<Access>),
    /// A selftest mock device (`MOCK_DOMAIN`'s stdev).
    Selftest(Arc<MockDev>),
    /// A fault queue (`IOMMU_FAULT_QUEUE_ALLOC`).
    Fault(Arc<Fault>),
    /// A vIOMMU (`IOMMU_VIOMMU_ALLOC`).
    Viommu(Arc<Viommu>),
    /// A vDEVICE (`IOMMU_VDEVICE_ALLOC`).
    Vdevice(Arc<Vdevice>),
}

impl Object {
    /// The kernel's name for the object's type.
    pub fn type_name(&self) -> &'static str {
        match self {
            Object::Ioas(_) => "IOAS",
            Object::HwptPaging(_) => "HWPT_PAGING",
            Object::HwptNested(_) => "HWPT_NESTED",
            Object::Device(_) => "DEVICE",
            Object::Access(_) => "ACCESS",
            Object::Selftest(_) => "SELFTEST",
            Object::Fault(_) => "FAULT",
            Object::Viommu(_) => "VIOMMU",
            Object::Vdevice(_) => "VDEVICE",
        }
    }
}

#[derive(Debug)]
struct Entry {
    /// `None` while reserved and not yet published.
    obj: Option<Object>,
    users: u32,
}

/// The object table.
#[derive(Debug, Default)]
pub struct Table {
    entries: BTreeMap<u32, Entry>,
    /// IDs below `next` that are free again.
    free: BTreeSet<u32>,
    next: u32,
}

impl Table {
    /// Takes the lowest free ID for an object about to be created.
    pub fn reserve(&mut self) -> Result<u32> {
        inject::point("object alloc")?;
        let id = match self.free.pop_first() {
            Some(id) => id,
            None => {
                if self.next >= i32::MAX as u32 {
                    return Err(Error::NoSpace);
                }
                self.next += 1;
                self.next
            }
        };
        self.entries.insert(
            id,
            Entry {
                obj: None,
                users: 0,
            },
        );
        Ok(id)
    }

    /// Publishes a reserved ID.
    pub fn finalize(&mut self, id: u32, obj: Object) {
        let e = self
            .entries
            .get_mut(&id)
            .expect("finalizing an ID that was not reserved");
        debug_assert!(e.obj.is_none());
        e.obj = Some(obj);
    }

    /// Gives a reserved ID back.
    pub fn abort(&mut self, id: u32) {
        let e = self.entries.remove(&id);
        debug_assert!(
            matches!(
                e,
                Some(Entry {
                    obj: None,
                    users: 0
                })
            ),
            "aborting a published object"
        );
        self.release_id(id);
    }

    fn release_id(&mut self, id: u32) {
        if id == self.next {
            self.next -= 1;
            while self.free.last() == Some(&self.next) {
                self.free.pop_last();
                self.next -= 1;
            }
        } else {
            self.free.insert(id);
        }
    }

    /// Takes the published, unused object `id` out and leaves its ID taken
    /// but naming nothing until the table goes.
    pub fn tombstone(&mut self, id: u32) -> Option<Object> {
        match self.entries.get_mut(&id) {
            Some(e) if e.users == 0 => e.obj.take(),
            _ => None,
        }
    }

    /// The published object `id`.
    pub fn get(&self, id: u32) -> Option<&Object> {
        self.entries.get(&id).and_then(|e| e.obj.as_ref())
    }

    /// Counts one more user of `id`.
    pub fn add_user(&mut self, id: u32) {
        if let Some(e) = self.entries.get_mut(&id) {
            e.users += 1;
        }
    }

    /// Counts one user of `id` less.
    pub fn remove_user(&mut self, id: u32) {
        if let Some(e) = self.entries.get_mut(&id) {
            debug_assert!(e.users > 0, "user count underflow");
            e.users = e.users.saturating_sub(1);
        }
    }

    /// The users of `id`.
    pub fn users(&self, id: u32) -> u32 {
        self.entries.get(&id).map_or(0, |e| e.users)
    }

    /// Removes `id` if it is published and unused: ENOENT, EBUSY otherwise.
    pub fn remove(&mut self, id: u32) -> Result<Object> {
        match self.entries.get(&id) {
            Some(Entry {
                obj: Some(_),
                users: 0,
            }) => {}
            Some(Entry { obj: Some(_), .. }) => return Err(Error::Busy("object in use")),
            _ => return Err(Error::NoObject { id }),
        }
        let obj = self
            .entries
            .remove(&id)
            .and_then(|e| e.obj)
            .expect("entry just checked");
        self.release_id(id);
        Ok(obj)
    }

    /// Every published object with its ID and users.
    pub fn objects(&self) -> Vec<(u32, Object, u32)> {
        self.entries
            .iter()
            .filter_map(|(id, e)| e.obj.clone().map(|o| (*id, o, e.users)))
            .collect()
    }

    /// Whether the table holds nothing, reserved entries included.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// The state of one context.
#[derive(Debug)]
pub struct CtxInner {
    pub(crate) table: Mutex<Table>,
    /// The process calling into the context (the kernel's `current`).
    pub(crate) process: Mutex<Arc<Process>>,
    pub(crate) account_mode: Mutex<AccountMode>,
    /// The IOAS the VFIO compatibility ioctls act on (`IOMMU_VFIO_IOAS`);
    /// cleared when that IOAS is destroyed. Taken after the object table.
    pub(crate) vfio_ioas: Mutex<Option<u32>>,
}

/// A handle on an iommufd context: what an open `/dev/iommu` file is.
///
/// Clones share the context (as `dup`ed file descriptors do). The context is
/// closed when the last handle, and the last access handle, is dropped.
#[derive(Clone, Debug)]
pub struct Iommufd {
    pub(crate) inner: Arc<CtxInner>,
}

impl Iommufd {
    /// Opens a context for `process`.
    pub fn open(process: &Arc<Process>) -> Iommufd {
        Iommufd {
            inner: Arc::new(CtxInner {
                table: Mutex::new(Table::default()),
                process: Mutex::new(process.clone()),
                account_mode: Mutex::new(AccountMode::User),
                vfio_ioas: Mutex::new(None),
            }),
        }
    }

    pub(crate) fn table(&self) -> MutexGuard<'_, Table> {
        self.inner.table()
    }

    /// The process calling into the context.
    pub fn process(&self) -> Arc<Process> {
        self.inner
            .process
            .lock()
            .expect("context lock poisoned")
            .clone()
    }

    /// Makes `process` the caller of later calls (a forked child using an
    /// inherited descriptor).
    pub fn set_process(&self, process: &Arc<Process>) {
        *self.inner.process.lock().expect("context lock poisoned") = process.clone();
    }

    /// Every object with its ID and its number of users.
    pub fn objects(&self) -> Vec<(u32, Object, u32)> {
        self.table().objects()
    }

    /// Looks up the IOAS `id`.
    pub fn get_ioas(&self, id: u32) -> Result<Arc<Ioas>> {
        match self.table().get(id) {
            Some(Object::Ioas(i)) => Ok(i.clone()),
            _ => Err(Error::NoObject { id }),
        }
    }

    /// Looks up the paging HWPT `id`.
    pub fn get_hwpt_paging(&self, id: u32) -> Result<Arc<HwptPaging>> {
        match self.table().get(id) {
            Some(Object::HwptPaging(h)) => Ok(h.clone()),
            _ => Err(Error::NoObject { id }),
        }
    }

    /// Looks up the nested HWPT `id`.
    pub fn get_hwpt_nested(&self, id: u32) -> Result<Arc<HwptNested>> {
        match self.table().get(id) {
            Some(Object::HwptNested(h)) => Ok(h.clone()),
            _ => Err(Error::NoObject { id }),
        }
    }

    /// Looks up the bound device `id`.
    pub fn get_device(&self, id: u32) -> Result<Arc<IommufdDevice>> {
        match self.table().get(id) {
            Some(Object::Device(d)) => Ok(d.clone()),
            _ => Err(Error::NoObject { id }),
        }
    }

    /// Looks up the selftest mock device `id`.
    pub fn get_mock_dev(&self, id: u32) -> Result<Arc<MockDev>> {
        match self.table().get(id) {
            Some(Object::Selftest(m)) => Ok(m.clone()),
            _ => Err(Error::NoObject { id }),
        }
    }

    /// `IOMMU_DESTROY`: destroys object `id`. EBUSY while others depend on it.
    pub fn destroy(&self, id: u32) -> Result<()> {
        let obj = {
            let mut t = self.table();
            if matches!(t.get(id), Some(Object::Access(_))) && t.users(id) > 0 {
                return Err(Error::Busy("access in use by its owner"));
            }
            t.remove(id)?
        };
        self.inner.teardown(obj);
        Ok(())
    }
}

impl CtxInner {
    pub(crate) fn table(&self) -> MutexGuard<'_, Table> {
        self.table.lock().expect("object table poisoned")
    }

    /// Releases what an object removed from the table holds.
    pub(crate) fn teardown(&self, obj: Object) {
        match obj {
            Object::Ioas(ioas) => {
                let mut compat = self.vfio_ioas.lock().expect("context lock poisoned");
                if *compat == Some(ioas.id) {
                    *compat = None;
                }
                drop(compat);
                ioas.destroy()
            }
            Object::HwptPaging(hwpt) => hwpt.destroy(self),
            Object::HwptNested(hwpt) => hwpt.destroy(self),
            Object::Device(idev) => idev.destroy(self),
            Object::Access(access) => access.destroy(self),
            Object::Selftest(mock) => mock.destroy(self),
            Object::Fault(fault) => fault.destroy(self),
            Object::Viommu(viommu) => viommu.destroy(self),
            Object::Vdevice(vdev) => vdev.destroy(self),
        }
    }
}

impl Drop for CtxInner {
    fn drop(&mut self) {
        // Destroy dependents first: whatever has no users can go, and its going
        // frees the users of what it depended on.
        loop {
            let objects = self.table().objects();
            if objects.is_empty() {
                break;
            }
            let mut progress = false;
            for (id, obj, users) in objects {
                let obj_is_owned_access = matches!(obj, Object::Access(_)) && users > 0;
                if users > 0 && !obj_is_owned_access {
                    continue;
                }
                let removed = {
                    let mut t = self.table();
                    while t.users(id) > 0 {
                        t.remove_user(id);
                    }
                    t.remove(id)
                };
                if let Ok(obj) = removed {
                    self.teardown(obj);
                    progress = true;
                }
            }
            if !progress {
                debug_assert!(false, "object dependency cycle at close");
                break;
            }
        }
    }
}
