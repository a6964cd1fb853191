/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Saturating reference counts.
 *
 * A count that would wrap past INT_MAX, or drop below zero, is parked at
 * DP_REFCNT_SATURATED instead: the object then leaks, which is safe, where a
 * wrapped or negative count would free it under a holder. The caller is told
 * (so it can log) and never crashes.
 *
 * Memory ordering: increments are relaxed (a new reference is always derived
 * from an existing one, which already orders the object's initialisation).
 * Decrements are acq_rel: release so that every access made through a
 * reference happens before the count drops, acquire so that the thread that
 * takes the count to zero sees all of them before it frees. (The kernel does
 * release plus an acquire fence on the last decrement; a single acq_rel RMW is
 * the same lock-prefixed instruction on x86 and is understood by
 * ThreadSanitizer, which does not model standalone fences.)
 */
#ifndef DAXPOOL_UTIL_REFCNT_H
#define DAXPOOL_UTIL_REFCNT_H

#include <limits.h>
#include <stdatomic.h>
#include <stdbool.h>

#define DP_REFCNT_SATURATED (INT_MIN / 2)

struct dp_refcnt {
	atomic_int count;
};

enum dp_refcnt_status {
	DP_REFCNT_OK = 0,
	DP_REFCNT_FREE,	     /* the last reference went: free the object */
	DP_REFCNT_SATURATE,  /* an increment reached INT_MAX: the object now leaks */
	DP_REFCNT_UNDERFLOW, /* a decrement below zero (a double unref): it now leaks */
	DP_REFCNT_USE_AFTER_FREE, /* an increment from zero */
};

static inline void dp_refcnt_init(struct dp_refcnt *r, int n)
{
	atomic_init(&r->count, n);
}

static inline int dp_refcnt_read(const struct dp_refcnt *r)
{
	return atomic_load_explicit(&((struct dp_refcnt *)r)->count, memory_order_relaxed);
}

static inline enum dp_refcnt_status dp_refcnt_inc(struct dp_refcnt *r)
{
	int old = atomic_fetch_add_explicit(&r->count, 1, memory_order_relaxed);

	if (__builtin_expect(old > 0 && old < INT_MAX, 1))
		return DP_REFCNT_OK;
	atomic_store_explicit(&r->count, DP_REFCNT_SATURATED, memory_order_relaxed);
	if (old == 0)
		return DP_REFCNT_USE_AFTER_FREE;
	/* Report the transition once; an already saturated count stays quiet. */
	return old == INT_MAX ? DP_REFCNT_SATURATE : DP_REFCNT_OK;
}

/*
 * Take a reference only if the count is not zero: a zero count means the object
 * is being freed, and whoever found it through a lookup must treat it as gone.
 * Saturated counts stay saturated.
 */
static inline bool dp_refcnt_get_unless_zero(struct dp_refcnt *r)
{
	int old = atomic_load_explicit(&r->count, memory_order_relaxed);

	do {
		if (old == 0)
			return false;
		if (old < 0 || old == INT_MAX) {
			/* Saturated (or about to be): it leaks and stays alive. */
			atomic_store_explicit(&r->count, DP_REFCNT_SATURATED, memory_order_relaxed);
			return true;
		}
	} while (!atomic_compare_exchange_weak_explicit(&r->count, &old, old + 1,
							memory_order_relaxed, memory_order_relaxed));
	return true;
}

static inline enum dp_refcnt_status dp_refcnt_dec(struct dp_refcnt *r)
{
	int old = atomic_fetch_sub_explicit(&r->count, 1, memory_order_acq_rel);

	if (__builtin_expect(old > 1, 1))
		return DP_REFCNT_OK;
	if (old == 1)
		return DP_REFCNT_FREE;
	/*
	 * old <= 0. Near DP_REFCNT_SATURATED the count was saturated before and
	 * stays so quietly; anywhere else this is a decrement of a dead count.
	 */
	atomic_store_explicit(&r->count, DP_REFCNT_SATURATED, memory_order_relaxed);
	return old > DP_REFCNT_SATURATED / 2 ? DP_REFCNT_UNDERFLOW : DP_REFCNT_OK;
}

#endif /* DAXPOOL_UTIL_REFCNT_H */
