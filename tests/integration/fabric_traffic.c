/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * libfabric RMA traffic on daxpool memory while daxpoold releases the device
 * (vm tier: a devdax namespace, libfabric's verbs provider with FI_EP_MSG on
 * an rxe device over a dummy netdev, its MR cache at the default settings,
 * daxpool's memory monitor imported).
 *
 * Two processes, each a daxpool client with a map of the device, connect two
 * FI_EP_MSG endpoints and write into each other's map with fi_write() from
 * their own, through MRs the cache keeps (the monitor's pins). The release
 * zaps both: each map's revoke function stops its data path (the peer stops
 * writing into it and acknowledges its last write), closes the MR and lets
 * the map go. The release must complete, the MRs must be gone from the
 * kernel's MR table, the device disabled, and no write may have landed after
 * the writer acknowledged its last one (checked on the device after it is
 * enabled again). Then both carry on through the same domains and caches
 * with memory of a second region (a file). On the host it skips.
 */
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <rdma/fabric.h>
#include <rdma/fi_cm.h>
#include <rdma/fi_domain.h>
#include <rdma/fi_endpoint.h>
#include <rdma/fi_errno.h>
#include <rdma/fi_rma.h>

#include "daemon_harness.h"
#include "devdax_fixture.h"
#include "daxpool-fabric.h"
#include "daxpool.h"
#include "harness.h"
#include "middleware_fixture.h"

#define SPAN (4u << 20)		/* each process's map: the peer writes the first half */
#define TARGET_LEN (2u << 20)	/* the second half is the source of its own writes */
#define CHUNK (64u << 10)	/* one fi_write */
#define SLOTS (TARGET_LEN / CHUNK)
#define READY_AFTER 50		/* writes done before the test releases */
#define AFTER_BASE 1000000	/* sequence numbers of the writes into the second region */
#define PORT "47215"

static char out[1 << 18];

/* Where the pair runs: verbs on the vm tier's devdax and rxe, or tcp on a file anywhere. */
struct setup {
	const char *prov, *addr;
	bool rdma; /* devdax, MRs in the cache (pins), a release through daxpoold */
	/*
	 * A write's completion must mean its data is in the target: an RC
	 * completion does (the responder acknowledged it); tcp's default
	 * (transmit complete) means only that it was sent, and a write the
	 * peer counted as done could land after the target closed its MR
	 * (in a new MR of the same key: seen).
	 */
	uint64_t tx_op_flags;
};

static const struct setup verbs = { "verbs", MW_ADDR, true, 0 };
static const struct setup tcp = { "tcp", "127.0.0.1", false, FI_DELIVERY_COMPLETE };
static const struct setup *setup;

/* What each process reports to the test (shared memory). */
struct report {
	uint64_t wrote;	     /* its last completed write into the peer's map */
	uint64_t peer_wrote; /* the last write the peer acknowledged into ours */
	double revoke_ms;    /* time spent in the map's revoke function */
	double idle_ms;	     /* tcp: from the zap to the region idle */
	int step;	     /* 0, or the step that failed */
};

/* Between the two processes: 'L' listening, 'K' key, 'S' stop writing into me, 'A' stopped, 'D' done. */
struct msg {
	char type;
	uint64_t a, b;
};

struct conn {
	struct fi_info *info;
	struct fid_fabric *fabric;
	struct fid_eq *eq;
	struct fid_pep *pep;
	struct fid_domain *domain;
	struct fid_cq *cq;
	struct fid_ep *ep;
};

/* The process's state, shared by its main thread, its data path and the revoke function. */
static struct {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	enum { RUNNING, STOP_ASKED, STOPPED } state;
	struct conn c;
	struct fid_mr *mr;
	char *base;	  /* the map */
	uint64_t raddr, rkey; /* the peer's target */
	int peer;	  /* socket to the peer */
	int ready;	  /* pipe to the test */
	struct report *rep;
} P = { .lock = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER };

static void msg_send(char type, uint64_t a, uint64_t b)
{
	struct msg m = { type, a, b };

	if (send(P.peer, &m, sizeof(m), MSG_NOSIGNAL) != sizeof(m) && !P.rep->step)
		P.rep->step = 90;
}

/*
 * The next message of @type from the peer, waiting up to 30 s; 0, or -1.
 * Reads the completion queue meanwhile, once there is one: a provider with
 * manual progress (tcp) moves the peer's writes into us only then.
 */
static int msg_wait(char type, struct msg *ret)
{
	struct pollfd pfd = { P.peer, POLLIN, 0 };
	struct fi_cq_entry e;

	for (int i = 0; i < 30000; i++) {
		if (P.c.cq)
			fi_cq_read(P.c.cq, &e, 1);
		if (poll(&pfd, 1, 1) != 1)
			continue;
		if (recv(P.peer, ret, sizeof(*ret), 0) != sizeof(*ret))
			return -1;
		if (ret->type == type)
			return 0;
	}
	return -1;
}

static int eq_wait(struct fid_eq *eq, uint32_t want, struct fi_eq_cm_entry *entry)
{
	struct fi_eq_err_entry err = { 0 };
	uint32_t event;
	ssize_t r = fi_eq_sread(eq, &event, entry, sizeof(*entry), 30000, 0);

	if (r == -FI_EAVAIL && fi_eq_readerr(eq, &err, 0) > 0) {
		printf("# event queue: %s\n", fi_eq_strerror(eq, err.prov_errno, err.err_data, NULL, 0));
		return -1;
	}
	if (r < 0 || event != want) {
		printf("# event queue: %zd, event %u (want %u)\n", r, event, want);
		return -1;
	}
	return 0;
}

/* FI_EP_MSG of the setup's provider, connected on its address; 0 or the step that failed. */
static int conn_open(struct conn *c, bool server)
{
	struct fi_eq_attr eq_attr = { .wait_obj = FI_WAIT_UNSPEC };
	struct fi_cq_attr cq_attr = { .format = FI_CQ_FORMAT_CONTEXT, .wait_obj = FI_WAIT_NONE };
	struct fi_info *hints = fi_allocinfo(), *info = NULL;
	struct fi_eq_cm_entry entry;
	struct msg m;

	if (!hints)
		return 30;
	hints->ep_attr->type = FI_EP_MSG;
	hints->caps = FI_MSG | FI_RMA;
	hints->mode = FI_CONTEXT;
	hints->domain_attr->mr_mode = FI_MR_LOCAL | FI_MR_VIRT_ADDR | FI_MR_ALLOCATED |
				      FI_MR_PROV_KEY;
	hints->domain_attr->threading = FI_THREAD_SAFE; /* the monitor's flush runs in daxpool's thread */
	hints->fabric_attr->prov_name = strdup(setup->prov);
	if (!server && msg_wait('L', &m))
		return 31;
	if (fi_getinfo(FI_VERSION(1, 13), setup->addr, PORT, server ? FI_SOURCE : 0, hints, &info)) {
		fi_freeinfo(hints);
		return 32;
	}
	fi_freeinfo(hints);
	if (fi_fabric(info->fabric_attr, &c->fabric, NULL) ||
	    fi_eq_open(c->fabric, &eq_attr, &c->eq, NULL))
		return 33;
	if (server) {
		if (fi_passive_ep(c->fabric, info, &c->pep, NULL) ||
		    fi_pep_bind(c->pep, &c->eq->fid, 0) || fi_listen(c->pep))
			return 34;
		msg_send('L', 0, 0);
		if (eq_wait(c->eq, FI_CONNREQ, &entry))
			return 35;
		fi_freeinfo(info);
		info = entry.info;
	}
	c->info = info;
	printf("# libfabric %u.%u: %s, %s, FI_EP_MSG\n", FI_MAJOR(fi_version()),
	       FI_MINOR(fi_version()), info->fabric_attr->prov_name, info->domain_attr->name);
	if (fi_domain(c->fabric, info, &c->domain, NULL) ||
	    fi_cq_open(c->domain, &cq_attr, &c->cq, NULL) ||
	    fi_endpoint(c->domain, info, &c->ep, NULL) || fi_ep_bind(c->ep, &c->eq->fid, 0) ||
	    fi_ep_bind(c->ep, &c->cq->fid, FI_TRANSMIT | FI_RECV) || fi_enable(c->ep))
		return 36;
	if (server ? fi_accept(c->ep, NULL, 0) : fi_connect(c->ep, info->dest_addr, NULL, 0))
		return 37;
	if (eq_wait(c->eq, FI_CONNECTED, &entry))
		return 38;
	return 0;
}

static void conn_close(struct conn *c)
{
	if (c->ep)
		fi_close(&c->ep->fid);
	if (c->cq)
		fi_close(&c->cq->fid);
	if (c->domain)
		fi_close(&c->domain->fid);
	if (c->pep)
		fi_close(&c->pep->fid);
	if (c->eq)
		fi_close(&c->eq->fid);
	if (c->fabric)
		fi_close(&c->fabric->fid);
	fi_freeinfo(c->info);
}

/* The address a peer writes at to reach @base of an MR: virtual (verbs) or an offset (tcp). */
static uint64_t rma_addr(const void *base)
{
	return P.c.info->domain_attr->mr_mode & FI_MR_VIRT_ADDR ? (uint64_t)(uintptr_t)base : 0;
}

/* Fill the source chunk with @seq, write it into the peer's slot for @seq, wait for completion. */
static int write_seq(char *src, struct fid_mr *mr, uint64_t raddr, uint64_t rkey, uint64_t seq)
{
	struct fi_context fctx;
	struct fi_cq_entry e;
	uint64_t t0 = now_ns();
	ssize_t r;

	for (size_t i = 0; i < CHUNK / sizeof(uint64_t); i++)
		((uint64_t *)src)[i] = seq;
	struct iovec iov = { src, CHUNK };
	struct fi_rma_iov rma = { raddr + (seq % SLOTS) * CHUNK, CHUNK, rkey };
	void *desc = fi_mr_desc(mr);
	struct fi_msg_rma msg = { .msg_iov = &iov, .desc = &desc, .iov_count = 1,
				  .rma_iov = &rma, .rma_iov_count = 1, .context = &fctx };

	do
		r = fi_writemsg(P.c.ep, &msg, FI_COMPLETION | setup->tx_op_flags);
	while (r == -FI_EAGAIN);
	if (r)
		return -1;
	while ((r = fi_cq_read(P.c.cq, &e, 1)) == -FI_EAGAIN)
		if (now_ns() - t0 > 30000000000ull)
			return -1;
	if (r != 1) {
		struct fi_cq_err_entry err = { 0 };

		if (r == -FI_EAVAIL && fi_cq_readerr(P.c.cq, &err, 0) > 0)
			printf("# fi_write: %s\n",
			       fi_cq_strerror(P.c.cq, err.prov_errno, err.err_data, NULL, 0));
		return -1;
	}
	return 0;
}

/*
 * The data path: writes into the peer until either side stops. Its own stop
 * (asked by the revoke function): no more writes, the peer asked to stop
 * writing into us; when the peer acknowledged, the MR is closed and the
 * revoke function may return. Ends when both directions are stopped.
 */
static void *data_path(void *arg)
{
	bool writing = true, asked_peer = false, peer_stopped = false, answered_peer = false;
	uint64_t seq = 0;
	struct msg m;

	(void)arg;
	for (;;) {
		bool stop_asked;

		while (recv(P.peer, &m, sizeof(m), MSG_DONTWAIT) == sizeof(m)) {
			if (m.type == 'S') {
				writing = false; /* no write is in flight here */
				msg_send('A', seq, 0);
				answered_peer = true;
			} else if (m.type == 'A') {
				P.rep->peer_wrote = m.a;
				peer_stopped = true;
			}
		}
		pthread_mutex_lock(&P.lock);
		stop_asked = P.state == STOP_ASKED;
		pthread_mutex_unlock(&P.lock);
		if (stop_asked) {
			writing = false; /* our source memory goes too */
			if (!asked_peer) {
				msg_send('S', 0, 0);
				asked_peer = true;
			}
			if (peer_stopped) {
				/* Nothing writes into the map or from it: the MR can go. */
				fi_close(&P.mr->fid);
				P.mr = NULL;
				pthread_mutex_lock(&P.lock);
				P.state = STOPPED;
				pthread_cond_broadcast(&P.cond);
				pthread_mutex_unlock(&P.lock);
			}
		}
		if (!P.mr && answered_peer)
			break;
		if (!writing) {
			struct fi_cq_entry e;

			fi_cq_read(P.c.cq, &e, 1); /* progress for the peer's writes (tcp) */
			msleep(1);
			continue;
		}
		if (write_seq(P.base + TARGET_LEN + (seq % 2) * CHUNK, P.mr, P.raddr, P.rkey,
			      seq + 1)) {
			if (!P.rep->step)
				P.rep->step = 50;
			writing = false;
			continue;
		}
		P.rep->wrote = ++seq;
		if (seq == READY_AFTER && write(P.ready, "r", 1) != 1 && !P.rep->step)
			P.rep->step = 51;
	}
	return NULL;
}

/* daxpool's client thread, on the release's zap: stop the data path; it closes the MR. */
static void map_revoked(struct daxpool_map *map, void *userdata)
{
	uint64_t t0 = now_ns();

	(void)map;
	(void)userdata;
	pthread_mutex_lock(&P.lock);
	if (P.state == RUNNING)
		P.state = STOP_ASKED;
	while (P.state != STOPPED)
		pthread_cond_wait(&P.cond, &P.lock);
	pthread_mutex_unlock(&P.lock);
	P.rep->revoke_ms = (double)(now_ns() - t0) / 1e6;
}

/* After the release: the same domain and cache, memory of a second region; 0 or the step that failed. */
static int carry_on(struct daxpool_ctx *ctx, struct daxpool_fabric_monitor *mon, const char *file)
{
	struct daxpool_region *region;
	struct daxpool_map *map;
	struct fid_mr *mr;
	struct msg m;
	char *base;

	if (daxpool_region_open(ctx, file, 0, &region) ||
	    daxpool_map_new(region, 0, SPAN, 0, &map))
		return 60;
	base = daxpool_map_get_address(map);
	memset(base, 0, SPAN);
	if (fi_mr_reg(P.c.domain, base, SPAN,
		      FI_READ | FI_WRITE | FI_REMOTE_READ | FI_REMOTE_WRITE, 0, 0, 0, &mr, NULL))
		return 61;
	if (daxpool_fabric_monitor_get_pin_count(mon) != setup->rdma)
		return 62; /* verbs: the cache keeps it, as a daxpool pin */
	msg_send('K', rma_addr(base), fi_mr_key(mr));
	if (msg_wait('K', &m))
		return 63;
	for (uint64_t i = 0; i < SLOTS; i++)
		if (write_seq(base + TARGET_LEN, mr, m.a, m.b, AFTER_BASE * SLOTS + i))
			return 64;
	msg_send('D', 0, 0);
	if (msg_wait('D', &m))
		return 65;
	for (uint64_t i = 0; i < SLOTS; i++)
		for (size_t j = 0; j < CHUNK / sizeof(uint64_t); j++)
			if (((uint64_t *)(base + i * CHUNK))[j] != AFTER_BASE * SLOTS + i)
				return 66; /* the peer's writes did not all arrive */
	fi_close(&mr->fid);
	daxpool_map_unref(map);
	daxpool_region_unref(region);
	return 0;
}

/* One of the two processes (@role 0 listens, 1 connects); its exit status. */
static int traffic_process(int role, const char *dev, const char *file, int go)
{
	struct daxpool_fabric_monitor *mon;
	struct daxpool_region *region;
	struct daxpool_map *map;
	struct daxpool_ctx *ctx;
	pthread_t thread;
	uint64_t t0 = 0;
	struct msg m;
	char c;
	int r;

	prctl(PR_SET_NAME, role ? "fab-connect" : "fab-listen");
	if (daxpool_ctx_new(&ctx) || daxpool_ctx_connect_daemon(ctx, sock_path))
		return 10;
	if (daxpool_fabric_monitor_new(ctx, &mon))
		return 11; /* before the first domain */
	if (daxpool_region_open(ctx, dev, 0, &region) ||
	    daxpool_map_new(region, (uint64_t)role * SPAN, SPAN, 0, &map))
		return 12;
	daxpool_map_set_revoke_fn(map, map_revoked, NULL);
	P.base = daxpool_map_get_address(map);
	memset(P.base, 0, SPAN);
	r = conn_open(&P.c, role == 0);
	if (r)
		return r;
	if (daxpool_fabric_monitor_add_domain(mon, P.c.domain))
		return 13;
	if (fi_mr_reg(P.c.domain, P.base, SPAN,
		      FI_READ | FI_WRITE | FI_REMOTE_READ | FI_REMOTE_WRITE, 0, 0, 0, &P.mr, NULL))
		return 14;
	/* verbs: the cached MR is a daxpool pin; tcp caches nothing, so there is none. */
	if (daxpool_fabric_monitor_get_pin_count(mon) != setup->rdma ||
	    daxpool_region_get_pin_count(region, DAXPOOL_PIN_LONGTERM) != setup->rdma)
		return 15;
	msg_send('K', rma_addr(P.base), fi_mr_key(P.mr));
	if (msg_wait('K', &m))
		return 16;
	P.raddr = m.a;
	P.rkey = m.b;
	if (pthread_create(&thread, NULL, data_path, NULL))
		return 17;
	if (!setup->rdma) {
		/* No release of a file: the zap a release makes in the client, when the test says. */
		if (read(go, &c, 1) != 1)
			return 21;
		t0 = now_ns();
		if (daxpool_region_zap(region) < 1)
			return 22;
	}
	pthread_mutex_lock(&P.lock);
	while (P.state != STOPPED)
		pthread_cond_wait(&P.cond, &P.lock);
	pthread_mutex_unlock(&P.lock);
	daxpool_map_unref(map); /* the release can complete now */
	pthread_join(thread, NULL);
	if (P.rep->step)
		return P.rep->step;
	if (!setup->rdma) {
		if (daxpool_region_wait_idle(region, 0, NULL))
			return 23;
		P.rep->idle_ms = (double)(now_ns() - t0) / 1e6;
	}
	if (daxpool_fabric_monitor_get_pin_count(mon) != 0 || daxpool_region_get_pin_count(region, 0))
		return 18;
	if (write(P.ready, "s", 1) != 1 || read(go, &c, 1) != 1)
		return 19;
	r = carry_on(ctx, mon, file);
	if (r)
		return r;
	daxpool_fabric_monitor_remove_domain(mon, P.c.domain);
	conn_close(&P.c);
	if (daxpool_fabric_monitor_free(mon))
		return 20;
	daxpool_region_unref(region);
	daxpool_ctx_unref(ctx);
	return 0;
}

/* The pair on @backing (the devdax device, or a file of two spans on the host) with @s's provider. */
static void writes_stop_and_drain(const struct setup *s, const char *backing)
{
	char *dev = strdup(backing); /* the harness's path buffer is reused below */
	const char *name = strrchr(dev, '/') + 1;
	int ready[2][2], go[2][2], peer[2];
	struct report *rep;
	char *files[2];
	uint64_t t0, t1;
	pid_t pid[2];
	int rc, fd;
	char *mem;

	setup = s;
	CHECK(!s->rdma || devdax_enabled(name));
	daemon_start(NULL);
	rep = fixture_shared(2 * sizeof(*rep));
	CHECK(socketpair(AF_UNIX, SOCK_SEQPACKET, 0, peer) == 0);
	for (int i = 0; i < 2; i++) {
		files[i] = strdup(fixture_plain_file(SPAN));
		CHECK(files[i] && pipe(ready[i]) == 0 && pipe(go[i]) == 0);
	}
	fflush(stdout);
	for (int i = 0; i < 2; i++) {
		pid[i] = fork();
		CHECK(pid[i] >= 0);
		if (pid[i] == 0) {
			prctl(PR_SET_PDEATHSIG, SIGKILL);
			P.peer = peer[i];
			P.ready = ready[i][1];
			P.rep = &rep[i];
			_exit(traffic_process(i, dev, files[i], go[i][0]));
		}
		close(ready[i][1]);
		close(go[i][0]);
	}
	close(peer[0]);
	close(peer[1]);
	for (int i = 0; i < 2; i++) {
		CHECK_EQ(mw_read_within(ready[i][0], 120000), 'r'); /* writing both ways */
		CHECK(!s->rdma || mw_mrs_of(pid[i], SPAN, SPAN) == 1);
	}
	rc = ctl(out, sizeof(out), (const char *const[]){ "pins", NULL });
	printf("# %s", out);
	CHECK(rc == 0);
	if (s->rdma) {
		/* The cached MRs, as the monitor's pins. */
		CHECK(strstr(out, "fab-listen") && strstr(out, "fab-connect"));
		t0 = now_ns();
		rc = ctl(out, sizeof(out),
			 (const char *const[]){ "release", "--timeout", "60", name, NULL });
		t1 = now_ns();
		printf("# %s", out);
		printf("# release request to disabled, with RMA traffic: %.1f ms (revoke functions "
		       "%.1f, %.1f ms)\n",
		       (double)(t1 - t0) / 1e6, rep[0].revoke_ms, rep[1].revoke_ms);
		CHECK_EQ(rc, 0);
		CHECK(!devdax_enabled(name));
	} else {
		for (int i = 0; i < 2; i++)
			CHECK(write(go[i][1], "z", 1) == 1);
	}
	for (int i = 0; i < 2; i++) {
		CHECK_EQ(mw_read_within(ready[i][0], 60000), 's'); /* stopped, map and pins gone */
		CHECK(!s->rdma || mw_mrs_of(pid[i], SPAN, SPAN) == 0); /* deregistered */
	}
	if (!s->rdma)
		printf("# zap to idle, with RMA traffic: %.1f, %.1f ms (revoke functions %.1f, %.1f ms)\n",
		       rep[0].idle_ms, rep[1].idle_ms, rep[0].revoke_ms, rep[1].revoke_ms);
	for (int i = 0; i < 2; i++)
		CHECK(write(go[i][1], "g", 1) == 1);
	for (int i = 0; i < 2; i++) {
		int status;

		CHECK_EQ(waitpid(pid[i], &status, 0), pid[i]);
		if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
			printf("# process %d: status %#x (step %d)\n", i, status, rep[i].step);
		CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	}
	daemon_kill(SIGTERM);
	if (s->rdma) {
		devdax_enable(name);
		CHECK(devdax_enabled(name));
	}
	/* What landed: each map's first half holds the peer's writes up to its last acknowledged one. */
	fd = open(dev, O_RDWR);
	CHECK(fd >= 0);
	mem = mmap(NULL, 2 * SPAN, PROT_READ, MAP_SHARED, fd, 0);
	CHECK(mem != MAP_FAILED);
	/* Process 1 wrote into process 0's map, which acknowledged; and the other way. */
	mw_check_landed(mem, TARGET_LEN, CHUNK, rep[1].wrote, rep[0].peer_wrote, READY_AFTER);
	mw_check_landed(mem + SPAN, TARGET_LEN, CHUNK, rep[0].wrote, rep[1].peer_wrote, READY_AFTER);
	munmap(mem, 2 * SPAN);
	close(fd);
	free(files[0]);
	free(files[1]);
	free(dev);
}

TEST_TIMEOUT(rma_writes_on_verbs_drain_with_the_release, 300)
{
	writes_stop_and_drain(&verbs, mw_need_devdax_and_rdma_cm());
}

/*
 * On the host too: libfabric's tcp provider on a file region, the same data
 * path and revoke from a zap in each process. tcp keeps no MR cache, so its
 * MRs are no pins and the monitor only sits imported: what runs for real is
 * the import, the domains' flush and the application's side.
 */
TEST_TIMEOUT(rma_writes_on_tcp_stop_with_a_zap, 300)
{
	writes_stop_and_drain(&tcp, fixture_plain_file(2 * SPAN));
}
