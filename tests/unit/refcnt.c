/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The saturating reference count: normal use, saturation, underflow, get-unless-zero. */
#include <pthread.h>

#include "harness.h"
#include "util/refcnt.h"

TEST(inc_dec_frees_on_last)
{
	struct dp_refcnt r;

	dp_refcnt_init(&r, 1);
	CHECK_EQ(dp_refcnt_inc(&r), DP_REFCNT_OK);
	CHECK_EQ(dp_refcnt_read(&r), 2);
	CHECK_EQ(dp_refcnt_dec(&r), DP_REFCNT_OK);
	CHECK_EQ(dp_refcnt_dec(&r), DP_REFCNT_FREE);
	CHECK_EQ(dp_refcnt_read(&r), 0);
}

TEST(saturates_instead_of_wrapping)
{
	struct dp_refcnt r;

	dp_refcnt_init(&r, INT_MAX - 1);
	CHECK_EQ(dp_refcnt_inc(&r), DP_REFCNT_OK);
	CHECK_EQ(dp_refcnt_inc(&r), DP_REFCNT_SATURATE);
	CHECK_EQ(dp_refcnt_read(&r), DP_REFCNT_SATURATED);
	/* Saturated: never frees again, and stays quiet. */
	for (int i = 0; i < 1000; i++)
		CHECK_EQ(dp_refcnt_dec(&r), DP_REFCNT_OK);
	CHECK_EQ(dp_refcnt_inc(&r), DP_REFCNT_OK);
	CHECK(dp_refcnt_read(&r) < 0);
	CHECK(dp_refcnt_get_unless_zero(&r));
}

TEST(underflow_is_trapped)
{
	struct dp_refcnt r;

	dp_refcnt_init(&r, 1);
	CHECK_EQ(dp_refcnt_dec(&r), DP_REFCNT_FREE);
	CHECK_EQ(dp_refcnt_dec(&r), DP_REFCNT_UNDERFLOW);
	CHECK_EQ(dp_refcnt_read(&r), DP_REFCNT_SATURATED);
	CHECK_EQ(dp_refcnt_dec(&r), DP_REFCNT_OK); /* already parked */
}

TEST(inc_from_zero_is_use_after_free)
{
	struct dp_refcnt r;

	dp_refcnt_init(&r, 0);
	CHECK_EQ(dp_refcnt_inc(&r), DP_REFCNT_USE_AFTER_FREE);
	CHECK_EQ(dp_refcnt_read(&r), DP_REFCNT_SATURATED);
}

TEST(get_unless_zero_refuses_dead_objects)
{
	struct dp_refcnt r;

	dp_refcnt_init(&r, 0);
	CHECK(!dp_refcnt_get_unless_zero(&r));
	CHECK_EQ(dp_refcnt_read(&r), 0);
	dp_refcnt_init(&r, 3);
	CHECK(dp_refcnt_get_unless_zero(&r));
	CHECK_EQ(dp_refcnt_read(&r), 4);
}

#define RACE_THREADS 4
#define RACE_ITERS 200000

static void *race(void *arg)
{
	struct dp_refcnt *r = arg;

	for (int i = 0; i < RACE_ITERS; i++) {
		if (i & 1)
			dp_refcnt_inc(r);
		else
			CHECK(dp_refcnt_get_unless_zero(r));
		CHECK_EQ(dp_refcnt_dec(r), DP_REFCNT_OK);
	}
	return NULL;
}

TEST(concurrent_pairs_keep_the_count_exact)
{
	pthread_t th[RACE_THREADS];
	struct dp_refcnt r;

	dp_refcnt_init(&r, 1);
	for (int i = 0; i < RACE_THREADS; i++)
		CHECK_EQ(pthread_create(&th[i], NULL, race, &r), 0);
	for (int i = 0; i < RACE_THREADS; i++)
		pthread_join(th[i], NULL);
	CHECK_EQ(dp_refcnt_read(&r), 1);
	CHECK_EQ(dp_refcnt_dec(&r), DP_REFCNT_FREE);
}
