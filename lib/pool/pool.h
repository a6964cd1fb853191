/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Pools (lib/pool/), on the core: the on-media format and the private
 * structures shared by pool.c
 * (header, open, check, repair), extent.c (the named extents' operations) and
 * extent_table.c (the extent table in memory, which both build on).
 * Nothing here is part of the ABI.
 *
 * Media layout (all integers little-endian; offsets from the region's start):
 *
 *   0x0000  header copy A   (struct dp_pool_hdr, 256 bytes, rest of the page 0)
 *   0x1000  header copy B   (identical to A)
 *   0x2000  runtime block   (advisory writer pid; not checksummed, never trusted)
 *   0x3000  extent table    (slot_count slots of 128 bytes)
 *   data_offset             first byte of extent space: the end of the table
 *                           rounded up to the pool's alignment
 *   pool_size               end of the pool (<= region size)
 *
 * The header is written once, at create (and by repair); afterwards only the
 * extent table changes. Each slot commits with one 8-byte word: see extent.c.
 */
#ifndef DAXPOOL_POOL_H
#define DAXPOOL_POOL_H

#include <stdint.h>

#include "core/private.h"

#if __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "the pool format is little-endian; add byte swapping before porting"
#endif

#define DP_POOL_MAGIC "DAXPOOL"	  /* 8 bytes with the NUL */
#define DP_POOL_VERSION 1u
#define DP_POOL_HDR_SIZE 256u
#define DP_POOL_HDR_A 0x0000u
#define DP_POOL_HDR_B 0x1000u
#define DP_POOL_RUNTIME 0x2000u
#define DP_POOL_TABLE 0x3000u
#define DP_POOL_SLOT_SIZE 128u
#define DP_POOL_NAME_MAX 64u	  /* bytes in a slot, with the NUL */
#define DP_POOL_LAYOUT_MAX 64u	  /* bytes in the header, with the NUL */
#define DP_POOL_DEFAULT_SLOTS 1024u
#define DP_POOL_MAX_SLOTS (1u << 20)
#define DP_POOL_RUNTIME_MAGIC 0x4e55525f4c4f4f50ull /* "POOL_RUN" */

struct dp_pool_hdr {
	char magic[8];		    /* DP_POOL_MAGIC */
	uint32_t version;	    /* DP_POOL_VERSION; larger: -EPROTO */
	uint32_t hdr_size;	    /* DP_POOL_HDR_SIZE */
	uint64_t incompat_flags;    /* none defined; any set bit: -EPROTO */
	uint8_t uuid[16];
	char layout[DP_POOL_LAYOUT_MAX]; /* NUL-terminated, non-empty */
	uint64_t pool_size;	    /* bytes of the region the pool uses */
	uint64_t alignment;	    /* the region's alignment at create */
	uint64_t table_offset;	    /* DP_POOL_TABLE */
	uint64_t slot_count;
	uint64_t slot_size;	    /* DP_POOL_SLOT_SIZE */
	uint64_t data_offset;	    /* extents start here */
	uint64_t created_sec;	    /* CLOCK_REALTIME at create, informational */
	uint8_t reserved[256 - 8 - 4 - 4 - 8 - 16 - 64 - 8 * 7 - 8];
	uint64_t checksum;	    /* FNV-1a 64 of the bytes before it */
};
_Static_assert(sizeof(struct dp_pool_hdr) == DP_POOL_HDR_SIZE, "header size");

/* Advisory only: who holds the writer lock. Read for a log line, never trusted. */
struct dp_pool_runtime {
	uint64_t magic; /* DP_POOL_RUNTIME_MAGIC while a writer has the pool open */
	uint64_t pid;
	uint64_t since_sec;
};

/*
 * One extent table slot. "commit" is the slot's only commit point: 0 means the
 * slot is free whatever the rest holds; any other value must equal
 * dp_slot_sum() of the body, or the slot is corrupt.
 */
struct dp_pool_slot {
	uint64_t commit;
	uint64_t offset;
	uint64_t size;
	uint64_t align;
	uint64_t serial; /* allocation number, increasing over the pool's life */
	uint8_t reserved[24];
	char name[DP_POOL_NAME_MAX];
};
_Static_assert(sizeof(struct dp_pool_slot) == DP_POOL_SLOT_SIZE, "slot size");

/* FNV-1a 64: every single-byte change of the input changes the result. */
static inline uint64_t dp_fnv1a64(uint64_t h, const void *data, size_t len)
{
	const uint8_t *p = data;

	for (size_t i = 0; i < len; i++) {
		h ^= p[i];
		h *= 0x100000001b3ull;
	}
	return h;
}

#define DP_FNV_SEED 0xcbf29ce484222325ull

static inline uint64_t dp_hdr_sum(const struct dp_pool_hdr *h)
{
	return dp_fnv1a64(DP_FNV_SEED, h, offsetof(struct dp_pool_hdr, checksum));
}

/* The commit word of a slot body: seeded with the pool's UUID, never 0. */
static inline uint64_t dp_slot_sum(const uint8_t uuid[16], const struct dp_pool_slot *s)
{
	uint64_t h = dp_fnv1a64(DP_FNV_SEED, uuid, 16);

	h = dp_fnv1a64(h, (const char *)s + sizeof(s->commit), sizeof(*s) - sizeof(s->commit));
	return h ? h : 1;
}

/* ---- in-memory objects ---- */

enum dp_extent_state {
	DP_EXTENT_LIVE = 1,
	DP_EXTENT_FREEING, /* a free is in progress: no new maps, not found by lookup */
	DP_EXTENT_ZAPPED,  /* a free timed out after the zap: retry the free */
	DP_EXTENT_FREED,   /* gone from the table; handles stay valid as objects */
};

struct daxpool_extent {
	/*
	 * The pool's table holds one reference while the extent is allocated;
	 * every handle given to the caller holds one more, and also a reference
	 * on the pool (taken and dropped with it), so a handle keeps its pool
	 * alive but the pool's table never keeps a pool alive.
	 */
	struct dp_refcnt ref;
	struct daxpool_pool *pool;

	/* Immutable after creation. */
	char name[DP_POOL_NAME_MAX];
	uint64_t offset;
	uint64_t size;
	uint64_t align;
	uint64_t serial;
	uint32_t slot;

	int state; /* enum dp_extent_state, protected by pool->lock */
	/* The free's zap of the extent, while FREEING or ZAPPED (its freeing thread, pool->lock). */
	struct dp_drain drain;
};

struct daxpool_pool {
	struct dp_refcnt ref;
	struct daxpool_region *region; /* a counted reference */

	/* Immutable after open. */
	struct daxpool_map *meta; /* [0, data_offset) of the region */
	uint8_t *base;		  /* its address */
	struct dp_pool_hdr hdr;	  /* the header copy in use */
	bool holds_writer;	  /* the writer lock (byte 0, pool.c) */
	enum { DP_POOL_TABLE_NONE, DP_POOL_TABLE_SHARED, DP_POOL_TABLE_EXCLUSIVE } holds_table;
	bool rdonly;
	bool marked_writer; /* our pid is in the runtime block */

	/*
	 * lock protects everything below and every write to the media. Lock
	 * order: pool->lock, then region->lock (taken inside daxpool_map_*()
	 * and daxpool_region_*() calls). Never held across a revoke function
	 * or a wait for a map to go.
	 */
	pthread_mutex_t lock;
	struct daxpool_extent **ext; /* allocated extents, sorted by offset */
	size_t n_ext, cap_ext;
	uint8_t *slot_busy; /* per slot: 1 while an extent uses it */
	uint64_t next_serial;
};

static inline struct dp_pool_slot *dp_pool_slot(struct daxpool_pool *pool, uint64_t i)
{
	return (struct dp_pool_slot *)(pool->base + pool->hdr.table_offset +
				       i * DP_POOL_SLOT_SIZE);
}

/* Persist [addr, addr + len) of the metadata map, through the test hook (pool.c). */
int dp_pool_persist(struct daxpool_pool *pool, const void *addr, size_t len);

/* Write then persist, refusing a revoked metadata map (pool.c). */
int dp_pool_write(struct daxpool_pool *pool, void *dst, const void *src, size_t len);

/* Serialize table changes against readers of other processes (OFD lock, pool.c). */
int dp_pool_table_lock(struct daxpool_pool *pool);
void dp_pool_table_unlock(struct daxpool_pool *pool);

/* ---- the extent table in memory (extent_table.c) ---- */

/*
 * Build the in-memory extent list from the judged copy of the table: every
 * slot with a commit word and not marked bad. slots NULL: an empty table
 * (create).
 */
int dp_pool_load_extents(struct daxpool_pool *pool, const struct dp_pool_slot *slots,
			 const uint8_t *bad);
/* Drop the table's references. */
void dp_pool_free_extents(struct daxpool_pool *pool);
/* A new extent object for @slot as @s records it, with the table's reference; NULL: no memory. */
struct daxpool_extent *dp_extent_new(struct daxpool_pool *pool, uint64_t slot,
				      const struct dp_pool_slot *s);
/* Drop a reference of the extent object itself; the last frees it. */
void dp_extent_put(struct daxpool_extent *ext);
/* Room for one more extent in pool->ext: 0 or -ENOMEM. With pool->lock held. */
int dp_extent_reserve(struct daxpool_pool *pool);
/* Insert into pool->ext, sorted by offset, after dp_extent_reserve(); its slot is busy. */
void dp_extent_insert(struct daxpool_pool *pool, struct daxpool_extent *ext);
/* Take out of pool->ext (if there); its slot is free. With pool->lock held. */
void dp_extent_remove(struct daxpool_pool *pool, struct daxpool_extent *ext);

/* ---- the crash test's hook (pool.c) ---- */

/*
 * Test hook, not exported: called at every persist point of a pool's metadata
 * with the range about to be persisted (region offset, current address and
 * length), before it is persisted. The crash test links the static library and
 * builds the media image a power cut at each point would leave. NULL: none.
 * Set it before any pool exists; it is process-wide and not synchronized.
 */
typedef void (*dp_pool_persist_hook_fn)(void *userdata, uint64_t offset, const void *addr,
					size_t length);
void dp_pool_set_persist_hook(dp_pool_persist_hook_fn fn, void *userdata);

#endif /* DAXPOOL_POOL_H */
