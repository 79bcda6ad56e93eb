//! Builds the C entry points that have variadic signatures (`open`, `ioctl`,
//! `fcntl`, ...) and the fault-catching copy with its signal interposers
//! (`safecopy.c`: `sigaction`, `signal`, ...), and exports them from the cdylib.
//!
//! rustc links a cdylib with a version script that makes every symbol local but
//! its own `#[no_mangle]` items, so C symbols would vanish; `exports.map` names
//! them global (linkers merge the two anonymous version scripts), and
//! `+whole-archive` keeps the otherwise unreferenced object in the link.

fn main() {
    println!("cargo:rerun-if-changed=src/variadic.c");
    println!("cargo:rerun-if-changed=src/safecopy.c");
    println!("cargo:rerun-if-changed=src/exports.map");
    cc::Build::new()
        .file("src/variadic.c")
        .file("src/safecopy.c")
        .warnings(true)
        .extra_warnings(true)
        .link_lib_modifier("+whole-archive")
        .compile("softiommu_variadic");
    let dir = std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
    println!("cargo:rustc-cdylib-link-arg=-Wl,--version-script={dir}/src/exports.map");
}
