//! Smoke test of the typed API: map with a mock domain, pin, access, unmap, teardown.
use softiommu::iommufd::check::check;
use softiommu::iommufd::{Iommufd, MapFlags};
use softiommu::mem::sim::{SimAddressSpace, SimMemory};
use softiommu::mem::{Process, User, PAGE_SIZE};
use softiommu::uapi::test::{MOCK_APERTURE_LAST, MOCK_APERTURE_START};
use softiommu::uapi::Errno;

#[test]
fn map_with_domain_pins_and_checks() {
    let mem = SimMemory::new(1 << 30).unwrap();
    let space = SimAddressSpace::new(&mem);
    let proc_ = Process::new(space.clone(), User::new());
    let ctx = Iommufd::open(&proc_);
    let ioas = ctx.ioas_alloc().unwrap();
    assert_eq!(ioas, 1);
    let ids = ctx.test_mock_domain(ioas).unwrap();
    assert_eq!((ids.stdev_id, ids.idev_id, ids.hwpt_id), (2, 3, 4));
    let r = ctx.ioas_iova_ranges(ioas).unwrap();
    assert_eq!(r.ranges.len(), 1);
    assert_eq!(r.ranges[0].start, MOCK_APERTURE_START);
    assert_eq!(r.ranges[0].last, MOCK_APERTURE_LAST);
    assert_eq!(r.alignment, 2048);
    let buf = space.mmap_anon(None, 16 * PAGE_SIZE, true).unwrap();
    let iova = ctx
        .ioas_map(ioas, buf, 16 * PAGE_SIZE, None, MapFlags::RW)
        .unwrap();
    check(&ctx).unwrap();
    ctx.test_md_check_map(ids.hwpt_id, iova, 16 * PAGE_SIZE, buf)
        .unwrap();
    ctx.test_md_check_refs(buf, 16 * PAGE_SIZE, 1).unwrap();
    assert_eq!(proc_.pinned_vm(), 16);
    let acc = ctx.test_create_access(ioas, 1).unwrap();
    let id = acc.pages(iova, PAGE_SIZE, buf, 0).unwrap();
    check(&ctx).unwrap();
    ctx.test_md_check_refs(buf, 16 * PAGE_SIZE, 1).unwrap();
    assert_eq!(ctx.destroy(ioas).unwrap_err().errno(), Errno::EBUSY);
    assert_eq!(
        ctx.ioas_unmap(ioas, iova, 16 * PAGE_SIZE).unwrap(),
        16 * PAGE_SIZE
    );
    assert!(acc.destroy_pages(id).is_err());
    check(&ctx).unwrap();
    ctx.test_md_check_refs(buf, 16 * PAGE_SIZE, 0).unwrap();
    assert_eq!(proc_.pinned_vm(), 0);
    drop(acc);
    ctx.destroy(ids.stdev_id).unwrap();
    check(&ctx).unwrap();
    assert!(ctx.objects().len() == 1);
    ctx.destroy(ioas).unwrap();
    assert!(ctx.objects().is_empty());
}
