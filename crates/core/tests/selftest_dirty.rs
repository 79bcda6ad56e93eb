//! Dirty tracking of paging HWPTs on the mock IOMMU (the kernel selftest's
//! `iommufd_dirty_tracking` fixture, over simulated memory): the selftest's
//! `DIRTY` op marks IO pages, `IOMMU_HWPT_GET_DIRTY_BITMAP` reports them in the
//! caller's bitmap, and every step runs the consistency checker.

mod common;

use common::*;
use softiommu::iommu::mock::MockDomain;
use softiommu::mem::AddressSpace;
use softiommu::uapi::iommufd::IOMMU_HWPT_ALLOC_DIRTY_TRACKING;
use softiommu::uapi::test::MOCK_FLAGS_DEVICE_HUGE_IOVA;
use softiommu::uapi::Errno;

const HUGE: u64 = 1 << 20;

/// An IOAS with `len` bytes of aligned memory mapped at `MOCK_APERTURE_START`
/// and a dirty-tracking HWPT on it for a mock device with `dev_flags`.
struct Dirty {
    f: Fixture,
    hwpt: u32,
    iova: u64,
    len: u64,
    /// A bitmap buffer, big enough for `len` at 2 KiB per bit.
    bitmap: u64,
}

impl Dirty {
    fn new(len: u64, dev_flags: u32) -> Dirty {
        let f = Fixture::new();
        let ioas = f.ioas_alloc();
        let buf = f.mmap_aligned(len);
        // Simulated memory is not physically 1 MiB aligned: give the IOVA the
        // same offset in its megabyte, so that huge IOPTEs can be used.
        let mut runs = Vec::new();
        f.space.resolve(buf, 1, false, &mut runs).unwrap();
        let iova = MOCK_APERTURE_START + runs[0].phys % HUGE;
        let iova = f.map_fixed(ioas, buf, len, iova).unwrap();
        let ids = f.mock_domain_flags(ioas, dev_flags).unwrap();
        let hwpt = f
            .hwpt_alloc(ids.idev_id, ioas, IOMMU_HWPT_ALLOC_DIRTY_TRACKING)
            .unwrap();
        let bitmap = f.mmap(
            (len / MOCK_PAGE_SIZE / 8)
                .max(8)
                .next_multiple_of(PAGE_SIZE),
        );
        Dirty {
            f,
            hwpt,
            iova,
            len,
            bitmap,
        }
    }

    fn nbits(&self, page_size: u64) -> u64 {
        self.len / page_size
    }

    fn write_bits(&self, bits: &[u64], nbits: u64) {
        let mut bytes = vec![0u8; nbits.div_ceil(8) as usize];
        for &b in bits {
            bytes[(b / 8) as usize] |= 1 << (b % 8);
        }
        self.f.write(self.bitmap, &bytes);
    }

    fn read_bits(&self, nbits: u64) -> Vec<u64> {
        let bytes = self.f.read(self.bitmap, nbits.div_ceil(8));
        (0..nbits)
            .filter(|&i| bytes[(i / 8) as usize] & (1 << (i % 8)) != 0)
            .collect()
    }

    /// Marks the IO pages `pages` (indexes from `iova`) dirty; returns the count.
    fn mark(&self, pages: &[u64]) -> u64 {
        let n = self.nbits(MOCK_PAGE_SIZE);
        self.write_bits(pages, n);
        self.f
            .mock_dirty(self.hwpt, self.iova, self.len, MOCK_PAGE_SIZE, self.bitmap)
            .unwrap()
    }

    /// Reads the dirty bitmap at `page_size` into a zeroed bitmap.
    fn get(&self, page_size: u64, no_clear: bool) -> Vec<u64> {
        let n = self.nbits(page_size);
        self.write_bits(&[], n);
        self.f
            .get_dirty_bitmap(
                self.hwpt,
                self.iova,
                self.len,
                page_size,
                no_clear,
                self.bitmap,
            )
            .unwrap();
        self.read_bits(n)
    }
}

#[test]
fn small_pages_report_marked_pages() {
    let d = Dirty::new(64 * PAGE_SIZE, 0);
    // Tracking off: neither marking nor reading works.
    expect_errno(
        d.f.mock_dirty(d.hwpt, d.iova, d.len, MOCK_PAGE_SIZE, d.bitmap),
        Errno::EINVAL,
    );
    expect_errno(
        d.f.get_dirty_bitmap(d.hwpt, d.iova, d.len, MOCK_PAGE_SIZE, false, d.bitmap),
        Errno::EINVAL,
    );
    d.f.set_dirty_tracking(d.hwpt, true).unwrap();
    let marked = [0, 1, 7, 8, 63, 100, 127];
    assert_eq!(d.mark(&marked), marked.len() as u64);
    // NO_CLEAR reports and keeps them; a plain read reports and clears.
    assert_eq!(d.get(MOCK_PAGE_SIZE, true), marked);
    assert_eq!(d.get(MOCK_PAGE_SIZE, false), marked);
    assert_eq!(d.get(MOCK_PAGE_SIZE, false), Vec::<u64>::new());
    // At CPU-page granularity, two IO pages fold into one bit.
    d.mark(&marked);
    assert_eq!(d.get(PAGE_SIZE, false), vec![0, 3, 4, 31, 50, 63]);
}

#[test]
fn bits_are_ored_into_the_callers_bitmap() {
    let d = Dirty::new(16 * PAGE_SIZE, 0);
    d.f.set_dirty_tracking(d.hwpt, true).unwrap();
    d.mark(&[3]);
    let n = d.nbits(MOCK_PAGE_SIZE);
    d.write_bits(&[5, 30], n);
    d.f.get_dirty_bitmap(d.hwpt, d.iova, d.len, MOCK_PAGE_SIZE, false, d.bitmap)
        .unwrap();
    assert_eq!(d.read_bits(n), vec![3, 5, 30]);
}

#[test]
fn enabling_clears_and_unmap_drops_dirty_bits() {
    let d = Dirty::new(16 * PAGE_SIZE, 0);
    d.f.set_dirty_tracking(d.hwpt, true).unwrap();
    d.mark(&[2, 9]);
    // Disabling keeps the bits; enabling again starts from a clean snapshot.
    d.f.set_dirty_tracking(d.hwpt, false).unwrap();
    d.f.set_dirty_tracking(d.hwpt, true).unwrap();
    assert_eq!(d.get(MOCK_PAGE_SIZE, true), Vec::<u64>::new());
    d.mark(&[2, 9]);
    let mock_dirty = |d: &Dirty| {
        let hwpt = d.f.ctx().get_hwpt_paging(d.hwpt).unwrap();
        let mock = hwpt.domain.as_any().downcast_ref::<MockDomain>().unwrap();
        mock.dirty_pages()
    };
    let base = d.iova / MOCK_PAGE_SIZE;
    assert_eq!(mock_dirty(&d), vec![base + 2, base + 9]);
    let ioas = d.f.ctx().get_hwpt_paging(d.hwpt).unwrap().ioas.id;
    d.f.unmap(ioas, d.iova, d.len).unwrap();
    assert_eq!(mock_dirty(&d), Vec::<u64>::new());
}

#[test]
fn huge_iopte_reports_its_whole_megabyte() {
    let d = Dirty::new(3 * HUGE, MOCK_FLAGS_DEVICE_HUGE_IOVA);
    let hwpt = d.f.ctx().get_hwpt_paging(d.hwpt).unwrap();
    let mock = hwpt.domain.as_any().downcast_ref::<MockDomain>().unwrap();
    // The huge IOPTE in the middle of the mapping.
    let (huge, _) = mock
        .extents()
        .into_iter()
        .find(|(_, e)| e.pgsize == HUGE)
        .expect("a huge IOPTE");
    d.f.set_dirty_tracking(d.hwpt, true).unwrap();
    let first = (huge.start - d.iova) / MOCK_PAGE_SIZE;
    let per_huge = HUGE / MOCK_PAGE_SIZE;
    // One IO page inside it, and one small page elsewhere (if any).
    let small = mock
        .extents()
        .into_iter()
        .find(|(_, e)| e.pgsize == MOCK_PAGE_SIZE)
        .map(|(r, _)| (r.start - d.iova) / MOCK_PAGE_SIZE);
    let mut marks = vec![first + 17];
    marks.extend(small);
    assert_eq!(d.mark(&marks), marks.len() as u64);
    let mut want: Vec<u64> = (first..first + per_huge).collect();
    want.extend(small);
    want.sort();
    assert_eq!(d.get(MOCK_PAGE_SIZE, true), want);
    assert_eq!(d.get(MOCK_PAGE_SIZE, false), want);
    assert_eq!(d.get(MOCK_PAGE_SIZE, false), Vec::<u64>::new());
}

#[test]
fn range_and_object_errors() {
    let d = Dirty::new(16 * PAGE_SIZE, 0);
    let (hwpt, iova, len, bm) = (d.hwpt, d.iova, d.len, d.bitmap);
    let f = &d.f;
    expect_errno(f.set_dirty_tracking(999, true), Errno::ENOENT);
    expect_errno(
        f.get_dirty_bitmap(999, iova, len, MOCK_PAGE_SIZE, false, bm),
        Errno::ENOENT,
    );
    f.set_dirty_tracking(hwpt, true).unwrap();
    let get = |iova, len, page_size| f.get_dirty_bitmap(hwpt, iova, len, page_size, false, bm);
    expect_errno(get(iova, len, 0), Errno::EINVAL);
    expect_errno(get(iova + 1, len, MOCK_PAGE_SIZE), Errno::EINVAL);
    expect_errno(get(iova, len - 1, MOCK_PAGE_SIZE), Errno::EINVAL);
    expect_errno(get(iova + PAGE_SIZE / 2, len, PAGE_SIZE), Errno::EINVAL);
    expect_errno(get(u64::MAX - 2047, 4096, MOCK_PAGE_SIZE), Errno::EOVERFLOW);
    // Past the mapping: not fully mapped.
    expect_errno(get(iova, 2 * len, MOCK_PAGE_SIZE), Errno::EINVAL);
    expect_errno(get(iova - len, len, MOCK_PAGE_SIZE), Errno::EINVAL);
    get(iova, len, MOCK_PAGE_SIZE).unwrap();
    // The selftest op's own checks.
    for (i, l, p, u) in [
        (iova, len, 0, bm),
        (iova, 0, MOCK_PAGE_SIZE, bm),
        (iova + 1, len, MOCK_PAGE_SIZE, bm),
        (iova, len + 1, MOCK_PAGE_SIZE, bm),
        (iova, len, MOCK_PAGE_SIZE, 0),
    ] {
        expect_errno(f.mock_dirty(hwpt, i, l, p, u), Errno::EINVAL);
    }
    // A HWPT without dirty tracking.
    let ioas = f.ctx().get_hwpt_paging(hwpt).unwrap().ioas.id;
    let plain = f.mock_domain(ioas).unwrap().hwpt_id;
    expect_errno(f.set_dirty_tracking(plain, true), Errno::EOPNOTSUPP);
    expect_errno(
        f.get_dirty_bitmap(plain, iova, len, MOCK_PAGE_SIZE, false, bm),
        Errno::EOPNOTSUPP,
    );
}
