/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Regions shared between real processes, and faults confined to one test. */
#include <signal.h>
#include <sys/wait.h>

#include "daxpool.h"
#include "harness.h"

#define REGION_SIZE (16ull << 20)

static void open_and_map(const char *path, struct daxpool_ctx **ctx, struct daxpool_region **region,
			 struct daxpool_map **map)
{
	CHECK_OK(daxpool_ctx_new(ctx));
	CHECK_OK(daxpool_region_open(*ctx, path, 0, region));
	CHECK_OK(daxpool_map_new(*region, 0, daxpool_region_get_alignment(*region), 0, map));
}

static void close_all(struct daxpool_ctx *ctx, struct daxpool_region *region, struct daxpool_map *map)
{
	daxpool_map_unref(map);
	daxpool_region_unref(region);
	daxpool_ctx_unref(ctx);
}

TEST(writes_of_one_process_reach_another)
{
	const char *path = fixture_backing(REGION_SIZE);
	struct daxpool_region *region;
	struct daxpool_map *map;
	struct daxpool_ctx *ctx;
	int to_child[2], to_parent[2], status;
	char c;
	pid_t pid;

	CHECK_EQ(pipe(to_child), 0);
	CHECK_EQ(pipe(to_parent), 0);
	pid = fork();
	CHECK(pid >= 0);
	if (pid == 0) {
		/* A separate process with its own context, region and map. */
		open_and_map(path, &ctx, &region, &map);
		char *p = daxpool_map_get_address(map);
		static const char msg[] = "written by the child";
		if (daxpool_map_memcpy(map, p + 128, msg, sizeof(msg), 0) < 0)
			_exit(2);
		if (write(to_parent[1], "w", 1) != 1 || read(to_child[0], &c, 1) != 1)
			_exit(3);
		/* The parent's answer is in the shared mapping. */
		_exit(strcmp(p + 256, "answered by the parent") == 0 ? 0 : 4);
	}
	open_and_map(path, &ctx, &region, &map);
	char *p = daxpool_map_get_address(map);
	CHECK_EQ(read(to_parent[0], &c, 1), 1);
	CHECK(strcmp(p + 128, "written by the child") == 0);
	static const char answer[] = "answered by the parent";
	CHECK_OK(daxpool_map_memcpy(map, p + 256, answer, sizeof(answer), 0));
	CHECK_EQ(write(to_child[1], "a", 1), 1);
	CHECK_EQ(waitpid(pid, &status, 0), pid);
	CHECK(WIFEXITED(status));
	CHECK_EQ(WEXITSTATUS(status), 0);
	close_all(ctx, region, map);
}

TEST(a_process_that_dies_holding_a_map_harms_nobody)
{
	const char *path = fixture_backing(REGION_SIZE);
	struct daxpool_region *region;
	struct daxpool_map *map;
	struct daxpool_ctx *ctx;
	int status;
	pid_t pid;

	pid = fork();
	CHECK(pid >= 0);
	if (pid == 0) {
		open_and_map(path, &ctx, &region, &map);
		memset(daxpool_map_get_address(map), 0x11, 4096);
		raise(SIGKILL);
	}
	CHECK_EQ(waitpid(pid, &status, 0), pid);
	CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
	open_and_map(path, &ctx, &region, &map);
	CHECK_EQ(((unsigned char *)daxpool_map_get_address(map))[4095], 0x11);
	CHECK_EQ(daxpool_region_get_map_count(region), 1);
	close_all(ctx, region, map);
}

/*
 * A mapping whose file was truncated underneath faults with SIGBUS: the
 * harness confines it to this test (and the test expects it).
 */
TEST_SIGNAL(truncated_backing_faults_only_this_test, SIGBUS)
{
	const char *path = fixture_plain_file(REGION_SIZE);
	struct daxpool_region *region;
	struct daxpool_map *map;
	struct daxpool_ctx *ctx;

	/*
	 * The file changes under the map without daxpool knowing: no lease (with
	 * one, this thread's own truncate would wait for its own map to drain;
	 * tests/integration/lease.c covers that side).
	 */
	CHECK_OK(daxpool_ctx_new(&ctx));
	CHECK_OK(daxpool_ctx_set_leases(ctx, 0));
	CHECK_OK(daxpool_region_open(ctx, path, 0, &region));
	CHECK_OK(daxpool_map_new(region, 0, daxpool_region_get_alignment(region), 0, &map));
	CHECK_EQ(truncate(path, 0), 0);
	*(volatile char *)daxpool_map_get_address(map) = 1;
	printf("# no SIGBUS after the truncate\n");
}
