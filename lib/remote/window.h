/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Whether a device gives type-2 memory windows (the grant of a window on
 * the export's MR), decided from what the device reports, and why not.
 */
#ifndef DAXPOOL_REMOTE_WINDOW_H
#define DAXPOOL_REMOTE_WINDOW_H

#include <stddef.h>

struct ibv_device_attr;

/*
 * dp_remote_grant_mode_of() - the grant mode a device's attributes allow
 * @attr: from ibv_query_device()
 * @why: filled with a sentence that says what was found (for the log and
 *	daxpool_remote_server_get_grant_mode())
 * @why_len: its size
 *
 * Return: DAXPOOL_REMOTE_WINDOW when the device reports type-2 windows
 * (IBV_DEVICE_MEM_WINDOW_TYPE_2A or _2B) and max_mw > 0, else
 * DAXPOOL_REMOTE_MR (one MR per grant; its deregistration is the revoke).
 */
int dp_remote_grant_mode_of(const struct ibv_device_attr *attr, char *why, size_t why_len);

#endif
