/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* daxpoolctl: inspect and manage daxpool regions. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <syslog.h>

#include "builtin.h"
#include "daxpool.h"

static const struct daxpoolctl_cmd commands[] = {
	{ "info", "describe a region: kind, size, alignment, DAX, persistence granularity",
	  cmd_info },
	{ "create", "format a region as an empty pool", cmd_create },
	{ "check", "check a pool's headers and extent table without writing", cmd_check },
	{ "repair", "repair a pool: restore a header copy, drop bad extent entries", cmd_repair },
	{ "extents", "list a pool's extents", cmd_extents },
	/* daxpoold (tools/daxpoold): who holds what; release after the pins drain. */
	{ "status", "daxpoold: processes, regions, maps and pins; outside holders", cmd_status },
	{ "pins", "daxpoold: every registered pin of a device or file", cmd_pins },
	{ "release", "daxpoold: drain every holder, then release a device", cmd_release },
	{ "truncate", "daxpoold: drain a file's tail in every process, then truncate", cmd_truncate },
	{ "punch", "daxpoold: drain a range in every process, then punch a hole", cmd_punch },
};

static void usage(FILE *f)
{
	fprintf(f, "Usage: daxpoolctl [--verbose] COMMAND [ARGS]\n\nCommands:\n");
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		fprintf(f, "  %-10s %s\n", commands[i].name, commands[i].summary);
	fprintf(f, "\nOptions:\n"
		   "  -v, --verbose  log library messages down to debug\n"
		   "  -h, --help     this help; 'daxpoolctl COMMAND --help' for a command\n"
		   "  -V, --version  print the version\n"
		   "\nExit status: 0 success, 1 the operation failed (or check found a problem),\n"
		   "2 bad usage.\n");
}

int main(int argc, char **argv)
{
	struct daxpool_ctx *ctx = NULL;
	bool verbose = false;
	int i = 1, r;

	for (; i < argc && argv[i][0] == '-'; i++) {
		if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
			usage(stdout);
			return DAXPOOLCTL_EXIT_OK;
		} else if (!strcmp(argv[i], "-V") || !strcmp(argv[i], "--version")) {
			printf("daxpoolctl %s\n", DAXPOOL_VERSION);
			return DAXPOOLCTL_EXIT_OK;
		} else if (!strcmp(argv[i], "-v") || !strcmp(argv[i], "--verbose")) {
			verbose = true;
		} else {
			fprintf(stderr, "daxpoolctl: unknown option '%s'\n", argv[i]);
			usage(stderr);
			return DAXPOOLCTL_EXIT_USAGE;
		}
	}
	if (i >= argc) {
		usage(stderr);
		return DAXPOOLCTL_EXIT_USAGE;
	}
	for (size_t c = 0; c < sizeof(commands) / sizeof(commands[0]); c++) {
		if (strcmp(argv[i], commands[c].name) != 0)
			continue;
		r = daxpool_ctx_new(&ctx);
		if (r < 0) {
			fprintf(stderr, "daxpoolctl: cannot create a context: %s\n", strerror(-r));
			return DAXPOOLCTL_EXIT_FAILURE;
		}
		if (verbose)
			daxpool_ctx_set_log_priority(ctx, LOG_DEBUG);
		r = commands[c].fn(argc - i, argv + i, ctx);
		daxpool_ctx_unref(ctx);
		return r;
	}
	fprintf(stderr, "daxpoolctl: unknown command '%s'\n", argv[i]);
	usage(stderr);
	return DAXPOOLCTL_EXIT_USAGE;
}
