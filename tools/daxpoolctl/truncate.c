/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* daxpoolctl truncate FILE SIZE: drain the tail in every process, then ftruncate. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "builtin.h"
#include "daemon.h"

static void truncate_usage(FILE *f)
{
	fprintf(f, "Usage: daxpoolctl truncate [--timeout S] [--force] [--json] [--socket PATH] FILE SIZE\n\n"
		   "Change FILE's size through daxpoold: the range from SIZE to the end is zapped in\n"
		   "every process that registered FILE (their maps and pins there are revoked, new\n"
		   "ones fail), daxpoold waits until it is idle, truncates, and the processes reopen\n"
		   "what still lies inside the file. On an fsdax file this avoids a truncate that\n"
		   "blocks on pinned pages (and never wakes on Linux 6.1). SIZE takes K, M, G, T.\n\n"
		   "  -t, --timeout S    wait at most S seconds for the holders\n"
		   "  -f, --force        proceed although processes outside daxpool map the file\n"
		   "  -j, --json         print daxpoold's JSON document\n"
		   "  -s, --socket PATH  daxpoold's socket\n"
		   "  -h, --help         this help\n");
}

int cmd_truncate(int argc, char **argv, struct daxpool_ctx *ctx)
{
	struct daemon_opts o = { 0 };
	struct dp_msg m;
	char buf[4096];
	int r;

	(void)ctx;
	r = daemon_parse_op("truncate", DP_OP_TRUNCATE, argc, argv, truncate_usage, &o, &m);
	if (r >= 0)
		return r;
	if (argc - optind != 2 || daemon_parse_size(argv[optind + 1], &m.op.offset) < 0 ||
	    m.op.offset > INT64_MAX) {
		truncate_usage(stderr);
		return DAXPOOLCTL_EXIT_USAGE;
	}
	snprintf(m.op.target, sizeof(m.op.target), "%s",
		 daemon_target(argv[optind], buf, sizeof(buf)));
	return daemon_run_op("truncate", &o, &m);
}
