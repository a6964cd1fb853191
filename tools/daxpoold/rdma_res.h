/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* RDMA MRs of every process, from RDMA netlink (a probe: it knows nothing of clients). */
#ifndef DAXPOOLD_RDMA_RES_H
#define DAXPOOLD_RDMA_RES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct dd_rdma_mr {
	pid_t pid; /* 0: a kernel MR (kern_name), or an owner outside our pid namespace */
	uint32_t dev_index, mrn, lkey, rkey;
	bool has_mrn, has_keys, has_length; /* keys need CAP_NET_ADMIN */
	uint64_t length, iova;
	char dev_name[64];
	char kern_name[32];
};

struct dd_rdma_mrs {
	struct dd_rdma_mr *mr;
	size_t n, cap;
	bool scanned;	 /* zeroed: not yet (the scans below do it when they need it) */
	size_t devices;	 /* RDMA devices scanned */
	bool incomplete; /* some device could not be read: see reason */
	char reason[160]; /* why the table is empty or incomplete; "" when it is whole */
};

/*
 * Fill @t with every MR of every RDMA device. Never fails: without RDMA
 * netlink, devices or permission the table is empty and t->reason says why.
 * Blocks for at most about a second per device. Free with dd_rdma_mrs_free().
 */
void dd_rdma_mrs_scan(struct dd_rdma_mrs *t);
void dd_rdma_mrs_free(struct dd_rdma_mrs *t);
/*
 * Parse one received buffer of a RES_MR_GET dump (@seq): append its MRs to
 * @t; or of a CMD_GET dump: append device indexes to @idx (at most @cap;
 * -E2BIG beyond). Return 1 if the dump continues in the next buffer, 0 when
 * it ended (NLMSG_DONE), -errno of an NLMSG_ERROR, -EBADMSG for malformed
 * input (truncated messages or attributes, bad lengths, unterminated
 * strings), -ENOMEM.
 */
int dd_rdma_parse_mr_dump(const void *buf, size_t len, uint32_t seq, struct dd_rdma_mrs *t);
int dd_rdma_parse_dev_dump(const void *buf, size_t len, uint32_t seq, uint32_t *idx, size_t *n,
			   size_t cap);

#endif /* DAXPOOLD_RDMA_RES_H */
