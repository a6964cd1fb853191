/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* A program built against an installed daxpool, as a user's would be. */
#include <daxpool.h>
#include <stdio.h>

int main(void)
{
	struct daxpool_ctx *ctx;

	if (daxpool_ctx_new(&ctx) < 0)
		return 1;
	printf("linked against daxpool: %s\n", daxpool_region_kind_name(DAXPOOL_REGION_DEVDAX));
	daxpool_ctx_unref(ctx);
	return 0;
}
