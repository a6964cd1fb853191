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
 * connection queue flushed on EPOLLOUT.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "daxpoold.h"

struct dd_conn *dd_conns;
static int epfd = -1;

static void conn_update_events(struct dd_conn *c)
{
	struct epoll_event ev = { .events = EPOLLIN | (c->out ? EPOLLOUT : 0),
				  .data.ptr = &c->ep_sock };

	epoll_ctl(epfd, EPOLL_CTL_MOD, c->fd, &ev);
}

/* Send what is queued; false if the connection failed. */
static bool conn_flush(struct dd_conn *c)
{
	while (c->out) {
		struct dd_outbuf *b = c->out;
		ssize_t n = send(c->fd, b->data, b->len, MSG_NOSIGNAL | MSG_DONTWAIT);

		if (n < 0) {
			if (errno == EAGAIN || errno == EINTR)
				break;
			return false;
		}
		c->out = b->next;
		if (!c->out)
			c->out_tail = &c->out;
		free(b);
	}
	conn_update_events(c);
	return true;
}

int dd_conn_send(struct dd_conn *c, const struct dp_msg *m)
{
	struct dd_outbuf *b = malloc(sizeof(*b) + DP_PROTO_MAX_DGRAM);
	int n;

	if (!b)
		return -ENOMEM;
	n = dp_proto_encode(m, ++c->seq, b->data, DP_PROTO_MAX_DGRAM);
	if (n < 0) {
		free(b);
		return n;
	}
	b->len = (size_t)n;
	b->next = NULL;
	*c->out_tail = b;
	c->out_tail = &b->next;
	if (!conn_flush(c))
		c->closing = true;
	return 0;
}

void dd_conn_reply(struct dd_conn *c, int status, json_object *doc)
{
	const char *text = json_object_to_json_string_ext(doc, JSON_C_TO_STRING_PLAIN |
								       JSON_C_TO_STRING_NOSLASHESCAPE);
	size_t len = strlen(text), off = 0;

	do {
		struct dp_msg m = { .type = DP_MSG_REPLY };
		size_t n = len - off > DP_PROTO_MAX_TEXT ? DP_PROTO_MAX_TEXT : len - off;

		m.reply.status = status;
		m.reply.flags = off + n < len ? DP_REPLY_MORE : 0;
		m.reply.text = text + off;
		m.reply.text_len = (uint32_t)n;
		if (dd_conn_send(c, &m) < 0) {
			c->closing = true;
			break;
		}
		off += n;
	} while (off < len);
	c->request_done = true;
}

void dd_conn_reply_error(struct dd_conn *c, int status, const char *fmt, ...)
{
	json_object *o = json_object_new_object();
	char buf[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	json_object_object_add(o, "error", json_object_new_string(buf));
	json_object_object_add(o, "errno", json_object_new_string(strerrorname_np(-status)
									  ? strerrorname_np(-status)
									  : "?"));
	dd_conn_reply(c, status, o);
	json_object_put(o);
}

bool dd_process_alive(struct dd_conn *c)
{
	struct epoll_event ev;
	int tmp, r;

	if (c->pidfd < 0)
		return kill(c->cred.pid, 0) == 0 || errno == EPERM;
	/* A pidfd becomes readable when its process exits. */
	tmp = epoll_create1(EPOLL_CLOEXEC);
	if (tmp < 0)
		return true;
	ev = (struct epoll_event){ .events = EPOLLIN };
	epoll_ctl(tmp, EPOLL_CTL_ADD, c->pidfd, &ev);
	r = epoll_wait(tmp, &ev, 1, 0);
	close(tmp);
	return r <= 0;
}

static void conn_free_holdings(struct dd_conn *c)
{
	while (c->regions) {
		struct dd_region *r = c->regions;

		c->regions = r->next;
		free(r);
	}
	dd_idmap_clear(&c->maps);
	dd_idmap_clear(&c->pins);
	free(c->seen);
	c->seen = NULL;
	c->n_seen = 0;
}

/* Remember that @c registered (dev, ino): it stays a possible holder after dropping it. */
static void conn_note_seen(struct dd_conn *c, uint64_t dev, uint64_t ino)
{
	struct dd_seen *ns;
	struct timespec ts;

	if (dd_conn_has_seen(c, dev, ino))
		return;
	if (c->n_seen >= DD_SEEN_MAX || !(ns = realloc(c->seen, (c->n_seen + 1) * sizeof(*ns)))) {
		/* Cannot remember it: count the client as a possible holder of everything. */
		c->seen_overflow = true;
		return;
	}
	clock_gettime(CLOCK_REALTIME, &ts);
	c->seen = ns;
	c->seen[c->n_seen++] = (struct dd_seen){ dev, ino,
						 (uint64_t)ts.tv_sec * 1000000000u +
							 (uint64_t)ts.tv_nsec };
}

static void conn_close(struct dd_conn *c, const char *why)
{
	struct dd_conn **pp;
	bool dead = !dd_process_alive(c);

	if (c->role == DP_ROLE_CLIENT || why)
		dd_log(why ? LOG_WARNING : LOG_INFO, "pid %d (%s) uid %u: %s%s", (int)c->cred.pid,
		       c->comm, (unsigned)c->cred.uid, why ? why : "disconnected",
		       dead ? " (process exited): holdings dropped" : "");
	dd_op_conn_gone(c, dead);
	for (pp = &dd_conns; *pp; pp = &(*pp)->next) {
		if (*pp == c) {
			*pp = c->next;
			break;
		}
	}
	epoll_ctl(epfd, EPOLL_CTL_DEL, c->fd, NULL);
	close(c->fd);
	if (c->pidfd >= 0) {
		epoll_ctl(epfd, EPOLL_CTL_DEL, c->pidfd, NULL);
		close(c->pidfd);
	}
	conn_free_holdings(c);
	while (c->out) {
		struct dd_outbuf *b = c->out;

		c->out = b->next;
		free(b);
	}
	free(c);
}

static void conn_accept(int lfd)
{
	struct epoll_event ev;
	struct dd_conn *c;
	socklen_t len;
	int fd;

	fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
	if (fd < 0)
		return;
	c = calloc(1, sizeof(*c));
	if (!c) {
		close(fd);
		return;
	}
	c->fd = fd;
	c->pidfd = -1;
	c->out_tail = &c->out;
	c->connected_ns = dd_now_ns();
	len = sizeof(c->cred);
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &c->cred, &len) < 0 || c->cred.pid <= 0) {
		dd_log(LOG_WARNING, "connection without peer credentials refused");
		close(fd);
		free(c);
		return;
	}
	dd_proc_comm(c->cred.pid, c->comm, sizeof(c->comm));
	c->ep_sock = (struct dd_ep){ DD_EP_SOCK, c };
	c->ep_pid = (struct dd_ep){ DD_EP_PIDFD, c };
	ev = (struct epoll_event){ .events = EPOLLIN, .data.ptr = &c->ep_sock };
	epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev);
	c->pidfd = (int)syscall(SYS_pidfd_open, c->cred.pid, 0);
	if (c->pidfd >= 0) {
		ev = (struct epoll_event){ .events = EPOLLIN, .data.ptr = &c->ep_pid };
		epoll_ctl(epfd, EPOLL_CTL_ADD, c->pidfd, &ev);
	} else {
		dd_log(LOG_WARNING, "pidfd_open(%d): %s: a dead client is noticed only when its "
				    "socket closes", (int)c->cred.pid, strerror(errno));
	}
	c->next = dd_conns;
	dd_conns = c;
	dd_log(LOG_DEBUG, "connection from pid %d (%s) uid %u", (int)c->cred.pid, c->comm,
	       (unsigned)c->cred.uid);
}

static struct dd_region *conn_region(struct dd_conn *c, uint64_t id)
{
	for (struct dd_region *r = c->regions; r; r = r->next)
		if (r->id == id)
			return r;
	return NULL;
}

static int holding_add(struct dd_conn *c, const struct dp_msg *m)
{
	struct dd_holding *h = calloc(1, sizeof(*h));
	bool pin = m->type == DP_MSG_PIN_ADD;

	if (!h)
		return -ENOMEM;
	if (pin) {
		h->id = m->pin_add.id;
		h->region_id = m->pin_add.region_id;
		h->offset = m->pin_add.offset;
		h->length = m->pin_add.length;
		h->created_ns = m->pin_add.created_ns;
		h->kind = m->pin_add.kind;
		h->access = m->pin_add.access;
		h->tid = m->pin_add.tid;
	} else {
		h->id = m->map_add.id;
		h->region_id = m->map_add.region_id;
		h->offset = m->map_add.offset;
		h->length = m->map_add.length;
		h->created_ns = m->map_add.created_ns;
		h->tid = m->map_add.tid;
	}
	if (!conn_region(c, h->region_id)) {
		free(h);
		return -EPROTO; /* a map or pin of a region it never registered */
	}
	dd_idmap_put(pin ? &c->pins : &c->maps, h);
	return 0;
}

/* Handle one message; < 0 closes the connection (the reason is logged). */
static int conn_handle(struct dd_conn *c, const struct dp_msg *m)
{
	struct dd_region *r, **pp;

	if (!c->role) {
		if (m->type != DP_MSG_HELLO)
			return -EPROTO;
		c->role = m->hello.role;
		return dd_conn_send(c, &(struct dp_msg){ .type = DP_MSG_HELLO_OK,
							 .hello_ok.version = DP_PROTO_VERSION });
	}
	if (c->role == DP_ROLE_CTL) {
		if (c->request_done || c->op)
			return -EPROTO; /* one request per connection */
		if (m->type == DP_MSG_STATUS) {
			dd_status(c, m->status.target);
			return 0;
		}
		if (m->type == DP_MSG_OP) {
			dd_op_start(c, m);
			return 0;
		}
		return -EPROTO;
	}
	switch (m->type) {
	case DP_MSG_REGION_ADD:
		r = conn_region(c, m->region_add.id);
		if (!r) {
			r = calloc(1, sizeof(*r));
			if (!r)
				return -ENOMEM;
			r->next = c->regions;
			c->regions = r;
		}
		r->id = m->region_add.id;
		r->dev = m->region_add.dev;
		r->ino = m->region_add.ino;
		r->rdev = m->region_add.rdev;
		r->size = m->region_add.size;
		r->kind = m->region_add.kind;
		memcpy(r->path, m->region_add.path, sizeof(r->path));
		memcpy(r->devname, m->region_add.devname, sizeof(r->devname));
		conn_note_seen(c, r->dev, r->ino);
		dd_op_region_added(c, r);
		return 0;
	case DP_MSG_REGION_STATE:
		r = conn_region(c, m->region_state.region_id);
		if (!r)
			return 0; /* a region it already dropped */
		if (r->lease_breaks < m->region_state.lease_breaks)
			dd_log(LOG_NOTICE, "pid %d (%s): gave its lease on %s up to another process "
					   "after draining (%llu so far)",
			       (int)c->cred.pid, c->comm, r->path,
			       (unsigned long long)m->region_state.lease_breaks);
		r->lease = m->region_state.lease;
		r->lease_error = m->region_state.lease_error;
		r->lease_breaks = m->region_state.lease_breaks;
		return 0;
	case DP_MSG_REGION_DEL:
		for (pp = &c->regions; *pp; pp = &(*pp)->next) {
			if ((*pp)->id == m->del.id) {
				r = *pp;
				*pp = r->next;
				free(r);
				break;
			}
		}
		return 0;
	case DP_MSG_MAP_ADD:
	case DP_MSG_PIN_ADD:
		return holding_add(c, m);
	case DP_MSG_MAP_DEL:
		free(dd_idmap_take(&c->maps, m->del.id));
		return 0;
	case DP_MSG_PIN_DEL:
		free(dd_idmap_take(&c->pins, m->del.id));
		return 0;
	case DP_MSG_REVOKE_DONE:
		dd_op_revoke_done(c, m->revoke_done.req, m->revoke_done.region_id,
				  m->revoke_done.status);
		return 0;
	default:
		return -EPROTO;
	}
}

/* Read one datagram. Return false to close the connection (why set). */
static bool conn_receive(struct dd_conn *c, uint8_t *buf, const char **why)
{
	static struct dp_msg m; /* one thread; too big for the stack many times over */
	size_t off = 0;
	ssize_t n;
	int r;

	n = recv(c->fd, buf, DP_PROTO_MAX_DGRAM, MSG_DONTWAIT | MSG_TRUNC);
	if (n < 0)
		return errno == EAGAIN || errno == EINTR;
	if (n == 0) {
		*why = NULL;
		return false;
	}
	if (n > DP_PROTO_MAX_DGRAM) {
		*why = "protocol error: oversized datagram";
		return false;
	}
	while (off < (size_t)n) {
		r = dp_proto_decode(buf + off, (size_t)n - off, &m);
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
			return false;
		}
		off += (size_t)r;
		r = conn_handle(c, &m);
		if (r < 0) {
			*why = r == -EPROTO ? "protocol error: unexpected message" : "out of memory";
			return false;
		}
	}
	return true;
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

int dd_server_run(int listen_fd)
{
	struct dd_ep ep_listen = { DD_EP_LISTEN, NULL }, ep_sig = { DD_EP_SIGNAL, NULL };
	struct dd_ep ep_udev = { DD_EP_UDEV, NULL };
	struct epoll_event ev, events[64];
	uint8_t *buf = malloc(DP_PROTO_MAX_DGRAM);
	int sfd, ufd, r = 0;

	epfd = epoll_create1(EPOLL_CLOEXEC);
	sfd = signal_fd();
	if (!buf || epfd < 0 || sfd < 0) {
		dd_log(LOG_ERR, "event loop setup: %s", strerror(errno));
		free(buf);
		return -ENOMEM;
	}
	ev = (struct epoll_event){ .events = EPOLLIN, .data.ptr = &ep_listen };
	epoll_ctl(epfd, EPOLL_CTL_ADD, listen_fd, &ev);
	ev = (struct epoll_event){ .events = EPOLLIN, .data.ptr = &ep_sig };
	epoll_ctl(epfd, EPOLL_CTL_ADD, sfd, &ev);
	ufd = dd_udev_open();
	if (ufd >= 0) {
		ev = (struct epoll_event){ .events = EPOLLIN, .data.ptr = &ep_udev };
		epoll_ctl(epfd, EPOLL_CTL_ADD, ufd, &ev);
	}

	for (;;) {
		int n = epoll_wait(epfd, events, 64, dd_ops_tick());

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
			int type = ep->type; /* ep lives in c, which a close frees */

			switch (type) {
			case DD_EP_LISTEN:
				conn_accept(listen_fd);
				break;
			case DD_EP_SIGNAL:
				dd_log(LOG_INFO, "terminating on a signal");
				goto out;
			case DD_EP_UDEV:
				dd_udev_receive();
				break;
			case DD_EP_PIDFD:
				conn_close(c, NULL);
				break;
			case DD_EP_SOCK:
				if ((events[i].events & EPOLLOUT) && !conn_flush(c)) {
					conn_close(c, NULL);
					break;
				}
				if (events[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
					if (!conn_receive(c, buf, &why)) {
						conn_close(c, why);
						break;
					}
				}
				if (c->closing || (c->request_done && !c->out))
					conn_close(c, NULL);
				break;
			}
			/*
			 * A close frees the connection: later events of this batch may
			 * name it (its pidfd and its socket both fired). Stop the batch
			 * and let epoll report what is still there.
			 */
			if (type == DD_EP_PIDFD || type == DD_EP_SOCK)
				break;
		}
		/* Requests answered by an op or a timeout: close those connections. */
		for (struct dd_conn *c = dd_conns, *next; c; c = next) {
			next = c->next;
			if (c->closing || (c->request_done && !c->out))
				conn_close(c, NULL);
		}
	}
out:
	while (dd_conns)
		conn_close(dd_conns, NULL);
	dd_udev_close();
	close(sfd);
	close(epfd);
	free(buf);
	return r;
}
