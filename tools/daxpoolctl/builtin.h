/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* daxpoolctl subcommands: one cmd_<verb>() per file, dispatched from main.c. */
#ifndef DAXPOOLCTL_BUILTIN_H
#define DAXPOOLCTL_BUILTIN_H

#include <stdbool.h>
#include <stdio.h>

/* Exit codes of daxpoolctl, also listed in its --help. */
enum {
	DAXPOOLCTL_EXIT_OK = 0,
	DAXPOOLCTL_EXIT_FAILURE = 1, /* the operation failed (bad region, device error), or
				      * check found a problem in a pool */
	DAXPOOLCTL_EXIT_USAGE = 2,   /* bad command line */
};

struct daxpool_ctx;

struct daxpoolctl_cmd {
	const char *name;
	const char *summary;
	int (*fn)(int argc, char **argv, struct daxpool_ctx *ctx);
};

int cmd_info(int argc, char **argv, struct daxpool_ctx *ctx);
int cmd_create(int argc, char **argv, struct daxpool_ctx *ctx);
int cmd_check(int argc, char **argv, struct daxpool_ctx *ctx);
int cmd_repair(int argc, char **argv, struct daxpool_ctx *ctx);
int cmd_extents(int argc, char **argv, struct daxpool_ctx *ctx);
/* daxpoold subcommands (status.c, pins.c, release.c, truncate.c, punch.c; daemon.c). */
int cmd_status(int argc, char **argv, struct daxpool_ctx *ctx);
int cmd_pins(int argc, char **argv, struct daxpool_ctx *ctx);
int cmd_release(int argc, char **argv, struct daxpool_ctx *ctx);
int cmd_truncate(int argc, char **argv, struct daxpool_ctx *ctx);
int cmd_punch(int argc, char **argv, struct daxpool_ctx *ctx);

struct daxpool_pool;
struct daxpool_region;

/*
 * The command line of the region subcommands: [--json] [--help] PATH, and PATH
 * opened as a region with @flags (region-arg.c). Return: -1 with *ret_region
 * set, to go on; otherwise the exit code to return at once (help printed, bad
 * usage, or the region could not be opened: a message is printed).
 */
int daxpoolctl_open_region_arg(const char *cmd, int argc, char **argv, void (*usage)(FILE *),
			       struct daxpool_ctx *ctx, unsigned int flags, bool *ret_json,
			       struct daxpool_region **ret_region);

/* Pool printing shared by the pool subcommands (pool-print.c). */
struct json_object;

struct daxpoolctl_problems {
	bool json;
	struct json_object *list; /* JSON array the problems are added to */
};

struct json_object *daxpoolctl_pool_json(struct daxpool_pool *pool);
void daxpoolctl_pool_human(struct daxpool_pool *pool);
/* A daxpool_pool_problem_fn: prints a line, or adds to the JSON list. */
void daxpoolctl_problem(struct daxpool_region *region, const char *where, int err,
			const char *message, int repaired, void *userdata);

#endif /* DAXPOOLCTL_BUILTIN_H */
