//! softiommu: the Linux device-assignment stack around `/dev/iommu`, in user space.
//!
//! The layers, top down (each only calls the ones below it):
//! - [`vfio`]: VFIO device files over the running host's functions bound to
//!   `vfio-pci`: bind to an iommufd, attach, regions, interrupts, reset.
//! - [`kvm`]: KVM's VFIO pseudo-device: which VFIO files a VM was given, and
//!   whether their DMA may be non-coherent.
//! - [`iommufd`]: contexts, IO address spaces, pinned pages, HWPTs, devices,
//!   accesses and the selftest's test operations — the kernel's
//!   `drivers/iommu/iommufd/`, as a typed API.
//! - [`iommu`]: the driver trait, domains, and the hardware models (the selftest's
//!   mock IOMMU so far).
//! - [`mem`]: address spaces, files, frames, pins and locked-memory accounting,
//!   for the calling process and for simulated memory.
//! - [`devices`]: emulated PCI devices that do DMA through their IOMMU.
//!
//! - [`abi`]: the uAPI boundary — ioctls on virtual files decoded with the kernel's
//!   extensible-struct rules and answered through the typed API.
//!
//! Underneath: [`range`] (inclusive ranges and interval maps), [`inject`] (fault
//! injection at every fallible step) and [`error`].
//!
//! Lock order, outermost first: an iommufd object table (held only briefly) → an
//! access's state → an IOAS's HWPT list (attach) → an IOAS's page table → a
//! `Pages` → a pin table or a domain's own lock. No lock is held while an access's
//! unmap callback runs. The running host's state ([`machine::host`]) is a
//! separate slow-path lock, taken only before a device's attachment table and
//! never while an iommufd lock is held or taken.
#![deny(unsafe_code)]
#![warn(missing_docs)]

pub mod abi;
pub mod devices;
pub mod error;
pub mod inject;
pub mod iommu;
pub mod iommufd;
pub mod kvm;
pub mod machine;
pub mod mem;
pub mod range;
pub mod vfio;

pub use error::{Error, Result};
pub use softiommu_uapi as uapi;
