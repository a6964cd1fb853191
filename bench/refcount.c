/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Row "map handle ref+unref": daxpool_map_ref() + daxpool_map_unref() on a
 * live map (through the shared library, as an application calls them) against
 * a bare C11 atomic_fetch_add + atomic_fetch_sub pair with the same orderings
 * as lib/util/refcnt.h (relaxed increment, acq_rel decrement). One thread,
 * uncontended: the cost of the handle discipline itself.
 */
#include <stdatomic.h>

#include "bench.h"
#include "daxpool.h"

static atomic_long counter = 1;

static double __attribute__((noinline)) run_atomic(long iters)
{
	uint64_t t0 = bench_now_ns();

	for (long i = 0; i < iters; i++) {
		atomic_fetch_add_explicit(&counter, 1, memory_order_relaxed);
		atomic_fetch_sub_explicit(&counter, 1, memory_order_acq_rel);
	}
	return (double)(bench_now_ns() - t0) / (double)iters;
}

static double __attribute__((noinline)) run_map(struct daxpool_map *map, long iters)
{
	uint64_t t0 = bench_now_ns();

	for (long i = 0; i < iters; i++) {
		struct daxpool_map *m = daxpool_map_ref(map);

		bench_keep(m);
		daxpool_map_unref(m);
	}
	return (double)(bench_now_ns() - t0) / (double)iters;
}

int main(int argc, char **argv)
{
	struct daxpool_ctx *ctx = NULL;
	struct daxpool_region *region = NULL;
	struct daxpool_map *map = NULL;
	long iters;
	double *dax, *base, md, mb;
	char *path, note[160];

	bench_parse(argc, argv);
	bench_pin_cpu(0);
	iters = bench.quick ? 2000000 : 10000000;
	dax = calloc(bench.samples, sizeof(*dax));
	base = calloc(bench.samples, sizeof(*base));
	if (!dax || !base)
		bench_die("out of memory");

	path = bench_make_file(bench_shm_dir(), "daxpool-bench-refcount", 2u << 20);
	bench_check(daxpool_ctx_new(&ctx));
	bench_check(daxpool_region_open(ctx, path, 0, &region));
	bench_check(daxpool_map_new(region, 0, 0, 0, &map));

	/* Warm-up: page in the code, settle the CPU frequency. */
	run_atomic(iters / 4);
	run_map(map, iters / 4);
	for (int s = 0; s < bench.samples; s++) {
		if (s % 2) {
			base[s] = run_atomic(iters);
			dax[s] = run_map(map, iters);
		} else {
			dax[s] = run_map(map, iters);
			base[s] = run_atomic(iters);
		}
	}
	md = bench_median(dax, bench.samples);
	mb = bench_median(base, bench.samples);
	/* Sorted by bench_median(): say how far the samples spread, this VM is noisy here. */
	snprintf(note, sizeof(note), "samples %.1f-%.1f ns (baseline %.1f-%.1f)", dax[0],
		 dax[bench.samples - 1], base[0], base[bench.samples - 1]);
	bench_result("map_ref_unref", "map handle ref+unref", "ns", md, mb,
		     "C11 atomic fetch_add+fetch_sub", md / mb, "ratio", "le", 1.5, note);

	map = daxpool_map_unref(map);
	region = daxpool_region_unref(region);
	ctx = daxpool_ctx_unref(ctx);
	unlink(path);
	free(path);
	free(dax);
	free(base);
	return 0;
}
