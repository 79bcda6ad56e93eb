//! The ioctl boundary over simulated memory: argument structs are written into
//! the simulated program's memory and decoded by `abi::ioctl`, as the interposer
//! will hand them over.

use softiommu::abi::{self, Env, File, Trace};
use softiommu::iommufd::Iommufd;
use softiommu::mem::sim::{SimAddressSpace, SimMemory};
use softiommu::mem::{AddressSpace, FileSource, Process, User, PAGE_SIZE};
use softiommu::uapi::iommufd::*;
use softiommu::uapi::test::*;
use softiommu::uapi::Errno;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use zerocopy::{FromBytes, IntoBytes};

struct TestEnv {
    files: Mutex<HashMap<i32, Arc<File>>>,
    next: Mutex<i32>,
}

impl Env for TestEnv {
    fn install(&self, file: File) -> Result<i32, Errno> {
        let mut n = self.next.lock().unwrap();
        *n += 1;
        self.files.lock().unwrap().insert(*n, Arc::new(file));
        Ok(*n)
    }
    fn file(&self, fd: i32) -> Option<Arc<File>> {
        self.files.lock().unwrap().get(&fd).cloned()
    }
    fn map_file(&self, _fd: i32) -> Result<Arc<dyn FileSource>, Errno> {
        Err(Errno::EBADF)
    }
    fn is_open(&self, fd: i32) -> bool {
        self.files.lock().unwrap().contains_key(&fd)
    }
    fn eventfd(&self, _fd: i32) -> Result<Arc<dyn softiommu::vfio::EventFd>, Errno> {
        Err(Errno::EINVAL)
    }
}

struct Rig {
    env: TestEnv,
    space: Arc<SimAddressSpace>,
    file: File,
    arg: u64,
}

impl Rig {
    /// IOMMU_IOAS_ALLOC; returns the IOAS ID.
    fn ioas(&self) -> u32 {
        let mut alloc = iommu_ioas_alloc {
            size: size_of::<iommu_ioas_alloc>(),
            ..Default::default()
        };
        assert_eq!(self.call(IOMMU_IOAS_ALLOC, &mut alloc), Ok(0));
        alloc.out_ioas_id
    }

    /// MOCK_DOMAIN_FLAGS on `pt_id`; returns the bound device's ID.
    fn mock_device(&self, pt_id: u32, dev_flags: u32) -> u32 {
        let mut md = iommu_test_cmd::new(
            pt_id,
            &iommu_test_cmd_mock_domain_flags {
                dev_flags,
                ..Default::default()
            },
        );
        assert_eq!(self.call(IOMMU_TEST_CMD, &mut md), Ok(0));
        md.payload_as::<iommu_test_cmd_mock_domain_flags>()
            .out_idev_id
    }

    fn new() -> Rig {
        let mem = SimMemory::new(1 << 30).unwrap();
        let space = SimAddressSpace::new(&mem);
        let process = Process::new(space.clone(), User::new());
        let arg = space.mmap_anon(None, PAGE_SIZE, true).unwrap();
        let env = TestEnv {
            files: Mutex::default(),
            next: Mutex::new(100),
        };
        Rig {
            env,
            space,
            file: File::Iommufd(Iommufd::open(&process)),
            arg,
        }
    }

    /// Runs `cmd` with the argument bytes `bytes` (exactly as given) and returns
    /// the result and the bytes after the call; `trace` receives the decoded
    /// call when given.
    fn raw_traced(
        &self,
        cmd: u32,
        bytes: &[u8],
        trace: Option<&mut Trace>,
    ) -> (Result<i32, Errno>, Vec<u8>) {
        self.space.write(self.arg, bytes).unwrap();
        let r = abi::ioctl(&self.env, &self.file, cmd, self.arg, trace);
        let mut out = vec![0u8; bytes.len()];
        self.space.read(self.arg, &mut out).unwrap();
        (r, out)
    }

    fn raw(&self, cmd: u32, bytes: &[u8]) -> (Result<i32, Errno>, Vec<u8>) {
        self.raw_traced(cmd, bytes, None)
    }

    fn call<T: IntoBytes + FromBytes + zerocopy::Immutable>(
        &self,
        cmd: u32,
        arg: &mut T,
    ) -> Result<i32, Errno> {
        self.call_traced(cmd, arg).0
    }

    /// [`Rig::call`], with the trace of the call.
    fn call_traced<T: IntoBytes + FromBytes + zerocopy::Immutable>(
        &self,
        cmd: u32,
        arg: &mut T,
    ) -> (Result<i32, Errno>, Trace) {
        let mut trace = Trace::default();
        let (r, out) = self.raw_traced(cmd, arg.as_bytes(), Some(&mut trace));
        *arg = T::read_from_bytes(&out).unwrap();
        (r, trace)
    }
}

fn size_of<T>() -> u32 {
    std::mem::size_of::<T>() as u32
}

#[test]
fn ioas_alloc_map_unmap() {
    let rig = Rig::new();
    let mut alloc = iommu_ioas_alloc {
        size: size_of::<iommu_ioas_alloc>(),
        ..Default::default()
    };
    assert_eq!(rig.call(IOMMU_IOAS_ALLOC, &mut alloc), Ok(0));
    assert_eq!(alloc.out_ioas_id, 1);
    let buf = rig.space.mmap_anon(None, 4 * PAGE_SIZE, true).unwrap();
    let mut map = iommu_ioas_map {
        size: size_of::<iommu_ioas_map>(),
        flags: IOMMU_IOAS_MAP_READABLE | IOMMU_IOAS_MAP_WRITEABLE,
        ioas_id: 1,
        user_va: buf,
        length: 4 * PAGE_SIZE,
        ..Default::default()
    };
    assert_eq!(rig.call(IOMMU_IOAS_MAP, &mut map), Ok(0));
    assert_ne!(map.iova, 0);
    let mut unmap = iommu_ioas_unmap {
        size: size_of::<iommu_ioas_unmap>(),
        ioas_id: 1,
        iova: map.iova,
        length: 4 * PAGE_SIZE,
    };
    assert_eq!(rig.call(IOMMU_IOAS_UNMAP, &mut unmap), Ok(0));
    assert_eq!(unmap.length, 4 * PAGE_SIZE);
    assert_eq!(rig.call(IOMMU_IOAS_UNMAP, &mut unmap), Err(Errno::ENOENT));
}

#[test]
fn extensible_struct_rules() {
    let rig = Rig::new();
    let mut alloc = iommu_ioas_alloc {
        size: size_of::<iommu_ioas_alloc>(),
        ..Default::default()
    };
    // Below the minimum size: EINVAL.
    alloc.size = 11;
    assert_eq!(rig.call(IOMMU_IOAS_ALLOC, &mut alloc), Err(Errno::EINVAL));
    // Longer with zeroes: fine; with a non-zero byte past what we know: E2BIG.
    let mut bytes = vec![0u8; 24];
    bytes[..4].copy_from_slice(&24u32.to_ne_bytes());
    assert_eq!(rig.raw(IOMMU_IOAS_ALLOC, &bytes).0, Ok(0));
    bytes[20] = 1;
    let (r, out) = rig.raw(IOMMU_IOAS_ALLOC, &bytes);
    assert_eq!(r, Err(Errno::E2BIG));
    assert_eq!(out, bytes, "nothing written back on failure");
    // Unknown flags: EOPNOTSUPP.
    alloc.size = size_of::<iommu_ioas_alloc>();
    alloc.flags = 1;
    assert_eq!(
        rig.call(IOMMU_IOAS_ALLOC, &mut alloc),
        Err(Errno::EOPNOTSUPP)
    );
    // Not an iommufd ioctl: ENOTTY; a bad pointer: EFAULT.
    assert_eq!(
        abi::ioctl(&rig.env, &rig.file, 0x5401, rig.arg, None),
        Err(Errno::ENOTTY)
    );
    assert_eq!(
        abi::ioctl(&rig.env, &rig.file, IOMMU_IOAS_ALLOC, 8, None),
        Err(Errno::EFAULT)
    );
}

#[test]
fn iova_ranges_too_small_array() {
    let rig = Rig::new();
    let mut alloc = iommu_ioas_alloc {
        size: size_of::<iommu_ioas_alloc>(),
        ..Default::default()
    };
    rig.call(IOMMU_IOAS_ALLOC, &mut alloc).unwrap();
    let mut reserved = iommu_test_cmd::new(
        alloc.out_ioas_id,
        &iommu_test_cmd_add_reserved {
            start: 1 << 20,
            length: PAGE_SIZE,
        },
    );
    assert_eq!(rig.call(IOMMU_TEST_CMD, &mut reserved), Ok(0));
    let array = rig.space.mmap_anon(None, PAGE_SIZE, true).unwrap();
    let mut ranges = iommu_ioas_iova_ranges {
        size: size_of::<iommu_ioas_iova_ranges>(),
        ioas_id: alloc.out_ioas_id,
        num_iovas: 1,
        allowed_iovas: array,
        ..Default::default()
    };
    assert_eq!(
        rig.call(IOMMU_IOAS_IOVA_RANGES, &mut ranges),
        Err(Errno::EMSGSIZE)
    );
    assert_eq!(ranges.num_iovas, 2);
    let mut first = iommu_iova_range::default();
    rig.space.read(array, first.as_mut_bytes()).unwrap();
    assert_eq!((first.start, first.last), (0, (1 << 20) - 1));
    assert_eq!(rig.call(IOMMU_IOAS_IOVA_RANGES, &mut ranges), Ok(0));
}

#[test]
fn test_cmd_mock_domain_and_access_fd() {
    let rig = Rig::new();
    let mut alloc = iommu_ioas_alloc {
        size: size_of::<iommu_ioas_alloc>(),
        ..Default::default()
    };
    rig.call(IOMMU_IOAS_ALLOC, &mut alloc).unwrap();
    let mut md = iommu_test_cmd::new(alloc.out_ioas_id, &iommu_test_cmd_mock_domain::default());
    assert_eq!(rig.call(IOMMU_TEST_CMD, &mut md), Ok(0));
    let out: iommu_test_cmd_mock_domain = md.payload_as();
    assert_eq!(
        (out.out_stdev_id, out.out_hwpt_id, out.out_idev_id),
        (2, 4, 3)
    );
    let mut ca = iommu_test_cmd::new(
        alloc.out_ioas_id,
        &iommu_test_cmd_create_access {
            flags: MOCK_FLAGS_ACCESS_CREATE_NEEDS_PIN_PAGES,
            ..Default::default()
        },
    );
    let (r, trace) = rig.call_traced(IOMMU_TEST_CMD, &mut ca);
    assert_eq!(r, Ok(0));
    assert_eq!(trace.name, "IOMMU_TEST_CMD/CREATE_ACCESS");
    let fd = ca
        .payload_as::<iommu_test_cmd_create_access>()
        .out_access_fd;
    assert!(matches!(*rig.env.file(fd as i32).unwrap(), File::Access(_)));
    // Another descriptor is not an access: EBADFD.
    let mut rw = iommu_test_cmd::new(7, &iommu_test_cmd_access_rw::default());
    assert_eq!(rig.call(IOMMU_TEST_CMD, &mut rw), Err(Errno::EBADFD));
    // An unknown op: EOPNOTSUPP.
    let mut bad = iommu_test_cmd::new(0, &iommu_test_cmd_add_reserved::default());
    bad.op = 999;
    assert_eq!(rig.call(IOMMU_TEST_CMD, &mut bad), Err(Errno::EOPNOTSUPP));
}

#[test]
fn get_hw_info_copies_what_fits_and_zeroes_the_rest() {
    let rig = Rig::new();
    let ioas = rig.ioas();
    let idev = rig.mock_device(ioas, MOCK_FLAGS_DEVICE_PASID);
    let data = rig.space.mmap_anon(None, PAGE_SIZE, true).unwrap();
    rig.space.write(data, &[0xffu8; 16]).unwrap();
    let mut info = iommu_hw_info {
        size: size_of::<iommu_hw_info>(),
        dev_id: idev,
        data_len: 16,
        data_uptr: data,
        ..Default::default()
    };
    assert_eq!(rig.call(IOMMU_GET_HW_INFO, &mut info), Ok(0));
    assert_eq!(info.data_len, 8);
    assert_eq!(info.out_data_type(), IOMMU_HW_INFO_TYPE_SELFTEST);
    assert_eq!(info.out_capabilities, IOMMU_HW_CAP_DIRTY_TRACKING);
    assert_eq!(info.out_max_pasid_log2, 20);
    let mut got = [0u8; 16];
    rig.space.read(data, &mut got).unwrap();
    assert_eq!(&got[4..8], &IOMMU_HW_INFO_SELFTEST_REGVAL.to_ne_bytes());
    assert_eq!(
        &got[8..],
        &[0u8; 8],
        "the rest of the caller's buffer is zeroed"
    );
    // A type the driver does not speak; unknown flags; a missing device.
    info = iommu_hw_info {
        size: size_of::<iommu_hw_info>(),
        dev_id: idev,
        flags: IOMMU_HW_INFO_FLAG_INPUT_TYPE,
        ..Default::default()
    };
    info.set_in_data_type(IOMMU_HW_INFO_TYPE_INTEL_VTD);
    assert_eq!(
        rig.call(IOMMU_GET_HW_INFO, &mut info),
        Err(Errno::EOPNOTSUPP)
    );
    info.flags = 2;
    assert_eq!(
        rig.call(IOMMU_GET_HW_INFO, &mut info),
        Err(Errno::EOPNOTSUPP)
    );
    info = iommu_hw_info {
        size: size_of::<iommu_hw_info>(),
        dev_id: 99,
        ..Default::default()
    };
    assert_eq!(rig.call(IOMMU_GET_HW_INFO, &mut info), Err(Errno::ENOENT));
}

#[test]
fn hwpt_alloc_paging() {
    let rig = Rig::new();
    let ioas = rig.ioas();
    let idev = rig.mock_device(ioas, MOCK_FLAGS_DEVICE_NO_DIRTY);
    let mut h = iommu_hwpt_alloc {
        size: size_of::<iommu_hwpt_alloc>(),
        dev_id: idev,
        pt_id: ioas,
        ..Default::default()
    };
    assert_eq!(rig.call(IOMMU_HWPT_ALLOC, &mut h), Ok(0));
    assert_ne!(h.out_hwpt_id, 0);
    // Dirty tracking on a device that cannot: EOPNOTSUPP; data without a type: EINVAL.
    h.flags = IOMMU_HWPT_ALLOC_DIRTY_TRACKING;
    assert_eq!(rig.call(IOMMU_HWPT_ALLOC, &mut h), Err(Errno::EOPNOTSUPP));
    h.flags = 0;
    h.data_len = 4;
    assert_eq!(rig.call(IOMMU_HWPT_ALLOC, &mut h), Err(Errno::EINVAL));
    // The IOAS is in use by the HWPT until it goes.
    let mut d = iommu_destroy {
        size: size_of::<iommu_destroy>(),
        id: ioas,
    };
    assert_eq!(rig.call(IOMMU_DESTROY, &mut d), Err(Errno::EBUSY));
}

#[test]
fn dirty_tracking_ioctls() {
    let rig = Rig::new();
    let mut alloc = iommu_ioas_alloc {
        size: size_of::<iommu_ioas_alloc>(),
        ..Default::default()
    };
    rig.call(IOMMU_IOAS_ALLOC, &mut alloc).unwrap();
    let ioas = alloc.out_ioas_id;
    let mut md = iommu_test_cmd::new(ioas, &iommu_test_cmd_mock_domain::default());
    rig.call(IOMMU_TEST_CMD, &mut md).unwrap();
    let idev = md.payload_as::<iommu_test_cmd_mock_domain>().out_idev_id;
    let buf = rig.space.mmap_anon(None, 8 * PAGE_SIZE, true).unwrap();
    let mut map = iommu_ioas_map {
        size: size_of::<iommu_ioas_map>(),
        flags: IOMMU_IOAS_MAP_READABLE | IOMMU_IOAS_MAP_WRITEABLE,
        ioas_id: ioas,
        user_va: buf,
        length: 8 * PAGE_SIZE,
        ..Default::default()
    };
    rig.call(IOMMU_IOAS_MAP, &mut map).unwrap();
    let mut h = iommu_hwpt_alloc {
        size: size_of::<iommu_hwpt_alloc>(),
        flags: IOMMU_HWPT_ALLOC_DIRTY_TRACKING,
        dev_id: idev,
        pt_id: ioas,
        ..Default::default()
    };
    rig.call(IOMMU_HWPT_ALLOC, &mut h).unwrap();
    let hwpt = h.out_hwpt_id;

    let mut set = iommu_hwpt_set_dirty_tracking {
        size: size_of::<iommu_hwpt_set_dirty_tracking>(),
        flags: 2,
        hwpt_id: hwpt,
        __reserved: 0,
    };
    let call_set =
        |s: &mut iommu_hwpt_set_dirty_tracking| rig.call(IOMMU_HWPT_SET_DIRTY_TRACKING, s);
    assert_eq!(call_set(&mut set), Err(Errno::EOPNOTSUPP));
    set.flags = IOMMU_HWPT_DIRTY_TRACKING_ENABLE;
    set.__reserved = 1;
    assert_eq!(call_set(&mut set), Err(Errno::EOPNOTSUPP));
    set.__reserved = 0;
    set.hwpt_id = ioas;
    assert_eq!(call_set(&mut set), Err(Errno::ENOENT));
    set.hwpt_id = hwpt;
    set.size = 12;
    assert_eq!(call_set(&mut set), Err(Errno::EINVAL));
    set.size = size_of::<iommu_hwpt_set_dirty_tracking>();
    assert_eq!(call_set(&mut set), Ok(0));

    // Mark IO pages 1 and 6 of the 32 through the selftest op.
    let bitmap = rig.space.mmap_anon(None, PAGE_SIZE, true).unwrap();
    rig.space.write(bitmap, &[0x42, 0, 0, 0]).unwrap();
    let mut dirty = iommu_test_cmd::new(
        hwpt,
        &iommu_test_cmd_dirty {
            iova: map.iova,
            length: 8 * PAGE_SIZE,
            page_size: PAGE_SIZE / 2,
            uptr: bitmap,
            ..Default::default()
        },
    );
    assert_eq!(rig.call(IOMMU_TEST_CMD, &mut dirty), Ok(0));
    assert_eq!(dirty.payload_as::<iommu_test_cmd_dirty>().out_nr_dirty, 2);

    // Read them back at CPU-page granularity into a bitmap that has bit 7 set.
    rig.space.write(bitmap, &[0x80, 0, 0, 0]).unwrap();
    let mut get = iommu_hwpt_get_dirty_bitmap {
        size: size_of::<iommu_hwpt_get_dirty_bitmap>(),
        hwpt_id: hwpt,
        flags: 2,
        iova: map.iova,
        length: 8 * PAGE_SIZE,
        page_size: PAGE_SIZE,
        data: bitmap,
        ..Default::default()
    };
    assert_eq!(
        rig.call(IOMMU_HWPT_GET_DIRTY_BITMAP, &mut get),
        Err(Errno::EOPNOTSUPP)
    );
    get.flags = IOMMU_HWPT_GET_DIRTY_BITMAP_NO_CLEAR;
    get.size = 40;
    assert_eq!(
        rig.call(IOMMU_HWPT_GET_DIRTY_BITMAP, &mut get),
        Err(Errno::EINVAL)
    );
    get.size = size_of::<iommu_hwpt_get_dirty_bitmap>();
    get.page_size = 0;
    assert_eq!(
        rig.call(IOMMU_HWPT_GET_DIRTY_BITMAP, &mut get),
        Err(Errno::EINVAL)
    );
    get.page_size = PAGE_SIZE;
    assert_eq!(rig.call(IOMMU_HWPT_GET_DIRTY_BITMAP, &mut get), Ok(0));
    let mut got = [0u8; 1];
    rig.space.read(bitmap, &mut got).unwrap();
    assert_eq!(got[0], 0x80 | 0b1001, "pages 0 and 3, bit 7 kept");
    // NO_CLEAR kept them: a clearing read reports them again, then nothing.
    get.flags = 0;
    rig.space.write(bitmap, &[0]).unwrap();
    assert_eq!(rig.call(IOMMU_HWPT_GET_DIRTY_BITMAP, &mut get), Ok(0));
    rig.space.read(bitmap, &mut got).unwrap();
    assert_eq!(got[0], 0b1001);
    rig.space.write(bitmap, &[0]).unwrap();
    assert_eq!(rig.call(IOMMU_HWPT_GET_DIRTY_BITMAP, &mut get), Ok(0));
    rig.space.read(bitmap, &mut got).unwrap();
    assert_eq!(got[0], 0);
    // A bitmap the caller cannot write: EFAULT once something is dirty.
    rig.space.write(bitmap, &[0x42]).unwrap();
    rig.call(IOMMU_TEST_CMD, &mut dirty).unwrap();
    assert_eq!(dirty.payload_as::<iommu_test_cmd_dirty>().out_nr_dirty, 2);
    get.data = 8;
    assert_eq!(
        rig.call(IOMMU_HWPT_GET_DIRTY_BITMAP, &mut get),
        Err(Errno::EFAULT)
    );
}

/// Nested HWPTs through the ABI: the driver data read from the caller's memory,
/// `HWPT_INVALIDATE`'s `entry_num` written back also on failure, and
/// `MD_CHECK_IOTLB`.
#[test]
fn hwpt_nested_and_invalidate() {
    let rig = Rig::new();
    let mut alloc = iommu_ioas_alloc {
        size: size_of::<iommu_ioas_alloc>(),
        ..Default::default()
    };
    rig.call(IOMMU_IOAS_ALLOC, &mut alloc).unwrap();
    let ioas = alloc.out_ioas_id;
    let mut md = iommu_test_cmd::new(ioas, &iommu_test_cmd_mock_domain::default());
    rig.call(IOMMU_TEST_CMD, &mut md).unwrap();
    let idev = md.payload_as::<iommu_test_cmd_mock_domain>().out_idev_id;
    let mut h = iommu_hwpt_alloc {
        size: size_of::<iommu_hwpt_alloc>(),
        flags: IOMMU_HWPT_ALLOC_NEST_PARENT,
        dev_id: idev,
        pt_id: ioas,
        ..Default::default()
    };
    rig.call(IOMMU_HWPT_ALLOC, &mut h).unwrap();
    let parent = h.out_hwpt_id;

    let data = rig.space.mmap_anon(None, PAGE_SIZE, true).unwrap();
    let cfg = iommu_hwpt_selftest {
        iotlb: IOMMU_TEST_IOTLB_DEFAULT,
        pagetable_type: 0,
    };
    rig.space.write(data, cfg.as_bytes()).unwrap();
    let mut n = iommu_hwpt_alloc {
        size: size_of::<iommu_hwpt_alloc>(),
        dev_id: idev,
        pt_id: parent,
        data_type: IOMMU_HWPT_DATA_SELFTEST,
        data_len: size_of::<iommu_hwpt_selftest>(),
        data_uptr: data,
        ..Default::default()
    };
    assert_eq!(rig.call(IOMMU_HWPT_ALLOC, &mut n), Ok(0));
    let nested = n.out_hwpt_id;
    assert!(nested > parent);
    // Data past the end of the caller's memory: EFAULT; a missing pt_id: EINVAL.
    let mut bad = n;
    bad.data_uptr = data + PAGE_SIZE - 4;
    assert_eq!(rig.call(IOMMU_HWPT_ALLOC, &mut bad), Err(Errno::EFAULT));
    bad = n;
    bad.pt_id = 999;
    assert_eq!(rig.call(IOMMU_HWPT_ALLOC, &mut bad), Err(Errno::EINVAL));
    let mut d = iommu_destroy {
        size: size_of::<iommu_destroy>(),
        id: parent,
    };
    assert_eq!(rig.call(IOMMU_DESTROY, &mut d), Err(Errno::EBUSY));

    let check = |index: u32, iotlb: u32| {
        let mut c = iommu_test_cmd::new(nested, &iommu_test_cmd_check_iotlb { id: index, iotlb });
        rig.call(IOMMU_TEST_CMD, &mut c)
    };
    for i in 0..MOCK_NESTED_DOMAIN_IOTLB_NUM {
        assert_eq!(check(i, IOMMU_TEST_IOTLB_DEFAULT), Ok(0));
    }
    assert_eq!(check(4, IOMMU_TEST_IOTLB_DEFAULT), Err(Errno::EINVAL));

    // Two requests, the second with unknown flags: EOPNOTSUPP, one handled.
    let reqs = [
        iommu_hwpt_invalidate_selftest {
            flags: 0,
            iotlb_id: 2,
        },
        iommu_hwpt_invalidate_selftest {
            flags: 2,
            iotlb_id: 0,
        },
    ];
    let array = rig.space.mmap_anon(None, PAGE_SIZE, true).unwrap();
    rig.space.write(array, reqs.as_bytes()).unwrap();
    let inv = iommu_hwpt_invalidate {
        size: size_of::<iommu_hwpt_invalidate>(),
        hwpt_id: nested,
        data_uptr: array,
        data_type: IOMMU_HWPT_INVALIDATE_DATA_SELFTEST,
        entry_len: size_of::<iommu_hwpt_invalidate_selftest>(),
        entry_num: 2,
        __reserved: 0,
    };
    let mut i = inv;
    assert_eq!(
        rig.call(IOMMU_HWPT_INVALIDATE, &mut i),
        Err(Errno::EOPNOTSUPP)
    );
    assert_eq!(i.entry_num, 1);
    assert_eq!(check(2, 0), Ok(0));
    assert_eq!(check(1, IOMMU_TEST_IOTLB_DEFAULT), Ok(0));
    // Reserved bits: EOPNOTSUPP, and still entry_num 0 written back.
    i = inv;
    i.__reserved = 1;
    assert_eq!(
        rig.call(IOMMU_HWPT_INVALIDATE, &mut i),
        Err(Errno::EOPNOTSUPP)
    );
    assert_eq!(i.entry_num, 0);
    // A paging HWPT: EINVAL, entry_num 0.
    i = inv;
    i.hwpt_id = parent;
    assert_eq!(rig.call(IOMMU_HWPT_INVALIDATE, &mut i), Err(Errno::EINVAL));
    assert_eq!(i.entry_num, 0);
    // Shorter than the end of __reserved: EINVAL, nothing written.
    i = inv;
    i.size = 28;
    assert_eq!(rig.call(IOMMU_HWPT_INVALIDATE, &mut i), Err(Errno::EINVAL));
    assert_eq!(i.entry_num, 2);
    // The first request alone succeeds.
    i = inv;
    i.entry_num = 1;
    assert_eq!(rig.call(IOMMU_HWPT_INVALIDATE, &mut i), Ok(0));
    assert_eq!(i.entry_num, 1);

    // A device moves onto the nested HWPT, which is then busy.
    let stdev = md.payload_as::<iommu_test_cmd_mock_domain>().out_stdev_id;
    let mut r = iommu_test_cmd::new(stdev, &iommu_test_cmd_mock_domain_replace { pt_id: nested });
    assert_eq!(rig.call(IOMMU_TEST_CMD, &mut r), Ok(0));
    d.id = nested;
    assert_eq!(rig.call(IOMMU_DESTROY, &mut d), Err(Errno::EBUSY));
    if let File::Iommufd(ctx) = &rig.file {
        softiommu::iommufd::check::check(ctx).unwrap();
    }
}

#[test]
fn fault_queue_alloc_read_write() {
    let rig = Rig::new();
    let mut alloc = iommu_ioas_alloc {
        size: size_of::<iommu_ioas_alloc>(),
        ..Default::default()
    };
    rig.call(IOMMU_IOAS_ALLOC, &mut alloc).unwrap();
    let ioas = alloc.out_ioas_id;
    let mut md = iommu_test_cmd::new(ioas, &iommu_test_cmd_mock_domain::default());
    rig.call(IOMMU_TEST_CMD, &mut md).unwrap();
    let md = md.payload_as::<iommu_test_cmd_mock_domain>();

    // Shorter than out_fault_fd's end: EINVAL; flags: EOPNOTSUPP.
    let mut fa = iommu_fault_alloc {
        size: 12,
        ..Default::default()
    };
    assert_eq!(
        rig.call(IOMMU_FAULT_QUEUE_ALLOC, &mut fa),
        Err(Errno::EINVAL)
    );
    fa.size = size_of::<iommu_fault_alloc>();
    fa.flags = 1;
    assert_eq!(
        rig.call(IOMMU_FAULT_QUEUE_ALLOC, &mut fa),
        Err(Errno::EOPNOTSUPP)
    );
    fa.flags = 0;
    let (r, trace) = rig.call_traced(IOMMU_FAULT_QUEUE_ALLOC, &mut fa);
    assert_eq!(r, Ok(0));
    assert_eq!(trace.name, "IOMMU_FAULT_QUEUE_ALLOC");
    let file = rig.env.file(fa.out_fault_fd as i32).unwrap();
    assert!(matches!(*file, File::Fault(_)));

    let mut ha = iommu_hwpt_alloc {
        size: size_of::<iommu_hwpt_alloc>(),
        flags: IOMMU_HWPT_FAULT_ID_VALID,
        dev_id: md.out_idev_id,
        pt_id: ioas,
        fault_id: ioas,
        ..Default::default()
    };
    assert_eq!(rig.call(IOMMU_HWPT_ALLOC, &mut ha), Err(Errno::ENOENT));
    ha.fault_id = fa.out_fault_id;
    rig.call(IOMMU_HWPT_ALLOC, &mut ha).unwrap();
    let mut rep = iommu_test_cmd::new(
        md.out_stdev_id,
        &iommu_test_cmd_mock_domain_replace {
            pt_id: ha.out_hwpt_id,
        },
    );
    rig.call(IOMMU_TEST_CMD, &mut rep).unwrap();
    let trig = iommu_test_cmd_trigger_iopf {
        dev_id: md.out_idev_id,
        pasid: 0,
        grpid: 2,
        perm: IOMMU_PGFAULT_PERM_READ,
        addr: 0xdeadbeaf,
    };
    let mut t = iommu_test_cmd::new(0, &trig);
    let (r, trace) = rig.call_traced(IOMMU_TEST_CMD, &mut t);
    assert_eq!(r, Ok(0));
    assert_eq!(trace.name, "IOMMU_TEST_CMD/TRIGGER_IOPF");
    assert!(trace.input.contains("addr: 0xdeadbeaf"), "{}", trace.input);
    rig.call(IOMMU_TEST_CMD, &mut t).unwrap();
    rig.call(IOMMU_TEST_CMD, &mut t).unwrap();
    t.payload_mut::<iommu_test_cmd_trigger_iopf>().dev_id = 77;
    assert_eq!(rig.call(IOMMU_TEST_CMD, &mut t), Err(Errno::ENOENT));

    let rec = std::mem::size_of::<iommu_hwpt_pgfault>();
    let buf = rig.space.mmap_anon(None, PAGE_SIZE, true).unwrap();
    // Not whole records: ESPIPE; a bad buffer: EFAULT, and the record is lost
    // (answered with failure).
    assert_eq!(abi::read(&file, buf, rec + 1), Err(Errno::ESPIPE));
    assert_eq!(abi::read(&file, 8, rec), Err(Errno::EFAULT));
    // One record fits in the count; the second stays queued.
    assert_eq!(abi::read(&file, buf, rec), Ok(rec));
    let mut got = iommu_hwpt_pgfault::default();
    rig.space.read(buf, got.as_mut_bytes()).unwrap();
    assert_eq!(
        (got.flags, got.dev_id, got.addr, got.cookie),
        (IOMMU_PGFAULT_FLAGS_LAST_PAGE, md.out_idev_id, 0xdeadbeaf, 1)
    );
    assert_eq!(abi::read(&file, buf, 4 * rec), Ok(rec));
    assert_eq!(abi::read(&file, buf, 4 * rec), Ok(0));

    // Responses: whole records; the first bad one ends the write.
    let resp = |cookie, code| iommu_hwpt_page_response { cookie, code };
    let rsz = std::mem::size_of::<iommu_hwpt_page_response>();
    let rs = [resp(1, IOMMUFD_PAGE_RESP_SUCCESS), resp(9, 0), resp(2, 0)];
    rig.space.write(buf, rs.as_bytes()).unwrap();
    assert_eq!(abi::write(&file, buf, rsz - 1), Err(Errno::ESPIPE));
    assert_eq!(abi::write(&file, 8, rsz), Err(Errno::EFAULT));
    assert_eq!(abi::write(&file, buf, 3 * rsz), Ok(rsz));
    assert_eq!(abi::write(&file, buf, rsz), Err(Errno::EINVAL));
    rig.space
        .write(buf, resp(2, IOMMUFD_PAGE_RESP_INVALID).as_bytes())
        .unwrap();
    assert_eq!(abi::write(&file, buf, rsz), Ok(rsz));
    // The iommufd has no read or write; the fault fd no ioctl.
    assert_eq!(abi::read(&rig.file, buf, rec), Err(Errno::EINVAL));
    assert_eq!(abi::write(&rig.file, buf, rsz), Err(Errno::EINVAL));
    assert_eq!(
        abi::ioctl(&rig.env, &file, IOMMU_IOAS_ALLOC, rig.arg, None),
        Err(Errno::ENOTTY)
    );
    let File::Fault(h) = &*file else {
        unreachable!()
    };
    assert_eq!(
        h.fault().answered(),
        [
            (1, IOMMUFD_PAGE_RESP_INVALID),
            (1, IOMMUFD_PAGE_RESP_SUCCESS),
            (2, IOMMUFD_PAGE_RESP_INVALID)
        ]
    );
}

mod vfio_compat {
    use super::*;
    use softiommu::uapi::vfio::*;

    fn ctx(rig: &Rig) -> &Iommufd {
        match &rig.file {
            File::Iommufd(c) => c,
            _ => unreachable!(),
        }
    }

    /// A rig whose compat IOAS (ID 1) has a mock domain, set up through ioctls.
    fn compat_rig(iommu_type: u64) -> Rig {
        let rig = Rig::new();
        let ioas = ctx(&rig).ioas_alloc().unwrap();
        ctx(&rig).test_mock_domain(ioas).unwrap();
        let mut set = iommu_vfio_ioas {
            size: size_of::<iommu_vfio_ioas>(),
            ioas_id: ioas,
            op: IOMMU_VFIO_IOAS_SET,
            __reserved: 0,
        };
        assert_eq!(rig.call(IOMMU_VFIO_IOAS, &mut set), Ok(0));
        let r = abi::ioctl(&rig.env, &rig.file, VFIO_SET_IOMMU, iommu_type, None);
        assert_eq!(r, Ok(0));
        rig
    }

    #[test]
    fn vfio_ioas_ioctl() {
        let rig = Rig::new();
        let mut c = iommu_vfio_ioas {
            size: size_of::<iommu_vfio_ioas>(),
            op: IOMMU_VFIO_IOAS_GET,
            ..Default::default()
        };
        assert_eq!(rig.call(IOMMU_VFIO_IOAS, &mut c), Err(Errno::ENODEV));
        c.op = IOMMU_VFIO_IOAS_SET;
        assert_eq!(rig.call(IOMMU_VFIO_IOAS, &mut c), Err(Errno::ENOENT));
        let id = ctx(&rig).ioas_alloc().unwrap();
        c.ioas_id = id;
        assert_eq!(rig.call(IOMMU_VFIO_IOAS, &mut c), Ok(0));
        c.op = IOMMU_VFIO_IOAS_GET;
        c.ioas_id = 0;
        assert_eq!(rig.call(IOMMU_VFIO_IOAS, &mut c), Ok(0));
        assert_eq!(c.ioas_id, id);
        c.__reserved = 1;
        assert_eq!(rig.call(IOMMU_VFIO_IOAS, &mut c), Err(Errno::EOPNOTSUPP));
        c.__reserved = 0;
        c.op = 3;
        assert_eq!(rig.call(IOMMU_VFIO_IOAS, &mut c), Err(Errno::EOPNOTSUPP));
        // Size rules: the minimum is the end of __reserved, i.e. the whole struct.
        c.op = IOMMU_VFIO_IOAS_CLEAR;
        c.size = 11;
        assert_eq!(rig.call(IOMMU_VFIO_IOAS, &mut c), Err(Errno::EINVAL));
        c.size = 12;
        assert_eq!(rig.call(IOMMU_VFIO_IOAS, &mut c), Ok(0));
        assert_eq!(
            ctx(&rig).vfio_ioas_get().unwrap_err().errno(),
            Errno::ENODEV
        );
    }

    #[test]
    fn container_ioctls_and_unknown_numbers() {
        let rig = Rig::new();
        let io = |cmd, arg| abi::ioctl(&rig.env, &rig.file, cmd, arg, None);
        assert_eq!(io(VFIO_GET_API_VERSION, 0), Ok(VFIO_API_VERSION));
        assert_eq!(io(VFIO_CHECK_EXTENSION, VFIO_TYPE1v2_IOMMU), Ok(1));
        assert_eq!(io(VFIO_CHECK_EXTENSION, VFIO_UPDATE_VADDR), Ok(0));
        assert_eq!(io(VFIO_SET_IOMMU, VFIO_TYPE1_IOMMU), Err(Errno::ENODEV));
        // Other VFIO numbers (group, device, dirty pages) are not an iommufd's.
        assert_eq!(io(VFIO_IOMMU_DIRTY_PAGES, rig.arg), Err(Errno::ENOTTY));
        assert_eq!(io(VFIO_GET_API_VERSION + 3, rig.arg), Err(Errno::ENOTTY));
        // Another type byte with a VFIO number: ENOTTY too.
        assert_eq!(io(0x4b64, 0), Err(Errno::ENOTTY));
        let mut t = Trace::default();
        abi::ioctl(&rig.env, &rig.file, VFIO_CHECK_EXTENSION, 9, Some(&mut t)).unwrap();
        assert_eq!(t.name, "VFIO_CHECK_EXTENSION");
        assert_eq!(
            abi::command_name(VFIO_IOMMU_MAP_DMA),
            Some("VFIO_IOMMU_MAP_DMA")
        );
    }

    #[test]
    fn map_unmap_argsz_and_flags() {
        let rig = Rig::new();
        let mut map = vfio_iommu_type1_dma_map {
            argsz: 1,
            iova: 1 << 24,
            size: PAGE_SIZE,
            ..Default::default()
        };
        assert_eq!(rig.call(VFIO_IOMMU_MAP_DMA, &mut map), Err(Errno::EINVAL));
        map.argsz = size_of::<vfio_iommu_type1_dma_map>();
        map.flags = 1 << 31;
        assert_eq!(rig.call(VFIO_IOMMU_MAP_DMA, &mut map), Err(Errno::EINVAL));
        map.flags = VFIO_DMA_MAP_FLAG_READ | VFIO_DMA_MAP_FLAG_WRITE;
        assert_eq!(rig.call(VFIO_IOMMU_MAP_DMA, &mut map), Err(Errno::ENODEV));
        let mut unmap = vfio_iommu_type1_dma_unmap {
            argsz: 1,
            iova: 1 << 24,
            size: PAGE_SIZE,
            ..Default::default()
        };
        assert_eq!(
            rig.call(VFIO_IOMMU_UNMAP_DMA, &mut unmap),
            Err(Errno::EINVAL)
        );
        unmap.argsz = size_of::<vfio_iommu_type1_dma_unmap>();
        unmap.flags = VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP;
        assert_eq!(
            rig.call(VFIO_IOMMU_UNMAP_DMA, &mut unmap),
            Err(Errno::EINVAL)
        );
        unmap.flags = 0;
        assert_eq!(
            rig.call(VFIO_IOMMU_UNMAP_DMA, &mut unmap),
            Err(Errno::ENODEV)
        );
        let mut info = vfio_iommu_type1_info {
            argsz: 15,
            ..Default::default()
        };
        assert_eq!(rig.call(VFIO_IOMMU_GET_INFO, &mut info), Err(Errno::EINVAL));
        info.argsz = 16;
        assert_eq!(rig.call(VFIO_IOMMU_GET_INFO, &mut info), Err(Errno::ENODEV));
    }

    #[test]
    fn map_and_unmap_through_the_compat_ioas() {
        let rig = compat_rig(VFIO_TYPE1v2_IOMMU);
        let buf = rig.space.mmap_anon(None, 8 * PAGE_SIZE, true).unwrap();
        let mut map = vfio_iommu_type1_dma_map {
            argsz: size_of::<vfio_iommu_type1_dma_map>(),
            flags: VFIO_DMA_MAP_FLAG_READ | VFIO_DMA_MAP_FLAG_WRITE,
            vaddr: buf,
            iova: MOCK_APERTURE_START,
            size: 8 * PAGE_SIZE,
        };
        assert_eq!(rig.call(VFIO_IOMMU_MAP_DMA, &mut map), Ok(0));
        let mut unmap = vfio_iommu_type1_dma_unmap {
            argsz: size_of::<vfio_iommu_type1_dma_unmap>(),
            flags: VFIO_DMA_UNMAP_FLAG_ALL,
            iova: MOCK_APERTURE_START,
            size: 0,
        };
        assert_eq!(
            rig.call(VFIO_IOMMU_UNMAP_DMA, &mut unmap),
            Err(Errno::EINVAL)
        );
        unmap.iova = 0;
        assert_eq!(rig.call(VFIO_IOMMU_UNMAP_DMA, &mut unmap), Ok(0));
        assert_eq!(unmap.size, 8 * PAGE_SIZE);
        assert_eq!(rig.call(VFIO_IOMMU_MAP_DMA, &mut map), Ok(0));
        unmap = vfio_iommu_type1_dma_unmap {
            argsz: size_of::<vfio_iommu_type1_dma_unmap>(),
            flags: 0,
            iova: MOCK_APERTURE_START,
            size: PAGE_SIZE,
        };
        // type1v2: part of a mapping is ENOENT.
        assert_eq!(
            rig.call(VFIO_IOMMU_UNMAP_DMA, &mut unmap),
            Err(Errno::ENOENT)
        );
        unmap.size = 8 * PAGE_SIZE;
        assert_eq!(rig.call(VFIO_IOMMU_UNMAP_DMA, &mut unmap), Ok(0));
        assert_eq!(unmap.size, 8 * PAGE_SIZE);
        assert_eq!(rig.call(VFIO_IOMMU_UNMAP_DMA, &mut unmap), Ok(0));
        assert_eq!(unmap.size, 0);
    }

    /// The capability chain as the selftest walks it, at every `argsz` from the
    /// pre-capability size up: nothing is written past `argsz`, and a reported
    /// chain is whole.
    #[test]
    fn get_info_capability_chain() {
        let rig = compat_rig(VFIO_TYPE1_IOMMU);
        let info_size = std::mem::size_of::<vfio_iommu_type1_info>();
        let run = |argsz: u32| -> Vec<u8> {
            let mut bytes = vec![0xaau8; 256];
            let head = vfio_iommu_type1_info {
                argsz,
                ..Default::default()
            };
            bytes[..info_size].copy_from_slice(head.as_bytes());
            bytes[argsz as usize..info_size.max(argsz as usize)].fill(0xaa);
            let (r, out) = rig.raw(VFIO_IOMMU_GET_INFO, &bytes);
            assert_eq!(r, Ok(0), "argsz {argsz}");
            assert!(
                out[argsz as usize..].iter().all(|b| *b == 0xaa),
                "written past argsz {argsz}"
            );
            out
        };
        let out = run(16);
        let info = vfio_iommu_type1_info::read_from_bytes(&out[..info_size]).unwrap();
        assert_eq!(info.flags, VFIO_IOMMU_INFO_PGSIZES | VFIO_IOMMU_INFO_CAPS);
        assert_eq!(info.iova_pgsizes & (PAGE_SIZE - 1), 0);
        assert_ne!(info.iova_pgsizes & PAGE_SIZE, 0);
        // 24 + dma_avail 12 + iova range header 16 + one range 16.
        assert_eq!(info.argsz, 68);
        let out = run(24);
        let info = vfio_iommu_type1_info::read_from_bytes(&out[..info_size]).unwrap();
        assert_eq!((info.argsz, info.cap_offset), (68, 0));
        for argsz in 24..68 {
            let out = run(argsz);
            let info = vfio_iommu_type1_info::read_from_bytes(&out[..info_size]).unwrap();
            assert_eq!(info.cap_offset, 0, "argsz {argsz}");
        }
        let out = run(68);
        let info = vfio_iommu_type1_info::read_from_bytes(&out[..info_size]).unwrap();
        assert_eq!(info.cap_offset, 24);
        let avail = vfio_iommu_type1_info_dma_avail::read_from_bytes(&out[24..36]).unwrap();
        assert_eq!(avail.header.id, VFIO_IOMMU_TYPE1_INFO_DMA_AVAIL);
        assert_eq!(avail.header.version, 1);
        assert_eq!(avail.header.next, 36);
        assert_eq!(avail.avail, u32::MAX);
        let cap = vfio_iommu_type1_info_cap_iova_range::read_from_bytes(&out[36..52]).unwrap();
        assert_eq!(cap.header.id, VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE);
        assert_eq!(
            (cap.header.version, cap.header.next, cap.nr_iovas),
            (1, 0, 1)
        );
        let range = vfio_iova_range::read_from_bytes(&out[52..68]).unwrap();
        assert_eq!(
            (range.start, range.end),
            (MOCK_APERTURE_START, MOCK_APERTURE_LAST)
        );
    }
}

#[test]
fn viommu_vdevice_and_dev_cache() {
    let rig = Rig::new();
    let ioas = rig.ioas();
    let idev = rig.mock_device(ioas, 0);
    let mut h = iommu_hwpt_alloc {
        size: size_of::<iommu_hwpt_alloc>(),
        flags: IOMMU_HWPT_ALLOC_NEST_PARENT,
        dev_id: idev,
        pt_id: ioas,
        ..Default::default()
    };
    rig.call(IOMMU_HWPT_ALLOC, &mut h).unwrap();
    let parent = h.out_hwpt_id;

    // The original 24-byte struct is enough; shorter is EINVAL.
    let data = rig.space.mmap_anon(None, PAGE_SIZE, true).unwrap();
    rig.space
        .write(
            data,
            iommu_viommu_selftest {
                in_data: 0x1234,
                ..Default::default()
            }
            .as_bytes(),
        )
        .unwrap();
    let v = iommu_viommu_alloc {
        size: size_of::<iommu_viommu_alloc>(),
        type_: IOMMU_VIOMMU_TYPE_SELFTEST,
        dev_id: idev,
        hwpt_id: parent,
        data_len: size_of::<iommu_viommu_selftest>(),
        data_uptr: data,
        ..Default::default()
    };
    let mut short = v;
    short.size = 20;
    assert_eq!(rig.call(IOMMU_VIOMMU_ALLOC, &mut short), Err(Errno::EINVAL));
    let mut bad = v;
    bad.flags = 1;
    assert_eq!(
        rig.call(IOMMU_VIOMMU_ALLOC, &mut bad),
        Err(Errno::EOPNOTSUPP)
    );
    bad = v;
    bad.type_ = IOMMU_VIOMMU_TYPE_ARM_SMMUV3;
    assert_eq!(
        rig.call(IOMMU_VIOMMU_ALLOC, &mut bad),
        Err(Errno::EOPNOTSUPP)
    );
    let mut a = v;
    assert_eq!(rig.call(IOMMU_VIOMMU_ALLOC, &mut a), Ok(0));
    let viommu = a.out_viommu_id;
    assert!(viommu > parent);
    let mut out = [0u8; 24];
    rig.space.read(data, &mut out).unwrap();
    assert_eq!(
        iommu_viommu_selftest::read_from_bytes(&out)
            .unwrap()
            .out_data,
        0x1234
    );

    let vd = iommu_vdevice_alloc {
        size: size_of::<iommu_vdevice_alloc>(),
        viommu_id: viommu,
        dev_id: idev,
        out_vdevice_id: 0,
        virt_id: 0x42,
    };
    let mut short = vd;
    short.size = 16;
    assert_eq!(
        rig.call(IOMMU_VDEVICE_ALLOC, &mut short),
        Err(Errno::EINVAL)
    );
    let mut d = vd;
    assert_eq!(rig.call(IOMMU_VDEVICE_ALLOC, &mut d), Ok(0));
    let vdev = d.out_vdevice_id;
    let mut again = vd;
    assert_eq!(
        rig.call(IOMMU_VDEVICE_ALLOC, &mut again),
        Err(Errno::EEXIST)
    );

    // Invalidate entry 3 of the device's cache through the vIOMMU.
    let check = |index: u32, cache: u32| {
        let mut c = iommu_test_cmd::new(idev, &iommu_test_cmd_check_dev_cache { id: index, cache });
        rig.call(IOMMU_TEST_CMD, &mut c)
    };
    assert_eq!(check(3, IOMMU_TEST_DEV_CACHE_DEFAULT), Ok(0));
    let req = iommu_viommu_invalidate_selftest {
        flags: 0,
        vdev_id: 0x42,
        cache_id: 3,
    };
    let array = rig.space.mmap_anon(None, PAGE_SIZE, true).unwrap();
    rig.space.write(array, req.as_bytes()).unwrap();
    let mut i = iommu_hwpt_invalidate {
        size: size_of::<iommu_hwpt_invalidate>(),
        hwpt_id: viommu,
        data_uptr: array,
        data_type: IOMMU_VIOMMU_INVALIDATE_DATA_SELFTEST,
        entry_len: size_of::<iommu_viommu_invalidate_selftest>(),
        entry_num: 1,
        __reserved: 0,
    };
    assert_eq!(rig.call(IOMMU_HWPT_INVALIDATE, &mut i), Ok(0));
    assert_eq!(i.entry_num, 1);
    assert_eq!(check(3, 0), Ok(0));
    assert_eq!(check(2, 0), Err(Errno::EINVAL));
    assert_eq!(check(4, 0), Err(Errno::EINVAL));

    // Destroy order: the vIOMMU is busy while its vDEVICE lives.
    let mut x = iommu_destroy {
        size: size_of::<iommu_destroy>(),
        id: viommu,
    };
    assert_eq!(rig.call(IOMMU_DESTROY, &mut x), Err(Errno::EBUSY));
    x.id = vdev;
    assert_eq!(rig.call(IOMMU_DESTROY, &mut x), Ok(0));
    x.id = viommu;
    assert_eq!(rig.call(IOMMU_DESTROY, &mut x), Ok(0));
    if let File::Iommufd(ctx) = &rig.file {
        softiommu::iommufd::check::check(ctx).unwrap();
    }
}
