/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* sysfs attributes of a device-dax character device, for the kfacts tests. */
#ifndef DAXPOOL_KFACTS_DEVDAX_SYSFS_H
#define DAXPOOL_KFACTS_DEVDAX_SYSFS_H

#include <stdio.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>

/* Read a numeric attribute of the dax device behind @fd; 0 if unreadable. */
static inline unsigned long long kf_devdax_attr(int fd, const char *attr)
{
	unsigned long long v = 0;
	char path[128];
	struct stat st;
	FILE *f;

	if (fstat(fd, &st) || !S_ISCHR(st.st_mode))
		return 0;
	snprintf(path, sizeof(path), "/sys/dev/char/%u:%u/%s", major(st.st_rdev), minor(st.st_rdev),
		 attr);
	f = fopen(path, "r");
	if (!f)
		return 0;
	if (fscanf(f, "%llu", &v) != 1)
		v = 0;
	fclose(f);
	return v;
}

#endif /* DAXPOOL_KFACTS_DEVDAX_SYSFS_H */
