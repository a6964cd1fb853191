/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The persist-point crash test. A pool on a file region runs a workload of
 * allocs and frees. Every persist of the pool's metadata goes through the
 * library's private hook (dp_pool_set_persist_hook(), linked from the static
 * library, not exported), which lets this test keep a shadow of the media:
 * the bytes the library has made persistent so far, and nothing else.
 *
 * At each persist point the images a power cut there could leave are built:
 *   - the shadow as it is (everything before the point persisted, nothing of
 *     the in-flight range);
 *   - the shadow plus a random subset of the in-flight range's 8-byte words
 *     (torn 8-byte-atomic writes of the lines being flushed), three times.
 * After the operation returns, each image is opened and checked on its own
 * file: the check must find nothing, and the extents must be exactly those
 * before the operation or exactly those after it. Create is covered as well:
 * before it completes, the image must hold no pool at all.
 */
#include <fcntl.h>
#include <syslog.h>

#include "daxpool.h"
#include "harness.h"
#include "pool/pool.h" /* dp_pool_set_persist_hook() */

#define REGION_SIZE (64ull << 20)
#define SHADOW_SIZE (1u << 20) /* covers the metadata: 0x3000 + 64 slots */
#define SLOTS 64
#define OPS 150
#define TORN_VARIANTS 3

struct ext {
	char name[16];
	uint64_t off, size;
};

struct state {
	bool exists; /* a pool is there */
	struct ext e[SLOTS];
	int n;
};

struct image {
	uint8_t *bytes;
};

static uint8_t *shadow;
static uint64_t shadow_hi; /* highest byte persisted + 1 */
static struct image *images;
static size_t n_images, cap_images;
static unsigned int points, seed = 12345;

static void image_add(const uint8_t *from)
{
	if (n_images == cap_images) {
		cap_images = cap_images ? cap_images * 2 : 64;
		images = realloc(images, cap_images * sizeof(*images));
		CHECK(images);
	}
	images[n_images].bytes = malloc(SHADOW_SIZE);
	CHECK(images[n_images].bytes);
	memcpy(images[n_images].bytes, from, SHADOW_SIZE);
	n_images++;
}

static void hook(void *userdata, uint64_t offset, const void *addr, size_t len)
{
	const uint8_t *live = addr;
	uint8_t *torn;

	CHECK(offset + len <= SHADOW_SIZE);
	points++;
	/* Nothing of this range reached the media. */
	image_add(shadow);
	/* Some of its 8-byte words did (a word is written whole or not at all). */
	torn = malloc(SHADOW_SIZE);
	CHECK(torn);
	for (int v = 0; v < TORN_VARIANTS; v++) {
		memcpy(torn, shadow, SHADOW_SIZE);
		for (uint64_t w = offset & ~7ull; w < offset + len; w += 8) {
			uint64_t lo = w < offset ? offset : w;
			uint64_t hi = w + 8 > offset + len ? offset + len : w + 8;

			if (rand_r(&seed) & 1)
				memcpy(torn + lo, live + (lo - offset), hi - lo);
		}
		image_add(torn);
	}
	free(torn);
	/* The persist completes. */
	memcpy(shadow + offset, live, len);
	if (offset + len > shadow_hi)
		shadow_hi = offset + len;
}

static int cmp_ext(const void *a, const void *b)
{
	const struct ext *x = a, *y = b;

	return x->off < y->off ? -1 : x->off > y->off;
}

static int collect(struct daxpool_extent *e, void *userdata)
{
	struct state *s = userdata;

	CHECK(s->n < SLOTS);
	snprintf(s->e[s->n].name, sizeof(s->e[0].name), "%s", daxpool_extent_get_name(e));
	s->e[s->n].off = daxpool_extent_get_offset(e);
	s->e[s->n].size = daxpool_extent_get_size(e);
	s->n++;
	return 0;
}

static bool state_eq(struct state *a, struct state *b)
{
	if (a->exists != b->exists || a->n != b->n)
		return false;
	qsort(a->e, a->n, sizeof(a->e[0]), cmp_ext);
	qsort(b->e, b->n, sizeof(b->e[0]), cmp_ext);
	for (int i = 0; i < a->n; i++)
		if (strcmp(a->e[i].name, b->e[i].name) || a->e[i].off != b->e[i].off ||
		    a->e[i].size != b->e[i].size)
			return false;
	return true;
}

enum outcome { OUT_BEFORE, OUT_AFTER, OUT_CORRUPT, N_OUT };
static unsigned int outcomes[N_OUT];
static bool during_create;
static unsigned int create_repaired;

/* Open and check one image; compare with the states around the operation. */
static enum outcome judge(struct daxpool_ctx *ctx, const char *path, const uint8_t *bytes,
			  struct state *before, struct state *after)
{
	struct daxpool_region *region;
	struct daxpool_pool *pool;
	struct state got = { 0 };
	int fd, r;

	fd = open(path, O_RDWR | O_CLOEXEC);
	CHECK(fd >= 0);
	CHECK_EQ(pwrite(fd, bytes, SHADOW_SIZE, 0), SHADOW_SIZE);
	close(fd);
	CHECK_OK(daxpool_region_open(ctx, path, DAXPOOL_REGION_RDONLY, &region));
	r = daxpool_pool_check(region, NULL, NULL);
	if (r > 0 && during_create) {
		/*
		 * The header is written as two copies, one after the other: a
		 * cut while the second is written leaves a pool that opens from
		 * the first, with one copy for repair to rewrite. Only while the
		 * create is in flight; never for an alloc or a free.
		 */
		daxpool_region_unref(region);
		CHECK_OK(daxpool_region_open(ctx, path, 0, &region));
		CHECK_EQ(daxpool_pool_repair(region, NULL, NULL), r);
		r = daxpool_pool_check(region, NULL, NULL);
		create_repaired++;
	}
	if (r == -ENOMSG || r == -EBADMSG) {
		/* No pool: right only while the create has not completed. */
		got.exists = false;
	} else if (r != 0) {
		printf("# image: check gave %d\n", r);
		daxpool_region_unref(region);
		return OUT_CORRUPT;
	} else {
		CHECK_OK(daxpool_pool_open(region, DAXPOOL_POOL_RDONLY, &pool));
		got.exists = true;
		CHECK_OK(daxpool_extent_foreach(pool, collect, &got));
		daxpool_pool_unref(pool);
	}
	daxpool_region_unref(region);
	if (state_eq(&got, before))
		return OUT_BEFORE;
	if (state_eq(&got, after))
		return OUT_AFTER;
	printf("# image: %s with %d extent(s); expected %d or %d\n",
	       got.exists ? "a pool" : "no pool", got.n, before->n, after->n);
	return OUT_CORRUPT;
}

static void judge_all(struct daxpool_ctx *ctx, const char *path, struct state *before,
		      struct state *after)
{
	for (size_t i = 0; i < n_images; i++) {
		struct state b = *before, a = *after;

		outcomes[judge(ctx, path, images[i].bytes, &b, &a)]++;
		free(images[i].bytes);
	}
	n_images = 0;
}

TEST_TIMEOUT(every_persist_point_is_all_or_nothing, 600)
{
	struct daxpool_ctx *ctx;
	struct daxpool_region *region;
	struct daxpool_pool_opts *o;
	struct daxpool_pool *pool;
	struct state model = { 0 }, next;
	const char *img;
	unsigned int serial = 0;

	CHECK_OK(daxpool_ctx_new(&ctx));
	CHECK_OK(daxpool_ctx_set_log_priority(ctx, LOG_CRIT));
	CHECK_OK(daxpool_region_open(ctx, fixture_plain_file(REGION_SIZE), 0, &region));
	img = strdup(fixture_plain_file(REGION_SIZE));
	shadow = calloc(1, SHADOW_SIZE); /* the new file is all zeros */
	CHECK(shadow);

	dp_pool_set_persist_hook(hook, NULL);

	CHECK_OK(daxpool_pool_opts_new(&o));
	CHECK_OK(daxpool_pool_opts_set_max_extents(o, SLOTS));
	during_create = true;
	CHECK_OK(daxpool_pool_create(region, "crash", o, &pool));
	daxpool_pool_opts_free(o);
	CHECK(daxpool_pool_get_data_offset(pool) <= SHADOW_SIZE);
	next = model;
	next.exists = true;
	judge_all(ctx, img, &model, &next);
	during_create = false;
	model = next;

	for (int op = 0; op < OPS; op++) {
		struct daxpool_extent *e;

		next = model;
		if (model.n > 0 && (model.n >= SLOTS - 1 || rand_r(&seed) % 3 == 0)) {
			int victim = rand_r(&seed) % model.n;

			CHECK_OK(daxpool_extent_free_by_name(pool, model.e[victim].name, 0, 0));
			next.e[victim] = next.e[--next.n];
		} else {
			struct ext *x = &next.e[next.n++];

			snprintf(x->name, sizeof(x->name), "e%u", serial++);
			CHECK_OK(daxpool_extent_alloc(pool, x->name, (1 + rand_r(&seed) % 8) * 4096,
						      (rand_r(&seed) % 4 == 0) ? 65536 : 0, &e));
			x->off = daxpool_extent_get_offset(e);
			x->size = daxpool_extent_get_size(e);
			daxpool_extent_unref(e);
		}
		judge_all(ctx, img, &model, &next);
		model = next;
	}
	daxpool_pool_unref(pool);
	dp_pool_set_persist_hook(NULL, NULL);

	/* The final shadow is the final state. */
	image_add(shadow);
	judge_all(ctx, img, &model, &model);

	printf("# persist points: %u; images judged: %u (before %u, after %u, corrupt %u); "
	       "create images that needed a header-copy repair: %u\n",
	       points, outcomes[OUT_BEFORE] + outcomes[OUT_AFTER] + outcomes[OUT_CORRUPT],
	       outcomes[OUT_BEFORE], outcomes[OUT_AFTER], outcomes[OUT_CORRUPT], create_repaired);
	CHECK(points >= 100);
	CHECK_EQ(outcomes[OUT_CORRUPT], 0);
	/* Both sides of the commit points were seen. */
	CHECK(outcomes[OUT_BEFORE] > 0 && outcomes[OUT_AFTER] > 0);

	/* The live pool agrees with the model too. */
	{
		struct state live = { .exists = true };

		CHECK_EQ(daxpool_pool_check(region, NULL, NULL), 0);
		CHECK_OK(daxpool_pool_open(region, DAXPOOL_POOL_RDONLY, &pool));
		CHECK_OK(daxpool_extent_foreach(pool, collect, &live));
		daxpool_pool_unref(pool);
		CHECK(state_eq(&live, &model));
	}
	free(shadow);
	free(images);
	free((void *)img);
	daxpool_region_unref(region);
	daxpool_ctx_unref(ctx);
}
