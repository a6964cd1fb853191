/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * What a device-dax device sits on, from the kernel's sysfs through
 * libdaxctl, libndctl and libcxl: its libnvdimm namespace and region, how its
 * struct pages are placed (the namespace's map mode), and, when that region
 * is a CXL persistent-memory region, the CXL region, its root decoder, its
 * interleave and the memory devices behind it. Shared by the library's
 * region description (lib/region.c), daxpoold's teardown
 * (tools/daxpoold/teardown.c) and the tests; linked statically into each.
 *
 * The libnvdimm region of a CXL pmem region is a child of the CXL nvdimm
 * bridge's bus, not of the CXL region, so sysfs has no path from one to the
 * other: they are matched by their host physical address range, which the
 * kernel gives both (the CXL region's resource is the libnvdimm region's).
 */
#ifndef DAXPOOL_UTIL_CXL_H
#define DAXPOOL_UTIL_CXL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define DP_CXL_NAME 32

enum dp_memmap {
	DP_MEMMAP_UNKNOWN = 0,
	DP_MEMMAP_RAM = 1,    /* struct pages in system RAM (ndctl --map=mem) */
	DP_MEMMAP_DEVICE = 2, /* struct pages on the device itself (ndctl --map=dev) */
};

struct dp_cxl_info {
	/* libnvdimm (set when the device is on a namespace) */
	char nd_namespace[DP_CXL_NAME]; /* "namespace1.0" */
	char nd_region[DP_CXL_NAME];	/* "region1" */
	int memmap;			/* enum dp_memmap */
	/* CXL (set when dp_cxl_lookup() returned 1) */
	char region[DP_CXL_NAME];  /* "region1" under /sys/bus/cxl/devices */
	char decoder[DP_CXL_NAME]; /* its root decoder, "decoder0.0" */
	char memdevs[4 * DP_CXL_NAME]; /* "mem0", or "mem0 mem1" in interleave position order */
	unsigned int ways;	       /* interleave ways */
	unsigned int granularity;      /* interleave granularity, bytes */
	uint64_t resource, size;       /* host physical range of the region */
};

/* The library objects of a lookup, for acting on them (daxpoold's teardown). */
struct dp_cxl_found {
	struct ndctl_ctx *nd;
	struct ndctl_namespace *ns;
	struct cxl_ctx *cxl;	   /* NULL without libcxl */
	struct cxl_region *region; /* NULL unless on a CXL region */
};

/*
 * Describe the device-dax device @daxdev ("dax1.0") into @info and, when
 * @found is not NULL, keep the library contexts in it (release them with
 * dp_cxl_found_release(), also after a failure). @why (may be NULL) says in
 * words why nothing is claimed when the return is not 1.
 * Return:
 *	1         on a CXL region (every field of @info set)
 *	0         not on a CXL region (@why names what it is on)
 *	-ENODEV   not a device-dax device of a libnvdimm namespace (e.g. an
 *	          hmem device, or no such device): nothing is known
 *	-EOPNOTSUPP  built without libcxl: the namespace fields are set, and
 *	          whether its region is a CXL region cannot be told
 *	other -errno from the libraries
 * May read many sysfs files; never sleeps on anything but them.
 */
int dp_cxl_lookup(const char *daxdev, struct dp_cxl_info *info, struct dp_cxl_found *found,
		  char *why, size_t why_size);
void dp_cxl_found_release(struct dp_cxl_found *found);

/* "mem", "dev" or "unknown". */
const char *dp_memmap_name(int memmap);

#endif /* DAXPOOL_UTIL_CXL_H */
