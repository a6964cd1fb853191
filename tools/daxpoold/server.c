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
 * through that descriptor (statx without a sync: a FUSE server cannot stall
 * us), never the client's word. The descriptor is closed at once.
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

#include "daxpoold.h"

#ifndef STATX_ATTR_DAX
#define STATX_ATTR_DAX 0x00200000
#endif

#define ROOT_SPARE 16	   /* root's connections beyond max_connections */
#define GONE_WAIT_MS 2000 /* a hung-up client's process has this long to exit */

struct dd_conn *dd_conns;
static struct dd_conn *gone_conns; /* hung up while draining, waiting for the pidfd */
static int epfd = -1;
static int reserve_fd = -1; /* kept for accept4()'s EMFILE */
static bool nofile_logged;
static uint64_t listen_paused_until; /* no reserve to be had: accept nothing until then */

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
		c->out_bytes -= b->len;
		free(b);
	}
	conn_update_events(c);
	return true;
}

static void outbuf_free(struct dd_conn *c)
{
	while (c->out) {
		struct dd_outbuf *b = c->out;

		c->out = b->next;
		free(b);
	}
	c->out_tail = &c->out;
	c->out_bytes = 0;
}

int dd_conn_send(struct dd_conn *c, const struct dp_msg *m)
{
	static uint8_t enc[DP_PROTO_MAX_DGRAM]; /* one thread */
	struct dd_outbuf *b;
	int n;

	if (c->fd < 0 || c->closing)
		return 0; /* hung up, or being dropped: nobody reads it */
	n = dp_proto_encode(m, ++c->seq, enc, sizeof(enc));
	if (n < 0)
		return n;
	b = malloc(sizeof(*b) + (size_t)n);
	if (!b)
		return -ENOMEM;
	memcpy(b->data, enc, (size_t)n);
	b->len = (size_t)n;
	b->next = NULL;
	*c->out_tail = b;
	c->out_tail = &b->next;
	c->out_bytes += b->len;
	if (!conn_flush(c)) {
		c->closing = true;
	} else if (c->out_bytes > dd_cfg.max_output) {
		dd_log(LOG_WARNING, "pid %d (%s) uid %u: does not read what it is sent (%zu bytes "
				    "queued, max_output %zu): dropped",
		       (int)c->cred.pid, c->comm, (unsigned)c->cred.uid, c->out_bytes,
		       dd_cfg.max_output);
		c->closing = true;
		outbuf_free(c);
	}
	return 0;
}

void dd_conn_reply(struct dd_conn *c, int status, json_object *doc)
{
	const char *text = json_object_to_json_string_ext(doc, JSON_C_TO_STRING_PLAIN |
								       JSON_C_TO_STRING_NOSLASHESCAPE);
	size_t len = strlen(text), off = 0;

	/* Chunk headers included, a reply over max_output could never be queued whole. */
	if (len + (len / DP_PROTO_MAX_TEXT + 1) * 32 > dd_cfg.max_output) {
		dd_conn_reply_error(c, -EFBIG, "the reply is %zu bytes, more than max_output (%zu); "
					       "ask about one target", len, dd_cfg.max_output);
		return;
	}
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
	dd_regmap_clear(&c->region_ids);
	dd_idmap_clear(&c->maps);
	dd_idmap_clear(&c->pins);
	free(c->seen);
	c->seen = NULL;
	c->n_seen = 0;
}

/* Remember that @c registered (dev, ino): it stays a possible holder after dropping it. */
static void conn_note_seen(struct dd_conn *c, uint64_t dev, uint64_t ino, uint64_t rdev)
{
	struct dd_seen *ns;
	struct timespec ts;

	if (dd_conn_has_seen(c, dev, ino, 0))
		return;
	if (c->n_seen >= DD_SEEN_MAX || !(ns = realloc(c->seen, (c->n_seen + 1) * sizeof(*ns)))) {
		/* Cannot remember it: count the client as a possible holder of everything. */
		c->seen_overflow = true;
		return;
	}
	clock_gettime(CLOCK_REALTIME, &ts);
	c->seen = ns;
	c->seen[c->n_seen++] = (struct dd_seen){ dev, ino, rdev,
						 (uint64_t)ts.tv_sec * 1000000000u +
							 (uint64_t)ts.tv_nsec };
}

/* Whether a drain waits for @c (a REVOKE it has not answered). */
static bool conn_draining(const struct dd_conn *c)
{
	for (struct dd_op *op = dd_ops; op; op = op->next)
		for (struct dd_pend *p = op->pend; p; p = p->next)
			if (p->conn == c && !p->done)
				return true;
	return false;
}

static void conn_unlink(struct dd_conn *c)
{
	struct dd_conn **lists[] = { &dd_conns, &gone_conns };

	for (size_t i = 0; i < 2; i++) {
		for (struct dd_conn **pp = lists[i]; *pp; pp = &(*pp)->next) {
			if (*pp == c) {
				*pp = c->next;
				return;
			}
		}
	}
}

static void conn_finish(struct dd_conn *c, const char *why, bool dead)
{
	if (c->role == DP_ROLE_CLIENT || why)
		dd_log(why ? LOG_WARNING : LOG_INFO, "pid %d (%s) uid %u: %s%s", (int)c->cred.pid,
		       c->comm, (unsigned)c->cred.uid, why ? why : "disconnected",
		       dead ? " (process exited): holdings dropped" : "");
	dd_op_conn_gone(c, dead);
	conn_unlink(c);
	if (c->fd >= 0) {
		epoll_ctl(epfd, EPOLL_CTL_DEL, c->fd, NULL);
		close(c->fd);
	}
	if (c->pidfd >= 0) {
		epoll_ctl(epfd, EPOLL_CTL_DEL, c->pidfd, NULL);
		close(c->pidfd);
	}
	conn_free_holdings(c);
	outbuf_free(c);
	free(c);
}

/*
 * Close @c. @hangup: its peer closed the socket. A client that hangs up in a
 * drain while its process still runs waits aside for its pidfd (see the top).
 */
static void conn_close(struct dd_conn *c, const char *why, bool hangup)
{
	bool dead = !dd_process_alive(c);

	if (hangup && !dead && c->fd >= 0 && c->pidfd >= 0 && conn_draining(c)) {
		conn_unlink(c);
		epoll_ctl(epfd, EPOLL_CTL_DEL, c->fd, NULL);
		close(c->fd);
		c->fd = -1;
		outbuf_free(c);
		c->gone_deadline_ns = dd_now_ns() + GONE_WAIT_MS * 1000000ull;
		c->next = gone_conns;
		gone_conns = c;
		dd_log(LOG_DEBUG, "pid %d (%s): hung up while draining; waiting for it to exit",
		       (int)c->cred.pid, c->comm);
		return;
	}
	conn_finish(c, why, dead);
}

/* Decide for the hung-up clients whose wait is over; ms to the next deadline (-1: none). */
static int gone_tick(void)
{
	uint64_t now = dd_now_ns(), next = UINT64_MAX;

	for (struct dd_conn *c = gone_conns, *n; c; c = n) {
		n = c->next;
		if (now >= c->gone_deadline_ns) {
			bool dead = !dd_process_alive(c);

			conn_finish(c, dead ? NULL
					    : "hung up while draining and its process did not exit",
				    dead);
		} else if (c->gone_deadline_ns < next) {
			next = c->gone_deadline_ns;
		}
	}
	return next == UINT64_MAX ? -1 : (int)((next - now + 999999) / 1000000);
}

/* Send REFUSED; the first of each kind per connection is logged too. */
static void conn_refuse(struct dd_conn *c, uint32_t type, uint64_t id, int status,
			const char *fmt, ...) __attribute__((format(printf, 5, 6)));
static void conn_refuse(struct dd_conn *c, uint32_t type, uint64_t id, int status,
			const char *fmt, ...)
{
	struct dp_msg m = { .type = DP_MSG_REFUSED };
	va_list ap;

	m.refused.type = type;
	m.refused.id = id;
	m.refused.status = status;
	va_start(ap, fmt);
	vsnprintf(m.refused.reason, sizeof(m.refused.reason), fmt, ap);
	va_end(ap);
	if (type < 32 && !(c->refused_logged & (1u << type))) {
		c->refused_logged |= 1u << type;
		dd_log(LOG_WARNING, "pid %d (%s) uid %u: %s %llu refused: %s (further refusals of "
				    "this kind are not logged)",
		       (int)c->cred.pid, c->comm, (unsigned)c->cred.uid, dp_proto_type_name(type),
		       (unsigned long long)id, m.refused.reason);
	}
	dd_conn_send(c, &m);
}

/* accept4() failed with EMFILE or ENFILE: take the connection with the reserve, and close it. */
static void accept_without_fds(int lfd, int err)
{
	int fd;

	if (!nofile_logged) {
		dd_log(LOG_ERR, "accept: %s: out of file descriptors; refusing connections until "
				"some close (raise LimitNOFILE= or lower max_connections)",
		       strerror(err));
		nofile_logged = true;
	}
	if (reserve_fd < 0) {
		listen_paused_until = dd_now_ns() + 100 * 1000000ull;
		return;
	}
	close(reserve_fd);
	fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
	if (fd >= 0)
		close(fd);
	reserve_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	if (reserve_fd < 0 || fd < 0)
		listen_paused_until = dd_now_ns() + 100 * 1000000ull;
}

/* Why a new connection of @uid is refused (into @why), or NULL. */
static const char *conn_over_limit(uid_t uid, char *why, size_t size)
{
	unsigned int total = 0, of_uid = 0;
	struct dd_conn *lists[] = { dd_conns, gone_conns };

	for (size_t i = 0; i < 2; i++) {
		for (struct dd_conn *c = lists[i]; c; c = c->next) {
			total++;
			of_uid += c->cred.uid == uid;
		}
	}
	if (uid != 0 && of_uid >= dd_cfg.max_connections_per_uid)
		snprintf(why, size, "uid %u has %u connections (max_connections_per_uid)",
			 (unsigned)uid, of_uid);
	else if (total >= dd_cfg.max_connections + (uid == 0 ? ROOT_SPARE : 0))
		snprintf(why, size, "the daemon has %u connections (max_connections)", total);
	else
		return NULL;
	return why;
}

static void conn_accept(int lfd)
{
	struct epoll_event ev;
	struct dd_conn *c;
	struct ucred cred;
	socklen_t len;
	char why[160];
	int fd;

	if (listen_paused_until && dd_now_ns() < listen_paused_until)
		return;
	listen_paused_until = 0;
	fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
	if (fd < 0) {
		if (errno == EMFILE || errno == ENFILE)
			accept_without_fds(lfd, errno);
		return;
	}
	nofile_logged = false;
	len = sizeof(cred);
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0 || cred.pid <= 0) {
		dd_log(LOG_WARNING, "connection without peer credentials refused");
		close(fd);
		return;
	}
	if (conn_over_limit(cred.uid, why, sizeof(why))) {
		struct dp_msg m = { .type = DP_MSG_REFUSED };
		static uint64_t logged_ns;

		/* Said once a second at most: a flood must not flood the log too. */
		if (!logged_ns || dd_now_ns() - logged_ns > 1000000000ull) {
			dd_log(LOG_WARNING, "connection from pid %d uid %u refused: %s",
			       (int)cred.pid, (unsigned)cred.uid, why);
			logged_ns = dd_now_ns();
		}
		m.refused.type = DP_MSG_HELLO;
		m.refused.status = -EUSERS;
		snprintf(m.refused.reason, sizeof(m.refused.reason), "%s", why);
		dp_proto_send(fd, &m, 0); /* a fresh non-blocking socket: room for it */
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
	c->out_tail = &c->out;
	c->connected_ns = dd_now_ns();
	c->cred = cred;
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
	return dd_regmap_get(&c->region_ids, id);
}

/* The size of the device-dax device @rdev from sysfs; 0 if unknown. */
static uint64_t devdax_size(dev_t rdev)
{
	char path[96], buf[32];
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "/sys/dev/char/%u:%u/size", major(rdev), minor(rdev));
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return 0;
	buf[n] = '\0';
	return strtoull(buf, NULL, 10);
}

/*
 * What the descriptor @fd a client passed is, from the kernel: into @r (dev,
 * ino, rdev, size, kind, devname, path). Return 0, or -EINVAL (neither a
 * regular file nor a device-dax device; @why says what it is), -errno.
 */
static int region_identify(int fd, struct dd_region *r, char *why, size_t size)
{
	struct statx stx;
	char link[32];
	ssize_t n;
	int ret;

	/* No sync: a network or FUSE filesystem is not asked (dev, ino, mode are the inode's). */
	if (statx(fd, "", AT_EMPTY_PATH | AT_STATX_DONT_SYNC,
		  STATX_TYPE | STATX_MODE | STATX_INO | STATX_SIZE | STATX_UID, &stx) < 0) {
		ret = -errno;
		snprintf(why, size, "statx of its descriptor: %s", strerror(-ret));
		return ret;
	}
	r->dev = makedev(stx.stx_dev_major, stx.stx_dev_minor);
	r->ino = stx.stx_ino;
	r->rdev = makedev(stx.stx_rdev_major, stx.stx_rdev_minor);
	r->owner_uid = stx.stx_uid;
	r->devname[0] = '\0';
	if (S_ISREG(stx.stx_mode)) {
		r->kind = (stx.stx_attributes_mask & STATX_ATTR_DAX) &&
					  (stx.stx_attributes & STATX_ATTR_DAX)
				  ? 2 /* DAXPOOL_REGION_FSDAX */
				  : 1; /* DAXPOOL_REGION_FILE */
		r->size = stx.stx_size;
	} else if (S_ISCHR(stx.stx_mode)) {
		/* The kernel names the device: sysfs of its rdev, verified as dax. */
		ret = dd_devdax_name((dev_t)r->rdev, r->devname, sizeof(r->devname));
		if (ret < 0) {
			snprintf(why, size, "its descriptor is a character device %u:%u that is "
					    "not device-dax (%s)",
				 major(r->rdev), minor(r->rdev), strerror(-ret));
			return -EINVAL;
		}
		r->kind = 3; /* DAXPOOL_REGION_DEVDAX */
		r->size = devdax_size((dev_t)r->rdev);
	} else {
		snprintf(why, size, "its descriptor is neither a regular file nor a device-dax "
				    "device (mode %#o)", (unsigned)stx.stx_mode & S_IFMT);
		return -EINVAL;
	}
	/* For display only: what the kernel calls it from here (a deleted file says so). */
	snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
	n = readlink(link, r->path, sizeof(r->path) - 1);
	if (n < 0 || r->path[0] != '/')
		n = snprintf(r->path, sizeof(r->path), "/?(unnamed: device %u:%u inode %llu)",
			     major(r->dev), minor(r->dev), (unsigned long long)r->ino);
	r->path[n] = '\0';
	return 0;
}

/* REGION_ADD @id with the descriptor @fd (-1: none came). Return < 0 to close the connection. */
static int region_add(struct dd_conn *c, uint64_t id, int fd)
{
	struct dd_region *r = conn_region(c, id), tmp = { 0 };
	char why[192];
	int ret;

	if (fd < 0) {
		c->regions_refused = true;
		conn_refuse(c, DP_MSG_REGION_ADD, id, -EBADF,
			    "no descriptor came with it: a registration proves access with the "
			    "region's open file (SCM_RIGHTS); nothing recorded");
		return 0;
	}
	ret = region_identify(fd, &tmp, why, sizeof(why));
	if (ret < 0) {
		c->regions_refused = true;
		conn_refuse(c, DP_MSG_REGION_ADD, id, ret, "%s; nothing recorded", why);
		return 0;
	}
	if (!r) {
		if (c->region_ids.n >= dd_cfg.max_regions) {
			c->regions_refused = true;
			conn_refuse(c, DP_MSG_REGION_ADD, id, -EDQUOT,
				    "more than %u regions (max_regions): not recorded; a release "
				    "counts this process as one outside daxpool",
				    dd_cfg.max_regions);
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
	memcpy(r->path, tmp.path, sizeof(r->path));
	memcpy(r->devname, tmp.devname, sizeof(r->devname));
	conn_note_seen(c, r->dev, r->ino, r->kind == 3 ? r->rdev : 0);
	dd_op_region_added(c, r);
	return 0;
}

static void region_del(struct dd_conn *c, uint64_t id)
{
	struct dd_region *r = conn_region(c, id);

	if (!r)
		return;
	/* Dropped: it holds nothing of a drain that waits for it. */
	if (r->revoke_req)
		dd_op_revoke_done(c, r->revoke_req, r->id, 0);
	dd_regmap_del(&c->region_ids, r);
	*r->pprev = r->next;
	if (r->next)
		r->next->pprev = r->pprev;
	free(r);
}

static int holding_add(struct dd_conn *c, const struct dp_msg *m)
{
	struct dd_holding *h = calloc(1, sizeof(*h));
	bool pin = m->type == DP_MSG_PIN_ADD;
	struct dd_idmap *map;

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
		/* Of a region refused: not recorded either. Of one never registered: an error. */
		return c->regions_refused ? 0 : -EPROTO;
	}
	map = pin ? &c->pins : &c->maps;
	free(dd_idmap_take(map, h->id)); /* a second ADD of an id replaces it */
	if (map->n >= (pin ? dd_cfg.max_pins : dd_cfg.max_maps)) {
		conn_refuse(c, m->type, h->id, -EDQUOT,
			    "more than %u %s (%s): not recorded; status does not show it",
			    pin ? dd_cfg.max_pins : dd_cfg.max_maps, pin ? "pins" : "maps",
			    pin ? "max_pins" : "max_maps");
		free(h);
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
static int conn_handle(struct dd_conn *c, const struct dp_msg *m, int fd)
{
	struct dd_region *r;

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
		return region_add(c, m->region_add.id, fd);
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
		region_del(c, m->del.id);
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
static bool conn_receive(struct dd_conn *c, uint8_t *buf, const char **why, bool *hangup)
{
	static struct dp_msg m; /* one thread; too big for the stack many times over */
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
			ok = false;
			break;
		}
		off += (size_t)r;
		/* The n-th REGION_ADD of a datagram takes its n-th descriptor. */
		r = conn_handle(c, &m,
				m.type == DP_MSG_REGION_ADD && c->role == DP_ROLE_CLIENT &&
						next_fd < n_fds
					? fds[next_fd]
					: -1);
		if (m.type == DP_MSG_REGION_ADD && c->role == DP_ROLE_CLIENT && next_fd < n_fds)
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
static void nofile_setup(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 &&
	    rl.rlim_cur < 2 * ((rlim_t)dd_cfg.max_connections + ROOT_SPARE) + 64)
		dd_log(LOG_WARNING, "RLIMIT_NOFILE %llu cannot hold max_connections %u (two "
				    "descriptors each): connections beyond it are refused",
		       (unsigned long long)rl.rlim_cur, dd_cfg.max_connections);
	reserve_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
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
	struct dd_ep ep_udev = { DD_EP_UDEV, NULL }, ep_opens = { DD_EP_OPENS, NULL };
	struct dd_ep ep_worker = { DD_EP_WORKER, NULL };
	struct epoll_event ev, events[64];
	uint8_t *buf = malloc(DP_PROTO_MAX_DGRAM);
	int sfd, ufd, ofd, wfd, r = 0;

	epfd = epoll_create1(EPOLL_CLOEXEC);
	sfd = signal_fd();
	nofile_setup();
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
	wfd = dd_worker_init();
	if (wfd < 0) {
		dd_log(LOG_ERR, "worker setup: %s", strerror(-wfd));
		free(buf);
		return wfd;
	}
	ev = (struct epoll_event){ .events = EPOLLIN, .data.ptr = &ep_worker };
	epoll_ctl(epfd, EPOLL_CTL_ADD, wfd, &ev);
	ofd = dd_opens_start();
	if (ofd >= 0) {
		ev = (struct epoll_event){ .events = EPOLLIN, .data.ptr = &ep_opens };
		epoll_ctl(epfd, EPOLL_CTL_ADD, ofd, &ev);
	}

	for (;;) {
		int t_ops = dd_ops_tick(), t_gone = gone_tick(), timeout;
		int n;

		timeout = t_ops < 0 ? t_gone : t_gone < 0 || t_ops < t_gone ? t_ops : t_gone;
		if (listen_paused_until && (timeout < 0 || timeout > 100))
			timeout = 100;
		n = epoll_wait(epfd, events, 64, timeout);

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
				dd_opens_refresh(); /* a device-dax node may have come */
				break;
			case DD_EP_OPENS:
				dd_opens_receive();
				break;
			case DD_EP_WORKER:
				dd_ops_work_done();
				break;
			case DD_EP_PIDFD:
				conn_close(c, NULL, false);
				break;
			case DD_EP_SOCK:
				if ((events[i].events & EPOLLOUT) && !conn_flush(c)) {
					conn_close(c, NULL, true);
					break;
				}
				if (events[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
					bool hangup = false;

					if (!conn_receive(c, buf, &why, &hangup)) {
						conn_close(c, why, hangup);
						break;
					}
				}
				if (c->closing || (c->request_done && !c->out))
					conn_close(c, NULL, false);
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
				conn_close(c, NULL, false);
		}
	}
out:
	while (dd_conns)
		conn_close(dd_conns, NULL, false);
	while (gone_conns)
		conn_finish(gone_conns, NULL, !dd_process_alive(gone_conns));
	if (reserve_fd >= 0)
		close(reserve_fd);
	reserve_fd = -1;
	dd_udev_close();
	dd_opens_stop();
	dd_ops_stop();
	dd_worker_exit();
	close(sfd);
	close(epfd);
	free(buf);
	return r;
}
