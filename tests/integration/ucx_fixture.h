/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* What the UCX tests share: the context libdaxpool-ucx needs. Compiled into each. */
#ifndef DAXPOOL_TEST_UCX_FIXTURE_H
#define DAXPOOL_TEST_UCX_FIXTURE_H

#include <ucp/api/ucp.h>

/*
 * A UCP context for RMA, thread-safe (mt_workers_shared: a zap unmaps
 * handles from daxpool's thread), on transports @tls (UCX_TLS) and devices
 * @net_devices (UCX_NET_DEVICES), which override the environment's. NULL
 * (said why) if ucp_init() fails.
 */
ucp_context_h ucx_fixture_context(const char *tls, const char *net_devices);

#endif
