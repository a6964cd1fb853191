/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Encoding and validating decoding of daxpoold messages (see protocol.h). */
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "protocol.h"

struct wbuf {
	uint8_t *p;
	size_t cap, off;
	int err;
};

struct rbuf {
	const uint8_t *p;
	size_t len, off;
	int err;
};

static void w_bytes(struct wbuf *w, const void *src, size_t n)
{
	if (w->err)
		return;
	if (n > w->cap - w->off) {
		w->err = -ENOBUFS;
		return;
	}
	memcpy(w->p + w->off, src, n);
	w->off += n;
}

static void w_u16(struct wbuf *w, uint16_t v)
{
	uint8_t b[2] = { (uint8_t)v, (uint8_t)(v >> 8) };

	w_bytes(w, b, 2);
}

static void w_u32(struct wbuf *w, uint32_t v)
{
	uint8_t b[4];

	for (int i = 0; i < 4; i++)
		b[i] = (uint8_t)(v >> (8 * i));
	w_bytes(w, b, 4);
}

static void w_u64(struct wbuf *w, uint64_t v)
{
	uint8_t b[8];

	for (int i = 0; i < 8; i++)
		b[i] = (uint8_t)(v >> (8 * i));
	w_bytes(w, b, 8);
}

static void w_str(struct wbuf *w, const char *s, size_t max)
{
	size_t n = strnlen(s, max + 1);

	if (n > max) {
		w->err = -EINVAL;
		return;
	}
	w_u16(w, (uint16_t)n);
	w_bytes(w, s, n);
}

static void r_bytes(struct rbuf *r, void *dst, size_t n)
{
	if (r->err)
		return;
	if (n > r->len - r->off) {
		r->err = -EINVAL;
		return;
	}
	memcpy(dst, r->p + r->off, n);
	r->off += n;
}

static uint16_t r_u16(struct rbuf *r)
{
	uint8_t b[2] = { 0, 0 };

	r_bytes(r, b, 2);
	return (uint16_t)(b[0] | (b[1] << 8));
}

static uint32_t r_u32(struct rbuf *r)
{
	uint8_t b[4] = { 0 };
	uint32_t v = 0;

	r_bytes(r, b, 4);
	for (int i = 0; i < 4; i++)
		v |= (uint32_t)b[i] << (8 * i);
	return v;
}

static uint64_t r_u64(struct rbuf *r)
{
	uint8_t b[8] = { 0 };
	uint64_t v = 0;

	r_bytes(r, b, 8);
	for (int i = 0; i < 8; i++)
		v |= (uint64_t)b[i] << (8 * i);
	return v;
}

/* A string of at most @max bytes, no NUL inside, into @dst (room for max + 1). */
static void r_str(struct rbuf *r, char *dst, size_t max)
{
	uint16_t n = r_u16(r);

	dst[0] = '\0';
	if (r->err)
		return;
	if (n > max) {
		r->err = -EINVAL;
		return;
	}
	r_bytes(r, dst, n);
	if (r->err)
		return;
	dst[n] = '\0';
	if (memchr(dst, '\0', n))
		r->err = -EINVAL;
}

const char *dp_proto_type_name(unsigned int type)
{
	static const char *const names[] = {
		[DP_MSG_HELLO] = "HELLO",	    [DP_MSG_HELLO_OK] = "HELLO_OK",
		[DP_MSG_REGION_ADD] = "REGION_ADD", [DP_MSG_REGION_DEL] = "REGION_DEL",
		[DP_MSG_MAP_ADD] = "MAP_ADD",	    [DP_MSG_MAP_DEL] = "MAP_DEL",
		[DP_MSG_PIN_ADD] = "PIN_ADD",	    [DP_MSG_PIN_DEL] = "PIN_DEL",
		[DP_MSG_REVOKE] = "REVOKE",	    [DP_MSG_REVOKE_DONE] = "REVOKE_DONE",
		[DP_MSG_UNZAP] = "UNZAP",	    [DP_MSG_STATUS] = "STATUS",
		[DP_MSG_OP] = "OP",		    [DP_MSG_REPLY] = "REPLY",
		[DP_MSG_RELEASED] = "RELEASED",	    [DP_MSG_REGION_STATE] = "REGION_STATE",
		[DP_MSG_REGION_GONE] = "REGION_GONE", [DP_MSG_REFUSED] = "REFUSED",
		[DP_MSG_PIN_OWNER] = "PIN_OWNER",
	};

	if (type == 0 || type >= DP_MSG_TYPE_END)
		return "?";
	return names[type];
}

static void encode_payload(struct wbuf *w, const struct dp_msg *m)
{
	switch (m->type) {
	case DP_MSG_HELLO:
		w_u32(w, m->hello.role);
		break;
	case DP_MSG_HELLO_OK:
		w_u32(w, m->hello_ok.version);
		break;
	case DP_MSG_REGION_ADD:
		w_u64(w, m->region_add.id);
		break;
	case DP_MSG_REFUSED:
		w_u32(w, m->refused.type);
		w_u64(w, m->refused.id);
		w_u32(w, (uint32_t)m->refused.status);
		w_str(w, m->refused.reason, DP_PROTO_MAX_REASON);
		break;
	case DP_MSG_REGION_DEL:
	case DP_MSG_MAP_DEL:
	case DP_MSG_PIN_DEL:
		w_u64(w, m->del.id);
		break;
	case DP_MSG_MAP_ADD:
		w_u64(w, m->map_add.id);
		w_u64(w, m->map_add.region_id);
		w_u64(w, m->map_add.offset);
		w_u64(w, m->map_add.length);
		w_u64(w, m->map_add.created_ns);
		w_u32(w, m->map_add.tid);
		break;
	case DP_MSG_PIN_ADD:
		w_u64(w, m->pin_add.id);
		w_u64(w, m->pin_add.region_id);
		w_u64(w, m->pin_add.offset);
		w_u64(w, m->pin_add.length);
		w_u64(w, m->pin_add.created_ns);
		w_u32(w, m->pin_add.kind);
		w_u32(w, m->pin_add.access);
		w_u32(w, m->pin_add.tid);
		break;
	case DP_MSG_PIN_OWNER:
		w_u64(w, m->pin_owner.id);
		w_str(w, m->pin_owner.text, DP_PROTO_MAX_OWNER);
		break;
	case DP_MSG_REVOKE:
	case DP_MSG_UNZAP:
	case DP_MSG_RELEASED:
		w_u64(w, m->revoke.req);
		w_u64(w, m->revoke.region_id);
		w_u64(w, m->revoke.offset);
		w_u64(w, m->revoke.length);
		break;
	case DP_MSG_REVOKE_DONE:
		w_u64(w, m->revoke_done.req);
		w_u64(w, m->revoke_done.region_id);
		w_u32(w, (uint32_t)m->revoke_done.status);
		break;
	case DP_MSG_REGION_STATE:
		w_u64(w, m->region_state.region_id);
		w_u32(w, m->region_state.lease);
		w_u32(w, (uint32_t)m->region_state.lease_error);
		w_u64(w, m->region_state.lease_breaks);
		break;
	case DP_MSG_REGION_GONE:
		w_u64(w, m->region_gone.region_id);
		w_u32(w, (uint32_t)m->region_gone.reason);
		break;
	case DP_MSG_STATUS:
		w_str(w, m->status.target, DP_PROTO_MAX_PATH);
		break;
	case DP_MSG_OP:
		w_u32(w, m->op.op);
		w_u32(w, m->op.flags);
		w_u32(w, (uint32_t)m->op.timeout_ms);
		w_u64(w, m->op.offset);
		w_u64(w, m->op.length);
		w_str(w, m->op.target, DP_PROTO_MAX_PATH);
		break;
	case DP_MSG_REPLY:
		w_u32(w, (uint32_t)m->reply.status);
		w_u32(w, m->reply.flags);
		if (m->reply.text_len > DP_PROTO_MAX_TEXT) {
			w->err = -EINVAL;
			break;
		}
		w_u32(w, m->reply.text_len);
		w_bytes(w, m->reply.text, m->reply.text_len);
		break;
	default:
		w->err = -EINVAL;
	}
}

/* Range checks of the fields of a decoded message. */
static int validate(const struct dp_msg *m)
{
	switch (m->type) {
	case DP_MSG_HELLO:
		return m->hello.role == DP_ROLE_CLIENT || m->hello.role == DP_ROLE_CTL ? 0 : -EINVAL;
	case DP_MSG_HELLO_OK:
		return m->hello_ok.version == DP_PROTO_VERSION ? 0 : -EINVAL;
	case DP_MSG_REGION_ADD:
		return m->region_add.id ? 0 : -EINVAL;
	case DP_MSG_REFUSED:
		if (!m->refused.type || m->refused.type >= DP_MSG_TYPE_END ||
		    m->refused.status >= 0 || m->refused.status < -4095)
			return -EINVAL;
		return 0;
	case DP_MSG_REGION_DEL:
	case DP_MSG_MAP_DEL:
	case DP_MSG_PIN_DEL:
		return m->del.id ? 0 : -EINVAL;
	case DP_MSG_MAP_ADD:
		if (!m->map_add.id || !m->map_add.region_id || !m->map_add.length ||
		    m->map_add.offset + m->map_add.length < m->map_add.offset)
			return -EINVAL;
		return 0;
	case DP_MSG_PIN_ADD:
		if (!m->pin_add.id || !m->pin_add.region_id || !m->pin_add.length ||
		    m->pin_add.offset + m->pin_add.length < m->pin_add.offset ||
		    m->pin_add.kind < 1 || m->pin_add.kind > 2 || !m->pin_add.access ||
		    (m->pin_add.access & ~3u))
			return -EINVAL;
		return 0;
	case DP_MSG_PIN_OWNER:
		return m->pin_owner.id ? 0 : -EINVAL;
	case DP_MSG_REVOKE:
	case DP_MSG_UNZAP:
	case DP_MSG_RELEASED:
		if (!m->revoke.req || !m->revoke.region_id ||
		    m->revoke.offset + m->revoke.length < m->revoke.offset)
			return -EINVAL;
		return 0;
	case DP_MSG_REVOKE_DONE:
		if (!m->revoke_done.req || !m->revoke_done.region_id ||
		    m->revoke_done.status > 0 || m->revoke_done.status < -4095)
			return -EINVAL;
		return 0;
	case DP_MSG_REGION_STATE:
		if (!m->region_state.region_id || m->region_state.lease > DP_LEASE_STATE_MAX ||
		    m->region_state.lease_error > 0 || m->region_state.lease_error < -4095)
			return -EINVAL;
		return 0;
	case DP_MSG_REGION_GONE:
		if (!m->region_gone.region_id || m->region_gone.reason >= 0 ||
		    m->region_gone.reason < -4095)
			return -EINVAL;
		return 0;
	case DP_MSG_STATUS:
		return 0;
	case DP_MSG_OP:
		if (m->op.op < DP_OP_RELEASE || m->op.op > DP_OP_PUNCH || (m->op.flags & ~DP_OP_FLAGS) ||
		    m->op.timeout_ms < -1 || !m->op.target[0] ||
		    m->op.offset + m->op.length < m->op.offset ||
		    (m->op.op == DP_OP_PUNCH && m->op.length == 0))
			return -EINVAL;
		return 0;
	case DP_MSG_REPLY:
		if (m->reply.status > 0 || m->reply.status < -4095 || (m->reply.flags & ~DP_REPLY_MORE))
			return -EINVAL;
		return 0;
	default:
		return -ENOMSG;
	}
}

int dp_proto_encode(const struct dp_msg *m, uint32_t seq, uint8_t *buf, size_t cap)
{
	struct wbuf w = { buf, cap, DP_PROTO_HDR_SIZE, 0 };
	struct wbuf h = { buf, cap, 0, 0 };
	size_t plen;
	int r;

	r = validate(m);
	if (r < 0)
		return -EINVAL;
	if (cap < DP_PROTO_HDR_SIZE)
		return -ENOBUFS;
	encode_payload(&w, m);
	if (w.err)
		return w.err;
	plen = w.off - DP_PROTO_HDR_SIZE;
	if (plen > DP_PROTO_MAX_PAYLOAD)
		return -ENOBUFS;
	w_u32(&h, DP_PROTO_MAGIC);
	w_u16(&h, DP_PROTO_VERSION);
	w_u16(&h, m->type);
	w_u32(&h, (uint32_t)plen);
	w_u32(&h, seq);
	return (int)w.off;
}

int dp_proto_decode(const uint8_t *buf, size_t len, struct dp_msg *m)
{
	struct rbuf h = { buf, len, 0, 0 };
	struct rbuf r;
	uint32_t magic, plen;
	uint16_t version;

	if (len < DP_PROTO_HDR_SIZE)
		return -ENODATA;
	memset(m, 0, offsetof(struct dp_msg, region_add));
	magic = r_u32(&h);
	version = r_u16(&h);
	m->type = r_u16(&h);
	plen = r_u32(&h);
	m->seq = r_u32(&h);
	if (magic != DP_PROTO_MAGIC)
		return -EBADMSG;
	if (version != DP_PROTO_VERSION)
		return -EPROTO;
	if (plen > DP_PROTO_MAX_PAYLOAD)
		return -EMSGSIZE;
	if (plen > len - DP_PROTO_HDR_SIZE)
		return -ENODATA;
	if (m->type == 0 || m->type >= DP_MSG_TYPE_END)
		return -ENOMSG;

	r = (struct rbuf){ buf + DP_PROTO_HDR_SIZE, plen, 0, 0 };
	switch (m->type) {
	case DP_MSG_HELLO:
		m->hello.role = r_u32(&r);
		break;
	case DP_MSG_HELLO_OK:
		m->hello_ok.version = r_u32(&r);
		break;
	case DP_MSG_REGION_ADD:
		m->region_add.id = r_u64(&r);
		break;
	case DP_MSG_REFUSED:
		m->refused.type = r_u32(&r);
		m->refused.id = r_u64(&r);
		m->refused.status = (int32_t)r_u32(&r);
		r_str(&r, m->refused.reason, DP_PROTO_MAX_REASON);
		break;
	case DP_MSG_REGION_DEL:
	case DP_MSG_MAP_DEL:
	case DP_MSG_PIN_DEL:
		m->del.id = r_u64(&r);
		break;
	case DP_MSG_MAP_ADD:
		m->map_add.id = r_u64(&r);
		m->map_add.region_id = r_u64(&r);
		m->map_add.offset = r_u64(&r);
		m->map_add.length = r_u64(&r);
		m->map_add.created_ns = r_u64(&r);
		m->map_add.tid = r_u32(&r);
		break;
	case DP_MSG_PIN_ADD:
		m->pin_add.id = r_u64(&r);
		m->pin_add.region_id = r_u64(&r);
		m->pin_add.offset = r_u64(&r);
		m->pin_add.length = r_u64(&r);
		m->pin_add.created_ns = r_u64(&r);
		m->pin_add.kind = r_u32(&r);
		m->pin_add.access = r_u32(&r);
		m->pin_add.tid = r_u32(&r);
		break;
	case DP_MSG_PIN_OWNER:
		m->pin_owner.id = r_u64(&r);
		r_str(&r, m->pin_owner.text, DP_PROTO_MAX_OWNER);
		break;
	case DP_MSG_REVOKE:
	case DP_MSG_UNZAP:
	case DP_MSG_RELEASED:
		m->revoke.req = r_u64(&r);
		m->revoke.region_id = r_u64(&r);
		m->revoke.offset = r_u64(&r);
		m->revoke.length = r_u64(&r);
		break;
	case DP_MSG_REVOKE_DONE:
		m->revoke_done.req = r_u64(&r);
		m->revoke_done.region_id = r_u64(&r);
		m->revoke_done.status = (int32_t)r_u32(&r);
		break;
	case DP_MSG_REGION_STATE:
		m->region_state.region_id = r_u64(&r);
		m->region_state.lease = r_u32(&r);
		m->region_state.lease_error = (int32_t)r_u32(&r);
		m->region_state.lease_breaks = r_u64(&r);
		break;
	case DP_MSG_REGION_GONE:
		m->region_gone.region_id = r_u64(&r);
		m->region_gone.reason = (int32_t)r_u32(&r);
		break;
	case DP_MSG_STATUS:
		r_str(&r, m->status.target, DP_PROTO_MAX_PATH);
		break;
	case DP_MSG_OP:
		m->op.op = r_u32(&r);
		m->op.flags = r_u32(&r);
		m->op.timeout_ms = (int32_t)r_u32(&r);
		m->op.offset = r_u64(&r);
		m->op.length = r_u64(&r);
		r_str(&r, m->op.target, DP_PROTO_MAX_PATH);
		break;
	case DP_MSG_REPLY:
		m->reply.status = (int32_t)r_u32(&r);
		m->reply.flags = r_u32(&r);
		m->reply.text_len = r_u32(&r);
		if (!r.err && (m->reply.text_len > DP_PROTO_MAX_TEXT ||
			       m->reply.text_len > r.len - r.off)) {
			r.err = -EINVAL;
			break;
		}
		m->reply.text = (const char *)r.p + r.off;
		r.off += m->reply.text_len;
		break;
	}
	if (r.err)
		return r.err;
	if (r.off != r.len)
		return -EINVAL;
	if (validate(m) < 0)
		return -EINVAL;
	return (int)(DP_PROTO_HDR_SIZE + plen);
}

int dp_proto_send(int fd, const struct dp_msg *m, uint32_t seq)
{
	uint8_t *buf = malloc(DP_PROTO_MAX_DGRAM);
	ssize_t n;
	int len;

	if (!buf)
		return -ENOMEM;
	len = dp_proto_encode(m, seq, buf, DP_PROTO_MAX_DGRAM);
	if (len < 0) {
		free(buf);
		return len;
	}
	do
		n = send(fd, buf, (size_t)len, MSG_NOSIGNAL);
	while (n < 0 && errno == EINTR);
	len = n < 0 ? -errno : 0;
	free(buf);
	return len;
}

int dp_proto_send_fds(int fd, const void *buf, size_t len, const int *fds, size_t n_fds,
		      int flags)
{
	union {
		struct cmsghdr h;
		char b[CMSG_SPACE(DP_PROTO_MAX_FDS * sizeof(int))];
	} ctl;
	struct iovec iov = { (void *)buf, len };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
	ssize_t n;

	if (n_fds > DP_PROTO_MAX_FDS)
		return -EINVAL;
	if (n_fds) {
		struct cmsghdr *cm;

		memset(&ctl, 0, sizeof(ctl));
		mh.msg_control = ctl.b;
		mh.msg_controllen = CMSG_SPACE(n_fds * sizeof(int));
		cm = CMSG_FIRSTHDR(&mh);
		cm->cmsg_level = SOL_SOCKET;
		cm->cmsg_type = SCM_RIGHTS;
		cm->cmsg_len = CMSG_LEN(n_fds * sizeof(int));
		memcpy(CMSG_DATA(cm), fds, n_fds * sizeof(int));
	}
	do
		n = sendmsg(fd, &mh, MSG_NOSIGNAL | flags);
	while (n < 0 && errno == EINTR);
	return n < 0 ? -errno : 0;
}

size_t dp_proto_fds_wanted(const uint8_t *buf, size_t len)
{
	size_t off = 0, n = 0;

	while (len - off >= DP_PROTO_HDR_SIZE) {
		const uint8_t *h = buf + off;
		size_t plen = (size_t)h[8] | (size_t)h[9] << 8 | (size_t)h[10] << 16 |
			      (size_t)h[11] << 24;

		if ((h[6] | h[7] << 8) == DP_MSG_REGION_ADD)
			n++;
		if (plen > len - off - DP_PROTO_HDR_SIZE)
			break;
		off += DP_PROTO_HDR_SIZE + plen;
	}
	return n;
}

int dp_proto_connect(const char *path, uint32_t role, int timeout_ms)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct dp_msg m = { .type = DP_MSG_HELLO };
	uint8_t buf[512]; /* a HELLO_OK, or a REFUSED with its reason */
	struct pollfd pfd;
	ssize_t n;
	int fd, r, sent;

	if (!path)
		path = DP_DAEMON_SOCKET_DEFAULT;
	if (strlen(path) >= sizeof(sa.sun_path))
		return -ENAMETOOLONG;
	strcpy(sa.sun_path, path);
	fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		r = -errno;
		close(fd);
		return r;
	}
	m.hello.role = role;
	/*
	 * A daemon that refuses the connection sends REFUSED and closes, maybe
	 * before our HELLO (then the send fails) or with it unread (then the
	 * first recv fails with ECONNRESET): the REFUSED is still queued here.
	 */
	sent = dp_proto_send(fd, &m, 0);
	pfd = (struct pollfd){ .fd = fd, .events = POLLIN };
	do
		r = poll(&pfd, 1, sent < 0 ? 0 : timeout_ms);
	while (r < 0 && errno == EINTR);
	if (r <= 0) {
		r = sent < 0 ? sent : r == 0 ? -ETIMEDOUT : -errno;
		goto fail;
	}
	n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
	if (n < 0 && errno == ECONNRESET)
		n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
	if (n <= 0) {
		r = sent < 0 ? sent : n == 0 ? -ECONNRESET : -errno;
		goto fail;
	}
	r = dp_proto_decode(buf, (size_t)n, &m);
	if (r == n && m.type == DP_MSG_REFUSED) {
		r = m.refused.status; /* too many connections */
		goto fail;
	}
	if (r != n || m.type != DP_MSG_HELLO_OK) {
		r = -EPROTO;
		goto fail;
	}
	return fd;
fail:
	close(fd);
	return r;
}
