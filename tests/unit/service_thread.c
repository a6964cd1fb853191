/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The service thread helper (lib/services/service_thread.c), from inside (linked with
 * the static library): start, kick, the wait set, stop; a context whose
 * last reference goes while a pass runs ends on the thread and the service
 * is freed there, after the pass, not under it; a service never started is
 * freed by its stop.
 */
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <sys/syscall.h>
#include <syslog.h>
#include <time.h>

#include "daxpool.h"
#include "harness.h"
#include "services/services.h"

/* A test service around one thread. */
struct svc {
	struct dp_service_thread t;
	atomic_int passes;
	int fd; /* watched when >= 0 */
	atomic_int seen; /* POLLIN seen on fd by a pass */
	/* The pass blocks until released when set (hold); then it touches the context. */
	bool hold;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	bool in_pass, released;
	void *userdata_seen;
};

/* What happened, in order: 'p' a held pass ended, 'c' the service's ctx_fini, 'f' its free. */
static char order[8];
static atomic_int n_claimed, n_order; /* n_order counts the entries written */
static atomic_int free_tid, fini_tid, ctx_free_tid;
static struct svc *the_svc;

static void note(char c)
{
	int i = atomic_fetch_add(&n_claimed, 1);

	if (i < (int)sizeof(order) - 1)
		order[i] = c;
	/* Counted once written: who reads n_order sees the entries before it. */
	atomic_fetch_add(&n_order, 1);
}

static int gettid_(void)
{
	return (int)syscall(SYS_gettid);
}

/* Waits of the test are bounded (10 s): a failure fails, never hangs. */
static bool wait_until(atomic_int *v, int at_least)
{
	for (int i = 0; i < 10000; i++) {
		if (atomic_load(v) >= at_least)
			return true;
		nanosleep(&(struct timespec){ 0, 1000000 }, NULL);
	}
	return false;
}

static int svc_pass(struct dp_service_thread *t)
{
	struct svc *s = dp_container_of(t, struct svc, t);
	int idx = 1;

	if (s->fd >= 0 && (dp_service_thread_revents(t, idx) & POLLIN)) {
		char b;

		if (read(s->fd, &b, 1) == 1)
			atomic_fetch_add(&s->seen, 1);
	}
	if (s->hold) {
		pthread_mutex_lock(&s->lock);
		s->in_pass = true;
		pthread_cond_broadcast(&s->cond);
		while (!s->released)
			pthread_cond_wait(&s->cond, &s->lock);
		pthread_mutex_unlock(&s->lock);
		s->hold = false;
		/* The application dropped its reference meanwhile: the pass still has the context. */
		s->userdata_seen = daxpool_ctx_get_userdata(t->ctx);
		note('p');
	}
	dp_service_thread_wait(t, -1);
	if (s->fd >= 0 && dp_service_thread_watch(t, s->fd, POLLIN) != idx)
		return -EINVAL;
	atomic_fetch_add(&s->passes, 1);
	return 0;
}

static void svc_free(struct dp_service_thread *t)
{
	struct svc *s = dp_container_of(t, struct svc, t);

	atomic_store(&free_tid, gettid_());
	note('f');
	dp_service_thread_fini(t);
	pthread_mutex_destroy(&s->lock);
	pthread_cond_destroy(&s->cond);
	free(s);
}

static const struct dp_service_thread_ops svc_ops = {
	.name = "test service",
	.pass = svc_pass,
	.free = svc_free,
};

static void svc_ctx_fini(struct daxpool_ctx *ctx)
{
	(void)ctx;
	atomic_store(&fini_tid, gettid_());
	note('c');
	dp_service_thread_stop(&the_svc->t);
}

static const struct dp_service svc_service = {
	.name = "test service",
	.ctx_fini = svc_ctx_fini,
};

__attribute__((format(printf, 6, 0))) static void log_ctx_free(struct daxpool_ctx *ctx, int priority,
							       const char *file, int line,
							       const char *fn, const char *format,
							       va_list args)
{
	char msg[256];

	(void)ctx, (void)priority, (void)file, (void)line, (void)fn;
	vsnprintf(msg, sizeof(msg), format, args);
	if (strstr(msg, "context") && strstr(msg, "freed"))
		atomic_store(&ctx_free_tid, gettid_());
}

/* A core context with the test service plugged in, and the service made (not started). */
static struct daxpool_ctx *ctx_with_service(int fd, bool hold)
{
	struct daxpool_ctx *ctx;
	struct svc *s;

	CHECK_OK(dp_ctx_new(&ctx));
	daxpool_ctx_set_log_fn(ctx, log_ctx_free);
	CHECK_OK(daxpool_ctx_set_log_priority(ctx, LOG_INFO));
	s = calloc(1, sizeof(*s));
	CHECK(s);
	s->fd = fd;
	s->hold = hold;
	pthread_mutex_init(&s->lock, NULL);
	pthread_cond_init(&s->cond, NULL);
	CHECK_OK(dp_service_thread_init(&s->t, ctx, &svc_ops));
	the_svc = s;
	ctx->services[0] = &svc_service;
	return ctx;
}

TEST(a_kick_runs_a_pass_and_the_stop_joins_and_frees)
{
	struct daxpool_ctx *ctx = ctx_with_service(-1, false);
	struct svc *s = the_svc;
	int n;

	CHECK_EQ(dp_service_thread_tid(&s->t), 0);
	CHECK_OK(dp_service_thread_start(&s->t));
	/* Known when the start returns. */
	CHECK(dp_service_thread_tid(&s->t) > 0);
	CHECK(dp_service_thread_tid(&s->t) != gettid_());
	CHECK_EQ(dp_service_thread_start(&s->t), -EALREADY);
	CHECK(wait_until(&s->passes, 1));
	for (int k = 0; k < 3; k++) {
		n = atomic_load(&s->passes);
		dp_service_thread_kick(&s->t);
		CHECK(wait_until(&s->passes, n + 1));
	}
	/* The application's last unref, the thread waiting: joined and freed on this thread. */
	daxpool_ctx_unref(ctx);
	CHECK_EQ(atomic_load(&n_order), 2);
	CHECK(memcmp(order, "cf", 2) == 0);
	CHECK_EQ(atomic_load(&free_tid), gettid_());
	CHECK_EQ(atomic_load(&ctx_free_tid), gettid_());
}

TEST(a_pass_sees_what_its_wait_saw)
{
	struct daxpool_ctx *ctx;
	struct svc *s;
	int p[2];

	CHECK_OK(pipe(p));
	ctx = ctx_with_service(p[0], false);
	s = the_svc;
	CHECK_OK(dp_service_thread_start(&s->t));
	CHECK(wait_until(&s->passes, 1));
	for (int k = 1; k <= 3; k++) {
		CHECK_EQ(write(p[1], "x", 1), 1);
		CHECK(wait_until(&s->seen, k));
	}
	daxpool_ctx_unref(ctx);
	CHECK_EQ(atomic_load(&free_tid), gettid_());
	close(p[0]);
	close(p[1]);
}

TEST(a_context_ending_during_a_pass_ends_on_the_thread_after_the_pass)
{
	struct daxpool_ctx *ctx = ctx_with_service(-1, true);
	struct svc *s = the_svc;
	int tid;

	daxpool_ctx_set_userdata(ctx, &tid);
	CHECK_OK(dp_service_thread_start(&s->t));
	tid = dp_service_thread_tid(&s->t);
	pthread_mutex_lock(&s->lock);
	while (!s->in_pass)
		pthread_cond_wait(&s->cond, &s->lock);
	pthread_mutex_unlock(&s->lock);
	/* The pass holds the context: this unref is not the last and frees nothing. */
	daxpool_ctx_unref(ctx);
	CHECK_EQ(atomic_load(&n_order), 0);
	CHECK_EQ(atomic_load(&ctx_free_tid), 0);
	pthread_mutex_lock(&s->lock);
	s->released = true;
	pthread_cond_broadcast(&s->cond);
	pthread_mutex_unlock(&s->lock);
	/* The helper's unref after the pass is the last: all of it on the thread, in order. */
	CHECK(wait_until(&n_order, 3));
	CHECK(memcmp(order, "pcf", 3) == 0);
	CHECK_EQ(atomic_load(&fini_tid), tid);
	CHECK_EQ(atomic_load(&free_tid), tid);
	CHECK_EQ(atomic_load(&ctx_free_tid), tid);
}

TEST(a_service_never_started_is_freed_by_its_stop)
{
	struct daxpool_ctx *ctx = ctx_with_service(-1, false);

	CHECK_EQ(dp_service_thread_tid(&the_svc->t), 0);
	daxpool_ctx_unref(ctx);
	CHECK(memcmp(order, "cf", 2) == 0);
	CHECK_EQ(atomic_load(&free_tid), gettid_());
}
