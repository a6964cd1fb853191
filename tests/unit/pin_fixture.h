/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The fixture of the pin tests (pin.c, find_pin.c): a context, a region of
 * the run's backing and a 16 MiB map of it, so pins span several 2 MiB
 * registry granules; teardown checks that no pin is left on the region.
 */
#ifndef DAXPOOL_TEST_PIN_FIXTURE_H
#define DAXPOOL_TEST_PIN_FIXTURE_H

#include <syslog.h>

#include "daxpool.h"
#include "harness.h"

#define REGION_SIZE (64ull << 20)
#define MIB (1ull << 20)

struct fixture {
	struct daxpool_ctx *ctx;
	struct daxpool_region *region;
	struct daxpool_map *map;
	char *base;
	uint64_t len;
};

static struct fixture setup(void)
{
	struct fixture f = { 0 };

	CHECK_OK(daxpool_ctx_new(&f.ctx));
	CHECK_OK(daxpool_ctx_set_log_priority(f.ctx, LOG_CRIT));
	CHECK_OK(daxpool_region_open(f.ctx, fixture_backing(REGION_SIZE), 0, &f.region));
	/* 16 MiB, so pins span several 2 MiB registry granules. */
	f.len = 16 * MIB;
	if (f.len % daxpool_region_get_alignment(f.region))
		f.len = daxpool_region_get_alignment(f.region);
	CHECK_OK(daxpool_map_new(f.region, 0, f.len, 0, &f.map));
	f.base = daxpool_map_get_address(f.map);
	return f;
}

static void teardown(struct fixture *f)
{
	daxpool_map_unref(f->map);
	CHECK_EQ(daxpool_region_get_pin_count(f->region, 0), 0);
	daxpool_region_unref(f->region);
	daxpool_ctx_unref(f->ctx);
}

#endif /* DAXPOOL_TEST_PIN_FIXTURE_H */
