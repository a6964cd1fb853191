/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* daxpoolctl subcommands: one cmd_<verb>() per file, dispatched from main.c. */
#ifndef DAXPOOLCTL_BUILTIN_H
#define DAXPOOLCTL_BUILTIN_H

#include <stdbool.h>

/* Exit codes of daxpoolctl, also listed in its --help. */
enum {
	DAXPOOLCTL_EXIT_OK = 0,
	DAXPOOLCTL_EXIT_FAILURE = 1, /* the operation failed (bad region, device error) */
	DAXPOOLCTL_EXIT_USAGE = 2,   /* bad command line */
};

struct daxpool_ctx;

struct daxpoolctl_cmd {
	const char *name;
	const char *summary;
	int (*fn)(int argc, char **argv, struct daxpool_ctx *ctx);
};

int cmd_info(int argc, char **argv, struct daxpool_ctx *ctx);

#endif /* DAXPOOLCTL_BUILTIN_H */
