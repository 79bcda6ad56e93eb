/* SPDX-License-Identifier: MIT */
/*
 * The IOMMU_TEST_CMD operations softiommu implements, on their success paths
 * (and the errors that come with them): ADD_RESERVED, MOCK_DOMAIN,
 * MOCK_DOMAIN_FLAGS, MOCK_DOMAIN_REPLACE, MD_CHECK_MAP, MD_CHECK_REFS,
 * CREATE_ACCESS, ACCESS_PAGES, DESTROY_ACCESS_PAGES, ACCESS_RW,
 * SET_TEMP_MEMORY_LIMIT and ACCESS_REPLACE_IOAS.
 */
#include "ctest.h"

static int test_cmd(int fd, struct iommu_test_cmd *cmd)
{
	cmd->size = sizeof(*cmd);
	return ioctl(fd, IOMMU_TEST_CMD, cmd);
}

static int access_pages(int fd, int afd, uint64_t iova, uint64_t len,
			const void *uptr, uint32_t flags, uint32_t *id)
{
	struct iommu_test_cmd cmd = {
		.op = IOMMU_TEST_OP_ACCESS_PAGES,
		.id = (uint32_t)afd,
		.access_pages = { .flags = flags, .iova = iova, .length = len,
				  .uptr = (uintptr_t)uptr },
	};
	int rc = test_cmd(fd, &cmd);

	if (!rc)
		*id = cmd.access_pages.out_access_pages_id;
	return rc;
}

static int destroy_access_pages(int fd, int afd, uint32_t id)
{
	struct iommu_test_cmd cmd = {
		.op = IOMMU_TEST_OP_DESTROY_ACCESS_PAGES,
		.id = (uint32_t)afd,
		.destroy_access_pages = { .access_pages_id = id },
	};

	return test_cmd(fd, &cmd);
}

static int memory_limit(int fd, uint32_t limit)
{
	struct iommu_test_cmd cmd = {
		.op = IOMMU_TEST_OP_SET_TEMP_MEMORY_LIMIT,
		.memory_limit = { .limit = limit },
	};

	return test_cmd(fd, &cmd);
}

int main(void)
{
	size_t ps = page_size();
	size_t len = 16 * ps;
	uint8_t *buf = alloc_buffer(len);
	uint8_t *other = alloc_buffer(len);
	uint8_t back[256];
	struct iommu_iova_range r[4];
	uint32_t ioas, ioas2, stdev, stdev_nd, hwpt, idev, hwpt2, pages_id, num;
	uint64_t iova, iova2;
	int fd = iommufd_open();
	int afd, afd2;

	for (size_t i = 0; i < len; i++)
		buf[i] = (uint8_t)i;
	memset(other, 0xcc, len);
	REQUIRE_OK(ioas_alloc(fd, &ioas));
	REQUIRE_OK(ioas_alloc(fd, &ioas2));

	/* ADD_RESERVED: a hole in the usable IOVA ranges. */
	{
		struct iommu_test_cmd cmd = {
			.op = IOMMU_TEST_OP_ADD_RESERVED,
			.id = ioas2,
			.add_reserved = { .start = ps, .length = ps },
		};

		if (CHECK_OK(test_cmd(fd, &cmd)) &&
		    CHECK_OK(iova_ranges(fd, ioas2, r, 4, &num, NULL))) {
			CHECK_EQ(2, num);
			CHECK_EQ(0, r[0].start);
			CHECK_EQ(ps - 1, r[0].last);
			CHECK_EQ(2 * ps, r[1].start);
			CHECK_EQ(UINT64_MAX, r[1].last);
		}
		/* Reserving over a mapping is EADDRINUSE. */
		iova2 = 8 * ps;
		if (CHECK_OK(ioas_map(fd, ioas2, buf, ps, &iova2, true))) {
			cmd.add_reserved.start = 8 * ps;
			CHECK_ERRNO(EADDRINUSE, test_cmd(fd, &cmd));
			CHECK_OK(ioas_unmap(fd, ioas2, iova2, ps, NULL));
		}
	}

	/* MOCK_DOMAIN: three distinct IDs. */
	REQUIRE_OK(mock_domain(fd, ioas, &stdev, &hwpt, &idev));
	CHECK(stdev && hwpt && idev);
	CHECK(stdev != hwpt && hwpt != idev && stdev != idev);

	/*
	 * MOCK_DOMAIN_FLAGS: a device without dirty tracking. It shares the
	 * IOAS's automatic domain, which has no dirty tracking either, and
	 * keeps that domain alive while the first device moves away below.
	 */
	{
		struct iommu_test_cmd cmd = {
			.op = IOMMU_TEST_OP_MOCK_DOMAIN_FLAGS,
			.id = ioas,
			.mock_domain_flags = {
				.dev_flags = MOCK_FLAGS_DEVICE_NO_DIRTY },
		};

		REQUIRE_OK(test_cmd(fd, &cmd));
		stdev_nd = cmd.mock_domain_flags.out_stdev_id;
		CHECK(stdev_nd != 0 && stdev_nd != stdev);
		CHECK_EQ(hwpt, cmd.mock_domain_flags.out_hwpt_id);
	}

	/* MD_CHECK_MAP and MD_CHECK_REFS on a mapping. */
	REQUIRE_OK(ioas_map(fd, ioas, buf, len, &iova, false));
	CHECK_OK(check_map(fd, hwpt, iova, buf, len));
	/* In IO pages (half a CPU page) too. */
	CHECK_OK(check_map(fd, hwpt, iova + MOCK_PAGE_SIZE, buf + MOCK_PAGE_SIZE,
			   MOCK_PAGE_SIZE));
	/* Other memory is not what is mapped. */
	CHECK_ERRNO(EINVAL, check_map(fd, hwpt, iova, other, ps));
	CHECK_OK(check_refs(fd, buf, len, 1));
	CHECK_ERRNO(EIO, check_refs(fd, buf, len, 2));
	CHECK_OK(check_refs(fd, other, len, 0));

	/* MOCK_DOMAIN_REPLACE: move the device to the other IOAS. */
	{
		struct iommu_test_cmd cmd = {
			.op = IOMMU_TEST_OP_MOCK_DOMAIN_REPLACE,
			.id = stdev,
			.mock_domain_replace = { .pt_id = ioas2 },
		};

		if (CHECK_OK(test_cmd(fd, &cmd))) {
			hwpt2 = cmd.mock_domain_replace.pt_id;
			CHECK(hwpt2 != 0 && hwpt2 != ioas2);
			/* ioas2 now has the device's aperture. */
			if (CHECK_OK(iova_ranges(fd, ioas2, r, 4, &num, NULL))) {
				CHECK_EQ(1, num);
				CHECK_EQ(MOCK_APERTURE_START, r[0].start);
			}
			/* And back to the first IOAS's HWPT. */
			cmd.mock_domain_replace.pt_id = hwpt;
			if (CHECK_OK(test_cmd(fd, &cmd)))
				CHECK_EQ(hwpt, cmd.mock_domain_replace.pt_id);
			/* The automatic HWPT of ioas2 went with the device. */
			CHECK_ERRNO(ENOENT, destroy(fd, hwpt2));
		}
	}

	/* CREATE_ACCESS, ACCESS_PAGES, DESTROY_ACCESS_PAGES. */
	REQUIRE_OK(create_access(fd, ioas,
				 MOCK_FLAGS_ACCESS_CREATE_NEEDS_PIN_PAGES,
				 &afd));
	CHECK(afd >= 0);
	if (CHECK_OK(access_pages(fd, afd, iova + ps, 2 * ps, buf + ps,
				  MOCK_FLAGS_ACCESS_WRITE, &pages_id))) {
		/* A page is pinned once: the access shares the domain's pin. */
		CHECK_OK(check_refs(fd, buf, len, 1));
		/* The wrong user pointer is EBADE. */
		{
			uint32_t id2;

			CHECK_ERRNO(EBADE, access_pages(fd, afd, iova, ps,
							other, 0, &id2));
		}
		CHECK_OK(destroy_access_pages(fd, afd, pages_id));
		CHECK_OK(check_refs(fd, buf, len, 1));
		CHECK_ERRNO(ENOENT, destroy_access_pages(fd, afd, pages_id));
	}
	/* Without a user pointer there is nothing to compare. */
	if (CHECK_OK(access_pages(fd, afd, iova, ps, NULL, 0, &pages_id)))
		CHECK_OK(destroy_access_pages(fd, afd, pages_id));
	/* More than 16 MiB at once is ENOMEM; unknown flags EOPNOTSUPP. */
	CHECK_ERRNO(ENOMEM, access_pages(fd, afd, iova, (16u << 20) + ps, NULL,
					 0, &pages_id));
	CHECK_ERRNO(EOPNOTSUPP, access_pages(fd, afd, iova, ps, NULL, 1u << 5,
					     &pages_id));

	/* ACCESS_RW: read, write, unaligned, slow path. */
	if (CHECK_OK(access_rw(fd, afd, iova + 100, back, sizeof(back), 0)))
		CHECK(memcmp(back, buf + 100, sizeof(back)) == 0);
	if (CHECK_OK(access_rw(fd, afd, iova + ps - 10, back, sizeof(back),
			       MOCK_ACCESS_RW_SLOW_PATH)))
		CHECK(memcmp(back, buf + ps - 10, sizeof(back)) == 0);
	memset(back, 0xab, sizeof(back));
	if (CHECK_OK(access_rw(fd, afd, iova + 3 * ps - 1, back, sizeof(back),
			       MOCK_ACCESS_RW_WRITE)))
		CHECK(memcmp(back, buf + 3 * ps - 1, sizeof(back)) == 0);
	CHECK_ERRNO(ENOENT, access_rw(fd, afd, iova + len, back, 16, 0));
	CHECK_ERRNO(EOPNOTSUPP, access_rw(fd, afd, iova, back, 16, 1u << 6));

	/* SET_TEMP_MEMORY_LIMIT: a tiny batch size still maps correctly. */
	if (CHECK_OK(memory_limit(fd, 16))) {
		uint64_t small_iova;

		if (CHECK_OK(ioas_map(fd, ioas, other, len, &small_iova,
				      false))) {
			CHECK_OK(check_map(fd, hwpt, small_iova, other, len));
			CHECK_OK(ioas_unmap(fd, ioas, small_iova, len, NULL));
		}
		CHECK_OK(memory_limit(fd, 65536));
	}

	/* ACCESS_REPLACE_IOAS: the access now reads ioas2. */
	REQUIRE_OK(create_access(fd, ioas, 0, &afd2));
	iova2 = 64 * ps;
	if (CHECK_OK(ioas_map(fd, ioas2, other, ps, &iova2, true))) {
		struct iommu_test_cmd cmd = {
			.op = IOMMU_TEST_OP_ACCESS_REPLACE_IOAS,
			.id = (uint32_t)afd2,
			.access_replace_ioas = { .ioas_id = ioas2 },
		};

		if (CHECK_OK(test_cmd(fd, &cmd)) &&
		    CHECK_OK(access_rw(fd, afd2, iova2, back, 16, 0)))
			CHECK_EQ(0xcc, back[0]);
		/* ioas is free of it: only the first access holds it. */
		CHECK_OK(ioas_unmap(fd, ioas2, iova2, ps, NULL));
	}
	CHECK_OK(close(afd2));
	CHECK_OK(close(afd));

	CHECK_OK(ioas_unmap(fd, ioas, iova, len, NULL));
	CHECK_OK(check_refs(fd, buf, len, 0));
	CHECK_OK(destroy(fd, stdev));
	CHECK_OK(destroy(fd, stdev_nd));
	/* The last device took the automatic domain with it. */
	CHECK_ERRNO(ENOENT, destroy(fd, hwpt));
	CHECK_OK(destroy(fd, ioas));
	CHECK_OK(destroy(fd, ioas2));
	CHECK_OK(close(fd));
	return finish();
}
