/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * One connection to daxpoold: its peer (SO_PEERCRED, a pidfd), what it holds
 * (holders.h), and its output queue. A connection knows nothing of the other
 * connections nor of the operations: the manager (manager.h) holds those.
 * Main thread only; nothing here blocks.
 */
#ifndef DAXPOOLD_CONN_H
#define DAXPOOLD_CONN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>

#include <json-c/json.h>

#include "holders.h"
#include "util/protocol.h"

/* One queued datagram, in a buffer of its own size. */
struct dd_outbuf {
	size_t len;
	struct dd_outbuf *next;
	uint8_t data[];
};

/* What an epoll event is about (the event's data.ptr is a struct dd_ep). */
enum {
	DD_EP_LISTEN = 1,
	DD_EP_SOCK,
	DD_EP_PIDFD,
	DD_EP_SIGNAL,
	DD_EP_UDEV,
	DD_EP_OPENS,
	DD_EP_WORKER,
	DD_EP_SCAN,
	DD_EP_UMEM, /* the MR tracer's load ended (umem_trace.h) */
};

struct dd_conn;
struct dd_ep {
	int type;
	struct dd_conn *conn;
};

/* A device or file a client registered at some time: it may still pin it after dropping it. */
struct dd_seen {
	uint64_t dev, ino;
	uint64_t rdev;	   /* of a device-dax device (any node of it), else 0 */
	uint64_t first_ns; /* CLOCK_REALTIME of its first registration */
};

#define DD_SEEN_MAX 4096

struct dd_op;
struct dd_scan;

struct dd_conn {
	int fd, pidfd;
	int epfd; /* the epoll set its socket is in (its EPOLLOUT follows the queue) */
	struct ucred cred;
	char comm[32];
	uint32_t role; /* 0 before HELLO */
	bool request_done;
	bool closing;
	bool hung_up; /* a send found that its peer closed the socket */
	uint64_t connected_ns;
	uint32_t seq;
	struct dd_ep ep_sock, ep_pid;
	struct dd_outbuf *out, **out_tail;
	size_t out_bytes;  /* queued in out */
	size_t max_output; /* the cap (max_output of daxpoold.conf) */
	uint64_t gone_deadline_ns; /* its socket hung up: waiting for its pidfd until then */
	uint32_t refused_logged;   /* message types whose refusal was logged (bit per type) */
	bool regions_refused;	   /* a REGION_ADD was refused: its maps and pins are too */
	struct dd_region *regions;
	struct dd_regmap region_ids;
	struct dd_seen *seen; /* every (dev, ino) it ever registered, n_seen of them */
	size_t n_seen;
	bool seen_overflow; /* more than DD_SEEN_MAX: it counts for every device */
	struct dd_idmap maps, pins;
	struct dd_op *op; /* a CTL's request in progress (the manager's) */
	struct dd_scan *scan; /* the scan a CTL's status waits for (the manager's) */
	struct dd_conn *next;
};

/*
 * Queue one message to @c and send what the socket takes (never blocks).
 * A connection that hung up or is being dropped takes nothing (0). Past
 * max_output queued, @c is marked closing and its queue dropped. Return 0 or
 * -errno (-ENOMEM; an encoding error).
 */
int dd_conn_send(struct dd_conn *c, const struct dp_msg *m);
/* Send what is queued; false if the connection failed. Follows EPOLLOUT with the queue. */
bool dd_conn_flush(struct dd_conn *c);
/* Drop what is queued. */
void dd_conn_drop_output(struct dd_conn *c);
/* Send a JSON document as REPLY chunks with @status in each, then end the request. */
void dd_conn_reply(struct dd_conn *c, int status, json_object *doc);
/* Reply with an error message: {"error": ..., "errno": ...}. */
void dd_conn_reply_error(struct dd_conn *c, int status, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* Send REFUSED of message @type @id; the first of each type per connection is logged too. */
void dd_conn_refuse(struct dd_conn *c, uint32_t type, uint64_t id, int status, const char *fmt,
		    ...) __attribute__((format(printf, 5, 6)));
/* Whether @c's process still runs (its pidfd; without one, kill(0)). */
bool dd_process_alive(struct dd_conn *c);
/* Remember that @c registered (dev, ino): it stays a possible holder after dropping it. */
void dd_conn_note_seen(struct dd_conn *c, uint64_t dev, uint64_t ino, uint64_t rdev);
/* Whether @c registered (dev, ino) -- or, @rdev not 0, that device -- at any time while connected. */
bool dd_conn_has_seen(const struct dd_conn *c, uint64_t dev, uint64_t ino, uint64_t rdev);
/* CLOCK_REALTIME of @c's first registration of it; 0: none. */
uint64_t dd_conn_seen_since(const struct dd_conn *c, uint64_t dev, uint64_t ino, uint64_t rdev);
/* Free its regions, maps, pins and what it saw. */
void dd_conn_free_holdings(struct dd_conn *c);

#endif /* DAXPOOLD_CONN_H */
