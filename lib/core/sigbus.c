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
 * the disposition that was there before for every SIGBUS it does not own: a
 * handler is called; an ignored kill(SIGBUS) stays ignored; and where the
 * default action applies, the process dies of SIGBUS as it would have
 * without daxpool (the default is restored only for that instant: the
 * signal is raised again at once, so no living process runs without the
 * guard). Only a fault the kernel raised (si_code > 0) is the guard's: a
 * SIGBUS sent with kill() or sigqueue() goes to the previous disposition even
 * inside a guard. The guarded range is widened to whole cache lines, since
 * the flush instructions start at the line that holds the first byte. An
 * application that installs its own SIGBUS handler afterwards replaces
 * daxpool's, and then daxpool's helpers fault like plain code.
 */
#include <setjmp.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

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
static struct sigaction sigbus_prev, sigbus_ours;

#define DP_CACHE_LINE 64

/*
 * The default action, terminate with a core, from inside the handler: the
 * default disposition for as long as it takes to raise SIGBUS again at this
 * thread (it is not blocked: SA_NODEFER, empty sa_mask), which kills the
 * process on the way out of tgkill(). Async-signal-safe.
 */
static void sigbus_default(void)
{
	struct sigaction dfl;
	sigset_t set;

	memset(&dfl, 0, sizeof(dfl));
	dfl.sa_handler = SIG_DFL;
	sigemptyset(&dfl.sa_mask);
	sigaction(SIGBUS, &dfl, NULL);
	sigemptyset(&set);
	sigaddset(&set, SIGBUS);
	pthread_sigmask(SIG_UNBLOCK, &set, NULL);
	syscall(SYS_tgkill, getpid(), syscall(SYS_gettid), SIGBUS);
	/* Not reached, unless something between blocks it: the guard stays installed. */
	sigaction(SIGBUS, &sigbus_ours, NULL);
}

static void sigbus_handler(int sig, siginfo_t *si, void *uc)
{
	struct dp_guard *g = guard_current;
	uintptr_t a = (uintptr_t)si->si_addr;

	/* si_code <= 0: sent by a process (SI_USER, SI_QUEUE, SI_TKILL...), si_addr is not an address. */
	if (g && si->si_code > 0 && a >= g->lo && a < g->hi)
		siglongjmp(g->jmp, si->si_code == BUS_MCEERR_AR || si->si_code == BUS_MCEERR_AO
					   ? EIO
					   : ENXIO);
	/* Not ours: whoever was there before, or what would have happened without us. */
	if (sigbus_prev.sa_flags & SA_SIGINFO)
		sigbus_prev.sa_sigaction(sig, si, uc);
	else if (sigbus_prev.sa_handler != SIG_DFL && sigbus_prev.sa_handler != SIG_IGN)
		sigbus_prev.sa_handler(sig);
	else if (sigbus_prev.sa_handler == SIG_IGN && si->si_code <= 0)
		return; /* an ignored kill(SIGBUS); a fault cannot be ignored */
	else
		sigbus_default();
}

static void sigbus_install(void)
{
	memset(&sigbus_ours, 0, sizeof(sigbus_ours));
	sigbus_ours.sa_sigaction = sigbus_handler;
	sigbus_ours.sa_flags = SA_SIGINFO | SA_NODEFER;
	sigemptyset(&sigbus_ours.sa_mask);
	sigaction(SIGBUS, &sigbus_ours, &sigbus_prev);
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
	/* Whole cache lines: a flush of [addr, addr + length) touches all of them. */
	g.lo = (uintptr_t)addr & ~(uintptr_t)(DP_CACHE_LINE - 1);
	g.hi = ((uintptr_t)addr + length + DP_CACHE_LINE - 1) & ~(uintptr_t)(DP_CACHE_LINE - 1);
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
