/* SPDX-License-Identifier: MIT */
/*
 * VFIO device cdevs of the default machine through the ABI: what works before
 * and after VFIO_DEVICE_BIND_IOMMUFD, each ioctl's argsz and flag rules, the
 * ownership errors (a group with a kernel driver, a second iommufd), regions
 * by pread/pwrite (and read/write at the file position), interrupts to an
 * eventfd, and that closing the device gives its group back.
 *
 * Default machine: vfio0 = 0000:01:00.0 (group 4), vfio1 = 0000:02:00.0
 * (group 5), vfio2 = 0000:03:00.0 (group 6, whose 0000:03:00.1 has a kernel
 * driver).
 */
#include "ctest.h"

#include <linux/vfio.h>
#include <poll.h>
#include <sys/eventfd.h>

#define CONFIG_OFFSET (7ULL << 40)

static int open_dev(int n)
{
	char path[64];

	snprintf(path, sizeof(path), "/dev/vfio/devices/vfio%d", n);
	return open(path, O_RDWR | O_CLOEXEC);
}

static int bind(int dev, int iommufd, uint32_t *devid)
{
	struct vfio_device_bind_iommufd b = {
		.argsz = sizeof(b),
		.iommufd = iommufd,
	};
	int rc = ioctl(dev, VFIO_DEVICE_BIND_IOMMUFD, &b);

	if (devid)
		*devid = rc ? 0 : b.out_devid;
	return rc;
}

static void before_bind(void)
{
	int dev = open_dev(0);

	REQUIRE(dev >= 0);
	struct vfio_device_info info = { .argsz = sizeof(info) };
	CHECK_ERRNO(EINVAL, ioctl(dev, VFIO_DEVICE_GET_INFO, &info));
	/* Even an unknown ioctl, and a bad pointer, are EINVAL before bind. */
	CHECK_ERRNO(EINVAL, ioctl(dev, _IO(VFIO_TYPE, VFIO_BASE + 40), 0));
	CHECK_ERRNO(EINVAL, ioctl(dev, VFIO_DEVICE_GET_INFO, (void *)8));
	uint32_t v;
	CHECK_ERRNO(EINVAL, pread(dev, &v, 4, 0));
	CHECK_ERRNO(EINVAL, pwrite(dev, &v, 4, 0));
	CHECK_ERRNO(ENOENT, open_dev(7));
	CHECK_ERRNO(ENOENT, open("/dev/vfio/devices/vfio3", O_RDWR));
	close(dev);
}

static void bind_rules(void)
{
	int fd = iommufd_open(), fd2 = iommufd_open();
	int dev = open_dev(0);
	uint32_t devid;

	REQUIRE(dev >= 0);
	struct vfio_device_bind_iommufd b = { .argsz = 15, .iommufd = fd };
	CHECK_ERRNO(EINVAL, ioctl(dev, VFIO_DEVICE_BIND_IOMMUFD, &b));
	b.argsz = sizeof(b);
	b.flags = 2;
	CHECK_ERRNO(EINVAL, ioctl(dev, VFIO_DEVICE_BIND_IOMMUFD, &b));
	b.flags = VFIO_DEVICE_BIND_FLAG_TOKEN;
	b.token_uuid_ptr = 8;
	CHECK_ERRNO(EFAULT, ioctl(dev, VFIO_DEVICE_BIND_IOMMUFD, &b));
	CHECK_ERRNO(EINVAL, bind(dev, -1, NULL));
	CHECK_ERRNO(EBADF, bind(dev, 1000, NULL));
	CHECK_ERRNO(EBADFD, bind(dev, 1, NULL));
	/* Bytes past the struct must be zero. */
	struct {
		struct vfio_device_bind_iommufd b;
		uint64_t tail;
	} big = { .b = { .argsz = sizeof(big), .iommufd = fd }, .tail = 1 };
	CHECK_ERRNO(E2BIG, ioctl(dev, VFIO_DEVICE_BIND_IOMMUFD, &big));
	big.tail = 0;
	CHECK_OK(ioctl(dev, VFIO_DEVICE_BIND_IOMMUFD, &big));
	devid = big.b.out_devid;
	CHECK(devid != 0);
	CHECK_ERRNO(EINVAL, bind(dev, fd, NULL));
	/* The device object is VFIO's. */
	CHECK_ERRNO(EBUSY, destroy(fd, devid));

	/* Another open of the same device cannot bind while this one is. */
	int again = open_dev(0);
	CHECK_ERRNO(EINVAL, bind(again, fd2, NULL));
	/* A group with a kernel DMA driver cannot be claimed. */
	int dev2 = open_dev(2);
	CHECK_ERRNO(EPERM, bind(dev2, fd, NULL));

	/* Closing the bound file frees the device for the other iommufd. */
	close(dev);
	CHECK_OK(bind(again, fd2, NULL));
	close(again);
	close(dev2);
	close(fd);
	close(fd2);
}

static void attach_rules(void)
{
	int fd = iommufd_open();
	int dev = open_dev(1);
	uint32_t ioas, ioas2;

	REQUIRE(dev >= 0);
	REQUIRE_OK(bind(dev, fd, NULL));
	REQUIRE_OK(ioas_alloc(fd, &ioas));
	REQUIRE_OK(ioas_alloc(fd, &ioas2));
	struct vfio_device_attach_iommufd_pt at = { .argsz = 11, .pt_id = ioas };
	CHECK_ERRNO(EINVAL, ioctl(dev, VFIO_DEVICE_ATTACH_IOMMUFD_PT, &at));
	at.argsz = 12;
	at.flags = 2;
	CHECK_ERRNO(EINVAL, ioctl(dev, VFIO_DEVICE_ATTACH_IOMMUFD_PT, &at));
	at.flags = VFIO_DEVICE_ATTACH_PASID;
	CHECK_ERRNO(EINVAL, ioctl(dev, VFIO_DEVICE_ATTACH_IOMMUFD_PT, &at));
	at.flags = 0;
	at.pt_id = 4242;
	CHECK_ERRNO(ENOENT, ioctl(dev, VFIO_DEVICE_ATTACH_IOMMUFD_PT, &at));
	at.pt_id = ioas;
	CHECK_OK(ioctl(dev, VFIO_DEVICE_ATTACH_IOMMUFD_PT, &at));
	uint32_t hwpt = at.pt_id;
	CHECK(hwpt != ioas);
	/* The IOAS is in use by the device's HWPT. */
	CHECK_ERRNO(EBUSY, destroy(fd, ioas));
	/* Attaching again replaces. */
	at.pt_id = ioas2;
	CHECK_OK(ioctl(dev, VFIO_DEVICE_ATTACH_IOMMUFD_PT, &at));
	CHECK(at.pt_id != hwpt);
	/* A PASID of the edu (20-bit PASIDs behind VT-d). */
	struct vfio_device_attach_iommufd_pt pa = {
		.argsz = sizeof(pa),
		.flags = VFIO_DEVICE_ATTACH_PASID,
		.pt_id = ioas,
		.pasid = 5,
	};
	/* An IOAS's automatic domain is not PASID-compatible. */
	CHECK_ERRNO(EINVAL, ioctl(dev, VFIO_DEVICE_ATTACH_IOMMUFD_PT, &pa));

	struct vfio_device_detach_iommufd_pt det = { .argsz = 7 };
	CHECK_ERRNO(EINVAL, ioctl(dev, VFIO_DEVICE_DETACH_IOMMUFD_PT, &det));
	det.argsz = 8;
	det.flags = VFIO_DEVICE_DETACH_PASID;
	CHECK_ERRNO(EINVAL, ioctl(dev, VFIO_DEVICE_DETACH_IOMMUFD_PT, &det));
	det.argsz = sizeof(det);
	det.pasid = 9;
	CHECK_OK(ioctl(dev, VFIO_DEVICE_DETACH_IOMMUFD_PT, &det));
	det.flags = 0;
	CHECK_OK(ioctl(dev, VFIO_DEVICE_DETACH_IOMMUFD_PT, &det));
	CHECK_OK(ioctl(dev, VFIO_DEVICE_DETACH_IOMMUFD_PT, &det));
	CHECK_OK(destroy(fd, ioas2));
	close(dev);
	close(fd);
}

static void info_regions_irqs(void)
{
	int fd = iommufd_open();
	int dev = open_dev(0);

	REQUIRE(dev >= 0);
	REQUIRE_OK(bind(dev, fd, NULL));
	struct vfio_device_info info = { .argsz = 15 };
	CHECK_ERRNO(EINVAL, ioctl(dev, VFIO_DEVICE_GET_INFO, &info));
	info.argsz = sizeof(info);
	CHECK_OK(ioctl(dev, VFIO_DEVICE_GET_INFO, &info));
	CHECK_EQ(VFIO_DEVICE_FLAGS_PCI | VFIO_DEVICE_FLAGS_RESET, info.flags);
	CHECK_EQ(VFIO_PCI_NUM_REGIONS, info.num_regions);
	CHECK_EQ(VFIO_PCI_NUM_IRQS, info.num_irqs);
	CHECK_ERRNO(EFAULT, ioctl(dev, VFIO_DEVICE_GET_INFO, (void *)8));
	CHECK_ERRNO(ENOTTY, ioctl(dev, _IO(VFIO_TYPE, VFIO_BASE + 40), 0));

	struct vfio_region_info r = { .argsz = sizeof(r), .index = 0 };
	CHECK_OK(ioctl(dev, VFIO_DEVICE_GET_REGION_INFO, &r));
	CHECK_EQ(4096, r.size);
	CHECK_EQ(0, r.offset);
	CHECK_EQ(VFIO_REGION_INFO_FLAG_READ | VFIO_REGION_INFO_FLAG_WRITE, r.flags);
	r.index = VFIO_PCI_CONFIG_REGION_INDEX;
	CHECK_OK(ioctl(dev, VFIO_DEVICE_GET_REGION_INFO, &r));
	CHECK_EQ(CONFIG_OFFSET, r.offset);
	CHECK_EQ(256, r.size);
	r.index = VFIO_PCI_NUM_REGIONS;
	CHECK_ERRNO(EINVAL, ioctl(dev, VFIO_DEVICE_GET_REGION_INFO, &r));
	r.index = 0;
	r.argsz = 31;
	CHECK_ERRNO(EINVAL, ioctl(dev, VFIO_DEVICE_GET_REGION_INFO, &r));

	uint32_t v = 0;
	CHECK_EQ(4, pread(dev, &v, 4, CONFIG_OFFSET));
	CHECK_EQ(0x5d111234, v);
	CHECK_EQ(4, pread(dev, &v, 4, 0));
	CHECK_EQ(0x5d110001, v);
	CHECK_ERRNO(EINVAL, pread(dev, &v, 4, 4096));
	CHECK_ERRNO(EINVAL, pread(dev, &v, 4, 1ULL << 40));
	CHECK_ERRNO(EINVAL, pread(dev, &v, 4, -1));
	void *volatile bad = (void *)8;
	CHECK_ERRNO(EFAULT, pread(dev, bad, 4, 0));
	CHECK_EQ(2, pread(dev, &v, 4, 4094));
	/* read/write at the file position. */
	CHECK_EQ(4, lseek(dev, 4, SEEK_SET));
	v = 0x11223344;
	CHECK_EQ(4, write(dev, &v, 4));
	CHECK_EQ(8, lseek(dev, 0, SEEK_CUR));
	CHECK_EQ(4, lseek(dev, 4, SEEK_SET));
	CHECK_EQ(4, read(dev, &v, 4));
	CHECK_EQ((uint32_t)~0x11223344u, v);

	struct vfio_irq_info irq = { .argsz = sizeof(irq), .index = VFIO_PCI_MSI_IRQ_INDEX };
	CHECK_OK(ioctl(dev, VFIO_DEVICE_GET_IRQ_INFO, &irq));
	CHECK_EQ(1, irq.count);
	CHECK_EQ(VFIO_IRQ_INFO_EVENTFD | VFIO_IRQ_INFO_NORESIZE, irq.flags);
	irq.index = VFIO_PCI_NUM_IRQS;
	CHECK_ERRNO(EINVAL, ioctl(dev, VFIO_DEVICE_GET_IRQ_INFO, &irq));

	int efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	struct {
		struct vfio_irq_set s;
		int32_t fd;
	} set = {
		.s = { .argsz = sizeof(set),
		       .flags = VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_TRIGGER,
		       .index = VFIO_PCI_MSI_IRQ_INDEX, .start = 0, .count = 1 },
		.fd = efd,
	};
	/* Not an eventfd; not open; data shorter than count says. */
	set.fd = fd;
	CHECK_ERRNO(EINVAL, ioctl(dev, VFIO_DEVICE_SET_IRQS, &set));
	set.fd = 1000;
	CHECK_ERRNO(EBADF, ioctl(dev, VFIO_DEVICE_SET_IRQS, &set));
	set.fd = efd;
	set.s.argsz = sizeof(set.s) + 3;
	CHECK_ERRNO(EINVAL, ioctl(dev, VFIO_DEVICE_SET_IRQS, &set));
	set.s.argsz = sizeof(set);
	set.s.index = VFIO_PCI_INTX_IRQ_INDEX;
	CHECK_ERRNO(EINVAL, ioctl(dev, VFIO_DEVICE_SET_IRQS, &set));
	set.s.index = VFIO_PCI_MSI_IRQ_INDEX;
	set.s.flags = VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_MASK;
	CHECK_ERRNO(ENOTTY, ioctl(dev, VFIO_DEVICE_SET_IRQS, &set));
	set.s.flags = VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_TRIGGER;
	CHECK_OK(ioctl(dev, VFIO_DEVICE_SET_IRQS, &set));
	/* The program may close its eventfd; ours stays valid. Loopback signals. */
	struct vfio_irq_set fire = {
		.argsz = sizeof(fire),
		.flags = VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_ACTION_TRIGGER,
		.index = VFIO_PCI_MSI_IRQ_INDEX, .start = 0, .count = 1,
	};
	CHECK_OK(ioctl(dev, VFIO_DEVICE_SET_IRQS, &fire));
	uint64_t count = 0;
	CHECK_EQ(8, read(efd, &count, 8));
	CHECK_EQ(1, count);
	fire.count = 0;
	CHECK_OK(ioctl(dev, VFIO_DEVICE_SET_IRQS, &fire));
	fire.count = 1;
	CHECK_ERRNO(EINVAL, ioctl(dev, VFIO_DEVICE_SET_IRQS, &fire));

	CHECK_OK(ioctl(dev, VFIO_DEVICE_RESET));
	CHECK_EQ(4, pread(dev, &v, 4, 4));
	CHECK_EQ(0xffffffff, v);
	struct vfio_device_feature feat = { .argsz = sizeof(feat), .flags = VFIO_DEVICE_FEATURE_PROBE | 1 };
	CHECK_ERRNO(ENOTTY, ioctl(dev, VFIO_DEVICE_FEATURE, &feat));
	feat.flags = VFIO_DEVICE_FEATURE_GET | VFIO_DEVICE_FEATURE_SET | 1;
	CHECK_ERRNO(EINVAL, ioctl(dev, VFIO_DEVICE_FEATURE, &feat));
	/* Configuration space: partly outside is EFAULT (vfio_config_do_rw). */
	CHECK_ERRNO(EFAULT, pread(dev, &v, 4, CONFIG_OFFSET + 254));
	/* Memory decoding off: BAR accesses are EIO, config space still works. */
	uint16_t cmd = 0;
	CHECK_EQ(2, pwrite(dev, &cmd, 2, CONFIG_OFFSET + 4));
	CHECK_ERRNO(EIO, pread(dev, &v, 4, 0));
	CHECK_EQ(4, pread(dev, &v, 4, CONFIG_OFFSET));
	close(efd);
	close(dev);
	close(fd);
}

static void dup_shares_the_binding(void)
{
	int fd = iommufd_open();
	int dev = open_dev(0);

	REQUIRE(dev >= 0);
	REQUIRE_OK(bind(dev, fd, NULL));
	int copy = dup(dev);
	close(dev);
	/* Still bound through the dup: a new open cannot bind. */
	int other = open_dev(0);
	CHECK_ERRNO(EINVAL, bind(other, fd, NULL));
	struct vfio_device_info info = { .argsz = sizeof(info) };
	CHECK_OK(ioctl(copy, VFIO_DEVICE_GET_INFO, &info));
	close(copy);
	CHECK_OK(bind(other, fd, NULL));
	close(other);
	close(fd);
}

int main(void)
{
	before_bind();
	bind_rules();
	attach_rules();
	info_regions_irqs();
	dup_shares_the_binding();
	return finish();
}
