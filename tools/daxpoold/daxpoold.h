/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* daxpoold: shared declarations of the daemon's files. */
#ifndef DAXPOOLD_H
#define DAXPOOLD_H

#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <syslog.h>

#include <json-c/json.h>

#include "util/protocol.h"

/* ---- log.c-like helpers (main.c) ---- */
extern int dd_log_level;
void dd_log(int prio, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
uint64_t dd_now_ns(void);

/* ---- config.c ---- */
struct dd_config {
	char socket_path[108];
	unsigned int socket_mode;
	int release_timeout_ms;
};
void dd_config_defaults(struct dd_config *cfg);
/* Load @path; a missing file is fine unless @required. Return 0 or -errno. */
int dd_config_load(struct dd_config *cfg, const char *path, bool required);

/* ---- holders.c: what one client holds ---- */
struct dd_holding {
	uint64_t id, region_id, offset, length, created_ns;
	uint32_t kind, access, tid; /* kind 0: a map; else enum daxpool_pin_kind */
	struct dd_holding *hnext;
};

struct dd_idmap {
	struct dd_holding **b;
	size_t nb, n;
};

struct dd_region {
	uint64_t id, dev, ino, rdev, size;
	uint32_t kind;
	char path[DP_PROTO_MAX_PATH + 1];
	char devname[DP_PROTO_MAX_DEVNAME + 1];
	struct dd_region *next;
};

void dd_idmap_put(struct dd_idmap *m, struct dd_holding *h); /* replaces an equal id */
struct dd_holding *dd_idmap_take(struct dd_idmap *m, uint64_t id);
void dd_idmap_clear(struct dd_idmap *m);
#define dd_idmap_for_each(m, i, h)                                                                 \
	for (size_t i = 0; i < (m)->nb; i++)                                                       \
		for (struct dd_holding *h = (m)->b[i]; h; h = h->hnext)

/* ---- server.c: connections ---- */
struct dd_outbuf {
	size_t len;
	struct dd_outbuf *next;
	uint8_t data[];
};

enum { DD_EP_LISTEN = 1, DD_EP_SOCK, DD_EP_PIDFD, DD_EP_SIGNAL };

struct dd_conn;
struct dd_ep {
	int type;
	struct dd_conn *conn;
};

struct dd_op;

struct dd_conn {
	int fd, pidfd;
	struct ucred cred;
	char comm[32];
	uint32_t role; /* 0 before HELLO */
	bool request_done;
	bool closing;
	uint64_t connected_ns;
	uint32_t seq;
	struct dd_ep ep_sock, ep_pid;
	struct dd_outbuf *out, **out_tail;
	struct dd_region *regions;
	struct dd_idmap maps, pins;
	struct dd_op *op; /* a CTL's request in progress */
	struct dd_conn *next;
};

extern struct dd_conn *dd_conns;
extern struct dd_config dd_cfg;

/* Queue one message to a connection (never blocks). Return 0 or -errno. */
int dd_conn_send(struct dd_conn *c, const struct dp_msg *m);
/* Send a JSON document as REPLY chunks with @status in each, then end the request. */
void dd_conn_reply(struct dd_conn *c, int status, json_object *doc);
/* Reply with an error message: {"error": ...}. */
void dd_conn_reply_error(struct dd_conn *c, int status, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
int dd_server_run(int listen_fd);
bool dd_process_alive(struct dd_conn *c);

/* ---- ops.c: release, truncate, punch ---- */
struct dd_pend {
	struct dd_conn *conn;
	uint64_t region_id;
	bool done;
	struct dd_pend *next;
};

struct dd_op {
	uint64_t req;
	uint32_t kind, flags;
	struct dd_conn *requester;
	char target[PATH_MAX];
	uint64_t dev, ino, rdev;
	bool devdax, regular;
	char devname[DP_PROTO_MAX_DEVNAME + 1];
	uint64_t offset, length; /* the drained range; length 0: to the end */
	uint64_t started_ns, deadline_ns, last_done_ns;
	json_object *outsiders_before;
	struct dd_pend *pend;
	struct dd_op *next;
};

extern struct dd_op *dd_ops;
void dd_op_start(struct dd_conn *c, const struct dp_msg *m);
void dd_op_region_added(struct dd_conn *c, struct dd_region *r);
void dd_op_revoke_done(struct dd_conn *c, uint64_t req, uint64_t region_id, int status);
void dd_op_conn_gone(struct dd_conn *c, bool process_dead);
/* Milliseconds to the next deadline (-1: none); expire what is due. */
int dd_ops_tick(void);
bool dd_region_draining(const struct dd_region *r);

/* ---- status.c ---- */
void dd_status(struct dd_conn *c, const char *target);
/* A client and what it holds: of (dev, ino) only when @filter. */
json_object *dd_client_json(struct dd_conn *c, bool filter, uint64_t dev, uint64_t ino);
/* Pids of the clients that hold (dev, ino); *ret_n of them; malloc()ed. */
pid_t *dd_client_pids(uint64_t dev, uint64_t ino, size_t *ret_n);
/* Resolve a target (path or devdax name) to its stat; fills @path (PATH_MAX). */
struct stat;
int dd_resolve_target(const char *target, char *path, struct stat *st);
const char *dd_pin_kind_name(uint32_t kind);

/* ---- outsiders.c ---- */
/*
 * Processes that map (dev, ino) (/proc/PID/maps), with their io_uring
 * registered buffers inside those mappings (/proc/PID/fdinfo), except the
 * pids in @exclude (n_exclude of them). Return a JSON array (never NULL).
 */
json_object *dd_outsiders_scan(uint64_t dev, uint64_t ino, const pid_t *exclude, size_t n_exclude);
void dd_proc_comm(pid_t pid, char *buf, size_t size);

/* ---- device.c ---- */
/* Disable a devdax device through libdaxctl. Return 0 or -errno; @msg says what happened. */
int dd_devdax_disable(const char *devname, char *msg, size_t msg_size);

#endif /* DAXPOOLD_H */
