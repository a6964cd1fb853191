/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * "Who holds what": the STATUS request of daxpoolctl status and pins, and the
 * holder reports of refused or timed-out operations. Root sees everything; any
 * other user sees its own clients, and every client's holdings of devices and
 * files that user owns.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "client_json.h"
#include "device.h"
#include "log.h"
#include "opens.h"
#include "outsiders.h"
#include "scan.h"
#include "status.h"
#include "udev.h"
#include "umem_trace.h"

/*
 * Whether @uid may see @r of @c: its own client, or a device or file it owns
 * -- the owner as the registration's descriptor gave it, never a lookup of
 * the path (which another user may have re-created since).
 */
static bool region_visible(uid_t uid, const struct dd_conn *c, const struct dd_region *r)
{
	return uid == 0 || c->cred.uid == uid || r->owner_uid == uid;
}

/* A target of the report, once each: (dev, ino) are the key. */
static struct dd_target *key_add(struct dd_target **keys, size_t *n, uint64_t dev, uint64_t ino)
{
	struct dd_target *nk;

	for (size_t k = 0; k < *n; k++)
		if ((*keys)[k].dev == dev && (*keys)[k].ino == ino)
			return NULL;
	nk = realloc(*keys, (*n + 1) * sizeof(*nk));
	if (!nk)
		return NULL;
	*keys = nk;
	nk = &nk[(*n)++];
	*nk = (struct dd_target){ .fd = -1, .dev = dev, .ino = ino };
	return nk;
}

/*
 * Every device-dax device of the machine that @uid may see (root: all; else
 * the ones it owns), as keys: an untargeted status lists the outside holders
 * of each, whether or not a client registered it. Each is resolved as a
 * target (the node under /dev must be the kernel's device of that name: no
 * stale or foreign node, no link).
 */
static void add_devdax_keys(struct dd_target **keys, size_t *n, uid_t uid)
{
	struct dirent *de;
	DIR *d = opendir("/sys/bus/dax/devices");

	if (!d)
		return;
	while ((de = readdir(d))) {
		struct dd_target t, *k;

		if (strncmp(de->d_name, "dax", 3) != 0 || strchr(de->d_name, '/'))
			continue;
		if (dd_target_resolve(de->d_name, &t) < 0)
			continue;
		dd_target_close(&t);
		if (!dd_target_is_devdax(&t) || strcmp(t.devname, de->d_name) != 0 ||
		    !dd_target_may_act(&t, uid))
			continue;
		k = key_add(keys, n, t.dev, t.ino);
		if (k)
			*k = t;
	}
	closedir(d);
}

/* The status's scan ended: its holders complete the document. */
static void status_scanned(struct dd_manager *m, struct dd_scan *s)
{
	struct dd_conn *req = s->owner;

	(void)m;
	req->scan = NULL;
	json_object_object_add(s->doc, "outsiders", s->holders);
	json_object_object_add(s->doc, "rdma", s->rdma);
	s->holders = s->rdma = NULL;
	dd_conn_reply(req, 0, s->doc);
}

/*
 * The status's scan has not ended by its bound: answer without it, naming
 * what it is stuck on (the scan runs on, abandoned).
 */
static void status_late(struct dd_manager *m, struct dd_scan *s)
{
	struct dd_conn *req = s->owner;
	json_object *outs = json_object_new_array(), *rdma = json_object_new_object();

	(void)m;
	req->scan = NULL;
	json_object_array_add(outs, dd_scan_stuck_holder(s));
	json_object_object_add(rdma, "scanned", json_object_new_boolean(false));
	json_object_object_add(s->doc, "outsiders", outs);
	json_object_object_add(s->doc, "rdma", rdma);
	dd_conn_reply(req, 0, s->doc);
}

/* The possible holders of @keys (n), for @req's status @doc (taken): a scan off the loop. */
static void status_scan(struct dd_manager *m, struct dd_conn *req, json_object *doc,
			const struct dd_target *keys, size_t n_keys)
{
	struct dd_scan *s;
	char why[256];
	int r;

	if (!n_keys) {
		struct dd_rdma_mrs none = { 0 };

		json_object_object_add(doc, "outsiders", json_object_new_array());
		json_object_object_add(doc, "rdma", dd_rdma_mrs_json(&none));
		dd_conn_reply(req, 0, doc);
		json_object_put(doc);
		return;
	}
	r = dd_scan_admit(m, req->cred.uid, why, sizeof(why));
	s = r < 0 ? NULL : dd_scan_new(DD_SCAN_HOLDERS, req->cred.uid);
	if (!s && r == 0) {
		r = -ENOMEM;
		snprintf(why, sizeof(why), "out of memory");
	}
	for (size_t k = 0; s && r == 0 && k < n_keys; k++)
		r = dd_scan_add_key(m, s, &keys[k], false);
	if (r == 0) {
		s->in.viewer = req->cred.uid;
		s->doc = doc;
		r = dd_scan_start(m, s, req, status_scanned, status_late,
				  dd_now_ns() + (uint64_t)m->cfg.scan_timeout_ms * 1000000ull);
		if (r == 0) {
			req->scan = s;
			return;
		}
		snprintf(why, sizeof(why), "cannot start a scan: %s", strerror(-r));
		doc = NULL; /* freed with the scan */
	} else {
		dd_scan_free(s);
	}
	json_object_put(doc);
	dd_conn_reply_error(req, r, "status: %s", why);
}

void dd_status(struct dd_manager *m, struct dd_conn *req, const char *target)
{
	json_object *doc = json_object_new_object(), *clients = json_object_new_array();
	json_object *ops = json_object_new_array();
	struct dd_target *keys = NULL, asked = { .fd = -1 };
	size_t n_keys = 0;
	uid_t uid = req->cred.uid;
	bool filter = target[0] != '\0';
	uint64_t n_maps = 0, n_pins = 0;

	if (filter) {
		int r = dd_target_resolve(target, &asked);

		dd_target_close(&asked); /* a report: only the identity is used */
		/*
		 * Another user learns nothing of what it does not own, not even
		 * whether it exists (a file in root's 0700 directory): a target it
		 * cannot see gives the same answer as one it does not own -- an
		 * identity that matches nothing.
		 */
		if (r < 0 && uid != 0) {
			asked = (struct dd_target){ .fd = -1, .dev = (uint64_t)-1, .ino = 0,
						    .owner_uid = (uid_t)-1 };
			snprintf(asked.path, sizeof(asked.path), "%s", target);
			r = 0;
		}
		if (r < 0) {
			json_object_put(doc);
			json_object_put(clients);
			json_object_put(ops);
			dd_conn_reply_error(req, r, "%s: %s", target, strerror(-r));
			return;
		}
		if (dd_target_may_act(&asked, uid)) {
			struct dd_target *k = key_add(&keys, &n_keys, asked.dev, asked.ino);

			if (k)
				*k = asked;
		}
		json_object_object_add(doc, "target", json_object_new_string(asked.path));
	} else {
		add_devdax_keys(&keys, &n_keys, uid);
	}
	for (struct dd_conn *c = m->conns; c; c = c->next) {
		bool any = false;

		if (c->role != DP_ROLE_CLIENT)
			continue;
		/* A client is listed with the regions the requester may see. */
		for (struct dd_region *r = c->regions; r; r = r->next) {
			if ((filter && (r->dev != asked.dev || r->ino != asked.ino)) ||
			    !region_visible(uid, c, r))
				continue;
			any = true;
			if (!filter) {
				struct dd_target *k = key_add(&keys, &n_keys, r->dev, r->ino);

				/*
				 * The registration's identity (the kernel's, from its
				 * descriptor); a device-dax one only while sysfs still
				 * knows that device.
				 */
				if (k) {
					snprintf(k->path, sizeof(k->path), "%s", r->path);
					if (r->kind == DD_REGION_DEVDAX &&
					    dd_devdax_name(r->rdev, k->devname, sizeof(k->devname)) == 0)
						k->rdev = r->rdev;
				}
			}
		}
		if (!any && (filter || (uid != 0 && c->cred.uid != uid)))
			continue;
		json_object *jc = dd_client_json(m, c, filter, asked.dev, asked.ino);
		json_object *regions = json_object_object_get(jc, "regions");

		/* Drop the regions this requester may not see. */
		if (uid != 0 && c->cred.uid != uid) {
			json_object *vis = json_object_new_array();
			size_t i = 0;

			for (struct dd_region *r = c->regions; r; r = r->next) {
				if (filter && (r->dev != asked.dev || r->ino != asked.ino))
					continue;
				if (region_visible(uid, c, r))
					json_object_array_add(vis, json_object_get(json_object_array_get_idx(regions, i)));
				i++;
			}
			json_object_object_add(jc, "regions", vis);
			regions = vis;
		}
		for (size_t i = 0; i < json_object_array_length(regions); i++) {
			json_object *jr = json_object_array_get_idx(regions, i);

			n_maps += json_object_array_length(json_object_object_get(jr, "maps"));
			n_pins += json_object_array_length(json_object_object_get(jr, "pins"));
		}
		json_object_array_add(clients, jc);
	}
	for (struct dd_op *op = m->ops; op; op = op->next) {
		json_object *o;
		size_t pending = op->n_undone;

		if (uid != 0 && op->requester && op->requester->cred.uid != uid)
			continue;
		o = json_object_new_object();
		json_object_object_add(o, "operation", json_object_new_string(dd_op_name(op->kind)));
		json_object_object_add(o, "target", json_object_new_string(op->t.path));
		json_object_object_add(o, "age_s", json_object_new_double(
							   (double)(dd_now_ns() - op->started_ns) / 1e9));
		json_object_object_add(o, "pending_clients", json_object_new_uint64(pending));
		json_object_array_add(ops, o);
	}
	json_object_object_add(doc, "clients", clients);
	json_object_object_add(doc, "operations", ops);
	json_object_object_add(doc, "maps", json_object_new_uint64(n_maps));
	json_object_object_add(doc, "pins", json_object_new_uint64(n_pins));
	json_object_object_add(doc, "device_events", json_object_new_string(dd_udev_source()));
	json_object_object_add(doc, "open_record", dd_opens_json());
	json_object_object_add(doc, "mr_tracer", dd_umem_trace_json());
	json_object_object_add(doc, "gone", dd_udev_gone_json());
	status_scan(m, req, doc, keys, n_keys);
	free(keys);
}
