/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* What the server and the peer of libdaxpool-remote share: logging, time, the message channel. */
#ifndef DAXPOOL_REMOTE_PRIVATE_H
#define DAXPOOL_REMOTE_PRIVATE_H

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <syslog.h>
#include <time.h>

#include <infiniband/verbs.h>

#include "daxpool-remote.h"
#include "wire.h"

#define _public_ __attribute__((visibility("default")))

/* A log sink: the object's function, or stderr up to DAXPOOL_LOG's priority. */
struct dp_rlog {
	daxpool_remote_log_fn fn;
	void *userdata;
	int max_priority; /* from DAXPOOL_LOG; -1: silent */
	const char *who;  /* "daxpool-remote server", ... */
};

void dp_rlog_init(struct dp_rlog *log, const char *who);
/* Set @log's function under @lock (the object's, which its log calls hold). */
void dp_rlog_set(struct dp_rlog *log, pthread_mutex_t *lock, daxpool_remote_log_fn fn,
		 void *userdata);
void dp_rlog(const struct dp_rlog *log, int priority, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

uint64_t dp_rnow_ns(void); /* CLOCK_MONOTONIC */
/* An absolute CLOCK_MONOTONIC deadline @ms from now, for pthread_cond_timedwait(). */
struct timespec dp_rdeadline(int ms);
/* A condition variable on CLOCK_MONOTONIC. */
void dp_rcond_init(pthread_cond_t *cond);

/*
 * Work request ids: the kind in the top byte, a slot or a grant id below.
 * Completions are matched by id, never by a pointer, so a completion that
 * arrives after its grant is gone finds nothing.
 */
enum dp_rwr_kind {
	DP_RWR_RECV = 1,
	DP_RWR_SEND = 2,
	DP_RWR_BIND = 3,
	DP_RWR_INV = 4,
	DP_RWR_IO = 5,
};
#define DP_RWR_ID(kind, n) (((uint64_t)(kind) << 56) | ((uint64_t)(n) & ((1ull << 56) - 1)))
#define DP_RWR_KIND(wr_id) ((unsigned int)((wr_id) >> 56))
#define DP_RWR_N(wr_id) ((wr_id) & ((1ull << 56) - 1))

/*
 * The message channel of one connection: DP_RCHAN_RECVS receive slots always
 * posted, DP_RCHAN_SENDS send slots used in turn (a slot is free again when
 * its send completed). The owner serializes calls (its lock).
 */
#define DP_RCHAN_RECVS 16
#define DP_RCHAN_SENDS 32

struct dp_rchan {
	struct ibv_qp *qp;
	struct ibv_mr *mr;
	uint8_t *buf; /* RECVS receive slots, then SENDS send slots */
	unsigned int send_next, sends_out;
};

/* Register the slots on @pd, post every receive. Return: 0 or -errno. */
int dp_rchan_init(struct dp_rchan *ch, struct ibv_pd *pd, struct ibv_qp *qp);
void dp_rchan_destroy(struct dp_rchan *ch);
/* The received bytes of slot @slot (a DP_RWR_RECV completion's DP_RWR_N). */
const uint8_t *dp_rchan_slot(struct dp_rchan *ch, unsigned int slot);
/* Post slot @slot for receiving again. Return: 0 or -errno. */
int dp_rchan_repost(struct dp_rchan *ch, unsigned int slot);
/* A send completed (its slot is free). */
void dp_rchan_sent(struct dp_rchan *ch);
/*
 * Encode and send @m (signalled); @fence: IBV_SEND_FENCE, so that it is sent
 * after the work requests before it completed (a LOCAL_INV). Return: 0,
 * -ENOBUFS (every slot still in flight: the other end does not receive),
 * -EINVAL, or the errno of ibv_post_send().
 */
int dp_rchan_send(struct dp_rchan *ch, const struct dp_rwire_msg *m, bool fence);

/* The queue pair's capacities both ends ask for. */
#define DP_RQP_SEND_WR 128
#define DP_RQP_RECV_WR DP_RCHAN_RECVS
#define DP_RCQ_SIZE (DP_RQP_SEND_WR + DP_RQP_RECV_WR)

/* -errno of an rdma_cm or verbs call that set errno, never 0. */
static inline int dp_rerrno(void)
{
	return errno > 0 ? -errno : -EIO;
}

#endif
