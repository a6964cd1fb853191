/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Loopback RDMA helpers for the kfacts tests: open a device by name, bring
 * an RC QP connected to itself to RTS (rxe on lo, GID index 1), post one
 * RDMA operation and wait for its completion.
 */
#ifndef DAXPOOL_KFACTS_RDMA_H
#define DAXPOOL_KFACTS_RDMA_H

#include <stdint.h>

#include <infiniband/verbs.h>

#include "kfacts.h"

#define KF_GID_INDEX 1 /* ::ffff:127.0.0.1; GID 0 (link-local) fails at RTR */

#define KF_MR_ACCESS (IBV_ACCESS_LOCAL_WRITE | IBV_ACCESS_REMOTE_WRITE | IBV_ACCESS_REMOTE_READ)

static inline struct ibv_context *kf_rdma_open(const char *name)
{
	struct ibv_device **list;
	struct ibv_context *ctx = NULL;
	int i, n;

	list = ibv_get_device_list(&n);
	if (!list)
		return NULL;
	for (i = 0; i < n; i++)
		if (!strcmp(ibv_get_device_name(list[i]), name))
			ctx = ibv_open_device(list[i]);
	ibv_free_device_list(list);
	return ctx;
}

/* Bring a QP connected to itself to RTS.  Returns 0 or an errno value. */
static inline int kf_rdma_loopback(struct ibv_qp *qp, struct ibv_context *ctx)
{
	struct ibv_port_attr port;
	struct ibv_qp_attr a;
	union ibv_gid gid;
	int r;

	if (ibv_query_port(ctx, 1, &port) || ibv_query_gid(ctx, 1, KF_GID_INDEX, &gid))
		return errno ? errno : EIO;

	memset(&a, 0, sizeof(a));
	a.qp_state = IBV_QPS_INIT;
	a.pkey_index = 0;
	a.port_num = 1;
	a.qp_access_flags = KF_MR_ACCESS;
	r = ibv_modify_qp(qp, &a,
			  IBV_QP_STATE | IBV_QP_PKEY_INDEX | IBV_QP_PORT | IBV_QP_ACCESS_FLAGS);
	if (r)
		return r;

	memset(&a, 0, sizeof(a));
	a.qp_state = IBV_QPS_RTR;
	a.path_mtu = port.active_mtu;
	a.dest_qp_num = qp->qp_num;
	a.rq_psn = 0;
	a.max_dest_rd_atomic = 1;
	a.min_rnr_timer = 12;
	a.ah_attr.is_global = 1;
	a.ah_attr.grh.dgid = gid;
	a.ah_attr.grh.sgid_index = KF_GID_INDEX;
	a.ah_attr.grh.hop_limit = 1;
	a.ah_attr.port_num = 1;
	r = ibv_modify_qp(qp, &a,
			  IBV_QP_STATE | IBV_QP_AV | IBV_QP_PATH_MTU | IBV_QP_DEST_QPN |
			      IBV_QP_RQ_PSN | IBV_QP_MAX_DEST_RD_ATOMIC | IBV_QP_MIN_RNR_TIMER);
	if (r)
		return r;

	memset(&a, 0, sizeof(a));
	a.qp_state = IBV_QPS_RTS;
	a.timeout = 14;
	a.retry_cnt = 7;
	a.rnr_retry = 7;
	a.sq_psn = 0;
	a.max_rd_atomic = 1;
	return ibv_modify_qp(qp, &a,
			     IBV_QP_STATE | IBV_QP_TIMEOUT | IBV_QP_RETRY_CNT | IBV_QP_RNR_RETRY |
				 IBV_QP_SQ_PSN | IBV_QP_MAX_QP_RD_ATOMIC);
}

/*
 * Create a CQ and an RC QP on @pd and connect the QP to itself.  Returns 0
 * or an errno value; on failure nothing is left allocated.
 */
static inline int kf_rdma_qp_create(struct ibv_context *ctx, struct ibv_pd *pd,
				    struct ibv_cq **ret_cq, struct ibv_qp **ret_qp)
{
	struct ibv_qp_init_attr qia;
	struct ibv_cq *cq;
	struct ibv_qp *qp;
	int r;

	cq = ibv_create_cq(ctx, 4, NULL, NULL, 0);
	if (!cq)
		return errno ? errno : ENOMEM;
	memset(&qia, 0, sizeof(qia));
	qia.send_cq = cq;
	qia.recv_cq = cq;
	qia.qp_type = IBV_QPT_RC;
	qia.cap.max_send_wr = 4;
	qia.cap.max_recv_wr = 4;
	qia.cap.max_send_sge = 1;
	qia.cap.max_recv_sge = 1;
	qp = ibv_create_qp(pd, &qia);
	if (!qp) {
		r = errno ? errno : ENOMEM;
		ibv_destroy_cq(cq);
		return r;
	}
	r = kf_rdma_loopback(qp, ctx);
	if (r) {
		ibv_destroy_qp(qp);
		ibv_destroy_cq(cq);
		return r;
	}
	*ret_cq = cq;
	*ret_qp = qp;
	return 0;
}

/* Post one signalled RDMA op and wait (up to 5 s) for its completion. */
static inline int kf_rdma_op(struct ibv_qp *qp, struct ibv_cq *cq, enum ibv_wr_opcode op,
			     struct ibv_mr *local, void *laddr, struct ibv_mr *remote, void *raddr,
			     uint32_t len)
{
	struct ibv_sge sge = {(uintptr_t)laddr, len, local->lkey};
	struct ibv_send_wr wr, *bad;
	struct ibv_wc wc;
	double end;
	int n;

	memset(&wr, 0, sizeof(wr));
	wr.wr_id = 42;
	wr.sg_list = &sge;
	wr.num_sge = 1;
	wr.opcode = op;
	wr.send_flags = IBV_SEND_SIGNALED;
	wr.wr.rdma.remote_addr = (uintptr_t)raddr;
	wr.wr.rdma.rkey = remote->rkey;
	if (ibv_post_send(qp, &wr, &bad))
		return -1;
	end = kf_now() + 5;
	do {
		n = ibv_poll_cq(cq, 1, &wc);
		if (n < 0)
			return -1;
		if (n == 1) {
			if (wc.status != IBV_WC_SUCCESS)
				kf_note("completion status %s", ibv_wc_status_str(wc.status));
			return wc.status == IBV_WC_SUCCESS ? 0 : -1;
		}
	} while (kf_now() < end);
	kf_note("no completion within 5 s");
	return -1;
}

#endif /* DAXPOOL_KFACTS_RDMA_H */
