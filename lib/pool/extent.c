/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Extents: named, aligned ranges of a pool, recorded in the extent table.
 *
 * Crash consistency. Each table slot has one commit word (struct
 * dp_pool_slot.commit, 8-byte aligned): 0 means free, whatever the rest of the
 * slot holds; otherwise it must equal the checksum of the slot's body (seeded
 * with the pool's UUID), or the slot is corrupt. An 8-byte aligned store
 * reaches the media whole or not at all (x86 guarantees this for the
 * persistence domain, ADR and eADR alike), so:
 *
 *   alloc: 1. pick a slot whose commit word is 0 (on the media, not only here:
 *             the in-memory table mirrors it exactly);
 *          2. write the body (offset, size, alignment, serial, name); persist.
 *             The commit word is still 0: a power cut anywhere in here,
 *             however torn the body, leaves a free slot. Nothing else on the
 *             media refers to the slot;
 *          3. store the commit word (one 8-byte store); persist. Before the
 *             store reaches the media the slot is free; after, it is a whole,
 *             checksummed extent. This store is the alloc's only commit point.
 *   free:  1. store 0 into the commit word (one 8-byte store); persist. The
 *             free's only commit point: the slot is either the old whole extent
 *             or free. The body is left as it is and is rewritten (step 2 of
 *             a later alloc) only while the commit word is 0.
 *
 * Free space is not recorded: it is whatever no committed slot covers, rebuilt
 * at open. So there is nothing else to keep consistent with the table. A body
 * is never written while its commit word is not 0, and the commit word is
 * written only after the body is persisted, which is the whole argument.
 *
 * Freeing an extent that is mapped: the range is zapped (new maps fail, maps
 * are revoked), then the free waits until no map covers the range (or fails,
 * leaving the extent allocated), then commits, then reopens the range for
 * reuse. Memory is never unmapped under a holder.
 */
#include <stdlib.h>
#include <string.h>

#include "pool.h"

/* A handle for the caller: a reference on the extent and one on its pool. */
static struct daxpool_extent *extent_handle(struct daxpool_extent *ext)
{
	enum dp_refcnt_status st;

	daxpool_pool_ref(ext->pool);
	st = dp_refcnt_inc(&ext->ref);
	if (_unlikely_(st != DP_REFCNT_OK))
		dp_refcnt_report(ext->pool->region->ctx, st, "extent", ext);
	return ext;
}

_public_ struct daxpool_extent *daxpool_extent_ref(struct daxpool_extent *ext)
{
	if (!ext || dp_ctx_foreign(ext->pool->region->ctx))
		return ext; /* inherited across fork(): the parent's, left alone */
	return extent_handle(ext);
}

_public_ struct daxpool_extent *daxpool_extent_unref(struct daxpool_extent *ext)
{
	struct daxpool_pool *pool;

	if (!ext || dp_ctx_foreign(ext->pool->region->ctx))
		return NULL; /* inherited across fork(): the parent's, left alone */
	pool = ext->pool;
	/* The extent first: the pool reference may be the last thing holding the pool. */
	dp_extent_put(ext);
	daxpool_pool_unref(pool);
	return NULL;
}

/*
 * Store a slot's commit word with one 8-byte store, then persist it. With
 * pool->lock and the table lock held.
 */
static int slot_commit(struct daxpool_pool *pool, uint64_t slot, uint64_t value)
{
	uint64_t *word = &dp_pool_slot(pool, slot)->commit;

	if (daxpool_map_is_valid(pool->meta) != 1) {
		log_err(pool->region->ctx, "%s: the pool's metadata map was revoked",
			pool->region->path);
		return -ENXIO;
	}
	/* Not memcpy: a copy routine may split it; a naturally aligned store is atomic. */
	__atomic_store_n(word, value, __ATOMIC_RELEASE);
	return dp_pool_persist(pool, word, sizeof(*word));
}

static int name_check(struct daxpool_pool *pool, const char *name)
{
	size_t len = strnlen(name, DP_POOL_NAME_MAX);

	if (len == 0 || len >= DP_POOL_NAME_MAX) {
		log_err(pool->region->ctx, "%s: an extent name has 1 to %u bytes",
			pool->region->path, DP_POOL_NAME_MAX - 1);
		return len ? -ENAMETOOLONG : -EINVAL;
	}
	return 0;
}

/* An allocated extent by name (any state but FREED). With pool->lock held. */
static struct daxpool_extent *extent_find(struct daxpool_pool *pool, const char *name)
{
	for (size_t i = 0; i < pool->n_ext; i++)
		if (strcmp(pool->ext[i]->name, name) == 0)
			return pool->ext[i];
	return NULL;
}

/* First fit. With pool->lock held. Returns the offset, or 0 when nothing fits. */
static uint64_t extent_place(struct daxpool_pool *pool, uint64_t size, uint64_t align)
{
	uint64_t cursor = pool->hdr.data_offset, start;

	for (size_t i = 0; i <= pool->n_ext; i++) {
		uint64_t limit = i < pool->n_ext ? pool->ext[i]->offset : pool->hdr.pool_size;

		start = (cursor + align - 1) & ~(align - 1);
		if (start >= cursor && start <= limit && size <= limit - start)
			return start;
		if (i < pool->n_ext && pool->ext[i]->offset + pool->ext[i]->size > cursor)
			cursor = pool->ext[i]->offset + pool->ext[i]->size;
	}
	return 0;
}

_public_ int daxpool_extent_alloc(struct daxpool_pool *pool, const char *name, uint64_t size,
				  uint64_t align, struct daxpool_extent **ret)
{
	struct dp_pool_slot s = { 0 };
	struct daxpool_extent *ext;
	uint64_t slot, a;
	int r;

	assert_return(pool && name && ret, -EINVAL);
	assert_owned(pool->region->ctx);
	assert_return(size > 0, -EINVAL);
	assert_return(align == 0 || ((align & (align - 1)) == 0 && align <= (1ull << 40)), -EINVAL);
	if (pool->rdonly)
		return -EACCES;
	r = name_check(pool, name);
	if (r < 0)
		return r;
	a = align > pool->hdr.alignment ? align : pool->hdr.alignment;
	if (size > pool->hdr.pool_size)
		return -ENOSPC;
	size = (size + pool->hdr.alignment - 1) & ~(pool->hdr.alignment - 1);

	pthread_mutex_lock(&pool->lock);
	if (!daxpool_map_is_valid(pool->meta)) {
		/* The region was zapped under the pool: no more writes to its media. */
		r = -ENXIO;
		goto out;
	}
	if (extent_find(pool, name)) {
		r = -EEXIST;
		goto out;
	}
	for (slot = 0; slot < pool->hdr.slot_count && pool->slot_busy[slot]; slot++)
		;
	if (slot == pool->hdr.slot_count) {
		log_err(pool->region->ctx, "%s: the extent table is full (%llu slots)",
			pool->region->path, (unsigned long long)pool->hdr.slot_count);
		r = -ENOSPC;
		goto out;
	}
	s.offset = extent_place(pool, size, a);
	if (s.offset == 0) {
		log_info(pool->region->ctx, "%s: no room for %llu bytes aligned to %#llx",
			 pool->region->path, (unsigned long long)size, (unsigned long long)a);
		r = -ENOSPC;
		goto out;
	}
	s.size = size;
	s.align = a;
	s.serial = pool->next_serial;
	memcpy(s.name, name, strlen(name) + 1);
	ext = dp_extent_new(pool, slot, &s);
	if (!ext || dp_extent_reserve(pool) < 0) {
		free(ext);
		r = -ENOMEM;
		goto out;
	}

	r = dp_pool_table_lock(pool);
	if (r < 0) {
		free(ext);
		goto out;
	}
	/* Steps 2 and 3 at the top of this file: body, persist; commit word, persist. */
	r = dp_pool_write(pool, (uint8_t *)dp_pool_slot(pool, slot) + sizeof(s.commit),
			  (const uint8_t *)&s + sizeof(s.commit), sizeof(s) - sizeof(s.commit));
	if (r == 0)
		r = slot_commit(pool, slot, dp_slot_sum(pool->hdr.uuid, &s));
	dp_pool_table_unlock(pool);
	if (r < 0) {
		free(ext);
		goto out;
	}
	dp_extent_insert(pool, ext);
	pool->next_serial++;
	log_dbg(pool->region->ctx, "%s: extent \"%s\" at [%#llx, +%#llx) in slot %llu",
		pool->region->path, name, (unsigned long long)s.offset, (unsigned long long)size,
		(unsigned long long)slot);
	*ret = extent_handle(ext);
out:
	pthread_mutex_unlock(&pool->lock);
	return r;
}

_public_ int daxpool_extent_lookup(struct daxpool_pool *pool, const char *name,
				   struct daxpool_extent **ret)
{
	struct daxpool_extent *ext;
	int r = 0;

	assert_return(pool && name && ret, -EINVAL);
	assert_owned(pool->region->ctx);
	pthread_mutex_lock(&pool->lock);
	ext = extent_find(pool, name);
	if (ext && ext->state == DP_EXTENT_LIVE)
		*ret = extent_handle(ext);
	else
		r = -ENOENT;
	pthread_mutex_unlock(&pool->lock);
	return r;
}

_public_ int daxpool_extent_free(struct daxpool_extent *ext, int timeout_ms, unsigned int flags)
{
	struct daxpool_pool *pool;
	struct daxpool_region *region;
	uint64_t start, end;
	bool zapped;
	int r;

	assert_return(ext, -EINVAL);
	assert_owned(ext->pool->region->ctx);
	assert_return(timeout_ms >= -1, -EINVAL);
	assert_return(!(flags & ~DAXPOOL_EXTENT_FREE_NOWAIT), -EINVAL);
	pool = ext->pool;
	region = pool->region;
	start = ext->offset;
	end = ext->offset + ext->size;
	if (pool->rdonly)
		return -EACCES;
	if (flags & DAXPOOL_EXTENT_FREE_NOWAIT)
		timeout_ms = 0;

	pthread_mutex_lock(&pool->lock);
	switch (daxpool_map_is_valid(pool->meta) ? ext->state : -1) {
	case -1:
		/* The region was zapped under the pool: no more writes to its media. */
		r = -ENXIO;
		break;
	case DP_EXTENT_FREED:
		r = -ENOENT;
		break;
	case DP_EXTENT_FREEING:
		r = -EBUSY; /* another thread frees it */
		break;
	default:
		r = 0;
	}
	zapped = ext->state == DP_EXTENT_ZAPPED;
	if (r == 0 && !zapped && (flags & DAXPOOL_EXTENT_FREE_NOWAIT)) {
		/*
		 * Refuse before zapping, so that a refused free changes nothing.
		 * daxpool_extent_map() runs under pool->lock, so no extent map
		 * appears until the state below is published; a map of the
		 * range made directly with daxpool_map_new() can still slip in,
		 * and is then caught by the zap and the wait below.
		 */
		pthread_mutex_lock(&region->lock);
		if (dp_region_range_held(region, start, end))
			r = -EBUSY;
		pthread_mutex_unlock(&region->lock);
	}
	if (r == 0)
		ext->state = DP_EXTENT_FREEING;
	pthread_mutex_unlock(&pool->lock);
	if (r < 0) {
		if (r == -EBUSY)
			log_info(region->ctx, "%s: extent \"%s\" is mapped: not freed", region->path,
				 ext->name);
		return r;
	}

	/* Zap with no pool lock held: revoke functions may call back into daxpool. */
	if (!zapped) {
		r = dp_drain_take(region, start, end - start, &ext->drain);
		if (r < 0) {
			pthread_mutex_lock(&pool->lock);
			ext->state = DP_EXTENT_LIVE;
			pthread_mutex_unlock(&pool->lock);
			return r;
		}
	}
	r = dp_drain_wait(&ext->drain, timeout_ms);
	pthread_mutex_lock(&pool->lock);
	if (r < 0) {
		/* Still held: stay allocated, and zapped until a later free succeeds. */
		ext->state = DP_EXTENT_ZAPPED;
		pthread_mutex_unlock(&pool->lock);
		log_info(region->ctx, "%s: extent \"%s\" is still mapped: not freed", region->path,
			 ext->name);
		return (flags & DAXPOOL_EXTENT_FREE_NOWAIT) ? -EBUSY : r;
	}
	r = dp_pool_table_lock(pool);
	if (r == 0) {
		r = slot_commit(pool, ext->slot, 0); /* the free's commit point */
		dp_pool_table_unlock(pool);
	}
	if (r < 0) {
		ext->state = DP_EXTENT_ZAPPED;
		pthread_mutex_unlock(&pool->lock);
		return r;
	}
	/* Reopen before the space becomes allocatable (still under pool->lock). */
	dp_drain_put(&ext->drain);
	dp_extent_remove(pool, ext);
	ext->state = DP_EXTENT_FREED;
	pthread_mutex_unlock(&pool->lock);
	log_dbg(region->ctx, "%s: extent \"%s\" freed", region->path, ext->name);
	dp_extent_put(ext); /* the table's reference; the caller still holds one */
	return 0;
}

_public_ int daxpool_extent_free_by_name(struct daxpool_pool *pool, const char *name,
					 int timeout_ms, unsigned int flags)
{
	struct daxpool_extent *ext = NULL;
	int r;

	assert_return(pool && name, -EINVAL);
	assert_owned(pool->region->ctx);
	pthread_mutex_lock(&pool->lock);
	ext = extent_find(pool, name);
	if (ext && ext->state != DP_EXTENT_FREED && ext->state != DP_EXTENT_FREEING)
		extent_handle(ext);
	else
		ext = NULL;
	pthread_mutex_unlock(&pool->lock);
	if (!ext)
		return -ENOENT;
	r = daxpool_extent_free(ext, timeout_ms, flags);
	daxpool_extent_unref(ext);
	return r;
}

_public_ int daxpool_extent_map(struct daxpool_extent *ext, unsigned int flags,
				struct daxpool_map **ret)
{
	struct daxpool_pool *pool;
	int r;

	assert_return(ext && ret, -EINVAL);
	assert_owned(ext->pool->region->ctx);
	pool = ext->pool;
	/* Under pool->lock: a free publishes FREEING under it before it zaps. */
	pthread_mutex_lock(&pool->lock);
	if (ext->state != DP_EXTENT_LIVE) {
		log_err(pool->region->ctx, "%s: extent \"%s\" is %s", pool->region->path,
			ext->name, ext->state == DP_EXTENT_FREED ? "freed" : "being freed");
		r = ext->state == DP_EXTENT_FREED ? -ENOENT : -ENXIO;
	} else {
		r = daxpool_map_new(pool->region, ext->offset, ext->size, flags, ret);
		if (r == 0)
			daxpool_map_set_tag(*ret, ext->name);
	}
	pthread_mutex_unlock(&pool->lock);
	return r;
}

_public_ int daxpool_extent_foreach(struct daxpool_pool *pool, daxpool_extent_fn fn,
				    void *userdata)
{
	struct daxpool_extent **snap;
	size_t n, i;
	int r = 0;

	assert_return(pool && fn, -EINVAL);
	assert_owned(pool->region->ctx);
	pthread_mutex_lock(&pool->lock);
	n = pool->n_ext;
	snap = malloc((n ? n : 1) * sizeof(*snap));
	if (!snap) {
		pthread_mutex_unlock(&pool->lock);
		return -ENOMEM;
	}
	for (i = 0; i < n; i++) {
		snap[i] = pool->ext[i];
		dp_refcnt_inc(&snap[i]->ref); /* the caller's pool reference covers the pool */
	}
	pthread_mutex_unlock(&pool->lock);
	/* No lock held: fn may alloc, free, map or take references. */
	for (i = 0; i < n && r == 0; i++)
		r = fn(snap[i], userdata);
	for (i = 0; i < n; i++)
		dp_extent_put(snap[i]);
	free(snap);
	return r;
}

_public_ struct daxpool_pool *daxpool_extent_get_pool(struct daxpool_extent *ext)
{
	return ext ? ext->pool : NULL;
}

_public_ const char *daxpool_extent_get_name(struct daxpool_extent *ext)
{
	return ext ? ext->name : NULL;
}

_public_ uint64_t daxpool_extent_get_offset(struct daxpool_extent *ext)
{
	return ext ? ext->offset : 0;
}

_public_ uint64_t daxpool_extent_get_size(struct daxpool_extent *ext)
{
	return ext ? ext->size : 0;
}

_public_ uint64_t daxpool_extent_get_alignment(struct daxpool_extent *ext)
{
	return ext ? ext->align : 0;
}

_public_ int daxpool_extent_is_allocated(struct daxpool_extent *ext)
{
	int r;

	assert_return(ext, -EINVAL);
	assert_owned(ext->pool->region->ctx);
	pthread_mutex_lock(&ext->pool->lock);
	r = ext->state != DP_EXTENT_FREED;
	pthread_mutex_unlock(&ext->pool->lock);
	return r;
}
