/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * libdaxpool-remote's parts that need no RDMA device: the message decoder
 * (lib/remote/wire.c) against malformed input, every byte of it flipped and
 * random messages, and the grant mode's detection from what a device reports
 * (lib/remote/window.c). The server's and peer's use of them on real devices
 * is the vm tier's remote test.
 */
#include <errno.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <infiniband/verbs.h>

#include "daxpool-remote.h"
#include "harness.h"
#include "window.h"
#include "wire.h"

static struct dp_rwire_msg grant(void)
{
	struct dp_rwire_msg m = { .type = DP_RWIRE_GRANT, .seq = 7, .id = 42, .addr = 0x7f0000200000,
				  .length = 2u << 20, .rkey = 0x1234, .access = DAXPOOL_REMOTE_READ |
									  DAXPOOL_REMOTE_WRITE,
				  .mode = DAXPOOL_REMOTE_WINDOW };

	strcpy(m.name, "data");
	return m;
}

TEST(every_type_round_trips)
{
	struct dp_rwire_msg in[] = {
		{ .type = DP_RWIRE_GRANT_REQ, .seq = 1, .access = DAXPOOL_REMOTE_WRITE, .name = "x" },
		grant(),
		{ .type = DP_RWIRE_GRANT, .seq = 9, .status = -ENXIO },
		{ .type = DP_RWIRE_REVOKE, .id = 3 },
		{ .type = DP_RWIRE_REVOKE_ACK, .id = 3 },
		{ .type = DP_RWIRE_RELEASE, .id = UINT64_MAX },
	};
	uint8_t buf[DP_RWIRE_SIZE];
	struct dp_rwire_msg out;

	for (size_t i = 0; i < sizeof(in) / sizeof(in[0]); i++) {
		CHECK_EQ(dp_rwire_encode(&in[i], buf), DP_RWIRE_SIZE);
		CHECK_OK(dp_rwire_decode(buf, sizeof(buf), &out));
		CHECK_EQ(out.type, in[i].type);
		CHECK_EQ(out.seq, in[i].seq);
		CHECK_EQ(out.id, in[i].id);
		CHECK_EQ(out.addr, in[i].addr);
		CHECK_EQ(out.length, in[i].length);
		CHECK_EQ(out.rkey, in[i].rkey);
		CHECK_EQ(out.status, in[i].status);
		CHECK_EQ(out.access, in[i].access);
		CHECK_EQ(out.mode, in[i].mode);
		CHECK(!strcmp(out.name, in[i].name));
	}
	CHECK(!strcmp(dp_rwire_type_name(DP_RWIRE_REVOKE_ACK), "REVOKE_ACK"));
	CHECK(!strcmp(dp_rwire_type_name(0), "?"));
	CHECK(!strcmp(dp_rwire_type_name(999), "?"));
}

/* Encode, damage one thing, decode: the error it must give, and nothing written. */
static void expect_refused(const struct dp_rwire_msg *m, size_t at, const void *bytes, size_t n,
			   int err)
{
	struct dp_rwire_msg in = *m, out;
	uint8_t buf[DP_RWIRE_SIZE];

	memset(&out, 0xa5, sizeof(out));
	CHECK_EQ(dp_rwire_encode(&in, buf), DP_RWIRE_SIZE);
	memcpy(buf + at, bytes, n);
	CHECK_EQ(dp_rwire_decode(buf, sizeof(buf), &out), -err);
	CHECK_EQ(out.type, 0xa5a5);
}

TEST(malformed_messages_are_refused)
{
	struct dp_rwire_msg g = grant(), req = { .type = DP_RWIRE_GRANT_REQ, .access = 1,
						  .name = "data" };
	uint8_t buf[DP_RWIRE_SIZE * 2] = { 0 };
	struct dp_rwire_msg out;
	uint32_t v32;
	uint16_t v16;
	int32_t s;

	/* Sizes: short, long, empty. */
	CHECK_EQ(dp_rwire_encode(&g, buf), DP_RWIRE_SIZE);
	CHECK_EQ(dp_rwire_decode(buf, DP_RWIRE_SIZE - 1, &out), -EMSGSIZE);
	CHECK_EQ(dp_rwire_decode(buf, DP_RWIRE_SIZE + 1, &out), -EMSGSIZE);
	CHECK_EQ(dp_rwire_decode(buf, 0, &out), -EMSGSIZE);
	expect_refused(&g, 0, "XXXX", 4, EBADMSG);
	v16 = 2;
	expect_refused(&g, 4, &v16, 2, EPROTO); /* another version */
	v16 = 0;
	expect_refused(&g, 6, &v16, 2, EPROTO); /* type 0 */
	v16 = DP_RWIRE_TYPE_END;
	expect_refused(&g, 6, &v16, 2, EPROTO);
	v32 = 95;
	expect_refused(&g, 8, &v32, 4, EINVAL); /* the size field lies */
	/* A field the type does not carry, set. */
	{
		struct dp_rwire_msg r = { .type = DP_RWIRE_REVOKE, .id = 1 };
		uint64_t v64 = 5;

		expect_refused(&r, 24, &v64, 8, EINVAL); /* addr */
		expect_refused(&r, 56, "n", 1, EINVAL);	 /* a name */
		v32 = 1;
		expect_refused(&r, 48, &v32, 4, EINVAL); /* access */
	}
	/* Names: empty, unterminated, not zero-padded. */
	expect_refused(&req, 56, "\0", 1, EINVAL);
	memset(buf, 'a', sizeof(buf));
	expect_refused(&req, 56, buf, DP_RWIRE_NAME_MAX + 1, EINVAL);
	expect_refused(&req, 56 + 10, "z", 1, EINVAL);
	/* Access: none, unknown bits. */
	v32 = 0;
	expect_refused(&req, 48, &v32, 4, EINVAL);
	v32 = 4;
	expect_refused(&req, 48, &v32, 4, EINVAL);
	/* Status: positive, beyond -4095, on a type that has none. */
	s = 1;
	expect_refused(&g, 44, &s, 4, EINVAL);
	{
		struct dp_rwire_msg e = { .type = DP_RWIRE_GRANT, .status = -ENOENT };

		s = -4096;
		expect_refused(&e, 44, &s, 4, EINVAL);
		s = -EIO;
		expect_refused(&req, 44, &s, 4, EINVAL);
		/* A refusal carries nothing else. */
		v32 = 0x99;
		expect_refused(&e, 40, &v32, 4, EINVAL);
	}
	/* Mode: unknown. Length: zero, or wrapping past the end of the address space. */
	v32 = 3;
	expect_refused(&g, 52, &v32, 4, EINVAL);
	{
		uint64_t v64 = 0;

		expect_refused(&g, 32, &v64, 8, EINVAL);
		v64 = UINT64_MAX;
		expect_refused(&g, 32, &v64, 8, EINVAL);
	}
	/* The encoder refuses what would not decode. */
	req.access = 0;
	CHECK_ERR(dp_rwire_encode(&req, buf), EINVAL);
	g.name[0] = 0;
	CHECK_ERR(dp_rwire_encode(&g, buf), EINVAL);
}

/* Every single-bit change of a valid message, and random bytes: no crash, and what decodes is valid. */
TEST(damaged_and_random_bytes_decode_safely)
{
	struct dp_rwire_msg g = grant(), out;
	uint8_t good[DP_RWIRE_SIZE], buf[DP_RWIRE_SIZE], again[DP_RWIRE_SIZE];
	unsigned int accepted = 0;

	CHECK_EQ(dp_rwire_encode(&g, good), DP_RWIRE_SIZE);
	for (size_t bit = 0; bit < DP_RWIRE_SIZE * 8; bit++) {
		memcpy(buf, good, sizeof(buf));
		buf[bit / 8] ^= (uint8_t)(1u << (bit % 8));
		if (dp_rwire_decode(buf, sizeof(buf), &out) == 0) {
			/* Accepted: then it is a message the encoder makes byte for byte. */
			CHECK_EQ(dp_rwire_encode(&out, again), DP_RWIRE_SIZE);
			CHECK(!memcmp(again, buf, sizeof(buf)));
			accepted++;
		}
	}
	/* seq, id, addr, rkey and some of length may change; magic, version, type, size, padding not. */
	printf("# %u of %u one-bit changes still decode (free fields)\n", accepted,
	       DP_RWIRE_SIZE * 8);
	CHECK(accepted < 320);
	srand(19);
	accepted = 0;
	for (int i = 0; i < 200000; i++) {
		for (size_t j = 0; j < sizeof(buf); j++)
			buf[j] = (uint8_t)rand();
		if (i & 1)
			memcpy(buf, good, 16); /* a valid header, random rest */
		accepted += dp_rwire_decode(buf, sizeof(buf), &out) == 0;
	}
	printf("# %u of 200000 random messages decode\n", accepted);
	CHECK_EQ(accepted, 0);
}

TEST(grant_mode_follows_what_the_device_reports)
{
	struct ibv_device_attr attr;
	char why[256];

	/* rxe on 6.1 and 6.12: 2B, many windows. */
	memset(&attr, 0, sizeof(attr));
	attr.device_cap_flags = IBV_DEVICE_MEM_WINDOW | IBV_DEVICE_MEM_WINDOW_TYPE_2B;
	attr.max_mw = 0x10000;
	CHECK_EQ(dp_remote_grant_mode_of(&attr, why, sizeof(why)), DAXPOOL_REMOTE_WINDOW);
	printf("# %s\n", why);
	CHECK(strstr(why, "type-2 memory windows (2B"));
	attr.device_cap_flags = IBV_DEVICE_MEM_WINDOW_TYPE_2A | IBV_DEVICE_MEM_WINDOW_TYPE_2B;
	CHECK_EQ(dp_remote_grant_mode_of(&attr, why, sizeof(why)), DAXPOOL_REMOTE_WINDOW);
	CHECK(strstr(why, "2A and 2B"));
	/* Type 1 only: not enough (a grant's window is bound on the peer's QP). */
	attr.device_cap_flags = IBV_DEVICE_MEM_WINDOW;
	CHECK_EQ(dp_remote_grant_mode_of(&attr, why, sizeof(why)), DAXPOOL_REMOTE_MR);
	printf("# %s\n", why);
	CHECK(strstr(why, "neither IBV_DEVICE_MEM_WINDOW_TYPE_2A nor _2B") &&
	      strstr(why, "one MR per grant"));
	/* Type 2 reported, no window to allocate. */
	attr.device_cap_flags = IBV_DEVICE_MEM_WINDOW_TYPE_2A;
	attr.max_mw = 0;
	CHECK_EQ(dp_remote_grant_mode_of(&attr, why, sizeof(why)), DAXPOOL_REMOTE_MR);
	CHECK(strstr(why, "no window to allocate"));
	/* A short buffer is cut, not overrun. */
	memset(why, 'x', sizeof(why));
	CHECK_EQ(dp_remote_grant_mode_of(&attr, why, 8), DAXPOOL_REMOTE_MR);
	CHECK_EQ(strlen(why), 7);
	CHECK_EQ(why[8], 'x');
}

/* Without RDMA (the host): the server and the peer say so and crash nothing. */
TEST(no_rdma_device_is_a_clear_error)
{
	struct daxpool_remote_server *srv = NULL;
	struct daxpool_remote_peer *peer = NULL;
	int r;

	CHECK_ERR(daxpool_remote_server_new(NULL, "0", 0, &srv), EINVAL);
	CHECK_ERR(daxpool_remote_server_new("127.0.0.1", "0", 0x80, &srv), EINVAL);
	CHECK_ERR(daxpool_remote_peer_connect("127.0.0.1", "1", NULL, 0, &peer), EINVAL);
	CHECK(daxpool_remote_server_free(NULL) == NULL);
	CHECK(daxpool_remote_peer_free(NULL) == NULL);
	CHECK_ERR(daxpool_remote_grant_release(NULL), EINVAL);
	CHECK_ERR(daxpool_remote_grant_is_revoked(NULL), EINVAL);
	CHECK_ERR(daxpool_remote_grant_write(NULL, 0, "", 1, 0), EINVAL);
	if (access("/dev/infiniband/rdma_cm", F_OK) == 0)
		dp_test_skip("this machine has rdma_cm: the vm tier's remote test covers it");
	/* 192.0.2.1 (TEST-NET-1) is nobody's: no RDMA device has it either way. */
	r = daxpool_remote_server_new("192.0.2.1", "0", 0, &srv);
	printf("# daxpool_remote_server_new without rdma_cm: %s\n", strerror(-r));
	CHECK_EQ(r, -ENODEV);
	CHECK(srv == NULL);
	r = daxpool_remote_peer_connect("192.0.2.1", "7471", NULL, 1000, &peer);
	printf("# daxpool_remote_peer_connect without rdma_cm: %s\n", strerror(-r));
	CHECK_EQ(r, -ENODEV);
	CHECK(peer == NULL);
}
