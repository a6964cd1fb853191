/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The holder rule: whether a process may pin a device-dax device in a way
 * the drain cannot revoke. A device is released only when no such pin can
 * exist; when one cannot be ruled out the release is refused and the process
 * named.
 *
 * A pin daxpool cannot revoke is a page pinned by anything but daxpool: an
 * RDMA MR, an io_uring registered buffer, any FOLL_LONGTERM pin. The kernel
 * counts them per process (VmPin in /proc/PID/status) and keeps them after
 * the process unmapped the range and closed the device, until the MR is
 * deregistered or the buffer unregistered. So "maps it now" is no answer;
 * what matters is whether the process has pins daxpool did not take *and*
 * could ever have had the device:
 *
 *   - it maps the device now;
 *   - it registered the device with daxpool (a client), at any time;
 *   - it opened the device, or closed its last reference, since daxpoold
 *     began to record that device (opens.c), or an ancestor did before the
 *     process was forked (an inherited descriptor);
 *   - or nobody can tell: it was already running when the record of the
 *     device began, or there is no record on this machine.
 *
 * When daxpoold's MR tracer is on (umem_trace.h) it knows where each MR
 * registered since pins: a process whose recorded MRs pin the device is a
 * holder, whatever its history; one whose every long-term pin is a recorded
 * MR off the device (its MRs all recorded, VmPin no more than their pages)
 * is none, whatever its history -- the UCX or libfabric worker whose own
 * buffer pools are registered on anonymous memory. Anything else (an MR from
 * before the tracer, an io_uring buffer, pins the record does not cover) is
 * judged as without it.
 *
 * A process with no such pins is no holder, whatever it did with the device;
 * a process that provably never had the device is no holder, whatever it
 * pins (an RDMA application on ordinary memory). This file only judges facts
 * gathered elsewhere (outsiders.c), so that the rule can be tested on crafted
 * input.
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "holder_rule.h"

static void clock_text(uint64_t real_ns, char *buf, size_t size)
{
	time_t secs = (time_t)(real_ns / 1000000000u);
	struct tm tm;

	if (!real_ns || !localtime_r(&secs, &tm) || !strftime(buf, size, "%H:%M:%S", &tm))
		snprintf(buf, size, "?");
}

static void bytes_text(uint64_t bytes, char *buf, size_t size)
{
	if (bytes && bytes % (1ull << 30) == 0)
		snprintf(buf, size, "%" PRIu64 " GiB", bytes >> 30);
	else if (bytes && bytes % (1ull << 20) == 0)
		snprintf(buf, size, "%" PRIu64 " MiB", bytes >> 20);
	else if (bytes && bytes % 1024 == 0)
		snprintf(buf, size, "%" PRIu64 " KiB", bytes >> 10);
	else
		snprintf(buf, size, "%" PRIu64 " bytes", bytes);
}

bool dd_holder_pins_unexplained(const struct dd_proc_facts *f)
{
	return f->vm_pin_kb > f->own_pin_kb || f->mrs > f->own_mrs || f->uring_bufs > 0;
}

bool dd_holder_pins_traced_elsewhere(const struct dd_proc_facts *f)
{
	return f->traced && !f->traced_vague && f->traced_on_dev <= f->traced_on_dev_own &&
	       f->uring_bufs == 0 &&
	       f->mrs <= f->traced_umems && f->vm_pin_kb <= f->traced_kb;
}

bool dd_holder_judge(const struct dd_proc_facts *f, const char *devname,
		     const struct dd_record_facts *rec, char *why, size_t size)
{
	char when[32], len[32], how[320];
	const char *maps = f->maps_it ? "still maps it" : "no longer maps it";
	/* the MR tracer saw it pin the device: a holder, whatever its history */
	bool on_dev = f->traced && f->traced_on_dev > f->traced_on_dev_own;

	if (size)
		why[0] = '\0';
	if (!on_dev && dd_holder_pins_traced_elsewhere(f))
		return false; /* every pin it has is a recorded MR elsewhere */
	if (!on_dev && !dd_holder_pins_unexplained(f))
		return false; /* nothing pinned that the drain does not revoke */
	if (f->registered) {
		clock_text(f->registered_ns, when, sizeof(when));
		snprintf(how, sizeof(how), "registered %s with daxpool at %s, %s", devname, when,
			 maps);
	} else if (f->opened_ns) {
		clock_text(f->opened_ns, when, sizeof(when));
		snprintf(how, sizeof(how), "opened %s at %s, %s", devname, when, maps);
	} else if (f->opened_by_ancestor) {
		snprintf(how, sizeof(how),
			 "forked from pid %d, which opened %s before (an inherited descriptor), %s",
			 (int)f->opened_by_ancestor, devname, maps);
	} else if (f->maps_it) {
		snprintf(how, sizeof(how), "maps %s", devname);
	} else if (on_dev) {
		snprintf(how, sizeof(how), "no longer maps %s", devname);
	} else if (!rec->recording) {
		snprintf(how, sizeof(how),
			 "whether it ever opened %s cannot be ruled out: daxpoold records no opens "
			 "here (%s)", devname, rec->off_reason ? rec->off_reason : "off");
	} else if (!rec->since_ns) {
		snprintf(how, sizeof(how),
			 "whether it ever opened %s cannot be ruled out: daxpoold does not watch its "
			 "node", devname);
	} else if (f->start_ns < rec->since_ns) {
		clock_text(rec->since_real_ns, when, sizeof(when));
		snprintf(how, sizeof(how),
			 "was running before daxpoold began recording opens of %s (at %s): whether "
			 "it opened it then cannot be ruled out", devname, when);
	} else {
		return false; /* it never had the device: its pins are elsewhere */
	}
	if (on_dev) {
		bytes_text(f->traced_on_dev_bytes, len, sizeof(len));
		snprintf(why, size, "%s; %zu RDMA MR(s) of %s not registered through daxpool pin "
				    "pages of %s (the MR tracer's record), VmPin %" PRIu64 " kB",
			 how, f->traced_on_dev - f->traced_on_dev_own, len, devname, f->vm_pin_kb);
	} else if (f->mrs > f->own_mrs) {
		bytes_text(f->mr_bytes, len, sizeof(len));
		snprintf(why, size, "%s; %zu RDMA MR(s) of %s not registered through daxpool, VmPin "
				    "%" PRIu64 " kB", how, f->mrs - f->own_mrs, len, f->vm_pin_kb);
	} else if (f->uring_bufs) {
		snprintf(why, size, "%s; %zu io_uring registered buffer(s) on it, VmPin %" PRIu64
				    " kB", how, f->uring_bufs, f->vm_pin_kb);
	} else {
		snprintf(why, size, "%s; %" PRIu64 " kB of pinned pages (VmPin) not pinned through "
				    "daxpool", how, f->vm_pin_kb > f->own_pin_kb
						    ? f->vm_pin_kb - f->own_pin_kb : 0);
	}
	return true;
}
