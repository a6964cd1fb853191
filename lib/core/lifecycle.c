/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The lifecycle of a region: LIVE -> ZAPPING -> IDLE -> RELEASED.
 *
 * Zap-then-wait, as the kernel does before a truncate: first make sure no new
 * reference can be taken (the zapped range is recorded under region->lock, and
 * daxpool_map_new() checks it under the same lock before it publishes a map),
 * then tell every holder (revoke), then wait for the holders to go. Memory is
 * never unmapped under a holder: the last unref of a map does that.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "private.h"

/* The end of [offset, offset + length) inside the region; length 0 means to its end. */
static int region_range(struct daxpool_region *region, uint64_t offset, uint64_t length,
			uint64_t *ret_end)
{
	if (offset >= region->size)
		return -EINVAL;
	if (length == 0)
		length = region->size - offset;
	if (length > region->size - offset)
		return -EINVAL;
	*ret_end = offset + length;
	return 0;
}

/* Whether [start, end) lies inside one zap of the application's already. With region->lock held. */
static bool region_range_covered(struct daxpool_region *region, uint64_t start, uint64_t end)
{
	if (region->whole_zapped)
		return true;
	for (size_t i = 0; i < region->n_zaps; i++)
		if (region->zaps[i].owner == DP_ZAP_APP && region->zaps[i].start <= start &&
		    end <= region->zaps[i].end)
			return true;
	return false;
}

/* Maps that overlap a zapped range. Called with region->lock held. */
static unsigned int region_zapped_holders(struct daxpool_region *region)
{
	struct dp_list *pos;
	unsigned int n = 0;

	if (region->whole_zapped)
		return region->n_maps;
	dp_list_for_each(pos, &region->maps) {
		struct daxpool_map *map = dp_container_of(pos, struct daxpool_map, node);

		if (dp_region_range_zapped(region, map->offset, map->offset + map->length))
			n++;
	}
	return n;
}

/*
 * Whether the whole region is zapped, by the application or by a drain of
 * daxpool's own (a daxpoold request for all of it). With region->lock held.
 */
static bool region_all_zapped(struct daxpool_region *region)
{
	if (region->whole_zapped)
		return true;
	for (size_t i = 0; i < region->n_zaps; i++)
		if (region->zaps[i].start == 0 && region->zaps[i].end == region->size)
			return true;
	return false;
}

_public_ int daxpool_region_get_state(struct daxpool_region *region)
{
	int state;

	assert_return(region, -EINVAL);
	assert_owned(region->ctx);
	pthread_mutex_lock(&region->lock);
	if (region->released)
		state = DAXPOOL_STATE_RELEASED;
	else if (!region_all_zapped(region))
		state = DAXPOOL_STATE_LIVE;
	else
		state = region->n_maps ? DAXPOOL_STATE_ZAPPING : DAXPOOL_STATE_IDLE;
	pthread_mutex_unlock(&region->lock);
	return state;
}

_public_ const char *daxpool_state_name(int state)
{
	switch (state) {
	case DAXPOOL_STATE_LIVE:
		return "live";
	case DAXPOOL_STATE_ZAPPING:
		return "zapping";
	case DAXPOOL_STATE_IDLE:
		return "idle";
	case DAXPOOL_STATE_RELEASED:
		return "released";
	default:
		return NULL;
	}
}

_public_ uint64_t daxpool_region_get_generation(struct daxpool_region *region)
{
	return region ? atomic_load_explicit(&region->generation, memory_order_acquire) : 0;
}

_public_ int daxpool_region_get_map_count(struct daxpool_region *region)
{
	int n;

	assert_return(region, -EINVAL);
	assert_owned(region->ctx);
	pthread_mutex_lock(&region->lock);
	n = (int)region->n_maps;
	pthread_mutex_unlock(&region->lock);
	return n;
}

_public_ int daxpool_region_zap(struct daxpool_region *region)
{
	return daxpool_region_zap_range(region, 0, 0);
}

/*
 * The application's zaps (DP_ZAP_APP) are recorded as before: the whole
 * region as whole_zapped, a range already covered by one of its zaps not at
 * all. Any other owner's zap is always recorded, as its own entry.
 */
static int region_zap(struct daxpool_region *region, uint64_t offset, uint64_t length,
		      uint64_t owner)
{
	struct daxpool_map *revoke_list = NULL, *map;
	struct daxpool_pin *pin_list = NULL, *pin;
	struct dp_pin_ext *ext;
	struct dp_list *pos;
	uint64_t end;
	int n = 0, r;

	r = region_range(region, offset, length, &end);
	if (r < 0)
		return r;

	pthread_mutex_lock(&region->lock);
	if (region->released) {
		pthread_mutex_unlock(&region->lock);
		return -ENXIO;
	}
	if (owner == DP_ZAP_APP && offset == 0 && end == region->size) {
		region->whole_zapped = true;
	} else if (owner != DP_ZAP_APP || !region_range_covered(region, offset, end)) {
		struct dp_zap *zaps = realloc(region->zaps, (region->n_zaps + 1) * sizeof(*zaps));

		if (!zaps) {
			pthread_mutex_unlock(&region->lock);
			return -ENOMEM;
		}
		zaps[region->n_zaps++] = (struct dp_zap){ offset, end, owner };
		region->zaps = zaps;
	}
	/* Pins first: the device must stop before the memory's holders go. */
	dp_list_for_each(pos, &region->pins) {
		pin = dp_container_of(pos, struct daxpool_pin, node);
		if (!(pin->offset < end && offset < pin->offset + (pin->end - pin->start)))
			continue;
		if (atomic_exchange_explicit(&pin->revoked, true, memory_order_acq_rel))
			continue;
		n++;
		ext = dp_pin_ext_get(pin);
		if (!ext || (!ext->revoke_fn && !ext->io_revoke) ||
		    !dp_refcnt_get_unless_zero(&pin->ref))
			continue;
		/* Copied under the lock: the holder may change it once we unlock. */
		ext->revoke_call_fn = ext->revoke_fn;
		ext->revoke_call_data = ext->revoke_data;
		ext->revoke_next = pin_list;
		pin_list = pin;
	}
	dp_list_for_each(pos, &region->maps) {
		map = dp_container_of(pos, struct daxpool_map, node);
		if (!dp_map_overlaps(map, offset, end))
			continue;
		if (atomic_exchange_explicit(&map->revoked, true, memory_order_acq_rel))
			continue; /* revoked by an earlier zap */
		n++;
		/*
		 * A map whose count already reached zero is on its way out: it
		 * waits for this lock to unlink itself. Do not call it.
		 */
		if (!map->revoke_fn || !dp_refcnt_get_unless_zero(&map->ref))
			continue;
		map->revoke_call_fn = map->revoke_fn;
		map->revoke_call_data = map->revoke_data;
		map->revoke_next = revoke_list;
		revoke_list = map;
	}
	/*
	 * Publish the new generation after every revocation, under the lock:
	 * whoever reads it with acquire ordering then sees each holder this
	 * zap revoked as revoked (the header's contract).
	 */
	atomic_fetch_add_explicit(&region->generation, 1, memory_order_release);
	pthread_mutex_unlock(&region->lock);

	log_info(region->ctx, "%s: zapped [%llu, %llu): %d map(s) and pin(s) revoked", region->path,
		 (unsigned long long)offset, (unsigned long long)end, n);

	/* Revoke functions run with no lock held: they may unref their pin or map. */
	while (pin_list) {
		pin = pin_list;
		ext = dp_pin_ext_get(pin);
		pin_list = ext->revoke_next;
		/* The application first (retire the rkey, stop posting), then the I/O itself. */
		if (ext->revoke_call_fn)
			ext->revoke_call_fn(pin, ext->revoke_call_data);
		if (ext->io_revoke)
			ext->io_revoke(pin);
		daxpool_pin_unref(pin);
	}
	while (revoke_list) {
		map = revoke_list;
		revoke_list = map->revoke_next;
		map->revoke_call_fn(map, map->revoke_call_data);
		daxpool_map_unref(map);
	}
	return n;
}

_public_ int daxpool_region_zap_range(struct daxpool_region *region, uint64_t offset,
				      uint64_t length)
{
	assert_return(region, -EINVAL);
	assert_owned(region->ctx);
	return region_zap(region, offset, length, DP_ZAP_APP);
}

int dp_region_zap_as(struct daxpool_region *region, uint64_t offset, uint64_t length,
		     uint64_t owner)
{
	return region_zap(region, offset, length, owner);
}

int dp_region_unzap_as(struct daxpool_region *region, uint64_t start, uint64_t end,
		       uint64_t owner)
{
	int n = 0;

	pthread_mutex_lock(&region->lock);
	for (size_t i = 0; i < region->n_zaps; i++) {
		if (region->zaps[i].owner == owner && region->zaps[i].start == start &&
		    region->zaps[i].end == end) {
			region->zaps[i] = region->zaps[--region->n_zaps];
			n = 1;
			break;
		}
	}
	/* Reopened (if no other zap covers it): the generation says so. */
	if (n)
		atomic_fetch_add_explicit(&region->generation, 1, memory_order_release);
	pthread_mutex_unlock(&region->lock);
	if (n)
		log_dbg(region->ctx, "%s: daxpool's own zap of [%#llx, %#llx) removed", region->path,
			(unsigned long long)start, (unsigned long long)end);
	return n;
}

/* A malloc()ed report of the maps that still hold zapped ranges. With region->lock held. */
static char *region_holders_report(struct daxpool_region *region)
{
	uint64_t now = dp_now_ns();
	struct dp_list *pos;
	char *buf = NULL;
	size_t len = 0;
	FILE *f;

	f = open_memstream(&buf, &len);
	if (!f)
		return NULL;
	dp_list_for_each(pos, &region->maps) {
		struct daxpool_map *map = dp_container_of(pos, struct daxpool_map, node);
		uint64_t born = (uint64_t)map->created.tv_sec * 1000000000u +
				(uint64_t)map->created.tv_nsec;

		if (!dp_region_range_zapped(region, map->offset, map->offset + map->length))
			continue;
		fprintf(f, "map [%#llx, %#llx) of %s: pid %d tid %d tag \"%s\" refs %d age %.3fs\n",
			(unsigned long long)map->offset,
			(unsigned long long)(map->offset + map->length), region->path,
			(int)map->owner_pid, (int)map->owner_tid, map->tag, dp_refcnt_read(&map->ref),
			(double)(now - born) / 1e9);
	}
	dp_list_for_each(pos, &region->pins) {
		struct daxpool_pin *pin = dp_container_of(pos, struct daxpool_pin, node);
		uint64_t plen = pin->end - pin->start;

		if (!dp_region_range_zapped(region, pin->offset, pin->offset + plen))
			continue;
		fprintf(f, "pin [%#llx, %#llx) of %s: %s %s%s pid %d tid %d owner \"%s\" age %.3fs\n",
			(unsigned long long)pin->offset, (unsigned long long)(pin->offset + plen),
			region->path, pin->kind == DAXPOOL_PIN_LONGTERM ? "longterm" : "transient",
			(pin->access & DAXPOOL_PIN_DEVICE_READ) ? "device-read" : "",
			(pin->access & DAXPOOL_PIN_DEVICE_WRITE) ? " device-write" : "",
			(int)pin->ctx->pid, (int)pin->owner_tid, daxpool_pin_get_owner(pin),
			(double)(now - pin->created_ns) / 1e9);
	}
	if (fclose(f) != 0) {
		free(buf);
		return NULL;
	}
	return buf;
}

_public_ int daxpool_region_wait_idle(struct daxpool_region *region, int timeout_ms,
				      char **ret_report)
{
	struct timespec deadline;
	char *report;
	int r = 0;

	assert_return(region, -EINVAL);
	assert_owned(region->ctx);
	assert_return(timeout_ms >= -1, -EINVAL);

	deadline = dp_deadline(timeout_ms);

	pthread_mutex_lock(&region->lock);
	if (!region->whole_zapped && region->n_zaps == 0) {
		pthread_mutex_unlock(&region->lock);
		return -ESRCH;
	}
	/* The last map to go broadcasts idle_cond under this lock: no lost wakeup. */
	while (region_zapped_holders(region) > 0) {
		if (timeout_ms == 0) {
			r = ETIMEDOUT;
		} else if (timeout_ms < 0) {
			r = pthread_cond_wait(&region->idle_cond, &region->lock);
		} else {
			r = pthread_cond_timedwait(&region->idle_cond, &region->lock, &deadline);
		}
		if (r == ETIMEDOUT && region_zapped_holders(region) > 0)
			break;
		r = 0;
	}
	if (r != ETIMEDOUT) {
		pthread_mutex_unlock(&region->lock);
		return 0;
	}
	/* A check (0) is a poll: no report unless asked for, and no warning. */
	if (timeout_ms == 0 && !ret_report) {
		pthread_mutex_unlock(&region->lock);
		return -ETIMEDOUT;
	}

	report = region_holders_report(region);
	pthread_mutex_unlock(&region->lock);
	if (timeout_ms != 0)
		log_warn(region->ctx, "%s: not idle after %d ms; still held:\n%s", region->path,
			 timeout_ms, report ? report : "(no memory for the report)");
	if (ret_report) {
		*ret_report = report;
		return report ? -ETIMEDOUT : -ENOMEM;
	}
	free(report);
	return -ETIMEDOUT;
}

bool dp_region_range_held(struct daxpool_region *region, uint64_t start, uint64_t end)
{
	struct dp_list *pos;

	dp_list_for_each(pos, &region->maps) {
		if (dp_map_overlaps(dp_container_of(pos, struct daxpool_map, node), start, end))
			return true;
	}
	return false;
}

/*
 * daxpool_region_wait_idle() waits for every zapped range of the region, so a
 * slow holder of one range would hold up a layout change of another; this
 * waits for one range, on the same condition variable (map_free() broadcasts
 * it while any zap exists, under region->lock, so no wakeup is lost).
 */
int dp_region_wait_range_idle(struct daxpool_region *region, uint64_t start, uint64_t end,
			      int timeout_ms)
{
	struct timespec deadline = dp_deadline(timeout_ms);
	int r = 0;

	pthread_mutex_lock(&region->lock);
	while (dp_region_range_held(region, start, end) && r != ETIMEDOUT) {
		if (timeout_ms == 0)
			r = ETIMEDOUT;
		else if (timeout_ms < 0)
			pthread_cond_wait(&region->idle_cond, &region->lock);
		else
			r = pthread_cond_timedwait(&region->idle_cond, &region->lock, &deadline);
	}
	r = dp_region_range_held(region, start, end) ? -ETIMEDOUT : 0;
	pthread_mutex_unlock(&region->lock);
	return r;
}

_public_ int daxpool_region_unzap_range(struct daxpool_region *region, uint64_t offset,
					uint64_t length)
{
	uint64_t end;
	size_t kept = 0;
	int n = 0, r;

	assert_return(region, -EINVAL);
	assert_owned(region->ctx);
	r = region_range(region, offset, length, &end);
	if (r < 0)
		return r;

	pthread_mutex_lock(&region->lock);
	if (region->released) {
		pthread_mutex_unlock(&region->lock);
		return -ENXIO;
	}
	/*
	 * A map reservation in daxpool_map_new() is counted in n_maps before it
	 * is on the list; it re-checks the zaps before publishing, so it either
	 * sees this range still zapped (and fails) or sees it reopened.
	 */
	if (dp_region_range_held(region, offset, end)) {
		pthread_mutex_unlock(&region->lock);
		return -EBUSY;
	}
	if (offset == 0 && end == region->size && region->whole_zapped) {
		region->whole_zapped = false;
		n++;
	}
	/* The application's own zaps only: daxpool's operations remove theirs themselves. */
	for (size_t i = 0; i < region->n_zaps; i++) {
		if (region->zaps[i].owner == DP_ZAP_APP && region->zaps[i].start >= offset &&
		    region->zaps[i].end <= end)
			n++;
		else
			region->zaps[kept++] = region->zaps[i];
	}
	region->n_zaps = kept;
	if (n)
		atomic_fetch_add_explicit(&region->generation, 1, memory_order_release);
	pthread_mutex_unlock(&region->lock);
	log_info(region->ctx, "%s: reopened [%#llx, %#llx): %d zap(s) removed", region->path,
		 (unsigned long long)offset, (unsigned long long)end, n);
	if (n)
		dp_services_call(region->ctx, region_reopened, region); /* a broken lease: again */
	return n;
}

_public_ int daxpool_region_release(struct daxpool_region *region)
{
	assert_return(region, -EINVAL);
	assert_owned(region->ctx);

	pthread_mutex_lock(&region->lock);
	if (region->released) {
		pthread_mutex_unlock(&region->lock);
		return -EALREADY;
	}
	if (!region->whole_zapped || region->n_maps > 0 || region->layout_ops > 0) {
		const char *why = !region->whole_zapped ? "the region is not zapped"
				  : region->n_maps > 0	 ? "maps still hold the region"
							 : "a truncate or hole punch is running";

		pthread_mutex_unlock(&region->lock);
		log_err(region->ctx, "%s: release refused: %s", region->path, why);
		return -EBUSY;
	}
	region->released = true;
	atomic_fetch_add_explicit(&region->generation, 1, memory_order_release);
	dp_region_close_backing(region);
	pthread_mutex_unlock(&region->lock);
	log_info(region->ctx, "%s: released", region->path);
	return 0;
}
