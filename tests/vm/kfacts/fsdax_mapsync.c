/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Kernel facts: MAP_SYNC and STATX_ATTR_DAX on fsdax (VM-RECIPE.md "ext4
 * -o dax", "xfs -o dax=always", "tmpfs control").  On every directory of
 * DAXPOOL_TEST_FSDAX_DIRS a file reports STATX_ATTR_DAX and accepts a
 * MAP_SHARED_VALIDATE|MAP_SYNC mapping that is writable and reads back; a
 * file on a non-DAX filesystem (TMPDIR, tmpfs in the guest) does not report
 * DAX and refuses MAP_SYNC with EOPNOTSUPP.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <fcntl.h>
#include <stdint.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

#include "kfacts.h"
#include "fsdax_dirs.h"

#ifndef MAP_SHARED_VALIDATE
#define MAP_SHARED_VALIDATE 0x03
#endif
#ifndef MAP_SYNC
#define MAP_SYNC 0x80000
#endif
#ifndef STATX_ATTR_DAX
#define STATX_ATTR_DAX 0x00200000
#endif

#define LEN (2UL << 20)

/* Create @path with LEN bytes of allocated (written) blocks. */
static int make_file(const char *path)
{
	static char block[65536];
	size_t off;
	int fd;

	fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		return -1;
	memset(block, 0x5a, sizeof(block));
	for (off = 0; off < LEN; off += sizeof(block)) {
		if (pwrite(fd, block, sizeof(block), off) != (ssize_t)sizeof(block)) {
			close(fd);
			return -1;
		}
	}
	return fd;
}

/* 1: DAX attribute set, 0: not set, -1: statx cannot tell. */
static int statx_dax(int fd)
{
	struct statx stx;

	if (statx(fd, "", AT_EMPTY_PATH, STATX_BASIC_STATS, &stx))
		return -1;
	if (!(stx.stx_attributes_mask & STATX_ATTR_DAX))
		return -1;
	return !!(stx.stx_attributes & STATX_ATTR_DAX);
}

static void check_dax_dir(const char *dir)
{
	char path[4096];
	uint64_t *p;
	int fd, err, dax;

	snprintf(path, sizeof(path), "%s/kfact_mapsync.%d", dir, (int)getpid());
	fd = make_file(path);
	if (!kf_check(fd >= 0, "%s: create a 2 MiB file (%s)", dir,
		      fd < 0 ? strerror(errno) : "ok"))
		return;
	dax = statx_dax(fd);
	kf_check(dax == 1, "%s: statx reports STATX_ATTR_DAX (%d)", dir, dax);

	p = mmap(NULL, LEN, PROT_READ | PROT_WRITE, MAP_SHARED_VALIDATE | MAP_SYNC, fd, 0);
	err = errno;
	if (kf_check(p != MAP_FAILED, "%s: MAP_SHARED_VALIDATE|MAP_SYNC mmap (%s)", dir,
		     p == MAP_FAILED ? strerror(err) : "ok")) {
		uint64_t v = 0;

		p[0] = 0x1234abcd;
		p[LEN / sizeof(*p) - 1] = 0x4321dcba;
		munmap(p, LEN);
		if (pread(fd, &v, sizeof(v), 0) != sizeof(v))
			v = 0;
		kf_check(v == 0x1234abcd,
			 "%s: a store through the MAP_SYNC mapping reads back with pread", dir);
	}
	close(fd);
	unlink(path);
}

static void check_non_dax(void)
{
	const char *tmp = getenv("TMPDIR");
	char path[4096];
	struct statfs sfs;
	void *p;
	int fd, err, dax;

	if (!tmp || !*tmp)
		tmp = "/tmp";
	if (!statfs(tmp, &sfs))
		kf_note("control directory %s: f_type 0x%lx%s", tmp, (unsigned long)sfs.f_type,
			sfs.f_type == 0x01021994 ? " (tmpfs)" : "");
	snprintf(path, sizeof(path), "%s/kfact_mapsync.%d", tmp, (int)getpid());
	fd = make_file(path);
	if (!kf_check(fd >= 0, "%s: create a control file (%s)", tmp,
		      fd < 0 ? strerror(errno) : "ok"))
		return;
	dax = statx_dax(fd);
	kf_check(dax != 1, "%s: no STATX_ATTR_DAX on the control file (%d)", tmp, dax);
	p = mmap(NULL, LEN, PROT_READ | PROT_WRITE, MAP_SHARED_VALIDATE | MAP_SYNC, fd, 0);
	err = errno;
	kf_check(p == MAP_FAILED && err == EOPNOTSUPP,
		 "%s: MAP_SYNC on a non-DAX file gives EOPNOTSUPP (got %s)", tmp,
		 p == MAP_FAILED ? strerror(err) : "a mapping");
	if (p != MAP_FAILED)
		munmap(p, LEN);
	p = mmap(NULL, LEN, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	kf_check(p != MAP_FAILED, "%s: plain MAP_SHARED on the control file works", tmp);
	if (p != MAP_FAILED)
		munmap(p, LEN);
	close(fd);
	unlink(path);
}

int main(void)
{
	char *dirs[KF_MAX_DIRS];
	int i, n;

	n = kf_fsdax_dirs(dirs);
	for (i = 0; i < n; i++)
		check_dax_dir(dirs[i]);
	check_non_dax();
	return kf_done();
}
