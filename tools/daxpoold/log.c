/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* daxpoold's log and clock (log.h). */
#include <stdarg.h>
#include <stdio.h>
#include <time.h>

#include "log.h"

int dd_log_level = LOG_NOTICE;
static bool use_syslog;

void dd_log(int prio, const char *fmt, ...)
{
	va_list ap;

	if (prio > dd_log_level)
		return;
	va_start(ap, fmt);
	if (use_syslog) {
		vsyslog(prio, fmt, ap);
	} else {
		/* "<N>" lets journald keep the priority when stderr goes to it. */
		fprintf(stderr, "<%d>daxpoold: ", prio);
		vfprintf(stderr, fmt, ap);
		fputc('\n', stderr);
	}
	va_end(ap);
}

void dd_log_to_syslog(void)
{
	openlog("daxpoold", LOG_PID, LOG_DAEMON);
	use_syslog = true;
}

uint64_t dd_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}
