/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Threads pin, unpin, look up and zap for a bounded time; at the end every
 * count must be exact. Pinners keep a private tally of their live pins; a
 * lookup thread checks that the registry never reports a pin outside the
 * mapped range; one round ends with a zap whose revoke functions hand the
 * pins back, and the region must then be idle.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <syslog.h>
#include <time.h>

#include "daxpool.h"
#include "harness.h"

#define PINNERS 3
#define SLOTS 64
#define ROUNDS 10
#define ROUND_MS 60

struct shared {
	struct daxpool_ctx *ctx;
	struct daxpool_region *region;
	struct daxpool_map *map;
	char *base;
	size_t len;
	atomic_bool stop;
	atomic_long pins_made, lookups, enxio, revoked;
};

struct slot {
	_Atomic(struct daxpool_pin *) pin;
	struct shared *sh;
};

static void revoke_give_back(struct daxpool_pin *pin, void *userdata)
{
	struct slot *slot = userdata;
	struct daxpool_pin *mine = atomic_exchange(&slot->pin, NULL);

	atomic_fetch_add(&slot->sh->revoked, 1);
	daxpool_pin_unref(mine);
}

static void *pinner(void *arg)
{
	struct shared *sh = arg;
	struct slot slots[SLOTS];
	unsigned int seed = (unsigned int)(uintptr_t)&slots;

	for (int i = 0; i < SLOTS; i++) {
		atomic_init(&slots[i].pin, NULL);
		slots[i].sh = sh;
	}
	while (!atomic_load(&sh->stop)) {
		struct slot *s = &slots[rand_r(&seed) % SLOTS];
		struct daxpool_pin *pin = atomic_exchange(&s->pin, NULL);

		if (pin) {
			daxpool_pin_unref(pin);
			continue;
		}
		size_t off = ((size_t)rand_r(&seed) % (sh->len / 4096)) * 4096;
		size_t len = 4096 * (1 + (size_t)rand_r(&seed) % 1024);
		if (len > sh->len - off)
			len = sh->len - off;
		int r = daxpool_pin_new(sh->map, sh->base + off, len,
					(rand_r(&seed) & 1) ? DAXPOOL_PIN_TRANSIENT : DAXPOOL_PIN_LONGTERM,
					DAXPOOL_PIN_DEVICE_READ, &pin);
		if (r == -ENXIO) {
			atomic_fetch_add(&sh->enxio, 1);
			continue;
		}
		CHECK_OK(r);
		atomic_fetch_add(&sh->pins_made, 1);
		CHECK_OK(daxpool_pin_set_revoke_fn(pin, revoke_give_back, s));
		atomic_store(&s->pin, pin);
	}
	for (int i = 0; i < SLOTS; i++)
		daxpool_pin_unref(atomic_exchange(&slots[i].pin, NULL));
	return NULL;
}

static int check_in_range(struct daxpool_pin *pin, void *userdata)
{
	struct shared *sh = userdata;
	char *a = daxpool_pin_get_address(pin);

	CHECK(a >= sh->base && a + daxpool_pin_get_length(pin) <= sh->base + sh->len);
	return 0;
}

static void *looker(void *arg)
{
	struct shared *sh = arg;
	unsigned int seed = 7;

	while (!atomic_load(&sh->stop)) {
		size_t off = ((size_t)rand_r(&seed) % sh->len);
		int n = daxpool_ctx_lookup_pins(sh->ctx, sh->base + off, 1 + rand_r(&seed) % 65536,
						check_in_range, sh);
		CHECK(n >= 0);
		atomic_fetch_add(&sh->lookups, 1);
	}
	return NULL;
}

TEST_TIMEOUT(pin_unpin_lookup_zap_exact_counts, 240)
{
	long made = 0, lookups = 0, enxio = 0, revoked = 0;
	struct daxpool_ctx *ctx;
	const char *path;

	CHECK_OK(daxpool_ctx_new(&ctx));
	CHECK_OK(daxpool_ctx_set_log_priority(ctx, LOG_CRIT));
	path = fixture_backing(32ull << 20);
	for (int round = 0; round < ROUNDS; round++) {
		struct shared sh = { .ctx = ctx };
		pthread_t th[PINNERS + 1];
		struct timespec ts = { 0, ROUND_MS * 1000000L };

		CHECK_OK(daxpool_region_open(ctx, path, 0, &sh.region));
		CHECK_OK(daxpool_map_new(sh.region, 0, 0, 0, &sh.map));
		sh.base = daxpool_map_get_address(sh.map);
		sh.len = daxpool_map_get_length(sh.map);
		if (sh.len > (32u << 20))
			sh.len = 32u << 20;
		for (int i = 0; i < PINNERS; i++)
			CHECK_EQ(pthread_create(&th[i], NULL, pinner, &sh), 0);
		CHECK_EQ(pthread_create(&th[PINNERS], NULL, looker, &sh), 0);
		nanosleep(&ts, NULL);
		if (round % 2) {
			/* Zap mid-flight: pins come back through their revoke functions. */
			CHECK(daxpool_region_zap(sh.region) >= 1);
			nanosleep(&ts, NULL);
			/* Until the pinners have met the zap (bounded: a loaded machine is slow). */
			for (int ms = 0; atomic_load(&sh.enxio) == 0 && ms < 10000; ms++)
				nanosleep(&(struct timespec){ 0, 1000000L }, NULL);
		}
		atomic_store(&sh.stop, true);
		for (int i = 0; i <= PINNERS; i++)
			pthread_join(th[i], NULL);

		/* Exact: nothing pinned, in the counters and in the registry. */
		CHECK_EQ(daxpool_region_get_pin_count(sh.region, 0), 0);
		CHECK_EQ(daxpool_region_get_pin_count(sh.region, DAXPOOL_PIN_LONGTERM), 0);
		CHECK_EQ(daxpool_ctx_lookup_pins(ctx, sh.base, sh.len, NULL, NULL), 0);
		daxpool_map_unref(sh.map);
		if (round % 2) {
			CHECK_OK(daxpool_region_wait_idle(sh.region, 10000, NULL));
			CHECK(atomic_load(&sh.enxio) > 0);
		}
		made += atomic_load(&sh.pins_made);
		lookups += atomic_load(&sh.lookups);
		enxio += atomic_load(&sh.enxio);
		revoked += atomic_load(&sh.revoked);
		daxpool_region_unref(sh.region);
	}
	printf("# %d rounds: %ld pins, %ld lookups, %ld revoked, %ld refused after zap\n", ROUNDS,
	       made, lookups, revoked, enxio);
	CHECK(made > 0 && lookups > 0);
	daxpool_ctx_unref(ctx);
}
