/* SPDX-License-Identifier: MIT */
/*
 * dup() shares one iommufd context: objects made through one descriptor are
 * visible through every copy (dup, dup2, fcntl F_DUPFD_CLOEXEC), and closing
 * one copy does not tear the context down; closing the last one does.
 */
#include "ctest.h"

int main(void)
{
	size_t ps = page_size();
	size_t len = 8 * ps;
	char *buf = alloc_buffer(len);
	uint32_t ioas, stdev, hwpt;
	uint64_t iova;
	int fd = iommufd_open();
	int fd2 = dup(fd);
	int fd3 = fcntl(fd, F_DUPFD_CLOEXEC, 100);
	int fd4 = 200;

	REQUIRE(fd2 >= 0);
	REQUIRE(fd3 >= 100);
	REQUIRE(dup2(fd, fd4) == fd4);
	memset(buf, 0x33, len);

	/* Made through one descriptor, used through the others. */
	REQUIRE_OK(ioas_alloc(fd, &ioas));
	REQUIRE_OK(mock_domain(fd2, ioas, &stdev, &hwpt, NULL));
	REQUIRE_OK(ioas_map(fd3, ioas, buf, len, &iova, false));
	CHECK_OK(check_map(fd4, hwpt, iova, buf, len));
	CHECK_OK(check_refs(fd, buf, len, 1));

	/* Closing copies keeps the context. */
	CHECK_OK(close(fd));
	CHECK_OK(close(fd3));
	CHECK_OK(check_map(fd2, hwpt, iova, buf, len));
	CHECK_OK(check_refs(fd4, buf, len, 1));
	/* An IOAS in use is still in use. */
	CHECK_ERRNO(EBUSY, destroy(fd2, ioas));

	/* Closing the last two releases everything. */
	CHECK_OK(close(fd2));
	CHECK_OK(close(fd4));
	fd = iommufd_open();
	CHECK_OK(check_refs(fd, buf, len, 0));
	/* A new context starts empty. */
	CHECK_ERRNO(ENOENT, destroy(fd, ioas));
	CHECK_OK(close(fd));
	return finish();
}
