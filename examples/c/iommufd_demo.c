/* SPDX-License-Identifier: MIT */
/*
 * iommufd_demo: a small iommufd client, the way a VMM or a user-space driver
 * talks to /dev/iommu.
 *
 * It opens /dev/iommu, allocates an IO address space (IOAS), attaches a mock
 * device to it (the kernel selftest's IOMMU_TEST_CMD MOCK_DOMAIN, which gives the
 * IOAS an IOMMU domain), asks which IO virtual addresses are usable, maps a
 * buffer, checks that the device's IOMMU translates it to the buffer's pages,
 * unmaps it, destroys everything and closes.
 *
 * Build and run it under softiommu (no root, no IOMMU, no kernel module):
 *
 *     examples/c/run-demo.sh
 *
 * which does:
 *
 *     cargo build
 *     ./target/debug/softiommu headers target/include
 *     cc -I target/include examples/c/iommufd_demo.c -o target/iommufd_demo
 *     ./target/debug/softiommu run --trace -- target/iommufd_demo
 *
 * On a kernel built with CONFIG_IOMMUFD_TEST the same program runs against the
 * real /dev/iommu.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <linux/iommufd.h>
#include "iommufd_test.h"

#define BUFFER_SIZE (64 * 1024)

static int step;

/* Prints the step that is about to run. */
static void begin(const char *what)
{
	printf("%d. %s\n", ++step, what);
}

/* Stops the demo when a call failed. */
static void check(int rc, const char *call)
{
	if (rc == 0)
		return;
	fprintf(stderr, "   %s failed: %s (errno %d)\n", call, strerror(errno),
		errno);
	exit(1);
}

int main(void)
{
	struct iommu_iova_range ranges[8];
	uint32_t ioas_id, stdev_id, hwpt_id;
	uint64_t iova;
	void *buffer;
	int fd;

	/* Line by line, so that a --trace on stderr interleaves in order. */
	setvbuf(stdout, NULL, _IOLBF, 0);

	begin("Open /dev/iommu");
	fd = open("/dev/iommu", O_RDWR | O_CLOEXEC);
	if (fd < 0) {
		fprintf(stderr, "   open(/dev/iommu) failed: %s\n",
			strerror(errno));
		if (errno == ENOENT)
			fprintf(stderr, "   Run it under softiommu: "
				"softiommu run -- %s\n", "target/iommufd_demo");
		return 1;
	}
	printf("   got file descriptor %d\n", fd);

	begin("Allocate an IO address space (IOMMU_IOAS_ALLOC)");
	{
		struct iommu_ioas_alloc cmd = { .size = sizeof(cmd) };

		check(ioctl(fd, IOMMU_IOAS_ALLOC, &cmd), "IOMMU_IOAS_ALLOC");
		ioas_id = cmd.out_ioas_id;
	}
	printf("   the IOAS has id %u\n", ioas_id);

	begin("Attach a mock device to it (IOMMU_TEST_CMD, MOCK_DOMAIN)");
	{
		struct iommu_test_cmd cmd = {
			.size = sizeof(cmd),
			.op = IOMMU_TEST_OP_MOCK_DOMAIN,
			.id = ioas_id,
		};

		check(ioctl(fd, IOMMU_TEST_CMD, &cmd), "MOCK_DOMAIN");
		stdev_id = cmd.mock_domain.out_stdev_id;
		hwpt_id = cmd.mock_domain.out_hwpt_id;
		printf("   device id %u, bound as iommufd device %u, attached "
		       "to hardware page table (IOMMU domain) %u\n",
		       stdev_id, cmd.mock_domain.out_idev_id, hwpt_id);
	}

	begin("Ask which IO virtual addresses are usable "
	      "(IOMMU_IOAS_IOVA_RANGES)");
	{
		struct iommu_ioas_iova_ranges cmd = {
			.size = sizeof(cmd),
			.ioas_id = ioas_id,
			.num_iovas = sizeof(ranges) / sizeof(ranges[0]),
			.allowed_iovas = (uintptr_t)ranges,
		};

		check(ioctl(fd, IOMMU_IOAS_IOVA_RANGES, &cmd),
		      "IOMMU_IOAS_IOVA_RANGES");
		for (uint32_t i = 0; i < cmd.num_iovas; i++)
			printf("   usable: 0x%llx - 0x%llx\n",
			       (unsigned long long)ranges[i].start,
			       (unsigned long long)ranges[i].last);
		printf("   IOVAs must be aligned to %llu bytes\n",
		       (unsigned long long)cmd.out_iova_alignment);
	}

	begin("Map a 64 KiB buffer for DMA (IOMMU_IOAS_MAP)");
	buffer = mmap(NULL, BUFFER_SIZE, PROT_READ | PROT_WRITE,
		      MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (buffer == MAP_FAILED) {
		perror("   mmap");
		return 1;
	}
	memset(buffer, 0xab, BUFFER_SIZE);
	{
		struct iommu_ioas_map cmd = {
			.size = sizeof(cmd),
			.flags = IOMMU_IOAS_MAP_READABLE |
				 IOMMU_IOAS_MAP_WRITEABLE,
			.ioas_id = ioas_id,
			.user_va = (uintptr_t)buffer,
			.length = BUFFER_SIZE,
		};

		check(ioctl(fd, IOMMU_IOAS_MAP, &cmd), "IOMMU_IOAS_MAP");
		iova = cmd.iova;
	}
	printf("   buffer %p is now at IO virtual address 0x%llx; its pages "
	       "are pinned\n", buffer, (unsigned long long)iova);

	begin("Check the device's IOMMU translates it (IOMMU_TEST_CMD, "
	      "MD_CHECK_MAP)");
	{
		struct iommu_test_cmd cmd = {
			.size = sizeof(cmd),
			.op = IOMMU_TEST_OP_MD_CHECK_MAP,
			.id = hwpt_id,
			.check_map = { .iova = iova,
				       .length = BUFFER_SIZE,
				       .uptr = (uintptr_t)buffer },
		};

		check(ioctl(fd, IOMMU_TEST_CMD, &cmd), "MD_CHECK_MAP");
	}
	printf("   every IO page of 0x%llx - 0x%llx translates to the "
	       "buffer's memory\n", (unsigned long long)iova,
	       (unsigned long long)(iova + BUFFER_SIZE - 1));

	begin("Unmap it (IOMMU_IOAS_UNMAP)");
	{
		struct iommu_ioas_unmap cmd = {
			.size = sizeof(cmd),
			.ioas_id = ioas_id,
			.iova = iova,
			.length = BUFFER_SIZE,
		};

		check(ioctl(fd, IOMMU_IOAS_UNMAP, &cmd), "IOMMU_IOAS_UNMAP");
		printf("   unmapped %llu bytes; the pages are unpinned\n",
		       (unsigned long long)cmd.length);
	}

	begin("Destroy the device, then the IOAS (IOMMU_DESTROY)");
	{
		struct iommu_destroy cmd = { .size = sizeof(cmd) };

		cmd.id = stdev_id;
		check(ioctl(fd, IOMMU_DESTROY, &cmd), "IOMMU_DESTROY device");
		cmd.id = ioas_id;
		check(ioctl(fd, IOMMU_DESTROY, &cmd), "IOMMU_DESTROY IOAS");
	}
	printf("   device %u and IOAS %u are gone\n", stdev_id, ioas_id);

	begin("Close /dev/iommu");
	check(close(fd), "close");
	munmap(buffer, BUFFER_SIZE);

	printf("Done: the program drove iommufd through its whole life "
	       "cycle.\n");
	return 0;
}
