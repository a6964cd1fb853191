/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * "Who holds what": the STATUS request of daxpoolctl status and pins, and the
 * holder reports of refused or timed-out operations. Root sees everything; any
 * other user sees its own clients, and every client's holdings of devices and
 * files that user owns.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "daxpoold.h"

const char *dd_pin_kind_name(uint32_t kind)
{
	return kind == 2 ? "longterm" : kind == 1 ? "transient" : "map";
}

static const char *region_kind_name(uint32_t kind)
{
	return kind == 3 ? "devdax" : kind == 2 ? "fsdax" : "file";
}

int dd_resolve_target(const char *target, char *path, struct stat *st, char *devname,
		      size_t devname_size)
{
	/* The daemon's working directory means nothing to the requester. */
	if (strchr(target, '/') && target[0] != '/')
		return -EINVAL;
	if (strchr(target, '/'))
		snprintf(path, PATH_MAX, "%s", target);
	else
		snprintf(path, PATH_MAX, "/dev/%s", target); /* a devdax name: dax0.0 */
	if (stat(path, st) < 0)
		return -errno;
	if (devname_size)
		devname[0] = '\0';
	if (S_ISCHR(st->st_mode)) {
		char name[DP_PROTO_MAX_DEVNAME + 1];
		int r = dd_devdax_name(st->st_rdev, name, sizeof(name));

		if (r < 0)
			return r == -ENOTTY || r == -ENODEV ? -EINVAL : r;
		if (devname_size)
			snprintf(devname, devname_size, "%s", name);
		return 0;
	}
	if (!S_ISREG(st->st_mode))
		return -EINVAL;
	return 0;
}

static json_object *holding_json(const struct dd_holding *h, uint64_t now)
{
	json_object *o = json_object_new_object();

	json_object_object_add(o, "offset", json_object_new_uint64(h->offset));
	json_object_object_add(o, "length", json_object_new_uint64(h->length));
	json_object_object_add(o, "tid", json_object_new_int((int)h->tid));
	json_object_object_add(o, "age_s", json_object_new_double(
						   now > h->created_ns ? (double)(now - h->created_ns) / 1e9 : 0));
	if (h->kind) {
		char access[4] = "";

		if (h->access & 1)
			strcat(access, "r");
		if (h->access & 2)
			strcat(access, "w");
		json_object_object_add(o, "kind", json_object_new_string(dd_pin_kind_name(h->kind)));
		json_object_object_add(o, "device_access", json_object_new_string(access));
	}
	return o;
}

/* A region's file lease as the client reported it (REGION_STATE). */
static json_object *lease_json(const struct dd_region *r)
{
	static const char *const states[] = { "none",	 "off",	    "held",
					      "refused", "yielded", "broken" };
	json_object *o = json_object_new_object();

	json_object_object_add(o, "state", json_object_new_string(
						   r->lease < sizeof(states) / sizeof(states[0])
							   ? states[r->lease]
							   : "?"));
	json_object_object_add(o, "error", r->lease_error ? json_object_new_string(
								    strerror(-r->lease_error))
							  : NULL);
	json_object_object_add(o, "breaks", json_object_new_uint64(r->lease_breaks));
	return o;
}

json_object *dd_client_json(struct dd_conn *c, bool filter, uint64_t dev, uint64_t ino)
{
	json_object *o = json_object_new_object(), *regions = json_object_new_array();
	uint64_t now = dd_now_ns();

	json_object_object_add(o, "pid", json_object_new_int(c->cred.pid));
	json_object_object_add(o, "uid", json_object_new_int((int)c->cred.uid));
	json_object_object_add(o, "comm", json_object_new_string(c->comm));
	json_object_object_add(o, "connected_s",
			       json_object_new_double((double)(now - c->connected_ns) / 1e9));
	for (struct dd_region *r = c->regions; r; r = r->next) {
		json_object *jr, *maps, *pins;

		if (filter && (r->dev != dev || r->ino != ino))
			continue;
		jr = json_object_new_object();
		maps = json_object_new_array();
		pins = json_object_new_array();
		json_object_object_add(jr, "path", json_object_new_string(r->path));
		json_object_object_add(jr, "device", r->devname[0] ? json_object_new_string(r->devname)
								   : NULL);
		json_object_object_add(jr, "kind", json_object_new_string(region_kind_name(r->kind)));
		json_object_object_add(jr, "size", json_object_new_uint64(r->size));
		json_object_object_add(jr, "draining", json_object_new_boolean(dd_region_draining(r)));
		json_object_object_add(jr, "gone", json_object_new_boolean(dd_region_gone(r) < 0));
		json_object_object_add(jr, "lease", lease_json(r));
		dd_idmap_for_each(&c->maps, i, h)
		{
			if (h->region_id == r->id)
				json_object_array_add(maps, holding_json(h, now));
		}
		dd_idmap_for_each(&c->pins, j, h)
		{
			if (h->region_id == r->id)
				json_object_array_add(pins, holding_json(h, now));
		}
		json_object_object_add(jr, "maps", maps);
		json_object_object_add(jr, "pins", pins);
		json_object_array_add(regions, jr);
	}
	json_object_object_add(o, "regions", regions);
	return o;
}

pid_t *dd_client_pids(uint64_t dev, uint64_t ino, size_t *ret_n)
{
	size_t n = 0, cap = 16;
	pid_t *pids = malloc(cap * sizeof(*pids));

	for (struct dd_conn *c = dd_conns; c && pids; c = c->next) {
		for (struct dd_region *r = c->regions; r; r = r->next) {
			if (r->dev != dev || r->ino != ino)
				continue;
			if (n == cap) {
				pid_t *np = realloc(pids, (cap *= 2) * sizeof(*pids));

				if (!np)
					break;
				pids = np;
			}
			pids[n++] = c->cred.pid;
			break;
		}
	}
	*ret_n = pids ? n : 0;
	return pids;
}

/* Whether @uid may see @r of @c: its own client, or a device it owns. */
static bool region_visible(uid_t uid, struct dd_conn *c, const struct dd_region *r)
{
	struct stat st;

	if (uid == 0 || c->cred.uid == uid)
		return true;
	return stat(r->path, &st) == 0 && st.st_uid == uid;
}

struct devkey {
	uint64_t dev, ino;
	const char *path;
};

void dd_status(struct dd_conn *req, const char *target)
{
	json_object *doc = json_object_new_object(), *clients = json_object_new_array();
	json_object *outsiders = json_object_new_array(), *ops = json_object_new_array();
	struct devkey *keys = NULL;
	struct dd_rdma_mrs mrs = { 0 };
	size_t n_keys = 0;
	uid_t uid = req->cred.uid;
	char path[PATH_MAX];
	struct stat st = { 0 };
	bool filter = target[0] != '\0';
	uint64_t n_maps = 0, n_pins = 0;

	if (filter) {
		int r = dd_resolve_target(target, path, &st, NULL, 0);

		if (r < 0) {
			json_object_put(doc);
			json_object_put(clients);
			json_object_put(outsiders);
			json_object_put(ops);
			dd_conn_reply_error(req, r, "%s: %s", target, strerror(-r));
			return;
		}
		keys = calloc(1, sizeof(*keys));
		if (keys && (uid == 0 || st.st_uid == uid))
			keys[n_keys++] = (struct devkey){ st.st_dev, st.st_ino, path };
		json_object_object_add(doc, "target", json_object_new_string(path));
	}
	for (struct dd_conn *c = dd_conns; c; c = c->next) {
		bool any = false;

		if (c->role != DP_ROLE_CLIENT)
			continue;
		/* A client is listed with the regions the requester may see. */
		for (struct dd_region *r = c->regions; r; r = r->next) {
			if ((filter && (r->dev != st.st_dev || r->ino != st.st_ino)) ||
			    !region_visible(uid, c, r))
				continue;
			any = true;
			if (!filter) {
				bool seen = false;

				for (size_t k = 0; k < n_keys; k++)
					seen |= keys[k].dev == r->dev && keys[k].ino == r->ino;
				if (!seen) {
					struct devkey *nk = realloc(keys, (n_keys + 1) * sizeof(*nk));

					if (nk) {
						keys = nk;
						keys[n_keys++] = (struct devkey){ r->dev, r->ino, r->path };
					}
				}
			}
		}
		if (!any && (filter || (uid != 0 && c->cred.uid != uid)))
			continue;
		json_object *jc = dd_client_json(c, filter, st.st_dev, st.st_ino);
		json_object *regions = json_object_object_get(jc, "regions");

		/* Drop the regions this requester may not see. */
		if (uid != 0 && c->cred.uid != uid) {
			json_object *vis = json_object_new_array();
			size_t i = 0;

			for (struct dd_region *r = c->regions; r; r = r->next) {
				if (filter && (r->dev != st.st_dev || r->ino != st.st_ino))
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
	for (size_t k = 0; k < n_keys; k++) {
		size_t n_ex;
		pid_t *ex = dd_client_pids(keys[k].dev, keys[k].ino, &n_ex);
		json_object *found[2] = {
			dd_outsiders_scan(keys[k].dev, keys[k].ino, ex, n_ex, &mrs),
			/* Clients' MRs that daxpool did not register count the same way. */
			dd_client_mr_holders(keys[k].dev, keys[k].ino, &mrs),
		};

		for (size_t j = 0; j < 2; j++) {
			for (size_t i = 0; i < json_object_array_length(found[j]); i++) {
				json_object *o = json_object_get(json_object_array_get_idx(found[j], i));

				json_object_object_add(o, "target", json_object_new_string(keys[k].path));
				json_object_array_add(outsiders, o);
			}
			json_object_put(found[j]);
		}
		free(ex);
	}
	for (struct dd_op *op = dd_ops; op; op = op->next) {
		json_object *o;
		size_t pending = 0;

		if (uid != 0 && op->requester && op->requester->cred.uid != uid)
			continue;
		for (struct dd_pend *p = op->pend; p; p = p->next)
			pending += !p->done;
		o = json_object_new_object();
		json_object_object_add(o, "operation", json_object_new_string(
							       op->kind == DP_OP_RELEASE    ? "release"
							       : op->kind == DP_OP_TRUNCATE ? "truncate"
											    : "punch"));
		json_object_object_add(o, "target", json_object_new_string(op->target));
		json_object_object_add(o, "age_s", json_object_new_double(
							   (double)(dd_now_ns() - op->started_ns) / 1e9));
		json_object_object_add(o, "pending_clients", json_object_new_uint64(pending));
		json_object_array_add(ops, o);
	}
	json_object_object_add(doc, "clients", clients);
	json_object_object_add(doc, "outsiders", outsiders);
	json_object_object_add(doc, "rdma", dd_rdma_mrs_json(&mrs));
	dd_rdma_mrs_free(&mrs);
	json_object_object_add(doc, "operations", ops);
	json_object_object_add(doc, "maps", json_object_new_uint64(n_maps));
	json_object_object_add(doc, "pins", json_object_new_uint64(n_pins));
	json_object_object_add(doc, "device_events", json_object_new_string(dd_udev_source()));
	json_object_object_add(doc, "gone", dd_udev_gone_json());
	dd_conn_reply(req, 0, doc);
	json_object_put(doc);
	free(keys);
}
