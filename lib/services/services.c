/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * A new context with its services: the core context (ctx.c), then each
 * service plugged into its hooks (struct dp_service) and started. The only
 * file that knows both the core and every service; nothing calls into it.
 */
#include "services.h"

_public_ int daxpool_ctx_new(struct daxpool_ctx **ret)
{
	struct daxpool_ctx *ctx;
	int r;

	assert_return(ret, -EINVAL);
	r = dp_ctx_new(&ctx);
	if (r < 0)
		return r;
	/* Plugged in before any is started: a started one may already see events. */
	ctx->services[DP_SERVICE_CLIENT] = &dp_client_service;
	ctx->services[DP_SERVICE_LEASE] = &dp_lease_service;
	ctx->services[DP_SERVICE_RDMA] = &dp_rdma_service;
	dp_rdma_ctx_init(ctx);
	dp_lease_ctx_init(ctx);	 /* file leases: DAXPOOL_LEASES */
	dp_client_ctx_init(ctx); /* daxpoold client: DAXPOOL_DAEMON */
	log_info(ctx, "context %p created, log priority %d", (void *)ctx,
		 atomic_load(&ctx->log_priority));
	*ret = ctx;
	return 0;
}
