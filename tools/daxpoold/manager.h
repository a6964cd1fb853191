/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The daemon's state, one object: its configuration, its epoll set, the
 * connections and the operations in progress. The event loop (server.c) owns
 * it; every other part of the daemon gets it as an argument and keeps no
 * state of its own about clients or operations. The probes read the clients
 * through it (udev.c), or through a copy made for a scan off the loop
 * (scan.c); the operations (ops.c) and status (status.c) are built on it.
 * Main thread only.
 */
#ifndef DAXPOOLD_MANAGER_H
#define DAXPOOLD_MANAGER_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <json-c/json.h>

#include "config.h"
#include "conn.h"
#include "target.h"
#include "worker.h"

struct dd_op;
struct dd_scan;

/*
 * A client that got REVOKE of an operation, and whether it answered. Its
 * region points back at it (dd_region.pend) while it waits, so that a
 * REVOKE_DONE finds it in O(1): the region by id in its client's table, the
 * pend from the region.
 */
struct dd_pend {
	struct dd_op *op;
	struct dd_conn *conn; /* NULL: it hung up alive (the operation fails) */
	uint64_t region_id;
	bool done;
	struct dd_pend *next;
};

/* A holder outside daxpool that an operation waits for. */
struct dd_waited {
	pid_t pid;
	uint64_t start_ns; /* tells it from a later process with its pid */
};

#define DD_OUTSIDER_POLL_NS (200ull * 1000000u)

/* A release, truncate or punch in progress (ops.c). */
struct dd_op {
	uint64_t req;
	uint32_t kind, flags;
	struct dd_conn *requester;
	pid_t requester_pid; /* for the audit log, after the requester went */
	uid_t requester_uid;
	char requester_comm[32];
	struct dd_target t; /* what it acts on: resolved once, its descriptor kept */
	uint64_t offset, length; /* the drained range; length 0: to the end */
	uint64_t started_ns, deadline_ns, last_done_ns;
	json_object *outsiders_last; /* the last whole scan's possible holders */
	/* The scan of /proc in progress (scan.h), and what its end decides (ops.c). */
	struct dd_scan *scan;
	int scan_purpose;
	/* Waiting (release --timeout) for holders outside daxpool to go, before the drain. */
	bool may_wait, waiting;
	uint64_t poll_ns, outsiders_gone_ns;
	struct dd_waited *waiting_on;
	size_t n_waiting_on;
	/* Acting: the drain is over, the disable, truncate or punch runs in work. */
	bool acting;
	uint64_t drained_ns; /* when the drain was over and the action began */
	struct dd_work work;
	json_object *outsiders_final, *rdma_final; /* the last check's, for the answer */
	struct dd_pend *pend;
	size_t n_undone; /* of pend, not done: the drain is over at 0 */
	struct dd_op *next;
};

struct dd_manager {
	struct dd_config cfg;
	int epfd;
	struct dd_conn *conns;	    /* every connection with its socket */
	struct dd_conn *gone_conns; /* hung up while draining, waiting for the pidfd (server.c) */
	struct dd_op *ops;	    /* in progress */
	struct dd_scan *scans;	    /* running, owned or abandoned (scan.h) */
	uint64_t next_req;	    /* the next operation's id */
	/* accept4()'s EMFILE (server.c) */
	int reserve_fd;
	bool nofile_logged;
	uint64_t listen_paused_until;
};

/* A manager with @cfg (copied), nothing connected: epfd and reserve_fd -1. */
void dd_manager_init(struct dd_manager *m, const struct dd_config *cfg);
/* Whether an operation in progress drains @r. */
bool dd_manager_region_draining(const struct dd_manager *m, const struct dd_region *r);
/*
 * Pids of the clients that hold (dev, ino) (or, @rdev not 0, that device
 * through any node); *ret_n of them; malloc()ed (NULL, 0 without memory).
 */
pid_t *dd_manager_client_pids(const struct dd_manager *m, uint64_t dev, uint64_t ino,
			      uint64_t rdev, size_t *ret_n);
/* Whether @pid has a client connection (a process may have several). */
bool dd_manager_is_client(const struct dd_manager *m, pid_t pid);
/* Whether @op acts on (dev, ino), or on that device-dax device through any node. */
bool dd_op_matches(const struct dd_op *op, const struct dd_region *r);
/* "release", "truncate", "punch". */
const char *dd_op_name(uint32_t kind);

#endif /* DAXPOOLD_MANAGER_H */
