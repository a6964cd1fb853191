/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * systemd-client: the application of the vm tier's systemd guest
 * (tests/vm/systemd-test.sh). Built against the libdaxpool-dev package and run
 * there as an unprivileged member of the daxpool group, linked to the
 * installed libdaxpool, registered with daxpoold through DAXPOOL_DAEMON.
 *
 *   systemd-client DEVICE CTLDIR
 *
 * It maps DEVICE and pins a page of it (as an RDMA MR would), then goes
 * through two releases, told and telling through files in CTLDIR:
 *   1. "ready" (holding its pid) once registered. The first revoke creates "revoked" and the
 *      holder keeps its map and pin until "letgo" exists (the test restarts
 *      daxpoold in between, so the release fails); then it lets go, waits
 *      until the range is open again and the client has reconnected, maps
 *      and pins again and creates "ready2".
 *   2. The second revoke is answered at once; the release completes, and
 *      a new map must then fail. Exit 0, or 1 with the reason on stderr.
 */
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <daxpool.h>

static const char *ctldir;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cond = PTHREAD_COND_INITIALIZER;
static int revokes;

static void ctl_create(const char *name)
{
	char path[4096];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", ctldir, name);
	f = fopen(path, "w");
	if (f) {
		fprintf(f, "%d\n", (int)getpid());
		fclose(f);
	}
	printf("client: %s\n", name);
	fflush(stdout);
}

static bool ctl_exists(const char *name)
{
	char path[4096];

	snprintf(path, sizeof(path), "%s/%s", ctldir, name);
	return access(path, F_OK) == 0;
}

static void sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

	nanosleep(&ts, NULL);
}

/* Revoke functions run in daxpool's client thread: note it, do not block. */
static void on_pin_revoke(struct daxpool_pin *pin, void *userdata)
{
	(void)pin;
	(void)userdata;
	pthread_mutex_lock(&lock);
	revokes++;
	pthread_cond_broadcast(&cond);
	pthread_mutex_unlock(&lock);
}

static void on_map_revoke(struct daxpool_map *map, void *userdata)
{
	(void)map;
	(void)userdata;
}

static int fail(const char *what, int r)
{
	fprintf(stderr, "client: FAIL: %s: %s\n", what, r < 0 ? strerror(-r) : "unexpected");
	return 1;
}

static int hold(struct daxpool_region *region, struct daxpool_map **map, struct daxpool_pin **pin)
{
	int r = daxpool_map_new(region, 0, daxpool_region_get_alignment(region), 0, map);

	if (r < 0)
		return r;
	daxpool_map_set_tag(*map, "systemd-client holder");
	daxpool_map_set_revoke_fn(*map, on_map_revoke, NULL);
	memset(daxpool_map_get_address(*map), 0x5a, 4096);
	r = daxpool_pin_new(*map, daxpool_map_get_address(*map), 4096, DAXPOOL_PIN_LONGTERM,
			    DAXPOOL_PIN_DEVICE_READ | DAXPOOL_PIN_DEVICE_WRITE, pin);
	if (r < 0)
		return r;
	daxpool_pin_set_owner(*pin, "simulated RDMA MR");
	daxpool_pin_set_revoke_fn(*pin, on_pin_revoke, NULL);
	return 0;
}

/* Wait until the daemon has revoked @n times in all, up to @secs. */
static bool wait_revokes(int n, int secs)
{
	struct timespec until;
	bool ok = true;

	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += secs;
	pthread_mutex_lock(&lock);
	while (revokes < n && ok)
		ok = pthread_cond_timedwait(&cond, &lock, &until) == 0;
	ok = revokes >= n;
	pthread_mutex_unlock(&lock);
	return ok;
}

int main(int argc, char **argv)
{
	struct daxpool_ctx *ctx = NULL;
	struct daxpool_region *region = NULL;
	struct daxpool_map *map = NULL, *m2 = NULL;
	struct daxpool_pin *pin = NULL;
	int r, i;

	if (argc != 3) {
		fprintf(stderr, "usage: systemd-client DEVICE CTLDIR\n");
		return 2;
	}
	ctldir = argv[2];
	setvbuf(stdout, NULL, _IOLBF, 0);
	r = daxpool_ctx_new(&ctx);
	if (r < 0)
		return fail("daxpool_ctx_new", r);
	r = daxpool_ctx_is_daemon_connected(ctx);
	if (r != 1)
		return fail("not connected to daxpoold (DAXPOOL_DAEMON?)", r);
	r = daxpool_region_open(ctx, argv[1], 0, &region);
	if (r < 0)
		return fail("daxpool_region_open", r);
	r = hold(region, &map, &pin);
	if (r < 0)
		return fail("map and pin", r);
	/* The client thread sends the events; give it a moment to. */
	sleep_ms(500);
	ctl_create("ready");

	/* Release 1: hold on until told, across the daemon's restart. */
	if (!wait_revokes(1, 120))
		return fail("no revoke from the first release within 120 s", 0);
	ctl_create("revoked");
	for (i = 0; !ctl_exists("letgo"); i++) {
		if (i > 1200)
			return fail("no letgo within 120 s", 0);
		sleep_ms(100);
	}
	pin = daxpool_pin_unref(pin);
	map = daxpool_map_unref(map);
	printf("client: let go after the first revoke\n");

	/* The release ended without one: the range reopens once idle, and the
	 * client registers again with the new daemon. */
	for (i = 0;; i++) {
		if (daxpool_ctx_is_daemon_connected(ctx) == 1) {
			r = hold(region, &map, &pin);
			if (r == 0)
				break;
			pin = daxpool_pin_unref(pin);
			map = daxpool_map_unref(map);
			if (r != -ENXIO)
				return fail("map and pin after the restart", r);
		}
		if (i > 600)
			return fail("not reconnected and reopened within 60 s", r);
		sleep_ms(100);
	}
	printf("client: reconnected, map and pin again (after %d ms)\n", i * 100);
	sleep_ms(500);
	ctl_create("ready2");

	/* Release 2: let go at once. */
	if (!wait_revokes(2, 120))
		return fail("no revoke from the second release within 120 s", 0);
	pin = daxpool_pin_unref(pin);
	map = daxpool_map_unref(map);
	printf("client: let go after the second revoke\n");
	for (i = 0; !ctl_exists("released"); i++) {
		if (i > 1200)
			return fail("the test did not say released within 120 s", 0);
		sleep_ms(100);
	}
	r = daxpool_map_new(region, 0, 0, 0, &m2);
	m2 = daxpool_map_unref(m2);
	if (r != -ENXIO)
		return fail("a map after the release did not fail with ENXIO", r);
	printf("client: a map after the release fails: %s\n", strerror(-r));
	region = daxpool_region_unref(region);
	ctx = daxpool_ctx_unref(ctx);
	printf("client: done\n");
	return 0;
}
