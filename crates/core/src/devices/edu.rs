//! `edu`: a DMA test device, in the spirit of QEMU's device of that name.
//!
//! One 4 KiB register BAR. A driver writes a source IOVA, a destination IOVA,
//! a length and optionally a PASID, then a command; the device copies the bytes
//! from source to destination through its IOMMU — reading all of them first,
//! then writing — on its own thread, sets its status, and raises interrupt 0 if
//! asked. A translation fault stops the transfer with the error bit and the
//! failing IOVA in `FAULT_IOVA`; a read that faults writes nothing. DMA is
//! refused (error, nothing read) while the command register's bus-master bit is
//! clear, as a real function would not master the bus.
//!
//! Registers (BAR 0, little endian):
//!
//! | offset | name | access |
//! |---|---|---|
//! | 0x00 | `ID` (u32) = `EDU_ID` | RO |
//! | 0x04 | `LIVENESS` (u32): reads back the complement of the last write | RW |
//! | 0x08 | `SRC` (u64) source IOVA | RW |
//! | 0x10 | `DST` (u64) destination IOVA | RW |
//! | 0x18 | `LEN` (u32) bytes, at most `EDU_MAX_LEN` | RW |
//! | 0x1c | `PASID` (u32): bits 0-19 a PASID, used when bit 31 is set | RW |
//! | 0x20 | `CMD` (u32): bit 0 start, bit 1 interrupt on completion | WO |
//! | 0x24 | `STATUS` (u32): bit 0 busy, bit 1 done, bit 2 error | RO |
//! | 0x28 | `FAULT_IOVA` (u64): the IOVA the last failed transfer stopped at | RO |
//! | 0x30 | `IRQ_STATUS` (u32): bit 0 a transfer completed | RO |
//! | 0x34 | `IRQ_ACK` (u32): clears the `IRQ_STATUS` bits written | WO |
//! | 0x38 | `TRANSFERS` (u32): transfers completed without error | RO |
//!
//! A start while busy is ignored. Narrower or unaligned accesses read and
//! write the bytes of the registers they cover.

use super::{cfg, Bar, ConfigSpace, Header, IrqSink, PciDevice};
use crate::iommu::dma::{DmaEngine, DmaFault, NO_PASID};
use crate::iommu::Device;
use crate::mem::PhysMemory;
use std::sync::mpsc::{channel, Sender};
use std::sync::{Arc, Condvar, Mutex};

/// PCI vendor ID (the experimental ID QEMU's test devices use).
pub const EDU_VENDOR: u16 = 0x1234;
/// PCI device ID of this model.
pub const EDU_DEVICE: u16 = 0x5d11;
/// The value of the `ID` register: device ID and version 1.
pub const EDU_ID: u32 = (EDU_DEVICE as u32) << 16 | 1;
/// Size of the register BAR.
pub const EDU_BAR_SIZE: u64 = 4096;
/// The longest transfer.
pub const EDU_MAX_LEN: u32 = 1 << 20;

/// Register offsets.
pub mod reg {
    /// `ID`.
    pub const ID: u64 = 0x00;
    /// `LIVENESS`.
    pub const LIVENESS: u64 = 0x04;
    /// `SRC`.
    pub const SRC: u64 = 0x08;
    /// `DST`.
    pub const DST: u64 = 0x10;
    /// `LEN`.
    pub const LEN: u64 = 0x18;
    /// `PASID`.
    pub const PASID: u64 = 0x1c;
    /// `CMD`.
    pub const CMD: u64 = 0x20;
    /// `STATUS`.
    pub const STATUS: u64 = 0x24;
    /// `FAULT_IOVA`.
    pub const FAULT_IOVA: u64 = 0x28;
    /// `IRQ_STATUS`.
    pub const IRQ_STATUS: u64 = 0x30;
    /// `IRQ_ACK`.
    pub const IRQ_ACK: u64 = 0x34;
    /// `TRANSFERS`.
    pub const TRANSFERS: u64 = 0x38;
    /// One past the last register.
    pub const END: u64 = 0x3c;
}

/// `CMD`: start a transfer.
pub const CMD_START: u32 = 1 << 0;
/// `CMD`: raise interrupt 0 when it completes.
pub const CMD_IRQ: u32 = 1 << 1;
/// `STATUS`: a transfer is running.
pub const STATUS_BUSY: u32 = 1 << 0;
/// `STATUS`: the last transfer completed.
pub const STATUS_DONE: u32 = 1 << 1;
/// `STATUS`: the last transfer failed.
pub const STATUS_ERROR: u32 = 1 << 2;
/// `PASID`: the transfer carries the PASID in bits 0-19.
pub const PASID_VALID: u32 = 1 << 31;

/// The register file, as bytes at their offsets.
#[derive(Debug)]
struct Regs {
    bytes: [u8; reg::END as usize],
    /// A transfer is started and its completion (interrupt included) not yet
    /// fully delivered.
    running: bool,
}

impl Default for Regs {
    fn default() -> Regs {
        Regs {
            bytes: [0; reg::END as usize],
            running: false,
        }
    }
}

impl Regs {
    fn get32(&self, at: u64) -> u32 {
        let a = at as usize;
        u32::from_le_bytes(self.bytes[a..a + 4].try_into().unwrap_or_default())
    }

    fn get64(&self, at: u64) -> u64 {
        let a = at as usize;
        u64::from_le_bytes(self.bytes[a..a + 8].try_into().unwrap_or_default())
    }

    fn set32(&mut self, at: u64, v: u32) {
        let a = at as usize;
        self.bytes[a..a + 4].copy_from_slice(&v.to_le_bytes());
    }

    fn set64(&mut self, at: u64, v: u64) {
        let a = at as usize;
        self.bytes[a..a + 8].copy_from_slice(&v.to_le_bytes());
    }
}

/// What the device thread and the register accessors share.
#[derive(Debug)]
struct Shared {
    config: ConfigSpace,
    regs: Mutex<Regs>,
    /// Signalled when a transfer ends.
    idle: Condvar,
    dma: DmaEngine,
    sink: Mutex<Option<IrqSinkBox>>,
}

/// An [`IrqSink`] that can sit in a `Debug` struct.
struct IrqSinkBox(IrqSink);

impl std::fmt::Debug for IrqSinkBox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("IrqSink")
    }
}

/// The `edu` device.
#[derive(Debug)]
pub struct Edu {
    shared: Arc<Shared>,
    /// Starts transfers on the device thread (which ends when this goes).
    start: Mutex<Sender<Transfer>>,
}

/// A transfer as the registers described it at start.
#[derive(Clone, Copy, Debug)]
struct Transfer {
    src: u64,
    dst: u64,
    len: u32,
    pasid: u32,
    irq: bool,
}

impl Edu {
    /// A device behind the IOMMU of `dev`, whose DMA reaches `mem`.
    pub fn new(dev: Arc<Device>, mem: Arc<dyn PhysMemory>) -> Arc<Edu> {
        let shared = Arc::new(Shared {
            config: ConfigSpace::new(
                Header {
                    vendor: EDU_VENDOR,
                    device: EDU_DEVICE,
                    class: 0x00_ff_00,
                    revision: 1,
                },
                &[Bar {
                    index: 0,
                    size: EDU_BAR_SIZE,
                }],
                1,
            ),
            regs: Mutex::new(Regs::default()),
            idle: Condvar::new(),
            dma: DmaEngine::new(dev, mem),
            sink: Mutex::new(None),
        });
        shared.reset_regs();
        let (tx, rx) = channel::<Transfer>();
        let worker = shared.clone();
        std::thread::Builder::new()
            .name("softiommu-edu".into())
            .spawn(move || {
                for t in rx {
                    worker.run(t);
                }
            })
            .map(|_| ())
            .unwrap_or_else(|_| shared.fail_all());
        Arc::new(Edu {
            shared,
            start: Mutex::new(tx),
        })
    }

    /// The device's DMA engine (its fault log among others).
    pub fn dma(&self) -> &DmaEngine {
        &self.shared.dma
    }

    /// Waits until no transfer is running and its interrupt, if any, has been
    /// raised; returns `STATUS`.
    pub fn wait_idle(&self) -> u32 {
        let mut regs = self.shared.regs();
        while regs.running {
            regs = self
                .shared
                .idle
                .wait(regs)
                .unwrap_or_else(|e| e.into_inner());
        }
        regs.get32(reg::STATUS)
    }
}

impl Shared {
    fn regs(&self) -> std::sync::MutexGuard<'_, Regs> {
        self.regs.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn reset_regs(&self) {
        let mut r = self.regs();
        *r = Regs::default();
        r.set32(reg::ID, EDU_ID);
    }

    /// No device thread: the transfer fails at once.
    fn fail_all(&self) {
        let mut r = self.regs();
        r.set32(reg::STATUS, STATUS_DONE | STATUS_ERROR);
        r.running = false;
    }

    fn run(&self, t: Transfer) {
        let result = self.transfer(&t);
        let mut r = self.regs();
        match result {
            Ok(()) => {
                r.set32(reg::STATUS, STATUS_DONE);
                let n = r.get32(reg::TRANSFERS).wrapping_add(1);
                r.set32(reg::TRANSFERS, n);
            }
            Err(iova) => {
                r.set32(reg::STATUS, STATUS_DONE | STATUS_ERROR);
                r.set64(reg::FAULT_IOVA, iova);
            }
        }
        if t.irq {
            let s = r.get32(reg::IRQ_STATUS) | 1;
            r.set32(reg::IRQ_STATUS, s);
        }
        drop(r);
        if t.irq {
            let sink = self
                .sink
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .as_ref()
                .map(|s| s.0.clone());
            if let Some(sink) = sink {
                sink(0);
            }
        }
        self.regs().running = false;
        self.idle.notify_all();
    }

    /// Reads the source whole, then writes the destination; the IOVA a fault
    /// stopped at.
    fn transfer(&self, t: &Transfer) -> Result<(), u64> {
        if self.config.command() & cfg::COMMAND_MASTER == 0 {
            return Err(t.src);
        }
        let mut buf = vec![0u8; t.len as usize];
        let at = |f: DmaFault, default: u64| match f {
            DmaFault::Blocked { iova, .. } | DmaFault::Translation { iova, .. } => iova,
            DmaFault::NoMemory { .. } => default,
        };
        self.dma
            .read(t.pasid, t.src, &mut buf)
            .map_err(|f| at(f, t.src))?;
        self.dma
            .write(t.pasid, t.dst, &buf)
            .map_err(|f| at(f, t.dst))
    }
}

impl PciDevice for Edu {
    fn config_read(&self, offset: u32, data: &mut [u8]) {
        self.shared.config.read(offset, data);
    }

    fn config_write(&self, offset: u32, data: &[u8]) {
        self.shared.config.write(offset, data);
    }

    fn bars(&self) -> Vec<Bar> {
        vec![Bar {
            index: 0,
            size: EDU_BAR_SIZE,
        }]
    }

    fn bar_read(&self, bar: u32, offset: u64, data: &mut [u8]) {
        let r = self.shared.regs();
        for (i, b) in data.iter_mut().enumerate() {
            let at = offset.wrapping_add(i as u64);
            *b = match at {
                _ if bar != 0 || at >= reg::END => 0xff,
                // The complement of what was written.
                reg::LIVENESS..reg::SRC => !r.bytes[at as usize],
                reg::CMD..reg::STATUS | reg::IRQ_ACK..reg::TRANSFERS => 0,
                _ => r.bytes[at as usize],
            };
        }
    }

    fn bar_write(&self, bar: u32, offset: u64, data: &[u8]) {
        if bar != 0 {
            return;
        }
        let mut r = self.shared.regs();
        let mut cmd = None;
        for (i, &b) in data.iter().enumerate() {
            let at = offset.wrapping_add(i as u64);
            match at {
                reg::LIVENESS..reg::CMD => r.bytes[at as usize] = b,
                reg::CMD..reg::STATUS => {
                    let shift = 8 * (at - reg::CMD);
                    cmd = Some(cmd.unwrap_or(0) | u32::from(b) << shift);
                }
                reg::IRQ_ACK..reg::TRANSFERS => {
                    let bit = u32::from(b) << (8 * (at - reg::IRQ_ACK));
                    let s = r.get32(reg::IRQ_STATUS) & !bit;
                    r.set32(reg::IRQ_STATUS, s);
                }
                _ => {}
            }
        }
        let Some(cmd) = cmd.filter(|c| c & CMD_START != 0) else {
            return;
        };
        if r.get32(reg::STATUS) & STATUS_BUSY != 0 {
            return;
        }
        let pasid = r.get32(reg::PASID);
        let t = Transfer {
            src: r.get64(reg::SRC),
            dst: r.get64(reg::DST),
            len: r.get32(reg::LEN),
            pasid: if pasid & PASID_VALID != 0 {
                pasid & 0xf_ffff
            } else {
                NO_PASID
            },
            irq: cmd & CMD_IRQ != 0,
        };
        if t.len > EDU_MAX_LEN {
            r.set32(reg::STATUS, STATUS_DONE | STATUS_ERROR);
            r.set64(reg::FAULT_IOVA, t.src);
            return;
        }
        r.set32(reg::STATUS, STATUS_BUSY);
        r.running = true;
        drop(r);
        let sent = self.start.lock().unwrap_or_else(|e| e.into_inner()).send(t);
        if sent.is_err() {
            self.shared.fail_all();
            self.shared.idle.notify_all();
        }
    }

    fn irq_count(&self) -> u32 {
        1
    }

    fn set_irq_sink(&self, sink: Option<IrqSink>) {
        *self.shared.sink.lock().unwrap_or_else(|e| e.into_inner()) = sink.map(IrqSinkBox);
    }

    fn reset(&self) {
        self.wait_idle();
        self.shared.config.reset();
        self.shared.reset_regs();
    }
}
