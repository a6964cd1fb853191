/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Pools survive a power cut (the vm tier: tests/vm/run --powercut-test
 * pool_powercut:devdax or :fsdax-ext4 / :fsdax-xfs).
 *
 * Phase 1 creates a pool on the backing and allocates extents "ext-0",
 * "ext-1", ... one after the other, each filled with its own pattern and
 * persisted before the next. After COMMITTED of them it prints the line
 * DAXPOOL_POWERCUT, and goes on allocating (and freeing every third) until
 * the host kills the machine, so the cut lands in the middle of the
 * workload. Phase 2, in the next boot, opens the pool and checks it: the
 * check passes, the first COMMITTED extents are there with their data, and
 * what exists is exactly what the order of the workload allows (every alloc
 * and free wholly there or wholly absent).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <unistd.h>

#include <daxpool.h>

#define COMMITTED 40
#define EXTENT_SIZE (64u << 10)
#define FILE_SIZE (256ull << 20)

static int failures;

#define EXPECT(cond, ...)                                                                          \
	do {                                                                                       \
		if (cond) {                                                                        \
			printf("ok - " __VA_ARGS__);                                               \
		} else {                                                                           \
			printf("not ok - " __VA_ARGS__);                                           \
			failures++;                                                                \
		}                                                                                  \
		printf("\n");                                                                      \
	} while (0)

static const char *backing_path(int phase, char *buf, size_t len)
{
	const char *backing = getenv("DAXPOOL_TEST_BACKING");
	const char *dir = getenv("DAXPOOL_TEST_FSDAX_DIR");
	int fd;

	if (backing && !strcmp(backing, "devdax"))
		return getenv("DAXPOOL_TEST_DEVDAX");
	if (!backing || strcmp(backing, "fsdax") || !dir)
		return NULL;
	snprintf(buf, len, "%s/daxpool-powercut.pool", dir);
	if (phase == 1) {
		fd = open(buf, O_RDWR | O_CREAT | O_TRUNC, 0600);
		if (fd < 0 || ftruncate(fd, (off_t)FILE_SIZE) < 0 || fsync(fd) < 0)
			return NULL;
		close(fd);
		/* The file's size and blocks must survive the cut: make its directory durable too. */
		fd = open(dir, O_RDONLY | O_DIRECTORY);
		if (fd >= 0) {
			fsync(fd);
			close(fd);
		}
	}
	return buf;
}

static unsigned char pattern(unsigned int i)
{
	return (unsigned char)(0x40 + i % 61);
}

static int alloc_one(struct daxpool_pool *pool, unsigned int i)
{
	struct daxpool_extent *ext;
	struct daxpool_map *map;
	char name[32];
	int r;

	snprintf(name, sizeof(name), "ext-%u", i);
	r = daxpool_extent_alloc(pool, name, EXTENT_SIZE, 0, &ext);
	if (r < 0)
		return r;
	r = daxpool_extent_map(ext, 0, &map);
	if (r == 0) {
		r = daxpool_map_memset(map, daxpool_map_get_address(map), pattern(i), EXTENT_SIZE, 0);
		daxpool_map_unref(map);
	}
	daxpool_extent_unref(ext);
	return r;
}

static int phase1(struct daxpool_region *region)
{
	struct daxpool_pool *pool;
	int r = daxpool_pool_create(region, "powercut", NULL, &pool);

	if (r < 0) {
		printf("not ok - create: %s\n", strerror(-r));
		return 1;
	}
	for (unsigned int i = 0;; i++) {
		r = alloc_one(pool, i);
		if (r == -ENOSPC) {
			/* Full: free the oldest third and go on. */
			char name[32];

			for (unsigned int j = 0; j < i; j += 3) {
				snprintf(name, sizeof(name), "ext-%u", j);
				if (j >= COMMITTED)
					daxpool_extent_free_by_name(pool, name, 1000, 0);
			}
			continue;
		}
		if (r < 0) {
			printf("not ok - alloc ext-%u: %s\n", i, strerror(-r));
			return 1;
		}
		if (i == COMMITTED - 1) {
			printf("ok - %d extents allocated and persisted\nDAXPOOL_POWERCUT\n", COMMITTED);
			fflush(stdout);
		}
	}
}

struct seen {
	struct daxpool_map *maps;
	unsigned int count, bad_data;
	unsigned int committed_present;
};

static int visit(struct daxpool_extent *ext, void *userdata)
{
	struct seen *s = userdata;
	struct daxpool_map *map;
	unsigned int i;
	unsigned char *p;

	s->count++;
	if (sscanf(daxpool_extent_get_name(ext), "ext-%u", &i) != 1)
		return 0;
	if (i >= COMMITTED)
		return 0;
	s->committed_present++;
	if (daxpool_extent_map(ext, DAXPOOL_MAP_RDONLY, &map) < 0) {
		s->bad_data++;
		return 0;
	}
	p = daxpool_map_get_address(map);
	if (p[0] != pattern(i) || p[EXTENT_SIZE - 1] != pattern(i))
		s->bad_data++;
	daxpool_map_unref(map);
	return 0;
}

static void problem(struct daxpool_region *region, const char *where, int err, const char *message,
		    int repaired, void *userdata)
{
	printf("# check: %s: %s (%s)\n", where, message, strerror(err));
}

static int phase2(struct daxpool_region *region)
{
	struct seen s = { 0 };
	struct daxpool_pool *pool;
	int r;

	r = daxpool_pool_check(region, problem, NULL);
	EXPECT(r == 0, "the pool's check passes after the power cut (%d)", r);
	r = daxpool_pool_open(region, DAXPOOL_POOL_RDONLY, &pool);
	EXPECT(r == 0, "the pool opens (%s)", r < 0 ? strerror(-r) : "ok");
	if (r < 0)
		return 1;
	r = daxpool_extent_foreach(pool, visit, &s);
	EXPECT(r == 0, "every extent can be listed");
	EXPECT(s.committed_present == COMMITTED, "all %d extents completed before the cut are there (%u)",
	       COMMITTED, s.committed_present);
	EXPECT(s.bad_data == 0, "their data is intact (%u bad)", s.bad_data);
	printf("# %u extents in the pool after the cut\n", s.count);
	daxpool_pool_unref(pool);
	return failures ? 1 : 0;
}

int main(int argc, char **argv)
{
	struct daxpool_region *region;
	struct daxpool_ctx *ctx;
	char buf[4096];
	const char *path;
	int phase = 0, r;

	for (int i = 1; i < argc; i++)
		if (!strncmp(argv[i], "--phase=", 8))
			phase = atoi(argv[i] + 8);
	if (phase != 1 && phase != 2) {
		printf("SKIP: a two-boot power-cut test: tests/vm/run --powercut-test pool_powercut:LABEL\n");
		return 77;
	}
	path = backing_path(phase, buf, sizeof(buf));
	if (!path) {
		printf("not ok - no devdax or fsdax backing in the environment\n");
		return 1;
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (daxpool_ctx_new(&ctx) < 0)
		return 1;
	r = daxpool_region_open(ctx, path, phase == 2 ? DAXPOOL_REGION_RDONLY : 0, &region);
	if (r < 0) {
		printf("not ok - open %s: %s\n", path, strerror(-r));
		return 1;
	}
	printf("# phase %d on %s (%s)\n", phase, path,
	       daxpool_region_kind_name(daxpool_region_get_kind(region)));
	r = phase == 1 ? phase1(region) : phase2(region);
	daxpool_region_unref(region);
	daxpool_ctx_unref(ctx);
	return r;
}
