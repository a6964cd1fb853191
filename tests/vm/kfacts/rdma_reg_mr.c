/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Kernel facts: long-term pins through ibv_reg_mr.  On rxe: an anonymous
 * buffer and a devdax mapping register; a loopback RC QP on GID index 1 moves
 * data into the devdax mapping with RDMA WRITE and out of it with RDMA READ; a
 * MAP_SHARED mapping of an fsdax file (ext4 and xfs) is refused with
 * EOPNOTSUPP.
 *
 * Never disable the devdax device while an MR on it is registered: that oopses
 * the kernel when the MR is released.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <fcntl.h>
#include <stdint.h>
#include <sys/mman.h>
#include <unistd.h>

#include "kfacts.h"
#include "kfacts_rdma.h"
#include "devdax_sysfs.h"
#include "fsdax_dirs.h"

#define XFER 65536

static void check_fsdax(struct ibv_pd *pd, const char *dir)
{
	const size_t len = 2UL << 20;
	char path[4096];
	struct ibv_mr *mr;
	char *p;
	int fd, err;

	snprintf(path, sizeof(path), "%s/kfact_reg_mr.%d", dir, (int)getpid());
	fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (!kf_check(fd >= 0 && !ftruncate(fd, len), "%s: create a 2 MiB file", dir))
		goto out;
	p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (!kf_check(p != MAP_FAILED, "%s: MAP_SHARED mmap", dir))
		goto out;
	memset(p, 0x11, len); /* allocate blocks and fault the pages in */
	errno = 0;
	mr = ibv_reg_mr(pd, p, len, KF_MR_ACCESS);
	err = errno;
	kf_check(!mr && err == EOPNOTSUPP,
		 "%s: ibv_reg_mr on an fsdax MAP_SHARED mapping gives EOPNOTSUPP (got %s)", dir,
		 mr ? "an MR" : strerror(err));
	if (mr)
		ibv_dereg_mr(mr);
	munmap(p, len);
out:
	if (fd >= 0)
		close(fd);
	unlink(path);
}

int main(void)
{
	const char *devdax = kf_env("DAXPOOL_TEST_DEVDAX");
	const char *rdev = kf_env("DAXPOOL_TEST_RDMA_DEV");
	struct ibv_mr *anon_mr = NULL, *dax_mr = NULL;
	struct ibv_context *ctx;
	struct ibv_qp *qp = NULL;
	struct ibv_cq *cq = NULL;
	struct ibv_pd *pd;
	char *dirs[KF_MAX_DIRS];
	unsigned long long align;
	unsigned char *anon, *dax = MAP_FAILED;
	int i, n, fd, r, err;

	n = kf_fsdax_dirs(dirs);
	ctx = kf_rdma_open(rdev);
	if (!ctx)
		kf_missing("RDMA device %s not found or cannot be opened", rdev);
	pd = ibv_alloc_pd(ctx);
	if (!kf_check(pd != NULL, "ibv_alloc_pd on %s", rdev))
		return kf_done();

	anon = mmap(NULL, XFER, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (anon == MAP_FAILED)
		return KF_EXIT_FAIL;
	memset(anon, 0, XFER);
	anon_mr = ibv_reg_mr(pd, anon, XFER, KF_MR_ACCESS);
	err = errno;
	kf_check(anon_mr != NULL, "ibv_reg_mr on an anonymous buffer (%s)",
		 anon_mr ? "ok" : strerror(err));

	fd = open(devdax, O_RDWR | O_CLOEXEC);
	if (fd < 0)
		kf_missing("open %s: %s", devdax, strerror(errno));
	align = kf_devdax_attr(fd, "align");
	if (!align)
		align = 2ULL << 20;
	dax = mmap(NULL, align, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (!kf_check(dax != MAP_FAILED, "devdax MAP_SHARED mmap"))
		goto fsdax;
	memset(dax, 0, XFER);
	dax_mr = ibv_reg_mr(pd, dax, align, KF_MR_ACCESS);
	err = errno;
	kf_check(dax_mr != NULL, "ibv_reg_mr on a devdax mapping (%s)",
		 dax_mr ? "ok" : strerror(err));
	if (!dax_mr || !anon_mr)
		goto fsdax;

	r = kf_rdma_qp_create(ctx, pd, &cq, &qp);
	if (!kf_check(r == 0, "a loopback RC QP on GID index %d reaches RTS (%s)", KF_GID_INDEX,
		      r ? strerror(r) : "ok"))
		goto fsdax;

	for (i = 0; i < XFER; i++)
		anon[i] = (unsigned char)(i * 7 + 3);
	r = kf_rdma_op(qp, cq, IBV_WR_RDMA_WRITE, anon_mr, anon, dax_mr, dax, XFER);
	kf_check(r == 0 && !memcmp(anon, dax, XFER),
		 "RDMA WRITE of %d bytes lands in the devdax mapping", XFER);
	for (i = 0; i < XFER; i++)
		dax[i] = (unsigned char)(i * 13 + 1);
	memset(anon, 0, XFER);
	r = kf_rdma_op(qp, cq, IBV_WR_RDMA_READ, anon_mr, anon, dax_mr, dax, XFER);
	kf_check(r == 0 && !memcmp(anon, dax, XFER),
		 "RDMA READ of %d bytes from the devdax mapping", XFER);

fsdax:
	if (qp)
		ibv_destroy_qp(qp);
	if (cq)
		ibv_destroy_cq(cq);
	/* Release the devdax pin before anything else could touch the device. */
	if (dax_mr)
		kf_check(ibv_dereg_mr(dax_mr) == 0, "ibv_dereg_mr of the devdax MR");
	if (dax != MAP_FAILED)
		munmap(dax, align);
	if (fd >= 0)
		close(fd);

	for (i = 0; i < n; i++)
		check_fsdax(pd, dirs[i]);

	if (anon_mr)
		ibv_dereg_mr(anon_mr);
	ibv_dealloc_pd(pd);
	ibv_close_device(ctx);
	return kf_done();
}
