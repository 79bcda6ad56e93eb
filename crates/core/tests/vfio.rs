//! VFIO device files over the default machine (docs/kernel-notes/vfio.md §2,
//! §5): binding claims the group's DMA for the iommufd context and nothing
//! changes when it fails; attach moves the device's DMA; regions reach the
//! device model; interrupts reach eventfds under vfio-pci's rules; closing
//! gives everything back.

mod common;

use common::Fixture;
use softiommu::devices::cfg;
use softiommu::devices::edu::*;
use softiommu::iommufd::Iommufd;
use softiommu::machine::host::{GroupOwner, Host};
use softiommu::machine::{Bdf, Driver, Machine};
use softiommu::mem::PAGE_SIZE;
use softiommu::uapi::vfio::*;
use softiommu::uapi::Errno;
use softiommu::vfio::{DeviceFile, EventFd, IrqData, Vfio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

fn at(bus: u8, dev: u8, func: u8) -> Bdf {
    Bdf::new(bus, dev, func).unwrap()
}

fn vfio(f: &Fixture) -> Arc<Vfio> {
    Vfio::new(Host::new(Machine::default_machine(), f.mem.clone()).unwrap())
}

fn errno<T: std::fmt::Debug>(r: softiommu::Result<T>) -> Errno {
    r.unwrap_err().errno()
}

/// A counting eventfd.
#[derive(Debug, Default)]
struct Counter(AtomicU32);

impl EventFd for Counter {
    fn signal(&self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

fn bar0() -> u64 {
    0
}

fn config() -> u64 {
    u64::from(VFIO_PCI_CONFIG_REGION_INDEX) << VFIO_PCI_OFFSET_SHIFT
}

fn w(file: &DeviceFile, at: u64, v: &[u8]) {
    assert_eq!(file.write(at, v).unwrap(), v.len());
}

fn r32(file: &DeviceFile, at: u64) -> u32 {
    let mut b = [0u8; 4];
    assert_eq!(file.read(at, &mut b).unwrap(), 4);
    u32::from_le_bytes(b)
}

/// Bus mastering on, then a copy of `len` bytes; waits for it and returns
/// STATUS.
fn copy(file: &DeviceFile, src: u64, dst: u64, len: u32) -> u32 {
    let cmd = (cfg::COMMAND_MEMORY | cfg::COMMAND_MASTER).to_le_bytes();
    w(file, config() + cfg::COMMAND as u64, &cmd);
    w(file, bar0() + reg::SRC, &src.to_le_bytes());
    w(file, bar0() + reg::DST, &dst.to_le_bytes());
    w(file, bar0() + reg::LEN, &len.to_le_bytes());
    w(
        file,
        bar0() + reg::CMD,
        &(CMD_START | CMD_IRQ).to_le_bytes(),
    );
    while r32(file, bar0() + reg::STATUS) & STATUS_BUSY != 0 {
        std::thread::yield_now();
    }
    r32(file, bar0() + reg::STATUS)
}

/// Waits until `counter` reaches `n` (the device signals after it sets STATUS).
fn wait_for(counter: &Counter, n: u32) {
    let start = std::time::Instant::now();
    while counter.0.load(Ordering::SeqCst) < n {
        assert!(start.elapsed().as_secs() < 10, "no interrupt");
        std::thread::yield_now();
    }
    assert_eq!(counter.0.load(Ordering::SeqCst), n);
}

#[test]
fn registry_follows_vfio_pci() {
    let f = Fixture::new();
    let v = vfio(&f);
    let devs: Vec<(Bdf, u32, u32)> = v
        .devices()
        .iter()
        .map(|d| (d.bdf, d.index, d.group))
        .collect();
    assert_eq!(
        devs,
        [
            (at(1, 0, 0), 0, 4),
            (at(2, 0, 0), 1, 5),
            (at(3, 0, 0), 2, 6)
        ]
    );
    assert_eq!(errno(v.open_cdev(3)), Errno::ENOENT);
    // Unbinding from vfio-pci unregisters; a new bind takes the lowest free index.
    v.host().unbind(at(2, 0, 0)).unwrap();
    assert!(v.device_by_index(1).is_none());
    v.host().unbind(at(3, 0, 1)).unwrap();
    v.host().bind(at(3, 0, 1), Driver::VfioPci).unwrap();
    assert_eq!(v.device(at(3, 0, 1)).unwrap().index, 1);
}

#[test]
fn nothing_but_bind_before_bind() {
    let f = Fixture::new();
    let v = vfio(&f);
    let file = v.open_cdev(0).unwrap();
    assert!(!file.has_access());
    assert_eq!(errno(file.info()), Errno::EINVAL);
    assert_eq!(errno(file.region_info(0)), Errno::EINVAL);
    assert_eq!(errno(file.read(0, &mut [0u8; 4])), Errno::EINVAL);
    assert_eq!(errno(file.write(0, &[0u8; 4])), Errno::EINVAL);
    assert_eq!(errno(file.reset()), Errno::EINVAL);
    assert_eq!(errno(file.attach(None, 1)), Errno::EINVAL);
    // Opening claims nothing.
    assert_eq!(v.host().owner(4), Some(GroupOwner::Kernel { users: 0 }));
}

#[test]
fn bind_claims_the_group_and_close_gives_it_back() {
    let f = Fixture::new();
    let v = vfio(&f);
    let ctx = f.ctx();
    let file = v.open_cdev(0).unwrap();
    let devid = file.bind_iommufd(ctx, None).unwrap();
    assert_eq!(
        v.host().owner(4),
        Some(GroupOwner::User {
            cookie: ctx.cookie(),
            count: 1
        })
    );
    assert_eq!(v.devices()[0].binding().unwrap().1, devid);
    // The device object belongs to VFIO: the user cannot destroy it.
    assert_eq!(errno(ctx.destroy(devid)), Errno::EBUSY);
    // Bound twice, or a second open of a bound device: EINVAL.
    assert_eq!(errno(file.bind_iommufd(ctx, None)), Errno::EINVAL);
    let other = v.open_cdev(0).unwrap();
    assert_eq!(errno(other.bind_iommufd(ctx, None)), Errno::EINVAL);
    // A VF token for a function that is no VF.
    let third = v.open_cdev(1).unwrap();
    assert_eq!(errno(third.bind_iommufd(ctx, Some([1; 16]))), Errno::EINVAL);
    assert_eq!(v.host().owner(5), Some(GroupOwner::Kernel { users: 0 }));
    drop(file);
    assert_eq!(v.host().owner(4), Some(GroupOwner::Kernel { users: 0 }));
    assert_eq!(errno(ctx.get_device(devid)), Errno::ENOENT);
    // Free again: the other open can bind now.
    other.bind_iommufd(ctx, None).unwrap();
}

#[test]
fn a_kernel_driver_in_the_group_refuses_the_bind() {
    let f = Fixture::new();
    let v = vfio(&f);
    let file = v.open_cdev(2).unwrap();
    assert_eq!(errno(file.bind_iommufd(f.ctx(), None)), Errno::EPERM);
    assert!(!file.has_access());
    assert_eq!(v.host().owner(6), Some(GroupOwner::Kernel { users: 1 }));
    assert!(f.ctx().objects().is_empty());
    // Once snd_hda_intel lets go, it binds.
    v.host().unbind(at(3, 0, 1)).unwrap();
    file.bind_iommufd(f.ctx(), None).unwrap();
}

#[test]
fn two_devices_in_one_group_share_its_ownership() {
    let f = Fixture::new();
    let v = vfio(&f);
    v.host().unbind(at(3, 0, 1)).unwrap();
    v.host().bind(at(3, 0, 1), Driver::VfioPci).unwrap();
    let a = v.open_cdev(2).unwrap();
    let b = v.open_cdev(v.device(at(3, 0, 1)).unwrap().index).unwrap();
    a.bind_iommufd(f.ctx(), None).unwrap();
    // Another context may not have the group; the same one may.
    let ctx2 = Iommufd::open(&f.process);
    assert_eq!(errno(b.bind_iommufd(&ctx2, None)), Errno::EPERM);
    b.bind_iommufd(f.ctx(), None).unwrap();
    let owner = GroupOwner::User {
        cookie: f.ctx().cookie(),
        count: 2,
    };
    assert_eq!(v.host().owner(6), Some(owner));
    // A DMA kernel driver cannot come back while user space owns the group.
    drop(b);
    assert_eq!(
        errno(
            v.host()
                .unbind(at(3, 0, 1))
                .and_then(|()| v.host().bind(at(3, 0, 1), Driver::Kernel("snd".into())))
        ),
        Errno::EBUSY
    );
    drop(a);
    assert_eq!(v.host().owner(6), Some(GroupOwner::Kernel { users: 0 }));
}

#[test]
fn dma_through_an_attached_device() {
    let f = Fixture::new();
    let v = vfio(&f);
    let file = v.open_cdev(0).unwrap();
    file.bind_iommufd(f.ctx(), None).unwrap();
    let ioas = f.ioas_alloc();
    let len = 4 * PAGE_SIZE;
    let (src_va, dst_va) = (f.mmap(len), f.mmap(len));
    let data: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
    f.write(src_va, &data);
    let src = f.map(ioas, src_va, len).unwrap();
    let dst = f.map(ioas, dst_va, len).unwrap();
    // Bound but not attached: DMA is blocked.
    assert_eq!(
        copy(&file, src, dst, len as u32),
        STATUS_DONE | STATUS_ERROR
    );
    let hwpt = file.attach(None, ioas).unwrap();
    assert_ne!(hwpt, ioas);
    assert_eq!(copy(&file, src, dst, len as u32), STATUS_DONE);
    assert_eq!(f.read(dst_va, len), data);
    // Attaching again replaces (same IOAS: the same HWPT).
    assert_eq!(file.attach(None, ioas).unwrap(), hwpt);
    assert_eq!(errno(file.attach(None, 9999)), Errno::ENOENT);
    // After unmap nothing reaches the old pages.
    f.write(dst_va, &vec![0; len as usize]);
    f.unmap(ioas, dst, len).unwrap();
    assert_eq!(
        copy(&file, src, dst, len as u32),
        STATUS_DONE | STATUS_ERROR
    );
    assert_eq!(f.read(dst_va, len), vec![0; len as usize]);
    // Detach blocks DMA; detaching twice, or an unattached PASID, is fine.
    file.detach(None).unwrap();
    file.detach(None).unwrap();
    file.detach(Some(5)).unwrap();
    assert_eq!(copy(&file, src, src, 8), STATUS_DONE | STATUS_ERROR);
}

#[test]
fn regions() {
    let f = Fixture::new();
    let v = vfio(&f);
    let file = v.open_cdev(0).unwrap();
    file.bind_iommufd(f.ctx(), None).unwrap();
    let info = file.info().unwrap();
    assert_eq!(info.flags, VFIO_DEVICE_FLAGS_PCI | VFIO_DEVICE_FLAGS_RESET);
    assert_eq!((info.num_regions, info.num_irqs), (9, 5));
    let bar = file.region_info(VFIO_PCI_BAR0_REGION_INDEX).unwrap();
    let rw = VFIO_REGION_INFO_FLAG_READ | VFIO_REGION_INFO_FLAG_WRITE;
    assert_eq!((bar.flags, bar.size, bar.offset), (rw, EDU_BAR_SIZE, 0));
    let c = file.region_info(VFIO_PCI_CONFIG_REGION_INDEX).unwrap();
    assert_eq!((c.flags, c.size, c.offset), (rw, 256, config()));
    for absent in [1, 5, VFIO_PCI_ROM_REGION_INDEX, VFIO_PCI_VGA_REGION_INDEX] {
        let r = file.region_info(absent).unwrap();
        assert_eq!((r.flags, r.size), (0, 0), "region {absent}");
    }
    assert_eq!(errno(file.region_info(9)), Errno::EINVAL);
    // Config space: the IDs.
    assert_eq!(r32(&file, config()), u32::from(EDU_DEVICE) << 16 | 0x1234);
    // BAR 0: the ID register, also read in pieces.
    assert_eq!(r32(&file, 0), EDU_ID);
    let mut b = [0u8; 6];
    assert_eq!(file.read(1, &mut b).unwrap(), 6);
    assert_eq!(&b[..3], &EDU_ID.to_le_bytes()[1..]);
    // A BAR: past the end EINVAL, across it cut short. Configuration space
    // (vfio_config_do_rw): outside it, even partly, EFAULT.
    assert_eq!(errno(file.read(EDU_BAR_SIZE, &mut b)), Errno::EINVAL);
    assert_eq!(file.read(EDU_BAR_SIZE - 2, &mut b).unwrap(), 2);
    assert_eq!(errno(file.read(config() + 256, &mut b)), Errno::EFAULT);
    assert_eq!(errno(file.read(config() + 252, &mut b)), Errno::EFAULT);
    assert_eq!(file.read(config() + 250, &mut b).unwrap(), 6);
    assert_eq!(
        errno(file.read(1 << VFIO_PCI_OFFSET_SHIFT, &mut b)),
        Errno::EINVAL
    );
    assert_eq!(
        errno(file.write(9 << VFIO_PCI_OFFSET_SHIFT, &b)),
        Errno::EINVAL
    );
    // Reset puts the registers back, and keeps the configuration.
    w(&file, reg::LIVENESS, &1u32.to_le_bytes());
    let cmd = (cfg::COMMAND_MEMORY | cfg::COMMAND_MASTER).to_le_bytes();
    w(&file, config() + cfg::COMMAND as u64, &cmd);
    file.reset().unwrap();
    assert_eq!(r32(&file, reg::LIVENESS), !0);
    let mut after = [0u8; 2];
    file.read(config() + cfg::COMMAND as u64, &mut after)
        .unwrap();
    assert_eq!(after, cmd);
    // With memory decoding off, BAR accesses are EIO (config space still works).
    w(&file, config() + cfg::COMMAND as u64, &0u16.to_le_bytes());
    assert_eq!(errno(file.read(0, &mut b)), Errno::EIO);
    assert_eq!(errno(file.write(reg::LIVENESS, &[0; 4])), Errno::EIO);
    assert_eq!(r32(&file, config()), u32::from(EDU_DEVICE) << 16 | 0x1234);
}

#[test]
fn interrupts() {
    let f = Fixture::new();
    let v = vfio(&f);
    let file = v.open_cdev(0).unwrap();
    file.bind_iommufd(f.ctx(), None).unwrap();
    let intx = file.irq_info(VFIO_PCI_INTX_IRQ_INDEX).unwrap();
    assert_eq!(intx.count, 0, "edu has no interrupt pin");
    let msi = file.irq_info(VFIO_PCI_MSI_IRQ_INDEX).unwrap();
    assert_eq!(
        (msi.flags, msi.count),
        (VFIO_IRQ_INFO_EVENTFD | VFIO_IRQ_INFO_NORESIZE, 1)
    );
    assert_eq!(file.irq_info(VFIO_PCI_REQ_IRQ_INDEX).unwrap().count, 1);
    assert_eq!(file.irq_info(VFIO_PCI_ERR_IRQ_INDEX).unwrap().count, 0);
    assert_eq!(errno(file.irq_info(5)), Errno::EINVAL);

    let trigger = VFIO_IRQ_SET_ACTION_TRIGGER;
    let efd = VFIO_IRQ_SET_DATA_EVENTFD | trigger;
    let none = VFIO_IRQ_SET_DATA_NONE | trigger;
    let msi_i = VFIO_PCI_MSI_IRQ_INDEX;
    // Header checks.
    assert_eq!(errno(file.set_irqs_check(efd, 0, 0, 1)), Errno::EINVAL);
    assert_eq!(errno(file.set_irqs_check(efd, msi_i, 0, 2)), Errno::EINVAL);
    assert_eq!(errno(file.set_irqs_check(efd, msi_i, 1, 0)), Errno::EINVAL);
    assert_eq!(
        errno(file.set_irqs_check(efd | 1 << 6, msi_i, 0, 1)),
        Errno::EINVAL
    );
    let two_types = VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_DATA_BOOL | trigger;
    assert_eq!(
        errno(file.set_irqs_check(two_types, msi_i, 0, 1)),
        Errno::EINVAL
    );
    assert_eq!(file.set_irqs_check(efd, msi_i, 0, 1).unwrap(), 4);
    // MSI has no mask; not exactly one action is no handler either.
    let mask = VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_ACTION_MASK;
    assert_eq!(
        errno(file.set_irqs(mask, msi_i, 0, 1, IrqData::None)),
        Errno::ENOTTY
    );
    // Loopback before enabling: EINVAL.
    assert_eq!(
        errno(file.set_irqs(none, msi_i, 0, 1, IrqData::None)),
        Errno::EINVAL
    );
    let counter = Arc::new(Counter::default());
    file.set_irqs(
        efd,
        msi_i,
        0,
        1,
        IrqData::Eventfd(vec![Some(counter.clone())]),
    )
    .unwrap();
    // Loopback, then a real completion interrupt.
    file.set_irqs(none, msi_i, 0, 1, IrqData::None).unwrap();
    assert_eq!(counter.0.load(Ordering::SeqCst), 1);
    copy(&file, 0, 0, 8);
    wait_for(&counter, 2);
    // Disable, and the device's interrupts go nowhere.
    file.set_irqs(none, msi_i, 0, 0, IrqData::None).unwrap();
    copy(&file, 0, 0, 8);
    file.reset().unwrap(); // waits for the device to be idle
    assert_eq!(counter.0.load(Ordering::SeqCst), 2);
    // REQ: set, signal by loopback, clear; count 0 with an eventfd is EINVAL.
    let req = VFIO_PCI_REQ_IRQ_INDEX;
    file.set_irqs(
        efd,
        req,
        0,
        1,
        IrqData::Eventfd(vec![Some(counter.clone())]),
    )
    .unwrap();
    file.set_irqs(none, req, 0, 1, IrqData::None).unwrap();
    assert_eq!(counter.0.load(Ordering::SeqCst), 3);
    file.set_irqs(none, req, 0, 0, IrqData::None).unwrap();
    file.set_irqs(none, req, 0, 1, IrqData::None).unwrap();
    assert_eq!(counter.0.load(Ordering::SeqCst), 3);
    assert_eq!(
        errno(file.set_irqs(efd, req, 0, 0, IrqData::Eventfd(vec![]))),
        Errno::EINVAL
    );
}

#[test]
fn closing_quiesces_the_device() {
    let f = Fixture::new();
    let v = vfio(&f);
    let file = v.open_cdev(0).unwrap();
    file.bind_iommufd(f.ctx(), None).unwrap();
    let counter = Arc::new(Counter::default());
    let efd = VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_TRIGGER;
    file.set_irqs(
        efd,
        VFIO_PCI_MSI_IRQ_INDEX,
        0,
        1,
        IrqData::Eventfd(vec![Some(counter.clone())]),
    )
    .unwrap();
    copy(&file, 0, 0, 8);
    wait_for(&counter, 1);
    drop(file);
    // The eventfd was let go, bus mastering is off and the registers are reset.
    assert_eq!(Arc::strong_count(&counter), 1);
    let file = v.open_cdev(0).unwrap();
    file.bind_iommufd(f.ctx(), None).unwrap();
    let mut cmd = [0u8; 2];
    file.read(config() + cfg::COMMAND as u64, &mut cmd).unwrap();
    assert_eq!(u16::from_le_bytes(cmd) & cfg::COMMAND_MASTER, 0);
    assert_eq!(r32(&file, reg::TRANSFERS), 0);
}
