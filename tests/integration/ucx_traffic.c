/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * UCX RMA puts into daxpool memory while the memory is zapped (vm tier: a
 * devdax namespace, an rxe device on a dummy netdev, UCX client-server
 * wire-up through rdma_cm, UCX_TLS=rc_verbs unless set).
 *
 * The server, a daxpool client, maps its map of the device with
 * daxpool_ucx_mem_map() and hands the handle's rkey to the client, another
 * process, which keeps putting into it.
 *
 * On rc_verbs the test releases the device through daxpoold while the puts
 * go on. The server's UCP worker registers buffers of its own (the rc_verbs
 * interface's send and receive buffers, ordinary memory), MRs daxpool did not
 * take of a process that has the device: daxpoold's MR tracer records where
 * they are (daxpoold(8), "The holder rule"), so they do not block the
 * release. The drain reaches the server's handle: its revoke function asks
 * the client to stop and waits for its last put; the library drops the range
 * from UCX's caches and unmaps the handle. The release must complete with the
 * device disabled, the registration gone from the kernel's MR table, the
 * region idle, nothing written after the client's last acknowledged put, and
 * the pair carries on with memory of a second region (a file). With the
 * tracer off (daxpoold.conf mr_tracer = no) the same release is refused, the
 * server named: nobody can tell its MRs are not on the device.
 *
 * The same runs on the host with UCX's tcp transport on a file region: no
 * RDMA registration there and no release of a file, but the same handles,
 * revoke, ucm_vm_munmap() and ucp_mem_unmap() from a thread that zaps the
 * region as a release does, while puts go on, against the real UCX; the
 * rc_verbs variants skip on the host.
 */
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
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

#define SPAN (2u << 20)	  /* the server's map, and the region of the puts */
#define CHUNK (64u << 10) /* one put */
#define SLOTS (SPAN / CHUNK)
#define READY_AFTER 50
#define AFTER_BASE 1000000

static char out[1 << 18];

/* Between the two: 'P' port, 'K' rkey, 'S' stop, 'A' stopped after put a, 'D' done, 'Q' quit. */
struct msg {
	char type;
	uint64_t a;
	uint32_t len;
	char data[1024];
};

struct report {
	uint64_t wrote;	     /* the client's last completed put */
	uint64_t peer_wrote; /* the last put the client acknowledged to the server */
	double revoke_ms;    /* time in the handle's revoke function */
	double idle_ms;	     /* from the zap to the region idle */
	int step;	     /* 0, or the step that failed */
	char lanes[2048];    /* what UCX picked (the client's endpoint) */
};

/* Where the pair runs: rc_verbs on the vm tier's devdax and rxe, or tcp on a file anywhere. */
struct setup {
	const char *tls, *net_devices, *addr;
	bool rdma; /* devdax and RDMA MRs: the release and the kernel's MR table are checked */
	bool tracer_off; /* daxpoold without its MR tracer: the release is refused */
};

static const struct setup rc_verbs = { "rc_verbs", MW_RXE ":1", MW_ADDR, true, false };
static const struct setup rc_verbs_untraced = { "rc_verbs", MW_RXE ":1", MW_ADDR, true, true };
static const struct setup tcp = { "tcp", "lo", "127.0.0.1", false, false };

static const struct setup *setup;
static struct report *rep;
static int peer; /* socket to the other process */

static int msg_send(char type, uint64_t a, const void *data, size_t len)
{
	struct msg m = { .type = type, .a = a, .len = (uint32_t)len };

	if (len > sizeof(m.data))
		return -1;
	if (len)
		memcpy(m.data, data, len);
	return send(peer, &m, sizeof(m), MSG_NOSIGNAL) == sizeof(m) ? 0 : -1;
}

static int msg_wait(char type, struct msg *ret)
{
	struct pollfd pfd = { peer, POLLIN, 0 };

	while (poll(&pfd, 1, 60000) == 1) {
		if (recv(peer, ret, sizeof(*ret), 0) != sizeof(*ret))
			return -1;
		if (ret->type == type)
			return 0;
	}
	return -1;
}

static ucp_context_h context_open(void)
{
	return ucx_fixture_context(setup->tls, setup->net_devices);
}

static ucs_status_t wait_request(ucp_worker_h worker, ucs_status_ptr_t req)
{
	ucs_status_t st;

	if (req == NULL)
		return UCS_OK;
	if (UCS_PTR_IS_ERR(req))
		return UCS_PTR_STATUS(req);
	do {
		ucp_worker_progress(worker);
		st = ucp_request_check_status(req);
	} while (st == UCS_INPROGRESS);
	ucp_request_free(req);
	return st;
}

static void ep_close(ucp_worker_h worker, ucp_ep_h ep)
{
	ucp_request_param_t param = { .op_attr_mask = UCP_OP_ATTR_FIELD_FLAGS,
				      .flags = UCP_EP_CLOSE_FLAG_FORCE };

	wait_request(worker, ucp_ep_close_nbx(ep, &param));
}

/* ---- the server: daxpool memory, a memory handle that is a pin ---- */

static ucp_worker_h s_worker;
static ucp_ep_h s_ep;
static atomic_int s_revoked;

static void on_connection(ucp_conn_request_h request, void *arg)
{
	ucp_ep_params_t params = { 0 };

	(void)arg;
	params.field_mask = UCP_EP_PARAM_FIELD_CONN_REQUEST;
	params.conn_request = request;
	if (ucp_ep_create(s_worker, &params, &s_ep) != UCS_OK)
		rep->step = 39;
}

/* daxpool's client thread, the handle still mapped: the client stops and says after which put. */
static void mem_revoked(struct daxpool_ucx_mem *mem, void *userdata)
{
	uint64_t t0 = now_ns();
	struct msg m;

	(void)mem;
	(void)userdata;
	if (msg_send('S', 0, NULL, 0) || msg_wait('A', &m))
		rep->step = 40;
	else
		rep->peer_wrote = m.a;
	rep->revoke_ms = (double)(now_ns() - t0) / 1e6;
	atomic_store(&s_revoked, 1);
}

/* What daxpool's client thread does on a release: zap the region, wait until it is idle. */
static void *zap_region(void *region)
{
	uint64_t t0 = now_ns();

	if (daxpool_region_zap(region) < 1 || daxpool_region_wait_idle(region, 60000, NULL))
		rep->step = 41;
	rep->idle_ms = (double)(now_ns() - t0) / 1e6;
	return NULL;
}

/* Map @len bytes at @addr of @map as a pin and send its rkey; NULL on failure. */
static struct daxpool_ucx_mem *offer(ucp_context_h context, struct daxpool_map *map, void *addr)
{
	struct daxpool_ucx_mem *mem;
	void *packed;
	size_t size;

	if (daxpool_ucx_mem_map(map, context, addr, SPAN, &mem))
		return NULL;
	if (ucp_rkey_pack(context, daxpool_ucx_mem_get_memh(mem), &packed, &size) != UCS_OK) {
		daxpool_ucx_mem_unmap(mem);
		return NULL;
	}
	if (msg_send('K', (uint64_t)(uintptr_t)addr, packed, size)) {
		ucp_rkey_buffer_release(packed);
		daxpool_ucx_mem_unmap(mem);
		return NULL;
	}
	ucp_rkey_buffer_release(packed);
	return mem;
}

static int server(const char *dev, const char *file, int ready, int go)
{
	ucp_listener_params_t lparams = { 0 };
	ucp_worker_params_t wparams = { 0 };
	ucp_listener_attr_t lattr = { 0 };
	struct sockaddr_in sin = { .sin_family = AF_INET };
	struct daxpool_region *region, *region2;
	struct daxpool_map *map, *map2;
	struct daxpool_ucx_mem *mem;
	ucp_listener_h listener;
	ucp_context_h context;
	struct daxpool_ctx *ctx;
	pthread_t zapper;
	struct msg m;
	char *base, c;

	prctl(PR_SET_NAME, "ucx-server");
	if (daxpool_ctx_new(&ctx) || daxpool_ctx_connect_daemon(ctx, sock_path) ||
	    daxpool_region_open(ctx, dev, 0, &region) || daxpool_map_new(region, 0, SPAN, 0, &map))
		return 10;
	base = daxpool_map_get_address(map);
	memset(base, 0, SPAN);
	context = context_open();
	if (!context)
		return 11;
	wparams.field_mask = UCP_WORKER_PARAM_FIELD_THREAD_MODE;
	wparams.thread_mode = UCS_THREAD_MODE_SINGLE;
	if (ucp_worker_create(context, &wparams, &s_worker) != UCS_OK)
		return 12;
	inet_pton(AF_INET, setup->addr, &sin.sin_addr);
	lparams.field_mask = UCP_LISTENER_PARAM_FIELD_SOCK_ADDR | UCP_LISTENER_PARAM_FIELD_CONN_HANDLER;
	lparams.sockaddr.addr = (const struct sockaddr *)&sin;
	lparams.sockaddr.addrlen = sizeof(sin);
	lparams.conn_handler.cb = on_connection;
	if (ucp_listener_create(s_worker, &lparams, &listener) != UCS_OK)
		return 13;
	lattr.field_mask = UCP_LISTENER_ATTR_FIELD_SOCKADDR;
	if (ucp_listener_query(listener, &lattr) != UCS_OK)
		return 14;
	if (msg_send('P', ntohs(((struct sockaddr_in *)&lattr.sockaddr)->sin_port), NULL, 0))
		return 15;
	while (!s_ep && !rep->step)
		ucp_worker_progress(s_worker);
	if (rep->step)
		return rep->step;
	mem = offer(context, map, base);
	if (!mem)
		return 16;
	daxpool_ucx_mem_set_revoke_fn(mem, mem_revoked, NULL);
	/*
	 * The test says 'z' (zap here, as a release would) or 'R' (daxpoold
	 * releases the device: its drain comes through daxpool's client thread).
	 * Until then, nothing to do for one-sided puts.
	 */
	while (!(c = (char)mw_read_within(go, 0)))
		ucp_worker_progress(s_worker);
	if (c == 'z' && pthread_create(&zapper, NULL, zap_region, region))
		return 17;
	while (!atomic_load(&s_revoked)) {
		ucp_worker_progress(s_worker);
		msleep(1);
	}
	if (daxpool_ucx_mem_get_memh(mem) && rep->step == 0) {
		/* The library unmaps it once the revoke function returned. */
		for (int i = 0; i < 5000 && daxpool_ucx_mem_get_memh(mem); i++)
			msleep(1);
	}
	if (daxpool_ucx_mem_get_memh(mem))
		return 18;
	daxpool_ucx_mem_unmap(mem);
	daxpool_map_unref(map); /* the region goes idle now: the release can complete */
	if (c == 'z')
		pthread_join(zapper, NULL);
	else if (daxpool_region_wait_idle(region, 60000, NULL))
		return 26; /* the release's drain: idle as the zapper waits for it */
	if (rep->step)
		return rep->step;
	if (daxpool_region_get_pin_count(region, 0) != 0)
		return 19;
	if (write(ready, "s", 1) != 1 || read(go, &c, 1) != 1)
		return 25;

	/* Carry on: a second region, the same context and worker, the same endpoints. */
	if (daxpool_region_open(ctx, file, 0, &region2) ||
	    daxpool_map_new(region2, 0, SPAN, 0, &map2))
		return 20;
	base = daxpool_map_get_address(map2);
	memset(base, 0, SPAN);
	mem = offer(context, map2, base);
	if (!mem)
		return 21;
	/* Puts over tcp are active messages the server's worker must progress. */
	m.type = 0;
	for (int i = 0; i < 60000; i++) {
		struct pollfd pfd = { peer, POLLIN, 0 };

		ucp_worker_progress(s_worker);
		if (poll(&pfd, 1, 1) == 1) {
			if (recv(peer, &m, sizeof(m), 0) != sizeof(m) || m.type != 'D')
				return 24;
			break;
		}
	}
	if (m.type != 'D')
		return 24;
	for (uint64_t i = 0; i < SLOTS; i++)
		for (size_t j = 0; j < CHUNK / sizeof(uint64_t); j++)
			if (((uint64_t *)(base + i * CHUNK))[j] != AFTER_BASE * SLOTS + i)
				return 22; /* the client's puts did not all arrive */
	if (daxpool_ucx_mem_unmap(mem))
		return 23;
	daxpool_map_unref(map2);
	daxpool_region_unref(region2);
	msg_send('Q', 0, NULL, 0);
	ep_close(s_worker, s_ep);
	ucp_listener_destroy(listener);
	ucp_worker_destroy(s_worker);
	ucp_cleanup(context);
	daxpool_region_unref(region);
	daxpool_ctx_unref(ctx);
	return 0;
}

/* ---- the client: puts from its own memory into the server's ---- */

static int put_seq(ucp_worker_h worker, ucp_ep_h ep, char *src, uint64_t raddr, ucp_rkey_h rkey,
		   uint64_t seq)
{
	ucp_request_param_t param = { 0 };

	for (size_t i = 0; i < CHUNK / sizeof(uint64_t); i++)
		((uint64_t *)src)[i] = seq;
	if (wait_request(worker, ucp_put_nbx(ep, src, CHUNK, raddr + (seq % SLOTS) * CHUNK, rkey,
					     &param)) != UCS_OK)
		return -1;
	return wait_request(worker, ucp_ep_flush_nbx(ep, &param)) == UCS_OK ? 0 : -1;
}

static int client(int ready)
{
	struct sockaddr_in sin = { .sin_family = AF_INET };
	ucp_worker_params_t wparams = { 0 };
	ucp_request_param_t param = { 0 };
	ucp_ep_params_t eparams = { 0 };
	ucp_context_h context;
	ucp_worker_h worker;
	ucp_rkey_h rkey;
	uint64_t seq = 0, raddr;
	ucp_ep_h ep;
	struct msg m;
	FILE *lanes;
	char *src;

	prctl(PR_SET_NAME, "ucx-client");
	src = malloc(CHUNK);
	context = context_open();
	if (!src || !context)
		return 30;
	wparams.field_mask = UCP_WORKER_PARAM_FIELD_THREAD_MODE;
	wparams.thread_mode = UCS_THREAD_MODE_SINGLE;
	if (ucp_worker_create(context, &wparams, &worker) != UCS_OK || msg_wait('P', &m))
		return 31;
	inet_pton(AF_INET, setup->addr, &sin.sin_addr);
	sin.sin_port = htons((uint16_t)m.a);
	eparams.field_mask = UCP_EP_PARAM_FIELD_FLAGS | UCP_EP_PARAM_FIELD_SOCK_ADDR;
	eparams.flags = UCP_EP_PARAMS_FLAGS_CLIENT_SERVER;
	eparams.sockaddr.addr = (const struct sockaddr *)&sin;
	eparams.sockaddr.addrlen = sizeof(sin);
	if (ucp_ep_create(worker, &eparams, &ep) != UCS_OK)
		return 32;
	if (wait_request(worker, ucp_ep_flush_nbx(ep, &param)) != UCS_OK)
		return 33;
	if (msg_wait('K', &m) || ucp_ep_rkey_unpack(ep, m.data, &rkey) != UCS_OK)
		return 34;
	raddr = m.a;
	lanes = fmemopen(rep->lanes, sizeof(rep->lanes) - 1, "w");
	if (lanes) {
		ucp_ep_print_info(ep, lanes);
		fclose(lanes);
	}
	for (;;) {
		if (recv(peer, &m, sizeof(m), MSG_DONTWAIT) == sizeof(m) && m.type == 'S') {
			/* No put is in flight: each completed before the next. */
			ucp_rkey_destroy(rkey);
			if (msg_send('A', seq, NULL, 0))
				return 35;
			break;
		}
		if (put_seq(worker, ep, src, raddr, rkey, seq + 1))
			return 36;
		rep->wrote = ++seq;
		if (seq == READY_AFTER && write(ready, "r", 1) != 1)
			return 37;
	}
	/* Carry on: the server's memory of a second region, the same endpoint. */
	if (msg_wait('K', &m) || ucp_ep_rkey_unpack(ep, m.data, &rkey) != UCS_OK)
		return 38;
	for (uint64_t i = 0; i < SLOTS; i++)
		if (put_seq(worker, ep, src, m.a, rkey, AFTER_BASE * SLOTS + i))
			return 39;
	ucp_rkey_destroy(rkey);
	if (msg_send('D', 0, NULL, 0) || msg_wait('Q', &m))
		return 40;
	ep_close(worker, ep);
	ucp_worker_destroy(worker);
	ucp_cleanup(context);
	free(src);
	return 0;
}

/*
 * The release while the pair runs, with the MR tracer off: refused. The UCP
 * worker's own registrations are MRs daxpool did not take, of a process that
 * has the device (safe: nothing is changed and the puts go on).
 */
static void release_refused(const char *name, pid_t server_pid)
{
	char pidstr[32];
	uint64_t t0, t1;
	int rc;

	CHECK_EQ(mw_mrs_of(server_pid, SPAN, SPAN), 1); /* the handle's registration */
	snprintf(pidstr, sizeof(pidstr), "%d", (int)server_pid);
	t0 = now_ns();
	rc = ctl(out, sizeof(out), (const char *const[]){ "release", "--timeout", "2", name, NULL });
	t1 = now_ns();
	printf("# %s", out);
	printf("# release refused after %.1f ms\n", (double)(t1 - t0) / 1e6);
	CHECK_EQ(rc, 1);
	CHECK(strstr(out, "refused") && strstr(out, pidstr) && strstr(out, "ucx-server") &&
	      strstr(out, "not registered through daxpool"));
	CHECK(devdax_enabled(name));
}

/* Nothing written after the client's last acknowledged put (the device or file @dev). */
static void check_landed(const char *dev)
{
	int fd = open(dev, O_RDWR);
	char *mem;

	CHECK(fd >= 0);
	mem = mmap(NULL, SPAN, PROT_READ, MAP_SHARED, fd, 0);
	CHECK(mem != MAP_FAILED);
	mw_check_landed(mem, SPAN, CHUNK, rep->wrote, rep->peer_wrote, READY_AFTER);
	munmap(mem, SPAN);
	close(fd);
}

/* The pair on @dev (a devdax device, or a file on the host), with @s's transport. */
static void puts_stop_and_drain(const struct setup *s, const char *backing)
{
	char *dev = strdup(backing); /* the harness's path buffer is reused below */
	const char *name = strrchr(dev, '/') + 1;
	int ready[2][2], go[2], sp[2], rc, status;
	bool released = s->rdma && !s->tracer_off; /* through daxpoold: the device is disabled */
	char *file;
	pid_t pid[2];

	setup = s;
	CHECK(!s->rdma || devdax_enabled(name));
	daemon_start(s->tracer_off ? "mr_tracer = no\n" : NULL);
	/* on rc_verbs the tracer must be on before UCX registers anything, or off as asked */
	if (s->rdma && !s->tracer_off)
		daemon_need_mr_tracer();
	CHECK(!s->rdma || daemon_mr_tracer_on() == !s->tracer_off);
	rep = fixture_shared(sizeof(*rep));
	file = strdup(fixture_plain_file(SPAN));
	CHECK(file && socketpair(AF_UNIX, SOCK_SEQPACKET, 0, sp) == 0);
	CHECK(pipe(ready[0]) == 0 && pipe(ready[1]) == 0 && pipe(go) == 0);
	fflush(stdout);
	for (int i = 0; i < 2; i++) {
		pid[i] = fork();
		CHECK(pid[i] >= 0);
		if (pid[i] == 0) {
			prctl(PR_SET_PDEATHSIG, SIGKILL);
			peer = sp[i];
			_exit(i == 0 ? server(dev, file, ready[0][1], go[0]) : client(ready[1][1]));
		}
		close(ready[i][1]);
	}
	close(go[0]);
	close(sp[0]);
	close(sp[1]);
	CHECK_EQ(mw_read_within(ready[1][0], 120000), 'r'); /* the client is putting */
	printf("# UCX %s, the client's endpoint:\n%s", ucp_get_version_string(), rep->lanes);
	rc = ctl(out, sizeof(out), (const char *const[]){ "pins", NULL });
	printf("# %s", out);
	CHECK(rc == 0 && strstr(out, "ucx-server") && strstr(out, "longterm"));
	if (s->rdma && s->tracer_off) {
		release_refused(name, pid[0]);
		/* then the drain a release would make, in the server: a zap of its region */
		CHECK(write(go[1], "z", 1) == 1);
	} else if (s->rdma) {
		/* The release through daxpoold, while the client puts. */
		uint64_t t0, t1;

		CHECK_EQ(mw_mrs_of(pid[0], SPAN, SPAN), 1); /* the handle's registration */
		CHECK(write(go[1], "R", 1) == 1);
		t0 = now_ns();
		rc = ctl(out, sizeof(out),
			 (const char *const[]){ "release", "--timeout", "60", name, NULL });
		t1 = now_ns();
		printf("# %s", out);
		printf("# release request to disabled, with UCX puts: %.1f ms (revoke function "
		       "%.1f ms)\n", (double)(t1 - t0) / 1e6, rep->revoke_ms);
		CHECK_EQ(rc, 0);
		CHECK(!devdax_enabled(name));
	} else {
		/* No release of a file: the zap a release makes in the client. */
		CHECK(write(go[1], "z", 1) == 1);
	}
	if (mw_read_within(ready[0][0], 60000) != 's') { /* handle and map gone, region idle */
		/* the server ended before: say how, and put the device back for the next test */
		if (waitpid(pid[0], &status, 0) == pid[0])
			printf("# server: status %#x (step %d)\n", status, rep->step);
		if (released)
			devdax_enable(name);
		dp_test_fail(__FILE__, __LINE__, "the server did not report its drain");
	}
	if (!s->rdma || s->tracer_off)
		printf("# zap to idle, with UCX puts: %.1f ms (revoke function %.1f ms)\n",
		       rep->idle_ms, rep->revoke_ms);
	if (s->rdma)
		CHECK_EQ(mw_mrs_of(pid[0], SPAN, SPAN), 0); /* deregistered */
	if (!released)
		check_landed(dev);

	CHECK(write(go[1], "g", 1) == 1); /* carry on with a second region */
	for (int i = 0; i < 2; i++) {
		CHECK_EQ(waitpid(pid[i], &status, 0), pid[i]);
		if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
			printf("# %s: status %#x (step %d)\n", i ? "client" : "server", status,
			       rep->step);
		CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	}
	daemon_kill(SIGTERM);
	if (released) {
		/* what landed is read back from the device, enabled again */
		devdax_enable(name);
		CHECK(devdax_enabled(name));
		check_landed(dev);
	}
	CHECK(!s->rdma || devdax_enabled(name));
	free(file);
	free(dev);
}

TEST_TIMEOUT(puts_on_rc_verbs_drain_with_the_release, 300)
{
	puts_stop_and_drain(&rc_verbs, mw_need_devdax_and_rdma_cm());
}

/* daxpoold without its MR tracer: the UCP worker's own MRs cannot be told from the device's. */
TEST_TIMEOUT(puts_on_rc_verbs_release_refused_without_the_mr_tracer, 300)
{
	puts_stop_and_drain(&rc_verbs_untraced, mw_need_devdax_and_rdma_cm());
}

/* On the host too: UCX's tcp transport on a file region, the same revoke and unmap. */
TEST_TIMEOUT(puts_on_tcp_stop_and_drain_with_a_zap, 300)
{
	puts_stop_and_drain(&tcp, fixture_plain_file(SPAN));
}
