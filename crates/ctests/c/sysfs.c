/* SPDX-License-Identifier: MIT */
/*
 * sysfs as VFIO clients read it, for the default machine's functions: the
 * iommu_group link, vfio-dev/vfioN, vendor/device/class, driver links,
 * group membership; bind/unbind/driver_override writes reaching the host with
 * its errnos; and paths that are not ours behaving exactly as without the
 * interposer.
 */
#include "ctest.h"

#include <dirent.h>
#include <libgen.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <linux/vfio.h>

#define DEV(bdf, attr) "/sys/bus/pci/devices/" bdf "/" attr
#define DRV(drv, attr) "/sys/bus/pci/drivers/" drv "/" attr

/* The basename of a symlink's target, or "" (errno set) if it is none. */
static const char *link_base(const char *path)
{
	static char buf[4096];
	ssize_t n = readlink(path, buf, sizeof(buf) - 1);

	if (n < 0)
		return "";
	buf[n] = 0;
	return basename(buf);
}

/* The whole text of a file, or "" if it cannot be read. */
static const char *slurp(const char *path)
{
	static char buf[4096];
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t n;

	buf[0] = 0;
	if (fd < 0)
		return buf;
	n = read(fd, buf, sizeof(buf) - 1);
	buf[n > 0 ? n : 0] = 0;
	close(fd);
	return buf;
}

/* Writes `text` to `path`: the write's result, errno kept. */
static long put(const char *path, const char *text)
{
	int fd = open(path, O_WRONLY | O_CLOEXEC);
	long r;
	int e;

	if (fd < 0)
		return -1;
	r = write(fd, text, strlen(text));
	e = errno;
	close(fd);
	errno = e;
	return r;
}

/* The names in a directory, sorted, joined by spaces ("." and ".." left out);
 * "!" if it cannot be opened. */
static const char *list(const char *path)
{
	static char out[4096];
	char names[32][256];
	int n = 0;
	DIR *d = opendir(path);
	struct dirent *e;

	out[0] = 0;
	if (!d)
		return "!";
	while ((e = readdir(d)) && n < 32) {
		if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
			snprintf(names[n++], sizeof(names[0]), "%s", e->d_name);
	}
	closedir(d);
	for (int i = 0; i < n; i++)
		for (int j = i + 1; j < n; j++)
			if (strcmp(names[i], names[j]) > 0) {
				char t[256];
				strcpy(t, names[i]);
				strcpy(names[i], names[j]);
				strcpy(names[j], t);
			}
	for (int i = 0; i < n; i++) {
		if (i)
			strcat(out, " ");
		strcat(out, names[i]);
	}
	return out;
}

#define CHECK_STR(expected, seen)                                          \
	do {                                                               \
		const char *s_ = (seen);                                   \
		if (strcmp((expected), s_))                                \
			FAIL("%s: expected \"%s\", got \"%s\"", #seen,     \
			     (expected), s_);                              \
	} while (0)

/* A path that is not ours: libc's answer is the kernel's. */
static void same_as_kernel(const char *path)
{
	struct stat a, b;
	char la[256], lb[256];
	long r1, r2;
	int e1, e2;

	errno = 0;
	r1 = stat(path, &a);
	e1 = errno;
	errno = 0;
	r2 = syscall(SYS_newfstatat, AT_FDCWD, path, &b, 0);
	e2 = errno;
	if (r1 != r2 || e1 != e2 || (r1 == 0 && a.st_ino != b.st_ino))
		FAIL("stat(%s): %ld/%d, kernel %ld/%d", path, r1, e1, r2, e2);
	errno = 0;
	r1 = access(path, R_OK);
	e1 = errno;
	errno = 0;
	r2 = syscall(SYS_faccessat, AT_FDCWD, path, R_OK);
	e2 = errno;
	if (r1 != r2 || e1 != e2)
		FAIL("access(%s): %ld/%d, kernel %ld/%d", path, r1, e1, r2, e2);
	errno = 0;
	r1 = readlink(path, la, sizeof(la));
	e1 = errno;
	errno = 0;
	r2 = syscall(SYS_readlinkat, AT_FDCWD, path, lb, sizeof(lb));
	e2 = errno;
	if (r1 != r2 || e1 != e2)
		FAIL("readlink(%s): %ld/%d, kernel %ld/%d", path, r1, e1, r2, e2);
	errno = 0;
	r1 = open(path, O_RDONLY | O_CLOEXEC);
	e1 = errno;
	if (r1 >= 0)
		close(r1);
	errno = 0;
	r2 = syscall(SYS_openat, AT_FDCWD, path, O_RDONLY | O_CLOEXEC);
	e2 = errno;
	if (r2 >= 0)
		close(r2);
	if ((r1 < 0) != (r2 < 0) || e1 != e2)
		FAIL("open(%s): %ld/%d, kernel %ld/%d", path, r1, e1, r2, e2);
}

int main(void)
{
	struct stat st;
	char buf[64];
	pid_t child = 0;

	/* ---- reading ---- */
	CHECK_STR("4", link_base(DEV("0000:01:00.0", "iommu_group")));
	CHECK_STR("6", link_base(DEV("0000:03:00.1", "iommu_group")));
	CHECK_STR("vfio-pci", link_base(DEV("0000:01:00.0", "driver")));
	CHECK_STR("snd_hda_intel", link_base(DEV("0000:03:00.1", "driver")));
	CHECK_STR("vfio0", list(DEV("0000:01:00.0", "vfio-dev")));
	CHECK_STR("vfio0", list(DEV("0000:01:00.0", "vfio-dev/")));
	CHECK_STR("vfio2", list("//sys/./bus/pci/devices/0000:03:00.0/vfio-dev"));
	CHECK_STR("!", list(DEV("0000:03:00.1", "vfio-dev")));
	CHECK_STR("511:0\n", slurp(DEV("0000:01:00.0", "vfio-dev/vfio0/dev")));
	CHECK_STR("511:1\n", slurp("/sys/class/vfio-dev/vfio1/dev"));
	CHECK_STR("0x1234\n", slurp(DEV("0000:01:00.0", "vendor")));
	CHECK_STR("0x5d11\n", slurp(DEV("0000:01:00.0", "device")));
	CHECK_STR("0x00ff00\n", slurp(DEV("0000:01:00.0", "class")));
	CHECK_STR("(null)\n", slurp(DEV("0000:01:00.0", "driver_override")));
	CHECK_STR("0000:03:00.0 0000:03:00.1", list("/sys/kernel/iommu_groups/6/devices"));
	CHECK_OK(access(DEV("0000:01:00.0", "vfio-dev"), F_OK));
	CHECK_ERRNO(ENOENT, access(DEV("0000:03:00.1", "vfio-dev"), F_OK));
	CHECK(stat(DEV("0000:01:00.0", "vfio-dev"), &st) == 0 && S_ISDIR(st.st_mode));
	CHECK(lstat(DEV("0000:01:00.0", "iommu_group"), &st) == 0 && S_ISLNK(st.st_mode));
	CHECK(stat(DEV("0000:01:00.0", "iommu_group"), &st) == 0 && S_ISDIR(st.st_mode));
	CHECK(stat(DEV("0000:01:00.0", "driver"), &st) == 0 && S_ISDIR(st.st_mode));
	CHECK(stat(DRV("vfio-pci", "bind"), &st) == 0 && S_ISREG(st.st_mode));
	CHECK_ERRNO(ENOENT, stat(DEV("0000:01:00.0", "nonexistent"), &st));
	/* A directory fd of ours resolves relative paths in the tree. */
	{
		int dir = open(DEV("0000:01:00.0", "vfio-dev"), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		int fd = openat(dir, "vfio0/dev", O_RDONLY | O_CLOEXEC);
		ssize_t n = fd >= 0 ? read(fd, buf, sizeof(buf) - 1) : -1;

		CHECK(dir >= 0 && fd >= 0 && n == 6 && memcmp(buf, "511:0\n", 6) == 0);
		close(fd);
		close(dir);
	}
	/* Read-only attributes refuse writers; bind and unbind refuse readers. */
	CHECK_ERRNO(EACCES, open(DEV("0000:01:00.0", "vendor"), O_WRONLY));
	CHECK_ERRNO(ENOENT, open(DEV("0000:01:00.0", "nonexistent"), O_WRONLY));
	CHECK_ERRNO(EACCES, open(DRV("vfio-pci", "bind"), O_RDONLY));
	CHECK_ERRNO(ENOTDIR, open(DRV("vfio-pci", "bind"), O_WRONLY | O_DIRECTORY));
	CHECK_ERRNO(EACCES, open(DEV("0000:01:00.0", "new"), O_RDONLY | O_CREAT, 0644));
	CHECK_ERRNO(EEXIST, open(DEV("0000:01:00.0", "vendor"), O_RDONLY | O_CREAT | O_EXCL, 0644));
	{
		int fd = open(DEV("0000:01:00.0", "vendor"), O_RDONLY | O_CREAT | O_CLOEXEC, 0644);
		int pfd = open(DRV("vfio-pci", "bind"), O_PATH | O_CLOEXEC);

		CHECK(fd >= 0 && read(fd, buf, sizeof(buf)) == 7);
		CHECK(pfd >= 0 && fstat(pfd, &st) == 0 && S_ISREG(st.st_mode));
		close(fd);
		close(pfd);
	}
	{
		static char big[4097];
		int fd = open(DRV("vfio-pci", "bind"), O_WRONLY | O_CLOEXEC);

		memset(big, ' ', sizeof(big));
		CHECK_ERRNO(E2BIG, write(fd, big, sizeof(big)));
		CHECK_ERRNO(EFAULT, write(fd, (void *)8, 12));
		CHECK_ERRNO(ENOTTY, ioctl(fd, 0));
		close(fd);
	}

	/* ---- writing: unbind, driver_override, bind ---- */
	CHECK_EQ(13, put(DRV("snd_hda_intel", "unbind"), "0000:03:00.1\n"));
	CHECK_ERRNO(ENOENT, readlink(DEV("0000:03:00.1", "driver"), buf, sizeof(buf)));
	CHECK_ERRNO(ENODEV, put(DRV("snd_hda_intel", "unbind"), "0000:03:00.1\n"));
	CHECK_ERRNO(ENODEV, put(DRV("snd_hda_intel", "unbind"), "0000:7f:1f.7"));
	CHECK_ERRNO(ENODEV, put(DRV("vfio-pci", "unbind"), "garbage"));
	CHECK_STR("0000:03:00.0 0000:03:00.1", list("/sys/kernel/iommu_groups/6/devices"));

	CHECK_EQ(9, put(DEV("0000:03:00.1", "driver_override"), "vfio-pci\n"));
	CHECK_STR("vfio-pci\n", slurp(DEV("0000:03:00.1", "driver_override")));
	CHECK_ERRNO(ENODEV, put(DRV("snd_hda_intel", "bind"), "0000:03:00.1"));
	CHECK_EQ(1, put(DEV("0000:03:00.1", "driver_override"), "\n"));
	CHECK_STR("(null)\n", slurp(DEV("0000:03:00.1", "driver_override")));
	{
		int fd = open(DEV("0000:03:00.1", "driver_override"), O_RDONLY);

		CHECK_ERRNO(EBADF, write(fd, "x", 1));
		CHECK(read(fd, buf, 3) == 3 && memcmp(buf, "(nu", 3) == 0);
		CHECK(read(fd, buf, sizeof(buf)) == 4 && memcmp(buf, "ll)\n", 4) == 0);
		CHECK_EQ(0, read(fd, buf, sizeof(buf)));
		CHECK(pread(fd, buf, 2, 1) == 2 && memcmp(buf, "nu", 2) == 0);
		close(fd);
	}

	/* Claim group 6 for an iommufd through vfio2 (0000:03:00.0). */
	int iommufd = open("/dev/iommu", O_RDWR | O_CLOEXEC);
	int vfio = open("/dev/vfio/devices/vfio2", O_RDWR | O_CLOEXEC);
	REQUIRE(iommufd >= 0 && vfio >= 0);
	struct vfio_device_bind_iommufd bind = {
		.argsz = sizeof(bind),
		.iommufd = iommufd,
	};
	REQUIRE_OK(ioctl(vfio, VFIO_DEVICE_BIND_IOMMUFD, &bind));
	/* A DMA kernel driver cannot join a group user space owns. */
	CHECK_ERRNO(EBUSY, put(DRV("snd_hda_intel", "bind"), "0000:03:00.1\n"));
	CHECK_ERRNO(ENOENT, readlink(DEV("0000:03:00.1", "driver"), buf, sizeof(buf)));
	/* vfio-pci can: the function is registered with vfio. */
	CHECK_EQ(12, put(DRV("vfio-pci", "bind"), "0000:03:00.1"));
	CHECK_STR("vfio-pci", link_base(DEV("0000:03:00.1", "driver")));
	CHECK_STR("vfio3", list(DEV("0000:03:00.1", "vfio-dev")));
	CHECK_STR("511:3\n", slurp(DEV("0000:03:00.1", "vfio-dev/vfio3/dev")));
	CHECK_ERRNO(EBUSY, put(DRV("vfio-pci", "bind"), "0000:03:00.1"));
	/* vfio-pci does not let go of a device user space holds. */
	CHECK_ERRNO(EBUSY, put(DRV("vfio-pci", "unbind"), "0000:03:00.0"));
	CHECK_OK(close(vfio));
	CHECK_OK(close(iommufd));

	/* A forked child has its own copy of the machine and its own tree; its
	 * exit leaves the parent's alone. */
	{
		pid_t pid = fork();
		int status = -1;

		if (pid == 0) {
			int ok = put(DRV("vfio-pci", "unbind"), "0000:02:00.0") == 12 &&
				 access(DEV("0000:02:00.0", "vfio-dev"), F_OK) == -1 &&
				 !strcmp(list(DEV("0000:01:00.0", "vfio-dev")), "vfio0");
			_exit(ok ? 0 : 1);
		}
		REQUIRE(pid > 0);
		CHECK(waitpid(pid, &status, 0) == pid && WIFEXITED(status) &&
		      WEXITSTATUS(status) == 0);
		CHECK_STR("vfio1", list(DEV("0000:02:00.0", "vfio-dev")));
		CHECK_STR("0x1234\n", slurp(DEV("0000:02:00.0", "vendor")));
		child = pid;
	}

	/* stdio: fopen reads the tree; a writable attribute's stream flushes
	 * into the host, its errno showing at fclose. */
	{
		char line[64] = "";
		FILE *f = fopen(DEV("0000:02:00.0", "device"), "r");

		CHECK(f && fgets(line, sizeof(line), f) && !strcmp(line, "0x5d11\n"));
		if (f)
			fclose(f);
		CHECK(fopen(DEV("0000:02:00.0", "device"), "w") == NULL && errno == EACCES);
		CHECK(fopen(DRV("vfio-pci", "unbind"), "r") == NULL && errno == EACCES);
		f = fopen(DEV("0000:02:00.0", "driver_override"), "r");
		CHECK(f && fgets(line, sizeof(line), f) && !strcmp(line, "(null)\n"));
		if (f)
			fclose(f);
		f = fopen(DRV("vfio-pci", "unbind"), "w");
		REQUIRE(f != NULL);
		CHECK(fputs("0000:02:00.0\n", f) >= 0);
		CHECK_OK(fclose(f));
		CHECK_ERRNO(ENOENT, access(DEV("0000:02:00.0", "vfio-dev"), F_OK));
		f = fopen(DRV("vfio-pci", "unbind"), "w");
		REQUIRE(f != NULL);
		fputs("0000:02:00.0\n", f);
		errno = 0;
		CHECK(fclose(f) == EOF && errno == ENODEV);
		f = fopen(DRV("vfio-pci", "bind"), "w");
		REQUIRE(f != NULL);
		fprintf(f, "%s", "0000:02:00.0");
		CHECK_OK(fclose(f));
		CHECK_STR("vfio1", list(DEV("0000:02:00.0", "vfio-dev")));
	}

	/* Unbinding from vfio-pci takes vfio-dev away; binding brings it back. */
	CHECK_EQ(12, put(DRV("vfio-pci", "unbind"), "0000:01:00.0"));
	CHECK_ERRNO(ENOENT, access(DEV("0000:01:00.0", "vfio-dev"), F_OK));
	CHECK_ERRNO(ENOENT, access("/sys/class/vfio-dev/vfio0", F_OK));
	CHECK_EQ(12, put(DRV("vfio-pci", "bind"), "0000:01:00.0"));
	CHECK_STR("vfio0", list(DEV("0000:01:00.0", "vfio-dev")));

	/* ---- paths that are not ours ---- */
	same_as_kernel("/sys/kernel/mm");
	same_as_kernel("/sys/bus/pci/devices/0000:7f:1f.7");
	same_as_kernel("/sys/bus/pci/devices/0000:7f:1f.7/iommu_group");
	same_as_kernel("/sys/bus/pci/drivers/nvme/bind");
	same_as_kernel("/sys/kernel/iommu_groups/999/devices");
	same_as_kernel("/sys/bus/pci/devices/0000:01:00.0/../0000:01:00.0/vendor");
	same_as_kernel("/etc/hostname");
	CHECK_ERRNO(EFAULT, stat((const char *)8, &st));
	CHECK_ERRNO(EFAULT, readlink((const char *)8, buf, sizeof(buf)));
	CHECK_ERRNO(EFAULT, access((const char *)8, F_OK));

	/* The child left by _exit; the parent's next rebuild removed its tree. */
	{
		const char *tmp = getenv("TMPDIR");
		char path[4096];

		snprintf(path, sizeof(path), "%s/softiommu-sysfs-%d", tmp && *tmp ? tmp : "/tmp", (int)child);
		CHECK_ERRNO(ENOENT, access(path, F_OK));
	}

	printf("all checks passed\n");
	return finish();
}
