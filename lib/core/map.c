/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Maps: a range of a region mapped through libpmem2, with persistence helpers. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "private.h"

#define DP_MAP_FLAGS (DAXPOOL_MAP_PRIVATE | DAXPOOL_MAP_SYNC | DAXPOOL_MAP_RDONLY)
#define DP_COPY_FLAGS                                                                              \
	(DAXPOOL_COPY_NOFLUSH | DAXPOOL_COPY_NODRAIN | DAXPOOL_COPY_NONTEMPORAL |                   \
	 DAXPOOL_COPY_TEMPORAL)

/* pmem2_map_delete() under dp_pmem2_map_lock. */
static void map_pmem2_delete(struct pmem2_map **pmap)
{
	pthread_rwlock_wrlock(&dp_pmem2_map_lock);
	pmem2_map_delete(pmap);
	pthread_rwlock_unlock(&dp_pmem2_map_lock);
}

static int map_check_args(struct daxpool_region *region, uint64_t offset, uint64_t *length,
			  unsigned int flags)
{
	struct daxpool_ctx *ctx = region->ctx;
	uint64_t mask = region->alignment - 1;

	if (flags & ~DP_MAP_FLAGS) {
		log_err(ctx, "%s: unknown map flags %#x", region->path, flags & ~DP_MAP_FLAGS);
		return -EINVAL;
	}
	if ((offset & mask) || (*length & mask)) {
		log_err(ctx, "%s: offset %#llx and length %#llx must be multiples of the alignment %#llx",
			region->path, (unsigned long long)offset, (unsigned long long)*length,
			(unsigned long long)region->alignment);
		return -EINVAL;
	}
	if (offset >= region->size || *length > region->size - offset) {
		log_err(ctx, "%s: range [%#llx, +%#llx) runs past the end of the region (%#llx)",
			region->path, (unsigned long long)offset, (unsigned long long)*length,
			(unsigned long long)region->size);
		return -ERANGE;
	}
	if (*length == 0)
		*length = region->size - offset;
	if ((flags & DAXPOOL_MAP_PRIVATE) && region->kind == DAXPOOL_REGION_DEVDAX) {
		log_err(ctx, "%s: device-dax cannot be mapped private (copy-on-write)", region->path);
		return -EINVAL;
	}
	if (region->rdonly && !(flags & DAXPOOL_MAP_RDONLY)) {
		log_err(ctx, "%s: the region is read-only: map it with DAXPOOL_MAP_RDONLY",
			region->path);
		return -EACCES;
	}
	if ((flags & DAXPOOL_MAP_SYNC) &&
	    (region->kind == DAXPOOL_REGION_FILE || (flags & DAXPOOL_MAP_PRIVATE))) {
		log_err(ctx, "%s: MAP_SYNC needs a shared mapping of DAX memory; this is %s",
			region->path,
			region->kind == DAXPOOL_REGION_FILE ? "a file without DAX" : "private");
		return -EOPNOTSUPP;
	}
	return 0;
}

static int map_granularity(enum pmem2_granularity g)
{
	switch (g) {
	case PMEM2_GRANULARITY_BYTE:
		return DAXPOOL_GRANULARITY_BYTE;
	case PMEM2_GRANULARITY_CACHE_LINE:
		return DAXPOOL_GRANULARITY_CACHE_LINE;
	default:
		return DAXPOOL_GRANULARITY_PAGE;
	}
}

static int map_pmem2(struct daxpool_map *map)
{
	struct daxpool_region *region = map->region;
	struct pmem2_config *cfg = NULL;
	int r;

	r = pmem2_config_new(&cfg);
	if (r)
		return dp_pmem2_err(region->ctx, r, "pmem2 config");
	/*
	 * libpmem2 maps a DAX source with MAP_SYNC whenever it can; requiring
	 * cache-line granularity turns "it could not" into an error.
	 */
	pmem2_config_set_required_store_granularity(cfg, (map->flags & DAXPOOL_MAP_SYNC)
								 ? PMEM2_GRANULARITY_CACHE_LINE
								 : PMEM2_GRANULARITY_PAGE);
	r = pmem2_config_set_offset(cfg, map->offset);
	if (!r)
		r = pmem2_config_set_length(cfg, map->length);
	if (!r)
		r = pmem2_config_set_sharing(cfg, (map->flags & DAXPOOL_MAP_PRIVATE) ? PMEM2_PRIVATE
										      : PMEM2_SHARED);
	if (!r)
		r = pmem2_config_set_protection(cfg, (map->flags & DAXPOOL_MAP_RDONLY)
							     ? PMEM2_PROT_READ
							     : PMEM2_PROT_READ | PMEM2_PROT_WRITE);
	if (!r) {
		pthread_rwlock_wrlock(&dp_pmem2_map_lock);
		r = pmem2_map_new(&map->pmap, cfg, region->src);
		pthread_rwlock_unlock(&dp_pmem2_map_lock);
	}
	pmem2_config_delete(&cfg);
	if (r)
		return dp_pmem2_err(region->ctx, r, region->path);

	map->addr = pmem2_map_get_address(map->pmap);
	map->granularity = map_granularity(pmem2_map_get_store_granularity(map->pmap));
	map->persist_fn = pmem2_get_persist_fn(map->pmap);
	map->flush_fn = pmem2_get_flush_fn(map->pmap);
	map->drain_fn = pmem2_get_drain_fn(map->pmap);
	map->memcpy_fn = pmem2_get_memcpy_fn(map->pmap);
	map->memset_fn = pmem2_get_memset_fn(map->pmap);
	return 0;
}

static void map_free(struct daxpool_map *map)
{
	struct daxpool_region *region = map->region;

	/*
	 * Unmap first: the region is idle only once the memory is really gone
	 * (a waiter may let a truncate or a device disable go on at once). The
	 * mapping's own reference to the file goes here too.
	 */
	map_pmem2_delete(&map->pmap);
	/*
	 * Then unlink under the region lock. A zap may still have found this map
	 * in the list, but its get_unless_zero() failed, so nobody calls it now.
	 */
	pthread_mutex_lock(&region->lock);
	dp_list_del(&map->node);
	region->n_maps--;
	dp_services_call(map->region->ctx, map_event, map, false);
	if (region->whole_zapped || region->n_zaps)
		pthread_cond_broadcast(&region->idle_cond);
	dp_region_drop_dead_backing(region);
	pthread_mutex_unlock(&region->lock);
	log_dbg(region->ctx, "%s: unmapped [%#llx, +%#llx)", region->path,
		(unsigned long long)map->offset, (unsigned long long)map->length);
	free(map);
	daxpool_region_unref(region);
}

static struct daxpool_ctx *ctx_of_map(struct daxpool_map *map)
{
	return map->region->ctx;
}

DP_DEFINE_REF_UNREF(map, struct daxpool_map, map_free, ctx_of_map)

static int region_refuse(struct daxpool_region *region, uint64_t start, uint64_t end)
{
	if (atomic_load_explicit(&region->dead, memory_order_acquire)) {
		log_err(region->ctx, "%s: the region is dead (its mapping went away)", region->path);
		return -ENXIO;
	}
	if (region->released) {
		log_err(region->ctx, "%s: the region is released", region->path);
		return -ENXIO;
	}
	if (dp_region_range_zapped(region, start, end)) {
		log_err(region->ctx, "%s: [%#llx, %#llx) is zapped: no new maps", region->path,
			(unsigned long long)start, (unsigned long long)end);
		return -ENXIO;
	}
	return 0;
}

_public_ int daxpool_map_new(struct daxpool_region *region, uint64_t offset, uint64_t length,
			     unsigned int flags, struct daxpool_map **ret)
{
	struct daxpool_map *map;
	int r;

	assert_return(region, -EINVAL);
	assert_owned(region->ctx);
	assert_return(ret, -EINVAL);

	r = map_check_args(region, offset, &length, flags);
	if (r < 0)
		return r;

	map = calloc(1, sizeof(*map));
	if (!map)
		return -ENOMEM;
	dp_refcnt_init(&map->ref, 1);
	dp_list_init(&map->node);
	map->region = region;
	map->offset = offset;
	map->length = length;
	map->flags = flags;
	map->owner_pid = dp_getpid();
	map->owner_tid = dp_gettid();
	clock_gettime(CLOCK_MONOTONIC, &map->created);
	atomic_init(&map->revoked, false);
	atomic_init(&map->exclusive, true);

	/*
	 * Reserve: the map goes on the region's list, pending, before the
	 * costly mapping. From here on every zap, wait and unzap sees it (a
	 * zap marks it revoked; wait_idle waits for it; unzap says -EBUSY),
	 * and daxpool_region_release() refuses while n_maps > 0, so the
	 * region's source stays open while libpmem2 maps it.
	 */
	pthread_mutex_lock(&region->lock);
	r = region_refuse(region, offset, offset + length);
	if (r == 0) {
		map->pending = true;
		dp_list_add_tail(&region->maps, &map->node);
		region->n_maps++;
	}
	pthread_mutex_unlock(&region->lock);
	if (r < 0) {
		free(map);
		return r;
	}

	r = map_pmem2(map);

	/* Publish, unless a zap revoked the reservation while it was mapped. */
	pthread_mutex_lock(&region->lock);
	if (r == 0 && atomic_load_explicit(&map->revoked, memory_order_acquire)) {
		log_err(region->ctx, "%s: [%#llx, %#llx) was zapped while it was being mapped",
			region->path, (unsigned long long)offset,
			(unsigned long long)(offset + length));
		r = -ENXIO;
	}
	if (r == 0) {
		map->pending = false;
		dp_services_call(map->region->ctx, map_event, map, true);
		daxpool_region_ref(region);
	} else {
		dp_list_del(&map->node);
		region->n_maps--;
		if (region->whole_zapped || region->n_zaps)
			pthread_cond_broadcast(&region->idle_cond);
	}
	pthread_mutex_unlock(&region->lock);
	if (r < 0) {
		if (map->pmap)
			map_pmem2_delete(&map->pmap);
		free(map);
		return r;
	}

	log_dbg(region->ctx, "%s: mapped [%#llx, +%#llx) at %p, granularity %s", region->path,
		(unsigned long long)offset, (unsigned long long)length, map->addr,
		daxpool_granularity_name(map->granularity));
	*ret = map;
	return 0;
}

_public_ struct daxpool_region *daxpool_map_get_region(struct daxpool_map *map)
{
	return map ? map->region : NULL;
}

_public_ void *daxpool_map_get_address(struct daxpool_map *map)
{
	return map ? map->addr : NULL;
}

_public_ uint64_t daxpool_map_get_offset(struct daxpool_map *map)
{
	return map ? map->offset : 0;
}

_public_ uint64_t daxpool_map_get_length(struct daxpool_map *map)
{
	return map ? map->length : 0;
}

_public_ int daxpool_map_get_granularity(struct daxpool_map *map)
{
	assert_return(map, -EINVAL);
	return map->granularity;
}

_public_ pid_t daxpool_map_get_owner_pid(struct daxpool_map *map)
{
	assert_return(map, -EINVAL);
	return map->owner_pid;
}

_public_ int daxpool_map_is_valid(struct daxpool_map *map)
{
	assert_return(map, -EINVAL);
	assert_owned(map->region->ctx);
	return !atomic_load_explicit(&map->revoked, memory_order_acquire);
}

_public_ int daxpool_map_set_revoke_fn(struct daxpool_map *map, daxpool_revoke_fn revoke_fn,
				       void *userdata)
{
	assert_return(map, -EINVAL);
	assert_owned(map->region->ctx);
	pthread_mutex_lock(&map->region->lock);
	map->revoke_fn = revoke_fn;
	map->revoke_data = userdata;
	pthread_mutex_unlock(&map->region->lock);
	return 0;
}

_public_ int daxpool_map_set_tag(struct daxpool_map *map, const char *tag)
{
	assert_return(map, -EINVAL);
	assert_owned(map->region->ctx);
	pthread_mutex_lock(&map->region->lock);
	snprintf(map->tag, sizeof(map->tag), "%s", tag ? tag : "");
	pthread_mutex_unlock(&map->region->lock);
	return 0;
}

_public_ const char *daxpool_map_get_tag(struct daxpool_map *map)
{
	return map ? map->tag : NULL;
}

_public_ int daxpool_ctx_find_map(struct daxpool_ctx *ctx, const void *addr, size_t length,
				  struct daxpool_map **ret)
{
	uintptr_t start = (uintptr_t)addr, end = start + length;
	struct dp_list *rn, *mn;
	int r = -ENOENT;

	assert_return(ctx && ret && length > 0 && end > start, -EINVAL);
	assert_owned(ctx);
	pthread_mutex_lock(&ctx->regions_lock);
	dp_list_for_each(rn, &ctx->regions) {
		struct daxpool_region *region = dp_container_of(rn, struct daxpool_region, ctx_node);

		pthread_mutex_lock(&region->lock);
		dp_list_for_each(mn, &region->maps) {
			struct daxpool_map *map = dp_container_of(mn, struct daxpool_map, node);
			uintptr_t m = (uintptr_t)map->addr;

			if (map->pending || !map->addr || start < m || end > m + map->length)
				continue;
			if (atomic_load_explicit(&map->revoked, memory_order_acquire)) {
				r = -ENXIO;
				continue;
			}
			/* A map whose last reference went is being freed: not ours to return. */
			if (!dp_refcnt_get_unless_zero(&map->ref))
				continue;
			*ret = map;
			r = 0;
			break;
		}
		pthread_mutex_unlock(&region->lock);
		if (r == 0)
			break;
	}
	pthread_mutex_unlock(&ctx->regions_lock);
	return r;
}

/* Whether [addr, addr + length) lies inside the map, without overflowing. */
static bool map_contains(const struct daxpool_map *map, const void *addr, size_t length)
{
	uintptr_t start = (uintptr_t)map->addr, a = (uintptr_t)addr;

	return a >= start && a - start <= map->length && length <= map->length - (a - start);
}

static int map_check_range(struct daxpool_map *map, const void *addr, size_t length)
{
	if (map_contains(map, addr, length))
		return 0;
	log_err(map->region->ctx, "%s: [%p, +%zu) is not inside the map [%p, +%llu)",
		map->region->path, addr, length, map->addr, (unsigned long long)map->length);
	return -EFAULT;
}

/* One access to mapped memory, run under the SIGBUS guard (sigbus.c). */
struct map_access {
	struct daxpool_map *map;
	enum { ACCESS_PERSIST, ACCESS_FLUSH, ACCESS_MEMCPY, ACCESS_MEMSET, ACCESS_READ } op;
	void *dst;
	const void *src;
	size_t length;
	int c;
	unsigned int flags; /* PMEM2_F_MEM_* */
	int result;	    /* 0, or the -errno of a page-granularity sync */
};

/*
 * Page granularity: msync(2) of the pages under [addr, addr + length).
 * libpmem2's own page persist aborts the process when msync fails (a range
 * no longer mapped); daxpool's callers get the error instead.
 */
static int map_msync(const void *addr, size_t length)
{
	long page = sysconf(_SC_PAGESIZE);
	uintptr_t start = (uintptr_t)addr & ~((uintptr_t)page - 1);
	size_t len = length + ((uintptr_t)addr - start);
	int r;

	do
		r = msync((void *)start, len, MS_SYNC);
	while (r < 0 && errno == EINTR);
	return r < 0 ? -errno : 0;
}

/*
 * Page granularity: the access with plain CPU stores, then one msync of it
 * unless it is a copy asked not to flush. No libpmem2 call: its page persist
 * (and the copies built on it) abort the process when msync fails.
 */
static void map_access_pages(struct map_access *a)
{
	switch (a->op) {
	case ACCESS_PERSIST:
	case ACCESS_FLUSH:
		break;
	case ACCESS_MEMCPY:
		memmove(a->dst, a->src, a->length);
		break;
	case ACCESS_MEMSET:
		memset(a->dst, a->c, a->length);
		break;
	case ACCESS_READ:
		memcpy(a->dst, a->src, a->length);
		return;
	}
	if (!(a->flags & PMEM2_F_MEM_NOFLUSH))
		a->result = map_msync(a->dst, a->length);
}

static void map_access_run(void *arg)
{
	struct map_access *a = arg;
	struct daxpool_map *map = a->map;

	if (map->granularity == DAXPOOL_GRANULARITY_PAGE) {
		map_access_pages(a);
		return;
	}
	switch (a->op) {
	case ACCESS_PERSIST:
		map->persist_fn(a->dst, a->length);
		break;
	case ACCESS_FLUSH:
		map->flush_fn(a->dst, a->length);
		break;
	case ACCESS_MEMCPY:
		map->memcpy_fn(a->dst, a->src, a->length, a->flags);
		break;
	case ACCESS_MEMSET:
		map->memset_fn(a->dst, a->c, a->length, a->flags);
		break;
	case ACCESS_READ:
		memcpy(a->dst, a->src, a->length);
		break;
	}
}

/* Run an access of [addr, addr + length) of the map under the SIGBUS guard. */
static int map_access(struct map_access *a, const void *addr)
{
	int r;

	if (a->length == 0)
		return 0;
	r = dp_sigbus_guard(a->map->region, addr, a->length, map_access_run, a);
	if (r == 0 && a->result < 0) {
		log_err(a->map->region->ctx, "%s: msync of [%p, +%zu): %s", a->map->region->path,
			addr, a->length, strerror(-a->result));
		r = a->result;
	}
	return r;
}

_public_ int daxpool_map_persist(struct daxpool_map *map, const void *addr, size_t length)
{
	struct map_access a = { map, ACCESS_PERSIST, (void *)addr, NULL, length, 0, 0, 0 };
	int r;

	assert_return(map, -EINVAL);
	assert_owned(map->region->ctx);
	r = map_check_range(map, addr, length);
	if (r < 0)
		return r;
	return map_access(&a, addr);
}

_public_ int daxpool_map_flush(struct daxpool_map *map, const void *addr, size_t length)
{
	struct map_access a = { map, ACCESS_FLUSH, (void *)addr, NULL, length, 0, 0, 0 };
	int r;

	assert_return(map, -EINVAL);
	assert_owned(map->region->ctx);
	r = map_check_range(map, addr, length);
	if (r < 0)
		return r;
	return map_access(&a, addr);
}

_public_ int daxpool_map_drain(struct daxpool_map *map)
{
	assert_return(map, -EINVAL);
	assert_owned(map->region->ctx);
	map->drain_fn();
	return 0;
}

_public_ int daxpool_map_read(struct daxpool_map *map, void *dst, const void *src, size_t length)
{
	struct map_access a = { map, ACCESS_READ, dst, src, length, 0, 0, 0 };
	int r;

	assert_return(map, -EINVAL);
	assert_owned(map->region->ctx);
	assert_return(dst || length == 0, -EINVAL);
	r = map_check_range(map, src, length);
	if (r < 0)
		return r;
	if (length == 0)
		return 0;
	r = dp_sigbus_guard(map->region, src, length, map_access_run, &a);
	return r;
}

static unsigned int copy_flags_pmem2(unsigned int flags)
{
	unsigned int f = 0;

	if (flags & DAXPOOL_COPY_NOFLUSH)
		f |= PMEM2_F_MEM_NOFLUSH;
	if (flags & DAXPOOL_COPY_NODRAIN)
		f |= PMEM2_F_MEM_NODRAIN;
	if (flags & DAXPOOL_COPY_NONTEMPORAL)
		f |= PMEM2_F_MEM_NONTEMPORAL;
	if (flags & DAXPOOL_COPY_TEMPORAL)
		f |= PMEM2_F_MEM_TEMPORAL;
	return f;
}

/* Checks shared by memcpy and memset: writable, live, in range. */
static int map_check_write(struct daxpool_map *map, void *dst, size_t length, unsigned int flags)
{
	if (flags & ~DP_COPY_FLAGS)
		return -EINVAL;
	if (map->flags & DAXPOOL_MAP_RDONLY)
		return -EACCES;
	if (atomic_load_explicit(&map->revoked, memory_order_acquire)) {
		log_err(map->region->ctx, "%s: write into a revoked map refused", map->region->path);
		return -ENXIO;
	}
	return map_check_range(map, dst, length);
}

_public_ int daxpool_map_memcpy(struct daxpool_map *map, void *dst, const void *src, size_t length,
				unsigned int flags)
{
	int r;

	assert_return(map, -EINVAL);
	assert_owned(map->region->ctx);
	assert_return(src || length == 0, -EINVAL);
	r = map_check_write(map, dst, length, flags);
	if (r < 0)
		return r;
	{
		struct map_access a = { map, ACCESS_MEMCPY, dst, src, length, 0,
					copy_flags_pmem2(flags), 0 };

		return map_access(&a, dst);
	}
}

_public_ int daxpool_map_memset(struct daxpool_map *map, void *dst, int c, size_t length,
				unsigned int flags)
{
	int r;

	assert_return(map, -EINVAL);
	assert_owned(map->region->ctx);
	r = map_check_write(map, dst, length, flags);
	if (r < 0)
		return r;
	{
		struct map_access a = { map, ACCESS_MEMSET, dst, NULL, length, c,
					copy_flags_pmem2(flags), 0 };

		return map_access(&a, dst);
	}
}

/*
 * The first map after @pos on region->maps that is published and not being
 * freed, with a new reference; NULL at the end. With region->lock held: a
 * map the caller holds stays on the list (map_free() unlinks it under that
 * lock), so @pos is a valid place to go on from.
 */
static struct daxpool_map *map_next_locked(struct daxpool_region *region, struct dp_list *pos)
{
	for (pos = pos->next; pos != &region->maps; pos = pos->next) {
		struct daxpool_map *map = dp_container_of(pos, struct daxpool_map, node);

		if (map->pending || !map->addr)
			continue; /* still being made: not a map yet */
		if (dp_refcnt_get_unless_zero(&map->ref))
			return map;
	}
	return NULL;
}

_public_ struct daxpool_map *daxpool_map_get_first(struct daxpool_region *region)
{
	struct daxpool_map *map;

	if (!region || dp_ctx_foreign(region->ctx))
		return NULL;
	pthread_mutex_lock(&region->lock);
	map = map_next_locked(region, &region->maps);
	pthread_mutex_unlock(&region->lock);
	return map;
}

_public_ struct daxpool_map *daxpool_map_get_next(struct daxpool_map *map)
{
	struct daxpool_region *region;
	struct daxpool_map *next;

	if (!map || dp_ctx_foreign(map->region->ctx))
		return NULL;
	region = map->region;
	pthread_mutex_lock(&region->lock);
	next = map_next_locked(region, &map->node);
	pthread_mutex_unlock(&region->lock);
	/* After the lock: this may be the last reference, and map_free() takes it. */
	daxpool_map_unref(map);
	return next;
}
