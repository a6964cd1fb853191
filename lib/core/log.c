/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Logging through the context's callback; errno is preserved for the caller. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "private.h"

/* The format comes from dp_log(), whose own format is checked by the compiler. */
__attribute__((format(printf, 6, 0))) static void
log_stderr(struct daxpool_ctx *ctx, int priority, const char *file, int line, const char *fn,
	   const char *format, va_list args)
{
	char msg[512];

	/* One write per message, so lines from several threads do not interleave. */
	vsnprintf(msg, sizeof(msg), format, args);
	fprintf(stderr, "libdaxpool: %s: %s\n", fn, msg);
}

void dp_log(struct daxpool_ctx *ctx, int priority, const char *file, int line, const char *fn,
	    const char *format, ...)
{
	daxpool_log_fn log_fn = ctx->log_fn ? ctx->log_fn : log_stderr;
	int saved_errno = errno;
	va_list args;

	va_start(args, format);
	log_fn(ctx, priority, file, line, fn, format, args);
	va_end(args);
	errno = saved_errno;
}

void dp_refcnt_report(struct daxpool_ctx *ctx, enum dp_refcnt_status st, const char *what,
		      const void *obj)
{
	switch (st) {
	case DP_REFCNT_SATURATE:
		log_err(ctx, "%s %p: reference count saturated; the object will leak", what, obj);
		break;
	case DP_REFCNT_UNDERFLOW:
		log_err(ctx, "%s %p: unref of an object with no reference left (double unref); "
			     "the count is parked saturated and the object leaks", what, obj);
		break;
	case DP_REFCNT_USE_AFTER_FREE:
		log_err(ctx, "%s %p: ref of an object whose count reached zero (use after free)",
			what, obj);
		break;
	case DP_REFCNT_OK:
	case DP_REFCNT_FREE:
		break;
	}
}

/*
 * libpmem2 returns either a negative errno or one of its own PMEM2_E_* codes
 * (all below PMEM2_E_UNKNOWN); its converter is not exported, so map here.
 */
static int pmem2_errno(int ret)
{
	if (ret > PMEM2_E_UNKNOWN)
		return -ret; /* a plain negative errno */
	switch (ret) {
	case PMEM2_E_NOSUPP:
	case PMEM2_E_GRANULARITY_NOT_SUPPORTED:
	case PMEM2_E_SOURCE_TYPE_NOT_SUPPORTED:
	case PMEM2_E_INVALID_FILE_TYPE:
		return EOPNOTSUPP;
	case PMEM2_E_MAP_RANGE:
	case PMEM2_E_OFFSET_OUT_OF_RANGE:
	case PMEM2_E_LENGTH_OUT_OF_RANGE:
		return ERANGE;
	case PMEM2_E_NO_ACCESS:
		return EACCES;
	case PMEM2_E_IO_FAIL:
	case PMEM2_E_CANNOT_READ_BOUNDS:
		return EIO;
	case PMEM2_E_DAX_REGION_NOT_FOUND:
		return ENODEV;
	case PMEM2_E_UNKNOWN:
		return EIO;
	default:
		/* Unaligned offsets, devdax private mappings, bad configs. */
		return EINVAL;
	}
}

int dp_pmem2_err(struct daxpool_ctx *ctx, int pmem2_ret, const char *what)
{
	int err = pmem2_errno(pmem2_ret);

	log_err(ctx, "%s: %s (%s)", what, pmem2_errormsg(), strerror(err));
	return -err;
}
