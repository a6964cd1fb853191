/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * RDMA memory regions of every process, from the RDMA netlink resource table
 * (NETLINK_RDMA, RDMA_NLDEV_CMD_RES_MR_GET): each MR's owner pid (or the
 * kernel module's name), length, MR number and keys -- but no address. So an
 * MR cannot be tied to a mapping: which MRs count as possible pins of a
 * device is the holder rule's (holder_rule.c).
 *
 * The kernel dumps resources of one device at a time (the request must name
 * a device index), so the scan lists the devices first (RDMA_NLDEV_CMD_GET
 * dump), then dumps the MRs of each. The parsers take a received buffer, not
 * a socket, so crafted input can test them. Nothing here logs or exits:
 * without RDMA netlink, without devices or without permission the table is
 * empty and says why.
 */
#include <errno.h>
#include <linux/netlink.h>
#include <rdma/rdma_netlink.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "rdma_res.h"

/* One dump reply can be a page or more; the kernel never sends more than this in one datagram. */
#define RDMA_RES_RECV_SIZE (64u << 10)
#define RDMA_RES_MAX_DEVS 64

/*
 * The next attribute of [*p, *p + *rem): 1 and *ret_nla, 0 at the end,
 * -EBADMSG if what is left is not a whole attribute.
 */
static int nla_next(const uint8_t **p, size_t *rem, const struct nlattr **ret_nla)
{
	const struct nlattr *nla = (const struct nlattr *)*p;
	size_t step;

	if (*rem == 0)
		return 0;
	if (*rem < NLA_HDRLEN || nla->nla_len < NLA_HDRLEN || nla->nla_len > *rem)
		return -EBADMSG;
	step = NLA_ALIGN(nla->nla_len);
	if (step > *rem)
		step = *rem; /* the last attribute may lack its padding */
	*p += step;
	*rem -= step;
	*ret_nla = nla;
	return 1;
}

static const void *nla_payload(const struct nlattr *nla)
{
	return (const uint8_t *)nla + NLA_HDRLEN;
}

static size_t nla_payload_len(const struct nlattr *nla)
{
	return nla->nla_len - NLA_HDRLEN;
}

static int nla_u32(const struct nlattr *nla, uint32_t *ret)
{
	if (nla_payload_len(nla) < sizeof(*ret))
		return -EBADMSG;
	memcpy(ret, nla_payload(nla), sizeof(*ret));
	return 0;
}

static int nla_u64(const struct nlattr *nla, uint64_t *ret)
{
	if (nla_payload_len(nla) < sizeof(*ret))
		return -EBADMSG;
	memcpy(ret, nla_payload(nla), sizeof(*ret)); /* 4-aligned only: copy */
	return 0;
}

/* A NUL-terminated string attribute into @buf (@size); -EBADMSG if it is not terminated. */
static int nla_str(const struct nlattr *nla, char *buf, size_t size)
{
	size_t len = nla_payload_len(nla);
	const char *s = nla_payload(nla);

	if (len == 0 || !memchr(s, '\0', len))
		return -EBADMSG;
	snprintf(buf, size, "%s", s);
	return 0;
}

static int nla_type(const struct nlattr *nla)
{
	return nla->nla_type & NLA_TYPE_MASK;
}

static int mrs_append(struct dd_rdma_mrs *t, const struct dd_rdma_mr *mr)
{
	if (t->n == t->cap) {
		size_t cap = t->cap ? t->cap * 2 : 16;
		struct dd_rdma_mr *n = realloc(t->mr, cap * sizeof(*n));

		if (!n)
			return -ENOMEM;
		t->mr = n;
		t->cap = cap;
	}
	t->mr[t->n++] = *mr;
	return 0;
}

/* One RDMA_NLDEV_ATTR_RES_MR_ENTRY nest. */
static int parse_mr_entry(const struct nlattr *entry, uint32_t dev_index, const char *dev_name,
			  struct dd_rdma_mrs *t)
{
	const uint8_t *p = nla_payload(entry);
	size_t rem = nla_payload_len(entry);
	struct dd_rdma_mr mr = { .dev_index = dev_index };
	const struct nlattr *nla;
	int r;

	snprintf(mr.dev_name, sizeof(mr.dev_name), "%s", dev_name);
	while ((r = nla_next(&p, &rem, &nla)) > 0) {
		uint32_t v;

		switch (nla_type(nla)) {
		case RDMA_NLDEV_ATTR_RES_PID:
			r = nla_u32(nla, &v);
			mr.pid = (pid_t)v;
			break;
		case RDMA_NLDEV_ATTR_RES_KERN_NAME:
			r = nla_str(nla, mr.kern_name, sizeof(mr.kern_name));
			break;
		case RDMA_NLDEV_ATTR_RES_MRLEN:
			r = nla_u64(nla, &mr.length);
			mr.has_length = r == 0;
			break;
		case RDMA_NLDEV_ATTR_RES_IOVA:
			r = nla_u64(nla, &mr.iova);
			break;
		case RDMA_NLDEV_ATTR_RES_MRN:
			r = nla_u32(nla, &mr.mrn);
			mr.has_mrn = r == 0;
			break;
		case RDMA_NLDEV_ATTR_RES_LKEY:
			r = nla_u32(nla, &mr.lkey);
			mr.has_keys = r == 0;
			break;
		case RDMA_NLDEV_ATTR_RES_RKEY:
			r = nla_u32(nla, &mr.rkey);
			mr.has_keys = r == 0;
			break;
		default:
			r = 0; /* PDN, driver details, padding, newer attributes */
			break;
		}
		if (r < 0)
			return r;
	}
	if (r < 0)
		return r;
	return mrs_append(t, &mr);
}

/* The attributes of one RES_MR_GET reply message: the device, then a table of MRs. */
static int parse_mr_msg(const struct nlmsghdr *nlh, struct dd_rdma_mrs *t)
{
	const uint8_t *p = NLMSG_DATA(nlh);
	size_t rem = nlh->nlmsg_len - NLMSG_HDRLEN;
	const struct nlattr *nla, *table = NULL;
	uint32_t dev_index = 0;
	char dev_name[sizeof(t->mr->dev_name)] = "";
	int r;

	while ((r = nla_next(&p, &rem, &nla)) > 0) {
		switch (nla_type(nla)) {
		case RDMA_NLDEV_ATTR_DEV_INDEX:
			r = nla_u32(nla, &dev_index);
			break;
		case RDMA_NLDEV_ATTR_DEV_NAME:
			r = nla_str(nla, dev_name, sizeof(dev_name));
			break;
		case RDMA_NLDEV_ATTR_RES_MR:
			table = nla;
			break;
		}
		if (r < 0)
			return r;
	}
	if (r < 0)
		return r;
	if (!table)
		return 0; /* a device without MRs */
	p = nla_payload(table);
	rem = nla_payload_len(table);
	while ((r = nla_next(&p, &rem, &nla)) > 0) {
		if (nla_type(nla) != RDMA_NLDEV_ATTR_RES_MR_ENTRY)
			continue;
		r = parse_mr_entry(nla, dev_index, dev_name, t);
		if (r < 0)
			return r;
	}
	return r;
}

/* The attributes of one CMD_GET reply message: a device's index. */
static int parse_dev_msg(const struct nlmsghdr *nlh, uint32_t *idx, size_t *n, size_t cap)
{
	const uint8_t *p = NLMSG_DATA(nlh);
	size_t rem = nlh->nlmsg_len - NLMSG_HDRLEN;
	const struct nlattr *nla;
	int r;

	while ((r = nla_next(&p, &rem, &nla)) > 0) {
		uint32_t v;

		if (nla_type(nla) != RDMA_NLDEV_ATTR_DEV_INDEX)
			continue;
		r = nla_u32(nla, &v);
		if (r < 0)
			return r;
		if (*n == cap)
			return -E2BIG;
		idx[(*n)++] = v;
		return 0;
	}
	return r < 0 ? r : -EBADMSG; /* a device without an index */
}

/*
 * Walk the netlink messages of one received buffer: those of @type and @seq
 * go to @parse (MR table) or to the device list. Return 1 if the dump goes on
 * in the next buffer, 0 at NLMSG_DONE, -errno from NLMSG_ERROR, -EBADMSG on
 * malformed input.
 */
static int walk(const void *buf, size_t len, uint32_t seq, uint16_t type, struct dd_rdma_mrs *t,
		uint32_t *idx, size_t *n, size_t cap)
{
	const uint8_t *p = buf;

	while (len > 0) {
		const struct nlmsghdr *nlh = (const struct nlmsghdr *)p;
		size_t step;
		int r = 0;

		if (len < NLMSG_HDRLEN || nlh->nlmsg_len < NLMSG_HDRLEN || nlh->nlmsg_len > len)
			return -EBADMSG;
		step = NLMSG_ALIGN(nlh->nlmsg_len);
		if (step > len)
			step = len;
		if (nlh->nlmsg_seq == seq) {
			if (nlh->nlmsg_type == NLMSG_DONE)
				return 0;
			if (nlh->nlmsg_type == NLMSG_ERROR) {
				struct nlmsgerr e;

				if (nlh->nlmsg_len < NLMSG_HDRLEN + sizeof(e))
					return -EBADMSG;
				memcpy(&e, NLMSG_DATA(nlh), sizeof(e));
				/* An acknowledgement ends the request too. */
				return e.error < 0 ? e.error : e.error > 0 ? -EPROTO : 0;
			}
			if (nlh->nlmsg_type == type)
				r = t ? parse_mr_msg(nlh, t) : parse_dev_msg(nlh, idx, n, cap);
			/* NLMSG_NOOP, and anything else, is skipped. */
			if (r < 0)
				return r;
			if (!(nlh->nlmsg_flags & NLM_F_MULTI))
				return 0; /* a single answer, not a dump */
		}
		/* Another sequence number: a stale answer to an earlier request. */
		p += step;
		len -= step;
	}
	return 1;
}

int dd_rdma_parse_mr_dump(const void *buf, size_t len, uint32_t seq, struct dd_rdma_mrs *t)
{
	return walk(buf, len, seq, RDMA_NL_GET_TYPE(RDMA_NL_NLDEV, RDMA_NLDEV_CMD_RES_MR_GET), t,
		    NULL, NULL, 0);
}

int dd_rdma_parse_dev_dump(const void *buf, size_t len, uint32_t seq, uint32_t *idx, size_t *n,
			   size_t cap)
{
	return walk(buf, len, seq, RDMA_NL_GET_TYPE(RDMA_NL_NLDEV, RDMA_NLDEV_CMD_GET), NULL, idx,
		    n, cap);
}

/* Send a dump request of @cmd, for device @dev_index unless it is UINT32_MAX. */
static int request(int fd, uint16_t cmd, uint32_t seq, uint32_t dev_index)
{
	struct {
		struct nlmsghdr nlh;
		struct nlattr nla;
		uint32_t index;
	} req;
	struct sockaddr_nl sa = { .nl_family = AF_NETLINK };
	ssize_t n;

	memset(&req, 0, sizeof(req));
	req.nlh.nlmsg_len = NLMSG_HDRLEN;
	req.nlh.nlmsg_type = RDMA_NL_GET_TYPE(RDMA_NL_NLDEV, cmd);
	req.nlh.nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
	req.nlh.nlmsg_seq = seq;
	if (dev_index != UINT32_MAX) {
		req.nla.nla_type = RDMA_NLDEV_ATTR_DEV_INDEX;
		req.nla.nla_len = NLA_HDRLEN + sizeof(req.index);
		req.index = dev_index;
		req.nlh.nlmsg_len += NLA_ALIGN(req.nla.nla_len);
	}
	n = sendto(fd, &req, req.nlh.nlmsg_len, 0, (struct sockaddr *)&sa, sizeof(sa));
	if (n < 0)
		return -errno;
	return n == (ssize_t)req.nlh.nlmsg_len ? 0 : -EIO;
}

/* Receive and parse until the dump of @seq ends. */
static int receive(int fd, void *buf, uint32_t seq, uint16_t cmd, struct dd_rdma_mrs *t,
		   uint32_t *idx, size_t *n, size_t cap)
{
	for (;;) {
		struct sockaddr_nl from;
		socklen_t flen = sizeof(from);
		ssize_t len;
		int r;

		len = recvfrom(fd, buf, RDMA_RES_RECV_SIZE, MSG_TRUNC, (struct sockaddr *)&from,
			       &flen);
		if (len < 0) {
			if (errno == EINTR)
				continue;
			return -errno; /* EAGAIN: the receive timeout passed */
		}
		if ((size_t)len > RDMA_RES_RECV_SIZE)
			return -EMSGSIZE;
		if (flen < sizeof(from) || from.nl_pid != 0)
			continue; /* only the kernel answers */
		if (cmd == RDMA_NLDEV_CMD_GET)
			r = dd_rdma_parse_dev_dump(buf, (size_t)len, seq, idx, n, cap);
		else
			r = dd_rdma_parse_mr_dump(buf, (size_t)len, seq, t);
		if (r <= 0)
			return r;
	}
}

static void reason(struct dd_rdma_mrs *t, const char *what, int err)
{
	const char *why = strerror(-err);

	if (err == -EPROTONOSUPPORT || err == -EAFNOSUPPORT)
		why = "this kernel has no RDMA netlink (ib_core not loaded)";
	else if (err == -EPERM || err == -EACCES)
		why = "permission denied (the MR keys need CAP_NET_ADMIN; the MRs of processes "
		      "in other network or PID namespaces are not listed)";
	else if (err == -EAGAIN)
		why = "the kernel did not answer in time";
	snprintf(t->reason, sizeof(t->reason), "%s: %s", what, why);
}

void dd_rdma_mrs_scan(struct dd_rdma_mrs *t)
{
	struct timeval tv = { .tv_sec = 1 };
	uint32_t idx[RDMA_RES_MAX_DEVS], seq = 1;
	size_t n_devs = 0;
	void *buf = NULL;
	int fd, r;

	memset(t, 0, sizeof(*t));
	t->scanned = true;
	fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_RDMA);
	if (fd < 0) {
		reason(t, "RDMA netlink", -errno);
		return;
	}
	/* The daemon's loop waits for this: bound it. */
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	buf = malloc(RDMA_RES_RECV_SIZE);
	if (!buf) {
		reason(t, "RDMA netlink", -ENOMEM);
		goto out;
	}
	r = request(fd, RDMA_NLDEV_CMD_GET, seq, UINT32_MAX);
	if (r == 0)
		r = receive(fd, buf, seq, RDMA_NLDEV_CMD_GET, NULL, idx, &n_devs, RDMA_RES_MAX_DEVS);
	if (r < 0 && !(r == -E2BIG && n_devs)) {
		reason(t, "listing RDMA devices", r);
		goto out;
	}
	if (n_devs == 0) {
		snprintf(t->reason, sizeof(t->reason), "no RDMA devices");
		goto out;
	}
	t->devices = n_devs;
	for (size_t i = 0; i < n_devs; i++) {
		r = request(fd, RDMA_NLDEV_CMD_RES_MR_GET, ++seq, idx[i]);
		if (r == 0)
			r = receive(fd, buf, seq, RDMA_NLDEV_CMD_RES_MR_GET, t, NULL, NULL, 0);
		if (r == -ENODEV || r == -EINVAL) {
			t->devices--; /* the device went away since the listing */
			continue;
		}
		if (r < 0) {
			char what[64];

			snprintf(what, sizeof(what), "MRs of RDMA device %u", idx[i]);
			reason(t, what, r);
			t->incomplete = true;
			if (r == -EAGAIN || r == -EBADMSG || r == -EMSGSIZE)
				break; /* the socket's stream is out of step: stop */
		}
	}
out:
	free(buf);
	close(fd);
}

void dd_rdma_mrs_free(struct dd_rdma_mrs *t)
{
	free(t->mr);
	t->mr = NULL;
	t->n = t->cap = 0;
}
