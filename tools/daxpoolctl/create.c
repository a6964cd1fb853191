/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* daxpoolctl create [--layout NAME] [--max-extents N] [--force] [--json] PATH: format a pool. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "builtin.h"
#include "daxpool.h"

static void create_usage(FILE *f)
{
	fprintf(f, "Usage: daxpoolctl create [--layout NAME] [--max-extents N] [--force] [--json] PATH\n\n"
		   "Format the region PATH as an empty pool. Refuses a region that already holds\n"
		   "a pool (or what is left of one) unless --force is given.\n\n"
		   "  -l, --layout NAME     the application's layout name (default \"default\")\n"
		   "  -n, --max-extents N   extent table slots (default 1024)\n"
		   "  -f, --force           overwrite an existing pool\n"
		   "  -j, --json            print one JSON object\n"
		   "  -h, --help            this help\n\n"
		   "Exit status: 0 created, 1 failed, 2 bad usage.\n");
}

int cmd_create(int argc, char **argv, struct daxpool_ctx *ctx)
{
	static const struct option opts[] = {
		{ "layout", required_argument, NULL, 'l' },
		{ "max-extents", required_argument, NULL, 'n' },
		{ "force", no_argument, NULL, 'f' },
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct daxpool_region *region = NULL;
	struct daxpool_pool_opts *o = NULL;
	struct daxpool_pool *pool = NULL;
	const char *layout = "default";
	unsigned long max = 0;
	bool json = false, force = false;
	char *end;
	int c, r;

	optind = 1;
	while ((c = getopt_long(argc, argv, "l:n:fjh", opts, NULL)) != -1) {
		switch (c) {
		case 'l':
			layout = optarg;
			break;
		case 'n':
			errno = 0;
			max = strtoul(optarg, &end, 0);
			if (errno || *end || max == 0 || max > (1u << 20)) {
				fprintf(stderr, "daxpoolctl create: bad --max-extents '%s' (1 to 1048576)\n",
					optarg);
				return DAXPOOLCTL_EXIT_USAGE;
			}
			break;
		case 'f':
			force = true;
			break;
		case 'j':
			json = true;
			break;
		case 'h':
			create_usage(stdout);
			return DAXPOOLCTL_EXIT_OK;
		default:
			create_usage(stderr);
			return DAXPOOLCTL_EXIT_USAGE;
		}
	}
	if (optind != argc - 1) {
		fprintf(stderr, "daxpoolctl create: expected exactly one PATH\n");
		create_usage(stderr);
		return DAXPOOLCTL_EXIT_USAGE;
	}
	r = daxpool_pool_opts_new(&o);
	if (r == 0 && max)
		r = daxpool_pool_opts_set_max_extents(o, (unsigned int)max);
	if (r == 0)
		r = daxpool_pool_opts_set_overwrite(o, force);
	if (r == 0)
		r = daxpool_region_open(ctx, argv[optind], 0, &region);
	if (r == 0)
		r = daxpool_pool_create(region, layout, o, &pool);
	daxpool_pool_opts_free(o);
	if (r < 0) {
		fprintf(stderr, "daxpoolctl create: %s: %s%s\n", argv[optind], strerror(-r),
			r == -EEXIST ? " (a pool is there; --force overwrites it)" : "");
		daxpool_region_unref(region);
		return DAXPOOLCTL_EXIT_FAILURE;
	}
	if (json) {
		json_object *j = daxpoolctl_pool_json(pool);

		json_object_object_add(j, "path", json_object_new_string(argv[optind]));
		printf("%s\n", json_object_to_json_string_ext(j, JSON_C_TO_STRING_PRETTY |
								      JSON_C_TO_STRING_NOSLASHESCAPE));
		json_object_put(j);
	} else {
		printf("%s: pool created\n", argv[optind]);
		daxpoolctl_pool_human(pool);
	}
	daxpool_pool_unref(pool);
	daxpool_region_unref(region);
	return DAXPOOLCTL_EXIT_OK;
}
