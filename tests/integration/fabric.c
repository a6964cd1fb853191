/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * libfabric's MR cache on daxpool memory, with the real daxpoold (vm tier:
 * a devdax namespace, Soft-RoCE on a dummy netdev for rdma_cm, libfabric's
 * verbs provider with FI_EP_MSG and its MR cache at the default settings).
 *
 * A daxpool client registers 2 MiB of a devdax map through fi_mr_reg(),
 * closes the MR (the cache keeps it registered) and unmaps. Without the
 * daxpool monitor, daxpoold refuses the release and names the process (the
 * holder rule: an MR that outlives its mapping); with it
 * (daxpool_fabric_monitor_new()), the cached MR is a daxpool pin, the
 * release's zap invalidates and deregisters it, and the device is disabled.
 * On the host (no devdax, no root) it skips.
 */
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <rdma/fabric.h>
#include <rdma/fi_domain.h>
#include <rdma/fi_errno.h>

#include "daemon_harness.h"
#include "devdax_fixture.h"
#include "daxpool-fabric.h"
#include "daxpool.h"
#include "harness.h"
#include "middleware_fixture.h"

#define MR_LEN (2u << 20)

static char out[1 << 18];

struct fab {
	struct fi_info *info;
	struct fid_fabric *fabric;
	struct fid_domain *domain;
};

/* verbs, FI_EP_MSG, on the dummy netdev's address; the MR cache as libfabric sets it up. */
static int fab_open(struct fab *f)
{
	struct fi_info *hints = fi_allocinfo();
	int r;

	if (!hints)
		return -FI_ENOMEM;
	hints->ep_attr->type = FI_EP_MSG;
	hints->caps = FI_MSG | FI_RMA;
	hints->domain_attr->mr_mode = FI_MR_LOCAL | FI_MR_VIRT_ADDR | FI_MR_ALLOCATED |
				      FI_MR_PROV_KEY;
	hints->fabric_attr->prov_name = strdup("verbs");
	r = fi_getinfo(FI_VERSION(1, 13), MW_ADDR, NULL, FI_SOURCE, hints, &f->info);
	fi_freeinfo(hints);
	if (r) {
		printf("# fi_getinfo(verbs, FI_EP_MSG, %s): %s\n", MW_ADDR, fi_strerror(-r));
		return r;
	}
	printf("# libfabric %u.%u: %s on %s\n", FI_MAJOR(fi_version()), FI_MINOR(fi_version()),
	       f->info->fabric_attr->prov_name, f->info->domain_attr->name);
	r = fi_fabric(f->info->fabric_attr, &f->fabric, NULL);
	if (!r)
		r = fi_domain(f->fabric, f->info, &f->domain, NULL);
	return r;
}

static void fab_close(struct fab *f)
{
	if (f->domain)
		fi_close(&f->domain->fid);
	if (f->fabric)
		fi_close(&f->fabric->fid);
	fi_freeinfo(f->info);
}

/*
 * The client: a cached MR on daxpool memory, closed, its map dropped. Reports
 * "r" when ready, waits for a byte, checks what is left, goes. Exit status:
 * 0, or the step that failed.
 */
static int fabric_client(const char *dev, bool with_monitor, int ready, int go)
{
	struct daxpool_fabric_monitor *mon = NULL;
	struct daxpool_region *region;
	struct daxpool_map *map;
	struct daxpool_ctx *ctx;
	struct fab f = { 0 };
	struct fid_mr *mr;
	void *other;
	char c;
	int r;

	prctl(PR_SET_NAME, with_monitor ? "fabric-monitor" : "fabric-cache");
	if (daxpool_ctx_new(&ctx) || daxpool_ctx_connect_daemon(ctx, sock_path) ||
	    daxpool_region_open(ctx, dev, 0, &region) ||
	    daxpool_map_new(region, 0, daxpool_region_get_alignment(region), 0, &map))
		return 10;
	if (with_monitor) {
		r = daxpool_fabric_monitor_new(ctx, &mon);
		if (r) {
			printf("# daxpool_fabric_monitor_new: %s\n", strerror(-r));
			return 11;
		}
	}
	if (fab_open(&f))
		return 12;
	if (mon && daxpool_fabric_monitor_add_domain(mon, f.domain))
		return 13;
	memset(daxpool_map_get_address(map), 0x5a, MR_LEN);
	r = fi_mr_reg(f.domain, daxpool_map_get_address(map), MR_LEN,
		      FI_SEND | FI_RECV | FI_READ | FI_WRITE | FI_REMOTE_READ | FI_REMOTE_WRITE, 0, 0,
		      0, &mr, NULL);
	if (r) {
		printf("# fi_mr_reg on devdax: %s\n", fi_strerror(-r));
		return 14;
	}
	if (mon && (daxpool_fabric_monitor_get_pin_count(mon) != 1 ||
		    daxpool_region_get_pin_count(region, DAXPOOL_PIN_LONGTERM) != 1))
		return 15;
	if (!mon && daxpool_region_get_pin_count(region, 0) != 0)
		return 16;
	fi_close(&mr->fid); /* the cache keeps it registered */
	daxpool_map_unref(map);
	if (write(ready, "r", 1) != 1 || read(go, &c, 1) != 1)
		return 17;
	if (mon) {
		/* Drained: no pin left; the application goes on with other memory. */
		if (daxpool_fabric_monitor_get_pin_count(mon) != 0 ||
		    daxpool_region_get_pin_count(region, 0) != 0)
			return 18;
		if (posix_memalign(&other, 4096, 1 << 16))
			return 19;
		memset(other, 1, 1 << 16);
		r = fi_mr_reg(f.domain, other, 1 << 16, FI_SEND | FI_RECV, 0, 0, 0, &mr, NULL);
		if (r) {
			printf("# fi_mr_reg after the release: %s\n", fi_strerror(-r));
			return 20;
		}
		fi_close(&mr->fid);
		free(other);
		if (daxpool_fabric_monitor_remove_domain(mon, f.domain))
			return 21;
	}
	fab_close(&f); /* without the monitor: the cache's cleanup deregisters the MR */
	if (mon && daxpool_fabric_monitor_free(mon))
		return 22;
	daxpool_region_unref(region);
	daxpool_ctx_unref(ctx);
	return 0;
}

static pid_t start_client(const char *dev, bool with_monitor, int *ret_go)
{
	int ready[2], go[2];
	pid_t pid;
	char c;

	CHECK(pipe(ready) == 0 && pipe(go) == 0);
	fflush(stdout);
	pid = fork();
	CHECK(pid >= 0);
	if (pid == 0) {
		close(ready[0]);
		close(go[1]);
		_exit(fabric_client(dev, with_monitor, ready[1], go[0]));
	}
	close(ready[1]);
	close(go[0]);
	if (read(ready[0], &c, 1) != 1) {
		int status;

		waitpid(pid, &status, 0);
		printf("# the client failed before it was ready: exit %d\n",
		       WIFEXITED(status) ? WEXITSTATUS(status) : -1);
		CHECK(!"client ready");
	}
	close(ready[0]);
	*ret_go = go[1];
	return pid;
}

static void finish_client(pid_t pid, int go)
{
	int status;

	CHECK(write(go, "g", 1) == 1);
	close(go);
	CHECK_EQ(waitpid(pid, &status, 0), pid);
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
		printf("# client status %#x (exit %d)\n", status,
		       WIFEXITED(status) ? WEXITSTATUS(status) : -1);
	CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

/* Without the monitor: the idle cached MR is an MR that outlived its mapping. */
TEST_TIMEOUT(cached_mr_without_monitor_refuses_the_release, 180)
{
	const char *dev, *name;
	char pidstr[32];
	int go, rc;
	pid_t pid;

	dev = mw_need_devdax_and_rdma_cm();
	name = strrchr(dev, '/') + 1;
	CHECK(devdax_enabled(name));
	daemon_start(NULL);
	pid = start_client(dev, false, &go);
	snprintf(pidstr, sizeof(pidstr), "%d", (int)pid);
	CHECK(mw_mrs_of(pid, MR_LEN, MR_LEN)); /* closed, unmapped, still registered: the cache keeps it */
	rc = ctl(out, sizeof(out), (const char *const[]){ "release", "--timeout", "5", name, NULL });
	printf("# %s", out);
	CHECK_EQ(rc, 1);
	CHECK(strstr(out, "refused") && strstr(out, pidstr) && strstr(out, "fabric-cache"));
	CHECK(devdax_enabled(name));
	finish_client(pid, go);
	rc = ctl(out, sizeof(out), (const char *const[]){ "release", "--timeout", "30", name, NULL });
	printf("# %s", out);
	CHECK_EQ(rc, 0);
	CHECK(!devdax_enabled(name));
	daemon_kill(SIGTERM);
	devdax_enable(name);
	CHECK(devdax_enabled(name));
}

/* With the monitor: the cached MR is a pin; the release's zap deregisters it. */
TEST_TIMEOUT(cached_mr_with_monitor_drains_with_the_release, 180)
{
	const char *dev, *name;
	uint64_t t0, t1;
	bool listed = false;
	int go, rc;
	pid_t pid;

	dev = mw_need_devdax_and_rdma_cm();
	name = strrchr(dev, '/') + 1;
	CHECK(devdax_enabled(name));
	daemon_start(NULL);
	pid = start_client(dev, true, &go);
	/* The cached MR's pin (2 MiB, long-term), as daxpoold lists it (the client reports it from its own thread). */
	for (int i = 0; i < 200 && !listed; i++) {
		rc = ctl(out, sizeof(out), (const char *const[]){ "pins", name, NULL });
		listed = rc == 0 && strstr(out, "fabric-monitor") && strstr(out, "longterm") &&
			 strstr(out, "0x200000");
		if (!listed)
			msleep(50);
	}
	printf("# %s", out);
	CHECK(listed);
	CHECK(mw_mrs_of(pid, MR_LEN, MR_LEN)); /* closed, unmapped, still registered: the cache keeps it */
	t0 = now_ns();
	rc = ctl(out, sizeof(out), (const char *const[]){ "release", "--timeout", "5", name, NULL });
	t1 = now_ns();
	printf("# %s", out);
	printf("# release request to disabled: %.1f ms\n", (double)(t1 - t0) / 1e6);
	CHECK_EQ(rc, 0);
	CHECK(!devdax_enabled(name));
	CHECK(!mw_mrs_of(pid, MR_LEN, MR_LEN)); /* the zap deregistered it */
	finish_client(pid, go);
	daemon_kill(SIGTERM);
	devdax_enable(name);
	CHECK(devdax_enabled(name));
}

/* Anywhere (no device needed): the import works once per process. */
TEST(monitor_import_is_once_per_process)
{
	struct daxpool_fabric_monitor *mon, *second;
	struct daxpool_ctx *ctx;

	CHECK_OK(daxpool_ctx_new(&ctx));
	CHECK_ERR(daxpool_fabric_monitor_new(NULL, &mon), EINVAL);
	CHECK_OK(daxpool_fabric_monitor_new(ctx, &mon));
	CHECK_ERR(daxpool_fabric_monitor_new(ctx, &second), EBUSY);
	CHECK_EQ(daxpool_fabric_monitor_get_pin_count(mon), 0);
	CHECK_EQ(daxpool_fabric_monitor_flush(mon), 0);
	CHECK_OK(daxpool_fabric_monitor_free(mon));
	/* libfabric 1.17 takes one imported monitor per process lifetime, even after its close. */
	CHECK_ERR(daxpool_fabric_monitor_new(ctx, &mon), EBUSY);
	daxpool_ctx_unref(ctx);
}
