//! VFIO's type1 container on an iommufd (the kernel's `vfio_compat.c`).
//!
//! A program written for `/dev/vfio/vfio` can drive an iommufd instead: the
//! container ioctls (`VFIO_GET_API_VERSION`, `VFIO_CHECK_EXTENSION`,
//! `VFIO_SET_IOMMU`) and the type1 ones (`VFIO_IOMMU_MAP_DMA`, `_UNMAP_DMA`,
//! `_GET_INFO`) carry no IOAS ID, so they act on one IOAS of the context chosen
//! for them, the *compat IOAS*, which `IOMMU_VFIO_IOAS` gets, sets and clears.
//! Without one every type1 operation is ENODEV, as VFIO fails them on a
//! container without a group.
//!
//! What this module owns is only that choice: [`super::context::CtxInner`]'s
//! `vfio_ioas`, an ID rather than a reference, so that the compat IOAS stays an
//! ordinary object that `IOMMU_DESTROY` can remove (its teardown clears the
//! choice). Everything else is the IOAS's own operations with VFIO's rules:
//!
//! - mappings are always at the caller's IOVA;
//! - type1 (not v2) may unmap part of a mapping. It is emulated as the kernel
//!   does: `VFIO_SET_IOMMU` with type1 disables large pages on the IOAS, so no
//!   IOPTE spans more than a page, and an unmap first cuts the areas at both
//!   ends of its range ([`IoPagetable::cut_iova`]);
//! - unmapping a range that holds nothing succeeds with 0 bytes (iommufd's own
//!   unmap says ENOENT).
//!
//! Locks: the compat choice is read under its own mutex, released before the
//! IOAS is locked.
//!
//! [`IoPagetable::cut_iova`]: super::io_pagetable::IoPagetable::cut_iova

use super::ioas::{Ioas, MapFlags};
use super::Iommufd;
use crate::error::{Error, Result};
use crate::range::IovaRange;
use softiommu_uapi::vfio::{
    VFIO_TYPE1v2_IOMMU, VFIO_DMA_CC_IOMMU, VFIO_TYPE1_IOMMU, VFIO_UNMAP_ALL,
};
use softiommu_uapi::Errno;
use std::sync::{Arc, MutexGuard};

/// What `VFIO_IOMMU_GET_INFO` reports of the compat IOAS.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VfioIommuInfo {
    /// The page sizes (`iova_pgsizes`).
    pub iova_pgsizes: u64,
    /// The usable IOVA ranges: the holes between reserved ranges (the
    /// `VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE` capability). Allowed ranges do not
    /// narrow them.
    pub iova_ranges: Vec<IovaRange>,
}

fn no_compat_ioas() -> Error {
    Error::Other {
        what: "no VFIO compatibility IOAS",
        errno: Errno::ENODEV,
    }
}

impl Iommufd {
    fn vfio_ioas_slot(&self) -> MutexGuard<'_, Option<u32>> {
        self.inner.vfio_ioas.lock().expect("context lock poisoned")
    }

    /// The compat IOAS; ENODEV when there is none.
    fn compat_ioas(&self) -> Result<Arc<Ioas>> {
        let id = (*self.vfio_ioas_slot()).ok_or_else(no_compat_ioas)?;
        self.get_ioas(id).map_err(|_| no_compat_ioas())
    }

    /// `IOMMU_VFIO_IOAS_GET`: the compat IOAS's ID; ENODEV when there is none.
    pub fn vfio_ioas_get(&self) -> Result<u32> {
        Ok(self.compat_ioas()?.id)
    }

    /// `IOMMU_VFIO_IOAS_SET`: makes IOAS `ioas_id` the compat IOAS (ENOENT when
    /// it is not an IOAS).
    pub fn vfio_ioas_set(&self, ioas_id: u32) -> Result<()> {
        // Held across the lookup so that a concurrent destroy of the IOAS, which
        // clears the slot in its teardown, cannot slip in between.
        let mut slot = self.vfio_ioas_slot();
        self.get_ioas(ioas_id)?;
        *slot = Some(ioas_id);
        Ok(())
    }

    /// Makes sure there is a compat IOAS, allocating a new one when there is
    /// none (the kernel's `iommufd_vfio_compat_ioas_create`, which a VFIO
    /// group's `SET_CONTAINER` calls); returns its ID.
    pub fn vfio_compat_ioas_create(&self) -> Result<u32> {
        // Held across the allocation so that two callers agree on one IOAS.
        let mut slot = self.vfio_ioas_slot();
        if let Some(id) = *slot {
            if self.get_ioas(id).is_ok() {
                return Ok(id);
            }
        }
        let id = self.ioas_alloc()?;
        *slot = Some(id);
        Ok(id)
    }

    /// `IOMMU_VFIO_IOAS_CLEAR`: no compat IOAS any more.
    pub fn vfio_ioas_clear(&self) {
        *self.vfio_ioas_slot() = None;
    }

    // `VFIO_TYPE1v2_IOMMU` is the header's spelling.
    #[allow(non_upper_case_globals)]
    /// `VFIO_CHECK_EXTENSION`: 1 for type1, type1v2 and unmap-all; for
    /// `VFIO_DMA_CC_IOMMU`, whether every paging HWPT of the compat IOAS
    /// enforces cache coherency (ENODEV without a compat IOAS); 0 otherwise.
    pub fn vfio_check_extension(&self, extension: u64) -> Result<i32> {
        match extension {
            VFIO_TYPE1_IOMMU | VFIO_TYPE1v2_IOMMU | VFIO_UNMAP_ALL => Ok(1),
            VFIO_DMA_CC_IOMMU => {
                let ioas = self.compat_ioas()?;
                let hwpts = ioas.hwpts.lock().expect("IOAS HWPT list poisoned");
                let all_cc = hwpts
                    .iter()
                    .filter_map(|h| h.upgrade())
                    .all(|h| h.domain.enforce_cache_coherency());
                Ok(all_cc as i32)
            }
            _ => Ok(0),
        }
    }

    /// `VFIO_SET_IOMMU`: type1 or type1v2 (EINVAL otherwise) on the compat IOAS
    /// (ENODEV without one). Type1 disables large pages, so that any part of a
    /// mapping can be unmapped later; EINVAL if domains already hold mappings.
    pub fn vfio_set_iommu(&self, iommu_type: u64) -> Result<()> {
        if iommu_type != VFIO_TYPE1_IOMMU && iommu_type != VFIO_TYPE1v2_IOMMU {
            return Err(Error::Invalid("not a type1 IOMMU"));
        }
        let ioas = self.compat_ioas()?;
        if iommu_type == VFIO_TYPE1_IOMMU {
            ioas.iopt().disable_large_pages()?;
        }
        Ok(())
    }

    /// `VFIO_IOMMU_MAP_DMA`: maps `size` bytes of the caller's memory at `vaddr`
    /// to `iova` of the compat IOAS.
    pub fn vfio_map_dma(&self, vaddr: u64, iova: u64, size: u64, flags: MapFlags) -> Result<()> {
        let ioas = self.compat_ioas()?;
        self.ioas_map(ioas.id, vaddr, size, Some(iova), flags)?;
        Ok(())
    }

    /// `VFIO_IOMMU_UNMAP_DMA`: unmaps `[iova, iova + size)` of the compat IOAS;
    /// returns the bytes unmapped, 0 when nothing was mapped there. Under type1
    /// (large pages disabled) mappings are first cut at both ends of the range;
    /// otherwise a range that cuts a mapping is ENOENT. EINVAL for size 0,
    /// EOVERFLOW when the range passes the top of the address space.
    pub fn vfio_unmap_dma(&self, iova: u64, size: u64) -> Result<u64> {
        let ioas = self.compat_ioas()?;
        {
            let mut iopt = ioas.iopt();
            if iopt.large_pages_disabled() {
                // Wrapping as the kernel's unsigned long arithmetic does; the
                // size checks below reject what that would make meaningless.
                let last = iova.wrapping_add(size).wrapping_sub(1);
                if iova == 0 {
                    iopt.cut_iova(&[last])?;
                } else {
                    iopt.cut_iova(&[last, iova - 1])?;
                }
            }
        }
        if size == 0 {
            return Err(Error::Invalid("size"));
        }
        let range = IovaRange::from_len(iova, size).ok_or(Error::Overflow("IOVA + size"))?;
        ioas.unmap_range(range)
    }

    /// `VFIO_IOMMU_UNMAP_DMA` with `VFIO_DMA_UNMAP_FLAG_ALL`: unmaps everything
    /// in the compat IOAS; returns the bytes unmapped.
    pub fn vfio_unmap_all(&self) -> Result<u64> {
        self.compat_ioas()?.unmap_range(IovaRange::ALL)
    }

    /// `VFIO_IOMMU_GET_INFO`: the compat IOAS's page sizes and usable ranges.
    pub fn vfio_iommu_info(&self) -> Result<VfioIommuInfo> {
        let ioas = self.compat_ioas()?;
        let iopt = ioas.iopt();
        Ok(VfioIommuInfo {
            iova_pgsizes: iopt.vfio_pgsizes(),
            iova_ranges: iopt.reserved_holes(),
        })
    }
}
