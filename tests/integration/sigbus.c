/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * A mapping that goes away under the application: daxpool's helpers return
 * an error instead of the process dying of SIGBUS, the region is marked
 * dead, and SIGBUS that is not daxpool's still reaches the application (or
 * kills it, as it would without daxpool).
 */
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <syslog.h>

#include "daxpool.h"
#include "harness.h"

#define SIZE (1u << 20)

struct fixture {
	struct daxpool_ctx *ctx;
	struct daxpool_region *region;
	struct daxpool_map *map;
	char *base;
	const char *path;
};

static struct fixture setup_file(void)
{
	struct fixture f = { 0 };

	CHECK_OK(daxpool_ctx_new(&f.ctx));
	CHECK_OK(daxpool_ctx_set_log_priority(f.ctx, LOG_CRIT));
	/*
	 * The file changes under the map without daxpool knowing: no lease (with
	 * one, this very thread's truncate would wait for its own map to drain;
	 * tests/integration/lease.c covers that side).
	 */
	CHECK_OK(daxpool_ctx_set_leases(f.ctx, 0));
	f.path = fixture_plain_file(SIZE);
	CHECK_OK(daxpool_region_open(f.ctx, f.path, 0, &f.region));
	CHECK_OK(daxpool_map_new(f.region, 0, SIZE, 0, &f.map));
	f.base = daxpool_map_get_address(f.map);
	return f;
}

static void teardown(struct fixture *f)
{
	daxpool_map_unref(f->map);
	daxpool_region_unref(f->region);
	daxpool_ctx_unref(f->ctx);
}

TEST(copy_into_a_file_truncated_underneath_fails_instead_of_killing)
{
	struct fixture f = setup_file();
	struct daxpool_map *m = NULL;
	struct daxpool_pin *p = NULL;
	char buf[64] = "written before the truncate";

	CHECK_OK(daxpool_map_memcpy(f.map, f.base, buf, sizeof(buf), 0));
	CHECK_EQ(daxpool_region_is_dead(f.region), 0);
	/* Another process (here: this one, without daxpool) truncates the file. */
	CHECK_EQ(truncate(f.path, 0), 0);
	CHECK_ERR(daxpool_map_memcpy(f.map, f.base + 4096, buf, sizeof(buf), 0), ENXIO);
	CHECK_EQ(daxpool_region_is_dead(f.region), 1);
	/* Dead: nothing new, and every helper says so. */
	CHECK_ERR(daxpool_map_new(f.region, 0, 4096, 0, &m), ENXIO);
	CHECK_ERR(daxpool_pin_new(f.map, f.base, 1, DAXPOOL_PIN_TRANSIENT, DAXPOOL_PIN_DEVICE_READ,
				  &p), ENXIO);
	CHECK_ERR(daxpool_map_memset(f.map, f.base, 0, 1, 0), ENXIO);
	CHECK_ERR(daxpool_map_persist(f.map, f.base, 1), ENXIO);
	CHECK_ERR(daxpool_map_read(f.map, buf, f.base, 1), ENXIO);
	CHECK(m == NULL && p == NULL);
	teardown(&f);
}

TEST(read_and_persist_of_a_vanished_mapping_fail)
{
	struct fixture f = setup_file();
	char buf[16];

	CHECK_OK(daxpool_map_read(f.map, buf, f.base, sizeof(buf)));
	CHECK_ERR(daxpool_map_read(f.map, buf, f.base - 1, 2), EFAULT);
	CHECK_ERR(daxpool_map_read(f.map, NULL, f.base, 1), EINVAL);
	CHECK_EQ(truncate(f.path, 0), 0);
	CHECK_ERR(daxpool_map_read(f.map, buf, f.base + 8192, sizeof(buf)), ENXIO);
	CHECK_EQ(daxpool_region_is_dead(f.region), 1);
	teardown(&f);

	/* persist (msync of a page past the end of the file) on another region. */
	f = setup_file();
	memset(f.base, 1, SIZE); /* dirty pages the truncate drops */
	CHECK_EQ(truncate(f.path, 0), 0);
	{
		int r = daxpool_map_persist(f.map, f.base, SIZE);

		/* msync of pages beyond the end of a file is not always a fault: both are fine. */
		CHECK(r == 0 || r == -ENXIO || r == -ENOMEM);
	}
	CHECK_ERR(daxpool_map_memset(f.map, f.base, 2, 64, 0), ENXIO);
	teardown(&f);
}

static sigjmp_buf app_jmp;
static volatile sig_atomic_t app_caught;

static void app_handler(int sig)
{
	app_caught++;
	siglongjmp(app_jmp, 1);
}

TEST(a_sigbus_outside_daxpool_reaches_the_application_handler)
{
	struct fixture f = setup_file();
	char buf[8] = "x";

	/* The application's handler first, then daxpool's guard is installed on top of it. */
	signal(SIGBUS, app_handler);
	CHECK_OK(daxpool_map_memcpy(f.map, f.base, buf, 1, 0));
	CHECK_EQ(truncate(f.path, 0), 0);
	if (sigsetjmp(app_jmp, 1) == 0)
		*(volatile char *)(f.base + 4096) = 1; /* not through daxpool */
	CHECK_EQ(app_caught, 1);
	/* And a guarded access still returns an error. */
	CHECK_ERR(daxpool_map_memcpy(f.map, f.base, buf, 1, 0), ENXIO);
	CHECK_EQ(app_caught, 1);
	teardown(&f);
}

TEST_SIGNAL(a_sigbus_outside_daxpool_still_kills_without_a_handler, SIGBUS)
{
	struct fixture f = setup_file();
	char buf[8] = "x";

	CHECK_OK(daxpool_map_memcpy(f.map, f.base, buf, 1, 0)); /* installs the guard */
	CHECK_EQ(truncate(f.path, 0), 0);
	*(volatile char *)(f.base + 4096) = 1;
	printf("# survived a SIGBUS that should have killed\n");
}

/* vm tier: a devdax device disabled without daxpool (no pins: never with pins). */
TEST(devdax_disabled_underneath)
{
	const char *dev = getenv("DAXPOOL_TEST_DEVDAX");
	struct daxpool_region *region;
	struct daxpool_ctx *ctx;
	struct daxpool_map *map;
	char cmd[128], buf[32] = "before the unplug";
	const char *name;

	if (fixture_backing_kind() != FIXTURE_DEVDAX)
		SKIP("runs on the devdax backing only");
	if (!dev || !*dev)
		fixture_missing("a devdax device (DAXPOOL_TEST_DEVDAX)");
	name = strrchr(dev, '/') ? strrchr(dev, '/') + 1 : dev;
	CHECK_OK(daxpool_ctx_new(&ctx));
	CHECK_OK(daxpool_ctx_set_log_priority(ctx, LOG_CRIT));
	CHECK_OK(daxpool_region_open(ctx, dev, 0, &region));
	CHECK_OK(daxpool_map_new(region, 0, daxpool_region_get_alignment(region), 0, &map));
	CHECK_OK(daxpool_map_memcpy(map, daxpool_map_get_address(map), buf, sizeof(buf), 0));
	snprintf(cmd, sizeof(cmd), "daxctl disable-device %s >/dev/null 2>&1", name);
	CHECK_EQ(system(cmd), 0);
	CHECK_ERR(daxpool_map_memcpy(map, daxpool_map_get_address(map), buf, sizeof(buf), 0), ENXIO);
	CHECK_ERR(daxpool_map_read(map, buf, daxpool_map_get_address(map), sizeof(buf)), ENXIO);
	CHECK_EQ(daxpool_region_is_dead(region), 1);
	/* No new mapping of the disabled node: the kernel would oops. */
	{
		struct daxpool_map *m = NULL;

		CHECK_ERR(daxpool_map_new(region, 0, daxpool_region_get_alignment(region), 0, &m),
			  ENXIO);
	}
	daxpool_map_unref(map);
	daxpool_region_unref(region);
	daxpool_ctx_unref(ctx);
	snprintf(cmd, sizeof(cmd), "daxctl enable-device %s >/dev/null 2>&1", name);
	CHECK_EQ(system(cmd), 0);
}

static sigjmp_buf probe_jmp;

static void probe_handler(int sig)
{
	(void)sig;
	siglongjmp(probe_jmp, 1);
}

/* Whether this CPU's cache-line flush of a vanished page faults (an emulated one may not). */
static bool flush_faults(void *addr)
{
	struct sigaction sa, old;
	volatile bool faulted = false;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = probe_handler;
	sigemptyset(&sa.sa_mask);
	CHECK(sigaction(SIGBUS, &sa, &old) == 0);
	if (sigsetjmp(probe_jmp, 1) == 0) {
#if defined(__x86_64__) || defined(__i386__)
		__builtin_ia32_clflush(addr);
#else
		(void)addr;
#endif
	} else {
		faulted = true;
	}
	CHECK(sigaction(SIGBUS, &old, NULL) == 0);
	return faulted;
}

/* A persist of an unaligned range flushes from the start of its first cache line. */
TEST(an_unaligned_persist_of_a_vanished_mapping_fails_instead_of_killing)
{
	struct fixture f;

	/* libpmem2 flushes cache lines (as on DAX) instead of msync() on this plain file. */
	setenv("PMEM2_FORCE_GRANULARITY", "CACHE_LINE", 1);
	f = setup_file();
	unsetenv("PMEM2_FORCE_GRANULARITY");
	if (daxpool_map_get_granularity(f.map) != DAXPOOL_GRANULARITY_CACHE_LINE)
		SKIP("libpmem2 does not force cache-line granularity here");
	memset(f.base, 1, 3 * 4096);
	CHECK_EQ(truncate(f.path, 0), 0);
	if (!flush_faults(f.base + 2 * 4096))
		SKIP("a cache-line flush of a vanished page does not fault on this CPU (emulated?)");
	/* The flush faults at f.base + 4096, 8 bytes before the range asked for. */
	CHECK_ERR(daxpool_map_persist(f.map, f.base + 4096 + 8, 16), ENXIO);
	CHECK_EQ(daxpool_region_is_dead(f.region), 1);
	teardown(&f);
}

TEST_SIGNAL(a_kill_sigbus_still_kills_without_a_handler, SIGBUS)
{
	struct fixture f = setup_file();
	char buf[8] = "x";

	CHECK_OK(daxpool_map_memcpy(f.map, f.base, buf, 1, 0)); /* installs the guard */
	kill(getpid(), SIGBUS);
	printf("# survived a kill(SIGBUS) that should have killed\n");
}

TEST(an_ignored_kill_sigbus_stays_ignored_and_the_guard_stays)
{
	struct fixture f = setup_file();
	char buf[8] = "x";

	signal(SIGBUS, SIG_IGN);
	CHECK_OK(daxpool_map_memcpy(f.map, f.base, buf, 1, 0)); /* installs the guard on top */
	CHECK_EQ(kill(getpid(), SIGBUS), 0);
	/* The guard still turns a fault into an error. */
	CHECK_EQ(truncate(f.path, 0), 0);
	CHECK_ERR(daxpool_map_memcpy(f.map, f.base + 4096, buf, 1, 0), ENXIO);
	teardown(&f);
}

static atomic_int app_queued;
static atomic_bool sent_all;
static pid_t target_tid;
static void *target_addr;

static void app_info_handler(int sig, siginfo_t *si, void *uc)
{
	(void)sig, (void)uc;
	if (si->si_code == SI_QUEUE)
		atomic_fetch_add(&app_queued, 1);
}

/* Queue SIGBUS at the target thread 20 times, with si_addr forged to point into its map. */
static void *send_sigbus(void *arg)
{
	(void)arg;
	for (int i = 0; i < 20; i++) {
		siginfo_t si;

		memset(&si, 0, sizeof(si));
		si.si_signo = SIGBUS;
		si.si_code = SI_QUEUE;
		si.si_addr = target_addr; /* shares its bytes with a sender's pid and uid */
		if (syscall(SYS_rt_tgsigqueueinfo, getpid(), target_tid, SIGBUS, &si) < 0) {
			atomic_store(&sent_all, true);
			return (void *)1;
		}
		usleep(5000);
	}
	atomic_store(&sent_all, true);
	return NULL;
}

TEST(a_queued_sigbus_inside_a_guard_reaches_the_application)
{
	struct fixture f = setup_file();
	struct sigaction sa;
	char *buf = malloc(SIZE);
	void *ret = (void *)1;
	pthread_t t;

	CHECK(buf != NULL);
	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = app_info_handler;
	sa.sa_flags = SA_SIGINFO;
	sigemptyset(&sa.sa_mask);
	CHECK(sigaction(SIGBUS, &sa, NULL) == 0);
	CHECK_OK(daxpool_map_read(f.map, buf, f.base, SIZE)); /* installs the guard on top */
	target_tid = (pid_t)syscall(SYS_gettid);
	target_addr = f.base + 4096;
	CHECK(pthread_create(&t, NULL, send_sigbus, NULL) == 0);
	/*
	 * Nearly all of this loop runs inside a guard of the whole map: the
	 * signals land there (SIGBUS is not queued: one sent while another is
	 * pending is lost, so not every one is counted).
	 */
	while (!atomic_load(&sent_all))
		CHECK_OK(daxpool_map_read(f.map, buf, f.base, SIZE));
	CHECK(pthread_join(t, &ret) == 0);
	CHECK(ret == NULL);
	printf("# %d of 20 queued SIGBUS reached the application's handler\n",
	       atomic_load(&app_queued));
	CHECK(atomic_load(&app_queued) > 0);
	CHECK_EQ(daxpool_region_is_dead(f.region), 0);
	free(buf);
	teardown(&f);
}
