//! KVM's VFIO pseudo-device, as far as it concerns DMA coherency (the kernel's
//! `virt/kvm/vfio.c`): a stand-in for the `kvm-vfio` device that a VMM creates
//! in its VM (`KVM_CREATE_DEVICE`, type `KVM_DEV_TYPE_VFIO`) and tells about
//! each VFIO file it gives the guest (`KVM_DEV_VFIO_FILE_ADD`/`_DEL`).
//!
//! There is no hypervisor here; what we keep is the state a VMM can observe or
//! a test can check. A [`Kvm`] is one VM as far as this module knows it: it may
//! have one [`KvmVfio`] device at a time (EBUSY for a second), and it counts
//! *non-coherent DMA* registrations, the kernel's
//! `kvm_arch_register_noncoherent_dma` / `_unregister_`: on x86 they decide
//! whether the guest's WBINVD is honoured and whether EPT follows the guest's
//! memory types.
//!
//! A [`KvmVfio`] keeps the files added to it, identified by the open file
//! itself (the same open file twice is EEXIST, whichever descriptor names
//! it). The VM may see non-coherent DMA iff any tracked file is not
//! *enforced-coherent* ([`VfioFile::enforced_coherent`]: for a device file,
//! whether its IOMMU can force every DMA to snoop the CPU caches, the kernel's
//! `IOMMU_CAP_ENFORCE_CACHE_COHERENCY`). The VM's registration changes only when
//! that aggregate flips, so one add of a non-coherent device registers once,
//! however many more follow. Dropping the device (its file's last close)
//! removes every file and unregisters if it had registered.
//!
//! Which files are VFIO files is the front end's to say (the abi layer refuses
//! the others with EINVAL before they get here); this module sees them only
//! through [`VfioFile`]. What the kernel also does on add — hand the VM to VFIO
//! for the device's later bind — has no effect in a model without a guest, and
//! is not done.
//!
//! Locks: a device's `files` is taken before its VM's `state`; neither is held
//! while calling anything outside this module except
//! [`VfioFile::enforced_coherent`] and the VM's notifier.

use crate::error::{Error, Result};
use crate::vfio::{DeviceFile, GroupFile};
use softiommu_uapi::Errno;
use std::any::Any;
use std::fmt::Debug;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

/// A file that may be added to a [`KvmVfio`]: a VFIO group or device file.
pub trait VfioFile: Send + Sync + Debug {
    /// Whether every DMA of every device behind the file is forced cache
    /// coherent by its IOMMU (the kernel's `vfio_file_enforced_coherent`).
    fn enforced_coherent(&self) -> bool;
}

impl VfioFile for DeviceFile {
    /// A device file: whether the device's IOMMU can enforce cache coherency.
    fn enforced_coherent(&self) -> bool {
        let dev = &self.device().dev;
        dev.driver.enforce_cache_coherency_capable(dev)
    }
}

impl VfioFile for GroupFile {
    /// A group file: whether the IOMMU of every VFIO device in the group can
    /// enforce cache coherency.
    fn enforced_coherent(&self) -> bool {
        self.devices().iter().all(|d| {
            let dev = &d.dev;
            dev.driver.enforce_cache_coherency_capable(dev)
        })
    }
}

/// Called with `true` when a VM registers non-coherent DMA, `false` when it
/// unregisters.
pub type CoherencyNotify = Box<dyn Fn(bool) + Send + Sync>;

/// A VM, as the kvm-vfio device sees it. See the module documentation.
pub struct Kvm {
    /// Guards the VM's device and coherency state.
    state: Mutex<KvmState>,
    /// Whatever the front end keeps with the VM (its identity, a reference to
    /// the VM's file); dropped with the VM.
    anchor: OnceLock<Box<dyn Any + Send + Sync>>,
    /// Told of each registration change.
    notify: OnceLock<CoherencyNotify>,
}

#[derive(Debug, Default)]
struct KvmState {
    /// A kvm-vfio device of this VM is alive.
    has_vfio: bool,
    /// Non-coherent DMA registrations in force (the kernel's
    /// `noncoherent_dma_count`).
    noncoherent_dma: u32,
    /// Registrations ever made.
    registered: u64,
    /// Unregistrations ever made.
    unregistered: u64,
}

impl Debug for Kvm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Kvm")
            .field("state", &*self.state())
            .finish()
    }
}

/// How many times a VM's non-coherent DMA registration changed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Flips {
    /// Registrations (`kvm_arch_register_noncoherent_dma`).
    pub registered: u64,
    /// Unregistrations (`kvm_arch_unregister_noncoherent_dma`).
    pub unregistered: u64,
}

impl Kvm {
    /// A VM without devices.
    pub fn new() -> Arc<Kvm> {
        Arc::new(Kvm {
            state: Mutex::default(),
            anchor: OnceLock::new(),
            notify: OnceLock::new(),
        })
    }

    fn state(&self) -> MutexGuard<'_, KvmState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Keeps `anchor` with the VM until it is dropped; false (and `anchor`
    /// dropped) if the VM already has one.
    pub fn set_anchor(&self, anchor: Box<dyn Any + Send + Sync>) -> bool {
        self.anchor.set(anchor).is_ok()
    }

    /// What [`Kvm::set_anchor`] kept.
    pub fn anchor(&self) -> Option<&(dyn Any + Send + Sync)> {
        self.anchor.get().map(|a| &**a)
    }

    /// Calls `notify` on each later registration change; false (and nothing
    /// changed) if the VM already has a notifier.
    pub fn set_notify(&self, notify: CoherencyNotify) -> bool {
        self.notify.set(notify).is_ok()
    }

    /// Whether the VM has non-coherent DMA registered.
    pub fn noncoherent_dma(&self) -> bool {
        self.state().noncoherent_dma > 0
    }

    /// How many times the registration changed.
    pub fn flips(&self) -> Flips {
        let s = self.state();
        Flips {
            registered: s.registered,
            unregistered: s.unregistered,
        }
    }

    /// Whether a kvm-vfio device of this VM is alive.
    pub fn has_vfio_device(&self) -> bool {
        self.state().has_vfio
    }

    /// Creates the VM's kvm-vfio device (`KVM_CREATE_DEVICE`); EBUSY while
    /// another one is alive. The device holds the VM.
    pub fn create_vfio_device(self: &Arc<Self>) -> Result<KvmVfio> {
        let mut s = self.state();
        if s.has_vfio {
            return Err(Error::Busy("the VM already has a kvm-vfio device"));
        }
        s.has_vfio = true;
        Ok(KvmVfio {
            kvm: self.clone(),
            files: Mutex::default(),
        })
    }

    fn register_noncoherent_dma(&self, register: bool) {
        {
            let mut s = self.state();
            if register {
                s.noncoherent_dma += 1;
                s.registered += 1;
            } else {
                s.noncoherent_dma = s.noncoherent_dma.saturating_sub(1);
                s.unregistered += 1;
            }
        }
        if let Some(notify) = self.notify.get() {
            notify(register);
        }
    }
}

/// The kvm-vfio device of a VM. See the module documentation. Dropping it is
/// the device file's last close (the kernel's `kvm_vfio_release`).
#[derive(Debug)]
pub struct KvmVfio {
    kvm: Arc<Kvm>,
    /// Guards the tracked files and the device's coherency view.
    files: Mutex<Files>,
}

#[derive(Debug, Default)]
struct Files {
    list: Vec<Arc<dyn VfioFile>>,
    /// The device has registered non-coherent DMA with the VM.
    noncoherent: bool,
}

/// The open file behind `f`, as an address: what makes two references the
/// same file.
fn identity(f: &Arc<dyn VfioFile>) -> *const () {
    Arc::as_ptr(f).cast()
}

impl KvmVfio {
    /// The VM.
    pub fn kvm(&self) -> &Arc<Kvm> {
        &self.kvm
    }

    fn files(&self) -> MutexGuard<'_, Files> {
        self.files.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// `KVM_DEV_VFIO_FILE_ADD`: tracks `file`, keeping a reference to it;
    /// EEXIST if that open file is already tracked.
    pub fn file_add(&self, file: Arc<dyn VfioFile>) -> Result<()> {
        let mut files = self.files();
        if files.list.iter().any(|f| identity(f) == identity(&file)) {
            return Err(Error::Exists);
        }
        files.list.push(file);
        self.update_coherency(&mut files);
        Ok(())
    }

    /// `KVM_DEV_VFIO_FILE_DEL`: stops tracking `file` and drops the device's
    /// reference; ENOENT if it is not tracked.
    pub fn file_del(&self, file: &Arc<dyn VfioFile>) -> Result<()> {
        let mut files = self.files();
        let at = files
            .list
            .iter()
            .position(|f| identity(f) == identity(file));
        let removed = at.map(|i| files.list.remove(i));
        // As the kernel does, recompute even when nothing was removed.
        self.update_coherency(&mut files);
        drop(files);
        // The file's own close may run here; no lock of ours is held.
        match removed {
            Some(_) => Ok(()),
            None => Err(Error::Other {
                what: "file not added to the kvm-vfio device",
                errno: Errno::ENOENT,
            }),
        }
    }

    /// How many files are tracked.
    pub fn file_count(&self) -> usize {
        self.files().list.len()
    }

    /// Whether non-coherent DMA is possible in the VM through this device's
    /// files: any tracked file is not enforced-coherent.
    pub fn noncoherent(&self) -> bool {
        self.files().noncoherent
    }

    /// How many times the VM's registration changed (see [`Kvm::flips`]).
    pub fn flips(&self) -> Flips {
        self.kvm.flips()
    }

    fn update_coherency(&self, files: &mut Files) {
        let noncoherent = files.list.iter().any(|f| !f.enforced_coherent());
        if noncoherent != files.noncoherent {
            files.noncoherent = noncoherent;
            self.kvm.register_noncoherent_dma(noncoherent);
        }
    }
}

impl Drop for KvmVfio {
    fn drop(&mut self) {
        let list = {
            let mut files = self.files();
            let list = std::mem::take(&mut files.list);
            self.update_coherency(&mut files);
            list
        };
        drop(list);
        self.kvm.state().has_vfio = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct Fake(bool);

    impl VfioFile for Fake {
        fn enforced_coherent(&self) -> bool {
            self.0
        }
    }

    #[test]
    fn flips_only_when_the_aggregate_changes() {
        let kvm = Kvm::new();
        let dev = kvm.create_vfio_device().unwrap();
        let coherent: Arc<dyn VfioFile> = Arc::new(Fake(true));
        let a: Arc<dyn VfioFile> = Arc::new(Fake(false));
        let b: Arc<dyn VfioFile> = Arc::new(Fake(false));
        dev.file_add(coherent.clone()).unwrap();
        assert!(!dev.noncoherent());
        dev.file_add(a.clone()).unwrap();
        dev.file_add(b.clone()).unwrap();
        assert!(dev.noncoherent() && kvm.noncoherent_dma());
        assert_eq!(
            kvm.flips(),
            Flips {
                registered: 1,
                unregistered: 0
            }
        );
        assert_eq!(dev.file_add(a.clone()), Err(Error::Exists));
        dev.file_del(&a).unwrap();
        assert!(dev.noncoherent());
        assert_eq!(dev.file_del(&a).unwrap_err().errno(), Errno::ENOENT);
        dev.file_del(&b).unwrap();
        assert!(!dev.noncoherent() && !kvm.noncoherent_dma());
        assert_eq!(
            kvm.flips(),
            Flips {
                registered: 1,
                unregistered: 1
            }
        );
    }

    #[test]
    fn one_device_per_vm_until_it_is_dropped_which_clears_it() {
        let kvm = Kvm::new();
        let dev = kvm.create_vfio_device().unwrap();
        assert_eq!(kvm.create_vfio_device().unwrap_err().errno(), Errno::EBUSY);
        let a: Arc<dyn VfioFile> = Arc::new(Fake(false));
        dev.file_add(a.clone()).unwrap();
        assert_eq!(Arc::strong_count(&a), 2);
        drop(dev);
        assert_eq!(Arc::strong_count(&a), 1);
        assert!(!kvm.noncoherent_dma());
        assert_eq!(
            kvm.flips(),
            Flips {
                registered: 1,
                unregistered: 1
            }
        );
        kvm.create_vfio_device().unwrap();
    }
}
