/* SPDX-License-Identifier: MIT */
/*
 * The documented errno of each implemented ioctl, as the kernel returns them:
 * EOPNOTSUPP for unknown flags and non-zero reserved fields, EOVERFLOW for
 * values that do not fit, EINVAL, ENOENT for missing IDs and IOVAs, EBUSY for
 * an IOAS in use, EEXIST for an occupied IOVA, EMSGSIZE for a too-small array,
 * ENOSPC when no IOVA is free, EADDRINUSE for reserved/allowed conflicts and
 * ENOTTY for ioctl numbers that are not iommufd's.
 */
#include "ctest.h"

static int map_cmd(int fd, struct iommu_ioas_map *cmd)
{
	return ioctl(fd, IOMMU_IOAS_MAP, cmd);
}

static int test_op(int fd, uint32_t op, uint32_t id)
{
	struct iommu_test_cmd cmd = { .size = sizeof(cmd), .op = op, .id = id };

	return ioctl(fd, IOMMU_TEST_CMD, &cmd);
}

int main(void)
{
	size_t ps = page_size();
	size_t len = 4 * ps;
	int fd = iommufd_open();
	char *buf = alloc_buffer(len);
	uint32_t ioas, ioas2, stdev, hwpt;
	uint64_t iova, val;

	REQUIRE_OK(ioas_alloc(fd, &ioas));
	REQUIRE_OK(ioas_alloc(fd, &ioas2));
	REQUIRE_OK(mock_domain(fd, ioas, &stdev, &hwpt, NULL));

	/* ---- EOPNOTSUPP: unknown flags, non-zero reserved fields ---- */
	{
		struct iommu_ioas_alloc cmd = { .size = sizeof(cmd), .flags = 1 };

		CHECK_ERRNO(EOPNOTSUPP, ioctl(fd, IOMMU_IOAS_ALLOC, &cmd));
	}
	{
		struct iommu_ioas_map cmd = {
			.size = sizeof(cmd),
			.flags = IOMMU_IOAS_MAP_READABLE | (1 << 3),
			.ioas_id = ioas,
			.user_va = (uintptr_t)buf,
			.length = ps,
		};

		CHECK_ERRNO(EOPNOTSUPP, map_cmd(fd, &cmd));
		cmd.flags = IOMMU_IOAS_MAP_READABLE;
		cmd.__reserved = 1;
		CHECK_ERRNO(EOPNOTSUPP, map_cmd(fd, &cmd));
	}
	{
		struct iommu_ioas_map_file cmd = {
			.size = sizeof(cmd),
			.flags = IOMMU_IOAS_MAP_READABLE | (1 << 3),
			.ioas_id = ioas,
			.fd = -1,
			.length = ps,
		};

		CHECK_ERRNO(EOPNOTSUPP, ioctl(fd, IOMMU_IOAS_MAP_FILE, &cmd));
	}
	{
		struct iommu_ioas_copy cmd = {
			.size = sizeof(cmd),
			.flags = IOMMU_IOAS_MAP_READABLE | (1 << 3),
			.dst_ioas_id = ioas2,
			.src_ioas_id = ioas,
			.length = ps,
		};

		CHECK_ERRNO(EOPNOTSUPP, ioctl(fd, IOMMU_IOAS_COPY, &cmd));
	}
	{
		struct iommu_iova_range r[1];
		struct iommu_ioas_iova_ranges cmd = {
			.size = sizeof(cmd),
			.ioas_id = ioas,
			.num_iovas = 1,
			.__reserved = 1,
			.allowed_iovas = (uintptr_t)r,
		};

		CHECK_ERRNO(EOPNOTSUPP, ioctl(fd, IOMMU_IOAS_IOVA_RANGES, &cmd));
	}
	{
		struct iommu_ioas_allow_iovas cmd = {
			.size = sizeof(cmd),
			.ioas_id = ioas,
			.__reserved = 1,
		};

		CHECK_ERRNO(EOPNOTSUPP, ioctl(fd, IOMMU_IOAS_ALLOW_IOVAS, &cmd));
	}
	{
		struct iommu_option cmd = {
			.size = sizeof(cmd),
			.option_id = IOMMU_OPTION_HUGE_PAGES,
			.op = IOMMU_OPTION_OP_GET,
			.__reserved = 1,
			.object_id = ioas,
		};

		CHECK_ERRNO(EOPNOTSUPP, ioctl(fd, IOMMU_OPTION, &cmd));
	}
	val = 0;
	CHECK_ERRNO(EOPNOTSUPP, option(fd, 0xffff, IOMMU_OPTION_OP_GET, 0, &val));
	CHECK_ERRNO(EOPNOTSUPP, option(fd, IOMMU_OPTION_HUGE_PAGES, 7, ioas, &val));
	CHECK_ERRNO(EOPNOTSUPP,
		    option(fd, IOMMU_OPTION_RLIMIT_MODE, IOMMU_OPTION_OP_GET,
			   ioas, &val));
	{
		struct iommu_ioas_change_process cmd = {
			.size = sizeof(cmd),
			.__reserved = 1,
		};

		CHECK_ERRNO(EOPNOTSUPP,
			    ioctl(fd, IOMMU_IOAS_CHANGE_PROCESS, &cmd));
	}
	/* An unknown selftest op, and CREATE_ACCESS with an unknown flag. */
	CHECK_ERRNO(EOPNOTSUPP, test_op(fd, 0xfff, ioas));
	{
		int afd;

		CHECK_ERRNO(EOPNOTSUPP, create_access(fd, ioas, 1 << 5, &afd));
	}

	/* ---- EOVERFLOW: values past ULONG_MAX, IOVA ranges that wrap ---- */
	{
		struct iommu_ioas_map cmd = {
			.size = sizeof(cmd),
			.flags = IOMMU_IOAS_MAP_READABLE,
			.ioas_id = ioas,
			.user_va = (uintptr_t)buf,
			.length = UINT64_MAX,
		};

		CHECK_ERRNO(EOVERFLOW, map_cmd(fd, &cmd));
		cmd.length = ps;
		cmd.flags |= IOMMU_IOAS_MAP_FIXED_IOVA;
		cmd.iova = UINT64_MAX;
		CHECK_ERRNO(EOVERFLOW, map_cmd(fd, &cmd));
	}
	{
		/* A fixed IOVA whose last byte would wrap, on an IOAS
		 * without a device (so no aperture gets in the way). */
		struct iommu_ioas_map cmd = {
			.size = sizeof(cmd),
			.flags = IOMMU_IOAS_MAP_READABLE |
				 IOMMU_IOAS_MAP_FIXED_IOVA,
			.ioas_id = ioas2,
			.user_va = (uintptr_t)buf,
			.length = 2 * ps,
			.iova = UINT64_MAX - ps + 1,
		};

		CHECK_ERRNO(EOVERFLOW, map_cmd(fd, &cmd));
	}
	{
		struct iommu_ioas_copy cmd = {
			.size = sizeof(cmd),
			.flags = IOMMU_IOAS_MAP_READABLE,
			.dst_ioas_id = ioas2,
			.src_ioas_id = ioas,
			.length = UINT64_MAX,
		};

		CHECK_ERRNO(EOVERFLOW, ioctl(fd, IOMMU_IOAS_COPY, &cmd));
	}
	CHECK_ERRNO(EOVERFLOW, ioas_unmap(fd, ioas, UINT64_MAX, ps, NULL));
	CHECK_ERRNO(EOVERFLOW,
		    ioas_unmap(fd, ioas, UINT64_MAX - ps + 1, 2 * ps, NULL));

	/* ---- EINVAL ---- */
	{
		struct iommu_ioas_map cmd = {
			.size = sizeof(cmd),
			.flags = 0, /* neither readable nor writeable */
			.ioas_id = ioas,
			.user_va = (uintptr_t)buf,
			.length = ps,
		};

		CHECK_ERRNO(EINVAL, map_cmd(fd, &cmd));
		cmd.flags = IOMMU_IOAS_MAP_READABLE;
		cmd.length = 0;
		CHECK_ERRNO(EINVAL, map_cmd(fd, &cmd));
		/* A fixed IOVA not aligned to the mock IO page size. */
		cmd.length = ps;
		cmd.flags |= IOMMU_IOAS_MAP_FIXED_IOVA;
		cmd.iova = MOCK_APERTURE_START + 1;
		CHECK_ERRNO(EINVAL, map_cmd(fd, &cmd));
	}
	CHECK_ERRNO(EINVAL, ioas_unmap(fd, ioas, MOCK_APERTURE_START, 0, NULL));
	{
		/* Allowed ranges must have start < last and must not overlap. */
		struct iommu_iova_range r[2] = {
			{ .start = 2 * ps, .last = 2 * ps },
		};
		struct iommu_ioas_allow_iovas cmd = {
			.size = sizeof(cmd),
			.ioas_id = ioas2,
			.num_iovas = 1,
			.allowed_iovas = (uintptr_t)r,
		};

		CHECK_ERRNO(EINVAL, ioctl(fd, IOMMU_IOAS_ALLOW_IOVAS, &cmd));
		r[0].start = 3 * ps;
		CHECK_ERRNO(EINVAL, ioctl(fd, IOMMU_IOAS_ALLOW_IOVAS, &cmd));
		r[0] = (struct iommu_iova_range){ .start = 0, .last = 4 * ps - 1 };
		r[1] = (struct iommu_iova_range){ .start = 2 * ps, .last = 8 * ps - 1 };
		cmd.num_iovas = 2;
		CHECK_ERRNO(EINVAL, ioctl(fd, IOMMU_IOAS_ALLOW_IOVAS, &cmd));
	}
	val = 2;
	CHECK_ERRNO(EINVAL, option(fd, IOMMU_OPTION_HUGE_PAGES,
				   IOMMU_OPTION_OP_SET, ioas, &val));
	{
		/* A fixed IOVA in a reserved range. */
		struct iommu_test_cmd res = {
			.size = sizeof(res),
			.op = IOMMU_TEST_OP_ADD_RESERVED,
			.id = ioas2,
			.add_reserved = { .start = 16 * ps, .length = 16 * ps },
		};

		iova = 20 * ps;
		if (CHECK_OK(ioctl(fd, IOMMU_TEST_CMD, &res)))
			CHECK_ERRNO(EINVAL,
				    ioas_map(fd, ioas2, buf, ps, &iova, true));
	}
	{
		/* Selftest ops: unaligned MD_CHECK_MAP and MD_CHECK_REFS, an
		 * MD_CHECK_MAP of an unmapped IOVA, a too-small memory limit,
		 * unknown mock device flags. */
		struct iommu_test_cmd cmd = {
			.size = sizeof(cmd),
			.op = IOMMU_TEST_OP_MD_CHECK_MAP,
			.id = hwpt,
			.check_map = { .iova = MOCK_APERTURE_START + 1,
				       .length = ps, .uptr = (uintptr_t)buf },
		};

		CHECK_ERRNO(EINVAL, ioctl(fd, IOMMU_TEST_CMD, &cmd));
		CHECK_ERRNO(EINVAL, check_map(fd, hwpt, MOCK_APERTURE_START,
					      buf, ps));
		CHECK_ERRNO(EINVAL, check_refs(fd, buf + 1, ps, 0));
		memset(&cmd, 0, sizeof(cmd));
		cmd.size = sizeof(cmd);
		cmd.op = IOMMU_TEST_OP_SET_TEMP_MEMORY_LIMIT;
		cmd.memory_limit.limit = 4;
		CHECK_ERRNO(EINVAL, ioctl(fd, IOMMU_TEST_CMD, &cmd));
		memset(&cmd, 0, sizeof(cmd));
		cmd.size = sizeof(cmd);
		cmd.op = IOMMU_TEST_OP_MOCK_DOMAIN_FLAGS;
		cmd.id = ioas2;
		cmd.mock_domain_flags.dev_flags = 1u << 30;
		CHECK_ERRNO(EINVAL, ioctl(fd, IOMMU_TEST_CMD, &cmd));
	}

	/* ---- ENOENT: missing objects, wrong object types, no mapping ---- */
	CHECK_ERRNO(ENOENT, destroy(fd, 0));
	CHECK_ERRNO(ENOENT, destroy(fd, 12345));
	iova = 0;
	CHECK_ERRNO(ENOENT, ioas_map(fd, 12345, buf, ps, &iova, false));
	/* A HWPT is not an IOAS. */
	CHECK_ERRNO(ENOENT, ioas_map(fd, hwpt, buf, ps, &iova, false));
	{
		uint32_t num;
		struct iommu_iova_range r[1];

		CHECK_ERRNO(ENOENT, iova_ranges(fd, 12345, r, 1, &num, NULL));
	}
	CHECK_ERRNO(ENOENT, ioas_unmap(fd, ioas, MOCK_APERTURE_START, ps, NULL));
	CHECK_ERRNO(ENOENT, ioas_unmap(fd, 12345, 0, UINT64_MAX, NULL));
	{
		struct iommu_ioas_copy cmd = {
			.size = sizeof(cmd),
			.flags = IOMMU_IOAS_MAP_READABLE,
			.dst_ioas_id = ioas2,
			.src_ioas_id = ioas,
			.length = ps,
			.src_iova = MOCK_APERTURE_START,
		};

		CHECK_ERRNO(ENOENT, ioctl(fd, IOMMU_IOAS_COPY, &cmd));
	}
	val = 0;
	CHECK_ERRNO(ENOENT, option(fd, IOMMU_OPTION_HUGE_PAGES,
				   IOMMU_OPTION_OP_GET, 12345, &val));
	CHECK_ERRNO(ENOENT, mock_domain(fd, 12345, NULL, NULL, NULL));
	/* Unmapping part of an area is not allowed: the range must cover
	 * whole areas. */
	if (CHECK_OK(ioas_map(fd, ioas, buf, len, &iova, false))) {
		CHECK_ERRNO(ENOENT, ioas_unmap(fd, ioas, iova, ps, NULL));
		CHECK_ERRNO(ENOENT, ioas_unmap(fd, ioas, iova + ps, len, NULL));
		CHECK_OK(ioas_unmap(fd, ioas, iova, len, NULL));
	}

	/* ---- EEXIST: a fixed IOVA that is already mapped ---- */
	iova = MOCK_APERTURE_START;
	if (CHECK_OK(ioas_map(fd, ioas, buf, 2 * ps, &iova, true))) {
		uint64_t again = MOCK_APERTURE_START + ps;

		CHECK_ERRNO(EEXIST, ioas_map(fd, ioas, buf, 2 * ps, &again,
					     true));
		CHECK_OK(ioas_unmap(fd, ioas, MOCK_APERTURE_START, 2 * ps,
				    NULL));
	}

	/* ---- EMSGSIZE: the range array is too small ---- */
	{
		struct iommu_iova_range r[1] = { { .start = 7, .last = 7 } };
		uint32_t num;

		CHECK_ERRNO(EMSGSIZE, iova_ranges(fd, ioas, r, 0, &num, NULL));
		CHECK_EQ(1, num);
		/* Nothing was written to the zero-length array. */
		CHECK_EQ(7, r[0].start);
	}

	/* ---- ENOSPC: no free IOVA is large enough ---- */
	{
		struct iommu_iova_range r = {
			.start = MOCK_APERTURE_START,
			.last = MOCK_APERTURE_START + ps - 1,
		};
		struct iommu_ioas_allow_iovas cmd = {
			.size = sizeof(cmd),
			.ioas_id = ioas,
			.num_iovas = 1,
			.allowed_iovas = (uintptr_t)&r,
		};

		if (CHECK_OK(ioctl(fd, IOMMU_IOAS_ALLOW_IOVAS, &cmd))) {
			CHECK_ERRNO(ENOSPC,
				    ioas_map(fd, ioas, buf, 2 * ps, &iova,
					     false));
			cmd.num_iovas = 0;
			CHECK_OK(ioctl(fd, IOMMU_IOAS_ALLOW_IOVAS, &cmd));
		}
	}

	/* ---- EADDRINUSE: allowed and reserved ranges must not meet ---- */
	{
		/* ioas2 reserves [16 pages, 32 pages) from above. */
		struct iommu_iova_range r = { .start = 0, .last = 64 * ps - 1 };
		struct iommu_ioas_allow_iovas cmd = {
			.size = sizeof(cmd),
			.ioas_id = ioas2,
			.num_iovas = 1,
			.allowed_iovas = (uintptr_t)&r,
		};

		CHECK_ERRNO(EADDRINUSE,
			    ioctl(fd, IOMMU_IOAS_ALLOW_IOVAS, &cmd));
	}

	/* ---- EBUSY: destroying an IOAS that a device or access uses ---- */
	CHECK_ERRNO(EBUSY, destroy(fd, ioas));
	{
		int afd;

		if (CHECK_OK(create_access(fd, ioas2, 0, &afd))) {
			CHECK_ERRNO(EBUSY, destroy(fd, ioas2));
			CHECK_OK(close(afd));
		}
	}
	CHECK_OK(destroy(fd, stdev));
	CHECK_OK(destroy(fd, ioas));
	CHECK_OK(destroy(fd, ioas2));

	/* ---- EBADFD: an access op on a descriptor that is not an access ---- */
	{
		char b[8];

		CHECK_ERRNO(EBADFD, access_rw(fd, fd, 0, b, sizeof(b), 0));
	}

	/* ---- ENOTTY: ioctl numbers that are not iommufd's ---- */
	{
		struct iommu_destroy cmd = { .size = sizeof(cmd) };

		/* A terminal ioctl. */
		CHECK_ERRNO(ENOTTY, ioctl(fd, TCGETS, &cmd));
		/* iommufd's type, a number past the last command. */
		CHECK_ERRNO(ENOTTY, ioctl(fd, _IO(IOMMUFD_TYPE, 0xff), &cmd));
		/* IOMMU_DESTROY's number with the wrong direction bits. */
		CHECK_ERRNO(ENOTTY,
			    ioctl(fd, _IOW(IOMMUFD_TYPE, IOMMUFD_CMD_DESTROY,
					   struct iommu_destroy),
				  &cmd));
	}

	CHECK_OK(close(fd));
	return finish();
}
