/* SPDX-License-Identifier: MIT */
/*
 * The kvm-vfio stand-in: KVM_CREATE_DEVICE of type VFIO is recognised on any
 * fd (here /dev/null stands for the VM fd) and answered with a kvm-vfio device
 * fd; other types and other calls on that fd go to the kernel. On the device:
 * FILE_ADD/FILE_DEL of VFIO files with the kernel's errnos, HAS/GET attr, and
 * release on close.
 *
 * With the trace in a file (KVM_TRACE names it, the harness passes it as
 * --trace-file), the VM's non-coherent DMA registrations are counted from the
 * trace lines: none on a machine whose IOMMU has snoop control, and one per
 * flip when KVM_NONCOHERENT is set (a machine without it).
 */
#include "ctest.h"

#include <linux/kvm.h>

/* Older headers know the attribute group by its first name only. */
#ifndef KVM_DEV_VFIO_FILE
#define KVM_DEV_VFIO_FILE KVM_DEV_VFIO_GROUP
#define KVM_DEV_VFIO_FILE_ADD KVM_DEV_VFIO_GROUP_ADD
#define KVM_DEV_VFIO_FILE_DEL KVM_DEV_VFIO_GROUP_DEL
#endif

static int attr(int kvm, unsigned long cmd, __u32 group, __u64 a, int fd)
{
	struct kvm_device_attr da = {
		.group = group,
		.attr = a,
		.addr = (__u64)(uintptr_t)&fd,
	};
	return ioctl(kvm, cmd, &da);
}

static int file_add(int kvm, int fd)
{
	return attr(kvm, KVM_SET_DEVICE_ATTR, KVM_DEV_VFIO_FILE, KVM_DEV_VFIO_FILE_ADD, fd);
}

static int file_del(int kvm, int fd)
{
	return attr(kvm, KVM_SET_DEVICE_ATTR, KVM_DEV_VFIO_FILE, KVM_DEV_VFIO_FILE_DEL, fd);
}

/* How many trace lines contain `needle`; -1 without a trace file. */
static int trace_count(const char *needle)
{
	const char *path = getenv("KVM_TRACE");
	if (!path)
		return -1;
	FILE *f = fopen(path, "r");
	if (!f)
		return -1;
	char line[512];
	int n = 0;
	while (fgets(line, sizeof(line), f))
		if (strstr(line, needle))
			n++;
	fclose(f);
	return n;
}

/* Checks the VM's registrations so far, where the trace can tell. */
static void check_flips(int line, int reg, int unreg)
{
	int r = trace_count("VM noncoherent DMA: registered");
	int u = trace_count("VM noncoherent DMA: unregistered");
	if (r < 0)
		return;
	if (!getenv("KVM_NONCOHERENT"))
		reg = unreg = 0;
	if (r != reg || u != unreg)
		FAIL("line %d: registered %d/unregistered %d, expected %d/%d", line, r, u,
		     reg, unreg);
}

int main(void)
{
	int vm = open("/dev/null", O_RDWR);
	REQUIRE(vm >= 0);

	/* TEST: 0, nothing created. */
	struct kvm_create_device cd = {
		.type = KVM_DEV_TYPE_VFIO,
		.fd = 12345,
		.flags = KVM_CREATE_DEVICE_TEST,
	};
	CHECK_OK(ioctl(vm, KVM_CREATE_DEVICE, &cd));
	CHECK_EQ(12345, cd.fd);

	cd.flags = 0;
	REQUIRE_OK(ioctl(vm, KVM_CREATE_DEVICE, &cd));
	int kvm = cd.fd;
	REQUIRE(kvm >= 0 && kvm != 12345);
	CHECK(fcntl(kvm, F_GETFD) & FD_CLOEXEC);
	CHECK_EQ(O_RDWR, fcntl(kvm, F_GETFL) & O_ACCMODE);
	char link[256] = "";
	char proc[64];
	snprintf(proc, sizeof(proc), "/proc/self/fd/%d", kvm);
	CHECK(readlink(proc, link, sizeof(link) - 1) > 0);
	CHECK(strstr(link, "softiommu:kvm-vfio") != NULL);

	/* One per VM, also through a duplicate of the VM's fd. */
	struct kvm_create_device cd2 = { .type = KVM_DEV_TYPE_VFIO };
	CHECK_ERRNO(EBUSY, ioctl(vm, KVM_CREATE_DEVICE, &cd2));
	int vm_dup = dup(vm);
	CHECK_ERRNO(EBUSY, ioctl(vm_dup, KVM_CREATE_DEVICE, &cd2));
	cd2.flags = KVM_CREATE_DEVICE_TEST;
	CHECK_OK(ioctl(vm, KVM_CREATE_DEVICE, &cd2));

	/* Not ours: another type, an unreadable argument, other ioctls. /dev/null
	 * answers them all with ENOTTY. */
	struct kvm_create_device other = { .type = KVM_DEV_TYPE_VFIO + 1 };
	CHECK_ERRNO(ENOTTY, ioctl(vm, KVM_CREATE_DEVICE, &other));
	CHECK_ERRNO(ENOTTY, ioctl(vm, KVM_CREATE_DEVICE, (void *)8));
	CHECK_ERRNO(ENOTTY, ioctl(vm, KVM_SET_DEVICE_ATTR, &other));

	int dev = open("/dev/vfio/devices/vfio0", O_RDWR);
	REQUIRE(dev >= 0);
	int iommufd = open("/dev/iommu", O_RDWR);
	REQUIRE(iommufd >= 0);

	/* An unbound device file is accepted. */
	CHECK_OK(file_add(kvm, dev));
	check_flips(__LINE__, 1, 0);
	CHECK_ERRNO(EEXIST, file_add(kvm, dev));
	int dev_dup = dup(dev);
	CHECK_ERRNO(EEXIST, file_add(kvm, dev_dup));
	CHECK_ERRNO(EINVAL, file_add(kvm, iommufd));
	CHECK_ERRNO(EINVAL, file_add(kvm, vm));
	CHECK_ERRNO(EINVAL, file_add(kvm, kvm));
	CHECK_ERRNO(EBADF, file_add(kvm, -1));
	CHECK_ERRNO(EFAULT, ioctl(kvm, KVM_SET_DEVICE_ATTR, (void *)8));
	CHECK_ERRNO(EPERM, ioctl(kvm, KVM_GET_DEVICE_ATTR, (void *)8));
	CHECK_ERRNO(ENXIO, attr(kvm, KVM_SET_DEVICE_ATTR, KVM_DEV_VFIO_FILE + 1,
				KVM_DEV_VFIO_FILE_ADD, dev));
	CHECK_ERRNO(ENXIO, attr(kvm, KVM_SET_DEVICE_ATTR, KVM_DEV_VFIO_FILE, 3, dev));

	CHECK_OK(file_del(kvm, dev_dup));
	check_flips(__LINE__, 1, 1);
	CHECK_ERRNO(ENOENT, file_del(kvm, dev));
	CHECK_ERRNO(ENOENT, file_del(kvm, iommufd));
	CHECK_ERRNO(EBADF, file_del(kvm, -1));

	CHECK_OK(attr(kvm, KVM_HAS_DEVICE_ATTR, KVM_DEV_VFIO_FILE, KVM_DEV_VFIO_FILE_ADD, 0));
	CHECK_OK(attr(kvm, KVM_HAS_DEVICE_ATTR, KVM_DEV_VFIO_FILE, KVM_DEV_VFIO_FILE_DEL, 0));
	CHECK_ERRNO(ENXIO, attr(kvm, KVM_HAS_DEVICE_ATTR, KVM_DEV_VFIO_FILE, 3, 0));
	CHECK_ERRNO(ENXIO, attr(kvm, KVM_HAS_DEVICE_ATTR, 0, KVM_DEV_VFIO_FILE_ADD, 0));
	CHECK_ERRNO(EPERM, attr(kvm, KVM_GET_DEVICE_ATTR, KVM_DEV_VFIO_FILE, KVM_DEV_VFIO_FILE_ADD, 0));
	CHECK_ERRNO(ENOTTY, ioctl(kvm, KVM_CREATE_DEVICE, &cd2));

	/* Release: closing the device's last fd drops its files and lets the VM
	 * have a new one. */
	CHECK_OK(file_add(kvm, dev));
	check_flips(__LINE__, 2, 1);
	int kvm_dup = dup(kvm);
	CHECK_OK(close(kvm));
	check_flips(__LINE__, 2, 1);
	CHECK_ERRNO(EBUSY, ioctl(vm, KVM_CREATE_DEVICE, &cd));
	CHECK_OK(close(kvm_dup));
	check_flips(__LINE__, 2, 2);
	cd.fd = 0;
	CHECK_OK(ioctl(vm_dup, KVM_CREATE_DEVICE, &cd));
	CHECK_OK(close(cd.fd));

	/* The device file outlived its place on the list; its last close works. */
	CHECK_OK(close(dev_dup));
	CHECK_OK(close(dev));
	CHECK_OK(close(iommufd));
	CHECK_OK(close(vm_dup));
	CHECK_OK(close(vm));
	return finish();
}
