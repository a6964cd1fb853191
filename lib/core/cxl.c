/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * A devdax region's place in the memory topology: its libnvdimm namespace,
 * the namespace's map mode and, on CXL memory, the CXL region, root decoder,
 * interleave and memory devices (lib/util/cxl.c walks sysfs through libndctl
 * and libcxl). Looked up once at open; immutable after.
 */
#include <stdio.h>
#include <string.h>

#include "private.h"

void dp_cxl_describe(struct daxpool_ctx *ctx, const char *path, struct dp_backing *b)
{
	b->cxl_state = dp_cxl_lookup(b->devname, &b->cxl, NULL, b->cxl_why, sizeof(b->cxl_why));
	if (b->cxl_state == 1)
		log_info(ctx, "%s: on CXL %s (decoder %s, memdevs %s, %u-way interleave of %u "
			      "bytes), %s, struct pages in %s",
			 path, b->cxl.region, b->cxl.decoder, b->cxl.memdevs, b->cxl.ways,
			 b->cxl.granularity, b->cxl.nd_namespace,
			 b->cxl.memmap == DP_MEMMAP_DEVICE ? "the device (map=dev)" : "RAM");
	else
		log_dbg(ctx, "%s: not described as CXL memory: %s", path, b->cxl_why);
}

_public_ const char *daxpool_region_get_namespace(struct daxpool_region *region)
{
	return region && region->cxl.nd_namespace[0] ? region->cxl.nd_namespace : NULL;
}

_public_ const char *daxpool_region_get_memmap(struct daxpool_region *region)
{
	if (!region || !region->cxl.nd_namespace[0] || region->cxl.memmap == DP_MEMMAP_UNKNOWN)
		return NULL;
	return dp_memmap_name(region->cxl.memmap);
}

_public_ int daxpool_region_is_cxl(struct daxpool_region *region)
{
	assert_return(region, -EINVAL);
	return region->cxl_state;
}

_public_ const char *daxpool_region_get_cxl_why(struct daxpool_region *region)
{
	return region && region->cxl_state != 1 ? region->cxl_why : NULL;
}

_public_ const char *daxpool_region_get_cxl_region(struct daxpool_region *region)
{
	return region && region->cxl_state == 1 ? region->cxl.region : NULL;
}

_public_ const char *daxpool_region_get_cxl_decoder(struct daxpool_region *region)
{
	return region && region->cxl_state == 1 ? region->cxl.decoder : NULL;
}

_public_ const char *daxpool_region_get_cxl_memdevs(struct daxpool_region *region)
{
	return region && region->cxl_state == 1 ? region->cxl.memdevs : NULL;
}

_public_ int daxpool_region_get_cxl_interleave(struct daxpool_region *region,
					       unsigned int *ret_ways,
					       unsigned int *ret_granularity)
{
	assert_return(region, -EINVAL);
	if (region->cxl_state != 1)
		return -ENODATA;
	if (ret_ways)
		*ret_ways = region->cxl.ways;
	if (ret_granularity)
		*ret_granularity = region->cxl.granularity;
	return 0;
}
