/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Regions: kind detection, description, and every way to open one wrongly. */
#include <dirent.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <sys/stat.h>

#include <syslog.h>

#include "daxpool.h"
#include "harness.h"

#define REGION_SIZE (64ull << 20)

static struct daxpool_ctx *ctx_quiet(void)
{
	struct daxpool_ctx *ctx;

	CHECK_OK(daxpool_ctx_new(&ctx));
	/* Misuse tests log errors on purpose; keep the output readable. */
	CHECK_OK(daxpool_ctx_set_log_priority(ctx, LOG_CRIT));
	return ctx;
}

/* A file is no namespace's and no CXL region's, and says so. */
static void check_not_cxl(struct daxpool_region *region)
{
	unsigned int ways = 7;

	CHECK_ERR(daxpool_region_is_cxl(region), ENODATA);
	CHECK(daxpool_region_get_cxl_why(region) && strstr(daxpool_region_get_cxl_why(region),
							     "not a device-dax device"));
	CHECK(daxpool_region_get_cxl_region(region) == NULL);
	CHECK(daxpool_region_get_cxl_decoder(region) == NULL);
	CHECK(daxpool_region_get_cxl_memdevs(region) == NULL);
	CHECK_ERR(daxpool_region_get_cxl_interleave(region, &ways, NULL), ENODATA);
	CHECK_EQ(ways, 7);
	CHECK(daxpool_region_get_namespace(region) == NULL);
	CHECK(daxpool_region_get_memmap(region) == NULL);
}

/*
 * A devdax device: its namespace and map mode from libndctl; CXL or not
 * (the vm tier's NVDIMM is not: 0, or -EOPNOTSUPP without libcxl), and a
 * reason whenever it is not described as CXL.
 */
static void check_devdax_topology(struct daxpool_region *region)
{
	int cxl = daxpool_region_is_cxl(region);
	unsigned int ways = 0, granularity = 0;

	CHECK(daxpool_region_get_namespace(region) &&
	      strncmp(daxpool_region_get_namespace(region), "namespace", 9) == 0);
	CHECK(daxpool_region_get_memmap(region));
	CHECK(cxl == 0 || cxl == 1 || cxl == -EOPNOTSUPP);
	if (cxl == 1) {
		CHECK(daxpool_region_get_cxl_why(region) == NULL);
		CHECK(daxpool_region_get_cxl_region(region));
		CHECK(daxpool_region_get_cxl_decoder(region));
		CHECK(daxpool_region_get_cxl_memdevs(region));
		CHECK_OK(daxpool_region_get_cxl_interleave(region, &ways, &granularity));
		CHECK(ways >= 1 && granularity >= 256);
	} else {
		CHECK(daxpool_region_get_cxl_why(region));
		CHECK(daxpool_region_get_cxl_region(region) == NULL);
		if (getenv("DAXPOOL_TEST_TIER") && strcmp(getenv("DAXPOOL_TEST_TIER"), "vm") == 0)
			CHECK(strstr(daxpool_region_get_cxl_why(region), "no CXL region") ||
			      strstr(daxpool_region_get_cxl_why(region), "without libcxl"));
	}
}

TEST(open_describes_the_backing)
{
	struct daxpool_ctx *ctx = ctx_quiet();
	const char *path = fixture_backing(REGION_SIZE);
	struct daxpool_region *region = NULL;
	uint64_t align;

	CHECK_OK(daxpool_region_open(ctx, path, 0, &region));
	align = daxpool_region_get_alignment(region);
	CHECK(align >= 4096 && (align & (align - 1)) == 0);
	CHECK(daxpool_region_get_size(region) > 0);
	CHECK_EQ(daxpool_region_get_size(region) % align, 0);
	CHECK(strcmp(daxpool_region_get_path(region), path) == 0);
	CHECK(daxpool_region_get_ctx(region) == ctx);
	CHECK_EQ(daxpool_region_get_state(region), DAXPOOL_STATE_LIVE);
	CHECK_EQ(daxpool_region_get_generation(region), 1);
	CHECK_EQ(daxpool_region_get_map_count(region), 0);

	switch (fixture_backing_kind()) {
	case FIXTURE_FILE:
		CHECK_EQ(daxpool_region_get_kind(region), DAXPOOL_REGION_FILE);
		CHECK_EQ(daxpool_region_is_dax(region), 0);
		CHECK_EQ(daxpool_region_get_size(region), REGION_SIZE);
		CHECK_EQ(daxpool_region_get_granularity(region), DAXPOOL_GRANULARITY_PAGE);
		CHECK(daxpool_region_get_devname(region) == NULL);
		CHECK_ERR(daxpool_region_get_numa_node(region), ENODATA);
		check_not_cxl(region);
		break;
	case FIXTURE_FSDAX:
		CHECK_EQ(daxpool_region_get_kind(region), DAXPOOL_REGION_FSDAX);
		CHECK_EQ(daxpool_region_is_dax(region), 1);
		CHECK_EQ(daxpool_region_get_size(region), REGION_SIZE);
		CHECK(daxpool_region_get_granularity(region) != DAXPOOL_GRANULARITY_PAGE);
		CHECK(daxpool_region_get_devname(region) == NULL);
		check_not_cxl(region);
		break;
	case FIXTURE_DEVDAX: {
		char real[PATH_MAX];

		CHECK_EQ(daxpool_region_get_kind(region), DAXPOOL_REGION_DEVDAX);
		CHECK_EQ(daxpool_region_is_dax(region), 1);
		CHECK(realpath(path, real));
		CHECK(daxpool_region_get_devname(region));
		CHECK(strcmp(daxpool_region_get_devname(region), basename(real)) == 0);
		CHECK(daxpool_region_get_granularity(region) != DAXPOOL_GRANULARITY_PAGE);
		int node = daxpool_region_get_numa_node(region);
		CHECK(node >= 0 || node == -ENODATA);
		check_devdax_topology(region);
		break;
	}
	}
	CHECK(daxpool_region_unref(region) == NULL);
	daxpool_ctx_unref(ctx);
}

TEST(kind_and_granularity_names)
{
	CHECK(strcmp(daxpool_region_kind_name(DAXPOOL_REGION_FILE), "file") == 0);
	CHECK(strcmp(daxpool_region_kind_name(DAXPOOL_REGION_FSDAX), "fsdax") == 0);
	CHECK(strcmp(daxpool_region_kind_name(DAXPOOL_REGION_DEVDAX), "devdax") == 0);
	CHECK(daxpool_region_kind_name(0) == NULL);
	CHECK(strcmp(daxpool_granularity_name(DAXPOOL_GRANULARITY_CACHE_LINE), "cache-line") == 0);
	CHECK(daxpool_granularity_name(99) == NULL);
	CHECK(strcmp(daxpool_state_name(DAXPOOL_STATE_IDLE), "idle") == 0);
	CHECK(daxpool_state_name(0) == NULL);
}

TEST(null_and_bad_arguments)
{
	struct daxpool_ctx *ctx = ctx_quiet();
	struct daxpool_region *region = NULL;
	const char *path = fixture_plain_file(1 << 20);

	CHECK_ERR(daxpool_region_open(NULL, path, 0, &region), EINVAL);
	CHECK_ERR(daxpool_region_open(ctx, NULL, 0, &region), EINVAL);
	CHECK_ERR(daxpool_region_open(ctx, "", 0, &region), EINVAL);
	CHECK_ERR(daxpool_region_open(ctx, path, 0, NULL), EINVAL);
	CHECK_ERR(daxpool_region_open(ctx, path, 0x80, &region), EINVAL);
	CHECK(region == NULL);
	CHECK_ERR(daxpool_region_is_cxl(NULL), EINVAL);
	CHECK_ERR(daxpool_region_get_cxl_interleave(NULL, NULL, NULL), EINVAL);
	CHECK(daxpool_region_get_cxl_why(NULL) == NULL && daxpool_region_get_cxl_region(NULL) == NULL);
	CHECK(daxpool_region_get_namespace(NULL) == NULL && daxpool_region_get_memmap(NULL) == NULL);
	CHECK(daxpool_region_unref(NULL) == NULL);
	CHECK(daxpool_region_ref(NULL) == NULL);
	CHECK_ERR(daxpool_region_get_kind(NULL), EINVAL);
	CHECK_EQ(daxpool_region_get_size(NULL), 0);
	CHECK(daxpool_region_get_path(NULL) == NULL);
	CHECK_ERR(daxpool_region_get_state(NULL), EINVAL);
	CHECK_ERR(daxpool_region_zap(NULL), EINVAL);
	CHECK_ERR(daxpool_region_wait_idle(NULL, 0, NULL), EINVAL);
	CHECK_ERR(daxpool_region_release(NULL), EINVAL);
	daxpool_ctx_unref(ctx);
}

TEST(missing_path)
{
	struct daxpool_ctx *ctx = ctx_quiet();
	struct daxpool_region *region = NULL;
	char path[PATH_MAX];

	snprintf(path, sizeof(path), "%s/does-not-exist", fixture_dir());
	CHECK_ERR(daxpool_region_open(ctx, path, 0, &region), ENOENT);
	CHECK(region == NULL);
	daxpool_ctx_unref(ctx);
}

TEST(directory)
{
	struct daxpool_ctx *ctx = ctx_quiet();
	struct daxpool_region *region = NULL;

	CHECK_ERR(daxpool_region_open(ctx, fixture_dir(), 0, &region), EISDIR);
	CHECK_ERR(daxpool_region_open(ctx, fixture_dir(), DAXPOOL_REGION_RDONLY, &region), EISDIR);
	CHECK(region == NULL);
	daxpool_ctx_unref(ctx);
}

TEST(empty_file)
{
	struct daxpool_ctx *ctx = ctx_quiet();
	struct daxpool_region *region = NULL;

	CHECK_ERR(daxpool_region_open(ctx, fixture_plain_file(0), 0, &region), EINVAL);
	CHECK(region == NULL);
	daxpool_ctx_unref(ctx);
}

TEST(file_smaller_than_a_page)
{
	struct daxpool_ctx *ctx = ctx_quiet();
	struct daxpool_region *region = NULL;

	CHECK_ERR(daxpool_region_open(ctx, fixture_plain_file(100), 0, &region), EMSGSIZE);
	CHECK(region == NULL);
	daxpool_ctx_unref(ctx);
}

TEST(partial_last_page_is_not_usable)
{
	struct daxpool_ctx *ctx = ctx_quiet();
	struct daxpool_region *region = NULL;
	long page = sysconf(_SC_PAGESIZE);

	CHECK_OK(daxpool_region_open(ctx, fixture_plain_file((uint64_t)page * 3 + 100), 0, &region));
	CHECK_EQ(daxpool_region_get_size(region), page * 3);
	daxpool_region_unref(region);
	daxpool_ctx_unref(ctx);
}

TEST(fifo_is_refused)
{
	struct daxpool_ctx *ctx = ctx_quiet();
	struct daxpool_region *region = NULL;
	char path[PATH_MAX];

	snprintf(path, sizeof(path), "%s/fifo", fixture_dir());
	CHECK_EQ(mkfifo(path, 0600), 0);
	/* Must not block in open(): a FIFO is refused before it is opened. */
	CHECK_ERR(daxpool_region_open(ctx, path, DAXPOOL_REGION_RDONLY, &region), EOPNOTSUPP);
	CHECK(region == NULL);
	daxpool_ctx_unref(ctx);
}

TEST(char_device_that_is_not_dax)
{
	struct daxpool_ctx *ctx = ctx_quiet();
	struct daxpool_region *region = NULL;

	CHECK_ERR(daxpool_region_open(ctx, "/dev/null", 0, &region), ENODEV);
	CHECK_ERR(daxpool_region_open(ctx, "/dev/zero", DAXPOOL_REGION_RDONLY, &region), ENODEV);
	CHECK(region == NULL);
	daxpool_ctx_unref(ctx);
}

TEST(block_device_is_refused)
{
	struct daxpool_ctx *ctx = ctx_quiet();
	struct daxpool_region *region = NULL;
	char path[PATH_MAX] = "";
	struct dirent *de;
	struct stat st;
	DIR *d = opendir("/dev");

	CHECK(d);
	while ((de = readdir(d))) {
		snprintf(path, sizeof(path), "/dev/%s", de->d_name);
		if (stat(path, &st) == 0 && S_ISBLK(st.st_mode))
			break;
		path[0] = '\0';
	}
	closedir(d);
	if (!path[0])
		SKIP("no block device node in /dev");
	CHECK_ERR(daxpool_region_open(ctx, path, DAXPOOL_REGION_RDONLY, &region), EOPNOTSUPP);
	CHECK(region == NULL);
	daxpool_ctx_unref(ctx);
}

TEST(read_only_region)
{
	struct daxpool_ctx *ctx = ctx_quiet();
	const char *path = fixture_backing(REGION_SIZE);
	struct daxpool_region *region = NULL;
	struct daxpool_map *map = NULL;

	CHECK_OK(daxpool_region_open(ctx, path, DAXPOOL_REGION_RDONLY, &region));
	CHECK_ERR(daxpool_map_new(region, 0, 0, 0, &map), EACCES);
	CHECK_OK(daxpool_map_new(region, 0, 0, DAXPOOL_MAP_RDONLY, &map));
	CHECK_ERR(daxpool_map_memset(map, daxpool_map_get_address(map), 0, 1, 0), EACCES);
	(void)*(volatile char *)daxpool_map_get_address(map);
	daxpool_map_unref(map);
	daxpool_region_unref(region);
	daxpool_ctx_unref(ctx);
}

TEST(region_outlives_caller_reference_while_mapped)
{
	struct daxpool_ctx *ctx = ctx_quiet();
	const char *path = fixture_backing(REGION_SIZE);
	struct daxpool_region *region = NULL;
	struct daxpool_map *map = NULL;

	CHECK_OK(daxpool_region_open(ctx, path, 0, &region));
	CHECK_OK(daxpool_map_new(region, 0, daxpool_region_get_alignment(region), 0, &map));
	daxpool_region_unref(region); /* the map still holds it */
	CHECK(daxpool_map_get_region(map) == region);
	CHECK_EQ(daxpool_region_get_map_count(region), 1);
	CHECK_OK(daxpool_map_memset(map, daxpool_map_get_address(map), 0x5a, 64, 0));
	daxpool_map_unref(map); /* frees the region too */
	daxpool_ctx_unref(ctx);
}
