/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Kernel facts: fork and pinned anonymous memory.  The kernel copies pinned
 * anonymous pages at fork, so rdma-core says IBV_FORK_UNNEEDED; after a fork,
 * an RDMA WRITE into a registered buffer lands in the parent's view while the
 * child keeps its own copy, and a CPU store by the parent after the fork is
 * what an RDMA READ of the MR returns.  A MADV_DONTFORK range is absent in the
 * child: touching it gives SIGSEGV.
 *
 * ibv_fork_init() is deliberately never called: in rdma-core 44 it applies
 * MADV_DONTFORK to every registration even when the kernel does not need it.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <signal.h>
#include <stdint.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "kfacts.h"
#include "kfacts_rdma.h"

#define LEN (64 * 1024)

/* Every byte of @p[0..len) is @c. */
static bool all(const unsigned char *p, size_t len, unsigned char c)
{
	size_t i;

	for (i = 0; i < len; i++)
		if (p[i] != c)
			return false;
	return true;
}

static void check_dontfork(void)
{
	volatile unsigned char *p;
	int status;
	pid_t pid;

	p = mmap(NULL, LEN, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (!kf_check(p != MAP_FAILED, "anonymous mmap for MADV_DONTFORK"))
		return;
	p[0] = 1;
	if (!kf_check(!madvise((void *)p, LEN, MADV_DONTFORK), "madvise(MADV_DONTFORK)"))
		goto out;
	pid = fork();
	if (pid < 0)
		goto out;
	if (pid == 0) {
		signal(SIGSEGV, SIG_DFL);
		(void)p[0];
		_exit(0);
	}
	if (waitpid(pid, &status, 0) != pid)
		status = 0;
	kf_check(WIFSIGNALED(status) && WTERMSIG(status) == SIGSEGV,
		 "a child touching a MADV_DONTFORK range gets SIGSEGV (status 0x%x)", status);
out:
	munmap((void *)p, LEN);
}

int main(void)
{
	const char *rdev = kf_env("DAXPOOL_TEST_RDMA_DEV");
	struct ibv_mr *mr = NULL, *src_mr = NULL;
	struct ibv_context *ctx;
	struct ibv_qp *qp = NULL;
	struct ibv_cq *cq = NULL;
	struct ibv_pd *pd;
	enum ibv_fork_status fs;
	unsigned char *buf, *src;
	int go[2], res[2], r, status;
	char verdict = 0;
	pid_t pid;

	ctx = kf_rdma_open(rdev);
	if (!ctx)
		kf_missing("RDMA device %s not found or cannot be opened", rdev);
	fs = ibv_is_fork_initialized();
	kf_check(fs == IBV_FORK_UNNEEDED, "ibv_is_fork_initialized() says IBV_FORK_UNNEEDED (%d)",
		 fs);

	pd = ibv_alloc_pd(ctx);
	if (!kf_check(pd != NULL, "ibv_alloc_pd on %s", rdev))
		return kf_done();
	buf = mmap(NULL, LEN, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	src = mmap(NULL, LEN, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (buf == MAP_FAILED || src == MAP_FAILED)
		return KF_EXIT_FAIL;
	memset(buf, 'A', LEN);
	memset(src, 'B', LEN);
	mr = ibv_reg_mr(pd, buf, LEN, KF_MR_ACCESS);
	src_mr = ibv_reg_mr(pd, src, LEN, KF_MR_ACCESS);
	if (!kf_check(mr && src_mr, "register two anonymous buffers"))
		goto out;
	r = kf_rdma_qp_create(ctx, pd, &cq, &qp);
	if (!kf_check(r == 0, "a loopback RC QP (%s)", r ? strerror(r) : "ok"))
		goto out;

	if (pipe(go) || pipe(res))
		goto out;
	pid = fork();
	if (pid < 0)
		goto out;
	if (pid == 0) {
		char c = 0;

		/* Wait until the parent's RDMA WRITE is done, then look. */
		if (read(go[0], &c, 1) != 1)
			_exit(2);
		c = all(buf, LEN, 'A') ? 'k' : 'x';
		if (write(res[1], &c, 1) != 1)
			_exit(2);
		_exit(0);
	}

	r = kf_rdma_op(qp, cq, IBV_WR_RDMA_WRITE, src_mr, src, mr, buf, LEN);
	kf_check(r == 0 && all(buf, LEN, 'B'),
		 "after fork, an RDMA WRITE into the registered buffer lands in the parent's view");
	if (write(go[1], "g", 1) != 1 || read(res[0], &verdict, 1) != 1)
		verdict = 0;
	kf_check(verdict == 'k', "the child still sees its own copy ('%c')",
		 verdict ? verdict : '?');
	waitpid(pid, &status, 0);

	/* The parent's CPU stores after the fork reach the pinned page. */
	memset(buf, 'C', LEN);
	memset(src, 0, LEN);
	r = kf_rdma_op(qp, cq, IBV_WR_RDMA_READ, src_mr, src, mr, buf, LEN);
	kf_check(r == 0 && all(src, LEN, 'C'),
		 "an RDMA READ of the MR returns the parent's CPU stores made after the fork");

	check_dontfork();
out:
	if (qp)
		ibv_destroy_qp(qp);
	if (cq)
		ibv_destroy_cq(cq);
	if (mr)
		ibv_dereg_mr(mr);
	if (src_mr)
		ibv_dereg_mr(src_mr);
	ibv_dealloc_pd(pd);
	ibv_close_device(ctx);
	return kf_done();
}
