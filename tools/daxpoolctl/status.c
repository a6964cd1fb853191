/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* daxpoolctl status [DEVICE|PATH]: who holds what, from daxpoold. */
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "builtin.h"
#include "daemon.h"

static void status_usage(FILE *f)
{
	fprintf(f, "Usage: daxpoolctl status [--json] [--socket PATH] [DEVICE|PATH]\n\n"
		   "Show the processes registered with daxpoold, the regions they opened and how\n"
		   "many maps and pins they hold, holders outside daxpool, operations in\n"
		   "progress, and devices removed or unbound without daxpoold (state gone).\n"
		   "Root sees everything; other users their own processes and the devices\n"
		   "and files they own.\n\n"
		   "  -j, --json         print daxpoold's JSON document\n"
		   "  -s, --socket PATH  daxpoold's socket (default $DAXPOOLD_SOCKET, else\n"
		   "                     " DP_DAEMON_SOCKET_DEFAULT ")\n"
		   "  -h, --help         this help\n");
}

/*
 * Say where a file cannot be watched (no lease) and where a lease went to
 * another process: the kernel's own word on it, and what it means.
 */
/* CLOCK_REALTIME ns as local HH:MM:SS (a static buffer). */
static const char *clock_of(uint64_t ns)
{
	static char buf[32];
	time_t secs = (time_t)(ns / 1000000000u);
	struct tm tm;

	if (!ns || !localtime_r(&secs, &tm) || !strftime(buf, sizeof(buf), "%H:%M:%S", &tm))
		snprintf(buf, sizeof(buf), "?");
	return buf;
}

static void print_lease_notes(json_object *clients)
{
	for (size_t i = 0; i < json_object_array_length(clients); i++) {
		json_object *cl = json_object_array_get_idx(clients, i);
		json_object *regions = json_object_object_get(cl, "regions");

		for (size_t j = 0; j < json_object_array_length(regions); j++) {
			json_object *r = json_object_array_get_idx(regions, j);
			json_object *lease = json_object_object_get(r, "lease");
			const char *state = json_object_get_string(json_object_object_get(lease, "state"));
			const char *path = json_object_get_string(json_object_object_get(r, "path"));
			int pid = json_object_get_int(json_object_object_get(cl, "pid"));
			uint64_t breaks = json_object_get_uint64(json_object_object_get(lease, "breaks"));

			if (state && strcmp(state, "refused") == 0)
				printf("\nno lease: %s (pid %d): %s: another process can truncate or "
				       "change it without the pins draining first\n",
				       path, pid,
				       json_object_get_string(json_object_object_get(lease, "error")));
			else if (state && strcmp(state, "off") == 0)
				printf("\nno lease: %s (pid %d): leases are turned off in that process\n",
				       path, pid);
			if (breaks)
				printf("\nlease breaks: %s (pid %d): given up to another process %llu "
				       "time(s), each after a drain\n",
				       path, pid, (unsigned long long)breaks);
		}
	}
}

int cmd_status(int argc, char **argv, struct daxpool_ctx *ctx)
{
	static const struct option opts[] = {
		{ "json", no_argument, NULL, 'j' }, { "socket", required_argument, NULL, 's' },
		{ "help", no_argument, NULL, 'h' }, { NULL, 0, NULL, 0 },
	};
	struct daemon_opts o = { 0 };
	struct dp_msg m = { .type = DP_MSG_STATUS };
	json_object *doc, *clients, *ops, *gone;
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
		printf("%-8s %-16s %-6s %-36s %-7s %-6s %-6s %-8s %s\n", "PID", "COMMAND", "UID",
		       "PATH", "KIND", "MAPS", "PINS", "STATE", "LEASE");
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

				json_object *lease = json_object_object_get(r, "lease");

				printf("%-8d %-16s %-6d %-36s %-7s %-6zu %-6zu %-8s %s\n",
				       json_object_get_int(json_object_object_get(cl, "pid")),
				       json_object_get_string(json_object_object_get(cl, "comm")),
				       json_object_get_int(json_object_object_get(cl, "uid")),
				       json_object_get_string(json_object_object_get(r, "path")),
				       json_object_get_string(json_object_object_get(r, "kind")),
				       json_object_array_length(json_object_object_get(r, "maps")),
				       json_object_array_length(json_object_object_get(r, "pins")),
				       json_object_get_boolean(json_object_object_get(r, "gone"))
					       ? "gone"
				       : json_object_get_boolean(json_object_object_get(r, "draining"))
					       ? "draining"
					       : "live",
				       json_object_get_string(json_object_object_get(lease, "state")));
			}
		}
		print_lease_notes(clients);
		daemon_print_outsiders(json_object_object_get(doc, "outsiders"));
		daemon_print_rdma(json_object_object_get(doc, "rdma"));
		{
			json_object *rec = json_object_object_get(doc, "open_record");

			if (rec && !json_object_get_boolean(json_object_object_get(rec, "recording")))
				printf("(opens of device-dax nodes are not recorded: %s; every process "
				       "with pinned pages counts as a possible holder of them)\n",
				       json_object_get_string(json_object_object_get(rec, "reason")));
		}
		{
			json_object *tr = json_object_object_get(doc, "mr_tracer");

			if (tr && json_object_get_boolean(json_object_object_get(tr, "on")))
				printf("MR tracer: on (RDMA MRs registered since %s are known by "
				       "where they pin; %" PRIu64 " missed)\n",
				       clock_of(json_object_get_uint64(
					       json_object_object_get(tr, "since_ns"))),
				       json_object_get_uint64(json_object_object_get(tr, "missed")));
			else if (tr)
				printf("MR tracer: off (%s): a process with RDMA MRs that had a "
				       "device-dax device counts as a possible holder of it\n",
				       json_object_get_string(json_object_object_get(tr, "reason")));
		}
		gone = json_object_object_get(doc, "gone");
		for (size_t i = 0; i < json_object_array_length(gone); i++) {
			json_object *g = json_object_array_get_idx(gone, i);

			printf("\ngone: %s %s %.1fs ago without a release through daxpoold; "
			       "%d region(s) were told\n",
			       json_object_get_string(json_object_object_get(g, "device")),
			       json_object_get_string(json_object_object_get(g, "event")),
			       json_object_get_double(json_object_object_get(g, "age_s")),
			       json_object_get_int(json_object_object_get(g, "regions_told")));
		}
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
