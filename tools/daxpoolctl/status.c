/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* daxpoolctl status [DEVICE|PATH]: who holds what, from daxpoold. */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "builtin.h"
#include "daemon.h"

static void status_usage(FILE *f)
{
	fprintf(f, "Usage: daxpoolctl status [--json] [--socket PATH] [DEVICE|PATH]\n\n"
		   "Show the processes registered with daxpoold, the regions they opened and how\n"
		   "many maps and pins they hold, holders outside daxpool, and operations in\n"
		   "progress. Root sees everything; other users their own processes and the\n"
		   "devices and files they own.\n\n"
		   "  -j, --json         print daxpoold's JSON document\n"
		   "  -s, --socket PATH  daxpoold's socket (default $DAXPOOLD_SOCKET, else\n"
		   "                     " DP_DAEMON_SOCKET_DEFAULT ")\n"
		   "  -h, --help         this help\n");
}

int cmd_status(int argc, char **argv, struct daxpool_ctx *ctx)
{
	static const struct option opts[] = {
		{ "json", no_argument, NULL, 'j' }, { "socket", required_argument, NULL, 's' },
		{ "help", no_argument, NULL, 'h' }, { NULL, 0, NULL, 0 },
	};
	struct daemon_opts o = { 0 };
	struct dp_msg m = { .type = DP_MSG_STATUS };
	json_object *doc, *clients, *ops;
	char buf[4096];
	int c, status;

	(void)ctx;
	optind = 1;
	while ((c = getopt_long(argc, argv, "js:h", opts, NULL)) != -1) {
		switch (c) {
		case 'j': o.json = true; break;
		case 's': o.socket = optarg; break;
		case 'h': status_usage(stdout); return DAXPOOLCTL_EXIT_OK;
		default: status_usage(stderr); return DAXPOOLCTL_EXIT_USAGE;
		}
	}
	if (argc - optind > 1) {
		status_usage(stderr);
		return DAXPOOLCTL_EXIT_USAGE;
	}
	if (optind < argc)
		snprintf(m.status.target, sizeof(m.status.target), "%s",
			 daemon_target(argv[optind], buf, sizeof(buf)));
	if (daemon_request("status", &o, &m, &doc, &status) < 0)
		return DAXPOOLCTL_EXIT_FAILURE;
	if (o.json) {
		daemon_print_json(doc);
	} else if (status < 0) {
		fprintf(stderr, "daxpoolctl status: %s\n",
			json_object_get_string(json_object_object_get(doc, "error")));
	} else {
		clients = json_object_object_get(doc, "clients");
		printf("%-8s %-16s %-6s %-36s %-7s %-6s %-6s %s\n", "PID", "COMMAND", "UID", "PATH",
		       "KIND", "MAPS", "PINS", "STATE");
		for (size_t i = 0; i < json_object_array_length(clients); i++) {
			json_object *cl = json_object_array_get_idx(clients, i);
			json_object *regions = json_object_object_get(cl, "regions");

			if (!json_object_array_length(regions))
				printf("%-8d %-16s %-6d %-36s\n",
				       json_object_get_int(json_object_object_get(cl, "pid")),
				       json_object_get_string(json_object_object_get(cl, "comm")),
				       json_object_get_int(json_object_object_get(cl, "uid")),
				       "(no region)");
			for (size_t j = 0; j < json_object_array_length(regions); j++) {
				json_object *r = json_object_array_get_idx(regions, j);

				printf("%-8d %-16s %-6d %-36s %-7s %-6zu %-6zu %s\n",
				       json_object_get_int(json_object_object_get(cl, "pid")),
				       json_object_get_string(json_object_object_get(cl, "comm")),
				       json_object_get_int(json_object_object_get(cl, "uid")),
				       json_object_get_string(json_object_object_get(r, "path")),
				       json_object_get_string(json_object_object_get(r, "kind")),
				       json_object_array_length(json_object_object_get(r, "maps")),
				       json_object_array_length(json_object_object_get(r, "pins")),
				       json_object_get_boolean(json_object_object_get(r, "draining"))
					       ? "draining"
					       : "live");
			}
		}
		daemon_print_outsiders(json_object_object_get(doc, "outsiders"));
		ops = json_object_object_get(doc, "operations");
		for (size_t i = 0; i < json_object_array_length(ops); i++) {
			json_object *op = json_object_array_get_idx(ops, i);

			printf("\nin progress: %s of %s for %.1fs, %d client(s) still draining\n",
			       json_object_get_string(json_object_object_get(op, "operation")),
			       json_object_get_string(json_object_object_get(op, "target")),
			       json_object_get_double(json_object_object_get(op, "age_s")),
			       json_object_get_int(json_object_object_get(op, "pending_clients")));
		}
	}
	json_object_put(doc);
	return status < 0 ? DAXPOOLCTL_EXIT_FAILURE : DAXPOOLCTL_EXIT_OK;
}
