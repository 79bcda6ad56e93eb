/* SPDX-License-Identifier: MIT */
/*
 * IOMMU_OPTION: IOMMU_OPTION_HUGE_PAGES per IOAS and the context-wide
 * IOMMU_OPTION_RLIMIT_MODE, on their success and error paths. Setting the
 * RLIMIT mode needs CAP_SYS_RESOURCE; without it the answer is EPERM.
 */
#include "ctest.h"

/* CAP_SYS_RESOURCE (24) in the effective set, from /proc/self/status. */
static bool cap_sys_resource(void)
{
	char line[256];
	unsigned long long eff = 0;
	FILE *f = fopen("/proc/self/status", "r");

	if (!f)
		return false;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "CapEff: %llx", &eff) == 1)
			break;
	fclose(f);
	return eff & (1ULL << 24);
}

int main(void)
{
	size_t ps = page_size();
	uint32_t ioas;
	uint64_t val;
	int fd = iommufd_open();

	/* RLIMIT_MODE on an empty context. */
	val = 99;
	if (CHECK_OK(option(fd, IOMMU_OPTION_RLIMIT_MODE, IOMMU_OPTION_OP_GET,
			    0, &val)))
		CHECK_EQ(0, val);
	if (cap_sys_resource()) {
		val = 1;
		CHECK_OK(option(fd, IOMMU_OPTION_RLIMIT_MODE,
				IOMMU_OPTION_OP_SET, 0, &val));
		val = 2;
		CHECK_ERRNO(EINVAL, option(fd, IOMMU_OPTION_RLIMIT_MODE,
					   IOMMU_OPTION_OP_SET, 0, &val));
		val = 0;
		if (CHECK_OK(option(fd, IOMMU_OPTION_RLIMIT_MODE,
				    IOMMU_OPTION_OP_GET, 0, &val)))
			CHECK_EQ(1, val);
	} else {
		printf("no CAP_SYS_RESOURCE: RLIMIT_MODE SET gives EPERM\n");
		val = 1;
		CHECK_ERRNO(EPERM, option(fd, IOMMU_OPTION_RLIMIT_MODE,
					  IOMMU_OPTION_OP_SET, 0, &val));
	}

	REQUIRE_OK(ioas_alloc(fd, &ioas));
	/* With an object in the context the mode is fixed. */
	if (cap_sys_resource()) {
		val = 0;
		CHECK_ERRNO(EBUSY, option(fd, IOMMU_OPTION_RLIMIT_MODE,
					  IOMMU_OPTION_OP_SET, 0, &val));
	}

	/* HUGE_PAGES: on by default, can be turned off and on. */
	val = 99;
	if (CHECK_OK(option(fd, IOMMU_OPTION_HUGE_PAGES, IOMMU_OPTION_OP_GET,
			    ioas, &val)))
		CHECK_EQ(1, val);
	val = 0;
	CHECK_OK(option(fd, IOMMU_OPTION_HUGE_PAGES, IOMMU_OPTION_OP_SET, ioas,
			&val));
	val = 99;
	if (CHECK_OK(option(fd, IOMMU_OPTION_HUGE_PAGES, IOMMU_OPTION_OP_GET,
			    ioas, &val)))
		CHECK_EQ(0, val);
	/* Mapping works with huge pages off. */
	{
		char *buf = alloc_buffer(4 * ps);
		uint32_t stdev, hwpt;
		uint64_t iova;

		if (CHECK_OK(mock_domain(fd, ioas, &stdev, &hwpt, NULL))) {
			if (CHECK_OK(ioas_map(fd, ioas, buf, 4 * ps, &iova,
					      false))) {
				CHECK_OK(check_map(fd, hwpt, iova, buf,
						   4 * ps));
				CHECK_OK(ioas_unmap(fd, ioas, iova, 4 * ps,
						    NULL));
			}
			CHECK_OK(destroy(fd, stdev));
		}
	}
	val = 1;
	CHECK_OK(option(fd, IOMMU_OPTION_HUGE_PAGES, IOMMU_OPTION_OP_SET, ioas,
			&val));
	val = 0;
	if (CHECK_OK(option(fd, IOMMU_OPTION_HUGE_PAGES, IOMMU_OPTION_OP_GET,
			    ioas, &val)))
		CHECK_EQ(1, val);

	/* Errors. */
	val = 2;
	CHECK_ERRNO(EINVAL, option(fd, IOMMU_OPTION_HUGE_PAGES,
				   IOMMU_OPTION_OP_SET, ioas, &val));
	CHECK_ERRNO(ENOENT, option(fd, IOMMU_OPTION_HUGE_PAGES,
				   IOMMU_OPTION_OP_GET, ioas + 100, &val));
	CHECK_ERRNO(EOPNOTSUPP, option(fd, IOMMU_OPTION_HUGE_PAGES, 5, ioas,
				       &val));
	CHECK_ERRNO(EOPNOTSUPP, option(fd, IOMMU_OPTION_RLIMIT_MODE,
				       IOMMU_OPTION_OP_GET, ioas, &val));
	CHECK_ERRNO(EOPNOTSUPP, option(fd, 1000, IOMMU_OPTION_OP_GET, 0, &val));

	CHECK_OK(destroy(fd, ioas));
	CHECK_OK(close(fd));
	return finish();
}
