/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Releasing a device-dax device: disable it through libdaxctl. Called only
 * after every known holder drained: devdax unbind does not wait for pins, and
 * a pin released after it oopses the kernel.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <daxctl/libdaxctl.h>

#include "device.h"

/* The last component of the symlink at @path into @buf, or -errno. */
static int link_basename(const char *path, char *buf, size_t size)
{
	char target[PATH_MAX];
	const char *base;
	ssize_t n = readlink(path, target, sizeof(target) - 1);

	if (n < 0)
		return -errno;
	target[n] = '\0';
	base = strrchr(target, '/');
	base = base ? base + 1 : target;
	if (!*base || strlen(base) >= size)
		return -ENAMETOOLONG;
	snprintf(buf, size, "%s", base);
	return 0;
}

int dd_devdax_name(dev_t rdev, char *name, size_t size)
{
	char path[96], subsys[64];
	int r;

	/*
	 * The kernel names the character device: /sys/dev/char/MAJ:MIN links to
	 * its device, whose subsystem must be the dax bus (or the dax class of
	 * older kernels). A name the client gave, or the basename of a path that
	 * may be a symlink, is never trusted for this.
	 */
	snprintf(path, sizeof(path), "/sys/dev/char/%u:%u/subsystem", major(rdev), minor(rdev));
	r = link_basename(path, subsys, sizeof(subsys));
	if (r < 0)
		return r == -ENOENT ? -ENODEV : r;
	if (strcmp(subsys, "dax") != 0)
		return -ENOTTY;
	snprintf(path, sizeof(path), "/sys/dev/char/%u:%u", major(rdev), minor(rdev));
	r = link_basename(path, name, size);
	if (r < 0)
		return r;
	if (strncmp(name, "dax", 3) != 0)
		return -ENOTTY;
	return 0;
}

int dd_devdax_disable(const char *devname, char *msg, size_t msg_size)
{
	struct daxctl_region *region;
	struct daxctl_ctx *ctx;
	struct daxctl_dev *dev, *found = NULL;
	int r;

	r = daxctl_new(&ctx);
	if (r < 0) {
		snprintf(msg, msg_size, "libdaxctl: %s", strerror(-r));
		return r;
	}
	daxctl_region_foreach(ctx, region)
	{
		daxctl_dev_foreach(region, dev)
		{
			if (strcmp(daxctl_dev_get_devname(dev), devname) == 0)
				found = dev;
		}
	}
	if (!found) {
		snprintf(msg, msg_size, "%s: no such device-dax device in libdaxctl", devname);
		daxctl_unref(ctx);
		return -ENODEV;
	}
	r = daxctl_dev_disable(found);
	if (r < 0)
		snprintf(msg, msg_size, "%s: daxctl_dev_disable: %s", devname, strerror(-r));
	else
		snprintf(msg, msg_size, "%s: disabled (libdaxctl)", devname);
	daxctl_unref(ctx);
	return r;
}
