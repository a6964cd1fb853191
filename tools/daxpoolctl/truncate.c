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
	m.op.op = DP_OP_TRUNCATE;
	m.op.timeout_ms = -1;
	optind = 1;
	while ((c = getopt_long(argc, argv, "t:fjs:h", opts, NULL)) != -1) {
		switch (c) {
		case 't':
			t = strtod(optarg, &end);
			if (*end || t < 0 || t > 86400) {
				fprintf(stderr, "daxpoolctl truncate: bad timeout '%s'\n", optarg);
				return DAXPOOLCTL_EXIT_USAGE;
			}
			m.op.timeout_ms = (int)(t * 1000);
			break;
		case 'f': m.op.flags |= DP_OP_FORCE; break;
		case 'j': o.json = true; break;
		case 's': o.socket = optarg; break;
		case 'h': truncate_usage(stdout); return DAXPOOLCTL_EXIT_OK;
		default: truncate_usage(stderr); return DAXPOOLCTL_EXIT_USAGE;
		}
	}
	if (argc - optind != 2 || daemon_parse_size(argv[optind + 1], &m.op.offset) < 0 ||
	    m.op.offset > INT64_MAX) {
		truncate_usage(stderr);
		return DAXPOOLCTL_EXIT_USAGE;
	}
	snprintf(m.op.target, sizeof(m.op.target), "%s",
		 daemon_target(argv[optind], buf, sizeof(buf)));
	return daemon_run_op("truncate", &o, &m);
}
