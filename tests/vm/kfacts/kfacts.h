/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Tiny helpers shared by the kernel-fact tests (tests/vm/kfacts/).
 *
 * Each kernel-fact test checks one group of facts about DAX pins, unplug,
 * truncate, leases and fork against the running kernel.  They run in the vm tier, where the guest
 * exports the device variables (DAXPOOL_TEST_DEVDAX, _FSDAX_DIRS,
 * _RDMA_DEV, _REQUIRE).  Without a device a test skips (exit 77), unless
 * DAXPOOL_TEST_REQUIRE=1, where a missing device is a failure (exit 1).
 * Each check prints "ok - ..." or "not ok - ...".
 */
#ifndef DAXPOOL_KFACTS_H
#define DAXPOOL_KFACTS_H

#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define KF_EXIT_PASS 0
#define KF_EXIT_FAIL 1
#define KF_EXIT_SKIP 77

static int kf_failed;
static int kf_checks;

static inline __attribute__((format(printf, 2, 3))) bool kf_check(bool cond, const char *fmt, ...)
{
	va_list ap;

	kf_checks++;
	if (!cond)
		kf_failed++;
	printf("%s - ", cond ? "ok" : "not ok");
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
	fflush(stdout);
	return cond;
}

static inline __attribute__((format(printf, 1, 2))) void kf_note(const char *fmt, ...)
{
	va_list ap;

	printf("# ");
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
	fflush(stdout);
}

static inline bool kf_required(void)
{
	const char *r = getenv("DAXPOOL_TEST_REQUIRE");

	return r && strcmp(r, "0") != 0 && *r;
}

/*
 * A device or facility this test needs is missing: skip, or fail when the
 * tier promised the device (DAXPOOL_TEST_REQUIRE=1).
 */
static inline __attribute__((noreturn, format(printf, 1, 2))) void kf_missing(const char *fmt, ...)
{
	va_list ap;

	printf(kf_required() ? "not ok - required: " : "SKIP: ");
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
	fflush(stdout);
	exit(kf_required() ? KF_EXIT_FAIL : KF_EXIT_SKIP);
}

/* Get a required environment variable, or skip/fail. */
static inline const char *kf_env(const char *name)
{
	const char *v = getenv(name);

	if (!v || !*v)
		kf_missing("%s is not set (no such device here)", name);
	return v;
}

/* Print the tally and return the exit code for main(). */
static inline int kf_done(void)
{
	printf("# %d checks, %d failed\n", kf_checks, kf_failed);
	fflush(stdout);
	if (!kf_checks)
		return KF_EXIT_FAIL;
	return kf_failed ? KF_EXIT_FAIL : KF_EXIT_PASS;
}

static inline double kf_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static inline void kf_sleep_ms(long ms)
{
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};

	while (nanosleep(&ts, &ts) && errno == EINTR)
		;
}

#endif /* DAXPOOL_KFACTS_H */
