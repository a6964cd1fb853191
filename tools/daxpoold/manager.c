/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The daemon's state (manager.h) and the questions asked of it across files. */
#include <stdlib.h>
#include <string.h>

#include "manager.h"

void dd_manager_init(struct dd_manager *m, const struct dd_config *cfg)
{
	*m = (struct dd_manager){ .cfg = *cfg, .epfd = -1, .reserve_fd = -1, .next_req = 1 };
}

const char *dd_op_name(uint32_t kind)
{
	return kind == DP_OP_RELEASE ? "release" : kind == DP_OP_TRUNCATE ? "truncate" : "punch";
}

bool dd_op_matches(const struct dd_op *op, const struct dd_region *r)
{
	return dd_region_is(r, op->t.dev, op->t.ino, op->t.rdev);
}

bool dd_manager_region_draining(const struct dd_manager *m, const struct dd_region *r)
{
	for (const struct dd_op *op = m->ops; op; op = op->next)
		if (dd_op_matches(op, r))
			return true;
	return false;
}

pid_t *dd_manager_client_pids(const struct dd_manager *m, uint64_t dev, uint64_t ino,
			      uint64_t rdev, size_t *ret_n)
{
	size_t n = 0, cap = 16;
	pid_t *pids = malloc(cap * sizeof(*pids));

	for (const struct dd_conn *c = m->conns; c && pids; c = c->next) {
		for (const struct dd_region *r = c->regions; r; r = r->next) {
			if (!dd_region_is(r, dev, ino, rdev))
				continue;
			if (n == cap) {
				size_t ncap = cap * 2;
				pid_t *np = realloc(pids, ncap * sizeof(*pids));

				if (!np)
					goto out; /* fewer excluded: they are scanned, which is safe */
				pids = np;
				cap = ncap;
			}
			pids[n++] = c->cred.pid;
			break;
		}
	}
out:
	*ret_n = pids ? n : 0;
	return pids;
}

bool dd_manager_is_client(const struct dd_manager *m, pid_t pid)
{
	for (const struct dd_conn *c = m->conns; c; c = c->next)
		if (c->role == DP_ROLE_CLIENT && c->cred.pid == pid)
			return true;
	return false;
}
