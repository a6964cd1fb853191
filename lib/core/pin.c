/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Pins: a range of a map registered as in use by a device. A pin holds its
 * map (so the memory stays mapped while the device may touch it), is counted
 * on its region per kind, is found by the registry's lock-free lookups, and
 * is revoked by a zap of its range before the maps are.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "private.h"

#define DP_PIN_ACCESS (DAXPOOL_PIN_DEVICE_READ | DAXPOOL_PIN_DEVICE_WRITE)

static void pin_free(struct daxpool_pin *pin)
{
	struct daxpool_map *map = pin->map;
	struct daxpool_region *region = map->region;

	/*
	 * No new reference from a lookup from here on. Lookups still report
	 * the pin until it leaves the registry below: the device may use the
	 * range until the I/O object is released and the range persisted.
	 */
	struct dp_pin_ext *ext = dp_pin_ext_get(pin);

	atomic_store_explicit(&pin->dead, true, memory_order_release);

	/*
	 * First stop the device (deregister the MR, unregister the io_uring
	 * buffer: both wait for the I/O that still uses the range), then
	 * flush: a write landing between a flush and the stop would stay in
	 * the CPU caches.
	 */
	if (ext && ext->io_release)
		ext->io_release(pin);

	/*
	 * The device may have written the range at any moment of the pin's
	 * life: its dirty state is unknowable, so persist all of it.
	 */
	if (pin->access & DAXPOOL_PIN_DEVICE_WRITE) {
		daxpool_map_persist(map, (void *)pin->start, pin->end - pin->start);
		log_dbg(pin->ctx, "%s: unpin persisted device-written [%#llx, +%#llx)",
			region->path, (unsigned long long)pin->offset,
			(unsigned long long)(pin->end - pin->start));
	}

	dp_registry_remove(pin->ctx->registry, pin);

	pthread_mutex_lock(&region->lock);
	dp_list_del(&pin->node);
	dp_services_call(pin->ctx, pin_event, pin, false);
	atomic_fetch_sub_explicit(&region->pin_count[pin->kind], 1, memory_order_relaxed);
	if (pin->dontfork)
		dp_fork_protect_pin(map, false);
	if (region->whole_zapped || region->n_zaps)
		pthread_cond_broadcast(&region->idle_cond);
	pthread_mutex_unlock(&region->lock);

	/* The pin's memory lives until a grace period ends; its map does not need to. */
	dp_pin_defer_free(pin);
	daxpool_map_unref(map);
}

static struct daxpool_ctx *ctx_of_pin(struct daxpool_pin *pin)
{
	return pin->ctx;
}

DP_DEFINE_REF_UNREF(pin, struct daxpool_pin, pin_free, ctx_of_pin)

_public_ struct daxpool_pin *daxpool_pin_try_ref(struct daxpool_pin *pin)
{
	if (!pin || dp_ctx_foreign(pin->ctx) || atomic_load_explicit(&pin->dead, memory_order_acquire))
		return NULL;
	return dp_refcnt_get_unless_zero(&pin->ref) ? pin : NULL;
}

struct dp_pin_ext *dp_pin_ext(struct daxpool_pin *pin)
{
	struct dp_pin_ext *ext = dp_pin_ext_get(pin);

	if (!ext) {
		ext = calloc(1, sizeof(*ext));
		if (ext)
			atomic_store_explicit(&pin->ext, ext, memory_order_release);
	}
	return ext;
}

_public_ int daxpool_pin_new(struct daxpool_map *map, void *addr, size_t length, int kind,
			     unsigned int access, struct daxpool_pin **ret)
{
	return dp_pin_new_io(map, addr, length, kind, access, NULL, NULL, NULL, 0, ret);
}

int dp_pin_new_io(struct daxpool_map *map, void *addr, size_t length, int kind,
		  unsigned int access, void (*io_revoke)(struct daxpool_pin *),
		  void (*io_release)(struct daxpool_pin *), const void *io, size_t io_len,
		  struct daxpool_pin **ret)
{
	struct daxpool_region *region;
	struct daxpool_pin *pin;
	uintptr_t start = (uintptr_t)addr, base = (uintptr_t)(map ? map->addr : NULL);
	unsigned int level;
	uintptr_t first;
	size_t n_nodes;
	int r = 0;

	assert_return(map, -EINVAL);
	assert_owned(map->region->ctx);
	assert_return(ret, -EINVAL);
	assert_return(length > 0, -EINVAL);
	assert_return(kind == DAXPOOL_PIN_TRANSIENT || kind == DAXPOOL_PIN_LONGTERM, -EINVAL);
	assert_return(access && !(access & ~DP_PIN_ACCESS), -EINVAL);
	region = map->region;

	if (start < base || start - base > map->length || length > map->length - (start - base)) {
		log_err(region->ctx, "%s: pin [%p, +%zu) is not inside the map [%p, +%llu)",
			region->path, addr, length, map->addr, (unsigned long long)map->length);
		return -EFAULT;
	}
	if ((access & DAXPOOL_PIN_DEVICE_WRITE) && (map->flags & DAXPOOL_MAP_RDONLY)) {
		log_err(region->ctx, "%s: device-write pin of a read-only map", region->path);
		return -EACCES;
	}

	/* Pins below 64 TiB: a pin's top-level granules differ in 16 bits (registry.c). */
	if ((uint64_t)length >= (UINT64_C(1) << 46)) {
		log_err(region->ctx, "%s: pin of %zu bytes: pins stay below 64 TiB", region->path,
			length);
		return -E2BIG;
	}
	dp_registry_place(start, length, &level, &first, &n_nodes);
	pin = dp_pin_alloc();
	if (!pin)
		return -ENOMEM;
	if (io_revoke || io_release || io_len) {
		struct dp_pin_ext *ext = dp_pin_ext(pin);

		if (!ext) {
			dp_pin_release_memory(pin);
			return -ENOMEM;
		}
		ext->io_revoke = io_revoke;
		ext->io_release = io_release;
		if (io_len)
			memcpy(&ext->io, io, io_len < sizeof(ext->io) ? io_len : sizeof(ext->io));
	}
	dp_refcnt_init(&pin->ref, 1);
	pin->ctx = region->ctx;
	pin->start = start;
	pin->end = start + length;
	pin->offset = map->offset + (start - base);
	pin->kind = (uint8_t)kind;
	pin->access = access & DP_PIN_ACCESS;
	pin->owner_tid = dp_gettid();
	pin->created_ns = dp_now_ns();
	atomic_init(&pin->revoked, false);
	atomic_init(&pin->dead, false);
	dp_list_init(&pin->node);
	/* A private map's pinned pages could move at fork: keep the map out of children. */
	pin->dontfork = (map->flags & DAXPOOL_MAP_PRIVATE) && dp_fork_protect_needed(region->ctx);

	/*
	 * Under the region lock, as daxpool_map_new(): a zap either sees this
	 * pin on the list (and revokes it) or has recorded its range first
	 * (and this check refuses the pin).
	 */
	pin->map = daxpool_map_ref(map);
	pthread_mutex_lock(&region->lock);
	if (atomic_load_explicit(&map->revoked, memory_order_acquire) ||
	    atomic_load_explicit(&region->dead, memory_order_acquire) ||
	    dp_region_range_zapped(region, pin->offset, pin->offset + length))
		r = -ENXIO;
	else {
		dp_list_add_tail(&region->pins, &pin->node);
		dp_services_call(pin->ctx, pin_event, pin, true);
		atomic_fetch_add_explicit(&region->pin_count[kind], 1, memory_order_relaxed);
		if (pin->dontfork)
			dp_fork_protect_pin(map, true);
	}
	pthread_mutex_unlock(&region->lock);
	if (r < 0) {
		log_err(region->ctx, "%s: [%#llx, +%zu) is zapped: no new pins", region->path,
			(unsigned long long)pin->offset, length);
		daxpool_map_unref(pin->map);
		dp_pin_release_memory(pin);
		return r;
	}
	r = dp_registry_insert(region->ctx->registry, pin, level, first, n_nodes);
	if (r < 0) {
		/* Never visible to lookups: unlinked and freed at once. */
		pthread_mutex_lock(&region->lock);
		dp_list_del(&pin->node);
		dp_services_call(pin->ctx, pin_event, pin, false);
		atomic_fetch_sub_explicit(&region->pin_count[kind], 1, memory_order_relaxed);
		if (pin->dontfork)
			dp_fork_protect_pin(map, false);
		if (region->whole_zapped || region->n_zaps)
			pthread_cond_broadcast(&region->idle_cond);
		pthread_mutex_unlock(&region->lock);
		daxpool_map_unref(pin->map);
		dp_pin_release_memory(pin);
		return r;
	}
	*ret = pin;
	return 0;
}

_public_ int daxpool_ctx_find_pin(struct daxpool_ctx *ctx, const void *addr, size_t length,
				  int kind, unsigned int access, struct daxpool_pin **ret)
{
	uintptr_t start = (uintptr_t)addr;

	assert_return(ctx && ret, -EINVAL);
	assert_owned(ctx);
	assert_return(length > 0 && start + length > start, -EINVAL);
	assert_return(kind == 0 || kind == DAXPOOL_PIN_TRANSIENT || kind == DAXPOOL_PIN_LONGTERM,
		      -EINVAL);
	assert_return(!(access & ~DP_PIN_ACCESS), -EINVAL);
	return dp_registry_find(ctx->registry, start, start + length, kind, access, ret);
}

_public_ int daxpool_ctx_find_or_pin(struct daxpool_ctx *ctx, void *addr, size_t length, int kind,
				     unsigned int access, struct daxpool_pin **ret)
{
	uintptr_t start = (uintptr_t)addr;
	struct daxpool_map *map;
	unsigned long made;
	int r;

	assert_return(ctx && ret, -EINVAL);
	assert_owned(ctx);
	assert_return(length > 0 && start + length > start, -EINVAL);
	assert_return(kind == DAXPOOL_PIN_TRANSIENT || kind == DAXPOOL_PIN_LONGTERM, -EINVAL);
	assert_return(access && !(access & ~DP_PIN_ACCESS), -EINVAL);

	made = dp_registry_made(ctx->registry);
	r = dp_registry_find(ctx->registry, start, start + length, kind, access, ret);
	if (r == 0)
		return 0;
	/*
	 * A miss: look again under the makers' lock, if a maker made a pin
	 * since this thread read their count. A maker inserts its pin into the
	 * registry before it counts it and lets the lock go, so a thread that
	 * missed together with it finds that pin here, and one pin is made.
	 */
	if (dp_registry_make_lock(ctx->registry) != made)
		r = dp_registry_find(ctx->registry, start, start + length, kind, access, ret);
	if (r < 0) {
		r = daxpool_ctx_find_map(ctx, addr, length, &map);
		if (r == 0) {
			r = daxpool_pin_new(map, addr, length, kind, access, ret);
			daxpool_map_unref(map);
			if (r == 0)
				r = 1;
		}
	}
	dp_registry_make_unlock(ctx->registry, r == 1);
	return r;
}

_public_ int daxpool_pin_set_revoke_fn(struct daxpool_pin *pin, daxpool_pin_revoke_fn revoke_fn,
				       void *userdata)
{
	assert_return(pin, -EINVAL);
	assert_owned(pin->ctx);
	struct dp_pin_ext *ext;

	pthread_mutex_lock(&pin->map->region->lock);
	ext = revoke_fn ? dp_pin_ext(pin) : dp_pin_ext_get(pin);
	if (ext) {
		ext->revoke_fn = revoke_fn;
		ext->revoke_data = userdata;
	}
	pthread_mutex_unlock(&pin->map->region->lock);
	return ext || !revoke_fn ? 0 : -ENOMEM;
}

_public_ int daxpool_pin_set_owner(struct daxpool_pin *pin, const char *owner)
{
	assert_return(pin, -EINVAL);
	assert_owned(pin->ctx);
	struct dp_pin_ext *ext;

	pthread_mutex_lock(&pin->map->region->lock);
	ext = owner && *owner ? dp_pin_ext(pin) : dp_pin_ext_get(pin);
	if (ext) {
		snprintf(ext->owner, sizeof(ext->owner), "%s", owner ? owner : "");
		dp_services_call(pin->ctx, pin_owner, pin);
	}
	pthread_mutex_unlock(&pin->map->region->lock);
	return ext || !owner || !*owner ? 0 : -ENOMEM;
}

_public_ const char *daxpool_pin_get_owner(struct daxpool_pin *pin)
{
	struct dp_pin_ext *ext;

	if (!pin)
		return NULL;
	ext = dp_pin_ext_get(pin);
	return ext ? ext->owner : "";
}

_public_ int daxpool_pin_copy_owner(struct daxpool_pin *pin, char *buf, size_t size)
{
	struct dp_pin_ext *ext;
	int n;

	assert_return(pin && (buf || !size), -EINVAL);
	/* Under the lock daxpool_pin_set_owner() rewrites the description with. */
	pthread_mutex_lock(&pin->map->region->lock);
	ext = dp_pin_ext_get(pin);
	n = snprintf(buf, size, "%s", ext ? ext->owner : "");
	pthread_mutex_unlock(&pin->map->region->lock);
	return n;
}

_public_ struct daxpool_map *daxpool_pin_get_map(struct daxpool_pin *pin)
{
	return pin ? pin->map : NULL;
}

_public_ void *daxpool_pin_get_address(struct daxpool_pin *pin)
{
	return pin ? (void *)pin->start : NULL;
}

_public_ size_t daxpool_pin_get_length(struct daxpool_pin *pin)
{
	return pin ? pin->end - pin->start : 0;
}

_public_ uint64_t daxpool_pin_get_offset(struct daxpool_pin *pin)
{
	return pin ? pin->offset : 0;
}

_public_ int daxpool_pin_get_kind(struct daxpool_pin *pin)
{
	assert_return(pin, -EINVAL);
	return pin->kind;
}

_public_ unsigned int daxpool_pin_get_access(struct daxpool_pin *pin)
{
	return pin ? pin->access : 0;
}

_public_ pid_t daxpool_pin_get_owner_pid(struct daxpool_pin *pin)
{
	assert_return(pin, -EINVAL);
	return pin->ctx->pid;
}

_public_ uint64_t daxpool_pin_get_age_ns(struct daxpool_pin *pin)
{
	return pin ? dp_now_ns() - pin->created_ns : 0;
}

_public_ int daxpool_pin_is_valid(struct daxpool_pin *pin)
{
	assert_return(pin, -EINVAL);
	assert_owned(pin->ctx);
	return !atomic_load_explicit(&pin->revoked, memory_order_acquire);
}

_public_ int daxpool_region_get_pin_count(struct daxpool_region *region, int kind)
{
	assert_return(region, -EINVAL);
	assert_owned(region->ctx);
	assert_return(kind >= 0 && kind <= DAXPOOL_PIN_LONGTERM, -EINVAL);
	if (kind)
		return atomic_load_explicit(&region->pin_count[kind], memory_order_relaxed);
	return atomic_load_explicit(&region->pin_count[DAXPOOL_PIN_TRANSIENT], memory_order_relaxed) +
	       atomic_load_explicit(&region->pin_count[DAXPOOL_PIN_LONGTERM], memory_order_relaxed);
}

_public_ int daxpool_region_foreach_pin(struct daxpool_region *region, daxpool_pin_visit_fn visit,
					void *userdata)
{
	struct dp_list *pos;
	int n = 0;

	assert_return(region, -EINVAL);
	assert_owned(region->ctx);
	assert_return(visit, -EINVAL);
	pthread_mutex_lock(&region->lock);
	dp_list_for_each(pos, &region->pins) {
		struct daxpool_pin *pin = dp_container_of(pos, struct daxpool_pin, node);

		n++;
		if (visit(pin, userdata))
			break;
	}
	pthread_mutex_unlock(&region->lock);
	return n;
}
