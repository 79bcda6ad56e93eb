/* SPDX-License-Identifier: MIT */
/*
 * IOMMU_IOAS_CHANGE_PROCESS: moves the pin accounting of every mapping to the
 * calling process. It works when every mapping is a file mapping
 * (IOAS_MAP_FILE), from the process itself and from a forked child, and is
 * EINVAL while a plain user-memory mapping exists.
 */
#include "ctest.h"

#include <sys/wait.h>

static int change_process(int fd)
{
	struct iommu_ioas_change_process cmd = { .size = sizeof(cmd) };

	return ioctl(fd, IOMMU_IOAS_CHANGE_PROCESS, &cmd);
}

int main(void)
{
	size_t ps = page_size();
	size_t len = 4 * ps;
	uint32_t ioas, stdev, hwpt;
	uint64_t iova, anon_iova;
	int fd = iommufd_open();
	int mfd = memfd_create("softiommu-change-process", MFD_CLOEXEC);
	char *view, *anon = alloc_buffer(ps);
	int status;
	pid_t pid;

	REQUIRE(mfd >= 0);
	REQUIRE(ftruncate(mfd, (off_t)len) == 0);
	view = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, mfd, 0);
	REQUIRE(view != MAP_FAILED);
	memset(view, 0x6b, len);

	/* Nothing mapped: nothing to move. */
	CHECK_OK(change_process(fd));

	REQUIRE_OK(ioas_alloc(fd, &ioas));
	REQUIRE_OK(mock_domain(fd, ioas, &stdev, &hwpt, NULL));
	{
		struct iommu_ioas_map_file cmd = {
			.size = sizeof(cmd),
			.flags = IOMMU_IOAS_MAP_READABLE |
				 IOMMU_IOAS_MAP_WRITEABLE,
			.ioas_id = ioas,
			.fd = mfd,
			.length = len,
		};

		REQUIRE_OK(ioctl(fd, IOMMU_IOAS_MAP_FILE, &cmd));
		iova = cmd.iova;
	}

	/* Only file mappings: the caller may take them over. */
	CHECK_OK(change_process(fd));

	/* A forked child takes them over. */
	fflush(stdout);
	fflush(stderr);
	pid = fork();
	REQUIRE(pid >= 0);
	if (pid == 0) {
		int rc = change_process(fd);

		if (rc)
			fprintf(stderr, "child: IOMMU_IOAS_CHANGE_PROCESS: %s\n",
				strerror(errno));
		_exit(rc ? 1 : 0);
	}
	REQUIRE(waitpid(pid, &status, 0) == pid);
	CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	/* The mapping is unchanged. */
	CHECK_OK(check_map(fd, hwpt, iova, view, len));
	/* And the parent can take it back. */
	CHECK_OK(change_process(fd));

	/* A mapping of plain user memory cannot move. */
	if (CHECK_OK(ioas_map(fd, ioas, anon, ps, &anon_iova, false))) {
		CHECK_ERRNO(EINVAL, change_process(fd));
		CHECK_OK(ioas_unmap(fd, ioas, anon_iova, ps, NULL));
		CHECK_OK(change_process(fd));
	}

	CHECK_OK(ioas_unmap(fd, ioas, iova, len, NULL));
	CHECK_OK(destroy(fd, stdev));
	CHECK_OK(destroy(fd, ioas));
	CHECK_OK(close(fd));
	CHECK_OK(close(mfd));
	return finish();
}
