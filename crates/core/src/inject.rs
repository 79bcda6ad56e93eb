//! Fault injection: every fallible step of the core can be made to fail on demand.
//!
//! The kernel tests its error paths with `fail_nth`: arm a counter on the current
//! task, run an ioctl, and the Nth allocation or injection point inside it fails.
//! Running the same call for N = 1, 2, ... until it succeeds walks every error path.
//! This module is the same idea. Each fallible step in the core calls [`point`]
//! before it does anything that cannot be undone; a test [`arm`]s the counter for
//! the current thread, and the Nth point reached fails with the errno the real
//! failure there would give.
//!
//! The counter is per thread, so tests running in parallel do not disturb each
//! other, and a point costs one thread-local read when nothing is armed.

use crate::error::{Error, Result};
use softiommu_uapi::Errno;
use std::cell::Cell;

thread_local! {
    /// 0: disarmed. Otherwise the number of points still to pass, the last one fails.
    static COUNTDOWN: Cell<u64> = const { Cell::new(0) };
    /// How many points this thread passed since it was last armed.
    static PASSED: Cell<u64> = const { Cell::new(0) };
}

/// Makes the `nth` injection point reached from now on by this thread fail
/// (`nth` counts from 1). `arm(0)` disarms.
pub fn arm(nth: u64) {
    COUNTDOWN.with(|c| c.set(nth));
    PASSED.with(|p| p.set(0));
}

/// Disarms and returns how many points this thread passed since [`arm`].
pub fn disarm() -> u64 {
    COUNTDOWN.with(|c| c.set(0));
    PASSED.with(|p| p.replace(0))
}

/// Whether an armed point is still pending on this thread.
pub fn armed() -> bool {
    COUNTDOWN.with(|c| c.get() != 0)
}

/// An injection point that fails with ENOMEM, the errno of a failed allocation.
#[inline]
pub fn point(name: &'static str) -> Result<()> {
    point_errno(name, Errno::ENOMEM)
}

/// An injection point whose real failure gives `errno`.
#[inline]
pub fn point_errno(name: &'static str, errno: Errno) -> Result<()> {
    COUNTDOWN.with(|c| {
        let left = c.get();
        if left == 0 {
            return Ok(());
        }
        PASSED.with(|p| p.set(p.get() + 1));
        if left == 1 {
            c.set(0);
            Err(Error::Injected { point: name, errno })
        } else {
            c.set(left - 1);
            Ok(())
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nth_point_fails_once() {
        arm(3);
        assert!(point("a").is_ok());
        assert!(point("b").is_ok());
        let err = point("c").unwrap_err();
        assert_eq!(err.errno(), Errno::ENOMEM);
        assert!(point("d").is_ok());
        assert_eq!(disarm(), 3);
    }

    #[test]
    fn disarmed_points_pass() {
        arm(0);
        for _ in 0..10 {
            assert!(point("x").is_ok());
        }
        assert_eq!(disarm(), 0);
    }
}
