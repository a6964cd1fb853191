/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * A service's background thread (service_thread.c): the daxpoold client's
 * (client.c) and the lease watcher's (lease.c). Start, stop, kick, and the
 * end of the context on the thread itself, written once.
 *
 * The thread runs a loop of passes: the service's pass works and says what
 * to wait for next (descriptors of the service's own, a timeout); the
 * helper waits for that (or a kick) and runs the next pass. A pass runs with
 * a reference on the context held by the helper, taken before and dropped
 * after it, so nothing a pass does -- a region's last unref included -- can
 * free the context or the service under it. When the helper's own unref is
 * the context's last, the context ends on the thread: the service's
 * ctx_fini calls dp_service_thread_stop(), which then only marks the thread
 * orphaned, and the helper frees the service (ops->free) once the context is
 * gone, at the end of the loop, touching nothing else after. Between passes
 * the helper holds no reference: an application's last unref while the
 * thread waits ends the context on the application's thread, whose stop
 * wakes the thread, joins it and frees the service. A context being freed
 * elsewhere when a pass would start is not touched: the thread waits for
 * that stop.
 *
 * Ownership: a service embeds its struct dp_service_thread. Before it is
 * published (reachable by another thread) the service may free itself;
 * once published, only dp_service_thread_stop() frees it -- whether the
 * thread ever started or not -- and it is called once, by the service's
 * ctx_fini.
 */
#ifndef DAXPOOL_SERVICE_THREAD_H
#define DAXPOOL_SERVICE_THREAD_H

#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

struct daxpool_ctx;
struct dp_service_thread;

struct dp_service_thread_ops {
	const char *name; /* for the log: "lease watcher" */
	/*
	 * One pass, on the thread, with a context reference held: read what
	 * the last wait saw (dp_service_thread_revents(); nothing on the first
	 * pass), work, then set up the next wait (dp_service_thread_wait(),
	 * then dp_service_thread_watch() per descriptor). Return 0, or < 0 to
	 * end the thread (the service logs why); the service stays until its
	 * stop. Never waits on the thread's own stop.
	 */
	int (*pass)(struct dp_service_thread *t);
	/*
	 * Free the service @t is embedded in, calling dp_service_thread_fini()
	 * on @t. Once: from dp_service_thread_stop(), or on the thread at the
	 * end of its loop when the context ended there; no lock held. The
	 * context may be gone: it must not be touched.
	 */
	void (*free)(struct dp_service_thread *t);
};

struct dp_service_thread {
	const struct dp_service_thread_ops *ops;
	struct daxpool_ctx *ctx;
	unsigned long fork_gen; /* dp_fork_generation at init: a child's copy has no thread */
	pthread_t thread;
	bool started;
	atomic_int tid; /* the thread's id, once it runs */
	int efd;	/* eventfd: kicks and the stop */
	atomic_bool stop;
	atomic_bool orphaned; /* the context ended on the thread: free at the loop's end */
	/* The next wait: pfd[0] is the kick; the thread's alone. */
	struct pollfd *pfd;
	size_t n_pfd, cap_pfd;
	int timeout_ms;
};

/*
 * Make @t (zeroed or not) for @ctx, with @ops: the kick descriptor and the
 * wait set. Return 0, or a negative errno with nothing to undo.
 */
int dp_service_thread_init(struct dp_service_thread *t, struct daxpool_ctx *ctx,
			   const struct dp_service_thread_ops *ops);
/* Release what init made (from ops->free, or for a service never published). */
void dp_service_thread_fini(struct dp_service_thread *t);

/*
 * Start the thread, with every signal blocked on it but those of a fault
 * (SIGBUS, SIGSEGV, SIGFPE, SIGILL, SIGTRAP, SIGSYS: a revoke function or a
 * guarded access on the thread keeps the process's handlers), and return
 * once it runs (dp_service_thread_tid() is known). Return 0, or a negative
 * errno: no thread then; @t stays as init made it (freed by its owner
 * before it is published, by dp_service_thread_stop() after). Once.
 */
int dp_service_thread_start(struct dp_service_thread *t);

/* Wake the thread for a pass. Any thread, any lock held; never blocks; async-signal-safe. */
void dp_service_thread_kick(struct dp_service_thread *t);

/*
 * End the service: stop and join the thread, then ops->free. On the thread
 * itself (its context's last reference went there), only mark it: the
 * helper frees at the end of the loop. In a child of fork() the thread is
 * the parent's: no join, only ops->free of the child's copy. Once, from the
 * service's ctx_fini.
 */
void dp_service_thread_stop(struct dp_service_thread *t);

/* The thread's kernel id (for F_SETOWN_EX); 0 if it never started. */
pid_t dp_service_thread_tid(const struct dp_service_thread *t);

/*
 * The next wait, during a pass: dp_service_thread_wait() starts it anew
 * with a timeout (ms, -1 none) and the kick alone; dp_service_thread_watch()
 * adds @fd for @events and returns its index (> 0), or -ENOMEM;
 * dp_service_thread_revents() gives what the last wait saw on an index
 * (0 for an index < 1 or not in it). Without a call of wait() the set stays
 * as it was.
 */
void dp_service_thread_wait(struct dp_service_thread *t, int timeout_ms);
int dp_service_thread_watch(struct dp_service_thread *t, int fd, short events);
short dp_service_thread_revents(const struct dp_service_thread *t, int index);

#endif /* DAXPOOL_SERVICE_THREAD_H */
