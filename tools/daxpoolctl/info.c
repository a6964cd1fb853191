/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* daxpoolctl info PATH [--json]: describe a region. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include <json-c/json.h>

#include "builtin.h"
#include "daxpool.h"

static void info_usage(FILE *f)
{
	fprintf(f, "Usage: daxpoolctl info [--json] PATH\n\n"
		   "Describe PATH as a daxpool region: a device-dax device (/dev/daxX.Y), a file\n"
		   "on a DAX mount, or a plain file, and the pool it holds, if any. The region\n"
		   "is opened read-only.\n\n"
		   "  -j, --json  print one JSON object\n"
		   "  -h, --help  this help\n");
}

static json_object *json_str_or_null(const char *s)
{
	return s ? json_object_new_string(s) : NULL;
}

/* The CXL region under the device, or null and why nothing is claimed. */
static json_object *cxl_json(struct daxpool_region *region)
{
	json_object *o = json_object_new_object();
	unsigned int ways = 0, granularity = 0;
	int r = daxpool_region_is_cxl(region);

	json_object_object_add(o, "cxl", json_object_new_boolean(r == 1));
	if (r != 1) {
		json_object_object_add(o, "reason",
				       json_str_or_null(daxpool_region_get_cxl_why(region)));
		return o;
	}
	daxpool_region_get_cxl_interleave(region, &ways, &granularity);
	json_object_object_add(o, "region", json_str_or_null(daxpool_region_get_cxl_region(region)));
	json_object_object_add(o, "decoder",
			       json_str_or_null(daxpool_region_get_cxl_decoder(region)));
	json_object *memdevs = json_object_new_array();
	char buf[256], *save = NULL;

	snprintf(buf, sizeof(buf), "%s", daxpool_region_get_cxl_memdevs(region));
	for (char *t = strtok_r(buf, " ", &save); t; t = strtok_r(NULL, " ", &save))
		json_object_array_add(memdevs, json_object_new_string(t));
	json_object_object_add(o, "memdevs", memdevs);
	json_object_object_add(o, "interleave_ways", json_object_new_int((int)ways));
	json_object_object_add(o, "interleave_granularity", json_object_new_int((int)granularity));
	return o;
}

static json_object *info_json(struct daxpool_region *region)
{
	json_object *o = json_object_new_object();
	const char *devname = daxpool_region_get_devname(region);
	int node = daxpool_region_get_numa_node(region);

	json_object_object_add(o, "path", json_object_new_string(daxpool_region_get_path(region)));
	json_object_object_add(o, "kind", json_object_new_string(daxpool_region_kind_name(
						  daxpool_region_get_kind(region))));
	json_object_object_add(o, "dax", json_object_new_boolean(daxpool_region_is_dax(region) == 1));
	json_object_object_add(o, "size",
			       json_object_new_uint64(daxpool_region_get_size(region)));
	json_object_object_add(o, "alignment",
			       json_object_new_uint64(daxpool_region_get_alignment(region)));
	json_object_object_add(o, "persistence_granularity",
			       json_object_new_string(daxpool_granularity_name(
				       daxpool_region_get_granularity(region))));
	json_object_object_add(o, "device", devname ? json_object_new_string(devname) : NULL);
	json_object_object_add(o, "numa_node", node >= 0 ? json_object_new_int(node) : NULL);
	json_object_object_add(o, "namespace", json_str_or_null(daxpool_region_get_namespace(region)));
	json_object_object_add(o, "memmap", json_str_or_null(daxpool_region_get_memmap(region)));
	json_object_object_add(o, "cxl", cxl_json(region));
	return o;
}

static void info_human(struct daxpool_region *region)
{
	const char *devname = daxpool_region_get_devname(region);
	int node = daxpool_region_get_numa_node(region);

	printf("path:                    %s\n", daxpool_region_get_path(region));
	printf("kind:                    %s\n",
	       daxpool_region_kind_name(daxpool_region_get_kind(region)));
	printf("dax:                     %s\n", daxpool_region_is_dax(region) == 1 ? "yes" : "no");
	printf("size:                    %llu\n",
	       (unsigned long long)daxpool_region_get_size(region));
	printf("alignment:               %llu\n",
	       (unsigned long long)daxpool_region_get_alignment(region));
	printf("persistence granularity: %s\n",
	       daxpool_granularity_name(daxpool_region_get_granularity(region)));
	if (devname)
		printf("device:                  %s\n", devname);
	if (node >= 0)
		printf("numa node:               %d\n", node);
	if (daxpool_region_get_namespace(region))
		printf("namespace:               %s (struct pages: %s)\n",
		       daxpool_region_get_namespace(region),
		       daxpool_region_get_memmap(region) ?: "unknown");
	if (daxpool_region_is_cxl(region) == 1) {
		unsigned int ways = 0, granularity = 0;

		daxpool_region_get_cxl_interleave(region, &ways, &granularity);
		printf("cxl:                     %s (decoder %s, memdevs %s, %u-way interleave, "
		       "granularity %u)\n",
		       daxpool_region_get_cxl_region(region), daxpool_region_get_cxl_decoder(region),
		       daxpool_region_get_cxl_memdevs(region), ways, granularity);
	} else if (daxpool_region_get_kind(region) == DAXPOOL_REGION_DEVDAX) {
		printf("cxl:                     no: %s\n", daxpool_region_get_cxl_why(region));
	}
}

int cmd_info(int argc, char **argv, struct daxpool_ctx *ctx)
{
	struct daxpool_region *region = NULL;
	struct daxpool_pool *pool = NULL;
	bool json;
	int r, pool_r;

	r = daxpoolctl_open_region_arg("info", argc, argv, info_usage, ctx, DAXPOOL_REGION_RDONLY,
				       &json, &region);
	if (r >= 0)
		return r;
	/* A pool in the region: its fields; none: say so; damaged: say how. */
	pool_r = daxpool_pool_open(region, DAXPOOL_POOL_RDONLY, &pool);
	if (json) {
		json_object *o = info_json(region);

		json_object_object_add(o, "pool", pool ? daxpoolctl_pool_json(pool) : NULL);
		json_object_object_add(o, "pool_error",
				       pool_r < 0 && pool_r != -ENOMSG
					       ? json_object_new_string(strerrorname_np(-pool_r) ?: "?")
					       : NULL);

		printf("%s\n", json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY |
								      JSON_C_TO_STRING_NOSLASHESCAPE));
		json_object_put(o);
	} else {
		info_human(region);
		if (pool)
			daxpoolctl_pool_human(pool);
		else if (pool_r == -ENOMSG)
			printf("pool:                    none\n");
		else
			printf("pool:                    unusable (%s): see 'daxpoolctl check'\n",
			       strerror(-pool_r));
	}
	daxpool_pool_unref(pool);
	daxpool_region_unref(region);
	return DAXPOOLCTL_EXIT_OK;
}
