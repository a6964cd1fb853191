/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The MR tracer: the kernel's own record of what every RDMA MR pins.
 *
 * RDMA netlink lists MRs without an address, and VmPin says only how much a
 * process pins, so on their own they cannot tell an MR on anonymous memory
 * from one on a device-dax device. daxpoold therefore loads an eBPF program
 * (umem_trace.bpf.c) on ib_umem_get and ib_umem_release (ib_uverbs): every
 * umem -- the pinned memory behind each user MR, hardware or rxe -- is
 * recorded from its registration to its release with the process it is
 * charged to and the physical page frames it pins. A record names its
 * holder soundly; an MR without one (registered before the tracer attached,
 * on-demand paging, dma-buf, a full table) is unknown, and the holder rule
 * treats its process as it always did (doc/holder-rule.md).
 *
 * Needs: x86-64, libbpf at build time (DAXPOOL_BPF), kernel BTF with module
 * BTF for ib_uverbs, fentry/fexit, bpf_loop (5.17+), CAP_BPF + CAP_PERFMON
 * (or CAP_SYS_ADMIN), and /proc/kallsyms with addresses (vmemmap_base).
 * Without any of them the tracer is off, says why, and nothing changes.
 * Nothing of a client feeds it.
 */
#ifndef DAXPOOLD_UMEM_TRACE_H
#define DAXPOOLD_UMEM_TRACE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <json-c/json.h>

#include "umem_trace_abi.h"

/*
 * Load and attach the tracer (@enabled false: configured off, say so). Never
 * fails: when it cannot work, dd_umem_trace_reason() says why, logged once at
 * notice level. The load (BTF, verifier: seconds under emulation) runs on a
 * thread of its own, now or when ib_uverbs appears (dd_umem_trace_module_added);
 * the return is an eventfd, readable when a load ended -- then call
 * dd_umem_trace_loaded() -- or -1 (configured off, or not built). MRs
 * registered before the attach are unknown to it.
 */
int dd_umem_trace_start(bool enabled);
/* A module was loaded (a device event): if it is ib_uverbs the tracer waited for, load now. */
void dd_umem_trace_module_added(const char *name);
/* The eventfd fired: take the load's result (on, or off and why), log it. */
void dd_umem_trace_loaded(void);
/*
 * What the tracer needs of the kernel, under sysfs root @sys ("/sys"): kernel
 * BTF, ib_uverbs loaded, its BTF. 0, or -ENOENT (ib_uverbs not loaded: the
 * tracer waits for it) or -ENOTSUP, with @why (@size) saying what is missing.
 */
int dd_umem_trace_check(const char *sys, char *why, size_t size);
bool dd_umem_trace_on(void);
/* Why the tracer is off ("" when on). */
const char *dd_umem_trace_reason(void);
/* CLOCK_REALTIME ns of the attach (MRs registered before it are unknown); 0 when off. */
uint64_t dd_umem_trace_since_ns(void);
/* Umems the tracer could not record (table full, walk failed) since it attached. */
uint64_t dd_umem_trace_missed(void);
/* A duplicate of the record's map descriptor for a scan (close it), or -1 when off. */
int dd_umem_trace_map_dup(void);
/* The same for the exec numbers (dd_umem_exec_seq), or -1 when off. */
int dd_umem_trace_execs_dup(void);
void dd_umem_trace_stop(void);
/* For status: {"on", "reason" (when off), "since_ns", "missed", "recorded"}. */
json_object *dd_umem_trace_json(void);

/* One live umem, as read from the record. */
struct dd_umem {
	uint64_t key; /* the kernel's umem address: identifies it with rec.seq */
	struct dd_umem_rec rec;
};

struct dd_umem_snap {
	struct dd_umem *u;
	size_t n;
	bool complete; /* every entry read; false: the snapshot explains nothing */
};

/*
 * Read every record of @map_fd into @s: a bounded loop of non-blocking
 * bpf(2) calls. 0, or -errno (s->complete false). Free with dd_umem_snap_free.
 */
int dd_umem_snap_read(int map_fd, struct dd_umem_snap *s);
void dd_umem_snap_free(struct dd_umem_snap *s);
/* Whether @u is still recorded in @map_fd (the same record, not a reused address). */
bool dd_umem_still_live(int map_fd, const struct dd_umem *u);
/*
 * The sequence number of process @pid's last exec since the tracer attached
 * (0: none) into *ret_seq: its records numbered below it are of the image
 * before, whose mm is not the one its VmPin counts. 0, or -errno (the
 * process is gone, or the table cannot be read: nothing is known).
 */
int dd_umem_exec_seq(int execs_fd, pid_t pid, uint64_t *ret_seq);

/* A physical range of a device, in page frames [start, end). */
struct dd_pfn_range {
	uint64_t start, end;
};
/* Whether @r pins any frame of @ranges (n of them). Pure. */
bool dd_umem_rec_touches(const struct dd_umem_rec *r, const struct dd_pfn_range *ranges,
			 size_t n);
/*
 * The physical ranges of device-dax device @devname from sysfs (mappingN/
 * start..end, else resource and size), at most @cap; the count, or -errno
 * (-ENOSPC when it has more than @cap: a range left out would look off it).
 */
int dd_dax_pfn_ranges(const char *devname, struct dd_pfn_range *ranges, size_t cap);

#endif /* DAXPOOLD_UMEM_TRACE_H */
