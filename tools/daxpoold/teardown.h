/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * A released device's backing given back for hot-remove (release
 * --teardown): the libnvdimm namespace destroyed (libndctl), the CXL region
 * under it disabled and deleted (libcxl). Only after the drain and the
 * device's disable succeeded: ops.c decides when, the worker thread runs it.
 */
#ifndef DAXPOOLD_TEARDOWN_H
#define DAXPOOLD_TEARDOWN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct dd_teardown {
	char nd_namespace[32]; /* "namespace1.0" */
	char region[32];       /* the CXL region, "region1" */
	char decoder[32];      /* its root decoder */
	bool namespace_destroyed, region_disabled, region_deleted;
	uint64_t took_ns;
};

/*
 * Whether the device-dax device @devname can be torn down: it is the only
 * namespace with capacity on a CXL region, and daxpoold was built with
 * libcxl. Reads sysfs only (the loop calls it before the drain). Return 0,
 * or -EOPNOTSUPP (no libcxl, or not on a CXL region), -EBUSY (other
 * namespaces on the region: they are named) or another -errno; @msg says why.
 */
int dd_teardown_check(const char *devname, char *msg, size_t msg_size);

/*
 * Tear down the backing of the (already drained and disabled) device-dax
 * device @devname: destroy its namespace, disable its CXL region, delete the
 * region (decode reset, targets cleared, endpoint decoders' capacity freed).
 * Stops at the first step that fails; @td says which steps were done and
 * @msg says what happened. May sleep (the worker thread calls it).
 * Return 0 or -errno.
 */
int dd_teardown_run(const char *devname, struct dd_teardown *td, char *msg, size_t msg_size);

#endif /* DAXPOOLD_TEARDOWN_H */
