/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The drain service: every zap daxpool makes for its own operations (a
 * truncate or hole punch, an extent free, a daxpoold request) is a token
 * that owns it. The region records each zap with its owner (lifecycle.c);
 * a drain's owner is a number no other drain of the process has, so its put
 * removes its own zap and nothing else, whatever the application or other
 * drains zapped over, under or beside it.
 */
#include <string.h>

#include "private.h"

/* Owners handed out so far; 0 is the application's (DP_ZAP_APP). */
static _Atomic uint64_t drain_owners;

int dp_drain_take(struct daxpool_region *region, uint64_t offset, uint64_t length,
		  struct dp_drain *drain)
{
	/* Relaxed: the number only needs to be unique, region->lock orders the rest. */
	uint64_t owner = atomic_fetch_add_explicit(&drain_owners, 1, memory_order_relaxed) + 1;
	int r;

	*drain = (struct dp_drain){ 0 };
	r = dp_region_zap_as(region, offset, length, owner);
	if (r < 0)
		return r;
	*drain = (struct dp_drain){
		.region = region,
		.start = offset,
		.end = length ? offset + length : region->size,
		.owner = owner,
	};
	return r;
}

int dp_drain_wait(const struct dp_drain *drain, int timeout_ms)
{
	assert(dp_drain_taken(drain));
	return dp_region_wait_range_idle(drain->region, drain->start, drain->end, timeout_ms);
}

bool dp_drain_taken(const struct dp_drain *drain)
{
	return drain->owner != 0;
}

void dp_drain_put(struct dp_drain *drain)
{
	if (!dp_drain_taken(drain))
		return;
	dp_region_unzap_as(drain->region, drain->start, drain->end, drain->owner);
	dp_drain_forget(drain);
}

void dp_drain_keep(struct dp_drain *drain, uint64_t from)
{
	int r;

	if (!dp_drain_taken(drain))
		return;
	if (from < drain->start)
		from = drain->start;
	/*
	 * The application's zap first, then the drain's own goes: the range
	 * is zapped all along. It revokes nothing: no map of the range could
	 * be made while the drain's zap stood.
	 */
	r = from < drain->end ? daxpool_region_zap_range(drain->region, from, drain->end - from) : 0;
	if (r < 0) {
		/* Released (-ENXIO): nothing maps it again anyway. */
		if (r != -ENXIO)
			log_err(drain->region->ctx, "%s: [%#llx, %#llx) stays zapped by daxpool "
						    "itself: %s",
				drain->region->path, (unsigned long long)from,
				(unsigned long long)drain->end, strerror(-r));
		dp_drain_forget(drain);
		return;
	}
	dp_drain_put(drain);
}

void dp_drain_forget(struct dp_drain *drain)
{
	*drain = (struct dp_drain){ 0 };
}
