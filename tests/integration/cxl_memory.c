/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * CXL memory: a devdax namespace on a CXL persistent-memory region,
 * described (daxpool_region_is_cxl(), daxpoolctl info), released while a
 * daxpool client holds an RDMA MR on it and an outsider holds another, and
 * given back with release --teardown; an MR on a CXL namespace with its
 * struct pages on the device refused before the kernel fails it. In the vm
 * tier's CXL machine (backing cxl: tests/vm/README.md); on the host, the
 * refusals that need no device.
 */
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <json-c/json.h>

#include "daemon_harness.h"
#include "daxpool.h"
#include "devdax_fixture.h"
#include "harness.h"

static char out[1 << 18];

/* The output of "daxpoolctl ARGS" (no socket: info is no daemon command), parsed. */
static json_object *ctl_json(const char *args)
{
	char cmd[512];
	size_t len;
	FILE *p;

	snprintf(cmd, sizeof(cmd), "%s %s",
		 access(DAXPOOLCTL_PATH, X_OK) == 0 ? DAXPOOLCTL_PATH : "daxpoolctl", args);
	p = popen(cmd, "r");
	CHECK(p);
	len = fread(out, 1, sizeof(out) - 1, p);
	out[len] = '\0';
	pclose(p);
	return json_tokener_parse(out);
}

static const char *jstr(json_object *o, const char *key)
{
	json_object *v = json_object_object_get(o, key);

	return v ? json_object_get_string(v) : "";
}

/* daxpoolctl info says of a plain file that it claims nothing of CXL, and why. */
TEST(info_of_a_file_claims_no_cxl)
{
	const char *path = fixture_backing(8u << 20);
	char args[256];
	json_object *doc, *cxl;

	if (fixture_backing_kind() != FIXTURE_FILE)
		SKIP("a plain file backing only");
	snprintf(args, sizeof(args), "info --json %s", path);
	doc = ctl_json(args);
	CHECK(doc);
	cxl = json_object_object_get(doc, "cxl");
	CHECK(cxl && !json_object_get_boolean(json_object_object_get(cxl, "cxl")));
	CHECK(strstr(jstr(cxl, "reason"), "not a device-dax device"));
	CHECK(json_object_object_get(doc, "namespace") == NULL);
	json_object_put(doc);
}

/*
 * --teardown is a release's, of a device on a CXL region: for a file it is
 * refused before anything is drained (the daemon answers with the reason),
 * as it is with --force, and daxpoolctl refuses it for any other operation.
 */
TEST(teardown_refused_for_a_file)
{
	const char *path = fixture_backing(8u << 20);
	json_object *doc;
	int rc;

	if (fixture_backing_kind() != FIXTURE_FILE)
		SKIP("a plain file backing only");
	daemon_start(NULL);
	rc = ctl(out, sizeof(out),
		 (const char *const[]){ "release", "--teardown", "--json", path, NULL });
	CHECK_EQ(rc, 1);
	doc = json_tokener_parse(out);
	CHECK(doc);
	printf("# %s\n", jstr(doc, "error"));
	CHECK(strstr(jstr(doc, "error"), "--teardown is for the release of a device-dax device"));
	json_object_put(doc);
	rc = ctl(out, sizeof(out), (const char *const[]){ "release", "--teardown", "--force",
							  "--json", path, NULL });
	CHECK_EQ(rc, 1);
	doc = json_tokener_parse(out);
	CHECK(doc && strstr(jstr(doc, "error"), "--teardown cannot be forced"));
	json_object_put(doc);
	rc = ctl(out, sizeof(out),
		 (const char *const[]){ "truncate", "--teardown", path, "4096", NULL });
	CHECK(rc != 0 && rc != 1);
	daemon_kill(SIGTERM);
}

#ifdef DAXPOOL_HAVE_RDMA
#include <infiniband/verbs.h>

#include "kfacts_rdma.h"

/* The CXL device of the vm tier's CXL machine; skips with the machine's reason without one. */
static const char *need_cxl_devdax(void)
{
	const char *why = getenv("DAXPOOL_TEST_CXL_SKIP");

	if (why && *why)
		SKIP("%s", why); /* the kernel or the emulator cannot give a CXL device */
	if (!getenv("DAXPOOL_TEST_DEVDAX") ||
	    !strstr(getenv("DAXPOOL_TEST_DEVDAX"), "dax") ||
	    (fixture_require() && !getenv("DAXPOOL_TEST_CXL_MACHINE")))
		fixture_missing("a devdax namespace on a CXL region (the vm tier's CXL machine)");
	return need_devdax_and_rdma();
}

static bool sysfs_has(const char *bus_dev)
{
	char p[160];

	snprintf(p, sizeof(p), "/sys/bus/%s", bus_dev);
	return access(p, F_OK) == 0;
}

/*
 * A daxpool client on @dev: a map, and an RDMA MR on its first MiB through
 * daxpool_rdma_reg_mr(). Once the MR is registered it writes the CXL region
 * it was told into @ready_fd; when a release revokes the pin (daxpool
 * deregisters the MR) it drops the pin and the map and exits 0.
 */
static pid_t start_cxl_client(const char *dev, int ready_fd)
{
	pid_t pid = fork();

	CHECK(pid >= 0);
	if (pid)
		return pid;
	struct ibv_context *verbs = kf_rdma_open(getenv("DAXPOOL_TEST_RDMA_DEV"));
	struct ibv_pd *pd = verbs ? ibv_alloc_pd(verbs) : NULL;
	struct daxpool_region *region;
	struct daxpool_map *map;
	struct daxpool_pin *pin;
	struct daxpool_ctx *ctx;
	char line[64];

	prctl(PR_SET_NAME, "cxl-client");
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	CHECK(pd);
	CHECK_OK(daxpool_ctx_new(&ctx));
	CHECK_OK(daxpool_ctx_connect_daemon(ctx, sock_path));
	CHECK_OK(daxpool_region_open(ctx, dev, 0, &region));
	CHECK_EQ(daxpool_region_is_cxl(region), 1);
	CHECK_OK(daxpool_map_new(region, 0, daxpool_region_get_alignment(region), 0, &map));
	CHECK_OK(daxpool_rdma_reg_mr(map, pd, daxpool_map_get_address(map), 1 << 20, MR_ACCESS,
				     &pin));
	snprintf(line, sizeof(line), "%s\n", daxpool_region_get_cxl_region(region));
	CHECK(write(ready_fd, line, strlen(line)) == (ssize_t)strlen(line));
	/* The zap's revoke deregisters the MR in this process; bounded by the test's timeout. */
	while (daxpool_pin_get_mr(pin))
		msleep(2);
	CHECK_OK(daxpool_rdma_dereg_mr(pin));
	daxpool_map_unref(map);
	msleep(200); /* connected until the release is done */
	daxpool_region_unref(region);
	daxpool_ctx_unref(ctx);
	ibv_dealloc_pd(pd);
	ibv_close_device(verbs);
	_exit(0);
}

/*
 * The headline: the CXL namespace is described; release --teardown is
 * refused, naming the outsider, while it holds an MR the drain cannot
 * revoke (nothing changes: the device, namespace and region stay); once it
 * let go, the release drains the daxpool client (its MR deregistered by
 * daxpool), disables the device, destroys the namespace and disables and
 * deletes the CXL region. The guest checks dmesg after the run.
 */
TEST_TIMEOUT(release_teardown_of_a_cxl_devdax, 240)
{
	const char *dev = need_cxl_devdax();
	const char *name = devname_of(dev);
	char args[256], cxlregion[40] = "", p[96], pidstr[32];
	json_object *doc, *cxl, *td;
	int ready[2], go, rc, status;
	pid_t client, outsider;
	ssize_t n;

	/* Described: by daxpoolctl info (JSON) as the library sees it. */
	snprintf(args, sizeof(args), "info --json %s", dev);
	doc = ctl_json(args);
	CHECK(doc);
	cxl = json_object_object_get(doc, "cxl");
	printf("# info: namespace %s, memmap %s, cxl %s\n", jstr(doc, "namespace"),
	       jstr(doc, "memmap"), json_object_to_json_string(cxl));
	CHECK(json_object_get_boolean(json_object_object_get(cxl, "cxl")));
	CHECK(strncmp(jstr(cxl, "region"), "region", 6) == 0);
	CHECK(strncmp(jstr(cxl, "decoder"), "decoder", 7) == 0);
	CHECK(strcmp(json_object_get_string(json_object_array_get_idx(
			     json_object_object_get(cxl, "memdevs"), 0)),
		     "mem0") == 0);
	CHECK_EQ(json_object_get_int(json_object_object_get(cxl, "interleave_ways")), 1);
	CHECK(json_object_get_int(json_object_object_get(cxl, "interleave_granularity")) >= 256);
	CHECK(strcmp(jstr(doc, "memmap"), "mem") == 0);
	snprintf(cxlregion, sizeof(cxlregion), "%s", jstr(cxl, "region"));
	json_object_put(doc);
	snprintf(p, sizeof(p), "cxl/devices/%s", cxlregion);
	CHECK(sysfs_has(p));

	daemon_start(NULL);
	CHECK(pipe(ready) == 0);
	client = start_cxl_client(dev, ready[1]);
	n = read(ready[0], args, sizeof(args) - 1);
	CHECK(n > 0);
	args[n] = '\0';
	CHECK(strncmp(args, cxlregion, strlen(cxlregion)) == 0); /* the client saw it too */
	outsider = start_mr_holder(dev, 1 << 20, "cxl-outsider", false, &go);
	snprintf(pidstr, sizeof(pidstr), "%d", (int)outsider);

	/* Refused while the outsider's MR may pin it: named, and nothing torn down. */
	rc = ctl(out, sizeof(out), (const char *const[]){ "release", "--teardown", "--timeout",
							  "5", name, NULL });
	printf("# %s", out);
	CHECK_EQ(rc, 1);
	CHECK(strstr(out, "refused") && strstr(out, pidstr) && strstr(out, "cxl-outsider"));
	CHECK(strstr(out, "possible pin: RDMA MR") && strstr(out, "length 1048576"));
	CHECK(devdax_enabled(name));
	CHECK(sysfs_has(p));

	/* Let go: drained, disabled, torn down. */
	CHECK(write(go, "g", 1) == 1);
	CHECK_EQ(waitpid(outsider, &status, 0), outsider);
	CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	rc = ctl(out, sizeof(out), (const char *const[]){ "release", "--teardown", "--json",
							  "--timeout", "60", name, NULL });
	doc = json_tokener_parse(out);
	CHECK(doc);
	printf("# %s: %s\n", jstr(doc, "result"), jstr(doc, "message"));
	CHECK_EQ(rc, 0);
	CHECK(strcmp(jstr(doc, "result"), "released") == 0);
	CHECK_EQ(json_object_get_int(json_object_object_get(doc, "clients_revoked")), 1);
	td = json_object_object_get(doc, "teardown");
	CHECK(td);
	CHECK(json_object_get_boolean(json_object_object_get(td, "namespace_destroyed")));
	CHECK(json_object_get_boolean(json_object_object_get(td, "region_disabled")));
	CHECK(json_object_get_boolean(json_object_object_get(td, "region_deleted")));
	CHECK(strcmp(jstr(td, "cxl_region"), cxlregion) == 0);
	/* The figures of the note. */
	printf("# CXL release --teardown: drained in %.3f ms, teardown %.3f ms, whole request "
	       "%.3f ms\n",
	       json_object_get_double(json_object_object_get(doc, "drained_ms")),
	       json_object_get_double(json_object_object_get(td, "teardown_ms")),
	       json_object_get_double(json_object_object_get(doc, "duration_ms")));
	json_object_put(doc);
	CHECK_EQ(waitpid(client, &status, 0), client);
	CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	CHECK(!sysfs_has(p));
	snprintf(p, sizeof(p), "dax/devices/%s", name);
	CHECK(!sysfs_has(p));
	daemon_kill(SIGTERM);
}

/*
 * A new pmem region on mem0 of the CXL machine (the first test gave the
 * tier's back): skips with the machine's reason where there is no memdev.
 */
static void new_cxl_region(void)
{
	const char *why = getenv("DAXPOOL_TEST_CXL_SKIP");

	if (why && *why)
		SKIP("%s", why);
	if (!getenv("DAXPOOL_TEST_CXL_MACHINE"))
		fixture_missing("the vm tier's CXL machine (DAXPOOL_TEST_CXL_MACHINE)");
	CHECK_EQ(shell("cxl create-region -t pmem -m -d decoder0.0 -w 1 mem0 >/dev/null"), 0);
}

/* Nothing pins them any more: the namespaces and regions go as an administrator would do it. */
static void destroy_cxl_regions(void)
{
	CHECK_EQ(shell("ndctl destroy-namespace -f all >/dev/null"), 0);
	CHECK_EQ(shell("cxl destroy-region -f all"), 0);
}

/* The device-dax name ("dax0.1") of the namespace ndctl created, from its JSON in @file. */
static void created_dax(const char *file, char *dev, size_t size)
{
	char cmd[256], name[40] = "";
	FILE *f;

	snprintf(cmd, sizeof(cmd), "sed -n 's/.*\"chardev\":\"\\(dax[0-9.]*\\)\".*/\\1/p' %s", file);
	f = popen(cmd, "r");
	CHECK(f);
	CHECK(fscanf(f, "%39s", name) == 1);
	pclose(f);
	snprintf(dev, size, "/dev/%s", name);
}

/*
 * Two namespaces on one CXL region: a teardown of one would disable the
 * region under the other, undrained, so it is refused before anything is
 * drained, naming the other; both devices stay enabled.
 */
TEST_TIMEOUT(teardown_refused_while_the_region_holds_another_namespace, 180)
{
	char dev[64], other[64];
	json_object *doc;
	int rc;

	new_cxl_region();
	CHECK_EQ(shell("ndctl create-namespace -m devdax --map=mem -a 2M -s 64M -n cxl-a "
		       ">/tmp/cxl-a.json"),
		 0);
	CHECK_EQ(shell("ndctl create-namespace -m devdax --map=mem -a 2M -s 64M -n cxl-b "
		       ">/tmp/cxl-b.json"),
		 0);
	created_dax("/tmp/cxl-a.json", dev, sizeof(dev));
	created_dax("/tmp/cxl-b.json", other, sizeof(other));
	printf("# %s and %s on one CXL region\n", dev, other);
	daemon_start(NULL);
	rc = ctl(out, sizeof(out), (const char *const[]){ "release", "--teardown", "--json",
							  "--timeout", "5", devname_of(dev), NULL });
	doc = json_tokener_parse(out);
	CHECK(doc);
	printf("# %s\n", jstr(doc, "error"));
	CHECK_EQ(rc, 1);
	CHECK(strstr(jstr(doc, "error"), "also holds") && strstr(jstr(doc, "error"), "undrained"));
	json_object_put(doc);
	CHECK(devdax_enabled(devname_of(dev)) && devdax_enabled(devname_of(other)));
	daemon_kill(SIGTERM);
	destroy_cxl_regions();
}

/*
 * A namespace on a CXL region with its struct pages on the CXL memory
 * (--map=dev): the library says so and refuses the MR with -EOPNOTSUPP
 * before calling ibv_reg_mr(), which would fail with ENOMEM and a kernel
 * WARNING (6.1).
 */
TEST_TIMEOUT(rdma_mr_refused_on_a_cxl_namespace_with_map_dev, 180)
{
	struct ibv_context *verbs;
	struct daxpool_region *region;
	struct daxpool_map *map;
	struct daxpool_pin *pin = NULL;
	struct daxpool_ctx *ctx;
	struct ibv_pd *pd;
	char dev[64] = "";

	new_cxl_region();
	CHECK_EQ(shell("ndctl create-namespace -m devdax --map=dev -a 2M -n cxl-mapdev "
		       "| tee /tmp/cxl-ns.json"),
		 0);
	created_dax("/tmp/cxl-ns.json", dev, sizeof(dev));
	printf("# %s, struct pages on the device\n", dev);

	verbs = kf_rdma_open(getenv("DAXPOOL_TEST_RDMA_DEV"));
	CHECK(verbs);
	pd = ibv_alloc_pd(verbs);
	CHECK(pd);
	CHECK_OK(daxpool_ctx_new(&ctx));
	CHECK_OK(daxpool_region_open(ctx, dev, 0, &region));
	CHECK_EQ(daxpool_region_is_cxl(region), 1);
	CHECK(daxpool_region_get_memmap(region) &&
	      strcmp(daxpool_region_get_memmap(region), "dev") == 0);
	CHECK_OK(daxpool_map_new(region, 0, daxpool_region_get_alignment(region), 0, &map));
	CHECK_ERR(daxpool_rdma_reg_mr(map, pd, daxpool_map_get_address(map), 1 << 20, MR_ACCESS,
				      &pin),
		  EOPNOTSUPP);
	CHECK(pin == NULL);
	CHECK_EQ(daxpool_region_get_pin_count(region, DAXPOOL_PIN_LONGTERM), 0);
	daxpool_map_unref(map);
	daxpool_region_unref(region);
	daxpool_ctx_unref(ctx);
	ibv_dealloc_pd(pd);
	ibv_close_device(verbs);
	destroy_cxl_regions();
}
#endif /* DAXPOOL_HAVE_RDMA */
