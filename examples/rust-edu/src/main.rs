//! The edu driver of `examples/c/edu_driver.c`, in Rust, as a Rust VMM would
//! write it: iommufd through the `iommufd-ioctls` crate (cloud-hypervisor's,
//! from crates.io, unmodified), VFIO's device ioctls through `libc::ioctl`
//! with softiommu-uapi's structs. DMA buffers are memfds mapped into the IOAS
//! by file (`IOMMU_IOAS_MAP_FILE`, what the crate offers), as a VMM maps guest
//! memory.
//!
//! Run it under softiommu: `softiommu run -- edu-driver-rs [/dev/vfio/devices/vfioN]`.
#![allow(unsafe_code)]

use iommufd_bindings::iommufd::{iommu_hw_info, iommu_hw_info_vtd};
use iommufd_ioctls::{IommuFd, IommufdIoas};
use softiommu_uapi::vfio::*;
use std::fs::{File, OpenOptions};
use std::os::fd::{AsRawFd, FromRawFd};
use std::os::unix::fs::FileExt;
use std::process::ExitCode;
use std::sync::Arc;
use zerocopy::IntoBytes;

const EDU_ID: u64 = 0x00;
const EDU_SRC: u64 = 0x08;
const EDU_DST: u64 = 0x10;
const EDU_LEN: u64 = 0x18;
const EDU_CMD: u64 = 0x20;
const EDU_STATUS: u64 = 0x24;
const EDU_IRQ_STATUS: u64 = 0x30;
const EDU_IRQ_ACK: u64 = 0x34;
const EDU_CMD_START_IRQ: u32 = 0x3;
const EDU_STATUS_DONE: u32 = 0x2;
const EDU_STATUS_ERROR: u32 = 0x4;
const PCI_COMMAND: u64 = 0x04;
const PCI_COMMAND_MEMORY_MASTER: u16 = 0x6;

const BUF_SIZE: usize = 64 * 1024;
const SRC_IOVA: u64 = 0x10_0000;
const DST_IOVA: u64 = 0x20_0000;
const UNMAPPED_IOVA: u64 = 0x90_0000;

type Result<T> = std::result::Result<T, String>;

fn os_err(what: &str) -> String {
    format!("{what}: {}", std::io::Error::last_os_error())
}

/// `ioctl(fd, cmd, &mut arg)`.
fn ioctl<T: IntoBytes>(fd: &impl AsRawFd, cmd: u32, arg: &mut T, what: &str) -> Result<()> {
    // SAFETY: `arg` is a live, exclusively borrowed #[repr(C)] struct of the
    // layout the command takes (softiommu-uapi checks every layout); the kernel
    // (or softiommu) reads and writes at most its size.
    let r = unsafe { libc::ioctl(fd.as_raw_fd(), cmd as libc::c_ulong, arg as *mut T) };
    if r < 0 {
        return Err(os_err(what));
    }
    Ok(())
}

/// A shared memfd of `BUF_SIZE` bytes, mapped: the "guest memory" of a buffer.
struct Buffer {
    file: File,
    ptr: *mut u8,
}

impl Buffer {
    fn new() -> Result<Buffer> {
        // SAFETY: a NUL-terminated name; memfd_create takes no other memory.
        let fd = unsafe { libc::memfd_create(c"edu-buffer".as_ptr(), libc::MFD_CLOEXEC) };
        if fd < 0 {
            return Err(os_err("memfd_create"));
        }
        // SAFETY: `fd` was just created and is owned by nothing else.
        let file = unsafe { File::from_raw_fd(fd) };
        file.set_len(BUF_SIZE as u64).map_err(|e| e.to_string())?;
        // SAFETY: a new shared mapping of the whole memfd; nothing else maps there.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                BUF_SIZE,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                fd,
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(os_err("mmap"));
        }
        Ok(Buffer {
            file,
            ptr: ptr.cast(),
        })
    }

    fn bytes(&mut self) -> &mut [u8] {
        // SAFETY: `ptr` maps BUF_SIZE bytes for the life of `self`; `&mut self`
        // makes this the only slice of them in this program.
        unsafe { std::slice::from_raw_parts_mut(self.ptr, BUF_SIZE) }
    }
}

/// The device file, where its registers are, and its interrupt.
struct Edu {
    file: File,
    bar0: u64,
    irq: File,
}

impl Edu {
    fn read32(&self, at: u64) -> Result<u32> {
        let mut b = [0u8; 4];
        self.file
            .read_exact_at(&mut b, self.bar0 + at)
            .map_err(|e| format!("pread BAR0: {e}"))?;
        Ok(u32::from_le_bytes(b))
    }

    fn write(&self, at: u64, bytes: &[u8]) -> Result<()> {
        self.file
            .write_all_at(bytes, self.bar0 + at)
            .map_err(|e| format!("pwrite BAR0: {e}"))
    }

    /// Copies BUF_SIZE bytes and waits for the interrupt; STATUS.
    fn copy(&self, src: u64, dst: u64) -> Result<u32> {
        self.write(EDU_SRC, &src.to_le_bytes())?;
        self.write(EDU_DST, &dst.to_le_bytes())?;
        self.write(EDU_LEN, &(BUF_SIZE as u32).to_le_bytes())?;
        self.write(EDU_CMD, &EDU_CMD_START_IRQ.to_le_bytes())?;
        let mut p = libc::pollfd {
            fd: self.irq.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd.
        if unsafe { libc::poll(&mut p, 1, 10_000) } != 1 {
            return Err("no interrupt within 10 s".into());
        }
        let mut count = [0u8; 8];
        std::io::Read::read_exact(&mut &self.irq, &mut count).map_err(|e| e.to_string())?;
        self.write(EDU_IRQ_ACK, &self.read32(EDU_IRQ_STATUS)?.to_le_bytes())?;
        self.read32(EDU_STATUS)
    }
}

fn region(dev: &File, index: u32) -> Result<vfio_region_info> {
    let mut r = vfio_region_info {
        argsz: size_of::<vfio_region_info>() as u32,
        index,
        ..Default::default()
    };
    ioctl(
        dev,
        VFIO_DEVICE_GET_REGION_INFO,
        &mut r,
        "VFIO_DEVICE_GET_REGION_INFO",
    )?;
    Ok(r)
}

fn run(path: &str) -> Result<()> {
    let dev = OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .map_err(|e| format!("{path}: {e}"))?;
    let iommufd = Arc::new(IommuFd::new().map_err(|e| e.to_string())?);

    let mut bind = vfio_device_bind_iommufd {
        argsz: size_of::<vfio_device_bind_iommufd>() as u32,
        iommufd: iommufd.as_raw_fd(),
        ..Default::default()
    };
    ioctl(
        &dev,
        VFIO_DEVICE_BIND_IOMMUFD,
        &mut bind,
        "VFIO_DEVICE_BIND_IOMMUFD",
    )?;
    let ioas = IommufdIoas::new(iommufd.clone()).map_err(|e| e.to_string())?;
    let mut attach = vfio_device_attach_iommufd_pt {
        argsz: size_of::<vfio_device_attach_iommufd_pt>() as u32,
        pt_id: ioas.id(),
        ..Default::default()
    };
    ioctl(
        &dev,
        VFIO_DEVICE_ATTACH_IOMMUFD_PT,
        &mut attach,
        "VFIO_DEVICE_ATTACH_IOMMUFD_PT",
    )?;
    let mut vtd = iommu_hw_info_vtd::default();
    let mut info = iommu_hw_info {
        size: size_of::<iommu_hw_info>() as u32,
        dev_id: bind.out_devid,
        data_len: size_of::<iommu_hw_info_vtd>() as u32,
        data_uptr: &mut vtd as *mut iommu_hw_info_vtd as u64,
        ..Default::default()
    };
    iommufd
        .get_hw_info(&mut info)
        .map_err(|e| format!("IOMMU_GET_HW_INFO: {e}"))?;
    // SAFETY: a plain C union of two u32s; either reads the same bytes.
    let data_type = unsafe { info.__bindgen_anon_1.out_data_type };
    println!(
        "device {} bound, attached to HWPT {} of IOAS {}; IOMMU type {data_type}, cap {:#x} ecap {:#x}",
        bind.out_devid,
        attach.pt_id,
        ioas.id(),
        vtd.cap_reg,
        vtd.ecap_reg
    );

    let bar0 = region(&dev, VFIO_PCI_BAR0_REGION_INDEX)?.offset;
    let config = region(&dev, VFIO_PCI_CONFIG_REGION_INDEX)?.offset;
    let mut cmd = [0u8; 2];
    dev.read_exact_at(&mut cmd, config + PCI_COMMAND)
        .map_err(|e| format!("pread config: {e}"))?;
    let cmd = u16::from_le_bytes(cmd) | PCI_COMMAND_MEMORY_MASTER;
    dev.write_all_at(&cmd.to_le_bytes(), config + PCI_COMMAND)
        .map_err(|e| format!("pwrite config: {e}"))?;

    // SAFETY: eventfd takes no memory.
    let efd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC) };
    if efd < 0 {
        return Err(os_err("eventfd"));
    }
    // SAFETY: `efd` was just created and is owned by nothing else.
    let irq = unsafe { File::from_raw_fd(efd) };
    #[repr(C)]
    #[derive(zerocopy::IntoBytes, zerocopy::Immutable)]
    struct IrqSet {
        set: vfio_irq_set,
        fd: i32,
    }
    let mut set = IrqSet {
        set: vfio_irq_set {
            argsz: size_of::<IrqSet>() as u32,
            flags: VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_TRIGGER,
            index: VFIO_PCI_MSI_IRQ_INDEX,
            start: 0,
            count: 1,
        },
        fd: efd,
    };
    ioctl(&dev, VFIO_DEVICE_SET_IRQS, &mut set, "VFIO_DEVICE_SET_IRQS")?;
    let edu = Edu {
        file: dev,
        bar0,
        irq,
    };
    println!("edu ID register {:#x}", edu.read32(EDU_ID)?);

    let (mut src, mut dst) = (Buffer::new()?, Buffer::new()?);
    for (i, b) in src.bytes().iter_mut().enumerate() {
        *b = (i * 13 + 5) as u8;
    }
    let size = BUF_SIZE as u64;
    ioas.map_file(src.file.as_raw_fd(), 0, size, SRC_IOVA, false)
        .map_err(|e| format!("IOMMU_IOAS_MAP_FILE: {e}"))?;
    ioas.map_file(dst.file.as_raw_fd(), 0, size, DST_IOVA, true)
        .map_err(|e| format!("IOMMU_IOAS_MAP_FILE: {e}"))?;

    let status = edu.copy(SRC_IOVA, DST_IOVA)?;
    if status != EDU_STATUS_DONE || src.bytes() != dst.bytes() {
        return Err(format!("copy failed: status {status:#x}"));
    }
    println!("DMA {SRC_IOVA:#x} -> {DST_IOVA:#x}: {BUF_SIZE} bytes copied, interrupt received");

    let status = edu.copy(SRC_IOVA, UNMAPPED_IOVA)?;
    if status & EDU_STATUS_ERROR == 0 {
        return Err("DMA to an unmapped IOVA succeeded".into());
    }
    println!("DMA {SRC_IOVA:#x} -> {UNMAPPED_IOVA:#x}: refused by the IOMMU");
    // The source is read-only to the device.
    let status = edu.copy(DST_IOVA, SRC_IOVA)?;
    if status & EDU_STATUS_ERROR == 0 {
        return Err("DMA into a read-only mapping succeeded".into());
    }
    println!("DMA {DST_IOVA:#x} -> {SRC_IOVA:#x}: refused, the mapping is read-only");

    dst.bytes().fill(0);
    ioas.unmap(DST_IOVA, size)
        .map_err(|e| format!("IOMMU_IOAS_UNMAP: {e}"))?;
    let status = edu.copy(SRC_IOVA, DST_IOVA)?;
    if status & EDU_STATUS_ERROR == 0 || dst.bytes().iter().any(|b| *b != 0) {
        return Err("DMA after unmap reached the old pages".into());
    }
    println!("DMA {SRC_IOVA:#x} -> {DST_IOVA:#x} after unmap: refused, old pages untouched");
    Ok(())
}

fn main() -> ExitCode {
    let path = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "/dev/vfio/devices/vfio0".into());
    match run(&path) {
        Ok(()) => {
            println!("edu-driver-rs: OK");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("edu-driver-rs: {e}");
            ExitCode::FAILURE
        }
    }
}
