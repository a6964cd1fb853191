/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* daxpoolctl's side of the daxpoold protocol, shared by its daemon subcommands (daemon.c). */
#ifndef DAXPOOLCTL_DAEMON_H
#define DAXPOOLCTL_DAEMON_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include <json-c/json.h>

#include "util/protocol.h"

/* Options every daemon subcommand takes: --socket, --json. */
struct daemon_opts {
	const char *socket; /* NULL: $DAXPOOLD_SOCKET, else the default */
	bool json;
};

/*
 * Send @req to the daemon and read its whole answer. On success (the daemon
 * answered, whatever it said) returns 0 with *ret_doc (a JSON object) and
 * *ret_status (0 or the daemon's -errno). Return: -errno if the daemon could
 * not be reached or went away (a message is printed).
 */
int daemon_request(const char *cmd, const struct daemon_opts *o, const struct dp_msg *req,
		   json_object **ret_doc, int *ret_status);

/* Print a JSON document, pretty. */
void daemon_print_json(json_object *doc);

/* A target as given, or its absolute path when it names an existing file; into buf. */
const char *daemon_target(const char *arg, char *buf, size_t size);

/* Parse a size with an optional K, M, G, T suffix (powers of 1024). */
int daemon_parse_size(const char *s, uint64_t *ret);

/* Tables: the holdings of a "clients" array, and the "outsiders" array. */
void daemon_print_pins(json_object *clients, bool with_maps);
void daemon_print_outsiders(json_object *outsiders);
/* Why the outsiders carry no RDMA MRs, when the scan could not see them (a "rdma" object). */
void daemon_print_rdma(json_object *rdma);

/*
 * Parse the options of an operation subcommand (release, truncate, punch):
 * --timeout S, --force, --json, --socket PATH, --help, into @o and the OP
 * message @m (of operation @op). @usage prints the subcommand's help.
 * Return: -1 to go on with the arguments from argv[optind]; otherwise the
 * exit code to return at once (help printed, or bad usage).
 */
int daemon_parse_op(const char *cmd, uint32_t op, int argc, char **argv, void (*usage)(FILE *),
		    struct daemon_opts *o, struct dp_msg *m);

/* Run an OP request and print its outcome. Return: the exit code (0, or 1 if refused or failed). */
int daemon_run_op(const char *cmd, const struct daemon_opts *o, const struct dp_msg *req);

#endif
