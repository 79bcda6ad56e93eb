/* SPDX-License-Identifier: MIT */
/*
 * The IOAS ioctls on their success paths: IOMMU_IOAS_ALLOC, IOMMU_DESTROY,
 * IOMMU_IOAS_IOVA_RANGES, IOMMU_IOAS_ALLOW_IOVAS, IOMMU_IOAS_MAP (kernel-chosen
 * and fixed IOVA), IOMMU_IOAS_COPY and IOMMU_IOAS_UNMAP (one area and all).
 */
#include "ctest.h"

int main(void)
{
	size_t ps = page_size();
	size_t len = 16 * ps;
	struct iommu_iova_range ranges[8];
	uint32_t ioas, ioas2, stdev, hwpt, stdev2, hwpt2, num;
	uint64_t align, iova, iova2, fixed, copied, unmapped;
	int fd = iommufd_open();
	char *buf = alloc_buffer(len);

	memset(buf, 0x5a, len);

	/* IOAS_ALLOC: IDs are non-zero and distinct. */
	REQUIRE_OK(ioas_alloc(fd, &ioas));
	REQUIRE_OK(ioas_alloc(fd, &ioas2));
	CHECK(ioas != 0);
	CHECK(ioas2 != 0 && ioas2 != ioas);

	/* IOVA_RANGES without a device: all of the 64-bit space, alignment 1. */
	if (CHECK_OK(iova_ranges(fd, ioas, ranges, 8, &num, &align))) {
		CHECK_EQ(1, num);
		CHECK_EQ(0, ranges[0].start);
		CHECK_EQ(UINT64_MAX, ranges[0].last);
		CHECK_EQ(1, align);
	}

	/* A mock device narrows it to the mock aperture and IO page size. */
	REQUIRE_OK(mock_domain(fd, ioas, &stdev, &hwpt, NULL));
	CHECK(stdev != 0 && hwpt != 0 && stdev != hwpt);
	if (CHECK_OK(iova_ranges(fd, ioas, ranges, 8, &num, &align))) {
		CHECK_EQ(1, num);
		CHECK_EQ(MOCK_APERTURE_START, ranges[0].start);
		CHECK_EQ(MOCK_APERTURE_LAST, ranges[0].last);
		CHECK_EQ(MOCK_PAGE_SIZE, align);
	}

	/* IOAS_MAP with a kernel-chosen IOVA inside the aperture. */
	if (CHECK_OK(ioas_map(fd, ioas, buf, len, &iova, false))) {
		CHECK(iova >= MOCK_APERTURE_START);
		CHECK(iova + len - 1 <= MOCK_APERTURE_LAST);
		CHECK_EQ(0, iova % ps);
		CHECK_OK(check_map(fd, hwpt, iova, buf, len));
		CHECK_OK(check_refs(fd, buf, len, 1));
	}

	/* IOAS_MAP at a fixed IOVA: the same pages, pinned once more. */
	fixed = MOCK_APERTURE_START + 64 * ps;
	iova2 = fixed;
	if (CHECK_OK(ioas_map(fd, ioas, buf, ps, &iova2, true))) {
		CHECK_EQ(fixed, iova2);
		CHECK_OK(check_map(fd, hwpt, fixed, buf, ps));
	}

	/* IOAS_COPY to a second IOAS with its own device. */
	REQUIRE_OK(mock_domain(fd, ioas2, &stdev2, &hwpt2, NULL));
	{
		struct iommu_ioas_copy cmd = {
			.size = sizeof(cmd),
			.flags = IOMMU_IOAS_MAP_READABLE |
				 IOMMU_IOAS_MAP_WRITEABLE,
			.dst_ioas_id = ioas2,
			.src_ioas_id = ioas,
			.length = len,
			.src_iova = iova,
		};

		if (CHECK_OK(ioctl(fd, IOMMU_IOAS_COPY, &cmd))) {
			copied = cmd.dst_iova;
			CHECK(copied >= MOCK_APERTURE_START);
			CHECK_OK(check_map(fd, hwpt2, copied, buf, len));
		}
		/* A fixed destination. */
		cmd.flags |= IOMMU_IOAS_MAP_FIXED_IOVA;
		cmd.dst_iova = MOCK_APERTURE_START + 256 * ps;
		cmd.length = ps;
		if (CHECK_OK(ioctl(fd, IOMMU_IOAS_COPY, &cmd))) {
			CHECK_EQ(MOCK_APERTURE_START + 256 * ps, cmd.dst_iova);
			CHECK_OK(check_map(fd, hwpt2, cmd.dst_iova, buf, ps));
		}
	}

	/* ALLOW_IOVAS: automatic IOVAs come from the allowed range only. */
	{
		struct iommu_iova_range allowed = {
			.start = MOCK_APERTURE_START + 1024 * ps,
			.last = MOCK_APERTURE_START + 2048 * ps - 1,
		};
		struct iommu_ioas_allow_iovas cmd = {
			.size = sizeof(cmd),
			.ioas_id = ioas,
			.num_iovas = 1,
			.allowed_iovas = (uintptr_t)&allowed,
		};
		uint64_t a;

		if (CHECK_OK(ioctl(fd, IOMMU_IOAS_ALLOW_IOVAS, &cmd)) &&
		    CHECK_OK(ioas_map(fd, ioas, buf, ps, &a, false))) {
			CHECK(a >= allowed.start && a + ps - 1 <= allowed.last);
			CHECK_OK(ioas_unmap(fd, ioas, a, ps, NULL));
		}
		/* An empty list allows everything again. */
		cmd.num_iovas = 0;
		CHECK_OK(ioctl(fd, IOMMU_IOAS_ALLOW_IOVAS, &cmd));
	}

	/* IOAS_UNMAP of one area reports its length. */
	if (CHECK_OK(ioas_unmap(fd, ioas, fixed, ps, &unmapped)))
		CHECK_EQ(ps, unmapped);
	/* iova 0, length UINT64_MAX unmaps everything that is left. */
	if (CHECK_OK(ioas_unmap(fd, ioas, 0, UINT64_MAX, &unmapped)))
		CHECK_EQ(len, unmapped);
	if (CHECK_OK(ioas_unmap(fd, ioas2, 0, UINT64_MAX, &unmapped)))
		CHECK_EQ(len + ps, unmapped);
	/* Nothing is pinned any more. */
	CHECK_OK(check_refs(fd, buf, len, 0));

	/* IOMMU_DESTROY: devices first, then the address spaces. */
	CHECK_OK(destroy(fd, stdev));
	CHECK_OK(destroy(fd, stdev2));
	CHECK_OK(destroy(fd, ioas));
	CHECK_OK(destroy(fd, ioas2));
	/* Gone: a second destroy finds nothing. */
	CHECK_ERRNO(ENOENT, destroy(fd, ioas));

	CHECK_OK(close(fd));
	return finish();
}
