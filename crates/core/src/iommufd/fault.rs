//! Fault queues (the kernel's `fault.c`, `eventq.c` in later kernels).
//!
//! A [`Fault`] is the object `IOMMU_FAULT_QUEUE_ALLOC` creates, together with a
//! file ([`FaultHandle`]) user space reads I/O page faults from and writes
//! responses to. A HWPT allocated with `IOMMU_HWPT_FAULT_ID_VALID` names one; a
//! page request from a device attached to such a HWPT is queued on it.
//!
//! Each request moves through two places:
//! - `deliver`: queued, not yet read. The file is readable (POLLIN) exactly while
//!   this is not empty.
//! - `response`: read, awaiting the user's answer, keyed by the cookie handed out
//!   at read time (the lowest free cookie from 1, as the kernel's allocating
//!   xarray does).
//!
//! A request leaves by the user's response, or is answered with failure
//! (`IOMMUFD_PAGE_RESP_INVALID`) when its device leaves the HWPT (detach or
//! replace) or when the queue is destroyed. There is no real device to answer,
//! so answers are recorded in [`Fault::answered`] for tests to look at.
//!
//! Users: the file holds one user of the object while it is open, and every HWPT
//! naming the queue holds one, so `IOMMU_DESTROY` of the queue is EBUSY while
//! either exists. The file keeps its context open, as the kernel's does.
//!
//! Lock: `state` guards both places and the readiness callback; it is a leaf,
//! taken under no other lock of ours, and nothing is locked under it. The
//! readiness callback runs under it, so it must not call back into the core.

use super::context::{CtxInner, Iommufd, Object};
use crate::error::{Error, Result};
use softiommu_uapi::iommufd::{
    iommu_hwpt_pgfault, IOMMUFD_PAGE_RESP_INVALID, IOMMUFD_PAGE_RESP_SUCCESS,
    IOMMU_PGFAULT_FLAGS_LAST_PAGE, IOMMU_PGFAULT_FLAGS_PASID_VALID,
};
use std::collections::{BTreeMap, VecDeque};
use std::fmt;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

/// Told whether the queue has requests to read, each time that changes.
pub type Readiness = Box<dyn Fn(bool) + Send + Sync>;

/// One answer given to a request: `(cookie or 0 if never read, code)`.
pub type Answer = (u32, u32);

/// Where a device waits for the answer to its request.
#[derive(Debug, Default)]
struct Waiter {
    code: Mutex<Option<u32>>,
    answered: Condvar,
}

/// A page request and, if a device is waiting for it, the device's waiter.
struct Request {
    rec: iommu_hwpt_pgfault,
    waiter: Option<Arc<Waiter>>,
}

#[derive(Default)]
struct State {
    deliver: VecDeque<Request>,
    response: BTreeMap<u32, Request>,
    answered: Vec<Answer>,
    readiness: Option<Readiness>,
    /// What `readiness` was last told.
    ready: bool,
    /// Whether the file is open (it holds a user of the object).
    open: bool,
}

impl State {
    fn notify(&mut self) {
        let ready = !self.deliver.is_empty();
        if ready != self.ready {
            self.ready = ready;
            if let Some(f) = &self.readiness {
                f(ready);
            }
        }
    }

    /// Records the answer `code` to `req` (read under `cookie`, or 0) and wakes
    /// the device waiting for it.
    fn answer(&mut self, req: Request, cookie: u32, code: u32) {
        self.answered.push((cookie, code));
        if let Some(w) = req.waiter {
            *w.code.lock().unwrap_or_else(|e| e.into_inner()) = Some(code);
            w.answered.notify_all();
        }
    }

    /// The lowest cookie not awaiting a response, from 1.
    fn free_cookie(&self) -> Option<u32> {
        let mut want = 1u32;
        for k in self.response.keys() {
            if *k != want {
                break;
            }
            want = want.checked_add(1)?;
        }
        Some(want)
    }
}

/// A fault queue object.
pub struct Fault {
    /// The object ID.
    pub id: u32,
    /// See the module docs.
    state: Mutex<State>,
}

impl fmt::Debug for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = self.state();
        f.debug_struct("Fault")
            .field("id", &self.id)
            .field("deliver", &s.deliver.len())
            .field("response", &s.response.len())
            .finish()
    }
}

impl Fault {
    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().expect("fault queue lock poisoned")
    }

    /// Queues a page request of device `dev_id`; a device that waits for the
    /// answer passes a waiter.
    fn queue(
        &self,
        dev_id: u32,
        pasid: u32,
        grpid: u32,
        perm: u32,
        addr: u64,
        waiter: Option<Arc<Waiter>>,
    ) {
        let mut flags = IOMMU_PGFAULT_FLAGS_LAST_PAGE;
        if pasid != 0 {
            flags |= IOMMU_PGFAULT_FLAGS_PASID_VALID;
        }
        let rec = iommu_hwpt_pgfault {
            flags,
            dev_id,
            pasid,
            grpid,
            perm,
            addr,
            // The kernel reports no length hint.
            length: 0,
            ..Default::default()
        };
        let mut s = self.state();
        s.deliver.push_back(Request { rec, waiter });
        s.notify();
    }

    /// Queues a page request of device `dev_id` that nobody waits for (the
    /// selftest's `TRIGGER_IOPF`).
    pub(crate) fn report(&self, dev_id: u32, pasid: u32, grpid: u32, perm: u32, addr: u64) {
        self.queue(dev_id, pasid, grpid, perm, addr, None);
    }

    /// Queues a page request of device `dev_id` and waits for its answer.
    pub(crate) fn request(&self, dev_id: u32, pasid: u32, perm: u32, addr: u64) -> u32 {
        let waiter = Arc::new(Waiter::default());
        self.queue(dev_id, pasid, 0, perm, addr, Some(waiter.clone()));
        let mut code = waiter.code.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            if let Some(c) = *code {
                return c;
            }
            code = waiter
                .answered
                .wait(code)
                .unwrap_or_else(|e| e.into_inner());
        }
    }

    /// Answers every request of device `dev_id` with failure: it left the HWPT.
    pub(crate) fn auto_respond(&self, dev_id: u32) {
        let mut s = self.state();
        let (failed, kept) = std::mem::take(&mut s.deliver)
            .into_iter()
            .partition(|r| r.rec.dev_id == dev_id);
        s.deliver = kept;
        for req in failed {
            s.answer(req, 0, IOMMUFD_PAGE_RESP_INVALID);
        }
        let (failed, kept) = std::mem::take(&mut s.response)
            .into_iter()
            .partition(|(_, r)| r.rec.dev_id == dev_id);
        s.response = kept;
        for (cookie, req) in failed {
            s.answer(req, cookie, IOMMUFD_PAGE_RESP_INVALID);
        }
        s.notify();
    }

    pub(crate) fn destroy(&self, _ctx: &CtxInner) {
        let mut s = self.state();
        for req in std::mem::take(&mut s.deliver) {
            s.answer(req, 0, IOMMUFD_PAGE_RESP_INVALID);
        }
        for (cookie, req) in std::mem::take(&mut s.response) {
            s.answer(req, cookie, IOMMUFD_PAGE_RESP_INVALID);
        }
        s.notify();
    }

    /// Whether its file is open.
    pub fn is_open(&self) -> bool {
        self.state().open
    }

    /// Whether requests are waiting to be read (POLLIN).
    pub fn readable(&self) -> bool {
        !self.state().deliver.is_empty()
    }

    /// Requests queued and not read.
    pub fn queued(&self) -> usize {
        self.state().deliver.len()
    }

    /// Cookies of requests read and not answered.
    pub fn awaiting(&self) -> Vec<u32> {
        self.state().response.keys().copied().collect()
    }

    /// Every answer given so far, in order.
    pub fn answered(&self) -> Vec<Answer> {
        self.state().answered.clone()
    }
}

/// An open fault-queue file: what `out_fault_fd` is. It keeps its context open;
/// dropping it is closing the file (the queue stays until destroyed).
#[derive(Debug)]
pub struct FaultHandle {
    ctx: Iommufd,
    fault: Arc<Fault>,
}

impl Drop for FaultHandle {
    fn drop(&mut self) {
        {
            let mut s = self.fault.state();
            s.readiness = None;
            s.open = false;
        }
        self.ctx.table().remove_user(self.fault.id);
    }
}

impl FaultHandle {
    /// The queue.
    pub fn fault(&self) -> &Arc<Fault> {
        &self.fault
    }

    /// The context the file belongs to.
    pub fn context(&self) -> &Iommufd {
        &self.ctx
    }

    /// Sets the callback told whether requests are queued; it is told the
    /// current state at once.
    pub fn set_readiness(&self, f: Readiness) {
        let mut s = self.fault.state();
        s.ready = !s.deliver.is_empty();
        f(s.ready);
        s.readiness = Some(f);
    }

    /// Reads up to `max` requests, oldest first, handing each to `copy` with its
    /// cookie set; each then awaits a response. A request `copy` fails on is
    /// answered with failure and ends the read. Returns how many were copied, or
    /// the error of the first copy.
    pub fn read<E>(
        &self,
        max: usize,
        copy: &mut dyn FnMut(&iommu_hwpt_pgfault) -> std::result::Result<(), E>,
    ) -> std::result::Result<usize, E> {
        let mut s = self.fault.state();
        let mut done = 0;
        let mut result = Ok(());
        while done < max {
            let Some(cookie) = s.free_cookie() else { break };
            let Some(mut req) = s.deliver.pop_front() else {
                break;
            };
            req.rec.cookie = cookie;
            if let Err(e) = copy(&req.rec) {
                s.answer(req, cookie, IOMMUFD_PAGE_RESP_INVALID);
                result = Err(e);
                break;
            }
            s.response.insert(cookie, req);
            done += 1;
        }
        s.notify();
        match result {
            Err(e) if done == 0 => Err(e),
            _ => Ok(done),
        }
    }

    /// Answers the request awaiting a response under `cookie` with `code`.
    /// EINVAL for a code other than SUCCESS or INVALID, or a cookie not awaiting
    /// one.
    pub fn respond(&self, cookie: u32, code: u32) -> Result<()> {
        if code != IOMMUFD_PAGE_RESP_SUCCESS && code != IOMMUFD_PAGE_RESP_INVALID {
            return Err(Error::Invalid("page response code"));
        }
        let mut s = self.fault.state();
        let Some(req) = s.response.remove(&cookie) else {
            return Err(Error::Invalid("no request awaits this cookie"));
        };
        s.answer(req, cookie, code);
        Ok(())
    }
}

impl Iommufd {
    /// `IOMMU_FAULT_QUEUE_ALLOC`: a new fault queue and its open file.
    pub fn fault_alloc(&self) -> Result<FaultHandle> {
        let mut t = self.table();
        let id = t.reserve()?;
        let fault = Arc::new(Fault {
            id,
            state: Mutex::new(State {
                open: true,
                ..State::default()
            }),
        });
        t.finalize(id, Object::Fault(fault.clone()));
        t.add_user(id);
        Ok(FaultHandle {
            ctx: self.clone(),
            fault,
        })
    }

    /// Looks up the fault queue `id` (ENOENT if there is none).
    pub fn get_fault(&self, id: u32) -> Result<Arc<Fault>> {
        match self.table().get(id) {
            Some(Object::Fault(f)) => Ok(f.clone()),
            _ => Err(Error::NoObject { id }),
        }
    }
}
