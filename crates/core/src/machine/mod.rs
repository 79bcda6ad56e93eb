//! The machine: the host that device assignment happens on, as data.
//!
//! A [`Machine`] is what Linux finds at boot: its IOMMU units (DMAR units for
//! VT-d, or the selftest's mock), one PCI segment with its buses, the bridges
//! that lead to them (root ports, switch ports, PCIe-to-PCI and conventional
//! PCI bridges, each with or without ACS), the functions on them with their
//! vendor and device IDs, the DMA-alias quirks some of them need, the IOMMU unit
//! each sits behind, and the driver each is bound to. From that it derives the
//! IOMMU groups exactly as Linux's `pci_device_group()` would (see [`group`]).
//!
//! This module owns descriptions only. It creates no iommufd object, claims no
//! DMA ownership and runs no driver: the `iommu` layer turns a group into DMA
//! ownership and VFIO into device files. It is the bottom of the stack and
//! knows nothing above it.
//!
//! # Invariants
//!
//! A `Machine` exists only validated ([`Machine::new`] is the one way in, and
//! the fields are private):
//! - every address is used once, by a bridge or by a device;
//! - every bus other than 0 (the root bus) is the secondary bus of exactly one
//!   bridge, whose own bus number is lower — so the tree has no cycles and every
//!   function has a path to the root bus;
//! - bridges sit where PCI allows them: root ports on the root bus, a switch's
//!   upstream port below a root port or downstream port, its downstream ports
//!   below that upstream port, a PCIe-to-PCI bridge on a PCIe bus, a
//!   conventional PCI bridge on a conventional bus;
//! - a function below a bridge sits behind the bridge's IOMMU unit, as DMAR
//!   device scopes cover a bridge's whole subtree; DMA-alias quirks stay on the
//!   device's own bus, as the kernel's alias mask does;
//! - the groups are computed once, on construction, and partition the
//!   functions: each function, bridges included, is in exactly one group, and
//!   a group never spans two IOMMU units.
//!
//! The groups are numbered in probe order from 0, as Linux's group IDA hands
//! them out at boot. Probe order is the order Linux's PCI scan adds functions:
//! every function on a bus by `devfn`, then the bus below each bridge on it, in
//! `devfn` order, depth first. Rebuilding a machine with one more device (see
//! [`Machine::with_device`]) describes a different boot, so numbers may move.

mod bdf;
mod config;
pub mod group;
pub mod host;

pub use bdf::Bdf;
pub use group::Group;

use crate::error::{Error, Result};
use crate::iommu::vtd::VtdCaps;
use core::fmt;

/// What kind of IOMMU hardware a unit is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum IommuKind {
    /// An Intel VT-d remapping unit with these capability registers.
    Vtd(VtdCaps),
    /// The kernel selftest's mock IOMMU.
    Mock,
}

/// One IOMMU unit (a DMAR unit on Intel).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IommuUnit {
    /// Its name, unique in the machine (Linux names DMAR units `dmar0`, ...).
    pub name: String,
    /// The hardware.
    pub kind: IommuKind,
}

/// ACS (Access Control Services) register state of a function.
///
/// `cap` is the ACS Capability register, `ctrl` the ACS Control register as
/// the kernel left it. Linux turns on every control among SV, RR, CR and UF
/// that the capability offers at boot; a control offered but left off is one
/// a kernel parameter (`pci=config_acs=`, `disable_acs_redir=`) or a quirk
/// turned off. A control the capability does not offer counts as hard-wired on,
/// except egress control (the PCIe rule Linux follows).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Acs {
    /// ACS Capability register bits.
    pub cap: u16,
    /// ACS Control register bits.
    pub ctrl: u16,
}

impl Acs {
    /// Source Validation.
    pub const SV: u16 = 0x01;
    /// Translation Blocking.
    pub const TB: u16 = 0x02;
    /// P2P Request Redirect.
    pub const RR: u16 = 0x04;
    /// P2P Completion Redirect.
    pub const CR: u16 = 0x08;
    /// Upstream Forwarding.
    pub const UF: u16 = 0x10;
    /// P2P Egress Control.
    pub const EC: u16 = 0x20;
    /// Direct Translated P2P.
    pub const DT: u16 = 0x40;
    /// The controls Linux requires for isolation (`REQ_ACS_FLAGS`).
    pub const REQUIRED: u16 = Self::SV | Self::RR | Self::CR | Self::UF;
    /// Register bit names, in bit order, as the TOML description spells them.
    pub const NAMES: [(&'static str, u16); 7] = [
        ("SV", Self::SV),
        ("TB", Self::TB),
        ("RR", Self::RR),
        ("CR", Self::CR),
        ("UF", Self::UF),
        ("EC", Self::EC),
        ("DT", Self::DT),
    ];

    /// A capability offering the required controls, all enabled: an isolating
    /// port as Linux configures it.
    pub const fn isolating() -> Acs {
        Acs {
            cap: Self::REQUIRED,
            ctrl: Self::REQUIRED,
        }
    }

    /// Whether every control in `flags` is in effect: enabled, or not offered
    /// (hard-wired) unless it is egress control.
    pub fn flags_enabled(&self, flags: u16) -> bool {
        let wanted = flags & (self.cap | Self::EC);
        self.ctrl & wanted == wanted
    }
}

/// What a bridge is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum BridgeKind {
    /// A PCIe root port, on the root bus.
    RootPort,
    /// A PCIe switch's upstream port.
    SwitchUpstream,
    /// A PCIe switch's downstream port.
    SwitchDownstream,
    /// A PCIe-to-PCI/PCI-X bridge: conventional PCI below it; the functions
    /// below reach the IOMMU with the bridge's alias requester ID
    /// (secondary bus, devfn 0).
    PcieToPci,
    /// A conventional PCI-to-PCI bridge, on a conventional bus; the functions
    /// below reach the IOMMU with the bridge's own requester ID.
    PciBridge,
}

impl BridgeKind {
    /// Whether the bridge is a PCI Express function.
    pub fn is_pcie(self) -> bool {
        self != BridgeKind::PciBridge
    }

    /// Whether its secondary bus is PCI Express (else conventional PCI).
    pub fn secondary_is_pcie(self) -> bool {
        !matches!(self, BridgeKind::PcieToPci | BridgeKind::PciBridge)
    }
}

/// The driver a function is bound to.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Driver {
    /// No driver (`none`).
    None,
    /// `vfio-pci`: user space owns the device's DMA.
    VfioPci,
    /// `pci-stub`: bound only to keep other drivers off; does no DMA.
    PciStub,
    /// A kernel driver that uses DMA (`e1000e`, `nvme`, `pcieport`, ...).
    Kernel(String),
}

impl Driver {
    /// The driver for a name as sysfs shows it; `"none"` is no driver.
    pub fn from_name(name: &str) -> Driver {
        match name {
            "none" => Driver::None,
            "vfio-pci" => Driver::VfioPci,
            "pci-stub" => Driver::PciStub,
            other => Driver::Kernel(other.to_owned()),
        }
    }

    /// The name; `"none"` when unbound.
    pub fn name(&self) -> &str {
        match self {
            Driver::None => "none",
            Driver::VfioPci => "vfio-pci",
            Driver::PciStub => "pci-stub",
            Driver::Kernel(name) => name,
        }
    }
}

impl fmt::Display for Driver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What emulates an endpoint's behaviour.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Model {
    /// The `edu` DMA test device ([`crate::devices::edu`], 1234:5d11).
    Edu,
    /// A function that does nothing on its own: it exists for topology,
    /// groups and driver binding.
    Passive,
}

/// A bridge: a function that leads to another bus.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Bridge {
    /// Its own address.
    pub bdf: Bdf,
    /// What it is.
    pub kind: BridgeKind,
    /// The bus number below it.
    pub secondary: u8,
    /// Vendor ID.
    pub vendor: u16,
    /// Device ID.
    pub device: u16,
    /// ACS, if it has the capability.
    pub acs: Option<Acs>,
    /// Bound driver (`pcieport` on PCIe ports, none on PCI bridges).
    pub driver: Driver,
    /// Index of its IOMMU unit in [`Machine::units`].
    pub unit: usize,
}

impl Bridge {
    /// A bridge with default IDs, no ACS, the usual driver, on unit 0.
    pub fn new(bdf: Bdf, kind: BridgeKind, secondary: u8) -> Bridge {
        let driver = if kind.secondary_is_pcie() {
            Driver::Kernel("pcieport".to_owned())
        } else {
            Driver::None
        };
        Bridge {
            bdf,
            kind,
            secondary,
            vendor: 0x8086,
            device: 0,
            acs: None,
            driver,
            unit: 0,
        }
    }
}

/// An endpoint function.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Device {
    /// Its address.
    pub bdf: Bdf,
    /// Vendor ID.
    pub vendor: u16,
    /// Device ID.
    pub device: u16,
    /// What emulates it.
    pub model: Model,
    /// Bound driver.
    pub driver: Driver,
    /// ACS, if it has the capability (it matters on multi-function devices).
    pub acs: Option<Acs>,
    /// Quirk: other functions on its bus whose requester ID its DMA may also
    /// carry (the kernel's `dma_alias_mask`); they need not exist.
    pub dma_alias: Vec<Bdf>,
    /// Index of its IOMMU unit in [`Machine::units`].
    pub unit: usize,
}

impl Device {
    /// A passive, unbound device without ACS or aliases, on unit 0.
    pub fn new(bdf: Bdf, vendor: u16, device: u16) -> Device {
        Device {
            bdf,
            vendor,
            device,
            model: Model::Passive,
            driver: Driver::None,
            acs: None,
            dma_alias: Vec::new(),
            unit: 0,
        }
    }
}

/// A validated machine description and its IOMMU groups.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Machine {
    units: Vec<IommuUnit>,
    bridges: Vec<Bridge>,
    devices: Vec<Device>,
    groups: Vec<Group>,
}

fn invalid(msg: String) -> Error {
    Error::Machine(msg)
}

impl Machine {
    /// Validates a description (see the module's invariants) and forms its
    /// IOMMU groups. Errors are [`Error::Machine`] (EINVAL) naming the
    /// offending unit, bridge or device.
    pub fn new(units: Vec<IommuUnit>, bridges: Vec<Bridge>, devices: Vec<Device>) -> Result<Self> {
        let mut m = Machine {
            units,
            bridges,
            devices,
            groups: Vec::new(),
        };
        m.validate()?;
        m.groups = group::form_groups(&m);
        Ok(m)
    }

    /// Parses a TOML description: arrays of `[[iommu]]`, `[[bridge]]` and
    /// `[[device]]` tables (the schema is documented in `machine/config.rs`;
    /// `examples/machines/default.toml` is an example). Unknown keys, bad
    /// values and impossible topologies are [`Error::Machine`] naming them.
    pub fn from_toml(text: &str) -> Result<Self> {
        config::parse(text)
    }

    /// The same machine with one more device.
    pub fn with_device(self, device: Device) -> Result<Self> {
        let Machine {
            units,
            bridges,
            mut devices,
            ..
        } = self;
        devices.push(device);
        Machine::new(units, bridges, devices)
    }

    /// The same machine with one more bridge.
    pub fn with_bridge(self, bridge: Bridge) -> Result<Self> {
        let Machine {
            units,
            mut bridges,
            devices,
            ..
        } = self;
        bridges.push(bridge);
        Machine::new(units, bridges, devices)
    }

    /// The IOMMU units; devices and bridges refer to them by index.
    pub fn units(&self) -> &[IommuUnit] {
        &self.units
    }

    /// The bridges, in description order.
    pub fn bridges(&self) -> &[Bridge] {
        &self.bridges
    }

    /// The endpoint devices, in description order.
    pub fn devices(&self) -> &[Device] {
        &self.devices
    }

    /// The endpoint at `bdf`.
    pub fn device(&self, bdf: Bdf) -> Option<&Device> {
        self.devices.iter().find(|d| d.bdf == bdf)
    }

    /// The bridge at `bdf`.
    pub fn bridge(&self, bdf: Bdf) -> Option<&Bridge> {
        self.bridges.iter().find(|b| b.bdf == bdf)
    }

    /// The bridge whose secondary bus is `bus`; `None` for the root bus.
    pub fn bridge_to(&self, bus: u8) -> Option<&Bridge> {
        self.bridges.iter().find(|b| b.secondary == bus)
    }

    /// The IOMMU groups, by ID (the ID is the index).
    pub fn groups(&self) -> &[Group] {
        &self.groups
    }

    /// The group of the function (bridge or device) at `bdf`.
    pub fn group_of(&self, bdf: Bdf) -> Option<&Group> {
        self.groups.iter().find(|g| g.devices.contains(&bdf))
    }

    /// The requester IDs the function's DMA may reach its IOMMU with, its own
    /// first: its quirk aliases, then one per aliasing bridge on the way up
    /// (a PCIe-to-PCI bridge's secondary bus with devfn 0, a conventional PCI
    /// bridge's own address). The same list as Linux's
    /// `pci_for_each_dma_alias()` visits.
    pub fn dma_aliases(&self, bdf: Bdf) -> Vec<Bdf> {
        let mut out = vec![bdf];
        if let Some(d) = self.device(bdf) {
            out.extend(d.dma_alias.iter().copied());
        }
        let mut bus = bdf.bus();
        while let Some(b) = self.bridge_to(bus) {
            match b.kind {
                BridgeKind::PcieToPci => out.push(Bdf::from_devfn(b.secondary, 0)),
                BridgeKind::PciBridge => out.push(b.bdf),
                _ => {}
            }
            bus = b.bdf.bus();
        }
        out
    }

    /// The built-in machine: one VT-d unit `dmar0` with the default
    /// capabilities, and on the root bus:
    /// - `00:19.0` an Intel NIC (8086:15bc) bound to `e1000e`, alone in its
    ///   group (a single-function integrated endpoint is isolated);
    /// - three root ports `00:1c.0`, `00:1c.1`, `00:1c.2` (one multi-function
    ///   slot) with ACS, each in its own group;
    /// - `01:00.0` an `edu` device on `vfio-pci` below the first port and
    ///   `02:00.0` another below the second, each alone in its group;
    /// - `03:00.0` (`edu`, `vfio-pci`) and `03:00.1` (passive audio function,
    ///   `snd_hda_intel`), a multi-function device without ACS below the third
    ///   port: both functions share one group, so that group is not viable for
    ///   VFIO while the audio function keeps its kernel driver.
    ///
    /// Groups: 0 = `00:19.0`, 1–3 = the root ports, 4 = `01:00.0`,
    /// 5 = `02:00.0`, 6 = `03:00.0` and `03:00.1`.
    /// `examples/machines/default.toml` describes the same machine.
    pub fn default_machine() -> Machine {
        let at = |bus, dev, func| Bdf::new(bus, dev, func).expect("constant address in range");
        let port = |func: u8, secondary: u8| Bridge {
            vendor: 0x8086,
            device: 0xa110 + u16::from(func),
            acs: Some(Acs::isolating()),
            ..Bridge::new(at(0, 0x1c, func), BridgeKind::RootPort, secondary)
        };
        let edu = |bdf| Device {
            model: Model::Edu,
            driver: Driver::VfioPci,
            ..Device::new(bdf, 0x1234, 0x5d11)
        };
        let units = vec![IommuUnit {
            name: "dmar0".to_owned(),
            kind: IommuKind::Vtd(VtdCaps::default()),
        }];
        let bridges = vec![port(0, 1), port(1, 2), port(2, 3)];
        let devices = vec![
            Device {
                driver: Driver::Kernel("e1000e".to_owned()),
                ..Device::new(at(0, 0x19, 0), 0x8086, 0x15bc)
            },
            edu(at(1, 0, 0)),
            edu(at(2, 0, 0)),
            edu(at(3, 0, 0)),
            Device {
                driver: Driver::Kernel("snd_hda_intel".to_owned()),
                ..Device::new(at(3, 0, 1), 0x1234, 0x11e9)
            },
        ];
        Machine::new(units, bridges, devices).expect("the built-in machine is valid")
    }

    fn validate(&self) -> Result<()> {
        if self.units.is_empty() {
            return Err(invalid("a machine needs at least one IOMMU unit".into()));
        }
        for (i, u) in self.units.iter().enumerate() {
            if self.units[..i].iter().any(|v| v.name == u.name) {
                return Err(invalid(format!("duplicate IOMMU unit name `{}`", u.name)));
            }
        }
        let mut seen = std::collections::BTreeSet::new();
        let functions = self
            .bridges
            .iter()
            .map(|b| (b.bdf, b.unit, "bridge"))
            .chain(self.devices.iter().map(|d| (d.bdf, d.unit, "device")));
        for (bdf, unit, what) in functions {
            if !seen.insert(bdf) {
                return Err(invalid(format!("duplicate PCI address {bdf}")));
            }
            if unit >= self.units.len() {
                return Err(invalid(format!("{what} {bdf}: no IOMMU unit {unit}")));
            }
            if bdf.bus() == 0 {
                continue;
            }
            let Some(up) = self.bridge_to(bdf.bus()) else {
                return Err(invalid(format!(
                    "{what} {bdf}: no bridge leads to bus {:02x}",
                    bdf.bus()
                )));
            };
            if up.unit != unit {
                return Err(invalid(format!(
                    "{what} {bdf}: behind IOMMU unit `{}` but below bridge {} of unit `{}`",
                    self.units[unit].name, up.bdf, self.units[up.unit].name
                )));
            }
        }
        for b in &self.bridges {
            if b.secondary <= b.bdf.bus() {
                return Err(invalid(format!(
                    "bridge {}: secondary bus {:02x} must be above its own bus",
                    b.bdf, b.secondary
                )));
            }
            if let Some(other) = self
                .bridges
                .iter()
                .find(|o| o.bdf != b.bdf && o.secondary == b.secondary)
            {
                return Err(invalid(format!(
                    "bridges {} and {} both lead to bus {:02x}",
                    b.bdf, other.bdf, b.secondary
                )));
            }
            let parent = self.bridge_to(b.bdf.bus()).map(|p| p.kind);
            let on_pcie = parent.is_none_or(|k| k.secondary_is_pcie());
            let fits = match b.kind {
                BridgeKind::RootPort => parent.is_none(),
                BridgeKind::SwitchUpstream => matches!(
                    parent,
                    Some(BridgeKind::RootPort | BridgeKind::SwitchDownstream)
                ),
                BridgeKind::SwitchDownstream => parent == Some(BridgeKind::SwitchUpstream),
                BridgeKind::PcieToPci => on_pcie,
                BridgeKind::PciBridge => !on_pcie,
            };
            if !fits {
                return Err(invalid(format!(
                    "bridge {}: a {:?} cannot sit on bus {:02x}",
                    b.bdf,
                    b.kind,
                    b.bdf.bus()
                )));
            }
        }
        for d in &self.devices {
            if let Some(a) = d
                .dma_alias
                .iter()
                .find(|a| a.bus() != d.bdf.bus() || **a == d.bdf)
            {
                return Err(invalid(format!(
                    "device {}: DMA alias {a} must be another function on the same bus",
                    d.bdf
                )));
            }
        }
        Ok(())
    }
}

/// The machine as `softiommu machine` prints it: the IOMMU units, then each
/// IOMMU group with its functions, their IDs, drivers and models, and whether
/// VFIO could use the group (no member bound to a driver that uses the
/// group's default domain).
impl fmt::Display for Machine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "IOMMU units:")?;
        for u in &self.units {
            match &u.kind {
                IommuKind::Vtd(c) => writeln!(
                    f,
                    "  {}: VT-d cap {:#018x} ecap {:#018x}",
                    u.name, c.cap, c.ecap
                )?,
                IommuKind::Mock => writeln!(f, "  {}: mock", u.name)?,
            }
        }
        writeln!(f, "IOMMU groups:")?;
        for g in &self.groups {
            let viable = g.devices.iter().all(|&bdf| {
                let driver = match (self.device(bdf), self.bridge(bdf)) {
                    (Some(d), _) => &d.driver,
                    (None, Some(b)) => &b.driver,
                    (None, None) => return true,
                };
                !host::uses_default_domain(driver)
            });
            let unit = self.units.get(g.unit).map_or("?", |u| u.name.as_str());
            let state = if viable { "viable" } else { "not viable" };
            writeln!(f, "  group {} ({unit}, {state}):", g.id)?;
            for &bdf in &g.devices {
                match (self.device(bdf), self.bridge(bdf)) {
                    (Some(d), _) => writeln!(
                        f,
                        "    {bdf} [{:04x}:{:04x}] {} driver {}",
                        d.vendor,
                        d.device,
                        match d.model {
                            Model::Edu => "edu",
                            Model::Passive => "passive",
                        },
                        d.driver
                    )?,
                    (None, Some(b)) => writeln!(
                        f,
                        "    {bdf} [{:04x}:{:04x}] bridge {:?} to bus {:02x} driver {}",
                        b.vendor, b.device, b.kind, b.secondary, b.driver
                    )?,
                    (None, None) => writeln!(f, "    {bdf}")?,
                }
            }
        }
        Ok(())
    }
}
