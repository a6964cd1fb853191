/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The library's daxpoold client against a scripted daemon: this test listens
 * on the socket, answers the HELLO and sends the requests itself, so it sees
 * every message the client sends back, in order.
 */
#include <poll.h>
#include <pthread.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <syslog.h>
#include <unistd.h>

#include "daxpool.h"
#include "harness.h"
#include "util/protocol.h"

#define REGION_SIZE (4u << 20)

struct wire {
	char path[108];
	int listener;
	int conn;
	pthread_t accepter;
	int accept_r;
	/* Messages of the last datagram not handed out yet. */
	uint8_t buf[DP_PROTO_MAX_DGRAM];
	size_t len, off;
};

/* Accept the client and answer its HELLO: connect_daemon() waits for that. */
static void *wire_accept(void *arg)
{
	struct wire *w = arg;
	struct pollfd pfd = { .fd = w->listener, .events = POLLIN };
	struct dp_msg m, ok = { .type = DP_MSG_HELLO_OK, .hello_ok.version = DP_PROTO_VERSION };
	uint8_t buf[512];
	ssize_t n;

	w->accept_r = -ETIMEDOUT;
	if (poll(&pfd, 1, 10000) != 1)
		return NULL;
	w->conn = accept4(w->listener, NULL, NULL, SOCK_CLOEXEC);
	if (w->conn < 0) {
		w->accept_r = -errno;
		return NULL;
	}
	pfd = (struct pollfd){ .fd = w->conn, .events = POLLIN };
	if (poll(&pfd, 1, 10000) != 1)
		return NULL;
	n = recv(w->conn, buf, sizeof(buf), 0);
	if (n <= 0 || dp_proto_decode(buf, (size_t)n, &m) != n || m.type != DP_MSG_HELLO) {
		w->accept_r = -EPROTO;
		return NULL;
	}
	w->accept_r = dp_proto_send(w->conn, &ok, 0);
	return NULL;
}

static void wire_listen(struct wire *w)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };

	*w = (struct wire){ .conn = -1 };
	snprintf(w->path, sizeof(w->path), "%s/wire.sock", fixture_dir());
	CHECK(strlen(w->path) < sizeof(sa.sun_path));
	strcpy(sa.sun_path, w->path);
	unlink(w->path);
	w->listener = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	CHECK(w->listener >= 0);
	CHECK_EQ(bind(w->listener, (struct sockaddr *)&sa, sizeof(sa)), 0);
	CHECK_EQ(listen(w->listener, 4), 0);
	CHECK(pthread_create(&w->accepter, NULL, wire_accept, w) == 0);
}

static void wire_connected(struct wire *w)
{
	CHECK(pthread_join(w->accepter, NULL) == 0);
	CHECK_OK(w->accept_r);
}

static void wire_close(struct wire *w)
{
	if (w->conn >= 0)
		close(w->conn);
	close(w->listener);
	unlink(w->path);
}

/* The client's next message, within a bound; the descriptors of REGION_ADDs are dropped. */
static void wire_recv(struct wire *w, struct dp_msg *m)
{
	int n;

	if (w->off >= w->len) {
		struct pollfd pfd = { .fd = w->conn, .events = POLLIN };
		ssize_t got;

		CHECK(poll(&pfd, 1, 10000) == 1);
		got = recv(w->conn, w->buf, sizeof(w->buf), 0);
		CHECK(got > 0);
		w->len = (size_t)got;
		w->off = 0;
	}
	n = dp_proto_decode(w->buf + w->off, w->len - w->off, m);
	CHECK(n > 0);
	w->off += (size_t)n;
}

/* The next message of @type, skipping the registrations and states the client also sends. */
static void wire_expect(struct wire *w, uint16_t type, struct dp_msg *m)
{
	for (;;) {
		wire_recv(w, m);
		if (m->type == type)
			return;
		CHECK(m->type != DP_MSG_REVOKE_DONE); /* never skipped: the test counts them */
	}
}

static void wire_send(struct wire *w, uint16_t type, uint64_t req, uint64_t region_id)
{
	struct dp_msg m = { .type = type };

	m.revoke.req = req;
	m.revoke.region_id = region_id;
	CHECK_OK(dp_proto_send(w->conn, &m, 0));
}

/*
 * A revoke whose zap fails (the region was released) is answered at once
 * with the error, and only once: the request waits for the daemon's word
 * and is never reported idle a second time.
 */
TEST(a_failed_zap_is_answered_once)
{
	const char *path = fixture_plain_file(REGION_SIZE);
	struct daxpool_region *region;
	struct daxpool_ctx *ctx;
	struct dp_msg m;
	struct wire w;
	uint64_t id;

	wire_listen(&w);
	CHECK_OK(daxpool_ctx_new(&ctx));
	CHECK_OK(daxpool_ctx_set_log_priority(ctx, LOG_CRIT));
	CHECK_OK(daxpool_ctx_connect_daemon(ctx, w.path));
	wire_connected(&w);
	CHECK_OK(daxpool_region_open(ctx, path, 0, &region));
	wire_expect(&w, DP_MSG_REGION_ADD, &m);
	id = m.region_add.id;

	/* Released: every zap of it fails with -ENXIO from now on. */
	CHECK(daxpool_region_zap(region) >= 0);
	CHECK_OK(daxpool_region_release(region));
	wire_send(&w, DP_MSG_REVOKE, 1, id);
	wire_expect(&w, DP_MSG_REVOKE_DONE, &m);
	CHECK_EQ(m.revoke_done.req, 1);
	CHECK_EQ(m.revoke_done.status, -ENXIO);

	/*
	 * The daemon gives the request up; then a revoke of a region the
	 * client does not have, answered at once: the next answer must be
	 * that one, not the first request's again.
	 */
	wire_send(&w, DP_MSG_UNZAP, 1, id);
	wire_send(&w, DP_MSG_REVOKE, 2, id + 1000);
	wire_expect(&w, DP_MSG_REVOKE_DONE, &m);
	CHECK_EQ(m.revoke_done.req, 2);
	CHECK_EQ(m.revoke_done.status, 0);

	daxpool_region_unref(region);
	daxpool_ctx_unref(ctx);
	wire_close(&w);
}
