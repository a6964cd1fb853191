/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Kernel facts: data stored through devdax and through a MAP_SYNC fsdax
 * mapping survives a power cut (VM-RECIPE.md "power cut").  Run it with
 *
 *	tests/vm/run --powercut-test kfact_powercut
 *
 * Phase 1 (--phase=1) writes a pattern through a devdax mapping and through
 * a MAP_SYNC mapping of a file on the first fsdax dir, with no msync, fsync
 * or unmount, prints DAXPOOL_POWERCUT and waits to be killed.  The host
 * SIGKILLs QEMU; the second boot reuses the NVDIMM image, and phase 2
 * (--phase=2) checks the patterns.  Without --phase it skips (exit 77): it
 * only means something across two boots, so it is not in the manifest.
 *
 * TCG does not model CPU caches, so this cannot catch a missing cache
 * flush; it shows that what the kernel and filesystem persisted comes back.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <fcntl.h>
#include <stdint.h>
#include <sys/mman.h>
#include <unistd.h>

#include "kfacts.h"
#include "devdax_sysfs.h"
#include "fsdax_dirs.h"

#ifndef MAP_SHARED_VALIDATE
#define MAP_SHARED_VALIDATE 0x03
#endif
#ifndef MAP_SYNC
#define MAP_SYNC 0x80000
#endif

#define LEN	  (4UL << 20)
#define FILE_NAME "kfact_powercut.dat"
/* Offset into the device: past what other tests scribble on. */
#define DAX_OFF (64UL << 20)

static uint64_t pattern(size_t i, uint64_t salt)
{
	return (i * 0x9e3779b97f4a7c15ULL) ^ salt;
}

static void *map_devdax(const char *dev, int *ret_fd)
{
	unsigned long long align;
	void *p;
	int fd;

	fd = open(dev, O_RDWR | O_CLOEXEC);
	if (fd < 0)
		kf_missing("open %s: %s", dev, strerror(errno));
	align = kf_devdax_attr(fd, "align");
	if (align && (DAX_OFF % align || LEN % align))
		kf_missing("%s: alignment %llu does not divide the test layout", dev, align);
	p = mmap(NULL, LEN, PROT_READ | PROT_WRITE, MAP_SHARED, fd, DAX_OFF);
	*ret_fd = fd;
	return p;
}

static void *map_file(const char *dir, bool create, int *ret_fd)
{
	char path[4096];
	void *p;
	int fd;

	snprintf(path, sizeof(path), "%s/" FILE_NAME, dir);
	fd = open(path, O_RDWR | O_CLOEXEC | (create ? O_CREAT | O_TRUNC : 0), 0600);
	if (fd < 0)
		return MAP_FAILED;
	/* Allocate the blocks first; the data itself only goes through the map. */
	if (create && fallocate(fd, 0, 0, LEN)) {
		close(fd);
		return MAP_FAILED;
	}
	if (create)
		fsync(fd);
	p = mmap(NULL, LEN, PROT_READ | PROT_WRITE, MAP_SHARED_VALIDATE | MAP_SYNC, fd, 0);
	*ret_fd = fd;
	return p;
}

static size_t mismatches(const uint64_t *p, uint64_t salt)
{
	size_t i, bad = 0;

	for (i = 0; i < LEN / sizeof(*p); i++)
		bad += p[i] != pattern(i, salt);
	return bad;
}

int main(int argc, char **argv)
{
	const char *dev = kf_env("DAXPOOL_TEST_DEVDAX");
	char *dirs[KF_MAX_DIRS];
	uint64_t *d, *f;
	int phase = 0, dfd = -1, ffd = -1, i;
	size_t w;

	for (i = 1; i < argc; i++)
		if (!strncmp(argv[i], "--phase=", 8))
			phase = atoi(argv[i] + 8);
	if (phase != 1 && phase != 2) {
		printf("SKIP: power-cut test; run it with tests/vm/run --powercut-test %s\n",
		       "kfact_powercut");
		return KF_EXIT_SKIP;
	}
	kf_fsdax_dirs(dirs);

	d = map_devdax(dev, &dfd);
	if (!kf_check(d != MAP_FAILED, "phase %d: map %lu MiB of %s", phase, LEN >> 20, dev))
		return kf_done();
	f = map_file(dirs[0], phase == 1, &ffd);
	if (!kf_check(f != MAP_FAILED, "phase %d: MAP_SYNC map of %s/" FILE_NAME " (%s)", phase,
		      dirs[0], f == MAP_FAILED ? strerror(errno) : "ok"))
		return kf_done();

	if (phase == 1) {
		for (w = 0; w < LEN / sizeof(*d); w++) {
			d[w] = pattern(w, 0xd0d0);
			f[w] = pattern(w, 0xf1f1);
		}
		kf_check(!mismatches(d, 0xd0d0) && !mismatches(f, 0xf1f1),
			 "phase 1: patterns written (no msync, fsync or unmount)");
		/* Tell the host to cut the power now, then wait for it. */
		printf("DAXPOOL_POWERCUT\n");
		fflush(stdout);
		for (i = 0; i < 600; i++)
			kf_sleep_ms(100);
		kf_check(false, "phase 1: still alive 60 s after DAXPOOL_POWERCUT");
		return kf_done();
	}

	w = mismatches(d, 0xd0d0);
	kf_check(w == 0, "phase 2: devdax data intact after the power cut (%zu bad words)", w);
	w = mismatches(f, 0xf1f1);
	kf_check(w == 0, "phase 2: MAP_SYNC file data intact after the power cut (%zu bad words)",
		 w);
	munmap(d, LEN);
	munmap(f, LEN);
	close(dfd);
	close(ffd);
	return kf_done();
}
