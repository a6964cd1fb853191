/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * File leases: another process's open or truncate of a region's file waits
 * while daxpool revokes and drains the region; daxpool processes sharing a
 * file are not outsiders; where no lease can be held, the region says why.
 * Real processes, real files (a plain file on the host; ext4 and xfs with
 * -o dax in the vm tier).
 */
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stddef.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "daxpool.h"
#include "harness.h"

#define REGION_SIZE (8ull << 20)
#define LEASE_BREAK_TIME "/proc/sys/fs/lease-break-time"

struct shared {
	_Atomic uint64_t revoked_ns;   /* the holder's revoke function ran */
	_Atomic uint64_t dropped_ns;   /* the holder dropped its last pin and map */
	_Atomic uint64_t outsider_ns;  /* the outsider's open or truncate returned */
	atomic_int outsider_result;    /* 1 + its result */
};

static struct shared *shm;

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void msleep(unsigned int ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000 };

	while (nanosleep(&ts, &ts) < 0)
		;
}

static void shared_init(void)
{
	shm = fixture_shared(sizeof(*shm));
}

/* One map of the whole region and one long-lived pin, dropped by the revoke functions. */
struct holder {
	pthread_mutex_t lock;
	pthread_t dropper; /* the thread that lets go later, joined by holder_finish() */
	bool has_dropper;
	struct daxpool_map *map;
	struct daxpool_pin *pin;
	unsigned int drop_delay_ms; /* how long the "device" takes to let go */
	bool never_drop;
};

static void holder_drop_locked(struct holder *h)
{
	/* Stamped first: nothing waiting on the drop can go on before the stamp. */
	atomic_store(&shm->dropped_ns, now_ns());
	h->pin = daxpool_pin_unref(h->pin);
	h->map = daxpool_map_unref(h->map);
}

static void *holder_drop_later(void *arg)
{
	struct holder *h = arg;

	msleep(h->drop_delay_ms);
	pthread_mutex_lock(&h->lock);
	holder_drop_locked(h);
	pthread_mutex_unlock(&h->lock);
	return NULL;
}

static void holder_pin_revoked(struct daxpool_pin *pin, void *userdata)
{
	struct holder *h = userdata;
	pthread_t t;

	(void)pin;
	atomic_store(&shm->revoked_ns, now_ns());
	if (h->never_drop)
		return;
	/* Like an RDMA MR: deregistration completes a little later, in another thread. */
	pthread_mutex_lock(&h->lock);
	if (pthread_create(&t, NULL, holder_drop_later, h) == 0) {
		h->dropper = t;
		h->has_dropper = true;
	}
	pthread_mutex_unlock(&h->lock);
}

/* Wait for the thread that lets go, if one was started. */
static void holder_finish(struct holder *h)
{
	bool has;

	pthread_mutex_lock(&h->lock);
	has = h->has_dropper;
	h->has_dropper = false;
	pthread_mutex_unlock(&h->lock);
	if (has)
		pthread_join(h->dropper, NULL);
}

static void holder_map_revoked(struct daxpool_map *map, void *userdata)
{
	(void)map;
	(void)userdata;
}

static void holder_start(struct daxpool_region *region, struct holder *h)
{
	pthread_mutex_init(&h->lock, NULL);
	CHECK_OK(daxpool_map_new(region, 0, 0, 0, &h->map));
	CHECK_OK(daxpool_map_set_revoke_fn(h->map, holder_map_revoked, h));
	CHECK_OK(daxpool_pin_new(h->map, daxpool_map_get_address(h->map), 65536,
				 DAXPOOL_PIN_LONGTERM, DAXPOOL_PIN_DEVICE_WRITE, &h->pin));
	CHECK_OK(daxpool_pin_set_revoke_fn(h->pin, holder_pin_revoked, h));
}

static int lease_of(struct daxpool_region *region)
{
	int err = 1, state = daxpool_region_get_lease(region, &err);

	CHECK(err <= 0);
	return state;
}

/* A new context and region on @path with its lease held (skips where leases are refused). */
static void open_leased(const char *path, struct daxpool_ctx **ctx, struct daxpool_region **region)
{
	shared_init();
	CHECK_OK(daxpool_ctx_new(ctx));
	CHECK_OK(daxpool_region_open(*ctx, path, 0, region));
	if (lease_of(*region) != DAXPOOL_LEASE_HELD)
		SKIP("no lease on this file system");
}

/* In a child: open (flags >= 0) or truncate (flags < 0) @path, record when it returned. */
static pid_t outsider(const char *path, int flags, off_t size)
{
	pid_t pid = fork();

	CHECK(pid >= 0);
	if (pid == 0) {
		int r;

		if (flags >= 0) {
			int fd = open(path, flags | O_CLOEXEC);

			r = fd < 0 ? -1 : 0;
			if (fd >= 0)
				close(fd);
		} else {
			r = truncate(path, size);
		}
		atomic_store(&shm->outsider_ns, now_ns());
		atomic_store(&shm->outsider_result, r == 0 ? 1 : 2);
		_exit(0);
	}
	return pid;
}

static void reap(pid_t pid)
{
	int status;

	CHECK_EQ(waitpid(pid, &status, 0), pid);
	CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

static int read_break_time(void)
{
	FILE *f = fopen(LEASE_BREAK_TIME, "re");
	int s = -1;

	if (f) {
		if (fscanf(f, "%d", &s) != 1)
			s = -1;
		fclose(f);
	}
	return s;
}

static bool write_break_time(int s)
{
	FILE *f = fopen(LEASE_BREAK_TIME, "we");
	bool ok;

	if (!f)
		return false;
	ok = fprintf(f, "%d\n", s) > 0;
	return fclose(f) == 0 && ok;
}

TEST(a_read_write_file_region_holds_a_lease)
{
	const char *path = fixture_backing(REGION_SIZE);
	struct daxpool_region *region, *ro;
	struct daxpool_ctx *ctx;

	CHECK_OK(daxpool_ctx_new(&ctx));
	CHECK_OK(daxpool_region_open(ctx, path, 0, &region));
	if (lease_of(region) == DAXPOOL_LEASE_REFUSED) {
		int err;

		daxpool_region_get_lease(region, &err);
		SKIP("the kernel refuses leases here (%s)", strerror(-err));
	}
	CHECK_EQ(lease_of(region), DAXPOOL_LEASE_HELD);
	CHECK_EQ(daxpool_region_get_lease_breaks(region), 0);
	daxpool_region_unref(region);

	/* Read-only regions watch nothing. */
	CHECK_OK(daxpool_region_open(ctx, path, DAXPOOL_REGION_RDONLY, &ro));
	CHECK_EQ(lease_of(ro), DAXPOOL_LEASE_NONE);
	daxpool_region_unref(ro);

	/* Turned off for the context. */
	CHECK_ERR(daxpool_ctx_set_leases(ctx, 2), EINVAL);
	CHECK_OK(daxpool_ctx_set_leases(ctx, 0));
	CHECK_OK(daxpool_region_open(ctx, path, 0, &region));
	CHECK_EQ(lease_of(region), DAXPOOL_LEASE_OFF);
	daxpool_region_unref(region);
	daxpool_ctx_unref(ctx);

	CHECK(strcmp(daxpool_lease_state_name(DAXPOOL_LEASE_BROKEN), "broken") == 0);
	CHECK(daxpool_lease_state_name(6) == NULL && daxpool_lease_state_name(-1) == NULL);
	CHECK_ERR(daxpool_region_get_lease(NULL, NULL), EINVAL);
}

TEST(the_environment_turns_leases_off)
{
	const char *path = fixture_backing(REGION_SIZE);
	struct daxpool_region *region;
	struct daxpool_ctx *ctx;

	CHECK(setenv("DAXPOOL_LEASES", "0", 1) == 0);
	CHECK_OK(daxpool_ctx_new(&ctx));
	unsetenv("DAXPOOL_LEASES");
	CHECK_OK(daxpool_region_open(ctx, path, 0, &region));
	CHECK_EQ(lease_of(region), DAXPOOL_LEASE_OFF);
	daxpool_region_unref(region);
	daxpool_ctx_unref(ctx);
}

TEST(a_file_open_elsewhere_gets_no_lease_and_says_why)
{
	const char *path = fixture_backing(REGION_SIZE);
	struct daxpool_region *region;
	struct daxpool_ctx *ctx;
	int err, fd;

	/* Another open file description of the file: the kernel refuses a write lease. */
	fd = open(path, O_RDONLY | O_CLOEXEC);
	CHECK(fd >= 0);
	CHECK_OK(daxpool_ctx_new(&ctx));
	CHECK_OK(daxpool_region_open(ctx, path, 0, &region));
	CHECK_EQ(daxpool_region_get_lease(region, &err), DAXPOOL_LEASE_REFUSED);
	CHECK_EQ(err, -EAGAIN);
	close(fd);
	daxpool_region_unref(region);
	daxpool_ctx_unref(ctx);
}

TEST(an_outsider_truncate_waits_until_the_pins_drained)
{
	const char *path = fixture_backing(REGION_SIZE);
	struct daxpool_region *region;
	struct daxpool_map *late;
	struct daxpool_ctx *ctx;
	struct holder h = { .drop_delay_ms = 300 };
	struct stat st;
	uint64_t t0;
	pid_t pid;

	open_leased(path, &ctx, &region);
	holder_start(region, &h);

	t0 = now_ns();
	pid = outsider(path, -1, 4096);
	reap(pid);
	CHECK_EQ(atomic_load(&shm->outsider_result), 1);
	/* The revoke ran, the pin and map were dropped, and only then did truncate return. */
	CHECK(atomic_load(&shm->revoked_ns) > t0);
	CHECK(atomic_load(&shm->dropped_ns) >= atomic_load(&shm->revoked_ns));
	CHECK(atomic_load(&shm->outsider_ns) >= atomic_load(&shm->dropped_ns));
	printf("# truncate returned %.1f ms after it started; %.1f ms after the last pin went "
	       "(the holder took %u ms to let go)\n",
	       (double)(atomic_load(&shm->outsider_ns) - t0) / 1e6,
	       (double)(atomic_load(&shm->outsider_ns) - atomic_load(&shm->dropped_ns)) / 1e6,
	       h.drop_delay_ms);
	CHECK(stat(path, &st) == 0 && st.st_size == 4096);

	CHECK_EQ(lease_of(region), DAXPOOL_LEASE_BROKEN);
	CHECK_EQ(daxpool_region_get_lease_breaks(region), 1);
	CHECK_ERR(daxpool_map_new(region, 0, 0, 0, &late), ENXIO);
	/* The application reopens the region when the outsider is done: the lease comes back. */
	CHECK_OK(daxpool_region_wait_idle(region, 1000, NULL));
	CHECK(daxpool_region_unzap_range(region, 0, 0) > 0);
	CHECK_EQ(lease_of(region), DAXPOOL_LEASE_HELD);
	holder_finish(&h);
	daxpool_region_unref(region);
	daxpool_ctx_unref(ctx);
}

TEST(an_outsider_open_waits_until_the_pins_drained)
{
	const char *path = fixture_backing(REGION_SIZE);
	struct daxpool_region *region;
	struct daxpool_ctx *ctx;
	struct holder h = { .drop_delay_ms = 200 };
	uint64_t t0;

	open_leased(path, &ctx, &region);
	holder_start(region, &h);

	t0 = now_ns();
	reap(outsider(path, O_RDONLY, 0));
	CHECK_EQ(atomic_load(&shm->outsider_result), 1);
	CHECK(atomic_load(&shm->revoked_ns) > t0);
	CHECK(atomic_load(&shm->outsider_ns) >= atomic_load(&shm->dropped_ns));
	CHECK(atomic_load(&shm->dropped_ns) > 0);
	CHECK_EQ(lease_of(region), DAXPOOL_LEASE_BROKEN);
	holder_finish(&h);
	daxpool_region_unref(region);
	daxpool_ctx_unref(ctx);
}

TEST(a_non_blocking_open_is_refused_but_still_starts_the_drain)
{
	const char *path = fixture_backing(REGION_SIZE);
	struct daxpool_region *region;
	struct daxpool_ctx *ctx;
	struct holder h = { .drop_delay_ms = 0 };

	open_leased(path, &ctx, &region);
	holder_start(region, &h);
	/* The kernel answers EWOULDBLOCK at once, but the break has begun: daxpool drains. */
	reap(outsider(path, O_RDONLY | O_NONBLOCK, 0));
	CHECK_EQ(atomic_load(&shm->outsider_result), 2);
	for (int i = 0; i < 500 && lease_of(region) != DAXPOOL_LEASE_BROKEN; i++)
		msleep(10);
	CHECK_EQ(lease_of(region), DAXPOOL_LEASE_BROKEN);
	CHECK(atomic_load(&shm->dropped_ns) > 0);
	/* The retry goes through without waiting. */
	reap(outsider(path, O_RDONLY | O_NONBLOCK, 0));
	CHECK_EQ(atomic_load(&shm->outsider_result), 1);
	holder_finish(&h);
	daxpool_region_unref(region);
	daxpool_ctx_unref(ctx);
}

TEST_TIMEOUT(a_holder_that_never_lets_go_is_given_up_before_the_break_time, 60)
{
	const char *path = fixture_backing(REGION_SIZE);
	struct daxpool_region *region;
	struct daxpool_ctx *ctx;
	struct holder h = { .never_drop = true };
	int saved = read_break_time();
	double waited;
	uint64_t t0;

	if (saved < 0 || geteuid() != 0 || !write_break_time(3))
		SKIP("cannot set %s (not root?)", LEASE_BREAK_TIME);
	shared_init();
	CHECK_OK(daxpool_ctx_new(&ctx));
	CHECK_OK(daxpool_region_open(ctx, path, 0, &region));
	if (lease_of(region) != DAXPOOL_LEASE_HELD) {
		write_break_time(saved);
		SKIP("no lease on this file system");
	}
	holder_start(region, &h);
	t0 = now_ns();
	reap(outsider(path, O_RDWR, 0));
	write_break_time(saved);
	waited = (double)(atomic_load(&shm->outsider_ns) - t0) / 1e6;
	printf("# the outsider waited %.0f ms (lease-break-time 3 s; daxpool gives up at 2 s)\n",
	       waited);
	/* daxpool drained as long as it could, then let the outsider go before the kernel would. */
	CHECK(waited >= 1500 && waited < 2900);
	CHECK_EQ(lease_of(region), DAXPOOL_LEASE_BROKEN);
	CHECK_EQ(daxpool_pin_is_valid(h.pin), 0);
	pthread_mutex_lock(&h.lock);
	holder_drop_locked(&h);
	pthread_mutex_unlock(&h.lock);
	daxpool_region_unref(region);
	daxpool_ctx_unref(ctx);
}

/*
 * Two leases break nearly at once (the second 500 ms into the first's drain),
 * with holders that never let go: each outsider goes on at its own region's
 * deadline. Drained one after the other, the second would wait for the
 * first's whole drain and then its own, past the kernel's break time: the
 * kernel would break that lease itself, undrained.
 */
TEST_TIMEOUT(two_breaks_are_drained_side_by_side, 60)
{
	struct holder h[2] = { { .never_drop = true }, { .never_drop = true } };
	int saved = read_break_time();
	struct daxpool_region *region[2];
	_Atomic uint64_t *went_on;
	struct daxpool_ctx *ctx;
	char path[2][PATH_MAX];
	uint64_t t0[2];
	pid_t pid[2];

	if (saved < 0 || geteuid() != 0 || !write_break_time(3))
		SKIP("cannot set %s (not root?)", LEASE_BREAK_TIME);
	shared_init();
	went_on = fixture_shared(2 * sizeof(*went_on));
	CHECK_OK(daxpool_ctx_new(&ctx));
	for (int i = 0; i < 2; i++) {
		snprintf(path[i], sizeof(path[i]), "%s", fixture_backing(REGION_SIZE));
		CHECK_OK(daxpool_region_open(ctx, path[i], 0, &region[i]));
		if (lease_of(region[i]) != DAXPOOL_LEASE_HELD) {
			write_break_time(saved);
			SKIP("no lease on this file system");
		}
		holder_start(region[i], &h[i]);
	}
	for (int i = 0; i < 2; i++) {
		if (i)
			msleep(500);
		t0[i] = now_ns();
		pid[i] = fork();
		CHECK(pid[i] >= 0);
		if (pid[i] == 0) {
			int fd = open(path[i], O_RDWR | O_CLOEXEC);

			atomic_store(&went_on[i], now_ns());
			_exit(fd < 0 ? 1 : 0);
		}
	}
	for (int i = 0; i < 2; i++)
		reap(pid[i]);
	write_break_time(saved);
	for (int i = 0; i < 2; i++) {
		double waited = (double)(atomic_load(&went_on[i]) - t0[i]) / 1e6;

		printf("# outsider %d waited %.0f ms (lease-break-time 3 s; daxpool gives up at "
		       "2 s)\n", i, waited);
		CHECK(waited >= 1500 && waited < 2900);
		CHECK_EQ(lease_of(region[i]), DAXPOOL_LEASE_BROKEN);
		CHECK_EQ(daxpool_pin_is_valid(h[i].pin), 0);
		pthread_mutex_lock(&h[i].lock);
		holder_drop_locked(&h[i]);
		pthread_mutex_unlock(&h[i].lock);
		daxpool_region_unref(region[i]);
	}
	daxpool_ctx_unref(ctx);
}

TEST(daxpool_processes_sharing_a_file_are_not_outsiders)
{
	const char *path = fixture_backing(REGION_SIZE);
	struct daxpool_region *region;
	struct daxpool_ctx *ctx;
	struct holder h = { .drop_delay_ms = 0 };
	int err, status;
	pid_t pid;

	open_leased(path, &ctx, &region);
	holder_start(region, &h);

	pid = fork();
	CHECK(pid >= 0);
	if (pid == 0) {
		struct daxpool_region *peer;
		struct daxpool_ctx *pctx;
		struct daxpool_map *map;

		/*
		 * Leases off: the peer still announces itself before it opens, and
		 * starts no thread (a forked child of a threaded parent should not,
		 * under the thread sanitizer).
		 */
		if (daxpool_ctx_new(&pctx) < 0 || daxpool_ctx_set_leases(pctx, 0) < 0 ||
		    daxpool_region_open(pctx, path, 0, &peer) < 0 ||
		    daxpool_map_new(peer, 0, 0, 0, &map) < 0)
			_exit(2);
		if (daxpool_region_get_lease(peer, &err) != DAXPOOL_LEASE_OFF)
			_exit(3);
		daxpool_map_unref(map);
		daxpool_region_unref(peer);
		daxpool_ctx_unref(pctx);
		_exit(0);
	}
	CHECK_EQ(waitpid(pid, &status, 0), pid);
	CHECK(WIFEXITED(status));
	CHECK_EQ(WEXITSTATUS(status), 0);
	/* Nothing was revoked: the lease was handed over, not broken. */
	CHECK_EQ(atomic_load(&shm->revoked_ns), 0);
	CHECK_EQ(daxpool_pin_is_valid(h.pin), 1);
	CHECK_EQ(daxpool_region_get_lease(region, &err), DAXPOOL_LEASE_REFUSED);
	CHECK_EQ(err, -EAGAIN);
	CHECK_EQ(daxpool_region_get_lease_breaks(region), 0);

	/* A second open in this process gives the first one's lease up, no revoke either. */
	pthread_mutex_lock(&h.lock);
	holder_drop_locked(&h);
	pthread_mutex_unlock(&h.lock);
	daxpool_region_unref(region);
	CHECK_OK(daxpool_region_open(ctx, path, 0, &region));
	CHECK_EQ(lease_of(region), DAXPOOL_LEASE_HELD);
	{
		struct daxpool_region *again;

		CHECK_OK(daxpool_region_open(ctx, path, 0, &again));
		CHECK_EQ(lease_of(region), DAXPOOL_LEASE_REFUSED);
		CHECK_EQ(lease_of(again), DAXPOOL_LEASE_REFUSED);
		CHECK_EQ(daxpool_region_get_state(region), DAXPOOL_STATE_LIVE);
		daxpool_region_unref(again);
	}
	daxpool_region_unref(region);
	daxpool_ctx_unref(ctx);
}

TEST(freeing_the_context_stops_the_watcher)
{
	const char *path = fixture_backing(REGION_SIZE);

	/* Many contexts, each with a lease and a watcher: nothing leaks or hangs. */
	for (int i = 0; i < 50; i++) {
		struct daxpool_region *region;
		struct daxpool_ctx *ctx;

		CHECK_OK(daxpool_ctx_new(&ctx));
		CHECK_OK(daxpool_region_open(ctx, path, 0, &region));
		daxpool_ctx_unref(ctx); /* the region holds the context */
		daxpool_region_unref(region);
	}
}

/* What the application holds of a pool: dropped, all of it, when told to let go. */
struct pool_holder {
	struct holder h;
	struct daxpool_pool *pool;
	struct daxpool_extent *ext;
};

static void pool_map_revoked(struct daxpool_map *map, void *userdata)
{
	struct pool_holder *ph = userdata;

	(void)map;
	atomic_store(&shm->revoked_ns, now_ns());
	pthread_mutex_lock(&ph->h.lock);
	holder_drop_locked(&ph->h);
	ph->ext = daxpool_extent_unref(ph->ext);
	ph->pool = daxpool_pool_unref(ph->pool);
	pthread_mutex_unlock(&ph->h.lock);
}

TEST(a_pool_file_keeps_its_lease_and_an_outsider_truncate_drains_it)
{
	const char *path = fixture_backing(REGION_SIZE);
	static struct pool_holder ph;
	struct daxpool_pool_opts *o;
	struct daxpool_region *region;
	struct daxpool_ctx *ctx;
	struct stat st;
	uint64_t t0;

	open_leased(path, &ctx, &region);
	pthread_mutex_init(&ph.h.lock, NULL);
	CHECK_OK(daxpool_pool_opts_new(&o));
	CHECK_OK(daxpool_pool_opts_set_overwrite(o, 1));
	CHECK_OK(daxpool_pool_create(region, "lease-test", o, &ph.pool));
	daxpool_pool_opts_free(o);
	/* The pool's locks use the region's own descriptor: the lease stays. */
	CHECK_EQ(lease_of(region), DAXPOOL_LEASE_HELD);
	/* Under the holder's lock: the revoke function reads these from daxpool's thread. */
	pthread_mutex_lock(&ph.h.lock);
	CHECK_OK(daxpool_extent_alloc(ph.pool, "data", 1 << 20, 0, &ph.ext));
	CHECK_OK(daxpool_extent_map(ph.ext, 0, &ph.h.map));
	CHECK_OK(daxpool_map_set_revoke_fn(ph.h.map, pool_map_revoked, &ph));
	CHECK_OK(daxpool_pin_new(ph.h.map, daxpool_map_get_address(ph.h.map), 4096,
				 DAXPOOL_PIN_LONGTERM, DAXPOOL_PIN_DEVICE_WRITE, &ph.h.pin));
	pthread_mutex_unlock(&ph.h.lock);
	CHECK_EQ(lease_of(region), DAXPOOL_LEASE_HELD);

	t0 = now_ns();
	reap(outsider(path, -1, 0));
	CHECK_EQ(atomic_load(&shm->outsider_result), 1);
	CHECK(atomic_load(&shm->revoked_ns) > t0);
	/* The pool, its extent, map and pin were all gone before the truncate went on. */
	CHECK(atomic_load(&shm->outsider_ns) >= atomic_load(&shm->dropped_ns));
	pthread_mutex_lock(&ph.h.lock);
	CHECK(ph.pool == NULL && ph.ext == NULL && ph.h.map == NULL);
	pthread_mutex_unlock(&ph.h.lock);
	printf("# the truncate of the pool file returned %.1f ms after it started\n",
	       (double)(atomic_load(&shm->outsider_ns) - t0) / 1e6);
	CHECK(atomic_load(&shm->outsider_ns) - t0 < 5000000000ull);
	CHECK(stat(path, &st) == 0 && st.st_size == 0);
	CHECK_EQ(lease_of(region), DAXPOOL_LEASE_BROKEN);
	daxpool_region_unref(region);
	daxpool_ctx_unref(ctx);
}

static void count_revoke(struct daxpool_map *map, void *userdata)
{
	(void)map;
	(void)userdata;
	atomic_fetch_add(&shm->outsider_result, 1); /* here: revokes seen, by anyone */
}

TEST(daxpool_processes_opening_at_once_revoke_nobody)
{
	const char *path = fixture_backing(REGION_SIZE);
	int go[2], status;
	pid_t pids[8];
	char c = 0;

	shared_init();
	CHECK_EQ(pipe(go), 0);
	for (int i = 0; i < 8; i++) {
		pids[i] = fork();
		CHECK(pids[i] >= 0);
		if (pids[i] == 0) {
			struct daxpool_region *region;
			struct daxpool_map *map;
			struct daxpool_ctx *ctx;

			close(go[1]);
			if (read(go[0], &c, 1) != 0) /* all start together, at the close */
				_exit(2);
			/* Whoever opens first takes the lease; the others ask it for the file. */
			if (daxpool_ctx_new(&ctx) < 0 || daxpool_region_open(ctx, path, 0, &region) < 0 ||
			    daxpool_map_new(region, 0, 0, 0, &map) < 0 ||
			    daxpool_map_set_revoke_fn(map, count_revoke, NULL) < 0)
				_exit(3);
			msleep(300); /* everybody has the file open by now */
			_exit(daxpool_map_is_valid(map) == 1 ? 0 : 4);
		}
	}
	close(go[0]);
	close(go[1]);
	for (int i = 0; i < 8; i++) {
		CHECK_EQ(waitpid(pids[i], &status, 0), pids[i]);
		CHECK(WIFEXITED(status));
		CHECK_EQ(WEXITSTATUS(status), 0);
	}
	CHECK_EQ(atomic_load(&shm->outsider_result), 0);
}

/* The abstract unix socket address daxpool's lease rendezvous uses for @what of @path. */
static socklen_t rendezvous_addr(const char *what, const char *path, struct sockaddr_un *sa)
{
	struct stat st;
	int n;

	CHECK(stat(path, &st) == 0);
	memset(sa, 0, sizeof(*sa));
	sa->sun_family = AF_UNIX;
	n = snprintf(sa->sun_path + 1, sizeof(sa->sun_path) - 1, "daxpool-%s-%llx-%llx", what,
		     (unsigned long long)st.st_dev, (unsigned long long)st.st_ino);
	return (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + (size_t)n);
}

/* A listener bound to a rendezvous address that never accepts; -1 if it cannot be. */
static int squat(const struct sockaddr_un *sa, socklen_t len, int backlog)
{
	int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);

	if (fd >= 0 && (bind(fd, (const struct sockaddr *)sa, len) < 0 || listen(fd, backlog) < 0)) {
		close(fd);
		fd = -1;
	}
	return fd;
}

/* In a child: a daxpool process (leases off) that opens @path; returns how long the open took. */
static double peer_open_ms(const char *path)
{
	uint64_t t0 = now_ns();
	pid_t pid = fork();

	CHECK(pid >= 0);
	if (pid == 0) {
		struct daxpool_region *peer;
		struct daxpool_ctx *pctx;

		if (daxpool_ctx_new(&pctx) < 0 || daxpool_ctx_set_leases(pctx, 0) < 0 ||
		    daxpool_region_open(pctx, path, 0, &peer) < 0)
			_exit(2);
		daxpool_region_unref(peer);
		daxpool_ctx_unref(pctx);
		_exit(0);
	}
	reap(pid);
	return (double)(now_ns() - t0) / 1e6;
}

TEST(an_outsider_open_while_the_lease_is_taken_does_not_kill_the_application)
{
	const char *path = fixture_backing(REGION_SIZE);
	int status;
	pid_t pid;

	shared_init();
	pid = fork();
	CHECK(pid >= 0);
	if (pid == 0) {
		struct daxpool_region *region;
		struct daxpool_ctx *ctx;

		/* The take stays in its window (lease granted, take not done) for a second. */
		setenv("DAXPOOL_TEST_LEASE_TAKE_DELAY_MS", "1000", 1);
		if (daxpool_ctx_new(&ctx) < 0 || daxpool_region_open(ctx, path, 0, &region) < 0)
			_exit(2);
		if (daxpool_region_get_lease(region, NULL) == DAXPOOL_LEASE_REFUSED)
			_exit(77);
		/* The outsider opened inside the window: the watcher took the break. */
		for (int i = 0; i < 500 && daxpool_region_get_lease(region, NULL) !=
						   DAXPOOL_LEASE_BROKEN; i++)
			msleep(10);
		_exit(daxpool_region_get_lease(region, NULL) == DAXPOOL_LEASE_BROKEN ? 0 : 3);
	}
	msleep(300); /* the child is inside the take by now */
	reap(outsider(path, O_RDONLY, 0));
	CHECK_EQ(atomic_load(&shm->outsider_result), 1);
	CHECK_EQ(waitpid(pid, &status, 0), pid);
	if (WIFEXITED(status) && WEXITSTATUS(status) == 77)
		SKIP("no lease on this file system");
	if (WIFSIGNALED(status))
		printf("# the application died of signal %d (%s)\n", WTERMSIG(status),
		       strsignal(WTERMSIG(status)));
	CHECK(WIFEXITED(status));
	CHECK_EQ(WEXITSTATUS(status), 0);
}

TEST(a_peer_that_takes_the_last_reference_from_the_watcher)
{
	const char *path = fixture_backing(REGION_SIZE);
	struct daxpool_region *region;
	struct daxpool_ctx *ctx;
	pid_t pid;

	/* The watcher holds its reference for half a second while it yields to a peer. */
	setenv("DAXPOOL_TEST_LEASE_YIELD_DELAY_MS", "500", 1);
	open_leased(path, &ctx, &region);
	daxpool_ctx_unref(ctx); /* the region holds the context */
	pid = fork();
	CHECK(pid >= 0);
	if (pid == 0) {
		struct daxpool_region *peer;
		struct daxpool_ctx *pctx;

		unsetenv("DAXPOOL_TEST_LEASE_YIELD_DELAY_MS");
		if (daxpool_ctx_new(&pctx) < 0 || daxpool_ctx_set_leases(pctx, 0) < 0 ||
		    daxpool_region_open(pctx, path, 0, &peer) < 0)
			_exit(2);
		daxpool_region_unref(peer);
		daxpool_ctx_unref(pctx);
		_exit(0);
	}
	msleep(200); /* the watcher is yielding now */
	/* The watcher's unref is the last: it frees the region and the context. */
	daxpool_region_unref(region);
	reap(pid);
	/* The watcher goes on after freeing the context: it must touch nothing of it (ASan). */
	msleep(600);
	unsetenv("DAXPOOL_TEST_LEASE_YIELD_DELAY_MS");
}

TEST(a_fork_child_does_not_keep_the_lease_listener)
{
	const char *path = fixture_backing(REGION_SIZE);
	struct daxpool_region *region;
	struct daxpool_ctx *ctx;
	double ms;
	pid_t child;

	open_leased(path, &ctx, &region);
	child = fork(); /* never execs: it would keep copies of every descriptor */
	CHECK(child >= 0);
	if (child == 0) {
		msleep(20000);
		_exit(0);
	}
	daxpool_region_unref(region);
	daxpool_ctx_unref(ctx); /* the watcher's copy of the listener goes too */
	/* Nobody listens: a daxpool process opening the file does not wait for an answer. */
	ms = peer_open_ms(path);
	printf("# a daxpool process opened the file in %.1f ms\n", ms);
	kill(child, SIGKILL);
	CHECK_EQ(waitpid(child, NULL, 0), child);
	CHECK(ms < 1000);
}

TEST_TIMEOUT(an_open_does_not_hang_on_a_lease_listener_that_never_accepts, 30)
{
	const char *path = fixture_backing(REGION_SIZE);
	struct daxpool_region *region;
	struct daxpool_ctx *ctx;
	struct sockaddr_un sa;
	socklen_t len = rendezvous_addr("lease", path, &sa);
	int l = squat(&sa, len, 0), c[64], n = 0;
	uint64_t t0;
	double ms;

	/* Its backlog full: a blocking connect would wait for ever. */
	for (; n < 64; n++) {
		c[n] = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
		CHECK(c[n] >= 0);
		if (connect(c[n], (struct sockaddr *)&sa, len) < 0) {
			CHECK_EQ(errno, EAGAIN);
			close(c[n]);
			break;
		}
	}
	CHECK(l >= 0 && n < 64);
	t0 = now_ns();
	CHECK_OK(daxpool_ctx_new(&ctx));
	CHECK_OK(daxpool_region_open(ctx, path, 0, &region));
	ms = (double)(now_ns() - t0) / 1e6;
	printf("# the open took %.0f ms\n", ms);
	CHECK(ms < 5000);
	daxpool_region_unref(region);
	daxpool_ctx_unref(ctx);
	for (int i = 0; i < n; i++)
		close(c[i]);
	close(l);
}

TEST(rendezvous_names_squatted_by_another_user_are_not_waited_for)
{
	const char *path = fixture_backing(REGION_SIZE);
	struct daxpool_region *region;
	struct sockaddr_un sa, lsa;
	socklen_t len = rendezvous_addr("lease", path, &sa);
	socklen_t llen = rendezvous_addr("lease-lock", path, &lsa);
	struct daxpool_ctx *ctx;
	int ready[2];
	uint64_t t0;
	double ms;
	pid_t pid;
	char c;

	if (geteuid() != 0)
		SKIP("needs root to run a process of another user");
	CHECK_EQ(pipe(ready), 0);
	pid = fork();
	CHECK(pid >= 0);
	if (pid == 0) {
		/* Another user binds both names first, and answers nothing. */
		if (setgid(65534) < 0 || setuid(65534) < 0)
			_exit(2);
		if (squat(&sa, len, 8) < 0 || squat(&lsa, llen, 8) < 0 ||
		    write(ready[1], "r", 1) != 1)
			_exit(3);
		msleep(30000);
		_exit(0);
	}
	close(ready[1]);
	CHECK_EQ(read(ready[0], &c, 1), 1);
	close(ready[0]);
	t0 = now_ns();
	CHECK_OK(daxpool_ctx_new(&ctx));
	CHECK_OK(daxpool_region_open(ctx, path, 0, &region));
	ms = (double)(now_ns() - t0) / 1e6;
	printf("# the open took %.0f ms\n", ms);
	kill(pid, SIGKILL);
	CHECK_EQ(waitpid(pid, NULL, 0), pid);
	CHECK(ms < 1000);
	daxpool_region_unref(region);
	daxpool_ctx_unref(ctx);
}

static atomic_int app_signals[2]; /* SIGIO, SIGRTMAX-6: delivered to the application */

static void app_signal(int sig)
{
	atomic_fetch_add(&app_signals[sig == SIGIO ? 0 : 1], 1);
}

/* Send the process @sig while this (its only application) thread blocks it; then unblock. */
static void process_signal_later(int sig, unsigned int pending_ms)
{
	sigset_t set;

	sigemptyset(&set);
	sigaddset(&set, sig);
	CHECK(pthread_sigmask(SIG_BLOCK, &set, NULL) == 0);
	CHECK(kill(getpid(), sig) == 0); /* process-directed: pending until a thread takes it */
	msleep(pending_ms);
	CHECK(pthread_sigmask(SIG_UNBLOCK, &set, NULL) == 0);
}

TEST(the_watcher_leaves_the_application_its_signals)
{
	const char *path = fixture_backing(REGION_SIZE);
	const int sigs[2] = { SIGIO, SIGRTMAX - 6 };
	struct sigaction sa;
	struct daxpool_region *region;
	struct daxpool_ctx *ctx;
	struct holder h = { .drop_delay_ms = 0 };

	open_leased(path, &ctx, &region); /* the watcher runs */
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = app_signal;
	sigemptyset(&sa.sa_mask);
	for (int i = 0; i < 2; i++)
		CHECK(sigaction(sigs[i], &sa, NULL) == 0);
	for (int round = 1; round <= 3; round++)
		for (int i = 0; i < 2; i++) {
			process_signal_later(sigs[i], 100);
			CHECK_EQ(atomic_load(&app_signals[i]), round);
		}

	/* An application signal waiting for its thread while a break comes: both go where they belong. */
	holder_start(region, &h);
	{
		sigset_t set;

		sigemptyset(&set);
		sigaddset(&set, SIGIO);
		CHECK(pthread_sigmask(SIG_BLOCK, &set, NULL) == 0);
		CHECK(kill(getpid(), SIGIO) == 0);
		reap(outsider(path, O_RDONLY, 0));
		CHECK_EQ(atomic_load(&shm->outsider_result), 1);
		CHECK(atomic_load(&shm->outsider_ns) >= atomic_load(&shm->dropped_ns));
		CHECK_EQ(lease_of(region), DAXPOOL_LEASE_BROKEN);
		CHECK(pthread_sigmask(SIG_UNBLOCK, &set, NULL) == 0);
		CHECK_EQ(atomic_load(&app_signals[0]), 4);
	}
	holder_finish(&h);
	daxpool_region_unref(region);
	daxpool_ctx_unref(ctx);
	for (int i = 0; i < 2; i++)
		signal(sigs[i], SIG_DFL);
}
