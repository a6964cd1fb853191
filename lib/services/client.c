/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The daxpoold client: tells the daemon which regions, maps and pins this
 * process holds, and carries out the daemon's revoke requests.
 *
 * Hot path: a map or pin event (called with the region's lock held) encodes
 * one small message into the client's queue under the queue mutex and, only
 * when the queue was empty, wakes the client thread through an eventfd. No
 * socket I/O, no sleeping. The client thread sends the queue in batches (many
 * messages per datagram).
 *
 * Consistency across reconnects: events are queued only while connected. On
 * (re)connect the thread marks itself connected, clears the queue, then takes
 * a snapshot of every region, map and pin (under ctx->regions_lock and each
 * region's lock) and sends it before the queue. An object published or
 * unlinked concurrently is either in the snapshot or has its event queued
 * after it, or both: the daemon treats a second ADD of an id as a replace and
 * a DEL of an unknown id as nothing. Ids are never reused.
 *
 * Proof of access: a REGION_ADD goes with a duplicate of the region's own
 * descriptor (SCM_RIGHTS, protocol.h); the daemon takes the identity from
 * the kernel through it. The queue keeps those descriptors beside the bytes,
 * in the order of the REGION_ADDs, and the sender cuts datagrams so that each
 * carries the descriptors of its REGION_ADDs. A registration the daemon does
 * not record (REFUSED: a per-client limit) is logged, once per kind and
 * connection.
 *
 * Revoke: the daemon sends REVOKE(req, region, range). The thread takes a
 * drain of the range (drain.c: a zap of the request's own; revoke functions
 * run in the client thread) and, once that range is idle, answers
 * REVOKE_DONE. UNZAP ends a request that did not release: its zap goes as
 * soon as the range is idle (at once if it already is), and only its own: a
 * range the application zapped stays zapped. RELEASED ends a request that
 * did: the range stays zapped, as the application's. If the connection
 * drops, every open request is treated as UNZAP: a release that never
 * completed must not leave the region unusable.
 *
 * REGION_GONE: the device under a region went away without a release (the
 * daemon follows udev): the region is marked dead as a SIGBUS in a guarded
 * access would (sigbus.c) and zapped as a whole, so the revoke functions run
 * and new maps and pins fail with -ENXIO.
 *
 * Lifetime: the client thread is a service thread (service_thread.h): each
 * of its passes holds a context reference, so no region unref of the thread
 * frees the context under it; when the context ends on the thread, the
 * helper frees the client at the end of the loop. Once published in
 * ctx->client, the client is freed only by dp_service_thread_stop(), from
 * client_ctx_fini(), whether its thread started or not.
 */
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "services.h"
#include "util/protocol.h"

#define CLIENT_QUEUE_MAX (64u << 20) /* beyond this the queue is dropped and a resync forced */
#define CLIENT_RECONNECT_MS 100
#define CLIENT_HELLO_TIMEOUT_MS 2000

struct dp_request {
	uint64_t req, region_id, offset, end;
	struct dp_drain drain; /* the request's own zap; not taken if the zap failed */
	bool cancelled; /* reopen when idle, report nothing */
	bool reported;	/* REVOKE_DONE sent; waiting for UNZAP or RELEASED */
	bool yielded;	/* the region's file lease was yielded for it (lease.c) */
	struct dp_request *next;
};

struct dp_client {
	struct dp_service_thread t; /* the client thread; t.fork_gen: the process that connected */
	struct daxpool_ctx *ctx;
	char *path;
	int sock; /* client thread only (and the connect call before the thread starts) */
	int sock_index; /* the socket's in the thread's wait set, or -1 */
	uint8_t *buf;	/* a datagram: the thread's */
	uint32_t seq;
	atomic_bool connected;
	_Atomic uint64_t next_id;

	pthread_mutex_t qlock;
	uint8_t *q;
	size_t qlen, qcap;
	int *qfds; /* a descriptor per REGION_ADD in q, in order */
	size_t n_qfds, qfds_cap;
	bool overflow;
	uint32_t refused_logged; /* message types whose REFUSED was logged (bit per type) */

	struct dp_request *requests; /* client thread only */
	uint64_t reconnect_at;
};

static void close_fds(int *fds, size_t n)
{
	for (size_t i = 0; i < n; i++)
		close(fds[i]);
}

/* Drop what is queued, with its descriptors. qlock held. */
static void queue_clear_locked(struct dp_client *c)
{
	close_fds(c->qfds, c->n_qfds);
	c->n_qfds = 0;
	c->qlen = 0;
}

static void client_wake(struct dp_client *c)
{
	dp_service_thread_kick(&c->t);
}

/*
 * Append an encoded message to the queue, with @fd (a REGION_ADD's
 * descriptor, taken; -1: none). With or without a region lock held.
 */
static void client_queue_fd(struct dp_client *c, const struct dp_msg *m, int fd)
{
	uint8_t buf[128];
	bool was_empty;
	int n;

	n = dp_proto_encode(m, 0, buf, sizeof(buf));
	if (n < 0) {
		if (fd >= 0)
			close(fd);
		return;
	}
	pthread_mutex_lock(&c->qlock);
	if (fd >= 0 && c->n_qfds == c->qfds_cap) {
		size_t cap = c->qfds_cap ? c->qfds_cap * 2 : 16;
		int *fds = realloc(c->qfds, cap * sizeof(*fds));

		if (!fds)
			goto overflow;
		c->qfds = fds;
		c->qfds_cap = cap;
	}
	if (c->qlen + (size_t)n > c->qcap) {
		size_t cap = c->qcap ? c->qcap * 2 : 4096;
		uint8_t *q = cap <= CLIENT_QUEUE_MAX ? realloc(c->q, cap) : NULL;

		if (!q)
			goto overflow;
		c->q = q;
		c->qcap = cap;
	}
	was_empty = c->qlen == 0;
	memcpy(c->q + c->qlen, buf, (size_t)n);
	c->qlen += (size_t)n;
	if (fd >= 0)
		c->qfds[c->n_qfds++] = fd;
	pthread_mutex_unlock(&c->qlock);
	if (was_empty)
		client_wake(c);
	return;

overflow:
	/* Drop everything: the thread reconnects and sends a snapshot. */
	c->overflow = true;
	queue_clear_locked(c);
	pthread_mutex_unlock(&c->qlock);
	if (fd >= 0)
		close(fd);
	client_wake(c);
}

static void client_queue(struct dp_client *c, const struct dp_msg *m)
{
	client_queue_fd(c, m, -1);
}

static struct dp_client *client_of(struct daxpool_ctx *ctx)
{
	struct dp_client *c = atomic_load_explicit(&ctx->client, memory_order_acquire);

	if (!c || !atomic_load_explicit(&c->connected, memory_order_acquire))
		return NULL;
	/*
	 * A child of fork() inherits the ctx but not the client thread: it
	 * queues nothing (the daemon knows the parent, and the child's pins are
	 * not registered). One relaxed load (fork.c's generation).
	 */
	if (c->t.fork_gen != atomic_load_explicit(&dp_fork_generation, memory_order_relaxed))
		return NULL;
	return c;
}

/*
 * Fill a REGION_ADD and return a duplicate of the region's descriptor to go
 * with it (the daemon's proof of access), or -1 when there is nothing to
 * register (m->region_add.id 0) or no descriptor to be had.
 */
static int fill_region_add(struct daxpool_region *region, struct dp_msg *m)
{
	memset(m, 0, offsetof(struct dp_msg, region_add) + sizeof(m->region_add));
	m->type = DP_MSG_REGION_ADD;
	/* Closed (released, or a dead device's): it holds no file, so nothing to register. */
	if (region->fd < 0)
		return -1;
	m->region_add.id = region->client_id;
	return fcntl(region->fd, F_DUPFD_CLOEXEC, 3);
}

/* Fill a REGION_STATE; false when there is nothing to say (no lease to speak of). */
static bool fill_region_state(struct daxpool_region *region, struct dp_msg *m)
{
	int state = atomic_load_explicit(&region->lease_state, memory_order_acquire);

	memset(m, 0, offsetof(struct dp_msg, region_state) + sizeof(m->region_state));
	m->type = DP_MSG_REGION_STATE;
	m->region_state.region_id = region->client_id;
	m->region_state.lease = (uint32_t)state;
	m->region_state.lease_error =
		state == DAXPOOL_LEASE_REFUSED
			? atomic_load_explicit(&region->lease_error, memory_order_relaxed)
			: 0;
	m->region_state.lease_breaks =
		atomic_load_explicit(&region->lease_breaks, memory_order_relaxed);
	return region->client_id && state != DAXPOOL_LEASE_NONE;
}

/* With ctx->regions_lock held, as the region goes on the list: a connect's snapshot sees both. */
static void client_region_listed(struct daxpool_region *region)
{
	struct dp_client *c = atomic_load_explicit(&region->ctx->client, memory_order_acquire);

	/* No map exists yet: nobody else reads client_id, region->lock not needed. */
	if (c)
		region->client_id = atomic_fetch_add(&c->next_id, 1);
}

static void client_region_added(struct daxpool_region *region)
{
	struct daxpool_ctx *ctx = region->ctx;
	struct dp_client *c;
	struct dp_msg m;
	int fd;

	c = client_of(ctx);
	if (!c)
		return;
	fd = fill_region_add(region, &m);
	if (m.region_add.id && fd >= 0)
		client_queue_fd(c, &m, fd);
	else if (fd >= 0)
		close(fd);
	else if (m.region_add.id)
		log_err(ctx, "%s: cannot pass its descriptor to daxpoold: %s", region->path,
			strerror(errno));
}

static void client_region_state(struct daxpool_region *region)
{
	struct dp_client *c = client_of(region->ctx);
	struct dp_msg m;

	if (c && fill_region_state(region, &m))
		client_queue(c, &m);
}

static void client_region_removed(struct daxpool_region *region)
{
	struct dp_client *c = client_of(region->ctx);

	if (c && region->client_id)
		client_queue(c, &(struct dp_msg){ .type = DP_MSG_REGION_DEL,
						  .del.id = region->client_id });
}

static void client_map_event(struct daxpool_map *map, bool add)
{
	struct dp_client *c = client_of(map->region->ctx);
	struct dp_msg m;

	if (!c || !map->region->client_id)
		return;
	if (!add) {
		if (map->client_id)
			client_queue(c, &(struct dp_msg){ .type = DP_MSG_MAP_DEL,
							  .del.id = map->client_id });
		return;
	}
	if (!map->client_id)
		map->client_id = atomic_fetch_add_explicit(&c->next_id, 1, memory_order_relaxed);
	m.type = DP_MSG_MAP_ADD;
	m.map_add.id = map->client_id;
	m.map_add.region_id = map->region->client_id;
	m.map_add.offset = map->offset;
	m.map_add.length = map->length;
	m.map_add.created_ns =
		(uint64_t)map->created.tv_sec * 1000000000u + (uint64_t)map->created.tv_nsec;
	m.map_add.tid = (uint32_t)map->owner_tid;
	client_queue(c, &m);
}

static void fill_pin_add(struct daxpool_pin *pin, struct dp_msg *m)
{
	m->type = DP_MSG_PIN_ADD;
	m->pin_add.id = pin->client_id;
	m->pin_add.region_id = pin->map->region->client_id;
	m->pin_add.offset = pin->offset;
	m->pin_add.length = pin->end - pin->start;
	m->pin_add.created_ns = pin->created_ns;
	m->pin_add.kind = (uint32_t)pin->kind;
	m->pin_add.access = pin->access;
	m->pin_add.tid = (uint32_t)pin->owner_tid;
}

static void client_pin_event(struct daxpool_pin *pin, bool add)
{
	struct dp_client *c = client_of(pin->ctx);
	struct dp_msg m;

	if (!c || !pin->map->region->client_id)
		return;
	if (!add) {
		if (pin->client_id)
			client_queue(c, &(struct dp_msg){ .type = DP_MSG_PIN_DEL,
							  .del.id = pin->client_id });
		return;
	}
	if (!pin->client_id)
		pin->client_id = atomic_fetch_add_explicit(&c->next_id, 1, memory_order_relaxed);
	fill_pin_add(pin, &m);
	client_queue(c, &m);
}

/* PIN_OWNER of @pin into @m; false when it has no description. With region->lock held. */
static bool fill_pin_owner(struct daxpool_pin *pin, struct dp_msg *m)
{
	struct dp_pin_ext *ext = dp_pin_ext_get(pin);

	m->type = DP_MSG_PIN_OWNER;
	m->pin_owner.id = pin->client_id;
	snprintf(m->pin_owner.text, sizeof(m->pin_owner.text), "%s", ext ? ext->owner : "");
	return m->pin_owner.text[0] != '\0';
}

static void client_pin_owner(struct daxpool_pin *pin)
{
	struct dp_client *c = client_of(pin->ctx);
	struct dp_msg m;

	/* Not announced yet: the PIN_ADD of the next snapshot brings it. */
	if (!c || !pin->client_id || !pin->map->region->client_id)
		return;
	fill_pin_owner(pin, &m);
	client_queue(c, &m);
}

/* ---- sending ---- */

/*
 * Send @len bytes of whole messages in datagrams of at most DP_PROTO_MAX_DGRAM,
 * each with the descriptors of its REGION_ADDs (@fds, in order, n_fds of them;
 * at most DP_PROTO_MAX_FDS a datagram).
 */
static int client_send_batch(struct dp_client *c, const uint8_t *buf, size_t len, const int *fds,
			     size_t n_fds)
{
	size_t off = 0, fd_off = 0;

	while (off < len) {
		size_t n = 0, k = 0;
		int r;

		/* Whole messages only: each header says its payload length. */
		while (off + n < len) {
			const uint8_t *h = buf + off + n;
			size_t mlen = DP_PROTO_HDR_SIZE + ((size_t)h[8] | (size_t)h[9] << 8 |
							   (size_t)h[10] << 16 | (size_t)h[11] << 24);
			bool region_add = (h[6] | h[7] << 8) == DP_MSG_REGION_ADD;

			if (n + mlen > DP_PROTO_MAX_DGRAM ||
			    (region_add && k == DP_PROTO_MAX_FDS))
				break;
			n += mlen;
			k += region_add;
		}
		if (fd_off + k > n_fds)
			return -EINVAL; /* a REGION_ADD without its descriptor: never queued */
		r = dp_proto_send_fds(c->sock, buf + off, n, k ? fds + fd_off : NULL, k, 0);
		if (r < 0)
			return r;
		off += n;
		fd_off += k;
	}
	return 0;
}

static int client_flush(struct dp_client *c)
{
	uint8_t *q;
	int *fds;
	size_t len, n_fds;
	bool overflow;
	int r;

	pthread_mutex_lock(&c->qlock);
	q = c->q;
	len = c->qlen;
	fds = c->qfds;
	n_fds = c->n_qfds;
	overflow = c->overflow;
	c->q = NULL;
	c->qlen = c->qcap = 0;
	c->qfds = NULL;
	c->n_qfds = c->qfds_cap = 0;
	c->overflow = false;
	pthread_mutex_unlock(&c->qlock);
	r = overflow ? -ENOBUFS
		     : c->sock >= 0 && len ? client_send_batch(c, q, len, fds, n_fds) : 0;
	close_fds(fds, n_fds);
	free(fds);
	free(q);
	return r;
}

/* A growable buffer of encoded messages, for the snapshot. */
struct obuf {
	uint8_t *p;
	size_t len, cap;
	int *fds; /* a descriptor per REGION_ADD */
	size_t n_fds, fds_cap;
	int err;
};

/* Add a REGION_ADD's descriptor (taken). */
static void obuf_add_fd(struct obuf *o, int fd)
{
	if (!o->err && o->n_fds == o->fds_cap) {
		size_t cap = o->fds_cap ? o->fds_cap * 2 : 16;
		int *fds = realloc(o->fds, cap * sizeof(*fds));

		if (fds) {
			o->fds = fds;
			o->fds_cap = cap;
		} else {
			o->err = -ENOMEM;
		}
	}
	if (o->err) {
		close(fd);
		return;
	}
	o->fds[o->n_fds++] = fd;
}

static void obuf_add(struct obuf *o, const struct dp_msg *m)
{
	if (o->err)
		return;
	if (o->cap - o->len < DP_PROTO_HDR_SIZE + DP_PROTO_MAX_PATH) {
		size_t cap = o->cap ? o->cap * 2 : 65536;
		uint8_t *p = realloc(o->p, cap);

		if (!p) {
			o->err = -ENOMEM;
			return;
		}
		o->p = p;
		o->cap = cap;
	}
	int n = dp_proto_encode(m, 0, o->p + o->len, o->cap - o->len);
	if (n < 0)
		o->err = n;
	else
		o->len += (size_t)n;
}

/* Register every region, map and pin of the ctx (see the top of the file). */
static int client_snapshot(struct dp_client *c)
{
	struct daxpool_ctx *ctx = c->ctx;
	struct obuf o = { 0 };
	struct dp_msg *m = malloc(sizeof(*m));
	struct dp_list *pos, *p2;
	int r, fd;

	if (!m)
		return -ENOMEM;
	pthread_mutex_lock(&ctx->regions_lock);
	dp_list_for_each(pos, &ctx->regions) {
		struct daxpool_region *region = dp_container_of(pos, struct daxpool_region, ctx_node);

		pthread_mutex_lock(&region->lock);
		if (region->released) {
			pthread_mutex_unlock(&region->lock);
			continue;
		}
		if (!region->client_id)
			region->client_id = atomic_fetch_add(&c->next_id, 1);
		fd = fill_region_add(region, m);
		if (fd < 0) {
			/* Without its descriptor the daemon would refuse it: not registered. */
			if (m->region_add.id)
				log_err(ctx, "%s: cannot pass its descriptor to daxpoold: %s",
					region->path, strerror(errno));
			pthread_mutex_unlock(&region->lock);
			continue;
		}
		obuf_add(&o, m);
		obuf_add_fd(&o, fd);
		if (fill_region_state(region, m))
			obuf_add(&o, m);
		dp_list_for_each(p2, &region->maps) {
			struct daxpool_map *map = dp_container_of(p2, struct daxpool_map, node);

			if (map->pending)
				continue;
			if (!map->client_id)
				map->client_id = atomic_fetch_add(&c->next_id, 1);
			memset(m, 0, sizeof(m->map_add) + offsetof(struct dp_msg, map_add));
			m->type = DP_MSG_MAP_ADD;
			m->map_add.id = map->client_id;
			m->map_add.region_id = region->client_id;
			m->map_add.offset = map->offset;
			m->map_add.length = map->length;
			m->map_add.created_ns = (uint64_t)map->created.tv_sec * 1000000000u +
						(uint64_t)map->created.tv_nsec;
			m->map_add.tid = (uint32_t)map->owner_tid;
			obuf_add(&o, m);
		}
		dp_list_for_each(p2, &region->pins) {
			struct daxpool_pin *pin = dp_container_of(p2, struct daxpool_pin, node);

			if (!pin->client_id)
				pin->client_id = atomic_fetch_add(&c->next_id, 1);
			fill_pin_add(pin, m);
			obuf_add(&o, m);
			if (fill_pin_owner(pin, m))
				obuf_add(&o, m);
		}
		pthread_mutex_unlock(&region->lock);
	}
	pthread_mutex_unlock(&ctx->regions_lock);
	free(m);
	r = o.err ? o.err : client_send_batch(c, o.p, o.len, o.fds, o.n_fds);
	close_fds(o.fds, o.n_fds);
	free(o.fds);
	free(o.p);
	return r;
}

/*
 * Register everything on the connection @fd (taken): mark connected, clear
 * the queue, send the snapshot. The thread (or the connect call) only.
 */
static int client_register(struct dp_client *c, int fd)
{
	int r;

	c->sock = fd;
	c->refused_logged = 0;
	/* From here on events are queued; drop what an older connection left. */
	atomic_store_explicit(&c->connected, true, memory_order_release);
	pthread_mutex_lock(&c->qlock);
	queue_clear_locked(c);
	c->overflow = false;
	pthread_mutex_unlock(&c->qlock);
	r = client_snapshot(c);
	if (r == 0)
		r = client_flush(c);
	if (r < 0) {
		atomic_store(&c->connected, false);
		close(c->sock);
		c->sock = -1;
		return r;
	}
	log_info(c->ctx, "connected to daxpoold at %s", c->path);
	return 0;
}

/* Connect, say hello, register everything. The thread only. */
static int client_connect(struct dp_client *c)
{
	int fd = dp_proto_connect(c->path, DP_ROLE_CLIENT, CLIENT_HELLO_TIMEOUT_MS);

	return fd < 0 ? fd : client_register(c, fd);
}

/* ---- requests from the daemon ---- */

/* Find a region by daemon id and take a reference, or NULL. */
static struct daxpool_region *client_get_region(struct dp_client *c, uint64_t id)
{
	struct daxpool_region *found = NULL;
	struct dp_list *pos;

	pthread_mutex_lock(&c->ctx->regions_lock);
	dp_list_for_each(pos, &c->ctx->regions) {
		struct daxpool_region *region = dp_container_of(pos, struct daxpool_region, ctx_node);

		if (region->client_id == id) {
			if (dp_refcnt_get_unless_zero(&region->ref))
				found = region;
			break;
		}
	}
	pthread_mutex_unlock(&c->ctx->regions_lock);
	return found;
}

/* Clamp a request's range to a region; false if nothing of it lies inside. */
static bool clamp_range(struct daxpool_region *region, uint64_t offset, uint64_t end,
			uint64_t *ret_len)
{
	if (offset >= region->size)
		return false;
	if (end == 0 || end > region->size)
		end = region->size;
	*ret_len = end - offset;
	return true;
}

/*
 * End a request's drain: its range reopens, but the part past the file's
 * current end (a truncate the daemon did) stays zapped, as the application's.
 * Only the request's own zap goes: a zap of the application's stays.
 */
static void client_reopen(struct daxpool_region *region, struct dp_request *rq)
{
	uint64_t from = rq->drain.end;
	struct stat st;

	if (region->kind != DAXPOOL_REGION_DEVDAX && region->fd >= 0 && fstat(region->fd, &st) == 0 &&
	    (uint64_t)st.st_size < from)
		from = (uint64_t)st.st_size > rq->drain.start ? (uint64_t)st.st_size : rq->drain.start;
	dp_drain_keep(&rq->drain, from);
}

static void client_send(struct dp_client *c, const struct dp_msg *m)
{
	if (c->sock < 0)
		return;
	if (dp_proto_send(c->sock, m, ++c->seq) < 0)
		shutdown(c->sock, SHUT_RDWR); /* the poll loop sees the hangup and reconnects */
}

/* Move requests on: report idle ones, reopen cancelled idle ones. */
static void client_check_requests(struct dp_client *c)
{
	struct dp_request **pp = &c->requests;

	while (*pp) {
		struct dp_request *rq = *pp;
		struct daxpool_region *region;
		bool drop = false;
		int r;

		if (rq->reported && !rq->cancelled) {
			pp = &rq->next;
			continue;
		}
		region = client_get_region(c, rq->region_id);
		if (!region) {
			drop = true; /* the region is gone: nothing to wait for or reopen */
		} else {
			/* The request's range only: holders of other zaps do not hold it up. */
			r = dp_drain_taken(&rq->drain) ? dp_drain_wait(&rq->drain, 0) : 0;
			if (r == 0) {
				if (rq->cancelled) {
					/* Idle: the revoked maps are gone before it reopens. */
					client_reopen(region, rq);
					drop = true;
					if (rq->yielded)
						dp_services_call(region->ctx, region_resume, region);
				} else {
					struct dp_msg m = { .type = DP_MSG_REVOKE_DONE };

					m.revoke_done.req = rq->req;
					m.revoke_done.region_id = rq->region_id;
					client_send(c, &m);
					rq->reported = true;
				}
			}
			daxpool_region_unref(region);
		}
		if (drop) {
			*pp = rq->next;
			free(rq);
		} else {
			pp = &rq->next;
		}
	}
}

static struct dp_request *client_find_request(struct dp_client *c, uint64_t req, uint64_t region)
{
	for (struct dp_request *rq = c->requests; rq; rq = rq->next)
		if (rq->req == req && rq->region_id == region)
			return rq;
	return NULL;
}

/* Handle one message from the daemon. Return < 0 on a protocol error. */
static int client_handle(struct dp_client *c, const struct dp_msg *m)
{
	struct daxpool_region *region;
	struct dp_request *rq;
	uint64_t len = 0;
	int r;

	switch (m->type) {
	case DP_MSG_REVOKE:
		if (client_find_request(c, m->revoke.req, m->revoke.region_id))
			return 0; /* a duplicate */
		region = client_get_region(c, m->revoke.region_id);
		r = 0;
		if (region && clamp_range(region, m->revoke.offset,
					  m->revoke.length ? m->revoke.offset + m->revoke.length : 0,
					  &len)) {
			rq = calloc(1, sizeof(*rq));
			if (rq) {
				rq->req = m->revoke.req;
				rq->region_id = m->revoke.region_id;
				rq->offset = m->revoke.offset;
				rq->end = m->revoke.offset + len;
				rq->next = c->requests;
				c->requests = rq;
				/* The daemon may open the file once we are idle: not a lease break. */
				if (region->kind != DAXPOOL_REGION_DEVDAX) {
					dp_services_call(region->ctx, region_yield, region);
					rq->yielded = true;
				}
				log_notice(c->ctx, "%s: daxpoold revokes [%#llx, +%#llx) (request %llu)",
					   region->path, (unsigned long long)rq->offset,
					   (unsigned long long)len, (unsigned long long)rq->req);
				/*
				 * The request's own zap: its end never reopens a range
				 * the application zapped. Runs the revoke functions of
				 * the range, in this thread.
				 */
				r = dp_drain_take(region, rq->offset, len, &rq->drain);
			} else {
				r = -ENOMEM;
			}
		}
		daxpool_region_unref(region);
		if (!region || r < 0 || len == 0) {
			/* Nothing of ours there (or the zap failed): answer at once. */
			struct dp_msg d = { .type = DP_MSG_REVOKE_DONE };

			d.revoke_done.req = m->revoke.req;
			d.revoke_done.region_id = m->revoke.region_id;
			d.revoke_done.status = r < 0 ? r : 0;
			client_send(c, &d);
			/*
			 * Answered: the request waits for the daemon's UNZAP (or
			 * a lost connection) to reopen what the zap did close, and
			 * is never reported idle a second time.
			 */
			rq = client_find_request(c, m->revoke.req, m->revoke.region_id);
			if (rq)
				rq->reported = true;
		}
		return 0;
	case DP_MSG_REFUSED:
		/* Not recorded by the daemon: a release treats us as a process outside it. */
		if (m->refused.type < 32 && !(c->refused_logged & (1u << m->refused.type))) {
			c->refused_logged |= 1u << m->refused.type;
			log_err(c->ctx, "daxpoold did not record %s %llu: %s (%s); further refusals "
					"of this kind are not logged",
				dp_proto_type_name(m->refused.type), (unsigned long long)m->refused.id,
				m->refused.reason, strerror(-m->refused.status));
		}
		return 0;
	case DP_MSG_UNZAP:
	case DP_MSG_RELEASED:
		rq = client_find_request(c, m->revoke.req, m->revoke.region_id);
		if (!rq)
			return 0;
		if (m->type == DP_MSG_UNZAP) {
			rq->cancelled = true; /* reopened by client_check_requests() once idle */
		} else {
			for (struct dp_request **pp = &c->requests; *pp; pp = &(*pp)->next) {
				if (*pp == rq) {
					*pp = rq->next;
					break;
				}
			}
			region = client_get_region(c, rq->region_id);
			if (region) {
				/* Released: the range stays zapped, as the application's own. */
				dp_drain_keep(&rq->drain, rq->drain.start);
				if (rq->yielded)
					dp_services_call(region->ctx, region_resume, region);
			}
			free(rq);
			daxpool_region_unref(region);
		}
		return 0;
	case DP_MSG_REGION_GONE:
		region = client_get_region(c, m->region_gone.region_id);
		if (!region)
			return 0; /* closed meanwhile */
		dp_region_mark_dead(region, m->region_gone.reason,
				    m->region_gone.reason == -ENXIO
					    ? "daxpoold reports its device unbound"
					    : "daxpoold reports its device removed");
		/*
		 * The kernel has torn the mappings down already: every holder
		 * must let go (also when a SIGBUS marked it dead first, which
		 * revoked nothing). Runs the revoke functions in this thread;
		 * a second zap revokes nothing twice.
		 */
		r = daxpool_region_zap_range(region, 0, 0);
		if (r < 0 && r != -ENXIO)
			log_err(c->ctx, "%s: zap after its device went: %s", region->path,
				strerror(-r));
		daxpool_region_unref(region);
		return 0;
	default:
		log_err(c->ctx, "daxpoold sent an unexpected %s", dp_proto_type_name(m->type));
		return -EPROTO;
	}
}

static void client_disconnect(struct dp_client *c, int why)
{
	if (c->sock < 0)
		return;
	atomic_store(&c->connected, false);
	close(c->sock);
	c->sock = -1;
	pthread_mutex_lock(&c->qlock);
	queue_clear_locked(c);
	pthread_mutex_unlock(&c->qlock);
	/* A request the daemon can no longer finish must not leave the range zapped. */
	for (struct dp_request *rq = c->requests; rq; rq = rq->next)
		rq->cancelled = true;
	c->reconnect_at = dp_now_ns() + CLIENT_RECONNECT_MS * 1000000ull;
	log_notice(c->ctx, "lost the connection to daxpoold (%s); reconnecting", strerror(-why));
}

/* Read and handle one datagram. Return < 0 to disconnect. */
static int client_receive(struct dp_client *c, uint8_t *buf)
{
	struct dp_msg *m;
	ssize_t n;
	size_t off = 0;
	int r = 0;

	n = recv(c->sock, buf, DP_PROTO_MAX_DGRAM, MSG_DONTWAIT | MSG_TRUNC);
	if (n < 0)
		return errno == EAGAIN || errno == EINTR ? 0 : -errno;
	if (n == 0)
		return -ECONNRESET;
	if (n > DP_PROTO_MAX_DGRAM)
		return -EMSGSIZE;
	m = malloc(sizeof(*m));
	if (!m)
		return -ENOMEM;
	while (off < (size_t)n && r == 0) {
		r = dp_proto_decode(buf + off, (size_t)n - off, m);
		if (r < 0)
			break;
		off += (size_t)r;
		r = client_handle(c, m);
	}
	free(m);
	return r;
}

static void client_free(struct dp_client *c)
{
	while (c->requests) {
		struct dp_request *rq = c->requests;

		c->requests = rq->next;
		free(rq);
	}
	if (c->sock >= 0)
		close(c->sock);
	dp_service_thread_fini(&c->t);
	pthread_mutex_destroy(&c->qlock);
	close_fds(c->qfds, c->n_qfds);
	free(c->qfds);
	free(c->q);
	free(c->buf);
	free(c->path);
	free(c);
}

static void client_thread_free(struct dp_service_thread *t)
{
	client_free(dp_container_of(t, struct dp_client, t));
}

/*
 * One pass of the client thread: what the daemon sent, what is queued for
 * it, the requests waiting for idle; then (re)connect when it is time, and
 * wait for the socket, a kick, or the next check.
 */
static int client_pass(struct dp_service_thread *t)
{
	struct dp_client *c = dp_container_of(t, struct dp_client, t);
	int timeout = -1, r;

	if (c->sock >= 0 &&
	    (dp_service_thread_revents(t, c->sock_index) & (POLLIN | POLLHUP | POLLERR))) {
		r = client_receive(c, c->buf);
		if (r < 0)
			client_disconnect(c, r);
	}
	if (c->sock >= 0) {
		r = client_flush(c);
		if (r < 0)
			client_disconnect(c, r);
	}
	client_check_requests(c);

	if (c->requests)
		timeout = 50; /* cancelled requests wait for idle without events */
	if (c->sock < 0) {
		uint64_t now = dp_now_ns();

		if (now >= c->reconnect_at && client_connect(c) < 0)
			c->reconnect_at = now + CLIENT_RECONNECT_MS * 1000000ull;
		if (c->sock < 0)
			timeout = CLIENT_RECONNECT_MS;
	}
	dp_service_thread_wait(t, timeout);
	c->sock_index = c->sock >= 0 ? dp_service_thread_watch(t, c->sock, POLLIN) : -1;
	if (c->sock >= 0 && c->sock_index < 0) {
		log_err(c->ctx, "daxpoold client: out of memory; the client thread stops");
		return c->sock_index;
	}
	return 0;
}

static const struct dp_service_thread_ops client_thread_ops = {
	.name = "daxpoold client",
	.pass = client_pass,
	.free = client_thread_free,
};

/*
 * Connect, then publish the client in ctx->client and register. A client is
 * freed here only before it is published: from then on other threads may
 * queue events on it, so it stays until client_ctx_fini() (whose
 * dp_service_thread_stop() frees it, with or without a thread). Two
 * concurrent calls: the first to publish wins, the other gets -EALREADY.
 */
static int client_start(struct daxpool_ctx *ctx, const char *path)
{
	struct dp_client *c, *none = NULL;
	int fd, r;

	c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	c->ctx = ctx;
	c->sock = -1;
	c->sock_index = -1;
	atomic_init(&c->next_id, 1);
	pthread_mutex_init(&c->qlock, NULL);
	r = dp_service_thread_init(&c->t, ctx, &client_thread_ops);
	if (r < 0) {
		pthread_mutex_destroy(&c->qlock);
		free(c);
		return r;
	}
	c->path = strdup(path ? path : DP_DAEMON_SOCKET_DEFAULT);
	c->buf = malloc(DP_PROTO_MAX_DGRAM);
	if (!c->path || !c->buf) {
		client_free(c);
		return -ENOMEM;
	}
	fd = dp_proto_connect(c->path, DP_ROLE_CLIENT, CLIENT_HELLO_TIMEOUT_MS);
	if (fd < 0) {
		client_free(c);
		return fd;
	}
	/* Published before the first snapshot, so regions opened from now on get ids. */
	if (!atomic_compare_exchange_strong_explicit(&ctx->client, &none, c, memory_order_acq_rel,
						     memory_order_acquire)) {
		close(fd);
		client_free(c);
		return -EALREADY;
	}
	r = client_register(c, fd);
	if (r < 0)
		log_notice(ctx, "registering with daxpoold at %s: %s; retrying in the background",
			   c->path, strerror(-r));
	c->reconnect_at = dp_now_ns() + CLIENT_RECONNECT_MS * 1000000ull;
	r = dp_service_thread_start(&c->t);
	if (r < 0) {
		/* Published: it stays, disconnected, until client_ctx_fini() frees it. */
		if (c->sock >= 0) {
			atomic_store(&c->connected, false);
			close(c->sock);
			c->sock = -1;
		}
		return r;
	}
	return 0;
}

_public_ int daxpool_ctx_connect_daemon(struct daxpool_ctx *ctx, const char *socket_path)
{
	int r;

	assert_return(ctx, -EINVAL);
	assert_owned(ctx);
	assert_return(!socket_path || *socket_path, -EINVAL);
	if (atomic_load(&ctx->client))
		return -EALREADY;
	r = client_start(ctx, socket_path);
	if (r < 0 && r != -EALREADY)
		log_err(ctx, "cannot connect to daxpoold at %s: %s; working without it",
			socket_path ? socket_path : DP_DAEMON_SOCKET_DEFAULT, strerror(-r));
	return r;
}

_public_ int daxpool_ctx_is_daemon_connected(struct daxpool_ctx *ctx)
{
	struct dp_client *c;

	assert_return(ctx, -EINVAL);
	c = atomic_load_explicit(&ctx->client, memory_order_acquire);
	if (!c)
		return -ENOTCONN;
	return atomic_load(&c->connected) ? 1 : 0;
}

void dp_client_ctx_init(struct daxpool_ctx *ctx)
{
	const char *env;

	env = secure_getenv("DAXPOOL_DAEMON");
	if (!env || !*env || strcmp(env, "0") == 0)
		return;
	if (strcmp(env, "1") != 0 && env[0] != '/') {
		log_err(ctx, "DAXPOOL_DAEMON=\"%s\": expected 1 or a socket path", env);
		return;
	}
	/* Logged by the call; the ctx works without the daemon. */
	daxpool_ctx_connect_daemon(ctx, strcmp(env, "1") == 0 ? NULL : env);
}

static void client_ctx_fini(struct daxpool_ctx *ctx)
{
	struct dp_client *c = atomic_load(&ctx->client);

	/*
	 * Joined and freed; a child's copy of the parent's freed (its socket is
	 * the child's descriptor of the parent's connection); on the thread
	 * itself, freed at the end of its pass.
	 */
	if (c)
		dp_service_thread_stop(&c->t);
}

const struct dp_service dp_client_service = {
	.name = "daxpoold client",
	.ctx_fini = client_ctx_fini,
	.region_listed = client_region_listed,
	.region_added = client_region_added,
	.region_removed = client_region_removed,
	.region_state = client_region_state,
	.map_event = client_map_event,
	.pin_event = client_pin_event,
	.pin_owner = client_pin_owner,
};
