/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The event loop: one epoll set with the listening socket, every connection,
 * a pidfd per connection (its peer's process: death is noticed at once, even
 * when a child inherited the socket), a signalfd for SIGTERM/SIGINT, and the
 * device event monitor (udev.c).
 *
 * Every connection is authenticated by SO_PEERCRED. Every datagram is decoded
 * and validated in full; a malformed, oversized or out-of-order message closes
 * that connection only. Nothing here blocks: replies go through a per
 * connection queue flushed on EPOLLOUT, of exact-size buffers, at most
 * max_output bytes: a connection that lets more pile up is dropped.
 *
 * A registration is proof of access: REGION_ADD comes with the region's
 * descriptor (SCM_RIGHTS, protocol.h); what the region is -- device, inode,
 * rdev, size, kind, the devdax name, the path shown -- is the kernel's answer
 * through that descriptor (target.c: statx without a sync, so a FUSE server
 * cannot stall us), never the client's word. The descriptor is closed at once.
 *
 * The daemon's state -- connections, operations, the epoll set, the
 * configuration -- is the manager's (manager.h), which this loop owns and
 * passes to every part.
 *
 * Limits (daxpoold.conf(5)): connections in all and per uid (root's are not
 * counted per uid and may exceed the total by ROOT_SPARE), regions, maps and
 * pins per connection (beyond: REFUSED, the registration is not recorded).
 * One descriptor is kept in reserve: when accept4() fails with EMFILE the
 * reserve is closed, the connection accepted and closed at once, the reserve
 * taken again, and that is logged once; the loop never spins on it.
 *
 * A client whose socket hangs up during a drain while its process still runs
 * (a SIGKILL closes the descriptors before the process is reaped, so the
 * pidfd turns readable a moment later) is kept aside, without its socket, for
 * up to GONE_WAIT_MS: if its pidfd says the process died, it counts as
 * drained (it holds nothing); if not, the drain fails as for any holder that
 * is lost.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "opens.h"
#include "ops.h"
#include "outsiders.h"
#include "server.h"
#include "status.h"
#include "target.h"
#include "udev.h"
#include "umem_trace.h"
#include "scan.h"
#include "worker.h"

#define ROOT_SPARE 16	   /* root's connections beyond max_connections */
#define GONE_WAIT_MS 2000 /* a hung-up client's process has this long to exit */

/*
 * Whether a drain waits for @c: a REVOKE it has not answered is on one of
 * its regions (a region it dropped counted as answered).
 */
static bool conn_draining(const struct dd_conn *c)
{
	for (const struct dd_region *r = c->regions; r; r = r->next)
		if (r->pend)
			return true;
	return false;
}

static void conn_unlink(struct dd_manager *m, struct dd_conn *c)
{
	struct dd_conn **lists[] = { &m->conns, &m->gone_conns };

	for (size_t i = 0; i < 2; i++) {
		for (struct dd_conn **pp = lists[i]; *pp; pp = &(*pp)->next) {
			if (*pp == c) {
				*pp = c->next;
				return;
			}
		}
	}
}

static void conn_finish(struct dd_manager *m, struct dd_conn *c, const char *why, bool dead)
{
	if (c->role == DP_ROLE_CLIENT || why)
		dd_log(why ? LOG_WARNING : LOG_INFO, "pid %d (%s) uid %u: %s%s", (int)c->cred.pid,
		       c->comm, (unsigned)c->cred.uid, why ? why : "disconnected",
		       dead ? " (process exited): holdings dropped" : "");
	dd_op_conn_gone(m, c, dead);
	dd_scan_abandon(c->scan); /* a status it waited for: nobody reads it now */
	c->scan = NULL;
	conn_unlink(m, c);
	if (c->fd >= 0) {
		epoll_ctl(m->epfd, EPOLL_CTL_DEL, c->fd, NULL);
		close(c->fd);
	}
	if (c->pidfd >= 0) {
		epoll_ctl(m->epfd, EPOLL_CTL_DEL, c->pidfd, NULL);
		close(c->pidfd);
	}
	dd_conn_free_holdings(c);
	dd_conn_drop_output(c);
	free(c);
}

/*
 * Close @c. @hangup: its peer closed the socket. A client that hangs up in a
 * drain while its process still runs waits aside for its pidfd (see the top).
 */
static void conn_close(struct dd_manager *m, struct dd_conn *c, const char *why, bool hangup)
{
	bool dead = !dd_process_alive(c);

	hangup |= c->hung_up; /* a REVOKE sent to a client that was being killed */
	if (hangup && !dead && c->fd >= 0 && c->pidfd >= 0 && conn_draining(c)) {
		conn_unlink(m, c);
		epoll_ctl(m->epfd, EPOLL_CTL_DEL, c->fd, NULL);
		close(c->fd);
		c->fd = -1;
		dd_conn_drop_output(c);
		c->gone_deadline_ns = dd_now_ns() + GONE_WAIT_MS * 1000000ull;
		c->next = m->gone_conns;
		m->gone_conns = c;
		dd_log(LOG_DEBUG, "pid %d (%s): hung up while draining; waiting for it to exit",
		       (int)c->cred.pid, c->comm);
		return;
	}
	conn_finish(m, c, why, dead);
}

/* Decide for the hung-up clients whose wait is over; ms to the next deadline (-1: none). */
static int gone_tick(struct dd_manager *m)
{
	uint64_t now = dd_now_ns(), next = UINT64_MAX;

	for (struct dd_conn *c = m->gone_conns, *n; c; c = n) {
		n = c->next;
		if (now >= c->gone_deadline_ns) {
			bool dead = !dd_process_alive(c);

			conn_finish(m, c, dead ? NULL
					    : "hung up while draining and its process did not exit",
				    dead);
		} else if (c->gone_deadline_ns < next) {
			next = c->gone_deadline_ns;
		}
	}
	return next == UINT64_MAX ? -1 : (int)((next - now + 999999) / 1000000);
}

/*
 * Close the connections that sent no HELLO within hello_timeout: each holds a
 * slot of max_connections. Said once a second at most (a flood of silent
 * connections must not flood the log). ms to the next such deadline (-1: none).
 */
static int hello_tick(struct dd_manager *m)
{
	static uint64_t logged_ns;
	uint64_t now = dd_now_ns(), next = UINT64_MAX;
	uint64_t wait = (uint64_t)m->cfg.hello_timeout_ms * 1000000u;

	for (struct dd_conn *c = m->conns, *n; c; c = n) {
		n = c->next;
		if (c->role)
			continue;
		if (now - c->connected_ns < wait) {
			if (c->connected_ns + wait < next)
				next = c->connected_ns + wait;
			continue;
		}
		if (!logged_ns || now - logged_ns > 1000000000ull) {
			dd_log(LOG_WARNING, "pid %d (%s) uid %u: no HELLO within %d s: closed",
			       (int)c->cred.pid, c->comm, (unsigned)c->cred.uid,
			       m->cfg.hello_timeout_ms / 1000);
			logged_ns = now;
		}
		conn_close(m, c, NULL, false);
	}
	return next == UINT64_MAX ? -1 : (int)((next - now + 999999) / 1000000);
}

/* The earlier of two timeouts in ms (-1: none). */
static int timeout_min(int a, int b)
{
	return a < 0 ? b : b < 0 || a < b ? a : b;
}

/* accept4() failed with EMFILE or ENFILE: take the connection with the reserve, and close it. */
static void accept_without_fds(struct dd_manager *m, int lfd, int err)
{
	int fd;

	if (!m->nofile_logged) {
		dd_log(LOG_ERR, "accept: %s: out of file descriptors; refusing connections until "
				"some close (raise LimitNOFILE= or lower max_connections)",
		       strerror(err));
		m->nofile_logged = true;
	}
	if (m->reserve_fd < 0) {
		m->listen_paused_until = dd_now_ns() + 100 * 1000000ull;
		return;
	}
	close(m->reserve_fd);
	fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
	if (fd >= 0)
		close(fd);
	m->reserve_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	if (m->reserve_fd < 0 || fd < 0)
		m->listen_paused_until = dd_now_ns() + 100 * 1000000ull;
}

/* Why a new connection of @uid is refused (into @why), or NULL. */
static const char *conn_over_limit(struct dd_manager *m, uid_t uid, char *why, size_t size)
{
	unsigned int total = 0, of_uid = 0;
	struct dd_conn *lists[] = { m->conns, m->gone_conns };

	for (size_t i = 0; i < 2; i++) {
		for (struct dd_conn *c = lists[i]; c; c = c->next) {
			total++;
			of_uid += c->cred.uid == uid;
		}
	}
	if (uid != 0 && of_uid >= m->cfg.max_connections_per_uid)
		snprintf(why, size, "uid %u has %u connections (max_connections_per_uid)",
			 (unsigned)uid, of_uid);
	else if (total >= m->cfg.max_connections + (uid == 0 ? ROOT_SPARE : 0))
		snprintf(why, size, "the daemon has %u connections (max_connections)", total);
	else
		return NULL;
	return why;
}

static void conn_accept(struct dd_manager *m, int lfd)
{
	struct epoll_event ev;
	struct dd_conn *c;
	struct ucred cred;
	socklen_t len;
	char why[160];
	int fd;

	if (m->listen_paused_until && dd_now_ns() < m->listen_paused_until)
		return;
	m->listen_paused_until = 0;
	fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
	if (fd < 0) {
		if (errno == EMFILE || errno == ENFILE)
			accept_without_fds(m, lfd, errno);
		return;
	}
	m->nofile_logged = false;
	len = sizeof(cred);
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0 || cred.pid <= 0) {
		dd_log(LOG_WARNING, "connection without peer credentials refused");
		close(fd);
		return;
	}
	if (conn_over_limit(m, cred.uid, why, sizeof(why))) {
		struct dp_msg msg = { .type = DP_MSG_REFUSED };
		static uint64_t logged_ns;

		/* Said once a second at most: a flood must not flood the log too. */
		if (!logged_ns || dd_now_ns() - logged_ns > 1000000000ull) {
			dd_log(LOG_WARNING, "connection from pid %d uid %u refused: %s",
			       (int)cred.pid, (unsigned)cred.uid, why);
			logged_ns = dd_now_ns();
		}
		msg.refused.type = DP_MSG_HELLO;
		msg.refused.status = -EUSERS;
		snprintf(msg.refused.reason, sizeof(msg.refused.reason), "%s", why);
		dp_proto_send(fd, &msg, 0); /* a fresh non-blocking socket: room for it */
		/* Read what it sent: closing with it unread would reset the REFUSED away. */
		for (int i = 0; i < 4 && recv(fd, why, sizeof(why), MSG_DONTWAIT | MSG_TRUNC) > 0;
		     i++)
			;
		close(fd);
		return;
	}
	c = calloc(1, sizeof(*c));
	if (!c) {
		close(fd);
		return;
	}
	c->fd = fd;
	c->pidfd = -1;
	c->epfd = m->epfd;
	c->max_output = m->cfg.max_output;
	c->out_tail = &c->out;
	c->connected_ns = dd_now_ns();
	c->cred = cred;
	dd_proc_comm(c->cred.pid, c->comm, sizeof(c->comm));
	c->ep_sock = (struct dd_ep){ DD_EP_SOCK, c };
	c->ep_pid = (struct dd_ep){ DD_EP_PIDFD, c };
	ev = (struct epoll_event){ .events = EPOLLIN, .data.ptr = &c->ep_sock };
	epoll_ctl(m->epfd, EPOLL_CTL_ADD, fd, &ev);
	c->pidfd = (int)syscall(SYS_pidfd_open, c->cred.pid, 0);
	if (c->pidfd >= 0) {
		ev = (struct epoll_event){ .events = EPOLLIN, .data.ptr = &c->ep_pid };
		epoll_ctl(m->epfd, EPOLL_CTL_ADD, c->pidfd, &ev);
	} else {
		dd_log(LOG_WARNING, "pidfd_open(%d): %s: a dead client is noticed only when its "
				    "socket closes", (int)c->cred.pid, strerror(errno));
	}
	c->next = m->conns;
	m->conns = c;
	dd_log(LOG_DEBUG, "connection from pid %d (%s) uid %u", (int)c->cred.pid, c->comm,
	       (unsigned)c->cred.uid);
}

static struct dd_region *conn_region(struct dd_conn *c, uint64_t id)
{
	return dd_regmap_get(&c->region_ids, id);
}

/* REGION_ADD @id with the descriptor @fd (-1: none came). Return < 0 to close the connection. */
static int region_add(struct dd_manager *m, struct dd_conn *c, uint64_t id, int fd)
{
	struct dd_region *r = conn_region(c, id);
	struct dd_target tmp;
	char why[192];
	int ret;

	if (fd < 0) {
		c->regions_refused = true;
		dd_conn_refuse(c, DP_MSG_REGION_ADD, id, -EBADF,
			       "no descriptor came with it: a registration proves access with the "
			       "region's open file (SCM_RIGHTS); nothing recorded");
		return 0;
	}
	ret = dd_target_identify(fd, &tmp, why, sizeof(why));
	if (ret < 0) {
		c->regions_refused = true;
		dd_conn_refuse(c, DP_MSG_REGION_ADD, id, ret, "its descriptor: %s; nothing recorded",
			       why);
		return 0;
	}
	if (!r) {
		if (c->region_ids.n >= m->cfg.max_regions) {
			c->regions_refused = true;
			dd_conn_refuse(c, DP_MSG_REGION_ADD, id, -EDQUOT,
				       "more than %u regions (max_regions): not recorded; a release "
				       "counts this process as one outside daxpool",
				       m->cfg.max_regions);
			return 0;
		}
		r = calloc(1, sizeof(*r));
		if (!r)
			return -ENOMEM;
		r->id = id;
		if (dd_regmap_add(&c->region_ids, r) < 0) {
			free(r);
			return -ENOMEM;
		}
		r->next = c->regions;
		if (r->next)
			r->next->pprev = &r->next;
		r->pprev = &c->regions;
		c->regions = r;
	}
	r->dev = tmp.dev;
	r->ino = tmp.ino;
	r->rdev = tmp.rdev;
	r->size = tmp.size;
	r->kind = tmp.kind;
	r->owner_uid = tmp.owner_uid;
	snprintf(r->path, sizeof(r->path), "%s", tmp.path);
	snprintf(r->devname, sizeof(r->devname), "%s", tmp.devname);
	dd_conn_note_seen(c, r->dev, r->ino, r->rdev);
	dd_op_region_added(m, c, r);
	return 0;
}

static void region_del(struct dd_manager *m, struct dd_conn *c, uint64_t id)
{
	struct dd_region *r = conn_region(c, id);

	if (!r)
		return;
	/* Dropped: it holds nothing of a drain that waits for it. */
	if (r->revoke_req)
		dd_op_revoke_done(m, c, r->revoke_req, r->id, 0);
	dd_regmap_del(&c->region_ids, r);
	*r->pprev = r->next;
	if (r->next)
		r->next->pprev = r->pprev;
	free(r);
}

static int holding_add(struct dd_manager *m, struct dd_conn *c, const struct dp_msg *msg)
{
	struct dd_holding *h = calloc(1, sizeof(*h));
	bool pin = msg->type == DP_MSG_PIN_ADD;
	struct dd_idmap *map;

	if (!h)
		return -ENOMEM;
	if (pin) {
		h->id = msg->pin_add.id;
		h->region_id = msg->pin_add.region_id;
		h->offset = msg->pin_add.offset;
		h->length = msg->pin_add.length;
		h->created_ns = msg->pin_add.created_ns;
		h->kind = msg->pin_add.kind;
		h->access = msg->pin_add.access;
		h->tid = msg->pin_add.tid;
	} else {
		h->id = msg->map_add.id;
		h->region_id = msg->map_add.region_id;
		h->offset = msg->map_add.offset;
		h->length = msg->map_add.length;
		h->created_ns = msg->map_add.created_ns;
		h->tid = msg->map_add.tid;
	}
	if (!conn_region(c, h->region_id)) {
		dd_holding_free(h);
		/* Of a region refused: not recorded either. Of one never registered: an error. */
		return c->regions_refused ? 0 : -EPROTO;
	}
	map = pin ? &c->pins : &c->maps;
	dd_holding_free(dd_idmap_take(map, h->id)); /* a second ADD of an id replaces it */
	if (map->n >= (pin ? m->cfg.max_pins : m->cfg.max_maps)) {
		dd_conn_refuse(c, msg->type, h->id, -EDQUOT,
			       "more than %u %s (%s): not recorded; status does not show it",
			       pin ? m->cfg.max_pins : m->cfg.max_maps, pin ? "pins" : "maps",
			       pin ? "max_pins" : "max_maps");
		dd_holding_free(h);
		return 0;
	}
	dd_idmap_put(map, h);
	return 0;
}

/*
 * Handle one message; < 0 closes the connection (the reason is logged).
 * @fd: the descriptor that came for it (a REGION_ADD's), -1 if none; the
 * caller closes it.
 */
static int conn_handle(struct dd_manager *m, struct dd_conn *c, const struct dp_msg *msg, int fd)
{
	struct dd_region *r;

	if (!c->role) {
		if (msg->type != DP_MSG_HELLO)
			return -EPROTO;
		c->role = msg->hello.role;
		return dd_conn_send(c, &(struct dp_msg){ .type = DP_MSG_HELLO_OK,
							 .hello_ok.version = DP_PROTO_VERSION });
	}
	if (c->role == DP_ROLE_CTL) {
		if (c->request_done || c->op || c->scan)
			return -EPROTO; /* one request per connection */
		if (msg->type == DP_MSG_STATUS) {
			dd_status(m, c, msg->status.target);
			return 0;
		}
		if (msg->type == DP_MSG_OP) {
			dd_op_start(m, c, msg);
			return 0;
		}
		return -EPROTO;
	}
	switch (msg->type) {
	case DP_MSG_REGION_ADD:
		return region_add(m, c, msg->region_add.id, fd);
	case DP_MSG_REGION_STATE:
		r = conn_region(c, msg->region_state.region_id);
		if (!r)
			return 0; /* a region it already dropped */
		if (r->lease_breaks < msg->region_state.lease_breaks)
			dd_log(LOG_NOTICE, "pid %d (%s): gave its lease on %s up to another process "
					   "after draining (%llu so far)",
			       (int)c->cred.pid, c->comm, r->path,
			       (unsigned long long)msg->region_state.lease_breaks);
		r->lease = msg->region_state.lease;
		r->lease_error = msg->region_state.lease_error;
		r->lease_breaks = msg->region_state.lease_breaks;
		return 0;
	case DP_MSG_REGION_DEL:
		region_del(m, c, msg->del.id);
		return 0;
	case DP_MSG_MAP_ADD:
	case DP_MSG_PIN_ADD:
		return holding_add(m, c, msg);
	case DP_MSG_MAP_DEL:
		dd_holding_free(dd_idmap_take(&c->maps, msg->del.id));
		return 0;
	case DP_MSG_PIN_DEL:
		dd_holding_free(dd_idmap_take(&c->pins, msg->del.id));
		return 0;
	case DP_MSG_PIN_OWNER: {
		struct dd_holding *h = dd_idmap_get(&c->pins, msg->pin_owner.id);

		/* Of a pin not recorded (refused, or dropped since): nothing to describe. */
		if (h && dd_holding_set_owner(h, msg->pin_owner.text) < 0)
			dd_log(LOG_WARNING, "pid %d (%s): no memory for a pin's description",
			       (int)c->cred.pid, c->comm);
		return 0;
	}
	case DP_MSG_REVOKE_DONE:
		dd_op_revoke_done(m, c, msg->revoke_done.req, msg->revoke_done.region_id,
				  msg->revoke_done.status);
		return 0;
	default:
		return -EPROTO;
	}
}

/*
 * Receive one datagram into @buf with the descriptors that came with it
 * (*ret_n of them into @fds, room for DP_PROTO_MAX_FDS; every one the caller
 * must close). Return its length, 0 at a hangup, -errno; -EMSGSIZE for more
 * data or descriptors than a datagram may carry (what came is closed).
 */
static ssize_t conn_recv_fds(struct dd_conn *c, uint8_t *buf, int *fds, size_t *ret_n)
{
	union {
		struct cmsghdr h;
		char b[CMSG_SPACE(DP_PROTO_MAX_FDS * sizeof(int))];
	} ctl;
	struct iovec iov = { buf, DP_PROTO_MAX_DGRAM };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl.b,
			     .msg_controllen = sizeof(ctl.b) };
	ssize_t n;

	*ret_n = 0;
	n = recvmsg(c->fd, &mh, MSG_DONTWAIT | MSG_TRUNC | MSG_CMSG_CLOEXEC);
	if (n < 0)
		return -errno;
	for (struct cmsghdr *cm = CMSG_FIRSTHDR(&mh); cm; cm = CMSG_NXTHDR(&mh, cm)) {
		size_t k;

		if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS)
			continue;
		k = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		for (size_t i = 0; i < k; i++) {
			int fd;

			memcpy(&fd, CMSG_DATA(cm) + i * sizeof(int), sizeof(fd));
			if (*ret_n < DP_PROTO_MAX_FDS)
				fds[(*ret_n)++] = fd;
			else
				close(fd);
		}
	}
	/* Cut short: the kernel dropped descriptors that did not fit (or could not be had). */
	if ((mh.msg_flags & MSG_CTRUNC) || n > DP_PROTO_MAX_DGRAM)
		return -EMSGSIZE;
	return n;
}

/* Read one datagram. Return false to close the connection (why set; *hangup: EOF). */
static bool conn_receive(struct dd_manager *m, struct dd_conn *c, uint8_t *buf, const char **why,
			 bool *hangup)
{
	static struct dp_msg msg; /* one thread; too big for the stack many times over */
	int fds[DP_PROTO_MAX_FDS];
	size_t off = 0, n_fds, next_fd = 0;
	bool ok = true;
	ssize_t n;
	int r;

	n = conn_recv_fds(c, buf, fds, &n_fds);
	if (n < 0 && n != -EMSGSIZE) {
		*why = NULL;
		*hangup = n == -ECONNRESET;
		return n == -EAGAIN || n == -EINTR;
	}
	if (n == 0) {
		*why = NULL;
		*hangup = true;
		return false;
	}
	if (n == -EMSGSIZE) {
		*why = "protocol error: oversized datagram, or more descriptors than it may carry";
		ok = false;
	}
	while (ok && off < (size_t)n) {
		r = dp_proto_decode(buf + off, (size_t)n - off, &msg);
		if (r < 0) {
			switch (r) {
			case -EBADMSG:
				*why = "protocol error: bad magic";
				break;
			case -EPROTO:
				*why = "protocol error: unsupported version";
				break;
			case -EMSGSIZE:
				*why = "protocol error: oversized message";
				break;
			case -ENODATA:
				*why = "protocol error: truncated message";
				break;
			case -ENOMSG:
				*why = "protocol error: unknown message type";
				break;
			default:
				*why = "protocol error: invalid message";
			}
			ok = false;
			break;
		}
		off += (size_t)r;
		/* The n-th REGION_ADD of a datagram takes its n-th descriptor. */
		r = conn_handle(m, c, &msg,
				msg.type == DP_MSG_REGION_ADD && c->role == DP_ROLE_CLIENT &&
						next_fd < n_fds
					? fds[next_fd]
					: -1);
		if (msg.type == DP_MSG_REGION_ADD && c->role == DP_ROLE_CLIENT && next_fd < n_fds)
			next_fd++;
		if (r < 0) {
			*why = r == -EPROTO ? "protocol error: unexpected message" : "out of memory";
			ok = false;
		}
	}
	/* Every descriptor is closed: used (identified) or unexpected. */
	for (size_t i = 0; i < n_fds; i++)
		close(fds[i]);
	return ok;
}

/*
 * The descriptors: raise the soft RLIMIT_NOFILE to the hard one (nothing here
 * uses select()), say so if the limits cannot hold max_connections (a socket
 * and a pidfd each), and take the reserve for accept4()'s EMFILE.
 */
static void nofile_setup(struct dd_manager *m)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 &&
	    rl.rlim_cur < 2 * ((rlim_t)m->cfg.max_connections + ROOT_SPARE) + 64)
		dd_log(LOG_WARNING, "RLIMIT_NOFILE %llu cannot hold max_connections %u (two "
				    "descriptors each): connections beyond it are refused",
		       (unsigned long long)rl.rlim_cur, m->cfg.max_connections);
	m->reserve_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
}

static int signal_fd(void)
{
	sigset_t mask;

	sigemptyset(&mask);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	sigprocmask(SIG_BLOCK, &mask, NULL);
	signal(SIGPIPE, SIG_IGN);
	return signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
}

int dd_server_run(struct dd_manager *m, int listen_fd)
{
	struct dd_ep ep_listen = { DD_EP_LISTEN, NULL }, ep_sig = { DD_EP_SIGNAL, NULL };
	struct dd_ep ep_udev = { DD_EP_UDEV, NULL }, ep_opens = { DD_EP_OPENS, NULL };
	struct dd_ep ep_worker = { DD_EP_WORKER, NULL }, ep_scan = { DD_EP_SCAN, NULL };
	struct dd_ep ep_umem = { DD_EP_UMEM, NULL };
	struct epoll_event ev, events[64];
	uint8_t *buf = malloc(DP_PROTO_MAX_DGRAM);
	int sfd, ufd, ofd, wfd, scfd, tfd, r = 0;

	m->epfd = epoll_create1(EPOLL_CLOEXEC);
	sfd = signal_fd();
	nofile_setup(m);
	if (!buf || m->epfd < 0 || sfd < 0) {
		dd_log(LOG_ERR, "event loop setup: %s", strerror(errno));
		free(buf);
		return -ENOMEM;
	}
	ev = (struct epoll_event){ .events = EPOLLIN, .data.ptr = &ep_listen };
	epoll_ctl(m->epfd, EPOLL_CTL_ADD, listen_fd, &ev);
	ev = (struct epoll_event){ .events = EPOLLIN, .data.ptr = &ep_sig };
	epoll_ctl(m->epfd, EPOLL_CTL_ADD, sfd, &ev);
	ufd = dd_udev_open();
	if (ufd >= 0) {
		ev = (struct epoll_event){ .events = EPOLLIN, .data.ptr = &ep_udev };
		epoll_ctl(m->epfd, EPOLL_CTL_ADD, ufd, &ev);
	}
	wfd = dd_worker_init();
	if (wfd < 0) {
		dd_log(LOG_ERR, "worker setup: %s", strerror(-wfd));
		free(buf);
		return wfd;
	}
	ev = (struct epoll_event){ .events = EPOLLIN, .data.ptr = &ep_worker };
	epoll_ctl(m->epfd, EPOLL_CTL_ADD, wfd, &ev);
	scfd = dd_scan_init();
	if (scfd < 0) {
		dd_log(LOG_ERR, "scan setup: %s", strerror(-scfd));
		dd_worker_exit();
		free(buf);
		return scfd;
	}
	ev = (struct epoll_event){ .events = EPOLLIN, .data.ptr = &ep_scan };
	epoll_ctl(m->epfd, EPOLL_CTL_ADD, scfd, &ev);
	/* Before any client: MRs registered before the attach are unknown to it. */
	tfd = dd_umem_trace_start(m->cfg.mr_tracer);
	if (tfd >= 0) {
		ev = (struct epoll_event){ .events = EPOLLIN, .data.ptr = &ep_umem };
		epoll_ctl(m->epfd, EPOLL_CTL_ADD, tfd, &ev);
	}
	ofd = dd_opens_start();
	if (ofd >= 0) {
		ev = (struct epoll_event){ .events = EPOLLIN, .data.ptr = &ep_opens };
		epoll_ctl(m->epfd, EPOLL_CTL_ADD, ofd, &ev);
	}

	for (;;) {
		int timeout = timeout_min(timeout_min(dd_ops_tick(m), gone_tick(m)), hello_tick(m));

		timeout = timeout_min(timeout, dd_scans_tick(m));
		int n;

		if (m->listen_paused_until && (timeout < 0 || timeout > 100))
			timeout = 100;
		n = epoll_wait(m->epfd, events, 64, timeout);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			r = -errno;
			break;
		}
		for (int i = 0; i < n; i++) {
			struct dd_ep *ep = events[i].data.ptr;
			struct dd_conn *c = ep->conn;
			const char *why = NULL;
			bool closed = false; /* ep lives in c, which a close frees */

			switch (ep->type) {
			case DD_EP_LISTEN:
				conn_accept(m, listen_fd);
				break;
			case DD_EP_SIGNAL:
				dd_log(LOG_INFO, "terminating on a signal");
				goto out;
			case DD_EP_UDEV:
				dd_udev_receive(m);
				dd_opens_refresh(); /* a device-dax node may have come */
				break;
			case DD_EP_OPENS:
				dd_opens_receive();
				break;
			case DD_EP_WORKER:
				dd_ops_work_done(m);
				break;
			case DD_EP_SCAN:
				dd_scans_done(m);
				break;
			case DD_EP_UMEM:
				dd_umem_trace_loaded();
				break;
			case DD_EP_PIDFD:
				conn_close(m, c, NULL, false);
				closed = true;
				break;
			case DD_EP_SOCK:
				if ((events[i].events & EPOLLOUT) && !dd_conn_flush(c)) {
					conn_close(m, c, NULL, true);
					closed = true;
					break;
				}
				if (events[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
					bool hangup = false;

					if (!conn_receive(m, c, buf, &why, &hangup)) {
						conn_close(m, c, why, hangup);
						closed = true;
						break;
					}
				}
				if (c->closing || (c->request_done && !c->out)) {
					conn_close(m, c, NULL, false);
					closed = true;
				}
				break;
			}
			/*
			 * A close frees the connection (or sets it aside without its
			 * socket): later events of this batch may name it (its pidfd
			 * and its socket both fired). Stop the batch and let epoll
			 * report what is still there. Otherwise the whole batch is
			 * served, one datagram per connection: a client streaming
			 * pins cannot keep the listening socket and the other
			 * connections waiting (a new client's HELLO has 2 s).
			 */
			if (closed)
				break;
		}
		/* Requests answered by an op or a timeout: close those connections. */
		for (struct dd_conn *c = m->conns, *next; c; c = next) {
			next = c->next;
			if (c->closing || (c->request_done && !c->out))
				conn_close(m, c, NULL, false);
		}
	}
out:
	while (m->conns)
		conn_close(m, m->conns, NULL, false);
	while (m->gone_conns)
		conn_finish(m, m->gone_conns, NULL, !dd_process_alive(m->gone_conns));
	if (m->reserve_fd >= 0)
		close(m->reserve_fd);
	m->reserve_fd = -1;
	dd_udev_close();
	dd_opens_stop();
	dd_ops_stop(m);
	dd_scan_exit(m);
	dd_worker_exit();
	close(sfd);
	close(m->epfd);
	m->epfd = -1;
	free(buf);
	return r;
}
