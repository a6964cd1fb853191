/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * daxpool-demo: the quick-start walk-through.
 *
 * Opens a region (by default a 64 MiB file-backed one in $TMPDIR, the embedded
 * default; or the device or file given on the command line), maps it, writes
 * and persists, then shows the zap-then-wait lifecycle: a holder thread keeps
 * a map, the main thread zaps the region, the holder is asked to let go through
 * its revoke function, and the main thread waits until the region is idle
 * before it releases it.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <daxpool.h>

#define DEMO_SIZE (64u << 20)

struct holder {
	struct daxpool_map *map;
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

/* Runs in the zapping thread: tell the holder, do not block. */
static void on_revoke(struct daxpool_map *map, void *userdata)
{
	struct holder *h = userdata;

	printf("  revoke: the holder of [%#llx, +%#llx) is asked to let go\n",
	       (unsigned long long)daxpool_map_get_offset(map),
	       (unsigned long long)daxpool_map_get_length(map));
	pthread_mutex_lock(&h->lock);
	h->revoked = true;
	pthread_cond_signal(&h->cond);
	pthread_mutex_unlock(&h->lock);
}

static void *holder_thread(void *arg)
{
	struct holder *h = arg;
	struct timespec finish = { 0, 300 * 1000000L };

	pthread_mutex_lock(&h->lock);
	while (!h->revoked)
		pthread_cond_wait(&h->cond, &h->lock);
	pthread_mutex_unlock(&h->lock);
	/* Finish the I/O in flight (simulated), then drop the map. */
	printf("  holder: finishing in-flight work (300 ms) before dropping the map\n");
	nanosleep(&finish, NULL);
	h->map = daxpool_map_unref(h->map);
	printf("  holder: map dropped\n");
	return NULL;
}

static int make_default_backing(char *path, size_t len)
{
	const char *tmp = getenv("TMPDIR");
	int fd;

	snprintf(path, len, "%s/daxpool-demo-XXXXXX", tmp && *tmp ? tmp : "/tmp");
	fd = mkstemp(path);
	if (fd < 0)
		return -errno;
	if (ftruncate(fd, DEMO_SIZE) < 0) {
		int r = -errno;

		close(fd);
		unlink(path);
		return r;
	}
	close(fd);
	return 0;
}

int main(int argc, char **argv)
{
	struct holder h = { .lock = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER };
	struct daxpool_region *region = NULL;
	struct daxpool_ctx *ctx = NULL;
	struct daxpool_map *map = NULL;
	char path[4096], *report = NULL;
	bool temp = argc < 2;
	pthread_t th;
	double t0;
	int r;

	if (temp) {
		r = make_default_backing(path, sizeof(path));
		if (r < 0) {
			fprintf(stderr, "daxpool-demo: cannot create a backing file: %s\n", strerror(-r));
			return 1;
		}
	} else {
		snprintf(path, sizeof(path), "%s", argv[1]);
	}

	r = daxpool_ctx_new(&ctx);
	if (r < 0)
		goto out;
	r = daxpool_region_open(ctx, path, 0, &region);
	if (r < 0)
		goto out;
	printf("1. opened %s: %s region, %llu MiB, alignment %llu, persistence granularity %s\n",
	       path, daxpool_region_kind_name(daxpool_region_get_kind(region)),
	       (unsigned long long)(daxpool_region_get_size(region) >> 20),
	       (unsigned long long)daxpool_region_get_alignment(region),
	       daxpool_granularity_name(daxpool_region_get_granularity(region)));

	r = daxpool_map_new(region, 0, 0, 0, &map);
	if (r < 0)
		goto out;
	{
		static const char msg[] = "hello from daxpool";
		char *p = daxpool_map_get_address(map);

		r = daxpool_map_memcpy(map, p, msg, sizeof(msg), 0);
		if (r < 0)
			goto out;
		printf("2. mapped at %p, wrote and persisted \"%s\"\n", (void *)p, p);
	}
	map = daxpool_map_unref(map);

	r = daxpool_map_new(region, 0, daxpool_region_get_alignment(region), 0, &h.map);
	if (r < 0)
		goto out;
	daxpool_map_set_tag(h.map, "demo holder thread");
	daxpool_map_set_revoke_fn(h.map, on_revoke, &h);
	r = pthread_create(&th, NULL, holder_thread, &h);
	if (r) {
		r = -r;
		goto out;
	}
	printf("3. a holder thread keeps a map; the region has %d map(s), state %s\n",
	       daxpool_region_get_map_count(region),
	       daxpool_state_name(daxpool_region_get_state(region)));

	t0 = now_s();
	r = daxpool_region_zap(region);
	printf("4. zapped the region: %d map(s) revoked, state %s; new maps now fail: %s\n", r,
	       daxpool_state_name(daxpool_region_get_state(region)),
	       strerror(-daxpool_map_new(region, 0, 0, 0, &map)));

	r = daxpool_region_wait_idle(region, 50, &report);
	if (r == -ETIMEDOUT) {
		printf("5. not idle after 50 ms; still held:\n   %s", report);
		free(report);
	}
	r = daxpool_region_wait_idle(region, 10000, NULL);
	if (r < 0)
		goto out_join;
	printf("6. idle %.0f ms after the zap (woken by the last unref, no polling); state %s\n",
	       (now_s() - t0) * 1e3, daxpool_state_name(daxpool_region_get_state(region)));
	r = daxpool_region_release(region);
	if (r < 0)
		goto out_join;
	printf("7. released: state %s\n", daxpool_state_name(daxpool_region_get_state(region)));

out_join:
	pthread_join(th, NULL);
out:
	if (r < 0)
		fprintf(stderr, "daxpool-demo: %s\n", strerror(-r));
	else
		printf("demo complete\n");
	daxpool_map_unref(map);
	daxpool_region_unref(region);
	daxpool_ctx_unref(ctx);
	if (temp)
		unlink(path);
	return r < 0 ? 1 : 0;
}
