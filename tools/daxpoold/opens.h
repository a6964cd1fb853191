/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Who opened a device-dax node (fanotify): a probe with its own record, of
 * every process, that knows nothing of clients. Main thread only, but for
 * dd_proc_start() (any thread).
 */
#ifndef DAXPOOLD_OPENS_H
#define DAXPOOLD_OPENS_H

#include <stdint.h>
#include <sys/types.h>

#include <json-c/json.h>

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
/*
 * Append the openers of @rdev to *@arr (realloc()ed; *@n of them): a copy for
 * a scan off the loop. Return 0 or -ENOMEM (what was copied stays).
 */
int dd_opens_copy(dev_t rdev, struct dd_opener **arr, size_t *n);
/* {"recording": bool, "reason" | "devices": [{device, since_ns, openers}]} for status. */
json_object *dd_opens_json(void);
/* The start time (CLOCK_BOOTTIME ns, tick resolution) and parent of @pid. Return 0 or -errno. */
int dd_proc_start(pid_t pid, uint64_t *ret_start_ns, pid_t *ret_ppid);

#endif /* DAXPOOLD_OPENS_H */
