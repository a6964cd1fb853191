/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Threads race map/unmap/ref/unref against zap. Each round: workers map and
 * drop ranges as fast as they can, some maps hand their reference to a
 * revoke function; the main thread zaps the whole region and waits for idle.
 * At the end every count must be exact: no map left, every revoke called once.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <time.h>

#include <syslog.h>

#include "daxpool.h"
#include "harness.h"

#define WORKERS 4
#define ROUNDS 20
#define ROUND_MS 40
#define SLOTS 8

struct round {
	struct daxpool_region *region;
	uint64_t align, units;
	atomic_bool stop;
	atomic_long maps_made;
	atomic_long revokes;
	atomic_long enxio;
};

/* A slot owns one reference; whoever exchanges it to NULL drops it. */
struct slot {
	_Atomic(struct daxpool_map *) map;
	struct round *round;
};

static void revoke_take(struct daxpool_map *map, void *userdata)
{
	struct slot *slot = userdata;
	struct daxpool_map *mine = atomic_exchange(&slot->map, NULL);

	atomic_fetch_add(&slot->round->revokes, 1);
	if (mine) {
		CHECK(mine == map);
		daxpool_map_unref(mine);
	}
}

static void *worker(void *arg)
{
	struct round *r = arg;
	struct slot slots[SLOTS];
	unsigned int seed = (unsigned int)(uintptr_t)&slots;

	for (int i = 0; i < SLOTS; i++) {
		atomic_init(&slots[i].map, NULL);
		slots[i].round = r;
	}
	while (!atomic_load(&r->stop)) {
		struct slot *s = &slots[rand_r(&seed) % SLOTS];
		struct daxpool_map *map = atomic_exchange(&s->map, NULL);

		if (map) {
			/* Exercise ref/unref on a live handle, then drop it. */
			daxpool_map_ref(map);
			if (daxpool_map_is_valid(map))
				daxpool_map_memset(map, daxpool_map_get_address(map), 0x3c, 64, 0);
			daxpool_map_unref(map);
			daxpool_map_unref(map);
			continue;
		}
		uint64_t unit = (uint64_t)rand_r(&seed) % r->units;
		int ret = daxpool_map_new(r->region, unit * r->align, r->align, 0, &map);

		if (ret == -ENXIO) {
			atomic_fetch_add(&r->enxio, 1);
			continue;
		}
		CHECK_OK(ret);
		atomic_fetch_add(&r->maps_made, 1);
		CHECK_OK(daxpool_map_set_revoke_fn(map, revoke_take, s));
		atomic_store(&s->map, map);
	}
	/* Drop what is left, racing nothing but the revoke functions. */
	for (int i = 0; i < SLOTS; i++)
		daxpool_map_unref(atomic_exchange(&slots[i].map, NULL));
	return NULL;
}

TEST_TIMEOUT(map_unmap_ref_unref_against_zap, 240)
{
	struct daxpool_ctx *ctx;
	long total_maps = 0, total_revokes = 0, total_enxio = 0;

	CHECK_OK(daxpool_ctx_new(&ctx));
	CHECK_OK(daxpool_ctx_set_log_priority(ctx, LOG_CRIT));
	const char *path = fixture_backing(32ull << 20);

	for (int round = 0; round < ROUNDS; round++) {
		struct round r = { 0 };
		pthread_t th[WORKERS];
		struct timespec ts = { 0, ROUND_MS * 1000000L };
		char *report = NULL;
		int ret;

		CHECK_OK(daxpool_region_open(ctx, path, 0, &r.region));
		r.align = daxpool_region_get_alignment(r.region);
		r.units = daxpool_region_get_size(r.region) / r.align;
		if (r.units > 16)
			r.units = 16;
		for (int i = 0; i < WORKERS; i++)
			CHECK_EQ(pthread_create(&th[i], NULL, worker, &r), 0);
		nanosleep(&ts, NULL);
		/*
		 * The race needs maps: on a slow machine (a device under
		 * emulation) the first maps may take longer than the round, and a
		 * zap before any would race nothing. Wait for one (bounded).
		 */
		for (int ms = 0; atomic_load(&r.maps_made) == 0 && ms < 10000; ms++)
			nanosleep(&(struct timespec){ 0, 1000000L }, NULL);
		CHECK(daxpool_region_zap(r.region) >= 0);
		/*
		 * Workers keep going: every new map must now fail with -ENXIO.
		 * Let them run until they have seen it (bounded: a loaded
		 * machine may not schedule them at once).
		 */
		nanosleep(&ts, NULL);
		for (int ms = 0; atomic_load(&r.enxio) == 0 && ms < 10000; ms++)
			nanosleep(&(struct timespec){ 0, 1000000L }, NULL);
		atomic_store(&r.stop, true);
		for (int i = 0; i < WORKERS; i++)
			pthread_join(th[i], NULL);
		ret = daxpool_region_wait_idle(r.region, 10000, &report);
		if (ret < 0)
			printf("# still held:\n%s", report ? report : "?");
		CHECK_OK(ret);
		free(report);
		CHECK_EQ(daxpool_region_get_map_count(r.region), 0);
		CHECK_EQ(daxpool_region_get_state(r.region), DAXPOOL_STATE_IDLE);
		CHECK_OK(daxpool_region_release(r.region));
		CHECK(atomic_load(&r.enxio) > 0);
		total_maps += atomic_load(&r.maps_made);
		total_revokes += atomic_load(&r.revokes);
		total_enxio += atomic_load(&r.enxio);
		daxpool_region_unref(r.region);
	}
	printf("# %d rounds: %ld maps made, %ld revoke calls, %ld refused after zap\n", ROUNDS,
	       total_maps, total_revokes, total_enxio);
	CHECK(total_maps > 0);
	CHECK(total_revokes <= total_maps);
	daxpool_ctx_unref(ctx);
}
