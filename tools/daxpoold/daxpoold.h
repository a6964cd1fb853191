/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* daxpoold: shared declarations of the daemon's files. */
#ifndef DAXPOOLD_H
#define DAXPOOLD_H

#include <limits.h>
#include <pthread.h>
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
	char socket_group[64]; /* "" : the daemon's own */
	int release_timeout_ms;
	/* Limits (daxpoold.conf(5)): what one client, or one user, may cost the daemon. */
	unsigned int max_connections, max_connections_per_uid;
	unsigned int max_regions, max_maps, max_pins; /* per client connection */
	unsigned int max_operations_per_uid; /* releases, truncates, punches in progress */
	size_t max_output; /* bytes queued to one connection: beyond, it is dropped */
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
	uid_t owner_uid; /* of the file or device node, from the descriptor at registration */
	char path[DP_PROTO_MAX_PATH + 1];
	char devname[DP_PROTO_MAX_DEVNAME + 1];
	/* The client's file lease on it (REGION_STATE); lease 0: never said (devdax). */
	uint32_t lease;
	int32_t lease_error;
	uint64_t lease_breaks;
	uint64_t revoke_req; /* the operation that sent it REVOKE (dedup); 0: none */
	struct dd_region *next, **pprev; /* the client's list (pprev: O(1) unlink) */
	struct dd_region *hnext;	  /* the client's table by id */
};

/* A client's regions by id (holders.c): a chained hash that grows. */
struct dd_regmap {
	struct dd_region **b;
	size_t nb, n;
};

void dd_idmap_put(struct dd_idmap *m, struct dd_holding *h); /* replaces an equal id */
struct dd_holding *dd_idmap_take(struct dd_idmap *m, uint64_t id);
void dd_idmap_clear(struct dd_idmap *m);
struct dd_region *dd_regmap_get(const struct dd_regmap *m, uint64_t id);
/* Add @r (its id not in @m). Return 0 or -ENOMEM. */
int dd_regmap_add(struct dd_regmap *m, struct dd_region *r);
void dd_regmap_del(struct dd_regmap *m, struct dd_region *r);
void dd_regmap_clear(struct dd_regmap *m); /* the table only: the regions are the list's */
struct dd_region *dd_regmap_get(const struct dd_regmap *m, uint64_t id);
/* Add @r (its id not in @m). Return 0 or -ENOMEM. */
int dd_regmap_add(struct dd_regmap *m, struct dd_region *r);
void dd_regmap_del(struct dd_regmap *m, struct dd_region *r);
void dd_regmap_clear(struct dd_regmap *m); /* the table only: the regions are the list's */
struct dd_region *dd_regmap_get(const struct dd_regmap *m, uint64_t id);
/* Add @r (its id not in @m). Return 0 or -ENOMEM. */
int dd_regmap_add(struct dd_regmap *m, struct dd_region *r);
void dd_regmap_del(struct dd_regmap *m, struct dd_region *r);
void dd_regmap_clear(struct dd_regmap *m); /* the table only: the regions are the list's */
#define dd_idmap_for_each(m, i, h)                                                                 \
	for (size_t i = 0; i < (m)->nb; i++)                                                       \
		for (struct dd_holding *h = (m)->b[i]; h; h = h->hnext)

/* ---- server.c: connections ---- */
struct dd_outbuf {
	size_t len;
	struct dd_outbuf *next;
	uint8_t data[];
};

enum { DD_EP_LISTEN = 1, DD_EP_SOCK, DD_EP_PIDFD, DD_EP_SIGNAL, DD_EP_UDEV, DD_EP_OPENS, DD_EP_WORKER };

struct dd_conn;
struct dd_ep {
	int type;
	struct dd_conn *conn;
};

struct dd_op;

/* A device or file a client registered at some time: it may still pin it after dropping it. */
struct dd_seen {
	uint64_t dev, ino;
	uint64_t rdev; /* of a device-dax device (any node of it), else 0 */
	uint64_t first_ns; /* CLOCK_REALTIME of its first registration */
};

#define DD_SEEN_MAX 4096

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
	size_t out_bytes; /* queued in out (the cap: dd_cfg.max_output) */
	uint64_t gone_deadline_ns; /* its socket hung up: waiting for its pidfd until then */
	uint32_t refused_logged;   /* message types whose refusal was logged (bit per type) */
	bool regions_refused;	   /* a REGION_ADD was refused: its maps and pins are too */
	struct dd_region *regions;
	struct dd_regmap region_ids;
	struct dd_seen *seen; /* every (dev, ino) it ever registered, n_seen of them */
	size_t n_seen;
	bool seen_overflow;   /* more than DD_SEEN_MAX: it counts for every device */
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

/* ---- worker.c: the step of an operation that may sleep, on a thread ---- */
enum { DD_WORK_DISABLE = 1, DD_WORK_TRUNCATE, DD_WORK_PUNCH };

struct dd_work {
	/* in */
	int kind;
	int path_fd; /* truncate, punch: the O_PATH descriptor the request resolved */
	uint64_t dev, ino, offset, length;
	char devname[DP_PROTO_MAX_DEVNAME + 1]; /* disable */
	/* out */
	int result;
	char msg[PATH_MAX + 64];
	/* the thread's */
	pthread_t thread;
	bool started, done, interrupted;
};

/* Install the interrupt signal (SIGUSR1) and make the eventfd; its fd to poll, or -errno. */
int dd_worker_init(void);
void dd_worker_exit(void);
/* Read the eventfd (the loop's "some work ended"). */
void dd_worker_drain_event(void);
/* Run @w on a thread of its own (@w stays put until done). Return 0 or -errno. */
int dd_work_start(struct dd_work *w);
/* Whether @w ended (then joined: result and msg are set). */
bool dd_work_done(struct dd_work *w);
/* Interrupt @w's sleep in the kernel (its system call returns EINTR). */
void dd_work_interrupt(struct dd_work *w);

/* A holder outside daxpool that an operation waits for. */
struct dd_waited {
	pid_t pid;
	uint64_t start_ns; /* tells it from a later process with its pid */
};

#define DD_OUTSIDER_POLL_NS (200ull * 1000000u)

struct dd_op {
	uint64_t req;
	uint32_t kind, flags;
	struct dd_conn *requester;
	pid_t requester_pid; /* for the audit log, after the requester went */
	uid_t requester_uid;
	char requester_comm[32];
	char target[PATH_MAX];
	uint64_t dev, ino, rdev;
	bool devdax, regular;
	char devname[DP_PROTO_MAX_DEVNAME + 1];
	uint64_t offset, length; /* the drained range; length 0: to the end */
	uint64_t started_ns, deadline_ns, last_done_ns;
	json_object *outsiders_before;
	/* Waiting (release --timeout) for holders outside daxpool to go, before the drain. */
	bool waiting;
	uint64_t poll_ns, outsiders_gone_ns;
	struct dd_waited *waiting_on;
	size_t n_waiting_on;
	/* Acting: the drain is over, the disable, truncate or punch runs in work. */
	int path_fd; /* the target, resolved once (O_PATH) */
	bool acting;
	struct dd_work work;
	json_object *outsiders_final, *rdma_final; /* the last check's, for the answer */
	struct dd_pend *pend;
	struct dd_op *next;
};

extern struct dd_op *dd_ops;
void dd_op_start(struct dd_conn *c, const struct dp_msg *m);
void dd_op_region_added(struct dd_conn *c, struct dd_region *r);
void dd_op_revoke_done(struct dd_conn *c, uint64_t req, uint64_t region_id, int status);
void dd_op_conn_gone(struct dd_conn *c, bool process_dead);
/* A worker ended: answer its operation. */
void dd_ops_work_done(void);
/* The daemon stops: wait for the workers (interrupted), cancel every operation. */
void dd_ops_stop(void);
/* Milliseconds to the next deadline (-1: none); expire what is due. */
int dd_ops_tick(void);
bool dd_region_draining(const struct dd_region *r);

/* ---- status.c ---- */
void dd_status(struct dd_conn *c, const char *target);
/* A client and what it holds: of (dev, ino) only when @filter. */
json_object *dd_client_json(struct dd_conn *c, bool filter, uint64_t dev, uint64_t ino);
/* Pids of the clients that hold (dev, ino); *ret_n of them; malloc()ed. */
pid_t *dd_client_pids(uint64_t dev, uint64_t ino, uint64_t rdev, size_t *ret_n);
/*
 * Whether @r is the file (dev, ino), or -- @rdev not 0 -- a device-dax region
 * of that device through any node: a node made with mknod elsewhere (a
 * container's /dev) has another inode but the same rdev.
 */
bool dd_region_is(const struct dd_region *r, uint64_t dev, uint64_t ino, uint64_t rdev);
/*
 * Resolve a target (an absolute path, or a devdax name) in one lookup that
 * follows no symbolic link (openat2 RESOLVE_NO_SYMLINKS, O_PATH) to its stat;
 * fills @path (PATH_MAX) and, for a character device, @devname (the kernel's
 * name of it, from st_rdev: never from the path). With @ret_fd the O_PATH
 * descriptor is kept there (the caller closes it), for acting on the same
 * file later. Return 0, -EINVAL for a relative path or what is neither a
 * regular file nor a device-dax device, -ELOOP for a symbolic link on the
 * way, -errno.
 */
struct stat;
int dd_resolve_target(const char *target, char *path, struct stat *st, char *devname,
		      size_t devname_size, int *ret_fd);
const char *dd_pin_kind_name(uint32_t kind);

/* ---- rdma_res.c: RDMA MRs of every process, from RDMA netlink ---- */
struct dd_rdma_mr {
	pid_t pid; /* 0: a kernel MR (kern_name), or an owner outside our pid namespace */
	uint32_t dev_index, mrn, lkey, rkey;
	bool has_mrn, has_keys, has_length; /* keys need CAP_NET_ADMIN */
	uint64_t length, iova;
	char dev_name[64];
	char kern_name[32];
};

struct dd_rdma_mrs {
	struct dd_rdma_mr *mr;
	size_t n, cap;
	bool scanned;	 /* zeroed: not yet (the scans below do it when they need it) */
	size_t devices;	 /* RDMA devices scanned */
	bool incomplete; /* some device could not be read: see reason */
	char reason[160]; /* why the table is empty or incomplete; "" when it is whole */
};

/*
 * Fill @t with every MR of every RDMA device. Never fails: without RDMA
 * netlink, devices or permission the table is empty and t->reason says why.
 * Blocks for at most about a second per device. Free with dd_rdma_mrs_free().
 */
void dd_rdma_mrs_scan(struct dd_rdma_mrs *t);
void dd_rdma_mrs_free(struct dd_rdma_mrs *t);
/*
 * Parse one received buffer of a RES_MR_GET dump (@seq): append its MRs to
 * @t; or of a CMD_GET dump: append device indexes to @idx (at most @cap;
 * -E2BIG beyond). Return 1 if the dump continues in the next buffer, 0 when
 * it ended (NLMSG_DONE), -errno of an NLMSG_ERROR, -EBADMSG for malformed
 * input (truncated messages or attributes, bad lengths, unterminated
 * strings), -ENOMEM.
 */
int dd_rdma_parse_mr_dump(const void *buf, size_t len, uint32_t seq, struct dd_rdma_mrs *t);
int dd_rdma_parse_dev_dump(const void *buf, size_t len, uint32_t seq, uint32_t *idx, size_t *n,
			   size_t cap);

/* ---- outsiders.c ---- */
/*
 * Processes that map (dev, ino) -- or, @rdev not 0, any node of that
 * device-dax device (/proc/PID/map_files) -- (/proc/PID/maps), with their io_uring
 * registered buffers inside those mappings (/proc/PID/fdinfo) and their RDMA
 * MRs from @mrs (possible pins: an MR has no address), except the pids in
 * @exclude (n_exclude of them). @mrs (zeroed, or already scanned) is scanned
 * the first time a process that maps it is found; NULL: MRs are not looked
 * at. Return a JSON array (never NULL).
 */
json_object *dd_outsiders_scan(uint64_t dev, uint64_t ino, uint64_t rdev, const pid_t *exclude,
			       size_t n_exclude,
			       struct dd_rdma_mrs *mrs);
/* Whether @c registered (dev, ino) at any time while connected. */
bool dd_conn_has_seen(const struct dd_conn *c, uint64_t dev, uint64_t ino, uint64_t rdev);
/*
 * Possible holders by the holder rule (holder_rule.c) that do not map (dev,
 * ino) outside daxpool: processes with pinned pages daxpool did not pin --
 * RDMA MRs (@mrs, scanned when first needed), io_uring buffers, VmPin -- that
 * registered it as a client, opened it (the open record), or cannot be ruled
 * out. @rdev and @devname: the device-dax device (rdev 0 for a file: then
 * only clients that registered it count; the kernel refuses long-term pins
 * of DAX files and nothing is recorded for them). Pids in @skip (n_skip) are
 * reported already. @drained: after the drain, a client's pins it still
 * claims on the target explain none of its pinned pages. A JSON array of
 * objects shaped like an outsider's, with
 * "reason", "vm_pin_kb", and "client": true for a daxpool client.
 */
json_object *dd_pinners_scan(uint64_t dev, uint64_t ino, dev_t rdev, const char *devname,
			     const pid_t *skip, size_t n_skip, bool drained, struct dd_rdma_mrs *mrs);
/*
 * Every possible holder of (dev, ino) outside the drain: the processes that
 * map it (dd_outsiders_scan, less the clients that hold it: the drain revokes
 * theirs) and the possible pinners (dd_pinners_scan), each with "target" set
 * to @target (when not NULL). A JSON array (never NULL).
 */
json_object *dd_possible_holders(uint64_t dev, uint64_t ino, dev_t rdev, const char *devname,
				 const char *target, bool drained, struct dd_rdma_mrs *mrs);
/* VmPin of @pid in kB; 0 if it is gone. */
uint64_t dd_proc_vm_pin_kb(pid_t pid);
/* The "rdma" summary of a report: devices scanned, MRs seen, why incomplete. */
json_object *dd_rdma_mrs_json(const struct dd_rdma_mrs *mrs);
/* Whether an outsider object counts as a possible pin (io_uring buffers or MRs). */
bool dd_outsider_has_pins(json_object *o);
void dd_proc_comm(pid_t pid, char *buf, size_t size);
/* Whether @pid maps (dev, ino) (/proc/PID/maps). */
bool dd_pid_maps(pid_t pid, uint64_t dev, uint64_t ino, uint64_t rdev);
/* Whether @pid has (dev, ino) open (/proc/PID/fd) or mapped (/proc/PID/maps). */
bool dd_pid_holds_file(pid_t pid, uint64_t dev, uint64_t ino);

/* ---- udev.c: devices that go away without a release ---- */
/* Start following device events; the monitor's fd, or -errno (logged: the daemon runs on). */
int dd_udev_open(void);
void dd_udev_close(void);
/* Handle the queued events: REGION_GONE to the holders of a device that went. */
void dd_udev_receive(void);
/* Where events come from: "udev", "kernel" (no udevd) or "none". */
const char *dd_udev_source(void);
/* daxpoold itself is about to disable @devname (a release): that is no unplug. */
void dd_udev_expect_disable(const char *devname);
void dd_udev_unexpect_disable(const char *devname);
/* 0, or why @r's device went away (-ENODEV removed, -ENXIO unbound). */
int dd_region_gone(const struct dd_region *r);
/* The devices reported gone and not back yet, for status. */
json_object *dd_udev_gone_json(void);

/* ---- opens.c: who opened a device-dax node (fanotify) ---- */
struct dd_opener {
	pid_t pid;
	uint64_t start_ns; /* the process's start (CLOCK_BOOTTIME, /proc/PID/stat) */
	dev_t rdev;
	uint64_t first_ns; /* CLOCK_REALTIME of its first recorded open or last close */
};

#define DD_OPENERS_MAX 65536 /* beyond: recording restarts (everyone before is unknown) */

/* Start recording; the fanotify fd to poll, or -errno (logged; every process is then unknown). */
int dd_opens_start(void);
void dd_opens_stop(void);
/* Take the queued events. Call before judging: events are queued by the open itself. */
void dd_opens_receive(void);
/* Watch the device-dax nodes that appeared; forget the ones that went. */
void dd_opens_refresh(void);
/* NULL while recording, else why nothing is recorded. */
const char *dd_opens_off_reason(void);
/* Since when (CLOCK_BOOTTIME; 0: not watched) opens of @rdev are recorded; *ret_real_ns: as REALTIME. */
uint64_t dd_opens_since(dev_t rdev, uint64_t *ret_real_ns);
const struct dd_opener *dd_opens_find(pid_t pid, uint64_t start_ns, dev_t rdev);
/* {"recording": bool, "reason" | "devices": [{device, since_ns, openers}]} for status. */
json_object *dd_opens_json(void);
/* The start time (CLOCK_BOOTTIME ns, tick resolution) and parent of @pid. Return 0 or -errno. */
int dd_proc_start(pid_t pid, uint64_t *ret_start_ns, pid_t *ret_ppid);

/* ---- holder_rule.c ---- */
/* What is known of one process, for one device. */
struct dd_proc_facts {
	pid_t pid;
	uint64_t start_ns;	  /* CLOCK_BOOTTIME */
	bool maps_it;		  /* maps the device now */
	bool registered;	  /* a daxpool client that registered the device at some time */
	uint64_t registered_ns;	  /* CLOCK_REALTIME of that */
	uint64_t opened_ns;	  /* CLOCK_REALTIME of its first recorded open; 0: none */
	pid_t opened_by_ancestor; /* an ancestor that opened it before this one was forked; 0 */
	uint64_t vm_pin_kb;	  /* VmPin: every page pinned long-term for it */
	uint64_t own_pin_kb;	  /* of that, what daxpool pinned (revoked by the drain) */
	size_t mrs, own_mrs;	  /* its RDMA MRs; of them, daxpool's */
	uint64_t mr_bytes;	  /* length of the MRs that are not daxpool's */
	size_t uring_bufs;	  /* io_uring registered buffers on its mappings of the device */
};

/* What the open record knows of the device. */
struct dd_record_facts {
	bool recording;
	const char *off_reason;	 /* why not, when !recording */
	uint64_t since_ns;	 /* CLOCK_BOOTTIME; 0: the device is not watched */
	uint64_t since_real_ns;
};

/* Whether @f has pins daxpool did not take (MRs, io_uring buffers, VmPin). */
bool dd_holder_pins_unexplained(const struct dd_proc_facts *f);
/*
 * Whether @f is a possible holder of @devname that the drain cannot revoke;
 * if so @why says why in one sentence ("opened dax0.0 at 12:03:11, no longer
 * maps it; 1 RDMA MR(s) of 2 MiB not registered through daxpool, VmPin 2048
 * kB"). Pure: no system calls.
 */
bool dd_holder_judge(const struct dd_proc_facts *f, const char *devname,
		     const struct dd_record_facts *rec, char *why, size_t size);

/* ---- device.c ---- */
/*
 * The device-dax name ("dax0.0") of the character device @rdev, from sysfs
 * (/sys/dev/char/MAJ:MIN, its subsystem verified as dax). Return 0, -ENOTTY
 * for a character device that is not device-dax, -ENODEV if sysfs does not
 * know it, or another -errno.
 */
int dd_devdax_name(dev_t rdev, char *name, size_t size);
/* Disable a devdax device through libdaxctl. Return 0 or -errno; @msg says what happened. */
int dd_devdax_disable(const char *devname, char *msg, size_t msg_size);

#endif /* DAXPOOLD_H */
