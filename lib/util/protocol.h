/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The daxpoold wire protocol, shared by the library's client (lib/client.c),
 * the daemon (tools/daxpoold/) and daxpoolctl. Linked statically into each.
 *
 * Transport: a SOCK_SEQPACKET unix socket. One datagram carries one or more
 * whole messages back to back (the client batches its events); a datagram is
 * at most DP_PROTO_MAX_DGRAM bytes. Every message is
 *
 *	u32 magic    DP_PROTO_MAGIC
 *	u16 version  DP_PROTO_VERSION (exact match)
 *	u16 type     enum dp_msg_type
 *	u32 length   payload bytes that follow (<= DP_PROTO_MAX_PAYLOAD)
 *	u32 seq      sender's sequence number (informational)
 *	payload      the fields of the type, in order, little-endian; a string is
 *	             u16 length + bytes (no NUL inside, bounded per field); a text
 *	             is u32 length + bytes (<= DP_PROTO_MAX_TEXT)
 *
 * The decoder checks everything: magic, version, type, that the length fits
 * both the limit and the datagram, that the payload is consumed exactly, and
 * each field's range. Any failure is a protocol error: the receiver closes
 * that connection (and only that one).
 *
 * Conversation:
 *	library client:  HELLO(role CLIENT) -> HELLO_OK; then REGION/MAP/PIN
 *	                 ADD/DEL events at any time; the daemon sends REVOKE
 *	                 (zap a range, report REVOKE_DONE when idle) and UNZAP
 *	                 (the request ended without release: reopen the range
 *	                 when idle) or RELEASED (it ended with the release: the
 *	                 range stays zapped; forget the request).
 *	                 PIN_OWNER (version 3) gives a pin the description its
 *	                 process set with daxpool_pin_set_owner() ("peer
 *	                 10.0.0.2:4791 rkey 0x1a data"), for status and pins only:
 *	                 it is the client's word and decides nothing.
 *	                 REGION_STATE reports a region's file lease (held, not
 *	                 possible and why, given up to an outsider) whenever it
 *	                 changes. The daemon sends REGION_GONE when the device
 *	                 under a region went away without a release through it
 *	                 (udev saw it removed or unbound): the client marks the
 *	                 region dead.
 *	                 The daemon answers a registration it does not record
 *	                 with REFUSED (see below); it is not an error of the
 *	                 connection.
 *	daxpoolctl:      HELLO(role CTL) -> HELLO_OK; STATUS or OP; the daemon
 *	                 answers with REPLY messages (JSON text in chunks, the last
 *	                 one without DP_REPLY_MORE) and the connection is done.
 *	Either role:     instead of HELLO_OK the daemon may send REFUSED (type
 *	                 HELLO, -EUSERS: too many connections) and close.
 *
 * Descriptors (version 2): a REGION_ADD is proof of access, not a claim. The
 * datagram that carries it carries, as SCM_RIGHTS, one descriptor per
 * REGION_ADD in it, in the order of the messages (at most DP_PROTO_MAX_FDS
 * per datagram: the sender cuts a datagram there): the region's own open file
 * or device. The daemon takes the identity (device, inode, rdev, size, kind,
 * the devdax name from sysfs, a path for display) from the kernel through
 * that descriptor and closes it at once; the message itself carries only the
 * client's id of the region. A REGION_ADD without a descriptor, or with one
 * that is neither a regular file nor a device-dax device, is answered with
 * REFUSED and not recorded. Descriptors that come with any other datagram are
 * closed unread; a datagram with more than DP_PROTO_MAX_FDS (MSG_CTRUNC)
 * closes the connection.
 *
 * Compatibility: version 1 put dev, ino, rdev, size, kind, path and devname
 * in REGION_ADD and had no descriptor: the daemon trusted them. Version 2
 * removed those fields, so a version 1 client is refused at its HELLO (the
 * decoder wants the exact version) instead of registering on its word, and
 * it works on without the daemon as it does when none runs. Version 3 added
 * PIN_OWNER (a version 2 daemon would close the connection at it). The library,
 * daemon and daxpoolctl of one release always speak the same version.
 */
#ifndef DAXPOOL_UTIL_PROTOCOL_H
#define DAXPOOL_UTIL_PROTOCOL_H

#include <stddef.h>
#include <stdint.h>

#define DP_PROTO_MAGIC 0x44585044u /* "DPXD" read as little-endian bytes D P X D */
#define DP_PROTO_VERSION 3
#define DP_PROTO_HDR_SIZE 16
#define DP_PROTO_MAX_DGRAM 65536
#define DP_PROTO_MAX_PAYLOAD (DP_PROTO_MAX_DGRAM - DP_PROTO_HDR_SIZE)
#define DP_PROTO_MAX_PATH 4095 /* bytes of a path string */
#define DP_PROTO_MAX_DEVNAME 31
#define DP_PROTO_MAX_TEXT 60000 /* bytes of one REPLY chunk */
#define DP_PROTO_MAX_REASON 255 /* bytes of a REFUSED reason */
#define DP_PROTO_MAX_OWNER 63	 /* bytes of a PIN_OWNER text (daxpool_pin_set_owner()) */
#define DP_PROTO_MAX_FDS 32	 /* descriptors (REGION_ADDs) per datagram */

#define DP_DAEMON_SOCKET_DEFAULT "/run/daxpool/daxpoold.sock"

enum dp_msg_type {
	DP_MSG_HELLO = 1,
	DP_MSG_HELLO_OK = 2,
	DP_MSG_REGION_ADD = 3,
	DP_MSG_REGION_DEL = 4,
	DP_MSG_MAP_ADD = 5,
	DP_MSG_MAP_DEL = 6,
	DP_MSG_PIN_ADD = 7,
	DP_MSG_PIN_DEL = 8,
	DP_MSG_REVOKE = 9,
	DP_MSG_REVOKE_DONE = 10,
	DP_MSG_UNZAP = 11,
	DP_MSG_STATUS = 12,
	DP_MSG_OP = 13,
	DP_MSG_REPLY = 14,
	DP_MSG_RELEASED = 15,
	DP_MSG_REGION_STATE = 16,
	DP_MSG_REGION_GONE = 17,
	DP_MSG_REFUSED = 18,
	DP_MSG_PIN_OWNER = 19,
	DP_MSG_TYPE_END
};

enum dp_role {
	DP_ROLE_CLIENT = 1, /* a process using libdaxpool */
	DP_ROLE_CTL = 2,    /* daxpoolctl: one request, then done */
};

enum dp_op {
	DP_OP_RELEASE = 1,  /* drain every holder, then disable the device */
	DP_OP_TRUNCATE = 2, /* drain [offset, end), ftruncate(offset), reopen */
	DP_OP_PUNCH = 3,    /* drain [offset, +length), punch a hole, reopen */
};

#define DP_OP_FORCE (1u << 0)	 /* proceed despite holders outside daxpool */
#define DP_OP_TEARDOWN (1u << 1) /* release: then destroy the namespace, disable and delete
				    its CXL region (tools/daxpoold/teardown.h) */
#define DP_OP_FLAGS (DP_OP_FORCE | DP_OP_TEARDOWN)
#define DP_REPLY_MORE (1u << 0) /* more REPLY chunks follow */
#define DP_LEASE_STATE_MAX 5	/* enum daxpool_lease_state's largest value */

struct dp_msg {
	uint16_t type;
	uint32_t seq;
	union {
		struct {
			uint32_t role;
		} hello;
		struct {
			uint32_t version;
		} hello_ok;
		struct {
			uint64_t id; /* the rest comes from the descriptor passed with it */
		} region_add;
		struct {
			uint64_t id;
		} del; /* REGION_DEL, MAP_DEL, PIN_DEL */
		struct {
			uint64_t id, region_id, offset, length, created_ns;
			uint32_t tid;
		} map_add;
		struct {
			uint64_t id, region_id, offset, length, created_ns;
			uint32_t kind, access, tid;
		} pin_add;
		struct {
			uint64_t id; /* a pin's */
			char text[DP_PROTO_MAX_OWNER + 1]; /* its owner, in the client's words */
		} pin_owner;
		struct {
			uint64_t req, region_id, offset, length; /* length 0: to the end */
		} revoke; /* REVOKE, UNZAP, RELEASED */
		struct {
			uint64_t req, region_id;
			int32_t status; /* 0: idle; < 0: the zap failed */
		} revoke_done;
		struct {
			uint64_t region_id;
			uint32_t lease;	    /* enum daxpool_lease_state */
			int32_t lease_error; /* 0, or why no lease is held (negative errno) */
			uint64_t lease_breaks; /* leases given up to outsiders so far */
		} region_state;
		struct {
			uint64_t region_id;
			int32_t reason; /* negative errno: -ENODEV removed, -ENXIO unbound */
		} region_gone;
		struct {
			uint32_t type; /* what was refused: REGION_ADD, MAP_ADD, PIN_ADD, HELLO */
			uint64_t id;   /* its id (0 for HELLO) */
			int32_t status; /* negative errno: -EBADF no descriptor, -EINVAL not a
					   file nor devdax, -EDQUOT a per-client limit,
					   -EUSERS too many connections */
			char reason[DP_PROTO_MAX_REASON + 1]; /* in words, for the log */
		} refused;
		struct {
			char target[DP_PROTO_MAX_PATH + 1]; /* "" for everything */
		} status;
		struct {
			uint32_t op, flags;
			int32_t timeout_ms; /* -1: the daemon's default */
			uint64_t offset, length;
			char target[DP_PROTO_MAX_PATH + 1];
		} op;
		struct {
			int32_t status; /* 0 or a negative errno */
			uint32_t flags;
			uint32_t text_len;
			const char *text; /* points into the decoded buffer; not NUL-terminated */
		} reply;
	};
};

/*
 * Encode @m at @buf (room for @cap bytes). Return: bytes written, -ENOBUFS if
 * it does not fit, -EINVAL if @m itself is invalid (would not decode).
 */
int dp_proto_encode(const struct dp_msg *m, uint32_t seq, uint8_t *buf, size_t cap);

/*
 * Decode the message at the start of @buf (@len bytes left in the datagram).
 * Return: bytes consumed (> 0), or
 *	-ENODATA  fewer bytes than the header or than its length says (truncated);
 *	-EBADMSG  wrong magic;
 *	-EPROTO   another version;
 *	-EMSGSIZE length over DP_PROTO_MAX_PAYLOAD;
 *	-ENOMSG   unknown type;
 *	-EINVAL   a field out of range, a bad string, or bytes left over.
 */
int dp_proto_decode(const uint8_t *buf, size_t len, struct dp_msg *m);

/* Encode one message and send it as one datagram. Return: 0 or -errno. */
int dp_proto_send(int fd, const struct dp_msg *m, uint32_t seq);

/*
 * Send @len bytes of whole encoded messages as one datagram with @n_fds
 * descriptors (SCM_RIGHTS; at most DP_PROTO_MAX_FDS; 0: none). Blocks unless
 * @flags has MSG_DONTWAIT. Return: 0 or -errno.
 */
int dp_proto_send_fds(int fd, const void *buf, size_t len, const int *fds, size_t n_fds,
		      int flags);

/*
 * How many descriptors the datagram @buf (@len bytes of encoded messages)
 * must carry: its REGION_ADDs, counted by their headers (no validation).
 */
size_t dp_proto_fds_wanted(const uint8_t *buf, size_t len);

/*
 * Connect to the daemon at @path (NULL: the default), say HELLO as @role and
 * wait up to @timeout_ms for HELLO_OK. Return: a SOCK_CLOEXEC socket, or
 * -ENOENT / -ECONNREFUSED (no daemon), -EACCES, -ETIMEDOUT, -EPROTO (not a
 * daxpoold, or another version), -ENAMETOOLONG, or the status of the
 * daemon's REFUSED (-EUSERS: too many connections).
 */
int dp_proto_connect(const char *path, uint32_t role, int timeout_ms);

/* The name of a message type, "?" if unknown. */
const char *dp_proto_type_name(unsigned int type);

#endif /* DAXPOOL_UTIL_PROTOCOL_H */
