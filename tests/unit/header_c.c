/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The public header compiles alone as C99 (no other include before it). */
#include "daxpool.h"

int main(void)
{
	struct daxpool_ctx *ctx = 0;

	return daxpool_ctx_unref(ctx) == 0 && DAXPOOL_REGION_DEVDAX == 3 ? 0 : 1;
}
