/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Releasing a device-dax device: disable it through libdaxctl. Called only
 * after every known holder drained: devdax unbind does not wait for pins, and
 * a pin released after it oopses the kernel (KERNEL-FACTS.md section 1).
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <daxctl/libdaxctl.h>

#include "daxpoold.h"

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
	/* The unbind event that follows is this release, not an unplug (udev.c). */
	dd_udev_expect_disable(devname);
	r = daxctl_dev_disable(found);
	if (r < 0)
		dd_udev_unexpect_disable(devname);
	if (r < 0)
		snprintf(msg, msg_size, "%s: daxctl_dev_disable: %s", devname, strerror(-r));
	else
		snprintf(msg, msg_size, "%s: disabled (libdaxctl)", devname);
	daxctl_unref(ctx);
	return r;
}
