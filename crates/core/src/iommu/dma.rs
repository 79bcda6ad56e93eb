//! The DMA engine: how a device reaches memory through its IOMMU.
//!
//! A device's accesses carry a PASID (or none: [`NO_PASID`], the requester ID
//! alone). The IOMMU looks the PASID up in the device's attachment table — what
//! the hardware's context and PASID tables say, programmed by the iommufd layer on
//! attach, replace and detach — and translates the IOVA through the domain found
//! there: the domain's IOTLB if it has one, else a walk of its page table. The
//! bytes at the physical address are then copied by the machine's
//! [`PhysMemory`].
//!
//! A translation that fails is a DMA fault. When the attachment names a page
//! request handler (a HWPT with a fault queue), the fault becomes a page request:
//! the access waits for the answer and, on success, translates again; otherwise
//! the fault is recorded in the engine's fault log (the hardware's fault
//! recording registers) and the access fails.
//!
//! # Locks and the unmap guarantee
//!
//! The hot path takes two reader locks and allocates nothing: the device's
//! attachment table (written only by attach/replace/detach, which never wait on a
//! device) and the domain's [`DmaFence`], held from translation to the end of the
//! copy. A domain's unmap drains its fence after clearing the entries and the
//! IOTLB, so it returns only when no access that could have translated through the
//! old entries is still copying. Neither lock is held while waiting for a page
//! response.

use super::{Device, Domain, NestedDomain, IOMMU_READ, IOMMU_WRITE};
use crate::mem::{PhysMemory, PAGE_SIZE};
use softiommu_uapi::iommufd::{IOMMU_PGFAULT_PERM_READ, IOMMU_PGFAULT_PERM_WRITE};
use std::fmt::Debug;
use std::sync::{Arc, Mutex, RwLock, RwLockReadGuard};

/// The PASID of requests without one (the kernel's `IOMMU_NO_PASID`).
pub const NO_PASID: u32 = 0;

/// A translation: the page holding an IOVA and where it leads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Translation {
    /// The first IOVA of the page.
    pub iova: u64,
    /// The physical address the page maps to.
    pub phys: u64,
    /// The page size in bytes.
    pub size: u64,
    /// `IOMMU_READ` / `IOMMU_WRITE`.
    pub prot: u32,
}

impl Translation {
    /// Whether the page allows the access.
    pub fn allows(&self, write: bool) -> bool {
        self.prot & if write { IOMMU_WRITE } else { IOMMU_READ } != 0
    }
}

/// Why an access failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DmaFault {
    /// Nothing is attached at the PASID (blocked).
    Blocked {
        /// The PASID.
        pasid: u32,
        /// The IOVA.
        iova: u64,
    },
    /// The IOVA is not mapped, or not with the permission the access needs.
    Translation {
        /// The PASID.
        pasid: u32,
        /// The IOVA.
        iova: u64,
        /// Whether the access was a write.
        write: bool,
    },
    /// The translation leads to a physical address with no memory behind it.
    NoMemory {
        /// The physical address.
        phys: u64,
    },
}

/// Keeps an unmap from returning while accesses that translated through the old
/// entries are still copying.
#[derive(Debug, Default)]
pub struct DmaFence(RwLock<()>);

impl DmaFence {
    /// Held by an access from translation to the end of its copy.
    pub fn enter(&self) -> RwLockReadGuard<'_, ()> {
        self.0.read().unwrap_or_else(|e| e.into_inner())
    }

    /// Waits until every access that entered before now has left.
    pub fn drain(&self) {
        drop(self.0.write().unwrap_or_else(|e| e.into_inner()));
    }
}

/// The answer to a page request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PageResponse {
    /// The page is there now: translate again.
    Success,
    /// The request failed: the access fails.
    Invalid,
}

/// Takes page requests for the domains it is attached with (a HWPT's fault queue).
pub trait IopfHandler: Send + Sync + Debug {
    /// Reports a page request of `dev` at `pasid` for the page holding `addr`,
    /// with `IOMMU_PGFAULT_PERM_*` in `perm`, and waits for the answer.
    fn page_request(&self, dev: &Device, pasid: u32, addr: u64, perm: u32) -> PageResponse;
}

/// What a device's PASID is attached to.
#[derive(Clone, Debug)]
pub enum AttachedDomain {
    /// A paging domain.
    Paging(Arc<dyn Domain>),
    /// A nested domain.
    Nested(Arc<dyn NestedDomain>),
}

/// One entry of a device's attachment table.
#[derive(Clone, Debug)]
pub struct Attachment {
    /// The domain accesses at this PASID translate through.
    pub domain: AttachedDomain,
    /// Where translation faults go as page requests, if anywhere.
    pub iopf: Option<Arc<dyn IopfHandler>>,
}

impl Attachment {
    fn fence(&self) -> &DmaFence {
        match &self.domain {
            AttachedDomain::Paging(d) => d.fence(),
            AttachedDomain::Nested(d) => d.fence(),
        }
    }

    fn translate(&self, iova: u64, write: bool) -> Option<Translation> {
        match &self.domain {
            AttachedDomain::Paging(d) => d.translate(iova, write),
            AttachedDomain::Nested(d) => d.translate(iova, write),
        }
    }
}

/// Attempts at one page before a fault is final: a page response of success
/// that does not make the page translate is answered by faulting again.
const MAX_PAGE_REQUESTS: u32 = 4;

/// A device's DMA engine.
#[derive(Debug)]
pub struct DmaEngine {
    dev: Arc<Device>,
    mem: Arc<dyn PhysMemory>,
    faults: Mutex<Vec<DmaFault>>,
}

impl DmaEngine {
    /// The engine of `dev`, reaching the machine's memory `mem`.
    pub fn new(dev: Arc<Device>, mem: Arc<dyn PhysMemory>) -> DmaEngine {
        DmaEngine {
            dev,
            mem,
            faults: Mutex::default(),
        }
    }

    /// The device.
    pub fn device(&self) -> &Arc<Device> {
        &self.dev
    }

    /// Faults recorded so far (those no page request handler took), oldest first.
    pub fn faults(&self) -> Vec<DmaFault> {
        self.faults
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Reads `buf.len()` bytes at `iova` of `pasid` into `buf`.
    pub fn read(&self, pasid: u32, iova: u64, buf: &mut [u8]) -> Result<(), DmaFault> {
        let mem = &*self.mem;
        self.access(pasid, iova, buf.len(), false, &mut |phys, off, n| {
            mem.read(phys, &mut buf[off..off + n]).is_ok()
        })
    }

    /// Writes `buf` at `iova` of `pasid`.
    pub fn write(&self, pasid: u32, iova: u64, buf: &[u8]) -> Result<(), DmaFault> {
        let mem = &*self.mem;
        self.access(pasid, iova, buf.len(), true, &mut |phys, off, n| {
            mem.write(phys, &buf[off..off + n]).is_ok()
        })
    }

    /// Translates `[iova, iova + len)` page by page and calls `copy(phys, offset,
    /// n)` for each physically contiguous run of pages.
    fn access(
        &self,
        pasid: u32,
        iova: u64,
        len: usize,
        write: bool,
        copy: &mut dyn FnMut(u64, usize, usize) -> bool,
    ) -> Result<(), DmaFault> {
        let mut done = 0usize;
        let mut requests = 0;
        while done < len {
            let Some(attachment) = self.dev.attachment(pasid) else {
                let iova = iova.wrapping_add(done as u64);
                return Err(self.record(DmaFault::Blocked { pasid, iova }));
            };
            let fence = attachment.fence().enter();
            // Copy as far as translations succeed without leaving the fence,
            // one copy per physically contiguous run: (phys, offset, bytes).
            let mut run = (0u64, done, 0usize);
            let fault = loop {
                let at = iova.wrapping_add(done as u64);
                let piece = attachment.translate(at, write).map(|t| {
                    let n = (len - done).min((t.size - (at - t.iova)) as usize);
                    (t.phys + (at - t.iova), n)
                });
                if run.2 > 0 && piece.is_none_or(|(phys, _)| phys != run.0 + run.2 as u64) {
                    if !copy(run.0, run.1, run.2) {
                        break DmaFault::NoMemory { phys: run.0 };
                    }
                    run.2 = 0;
                }
                let Some((phys, n)) = piece else {
                    break DmaFault::Translation {
                        pasid,
                        iova: at,
                        write,
                    };
                };
                if run.2 == 0 {
                    run = (phys, done, 0);
                }
                run.2 += n;
                done += n;
                requests = 0;
                if done == len {
                    if !copy(run.0, run.1, run.2) {
                        break DmaFault::NoMemory { phys: run.0 };
                    }
                    return Ok(());
                }
            };
            drop(fence);
            let (DmaFault::Translation { iova: at, .. }, Some(iopf)) = (fault, &attachment.iopf)
            else {
                return Err(self.record(fault));
            };
            requests += 1;
            let perm = if write {
                IOMMU_PGFAULT_PERM_WRITE
            } else {
                IOMMU_PGFAULT_PERM_READ
            };
            if requests > MAX_PAGE_REQUESTS
                || iopf.page_request(&self.dev, pasid, at & !(PAGE_SIZE - 1), perm)
                    != PageResponse::Success
            {
                return Err(fault);
            }
        }
        Ok(())
    }

    fn record(&self, fault: DmaFault) -> DmaFault {
        self.faults
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(fault);
        fault
    }
}
