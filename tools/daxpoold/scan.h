/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Scans of /proc off the event loop. A scan reads every process's
 * /proc/PID/maps, which takes that process's mmap lock: a process can keep
 * the lock's writers queued, and the read then sleeps for as long as it
 * likes (outsiders.h). So the loop copies what a scan needs of the daemon
 * (struct dd_scan_in: the targets, the clients' pins and registrations, the
 * open record), starts the scan on a thread of its own, and hears of its end
 * through an eventfd; meanwhile it answers everyone else.
 *
 * A scan that does not end by its bound (scan_timeout of daxpoold.conf for a
 * status; an operation's deadline, and at least that) is answered without
 * it (late_fn):
 * what it waits for cannot be ruled out, so the requester is told so, with
 * the process the scan is stuck on (dd_scan_stuck_holder). It keeps its
 * thread until the read returns, and counts against its uid's
 * max_scans_per_uid until then, so stuck scans cannot pile up: a request of
 * a uid over its limit is refused (EAGAIN) at once. Root has no such limit.
 *
 * The thread touches nothing but its dd_scan; the loop reads the scan's
 * results only after its end.
 */
#ifndef DAXPOOLD_SCAN_H
#define DAXPOOLD_SCAN_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <json-c/json.h>

#include "manager.h"
#include "outsiders.h"

enum dd_scan_kind {
	DD_SCAN_HOLDERS = 1, /* the possible holders of every key */
	DD_SCAN_POLL,	     /* the waited holders first; if all went, DD_SCAN_HOLDERS */
	DD_SCAN_HOLDS_FILE,  /* which of @checks still hold their file open or mapped */
};

/* A process to ask whether it holds (dev, ino) (DD_SCAN_HOLDS_FILE). */
struct dd_scan_check {
	pid_t pid;
	uint64_t dev, ino;
	char comm[32];
	bool holds; /* out */
};

struct dd_scan;
typedef void (*dd_scan_fn)(struct dd_manager *m, struct dd_scan *s);

struct dd_scan {
	int kind;
	struct dd_scan_in in;
	struct dd_waited *waited; /* DD_SCAN_POLL */
	size_t n_waited;
	struct dd_scan_check *checks; /* DD_SCAN_HOLDS_FILE */
	size_t n_checks;
	char what[64]; /* DD_SCAN_HOLDS_FILE: for the done function */
	/* out, once done */
	json_object *holders; /* every key's possible holders, one array */
	json_object *rdma;    /* the MR table's summary (dd_rdma_mrs_json) */
	bool waited_there;    /* DD_SCAN_POLL: one waited holder still holds; nothing else read */
	/* the loop's */
	uid_t uid;	     /* whose (max_scans_per_uid) */
	void *owner;	     /* NULL: abandoned -- freed when its thread ends */
	json_object *doc;    /* the owner's, freed with the scan */
	dd_scan_fn done_fn;  /* it ended: results set */
	dd_scan_fn late_fn;  /* @bound_ns passed first (then it is abandoned); NULL: no bound */
	uint64_t bound_ns;
	uint64_t started_ns;
	pthread_t thread;
	bool started, done;
	struct dd_scan *next;
};

/* Make the eventfd ("a scan ended"); its fd to poll, or -errno. */
int dd_scan_init(void);
/* Wait a little for the running scans (their results are dropped), free them, close. */
void dd_scan_exit(struct dd_manager *m);
/*
 * Whether a request of @uid may start scanning: 0, or -EAGAIN with @why
 * (@size) set when @uid (not root) has max_scans_per_uid running. Asked once
 * per request; the later scans of an operation it admitted are not refused.
 */
int dd_scan_admit(const struct dd_manager *m, uid_t uid, char *why, size_t size);
/* A new scan of @kind for @uid, not started; NULL without memory. */
struct dd_scan *dd_scan_new(int kind, uid_t uid);
/*
 * Add the target @t to @s (its identity is copied, not its descriptor), with
 * what @m knows of it: each client's registrations of it, its pins (@drained:
 * only those off @t), the open record. Return 0 or -ENOMEM.
 */
int dd_scan_add_key(struct dd_manager *m, struct dd_scan *s, const struct dd_target *t,
		    bool drained);
/* Start @s; on failure (-errno) it is freed. @done_fn and @late_fn as in struct dd_scan. */
int dd_scan_start(struct dd_manager *m, struct dd_scan *s, void *owner, dd_scan_fn done_fn,
		  dd_scan_fn late_fn, uint64_t bound_ns);
/* Free a scan never started. */
void dd_scan_free(struct dd_scan *s);
/* Its owner no longer wants it (NULL-safe): its results are dropped when it ends. */
void dd_scan_abandon(struct dd_scan *s);
/* The eventfd fired: hand every ended scan to its owner (done_fn), free it. */
void dd_scans_done(struct dd_manager *m);
/* Call late_fn of the scans past their bound; ms to the next bound (-1: none). */
int dd_scans_tick(struct dd_manager *m);
/*
 * A holder object (dd_holder_new) for a scan that did not end: the process it
 * is stuck reading, since when, and that nothing it would have found can be
 * ruled out.
 */
json_object *dd_scan_stuck_holder(const struct dd_scan *s);

#endif /* DAXPOOLD_SCAN_H */
