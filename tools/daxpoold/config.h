/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* daxpoold.conf(5): the socket, the release timeout and the limits. */
#ifndef DAXPOOLD_CONFIG_H
#define DAXPOOLD_CONFIG_H

#include <stdbool.h>
#include <stddef.h>

struct dd_config {
	char socket_path[108];
	unsigned int socket_mode;
	char socket_group[64]; /* "" : the daemon's own */
	int release_timeout_ms;
	/* Limits (daxpoold.conf(5)): what one client, or one user, may cost the daemon. */
	unsigned int max_connections, max_connections_per_uid;
	unsigned int max_regions, max_maps, max_pins; /* per client connection */
	unsigned int max_operations_per_uid; /* releases, truncates, punches in progress */
	unsigned int max_scans_per_uid; /* scans of /proc running for one uid (scan.h) */
	size_t max_output; /* bytes queued to one connection: beyond, it is dropped */
	int hello_timeout_ms; /* a connection that sends no HELLO by then is closed */
	int scan_timeout_ms;  /* a status answers without its scan of /proc after this (scan.h) */
	bool mr_tracer;	      /* load the MR tracer (umem_trace.h) */
};
void dd_config_defaults(struct dd_config *cfg);
/* Load @path; a missing file is fine unless @required. Return 0 or -errno (logged). */
int dd_config_load(struct dd_config *cfg, const char *path, bool required);

#endif /* DAXPOOLD_CONFIG_H */
