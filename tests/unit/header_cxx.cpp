// SPDX-License-Identifier: LGPL-2.1-or-later
// The public header compiles alone as C++11, with C linkage.
#include "daxpool.h"

int main()
{
	daxpool_ctx *ctx = nullptr;
	daxpool_revoke_fn fn = nullptr;

	(void)fn;
	return daxpool_ctx_unref(ctx) == nullptr ? 0 : 1;
}
