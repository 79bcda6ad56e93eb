//! VFIO's type1 container on an iommufd, through the typed API: the compat IOAS
//! and its rules, type1's partial unmaps against type1v2's refusal, the info the
//! kernel reports.

use softiommu::iommufd::check::check;
use softiommu::iommufd::{Iommufd, MapFlags};
use softiommu::mem::sim::{SimAddressSpace, SimMemory};
use softiommu::mem::{Process, User, PAGE_SIZE};
use softiommu::range::IovaRange;
use softiommu::uapi::iommufd::{IOMMU_OPTION_HUGE_PAGES, IOMMU_OPTION_OP_GET};
use softiommu::uapi::test::{MOCK_APERTURE_LAST, MOCK_APERTURE_START};
use softiommu::uapi::vfio::*;
use softiommu::uapi::Errno;
use std::sync::Arc;

struct World {
    space: Arc<SimAddressSpace>,
    ctx: Iommufd,
}

fn world() -> World {
    let mem = SimMemory::new(1 << 30).unwrap();
    let space = SimAddressSpace::new(&mem);
    let process = Process::new(space.clone(), User::new());
    World {
        ctx: Iommufd::open(&process),
        space,
    }
}

/// A context whose compat IOAS has a mock domain, set to `iommu_type`.
fn compat(iommu_type: u64) -> (World, u32) {
    let w = world();
    let ioas = w.ctx.ioas_alloc().unwrap();
    w.ctx.test_mock_domain(ioas).unwrap();
    w.ctx.vfio_ioas_set(ioas).unwrap();
    w.ctx.vfio_set_iommu(iommu_type).unwrap();
    (w, ioas)
}

fn errno<T: std::fmt::Debug>(r: softiommu::error::Result<T>) -> Errno {
    r.unwrap_err().errno()
}

#[test]
fn compat_ioas_get_set_clear_and_destroy() {
    let w = world();
    assert_eq!(errno(w.ctx.vfio_ioas_get()), Errno::ENODEV);
    assert_eq!(errno(w.ctx.vfio_ioas_set(7)), Errno::ENOENT);
    let ioas = w.ctx.ioas_alloc().unwrap();
    w.ctx.vfio_ioas_set(ioas).unwrap();
    assert_eq!(w.ctx.vfio_ioas_get().unwrap(), ioas);
    w.ctx.vfio_ioas_clear();
    assert_eq!(errno(w.ctx.vfio_ioas_get()), Errno::ENODEV);
    // Destroying the compat IOAS clears the choice: a new IOAS reusing the ID
    // does not become the compat IOAS by accident.
    w.ctx.vfio_ioas_set(ioas).unwrap();
    w.ctx.destroy(ioas).unwrap();
    assert_eq!(w.ctx.ioas_alloc().unwrap(), ioas);
    assert_eq!(errno(w.ctx.vfio_ioas_get()), Errno::ENODEV);
}

#[test]
fn operations_need_a_compat_ioas() {
    let w = world();
    assert_eq!(w.ctx.vfio_check_extension(VFIO_TYPE1v2_IOMMU).unwrap(), 1);
    assert_eq!(w.ctx.vfio_check_extension(VFIO_TYPE1_IOMMU).unwrap(), 1);
    assert_eq!(w.ctx.vfio_check_extension(VFIO_UNMAP_ALL).unwrap(), 1);
    assert_eq!(w.ctx.vfio_check_extension(VFIO_UPDATE_VADDR).unwrap(), 0);
    assert_eq!(
        w.ctx
            .vfio_check_extension(VFIO_TYPE1_NESTING_IOMMU)
            .unwrap(),
        0
    );
    assert_eq!(
        errno(w.ctx.vfio_check_extension(VFIO_DMA_CC_IOMMU)),
        Errno::ENODEV
    );
    assert_eq!(
        errno(w.ctx.vfio_set_iommu(VFIO_TYPE1v2_IOMMU)),
        Errno::ENODEV
    );
    // The type is checked before the IOAS.
    assert_eq!(
        errno(w.ctx.vfio_set_iommu(VFIO_NOIOMMU_IOMMU)),
        Errno::EINVAL
    );
    assert_eq!(
        errno(
            w.ctx
                .vfio_map_dma(0, MOCK_APERTURE_START, PAGE_SIZE, MapFlags::RW)
        ),
        Errno::ENODEV
    );
    assert_eq!(
        errno(w.ctx.vfio_unmap_dma(MOCK_APERTURE_START, PAGE_SIZE)),
        Errno::ENODEV
    );
    assert_eq!(errno(w.ctx.vfio_unmap_all()), Errno::ENODEV);
    assert_eq!(errno(w.ctx.vfio_iommu_info()), Errno::ENODEV);
}

#[test]
fn type1_disables_large_pages_type1v2_does_not() {
    let (w1, ioas1) = compat(VFIO_TYPE1_IOMMU);
    assert_eq!(
        w1.ctx
            .option(IOMMU_OPTION_HUGE_PAGES, IOMMU_OPTION_OP_GET, ioas1, 0)
            .unwrap(),
        0
    );
    let (w2, ioas2) = compat(VFIO_TYPE1v2_IOMMU);
    assert_eq!(
        w2.ctx
            .option(IOMMU_OPTION_HUGE_PAGES, IOMMU_OPTION_OP_GET, ioas2, 0)
            .unwrap(),
        1
    );
    // Cache coherency: the mock domain enforces it.
    assert_eq!(w2.ctx.vfio_check_extension(VFIO_DMA_CC_IOMMU).unwrap(), 1);
}

#[test]
fn map_unmap_and_unmap_all() {
    let (w, ioas) = compat(VFIO_TYPE1v2_IOMMU);
    let buf = w.space.mmap_anon(None, 16 * PAGE_SIZE, true).unwrap();
    let iova = MOCK_APERTURE_START;
    w.ctx
        .vfio_map_dma(buf, iova, 16 * PAGE_SIZE, MapFlags::RW)
        .unwrap();
    // Fixed IOVA: mapping over it again is EEXIST.
    assert_eq!(
        errno(w.ctx.vfio_map_dma(buf, iova, PAGE_SIZE, MapFlags::RW)),
        Errno::EEXIST
    );
    // type1v2 does not unmap part of a mapping.
    assert_eq!(errno(w.ctx.vfio_unmap_dma(iova, PAGE_SIZE)), Errno::ENOENT);
    assert_eq!(
        w.ctx.vfio_unmap_dma(iova, 16 * PAGE_SIZE).unwrap(),
        16 * PAGE_SIZE
    );
    // Nothing mapped: success, 0 bytes.
    assert_eq!(w.ctx.vfio_unmap_dma(iova, 16 * PAGE_SIZE).unwrap(), 0);
    assert_eq!(errno(w.ctx.vfio_unmap_dma(iova, 0)), Errno::EINVAL);
    assert_eq!(
        errno(w.ctx.vfio_unmap_dma(u64::MAX - 4095, 8192)),
        Errno::EOVERFLOW
    );
    w.ctx
        .vfio_map_dma(buf, iova, 4 * PAGE_SIZE, MapFlags::RO)
        .unwrap();
    w.ctx
        .vfio_map_dma(buf, iova + 8 * PAGE_SIZE, 4 * PAGE_SIZE, MapFlags::RW)
        .unwrap();
    assert_eq!(w.ctx.vfio_unmap_all().unwrap(), 8 * PAGE_SIZE);
    assert!(w
        .ctx
        .get_ioas(ioas)
        .unwrap()
        .iopt()
        .areas()
        .next()
        .is_none());
    check(&w.ctx).unwrap();
}

#[test]
fn type1_unmaps_pages_out_of_a_mapping() {
    let (w, ioas) = compat(VFIO_TYPE1_IOMMU);
    let n = 16u64;
    let buf = w.space.mmap_anon(None, n * PAGE_SIZE, true).unwrap();
    let iova = MOCK_APERTURE_START;
    w.ctx
        .vfio_map_dma(buf, iova, n * PAGE_SIZE, MapFlags::RW)
        .unwrap();
    // Out of order, one page at a time: every unmap cuts and removes one page.
    let order = [5u64, 0, 15, 7, 6, 1, 14, 8, 2, 13, 3, 12, 4, 11, 9, 10];
    for (k, &i) in order.iter().enumerate() {
        assert_eq!(
            w.ctx
                .vfio_unmap_dma(iova + i * PAGE_SIZE, PAGE_SIZE)
                .unwrap(),
            PAGE_SIZE,
            "page {i}"
        );
        let areas = w.ctx.get_ioas(ioas).unwrap().iopt().areas().count();
        assert!(areas < n as usize - k);
        check(&w.ctx).unwrap();
    }
    assert_eq!(w.ctx.get_ioas(ioas).unwrap().iopt().areas().count(), 0);
    // A cut that is not page aligned is refused, and nothing changes.
    w.ctx
        .vfio_map_dma(buf, iova, 4 * PAGE_SIZE, MapFlags::RW)
        .unwrap();
    assert_eq!(
        errno(w.ctx.vfio_unmap_dma(iova + 100, PAGE_SIZE)),
        Errno::EINVAL
    );
    assert_eq!(w.ctx.get_ioas(ioas).unwrap().iopt().areas().count(), 1);
    check(&w.ctx).unwrap();
}

#[test]
fn info_reports_pgsizes_and_usable_ranges() {
    let (w, _) = compat(VFIO_TYPE1v2_IOMMU);
    let info = w.ctx.vfio_iommu_info().unwrap();
    assert_eq!(
        info.iova_ranges,
        vec![IovaRange {
            start: MOCK_APERTURE_START,
            last: MOCK_APERTURE_LAST
        }]
    );
    assert_ne!(info.iova_pgsizes, 0);
    // Nothing below a page, and the page size itself.
    assert_eq!(info.iova_pgsizes & (PAGE_SIZE - 1), 0);
    assert_ne!(info.iova_pgsizes & PAGE_SIZE, 0);
    // Without a domain: everything from the page size up.
    let w = world();
    let ioas = w.ctx.ioas_alloc().unwrap();
    w.ctx.vfio_ioas_set(ioas).unwrap();
    let info = w.ctx.vfio_iommu_info().unwrap();
    assert_eq!(info.iova_pgsizes, !(PAGE_SIZE - 1));
    assert_eq!(info.iova_ranges, vec![IovaRange::ALL]);
}
