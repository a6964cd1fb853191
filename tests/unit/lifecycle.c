/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* LIVE -> ZAPPING -> IDLE -> RELEASED: zap, revoke, wait for idle, release. */
#include <pthread.h>
#include <stdatomic.h>
#include <time.h>

#include <syslog.h>

#include "daxpool.h"
#include "harness.h"

#define REGION_SIZE (64ull << 20)

struct fixture {
	struct daxpool_ctx *ctx;
	struct daxpool_region *region;
	uint64_t align;
};

static struct fixture setup(void)
{
	struct fixture f = { 0 };

	CHECK_OK(daxpool_ctx_new(&f.ctx));
	CHECK_OK(daxpool_ctx_set_log_priority(f.ctx, LOG_CRIT));
	CHECK_OK(daxpool_region_open(f.ctx, fixture_backing(REGION_SIZE), 0, &f.region));
	f.align = daxpool_region_get_alignment(f.region);
	return f;
}

static void teardown(struct fixture *f)
{
	daxpool_region_unref(f->region);
	daxpool_ctx_unref(f->ctx);
}

static int revoked_calls;

static void revoke_count(struct daxpool_map *map, void *userdata)
{
	revoked_calls++;
	CHECK_EQ(daxpool_map_is_valid(map), 0);
	CHECK(userdata == (void *)0x1234);
}

/* A revoke function that drops the holder's reference, as a cooperative holder does. */
static void revoke_drop(struct daxpool_map *map, void *userdata)
{
	struct daxpool_map **slot = userdata;

	revoked_calls++;
	CHECK(*slot == map);
	*slot = daxpool_map_unref(*slot);
}

TEST(zap_refuses_new_maps_and_reaches_idle)
{
	struct fixture f = setup();
	struct daxpool_map *map, *late = NULL;
	uint64_t gen = daxpool_region_get_generation(f.region);

	CHECK_OK(daxpool_map_new(f.region, 0, f.align, 0, &map));
	CHECK_OK(daxpool_map_set_revoke_fn(map, revoke_count, (void *)0x1234));
	CHECK_EQ(daxpool_region_zap(f.region), 1);
	CHECK_EQ(revoked_calls, 1);
	CHECK(daxpool_region_get_generation(f.region) > gen);
	CHECK_EQ(daxpool_region_get_state(f.region), DAXPOOL_STATE_ZAPPING);
	CHECK_ERR(daxpool_map_new(f.region, f.align, f.align, 0, &late), ENXIO);
	CHECK(late == NULL);
	CHECK_EQ(daxpool_map_is_valid(map), 0);
	/* The memory stays mapped for the holder; writes through the helper are refused. */
	(void)*(volatile char *)daxpool_map_get_address(map);
	CHECK_ERR(daxpool_map_memset(map, daxpool_map_get_address(map), 0, 1, 0), ENXIO);
	CHECK_OK(daxpool_map_persist(map, daxpool_map_get_address(map), 1));

	/* A second zap finds nothing new to revoke. */
	CHECK_EQ(daxpool_region_zap(f.region), 0);
	CHECK_EQ(revoked_calls, 1);

	CHECK_ERR(daxpool_region_release(f.region), EBUSY);
	daxpool_map_unref(map);
	CHECK_EQ(daxpool_region_get_state(f.region), DAXPOOL_STATE_IDLE);
	CHECK_OK(daxpool_region_wait_idle(f.region, 0, NULL));
	CHECK_OK(daxpool_region_release(f.region));
	CHECK_EQ(daxpool_region_get_state(f.region), DAXPOOL_STATE_RELEASED);
	CHECK_ERR(daxpool_region_release(f.region), EALREADY);
	CHECK_ERR(daxpool_map_new(f.region, 0, f.align, 0, &late), ENXIO);
	CHECK_ERR(daxpool_region_zap(f.region), ENXIO);
	teardown(&f);
}

TEST(cooperative_holder_drops_in_its_revoke_fn)
{
	struct fixture f = setup();
	struct daxpool_map *maps[3];

	for (int i = 0; i < 3; i++) {
		CHECK_OK(daxpool_map_new(f.region, (uint64_t)i * f.align, f.align, 0, &maps[i]));
		CHECK_OK(daxpool_map_set_revoke_fn(maps[i], revoke_drop, &maps[i]));
	}
	CHECK_EQ(daxpool_region_get_map_count(f.region), 3);
	CHECK_EQ(daxpool_region_zap(f.region), 3);
	CHECK_EQ(revoked_calls, 3);
	for (int i = 0; i < 3; i++)
		CHECK(maps[i] == NULL);
	CHECK_OK(daxpool_region_wait_idle(f.region, 1000, NULL));
	CHECK_EQ(daxpool_region_get_map_count(f.region), 0);
	CHECK_OK(daxpool_region_release(f.region));
	teardown(&f);
}

TEST(wait_idle_times_out_with_a_report)
{
	struct fixture f = setup();
	struct daxpool_map *map;
	char *report = NULL;
	struct timespec t0, t1;

	CHECK_OK(daxpool_map_new(f.region, f.align, f.align, 0, &map));
	CHECK_OK(daxpool_map_set_tag(map, "stubborn-holder"));
	CHECK_ERR(daxpool_region_wait_idle(f.region, 0, NULL), ESRCH);
	CHECK_EQ(daxpool_region_zap(f.region), 1);

	clock_gettime(CLOCK_MONOTONIC, &t0);
	CHECK_ERR(daxpool_region_wait_idle(f.region, 200, &report), ETIMEDOUT);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	CHECK((t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000 >= 199);
	CHECK(report);
	printf("# report: %s", report);
	CHECK(strstr(report, "stubborn-holder"));
	{
		char pid[32];

		snprintf(pid, sizeof(pid), "pid %d", getpid());
		CHECK(strstr(report, pid));
	}
	free(report);
	report = NULL;
	CHECK_ERR(daxpool_region_wait_idle(f.region, 0, &report), ETIMEDOUT);
	free(report);
	CHECK_ERR(daxpool_region_wait_idle(f.region, -2, NULL), EINVAL);
	daxpool_map_unref(map);
	CHECK_OK(daxpool_region_wait_idle(f.region, 0, NULL));
	teardown(&f);
}

struct dropper {
	struct daxpool_map *map;
	int delay_ms;
};

static void *drop_later(void *arg)
{
	struct dropper *d = arg;
	struct timespec ts = { 0, (long)d->delay_ms * 1000000L };

	nanosleep(&ts, NULL);
	daxpool_map_unref(d->map);
	return NULL;
}

TEST(wait_idle_wakes_when_another_thread_drops_the_last_map)
{
	struct fixture f = setup();
	struct dropper d = { NULL, 100 };
	pthread_t th;

	CHECK_OK(daxpool_map_new(f.region, 0, f.align, 0, &d.map));
	CHECK_EQ(daxpool_region_zap(f.region), 1);
	CHECK_EQ(pthread_create(&th, NULL, drop_later, &d), 0);
	CHECK_OK(daxpool_region_wait_idle(f.region, 10000, NULL));
	CHECK_EQ(daxpool_region_get_state(f.region), DAXPOOL_STATE_IDLE);
	pthread_join(th, NULL);

	/* The same with no deadline. */
	teardown(&f);
	f = setup();
	CHECK_OK(daxpool_map_new(f.region, 0, f.align, 0, &d.map));
	CHECK_EQ(daxpool_region_zap(f.region), 1);
	CHECK_EQ(pthread_create(&th, NULL, drop_later, &d), 0);
	CHECK_OK(daxpool_region_wait_idle(f.region, -1, NULL));
	pthread_join(th, NULL);
	teardown(&f);
}

TEST(zap_range_revokes_only_overlapping_maps)
{
	struct fixture f = setup();
	struct daxpool_map *a, *b, *c, *x = NULL;

	CHECK_OK(daxpool_map_new(f.region, 0, f.align, 0, &a));
	CHECK_OK(daxpool_map_new(f.region, f.align, f.align, 0, &b));
	CHECK_OK(daxpool_map_new(f.region, 0, 3 * f.align, 0, &c));
	CHECK_EQ(daxpool_region_zap_range(f.region, f.align, f.align), 2);
	CHECK_EQ(daxpool_map_is_valid(a), 1);
	CHECK_EQ(daxpool_map_is_valid(b), 0);
	CHECK_EQ(daxpool_map_is_valid(c), 0);
	CHECK_EQ(daxpool_region_get_state(f.region), DAXPOOL_STATE_LIVE);
	/* New maps of the zapped range fail; elsewhere they work. */
	CHECK_ERR(daxpool_map_new(f.region, f.align, f.align, 0, &x), ENXIO);
	CHECK_ERR(daxpool_map_new(f.region, 0, 2 * f.align, 0, &x), ENXIO);
	CHECK_OK(daxpool_map_new(f.region, 2 * f.align, f.align, 0, &x));
	x = daxpool_map_unref(x);
	CHECK_ERR(daxpool_region_wait_idle(f.region, 0, NULL), ETIMEDOUT);
	daxpool_map_unref(b);
	CHECK_ERR(daxpool_region_wait_idle(f.region, 0, NULL), ETIMEDOUT);
	daxpool_map_unref(c);
	CHECK_OK(daxpool_region_wait_idle(f.region, 0, NULL)); /* a is outside */
	/* Release needs the whole region zapped. */
	CHECK_ERR(daxpool_region_release(f.region), EBUSY);
	daxpool_map_unref(a);
	teardown(&f);
}

TEST(zap_range_arguments)
{
	struct fixture f = setup();
	uint64_t size = daxpool_region_get_size(f.region);

	CHECK_ERR(daxpool_region_zap_range(f.region, size, 0), EINVAL);
	CHECK_ERR(daxpool_region_zap_range(f.region, 0, size + 1), EINVAL);
	CHECK_ERR(daxpool_region_zap_range(f.region, f.align, UINT64_MAX), EINVAL);
	CHECK_EQ(daxpool_region_get_state(f.region), DAXPOOL_STATE_LIVE);
	teardown(&f);
}

TEST(set_revoke_fn_after_zap_does_not_call_it)
{
	struct fixture f = setup();
	struct daxpool_map *map;

	CHECK_OK(daxpool_map_new(f.region, 0, f.align, 0, &map));
	CHECK_EQ(daxpool_region_zap(f.region), 1);
	CHECK_OK(daxpool_map_set_revoke_fn(map, revoke_count, (void *)0x1234));
	CHECK_EQ(revoked_calls, 0);
	CHECK_EQ(daxpool_map_is_valid(map), 0);
	daxpool_map_unref(map);
	teardown(&f);
}

TEST(region_unref_while_zapping_is_safe)
{
	struct fixture f = setup();
	struct daxpool_map *map;

	CHECK_OK(daxpool_map_new(f.region, 0, f.align, 0, &map));
	CHECK_EQ(daxpool_region_zap(f.region), 1);
	/* Drop the caller's region reference first: the map keeps the region. */
	daxpool_region_unref(f.region);
	CHECK_EQ(daxpool_region_get_state(daxpool_map_get_region(map)), DAXPOOL_STATE_ZAPPING);
	daxpool_map_unref(map);
	daxpool_ctx_unref(f.ctx);
}

TEST(unzap_reopens_an_idle_range_only)
{
	struct fixture f = setup();
	struct daxpool_map *a, *b = NULL;
	uint64_t gen;

	CHECK_OK(daxpool_map_new(f.region, f.align, f.align, 0, &a));
	CHECK_EQ(daxpool_region_zap_range(f.region, f.align, 2 * f.align), 1);
	CHECK_ERR(daxpool_region_unzap_range(f.region, f.align, 2 * f.align), EBUSY);
	CHECK_ERR(daxpool_map_new(f.region, f.align, f.align, 0, &b), ENXIO);
	daxpool_map_unref(a);
	/* A range that does not contain the whole zap removes nothing. */
	CHECK_EQ(daxpool_region_unzap_range(f.region, f.align, f.align), 0);
	gen = daxpool_region_get_generation(f.region);
	CHECK_EQ(daxpool_region_unzap_range(f.region, f.align, 2 * f.align), 1);
	CHECK(daxpool_region_get_generation(f.region) > gen);
	CHECK_OK(daxpool_map_new(f.region, f.align, f.align, 0, &b));
	CHECK_EQ(daxpool_map_is_valid(b), 1);
	daxpool_map_unref(b);

	/* The whole region: back to LIVE. */
	CHECK_EQ(daxpool_region_zap(f.region), 0);
	CHECK_EQ(daxpool_region_get_state(f.region), DAXPOOL_STATE_IDLE);
	CHECK_EQ(daxpool_region_unzap_range(f.region, 0, 0), 1);
	CHECK_EQ(daxpool_region_get_state(f.region), DAXPOOL_STATE_LIVE);
	CHECK_ERR(daxpool_region_wait_idle(f.region, 0, NULL), ESRCH);
	CHECK_ERR(daxpool_region_unzap_range(f.region, daxpool_region_get_size(f.region), 0), EINVAL);
	CHECK_ERR(daxpool_region_unzap_range(NULL, 0, 0), EINVAL);
	teardown(&f);
}

static int warnings;

__attribute__((format(printf, 6, 0))) static void
count_warnings(struct daxpool_ctx *ctx, int priority, const char *file, int line, const char *fn,
	       const char *format, va_list args)
{
	(void)ctx, (void)file, (void)line, (void)fn, (void)format, (void)args;
	if (priority == LOG_WARNING)
		warnings++;
}

TEST(a_check_of_idle_builds_no_report_and_warns_nothing)
{
	struct fixture f = setup();
	struct daxpool_map *map;
	char *report = NULL;

	CHECK_OK(daxpool_ctx_set_log_fn(f.ctx, count_warnings));
	CHECK_OK(daxpool_ctx_set_log_priority(f.ctx, LOG_WARNING));
	CHECK_OK(daxpool_map_new(f.region, 0, f.align, 0, &map));
	CHECK_OK(daxpool_region_zap(f.region));
	/* A poller checks every few ms: no report, no warning each time. */
	for (int i = 0; i < 20; i++)
		CHECK_ERR(daxpool_region_wait_idle(f.region, 0, NULL), ETIMEDOUT);
	CHECK_EQ(warnings, 0);
	/* Asked for, the report is there; a real wait that times out still warns. */
	CHECK_ERR(daxpool_region_wait_idle(f.region, 0, &report), ETIMEDOUT);
	CHECK(report != NULL && strstr(report, "map") != NULL);
	free(report);
	CHECK_EQ(warnings, 0);
	CHECK_ERR(daxpool_region_wait_idle(f.region, 10, NULL), ETIMEDOUT);
	CHECK_EQ(warnings, 1);
	daxpool_map_unref(map);
	teardown(&f);
}

TEST(truncate_waits_for_its_own_range_only)
{
	struct fixture f = setup();
	struct daxpool_map *head, *tail;
	uint64_t size = daxpool_region_get_size(f.region);

	if (daxpool_region_get_kind(f.region) == DAXPOOL_REGION_DEVDAX)
		SKIP("a device has no layout to change");
	CHECK(size >= 4 * f.align);
	CHECK_OK(daxpool_map_new(f.region, 0, f.align, 0, &head));
	CHECK_OK(daxpool_map_new(f.region, size - f.align, f.align, 0, &tail));
	CHECK_OK(daxpool_map_set_revoke_fn(tail, revoke_drop, &tail));
	/* The application zapped the head itself, and its holder keeps it. */
	CHECK_OK(daxpool_region_zap_range(f.region, 0, f.align));
	/* Shrinking drains the tail (its holder lets go) and waits for nothing else. */
	CHECK_OK(daxpool_region_truncate(f.region, size / 2, 2000));
	CHECK(tail == NULL);
	CHECK_EQ(daxpool_map_is_valid(head), 0);
	daxpool_map_unref(head);
	CHECK_OK(daxpool_region_truncate(f.region, size, 0));
	teardown(&f);
}

/* Each zap is its owner's: daxpool's own operations never reopen the application's. */
TEST(a_punch_of_the_whole_file_keeps_the_applications_zap)
{
	struct fixture f = setup();
	struct daxpool_map *late = NULL;
	uint64_t size = daxpool_region_get_size(f.region);

	if (daxpool_region_get_kind(f.region) == DAXPOOL_REGION_DEVDAX)
		SKIP("a device has no layout to change");
	CHECK_OK(daxpool_region_zap(f.region));
	CHECK_EQ(daxpool_region_get_state(f.region), DAXPOOL_STATE_IDLE);
	CHECK_OK(daxpool_region_punch_hole(f.region, 0, size, 1000));
	CHECK_EQ(daxpool_region_get_state(f.region), DAXPOOL_STATE_IDLE);
	CHECK_ERR(daxpool_map_new(f.region, 0, f.align, 0, &late), ENXIO);
	CHECK(late == NULL);
	CHECK_OK(daxpool_region_release(f.region));
	teardown(&f);
}

TEST(a_punch_over_a_zapped_range_keeps_it_zapped)
{
	struct fixture f = setup();
	struct daxpool_map *late = NULL;

	if (daxpool_region_get_kind(f.region) == DAXPOOL_REGION_DEVDAX)
		SKIP("a device has no layout to change");
	CHECK_OK(daxpool_region_zap_range(f.region, 0, f.align));
	CHECK_OK(daxpool_region_punch_hole(f.region, 0, 2 * f.align, 1000));
	CHECK_ERR(daxpool_map_new(f.region, 0, f.align, 0, &late), ENXIO);
	/* The punch's own range, outside the application's zap, is open again. */
	CHECK_OK(daxpool_map_new(f.region, f.align, f.align, 0, &late));
	daxpool_map_unref(late);
	/* And the application reopens its own. */
	CHECK_EQ(daxpool_region_unzap_range(f.region, 0, f.align), 1);
	CHECK_OK(daxpool_map_new(f.region, 0, f.align, 0, &late));
	daxpool_map_unref(late);
	teardown(&f);
}

TEST(an_extent_free_keeps_the_applications_zap)
{
	struct fixture f = setup();
	struct daxpool_pool_opts *o;
	struct daxpool_extent *ext;
	struct daxpool_pool *pool;
	struct daxpool_map *late = NULL;
	uint64_t off, len;

	CHECK_OK(daxpool_pool_opts_new(&o));
	CHECK_OK(daxpool_pool_opts_set_overwrite(o, 1));
	CHECK_OK(daxpool_pool_create(f.region, "owned-zaps", o, &pool));
	daxpool_pool_opts_free(o);
	CHECK_OK(daxpool_extent_alloc(pool, "data", 4 * f.align, 0, &ext));
	off = daxpool_extent_get_offset(ext);
	len = daxpool_extent_get_size(ext);
	/* The application zaps the extent's first part (e.g. before a release). */
	CHECK_OK(daxpool_region_zap_range(f.region, off, f.align));
	CHECK_OK(daxpool_extent_free(ext, 1000, 0));
	daxpool_extent_unref(ext);
	CHECK_ERR(daxpool_map_new(f.region, off, f.align, 0, &late), ENXIO);
	CHECK_OK(daxpool_map_new(f.region, off + f.align, len - f.align, 0, &late));
	daxpool_map_unref(late);
	daxpool_pool_unref(pool);
	teardown(&f);
}

/*
 * A layout change runs its ftruncate()/fallocate() with no region lock held:
 * a slow file holds up that call only. DAXPOOL_TEST_LAYOUT_DELAY_MS holds the
 * syscall's window open as a busy file would.
 */
struct layout_call {
	struct daxpool_region *region;
	bool punch;
	uint64_t offset, length;
	int r;
	atomic_bool done; /* the call returned */
};

static void *layout_thread(void *arg)
{
	struct layout_call *c = arg;

	c->r = c->punch ? daxpool_region_punch_hole(c->region, c->offset, c->length, 1000)
			: daxpool_region_truncate(c->region, c->offset, 1000);
	atomic_store(&c->done, true);
	return NULL;
}

static double ms_since(const struct timespec *t0)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)(t.tv_sec - t0->tv_sec) * 1e3 + (double)(t.tv_nsec - t0->tv_nsec) / 1e6;
}

static void layout_change_leaves_the_region_usable(bool punch)
{
	struct fixture f = setup();
	struct layout_call c = { .region = f.region, .punch = punch };
	struct daxpool_map *head = NULL, *late = NULL;
	uint64_t size = daxpool_region_get_size(f.region);
	struct timespec t0;
	pthread_t th;
	double ms;
	bool went_on_during_the_call;

	if (daxpool_region_get_kind(f.region) == DAXPOOL_REGION_DEVDAX)
		SKIP("a device has no layout to change");
	c.offset = size / 2;
	c.length = punch ? f.align : 0;
	CHECK_OK(setenv("DAXPOOL_TEST_LAYOUT_DELAY_MS", "3000", 1));
	clock_gettime(CLOCK_MONOTONIC, &t0);
	CHECK(pthread_create(&th, NULL, layout_thread, &c) == 0);
	usleep(300 * 1000);
	/* The other users of the region go on while the file changes... */
	CHECK_OK(daxpool_map_new(f.region, 0, f.align, 0, &head));
	CHECK_EQ(daxpool_region_get_map_count(f.region), 1);
	CHECK(daxpool_region_get_state(f.region) == DAXPOOL_STATE_LIVE);
	went_on_during_the_call = !atomic_load(&c.done);
	ms = ms_since(&t0);
	/* ...and the range that changes stays zapped all the while. */
	CHECK_ERR(daxpool_map_new(f.region, size / 2, f.align, 0, &late), ENXIO);
	CHECK(pthread_join(th, NULL) == 0);
	CHECK_OK(c.r);
	printf("# other users went on %.0f ms into a %s that took %.0f ms\n", ms,
	       punch ? "hole punch" : "truncate", ms_since(&t0));
	/* Not a time bound: the map came while the call was still in its syscall. */
	CHECK(went_on_during_the_call);
	daxpool_map_unref(head);
	teardown(&f);
}

TEST(a_slow_truncate_holds_up_no_other_user)
{
	layout_change_leaves_the_region_usable(false);
}

TEST(a_slow_hole_punch_holds_up_no_other_user)
{
	layout_change_leaves_the_region_usable(true);
}

/* A release would close the descriptor the layout change uses: it is refused meanwhile. */
TEST(a_release_during_a_truncate_is_refused)
{
	struct fixture f = setup();
	struct layout_call c = { .region = f.region };
	pthread_t th;

	if (daxpool_region_get_kind(f.region) == DAXPOOL_REGION_DEVDAX)
		SKIP("a device has no layout to change");
	c.offset = daxpool_region_get_size(f.region) / 2;
	CHECK_OK(daxpool_region_zap(f.region));
	CHECK_OK(setenv("DAXPOOL_TEST_LAYOUT_DELAY_MS", "800", 1));
	CHECK(pthread_create(&th, NULL, layout_thread, &c) == 0);
	usleep(200 * 1000);
	CHECK_ERR(daxpool_region_release(f.region), EBUSY);
	CHECK(pthread_join(th, NULL) == 0);
	CHECK_OK(c.r);
	CHECK_OK(daxpool_region_release(f.region));
	teardown(&f);
}
