/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Row "zap -> idle": thread A (CPU 0) blocks in daxpool_region_wait_idle();
 * thread B (CPU 1) drops the last reference that holds the zapped region and
 * the time from just before that drop to A's return is measured. Baseline: an
 * eventfd wake between the same two threads (B writes, A returns from read).
 * Goal: at most 1 ms, absolute; both figures are reported.
 *
 *   zap_idle_map  the holder drops its last map
 *   zap_idle_pin  the holder drops its last pin (which holds the last map)
 *
 * B waits until A has announced that it is about to block, then 1 ms more, so
 * that A is asleep in the kernel when the drop comes: the figure is a wake-up,
 * not a check that finds the region already idle.
 */
#include <pthread.h>
#include <semaphore.h>
#include <stdatomic.h>
#include <sys/eventfd.h>

#include "bench.h"
#include "daxpool.h"

enum mode { MODE_STOP, MODE_WAIT_IDLE, MODE_EVENTFD };

static struct daxpool_region *region;
static int efd;
static sem_t go, done;
static _Atomic int mode, armed;
static uint64_t t_ret;

static void *waiter(void *arg)
{
	bench_pin_cpu(0);
	for (;;) {
		uint64_t v;

		sem_wait(&go);
		switch (atomic_load(&mode)) {
		case MODE_WAIT_IDLE:
			atomic_store(&armed, 1);
			bench_check(daxpool_region_wait_idle(region, -1, NULL));
			break;
		case MODE_EVENTFD:
			atomic_store(&armed, 1);
			if (read(efd, &v, sizeof(v)) != sizeof(v))
				bench_die("eventfd read: %s", strerror(errno));
			break;
		default:
			return NULL;
		}
		t_ret = bench_now_ns();
		sem_post(&done);
	}
}

/* Start A on @m, wait until it is (almost certainly) asleep. */
static void arm(enum mode m)
{
	atomic_store(&armed, 0);
	atomic_store(&mode, m);
	sem_post(&go);
	while (!atomic_load(&armed))
		;
	usleep(1000);
}

/* One wake-up in ns; @what: 0 eventfd, 1 last map, 2 last pin. */
static double once(int what)
{
	struct daxpool_map *map = NULL;
	struct daxpool_pin *pin = NULL;
	uint64_t t0, one = 1;

	if (what == 0) {
		arm(MODE_EVENTFD);
		t0 = bench_now_ns();
		if (write(efd, &one, sizeof(one)) != sizeof(one))
			bench_die("eventfd write: %s", strerror(errno));
		sem_wait(&done);
		return (double)(t_ret - t0);
	}
	bench_check(daxpool_map_new(region, 0, 0, 0, &map));
	if (what == 2) {
		bench_check(daxpool_pin_new(map, daxpool_map_get_address(map), 4096,
					    DAXPOOL_PIN_TRANSIENT, DAXPOOL_PIN_DEVICE_READ, &pin));
		map = daxpool_map_unref(map); /* the pin holds it now */
	}
	bench_check(daxpool_region_zap(region));
	arm(MODE_WAIT_IDLE);
	t0 = bench_now_ns();
	if (pin)
		daxpool_pin_unref(pin);
	else
		daxpool_map_unref(map);
	sem_wait(&done);
	bench_check(daxpool_region_unzap_range(region, 0, 0));
	return (double)(t_ret - t0);
}

int main(int argc, char **argv)
{
	struct daxpool_ctx *ctx = NULL;
	pthread_t a;
	int iters;
	double *v[3], med[3], *it;
	char *path, note[200];

	bench_parse(argc, argv);
	iters = bench.quick ? 10 : 30;
	it = calloc(iters, sizeof(double));
	for (int w = 0; w < 3; w++)
		v[w] = calloc(bench.samples, sizeof(double));
	if (!it || !v[0] || !v[1] || !v[2])
		bench_die("out of memory");
	efd = eventfd(0, EFD_CLOEXEC);
	if (efd < 0)
		bench_die("eventfd: %s", strerror(errno));
	sem_init(&go, 0, 0);
	sem_init(&done, 0, 0);

	path = bench_make_file(bench_shm_dir(), "daxpool-bench-wake", 2u << 20);
	bench_check(daxpool_ctx_new(&ctx));
	bench_check(daxpool_region_open(ctx, path, 0, &region));
	bench_pin_cpu(1);
	if (pthread_create(&a, NULL, waiter, NULL))
		bench_die("pthread_create failed");

	for (int w = 0; w < 3; w++)
		once(w); /* warm-up */
	for (int s = 0; s < bench.samples; s++) {
		for (int k = 0; k < 3; k++) {
			int w = (k + s) % 3;

			for (int i = 0; i < iters; i++)
				it[i] = once(w);
			/* A sample is the median wake of its iterations. */
			v[w][s] = bench_median(it, iters);
		}
	}
	for (int w = 0; w < 3; w++)
		med[w] = bench_median(v[w], bench.samples) / 1e6;
	atomic_store(&mode, MODE_STOP);
	sem_post(&go);
	pthread_join(a, NULL);

	if (bench_ncpus() < 2)
		snprintf(note, sizeof(note), "one CPU: both threads on it");
	else
		snprintf(note, sizeof(note), "waiter on CPU 0, dropper on CPU 1");
	bench_result("zap_idle_map", "zap -> idle after the last map drops", "ms", med[1], med[0],
		     "eventfd wake, same threads", med[1], "abs", "le", 1, note);
	bench_result("zap_idle_pin", "zap -> idle after the last pin drops", "ms", med[2], med[0],
		     "eventfd wake, same threads", med[2], "abs", "le", 1, note);

	daxpool_region_unref(region);
	daxpool_ctx_unref(ctx);
	unlink(path);
	free(path);
	free(it);
	for (int w = 0; w < 3; w++)
		free(v[w]);
	close(efd);
	return 0;
}
