/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Kernel facts: how device-dax mappings behave.  A MAP_SHARED mapping of a
 * whole alignment unit works and comes back aligned; MAP_PRIVATE, an unaligned
 * length or an unaligned offset give EINVAL; MAP_SHARED_VALIDATE|MAP_SYNC is
 * accepted; read(2) gives EINVAL.
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

#ifndef MAP_SHARED_VALIDATE
#define MAP_SHARED_VALIDATE 0x03
#endif
#ifndef MAP_SYNC
#define MAP_SYNC 0x80000
#endif

static void expect_einval(void *p, int err, const char *what)
{
	kf_check(p == MAP_FAILED && err == EINVAL, "%s gives EINVAL (got %s)", what,
		 p == MAP_FAILED ? strerror(err) : "a mapping");
}

int main(void)
{
	const char *dev = kf_env("DAXPOOL_TEST_DEVDAX");
	unsigned long long align, size;
	uint64_t *p;
	char buf[4096];
	ssize_t n;
	size_t i, words;
	int fd, err;

	fd = open(dev, O_RDWR | O_CLOEXEC);
	if (fd < 0)
		kf_missing("open %s: %s", dev, strerror(errno));
	align = kf_devdax_attr(fd, "align");
	size = kf_devdax_attr(fd, "size");
	kf_note("%s: align %llu, size %llu", dev, align, size);
	if (!align)
		align = 2ULL << 20;
	kf_check(size >= 2 * align, "device size %llu holds two alignment units", size);

	/* A shared mapping of one unit: aligned, writable, persistent across remaps. */
	p = mmap(NULL, align, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	err = errno;
	if (!kf_check(p != MAP_FAILED, "MAP_SHARED mmap of %llu bytes (%s)", align,
		      p == MAP_FAILED ? strerror(err) : "ok"))
		return kf_done();
	kf_check(((uintptr_t)p & (align - 1)) == 0, "mapping %p is %llu-aligned", (void *)p, align);
	words = align / sizeof(*p);
	for (i = 0; i < words; i += 512)
		p[i] = 0xdaf00000ULL + i;
	munmap(p, align);
	p = mmap(NULL, align, PROT_READ, MAP_SHARED, fd, 0);
	if (kf_check(p != MAP_FAILED, "second MAP_SHARED mmap")) {
		bool same = true;

		for (i = 0; i < words; i += 512)
			same &= p[i] == 0xdaf00000ULL + i;
		kf_check(same, "data written through the first mapping reads back");
		munmap(p, align);
	}

	p = mmap(NULL, align, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
	err = errno;
	expect_einval(p, err, "MAP_PRIVATE mmap");
	if (p != MAP_FAILED)
		munmap(p, align);

	p = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	err = errno;
	expect_einval(p, err, "mmap with a 4 KiB length");
	if (p != MAP_FAILED)
		munmap(p, 4096);

	p = mmap(NULL, align, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 4096);
	err = errno;
	expect_einval(p, err, "mmap at a 4 KiB offset");
	if (p != MAP_FAILED)
		munmap(p, align);

	p = mmap(NULL, align, PROT_READ | PROT_WRITE, MAP_SHARED_VALIDATE | MAP_SYNC, fd, 0);
	err = errno;
	kf_check(p != MAP_FAILED, "MAP_SHARED_VALIDATE|MAP_SYNC is accepted (%s)",
		 p == MAP_FAILED ? strerror(err) : "ok");
	if (p != MAP_FAILED)
		munmap(p, align);

	n = read(fd, buf, sizeof(buf));
	err = errno;
	kf_check(n < 0 && err == EINVAL, "read(2) gives EINVAL (got %zd, %s)", n,
		 n < 0 ? strerror(err) : "data");

	close(fd);
	return kf_done();
}
