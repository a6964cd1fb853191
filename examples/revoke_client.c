/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * revoke_client: how a holder of DAX memory answers a revocation.
 *
 *   revoke_client [REGION]
 *
 * A holder thread owns a map and a long-term pin on part of it, as an RDMA
 * application owns a memory region registered with its NIC. It sets revoke
 * functions on both. The main thread then wants the memory back: it zaps the
 * region, which calls the revoke functions (in the main thread), and waits
 * until the region is idle. The holder, told by the revoke functions, stops
 * its "device", drops the pin, then the map; the last unref wakes the wait.
 *
 * REGION is a device-dax device, a file on a DAX mount, or any file (default:
 * a 16 MiB temporary file in $TMPDIR).
 *
 * Build: cc -pthread -o revoke_client revoke_client.c $(pkg-config --cflags --libs daxpool)
 * Exit status: 0 done, 1 an error.
 */
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <daxpool.h>

#define REGION_SIZE (16u << 20)

struct holder {
	struct daxpool_map *map; /* the holder's references */
	struct daxpool_pin *pin;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	bool pin_revoked, map_revoked;
};

/*
 * Revoke functions run in the zapping thread with no daxpool lock held. They
 * only tell the holder here; a real one may also block briefly to stop the
 * device (ibv_dereg_mr() after retiring the rkey, cancelling the I/O). The pin's
 * function runs before the map's.
 */
static void on_pin_revoke(struct daxpool_pin *pin, void *userdata)
{
	struct holder *h = userdata;

	printf("   revoke (pin): [%#llx, +%#zx) owned by \"%s\"\n",
	       (unsigned long long)daxpool_pin_get_offset(pin), daxpool_pin_get_length(pin),
	       daxpool_pin_get_owner(pin));
	pthread_mutex_lock(&h->lock);
	h->pin_revoked = true;
	pthread_cond_broadcast(&h->cond);
	pthread_mutex_unlock(&h->lock);
}

static void on_map_revoke(struct daxpool_map *map, void *userdata)
{
	struct holder *h = userdata;

	printf("   revoke (map): [%#llx, +%#llx) tagged \"%s\"\n",
	       (unsigned long long)daxpool_map_get_offset(map),
	       (unsigned long long)daxpool_map_get_length(map), daxpool_map_get_tag(map));
	pthread_mutex_lock(&h->lock);
	h->map_revoked = true;
	pthread_cond_broadcast(&h->cond);
	pthread_mutex_unlock(&h->lock);
}

static void *holder_thread(void *arg)
{
	struct holder *h = arg;
	struct timespec quiesce = { 0, 100 * 1000000L };

	/* Use the memory until told to stop. */
	pthread_mutex_lock(&h->lock);
	while (!h->pin_revoked)
		pthread_cond_wait(&h->cond, &h->lock);
	pthread_mutex_unlock(&h->lock);

	/* Stop the device from using the range (simulated), then unpin. */
	nanosleep(&quiesce, NULL);
	h->pin = daxpool_pin_unref(h->pin);
	printf("   holder: device stopped, pin dropped\n");

	pthread_mutex_lock(&h->lock);
	while (!h->map_revoked)
		pthread_cond_wait(&h->cond, &h->lock);
	pthread_mutex_unlock(&h->lock);
	h->map = daxpool_map_unref(h->map);
	printf("   holder: map dropped\n");
	return NULL;
}

static int make_region_file(char *path, size_t len)
{
	const char *tmp = getenv("TMPDIR");
	int fd, r = 0;

	snprintf(path, len, "%s/revoke_client-XXXXXX", tmp && *tmp ? tmp : "/tmp");
	fd = mkstemp(path);
	if (fd < 0)
		return -errno;
	if (ftruncate(fd, REGION_SIZE) < 0) {
		r = -errno;
		unlink(path);
	}
	close(fd);
	return r;
}

int main(int argc, char **argv)
{
	struct holder h = { .lock = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER };
	struct daxpool_region *region = NULL;
	struct daxpool_ctx *ctx = NULL;
	bool temp = argc < 2, started = false;
	char path[4096], *report = NULL;
	pthread_t th;
	int r;

	if (temp) {
		r = make_region_file(path, sizeof(path));
		if (r < 0) {
			fprintf(stderr, "revoke_client: cannot create a region file: %s\n", strerror(-r));
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

	/* Set up what the holder thread will own: a map (one alignment unit) and
	 * a long-term pin on its first page, read and written by the device. The
	 * pin holds the map too. */
	r = daxpool_map_new(region, 0, daxpool_region_get_alignment(region), 0, &h.map);
	if (r < 0)
		goto out;
	daxpool_map_set_tag(h.map, "revoke_client holder");
	daxpool_map_set_revoke_fn(h.map, on_map_revoke, &h);
	r = daxpool_pin_new(h.map, daxpool_map_get_address(h.map), 4096, DAXPOOL_PIN_LONGTERM,
			    DAXPOOL_PIN_DEVICE_READ | DAXPOOL_PIN_DEVICE_WRITE, &h.pin);
	if (r < 0)
		goto out;
	daxpool_pin_set_owner(h.pin, "simulated RDMA MR");
	daxpool_pin_set_revoke_fn(h.pin, on_pin_revoke, &h);

	r = pthread_create(&th, NULL, holder_thread, &h);
	if (r) {
		r = -r;
		goto out;
	}
	started = true;
	printf("1. the holder has %d map(s) and %d long-term pin(s) on %s\n",
	       daxpool_region_get_map_count(region),
	       daxpool_region_get_pin_count(region, DAXPOOL_PIN_LONGTERM), path);

	/* Zap: the revoke functions run here, in this thread, before it returns. */
	printf("2. zapping the region\n");
	r = daxpool_region_zap(region);
	if (r < 0)
		goto out;
	{
		struct daxpool_map *m = NULL;
		int e = daxpool_map_new(region, 0, 0, 0, &m);

		printf("3. %d revoked; a new map now fails: %s\n", r, strerror(-e));
		m = daxpool_map_unref(m);
	}

	/* Wait for the holder; a real caller would print the report and decide. */
	r = daxpool_region_wait_idle(region, 10000, &report);
	if (r == -ETIMEDOUT) {
		fprintf(stderr, "revoke_client: still held after 10 s:\n%s", report ? report : "");
		free(report);
		goto out;
	}
	if (r < 0)
		goto out;
	r = daxpool_region_release(region);
	if (r < 0)
		goto out;
	printf("4. idle and released: state %s, %d map(s), %d pin(s)\n",
	       daxpool_state_name(daxpool_region_get_state(region)),
	       daxpool_region_get_map_count(region), daxpool_region_get_pin_count(region, 0));

out:
	if (started) {
		/* On an error path, tell the holder to let go anyway. */
		pthread_mutex_lock(&h.lock);
		h.pin_revoked = h.map_revoked = true;
		pthread_cond_broadcast(&h.cond);
		pthread_mutex_unlock(&h.lock);
		pthread_join(th, NULL);
	}
	if (r < 0)
		fprintf(stderr, "revoke_client: %s\n", strerror(-r));
	/* On an error path the holder may not have dropped its references. */
	daxpool_pin_unref(h.pin);
	daxpool_map_unref(h.map);
	daxpool_region_unref(region);
	daxpool_ctx_unref(ctx);
	if (temp)
		unlink(path);
	return r < 0 ? 1 : 0;
}
