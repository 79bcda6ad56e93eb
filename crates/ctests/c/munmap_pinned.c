/* SPDX-License-Identifier: MIT */
/*
 * Memory the program munmaps while it is still mapped in an IOAS: the pages
 * were pinned for the mock domain, so the kernel keeps them, and the IOAS
 * still reaches the old contents. Read them back through a selftest access
 * (CREATE_ACCESS + ACCESS_RW), write new data through it and read that back,
 * then unmap and close without a fault. The same with memory replaced by a
 * MAP_FIXED mapping.
 */
#include "ctest.h"

static void fill(uint8_t *p, size_t len, uint8_t seed)
{
	for (size_t i = 0; i < len; i++)
		p[i] = (uint8_t)(seed + i * 7);
}

static int same(const uint8_t *p, size_t len, uint8_t seed)
{
	for (size_t i = 0; i < len; i++)
		if (p[i] != (uint8_t)(seed + i * 7))
			return 0;
	return 1;
}

/* Maps `buf`, lets `drop` take the program's mapping away, then reads the
 * IOAS. */
static void run(int fd, uint32_t ioas, int afd, size_t len, int fixed_over,
		uint8_t seed)
{
	uint8_t *buf = alloc_buffer(len);
	uint8_t *back = malloc(len);
	uint64_t iova;

	REQUIRE(back != NULL);
	fill(buf, len, seed);
	if (!CHECK_OK(ioas_map(fd, ioas, buf, len, &iova, false)))
		return;

	if (fixed_over) {
		/* Replace the buffer with fresh zero pages at the same VA. */
		void *p = mmap(buf, len, PROT_READ | PROT_WRITE,
			       MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);

		REQUIRE(p == buf);
		CHECK_EQ(0, buf[0]);
	} else {
		REQUIRE(munmap(buf, len) == 0);
	}

	/* The IOAS still holds the old contents... */
	memset(back, 0, len);
	if (CHECK_OK(access_rw(fd, afd, iova, back, len, 0)))
		CHECK(same(back, len, seed));
	/* ...page by page too. */
	memset(back, 0, len);
	if (CHECK_OK(access_rw(fd, afd, iova, back, len,
			       MOCK_ACCESS_RW_SLOW_PATH)))
		CHECK(same(back, len, seed));
	/* It can be written and read back. */
	fill(back, len, (uint8_t)(seed + 1));
	CHECK_OK(access_rw(fd, afd, iova, back, len, MOCK_ACCESS_RW_WRITE));
	memset(back, 0, len);
	if (CHECK_OK(access_rw(fd, afd, iova, back, len, 0)))
		CHECK(same(back, len, (uint8_t)(seed + 1)));
	/* A MAP_FIXED replacement is not what the IOAS sees. */
	if (fixed_over)
		CHECK_EQ(0, buf[0]);

	CHECK_OK(ioas_unmap(fd, ioas, iova, len, NULL));
	if (fixed_over)
		munmap(buf, len);
	free(back);
}

int main(void)
{
	size_t ps = page_size();
	uint32_t ioas, stdev;
	int fd = iommufd_open();
	int afd;

	REQUIRE_OK(ioas_alloc(fd, &ioas));
	REQUIRE_OK(mock_domain(fd, ioas, &stdev, NULL, NULL));
	REQUIRE_OK(create_access(fd, ioas, 0, &afd));

	run(fd, ioas, afd, 8 * ps, 0, 3);
	run(fd, ioas, afd, 8 * ps, 1, 9);

	CHECK_OK(close(afd));
	CHECK_OK(destroy(fd, stdev));
	CHECK_OK(destroy(fd, ioas));
	CHECK_OK(close(fd));
	return finish();
}
