//! The kernel selftest's test operations (`IOMMU_TEST_CMD`), as typed calls.
//!
//! These are the hooks the kernel's `selftest.c` gives its test suite: mock devices
//! attached to IOASes and HWPTs, checks that look inside mock domains and at pin
//! counts, an emulated device's access that pins pages and reads and writes through
//! an IOAS, and reserved IOVA. Their semantics and errno are the kernel's, so that
//! the kernel's own selftest can run against softiommu; the Rust tests use them
//! too.

use super::context::{CtxInner, Iommufd, Object};
use super::device::{Access, AccessOps, IommufdDevice};
use super::hw_pagetable::Hwpt;
use super::hw_pagetable::HwptPaging;
use crate::error::{Error, Result};
use crate::iommu::dma::NO_PASID;
use crate::iommu::mock::{
    MockDevState, MockDomain, MockDriver, MockNestedDomain, MOCK_FLAGS_DEVICE_ALL,
    MOCK_IO_PAGE_SIZE,
};
use crate::iommu::Device;
use crate::mem::{FrameRun, PAGE_SIZE};
use softiommu_uapi::test::MOCK_DEV_CACHE_ID_MAX;
use softiommu_uapi::Errno;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

/// `ACCESS_PAGES` / `ACCESS_RW`: write access.
pub const MOCK_ACCESS_WRITE: u32 = 1 << 0;
/// `ACCESS_RW`: take the page-by-page path (same result).
pub const MOCK_ACCESS_RW_SLOW_PATH: u32 = 1 << 2;
/// `CREATE_ACCESS`: the access pins pages.
pub const MOCK_ACCESS_CREATE_NEEDS_PIN_PAGES: u32 = 1 << 0;
/// The largest `ACCESS_PAGES` / `ACCESS_RW` length; longer gives ENOMEM.
pub const MOCK_ACCESS_MAX_LENGTH: u64 = 16 * 1024 * 1024;

/// The default of `SET_TEMP_MEMORY_LIMIT`.
pub const DEFAULT_TEMP_MEMORY_LIMIT: u64 = 65536;
static TEMP_MEMORY_LIMIT: AtomicU64 = AtomicU64::new(DEFAULT_TEMP_MEMORY_LIMIT);

fn mock_driver() -> Arc<MockDriver> {
    static DRIVER: OnceLock<Arc<MockDriver>> = OnceLock::new();
    DRIVER.get_or_init(MockDriver::new).clone()
}

/// The mock domain of a paging HWPT; EINVAL for another driver's.
fn mock_domain(hwpt: &HwptPaging) -> Result<&MockDomain> {
    hwpt.domain
        .as_any()
        .downcast_ref::<MockDomain>()
        .ok_or(Error::Invalid("not a mock domain"))
}

/// A selftest mock device: the `stdev` object `MOCK_DOMAIN` creates.
#[derive(Debug)]
pub struct MockDev {
    /// The selftest object's ID.
    pub id: u32,
    /// The bound device.
    pub idev: Arc<IommufdDevice>,
}

impl MockDev {
    pub(crate) fn destroy(&self, ctx: &CtxInner) {
        ctx.device_unbind(&self.idev);
    }
}

/// What `MOCK_DOMAIN` returns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MockDomainIds {
    /// The selftest object: destroying it detaches and unbinds the device.
    pub stdev_id: u32,
    /// The HWPT the device was attached to.
    pub hwpt_id: u32,
    /// The bound device's ID.
    pub idev_id: u32,
}

#[derive(Debug)]
struct AccessItem {
    id: u32,
    iova: u64,
    length: u64,
}

/// The selftest's access owner: the pins it holds, by item.
#[derive(Debug)]
struct SelftestAccess {
    needs_pin: bool,
    items: Mutex<Vec<AccessItem>>,
    next_id: AtomicU32,
}

impl AccessOps for SelftestAccess {
    fn needs_pin_pages(&self) -> bool {
        self.needs_pin
    }

    fn unmap(&self, access: &Access, iova: u64, length: u64) {
        let last = iova.saturating_add(length.saturating_sub(1));
        let mut items = self.items.lock().expect("selftest access poisoned");
        items.retain(|item| {
            let item_last = item.iova + item.length - 1;
            if iova > item_last || last < item.iova {
                return true;
            }
            access.unpin_pages(item.iova, item.length);
            false
        });
    }
}

/// A selftest access (what `CREATE_ACCESS` returns as a file descriptor). It
/// keeps its context open; dropping it is closing the descriptor.
#[derive(Debug)]
pub struct AccessHandle {
    ctx: Iommufd,
    access: Arc<Access>,
    owner: Arc<SelftestAccess>,
}

impl Drop for AccessHandle {
    fn drop(&mut self) {
        self.ctx.access_destroy(&self.access);
    }
}

impl AccessHandle {
    /// The access object.
    pub fn access(&self) -> &Arc<Access> {
        &self.access
    }

    /// `ACCESS_REPLACE_IOAS`.
    pub fn replace_ioas(&self, ioas_id: u32) -> Result<()> {
        self.ctx.access_replace(&self.access, ioas_id)
    }

    /// `ACCESS_PAGES`: pins `[iova, iova + length)`, checks the pinned pages are the
    /// ones behind `uptr` (when non-zero; EBADE otherwise) and returns the item's ID.
    pub fn pages(&self, iova: u64, length: u64, uptr: u64, flags: u32) -> Result<u32> {
        if length > MOCK_ACCESS_MAX_LENGTH {
            return Err(Error::NoMem("access length"));
        }
        if flags & !MOCK_ACCESS_WRITE != 0 {
            return Err(Error::NotSupported("access pages flags"));
        }
        if !self.owner.needs_pin {
            return Err(Error::NotSupported("access does not pin pages"));
        }
        let mut items = self.owner.items.lock().expect("selftest access poisoned");
        let frames = self
            .access
            .pin_pages(iova, length, flags & MOCK_ACCESS_WRITE != 0)?;
        if uptr != 0 {
            let in_page = iova % PAGE_SIZE;
            if let Err(e) = self.check_pages(uptr.wrapping_sub(in_page), &frames) {
                self.access.unpin_pages(iova, length);
                return Err(e);
            }
        }
        let id = self.owner.next_id.fetch_add(1, Ordering::Relaxed);
        items.push(AccessItem { id, iova, length });
        Ok(id)
    }

    fn check_pages(&self, uptr: u64, frames: &[FrameRun]) -> Result<()> {
        let space = self.ctx.process().space.clone();
        let mut va = uptr;
        for run in frames {
            for i in 0..run.npages {
                let mut got = Vec::new();
                space.resolve(va & !(PAGE_SIZE - 1), 1, false, &mut got)?;
                if got[0].phys != run.phys + i * PAGE_SIZE {
                    return Err(Error::Check {
                        what: "pinned page is not the page at uptr",
                        errno: Errno::EBADE,
                    });
                }
                va = va.wrapping_add(PAGE_SIZE);
            }
        }
        Ok(())
    }

    /// `DESTROY_ACCESS_PAGES`: unpins the item `id`; ENOENT if there is none.
    pub fn destroy_pages(&self, id: u32) -> Result<()> {
        let mut items = self.owner.items.lock().expect("selftest access poisoned");
        let i = items
            .iter()
            .position(|it| it.id == id)
            .ok_or(Error::NoObject { id })?;
        let item = items.swap_remove(i);
        self.access.unpin_pages(item.iova, item.length);
        Ok(())
    }

    /// `ACCESS_RW`: copies `length` bytes between the caller's memory at `uptr` and
    /// the IOAS at `iova` (into the IOAS with [`MOCK_ACCESS_WRITE`]).
    pub fn rw(&self, iova: u64, uptr: u64, length: u64, flags: u32) -> Result<()> {
        if length > MOCK_ACCESS_MAX_LENGTH {
            return Err(Error::NoMem("access length"));
        }
        if flags & !(MOCK_ACCESS_WRITE | MOCK_ACCESS_RW_SLOW_PATH) != 0 {
            return Err(Error::NotSupported("access rw flags"));
        }
        let write = flags & MOCK_ACCESS_WRITE != 0;
        let space = self.ctx.process().space.clone();
        // The kernel's selftest allocates its bounce buffer here; that can fail.
        crate::inject::point("access rw buffer")?;
        let mut buf = vec![0u8; length as usize];
        if write {
            space.read(uptr, &mut buf)?;
        }
        if flags & MOCK_ACCESS_RW_SLOW_PATH != 0 {
            // Byte pieces no larger than the rest of their page, one call each.
            let mut at = 0usize;
            while at < buf.len() {
                let addr = iova.wrapping_add(at as u64);
                let n = ((PAGE_SIZE - addr % PAGE_SIZE) as usize).min(buf.len() - at);
                self.access.rw(addr, &mut buf[at..at + n], write)?;
                at += n;
            }
        } else {
            self.access.rw(iova, &mut buf, write)?;
        }
        if !write {
            space.write(uptr, &buf)?;
        }
        Ok(())
    }
}

impl Iommufd {
    /// `MOCK_DOMAIN`: a mock device bound to the context and attached to `pt_id`.
    pub fn test_mock_domain(&self, pt_id: u32) -> Result<MockDomainIds> {
        self.test_mock_domain_flags(pt_id, 0)
    }

    /// `MOCK_DOMAIN_FLAGS`: as `MOCK_DOMAIN`, for a device with `MOCK_FLAGS_DEVICE_*`.
    pub fn test_mock_domain_flags(&self, pt_id: u32, dev_flags: u32) -> Result<MockDomainIds> {
        static NEXT_MOCK: AtomicU32 = AtomicU32::new(0);
        if dev_flags & !MOCK_FLAGS_DEVICE_ALL != 0 {
            return Err(Error::Invalid("mock device flags"));
        }
        let stdev_id = self.table().reserve()?;
        let name = format!("iommufd_mock{}", NEXT_MOCK.fetch_add(1, Ordering::Relaxed));
        let dev = Arc::new(Device::new(name, mock_driver(), dev_flags));
        let bound = self.device_bind_owned(dev).and_then(|idev| {
            match self.device_attach(&idev, NO_PASID, pt_id) {
                Ok(hwpt_id) => Ok((idev, hwpt_id)),
                Err(e) => {
                    self.device_unbind(&idev);
                    Err(e)
                }
            }
        });
        let mut t = self.table();
        match bound {
            Ok((idev, hwpt_id)) => {
                let ids = MockDomainIds {
                    stdev_id,
                    hwpt_id,
                    idev_id: idev.id,
                };
                t.finalize(
                    stdev_id,
                    Object::Selftest(Arc::new(MockDev { id: stdev_id, idev })),
                );
                Ok(ids)
            }
            Err(e) => {
                t.abort(stdev_id);
                Err(e)
            }
        }
    }

    /// `MOCK_DOMAIN_REPLACE`: moves the mock device `stdev_id` to `pt_id`; returns
    /// the HWPT it is attached to now.
    pub fn test_mock_domain_replace(&self, stdev_id: u32, pt_id: u32) -> Result<u32> {
        let mock = self.get_mock_dev(stdev_id)?;
        self.device_replace(&mock.idev, NO_PASID, pt_id)
    }

    /// `PASID_ATTACH`: attaches `pasid` of the mock device `stdev_id` to
    /// `pt_id`; returns the HWPT it is attached to.
    pub fn test_pasid_attach(&self, stdev_id: u32, pasid: u32, pt_id: u32) -> Result<u32> {
        let mock = self.get_mock_dev(stdev_id)?;
        self.device_attach(&mock.idev, pasid, pt_id)
    }

    /// `PASID_REPLACE`: moves `pasid` of the mock device `stdev_id` to `pt_id`;
    /// returns the HWPT it is attached to now.
    pub fn test_pasid_replace(&self, stdev_id: u32, pasid: u32, pt_id: u32) -> Result<u32> {
        let mock = self.get_mock_dev(stdev_id)?;
        self.device_replace(&mock.idev, pasid, pt_id)
    }

    /// `PASID_DETACH`: detaches `pasid` of the mock device `stdev_id`, if it is
    /// attached.
    pub fn test_pasid_detach(&self, stdev_id: u32, pasid: u32) -> Result<()> {
        let mock = self.get_mock_dev(stdev_id)?;
        self.device_detach(&mock.idev, pasid);
        Ok(())
    }

    /// `PASID_CHECK_HWPT`: checks that `pasid` of the mock device `stdev_id` is
    /// attached to the HWPT `hwpt_id` (0: to nothing). EINVAL when it is not;
    /// ENOENT for no object `hwpt_id`, EINVAL for one that is not a HWPT.
    pub fn test_pasid_check_hwpt(&self, stdev_id: u32, pasid: u32, hwpt_id: u32) -> Result<()> {
        let mock = self.get_mock_dev(stdev_id)?;
        let cur = mock.idev.hwpt_at(pasid);
        if hwpt_id == 0 {
            return match cur {
                None => Ok(()),
                Some(_) => Err(Error::Invalid("PASID attached")),
            };
        }
        match self.table().get(hwpt_id) {
            Some(Object::HwptPaging(_) | Object::HwptNested(_)) => {}
            Some(_) => return Err(Error::Invalid("not a HWPT")),
            None => return Err(Error::NoObject { id: hwpt_id }),
        }
        match cur {
            Some(h) if h.id() == hwpt_id => Ok(()),
            _ => Err(Error::Invalid("PASID attached elsewhere")),
        }
    }

    /// `MD_CHECK_MAP`: checks that the mock HWPT `hwpt_id` maps
    /// `[iova, iova + length)` to the pages behind `uptr`. EINVAL on a mismatch.
    pub fn test_md_check_map(&self, hwpt_id: u32, iova: u64, length: u64, uptr: u64) -> Result<()> {
        if !iova.is_multiple_of(MOCK_IO_PAGE_SIZE)
            || !length.is_multiple_of(MOCK_IO_PAGE_SIZE)
            || !uptr.is_multiple_of(MOCK_IO_PAGE_SIZE)
            || uptr.checked_add(length).is_none()
        {
            return Err(Error::Invalid("check range not IO page aligned"));
        }
        let hwpt = self.get_hwpt_paging(hwpt_id)?;
        let mock = mock_domain(&hwpt)?;
        let space = self.process().space.clone();
        let mut at = 0;
        while at < length {
            let va = uptr + at;
            let mut run = Vec::new();
            space.resolve(va & !(PAGE_SIZE - 1), 1, false, &mut run)?;
            let expect = run[0].phys + va % PAGE_SIZE;
            let got = iova
                .checked_add(at)
                .and_then(|i| mock.lookup(i).map(|(r, e)| e.phys + (i - r.start)));
            if got != Some(expect) {
                return Err(Error::Check {
                    what: "mock domain does not map the page",
                    errno: Errno::EINVAL,
                });
            }
            at += MOCK_IO_PAGE_SIZE;
        }
        Ok(())
    }

    /// `MD_CHECK_IOTLB`: checks that entry `iotlb_id` of the IOTLB of the mock
    /// nested HWPT `hwpt_id` holds `iotlb`. ENOENT when `hwpt_id` is not a nested
    /// HWPT; EINVAL for another driver's domain, an index past the last entry
    /// or a mismatch.
    pub fn test_md_check_iotlb(&self, hwpt_id: u32, iotlb_id: u32, iotlb: u32) -> Result<()> {
        let hwpt = self.get_hwpt_nested(hwpt_id)?;
        let mock = hwpt
            .domain
            .as_any()
            .downcast_ref::<MockNestedDomain>()
            .ok_or(Error::Invalid("not a mock nested domain"))?;
        if mock.iotlb(iotlb_id) != Some(iotlb) {
            return Err(Error::Check {
                what: "mock nested IOTLB entry differs",
                errno: Errno::EINVAL,
            });
        }
        Ok(())
    }

    /// `DEV_CHECK_CACHE`: checks that entry `cache_id` of the device cache of
    /// the mock device bound as `dev_id` holds `cache`. ENOENT when `dev_id` is
    /// not a bound device; EINVAL for an index past the last entry, another
    /// driver's device or a mismatch.
    pub fn test_dev_check_cache(&self, dev_id: u32, cache_id: u32, cache: u32) -> Result<()> {
        let idev = self.get_device(dev_id)?;
        if cache_id > MOCK_DEV_CACHE_ID_MAX {
            return Err(Error::Invalid("device cache index"));
        }
        let is_mock = std::ptr::addr_eq(Arc::as_ptr(&idev.dev.driver), Arc::as_ptr(&mock_driver()));
        let state = is_mock
            .then(|| MockDevState::of(&idev.dev))
            .flatten()
            .ok_or(Error::Invalid("not a mock device"))?;
        if state.cache(cache_id) != Some(cache) {
            return Err(Error::Check {
                what: "mock device cache entry differs",
                errno: Errno::EINVAL,
            });
        }
        Ok(())
    }

    /// `MD_CHECK_REFS`: checks that every page behind `[uptr, uptr + length)` is
    /// pinned exactly `refs` times. EIO on a mismatch.
    pub fn test_md_check_refs(&self, uptr: u64, length: u64, refs: u32) -> Result<()> {
        if !length.is_multiple_of(PAGE_SIZE) || !uptr.is_multiple_of(PAGE_SIZE) {
            return Err(Error::Invalid("check range not page aligned"));
        }
        if length == 0 {
            return Ok(());
        }
        let space = self.process().space.clone();
        let mut runs = Vec::new();
        space.resolve(uptr, length / PAGE_SIZE, false, &mut runs)?;
        for run in runs {
            for i in 0..run.npages {
                if space.pins().count(run.phys + i * PAGE_SIZE) != refs {
                    return Err(Error::Check {
                        what: "pin count differs",
                        errno: Errno::EIO,
                    });
                }
            }
        }
        Ok(())
    }

    /// `TRIGGER_IOPF`: device `dev_id` (an iommufd device; ENOENT otherwise)
    /// reports a page request for `addr` at `pasid`. It goes to the fault queue
    /// of the HWPT attached at that PASID, else — the mock IOMMU keeps a PASID
    /// table with the user — of a nested HWPT the device itself is attached to.
    /// Without a queue nothing happens.
    pub fn test_trigger_iopf(
        &self,
        dev_id: u32,
        pasid: u32,
        grpid: u32,
        perm: u32,
        addr: u64,
    ) -> Result<()> {
        let idev = match self.table().get(dev_id) {
            Some(Object::Device(d)) => d.clone(),
            _ => return Err(Error::NoObject { id: dev_id }),
        };
        // A request with a PASID goes to what the PASID is attached to, else
        // (the mock keeps PASID tables in nested domains) to a nested HWPT of
        // the device itself.
        let hwpt = match (idev.hwpt_at(pasid), idev.hwpt()) {
            (Some(h), _) => h,
            (None, Some(h)) if matches!(h, Hwpt::Nested(_)) => h,
            _ => return Ok(()),
        };
        if let Some(fault) = hwpt.fault() {
            fault.report(dev_id, pasid, grpid, perm, addr);
        }
        Ok(())
    }

    /// `CREATE_ACCESS`: an access attached to the IOAS `ioas_id`, pinning pages
    /// when `flags` has [`MOCK_ACCESS_CREATE_NEEDS_PIN_PAGES`].
    pub fn test_create_access(&self, ioas_id: u32, flags: u32) -> Result<AccessHandle> {
        if flags & !MOCK_ACCESS_CREATE_NEEDS_PIN_PAGES != 0 {
            return Err(Error::NotSupported("create access flags"));
        }
        let owner = Arc::new(SelftestAccess {
            needs_pin: flags & MOCK_ACCESS_CREATE_NEEDS_PIN_PAGES != 0,
            items: Mutex::default(),
            next_id: AtomicU32::new(0),
        });
        let access = self.access_create(owner.clone())?;
        let handle = AccessHandle {
            ctx: self.clone(),
            access,
            owner,
        };
        self.access_attach(&handle.access, ioas_id)?;
        Ok(handle)
    }

    /// `DIRTY`: marks dirty, in the mock paging HWPT `hwpt_id` whose tracking is
    /// on, the IO page of each `page_size` piece `iova + i * page_size` whose bit
    /// `i` is set in the caller's bitmap at `uptr` and which is mapped; returns how
    /// many were marked. EINVAL for a zero or misaligned `page_size`/`length`/`iova`,
    /// a null `uptr`, or tracking off.
    pub fn test_dirty(
        &self,
        hwpt_id: u32,
        iova: u64,
        length: u64,
        page_size: u64,
        uptr: u64,
    ) -> Result<u64> {
        if page_size == 0
            || length == 0
            || !iova.is_multiple_of(page_size)
            || !length.is_multiple_of(page_size)
            || uptr == 0
        {
            return Err(Error::Invalid("dirty range"));
        }
        let hwpt = self.get_hwpt_paging(hwpt_id)?;
        let mock = mock_domain(&hwpt)?;
        if !mock.dirty_tracking() {
            return Err(Error::Invalid("dirty tracking is off"));
        }
        let max = length / page_size;
        let nbytes = usize::try_from(max.div_ceil(8)).map_err(|_| Error::NoMem("dirty bitmap"))?;
        crate::inject::point("test dirty bitmap")?;
        // The kernel allocates the copy and fails with ENOMEM; so do we,
        // instead of aborting on a length no memory can hold.
        let mut bits = Vec::new();
        bits.try_reserve_exact(nbytes)
            .map_err(|_| Error::NoMem("dirty bitmap"))?;
        bits.resize(nbytes, 0u8);
        self.process().space.read(uptr, &mut bits)?;
        let mut count = 0;
        for (byte_at, byte) in bits.iter().enumerate() {
            if *byte == 0 {
                continue;
            }
            for b in 0..8 {
                let i = byte_at as u64 * 8 + b;
                if i >= max || byte & (1 << b) == 0 {
                    continue;
                }
                // The kernel's test indexes its per-IO-page table by
                // `iova / page_size`: the IO page when page_size is 2 KiB.
                let cur = iova + i * page_size;
                if mock.set_dirty(cur / page_size) {
                    count += 1;
                }
            }
        }
        Ok(count)
    }

    /// `SET_TEMP_MEMORY_LIMIT`: the size limit of temporary batches (12 bytes at
    /// least; EINVAL below).
    pub fn test_set_temp_memory_limit(&self, limit: u32) -> Result<()> {
        if (limit as usize) < std::mem::size_of::<u64>() + std::mem::size_of::<u32>() {
            return Err(Error::Invalid("temporary memory limit too small"));
        }
        TEMP_MEMORY_LIMIT.store(limit as u64, Ordering::Relaxed);
        Ok(())
    }
}

/// The current `SET_TEMP_MEMORY_LIMIT` value.
pub fn temp_memory_limit() -> u64 {
    TEMP_MEMORY_LIMIT.load(Ordering::Relaxed)
}
