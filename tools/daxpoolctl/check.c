/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* daxpoolctl check [--json] PATH: check a pool without writing to it. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include <json-c/json.h>

#include "builtin.h"
#include "daxpool.h"

static void check_usage(FILE *f)
{
	fprintf(f, "Usage: daxpoolctl check [--json] PATH\n\n"
		   "Check the pool in the region PATH: both header copies and every extent\n"
		   "entry. Never writes: the region is opened read-only.\n\n"
		   "  -j, --json  print one JSON object\n"
		   "  -h, --help  this help\n\n"
		   "Exit status: 0 the pool is good, 1 problems found (or no pool), 2 bad usage.\n");
}

int cmd_check(int argc, char **argv, struct daxpool_ctx *ctx)
{
	struct daxpool_region *region = NULL;
	struct daxpoolctl_problems p = { 0 };
	bool json;
	int r;

	r = daxpoolctl_open_region_arg("check", argc, argv, check_usage, ctx, DAXPOOL_REGION_RDONLY,
				       &json, &region);
	if (r >= 0)
		return r;
	p.json = json;
	p.list = json_object_new_array();
	r = daxpool_pool_check(region, daxpoolctl_problem, &p);
	daxpool_region_unref(region);
	if (json) {
		json_object *j = json_object_new_object();

		json_object_object_add(j, "path", json_object_new_string(argv[optind]));
		json_object_object_add(j, "ok", json_object_new_boolean(r == 0));
		json_object_object_add(j, "error", r < 0 ? json_object_new_string(
								  strerrorname_np(-r) ?: "?")
							  : NULL);
		json_object_object_add(j, "problems", json_object_get(p.list));
		printf("%s\n", json_object_to_json_string_ext(j, JSON_C_TO_STRING_PRETTY |
								      JSON_C_TO_STRING_NOSLASHESCAPE));
		json_object_put(j);
	} else if (r == 0) {
		printf("%s: pool is good\n", argv[optind]);
	} else if (r > 0) {
		printf("%s: %d problem(s) found; 'daxpoolctl repair' fixes them\n", argv[optind], r);
	} else {
		printf("%s: no usable pool: %s\n", argv[optind], strerror(-r));
	}
	json_object_put(p.list);
	return r == 0 ? DAXPOOLCTL_EXIT_OK : DAXPOOLCTL_EXIT_FAILURE;
}
