/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Holders outside the drain: a probe of /proc, the open record (opens.h) and
 * RDMA netlink (rdma_res.h), judged by the holder rule (holder_rule.h).
 *
 * A probe reads /proc/PID/maps and map_files, which take the target's mmap
 * lock: a process can keep that lock's writers queued, and the read then
 * sleeps for as long as it likes. So the probe never runs on the event loop:
 * it reads a copy of what it needs of the daemon (struct dd_scan_in, made on
 * the loop by scan.c) and nothing else of it, and runs on a thread of its own
 * (scan.h). Every function here may sleep.
 */
#ifndef DAXPOOLD_OUTSIDERS_H
#define DAXPOOLD_OUTSIDERS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <json-c/json.h>

#include "holder_rule.h"
#include "opens.h"
#include "rdma_res.h"
#include "target.h"
#include "umem_trace.h"

/* One daxpool client process (all its connections), as the daemon saw it when the scan began. */
struct dd_scan_client {
	pid_t pid;
	uint64_t own_pin_kb;   /* its long-term pins (after a drain: those off the target only) */
	uint64_t *pin_lengths; /* their lengths (an MR of one of them is daxpool's), n_pins */
	size_t n_pins;
	/*
	 * The lengths of those on the target, before its drain only (n_target_pins):
	 * the MR tracer's records on the device that the drain will revoke. After
	 * the drain none: a record still on the device is then a holder's.
	 */
	uint64_t *target_pin_lengths;
	size_t n_target_pins;
};

/* What a client is to one target. */
struct dd_scan_reg {
	bool holds;	 /* holds a region on it now: the drain revokes its mappings */
	bool registered; /* registered it at some time while connected */
	uint64_t registered_ns; /* CLOCK_REALTIME of the first registration; 0: unknown */
};

/* One target of a scan, and what the daemon knows of it. */
struct dd_scan_key {
	struct dd_target t;	 /* its identity (fd -1) */
	struct dd_scan_reg *reg; /* one per client of the scan, in its order */
	struct dd_record_facts rec;
	char off_reason[192];	 /* rec.off_reason points here */
	struct dd_pfn_range pfn[8]; /* a device-dax device's physical ranges (sysfs) */
	int n_pfn;		    /* how many; <= 0: unknown, the MR tracer's record is not used */
};

/*
 * Everything a scan reads of the daemon. The scan writes only at_pid and
 * at_since_ns (atomically: the loop reads them to name what a scan that
 * does not end is stuck on).
 */
struct dd_scan_in {
	struct dd_scan_key *keys;
	size_t n_keys;
	struct dd_scan_client *clients; /* sorted by pid */
	size_t n_clients;
	struct dd_opener *openers; /* the open record of the keys' devices */
	size_t n_openers;
	bool drained; /* the final check: every client reported its drain done */
	uid_t viewer; /* not root: mappings of others' processes lose their addresses */
	pid_t self;   /* the daemon (not a holder) */
	int at_pid;   /* the process being read; 0: none */
	uint64_t at_since_ns; /* since when (CLOCK_MONOTONIC) */
	int umem_fd;	      /* the MR tracer's record (a duplicate, the scan's); -1: off */
	int execs_fd;	      /* its exec numbers (likewise); -1: off */
	struct dd_umem_snap umems; /* read by the scan before it reads any process */
};

/*
 * Every possible holder of in->keys[@k] outside the drain: the processes
 * that map it (less the clients that hold it: the drain revokes theirs),
 * with their io_uring buffers in those mappings and their RDMA MRs (@mrs,
 * scanned the first time it is needed; NULL: not looked at), and the
 * possible pinners by the holder rule (holder_rule.c) that do not map it --
 * RDMA MRs, io_uring buffers, VmPin of a client, an opener, or a process
 * whose maps cannot be read -- each with "target" set to the key's path. A
 * JSON array (never NULL) of holder objects (dd_holder_new()).
 */
json_object *dd_possible_holders(struct dd_scan_in *in, size_t k, struct dd_rdma_mrs *mrs);
/*
 * A holder object: "pid", "comm" (read from /proc when @comm is NULL and
 * @pid not 0, else "?"), "mappings" (@maps, taken; NULL: none), and zeroed
 * "io_uring_buffers", "rdma_mrs", "rdma_mr_count", "rdma_mr_bytes" for the
 * caller to fill; dd_holder_finish() then sets "reason" and "possible_pins".
 */
json_object *dd_holder_new(pid_t pid, const char *comm, json_object *maps);
/* Set "reason" (@why; NULL: none) and "possible_pins" (@pins; -1: buffers plus MRs). */
void dd_holder_finish(json_object *o, const char *why, int64_t pins);
/* VmPin of @pid in kB; 0 if it is gone. */
uint64_t dd_proc_vm_pin_kb(pid_t pid);
/* The "rdma" summary of a report: devices scanned, MRs seen, why incomplete. */
json_object *dd_rdma_mrs_json(const struct dd_rdma_mrs *mrs);
/* Whether a holder object counts as a possible pin (io_uring buffers or MRs). */
bool dd_outsider_has_pins(json_object *o);
/* /proc/PID/comm into @buf; "?" if it cannot be read. */
void dd_proc_comm(pid_t pid, char *buf, size_t size);
/* Whether @pid maps (dev, ino) (/proc/PID/maps), or @rdev through another node. */
bool dd_pid_maps(pid_t pid, uint64_t dev, uint64_t ino, uint64_t rdev);
/* Whether @pid has (dev, ino) open (/proc/PID/fd) or mapped (/proc/PID/maps). */
bool dd_pid_holds_file(pid_t pid, uint64_t dev, uint64_t ino);

#endif /* DAXPOOLD_OUTSIDERS_H */
