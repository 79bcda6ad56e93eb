/* SPDX-License-Identifier: MIT */
/*
 * Bad pointers give EFAULT, never a crash: a NULL or unmapped argument, a
 * struct whose tail runs into an unmapped page, a read-only struct that
 * cannot take the answer, bad range arrays, a bad user_va once a domain
 * needs the pages, and a bad buffer for an access.
 */
#include "ctest.h"

int main(void)
{
	size_t ps = page_size();
	int fd = iommufd_open();
	uint32_t ioas, ioas2, stdev, hwpt;
	uint64_t iova;
	char *buf = alloc_buffer(4 * ps);
	/* Two pages, the second one unmapped: a hole right after a page. */
	char *edge = alloc_buffer(2 * ps);
	char *hole = edge + ps;

	REQUIRE(munmap(hole, ps) == 0);
	REQUIRE_OK(ioas_alloc(fd, &ioas));

	/* NULL and unmapped argument pointers. */
	CHECK_ERRNO(EFAULT, ioctl(fd, IOMMU_IOAS_ALLOC, NULL));
	CHECK_ERRNO(EFAULT, ioctl(fd, IOMMU_DESTROY, NULL));
	CHECK_ERRNO(EFAULT, ioctl(fd, IOMMU_IOAS_MAP, NULL));
	CHECK_ERRNO(EFAULT, ioctl(fd, IOMMU_TEST_CMD, NULL));
	CHECK_ERRNO(EFAULT, ioctl(fd, IOMMU_IOAS_UNMAP, hole));
	CHECK_ERRNO(EFAULT, ioctl(fd, IOMMU_OPTION, (void *)1));

	/* The size is readable but the struct runs into the hole. */
	{
		struct iommu_ioas_alloc *cmd =
			(void *)(hole - sizeof(uint32_t));

		cmd->size = sizeof(*cmd);
		CHECK_ERRNO(EFAULT, ioctl(fd, IOMMU_IOAS_ALLOC, cmd));
	}
	/* The struct fits, its declared zero tail does not. */
	{
		struct iommu_destroy *cmd = (void *)(hole - sizeof(*cmd));

		memset(cmd, 0, sizeof(*cmd));
		cmd->size = sizeof(*cmd) + 16;
		cmd->id = ioas;
		CHECK_ERRNO(EFAULT, ioctl(fd, IOMMU_DESTROY, cmd));
	}

	/*
	 * A read-only struct: the command is read but the answer cannot be
	 * written. IOAS_ALLOC must then leave no IOAS behind: the next ID it
	 * would have used is not an object.
	 */
	{
		struct iommu_ioas_alloc *ro = mmap(NULL, ps, PROT_READ | PROT_WRITE,
						   MAP_PRIVATE | MAP_ANONYMOUS,
						   -1, 0);

		REQUIRE(ro != MAP_FAILED);
		ro->size = sizeof(*ro);
		REQUIRE(mprotect(ro, ps, PROT_READ) == 0);
		CHECK_ERRNO(EFAULT, ioctl(fd, IOMMU_IOAS_ALLOC, ro));
		CHECK_ERRNO(ENOENT, destroy(fd, ioas + 1));
		if (CHECK_OK(ioas_alloc(fd, &ioas2))) {
			CHECK(ioas2 != ioas);
			CHECK_OK(destroy(fd, ioas2));
		}
		munmap(ro, ps);
	}

	/* IOVA_RANGES writes through a bad array pointer. */
	{
		struct iommu_ioas_iova_ranges cmd = {
			.size = sizeof(cmd),
			.ioas_id = ioas,
			.num_iovas = 4,
			.allowed_iovas = (uintptr_t)hole,
		};

		CHECK_ERRNO(EFAULT, ioctl(fd, IOMMU_IOAS_IOVA_RANGES, &cmd));
		cmd.allowed_iovas = 0;
		CHECK_ERRNO(EFAULT, ioctl(fd, IOMMU_IOAS_IOVA_RANGES, &cmd));
	}

	/* ALLOW_IOVAS reads through a bad array pointer; nothing changes. */
	{
		struct iommu_ioas_allow_iovas cmd = {
			.size = sizeof(cmd),
			.ioas_id = ioas,
			.num_iovas = 1,
			.allowed_iovas = (uintptr_t)hole,
		};
		struct iommu_iova_range allowed = {
			.start = 32 * ps, .last = 64 * ps - 1,
		};
		struct iommu_iova_range r[2];
		uint32_t num;

		/* Start from a known allowed range. */
		cmd.allowed_iovas = (uintptr_t)&allowed;
		REQUIRE_OK(ioctl(fd, IOMMU_IOAS_ALLOW_IOVAS, &cmd));
		cmd.allowed_iovas = (uintptr_t)hole;
		CHECK_ERRNO(EFAULT, ioctl(fd, IOMMU_IOAS_ALLOW_IOVAS, &cmd));
		cmd.allowed_iovas = 0;
		CHECK_ERRNO(EFAULT, ioctl(fd, IOMMU_IOAS_ALLOW_IOVAS, &cmd));
		/* The second range of two is unreadable. */
		{
			struct iommu_iova_range *two =
				(void *)(hole - sizeof(*two));

			two->start = 0;
			two->last = 16 * ps - 1;
			cmd.allowed_iovas = (uintptr_t)two;
			cmd.num_iovas = 2;
			CHECK_ERRNO(EFAULT,
				    ioctl(fd, IOMMU_IOAS_ALLOW_IOVAS, &cmd));
		}
		/* The allowed range is still the one set before. */
		if (CHECK_OK(ioas_map(fd, ioas, buf, ps, &iova, false))) {
			CHECK(iova >= allowed.start &&
			      iova + ps - 1 <= allowed.last);
			CHECK_OK(ioas_unmap(fd, ioas, iova, ps, NULL));
		}
		CHECK_OK(iova_ranges(fd, ioas, r, 2, &num, NULL));
		CHECK_EQ(1, num);
		/* Clear it for the rest of the program. */
		cmd.num_iovas = 0;
		CHECK_OK(ioctl(fd, IOMMU_IOAS_ALLOW_IOVAS, &cmd));
	}

	/*
	 * IOAS_MAP of an unmapped user_va: with a domain attached the pages
	 * are needed at once, so the map fails with EFAULT.
	 */
	REQUIRE_OK(mock_domain(fd, ioas, &stdev, &hwpt, NULL));
	CHECK_ERRNO(EFAULT, ioas_map(fd, ioas, hole, ps, &iova, false));
	/* Half good, half bad. */
	CHECK_ERRNO(EFAULT, ioas_map(fd, ioas, edge, 2 * ps, &iova, false));
	/* Nothing was left mapped or pinned by the failures. */
	{
		uint64_t n = 1;

		if (CHECK_OK(ioas_unmap(fd, ioas, 0, UINT64_MAX, &n)))
			CHECK_EQ(0, n);
	}
	CHECK_OK(check_refs(fd, edge, ps, 0));

	/*
	 * Without a domain nothing is pinned at map time; attaching a device
	 * later needs the pages and fails with EFAULT.
	 */
	REQUIRE_OK(ioas_alloc(fd, &ioas2));
	/* Inside the mock aperture, or the attach fails on the IOVA first. */
	iova = MOCK_APERTURE_START;
	if (CHECK_OK(ioas_map(fd, ioas2, hole, ps, &iova, true))) {
		CHECK_ERRNO(EFAULT, mock_domain(fd, ioas2, NULL, NULL, NULL));
		CHECK_OK(ioas_unmap(fd, ioas2, iova, ps, NULL));
	}
	CHECK_OK(destroy(fd, ioas2));

	/* An access reading into / writing from a bad buffer. */
	{
		int afd;

		iova = MOCK_APERTURE_START;
		if (CHECK_OK(ioas_map(fd, ioas, buf, ps, &iova, true)) &&
		    CHECK_OK(create_access(fd, ioas, 0, &afd))) {
			CHECK_ERRNO(EFAULT, access_rw(fd, afd, iova, hole, 64, 0));
			CHECK_ERRNO(EFAULT, access_rw(fd, afd, iova, hole, 64,
						      MOCK_ACCESS_RW_WRITE));
			CHECK_ERRNO(EFAULT, access_rw(fd, afd, iova, NULL, 64,
						      0));
			CHECK_OK(close(afd));
		}
		CHECK_OK(ioas_unmap(fd, ioas, iova, ps, NULL));
	}

	CHECK_OK(destroy(fd, stdev));
	CHECK_OK(destroy(fd, ioas));
	CHECK_OK(close(fd));
	return finish();
}
