/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * One connection (conn.h): its output queue -- exact-size buffers, at most
 * max_output bytes, flushed on EPOLLOUT -- its replies, and what it saw.
 */
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <time.h>
#include <unistd.h>

#include "conn.h"
#include "log.h"

static void conn_update_events(struct dd_conn *c)
{
	struct epoll_event ev = { .events = EPOLLIN | (c->out ? EPOLLOUT : 0),
				  .data.ptr = &c->ep_sock };

	epoll_ctl(c->epfd, EPOLL_CTL_MOD, c->fd, &ev);
}

bool dd_conn_flush(struct dd_conn *c)
{
	while (c->out) {
		struct dd_outbuf *b = c->out;
		ssize_t n = send(c->fd, b->data, b->len, MSG_NOSIGNAL | MSG_DONTWAIT);

		if (n < 0) {
			if (errno == EAGAIN || errno == EINTR)
				break;
			/* Its peer closed the socket: a hangup, found by a send. */
			c->hung_up = errno == EPIPE || errno == ECONNRESET;
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

void dd_conn_drop_output(struct dd_conn *c)
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
	if (!dd_conn_flush(c)) {
		c->closing = true;
	} else if (c->out_bytes > c->max_output) {
		dd_log(LOG_WARNING, "pid %d (%s) uid %u: does not read what it is sent (%zu bytes "
				    "queued, max_output %zu): dropped",
		       (int)c->cred.pid, c->comm, (unsigned)c->cred.uid, c->out_bytes,
		       c->max_output);
		c->closing = true;
		dd_conn_drop_output(c);
	}
	return 0;
}

void dd_conn_reply(struct dd_conn *c, int status, json_object *doc)
{
	const char *text = json_object_to_json_string_ext(doc, JSON_C_TO_STRING_PLAIN |
								       JSON_C_TO_STRING_NOSLASHESCAPE);
	size_t len = strlen(text), off = 0;

	/* Chunk headers included, a reply over max_output could never be queued whole. */
	if (len + (len / DP_PROTO_MAX_TEXT + 1) * 32 > c->max_output) {
		dd_conn_reply_error(c, -EFBIG, "the reply is %zu bytes, more than max_output (%zu); "
					       "ask about one target", len, c->max_output);
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

void dd_conn_free_holdings(struct dd_conn *c)
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

void dd_conn_note_seen(struct dd_conn *c, uint64_t dev, uint64_t ino, uint64_t rdev)
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

void dd_conn_refuse(struct dd_conn *c, uint32_t type, uint64_t id, int status, const char *fmt,
		    ...)
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

static bool seen_is(const struct dd_seen *e, uint64_t dev, uint64_t ino, uint64_t rdev)
{
	return (e->dev == dev && e->ino == ino) || (rdev && e->rdev == rdev);
}

bool dd_conn_has_seen(const struct dd_conn *c, uint64_t dev, uint64_t ino, uint64_t rdev)
{
	if (c->seen_overflow)
		return true;
	for (size_t i = 0; i < c->n_seen; i++)
		if (seen_is(&c->seen[i], dev, ino, rdev))
			return true;
	return false;
}

uint64_t dd_conn_seen_since(const struct dd_conn *c, uint64_t dev, uint64_t ino, uint64_t rdev)
{
	uint64_t first = 0;

	for (size_t i = 0; i < c->n_seen; i++)
		if (seen_is(&c->seen[i], dev, ino, rdev) &&
		    (!first || c->seen[i].first_ns < first))
			first = c->seen[i].first_ns;
	return first;
}
