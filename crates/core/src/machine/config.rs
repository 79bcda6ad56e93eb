//! The TOML form of a machine description.
//!
//! Three arrays of tables; unknown keys are errors, so a typo never silently
//! describes another machine. Numbers may be TOML integers or, for register
//! values above `i64::MAX` (a VT-d `CAP_REG` often is), strings (`"0x..."`).
//!
//! ```toml
//! [[iommu]]
//! name = "dmar0"            # unique; devices refer to it
//! kind = "vtd"              # "vtd" or "mock"
//! cap = "0xd9d2078c40780c66" # optional, vtd only; default VtdCaps::default()
//! ecap = 0x3ef9ca4f050df    # optional, vtd only
//!
//! [[bridge]]
//! bdf = "00:1c.0"           # or "0000:00:1c.0"
//! kind = "root-port"        # root-port, switch-upstream, switch-downstream,
//!                           # pcie-to-pci, pci-bridge
//! secondary = 1             # the bus below it
//! vendor = 0x8086           # optional, default 0x8086
//! device = 0xa110           # optional, default 0
//! acs = ["SV", "RR", "CR", "UF"] # optional: the ACS controls in effect;
//!                           # absent = no ACS capability
//! acs_cap = ["SV", "RR", "CR", "UF", "EC"] # optional: the capability
//!                           # register; default SV RR CR UF plus `acs`
//! driver = "pcieport"       # optional; default pcieport on PCIe ports
//! iommu = "dmar0"           # optional; default the bridge above's, else
//!                           # the first unit
//!
//! [[device]]
//! bdf = "01:00.0"
//! vendor = 0x1234
//! device = 0x5d11
//! model = "edu"             # optional: "edu" or "passive" (default)
//! driver = "vfio-pci"       # optional: "none" (default), "vfio-pci",
//!                           # "pci-stub" or a kernel driver's name
//! acs = [...]               # optional, as for bridges
//! acs_cap = [...]
//! dma_alias = ["01:00.1"]   # optional: other requester IDs on its bus
//! iommu = "dmar0"           # optional, as for bridges
//! ```

use super::{Acs, Bdf, Bridge, BridgeKind, Device, Driver, IommuKind, IommuUnit, Machine, Model};
use crate::error::{Error, Result};
use crate::iommu::vtd::VtdCaps;
use serde::Deserialize;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Description {
    #[serde(default)]
    iommu: Vec<UnitDesc>,
    #[serde(default)]
    bridge: Vec<BridgeDesc>,
    #[serde(default)]
    device: Vec<DeviceDesc>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UnitDesc {
    name: String,
    kind: String,
    cap: Option<Register>,
    ecap: Option<Register>,
}

/// A register value: an integer, or a string for values TOML integers cannot
/// hold.
#[derive(Deserialize)]
#[serde(untagged)]
enum Register {
    Int(i64),
    Str(String),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BridgeDesc {
    bdf: Bdf,
    kind: BridgeKind,
    secondary: u8,
    vendor: Option<u16>,
    device: Option<u16>,
    acs: Option<Vec<String>>,
    acs_cap: Option<Vec<String>>,
    driver: Option<String>,
    iommu: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DeviceDesc {
    bdf: Bdf,
    vendor: u16,
    device: u16,
    model: Option<Model>,
    driver: Option<String>,
    acs: Option<Vec<String>>,
    acs_cap: Option<Vec<String>>,
    #[serde(default)]
    dma_alias: Vec<Bdf>,
    iommu: Option<String>,
}

fn bad(msg: String) -> Error {
    Error::Machine(msg)
}

fn register(r: &Register, what: &str) -> Result<u64> {
    match r {
        Register::Int(v) => u64::try_from(*v).map_err(|_| bad(format!("{what}: negative"))),
        Register::Str(s) => {
            let digits = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X"));
            let parsed = match digits {
                Some(hex) => u64::from_str_radix(&hex.replace('_', ""), 16),
                None => s.replace('_', "").parse(),
            };
            parsed.map_err(|_| bad(format!("{what}: `{s}` is not a 64-bit number")))
        }
    }
}

fn acs_bits(names: &[String], what: &str) -> Result<u16> {
    names.iter().try_fold(0, |bits, name| {
        let bit = Acs::NAMES
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, b)| *b)
            .ok_or_else(|| {
                bad(format!(
                    "{what}: unknown ACS control `{name}` (known: SV TB RR CR UF EC DT)"
                ))
            })?;
        Ok(bits | bit)
    })
}

fn acs(ctrl: &Option<Vec<String>>, cap: &Option<Vec<String>>, who: &str) -> Result<Option<Acs>> {
    let Some(ctrl) = ctrl else {
        if cap.is_some() {
            return Err(bad(format!("{who}: `acs_cap` without `acs`")));
        }
        return Ok(None);
    };
    let ctrl = acs_bits(ctrl, &format!("{who} acs"))?;
    let cap = match cap {
        Some(cap) => acs_bits(cap, &format!("{who} acs_cap"))?,
        None => Acs::REQUIRED | ctrl,
    };
    if ctrl & !cap != 0 {
        return Err(bad(format!(
            "{who}: `acs` enables controls that `acs_cap` does not offer"
        )));
    }
    Ok(Some(Acs { cap, ctrl }))
}

pub(super) fn parse(text: &str) -> Result<Machine> {
    let desc: Description = toml::from_str(text).map_err(|e| bad(e.to_string()))?;
    let mut units = Vec::new();
    for u in &desc.iommu {
        let who = format!("iommu `{}`", u.name);
        let kind = match u.kind.as_str() {
            "vtd" => {
                let mut caps = VtdCaps::default();
                if let Some(cap) = &u.cap {
                    caps.cap = register(cap, &format!("{who} cap"))?;
                }
                if let Some(ecap) = &u.ecap {
                    caps.ecap = register(ecap, &format!("{who} ecap"))?;
                }
                IommuKind::Vtd(caps)
            }
            "mock" if u.cap.is_none() && u.ecap.is_none() => IommuKind::Mock,
            "mock" => return Err(bad(format!("{who}: `cap`/`ecap` are for kind \"vtd\""))),
            other => {
                return Err(bad(format!(
                    "{who}: unknown kind `{other}` (known: vtd, mock)"
                )))
            }
        };
        units.push(IommuUnit {
            name: u.name.clone(),
            kind,
        });
    }
    let unit_index = |name: &Option<String>, who: &str| -> Result<Option<usize>> {
        name.as_ref()
            .map(|n| {
                units
                    .iter()
                    .position(|u| &u.name == n)
                    .ok_or_else(|| bad(format!("{who}: no IOMMU unit `{n}`")))
            })
            .transpose()
    };

    // Bridges inherit the unit of the bridge above; parents first, so go by
    // bus number (a bridge's secondary bus is always above its own).
    let mut order: Vec<&BridgeDesc> = desc.bridge.iter().collect();
    order.sort_by_key(|b| b.bdf);
    let mut bridges: Vec<Bridge> = Vec::new();
    let inherited = |bridges: &[Bridge], bus: u8| {
        bridges
            .iter()
            .find(|b| b.secondary == bus)
            .map_or(0, |b| b.unit)
    };
    for b in order {
        let who = format!("bridge {}", b.bdf);
        let mut bridge = Bridge::new(b.bdf, b.kind, b.secondary);
        bridge.vendor = b.vendor.unwrap_or(bridge.vendor);
        bridge.device = b.device.unwrap_or(bridge.device);
        bridge.acs = acs(&b.acs, &b.acs_cap, &who)?;
        if let Some(d) = &b.driver {
            bridge.driver = Driver::from_name(d);
        }
        bridge.unit = match unit_index(&b.iommu, &who)? {
            Some(u) => u,
            None => inherited(&bridges, b.bdf.bus()),
        };
        bridges.push(bridge);
    }
    let mut devices = Vec::new();
    for d in &desc.device {
        let who = format!("device {}", d.bdf);
        devices.push(Device {
            bdf: d.bdf,
            vendor: d.vendor,
            device: d.device,
            model: d.model.unwrap_or(Model::Passive),
            driver: d.driver.as_deref().map_or(Driver::None, Driver::from_name),
            acs: acs(&d.acs, &d.acs_cap, &who)?,
            dma_alias: d.dma_alias.clone(),
            unit: match unit_index(&d.iommu, &who)? {
                Some(u) => u,
                None => inherited(&bridges, d.bdf.bus()),
            },
        });
    }
    // Keep the description's bridge order.
    bridges.sort_by_key(|b| {
        desc.bridge
            .iter()
            .position(|d| d.bdf == b.bdf)
            .unwrap_or(usize::MAX)
    });
    Machine::new(units, bridges, devices)
}

#[cfg(test)]
mod tests {
    use super::*;
    use softiommu_uapi::Errno;

    fn err(text: &str) -> String {
        let e = Machine::from_toml(text).unwrap_err();
        assert_eq!(e.errno(), Errno::EINVAL);
        e.to_string()
    }

    const UNIT: &str = "[[iommu]]\nname = \"dmar0\"\nkind = \"vtd\"\n";

    #[test]
    fn example_file_is_the_default_machine() {
        let text = include_str!("../../../../examples/machines/default.toml");
        assert_eq!(
            Machine::from_toml(text).unwrap(),
            Machine::default_machine()
        );
    }

    #[test]
    fn registers_acs_and_inheritance() {
        let m = Machine::from_toml(
            r#"
            [[iommu]]
            name = "a"
            kind = "mock"
            [[iommu]]
            name = "b"
            kind = "vtd"
            cap = "0xd9d2_078c_4078_0c66"
            ecap = 0x1234
            [[bridge]]
            bdf = "0000:00:01.0"
            kind = "root-port"
            secondary = 1
            iommu = "b"
            acs = ["sv", "RR"]
            [[bridge]]
            bdf = "01:00.0"
            kind = "switch-upstream"
            secondary = 2
            [[device]]
            bdf = "02:00.0"
            vendor = 0x1234
            device = 0x5d11
            driver = "nvme"
            acs = ["SV"]
            acs_cap = ["SV"]
            dma_alias = ["02:00.1"]
            "#,
        )
        .unwrap();
        assert_eq!(m.units()[0].kind, IommuKind::Mock);
        assert_eq!(
            m.units()[1].kind,
            IommuKind::Vtd(VtdCaps {
                cap: 0xd9d2_078c_4078_0c66,
                ecap: 0x1234
            })
        );
        let rp = &m.bridges()[0];
        assert_eq!(
            rp.acs,
            Some(Acs {
                cap: Acs::REQUIRED,
                ctrl: Acs::SV | Acs::RR
            })
        );
        assert_eq!(rp.driver, Driver::Kernel("pcieport".into()));
        // Unit inherited down the tree: root port → upstream port → device.
        assert_eq!(m.bridges()[1].unit, 1);
        let d = m.device("02:00.0".parse().unwrap()).unwrap();
        assert_eq!(d.unit, 1);
        assert_eq!(d.driver, Driver::Kernel("nvme".into()));
        assert_eq!(d.model, Model::Passive);
        assert_eq!(
            d.acs,
            Some(Acs {
                cap: Acs::SV,
                ctrl: Acs::SV
            })
        );
        assert_eq!(d.dma_alias, vec!["02:00.1".parse().unwrap()]);
    }

    #[test]
    fn syntax_and_schema_errors_name_the_key() {
        assert!(err("[[iommu]\n").contains("bad machine description"));
        assert!(err(&format!("{UNIT}colour = 1\n")).contains("colour"));
        let e = err(&format!(
            "{UNIT}[[device]]\nbdf = \"00:02.0\"\nvendor = 1\ndevice = 2\nmodle = \"edu\"\n"
        ));
        assert!(e.contains("modle"), "{e}");
        let e = err(&format!(
            "{UNIT}[[device]]\nbdf = \"00:20.0\"\nvendor = 1\ndevice = 2\n"
        ));
        assert!(e.contains("00:20.0"), "{e}");
        let e = err(&format!(
            "{UNIT}[[device]]\nbdf = \"00:02.0\"\ndevice = 2\n"
        ));
        assert!(e.contains("vendor"), "{e}");
        let e = err(&format!(
            "{UNIT}[[device]]\nbdf = \"00:02.0\"\nvendor = 0x10000\ndevice = 2\n"
        ));
        assert!(e.contains("vendor") || e.contains("65536"), "{e}");
        let e = err(&format!(
            "{UNIT}[[device]]\nbdf = \"00:02.0\"\nvendor = 1\ndevice = 2\nmodel = \"gpu\"\n"
        ));
        assert!(e.contains("gpu"), "{e}");
        let e = err(&format!(
            "{UNIT}[[bridge]]\nbdf = \"00:01.0\"\nkind = \"hub\"\nsecondary = 1\n"
        ));
        assert!(e.contains("hub"), "{e}");
    }

    #[test]
    fn unit_errors() {
        assert!(err("").contains("at least one IOMMU unit"));
        assert!(err("[[iommu]]\nname = \"x\"\nkind = \"amd\"\n").contains("amd"));
        assert!(err("[[iommu]]\nname = \"x\"\nkind = \"mock\"\ncap = 1\n").contains("iommu `x`"));
        assert!(err("[[iommu]]\nname = \"x\"\nkind = \"vtd\"\ncap = -1\n").contains("cap"));
        assert!(err("[[iommu]]\nname = \"x\"\nkind = \"vtd\"\necap = \"0xzz\"\n").contains("ecap"));
        assert!(err(&format!("{UNIT}{UNIT}")).contains("duplicate IOMMU unit name `dmar0`"));
        let e = err(&format!(
            "{UNIT}[[device]]\nbdf = \"00:02.0\"\nvendor = 1\ndevice = 2\niommu = \"dmar9\"\n"
        ));
        assert!(
            e.contains("device 0000:00:02.0: no IOMMU unit `dmar9`"),
            "{e}"
        );
    }

    #[test]
    fn topology_errors_name_the_function() {
        let dev = |bdf: &str| format!("[[device]]\nbdf = \"{bdf}\"\nvendor = 1\ndevice = 2\n");
        let bridge = |bdf: &str, kind: &str, sec: u8| {
            format!("[[bridge]]\nbdf = \"{bdf}\"\nkind = \"{kind}\"\nsecondary = {sec}\n")
        };
        let e = err(&format!("{UNIT}{}{}", dev("00:02.0"), dev("0000:00:02.0")));
        assert!(e.contains("duplicate PCI address 0000:00:02.0"), "{e}");
        let e = err(&format!(
            "{UNIT}{}{}",
            bridge("00:02.0", "root-port", 1),
            dev("00:02.0")
        ));
        assert!(e.contains("duplicate PCI address 0000:00:02.0"), "{e}");
        let e = err(&format!("{UNIT}{}", dev("05:00.0")));
        assert!(
            e.contains("device 0000:05:00.0: no bridge leads to bus 05"),
            "{e}"
        );
        let e = err(&format!(
            "{UNIT}{}{}",
            bridge("00:01.0", "root-port", 1),
            bridge("00:02.0", "root-port", 1)
        ));
        assert!(e.contains("both lead to bus 01"), "{e}");
        let e = err(&format!(
            "{UNIT}{}",
            bridge("00:01.0", "switch-downstream", 1)
        ));
        assert!(e.contains("bridge 0000:00:01.0"), "{e}");
        let e = err(&format!(
            "{UNIT}{}{}",
            bridge("00:01.0", "root-port", 1),
            bridge("01:00.0", "root-port", 2)
        ));
        assert!(e.contains("bridge 0000:01:00.0"), "{e}");
        let e = err(&format!("{UNIT}{}", bridge("00:01.0", "pci-bridge", 1)));
        assert!(e.contains("bridge 0000:00:01.0"), "{e}");
        let e = err(&format!(
            "{UNIT}{}{}",
            bridge("00:01.0", "root-port", 2),
            bridge("02:00.0", "switch-upstream", 1)
        ));
        assert!(e.contains("must be above its own bus"), "{e}");
        let e = err(&format!(
            "{UNIT}{}dma_alias = [\"01:00.0\"]\n",
            dev("00:02.0")
        ));
        assert!(e.contains("DMA alias 0000:01:00.0"), "{e}");
        let e = err(&format!("{UNIT}{}acs = [\"SV\", \"XX\"]\n", dev("00:02.0")));
        assert!(
            e.contains("device 0000:00:02.0 acs: unknown ACS control `XX`"),
            "{e}"
        );
        let e = err(&format!(
            "{UNIT}{}acs = [\"SV\"]\nacs_cap = [\"RR\"]\n",
            dev("00:02.0")
        ));
        assert!(e.contains("does not offer"), "{e}");
        // A device below a bridge cannot name another unit.
        let e = err(&format!(
            "{UNIT}[[iommu]]\nname = \"dmar1\"\nkind = \"vtd\"\n{}{}iommu = \"dmar1\"\n",
            bridge("00:01.0", "root-port", 1),
            dev("01:00.0")
        ));
        assert!(
            e.contains("device 0000:01:00.0: behind IOMMU unit `dmar1`"),
            "{e}"
        );
    }
}
