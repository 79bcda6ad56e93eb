/* SPDX-License-Identifier: MIT */
/*
 * PASID attach, replace, detach and check through IOMMU_TEST_CMD, as the
 * kernel selftest's iommufd_device_pasid fixture drives them: the PASID
 * compatibility rules, EBUSY for a second attach, the written-back pt_id,
 * the mock's failure at PASID 1024 keeping the old HWPT, and GET_HW_INFO's
 * PASID width.
 */
#include "ctest.h"

static int pasid_op(int fd, uint32_t op, uint32_t stdev, uint32_t pasid,
		    uint32_t *pt_id)
{
	struct iommu_test_cmd cmd = {
		.size = sizeof(cmd),
		.op = op,
		.id = stdev,
		.pasid_attach = { .pasid = pasid, .pt_id = pt_id ? *pt_id : 0 },
	};
	int rc = ioctl(fd, IOMMU_TEST_CMD, &cmd);

	if (!rc && pt_id)
		*pt_id = cmd.pasid_attach.pt_id;
	return rc;
}

static int attach(int fd, uint32_t stdev, uint32_t pasid, uint32_t pt)
{
	return pasid_op(fd, IOMMU_TEST_OP_PASID_ATTACH, stdev, pasid, &pt);
}

static int replace(int fd, uint32_t stdev, uint32_t pasid, uint32_t pt)
{
	return pasid_op(fd, IOMMU_TEST_OP_PASID_REPLACE, stdev, pasid, &pt);
}

static int detach(int fd, uint32_t stdev, uint32_t pasid)
{
	return pasid_op(fd, IOMMU_TEST_OP_PASID_DETACH, stdev, pasid, NULL);
}

static int check(int fd, uint32_t stdev, uint32_t pasid, uint32_t hwpt)
{
	struct iommu_test_cmd cmd = {
		.size = sizeof(cmd),
		.op = IOMMU_TEST_OP_PASID_CHECK_HWPT,
		.id = stdev,
		.pasid_check = { .pasid = pasid, .hwpt_id = hwpt },
	};

	return ioctl(fd, IOMMU_TEST_CMD, &cmd);
}

static int mock_device(int fd, uint32_t pt_id, uint32_t flags, uint32_t *stdev,
		       uint32_t *idev)
{
	struct iommu_test_cmd cmd = {
		.size = sizeof(cmd),
		.op = IOMMU_TEST_OP_MOCK_DOMAIN_FLAGS,
		.id = pt_id,
		.mock_domain_flags = { .dev_flags = flags },
	};
	int rc = ioctl(fd, IOMMU_TEST_CMD, &cmd);

	*stdev = cmd.mock_domain_flags.out_stdev_id;
	*idev = cmd.mock_domain_flags.out_idev_id;
	return rc;
}

static int replace_rid(int fd, uint32_t stdev, uint32_t pt_id)
{
	struct iommu_test_cmd cmd = {
		.size = sizeof(cmd),
		.op = IOMMU_TEST_OP_MOCK_DOMAIN_REPLACE,
		.id = stdev,
		.mock_domain_replace = { .pt_id = pt_id },
	};

	return ioctl(fd, IOMMU_TEST_CMD, &cmd);
}

static int hwpt_alloc(int fd, uint32_t dev, uint32_t pt, uint32_t flags,
		      uint32_t *out)
{
	struct iommu_hwpt_alloc cmd = {
		.size = sizeof(cmd),
		.flags = flags,
		.dev_id = dev,
		.pt_id = pt,
	};
	int rc = ioctl(fd, IOMMU_HWPT_ALLOC, &cmd);

	*out = cmd.out_hwpt_id;
	return rc;
}

static uint8_t max_pasid_log2(int fd, uint32_t dev)
{
	struct iommu_hw_info cmd = { .size = sizeof(cmd), .dev_id = dev };

	if (ioctl(fd, IOMMU_GET_HW_INFO, &cmd))
		return 0xff;
	return cmd.out_max_pasid_log2;
}

int main(void)
{
	int fd = iommufd_open();
	uint32_t ioas, stdev, idev, plain_stdev, plain_idev, parent, s2, s2b, pt;

	REQUIRE_OK(ioas_alloc(fd, &ioas));
	REQUIRE_OK(mock_device(fd, ioas, MOCK_FLAGS_DEVICE_PASID, &stdev, &idev));
	REQUIRE_OK(mock_device(fd, ioas, 0, &plain_stdev, &plain_idev));
	CHECK_EQ(MOCK_PASID_WIDTH, max_pasid_log2(fd, idev));
	CHECK_EQ(0, max_pasid_log2(fd, plain_idev));

	REQUIRE_OK(hwpt_alloc(fd, idev, ioas, IOMMU_HWPT_ALLOC_NEST_PARENT, &parent));
	REQUIRE_OK(hwpt_alloc(fd, idev, ioas, IOMMU_HWPT_ALLOC_PASID, &s2));
	REQUIRE_OK(hwpt_alloc(fd, idev, ioas, IOMMU_HWPT_ALLOC_PASID, &s2b));

	/* Nothing attached: detach is fine, check says so. */
	CHECK_OK(detach(fd, stdev, 100));
	CHECK_OK(check(fd, stdev, 100, 0));

	/* The device itself is on an automatic (not PASID-compatible) HWPT. */
	CHECK_ERRNO(EINVAL, attach(fd, stdev, 100, s2));
	CHECK_OK(replace_rid(fd, stdev, s2));

	/* Not compatible, or an IOAS: EINVAL; then attach, and only once. */
	CHECK_ERRNO(EINVAL, attach(fd, stdev, 100, parent));
	CHECK_ERRNO(EINVAL, attach(fd, stdev, 100, ioas));
	pt = s2;
	CHECK_OK(pasid_op(fd, IOMMU_TEST_OP_PASID_ATTACH, stdev, 100, &pt));
	CHECK_EQ(s2, pt);
	CHECK_OK(check(fd, stdev, 100, s2));
	CHECK_ERRNO(EBUSY, attach(fd, stdev, 100, s2));
	CHECK_ERRNO(EINVAL, check(fd, stdev, 100, 0));
	CHECK_ERRNO(EINVAL, check(fd, stdev, 100, ioas));
	CHECK_ERRNO(ENOENT, check(fd, stdev, 100, 9999));
	/* While a PASID is attached the device cannot leave compatible HWPTs. */
	CHECK_ERRNO(EINVAL, replace_rid(fd, stdev, parent));
	/* A HWPT in use cannot be destroyed. */
	CHECK_ERRNO(EBUSY, destroy(fd, s2));
	CHECK_OK(detach(fd, stdev, 100));
	CHECK_OK(check(fd, stdev, 100, 0));

	/* Replace needs an attached PASID; a failure keeps the old HWPT. */
	CHECK_ERRNO(EINVAL, replace(fd, stdev, 200, s2));
	CHECK_OK(attach(fd, stdev, 1024, s2));
	CHECK_ERRNO(ENOMEM, replace(fd, stdev, 1024, s2b));
	CHECK_OK(check(fd, stdev, 1024, s2));
	CHECK_OK(replace(fd, stdev, 1024, s2)); /* same HWPT: nothing to do */
	CHECK_OK(detach(fd, stdev, 1024));
	CHECK_OK(attach(fd, stdev, 200, s2));
	CHECK_OK(replace(fd, stdev, 200, s2b));
	CHECK_OK(check(fd, stdev, 200, s2b));
	CHECK_OK(detach(fd, stdev, 200));

	/* Outside the device's PASID width; a device without PASIDs. */
	CHECK_ERRNO(EINVAL, attach(fd, stdev, 1u << MOCK_PASID_WIDTH, s2));
	CHECK_OK(replace_rid(fd, plain_stdev, s2));
	CHECK_ERRNO(EINVAL, attach(fd, plain_stdev, 1, s2));

	/* Not a selftest device. */
	CHECK_ERRNO(ENOENT, attach(fd, ioas, 1, s2));

	/* Closing with a PASID attached releases everything. */
	CHECK_OK(attach(fd, stdev, 7, s2));
	close(fd);
	return finish();
}
