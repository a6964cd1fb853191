/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * What backs a region: a device-dax character device, a file on a DAX mount, or
 * a plain file. Found from the kernel (sysfs, statx) and described through
 * libdaxctl and libpmem2.
 */
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <daxctl/libdaxctl.h>

#include "private.h"

#ifndef STATX_ATTR_DAX
#define STATX_ATTR_DAX 0x00200000
#endif

/* The last component of a sysfs link target, e.g. "dax" or "dax0.0". */
static int sysfs_link_name(const char *link, char *buf, size_t len)
{
	char target[PATH_MAX];
	const char *base;
	ssize_t n;

	n = readlink(link, target, sizeof(target) - 1);
	if (n < 0)
		return -errno;
	target[n] = '\0';
	base = strrchr(target, '/');
	base = base ? base + 1 : target;
	if (strlen(base) >= len)
		return -ENAMETOOLONG;
	strcpy(buf, base);
	return 0;
}

/* Describe a devdax device through libdaxctl; 0 when found, -ENODEV if not listed. */
static int devdax_describe(struct daxpool_ctx *ctx, struct dp_backing *b)
{
	struct daxctl_ctx *dctx;
	struct daxctl_region *dregion;
	struct daxctl_dev *dev;
	int r = -ENODEV;

	r = daxctl_new(&dctx);
	if (r < 0) {
		log_err(ctx, "%s: libdaxctl context: %s", b->devname, strerror(-r));
		return r;
	}
	r = -ENODEV;
	daxctl_region_foreach(dctx, dregion) {
		daxctl_dev_foreach(dregion, dev) {
			const char *name = daxctl_dev_get_devname(dev);

			if (!name || strcmp(name, b->devname) != 0)
				continue;
			if (!daxctl_dev_is_enabled(dev)) {
				log_err(ctx, "%s: device is disabled", b->devname);
				r = -ENXIO;
				goto out;
			}
			b->size = daxctl_dev_get_size(dev);
			b->alignment = daxctl_dev_get_align(dev);
			r = 0;
			goto out;
		}
	}
out:
	daxctl_unref(dctx);
	return r;
}

int dp_backing_check_chardev(struct daxpool_ctx *ctx, const char *path, const struct stat *st)
{
	char link[96], subsys[32];
	int r;

	snprintf(link, sizeof(link), "/sys/dev/char/%u:%u/subsystem", major(st->st_rdev),
		 minor(st->st_rdev));
	r = sysfs_link_name(link, subsys, sizeof(subsys));
	if (r < 0 || strcmp(subsys, "dax") != 0) {
		log_err(ctx, "%s: character device %u:%u is not device-dax", path,
			major(st->st_rdev), minor(st->st_rdev));
		return -ENODEV;
	}
	return 0;
}

static int probe_chardev(struct daxpool_ctx *ctx, const char *path, const struct stat *st,
			 struct pmem2_source *src, struct dp_backing *b)
{
	char link[96];
	size_t pmem2_align = 0;
	int r;

	r = dp_backing_check_chardev(ctx, path, st);
	if (r < 0)
		return r;
	snprintf(link, sizeof(link), "/sys/dev/char/%u:%u", major(st->st_rdev), minor(st->st_rdev));
	r = sysfs_link_name(link, b->devname, sizeof(b->devname));
	if (r < 0) {
		log_err(ctx, "%s: cannot name the dax device: %s", path, strerror(-r));
		return -ENODEV;
	}
	b->kind = DAXPOOL_REGION_DEVDAX;

	r = devdax_describe(ctx, b);
	if (r == -ENXIO)
		return r;
	if (r < 0) {
		/* Not listed by libdaxctl (e.g. sysfs layout it does not know): ask libpmem2. */
		size_t size = 0;

		log_notice(ctx, "%s: libdaxctl does not list %s; using libpmem2's description",
			   path, b->devname);
		r = pmem2_source_size(src, &size);
		if (r)
			return dp_pmem2_err(ctx, r, "device size");
		b->size = size;
	}
	r = pmem2_source_alignment(src, &pmem2_align);
	if (r)
		return dp_pmem2_err(ctx, r, "device alignment");
	if (!b->alignment)
		b->alignment = pmem2_align;
	dp_cxl_describe(ctx, path, b);
	return 0;
}

static int probe_regular(struct daxpool_ctx *ctx, const char *path, int fd,
			 struct pmem2_source *src, struct dp_backing *b)
{
	struct statx stx;
	size_t align = 0;
	int r;

	if (statx(fd, "", AT_EMPTY_PATH, STATX_SIZE, &stx) < 0) {
		r = -errno;
		log_err(ctx, "%s: statx: %s", path, strerror(-r));
		return r;
	}
	b->kind = (stx.stx_attributes_mask & STATX_ATTR_DAX) && (stx.stx_attributes & STATX_ATTR_DAX)
			  ? DAXPOOL_REGION_FSDAX
			  : DAXPOOL_REGION_FILE;
	b->size = stx.stx_size;
	r = pmem2_source_alignment(src, &align);
	if (r)
		return dp_pmem2_err(ctx, r, "file alignment");
	b->alignment = align;
	return 0;
}

int dp_backing_probe(struct daxpool_ctx *ctx, const char *path, int fd, struct pmem2_source *src,
		     struct dp_backing *b)
{
	struct stat st;
	int node = -1;
	int r;

	memset(b, 0, sizeof(*b));
	b->numa_node = -ENODATA;
	b->cxl_state = -ENODATA;
	snprintf(b->cxl_why, sizeof(b->cxl_why), "%s is not a device-dax device", path);
	if (fstat(fd, &st) < 0)
		return -errno;

	if (S_ISCHR(st.st_mode))
		r = probe_chardev(ctx, path, &st, src, b);
	else if (S_ISREG(st.st_mode))
		r = probe_regular(ctx, path, fd, src, b);
	else
		r = -EOPNOTSUPP;
	if (r < 0)
		return r;

	if (b->kind != DAXPOOL_REGION_FILE && pmem2_source_numa_node(src, &node) == 0 && node >= 0)
		b->numa_node = node;
	return 0;
}
