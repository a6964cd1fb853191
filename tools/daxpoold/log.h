/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * daxpoold's log and clock: a leaf every other file may use. Messages go to
 * stderr with a "<N>" priority prefix (journald keeps it), or to syslog once
 * the daemon detached. Main thread only (the worker thread does not log).
 */
#ifndef DAXPOOLD_LOG_H
#define DAXPOOLD_LOG_H

#include <stdbool.h>
#include <stdint.h>
#include <syslog.h>

/* Messages above this priority are dropped (LOG_NOTICE; -v: LOG_DEBUG). */
extern int dd_log_level;
void dd_log(int prio, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* From now on log to syslog (LOG_DAEMON, "daxpoold"): after detaching. */
void dd_log_to_syslog(void);
/* CLOCK_MONOTONIC in ns. */
uint64_t dd_now_ns(void);

#endif /* DAXPOOLD_LOG_H */
