//! Shared fixtures for the ports of the kernel's iommufd selftest
//! (`tools/testing/selftests/iommu/iommufd.c`).
//!
//! The kernel's harness gives every test a fresh `/dev/iommu` descriptor, a global
//! `buffer` (16 pages of `MAP_SHARED` anonymous memory at a huge-page aligned
//! address) and a memfd `mfd` mapped at `mfd_buffer`; each fixture adds an IOAS and
//! mock domains per variant, and every teardown closes the descriptor, opens a new
//! one and checks that no page of `buffer` is still pinned (`MD_CHECK_REFS` 0).
//!
//! [`Fixture`] is that setup over simulated memory. Every operation goes through a
//! wrapper that runs the consistency checker ([`check`] and [`check_pins`]) right
//! after the call, whatever its result, so a port checks every invariant after
//! every step. The teardown runs when the fixture is dropped (skipped while a test
//! is already panicking, so the first failure is the one reported).
#![allow(dead_code)]

use softiommu::iommufd::check::{check, check_pins};
use softiommu::iommufd::{AccessHandle, Iommufd, IovaRanges, MapFlags, MockDomainIds};
use softiommu::mem::sim::{SimAddressSpace, SimFile, SimMemory};
use softiommu::mem::{AddressSpace, Process, User};
use softiommu::range::IovaRange;
use softiommu::uapi::Errno;
use softiommu::Result;
use std::cell::Cell;
use std::sync::Arc;

pub use softiommu::mem::PAGE_SIZE;
#[allow(unused_imports)]
pub use softiommu::uapi::test::{MOCK_APERTURE_LAST, MOCK_APERTURE_START};

/// The mock domain's IO page size: half a CPU page.
pub const MOCK_PAGE_SIZE: u64 = PAGE_SIZE / 2;
/// The kernel selftest's `BUFFER_SIZE`.
pub const BUFFER_SIZE: u64 = 16 * PAGE_SIZE;
/// `hpage_pmd_size` on x86_64 (the selftest's fallback too).
pub const HUGEPAGE_SIZE: u64 = 2 * 1024 * 1024;
/// `SET_TEMP_MEMORY_LIMIT`'s default, restored by the ioas fixture.
pub const DEFAULT_MEMORY_LIMIT: u32 = 65536;

/// `MOCK_FLAGS_ACCESS_CREATE_NEEDS_PIN_PAGES`.
pub const NEEDS_PIN_PAGES: u32 = 1;
/// `MOCK_FLAGS_ACCESS_WRITE` / `MOCK_ACCESS_RW_WRITE`.
pub const ACCESS_WRITE: u32 = 1;
/// `MOCK_ACCESS_RW_SLOW_PATH`.
pub const ACCESS_RW_SLOW_PATH: u32 = 1 << 2;

/// Where huge-page aligned simulated mappings are placed (2 MiB aligned).
const ALIGNED_VA_BASE: u64 = 0x7e00_0000_0000;

/// Asserts that `r` failed with `errno`.
#[track_caller]
pub fn expect_errno<T: std::fmt::Debug>(r: Result<T>, errno: Errno) {
    match r {
        Ok(v) => panic!("expected {errno}, got success ({v:?})"),
        Err(e) => assert_eq!(e.errno(), errno, "expected {errno}, got {e}"),
    }
}

/// A small deterministic generator standing in for the selftest's `rand()`.
#[derive(Debug)]
pub struct Rng(u64);

impl Rng {
    /// A generator with a fixed seed.
    pub fn new(seed: u64) -> Rng {
        Rng(seed | 1)
    }

    /// The next pseudo-random value.
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// Fills `buf` with pseudo-random bytes.
    pub fn fill(&mut self, buf: &mut [u8]) {
        for b in buf {
            *b = self.next_u64() as u8;
        }
    }
}

/// The kernel harness's per-test state: a process over simulated memory, its
/// `buffer` and `mfd_buffer`, and an open iommufd context.
#[derive(Debug)]
pub struct Fixture {
    pub mem: Arc<SimMemory>,
    pub space: Arc<SimAddressSpace>,
    pub process: Arc<Process>,
    ctx: Option<Iommufd>,
    /// The selftest's `buffer`: `BUFFER_SIZE` bytes at a huge-page aligned address.
    pub buffer: u64,
    /// The selftest's `mfd`: a memfd of `BUFFER_SIZE` bytes.
    pub mfd: Arc<SimFile>,
    /// The selftest's `mfd_buffer`: `mfd` mapped shared.
    pub mfd_buffer: u64,
    next_aligned_va: Cell<u64>,
}

impl Fixture {
    /// Opens a context for a process that runs as root, as the kernel's selftest
    /// does (CAP_SYS_RESOURCE for the RLIMIT_MODE option, CAP_IPC_LOCK).
    pub fn new() -> Fixture {
        let mem = SimMemory::new(1 << 30).expect("simulated memory");
        let space = SimAddressSpace::new(&mem);
        let process = Process::new(space.clone(), User::new());
        process.set_cap_sys_resource(true);
        process.set_cap_ipc_lock(true);
        let ctx = Iommufd::open(&process);
        let buffer = space
            .mmap_anon(Some(ALIGNED_VA_BASE), BUFFER_SIZE, true)
            .expect("mmap buffer");
        let mfd = SimFile::new(&mem, BUFFER_SIZE, BUFFER_SIZE).expect("memfd");
        let mfd_buffer = space
            .mmap_file(None, &mfd, 0, BUFFER_SIZE, true)
            .expect("mmap memfd");
        Fixture {
            mem,
            space,
            process,
            ctx: Some(ctx),
            buffer,
            mfd,
            mfd_buffer,
            next_aligned_va: Cell::new(ALIGNED_VA_BASE + 2 * HUGEPAGE_SIZE),
        }
    }

    /// The open context.
    pub fn ctx(&self) -> &Iommufd {
        self.ctx.as_ref().expect("context open")
    }

    /// Runs the consistency checker on the context and the pin table.
    #[track_caller]
    pub fn check(&self) {
        let ctx = self.ctx();
        if let Err(e) = check(ctx) {
            panic!("consistency check failed: {e}");
        }
        if let Err(e) = check_pins(ctx, self.mem.pins()) {
            panic!("pin check failed: {e}");
        }
    }

    /// Returns `r` after checking every invariant.
    #[track_caller]
    pub fn step<T>(&self, r: Result<T>) -> Result<T> {
        self.check();
        r
    }

    // ----- memory -----

    /// Fresh anonymous memory at a huge-page aligned address (the selftest's
    /// `posix_memalign(HUGEPAGE_SIZE)` + `MAP_FIXED`, or a `MAP_HUGETLB` mapping: in
    /// simulated memory every mapping is physically contiguous).
    pub fn mmap_aligned(&self, len: u64) -> u64 {
        let va = self.next_aligned_va.get();
        let next = (va + len).next_multiple_of(HUGEPAGE_SIZE) + HUGEPAGE_SIZE;
        self.next_aligned_va.set(next);
        self.space.mmap_anon(Some(va), len, true).expect("mmap")
    }

    /// Fresh anonymous memory wherever there is room.
    pub fn mmap(&self, len: u64) -> u64 {
        self.space.mmap_anon(None, len, true).expect("mmap")
    }

    /// A new memfd of `len` bytes and its shared mapping (the selftest's `memfd_mmap`).
    pub fn memfd_mmap(&self, len: u64, aligned: bool) -> (Arc<SimFile>, u64) {
        let file = SimFile::new(&self.mem, len, len).expect("memfd");
        let va = if aligned {
            let va = self.next_aligned_va.get();
            self.next_aligned_va
                .set((va + len).next_multiple_of(HUGEPAGE_SIZE) + HUGEPAGE_SIZE);
            Some(va)
        } else {
            None
        };
        let addr = self
            .space
            .mmap_file(va, &file, 0, len, true)
            .expect("mmap memfd");
        (file, addr)
    }

    /// Unmaps user memory.
    pub fn munmap(&self, va: u64, len: u64) {
        self.space.munmap(va, len).expect("munmap");
    }

    /// Writes user memory.
    pub fn write(&self, va: u64, data: &[u8]) {
        self.space.write(va, data).expect("user write");
    }

    /// Reads user memory.
    pub fn read(&self, va: u64, len: u64) -> Vec<u8> {
        let mut buf = vec![0u8; len as usize];
        self.space.read(va, &mut buf).expect("user read");
        buf
    }

    // ----- iommufd operations, each followed by the checker -----

    pub fn ioas_alloc(&self) -> u32 {
        let id = self.step(self.ctx().ioas_alloc()).expect("IOAS_ALLOC");
        assert_ne!(id, 0);
        id
    }

    pub fn destroy(&self, id: u32) -> Result<()> {
        self.step(self.ctx().destroy(id))
    }

    /// `IOAS_MAP` readable and writeable at a kernel-chosen IOVA.
    pub fn map(&self, ioas: u32, va: u64, len: u64) -> Result<u64> {
        self.step(self.ctx().ioas_map(ioas, va, len, None, MapFlags::RW))
    }

    /// `IOAS_MAP` readable and writeable at `iova`.
    pub fn map_fixed(&self, ioas: u32, va: u64, len: u64, iova: u64) -> Result<u64> {
        self.step(self.ctx().ioas_map(ioas, va, len, Some(iova), MapFlags::RW))
    }

    /// `IOAS_MAP` with explicit permissions.
    pub fn map_flags(
        &self,
        ioas: u32,
        va: u64,
        len: u64,
        iova: Option<u64>,
        flags: MapFlags,
    ) -> Result<u64> {
        self.step(self.ctx().ioas_map(ioas, va, len, iova, flags))
    }

    /// `IOAS_MAP_FILE` readable and writeable.
    pub fn map_file(
        &self,
        ioas: u32,
        file: &Arc<SimFile>,
        start: u64,
        len: u64,
        iova: Option<u64>,
    ) -> Result<u64> {
        self.step(
            self.ctx()
                .ioas_map_file(ioas, file.clone(), start, len, iova, MapFlags::RW),
        )
    }

    pub fn unmap(&self, ioas: u32, iova: u64, len: u64) -> Result<u64> {
        self.step(self.ctx().ioas_unmap(ioas, iova, len))
    }

    pub fn copy(
        &self,
        dst: u32,
        src: u32,
        src_iova: u64,
        len: u64,
        dst_iova: Option<u64>,
        flags: MapFlags,
    ) -> Result<u64> {
        self.step(
            self.ctx()
                .ioas_copy(dst, src, src_iova, len, dst_iova, flags),
        )
    }

    pub fn allow_iovas(&self, ioas: u32, ranges: &[IovaRange]) -> Result<()> {
        self.step(self.ctx().ioas_allow_iovas(ioas, ranges))
    }

    pub fn iova_ranges(&self, ioas: u32) -> Result<IovaRanges> {
        self.step(self.ctx().ioas_iova_ranges(ioas))
    }

    pub fn option(&self, option_id: u32, op: u16, object_id: u32, val64: u64) -> Result<u64> {
        self.step(self.ctx().option(option_id, op, object_id, val64))
    }

    pub fn add_reserved(&self, ioas: u32, start: u64, len: u64) -> Result<()> {
        self.step(self.ctx().test_add_reserved(ioas, start, len))
    }

    pub fn mock_domain(&self, pt_id: u32) -> Result<MockDomainIds> {
        self.step(self.ctx().test_mock_domain(pt_id))
    }

    pub fn mock_domain_flags(&self, pt_id: u32, dev_flags: u32) -> Result<MockDomainIds> {
        self.step(self.ctx().test_mock_domain_flags(pt_id, dev_flags))
    }

    pub fn mock_domain_replace(&self, stdev_id: u32, pt_id: u32) -> Result<u32> {
        self.step(self.ctx().test_mock_domain_replace(stdev_id, pt_id))
    }

    pub fn pasid_attach(&self, stdev_id: u32, pasid: u32, pt_id: u32) -> Result<u32> {
        self.step(self.ctx().test_pasid_attach(stdev_id, pasid, pt_id))
    }

    pub fn pasid_replace(&self, stdev_id: u32, pasid: u32, pt_id: u32) -> Result<u32> {
        self.step(self.ctx().test_pasid_replace(stdev_id, pasid, pt_id))
    }

    pub fn pasid_detach(&self, stdev_id: u32, pasid: u32) -> Result<()> {
        self.step(self.ctx().test_pasid_detach(stdev_id, pasid))
    }

    pub fn pasid_check(&self, stdev_id: u32, pasid: u32, hwpt_id: u32) -> Result<()> {
        self.step(self.ctx().test_pasid_check_hwpt(stdev_id, pasid, hwpt_id))
    }

    pub fn hwpt_alloc(&self, dev_id: u32, pt_id: u32, flags: u32) -> Result<u32> {
        self.step(self.ctx().hwpt_alloc(dev_id, pt_id, flags, 0, 0, 0))
    }

    /// `HWPT_ALLOC` with driver data of `data_type`: `data` is written into
    /// fresh memory and passed with its length.
    pub fn hwpt_alloc_data(
        &self,
        dev_id: u32,
        pt_id: u32,
        flags: u32,
        data_type: u32,
        data: &[u8],
    ) -> Result<u32> {
        let uptr = self.mmap(PAGE_SIZE);
        self.write(uptr, data);
        let r = self
            .ctx()
            .hwpt_alloc(dev_id, pt_id, flags, data_type, data.len() as u32, uptr);
        self.munmap(uptr, PAGE_SIZE);
        self.step(r)
    }

    /// `HWPT_INVALIDATE` with the `entries` (each `entry_len` bytes as laid
    /// out in `bytes`) written into fresh memory; returns the result and the
    /// number of entries handled.
    pub fn hwpt_invalidate(
        &self,
        hwpt_id: u32,
        data_type: u32,
        bytes: &[u8],
        entry_len: u32,
        entry_num: u32,
    ) -> (Result<()>, u32) {
        let uptr = self.mmap(PAGE_SIZE);
        self.write(uptr, bytes);
        let (r, done) = self
            .ctx()
            .hwpt_invalidate(hwpt_id, data_type, uptr, entry_len, entry_num);
        self.munmap(uptr, PAGE_SIZE);
        (self.step(r), done)
    }

    pub fn check_iotlb(&self, hwpt_id: u32, iotlb_id: u32, iotlb: u32) -> Result<()> {
        self.step(self.ctx().test_md_check_iotlb(hwpt_id, iotlb_id, iotlb))
    }

    pub fn set_dirty_tracking(&self, hwpt_id: u32, enable: bool) -> Result<()> {
        self.step(self.ctx().hwpt_set_dirty_tracking(hwpt_id, enable))
    }

    pub fn get_dirty_bitmap(
        &self,
        hwpt_id: u32,
        iova: u64,
        len: u64,
        page_size: u64,
        no_clear: bool,
        data: u64,
    ) -> Result<()> {
        self.step(
            self.ctx()
                .hwpt_get_dirty_bitmap(hwpt_id, iova, len, page_size, no_clear, data),
        )
    }

    pub fn mock_dirty(
        &self,
        hwpt_id: u32,
        iova: u64,
        len: u64,
        page_size: u64,
        uptr: u64,
    ) -> Result<u64> {
        self.step(self.ctx().test_dirty(hwpt_id, iova, len, page_size, uptr))
    }

    pub fn check_map(&self, hwpt_id: u32, iova: u64, len: u64, uptr: u64) -> Result<()> {
        self.step(self.ctx().test_md_check_map(hwpt_id, iova, len, uptr))
    }

    pub fn check_refs(&self, uptr: u64, len: u64, refs: u32) -> Result<()> {
        self.step(self.ctx().test_md_check_refs(uptr, len, refs))
    }

    pub fn set_temp_memory_limit(&self, limit: u32) -> Result<()> {
        self.step(self.ctx().test_set_temp_memory_limit(limit))
    }

    pub fn create_access(&self, ioas: u32, flags: u32) -> Result<AccessHandle> {
        self.step(self.ctx().test_create_access(ioas, flags))
    }

    pub fn access_pages(
        &self,
        access: &AccessHandle,
        iova: u64,
        len: u64,
        uptr: u64,
        flags: u32,
    ) -> Result<u32> {
        self.step(access.pages(iova, len, uptr, flags))
    }

    pub fn destroy_access_pages(&self, access: &AccessHandle, id: u32) -> Result<()> {
        self.step(access.destroy_pages(id))
    }

    pub fn access_rw(
        &self,
        access: &AccessHandle,
        iova: u64,
        uptr: u64,
        len: u64,
        flags: u32,
    ) -> Result<()> {
        self.step(access.rw(iova, uptr, len, flags))
    }

    pub fn access_replace_ioas(&self, access: &AccessHandle, ioas: u32) -> Result<()> {
        self.step(access.replace_ioas(ioas))
    }

    /// Closes an access descriptor (`test_cmd_destroy_access`).
    pub fn destroy_access(&self, access: AccessHandle) {
        drop(access);
        self.check();
    }
}

impl Default for Fixture {
    fn default() -> Self {
        Fixture::new()
    }
}

impl Drop for Fixture {
    /// The kernel's `teardown_iommufd`: close the context, open a new one and check
    /// that nothing of `buffer` is still pinned.
    fn drop(&mut self) {
        if std::thread::panicking() {
            return;
        }
        self.check();
        drop(self.ctx.take());
        let ctx = Iommufd::open(&self.process);
        ctx.test_md_check_refs(self.buffer, BUFFER_SIZE, 0)
            .expect("teardown: buffer pages still pinned");
        assert!(
            self.mem.pins().is_empty(),
            "teardown: pages still pinned: {:?}",
            self.mem.pins().snapshot()
        );
        assert_eq!(
            self.process.pinned_vm(),
            0,
            "teardown: pinned_vm not returned"
        );
    }
}

// ----- the iommufd_ioas fixture -----

/// The variants of the kernel's `iommufd_ioas` fixture.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IoasVariant {
    NoDomain,
    MockDomain,
    TwoMockDomain,
    MockDomainLimit,
}

impl IoasVariant {
    pub fn mock_domains(self) -> u32 {
        match self {
            IoasVariant::NoDomain => 0,
            IoasVariant::MockDomain | IoasVariant::MockDomainLimit => 1,
            IoasVariant::TwoMockDomain => 2,
        }
    }

    pub fn memory_limit(self) -> u32 {
        match self {
            IoasVariant::MockDomainLimit => 16,
            _ => 0,
        }
    }

    /// The `mock_domain` variant also binds a PASID-capable mock device (6.15+).
    pub fn pasid_capable(self) -> bool {
        self == IoasVariant::MockDomain
    }
}

/// The kernel's `iommufd_ioas` fixture.
#[derive(Debug)]
pub struct IoasFixture {
    pub f: Fixture,
    pub variant: IoasVariant,
    pub ioas_id: u32,
    pub stdev_id: u32,
    pub hwpt_id: u32,
    pub device_id: u32,
    pub base_iova: u64,
    pub device_pasid_id: u32,
}

impl IoasFixture {
    pub fn new(variant: IoasVariant) -> IoasFixture {
        let f = Fixture::new();
        let ioas_id = f.ioas_alloc();
        let limit = match variant.memory_limit() {
            0 => DEFAULT_MEMORY_LIMIT,
            l => l,
        };
        f.set_temp_memory_limit(limit)
            .expect("SET_TEMP_MEMORY_LIMIT");
        let (mut stdev_id, mut hwpt_id, mut device_id, mut base_iova) = (0, 0, 0, 0);
        for _ in 0..variant.mock_domains() {
            let ids = f.mock_domain(ioas_id).expect("MOCK_DOMAIN");
            (stdev_id, hwpt_id, device_id) = (ids.stdev_id, ids.hwpt_id, ids.idev_id);
            base_iova = MOCK_APERTURE_START;
        }
        let mut device_pasid_id = 0;
        if variant.pasid_capable() {
            let ids = f
                .mock_domain_flags(ioas_id, softiommu::iommu::mock::MOCK_FLAGS_DEVICE_PASID)
                .expect("MOCK_DOMAIN_FLAGS PASID");
            device_pasid_id = ids.idev_id;
        }
        IoasFixture {
            f,
            variant,
            ioas_id,
            stdev_id,
            hwpt_id,
            device_id,
            base_iova,
            device_pasid_id,
        }
    }

    // Shorthands on the fixture's IOAS, named after the selftest's macros.

    pub fn map(&self, va: u64, len: u64) -> Result<u64> {
        self.f.map(self.ioas_id, va, len)
    }

    pub fn map_fixed(&self, va: u64, len: u64, iova: u64) -> Result<u64> {
        self.f.map_fixed(self.ioas_id, va, len, iova)
    }

    pub fn unmap(&self, iova: u64, len: u64) -> Result<u64> {
        self.f.unmap(self.ioas_id, iova, len)
    }
}

impl Drop for IoasFixture {
    fn drop(&mut self) {
        if std::thread::panicking() {
            return;
        }
        self.f
            .set_temp_memory_limit(DEFAULT_MEMORY_LIMIT)
            .expect("SET_TEMP_MEMORY_LIMIT");
    }
}

// ----- the iommufd_mock_domain fixture -----

/// The variants of the kernel's `iommufd_mock_domain` fixture.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MockDomainVariant {
    pub mock_domains: usize,
    pub hugepages: bool,
    pub file: bool,
}

pub const ONE_DOMAIN: MockDomainVariant = MockDomainVariant {
    mock_domains: 1,
    hugepages: false,
    file: false,
};
pub const TWO_DOMAINS: MockDomainVariant = MockDomainVariant {
    mock_domains: 2,
    hugepages: false,
    file: false,
};
pub const ONE_DOMAIN_HUGEPAGE: MockDomainVariant = MockDomainVariant {
    mock_domains: 1,
    hugepages: true,
    file: false,
};
pub const TWO_DOMAINS_HUGEPAGE: MockDomainVariant = MockDomainVariant {
    mock_domains: 2,
    hugepages: true,
    file: false,
};
pub const ONE_DOMAIN_FILE: MockDomainVariant = MockDomainVariant {
    mock_domains: 1,
    hugepages: false,
    file: true,
};
pub const ONE_DOMAIN_FILE_HUGEPAGE: MockDomainVariant = MockDomainVariant {
    mock_domains: 1,
    hugepages: true,
    file: true,
};

/// The kernel's `iommufd_mock_domain` fixture.
#[derive(Debug)]
pub struct MockDomainFixture {
    pub f: Fixture,
    pub variant: MockDomainVariant,
    pub ioas_id: u32,
    pub hwpt_id: u32,
    pub hwpt_ids: [u32; 2],
    pub stdev_ids: [u32; 2],
    pub idev_ids: [u32; 2],
    pub mmap_buf_size: u64,
}

impl MockDomainFixture {
    pub fn new(variant: MockDomainVariant) -> MockDomainFixture {
        let f = Fixture::new();
        let ioas_id = f.ioas_alloc();
        let (mut hwpt_ids, mut stdev_ids, mut idev_ids) = ([0; 2], [0; 2], [0; 2]);
        for i in 0..variant.mock_domains {
            let ids = f.mock_domain(ioas_id).expect("MOCK_DOMAIN");
            (stdev_ids[i], hwpt_ids[i], idev_ids[i]) = (ids.stdev_id, ids.hwpt_id, ids.idev_id);
        }
        let mmap_buf_size = if variant.hugepages {
            HUGEPAGE_SIZE * 2
        } else {
            PAGE_SIZE * 8
        };
        MockDomainFixture {
            f,
            variant,
            ioas_id,
            hwpt_id: hwpt_ids[0],
            hwpt_ids,
            stdev_ids,
            idev_ids,
            mmap_buf_size,
        }
    }

    /// A new test buffer as the fixture's `mmap_flags` make it: shared anonymous
    /// memory, huge-page aligned for the hugepage variants.
    pub fn mmap_buf(&self) -> u64 {
        if self.variant.hugepages {
            self.f.mmap_aligned(self.mmap_buf_size)
        } else {
            self.f.mmap(self.mmap_buf_size)
        }
    }

    /// The selftest's `check_mock_iova`: the pages behind `ptr` are what the
    /// fixture's mock domains (one or two) map at `iova`.
    #[track_caller]
    pub fn check_mock_iova(&self, ptr: u64, iova: u64, len: u64) {
        self.f
            .check_map(self.hwpt_id, iova, len, ptr)
            .expect("MD_CHECK_MAP");
        if self.hwpt_ids[1] != 0 {
            self.f
                .check_map(self.hwpt_ids[1], iova, len, ptr)
                .expect("MD_CHECK_MAP (second domain)");
        }
    }
}
