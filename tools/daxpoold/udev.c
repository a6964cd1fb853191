/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Devices that go away without a release through daxpoold: someone ran
 * daxctl or ndctl directly, or a device failed. The kernel tears the clients'
 * mappings down at once (their next access is a SIGBUS) and does not wait for
 * pins: nothing can be drained any more, but every
 * client that holds a region on the device is told (REGION_GONE), so it marks
 * the region dead and its holders let go instead of faulting one by one.
 *
 * Events come from libudev: the "udev" netlink group when udevd runs (it
 * announces itself with /run/udev/control), else the kernel's own group
 * (a guest or container without udevd). Followed:
 *   dax    remove (-ENODEV) and unbind (-ENXIO) of a device-dax device:
 *	    the regions that registered that devname;
 *   block  remove of a pmem disk (-ENODEV): the regions on a file whose
 *	    st_dev is that disk;
 *   nd     remove or unbind of a namespace, pfn or dax seed: whatever
 *	    registered region lost its device under it (the dax or block
 *	    device is then missing from sysfs, or has no driver).
 * add and bind are logged and clear the device's gone mark.
 *
 * daxpoold's own release disables a device through libdaxctl after the drain
 * (device.c): it announces that here first, and the unbind that follows is
 * logged as the release it is, not reported as an unplug.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <libudev.h>

#include "log.h"
#include "scan.h"
#include "udev.h"
#include "umem_trace.h"

#define EXPECT_TTL_NS (60ull * 1000000000u) /* a release's unbind arrives long before this */

/* A device reported gone: a devdax name, or a block device number. */
struct gone {
	char name[DP_PROTO_MAX_DEVNAME + 1];
	uint64_t devnum; /* block: st_dev of the files on it; 0 for devdax */
	int reason;	 /* -ENODEV removed, -ENXIO unbound */
	uint64_t since_ns;
	unsigned int regions; /* regions told when it went */
	struct gone *next;
};

/* A disable daxpoold itself is doing (a release): its unbind is not an unplug. */
struct expect {
	char name[DP_PROTO_MAX_DEVNAME + 1];
	uint64_t until_ns;
	unsigned int events; /* events of it still to come: 1 (the unbind); 0 any, until it is back */
	struct expect *next;
};

static struct udev *udev;
static struct udev_monitor *monitor;
static const char *source = "none";
static struct gone *gones;
static struct expect *expects;

const char *dd_udev_source(void)
{
	return source;
}

int dd_udev_open(void)
{
	int r;

	/* Without udevd nobody would relay events on the "udev" group. */
	source = access("/run/udev/control", F_OK) == 0 ? "udev" : "kernel";
	udev = udev_new();
	if (!udev) {
		r = -errno;
		goto fail;
	}
	monitor = udev_monitor_new_from_netlink(udev, source);
	if (!monitor) {
		r = errno ? -errno : -ENOMEM;
		goto fail;
	}
	r = udev_monitor_filter_add_match_subsystem_devtype(monitor, "dax", NULL);
	if (r >= 0)
		r = udev_monitor_filter_add_match_subsystem_devtype(monitor, "nd", NULL);
	if (r >= 0)
		r = udev_monitor_filter_add_match_subsystem_devtype(monitor, "block", "disk");
	if (r >= 0) /* ib_uverbs loading: the MR tracer attaches then */
		r = udev_monitor_filter_add_match_subsystem_devtype(monitor, "module", NULL);
	if (r >= 0)
		r = udev_monitor_enable_receiving(monitor);
	if (r < 0)
		goto fail;
	/* Best effort: a burst (a whole region torn down) must not overflow the socket. */
	udev_monitor_set_receive_buffer_size(monitor, 4 << 20);
	if (strcmp(source, "kernel") == 0)
		dd_log(LOG_NOTICE, "udevd is not running (no /run/udev/control): following the "
				   "kernel's device events directly");
	else
		dd_log(LOG_INFO, "following device events from udev");
	return udev_monitor_get_fd(monitor);
fail:
	dd_log(LOG_WARNING, "cannot follow device events (libudev, %s group): %s: a device "
			    "removed without daxpoold is not reported to its clients",
	       source, strerror(-r));
	dd_udev_close();
	source = "none";
	return r;
}

void dd_udev_close(void)
{
	monitor = udev_monitor_unref(monitor);
	udev = udev_unref(udev);
	while (gones) {
		struct gone *g = gones;

		gones = g->next;
		free(g);
	}
	while (expects) {
		struct expect *e = expects;

		expects = e->next;
		free(e);
	}
}

static void expect_events(const char *devname, unsigned int events)
{
	struct expect *e = calloc(1, sizeof(*e));

	if (!e)
		return; /* then the release is reported as an unplug too: harmless */
	snprintf(e->name, sizeof(e->name), "%s", devname);
	e->events = events;
	e->until_ns = dd_now_ns() + EXPECT_TTL_NS;
	e->next = expects;
	expects = e;
}

void dd_udev_expect_disable(const char *devname)
{
	expect_events(devname, 1);
}

void dd_udev_expect_teardown(const char *devname)
{
	/* Unbind and removal of the dax device, and of its namespace's nd devices, in any order. */
	expect_events(devname, 0);
}

/* Whether an event of @name is expected, without taking it. */
static bool expecting(const char *name)
{
	uint64_t now = dd_now_ns();

	for (struct expect *e = expects; e; e = e->next)
		if (now <= e->until_ns && strcmp(e->name, name) == 0)
			return true;
	return false;
}

void dd_udev_unexpect_disable(const char *devname)
{
	for (struct expect **pp = &expects; *pp; pp = &(*pp)->next) {
		if (strcmp((*pp)->name, devname) == 0) {
			struct expect *e = *pp;

			*pp = e->next;
			free(e);
			return;
		}
	}
}

/* Take the expectation of a disable of @name, if daxpoold announced one lately. */
static bool expected(const char *name)
{
	uint64_t now = dd_now_ns();
	bool found = false;

	for (struct expect **pp = &expects; *pp;) {
		struct expect *e = *pp;

		if (now > e->until_ns || (!found && strcmp(e->name, name) == 0)) {
			found |= now <= e->until_ns;
			if (now <= e->until_ns && (e->events == 0 || --e->events > 0)) {
				pp = &e->next;
				continue;
			}
			*pp = e->next;
			free(e);
			continue;
		}
		pp = &e->next;
	}
	return found;
}

static bool gone_matches(const struct gone *g, const struct dd_region *r)
{
	if (g->devnum)
		return r->kind != DD_REGION_DEVDAX && r->dev == g->devnum;
	return r->kind == DD_REGION_DEVDAX && strcmp(r->devname, g->name) == 0;
}

int dd_region_gone(const struct dd_region *r)
{
	for (struct gone *g = gones; g; g = g->next)
		if (gone_matches(g, r))
			return g->reason;
	return 0;
}

json_object *dd_udev_gone_json(void)
{
	json_object *arr = json_object_new_array();
	uint64_t now = dd_now_ns();

	for (struct gone *g = gones; g; g = g->next) {
		json_object *o = json_object_new_object();

		json_object_object_add(o, "device", json_object_new_string(g->name));
		json_object_object_add(o, "event", json_object_new_string(g->reason == -ENXIO
										  ? "unbound"
										  : "removed"));
		json_object_object_add(o, "errno", json_object_new_string(strerrorname_np(-g->reason)));
		json_object_object_add(o, "age_s", json_object_new_double((double)(now - g->since_ns) /
									   1e9));
		json_object_object_add(o, "regions_told", json_object_new_uint64(g->regions));
		json_object_array_add(arr, o);
	}
	return arr;
}

/* The device came (back): forget that it went. Return: whether it had gone. */
static bool gone_clear(const char *name, uint64_t devnum)
{
	bool had = false;

	for (struct gone **pp = &gones; *pp;) {
		struct gone *g = *pp;

		if (devnum ? g->devnum == devnum : !g->devnum && strcmp(g->name, name) == 0) {
			*pp = g->next;
			free(g);
			had = true;
			continue;
		}
		pp = &g->next;
	}
	return had;
}

/* The old holders of a device bound again, as the scan found them: warn, naming them. */
static void rebound_scanned(struct dd_manager *m, struct dd_scan *s)
{
	char holders[1024] = "";
	size_t len = 0;
	unsigned int n = 0;

	(void)m;
	for (size_t i = 0; i < s->n_checks; i++) {
		if (!s->checks[i].holds)
			continue;
		if (len < sizeof(holders))
			len += (size_t)snprintf(holders + len, sizeof(holders) - len, "%s%d (%s)",
						n ? ", " : "", (int)s->checks[i].pid,
						s->checks[i].comm);
		n++;
	}
	if (n)
		dd_log(LOG_WARNING, "%s is bound again while %u process(es) still hold it open from "
				    "before it went: %s. When they let go, the kernel may drop the "
				    "device node (/dev/%s fails with ENXIO although it shows bound) "
				    "or corrupt its list of inodes (a BUG on 6.1): make them exit, "
				    "then disable and enable the device once more",
		       s->what, n, holders, s->what);
}

/*
 * A device-dax device bound again while clients still hold descriptors or
 * mappings from before it went. Measured in the vm tier
 * (tests/integration/daemon_udev.c, before libdaxpool closed a dead device's
 * descriptor early): when the last of those old descriptors goes, Debian's
 * 6.12 unregisters the device's char device again (/dev/daxX.Y then fails to
 * open with ENXIO while sysfs shows it bound) and 6.1 corrupts the list of
 * the char device's inodes (a kernel BUG in cd_forget). Say so, naming them:
 * whether each still holds it is read from its /proc (a scan off the loop:
 * its maps take its mmap lock).
 */
static void rebound_with_old_holders(struct dd_manager *m, const char *name)
{
	struct dd_scan *s = dd_scan_new(DD_SCAN_HOLDS_FILE, 0);
	size_t n = 0;

	for (struct dd_conn *c = m->conns; c; c = c->next)
		n += c->role == DP_ROLE_CLIENT;
	if (!s || !(s->checks = calloc(n + 1, sizeof(*s->checks)))) {
		dd_scan_free(s);
		dd_log(LOG_WARNING, "%s is bound again: cannot check for holders from before it went "
				    "(out of memory)", name);
		return;
	}
	snprintf(s->what, sizeof(s->what), "%s", name);
	for (struct dd_conn *c = m->conns; c; c = c->next) {
		if (c->role != DP_ROLE_CLIENT)
			continue;
		for (struct dd_region *r = c->regions; r; r = r->next) {
			struct dd_scan_check *k;

			if (r->kind != DD_REGION_DEVDAX || strcmp(r->devname, name) != 0)
				continue;
			/* A daxpool client closes a dead device's descriptor once unmapped. */
			k = &s->checks[s->n_checks++];
			k->pid = c->cred.pid;
			k->dev = r->dev;
			k->ino = r->ino;
			snprintf(k->comm, sizeof(k->comm), "%s", c->comm);
			break;
		}
	}
	if (!s->n_checks) {
		dd_scan_free(s);
		return;
	}
	if (dd_scan_start(m, s, m, rebound_scanned, NULL, 0) < 0)
		dd_log(LOG_WARNING, "%s is bound again: cannot check for holders from before it went "
				    "(no thread)", name);
}

/*
 * @name went away (@reason): mark it gone, tell every client that holds a
 * region on it, and name them in the log. Once per going: a second event for
 * a device already gone (remove after unbind) tells nobody again.
 */
static void gone_report(struct dd_manager *m, const char *name, uint64_t devnum, int reason,
			const char *why)
{
	struct gone *g;
	char holders[1024] = "";
	size_t len = 0;
	unsigned int n = 0;

	for (g = gones; g; g = g->next)
		if (devnum ? g->devnum == devnum : !g->devnum && strcmp(g->name, name) == 0)
			return;
	g = calloc(1, sizeof(*g));
	if (!g)
		return;
	snprintf(g->name, sizeof(g->name), "%s", name);
	g->devnum = devnum;
	g->reason = reason;
	g->since_ns = dd_now_ns();
	g->next = gones;
	gones = g;
	for (struct dd_conn *c = m->conns; c; c = c->next) {
		unsigned int mine = 0;

		if (c->role != DP_ROLE_CLIENT)
			continue;
		for (struct dd_region *r = c->regions; r; r = r->next) {
			struct dp_msg msg = { .type = DP_MSG_REGION_GONE };

			if (!gone_matches(g, r))
				continue;
			msg.region_gone.region_id = r->id;
			msg.region_gone.reason = reason;
			if (dd_conn_send(c, &msg) < 0)
				c->closing = true;
			mine++;
		}
		if (mine && len < sizeof(holders))
			len += (size_t)snprintf(holders + len, sizeof(holders) - len, "%s%d (%s)",
						n ? ", " : "", (int)c->cred.pid, c->comm);
		n += mine;
	}
	g->regions = n;
	if (n)
		dd_log(LOG_WARNING, "%s %s without a release through daxpoold%s: its mappings are "
				    "gone; %u region(s) told: pid %s",
		       name, reason == -ENXIO ? "unbound" : "removed", why, n, holders);
	else
		dd_log(LOG_NOTICE, "%s %s without a release through daxpoold%s; no client holds it",
		       name, reason == -ENXIO ? "unbound" : "removed", why);
}

/*
 * After a namespace went: every registered region whose device is missing
 * from sysfs (-ENODEV) or, for devdax, lost its driver (-ENXIO).
 */
static void nd_recheck(struct dd_manager *m, const char *nd_name)
{
	char why[64], p[128];

	snprintf(why, sizeof(why), " (with %s)", nd_name);
	for (struct dd_conn *c = m->conns; c; c = c->next) {
		for (struct dd_region *r = c->regions, *next; r; r = next) {
			next = r->next;
			if (dd_region_gone(r))
				continue;
			if (r->kind == DD_REGION_DEVDAX && r->devname[0]) {
				if (expecting(r->devname))
					continue; /* its release or teardown, not an unplug */
				snprintf(p, sizeof(p), "/sys/bus/dax/devices/%s", r->devname);
				if (access(p, F_OK) < 0) {
					gone_report(m, r->devname, 0, -ENODEV, why);
				} else {
					snprintf(p, sizeof(p), "/sys/bus/dax/devices/%s/driver",
						 r->devname);
					if (access(p, F_OK) < 0)
						gone_report(m, r->devname, 0, -ENXIO, why);
				}
			} else if (r->kind != DD_REGION_DEVDAX && major(r->dev)) {
				char name[DP_PROTO_MAX_DEVNAME + 1];

				snprintf(p, sizeof(p), "/sys/dev/block/%u:%u", major(r->dev),
					 minor(r->dev));
				if (access(p, F_OK) == 0)
					continue;
				snprintf(name, sizeof(name), "%u:%u", major(r->dev), minor(r->dev));
				gone_report(m, name, r->dev, -ENODEV, why);
			}
		}
	}
}

static void handle(struct dd_manager *m, struct udev_device *d)
{
	const char *action = udev_device_get_action(d);
	const char *subsys = udev_device_get_subsystem(d);
	const char *name = udev_device_get_sysname(d);
	bool went, came;
	int reason;

	if (!action || !subsys || !name)
		return;
	went = strcmp(action, "remove") == 0 || strcmp(action, "unbind") == 0;
	came = strcmp(action, "add") == 0 || strcmp(action, "bind") == 0;
	reason = strcmp(action, "unbind") == 0 ? -ENXIO : -ENODEV;
	dd_log(LOG_DEBUG, "device event: %s %s %s", action, subsys, name);
	if (!went && !came)
		return;
	if (strcmp(subsys, "module") == 0) {
		if (came)
			dd_umem_trace_module_added(name);
		return;
	}
	if (strcmp(subsys, "dax") == 0) {
		/* The bus also carries the dax regions (dax_region): only daxX.Y is a device. */
		if (strncmp(name, "dax", 3) != 0)
			return;
		if (came) {
			bool had_gone = gone_clear(name, 0);

			dd_udev_unexpect_disable(name); /* a teardown's device is back: its own again */
			dd_log(LOG_INFO, "%s: %s", name, strcmp(action, "add") == 0 ? "added" : "bound");
			if (had_gone)
				rebound_with_old_holders(m, name);
		} else if (expected(name)) {
			dd_log(LOG_INFO, "%s: %s by daxpoold's release", name,
			       reason == -ENXIO ? "unbound" : "removed");
		} else {
			gone_report(m, name, 0, reason, "");
		}
	} else if (strcmp(subsys, "block") == 0) {
		uint64_t devnum = udev_device_get_devnum(d);

		if (strncmp(name, "pmem", 4) != 0 || !devnum)
			return;
		if (came) {
			gone_clear(name, devnum);
			dd_log(LOG_INFO, "%s: added", name);
		} else {
			gone_report(m, name, devnum, -ENODEV, "");
		}
	} else if (strcmp(subsys, "nd") == 0) {
		if (came)
			dd_log(LOG_INFO, "%s: %s", name, strcmp(action, "add") == 0 ? "added" : "bound");
		else
			nd_recheck(m, name);
	}
}

void dd_udev_receive(struct dd_manager *m)
{
	struct udev_device *d;

	/* The monitor's socket is non-blocking: take every queued event. */
	while ((d = udev_monitor_receive_device(monitor))) {
		handle(m, d);
		udev_device_unref(d);
	}
}
