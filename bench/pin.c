/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Row "pin + unpin": daxpool_pin_new() + daxpool_pin_unref() of a 4 KiB range
 * against what it guards, a 4 KiB O_DIRECT read on this machine (a file in
 * the build directory, ext4 here). Goal: the pin costs at most 3% of the read.
 *
 *   pin_unpin_read   a device-read pin (registry insert + remove, call_rcu)
 *   pin_unpin_write  a device-write pin: its unpin also persists the range
 *                    (msync() of one page on a plain file; a cache-line
 *                    flush on DAX)
 *   map_pread_4k     the whole helper: daxpool_map_pread() of 4 KiB O_DIRECT
 *                    into a map, against pread(2) into the same address
 *
 * The map's file lives on tmpfs when there is one, so a persist is a system
 * call and not a disk write; the O_DIRECT file in --dir.
 */
#include <fcntl.h>
#include <sys/stat.h>

#include "bench.h"
#include "daxpool.h"

#define IO_SIZE 4096u
#define FILE_SIZE (64u << 20)
#define MAP_SIZE (2u << 20)

static uint64_t rng = 0x2545f4914f6cdd1dull;

static off_t random_offset(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return (off_t)(rng % (FILE_SIZE / IO_SIZE)) * IO_SIZE;
}

/* Mean ns of a 4 KiB O_DIRECT pread at random offsets into @buf. */
static double run_odirect(int fd, void *buf, long iters)
{
	uint64_t t0 = bench_now_ns();

	for (long i = 0; i < iters; i++)
		if (pread(fd, buf, IO_SIZE, random_offset()) != IO_SIZE)
			bench_die("O_DIRECT pread: %s", strerror(errno));
	return (double)(bench_now_ns() - t0) / (double)iters;
}

static double run_map_pread(struct daxpool_map *map, int fd, void *buf, long iters)
{
	uint64_t t0 = bench_now_ns();

	for (long i = 0; i < iters; i++)
		bench_check(daxpool_map_pread(map, fd, buf, IO_SIZE, random_offset()));
	return (double)(bench_now_ns() - t0) / (double)iters;
}

static double run_pin(struct daxpool_map *map, unsigned int access, long iters)
{
	char *base = daxpool_map_get_address(map);
	uint64_t t0 = bench_now_ns();

	for (long i = 0; i < iters; i++) {
		struct daxpool_pin *pin;

		bench_check(daxpool_pin_new(map, base + (i % (MAP_SIZE / IO_SIZE)) * IO_SIZE,
					    IO_SIZE, DAXPOOL_PIN_TRANSIENT, access, &pin));
		daxpool_pin_unref(pin);
	}
	return (double)(bench_now_ns() - t0) / (double)iters;
}

/* A file of FILE_SIZE bytes of data, written out, opened O_DIRECT; -errno on failure. */
static int make_odirect_file(char **ret_path)
{
	char *path = bench_make_file(NULL, "daxpool-bench-odirect", 0), *chunk;
	int fd = open(path, O_WRONLY);

	*ret_path = path;
	chunk = malloc(1u << 20);
	if (fd < 0 || !chunk)
		bench_die("open %s: %s", path, strerror(errno));
	memset(chunk, 0x5a, 1u << 20);
	for (unsigned int i = 0; i < FILE_SIZE >> 20; i++)
		if (write(fd, chunk, 1u << 20) != 1 << 20)
			bench_die("write %s: %s", path, strerror(errno));
	fsync(fd);
	close(fd);
	free(chunk);
	fd = open(path, O_RDONLY | O_DIRECT);
	return fd < 0 ? -errno : fd;
}

int main(int argc, char **argv)
{
	struct daxpool_ctx *ctx = NULL;
	struct daxpool_region *region = NULL;
	struct daxpool_map *map = NULL;
	long io_iters, pin_iters;
	double *io, *rd, *wr, *mp, *pr, m_io, m_rd, m_wr, m_mp, m_pr;
	char *path, *dpath, note[160];
	void *buf;
	int fd;

	bench_parse(argc, argv);
	bench_pin_cpu(0);
	io_iters = bench.quick ? 100 : 400;
	pin_iters = bench.quick ? 20000 : 100000;
	io = calloc(bench.samples, sizeof(double));
	rd = calloc(bench.samples, sizeof(double));
	wr = calloc(bench.samples, sizeof(double));
	mp = calloc(bench.samples, sizeof(double));
	pr = calloc(bench.samples, sizeof(double));
	if (!io || !rd || !wr || !mp || !pr || posix_memalign(&buf, IO_SIZE, IO_SIZE))
		bench_die("out of memory");

	path = bench_make_file(bench_shm_dir(), "daxpool-bench-pin", MAP_SIZE);
	bench_check(daxpool_ctx_new(&ctx));
	bench_check(daxpool_region_open(ctx, path, 0, &region));
	bench_check(daxpool_map_new(region, 0, 0, 0, &map));
	memset(daxpool_map_get_address(map), 0, MAP_SIZE); /* fault it in */

	fd = make_odirect_file(&dpath);
	if (fd < 0) {
		snprintf(note, sizeof(note), "O_DIRECT open in %s: %s", bench.dir, strerror(-fd));
		bench_skip("pin_unpin_read", "pin + unpin 4 KiB (device read)", note);
		bench_skip("pin_unpin_write", "pin + unpin 4 KiB (device write, persists)", note);
		bench_skip("map_pread_4k", "daxpool_map_pread 4 KiB O_DIRECT", note);
		goto out;
	}

	run_odirect(fd, buf, io_iters / 4);
	run_pin(map, DAXPOOL_PIN_DEVICE_READ, pin_iters / 4);
	run_pin(map, DAXPOOL_PIN_DEVICE_WRITE, pin_iters / 4);
	run_map_pread(map, fd, daxpool_map_get_address(map), io_iters / 4);
	for (int s = 0; s < bench.samples; s++) {
		char *dst = (char *)daxpool_map_get_address(map) + (s % 8) * IO_SIZE;

		/* Alternate the order from sample to sample. */
		if (s % 2) {
			io[s] = run_odirect(fd, buf, io_iters);
			rd[s] = run_pin(map, DAXPOOL_PIN_DEVICE_READ, pin_iters);
			wr[s] = run_pin(map, DAXPOOL_PIN_DEVICE_WRITE, pin_iters);
			pr[s] = run_odirect(fd, dst, io_iters);
			mp[s] = run_map_pread(map, fd, dst, io_iters);
		} else {
			mp[s] = run_map_pread(map, fd, dst, io_iters);
			pr[s] = run_odirect(fd, dst, io_iters);
			wr[s] = run_pin(map, DAXPOOL_PIN_DEVICE_WRITE, pin_iters);
			rd[s] = run_pin(map, DAXPOOL_PIN_DEVICE_READ, pin_iters);
			io[s] = run_odirect(fd, buf, io_iters);
		}
	}
	m_io = bench_median(io, bench.samples);
	m_rd = bench_median(rd, bench.samples);
	m_wr = bench_median(wr, bench.samples);
	m_mp = bench_median(mp, bench.samples);
	m_pr = bench_median(pr, bench.samples);
	bench_result("pin_unpin_read", "pin + unpin 4 KiB (device read)", "ns", m_rd, m_io,
		     "4 KiB O_DIRECT read", m_rd / m_io, "fraction", "le", 0.03, NULL);
	snprintf(note, sizeof(note), "map file on %s: the unpin persists with msync()",
		 bench_shm_dir());
	bench_result("pin_unpin_write", "pin + unpin 4 KiB (device write, persists)", "ns", m_wr,
		     m_io, "4 KiB O_DIRECT read", m_wr / m_io, "fraction", "le", 0.03, note);
	bench_result("map_pread_4k", "daxpool_map_pread 4 KiB O_DIRECT into a map", "ns", m_mp,
		     m_pr, "pread(2) O_DIRECT into the same map", m_mp / m_pr, "ratio", "le", 1.03,
		     note);
	close(fd);
out:
	unlink(dpath);
	free(dpath);
	map = daxpool_map_unref(map);
	region = daxpool_region_unref(region);
	ctx = daxpool_ctx_unref(ctx);
	unlink(path);
	free(path);
	free(buf);
	free(io);
	free(rd);
	free(wr);
	free(mp);
	free(pr);
	return 0;
}
