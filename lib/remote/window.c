/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Type-2 memory windows or one MR per grant, from the device's attributes (window.h). */
#include <stdbool.h>
#include <stdio.h>

#include <infiniband/verbs.h>

#include "daxpool-remote.h"
#include "window.h"

int dp_remote_grant_mode_of(const struct ibv_device_attr *attr, char *why, size_t why_len)
{
	uint64_t caps = attr->device_cap_flags;
	bool type2 = caps & (IBV_DEVICE_MEM_WINDOW_TYPE_2A | IBV_DEVICE_MEM_WINDOW_TYPE_2B);

	if (type2 && attr->max_mw > 0) {
		snprintf(why, why_len,
			 "type-2 memory windows (%s%s, max_mw %d): one window per grant on "
			 "the export's MR, invalidated on revoke",
			 caps & IBV_DEVICE_MEM_WINDOW_TYPE_2A ? "2A" : "",
			 caps & IBV_DEVICE_MEM_WINDOW_TYPE_2B ?
				 (caps & IBV_DEVICE_MEM_WINDOW_TYPE_2A ? " and 2B" : "2B") :
				 "",
			 attr->max_mw);
		return DAXPOOL_REMOTE_WINDOW;
	}
	snprintf(why, why_len,
		 "no type-2 memory windows (%s, max_mw %d): one MR per grant, deregistered on "
		 "revoke",
		 !type2 ? "the device reports neither IBV_DEVICE_MEM_WINDOW_TYPE_2A nor _2B" :
			  "the device reports type-2 windows but no window to allocate",
		 attr->max_mw);
	return DAXPOOL_REMOTE_MR;
}
