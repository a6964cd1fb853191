/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The message channel of a connection: receive slots always posted, send slots in turn (remote.h). */
#include <stdlib.h>
#include <string.h>

#include "remote.h"

#define SLOTS (DP_RCHAN_RECVS + DP_RCHAN_SENDS)

int dp_rchan_init(struct dp_rchan *ch, struct ibv_pd *pd, struct ibv_qp *qp)
{
	int r;

	memset(ch, 0, sizeof(*ch));
	ch->qp = qp;
	ch->buf = calloc(SLOTS, DP_RWIRE_SIZE);
	if (!ch->buf)
		return -ENOMEM;
	ch->mr = ibv_reg_mr(pd, ch->buf, SLOTS * DP_RWIRE_SIZE, IBV_ACCESS_LOCAL_WRITE);
	if (!ch->mr) {
		r = dp_rerrno();
		free(ch->buf);
		ch->buf = NULL;
		return r;
	}
	for (unsigned int i = 0; i < DP_RCHAN_RECVS; i++) {
		r = dp_rchan_repost(ch, i);
		if (r < 0) {
			dp_rchan_destroy(ch);
			return r;
		}
	}
	return 0;
}

void dp_rchan_destroy(struct dp_rchan *ch)
{
	if (ch->mr)
		ibv_dereg_mr(ch->mr);
	free(ch->buf);
	memset(ch, 0, sizeof(*ch));
}

const uint8_t *dp_rchan_slot(struct dp_rchan *ch, unsigned int slot)
{
	return slot < DP_RCHAN_RECVS ? ch->buf + (size_t)slot * DP_RWIRE_SIZE : NULL;
}

int dp_rchan_repost(struct dp_rchan *ch, unsigned int slot)
{
	struct ibv_sge sge = { .addr = (uintptr_t)(ch->buf + (size_t)slot * DP_RWIRE_SIZE),
			       .length = DP_RWIRE_SIZE };
	struct ibv_recv_wr wr = { .wr_id = DP_RWR_ID(DP_RWR_RECV, slot), .sg_list = &sge,
				  .num_sge = 1 };
	struct ibv_recv_wr *bad;
	int r;

	if (!ch->mr)
		return -ENOTCONN;
	if (slot >= DP_RCHAN_RECVS)
		return -EINVAL;
	sge.lkey = ch->mr->lkey;
	r = ibv_post_recv(ch->qp, &wr, &bad);
	return r ? -r : 0;
}

void dp_rchan_sent(struct dp_rchan *ch)
{
	if (ch->sends_out)
		ch->sends_out--;
}

int dp_rchan_send(struct dp_rchan *ch, const struct dp_rwire_msg *m, bool fence)
{
	unsigned int slot = DP_RCHAN_RECVS + ch->send_next;
	uint8_t *p = ch->buf + (size_t)slot * DP_RWIRE_SIZE;
	struct ibv_sge sge = { .addr = (uintptr_t)p, .length = DP_RWIRE_SIZE };
	struct ibv_send_wr wr = { .wr_id = DP_RWR_ID(DP_RWR_SEND, slot), .sg_list = &sge,
				  .num_sge = 1, .opcode = IBV_WR_SEND,
				  .send_flags = IBV_SEND_SIGNALED | (fence ? IBV_SEND_FENCE : 0) };
	struct ibv_send_wr *bad;
	int r;

	if (!ch->mr)
		return -ENOTCONN;
	sge.lkey = ch->mr->lkey;
	/* Slots are used in turn: with all of them out, the oldest may still be sending. */
	if (ch->sends_out >= DP_RCHAN_SENDS)
		return -ENOBUFS;
	if (dp_rwire_encode(m, p) < 0)
		return -EINVAL;
	r = ibv_post_send(ch->qp, &wr, &bad);
	if (r)
		return -r;
	ch->send_next = (ch->send_next + 1) % DP_RCHAN_SENDS;
	ch->sends_out++;
	return 0;
}
