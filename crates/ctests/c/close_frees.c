/* SPDX-License-Identifier: MIT */
/*
 * Closing the last descriptor of a context frees everything in it, at once:
 * IOASes, devices, domains, mappings, access pins. Afterwards a new context
 * sees every page unpinned (MD_CHECK_REFS 0), as the kernel selftest's
 * fixture teardown expects after each test.
 */
#include "ctest.h"

int main(void)
{
	size_t ps = page_size();
	size_t len = 16 * ps;
	char *a = alloc_buffer(len);
	char *b = alloc_buffer(len);
	uint32_t ioas, ioas2, ioas3, stdev, hwpt;
	uint64_t iova, iova2, iova3, copied;
	int fd = iommufd_open();
	int afd;

	memset(a, 1, len);
	memset(b, 2, len);
	REQUIRE_OK(ioas_alloc(fd, &ioas));
	REQUIRE_OK(ioas_alloc(fd, &ioas2));
	REQUIRE_OK(mock_domain(fd, ioas, &stdev, &hwpt, NULL));
	REQUIRE_OK(mock_domain(fd, ioas2, NULL, NULL, NULL));
	REQUIRE_OK(ioas_map(fd, ioas, a, len, &iova, false));
	REQUIRE_OK(ioas_map(fd, ioas, b, len, &iova2, false));
	{
		struct iommu_ioas_copy cmd = {
			.size = sizeof(cmd),
			.flags = IOMMU_IOAS_MAP_READABLE,
			.dst_ioas_id = ioas2,
			.src_ioas_id = ioas,
			.length = len,
			.src_iova = iova,
		};

		REQUIRE_OK(ioctl(fd, IOMMU_IOAS_COPY, &cmd));
		copied = cmd.dst_iova;
		(void)copied;
	}
	CHECK_OK(check_refs(fd, a, len, 1));
	CHECK_OK(check_refs(fd, b, len, 1));

	/*
	 * `b` mapped a second time, in an IOAS without a device: nothing is
	 * pinned for it until an access pins two of its pages, once more.
	 */
	REQUIRE_OK(ioas_alloc(fd, &ioas3));
	REQUIRE_OK(ioas_map(fd, ioas3, b, len, &iova3, false));
	CHECK_OK(check_refs(fd, b, len, 1));
	REQUIRE_OK(create_access(fd, ioas3,
				 MOCK_FLAGS_ACCESS_CREATE_NEEDS_PIN_PAGES, &afd));
	{
		struct iommu_test_cmd cmd = {
			.size = sizeof(cmd),
			.op = IOMMU_TEST_OP_ACCESS_PAGES,
			.id = (uint32_t)afd,
			.access_pages = { .iova = iova3, .length = 2 * ps,
					  .uptr = (uintptr_t)b },
		};

		if (CHECK_OK(ioctl(fd, IOMMU_TEST_CMD, &cmd)))
			CHECK_OK(check_refs(fd, b, 2 * ps, 2));
	}
	/* Closing the access drops its pins. */
	CHECK_OK(close(afd));
	CHECK_OK(check_refs(fd, b, 2 * ps, 1));

	/* Close with everything still in place. */
	CHECK_OK(close(fd));

	fd = iommufd_open();
	CHECK_OK(check_refs(fd, a, len, 0));
	CHECK_OK(check_refs(fd, b, len, 0));
	/* The old IDs mean nothing in the new context. */
	CHECK_ERRNO(ENOENT, destroy(fd, ioas));
	CHECK_ERRNO(ENOENT, destroy(fd, stdev));
	CHECK_OK(close(fd));

	/* Many open/populate/close cycles leave nothing behind either. */
	for (int i = 0; i < 50; i++) {
		fd = iommufd_open();
		REQUIRE_OK(ioas_alloc(fd, &ioas));
		REQUIRE_OK(mock_domain(fd, ioas, NULL, NULL, NULL));
		REQUIRE_OK(ioas_map(fd, ioas, a, len, &iova, false));
		CHECK_OK(close(fd));
	}
	fd = iommufd_open();
	CHECK_OK(check_refs(fd, a, len, 0));
	CHECK_OK(close(fd));
	return finish();
}
