/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* daxpoolctl extents [--json] PATH: list a pool's extents. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include <json-c/json.h>

#include "builtin.h"
#include "daxpool.h"

static void extents_usage(FILE *f)
{
	fprintf(f, "Usage: daxpoolctl extents [--json] PATH\n\n"
		   "List the extents of the pool in the region PATH, in offset order. The\n"
		   "pool is opened read-only.\n\n"
		   "  -j, --json  print one JSON array\n"
		   "  -h, --help  this help\n\n"
		   "Exit status: 0 listed, 1 no usable pool, 2 bad usage.\n");
}

static int list_one(struct daxpool_extent *e, void *userdata)
{
	json_object *arr = userdata;

	if (arr) {
		json_object *o = json_object_new_object();

		json_object_object_add(o, "name", json_object_new_string(daxpool_extent_get_name(e)));
		json_object_object_add(o, "offset",
				       json_object_new_uint64(daxpool_extent_get_offset(e)));
		json_object_object_add(o, "size", json_object_new_uint64(daxpool_extent_get_size(e)));
		json_object_object_add(o, "alignment",
				       json_object_new_uint64(daxpool_extent_get_alignment(e)));
		json_object_array_add(arr, o);
	} else {
		printf("%-24s %#16" PRIx64 " %16" PRIu64 " %#12" PRIx64 "\n",
		       daxpool_extent_get_name(e), daxpool_extent_get_offset(e),
		       daxpool_extent_get_size(e), daxpool_extent_get_alignment(e));
	}
	return 0;
}

int cmd_extents(int argc, char **argv, struct daxpool_ctx *ctx)
{
	struct daxpool_region *region = NULL;
	struct daxpool_pool *pool = NULL;
	json_object *arr = NULL;
	bool json;
	int r;

	r = daxpoolctl_open_region_arg("extents", argc, argv, extents_usage, ctx,
				       DAXPOOL_REGION_RDONLY, &json, &region);
	if (r >= 0)
		return r;
	r = daxpool_pool_open(region, DAXPOOL_POOL_RDONLY, &pool);
	if (r < 0) {
		fprintf(stderr, "daxpoolctl extents: %s: %s\n", argv[optind], strerror(-r));
		daxpool_region_unref(region);
		return DAXPOOLCTL_EXIT_FAILURE;
	}
	if (json)
		arr = json_object_new_array();
	else
		printf("%-24s %18s %16s %12s\n", "NAME", "OFFSET", "SIZE", "ALIGNMENT");
	r = daxpool_extent_foreach(pool, list_one, arr);
	if (json) {
		printf("%s\n", json_object_to_json_string_ext(arr, JSON_C_TO_STRING_PRETTY |
									JSON_C_TO_STRING_NOSLASHESCAPE));
		json_object_put(arr);
	}
	daxpool_pool_unref(pool);
	daxpool_region_unref(region);
	return r < 0 ? DAXPOOLCTL_EXIT_FAILURE : DAXPOOLCTL_EXIT_OK;
}
