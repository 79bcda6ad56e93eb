/* SPDX-License-Identifier: MIT */
/*
 * Round trips through the interposer, timed against a real system call in the
 * same run. Prints one line per measurement, "name ns_per_call", the best of
 * ROUNDS rounds of `iterations` calls (argv[1]). Run by benches/roundtrip.rs.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include <linux/iommufd.h>

#define ROUNDS 7

static double now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e9 + ts.tv_nsec;
}

#define MEASURE(name, n, body)                                                  \
	do {                                                                    \
		double best = 1e30;                                             \
		for (int r_ = 0; r_ < ROUNDS; r_++) {                           \
			double t0 = now_ns();                                   \
			for (long i_ = 0; i_ < (n); i_++) {                     \
				body;                                           \
			}                                                       \
			double t = (now_ns() - t0) / (n);                       \
			if (t < best)                                           \
				best = t;                                       \
		}                                                               \
		printf("%s %.1f\n", name, best);                                \
	} while (0)

#define MUST(cond)                                                              \
	do {                                                                    \
		if (!(cond)) {                                                  \
			perror(#cond);                                          \
			exit(1);                                                \
		}                                                               \
	} while (0)

int main(int argc, char **argv)
{
	long n = argc > 1 ? atol(argv[1]) : 100000;
	int p[2], avail;
	MUST(pipe(p) == 0);
	MUST(write(p[1], "x", 1) == 1);

	MEASURE("fionread", n, MUST(ioctl(p[0], FIONREAD, &avail) == 0));

	/* What one copy_from_user costs the interposer on its slow path (the
	 * program blocks SIGSEGV/SIGBUS); the fast path is a memcpy. */
	uint32_t word = 1, copy;
	struct iovec local = { &copy, sizeof(copy) }, remote = { &word, sizeof(word) };
	MEASURE("process_vm_readv", n,
		MUST(process_vm_readv(getpid(), &local, 1, &remote, 1, 0) == sizeof(copy)));

	/* Every open pays for reading its path safely. */
	MEASURE("open_close", n / 4, {
		int f = open("/dev/null", O_RDONLY);
		MUST(f >= 0);
		close(f);
	});

	if (argc > 2 && !strcmp(argv[2], "syscalls-only"))
		return 0;

	int fd = open("/dev/iommu", O_RDWR | O_CLOEXEC);
	MUST(fd >= 0);
	struct iommu_option opt = {
		.size = sizeof(opt),
		.option_id = IOMMU_OPTION_RLIMIT_MODE,
		.op = IOMMU_OPTION_OP_GET,
	};
	MEASURE("option_get", n, MUST(ioctl(fd, IOMMU_OPTION, &opt) == 0));

	struct iommu_ioas_alloc alloc = { .size = sizeof(alloc) };
	struct iommu_destroy destroy = { .size = sizeof(destroy) };
	MEASURE("alloc_destroy", n / 2, {
		MUST(ioctl(fd, IOMMU_IOAS_ALLOC, &alloc) == 0);
		destroy.id = alloc.out_ioas_id;
		MUST(ioctl(fd, IOMMU_DESTROY, &destroy) == 0);
	});

	/* The pipe again, now that the program has one of our fds: the fast path's
	 * "is this fd ours?" with the table in use. */
	MEASURE("fionread_with_ours", n, MUST(ioctl(p[0], FIONREAD, &avail) == 0));
	MEASURE("open_close_with_ours", n / 4, {
		int f = open("/dev/null", O_RDONLY);
		MUST(f >= 0);
		close(f);
	});
	close(fd);
	return 0;
}
