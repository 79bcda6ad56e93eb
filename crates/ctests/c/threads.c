/* SPDX-License-Identifier: MIT */
/*
 * Threads mapping and unmapping concurrently on one IOAS with a mock domain:
 * 4 threads x 1000 rounds of IOAS_MAP (kernel-chosen IOVA), MD_CHECK_MAP and
 * IOAS_UNMAP, each thread with its own buffer, while a fifth thread keeps
 * asking for the IOVA ranges. Afterwards nothing is mapped and nothing is
 * pinned.
 */
#include "ctest.h"

#include <pthread.h>

#define THREADS 4
#define ROUNDS 1000

static int fd;
static uint32_t ioas, hwpt;
static size_t ps;
static volatile int done;

struct worker {
	pthread_t thread;
	int index;
	char *buf;
	size_t len;
};

static void *work(void *arg)
{
	struct worker *w = arg;

	for (int round = 0; round < ROUNDS; round++) {
		/* Vary the length so areas of different sizes interleave. */
		size_t len = ps * (1 + (size_t)((round + w->index) % 4));
		uint64_t iova, unmapped;

		if (!CHECK_OK(ioas_map(fd, ioas, w->buf, len, &iova, false))) {
			fprintf(stderr, "thread %d round %d: map failed\n",
				w->index, round);
			return NULL;
		}
		if (round % 16 == 0)
			CHECK_OK(check_map(fd, hwpt, iova, w->buf, len));
		if (!CHECK_OK(ioas_unmap(fd, ioas, iova, len, &unmapped))) {
			fprintf(stderr, "thread %d round %d: unmap failed\n",
				w->index, round);
			return NULL;
		}
		CHECK_EQ(len, unmapped);
	}
	return NULL;
}

static void *observe(void *arg)
{
	struct iommu_iova_range r[4];
	uint32_t num;

	(void)arg;
	while (!done) {
		if (!CHECK_OK(iova_ranges(fd, ioas, r, 4, &num, NULL)))
			break;
		CHECK_EQ(1, num);
	}
	return NULL;
}

int main(void)
{
	struct worker workers[THREADS];
	pthread_t observer;
	uint32_t stdev;
	uint64_t unmapped;

	ps = page_size();
	fd = iommufd_open();
	REQUIRE_OK(ioas_alloc(fd, &ioas));
	REQUIRE_OK(mock_domain(fd, ioas, &stdev, &hwpt, NULL));

	for (int i = 0; i < THREADS; i++) {
		workers[i].index = i;
		workers[i].len = 4 * ps;
		workers[i].buf = alloc_buffer(workers[i].len);
		memset(workers[i].buf, i + 1, workers[i].len);
	}
	REQUIRE(pthread_create(&observer, NULL, observe, NULL) == 0);
	for (int i = 0; i < THREADS; i++)
		REQUIRE(pthread_create(&workers[i].thread, NULL, work,
				       &workers[i]) == 0);
	for (int i = 0; i < THREADS; i++)
		pthread_join(workers[i].thread, NULL);
	done = 1;
	pthread_join(observer, NULL);

	/* Everything is unmapped: unmap-all finds nothing... */
	if (CHECK_OK(ioas_unmap(fd, ioas, 0, UINT64_MAX, &unmapped)))
		CHECK_EQ(0, unmapped);
	/* ...and no page of any buffer is pinned. */
	for (int i = 0; i < THREADS; i++)
		CHECK_OK(check_refs(fd, workers[i].buf, workers[i].len, 0));

	CHECK_OK(destroy(fd, stdev));
	CHECK_OK(destroy(fd, ioas));
	CHECK_OK(close(fd));
	printf("%d threads x %d map/unmap rounds\n", THREADS, ROUNDS);
	return finish();
}
