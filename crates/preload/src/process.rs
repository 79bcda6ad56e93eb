//! The program as the core sees it: one [`Process`] over its own memory.
//!
//! Shared by every context the program opens, as the kernel charges every
//! context of a process to the same mm and user. Its limits are read again at
//! each open of `/dev/iommu`: RLIMIT_MEMLOCK from `getrlimit`, CAP_IPC_LOCK and
//! CAP_SYS_RESOURCE from the effective set in `/proc/self/status`. (The kernel
//! reads them at each pin; a program that changes them between opens is rare.)

use crate::real;
use softiommu::mem::process::ProcessAddressSpace;
use softiommu::mem::{Process, User};
use std::sync::{Arc, OnceLock};

const CAP_IPC_LOCK: u32 = 14;
const CAP_SYS_RESOURCE: u32 = 24;

/// The effective capability set, from `/proc/self/status`.
fn cap_eff() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| parse_cap_eff(&s))
        .unwrap_or(0)
}

fn parse_cap_eff(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("CapEff:"))?;
    u64::from_str_radix(line["CapEff:".len()..].trim(), 16).ok()
}

/// The program's process, with its limits refreshed.
pub fn get() -> Arc<Process> {
    static PROCESS: OnceLock<Arc<Process>> = OnceLock::new();
    let p = PROCESS.get_or_init(|| Process::new(ProcessAddressSpace::new(), User::new()));
    let caps = cap_eff();
    p.set_cap_ipc_lock(caps & (1 << CAP_IPC_LOCK) != 0);
    p.set_cap_sys_resource(caps & (1 << CAP_SYS_RESOURCE) != 0);
    p.set_rlimit_memlock(real::rlimit_memlock());
    p.clone()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_cap_eff() {
        let s = "Name:\tx\nCapInh:\t0000000000000000\nCapEff:\t0000000001004000\n";
        let caps = parse_cap_eff(s).unwrap();
        assert!(caps & (1 << CAP_IPC_LOCK) != 0);
        assert!(caps & (1 << CAP_SYS_RESOURCE) != 0);
        assert_eq!(parse_cap_eff("Name:\tx\n"), None);
    }
}
