/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Pins, from inside (linked with the static library): the order of an
 * unpin's steps for the I/O helpers' pins, unpins that must not wait for an
 * RCU grace period, and the reuse of an unpinned pin's memory only after one.
 */
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <syslog.h>
#include <time.h>
#include <urcu-bp.h>

#include "daxpool.h"
#include "harness.h"

#define REGION_SIZE (8ull << 20)

/* Not exported (lib/core/private.h): a pin with the I/O helpers' revoke and release functions. */
int dp_pin_new_io(struct daxpool_map *map, void *addr, size_t length, int kind,
		  unsigned int access, void (*io_revoke)(struct daxpool_pin *),
		  void (*io_release)(struct daxpool_pin *), const void *io, size_t io_len,
		  struct daxpool_pin **ret);

/* What happened during an unpin, in order: 'r' the device stopped, 'p' the range persisted. */
static char steps[8];
static atomic_int n_steps;

static void step(char c)
{
	int i = atomic_fetch_add(&n_steps, 1);

	if (i < (int)sizeof(steps) - 1)
		steps[i] = c;
}

static void device_stop(struct daxpool_pin *pin)
{
	(void)pin;
	step('r');
}

__attribute__((format(printf, 6, 0))) static void
log_steps(struct daxpool_ctx *ctx, int priority, const char *file, int line, const char *fn,
	  const char *format, va_list args)
{
	char msg[512];

	(void)ctx, (void)priority, (void)file, (void)line, (void)fn;
	vsnprintf(msg, sizeof(msg), format, args);
	if (strstr(msg, "unpin persisted device-written"))
		step('p');
}

TEST(unpin_stops_the_device_before_it_persists_the_range)
{
	struct daxpool_region *region;
	struct daxpool_map *map;
	struct daxpool_ctx *ctx;
	struct daxpool_pin *pin;

	CHECK_OK(daxpool_ctx_new(&ctx));
	CHECK_OK(daxpool_ctx_set_log_fn(ctx, log_steps));
	CHECK_OK(daxpool_ctx_set_log_priority(ctx, LOG_DEBUG));
	CHECK_OK(daxpool_region_open(ctx, fixture_backing(REGION_SIZE), 0, &region));
	CHECK_OK(daxpool_map_new(region, 0, 0, 0, &map));
	/* Like an MR or a registered buffer: the device writes until io_release stops it. */
	CHECK_OK(dp_pin_new_io(map, daxpool_map_get_address(map), 65536, DAXPOOL_PIN_LONGTERM,
			       DAXPOOL_PIN_DEVICE_WRITE, NULL, device_stop, NULL, 0, &pin));
	daxpool_pin_unref(pin);
	printf("# unpin steps: %s (r: device stopped, p: range persisted)\n", steps);
	CHECK(strcmp(steps, "rp") == 0);
	daxpool_map_unref(map);
	daxpool_region_unref(region);
	daxpool_ctx_unref(ctx);
}

static void msleep(unsigned int ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000 };

	while (nanosleep(&ts, &ts) < 0)
		;
}

/*
 * urcu-bp is process-wide: an application that uses it too may hold its own
 * read-side section while it unpins. Many unpins inside one must return
 * (4000: more full batches than wait on the slab, so they join).
 */
TEST(unpins_inside_the_applications_rcu_read_side_section_return)
{
	const char *path = fixture_backing(REGION_SIZE);
	int status = 0;
	pid_t pid = fork();

	CHECK(pid >= 0);
	if (pid == 0) {
		struct daxpool_region *region;
		struct daxpool_map *map;
		struct daxpool_ctx *ctx;

		if (daxpool_ctx_new(&ctx) < 0 || daxpool_region_open(ctx, path, 0, &region) < 0 ||
		    daxpool_map_new(region, 0, 0, 0, &map) < 0)
			_exit(2);
		urcu_bp_read_lock();
		for (int i = 0; i < 4000; i++) {
			struct daxpool_pin *pin;

			if (daxpool_pin_new(map, daxpool_map_get_address(map), 4096,
					    DAXPOOL_PIN_TRANSIENT, DAXPOOL_PIN_DEVICE_READ, &pin) < 0)
				_exit(3);
			daxpool_pin_unref(pin);
		}
		urcu_bp_read_unlock();
		daxpool_map_unref(map);
		daxpool_region_unref(region);
		daxpool_ctx_unref(ctx);
		_exit(0);
	}
	for (int i = 0; i < 1000 && waitpid(pid, &status, WNOHANG) == 0; i++)
		msleep(10);
	if (waitpid(pid, &status, WNOHANG) == 0) {
		kill(pid, SIGKILL);
		CHECK_EQ(waitpid(pid, &status, 0), pid);
		dp_test_fail(__FILE__, __LINE__, "4000 unpins in a read-side section: still "
						 "waiting after 10 s (a grace period waits for its caller)");
	}
	CHECK(WIFEXITED(status));
	CHECK_EQ(WEXITSTATUS(status), 0);
}

static int keep_first(struct daxpool_pin *pin, void *userdata)
{
	*(struct daxpool_pin **)userdata = pin;
	return 1;
}

/*
 * A reader that found a pin may read it until its read-side section ends,
 * though the pin was unpinned meanwhile: its memory is not reused before.
 * After, it is (the slab does not grow for ever under pin and unpin).
 */
TEST(an_unpinned_pins_memory_is_reused_only_after_its_readers_are_done)
{
	struct daxpool_region *region;
	struct daxpool_map *map;
	struct daxpool_ctx *ctx;
	struct daxpool_pin *pin, *seen = NULL;
	char *base;
	bool reused = false;

	CHECK_OK(daxpool_ctx_new(&ctx));
	CHECK_OK(daxpool_region_open(ctx, fixture_backing(REGION_SIZE), 0, &region));
	CHECK_OK(daxpool_map_new(region, 0, 0, 0, &map));
	base = daxpool_map_get_address(map);
	CHECK_OK(daxpool_pin_new(map, base, 4096, DAXPOOL_PIN_TRANSIENT, DAXPOOL_PIN_DEVICE_READ,
				 &pin));

	urcu_bp_read_lock();
	CHECK_EQ(daxpool_ctx_lookup_pins(ctx, base, 1, keep_first, &seen), 1);
	CHECK(seen == pin);
	daxpool_pin_unref(pin);
	/* Many batches of unpins: none may take the memory the reader still sees. */
	for (int i = 0; i < 5000; i++) {
		struct daxpool_pin *p;

		CHECK_OK(daxpool_pin_new(map, base + 4096 * (1 + i % 1000), 4096,
					 DAXPOOL_PIN_TRANSIENT, DAXPOOL_PIN_DEVICE_READ, &p));
		CHECK(p != seen);
		daxpool_pin_unref(p);
	}
	CHECK(daxpool_pin_get_address(seen) == base);
	CHECK_EQ(daxpool_pin_get_length(seen), 4096);
	urcu_bp_read_unlock();

	/* The reader is done: the memory comes back (bounded: 10 s of pins and unpins). */
	for (int round = 0; round < 1000 && !reused; round++) {
		for (int i = 0; i < 1000 && !reused; i++) {
			struct daxpool_pin *p;

			CHECK_OK(daxpool_pin_new(map, base + 4096 * (1 + i), 4096,
						 DAXPOOL_PIN_TRANSIENT, DAXPOOL_PIN_DEVICE_READ, &p));
			reused = p == seen;
			daxpool_pin_unref(p);
		}
		if (!reused)
			msleep(10);
	}
	CHECK(reused);
	daxpool_map_unref(map);
	daxpool_region_unref(region);
	daxpool_ctx_unref(ctx);
}

static int count_pin(struct daxpool_pin *pin, void *userdata)
{
	(void)pin;
	(*(int *)userdata)++;
	return 0;
}

/*
 * Enough pins that the slab maps its chunks (from about 21,000 on, larger
 * each time): every pin keeps its own range and is found.
 */
TEST(a_hundred_thousand_pins_keep_their_ranges_and_are_found)
{
	enum { N = 100000, PAGES = (int)(REGION_SIZE / 4096) };
	struct daxpool_region *region;
	struct daxpool_map *map;
	struct daxpool_ctx *ctx;
	struct daxpool_pin **pins = calloc(N, sizeof(*pins));
	char *base;
	int seen = 0;

	CHECK(pins);
	CHECK_OK(daxpool_ctx_new(&ctx));
	CHECK_OK(daxpool_region_open(ctx, fixture_backing(REGION_SIZE), 0, &region));
	CHECK_OK(daxpool_map_new(region, 0, 0, 0, &map));
	base = daxpool_map_get_address(map);
	for (int i = 0; i < N; i++)
		CHECK_OK(daxpool_pin_new(map, base + 4096 * (i % PAGES), 4096, DAXPOOL_PIN_TRANSIENT,
					 DAXPOOL_PIN_DEVICE_READ, &pins[i]));
	CHECK_EQ(daxpool_region_get_pin_count(region, 0), N);
	for (int i = 0; i < N; i++) {
		CHECK(daxpool_pin_get_address(pins[i]) == base + 4096 * (i % PAGES));
		CHECK_EQ(daxpool_pin_get_length(pins[i]), 4096);
	}
	CHECK_EQ(daxpool_ctx_lookup_pins(ctx, base + 4096 * 7, 4096, count_pin, &seen),
		 N / PAGES + (7 < N % PAGES));
	CHECK_EQ(seen, N / PAGES + (7 < N % PAGES));
	for (int i = 0; i < N; i++)
		daxpool_pin_unref(pins[i]);
	CHECK_EQ(daxpool_ctx_is_pinned(ctx, base, REGION_SIZE), 0);
	free(pins);
	daxpool_map_unref(map);
	daxpool_region_unref(region);
	daxpool_ctx_unref(ctx);
}
