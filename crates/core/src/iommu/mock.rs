//! The kernel selftest's mock IOMMU.
//!
//! The mock exists so that the iommufd core can be tested without hardware, and
//! its observable behaviour is part of what the kernel's selftests check: an IO
//! page size of half a CPU page (so the core's sub-page alignment paths run), an
//! aperture of `[MOCK_APERTURE_START, MOCK_APERTURE_LAST]`, 1 MiB huge IOPTEs for
//! devices flagged `HUGE_IOVA`, and a domain that remembers every mapping so that
//! `MD_CHECK_MAP` can compare it with the pages behind a user pointer.
//!
//! The kernel's mock keeps one xarray entry per 2 KiB. This one keeps one entry
//! per `map_pages` call: an [`Extent`] of one page size, physically contiguous.
//! The first and last IO page of an extent are the kernel's `START`/`LAST` flags,
//! and `HUGE` is `pgsize > MOCK_IO_PAGE_SIZE`, so nothing observable is lost while a
//! 16 GiB mapping costs a handful of entries. An unmap that cuts a small-page
//! extent is what the kernel's mock warns about; it is counted in
//! [`MockDomain::warnings`] and the consistency checker fails on it.
//!
//! Dirty tracking: the kernel's mock keeps a DIRTY flag in each 2 KiB entry, set
//! only by the selftest's `IOMMU_TEST_OP_DIRTY`. Here the dirty IO pages are a
//! sorted set of IO page indexes ([`MockDomain::set_dirty`]), so clean memory
//! costs nothing; map and unmap drop the bits of their range. A walk reports
//! small pages one by one (coalesced into runs) and a huge IOPTE as its whole
//! 1 MiB when any IO page in it is dirty, as the kernel's mock does. Lock order:
//! `extents`, then `dirty`.
//!
//! Nested domains ([`MockNestedDomain`]): the kernel's mock keeps no stage-1
//! table, only a 4-entry "IOTLB" that nested allocation fills with the user's
//! `iotlb` value and `IOMMU_HWPT_INVALIDATE` zeroes entry by entry, so that the
//! selftest's `MD_CHECK_IOTLB` can see which requests arrived. Any mock device
//! can attach to one (it has no dirty tracking).
//!
//! vIOMMUs ([`MockViommu`], type `IOMMU_VIOMMU_TYPE_SELFTEST`): each mock device
//! has a small device cache of `MOCK_DEV_CACHE_NUM` entries, filled with
//! `IOMMU_TEST_DEV_CACHE_DEFAULT` ([`MockDevState`]). Invalidations sent to the
//! vIOMMU name the device by its virtual ID and zero entries, so that
//! `DEV_CHECK_CACHE` can see which arrived. A nested domain made by a vIOMMU
//! accepts only devices that have a virtual ID on it (ENOENT otherwise), as the
//! kernel's mock asks the core for the device's virtual ID at attach.

use super::dma::{DmaFence, Translation};
use super::{
    pick_pgsize, Device, Domain, Driver, DriverViommu, NestedDomain, PagingFlags, UserData,
    UserDataArray, ViommuCore,
};
use crate::error::{Error, Result};
use crate::inject;
use crate::mem::PAGE_SIZE;
use crate::range::{IovaRange, RangeMap};
use softiommu_uapi::iommufd::{IOMMU_HWPT_ALLOC_PASID, IOMMU_HW_INFO_TYPE_DEFAULT};
use softiommu_uapi::test::{
    iommu_hwpt_invalidate_selftest, iommu_hwpt_selftest, iommu_test_hw_info,
    iommu_viommu_invalidate_selftest, iommu_viommu_selftest, IOMMU_HWPT_DATA_SELFTEST,
    IOMMU_HWPT_INVALIDATE_DATA_SELFTEST, IOMMU_HW_INFO_SELFTEST_REGVAL,
    IOMMU_HW_INFO_TYPE_SELFTEST, IOMMU_TEST_DEV_CACHE_DEFAULT, IOMMU_TEST_INVALIDATE_FLAG_ALL,
    IOMMU_TEST_PASID_RESERVED, IOMMU_VIOMMU_INVALIDATE_DATA_SELFTEST, IOMMU_VIOMMU_TYPE_SELFTEST,
    MOCK_APERTURE_LAST, MOCK_APERTURE_START, MOCK_DEV_CACHE_ID_MAX, MOCK_DEV_CACHE_NUM,
    MOCK_NESTED_DOMAIN_IOTLB_ID_MAX, MOCK_NESTED_DOMAIN_IOTLB_NUM, MOCK_PASID_WIDTH,
};
use softiommu_uapi::Errno;
use std::any::Any;
use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use zerocopy::IntoBytes;

/// The mock's IO page size: half a CPU page.
pub const MOCK_IO_PAGE_SIZE: u64 = PAGE_SIZE / 2;
/// The mock's huge IOPTE size: 512 IO pages.
pub const MOCK_HUGE_PAGE_SIZE: u64 = 512 * MOCK_IO_PAGE_SIZE;

/// Mock device flag: domains with dirty tracking cannot be attached.
pub const MOCK_FLAGS_DEVICE_NO_DIRTY: u32 = 1 << 0;
/// Mock device flag: the device's domains may use huge IOPTEs.
pub const MOCK_FLAGS_DEVICE_HUGE_IOVA: u32 = 1 << 1;
/// Mock device flag: the device supports PASIDs.
pub const MOCK_FLAGS_DEVICE_PASID: u32 = 1 << 2;
/// Every mock device flag.
pub const MOCK_FLAGS_DEVICE_ALL: u32 =
    MOCK_FLAGS_DEVICE_NO_DIRTY | MOCK_FLAGS_DEVICE_HUGE_IOVA | MOCK_FLAGS_DEVICE_PASID;

/// The mock IOMMU driver.
#[derive(Debug, Default)]
pub struct MockDriver;

impl MockDriver {
    /// The driver.
    pub fn new() -> Arc<MockDriver> {
        Arc::new(MockDriver)
    }
}

impl Driver for MockDriver {
    fn domain_alloc_paging(&self, dev: &Device, flags: PagingFlags) -> Result<Arc<dyn Domain>> {
        if flags.dirty_tracking && dev.flags & MOCK_FLAGS_DEVICE_NO_DIRTY != 0 {
            return Err(Error::NotSupported("device cannot track dirty pages"));
        }
        inject::point("mock domain alloc")?;
        let huge = dev.flags & MOCK_FLAGS_DEVICE_HUGE_IOVA != 0;
        Ok(Arc::new(MockDomain::new(huge, flags)))
    }

    fn hw_info(&self, _dev: &Device, in_type: u32) -> Result<(u32, Vec<u8>)> {
        if in_type != IOMMU_HW_INFO_TYPE_DEFAULT && in_type != IOMMU_HW_INFO_TYPE_SELFTEST {
            return Err(Error::NotSupported("hw_info type"));
        }
        inject::point("mock hw_info")?;
        let info = iommu_test_hw_info {
            flags: 0,
            test_reg: IOMMU_HW_INFO_SELFTEST_REGVAL,
        };
        Ok((IOMMU_HW_INFO_TYPE_SELFTEST, info.as_bytes().to_vec()))
    }

    fn set_dev_pasid(&self, dev: &Device, pasid: u32, attach: bool) -> Result<()> {
        // The selftest's PASID IOMMU_TEST_PASID_RESERVED: every second change to
        // a domain fails, so that a failed replace can be tested.
        if pasid == IOMMU_TEST_PASID_RESERVED {
            let state = MockDevState::of(dev).ok_or(Error::Invalid("not a mock device"))?;
            // Blocking disarms; an attach arms, or fails when armed.
            let armed = state.pasid_fail.swap(attach, Ordering::Relaxed);
            if attach && armed {
                state.pasid_fail.store(false, Ordering::Relaxed);
                return Err(Error::NoMem("mock PASID replace failure"));
            }
        }
        Ok(())
    }

    fn dirty_tracking_capable(&self, dev: &Device) -> bool {
        dev.flags & MOCK_FLAGS_DEVICE_NO_DIRTY == 0
    }

    fn enforce_cache_coherency_capable(&self, _dev: &Device) -> bool {
        // As the kernel's mock, whose domains all enforce coherency.
        true
    }

    fn max_pasid_log2(&self, dev: &Device) -> u8 {
        if dev.flags & MOCK_FLAGS_DEVICE_PASID != 0 {
            MOCK_PASID_WIDTH as u8
        } else {
            0
        }
    }

    fn attach_check(&self, domain: &dyn Domain, dev: &Device) -> Result<()> {
        if domain.as_any().downcast_ref::<MockDomain>().is_none() {
            return Err(Error::Invalid("not a mock domain"));
        }
        if domain.has_dirty_ops() && dev.flags & MOCK_FLAGS_DEVICE_NO_DIRTY != 0 {
            return Err(Error::Invalid("device cannot track dirty pages"));
        }
        Ok(())
    }

    fn domain_alloc_nested(
        &self,
        _dev: &Device,
        parent: &Arc<dyn Domain>,
        flags: u32,
        data: &UserData<'_>,
    ) -> Result<Arc<dyn NestedDomain>> {
        if flags & !IOMMU_HWPT_ALLOC_PASID != 0 {
            return Err(Error::NotSupported("nested mock domain flags"));
        }
        if parent.as_any().downcast_ref::<MockDomain>().is_none() {
            return Err(Error::Invalid("parent is not a mock domain"));
        }
        nested_alloc(parent, flags, data, None)
    }

    fn attach_check_nested(&self, domain: &dyn NestedDomain, dev: &Device) -> Result<()> {
        let Some(nested) = domain.as_any().downcast_ref::<MockNestedDomain>() else {
            return Err(Error::Invalid("not a mock nested domain"));
        };
        // A vIOMMU's nested domain serves only devices with a virtual ID on it.
        if let Some(viommu) = &nested.viommu {
            let has_id = viommu.upgrade().and_then(|v| v.vdev_id(dev)).is_some();
            if !has_id {
                return Err(Error::Other {
                    what: "device has no virtual ID on the vIOMMU",
                    errno: Errno::ENOENT,
                });
            }
        }
        Ok(())
    }

    fn viommu_supported(&self, _dev: &Device, viommu_type: u32) -> bool {
        viommu_type == IOMMU_VIOMMU_TYPE_SELFTEST
    }

    fn viommu_alloc(
        &self,
        _dev: &Device,
        viommu_type: u32,
        parent: &Arc<dyn Domain>,
        data: Option<&UserData<'_>>,
        core: Weak<dyn ViommuCore>,
    ) -> Result<Arc<dyn DriverViommu>> {
        if viommu_type != IOMMU_VIOMMU_TYPE_SELFTEST {
            return Err(Error::NotSupported("mock vIOMMU type"));
        }
        if let Some(data) = data {
            // `out_data` ends the struct's original fields.
            let min_len = std::mem::offset_of!(iommu_viommu_selftest, out_data) + 4;
            let mut cfg: iommu_viommu_selftest =
                data.copy_struct(IOMMU_VIOMMU_TYPE_SELFTEST, min_len)?;
            // Loopback; the register page the kernel's mock offers for mmap
            // is not modelled, so its offset and length stay 0.
            cfg.out_data = cfg.in_data;
            data.write_struct(&cfg)?;
        }
        inject::point("mock viommu alloc")?;
        Ok(Arc::new(MockViommu {
            parent: parent.clone(),
            core,
        }))
    }
}

/// Makes a mock nested domain on `parent` from the user's `data`, made by
/// `viommu` if any.
fn nested_alloc(
    parent: &Arc<dyn Domain>,
    flags: u32,
    data: &UserData<'_>,
    viommu: Option<Weak<dyn ViommuCore>>,
) -> Result<Arc<dyn NestedDomain>> {
    if data.data_type != IOMMU_HWPT_DATA_SELFTEST {
        return Err(Error::NotSupported("nested mock domain data type"));
    }
    // `iotlb` was the struct's only field at first.
    let min_len = std::mem::offset_of!(iommu_hwpt_selftest, iotlb) + 4;
    let cfg: iommu_hwpt_selftest = data.copy_struct(IOMMU_HWPT_DATA_SELFTEST, min_len)?;
    inject::point("mock nested domain alloc")?;
    Ok(Arc::new(MockNestedDomain {
        iotlb: Mutex::new([cfg.iotlb; MOCK_NESTED_DOMAIN_IOTLB_NUM as usize]),
        flags,
        parent: parent.clone(),
        viommu,
    }))
}

/// The mock's per-device state: the device cache a vIOMMU invalidates, and
/// whether the next change at `IOMMU_TEST_PASID_RESERVED` fails.
#[derive(Debug)]
pub struct MockDevState {
    cache: Mutex<[u32; MOCK_DEV_CACHE_NUM as usize]>,
    pasid_fail: AtomicBool,
}

impl MockDevState {
    /// The state of `dev`, made with a full cache on first use.
    pub fn of(dev: &Device) -> Option<&MockDevState> {
        dev.driver_private(|| MockDevState {
            cache: Mutex::new([IOMMU_TEST_DEV_CACHE_DEFAULT; MOCK_DEV_CACHE_NUM as usize]),
            pasid_fail: AtomicBool::new(false),
        })
    }

    /// The cache entry `index`, if there is one.
    pub fn cache(&self, index: u32) -> Option<u32> {
        let cache = self.cache.lock().expect("mock device cache poisoned");
        cache.get(index as usize).copied()
    }
}

/// A mock vIOMMU (`IOMMU_VIOMMU_TYPE_SELFTEST`).
#[derive(Debug)]
pub struct MockViommu {
    /// Its stage 2.
    parent: Arc<dyn Domain>,
    /// The core's table of virtual IDs.
    core: Weak<dyn ViommuCore>,
}

impl DriverViommu for MockViommu {
    fn alloc_domain_nested(
        &self,
        flags: u32,
        data: &UserData<'_>,
    ) -> Result<Arc<dyn NestedDomain>> {
        if flags & !IOMMU_HWPT_ALLOC_PASID != 0 {
            return Err(Error::NotSupported("nested mock domain flags"));
        }
        nested_alloc(&self.parent, flags, data, Some(self.core.clone()))
    }

    fn cache_invalidate(&self, array: &mut UserDataArray<'_>) -> Result<()> {
        // An empty array of the right type checks that the type is known.
        if array.entry_num == 0 && array.data_type == IOMMU_VIOMMU_INVALIDATE_DATA_SELFTEST {
            return Ok(());
        }
        // The whole array is read before any request is acted on.
        let min_len = std::mem::size_of::<iommu_viommu_invalidate_selftest>();
        let reqs = (0..array.entry_num).map(|i| {
            array.copy_entry::<iommu_viommu_invalidate_selftest>(
                IOMMU_VIOMMU_INVALIDATE_DATA_SELFTEST,
                i,
                min_len,
            )
        });
        let reqs = match reqs.collect::<Result<Vec<_>>>() {
            Ok(r) => r,
            Err(e) => {
                array.entry_num = 0;
                return Err(e);
            }
        };
        let core = self.core.upgrade();
        let mut done = 0;
        let result = reqs.iter().try_for_each(|inv| {
            if inv.flags & !IOMMU_TEST_INVALIDATE_FLAG_ALL != 0 {
                return Err(Error::NotSupported("invalidation flags"));
            }
            if inv.cache_id > MOCK_DEV_CACHE_ID_MAX {
                return Err(Error::Invalid("device cache index"));
            }
            let dev = core
                .as_ref()
                .and_then(|c| c.find_dev(u64::from(inv.vdev_id)))
                .ok_or(Error::Invalid("no device with that virtual ID"))?;
            let state = MockDevState::of(&dev).ok_or(Error::Invalid("not a mock device"))?;
            let mut cache = state.cache.lock().expect("mock device cache poisoned");
            if inv.flags & IOMMU_TEST_INVALIDATE_FLAG_ALL != 0 {
                *cache = [0; MOCK_DEV_CACHE_NUM as usize];
            } else {
                cache[inv.cache_id as usize] = 0;
            }
            done += 1;
            Ok(())
        });
        array.entry_num = done;
        result
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// A mock nested domain: only its IOTLB is modelled.
#[derive(Debug)]
pub struct MockNestedDomain {
    /// The IOTLB entries, as allocation and invalidation left them.
    iotlb: Mutex<[u32; MOCK_NESTED_DOMAIN_IOTLB_NUM as usize]>,
    flags: u32,
    /// The paging parent: with no stage-1 table, DMA translates through it alone.
    parent: Arc<dyn Domain>,
    /// The vIOMMU that made it, if one did.
    viommu: Option<Weak<dyn ViommuCore>>,
}

impl MockNestedDomain {
    /// The IOTLB entry `index`, if there is one.
    pub fn iotlb(&self, index: u32) -> Option<u32> {
        let iotlb = self.iotlb.lock().expect("mock nested domain poisoned");
        iotlb.get(index as usize).copied()
    }

    /// The `IOMMU_HWPT_ALLOC_*` flags it was allocated with.
    pub fn flags(&self) -> u32 {
        self.flags
    }
}

impl NestedDomain for MockNestedDomain {
    fn cache_invalidate_user(&self, array: &mut UserDataArray<'_>) -> Result<()> {
        // `iotlb_id` is the last field of the original entry.
        let min_len = std::mem::size_of::<iommu_hwpt_invalidate_selftest>();
        array.for_each_entry(
            IOMMU_HWPT_INVALIDATE_DATA_SELFTEST,
            min_len,
            |inv: iommu_hwpt_invalidate_selftest| {
                if inv.flags & !IOMMU_TEST_INVALIDATE_FLAG_ALL != 0 {
                    return Err(Error::NotSupported("invalidation flags"));
                }
                if inv.iotlb_id > MOCK_NESTED_DOMAIN_IOTLB_ID_MAX {
                    return Err(Error::Invalid("IOTLB index"));
                }
                let mut iotlb = self.iotlb.lock().expect("mock nested domain poisoned");
                if inv.flags & IOMMU_TEST_INVALIDATE_FLAG_ALL != 0 {
                    *iotlb = [0; MOCK_NESTED_DOMAIN_IOTLB_NUM as usize];
                } else {
                    iotlb[inv.iotlb_id as usize] = 0;
                }
                Ok(())
            },
        )
    }

    fn translate(&self, iova: u64, write: bool) -> Option<Translation> {
        self.parent.translate(iova, write)
    }

    fn fence(&self) -> &DmaFence {
        self.parent.fence()
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// One `map_pages` call: IO pages of one size, physically contiguous.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Extent {
    /// Physical address of the first byte.
    pub phys: u64,
    /// `IOMMU_*` permissions.
    pub prot: u32,
    /// The IO page size this extent was mapped with.
    pub pgsize: u64,
}

/// Dirty-tracking state of a mock domain.
#[derive(Debug, Default)]
struct DirtyState {
    /// Tracking is on (the kernel mock's `MOCK_DIRTY_TRACK`).
    tracking: bool,
    /// IO page indexes (`iova / MOCK_IO_PAGE_SIZE`) marked dirty.
    pages: BTreeSet<u64>,
}

impl DirtyState {
    /// Drops the dirty bits of the IO pages in `range`.
    fn clear(&mut self, range: IovaRange) {
        let first = range.start / MOCK_IO_PAGE_SIZE;
        let last = range.last / MOCK_IO_PAGE_SIZE;
        let doomed: Vec<u64> = self.pages.range(first..=last).copied().collect();
        for i in doomed {
            self.pages.remove(&i);
        }
    }
}

/// A mock paging domain.
#[derive(Debug)]
pub struct MockDomain {
    pgsize_bitmap: u64,
    flags: PagingFlags,
    /// The mappings, by IOVA range.
    extents: Mutex<RangeMap<Extent>>,
    /// Dirty bits and the tracking switch; taken after `extents`.
    dirty: Mutex<DirtyState>,
    warnings: AtomicU64,
    fence: DmaFence,
}

impl MockDomain {
    fn new(huge: bool, flags: PagingFlags) -> MockDomain {
        let pgsize_bitmap = MOCK_IO_PAGE_SIZE | if huge { MOCK_HUGE_PAGE_SIZE } else { 0 };
        MockDomain {
            pgsize_bitmap,
            flags,
            extents: Mutex::default(),
            dirty: Mutex::default(),
            warnings: AtomicU64::new(0),
            fence: DmaFence::default(),
        }
    }

    /// The flags the domain was allocated with.
    pub fn flags(&self) -> PagingFlags {
        self.flags
    }

    /// How many times the core misused the domain (what the kernel's mock WARNs
    /// about: overlapping maps, unmaps that cut a mapping, destroying it non-empty).
    pub fn warnings(&self) -> u64 {
        self.warnings.load(Ordering::Relaxed)
    }

    fn warn(&self) {
        self.warnings.fetch_add(1, Ordering::Relaxed);
    }

    /// A copy of every extent, in IOVA order.
    pub fn extents(&self) -> Vec<(IovaRange, Extent)> {
        self.extents
            .lock()
            .expect("mock domain poisoned")
            .iter()
            .map(|(r, e)| (r, *e))
            .collect()
    }

    /// The extent holding `iova`.
    pub fn lookup(&self, iova: u64) -> Option<(IovaRange, Extent)> {
        self.extents
            .lock()
            .expect("mock domain poisoned")
            .find(iova)
            .map(|(r, e)| (r, *e))
    }

    /// Whether nothing is mapped.
    pub fn is_empty(&self) -> bool {
        self.extents
            .lock()
            .expect("mock domain poisoned")
            .is_empty()
    }

    /// Whether dirty tracking is on.
    pub fn dirty_tracking(&self) -> bool {
        self.dirty
            .lock()
            .expect("mock dirty state poisoned")
            .tracking
    }

    /// Marks the IO page `index` dirty if it is mapped (the selftest's
    /// `IOMMU_TEST_OP_DIRTY`, which stores the flag only in present entries);
    /// returns whether it was marked.
    pub fn set_dirty(&self, index: u64) -> bool {
        let extents = self.extents.lock().expect("mock domain poisoned");
        let Some(iova) = index.checked_mul(MOCK_IO_PAGE_SIZE) else {
            return false;
        };
        if extents.find(iova).is_none() {
            return false;
        }
        let mut dirty = self.dirty.lock().expect("mock dirty state poisoned");
        dirty.pages.insert(index);
        true
    }

    /// The dirty IO page indexes, in order.
    pub fn dirty_pages(&self) -> Vec<u64> {
        let dirty = self.dirty.lock().expect("mock dirty state poisoned");
        dirty.pages.iter().copied().collect()
    }
}

impl Domain for MockDomain {
    fn aperture(&self) -> IovaRange {
        IovaRange::new(MOCK_APERTURE_START, MOCK_APERTURE_LAST)
    }

    fn pgsize_bitmap(&self) -> u64 {
        self.pgsize_bitmap
    }

    fn map(&self, iova: u64, phys: u64, len: u64, prot: u32) -> Result<()> {
        // The kernel's mock has its own failure point here: a map can fail
        // half-way, and the core must undo what was mapped.
        inject::point_errno("mock map_pages", Errno::ENOENT)?;
        let range = IovaRange::from_len(iova, len).ok_or(Error::Overflow("mock map range"))?;
        if !iova.is_multiple_of(MOCK_IO_PAGE_SIZE)
            || !phys.is_multiple_of(MOCK_IO_PAGE_SIZE)
            || !len.is_multiple_of(MOCK_IO_PAGE_SIZE)
        {
            self.warn();
            return Err(Error::Invalid("mock map not IO page aligned"));
        }
        let mut extents = self.extents.lock().expect("mock domain poisoned");
        if !self.aperture().contains(&range) || extents.first_overlap(range).is_some() {
            self.warn();
            return Err(Error::Invalid(
                "mock map outside the aperture or over a mapping",
            ));
        }
        // A new mapping starts clean.
        self.dirty
            .lock()
            .expect("mock dirty state poisoned")
            .clear(range);
        let (mut iova, mut phys, mut left) = (iova, phys, len);
        while left > 0 {
            let (pgsize, count) = pick_pgsize(self.pgsize_bitmap, iova, phys, left);
            let bytes = pgsize * count;
            extents.insert(
                IovaRange::new(iova, iova + bytes - 1),
                Extent { phys, prot, pgsize },
            );
            iova += bytes;
            phys += bytes;
            left -= bytes;
        }
        Ok(())
    }

    fn unmap(&self, iova: u64, len: u64) -> u64 {
        let Some(range) = IovaRange::from_len(iova, len) else {
            self.warn();
            return 0;
        };
        let mut extents = self.extents.lock().expect("mock domain poisoned");
        let mut dirty = self.dirty.lock().expect("mock dirty state poisoned");
        let mut unmapped = 0;
        for start in extents.overlapping_starts(range) {
            let Some((r, e)) = extents.remove(start) else {
                continue;
            };
            if !range.contains(&r) && e.pgsize == MOCK_IO_PAGE_SIZE {
                // Cutting a small-page mapping: keep the parts outside the range
                // so that the damage is visible, and warn as the kernel does.
                self.warn();
                if r.start < range.start {
                    extents.insert(IovaRange::new(r.start, range.start - 1), e);
                }
                if r.last > range.last {
                    let skip = range.last + 1 - r.start;
                    extents.insert(
                        IovaRange::new(range.last + 1, r.last),
                        Extent {
                            phys: e.phys + skip,
                            ..e
                        },
                    );
                }
                if let Some(cut) = r.intersect(&range) {
                    dirty.clear(cut);
                    unmapped += cut.len().unwrap_or(u64::MAX);
                }
                continue;
            }
            // A huge IOPTE goes as a whole, as hardware unmaps it.
            dirty.clear(r);
            unmapped += r.len().unwrap_or(u64::MAX);
        }
        drop((extents, dirty));
        self.fence.drain();
        unmapped
    }

    fn iova_to_phys(&self, iova: u64) -> Option<u64> {
        self.lookup(iova).map(|(r, e)| e.phys + (iova - r.start))
    }

    fn translate(&self, iova: u64, write: bool) -> Option<Translation> {
        let extents = self.extents.lock().expect("mock domain poisoned");
        let (r, e) = extents.find(iova)?;
        let page = (iova - r.start) & !(e.pgsize - 1);
        let t = Translation {
            iova: r.start + page,
            phys: e.phys + page,
            size: e.pgsize,
            prot: e.prot,
        };
        if !t.allows(write) {
            return None;
        }
        if write {
            let mut dirty = self.dirty.lock().expect("mock dirty state poisoned");
            if dirty.tracking {
                dirty.pages.insert(t.iova / MOCK_IO_PAGE_SIZE);
            }
        }
        Some(t)
    }

    fn fence(&self) -> &DmaFence {
        &self.fence
    }

    fn has_dirty_ops(&self) -> bool {
        self.flags.dirty_tracking
    }

    fn enforce_cache_coherency(&self) -> bool {
        true
    }

    fn set_dirty_tracking(&self, enable: bool) -> Result<()> {
        if !self.has_dirty_ops() {
            return Err(Error::NotSupported("domain has no dirty tracking"));
        }
        self.dirty
            .lock()
            .expect("mock dirty state poisoned")
            .tracking = enable;
        Ok(())
    }

    fn read_and_clear_dirty(
        &self,
        iova: u64,
        length: u64,
        no_clear: bool,
        mut report: Option<&mut dyn FnMut(u64, u64)>,
    ) -> Result<()> {
        if !self.has_dirty_ops() {
            return Err(Error::NotSupported("domain has no dirty tracking"));
        }
        let extents = self.extents.lock().expect("mock domain poisoned");
        let mut dirty = self.dirty.lock().expect("mock dirty state poisoned");
        if !dirty.tracking && report.is_some() {
            return Err(Error::Invalid("dirty tracking is off"));
        }
        let Some(walk) = IovaRange::from_len(iova, length) else {
            return Ok(());
        };
        // The kernel's mock steps one IO page at a time past holes and small
        // pages and one huge page at a time from wherever it met a huge entry;
        // whole extents and set ranges stand for its single steps here.
        let mut cur = walk.start;
        while let Some((r, e)) = extents
            .find(cur)
            .or_else(|| extents.first_overlap(IovaRange::new(cur, walk.last)))
            .map(|(r, e)| (r, *e))
        {
            // A hole is passed in IO pages: land on the extent's first one.
            cur = cur.max(r.start);
            if e.pgsize > MOCK_IO_PAGE_SIZE {
                let head = cur & !(e.pgsize - 1);
                let first = head / MOCK_IO_PAGE_SIZE;
                let last = first + e.pgsize / MOCK_IO_PAGE_SIZE - 1;
                if dirty.pages.range(first..=last).next().is_some() {
                    if !no_clear {
                        dirty.clear(IovaRange::new(head, head + e.pgsize - 1));
                    }
                    if let Some(f) = report.as_deref_mut() {
                        f(cur, e.pgsize);
                    }
                }
                match cur.checked_add(e.pgsize) {
                    Some(next) if next <= walk.last => cur = next,
                    _ => break,
                }
                continue;
            }
            let sub = IovaRange::new(cur, r.last.min(walk.last));
            let first = sub.start / MOCK_IO_PAGE_SIZE;
            let last = sub.last / MOCK_IO_PAGE_SIZE;
            // Report runs of dirty IO pages.
            let mut run: Option<(u64, u64)> = None;
            for &i in dirty.pages.range(first..=last) {
                run = match run {
                    Some((s, l)) if l + 1 == i => Some((s, i)),
                    Some((s, l)) => {
                        if let Some(f) = report.as_deref_mut() {
                            f(s * MOCK_IO_PAGE_SIZE, (l - s + 1) * MOCK_IO_PAGE_SIZE);
                        }
                        Some((i, i))
                    }
                    None => Some((i, i)),
                };
            }
            if let (Some((s, l)), Some(f)) = (run, report.as_deref_mut()) {
                f(s * MOCK_IO_PAGE_SIZE, (l - s + 1) * MOCK_IO_PAGE_SIZE);
            }
            if !no_clear {
                dirty.clear(sub);
            }
            if sub.last >= walk.last {
                break;
            }
            cur = sub.last + 1;
        }
        Ok(())
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

impl Drop for MockDomain {
    fn drop(&mut self) {
        // Freeing a domain that still maps something is a core bug.
        debug_assert!(
            self.extents.get_mut().map(|e| e.is_empty()).unwrap_or(true),
            "mock domain freed non-empty"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dev(flags: u32) -> Device {
        Device::new("mock", MockDriver::new(), flags)
    }

    #[test]
    fn huge_domain_combines_aligned_runs() {
        let d = MockDriver
            .domain_alloc_paging(&dev(MOCK_FLAGS_DEVICE_HUGE_IOVA), PagingFlags::default())
            .unwrap();
        let base = MOCK_APERTURE_START;
        d.map(
            base,
            1 << 32,
            2 * MOCK_HUGE_PAGE_SIZE + 4096,
            super::super::IOMMU_READ,
        )
        .unwrap();
        let m = d.as_any().downcast_ref::<MockDomain>().unwrap();
        let ext = m.extents();
        assert_eq!(ext.len(), 2);
        assert_eq!(ext[0].1.pgsize, MOCK_HUGE_PAGE_SIZE);
        assert_eq!(ext[1].1.pgsize, MOCK_IO_PAGE_SIZE);
        assert_eq!(d.iova_to_phys(base + 5000), Some((1 << 32) + 5000));
        assert_eq!(
            d.unmap(base, 2 * MOCK_HUGE_PAGE_SIZE + 4096),
            2 * MOCK_HUGE_PAGE_SIZE + 4096
        );
        assert!(m.is_empty());
        assert_eq!(m.warnings(), 0);
    }

    #[test]
    fn map_checks_aperture_and_overlap() {
        let d = MockDriver
            .domain_alloc_paging(&dev(0), PagingFlags::default())
            .unwrap();
        assert!(d.map(0, 0, 4096, 0).is_err());
        d.map(MOCK_APERTURE_START, 1 << 32, 4096, 0).unwrap();
        assert!(d.map(MOCK_APERTURE_START + 2048, 1 << 32, 4096, 0).is_err());
        d.unmap(MOCK_APERTURE_START, 4096);
    }

    #[test]
    fn no_dirty_device_refuses_dirty_domains() {
        let flags = PagingFlags {
            dirty_tracking: true,
            ..Default::default()
        };
        let err = MockDriver
            .domain_alloc_paging(&dev(MOCK_FLAGS_DEVICE_NO_DIRTY), flags)
            .unwrap_err();
        assert_eq!(err.errno(), Errno::EOPNOTSUPP);
        let d = MockDriver.domain_alloc_paging(&dev(0), flags).unwrap();
        assert_eq!(
            MockDriver
                .attach_check(&*d, &dev(MOCK_FLAGS_DEVICE_NO_DIRTY))
                .unwrap_err()
                .errno(),
            Errno::EINVAL
        );
    }

    #[test]
    fn dirty_walk_reports_huge_iopte_whole_and_clears() {
        let flags = PagingFlags {
            dirty_tracking: true,
            ..Default::default()
        };
        let d = MockDriver
            .domain_alloc_paging(&dev(MOCK_FLAGS_DEVICE_HUGE_IOVA), flags)
            .unwrap();
        let m = d.as_any().downcast_ref::<MockDomain>().unwrap();
        let base = MOCK_APERTURE_START;
        // Two small pages, then one huge IOPTE.
        let small = MOCK_HUGE_PAGE_SIZE - 4096;
        d.map(
            base + 4096,
            (1 << 32) + 4096,
            small + MOCK_HUGE_PAGE_SIZE,
            0,
        )
        .unwrap();
        assert_eq!(m.extents().len(), 2);
        let walk = |no_clear| {
            let mut got = Vec::new();
            d.read_and_clear_dirty(
                base,
                2 * MOCK_HUGE_PAGE_SIZE,
                no_clear,
                Some(&mut |i, l| got.push((i, l))),
            )
            .unwrap();
            got
        };
        // Tracking off: only a clearing walk without a report is allowed.
        assert_eq!(
            d.read_and_clear_dirty(base, 4096, false, Some(&mut |_, _| {}))
                .unwrap_err()
                .errno(),
            Errno::EINVAL
        );
        d.read_and_clear_dirty(base, 4096, false, None).unwrap();
        d.set_dirty_tracking(true).unwrap();
        let io = MOCK_IO_PAGE_SIZE;
        let first = (base + 4096) / io;
        assert!(m.set_dirty(first) && m.set_dirty(first + 1) && m.set_dirty(first + 3));
        assert!(m.set_dirty((base + MOCK_HUGE_PAGE_SIZE) / io + 100));
        assert!(!m.set_dirty(base / io), "unmapped pages are not marked");
        let want = vec![
            (base + 4096, 2 * io),
            (base + 4096 + 3 * io, io),
            (base + MOCK_HUGE_PAGE_SIZE, MOCK_HUGE_PAGE_SIZE),
        ];
        assert_eq!(walk(true), want);
        assert_eq!(walk(false), want);
        assert_eq!(walk(false), vec![]);
        // Unmap drops the bits with the mapping.
        assert!(m.set_dirty(first));
        d.unmap(base + 4096, small + MOCK_HUGE_PAGE_SIZE);
        assert!(m.dirty_pages().is_empty());
        assert_eq!(m.warnings(), 0);
    }
}
