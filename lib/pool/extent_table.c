/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The extent table in memory: a pool's allocated extents (pool->ext, sorted
 * by offset), the slots they use, and the reference the table holds on each.
 * Loaded by a pool's open, dropped by its end (pool.c); changed by an
 * extent's alloc and free (extent.c). Knows neither: it calls nothing of the
 * pool's or the extents' operations, so they both build on it.
 */
#include <stdlib.h>
#include <string.h>

#include "pool.h"

void dp_extent_put(struct daxpool_extent *ext)
{
	enum dp_refcnt_status st = dp_refcnt_dec(&ext->ref);

	if (st == DP_REFCNT_FREE)
		free(ext);
	else if (_unlikely_(st != DP_REFCNT_OK))
		dp_refcnt_report(ext->pool->region->ctx, st, "extent", ext);
}

int dp_extent_reserve(struct daxpool_pool *pool)
{
	if (pool->n_ext == pool->cap_ext) {
		size_t cap = pool->cap_ext ? pool->cap_ext * 2 : 16;
		struct daxpool_extent **a = realloc(pool->ext, cap * sizeof(*a));

		if (!a)
			return -ENOMEM;
		pool->ext = a;
		pool->cap_ext = cap;
	}
	return 0;
}

void dp_extent_insert(struct daxpool_pool *pool, struct daxpool_extent *ext)
{
	size_t i;

	for (i = pool->n_ext; i > 0 && pool->ext[i - 1]->offset > ext->offset; i--)
		pool->ext[i] = pool->ext[i - 1];
	pool->ext[i] = ext;
	pool->n_ext++;
	pool->slot_busy[ext->slot] = 1;
}

void dp_extent_remove(struct daxpool_pool *pool, struct daxpool_extent *ext)
{
	size_t i;

	for (i = 0; i < pool->n_ext && pool->ext[i] != ext; i++)
		;
	if (i == pool->n_ext)
		return;
	memmove(&pool->ext[i], &pool->ext[i + 1], (pool->n_ext - i - 1) * sizeof(pool->ext[0]));
	pool->n_ext--;
	pool->slot_busy[ext->slot] = 0;
}

struct daxpool_extent *dp_extent_new(struct daxpool_pool *pool, uint64_t slot,
				      const struct dp_pool_slot *s)
{
	struct daxpool_extent *ext = calloc(1, sizeof(*ext));

	if (!ext)
		return NULL;
	dp_refcnt_init(&ext->ref, 1); /* the table's */
	ext->pool = pool;
	memcpy(ext->name, s->name, sizeof(ext->name));
	ext->name[sizeof(ext->name) - 1] = '\0';
	ext->offset = s->offset;
	ext->size = s->size;
	ext->align = s->align;
	ext->serial = s->serial;
	ext->slot = (uint32_t)slot;
	ext->state = DP_EXTENT_LIVE;
	return ext;
}

int dp_pool_load_extents(struct daxpool_pool *pool, const struct dp_pool_slot *slots,
			 const uint8_t *bad)
{
	pool->slot_busy = calloc(pool->hdr.slot_count, 1);
	if (!pool->slot_busy)
		return -ENOMEM;
	pool->next_serial = 1;
	for (uint64_t i = 0; slots && i < pool->hdr.slot_count; i++) {
		struct daxpool_extent *ext;

		if (slots[i].commit == 0 || (bad && bad[i]))
			continue;
		ext = dp_extent_new(pool, i, &slots[i]);
		if (!ext)
			return -ENOMEM;
		if (dp_extent_reserve(pool) < 0) {
			free(ext);
			return -ENOMEM;
		}
		dp_extent_insert(pool, ext);
		if (ext->serial >= pool->next_serial)
			pool->next_serial = ext->serial + 1;
	}
	return 0;
}

void dp_pool_free_extents(struct daxpool_pool *pool)
{
	for (size_t i = 0; i < pool->n_ext; i++)
		dp_extent_put(pool->ext[i]);
	pool->n_ext = 0;
}
