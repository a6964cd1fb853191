/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The messages of libdaxpool-remote, sent with RDMA SEND on each peer's
 * connection. Every message is DP_RWIRE_SIZE bytes, little-endian:
 *
 *   0 magic u32 "PDRM"   4 version u16   6 type u16   8 size u32 (= 96)
 *  12 seq u32           16 id u64       24 addr u64  32 length u64
 *  40 rkey u32          44 status i32   48 access u32 52 mode u32
 *  56 name[40] (NUL-terminated, zero-padded)
 *
 * GRANT_REQ   peer -> server: seq, access, name
 * GRANT       server -> peer: seq (of the request), status (0 or -errno); on
 *             success id, addr, length, rkey, mode, access, name
 * REVOKE      server -> peer: id. Sent after the grant's rkey stopped working
 * REVOKE_ACK  peer -> server: id. The peer has no operation on it in flight
 * RELEASE     peer -> server: id. The peer gives the grant back
 *
 * The decoder takes nothing on trust: a message of another size, magic or
 * version, an unknown type, a field that type does not carry set to anything
 * but zero, a name that is empty, unterminated or not zero-padded, unknown
 * access bits or a status outside [-4095, 0] are refused. Both ends decode
 * what the other sends; the server drops a peer that sends one such message.
 */
#ifndef DAXPOOL_REMOTE_WIRE_H
#define DAXPOOL_REMOTE_WIRE_H

#include <stddef.h>
#include <stdint.h>

#define DP_RWIRE_MAGIC 0x4d524450u /* "PDRM" as little-endian bytes */
#define DP_RWIRE_VERSION 1
#define DP_RWIRE_SIZE 96
#define DP_RWIRE_NAME_MAX 39 /* bytes of an export name, without the NUL */

enum dp_rwire_type {
	DP_RWIRE_GRANT_REQ = 1,
	DP_RWIRE_GRANT = 2,
	DP_RWIRE_REVOKE = 3,
	DP_RWIRE_REVOKE_ACK = 4,
	DP_RWIRE_RELEASE = 5,
	DP_RWIRE_TYPE_END
};

struct dp_rwire_msg {
	uint16_t type;
	uint32_t seq;
	uint64_t id, addr, length;
	uint32_t rkey;
	int32_t status;
	uint32_t access; /* DAXPOOL_REMOTE_READ | DAXPOOL_REMOTE_WRITE */
	uint32_t mode;	 /* enum daxpool_remote_grant_mode */
	char name[DP_RWIRE_NAME_MAX + 1];
};

/*
 * Encode @m into @buf (DP_RWIRE_SIZE bytes). Return: DP_RWIRE_SIZE, or
 * -EINVAL if @m would not decode (the same checks as the decoder).
 */
int dp_rwire_encode(const struct dp_rwire_msg *m, uint8_t buf[DP_RWIRE_SIZE]);

/*
 * Decode the @len bytes at @buf into @m. Return: 0, or
 *	-EMSGSIZE  @len is not DP_RWIRE_SIZE;
 *	-EBADMSG   wrong magic;
 *	-EPROTO    another version, or an unknown type;
 *	-EINVAL    a field out of range for its type (see above).
 * @m is written only on success.
 */
int dp_rwire_decode(const uint8_t *buf, size_t len, struct dp_rwire_msg *m);

/* The type's name ("GRANT_REQ", ...), "?" for an unknown one. */
const char *dp_rwire_type_name(unsigned int type);

#endif
