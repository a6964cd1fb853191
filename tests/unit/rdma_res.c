/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * daxpoold's RDMA netlink MR table (tools/daxpoold/rdma_res.c): the dump
 * parsers fed crafted buffers -- whole dumps, dumps split over several
 * receives, errors, truncated and lying lengths -- and the live scan, which
 * must answer with a table (maybe empty, with a reason) on any machine.
 */
#include <linux/netlink.h>
#include <rdma/rdma_netlink.h>

#include "rdma_res.h"
#include "harness.h"

#define MR_TYPE RDMA_NL_GET_TYPE(RDMA_NL_NLDEV, RDMA_NLDEV_CMD_RES_MR_GET)
#define DEV_TYPE RDMA_NL_GET_TYPE(RDMA_NL_NLDEV, RDMA_NLDEV_CMD_GET)

/* A buffer of netlink messages, built as the kernel lays them out. */
struct nlbuf {
	uint8_t b[8192] __attribute__((aligned(4)));
	size_t len;
	size_t msg;		 /* offset of the open message */
	size_t nest[4], depth; /* offsets of the open nests */
};

static void msg_begin(struct nlbuf *nb, uint16_t type, uint16_t flags, uint32_t seq)
{
	struct nlmsghdr *h = (struct nlmsghdr *)(nb->b + nb->len);

	memset(h, 0, NLMSG_HDRLEN);
	h->nlmsg_type = type;
	h->nlmsg_flags = flags;
	h->nlmsg_seq = seq;
	nb->msg = nb->len;
	nb->len += NLMSG_HDRLEN;
}

static void msg_end(struct nlbuf *nb)
{
	((struct nlmsghdr *)(nb->b + nb->msg))->nlmsg_len = (uint32_t)(nb->len - nb->msg);
	nb->len = NLMSG_ALIGN(nb->len);
}

static void attr(struct nlbuf *nb, uint16_t type, const void *data, size_t len)
{
	struct nlattr *a = (struct nlattr *)(nb->b + nb->len);

	CHECK(nb->len + NLA_HDRLEN + NLA_ALIGN(len) <= sizeof(nb->b));
	a->nla_type = type;
	a->nla_len = (uint16_t)(NLA_HDRLEN + len);
	if (len)
		memcpy(nb->b + nb->len + NLA_HDRLEN, data, len); /* a nest's header has no data */
	memset(nb->b + nb->len + NLA_HDRLEN + len, 0, NLA_ALIGN(len) - len);
	nb->len += NLA_HDRLEN + NLA_ALIGN(len);
}

static void attr_u32(struct nlbuf *nb, uint16_t type, uint32_t v)
{
	attr(nb, type, &v, sizeof(v));
}

static void attr_u64(struct nlbuf *nb, uint16_t type, uint64_t v)
{
	attr(nb, type, &v, sizeof(v));
}

static void attr_str(struct nlbuf *nb, uint16_t type, const char *s)
{
	attr(nb, type, s, strlen(s) + 1);
}

static void nest_begin(struct nlbuf *nb, uint16_t type)
{
	nb->nest[nb->depth++] = nb->len;
	attr(nb, type, NULL, 0);
}

static void nest_end(struct nlbuf *nb)
{
	size_t off = nb->nest[--nb->depth];

	((struct nlattr *)(nb->b + off))->nla_len = (uint16_t)(nb->len - off);
}

/* One MR entry; pid 0: a kernel MR named "ib_core" instead. */
static void mr_entry(struct nlbuf *nb, uint32_t pid, uint64_t len, uint32_t mrn, uint32_t key)
{
	nest_begin(nb, RDMA_NLDEV_ATTR_RES_MR_ENTRY);
	attr_u32(nb, RDMA_NLDEV_ATTR_RES_RKEY, key);
	attr_u32(nb, RDMA_NLDEV_ATTR_RES_LKEY, key + 1);
	attr_u64(nb, RDMA_NLDEV_ATTR_RES_MRLEN, len);
	if (pid)
		attr_u32(nb, RDMA_NLDEV_ATTR_RES_PID, pid);
	else
		attr_str(nb, RDMA_NLDEV_ATTR_RES_KERN_NAME, "ib_core");
	attr_u32(nb, RDMA_NLDEV_ATTR_RES_MRN, mrn);
	attr_u32(nb, RDMA_NLDEV_ATTR_RES_PDN, 7); /* not ours to read: skipped */
	nest_end(nb);
}

/* A RES_MR_GET reply message of device 3 "rxe0" with @n MRs (pids 100.., lengths 4096*(i+1)). */
static void mr_msg(struct nlbuf *nb, uint32_t seq, int first, int n)
{
	msg_begin(nb, MR_TYPE, NLM_F_MULTI, seq);
	attr_u32(nb, RDMA_NLDEV_ATTR_DEV_INDEX, 3);
	attr_str(nb, RDMA_NLDEV_ATTR_DEV_NAME, "rxe0");
	nest_begin(nb, RDMA_NLDEV_ATTR_RES_MR);
	for (int i = first; i < first + n; i++)
		mr_entry(nb, 100 + (uint32_t)i, 4096ull * (uint64_t)(i + 1), (uint32_t)i,
			 0x1000u * (uint32_t)i);
	nest_end(nb);
	msg_end(nb);
}

static void done_msg(struct nlbuf *nb, uint32_t seq)
{
	int zero = 0;

	msg_begin(nb, NLMSG_DONE, NLM_F_MULTI, seq);
	memcpy(nb->b + nb->len, &zero, sizeof(zero));
	nb->len += sizeof(zero);
	msg_end(nb);
}

static void error_msg(struct nlbuf *nb, uint32_t seq, int err)
{
	struct nlmsgerr e = { .error = err };

	msg_begin(nb, NLMSG_ERROR, 0, seq);
	e.msg.nlmsg_seq = seq;
	memcpy(nb->b + nb->len, &e, sizeof(e));
	nb->len += sizeof(e);
	msg_end(nb);
}

TEST(whole_dump_in_one_buffer)
{
	static struct nlbuf nb;
	struct dd_rdma_mrs t = { 0 };

	mr_msg(&nb, 5, 0, 3);
	done_msg(&nb, 5);
	CHECK_EQ(dd_rdma_parse_mr_dump(nb.b, nb.len, 5, &t), 0);
	CHECK_EQ(t.n, 3);
	for (size_t i = 0; i < 3; i++) {
		CHECK_EQ(t.mr[i].pid, 100 + (pid_t)i);
		CHECK_EQ(t.mr[i].length, 4096 * (i + 1));
		CHECK(t.mr[i].has_length && t.mr[i].has_mrn && t.mr[i].has_keys);
		CHECK_EQ(t.mr[i].mrn, i);
		CHECK_EQ(t.mr[i].rkey, 0x1000 * i);
		CHECK_EQ(t.mr[i].lkey, 0x1000 * i + 1);
		CHECK_EQ(t.mr[i].dev_index, 3);
		CHECK(strcmp(t.mr[i].dev_name, "rxe0") == 0);
	}
	dd_rdma_mrs_free(&t);
}

TEST(kernel_mr_has_a_name_and_no_pid)
{
	static struct nlbuf nb;
	struct dd_rdma_mrs t = { 0 };

	msg_begin(&nb, MR_TYPE, NLM_F_MULTI, 1);
	attr_u32(&nb, RDMA_NLDEV_ATTR_DEV_INDEX, 0);
	attr_str(&nb, RDMA_NLDEV_ATTR_DEV_NAME, "mlx5_0");
	nest_begin(&nb, RDMA_NLDEV_ATTR_RES_MR);
	mr_entry(&nb, 0, 1 << 20, 9, 0);
	nest_end(&nb);
	msg_end(&nb);
	done_msg(&nb, 1);
	CHECK_EQ(dd_rdma_parse_mr_dump(nb.b, nb.len, 1, &t), 0);
	CHECK_EQ(t.n, 1);
	CHECK_EQ(t.mr[0].pid, 0);
	CHECK(strcmp(t.mr[0].kern_name, "ib_core") == 0);
	CHECK(strcmp(t.mr[0].dev_name, "mlx5_0") == 0);
	dd_rdma_mrs_free(&t);
}

/* The kernel splits a long dump over several datagrams; only the last ends it. */
TEST(multi_part_dump)
{
	static struct nlbuf a, b, c;
	struct dd_rdma_mrs t = { 0 };

	mr_msg(&a, 9, 0, 2);
	mr_msg(&a, 9, 2, 2);
	mr_msg(&b, 9, 4, 1);
	done_msg(&c, 9);
	CHECK_EQ(dd_rdma_parse_mr_dump(a.b, a.len, 9, &t), 1);
	CHECK_EQ(t.n, 4);
	CHECK_EQ(dd_rdma_parse_mr_dump(b.b, b.len, 9, &t), 1);
	CHECK_EQ(t.n, 5);
	CHECK_EQ(dd_rdma_parse_mr_dump(c.b, c.len, 9, &t), 0);
	CHECK_EQ(t.n, 5);
	CHECK_EQ(t.mr[4].pid, 104);
	dd_rdma_mrs_free(&t);
}

TEST(device_without_mrs_and_empty_dump)
{
	static struct nlbuf nb;
	struct dd_rdma_mrs t = { 0 };

	msg_begin(&nb, MR_TYPE, NLM_F_MULTI, 2);
	attr_u32(&nb, RDMA_NLDEV_ATTR_DEV_INDEX, 1);
	attr_str(&nb, RDMA_NLDEV_ATTR_DEV_NAME, "rxe1");
	msg_end(&nb);
	done_msg(&nb, 2);
	CHECK_EQ(dd_rdma_parse_mr_dump(nb.b, nb.len, 2, &t), 0);
	CHECK_EQ(t.n, 0);
	CHECK_EQ(dd_rdma_parse_mr_dump(nb.b, 0, 2, &t), 1); /* nothing yet: go on */
}

TEST(nlmsg_error_gives_its_errno)
{
	static struct nlbuf nb, ack;
	struct dd_rdma_mrs t = { 0 };

	error_msg(&nb, 4, -EPERM);
	CHECK_EQ(dd_rdma_parse_mr_dump(nb.b, nb.len, 4, &t), -EPERM);
	error_msg(&ack, 4, 0);
	CHECK_EQ(dd_rdma_parse_mr_dump(ack.b, ack.len, 4, &t), 0);
	/* An error message too short to hold its struct nlmsgerr. */
	((struct nlmsghdr *)nb.b)->nlmsg_len = NLMSG_HDRLEN + 2;
	CHECK_EQ(dd_rdma_parse_mr_dump(nb.b, NLMSG_ALIGN(NLMSG_HDRLEN + 2), 4, &t), -EBADMSG);
	CHECK_EQ(t.n, 0);
}

/* Answers to an earlier request (another sequence number) are skipped, even its DONE. */
TEST(stale_sequence_is_skipped)
{
	static struct nlbuf nb;
	struct dd_rdma_mrs t = { 0 };

	mr_msg(&nb, 1, 0, 2);
	done_msg(&nb, 1);
	mr_msg(&nb, 2, 5, 1);
	CHECK_EQ(dd_rdma_parse_mr_dump(nb.b, nb.len, 2, &t), 1);
	CHECK_EQ(t.n, 1);
	CHECK_EQ(t.mr[0].pid, 105);
	dd_rdma_mrs_free(&t);
}

TEST(truncated_and_lying_lengths)
{
	static struct nlbuf nb;
	struct dd_rdma_mrs t = { 0 };
	struct nlmsghdr *h = (struct nlmsghdr *)nb.b;
	size_t full;

	mr_msg(&nb, 3, 0, 2);
	full = nb.len;
	/* Every cut short of the whole message is rejected, never read past. */
	for (size_t cut = 1; cut < full; cut++) {
		uint8_t *copy = malloc(cut);

		CHECK(copy);
		memcpy(copy, nb.b, cut);
		CHECK_EQ(dd_rdma_parse_mr_dump(copy, cut, 3, &t), -EBADMSG);
		free(copy);
		dd_rdma_mrs_free(&t);
	}
	/* The message claims less than a header, or more than was received. */
	h->nlmsg_len = NLMSG_HDRLEN - 1;
	CHECK_EQ(dd_rdma_parse_mr_dump(nb.b, full, 3, &t), -EBADMSG);
	h->nlmsg_len = (uint32_t)full + 4;
	CHECK_EQ(dd_rdma_parse_mr_dump(nb.b, full, 3, &t), -EBADMSG);
	/* The message ends inside an attribute: its header says so. */
	h->nlmsg_len = NLMSG_HDRLEN + NLA_HDRLEN + 2;
	CHECK_EQ(dd_rdma_parse_mr_dump(nb.b, NLMSG_ALIGN(h->nlmsg_len), 3, &t), -EBADMSG);
	CHECK_EQ(t.n, 0);
}

TEST(bad_attributes_are_rejected)
{
	static struct nlbuf nb;
	struct dd_rdma_mrs t = { 0 };
	uint16_t short_len = 7;
	char unterminated[4] = { 'r', 'x', 'e', '0' };

	/* An attribute whose length is below its own header. */
	msg_begin(&nb, MR_TYPE, NLM_F_MULTI, 1);
	attr_u32(&nb, RDMA_NLDEV_ATTR_DEV_INDEX, 1);
	((struct nlattr *)(nb.b + nb.len - NLA_HDRLEN - 4))->nla_len = NLA_HDRLEN - 1;
	msg_end(&nb);
	CHECK_EQ(dd_rdma_parse_mr_dump(nb.b, nb.len, 1, &t), -EBADMSG);

	/* A u32 attribute with two bytes of payload. */
	nb.len = 0;
	msg_begin(&nb, MR_TYPE, NLM_F_MULTI, 1);
	attr(&nb, RDMA_NLDEV_ATTR_DEV_INDEX, &short_len, sizeof(short_len));
	msg_end(&nb);
	CHECK_EQ(dd_rdma_parse_mr_dump(nb.b, nb.len, 1, &t), -EBADMSG);

	/* A device name without its NUL. */
	nb.len = 0;
	msg_begin(&nb, MR_TYPE, NLM_F_MULTI, 1);
	attr(&nb, RDMA_NLDEV_ATTR_DEV_NAME, unterminated, sizeof(unterminated));
	msg_end(&nb);
	CHECK_EQ(dd_rdma_parse_mr_dump(nb.b, nb.len, 1, &t), -EBADMSG);

	/* An MR entry whose nested length runs past the table. */
	nb.len = 0;
	msg_begin(&nb, MR_TYPE, NLM_F_MULTI, 1);
	nest_begin(&nb, RDMA_NLDEV_ATTR_RES_MR);
	mr_entry(&nb, 42, 4096, 1, 1);
	nest_end(&nb);
	((struct nlattr *)(nb.b + nb.nest[0] + NLA_HDRLEN))->nla_len += 8;
	msg_end(&nb);
	CHECK_EQ(dd_rdma_parse_mr_dump(nb.b, nb.len, 1, &t), -EBADMSG);

	/* A 64-bit length with four bytes. */
	nb.len = 0;
	msg_begin(&nb, MR_TYPE, NLM_F_MULTI, 1);
	nest_begin(&nb, RDMA_NLDEV_ATTR_RES_MR);
	nest_begin(&nb, RDMA_NLDEV_ATTR_RES_MR_ENTRY);
	attr_u32(&nb, RDMA_NLDEV_ATTR_RES_MRLEN, 4096);
	nest_end(&nb);
	nest_end(&nb);
	msg_end(&nb);
	CHECK_EQ(dd_rdma_parse_mr_dump(nb.b, nb.len, 1, &t), -EBADMSG);
	CHECK_EQ(t.n, 0);
}

TEST(device_list)
{
	static struct nlbuf nb;
	uint32_t idx[2];
	size_t n = 0;

	for (uint32_t i = 0; i < 3; i++) {
		msg_begin(&nb, DEV_TYPE, NLM_F_MULTI, 7);
		attr_u32(&nb, RDMA_NLDEV_ATTR_DEV_INDEX, 10 + i);
		attr_str(&nb, RDMA_NLDEV_ATTR_DEV_NAME, "rxe");
		msg_end(&nb);
		if (i == 1) {
			CHECK_EQ(dd_rdma_parse_dev_dump(nb.b, nb.len, 7, idx, &n, 2), 1);
			CHECK_EQ(n, 2);
			CHECK(idx[0] == 10 && idx[1] == 11);
		}
	}
	n = 0;
	CHECK_EQ(dd_rdma_parse_dev_dump(nb.b, nb.len, 7, idx, &n, 2), -E2BIG);
	/* A device message without an index. */
	nb.len = 0;
	msg_begin(&nb, DEV_TYPE, NLM_F_MULTI, 7);
	attr_str(&nb, RDMA_NLDEV_ATTR_DEV_NAME, "rxe");
	msg_end(&nb);
	n = 0;
	CHECK_EQ(dd_rdma_parse_dev_dump(nb.b, nb.len, 7, idx, &n, 2), -EBADMSG);
}

/* Whatever this machine has -- no RDMA, no devices, rxe -- the scan answers. */
TEST(live_scan_always_answers)
{
	struct dd_rdma_mrs t;

	dd_rdma_mrs_scan(&t);
	CHECK(t.scanned);
	printf("# %zu RDMA device(s), %zu MR(s)%s%s\n", t.devices, t.n, t.reason[0] ? ": " : "",
	       t.reason);
	if (t.devices == 0)
		CHECK(t.reason[0] && t.n == 0);
	for (size_t i = 0; i < t.n; i++)
		CHECK(t.mr[i].dev_name[0]);
	dd_rdma_mrs_free(&t);
}
