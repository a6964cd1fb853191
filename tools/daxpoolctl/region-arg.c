/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The command line of the region subcommands (info, check, repair, extents): [--json] PATH. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "builtin.h"
#include "daxpool.h"

int daxpoolctl_open_region_arg(const char *cmd, int argc, char **argv, void (*usage)(FILE *),
			       struct daxpool_ctx *ctx, unsigned int flags, bool *ret_json,
			       struct daxpool_region **ret_region)
{
	static const struct option opts[] = {
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int c, r;

	*ret_json = false;
	optind = 1;
	while ((c = getopt_long(argc, argv, "jh", opts, NULL)) != -1) {
		switch (c) {
		case 'j':
			*ret_json = true;
			break;
		case 'h':
			usage(stdout);
			return DAXPOOLCTL_EXIT_OK;
		default:
			usage(stderr);
			return DAXPOOLCTL_EXIT_USAGE;
		}
	}
	if (optind != argc - 1) {
		fprintf(stderr, "daxpoolctl %s: expected exactly one PATH\n", cmd);
		usage(stderr);
		return DAXPOOLCTL_EXIT_USAGE;
	}
	r = daxpool_region_open(ctx, argv[optind], flags, ret_region);
	if (r < 0) {
		fprintf(stderr, "daxpoolctl %s: %s: %s\n", cmd, argv[optind], strerror(-r));
		return DAXPOOLCTL_EXIT_FAILURE;
	}
	return -1;
}
