/* SPDX-License-Identifier: MIT */
/*
 * The legacy VFIO group path as QEMU drives it, on the default machine (groups
 * 4 and 5 hold the edu devices 0000:01:00.0 and 0000:02:00.0 on vfio-pci;
 * group 6 shares 03:00.0 with a sound card on its kernel driver): open the
 * container /dev/vfio/vfio, the group /dev/vfio/4, GET_STATUS, SET_CONTAINER,
 * SET_IOMMU type1v2, GET_DEVICE_FD, GET_INFO, MAP_DMA and a DMA copy by the
 * device, then hot reset; and the errno of each step's failure paths.
 */
#include "ctest.h"
#include <linux/vfio.h>

#define EDU_SRC 0x08
#define EDU_DST 0x10
#define EDU_LEN 0x18
#define EDU_PASID 0x1c
#define EDU_CMD 0x20
#define EDU_STATUS 0x24
#define EDU_TRANSFERS 0x38
#define EDU_CMD_START 1u
#define EDU_STATUS_BUSY 1u
#define EDU_STATUS_DONE 2u

#define CONFIG_OFFSET ((uint64_t)VFIO_PCI_CONFIG_REGION_INDEX << 40)
#define PCI_COMMAND_OFF 0x04
#define PCI_COMMAND_MEM_MASTER 0x6

static int get_device_fd(int group, const char *name)
{
	return ioctl(group, VFIO_GROUP_GET_DEVICE_FD, name);
}

static int set_container(int group, int fd)
{
	return ioctl(group, VFIO_GROUP_SET_CONTAINER, &fd);
}

static int bar_w32(int dev, uint64_t off, uint32_t v)
{
	return pwrite(dev, &v, 4, off) == 4 ? 0 : -1;
}

static int bar_w64(int dev, uint64_t off, uint64_t v)
{
	return pwrite(dev, &v, 8, off) == 8 ? 0 : -1;
}

static uint32_t bar_r32(int dev, uint64_t off)
{
	uint32_t v = 0xdeadbeef;

	if (pread(dev, &v, 4, off) != 4)
		FAIL("pread at %#llx", (unsigned long long)off);
	return v;
}

static uint32_t status_flags(int group)
{
	struct vfio_group_status st = { .argsz = sizeof(st) };

	if (!CHECK_OK(ioctl(group, VFIO_GROUP_GET_STATUS, &st)))
		return 0xffffffff;
	return st.flags;
}

static int hot_reset(int dev, int nfds, const int *fds)
{
	char buf[sizeof(struct vfio_pci_hot_reset) + 4 * sizeof(int)];
	struct vfio_pci_hot_reset *r = (void *)buf;

	memset(buf, 0, sizeof(buf));
	r->argsz = sizeof(*r) + nfds * sizeof(int);
	r->count = nfds;
	/* group_fds[] follows the header (spelled out: our linux/vfio.h
	 * leaves the flexible arrays out). */
	memcpy(r + 1, fds, nfds * sizeof(int));
	return ioctl(dev, VFIO_DEVICE_PCI_HOT_RESET, r);
}

int main(void)
{
	size_t ps = page_size();
	char *buf = alloc_buffer(2 * ps);
	uint64_t iova = 0x100000;

	/* The container: an iommufd speaking VFIO. */
	int container = open("/dev/vfio/vfio", O_RDWR);
	REQUIRE(container >= 0);
	CHECK_EQ(VFIO_API_VERSION, ioctl(container, VFIO_GET_API_VERSION));
	CHECK_EQ(1, ioctl(container, VFIO_CHECK_EXTENSION, VFIO_TYPE1v2_IOMMU));
	/* No group yet, so no compat IOAS. */
	CHECK_ERRNO(ENODEV, ioctl(container, VFIO_SET_IOMMU, VFIO_TYPE1v2_IOMMU));

	/* Group nodes exist only for groups with a vfio device. */
	CHECK_ERRNO(ENOENT, open("/dev/vfio/0", O_RDWR));
	CHECK_ERRNO(ENOENT, open("/dev/vfio/99", O_RDWR));

	int group = open("/dev/vfio/4", O_RDWR | O_CLOEXEC);
	REQUIRE(group >= 0);
	CHECK_ERRNO(EBUSY, open("/dev/vfio/4", O_RDWR));
	CHECK_EQ(VFIO_GROUP_FLAGS_VIABLE, status_flags(group));
	struct vfio_group_status st = { .argsz = sizeof(st) - 1 };
	CHECK_ERRNO(EINVAL, ioctl(group, VFIO_GROUP_GET_STATUS, &st));
	CHECK_ERRNO(EFAULT, ioctl(group, VFIO_GROUP_GET_STATUS, (void *)8));
	CHECK_ERRNO(ENOTTY, ioctl(group, VFIO_GET_API_VERSION));

	/* The device's cdev cannot be bound while its group is open. */
	int cdev = open("/dev/vfio/devices/vfio0", O_RDWR);
	REQUIRE(cdev >= 0);
	struct vfio_device_bind_iommufd bind = { .argsz = sizeof(bind), .iommufd = container };
	CHECK_ERRNO(EBUSY, ioctl(cdev, VFIO_DEVICE_BIND_IOMMUFD, &bind));

	/* SET_CONTAINER: bad fds, then the container. */
	int null = open("/dev/null", O_RDWR);
	CHECK_ERRNO(EINVAL, get_device_fd(group, "0000:01:00.0"));
	CHECK_ERRNO(EBADF, set_container(group, -1));
	CHECK_ERRNO(EBADF, set_container(group, 1000));
	CHECK_ERRNO(EBADFD, set_container(group, null));
	CHECK_ERRNO(EBADFD, set_container(group, cdev));
	CHECK_ERRNO(EFAULT, ioctl(group, VFIO_GROUP_SET_CONTAINER, (void *)8));
	CHECK_ERRNO(EINVAL, ioctl(group, VFIO_GROUP_UNSET_CONTAINER));
	CHECK_EQ(VFIO_GROUP_FLAGS_VIABLE, status_flags(group));
	REQUIRE_OK(set_container(group, container));
	CHECK_ERRNO(EINVAL, set_container(group, container));
	CHECK_ERRNO(EINVAL, set_container(group, null));
	CHECK_EQ(VFIO_GROUP_FLAGS_VIABLE | VFIO_GROUP_FLAGS_CONTAINER_SET, status_flags(group));
	REQUIRE_OK(ioctl(container, VFIO_SET_IOMMU, VFIO_TYPE1v2_IOMMU));

	/* GET_DEVICE_FD: names. */
	CHECK_ERRNO(ENODEV, get_device_fd(group, "0000:02:00.0"));
	CHECK_ERRNO(ENODEV, get_device_fd(group, "01:00.0"));
	CHECK_ERRNO(ENODEV, get_device_fd(group, "0000:01:00.0x"));
	CHECK_ERRNO(EINVAL, get_device_fd(group, "0000:01:00.0 foo"));
	CHECK_ERRNO(EINVAL, get_device_fd(group, "0000:01:00.0 vf_token=2ab74924-c335-45f4-9b16-8569e5b08258"));
	CHECK_ERRNO(EFAULT, get_device_fd(group, (const char *)8));
	char *long_name = malloc(2 * ps);
	memset(long_name, 'a', 2 * ps);
	long_name[2 * ps - 1] = 0;
	CHECK_ERRNO(EINVAL, get_device_fd(group, long_name));
	free(long_name);

	int dev = get_device_fd(group, "0000:01:00.0");
	REQUIRE(dev >= 0);
	CHECK(fcntl(dev, F_GETFD) & FD_CLOEXEC);
	int dev2 = get_device_fd(group, "0000:01:00.0");
	CHECK(dev2 >= 0 && dev2 != dev);
	close(dev2);

	struct vfio_device_info info = { .argsz = sizeof(info) };
	if (CHECK_OK(ioctl(dev, VFIO_DEVICE_GET_INFO, &info))) {
		CHECK_EQ(VFIO_DEVICE_FLAGS_PCI | VFIO_DEVICE_FLAGS_RESET, info.flags);
		CHECK_EQ(VFIO_PCI_NUM_REGIONS, info.num_regions);
		CHECK_EQ(VFIO_PCI_NUM_IRQS, info.num_irqs);
	}
	/* A group-path device needs no bind and takes none. */
	CHECK_ERRNO(EINVAL, ioctl(dev, VFIO_DEVICE_BIND_IOMMUFD, &bind));

	/* MAP_DMA, and the device copies through it. */
	struct vfio_iommu_type1_dma_map map = {
		.argsz = sizeof(map),
		.flags = VFIO_DMA_MAP_FLAG_READ | VFIO_DMA_MAP_FLAG_WRITE,
		.vaddr = (uintptr_t)buf,
		.iova = iova,
		.size = 2 * ps,
	};
	REQUIRE_OK(ioctl(container, VFIO_IOMMU_MAP_DMA, &map));
	for (int i = 0; i < 64; i++)
		buf[i] = (char)(i * 3 + 1);
	uint16_t cmd = PCI_COMMAND_MEM_MASTER;
	CHECK_EQ(2, pwrite(dev, &cmd, 2, CONFIG_OFFSET + PCI_COMMAND_OFF));
	CHECK_OK(bar_w64(dev, EDU_SRC, iova));
	CHECK_OK(bar_w64(dev, EDU_DST, iova + ps));
	CHECK_OK(bar_w32(dev, EDU_LEN, 64));
	CHECK_OK(bar_w32(dev, EDU_PASID, 0));
	CHECK_OK(bar_w32(dev, EDU_CMD, EDU_CMD_START));
	uint32_t s;
	while ((s = bar_r32(dev, EDU_STATUS)) & EDU_STATUS_BUSY)
		;
	CHECK_EQ(EDU_STATUS_DONE, s);
	CHECK(memcmp(buf, buf + ps, 64) == 0);
	CHECK_EQ(1, bar_r32(dev, EDU_TRANSFERS));

	/* Hot reset info: too small, then the one function with its group. */
	char ibuf[sizeof(struct vfio_pci_hot_reset_info) + 4 * sizeof(struct vfio_pci_dependent_device)];
	struct vfio_pci_hot_reset_info *hi = (void *)ibuf;
	memset(ibuf, 0, sizeof(ibuf));
	hi->argsz = sizeof(*hi) - 1;
	CHECK_ERRNO(EINVAL, ioctl(dev, VFIO_DEVICE_GET_PCI_HOT_RESET_INFO, hi));
	hi->argsz = sizeof(*hi);
	CHECK_ERRNO(ENOSPC, ioctl(dev, VFIO_DEVICE_GET_PCI_HOT_RESET_INFO, hi));
	CHECK_EQ(1, hi->count);
	hi->argsz = sizeof(ibuf);
	struct vfio_pci_dependent_device *devices = (void *)(hi + 1);
	if (CHECK_OK(ioctl(dev, VFIO_DEVICE_GET_PCI_HOT_RESET_INFO, hi))) {
		CHECK_EQ(0, hi->flags);
		CHECK_EQ(1, hi->count);
		CHECK_EQ(4, devices[0].group_id);
		CHECK_EQ(0, devices[0].segment);
		CHECK_EQ(1, devices[0].bus);
		CHECK_EQ(0, devices[0].devfn);
	}

	/* Hot reset: the group form, with this group's fd. */
	int bad = -1;
	CHECK_ERRNO(EINVAL, hot_reset(dev, 0, NULL));
	CHECK_ERRNO(EBADF, hot_reset(dev, 1, &bad));
	CHECK_ERRNO(EINVAL, hot_reset(dev, 1, &container));
	CHECK_ERRNO(EINVAL, hot_reset(dev, 1, &null));
	int two[2] = { group, group };
	CHECK_ERRNO(EINVAL, hot_reset(dev, 2, two));
	CHECK_EQ(1, bar_r32(dev, EDU_TRANSFERS));
	CHECK_OK(hot_reset(dev, 1, &group));
	CHECK_EQ(0, bar_r32(dev, EDU_TRANSFERS));

	/* Group 6 is not viable: its device cannot be opened. */
	int group6 = open("/dev/vfio/6", O_RDWR);
	REQUIRE(group6 >= 0);
	CHECK_EQ(0, status_flags(group6));
	CHECK_OK(set_container(group6, container));
	CHECK_ERRNO(EPERM, get_device_fd(group6, "0000:03:00.0"));
	CHECK_OK(close(group6));

	/* The device outlives its group file; the group reopens bare. */
	CHECK_OK(ioctl(group, VFIO_GROUP_UNSET_CONTAINER));
	CHECK_ERRNO(EINVAL, ioctl(group, VFIO_GROUP_UNSET_CONTAINER));
	CHECK_OK(close(group));
	CHECK_EQ(0, bar_r32(dev, EDU_TRANSFERS));
	group = open("/dev/vfio/4", O_RDWR);
	REQUIRE(group >= 0);
	/* Owned through the device still open: not viable. */
	CHECK_EQ(0, status_flags(group));
	CHECK_OK(close(dev));
	CHECK_EQ(VFIO_GROUP_FLAGS_VIABLE, status_flags(group));
	CHECK_OK(close(group));

	/* With the group closed the cdev binds. */
	CHECK_OK(ioctl(cdev, VFIO_DEVICE_BIND_IOMMUFD, &bind));
	CHECK_ERRNO(EBUSY, open("/dev/vfio/4", O_RDWR));
	CHECK_OK(close(cdev));
	close(null);
	close(container);
	return finish();
}
