/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Pools and extents: create, open, extents, bad media, mapped frees, writer lock, threads. */
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <syslog.h>

#include "daxpool.h"
#include "harness.h"
#include "pool/pool.h" /* the on-media format, to craft bad media */

#define REGION_SIZE (64ull << 20)

struct fixture {
	struct daxpool_ctx *ctx;
	struct daxpool_region *region;
	const char *path;
	uint64_t align;
};

static struct fixture setup_path(const char *path)
{
	struct fixture f = { 0 };

	CHECK_OK(daxpool_ctx_new(&f.ctx));
	CHECK_OK(daxpool_ctx_set_log_priority(f.ctx, getenv("V") ? LOG_DEBUG : LOG_CRIT));
	f.path = strdup(path);
	CHECK_OK(daxpool_region_open(f.ctx, f.path, 0, &f.region));
	f.align = daxpool_region_get_alignment(f.region);
	return f;
}

static struct fixture setup(void)
{
	return setup_path(fixture_backing(REGION_SIZE));
}

static void teardown(struct fixture *f)
{
	daxpool_region_unref(f->region);
	daxpool_ctx_unref(f->ctx);
	free((void *)f->path);
}

static struct daxpool_pool *create(struct fixture *f, unsigned int slots)
{
	struct daxpool_pool_opts *o;
	struct daxpool_pool *pool;

	CHECK_OK(daxpool_pool_opts_new(&o));
	CHECK_OK(daxpool_pool_opts_set_overwrite(o, 1)); /* a devdax device may hold one */
	if (slots)
		CHECK_OK(daxpool_pool_opts_set_max_extents(o, slots));
	CHECK_OK(daxpool_pool_create(f->region, "test-layout", o, &pool));
	daxpool_pool_opts_free(o);
	return pool;
}

TEST(create_open_reopen)
{
	struct fixture f = setup();
	struct daxpool_pool *pool = create(&f, 0), *ro;
	uint8_t uuid[16], uuid2[16], zero[16] = { 0 };
	struct daxpool_pool_opts *o;

	CHECK(strcmp(daxpool_pool_get_layout(pool), "test-layout") == 0);
	CHECK_EQ(daxpool_pool_get_size(pool), daxpool_region_get_size(f.region));
	CHECK_EQ(daxpool_pool_get_alignment(pool), f.align);
	CHECK_EQ(daxpool_pool_get_extent_count(pool), 0);
	CHECK_EQ(daxpool_pool_get_max_extents(pool), 1024);
	CHECK_EQ(daxpool_pool_get_data_offset(pool) % f.align, 0);
	CHECK(daxpool_pool_get_region(pool) == f.region);
	CHECK_EQ(daxpool_pool_is_rdonly(pool), 0);
	CHECK_OK(daxpool_pool_get_uuid(pool, uuid));
	CHECK(memcmp(uuid, zero, 16) != 0);
	CHECK(daxpool_pool_ref(pool) == pool);
	CHECK(daxpool_pool_unref(pool) == NULL);
	CHECK(daxpool_pool_unref(pool) == NULL);
	CHECK(daxpool_pool_unref(NULL) == NULL);

	/* Reopen for writing and read-only: same pool. */
	CHECK_OK(daxpool_pool_open(f.region, 0, &pool));
	CHECK_OK(daxpool_pool_get_uuid(pool, uuid2));
	CHECK(memcmp(uuid, uuid2, 16) == 0);
	CHECK_OK(daxpool_pool_open(f.region, DAXPOOL_POOL_RDONLY, &ro));
	CHECK_EQ(daxpool_pool_is_rdonly(ro), 1);
	CHECK(strcmp(daxpool_pool_get_layout(ro), "test-layout") == 0);
	ro = daxpool_pool_unref(ro);
	pool = daxpool_pool_unref(pool);
	CHECK_EQ(daxpool_pool_check(f.region, NULL, NULL), 0);

	/* Create refuses to overwrite unless told. */
	CHECK_ERR(daxpool_pool_create(f.region, "other", NULL, &pool), EEXIST);
	CHECK_OK(daxpool_pool_opts_new(&o));
	CHECK_OK(daxpool_pool_opts_set_overwrite(o, 1));
	CHECK_ERR(daxpool_pool_opts_set_max_extents(o, 0), EINVAL);
	CHECK_ERR(daxpool_pool_create(f.region, "", o, &pool), EINVAL);
	CHECK_ERR(daxpool_pool_create(f.region,
				      "0123456789012345678901234567890123456789012345678901234567890123",
				      o, &pool), ENAMETOOLONG);
	CHECK_OK(daxpool_pool_create(f.region, "other", o, &pool));
	daxpool_pool_opts_free(o);
	CHECK_OK(daxpool_pool_get_uuid(pool, uuid2));
	CHECK(memcmp(uuid, uuid2, 16) != 0);
	CHECK(strcmp(daxpool_pool_get_layout(pool), "other") == 0);
	daxpool_pool_unref(pool);
	teardown(&f);
}

TEST(open_without_pool_and_bad_arguments)
{
	struct fixture f = setup_path(fixture_plain_file(1 << 20));
	struct daxpool_pool *pool = NULL;
	struct daxpool_region *ro;

	CHECK_ERR(daxpool_pool_open(f.region, 0, &pool), ENOMSG);
	CHECK_ERR(daxpool_pool_check(f.region, NULL, NULL), ENOMSG);
	CHECK(pool == NULL);
	CHECK_ERR(daxpool_pool_open(NULL, 0, &pool), EINVAL);
	CHECK_ERR(daxpool_pool_open(f.region, 0x80, &pool), EINVAL);
	CHECK_ERR(daxpool_pool_create(f.region, NULL, NULL, &pool), EINVAL);
	/* A writer needs a writable region. */
	CHECK_OK(daxpool_region_open(f.ctx, f.path, DAXPOOL_REGION_RDONLY, &ro));
	CHECK_ERR(daxpool_pool_create(ro, "x", NULL, &pool), EACCES);
	CHECK_ERR(daxpool_pool_open(ro, 0, &pool), EACCES);
	daxpool_region_unref(ro);
	/* Too small for the metadata. */
	{
		struct daxpool_pool_opts *o;

		CHECK_OK(daxpool_pool_opts_new(&o));
		CHECK_OK(daxpool_pool_opts_set_max_extents(o, 1u << 20));
		CHECK_ERR(daxpool_pool_create(f.region, "x", o, &pool), ENOSPC);
		daxpool_pool_opts_free(o);
	}
	teardown(&f);
}

static int count_fn(struct daxpool_extent *ext, void *userdata)
{
	uint64_t *last = userdata;

	CHECK(daxpool_extent_get_offset(ext) > last[0]);
	last[0] = daxpool_extent_get_offset(ext);
	last[1]++;
	return 0;
}

static int stop_fn(struct daxpool_extent *ext, void *userdata)
{
	return 42;
}

TEST(extents_alloc_lookup_free_iterate)
{
	struct fixture f = setup();
	struct daxpool_pool *pool = create(&f, 8);
	struct daxpool_extent *a, *b, *c, *x;
	uint64_t it[2] = { 0, 0 };

	CHECK_OK(daxpool_extent_alloc(pool, "a", 1000, 0, &a));
	CHECK_EQ(daxpool_extent_get_size(a), f.align); /* rounded up */
	CHECK_EQ(daxpool_extent_get_offset(a) % f.align, 0);
	CHECK(daxpool_extent_get_offset(a) >= daxpool_pool_get_data_offset(pool));
	CHECK_OK(daxpool_extent_alloc(pool, "b", 3 * f.align, 4 << 20, &b));
	CHECK_EQ(daxpool_extent_get_offset(b) % (4 << 20), 0);
	CHECK_EQ(daxpool_extent_get_alignment(b), (4 << 20) > f.align ? (4 << 20) : f.align);
	CHECK_OK(daxpool_extent_alloc(pool, "c", f.align, 0, &c));
	CHECK(daxpool_extent_get_pool(c) == pool);
	CHECK(strcmp(daxpool_extent_get_name(c), "c") == 0);
	CHECK_EQ(daxpool_pool_get_extent_count(pool), 3);

	CHECK_ERR(daxpool_extent_alloc(pool, "a", f.align, 0, &x), EEXIST);
	CHECK_ERR(daxpool_extent_alloc(pool, "", f.align, 0, &x), EINVAL);
	CHECK_ERR(daxpool_extent_alloc(pool, "n", 0, 0, &x), EINVAL);
	CHECK_ERR(daxpool_extent_alloc(pool, "n", f.align, 3, &x), EINVAL);
	CHECK_ERR(daxpool_extent_alloc(pool,
				       "0123456789012345678901234567890123456789012345678901234567890123",
				       f.align, 0, &x), ENAMETOOLONG);
	/* Larger than the whole backing (a devdax device may be larger than REGION_SIZE). */
	CHECK_ERR(daxpool_extent_alloc(pool, "huge", daxpool_pool_get_size(pool) * 2, 0, &x), ENOSPC);

	CHECK_OK(daxpool_extent_lookup(pool, "b", &x));
	CHECK(x == b);
	x = daxpool_extent_unref(x);
	CHECK_ERR(daxpool_extent_lookup(pool, "nope", &x), ENOENT);

	CHECK_EQ(daxpool_extent_foreach(pool, count_fn, it), 0);
	CHECK_EQ(it[1], 3);
	CHECK_EQ(daxpool_extent_foreach(pool, stop_fn, NULL), 42);

	/* Free by handle and by name. */
	CHECK_OK(daxpool_extent_free(a, 0, 0));
	CHECK_EQ(daxpool_extent_is_allocated(a), 0);
	CHECK_ERR(daxpool_extent_free(a, 0, 0), ENOENT);
	CHECK_ERR(daxpool_extent_lookup(pool, "a", &x), ENOENT);
	CHECK_OK(daxpool_extent_free_by_name(pool, "c", 0, 0));
	CHECK_ERR(daxpool_extent_free_by_name(pool, "c", 0, 0), ENOENT);
	CHECK_EQ(daxpool_extent_is_allocated(c), 0);
	CHECK_EQ(daxpool_pool_get_extent_count(pool), 1);
	/* The first gap is reused. */
	{
		uint64_t old = daxpool_extent_get_offset(a);

		a = daxpool_extent_unref(a);
		CHECK_OK(daxpool_extent_alloc(pool, "a2", f.align, 0, &a));
		CHECK_EQ(daxpool_extent_get_offset(a), old);
	}
	/* A full table. */
	for (int i = 0; i < 6; i++) {
		char name[16];

		snprintf(name, sizeof(name), "fill%d", i);
		CHECK_OK(daxpool_extent_alloc(pool, name, f.align, 0, &x));
		x = daxpool_extent_unref(x);
	}
	CHECK_ERR(daxpool_extent_alloc(pool, "over", f.align, 0, &x), ENOSPC);

	/* Handles keep the pool: drop the pool first, then the handles. */
	daxpool_pool_unref(pool);
	CHECK(strcmp(daxpool_extent_get_name(b), "b") == 0);
	daxpool_extent_unref(a);
	daxpool_extent_unref(c);

	/* Persistent: reopen read-only and find the same extents. */
	{
		struct daxpool_pool *ro;
		uint64_t boff = daxpool_extent_get_offset(b);

		daxpool_extent_unref(b);
		CHECK_OK(daxpool_pool_open(f.region, DAXPOOL_POOL_RDONLY, &ro));
		CHECK_EQ(daxpool_pool_get_extent_count(ro), 8);
		CHECK_OK(daxpool_extent_lookup(ro, "b", &x));
		CHECK_EQ(daxpool_extent_get_offset(x), boff);
		CHECK_ERR(daxpool_extent_alloc(ro, "z", f.align, 0, &b), EACCES);
		CHECK_ERR(daxpool_extent_free(x, 0, 0), EACCES);
		daxpool_extent_unref(x);
		daxpool_pool_unref(ro);
	}
	CHECK_EQ(daxpool_pool_check(f.region, NULL, NULL), 0);
	teardown(&f);
}

/* ---- bad media ---- */

struct media {
	struct fixture f;
	int fd;
	uint64_t size;
	uint8_t uuid[16];
	uint64_t slot_b; /* the slot of extent "b" */
};

/* A file pool with extents "a" and "b", closed. */
static struct media media_new(void)
{
	struct media m = { 0 };
	struct daxpool_pool *pool;
	struct daxpool_extent *e;
	const char *path;

	m.size = 16ull << 20;
	/*
	 * The media are changed behind the pool through a descriptor of the
	 * test's own, opened first: the region then holds no file lease, so
	 * these writes are not an outsider's open to be drained (lease.c).
	 */
	path = fixture_plain_file(m.size);
	m.fd = open(path, O_RDWR | O_CLOEXEC);
	CHECK(m.fd >= 0);
	m.f = setup_path(path);
	pool = create(&m.f, 16);
	CHECK_OK(daxpool_extent_alloc(pool, "a", 1 << 20, 0, &e));
	daxpool_extent_unref(e);
	CHECK_OK(daxpool_extent_alloc(pool, "b", 1 << 20, 0, &e));
	daxpool_extent_unref(e);
	CHECK_OK(daxpool_pool_get_uuid(pool, m.uuid));
	daxpool_pool_unref(pool);
	m.slot_b = 1;
	return m;
}

static void media_put(struct media *m, uint64_t off, const void *buf, size_t len)
{
	CHECK_EQ(pwrite(m->fd, buf, len, (off_t)off), (long long)len);
}

static void media_get(struct media *m, uint64_t off, void *buf, size_t len)
{
	CHECK_EQ(pread(m->fd, buf, len, (off_t)off), (long long)len);
}

static uint8_t *media_snapshot(struct media *m, size_t len)
{
	uint8_t *p = malloc(len);

	CHECK(p);
	media_get(m, 0, p, len);
	return p;
}

/* Opening (both ways) and checking give err and leave every byte as it was. */
static void expect_open_error(struct media *m, int err, int check_result)
{
	size_t len = 1 << 20;
	uint8_t *before = media_snapshot(m, len), *after;
	struct daxpool_region *region;
	struct daxpool_pool *pool = NULL;

	/* A fresh region: the size is read at open (truncation cases). */
	CHECK_OK(daxpool_region_open(m->f.ctx, m->f.path, 0, &region));
	CHECK_ERR(daxpool_pool_open(region, 0, &pool), err);
	CHECK_ERR(daxpool_pool_open(region, DAXPOOL_POOL_RDONLY, &pool), err);
	CHECK(pool == NULL);
	CHECK_EQ(daxpool_pool_check(region, NULL, NULL), check_result);
	daxpool_region_unref(region);
	after = media_snapshot(m, len);
	CHECK(memcmp(before, after, len) == 0);
	free(before);
	free(after);
}

static void media_end(struct media *m)
{
	close(m->fd);
	teardown(&m->f);
}

static void hdr_rewrite(struct media *m, uint64_t at, void (*edit)(struct dp_pool_hdr *),
			bool fix_sum)
{
	struct dp_pool_hdr h;

	media_get(m, at, &h, sizeof(h));
	edit(&h);
	if (fix_sum)
		h.checksum = dp_hdr_sum(&h);
	media_put(m, at, &h, sizeof(h));
}

static void edit_magic(struct dp_pool_hdr *h)
{
	h->magic[0] ^= 0x20;
}

static void edit_version(struct dp_pool_hdr *h)
{
	h->version = DP_POOL_VERSION + 1;
}

static void edit_layout_byte(struct dp_pool_hdr *h)
{
	h->layout[3] ^= 1;
}

static void edit_pool_size(struct dp_pool_hdr *h)
{
	h->pool_size *= 2;
}

static void edit_layout_unterminated(struct dp_pool_hdr *h)
{
	memset(h->layout, 'x', sizeof(h->layout));
}

TEST(bad_header_magic_version_checksum)
{
	struct media m = media_new();
	struct daxpool_pool *pool;

	/* One bad copy: opens from the other; check counts it; the bytes stay. */
	hdr_rewrite(&m, DP_POOL_HDR_A, edit_layout_byte, false);
	{
		uint8_t *before = media_snapshot(&m, 1 << 20), *after;

		CHECK_OK(daxpool_pool_open(m.f.region, 0, &pool));
		CHECK_EQ(daxpool_pool_get_extent_count(pool), 2);
		daxpool_pool_unref(pool);
		CHECK_EQ(daxpool_pool_check(m.f.region, NULL, NULL), 1);
		after = media_snapshot(&m, 1 << 20);
		CHECK(memcmp(before + DP_POOL_HDR_A, after + DP_POOL_HDR_A, 0x2000) == 0);
		CHECK(memcmp(before + DP_POOL_TABLE, after + DP_POOL_TABLE, 16 * 128) == 0);
		free(before);
		free(after);
	}
	/* Both copies: checksum mismatch. */
	hdr_rewrite(&m, DP_POOL_HDR_B, edit_layout_byte, false);
	expect_open_error(&m, EBADMSG, -EBADMSG);
	/* Wrong magic in both. */
	hdr_rewrite(&m, DP_POOL_HDR_A, edit_magic, false);
	hdr_rewrite(&m, DP_POOL_HDR_B, edit_magic, false);
	expect_open_error(&m, ENOMSG, -ENOMSG);
	hdr_rewrite(&m, DP_POOL_HDR_A, edit_magic, false);
	hdr_rewrite(&m, DP_POOL_HDR_B, edit_magic, false);
	hdr_rewrite(&m, DP_POOL_HDR_A, edit_layout_byte, true);
	hdr_rewrite(&m, DP_POOL_HDR_B, edit_layout_byte, true);
	/* Back to good (the layout differs by a bit, consistently). */
	CHECK_EQ(daxpool_pool_check(m.f.region, NULL, NULL), 0);
	/* A future version, with a good checksum. */
	hdr_rewrite(&m, DP_POOL_HDR_A, edit_version, true);
	hdr_rewrite(&m, DP_POOL_HDR_B, edit_version, true);
	expect_open_error(&m, EPROTO, -EPROTO);
	media_end(&m);
}

TEST(bad_header_fields_and_truncation)
{
	struct media m = media_new();

	/* A pool larger than its region. */
	hdr_rewrite(&m, DP_POOL_HDR_A, edit_pool_size, true);
	hdr_rewrite(&m, DP_POOL_HDR_B, edit_pool_size, true);
	expect_open_error(&m, ERANGE, -ERANGE);
	media_end(&m);

	m = media_new();
	hdr_rewrite(&m, DP_POOL_HDR_A, edit_layout_unterminated, true);
	hdr_rewrite(&m, DP_POOL_HDR_B, edit_layout_unterminated, true);
	expect_open_error(&m, EUCLEAN, -EUCLEAN);
	media_end(&m);

	/* A truncated backing: smaller than the pool, and smaller than the headers. */
	m = media_new();
	CHECK_OK(ftruncate(m.fd, 8 << 20));
	expect_open_error(&m, ERANGE, -ERANGE);
	CHECK_OK(ftruncate(m.fd, 4096));
	{
		struct daxpool_region *region;
		struct daxpool_pool *pool = NULL;
		uint8_t before[4096], after[4096];

		media_get(&m, 0, before, sizeof(before));
		CHECK_OK(daxpool_region_open(m.f.ctx, m.f.path, 0, &region));
		CHECK_ERR(daxpool_pool_open(region, 0, &pool), ERANGE);
		CHECK_ERR(daxpool_pool_repair(region, NULL, NULL), ERANGE);
		daxpool_region_unref(region);
		media_get(&m, 0, after, sizeof(after));
		CHECK(memcmp(before, after, sizeof(before)) == 0);
	}
	media_end(&m);
}

/* Rewrite slot i with edit(), then recompute its commit word (a "valid" bad slot). */
static void slot_rewrite(struct media *m, uint64_t i, void (*edit)(struct dp_pool_slot *),
			 bool fix_sum)
{
	struct dp_pool_slot s;
	uint64_t at = DP_POOL_TABLE + i * DP_POOL_SLOT_SIZE;

	media_get(m, at, &s, sizeof(s));
	edit(&s);
	if (fix_sum)
		s.commit = dp_slot_sum(m->uuid, &s);
	media_put(m, at, &s, sizeof(s));
}

static void edit_slot_size(struct dp_pool_slot *s)
{
	s->size += 100; /* not a multiple of the alignment */
}

static void edit_slot_overlap(struct dp_pool_slot *s)
{
	s->offset -= 4096; /* into extent "a" */
}

static void edit_slot_range(struct dp_pool_slot *s)
{
	s->offset = 1ull << 40;
}

static void edit_slot_name(struct dp_pool_slot *s)
{
	memset(s->name, 'n', sizeof(s->name));
}

static void edit_slot_dup(struct dp_pool_slot *s)
{
	strcpy(s->name, "a");
}

static void edit_slot_unaligned(struct dp_pool_slot *s)
{
	s->offset += 512;
}

static int repaired_count;

static void count_repaired(struct daxpool_region *region, const char *where, int err,
			   const char *message, int repaired, void *userdata)
{
	CHECK_EQ(repaired, 1);
	CHECK(err < 0);
	repaired_count++;
}

TEST(bad_extent_entries_then_repair)
{
	void (*edits[])(struct dp_pool_slot *) = { edit_slot_size,   edit_slot_overlap,
						    edit_slot_range,  edit_slot_name,
						    edit_slot_dup,    edit_slot_unaligned };

	for (size_t i = 0; i < sizeof(edits) / sizeof(edits[0]); i++) {
		struct media m = media_new();
		struct daxpool_pool *pool;
		struct daxpool_extent *e;

		/* Unsealed (a checksum mismatch), then sealed (a well-formed lie). */
		slot_rewrite(&m, m.slot_b, edits[i], false);
		expect_open_error(&m, EUCLEAN, 1);
		slot_rewrite(&m, m.slot_b, edits[i], true);
		expect_open_error(&m, EUCLEAN, 1);

		repaired_count = 0;
		CHECK_EQ(daxpool_pool_repair(m.f.region, count_repaired, NULL), 1);
		CHECK_EQ(repaired_count, 1);
		CHECK_EQ(daxpool_pool_check(m.f.region, NULL, NULL), 0);
		CHECK_OK(daxpool_pool_open(m.f.region, 0, &pool));
		CHECK_EQ(daxpool_pool_get_extent_count(pool), 1);
		CHECK_OK(daxpool_extent_lookup(pool, "a", &e));
		daxpool_extent_unref(e);
		daxpool_pool_unref(pool);
		media_end(&m);
	}
}

TEST(repair_restores_header_copy)
{
	struct media m = media_new();
	uint8_t a[256], b[256];

	hdr_rewrite(&m, DP_POOL_HDR_B, edit_layout_byte, false);
	repaired_count = 0;
	CHECK_EQ(daxpool_pool_repair(m.f.region, count_repaired, NULL), 1);
	CHECK_EQ(repaired_count, 1);
	media_get(&m, DP_POOL_HDR_A, a, sizeof(a));
	media_get(&m, DP_POOL_HDR_B, b, sizeof(b));
	CHECK(memcmp(a, b, sizeof(a)) == 0);
	CHECK_EQ(daxpool_pool_check(m.f.region, NULL, NULL), 0);
	CHECK_EQ(daxpool_pool_repair(m.f.region, NULL, NULL), 0);
	media_end(&m);
}

/* ---- freeing mapped extents ---- */

static int revokes;

static void revoke_drop(struct daxpool_map *map, void *userdata)
{
	struct daxpool_map **slot = userdata;

	revokes++;
	CHECK(*slot == map);
	*slot = daxpool_map_unref(*slot);
}

static void *drop_later(void *arg)
{
	struct daxpool_map *map = arg;

	usleep(100 * 1000);
	daxpool_map_unref(map);
	return NULL;
}

TEST(free_mapped_extent)
{
	struct fixture f = setup();
	struct daxpool_pool *pool = create(&f, 8);
	struct daxpool_extent *e, *e2;
	struct daxpool_map *map = NULL, *other = NULL;
	uint64_t off;
	pthread_t t;

	CHECK_OK(daxpool_extent_alloc(pool, "e", 2 * f.align, 0, &e));
	CHECK_OK(daxpool_extent_alloc(pool, "o", f.align, 0, &e2));
	off = daxpool_extent_get_offset(e);
	CHECK_OK(daxpool_extent_map(e, 0, &map));
	CHECK_EQ(daxpool_map_get_offset(map), off);
	CHECK_EQ(daxpool_map_get_length(map), 2 * f.align);
	CHECK_OK(daxpool_map_memset(map, daxpool_map_get_address(map), 0x5a, 64, 0));
	CHECK_OK(daxpool_extent_map(e2, 0, &other)); /* another extent's map never blocks */

	/* No wait: refused, nothing changes. */
	CHECK_ERR(daxpool_extent_free(e, -1, DAXPOOL_EXTENT_FREE_NOWAIT), EBUSY);
	CHECK_EQ(daxpool_map_is_valid(map), 1);
	CHECK_EQ(daxpool_extent_is_allocated(e), 1);

	/* A holder that never lets go: zapped, revoked, times out, stays allocated. */
	CHECK_ERR(daxpool_extent_free(e, 50, 0), ETIMEDOUT);
	CHECK_EQ(daxpool_map_is_valid(map), 0);
	CHECK_EQ(daxpool_map_is_valid(other), 1);
	CHECK_EQ(daxpool_extent_is_allocated(e), 1);
	{
		struct daxpool_map *m2 = NULL;

		CHECK_ERR(daxpool_extent_map(e, 0, &m2), ENXIO);
		CHECK_ERR(daxpool_map_new(f.region, off, f.align, 0, &m2), ENXIO);
	}
	/* The memory is still there for the holder. */
	CHECK_EQ(*(volatile uint8_t *)daxpool_map_get_address(map), 0x5a);
	/* A holder that lets go later: the free waits for it. */
	CHECK_EQ(pthread_create(&t, NULL, drop_later, map), 0);
	CHECK_OK(daxpool_extent_free(e, -1, 0));
	pthread_join(t, NULL);
	CHECK_EQ(daxpool_extent_is_allocated(e), 0);
	daxpool_extent_unref(e);

	/* The range is open again and reused. */
	CHECK_OK(daxpool_extent_alloc(pool, "e2", f.align, 0, &e));
	CHECK_EQ(daxpool_extent_get_offset(e), off);
	map = NULL;
	CHECK_OK(daxpool_extent_map(e, 0, &map));
	/* A cooperative holder: revoke drops the map, the free completes at once. */
	CHECK_OK(daxpool_map_set_revoke_fn(map, revoke_drop, &map));
	revokes = 0;
	CHECK_OK(daxpool_extent_free(e, 0, 0));
	CHECK_EQ(revokes, 1);
	CHECK(map == NULL);
	CHECK_ERR(daxpool_extent_map(e, 0, &map), ENOENT);
	daxpool_extent_unref(e);

	daxpool_map_unref(other);
	daxpool_extent_unref(e2);
	daxpool_pool_unref(pool);
	CHECK_EQ(daxpool_pool_check(f.region, NULL, NULL), 0);
	teardown(&f);
}

/* ---- the writer lock ---- */

TEST(one_writer_across_processes)
{
	struct fixture f = setup();
	struct daxpool_pool *pool = create(&f, 8), *p2 = NULL;
	struct daxpool_region *r2;
	int status;
	pid_t pid;

	/* In this process, through another region and through the same one. */
	CHECK_ERR(daxpool_pool_open(f.region, 0, &p2), EBUSY);
	CHECK_OK(daxpool_region_open(f.ctx, f.path, 0, &r2));
	CHECK_ERR(daxpool_pool_open(r2, 0, &p2), EBUSY);
	CHECK_ERR(daxpool_pool_repair(r2, NULL, NULL), EBUSY);
	CHECK_OK(daxpool_pool_open(r2, DAXPOOL_POOL_RDONLY, &p2));
	p2 = daxpool_pool_unref(p2);
	CHECK_EQ(daxpool_pool_check(r2, NULL, NULL), 0);

	pid = fork();
	CHECK(pid >= 0);
	if (pid == 0) {
		struct daxpool_ctx *ctx;
		struct daxpool_region *r;
		struct daxpool_pool *p = NULL;
		int rc = 0;

		if (daxpool_ctx_new(&ctx) < 0 || daxpool_region_open(ctx, f.path, 0, &r) < 0)
			_exit(10);
		daxpool_ctx_set_log_priority(ctx, LOG_CRIT);
		if (daxpool_pool_open(r, 0, &p) != -EBUSY)
			rc = 11;
		else if (daxpool_pool_open(r, DAXPOOL_POOL_RDONLY, &p) != 0)
			rc = 12;
		else if (daxpool_pool_get_extent_count(p) != 0)
			rc = 13;
		daxpool_pool_unref(p);
		daxpool_region_unref(r);
		/*
		 * No daxpool_ctx_unref(): in a child forked from a process whose
		 * pin registry started liburcu's call_rcu thread, tearing a
		 * context down waits for that thread, which the child does not
		 * have (lib/core/fork.c's business). _exit() releases everything.
		 */
		_exit(rc);
	}
	CHECK_EQ(waitpid(pid, &status, 0), pid);
	CHECK(WIFEXITED(status));
	CHECK_EQ(WEXITSTATUS(status), 0);

	/* After the writer closes, another can open. */
	daxpool_pool_unref(pool);
	CHECK_OK(daxpool_pool_open(r2, 0, &p2));
	daxpool_pool_unref(p2);
	daxpool_region_unref(r2);
	teardown(&f);
}

/* ---- threads ---- */

#define THREADS 4
#define ROUNDS 150

struct worker {
	struct daxpool_pool *pool;
	int id;
	int rounds;
	int kept;
};

static void *worker(void *arg)
{
	struct worker *w = arg;
	char name[32];

	for (int i = 0; i < w->rounds; i++) {
		struct daxpool_extent *e;

		snprintf(name, sizeof(name), "t%d-%d", w->id, i);
		if (daxpool_extent_alloc(w->pool, name, 4096, 0, &e) < 0)
			return (void *)1;
		/* Free two of every three, some by handle and some by name. */
		if (i % 3 == 0)
			w->kept++;
		else if (i % 3 == 1 ? daxpool_extent_free(e, 0, 0) < 0
				    : daxpool_extent_free_by_name(w->pool, name, 0, 0) < 0)
			return (void *)2;
		daxpool_extent_unref(e);
		if (i % 30 == 0) { /* a kept one */
			struct daxpool_extent *x;

			snprintf(name, sizeof(name), "t%d-%d", w->id, i);
			if (daxpool_extent_lookup(w->pool, name, &x) < 0)
				return (void *)3;
			daxpool_extent_unref(x);
		}
	}
	return NULL;
}

TEST(threads_alloc_free)
{
	struct fixture f = setup();
	struct daxpool_pool *pool = create(&f, THREADS * ROUNDS);
	struct worker w[THREADS];
	pthread_t t[THREADS];
	uint64_t units = (daxpool_pool_get_size(pool) - daxpool_pool_get_data_offset(pool)) / f.align;
	/* Keep one third; at most two more per thread are live at once. */
	int rounds = units / THREADS < ROUNDS / 3 + 2 ? (int)(3 * (units / THREADS - 2)) : ROUNDS;
	int kept = 0;

	for (int i = 0; i < THREADS; i++) {
		w[i] = (struct worker){ pool, i, rounds, 0 };
		CHECK_EQ(pthread_create(&t[i], NULL, worker, &w[i]), 0);
	}
	for (int i = 0; i < THREADS; i++) {
		void *rv;

		pthread_join(t[i], &rv);
		CHECK(rv == NULL);
		kept += w[i].kept;
	}
	CHECK_EQ(kept, THREADS * ((rounds + 2) / 3));
	CHECK_EQ(daxpool_pool_get_extent_count(pool), kept);
	daxpool_pool_unref(pool);
	CHECK_EQ(daxpool_pool_check(f.region, NULL, NULL), 0);
	CHECK_OK(daxpool_pool_open(f.region, DAXPOOL_POOL_RDONLY, &pool));
	CHECK_EQ(daxpool_pool_get_extent_count(pool), kept);
	daxpool_pool_unref(pool);
	teardown(&f);
}
