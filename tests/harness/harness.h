/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The daxpool test harness: each TEST() runs in a forked child, so a crash or a
 * SIGBUS fails that test and not the run. A test passes by returning, fails
 * through a CHECK, and skips with SKIP() (exit code 77, the reason printed).
 *
 * An executable runs all its tests, or those named on its command line.
 * "--list" prints the names; "--ctest NAME LABEL" prints CTest registrations
 * (one CTest test per TEST()), used by the build.
 *
 * Backings: tests that need a region call fixture_backing(), which gives a
 * path chosen by DAXPOOL_TEST_BACKING (file, the default; devdax; fsdax) and
 * the device variables described in tests/README.md.
 */
#ifndef DAXPOOL_TEST_HARNESS_H
#define DAXPOOL_TEST_HARNESS_H

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define T_EXIT_PASS 0
#define T_EXIT_FAIL 1
#define T_EXIT_SKIP 77

struct dp_test {
	const char *name;
	void (*fn)(void);
	int expect_signal; /* 0: must exit 0; else must die of this signal */
	unsigned int timeout_s;
	struct dp_test *next;
};

void dp_test_register(struct dp_test *t);

#define TEST_FULL(tname, sig, tmo)                                                                 \
	static void test_##tname(void);                                                           \
	static struct dp_test dp_test_##tname = { #tname, test_##tname, sig, tmo, NULL };         \
	__attribute__((constructor)) static void dp_register_##tname(void)                        \
	{                                                                                          \
		dp_test_register(&dp_test_##tname);                                                \
	}                                                                                          \
	static void test_##tname(void)

/* A test; default timeout 60 s. */
#define TEST(tname) TEST_FULL(tname, 0, 60)
/* A test that passes only if the child dies of signal sig. */
#define TEST_SIGNAL(tname, sig) TEST_FULL(tname, sig, 60)
/* A test with its own timeout in seconds. */
#define TEST_TIMEOUT(tname, secs) TEST_FULL(tname, 0, secs)

void dp_test_fail(const char *file, int line, const char *fmt, ...)
	__attribute__((format(printf, 3, 4), noreturn));
void dp_test_skip(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

#define CHECK(cond)                                                                                \
	do {                                                                                       \
		if (!(cond))                                                                       \
			dp_test_fail(__FILE__, __LINE__, "CHECK(%s)", #cond);                      \
	} while (0)

#define CHECK_EQ(a, b)                                                                             \
	do {                                                                                       \
		long long _a = (long long)(a), _b = (long long)(b);                                \
		if (_a != _b)                                                                      \
			dp_test_fail(__FILE__, __LINE__, "%s == %s: %lld != %lld", #a, #b, _a, _b); \
	} while (0)

/* An int-returning daxpool call must give 0 (or a count >= 0). */
#define CHECK_OK(expr)                                                                             \
	do {                                                                                       \
		long long _r = (long long)(expr);                                                  \
		if (_r < 0)                                                                        \
			dp_test_fail(__FILE__, __LINE__, "%s failed: %lld (%s)", #expr, _r,        \
				     strerror((int)-_r));                                          \
	} while (0)

/* An int-returning daxpool call must fail with -err. */
#define CHECK_ERR(expr, err)                                                                       \
	do {                                                                                       \
		long long _r = (long long)(expr);                                                  \
		if (_r != -(long long)(err))                                               \
			dp_test_fail(__FILE__, __LINE__, "%s: expected -%s, got %lld (%s)", #expr, \
				     #err, _r, _r < 0 ? strerror((int)-_r) : "success");           \
	} while (0)

#define SKIP(...) dp_test_skip(__VA_ARGS__)

/* ---- backings ---- */

enum fixture_backing_kind {
	FIXTURE_FILE = 1,
	FIXTURE_DEVDAX,
	FIXTURE_FSDAX,
};

/* The backing this run tests on (DAXPOOL_TEST_BACKING). */
enum fixture_backing_kind fixture_backing_kind(void);
const char *fixture_backing_name(void);

/*
 * A path to open as a region of at least @min_size bytes: a new file of
 * exactly @min_size bytes (file, fsdax), or the device (devdax). Skips when
 * the backing is not available (fails instead when DAXPOOL_TEST_REQUIRE=1).
 * Files live in the test's own directory, removed after the test.
 */
const char *fixture_backing(uint64_t min_size);

/* A new file of @size bytes in the test's directory on the host filesystem. */
const char *fixture_plain_file(uint64_t size);

/*
 * A file of @size bytes opened O_RDWR | O_DIRECT, on the first filesystem that
 * takes O_DIRECT: the test's directory, else an fsdax mount of the vm tier
 * (DAXPOOL_TEST_FSDAX_DIRS). The file is already unlinked: closing the fd
 * removes it. Skips (fails under DAXPOOL_TEST_REQUIRE=1) if none does.
 */
int fixture_odirect_file(uint64_t size);

/*
 * @size zeroed bytes of anonymous memory shared with the processes the test
 * forks (MAP_SHARED), for what they report back. Fails the test if mmap does.
 */
void *fixture_shared(size_t size);

/* The test's own scratch directory (exists for the test's lifetime). */
const char *fixture_dir(void);

/* Whether the run must not skip for lack of a device (DAXPOOL_TEST_REQUIRE=1). */
bool fixture_require(void);

/* Skip, or fail under DAXPOOL_TEST_REQUIRE=1, because @what is missing. */
void fixture_missing(const char *what) __attribute__((noreturn));

#endif /* DAXPOOL_TEST_HARNESS_H */
