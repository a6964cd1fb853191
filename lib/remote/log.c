/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Logging and time for libdaxpool-remote (remote.h): the library prints only when asked to. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "remote.h"

void dp_rlog_init(struct dp_rlog *log, const char *who)
{
	const char *e = secure_getenv("DAXPOOL_LOG");
	char *end;
	long n;

	memset(log, 0, sizeof(*log));
	log->who = who;
	log->max_priority = -1;
	if (!e || !*e)
		return;
	if (!strcmp(e, "err"))
		log->max_priority = LOG_ERR;
	else if (!strcmp(e, "info"))
		log->max_priority = LOG_INFO;
	else if (!strcmp(e, "debug"))
		log->max_priority = LOG_DEBUG;
	else if ((n = strtol(e, &end, 10)) >= 0 && n <= LOG_DEBUG && !*end)
		log->max_priority = (int)n;
}

void dp_rlog_set(struct dp_rlog *log, pthread_mutex_t *lock, daxpool_remote_log_fn fn,
		 void *userdata)
{
	pthread_mutex_lock(lock);
	log->fn = fn;
	log->userdata = userdata;
	pthread_mutex_unlock(lock);
}

void dp_rlog(const struct dp_rlog *log, int priority, const char *fmt, ...)
{
	int saved = errno;
	char msg[512];
	va_list ap;

	if (!log->fn && priority > log->max_priority)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (log->fn)
		log->fn(priority, msg, log->userdata);
	else
		fprintf(stderr, "%s: %s\n", log->who, msg);
	errno = saved;
}

uint64_t dp_rnow_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

struct timespec dp_rdeadline(int ms)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	ts.tv_sec += ms / 1000;
	ts.tv_nsec += (long)(ms % 1000) * 1000000;
	if (ts.tv_nsec >= 1000000000) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000;
	}
	return ts;
}

void dp_rcond_init(pthread_cond_t *cond)
{
	pthread_condattr_t attr;

	pthread_condattr_init(&attr);
	pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
	pthread_cond_init(cond, &attr);
	pthread_condattr_destroy(&attr);
}
