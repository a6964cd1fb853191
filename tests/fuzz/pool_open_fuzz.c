/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * libFuzzer target: a pool's media image, as found on a region, through check,
 * open (read-only and for writing), iteration, and repair. The image is held in
 * a memfd opened as a file region. Properties beyond "no crash, no sanitizer
 * report":
 *   - check never writes: the bytes are the same after it;
 *   - open succeeds exactly when check finds no extent-table problem;
 *   - after a repair that succeeded, check finds nothing and open succeeds.
 * Built only with -DDAXPOOL_FUZZ=ON and clang; run by tests/fuzz/run-fuzz.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "daxpool.h"

#define MAX_IMAGE (1u << 20)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct daxpool_ctx *ctx;
static int fd = -1;
static char path[64];
static uint8_t *before, *after;

static void quiet(struct daxpool_ctx *c, int priority, const char *file, int line, const char *fn,
		  const char *format, va_list args)
{
}

static int visit(struct daxpool_extent *e, void *userdata)
{
	size_t *n = userdata;

	if (!daxpool_extent_get_name(e) || daxpool_extent_get_size(e) == 0)
		abort();
	(*n)++;
	return 0;
}

static void read_all(uint8_t *buf, size_t len)
{
	if (pread(fd, buf, len, 0) != (ssize_t)len)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct daxpool_region *region;
	struct daxpool_pool *pool;
	size_t len, n = 0;
	int chk, r;

	if (!ctx) {
		if (daxpool_ctx_new(&ctx) < 0)
			abort();
		daxpool_ctx_set_log_fn(ctx, quiet);
		daxpool_ctx_set_log_priority(ctx, 0);
		fd = memfd_create("pool-image", MFD_CLOEXEC);
		if (fd < 0)
			abort();
		snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
		before = malloc(MAX_IMAGE);
		after = malloc(MAX_IMAGE);
		if (!before || !after)
			abort();
	}
	if (size > MAX_IMAGE)
		size = MAX_IMAGE;
	/* Whole pages: a region covers whole alignment units. At least one. */
	len = size < 4096 ? 4096 : (size + 4095) & ~(size_t)4095;
	if (ftruncate(fd, 0) < 0 || ftruncate(fd, (off_t)len) < 0 ||
	    pwrite(fd, data, size, 0) != (ssize_t)size)
		abort();

	if (daxpool_region_open(ctx, path, 0, &region) < 0)
		abort();
	read_all(before, len);
	chk = daxpool_pool_check(region, NULL, NULL);
	read_all(after, len);
	if (memcmp(before, after, len))
		abort(); /* check wrote */

	r = daxpool_pool_open(region, DAXPOOL_POOL_RDONLY, &pool);
	if (r == 0) {
		if (chk < 0)
			abort();
		if (daxpool_extent_foreach(pool, visit, &n) < 0 ||
		    n != (size_t)daxpool_pool_get_extent_count(pool))
			abort();
		daxpool_pool_unref(pool);
	} else if (chk == 0) {
		abort(); /* check passed but open failed */
	}
	r = daxpool_pool_open(region, 0, &pool);
	if (r == 0) {
		struct daxpool_extent *e;

		/* A writer on a good image can allocate and free. */
		if (daxpool_extent_alloc(pool, "fuzz", 4096, 0, &e) == 0) {
			if (daxpool_extent_free(e, 0, 0) < 0)
				abort();
			daxpool_extent_unref(e);
		}
		daxpool_pool_unref(pool);
	}
	r = daxpool_pool_repair(region, NULL, NULL);
	if (r >= 0) {
		if (daxpool_pool_check(region, NULL, NULL) != 0)
			abort(); /* repair left something */
		if (daxpool_pool_open(region, DAXPOOL_POOL_RDONLY, &pool) != 0)
			abort();
		daxpool_pool_unref(pool);
	}
	daxpool_region_unref(region);
	return 0;
}
