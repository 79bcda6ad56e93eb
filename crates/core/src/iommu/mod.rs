//! The IOMMU layer: devices, domains and the drivers that make them.
//!
//! Shaped after the kernel's `iommu_ops` / `iommu_domain_ops`, cut to what the core
//! needs so far: a driver allocates paging domains for a device and decides whether
//! a device can be attached to a domain; a domain maps and unmaps physically
//! contiguous runs, reports its aperture and page sizes, and translates. The
//! iommufd layer above never looks inside a domain; the check operations of the
//! selftest do, through [`Domain::as_any`], as the kernel's `selftest.c` reaches into
//! its own mock domain.
//!
//! A driver may also make *nested* domains ([`NestedDomain`]): a stage-1 table
//! the user owns, translated through a paging parent the driver allocated with
//! [`PagingFlags::nest_parent`]. The core never walks them; it hands the driver
//! the user's configuration ([`UserData`]) and invalidation requests
//! ([`UserDataArray`]) as the kernel's `iommu_user_data{,_array}`, and the copy
//! helpers apply the kernel's `iommu_copy_struct_from_user{,_array}` rules.
//!
//! A driver may also give user space a *vIOMMU* ([`DriverViommu`]): its
//! per-VM view of one IOMMU instance on a nesting parent, which makes nested
//! domains and takes invalidations that name devices by their guest-visible
//! (virtual) IDs. The core owns the table of virtual IDs; the driver reaches it
//! through [`ViommuCore`], as the kernel's drivers call
//! `iommufd_viommu_find_dev` / `iommufd_viommu_get_vdev_id`.
//!
//! Drivers: [`mock`], the kernel selftest's mock IOMMU.

pub mod dma;
pub mod iotlb;
pub mod mock;
pub mod pt;
pub mod vtd;

use crate::error::{Error, Result};
use crate::mem::AddressSpace;
use crate::range::IovaRange;
use dma::{Attachment, DmaFence, Translation};
use std::any::Any;
use std::collections::BTreeMap;
use std::fmt::Debug;
use std::sync::{Arc, OnceLock, RwLock, Weak};
use zerocopy::{FromBytes, IntoBytes};

/// DMA may read through the mapping (`IOMMU_READ`).
pub const IOMMU_READ: u32 = 1 << 0;
/// DMA may write through the mapping (`IOMMU_WRITE`).
pub const IOMMU_WRITE: u32 = 1 << 1;
/// DMA through the mapping is cache coherent (`IOMMU_CACHE`).
pub const IOMMU_CACHE: u32 = 1 << 2;

/// Flags a paging domain can be allocated with (the HWPT_ALLOC flags that reach the
/// driver).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PagingFlags {
    /// The domain may be the parent of nested domains.
    pub nest_parent: bool,
    /// The domain tracks dirty pages.
    pub dirty_tracking: bool,
    /// The domain may be attached to a PASID.
    pub pasid: bool,
}

/// An IO page table: what a device's DMA is translated through.
pub trait Domain: Any + Send + Sync + Debug {
    /// The IOVA range the domain can translate.
    fn aperture(&self) -> IovaRange;

    /// The page sizes the domain can map, as a bitmap of sizes.
    fn pgsize_bitmap(&self) -> u64;

    /// Maps `len` bytes at `iova` to the physically contiguous `phys` with
    /// `IOMMU_*` permissions. On failure nothing new is mapped.
    fn map(&self, iova: u64, phys: u64, len: u64, prot: u32) -> Result<()>;

    /// Unmaps `[iova, iova + len)`; returns the bytes unmapped. Never fails.
    fn unmap(&self, iova: u64, len: u64) -> u64;

    /// The physical address `iova` translates to, if mapped.
    fn iova_to_phys(&self, iova: u64) -> Option<u64>;

    /// Translates `iova` for a DMA access, as the hardware would: through its
    /// IOTLB if it has one, else by a walk. A write that translates marks the
    /// page dirty when dirty tracking is on. `None` is a translation fault
    /// (unmapped, or mapped without the permission).
    fn translate(&self, iova: u64, write: bool) -> Option<Translation>;

    /// The fence DMA through the domain holds while copying; unmap drains it.
    fn fence(&self) -> &DmaFence;

    /// Whether the domain has dirty-tracking operations.
    fn has_dirty_ops(&self) -> bool;

    /// Whether the domain can make every DMA cache coherent.
    fn enforce_cache_coherency(&self) -> bool;

    /// Starts (`enable`) or stops dirty tracking (the kernel's
    /// `iommu_dirty_ops::set_dirty_tracking`). EOPNOTSUPP for a domain without
    /// dirty-tracking operations.
    fn set_dirty_tracking(&self, _enable: bool) -> Result<()> {
        Err(Error::NotSupported("domain has no dirty tracking"))
    }

    /// Walks `[iova, iova + length)` and calls `report(iova, length)` for each
    /// dirty piece, clearing the dirty state unless `no_clear` (the kernel's
    /// `read_and_clear_dirty`). Without `report` it only clears: what enabling
    /// tracking does to start from a clean snapshot, allowed with tracking off.
    /// EOPNOTSUPP for a domain without dirty-tracking operations.
    fn read_and_clear_dirty(
        &self,
        _iova: u64,
        _length: u64,
        _no_clear: bool,
        _report: Option<&mut dyn FnMut(u64, u64)>,
    ) -> Result<()> {
        Err(Error::NotSupported("domain has no dirty tracking"))
    }

    /// For drivers' and checks' own downcasts.
    fn as_any(&self) -> &dyn Any;
}

/// A nested (user-managed, stage-1) IO page table on a paging parent.
pub trait NestedDomain: Send + Sync + Debug {
    /// Invalidates the domain's caches as the user's requests in `array` say
    /// (the kernel's `cache_invalidate_user`). Sets `array.entry_num` to the
    /// number of requests handled, also when one fails.
    fn cache_invalidate_user(&self, array: &mut UserDataArray<'_>) -> Result<()>;

    /// Translates `iova` through both stages for a DMA access (see
    /// [`Domain::translate`]).
    fn translate(&self, iova: u64, write: bool) -> Option<Translation>;

    /// The fence DMA through the domain holds while copying: its parent's, so
    /// that unmapping from the parent waits for DMA through its children.
    fn fence(&self) -> &DmaFence;

    /// For drivers' and checks' own downcasts.
    fn as_any(&self) -> &dyn Any;
}

/// Driver-specific data in user memory (the kernel's `iommu_user_data`).
#[derive(Clone, Copy)]
pub struct UserData<'a> {
    /// The `IOMMU_HWPT_DATA_*` type the user says the data has.
    pub data_type: u32,
    /// Where the data is in the caller's memory.
    pub uptr: u64,
    /// Its length in bytes.
    pub len: u32,
    /// The caller's memory.
    pub mem: &'a dyn AddressSpace,
}

impl Debug for UserData<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UserData")
            .field("data_type", &self.data_type)
            .field("uptr", &self.uptr)
            .field("len", &self.len)
            .finish()
    }
}

impl UserData<'_> {
    /// Reads the data as `T` of type `data_type` (the kernel's
    /// `iommu_copy_struct_from_user`): EINVAL for another type, for a length
    /// below `min_len` (the end of `T`'s original last field) or above
    /// `size_of::<T>()`; a shorter length is zero-extended; EFAULT for memory
    /// that cannot be read.
    pub fn copy_struct<T: FromBytes + IntoBytes + Default>(
        &self,
        data_type: u32,
        min_len: usize,
    ) -> Result<T> {
        if self.data_type != data_type {
            return Err(Error::Invalid("user data type"));
        }
        let len = self.len as usize;
        if len < min_len || len > std::mem::size_of::<T>() {
            return Err(Error::Invalid("user data length"));
        }
        let mut out = T::default();
        self.mem.read(self.uptr, &mut out.as_mut_bytes()[..len])?;
        Ok(out)
    }
}

impl UserData<'_> {
    /// Writes `v` back over the first `len` bytes of the data (the kernel's
    /// `iommu_copy_struct_to_user`, after [`UserData::copy_struct`] checked
    /// the type and length). EFAULT for memory that cannot be written.
    pub fn write_struct<T: IntoBytes + zerocopy::Immutable>(&self, v: &T) -> Result<()> {
        let bytes = v.as_bytes();
        let len = (self.len as usize).min(bytes.len());
        self.mem.write(self.uptr, &bytes[..len])
    }
}

/// An array of driver-specific entries in user memory (the kernel's
/// `iommu_user_data_array`).
pub struct UserDataArray<'a> {
    /// The type of the entries.
    pub data_type: u32,
    /// Where the first entry is in the caller's memory.
    pub uptr: u64,
    /// The size of one entry as the user lays them out.
    pub entry_len: u32,
    /// In: the number of entries; out: the number handled.
    pub entry_num: u32,
    /// The caller's memory.
    pub mem: &'a dyn AddressSpace,
}

impl Debug for UserDataArray<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UserDataArray")
            .field("data_type", &self.data_type)
            .field("uptr", &self.uptr)
            .field("entry_len", &self.entry_len)
            .field("entry_num", &self.entry_num)
            .finish()
    }
}

impl UserDataArray<'_> {
    /// Reads entry `index` as `T` of type `data_type`, under the rules of
    /// [`UserData::copy_struct`] with `entry_len` as the length (the kernel's
    /// `iommu_copy_struct_from_user_array`). EINVAL past `entry_num`.
    pub fn copy_entry<T: FromBytes + IntoBytes + Default>(
        &self,
        data_type: u32,
        index: u32,
        min_len: usize,
    ) -> Result<T> {
        if index >= self.entry_num {
            return Err(Error::Invalid("entry index"));
        }
        let uptr = self
            .uptr
            .wrapping_add(u64::from(self.entry_len) * u64::from(index));
        UserData {
            data_type: self.data_type,
            uptr,
            len: self.entry_len,
            mem: self.mem,
        }
        .copy_struct(data_type, min_len)
    }

    /// Runs `handle` on each entry in order, read as `T` of `data_type` (see
    /// [`UserDataArray::copy_entry`]), stopping at the first error; sets
    /// `entry_num` to the number handled. EINVAL (none handled) when the array
    /// is of another type.
    pub fn for_each_entry<T: FromBytes + IntoBytes + Default>(
        &mut self,
        data_type: u32,
        min_len: usize,
        mut handle: impl FnMut(T) -> Result<()>,
    ) -> Result<()> {
        let mut handled = 0;
        let result = if self.data_type != data_type {
            Err(Error::Invalid("invalidation data type"))
        } else {
            (0..self.entry_num).try_for_each(|i| {
                handle(self.copy_entry(data_type, i, min_len)?)?;
                handled += 1;
                Ok(())
            })
        };
        self.entry_num = handled;
        result
    }
}

/// A device behind an IOMMU.
#[derive(Debug)]
pub struct Device {
    /// The device's name (`iommufd_mock0`, `0000:00:03.0`).
    pub name: String,
    /// The driver of the IOMMU the device sits behind.
    pub driver: Arc<dyn Driver>,
    /// Driver-private device flags (the mock's `MOCK_FLAGS_DEVICE_*`).
    pub flags: u32,
    /// What each PASID is attached to, as the IOMMU's context and PASID tables
    /// say ([`dma::NO_PASID`] for requests without one).
    attachments: RwLock<BTreeMap<u32, Attachment>>,
    /// Per-device state of the driver's own, made on first use.
    driver_private: OnceLock<Box<dyn Any + Send + Sync>>,
}

impl Device {
    /// A device named `name` behind `driver`, attached to nothing.
    pub fn new(name: impl Into<String>, driver: Arc<dyn Driver>, flags: u32) -> Device {
        Device {
            name: name.into(),
            driver,
            flags,
            attachments: RwLock::default(),
            driver_private: OnceLock::new(),
        }
    }

    /// The driver's per-device state of type `T`, made by `init` on first use;
    /// `None` if the device already holds state of another type.
    pub fn driver_private<T: Any + Send + Sync>(&self, init: impl FnOnce() -> T) -> Option<&T> {
        self.driver_private
            .get_or_init(|| Box::new(init()))
            .downcast_ref()
    }

    /// Whether `self` and `other` sit behind the same IOMMU instance.
    pub fn same_iommu(&self, other: &Device) -> bool {
        std::ptr::addr_eq(Arc::as_ptr(&self.driver), Arc::as_ptr(&other.driver))
    }

    /// What `pasid` is attached to.
    pub fn attachment(&self, pasid: u32) -> Option<Attachment> {
        let table = self.attachments.read().unwrap_or_else(|e| e.into_inner());
        table.get(&pasid).cloned()
    }

    /// Points `pasid` at `attachment` (`None`: blocks it). Accesses already past
    /// translation finish on the old domain.
    pub fn set_attachment(&self, pasid: u32, attachment: Option<Attachment>) {
        let mut table = self.attachments.write().unwrap_or_else(|e| e.into_inner());
        match attachment {
            Some(a) => table.insert(pasid, a),
            None => table.remove(&pasid),
        };
    }

    /// The PASIDs attached to something, in order ([`dma::NO_PASID`] included).
    pub fn attached_pasids(&self) -> Vec<u32> {
        let table = self.attachments.read().unwrap_or_else(|e| e.into_inner());
        table.keys().copied().collect()
    }

    /// Blocks every PASID at once, as the IOMMU core does when a group goes
    /// back to its default domain and whatever user space attached goes away.
    pub fn clear_attachments(&self) {
        let mut table = self.attachments.write().unwrap_or_else(|e| e.into_inner());
        table.clear();
    }
}

/// An IOMMU driver.
pub trait Driver: Send + Sync + Debug {
    /// Allocates a paging domain for `dev`.
    fn domain_alloc_paging(&self, dev: &Device, flags: PagingFlags) -> Result<Arc<dyn Domain>>;

    /// Checks that `dev` can be attached to `domain`; EINVAL when it cannot (so a
    /// caller can try another domain).
    fn attach_check(&self, domain: &dyn Domain, dev: &Device) -> Result<()>;

    /// Allocates a nested domain for `dev` on `parent`, a paging domain of this
    /// driver allocated as a nesting parent, configured by the user's `data`.
    /// `flags` are the `IOMMU_HWPT_ALLOC_*` flags that reach the driver.
    /// EOPNOTSUPP when the driver cannot nest (the default).
    fn domain_alloc_nested(
        &self,
        _dev: &Device,
        _parent: &Arc<dyn Domain>,
        _flags: u32,
        _data: &UserData<'_>,
    ) -> Result<Arc<dyn NestedDomain>> {
        Err(Error::NotSupported("driver cannot nest domains"))
    }

    /// Checks that `dev` can be attached to the nested `domain`; EINVAL when it
    /// cannot (the default: no nested domain is this driver's).
    fn attach_check_nested(&self, _domain: &dyn NestedDomain, _dev: &Device) -> Result<()> {
        Err(Error::Invalid("not this driver's nested domain"))
    }

    /// The driver's hardware information for `dev` in the format `in_type`
    /// (`IOMMU_HW_INFO_TYPE_DEFAULT`: the driver's own): its type and bytes.
    /// EOPNOTSUPP for a type the driver does not speak.
    fn hw_info(&self, dev: &Device, in_type: u32) -> Result<(u32, Vec<u8>)>;

    /// Points `pasid` of `dev` at a new domain (`attach`) or blocks it (the
    /// kernel's `set_dev_pasid`, with the blocked domain for `!attach`). A
    /// failed attach leaves the PASID as it was; blocking never fails.
    fn set_dev_pasid(&self, _dev: &Device, _pasid: u32, _attach: bool) -> Result<()> {
        Ok(())
    }

    /// Whether the IOMMU can track dirty pages for `dev`.
    fn dirty_tracking_capable(&self, dev: &Device) -> bool;

    /// log2 of the number of PASIDs `dev` supports; 0 for none.
    fn max_pasid_log2(&self, dev: &Device) -> u8;

    /// Whether the IOMMU can force every DMA of `dev` to snoop the CPU caches,
    /// whatever the device asks for (the kernel's
    /// `IOMMU_CAP_ENFORCE_CACHE_COHERENCY`). False by default, as for a kernel
    /// driver that does not report the capability.
    fn enforce_cache_coherency_capable(&self, _dev: &Device) -> bool {
        false
    }

    /// Whether the driver models vIOMMUs of `viommu_type` for `dev` (the
    /// kernel's `get_viommu_size` being non-zero). None by default.
    fn viommu_supported(&self, _dev: &Device, _viommu_type: u32) -> bool {
        false
    }

    /// Makes a vIOMMU of `viommu_type` for the IOMMU behind `dev`, with `parent`
    /// (a nesting parent of this driver) as its stage 2, configured by the
    /// user's `data` if there is any (the kernel's `viommu_init`). `core` is the
    /// core's side of it. EOPNOTSUPP for a type the driver does not model (the
    /// default: none).
    fn viommu_alloc(
        &self,
        _dev: &Device,
        _viommu_type: u32,
        _parent: &Arc<dyn Domain>,
        _data: Option<&UserData<'_>>,
        _core: Weak<dyn ViommuCore>,
    ) -> Result<Arc<dyn DriverViommu>> {
        Err(Error::NotSupported("driver has no vIOMMU of this type"))
    }
}

/// The core's side of a vIOMMU, for its driver: the table of virtual device IDs.
pub trait ViommuCore: Send + Sync + Debug {
    /// The device whose virtual ID on the vIOMMU is `virt_id`.
    fn find_dev(&self, virt_id: u64) -> Option<Arc<Device>>;

    /// The virtual ID of `dev` on the vIOMMU, if it has one.
    fn vdev_id(&self, dev: &Device) -> Option<u64>;
}

/// A driver's vIOMMU (the kernel's `iommufd_viommu_ops`).
pub trait DriverViommu: Send + Sync + Debug {
    /// Makes a nested domain on the vIOMMU's stage 2 from the user's `data`;
    /// `flags` are the `IOMMU_HWPT_ALLOC_*` flags that reach the driver.
    /// EOPNOTSUPP when the vIOMMU cannot (the default).
    fn alloc_domain_nested(
        &self,
        _flags: u32,
        _data: &UserData<'_>,
    ) -> Result<Arc<dyn NestedDomain>> {
        Err(Error::NotSupported("vIOMMU cannot make nested domains"))
    }

    /// Invalidates caches as the user's requests in `array` say; sets
    /// `array.entry_num` to the number handled, also on failure. EOPNOTSUPP
    /// when the vIOMMU takes no invalidations (the default).
    fn cache_invalidate(&self, array: &mut UserDataArray<'_>) -> Result<()> {
        array.entry_num = 0;
        Err(Error::NotSupported("vIOMMU takes no invalidations"))
    }

    /// For drivers' and checks' own downcasts.
    fn as_any(&self) -> &dyn Any;
}

/// The page size and count for the next piece of a map of `size` bytes at `iova`
/// to `phys` in a domain with `pgsizes`: the largest size both addresses are
/// aligned to, but no more of them than reaches the next point where a larger size
/// could take over (the kernel's `iommu_pgsize` choice).
pub fn pick_pgsize(pgsizes: u64, iova: u64, phys: u64, size: u64) -> (u64, u64) {
    debug_assert!(size > 0);
    let merged = iova | phys;
    let mut fits = pgsizes & (u64::MAX >> size.leading_zeros());
    if merged != 0 {
        fits &= u64::MAX >> (63 - merged.trailing_zeros());
    }
    debug_assert!(fits != 0, "no page size fits");
    let idx = 63 - fits.leading_zeros();
    let pgsize = 1u64 << idx;
    let mut span = size;
    let bigger = pgsizes & !(u64::MAX >> (63 - idx));
    if bigger != 0 {
        let next = 1u64 << bigger.trailing_zeros();
        if (iova ^ phys) & (next - 1) == 0 {
            let to_boundary = next - (merged & (next - 1));
            if to_boundary.checked_add(next).is_some_and(|n| n <= size) {
                span = to_boundary;
            }
        }
    }
    (pgsize, span >> idx)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pgsize_prefers_large_when_aligned() {
        let sizes = 2048 | (1 << 20);
        // Aligned and big enough: 1 MiB pages.
        assert_eq!(pick_pgsize(sizes, 1 << 20, 1 << 30, 3 << 20), (1 << 20, 3));
        // Small pages up to the next 1 MiB boundary, then large ones can follow.
        assert_eq!(
            pick_pgsize(sizes, (1 << 20) - 4096, (1 << 30) - 4096, 3 << 20),
            (2048, 2)
        );
        // Differently offset addresses never use large pages.
        assert_eq!(
            pick_pgsize(sizes, 1 << 20, (1 << 30) + 4096, 3 << 20),
            (2048, (3 << 20) / 2048)
        );
        // Too short for a large page.
        assert_eq!(pick_pgsize(sizes, 1 << 20, 1 << 30, 8192), (2048, 4));
    }
}
