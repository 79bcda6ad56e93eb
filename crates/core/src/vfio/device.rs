//! A registered device and its open files: binding, attachment, regions,
//! interrupts and reset, as vfio-pci answers them.
//!
//! # Regions
//!
//! vfio-pci's nine fixed regions: BARs 0-5, the expansion ROM, configuration
//! space and VGA. Region `i` starts at `i << 40` in the device file; a BAR the
//! model does not have, the ROM and VGA have size 0 and no flags. BARs and
//! configuration space are read and written (not mapped: the MMAP flag is
//! never set, so clients use `pread`/`pwrite`, as they do for BARs that
//! cannot be mapped). As `vfio_pci_rdwr.c` and `vfio_pci_config.c` have it:
//! a BAR access is split into naturally aligned pieces of at most 8 bytes; one
//! starting at or past the BAR's end is EINVAL, one running over it is cut
//! short, and while the command register's memory-enable bit is clear it is
//! EIO. A configuration access is split into pieces of at most 4 bytes; one
//! that does not lie wholly inside configuration space is EFAULT. The first
//! open enables memory decoding (`pci_enable_device`); a reset keeps the
//! configuration the program set (the PCI core saves and restores it).
//!
//! # Interrupts
//!
//! Five indexes: INTx (one line when the model has an interrupt pin; level,
//! masked when it fires until user space unmasks it), MSI (the model's
//! vectors), MSI-X (none), ERR (none: our functions are conventional PCI) and
//! REQ (one). At most one of INTx, MSI and MSI-X is enabled at a time. The
//! rules of `VFIO_DEVICE_SET_IRQS` are those of `vfio_set_irqs_validate_and_prepare`
//! and `vfio_pci_intrs.c`, in their order; see [`DeviceFile::set_irqs`].

use super::{EventFd, Vfio};
use crate::devices::{cfg, PciDevice};
use crate::error::{Error, Result};
use crate::iommu::dma::NO_PASID;
use crate::iommu::Device;
use crate::iommufd::{Iommufd, IommufdDevice};
use crate::machine::host::HostDevice;
use crate::machine::Bdf;
use crate::uapi::vfio::*;
use crate::uapi::Errno;
use std::collections::BTreeSet;
use std::sync::{Arc, Mutex, MutexGuard, Weak};

/// Configuration space offset of the interrupt pin (u8).
const INTERRUPT_PIN: u32 = 0x3d;
/// Size of the configuration space region.
const CONFIG_REGION_SIZE: u64 = 256;

fn errno(what: &'static str, errno: Errno) -> Error {
    Error::Other { what, errno }
}

/// A function registered with VFIO (the kernel's `vfio_device`).
#[derive(Debug)]
pub struct VfioDevice {
    /// The function.
    pub bdf: Bdf,
    /// Its index: the `N` of `/dev/vfio/devices/vfioN`.
    pub index: u32,
    /// Its IOMMU group.
    pub group: u32,
    /// Its IOMMU device.
    pub dev: Arc<Device>,
    /// The model behind it, if it is emulated.
    pub model: Option<Arc<dyn PciDevice>>,
    state: Mutex<DevState>,
    irqs: Mutex<Irqs>,
}

#[derive(Debug, Default)]
struct DevState {
    /// Opens that were granted access (a bound cdev counts one).
    open_count: u32,
    /// The iommufd binding, while open.
    bound: Option<Bound>,
}

#[derive(Debug)]
struct Bound {
    ctx: Iommufd,
    idev: Arc<IommufdDevice>,
    /// PASIDs attached through this binding.
    pasids: BTreeSet<u32>,
}

/// Which of INTx, MSI and MSI-X is enabled.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
enum IrqType {
    #[default]
    None,
    Intx,
    Msi,
    Msix,
}

#[derive(Debug, Default)]
struct Irqs {
    kind: IrqType,
    /// One trigger per enabled vector (INTx: one).
    vectors: Vec<Option<Arc<dyn EventFd>>>,
    /// INTx is masked (by user space, or automatically when it fired).
    masked: bool,
    /// INTx fired while masked.
    pending: bool,
    err: Option<Arc<dyn EventFd>>,
    req: Option<Arc<dyn EventFd>>,
}

/// What `VFIO_DEVICE_GET_INFO` reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DeviceInfo {
    /// `VFIO_DEVICE_FLAGS_*`.
    pub flags: u32,
    /// Number of regions.
    pub num_regions: u32,
    /// Number of interrupt indexes.
    pub num_irqs: u32,
}

/// What `VFIO_DEVICE_GET_REGION_INFO` reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RegionInfo {
    /// `VFIO_REGION_INFO_FLAG_*`.
    pub flags: u32,
    /// Size in bytes.
    pub size: u64,
    /// Where it starts in the device file.
    pub offset: u64,
}

/// What `VFIO_DEVICE_GET_IRQ_INFO` reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IrqInfo {
    /// `VFIO_IRQ_INFO_*`.
    pub flags: u32,
    /// Number of interrupts.
    pub count: u32,
}

/// The data of a `VFIO_DEVICE_SET_IRQS`.
#[derive(Debug)]
pub enum IrqData {
    /// `VFIO_IRQ_SET_DATA_NONE`.
    None,
    /// `VFIO_IRQ_SET_DATA_BOOL`: one per interrupt.
    Bool(Vec<bool>),
    /// `VFIO_IRQ_SET_DATA_EVENTFD`: one per interrupt, `None` for -1.
    Eventfd(Vec<Option<Arc<dyn EventFd>>>),
}

impl VfioDevice {
    pub(super) fn new(f: &HostDevice, index: u32) -> Arc<VfioDevice> {
        let vdev = Arc::new(VfioDevice {
            bdf: f.bdf,
            index,
            group: f.group,
            dev: f.dev.clone(),
            model: f.model.clone(),
            state: Mutex::default(),
            irqs: Mutex::default(),
        });
        if let Some(model) = &vdev.model {
            let weak: Weak<VfioDevice> = Arc::downgrade(&vdev);
            model.set_irq_sink(Some(Arc::new(move |vector| {
                if let Some(v) = weak.upgrade() {
                    v.raise(vector);
                }
            })));
        }
        vdev
    }

    fn state(&self) -> MutexGuard<'_, DevState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn irqs(&self) -> MutexGuard<'_, Irqs> {
        self.irqs.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The iommufd device ID and context the device is bound to, if it is.
    pub fn binding(&self) -> Option<(Iommufd, u32)> {
        self.state()
            .bound
            .as_ref()
            .map(|b| (b.ctx.clone(), b.idev.id))
    }

    /// Whether any open of the device has access (a bound cdev or a group fd).
    pub fn is_open(&self) -> bool {
        self.state().open_count > 0
    }

    /// The model's interrupt `vector` fired.
    fn raise(&self, vector: u32) {
        let mut irqs = self.irqs();
        match irqs.kind {
            IrqType::Intx => {
                if irqs.masked {
                    irqs.pending = true;
                    return;
                }
                irqs.masked = true;
                if let Some(Some(t)) = irqs.vectors.first() {
                    t.signal();
                }
            }
            IrqType::Msi | IrqType::Msix => {
                if let Some(Some(t)) = irqs.vectors.get(vector as usize) {
                    t.signal();
                }
            }
            IrqType::None => {}
        }
    }

    /// Number of interrupts at `index` (the kernel's `vfio_pci_get_irq_count`).
    fn irq_count(&self, index: u32) -> u32 {
        let Some(model) = &self.model else {
            return u32::from(index == VFIO_PCI_REQ_IRQ_INDEX);
        };
        match index {
            VFIO_PCI_INTX_IRQ_INDEX => {
                let mut pin = [0u8];
                model.config_read(INTERRUPT_PIN, &mut pin);
                u32::from(pin[0] != 0)
            }
            VFIO_PCI_MSI_IRQ_INDEX => model.irq_count(),
            VFIO_PCI_REQ_IRQ_INDEX => 1,
            _ => 0,
        }
    }

    fn region(&self, index: u32) -> Result<RegionInfo> {
        if index >= VFIO_PCI_NUM_REGIONS {
            return Err(Error::Invalid("no such region"));
        }
        let offset = u64::from(index) << VFIO_PCI_OFFSET_SHIFT;
        let rw = VFIO_REGION_INFO_FLAG_READ | VFIO_REGION_INFO_FLAG_WRITE;
        let size = match index {
            VFIO_PCI_CONFIG_REGION_INDEX => CONFIG_REGION_SIZE,
            i if i <= VFIO_PCI_BAR5_REGION_INDEX => self
                .model
                .as_ref()
                .and_then(|m| m.bars().into_iter().find(|b| b.index == i))
                .map_or(0, |b| b.size),
            _ => 0,
        };
        let flags = if size > 0 { rw } else { 0 };
        Ok(RegionInfo {
            flags,
            size,
            offset,
        })
    }

    /// The part of a region an access of `len` bytes at file position `pos`
    /// reaches: the model, the region index, the offset in it and the length.
    fn region_span(&self, pos: u64, len: usize) -> Result<(&dyn PciDevice, u32, u64, usize)> {
        let index = u32::try_from(pos >> VFIO_PCI_OFFSET_SHIFT).unwrap_or(u32::MAX);
        let at = pos & ((1 << VFIO_PCI_OFFSET_SHIFT) - 1);
        let region = self.region(index)?;
        let Some(model) = self.model.as_deref().filter(|_| region.size > 0) else {
            return Err(Error::Invalid("no such region"));
        };
        if index == VFIO_PCI_CONFIG_REGION_INDEX {
            if at
                .checked_add(len as u64)
                .is_none_or(|end| end > region.size)
            {
                return Err(errno("access outside configuration space", Errno::EFAULT));
            }
            return Ok((model, index, at, len));
        }
        if at >= region.size {
            return Err(Error::Invalid("access past the BAR"));
        }
        if command(model) & cfg::COMMAND_MEMORY == 0 {
            return Err(errno("memory decoding disabled", Errno::EIO));
        }
        let n = (len as u64).min(region.size - at) as usize;
        Ok((model, index, at, n))
    }
    /// Opens with access granted for `ctx`: the first open claims the group's
    /// DMA for the context and binds the device to it; later opens (the group
    /// path allows several) share that binding, even if the group's container
    /// has changed since (a cdev open must be to the bound context).
    /// Returns the device ID. With `attach_compat` (the group path) the first
    /// open also attaches the device to the context's compat IOAS, and is
    /// undone if that fails.
    pub(crate) fn open_bound(
        &self,
        vfio: &Vfio,
        ctx: &Iommufd,
        attach_compat: bool,
    ) -> Result<u32> {
        let mut st = self.state();
        if let Some(b) = &st.bound {
            // The group path shares the open whatever its container is now,
            // as the kernel's `vfio_df_open` only counts it.
            if !attach_compat && b.ctx.cookie() != ctx.cookie() {
                return Err(Error::Invalid("device open through another iommufd"));
            }
            let id = b.idev.id;
            st.open_count += 1;
            return Ok(id);
        }
        if !vfio.registered(self) {
            return Err(errno("device no longer bound to vfio-pci", Errno::ENODEV));
        }
        vfio.host.claim_dma_owner(self.bdf, ctx.cookie())?;
        let idev = match ctx.device_bind_owned(self.dev.clone()) {
            Ok(idev) => idev,
            Err(e) => {
                let _ = vfio.host.release_dma_owner(self.bdf);
                return Err(e);
            }
        };
        if attach_compat {
            let attached = ctx
                .vfio_ioas_get()
                .and_then(|ioas| ctx.device_attach(&idev, NO_PASID, ioas));
            if let Err(e) = attached {
                ctx.device_unbind(&idev);
                let _ = vfio.host.release_dma_owner(self.bdf);
                return Err(e);
            }
        }
        if let Some(model) = &self.model {
            set_command(&**model, command(&**model) | cfg::COMMAND_MEMORY);
        }
        let id = idev.id;
        st.bound = Some(Bound {
            ctx: ctx.clone(),
            idev,
            pasids: BTreeSet::new(),
        });
        st.open_count = 1;
        Ok(id)
    }

    /// Drops one open; the last quiesces the device (interrupts off, bus
    /// mastering off, function reset), unbinds it from the iommufd and
    /// releases the group's DMA.
    pub(crate) fn close(&self, vfio: &Vfio) {
        let mut st = self.state();
        st.open_count = st.open_count.saturating_sub(1);
        if st.open_count > 0 {
            return;
        }
        *self.irqs() = Irqs::default();
        if let Some(model) = &self.model {
            set_command(&**model, command(&**model) & !cfg::COMMAND_MASTER);
            model.reset();
        }
        if let Some(b) = st.bound.take() {
            b.ctx.device_unbind(&b.idev);
            let released = vfio.host.release_dma_owner(self.bdf);
            debug_assert!(released.is_ok(), "a bound device holds a claim");
        }
    }
}

/// The widest piece of an access to region `index`.
fn piece_max(index: u32) -> usize {
    if index == VFIO_PCI_CONFIG_REGION_INDEX {
        4
    } else {
        8
    }
}

/// A function-level reset as the PCI core does one for VFIO: configuration
/// space saved before and restored after, so only the device's own state goes.
fn reset_keeping_config(model: &dyn PciDevice) {
    let mut saved = [0u8; CONFIG_REGION_SIZE as usize];
    model.config_read(0, &mut saved);
    model.reset();
    model.config_write(0, &saved);
}

/// A model's command register.
fn command(model: &dyn PciDevice) -> u16 {
    let mut cmd = [0u8; 2];
    model.config_read(cfg::COMMAND as u32, &mut cmd);
    u16::from_le_bytes(cmd)
}

fn set_command(model: &dyn PciDevice, cmd: u16) {
    model.config_write(cfg::COMMAND as u32, &cmd.to_le_bytes());
}

/// The naturally aligned pieces of at most `max` bytes an access of `n`
/// bytes at region offset `at` is made of: (offset, range in the caller's
/// buffer).
fn pieces(at: u64, n: usize, max: usize) -> impl Iterator<Item = (u64, std::ops::Range<usize>)> {
    let mut done = 0;
    std::iter::from_fn(move || {
        if done == n {
            return None;
        }
        let off = at + done as u64;
        let mut step = max;
        while step > 1 && (!off.is_multiple_of(step as u64) || step > n - done) {
            step /= 2;
        }
        let piece = (off, done..done + step);
        done += step;
        Some(piece)
    })
}

/// One open of a VFIO device (the kernel's `vfio_device_file`). Dropping it is
/// the file's last close.
#[derive(Debug)]
pub struct DeviceFile {
    vfio: Arc<Vfio>,
    dev: Arc<VfioDevice>,
    file: Mutex<FileState>,
}

#[derive(Debug, Default)]
struct FileState {
    /// Bound (cdev) or opened through a group: ioctls other than BIND work.
    access_granted: bool,
    /// Opened through a group (`VFIO_GROUP_GET_DEVICE_FD`).
    group_path: bool,
}

impl DeviceFile {
    pub(super) fn new(vfio: Arc<Vfio>, dev: Arc<VfioDevice>) -> DeviceFile {
        DeviceFile {
            vfio,
            dev,
            file: Mutex::default(),
        }
    }

    /// A file of the group path (`VFIO_GROUP_GET_DEVICE_FD`) for a device
    /// already opened for it ([`VfioDevice::open_bound`]): access granted from
    /// the start; its close drops that open and leaves the group alone.
    pub(super) fn new_group_path(vfio: Arc<Vfio>, dev: Arc<VfioDevice>) -> DeviceFile {
        DeviceFile {
            vfio,
            dev,
            file: Mutex::new(FileState {
                access_granted: true,
                group_path: true,
            }),
        }
    }

    /// The device.
    pub fn device(&self) -> &Arc<VfioDevice> {
        &self.dev
    }

    fn file(&self) -> MutexGuard<'_, FileState> {
        self.file.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// EINVAL unless the file has access (bound, or opened through a group).
    fn granted(&self) -> Result<()> {
        if self.file().access_granted {
            Ok(())
        } else {
            Err(Error::Invalid("device file not bound"))
        }
    }

    /// Whether the file has access: bound, or opened through a group.
    pub fn has_access(&self) -> bool {
        self.file().access_granted
    }

    /// Whether the file was opened through a group.
    pub fn group_path(&self) -> bool {
        self.file().group_path
    }

    /// `VFIO_DEVICE_BIND_IOMMUFD`: binds the device to `ctx`, claiming its
    /// group's DMA; returns the device ID. EINVAL for a group-path file, a
    /// file already bound or a device open elsewhere, and for a VF token (our
    /// functions are neither PFs nor VFs); EBUSY while the group's file is
    /// open; EPERM/EBUSY from the claim.
    pub fn bind_iommufd(&self, ctx: &Iommufd, token: Option<[u8; 16]>) -> Result<u32> {
        self.bind_with(|| Ok((token, ctx.clone())))
    }

    /// [`DeviceFile::bind_iommufd`] with the token and the context found by
    /// `resolve`, called where the kernel reads them: after the group and
    /// already-bound checks.
    pub(crate) fn bind_with(
        &self,
        resolve: impl FnOnce() -> Result<(Option<[u8; 16]>, Iommufd)>,
    ) -> Result<u32> {
        let mut file = self.file();
        if file.group_path {
            return Err(Error::Invalid("device opened through its group"));
        }
        self.vfio.block_group(self.dev.group)?;
        let bound = if file.access_granted {
            Err(Error::Invalid("device file already bound"))
        } else {
            resolve().and_then(|(token, ctx)| {
                if token.is_some() {
                    Err(Error::Invalid("VF token for a device that takes none"))
                } else if self.dev.is_open() {
                    Err(Error::Invalid("device already open"))
                } else {
                    self.dev.open_bound(&self.vfio, &ctx, false)
                }
            })
        };
        match bound {
            Ok(id) => {
                file.access_granted = true;
                Ok(id)
            }
            Err(e) => {
                self.vfio.unblock_group(self.dev.group);
                Err(e)
            }
        }
    }

    /// Undoes a bind whose answer could not be written back.
    pub fn unbind(&self) {
        let mut file = self.file();
        if std::mem::take(&mut file.access_granted) {
            self.release(file.group_path);
        }
    }

    fn release(&self, group_path: bool) {
        self.dev.close(&self.vfio);
        if !group_path {
            self.vfio.unblock_group(self.dev.group);
        }
    }

    fn bound<T>(&self, f: impl FnOnce(&mut Bound) -> Result<T>) -> Result<T> {
        self.granted()?;
        let mut st = self.dev.state();
        match st.bound.as_mut() {
            Some(b) => f(b),
            None => Err(Error::Invalid("device not bound to an iommufd")),
        }
    }

    /// `VFIO_DEVICE_ATTACH_IOMMUFD_PT`: attaches the device (`pasid` `None`)
    /// or one of its PASIDs to the IOAS or HWPT `pt_id`, replacing what it is
    /// attached to; returns the HWPT's ID. ENOTTY for a group-path file.
    pub fn attach(&self, pasid: Option<u32>, pt_id: u32) -> Result<u32> {
        self.cdev_only()?;
        self.bound(|b| {
            let p = pasid.unwrap_or(NO_PASID);
            let attached = if p == NO_PASID {
                b.idev.hwpt().is_some()
            } else {
                b.pasids.contains(&p)
            };
            let id = if attached {
                b.ctx.device_replace(&b.idev, p, pt_id)?
            } else {
                b.ctx.device_attach(&b.idev, p, pt_id)?
            };
            if p != NO_PASID {
                b.pasids.insert(p);
            }
            Ok(id)
        })
    }

    /// `VFIO_DEVICE_DETACH_IOMMUFD_PT`: detaches the device or one of its
    /// PASIDs; detaching what is not attached does nothing. ENOTTY for a
    /// group-path file.
    pub fn detach(&self, pasid: Option<u32>) -> Result<()> {
        self.cdev_only()?;
        self.bound(|b| {
            let p = pasid.unwrap_or(NO_PASID);
            if p == NO_PASID || b.pasids.remove(&p) {
                b.ctx.device_detach(&b.idev, p);
            }
            Ok(())
        })
    }

    fn cdev_only(&self) -> Result<()> {
        self.granted()?;
        if self.group_path() {
            // Not VFIO's; vfio-pci does not know them.
            return Err(errno("cdev-only ioctl on a group-path file", Errno::ENOTTY));
        }
        Ok(())
    }

    /// `VFIO_DEVICE_GET_INFO`.
    pub fn info(&self) -> Result<DeviceInfo> {
        self.granted()?;
        Ok(DeviceInfo {
            flags: VFIO_DEVICE_FLAGS_PCI | VFIO_DEVICE_FLAGS_RESET,
            num_regions: VFIO_PCI_NUM_REGIONS,
            num_irqs: VFIO_PCI_NUM_IRQS,
        })
    }

    /// `VFIO_DEVICE_GET_REGION_INFO`: EINVAL for an index past the regions.
    pub fn region_info(&self, index: u32) -> Result<RegionInfo> {
        self.granted()?;
        self.dev.region(index)
    }

    /// `pread` at file position `pos`: the bytes read.
    pub fn read(&self, pos: u64, buf: &mut [u8]) -> Result<usize> {
        self.granted()?;
        let (model, index, at, n) = self.dev.region_span(pos, buf.len())?;
        for (off, r) in pieces(at, n, piece_max(index)) {
            if index == VFIO_PCI_CONFIG_REGION_INDEX {
                model.config_read(off as u32, &mut buf[r]);
            } else {
                model.bar_read(index, off, &mut buf[r]);
            }
        }
        Ok(n)
    }

    /// `pwrite` at file position `pos`: the bytes written.
    pub fn write(&self, pos: u64, buf: &[u8]) -> Result<usize> {
        self.granted()?;
        let (model, index, at, n) = self.dev.region_span(pos, buf.len())?;
        for (off, r) in pieces(at, n, piece_max(index)) {
            if index == VFIO_PCI_CONFIG_REGION_INDEX {
                model.config_write(off as u32, &buf[r]);
            } else {
                model.bar_write(index, off, &buf[r]);
            }
        }
        Ok(n)
    }

    /// `VFIO_DEVICE_GET_IRQ_INFO`: EINVAL for an index past the five.
    pub fn irq_info(&self, index: u32) -> Result<IrqInfo> {
        self.granted()?;
        if index >= VFIO_PCI_NUM_IRQS {
            return Err(Error::Invalid("no such interrupt index"));
        }
        let flags = if index == VFIO_PCI_INTX_IRQ_INDEX {
            VFIO_IRQ_INFO_EVENTFD | VFIO_IRQ_INFO_MASKABLE | VFIO_IRQ_INFO_AUTOMASKED
        } else {
            VFIO_IRQ_INFO_EVENTFD | VFIO_IRQ_INFO_NORESIZE
        };
        Ok(IrqInfo {
            flags,
            count: self.dev.irq_count(index),
        })
    }

    /// Checks a `VFIO_DEVICE_SET_IRQS` header before its data is read, as
    /// `vfio_set_irqs_validate_and_prepare` does: EINVAL for an index past the
    /// five, `count` overflowing `start`, unknown flag bits, a range beyond the
    /// index's interrupts, or not exactly one data type. Returns the size of
    /// each data element (0, 1 or 4).
    pub fn set_irqs_check(&self, flags: u32, index: u32, start: u32, count: u32) -> Result<usize> {
        self.granted()?;
        if index >= VFIO_PCI_NUM_IRQS || count >= u32::MAX - start {
            return Err(Error::Invalid("bad interrupt index or range"));
        }
        if flags & !(VFIO_IRQ_SET_DATA_TYPE_MASK | VFIO_IRQ_SET_ACTION_TYPE_MASK) != 0 {
            return Err(Error::Invalid("unknown SET_IRQS flags"));
        }
        let max = self.dev.irq_count(index);
        if start >= max || start + count > max {
            return Err(Error::Invalid("interrupt range beyond the index"));
        }
        match flags & VFIO_IRQ_SET_DATA_TYPE_MASK {
            VFIO_IRQ_SET_DATA_NONE => Ok(0),
            VFIO_IRQ_SET_DATA_BOOL => Ok(1),
            VFIO_IRQ_SET_DATA_EVENTFD => Ok(4),
            _ => Err(Error::Invalid("not exactly one SET_IRQS data type")),
        }
    }

    /// `VFIO_DEVICE_SET_IRQS` after [`DeviceFile::set_irqs_check`], with its
    /// data. ENOTTY for an action the index does not have (or not exactly one
    /// action); the rest of vfio-pci's rules per index.
    pub fn set_irqs(
        &self,
        flags: u32,
        index: u32,
        start: u32,
        count: u32,
        data: IrqData,
    ) -> Result<()> {
        let action = flags & VFIO_IRQ_SET_ACTION_TYPE_MASK;
        let enotty = || errno("no such interrupt action", Errno::ENOTTY);
        let mut irqs = self.dev.irqs();
        match (index, action) {
            (VFIO_PCI_INTX_IRQ_INDEX, VFIO_IRQ_SET_ACTION_MASK | VFIO_IRQ_SET_ACTION_UNMASK) => {
                if irqs.kind != IrqType::Intx || start != 0 || count != 1 {
                    return Err(Error::Invalid("INTx not enabled"));
                }
                let on = match &data {
                    IrqData::None => true,
                    IrqData::Bool(b) => b[0],
                    IrqData::Eventfd(_) => return Err(enotty()),
                };
                if !on {
                    return Ok(());
                }
                if action == VFIO_IRQ_SET_ACTION_MASK {
                    irqs.masked = true;
                } else {
                    irqs.masked = false;
                    if std::mem::take(&mut irqs.pending) {
                        drop(irqs);
                        self.dev.raise(0);
                    }
                }
                Ok(())
            }
            (VFIO_PCI_INTX_IRQ_INDEX, VFIO_IRQ_SET_ACTION_TRIGGER) => {
                if irqs.kind == IrqType::Intx && count == 0 && matches!(data, IrqData::None) {
                    *irqs = Irqs {
                        err: irqs.err.take(),
                        req: irqs.req.take(),
                        ..Irqs::default()
                    };
                    return Ok(());
                }
                if !matches!(irqs.kind, IrqType::Intx | IrqType::None) || start != 0 || count != 1 {
                    return Err(Error::Invalid("INTx range or another type enabled"));
                }
                match data {
                    IrqData::Eventfd(mut fds) => {
                        irqs.vectors = vec![fds.remove(0)];
                        if irqs.kind == IrqType::None {
                            irqs.kind = IrqType::Intx;
                            irqs.masked = false;
                            irqs.pending = false;
                        }
                        Ok(())
                    }
                    _ if irqs.kind != IrqType::Intx => Err(Error::Invalid("INTx not enabled")),
                    data => {
                        if fire(&data, 0) {
                            drop(irqs);
                            self.dev.raise(0);
                        }
                        Ok(())
                    }
                }
            }
            (VFIO_PCI_MSI_IRQ_INDEX | VFIO_PCI_MSIX_IRQ_INDEX, VFIO_IRQ_SET_ACTION_TRIGGER) => {
                let kind = if index == VFIO_PCI_MSI_IRQ_INDEX {
                    IrqType::Msi
                } else {
                    IrqType::Msix
                };
                if irqs.kind == kind && count == 0 && matches!(data, IrqData::None) {
                    irqs.kind = IrqType::None;
                    irqs.vectors.clear();
                    return Ok(());
                }
                if irqs.kind != kind && irqs.kind != IrqType::None {
                    return Err(Error::Invalid("another interrupt type enabled"));
                }
                let (start, count) = (start as usize, count as usize);
                match data {
                    IrqData::Eventfd(fds) => {
                        if irqs.kind == IrqType::None {
                            irqs.kind = kind;
                            irqs.vectors = vec![None; start + count];
                        } else if start + count > irqs.vectors.len() {
                            return Err(Error::Invalid("vector beyond those enabled"));
                        }
                        for (i, fd) in fds.into_iter().enumerate() {
                            irqs.vectors[start + i] = fd;
                        }
                        Ok(())
                    }
                    _ if irqs.kind != kind => Err(Error::Invalid("interrupt type not enabled")),
                    data => {
                        for i in 0..count {
                            if fire(&data, i) {
                                if let Some(Some(t)) = irqs.vectors.get(start + i) {
                                    t.signal();
                                }
                            }
                        }
                        Ok(())
                    }
                }
            }
            (VFIO_PCI_ERR_IRQ_INDEX | VFIO_PCI_REQ_IRQ_INDEX, VFIO_IRQ_SET_ACTION_TRIGGER) => {
                let slot = if index == VFIO_PCI_ERR_IRQ_INDEX {
                    &mut irqs.err
                } else {
                    &mut irqs.req
                };
                match data {
                    IrqData::None if count == 0 => *slot = None,
                    IrqData::Eventfd(mut fds) if count == 1 => *slot = fds.remove(0),
                    IrqData::Bool(_) | IrqData::Eventfd(_) if count == 0 => {
                        return Err(Error::Invalid("no interrupt given"))
                    }
                    data => {
                        if let (true, Some(t)) = (fire(&data, 0), slot.as_ref()) {
                            t.signal();
                        }
                    }
                }
                Ok(())
            }
            _ => Err(enotty()),
        }
    }

    /// `VFIO_DEVICE_RESET`: a function-level reset of the model.
    pub fn reset(&self) -> Result<()> {
        self.granted()?;
        if let Some(m) = &self.dev.model {
            reset_keeping_config(&**m);
        }
        Ok(())
    }
}

/// What `VFIO_DEVICE_GET_PCI_HOT_RESET_INFO` reports.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HotResetInfo {
    /// `VFIO_PCI_HOT_RESET_FLAG_*`: 0 for a group-path file.
    pub flags: u32,
    /// Each function the reset reaches, with its group (group-path file) or
    /// its devid, `VFIO_PCI_DEVID_OWNED` or `VFIO_PCI_DEVID_NOT_OWNED` (cdev).
    pub devices: Vec<(Bdf, u32)>,
}

impl DeviceFile {
    /// The functions a hot reset of the device reaches (the number is what
    /// `VFIO_DEVICE_PCI_HOT_RESET` checks a group count against). ENODEV when
    /// the device's bus cannot be reset.
    pub fn hot_reset_scope(&self) -> Result<Vec<HostDevice>> {
        self.granted()?;
        self.vfio.reset_scope(self.dev.bdf)
    }

    /// Whether `dev` is owned by the iommufd context `ctx` for a hot reset of
    /// a cdev file: bound to it (its devid), or unbound in a group with a
    /// device bound to it (`VFIO_PCI_DEVID_OWNED`). `None` if neither.
    fn owned_by(&self, dev: &VfioDevice, ctx: &Iommufd) -> Option<u32> {
        match dev.binding() {
            Some((c, id)) if c.cookie() == ctx.cookie() => Some(id),
            Some(_) => None,
            None => self
                .vfio
                .devices()
                .iter()
                .any(|d| {
                    d.group == dev.group
                        && d.binding().is_some_and(|(c, _)| c.cookie() == ctx.cookie())
                })
                .then_some(VFIO_PCI_DEVID_OWNED),
        }
    }

    /// The context a cdev file is bound to.
    fn bound_ctx(&self) -> Result<Iommufd> {
        self.dev
            .binding()
            .map(|(ctx, _)| ctx)
            .ok_or(Error::Invalid("device not bound to an iommufd"))
    }

    /// `VFIO_DEVICE_GET_PCI_HOT_RESET_INFO`: see [`HotResetInfo`]. ENODEV when
    /// the bus cannot be reset.
    pub fn hot_reset_info(&self) -> Result<HotResetInfo> {
        let scope = self.hot_reset_scope()?;
        if self.group_path() {
            let devices = scope.iter().map(|f| (f.bdf, f.group)).collect();
            return Ok(HotResetInfo { flags: 0, devices });
        }
        let ctx = self.bound_ctx()?;
        let mut flags = VFIO_PCI_HOT_RESET_FLAG_DEV_ID | VFIO_PCI_HOT_RESET_FLAG_DEV_ID_OWNED;
        let mut devices = Vec::with_capacity(scope.len());
        for f in &scope {
            let id = self
                .vfio
                .device(f.bdf)
                .and_then(|d| self.owned_by(&d, &ctx))
                .unwrap_or(VFIO_PCI_DEVID_NOT_OWNED);
            if id == VFIO_PCI_DEVID_NOT_OWNED {
                flags &= !VFIO_PCI_HOT_RESET_FLAG_DEV_ID_OWNED;
            }
            devices.push((f.bdf, id));
        }
        Ok(HotResetInfo { flags, devices })
    }

    /// `VFIO_DEVICE_PCI_HOT_RESET`: resets every function on the device's bus.
    /// A group-path file names the groups it holds (`groups`, not empty); a
    /// cdev file names none and owns through its iommufd. EINVAL for the
    /// wrong form, more groups than functions reached, a function not bound
    /// to `vfio-pci`, or a device the caller does not own; ENODEV when the bus
    /// cannot be reset.
    pub fn hot_reset(&self, groups: &[u32]) -> Result<()> {
        self.granted()?;
        if groups.is_empty() == self.group_path() {
            return Err(Error::Invalid("hot reset form does not match the open"));
        }
        let scope = self.hot_reset_scope()?;
        if groups.len() > scope.len() {
            return Err(Error::Invalid("more groups than functions reset"));
        }
        let ctx = if groups.is_empty() {
            Some(self.bound_ctx()?)
        } else {
            None
        };
        let mut devs = Vec::with_capacity(scope.len());
        for f in &scope {
            let dev = self
                .vfio
                .device(f.bdf)
                .ok_or(Error::Invalid("function on the bus not bound to vfio-pci"))?;
            let owned = match &ctx {
                Some(ctx) => self.owned_by(&dev, ctx).is_some(),
                None => groups.contains(&dev.group),
            };
            if !owned {
                return Err(Error::Invalid("device on the bus not owned by the caller"));
            }
            devs.push(dev);
        }
        for d in devs {
            if let Some(m) = &d.model {
                reset_keeping_config(&**m);
            }
        }
        Ok(())
    }
}

/// Whether a loopback (`DATA_NONE` or `DATA_BOOL`) fires interrupt `i`.
fn fire(data: &IrqData, i: usize) -> bool {
    match data {
        IrqData::None => true,
        IrqData::Bool(b) => b.get(i).copied().unwrap_or(false),
        IrqData::Eventfd(_) => false,
    }
}

impl Drop for DeviceFile {
    fn drop(&mut self) {
        let file = std::mem::take(&mut *self.file());
        if file.access_granted {
            self.release(file.group_path);
        }
    }
}
