/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * A service's background thread: see service_thread.h for the contract. The
 * one place where a service thread holds its context, and where the end of
 * a context on that thread is handled.
 */
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "services.h"

#define SERVICE_THREAD_PFD_MIN 4

int dp_service_thread_init(struct dp_service_thread *t, struct daxpool_ctx *ctx,
			   const struct dp_service_thread_ops *ops)
{
	memset(t, 0, sizeof(*t));
	t->ops = ops;
	t->ctx = ctx;
	t->fork_gen = atomic_load_explicit(&dp_fork_generation, memory_order_relaxed);
	atomic_init(&t->tid, 0);
	atomic_init(&t->stop, false);
	atomic_init(&t->orphaned, false);
	t->pfd = calloc(SERVICE_THREAD_PFD_MIN, sizeof(*t->pfd));
	if (!t->pfd)
		return -ENOMEM;
	t->cap_pfd = SERVICE_THREAD_PFD_MIN;
	t->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (t->efd < 0) {
		int r = -errno;

		free(t->pfd);
		t->pfd = NULL;
		return r;
	}
	dp_service_thread_wait(t, -1);
	return 0;
}

void dp_service_thread_fini(struct dp_service_thread *t)
{
	if (t->efd >= 0)
		close(t->efd);
	t->efd = -1;
	free(t->pfd);
	t->pfd = NULL;
	t->n_pfd = t->cap_pfd = 0;
}

void dp_service_thread_wait(struct dp_service_thread *t, int timeout_ms)
{
	t->pfd[0] = (struct pollfd){ .fd = t->efd, .events = POLLIN };
	t->n_pfd = 1;
	t->timeout_ms = timeout_ms;
}

int dp_service_thread_watch(struct dp_service_thread *t, int fd, short events)
{
	if (t->n_pfd == t->cap_pfd) {
		size_t cap = 2 * t->cap_pfd;
		struct pollfd *p = realloc(t->pfd, cap * sizeof(*p));

		if (!p)
			return -ENOMEM;
		t->pfd = p;
		t->cap_pfd = cap;
	}
	t->pfd[t->n_pfd] = (struct pollfd){ .fd = fd, .events = events };
	return (int)t->n_pfd++;
}

short dp_service_thread_revents(const struct dp_service_thread *t, int index)
{
	if (index < 1 || (size_t)index >= t->n_pfd)
		return 0;
	return t->pfd[index].revents;
}

void dp_service_thread_kick(struct dp_service_thread *t)
{
	uint64_t one = 1;

	if (write(t->efd, &one, sizeof(one)) < 0) {
		/* EAGAIN: the counter is at its maximum, the thread wakes anyway. */
	}
}

pid_t dp_service_thread_tid(const struct dp_service_thread *t)
{
	return (pid_t)atomic_load_explicit(&t->tid, memory_order_acquire);
}

/*
 * One pass under a context reference. Return < 0 if the thread ends, 1 if
 * the context ended here (the service is freed: touch nothing), 0 to wait.
 */
static int service_thread_pass(struct dp_service_thread *t, int poll_error)
{
	struct daxpool_ctx *ctx = t->ctx;
	int r;

	if (!dp_refcnt_get_unless_zero(&ctx->ref)) {
		/* Being freed on another thread: its stop ends this one. Wait for it alone. */
		dp_service_thread_wait(t, -1);
		return 0;
	}
	if (poll_error) {
		log_err(ctx, "%s: poll: %s; the thread stops", t->ops->name, strerror(poll_error));
		r = -poll_error;
	} else {
		r = t->ops->pass(t);
	}
	daxpool_ctx_unref(ctx);
	if (atomic_load_explicit(&t->orphaned, memory_order_acquire)) {
		/* The unref above was the context's last: it is gone; so goes the service. */
		t->ops->free(t);
		return 1;
	}
	return r < 0 ? r : 0;
}

static void *service_thread_main(void *arg)
{
	struct dp_service_thread *t = arg;
	int poll_error = 0;

	while (!atomic_load_explicit(&t->stop, memory_order_acquire)) {
		uint64_t kicks;

		if (service_thread_pass(t, poll_error) != 0)
			return NULL;
		if (poll(t->pfd, t->n_pfd, t->timeout_ms) < 0 && errno != EINTR)
			poll_error = errno;
		if ((t->pfd[0].revents & POLLIN) && read(t->efd, &kicks, sizeof(kicks)) < 0) {
			/* EAGAIN: nothing left to read. */
		}
	}
	return NULL;
}

/* Let the start return once the thread runs (its tid is known). */
struct service_thread_start {
	struct dp_service_thread *t;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	bool running;
};

static void *service_thread_first(void *arg)
{
	struct service_thread_start *s = arg;
	struct dp_service_thread *t = s->t;

	atomic_store_explicit(&t->tid, (int)syscall(SYS_gettid), memory_order_release);
	pthread_mutex_lock(&s->lock);
	s->running = true;
	pthread_cond_signal(&s->cond);
	pthread_mutex_unlock(&s->lock);
	/* s is the starter's and gone from here on. */
	return service_thread_main(t);
}

int dp_service_thread_start(struct dp_service_thread *t)
{
	struct service_thread_start s = { .t = t, .running = false };
	sigset_t all, old;
	int r;

	if (t->started)
		return -EALREADY;
	pthread_mutex_init(&s.lock, NULL);
	pthread_cond_init(&s.cond, NULL);
	sigfillset(&all);
	/* A fault's signal must stay deliverable: blocked, the kernel kills the process. */
	sigdelset(&all, SIGBUS);
	sigdelset(&all, SIGSEGV);
	sigdelset(&all, SIGFPE);
	sigdelset(&all, SIGILL);
	sigdelset(&all, SIGTRAP);
	sigdelset(&all, SIGSYS);
	/* Set before the thread exists: its own stop (its context ending there) reads it. */
	t->started = true;
	pthread_sigmask(SIG_SETMASK, &all, &old);
	r = -pthread_create(&t->thread, NULL, service_thread_first, &s);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (r < 0) {
		t->started = false;
	} else {
		pthread_mutex_lock(&s.lock);
		while (!s.running)
			pthread_cond_wait(&s.cond, &s.lock);
		pthread_mutex_unlock(&s.lock);
	}
	pthread_cond_destroy(&s.cond);
	pthread_mutex_destroy(&s.lock);
	return r;
}

void dp_service_thread_stop(struct dp_service_thread *t)
{
	if (t->started && t->fork_gen == atomic_load(&dp_fork_generation)) {
		/* By tid: t->thread may not be stored yet when the thread's first pass runs. */
		if (dp_service_thread_tid(t) == (pid_t)syscall(SYS_gettid)) {
			/* The context's last reference went on the thread: see service_thread_pass(). */
			pthread_detach(pthread_self());
			atomic_store_explicit(&t->orphaned, true, memory_order_release);
			return;
		}
		atomic_store_explicit(&t->stop, true, memory_order_release);
		dp_service_thread_kick(t);
		pthread_join(t->thread, NULL);
	}
	/* Never started, joined, or a child's copy of the parent's. */
	t->ops->free(t);
}
