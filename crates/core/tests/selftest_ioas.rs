//! Ports of the kernel selftest's `iommufd_ioas` fixture
//! (`tools/testing/selftests/iommu/iommufd.c`, Linux 6.12–6.17), in its four variants
//! `no_domain`, `mock_domain`, `two_mock_domain` and `mock_domain_limit` (one mock
//! domain with `SET_TEMP_MEMORY_LIMIT` 16). Each kernel test is a function taking the
//! variant; the macro at the end makes one `#[test]` per variant, named
//! `<variant>::<kernel test name>`.
//!
//! Not ported here: `alloc_hwpt_nested` (in `selftest_nested.rs`, without its
//! fault queues), `get_hw_info` (GET_HW_INFO), `fork_gone` and `fork_present` (a
//! forked child's mm), `dmabuf_simple` and `dmabuf_revoke` (dma-buf, newer than
//! 6.17). The EMSGSIZE
//! halves of `iova_ranges` are the ABI's (the typed call returns every range).

mod common;

use common::*;
use softiommu::iommufd::MapFlags;
use softiommu::range::IovaRange;
use softiommu::uapi::iommufd::{IOMMU_OPTION_HUGE_PAGES, IOMMU_OPTION_OP_GET, IOMMU_OPTION_OP_SET};
use softiommu::uapi::Errno;

/// `1 << (ffs(length) - 1)`: the lowest set bit.
fn lowest_bit(length: u64) -> u64 {
    1 << length.trailing_zeros()
}

fn ioas_auto_destroy(v: IoasVariant) {
    let _s = IoasFixture::new(v);
}

fn ioas_destroy(v: IoasVariant) {
    let s = IoasFixture::new(v);
    if s.stdev_id != 0 {
        // A device's HWPT uses the IOAS.
        expect_errno(s.f.destroy(s.ioas_id), Errno::EBUSY);
    } else {
        s.f.destroy(s.ioas_id).unwrap();
    }
}

fn hwpt_attach(v: IoasVariant) {
    let s = IoasFixture::new(v);
    if s.stdev_id != 0 {
        // A device attached straight to a HWPT.
        s.f.mock_domain(s.hwpt_id).unwrap();
    } else {
        expect_errno(s.f.mock_domain(s.hwpt_id), Errno::ENOENT);
    }
}

fn ioas_area_destroy(v: IoasVariant) {
    let s = IoasFixture::new(v);
    s.map_fixed(s.f.buffer, PAGE_SIZE, s.base_iova).unwrap();
    if s.stdev_id != 0 {
        expect_errno(s.f.destroy(s.ioas_id), Errno::EBUSY);
    } else {
        s.f.destroy(s.ioas_id).unwrap();
    }
}

fn ioas_area_auto_destroy(v: IoasVariant) {
    let s = IoasFixture::new(v);
    for i in 0..10 {
        s.map_fixed(s.f.buffer, PAGE_SIZE, s.base_iova + i * PAGE_SIZE)
            .unwrap();
    }
}

fn area(v: IoasVariant) {
    let s = IoasFixture::new(v);
    let buffer = s.f.buffer;
    // Nothing mapped: nothing to unmap.
    for i in 0..10 {
        expect_errno(s.unmap(i * PAGE_SIZE, PAGE_SIZE), Errno::ENOENT);
    }

    for i in 0..10 {
        s.map_fixed(buffer, PAGE_SIZE, s.base_iova + i * PAGE_SIZE)
            .unwrap();
    }
    for i in 0..10 {
        assert_eq!(
            s.unmap(s.base_iova + i * PAGE_SIZE, PAGE_SIZE).unwrap(),
            PAGE_SIZE
        );
    }

    // An unmap cannot split a mapping.
    s.map_fixed(buffer, PAGE_SIZE * 2, s.base_iova + 16 * PAGE_SIZE)
        .unwrap();
    expect_errno(
        s.unmap(s.base_iova + 16 * PAGE_SIZE, PAGE_SIZE),
        Errno::ENOENT,
    );
    expect_errno(
        s.unmap(s.base_iova + 17 * PAGE_SIZE, PAGE_SIZE),
        Errno::ENOENT,
    );

    // Mapping over a mapping fails.
    expect_errno(
        s.map_fixed(buffer, PAGE_SIZE * 2, s.base_iova + 16 * PAGE_SIZE),
        Errno::EEXIST,
    );
    expect_errno(
        s.map_fixed(buffer, PAGE_SIZE, s.base_iova + 16 * PAGE_SIZE),
        Errno::EEXIST,
    );
    expect_errno(
        s.map_fixed(buffer, PAGE_SIZE, s.base_iova + 17 * PAGE_SIZE),
        Errno::EEXIST,
    );
    expect_errno(
        s.map_fixed(buffer, PAGE_SIZE * 2, s.base_iova + 15 * PAGE_SIZE),
        Errno::EEXIST,
    );
    expect_errno(
        s.map_fixed(buffer, PAGE_SIZE * 3, s.base_iova + 15 * PAGE_SIZE),
        Errno::EEXIST,
    );

    // Unmap all, twice: the second time of an empty IOAS.
    assert_eq!(s.unmap(0, u64::MAX).unwrap(), 2 * PAGE_SIZE);
    assert_eq!(s.unmap(0, u64::MAX).unwrap(), 0);
}

fn unmap_fully_contained_areas(v: IoasVariant) {
    let s = IoasFixture::new(v);
    // Room below base_iova for no_domain.
    let base = s.base_iova + 4 * PAGE_SIZE;
    for i in 0..4 {
        s.map_fixed(s.f.buffer, 8 * PAGE_SIZE, base + i * 16 * PAGE_SIZE)
            .unwrap();
    }

    // Ranges that cut an area.
    expect_errno(s.unmap(base - 4 * PAGE_SIZE, 8 * PAGE_SIZE), Errno::ENOENT);
    expect_errno(
        s.unmap(
            base + 3 * 16 * PAGE_SIZE + 8 * PAGE_SIZE - 4 * PAGE_SIZE,
            8 * PAGE_SIZE,
        ),
        Errno::ENOENT,
    );

    // A range that holds every area whole.
    let unmapped = s
        .unmap(
            base - 4 * PAGE_SIZE,
            3 * 16 * PAGE_SIZE + 8 * PAGE_SIZE + 4 * PAGE_SIZE,
        )
        .unwrap();
    assert_eq!(unmapped, 32 * PAGE_SIZE);
}

fn area_auto_iova(v: IoasVariant) {
    let s = IoasFixture::new(v);
    let buffer = s.f.buffer;
    let mut iovas = [0u64; 10];

    for iova in iovas.iter_mut() {
        *iova = s.map(buffer, PAGE_SIZE).unwrap();
    }
    for iova in iovas {
        s.unmap(iova, PAGE_SIZE).unwrap();
    }

    // IOVAs come aligned to the length.
    for (i, iova) in iovas.iter_mut().enumerate() {
        let length = PAGE_SIZE * (i as u64 + 1);
        *iova = if s.stdev_id != 0 {
            s.map(buffer, length).unwrap()
        } else {
            // Without a domain nothing is pinned, so any address will do.
            s.map(1 << 31, length).unwrap()
        };
        assert_eq!(*iova % lowest_bit(length), 0);
    }
    for (i, iova) in iovas.iter().enumerate() {
        s.unmap(*iova, PAGE_SIZE * (i as u64 + 1)).unwrap();
    }

    // A reserved region is avoided.
    let (rstart, rlen) = (PAGE_SIZE * 4, PAGE_SIZE * 100);
    s.f.add_reserved(s.ioas_id, rstart, rlen).unwrap();
    for (i, iova) in iovas.iter_mut().enumerate() {
        let length = PAGE_SIZE * (i as u64 + 1);
        *iova = s.map(buffer, length).unwrap();
        assert_eq!(*iova % lowest_bit(length), 0);
        assert!(!(*iova > rstart && *iova < rstart + rlen));
    }
    for (i, iova) in iovas.iter().enumerate() {
        s.unmap(*iova, PAGE_SIZE * (i as u64 + 1)).unwrap();
    }

    // An allowed range may not intersect a reserved one.
    let bad = IovaRange::new(PAGE_SIZE, PAGE_SIZE * 600);
    expect_errno(s.f.allow_iovas(s.ioas_id, &[bad]), Errno::EADDRINUSE);

    // Allocation stays inside the allowed range.
    let allowed = if s.stdev_id != 0 {
        IovaRange::new(
            MOCK_APERTURE_START + PAGE_SIZE,
            MOCK_APERTURE_START + PAGE_SIZE * 600 - 1,
        )
    } else {
        IovaRange::new(PAGE_SIZE * 200, PAGE_SIZE * 600 - 1)
    };
    s.f.allow_iovas(s.ioas_id, &[allowed]).unwrap();
    for (i, iova) in iovas.iter_mut().enumerate() {
        let length = PAGE_SIZE * (i as u64 + 1);
        *iova = s.map(buffer, length).unwrap();
        assert_eq!(*iova % lowest_bit(length), 0);
        assert!(*iova >= allowed.start);
        assert!(*iova <= allowed.last);
        assert!(*iova + length > allowed.start);
        assert!(*iova + length <= allowed.last + 1);
    }
    for (i, iova) in iovas.iter().enumerate() {
        s.unmap(*iova, PAGE_SIZE * (i as u64 + 1)).unwrap();
    }
}

/// Added in 6.16 for a syzbot report: a reserved range that leaves only a sliver
/// at the very top of the IOVA space must give ENOSPC, not an IOVA past the end.
fn reserved_overflow(v: IoasVariant) {
    let s = IoasFixture::new(v);
    s.f.add_reserved(s.ioas_id, 6, 0xffff_ffff_ffff_8001)
        .unwrap();
    expect_errno(s.map(s.f.buffer, 0x5000), Errno::ENOSPC);
}

fn area_allowed(v: IoasVariant) {
    let s = IoasFixture::new(v);
    let allowed = IovaRange::new(s.base_iova, s.base_iova + PAGE_SIZE * 600);
    let (rstart, rlen) = (allowed.start + PAGE_SIZE, PAGE_SIZE);

    // A reserved range may not intersect an allowed one.
    s.f.allow_iovas(s.ioas_id, &[allowed]).unwrap();
    expect_errno(s.f.add_reserved(s.ioas_id, rstart, rlen), Errno::EADDRINUSE);
    s.f.allow_iovas(s.ioas_id, &[]).unwrap();

    // Nor an allowed range a reserved one.
    s.f.add_reserved(s.ioas_id, rstart, rlen).unwrap();
    expect_errno(s.f.allow_iovas(s.ioas_id, &[allowed]), Errno::EADDRINUSE);
}

/// `IOMMU_IOAS_MAP_FIXED_IOVA | IOMMU_IOAS_MAP_WRITEABLE` (the copy's flags).
const COPY_FLAGS: MapFlags = MapFlags {
    readable: false,
    writeable: true,
};

fn copy_area(v: IoasVariant) {
    let s = IoasFixture::new(v);
    s.map_fixed(s.f.buffer, PAGE_SIZE, s.base_iova).unwrap();

    // Inside one IOAS.
    let iova = s.f.copy(
        s.ioas_id,
        s.ioas_id,
        s.base_iova,
        PAGE_SIZE,
        Some(s.base_iova + PAGE_SIZE),
        COPY_FLAGS,
    );
    assert_eq!(iova.unwrap(), s.base_iova + PAGE_SIZE);

    // Into another IOAS, at IOVA 0.
    let dst = s.f.ioas_alloc();
    assert_eq!(
        s.f.copy(dst, s.ioas_id, s.base_iova, PAGE_SIZE, Some(0), COPY_FLAGS)
            .unwrap(),
        0
    );
}

fn iova_ranges(v: IoasVariant) {
    let s = IoasFixture::new(v);
    let r = s.f.iova_ranges(s.ioas_id).unwrap();
    assert_eq!(r.ranges.len(), 1);
    if s.stdev_id == 0 {
        assert_eq!(r.ranges[0], IovaRange::new(0, u64::MAX));
        assert_eq!(r.alignment, 1);
    } else {
        assert_eq!(
            r.ranges[0],
            IovaRange::new(MOCK_APERTURE_START, MOCK_APERTURE_LAST)
        );
        assert_eq!(r.alignment, MOCK_PAGE_SIZE);
    }

    // Reserving a page splits the space in two; with a mock domain that page is
    // already outside the aperture, so nothing changes.
    s.f.add_reserved(s.ioas_id, PAGE_SIZE, PAGE_SIZE).unwrap();
    let r = s.f.iova_ranges(s.ioas_id).unwrap();
    if s.stdev_id == 0 {
        assert_eq!(
            r.ranges,
            vec![
                IovaRange::new(0, PAGE_SIZE - 1),
                IovaRange::new(PAGE_SIZE * 2, u64::MAX)
            ]
        );
    } else {
        assert_eq!(
            r.ranges,
            vec![IovaRange::new(MOCK_APERTURE_START, MOCK_APERTURE_LAST)]
        );
    }
}

fn access_domain_destory(v: IoasVariant) {
    let s = IoasFixture::new(v);
    // Two huge pages, mapped whole (MAP_HUGETLB: physically contiguous, 2 MiB aligned).
    let buf_size = 2 * HUGEPAGE_SIZE;
    let buf = s.f.mmap_aligned(buf_size);
    s.map_fixed(buf, buf_size, s.base_iova).unwrap();

    let access = s.f.create_access(s.ioas_id, NEEDS_PIN_PAGES).unwrap();
    let id =
        s.f.access_pages(
            &access,
            s.base_iova + PAGE_SIZE,
            PAGE_SIZE,
            buf + PAGE_SIZE,
            0,
        )
        .unwrap();

    // The domain goes while the access still pins one page inside a huge page.
    if s.stdev_id != 0 {
        s.f.destroy(s.stdev_id).unwrap();
    }

    s.f.destroy_access_pages(&access, id).unwrap();
    s.f.destroy_access(access);
    s.f.munmap(buf, buf_size);
}

fn access_pin(v: IoasVariant) {
    let s = IoasFixture::new(v);
    let buffer = s.f.buffer;
    let access = s.f.create_access(s.ioas_id, NEEDS_PIN_PAGES).unwrap();

    for npages in 1..BUFFER_SIZE / PAGE_SIZE {
        let length = npages * PAGE_SIZE;

        // Single map/unmap.
        s.map_fixed(buffer, BUFFER_SIZE, MOCK_APERTURE_START)
            .unwrap();
        let id =
            s.f.access_pages(&access, MOCK_APERTURE_START, length, buffer, 0)
                .unwrap();
        s.f.destroy_access_pages(&access, id).unwrap();

        // Two users of the same pages.
        let first =
            s.f.access_pages(&access, MOCK_APERTURE_START, length, buffer, 0)
                .unwrap();
        let second =
            s.f.access_pages(&access, MOCK_APERTURE_START, length, buffer, 0)
                .unwrap();
        s.f.destroy_access_pages(&access, second).unwrap();
        s.f.destroy_access_pages(&access, first).unwrap();

        // A domain comes and goes while an access pins.
        let id =
            s.f.access_pages(&access, MOCK_APERTURE_START, length, buffer, 0)
                .unwrap();
        let mock = s.f.mock_domain(s.ioas_id).unwrap();
        s.f.check_map(mock.hwpt_id, MOCK_APERTURE_START, BUFFER_SIZE, buffer)
            .unwrap();
        s.f.destroy(mock.stdev_id).unwrap();
        s.f.destroy_access_pages(&access, id).unwrap();

        s.unmap(MOCK_APERTURE_START, BUFFER_SIZE).unwrap();
    }
    s.f.destroy_access(access);
}

fn access_pin_unmap(v: IoasVariant) {
    let s = IoasFixture::new(v);
    let buffer = s.f.buffer;
    let access = s.f.create_access(s.ioas_id, NEEDS_PIN_PAGES).unwrap();
    s.map_fixed(buffer, BUFFER_SIZE, MOCK_APERTURE_START)
        .unwrap();
    let id =
        s.f.access_pages(&access, MOCK_APERTURE_START, BUFFER_SIZE, buffer, 0)
            .unwrap();

    // The unmap makes the access let go of its pins.
    s.unmap(MOCK_APERTURE_START, BUFFER_SIZE).unwrap();

    // So the item is gone.
    expect_errno(s.f.destroy_access_pages(&access, id), Errno::ENOENT);
}

/// The selftest's `check_access_rw`: reads and writes of every small length around
/// a page boundary, then one read of the whole buffer.
fn check_access_rw(
    f: &Fixture,
    access: &softiommu::iommufd::AccessHandle,
    iova: u64,
    def_flags: u32,
) {
    let mut rng = Rng::new(0x5eed ^ iova ^ def_flags as u64);
    let mut data = vec![0u8; BUFFER_SIZE as usize];
    rng.fill(&mut data);
    f.write(f.buffer, &data);
    let tmp = f.mmap(PAGE_SIZE);
    const TMP_LEN: u64 = 64;

    for at in iova + PAGE_SIZE - 50..iova + PAGE_SIZE + 50 {
        for length in 1..TMP_LEN {
            f.access_rw(access, at, tmp, length, def_flags).unwrap();
            assert_eq!(f.read(f.buffer + (at - iova), length), f.read(tmp, length));

            let mut fresh = vec![0u8; TMP_LEN as usize];
            rng.fill(&mut fresh);
            f.write(tmp, &fresh);
            f.access_rw(access, at, tmp, length, def_flags | ACCESS_WRITE)
                .unwrap();
            assert_eq!(f.read(f.buffer + (at - iova), length), f.read(tmp, length));
        }
    }

    // Many pages at once.
    let tmp2 = f.mmap(BUFFER_SIZE);
    f.access_rw(access, iova, tmp2, BUFFER_SIZE, def_flags)
        .unwrap();
    assert_eq!(f.read(f.buffer, BUFFER_SIZE), f.read(tmp2, BUFFER_SIZE));
    f.munmap(tmp2, BUFFER_SIZE);
    f.munmap(tmp, PAGE_SIZE);
}

fn access_rw(v: IoasVariant) {
    let s = IoasFixture::new(v);
    let access = s.f.create_access(s.ioas_id, 0).unwrap();
    let iova = s.map(s.f.buffer, BUFFER_SIZE).unwrap();
    check_access_rw(&s.f, &access, iova, 0);
    check_access_rw(&s.f, &access, iova, ACCESS_RW_SLOW_PATH);
    s.unmap(iova, BUFFER_SIZE).unwrap();
    s.f.destroy_access(access);
}

fn access_rw_unaligned(v: IoasVariant) {
    let s = IoasFixture::new(v);
    let access = s.f.create_access(s.ioas_id, 0).unwrap();
    // IOVA and memory differ in their offset within a page.
    let iova = s.base_iova + MOCK_PAGE_SIZE;
    s.map_fixed(s.f.buffer, BUFFER_SIZE, iova).unwrap();
    check_access_rw(&s.f, &access, iova, 0);
    s.unmap(iova, BUFFER_SIZE).unwrap();
    s.f.destroy_access(access);
}

fn ioas_option_huge_pages(v: IoasVariant) {
    let s = IoasFixture::new(v);
    let opt = |op, val| s.f.option(IOMMU_OPTION_HUGE_PAGES, op, s.ioas_id, val);
    assert_eq!(opt(IOMMU_OPTION_OP_GET, 3).unwrap(), 1);
    opt(IOMMU_OPTION_OP_SET, 0).unwrap();
    assert_eq!(opt(IOMMU_OPTION_OP_GET, 3).unwrap(), 0);
    expect_errno(opt(IOMMU_OPTION_OP_SET, 2), Errno::EINVAL);
    opt(IOMMU_OPTION_OP_SET, 1).unwrap();
    assert_eq!(opt(IOMMU_OPTION_OP_GET, 3).unwrap(), 1);
}

fn ioas_iova_alloc(v: IoasVariant) {
    let s = IoasFixture::new(v);
    for length in 1..PAGE_SIZE * 2 {
        if v.mock_domains() != 0 && length % MOCK_PAGE_SIZE != 0 {
            expect_errno(s.map(s.f.buffer, length), Errno::EINVAL);
        } else {
            let iova = s.map(s.f.buffer, length).unwrap();
            assert_eq!(s.unmap(iova, length).unwrap(), length);
        }
    }
}

fn ioas_align_change(v: IoasVariant) {
    let s = IoasFixture::new(v);
    // With a domain and a mapping the alignment cannot be raised.
    if v.mock_domains() != 0 {
        return;
    }
    let buffer = s.f.buffer;
    let set = |val| {
        s.f.option(IOMMU_OPTION_HUGE_PAGES, IOMMU_OPTION_OP_SET, s.ioas_id, val)
    };

    // Raising it to PAGE_SIZE works when everything is aligned.
    s.map_fixed(buffer, PAGE_SIZE, MOCK_APERTURE_START).unwrap();
    set(0).unwrap();

    // Then a misaligned map fails.
    expect_errno(
        s.map_fixed(
            buffer + MOCK_PAGE_SIZE,
            PAGE_SIZE,
            MOCK_APERTURE_START + PAGE_SIZE,
        ),
        Errno::EINVAL,
    );
    set(0).unwrap();

    // Lower it again.
    set(1).unwrap();

    // A misaligned mapping stops it from being raised.
    s.map_fixed(
        buffer + MOCK_PAGE_SIZE,
        PAGE_SIZE,
        MOCK_APERTURE_START + PAGE_SIZE,
    )
    .unwrap();
    expect_errno(set(0), Errno::EADDRINUSE);

    s.unmap(MOCK_APERTURE_START + PAGE_SIZE, PAGE_SIZE).unwrap();
    s.unmap(MOCK_APERTURE_START, PAGE_SIZE).unwrap();
}

fn copy_sweep(v: IoasVariant) {
    let s = IoasFixture::new(v);
    let dst = s.f.ioas_alloc();
    let length = MOCK_PAGE_SIZE;
    let last_iova = if v.mock_domains() != 0 {
        MOCK_APERTURE_START + BUFFER_SIZE - 1
    } else {
        MOCK_APERTURE_START + BUFFER_SIZE - 2
    };
    s.map_fixed(
        s.f.buffer,
        last_iova - MOCK_APERTURE_START + 1,
        MOCK_APERTURE_START,
    )
    .unwrap();

    let mut iova = MOCK_APERTURE_START - PAGE_SIZE;
    while iova <= last_iova {
        let r = s.f.copy(
            dst,
            s.ioas_id,
            iova,
            length,
            Some(MOCK_APERTURE_START),
            COPY_FLAGS,
        );
        if iova < MOCK_APERTURE_START || iova + length - 1 > last_iova {
            expect_errno(r, Errno::ENOENT);
        } else {
            assert_eq!(r.unwrap(), MOCK_APERTURE_START);
            s.f.unmap(dst, MOCK_APERTURE_START, length).unwrap();
        }
        iova += 511;
    }
    s.f.destroy(dst).unwrap();
}

macro_rules! per_variant {
    ($($test:ident),* $(,)?) => {
        per_variant!(@variant no_domain, NoDomain, $($test),*);
        per_variant!(@variant mock_domain, MockDomain, $($test),*);
        per_variant!(@variant two_mock_domain, TwoMockDomain, $($test),*);
        per_variant!(@variant mock_domain_limit, MockDomainLimit, $($test),*);
    };
    (@variant $module:ident, $variant:ident, $($test:ident),*) => {
        mod $module {
            $(
                #[test]
                fn $test() {
                    super::$test(super::IoasVariant::$variant);
                }
            )*
        }
    };
}

per_variant!(
    ioas_auto_destroy,
    ioas_destroy,
    hwpt_attach,
    ioas_area_destroy,
    ioas_area_auto_destroy,
    area,
    unmap_fully_contained_areas,
    area_auto_iova,
    reserved_overflow,
    area_allowed,
    copy_area,
    iova_ranges,
    access_domain_destory,
    access_pin,
    access_pin_unmap,
    access_rw,
    access_rw_unaligned,
    ioas_option_huge_pages,
    ioas_iova_alloc,
    ioas_align_change,
    copy_sweep,
);
