/* SPDX-License-Identifier: MIT */
/*
 * The interposer seen from an unmodified C program: `preload CASE` runs one case
 * and exits 0 when every check held. Compiled against the headers
 * `softiommu_uapi::cheader` writes, run with LD_PRELOAD=libsoftiommu_preload.so
 * by tests/interposer.rs.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <linux/iommufd.h>
#include "iommufd_test.h"

static int failures;

#define CHECK(cond)                                                             \
	do {                                                                    \
		if (!(cond)) {                                                  \
			printf("%s:%d: check failed: %s (errno %d %s)\n",       \
			       __FILE__, __LINE__, #cond, errno, strerror(errno)); \
			failures++;                                             \
		}                                                               \
	} while (0)

/* A call expected to fail with `err`. */
#define CHECK_ERR(call, err)                                                    \
	do {                                                                    \
		errno = 0;                                                      \
		long r_ = (long)(call);                                         \
		if (r_ != -1 || errno != (err)) {                               \
			printf("%s:%d: %s = %ld errno %d (%s), want -1 %s\n",   \
			       __FILE__, __LINE__, #call, r_, errno,            \
			       strerror(errno), #err);                          \
			failures++;                                             \
		}                                                               \
	} while (0)

#define REQUIRE(cond)                                                           \
	do {                                                                    \
		if (!(cond)) {                                                  \
			printf("%s:%d: required: %s (errno %d %s)\n", __FILE__, \
			       __LINE__, #cond, errno, strerror(errno));        \
			exit(2);                                                \
		}                                                               \
	} while (0)

#define BUF_PAGES 4
#define BUF_LEN (BUF_PAGES * 4096UL)

static int open_iommu(void)
{
	int fd = open("/dev/iommu", O_RDWR | O_CLOEXEC);
	REQUIRE(fd >= 0);
	return fd;
}

static uint32_t ioas_alloc(int fd)
{
	struct iommu_ioas_alloc cmd = { .size = sizeof(cmd) };
	REQUIRE(ioctl(fd, IOMMU_IOAS_ALLOC, &cmd) == 0);
	return cmd.out_ioas_id;
}

static int destroy(int fd, uint32_t id)
{
	struct iommu_destroy cmd = { .size = sizeof(cmd), .id = id };
	return ioctl(fd, IOMMU_DESTROY, &cmd);
}

/* A mock device on `ioas_id`; returns the HWPT its domain is. */
static uint32_t mock_domain(int fd, uint32_t ioas_id, uint32_t *stdev_id)
{
	struct iommu_test_cmd cmd = {
		.size = sizeof(cmd),
		.op = IOMMU_TEST_OP_MOCK_DOMAIN,
		.id = ioas_id,
	};
	REQUIRE(ioctl(fd, IOMMU_TEST_CMD, &cmd) == 0);
	if (stdev_id)
		*stdev_id = cmd.mock_domain.out_stdev_id;
	return cmd.mock_domain.out_hwpt_id;
}

static void *buffer(void)
{
	void *p = mmap(NULL, BUF_LEN, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	REQUIRE(p != MAP_FAILED);
	memset(p, 0x5a, BUF_LEN);
	return p;
}

static int map(int fd, uint32_t ioas_id, void *buf, uint64_t *iova)
{
	struct iommu_ioas_map cmd = {
		.size = sizeof(cmd),
		.flags = IOMMU_IOAS_MAP_READABLE | IOMMU_IOAS_MAP_WRITEABLE,
		.ioas_id = ioas_id,
		.user_va = (uintptr_t)buf,
		.length = BUF_LEN,
	};
	int r = ioctl(fd, IOMMU_IOAS_MAP, &cmd);
	*iova = cmd.iova;
	return r;
}

static int check_map(int fd, uint32_t hwpt_id, uint64_t iova, void *buf)
{
	struct iommu_test_cmd cmd = {
		.size = sizeof(cmd),
		.op = IOMMU_TEST_OP_MD_CHECK_MAP,
		.id = hwpt_id,
		.check_map = { .iova = iova, .length = BUF_LEN, .uptr = (uintptr_t)buf },
	};
	return ioctl(fd, IOMMU_TEST_CMD, &cmd);
}

static int check_refs(int fd, void *buf, uint32_t refs)
{
	struct iommu_test_cmd cmd = {
		.size = sizeof(cmd),
		.op = IOMMU_TEST_OP_MD_CHECK_REFS,
		.check_refs = { .length = BUF_LEN, .uptr = (uintptr_t)buf, .refs = refs },
	};
	return ioctl(fd, IOMMU_TEST_CMD, &cmd);
}

/* open, IOAS_ALLOC, mock domain, map, MD_CHECK_MAP, unmap, close. */
static void case_basic(void)
{
	int fd = open_iommu();
	uint32_t ioas = ioas_alloc(fd), stdev;
	uint32_t hwpt = mock_domain(fd, ioas, &stdev);
	void *buf = buffer();
	uint64_t iova = 0;

	errno = 4321;
	CHECK(map(fd, ioas, buf, &iova) == 0);
	CHECK(errno == 4321); /* success leaves errno alone */
	CHECK(iova >= MOCK_APERTURE_START && iova + BUF_LEN - 1 <= MOCK_APERTURE_LAST);
	CHECK(check_map(fd, hwpt, iova, buf) == 0);
	CHECK(check_refs(fd, buf, 1) == 0);

	struct iommu_ioas_unmap unmap = {
		.size = sizeof(unmap), .ioas_id = ioas, .iova = iova, .length = BUF_LEN,
	};
	CHECK(ioctl(fd, IOMMU_IOAS_UNMAP, &unmap) == 0);
	CHECK(unmap.length == BUF_LEN);
	CHECK_ERR(ioctl(fd, IOMMU_IOAS_UNMAP, &unmap), ENOENT);
	CHECK(check_refs(fd, buf, 0) == 0);

	struct iommu_option opt = {
		.size = sizeof(opt),
		.option_id = IOMMU_OPTION_RLIMIT_MODE,
		.op = IOMMU_OPTION_OP_GET,
		.val64 = 77,
	};
	CHECK(ioctl(fd, IOMMU_OPTION, &opt) == 0);
	CHECK(opt.val64 == 0);

	CHECK_ERR(destroy(fd, ioas), EBUSY); /* the mock device is attached */
	CHECK(destroy(fd, stdev) == 0);
	CHECK(destroy(fd, ioas) == 0);
	CHECK(close(fd) == 0);
	CHECK_ERR(ioctl(fd, IOMMU_IOAS_ALLOC, &opt), EBADF);
}

/* Bad pointers are EFAULT, in the argument and in the path. */
static void case_efault(void)
{
	int fd = open_iommu();
	CHECK_ERR(ioctl(fd, IOMMU_IOAS_ALLOC, (void *)8), EFAULT);
	CHECK_ERR(ioctl(fd, IOMMU_IOAS_ALLOC, (void *)-4096L), EFAULT);
	struct iommu_ioas_alloc ro_cmd = { .size = sizeof(ro_cmd) };
	void *ro = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	REQUIRE(ro != MAP_FAILED);
	memcpy(ro, &ro_cmd, sizeof(ro_cmd));
	REQUIRE(mprotect(ro, 4096, PROT_READ) == 0);
	/* The answer cannot be written back: EFAULT, and nothing is left behind. */
	CHECK_ERR(ioctl(fd, IOMMU_IOAS_ALLOC, ro), EFAULT);
	CHECK(ioas_alloc(fd) == 1);
	CHECK_ERR(open((const char *)8, O_RDONLY), EFAULT);
	CHECK_ERR(openat(AT_FDCWD, (const char *)-4096L, O_RDONLY), EFAULT);
	CHECK(close(fd) == 0);
}

/* Unknown ioctls are ENOTTY; known ones with bad sizes follow the rules. */
static void case_enotty(void)
{
	int fd = open_iommu();
	int n;
	CHECK_ERR(ioctl(fd, TCGETS, &n), ENOTTY);
	CHECK_ERR(ioctl(fd, FIONREAD, &n), ENOTTY);
	CHECK_ERR(ioctl(fd, _IO(IOMMUFD_TYPE, 0xff), &n), ENOTTY);
	struct iommu_ioas_alloc cmd = { .size = 4 };
	CHECK_ERR(ioctl(fd, IOMMU_IOAS_ALLOC, &cmd), EINVAL);
	CHECK(close(fd) == 0);
}

/* dup'ed fds share one context; dup2 onto ours drops it. */
static void case_dup(void)
{
	int fd = open_iommu();
	int fd2 = dup(fd);
	int fd3 = fcntl(fd, F_DUPFD_CLOEXEC, 100);
	int fd4 = dup2(fd, 200);
	int fd5 = dup3(fd, 201, O_CLOEXEC);
	REQUIRE(fd2 >= 0 && fd3 >= 100 && fd4 == 200 && fd5 == 201);
	CHECK(fcntl(fd3, F_GETFD) == FD_CLOEXEC);
	CHECK(fcntl(fd5, F_GETFD) == FD_CLOEXEC);

	uint32_t ioas = ioas_alloc(fd);
	CHECK(destroy(fd2, ioas) == 0);
	CHECK_ERR(destroy(fd3, ioas), ENOENT);
	ioas = ioas_alloc(fd4);
	CHECK(close(fd) == 0);
	CHECK(destroy(fd5, ioas) == 0);

	/* dup2 of a pipe onto fd2: fd2 is a pipe now, the others still ours. */
	int p[2];
	REQUIRE(pipe(p) == 0);
	CHECK(write(p[1], "hello", 5) == 5);
	CHECK(dup2(p[0], fd2) == fd2);
	int n = -1;
	CHECK(ioctl(fd2, FIONREAD, &n) == 0 && n == 5);
	CHECK(ioas_alloc(fd3) == 1);
	CHECK(close(fd3) == 0 && close(fd4) == 0 && close(fd5) == 0);
	CHECK(close(fd2) == 0 && close(p[0]) == 0 && close(p[1]) == 0);
}

/* The last close of a description frees everything it pinned. */
static void case_close_frees(void)
{
	void *buf = buffer();
	int fd = open_iommu();
	uint32_t ioas = ioas_alloc(fd);
	mock_domain(fd, ioas, NULL);
	uint64_t iova;
	CHECK(map(fd, ioas, buf, &iova) == 0);
	int twin = dup(fd);
	CHECK(close(fd) == 0);

	int probe = open_iommu();
	CHECK(check_refs(probe, buf, 1) == 0); /* twin keeps the context */
	CHECK(close(twin) == 0);
	CHECK(check_refs(probe, buf, 0) == 0);
	CHECK(close(probe) == 0);

	/* An access fd is ours too and closes like one. */
	fd = open_iommu();
	ioas = ioas_alloc(fd);
	struct iommu_test_cmd ca = {
		.size = sizeof(ca),
		.op = IOMMU_TEST_OP_CREATE_ACCESS,
		.id = ioas,
		.create_access = { .flags = MOCK_FLAGS_ACCESS_CREATE_NEEDS_PIN_PAGES },
	};
	CHECK(ioctl(fd, IOMMU_TEST_CMD, &ca) == 0);
	int afd = ca.create_access.out_access_fd;
	CHECK(afd > fd);
	CHECK(fcntl(afd, F_GETFD) == FD_CLOEXEC);
	char c;
	CHECK_ERR(read(afd, &c, 1), EINVAL);
	CHECK_ERR(ioctl(afd, IOMMU_IOAS_ALLOC, &ca), ENOTTY);
	CHECK(close(afd) == 0);
	CHECK(close(fd) == 0);
}

/* A forked child works on its own copy; the parent's context is untouched. */
static void case_fork(void)
{
	void *buf = buffer();
	int fd = open_iommu();
	uint32_t ioas = ioas_alloc(fd);
	uint32_t hwpt = mock_domain(fd, ioas, NULL);
	uint64_t iova;
	CHECK(map(fd, ioas, buf, &iova) == 0);

	pid_t pid = fork();
	REQUIRE(pid >= 0);
	if (pid == 0) {
		/* The child's copy has the mapping, and can change it. */
		CHECK(check_map(fd, hwpt, iova, buf) == 0);
		struct iommu_ioas_unmap unmap = {
			.size = sizeof(unmap), .ioas_id = ioas, .iova = iova, .length = BUF_LEN,
		};
		CHECK(ioctl(fd, IOMMU_IOAS_UNMAP, &unmap) == 0);
		CHECK(ioas_alloc(fd) == 5);
		CHECK(close(fd) == 0);
		fflush(stdout);
		_exit(failures ? 1 : 0);
	}
	int status;
	REQUIRE(waitpid(pid, &status, 0) == pid);
	CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	/* The parent still has its mapping and its ID space. */
	CHECK(check_map(fd, hwpt, iova, buf) == 0);
	CHECK(check_refs(fd, buf, 1) == 0);
	CHECK(ioas_alloc(fd) == 5);
	CHECK(close(fd) == 0);
}

/* Files that are not ours are untouched; all spellings of /dev/iommu are ours. */
static void case_untouched(void)
{
	int p[2];
	REQUIRE(pipe(p) == 0);
	CHECK(write(p[1], "abc", 3) == 3);
	int n = -1;
	CHECK(ioctl(p[0], FIONREAD, &n) == 0 && n == 3);
	CHECK_ERR(ioctl(p[0], IOMMU_IOAS_ALLOC, &n), ENOTTY);
	char b[4];
	CHECK(read(p[0], b, sizeof(b)) == 3);
	CHECK(fcntl(p[0], F_DUPFD, 0) > p[1]);

	int null = open("/dev/null", O_RDWR);
	CHECK(null >= 0);
	CHECK(write(null, "x", 1) == 1);
	CHECK(read(null, b, 1) == 0);
	CHECK(mmap(NULL, 4096, PROT_READ, MAP_SHARED, null, 0) == MAP_FAILED && errno == ENODEV);
	CHECK(close(null) == 0);
	CHECK_ERR(open("/nonexistent/softiommu", O_RDONLY), ENOENT);
	CHECK_ERR(close(12345), EBADF);

	const char *spellings[] = { "/dev/iommu", "//dev//iommu", "/./dev/./iommu" };
	for (unsigned i = 0; i < sizeof(spellings) / sizeof(*spellings); i++) {
		int fd = openat(AT_FDCWD, spellings[i], O_RDWR);
		CHECK(fd >= 0);
		CHECK(fcntl(fd, F_GETFD) == 0);
		CHECK(ioas_alloc(fd) == 1);
		CHECK(close(fd) == 0);
	}
	int dev = open("/dev", O_RDONLY | O_DIRECTORY);
	REQUIRE(dev >= 0);
	int fd = openat(dev, "iommu", O_RDWR);
	CHECK(fd >= 0 && ioas_alloc(fd) == 1);
	CHECK(close(fd) == 0);
	REQUIRE(fchdir(dev) == 0);
	fd = open("./iommu", O_RDWR);
	CHECK(fd >= 0 && ioas_alloc(fd) == 1);
	CHECK(close(fd) == 0 && close(dev) == 0);
	CHECK_ERR(open("/dev/iommu", O_RDONLY | O_DIRECTORY), ENOTDIR);
}

/* read/write/mmap/poll on ours answer as the kernel's iommufd does. */
static void case_file_ops(void)
{
	int fd = open_iommu();
	char b[8];
	CHECK_ERR(read(fd, b, sizeof(b)), EINVAL);
	CHECK_ERR(write(fd, b, sizeof(b)), EINVAL);
	CHECK_ERR(pwrite(fd, b, sizeof(b), 0), EINVAL);
	CHECK_ERR(pread(fd, b, sizeof(b), 0), EINVAL);
	CHECK(mmap(NULL, 4096, PROT_READ, MAP_SHARED, fd, 0) == MAP_FAILED && errno == ENODEV);
	CHECK(mmap(NULL, 0, PROT_READ, MAP_SHARED, fd, 0) == MAP_FAILED && errno == EINVAL);
	struct pollfd pfd = { .fd = fd, .events = POLLIN | POLLOUT };
	CHECK(poll(&pfd, 1, 1000) == 1 && pfd.revents == (POLLIN | POLLOUT));
	CHECK(close(fd) == 0);

	fd = open("/dev/iommu", O_RDONLY);
	REQUIRE(fd >= 0);
	CHECK_ERR(read(fd, b, sizeof(b)), EINVAL);
	CHECK_ERR(write(fd, b, sizeof(b)), EBADF);
	CHECK(ioas_alloc(fd) == 1);
	CHECK(close(fd) == 0);
}

/* ACCESS_RW of `len` bytes at `iova` through access fd `afd` to/from `p`. */
static int access_rw(int fd, int afd, uint64_t iova, void *p, uint64_t len, uint32_t flags)
{
	struct iommu_test_cmd cmd = {
		.size = sizeof(cmd),
		.op = IOMMU_TEST_OP_ACCESS_RW,
		.id = afd,
		.access_rw = { .iova = iova, .length = len, .uptr = (uintptr_t)p, .flags = flags },
	};
	return ioctl(fd, IOMMU_TEST_CMD, &cmd);
}

/* Pages the program unmaps while pinned: reading them is never a crash. */
static void case_unmapped_pinned(void)
{
	void *buf = buffer();
	int fd = open_iommu();
	uint32_t ioas = ioas_alloc(fd);
	mock_domain(fd, ioas, NULL);
	uint64_t iova;
	REQUIRE(map(fd, ioas, buf, &iova) == 0);
	struct iommu_test_cmd ca = {
		.size = sizeof(ca),
		.op = IOMMU_TEST_OP_CREATE_ACCESS,
		.id = ioas,
	};
	REQUIRE(ioctl(fd, IOMMU_TEST_CMD, &ca) == 0);
	int afd = ca.create_access.out_access_fd;
	unsigned char out[64];
	memset(out, 0, sizeof(out));
	CHECK(access_rw(fd, afd, iova, out, sizeof(out), 0) == 0);
	CHECK(out[0] == 0x5a && out[63] == 0x5a);
	REQUIRE(munmap(buf, BUF_LEN) == 0);
	/* The pinning guarantee: the pages stay pinned, with their contents,
	 * until they are unmapped from the IOAS. */
	memset(out, 0, sizeof(out));
	CHECK(access_rw(fd, afd, iova, out, sizeof(out), 0) == 0);
	CHECK(out[0] == 0x5a && out[63] == 0x5a);
	memset(out, 0xa5, sizeof(out));
	CHECK(access_rw(fd, afd, iova, out, sizeof(out), MOCK_ACCESS_RW_WRITE) == 0);
	memset(out, 0, sizeof(out));
	CHECK(access_rw(fd, afd, iova, out, sizeof(out), 0) == 0);
	CHECK(out[0] == 0xa5 && out[63] == 0xa5);
	/* New memory at the same address is not the pinned page. */
	void *again = mmap(buf, BUF_LEN, PROT_READ | PROT_WRITE,
			   MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
	CHECK(again == buf);
	struct iommu_test_cmd chk = {
		.size = sizeof(chk),
		.op = IOMMU_TEST_OP_MD_CHECK_REFS,
		.check_refs = { .length = BUF_LEN, .uptr = (uintptr_t)buf, .refs = 0 },
	};
	CHECK(ioctl(fd, IOMMU_TEST_CMD, &chk) == 0);
	CHECK(close(afd) == 0);
	CHECK(close(fd) == 0);
}

/* The program's own SIGSEGV handler, which jumps back to `own_env`. */
static sigjmp_buf own_env;
static volatile sig_atomic_t own_calls;
static void *volatile own_addr;

static void own_handler(int sig, siginfo_t *si, void *uc)
{
	(void)uc;
	if (sig == SIGSEGV)
		own_calls++;
	own_addr = si->si_addr;
	siglongjmp(own_env, 1);
}

static volatile sig_atomic_t usr1_calls;
static void usr1_handler(int sig)
{
	(void)sig;
	usr1_calls++;
}

/* A fault of the program's own, at address 16. */
#define FAULT() (*(volatile int *)16 = 1)

/* Forks a child that sets SIGSEGV to `disp` (with signal() if `use_signal`),
 * checks a bad ioctl pointer is still EFAULT, then faults (or raises SIGSEGV
 * when `raise_it`); returns the child's wait status. */
static int child_with(int fd, sighandler_t disp, int use_signal, int raise_it)
{
	fflush(stdout);
	pid_t pid = fork();
	REQUIRE(pid >= 0);
	if (pid == 0) {
		struct rlimit no_core = { 0, 0 };
		setrlimit(RLIMIT_CORE, &no_core);
		if (use_signal) {
			if (signal(SIGSEGV, disp) == SIG_ERR)
				_exit(10);
		} else {
			struct sigaction sa = { .sa_handler = disp };
			sigemptyset(&sa.sa_mask);
			if (sigaction(SIGSEGV, &sa, NULL) != 0)
				_exit(10);
		}
		errno = 0;
		if (ioctl(fd, IOMMU_IOAS_ALLOC, (void *)8) != -1 || errno != EFAULT)
			_exit(11);
		if (raise_it)
			raise(SIGSEGV);
		else
			FAULT();
		_exit(0);
	}
	int status;
	REQUIRE(waitpid(pid, &status, 0) == pid);
	return status;
}

/* The program's SIGSEGV handling next to the interposer's. */
static void case_signals(void)
{
	/* Installed before any iommufd call: the program's view is its own. */
	struct sigaction sa = { .sa_sigaction = own_handler, .sa_flags = SA_SIGINFO }, old;
	sigemptyset(&sa.sa_mask);
	CHECK(sigaction(SIGSEGV, &sa, &old) == 0);
	CHECK(old.sa_handler == SIG_DFL);
	CHECK(sigaction(SIGSEGV, NULL, &old) == 0);
	CHECK(old.sa_sigaction == own_handler && (old.sa_flags & SA_SIGINFO));

	/* Its own fault reaches its handler, with the faulting address. */
	if (!sigsetjmp(own_env, 1)) {
		FAULT();
		CHECK(!"no fault");
	}
	CHECK(own_calls == 1 && own_addr == (void *)16);

	/* Bad pointers into the interposer: EFAULT, the handler not called. */
	int fd = open_iommu();
	CHECK_ERR(ioctl(fd, IOMMU_IOAS_ALLOC, (void *)8), EFAULT);
	void *none = mmap(NULL, 4096, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	REQUIRE(none != MAP_FAILED);
	CHECK_ERR(ioctl(fd, IOMMU_IOAS_ALLOC, none), EFAULT);
	CHECK_ERR(open((const char *)none, O_RDONLY), EFAULT);
	CHECK(own_calls == 1);
	CHECK(ioas_alloc(fd) == 1);
	CHECK(sigaction(SIGSEGV, NULL, &old) == 0);
	CHECK(old.sa_sigaction == own_handler);
	/* A bad sigaction argument is EFAULT too, and changes nothing. */
	CHECK_ERR(sigaction(SIGSEGV, (const struct sigaction *)none, NULL), EFAULT);
	CHECK_ERR(sigaction(SIGSEGV, NULL, (struct sigaction *)none), EFAULT);
	CHECK(sigaction(SIGSEGV, NULL, &old) == 0 && old.sa_sigaction == own_handler);

	/* Other signals are the program's business, untouched. */
	CHECK(signal(SIGUSR1, usr1_handler) != SIG_ERR);
	CHECK(raise(SIGUSR1) == 0 && usr1_calls == 1);
	CHECK(signal(SIGUSR1, SIG_DFL) == usr1_handler);

	/* signal() reports and replaces the handler; SA_RESETHAND is one-shot. */
	CHECK((void *)signal(SIGSEGV, SIG_DFL) == (void *)own_handler);
	sa.sa_flags = SA_SIGINFO | SA_RESETHAND;
	CHECK(sigaction(SIGSEGV, &sa, &old) == 0 && old.sa_handler == SIG_DFL);
	if (!sigsetjmp(own_env, 1))
		FAULT();
	CHECK(own_calls == 2);
	CHECK(sigaction(SIGSEGV, NULL, &old) == 0 && old.sa_handler == SIG_DFL);

	/* A handler left without restoring the mask leaves SIGSEGV blocked; a
	 * fault then kills whatever the handler, so the interposer must not
	 * fault: still EFAULT. */
	sa.sa_flags = SA_SIGINFO;
	CHECK(sigaction(SIGSEGV, &sa, NULL) == 0);
	if (!sigsetjmp(own_env, 0))
		FAULT();
	CHECK(own_calls == 3);
	sigset_t cur, segv;
	sigemptyset(&segv);
	sigaddset(&segv, SIGSEGV);
	CHECK(sigprocmask(SIG_BLOCK, NULL, &cur) == 0 && sigismember(&cur, SIGSEGV));
	CHECK_ERR(ioctl(fd, IOMMU_IOAS_ALLOC, (void *)8), EFAULT);
	CHECK(ioas_alloc(fd) == 2);
	CHECK(sigprocmask(SIG_UNBLOCK, &segv, NULL) == 0);
	CHECK_ERR(ioctl(fd, IOMMU_IOAS_ALLOC, none), EFAULT);
	CHECK(own_calls == 3);

	/* With the default action (or SIG_IGN, which a fault overrides), a fault
	 * kills; a SIGSEGV sent with raise() kills, or is ignored. */
	int st = child_with(fd, SIG_DFL, 0, 0);
	CHECK(WIFSIGNALED(st) && WTERMSIG(st) == SIGSEGV);
	st = child_with(fd, SIG_IGN, 1, 0);
	CHECK(WIFSIGNALED(st) && WTERMSIG(st) == SIGSEGV);
	st = child_with(fd, SIG_DFL, 1, 1);
	CHECK(WIFSIGNALED(st) && WTERMSIG(st) == SIGSEGV);
	st = child_with(fd, SIG_IGN, 0, 1);
	CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);

	/* SIGSEGV blocked by the program: still EFAULT, not a kill. */
	CHECK(sigprocmask(SIG_BLOCK, &segv, NULL) == 0);
	CHECK_ERR(ioctl(fd, IOMMU_IOAS_ALLOC, none), EFAULT);
	CHECK(ioas_alloc(fd) == 3);
	CHECK(sigprocmask(SIG_UNBLOCK, &segv, NULL) == 0);
	CHECK(own_calls == 3);
	CHECK(close(fd) == 0);
}

#define THREADS 4
#define ROUNDS 2000

static int thread_fd;
static void *thread_none;

/* Good and bad pointers, interleaved; returns the number of wrong answers. */
static void *thread_main(void *arg)
{
	uintptr_t wrong = 0;
	uintptr_t me = (uintptr_t)arg;
	for (int i = 0; i < ROUNDS; i++) {
		struct iommu_ioas_alloc cmd = { .size = sizeof(cmd) };
		if (ioctl(thread_fd, IOMMU_IOAS_ALLOC, &cmd) != 0 || destroy(thread_fd, cmd.out_ioas_id) != 0)
			wrong++;
		void *bad = (i + me) % 2 ? thread_none : (void *)(uintptr_t)(8 + 64 * me);
		errno = 0;
		if (ioctl(thread_fd, IOMMU_IOAS_ALLOC, bad) != -1 || errno != EFAULT)
			wrong++;
	}
	return (void *)wrong;
}

/* Threads faulting in the interposer at once, next to a program handler. */
static void case_threads(void)
{
	struct sigaction sa = { .sa_sigaction = own_handler, .sa_flags = SA_SIGINFO };
	sigemptyset(&sa.sa_mask);
	CHECK(sigaction(SIGSEGV, &sa, NULL) == 0);
	thread_fd = open_iommu();
	thread_none = mmap(NULL, 4096, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	REQUIRE(thread_none != MAP_FAILED);
	pthread_t t[THREADS];
	for (uintptr_t i = 0; i < THREADS; i++)
		REQUIRE(pthread_create(&t[i], NULL, thread_main, (void *)i) == 0);
	for (int i = 0; i < THREADS; i++) {
		void *wrong;
		CHECK(pthread_join(t[i], &wrong) == 0 && wrong == NULL);
	}
	CHECK(own_calls == 0);
	CHECK(close(thread_fd) == 0);
}

/* A fault queue: its fd is pollable, reads fault records, takes responses. */
static void case_fault_queue(void)
{
	int fd = open_iommu();
	uint32_t ioas_id = ioas_alloc(fd);
	struct iommu_test_cmd md = {
		.size = sizeof(md),
		.op = IOMMU_TEST_OP_MOCK_DOMAIN,
		.id = ioas_id,
	};
	REQUIRE(ioctl(fd, IOMMU_TEST_CMD, &md) == 0);
	uint32_t stdev_id = md.mock_domain.out_stdev_id;
	uint32_t idev_id = md.mock_domain.out_idev_id;

	struct iommu_fault_alloc fa = { .size = sizeof(fa), .flags = 1 };
	CHECK_ERR(ioctl(fd, IOMMU_FAULT_QUEUE_ALLOC, &fa), EOPNOTSUPP);
	fa.flags = 0;
	REQUIRE(ioctl(fd, IOMMU_FAULT_QUEUE_ALLOC, &fa) == 0);
	int ffd = (int)fa.out_fault_fd;
	CHECK(ffd > fd);

	struct iommu_hwpt_alloc ha = {
		.size = sizeof(ha),
		.flags = IOMMU_HWPT_FAULT_ID_VALID,
		.dev_id = idev_id,
		.pt_id = ioas_id,
		.fault_id = ioas_id,
	};
	CHECK_ERR(ioctl(fd, IOMMU_HWPT_ALLOC, &ha), ENOENT);
	ha.fault_id = fa.out_fault_id;
	REQUIRE(ioctl(fd, IOMMU_HWPT_ALLOC, &ha) == 0);
	CHECK_ERR(destroy(fd, fa.out_fault_id), EBUSY);

	struct iommu_test_cmd rep = {
		.size = sizeof(rep),
		.op = IOMMU_TEST_OP_MOCK_DOMAIN_REPLACE,
		.id = stdev_id,
		.mock_domain_replace = { .pt_id = ha.out_hwpt_id },
	};
	REQUIRE(ioctl(fd, IOMMU_TEST_CMD, &rep) == 0);

	struct pollfd pfd = { .fd = ffd, .events = POLLIN | POLLOUT };
	CHECK(poll(&pfd, 1, 0) == 1 && pfd.revents == POLLOUT);
	struct iommu_hwpt_pgfault f[2];
	CHECK(read(ffd, f, sizeof(f)) == 0);

	struct iommu_test_cmd trig = {
		.size = sizeof(trig),
		.op = IOMMU_TEST_OP_TRIGGER_IOPF,
		.trigger_iopf = {
			.dev_id = idev_id,
			.grpid = 2,
			.perm = IOMMU_PGFAULT_PERM_READ | IOMMU_PGFAULT_PERM_WRITE,
			.addr = 0xdeadbeaf,
		},
	};
	REQUIRE(ioctl(fd, IOMMU_TEST_CMD, &trig) == 0);
	trig.trigger_iopf.dev_id = 999;
	CHECK_ERR(ioctl(fd, IOMMU_TEST_CMD, &trig), ENOENT);

	CHECK(poll(&pfd, 1, 1000) == 1 && pfd.revents == (POLLIN | POLLOUT));
	CHECK_ERR(read(ffd, f, sizeof(f[0]) - 1), ESPIPE);
	memset(f, 0, sizeof(f));
	CHECK(read(ffd, f, sizeof(f)) == (ssize_t)sizeof(f[0]));
	CHECK(f[0].flags == IOMMU_PGFAULT_FLAGS_LAST_PAGE);
	CHECK(f[0].dev_id == idev_id && f[0].grpid == 2 && f[0].addr == 0xdeadbeaf);
	CHECK(f[0].perm == (IOMMU_PGFAULT_PERM_READ | IOMMU_PGFAULT_PERM_WRITE));
	CHECK(f[0].cookie == 1);
	pfd.revents = 0;
	CHECK(poll(&pfd, 1, 0) == 1 && pfd.revents == POLLOUT);

	struct iommu_hwpt_page_response r = { .cookie = 7, .code = IOMMUFD_PAGE_RESP_SUCCESS };
	CHECK_ERR(write(ffd, &r, sizeof(r)), EINVAL);
	CHECK_ERR(write(ffd, f, sizeof(r) + 1), ESPIPE);
	r.cookie = f[0].cookie;
	r.code = 2;
	CHECK_ERR(write(ffd, &r, sizeof(r)), EINVAL);
	r.code = IOMMUFD_PAGE_RESP_SUCCESS;
	CHECK(write(ffd, &r, sizeof(r)) == (ssize_t)sizeof(r));
	CHECK_ERR(write(ffd, &r, sizeof(r)), EINVAL);

	CHECK(close(ffd) == 0);
	CHECK(destroy(fd, stdev_id) == 0);
	CHECK(destroy(fd, ha.out_hwpt_id) == 0);
	CHECK(destroy(fd, fa.out_fault_id) == 0);
	CHECK(close(fd) == 0);
}

int main(int argc, char **argv)
{
	static const struct {
		const char *name;
		void (*run)(void);
	} cases[] = {
		{ "basic", case_basic },       { "efault", case_efault },
		{ "enotty", case_enotty },     { "dup", case_dup },
		{ "close_frees", case_close_frees }, { "fork", case_fork },
		{ "untouched", case_untouched }, { "file_ops", case_file_ops },
		{ "unmapped_pinned", case_unmapped_pinned },
		{ "signals", case_signals },   { "threads", case_threads },
		{ "fault_queue", case_fault_queue },
	};
	REQUIRE(argc == 2);
	for (unsigned i = 0; i < sizeof(cases) / sizeof(*cases); i++) {
		if (!strcmp(argv[1], cases[i].name)) {
			cases[i].run();
			if (failures)
				printf("%s: %d checks failed\n", argv[1], failures);
			return failures ? 1 : 0;
		}
	}
	printf("unknown case %s\n", argv[1]);
	return 2;
}
