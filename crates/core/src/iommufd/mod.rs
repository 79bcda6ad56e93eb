//! iommufd: contexts, IOASes, pages, HWPTs, devices and accesses.
//!
//! The kernel splits iommufd into thin ioctl handlers and the structures they
//! drive; so does this module. [`context`] is the kernel's `main.c` (the context and
//! its object table), [`ioas`] the IOAS handlers, [`io_pagetable`] and [`pages`]
//! the structures, [`hw_pagetable`] and [`device`] the HWPTs, devices and accesses,
//! [`iova_bitmap`] the user's dirty bitmap, [`fault`] the fault queues,
//! [`viommu`] the vIOMMUs and vDEVICEs, [`selftest`] the test operations, [`vfio_compat`] VFIO's type1 container on
//! an iommufd, and [`check`] the consistency checker.

pub mod check;
pub mod context;
pub mod device;
pub mod fault;
pub mod hw_pagetable;
pub mod io_pagetable;
pub mod ioas;
pub mod iova_bitmap;
pub mod pages;
pub mod selftest;
pub mod vfio_compat;
pub mod viommu;

pub use context::{Iommufd, Object};
pub use device::{Access, AccessOps, HwInfo, IommufdDevice};
pub use fault::{Fault, FaultHandle};
pub use hw_pagetable::{Hwpt, HwptNested, HwptPaging};
pub use ioas::{Ioas, IovaRanges, MapFlags};
pub use selftest::{AccessHandle, MockDomainIds};
pub use vfio_compat::VfioIommuInfo;
pub use viommu::{Vdevice, Viommu};
