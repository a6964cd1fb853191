/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The peer of libdaxpool-remote: a connection to a server, grants asked for
 * by name, RDMA reads and writes into them, the server's revokes told to the
 * application and acknowledged (include/daxpool-remote.h).
 *
 * The peer's thread takes rdma_cm events and every completion; callers of
 * get_grant, read and write wait on peer->cond for it. State is under
 * peer->lock; the application's revoke function runs on the thread with it
 * unlocked.
 */
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <rdma/rdma_cma.h>

#include "remote.h"

#define STAGE_SIZE (1u << 20) /* the registered buffer reads and writes go through */
#define IO_TIMEOUT_MS 30000

struct daxpool_remote_grant {
	struct daxpool_remote_peer *peer;
	uint64_t id, addr, length;
	uint32_t rkey, access;
	int mode;
	char name[DP_RWIRE_NAME_MAX + 1];
	bool revoked;	  /* the REVOKE came, or the connection ended */
	bool notified;	  /* the revoke function ran (or is running) */
	bool ack_pending; /* to acknowledge once no operation on it is in flight */
	bool io_busy;	  /* an operation on it is in flight */
	struct daxpool_remote_grant *next;
};

struct daxpool_remote_peer {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	pthread_mutex_t op_lock; /* one request or operation at a time */
	struct dp_rlog log;
	struct rdma_event_channel *ec;
	struct rdma_cm_id *id;
	struct ibv_pd *pd;
	struct ibv_comp_channel *cc;
	struct ibv_cq *cq;
	struct dp_rchan chan;
	bool chan_ready;
	uint8_t *stage;
	struct ibv_mr *stage_mr;
	bool connected;
	struct daxpool_remote_grant *grants;
	daxpool_remote_revoke_fn revoke_fn;
	void *revoke_data;
	/* The grant request waiting for its answer. */
	uint32_t next_seq, want_seq;
	bool have_reply;
	struct dp_rwire_msg reply;
	/* The operation in flight. */
	uint64_t io_seq;
	bool io_done;
	enum ibv_wc_status io_status;
	int wake[2];
	pthread_t thread;
	bool thread_started, stopping;
	struct daxpool_remote_grant *notifying; /* its revoke function runs now */
};

#define peer_log(p, prio, ...) dp_rlog(&(p)->log, prio, __VA_ARGS__)

static void send_ack(struct daxpool_remote_peer *p, struct daxpool_remote_grant *g)
{
	struct dp_rwire_msg m = { .type = DP_RWIRE_REVOKE_ACK, .id = g->id };

	g->ack_pending = false;
	if (p->connected && dp_rchan_send(&p->chan, &m, false) < 0)
		peer_log(p, LOG_ERR, "grant %s: the revoke's acknowledgement could not be sent",
			 g->name);
}

/*
 * The connection ended: every grant is revoked. The queue pair goes to the
 * error state here, so an I/O posted before the end completes now (flushed)
 * instead of waiting for a server that will never answer it: rxe retries
 * a request to a destroyed queue pair for tens of seconds. With p->lock held.
 */
static void peer_lost(struct daxpool_remote_peer *p, const char *why)
{
	struct ibv_qp_attr attr = { .qp_state = IBV_QPS_ERR };

	if (!p->connected)
		return;
	p->connected = false;
	if (p->id->qp)
		(void)ibv_modify_qp(p->id->qp, &attr, IBV_QP_STATE);
	peer_log(p, LOG_NOTICE, "connection ended: %s", why);
	for (struct daxpool_remote_grant *g = p->grants; g; g = g->next) {
		g->revoked = true;
		g->ack_pending = false;
	}
	pthread_cond_broadcast(&p->cond);
}

/* Run the revoke function of every grant revoked and not yet told. With p->lock held. */
static void notify_revoked(struct daxpool_remote_peer *p)
{
	struct daxpool_remote_grant *g;

again:
	for (g = p->grants; g; g = g->next) {
		daxpool_remote_revoke_fn fn = p->revoke_fn;
		void *data = p->revoke_data;

		if (!g->revoked || g->notified)
			continue;
		g->notified = true;
		if (fn) {
			p->notifying = g;
			pthread_mutex_unlock(&p->lock);
			fn(g, data);
			pthread_mutex_lock(&p->lock);
			p->notifying = NULL;
			pthread_cond_broadcast(&p->cond);
		}
		if (g->ack_pending && !g->io_busy)
			send_ack(p, g);
		goto again; /* the list may have changed while unlocked */
	}
}

static void handle_message(struct daxpool_remote_peer *p, const uint8_t *buf, uint32_t len)
{
	struct dp_rwire_msg m;
	int r = dp_rwire_decode(buf, len, &m);

	if (r < 0) {
		peer_log(p, LOG_ERR, "a malformed message from the server (%u bytes): %s", len,
			 strerror(-r));
		return;
	}
	switch (m.type) {
	case DP_RWIRE_GRANT:
		if (m.seq == p->want_seq && !p->have_reply) {
			p->reply = m;
			p->have_reply = true;
		}
		break;
	case DP_RWIRE_REVOKE:
		for (struct daxpool_remote_grant *g = p->grants; g; g = g->next)
			if (g->id == m.id && !g->revoked) {
				g->revoked = true;
				g->ack_pending = true;
			}
		break;
	default:
		peer_log(p, LOG_ERR, "a %s message from the server, which servers do not send",
			 dp_rwire_type_name(m.type));
		break;
	}
	pthread_cond_broadcast(&p->cond);
}

static void cq_drain(struct daxpool_remote_peer *p)
{
	struct ibv_wc wc[16];
	int n;

	while ((n = ibv_poll_cq(p->cq, 16, wc)) > 0) {
		for (int i = 0; i < n; i++) {
			unsigned int kind = DP_RWR_KIND(wc[i].wr_id);
			uint64_t num = DP_RWR_N(wc[i].wr_id);
			bool ok = wc[i].status == IBV_WC_SUCCESS;

			switch (kind) {
			case DP_RWR_RECV:
				if (!ok)
					break;
				handle_message(p, dp_rchan_slot(&p->chan, (unsigned int)num),
					       wc[i].byte_len);
				if (p->connected && dp_rchan_repost(&p->chan, (unsigned int)num) < 0)
					peer_lost(p, "a receive could not be posted");
				break;
			case DP_RWR_SEND: dp_rchan_sent(&p->chan); break;
			case DP_RWR_IO:
				if (num == p->io_seq) {
					p->io_done = true;
					p->io_status = wc[i].status;
				}
				break;
			default: break;
			}
			/* Any failed completion: the queue pair is in the error state. */
			if (!ok)
				peer_lost(p, ibv_wc_status_str(wc[i].status));
			pthread_cond_broadcast(&p->cond);
		}
	}
}

static void *peer_thread(void *arg)
{
	struct daxpool_remote_peer *p = arg;
	struct pollfd fds[3] = {
		{ .fd = p->ec->fd, .events = POLLIN },
		{ .fd = p->cc->fd, .events = POLLIN },
		{ .fd = p->wake[0], .events = POLLIN },
	};

	for (;;) {
		struct rdma_cm_event *ev;
		struct ibv_cq *cq;
		void *ctx;

		if (poll(fds, 3, -1) < 0 && errno != EINTR)
			break;
		pthread_mutex_lock(&p->lock);
		if (p->stopping) {
			pthread_mutex_unlock(&p->lock);
			break;
		}
		while (rdma_get_cm_event(p->ec, &ev) == 0) {
			enum rdma_cm_event_type type = ev->event;

			rdma_ack_cm_event(ev);
			if (type == RDMA_CM_EVENT_DISCONNECTED ||
			    type == RDMA_CM_EVENT_DEVICE_REMOVAL)
				peer_lost(p, rdma_event_str(type));
		}
		while (ibv_get_cq_event(p->cc, &cq, &ctx) == 0) {
			ibv_ack_cq_events(cq, 1);
			ibv_req_notify_cq(cq, 0);
		}
		cq_drain(p);
		notify_revoked(p);
		pthread_mutex_unlock(&p->lock);
	}
	return NULL;
}

/* Wait for the connection's next rdma_cm event, which must be @want. */
static int wait_cm(struct daxpool_remote_peer *p, enum rdma_cm_event_type want, int timeout_ms)
{
	struct pollfd pfd = { .fd = p->ec->fd, .events = POLLIN };
	struct rdma_cm_event *ev;
	enum rdma_cm_event_type got;
	int status, r;

	for (;;) {
		if (rdma_get_cm_event(p->ec, &ev) == 0)
			break;
		if (errno != EAGAIN)
			return dp_rerrno();
		r = poll(&pfd, 1, timeout_ms);
		if (r == 0)
			return -ETIMEDOUT;
		if (r < 0 && errno != EINTR)
			return -errno;
	}
	got = ev->event;
	status = ev->status;
	rdma_ack_cm_event(ev);
	if (got == want)
		return 0;
	peer_log(p, LOG_ERR, "connecting: %s (status %d), not %s", rdma_event_str(got), status,
		 rdma_event_str(want));
	switch (got) {
	case RDMA_CM_EVENT_REJECTED: return -ECONNREFUSED;
	case RDMA_CM_EVENT_ADDR_ERROR:
	case RDMA_CM_EVENT_ROUTE_ERROR:
	case RDMA_CM_EVENT_UNREACHABLE: return status < 0 ? status : -EHOSTUNREACH;
	default: return status < 0 ? status : -EIO;
	}
}

_public_ int daxpool_remote_peer_connect(const char *addr, const char *service,
					 const char *src_addr, int timeout_ms,
					 struct daxpool_remote_peer **ret)
{
	struct rdma_addrinfo hints = { 0 }, *dst = NULL, *src = NULL;
	struct ibv_qp_init_attr qpa = { 0 };
	struct rdma_conn_param param = { 0 };
	struct daxpool_remote_peer *p;
	int fl, r;

	if (!addr || !service || !ret || timeout_ms <= 0)
		return -EINVAL;
	p = calloc(1, sizeof(*p));
	if (!p)
		return -ENOMEM;
	pthread_mutex_init(&p->lock, NULL);
	pthread_mutex_init(&p->op_lock, NULL);
	dp_rcond_init(&p->cond);
	dp_rlog_init(&p->log, "daxpool-remote peer");
	p->wake[0] = p->wake[1] = -1;
	p->ec = rdma_create_event_channel();
	if (!p->ec) {
		r = errno == ENOENT ? -ENODEV : dp_rerrno();
		goto fail;
	}
	fl = fcntl(p->ec->fd, F_GETFL);
	if (fl < 0 || fcntl(p->ec->fd, F_SETFL, fl | O_NONBLOCK) < 0) {
		r = -errno;
		goto fail;
	}
	if (rdma_create_id(p->ec, &p->id, p, RDMA_PS_TCP)) {
		r = dp_rerrno();
		goto fail;
	}
	hints.ai_flags = RAI_NUMERICHOST;
	hints.ai_port_space = RDMA_PS_TCP;
	if (rdma_getaddrinfo(addr, service, &hints, &dst)) {
		r = errno ? -errno : -EINVAL;
		goto fail;
	}
	if (src_addr) {
		hints.ai_flags = RAI_NUMERICHOST | RAI_PASSIVE;
		if (rdma_getaddrinfo(src_addr, NULL, &hints, &src)) {
			r = errno ? -errno : -EINVAL;
			goto fail;
		}
	}
	if (rdma_resolve_addr(p->id, src ? src->ai_src_addr : NULL, dst->ai_dst_addr, timeout_ms)) {
		r = errno == ENODEV || errno == EADDRNOTAVAIL ? -ENODEV : dp_rerrno();
		goto fail;
	}
	r = wait_cm(p, RDMA_CM_EVENT_ADDR_RESOLVED, timeout_ms);
	if (r < 0)
		goto fail;
	if (rdma_resolve_route(p->id, timeout_ms)) {
		r = dp_rerrno();
		goto fail;
	}
	r = wait_cm(p, RDMA_CM_EVENT_ROUTE_RESOLVED, timeout_ms);
	if (r < 0)
		goto fail;
	p->pd = ibv_alloc_pd(p->id->verbs);
	p->cc = p->pd ? ibv_create_comp_channel(p->id->verbs) : NULL;
	p->cq = p->cc ? ibv_create_cq(p->id->verbs, DP_RCQ_SIZE, p, p->cc, 0) : NULL;
	if (!p->cq) {
		r = dp_rerrno();
		goto fail;
	}
	fl = fcntl(p->cc->fd, F_GETFL);
	if (fl < 0 || fcntl(p->cc->fd, F_SETFL, fl | O_NONBLOCK) < 0) {
		r = -errno;
		goto fail;
	}
	qpa.send_cq = p->cq;
	qpa.recv_cq = p->cq;
	qpa.qp_type = IBV_QPT_RC;
	qpa.cap.max_send_wr = DP_RQP_SEND_WR;
	qpa.cap.max_recv_wr = DP_RQP_RECV_WR;
	qpa.cap.max_send_sge = 1;
	qpa.cap.max_recv_sge = 1;
	if (rdma_create_qp(p->id, p->pd, &qpa)) {
		r = dp_rerrno();
		goto fail;
	}
	r = dp_rchan_init(&p->chan, p->pd, p->id->qp);
	if (r < 0)
		goto fail;
	p->chan_ready = true;
	p->stage = aligned_alloc(4096, STAGE_SIZE);
	p->stage_mr = p->stage ? ibv_reg_mr(p->pd, p->stage, STAGE_SIZE, IBV_ACCESS_LOCAL_WRITE) :
				 NULL;
	if (!p->stage_mr) {
		r = p->stage ? dp_rerrno() : -ENOMEM;
		goto fail;
	}
	if (ibv_req_notify_cq(p->cq, 0)) {
		r = dp_rerrno();
		goto fail;
	}
	param.responder_resources = 1;
	param.initiator_depth = 1;
	param.retry_count = 7;
	param.rnr_retry_count = 7;
	if (rdma_connect(p->id, &param)) {
		r = dp_rerrno();
		goto fail;
	}
	r = wait_cm(p, RDMA_CM_EVENT_ESTABLISHED, timeout_ms);
	if (r < 0)
		goto fail;
	p->connected = true;
	if (pipe2(p->wake, O_CLOEXEC | O_NONBLOCK) < 0) {
		r = -errno;
		goto fail;
	}
	r = -pthread_create(&p->thread, NULL, peer_thread, p);
	if (r < 0)
		goto fail;
	p->thread_started = true;
	rdma_freeaddrinfo(dst);
	if (src)
		rdma_freeaddrinfo(src);
	peer_log(p, LOG_INFO, "connected to %s port %s through %s", addr, service,
		 ibv_get_device_name(p->id->verbs->device));
	*ret = p;
	return 0;
fail:
	if (dst)
		rdma_freeaddrinfo(dst);
	if (src)
		rdma_freeaddrinfo(src);
	daxpool_remote_peer_free(p);
	return r;
}

_public_ struct daxpool_remote_peer *daxpool_remote_peer_free(struct daxpool_remote_peer *p)
{
	if (!p)
		return NULL;
	while (p->grants)
		daxpool_remote_grant_release(p->grants);
	if (p->thread_started) {
		pthread_mutex_lock(&p->lock);
		p->stopping = true;
		pthread_mutex_unlock(&p->lock);
		(void)!write(p->wake[1], "x", 1);
		pthread_join(p->thread, NULL);
	}
	if (p->connected)
		rdma_disconnect(p->id);
	if (p->id && p->id->qp)
		rdma_destroy_qp(p->id);
	if (p->chan_ready)
		dp_rchan_destroy(&p->chan);
	if (p->stage_mr)
		ibv_dereg_mr(p->stage_mr);
	free(p->stage);
	if (p->cq)
		ibv_destroy_cq(p->cq);
	if (p->cc)
		ibv_destroy_comp_channel(p->cc);
	if (p->pd)
		ibv_dealloc_pd(p->pd);
	if (p->id)
		rdma_destroy_id(p->id);
	if (p->ec)
		rdma_destroy_event_channel(p->ec);
	if (p->wake[0] >= 0)
		close(p->wake[0]);
	if (p->wake[1] >= 0)
		close(p->wake[1]);
	pthread_cond_destroy(&p->cond);
	pthread_mutex_destroy(&p->op_lock);
	pthread_mutex_destroy(&p->lock);
	free(p);
	return NULL;
}

_public_ int daxpool_remote_peer_set_log_fn(struct daxpool_remote_peer *p,
					    daxpool_remote_log_fn log_fn, void *userdata)
{
	if (!p)
		return -EINVAL;
	dp_rlog_set(&p->log, &p->lock, log_fn, userdata);
	return 0;
}

_public_ int daxpool_remote_peer_set_revoke_fn(struct daxpool_remote_peer *p,
					       daxpool_remote_revoke_fn revoke_fn, void *userdata)
{
	if (!p)
		return -EINVAL;
	pthread_mutex_lock(&p->lock);
	p->revoke_fn = revoke_fn;
	p->revoke_data = userdata;
	pthread_mutex_unlock(&p->lock);
	return 0;
}

_public_ int daxpool_remote_peer_is_connected(struct daxpool_remote_peer *p)
{
	int r;

	if (!p)
		return -EINVAL;
	pthread_mutex_lock(&p->lock);
	r = p->connected;
	pthread_mutex_unlock(&p->lock);
	return r;
}

static bool on_peer_thread(struct daxpool_remote_peer *p)
{
	return p->thread_started && pthread_equal(p->thread, pthread_self());
}

_public_ int daxpool_remote_peer_get_grant(struct daxpool_remote_peer *p, const char *name,
					   unsigned int access, int timeout_ms,
					   struct daxpool_remote_grant **ret)
{
	struct dp_rwire_msg m = { .type = DP_RWIRE_GRANT_REQ };
	struct daxpool_remote_grant *g;
	struct timespec deadline;
	size_t n;
	int r = 0;

	if (!p || !name || !ret || timeout_ms <= 0 || !access ||
	    (access & ~(DAXPOOL_REMOTE_READ | DAXPOOL_REMOTE_WRITE)))
		return -EINVAL;
	n = strlen(name);
	if (n == 0 || n > DP_RWIRE_NAME_MAX)
		return -EINVAL;
	if (on_peer_thread(p))
		return -EDEADLK;
	memcpy(m.name, name, n);
	m.access = access;
	g = calloc(1, sizeof(*g));
	if (!g)
		return -ENOMEM;
	deadline = dp_rdeadline(timeout_ms);
	pthread_mutex_lock(&p->op_lock);
	pthread_mutex_lock(&p->lock);
	m.seq = ++p->next_seq;
	p->want_seq = m.seq;
	p->have_reply = false;
	if (!p->connected)
		r = -ENOTCONN;
	else
		r = dp_rchan_send(&p->chan, &m, false);
	while (r == 0 && !p->have_reply && p->connected)
		if (pthread_cond_timedwait(&p->cond, &p->lock, &deadline) == ETIMEDOUT)
			r = -ETIMEDOUT;
	if (r == 0 && !p->have_reply)
		r = -ENOTCONN;
	if (r == 0 && p->reply.status)
		r = p->reply.status;
	if (r == 0 && strcmp(p->reply.name, name)) {
		peer_log(p, LOG_ERR, "the server granted %s for a request of %s", p->reply.name,
			 name);
		r = -EPROTO;
	}
	if (r == 0) {
		g->peer = p;
		g->id = p->reply.id;
		g->addr = p->reply.addr;
		g->length = p->reply.length;
		g->rkey = p->reply.rkey;
		g->access = p->reply.access;
		g->mode = (int)p->reply.mode;
		memcpy(g->name, p->reply.name, sizeof(g->name));
		g->next = p->grants;
		p->grants = g;
		peer_log(p, LOG_INFO, "grant %s: %llu bytes, rkey %#x (%s)", g->name,
			 (unsigned long long)g->length, g->rkey,
			 g->mode == DAXPOOL_REMOTE_WINDOW ? "window" : "MR");
	}
	p->want_seq = 0;
	pthread_mutex_unlock(&p->lock);
	pthread_mutex_unlock(&p->op_lock);
	if (r < 0) {
		free(g);
		return r;
	}
	*ret = g;
	return 0;
}

_public_ int daxpool_remote_grant_release(struct daxpool_remote_grant *g)
{
	struct daxpool_remote_peer *p;
	struct daxpool_remote_grant **pp;

	if (!g)
		return -EINVAL;
	p = g->peer;
	pthread_mutex_lock(&p->lock);
	/* Not while its revoke function runs on the peer's thread. */
	while (p->notifying == g)
		pthread_cond_wait(&p->cond, &p->lock);
	if (!g->revoked && p->connected) {
		struct dp_rwire_msg m = { .type = DP_RWIRE_RELEASE, .id = g->id };

		if (dp_rchan_send(&p->chan, &m, false) < 0)
			peer_log(p, LOG_ERR, "grant %s: the release could not be sent", g->name);
	} else if (g->ack_pending) {
		send_ack(p, g);
	}
	for (pp = &p->grants; *pp; pp = &(*pp)->next)
		if (*pp == g) {
			*pp = g->next;
			break;
		}
	pthread_mutex_unlock(&p->lock);
	free(g);
	return 0;
}

_public_ uint64_t daxpool_remote_grant_get_address(struct daxpool_remote_grant *g)
{
	return g ? g->addr : 0;
}

_public_ uint64_t daxpool_remote_grant_get_length(struct daxpool_remote_grant *g)
{
	return g ? g->length : 0;
}

_public_ uint32_t daxpool_remote_grant_get_rkey(struct daxpool_remote_grant *g)
{
	return g ? g->rkey : 0;
}

_public_ const char *daxpool_remote_grant_get_name(struct daxpool_remote_grant *g)
{
	return g ? g->name : NULL;
}

_public_ int daxpool_remote_grant_get_mode(struct daxpool_remote_grant *g)
{
	return g ? g->mode : -EINVAL;
}

_public_ int daxpool_remote_grant_is_revoked(struct daxpool_remote_grant *g)
{
	int r;

	if (!g)
		return -EINVAL;
	/* From the revoke function the peer's lock is not held, so this does not deadlock. */
	pthread_mutex_lock(&g->peer->lock);
	r = g->revoked;
	pthread_mutex_unlock(&g->peer->lock);
	return r;
}

/* One RDMA READ or WRITE of at most STAGE_SIZE bytes through the stage buffer. */
static int grant_io_chunk(struct daxpool_remote_grant *g, uint64_t offset, size_t len,
			  bool write, unsigned int flags)
{
	struct daxpool_remote_peer *p = g->peer;
	struct ibv_sge sge = { .addr = (uintptr_t)p->stage, .length = (uint32_t)len,
			       .lkey = p->stage_mr->lkey };
	struct ibv_send_wr wr = { .sg_list = &sge, .num_sge = 1,
				  .opcode = write ? IBV_WR_RDMA_WRITE : IBV_WR_RDMA_READ,
				  .send_flags = IBV_SEND_SIGNALED };
	struct ibv_send_wr *bad;
	struct timespec deadline = dp_rdeadline(IO_TIMEOUT_MS);
	int r = 0;

	wr.wr.rdma.remote_addr = g->addr + offset;
	wr.wr.rdma.rkey = g->rkey;
	pthread_mutex_lock(&p->lock);
	if (!p->connected) {
		pthread_mutex_unlock(&p->lock);
		return -ECONNRESET;
	}
	if (g->revoked && !(flags & DAXPOOL_REMOTE_IO_UNCHECKED)) {
		pthread_mutex_unlock(&p->lock);
		return -ENXIO;
	}
	p->io_seq++;
	p->io_done = false;
	wr.wr_id = DP_RWR_ID(DP_RWR_IO, p->io_seq);
	g->io_busy = true;
	r = -ibv_post_send(p->id->qp, &wr, &bad);
	while (r == 0 && !p->io_done)
		if (pthread_cond_timedwait(&p->cond, &p->lock, &deadline) == ETIMEDOUT)
			r = -ETIMEDOUT;
	if (r == 0 && p->io_status != IBV_WC_SUCCESS)
		r = p->io_status == IBV_WC_REM_ACCESS_ERR ? -EACCES : -ECONNRESET;
	g->io_busy = false;
	/* A revoke that came while it was in flight is acknowledged now. */
	if (g->ack_pending && g->notified)
		send_ack(p, g);
	pthread_mutex_unlock(&p->lock);
	return r;
}

static int grant_io(struct daxpool_remote_grant *g, uint64_t offset, void *buf, size_t length,
		    bool write, unsigned int flags)
{
	struct daxpool_remote_peer *p;
	size_t done = 0;
	int r = 0;

	if (!g || !buf || !length || (flags & ~DAXPOOL_REMOTE_IO_UNCHECKED))
		return -EINVAL;
	p = g->peer;
	if (on_peer_thread(p))
		return -EDEADLK;
	if (!(flags & DAXPOOL_REMOTE_IO_UNCHECKED) &&
	    (offset > g->length || length > g->length - offset))
		return -ERANGE;
	if (!(flags & DAXPOOL_REMOTE_IO_UNCHECKED) &&
	    !(g->access & (write ? DAXPOOL_REMOTE_WRITE : DAXPOOL_REMOTE_READ)))
		return -EACCES;
	pthread_mutex_lock(&p->op_lock);
	while (r == 0 && done < length) {
		size_t n = length - done < STAGE_SIZE ? length - done : STAGE_SIZE;

		if (write)
			memcpy(p->stage, (uint8_t *)buf + done, n);
		r = grant_io_chunk(g, offset + done, n, write, flags);
		if (r == 0 && !write)
			memcpy((uint8_t *)buf + done, p->stage, n);
		done += n;
	}
	pthread_mutex_unlock(&p->op_lock);
	return r;
}

_public_ int daxpool_remote_grant_write(struct daxpool_remote_grant *g, uint64_t offset,
					const void *buf, size_t length, unsigned int flags)
{
	return grant_io(g, offset, (void *)buf, length, true, flags);
}

_public_ int daxpool_remote_grant_read(struct daxpool_remote_grant *g, uint64_t offset, void *buf,
				       size_t length, unsigned int flags)
{
	return grant_io(g, offset, buf, length, false, flags);
}
