/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The messages of libdaxpool-remote: encoding and a decoder that trusts nothing (wire.h). */
#include <endian.h>
#include <errno.h>
#include <stdbool.h>
#include <string.h>

#include "daxpool-remote.h"
#include "wire.h"

#define F_ID (1u << 0)
#define F_ADDR (1u << 1)
#define F_LENGTH (1u << 2)
#define F_RKEY (1u << 3)
#define F_STATUS (1u << 4)
#define F_ACCESS (1u << 5)
#define F_MODE (1u << 6)
#define F_NAME (1u << 7)

/* Which fields each type carries; the rest must be zero. */
static unsigned int type_fields(unsigned int type, int32_t status)
{
	switch (type) {
	case DP_RWIRE_GRANT_REQ: return F_ACCESS | F_NAME;
	case DP_RWIRE_GRANT:
		return status ? F_STATUS :
				F_ID | F_ADDR | F_LENGTH | F_RKEY | F_ACCESS | F_MODE | F_NAME;
	case DP_RWIRE_REVOKE:
	case DP_RWIRE_REVOKE_ACK:
	case DP_RWIRE_RELEASE: return F_ID;
	default: return 0;
	}
}

/* A name is 1..DP_RWIRE_NAME_MAX bytes, NUL-terminated, zero-padded. */
static bool name_ok(const char name[DP_RWIRE_NAME_MAX + 1])
{
	size_t n = strnlen(name, DP_RWIRE_NAME_MAX + 1);

	if (n == 0 || n > DP_RWIRE_NAME_MAX)
		return false;
	for (size_t i = n; i <= DP_RWIRE_NAME_MAX; i++)
		if (name[i])
			return false;
	return true;
}

static bool name_zero(const char name[DP_RWIRE_NAME_MAX + 1])
{
	for (size_t i = 0; i <= DP_RWIRE_NAME_MAX; i++)
		if (name[i])
			return false;
	return true;
}

static int check(const struct dp_rwire_msg *m)
{
	unsigned int f;

	if (m->type == 0 || m->type >= DP_RWIRE_TYPE_END)
		return -EPROTO;
	if (m->status > 0 || m->status < -4095)
		return -EINVAL;
	if (m->status && m->type != DP_RWIRE_GRANT)
		return -EINVAL;
	f = type_fields(m->type, m->status);
	if ((!(f & F_ID) && m->id) || (!(f & F_ADDR) && m->addr) ||
	    (!(f & F_LENGTH) && m->length) || (!(f & F_RKEY) && m->rkey) ||
	    (!(f & F_ACCESS) && m->access) || (!(f & F_MODE) && m->mode))
		return -EINVAL;
	if ((f & F_NAME) ? !name_ok(m->name) : !name_zero(m->name))
		return -EINVAL;
	if ((f & F_ACCESS) &&
	    (!m->access || (m->access & ~(DAXPOOL_REMOTE_READ | DAXPOOL_REMOTE_WRITE))))
		return -EINVAL;
	if ((f & F_MODE) && m->mode != DAXPOOL_REMOTE_WINDOW && m->mode != DAXPOOL_REMOTE_MR)
		return -EINVAL;
	if ((f & F_LENGTH) && (!m->length || m->addr + m->length < m->addr))
		return -EINVAL;
	return 0;
}

static void put16(uint8_t *p, uint16_t v)
{
	v = htole16(v);
	memcpy(p, &v, 2);
}

static void put32(uint8_t *p, uint32_t v)
{
	v = htole32(v);
	memcpy(p, &v, 4);
}

static void put64(uint8_t *p, uint64_t v)
{
	v = htole64(v);
	memcpy(p, &v, 8);
}

static uint16_t get16(const uint8_t *p)
{
	uint16_t v;

	memcpy(&v, p, 2);
	return le16toh(v);
}

static uint32_t get32(const uint8_t *p)
{
	uint32_t v;

	memcpy(&v, p, 4);
	return le32toh(v);
}

static uint64_t get64(const uint8_t *p)
{
	uint64_t v;

	memcpy(&v, p, 8);
	return le64toh(v);
}

int dp_rwire_encode(const struct dp_rwire_msg *m, uint8_t buf[DP_RWIRE_SIZE])
{
	if (check(m) < 0)
		return -EINVAL;
	memset(buf, 0, DP_RWIRE_SIZE);
	put32(buf + 0, DP_RWIRE_MAGIC);
	put16(buf + 4, DP_RWIRE_VERSION);
	put16(buf + 6, m->type);
	put32(buf + 8, DP_RWIRE_SIZE);
	put32(buf + 12, m->seq);
	put64(buf + 16, m->id);
	put64(buf + 24, m->addr);
	put64(buf + 32, m->length);
	put32(buf + 40, m->rkey);
	put32(buf + 44, (uint32_t)m->status);
	put32(buf + 48, m->access);
	put32(buf + 52, m->mode);
	memcpy(buf + 56, m->name, DP_RWIRE_NAME_MAX + 1);
	return DP_RWIRE_SIZE;
}

int dp_rwire_decode(const uint8_t *buf, size_t len, struct dp_rwire_msg *ret)
{
	struct dp_rwire_msg m;
	int r;

	if (len != DP_RWIRE_SIZE)
		return -EMSGSIZE;
	if (get32(buf) != DP_RWIRE_MAGIC)
		return -EBADMSG;
	if (get16(buf + 4) != DP_RWIRE_VERSION)
		return -EPROTO;
	if (get32(buf + 8) != DP_RWIRE_SIZE)
		return -EINVAL;
	memset(&m, 0, sizeof(m));
	m.type = get16(buf + 6);
	m.seq = get32(buf + 12);
	m.id = get64(buf + 16);
	m.addr = get64(buf + 24);
	m.length = get64(buf + 32);
	m.rkey = get32(buf + 40);
	m.status = (int32_t)get32(buf + 44);
	m.access = get32(buf + 48);
	m.mode = get32(buf + 52);
	memcpy(m.name, buf + 56, DP_RWIRE_NAME_MAX + 1);
	r = check(&m);
	if (r < 0)
		return r;
	*ret = m;
	return 0;
}

const char *dp_rwire_type_name(unsigned int type)
{
	static const char *const names[DP_RWIRE_TYPE_END] = {
		[DP_RWIRE_GRANT_REQ] = "GRANT_REQ",   [DP_RWIRE_GRANT] = "GRANT",
		[DP_RWIRE_REVOKE] = "REVOKE",	      [DP_RWIRE_REVOKE_ACK] = "REVOKE_ACK",
		[DP_RWIRE_RELEASE] = "RELEASE",
	};

	return type < DP_RWIRE_TYPE_END && names[type] ? names[type] : "?";
}
