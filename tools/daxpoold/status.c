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

#include "daxpoold.h"

const char *dd_pin_kind_name(uint32_t kind)
{
	return kind == 2 ? "longterm" : kind == 1 ? "transient" : "map";
}

static const char *region_kind_name(uint32_t kind)
{
	return kind == 3 ? "devdax" : kind == 2 ? "fsdax" : "file";
}

/* openat2(2): glibc 2.36 has no wrapper. */
static int open_no_symlinks(const char *path)
{
	struct open_how how = { .flags = O_PATH | O_CLOEXEC,
				.resolve = RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS };

	return (int)syscall(SYS_openat2, AT_FDCWD, path, &how, sizeof(how));
}

int dd_resolve_target(const char *target, char *path, struct stat *st, char *devname,
		      size_t devname_size, int *ret_fd)
{
	int fd, r = 0;

	if (ret_fd)
		*ret_fd = -1;
	if (devname_size)
		devname[0] = '\0';
	/* The daemon's working directory means nothing to the requester. */
	if (strchr(target, '/') && target[0] != '/')
		return -EINVAL;
	if (strchr(target, '/'))
		snprintf(path, PATH_MAX, "%s", target);
	else
		snprintf(path, PATH_MAX, "/dev/%s", target); /* a devdax name: dax0.0 */
	/*
	 * One lookup, with no symbolic link anywhere on the way (a link a user
	 * planted, or a directory swapped for one, could lead anywhere); the
	 * identity is the descriptor's, and the operation acts through it.
	 */
	fd = open_no_symlinks(path);
	if (fd < 0)
		return errno == ELOOP ? -ELOOP : -errno;
	if (fstat(fd, st) < 0) {
		r = -errno;
	} else if (S_ISCHR(st->st_mode)) {
		char name[DP_PROTO_MAX_DEVNAME + 1];

		r = dd_devdax_name(st->st_rdev, name, sizeof(name));
		if (r == -ENOTTY || r == -ENODEV)
			r = -EINVAL;
		else if (r == 0 && devname_size)
			snprintf(devname, devname_size, "%s", name);
	} else if (!S_ISREG(st->st_mode)) {
		r = -EINVAL;
	}
	if (r < 0 || !ret_fd)
		close(fd);
	else
		*ret_fd = fd;
	return r;
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

bool dd_region_is(const struct dd_region *r, uint64_t dev, uint64_t ino, uint64_t rdev)
{
	if (r->dev == dev && r->ino == ino)
		return true;
	return rdev && r->kind == 3 /* devdax */ && r->rdev == rdev;
}

pid_t *dd_client_pids(uint64_t dev, uint64_t ino, uint64_t rdev, size_t *ret_n)
{
	size_t n = 0, cap = 16;
	pid_t *pids = malloc(cap * sizeof(*pids));

	for (struct dd_conn *c = dd_conns; c && pids; c = c->next) {
		for (struct dd_region *r = c->regions; r; r = r->next) {
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

/*
 * Whether @uid may see @r of @c: its own client, or a device or file it owns
 * -- the owner as the registration's descriptor gave it, never a lookup of
 * the path (which another user may have re-created since).
 */
static bool region_visible(uid_t uid, struct dd_conn *c, const struct dd_region *r)
{
	return uid == 0 || c->cred.uid == uid || r->owner_uid == uid;
}

/*
 * For a requester that is not root: the mappings of a process of another
 * user keep their count, offsets and permissions, not their addresses (they
 * would give away its address-space layout).
 */
static void hide_addresses(json_object *o, uid_t uid)
{
	json_object *maps = json_object_object_get(o, "mappings");
	char path[64];
	struct stat st;

	snprintf(path, sizeof(path), "/proc/%d", json_object_get_int(json_object_object_get(o, "pid")));
	if (stat(path, &st) == 0 && st.st_uid == uid)
		return;
	for (size_t i = 0; i < json_object_array_length(maps); i++) {
		json_object *m = json_object_array_get_idx(maps, i);

		json_object_object_del(m, "start");
		json_object_object_del(m, "end");
	}
}

struct devkey {
	uint64_t dev, ino, rdev; /* rdev: of a device-dax device, else 0 */
	char path[PATH_MAX];
	char devname[DP_PROTO_MAX_DEVNAME + 1];
};

static struct devkey *key_add(struct devkey **keys, size_t *n, uint64_t dev, uint64_t ino)
{
	struct devkey *nk;

	for (size_t k = 0; k < *n; k++)
		if ((*keys)[k].dev == dev && (*keys)[k].ino == ino)
			return NULL;
	nk = realloc(*keys, (*n + 1) * sizeof(*nk));
	if (!nk)
		return NULL;
	*keys = nk;
	nk = &nk[(*n)++];
	*nk = (struct devkey){ .dev = dev, .ino = ino };
	return nk;
}

/*
 * Every device-dax device of the machine that @uid may see (root: all; else
 * the ones it owns), as keys: an untargeted status lists the outside holders
 * of each, whether or not a client registered it.
 */
static void add_devdax_keys(struct devkey **keys, size_t *n, uid_t uid)
{
	struct dirent *de;
	DIR *d = opendir("/sys/bus/dax/devices");

	if (!d)
		return;
	while ((de = readdir(d))) {
		char path[PATH_MAX], name[DP_PROTO_MAX_DEVNAME + 1];
		struct devkey *k;
		struct stat st;

		if (strncmp(de->d_name, "dax", 3) != 0)
			continue;
		snprintf(path, sizeof(path), "/dev/%s", de->d_name);
		/* The node must be the kernel's device of that name (no stale or foreign node). */
		if (lstat(path, &st) < 0 || !S_ISCHR(st.st_mode) ||
		    dd_devdax_name(st.st_rdev, name, sizeof(name)) < 0 ||
		    strcmp(name, de->d_name) != 0)
			continue;
		if (uid != 0 && st.st_uid != uid)
			continue;
		k = key_add(keys, n, st.st_dev, st.st_ino);
		if (!k)
			continue;
		k->rdev = st.st_rdev;
		snprintf(k->path, sizeof(k->path), "%s", path);
		snprintf(k->devname, sizeof(k->devname), "%s", name);
	}
	closedir(d);
}

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
		int r = dd_resolve_target(target, path, &st, NULL, 0, NULL);

		/*
		 * Another user learns nothing of what it does not own, not even
		 * whether it exists (a file in root's 0700 directory): a target it
		 * cannot see gives the same answer as one it does not own.
		 */
		if (r < 0 && uid != 0) {
			snprintf(path, sizeof(path), "%s", target);
			st = (struct stat){ .st_uid = (uid_t)-1, .st_ino = 0 };
			st.st_dev = (dev_t)-1;
			r = 0;
		}
		if (r < 0) {
			json_object_put(doc);
			json_object_put(clients);
			json_object_put(outsiders);
			json_object_put(ops);
			dd_conn_reply_error(req, r, "%s: %s", target, strerror(-r));
			return;
		}
		if (uid == 0 || st.st_uid == uid) {
			struct devkey *k = key_add(&keys, &n_keys, st.st_dev, st.st_ino);

			if (k) {
				snprintf(k->path, sizeof(k->path), "%s", path);
				if (S_ISCHR(st.st_mode)) {
					k->rdev = st.st_rdev;
					dd_devdax_name(st.st_rdev, k->devname, sizeof(k->devname));
				}
			}
		}
		json_object_object_add(doc, "target", json_object_new_string(path));
	} else {
		add_devdax_keys(&keys, &n_keys, uid);
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
				struct devkey *k = key_add(&keys, &n_keys, r->dev, r->ino);

				if (k) {
					snprintf(k->path, sizeof(k->path), "%s", r->path);
					if (r->kind == 3 && dd_devdax_name(r->rdev, k->devname,
									   sizeof(k->devname)) == 0)
						k->rdev = r->rdev;
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
		json_object *found = dd_possible_holders(keys[k].dev, keys[k].ino, keys[k].rdev,
							 keys[k].devname, keys[k].path, false,
							 &mrs);

		for (size_t i = 0; i < json_object_array_length(found); i++) {
			json_object *o = json_object_array_get_idx(found, i);

			if (uid != 0)
				hide_addresses(o, uid);
			json_object_array_add(outsiders, json_object_get(o));
		}
		json_object_put(found);
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
	json_object_object_add(doc, "open_record", dd_opens_json());
	json_object_object_add(doc, "gone", dd_udev_gone_json());
	dd_conn_reply(req, 0, doc);
	json_object_put(doc);
	free(keys);
}
