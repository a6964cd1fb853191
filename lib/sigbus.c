/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * A mapping that the kernel tore down under the application (a devdax
 * device disabled by someone else, a file truncated by another process, a
 * poisoned page) makes the next access fault with SIGBUS, which kills the
 * process. daxpool's own accesses to mapped memory (the copy, fill, read and
 * persist helpers) run under a guard instead: a SIGBUS inside the guarded
 * range unwinds back to the guard, which returns -ENXIO (the mapping went
 * away) or -EIO (a memory error) and marks the region dead. daxpoold marks it
 * dead the same way when it reports the device gone (client.c).
 *
 * The handler is installed once, the first time a guard runs, and chains to
 * the handler that was there before for every SIGBUS it does not own (or
 * restores the default action, so such a fault kills the process as it would
 * have without daxpool). An application that installs its own SIGBUS handler
 * afterwards replaces it, and then daxpool's helpers fault like plain code.
 */
#include <setjmp.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "private.h"

struct dp_guard {
	sigjmp_buf jmp;
	uintptr_t lo, hi;
	struct dp_guard *outer;
};

/*
 * initial-exec: the handler must not go through __tls_get_addr, which may
 * allocate. The variable is touched before the guard is armed anyway.
 */
static __thread struct dp_guard *guard_current __attribute__((tls_model("initial-exec")));
static struct sigaction sigbus_prev;

static void sigbus_handler(int sig, siginfo_t *si, void *uc)
{
	struct dp_guard *g = guard_current;
	uintptr_t a = (uintptr_t)si->si_addr;

	if (g && a >= g->lo && a < g->hi)
		siglongjmp(g->jmp, si->si_code == BUS_MCEERR_AR || si->si_code == BUS_MCEERR_AO
					   ? EIO
					   : ENXIO);
	/* Not ours: whoever was there before, or what would have happened without us. */
	if (sigbus_prev.sa_flags & SA_SIGINFO) {
		sigbus_prev.sa_sigaction(sig, si, uc);
	} else if (sigbus_prev.sa_handler != SIG_DFL && sigbus_prev.sa_handler != SIG_IGN) {
		sigbus_prev.sa_handler(sig);
	} else {
		/* Returning re-runs the access, which now faults into the default action. */
		signal(SIGBUS, SIG_DFL);
	}
}

static void sigbus_install(void)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = sigbus_handler;
	sa.sa_flags = SA_SIGINFO | SA_NODEFER;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGBUS, &sa, &sigbus_prev);
}

int dp_sigbus_guard(struct daxpool_region *region, const void *addr, size_t length,
		    void (*fn)(void *), void *arg)
{
	static pthread_once_t once = PTHREAD_ONCE_INIT;
	struct dp_guard g;
	volatile int err;

	pthread_once(&once, sigbus_install);
	if (atomic_load_explicit(&region->dead, memory_order_acquire))
		return -ENXIO;
	g.lo = (uintptr_t)addr;
	g.hi = g.lo + length;
	g.outer = guard_current;
	/*
	 * No signal mask saved here (that is a system call on every access):
	 * the handler runs with SA_NODEFER and an empty sa_mask, so the kernel
	 * blocks nothing. Something in between (a sanitizer's runtime) may
	 * block SIGBUS while it runs the handler: unblocked after a fault below.
	 */
	err = sigsetjmp(g.jmp, 0);
	if (err == 0) {
		guard_current = &g;
		fn(arg);
		guard_current = g.outer;
		return 0;
	}
	guard_current = g.outer;
	{
		sigset_t set;

		sigemptyset(&set);
		sigaddset(&set, SIGBUS);
		pthread_sigmask(SIG_UNBLOCK, &set, NULL);
	}
	{
		char why[160];

		snprintf(why, sizeof(why), "%s at %p",
			 err == EIO ? "memory error (SIGBUS)"
				    : "the mapping went away (SIGBUS: unplugged or truncated "
				      "underneath)",
			 addr);
		dp_region_mark_dead(region, -err, why);
	}
	return -err;
}

void dp_region_mark_dead(struct daxpool_region *region, int reason, const char *why)
{
	/* Logged once: a fault storm or a second report adds nothing. */
	if (atomic_exchange_explicit(&region->dead, true, memory_order_acq_rel))
		return;
	log_err(region->ctx, "%s: %s (%s): the region is dead; its maps and pins must go",
		region->path, why, strerror(-reason));
	pthread_mutex_lock(&region->lock);
	dp_region_drop_dead_backing(region);
	pthread_mutex_unlock(&region->lock);
}

_public_ int daxpool_region_is_dead(struct daxpool_region *region)
{
	assert_return(region, -EINVAL);
	assert_owned(region->ctx);
	return atomic_load_explicit(&region->dead, memory_order_acquire);
}
