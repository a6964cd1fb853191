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
		"Usage: daxpoolctl release [--timeout S] [--force] [--teardown] [--json] [--socket PATH]\n"
		"                          DEVICE|PATH\n\n"
		"Release a device-dax device (dax0.0 or /dev/dax0.0) through daxpoold: new maps and\n"
		"pins of it fail in every process at once, every process holding it is told to\n"
		"revoke its maps and pins, and only when all are idle is the device disabled\n"
		"(libdaxctl). For a file (a stand-in for a device) the release is the end of the\n"
		"drain: nothing is disabled. If holders remain at the deadline nothing is\n"
		"released, each holder is listed (pid, command, ranges, pin kinds, ages), the\n"
		"device stays usable and the exit status is 1.\n\n"
		"  -t, --timeout S    wait at most S seconds for the holders (default: daxpoold's\n"
		"                     release_timeout, 30 s)\n"
		"  -f, --force        release even though processes outside daxpool map the device\n"
		"                     or hold RDMA MRs or io_uring buffers that may pin it (the\n"
		"                     refusal lists each MR with its pid and length).\n"
		"                     The kernel does not wait for them: their next access gets\n"
		"                     SIGBUS, and an RDMA memory region or io_uring buffer they still\n"
		"                     have registered on it makes the kernel oops when it is released\n"
		"                     later (the process may hang in D state). Use it only when you\n"
		"                     know those holders hold no pins.\n"
		"      --teardown     a device on a CXL region: after the drain and the disable,\n"
		"                     give the backing back for hot-remove: destroy its namespace\n"
		"                     (its data is gone), disable and delete the CXL region\n"
		"                     (libcxl). Refused before anything is drained unless the\n"
		"                     device is the only namespace on a CXL region; never\n"
		"                     with --force.\n"
		"  -j, --json         print daxpoold's JSON document\n"
		"  -s, --socket PATH  daxpoold's socket\n"
		"  -h, --help         this help\n");
}

int cmd_release(int argc, char **argv, struct daxpool_ctx *ctx)
{
	struct daemon_opts o = { 0 };
	struct dp_msg m;
	char buf[4096];
	int r;

	(void)ctx;
	r = daemon_parse_op("release", DP_OP_RELEASE, argc, argv, release_usage, &o, &m);
	if (r >= 0)
		return r;
	if (argc - optind != 1) {
		release_usage(stderr);
		return DAXPOOLCTL_EXIT_USAGE;
	}
	snprintf(m.op.target, sizeof(m.op.target), "%s",
		 daemon_target(argv[optind], buf, sizeof(buf)));
	return daemon_run_op("release", &o, &m);
}
