/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * daxpoold's MR tracer (tools/daxpoold/umem_trace.h) on the running kernel.
 * On the host without RDMA it must say why it is off (no module, no BTF),
 * not crash; in the vm tier (rxe0, a devdax namespace, kernels 6.1 and 6.12)
 * it must be on and record real MRs: one on anonymous memory at the page
 * frames /proc/self/pagemap gives and off the device, one on the device on
 * it, both gone once deregistered.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#ifdef DAXPOOL_HAVE_RDMA
#include <infiniband/verbs.h>
#endif

#include "harness.h"
#include "umem_trace.h"

#define ACCESS_LOCAL 1 /* IBV_ACCESS_LOCAL_WRITE */

/* Start the tracer and wait for its load to end (bounded: the harness's timeout). */
static void trace_start(bool enabled)
{
	int fd = dd_umem_trace_start(enabled);

	if (fd < 0)
		return;
	while (!dd_umem_trace_on() && strstr(dd_umem_trace_reason(), "attaching")) {
		struct pollfd p = { .fd = fd, .events = POLLIN };

		CHECK(poll(&p, 1, 1000) >= 0);
		dd_umem_trace_loaded();
	}
}

/* The device-dax device's name ("dax0.0") of DAXPOOL_TEST_DEVDAX, or NULL. */
static const char *devdax_name(void)
{
	const char *dev = getenv("DAXPOOL_TEST_DEVDAX");
	const char *slash = dev ? strrchr(dev, '/') : NULL;

	return slash && slash[1] ? slash + 1 : NULL;
}

TEST(off_says_why_and_on_where_rdma_runs)
{
	trace_start(true);
	if (!dd_umem_trace_on()) {
		const char *why = dd_umem_trace_reason();

		printf("# tracer off: %s\n", why);
		CHECK(why[0]);
		CHECK_EQ(dd_umem_trace_map_dup(), -1);
		/* where there is an RDMA device to trace (the vm tier), it must work if built */
		CHECK(!getenv("DAXPOOL_TEST_RDMA_DEV") || !*getenv("DAXPOOL_TEST_RDMA_DEV") ||
		      strstr(why, "built without it"));
		if (access("/sys/module/ib_uverbs", F_OK) < 0)
			CHECK(strstr(why, "ib_uverbs is not loaded") ||
			      strstr(why, "built without it") || strstr(why, "no BTF"));
		return;
	}
	CHECK_EQ(dd_umem_trace_reason()[0], '\0');
	CHECK(dd_umem_trace_since_ns() > 0);
	int fd = dd_umem_trace_map_dup();
	CHECK(fd >= 0);
	struct dd_umem_snap s;
	CHECK_EQ(dd_umem_snap_read(fd, &s), 0);
	CHECK(s.complete);
	dd_umem_snap_free(&s);
	close(fd);
	dd_umem_trace_stop();
	CHECK(!dd_umem_trace_on());
}

TEST(configured_off_says_so)
{
	trace_start(false);
	CHECK(!dd_umem_trace_on());
	CHECK(strstr(dd_umem_trace_reason(), "mr_tracer = no") ||
	      strstr(dd_umem_trace_reason(), "built without it"));
}

/* What the loader checks first, on a crafted sysfs: each missing piece is named. */
TEST(the_loader_names_what_the_kernel_lacks)
{
	char sys[200], p[640], why[256];

	snprintf(sys, sizeof(sys), "%s/sys", fixture_dir());
	snprintf(p, sizeof(p), "mkdir -p %s/kernel/btf %s/module", sys, sys);
	CHECK_EQ(system(p), 0);
	CHECK_EQ(dd_umem_trace_check(sys, why, sizeof(why)), -ENOTSUP);
	printf("# %s\n", why);
	CHECK(strstr(why, "the kernel has no BTF") && strstr(why, "CONFIG_DEBUG_INFO_BTF)"));
	snprintf(p, sizeof(p), "%s/kernel/btf/vmlinux", sys);
	CHECK_OK(close(open(p, O_CREAT | O_WRONLY, 0644)));
	CHECK_EQ(dd_umem_trace_check(sys, why, sizeof(why)), -ENOENT);
	printf("# %s\n", why);
	CHECK(strstr(why, "ib_uverbs is not loaded") && strstr(why, "attaches when it is"));
	snprintf(p, sizeof(p), "%s/module/ib_uverbs", sys);
	CHECK_EQ(mkdir(p, 0755), 0);
	CHECK_EQ(dd_umem_trace_check(sys, why, sizeof(why)), -ENOTSUP);
	printf("# %s\n", why);
	CHECK(strstr(why, "ib_uverbs has no BTF") && strstr(why, "CONFIG_DEBUG_INFO_BTF_MODULES"));
	snprintf(p, sizeof(p), "%s/kernel/btf/ib_uverbs", sys);
	CHECK_OK(close(open(p, O_CREAT | O_WRONLY, 0644)));
	CHECK_EQ(dd_umem_trace_check(sys, why, sizeof(why)), 0);
	CHECK_EQ(why[0], '\0');
}

TEST(pure_range_test)
{
	struct dd_umem_rec r = { .n_ranges = 2 };
	struct dd_pfn_range dev = { 1000, 2000 };

	r.range[0] = (struct dd_umem_range){ 10, 20 };
	r.range[1] = (struct dd_umem_range){ 2000, 2100 };
	CHECK(!dd_umem_rec_touches(&r, &dev, 1)); /* [start, end): 2000 is past it */
	r.range[1].start = 1999;
	CHECK(dd_umem_rec_touches(&r, &dev, 1));
	r.n_ranges = 1;
	CHECK(!dd_umem_rec_touches(&r, &dev, 1));
	r.flags = DD_UMEM_UNKNOWN; /* not walked: it may pin anything */
	CHECK(dd_umem_rec_touches(&r, &dev, 1));
	r.flags = 0;
	r.n_ranges = 0; /* pins nothing */
	CHECK(!dd_umem_rec_touches(&r, &dev, 1));
}

#ifdef DAXPOOL_HAVE_RDMA
static struct ibv_context *verbs;
static struct ibv_pd *pd;

static void rdma_up(void)
{
	const char *name = getenv("DAXPOOL_TEST_RDMA_DEV");
	struct ibv_device **list;
	int n;

	if (!name || !*name)
		fixture_missing("an RDMA device (DAXPOOL_TEST_RDMA_DEV)");
	list = ibv_get_device_list(&n);
	CHECK(list);
	for (int i = 0; i < n && !verbs; i++)
		if (strcmp(ibv_get_device_name(list[i]), name) == 0)
			verbs = ibv_open_device(list[i]);
	ibv_free_device_list(list);
	CHECK(verbs);
	pd = ibv_alloc_pd(verbs);
	CHECK(pd);
	trace_start(true);
	if (!dd_umem_trace_on() && strstr(dd_umem_trace_reason(), "built without it"))
		SKIP("daxpoold was built without its MR tracer (DAXPOOL_BPF)");
	if (!dd_umem_trace_on())
		dp_test_fail(__FILE__, __LINE__, "tracer off: %s", dd_umem_trace_reason());
}

/* The records of this process now. */
static size_t mine(int fd, struct dd_umem *out, size_t cap)
{
	struct dd_umem_snap s;
	size_t n = 0;

	CHECK_EQ(dd_umem_snap_read(fd, &s), 0);
	CHECK(s.complete);
	for (size_t i = 0; i < s.n; i++)
		if (s.u[i].rec.tgid == (uint32_t)getpid() && n < cap)
			out[n++] = s.u[i];
	dd_umem_snap_free(&s);
	return n;
}

static uint64_t pagemap_pfn(const void *addr)
{
	uint64_t e = 0;
	int fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);

	CHECK(fd >= 0);
	CHECK_EQ(pread(fd, &e, sizeof(e), (off_t)((uintptr_t)addr / 4096 * 8)), (ssize_t)sizeof(e));
	close(fd);
	return e & ((1ull << 55) - 1);
}

TEST(an_anonymous_mr_is_recorded_off_the_device)
{
	struct dd_pfn_range dev[8];
	struct dd_umem u[4];
	size_t len = 1 << 20;
	const char *name = devdax_name();
	int nd, fd;

	rdma_up();
	if (!name)
		fixture_missing("a devdax device (DAXPOOL_TEST_DEVDAX)");
	nd = dd_dax_pfn_ranges(name, dev, 8);
	CHECK(nd > 0);
	printf("# %s: frames %#llx-%#llx\n", name, (unsigned long long)dev[0].start,
	       (unsigned long long)dev[0].end);
	fd = dd_umem_trace_map_dup();
	CHECK(fd >= 0);
	CHECK_EQ(mine(fd, u, 4), 0u);
	char *buf = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	CHECK(buf != MAP_FAILED);
	memset(buf, 1, len);
	struct ibv_mr *mr = ibv_reg_mr(pd, buf, len, ACCESS_LOCAL);
	CHECK(mr);
	CHECK_EQ(mine(fd, u, 4), 1u);
	printf("# record: %u range(s), first %#llx-%#llx, flags %u, npages %llu\n",
	       u[0].rec.n_ranges, (unsigned long long)u[0].rec.range[0].start,
	       (unsigned long long)u[0].rec.range[0].end, u[0].rec.flags,
	       (unsigned long long)u[0].rec.npages);
	CHECK_EQ(u[0].rec.npages, (uint64_t)(len / 4096));
	CHECK_EQ(u[0].rec.length, (uint64_t)len);
	CHECK(!(u[0].rec.flags & DD_UMEM_UNKNOWN));
	CHECK(!dd_umem_rec_touches(&u[0].rec, dev, (size_t)nd));
	/* the frames the kernel pinned are the ones the record names */
	uint64_t pfn = pagemap_pfn(buf);
	struct dd_pfn_range at = { pfn, pfn + 1 };
	CHECK(pfn != 0);
	CHECK(dd_umem_rec_touches(&u[0].rec, &at, 1));
	CHECK(dd_umem_still_live(fd, &u[0]));
	CHECK_EQ(ibv_dereg_mr(mr), 0);
	CHECK(!dd_umem_still_live(fd, &u[0]));
	CHECK_EQ(mine(fd, u, 4), 0u);
	munmap(buf, len);
	close(fd);
}

TEST(a_devdax_mr_is_recorded_on_the_device_after_unmap)
{
	struct dd_pfn_range dev[8];
	struct dd_umem u[4];
	size_t len = 2 << 20;
	const char *name = devdax_name();
	int nd, fd, dfd;

	rdma_up();
	if (!name)
		fixture_missing("a devdax device (DAXPOOL_TEST_DEVDAX)");
	nd = dd_dax_pfn_ranges(name, dev, 8);
	CHECK(nd > 0);
	fd = dd_umem_trace_map_dup();
	dfd = open(getenv("DAXPOOL_TEST_DEVDAX"), O_RDWR | O_CLOEXEC);
	CHECK(dfd >= 0);
	char *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, dfd, 0);
	CHECK(p != MAP_FAILED);
	p[0] = 1;
	struct ibv_mr *mr = ibv_reg_mr(pd, p, len, ACCESS_LOCAL);
	CHECK(mr);
	munmap(p, len);
	close(dfd);
	CHECK_EQ(mine(fd, u, 4), 1u);
	printf("# record: %u range(s), first %#llx-%#llx\n", u[0].rec.n_ranges,
	       (unsigned long long)u[0].rec.range[0].start,
	       (unsigned long long)u[0].rec.range[0].end);
	CHECK(dd_umem_rec_touches(&u[0].rec, dev, (size_t)nd));
	CHECK_EQ(u[0].rec.n_ranges, 1u); /* one contiguous 2 MiB extent */
	CHECK_EQ(u[0].rec.range[0].end - u[0].rec.range[0].start, (uint64_t)(len / 4096));
	CHECK_EQ(ibv_dereg_mr(mr), 0);
	CHECK_EQ(mine(fd, u, 4), 0u);
	close(fd);
}
#endif

