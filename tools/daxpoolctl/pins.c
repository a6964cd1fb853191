/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* daxpoolctl pins [DEVICE|PATH]: every registered pin (and map), one per line. */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "builtin.h"
#include "daemon.h"

static void pins_usage(FILE *f)
{
	fprintf(f, "Usage: daxpoolctl pins [--maps] [--json] [--socket PATH] [DEVICE|PATH]\n\n"
		   "List the pins registered with daxpoold (of DEVICE or PATH only, if given):\n"
		   "process, range, kind (transient: one I/O; longterm: an RDMA MR or a registered\n"
		   "buffer), device access and age.\n\n"
		   "  -m, --maps         list the maps too\n"
		   "  -j, --json         print daxpoold's JSON document\n"
		   "  -s, --socket PATH  daxpoold's socket\n"
		   "  -h, --help         this help\n");
}

int cmd_pins(int argc, char **argv, struct daxpool_ctx *ctx)
{
	static const struct option opts[] = {
		{ "maps", no_argument, NULL, 'm' },	    { "json", no_argument, NULL, 'j' },
		{ "socket", required_argument, NULL, 's' }, { "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct daemon_opts o = { 0 };
	struct dp_msg m = { .type = DP_MSG_STATUS };
	bool maps = false;
	json_object *doc;
	char buf[4096];
	int c, status;

	(void)ctx;
	optind = 1;
	while ((c = getopt_long(argc, argv, "mjs:h", opts, NULL)) != -1) {
		switch (c) {
		case 'm': maps = true; break;
		case 'j': o.json = true; break;
		case 's': o.socket = optarg; break;
		case 'h': pins_usage(stdout); return DAXPOOLCTL_EXIT_OK;
		default: pins_usage(stderr); return DAXPOOLCTL_EXIT_USAGE;
		}
	}
	if (argc - optind > 1) {
		pins_usage(stderr);
		return DAXPOOLCTL_EXIT_USAGE;
	}
	if (optind < argc)
		snprintf(m.status.target, sizeof(m.status.target), "%s",
			 daemon_target(argv[optind], buf, sizeof(buf)));
	if (daemon_request("pins", &o, &m, &doc, &status) < 0)
		return DAXPOOLCTL_EXIT_FAILURE;
	if (o.json)
		daemon_print_json(doc);
	else if (status < 0)
		fprintf(stderr, "daxpoolctl pins: %s\n",
			json_object_get_string(json_object_object_get(doc, "error")));
	else
		daemon_print_pins(json_object_object_get(doc, "clients"), maps);
	json_object_put(doc);
	return status < 0 ? DAXPOOLCTL_EXIT_FAILURE : DAXPOOLCTL_EXIT_OK;
}
