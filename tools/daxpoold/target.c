/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The authorization module (target.h): a target's identity from its descriptor. */
#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "device.h"
#include "target.h"

#ifndef STATX_ATTR_DAX
#define STATX_ATTR_DAX 0x00200000
#endif

/* openat2(2): glibc 2.36 has no wrapper. */
static int open_no_symlinks(const char *path)
{
	struct open_how how = { .flags = O_PATH | O_CLOEXEC,
				.resolve = RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS };

	return (int)syscall(SYS_openat2, AT_FDCWD, path, &how, sizeof(how));
}

/* The size of the device-dax device @rdev from sysfs; 0 if unknown. */
static uint64_t devdax_size(dev_t rdev)
{
	char path[96], buf[32];
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "/sys/dev/char/%u:%u/size", major(rdev), minor(rdev));
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return 0;
	buf[n] = '\0';
	return strtoull(buf, NULL, 10);
}

/* Everything but fd and path, from statx of @fd (O_PATH or not). */
static int identify(int fd, struct dd_target *t, char *why, size_t size)
{
	struct statx stx;
	int r;

	/* No sync: a network or FUSE filesystem is not asked (dev, ino, mode are the inode's). */
	if (statx(fd, "", AT_EMPTY_PATH | AT_STATX_DONT_SYNC,
		  STATX_TYPE | STATX_MODE | STATX_INO | STATX_SIZE | STATX_UID, &stx) < 0) {
		r = -errno;
		snprintf(why, size, "statx: %s", strerror(-r));
		return r;
	}
	t->dev = makedev(stx.stx_dev_major, stx.stx_dev_minor);
	t->ino = stx.stx_ino;
	t->owner_uid = stx.stx_uid;
	t->rdev = 0;
	t->devname[0] = '\0';
	if (S_ISREG(stx.stx_mode)) {
		t->kind = (stx.stx_attributes_mask & STATX_ATTR_DAX) &&
					  (stx.stx_attributes & STATX_ATTR_DAX)
				  ? DD_TARGET_FSDAX
				  : DD_TARGET_FILE;
		t->size = stx.stx_size;
		return 0;
	}
	if (S_ISCHR(stx.stx_mode)) {
		dev_t rdev = makedev(stx.stx_rdev_major, stx.stx_rdev_minor);

		/* The kernel names the device: sysfs of its rdev, verified as dax. */
		r = dd_devdax_name(rdev, t->devname, sizeof(t->devname));
		if (r < 0) {
			t->devname[0] = '\0';
			snprintf(why, size, "a character device %u:%u that is not device-dax (%s)",
				 major(rdev), minor(rdev), strerror(-r));
			return r == -ENOTTY || r == -ENODEV ? -EINVAL : r;
		}
		t->rdev = rdev;
		t->kind = DD_TARGET_DEVDAX;
		t->size = devdax_size(rdev);
		return 0;
	}
	snprintf(why, size, "neither a regular file nor a device-dax device (mode %#o)",
		 (unsigned)stx.stx_mode & S_IFMT);
	return -EINVAL;
}

int dd_target_resolve(const char *name, struct dd_target *t)
{
	char why[128];
	int r;

	*t = (struct dd_target){ .fd = -1 };
	/* The daemon's working directory means nothing to the requester. */
	if (strchr(name, '/') && name[0] != '/')
		return -EINVAL;
	if (strchr(name, '/'))
		snprintf(t->path, sizeof(t->path), "%s", name);
	else
		snprintf(t->path, sizeof(t->path), "/dev/%s", name); /* a devdax name: dax0.0 */
	/*
	 * One lookup, with no symbolic link anywhere on the way (a link a user
	 * planted, or a directory swapped for one, could lead anywhere); the
	 * identity is the descriptor's, and the operation acts through it.
	 */
	t->fd = open_no_symlinks(t->path);
	if (t->fd < 0)
		return -errno;
	r = identify(t->fd, t, why, sizeof(why));
	if (r < 0)
		dd_target_close(t);
	return r;
}

int dd_target_identify(int fd, struct dd_target *t, char *why, size_t size)
{
	char link[32];
	ssize_t n;
	int r;

	*t = (struct dd_target){ .fd = -1 };
	r = identify(fd, t, why, size);
	if (r < 0)
		return r;
	/* For display only: what the kernel calls it from here (a deleted file says so). */
	snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
	n = readlink(link, t->path, sizeof(t->path) - 1);
	if (n < 0 || t->path[0] != '/')
		n = snprintf(t->path, sizeof(t->path), "/?(unnamed: device %u:%u inode %llu)",
			     major(t->dev), minor(t->dev), (unsigned long long)t->ino);
	t->path[n] = '\0';
	return 0;
}

bool dd_target_may_act(const struct dd_target *t, uid_t uid)
{
	return uid == 0 || uid == t->owner_uid;
}

void dd_target_close(struct dd_target *t)
{
	if (t && t->fd >= 0) {
		close(t->fd);
		t->fd = -1;
	}
}
