//! The kvm-vfio device over a host with two VT-d units, one with snoop control
//! (ECAP.SC) and one without: adding a VFIO device file makes the VM's DMA
//! non-coherent exactly when the device's IOMMU cannot force snooping, and the
//! VM registers that once per flip; deleting and releasing undo it; the
//! attribute errors are the kernel's.

use softiommu::abi::{self, kvm::create_device, Env, File};
use softiommu::iommufd::Iommufd;
use softiommu::kvm::{Flips, Kvm, KvmVfio};
use softiommu::machine::host::Host;
use softiommu::machine::Machine;
use softiommu::mem::sim::{SimAddressSpace, SimMemory};
use softiommu::mem::{AddressSpace, FileSource, Process, User};
use softiommu::uapi::kvm::*;
use softiommu::uapi::Errno;
use softiommu::vfio::Vfio;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use zerocopy::IntoBytes;

/// ECAP of `VtdCaps::default()` without SC (bit 7).
const ECAP_NO_SC: u64 = 0x3_ef9c_a4f0_50df & !(1 << 7);

fn machine() -> Machine {
    Machine::from_toml(&format!(
        r#"
[[iommu]]
name = "dmar0"
kind = "vtd"

[[iommu]]
name = "dmar1"
kind = "vtd"
ecap = {ECAP_NO_SC:#x}

[[device]]
bdf = "0000:00:03.0"
vendor = 0x1234
device = 0x5d11
model = "edu"
driver = "vfio-pci"

[[device]]
bdf = "0000:00:04.0"
vendor = 0x1234
device = 0x5d11
model = "edu"
driver = "vfio-pci"
iommu = "dmar1"

[[device]]
bdf = "0000:00:05.0"
vendor = 0x1234
device = 0x5d11
model = "edu"
driver = "vfio-pci"
iommu = "dmar1"
"#
    ))
    .unwrap()
}

/// A descriptor table: `dup` shares the file, as an open file description.
#[derive(Default)]
struct TestEnv {
    files: Mutex<HashMap<i32, Arc<File>>>,
    next: Mutex<i32>,
}

impl TestEnv {
    fn add(&self, file: Arc<File>) -> i32 {
        let mut n = self.next.lock().unwrap();
        *n += 1;
        self.files.lock().unwrap().insert(*n, file);
        *n
    }
    fn close(&self, fd: i32) {
        let f = self.files.lock().unwrap().remove(&fd);
        drop(f);
    }
}

impl Env for TestEnv {
    fn install(&self, file: File) -> Result<i32, Errno> {
        Ok(self.add(Arc::new(file)))
    }
    fn file(&self, fd: i32) -> Option<Arc<File>> {
        self.files.lock().unwrap().get(&fd).cloned()
    }
    fn is_open(&self, fd: i32) -> bool {
        self.files.lock().unwrap().contains_key(&fd)
    }
    fn eventfd(&self, _fd: i32) -> Result<Arc<dyn softiommu::vfio::EventFd>, Errno> {
        Err(Errno::EINVAL)
    }
    fn map_file(&self, _fd: i32) -> Result<Arc<dyn FileSource>, Errno> {
        Err(Errno::EBADF)
    }
}

struct Rig {
    env: TestEnv,
    vfio: Arc<Vfio>,
    process: Arc<Process>,
    space: Arc<SimAddressSpace>,
    /// Scratch user memory for arguments.
    arg: u64,
    kvm: Arc<Kvm>,
}

impl Rig {
    fn new() -> Rig {
        let mem = SimMemory::new(1 << 24).unwrap();
        let host = Host::new(machine(), mem.clone()).unwrap();
        let space = SimAddressSpace::new(&mem);
        let arg = space.mmap_anon(None, 4096, true).unwrap();
        let process = Process::new(space.clone(), User::new());
        Rig {
            env: TestEnv::default(),
            vfio: Vfio::new(host),
            process,
            space,
            arg,
            kvm: Kvm::new(),
        }
    }

    /// Opens `/dev/vfio/devices/vfio<index>`; returns its fd.
    fn open_vfio(&self, index: u32) -> i32 {
        let f = self.vfio.open_cdev(index).unwrap();
        self.env
            .add(Arc::new(File::VfioDevice(f, self.process.clone())))
    }

    /// KVM_CREATE_DEVICE of `type_` with `flags` on the rig's VM.
    fn create(&self, type_: u32, flags: u32) -> Result<kvm_create_device, Errno> {
        let cd = kvm_create_device {
            type_,
            fd: u32::MAX,
            flags,
        };
        self.space.write(self.arg, cd.as_bytes()).unwrap();
        let r = create_device(
            &self.env,
            &self.process,
            self.arg,
            || Ok(self.kvm.clone()),
            None,
        );
        let mut out = kvm_create_device::default();
        self.space.read(self.arg, out.as_mut_bytes()).unwrap();
        r.map(|v| {
            assert_eq!(v, 0);
            out
        })
    }

    /// The kvm-vfio device behind `fd`.
    fn device(&self, fd: i32) -> Arc<File> {
        let f = self.env.file(fd).unwrap();
        assert!(matches!(*f, File::Kvm(..)));
        f
    }

    /// A device attribute ioctl `cmd` on `kvm_fd` with the s32 `value` at `addr`.
    fn attr(&self, kvm_fd: i32, cmd: u32, group: u32, attr: u64, value: i32) -> Result<i32, Errno> {
        let val_at = self.arg + 512;
        self.space.write(val_at, &value.to_ne_bytes()).unwrap();
        let a = kvm_device_attr {
            flags: 0,
            group,
            attr,
            addr: val_at,
        };
        let at = self.arg + 256;
        self.space.write(at, a.as_bytes()).unwrap();
        let file = self.device(kvm_fd);
        abi::ioctl(&self.env, &file, cmd, at, None)
    }

    fn add(&self, kvm_fd: i32, fd: i32) -> Result<i32, Errno> {
        self.attr(
            kvm_fd,
            KVM_SET_DEVICE_ATTR,
            KVM_DEV_VFIO_FILE,
            KVM_DEV_VFIO_FILE_ADD,
            fd,
        )
    }

    fn del(&self, kvm_fd: i32, fd: i32) -> Result<i32, Errno> {
        self.attr(
            kvm_fd,
            KVM_SET_DEVICE_ATTR,
            KVM_DEV_VFIO_FILE,
            KVM_DEV_VFIO_FILE_DEL,
            fd,
        )
    }

    fn noncoherent(&self, kvm_fd: i32) -> bool {
        let f = self.device(kvm_fd);
        let File::Kvm(dev, _) = &*f else {
            unreachable!()
        };
        let d: &KvmVfio = dev;
        assert_eq!(d.noncoherent(), self.kvm.noncoherent_dma());
        d.noncoherent()
    }
}

fn flips(registered: u64, unregistered: u64) -> Flips {
    Flips {
        registered,
        unregistered,
    }
}

/// The machine's devices: vfio0 behind dmar0 (SC), vfio1 and vfio2 behind
/// dmar1 (no SC).
#[test]
fn device_indexes_follow_the_machine() {
    let r = Rig::new();
    let units: Vec<_> = (0..3)
        .map(|i| r.vfio.device_by_index(i).unwrap().bdf.to_string())
        .collect();
    assert_eq!(units, ["0000:00:03.0", "0000:00:04.0", "0000:00:05.0"]);
}

#[test]
fn adding_a_device_flips_exactly_when_its_iommu_cannot_snoop() {
    let r = Rig::new();
    let kvm_fd = r.create(KVM_DEV_TYPE_VFIO, 0).unwrap().fd as i32;
    let coherent = r.open_vfio(0);
    let nc1 = r.open_vfio(1);
    let nc2 = r.open_vfio(2);

    assert_eq!(r.add(kvm_fd, coherent), Ok(0));
    assert!(!r.noncoherent(kvm_fd));
    assert_eq!(r.kvm.flips(), flips(0, 0));

    assert_eq!(r.add(kvm_fd, nc1), Ok(0));
    assert!(r.noncoherent(kvm_fd));
    assert_eq!(r.kvm.flips(), flips(1, 0));
    // A second non-coherent file changes nothing the VM sees.
    assert_eq!(r.add(kvm_fd, nc2), Ok(0));
    assert_eq!(r.kvm.flips(), flips(1, 0));

    assert_eq!(r.del(kvm_fd, nc1), Ok(0));
    assert!(r.noncoherent(kvm_fd));
    assert_eq!(r.del(kvm_fd, nc2), Ok(0));
    assert!(!r.noncoherent(kvm_fd));
    assert_eq!(r.kvm.flips(), flips(1, 1));
    // The coherent file stays, and keeps the VM coherent.
    assert_eq!(r.del(kvm_fd, coherent), Ok(0));
    assert_eq!(r.kvm.flips(), flips(1, 1));
}

#[test]
fn attribute_errors() {
    let r = Rig::new();
    let kvm_fd = r.create(KVM_DEV_TYPE_VFIO, 0).unwrap().fd as i32;
    let dev = r.open_vfio(1);
    let iommufd = r
        .env
        .add(Arc::new(File::Iommufd(Iommufd::open(&r.process))));

    // Not a VFIO file (an iommufd, the kvm-vfio device itself), a bad fd.
    assert_eq!(r.add(kvm_fd, iommufd), Err(Errno::EINVAL));
    assert_eq!(r.add(kvm_fd, kvm_fd), Err(Errno::EINVAL));
    assert_eq!(r.add(kvm_fd, -1), Err(Errno::EBADF));
    assert_eq!(r.add(kvm_fd, 999), Err(Errno::EBADF));
    assert_eq!(r.del(kvm_fd, -1), Err(Errno::EBADF));
    // Deleting what was never added.
    assert_eq!(r.del(kvm_fd, dev), Err(Errno::ENOENT));
    assert_eq!(r.del(kvm_fd, iommufd), Err(Errno::ENOENT));

    // The same open file twice, also through a duplicate descriptor.
    assert_eq!(r.add(kvm_fd, dev), Ok(0));
    assert_eq!(r.add(kvm_fd, dev), Err(Errno::EEXIST));
    let dup = r.env.add(r.env.file(dev).unwrap());
    assert_eq!(r.add(kvm_fd, dup), Err(Errno::EEXIST));
    // A second open of the same device is another file.
    let other = r.open_vfio(1);
    assert_eq!(r.add(kvm_fd, other), Ok(0));
    assert_eq!(r.del(kvm_fd, dup), Ok(0));
    assert_eq!(r.del(kvm_fd, dev), Err(Errno::ENOENT));
    assert!(r.noncoherent(kvm_fd));
    assert_eq!(r.kvm.flips(), flips(1, 0));

    // Unknown group or attribute.
    assert_eq!(
        r.attr(kvm_fd, KVM_SET_DEVICE_ATTR, 2, KVM_DEV_VFIO_FILE_ADD, dev),
        Err(Errno::ENXIO)
    );
    assert_eq!(
        r.attr(kvm_fd, KVM_SET_DEVICE_ATTR, KVM_DEV_VFIO_FILE, 3, dev),
        Err(Errno::ENXIO)
    );
    assert_eq!(
        r.attr(kvm_fd, KVM_SET_DEVICE_ATTR, KVM_DEV_VFIO_FILE, 0, dev),
        Err(Errno::ENXIO)
    );

    // HAS: the two attributes of the one group.
    for attr in [KVM_DEV_VFIO_FILE_ADD, KVM_DEV_VFIO_FILE_DEL] {
        assert_eq!(
            r.attr(kvm_fd, KVM_HAS_DEVICE_ATTR, KVM_DEV_VFIO_FILE, attr, 0),
            Ok(0)
        );
    }
    assert_eq!(
        r.attr(kvm_fd, KVM_HAS_DEVICE_ATTR, KVM_DEV_VFIO_FILE, 3, 0),
        Err(Errno::ENXIO)
    );
    assert_eq!(
        r.attr(kvm_fd, KVM_HAS_DEVICE_ATTR, 2, KVM_DEV_VFIO_FILE_ADD, 0),
        Err(Errno::ENXIO)
    );
    // No readable attributes; no other ioctls.
    assert_eq!(
        r.attr(
            kvm_fd,
            KVM_GET_DEVICE_ATTR,
            KVM_DEV_VFIO_FILE,
            KVM_DEV_VFIO_FILE_ADD,
            0
        ),
        Err(Errno::EPERM)
    );
    assert_eq!(
        r.attr(kvm_fd, KVM_CREATE_DEVICE, 0, 0, 0),
        Err(Errno::ENOTTY)
    );

    // A bad pointer: the attribute, then the fd it points to.
    let file = r.device(kvm_fd);
    assert_eq!(
        abi::ioctl(&r.env, &file, KVM_SET_DEVICE_ATTR, 8, None),
        Err(Errno::EFAULT)
    );
    assert_eq!(
        abi::ioctl(&r.env, &file, KVM_HAS_DEVICE_ATTR, 8, None),
        Err(Errno::EFAULT)
    );
    assert_eq!(
        abi::ioctl(&r.env, &file, KVM_GET_DEVICE_ATTR, 8, None),
        Err(Errno::EPERM)
    );
    let a = kvm_device_attr {
        flags: 0,
        group: KVM_DEV_VFIO_FILE,
        attr: KVM_DEV_VFIO_FILE_ADD,
        addr: 8,
    };
    r.space.write(r.arg, a.as_bytes()).unwrap();
    assert_eq!(
        abi::ioctl(&r.env, &file, KVM_SET_DEVICE_ATTR, r.arg, None),
        Err(Errno::EFAULT)
    );
}

#[test]
fn create_device_rules() {
    let r = Rig::new();
    // TEST creates nothing, even when a device exists.
    let cd = r.create(KVM_DEV_TYPE_VFIO, KVM_CREATE_DEVICE_TEST).unwrap();
    assert_eq!(cd.fd, u32::MAX);
    assert!(!r.kvm.has_vfio_device());
    assert_eq!(r.create(KVM_DEV_TYPE_XICS, 0), Err(Errno::ENODEV));

    let kvm_fd = r.create(KVM_DEV_TYPE_VFIO, 0).unwrap().fd as i32;
    assert!(r.kvm.has_vfio_device());
    assert_eq!(r.create(KVM_DEV_TYPE_VFIO, 0), Err(Errno::EBUSY));
    assert!(r.create(KVM_DEV_TYPE_VFIO, KVM_CREATE_DEVICE_TEST).is_ok());
    // Once the device's file is closed, the VM may have another.
    r.env.close(kvm_fd);
    assert!(!r.kvm.has_vfio_device());
    assert!(r.create(KVM_DEV_TYPE_VFIO, 0).is_ok());

    // A bad argument pointer.
    let r2 = create_device(&r.env, &r.process, 8, || Ok(r.kvm.clone()), None);
    assert_eq!(r2, Err(Errno::EFAULT));
}

#[test]
fn release_clears_everything() {
    let r = Rig::new();
    let kvm_fd = r.create(KVM_DEV_TYPE_VFIO, 0).unwrap().fd as i32;
    let dev = r.open_vfio(2);
    let coherent = r.open_vfio(0);
    assert_eq!(r.add(kvm_fd, dev), Ok(0));
    assert_eq!(r.add(kvm_fd, coherent), Ok(0));
    assert!(r.kvm.noncoherent_dma());
    let file = r.env.file(dev).unwrap();
    let refs = Arc::strong_count(&file);

    r.env.close(kvm_fd);
    assert!(!r.kvm.noncoherent_dma());
    assert_eq!(r.kvm.flips(), flips(1, 1));
    // The device no longer holds the file.
    assert_eq!(Arc::strong_count(&file), refs - 1);
    // Closing the VFIO fd now is its last close.
    drop(file);
    r.env.close(dev);
    assert!(!r.vfio.device_by_index(2).unwrap().is_open());
}
