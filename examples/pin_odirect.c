/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * pin_odirect: read a file with O_DIRECT straight into DAX memory, pinned for
 * the I/O, then give the memory back the daxpool way: zap, wait, release.
 *
 *   pin_odirect [REGION [FILE]]
 *
 * REGION is a device-dax device (/dev/daxX.Y), a file on a DAX mount, or any
 * file (default: a 16 MiB temporary file in $TMPDIR). FILE is read with
 * O_DIRECT (default: a temporary file in $TMPDIR, filled with a pattern that
 * is checked after the read).
 *
 * Build: cc -o pin_odirect pin_odirect.c $(pkg-config --cflags --libs daxpool)
 * Exit status: 0 done; 1 an error; 77 the file system of FILE refuses O_DIRECT.
 */
#define _GNU_SOURCE /* O_DIRECT */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <daxpool.h>

#define REGION_SIZE (16u << 20)
#define IO_SIZE (1u << 20) /* a multiple of any O_DIRECT block size */

/* A temporary file of @size bytes in $TMPDIR; its name goes to @path. */
static int make_temp(char *path, size_t len, const char *name, size_t size, int fill)
{
	const char *tmp = getenv("TMPDIR");
	char buf[4096];
	int fd, r = 0;

	snprintf(path, len, "%s/%s-XXXXXX", tmp && *tmp ? tmp : "/tmp", name);
	fd = mkstemp(path);
	if (fd < 0)
		return -errno;
	if (ftruncate(fd, (off_t)size) < 0)
		r = -errno;
	for (size_t off = 0; fill && !r && off < size; off += sizeof(buf)) {
		for (size_t i = 0; i < sizeof(buf); i++)
			buf[i] = (char)((off + i) % 251);
		if (pwrite(fd, buf, sizeof(buf), (off_t)off) != (ssize_t)sizeof(buf))
			r = errno ? -errno : -EIO;
	}
	close(fd);
	if (r < 0)
		unlink(path);
	return r;
}

int main(int argc, char **argv)
{
	char region_path[4096], file_path[4096], *report = NULL;
	struct daxpool_ctx *ctx = NULL;
	struct daxpool_region *region = NULL;
	struct daxpool_map *map = NULL;
	int temp_region = argc < 2, temp_file = argc < 3;
	int fd = -1, r, rc = 1;
	uint64_t length;
	ssize_t n;
	char *dst;

	if (temp_region) {
		r = make_temp(region_path, sizeof(region_path), "pin_odirect-region", REGION_SIZE, 0);
		if (r < 0) {
			fprintf(stderr, "pin_odirect: cannot create a region file: %s\n", strerror(-r));
			return 1;
		}
	} else {
		snprintf(region_path, sizeof(region_path), "%s", argv[1]);
	}
	if (temp_file) {
		r = make_temp(file_path, sizeof(file_path), "pin_odirect-data", IO_SIZE, 1);
		if (r < 0) {
			fprintf(stderr, "pin_odirect: cannot create a data file: %s\n", strerror(-r));
			goto out;
		}
	} else {
		snprintf(file_path, sizeof(file_path), "%s", argv[2]);
	}

	fd = open(file_path, O_RDONLY | O_DIRECT | O_CLOEXEC);
	if (fd < 0 && errno == EINVAL) {
		fprintf(stderr, "pin_odirect: the file system of %s refuses O_DIRECT\n", file_path);
		rc = 77;
		goto out;
	}
	if (fd < 0) {
		fprintf(stderr, "pin_odirect: %s: %s\n", file_path, strerror(errno));
		goto out;
	}

	/* 1. A context, the region, and a map of its first IO_SIZE bytes (at
	 * least one alignment unit: 2 MiB or 1 GiB on some devdax devices). */
	r = daxpool_ctx_new(&ctx);
	if (r < 0)
		goto fail;
	r = daxpool_region_open(ctx, region_path, 0, &region);
	if (r < 0)
		goto fail;
	length = daxpool_region_get_alignment(region);
	if (length < IO_SIZE)
		length = IO_SIZE;
	r = daxpool_map_new(region, 0, length, 0, &map);
	if (r < 0)
		goto fail;
	daxpool_map_set_tag(map, "pin_odirect main thread");
	dst = daxpool_map_get_address(map);
	printf("1. %s region %s, mapped %llu bytes at %p\n",
	       daxpool_region_kind_name(daxpool_region_get_kind(region)), region_path,
	       (unsigned long long)length, (void *)dst);

	/* 2. The read: the destination is pinned (TRANSIENT, device write) for
	 * exactly the duration of the pread(2), so a zap or a lookup during the
	 * I/O sees it; the unpin persists what the device wrote. */
	n = daxpool_map_pread(map, fd, dst, IO_SIZE, 0);
	if (n < 0) {
		r = (int)n;
		goto fail;
	}
	printf("2. read %zd bytes with O_DIRECT into the map; pins left after the read: %d\n", n,
	       daxpool_region_get_pin_count(region, 0));
	if (temp_file) {
		for (ssize_t i = 0; i < n; i++) {
			if (dst[i] != (char)(i % 251)) {
				fprintf(stderr, "pin_odirect: byte %zd differs from the file\n", i);
				goto out;
			}
		}
		printf("   the data matches the file\n");
	}

	/* 3. Give the region back: zap (new maps and pins fail with -ENXIO; our
	 * map is revoked), see who still holds it, drop our map, wait, release. */
	r = daxpool_region_zap(region);
	if (r < 0)
		goto fail;
	printf("3. zapped: %d map(s)/pin(s) revoked; map valid: %d\n", r, daxpool_map_is_valid(map));
	r = daxpool_region_wait_idle(region, 0, &report);
	if (r == -ETIMEDOUT && report) {
		printf("   still held:\n%s", report);
		free(report);
	}
	map = daxpool_map_unref(map);
	r = daxpool_region_wait_idle(region, 5000, NULL);
	if (r < 0)
		goto fail;
	r = daxpool_region_release(region);
	if (r < 0)
		goto fail;
	printf("4. idle and released: state %s\n",
	       daxpool_state_name(daxpool_region_get_state(region)));
	rc = 0;
	goto out;

fail:
	fprintf(stderr, "pin_odirect: %s\n", strerror(-r));
out:
	if (fd >= 0)
		close(fd);
	daxpool_map_unref(map);
	daxpool_region_unref(region);
	daxpool_ctx_unref(ctx);
	if (temp_file)
		unlink(file_path);
	if (temp_region)
		unlink(region_path);
	return rc;
}
