/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * fork(): inherited handles are foreign in the child, the child makes its
 * own, the parent's pinned memory stays where the device writes it, and
 * fork is safe while other threads pin, unpin and zap.
 */
#include <dirent.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdatomic.h>
#include <sys/wait.h>
#include <syslog.h>
#include <time.h>

#include "daxpool.h"
#include "harness.h"

#define REGION_SIZE (16ull << 20)

extern char **environ;

struct fixture {
	struct daxpool_ctx *ctx;
	struct daxpool_region *region;
	struct daxpool_map *map;
	struct daxpool_pin *pin;
	char *base;
	const char *path;
};

static struct fixture setup(unsigned int map_flags)
{
	struct fixture f = { 0 };

	CHECK_OK(daxpool_ctx_new(&f.ctx));
	CHECK_OK(daxpool_ctx_set_log_priority(f.ctx, LOG_CRIT));
	f.path = fixture_backing(REGION_SIZE);
	CHECK_OK(daxpool_region_open(f.ctx, f.path, 0, &f.region));
	CHECK_OK(daxpool_map_new(f.region, 0,
				 daxpool_region_get_alignment(f.region) > 65536
					 ? daxpool_region_get_alignment(f.region)
					 : 65536,
				 map_flags, &f.map));
	f.base = daxpool_map_get_address(f.map);
	CHECK_OK(daxpool_pin_new(f.map, f.base, 4096, DAXPOOL_PIN_LONGTERM,
				 DAXPOOL_PIN_DEVICE_WRITE, &f.pin));
	return f;
}

static void teardown(struct fixture *f)
{
	daxpool_pin_unref(f->pin);
	daxpool_map_unref(f->map);
	CHECK_EQ(daxpool_region_get_pin_count(f->region, 0), 0);
	daxpool_region_unref(f->region);
	daxpool_ctx_unref(f->ctx);
}

static int wait_child(pid_t pid)
{
	int status;

	CHECK_EQ(waitpid(pid, &status, 0), pid);
	if (WIFSIGNALED(status))
		return 1000 + WTERMSIG(status);
	return WEXITSTATUS(status);
}

/* In a child: exit with the line number of the first failed expectation. */
#define CHILD_CHECK(cond)                                                                          \
	do {                                                                                       \
		if (!(cond))                                                                       \
			_exit(__LINE__ % 250 + 1);                                                 \
	} while (0)

static void child_uses_its_own(const char *path)
{
	struct daxpool_region *region;
	struct daxpool_ctx *ctx;
	struct daxpool_map *map;
	struct daxpool_pin *pin;

	CHILD_CHECK(daxpool_ctx_new(&ctx) == 0);
	CHILD_CHECK(daxpool_region_open(ctx, path, 0, &region) == 0);
	CHILD_CHECK(daxpool_map_new(region, 0, 0, 0, &map) == 0);
	CHILD_CHECK(daxpool_map_is_exclusive(map) == 1);
	CHILD_CHECK(daxpool_pin_new(map, daxpool_map_get_address(map), 4096, DAXPOOL_PIN_TRANSIENT,
				    DAXPOOL_PIN_DEVICE_READ, &pin) == 0);
	/* The child's registry has its own pin only. */
	CHILD_CHECK(daxpool_ctx_lookup_pins(ctx, daxpool_map_get_address(map), 4096, NULL, NULL) == 1);
	daxpool_pin_unref(pin);
	CHILD_CHECK(daxpool_region_zap(region) == 1);
	daxpool_map_unref(map);
	CHILD_CHECK(daxpool_region_wait_idle(region, 1000, NULL) == 0);
	daxpool_region_unref(region);
	daxpool_ctx_unref(ctx);
}

TEST(inherited_handles_are_foreign_in_the_child)
{
	struct fixture f = setup(0);
	pid_t pid;

	CHECK_EQ(daxpool_map_is_exclusive(f.map), 1);
	pid = fork();
	CHECK(pid >= 0);
	if (pid == 0) {
		struct daxpool_region *r = NULL;
		struct daxpool_map *m = NULL;
		struct daxpool_pin *p = NULL;
		char buf[8] = "x";

		CHILD_CHECK(daxpool_map_is_exclusive(f.map) == 0);
		CHILD_CHECK(daxpool_region_open(f.ctx, f.path, 0, &r) == -ESTALE);
		CHILD_CHECK(daxpool_map_new(f.region, 0, 0, 0, &m) == -ESTALE);
		CHILD_CHECK(daxpool_pin_new(f.map, f.base, 1, DAXPOOL_PIN_TRANSIENT,
					    DAXPOOL_PIN_DEVICE_READ, &p) == -ESTALE);
		CHILD_CHECK(daxpool_map_memcpy(f.map, f.base, buf, 1, 0) == -ESTALE);
		CHILD_CHECK(daxpool_map_persist(f.map, f.base, 1) == -ESTALE);
		CHILD_CHECK(daxpool_map_is_valid(f.map) == -ESTALE);
		CHILD_CHECK(daxpool_pin_is_valid(f.pin) == -ESTALE);
		CHILD_CHECK(daxpool_region_zap(f.region) == -ESTALE);
		CHILD_CHECK(daxpool_region_wait_idle(f.region, 0, NULL) == -ESTALE);
		CHILD_CHECK(daxpool_region_release(f.region) == -ESTALE);
		CHILD_CHECK(daxpool_region_get_state(f.region) == -ESTALE);
		CHILD_CHECK(daxpool_region_get_pin_count(f.region, 0) == -ESTALE);
		CHILD_CHECK(daxpool_ctx_lookup_pins(f.ctx, f.base, 1, NULL, NULL) == -ESTALE);
		CHILD_CHECK(daxpool_ctx_is_pinned(f.ctx, f.base, 1) == -ESTALE);
		CHILD_CHECK(daxpool_pin_try_ref(f.pin) == NULL);
		CHILD_CHECK(daxpool_map_pread(f.map, 0, f.base, 1, 0) == -ESTALE);
		CHILD_CHECK(r == NULL && m == NULL && p == NULL);
		/* Plain values still answer; unref does nothing to the parent's objects. */
		CHILD_CHECK(daxpool_region_get_size(f.region) == REGION_SIZE ||
			    fixture_backing_kind() == FIXTURE_DEVDAX);
		CHILD_CHECK(daxpool_pin_unref(f.pin) == NULL);
		CHILD_CHECK(daxpool_map_unref(f.map) == NULL);
		CHILD_CHECK(daxpool_region_unref(f.region) == NULL);
		CHILD_CHECK(daxpool_ctx_unref(f.ctx) == NULL);
		child_uses_its_own(f.path);
		_exit(0);
	}
	CHECK_EQ(wait_child(pid), 0);
	/* The parent's handles are untouched by the child. */
	CHECK_EQ(daxpool_map_is_exclusive(f.map), 1);
	CHECK_EQ(daxpool_pin_is_valid(f.pin), 1);
	CHECK_EQ(daxpool_region_get_pin_count(f.region, DAXPOOL_PIN_LONGTERM), 1);
	CHECK_EQ(daxpool_ctx_is_pinned(f.ctx, f.base, 1), 1);
	teardown(&f);
}

/* A file with 'D' everywhere, opened O_DIRECT: what the device brings in. */
static int device_data(void)
{
	int fd = fixture_odirect_file(4096);
	char *page;

	CHECK_EQ(posix_memalign((void **)&page, 4096, 4096), 0);
	memset(page, 'D', 4096);
	CHECK_EQ(pwrite(fd, page, 4096, 0), 4096);
	free(page);
	return fd;
}

/*
 * The parent's DMA target does not move: a private buffer is pinned, the
 * child writes its copy, then the device (an O_DIRECT read) writes the
 * parent's buffer, and the parent sees the device's data.
 */
static void dma_after_child_wrote(int protection)
{
	struct fixture f;
	int fd, rc;
	pid_t pid;

	if (fixture_backing_kind() == FIXTURE_DEVDAX)
		SKIP("device-dax has no private mappings (nothing to copy on write)");
	f = setup(DAXPOOL_MAP_PRIVATE);
	CHECK_OK(daxpool_ctx_set_fork_protection(f.ctx, protection));
	/* The pin of setup() predates the mode: pin again under it. */
	daxpool_pin_unref(f.pin);
	memset(f.base, 'P', 4096); /* the parent's own (copied-on-write) page */
	CHECK_OK(daxpool_pin_new(f.map, f.base, 4096, DAXPOOL_PIN_LONGTERM,
				 DAXPOOL_PIN_DEVICE_WRITE, &f.pin));
	fd = device_data();

	pid = fork();
	CHECK(pid >= 0);
	if (pid == 0) {
		signal(SIGSEGV, SIG_DFL); /* sanitizers catch it otherwise */
		f.base[0] = 'C'; /* SIGSEGV when protected: the range is not in the child */
		_exit(f.base[0] == 'C' ? 0 : 2);
	}
	rc = wait_child(pid);
	CHECK_EQ(daxpool_map_pread(f.map, fd, f.base, 4096, 0), 4096);
	CHECK_EQ(f.base[0], 'D');
	CHECK_EQ(f.base[4095], 'D');
	if (daxpool_ctx_get_fork_protection(f.ctx) == 1) {
		CHECK_EQ(rc, 1000 + SIGSEGV);
		printf("# protected: the child got SIGSEGV on the pinned private range\n");
		/* After the last pin, children inherit the range again. */
		f.pin = daxpool_pin_unref(f.pin);
		pid = fork();
		CHECK(pid >= 0);
		if (pid == 0) {
			f.base[0] = 'C';
			_exit(0);
		}
		CHECK_EQ(wait_child(pid), 0);
	} else {
		CHECK_EQ(rc, 0);
		printf("# unprotected: the kernel copies pinned pages at fork; the child wrote its copy\n");
	}
	close(fd);
	teardown(&f);
}

TEST(odirect_into_pinned_private_buffer_lands_in_the_parent_auto)
{
	dma_after_child_wrote(DAXPOOL_FORK_PROTECT_AUTO);
}

TEST(odirect_into_pinned_private_buffer_lands_in_the_parent_protected)
{
	dma_after_child_wrote(DAXPOOL_FORK_PROTECT_ALWAYS);
}

TEST(fork_protection_modes)
{
	struct daxpool_ctx *ctx;

	CHECK_OK(daxpool_ctx_new(&ctx));
	CHECK_OK(daxpool_ctx_set_fork_protection(ctx, DAXPOOL_FORK_PROTECT_ALWAYS));
	CHECK_EQ(daxpool_ctx_get_fork_protection(ctx), 1);
	CHECK_OK(daxpool_ctx_set_fork_protection(ctx, DAXPOOL_FORK_PROTECT_NEVER));
	CHECK_EQ(daxpool_ctx_get_fork_protection(ctx), 0);
	CHECK_OK(daxpool_ctx_set_fork_protection(ctx, DAXPOOL_FORK_PROTECT_AUTO));
	/* Every kernel this project runs on (5.13 and later) copies pinned pages itself. */
	CHECK_EQ(daxpool_ctx_get_fork_protection(ctx), 0);
	CHECK_ERR(daxpool_ctx_set_fork_protection(ctx, 7), EINVAL);
	CHECK_ERR(daxpool_ctx_set_fork_protection(NULL, 0), EINVAL);
	daxpool_ctx_unref(ctx);
}

TEST(spawn_and_vfork_exec_work_with_pins)
{
	struct fixture f = setup(0);
	char *argv[] = { (char *)"true", NULL };
	pid_t pid;

	CHECK_EQ(posix_spawnp(&pid, "true", NULL, NULL, argv, environ), 0);
	CHECK_EQ(wait_child(pid), 0);
	pid = vfork();
	CHECK(pid >= 0);
	if (pid == 0) {
		execlp("true", "true", (char *)NULL);
		_exit(127);
	}
	CHECK_EQ(wait_child(pid), 0);
	CHECK_EQ(daxpool_pin_is_valid(f.pin), 1);
	teardown(&f);
}

static int thread_count(void)
{
	DIR *d = opendir("/proc/self/task");
	int n = 0;

	if (!d)
		return -1;
	for (struct dirent *e; (e = readdir(d));)
		n += e->d_name[0] != '.';
	closedir(d);
	return n;
}

/*
 * The parent's unpinned pins wait for grace periods (and its reclaim thread
 * runs them); the child, whose readers are the forking thread only, starts
 * with those ended: its own pins and unpins, fewer than a batch, start no
 * thread (which the child of a multi-threaded process should not need).
 */
TEST(a_child_pins_and_unpins_without_starting_a_thread)
{
	struct fixture f = setup(0);
	pid_t pid;

	/* Three batches of unlinked pins wait, a fourth fills: the reclaim thread runs. */
	for (int i = 0; i < 1000; i++) {
		struct daxpool_pin *pin;

		CHECK_OK(daxpool_pin_new(f.map, f.base + (size_t)(i % 16) * 4096, 4096,
					 DAXPOOL_PIN_TRANSIENT, DAXPOOL_PIN_DEVICE_WRITE, &pin));
		daxpool_pin_unref(pin);
	}
	CHECK(thread_count() > 1);
	pid = fork();
	CHECK(pid >= 0);
	if (pid == 0) {
		struct daxpool_region *region;
		struct daxpool_ctx *ctx;
		struct daxpool_map *map;

		alarm(20);
		CHILD_CHECK(thread_count() == 1);
		CHILD_CHECK(daxpool_ctx_new(&ctx) == 0);
		CHILD_CHECK(daxpool_region_open(ctx, f.path, 0, &region) == 0);
		CHILD_CHECK(daxpool_map_new(region, 0, 0, 0, &map) == 0);
		for (int i = 0; i < 200; i++) {
			struct daxpool_pin *pin;

			CHILD_CHECK(daxpool_pin_new(map, (char *)daxpool_map_get_address(map) +
							      (size_t)(i % 16) * 4096,
						    4096, DAXPOOL_PIN_TRANSIENT,
						    DAXPOOL_PIN_DEVICE_WRITE, &pin) == 0);
			daxpool_pin_unref(pin);
		}
		CHILD_CHECK(thread_count() == 1);
		daxpool_map_unref(map);
		daxpool_region_unref(region);
		daxpool_ctx_unref(ctx);
		CHILD_CHECK(thread_count() == 1);
		_exit(0);
	}
	CHECK_EQ(wait_child(pid), 0);
	teardown(&f);
}

/* ---- fork while other threads pin, unpin, look up and zap ---- */

struct churn {
	struct daxpool_ctx *ctx;
	struct daxpool_map *map;
	char *base;
	atomic_bool stop;
	atomic_long ops;
};

static void *churn_pins(void *arg)
{
	struct churn *c = arg;
	unsigned int seed = (unsigned int)(uintptr_t)&seed;

	while (!atomic_load(&c->stop)) {
		struct daxpool_pin *pin;
		size_t off = (size_t)(rand_r(&seed) % 16) * 4096;

		if (daxpool_pin_new(c->map, c->base + off, 4096, DAXPOOL_PIN_TRANSIENT,
				    DAXPOOL_PIN_DEVICE_WRITE, &pin) == 0) {
			daxpool_ctx_is_pinned(c->ctx, c->base, 65536);
			daxpool_pin_unref(pin);
		}
		atomic_fetch_add(&c->ops, 1);
	}
	return NULL;
}

static void *churn_maps(void *arg)
{
	struct churn *c = arg;
	struct daxpool_region *region = daxpool_map_get_region(c->map);

	while (!atomic_load(&c->stop)) {
		struct daxpool_map *m;

		/* Map, zap a range of it, wait, reopen: every lock and the libpmem2 path. */
		if (daxpool_map_new(region, 0, daxpool_region_get_alignment(region), 0, &m) == 0)
			daxpool_map_unref(m);
		atomic_fetch_add(&c->ops, 1);
	}
	return NULL;
}

/* 1,000 on the host; the vm tier runs under software emulation, where 100 prove the same. */
#define FORKS (getenv("DAXPOOL_TEST_TIER") && !strcmp(getenv("DAXPOOL_TEST_TIER"), "vm") ? 100 : 1000)
/*
 * A fork of a sanitized process copies the page tables of its shadow memory:
 * on a busy machine 1,000 of them outlast the test's timeout. Past this many
 * seconds, and once MIN_FORKS are done, the loop stops and says how far it got.
 */
#define FORK_BUDGET_S 90
#define MIN_FORKS 100

static double seconds_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

TEST_TIMEOUT(fork_while_other_threads_pin_unpin_and_map, 240)
{
	struct fixture f = setup(0);
	struct churn c = { .ctx = f.ctx, .map = f.map, .base = f.base };
	pthread_t th[3];
	int failures = 0, forks = FORKS, done = 0;
	double start = seconds_now();

	if (daxpool_map_get_length(f.map) < 65536)
		SKIP("needs 64 KiB maps");
	CHECK_EQ(pthread_create(&th[0], NULL, churn_pins, &c), 0);
	CHECK_EQ(pthread_create(&th[1], NULL, churn_pins, &c), 0);
	CHECK_EQ(pthread_create(&th[2], NULL, churn_maps, &c), 0);
	for (int i = 0; i < forks; i++, done++) {
		pid_t pid;

		if (i >= MIN_FORKS && seconds_now() - start > FORK_BUDGET_S)
			break;
		pid = fork();

		CHECK(pid >= 0);
		if (pid == 0) {
			/* A deadlock in the child would hang here: the alarm turns it into a failure. */
			alarm(20);
			CHILD_CHECK(daxpool_map_is_exclusive(f.map) == 0);
			CHILD_CHECK(daxpool_pin_new(f.map, f.base, 1, DAXPOOL_PIN_TRANSIENT,
						    DAXPOOL_PIN_DEVICE_READ, &(struct daxpool_pin *){ NULL }) ==
				    -ESTALE);
			if (i % 10 == 0)
				child_uses_its_own(f.path);
			_exit(0);
		}
		if (wait_child(pid) != 0)
			failures++;
	}
	atomic_store(&c.stop, true);
	for (int i = 0; i < 3; i++)
		pthread_join(th[i], NULL);
	printf("# %d of %d forks (budget %d s) during %ld pin/unpin/map operations; "
	       "%d children failed\n", done, forks, FORK_BUDGET_S, atomic_load(&c.ops), failures);
	CHECK_EQ(failures, 0);
	/* Nothing leaked: only the fixture's pin remains. */
	CHECK_EQ(daxpool_region_get_pin_count(f.region, 0), 1);
	CHECK_EQ(daxpool_region_get_map_count(f.region), 1);
	teardown(&f);
}
