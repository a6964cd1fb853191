/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The teardown of a released device's backing (teardown.h). The kernel does
 * not wait for pins when a namespace or a CXL region goes, exactly as it
 * does not for a devdax disable: this runs only after every holder drained.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <ndctl/libndctl.h>
#ifdef DAXPOOL_HAVE_CXL
#include <cxl/libcxl.h>
#endif

#include "teardown.h"
#include "util/cxl.h"

#ifdef DAXPOOL_HAVE_CXL
static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* The other namespaces with capacity on @ns's region, named into @buf; their count. */
static unsigned int other_namespaces(struct ndctl_namespace *ns, char *buf, size_t size)
{
	struct ndctl_namespace *other;
	unsigned int n = 0;
	size_t off = 0;

	buf[0] = '\0';
	ndctl_namespace_foreach(ndctl_namespace_get_region(ns), other) {
		int w;

		if (other == ns || ndctl_namespace_get_size(other) == 0)
			continue;
		n++;
		w = snprintf(buf + off, size - off, "%s%s", off ? ", " : "",
			     ndctl_namespace_get_devname(other));
		if (w > 0 && (size_t)w < size - off)
			off += (size_t)w;
	}
	return n;
}

/* Find @devname's CXL region; 0, or -errno with @msg. @f is to be released by the caller. */
static int find(const char *devname, struct dp_cxl_info *info, struct dp_cxl_found *f, char *msg,
		size_t msg_size)
{
	char why[192], others[192];
	int r = dp_cxl_lookup(devname, info, f, why, sizeof(why));

	if (r != 1) {
		snprintf(msg, msg_size, "--teardown: %s: nothing to tear down: %s", devname, why);
		return r < 0 && r != -ENODEV ? r : -EOPNOTSUPP;
	}
	if (other_namespaces(f->ns, others, sizeof(others))) {
		snprintf(msg, msg_size,
			 "--teardown: CXL %s (libnvdimm %s) also holds %s: disabling the region "
			 "would take them too, undrained; release and destroy them first",
			 info->region, info->nd_region, others);
		return -EBUSY;
	}
	return 0;
}

int dd_teardown_check(const char *devname, char *msg, size_t msg_size)
{
	struct dp_cxl_found f;
	struct dp_cxl_info info;
	int r = find(devname, &info, &f, msg, msg_size);

	dp_cxl_found_release(&f);
	return r;
}

/* Free the region's decode and capacity, then the region (cxl-cli's destroy-region does the same). */
static int delete_region(struct cxl_region *region, char *step, size_t size)
{
	unsigned int ways = cxl_region_get_interleave_ways(region);
	int r;

	r = cxl_region_decode_reset(region);
	if (r < 0) {
		snprintf(step, size, "cxl_region_decode_reset");
		return r;
	}
	if (ways == 0 || ways == UINT_MAX) {
		snprintf(step, size, "reading the interleave ways");
		return -ENXIO;
	}
	for (unsigned int i = 0; i < ways; i++) {
		struct cxl_decoder *ep = cxl_region_get_target_decoder(region, (int)i);

		if (!ep) {
			snprintf(step, size, "finding target %u", i);
			return -ENXIO;
		}
		r = cxl_region_clear_target(region, (int)i);
		if (r < 0) {
			snprintf(step, size, "clearing target %u", i);
			return r;
		}
		r = cxl_decoder_set_dpa_size(ep, 0);
		if (r < 0) {
			snprintf(step, size, "freeing the capacity of %s", cxl_decoder_get_devname(ep));
			return r;
		}
	}
	r = cxl_region_delete(region);
	if (r < 0)
		snprintf(step, size, "cxl_region_delete");
	return r;
}

int dd_teardown_run(const char *devname, struct dd_teardown *td, char *msg, size_t msg_size)
{
	struct dp_cxl_found f;
	struct dp_cxl_info info;
	uint64_t t0 = now_ns();
	char step[96];
	int r;

	memset(td, 0, sizeof(*td));
	r = find(devname, &info, &f, msg, msg_size);
	if (r < 0)
		goto out;
	snprintf(td->nd_namespace, sizeof(td->nd_namespace), "%s", info.nd_namespace);
	snprintf(td->region, sizeof(td->region), "%s", info.region);
	snprintf(td->decoder, sizeof(td->decoder), "%s", info.decoder);

	r = ndctl_namespace_disable_invalidate(f.ns);
	if (r == 0)
		r = ndctl_namespace_delete(f.ns);
	if (r < 0) {
		snprintf(msg, msg_size, "%s: disabled; destroying %s failed: %s; CXL %s untouched",
			 devname, info.nd_namespace, strerror(-r), info.region);
		goto out;
	}
	td->namespace_destroyed = true;
	r = cxl_region_disable(f.region);
	if (r < 0) {
		snprintf(msg, msg_size, "%s: disabled, %s destroyed; disabling CXL %s failed: %s",
			 devname, info.nd_namespace, info.region, strerror(-r));
		goto out;
	}
	td->region_disabled = true;
	r = delete_region(f.region, step, sizeof(step));
	if (r < 0) {
		snprintf(msg, msg_size, "%s: disabled, %s destroyed, CXL %s disabled; deleting it "
					"failed at %s: %s",
			 devname, info.nd_namespace, info.region, step, strerror(-r));
		goto out;
	}
	td->region_deleted = true;
	snprintf(msg, msg_size, "%s: disabled (libdaxctl), %s destroyed (libndctl), CXL %s "
				"disabled and deleted from %s (libcxl): memdevs %s free for hot-remove",
		 devname, info.nd_namespace, info.region, info.decoder, info.memdevs);
out:
	td->took_ns = now_ns() - t0;
	dp_cxl_found_release(&f);
	return r;
}

#else /* !DAXPOOL_HAVE_CXL */

int dd_teardown_check(const char *devname, char *msg, size_t msg_size)
{
	snprintf(msg, msg_size, "--teardown: daxpoold was built without libcxl (libcxl-dev): it "
				"cannot tear down a CXL region");
	return -EOPNOTSUPP;
}

int dd_teardown_run(const char *devname, struct dd_teardown *td, char *msg, size_t msg_size)
{
	memset(td, 0, sizeof(*td));
	return dd_teardown_check(devname, msg, msg_size);
}

#endif
