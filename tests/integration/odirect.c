/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * O_DIRECT through the pinning helpers: real files opened with O_DIRECT, and
 * (in the vm tier) a raw pmem block device. The test program interposes
 * pread(2) and pwrite(2) (the library calls them through the PLT), so it can
 * look at the registry at the exact moment the kernel does the I/O.
 */
#include <dlfcn.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <sys/stat.h>
#include <syslog.h>

#include "daxpool.h"
#include "harness.h"

#define REGION_SIZE (16ull << 20)
#define IO_SIZE (64u << 10)

static struct daxpool_ctx *watched_ctx;
static int seen_pinned = -1, seen_kind_count = -1;
static struct daxpool_region *watched_region;

static void observe(const void *buf, size_t len)
{
	if (!watched_ctx)
		return;
	seen_pinned = daxpool_ctx_is_pinned(watched_ctx, buf, len);
	seen_kind_count = daxpool_region_get_pin_count(watched_region, DAXPOOL_PIN_TRANSIENT);
}

ssize_t pread(int fd, void *buf, size_t len, off_t off)
{
	static ssize_t (*real)(int, void *, size_t, off_t);

	if (!real)
		real = (ssize_t(*)(int, void *, size_t, off_t))dlsym(RTLD_NEXT, "pread");
	observe(buf, len);
	return real(fd, buf, len, off);
}

ssize_t pwrite(int fd, const void *buf, size_t len, off_t off)
{
	static ssize_t (*real)(int, const void *, size_t, off_t);

	if (!real)
		real = (ssize_t(*)(int, const void *, size_t, off_t))dlsym(RTLD_NEXT, "pwrite");
	observe(buf, len);
	return real(fd, buf, len, off);
}

struct fixture {
	struct daxpool_ctx *ctx;
	struct daxpool_region *region;
	struct daxpool_map *map;
	char *base;
};

static struct fixture setup(void)
{
	struct fixture f = { 0 };

	CHECK_OK(daxpool_ctx_new(&f.ctx));
	CHECK_OK(daxpool_ctx_set_log_priority(f.ctx, LOG_CRIT));
	CHECK_OK(daxpool_region_open(f.ctx, fixture_backing(REGION_SIZE), 0, &f.region));
	CHECK_OK(daxpool_map_new(f.region, 0, daxpool_region_get_alignment(f.region) > IO_SIZE * 2
						     ? daxpool_region_get_alignment(f.region)
						     : IO_SIZE * 2,
				 0, &f.map));
	f.base = daxpool_map_get_address(f.map);
	watched_ctx = f.ctx;
	watched_region = f.region;
	return f;
}

static void teardown(struct fixture *f)
{
	watched_ctx = NULL;
	CHECK_EQ(daxpool_region_get_pin_count(f->region, 0), 0);
	daxpool_map_unref(f->map);
	daxpool_region_unref(f->region);
	daxpool_ctx_unref(f->ctx);
}

/* A file opened with O_DIRECT, IO_SIZE * 4 bytes, on a filesystem that allows it. */
static int odirect_file(void)
{
	return fixture_odirect_file(IO_SIZE * 4);
}

TEST(pread_pins_the_destination_for_the_io_and_persists)
{
	struct fixture f = setup();
	int fd = odirect_file();
	ssize_t n;

	n = daxpool_map_pread(f.map, fd, f.base, IO_SIZE, 0);
	CHECK_EQ(n, IO_SIZE);
	CHECK_EQ(seen_pinned, 1);
	CHECK_EQ(seen_kind_count, 1);
	CHECK_EQ(daxpool_ctx_is_pinned(f.ctx, f.base, IO_SIZE), 0);
	close(fd);
	teardown(&f);
}

TEST(pwrite_then_pread_round_trip)
{
	struct fixture f = setup();
	int fd = odirect_file();

	for (unsigned i = 0; i < IO_SIZE; i++)
		f.base[i] = (char)(i * 13 + 1);
	CHECK_EQ(daxpool_map_pwrite(f.map, fd, f.base, IO_SIZE, IO_SIZE), IO_SIZE);
	CHECK_EQ(seen_pinned, 1);
	CHECK_EQ(daxpool_map_pread(f.map, fd, f.base + IO_SIZE, IO_SIZE, IO_SIZE), IO_SIZE);
	CHECK(memcmp(f.base, f.base + IO_SIZE, IO_SIZE) == 0);
	/* At the end of the file: short. */
	CHECK_EQ(daxpool_map_pread(f.map, fd, f.base, IO_SIZE, 4 * IO_SIZE - 4096), 4096);
	CHECK_EQ(daxpool_map_pread(f.map, fd, f.base, IO_SIZE, 4 * IO_SIZE), 0);
	close(fd);
	teardown(&f);
}

TEST(errors_leave_no_pin)
{
	struct fixture f = setup();
	int fd = odirect_file();

	CHECK_ERR(daxpool_map_pread(f.map, 9999, f.base, IO_SIZE, 0), EBADF);
	CHECK_ERR(daxpool_map_pread(f.map, -1, f.base, IO_SIZE, 0), EBADF);
	CHECK_ERR(daxpool_map_pread(f.map, fd, f.base, IO_SIZE, -1), EINVAL);
	CHECK_ERR(daxpool_map_pread(f.map, fd, f.base - 4096, 4096, 0), EFAULT);
	CHECK_ERR(daxpool_map_pwrite(NULL, fd, f.base, 4096, 0), EINVAL);
	CHECK_EQ(daxpool_map_pread(f.map, fd, f.base, 0, 0), 0);
	CHECK_EQ(daxpool_region_get_pin_count(f.region, 0), 0);
	close(fd);
	teardown(&f);
}

TEST(zapped_map_refuses_io)
{
	struct fixture f = setup();
	int fd = odirect_file();

	CHECK(daxpool_region_zap(f.region) >= 1);
	seen_pinned = -1;
	CHECK_ERR(daxpool_map_pread(f.map, fd, f.base, IO_SIZE, 0), ENXIO);
	CHECK_EQ(seen_pinned, -1); /* no I/O was issued */
	close(fd);
	teardown(&f);
}

/* vm tier: O_DIRECT between a raw pmem block device and a devdax or fsdax map. */
TEST(raw_pmem_block_device_to_and_from_the_map)
{
	const char *dev = getenv("DAXPOOL_TEST_PMEM_BLOCK");
	struct fixture f;
	int fd;

	if (!dev || !*dev)
		fixture_missing("a raw pmem block device (DAXPOOL_TEST_PMEM_BLOCK)");
	f = setup();
	fd = open(dev, O_RDWR | O_DIRECT | O_CLOEXEC);
	CHECK(fd >= 0);
	for (unsigned i = 0; i < IO_SIZE; i++)
		f.base[i] = (char)(i ^ 0x5a);
	CHECK_EQ(daxpool_map_pwrite(f.map, fd, f.base, IO_SIZE, 0), IO_SIZE);
	CHECK_EQ(daxpool_map_pread(f.map, fd, f.base + IO_SIZE, IO_SIZE, 0), IO_SIZE);
	CHECK(memcmp(f.base, f.base + IO_SIZE, IO_SIZE) == 0);
	close(fd);
	teardown(&f);
}
