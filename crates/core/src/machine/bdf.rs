//! PCI addresses: bus, device and function on segment 0.
//!
//! A [`Bdf`] holds the bus number and the 8-bit `devfn` (device in bits 7:3,
//! function in bits 2:0), as the kernel's `pci_dev` does, so every value of the
//! type is a valid address: there is no device 32 or function 8 to reject later.
//! It is also the requester ID a function's DMA carries (`bus << 8 | devfn`).

use crate::error::{Error, Result};
use core::fmt;
use core::str::FromStr;

/// A PCI function's address on segment 0: `0000:bb:dd.f`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Bdf {
    bus: u8,
    devfn: u8,
}

impl Bdf {
    /// The address of function `func` of device `dev` on `bus`; `None` when
    /// `dev > 31` or `func > 7`.
    pub const fn new(bus: u8, dev: u8, func: u8) -> Option<Bdf> {
        if dev > 31 || func > 7 {
            return None;
        }
        Some(Bdf {
            bus,
            devfn: dev << 3 | func,
        })
    }

    /// The address with the given bus and `devfn`.
    pub const fn from_devfn(bus: u8, devfn: u8) -> Bdf {
        Bdf { bus, devfn }
    }

    /// The bus number.
    pub const fn bus(self) -> u8 {
        self.bus
    }

    /// Device (slot) number, 0..=31.
    pub const fn dev(self) -> u8 {
        self.devfn >> 3
    }

    /// Function number, 0..=7.
    pub const fn func(self) -> u8 {
        self.devfn & 7
    }

    /// `devfn`: device and function in one byte.
    pub const fn devfn(self) -> u8 {
        self.devfn
    }

    /// The 16-bit requester ID that tags this function's transactions.
    pub const fn requester_id(self) -> u16 {
        (self.bus as u16) << 8 | self.devfn as u16
    }
}

impl fmt::Display for Bdf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "0000:{:02x}:{:02x}.{}",
            self.bus,
            self.dev(),
            self.func()
        )
    }
}

fn bad(s: &str) -> Error {
    Error::Machine(format!(
        "`{s}` is not a PCI address (expected `0000:bb:dd.f` or `bb:dd.f`, hex, segment 0)"
    ))
}

impl FromStr for Bdf {
    type Err = Error;

    /// Parses `0000:bb:dd.f` or `bb:dd.f` (hexadecimal bus and device, as
    /// `lspci` and sysfs print them). Only segment 0 exists in the model.
    fn from_str(s: &str) -> Result<Bdf> {
        let parts: Vec<&str> = s.split(':').collect();
        let (bus, devfn) = match parts.as_slice() {
            [seg, bus, devfn] => {
                if u16::from_str_radix(seg, 16).map_err(|_| bad(s))? != 0 || seg.len() != 4 {
                    return Err(bad(s));
                }
                (*bus, *devfn)
            }
            [bus, devfn] => (*bus, *devfn),
            _ => return Err(bad(s)),
        };
        let (dev, func) = devfn.split_once('.').ok_or_else(|| bad(s))?;
        let hex = |t: &str, max_len: usize| {
            if t.is_empty() || t.len() > max_len || !t.chars().all(|c| c.is_ascii_hexdigit()) {
                return Err(bad(s));
            }
            u8::from_str_radix(t, 16).map_err(|_| bad(s))
        };
        Bdf::new(hex(bus, 2)?, hex(dev, 2)?, hex(func, 1)?).ok_or_else(|| bad(s))
    }
}

impl<'de> serde::Deserialize<'de> for Bdf {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> core::result::Result<Bdf, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_and_parse_round_trip() {
        let b = Bdf::new(0x3a, 0x1f, 6).unwrap();
        assert_eq!(b.to_string(), "0000:3a:1f.6");
        assert_eq!("0000:3a:1f.6".parse::<Bdf>().unwrap(), b);
        assert_eq!("3a:1f.6".parse::<Bdf>().unwrap(), b);
        assert_eq!(b.requester_id(), 0x3afe);
        assert_eq!(
            (b.bus(), b.dev(), b.func(), b.devfn()),
            (0x3a, 0x1f, 6, 0xfe)
        );
    }

    #[test]
    fn rejects_bad_addresses() {
        for s in [
            "",
            "00:20.0",
            "00:1f.8",
            "0001:00:00.0",
            "00:00",
            "000:00.0",
            "00:00.0.0",
            "zz:00.0",
            "0:0:0.0",
            "00:+1.0",
        ] {
            let e = s.parse::<Bdf>().unwrap_err();
            assert_eq!(e.errno(), softiommu_uapi::Errno::EINVAL, "{s}");
        }
        assert_eq!(Bdf::new(0, 32, 0), None);
        assert_eq!(Bdf::new(0, 0, 8), None);
    }
}
