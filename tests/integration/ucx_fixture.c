/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* What the UCX tests share (ucx_fixture.h). */
#include <stdio.h>
#include <stdlib.h>

#include "ucx_fixture.h"

ucp_context_h ucx_fixture_context(const char *tls, const char *net_devices)
{
	ucp_params_t params = { 0 };
	ucp_config_t *config;
	ucp_context_h context;
	ucs_status_t st;

	setenv("UCX_TLS", tls, 1);
	setenv("UCX_NET_DEVICES", net_devices, 1);
	if (ucp_config_read(NULL, NULL, &config) != UCS_OK)
		return NULL;
	params.field_mask = UCP_PARAM_FIELD_FEATURES | UCP_PARAM_FIELD_MT_WORKERS_SHARED;
	params.features = UCP_FEATURE_RMA;
	params.mt_workers_shared = 1;
	st = ucp_init(&params, config, &context);
	ucp_config_release(config);
	if (st != UCS_OK) {
		printf("# ucp_init: %s\n", ucs_status_string(st));
		return NULL;
	}
	return context;
}
