//! The `softiommu` command line.
//!
//! So far it reports its version and what it can do; `softiommu run` (programs
//! under the interposer) arrives with the uAPI boundary.

use std::process::ExitCode;

const HELP: &str = "\
softiommu: the Linux device-assignment stack (/dev/iommu, iommufd) in user space

Usage: softiommu [--help | --version]

What is here now:
  The typed Rust API (crate `softiommu`): IO address spaces, pinned pages, the
  kernel selftest's mock IOMMU and its test operations. Try:
      cargo run -p softiommu --example quickstart

Coming next:
  softiommu run [--trace] -- PROGRAM [ARGS]   run an unmodified iommufd client
";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        None | Some("-h" | "--help" | "help") => {
            print!("{HELP}");
            ExitCode::SUCCESS
        }
        Some("-V" | "--version") => {
            println!("softiommu {}", env!("CARGO_PKG_VERSION"));
            ExitCode::SUCCESS
        }
        Some(other) => {
            eprintln!("softiommu: unknown command `{other}`\n\n{HELP}");
            ExitCode::from(2)
        }
    }
}
