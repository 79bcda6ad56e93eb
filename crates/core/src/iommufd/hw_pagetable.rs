//! Hardware page tables (the kernel's `hw_pagetable.c`).
//!
//! A paging HWPT wraps a driver's domain that is loaded from an IOAS: every area of
//! the IOAS is mapped in it while it lives. It is made either explicitly
//! (`IOMMU_HWPT_ALLOC`, a later issue) or automatically when a device is attached to
//! an IOAS and no existing automatic HWPT of that IOAS is compatible with the
//! device. An automatic HWPT goes away with its last device.
//!
//! Users: a HWPT is a user of its IOAS for its whole life; each attached device is
//! a user of the HWPT.

use super::context::{CtxInner, Iommufd, Object};
use super::ioas::Ioas;
use crate::error::Result;
use crate::iommu::{Device, Domain, PagingFlags};
use std::sync::Arc;

/// A paging hardware page table.
#[derive(Debug)]
pub struct HwptPaging {
    /// The object ID.
    pub id: u32,
    /// The IOAS the domain is loaded from.
    pub ioas: Arc<Ioas>,
    /// The driver's domain.
    pub domain: Arc<dyn Domain>,
    /// Made automatically for a device attach; destroyed with its last device.
    pub auto_domain: bool,
    /// The flags it was allocated with.
    pub flags: PagingFlags,
}

impl HwptPaging {
    pub(crate) fn destroy(&self, ctx: &CtxInner) {
        // The HWPT list before the page table, as attach takes them.
        let mut list = self.ioas.hwpts.lock().expect("IOAS HWPT list poisoned");
        list.retain(|h| h.upgrade().is_some_and(|h| h.id != self.id));
        self.ioas.iopt().remove_domain(&self.domain);
        drop(list);
        ctx.table().remove_user(self.ioas.id);
    }
}

impl Iommufd {
    /// Allocates a paging HWPT on `ioas` for `dev`, loads it and publishes it,
    /// with `dev` counted as attached for an automatic domain. The caller, holding
    /// the IOAS's HWPT list, adds it there. On failure nothing is left.
    pub(crate) fn hwpt_paging_alloc(
        &self,
        ioas: &Arc<Ioas>,
        dev: &Device,
        flags: PagingFlags,
        auto_domain: bool,
    ) -> Result<Arc<HwptPaging>> {
        let id = self.table().reserve()?;
        let result = (|| {
            let domain = dev.driver.domain_alloc_paging(dev, flags)?;
            if auto_domain {
                dev.driver.attach_check(&*domain, dev)?;
            }
            ioas.iopt().add_domain(&domain)?;
            Ok(Arc::new(HwptPaging {
                id,
                ioas: ioas.clone(),
                domain,
                auto_domain,
                flags,
            }))
        })();
        let mut t = self.table();
        match result {
            Ok(hwpt) => {
                t.add_user(ioas.id);
                if auto_domain {
                    t.add_user(id);
                }
                t.finalize(id, Object::HwptPaging(hwpt.clone()));
                Ok(hwpt)
            }
            Err(e) => {
                t.abort(id);
                Err(e)
            }
        }
    }
}

impl CtxInner {
    /// Drops a device's use of `hwpt`; an automatic HWPT goes with its last device.
    pub(crate) fn hwpt_put(&self, hwpt: &Arc<HwptPaging>) {
        let removed = {
            let mut t = self.table();
            t.remove_user(hwpt.id);
            if hwpt.auto_domain && t.users(hwpt.id) == 0 {
                t.remove(hwpt.id).ok()
            } else {
                None
            }
        };
        if let Some(obj) = removed {
            self.teardown(obj);
        }
    }
}
