/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* A device-dax device's namespace, libnvdimm region and CXL region (cxl.h). */
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <syslog.h>

#include <daxctl/libdaxctl.h>
#include <ndctl/libndctl.h>
#ifdef DAXPOOL_HAVE_CXL
#include <cxl/libcxl.h>
#endif

#include "util/cxl.h"

const char *dp_memmap_name(int memmap)
{
	return memmap == DP_MEMMAP_RAM ? "mem" : memmap == DP_MEMMAP_DEVICE ? "dev" : "unknown";
}

__attribute__((format(printf, 3, 4))) static void say(char *why, size_t size, const char *fmt,
							  ...)
{
	va_list ap;

	if (!why || !size)
		return;
	va_start(ap, fmt);
	vsnprintf(why, size, fmt, ap);
	va_end(ap);
}

static void copy_name(char *dst, const char *src)
{
	snprintf(dst, DP_CXL_NAME, "%s", src ? src : "?");
}

/* The namespace whose dax region holds @daxdev, or NULL. */
static struct ndctl_namespace *find_namespace(struct ndctl_ctx *nd, const char *daxdev,
					      struct ndctl_dax **ret_dax)
{
	struct ndctl_region *region;
	struct ndctl_bus *bus;
	struct ndctl_dax *dax;

	ndctl_bus_foreach(nd, bus) {
		ndctl_region_foreach(bus, region) {
			ndctl_dax_foreach(region, dax) {
				struct daxctl_region *dregion = ndctl_dax_get_daxctl_region(dax);
				struct daxctl_dev *dev;

				if (!dregion)
					continue;
				daxctl_dev_foreach(dregion, dev) {
					const char *name = daxctl_dev_get_devname(dev);

					if (name && strcmp(name, daxdev) == 0) {
						*ret_dax = dax;
						return ndctl_dax_get_namespace(dax);
					}
				}
			}
		}
	}
	return NULL;
}

#ifdef DAXPOOL_HAVE_CXL
/* The CXL region whose host physical range starts at @resource, or NULL. */
static struct cxl_region *find_cxl_region(struct cxl_ctx *cxl, unsigned long long resource)
{
	struct cxl_decoder *decoder;
	struct cxl_region *region;
	struct cxl_bus *bus;

	cxl_bus_foreach(cxl, bus) {
		struct cxl_port *port = cxl_bus_get_port(bus);

		if (!port || !cxl_port_is_root(port))
			continue;
		cxl_decoder_foreach(port, decoder) {
			cxl_region_foreach(decoder, region) {
				if (cxl_region_get_resource(region) == resource)
					return region;
			}
		}
	}
	return NULL;
}

static void describe_cxl_region(struct cxl_region *region, struct dp_cxl_info *info)
{
	unsigned int ways = cxl_region_get_interleave_ways(region);
	size_t off = 0;

	copy_name(info->region, cxl_region_get_devname(region));
	copy_name(info->decoder, cxl_decoder_get_devname(cxl_region_get_decoder(region)));
	info->ways = ways == UINT_MAX ? 0 : ways;
	info->granularity = cxl_region_get_interleave_granularity(region);
	if (info->granularity == UINT_MAX)
		info->granularity = 0;
	info->resource = cxl_region_get_resource(region);
	info->size = cxl_region_get_size(region);
	/* The memory devices in interleave position order, from the region's targets. */
	for (unsigned int i = 0; i < info->ways; i++) {
		struct cxl_decoder *ep = cxl_region_get_target_decoder(region, (int)i);
		struct cxl_memdev *memdev = ep ? cxl_decoder_get_memdev(ep) : NULL;
		int n;

		if (!memdev)
			continue;
		n = snprintf(info->memdevs + off, sizeof(info->memdevs) - off, "%s%s",
			     off ? " " : "", cxl_memdev_get_devname(memdev));
		if (n < 0 || (size_t)n >= sizeof(info->memdevs) - off)
			break;
		off += (size_t)n;
	}
}
#endif

int dp_cxl_lookup(const char *daxdev, struct dp_cxl_info *info, struct dp_cxl_found *found,
		  char *why, size_t why_size)
{
	struct dp_cxl_found local = { 0 }, *f = found ? found : &local;
	struct ndctl_namespace *ns;
	struct ndctl_dax *dax = NULL;
	struct ndctl_region *ndr;
	int r;

	memset(info, 0, sizeof(*info));
	memset(f, 0, sizeof(*f));
	r = ndctl_new(&f->nd);
	if (r < 0) {
		say(why, why_size, "libndctl: %s", strerror(-r));
		goto out;
	}
	/* Their failures come back in @why; the libraries print nothing of their own. */
	ndctl_set_log_priority(f->nd, LOG_EMERG);
	if (ndctl_get_daxctl_ctx(f->nd))
		daxctl_set_log_priority(ndctl_get_daxctl_ctx(f->nd), LOG_EMERG);
	ns = find_namespace(f->nd, daxdev, &dax);
	if (!ns) {
		say(why, why_size, "%s is not the device-dax device of a libnvdimm namespace",
		    daxdev);
		r = -ENODEV;
		goto out;
	}
	f->ns = ns;
	ndr = ndctl_dax_get_region(dax);
	copy_name(info->nd_namespace, ndctl_namespace_get_devname(ns));
	copy_name(info->nd_region, ndctl_region_get_devname(ndr));
	switch (ndctl_dax_get_location(dax)) {
	case NDCTL_PFN_LOC_RAM:
		info->memmap = DP_MEMMAP_RAM;
		break;
	case NDCTL_PFN_LOC_PMEM:
		info->memmap = DP_MEMMAP_DEVICE;
		break;
	default:
		info->memmap = DP_MEMMAP_UNKNOWN;
	}
#ifdef DAXPOOL_HAVE_CXL
	r = cxl_new(&f->cxl);
	if (r < 0) {
		f->cxl = NULL;
		say(why, why_size, "libcxl: %s", strerror(-r));
		goto out;
	}
	cxl_set_log_priority(f->cxl, LOG_EMERG);
	f->region = find_cxl_region(f->cxl, ndctl_region_get_resource(ndr));
	if (!f->region) {
		say(why, why_size, "%s is on %s of libnvdimm bus %s, which is no CXL region's",
		    daxdev, info->nd_region, ndctl_bus_get_provider(ndctl_region_get_bus(ndr)));
		r = 0;
		goto out;
	}
	describe_cxl_region(f->region, info);
	r = 1;
#else
	say(why, why_size, "daxpool was built without libcxl: whether %s (on %s) is CXL memory "
			   "cannot be told", daxdev, info->nd_region);
	r = -EOPNOTSUPP;
#endif
out:
	if (!found)
		dp_cxl_found_release(&local);
	return r;
}

void dp_cxl_found_release(struct dp_cxl_found *f)
{
#ifdef DAXPOOL_HAVE_CXL
	if (f->cxl)
		cxl_unref(f->cxl);
#endif
	if (f->nd)
		ndctl_unref(f->nd);
	memset(f, 0, sizeof(*f));
}
