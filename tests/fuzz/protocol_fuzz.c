/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * libFuzzer target on the daxpoold message decoder: any datagram either
 * decodes into messages that re-encode to the same bytes, or is rejected with
 * one of the documented errors; never a crash, a read out of bounds or a hang.
 * The count of descriptors a datagram must carry (dp_proto_fds_wanted(), one
 * per REGION_ADD) reads any input safely and is exact for a valid datagram.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "util/protocol.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct dp_msg m;
	static uint8_t re[DP_PROTO_MAX_DGRAM];
	size_t off = 0, region_adds = 0, wanted;

	if (size > DP_PROTO_MAX_DGRAM)
		return 0;
	/* The descriptors a datagram must carry (one per REGION_ADD): any input, no crash. */
	wanted = dp_proto_fds_wanted(data, size);
	if (wanted > size / DP_PROTO_HDR_SIZE)
		abort();
	while (off < size) {
		int r = dp_proto_decode(data + off, size - off, &m);

		if (r < 0) {
			if (r != -ENODATA && r != -EBADMSG && r != -EPROTO && r != -EMSGSIZE &&
			    r != -ENOMSG && r != -EINVAL)
				abort();
			break;
		}
		if (r < DP_PROTO_HDR_SIZE || (size_t)r > size - off)
			abort();
		/* What decodes is valid: it encodes again, to the same bytes. */
		int n = dp_proto_encode(&m, m.seq, re, sizeof(re));

		if (n != r || memcmp(re, data + off, (size_t)r) != 0)
			abort();
		region_adds += m.type == DP_MSG_REGION_ADD;
		off += (size_t)r;
	}
	/* Of a datagram that decodes whole, the count is exact: its REGION_ADDs. */
	if (off == size && wanted != region_adds)
		abort();
	return 0;
}
