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

#ifdef DAXPOOL_HAVE_RDMA
#include <infiniband/verbs.h>

#define MR_ACCESS (IBV_ACCESS_LOCAL_WRITE | IBV_ACCESS_REMOTE_WRITE | IBV_ACCESS_REMOTE_READ)

/*
 * A process outside daxpool holding an RDMA MR, named @comm: on the first
 * @mr_len bytes of a shared mapping of device @dev, or with @dev NULL on
 * anonymous memory. @unmap: once the MR is registered it unmaps the device
 * and closes it, keeping the MR (a registration cache's idle entry). Returns
 * once the MR is registered (and, @unmap, the device let go); a byte on
 * *ret_go makes it deregister (while the device is still there: the safe
 * order) and exit 0. (Built with DAXPOOL_HAVE_RDMA and the kfacts directory
 * on the include path.)
 */
pid_t start_mr_holder(const char *dev, size_t mr_len, const char *comm, bool unmap, int *ret_go);
/*
 * A process outside daxpool, named @comm, that opened device @dev, mapped,
 * touched, unmapped and closed it, and then registered an RDMA MR of @mr_len
 * bytes on anonymous memory: it had the device, and pins elsewhere. Returns
 * once the MR is registered; a byte on *ret_go makes it deregister and exit 0.
 */
pid_t start_opener_with_mr_elsewhere(const char *dev, size_t mr_len, const char *comm,
				     int *ret_go);
/*
 * The same, then an exec into a shell that keeps the MR (its RDMA context is
 * not close-on-exec) and ends when *@ret_go is written or closed.
 */
pid_t start_opener_with_mr_elsewhere_then_exec(const char *dev, size_t mr_len, int *ret_go);
#endif

#endif
