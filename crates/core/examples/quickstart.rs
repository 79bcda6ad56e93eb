//! What a VMM's iommufd code does, through softiommu's typed API, on this
//! process's own memory: open a context, make an IO address space, attach a mock
//! device (which gets an IOMMU domain), map a buffer, check the IOMMU translates
//! it to the buffer's pages, read it through an access (as an emulated device
//! would), unmap, and close.
//!
//! Run it with `cargo run -p softiommu --example quickstart`.

use softiommu::iommufd::check::check;
use softiommu::iommufd::selftest::MOCK_ACCESS_CREATE_NEEDS_PIN_PAGES;
use softiommu::iommufd::{Iommufd, MapFlags};
use softiommu::mem::process::ProcessAddressSpace;
use softiommu::mem::{Process, User, PAGE_SIZE};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let process = Process::new(ProcessAddressSpace::new(), User::new());
    let ctx = Iommufd::open(&process);

    let ioas = ctx.ioas_alloc()?;
    println!("IOMMU_IOAS_ALLOC            -> ioas {ioas}");

    let dev = ctx.test_mock_domain(ioas)?;
    println!(
        "IOMMU_TEST_OP_MOCK_DOMAIN   -> device {} (dev_id {}) attached to hwpt {}",
        dev.stdev_id, dev.idev_id, dev.hwpt_id
    );
    let ranges = ctx.ioas_iova_ranges(ioas)?;
    for r in &ranges.ranges {
        println!(
            "IOMMU_IOAS_IOVA_RANGES      -> [{:#x}, {:#x}] alignment {}",
            r.start, r.last, ranges.alignment
        );
    }

    // A page-aligned buffer of four pages with a recognisable pattern.
    let len = 4 * PAGE_SIZE as usize;
    let mut storage = vec![0u8; len + PAGE_SIZE as usize];
    let offset = storage.as_ptr().align_offset(PAGE_SIZE as usize);
    let buf = &mut storage[offset..offset + len];
    for (i, b) in buf.iter_mut().enumerate() {
        *b = (i % 251) as u8;
    }
    let va = buf.as_ptr() as u64;

    let iova = ctx.ioas_map(ioas, va, len as u64, None, MapFlags::RW)?;
    println!(
        "IOMMU_IOAS_MAP              -> {len:#x} bytes at va {va:#x} mapped at iova {iova:#x}"
    );
    ctx.test_md_check_map(dev.hwpt_id, iova, len as u64, va)?;
    println!(
        "IOMMU_TEST_OP_MD_CHECK_MAP  -> the mock domain translates every IO page to the buffer"
    );
    ctx.test_md_check_refs(va, len as u64, 1)?;
    println!(
        "IOMMU_TEST_OP_MD_CHECK_REFS -> every page pinned once; VmPin {} pages",
        process.pinned_vm()
    );

    let access = ctx.test_create_access(ioas, MOCK_ACCESS_CREATE_NEEDS_PIN_PAGES)?;
    let mut readback = vec![0u8; 64];
    access.access().rw(iova + PAGE_SIZE, &mut readback, false)?;
    assert_eq!(
        &readback[..],
        &buf[PAGE_SIZE as usize..PAGE_SIZE as usize + 64]
    );
    println!(
        "IOMMU_TEST_OP_ACCESS_RW     -> read 64 bytes at iova {:#x}: {:02x?}...",
        iova + PAGE_SIZE,
        &readback[..8]
    );
    drop(access);

    check(&ctx).map_err(|e| format!("consistency check failed: {e}"))?;
    let unmapped = ctx.ioas_unmap(ioas, iova, len as u64)?;
    println!(
        "IOMMU_IOAS_UNMAP            -> {unmapped:#x} bytes unmapped; VmPin {} pages",
        process.pinned_vm()
    );
    ctx.test_md_check_refs(va, len as u64, 0)?;

    ctx.destroy(dev.stdev_id)?;
    ctx.destroy(ioas)?;
    println!(
        "IOMMU_DESTROY               -> device and ioas destroyed; {} objects left",
        ctx.objects().len()
    );
    Ok(())
}
