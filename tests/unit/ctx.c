/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The library context: references, log function, priority, DAXPOOL_LOG. */
#include <stdarg.h>
#include <syslog.h>

#include "daxpool.h"
#include "harness.h"

static int logged;
static int last_priority;
static char last_msg[512];

__attribute__((format(printf, 6, 0))) static void
capture(struct daxpool_ctx *ctx, int priority, const char *file, int line,
		    const char *fn, const char *format, va_list args)
{
	logged++;
	last_priority = priority;
	vsnprintf(last_msg, sizeof(last_msg), format, args);
	errno = EBADMSG; /* a log function that clobbers errno must not leak it */
}

TEST(new_ref_unref)
{
	struct daxpool_ctx *ctx = NULL;

	CHECK_OK(daxpool_ctx_new(&ctx));
	CHECK(ctx);
	CHECK(daxpool_ctx_ref(ctx) == ctx);
	CHECK(daxpool_ctx_unref(ctx) == NULL);
	CHECK(daxpool_ctx_unref(ctx) == NULL);
	CHECK(daxpool_ctx_unref(NULL) == NULL);
	CHECK(daxpool_ctx_ref(NULL) == NULL);
}

TEST(null_arguments_are_refused)
{
	CHECK_ERR(daxpool_ctx_new(NULL), EINVAL);
	CHECK_ERR(daxpool_ctx_set_log_fn(NULL, NULL), EINVAL);
	CHECK_ERR(daxpool_ctx_get_log_priority(NULL), EINVAL);
	CHECK_ERR(daxpool_ctx_set_log_priority(NULL, LOG_ERR), EINVAL);
	CHECK(daxpool_ctx_get_userdata(NULL) == NULL);
	daxpool_ctx_set_userdata(NULL, NULL);
}

TEST(default_priority_is_err)
{
	struct daxpool_ctx *ctx;

	unsetenv("DAXPOOL_LOG");
	CHECK_OK(daxpool_ctx_new(&ctx));
	CHECK_EQ(daxpool_ctx_get_log_priority(ctx), LOG_ERR);
	CHECK_ERR(daxpool_ctx_set_log_priority(ctx, 8), EINVAL);
	CHECK_ERR(daxpool_ctx_set_log_priority(ctx, -1), EINVAL);
	CHECK_OK(daxpool_ctx_set_log_priority(ctx, LOG_DEBUG));
	CHECK_EQ(daxpool_ctx_get_log_priority(ctx), LOG_DEBUG);
	daxpool_ctx_unref(ctx);
}

TEST(daxpool_log_env_sets_priority)
{
	static const struct {
		const char *value;
		int priority;
	} cases[] = { { "debug", LOG_DEBUG }, { "6", LOG_INFO }, { "warning", LOG_WARNING },
		      { "ERR", LOG_ERR },     { "0", LOG_EMERG } };
	struct daxpool_ctx *ctx;

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		setenv("DAXPOOL_LOG", cases[i].value, 1);
		CHECK_OK(daxpool_ctx_new(&ctx));
		CHECK_EQ(daxpool_ctx_get_log_priority(ctx), cases[i].priority);
		daxpool_ctx_unref(ctx);
	}
	/* A bad value keeps the default. */
	setenv("DAXPOOL_LOG", "loud", 1);
	CHECK_OK(daxpool_ctx_new(&ctx));
	CHECK_EQ(daxpool_ctx_get_log_priority(ctx), LOG_ERR);
	daxpool_ctx_unref(ctx);
}

TEST(log_fn_receives_errors_and_keeps_errno)
{
	struct daxpool_region *region = NULL;
	struct daxpool_ctx *ctx;

	unsetenv("DAXPOOL_LOG");
	CHECK_OK(daxpool_ctx_new(&ctx));
	CHECK_OK(daxpool_ctx_set_log_fn(ctx, capture));
	CHECK_ERR(daxpool_region_open(ctx, "/nonexistent/daxpool", 0, &region), ENOENT);
	CHECK(errno != EBADMSG);
	CHECK(logged > 0);
	CHECK_EQ(last_priority, LOG_ERR);
	CHECK(strstr(last_msg, "/nonexistent/daxpool") != NULL);
	CHECK(region == NULL);

	/* Below the priority: not called. */
	logged = 0;
	CHECK_OK(daxpool_ctx_set_log_priority(ctx, LOG_CRIT));
	CHECK_ERR(daxpool_region_open(ctx, "/nonexistent/daxpool", 0, &region), ENOENT);
	CHECK_EQ(logged, 0);
	daxpool_ctx_unref(ctx);
}

TEST(region_keeps_its_ctx_alive)
{
	struct daxpool_region *region;
	struct daxpool_ctx *ctx;
	const char *path = fixture_plain_file(1 << 20);

	CHECK_OK(daxpool_ctx_new(&ctx));
	CHECK_OK(daxpool_ctx_set_log_fn(ctx, capture));
	CHECK_OK(daxpool_region_open(ctx, path, 0, &region));
	/* Drop the caller's reference: the region still holds one. */
	daxpool_ctx_unref(ctx);
	CHECK(daxpool_region_get_ctx(region) == ctx);
	CHECK_EQ(daxpool_ctx_get_log_priority(ctx), LOG_ERR);
	logged = 0;
	CHECK_ERR(daxpool_map_new(region, 1, 0, 0, &(struct daxpool_map *){ NULL }), EINVAL);
	CHECK(logged > 0); /* logged through the ctx the region holds */
	daxpool_region_unref(region);
}

TEST(userdata_round_trip)
{
	struct daxpool_ctx *ctx;
	int x;

	CHECK_OK(daxpool_ctx_new(&ctx));
	CHECK(daxpool_ctx_get_userdata(ctx) == NULL);
	daxpool_ctx_set_userdata(ctx, &x);
	CHECK(daxpool_ctx_get_userdata(ctx) == &x);
	daxpool_ctx_unref(ctx);
}
