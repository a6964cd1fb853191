/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Enumeration in the libdaxctl style: daxpool_region_get_first()/_get_next()
 * and daxpool_map_get_first()/_get_next(), each object with a reference of
 * its own, while other threads open, map and free.
 */
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <sys/wait.h>
#include <syslog.h>
#include <time.h>

#include "daxpool.h"
#include "harness.h"

#define REGION_SIZE (16ull << 20)
#define N_REGIONS 3

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static struct daxpool_ctx *new_ctx(void)
{
	struct daxpool_ctx *ctx;

	CHECK_OK(daxpool_ctx_new(&ctx));
	CHECK_OK(daxpool_ctx_set_log_priority(ctx, LOG_CRIT));
	return ctx;
}

static int count_regions(struct daxpool_ctx *ctx)
{
	struct daxpool_region *region;
	int n = 0;

	daxpool_region_foreach(ctx, region) {
		CHECK(daxpool_region_get_size(region) == REGION_SIZE);
		n++;
	}
	return n;
}

static int count_maps(struct daxpool_region *region)
{
	struct daxpool_map *map;
	int n = 0;

	daxpool_map_foreach(region, map) {
		/* Whatever others do meanwhile, what a walk gives is a whole, held map. */
		CHECK(daxpool_map_get_region(map) == region && daxpool_map_get_address(map));
		n++;
	}
	return n;
}

TEST(every_region_once_and_nothing_left_held)
{
	struct daxpool_ctx *ctx = new_ctx();
	struct daxpool_region *r[N_REGIONS], *region;
	bool seen[N_REGIONS] = { false };
	int n = 0;

	CHECK(daxpool_region_get_first(ctx) == NULL);
	for (int i = 0; i < N_REGIONS; i++)
		CHECK_OK(daxpool_region_open(ctx, fixture_plain_file(REGION_SIZE), 0, &r[i]));
	daxpool_region_foreach(ctx, region) {
		for (int i = 0; i < N_REGIONS; i++) {
			if (region != r[i])
				continue;
			CHECK(!seen[i]);
			seen[i] = true;
			/* The loop's own reference keeps it while the caller drops its handle. */
			r[i] = daxpool_region_unref(r[i]);
			CHECK(daxpool_region_get_size(region) == REGION_SIZE);
		}
		n++;
	}
	CHECK_EQ(n, N_REGIONS);
	/* Every reference the loop took is gone with the handles: nothing is left. */
	CHECK(daxpool_region_get_first(ctx) == NULL);
	daxpool_ctx_unref(ctx);
}

TEST(a_loop_left_early_holds_one_reference)
{
	struct daxpool_ctx *ctx = new_ctx();
	struct daxpool_region *a, *b, *region;

	CHECK_OK(daxpool_region_open(ctx, fixture_plain_file(REGION_SIZE), 0, &a));
	CHECK_OK(daxpool_region_open(ctx, fixture_plain_file(REGION_SIZE), 0, &b));
	daxpool_region_foreach(ctx, region)
		break;
	CHECK(region == a);
	a = daxpool_region_unref(a);
	/* The loop's reference still holds it. */
	CHECK_EQ(count_regions(ctx), 2);
	daxpool_region_unref(region);
	CHECK_EQ(count_regions(ctx), 1);
	daxpool_region_unref(b);
	CHECK(daxpool_region_get_first(ctx) == NULL);
	CHECK(daxpool_region_get_first(NULL) == NULL && daxpool_region_get_next(NULL) == NULL);
	daxpool_ctx_unref(ctx);
}

TEST(every_map_revoked_ones_too)
{
	struct daxpool_ctx *ctx = new_ctx();
	struct daxpool_region *region;
	struct daxpool_map *m[3], *map;
	int n = 0, valid = 0;
	uint64_t align;

	CHECK_OK(daxpool_region_open(ctx, fixture_backing(REGION_SIZE), 0, &region));
	align = daxpool_region_get_alignment(region);
	CHECK(daxpool_map_get_first(region) == NULL);
	for (int i = 0; i < 3; i++)
		CHECK_OK(daxpool_map_new(region, (uint64_t)i * align, align, 0, &m[i]));
	CHECK_EQ(daxpool_region_zap_range(region, align, align), 1);
	daxpool_map_foreach(region, map) {
		CHECK(daxpool_map_get_region(map) == region);
		valid += daxpool_map_is_valid(map);
		n++;
	}
	CHECK_EQ(n, 3);
	CHECK_EQ(valid, 2);
	for (int i = 0; i < 3; i++)
		daxpool_map_unref(m[i]);
	CHECK(daxpool_map_get_first(region) == NULL);
	CHECK_EQ(daxpool_region_get_map_count(region), 0);
	CHECK(daxpool_map_get_first(NULL) == NULL && daxpool_map_get_next(NULL) == NULL);
	daxpool_region_unref(region);
	daxpool_ctx_unref(ctx);
}

/* Other threads open and free regions and maps all along: each walk ends, nothing leaks. */
struct churn {
	struct daxpool_ctx *ctx;
	struct daxpool_region *region;
	char paths[2][4096];
	atomic_bool stop;
	atomic_int rounds;
};

static void *churn_regions(void *arg)
{
	struct churn *c = arg;

	while (!atomic_load(&c->stop)) {
		struct daxpool_region *r[2] = { NULL, NULL };

		for (int i = 0; i < 2; i++)
			CHECK_OK(daxpool_region_open(c->ctx, c->paths[i], 0, &r[i]));
		daxpool_region_unref(r[1]);
		daxpool_region_unref(r[0]);
		atomic_fetch_add(&c->rounds, 1);
	}
	return NULL;
}

static void *churn_maps(void *arg)
{
	struct churn *c = arg;
	uint64_t align = daxpool_region_get_alignment(c->region);

	while (!atomic_load(&c->stop)) {
		struct daxpool_map *m[2] = { NULL, NULL };

		for (int i = 0; i < 2; i++)
			CHECK_OK(daxpool_map_new(c->region, (uint64_t)i * align, align, 0, &m[i]));
		daxpool_map_unref(m[0]);
		daxpool_map_unref(m[1]);
		atomic_fetch_add(&c->rounds, 1);
	}
	return NULL;
}

TEST(walks_while_other_threads_open_map_and_free)
{
	struct churn c = { .ctx = new_ctx() };
	pthread_t t[2];
	int walks = 0, max_regions = 0, max_maps = 0;

	for (int i = 0; i < 2; i++)
		snprintf(c.paths[i], sizeof(c.paths[i]), "%s", fixture_plain_file(REGION_SIZE));
	CHECK_OK(daxpool_region_open(c.ctx, fixture_plain_file(REGION_SIZE), 0, &c.region));
	CHECK(pthread_create(&t[0], NULL, churn_regions, &c) == 0);
	CHECK(pthread_create(&t[1], NULL, churn_maps, &c) == 0);
	/* 1000 walks beside 1000 rounds of the others, or 3 s; the walker yields between walks. */
	for (uint64_t t0 = now_ms();
	     (walks < 1000 || atomic_load(&c.rounds) < 1000) && now_ms() - t0 < 3000; walks++) {
		/*
		 * No bound on the counts: what others open or map meanwhile is
		 * appended behind the walk and may be seen (once each).
		 */
		int nr = count_regions(c.ctx), nm = count_maps(c.region);

		CHECK(nr >= 1);
		max_regions = nr > max_regions ? nr : max_regions;
		max_maps = nm > max_maps ? nm : max_maps;
		sched_yield();
	}
	atomic_store(&c.stop, true);
	for (int i = 0; i < 2; i++)
		CHECK(pthread_join(t[i], NULL) == 0);
	printf("# %d walks beside %d rounds of opens and maps (at most %d regions, %d maps seen)\n",
	       walks, atomic_load(&c.rounds), max_regions, max_maps);
	CHECK(walks >= 100 && atomic_load(&c.rounds) >= 50);
	CHECK_EQ(count_regions(c.ctx), 1);
	CHECK_EQ(count_maps(c.region), 0);
	daxpool_region_unref(c.region);
	CHECK(daxpool_region_get_first(c.ctx) == NULL);
	daxpool_ctx_unref(c.ctx);
}

/* A child of fork() sees none of the parent's regions or maps: they are not its own. */
TEST(a_fork_child_enumerates_nothing_of_the_parent)
{
	struct daxpool_ctx *ctx = new_ctx();
	struct daxpool_region *region;
	struct daxpool_map *map;
	int status;
	pid_t pid;

	CHECK_OK(daxpool_region_open(ctx, fixture_plain_file(REGION_SIZE), 0, &region));
	CHECK_OK(daxpool_map_new(region, 0, daxpool_region_get_alignment(region), 0, &map));
	pid = fork();
	CHECK(pid >= 0);
	if (pid == 0)
		_exit(daxpool_region_get_first(ctx) == NULL && daxpool_map_get_first(region) == NULL &&
			      daxpool_region_get_next(region) == NULL &&
			      daxpool_map_get_next(map) == NULL
		      ? 0
		      : 1);
	CHECK_EQ(waitpid(pid, &status, 0), pid);
	CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	/* The parent's handles are untouched by the child's calls. */
	CHECK_EQ(count_maps(region), 1);
	daxpool_map_unref(map);
	daxpool_region_unref(region);
	daxpool_ctx_unref(ctx);
}
