//! IOMMU group formation, as Linux does it for PCI.
//!
//! An IOMMU group is the smallest set of functions the IOMMU can tell apart
//! from the rest of the machine: DMA from one member may be seen with another
//! member's requester ID, or may reach another member peer-to-peer without
//! passing the IOMMU. Linux forms them in `pci_device_group()` as each function
//! is probed, joining a group already given to a function it cannot be told
//! apart from, or allocating a new one. This file follows those rules (read
//! from the kernel's behaviour; the code is ours):
//!
//! 1. **DMA aliases up the tree.** Walk the requester IDs the function's DMA
//!    may carry (`pci_for_each_dma_alias`): its own, then for each bridge above
//!    it that rewrites the requester ID — a PCIe-to-PCI bridge (alias: its
//!    secondary bus, devfn 0) or a conventional PCI bridge (its own address) —
//!    the bridge itself. If any of those already has a group, join it. The last
//!    aliasing bridge becomes the point the search continues from: below it the
//!    IOMMU cannot tell functions apart.
//! 2. **ACS up the tree.** From that point, climb bridge by bridge until the
//!    bridge above has an ACS path to the root bus (`pci_acs_path_enabled` with
//!    SV, RR, CR and UF: every bridge from there up is isolating). Each bridge
//!    climbed past could route peer-to-peer traffic without the IOMMU, so the
//!    function joins that bridge's group (it always has one: parents are probed
//!    first).
//! 3. **Alias quirks on the bus.** A function that lists another devfn of its
//!    bus as a DMA alias, or that another function lists, shares its group
//!    (`get_pci_alias_group`), recursively, also through the functions of those
//!    functions' slots (rule 4).
//! 4. **Functions of a slot without ACS.** A function of a multi-function
//!    device that does not isolate its functions with ACS joins the group of a
//!    sibling function that does not either (`get_pci_function_alias_group`).
//! 5. Otherwise a new group, numbered next.
//!
//! Whether a function isolates with ACS (`pci_acs_enabled`): never for
//! conventional PCI functions and PCIe-to-PCI bridges; for root and downstream
//! ports only with the ACS controls in effect; for endpoints and upstream ports
//! always when single-function (no peer to reach), and only with the controls
//! in effect when multi-function.
//!
//! Rules 3 and 4 remember which devfns they visited in one bitmap indexed by
//! devfn only, as Linux's does; the search stays on one bus, so the bus is
//! implied. Not modelled: the kernel's per-device ACS quirks, bridges that
//! are translation roots, VMD's real DMA device.
//!
//! Two IOMMU units never share a group. DMAR scopes give a bridge's subtree
//! to one unit (the machine enforces it), so rules 1 and 2 cannot cross; rules
//! 3 and 4 only look at functions of the probing function's unit.

use super::{Acs, Bdf, BridgeKind, Machine};

/// An IOMMU group: functions the IOMMU cannot isolate from each other.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Group {
    /// The group number, as `/sys/kernel/iommu_groups/<id>` shows it.
    pub id: u32,
    /// Index of the IOMMU unit all its members sit behind.
    pub unit: usize,
    /// Its members, bridges included, in probe order.
    pub devices: Vec<Bdf>,
}

/// How a function behaves towards ACS and aliasing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    /// An endpoint; `pcie` is false on a conventional PCI bus.
    Endpoint {
        pcie: bool,
    },
    Bridge(BridgeKind),
}

/// One PCI function, in probe order, with its links resolved to indices.
struct Func {
    bdf: Bdf,
    kind: Kind,
    acs: Option<Acs>,
    dma_alias: Vec<u8>,
    unit: usize,
    multifunction: bool,
    /// The bridge whose secondary bus this function sits on.
    upstream: Option<usize>,
}

struct Former {
    funcs: Vec<Func>,
    group: Vec<Option<u32>>,
    next_id: u32,
}

/// Forms the groups of a validated machine.
pub(super) fn form_groups(m: &Machine) -> Vec<Group> {
    let mut f = Former {
        funcs: probe_order(m),
        group: Vec::new(),
        next_id: 0,
    };
    f.group = vec![None; f.funcs.len()];
    for i in 0..f.funcs.len() {
        let g = f.device_group(i);
        f.group[i] = Some(g);
    }
    let mut groups: Vec<Group> = (0..f.next_id)
        .map(|id| Group {
            id,
            unit: 0,
            devices: Vec::new(),
        })
        .collect();
    for (func, g) in f.funcs.iter().zip(&f.group) {
        let g = &mut groups[g.expect("every function was probed") as usize];
        g.unit = func.unit;
        g.devices.push(func.bdf);
    }
    groups
}

/// The functions in the order Linux's scan adds them: a bus's functions by
/// devfn, then each bridge's bus, depth first.
fn probe_order(m: &Machine) -> Vec<Func> {
    let mut out = Vec::new();
    scan_bus(m, 0, true, None, &mut out);
    out
}

fn scan_bus(m: &Machine, bus: u8, pcie: bool, upstream: Option<usize>, out: &mut Vec<Func>) {
    let mut here: Vec<Func> = m
        .bridges
        .iter()
        .map(|b| (b.bdf, Kind::Bridge(b.kind), b.acs, Vec::new(), b.unit))
        .chain(m.devices.iter().map(|d| {
            let aliases = d.dma_alias.iter().map(|a| a.devfn()).collect();
            (d.bdf, Kind::Endpoint { pcie }, d.acs, aliases, d.unit)
        }))
        .filter(|(bdf, ..)| bdf.bus() == bus)
        .map(|(bdf, kind, acs, dma_alias, unit)| Func {
            bdf,
            kind,
            acs,
            dma_alias,
            unit,
            multifunction: false,
            upstream,
        })
        .collect();
    here.sort_by_key(|f| f.bdf);
    let slots: Vec<u8> = here.iter().map(|f| f.bdf.dev()).collect();
    for f in &mut here {
        f.multifunction = slots.iter().filter(|&&s| s == f.bdf.dev()).count() > 1;
    }
    let first = out.len();
    out.extend(here);
    for i in first..out.len() {
        if let Kind::Bridge(kind) = out[i].kind {
            let below = m
                .bridge(out[i].bdf)
                .expect("a bridge function comes from a bridge")
                .secondary;
            scan_bus(m, below, kind.secondary_is_pcie(), Some(i), out);
        }
    }
}

impl Former {
    fn is_pcie(&self, i: usize) -> bool {
        match self.funcs[i].kind {
            Kind::Endpoint { pcie } => pcie,
            Kind::Bridge(k) => k.is_pcie(),
        }
    }

    /// Whether function `i` isolates with the required ACS controls.
    fn acs_enabled(&self, i: usize) -> bool {
        let f = &self.funcs[i];
        let in_effect = || f.acs.is_some_and(|a| a.flags_enabled(Acs::REQUIRED));
        if !self.is_pcie(i) {
            return false;
        }
        match f.kind {
            Kind::Bridge(BridgeKind::PcieToPci) => false,
            Kind::Bridge(BridgeKind::RootPort | BridgeKind::SwitchDownstream) => in_effect(),
            _ => !f.multifunction || in_effect(),
        }
    }

    /// Whether every function from `i` up to the root bus isolates.
    fn acs_path_enabled(&self, mut i: usize) -> bool {
        loop {
            if !self.acs_enabled(i) {
                return false;
            }
            match self.funcs[i].upstream {
                None => return true,
                Some(up) => i = up,
            }
        }
    }

    /// The group of `i`, if it has one and sits behind `unit`.
    fn existing(&self, i: usize, unit: usize) -> Option<u32> {
        self.group[i].filter(|_| self.funcs[i].unit == unit)
    }

    fn device_group(&mut self, i: usize) -> u32 {
        let unit = self.funcs[i].unit;
        // Rule 1: the function, then each aliasing bridge above it.
        if let Some(g) = self.existing(i, unit) {
            return g;
        }
        let mut point = i;
        let mut up = self.funcs[i].upstream;
        while let Some(b) = up {
            if let Kind::Bridge(BridgeKind::PcieToPci | BridgeKind::PciBridge) = self.funcs[b].kind
            {
                point = b;
                if let Some(g) = self.existing(b, unit) {
                    return g;
                }
            }
            up = self.funcs[b].upstream;
        }
        // Rule 2: climb while the bridge above lacks an isolating ACS path.
        while let Some(b) = self.funcs[point].upstream {
            if self.acs_path_enabled(b) {
                break;
            }
            point = b;
            if let Some(g) = self.existing(b, unit) {
                return g;
            }
        }
        // Rules 3 and 4.
        let mut visited = [false; 256];
        if let Some(g) = self.alias_group(point, unit, &mut visited) {
            return g;
        }
        if let Some(g) = self.function_alias_group(point, unit, &mut visited) {
            return g;
        }
        // Rule 5.
        let g = self.next_id;
        self.next_id += 1;
        g
    }

    fn same_bus_others(&self, i: usize, unit: usize) -> impl Iterator<Item = usize> + '_ {
        let bus = self.funcs[i].bdf.bus();
        (0..self.funcs.len()).filter(move |&t| {
            t != i && self.funcs[t].bdf.bus() == bus && self.funcs[t].unit == unit
        })
    }

    fn are_dma_aliases(&self, a: usize, b: usize) -> bool {
        let (fa, fb) = (&self.funcs[a], &self.funcs[b]);
        fa.dma_alias.contains(&fb.bdf.devfn()) || fb.dma_alias.contains(&fa.bdf.devfn())
    }

    /// Rule 3.
    fn alias_group(&self, i: usize, unit: usize, visited: &mut [bool; 256]) -> Option<u32> {
        let devfn = usize::from(self.funcs[i].bdf.devfn());
        if std::mem::replace(&mut visited[devfn], true) {
            return None;
        }
        if let Some(g) = self.existing(i, unit) {
            return Some(g);
        }
        let aliases: Vec<usize> = self
            .same_bus_others(i, unit)
            .filter(|&t| self.are_dma_aliases(i, t))
            .collect();
        aliases.into_iter().find_map(|t| {
            self.alias_group(t, unit, visited)
                .or_else(|| self.function_alias_group(t, unit, visited))
        })
    }

    /// Rule 4.
    fn function_alias_group(
        &self,
        i: usize,
        unit: usize,
        visited: &mut [bool; 256],
    ) -> Option<u32> {
        if !self.funcs[i].multifunction || self.acs_enabled(i) {
            return None;
        }
        let slot = self.funcs[i].bdf.dev();
        let siblings: Vec<usize> = self
            .same_bus_others(i, unit)
            .filter(|&t| self.funcs[t].bdf.dev() == slot && !self.acs_enabled(t))
            .collect();
        siblings
            .into_iter()
            .find_map(|t| self.alias_group(t, unit, visited))
    }
}

#[cfg(test)]
mod tests {
    use super::super::{Bridge, Device, IommuKind, IommuUnit};
    use super::*;
    use crate::iommu::vtd::VtdCaps;

    fn at(s: &str) -> Bdf {
        s.parse().unwrap()
    }

    fn port(bdf: &str, kind: BridgeKind, secondary: u8, acs: Option<Acs>) -> Bridge {
        Bridge {
            acs,
            ..Bridge::new(at(bdf), kind, secondary)
        }
    }

    fn rp(bdf: &str, secondary: u8, acs: bool) -> Bridge {
        let acs = acs.then(Acs::isolating);
        port(bdf, BridgeKind::RootPort, secondary, acs)
    }

    fn ep(bdf: &str) -> Device {
        Device::new(at(bdf), 0x1234, 0x5d11)
    }

    fn ep_acs(bdf: &str) -> Device {
        Device {
            acs: Some(Acs::isolating()),
            ..ep(bdf)
        }
    }

    fn ep_alias(bdf: &str, alias: &str) -> Device {
        Device {
            dma_alias: vec![at(alias)],
            ..ep(bdf)
        }
    }

    fn unit(name: &str) -> IommuUnit {
        IommuUnit {
            name: name.into(),
            kind: IommuKind::Vtd(VtdCaps::default()),
        }
    }

    fn machine(bridges: Vec<Bridge>, devices: Vec<Device>) -> Machine {
        Machine::new(vec![unit("dmar0")], bridges, devices).unwrap()
    }

    /// The groups as lists of `bb:dd.f`, checking on the way that they are
    /// numbered by index and partition the functions.
    fn groups(m: &Machine) -> Vec<Vec<String>> {
        let mut all: Vec<Bdf> = m.groups().iter().flat_map(|g| g.devices.clone()).collect();
        let count = m.bridges().len() + m.devices().len();
        all.sort();
        all.dedup();
        assert_eq!(all.len(), count, "every function in exactly one group");
        m.groups()
            .iter()
            .enumerate()
            .map(|(i, g)| {
                assert_eq!(g.id as usize, i);
                assert!(!g.devices.is_empty());
                g.devices
                    .iter()
                    .map(|b| b.to_string()[5..].to_owned())
                    .collect()
            })
            .collect()
    }

    fn g(members: &[&str]) -> Vec<String> {
        members.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn acs_root_ports_isolate_their_endpoints() {
        let m = machine(
            vec![rp("00:01.0", 1, true), rp("00:02.0", 2, true)],
            vec![ep("01:00.0"), ep("02:00.0")],
        );
        // Each root port has an isolating ACS path to the root bus, so the
        // search for a shared upstream point stops at once: one group each.
        // Numbers follow the scan: the root bus first, then each bus below.
        assert_eq!(
            groups(&m),
            vec![
                g(&["00:01.0"]),
                g(&["00:02.0"]),
                g(&["01:00.0"]),
                g(&["02:00.0"])
            ]
        );
    }

    #[test]
    fn probe_order_numbers_the_root_bus_first() {
        let m = machine(
            vec![rp("00:01.0", 1, true)],
            vec![ep("01:00.0"), ep("00:1f.0")],
        );
        // Linux's scan adds every function of bus 0 before it descends.
        assert_eq!(
            groups(&m),
            vec![g(&["00:01.0"]), g(&["00:1f.0"]), g(&["01:00.0"])]
        );
        assert_eq!(m.group_of(at("01:00.0")).unwrap().id, 2);
    }

    #[test]
    fn switch_ports_with_and_without_acs() {
        let switch = |root_acs: bool| {
            machine(
                vec![
                    rp("00:01.0", 1, root_acs),
                    port("01:00.0", BridgeKind::SwitchUpstream, 2, None),
                    port(
                        "02:00.0",
                        BridgeKind::SwitchDownstream,
                        3,
                        Some(Acs::isolating()),
                    ),
                    port("02:01.0", BridgeKind::SwitchDownstream, 4, None),
                ],
                vec![ep("03:00.0"), ep("04:00.0")],
            )
        };
        // With an isolating root port: a single-function upstream port needs
        // no ACS (it has no peer), so the path above each downstream port is
        // isolating and each port has its own group. The endpoint below the
        // ACS downstream port is alone; the one below the port without ACS
        // could be reached peer-to-peer through that port, so it joins the
        // port's group.
        assert_eq!(
            groups(&switch(true)),
            vec![
                g(&["00:01.0"]),
                g(&["01:00.0"]),
                g(&["02:00.0"]),
                g(&["02:01.0", "04:00.0"]),
                g(&["03:00.0"]),
            ]
        );
        // Without ACS at the root port no path below it is isolating: every
        // function climbs to the root port and joins its group.
        assert_eq!(
            groups(&switch(false)),
            vec![g(&[
                "00:01.0", "01:00.0", "02:00.0", "02:01.0", "03:00.0", "04:00.0"
            ])]
        );
    }

    #[test]
    fn acs_controls_decide_isolation() {
        let with = |acs: Acs| {
            let m = machine(
                vec![port("00:01.0", BridgeKind::RootPort, 1, Some(acs))],
                vec![ep("01:00.0")],
            );
            groups(&m).len()
        };
        // All four required controls on: isolated (root port, endpoint).
        assert_eq!(with(Acs::isolating()), 2);
        // Offered but CR and UF left off (say by `pci=config_acs=`): not
        // isolating, the endpoint shares the port's group.
        let partial = Acs {
            cap: Acs::REQUIRED,
            ctrl: Acs::SV | Acs::RR,
        };
        assert_eq!(with(partial), 1);
        // CR and UF not offered at all count as hard-wired on: isolating.
        let hardwired = Acs {
            cap: Acs::SV | Acs::RR,
            ctrl: Acs::SV | Acs::RR,
        };
        assert_eq!(with(hardwired), 2);
        // The capability present with nothing enabled: not isolating.
        let off = Acs {
            cap: Acs::REQUIRED,
            ctrl: 0,
        };
        assert_eq!(with(off), 1);
        // Egress control is never assumed, but it is not required either.
        let egress = Acs {
            cap: Acs::REQUIRED | Acs::EC,
            ctrl: Acs::REQUIRED,
        };
        assert_eq!(with(egress), 2);
    }

    #[test]
    fn multifunction_devices_with_and_without_acs() {
        let below = |devices| machine(vec![rp("00:01.0", 1, true)], devices);
        // Functions of one device without ACS may reach each other inside the
        // device: one group.
        assert_eq!(
            groups(&below(vec![ep("01:00.0"), ep("01:00.1")]))[1],
            g(&["01:00.0", "01:00.1"])
        );
        // With ACS on each function they are isolated from each other.
        let m = below(vec![ep_acs("01:00.0"), ep_acs("01:00.1")]);
        assert_eq!(groups(&m)[1..], [g(&["01:00.0"]), g(&["01:00.1"])]);
        // A function with ACS stays out of its siblings' group; the two
        // without ACS share one.
        let m = below(vec![ep("01:00.0"), ep_acs("01:00.1"), ep("01:00.2")]);
        assert_eq!(
            groups(&m)[1..],
            [g(&["01:00.0", "01:00.2"]), g(&["01:00.1"])]
        );
        // A single-function device needs no ACS to be isolated.
        assert_eq!(groups(&below(vec![ep("01:00.0")]))[1], g(&["01:00.0"]));
    }

    #[test]
    fn root_ports_of_one_slot_without_acs_share_everything_below() {
        let m = machine(
            vec![rp("00:1c.0", 1, false), rp("00:1c.4", 2, false)],
            vec![ep("01:00.0"), ep("02:00.0")],
        );
        // The two ports are functions of one multi-function slot without
        // ACS, so they share a group; each endpoint climbs to its port
        // (no ACS on the path) and joins that group.
        assert_eq!(
            groups(&m),
            vec![g(&["00:1c.0", "00:1c.4", "01:00.0", "02:00.0"])]
        );
    }

    #[test]
    fn pcie_to_pci_bridge_aliases_everything_below() {
        let m = machine(
            vec![
                rp("00:1c.0", 1, true),
                port("01:00.0", BridgeKind::PcieToPci, 2, None),
                port("02:08.0", BridgeKind::PciBridge, 3, None),
            ],
            vec![ep("02:00.0"), ep("02:01.0"), ep("03:00.0")],
        );
        // Conventional PCI below the bridge reaches the IOMMU with the bridge's
        // alias requester ID, so the IOMMU cannot tell the functions apart:
        // they join the bridge's own group. A conventional PCI bridge further
        // down aliases with its own ID, which ends in the same group.
        assert_eq!(
            groups(&m),
            vec![
                g(&["00:1c.0"]),
                g(&["01:00.0", "02:00.0", "02:01.0", "02:08.0", "03:00.0"]),
            ]
        );
        assert_eq!(
            m.dma_aliases(at("02:01.0")),
            vec![at("02:01.0"), at("02:00.0")]
        );
        assert_eq!(
            m.dma_aliases(at("03:00.0")),
            vec![at("03:00.0"), at("02:08.0"), at("02:00.0")]
        );
        assert_eq!(m.dma_aliases(at("01:00.0")), vec![at("01:00.0")]);
    }

    #[test]
    fn pcie_to_pci_bridge_below_a_port_without_acs() {
        let m = machine(
            vec![
                rp("00:1c.0", 1, false),
                port("01:00.0", BridgeKind::PcieToPci, 2, None),
            ],
            vec![ep("02:00.0")],
        );
        // The alias point is the bridge; from there the port above has no
        // ACS, so the bridge (and so all behind it) is in the port's group.
        assert_eq!(groups(&m), vec![g(&["00:1c.0", "01:00.0", "02:00.0"])]);
    }

    #[test]
    fn dma_alias_quirks() {
        // The device that lists the alias is probed second: it finds the
        // function it aliases already grouped and joins it.
        let m = machine(vec![], vec![ep("00:02.0"), ep_alias("00:05.0", "00:02.0")]);
        assert_eq!(groups(&m), vec![g(&["00:02.0", "00:05.0"])]);
        // The other way round: a function another one aliases joins it too.
        let m = machine(vec![], vec![ep_alias("00:02.0", "00:05.0"), ep("00:05.0")]);
        assert_eq!(groups(&m), vec![g(&["00:02.0", "00:05.0"])]);
        assert_eq!(
            m.dma_aliases(at("00:02.0")),
            vec![at("00:02.0"), at("00:05.0")]
        );
        // An alias to a function that does not exist (a phantom function)
        // shares with nobody.
        let m = machine(vec![], vec![ep_alias("00:02.0", "00:02.1"), ep("00:03.0")]);
        assert_eq!(groups(&m), vec![g(&["00:02.0"]), g(&["00:03.0"])]);
        // Aliases are followed through the functions of the aliased slot:
        // 00:07.1 has no alias but shares a slot without ACS with 00:07.0,
        // which 00:04.0 aliases.
        let m = machine(
            vec![],
            vec![ep_alias("00:04.0", "00:07.0"), ep("00:07.0"), ep("00:07.1")],
        );
        assert_eq!(groups(&m), vec![g(&["00:04.0", "00:07.0", "00:07.1"])]);
        // Below an isolating root port the same holds on its bus.
        let m = machine(
            vec![rp("00:01.0", 1, true)],
            vec![ep_alias("01:00.0", "01:01.0"), ep("01:01.0")],
        );
        assert_eq!(
            groups(&m),
            vec![g(&["00:01.0"]), g(&["01:00.0", "01:01.0"])]
        );
    }

    #[test]
    fn two_iommu_units_never_share_a_group() {
        let on = |d: Device, unit| Device { unit, ..d };
        let mut rp1 = rp("00:02.0", 2, false);
        rp1.unit = 1;
        let m = Machine::new(
            vec![unit("dmar0"), unit("dmar1")],
            vec![rp("00:01.0", 1, false), rp1],
            vec![
                on(ep("00:03.0"), 0),
                on(ep("00:03.1"), 1),
                on(ep_alias("00:04.0", "00:05.0"), 0),
                on(ep("00:05.0"), 1),
                on(ep("01:00.0"), 0),
                on(ep("02:00.0"), 1),
            ],
        )
        .unwrap();
        // 00:03.0/00:03.1 (a slot without ACS) and 00:04.0/00:05.0 (an alias
        // quirk) would share groups behind one unit; behind two they cannot.
        // Below each port the usual rule holds, within the port's unit.
        assert_eq!(
            groups(&m),
            vec![
                g(&["00:01.0", "01:00.0"]),
                g(&["00:02.0", "02:00.0"]),
                g(&["00:03.0"]),
                g(&["00:03.1"]),
                g(&["00:04.0"]),
                g(&["00:05.0"]),
            ]
        );
        let units: Vec<usize> = m.groups().iter().map(|g| g.unit).collect();
        assert_eq!(units, vec![0, 1, 0, 1, 0, 1]);
    }

    #[test]
    fn default_machine_groups() {
        let m = Machine::default_machine();
        // See `Machine::default_machine`: the NIC and the three ACS root
        // ports alone, each edu below an ACS port alone, and the two
        // functions of the multi-function device without ACS together.
        assert_eq!(
            groups(&m),
            vec![
                g(&["00:19.0"]),
                g(&["00:1c.0"]),
                g(&["00:1c.1"]),
                g(&["00:1c.2"]),
                g(&["01:00.0"]),
                g(&["02:00.0"]),
                g(&["03:00.0", "03:00.1"]),
            ]
        );
        let shared = m.group_of(at("03:00.1")).unwrap();
        let drivers: Vec<String> = shared
            .devices
            .iter()
            .map(|b| m.device(*b).unwrap().driver.to_string())
            .collect();
        assert_eq!(drivers, ["vfio-pci", "snd_hda_intel"]);
    }

    #[test]
    fn adding_a_device_regroups() {
        let m = Machine::default_machine()
            .with_device(Device {
                driver: super::super::Driver::VfioPci,
                ..ep("01:00.1")
            })
            .unwrap();
        // A second function without ACS next to 01:00.0 joins its group.
        assert_eq!(
            m.group_of(at("01:00.1")).unwrap().devices,
            vec![at("01:00.0"), at("01:00.1")]
        );
        let e = Machine::default_machine()
            .with_device(ep("09:00.0"))
            .unwrap_err();
        assert!(e.to_string().contains("no bridge leads to bus 09"));
        let m = Machine::default_machine()
            .with_bridge(rp("00:1d.0", 4, true))
            .unwrap()
            .with_device(ep("04:00.0"))
            .unwrap();
        assert_eq!(
            m.group_of(at("04:00.0")).unwrap().devices,
            vec![at("04:00.0")]
        );
    }
}
