//! The running host: IOMMU groups with DMA ownership and driver binding, as
//! Linux's IOMMU core and driver core keep them (docs/kernel-notes/vfio.md
//! §2.5, §3.2, §6). Every failing call is checked to change nothing.

use softiommu::iommu::dma::{AttachedDomain, Attachment, NO_PASID};
use softiommu::iommu::PagingFlags;
use softiommu::machine::host::{GroupDomain, GroupOwner, Host};
use softiommu::machine::{
    Bdf, Bridge, BridgeKind, Device, Driver, IommuKind, IommuUnit, Machine, Model,
};
use softiommu::mem::sim::SimMemory;
use softiommu::uapi::Errno;
use softiommu::Result;
use std::sync::Arc;

const A: u64 = 0xa;
const B: u64 = 0xb;

fn at(bus: u8, dev: u8, func: u8) -> Bdf {
    Bdf::new(bus, dev, func).unwrap()
}

fn host(machine: Machine) -> Arc<Host> {
    let mem = SimMemory::new(1 << 22).unwrap();
    Host::new(machine, mem).unwrap()
}

fn default_host() -> Arc<Host> {
    host(Machine::default_machine())
}

fn kernel(name: &str) -> Driver {
    Driver::Kernel(name.to_owned())
}

fn errno<T: std::fmt::Debug>(r: Result<T>) -> Errno {
    r.unwrap_err().errno()
}

/// Everything observable about the host, attachments included.
fn snap(h: &Host) -> String {
    let mut out = String::new();
    for g in h.groups() {
        out += &format!("{} {:?} {:?} {:?}\n", g.id, g.devices, g.owner, g.domain);
    }
    for d in h.devices() {
        let g = h.group(d.group).unwrap();
        let on_default = matches!(
            d.dev.attachment(NO_PASID).map(|a| a.domain),
            Some(AttachedDomain::Paging(p)) if Arc::ptr_eq(&p, &g.default_domain)
        );
        out += &format!(
            "{} {} {:?} {} {} {:?} {}\n",
            d.bdf,
            d.driver,
            d.driver_override,
            d.claims,
            d.group,
            d.dev.attached_pasids(),
            on_default
        );
    }
    out
}

/// Asserts that `f` fails with `want` and leaves the host as it was.
fn fails_unchanged<T: std::fmt::Debug>(h: &Host, want: Errno, f: impl FnOnce() -> Result<T>) {
    let before = snap(h);
    assert_eq!(errno(f()), want);
    assert_eq!(snap(h), before);
}

/// Whether every member of group `id` is attached at NO_PASID to the
/// group's default domain and nowhere else.
fn on_default(h: &Host, id: u32) -> bool {
    let g = h.group(id).unwrap();
    g.devices.iter().all(|b| {
        let d = h.device(*b).unwrap();
        let at_rid = matches!(
            d.dev.attachment(NO_PASID).map(|a| a.domain),
            Some(AttachedDomain::Paging(p)) if Arc::ptr_eq(&p, &g.default_domain)
        );
        at_rid && d.dev.attached_pasids() == [NO_PASID]
    })
}

fn blocked(h: &Host, id: u32) -> bool {
    let g = h.group(id).unwrap();
    g.devices
        .iter()
        .all(|b| h.device(*b).unwrap().dev.attached_pasids().is_empty())
}

fn user_attachment(h: &Host, bdf: Bdf) -> Attachment {
    let d = h.device(bdf).unwrap();
    let domain = d
        .dev
        .driver
        .domain_alloc_paging(&d.dev, PagingFlags::default())
        .unwrap();
    Attachment {
        domain: AttachedDomain::Paging(domain),
        iopf: None,
    }
}

#[test]
fn default_machine_comes_up_as_described() {
    let h = default_host();
    assert_eq!(h.groups().len(), 7);
    for g in h.groups() {
        assert!(on_default(&h, g.id), "group {}", g.id);
        assert_eq!(g.domain, GroupDomain::Default);
    }
    // e1000e and snd_hda_intel use their default domains; pcieport does not.
    assert_eq!(h.owner(0), Some(GroupOwner::Kernel { users: 1 }));
    assert_eq!(h.owner(1), Some(GroupOwner::Kernel { users: 0 }));
    assert_eq!(h.owner(4), Some(GroupOwner::Kernel { users: 0 }));
    assert_eq!(h.owner(6), Some(GroupOwner::Kernel { users: 1 }));
    assert_eq!(h.group(6).unwrap().devices, [at(3, 0, 0), at(3, 0, 1)]);

    let edu = h.device(at(3, 0, 0)).unwrap();
    assert_eq!(edu.dev.name, "0000:03:00.0");
    assert_eq!(edu.dev.flags, 20, "edu behind VT-d has 20-bit PASIDs");
    assert!(edu.model.is_some());
    assert_eq!(edu.driver, Driver::VfioPci);
    assert_eq!(edu.group, 6);
    let audio = h.device(at(3, 0, 1)).unwrap();
    assert_eq!((audio.dev.flags, audio.model.is_none()), (0, true));
    assert_eq!(audio.driver, kernel("snd_hda_intel"));
    let port = h.device(at(0, 0x1c, 0)).unwrap();
    assert!(port.bridge);
    assert_eq!((port.driver, port.group), (kernel("pcieport"), 1));
    // Every function sits behind the one unit's driver.
    assert!(edu.dev.same_iommu(&port.dev));
    assert!(h.device(at(9, 0, 0)).is_none());
    assert!(h.group(7).is_none());
}

#[test]
fn viability_follows_the_bound_drivers() {
    let h = default_host();
    // e1000e alone; an edu with snd_hda_intel beside it: not viable.
    assert!(!h.viable(0));
    assert!(!h.viable(6));
    // Root ports on pcieport, edus on vfio-pci: viable.
    for id in 1..=5 {
        assert!(h.viable(id), "group {id}");
    }
    assert!(!h.viable(99));
    h.unbind(at(3, 0, 1)).unwrap();
    assert!(h.viable(6));
    h.bind(at(3, 0, 1), Driver::PciStub).unwrap();
    assert!(h.viable(6));
    h.unbind(at(3, 0, 1)).unwrap();
    h.bind(at(3, 0, 1), kernel("snd_hda_intel")).unwrap();
    assert!(!h.viable(6));
}

#[test]
fn claim_with_a_kernel_dma_driver_in_the_group_is_eperm() {
    let h = default_host();
    fails_unchanged(&h, Errno::EPERM, || h.claim_dma_owner(at(3, 0, 0), A));
    // The device's own kernel driver counts too.
    fails_unchanged(&h, Errno::EPERM, || h.claim_dma_owner(at(0, 0x19, 0), A));
    h.unbind(at(3, 0, 1)).unwrap();
    assert_eq!(h.owner(6), Some(GroupOwner::Kernel { users: 0 }));
    h.claim_dma_owner(at(3, 0, 0), A).unwrap();
    assert_eq!(
        h.owner(6),
        Some(GroupOwner::User {
            cookie: A,
            count: 1
        })
    );
    assert_eq!(h.group(6).unwrap().domain, GroupDomain::Blocked);
    assert!(blocked(&h, 6), "the whole group is switched to blocking");
}

#[test]
fn claim_argument_and_owner_errors() {
    let h = default_host();
    fails_unchanged(&h, Errno::ENODEV, || h.claim_dma_owner(at(7, 0, 0), A));
    fails_unchanged(&h, Errno::EINVAL, || h.claim_dma_owner(at(1, 0, 0), 0));
    h.claim_dma_owner(at(1, 0, 0), A).unwrap();
    fails_unchanged(&h, Errno::EPERM, || h.claim_dma_owner(at(1, 0, 0), B));
    // Other groups are independent.
    h.claim_dma_owner(at(2, 0, 0), B).unwrap();
    assert_eq!(
        h.owner(5),
        Some(GroupOwner::User {
            cookie: B,
            count: 1
        })
    );
    assert_eq!(
        h.owner(4),
        Some(GroupOwner::User {
            cookie: A,
            count: 1
        })
    );
}

#[test]
fn claim_off_the_default_domain_is_ebusy() {
    let h = default_host();
    let edu = h.device(at(1, 0, 0)).unwrap();
    // Something attached a PASID while the kernel owns the group.
    edu.dev
        .set_attachment(3, Some(user_attachment(&h, at(1, 0, 0))));
    fails_unchanged(&h, Errno::EBUSY, || h.claim_dma_owner(at(1, 0, 0), A));
    edu.dev.set_attachment(3, None);
    // Another domain at the requester ID.
    edu.dev
        .set_attachment(NO_PASID, Some(user_attachment(&h, at(1, 0, 0))));
    fails_unchanged(&h, Errno::EBUSY, || h.claim_dma_owner(at(1, 0, 0), A));
    let g = h.group(4).unwrap();
    edu.dev.set_attachment(
        NO_PASID,
        Some(Attachment {
            domain: AttachedDomain::Paging(g.default_domain),
            iopf: None,
        }),
    );
    h.claim_dma_owner(at(1, 0, 0), A).unwrap();
}

#[test]
fn release_restores_the_default_domain_and_drops_user_attachments() {
    let h = default_host();
    let bdf = at(1, 0, 0);
    h.claim_dma_owner(bdf, A).unwrap();
    let dev = h.device(bdf).unwrap().dev;
    // What iommufd would have attached: a domain at the RID and at a PASID.
    dev.set_attachment(NO_PASID, Some(user_attachment(&h, bdf)));
    dev.set_attachment(7, Some(user_attachment(&h, bdf)));
    h.release_dma_owner(bdf).unwrap();
    assert_eq!(h.owner(4), Some(GroupOwner::Kernel { users: 0 }));
    assert_eq!(h.group(4).unwrap().domain, GroupDomain::Default);
    assert!(on_default(&h, 4));
    assert_eq!(h.device(bdf).unwrap().claims, 0);
    // Nothing left to release.
    fails_unchanged(&h, Errno::EINVAL, || h.release_dma_owner(bdf));
    fails_unchanged(&h, Errno::ENODEV, || h.release_dma_owner(at(7, 0, 0)));
    // And the group can be claimed again, by anyone.
    h.claim_dma_owner(bdf, B).unwrap();
}

/// A root port without ACS leading to a bus with two edus on vfio-pci and
/// a root-bus NIC on e1000e; one mock unit.
fn shared_group_machine(kind: IommuKind) -> Machine {
    let units = vec![IommuUnit {
        name: "unit0".into(),
        kind,
    }];
    let bridges = vec![Bridge::new(at(0, 1, 0), BridgeKind::RootPort, 1)];
    let edu = |bdf| Device {
        model: Model::Edu,
        driver: Driver::VfioPci,
        ..Device::new(bdf, 0x1234, 0x5d11)
    };
    let devices = vec![
        edu(at(1, 0, 0)),
        edu(at(1, 1, 0)),
        Device {
            driver: kernel("e1000e"),
            ..Device::new(at(0, 2, 0), 0x8086, 0x15bc)
        },
    ];
    Machine::new(units, bridges, devices).unwrap()
}

#[test]
fn two_devices_of_one_group_share_ownership() {
    for release_first in [at(1, 0, 0), at(1, 1, 0)] {
        let h = host(shared_group_machine(IommuKind::Mock));
        let id = h.device(at(1, 0, 0)).unwrap().group;
        assert_eq!(h.device(at(1, 1, 0)).unwrap().group, id);
        assert_eq!(h.device(at(0, 1, 0)).unwrap().group, id, "the port too");
        assert_eq!(
            h.device(at(1, 0, 0)).unwrap().dev.flags,
            0,
            "mock: no PASID width"
        );
        assert!(h.viable(id));

        h.claim_dma_owner(at(1, 0, 0), A).unwrap();
        fails_unchanged(&h, Errno::EPERM, || h.claim_dma_owner(at(1, 1, 0), B));
        h.claim_dma_owner(at(1, 1, 0), A).unwrap();
        assert_eq!(
            h.owner(id),
            Some(GroupOwner::User {
                cookie: A,
                count: 2
            })
        );

        let other = if release_first == at(1, 0, 0) {
            at(1, 1, 0)
        } else {
            at(1, 0, 0)
        };
        h.release_dma_owner(release_first).unwrap();
        assert_eq!(
            h.owner(id),
            Some(GroupOwner::User {
                cookie: A,
                count: 1
            })
        );
        assert!(blocked(&h, id), "still owned: still blocked");
        // The released device's claim is gone, the other's is not.
        fails_unchanged(&h, Errno::EINVAL, || h.release_dma_owner(release_first));
        h.release_dma_owner(other).unwrap();
        assert_eq!(h.owner(id), Some(GroupOwner::Kernel { users: 0 }));
        assert!(on_default(&h, id));
    }
}

#[test]
fn one_device_may_claim_twice_with_the_same_cookie() {
    let h = default_host();
    h.claim_dma_owner(at(1, 0, 0), A).unwrap();
    h.claim_dma_owner(at(1, 0, 0), A).unwrap();
    assert_eq!(
        h.owner(4),
        Some(GroupOwner::User {
            cookie: A,
            count: 2
        })
    );
    assert_eq!(h.device(at(1, 0, 0)).unwrap().claims, 2);
    h.release_dma_owner(at(1, 0, 0)).unwrap();
    assert!(blocked(&h, 4));
    h.release_dma_owner(at(1, 0, 0)).unwrap();
    assert!(on_default(&h, 4));
}

#[test]
fn binding_a_dma_driver_into_an_owned_group_is_ebusy() {
    let h = host(shared_group_machine(IommuKind::Vtd(Default::default())));
    let id = h.device(at(1, 0, 0)).unwrap().group;
    h.claim_dma_owner(at(1, 0, 0), A).unwrap();
    h.unbind(at(1, 1, 0)).unwrap();
    fails_unchanged(&h, Errno::EBUSY, || h.bind(at(1, 1, 0), kernel("nvme")));
    // Drivers that manage DMA themselves bind fine.
    h.bind(at(1, 1, 0), Driver::PciStub).unwrap();
    h.unbind(at(1, 1, 0)).unwrap();
    h.bind(at(1, 1, 0), Driver::VfioPci).unwrap();
    assert_eq!(
        h.owner(id),
        Some(GroupOwner::User {
            cookie: A,
            count: 1
        })
    );
    // Once released, the kernel driver may bind, and then claims are EPERM.
    h.release_dma_owner(at(1, 0, 0)).unwrap();
    h.unbind(at(1, 1, 0)).unwrap();
    h.bind(at(1, 1, 0), kernel("nvme")).unwrap();
    assert_eq!(h.owner(id), Some(GroupOwner::Kernel { users: 1 }));
    assert!(!h.viable(id));
    fails_unchanged(&h, Errno::EPERM, || h.claim_dma_owner(at(1, 0, 0), A));
    h.unbind(at(1, 1, 0)).unwrap();
    assert_eq!(h.owner(id), Some(GroupOwner::Kernel { users: 0 }));
}

#[test]
fn bind_and_unbind_errors() {
    let h = default_host();
    let edu = at(1, 0, 0);
    fails_unchanged(&h, Errno::EBUSY, || h.bind(edu, Driver::PciStub));
    fails_unchanged(&h, Errno::EBUSY, || h.bind(edu, Driver::VfioPci));
    fails_unchanged(&h, Errno::ENODEV, || h.bind(at(7, 0, 0), Driver::VfioPci));
    fails_unchanged(&h, Errno::ENODEV, || h.unbind(at(7, 0, 0)));
    fails_unchanged(&h, Errno::EINVAL, || h.bind(edu, Driver::None));
    h.unbind(edu).unwrap();
    assert_eq!(h.device(edu).unwrap().driver, Driver::None);
    fails_unchanged(&h, Errno::ENODEV, || h.unbind(edu));
    // Unbinding pcieport leaves the (zero) count alone.
    h.unbind(at(0, 0x1c, 0)).unwrap();
    assert_eq!(h.owner(1), Some(GroupOwner::Kernel { users: 0 }));
}

#[test]
fn driver_override_restricts_bind() {
    let h = default_host();
    let edu = at(1, 0, 0);
    h.unbind(edu).unwrap();
    h.driver_override(edu, Some("vfio-pci\n".into())).unwrap();
    assert_eq!(
        h.device(edu).unwrap().driver_override.as_deref(),
        Some("vfio-pci")
    );
    // Setting it binds nothing.
    assert_eq!(h.device(edu).unwrap().driver, Driver::None);
    fails_unchanged(&h, Errno::ENODEV, || h.bind(edu, Driver::PciStub));
    fails_unchanged(&h, Errno::ENODEV, || h.bind(edu, kernel("nvme")));
    fails_unchanged(&h, Errno::EINVAL, || {
        h.driver_override(edu, Some("x".repeat(4096)))
    });
    fails_unchanged(&h, Errno::ENODEV, || h.driver_override(at(7, 0, 0), None));
    h.bind(edu, Driver::VfioPci).unwrap();
    // An empty write clears it.
    h.unbind(edu).unwrap();
    h.driver_override(edu, Some(String::new())).unwrap();
    assert_eq!(h.device(edu).unwrap().driver_override, None);
    h.bind(edu, Driver::PciStub).unwrap();
}

#[test]
fn unbinding_vfio_pci_while_claimed_is_ebusy() {
    let h = default_host();
    let edu = at(2, 0, 0);
    h.claim_dma_owner(edu, A).unwrap();
    fails_unchanged(&h, Errno::EBUSY, || h.unbind(edu));
    h.release_dma_owner(edu).unwrap();
    h.unbind(edu).unwrap();
}

#[test]
fn hot_add_into_an_owned_group_refuses_the_kernel_driver() {
    let h = default_host();
    h.claim_dma_owner(at(1, 0, 0), A).unwrap();
    let before = h.group(4).unwrap();
    // A second function of the edu's slot, no ACS: it shares group 4.
    let added = h
        .hot_add(Device {
            driver: kernel("nvme"),
            ..Device::new(at(1, 0, 1), 0x8086, 0x0953)
        })
        .unwrap();
    assert_eq!(added.group, 4);
    assert_eq!(
        added.driver,
        Driver::None,
        "isolation: no kernel DMA driver"
    );
    assert!(
        added.dev.attached_pasids().is_empty(),
        "joins the blocked group"
    );
    assert_eq!(added.dev.name, "0000:01:00.1");
    let g = h.group(4).unwrap();
    assert_eq!(g.owner, before.owner);
    assert_eq!(g.devices, [at(1, 0, 0), at(1, 0, 1)]);
    assert!(h.viable(4));
    assert!(h.machine().device(at(1, 0, 1)).is_some());
    // vfio-pci is no DMA user: it binds on hot-add into an owned group.
    let vfio = h
        .hot_add(Device {
            driver: Driver::VfioPci,
            ..Device::new(at(1, 0, 2), 0x8086, 0x0953)
        })
        .unwrap();
    assert_eq!((vfio.group, vfio.driver), (4, Driver::VfioPci));
    // The release restores every member, the hot-added ones included.
    h.release_dma_owner(at(1, 0, 0)).unwrap();
    assert!(on_default(&h, 4));
    // The refused driver may bind now.
    h.bind(at(1, 0, 1), kernel("nvme")).unwrap();
    assert_eq!(h.owner(4), Some(GroupOwner::Kernel { users: 1 }));
}

#[test]
fn hot_add_into_a_kernel_group_and_into_a_new_group() {
    let h = default_host();
    let added = h
        .hot_add(Device {
            driver: kernel("nvme"),
            ..Device::new(at(1, 0, 1), 0x8086, 0x0953)
        })
        .unwrap();
    assert_eq!((added.group, added.driver.clone()), (4, kernel("nvme")));
    assert!(on_default(&h, 4));
    assert_eq!(h.owner(4), Some(GroupOwner::Kernel { users: 1 }));
    assert!(!h.viable(4));
    fails_unchanged(&h, Errno::EPERM, || h.claim_dma_owner(at(1, 0, 0), A));

    // A lone root-bus endpoint is isolated: a new group, numbered next.
    let edu = h
        .hot_add(Device {
            model: Model::Edu,
            driver: Driver::VfioPci,
            ..Device::new(at(0, 0x1f, 0), 0x1234, 0x5d11)
        })
        .unwrap();
    assert_eq!(edu.group, 7);
    assert!(edu.model.is_some());
    assert_eq!(edu.dev.flags, 20);
    assert!(on_default(&h, 7));
    assert_eq!(h.owner(7), Some(GroupOwner::Kernel { users: 0 }));
    h.claim_dma_owner(at(0, 0x1f, 0), A).unwrap();

    // An address in use, or one no bridge leads to: EINVAL, nothing changes.
    fails_unchanged(&h, Errno::EINVAL, || {
        h.hot_add(Device::new(at(1, 0, 0), 0x8086, 1))
    });
    fails_unchanged(&h, Errno::EINVAL, || {
        h.hot_add(Device::new(at(9, 0, 0), 0x8086, 1))
    });
}

/// What `softiommu machine` prints for the default machine: the unit, every
/// group with its viability, and each function's IDs, model and driver.
#[test]
fn machine_description_lists_groups_and_viability() {
    let text = softiommu::machine::Machine::default_machine().to_string();
    assert!(text.contains("dmar0: VT-d cap 0xd9d2078c40780c66"));
    assert!(text.contains(
        "group 0 (dmar0, not viable):\n    0000:00:19.0 [8086:15bc] passive driver e1000e"
    ));
    assert!(
        text.contains("group 4 (dmar0, viable):\n    0000:01:00.0 [1234:5d11] edu driver vfio-pci")
    );
    assert!(text.contains("group 6 (dmar0, not viable):"));
    assert_eq!(text.matches("  group ").count(), 7);
}

#[test]
fn rebind_moves_functions_as_sysfs_writes_would() {
    let h = default_host();
    // The audio function leaves its kernel driver for vfio-pci: group 6 is viable.
    assert!(!h.viable(6));
    h.rebind_all("0000:03:00.1=vfio-pci").unwrap();
    assert_eq!(h.device(at(3, 0, 1)).unwrap().driver, Driver::VfioPci);
    assert!(h.viable(6));
    assert_eq!(h.owner(6), Some(GroupOwner::Kernel { users: 0 }));
    // To no driver, and errors named with the failing item.
    h.rebind(at(3, 0, 1), Driver::None).unwrap();
    assert_eq!(h.device(at(3, 0, 1)).unwrap().driver, Driver::None);
    let e = h.rebind_all("0000:09:00.0=vfio-pci").unwrap_err();
    assert!(
        e.starts_with("`0000:09:00.0=vfio-pci`: ") && e.contains("ENODEV"),
        "{e}"
    );
    assert!(h.rebind_all("0000:03:00.1").is_err());
    // A DMA kernel driver into a group user space owns: EBUSY, and the
    // function is left unbound, as in Linux.
    h.claim_dma_owner(at(3, 0, 0), A).unwrap();
    h.bind(at(3, 0, 1), Driver::VfioPci).unwrap();
    assert_eq!(
        errno(h.rebind(at(3, 0, 1), kernel("snd_hda_intel"))),
        Errno::EBUSY
    );
    assert_eq!(h.device(at(3, 0, 1)).unwrap().driver, Driver::None);
}
