/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Iterate over DAXPOOL_TEST_FSDAX_DIRS (a colon list), for the kfacts tests. */
#ifndef DAXPOOL_KFACTS_FSDAX_DIRS_H
#define DAXPOOL_KFACTS_FSDAX_DIRS_H

#include <sys/stat.h>

#include "kfacts.h"

#define KF_MAX_DIRS 8

/*
 * Split DAXPOOL_TEST_FSDAX_DIRS into @dirs (at most KF_MAX_DIRS); skip or
 * fail when it is unset or names no directory.  Returns the count.
 */
static inline int kf_fsdax_dirs(char *dirs[KF_MAX_DIRS])
{
	char *list = strdup(kf_env("DAXPOOL_TEST_FSDAX_DIRS"));
	char *save = NULL, *d;
	struct stat st;
	int n = 0;

	if (!list)
		exit(KF_EXIT_FAIL);
	for (d = strtok_r(list, ":", &save); d && n < KF_MAX_DIRS; d = strtok_r(NULL, ":", &save)) {
		if (stat(d, &st) || !S_ISDIR(st.st_mode))
			kf_missing("fsdax dir %s: %s", d, strerror(errno ? errno : ENOTDIR));
		dirs[n++] = d;
	}
	if (!n)
		kf_missing("DAXPOOL_TEST_FSDAX_DIRS names no directory");
	return n;
}

#endif /* DAXPOOL_KFACTS_FSDAX_DIRS_H */
