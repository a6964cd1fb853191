/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The library context, its core part: log configuration, the region list and
 * the root of every object. The services plug in through ctx->services
 * (services.c makes a context with them).
 */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "private.h"

/* Parse a DAXPOOL_LOG value: a number 0-7 or a syslog priority name. */
static int log_priority_parse(const char *s)
{
	static const char *const names[] = { "emerg", "alert",	"crit", "err",
					     "warning", "notice", "info", "debug" };
	char *end;
	long v;

	if (!s || !*s)
		return -EINVAL;
	errno = 0;
	v = strtol(s, &end, 10);
	if (errno == 0 && *end == '\0')
		return v >= LOG_EMERG && v <= LOG_DEBUG ? (int)v : -EINVAL;
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (strcasecmp(s, names[i]) == 0)
			return (int)i;
	if (strcasecmp(s, "error") == 0)
		return LOG_ERR;
	if (strcasecmp(s, "warn") == 0)
		return LOG_WARNING;
	return -EINVAL;
}

int dp_ctx_new(struct daxpool_ctx **ret)
{
	struct daxpool_ctx *ctx;
	const char *env;
	int prio;

	ctx = calloc(1, sizeof(*ctx));
	if (!ctx)
		return -ENOMEM;
	dp_refcnt_init(&ctx->ref, 1);
	dp_fork_init();
	ctx->fork_gen = atomic_load_explicit(&dp_fork_generation, memory_order_relaxed);
	ctx->pid = dp_getpid();
	atomic_init(&ctx->fork_protection, DAXPOOL_FORK_PROTECT_AUTO);
	atomic_init(&ctx->log_priority, LOG_ERR);
	for (size_t i = 0; i < sizeof(ctx->uring_regbuf) / sizeof(ctx->uring_regbuf[0]); i++)
		atomic_init(&ctx->uring_regbuf[i], 0);
	pthread_mutex_init(&ctx->regions_lock, NULL);
	dp_list_init(&ctx->regions);
	atomic_init(&ctx->client, NULL);
	if (dp_registry_new(&ctx->registry) < 0) {
		pthread_mutex_destroy(&ctx->regions_lock);
		free(ctx);
		return -ENOMEM;
	}

	env = secure_getenv("DAXPOOL_LOG");
	if (env) {
		prio = log_priority_parse(env);
		if (prio >= 0)
			atomic_store(&ctx->log_priority, prio);
		else
			log_err(ctx, "DAXPOOL_LOG=\"%s\" is not a priority (0-7 or err, info, debug...)",
				env);
	}
	*ret = ctx;
	return 0;
}

static void ctx_free(struct daxpool_ctx *ctx)
{
	log_info(ctx, "context %p freed", (void *)ctx);
	/* The services in the reverse order: the lease watcher reads the region list. */
	for (int i = DP_SERVICE_MAX - 1; i >= 0; i--)
		if (ctx->services[i] && ctx->services[i]->ctx_fini)
			ctx->services[i]->ctx_fini(ctx);
	dp_registry_free(ctx->registry);
	pthread_mutex_destroy(&ctx->regions_lock);
	free(ctx);
}

static struct daxpool_ctx *ctx_of_ctx(struct daxpool_ctx *ctx)
{
	return ctx;
}

DP_DEFINE_REF_UNREF(ctx, struct daxpool_ctx, ctx_free, ctx_of_ctx)

_public_ int daxpool_ctx_set_log_fn(struct daxpool_ctx *ctx, daxpool_log_fn log_fn)
{
	assert_return(ctx, -EINVAL);
	ctx->log_fn = log_fn;
	return 0;
}

_public_ int daxpool_ctx_get_log_priority(struct daxpool_ctx *ctx)
{
	assert_return(ctx, -EINVAL);
	return atomic_load_explicit(&ctx->log_priority, memory_order_relaxed);
}

_public_ int daxpool_ctx_set_log_priority(struct daxpool_ctx *ctx, int priority)
{
	assert_return(ctx, -EINVAL);
	assert_return(priority >= LOG_EMERG && priority <= LOG_DEBUG, -EINVAL);
	atomic_store_explicit(&ctx->log_priority, priority, memory_order_relaxed);
	return 0;
}

_public_ void daxpool_ctx_set_userdata(struct daxpool_ctx *ctx, void *userdata)
{
	if (ctx)
		ctx->userdata = userdata;
}

_public_ void *daxpool_ctx_get_userdata(struct daxpool_ctx *ctx)
{
	return ctx ? ctx->userdata : NULL;
}
