/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Pools: a region formatted with a header (two copies) and a table of named
 * extents. This file: the header, create, open, check and repair, the writer
 * lock, and the persistence path. The extent table is extent.c.
 *
 * Persist ordering of create (each step is persisted before the next starts):
 *   1. the magic of header copies A and B is cleared: from here on the media
 *      holds no pool (an old pool, if any, is gone as a whole);
 *   2. the extent table is zeroed: every slot is free;
 *   3. header copy B is written;
 *   4. header copy A is written.
 * A power cut before 3 completes leaves no valid header: no pool (create is
 * wholly absent). After 3, B is valid and describes an empty table: the pool
 * exists (a torn A is recovered from B by open, and rewritten by repair).
 * Because both copies are invalidated first, open never sees two valid copies
 * that disagree (an old A next to a new B) from a crash.
 *
 * The header never changes after create (repair rewrites a copy with the other
 * copy's bytes), so each copy's checksum is checked once, at open.
 *
 * Locks: one writer per pool across processes, by an OFD write lock on byte 0
 * of the backing, taken through the pool's own open file description (so two
 * writers in one process also exclude each other). Table changes also hold a
 * write lock on byte 1, and readers hold a read lock on byte 1 while they read
 * the table, so a reader never sees a slot half-way through a change of another
 * process. OFD locks do not record the holder's pid (F_OFD_GETLK reports -1):
 * the writer stores its pid in the runtime block, advisory, for log lines.
 */
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "pool.h"

/* ---- the persistence hook (tests only; see private.h) ---- */

static dp_pool_persist_hook_fn persist_hook;
static void *persist_hook_data;

void dp_pool_set_persist_hook(dp_pool_persist_hook_fn fn, void *userdata)
{
	persist_hook = fn;
	persist_hook_data = userdata;
}

int dp_pool_persist(struct daxpool_pool *pool, const void *addr, size_t len)
{
	if (persist_hook)
		persist_hook(persist_hook_data, (uint64_t)((const uint8_t *)addr - pool->base), addr,
			     len);
	return daxpool_map_persist(pool->meta, addr, len);
}

int dp_pool_write(struct daxpool_pool *pool, void *dst, const void *src, size_t len)
{
	int r = daxpool_map_memcpy(pool->meta, dst, src, len, DAXPOOL_COPY_NOFLUSH);

	return r < 0 ? r : dp_pool_persist(pool, dst, len);
}

/* ---- options ---- */

struct daxpool_pool_opts {
	unsigned int max_extents;
	bool overwrite;
};

_public_ int daxpool_pool_opts_new(struct daxpool_pool_opts **ret)
{
	struct daxpool_pool_opts *o;

	assert_return(ret, -EINVAL);
	o = calloc(1, sizeof(*o));
	if (!o)
		return -ENOMEM;
	o->max_extents = DP_POOL_DEFAULT_SLOTS;
	*ret = o;
	return 0;
}

_public_ struct daxpool_pool_opts *daxpool_pool_opts_free(struct daxpool_pool_opts *opts)
{
	free(opts);
	return NULL;
}

_public_ int daxpool_pool_opts_set_max_extents(struct daxpool_pool_opts *opts,
					       unsigned int max_extents)
{
	assert_return(opts, -EINVAL);
	assert_return(max_extents >= 1 && max_extents <= DP_POOL_MAX_SLOTS, -EINVAL);
	opts->max_extents = max_extents;
	return 0;
}

_public_ int daxpool_pool_opts_set_overwrite(struct daxpool_pool_opts *opts, int overwrite)
{
	assert_return(opts, -EINVAL);
	opts->overwrite = overwrite != 0;
	return 0;
}

/* ---- scanning the media ---- */

struct pool_scan {
	struct daxpool_region *region;
	daxpool_pool_problem_fn fn;
	void *userdata;
	int log_prio;		   /* LOG_ERR when opening, LOG_INFO when checking */
	struct dp_pool_hdr hdr[2]; /* the copies as read */
	int st[2];		   /* 0 valid, or why not */
	char why[2][160];
	int use;		   /* copy in use, -1 if none */
	bool differ;		   /* both valid but not equal */
	unsigned int problems;	   /* header and table problems */
	unsigned int table_problems;
	uint8_t *bad;		   /* slot_count entries: 1 = drop the slot */
	struct dp_pool_slot *slots; /* the table as judged (a private copy) */
};

static void scan_report(struct pool_scan *sc, const char *where, int err, int repaired,
			const char *fmt, ...) _printf_(5, 6);

static void scan_report(struct pool_scan *sc, const char *where, int err, int repaired,
			const char *fmt, ...)
{
	char msg[192];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	dp_log_cond(sc->region->ctx, sc->log_prio, "%s: pool %s: %s%s", sc->region->path, where,
		    msg, repaired ? " (repaired)" : "");
	if (sc->fn)
		sc->fn(sc->region, where, -err, msg, repaired, sc->userdata);
}

static bool str_ok(const char *s, size_t max)
{
	return s[0] != '\0' && memchr(s, '\0', max) != NULL;
}

static uint64_t round_up(uint64_t v, uint64_t align)
{
	return (v + align - 1) & ~(align - 1);
}

/* Validate one header copy. Returns 0 or a negative errno with *why set. */
static int hdr_validate(const struct dp_pool_hdr *h, struct daxpool_region *region, char *why,
			size_t whylen)
{
	uint64_t table_end;

#define BAD(err, ...)                                                                              \
	do {                                                                                       \
		snprintf(why, whylen, __VA_ARGS__);                                                \
		return -(err);                                                                     \
	} while (0)

	if (memcmp(h->magic, DP_POOL_MAGIC, sizeof(h->magic)) != 0)
		BAD(ENOMSG, "no pool magic");
	if (h->version == 0 || h->hdr_size != DP_POOL_HDR_SIZE)
		BAD(EBADMSG, "bad version %u or header size %u", h->version, h->hdr_size);
	if (h->version > DP_POOL_VERSION)
		BAD(EPROTO, "format version %u is newer than this library's %u", h->version,
		    DP_POOL_VERSION);
	if (h->checksum != dp_hdr_sum(h))
		BAD(EBADMSG, "checksum mismatch");
	if (h->incompat_flags)
		BAD(EPROTO, "unknown format flags %#llx", (unsigned long long)h->incompat_flags);
	if (!str_ok(h->layout, sizeof(h->layout)))
		BAD(EUCLEAN, "layout name empty or not NUL-terminated");
	if (h->alignment < 4096 || h->alignment > (1ull << 30) ||
	    (h->alignment & (h->alignment - 1)))
		BAD(EUCLEAN, "bad alignment %#llx", (unsigned long long)h->alignment);
	if (h->alignment % region->alignment)
		BAD(EPROTO, "pool alignment %#llx does not fit the region's %#llx",
		    (unsigned long long)h->alignment, (unsigned long long)region->alignment);
	if (h->table_offset != DP_POOL_TABLE || h->slot_size != DP_POOL_SLOT_SIZE ||
	    h->slot_count == 0 || h->slot_count > DP_POOL_MAX_SLOTS)
		BAD(EUCLEAN, "bad extent table geometry");
	table_end = h->table_offset + h->slot_count * h->slot_size;
	if (h->data_offset != round_up(table_end, h->alignment))
		BAD(EUCLEAN, "bad data offset %#llx", (unsigned long long)h->data_offset);
	if (h->pool_size % h->alignment || h->pool_size < h->data_offset)
		BAD(EUCLEAN, "bad pool size %#llx", (unsigned long long)h->pool_size);
	if (h->pool_size > region->size)
		BAD(ERANGE, "the pool (%llu bytes) is larger than the region (%llu bytes): truncated?",
		    (unsigned long long)h->pool_size, (unsigned long long)region->size);
	return 0;
#undef BAD
}

/* Most telling error of two bad copies. */
static int hdr_worst(int a, int b)
{
	static const int order[] = { -EPROTO, -ERANGE, -EUCLEAN, -EBADMSG, -ENOMSG };

	for (size_t i = 0; i < sizeof(order) / sizeof(order[0]); i++)
		if (a == order[i] || b == order[i])
			return order[i];
	return a ? a : b;
}

/* Read and judge both header copies from a map of the header area. */
static int scan_headers(struct pool_scan *sc, const uint8_t *base, uint64_t maplen)
{
	static const uint64_t at[2] = { DP_POOL_HDR_A, DP_POOL_HDR_B };
	static const char *const name[2] = { "header A", "header B" };

	for (int i = 0; i < 2; i++) {
		if (maplen < at[i] + DP_POOL_HDR_SIZE) {
			sc->st[i] = -ERANGE;
			snprintf(sc->why[i], sizeof(sc->why[i]),
				 "the region (%llu bytes) ends before it: truncated?",
				 (unsigned long long)maplen);
			continue;
		}
		memcpy(&sc->hdr[i], base + at[i], sizeof(sc->hdr[i]));
		sc->st[i] = hdr_validate(&sc->hdr[i], sc->region, sc->why[i], sizeof(sc->why[i]));
	}
	sc->use = sc->st[0] == 0 ? 0 : sc->st[1] == 0 ? 1 : -1;
	if (sc->use < 0) {
		/* Both bad: this is not a usable pool. Say why for each copy. */
		int r = hdr_worst(sc->st[0], sc->st[1]);

		/* No magic in either copy: not a pool at all, which a probe may well expect. */
		int prio = r == -ENOMSG && sc->log_prio <= LOG_ERR ? LOG_INFO : sc->log_prio;

		dp_log_cond(sc->region->ctx, prio, "%s: no valid pool header: A: %s; B: %s",
			    sc->region->path, sc->why[0], sc->why[1]);
		if (sc->fn) {
			for (int i = 0; i < 2; i++)
				sc->fn(sc->region, name[i], sc->st[i], sc->why[i], 0, sc->userdata);
		}
		return r;
	}
	for (int i = 0; i < 2; i++) {
		if (sc->st[i] == 0)
			continue;
		sc->problems++;
		scan_report(sc, name[i], -sc->st[i], 0, "%s; the other copy is good", sc->why[i]);
	}
	if (sc->st[0] == 0 && sc->st[1] == 0 && memcmp(&sc->hdr[0], &sc->hdr[1], DP_POOL_HDR_SIZE)) {
		sc->differ = true;
		sc->problems++;
		scan_report(sc, "header B", EUCLEAN, 0, "valid but differs from copy A; A is used");
	}
	return 0;
}

struct slot_ref {
	uint64_t slot, offset, end;
	const char *name;
};

static int cmp_offset(const void *a, const void *b)
{
	const struct slot_ref *x = a, *y = b;

	if (x->offset != y->offset)
		return x->offset < y->offset ? -1 : 1;
	return x->slot < y->slot ? -1 : x->slot > y->slot;
}

static int cmp_name(const void *a, const void *b)
{
	const struct slot_ref *x = a, *y = b;
	int c = strcmp(x->name, y->name);

	return c ? c : (x->slot < y->slot ? -1 : x->slot > y->slot);
}

/*
 * Judge every slot of the table at base (a copy or the media). A slot is
 * dropped if its commit word is not its checksum, or its fields are
 * impossible, or it overlaps or shares a name with a slot kept before it.
 */
static int scan_table(struct pool_scan *sc, const uint8_t *base, struct dp_pool_slot *copy)
{
	const struct dp_pool_hdr *h = &sc->hdr[sc->use];
	struct slot_ref *refs;
	size_t n = 0;
	char where[48];

	sc->bad = calloc(h->slot_count, 1);
	refs = calloc(h->slot_count, sizeof(*refs));
	if (!sc->bad || !refs) {
		free(refs);
		return -ENOMEM;
	}
	for (uint64_t i = 0; i < h->slot_count; i++) {
		struct dp_pool_slot *s = &copy[i];

		/* Judge a private copy: the media may change under a fuzzer or a bug. */
		memcpy(s, base + h->table_offset + i * DP_POOL_SLOT_SIZE, sizeof(*s));
		if (s->commit == 0)
			continue;
		snprintf(where, sizeof(where), "extent slot %llu", (unsigned long long)i);
		sc->bad[i] = 1;
		if (s->commit != dp_slot_sum(h->uuid, s))
			scan_report(sc, where, EBADMSG, 0, "checksum mismatch");
		else if (!str_ok(s->name, sizeof(s->name)))
			scan_report(sc, where, EUCLEAN, 0, "name empty or not NUL-terminated");
		else if (s->size == 0 || s->size % h->alignment)
			scan_report(sc, where, EUCLEAN, 0, "size %#llx is not a multiple of %#llx",
				    (unsigned long long)s->size, (unsigned long long)h->alignment);
		else if (s->align < h->alignment || s->align > (1ull << 62) ||
			 (s->align & (s->align - 1)) || s->offset % s->align)
			scan_report(sc, where, EUCLEAN, 0, "offset %#llx and alignment %#llx disagree",
				    (unsigned long long)s->offset, (unsigned long long)s->align);
		else if (s->offset < h->data_offset || s->offset > h->pool_size ||
			 s->size > h->pool_size - s->offset)
			scan_report(sc, where, ERANGE, 0, "range [%#llx, +%#llx) is outside the pool",
				    (unsigned long long)s->offset, (unsigned long long)s->size);
		else
			sc->bad[i] = 0;
		if (sc->bad[i]) {
			sc->problems++;
			sc->table_problems++;
			continue;
		}
		refs[n++] = (struct slot_ref){ i, s->offset, s->offset + s->size, s->name };
	}

	/* Overlaps: in offset order, a range starting before the furthest end so far. */
	qsort(refs, n, sizeof(*refs), cmp_offset);
	for (size_t i = 0, kept = SIZE_MAX; i < n; i++) {
		if (kept != SIZE_MAX && refs[i].offset < refs[kept].end) {
			snprintf(where, sizeof(where), "extent slot %llu",
				 (unsigned long long)refs[i].slot);
			scan_report(sc, where, EUCLEAN, 0, "overlaps extent slot %llu",
				    (unsigned long long)refs[kept].slot);
			sc->bad[refs[i].slot] = 1;
			sc->problems++;
			sc->table_problems++;
			continue;
		}
		if (kept == SIZE_MAX || refs[i].end > refs[kept].end)
			kept = i;
	}
	/* Duplicate names among the slots still kept. */
	qsort(refs, n, sizeof(*refs), cmp_name);
	for (size_t i = 0, prev = SIZE_MAX; i < n; i++) {
		if (sc->bad[refs[i].slot])
			continue;
		if (prev != SIZE_MAX && strcmp(refs[prev].name, refs[i].name) == 0) {
			snprintf(where, sizeof(where), "extent slot %llu",
				 (unsigned long long)refs[i].slot);
			scan_report(sc, where, EUCLEAN, 0, "name \"%s\" also used by slot %llu",
				    refs[i].name, (unsigned long long)refs[prev].slot);
			sc->bad[refs[i].slot] = 1;
			sc->problems++;
			sc->table_problems++;
			continue;
		}
		prev = i;
	}
	free(refs);
	return 0;
}

/* ---- the cross-process locks ---- */

/*
 * OFD locks on the region's own descriptor, not on a second open of the file
 * (that would make the region's file lease impossible, see lease.c): byte 0
 * is write-locked by the one writer of the pool; byte 1 is read-locked while
 * a reader reads the extent table and write-locked while the writer changes
 * it. Every pool of the region shares the open file description, and with it
 * these locks, so the pools of this process are told apart in memory: one
 * writer flag, and an rwlock with a count of the readers that share the
 * description's read lock.
 */
static int ofd_lock(int fd, short type, off_t byte, bool wait)
{
	struct flock fl = { .l_type = type, .l_whence = SEEK_SET, .l_start = byte, .l_len = 1 };
	int r;

	do
		r = fcntl(fd, wait ? F_OFD_SETLKW : F_OFD_SETLK, &fl);
	while (r < 0 && errno == EINTR);
	if (r < 0)
		return errno == EAGAIN || errno == EACCES ? -EBUSY : -errno;
	return 0;
}

/* The writer lock, without waiting: -EBUSY if another pool (here or elsewhere) holds it. */
static int pool_lock_writer(struct daxpool_pool *pool)
{
	struct daxpool_region *region = pool->region;
	int r = -EBUSY;

	pthread_mutex_lock(&region->pool_locks);
	if (!region->pool_writer) {
		r = ofd_lock(region->fd, F_WRLCK, 0, false);
		region->pool_writer = r == 0;
	}
	pthread_mutex_unlock(&region->pool_locks);
	pool->holds_writer = r == 0;
	return r;
}

static void pool_unlock_writer(struct daxpool_pool *pool)
{
	struct daxpool_region *region = pool->region;

	if (!pool->holds_writer)
		return;
	pthread_mutex_lock(&region->pool_locks);
	if (region->fd >= 0)
		ofd_lock(region->fd, F_UNLCK, 0, false);
	region->pool_writer = false;
	pthread_mutex_unlock(&region->pool_locks);
	pool->holds_writer = false;
}

/* The table lock, shared (readers) or exclusive (the writer); waits for it. */
static int pool_lock_table(struct daxpool_pool *pool, bool exclusive)
{
	struct daxpool_region *region = pool->region;
	int r = 0;

	if (exclusive) {
		pthread_rwlock_wrlock(&region->pool_table);
		r = ofd_lock(region->fd, F_WRLCK, 1, true);
	} else {
		pthread_rwlock_rdlock(&region->pool_table);
		pthread_mutex_lock(&region->pool_locks);
		if (region->pool_readers == 0)
			r = ofd_lock(region->fd, F_RDLCK, 1, true);
		if (r == 0)
			region->pool_readers++;
		pthread_mutex_unlock(&region->pool_locks);
	}
	if (r < 0) {
		pthread_rwlock_unlock(&region->pool_table);
		return r;
	}
	pool->holds_table = exclusive ? DP_POOL_TABLE_EXCLUSIVE : DP_POOL_TABLE_SHARED;
	return 0;
}

static void pool_unlock_table(struct daxpool_pool *pool)
{
	struct daxpool_region *region = pool->region;

	if (pool->holds_table == DP_POOL_TABLE_EXCLUSIVE) {
		ofd_lock(region->fd, F_UNLCK, 1, false);
	} else if (pool->holds_table == DP_POOL_TABLE_SHARED) {
		pthread_mutex_lock(&region->pool_locks);
		if (--region->pool_readers == 0)
			ofd_lock(region->fd, F_UNLCK, 1, false);
		pthread_mutex_unlock(&region->pool_locks);
	} else {
		return;
	}
	pool->holds_table = DP_POOL_TABLE_NONE;
	pthread_rwlock_unlock(&region->pool_table);
}

int dp_pool_table_lock(struct daxpool_pool *pool)
{
	return pool_lock_table(pool, true);
}

void dp_pool_table_unlock(struct daxpool_pool *pool)
{
	pool_unlock_table(pool);
}

static void log_writer_busy(struct daxpool_region *region, const uint8_t *base, uint64_t maplen)
{
	struct dp_pool_runtime rt = { 0 };

	if (maplen >= DP_POOL_RUNTIME + sizeof(rt))
		memcpy(&rt, base + DP_POOL_RUNTIME, sizeof(rt));
	if (rt.magic == DP_POOL_RUNTIME_MAGIC && rt.pid > 0 && rt.pid < (1u << 22))
		log_err(region->ctx, "%s: the pool is open for writing by another holder "
				     "(pid %llu by its own advisory record)", region->path,
			(unsigned long long)rt.pid);
	else
		log_err(region->ctx, "%s: the pool is open for writing by another holder (pid "
				     "unknown)", region->path);
}

/* ---- attach: lock, read and judge the media ---- */

enum attach_mode {
	ATTACH_OPEN_RO,
	ATTACH_OPEN_RW,
	ATTACH_CHECK,
	ATTACH_REPAIR,
	ATTACH_CREATE,
};

static void pool_free(struct daxpool_pool *pool)
{
	if (pool->marked_writer && daxpool_map_is_valid(pool->meta) == 1) {
		static const struct dp_pool_runtime none;

		daxpool_map_memcpy(pool->meta, pool->base + DP_POOL_RUNTIME, &none, sizeof(none),
				   DAXPOOL_COPY_NOFLUSH);
	}
	dp_pool_free_extents(pool);
	/* While the metadata map still keeps the region's descriptor open (map.c). */
	pool_unlock_table(pool);
	pool_unlock_writer(pool);
	daxpool_map_unref(pool->meta);
	free(pool->slot_busy);
	free(pool->ext);
	pthread_mutex_destroy(&pool->lock);
	log_dbg(pool->region->ctx, "%s: pool closed", pool->region->path);
	daxpool_region_unref(pool->region);
	free(pool);
}

static struct daxpool_ctx *ctx_of_pool(struct daxpool_pool *pool)
{
	return pool->region->ctx;
}

DP_DEFINE_REF_UNREF(pool, struct daxpool_pool, pool_free, ctx_of_pool)

static int pool_new(struct daxpool_region *region, bool writer, struct daxpool_pool **ret)
{
	struct daxpool_pool *pool = calloc(1, sizeof(*pool));

	if (!pool)
		return -ENOMEM;
	dp_refcnt_init(&pool->ref, 1);
	pool->region = daxpool_region_ref(region);
	pool->rdonly = !writer;
	pthread_mutex_init(&pool->lock, NULL);
	*ret = pool;
	return 0;
}

/*
 * Lock, map the header area, judge the headers, map the metadata and judge the
 * table (not for create). On success *ret is the pool (extents not loaded)
 * with its table read lock (readers) or writer lock held, and sc is filled.
 */
static int pool_attach(struct daxpool_region *region, enum attach_mode mode,
		       struct pool_scan *sc, struct daxpool_pool **ret)
{
	bool writer = mode == ATTACH_OPEN_RW || mode == ATTACH_REPAIR || mode == ATTACH_CREATE;
	struct daxpool_map *hmap = NULL;
	struct daxpool_pool *pool = NULL;
	uint64_t hlen;
	int r;

	if (writer && region->rdonly) {
		log_err(region->ctx, "%s: the region is read-only: open the pool with "
				     "DAXPOOL_POOL_RDONLY", region->path);
		return -EACCES;
	}
	r = pool_new(region, writer, &pool);
	if (r < 0)
		return r;

	hlen = round_up(DP_POOL_TABLE, region->alignment);
	if (hlen > region->size)
		hlen = region->size;
	r = daxpool_map_new(region, 0, hlen, DAXPOOL_MAP_RDONLY, &hmap);
	if (r < 0)
		goto fail;
	daxpool_map_set_tag(hmap, "pool header");

	if (writer) {
		r = pool_lock_writer(pool);
		if (r == -EBUSY)
			log_writer_busy(region, daxpool_map_get_address(hmap), hlen);
		if (r < 0)
			goto fail;
	}
	/* Readers exclude a table change of another process while they read. */
	r = pool_lock_table(pool, writer);
	if (r < 0)
		goto fail;

	r = scan_headers(sc, daxpool_map_get_address(hmap), hlen);
	hmap = daxpool_map_unref(hmap);
	if (mode == ATTACH_CREATE) {
		*ret = pool;
		return r; /* the caller decides; headers are judged for -EEXIST */
	}
	if (r < 0)
		goto fail;
	pool->hdr = sc->hdr[sc->use];

	r = daxpool_map_new(region, 0, pool->hdr.data_offset,
			    writer ? 0 : DAXPOOL_MAP_RDONLY, &pool->meta);
	if (r < 0)
		goto fail;
	daxpool_map_set_tag(pool->meta, "pool metadata");
	pool->base = daxpool_map_get_address(pool->meta);

	sc->slots = malloc(pool->hdr.slot_count * sizeof(*sc->slots));
	if (!sc->slots) {
		r = -ENOMEM;
		goto fail;
	}
	r = scan_table(sc, pool->base, sc->slots);
	if (r < 0)
		goto fail;
	*ret = pool;
	return 0;

fail:
	daxpool_map_unref(hmap);
	daxpool_pool_unref(pool);
	return r;
}

static void scan_done(struct pool_scan *sc)
{
	free(sc->slots);
	free(sc->bad);
}

/* Make this process the advisory writer of record. */
static void pool_mark_writer(struct daxpool_pool *pool)
{
	struct dp_pool_runtime rt = {
		.magic = DP_POOL_RUNTIME_MAGIC,
		.pid = (uint64_t)getpid(),
		.since_sec = (uint64_t)time(NULL),
	};

	/* Advisory and never trusted: no persist, not part of any ordering. */
	if (daxpool_map_memcpy(pool->meta, pool->base + DP_POOL_RUNTIME, &rt, sizeof(rt),
			       DAXPOOL_COPY_NOFLUSH) == 0)
		pool->marked_writer = true;
}

_public_ int daxpool_pool_open(struct daxpool_region *region, unsigned int flags,
			       struct daxpool_pool **ret)
{
	struct pool_scan sc = { 0 };
	struct daxpool_pool *pool = NULL;
	bool writer;
	int r;

	assert_return(region, -EINVAL);
	assert_owned(region->ctx);
	assert_return(ret, -EINVAL);
	assert_return(!(flags & ~DAXPOOL_POOL_RDONLY), -EINVAL);
	writer = !(flags & DAXPOOL_POOL_RDONLY);

	sc.region = region;
	sc.log_prio = LOG_ERR;
	r = pool_attach(region, writer ? ATTACH_OPEN_RW : ATTACH_OPEN_RO, &sc, &pool);
	if (r < 0)
		goto out;
	if (sc.table_problems) {
		log_err(region->ctx, "%s: the extent table has %u problem(s): run a check and a "
				     "repair", region->path, sc.table_problems);
		r = -EUCLEAN;
		goto out;
	}
	if (sc.problems)
		log_warn(region->ctx, "%s: a header copy is bad; using the good one (repair "
				      "rewrites the bad one)", region->path);
	r = dp_pool_load_extents(pool, sc.slots, sc.bad);
	if (r < 0)
		goto out;
	if (writer)
		pool_mark_writer(pool);
	pool_unlock_table(pool);
	log_info(region->ctx, "%s: pool \"%s\" opened %s: %zu extent(s)", region->path,
		 pool->hdr.layout, writer ? "for writing" : "read-only", pool->n_ext);
	*ret = pool;
	pool = NULL;
out:
	scan_done(&sc);
	daxpool_pool_unref(pool);
	return r;
}

_public_ int daxpool_pool_create(struct daxpool_region *region, const char *layout,
				 const struct daxpool_pool_opts *opts, struct daxpool_pool **ret)
{
	struct pool_scan sc = { 0 };
	struct daxpool_pool *pool = NULL;
	struct dp_pool_hdr h = { 0 };
	static const char zero_magic[8];
	uint64_t slots, data_offset;
	size_t llen;
	int r;

	assert_return(region, -EINVAL);
	assert_owned(region->ctx);
	assert_return(layout, -EINVAL);
	assert_return(ret, -EINVAL);

	llen = strnlen(layout, DP_POOL_LAYOUT_MAX);
	if (llen == 0 || llen >= DP_POOL_LAYOUT_MAX) {
		log_err(region->ctx, "%s: a layout name has 1 to %u bytes", region->path,
			DP_POOL_LAYOUT_MAX - 1);
		return llen ? -ENAMETOOLONG : -EINVAL;
	}
	slots = opts ? opts->max_extents : DP_POOL_DEFAULT_SLOTS;
	data_offset = round_up(DP_POOL_TABLE + slots * DP_POOL_SLOT_SIZE, region->alignment);
	if (data_offset >= region->size) {
		log_err(region->ctx, "%s: %llu bytes cannot hold a pool with %llu extent slots",
			region->path, (unsigned long long)region->size, (unsigned long long)slots);
		return -ENOSPC;
	}

	sc.region = region;
	sc.log_prio = LOG_DEBUG;
	r = pool_attach(region, ATTACH_CREATE, &sc, &pool);
	if (!pool)
		goto out;
	if (r != -ENOMSG && !(opts && opts->overwrite)) {
		log_err(region->ctx, "%s: the region already holds a pool (or what is left of one):"
				     " refusing to overwrite it", region->path);
		r = -EEXIST;
		goto out;
	}

	memcpy(h.magic, DP_POOL_MAGIC, sizeof(h.magic));
	h.version = DP_POOL_VERSION;
	h.hdr_size = DP_POOL_HDR_SIZE;
	if (getrandom(h.uuid, sizeof(h.uuid), 0) != sizeof(h.uuid)) {
		r = -errno;
		goto out;
	}
	h.uuid[6] = (h.uuid[6] & 0x0f) | 0x40; /* RFC 4122 version 4 */
	h.uuid[8] = (h.uuid[8] & 0x3f) | 0x80;
	memcpy(h.layout, layout, llen);
	h.pool_size = region->size;
	h.alignment = region->alignment;
	h.table_offset = DP_POOL_TABLE;
	h.slot_count = slots;
	h.slot_size = DP_POOL_SLOT_SIZE;
	h.data_offset = data_offset;
	h.created_sec = (uint64_t)time(NULL);
	h.checksum = dp_hdr_sum(&h);
	pool->hdr = h;

	r = daxpool_map_new(region, 0, data_offset, 0, &pool->meta);
	if (r < 0)
		goto out;
	daxpool_map_set_tag(pool->meta, "pool metadata");
	pool->base = daxpool_map_get_address(pool->meta);

	/* The persist ordering is explained at the top of this file. */
	r = dp_pool_write(pool, pool->base + DP_POOL_HDR_A, zero_magic, sizeof(zero_magic));
	if (!r)
		r = dp_pool_write(pool, pool->base + DP_POOL_HDR_B, zero_magic, sizeof(zero_magic));
	if (!r)
		r = daxpool_map_memset(pool->meta, pool->base + DP_POOL_TABLE, 0,
				       slots * DP_POOL_SLOT_SIZE, DAXPOOL_COPY_NOFLUSH);
	if (!r)
		r = dp_pool_persist(pool, pool->base + DP_POOL_TABLE, slots * DP_POOL_SLOT_SIZE);
	if (!r)
		r = dp_pool_write(pool, pool->base + DP_POOL_HDR_B, &h, sizeof(h));
	if (!r)
		r = dp_pool_write(pool, pool->base + DP_POOL_HDR_A, &h, sizeof(h));
	if (r < 0)
		goto out;
	r = dp_pool_load_extents(pool, NULL, NULL);
	if (r < 0)
		goto out;
	pool_mark_writer(pool);
	pool_unlock_table(pool);
	log_info(region->ctx, "%s: pool \"%s\" created: %llu bytes, %llu extent slots, data at "
			      "%#llx", region->path, layout, (unsigned long long)h.pool_size,
		 (unsigned long long)slots, (unsigned long long)data_offset);
	*ret = pool;
	pool = NULL;
out:
	scan_done(&sc);
	daxpool_pool_unref(pool);
	return r;
}

_public_ int daxpool_pool_check(struct daxpool_region *region, daxpool_pool_problem_fn fn,
				void *userdata)
{
	struct pool_scan sc = { 0 };
	struct daxpool_pool *pool = NULL;
	int r;

	assert_return(region, -EINVAL);
	assert_owned(region->ctx);
	sc.region = region;
	sc.fn = fn;
	sc.userdata = userdata;
	sc.log_prio = LOG_INFO;
	r = pool_attach(region, ATTACH_CHECK, &sc, &pool);
	if (r == 0)
		r = (int)sc.problems;
	scan_done(&sc);
	daxpool_pool_unref(pool);
	return r;
}

_public_ int daxpool_pool_repair(struct daxpool_region *region, daxpool_pool_problem_fn fn,
				 void *userdata)
{
	struct pool_scan sc = { 0 };
	struct daxpool_pool *pool = NULL;
	static const uint64_t zero;
	int r, fixed = 0;
	char where[48];

	assert_return(region, -EINVAL);
	assert_owned(region->ctx);
	sc.region = region;
	sc.log_prio = LOG_INFO;
	/* Judge silently, then report each problem once, with what was done. */
	r = pool_attach(region, ATTACH_REPAIR, &sc, &pool);
	if (r < 0) {
		if (fn && sc.use < 0)
			for (int i = 0; i < 2; i++)
				fn(region, i ? "header B" : "header A", sc.st[i], sc.why[i], 0,
				   userdata);
		goto out;
	}
	sc.fn = fn;
	sc.userdata = userdata;
	sc.log_prio = LOG_NOTICE;

	/* Headers first, so that the table is judged within a good pool. */
	for (int i = 0; i < 2; i++) {
		uint64_t at = i ? DP_POOL_HDR_B : DP_POOL_HDR_A;

		if (i == sc.use || (sc.st[i] == 0 && !sc.differ))
			continue;
		r = dp_pool_write(pool, pool->base + at, &pool->hdr, sizeof(pool->hdr));
		if (r < 0)
			goto out;
		scan_report(&sc, i ? "header B" : "header A", sc.st[i] ? -sc.st[i] : EUCLEAN, 1,
			    "rewritten from copy %c (%s)", sc.use ? 'B' : 'A',
			    sc.st[i] ? sc.why[i] : "the copies differed");
		fixed++;
	}
	/* Each bad slot is freed by its commit word: one 8-byte store, persisted. */
	for (uint64_t i = 0; i < pool->hdr.slot_count; i++) {
		if (!sc.bad[i])
			continue;
		/* The table lock is held since attach. */
		r = dp_pool_write(pool, &dp_pool_slot(pool, i)->commit, &zero, sizeof(zero));
		if (r < 0)
			goto out;
		snprintf(where, sizeof(where), "extent slot %llu", (unsigned long long)i);
		scan_report(&sc, where, EUCLEAN, 1, "entry dropped");
		fixed++;
	}
	r = fixed;
out:
	scan_done(&sc);
	daxpool_pool_unref(pool);
	return r;
}

/* ---- getters ---- */

_public_ struct daxpool_region *daxpool_pool_get_region(struct daxpool_pool *pool)
{
	return pool ? pool->region : NULL;
}

_public_ int daxpool_pool_get_uuid(struct daxpool_pool *pool, uint8_t ret_uuid[16])
{
	assert_return(pool && ret_uuid, -EINVAL);
	memcpy(ret_uuid, pool->hdr.uuid, 16);
	return 0;
}

_public_ const char *daxpool_pool_get_layout(struct daxpool_pool *pool)
{
	return pool ? pool->hdr.layout : NULL;
}

_public_ uint64_t daxpool_pool_get_size(struct daxpool_pool *pool)
{
	return pool ? pool->hdr.pool_size : 0;
}

_public_ uint64_t daxpool_pool_get_alignment(struct daxpool_pool *pool)
{
	return pool ? pool->hdr.alignment : 0;
}

_public_ uint64_t daxpool_pool_get_data_offset(struct daxpool_pool *pool)
{
	return pool ? pool->hdr.data_offset : 0;
}

_public_ int daxpool_pool_get_max_extents(struct daxpool_pool *pool)
{
	assert_return(pool, -EINVAL);
	return (int)pool->hdr.slot_count;
}

_public_ int daxpool_pool_get_extent_count(struct daxpool_pool *pool)
{
	int n;

	assert_return(pool, -EINVAL);
	assert_owned(pool->region->ctx);
	pthread_mutex_lock(&pool->lock);
	n = (int)pool->n_ext;
	pthread_mutex_unlock(&pool->lock);
	return n;
}

_public_ int daxpool_pool_is_rdonly(struct daxpool_pool *pool)
{
	assert_return(pool, -EINVAL);
	return pool->rdonly;
}
