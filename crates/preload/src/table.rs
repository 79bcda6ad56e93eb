//! Our descriptors: fd numbers → open file descriptions.
//!
//! Locks, outermost first:
//! - [`GATE`] (`RwLock<()>`): held shared by every call on one of our fds for its
//!   whole duration, so that whatever the core locks during the call is released
//!   before a `fork` can copy it; `fork`'s prepare handler takes it exclusively.
//! - [`TABLE`] (`RwLock<Table>`): the fd-indexed slots. Shared for lookups;
//!   exclusive, briefly, for changes — which also run the system call that changes
//!   the kernel's side (close, dup onto), so the two never disagree where another
//!   thread can look. Never held while a context is dropped or an ioctl runs.
//!
//! [`LIVE`] counts occupied slots, so that a program without any of our fds pays
//! one atomic load per interposed call.

use crate::real;
use crate::sysfs::Attr;
use softiommu::abi::File;
use std::cell::RefCell;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Once, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

/// One open file description of ours: what every fd `dup`ed from one open shares.
#[derive(Debug)]
pub struct Desc {
    /// `(st_dev, st_ino)` of the backing memfd: the description's identity.
    pub key: (u64, u64),
    /// Opened for reading (`FMODE_READ`).
    pub readable: bool,
    /// Opened for writing (`FMODE_WRITE`).
    pub writable: bool,
    /// What was opened; dropped with the last fd of the description.
    pub kind: Kind,
}

/// What one of our descriptions is.
#[derive(Debug)]
pub enum Kind {
    /// A file of the core: iommufd, access, fault queue, VFIO device.
    Core(Arc<File>),
    /// A writable sysfs attribute (`crate::sysfs`).
    Sysfs(Attr),
}

impl Desc {
    /// The core's file, unless this is a sysfs attribute.
    pub fn core(&self) -> Option<&Arc<File>> {
        match &self.kind {
            Kind::Core(f) => Some(f),
            Kind::Sysfs(_) => None,
        }
    }
}

/// The fd-indexed slots.
#[derive(Debug)]
pub struct Table {
    fds: Vec<Option<Arc<Desc>>>,
}

/// Guards whatever a call on our fds holds; see the module docs.
static GATE: RwLock<()> = RwLock::new(());
/// The slots; see the module docs.
static TABLE: RwLock<Table> = RwLock::new(Table { fds: Vec::new() });
/// Number of occupied slots.
static LIVE: AtomicUsize = AtomicUsize::new(0);

/// The description behind `fd`, if it is ours. No system call.
pub fn lookup(fd: i32) -> Option<Arc<Desc>> {
    if fd < 0 || LIVE.load(Ordering::Acquire) == 0 {
        return None;
    }
    let t = TABLE.read().unwrap_or_else(PoisonError::into_inner);
    t.fds.get(fd as usize)?.clone()
}

/// Whether the program has any of our fds.
pub fn any() -> bool {
    LIVE.load(Ordering::Acquire) != 0
}

/// Enters a call on our fds (see [`GATE`]).
pub fn gate() -> RwLockReadGuard<'static, ()> {
    GATE.read().unwrap_or_else(PoisonError::into_inner)
}

/// The table, for a change.
pub fn write() -> RwLockWriteGuard<'static, Table> {
    TABLE.write().unwrap_or_else(PoisonError::into_inner)
}

impl Table {
    /// The description behind `fd`.
    pub fn get(&self, fd: i32) -> Option<Arc<Desc>> {
        usize::try_from(fd)
            .ok()
            .and_then(|i| self.fds.get(i)?.clone())
    }

    /// Makes `fd` refer to `desc`; returns what it referred to before.
    pub fn insert(&mut self, fd: i32, desc: Arc<Desc>) -> Option<Arc<Desc>> {
        debug_assert_eq!(
            real::file_key(fd).ok(),
            Some(desc.key),
            "fd {fd} is not its backing file"
        );
        let i = usize::try_from(fd).expect("the kernel gives non-negative fds");
        if i >= self.fds.len() {
            self.fds.resize(i + 1, None);
        }
        let old = self.fds[i].replace(desc);
        if old.is_none() {
            LIVE.fetch_add(1, Ordering::Release);
        }
        old
    }

    /// Forgets `fd`; returns its description (to be dropped after the lock).
    pub fn remove(&mut self, fd: i32) -> Option<Arc<Desc>> {
        let old = usize::try_from(fd)
            .ok()
            .and_then(|i| self.fds.get_mut(i)?.take());
        if old.is_some() {
            LIVE.fetch_sub(1, Ordering::Release);
        }
        old
    }

    /// Forgets every fd in `[first, last]`.
    pub fn remove_range(&mut self, first: u32, last: u32) -> Vec<Arc<Desc>> {
        let end = (last as usize).saturating_add(1).min(self.fds.len());
        let mut out = Vec::new();
        for i in (first as usize)..end {
            if let Some(d) = self.fds[i].take() {
                LIVE.fetch_sub(1, Ordering::Release);
                out.push(d);
            }
        }
        out
    }
}

type ForkGuards = (
    RwLockWriteGuard<'static, ()>,
    RwLockWriteGuard<'static, Table>,
);

thread_local! {
    /// The locks the forking thread holds between prepare and parent/child.
    static FORK_GUARDS: RefCell<Option<ForkGuards>> = const { RefCell::new(None) };
}

extern "C" fn fork_prepare() {
    let _ = std::panic::catch_unwind(|| {
        let gate = GATE.write().unwrap_or_else(PoisonError::into_inner);
        let table = write();
        let _ = FORK_GUARDS.try_with(|g| *g.borrow_mut() = Some((gate, table)));
    });
}

extern "C" fn fork_release() {
    let _ = std::panic::catch_unwind(|| {
        // Dropping the guards unlocks; in the child the lock words are copies of
        // the parent's, held by this (now the only) thread.
        let _ = FORK_GUARDS.try_with(|g| g.borrow_mut().take());
    });
}

/// Registers the fork handlers, once, before our first fd exists.
pub fn init() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| real::atfork(fork_prepare, fork_release, fork_release));
}
