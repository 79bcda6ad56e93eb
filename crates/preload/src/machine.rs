//! The machine the program runs on: the host behind `/dev/vfio`, built on
//! first use from the TOML file `SOFTIOMMU_MACHINE` names (`softiommu run
//! --machine FILE` sets it), or the built-in default machine, with the
//! rebinds `SOFTIOMMU_BIND` lists (`BDF=DRIVER,...`, set by `softiommu run
//! --bind`) applied as writes to sysfs would. Its devices DMA
//! into the program's own memory ([`ProcessMemory`]): the pages the program
//! mapped for DMA through iommufd.

use crate::real;
use softiommu::machine::host::Host;
use softiommu::machine::Machine;
use softiommu::mem::process::ProcessMemory;
use softiommu::uapi::Errno;
use softiommu::vfio::Vfio;
use std::sync::{Arc, OnceLock};

/// The VFIO subsystem of the program's machine; ENODEV (once explained on
/// stderr) when the machine description cannot be used.
pub fn vfio() -> Result<Arc<Vfio>, Errno> {
    static VFIO: OnceLock<Option<Arc<Vfio>>> = OnceLock::new();
    VFIO.get_or_init(|| match load() {
        Ok(v) => Some(v),
        Err(e) => {
            real::write_all(2, format!("softiommu: no machine: {e}\n").as_bytes());
            None
        }
    })
    .clone()
    .ok_or(Errno::ENODEV)
}

fn load() -> Result<Arc<Vfio>, String> {
    let machine = match std::env::var_os("SOFTIOMMU_MACHINE") {
        Some(path) => {
            let text = std::fs::read_to_string(&path)
                .map_err(|e| format!("{}: {e}", path.to_string_lossy()))?;
            Machine::from_toml(&text).map_err(|e| format!("{}: {e}", path.to_string_lossy()))?
        }
        None => Machine::default_machine(),
    };
    let host = Host::new(machine, Arc::new(ProcessMemory)).map_err(|e| e.to_string())?;
    if let Some(list) = std::env::var_os("SOFTIOMMU_BIND") {
        host.rebind_all(&list.to_string_lossy())?;
    }
    Ok(Vfio::new(host))
}
