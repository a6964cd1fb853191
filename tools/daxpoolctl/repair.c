/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* daxpoolctl repair [--json] PATH: fix what check finds, saying what was written. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include <json-c/json.h>

#include "builtin.h"
#include "daxpool.h"

static void repair_usage(FILE *f)
{
	fprintf(f, "Usage: daxpoolctl repair [--json] PATH\n\n"
		   "Repair the pool in the region PATH. Writes only what it reports: a bad\n"
		   "header copy is rewritten from the good one; a bad extent entry is dropped\n"
		   "(the extent's data is left alone). Needs the pool's writer lock.\n\n"
		   "  -j, --json  print one JSON object\n"
		   "  -h, --help  this help\n\n"
		   "Exit status: 0 the pool is good now (repaired or nothing to do), 1 it could\n"
		   "not be repaired (no good header copy, busy, I/O), 2 bad usage.\n");
}

int cmd_repair(int argc, char **argv, struct daxpool_ctx *ctx)
{
	struct daxpool_region *region = NULL;
	struct daxpoolctl_problems p = { 0 };
	bool json;
	int r, after = -1;

	r = daxpoolctl_open_region_arg("repair", argc, argv, repair_usage, ctx, 0, &json,
				       &region);
	if (r >= 0)
		return r;
	p.json = json;
	p.list = json_object_new_array();
	r = daxpool_pool_repair(region, daxpoolctl_problem, &p);
	if (r >= 0)
		after = daxpool_pool_check(region, NULL, NULL);
	daxpool_region_unref(region);
	if (json) {
		json_object *j = json_object_new_object();

		json_object_object_add(j, "path", json_object_new_string(argv[optind]));
		json_object_object_add(j, "ok", json_object_new_boolean(after == 0));
		json_object_object_add(j, "error", r < 0 ? json_object_new_string(
								  strerrorname_np(-r) ?: "?")
							  : NULL);
		json_object_object_add(j, "repaired", json_object_get(p.list));
		printf("%s\n", json_object_to_json_string_ext(j, JSON_C_TO_STRING_PRETTY |
								      JSON_C_TO_STRING_NOSLASHESCAPE));
		json_object_put(j);
	} else if (r < 0) {
		printf("%s: not repaired: %s\n", argv[optind], strerror(-r));
	} else if (r == 0) {
		printf("%s: nothing to repair\n", argv[optind]);
	} else {
		printf("%s: %d repair(s) written; the pool is %s\n", argv[optind], r,
		       after == 0 ? "good" : "still not good");
	}
	json_object_put(p.list);
	return after == 0 ? DAXPOOLCTL_EXIT_OK : DAXPOOLCTL_EXIT_FAILURE;
}
