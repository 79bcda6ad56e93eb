//! The legacy VFIO group path and hot reset over a running host
//! (docs/kernel-notes/vfio.md §3, §4, §5.7): group open rules and the
//! exclusion with cdev binds, GET_STATUS, SET/UNSET_CONTAINER on an iommufd,
//! GET_DEVICE_FD with ownership shared by the devices of a group, DMA through
//! the compat IOAS, and hot reset info and reset in both forms. Every failing
//! call is checked to change nothing.

mod common;

use common::Fixture;
use softiommu::devices::edu::{reg, CMD_START, STATUS_BUSY, STATUS_DONE};
use softiommu::devices::{cfg, PciDevice};
use softiommu::iommu::dma::{AttachedDomain, NO_PASID};
use softiommu::iommufd::{Iommufd, MapFlags};
use softiommu::machine::host::{GroupOwner, Host};
use softiommu::machine::{Acs, Bdf, Device, Driver, Machine, Model};
use softiommu::uapi::vfio::*;
use softiommu::uapi::Errno;
use softiommu::vfio::{DeviceFile, GroupFile, HotResetInfo, Vfio};
use softiommu::Result;
use std::sync::Arc;

fn at(bus: u8, dev: u8, func: u8) -> Bdf {
    Bdf::new(bus, dev, func).unwrap()
}

fn edu(bdf: Bdf) -> Device {
    Device {
        model: Model::Edu,
        driver: Driver::VfioPci,
        ..Device::new(bdf, 0x1234, 0x5d11)
    }
}

/// VFIO over `machine`, its DMA reaching the fixture's memory.
fn vfio(f: &Fixture, machine: Machine) -> Arc<Vfio> {
    Vfio::new(Host::new(machine, f.mem.clone()).unwrap())
}

fn default_vfio(f: &Fixture) -> Arc<Vfio> {
    vfio(f, Machine::default_machine())
}

/// The default machine with a second edu at 01:00.1, in 01:00.0's group
/// (no ACS between the functions) unless `acs`.
fn two_on_bus_1(f: &Fixture, acs: bool) -> Arc<Vfio> {
    let acs = acs.then(Acs::isolating);
    let m = Machine::default_machine();
    let devices = m
        .devices()
        .iter()
        .cloned()
        .map(|d| Device {
            acs: if d.bdf == at(1, 0, 0) { acs } else { d.acs },
            ..d
        })
        .chain([Device {
            acs,
            ..edu(at(1, 0, 1))
        }])
        .collect();
    let m = Machine::new(m.units().to_vec(), m.bridges().to_vec(), devices).unwrap();
    vfio(f, m)
}

fn errno<T: std::fmt::Debug>(r: Result<T>) -> Errno {
    r.unwrap_err().errno()
}

/// Everything observable about the host's groups and the VFIO devices.
fn snap(v: &Vfio) -> String {
    let mut out = String::new();
    for g in v.host().groups() {
        out += &format!("{} {:?} {:?}\n", g.id, g.owner, g.domain);
    }
    for d in v.host().devices() {
        out += &format!(
            "{} {} {} {:?}\n",
            d.bdf,
            d.driver,
            d.claims,
            d.dev.attached_pasids()
        );
    }
    for d in v.devices() {
        out += &format!(
            "{} {:?} {}\n",
            d.bdf,
            d.binding().map(|(_, id)| id),
            d.is_open()
        );
    }
    out
}

/// Asserts that `f` fails with `want` and leaves everything as it was.
#[track_caller]
fn fails_unchanged<T: std::fmt::Debug>(v: &Vfio, want: Errno, f: impl FnOnce() -> Result<T>) {
    let before = snap(v);
    assert_eq!(errno(f()), want);
    assert_eq!(snap(v), before);
}

fn index(v: &Vfio, bdf: Bdf) -> u32 {
    v.device(bdf).unwrap().index
}

fn group_of(v: &Vfio, bdf: Bdf) -> u32 {
    v.device(bdf).unwrap().group
}

/// Opens `bdf`'s group with `ctx` as its container.
fn group_with(v: &Arc<Vfio>, bdf: Bdf, ctx: &Iommufd) -> GroupFile {
    let g = v.open_group(group_of(v, bdf)).unwrap();
    g.set_container(ctx).unwrap();
    g
}

fn name(bdf: Bdf) -> Vec<u8> {
    bdf.to_string().into_bytes()
}

fn owner(v: &Vfio, bdf: Bdf) -> GroupOwner {
    v.host().owner(group_of(v, bdf)).unwrap()
}

fn on_default_domain(v: &Vfio, bdf: Bdf) -> bool {
    let d = v.host().device(bdf).unwrap();
    let g = v.host().group(d.group).unwrap();
    matches!(
        d.dev.attachment(NO_PASID).map(|a| a.domain),
        Some(AttachedDomain::Paging(p)) if Arc::ptr_eq(&p, &g.default_domain)
    )
}

#[test]
fn open_rules() {
    let f = Fixture::new();
    let v = default_vfio(&f);
    // No vfio device in the group (the NIC's, a root port's) or no group: no node.
    for g in [0, 1, 99] {
        fails_unchanged(&v, Errno::ENOENT, || v.open_group(g));
    }
    let g4 = v.open_group(4).unwrap();
    assert_eq!(g4.group(), 4);
    fails_unchanged(&v, Errno::EBUSY, || v.open_group(4));
    // Another group is independent.
    let g5 = v.open_group(5).unwrap();
    drop(g5);
    drop(g4);
    drop(v.open_group(4).unwrap());
}

#[test]
fn group_open_and_cdev_bind_exclude_each_other() {
    let f = Fixture::new();
    let v = default_vfio(&f);
    let a = at(1, 0, 0);
    let cdev = v.open_cdev(index(&v, a)).unwrap();
    let g = v.open_group(4).unwrap();
    // Bind while the group is open.
    fails_unchanged(&v, Errno::EBUSY, || cdev.bind_iommufd(f.ctx(), None));
    assert!(!cdev.has_access());
    drop(g);
    cdev.bind_iommufd(f.ctx(), None).unwrap();
    // Group open while a device is cdev-bound.
    fails_unchanged(&v, Errno::EBUSY, || v.open_group(4));
    // An unbound cdev open does not block.
    let other = v.open_cdev(index(&v, at(2, 0, 0))).unwrap();
    drop(v.open_group(5).unwrap());
    drop(other);
    drop(cdev);
    drop(v.open_group(4).unwrap());
}

#[test]
fn status_and_container() {
    let f = Fixture::new();
    let v = default_vfio(&f);
    let g = v.open_group(4).unwrap();
    assert_eq!(g.status().unwrap(), VFIO_GROUP_FLAGS_VIABLE);
    fails_unchanged(&v, Errno::EINVAL, || g.unset_container());
    assert_eq!(errno(f.ctx().vfio_ioas_get()), Errno::ENODEV);
    g.set_container(f.ctx()).unwrap();
    // The compat IOAS exists now, and setting claims nothing.
    let ioas = f.ctx().vfio_ioas_get().unwrap();
    assert_eq!(owner(&v, at(1, 0, 0)), GroupOwner::Kernel { users: 0 });
    assert!(g.has_container());
    assert_eq!(
        g.status().unwrap(),
        VFIO_GROUP_FLAGS_CONTAINER_SET | VFIO_GROUP_FLAGS_VIABLE
    );
    fails_unchanged(&v, Errno::EINVAL, || g.set_container(f.ctx()));
    g.unset_container().unwrap();
    assert!(!g.has_container());
    assert_eq!(g.status().unwrap(), VFIO_GROUP_FLAGS_VIABLE);
    // A second group on the same context shares its compat IOAS.
    let g5 = v.open_group(5).unwrap();
    g5.set_container(f.ctx()).unwrap();
    g.set_container(f.ctx()).unwrap();
    assert_eq!(f.ctx().vfio_ioas_get().unwrap(), ioas);
    // A context with a compat IOAS of its own keeps it.
    let ctx2 = Iommufd::open(&f.process);
    let mine = ctx2.ioas_alloc().unwrap();
    ctx2.vfio_ioas_set(mine).unwrap();
    g5.unset_container().unwrap();
    g5.set_container(&ctx2).unwrap();
    assert_eq!(ctx2.vfio_ioas_get().unwrap(), mine);
    // A resolver's error comes after the already-set check.
    let r = g5.set_container_with(|| {
        Err(softiommu::Error::Other {
            what: "not an iommufd",
            errno: Errno::EBADFD,
        })
    });
    assert_eq!(errno(r), Errno::EINVAL);
    g5.unset_container().unwrap();
    fails_unchanged(&v, Errno::EBADFD, || {
        g5.set_container_with(|| {
            Err(softiommu::Error::Other {
                what: "not an iommufd",
                errno: Errno::EBADFD,
            })
        })
    });
    assert!(!g5.has_container());
    // Closing the group file unsets its container: the group reopens bare.
    drop(g);
    let g = v.open_group(4).unwrap();
    assert!(!g.has_container());
}

#[test]
fn group_with_a_kernel_driver_is_not_viable() {
    let f = Fixture::new();
    let v = default_vfio(&f);
    let g6 = v.open_group(6).unwrap();
    assert_eq!(g6.status().unwrap(), 0);
    // The iommufd "container" claims nothing, so it can be set ...
    g6.set_container(f.ctx()).unwrap();
    assert_eq!(
        g6.status().unwrap(),
        VFIO_GROUP_FLAGS_CONTAINER_SET | VFIO_GROUP_FLAGS_VIABLE
    );
    // ... but the device open claims, and the sound driver holds the group.
    fails_unchanged(&v, Errno::EPERM, || g6.get_device_fd(&name(at(3, 0, 0))));
    // With the sibling unbound, it opens.
    g6.unset_container().unwrap();
    v.host().unbind(at(3, 0, 1)).unwrap();
    assert_eq!(g6.status().unwrap(), VFIO_GROUP_FLAGS_VIABLE);
    g6.set_container(f.ctx()).unwrap();
    drop(g6.get_device_fd(&name(at(3, 0, 0))).unwrap());
}

#[test]
fn get_device_fd_errors_change_nothing() {
    let f = Fixture::new();
    let v = default_vfio(&f);
    let a = at(1, 0, 0);
    let g = v.open_group(4).unwrap();
    // Name checks come before the container check.
    fails_unchanged(&v, Errno::ENODEV, || g.get_device_fd(b"0000:01:00.1"));
    fails_unchanged(&v, Errno::ENODEV, || g.get_device_fd(b"01:00.0"));
    fails_unchanged(&v, Errno::ENODEV, || g.get_device_fd(b""));
    fails_unchanged(&v, Errno::ENODEV, || g.get_device_fd(b"0000:01:00.0x"));
    // A device of another group.
    fails_unchanged(&v, Errno::ENODEV, || g.get_device_fd(&name(at(2, 0, 0))));
    fails_unchanged(&v, Errno::EINVAL, || g.get_device_fd(b"0000:01:00.0 bogus"));
    let token = b"0000:01:00.0 vf_token=2ab74924-c335-45f4-9b16-8569e5b08258";
    fails_unchanged(&v, Errno::EINVAL, || g.get_device_fd(token));
    // A known name without a container.
    fails_unchanged(&v, Errno::EINVAL, || g.get_device_fd(&name(a)));
    g.set_container(f.ctx()).unwrap();
    // Without a compat IOAS (cleared behind the group's back) the attach fails,
    // and the bind and claim are undone.
    f.ctx().vfio_ioas_clear();
    fails_unchanged(&v, Errno::ENODEV, || g.get_device_fd(&name(a)));
    assert!(on_default_domain(&v, a));
    // Trailing spaces are fine.
    let ioas = f.ctx().ioas_alloc().unwrap();
    f.ctx().vfio_ioas_set(ioas).unwrap();
    drop(g.get_device_fd(b"0000:01:00.0  ").unwrap());
    f.check();
}

/// Writes `v` to the device's BAR 0 at `off` through its file.
fn bar_w(file: &DeviceFile, off: u64, v: &[u8]) {
    assert_eq!(file.write(off, v).unwrap(), v.len());
}

fn bar_r32(file: &DeviceFile, off: u64) -> u32 {
    let mut b = [0u8; 4];
    file.read(off, &mut b).unwrap();
    u32::from_le_bytes(b)
}

fn config_offset() -> u64 {
    u64::from(VFIO_PCI_CONFIG_REGION_INDEX) << VFIO_PCI_OFFSET_SHIFT
}

fn set_command(file: &DeviceFile, v: u16) {
    let at = config_offset() + cfg::COMMAND as u64;
    assert_eq!(file.write(at, &v.to_le_bytes()).unwrap(), 2);
}

/// Leaves a mark in a model's registers that a reset erases (LIVENESS reads
/// back the complement of the last write; a reset makes that of 0). A reset
/// keeps configuration space, as the PCI core restores it.
fn mark(model: &dyn PciDevice) {
    model.bar_write(0, reg::LIVENESS, &1u32.to_le_bytes());
}

fn was_reset(model: &dyn PciDevice) -> bool {
    let mut b = [0u8; 4];
    model.bar_read(0, reg::LIVENESS, &mut b);
    u32::from_le_bytes(b) == !0
}

/// Has the edu behind `file` copy `len` bytes from `src` to `dst` (IOVAs);
/// returns its status.
fn dma_copy(file: &DeviceFile, src: u64, dst: u64, len: u32) -> u32 {
    bar_w(file, reg::SRC, &src.to_le_bytes());
    bar_w(file, reg::DST, &dst.to_le_bytes());
    bar_w(file, reg::LEN, &len.to_le_bytes());
    bar_w(file, reg::PASID, &0u32.to_le_bytes());
    bar_w(file, reg::CMD, &CMD_START.to_le_bytes());
    loop {
        let s = bar_r32(file, reg::STATUS);
        if s & STATUS_BUSY == 0 {
            return s;
        }
        std::thread::yield_now();
    }
}

#[test]
fn legacy_flow_dma_through_the_container() {
    let f = Fixture::new();
    let v = default_vfio(&f);
    let a = at(1, 0, 0);
    let ctx = f.ctx();
    let g = group_with(&v, a, ctx);
    ctx.vfio_set_iommu(VFIO_TYPE1v2_IOMMU).unwrap();
    let file = g.get_device_fd(&name(a)).unwrap();
    assert!(file.has_access() && file.group_path());
    assert_eq!(
        owner(&v, a),
        GroupOwner::User {
            cookie: ctx.cookie(),
            count: 1
        }
    );
    let (bound_to, devid) = file.device().binding().unwrap();
    assert_eq!(bound_to.cookie(), ctx.cookie());
    assert!(devid > 0);
    assert!(!on_default_domain(&v, a));
    // The group-path file needs no bind and takes none; cdev-only ioctls are not there.
    fails_unchanged(&v, Errno::EINVAL, || file.bind_iommufd(ctx, None));
    assert_eq!(errno(file.attach(None, 1)), Errno::ENOTTY);
    assert_eq!(
        file.info().unwrap().flags & VFIO_DEVICE_FLAGS_PCI,
        VFIO_DEVICE_FLAGS_PCI
    );

    let iova = 0x10_0000;
    let flags = MapFlags {
        readable: true,
        writeable: true,
    };
    ctx.vfio_map_dma(f.buffer, iova, 0x2000, flags).unwrap();
    let data: Vec<u8> = (0..64u8).collect();
    f.write(f.buffer, &data);
    set_command(&file, cfg::COMMAND_MEMORY | cfg::COMMAND_MASTER);
    assert_eq!(dma_copy(&file, iova, iova + 0x1000, 64), STATUS_DONE);
    assert_eq!(f.read(f.buffer + 0x1000, 64), data);
    assert_eq!(bar_r32(&file, reg::TRANSFERS), 1);

    // A second open of the same device shares the binding.
    let again = g.get_device_fd(&name(a)).unwrap();
    assert_eq!(again.device().binding().unwrap().1, devid);
    assert_eq!(
        owner(&v, a),
        GroupOwner::User {
            cookie: ctx.cookie(),
            count: 1
        }
    );
    drop(again);
    assert!(file.device().is_open());
    // Device files outlive the group file; the group is owned, so not viable.
    drop(g);
    assert_eq!(bar_r32(&file, reg::TRANSFERS), 1);
    let g = v.open_group(4).unwrap();
    assert_eq!(g.status().unwrap(), 0);
    drop(file);
    assert_eq!(g.status().unwrap(), VFIO_GROUP_FLAGS_VIABLE);
    assert_eq!(owner(&v, a), GroupOwner::Kernel { users: 0 });
    assert!(on_default_domain(&v, a));
    f.check();
}

#[test]
fn two_devices_of_a_group_share_one_container() {
    let f = Fixture::new();
    let v = two_on_bus_1(&f, false);
    let (a, b) = (at(1, 0, 0), at(1, 0, 1));
    assert_eq!(group_of(&v, a), group_of(&v, b));
    let g = group_with(&v, a, f.ctx());
    let fa = g.get_device_fd(&name(a)).unwrap();
    let fb = g.get_device_fd(&name(b)).unwrap();
    let cookie = f.ctx().cookie();
    assert_eq!(owner(&v, a), GroupOwner::User { cookie, count: 2 });
    // Another context cannot open a device of the owned group.
    let ctx2 = Iommufd::open(&f.process);
    g.unset_container().unwrap();
    g.set_container(&ctx2).unwrap();
    drop(fb);
    fails_unchanged(&v, Errno::EPERM, || g.get_device_fd(&name(b)));
    // A device already open shares its open, bound to the first context
    // (the kernel only counts opens after the first).
    let fa2 = g.get_device_fd(&name(a)).unwrap();
    assert_eq!(fa2.device().binding().unwrap().0.cookie(), cookie);
    assert_eq!(owner(&v, a), GroupOwner::User { cookie, count: 1 });
    drop(fa2);
    drop(fa);
    assert_eq!(owner(&v, a), GroupOwner::Kernel { users: 0 });
    drop(g.get_device_fd(&name(b)).unwrap());
}

#[test]
fn hot_reset_group_form() {
    let f = Fixture::new();
    let v = default_vfio(&f);
    let a = at(1, 0, 0);
    let g = group_with(&v, a, f.ctx());
    let file = g.get_device_fd(&name(a)).unwrap();
    assert_eq!(
        file.hot_reset_info().unwrap(),
        HotResetInfo {
            flags: 0,
            devices: vec![(a, 4)]
        }
    );
    let model = file.device().model.clone().unwrap();
    mark(&*model);
    fails_unchanged(&v, Errno::EINVAL, || file.hot_reset(&[]));
    fails_unchanged(&v, Errno::EINVAL, || file.hot_reset(&[5]));
    fails_unchanged(&v, Errno::EINVAL, || file.hot_reset(&[4, 5]));
    assert!(!was_reset(&*model));
    file.hot_reset(&[4]).unwrap();
    assert!(was_reset(&*model));
}

#[test]
fn hot_reset_cdev_form() {
    let f = Fixture::new();
    let v = default_vfio(&f);
    let a = at(1, 0, 0);
    let cdev = v.open_cdev(index(&v, a)).unwrap();
    assert_eq!(errno(cdev.hot_reset_info()), Errno::EINVAL);
    let devid = cdev.bind_iommufd(f.ctx(), None).unwrap();
    let owned = VFIO_PCI_HOT_RESET_FLAG_DEV_ID | VFIO_PCI_HOT_RESET_FLAG_DEV_ID_OWNED;
    assert_eq!(
        cdev.hot_reset_info().unwrap(),
        HotResetInfo {
            flags: owned,
            devices: vec![(a, devid)]
        }
    );
    let model = cdev.device().model.clone().unwrap();
    mark(&*model);
    fails_unchanged(&v, Errno::EINVAL, || cdev.hot_reset(&[4]));
    assert!(!was_reset(&*model));
    cdev.hot_reset(&[]).unwrap();
    assert!(was_reset(&*model));
}

#[test]
fn hot_reset_of_a_group_with_an_unopened_sibling() {
    let f = Fixture::new();
    let v = two_on_bus_1(&f, false);
    let (a, b) = (at(1, 0, 0), at(1, 0, 1));
    let cdev = v.open_cdev(index(&v, a)).unwrap();
    let devid = cdev.bind_iommufd(f.ctx(), None).unwrap();
    // The sibling is not bound, but its group is owned through the context.
    let owned = VFIO_PCI_HOT_RESET_FLAG_DEV_ID | VFIO_PCI_HOT_RESET_FLAG_DEV_ID_OWNED;
    assert_eq!(
        cdev.hot_reset_info().unwrap(),
        HotResetInfo {
            flags: owned,
            devices: vec![(a, devid), (b, VFIO_PCI_DEVID_OWNED)]
        }
    );
    let model_b = v.device(b).unwrap().model.clone().unwrap();
    mark(&*model_b);
    cdev.hot_reset(&[]).unwrap();
    assert!(was_reset(&*model_b), "the sibling was reset too");
}

#[test]
fn hot_reset_across_groups() {
    let f = Fixture::new();
    let v = two_on_bus_1(&f, true);
    let (a, b) = (at(1, 0, 0), at(1, 0, 1));
    let (ga, gb) = (group_of(&v, a), group_of(&v, b));
    assert_ne!(ga, gb);
    // cdev: the other function's group is not the context's.
    let cdev = v.open_cdev(index(&v, a)).unwrap();
    let devid = cdev.bind_iommufd(f.ctx(), None).unwrap();
    assert_eq!(
        cdev.hot_reset_info().unwrap(),
        HotResetInfo {
            flags: VFIO_PCI_HOT_RESET_FLAG_DEV_ID,
            devices: vec![(a, devid), (b, VFIO_PCI_DEVID_NOT_OWNED)]
        }
    );
    fails_unchanged(&v, Errno::EINVAL, || cdev.hot_reset(&[]));
    // Bound to the same context, it is owned.
    let cdev_b = v.open_cdev(index(&v, b)).unwrap();
    let devid_b = cdev_b.bind_iommufd(f.ctx(), None).unwrap();
    assert_eq!(cdev.hot_reset_info().unwrap().devices[1], (b, devid_b));
    cdev.hot_reset(&[]).unwrap();
    drop((cdev, cdev_b));
    // Group form: both groups must be named.
    let g = group_with(&v, a, f.ctx());
    let file = g.get_device_fd(&name(a)).unwrap();
    assert_eq!(
        file.hot_reset_info().unwrap(),
        HotResetInfo {
            flags: 0,
            devices: vec![(a, ga), (b, gb)]
        }
    );
    fails_unchanged(&v, Errno::EINVAL, || file.hot_reset(&[ga]));
    file.hot_reset(&[ga, gb]).unwrap();
    fails_unchanged(&v, Errno::EINVAL, || file.hot_reset(&[ga, gb, ga]));
}

#[test]
fn hot_reset_needs_every_function_on_vfio_pci_and_a_bridge() {
    let f = Fixture::new();
    let m = Machine::default_machine()
        .with_device(edu(at(0, 5, 0)))
        .unwrap();
    let v = vfio(&f, m);
    // 03:00.1 is on a kernel driver (then on none): the bus cannot be taken.
    v.host().unbind(at(3, 0, 1)).unwrap();
    let c = at(3, 0, 0);
    let g = group_with(&v, c, f.ctx());
    let file = g.get_device_fd(&name(c)).unwrap();
    assert_eq!(file.hot_reset_info().unwrap().devices.len(), 2);
    fails_unchanged(&v, Errno::EINVAL, || file.hot_reset(&[group_of(&v, c)]));
    // A function on the root bus: no bridge above it to reset the bus.
    let root = at(0, 5, 0);
    let g0 = group_with(&v, root, f.ctx());
    let file0 = g0.get_device_fd(&name(root)).unwrap();
    assert_eq!(errno(file0.hot_reset_info()), Errno::ENODEV);
    fails_unchanged(&v, Errno::ENODEV, || file0.hot_reset(&[group_of(&v, root)]));
}
