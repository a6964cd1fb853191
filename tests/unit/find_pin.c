/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * A registration cache on the registry: daxpool_ctx_find_pin() (a pin that
 * holds a range, referenced) and daxpool_ctx_find_or_pin() (that, or a new
 * pin, one for threads that ask together).
 */
#include <pthread.h>
#include <sys/wait.h>
#include <syslog.h>

#include "daxpool.h"
#include "harness.h"
#include "pin_fixture.h"

#define KIB (1ull << 10)
#define RW (DAXPOOL_PIN_DEVICE_READ | DAXPOOL_PIN_DEVICE_WRITE)

TEST(find_pin_returns_a_pin_that_holds_the_whole_range)
{
	struct fixture f = setup();
	/* One pin per granule level: 8 KiB (4 KiB level), 1 MiB (2 MiB), 12 MiB (1 GiB). */
	static const struct {
		uint64_t off, len;
	} p[] = { { 4 * KIB, 8 * KIB }, { 2 * MIB + 64 * KIB, 1 * MIB }, { 4 * MIB, 12 * MIB } };
	struct daxpool_pin *pins[3], *found;

	for (int i = 0; i < 3; i++)
		CHECK_OK(daxpool_pin_new(f.map, f.base + p[i].off, p[i].len, DAXPOOL_PIN_TRANSIENT,
					 DAXPOOL_PIN_DEVICE_READ, &pins[i]));
	for (int i = 0; i < 3; i++) {
		char *a = f.base + p[i].off;

		/* The whole pin, its first and last byte, a range in its middle. */
		CHECK_OK(daxpool_ctx_find_pin(f.ctx, a, p[i].len, 0, 0, &found));
		CHECK(found == pins[i]);
		daxpool_pin_unref(found);
		CHECK_OK(daxpool_ctx_find_pin(f.ctx, a, 1, 0, 0, &found));
		CHECK(found == pins[i]);
		daxpool_pin_unref(found);
		CHECK_OK(daxpool_ctx_find_pin(f.ctx, a + p[i].len - 1, 1, 0, 0, &found));
		CHECK(found == pins[i]);
		daxpool_pin_unref(found);
		CHECK_OK(daxpool_ctx_find_pin(f.ctx, a + p[i].len / 3, p[i].len / 3, 0, 0, &found));
		CHECK(found == pins[i]);
		daxpool_pin_unref(found);
		/* Overlapping is not holding: one byte more at either end. */
		found = NULL;
		CHECK_ERR(daxpool_ctx_find_pin(f.ctx, a - 1, p[i].len + 1, 0, 0, &found), ENOENT);
		CHECK_ERR(daxpool_ctx_find_pin(f.ctx, a, p[i].len + 1, 0, 0, &found), ENOENT);
		CHECK(found == NULL); /* *ret only on success */
	}
	/* Between the pins, and across two of them. */
	CHECK_ERR(daxpool_ctx_find_pin(f.ctx, f.base, 4096, 0, 0, &found), ENOENT);
	CHECK_ERR(daxpool_ctx_find_pin(f.ctx, f.base + 4 * MIB - 4096, 8192, 0, 0, &found), ENOENT);
	for (int i = 0; i < 3; i++)
		daxpool_pin_unref(pins[i]);
	CHECK_ERR(daxpool_ctx_find_pin(f.ctx, f.base + p[0].off, 1, 0, 0, &found), ENOENT);
	teardown(&f);
}

TEST(find_pin_takes_a_reference_that_outlives_the_maker)
{
	struct fixture f = setup();
	struct daxpool_pin *p, *found;

	CHECK_OK(daxpool_pin_new(f.map, f.base, 4096, DAXPOOL_PIN_LONGTERM, RW, &p));
	CHECK_OK(daxpool_ctx_find_pin(f.ctx, f.base + 100, 200, 0, 0, &found));
	CHECK(found == p);
	daxpool_pin_unref(p);
	/* Still registered and counted: the reference found is a real one. */
	CHECK_EQ(daxpool_region_get_pin_count(f.region, DAXPOOL_PIN_LONGTERM), 1);
	CHECK_EQ(daxpool_ctx_is_pinned(f.ctx, f.base, 4096), 1);
	CHECK_OK(daxpool_ctx_find_pin(f.ctx, f.base, 4096, 0, 0, &p));
	CHECK(p == found);
	daxpool_pin_unref(p);
	daxpool_pin_unref(found);
	CHECK_EQ(daxpool_region_get_pin_count(f.region, 0), 0);
	CHECK_ERR(daxpool_ctx_find_pin(f.ctx, f.base, 4096, 0, 0, &found), ENOENT);
	teardown(&f);
}

TEST(find_pin_matches_kind_and_access)
{
	struct fixture f = setup();
	struct daxpool_pin *t, *l, *found;

	CHECK_OK(daxpool_pin_new(f.map, f.base, 64 * KIB, DAXPOOL_PIN_TRANSIENT,
				 DAXPOOL_PIN_DEVICE_READ, &t));
	CHECK_OK(daxpool_pin_new(f.map, f.base + 32 * KIB, 64 * KIB, DAXPOOL_PIN_LONGTERM, RW, &l));
	CHECK_OK(daxpool_ctx_find_pin(f.ctx, f.base, 4096, DAXPOOL_PIN_TRANSIENT,
				      DAXPOOL_PIN_DEVICE_READ, &found));
	CHECK(found == t);
	daxpool_pin_unref(found);
	/* Only the long-term pin writes, and holds [64 KiB, 96 KiB). */
	CHECK_ERR(daxpool_ctx_find_pin(f.ctx, f.base, 4096, 0, DAXPOOL_PIN_DEVICE_WRITE, &found),
		  ENOENT);
	CHECK_OK(daxpool_ctx_find_pin(f.ctx, f.base + 40 * KIB, 4096, 0, DAXPOOL_PIN_DEVICE_WRITE,
				      &found));
	CHECK(found == l);
	daxpool_pin_unref(found);
	CHECK_OK(daxpool_ctx_find_pin(f.ctx, f.base + 70 * KIB, 4096, DAXPOOL_PIN_LONGTERM, 0,
				      &found));
	CHECK(found == l);
	daxpool_pin_unref(found);
	CHECK_ERR(daxpool_ctx_find_pin(f.ctx, f.base + 70 * KIB, 4096, DAXPOOL_PIN_TRANSIENT, 0,
				       &found),
		  ENOENT);
	daxpool_pin_unref(t);
	daxpool_pin_unref(l);
	teardown(&f);
}

TEST(find_pin_refuses_revoked_pins)
{
	struct fixture f = setup();
	uint64_t align = daxpool_region_get_alignment(f.region);
	struct daxpool_pin *p, *found;

	CHECK_OK(daxpool_pin_new(f.map, f.base, 4096, DAXPOOL_PIN_TRANSIENT, RW, &p));
	CHECK_EQ(daxpool_region_zap_range(f.region, 0, align), 2); /* the pin and the map */
	CHECK_EQ(daxpool_pin_is_valid(p), 0);
	CHECK_ERR(daxpool_ctx_find_pin(f.ctx, f.base, 4096, 0, 0, &found), ENXIO);
	/* Nor does find-or-pin give it out, or pin a zapped range. */
	CHECK_ERR(daxpool_ctx_find_or_pin(f.ctx, f.base, 4096, DAXPOOL_PIN_TRANSIENT, RW, &found),
		  ENXIO);
	daxpool_pin_unref(p);
	teardown(&f);
}

TEST(find_pin_refuses_bad_arguments)
{
	struct fixture f = setup();
	struct daxpool_pin *found;

	CHECK_ERR(daxpool_ctx_find_pin(NULL, f.base, 1, 0, 0, &found), EINVAL);
	CHECK_ERR(daxpool_ctx_find_pin(f.ctx, f.base, 1, 0, 0, NULL), EINVAL);
	CHECK_ERR(daxpool_ctx_find_pin(f.ctx, f.base, 0, 0, 0, &found), EINVAL);
	CHECK_ERR(daxpool_ctx_find_pin(f.ctx, (void *)(UINTPTR_MAX - 10), 100, 0, 0, &found),
		  EINVAL);
	CHECK_ERR(daxpool_ctx_find_pin(f.ctx, f.base, 1, 7, 0, &found), EINVAL);
	CHECK_ERR(daxpool_ctx_find_pin(f.ctx, f.base, 1, 0, 1u << 5, &found), EINVAL);
	CHECK_ERR(daxpool_ctx_find_or_pin(NULL, f.base, 1, DAXPOOL_PIN_TRANSIENT, RW, &found),
		  EINVAL);
	CHECK_ERR(daxpool_ctx_find_or_pin(f.ctx, f.base, 1, 0, RW, &found), EINVAL);
	CHECK_ERR(daxpool_ctx_find_or_pin(f.ctx, f.base, 1, DAXPOOL_PIN_TRANSIENT, 0, &found),
		  EINVAL);
	CHECK_ERR(daxpool_ctx_find_or_pin(f.ctx, f.base, 0, DAXPOOL_PIN_TRANSIENT, RW, &found),
		  EINVAL);
	CHECK_EQ(daxpool_region_get_pin_count(f.region, 0), 0);
	teardown(&f);
}

TEST(find_or_pin_makes_once_then_finds)
{
	struct fixture f = setup();
	struct daxpool_pin *a, *b, *c;
	char *outside = malloc(4096);

	CHECK(outside);
	CHECK_EQ(daxpool_ctx_find_or_pin(f.ctx, f.base + 8192, 4096, DAXPOOL_PIN_TRANSIENT,
					 DAXPOOL_PIN_DEVICE_READ, &a),
		 1);
	CHECK(daxpool_pin_get_map(a) == f.map);
	CHECK(daxpool_pin_get_address(a) == f.base + 8192);
	CHECK_EQ(daxpool_pin_get_length(a), 4096);
	CHECK_EQ(daxpool_pin_get_kind(a), DAXPOOL_PIN_TRANSIENT);
	/* Inside it: found, not made. */
	CHECK_EQ(daxpool_ctx_find_or_pin(f.ctx, f.base + 8192 + 64, 64, DAXPOOL_PIN_TRANSIENT,
					 DAXPOOL_PIN_DEVICE_READ, &b),
		 0);
	CHECK(b == a);
	/* Write access, or another kind: another pin. */
	CHECK_EQ(daxpool_ctx_find_or_pin(f.ctx, f.base + 8192, 4096, DAXPOOL_PIN_TRANSIENT, RW, &c),
		 1);
	CHECK(c != a);
	CHECK_EQ(daxpool_pin_get_access(c), RW);
	daxpool_pin_unref(c);
	CHECK_EQ(daxpool_ctx_find_or_pin(f.ctx, f.base + 8192, 4096, DAXPOOL_PIN_LONGTERM,
					 DAXPOOL_PIN_DEVICE_READ, &c),
		 1);
	CHECK(c != a);
	daxpool_pin_unref(c);
	CHECK_EQ(daxpool_region_get_pin_count(f.region, 0), 1);
	daxpool_pin_unref(b);
	daxpool_pin_unref(a);
	/* Not daxpool memory, or across the end of the map: nothing to pin, nothing made. */
	CHECK_ERR(daxpool_ctx_find_or_pin(f.ctx, outside, 4096, DAXPOOL_PIN_TRANSIENT, RW, &c),
		  ENOENT);
	CHECK_ERR(daxpool_ctx_find_or_pin(f.ctx, f.base + f.len - 4096, 8192,
					  DAXPOOL_PIN_TRANSIENT, RW, &c),
		  ENOENT);
	CHECK_EQ(daxpool_region_get_pin_count(f.region, 0), 0);
	free(outside);
	teardown(&f);
}

TEST(find_or_pin_refuses_write_to_a_read_only_map)
{
	struct fixture f = setup();
	struct daxpool_map *ro;
	struct daxpool_pin *p;
	char *a;

	CHECK_OK(daxpool_map_new(f.region, 0, f.len, DAXPOOL_MAP_RDONLY, &ro));
	a = daxpool_map_get_address(ro);
	CHECK_ERR(daxpool_ctx_find_or_pin(f.ctx, a, 4096, DAXPOOL_PIN_TRANSIENT,
					  DAXPOOL_PIN_DEVICE_WRITE, &p),
		  EACCES);
	CHECK_EQ(daxpool_ctx_find_or_pin(f.ctx, a, 4096, DAXPOOL_PIN_TRANSIENT,
					 DAXPOOL_PIN_DEVICE_READ, &p),
		 1);
	CHECK(daxpool_pin_get_map(p) == ro);
	daxpool_pin_unref(p);
	daxpool_map_unref(ro);
	teardown(&f);
}

TEST(find_pin_is_refused_in_a_child)
{
	struct fixture f = setup();
	struct daxpool_pin *p, *found;
	int status;
	pid_t pid;

	CHECK_OK(daxpool_pin_new(f.map, f.base, 4096, DAXPOOL_PIN_TRANSIENT, RW, &p));
	pid = fork();
	CHECK(pid >= 0);
	if (pid == 0) {
		/* The parent's handles: its pins are not the child's to take. */
		_exit(daxpool_ctx_find_pin(f.ctx, f.base, 4096, 0, 0, &found) == -ESTALE &&
			      daxpool_ctx_find_or_pin(f.ctx, f.base, 4096, DAXPOOL_PIN_TRANSIENT,
						      RW, &found) == -ESTALE
		      ? 0
		      : 1);
	}
	CHECK_EQ(waitpid(pid, &status, 0), pid);
	CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	daxpool_pin_unref(p);
	teardown(&f);
}

/* ---- threads asking for the same range together ---- */

#define THREADS 8

struct race {
	struct fixture *f;
	pthread_barrier_t barrier;
	char *addr;
	size_t len;
	struct daxpool_pin *got[THREADS];
	int r[THREADS];
	/* The churn: which pin the threads hold now, and how many hold it. */
	pthread_mutex_t lock;
	struct daxpool_pin *held;
	int holders, made, two_at_once, rounds;
};

struct racer {
	struct race *race;
	int id;
};

static void *ask_once(void *arg)
{
	struct racer *me = arg;
	struct race *rc = me->race;

	pthread_barrier_wait(&rc->barrier);
	rc->r[me->id] = daxpool_ctx_find_or_pin(rc->f->ctx, rc->addr, rc->len,
						DAXPOOL_PIN_TRANSIENT, RW, &rc->got[me->id]);
	return NULL;
}

static void run_threads(struct race *rc, void *(*fn)(void *))
{
	pthread_t t[THREADS];
	struct racer me[THREADS];

	pthread_barrier_init(&rc->barrier, NULL, THREADS);
	for (int i = 0; i < THREADS; i++) {
		me[i] = (struct racer){ rc, i };
		CHECK_EQ(pthread_create(&t[i], NULL, fn, &me[i]), 0);
	}
	for (int i = 0; i < THREADS; i++)
		CHECK_EQ(pthread_join(t[i], NULL), 0);
	pthread_barrier_destroy(&rc->barrier);
}

TEST_TIMEOUT(find_or_pin_race_makes_one_pin, 300)
{
	struct fixture f = setup();
	/* Sizes that land at each granule level. */
	static const size_t lens[] = { 4096, 256 * KIB, 9 * MIB };

	for (int round = 0; round < 300; round++) {
		struct race rc = { .f = &f };
		size_t len = lens[round % 3];
		int made = 0;

		/* A new range each round, at varying offsets (granules, tags, probes). */
		rc.len = len;
		rc.addr = f.base + ((uint64_t)round * 12 * KIB) % (f.len - len);
		run_threads(&rc, ask_once);
		for (int i = 0; i < THREADS; i++) {
			CHECK(rc.r[i] == 0 || rc.r[i] == 1);
			made += rc.r[i];
			CHECK(rc.got[i] == rc.got[0]);
		}
		CHECK_EQ(made, 1);
		CHECK(daxpool_pin_get_address(rc.got[0]) == rc.addr);
		CHECK_EQ(daxpool_pin_get_length(rc.got[0]), len);
		CHECK_EQ(daxpool_region_get_pin_count(f.region, 0), 1);
		for (int i = 0; i < THREADS; i++)
			daxpool_pin_unref(rc.got[i]);
		CHECK_EQ(daxpool_region_get_pin_count(f.region, 0), 0);
	}
	teardown(&f);
}

/*
 * Get and put in a loop, as a cache's users do: a pin can go (its last holder
 * dropped it) and a new one be made, but two pins of the range are never
 * held at once.
 */
static void *churn(void *arg)
{
	struct racer *me = arg;
	struct race *rc = me->race;

	pthread_barrier_wait(&rc->barrier);
	for (int k = 0; k < rc->rounds; k++) {
		struct daxpool_pin *p;
		int r = daxpool_ctx_find_or_pin(rc->f->ctx, rc->addr, rc->len,
						DAXPOOL_PIN_TRANSIENT, RW, &p);

		if (r < 0) {
			fprintf(stderr, "find_or_pin: %s\n", strerror(-r));
			abort();
		}
		pthread_mutex_lock(&rc->lock);
		if (rc->holders && rc->held != p)
			rc->two_at_once++;
		rc->held = p;
		rc->holders++;
		rc->made += r;
		pthread_mutex_unlock(&rc->lock);
		if (k % 3 == 0)
			sched_yield();
		pthread_mutex_lock(&rc->lock);
		rc->holders--;
		pthread_mutex_unlock(&rc->lock);
		daxpool_pin_unref(p);
		if (k % 4 == 1)
			sched_yield(); /* now and then all let go: the pin goes, a new one is made */
	}
	return NULL;
}

TEST_TIMEOUT(find_or_pin_churn_never_holds_two_pins, 300)
{
	struct fixture f = setup();
	struct race rc = { .f = &f, .addr = f.base + 3 * 4096, .len = 4096, .rounds = 3000 };

	pthread_mutex_init(&rc.lock, NULL);
	run_threads(&rc, churn);
	printf("# %d gets, %d pins made\n", THREADS * rc.rounds, rc.made);
	CHECK_EQ(rc.two_at_once, 0);
	CHECK(rc.made >= 1);
	CHECK_EQ(daxpool_region_get_pin_count(f.region, 0), 0);
	pthread_mutex_destroy(&rc.lock);
	teardown(&f);
}
