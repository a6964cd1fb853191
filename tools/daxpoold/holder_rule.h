/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The holder rule (doc/holder-rule.md): pure judgement on facts gathered elsewhere. */
#ifndef DAXPOOLD_HOLDER_RULE_H
#define DAXPOOLD_HOLDER_RULE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

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
	/*
	 * The MR tracer's record (umem_trace.h), when it is on, was read whole
	 * and the device's physical ranges are known: its umems (the memory of
	 * its MRs) recorded live from before its VmPin was read until after, the
	 * pages they pin, and how many of its recorded umems pin the device's
	 * pages; of those, how many match a daxpool pin (the drain revokes them).
	 */
	bool traced;
	size_t traced_umems;
	uint64_t traced_kb;
	size_t traced_on_dev, traced_on_dev_own;
	uint64_t traced_on_dev_bytes; /* length of the ones not daxpool's */
	bool traced_vague; /* a record touching the device is not exact (merged, not walked) */
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
 * Whether the MR tracer accounts for every long-term pin of @f, none of them
 * on the device but daxpool's: all its MRs recorded, VmPin no more than their
 * pages, no io_uring buffer on its mappings. Then it is no holder, whatever it
 * did with the device; when not, the history decides as without the tracer.
 */
bool dd_holder_pins_traced_elsewhere(const struct dd_proc_facts *f);
/*
 * Whether @f is a possible holder of @devname that the drain cannot revoke;
 * if so @why says why in one sentence ("opened dax0.0 at 12:03:11, no longer
 * maps it; 1 RDMA MR(s) of 2 MiB not registered through daxpool, VmPin 2048
 * kB"). A process the MR tracer saw pin the device is a holder whatever its
 * history. Pure: no system calls.
 */
bool dd_holder_judge(const struct dd_proc_facts *f, const char *devname,
		     const struct dd_record_facts *rec, char *why, size_t size);

#endif /* DAXPOOLD_HOLDER_RULE_H */
