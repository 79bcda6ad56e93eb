//! Emulated PCI devices: what sits behind a VFIO device file.
//!
//! A device model is a [`PciDevice`]: a configuration space, memory BARs read
//! and written by offset, a reset, and interrupts it raises through an
//! [`IrqSink`] the VFIO layer installs (an eventfd there). A model that does DMA
//! owns a [`crate::iommu::dma::DmaEngine`] and so reaches memory only through
//! its IOMMU, as real devices do.
//!
//! [`ConfigSpace`] does the part every model shares: the standard type-0
//! header, writable-bit masks, and BAR sizing (write all ones, read back the
//! size mask). A model describes its BARs and capabilities once and reacts to
//! the command register's bus-master bit: DMA is refused while it is clear.
//!
//! Models: [`edu`], a DMA test device in the spirit of QEMU's `edu`.

pub mod edu;

use std::fmt::Debug;
use std::sync::{Arc, Mutex};

/// Raises interrupt `vector` of a device.
pub type IrqSink = Arc<dyn Fn(u32) + Send + Sync>;

/// A memory BAR of a device model.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Bar {
    /// The BAR's index (0..6).
    pub index: u32,
    /// Its size in bytes: a power of two, at least 16.
    pub size: u64,
}

/// An emulated PCI function.
pub trait PciDevice: Send + Sync + Debug {
    /// Reads configuration space at `offset` (out of range reads as all ones).
    fn config_read(&self, offset: u32, data: &mut [u8]);

    /// Writes configuration space at `offset`; read-only bits stay.
    fn config_write(&self, offset: u32, data: &[u8]);

    /// The device's memory BARs.
    fn bars(&self) -> Vec<Bar>;

    /// Reads `data.len()` bytes of BAR `bar` at `offset`.
    fn bar_read(&self, bar: u32, offset: u64, data: &mut [u8]);

    /// Writes `data` to BAR `bar` at `offset`.
    fn bar_write(&self, bar: u32, offset: u64, data: &[u8]);

    /// The number of interrupt vectors (MSI) the device raises.
    fn irq_count(&self) -> u32;

    /// Installs (`Some`) or removes the sink its interrupts go to.
    fn set_irq_sink(&self, sink: Option<IrqSink>);

    /// A function-level reset: registers and configuration back to power-on.
    fn reset(&self);
}

/// Size of a conventional configuration space.
pub const CONFIG_SIZE: usize = 256;

/// Configuration-space offsets and bits of the type-0 header.
pub mod cfg {
    /// Vendor ID (u16).
    pub const VENDOR_ID: usize = 0x00;
    /// Device ID (u16).
    pub const DEVICE_ID: usize = 0x02;
    /// Command (u16).
    pub const COMMAND: usize = 0x04;
    /// Status (u16).
    pub const STATUS: usize = 0x06;
    /// Revision ID (u8), then the class code (3 bytes).
    pub const REVISION: usize = 0x08;
    /// Header type (u8).
    pub const HEADER_TYPE: usize = 0x0e;
    /// BAR 0 (u32); BARs 1-5 follow.
    pub const BAR0: usize = 0x10;
    /// Subsystem vendor ID (u16).
    pub const SUBSYSTEM_VENDOR_ID: usize = 0x2c;
    /// Capabilities pointer (u8).
    pub const CAPABILITY_LIST: usize = 0x34;
    /// Interrupt line (u8).
    pub const INTERRUPT_LINE: usize = 0x3c;
    /// Command: respond to memory accesses.
    pub const COMMAND_MEMORY: u16 = 1 << 1;
    /// Command: may master the bus (do DMA).
    pub const COMMAND_MASTER: u16 = 1 << 2;
    /// Command: INTx disabled.
    pub const COMMAND_INTX_DISABLE: u16 = 1 << 10;
    /// Status: the capability list is valid.
    pub const STATUS_CAP_LIST: u16 = 1 << 4;
    /// Capability ID of MSI.
    pub const CAP_ID_MSI: u8 = 0x05;
}

/// A configuration space: bytes and the mask of bits software may write.
#[derive(Debug)]
pub struct ConfigSpace {
    inner: Mutex<ConfigBytes>,
}

#[derive(Debug, Clone)]
struct ConfigBytes {
    bytes: [u8; CONFIG_SIZE],
    wmask: [u8; CONFIG_SIZE],
    /// As built, for reset.
    reset: [u8; CONFIG_SIZE],
}

/// What a model's configuration space holds at power-on.
#[derive(Clone, Copy, Debug)]
pub struct Header {
    /// Vendor ID.
    pub vendor: u16,
    /// Device ID.
    pub device: u16,
    /// Class code (base, sub, programming interface) as `0xBBSSPP`.
    pub class: u32,
    /// Revision ID.
    pub revision: u8,
}

impl ConfigSpace {
    /// A type-0 header for `header` with memory BARs `bars` (32-bit,
    /// non-prefetchable) and an MSI capability with `msi_vectors` vectors (none
    /// for 0).
    pub fn new(header: Header, bars: &[Bar], msi_vectors: u32) -> ConfigSpace {
        let mut c = ConfigBytes {
            bytes: [0; CONFIG_SIZE],
            wmask: [0; CONFIG_SIZE],
            reset: [0; CONFIG_SIZE],
        };
        put16(&mut c.bytes, cfg::VENDOR_ID, header.vendor);
        put16(&mut c.bytes, cfg::DEVICE_ID, header.device);
        c.bytes[cfg::REVISION] = header.revision;
        c.bytes[cfg::REVISION + 1..cfg::REVISION + 4]
            .copy_from_slice(&header.class.to_le_bytes()[..3]);
        put16(&mut c.bytes, cfg::SUBSYSTEM_VENDOR_ID, header.vendor);
        put16(&mut c.bytes, cfg::SUBSYSTEM_VENDOR_ID + 2, header.device);
        put16(
            &mut c.wmask,
            cfg::COMMAND,
            cfg::COMMAND_MEMORY | cfg::COMMAND_MASTER | cfg::COMMAND_INTX_DISABLE,
        );
        c.wmask[cfg::INTERRUPT_LINE] = 0xff;
        for bar in bars {
            debug_assert!(bar.size.is_power_of_two() && bar.size >= 16 && bar.index < 6);
            let at = cfg::BAR0 + 4 * bar.index as usize;
            // Address bits above the size are writable; sizing reads back the mask.
            put32(&mut c.wmask, at, !(bar.size as u32 - 1));
        }
        if msi_vectors > 0 {
            // MSI at 0x40: 64-bit address, multiple message capable.
            let at = 0x40;
            put16(&mut c.bytes, cfg::STATUS, cfg::STATUS_CAP_LIST);
            c.bytes[cfg::CAPABILITY_LIST] = at as u8;
            c.bytes[at] = cfg::CAP_ID_MSI;
            let mmc = msi_vectors.next_power_of_two().trailing_zeros() as u16;
            put16(&mut c.bytes, at + 2, 1 << 7 | mmc << 1);
            // Enable and multiple-message enable; address and data.
            put16(&mut c.wmask, at + 2, 1 | 0x7 << 4);
            put32(&mut c.wmask, at + 4, !3);
            put32(&mut c.wmask, at + 8, !0);
            put16(&mut c.wmask, at + 12, !0);
        }
        c.reset = c.bytes;
        ConfigSpace {
            inner: Mutex::new(c),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, ConfigBytes> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Reads at `offset`; bytes past the end read as 0xff.
    pub fn read(&self, offset: u32, data: &mut [u8]) {
        let c = self.lock();
        for (i, b) in data.iter_mut().enumerate() {
            *b = c.bytes.get(offset as usize + i).copied().unwrap_or(0xff);
        }
    }

    /// Writes at `offset` through the writable-bit mask; past the end nothing.
    pub fn write(&self, offset: u32, data: &[u8]) {
        let mut c = self.lock();
        for (i, b) in data.iter().enumerate() {
            let at = offset as usize + i;
            if at < CONFIG_SIZE {
                let m = c.wmask[at];
                c.bytes[at] = (c.bytes[at] & !m) | (b & m);
            }
        }
    }

    /// The command register.
    pub fn command(&self) -> u16 {
        let c = self.lock();
        u16::from_le_bytes([c.bytes[cfg::COMMAND], c.bytes[cfg::COMMAND + 1]])
    }

    /// Back to power-on contents.
    pub fn reset(&self) {
        let mut c = self.lock();
        c.bytes = c.reset;
    }
}

fn put16(b: &mut [u8; CONFIG_SIZE], at: usize, v: u16) {
    b[at..at + 2].copy_from_slice(&v.to_le_bytes());
}

fn put32(b: &mut [u8; CONFIG_SIZE], at: usize, v: u32) {
    b[at..at + 4].copy_from_slice(&v.to_le_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_masks_and_bar_sizing() {
        let c = ConfigSpace::new(
            Header {
                vendor: 0x1234,
                device: 0x5678,
                class: 0x00_ff_00,
                revision: 1,
            },
            &[Bar {
                index: 0,
                size: 4096,
            }],
            1,
        );
        let mut w = [0u8; 4];
        c.read(0, &mut w);
        assert_eq!(u32::from_le_bytes(w), 0x5678_1234);
        // Vendor ID is read-only.
        c.write(0, &[0, 0]);
        c.read(0, &mut w);
        assert_eq!(u32::from_le_bytes(w), 0x5678_1234);
        // BAR sizing: all ones read back as the size mask.
        c.write(cfg::BAR0 as u32, &[0xff; 4]);
        c.read(cfg::BAR0 as u32, &mut w);
        assert_eq!(u32::from_le_bytes(w), !(4096 - 1));
        // BAR 1 does not exist.
        c.write(cfg::BAR0 as u32 + 4, &[0xff; 4]);
        c.read(cfg::BAR0 as u32 + 4, &mut w);
        assert_eq!(u32::from_le_bytes(w), 0);
        // Command: memory and bus master are writable, other bits are not.
        c.write(cfg::COMMAND as u32, &[0xff, 0xff]);
        assert_eq!(
            c.command(),
            cfg::COMMAND_MEMORY | cfg::COMMAND_MASTER | cfg::COMMAND_INTX_DISABLE
        );
        // The MSI capability is on the list.
        let mut b = [0u8; 1];
        c.read(cfg::CAPABILITY_LIST as u32, &mut b);
        assert_eq!(b[0], 0x40);
        c.read(0x40, &mut b);
        assert_eq!(b[0], cfg::CAP_ID_MSI);
        // Past the end reads as ones; reset restores power-on contents.
        c.read(0xff, &mut w[..2]);
        assert_eq!(w[1], 0xff);
        c.reset();
        assert_eq!(c.command(), 0);
    }
}
