/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Devices that go away without a release (udev.c): a probe of device events
 * that tells the manager's clients (REGION_GONE). Its own record -- the
 * devices gone, the disables daxpoold announced -- is one per process. Main
 * thread only.
 */
#ifndef DAXPOOLD_UDEV_H
#define DAXPOOLD_UDEV_H

#include <json-c/json.h>

#include "manager.h"

/* Start following device events; the monitor's fd, or -errno (logged: the daemon runs on). */
int dd_udev_open(void);
void dd_udev_close(void);
/* Handle the queued events: REGION_GONE to the clients of @m that hold a device that went. */
void dd_udev_receive(struct dd_manager *m);
/* Where events come from: "udev", "kernel" (no udevd) or "none". */
const char *dd_udev_source(void);
/* daxpoold itself is about to disable @devname (a release): that is no unplug. */
void dd_udev_expect_disable(const char *devname);
/*
 * A teardown: the unbind and then the removal of @devname (and of its
 * namespace) are daxpoold's own, not an unplug to report to its clients.
 */
void dd_udev_expect_teardown(const char *devname);
void dd_udev_unexpect_disable(const char *devname);
/* 0, or why @r's device went away (-ENODEV removed, -ENXIO unbound). */
int dd_region_gone(const struct dd_region *r);
/* The devices reported gone and not back yet, for status. */
json_object *dd_udev_gone_json(void);

#endif /* DAXPOOLD_UDEV_H */
