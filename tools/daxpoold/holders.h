/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * What one client holds: its regions (by id, and a list), and its maps and
 * pins by id, in chained hashes that grow. Plain data of one connection
 * (conn.h); main thread only.
 */
#ifndef DAXPOOLD_HOLDERS_H
#define DAXPOOLD_HOLDERS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "util/protocol.h"

struct dd_pend;

/* A map (kind 0) or a pin (enum daxpool_pin_kind) as its client reported it. */
struct dd_holding {
	uint64_t id, region_id, offset, length, created_ns;
	uint32_t kind, access, tid;
	/*
	 * A pin's owner as its process described it (PIN_OWNER), printable
	 * ASCII only, or NULL: shown in status, never used to decide anything.
	 */
	char *owner;
	struct dd_holding *hnext;
};

struct dd_idmap {
	struct dd_holding **b;
	size_t nb, n;
};

#define DD_REGION_FILE 1
#define DD_REGION_FSDAX 2
#define DD_REGION_DEVDAX 3

/* A region: what the kernel said of the descriptor that came with its REGION_ADD. */
struct dd_region {
	uint64_t id, dev, ino, rdev, size;
	uint32_t kind; /* DD_REGION_* (DAXPOOL_REGION_*) */
	uid_t owner_uid; /* of the file or device node, from the descriptor at registration */
	char path[DP_PROTO_MAX_PATH + 1];
	char devname[DP_PROTO_MAX_DEVNAME + 1];
	/* The client's file lease on it (REGION_STATE); lease 0: never said (devdax). */
	uint32_t lease;
	int32_t lease_error;
	uint64_t lease_breaks;
	uint64_t revoke_req; /* the operation that sent it REVOKE (dedup); 0: none */
	struct dd_pend *pend; /* that operation's wait for it, until answered (manager.h) */
	struct dd_region *next, **pprev; /* the client's list (pprev: O(1) unlink) */
	struct dd_region *hnext;	  /* the client's table by id */
};

/* A client's regions by id: a chained hash that grows. */
struct dd_regmap {
	struct dd_region **b;
	size_t nb, n;
};

void dd_holding_free(struct dd_holding *h);
/*
 * Set @h's owner description to @text (at most DP_PROTO_MAX_OWNER bytes),
 * every byte outside printable ASCII replaced by '?' (it reaches root's
 * terminal); "" clears it. Return 0 or -ENOMEM (the old one stays).
 */
int dd_holding_set_owner(struct dd_holding *h, const char *text);
/* Put @h, replacing (and freeing) one of an equal id; without memory for a first table, @h is freed. */
void dd_idmap_put(struct dd_idmap *m, struct dd_holding *h);
/* Unlink the holding @id and return it (the caller frees it with dd_holding_free()), or NULL. */
struct dd_holding *dd_idmap_take(struct dd_idmap *m, uint64_t id);
/* The holding @id, or NULL. */
struct dd_holding *dd_idmap_get(const struct dd_idmap *m, uint64_t id);
void dd_idmap_clear(struct dd_idmap *m); /* frees every holding */
#define dd_idmap_for_each(m, i, h)                                                                 \
	for (size_t i = 0; i < (m)->nb; i++)                                                       \
		for (struct dd_holding *h = (m)->b[i]; h; h = h->hnext)

struct dd_region *dd_regmap_get(const struct dd_regmap *m, uint64_t id);
/* Add @r (its id not in @m). Return 0 or -ENOMEM. */
int dd_regmap_add(struct dd_regmap *m, struct dd_region *r);
void dd_regmap_del(struct dd_regmap *m, struct dd_region *r);
void dd_regmap_clear(struct dd_regmap *m); /* the table only: the regions are the list's */

/*
 * Whether @r is the file (dev, ino), or -- @rdev not 0 -- a device-dax region
 * of that device through any node: a node made with mknod elsewhere (a
 * container's /dev) has another inode but the same rdev.
 */
bool dd_region_is(const struct dd_region *r, uint64_t dev, uint64_t ino, uint64_t rdev);

#endif /* DAXPOOLD_HOLDERS_H */
