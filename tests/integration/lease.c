/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * File leases: another process's open or truncate of a region's file waits
 * while daxpool revokes and drains the region; daxpool processes sharing a
 * file are not outsiders; where no lease can be held, the region says why.
 * Real processes, real files (a plain file on the host; ext4 and xfs with
 * -o dax in the vm tier).
 */
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
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
