/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The daxpoold protocol (lib/util/protocol.c): every message type encodes
 * and decodes to the same fields and the same bytes, and the range checks of
 * the newer messages (REGION_STATE, REGION_GONE) reject what they must. The
 * fuzzer (tests/fuzz/protocol_fuzz.c) covers arbitrary input; this covers
 * the fields.
 */
#include <errno.h>
#include <stddef.h>

#include "harness.h"
#include "util/protocol.h"

static uint8_t buf[DP_PROTO_MAX_DGRAM], buf2[DP_PROTO_MAX_DGRAM];
static struct dp_msg out;

/* One message of each type, every field set to something other than 0. */
static void fill(struct dp_msg *m, unsigned int type)
{
	memset(m, 0, sizeof(*m));
	m->type = (uint16_t)type;
	switch (type) {
	case DP_MSG_HELLO:
		m->hello.role = DP_ROLE_CLIENT;
		break;
	case DP_MSG_HELLO_OK:
		m->hello_ok.version = DP_PROTO_VERSION;
		break;
	case DP_MSG_REGION_ADD:
		m->region_add.id = 3;
		break;
	case DP_MSG_REFUSED:
		m->refused.type = DP_MSG_PIN_ADD;
		m->refused.id = 7;
		m->refused.status = -EDQUOT;
		strcpy(m->refused.reason, "more than 65536 pins (max_pins)");
		break;
	case DP_MSG_REGION_DEL:
	case DP_MSG_MAP_DEL:
	case DP_MSG_PIN_DEL:
		m->del.id = 12345678901ull;
		break;
	case DP_MSG_MAP_ADD:
		m->map_add = (typeof(m->map_add)){ 5, 3, 4096, 8192, 99, 42 };
		break;
	case DP_MSG_PIN_ADD:
		m->pin_add = (typeof(m->pin_add)){ 6, 3, 4096, 512, 98, 2, 3, 43 };
		break;
	case DP_MSG_REVOKE:
	case DP_MSG_UNZAP:
	case DP_MSG_RELEASED:
		m->revoke = (typeof(m->revoke)){ 9, 3, 1 << 20, 2 << 20 };
		break;
	case DP_MSG_REVOKE_DONE:
		m->revoke_done = (typeof(m->revoke_done)){ 9, 3, -EBUSY };
		break;
	case DP_MSG_STATUS:
		strcpy(m->status.target, "dax0.0");
		break;
	case DP_MSG_OP:
		m->op = (typeof(m->op)){ DP_OP_PUNCH, DP_OP_FORCE, 1500, 4096, 8192, "" };
		strcpy(m->op.target, "/mnt/ext4/f");
		break;
	case DP_MSG_REPLY:
		m->reply = (typeof(m->reply)){ -ENOENT, DP_REPLY_MORE, 5, "hello" };
		break;
	case DP_MSG_REGION_STATE:
		m->region_state = (typeof(m->region_state)){ 3, DP_LEASE_STATE_MAX, -EAGAIN,
							       0x100000001ull };
		break;
	case DP_MSG_REGION_GONE:
		m->region_gone = (typeof(m->region_gone)){ 3, -ENXIO };
		break;
	case DP_MSG_PIN_OWNER:
		m->pin_owner.id = 6;
		strcpy(m->pin_owner.text, "peer 10.78.0.2:52945 rkey 0x8000196 data");
		break;
	default:
		dp_test_fail(__FILE__, __LINE__, "message type %u (%s) has no case here: add one",
			     type, dp_proto_type_name(type));
	}
}

/* Encode, decode, encode again: same length, same bytes, whole buffer consumed. */
static int round_trip(const struct dp_msg *m)
{
	int n = dp_proto_encode(m, 77, buf, sizeof(buf));

	if (n < 0)
		return n;
	CHECK(n >= DP_PROTO_HDR_SIZE);
	CHECK_EQ(dp_proto_decode(buf, (size_t)n, &out), n);
	CHECK_EQ(out.type, m->type);
	CHECK_EQ(out.seq, 77);
	CHECK_EQ(dp_proto_encode(&out, out.seq, buf2, sizeof(buf2)), n);
	CHECK(memcmp(buf, buf2, (size_t)n) == 0);
	/* Cut short anywhere: refused, never read past the end. */
	for (int cut = 0; cut < n; cut++) {
		int r = dp_proto_decode(buf, (size_t)cut, &out);

		CHECK(r == -ENODATA || r == -EINVAL);
	}
	return n;
}

TEST(every_type_round_trips)
{
	static struct dp_msg m;

	for (unsigned int t = 1; t < DP_MSG_TYPE_END; t++) {
		int r;

		fill(&m, t);
		r = round_trip(&m);
		if (r < 0)
			dp_test_fail(__FILE__, __LINE__, "%s: %s", dp_proto_type_name(t), strerror(-r));
		CHECK(strcmp(dp_proto_type_name(t), "?") != 0);
	}
	CHECK(strcmp(dp_proto_type_name(DP_MSG_TYPE_END), "?") == 0);
}

TEST(region_gone_fields)
{
	static struct dp_msg m;

	fill(&m, DP_MSG_REGION_GONE);
	CHECK_OK(round_trip(&m));
	CHECK_EQ(out.region_gone.region_id, 3);
	CHECK_EQ(out.region_gone.reason, -ENXIO);
	m.region_gone.region_id = UINT64_MAX;
	m.region_gone.reason = -ENODEV;
	CHECK_OK(round_trip(&m));
	CHECK(out.region_gone.region_id == UINT64_MAX);
	CHECK_EQ(out.region_gone.reason, -ENODEV);
	CHECK(strcmp(dp_proto_type_name(DP_MSG_REGION_GONE), "REGION_GONE") == 0);

	/* A reason is a negative errno; a region id is never 0. */
	m.region_gone.reason = 0;
	CHECK_ERR(dp_proto_encode(&m, 1, buf, sizeof(buf)), EINVAL);
	m.region_gone.reason = ENODEV;
	CHECK_ERR(dp_proto_encode(&m, 1, buf, sizeof(buf)), EINVAL);
	m.region_gone.reason = -4096;
	CHECK_ERR(dp_proto_encode(&m, 1, buf, sizeof(buf)), EINVAL);
	m.region_gone.reason = -ENODEV;
	m.region_gone.region_id = 0;
	CHECK_ERR(dp_proto_encode(&m, 1, buf, sizeof(buf)), EINVAL);
}

TEST(pin_owner_fields_and_bounds)
{
	static struct dp_msg m;

	fill(&m, DP_MSG_PIN_OWNER);
	CHECK_OK(round_trip(&m));
	CHECK_EQ(out.pin_owner.id, 6);
	CHECK(strcmp(out.pin_owner.text, "peer 10.78.0.2:52945 rkey 0x8000196 data") == 0);
	/* Empty: the description was cleared. */
	m.pin_owner.text[0] = '\0';
	CHECK_OK(round_trip(&m));
	CHECK(out.pin_owner.text[0] == '\0');
	/* The longest it may be. */
	memset(m.pin_owner.text, 'x', DP_PROTO_MAX_OWNER);
	m.pin_owner.text[DP_PROTO_MAX_OWNER] = '\0';
	CHECK_OK(round_trip(&m));
	CHECK_EQ(strlen(out.pin_owner.text), DP_PROTO_MAX_OWNER);
	m.pin_owner.id = 0;
	CHECK_EQ(dp_proto_encode(&m, 1, buf, sizeof(buf)), -EINVAL);
}

TEST(region_state_fields)
{
	static struct dp_msg m;

	fill(&m, DP_MSG_REGION_STATE);
	CHECK_OK(round_trip(&m));
	CHECK_EQ(out.region_state.region_id, 3);
	CHECK_EQ(out.region_state.lease, DP_LEASE_STATE_MAX);
	CHECK_EQ(out.region_state.lease_error, -EAGAIN);
	CHECK(out.region_state.lease_breaks == 0x100000001ull);
	m.region_state.lease = 0;
	m.region_state.lease_error = 0;
	CHECK_OK(round_trip(&m));
	CHECK_EQ(out.region_state.lease, 0);
	CHECK_EQ(out.region_state.lease_error, 0);

	m.region_state.lease = DP_LEASE_STATE_MAX + 1;
	CHECK_ERR(dp_proto_encode(&m, 1, buf, sizeof(buf)), EINVAL);
	m.region_state.lease = 2;
	m.region_state.lease_error = EAGAIN;
	CHECK_ERR(dp_proto_encode(&m, 1, buf, sizeof(buf)), EINVAL);
	m.region_state.lease_error = 0;
	m.region_state.region_id = 0;
	CHECK_ERR(dp_proto_encode(&m, 1, buf, sizeof(buf)), EINVAL);
}

/* Bytes on the wire that decode to an out-of-range REGION_GONE are refused too. */
TEST(region_gone_decode_checks)
{
	static struct dp_msg m;
	int n;

	fill(&m, DP_MSG_REGION_GONE);
	n = dp_proto_encode(&m, 1, buf, sizeof(buf));
	CHECK(n > 0);
	/* The reason is the last four bytes, little-endian: make it +6. */
	buf[n - 4] = 6, buf[n - 3] = 0, buf[n - 2] = 0, buf[n - 1] = 0;
	CHECK_ERR(dp_proto_decode(buf, (size_t)n, &out), EINVAL);
	/* And a region id of 0 (the first eight payload bytes). */
	n = dp_proto_encode(&m, 1, buf, sizeof(buf));
	memset(buf + DP_PROTO_HDR_SIZE, 0, 8);
	CHECK_ERR(dp_proto_decode(buf, (size_t)n, &out), EINVAL);
}

/* REFUSED: a negative errno and a known type; descriptors counted per REGION_ADD. */
TEST(refused_fields_and_fds_wanted)
{
	static struct dp_msg m;
	size_t off = 0;
	int n;

	fill(&m, DP_MSG_REFUSED);
	CHECK_OK(round_trip(&m));
	CHECK_EQ(out.refused.type, DP_MSG_PIN_ADD);
	CHECK(out.refused.id == 7);
	CHECK_EQ(out.refused.status, -EDQUOT);
	CHECK(strcmp(out.refused.reason, m.refused.reason) == 0);
	m.refused.status = 0;
	CHECK_ERR(dp_proto_encode(&m, 1, buf, sizeof(buf)), EINVAL);
	m.refused.status = -EBADF;
	m.refused.type = DP_MSG_TYPE_END;
	CHECK_ERR(dp_proto_encode(&m, 1, buf, sizeof(buf)), EINVAL);
	m.refused.type = 0;
	CHECK_ERR(dp_proto_encode(&m, 1, buf, sizeof(buf)), EINVAL);

	/* Three REGION_ADDs among other messages want three descriptors. */
	for (unsigned int t = DP_MSG_REGION_ADD; t <= DP_MSG_PIN_ADD; t++) {
		for (int k = 0; k < (t == DP_MSG_REGION_ADD ? 3 : 1); k++) {
			fill(&m, t);
			n = dp_proto_encode(&m, 1, buf + off, sizeof(buf) - off);
			CHECK(n > 0);
			off += (size_t)n;
		}
	}
	CHECK_EQ(dp_proto_fds_wanted(buf, off), 3);
	CHECK_EQ(dp_proto_fds_wanted(buf, DP_PROTO_HDR_SIZE - 1), 0);
	m.region_add.id = 0;
	m.type = DP_MSG_REGION_ADD;
	CHECK_ERR(dp_proto_encode(&m, 1, buf, sizeof(buf)), EINVAL);
}
