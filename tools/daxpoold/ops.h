/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Release, truncate and punch: operations that need every holder gone first
 * (ops.c). Each is a struct dd_op in the manager's list. Main thread; what
 * may sleep runs on the worker (worker.h).
 */
#ifndef DAXPOOLD_OPS_H
#define DAXPOOLD_OPS_H

#include <stdbool.h>
#include <stdint.h>

#include "manager.h"

/* An OP request of the CTL connection @c: authorize, refuse or begin. Answers @c itself. */
void dd_op_start(struct dd_manager *m, struct dd_conn *c, const struct dp_msg *msg);
/* @c registered @r: an operation on it revokes it too. */
void dd_op_region_added(struct dd_manager *m, struct dd_conn *c, struct dd_region *r);
/* @c answered REVOKE @req of @region_id with @status. */
void dd_op_revoke_done(struct dd_manager *m, struct dd_conn *c, uint64_t req, uint64_t region_id,
		       int status);
/* @c goes (@process_dead: its process exited, so it holds nothing). Before it is freed. */
void dd_op_conn_gone(struct dd_manager *m, struct dd_conn *c, bool process_dead);
/* A worker ended: answer its operation. */
void dd_ops_work_done(struct dd_manager *m);
/* The daemon stops: wait for the workers (interrupted), cancel every operation. */
void dd_ops_stop(struct dd_manager *m);
/* Milliseconds to the next deadline (-1: none); expire what is due. */
int dd_ops_tick(struct dd_manager *m);

#endif /* DAXPOOLD_OPS_H */
