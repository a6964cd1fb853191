/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * RDMA MRs as pins, on real devices (the vm tier: Soft-RoCE rxe0 on lo, a
 * devdax namespace, fsdax mounts). On the host, without those, it skips.
 */
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <sys/wait.h>
#include <syslog.h>

#include <infiniband/verbs.h>

#include "daxpool.h"
#include "harness.h"
#include "kfacts_rdma.h" /* the loopback RC QP helpers the kernel-fact tests use */

#define ACCESS (IBV_ACCESS_LOCAL_WRITE | IBV_ACCESS_REMOTE_WRITE | IBV_ACCESS_REMOTE_READ)

struct rdma {
	struct ibv_context *verbs;
	struct ibv_pd *pd;
	struct ibv_cq *cq;
	struct ibv_qp *qp;
};

static struct rdma rdma_open(void)
{
	const char *name = getenv("DAXPOOL_TEST_RDMA_DEV");
	struct rdma r = { 0 };

	if (!name || !*name)
		fixture_missing("an RDMA device (DAXPOOL_TEST_RDMA_DEV)");
	r.verbs = kf_rdma_open(name);
	CHECK(r.verbs);
	r.pd = ibv_alloc_pd(r.verbs);
	CHECK(r.pd);
	CHECK_EQ(kf_rdma_qp_create(r.verbs, r.pd, &r.cq, &r.qp), 0);
	return r;
}

static void rdma_close(struct rdma *r)
{
	ibv_destroy_qp(r->qp);
	ibv_destroy_cq(r->cq);
	ibv_dealloc_pd(r->pd);
	ibv_close_device(r->verbs);
}

static const char *devdax_path(void)
{
	const char *dev = getenv("DAXPOOL_TEST_DEVDAX");

	if (!dev || !*dev)
		fixture_missing("a devdax device (DAXPOOL_TEST_DEVDAX)");
	return dev;
}

static int persisted;

__attribute__((format(printf, 6, 0))) static void
count_persists(struct daxpool_ctx *ctx, int priority, const char *file, int line, const char *fn,
	       const char *format, va_list args)
{
	char msg[256];

	vsnprintf(msg, sizeof(msg), format, args);
	if (strstr(msg, "unpin persisted device-written"))
		persisted++;
}

TEST(mr_on_devdax_rdma_write_lands_and_unpin_persists)
{
	struct rdma r = rdma_open();
	struct daxpool_region *region;
	struct daxpool_ctx *ctx;
	struct daxpool_map *map;
	struct daxpool_pin *pin;
	struct ibv_mr *src_mr;
	char *dst, src[4096];

	CHECK_OK(daxpool_ctx_new(&ctx));
	CHECK_OK(daxpool_ctx_set_log_fn(ctx, count_persists));
	CHECK_OK(daxpool_ctx_set_log_priority(ctx, LOG_DEBUG));
	CHECK_OK(daxpool_region_open(ctx, devdax_path(), 0, &region));
	CHECK_OK(daxpool_map_new(region, 0, daxpool_region_get_alignment(region), 0, &map));
	dst = daxpool_map_get_address(map);
	memset(dst, 0, 4096);

	CHECK_OK(daxpool_rdma_reg_mr(map, r.pd, dst, 4096, ACCESS, &pin));
	CHECK(daxpool_pin_get_mr(pin) != NULL);
	CHECK_EQ(daxpool_pin_get_kind(pin), DAXPOOL_PIN_LONGTERM);
	CHECK(daxpool_pin_get_access(pin) & DAXPOOL_PIN_DEVICE_WRITE);
	CHECK_EQ(daxpool_region_get_pin_count(region, DAXPOOL_PIN_LONGTERM), 1);
	CHECK_EQ(daxpool_ctx_is_pinned(ctx, dst, 1), 1);

	snprintf(src, sizeof(src), "rdma write into devdax from pid %d", getpid());
	src_mr = ibv_reg_mr(r.pd, src, sizeof(src), ACCESS);
	CHECK(src_mr);
	CHECK_EQ(kf_rdma_op(r.qp, r.cq, IBV_WR_RDMA_WRITE, src_mr, src, daxpool_pin_get_mr(pin), dst,
			    sizeof(src)),
		 0);
	CHECK(strcmp(dst, src) == 0);

	CHECK_OK(daxpool_rdma_dereg_mr(pin));
	CHECK_EQ(persisted, 1);
	CHECK_EQ(daxpool_region_get_pin_count(region, 0), 0);
	ibv_dereg_mr(src_mr);
	daxpool_map_unref(map);
	daxpool_region_unref(region);
	daxpool_ctx_unref(ctx);
	rdma_close(&r);
}

TEST(fsdax_is_refused_before_the_kernel_with_a_way_out)
{
	const char *dirs = getenv("DAXPOOL_TEST_FSDAX_DIRS");
	struct rdma r = rdma_open();
	struct daxpool_region *region;
	struct daxpool_pin *pin = NULL;
	struct daxpool_ctx *ctx;
	struct daxpool_map *map;
	char path[4096];
	int fd;

	if (!dirs || !*dirs)
		fixture_missing("an fsdax directory (DAXPOOL_TEST_FSDAX_DIRS)");
	snprintf(path, sizeof(path), "%.*s/daxpool-rdma-%d", (int)strcspn(dirs, ":"), dirs, getpid());
	fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
	CHECK(fd >= 0);
	CHECK_EQ(ftruncate(fd, 4 << 20), 0);
	close(fd);

	CHECK_OK(daxpool_ctx_new(&ctx));
	CHECK_OK(daxpool_region_open(ctx, path, 0, &region));
	unlink(path);
	CHECK_EQ(daxpool_region_get_kind(region), DAXPOOL_REGION_FSDAX);
	CHECK_OK(daxpool_map_new(region, 0, 0, 0, &map));
	/* rxe has no on-demand paging: refused with the documented error, nothing pinned. */
	CHECK_ERR(daxpool_rdma_reg_mr(map, r.pd, daxpool_map_get_address(map), 4096, ACCESS, &pin),
		  EOPNOTSUPP);
	CHECK(pin == NULL);
	CHECK_EQ(daxpool_region_get_pin_count(region, 0), 0);
	daxpool_map_unref(map);
	daxpool_region_unref(region);
	daxpool_ctx_unref(ctx);
	rdma_close(&r);
}

struct holder {
	struct daxpool_pin *pin;
	bool mr_was_live; /* the application ran while the MR still existed */
};

static void retire_rkey(struct daxpool_pin *pin, void *userdata)
{
	struct holder *h = userdata;

	h->mr_was_live = daxpool_pin_get_mr(pin) != NULL;
}

TEST(zap_with_a_live_mr_revokes_it_and_reaches_idle)
{
	struct rdma r = rdma_open();
	struct daxpool_region *region;
	struct holder h = { 0 };
	struct daxpool_ctx *ctx;
	struct daxpool_map *map;

	CHECK_OK(daxpool_ctx_new(&ctx));
	CHECK_OK(daxpool_ctx_set_log_priority(ctx, LOG_CRIT));
	CHECK_OK(daxpool_region_open(ctx, devdax_path(), 0, &region));
	CHECK_OK(daxpool_map_new(region, 0, daxpool_region_get_alignment(region), 0, &map));
	CHECK_OK(daxpool_rdma_reg_mr(map, r.pd, daxpool_map_get_address(map), 8192, ACCESS, &h.pin));
	CHECK_OK(daxpool_pin_set_revoke_fn(h.pin, retire_rkey, &h));
	map = daxpool_map_unref(map);

	CHECK_EQ(daxpool_region_zap(region), 2);
	CHECK(h.mr_was_live);			    /* the application had its chance first */
	CHECK(daxpool_pin_get_mr(h.pin) == NULL); /* then daxpool deregistered */
	CHECK_ERR(daxpool_region_wait_idle(region, 0, NULL), ETIMEDOUT);
	CHECK_OK(daxpool_rdma_dereg_mr(h.pin)); /* drops the pin: nothing left to deregister */
	CHECK_OK(daxpool_region_wait_idle(region, 1000, NULL));
	CHECK_OK(daxpool_region_release(region));
	daxpool_region_unref(region);
	daxpool_ctx_unref(ctx);
	rdma_close(&r);
}

TEST(mr_refused_on_a_zapped_range)
{
	struct rdma r = rdma_open();
	struct daxpool_region *region;
	struct daxpool_pin *pin = NULL;
	struct daxpool_ctx *ctx;
	struct daxpool_map *map;

	CHECK_OK(daxpool_ctx_new(&ctx));
	CHECK_OK(daxpool_ctx_set_log_priority(ctx, LOG_CRIT));
	CHECK_OK(daxpool_region_open(ctx, devdax_path(), 0, &region));
	CHECK_OK(daxpool_map_new(region, 0, daxpool_region_get_alignment(region), 0, &map));
	CHECK_EQ(daxpool_region_zap(region), 1);
	CHECK_ERR(daxpool_rdma_reg_mr(map, r.pd, daxpool_map_get_address(map), 4096, ACCESS, &pin),
		  ENXIO);
	CHECK(pin == NULL);
	CHECK_ERR(daxpool_rdma_dereg_mr(NULL), EINVAL);
	daxpool_map_unref(map);
	daxpool_region_unref(region);
	daxpool_ctx_unref(ctx);
	rdma_close(&r);
}

/*
 * After fork, an RDMA WRITE into a registered devdax map and into a
 * registered private (copied-on-write, so anonymous) map lands where the
 * parent reads it, with and without daxpool's fork protection; the child
 * writes its own view of each buffer first. Prints what the kernel did.
 */
static void fork_then_rdma_write(int protection)
{
	struct rdma r = rdma_open();
	struct daxpool_region *dax, *file;
	struct daxpool_map *dmap, *pmap;
	struct daxpool_pin *dpin, *ppin;
	struct daxpool_ctx *ctx;
	struct ibv_mr *src_mr;
	char src[4096], *d, *p;
	int status;
	pid_t pid;

	CHECK_OK(daxpool_ctx_new(&ctx));
	CHECK_OK(daxpool_ctx_set_log_priority(ctx, LOG_CRIT));
	CHECK_OK(daxpool_ctx_set_fork_protection(ctx, protection));
	CHECK_OK(daxpool_region_open(ctx, devdax_path(), 0, &dax));
	CHECK_OK(daxpool_map_new(dax, 0, daxpool_region_get_alignment(dax), 0, &dmap));
	CHECK_OK(daxpool_region_open(ctx, fixture_plain_file(1 << 20), 0, &file));
	CHECK_OK(daxpool_map_new(file, 0, 0, DAXPOOL_MAP_PRIVATE, &pmap));
	d = daxpool_map_get_address(dmap);
	p = daxpool_map_get_address(pmap);
	memset(d, 'P', 4096);
	memset(p, 'P', 4096); /* the parent's private pages are anonymous copies now */
	CHECK_OK(daxpool_rdma_reg_mr(dmap, r.pd, d, 4096, ACCESS, &dpin));
	CHECK_OK(daxpool_rdma_reg_mr(pmap, r.pd, p, 4096, ACCESS, &ppin));

	pid = fork();
	CHECK(pid >= 0);
	if (pid == 0) {
		signal(SIGSEGV, SIG_DFL);
		/* The devdax map is shared memory: leave it; write the private copy. */
		p[0] = 'C';
		_exit(0);
	}
	CHECK_EQ(waitpid(pid, &status, 0), pid);

	memset(src, 'R', sizeof(src));
	src_mr = ibv_reg_mr(r.pd, src, sizeof(src), ACCESS);
	CHECK(src_mr);
	CHECK_EQ(kf_rdma_op(r.qp, r.cq, IBV_WR_RDMA_WRITE, src_mr, src, daxpool_pin_get_mr(dpin), d,
			    sizeof(src)),
		 0);
	CHECK_EQ(kf_rdma_op(r.qp, r.cq, IBV_WR_RDMA_WRITE, src_mr, src, daxpool_pin_get_mr(ppin), p,
			    sizeof(src)),
		 0);
	printf("# protection %s (effective %d): child %s; RDMA WRITE after fork: devdax %s, "
	       "private %s\n",
	       protection == DAXPOOL_FORK_PROTECT_ALWAYS ? "always" : "auto",
	       daxpool_ctx_get_fork_protection(ctx),
	       WIFSIGNALED(status) ? strsignal(WTERMSIG(status)) : "wrote its private copy",
	       d[0] == 'R' && d[4095] == 'R' ? "landed in the parent" : "LOST",
	       p[0] == 'R' && p[4095] == 'R' ? "landed in the parent" : "LOST");
	CHECK(d[0] == 'R' && d[4095] == 'R');
	CHECK(p[0] == 'R' && p[4095] == 'R');
	if (daxpool_ctx_get_fork_protection(ctx) == 1)
		CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGSEGV);
	else
		CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);

	ibv_dereg_mr(src_mr);
	CHECK_OK(daxpool_rdma_dereg_mr(dpin));
	CHECK_OK(daxpool_rdma_dereg_mr(ppin));
	daxpool_map_unref(dmap);
	daxpool_map_unref(pmap);
	daxpool_region_unref(dax);
	daxpool_region_unref(file);
	daxpool_ctx_unref(ctx);
	rdma_close(&r);
}

TEST(fork_then_rdma_write_lands_in_the_parent)
{
	fork_then_rdma_write(DAXPOOL_FORK_PROTECT_AUTO);
}

TEST(fork_then_rdma_write_lands_in_the_parent_protected)
{
	fork_then_rdma_write(DAXPOOL_FORK_PROTECT_ALWAYS);
}
