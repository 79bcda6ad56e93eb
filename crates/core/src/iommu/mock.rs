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

use super::{pick_pgsize, Device, Domain, Driver, PagingFlags};
use crate::error::{Error, Result};
use crate::inject;
use crate::mem::PAGE_SIZE;
use crate::range::{IovaRange, RangeMap};
use softiommu_uapi::iommufd::IOMMU_HW_INFO_TYPE_DEFAULT;
use softiommu_uapi::test::{
    iommu_test_hw_info, IOMMU_HW_INFO_SELFTEST_REGVAL, IOMMU_HW_INFO_TYPE_SELFTEST,
    MOCK_APERTURE_LAST, MOCK_APERTURE_START, MOCK_PASID_WIDTH,
};
use softiommu_uapi::Errno;
use std::any::Any;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
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

    fn dirty_tracking_capable(&self, dev: &Device) -> bool {
        dev.flags & MOCK_FLAGS_DEVICE_NO_DIRTY == 0
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

/// A mock paging domain.
#[derive(Debug)]
pub struct MockDomain {
    pgsize_bitmap: u64,
    flags: PagingFlags,
    /// The mappings, by IOVA range.
    extents: Mutex<RangeMap<Extent>>,
    warnings: AtomicU64,
}

impl MockDomain {
    fn new(huge: bool, flags: PagingFlags) -> MockDomain {
        let pgsize_bitmap = MOCK_IO_PAGE_SIZE | if huge { MOCK_HUGE_PAGE_SIZE } else { 0 };
        MockDomain {
            pgsize_bitmap,
            flags,
            extents: Mutex::default(),
            warnings: AtomicU64::new(0),
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
                unmapped += r.intersect(&range).and_then(|r| r.len()).unwrap_or(0);
                continue;
            }
            // A huge IOPTE goes as a whole, as hardware unmaps it.
            unmapped += r.len().unwrap_or(u64::MAX);
        }
        unmapped
    }

    fn iova_to_phys(&self, iova: u64) -> Option<u64> {
        self.lookup(iova).map(|(r, e)| e.phys + (iova - r.start))
    }

    fn has_dirty_ops(&self) -> bool {
        self.flags.dirty_tracking
    }

    fn enforce_cache_coherency(&self) -> bool {
        true
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
        Device {
            name: "mock".into(),
            driver: MockDriver::new(),
            flags,
        }
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
}
