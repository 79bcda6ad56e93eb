/* SPDX-License-Identifier: MIT */
/*
 * The extensible-struct size rules, for every implemented ioctl:
 *
 * - a size below the command's minimum (the end of its last original field)
 *   is EINVAL;
 * - a size larger than the struct with a zero tail behaves exactly like the
 *   exact size (same result, same errno);
 * - a non-zero byte anywhere in the tail is E2BIG;
 * - a size between the minimum and the struct size is zero-extended: the
 *   bytes past `size` are neither read nor written.
 *
 * The argument is all zeros apart from `size`, so most commands fail on their
 * content (ENOENT, EINVAL, ...); what matters is that each size gives the same
 * answer as the exact size.
 */
#include "ctest.h"

#define offsetofend(type, member) \
	(offsetof(type, member) + sizeof(((type *)0)->member))

/* Room for any of the structs plus a long tail. */
#define TAIL 256
static uint8_t arg[512] __attribute__((aligned(8)));

struct result {
	int rc;
	int err;
};

static struct result call(int fd, unsigned long nr, uint32_t size)
{
	struct result r;

	memcpy(arg, &size, sizeof(size));
	errno = 0;
	r.rc = ioctl(fd, nr, arg);
	r.err = r.rc ? errno : 0;
	return r;
}

static void reset(size_t len)
{
	memset(arg, 0, sizeof(arg));
	(void)len;
}

static void check_lengths(int fd, const char *name, unsigned long nr,
			  size_t min, size_t size)
{
	struct result exact, r;
	size_t at;

	/* Below the minimum. */
	reset(size);
	arg[min - 1] = 0xff; /* garbage must not matter */
	r = call(fd, nr, (uint32_t)(min - 1));
	if (r.rc != -1 || r.err != EINVAL)
		FAIL("%s: size %zu (min - 1): expected EINVAL, got %d (%s)",
		     name, min - 1, r.rc, errno_name(r.err));

	/* The exact size, as the reference. */
	reset(size);
	exact = call(fd, nr, (uint32_t)size);

	/* One more byte, zero. */
	reset(size);
	r = call(fd, nr, (uint32_t)(size + 1));
	if (r.rc != exact.rc || r.err != exact.err)
		FAIL("%s: size %zu (sizeof + 1, zero tail): got %d (%s), "
		     "exact size gave %d (%s)", name, size + 1, r.rc,
		     errno_name(r.err), exact.rc, errno_name(exact.err));

	/* A long zero tail. */
	reset(size);
	r = call(fd, nr, (uint32_t)(size + TAIL));
	if (r.rc != exact.rc || r.err != exact.err)
		FAIL("%s: size %zu (long zero tail): got %d (%s), exact size "
		     "gave %d (%s)", name, size + TAIL, r.rc, errno_name(r.err),
		     exact.rc, errno_name(exact.err));

	/* A non-zero byte right after the struct, and at the tail's end. */
	for (at = size; at < size + TAIL; at += TAIL - 1) {
		reset(size);
		arg[at] = 1;
		r = call(fd, nr, (uint32_t)(size + TAIL));
		if (r.rc != -1 || r.err != E2BIG)
			FAIL("%s: non-zero byte at offset %zu of %zu: expected "
			     "E2BIG, got %d (%s)", name, at, size + TAIL, r.rc,
			     errno_name(r.err));
	}

	/* A non-zero byte past `size` is not looked at. */
	reset(size);
	arg[size + 8] = 0xff;
	r = call(fd, nr, (uint32_t)size);
	if (r.rc != exact.rc || r.err != exact.err)
		FAIL("%s: garbage past the size: got %d (%s), expected %d (%s)",
		     name, r.rc, errno_name(r.err), exact.rc,
		     errno_name(exact.err));
}

#define LENGTHS(_struct, _ioctl, _last)                                     \
	check_lengths(fd, #_ioctl, _ioctl, offsetofend(struct _struct, _last), \
		      sizeof(struct _struct))

int main(void)
{
	int fd = iommufd_open();
	uint32_t ioas;

	LENGTHS(iommu_destroy, IOMMU_DESTROY, id);
	LENGTHS(iommu_ioas_alloc, IOMMU_IOAS_ALLOC, out_ioas_id);
	LENGTHS(iommu_ioas_iova_ranges, IOMMU_IOAS_IOVA_RANGES,
		out_iova_alignment);
	LENGTHS(iommu_ioas_allow_iovas, IOMMU_IOAS_ALLOW_IOVAS, allowed_iovas);
	LENGTHS(iommu_ioas_map, IOMMU_IOAS_MAP, iova);
	LENGTHS(iommu_ioas_map_file, IOMMU_IOAS_MAP_FILE, iova);
	LENGTHS(iommu_ioas_copy, IOMMU_IOAS_COPY, src_iova);
	LENGTHS(iommu_ioas_unmap, IOMMU_IOAS_UNMAP, length);
	LENGTHS(iommu_option, IOMMU_OPTION, val64);
	LENGTHS(iommu_ioas_change_process, IOMMU_IOAS_CHANGE_PROCESS,
		__reserved);
	LENGTHS(iommu_test_cmd, IOMMU_TEST_CMD, last);

	/*
	 * Commands that succeed, with sizes that matter: IOAS_ALLOC with a
	 * zero tail returns a new ID and writes no byte past the struct.
	 */
	{
		struct {
			struct iommu_ioas_alloc cmd;
			uint8_t tail[16];
		} big;

		memset(&big, 0, sizeof(big));
		big.cmd.size = sizeof(big);
		if (CHECK_OK(ioctl(fd, IOMMU_IOAS_ALLOC, &big))) {
			CHECK(big.cmd.out_ioas_id != 0);
			for (size_t i = 0; i < sizeof(big.tail); i++)
				CHECK_EQ(0, big.tail[i]);
			CHECK_OK(destroy(fd, big.cmd.out_ioas_id));
		}
		big.tail[3] = 1;
		CHECK_ERRNO(E2BIG, ioctl(fd, IOMMU_IOAS_ALLOC, &big));
	}

	/*
	 * IOMMU_TEST_CMD has padding after `last`, so its minimum is below its
	 * size: a MOCK_DOMAIN with size = minimum works, and the bytes past
	 * the size are neither read (0xff would be E2BIG if they were part of
	 * the struct) nor written.
	 */
	REQUIRE_OK(ioas_alloc(fd, &ioas));
	{
		size_t min = offsetofend(struct iommu_test_cmd, last);
		union {
			struct iommu_test_cmd cmd;
			uint8_t bytes[sizeof(struct iommu_test_cmd) + 8];
		} u;

		if (min < sizeof(struct iommu_test_cmd)) {
			memset(&u, 0xff, sizeof(u));
			memset(&u, 0, min);
			u.cmd.size = (uint32_t)min;
			u.cmd.op = IOMMU_TEST_OP_MOCK_DOMAIN;
			u.cmd.id = ioas;
			if (CHECK_OK(ioctl(fd, IOMMU_TEST_CMD, &u.cmd))) {
				CHECK(u.cmd.mock_domain.out_stdev_id != 0);
				CHECK(u.cmd.mock_domain.out_hwpt_id != 0);
				for (size_t i = min; i < sizeof(u); i++)
					CHECK_EQ(0xff, u.bytes[i]);
				CHECK_OK(destroy(fd,
					u.cmd.mock_domain.out_stdev_id));
			}
		} else {
			FAIL("iommu_test_cmd has no padding after `last` "
			     "(min %zu, size %zu)", min, sizeof(u.cmd));
		}
	}

	/* IOAS_MAP with the exact size writes back no byte after it. */
	{
		size_t ps = page_size();
		char *buf = alloc_buffer(ps);
		struct {
			struct iommu_ioas_map cmd;
			uint8_t after[8];
		} m;

		memset(&m, 0xee, sizeof(m));
		memset(&m.cmd, 0, sizeof(m.cmd));
		m.cmd.size = sizeof(m.cmd);
		m.cmd.flags = IOMMU_IOAS_MAP_READABLE;
		m.cmd.ioas_id = ioas;
		m.cmd.user_va = (uintptr_t)buf;
		m.cmd.length = ps;
		if (CHECK_OK(ioctl(fd, IOMMU_IOAS_MAP, &m.cmd))) {
			for (size_t i = 0; i < sizeof(m.after); i++)
				CHECK_EQ(0xee, m.after[i]);
			CHECK_OK(ioas_unmap(fd, ioas, m.cmd.iova, ps, NULL));
		}
	}
	CHECK_OK(destroy(fd, ioas));

	CHECK_OK(close(fd));
	return finish();
}
