/* SPDX-License-Identifier: MIT */
/*
 * Shared helpers for the C tests of softiommu's uAPI boundary.
 *
 * Each test program includes this file once, checks its expectations with the
 * CHECK* macros (which print every failed check with its line and go on), uses
 * REQUIRE* for steps the rest of the program depends on (which stop the
 * program), and ends with `return finish();`, which turns the failure count into
 * the exit status.
 *
 * The programs are compiled against the headers `softiommu headers DIR` writes
 * (<linux/iommufd.h> and iommufd_test.h) and run under `softiommu run`.
 */
#ifndef SOFTIOMMU_CTEST_H
#define SOFTIOMMU_CTEST_H

#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <linux/iommufd.h>
#include "iommufd_test.h"

static int failures;

static inline const char *errno_name(int e)
{
	switch (e) {
	case 0: return "0";
	case EPERM: return "EPERM";
	case ENOENT: return "ENOENT";
	case EIO: return "EIO";
	case E2BIG: return "E2BIG";
	case EBADF: return "EBADF";
	case ENOMEM: return "ENOMEM";
	case EFAULT: return "EFAULT";
	case EBUSY: return "EBUSY";
	case EEXIST: return "EEXIST";
	case EINVAL: return "EINVAL";
	case ENOTTY: return "ENOTTY";
	case ENOSPC: return "ENOSPC";
	case ERANGE: return "ERANGE";
	case EOVERFLOW: return "EOVERFLOW";
	case EBADFD: return "EBADFD";
	case EMSGSIZE: return "EMSGSIZE";
	case EOPNOTSUPP: return "EOPNOTSUPP";
	case EADDRINUSE: return "EADDRINUSE";
	case ENXIO: return "ENXIO";
	case ENODEV: return "ENODEV";
	case EACCES: return "EACCES";
	case EMFILE: return "EMFILE";
	default: return "E?";
	}
}

/* Records a failed check. */
#define FAIL(...)                                                          \
	do {                                                               \
		fprintf(stderr, "%s:%d: FAILED: ", __FILE__, __LINE__);    \
		fprintf(stderr, __VA_ARGS__);                              \
		fprintf(stderr, "\n");                                     \
		__atomic_fetch_add(&failures, 1, __ATOMIC_RELAXED);       \
	} while (0)

/* Checks that `cond` holds. */
#define CHECK(cond)                                                        \
	do {                                                               \
		if (!(cond))                                               \
			FAIL("%s", #cond);                                 \
	} while (0)

/* Checks that two unsigned integers are equal. */
#define CHECK_EQ(expected, seen)                                           \
	do {                                                               \
		unsigned long long e_ = (unsigned long long)(expected);    \
		unsigned long long s_ = (unsigned long long)(seen);        \
		if (e_ != s_)                                              \
			FAIL("%s == %s: expected %#llx, got %#llx",        \
			     #expected, #seen, e_, s_);                    \
	} while (0)

/* Checks that a call returns 0; evaluates to true when it did. */
#define CHECK_OK(expr)                                                     \
	({                                                                 \
		errno = 0;                                                 \
		long rc_ = (long)(expr);                                   \
		int e_ = errno;                                            \
		if (rc_ != 0)                                              \
			FAIL("%s: expected success, got %ld (errno %s, %s)", \
			     #expr, rc_, errno_name(e_), strerror(e_));    \
		rc_ == 0;                                                  \
	})

/* Checks that a call fails with -1 and errno `err`. */
#define CHECK_ERRNO(err, expr)                                             \
	do {                                                               \
		errno = 0;                                                 \
		long rc_ = (long)(expr);                                   \
		int e_ = errno;                                            \
		if (rc_ != -1 || e_ != (err))                              \
			FAIL("%s: expected -1 with errno %s, got %ld "     \
			     "(errno %s, %s)",                             \
			     #expr, errno_name(err), rc_, errno_name(e_),  \
			     strerror(e_));                                \
	} while (0)

/* Like CHECK_OK, but the program cannot go on without it: stops. */
#define REQUIRE_OK(expr)                                                   \
	do {                                                               \
		if (!CHECK_OK(expr)) {                                     \
			fprintf(stderr, "cannot continue\n");              \
			exit(1);                                           \
		}                                                          \
	} while (0)

#define REQUIRE(cond)                                                      \
	do {                                                               \
		if (!(cond)) {                                             \
			FAIL("%s", #cond);                                 \
			fprintf(stderr, "cannot continue\n");              \
			exit(1);                                           \
		}                                                          \
	} while (0)

static inline int finish(void)
{
	if (failures) {
		fprintf(stderr, "%d check(s) failed\n", failures);
		return 1;
	}
	printf("all checks passed\n");
	return 0;
}

static inline size_t page_size(void)
{
	return (size_t)sysconf(_SC_PAGESIZE);
}

/* An anonymous private mapping of `len` bytes, or the program stops. */
static inline void *alloc_buffer(size_t len)
{
	void *p = mmap(NULL, len, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	REQUIRE(p != MAP_FAILED);
	return p;
}

static inline int iommufd_open(void)
{
	int fd = open("/dev/iommu", O_RDWR | O_CLOEXEC);

	if (fd < 0) {
		FAIL("open(/dev/iommu): %s (is the program running under "
		     "`softiommu run`?)", strerror(errno));
		exit(1);
	}
	return fd;
}

static inline int ioas_alloc(int fd, uint32_t *ioas_id)
{
	struct iommu_ioas_alloc cmd = { .size = sizeof(cmd) };
	int rc = ioctl(fd, IOMMU_IOAS_ALLOC, &cmd);

	*ioas_id = rc ? 0 : cmd.out_ioas_id;
	return rc;
}

static inline int destroy(int fd, uint32_t id)
{
	struct iommu_destroy cmd = { .size = sizeof(cmd), .id = id };

	return ioctl(fd, IOMMU_DESTROY, &cmd);
}

/* MOCK_DOMAIN: a mock device attached to `pt_id` (an IOAS or a HWPT). */
static inline int mock_domain(int fd, uint32_t pt_id, uint32_t *stdev_id,
		       uint32_t *hwpt_id, uint32_t *idev_id)
{
	struct iommu_test_cmd cmd = {
		.size = sizeof(cmd),
		.op = IOMMU_TEST_OP_MOCK_DOMAIN,
		.id = pt_id,
	};
	int rc = ioctl(fd, IOMMU_TEST_CMD, &cmd);

	/* Outputs are zero on failure. */
	if (stdev_id)
		*stdev_id = rc ? 0 : cmd.mock_domain.out_stdev_id;
	if (hwpt_id)
		*hwpt_id = rc ? 0 : cmd.mock_domain.out_hwpt_id;
	if (idev_id)
		*idev_id = rc ? 0 : cmd.mock_domain.out_idev_id;
	return rc;
}

/* IOAS_MAP; with `fixed` the IOVA is *iova, otherwise it is returned there
 * (0 on failure). */
static inline int ioas_map(int fd, uint32_t ioas_id, const void *buf, uint64_t len,
		    uint64_t *iova, bool fixed)
{
	struct iommu_ioas_map cmd = {
		.size = sizeof(cmd),
		.flags = IOMMU_IOAS_MAP_READABLE | IOMMU_IOAS_MAP_WRITEABLE |
			 (fixed ? IOMMU_IOAS_MAP_FIXED_IOVA : 0),
		.ioas_id = ioas_id,
		.user_va = (uintptr_t)buf,
		.length = len,
		.iova = fixed ? *iova : 0,
	};
	int rc = ioctl(fd, IOMMU_IOAS_MAP, &cmd);

	if (!rc)
		*iova = cmd.iova;
	else if (!fixed)
		*iova = 0;
	return rc;
}

/* IOAS_UNMAP; returns the unmapped length through `*unmapped` if given. */
static inline int ioas_unmap(int fd, uint32_t ioas_id, uint64_t iova, uint64_t len,
		      uint64_t *unmapped)
{
	struct iommu_ioas_unmap cmd = {
		.size = sizeof(cmd),
		.ioas_id = ioas_id,
		.iova = iova,
		.length = len,
	};
	int rc = ioctl(fd, IOMMU_IOAS_UNMAP, &cmd);

	if (unmapped)
		*unmapped = rc ? 0 : cmd.length;
	return rc;
}

static inline int check_map(int fd, uint32_t hwpt_id, uint64_t iova,
		     const void *buf, uint64_t len)
{
	struct iommu_test_cmd cmd = {
		.size = sizeof(cmd),
		.op = IOMMU_TEST_OP_MD_CHECK_MAP,
		.id = hwpt_id,
		.check_map = { .iova = iova, .length = len,
			       .uptr = (uintptr_t)buf },
	};

	return ioctl(fd, IOMMU_TEST_CMD, &cmd);
}

static inline int check_refs(int fd, const void *buf, uint64_t len, uint32_t refs)
{
	struct iommu_test_cmd cmd = {
		.size = sizeof(cmd),
		.op = IOMMU_TEST_OP_MD_CHECK_REFS,
		.check_refs = { .length = len, .uptr = (uintptr_t)buf,
				.refs = refs },
	};

	return ioctl(fd, IOMMU_TEST_CMD, &cmd);
}

static inline int create_access(int fd, uint32_t ioas_id, uint32_t flags,
			 int *access_fd)
{
	struct iommu_test_cmd cmd = {
		.size = sizeof(cmd),
		.op = IOMMU_TEST_OP_CREATE_ACCESS,
		.id = ioas_id,
		.create_access = { .flags = flags },
	};
	int rc = ioctl(fd, IOMMU_TEST_CMD, &cmd);

	*access_fd = rc ? -1 : (int)cmd.create_access.out_access_fd;
	return rc;
}

static inline int access_rw(int fd, int access_fd, uint64_t iova, void *buf,
		     uint64_t len, uint32_t flags)
{
	struct iommu_test_cmd cmd = {
		.size = sizeof(cmd),
		.op = IOMMU_TEST_OP_ACCESS_RW,
		.id = (uint32_t)access_fd,
		.access_rw = { .iova = iova, .length = len,
			       .uptr = (uintptr_t)buf, .flags = flags },
	};

	return ioctl(fd, IOMMU_TEST_CMD, &cmd);
}

/* IOAS_IOVA_RANGES into `ranges[max]`; the count goes to `*num`. */
static inline int iova_ranges(int fd, uint32_t ioas_id, struct iommu_iova_range *ranges,
		       uint32_t max, uint32_t *num, uint64_t *alignment)
{
	struct iommu_ioas_iova_ranges cmd = {
		.size = sizeof(cmd),
		.ioas_id = ioas_id,
		.num_iovas = max,
		.allowed_iovas = (uintptr_t)ranges,
	};
	int rc = ioctl(fd, IOMMU_IOAS_IOVA_RANGES, &cmd);

	*num = cmd.num_iovas;
	if (alignment)
		*alignment = cmd.out_iova_alignment;
	return rc;
}

/* IOMMU_OPTION; on success the value read or set goes to `*val`. */
static inline int option(int fd, uint32_t option_id, uint16_t op, uint32_t object_id,
		  uint64_t *val)
{
	struct iommu_option cmd = {
		.size = sizeof(cmd),
		.option_id = option_id,
		.op = op,
		.object_id = object_id,
		.val64 = *val,
	};
	int rc = ioctl(fd, IOMMU_OPTION, &cmd);

	if (!rc)
		*val = cmd.val64;
	return rc;
}

#endif
