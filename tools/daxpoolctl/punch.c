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
	static const struct option opts[] = {
		{ "timeout", required_argument, NULL, 't' }, { "force", no_argument, NULL, 'f' },
		{ "json", no_argument, NULL, 'j' },	     { "socket", required_argument, NULL, 's' },
		{ "help", no_argument, NULL, 'h' },	     { NULL, 0, NULL, 0 },
	};
	struct daemon_opts o = { 0 };
	struct dp_msg m = { .type = DP_MSG_OP };
	char buf[4096], *end;
	double t;
	int c;

	(void)ctx;
	m.op.op = DP_OP_PUNCH;
	m.op.timeout_ms = -1;
	optind = 1;
	while ((c = getopt_long(argc, argv, "t:fjs:h", opts, NULL)) != -1) {
		switch (c) {
		case 't':
			t = strtod(optarg, &end);
			if (*end || t < 0 || t > 86400) {
				fprintf(stderr, "daxpoolctl punch: bad timeout '%s'\n", optarg);
				return DAXPOOLCTL_EXIT_USAGE;
			}
			m.op.timeout_ms = (int)(t * 1000);
			break;
		case 'f': m.op.flags |= DP_OP_FORCE; break;
		case 'j': o.json = true; break;
		case 's': o.socket = optarg; break;
		case 'h': punch_usage(stdout); return DAXPOOLCTL_EXIT_OK;
		default: punch_usage(stderr); return DAXPOOLCTL_EXIT_USAGE;
		}
	}
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
