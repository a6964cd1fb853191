/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Row "copy into a map": daxpool_map_memcpy() against libpmem2's own
 * memcpy_fn on a pmem2 mapping of the same file made here, same flags, same
 * destination offsets. Goal: daxpool keeps >= 0.95 of libpmem2's throughput.
 *
 * On a machine without DAX the file is plain (tmpfs when there is one), the
 * granularity is "page", and a persisting copy is memmove() + msync(); the
 * NOFLUSH row is the bare copy, where daxpool's own per-call work shows most.
 */
#include <fcntl.h>
#include <libpmem2.h>

#include "bench.h"
#include "daxpool.h"

#define FILE_SIZE (64u << 20)

struct copy {
	const char *name, *desc;
	size_t size;
	unsigned int dp_flags, pmem2_flags;
};

static const struct copy copies[] = {
	{"memcpy_4k", "copy 4 KiB into a map (persist)", 4096, 0, 0},
	{"memcpy_1m", "copy 1 MiB into a map (persist)", 1u << 20, 0, 0},
	{"memcpy_4k_noflush", "copy 4 KiB into a map (NOFLUSH)", 4096, DAXPOOL_COPY_NOFLUSH,
	 PMEM2_F_MEM_NOFLUSH},
};

static double run_dax(struct daxpool_map *map, const struct copy *c, const char *src, long iters)
{
	char *base = daxpool_map_get_address(map);
	size_t slots = FILE_SIZE / c->size;
	uint64_t t0 = bench_now_ns();

	for (long i = 0; i < iters; i++)
		bench_check(daxpool_map_memcpy(map, base + (i % slots) * c->size, src, c->size,
					       c->dp_flags));
	return (double)(bench_now_ns() - t0) / (double)iters;
}

static double run_pmem2(struct pmem2_map *pm, const struct copy *c, const char *src, long iters)
{
	pmem2_memcpy_fn memcpy_fn = pmem2_get_memcpy_fn(pm);
	char *base = pmem2_map_get_address(pm);
	size_t slots = FILE_SIZE / c->size;
	uint64_t t0 = bench_now_ns();

	for (long i = 0; i < iters; i++)
		memcpy_fn(base + (i % slots) * c->size, src, c->size, c->pmem2_flags);
	return (double)(bench_now_ns() - t0) / (double)iters;
}

int main(int argc, char **argv)
{
	struct daxpool_ctx *ctx = NULL;
	struct daxpool_region *region = NULL;
	struct daxpool_map *map = NULL;
	struct pmem2_source *psrc = NULL;
	struct pmem2_config *cfg = NULL;
	struct pmem2_map *pm = NULL;
	double *dv, *bv;
	char *path, *src, note[160];
	int fd;

	bench_parse(argc, argv);
	bench_pin_cpu(0);
	dv = calloc(bench.samples, sizeof(double));
	bv = calloc(bench.samples, sizeof(double));
	src = malloc(1u << 20);
	if (!dv || !bv || !src)
		bench_die("out of memory");
	memset(src, 0xa5, 1u << 20);

	path = bench_make_file(bench_shm_dir(), "daxpool-bench-memcpy", FILE_SIZE);
	/*
	 * The baseline's descriptor first: the region then holds no file lease,
	 * which this open would otherwise break (and revoke the map being timed).
	 */
	fd = open(path, O_RDWR);
	if (fd < 0)
		bench_die("open %s: %s", path, strerror(errno));
	bench_check(daxpool_ctx_new(&ctx));
	bench_check(daxpool_region_open(ctx, path, 0, &region));
	bench_check(daxpool_map_new(region, 0, 0, 0, &map));
	if (pmem2_source_from_fd(&psrc, fd) || pmem2_config_new(&cfg) ||
	    pmem2_config_set_required_store_granularity(cfg, PMEM2_GRANULARITY_PAGE) ||
	    pmem2_map_new(&pm, cfg, psrc))
		bench_die("libpmem2 map of %s: %s", path, pmem2_errormsg());
	/* Fault every page in through both mappings before timing. */
	memset(daxpool_map_get_address(map), 0, FILE_SIZE);
	memset(pmem2_map_get_address(pm), 0, FILE_SIZE);
	snprintf(note, sizeof(note), "%s granularity, file on %s",
		 daxpool_granularity_name(daxpool_map_get_granularity(map)), bench_shm_dir());

	for (size_t k = 0; k < sizeof(copies) / sizeof(copies[0]); k++) {
		const struct copy *c = &copies[k];
		/* About 1 GiB (quick: 256 MiB) per sample, at least 200 copies. */
		long iters = (long)((bench.quick ? 256ull << 20 : 1ull << 30) / c->size);
		double md, mb;

		if (iters < 200)
			iters = 200;
		if (c->size == 4096 && iters > 200000)
			iters = bench.quick ? 50000 : 200000;
		run_dax(map, c, src, iters / 4);
		run_pmem2(pm, c, src, iters / 4);
		for (int s = 0; s < bench.samples; s++) {
			if (s % 2) {
				bv[s] = run_pmem2(pm, c, src, iters);
				dv[s] = run_dax(map, c, src, iters);
			} else {
				dv[s] = run_dax(map, c, src, iters);
				bv[s] = run_pmem2(pm, c, src, iters);
			}
		}
		/* Throughput in GB/s (bytes per ns). */
		md = (double)c->size / bench_median(dv, bench.samples);
		mb = (double)c->size / bench_median(bv, bench.samples);
		bench_result(c->name, c->desc, "GB/s", md, mb, "libpmem2 memcpy_fn, same file",
			     md / mb, "ratio", "ge", 0.95, note);
	}

	pmem2_map_delete(&pm);
	pmem2_config_delete(&cfg);
	pmem2_source_delete(&psrc);
	close(fd);
	map = daxpool_map_unref(map);
	region = daxpool_region_unref(region);
	ctx = daxpool_ctx_unref(ctx);
	unlink(path);
	free(path);
	free(src);
	free(dv);
	free(bv);
	return 0;
}
