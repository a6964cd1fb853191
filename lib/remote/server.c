/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The server of libdaxpool-remote: exports, the peers' connections and their
 * grants, each grant a daxpool pin whose revoke ends the peer's access first
 * (include/daxpool-remote.h).
 *
 * Threads: the server's own thread takes rdma_cm events and completions; a
 * zap calls the revoke in the zapping thread, which posts the invalidations
 * and waits on srv->cond for the server's thread to see them complete. All
 * state is under srv->lock; daxpool pins are dropped after it is unlocked
 * (the last unref of a device-write pin persists its range).
 */
#include <arpa/inet.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <rdma/rdma_cma.h>

#include "remote.h"
#include "window.h"

#define MAX_PEERS 64
#define MAX_GRANTS_PER_PEER 32 /* with a BIND and a LOCAL_INV each, within DP_RQP_SEND_WR */
#define REVOKE_TIMEOUT_MS_DEFAULT 2000

struct export;
struct conn;

enum grant_state {
	G_BINDING,  /* the window's bind is posted; the peer has no answer yet */
	G_LIVE,	    /* the peer has the rkey */
	G_REVOKING, /* invalidated (or being), told; waiting for the ack */
};

struct grant {
	uint64_t id;
	struct conn *conn;
	struct export *exp;
	struct daxpool_pin *pin; /* holds the export's range while the peer may reach it */
	struct ibv_mw *mw;	 /* window mode */
	struct ibv_mr *mr;	 /* MR mode */
	uint32_t rkey, access, req_seq;
	enum grant_state state;
	bool revoke_pending; /* revoked while binding */
	bool invalidated;    /* the rkey no longer works */
	bool acked;	     /* the peer said it is done (or will never be told) */
	struct grant *next_in_conn, *next_in_exp;
};

struct export {
	char name[DP_RWIRE_NAME_MAX + 1];
	struct daxpool_pin *mr_pin; /* the export's MR (daxpool_rdma_reg_mr()) */
	void *addr;
	size_t length;
	unsigned int access;
	bool dead;
	unsigned int n_grants;
	struct grant *grants;
	/* The last revoke: start, all invalidated, all done; peers disconnected. */
	uint64_t revoke_start_ns, revoke_inval_ns, revoke_done_ns;
	int revoke_disconnected;
	struct export *next;
};

struct conn {
	struct daxpool_remote_server *srv;
	struct rdma_cm_id *id;
	struct ibv_cq *cq;
	struct dp_rchan chan;
	char peer[64]; /* "ADDR:PORT" */
	bool established, dead;
	unsigned int n_grants;
	struct grant *grants;
	struct conn *next;
};

struct daxpool_remote_server {
	pthread_mutex_t lock;
	pthread_cond_t cond; /* a grant ended, a completion arrived */
	struct dp_rlog log;
	struct rdma_event_channel *ec;
	struct rdma_cm_id *listen;
	struct ibv_pd *pd;
	struct ibv_comp_channel *cc;
	int mode;
	char mode_reason[256];
	int port;
	int revoke_timeout_ms;
	uint64_t next_grant_id;
	struct export *exports;
	struct conn *conns;
	unsigned int n_conns;
	/* Pins to drop once srv->lock is released. */
	struct daxpool_pin **unref;
	size_t n_unref, cap_unref;
	int wake[2];
	pthread_t thread;
	bool thread_started, stopping;
	/* On the list of live servers (g_lock): how a revoke finds its server. */
	unsigned int busy; /* revokes running on it */
	struct daxpool_remote_server *next;
};

/*
 * A zap may call the revoke of a pin whose server is being freed: the
 * revoke finds its server on this list (by address, before touching it) and
 * marks it busy; daxpool_remote_server_free() unlinks it and waits until no
 * revoke runs on it.
 */
static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t g_cond = PTHREAD_COND_INITIALIZER;
static struct daxpool_remote_server *g_servers;

#define srv_log(srv, prio, ...) dp_rlog(&(srv)->log, prio, __VA_ARGS__)

/* ---- pins to drop later ---- */

static void defer_unref(struct daxpool_remote_server *srv, struct daxpool_pin *pin)
{
	if (!pin)
		return;
	if (srv->n_unref == srv->cap_unref) {
		size_t cap = srv->cap_unref ? 2 * srv->cap_unref : 16;
		struct daxpool_pin **p = realloc(srv->unref, cap * sizeof(*p));

		if (!p) {
			/* No room to defer: drop it here (it persists under our lock, no more). */
			daxpool_pin_unref(pin);
			return;
		}
		srv->unref = p;
		srv->cap_unref = cap;
	}
	srv->unref[srv->n_unref++] = pin;
}

/* Unlock srv->lock and drop the pins that waited for it. */
static void srv_unlock(struct daxpool_remote_server *srv)
{
	struct daxpool_pin *local[16], **pins = local;
	size_t n = srv->n_unref;

	if (n == 0) {
		pthread_mutex_unlock(&srv->lock);
		return;
	}
	if (n > 16)
		pins = malloc(n * sizeof(*pins));
	if (!pins) {
		/* Cannot copy them out: drop them under the lock. */
		for (size_t i = 0; i < n; i++)
			daxpool_pin_unref(srv->unref[i]);
		srv->n_unref = 0;
		pthread_mutex_unlock(&srv->lock);
		return;
	}
	memcpy(pins, srv->unref, n * sizeof(*pins));
	srv->n_unref = 0;
	pthread_mutex_unlock(&srv->lock);
	for (size_t i = 0; i < n; i++)
		daxpool_pin_unref(pins[i]);
	if (pins != local)
		free(pins);
}

/* ---- grants ---- */

static void grant_unlink(struct grant *g)
{
	struct grant **pp;

	for (pp = &g->conn->grants; *pp; pp = &(*pp)->next_in_conn)
		if (*pp == g) {
			*pp = g->next_in_conn;
			break;
		}
	g->conn->n_grants--;
	for (pp = &g->exp->grants; *pp; pp = &(*pp)->next_in_exp)
		if (*pp == g) {
			*pp = g->next_in_exp;
			break;
		}
	g->exp->n_grants--;
}

/*
 * End a grant: the window deallocated (which also unbinds a window that a
 * LOCAL_INV could not reach: the queue pair in the error state), the MR
 * deregistered, the pin dropped after the unlock. With srv->lock held.
 */
static void grant_end(struct daxpool_remote_server *srv, struct grant *g)
{
	int r;

	if (g->mw) {
		r = ibv_dealloc_mw(g->mw);
		if (r)
			srv_log(srv, LOG_ERR, "peer %s, export %s: ibv_dealloc_mw of rkey %#x: %s",
				g->conn->peer, g->exp->name, g->rkey, strerror(r));
	}
	if (g->mr) {
		r = ibv_dereg_mr(g->mr);
		if (r)
			srv_log(srv, LOG_ERR, "peer %s, export %s: ibv_dereg_mr of rkey %#x: %s",
				g->conn->peer, g->exp->name, g->rkey, strerror(r));
	}
	srv_log(srv, LOG_DEBUG, "peer %s, export %s: grant %llu (rkey %#x) ended", g->conn->peer,
		g->exp->name, (unsigned long long)g->id, g->rkey);
	grant_unlink(g);
	defer_unref(srv, g->pin);
	free(g);
	pthread_cond_broadcast(&srv->cond);
}

static struct grant *conn_find_grant(struct conn *c, uint64_t id)
{
	for (struct grant *g = c->grants; g; g = g->next_in_conn)
		if (g->id == id)
			return g;
	return NULL;
}

/* The rkey stopped working and the peer is done with it: the grant can end. */
static void grant_maybe_end(struct daxpool_remote_server *srv, struct grant *g)
{
	if (g->state == G_REVOKING && g->invalidated && g->acked)
		grant_end(srv, g);
}

/*
 * Disconnect a peer: its queue pair goes to the error state, which ends any
 * access through it, so every grant of it ends here. With srv->lock held.
 */
static void conn_kill(struct daxpool_remote_server *srv, struct conn *c, const char *why)
{
	if (!c->dead) {
		c->dead = true;
		srv_log(srv, LOG_NOTICE, "peer %s disconnected: %s", c->peer, why);
		/* Moves the QP to the error state before it returns. */
		if (rdma_disconnect(c->id) && c->id->qp) {
			struct ibv_qp_attr attr = { .qp_state = IBV_QPS_ERR };

			ibv_modify_qp(c->id->qp, &attr, IBV_QP_STATE);
		}
		/*
		 * Its message buffers' MR goes now, not at the DISCONNECTED event
		 * (a peer that does not answer may never send one): daxpoold
		 * counts pinned memory daxpool has no pin for as a possible
		 * holder of the device. The QP is in the error state: nothing
		 * reaches the buffers any more.
		 */
		dp_rchan_destroy(&c->chan);
	}
	while (c->grants)
		grant_end(srv, c->grants);
}

/*
 * Start revoking @g (@tell: the peer has the grant and gets a REVOKE): the rkey first (LOCAL_INV of the window; the grant's MR
 * deregistered), then the REVOKE message behind it on the same send queue
 * (fenced: sent once the invalidation completed), so a peer that is told can
 * no longer reach the memory. With srv->lock held.
 */
static void grant_revoke_start(struct daxpool_remote_server *srv, struct grant *g, bool tell)
{
	struct conn *c = g->conn;
	struct dp_rwire_msg m = { .type = DP_RWIRE_REVOKE, .id = g->id };
	int r = 0;

	if (g->state == G_REVOKING)
		return;
	if (g->state == G_BINDING) {
		/* The bind's completion goes on from here (grant_bound()). */
		g->revoke_pending = true;
		return;
	}
	g->state = G_REVOKING;
	if (!tell)
		g->acked = true; /* never told, or it asked: nothing to acknowledge */
	if (c->dead) {
		grant_end(srv, g);
		return;
	}
	if (g->mw) {
		struct ibv_send_wr wr = { .wr_id = DP_RWR_ID(DP_RWR_INV, g->id),
					  .opcode = IBV_WR_LOCAL_INV,
					  .send_flags = IBV_SEND_SIGNALED,
					  .invalidate_rkey = g->rkey };
		struct ibv_send_wr *bad;

		r = -ibv_post_send(c->id->qp, &wr, &bad);
	} else if (g->mr) {
		r = -ibv_dereg_mr(g->mr);
		if (r == 0) {
			g->mr = NULL;
			g->invalidated = true;
		}
	}
	if (r == 0 && tell)
		r = dp_rchan_send(&c->chan, &m, true);
	if (r < 0) {
		char why[96];

		snprintf(why, sizeof(why), "revoke of grant %llu could not be posted: %s",
			 (unsigned long long)g->id, strerror(-r));
		conn_kill(srv, c, why);
		return;
	}
	grant_maybe_end(srv, g);
}

/*
 * Revoke every grant of @exp and wait until each ended: invalidated and
 * acknowledged, or its peer disconnected at the deadline. With srv->lock
 * held (released while waiting).
 */
static void export_revoke(struct daxpool_remote_server *srv, struct export *exp)
{
	struct timespec deadline = dp_rdeadline(srv->revoke_timeout_ms);
	uint64_t start = dp_rnow_ns();
	bool first = !exp->dead;
	int disconnected = 0;

	exp->dead = true;
	if (first) {
		exp->revoke_start_ns = start;
		exp->revoke_inval_ns = exp->revoke_done_ns = 0;
		exp->revoke_disconnected = 0;
		srv_log(srv, LOG_INFO, "export %s: revoking %u grant(s)", exp->name,
			exp->n_grants);
	}
	for (struct grant *g = exp->grants, *next; g; g = next) {
		next = g->next_in_exp;
		grant_revoke_start(srv, g, true);
	}
	while (exp->n_grants) {
		bool all_invalidated = true;

		for (struct grant *g = exp->grants; g; g = g->next_in_exp)
			all_invalidated &= g->invalidated;
		if (all_invalidated && !exp->revoke_inval_ns)
			exp->revoke_inval_ns = dp_rnow_ns();
		if (pthread_cond_timedwait(&srv->cond, &srv->lock, &deadline) == ETIMEDOUT) {
			while (exp->grants) {
				struct conn *c = exp->grants->conn;
				char why[128];

				snprintf(why, sizeof(why),
					 "no acknowledgement of the revoke of export %s in %d ms",
					 exp->name, srv->revoke_timeout_ms);
				conn_kill(srv, c, why);
				disconnected++;
			}
		}
	}
	if (first) {
		uint64_t now = dp_rnow_ns();

		if (!exp->revoke_inval_ns)
			exp->revoke_inval_ns = now;
		exp->revoke_done_ns = now;
		exp->revoke_disconnected = disconnected;
		srv_log(srv, LOG_INFO,
			"export %s: revoked: rkeys dead after %.3f ms, done after %.3f ms, %d peer(s) "
			"disconnected",
			exp->name, (double)(exp->revoke_inval_ns - start) / 1e6,
			(double)(now - start) / 1e6, disconnected);
	}
}

/*
 * Drop an export's pin: in window mode the MR the windows were bound on (it
 * has none left), in MR mode a pin of its own (each grant has its MR).
 */
static void export_pin_drop(struct daxpool_remote_server *srv, struct daxpool_pin *pin)
{
	if (!pin)
		return;
	if (srv->mode == DAXPOOL_REMOTE_WINDOW)
		daxpool_rdma_dereg_mr(pin);
	else
		daxpool_pin_unref(pin);
}

static struct export *export_of_pin(struct daxpool_remote_server *srv, struct daxpool_pin *pin)
{
	for (struct export *e = srv->exports; e; e = e->next) {
		if (e->mr_pin && e->mr_pin == pin)
			return e;
		for (struct grant *g = e->grants; g; g = g->next_in_exp)
			if (g->pin == pin)
				return e;
	}
	return NULL;
}

/*
 * The revoke function of every pin the server holds (the export's MR, each
 * grant): a zap of any part of an export's range revokes all of its grants.
 * Runs in the zapping thread.
 */
static void pin_revoked(struct daxpool_pin *pin, void *userdata)
{
	struct daxpool_remote_server *srv;
	struct daxpool_pin *mr_pin = NULL;
	struct export *exp;

	pthread_mutex_lock(&g_lock);
	for (srv = g_servers; srv && srv != userdata; srv = srv->next)
		;
	if (srv)
		srv->busy++;
	pthread_mutex_unlock(&g_lock);
	if (!srv)
		return; /* freed: it dropped its pins on the way */
	pthread_mutex_lock(&srv->lock);
	exp = export_of_pin(srv, pin);
	if (exp) {
		export_revoke(srv, exp);
		/* No window is left on the MR: it goes now, and its pin with it. */
		mr_pin = exp->mr_pin;
		exp->mr_pin = NULL;
	}
	srv_unlock(srv);
	export_pin_drop(srv, mr_pin);
	pthread_mutex_lock(&g_lock);
	srv->busy--;
	pthread_cond_broadcast(&g_cond);
	pthread_mutex_unlock(&g_lock);
}

/* ---- grant requests ---- */

static void reply_error(struct daxpool_remote_server *srv, struct conn *c, uint32_t seq,
			int status)
{
	struct dp_rwire_msg m = { .type = DP_RWIRE_GRANT, .seq = seq, .status = status };
	int r = dp_rchan_send(&c->chan, &m, false);

	if (r < 0)
		conn_kill(srv, c, "the answer to a grant request could not be sent");
}

static void grant_send(struct daxpool_remote_server *srv, struct grant *g)
{
	struct dp_rwire_msg m = { .type = DP_RWIRE_GRANT, .seq = g->req_seq, .id = g->id,
				  .addr = (uintptr_t)g->exp->addr, .length = g->exp->length,
				  .rkey = g->rkey, .access = g->access, .mode = (uint32_t)srv->mode };
	int r;

	snprintf(m.name, sizeof(m.name), "%s", g->exp->name);
	g->state = G_LIVE;
	r = dp_rchan_send(&g->conn->chan, &m, false);
	if (r < 0)
		conn_kill(srv, g->conn, "a grant could not be sent");
	else
		srv_log(srv, LOG_INFO, "peer %s: export %s granted, rkey %#x (%s)", g->conn->peer,
			g->exp->name, g->rkey,
			srv->mode == DAXPOOL_REMOTE_WINDOW ? "window" : "MR");
}

static int ibv_access_of(unsigned int access)
{
	return ((access & DAXPOOL_REMOTE_READ) ? IBV_ACCESS_REMOTE_READ : 0) |
	       ((access & DAXPOOL_REMOTE_WRITE) ? IBV_ACCESS_REMOTE_WRITE : 0);
}

static void handle_grant_req(struct daxpool_remote_server *srv, struct conn *c,
			     const struct dp_rwire_msg *m)
{
	struct daxpool_map *map;
	struct export *exp;
	struct grant *g;
	char owner[160];
	int r;

	for (exp = srv->exports; exp && strcmp(exp->name, m->name); exp = exp->next)
		;
	if (!exp) {
		reply_error(srv, c, m->seq, -ENOENT);
		return;
	}
	if (exp->dead) {
		reply_error(srv, c, m->seq, -ENXIO);
		return;
	}
	if (m->access & ~exp->access) {
		reply_error(srv, c, m->seq, -EACCES);
		return;
	}
	if (c->n_grants >= MAX_GRANTS_PER_PEER) {
		reply_error(srv, c, m->seq, -EDQUOT);
		return;
	}
	g = calloc(1, sizeof(*g));
	if (!g) {
		reply_error(srv, c, m->seq, -ENOMEM);
		return;
	}
	g->id = ++srv->next_grant_id;
	g->conn = c;
	g->exp = exp;
	g->access = m->access;
	g->req_seq = m->seq;
	map = daxpool_pin_get_map(exp->mr_pin);
	/* The pin first: a zapped range is refused before the device is told anything. */
	r = daxpool_pin_new(map, exp->addr, exp->length, DAXPOOL_PIN_LONGTERM,
			    DAXPOOL_PIN_DEVICE_READ |
				    ((m->access & DAXPOOL_REMOTE_WRITE) ? DAXPOOL_PIN_DEVICE_WRITE : 0),
			    &g->pin);
	if (r < 0) {
		free(g);
		reply_error(srv, c, m->seq, r);
		return;
	}
	g->next_in_conn = c->grants;
	c->grants = g;
	c->n_grants++;
	g->next_in_exp = exp->grants;
	exp->grants = g;
	exp->n_grants++;
	if (srv->mode == DAXPOOL_REMOTE_WINDOW) {
		struct ibv_send_wr wr = { 0 }, *bad;

		g->mw = ibv_alloc_mw(srv->pd, IBV_MW_TYPE_2);
		if (!g->mw) {
			r = dp_rerrno();
			goto fail;
		}
		/* A fresh window per grant (a rebind on a new QP fails on rxe). */
		g->rkey = ibv_inc_rkey(g->mw->rkey);
		wr.wr_id = DP_RWR_ID(DP_RWR_BIND, g->id);
		wr.opcode = IBV_WR_BIND_MW;
		wr.send_flags = IBV_SEND_SIGNALED;
		wr.bind_mw.mw = g->mw;
		wr.bind_mw.rkey = g->rkey;
		wr.bind_mw.bind_info.mr = daxpool_pin_get_mr(exp->mr_pin);
		wr.bind_mw.bind_info.addr = (uintptr_t)exp->addr;
		wr.bind_mw.bind_info.length = exp->length;
		wr.bind_mw.bind_info.mw_access_flags = (unsigned int)ibv_access_of(m->access);
		if (!wr.bind_mw.bind_info.mr) {
			r = -ENXIO;
			goto fail;
		}
		r = -ibv_post_send(c->id->qp, &wr, &bad);
		if (r < 0)
			goto fail;
		g->state = G_BINDING;
	} else {
		g->mr = ibv_reg_mr(srv->pd, exp->addr, exp->length,
				   IBV_ACCESS_LOCAL_WRITE | ibv_access_of(m->access));
		if (!g->mr) {
			r = dp_rerrno();
			goto fail;
		}
		g->rkey = g->mr->rkey;
		g->state = G_LIVE; /* not sent yet */
	}
	/* daxpool keeps 63 bytes: the peer and the rkey first, the export's name last. */
	snprintf(owner, sizeof(owner), "peer %s rkey %#x %s", c->peer, g->rkey, exp->name);
	daxpool_pin_set_owner(g->pin, owner);
	daxpool_pin_set_revoke_fn(g->pin, pin_revoked, srv);
	/* A zap between the pin and the revoke function found none to call. */
	if (daxpool_pin_is_valid(g->pin) != 1) {
		exp->dead = true;
		if (g->state == G_BINDING) {
			g->revoke_pending = true;
		} else {
			grant_revoke_start(srv, g, false); /* the MR goes, the peer was never told */
			reply_error(srv, c, m->seq, -ENXIO);
		}
		return;
	}
	if (srv->mode == DAXPOOL_REMOTE_MR)
		grant_send(srv, g);
	return;
fail:
	srv_log(srv, LOG_ERR, "peer %s, export %s: %s: %s", c->peer, exp->name,
		srv->mode == DAXPOOL_REMOTE_WINDOW ? "binding a memory window" :
						     "registering the grant's MR",
		strerror(-r));
	grant_end(srv, g); /* nothing was bound: the window is deallocated */
	reply_error(srv, c, m->seq, r);
}

/* The window's bind completed (@ok) or failed. */
static void grant_bound(struct daxpool_remote_server *srv, struct grant *g, bool ok)
{
	uint32_t seq = g->req_seq;
	struct conn *c = g->conn;

	if (!ok) {
		srv_log(srv, LOG_ERR, "peer %s, export %s: the window's bind failed", c->peer,
			g->exp->name);
		grant_end(srv, g);
		reply_error(srv, c, seq, -EIO);
		return;
	}
	if (g->revoke_pending) {
		/* Revoked before the peer had it: invalidated untold; the peer hears no. */
		g->state = G_LIVE;
		grant_revoke_start(srv, g, false);
		if (!c->dead)
			reply_error(srv, c, seq, -ENXIO);
		return;
	}
	grant_send(srv, g);
}

static void handle_message(struct daxpool_remote_server *srv, struct conn *c, const uint8_t *buf,
			   uint32_t len)
{
	struct dp_rwire_msg m;
	struct grant *g;
	char why[128];
	int r = dp_rwire_decode(buf, len, &m);

	if (r < 0) {
		snprintf(why, sizeof(why), "a malformed message (%u bytes): %s", len, strerror(-r));
		conn_kill(srv, c, why);
		return;
	}
	switch (m.type) {
	case DP_RWIRE_GRANT_REQ: handle_grant_req(srv, c, &m); return;
	case DP_RWIRE_REVOKE_ACK:
		/* Only the peer's own grants: another peer's id finds nothing here. */
		g = conn_find_grant(c, m.id);
		if (g && g->state == G_REVOKING) {
			g->acked = true;
			grant_maybe_end(srv, g);
		}
		return;
	case DP_RWIRE_RELEASE:
		/* As a revoke, without the message: the peer asked. */
		g = conn_find_grant(c, m.id);
		if (g && g->state == G_LIVE)
			grant_revoke_start(srv, g, false);
		return;
	default:
		snprintf(why, sizeof(why), "a %s message, which peers do not send",
			 dp_rwire_type_name(m.type));
		conn_kill(srv, c, why);
		return;
	}
}

/* ---- connections ---- */

static void conn_free(struct daxpool_remote_server *srv, struct conn *c)
{
	struct conn **pp;

	conn_kill(srv, c, "gone");
	for (pp = &srv->conns; *pp; pp = &(*pp)->next)
		if (*pp == c) {
			*pp = c->next;
			srv->n_conns--;
			break;
		}
	/* Every window was deallocated (grant_end()): the QP can go without a warning. */
	if (c->id->qp)
		rdma_destroy_qp(c->id);
	dp_rchan_destroy(&c->chan);
	if (c->cq)
		ibv_destroy_cq(c->cq);
	rdma_destroy_id(c->id);
	free(c);
}

static void conn_name(struct rdma_cm_id *id, char *buf, size_t len)
{
	struct sockaddr *sa = rdma_get_peer_addr(id);
	char host[INET6_ADDRSTRLEN] = "?";
	int port = 0;

	if (sa && sa->sa_family == AF_INET) {
		struct sockaddr_in *in = (struct sockaddr_in *)sa;

		inet_ntop(AF_INET, &in->sin_addr, host, sizeof(host));
		port = ntohs(in->sin_port);
	} else if (sa && sa->sa_family == AF_INET6) {
		struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)sa;

		inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof(host));
		port = ntohs(in6->sin6_port);
	}
	snprintf(buf, len, "%s:%d", host, port);
}

/* A connection request: take it (a QP, receives posted, accept) or reject it. */
static void conn_request(struct daxpool_remote_server *srv, struct rdma_cm_id *id)
{
	struct ibv_qp_init_attr qpa = { 0 };
	struct rdma_conn_param param = { 0 };
	struct conn *c;
	int r;

	if (srv->stopping || srv->n_conns >= MAX_PEERS || id->verbs != srv->pd->context) {
		srv_log(srv, LOG_NOTICE, "a connection request refused: %s",
			srv->stopping ? "stopping" :
			srv->n_conns >= MAX_PEERS ? "as many peers as the server takes" :
						     "on another RDMA device");
		rdma_reject(id, NULL, 0);
		rdma_destroy_id(id);
		return;
	}
	c = calloc(1, sizeof(*c));
	if (!c) {
		rdma_reject(id, NULL, 0);
		rdma_destroy_id(id);
		return;
	}
	c->srv = srv;
	c->id = id;
	id->context = c;
	conn_name(id, c->peer, sizeof(c->peer));
	c->cq = ibv_create_cq(id->verbs, DP_RCQ_SIZE, c, srv->cc, 0);
	if (!c->cq) {
		r = dp_rerrno();
		goto fail;
	}
	qpa.send_cq = c->cq;
	qpa.recv_cq = c->cq;
	qpa.qp_type = IBV_QPT_RC;
	qpa.cap.max_send_wr = DP_RQP_SEND_WR;
	qpa.cap.max_recv_wr = DP_RQP_RECV_WR;
	qpa.cap.max_send_sge = 1;
	qpa.cap.max_recv_sge = 1;
	qpa.sq_sig_all = 0;
	if (rdma_create_qp(id, srv->pd, &qpa)) {
		r = dp_rerrno();
		goto fail;
	}
	r = dp_rchan_init(&c->chan, srv->pd, id->qp);
	if (r < 0)
		goto fail;
	if (ibv_req_notify_cq(c->cq, 0)) {
		r = dp_rerrno();
		goto fail;
	}
	param.responder_resources = 1;
	param.initiator_depth = 1;
	param.rnr_retry_count = 7;
	param.retry_count = 7;
	if (rdma_accept(id, &param)) {
		r = dp_rerrno();
		goto fail;
	}
	c->next = srv->conns;
	srv->conns = c;
	srv->n_conns++;
	srv_log(srv, LOG_INFO, "peer %s: connection accepted", c->peer);
	return;
fail:
	srv_log(srv, LOG_ERR, "peer %s: connection refused: %s", c->peer, strerror(-r));
	rdma_reject(id, NULL, 0);
	if (id->qp)
		rdma_destroy_qp(id);
	dp_rchan_destroy(&c->chan);
	if (c->cq)
		ibv_destroy_cq(c->cq);
	rdma_destroy_id(id);
	free(c);
}

/* One rdma_cm event. With srv->lock held. Acks the event. */
static void cm_event(struct daxpool_remote_server *srv, struct rdma_cm_event *ev)
{
	struct rdma_cm_id *id = ev->id;
	enum rdma_cm_event_type type = ev->event;
	struct conn *c = id == srv->listen ? NULL : id->context;

	switch (type) {
	case RDMA_CM_EVENT_CONNECT_REQUEST:
		rdma_ack_cm_event(ev);
		conn_request(srv, id);
		return;
	case RDMA_CM_EVENT_ESTABLISHED:
		if (c)
			c->established = true;
		rdma_ack_cm_event(ev);
		return;
	case RDMA_CM_EVENT_DISCONNECTED:
	case RDMA_CM_EVENT_CONNECT_ERROR:
	case RDMA_CM_EVENT_UNREACHABLE:
	case RDMA_CM_EVENT_REJECTED:
	case RDMA_CM_EVENT_DEVICE_REMOVAL:
	case RDMA_CM_EVENT_TIMEWAIT_EXIT:
		rdma_ack_cm_event(ev);
		if (c) {
			/* Its ack first: rdma_destroy_id() waits for the id's events. */
			conn_free(srv, c);
		} else if (type == RDMA_CM_EVENT_DEVICE_REMOVAL) {
			srv_log(srv, LOG_ERR, "the RDMA device went away");
		}
		return;
	default:
		srv_log(srv, LOG_DEBUG, "rdma_cm event %s", rdma_event_str(type));
		rdma_ack_cm_event(ev);
		return;
	}
}

/* The completions of one connection's CQ. With srv->lock held. */
static void cq_drain(struct daxpool_remote_server *srv, struct conn *c)
{
	struct ibv_wc wc[16];
	int n;

	while ((n = ibv_poll_cq(c->cq, 16, wc)) > 0) {
		for (int i = 0; i < n; i++) {
			unsigned int kind = DP_RWR_KIND(wc[i].wr_id);
			uint64_t num = DP_RWR_N(wc[i].wr_id);
			bool ok = wc[i].status == IBV_WC_SUCCESS;
			struct grant *g;

			switch (kind) {
			case DP_RWR_RECV:
				if (!ok || c->dead)
					break;
				handle_message(srv, c, dp_rchan_slot(&c->chan, (unsigned int)num),
					       wc[i].byte_len);
				if (!c->dead && dp_rchan_repost(&c->chan, (unsigned int)num) < 0)
					conn_kill(srv, c, "a receive could not be posted");
				break;
			case DP_RWR_SEND:
				dp_rchan_sent(&c->chan);
				if (!ok && !c->dead)
					conn_kill(srv, c, ibv_wc_status_str(wc[i].status));
				break;
			case DP_RWR_BIND:
				g = conn_find_grant(c, num);
				if (g)
					grant_bound(srv, g, ok);
				break;
			case DP_RWR_INV:
				/* Failed (flushed): the QP is in error; the dealloc unbinds it. */
				g = conn_find_grant(c, num);
				if (g) {
					if (!ok)
						srv_log(srv, LOG_NOTICE,
							"peer %s: LOCAL_INV of rkey %#x: %s", c->peer,
							g->rkey, ibv_wc_status_str(wc[i].status));
					g->invalidated = true;
					grant_maybe_end(srv, g);
				}
				break;
			default: break;
			}
			pthread_cond_broadcast(&srv->cond);
		}
	}
}

static void comp_event(struct daxpool_remote_server *srv)
{
	struct ibv_cq *cq;
	void *cq_ctx;

	while (ibv_get_cq_event(srv->cc, &cq, &cq_ctx) == 0) {
		struct conn *c = cq_ctx;

		ibv_ack_cq_events(cq, 1);
		ibv_req_notify_cq(cq, 0);
		for (struct conn *k = srv->conns; k; k = k->next)
			if (k == c) {
				cq_drain(srv, c);
				break;
			}
	}
}

static void *server_thread(void *arg)
{
	struct daxpool_remote_server *srv = arg;
	struct pollfd fds[3] = {
		{ .fd = srv->ec->fd, .events = POLLIN },
		{ .fd = srv->cc->fd, .events = POLLIN },
		{ .fd = srv->wake[0], .events = POLLIN },
	};

	for (;;) {
		struct rdma_cm_event *ev;

		if (poll(fds, 3, -1) < 0 && errno != EINTR)
			break;
		pthread_mutex_lock(&srv->lock);
		if (srv->stopping) {
			srv_unlock(srv);
			break;
		}
		while (rdma_get_cm_event(srv->ec, &ev) == 0)
			cm_event(srv, ev);
		comp_event(srv);
		/* The completions of every connection, also one whose event was missed. */
		for (struct conn *c = srv->conns; c; c = c->next)
			cq_drain(srv, c);
		srv_unlock(srv);
	}
	return NULL;
}

/* ---- public ---- */

static int set_nonblock(int fd)
{
	int fl = fcntl(fd, F_GETFL);

	return fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0 ? -errno : 0;
}

static int probe_mode(struct daxpool_remote_server *srv, unsigned int flags)
{
	struct ibv_device_attr attr;
	int r = ibv_query_device(srv->pd->context, &attr);

	if (r)
		return -r;
	srv->mode = dp_remote_grant_mode_of(&attr, srv->mode_reason, sizeof(srv->mode_reason));
	if (flags & DAXPOOL_REMOTE_SERVER_NO_WINDOWS && srv->mode == DAXPOOL_REMOTE_WINDOW) {
		srv->mode = DAXPOOL_REMOTE_MR;
		snprintf(srv->mode_reason, sizeof(srv->mode_reason),
			 "one MR per grant, deregistered on revoke: asked for "
			 "(DAXPOOL_REMOTE_SERVER_NO_WINDOWS), though the device has type-2 windows");
	}
	return 0;
}

_public_ int daxpool_remote_server_new(const char *addr, const char *service, unsigned int flags,
				       struct daxpool_remote_server **ret)
{
	struct rdma_addrinfo hints = { 0 }, *ai = NULL;
	struct daxpool_remote_server *srv;
	int r;

	if (!addr || !service || !ret || (flags & ~DAXPOOL_REMOTE_SERVER_NO_WINDOWS))
		return -EINVAL;
	srv = calloc(1, sizeof(*srv));
	if (!srv)
		return -ENOMEM;
	pthread_mutex_init(&srv->lock, NULL);
	dp_rcond_init(&srv->cond);
	dp_rlog_init(&srv->log, "daxpool-remote server");
	srv->wake[0] = srv->wake[1] = -1;
	srv->revoke_timeout_ms = REVOKE_TIMEOUT_MS_DEFAULT;
	srv->ec = rdma_create_event_channel();
	if (!srv->ec) {
		r = errno == ENOENT ? -ENODEV : dp_rerrno();
		goto fail;
	}
	if (rdma_create_id(srv->ec, &srv->listen, srv, RDMA_PS_TCP)) {
		r = dp_rerrno();
		goto fail;
	}
	hints.ai_flags = RAI_PASSIVE | RAI_NUMERICHOST;
	hints.ai_port_space = RDMA_PS_TCP;
	if (rdma_getaddrinfo(addr, service, &hints, &ai)) {
		r = errno ? -errno : -EINVAL;
		goto fail;
	}
	if (rdma_bind_addr(srv->listen, ai->ai_src_addr)) {
		r = errno == EADDRNOTAVAIL || errno == ENODEV ? -ENODEV : dp_rerrno();
		goto fail;
	}
	if (!srv->listen->verbs) {
		/* A wildcard address names no device: the exports need one. */
		r = -ENODEV;
		goto fail;
	}
	srv->pd = ibv_alloc_pd(srv->listen->verbs);
	if (!srv->pd) {
		r = dp_rerrno();
		goto fail;
	}
	r = probe_mode(srv, flags);
	if (r < 0)
		goto fail;
	srv->cc = ibv_create_comp_channel(srv->listen->verbs);
	if (!srv->cc) {
		r = dp_rerrno();
		goto fail;
	}
	if (rdma_listen(srv->listen, MAX_PEERS)) {
		r = dp_rerrno();
		goto fail;
	}
	srv->port = ntohs(rdma_get_src_port(srv->listen));
	if (pipe2(srv->wake, O_CLOEXEC | O_NONBLOCK) < 0 || (r = set_nonblock(srv->ec->fd)) < 0 ||
	    (r = set_nonblock(srv->cc->fd)) < 0) {
		r = r < 0 ? r : -errno;
		goto fail;
	}
	rdma_freeaddrinfo(ai);
	ai = NULL;
	srv_log(srv, LOG_INFO, "listening on %s port %d, device %s: %s", addr, srv->port,
		ibv_get_device_name(srv->listen->verbs->device), srv->mode_reason);
	pthread_mutex_lock(&g_lock);
	srv->next = g_servers;
	g_servers = srv;
	pthread_mutex_unlock(&g_lock);
	r = -pthread_create(&srv->thread, NULL, server_thread, srv);
	if (r < 0) {
		daxpool_remote_server_free(srv);
		return r;
	}
	srv->thread_started = true;
	*ret = srv;
	return 0;
fail:
	if (ai)
		rdma_freeaddrinfo(ai);
	daxpool_remote_server_free(srv);
	return r;
}

_public_ struct daxpool_remote_server *daxpool_remote_server_free(struct daxpool_remote_server *srv)
{
	struct daxpool_remote_server **pp;

	if (!srv)
		return NULL;
	/* Every grant first, as a zap would: the peers are told, then disconnected. */
	pthread_mutex_lock(&srv->lock);
	for (struct export *e = srv->exports; e; e = e->next)
		export_revoke(srv, e);
	srv->stopping = true;
	srv_unlock(srv);
	if (srv->thread_started) {
		(void)!write(srv->wake[1], "x", 1);
		pthread_join(srv->thread, NULL);
	}
	pthread_mutex_lock(&g_lock);
	for (pp = &g_servers; *pp; pp = &(*pp)->next)
		if (*pp == srv) {
			*pp = srv->next;
			break;
		}
	while (srv->busy)
		pthread_cond_wait(&g_cond, &g_lock);
	pthread_mutex_unlock(&g_lock);
	pthread_mutex_lock(&srv->lock);
	while (srv->conns)
		conn_free(srv, srv->conns);
	srv_unlock(srv);
	while (srv->exports) {
		struct export *e = srv->exports;

		srv->exports = e->next;
		/* No window is left on it: the MR deregisters, the pin goes. */
		export_pin_drop(srv, e->mr_pin);
		free(e);
	}
	if (srv->listen)
		rdma_destroy_id(srv->listen);
	if (srv->cc)
		ibv_destroy_comp_channel(srv->cc);
	if (srv->pd)
		ibv_dealloc_pd(srv->pd);
	if (srv->ec)
		rdma_destroy_event_channel(srv->ec);
	if (srv->wake[0] >= 0)
		close(srv->wake[0]);
	if (srv->wake[1] >= 0)
		close(srv->wake[1]);
	free(srv->unref);
	pthread_cond_destroy(&srv->cond);
	pthread_mutex_destroy(&srv->lock);
	free(srv);
	return NULL;
}

_public_ int daxpool_remote_server_set_log_fn(struct daxpool_remote_server *srv,
					      daxpool_remote_log_fn log_fn, void *userdata)
{
	if (!srv)
		return -EINVAL;
	dp_rlog_set(&srv->log, &srv->lock, log_fn, userdata);
	return 0;
}

_public_ int daxpool_remote_server_get_port(struct daxpool_remote_server *srv)
{
	return srv ? srv->port : -EINVAL;
}

_public_ int daxpool_remote_server_get_grant_mode(struct daxpool_remote_server *srv,
						  const char **ret_reason)
{
	if (!srv)
		return -EINVAL;
	if (ret_reason)
		*ret_reason = srv->mode_reason;
	return srv->mode;
}

_public_ int daxpool_remote_server_set_revoke_timeout(struct daxpool_remote_server *srv,
						      int timeout_ms)
{
	if (!srv || timeout_ms <= 0)
		return -EINVAL;
	pthread_mutex_lock(&srv->lock);
	srv->revoke_timeout_ms = timeout_ms;
	pthread_mutex_unlock(&srv->lock);
	return 0;
}

_public_ int daxpool_remote_server_export(struct daxpool_remote_server *srv, const char *name,
					  struct daxpool_map *map, void *addr, size_t length,
					  unsigned int access)
{
	struct export *exp;
	size_t n;
	int r;

	if (!srv || !name || !map || !addr || !length || !access ||
	    (access & ~(DAXPOOL_REMOTE_READ | DAXPOOL_REMOTE_WRITE)))
		return -EINVAL;
	n = strlen(name);
	if (n == 0 || n > DP_RWIRE_NAME_MAX)
		return -EINVAL;
	exp = calloc(1, sizeof(*exp));
	if (!exp)
		return -ENOMEM;
	memcpy(exp->name, name, n);
	exp->addr = addr;
	exp->length = length;
	exp->access = access;
	pthread_mutex_lock(&srv->lock);
	for (struct export *e = srv->exports; e; e = e->next)
		if (!strcmp(e->name, name)) {
			pthread_mutex_unlock(&srv->lock);
			free(exp);
			return -EEXIST;
		}
	/*
	 * Under the lock: a name is taken once. The registration may take a
	 * while. With windows, the export's MR is what they are bound on; with
	 * one MR per grant, the export holds a pin of its own (a second MR of
	 * the range would pin its pages once more for nothing).
	 */
	if (srv->mode == DAXPOOL_REMOTE_WINDOW)
		r = daxpool_rdma_reg_mr(map, srv->pd, addr, length,
					IBV_ACCESS_LOCAL_WRITE | ibv_access_of(access) |
						IBV_ACCESS_MW_BIND,
					&exp->mr_pin);
	else
		r = daxpool_pin_new(map, addr, length, DAXPOOL_PIN_LONGTERM,
				    DAXPOOL_PIN_DEVICE_READ |
					    ((access & DAXPOOL_REMOTE_WRITE) ? DAXPOOL_PIN_DEVICE_WRITE : 0),
				    &exp->mr_pin);
	if (r < 0) {
		pthread_mutex_unlock(&srv->lock);
		free(exp);
		return r;
	}
	{
		char owner[64];

		snprintf(owner, sizeof(owner), "remote export %s", name);
		daxpool_pin_set_owner(exp->mr_pin, owner);
	}
	daxpool_pin_set_revoke_fn(exp->mr_pin, pin_revoked, srv);
	exp->next = srv->exports;
	srv->exports = exp;
	/* A zap between the registration and the revoke function: dead from the start. */
	if (daxpool_pin_is_valid(exp->mr_pin) != 1)
		exp->dead = true;
	srv_log(srv, LOG_INFO, "export %s: %zu bytes at %p, %s%s", name, length, addr,
		(access & DAXPOOL_REMOTE_READ) ? "read" : "",
		(access & DAXPOOL_REMOTE_WRITE) ? ((access & DAXPOOL_REMOTE_READ) ? " write" : "write") :
						   "");
	pthread_mutex_unlock(&srv->lock);
	return exp->dead ? -ENXIO : 0;
}

_public_ int daxpool_remote_server_get_peer_count(struct daxpool_remote_server *srv)
{
	int n = 0;

	if (!srv)
		return -EINVAL;
	pthread_mutex_lock(&srv->lock);
	for (struct conn *c = srv->conns; c; c = c->next)
		n += c->established && !c->dead;
	pthread_mutex_unlock(&srv->lock);
	return n;
}

_public_ int daxpool_remote_server_get_grant_count(struct daxpool_remote_server *srv,
						   const char *name)
{
	int n = 0;
	bool found = !name;

	if (!srv)
		return -EINVAL;
	pthread_mutex_lock(&srv->lock);
	for (struct export *e = srv->exports; e; e = e->next)
		if (!name || !strcmp(e->name, name)) {
			n += (int)e->n_grants;
			found = true;
		}
	pthread_mutex_unlock(&srv->lock);
	return found ? n : -ENOENT;
}

_public_ int daxpool_remote_server_get_last_revoke(struct daxpool_remote_server *srv,
						   const char *name, uint64_t *ret_invalidated_ns,
						   uint64_t *ret_done_ns)
{
	int r = -ENOENT;

	if (!srv || !name)
		return -EINVAL;
	pthread_mutex_lock(&srv->lock);
	for (struct export *e = srv->exports; e; e = e->next) {
		if (strcmp(e->name, name))
			continue;
		if (!e->revoke_done_ns) {
			r = -EAGAIN;
			break;
		}
		if (ret_invalidated_ns)
			*ret_invalidated_ns = e->revoke_inval_ns - e->revoke_start_ns;
		if (ret_done_ns)
			*ret_done_ns = e->revoke_done_ns - e->revoke_start_ns;
		r = e->revoke_disconnected;
		break;
	}
	pthread_mutex_unlock(&srv->lock);
	return r;
}
