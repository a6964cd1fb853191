/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * UCX memory handles on daxpool memory, with the real daxpoold (vm tier: a
 * devdax namespace, rxe0; UCX's rc_verbs memory domain on it).
 *
 * Without libdaxpool-ucx, ucp_mem_unmap() leaves the registration in UCX's
 * rcache: the MR outlives the application's map, and daxpoold refuses the
 * release naming the process. With it (daxpool_ucx_mem_map()), the handle is
 * a pin: the release's zap runs the application's revoke function, reports
 * the range to UCX's memory hooks as unmapped (ucm_vm_munmap()) and unmaps the
 * handle, which deregisters at once; the device is disabled. On the host (no
 * devdax) it skips. The client has a context but no worker: a worker's own
 * registrations would have the release refused (ucx_traffic.c).
 */
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <ucp/api/ucp.h>

#include "daemon_harness.h"
#include "devdax_fixture.h"
#include "daxpool-ucx.h"
#include "daxpool.h"
#include "harness.h"
#include "middleware_fixture.h"
#include "ucx_fixture.h"

#define MR_LEN (2u << 20)

static char out[1 << 18];

/* A thread-safe UCP context with RMA on the vm tier's rxe device (rc_verbs). */
static ucp_context_h ucx_open(void)
{
	char devs[64];

	snprintf(devs, sizeof(devs), "%s:1", getenv("DAXPOOL_TEST_RDMA_DEV"));
	return ucx_fixture_context("rc_verbs", devs);
}

static atomic_int revoked;

static void mem_revoked(struct daxpool_ucx_mem *mem, void *userdata)
{
	(void)userdata;
	/* The memh is still mapped here: stop the traffic on it, retire its rkeys. */
	atomic_store(&revoked, daxpool_ucx_mem_get_memh(mem) != NULL ? 1 : 2);
}

/* The client. Exit status: 0, or the step that failed. */
static int ucx_client(const char *dev, bool with_lib, int ready, int go)
{
	struct daxpool_ucx_mem *mem = NULL;
	ucp_mem_map_params_t params = { 0 };
	struct daxpool_region *region;
	struct daxpool_map *map;
	struct daxpool_ctx *ctx;
	ucp_context_h context;
	ucp_mem_h memh;
	void *other;
	char c;

	prctl(PR_SET_NAME, with_lib ? "ucx-pinned" : "ucx-rcache");
	if (daxpool_ctx_new(&ctx) || daxpool_ctx_connect_daemon(ctx, sock_path) ||
	    daxpool_region_open(ctx, dev, 0, &region) ||
	    daxpool_map_new(region, 0, daxpool_region_get_alignment(region), 0, &map))
		return 10;
	context = ucx_open();
	if (!context)
		return 11;
	memset(daxpool_map_get_address(map), 0x5a, MR_LEN);
	if (!with_lib) {
		/* Straight to UCX: the rcache keeps the registration after the unmap. */
		params.field_mask = UCP_MEM_MAP_PARAM_FIELD_ADDRESS | UCP_MEM_MAP_PARAM_FIELD_LENGTH;
		params.address = daxpool_map_get_address(map);
		params.length = MR_LEN;
		if (ucp_mem_map(context, &params, &memh) != UCS_OK)
			return 12;
		ucp_mem_unmap(context, memh);
		daxpool_map_unref(map);
		if (write(ready, "r", 1) != 1 || read(go, &c, 1) != 1)
			return 13;
	} else {
		if (daxpool_ucx_mem_map(map, context, daxpool_map_get_address(map), MR_LEN, &mem))
			return 14;
		daxpool_ucx_mem_set_revoke_fn(mem, mem_revoked, NULL);
		daxpool_map_unref(map); /* the handle's pin holds it */
		if (write(ready, "r", 1) != 1)
			return 15;
		/* The application's loop: it sees the revocation and drops the handle. */
		for (int i = 0; i < 60000 && !atomic_load(&revoked); i++)
			usleep(1000);
		if (atomic_load(&revoked) != 1)
			return 16; /* not revoked, or revoked without a memh */
		for (int i = 0; i < 5000 && daxpool_ucx_mem_get_memh(mem); i++)
			usleep(1000);
		if (daxpool_ucx_mem_get_memh(mem))
			return 17;
		daxpool_ucx_mem_unmap(mem);
		if (read(go, &c, 1) != 1)
			return 18;
		/* Carries on with other memory. */
		if (posix_memalign(&other, 4096, 1 << 16))
			return 19;
		params.field_mask = UCP_MEM_MAP_PARAM_FIELD_ADDRESS | UCP_MEM_MAP_PARAM_FIELD_LENGTH;
		params.address = other;
		params.length = 1 << 16;
		if (ucp_mem_map(context, &params, &memh) != UCS_OK)
			return 20;
		ucp_mem_unmap(context, memh);
		free(other);
	}
	ucp_cleanup(context);
	daxpool_region_unref(region);
	daxpool_ctx_unref(ctx);
	return 0;
}

static pid_t start_client(const char *dev, bool with_lib, int *ret_go)
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
		_exit(ucx_client(dev, with_lib, ready[1], go[0]));
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

TEST_TIMEOUT(rcache_registration_refuses_the_release, 180)
{
	const char *dev = need_devdax_and_rdma(), *name = strrchr(dev, '/') + 1;
	char pidstr[32];
	int go, rc;
	pid_t pid;

	CHECK(devdax_enabled(name));
	daemon_start(NULL);
	pid = start_client(dev, false, &go);
	snprintf(pidstr, sizeof(pidstr), "%d", (int)pid);
	CHECK(mw_mrs_of(pid, MR_LEN, SIZE_MAX) >= 1); /* unmapped, still registered: the rcache keeps it */
	rc = ctl(out, sizeof(out), (const char *const[]){ "release", "--timeout", "5", name, NULL });
	printf("# %s", out);
	CHECK_EQ(rc, 1);
	CHECK(strstr(out, "refused") && strstr(out, pidstr) && strstr(out, "ucx-rcache"));
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

TEST_TIMEOUT(memh_pin_drains_with_the_release, 180)
{
	const char *dev = need_devdax_and_rdma(), *name = strrchr(dev, '/') + 1;
	uint64_t t0, t1;
	int go, rc;
	pid_t pid;

	CHECK(devdax_enabled(name));
	daemon_start(NULL);
	pid = start_client(dev, true, &go);
	CHECK(mw_mrs_of(pid, MR_LEN, SIZE_MAX) >= 1);
	t0 = now_ns();
	rc = ctl(out, sizeof(out), (const char *const[]){ "release", "--timeout", "5", name, NULL });
	t1 = now_ns();
	printf("# %s", out);
	printf("# release request to disabled: %.1f ms\n", (double)(t1 - t0) / 1e6);
	CHECK_EQ(rc, 0);
	CHECK(!devdax_enabled(name));
	CHECK_EQ(mw_mrs_of(pid, MR_LEN, SIZE_MAX), 0); /* deregistered at once, not left in the rcache */
	finish_client(pid, go);
	daemon_kill(SIGTERM);
	devdax_enable(name);
	CHECK(devdax_enabled(name));
}
