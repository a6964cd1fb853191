/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Operations that need every holder gone first: release (of a devdax device,
 * or of a file as the host tests' stand-in), truncate and hole punch.
 *
 *   1. resolve and authorize (target.c): root, or the owner of the device or
 *      file; the operation keeps the descriptor and acts on it alone;
 *   2. holders outside daxpool (/proc maps, with their io_uring buffers and
 *      RDMA MRs; and clients' MRs daxpool did not register): refuse unless
 *      forced. Every such check is a scan on a thread of its own (scan.h):
 *      the operation waits for its end, the loop does not; a scan that has
 *      not ended by the deadline refuses the operation, naming the process
 *      it is stuck on;
 *   3. mark draining: every client that registered the device gets REVOKE
 *      (it zaps the range: new maps and pins there fail with -ENXIO), and so
 *      does any client that registers it while the operation runs;
 *   4. wait for REVOKE_DONE from each (a client whose process dies counts as
 *      drained: its pins died with it), with a deadline;
 *   5. check outsiders again, then act: daxctl disable for devdax, nothing
 *      for a file (the release is the end of the drain), ftruncate, punch;
 *   6. tell the clients: RELEASED (the range stays zapped) or UNZAP (reopen
 *      it: after a truncate or punch, and after any failure or timeout).
 * On timeout nothing is released and the report names every holder.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "client_json.h"
#include "log.h"
#include "opens.h"
#include "ops.h"
#include "outsiders.h"
#include "scan.h"
#include "teardown.h"
#include "udev.h"

/* What the end of an operation's scan decides. */
enum {
	SCAN_BEFORE = 1, /* whether to drain, wait or refuse */
	SCAN_POLL,	 /* while waiting: whether they went */
	SCAN_DEADLINE,	 /* waiting at the deadline: drain now, or refuse */
	SCAN_FINAL,	 /* drained: act, or refuse */
	SCAN_REPORT,	 /* the drain timed out: who holds, for the report */
};

static void op_revoke(struct dd_manager *m, struct dd_op *op, struct dd_conn *c, struct dd_region *r)
{
	struct dp_msg msg = { .type = DP_MSG_REVOKE };
	struct dd_pend *p;

	/* Once per region: a region matches one operation at most (one per dev, ino). */
	if (r->revoke_req == op->req)
		return;
	p = calloc(1, sizeof(*p));
	if (!p)
		return;
	r->revoke_req = op->req;
	p->op = op;
	p->conn = c;
	p->region_id = r->id;
	/*
	 * Registered while the action runs: it zaps the range and hears how it
	 * ended, but the operation waits for it no more -- the final check
	 * already passed -- and nothing it answers can end the operation early.
	 */
	p->done = op->acting;
	if (!p->done) {
		r->pend = p;
		op->n_undone++;
	}
	p->next = op->pend;
	op->pend = p;
	msg.revoke.req = op->req;
	msg.revoke.region_id = r->id;
	msg.revoke.offset = op->offset;
	msg.revoke.length = op->length;
	dd_conn_send(c, &msg);
}

/* @ns as milliseconds, printed with three decimals (not 16.743600000000001). */
static json_object *json_ms(uint64_t ns)
{
	char text[32];

	snprintf(text, sizeof(text), "%.3f", (double)ns / 1e6);
	return json_object_new_double_s((double)ns / 1e6, text);
}

static json_object *op_doc(struct dd_op *op, const char *result)
{
	json_object *o = json_object_new_object();
	size_t n = 0;

	for (struct dd_pend *p = op->pend; p; p = p->next)
		n++;
	json_object_object_add(o, "operation", json_object_new_string(dd_op_name(op->kind)));
	json_object_object_add(o, "target", json_object_new_string(op->t.path));
	json_object_object_add(o, "kind", json_object_new_string(dd_target_is_devdax(&op->t) ? "devdax" : "file"));
	json_object_object_add(o, "result", json_object_new_string(result));
	json_object_object_add(o, "clients_revoked", json_object_new_uint64(n));
	json_object_object_add(o, "started_ns", json_object_new_uint64(op->started_ns));
	/* The requester's deadline as it stood when the outcome was decided: never moved. */
	json_object_object_add(o, "deadline_ms", json_ms(op->deadline_ns - op->started_ns));
	if (op->last_done_ns)
		json_object_object_add(o, "last_idle_ns", json_object_new_uint64(op->last_done_ns));
	if (op->outsiders_gone_ns)
		json_object_object_add(o, "outsiders_gone_ms",
				       json_ms(op->outsiders_gone_ns - op->started_ns));
	return o;
}

/* End an operation: tell the clients, answer the requester, free it. */
static void op_end(struct dd_manager *m, struct dd_op *op, int status, json_object *doc, bool unzap)
{
	if (op->acting) {
		/* Its worker still uses it: it ends when the worker does (m->ops_work_done). */
		dd_log(LOG_ERR, "%s of %s: ended while acting (a daxpoold bug); kept until the "
				"worker ends", dd_op_name(op->kind), op->t.path);
		json_object_put(doc);
		return;
	}
	struct dd_op **pp;
	uint64_t now = dd_now_ns();

	for (struct dd_pend *p = op->pend, *next; p; p = next) {
		struct dp_msg msg = { .type = unzap ? DP_MSG_UNZAP : DP_MSG_RELEASED };

		next = p->next;
		if (p->conn) {
			struct dd_region *r = dd_regmap_get(&p->conn->region_ids, p->region_id);

			if (r && r->pend == p)
				r->pend = NULL;
			msg.revoke.req = op->req;
			msg.revoke.region_id = p->region_id;
			msg.revoke.offset = op->offset;
			msg.revoke.length = op->length;
			dd_conn_send(p->conn, &msg);
		}
		free(p);
	}
	json_object_object_add(doc, "completed_ns", json_object_new_uint64(now));
	json_object_object_add(doc, "duration_ms", json_ms(now - op->started_ns));
	if (op->last_done_ns)
		json_object_object_add(doc, "last_idle_to_done_ms", json_ms(now - op->last_done_ns));
	if (op->requester) {
		dd_conn_reply(op->requester, status, doc);
		op->requester->op = NULL;
	}
	/* The audit trail: who asked, what came of it, who blocked it, what --force overrode. */
	{
		json_object *outs = json_object_object_get(doc, "outsiders");
		size_t n_outs = json_object_is_type(outs, json_type_array)
					? json_object_array_length(outs)
					: 0;
		char blockers[256] = "";
		size_t off = 0;

		for (size_t i = 0; i < n_outs && off < sizeof(blockers) - 32; i++) {
			json_object *o = json_object_array_get_idx(outs, i);
			int w = snprintf(blockers + off, sizeof(blockers) - off, "%s%d (%s)",
					 off ? ", " : "",
					 json_object_get_int(json_object_object_get(o, "pid")),
					 json_object_get_string(json_object_object_get(o, "comm")));

			if (w > 0)
				off += (size_t)w;
		}
		if (n_outs && status == 0 && (op->flags & DP_OP_FORCE))
			dd_log(LOG_WARNING, "%s of %s by pid %d uid %u FORCED over %zu possible "
					    "holder(s) outside daxpool: %s", dd_op_name(op->kind),
			       op->t.path, (int)op->requester_pid, (unsigned)op->requester_uid,
			       n_outs, blockers);
		bool td = op->flags & DP_OP_TEARDOWN;

		dd_log(status < 0 ? LOG_WARNING : LOG_NOTICE,
		       "%s%s of %s requested by pid %d uid %u (%s): %s%s%s%s%s", dd_op_name(op->kind),
		       td ? " --teardown" : "", op->t.path, (int)op->requester_pid,
		       (unsigned)op->requester_uid, op->requester_comm,
		       json_object_get_string(json_object_object_get(doc, "result")),
		       n_outs && status < 0 ? "; blocked by " : "", n_outs && status < 0 ? blockers : "",
		       td ? ": " : "",
		       td ? json_object_get_string(json_object_object_get(doc, "message")) ?: "" : "");
	}
	json_object_put(doc);
	for (pp = &m->ops; *pp; pp = &(*pp)->next) {
		if (*pp == op) {
			*pp = op->next;
			break;
		}
	}
	dd_scan_abandon(op->scan);
	op->scan = NULL;
	json_object_put(op->outsiders_last);
	json_object_put(op->outsiders_final);
	json_object_put(op->rdma_final);
	dd_target_close(&op->t);
	free(op->waiting_on);
	free(op);
}

/*
 * Every holder still pending, for a report: the connected ones and those
 * that hung up mid-drain while their process lives on (server.c waits for
 * their pidfd): they hold what they held.
 */
static json_object *op_holders(struct dd_manager *m, struct dd_op *op)
{
	struct dd_conn *lists[] = { m->conns, m->gone_conns };
	json_object *arr = json_object_new_array();

	for (size_t i = 0; i < 2; i++) {
		for (struct dd_conn *c = lists[i]; c; c = c->next) {
			bool pending = false;

			for (struct dd_pend *p = op->pend; p; p = p->next)
				pending |= p->conn == c && !p->done;
			if (pending)
				json_object_array_add(arr, dd_client_json(m, c, true, op->t.dev,
									  op->t.ino));
		}
	}
	return arr;
}

/* Why outsiders refuse an operation, in words: possible pins first, each holder's reason. */
static json_object *refusal_message(json_object *outs, bool waited)
{
	size_t n = json_object_array_length(outs), pinned = 0, off;
	char msg[2048];

	for (size_t i = 0; i < n; i++)
		pinned += dd_outsider_has_pins(json_object_array_get_idx(outs, i));
	if (pinned)
		off = (size_t)snprintf(msg, sizeof(msg),
				       "%zu process(es) hold possible pins of it: RDMA MRs, io_uring "
				       "buffers or pinned pages daxpool did not register, which the "
				       "drain cannot revoke%s; nothing was changed. --force would go "
				       "on under them: "
				       "the kernel does not wait, and it crashes when they are "
				       "deregistered.",
				       pinned, waited ? ", and they did not go before the deadline" : "");
	else
		off = (size_t)snprintf(msg, sizeof(msg),
				       "processes outside daxpool map it%s; nothing was changed "
				       "(--force overrides).",
				       waited ? " and did not go before the deadline" : "");
	for (size_t i = 0; i < n && off < sizeof(msg) - 1; i++) {
		json_object *o = json_object_array_get_idx(outs, i), *why;

		if (!json_object_object_get_ex(o, "reason", &why))
			continue;
		off += (size_t)snprintf(msg + off, sizeof(msg) - off, " pid %d (%s): %s.",
					json_object_get_int(json_object_object_get(o, "pid")),
					json_object_get_string(json_object_object_get(o, "comm")),
					json_object_get_string(why));
	}
	return json_object_new_string(msg);
}

/* Refuse @op because of @outs (taken): -EBUSY, nothing changed, clients reopen. */
static void op_refuse(struct dd_manager *m, struct dd_op *op, json_object *outs, json_object *rdma)
{
	json_object *doc = op_doc(op, "refused");

	json_object_object_add(doc, "message", refusal_message(outs, op->waiting));
	json_object_object_add(doc, "outsiders", outs);
	json_object_object_add(doc, "rdma", rdma);
	op_end(m, op, -EBUSY, doc, true);
}

/* What a release --teardown did; the names are empty when it did not get to them. */
static json_object *teardown_json(const struct dd_teardown *td)
{
	json_object *o = json_object_new_object();

	json_object_object_add(o, "namespace", td->nd_namespace[0]
						       ? json_object_new_string(td->nd_namespace)
						       : NULL);
	json_object_object_add(o, "cxl_region",
			       td->region[0] ? json_object_new_string(td->region) : NULL);
	json_object_object_add(o, "cxl_decoder",
			       td->decoder[0] ? json_object_new_string(td->decoder) : NULL);
	json_object_object_add(o, "namespace_destroyed",
			       json_object_new_boolean(td->namespace_destroyed));
	json_object_object_add(o, "region_disabled", json_object_new_boolean(td->region_disabled));
	json_object_object_add(o, "region_deleted", json_object_new_boolean(td->region_deleted));
	json_object_object_add(o, "teardown_ms", json_ms(td->took_ns));
	return o;
}

/* The action's result: answer, tell the clients, end. */
static void op_acted(struct dd_manager *m, struct dd_op *op, int r, const char *action_msg)
{
	json_object *doc;
	char msg[PATH_MAX + 320];

	if (op->kind == DP_OP_RELEASE)
		snprintf(msg, sizeof(msg), "%s", action_msg);
	else if (r == 0 && op->kind == DP_OP_TRUNCATE)
		snprintf(msg, sizeof(msg), "truncated to %llu bytes", (unsigned long long)op->offset);
	else if (r == 0)
		snprintf(msg, sizeof(msg), "punched [%llu, +%llu)", (unsigned long long)op->offset,
			 (unsigned long long)op->length);
	else if (r == -EINTR && op->work.interrupted)
		snprintf(msg, sizeof(msg),
			 "%s: still blocked in the kernel at the deadline (a lease holder that does "
			 "not give its lease up, or page references held outside daxpool); "
			 "interrupted, nothing was changed", op->t.path);
	else
		snprintf(msg, sizeof(msg), "%s: %s", op->t.path, strerror(-r));
	doc = op_doc(op, r < 0 ? "failed" : op->kind == DP_OP_RELEASE ? "released"
					 : op->kind == DP_OP_TRUNCATE	  ? "truncated"
									  : "punched");
	json_object_object_add(doc, "message", json_object_new_string(msg));
	if (op->drained_ns)
		json_object_object_add(doc, "drained_ms", json_ms(op->drained_ns - op->started_ns));
	if (op->flags & DP_OP_TEARDOWN)
		json_object_object_add(doc, "teardown", teardown_json(&op->work.teardown));
	json_object_object_add(doc, "outsiders", op->outsiders_final ? op->outsiders_final
								    : json_object_new_array());
	json_object_object_add(doc, "rdma", op->rdma_final ? op->rdma_final
							   : json_object_new_object());
	op->outsiders_final = op->rdma_final = NULL;
	/*
	 * A released device stays zapped in the clients; everything else reopens
	 * -- but a device that was disabled before its teardown failed is gone
	 * for them all the same.
	 */
	op_end(m, op, r, doc, (r < 0 && !op->work.disabled) || op->kind != DP_OP_RELEASE);
}

static int op_scan(struct dd_manager *m, struct dd_op *op, int purpose, char *why, size_t size);

/* An operation that cannot go on for want of a scan (@r, @why): nothing was changed. */
static void op_fail(struct dd_manager *m, struct dd_op *op, int r, const char *why)
{
	json_object *doc = op_doc(op, "failed");
	char msg[320];

	snprintf(msg, sizeof(msg), "cannot check for holders outside daxpool: %s; nothing was "
				   "changed", why);
	json_object_object_add(doc, "message", json_object_new_string(msg));
	json_object_object_add(doc, "outsiders", json_object_new_array());
	op_end(m, op, r, doc, true);
}

/* All clients drained: check outsiders again (a scan; op_act at its end). */
static void op_finish(struct dd_manager *m, struct dd_op *op)
{
	char why[256];
	int r = op_scan(m, op, SCAN_FINAL, why, sizeof(why));

	if (r < 0)
		op_fail(m, op, r, why);
}

/* The final check found @outs (taken, with @rdma): act -- off the loop when it may sleep. */
static void op_act(struct dd_manager *m, struct dd_op *op, json_object *outs, json_object *rdma)
{
	int r;

	if (json_object_array_length(outs) && !(op->flags & DP_OP_FORCE)) {
		op_refuse(m, op, outs, rdma);
		return;
	}
	op->outsiders_final = outs;
	op->rdma_final = rdma;
	if (op->kind == DP_OP_RELEASE && !dd_target_is_devdax(&op->t)) {
		op_acted(m, op, 0, "file-backed region: there is no device to disable; the release is "
				"the end of the drain");
		return;
	}
	op->work = (struct dd_work){ .path_fd = op->t.fd, .dev = op->t.dev, .ino = op->t.ino,
				     .offset = op->offset, .length = op->length };
	if (op->kind == DP_OP_RELEASE) {
		op->work.kind = op->flags & DP_OP_TEARDOWN ? DD_WORK_TEARDOWN : DD_WORK_DISABLE;
		snprintf(op->work.devname, sizeof(op->work.devname), "%s", op->t.devname);
		/* The unbind (and removal) that follow are this release, not an unplug (udev.c). */
		if (op->flags & DP_OP_TEARDOWN)
			dd_udev_expect_teardown(op->t.devname);
		else
			dd_udev_expect_disable(op->t.devname);
	} else {
		op->work.kind = op->kind == DP_OP_TRUNCATE ? DD_WORK_TRUNCATE : DD_WORK_PUNCH;
	}
	op->drained_ns = dd_now_ns();
	r = dd_work_start(&op->work);
	if (r < 0) {
		if (op->kind == DP_OP_RELEASE)
			dd_udev_unexpect_disable(op->t.devname);
		snprintf(op->work.msg, sizeof(op->work.msg), "cannot start the worker: %s",
			 strerror(-r));
		op_acted(m, op, r, op->work.msg);
		return;
	}
	op->acting = true;
}

void dd_ops_stop(struct dd_manager *m)
{
	for (struct dd_op *op = m->ops; op; op = op->next) {
		/* A thread still in the kernel: interrupt it until it returns. */
		while (op->acting && !dd_work_done(&op->work)) {
			dd_work_interrupt(&op->work);
			usleep(20000);
		}
		op->acting = false;
	}
	while (m->ops) {
		dd_log(LOG_WARNING, "%s of %s: the daemon stops; nothing was changed",
		       dd_op_name(m->ops->kind), m->ops->t.path);
		op_end(m, m->ops, -ECANCELED, op_doc(m->ops, "cancelled"), true);
	}
}

void dd_ops_work_done(struct dd_manager *m)
{
	dd_worker_drain_event();
	for (struct dd_op *op = m->ops, *next; op; op = next) {
		next = op->next;
		if (!op->acting || !dd_work_done(&op->work))
			continue;
		op->acting = false;
		if (op->kind == DP_OP_RELEASE && op->work.result < 0)
			dd_udev_unexpect_disable(op->t.devname);
		op_acted(m, op, op->work.result, op->work.msg);
	}
}

static void op_check_done(struct dd_manager *m, struct dd_op *op)
{
	/*
	 * Only a draining operation can be done: one waiting for outsiders has
	 * not begun its drain, one acting already finished it (any connection's
	 * end calls this for every operation).
	 */
	if (op->waiting || op->acting || op->n_undone || op->scan)
		return; /* a scan's end calls it again */
	op_finish(m, op);
}

/* Revoke every client's region on the target, then finish once all are drained. */
static void op_drain(struct dd_manager *m, struct dd_op *op)
{
	dd_log(LOG_NOTICE, "%s of %s requested by pid %d uid %u: draining", dd_op_name(op->kind),
	       op->t.path, (int)op->requester_pid, (unsigned)op->requester_uid);
	for (struct dd_conn *cc = m->conns; cc; cc = cc->next)
		for (struct dd_region *reg = cc->regions; reg; reg = reg->next)
			if (cc->role == DP_ROLE_CLIENT && dd_op_matches(op, reg))
				op_revoke(m, op, cc, reg);
	op_check_done(m, op);
}

/* Wait (polled by m->ops_tick) for the holders in @outs to go: their exit, unmap or unpin. */
static void op_wait_outsiders(struct dd_manager *m, struct dd_op *op, json_object *outs)
{
	size_t n = json_object_array_length(outs);

	free(op->waiting_on);
	op->waiting_on = calloc(n + 1, sizeof(*op->waiting_on));
	op->n_waiting_on = 0;
	for (size_t i = 0; op->waiting_on && i < n; i++) {
		pid_t pid = json_object_get_int(
			json_object_object_get(json_object_array_get_idx(outs, i), "pid"));
		uint64_t start;

		if (dd_proc_start(pid, &start, NULL) == 0)
			op->waiting_on[op->n_waiting_on++] = (struct dd_waited){ pid, start };
	}
	if (!op->waiting)
		dd_log(LOG_NOTICE, "%s of %s requested by pid %d uid %u: waiting for %zu possible "
				   "holder(s) outside daxpool", dd_op_name(op->kind), op->t.path,
		       (int)op->requester_pid, (unsigned)op->requester_uid, n);
	op->waiting = true;
	op->poll_ns = dd_now_ns() + DD_OUTSIDER_POLL_NS;
}

/* The operation's last whole scan found @outs: keep them for a report at the deadline. */
static void op_keep_outsiders(struct dd_op *op, json_object *outs)
{
	json_object_put(op->outsiders_last);
	op->outsiders_last = json_object_get(outs);
}

/* The holders waited for went, or none were found: drain. */
static void op_outsiders_gone(struct dd_manager *m, struct dd_op *op)
{
	uint64_t now = dd_now_ns();

	if (op->waiting)
		dd_log(LOG_NOTICE, "%s of %s: the holders outside daxpool went after %.3f s",
		       dd_op_name(op->kind), op->t.path, (double)(now - op->started_ns) / 1e9);
	if (op->waiting)
		op->outsiders_gone_ns = now;
	op->waiting = false;
	op_drain(m, op);
}

/* @op's scan ended: what it found decides, as its purpose says. */
static void op_scan_done(struct dd_manager *m, struct dd_scan *s)
{
	struct dd_op *op = s->owner;
	json_object *outs = s->holders, *rdma = s->rdma;
	bool found, waited_there = s->waited_there;

	op->scan = NULL;
	s->holders = s->rdma = NULL; /* the operation's now */
	if (!outs)
		outs = json_object_new_array(); /* a poll that found a waited holder still there */
	if (!rdma)
		rdma = json_object_new_object();
	found = waited_there || json_object_array_length(outs);
	if (!waited_there)
		op_keep_outsiders(op, outs);
	switch (op->scan_purpose) {
	case SCAN_BEFORE:
		if (!found || (op->flags & DP_OP_FORCE))
			break;
		if (op->may_wait) {
			/* Asked to wait: for them to go, then drain, within the same deadline. */
			op_wait_outsiders(m, op, outs);
			json_object_put(outs);
			json_object_put(rdma);
			return;
		}
		op_refuse(m, op, outs, rdma);
		return;
	case SCAN_POLL:
		if (waited_there) {
			op->poll_ns = dd_now_ns() + DD_OUTSIDER_POLL_NS;
			json_object_put(outs);
			json_object_put(rdma);
			return;
		}
		if (found) {
			op_wait_outsiders(m, op, outs);
			json_object_put(outs);
			json_object_put(rdma);
			return;
		}
		break;
	case SCAN_DEADLINE:
		if (found) {
			/*
			 * A poll that found a waited holder still there scanned nothing
			 * else: the last whole scan names them all.
			 */
			if (waited_there) {
				json_object_put(outs);
				outs = json_object_get(op->outsiders_last);
			}
			op_refuse(m, op, outs, rdma);
			return;
		}
		/*
		 * They went just now: drain with what is left of the deadline --
		 * nothing. With no client to revoke it ends here; else the next
		 * tick times it out, at the deadline the requester gave (a fresh
		 * one would overrun it).
		 */
		break;
	case SCAN_FINAL:
		if (op->n_undone) {
			/* Registered during the scan: its REVOKE_DONE finishes again. */
			json_object_put(outs);
			json_object_put(rdma);
			return;
		}
		op_act(m, op, outs, rdma);
		return;
	case SCAN_REPORT: {
		json_object *doc = s->doc;

		s->doc = NULL;
		json_object_object_add(doc, "outsiders", outs);
		json_object_put(rdma);
		op_end(m, op, -ETIMEDOUT, doc, true);
		return;
	}
	}
	json_object_put(outs);
	json_object_put(rdma);
	op_outsiders_gone(m, op);
}

/*
 * @op's scan has not ended by its bound: what it would have found cannot be
 * ruled out. Refuse (or time out), naming what it is stuck on and what the
 * last whole scan found.
 */
static void op_scan_late(struct dd_manager *m, struct dd_scan *s)
{
	struct dd_op *op = s->owner;
	json_object *outs = json_object_new_array(), *doc;

	op->scan = NULL;
	dd_log(LOG_WARNING, "%s of %s: the scan for holders has not ended (reading pid %d)",
	       dd_op_name(op->kind), op->t.path, __atomic_load_n(&s->in.at_pid, __ATOMIC_ACQUIRE));
	if (op->scan_purpose == SCAN_REPORT) {
		doc = s->doc;
		s->doc = NULL;
		json_object_array_add(outs, dd_scan_stuck_holder(s));
		json_object_object_add(doc, "outsiders", outs);
		op_end(m, op, -ETIMEDOUT, doc, true);
		return;
	}
	for (size_t i = 0; op->outsiders_last && i < json_object_array_length(op->outsiders_last);
	     i++)
		json_object_array_add(outs, json_object_get(json_object_array_get_idx(
						    op->outsiders_last, i)));
	json_object_array_add(outs, dd_scan_stuck_holder(s));
	op_refuse(m, op, outs, json_object_new_object());
}

/*
 * Start a scan of @purpose for @op (admitted by dd_op_start). Its bound: the
 * deadline, and at least scan_timeout from now. Return 0, or
 * -errno with @why set.
 */
static int op_scan(struct dd_manager *m, struct dd_op *op, int purpose, char *why, size_t size)
{
	uint64_t bound = dd_now_ns() + (uint64_t)m->cfg.scan_timeout_ms * 1000000ull;
	struct dd_scan *s;
	int r;

	s = dd_scan_new(purpose == SCAN_POLL ? DD_SCAN_POLL : DD_SCAN_HOLDERS, op->requester_uid);
	if (!s) {
		snprintf(why, size, "out of memory");
		return -ENOMEM;
	}
	/* A requester that is not root sees no addresses of others' processes (as in status). */
	s->in.viewer = op->requester_uid;
	r = dd_scan_add_key(m, s, &op->t, purpose == SCAN_FINAL);
	if (r == 0 && purpose == SCAN_POLL && op->n_waiting_on) {
		s->waited = calloc(op->n_waiting_on, sizeof(*s->waited));
		if (!s->waited)
			r = -ENOMEM;
		else
			memcpy(s->waited, op->waiting_on, op->n_waiting_on * sizeof(*s->waited));
		s->n_waited = op->n_waiting_on;
	}
	if (r < 0) {
		dd_scan_free(s);
		snprintf(why, size, "out of memory");
		return r;
	}
	r = dd_scan_start(m, s, op, op_scan_done, op_scan_late,
			  op->deadline_ns > bound ? op->deadline_ns : bound);
	if (r < 0) {
		snprintf(why, size, "cannot start a scan: %s", strerror(-r));
		return r;
	}
	op->scan = s;
	op->scan_purpose = purpose;
	return 0;
}

void dd_op_start(struct dd_manager *m, struct dd_conn *c, const struct dp_msg *msg)
{
	const char *name = dd_op_name(msg->op.op);
	struct dd_target t;
	struct dd_op *op;
	int r;

	r = dd_target_resolve(msg->op.target, &t);
	if ((r == 0 && !dd_target_may_act(&t, c->cred.uid)) ||
	    (r < 0 && r != -EINVAL && r != -ELOOP && c->cred.uid != 0)) {
		/* The same answer whether it exists or not: another user learns nothing. */
		dd_log(LOG_WARNING, "%s of %s by uid %u (pid %d) refused: %s", name, msg->op.target,
		       (unsigned)c->cred.uid, (int)c->cred.pid,
		       r < 0 ? strerror(-r) : "not root nor the owner");
		dd_conn_reply_error(c, -EPERM, "%s: only root or its owner may %s it (or there is "
					       "no such file)", msg->op.target, name);
		dd_target_close(&t);
		return;
	}
	if (r < 0) {
		dd_log(LOG_WARNING, "%s of %s by pid %d uid %u (%s) refused: %s", name,
		       msg->op.target, (int)c->cred.pid, (unsigned)c->cred.uid, c->comm,
		       r == -EINVAL ? "neither a regular file nor a device-dax device"
				    : strerror(-r));
		if (r == -EINVAL)
			dd_conn_reply_error(c, r, "%s: neither a regular file nor a device-dax "
						  "device (the device is named by the kernel, not "
						  "by the path); relative paths are refused",
					    msg->op.target);
		else if (r == -ELOOP)
			dd_conn_reply_error(c, r, "%s: a symbolic link on the way; give the path "
						  "without links", msg->op.target);
		else
			dd_conn_reply_error(c, r, "%s: %s", msg->op.target, strerror(-r));
		return;
	}
	if (msg->op.op != DP_OP_RELEASE && dd_target_is_devdax(&t)) {
		dd_conn_reply_error(c, -EINVAL, "%s: %s needs a regular file", t.path, name);
		dd_target_close(&t);
		return;
	}
	if (msg->op.flags & DP_OP_TEARDOWN) {
		char why[PATH_MAX + 256];

		/* Before anything is drained: a teardown that cannot be done is refused whole. */
		if (msg->op.flags & DP_OP_FORCE) {
			r = -EINVAL;
			snprintf(why, sizeof(why), "%s: --teardown cannot be forced: it destroys the "
						   "namespace and the CXL region only after a drain "
						   "that nothing outside daxpool holds up", t.path);
		} else if (msg->op.op != DP_OP_RELEASE || !dd_target_is_devdax(&t)) {
			r = -EINVAL;
			snprintf(why, sizeof(why), "%s: --teardown is for the release of a device-dax "
						   "device on a CXL region", t.path);
		} else {
			r = dd_teardown_check(t.devname, why, sizeof(why));
		}
		if (r < 0) {
			dd_log(LOG_WARNING, "%s --teardown of %s by pid %d uid %u (%s) refused: %s",
			       name, t.path, (int)c->cred.pid, (unsigned)c->cred.uid, c->comm, why);
			dd_conn_reply_error(c, r, "%s", why);
			dd_target_close(&t);
			return;
		}
	}
	if (c->cred.uid != 0) {
		unsigned int mine = 0;

		for (op = m->ops; op; op = op->next)
			mine += op->requester_uid == c->cred.uid;
		if (mine >= m->cfg.max_operations_per_uid) {
			dd_conn_reply_error(c, -EAGAIN, "%s: uid %u has %u operations in progress "
							"(max_operations_per_uid): try again when "
							"one ended", t.path, (unsigned)c->cred.uid,
					    mine);
			dd_target_close(&t);
			return;
		}
	}
	{
		char why[256];

		r = dd_scan_admit(m, c->cred.uid, why, sizeof(why));
		if (r < 0) {
			dd_conn_reply_error(c, r, "%s: %s", t.path, why);
			dd_target_close(&t);
			return;
		}
	}
	for (op = m->ops; op; op = op->next) {
		if ((op->t.dev == t.dev && op->t.ino == t.ino) ||
		    (t.rdev && op->t.rdev == t.rdev)) {
			dd_conn_reply_error(c, -EBUSY, "%s: a %s is already in progress", t.path,
					    dd_op_name(op->kind));
			dd_target_close(&t);
			return;
		}
	}
	op = calloc(1, sizeof(*op));
	if (!op) {
		dd_conn_reply_error(c, -ENOMEM, "out of memory");
		dd_target_close(&t);
		return;
	}
	op->t = t; /* the descriptor is the operation's now */
	op->req = m->next_req++;
	op->kind = msg->op.op;
	op->flags = msg->op.flags;
	op->requester = c;
	op->requester_pid = c->cred.pid;
	op->requester_uid = c->cred.uid;
	snprintf(op->requester_comm, sizeof(op->requester_comm), "%s", c->comm);
	if (op->kind == DP_OP_TRUNCATE) {
		op->offset = msg->op.offset; /* the new size: drain from there to the end */
		op->length = 0;
	} else if (op->kind == DP_OP_PUNCH) {
		op->offset = msg->op.offset;
		op->length = msg->op.length;
	}
	op->started_ns = dd_now_ns();
	op->deadline_ns = op->started_ns +
			  (uint64_t)(msg->op.timeout_ms >= 0 ? msg->op.timeout_ms
							 : m->cfg.release_timeout_ms) *
				  1000000ull;
	op->next = m->ops;
	m->ops = op;
	c->op = op;
	op->may_wait = msg->op.timeout_ms > 0;
	{
		char why[256];

		/* Outsiders first; the scan's end decides (op_scan_done). */
		r = op_scan(m, op, SCAN_BEFORE, why, sizeof(why));
		if (r < 0)
			op_fail(m, op, r, why);
	}
}

void dd_op_region_added(struct dd_manager *m, struct dd_conn *c, struct dd_region *r)
{
	for (struct dd_op *op = m->ops; op; op = op->next)
		if (dd_op_matches(op, r))
			op_revoke(m, op, c, r);
}

/*
 * O(1): the region by id in @c's table, the operation's wait from the region
 * (dd_region.pend), which names its operation. A stale or forged (req,
 * region_id) finds no wait, or one of another request: ignored.
 */
void dd_op_revoke_done(struct dd_manager *m, struct dd_conn *c, uint64_t req, uint64_t region_id,
		       int status)
{
	struct dd_region *r = dd_regmap_get(&c->region_ids, region_id);
	struct dd_pend *p = r ? r->pend : NULL;
	struct dd_op *op = p ? p->op : NULL;

	if (!p || p->done || p->conn != c || op->req != req)
		return;
	if (op->acting)
		return; /* the worker owns the operation until it ends */
	if (status < 0) {
		json_object *doc = op_doc(op, "failed");
		char msg[256];

		snprintf(msg, sizeof(msg), "pid %d (%s) could not zap its region: %s",
			 (int)c->cred.pid, c->comm, strerror(-status));
		json_object_object_add(doc, "message", json_object_new_string(msg));
		op_end(m, op, status, doc, true);
		return;
	}
	p->done = true;
	r->pend = NULL;
	op->n_undone--;
	op->last_done_ns = dd_now_ns();
	op_check_done(m, op);
}

void dd_op_conn_gone(struct dd_manager *m, struct dd_conn *c, bool process_dead)
{
	for (struct dd_op *op = m->ops, *next; op; op = next) {
		bool lost = false;

		next = op->next;
		if (op->requester == c && op->acting) {
			/* The action is under way in the kernel: it ends on its own. */
			op->requester = NULL;
			continue;
		}
		if (op->requester == c) {
			json_object *doc = op_doc(op, "cancelled");

			/* Nobody waits for the answer: cancel, reopen everything. */
			op->requester = NULL;
			dd_log(LOG_WARNING, "%s of %s: the requester went away; cancelled",
			       dd_op_name(op->kind), op->t.path);
			/* op_end(m, )'s audit line reads the outsiders: there are none to name. */
			json_object_object_add(doc, "outsiders", json_object_new_array());
			op_end(m, op, -ECANCELED, doc, true);
			continue;
		}
		for (struct dd_pend **pp = &op->pend; *pp;) {
			struct dd_pend *p = *pp;
			struct dd_region *r;

			if (p->conn != c) {
				pp = &p->next;
				continue;
			}
			r = dd_regmap_get(&c->region_ids, p->region_id);
			if (r && r->pend == p)
				r->pend = NULL; /* the connection's regions go with it */
			if (process_dead) {
				/* Its maps and pins died with it. */
				*pp = p->next;
				if (!p->done)
					op->n_undone--;
				free(p);
				op->last_done_ns = dd_now_ns();
			} else {
				p->conn = NULL;
				lost |= !p->done;
				pp = &p->next;
			}
		}
		if (lost && !op->acting) {
			json_object *doc = op_doc(op, "failed");
			char msg[256];

			json_object_object_add(doc, "outsiders", json_object_new_array());
			/* A process that died counts as drained (server.c waits for its pidfd). */
			snprintf(msg, sizeof(msg),
				 "pid %d (%s) lost its connection while draining and its process "
				 "did not exit; what it holds is unknown, so nothing was changed",
				 (int)c->cred.pid, c->comm);
			json_object_object_add(doc, "message", json_object_new_string(msg));
			op_end(m, op, -ECONNRESET, doc, true);
		} else {
			op_check_done(m, op);
		}
	}
}

int dd_ops_tick(struct dd_manager *m)
{
	uint64_t now = dd_now_ns(), next = UINT64_MAX;
	bool again = false; /* an operation moved on: tick again at once */

	for (struct dd_op *op = m->ops, *nop; op; op = nop) {
		char why[256];

		nop = op->next;
		if (op->acting) {
			/*
			 * Past the deadline, interrupt its sleep; again at every poll, in
			 * case the signal came before the system call began.
			 */
			if (now >= op->deadline_ns) {
				dd_work_interrupt(&op->work);
				if (now + DD_OUTSIDER_POLL_NS < next)
					next = now + DD_OUTSIDER_POLL_NS;
			} else if (op->deadline_ns < next) {
				next = op->deadline_ns;
			}
			continue;
		}
		if (op->scan) {
			/* Its end decides, or its bound (scan.c); a poll at the deadline decides it. */
			if (now >= op->deadline_ns && op->scan_purpose == SCAN_POLL)
				op->scan_purpose = SCAN_DEADLINE;
			else if (now < op->deadline_ns && op->deadline_ns < next)
				next = op->deadline_ns;
			continue;
		}
		if (now >= op->deadline_ns && op->waiting) {
			/* Whether they went just now; else refused (op_scan_done). */
			if (op_scan(m, op, SCAN_DEADLINE, why, sizeof(why)) < 0)
				op_refuse(m, op,
					  op->outsiders_last ? json_object_get(op->outsiders_last)
							     : json_object_new_array(),
					  json_object_new_object());
			again = true;
			continue;
		}
		if (now >= op->deadline_ns) {
			json_object *doc = op_doc(op, "timeout");

			json_object_object_add(doc, "message",
					       json_object_new_string("holders did not drain before the "
								      "deadline: nothing was released; "
								      "the device stays usable"));
			json_object_object_add(doc, "holders", op_holders(m, op));
			/* The outsiders of the report are a scan's (op_scan_done). */
			if (op_scan(m, op, SCAN_REPORT, why, sizeof(why)) == 0) {
				op->scan->doc = doc;
			} else {
				json_object_object_add(doc, "outsiders", json_object_new_array());
				op_end(m, op, -ETIMEDOUT, doc, true);
			}
			again = true;
			continue;
		}
		if (op->waiting && now >= op->poll_ns) {
			/* Whether they went (op_scan_done); else the next poll. */
			if (op_scan(m, op, SCAN_POLL, why, sizeof(why)) < 0)
				op->poll_ns = now + DD_OUTSIDER_POLL_NS;
			again = true;
			continue;
		}
		if (op->deadline_ns < next)
			next = op->deadline_ns;
		if (op->waiting && op->poll_ns < next)
			next = op->poll_ns;
	}
	if (again)
		return 0;
	if (next == UINT64_MAX)
		return -1;
	return (int)((next - now + 999999) / 1000000);
}
