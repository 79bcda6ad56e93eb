//! Ports of the kernel selftest's `iommufd_mock_domain` fixture
//! (`tools/testing/selftests/iommu/iommufd.c`, Linux 6.12–6.17): an IOAS with one or
//! two mock domains, in the variants `one_domain`, `two_domains`,
//! `one_domain_hugepage` and `two_domains_hugepage`, plus the memfd variants
//! `one_domain_file` and `one_domain_file_hugepage` that 6.13 added with
//! `IOMMU_IOAS_MAP_FILE`. The hugepage variants use a 2 MiB aligned buffer; in
//! simulated memory every mapping is physically contiguous, so that is all a
//! `MAP_HUGETLB` mapping changes. Each kernel test is a function taking the variant;
//! the macro at the end makes one `#[test]` per variant, named
//! `<variant>::<kernel test name>`.
//!
//! `alloc_hwpt` covers the paging HWPTs of `IOMMU_HWPT_ALLOC`; nested ones are in
//! `selftest_nested.rs`.

mod common;

use common::*;
use softiommu::iommufd::MapFlags;
use softiommu::uapi::iommufd::IOMMU_HWPT_ALLOC_NEST_PARENT;
use softiommu::uapi::Errno;

fn basic(v: MockDomainVariant) {
    let s = MockDomainFixture::new(v);
    let f = &s.f;
    let buf_size = s.mmap_buf_size;
    if v.file {
        // One page of the memfd; the check compares with its other mapping.
        let iova = f.map_file(s.ioas_id, &f.mfd, 0, PAGE_SIZE, None).unwrap();
        s.check_mock_iova(f.mfd_buffer, iova, PAGE_SIZE);

        let (tmp, _buf) = f.memfd_mmap(buf_size, v.hugepages);
        // Past the end of the file.
        expect_errno(
            f.map_file(s.ioas_id, &tmp, 0, buf_size + 1, None),
            Errno::EINVAL,
        );
        // An empty file.
        tmp.truncate(0).unwrap();
        expect_errno(
            f.map_file(s.ioas_id, &tmp, 0, buf_size, None),
            Errno::EINVAL,
        );
    } else {
        let iova = f.map(s.ioas_id, f.buffer, PAGE_SIZE).unwrap();
        s.check_mock_iova(f.buffer, iova, PAGE_SIZE);

        let buf = s.mmap_buf();
        // EFAULT half way through the mapping.
        f.munmap(buf + buf_size / 2, buf_size / 2);
        expect_errno(f.map(s.ioas_id, buf, buf_size), Errno::EFAULT);
        // EFAULT on the first page.
        f.munmap(buf, buf_size / 2);
        expect_errno(f.map(s.ioas_id, buf, buf_size), Errno::EFAULT);
    }
}

/// The kernel maps a private file page readable, writes to it and checks that the
/// domain still maps the page the program sees: GUP must have unshared it when it
/// pinned. Simulated memory has no copy-on-write, so this checks that a write
/// through the program's mapping leaves the mapping and the domain agreeing.
fn ro_unshare(v: MockDomainVariant) {
    let s = MockDomainFixture::new(v);
    let f = &s.f;
    let buf = f.mmap(PAGE_SIZE);
    let iova = f
        .map_flags(s.ioas_id, buf, PAGE_SIZE, None, MapFlags::RO)
        .unwrap();
    s.check_mock_iova(buf, iova, PAGE_SIZE);
    f.write(buf, &[1u8; PAGE_SIZE as usize]);
    s.check_mock_iova(buf, iova, PAGE_SIZE);
    f.munmap(buf, PAGE_SIZE);
}

/// A buffer for the all_aligns tests: a new memfd or new anonymous memory.
fn aligns_buffer(
    s: &MockDomainFixture,
) -> (Option<std::sync::Arc<softiommu::mem::sim::SimFile>>, u64) {
    if s.variant.file {
        let (file, buf) = s.f.memfd_mmap(s.mmap_buf_size, s.variant.hugepages);
        (Some(file), buf)
    } else {
        (None, s.mmap_buf())
    }
}

/// Every (start, end) pair the all_aligns tests map: every IO-page aligned
/// start and length, fewer for the hugepage variants (which, as in the kernel,
/// start `end` at the buffer's size and so map nothing).
fn aligns(s: &MockDomainFixture) -> Vec<(u64, u64)> {
    let buf_size = s.mmap_buf_size;
    let test_step = if s.variant.hugepages {
        buf_size / 16
    } else {
        MOCK_PAGE_SIZE
    };
    let mut out = Vec::new();
    let mut start = 0;
    while start < buf_size {
        let mut end = if s.variant.hugepages {
            buf_size
        } else {
            start + MOCK_PAGE_SIZE
        };
        while end < buf_size {
            out.push((start, end));
            end += MOCK_PAGE_SIZE;
        }
        start += test_step;
    }
    out
}

fn page_down(x: u64) -> u64 {
    x / PAGE_SIZE * PAGE_SIZE
}

fn all_aligns(v: MockDomainVariant) {
    let s = MockDomainFixture::new(v);
    let f = &s.f;
    let (file, buf) = aligns_buffer(&s);
    f.check_refs(buf, s.mmap_buf_size, 0).unwrap();

    for (start, end) in aligns(&s) {
        let length = end - start;
        let iova = match &file {
            Some(file) => f.map_file(s.ioas_id, file, start, length, None).unwrap(),
            None => f.map(s.ioas_id, buf + start, length).unwrap(),
        };
        s.check_mock_iova(buf + start, iova, length);
        f.check_refs(buf + page_down(start), page_down(end) - page_down(start), 1)
            .unwrap();
        assert_eq!(f.unmap(s.ioas_id, iova, length).unwrap(), length);
    }
    f.check_refs(buf, s.mmap_buf_size, 0).unwrap();
    f.munmap(buf, s.mmap_buf_size);
}

fn all_aligns_copy(v: MockDomainVariant) {
    let mut s = MockDomainFixture::new(v);
    let (file, buf) = aligns_buffer(&s);
    s.f.check_refs(buf, s.mmap_buf_size, 0).unwrap();

    for (start, end) in aligns(&s) {
        let length = end - start;
        let iova = match &file {
            Some(file) => s.f.map_file(s.ioas_id, file, start, length, None).unwrap(),
            None => s.f.map(s.ioas_id, buf + start, length).unwrap(),
        };

        // A domain comes and goes while the area exists.
        let old_id = s.hwpt_ids[1];
        let mock = s.f.mock_domain(s.ioas_id).unwrap();
        s.hwpt_ids[1] = mock.hwpt_id;

        s.check_mock_iova(buf + start, iova, length);
        s.f.check_refs(buf + page_down(start), page_down(end) - page_down(start), 1)
            .unwrap();

        s.f.destroy(mock.stdev_id).unwrap();
        s.hwpt_ids[1] = old_id;

        s.f.unmap(s.ioas_id, iova, length).unwrap();
    }
    s.f.check_refs(buf, s.mmap_buf_size, 0).unwrap();
    s.f.munmap(buf, s.mmap_buf_size);
}

fn user_copy(v: MockDomainVariant) {
    let s = MockDomainFixture::new(v);
    let f = &s.f;
    let buf = if v.file { f.mfd_buffer } else { f.buffer };
    let map_src = |ioas| {
        if v.file {
            f.map_file(ioas, &f.mfd, 0, BUFFER_SIZE, None).unwrap()
        } else {
            f.map(ioas, buf, BUFFER_SIZE).unwrap()
        }
    };
    // `IOMMU_IOAS_MAP_FIXED_IOVA | IOMMU_IOAS_MAP_WRITEABLE`.
    let copy_flags = MapFlags {
        readable: false,
        writeable: true,
    };

    // Pin the pages in an IOAS without domains, then copy them into one with.
    let ioas_id = f.ioas_alloc();
    let src_iova = map_src(ioas_id);
    let access = f.create_access(ioas_id, NEEDS_PIN_PAGES).unwrap();
    f.access_pages(&access, src_iova, BUFFER_SIZE, buf, 0)
        .unwrap();
    let iova = f.copy(
        s.ioas_id,
        ioas_id,
        src_iova,
        BUFFER_SIZE,
        Some(MOCK_APERTURE_START),
        copy_flags,
    );
    assert_eq!(iova.unwrap(), MOCK_APERTURE_START);
    s.check_mock_iova(buf, MOCK_APERTURE_START, BUFFER_SIZE);

    // Move the access to a new IOAS.
    let new_ioas_id = f.ioas_alloc();
    let src_iova = map_src(new_ioas_id);
    f.access_replace_ioas(&access, new_ioas_id).unwrap();

    // The old IOAS and the copy go.
    assert_eq!(
        f.unmap(s.ioas_id, MOCK_APERTURE_START, BUFFER_SIZE)
            .unwrap(),
        BUFFER_SIZE
    );
    f.destroy(ioas_id).unwrap();

    // Again with the new IOAS.
    let id = f
        .access_pages(&access, src_iova, BUFFER_SIZE, buf, 0)
        .unwrap();
    let iova = f.copy(
        s.ioas_id,
        new_ioas_id,
        src_iova,
        BUFFER_SIZE,
        Some(MOCK_APERTURE_START),
        copy_flags,
    );
    assert_eq!(iova.unwrap(), MOCK_APERTURE_START);
    s.check_mock_iova(buf, MOCK_APERTURE_START, BUFFER_SIZE);

    f.destroy_access_pages(&access, id).unwrap();
    f.destroy_access(access);
    f.destroy(new_ioas_id).unwrap();
}

fn replace(v: MockDomainVariant) {
    let s = MockDomainFixture::new(v);
    let f = &s.f;
    let ioas_id = f.ioas_alloc();

    f.mock_domain_replace(s.stdev_ids[0], ioas_id).unwrap();

    // Leaving the IOAS freed its automatic HWPT when no other device used it.
    if v.mock_domains == 1 {
        expect_errno(
            f.mock_domain_replace(s.stdev_ids[0], s.hwpt_ids[0]),
            Errno::ENOENT,
        );
    }

    f.mock_domain_replace(s.stdev_ids[0], ioas_id).unwrap();
    if v.mock_domains >= 2 {
        f.mock_domain_replace(s.stdev_ids[0], s.hwpt_ids[1])
            .unwrap();
        f.mock_domain_replace(s.stdev_ids[0], s.hwpt_ids[1])
            .unwrap();
        f.mock_domain_replace(s.stdev_ids[0], s.hwpt_ids[0])
            .unwrap();
    }

    f.mock_domain_replace(s.stdev_ids[0], s.ioas_id).unwrap();
    f.destroy(ioas_id).unwrap();
}

/// `alloc_hwpt`: explicit paging HWPTs (plain and nesting parent) on the IOAS,
/// the device rotated through them, EBUSY while attached, and a new device
/// attached straight to a HWPT.
fn alloc_hwpt(v: MockDomainVariant) {
    let s = MockDomainFixture::new(v);
    let f = &s.f;
    for i in 0..v.mock_domains {
        expect_errno(
            f.hwpt_alloc(s.idev_ids[i], s.ioas_id, !IOMMU_HWPT_ALLOC_NEST_PARENT),
            Errno::EOPNOTSUPP,
        );
        let plain = f.hwpt_alloc(s.idev_ids[i], s.ioas_id, 0).unwrap();
        let parent = f
            .hwpt_alloc(s.idev_ids[i], s.ioas_id, IOMMU_HWPT_ALLOC_NEST_PARENT)
            .unwrap();

        // Rotate the device through them.
        assert_eq!(f.mock_domain_replace(s.stdev_ids[i], plain).unwrap(), plain);
        expect_errno(f.destroy(plain), Errno::EBUSY);
        assert_eq!(
            f.mock_domain_replace(s.stdev_ids[i], parent).unwrap(),
            parent
        );
        expect_errno(f.destroy(parent), Errno::EBUSY);
        f.mock_domain_replace(s.stdev_ids[i], s.ioas_id).unwrap();
        f.destroy(parent).unwrap();

        let ids = f.mock_domain(plain).unwrap();
        assert_eq!(ids.hwpt_id, plain);
        f.destroy(ids.stdev_id).unwrap();
        f.destroy(plain).unwrap();
    }
}

macro_rules! per_variant {
    ($($test:ident),* $(,)?) => {
        per_variant!(@variant one_domain, ONE_DOMAIN, $($test),*);
        per_variant!(@variant two_domains, TWO_DOMAINS, $($test),*);
        per_variant!(@variant one_domain_hugepage, ONE_DOMAIN_HUGEPAGE, $($test),*);
        per_variant!(@variant two_domains_hugepage, TWO_DOMAINS_HUGEPAGE, $($test),*);
        per_variant!(@variant one_domain_file, ONE_DOMAIN_FILE, $($test),*);
        per_variant!(@variant one_domain_file_hugepage, ONE_DOMAIN_FILE_HUGEPAGE, $($test),*);
    };
    (@variant $module:ident, $variant:ident, $($test:ident),*) => {
        mod $module {
            $(
                #[test]
                fn $test() {
                    super::$test(super::$variant);
                }
            )*
        }
    };
}

per_variant!(
    basic,
    ro_unshare,
    all_aligns,
    all_aligns_copy,
    user_copy,
    replace,
    alloc_hwpt
);
