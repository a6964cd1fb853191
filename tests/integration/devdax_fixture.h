/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The devdax device of the vm tier as the daxpoold end-to-end tests use it:
 * found from the tier's environment (DAXPOOL_TEST_DEVDAX, DAXPOOL_TEST_RDMA_DEV),
 * enabled and disabled through sysfs and daxctl, and the daemon's reports of
 * the processes outside daxpool that may hold it.
 */
#ifndef DAXPOOL_TEST_DEVDAX_FIXTURE_H
#define DAXPOOL_TEST_DEVDAX_FIXTURE_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include <json-c/json.h>

/* The devdax node (/dev/dax0.0); the test is skipped (or fails where required) without one. */
const char *need_devdax(void);
/* need_devdax(), and an RDMA device too. */
const char *need_devdax_and_rdma(void);

/* The device's name (dax0.0) from its path. */
const char *devname_of(const char *path);

/* Whether dax device @name is bound to its driver (not disabled). */
bool devdax_enabled(const char *name);
/* daxctl enable-device @name; a failure is printed, not fatal. */
void devdax_enable(const char *name);

/* The "outsiders" entry of @pid in a status or release document, or NULL. */
json_object *outsider_of(json_object *doc, pid_t pid);
/* Whether outsider entry @o lists an RDMA MR of @length bytes (from RDMA netlink). */
bool lists_mr(json_object *o, uint64_t length);

#endif
