/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * libdaxpool-remote with the real daxpoold (vm tier): a server process
 * exports 2 MiB of the devdax device to a peer process that writes into it
 * with RDMA; "daxpoolctl release" of the device while the peer writes.
 *
 * Two hosts: two rxe devices on the two ends of a veth pair, each end with
 * an address of its own. Not two network namespaces: rxe in Linux 6.1 and
 * 6.12 opens its UDP socket and looks its routes up in the initial
 * namespace only, so an rxe device on a netdev of another namespace neither
 * receives nor sends. Both ends stay in the initial namespace, and policy
 * routing (a rule per outgoing device ahead of the local table, accept_local)
 * makes the traffic between the two addresses cross the veth pair instead of
 * the loopback; the test checks it did (the veth's packet counters).
 *
 * What is checked: the peer's writes land in the server's map; the peers'
 * grants are daxpool pins the release drains; the release's zap tells the
 * peer, whose next write with the old rkey fails with a remote access error;
 * the release completes and disables the device; the kernel log has no
 * warning. Both grant modes: type-2 windows (rxe has them) and one MR per
 * grant (forced with DAXPOOL_REMOTE_SERVER_NO_WINDOWS); and a peer that does
 * not acknowledge, disconnected at the revoke deadline. On the host (no
 * devdax, no root, no rxe) it skips.
 */
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "daemon_harness.h"
#include "devdax_fixture.h"
#include "daxpool-remote.h"
#include "daxpool.h"
#include "harness.h"

#define NET0 "dprm0"
#define NET1 "dprm1"
#define RXE0 "rxerm0"
#define RXE1 "rxerm1"
#define ADDR0 "10.78.0.1" /* the server's end */
#define ADDR1 "10.78.0.2" /* the peer's end */
#define EXPORT_LEN (2u << 20)
#define CHUNK 4096
#define RDMA_TOOL "/usr/bin/rdma"
/* iproute2's ip by its path: the guest's busybox sh prefers its own applet, which has no veth peers. */
#define IP "/usr/sbin/ip"

static char out[1 << 18];

static int sysctl_set(const char *path, const char *v)
{
	int fd = open(path, O_WRONLY);
	bool ok;

	if (fd < 0)
		return -1;
	ok = write(fd, v, strlen(v)) == (ssize_t)strlen(v);
	close(fd);
	return ok ? 0 : -1;
}

static unsigned long long counter(const char *dev, const char *what)
{
	char p[128], buf[32] = "";
	unsigned long long v = 0;
	int fd;

	snprintf(p, sizeof(p), "/sys/class/net/%s/statistics/%s", dev, what);
	fd = open(p, O_RDONLY);
	if (fd >= 0) {
		if (read(fd, buf, sizeof(buf) - 1) > 0)
			v = strtoull(buf, NULL, 10);
		close(fd);
	}
	return v;
}

/* Two rxe devices on a veth pair whose traffic crosses the pair (see the top). */
static void need_fixture(const char **ret_dev)
{
	const char *dev = need_devdax_and_rdma();
	char cmd[1024], mac0[32] = "", mac1[32] = "";
	FILE *f;

	if (geteuid() != 0)
		fixture_missing("root (to add a veth pair and two rxe devices)");
	*ret_dev = dev;
	if (access("/sys/class/infiniband/" RXE1, F_OK) == 0)
		return;
	if (shell("modprobe rdma_ucm") != 0)
		fixture_missing("the rdma_ucm module (rdma_cm from user space)");
	if (access("/sys/class/net/" NET0, F_OK) != 0 &&
	    (shell("modprobe veth") != 0 || shell(IP " link add " NET0 " type veth peer name " NET1) != 0))
		fixture_missing("a veth pair (module veth, ip)");
	if (shell(IP " addr replace " ADDR0 "/32 dev " NET0) || shell(IP " addr replace " ADDR1 "/32 dev " NET1) ||
	    shell(IP " link set " NET0 " up") || shell(IP " link set " NET1 " up"))
		fixture_missing("addresses on the veth pair");
	/* A packet from one local address to the other is taken in, not dropped as martian. */
	if (sysctl_set("/proc/sys/net/ipv4/conf/all/rp_filter", "0") ||
	    sysctl_set("/proc/sys/net/ipv4/conf/" NET0 "/rp_filter", "0") ||
	    sysctl_set("/proc/sys/net/ipv4/conf/" NET1 "/rp_filter", "0") ||
	    sysctl_set("/proc/sys/net/ipv4/conf/" NET0 "/accept_local", "1") ||
	    sysctl_set("/proc/sys/net/ipv4/conf/" NET1 "/accept_local", "1"))
		fixture_missing("the veth pair's sysctls (rp_filter, accept_local)");
	f = fopen("/sys/class/net/" NET0 "/address", "r");
	if (f) {
		if (!fgets(mac0, sizeof(mac0), f))
			mac0[0] = 0;
		fclose(f);
	}
	f = fopen("/sys/class/net/" NET1 "/address", "r");
	if (f) {
		if (!fgets(mac1, sizeof(mac1), f))
			mac1[0] = 0;
		fclose(f);
	}
	mac0[strcspn(mac0, "\n")] = 0;
	mac1[strcspn(mac1, "\n")] = 0;
	if (!mac0[0] || !mac1[0])
		fixture_missing("the veth pair's addresses");
	/* Out through the device the address is on, ahead of the local table; neighbours fixed. */
	snprintf(cmd, sizeof(cmd),
		 IP " route replace " ADDR1 " dev " NET0 " src " ADDR0 " table 78 && "
		 IP " route replace " ADDR0 " dev " NET1 " src " ADDR1 " table 79 && "
		 IP " rule add pref 10 oif " NET0 " lookup 78 && "
		 IP " rule add pref 11 oif " NET1 " lookup 79 && "
		 IP " rule add pref 100 lookup local && " IP " rule del pref 0 lookup local && "
		 IP " neigh replace " ADDR1 " lladdr %s dev " NET0 " nud permanent && "
		 IP " neigh replace " ADDR0 " lladdr %s dev " NET1 " nud permanent",
		 mac1, mac0);
	if (shell(cmd) != 0) {
		shell(IP " rule show; " IP " route show table 78");
		fixture_missing("policy routing across the veth pair (ip rule, ip route)");
	}
	if (shell(RDMA_TOOL " link add " RXE0 " type rxe netdev " NET0) != 0 ||
	    shell(RDMA_TOOL " link add " RXE1 " type rxe netdev " NET1) != 0) {
		shell(RDMA_TOOL " link show; dmesg | tail -n 5");
		fixture_missing("an rxe device on each end of the veth pair");
	}
	if (access("/dev/infiniband/rdma_cm", F_OK) != 0)
		fixture_missing("/dev/infiniband/rdma_cm");
	shell(RDMA_TOOL " link show; " IP " rule show");
}

static void log_line(int priority, const char *msg, void *userdata)
{
	printf("# [%s %d] %s\n", (const char *)userdata, priority, msg);
	fflush(stdout);
}

static int read_full(int fd, void *buf, size_t len)
{
	size_t done = 0;

	while (done < len) {
		ssize_t n = read(fd, (char *)buf + done, len - done);

		if (n <= 0)
			return -1;
		done += (size_t)n;
	}
	return 0;
}

/* ---- the server process ---- */

struct server_report {
	int status; /* 0, or the step that failed */
	int port;
	int mode;
	int disconnected;
	uint64_t invalidated_ns, done_ns;
};

static void map_revoked(struct daxpool_map *map, void *userdata)
{
	(void)userdata;
	daxpool_map_unref(map); /* the server's own reference: the region can drain */
}

/*
 * The server: a daxpool client of the daemon, 2 MiB of the device exported
 * as "data". Sends its port; on "c" checks that the first CHUNK bytes are
 * the peer's pattern; on "e" waits for the revoke to have happened, reports
 * and ends.
 */
static int server_main(const char *dev, unsigned int flags, int revoke_ms, int to_parent,
		       int from_parent)
{
	struct daxpool_remote_server *srv;
	struct server_report rep = { 0 };
	struct daxpool_region *region;
	struct daxpool_map *map;
	struct daxpool_ctx *ctx;
	const char *why;
	uint8_t *mem;
	char c;
	int r;

	prctl(PR_SET_NAME, "remote-server");
	if (daxpool_ctx_new(&ctx) || daxpool_ctx_connect_daemon(ctx, sock_path) ||
	    daxpool_region_open(ctx, dev, 0, &region) ||
	    daxpool_map_new(region, 0, EXPORT_LEN, 0, &map))
		return 10;
	mem = daxpool_map_get_address(map);
	memset(mem, 0, EXPORT_LEN);
	r = daxpool_remote_server_new(ADDR0, "0", flags, &srv);
	if (r) {
		printf("# daxpool_remote_server_new(%s): %s\n", ADDR0, strerror(-r));
		return 11;
	}
	daxpool_remote_server_set_log_fn(srv, log_line, (void *)"server");
	daxpool_remote_server_set_revoke_timeout(srv, revoke_ms);
	rep.mode = daxpool_remote_server_get_grant_mode(srv, &why);
	printf("# grant mode: %s\n", why);
	r = daxpool_remote_server_export(srv, "data", map, mem, EXPORT_LEN,
					 DAXPOOL_REMOTE_READ | DAXPOOL_REMOTE_WRITE);
	if (r) {
		printf("# daxpool_remote_server_export: %s\n", strerror(-r));
		return 12;
	}
	/* The map's own reference goes at the zap; the export's pins hold it till then. */
	daxpool_map_set_revoke_fn(map, map_revoked, NULL);
	rep.port = daxpool_remote_server_get_port(srv);
	if (write(to_parent, &rep, sizeof(rep)) != sizeof(rep))
		return 13;
	while (read(from_parent, &c, 1) == 1 && c == 'c') {
		/* The peer wrote 0xc0 + its chunk index into the first chunks. */
		rep.status = 0;
		for (size_t i = 0; i < CHUNK; i++)
			if (mem[i] != 0xc0)
				rep.status = 14;
		if (daxpool_remote_server_get_grant_count(srv, "data") != 1 ||
		    daxpool_remote_server_get_peer_count(srv) != 1)
			rep.status = 15;
		if (write(to_parent, &rep, sizeof(rep)) != sizeof(rep))
			return 16;
	}
	/* "e": the release is done. */
	rep.disconnected = daxpool_remote_server_get_last_revoke(srv, "data", &rep.invalidated_ns,
								 &rep.done_ns);
	if (rep.disconnected < 0)
		rep.status = 17;
	else if (daxpool_remote_server_get_grant_count(srv, "data") != 0)
		rep.status = 18;
	daxpool_remote_server_free(srv);
	if (daxpool_region_get_pin_count(region, 0) != 0)
		rep.status = 19;
	if (write(to_parent, &rep, sizeof(rep)) != sizeof(rep))
		return 20;
	daxpool_region_unref(region);
	daxpool_ctx_unref(ctx);
	return 0;
}

/* ---- the peer process ---- */

struct peer_report {
	int status;
	int mode;
	long writes_ok;
	int write_after_notice;	   /* what the write with the old rkey after the notice gave */
	int checked_after_notice;  /* what a checked write after the notice gave */
	uint64_t notified_ns;	   /* the revoke function ran (CLOCK_MONOTONIC) */
	uint64_t last_ok_end_ns;   /* the last write that worked ended */
	uint64_t failed_end_ns;	   /* the write with the old rkey ended (failed) */
};

static struct {
	pthread_mutex_t lock;
	uint64_t notified_ns;
	unsigned int block_ms; /* how long the revoke function blocks (a peer that does not answer) */
	bool fn_done;
} g_peer = { PTHREAD_MUTEX_INITIALIZER, 0, 0, false };

static void peer_revoked(struct daxpool_remote_grant *grant, void *userdata)
{
	(void)userdata;
	pthread_mutex_lock(&g_peer.lock);
	g_peer.notified_ns = now_ns();
	pthread_mutex_unlock(&g_peer.lock);
	printf("# peer: grant %s revoked (is_revoked %d)\n", daxpool_remote_grant_get_name(grant),
	       daxpool_remote_grant_is_revoked(grant));
	fflush(stdout);
	if (g_peer.block_ms)
		msleep(g_peer.block_ms);
	pthread_mutex_lock(&g_peer.lock);
	g_peer.fn_done = true;
	pthread_mutex_unlock(&g_peer.lock);
}

/* When the revoke function began (0: not yet); @ret_done: whether it returned. */
static uint64_t notified_at(bool *ret_done)
{
	uint64_t t;

	pthread_mutex_lock(&g_peer.lock);
	t = g_peer.notified_ns;
	if (ret_done)
		*ret_done = g_peer.fn_done;
	pthread_mutex_unlock(&g_peer.lock);
	return t;
}

static uint64_t notified(void)
{
	return notified_at(NULL);
}

static bool fn_done(void)
{
	bool done;

	notified_at(&done);
	return done;
}

/*
 * The peer: connects from ADDR1, gets "data", writes the first chunk with
 * 0xc0 and says "w"; on "g" writes chunk after chunk until told of the
 * revoke, then once more with the old rkey (unchecked), and reports.
 */
static int peer_main(int port, unsigned int block_ms, int to_parent, int from_parent)
{
	struct peer_report rep = { 0 };
	struct daxpool_remote_grant *grant;
	struct daxpool_remote_peer *peer;
	static uint8_t buf[CHUNK];
	char service[16], c;
	long i;
	int r;

	prctl(PR_SET_NAME, "remote-peer");
	g_peer.block_ms = block_ms;
	snprintf(service, sizeof(service), "%d", port);
	r = daxpool_remote_peer_connect(ADDR0, service, ADDR1, 10000, &peer);
	if (r) {
		printf("# daxpool_remote_peer_connect(%s -> %s:%d): %s\n", ADDR1, ADDR0, port,
		       strerror(-r));
		return 30;
	}
	daxpool_remote_peer_set_log_fn(peer, log_line, (void *)"peer");
	daxpool_remote_peer_set_revoke_fn(peer, peer_revoked, NULL);
	r = daxpool_remote_peer_get_grant(peer, "nosuch", DAXPOOL_REMOTE_WRITE, 10000, &grant);
	if (r != -ENOENT)
		return 31;
	r = daxpool_remote_peer_get_grant(peer, "data", DAXPOOL_REMOTE_READ | DAXPOOL_REMOTE_WRITE,
					  10000, &grant);
	if (r) {
		printf("# daxpool_remote_peer_get_grant(data): %s\n", strerror(-r));
		return 32;
	}
	rep.mode = daxpool_remote_grant_get_mode(grant);
	if (daxpool_remote_grant_get_length(grant) != EXPORT_LEN)
		return 33;
	memset(buf, 0xc0, sizeof(buf));
	r = daxpool_remote_grant_write(grant, 0, buf, sizeof(buf), 0);
	if (r) {
		printf("# the first write: %s\n", strerror(-r));
		return 34;
	}
	/* Read back through the grant, and the bounds the library checks. */
	memset(buf, 0, sizeof(buf));
	if (daxpool_remote_grant_read(grant, 0, buf, sizeof(buf), 0) || buf[0] != 0xc0 ||
	    buf[CHUNK - 1] != 0xc0)
		return 35;
	if (daxpool_remote_grant_write(grant, EXPORT_LEN - 1, buf, 2, 0) != -ERANGE)
		return 36;
	if (write(to_parent, "w", 1) != 1 || read(from_parent, &c, 1) != 1)
		return 37;
	/*
	 * Write until told: a chunk at a time over the second half of the
	 * export. A peer that does not answer (@block_ms) writes once and then
	 * idles: a write in flight at the revoke would fail at the server's
	 * device, whose queue pair then goes to the error state and ends the
	 * connection before any deadline.
	 */
	for (i = 0; !notified() && (!block_ms || i < 1); i++) {
		memset(buf, (int)(i & 0x7f) + 1, sizeof(buf));
		r = daxpool_remote_grant_write(grant, EXPORT_LEN / 2 + (uint64_t)(i % 256) * CHUNK,
					       buf, sizeof(buf), 0);
		if (r == 0) {
			rep.writes_ok++;
			rep.last_ok_end_ns = now_ns();
			if (rep.writes_ok == 1 && write(to_parent, "1", 1) != 1)
				return 38;
			continue;
		}
		/* Failed before the notice: only possible if the rkey went before the message. */
		printf("# write %ld before the notice: %s\n", i, strerror(-r));
		rep.failed_end_ns = now_ns();
		break;
	}
	/* Told: a checked write is refused here, the old rkey fails at the server's device. */
	while (!notified())
		msleep(1);
	rep.notified_ns = notified();
	rep.checked_after_notice = daxpool_remote_grant_write(grant, EXPORT_LEN / 2, buf, 64, 0);
	/* A peer that does not answer tries the old rkey once it is itself again: disconnected. */
	while (block_ms && !fn_done())
		msleep(10);
	if (!rep.failed_end_ns) {
		rep.write_after_notice = daxpool_remote_grant_write(grant, EXPORT_LEN / 2, buf, 64,
								    DAXPOOL_REMOTE_IO_UNCHECKED);
		rep.failed_end_ns = now_ns();
	} else {
		rep.write_after_notice = r;
	}
	printf("# peer: %ld writes, then after the notice: checked %s, old rkey %s; connected %d\n",
	       rep.writes_ok, strerror(-rep.checked_after_notice), strerror(-rep.write_after_notice),
	       daxpool_remote_peer_is_connected(peer));
	daxpool_remote_grant_release(grant);
	daxpool_remote_peer_free(peer);
	if (write(to_parent, &rep, sizeof(rep)) != sizeof(rep))
		return 39;
	return 0;
}

/* ---- the test ---- */

struct child {
	pid_t pid;
	int to, from; /* our ends */
};

static void spawn(struct child *ch, int (*fn)(void *), void *arg)
{
	int up[2], down[2];

	CHECK(pipe(up) == 0 && pipe(down) == 0);
	fflush(stdout);
	ch->pid = fork();
	CHECK(ch->pid >= 0);
	if (ch->pid == 0) {
		int *fds = arg;

		/* A failed check ends the test process: its server and peer go with it. */
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		close(up[0]);
		close(down[1]);
		fds[0] = up[1];
		fds[1] = down[0];
		_exit(fn(arg));
	}
	close(up[1]);
	close(down[0]);
	ch->from = up[0];
	ch->to = down[1];
}

static void reap(struct child *ch, const char *who)
{
	int status;

	close(ch->to);
	CHECK_EQ(waitpid(ch->pid, &status, 0), ch->pid);
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
		printf("# %s: status %#x (exit %d)\n", who, status,
		       WIFEXITED(status) ? WEXITSTATUS(status) : -1);
	CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	close(ch->from);
}

struct run_args {
	int fds[2]; /* filled in the child: to_parent, from_parent */
	const char *dev;
	unsigned int flags;
	int revoke_ms;
	int port;
	unsigned int block_ms;
};

static struct run_args g_args;

static int server_child(void *arg)
{
	(void)arg;
	return server_main(g_args.dev, g_args.flags, g_args.revoke_ms, g_args.fds[0],
			   g_args.fds[1]);
}

static int peer_child(void *arg)
{
	(void)arg;
	return peer_main(g_args.port, g_args.block_ms, g_args.fds[0], g_args.fds[1]);
}

static int dmesg_warnings(void)
{
	return system("dmesg | grep -E 'WARNING|BUG|Oops|rxe_pool|cut here' >/dev/null 2>&1") == 0;
}

/* Serve, write, release under the writes; @flags picks the grant mode, @block_ms a silent peer. */
static void release_under_remote_writes(unsigned int flags, int want_mode, unsigned int block_ms)
{
	struct server_report srep, srep2;
	struct peer_report prep;
	struct child server, peer;
	unsigned long long tx0;
	const char *dev, *name;
	uint64_t t0, t1;
	bool listed = false;
	int rc;
	char c;

	need_fixture(&dev);
	name = devname_of(dev);
	if (!devdax_enabled(name))
		devdax_enable(name); /* after an earlier test that failed half-way */
	CHECK(devdax_enabled(name));
	shell("dmesg -c >/dev/null");
	daemon_start(NULL);
	g_args = (struct run_args){ .dev = dev, .flags = flags, .revoke_ms = 2000,
				    .block_ms = block_ms };
	spawn(&server, server_child, g_args.fds);
	CHECK_OK(read_full(server.from, &srep, sizeof(srep)));
	CHECK_EQ(srep.mode, want_mode);
	g_args.port = srep.port;
	tx0 = counter(NET1, "tx_packets");
	spawn(&peer, peer_child, g_args.fds);
	CHECK(read(peer.from, &c, 1) == 1 && c == 'w');
	/* The peer's write landed in the server's memory. */
	CHECK(write(server.to, "c", 1) == 1);
	CHECK_OK(read_full(server.from, &srep2, sizeof(srep2)));
	CHECK_EQ(srep2.status, 0);
	/* ... and crossed the veth pair (RoCE v2 from the peer's end). */
	printf("# %s tx_packets +%llu, %s rx_packets %llu\n", NET1,
	       counter(NET1, "tx_packets") - tx0, NET0, counter(NET0, "rx_packets"));
	CHECK(counter(NET1, "tx_packets") - tx0 >= 2);
	/*
	 * The grant and the export's MR are long-term pins of the server, as
	 * daxpoold lists them, with the peer's address and rkey as their owner.
	 */
	for (int i = 0; i < 200 && !listed; i++) {
		rc = ctl(out, sizeof(out), (const char *const[]){ "pins", name, NULL });
		listed = rc == 0 && strstr(out, "remote-server") && strstr(out, "longterm") &&
			 strstr(out, "peer " ADDR1 ":") && strstr(out, " rkey 0x") &&
			 strstr(out, "remote export data");
		if (!listed)
			msleep(50);
	}
	printf("# %s", out);
	CHECK(listed);
	/* Release while the peer writes. */
	CHECK(write(peer.to, "g", 1) == 1);
	CHECK(read(peer.from, &c, 1) == 1 && c == '1');
	msleep(200);
	t0 = now_ns();
	rc = ctl(out, sizeof(out), (const char *const[]){ "release", "--timeout", "30", name, NULL });
	t1 = now_ns();
	printf("# %s", out);
	CHECK_EQ(rc, 0);
	CHECK(!devdax_enabled(name));
	CHECK_OK(read_full(peer.from, &prep, sizeof(prep)));
	CHECK_EQ(prep.status, 0);
	CHECK_EQ(prep.mode, want_mode);
	CHECK(write(server.to, "e", 1) == 1);
	CHECK_OK(read_full(server.from, &srep2, sizeof(srep2)));
	CHECK_EQ(srep2.status, 0);
	reap(&peer, "peer");
	reap(&server, "server");
	printf("# RESULT mode=%s writes=%ld notice=+%.1fms last-ok-write-end=+%.1fms "
	       "failed-write-end=+%.1fms release-returned(device-disabled)=+%.1fms "
	       "server: rkeys-dead=%.1fms done=%.1fms disconnected=%d\n",
	       want_mode == DAXPOOL_REMOTE_WINDOW ? "window" : "mr", prep.writes_ok,
	       (double)(int64_t)(prep.notified_ns - t0) / 1e6,
	       (double)(int64_t)(prep.last_ok_end_ns - t0) / 1e6,
	       (double)(int64_t)(prep.failed_end_ns - t0) / 1e6, (double)(t1 - t0) / 1e6,
	       (double)srep2.invalidated_ns / 1e6, (double)srep2.done_ns / 1e6, srep2.disconnected);
	CHECK(prep.writes_ok > 0);
	/* Told, refused here; and the old rkey no longer reaches the memory. */
	/*
	 * The window dies before the REVOKE is sent: a write in flight then
	 * fails with a remote access error before the notice arrives (and the
	 * queue pair goes to the error state), or the first write after it does.
	 */
	CHECK(prep.checked_after_notice == -ENXIO || prep.checked_after_notice == -ECONNRESET);
	if (block_ms)
		CHECK_EQ(prep.write_after_notice, -ECONNRESET);
	else
		CHECK_EQ(prep.write_after_notice, -EACCES);
	CHECK(prep.last_ok_end_ns <= prep.failed_end_ns);
	CHECK(prep.notified_ns > t0 && prep.notified_ns < t1);
	CHECK(prep.last_ok_end_ns < t1);
	if (block_ms) {
		/* Disconnected at the deadline (2 s), and only then was the pin dropped. */
		CHECK_EQ(srep2.disconnected, 1);
		CHECK(srep2.done_ns >= 1900000000ull);
	} else {
		CHECK_EQ(srep2.disconnected, 0);
	}
	CHECK(!dmesg_warnings());
	shell("dmesg | tail -n 5");
	daemon_kill(SIGTERM);
	devdax_enable(name);
	CHECK(devdax_enabled(name));
}

TEST_TIMEOUT(release_revokes_a_window_grant_under_remote_writes, 240)
{
	release_under_remote_writes(0, DAXPOOL_REMOTE_WINDOW, 0);
}

TEST_TIMEOUT(release_revokes_an_mr_grant_under_remote_writes, 240)
{
	release_under_remote_writes(DAXPOOL_REMOTE_SERVER_NO_WINDOWS, DAXPOOL_REMOTE_MR, 0);
}

/* The peer's revoke function blocks past the server's deadline: it is disconnected. */
TEST_TIMEOUT(release_disconnects_a_peer_that_does_not_answer, 240)
{
	release_under_remote_writes(0, DAXPOOL_REMOTE_WINDOW, 5000);
}
