/* SPDX-License-Identifier: MIT */
/*
 * IOMMU_IOAS_MAP_FILE with a memfd: the IOAS maps the file's pages by offset,
 * so the mock domain translates to the same pages the program sees through
 * its own mmap of the file, accesses read the file's contents, and the
 * mapping outlives the program's mmap and descriptor. Plus its errors.
 */
#include "ctest.h"

static int map_file(int fd, uint32_t ioas, int mfd, uint64_t start,
		    uint64_t len, uint32_t flags, uint64_t *iova)
{
	struct iommu_ioas_map_file cmd = {
		.size = sizeof(cmd),
		.flags = flags,
		.ioas_id = ioas,
		.fd = mfd,
		.start = start,
		.length = len,
		.iova = *iova,
	};
	int rc = ioctl(fd, IOMMU_IOAS_MAP_FILE, &cmd);

	if (!rc)
		*iova = cmd.iova;
	return rc;
}

int main(void)
{
	size_t ps = page_size();
	size_t len = 8 * ps;
	uint32_t rw = IOMMU_IOAS_MAP_READABLE | IOMMU_IOAS_MAP_WRITEABLE;
	uint32_t ioas, stdev, hwpt;
	uint64_t iova, iova2, fixed;
	char back[64];
	int fd = iommufd_open();
	int mfd = memfd_create("softiommu-ctest", MFD_CLOEXEC);
	char *view;
	int afd;

	REQUIRE(mfd >= 0);
	REQUIRE(ftruncate(mfd, (off_t)len) == 0);
	view = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, mfd, 0);
	REQUIRE(view != MAP_FAILED);
	for (size_t i = 0; i < len; i += ps)
		snprintf(view + i, ps, "page %zu of the memfd", i / ps);

	REQUIRE_OK(ioas_alloc(fd, &ioas));
	REQUIRE_OK(mock_domain(fd, ioas, &stdev, &hwpt, NULL));
	REQUIRE_OK(create_access(fd, ioas, 0, &afd));

	/* The whole file, at a kernel-chosen IOVA. */
	iova = 0;
	if (CHECK_OK(map_file(fd, ioas, mfd, 0, len, rw, &iova))) {
		CHECK(iova >= MOCK_APERTURE_START);
		CHECK_OK(check_map(fd, hwpt, iova, view, len));
		if (CHECK_OK(access_rw(fd, afd, iova + 3 * ps, back,
				       sizeof(back), 0)))
			CHECK(strcmp(back, "page 3 of the memfd") == 0);
	}

	/* Part of it, at a fixed IOVA, read-only. */
	fixed = MOCK_APERTURE_START + 1024 * ps;
	iova2 = fixed;
	if (CHECK_OK(map_file(fd, ioas, mfd, 2 * ps, 3 * ps,
			      IOMMU_IOAS_MAP_READABLE |
				      IOMMU_IOAS_MAP_FIXED_IOVA, &iova2))) {
		CHECK_EQ(fixed, iova2);
		CHECK_OK(check_map(fd, hwpt, fixed, view + 2 * ps, 3 * ps));
		if (CHECK_OK(access_rw(fd, afd, fixed, back, sizeof(back), 0)))
			CHECK(strcmp(back, "page 2 of the memfd") == 0);
	}

	/* Writes through the IOAS land in the file. */
	{
		const char msg[] = "written through the IOAS";

		if (CHECK_OK(access_rw(fd, afd, iova + 5 * ps, (void *)msg,
				       sizeof(msg), MOCK_ACCESS_RW_WRITE)))
			CHECK(memcmp(view + 5 * ps, msg, sizeof(msg)) == 0);
	}

	/* The mapping outlives the program's mmap and descriptor. */
	CHECK(munmap(view, len) == 0);
	CHECK_OK(close(mfd));
	if (CHECK_OK(access_rw(fd, afd, iova + 7 * ps, back, sizeof(back), 0)))
		CHECK(strcmp(back, "page 7 of the memfd") == 0);

	CHECK_OK(ioas_unmap(fd, ioas, fixed, 3 * ps, NULL));
	CHECK_OK(ioas_unmap(fd, ioas, iova, len, NULL));

	/* Errors. */
	mfd = memfd_create("softiommu-ctest-2", MFD_CLOEXEC);
	REQUIRE(mfd >= 0);
	REQUIRE(ftruncate(mfd, (off_t)(2 * ps)) == 0);
	iova = 0;
	/* Past the end of the file. */
	CHECK_ERRNO(EINVAL, map_file(fd, ioas, mfd, 0, 4 * ps, rw, &iova));
	CHECK_ERRNO(EINVAL, map_file(fd, ioas, mfd, 2 * ps, ps, rw, &iova));
	/* Neither readable nor writeable. */
	CHECK_ERRNO(EINVAL, map_file(fd, ioas, mfd, 0, ps, 0, &iova));
	/* Unknown flags. */
	CHECK_ERRNO(EOPNOTSUPP,
		    map_file(fd, ioas, mfd, 0, ps, rw | (1u << 8), &iova));
	/* Too large. */
	CHECK_ERRNO(EOVERFLOW,
		    map_file(fd, ioas, mfd, 0, UINT64_MAX, rw, &iova));
	/* Not a descriptor; not an IOAS. */
	CHECK_ERRNO(EBADF, map_file(fd, ioas, 1000, 0, ps, rw, &iova));
	CHECK_ERRNO(ENOENT, map_file(fd, hwpt, mfd, 0, ps, rw, &iova));
	/* A truncated file has nothing to map. */
	REQUIRE(ftruncate(mfd, 0) == 0);
	CHECK_ERRNO(EINVAL, map_file(fd, ioas, mfd, 0, ps, rw, &iova));
	CHECK_OK(close(mfd));

	CHECK_OK(close(afd));
	CHECK_OK(destroy(fd, stdev));
	CHECK_OK(destroy(fd, ioas));
	CHECK_OK(close(fd));
	return finish();
}
