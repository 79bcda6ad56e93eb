/* SPDX-License-Identifier: MIT */
/*
 * A user-space driver for the edu DMA test device (PCI 1234:5d11), written as
 * one would for real hardware with VFIO's device cdev and iommufd:
 *
 *   open the device's cdev and /dev/iommu, bind, make an IO address space,
 *   attach, map two buffers, enable bus mastering, route the device's MSI to
 *   an eventfd, program a copy, wait for the interrupt, check the bytes; then
 *   point the device at an IOVA nothing maps and watch the IOMMU refuse it;
 *   unmap, and watch it refuse the old IOVA too.
 *
 * The device's cdev is found as real drivers find it, in sysfs:
 * /sys/bus/pci/devices/<BDF>/vfio-dev/vfioN.
 *
 * Under softiommu (`softiommu run -- edu_driver`) the device, the IOMMU and
 * the page tables are emulated, and the DMA lands in this program's memory.
 * Usage: edu_driver [BDF]   (default 0000:01:00.0)
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <linux/iommufd.h>
#include <linux/vfio.h>

/* The edu device's BAR 0 registers. */
#define EDU_ID 0x00
#define EDU_SRC 0x08
#define EDU_DST 0x10
#define EDU_LEN 0x18
#define EDU_CMD 0x20
#define EDU_STATUS 0x24
#define EDU_FAULT_IOVA 0x28
#define EDU_IRQ_STATUS 0x30
#define EDU_IRQ_ACK 0x34
#define EDU_CMD_START 0x1
#define EDU_CMD_IRQ 0x2
#define EDU_STATUS_DONE 0x2
#define EDU_STATUS_ERROR 0x4

#define PCI_COMMAND 0x04
#define PCI_COMMAND_MEMORY 0x2
#define PCI_COMMAND_MASTER 0x4

#define BUF_SIZE (64 * 1024)
#define SRC_IOVA 0x100000ULL
#define DST_IOVA 0x200000ULL
#define UNMAPPED_IOVA 0x900000ULL

static int device_fd, iommufd, irq_fd;
static uint32_t ioas_id;
static uint64_t bar0, config;

static void die(const char *what)
{
	fprintf(stderr, "edu_driver: %s: %s\n", what, strerror(errno));
	exit(1);
}

static void check(int ok, const char *what)
{
	if (!ok) {
		fprintf(stderr, "edu_driver: %s\n", what);
		exit(1);
	}
}

static uint64_t reg_read(uint64_t at, size_t size)
{
	uint64_t v = 0;
	if (pread(device_fd, &v, size, bar0 + at) != (ssize_t)size)
		die("pread BAR0");
	return v;
}

static void reg_write(uint64_t at, uint64_t v, size_t size)
{
	if (pwrite(device_fd, &v, size, bar0 + at) != (ssize_t)size)
		die("pwrite BAR0");
}

static void map(void *va, uint64_t iova, uint64_t length)
{
	struct iommu_ioas_map map = {
		.size = sizeof(map),
		.flags = IOMMU_IOAS_MAP_FIXED_IOVA | IOMMU_IOAS_MAP_READABLE |
			 IOMMU_IOAS_MAP_WRITEABLE,
		.user_va = (uintptr_t)va,
		.length = length,
		.iova = iova,
		.ioas_id = ioas_id,
	};
	if (ioctl(iommufd, IOMMU_IOAS_MAP, &map))
		die("IOMMU_IOAS_MAP");
}

/* Starts a copy of BUF_SIZE bytes and waits for its interrupt; the status. */
static uint32_t copy(uint64_t src, uint64_t dst)
{
	reg_write(EDU_SRC, src, 8);
	reg_write(EDU_DST, dst, 8);
	reg_write(EDU_LEN, BUF_SIZE, 4);
	reg_write(EDU_CMD, EDU_CMD_START | EDU_CMD_IRQ, 4);
	struct pollfd p = { .fd = irq_fd, .events = POLLIN };
	if (poll(&p, 1, 10000) != 1)
		die("waiting for the interrupt");
	uint64_t count;
	if (read(irq_fd, &count, sizeof(count)) != sizeof(count))
		die("read eventfd");
	reg_write(EDU_IRQ_ACK, reg_read(EDU_IRQ_STATUS, 4), 4);
	return reg_read(EDU_STATUS, 4);
}

/* The cdev of the function at `bdf`: the vfio-dev entry sysfs lists for it. */
static void find_cdev(const char *bdf, char *path, size_t len)
{
	char dir[256];
	snprintf(dir, sizeof(dir), "/sys/bus/pci/devices/%s/vfio-dev", bdf);
	DIR *d = opendir(dir);
	if (!d)
		die(dir);
	struct dirent *e;
	while ((e = readdir(d)))
		if (!strncmp(e->d_name, "vfio", 4))
			break;
	if (!e) {
		fprintf(stderr, "edu_driver: %s is not bound to vfio-pci\n", bdf);
		exit(1);
	}
	snprintf(path, len, "/dev/vfio/devices/%s", e->d_name);
	closedir(d);
}

int main(int argc, char **argv)
{
	const char *bdf = argc > 1 ? argv[1] : "0000:01:00.0";
	char path[64];

	/* Line by line, so that our lines and the trace's interleave in order. */
	setvbuf(stdout, NULL, _IOLBF, 0);
	find_cdev(bdf, path, sizeof(path));
	printf("%s: %s\n", bdf, path);

	device_fd = open(path, O_RDWR | O_CLOEXEC);
	if (device_fd < 0)
		die(path);
	iommufd = open("/dev/iommu", O_RDWR | O_CLOEXEC);
	if (iommufd < 0)
		die("/dev/iommu");

	struct vfio_device_bind_iommufd bind = {
		.argsz = sizeof(bind),
		.iommufd = iommufd,
	};
	if (ioctl(device_fd, VFIO_DEVICE_BIND_IOMMUFD, &bind))
		die("VFIO_DEVICE_BIND_IOMMUFD");

	struct iommu_ioas_alloc alloc = { .size = sizeof(alloc) };
	if (ioctl(iommufd, IOMMU_IOAS_ALLOC, &alloc))
		die("IOMMU_IOAS_ALLOC");
	ioas_id = alloc.out_ioas_id;

	struct vfio_device_attach_iommufd_pt attach = {
		.argsz = sizeof(attach),
		.pt_id = ioas_id,
	};
	if (ioctl(device_fd, VFIO_DEVICE_ATTACH_IOMMUFD_PT, &attach))
		die("VFIO_DEVICE_ATTACH_IOMMUFD_PT");
	printf("device %u bound, attached to HWPT %u of IOAS %u\n", bind.out_devid,
	       attach.pt_id, ioas_id);

	struct vfio_device_info info = { .argsz = sizeof(info) };
	if (ioctl(device_fd, VFIO_DEVICE_GET_INFO, &info))
		die("VFIO_DEVICE_GET_INFO");
	check(info.flags & VFIO_DEVICE_FLAGS_PCI, "not a PCI device");

	struct vfio_region_info region = {
		.argsz = sizeof(region),
		.index = VFIO_PCI_BAR0_REGION_INDEX,
	};
	if (ioctl(device_fd, VFIO_DEVICE_GET_REGION_INFO, &region))
		die("VFIO_DEVICE_GET_REGION_INFO BAR0");
	bar0 = region.offset;
	region.index = VFIO_PCI_CONFIG_REGION_INDEX;
	if (ioctl(device_fd, VFIO_DEVICE_GET_REGION_INFO, &region))
		die("VFIO_DEVICE_GET_REGION_INFO config");
	config = region.offset;

	uint16_t ids[2];
	if (pread(device_fd, ids, sizeof(ids), config) != sizeof(ids))
		die("pread config");
	check(ids[0] == 0x1234 && ids[1] == 0x5d11, "not an edu device");
	printf("edu %04x:%04x, ID register %#" PRIx64 "\n", ids[0], ids[1],
	       reg_read(EDU_ID, 4));

	uint16_t cmd;
	if (pread(device_fd, &cmd, 2, config + PCI_COMMAND) != 2)
		die("pread command");
	cmd |= PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER;
	if (pwrite(device_fd, &cmd, 2, config + PCI_COMMAND) != 2)
		die("pwrite command");

	struct vfio_irq_info irq = {
		.argsz = sizeof(irq),
		.index = VFIO_PCI_MSI_IRQ_INDEX,
	};
	if (ioctl(device_fd, VFIO_DEVICE_GET_IRQ_INFO, &irq))
		die("VFIO_DEVICE_GET_IRQ_INFO");
	check(irq.count >= 1 && (irq.flags & VFIO_IRQ_INFO_EVENTFD), "no MSI");
	irq_fd = eventfd(0, EFD_CLOEXEC);
	if (irq_fd < 0)
		die("eventfd");
	struct {
		struct vfio_irq_set set;
		int32_t fd;
	} irqs = {
		.set = {
			.argsz = sizeof(irqs),
			.flags = VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_TRIGGER,
			.index = VFIO_PCI_MSI_IRQ_INDEX,
			.start = 0,
			.count = 1,
		},
		.fd = irq_fd,
	};
	if (ioctl(device_fd, VFIO_DEVICE_SET_IRQS, &irqs))
		die("VFIO_DEVICE_SET_IRQS");

	uint8_t *src = mmap(NULL, BUF_SIZE, PROT_READ | PROT_WRITE,
			    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	uint8_t *dst = mmap(NULL, BUF_SIZE, PROT_READ | PROT_WRITE,
			    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (src == MAP_FAILED || dst == MAP_FAILED)
		die("mmap");
	for (size_t i = 0; i < BUF_SIZE; i++)
		src[i] = (uint8_t)(i * 7 + 1);
	map(src, SRC_IOVA, BUF_SIZE);
	map(dst, DST_IOVA, BUF_SIZE);

	/* 1. A copy between mapped IOVAs lands in our memory. */
	uint32_t status = copy(SRC_IOVA, DST_IOVA);
	check(status == EDU_STATUS_DONE, "copy did not complete");
	check(!memcmp(src, dst, BUF_SIZE), "destination differs from source");
	printf("DMA %#llx -> %#llx: %d bytes copied, interrupt received\n",
	       SRC_IOVA, DST_IOVA, BUF_SIZE);

	/* 2. A copy to an IOVA nothing maps is refused by the IOMMU. */
	memset(dst, 0, BUF_SIZE);
	status = copy(SRC_IOVA, UNMAPPED_IOVA);
	check(status & EDU_STATUS_ERROR, "DMA to an unmapped IOVA succeeded");
	printf("DMA %#llx -> %#llx: refused, device fault at IOVA %#" PRIx64 "\n",
	       SRC_IOVA, UNMAPPED_IOVA, reg_read(EDU_FAULT_IOVA, 8));

	/* 3. After unmap, the old IOVA reaches nothing. */
	struct iommu_ioas_unmap unmap = {
		.size = sizeof(unmap),
		.ioas_id = ioas_id,
		.iova = DST_IOVA,
		.length = BUF_SIZE,
	};
	if (ioctl(iommufd, IOMMU_IOAS_UNMAP, &unmap))
		die("IOMMU_IOAS_UNMAP");
	status = copy(SRC_IOVA, DST_IOVA);
	check(status & EDU_STATUS_ERROR, "DMA after unmap succeeded");
	for (size_t i = 0; i < BUF_SIZE; i++)
		check(dst[i] == 0, "DMA after unmap reached the old pages");
	printf("DMA %#llx -> %#llx after unmap: refused, old pages untouched\n",
	       SRC_IOVA, DST_IOVA);

	struct vfio_device_detach_iommufd_pt detach = { .argsz = sizeof(detach) };
	if (ioctl(device_fd, VFIO_DEVICE_DETACH_IOMMUFD_PT, &detach))
		die("VFIO_DEVICE_DETACH_IOMMUFD_PT");
	close(irq_fd);
	close(device_fd);
	close(iommufd);
	printf("edu_driver: OK\n");
	return 0;
}
