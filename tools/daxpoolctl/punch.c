/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* daxpoolctl punch FILE OFFSET LENGTH: drain the range in every process, then punch a hole. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "builtin.h"
#include "daemon.h"

static void punch_usage(FILE *f)
{
	fprintf(f, "Usage: daxpoolctl punch [--timeout S] [--force] [--json] [--socket PATH] FILE OFFSET LENGTH\n\n"
		   "Deallocate [OFFSET, OFFSET + LENGTH) of FILE through daxpoold: the range is zapped\n"
		   "in every process that registered FILE, daxpoold waits until it is idle, punches\n"
		   "a hole (fallocate PUNCH_HOLE | KEEP_SIZE), and the processes reopen the range (it\n"
		   "reads zeros). OFFSET and LENGTH take K, M, G, T.\n\n"
		   "  -t, --timeout S    wait at most S seconds for the holders\n"
		   "  -f, --force        proceed although processes outside daxpool map the file\n"
		   "  -j, --json         print daxpoold's JSON document\n"
		   "  -s, --socket PATH  daxpoold's socket\n"
		   "  -h, --help         this help\n");
}

int cmd_punch(int argc, char **argv, struct daxpool_ctx *ctx)
{
	struct daemon_opts o = { 0 };
	struct dp_msg m;
	char buf[4096];
	int r;

	(void)ctx;
	r = daemon_parse_op("punch", DP_OP_PUNCH, argc, argv, punch_usage, &o, &m);
	if (r >= 0)
		return r;
	if (argc - optind != 3 || daemon_parse_size(argv[optind + 1], &m.op.offset) < 0 ||
	    daemon_parse_size(argv[optind + 2], &m.op.length) < 0 || m.op.length == 0 ||
	    m.op.offset > INT64_MAX || m.op.length > INT64_MAX - m.op.offset) {
		punch_usage(stderr);
		return DAXPOOLCTL_EXIT_USAGE;
	}
	snprintf(m.op.target, sizeof(m.op.target), "%s",
		 daemon_target(argv[optind], buf, sizeof(buf)));
	return daemon_run_op("punch", &o, &m);
}
