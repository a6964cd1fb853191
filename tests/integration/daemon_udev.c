/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * A device that goes away without a release through daxpoold: the daemon
 * follows udev (or the kernel's events when udevd does not run) and tells
 * every client that holds a region on it (REGION_GONE); the client marks the
 * region dead and zaps it, so the revoke functions run.
 *
 * The vm tier does it for real: daxctl disable-device on a device-dax device
 * a client maps through daxpool (a plain map, no pin: that is safe; with a
 * pin it would oops the kernel), then enable-device. On the host no device can
 * be unplugged: there the daemon is only checked to follow events from the
 * right source, and the client's side is driven by a stand-in daemon over a
 * real socket.
 */
#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>

#include <json-c/json.h>

#include "daxpool.h"
#include "harness.h"
#include "daemon_harness.h"
#include "devdax_fixture.h"
#include "util/protocol.h"

static uint64_t now_ms(void)
{
	return now_ns() / 1000000u;
}

static const char *expected_source(void)
{
	return access("/run/udev/control", F_OK) == 0 ? "udev" : "kernel";
}

/*
 * The daemon follows device events, from udev when udevd runs, else from the
 * kernel, and says which in its status.
 */
TEST(device_events_source)
{
	json_object *doc;
	const char *src;

	daemon_start(NULL);
	doc = daemon_status();
	src = json_object_get_string(json_object_object_get(doc, "device_events"));
	if (!src || strcmp(src, expected_source()) != 0)
		dp_test_fail(__FILE__, __LINE__, "device_events \"%s\", expected \"%s\"",
			     src ? src : "(missing)", expected_source());
	CHECK(json_object_is_type(json_object_object_get(doc, "gone"), json_type_array));
	CHECK_EQ(json_object_array_length(json_object_object_get(doc, "gone")), 0);
	json_object_put(doc);
	daemon_kill(SIGTERM);
}

/* ---- the client side ---- */

struct shared {
	atomic_int ready;
	atomic_int revoked; /* the map's revoke function ran */
	atomic_int dead;    /* daxpool_region_is_dead() once it turned */
	atomic_int map_new; /* 1 + daxpool_map_new() afterwards */
	atomic_int idle;    /* daxpool_region_wait_idle() afterwards */
	_Atomic uint64_t dead_ms;
	atomic_int still_open; /* 1 + holds_file() once idle: daxpool kept the file? */
	atomic_int done;    /* everything above is recorded */
};

static struct shared *sh;

/*
 * Whether this process has the file @want names open (/proc/self/fd) or
 * mapped (/proc/self/maps); its path may be gone by then (a namespace
 * disabled), so its identity is taken while it exists.
 */
static bool holds_file(const struct stat *want)
{
	struct stat st;
	struct dirent *e;
	char line[512];
	bool held = false;
	DIR *d;
	FILE *f;

	d = opendir("/proc/self/fd");
	CHECK(d);
	while (!held && (e = readdir(d)))
		held = e->d_name[0] != '.' && fstatat(dirfd(d), e->d_name, &st, 0) == 0 &&
		       st.st_dev == want->st_dev && st.st_ino == want->st_ino;
	closedir(d);
	f = fopen("/proc/self/maps", "re");
	CHECK(f);
	while (!held && fgets(line, sizeof(line), f)) {
		unsigned int maj, min;
		unsigned long long ino;

		held = sscanf(line, "%*x-%*x %*s %*x %x:%x %llu", &maj, &min, &ino) == 3 &&
		       makedev(maj, min) == want->st_dev && ino == want->st_ino;
	}
	fclose(f);
	return held;
}
static struct daxpool_map *_Atomic held;

static void on_revoke(struct daxpool_map *map, void *userdata)
{
	(void)userdata;
	atomic_store(&sh->revoked, 1);
	/* Drop it, as a holder should; the main thread drops it if this never runs. */
	if (atomic_exchange(&held, NULL) == map)
		daxpool_map_unref(map);
}

/*
 * A process that maps @path through daxpool with the daemon at @sock, waits
 * up to @wait_ms for the region to turn dead, records what it saw in *sh,
 * then waits for a byte on @cmd and exits.
 */
static pid_t client_start(const char *path, const char *sock, int *ret_cmd, unsigned wait_ms)
{
	int pfd[2];
	pid_t pid;

	CHECK(pipe(pfd) == 0);
	pid = fork();
	CHECK(pid >= 0);
	if (pid == 0) {
		struct daxpool_region *region;
		struct daxpool_map *map, *again = NULL;
		struct daxpool_ctx *ctx;
		struct stat file;
		uint64_t t0;
		char c;

		close(pfd[1]);
		CHECK(stat(path, &file) == 0);
		prctl(PR_SET_NAME, "gone-client");
		CHECK_OK(daxpool_ctx_new(&ctx));
		CHECK_OK(daxpool_ctx_connect_daemon(ctx, sock));
		CHECK_OK(daxpool_region_open(ctx, path, 0, &region));
		CHECK_OK(daxpool_map_new(region, 0, daxpool_region_get_alignment(region), 0, &map));
		atomic_store(&held, map);
		CHECK_OK(daxpool_map_set_revoke_fn(map, on_revoke, NULL));
		atomic_store(&sh->ready, 1);
		t0 = now_ms();
		while (daxpool_region_is_dead(region) != 1 && now_ms() - t0 < wait_ms)
			msleep(5);
		atomic_store(&sh->dead_ms, now_ms());
		atomic_store(&sh->dead, daxpool_region_is_dead(region));
		/* The zap follows the dead mark in the client thread: give it a moment. */
		for (int i = 0; i < 2000 && !atomic_load(&sh->revoked); i++)
			msleep(1);
		atomic_store(&sh->map_new, 1 + daxpool_map_new(region, 0, 0, 0, &again));
		daxpool_map_unref(again);
		/* The zap's own reference to the map goes after the revoke function returns. */
		atomic_store(&sh->idle, daxpool_region_wait_idle(region, 5000, NULL));
		atomic_store(&sh->still_open, 1 + holds_file(&file));
		atomic_store(&sh->done, 1);
		daxpool_map_unref(atomic_exchange(&held, NULL));
		if (read(pfd[0], &c, 1) < 0)
			_exit(2);
		daxpool_region_unref(region);
		daxpool_ctx_unref(ctx);
		_exit(0);
	}
	close(pfd[0]);
	*ret_cmd = pfd[1];
	for (int i = 0; i < 10000 && !atomic_load(&sh->ready); i++)
		msleep(1);
	CHECK(atomic_load(&sh->ready));
	return pid;
}

static void client_stop(pid_t pid, int cmd)
{
	int status;

	CHECK(write(cmd, "q", 1) == 1);
	close(cmd);
	CHECK_EQ(waitpid(pid, &status, 0), pid);
	CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

/*
 * Receive messages until one of @type; fills @m. The client batches several
 * messages into one datagram: what follows the one found is kept for the
 * next call.
 */
static void recv_until(int fd, unsigned int type, struct dp_msg *m)
{
	static uint8_t buf[DP_PROTO_MAX_DGRAM];
	static size_t off, len;

	for (;;) {
		while (off < len) {
			int r = dp_proto_decode(buf + off, len - off, m);

			CHECK(r > 0);
			off += (size_t)r;
			if (m->type == type)
				return;
		}
		ssize_t n = recv(fd, buf, sizeof(buf), 0);

		CHECK(n > 0);
		off = 0;
		len = (size_t)n;
	}
}

/*
 * The library's side, on the host: a stand-in for daxpoold (this test, on a
 * real socket) reports the device of a client's region gone. The region
 * turns dead, the map's revoke function runs, new maps fail with -ENXIO. The
 * vm tier's test below does the same with the real daemon and device.
 */
TEST(client_marks_region_dead_on_region_gone)
{
	const char *path = fixture_plain_file(4u << 20);
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	static struct dp_msg m;
	int lfd, fd, cmd;
	pid_t pid;

	sh = fixture_shared(sizeof(struct shared));
	snprintf(sock_path, sizeof(sock_path), "%s/standin.sock", fixture_dir());
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", sock_path);
	lfd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	CHECK(lfd >= 0);
	CHECK(bind(lfd, (struct sockaddr *)&sa, sizeof(sa)) == 0);
	CHECK(listen(lfd, 4) == 0);
	/* The client connects synchronously: answer its HELLO from a child of ours. */
	pid_t standin = fork();

	CHECK(standin >= 0);
	if (standin == 0) {
		uint64_t region_id;

		fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
		CHECK(fd >= 0);
		recv_until(fd, DP_MSG_HELLO, &m);
		CHECK_EQ(m.hello.role, DP_ROLE_CLIENT);
		CHECK_OK(dp_proto_send(fd, &(struct dp_msg){ .type = DP_MSG_HELLO_OK,
							     .hello_ok.version = DP_PROTO_VERSION },
				       1));
		recv_until(fd, DP_MSG_REGION_ADD, &m);
		region_id = m.region_add.id;
		recv_until(fd, DP_MSG_MAP_ADD, &m);
		CHECK_EQ(m.map_add.region_id, region_id);
		/* The client sets its revoke function after the map exists: wait for it. */
		for (int i = 0; i < 5000 && !atomic_load(&sh->ready); i++)
			msleep(1);
		CHECK(atomic_load(&sh->ready));
		/* A region id the client does not have first: ignored, not a protocol error. */
		CHECK_OK(dp_proto_send(fd, &(struct dp_msg){ .type = DP_MSG_REGION_GONE,
							     .region_gone = { region_id + 1000,
									      -ENODEV } },
				       2));
		CHECK_OK(dp_proto_send(fd, &(struct dp_msg){ .type = DP_MSG_REGION_GONE,
							     .region_gone = { region_id, -ENXIO } },
				       3));
		recv_until(fd, DP_MSG_MAP_DEL, &m); /* the revoke function dropped the map */
		/* Stay connected until the client is done. */
		while (recv(fd, &m, 1, 0) > 0)
			;
		_exit(0);
	}
	pid = client_start(path, sock_path, &cmd, 10000);
	for (int i = 0; i < 20000 && !atomic_load(&sh->done); i++)
		msleep(1);
	CHECK(atomic_load(&sh->done));
	CHECK_EQ(atomic_load(&sh->dead), 1);
	CHECK_EQ(atomic_load(&sh->revoked), 1);
	CHECK_EQ(atomic_load(&sh->map_new) - 1, -ENXIO);
	CHECK_EQ(atomic_load(&sh->idle), 0);
	client_stop(pid, cmd);
	int status;

	CHECK_EQ(waitpid(standin, &status, 0), standin);
	CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	close(lfd);
}

/* ---- the vm tier: a real device-dax device disabled behind the daemon ---- */

/* Whether @dev opens (bound, and its device node there) within 5 s. */
static bool devdax_opens(const char *dev)
{
	for (int i = 0; i < 500; i++) {
		int fd = open(dev, O_RDWR | O_CLOEXEC);

		if (fd >= 0) {
			close(fd);
			return true;
		}
		msleep(10);
	}
	return false;
}

/* Run "@tool @verb @name" (daxctl, ndctl) quietly; its exit status. */
static int run_quiet(const char *tool, const char *verb, const char *name)
{
	char cmd[160];
	int r;

	snprintf(cmd, sizeof(cmd), "%s %s %s >/dev/null 2>&1", tool, verb, name);
	r = system(cmd);
	return WIFEXITED(r) ? WEXITSTATUS(r) : 128;
}

/*
 * After the holder from before the disable exited: the kernel (6.12 at
 * least) may have unregistered the re-enabled device's char device when that
 * holder's last descriptor and mapping went (ENXIO on open, sysfs still
 * "bound"); daxpoold warns about it when the device is bound again. Report
 * what this kernel did, and leave the device usable: a disable and an enable
 * with no old holder left bring it back.
 */
static void devdax_restore(const char *dev, const char *name)
{
	if (devdax_opens(dev)) {
		printf("# %s still opens after the old holder exited\n", dev);
		return;
	}
	printf("# kernel: %s fails to open (%s) after the holder from before the disable "
	       "exited, though sysfs shows it bound; disabling and enabling it again\n",
	       dev, strerror(errno));
	CHECK_EQ(run_quiet("daxctl", "disable-device", name), 0);
	CHECK_EQ(run_quiet("daxctl", "enable-device", name), 0);
	if (!devdax_opens(dev))
		dp_test_fail(__FILE__, __LINE__, "%s still does not open: %s", dev, strerror(errno));
}

/* The gone entry of @name in a status document, or NULL. */
static json_object *status_gone(json_object *doc, const char *name)
{
	json_object *gone = json_object_object_get(doc, "gone");

	for (size_t i = 0; i < json_object_array_length(gone); i++) {
		json_object *g = json_object_array_get_idx(gone, i);

		if (strcmp(json_object_get_string(json_object_object_get(g, "device")), name) == 0)
			return g;
	}
	return NULL;
}

/* Whether the first region of the first client is marked gone. */
static bool status_region_gone(json_object *doc)
{
	json_object *cl = json_object_array_get_idx(json_object_object_get(doc, "clients"), 0);
	json_object *r = json_object_array_get_idx(json_object_object_get(cl, "regions"), 0);

	CHECK(r);
	return json_object_get_boolean(json_object_object_get(r, "gone"));
}

/* After the disable: what the client and the daemon must show. Runs in a child. */
static void check_gone(const char *name, const char *event, uint64_t t_disable)
{
	static char out[65536];
	json_object *doc, *g;
	char want[64];

	/* The client records what it saw, then says it is done. */
	for (int i = 0; i < 40000 && !atomic_load(&sh->done); i++)
		msleep(1);
	CHECK(atomic_load(&sh->done));
	CHECK_EQ(atomic_load(&sh->dead), 1);
	printf("# the client saw its region dead %llu ms after the disable started\n",
	       (unsigned long long)(atomic_load(&sh->dead_ms) - t_disable));
	CHECK_EQ(atomic_load(&sh->revoked), 1);
	CHECK_EQ(atomic_load(&sh->map_new) - 1, -ENXIO);
	CHECK_EQ(atomic_load(&sh->idle), 0);
	/* A dead device's descriptor is closed once no map holds it (lib/core/lifecycle.c). */
	CHECK_EQ(atomic_load(&sh->still_open) - 1, 0);

	doc = daemon_status();
	CHECK(strcmp(json_object_get_string(json_object_object_get(doc, "device_events")),
		     expected_source()) == 0);
	g = status_gone(doc, name);
	if (!g)
		dp_test_fail(__FILE__, __LINE__, "status does not show %s gone: %s", name,
			     json_object_to_json_string(doc));
	/* NULL: either (a namespace going away unbinds its device, then removes it). */
	if (!event)
		event = strcmp(json_object_get_string(json_object_object_get(g, "event")),
			       "unbound") == 0 ? "unbound" : "removed";
	if (strcmp(json_object_get_string(json_object_object_get(g, "event")), event) != 0)
		dp_test_fail(__FILE__, __LINE__, "%s is gone as \"%s\", expected \"%s\"", name,
			     json_object_get_string(json_object_object_get(g, "event")), event);
	CHECK_EQ(json_object_get_int(json_object_object_get(g, "regions_told")), 1);
	CHECK(status_region_gone(doc));
	json_object_put(doc);

	CHECK_EQ(ctl(out, sizeof(out), (const char *const[]){ "status", NULL }), 0);
	printf("%s", out);
	snprintf(want, sizeof(want), "gone: %s %s", name, event);
	CHECK(strstr(out, want));
	CHECK(strstr(out, " gone ")); /* the STATE column */
	_exit(0);
}

/* The namespace (e.g. "namespace0.0") whose device-dax device is @name, from ndctl list. */
static bool namespace_of(const char *name, char *ns, size_t size)
{
	static char text[1 << 16];
	json_object *doc;
	size_t len = 0;
	bool found = false;
	FILE *f = popen("ndctl list -N 2>/dev/null", "r");

	if (!f)
		return false;
	len = fread(text, 1, sizeof(text) - 1, f);
	pclose(f);
	text[len] = '\0';
	doc = json_tokener_parse(text);
	if (doc && json_object_is_type(doc, json_type_object)) {
		json_object *one = doc;

		doc = json_object_new_array();
		json_object_array_add(doc, one);
	}
	for (size_t i = 0; doc && i < json_object_array_length(doc) && !found; i++) {
		json_object *n = json_object_array_get_idx(doc, i);
		const char *chardev = json_object_get_string(json_object_object_get(n, "chardev"));

		if (chardev && strcmp(chardev, name) == 0) {
			snprintf(ns, size, "%s",
				 json_object_get_string(json_object_object_get(n, "dev")));
			found = true;
		}
	}
	json_object_put(doc);
	return found;
}

/*
 * A client maps the device-dax device through daxpool with the daemon
 * running; the device goes behind the daemon's back: the device itself with
 * "daxctl disable-device" (unbound), or its namespace with "ndctl
 * disable-namespace" (unbound, then removed). The client is told and marks
 * the region dead, its revoke function runs, the daemon shows the device
 * gone; enabling it again clears the mark, and the device opens and maps as
 * before (the tests after this one need it). The vm tier checks dmesg after
 * the run.
 */
static void unplug_behind_the_daemon(bool namespace)
{
	const char *dev = need_devdax();
	const char *name, *tool, *what;
	char ns[64];
	json_object *doc;
	int cmd, rc = 0, status;
	uint64_t t0;
	pid_t pid, checker;
	bool cleared = false;

	name = devname_of(dev);
	CHECK(devdax_enabled(name));
	if (namespace && !namespace_of(name, ns, sizeof(ns)))
		fixture_missing("ndctl and the namespace of the devdax device");
	tool = namespace ? "ndctl" : "daxctl";
	what = namespace ? ns : name;
	sh = fixture_shared(sizeof(struct shared));
	daemon_start(NULL);
	pid = client_start(dev, sock_path, &cmd, 30000);
	/* The daemon knows the client's map before the device goes. */
	for (int i = 0; i < 500; i++) {
		doc = daemon_status();
		rc = json_object_get_int(json_object_object_get(doc, "maps"));
		json_object_put(doc);
		if (rc == 1)
			break;
		msleep(10);
	}
	CHECK_EQ(rc, 1);

	t0 = now_ms();
	rc = run_quiet(tool, namespace ? "disable-namespace" : "disable-device", what);
	/* Checked in a child, so that the device is enabled again whatever they find. */
	checker = fork();
	CHECK(checker >= 0);
	if (checker == 0)
		check_gone(name, namespace ? NULL : "unbound", t0);
	CHECK_EQ(waitpid(checker, &status, 0), checker);
	if (run_quiet(tool, namespace ? "enable-namespace" : "enable-device", what) != 0)
		printf("# enabling %s again failed\n", what);
	CHECK_EQ(rc, 0);
	CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	for (int i = 0; i < 500 && !devdax_enabled(name); i++)
		msleep(10);
	CHECK(devdax_enabled(name));
	if (!devdax_opens(dev))
		dp_test_fail(__FILE__, __LINE__, "%s does not open once enabled again: %s", dev,
			     strerror(errno));

	/* Bound again: the daemon clears the gone mark. */
	for (int i = 0; i < 1000 && !cleared; i++) {
		doc = daemon_status();
		cleared = !status_gone(doc, name) && !status_region_gone(doc);
		json_object_put(doc);
		if (!cleared)
			msleep(10);
	}
	CHECK(cleared);
	client_stop(pid, cmd);
	daemon_kill(SIGTERM);
	devdax_restore(dev, name);
	{
		struct daxpool_region *region;
		struct daxpool_map *map;
		struct daxpool_ctx *ctx;

		CHECK_OK(daxpool_ctx_new(&ctx));
		CHECK_OK(daxpool_region_open(ctx, dev, 0, &region));
		CHECK_OK(daxpool_map_new(region, 0, daxpool_region_get_alignment(region), 0, &map));
		memset(daxpool_map_get_address(map), 0x5a, 4096);
		daxpool_map_unref(map);
		daxpool_region_unref(region);
		daxpool_ctx_unref(ctx);
	}
}

TEST_TIMEOUT(devdax_disabled_behind_the_daemon, 120)
{
	unplug_behind_the_daemon(false);
}

TEST_TIMEOUT(devdax_namespace_disabled_behind_the_daemon, 120)
{
	unplug_behind_the_daemon(true);
}
