/* SPDX-License-Identifier: MIT */
/*
 * A forked child uses the iommufd it inherited: the IOAS, device and mapping
 * made before fork() are there, it can map and unmap its own memory in that
 * IOAS, and it can open a context of its own. The parent's state is intact
 * after the child exits.
 *
 * The checks hold whether the child's view is the kernel's (one context shared
 * across fork) or a copy taken at fork time: the child undoes what it does in
 * the inherited context, and the buffer mapped before fork() is MAP_SHARED so
 * that parent and child see the same pages.
 */
#include "ctest.h"

#include <sys/wait.h>

static int child(int fd, uint32_t ioas, uint32_t hwpt, char *shared,
		 uint64_t shared_iova, size_t len)
{
	size_t ps = page_size();
	char *own = alloc_buffer(2 * ps);
	uint32_t ioas2, stdev2, hwpt2;
	uint64_t iova;
	int fd2;

	memset(own, 0x77, 2 * ps);
	/* The mapping made before fork() is visible. */
	CHECK_OK(check_map(fd, hwpt, shared_iova, shared, len));
	/* Map, check and unmap the child's own memory there. */
	if (CHECK_OK(ioas_map(fd, ioas, own, 2 * ps, &iova, false))) {
		CHECK_OK(check_map(fd, hwpt, iova, own, 2 * ps));
		CHECK_OK(ioas_unmap(fd, ioas, iova, 2 * ps, NULL));
	}
	/* A context of its own. */
	fd2 = iommufd_open();
	if (CHECK_OK(ioas_alloc(fd2, &ioas2)) &&
	    CHECK_OK(mock_domain(fd2, ioas2, &stdev2, &hwpt2, NULL))) {
		if (CHECK_OK(ioas_map(fd2, ioas2, own, 2 * ps, &iova, false))) {
			CHECK_OK(check_map(fd2, hwpt2, iova, own, 2 * ps));
			CHECK_OK(ioas_unmap(fd2, ioas2, iova, 2 * ps, NULL));
		}
		CHECK_OK(destroy(fd2, stdev2));
		CHECK_OK(destroy(fd2, ioas2));
	}
	CHECK_OK(close(fd2));
	if (failures)
		fprintf(stderr, "child: %d check(s) failed\n", failures);
	return failures ? 1 : 0;
}

int main(void)
{
	size_t ps = page_size();
	size_t len = 4 * ps;
	uint32_t ioas, stdev, hwpt;
	uint64_t iova;
	int fd = iommufd_open();
	int status;
	pid_t pid;
	char *shared = mmap(NULL, len, PROT_READ | PROT_WRITE,
			    MAP_SHARED | MAP_ANONYMOUS, -1, 0);

	REQUIRE(shared != MAP_FAILED);
	memset(shared, 0x42, len);
	REQUIRE_OK(ioas_alloc(fd, &ioas));
	REQUIRE_OK(mock_domain(fd, ioas, &stdev, &hwpt, NULL));
	REQUIRE_OK(ioas_map(fd, ioas, shared, len, &iova, false));

	fflush(stdout);
	fflush(stderr);
	pid = fork();
	REQUIRE(pid >= 0);
	if (pid == 0)
		_exit(child(fd, ioas, hwpt, shared, iova, len));

	REQUIRE(waitpid(pid, &status, 0) == pid);
	CHECK(WIFEXITED(status));
	CHECK_EQ(0, WEXITSTATUS(status));

	/* The parent's state is as it was. */
	CHECK_OK(check_map(fd, hwpt, iova, shared, len));
	CHECK_OK(check_refs(fd, shared, len, 1));
	CHECK_OK(ioas_unmap(fd, ioas, iova, len, NULL));
	CHECK_OK(check_refs(fd, shared, len, 0));
	CHECK_OK(destroy(fd, stdev));
	CHECK_OK(destroy(fd, ioas));
	CHECK_OK(close(fd));
	return finish();
}
