/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * daxpool-demo: the quick-start walk-through.
 *
 * Opens a region (by default a 64 MiB file-backed one in $TMPDIR, the embedded
 * default; or the device or file given on the command line), formats it as a
 * pool, allocates a named extent, maps it, writes and persists, and pins part
 * of it for an O_DIRECT read. Then the zap-then-wait lifecycle: a holder
 * thread keeps the map and the pin, someone zaps the region, the holder is
 * asked to let go through its revoke functions, and the region is released
 * only when it is idle.
 *
 * Who zaps: with daxpoold (DAXPOOL_DAEMON set, as tools/dev/quickstart runs
 * it), another process does, with "daxpoolctl release"; the demo tells it
 * when it is ready by creating the file named by DAXPOOL_DEMO_READY. Without
 * the daemon the demo zaps the region itself.
 */
#define _GNU_SOURCE /* O_DIRECT */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include <daxpool.h>

#define DEMO_SIZE (64u << 20)

struct holder {
	struct daxpool_map *map;
	struct daxpool_pin *pin;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	bool revoked;
};

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void tell_holder(struct holder *h, const char *what)
{
	printf("  revoke: the holder is asked to give back its %s\n", what);
	pthread_mutex_lock(&h->lock);
	h->revoked = true;
	pthread_cond_signal(&h->cond);
	pthread_mutex_unlock(&h->lock);
}

/* Both run in the zapping thread (the demo's, or daxpool's daemon client): tell, do not block. */
static void on_pin_revoke(struct daxpool_pin *pin, void *userdata)
{
	(void)pin;
	tell_holder(userdata, "pin (its I/O must stop first)");
}

static void on_map_revoke(struct daxpool_map *map, void *userdata)
{
	(void)map;
	tell_holder(userdata, "map");
}

static void *holder_thread(void *arg)
{
	struct holder *h = arg;
	struct timespec finish = { 0, 200 * 1000000L };

	pthread_mutex_lock(&h->lock);
	while (!h->revoked)
		pthread_cond_wait(&h->cond, &h->lock);
	pthread_mutex_unlock(&h->lock);
	printf("  holder: finishing the I/O in flight (200 ms), then dropping the pin and the map\n");
	nanosleep(&finish, NULL);
	h->pin = daxpool_pin_unref(h->pin); /* a device-write pin: persisted here */
	h->map = daxpool_map_unref(h->map);
	return NULL;
}

static int make_file(const char *dir, const char *name, size_t size, char *path, size_t len)
{
	int fd;

	snprintf(path, len, "%s/%s-XXXXXX", dir, name);
	fd = mkstemp(path);
	if (fd < 0)
		return -errno;
	if (ftruncate(fd, (off_t)size) < 0) {
		int r = -errno;

		close(fd);
		unlink(path);
		return r;
	}
	return fd;
}

/* A 4 KiB O_DIRECT read from a data file into the extent, pinned for the I/O. */
static void odirect_into(struct daxpool_map *map, const char *dir)
{
	char path[4096];
	int fd = make_file(dir, "daxpool-demo-data", 4096, path, sizeof(path));
	ssize_t n;

	if (fd < 0)
		return;
	n = pwrite(fd, "data from the disk, by DMA", 27, 0);
	close(fd);
	fd = open(path, O_RDONLY | O_DIRECT);
	unlink(path);
	if (n != 27 || fd < 0) {
		printf("3. (no O_DIRECT on %s: skipped the pinned read)\n", dir);
		if (fd >= 0)
			close(fd);
		return;
	}
	n = daxpool_map_pread(map, fd, (char *)daxpool_map_get_address(map) + 4096, 4096, 0);
	printf("3. O_DIRECT read of %zd bytes into the extent, pinned while the kernel wrote it: "
	       "\"%s\"\n", n, (char *)daxpool_map_get_address(map) + 4096);
	close(fd);
}

int main(int argc, char **argv)
{
	struct holder h = { .lock = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER };
	const char *tmp = getenv("TMPDIR") && *getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
	const char *ready = getenv("DAXPOOL_DEMO_READY");
	struct daxpool_region *region = NULL;
	struct daxpool_extent *ext = NULL;
	struct daxpool_pool *pool = NULL;
	struct daxpool_ctx *ctx = NULL;
	char path[4096], *report = NULL;
	bool temp = argc < 2, daemon = false, joined = true;
	pthread_t th;
	double t0;
	int r;

	setvbuf(stdout, NULL, _IOLBF, 0);
	if (temp) {
		r = make_file(tmp, "daxpool-demo", DEMO_SIZE, path, sizeof(path));
		if (r < 0) {
			fprintf(stderr, "daxpool-demo: cannot create a backing file: %s\n", strerror(-r));
			return 1;
		}
		close(r);
	} else {
		snprintf(path, sizeof(path), "%s", argv[1]);
	}

	/* DAXPOOL_DAEMON in the environment connects the context to daxpoold. */
	r = daxpool_ctx_new(&ctx);
	if (r < 0)
		goto out;
	daemon = daxpool_ctx_is_daemon_connected(ctx) == 1;
	r = daxpool_region_open(ctx, path, 0, &region);
	if (r < 0)
		goto out;
	printf("1. opened %s: %s region, %llu MiB, alignment %llu, persistence %s%s\n", path,
	       daxpool_region_kind_name(daxpool_region_get_kind(region)),
	       (unsigned long long)(daxpool_region_get_size(region) >> 20),
	       (unsigned long long)daxpool_region_get_alignment(region),
	       daxpool_granularity_name(daxpool_region_get_granularity(region)),
	       daemon ? "; registered with daxpoold" : "");

	{
		struct daxpool_pool_opts *opts = NULL;

		r = daxpool_pool_opts_new(&opts);
		if (r == 0)
			r = daxpool_pool_opts_set_overwrite(opts, 1);
		if (r == 0)
			r = daxpool_pool_create(region, "daxpool-demo", opts, &pool);
		daxpool_pool_opts_free(opts);
		if (r < 0)
			goto out;
	}
	r = daxpool_extent_alloc(pool, "rdma-buffer", 4u << 20, 0, &ext);
	if (r < 0)
		goto out;
	r = daxpool_extent_map(ext, 0, &h.map);
	if (r < 0)
		goto out;
	{
		static const char msg[] = "hello from daxpool";

		r = daxpool_map_memcpy(h.map, daxpool_map_get_address(h.map), msg, sizeof(msg), 0);
		if (r < 0)
			goto out;
		printf("2. pool created; extent \"%s\" (%llu MiB at offset %#llx) mapped; wrote and "
		       "persisted \"%s\"\n",
		       daxpool_extent_get_name(ext),
		       (unsigned long long)(daxpool_extent_get_size(ext) >> 20),
		       (unsigned long long)daxpool_extent_get_offset(ext),
		       (char *)daxpool_map_get_address(h.map));
	}
	odirect_into(h.map, tmp);

	/* A long-term pin, as an RDMA memory region would be. */
	r = daxpool_pin_new(h.map, daxpool_map_get_address(h.map), 1u << 20, DAXPOOL_PIN_LONGTERM,
			    DAXPOOL_PIN_DEVICE_READ | DAXPOOL_PIN_DEVICE_WRITE, &h.pin);
	if (r < 0)
		goto out;
	daxpool_pin_set_owner(h.pin, "demo holder: device DMA");
	daxpool_pin_set_revoke_fn(h.pin, on_pin_revoke, &h);
	daxpool_map_set_tag(h.map, "demo holder thread");
	daxpool_map_set_revoke_fn(h.map, on_map_revoke, &h);
	r = -pthread_create(&th, NULL, holder_thread, &h);
	if (r < 0)
		goto out;
	joined = false;
	printf("4. a holder thread keeps the map and a long-term pin: %d map(s), %d pin(s), "
	       "pinned: %s\n",
	       daxpool_region_get_map_count(region), daxpool_region_get_pin_count(region, 0),
	       daxpool_ctx_is_pinned(ctx, daxpool_map_get_address(h.map), 1) == 1 ? "yes" : "no");
	fflush(stdout);

	t0 = now_s();
	if (daemon && ready) {
		FILE *f = fopen(ready, "w");

		/* The region to release, for whoever waits on this file. */
		if (f) {
			fprintf(f, "%s\n", path);
			fclose(f);
		}
		printf("5. waiting for another process to release %s through daxpoold...\n", path);
		fflush(stdout);
		pthread_join(th, NULL);
		joined = true;
	} else {
		r = daxpool_region_zap(region);
		printf("5. zapped the region: %d map(s) and pin(s) revoked\n", r);
		r = daxpool_region_wait_idle(region, 50, &report);
		if (r == -ETIMEDOUT) {
			printf("   not idle after 50 ms; still held:\n   %s", report);
			free(report);
		}
	}
	/* New maps and pins are refused now, whoever zapped (quietly: it is expected). */
	{
		struct daxpool_map *late = NULL;
		int prio = daxpool_ctx_get_log_priority(ctx);

		daxpool_ctx_set_log_priority(ctx, LOG_CRIT);
		r = daxpool_map_new(region, 0, daxpool_region_get_alignment(region), 0, &late);
		daxpool_ctx_set_log_priority(ctx, prio);
		printf("6. a new map of the zapped region: %s\n", r < 0 ? strerror(-r) : "accepted?!");
		daxpool_map_unref(late);
	}
	/* The pool holds the region too (its metadata map): let go of it and the extent. */
	ext = daxpool_extent_unref(ext);
	pool = daxpool_pool_unref(pool);
	r = daxpool_region_wait_idle(region, 10000, NULL);
	if (r < 0)
		goto out;
	printf("7. idle %.0f ms after the zap (woken by the last unref, no polling)\n",
	       (now_s() - t0) * 1e3);
	if (!daemon) {
		r = daxpool_region_release(region);
		if (r < 0)
			goto out;
		printf("8. released: state %s\n",
		       daxpool_state_name(daxpool_region_get_state(region)));
	} else if (ready) {
		/*
		 * Stay connected until the releasing process says it is done: a
		 * client that vanishes mid-drain makes daxpoold fail the release
		 * safe ("holdings unknown").
		 */
		char done[4096];

		snprintf(done, sizeof(done), "%s.done", ready);
		for (int i = 0; i < 600 && access(done, F_OK) != 0; i++)
			nanosleep(&(struct timespec){ 0, 50 * 1000000L }, NULL);
		printf("8. daxpoold released the region\n");
	}

out:
	if (!joined)
		pthread_join(th, NULL);
	if (r < 0)
		fprintf(stderr, "daxpool-demo: %s\n", strerror(-r));
	else
		printf("demo complete\n");
	daxpool_pin_unref(h.pin);
	daxpool_map_unref(h.map);
	daxpool_extent_unref(ext);
	daxpool_pool_unref(pool);
	daxpool_region_unref(region);
	daxpool_ctx_unref(ctx);
	if (temp)
		unlink(path);
	return r < 0 ? 1 : 0;
}
