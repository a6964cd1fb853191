/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* daxpoolctl release DEVICE|PATH: drain every holder, then release the device. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "builtin.h"
#include "daemon.h"

static void release_usage(FILE *f)
{
	fprintf(f,
		"Usage: daxpoolctl release [--timeout S] [--force] [--json] [--socket PATH] DEVICE|PATH\n\n"
		"Release a device-dax device (dax0.0 or /dev/dax0.0) through daxpoold: new maps and\n"
		"pins of it fail in every process at once, every process holding it is told to\n"
		"revoke its maps and pins, and only when all are idle is the device disabled\n"
		"(libdaxctl). For a file (a stand-in for a device) the release is the end of the\n"
		"drain: nothing is disabled. If holders remain at the deadline nothing is\n"
		"released, each holder is listed (pid, command, ranges, pin kinds, ages), the\n"
		"device stays usable and the exit status is 1.\n\n"
		"  -t, --timeout S    wait at most S seconds for the holders (default: daxpoold's\n"
		"                     release_timeout, 30 s)\n"
		"  -f, --force        release even though processes outside daxpool map the device.\n"
		"                     The kernel does not wait for them: their next access gets\n"
		"                     SIGBUS, and an RDMA memory region or io_uring buffer they still\n"
		"                     have registered on it makes the kernel oops when it is released\n"
		"                     later (the process may hang in D state). Use it only when you\n"
		"                     know those holders hold no pins.\n"
		"  -j, --json         print daxpoold's JSON document\n"
		"  -s, --socket PATH  daxpoold's socket\n"
		"  -h, --help         this help\n");
}

int cmd_release(int argc, char **argv, struct daxpool_ctx *ctx)
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
	m.op.op = DP_OP_RELEASE;
	m.op.timeout_ms = -1;
	optind = 1;
	while ((c = getopt_long(argc, argv, "t:fjs:h", opts, NULL)) != -1) {
		switch (c) {
		case 't':
			t = strtod(optarg, &end);
			if (*end || t < 0 || t > 86400) {
				fprintf(stderr, "daxpoolctl release: bad timeout '%s'\n", optarg);
				return DAXPOOLCTL_EXIT_USAGE;
			}
			m.op.timeout_ms = (int)(t * 1000);
			break;
		case 'f': m.op.flags |= DP_OP_FORCE; break;
		case 'j': o.json = true; break;
		case 's': o.socket = optarg; break;
		case 'h': release_usage(stdout); return DAXPOOLCTL_EXIT_OK;
		default: release_usage(stderr); return DAXPOOLCTL_EXIT_USAGE;
		}
	}
	if (argc - optind != 1) {
		release_usage(stderr);
		return DAXPOOLCTL_EXIT_USAGE;
	}
	snprintf(m.op.target, sizeof(m.op.target), "%s",
		 daemon_target(argv[optind], buf, sizeof(buf)));
	return daemon_run_op("release", &o, &m);
}
