// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * File leases: noticing another process that opens or truncates a region's
 * file, and draining the region before it goes on.
 *
 * A read-write region on a regular file takes a write lease (F_SETLEASE
 * F_WRLCK) on its descriptor when the kernel grants one: the descriptor must
 * be the file's only opener. When another process opens or truncates the
 * file, the kernel signals the lease holder and makes that process wait until
 * the lease is given up or /proc/sys/fs/lease-break-time passes. A lease
 * break does nothing to page references, so the drain is ours: zap the whole
 * region (the revoke functions run), wait until its maps and pins are gone,
 * then give the lease up so the other process goes on.
 *
 * The signal must not reach the application: the break is signalled with
 * F_SETSIG to one thread of daxpool's own, named with F_SETOWN_EX
 * (F_OWNER_TID), which blocks every signal and reads the lease signal from a
 * signalfd. A thread-directed signal stays pending on that thread only, so no
 * other thread's mask or the process's dispositions matter. Both are set on
 * the descriptor before every F_SETLEASE: a lease asked for with no owner
 * makes the whole process the owner with SIGIO (default action: terminate),
 * and F_UNLCK clears owner and signal again. If the kernel's queue of
 * real-time signals overflows, it sends SIGIO instead (to the same thread):
 * the thread reads that too, and on any wakeup checks every leased region
 * with F_GETLEASE, which reports a pending break as F_UNLCK.
 *
 * The application may use SIGIO and SIGRTMAX-6 itself, process-directed
 * (O_ASYNC, kill(), sigqueue()). A signalfd reads those too, so the watcher
 * reads only what is pending on its own thread (SigPnd of
 * /proc/thread-self/status, and a signalfd mask of exactly those signals:
 * the kernel dequeues a thread's own signals before the process's). While a
 * process-directed one waits for an application thread, the watcher polls
 * every LEASE_SHARED_POLL_MS instead of waking on the signalfd.
 *
 * Another daxpool process is not an outsider: before it opens a file it
 * connects to the abstract unix socket the lease holder's watcher listens on
 * for that file ("daxpool-lease-DEV-INO"), and the holder gives its lease up
 * without revoking anything (the file is then shared, and neither process
 * holds a lease). So only opens and truncates from outside daxpool revoke.
 * Only a peer of the same user (or root) is heard.
 *
 * One watcher thread per context, started with the first lease the kernel
 * grants (lease_take() says how the signal is directed until then) and
 * stopped when the context goes (a region holds a context reference, so no
 * lease is left by then): a service thread (service_thread.h), whose passes
 * hold the context, so a yield or a break's end that drops a region's last
 * reference never frees the context under the watcher.
 *
 * The rendezvous sockets (the peer listeners and the file lease locks) are
 * abstract names that stay bound while any descriptor of them is open: a
 * child of fork() that never execs would keep them, and a daxpool process
 * opening the file would then wait for an answer nobody gives. So every one
 * of them is listed, and the atfork child handler closes them all
 * (lease_atfork_child()). Another user can bind the names first: a
 * listener or lock held by a process of another user (not root) is not
 * waited for, and connecting never blocks.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <unistd.h>

#include "services.h"

/* The signal the kernel sends on a break (thread-directed to the watcher, blocked there). */
#define LEASE_SIGNAL (SIGRTMAX - 6)
#define LEASE_BREAK_TIME "/proc/sys/fs/lease-break-time"
#define LEASE_PEER_MAGIC 0x44504c53u /* a peer's announcement: magic, then its pid */
#define LEASE_PEER_WAIT_MS 2000
#define LEASE_SHARED_POLL_MS 20
#define LEASE_BREAK_POLL_MS 2 /* how often breaks in progress are checked for idle */

/* A listening socket for peers of one leased region; the watcher's own. */
struct lease_listener {
	struct daxpool_region *region; /* compared, never dereferenced unlisted */
	uint64_t dev, ino;
	int fd;
	bool seen;
};

/*
 * A break being drained: the region is zapped, the lease is given up once
 * the region is idle or at the deadline. The watcher's alone.
 */
struct lease_break {
	struct daxpool_region *region; /* a reference */
	uint64_t t0, deadline;	       /* CLOCK_MONOTONIC ns */
	int budget_ms;
	int zap_error; /* the zap failed: give the lease up at once */
};

struct dp_lease_watcher {
	/* The thread (service_thread.h); kicked when the set of leased regions changed. */
	struct dp_service_thread t;
	struct daxpool_ctx *ctx;
	int sfd; /* signalfd: LEASE_SIGNAL and SIGIO */
	/* The watcher thread's alone from here on. */
	bool shared;		   /* an application's signal is pending: poll, not the signalfd */
	struct lease_listener *ls; /* ls[i] is at index ls_index + i of the wait, i < n_ls_waited */
	size_t n_ls, n_ls_waited;
	int ls_index;
	/*
	 * Breaks in progress, each with its own deadline (the watcher's alone):
	 * a second break is drained beside the first, never after it, so it
	 * does not overrun the kernel's break time while the first waits.
	 */
	struct lease_break *brk;
	size_t n_brk, cap_brk;
};

/*
 * The abstract unix socket address "daxpool-@what-DEV-INO" of a file: "lease"
 * for the holder's peer listener, "lease-lock" for the file's lease lock.
 */
static socklen_t lease_addr(const char *what, uint64_t dev, uint64_t ino, struct sockaddr_un *sa)
{
	int n;

	memset(sa, 0, sizeof(*sa));
	sa->sun_family = AF_UNIX;
	n = snprintf(sa->sun_path + 1, sizeof(sa->sun_path) - 1, "daxpool-%s-%llx-%llx", what,
		     (unsigned long long)dev, (unsigned long long)ino);
	return (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + (size_t)n);
}

/*
 * Every rendezvous socket of this process (listeners, their watcher copies,
 * file lease locks, announcements), closed in a child of fork(): the child's
 * copies of the parent's objects are foreign there and never used again.
 * lease_fds_lock is taken by the atfork prepare handler, so a socket is
 * either listed and closed in the child, or made after the fork.
 */
static pthread_mutex_t lease_fds_lock = PTHREAD_MUTEX_INITIALIZER;
static int *lease_fds;
static size_t lease_n_fds, lease_cap_fds;

/* Room for one more listed socket. With lease_fds_lock held. */
static bool lease_fds_room(void)
{
	size_t cap;
	int *v;

	if (lease_n_fds < lease_cap_fds)
		return true;
	cap = lease_cap_fds ? lease_cap_fds * 2 : 16;
	v = realloc(lease_fds, cap * sizeof(*v));
	if (!v)
		return false;
	lease_fds = v;
	lease_cap_fds = cap;
	return true;
}

/* socket(AF_UNIX, @type | SOCK_CLOEXEC), listed. */
static int lease_socket(int type)
{
	int fd = -1;

	pthread_mutex_lock(&lease_fds_lock);
	if (!lease_fds_room())
		errno = ENOMEM;
	else if ((fd = socket(AF_UNIX, type | SOCK_CLOEXEC, 0)) >= 0)
		lease_fds[lease_n_fds++] = fd;
	pthread_mutex_unlock(&lease_fds_lock);
	return fd;
}

/* F_DUPFD_CLOEXEC of a rendezvous socket, listed. */
static int lease_dup(int fd)
{
	int nfd = -1;

	pthread_mutex_lock(&lease_fds_lock);
	if (lease_fds_room() && (nfd = fcntl(fd, F_DUPFD_CLOEXEC, 3)) >= 0)
		lease_fds[lease_n_fds++] = nfd;
	pthread_mutex_unlock(&lease_fds_lock);
	return nfd;
}

/*
 * close() of a listed socket. One not listed was closed by the atfork child
 * handler (its number may be another file's by now): left alone.
 */
static void lease_close(int fd)
{
	if (fd < 0)
		return;
	pthread_mutex_lock(&lease_fds_lock);
	for (size_t i = 0; i < lease_n_fds; i++)
		if (lease_fds[i] == fd) {
			lease_fds[i] = lease_fds[--lease_n_fds];
			close(fd);
			break;
		}
	pthread_mutex_unlock(&lease_fds_lock);
}

static void lease_atfork_prepare(void)
{
	pthread_mutex_lock(&lease_fds_lock);
}

static void lease_atfork_parent(void)
{
	pthread_mutex_unlock(&lease_fds_lock);
}

static void lease_atfork_child(void)
{
	for (size_t i = 0; i < lease_n_fds; i++)
		close(lease_fds[i]);
	lease_n_fds = 0;
	pthread_mutex_init(&lease_fds_lock, NULL);
}

/* Whether the process behind a connected unix socket is of this user or root. */
static bool lease_peer_trusted(int fd, struct ucred *cred)
{
	socklen_t len = sizeof(*cred);

	return getsockopt(fd, SOL_SOCKET, SO_PEERCRED, cred, &len) == 0 &&
	       (cred->uid == 0 || cred->uid == geteuid());
}

/*
 * A short cross-process lock per file, so that "announce, then open" (a
 * process about to open the file) and "listen, then lease" (a process taking
 * the lease) never interleave: otherwise a lease taken between another
 * process's unanswered announcement and its open would be broken by that
 * open as if it were an outsider's. The lock is an abstract unix socket
 * bound under a name of the file: bind() succeeds for one holder at a time,
 * and the kernel releases it when the holder closes it or dies. Held for
 * milliseconds; after LEASE_FILE_LOCK_MS of waiting, go on without it.
 */
#define LEASE_FILE_LOCK_MS 5000

/*
 * Whether the holder of a file's lease lock is of another user (not root):
 * a squatter, not waited for. The lock listens, so a waiter can ask the
 * kernel who bound it; a holder between bind() and listen() is not known yet.
 */
static bool lease_lock_squatted(const struct sockaddr_un *sa, socklen_t len)
{
	struct ucred cred;
	bool squatted = false;
	int fd = lease_socket(SOCK_SEQPACKET | SOCK_NONBLOCK);

	if (fd < 0)
		return false;
	if (connect(fd, (const struct sockaddr *)sa, len) == 0)
		squatted = !lease_peer_trusted(fd, &cred);
	lease_close(fd);
	return squatted;
}

static int lease_file_lock(struct daxpool_ctx *ctx, uint64_t dev, uint64_t ino)
{
	struct sockaddr_un sa;
	socklen_t len = lease_addr("lease-lock", dev, ino, &sa);
	int fd;

	fd = lease_socket(SOCK_SEQPACKET | SOCK_NONBLOCK);
	if (fd < 0)
		return -1;
	for (int waited = 0; bind(fd, (struct sockaddr *)&sa, len) < 0; waited++) {
		int err = errno;
		const char *why = err == EADDRINUSE ? "held too long" : strerror(err);

		/* Checked at once, then every 100 ms: the holder may change. */
		if (err == EADDRINUSE && waited % 100 == 0 && lease_lock_squatted(&sa, len)) {
			why = "bound by a process of another user";
			err = EPERM;
		}
		if (err != EADDRINUSE || waited >= LEASE_FILE_LOCK_MS) {
			log_info(ctx, "cannot take the lease lock of a file (%s): going on without it",
				 why);
			lease_close(fd);
			return -1;
		}
		nanosleep(&(struct timespec){ 0, 1000000 }, NULL);
	}
	/* A waiter asks who holds it (lease_lock_squatted()); nobody is accepted. */
	if (listen(fd, 1) < 0)
		log_dbg(ctx, "lease lock of a file: listen: %m");
	return fd;
}

static void lease_file_unlock(int lock)
{
	lease_close(lock);
}

/*
 * Set the state; a lease no longer held stops listening for peers (the
 * watcher drops its own descriptor of the listener at its next pass).
 * With region->lock held, except before the region is visible.
 */
static void lease_set_state(struct daxpool_region *region, int state, int err)
{
	atomic_store_explicit(&region->lease_error, err, memory_order_relaxed);
	atomic_store_explicit(&region->lease_state, state, memory_order_release);
	if (state != DAXPOOL_LEASE_HELD && region->lease_sock >= 0) {
		lease_close(region->lease_sock);
		region->lease_sock = -1;
	}
}

/*
 * Give a held lease up: the new state first (nobody reads HELD once the other
 * process goes on), then F_UNLCK. With region->lock held. Return: 0 or -errno
 * of the unlock (-EAGAIN: the kernel broke it already).
 */
static int lease_drop(struct daxpool_region *region, int state, int err)
{
	lease_set_state(region, state, err);
	if (region->fd >= 0 && fcntl(region->fd, F_SETLEASE, F_UNLCK) < 0)
		return -errno;
	return 0;
}

/* Listen for other daxpool processes that open the file: -1 if that cannot be. */
static int lease_listen(struct daxpool_region *region)
{
	struct sockaddr_un sa;
	socklen_t len = lease_addr("lease", region->file_dev, region->file_ino, &sa);
	int fd = lease_socket(SOCK_SEQPACKET | SOCK_NONBLOCK);

	if (fd >= 0 && (bind(fd, (struct sockaddr *)&sa, len) < 0 || listen(fd, 8) < 0)) {
		log_info(region->ctx, "%s: cannot listen for other daxpool processes (%m): their "
				      "opens will revoke the region as an outsider's would",
			 region->path);
		lease_close(fd);
		fd = -1;
	}
	return fd;
}

/* The kernel's lease-break time in ms (45 s when it cannot be read). */
static int lease_break_time_ms(void)
{
	FILE *f = fopen(LEASE_BREAK_TIME, "re");
	int s = 45;

	if (f) {
		if (fscanf(f, "%d", &s) != 1 || s < 0)
			s = 45;
		fclose(f);
	}
	return s > 2000000 ? 2000000000 : s * 1000;
}

/*
 * Begin the drain of a region whose lease is breaking: zap it (the revoke
 * functions run here, in the watcher) and set its deadline. False if the
 * lease was given up by daxpool itself meanwhile: not a break. The watcher
 * thread only; takes and drops the region's lock itself.
 */
static bool lease_break_begin(struct daxpool_region *region, struct lease_break *b)
{
	struct daxpool_ctx *ctx = region->ctx;
	int budget = lease_break_time_ms(), r;

	pthread_mutex_lock(&region->lock);
	if (atomic_load_explicit(&region->lease_state, memory_order_relaxed) != DAXPOOL_LEASE_HELD) {
		pthread_mutex_unlock(&region->lock);
		return false;
	}
	pthread_mutex_unlock(&region->lock);
	/* Leave the kernel a margin: give the lease up before it breaks it itself. */
	budget -= budget / 2 < 1000 ? budget / 2 : 1000;
	log_warn(ctx, "%s: another process opens or truncates the file: revoking the region "
		      "before it goes on (up to %d ms)", region->path, budget);
	*b = (struct lease_break){ .region = region, .t0 = dp_now_ns(), .budget_ms = budget };
	b->deadline = b->t0 + (uint64_t)budget * 1000000u;
	r = daxpool_region_zap(region);
	if (r < 0) {
		log_err(ctx, "%s: could not drain before the lease break: %s", region->path,
			strerror(-r));
		b->zap_error = r;
	}
	return true;
}

/* Give the lease up: the other process goes on. The watcher thread only. */
static void lease_break_end(struct lease_break *b, bool drained)
{
	struct daxpool_region *region = b->region;
	struct daxpool_ctx *ctx = region->ctx;
	int r;

	pthread_mutex_lock(&region->lock);
	/* Said before the other process can go on. */
	atomic_fetch_add_explicit(&region->lease_breaks, 1, memory_order_relaxed);
	r = lease_drop(region, DAXPOOL_LEASE_BROKEN, 0);
	pthread_mutex_unlock(&region->lock);
	if (r < 0 && r != -EAGAIN)
		log_err(ctx, "%s: giving the lease up: %s", region->path, strerror(-r));

	log_notice(ctx, "%s: lease given up to the other process %.3f ms after the break%s",
		   region->path, (double)(dp_now_ns() - b->t0) / 1e6,
		   drained ? ", with the region drained" : "");
	dp_services_call(region->ctx, region_state, region);
}

/*
 * Whether a break in progress is over (idle, or at its deadline): then its
 * lease is given up. Never sleeps on the region: each break has its own
 * deadline. The watcher thread only.
 */
static bool lease_break_poll(struct lease_break *b, uint64_t now)
{
	struct daxpool_region *region = b->region;
	char *report = NULL;
	int r;

	if (b->zap_error) {
		lease_break_end(b, false);
		return true;
	}
	/* A check: quiet, no report. -ESRCH: unzapped meanwhile, nothing left to wait for. */
	r = daxpool_region_wait_idle(region, 0, NULL);
	if (r == 0 || r == -ESRCH) {
		lease_break_end(b, true);
		return true;
	}
	if (now < b->deadline)
		return false;
	if (daxpool_region_wait_idle(region, 0, &report) == 0) {
		lease_break_end(b, true);
		return true;
	}
	log_err(region->ctx, "%s: still held after %d ms; giving the lease up anyway (the kernel "
			     "would break it now): %s",
		region->path, b->budget_ms, report ? report : "holders unknown");
	free(report);
	lease_break_end(b, false);
	return true;
}

/*
 * Drain a region whose lease is breaking and give the lease up, waiting in
 * this thread: only when there is no memory to track the break beside
 * others. The watcher thread only.
 */
static void lease_break_now(struct daxpool_region *region)
{
	struct lease_break b;

	if (!lease_break_begin(region, &b))
		return;
	if (!b.zap_error)
		daxpool_region_wait_idle(region, b.budget_ms, NULL);
	lease_break_poll(&b, UINT64_MAX);
}

/* Regions whose lease is breaking, with a reference each; NULL-terminated, or NULL. */
static struct daxpool_region **lease_collect_breaking(struct daxpool_ctx *ctx)
{
	struct daxpool_region **v = NULL;
	size_t n = 0, cap = 0;
	struct dp_list *pos;

	pthread_mutex_lock(&ctx->regions_lock);
	dp_list_for_each(pos, &ctx->regions) {
		struct daxpool_region *region = dp_container_of(pos, struct daxpool_region, ctx_node);
		int type;

		if (atomic_load_explicit(&region->lease_state, memory_order_acquire) !=
		    DAXPOOL_LEASE_HELD)
			continue;
		pthread_mutex_lock(&region->lock);
		/* Still held? A lease given up meanwhile (state changed under lock) reads F_UNLCK too. */
		if (atomic_load_explicit(&region->lease_state, memory_order_relaxed) ==
			    DAXPOOL_LEASE_HELD &&
		    region->fd >= 0)
			type = fcntl(region->fd, F_GETLEASE);
		else
			type = F_WRLCK;
		pthread_mutex_unlock(&region->lock);
		/* A pending break reads as the type it breaks to. */
		if (type == F_WRLCK)
			continue;
		/*
		 * Room first, then the reference: an unref here could be the
		 * last, and freeing a region takes regions_lock (held).
		 */
		if (n + 2 > cap) {
			struct daxpool_region **nv;

			nv = realloc(v, (cap ? cap * 2 : 8) * sizeof(*v));
			if (!nv)
				break; /* the next wakeup finds the rest */
			v = nv;
			cap = cap ? cap * 2 : 8;
		}
		if (!dp_refcnt_get_unless_zero(&region->ref))
			continue;
		v[n++] = region;
		v[n] = NULL;
	}
	pthread_mutex_unlock(&ctx->regions_lock);
	return v;
}


/* Wake the watcher so it listens for peers of a new lease (or stops listening). */
static void lease_kick(struct daxpool_ctx *ctx)
{
	pthread_mutex_lock(&ctx->lease_lock);
	if (ctx->lease_watcher)
		dp_service_thread_kick(&ctx->lease_watcher->t);
	pthread_mutex_unlock(&ctx->lease_lock);
}

/* Listen for peers of every held lease, and only those. The watcher thread only. */
static void lease_sync_listeners(struct dp_lease_watcher *w)
{
	struct daxpool_ctx *ctx = w->ctx;
	struct dp_list *pos;
	size_t kept = 0;

	for (size_t i = 0; i < w->n_ls; i++)
		w->ls[i].seen = false;
	pthread_mutex_lock(&ctx->regions_lock);
	dp_list_for_each(pos, &ctx->regions) {
		struct daxpool_region *region = dp_container_of(pos, struct daxpool_region, ctx_node);
		struct lease_listener *l = NULL, *nls;
		int fd;

		if (atomic_load_explicit(&region->lease_state, memory_order_acquire) !=
		    DAXPOOL_LEASE_HELD)
			continue;
		for (size_t i = 0; i < w->n_ls && !l; i++)
			if (w->ls[i].region == region && w->ls[i].dev == region->file_dev &&
			    w->ls[i].ino == region->file_ino)
				l = &w->ls[i];
		if (l) {
			l->seen = true;
			continue;
		}
		nls = realloc(w->ls, (w->n_ls + 1) * sizeof(*w->ls));
		if (!nls)
			break;
		w->ls = nls;
		/* Our own descriptor of the region's listener: the region may close its own any time. */
		pthread_mutex_lock(&region->lock);
		fd = region->lease_sock >= 0 ? lease_dup(region->lease_sock) : -1;
		pthread_mutex_unlock(&region->lock);
		w->ls[w->n_ls++] = (struct lease_listener){ region, region->file_dev,
							    region->file_ino, fd, true };
	}
	pthread_mutex_unlock(&ctx->regions_lock);
	for (size_t i = 0; i < w->n_ls; i++) {
		if (w->ls[i].seen)
			w->ls[kept++] = w->ls[i];
		else
			lease_close(w->ls[i].fd);
	}
	w->n_ls = kept;
}

/* Give the lease up to another daxpool process: no revoke; the file is shared from now on. */
static void lease_yield_to_peer(struct dp_lease_watcher *w, struct lease_listener *l, pid_t peer)
{
	struct daxpool_ctx *ctx = w->ctx;
	struct daxpool_region *region = NULL;
	struct dp_list *pos;
	bool gave = false;

	pthread_mutex_lock(&ctx->regions_lock);
	dp_list_for_each(pos, &ctx->regions)
		if (dp_container_of(pos, struct daxpool_region, ctx_node) == l->region) {
			if (dp_refcnt_get_unless_zero(&l->region->ref))
				region = l->region;
			break;
		}
	pthread_mutex_unlock(&ctx->regions_lock);
	if (!region)
		return;
	dp_test_delay("DAXPOOL_TEST_LEASE_YIELD_DELAY_MS");
	pthread_mutex_lock(&region->lock);
	if (region->file_dev == l->dev && region->file_ino == l->ino &&
	    atomic_load_explicit(&region->lease_state, memory_order_relaxed) ==
		    DAXPOOL_LEASE_HELD) {
		lease_drop(region, DAXPOOL_LEASE_REFUSED, -EAGAIN);
		gave = true;
	}
	pthread_mutex_unlock(&region->lock);
	if (gave) {
		log_info(ctx, "%s: daxpool process %d opens the file too: the write lease is given "
			      "up (the file is shared)", region->path, (int)peer);
		dp_services_call(region->ctx, region_state, region);
	}
	/* Not the context's last: the pass holds one (service_thread.h). */
	daxpool_region_unref(region);
}

/* A peer connected to a listener: hear it out (briefly), yield, answer. */
static void lease_peer_accept(struct dp_lease_watcher *w, struct lease_listener *l)
{
	struct ucred cred;
	uint32_t msg[2];
	struct pollfd p;
	int c;

	c = accept4(l->fd, NULL, NULL, SOCK_CLOEXEC);
	if (c < 0)
		return;
	p = (struct pollfd){ .fd = c, .events = POLLIN };
	if (lease_peer_trusted(c, &cred) && poll(&p, 1, 500) == 1 &&
	    recv(c, msg, sizeof(msg), MSG_DONTWAIT) == sizeof(msg) && msg[0] == LEASE_PEER_MAGIC &&
	    (pid_t)msg[1] == cred.pid) {
		lease_yield_to_peer(w, l, cred.pid);
		(void)send(c, "y", 1, MSG_NOSIGNAL | MSG_DONTWAIT);
	}
	close(c);
}

static void lease_watcher_free(struct dp_lease_watcher *w)
{
	for (size_t i = 0; i < w->n_ls; i++)
		lease_close(w->ls[i].fd);
	free(w->ls);
	/*
	 * Each break holds a region, and so the context: none is left when the
	 * context goes, but in a child of fork() the list is the parent's copy.
	 */
	free(w->brk);
	if (w->sfd >= 0)
		close(w->sfd);
	dp_service_thread_fini(&w->t);
	free(w);
}

static void lease_thread_free(struct dp_service_thread *t)
{
	lease_watcher_free(dp_container_of(t, struct dp_lease_watcher, t));
}

/*
 * The signals pending on this thread itself (SigPnd of its status; the
 * process's own pending set is ShdPnd), as a mask of bit sig - 1; or
 * UINT64_MAX when it cannot be read.
 */
static uint64_t lease_thread_pending(void)
{
	char buf[4096], *p;
	uint64_t mask = UINT64_MAX;
	ssize_t n;
	int fd;

	fd = open("/proc/thread-self/status", O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return mask;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return mask;
	buf[n] = '\0';
	p = strstr(buf, "\nSigPnd:");
	if (p)
		mask = strtoull(p + strlen("\nSigPnd:"), NULL, 16);
	return mask;
}

/*
 * Read the lease signals directed to the watcher thread, and only those: a
 * process-directed SIGIO or LEASE_SIGNAL is the application's. Each read
 * has a signalfd mask of one signal known to be pending on this thread, so
 * the kernel dequeues this thread's instance, never the process's. Return:
 * whether a signal is pending for the process that is not ours to read
 * (the caller then stops polling the signalfd for a while).
 */
static bool lease_read_signals(struct dp_lease_watcher *w)
{
	const int sigs[] = { LEASE_SIGNAL, SIGIO };
	struct signalfd_siginfo si;
	sigset_t one, both;
	uint64_t pnd = lease_thread_pending();
	bool shared = false;

	if (pnd == UINT64_MAX) {
		/* No /proc: read them all, as a signalfd would. */
		while (read(w->sfd, &si, sizeof(si)) > 0)
			;
		return false;
	}
	for (int budget = 64; budget > 0; budget--) {
		int sig = 0;

		for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]) && !sig; i++)
			if (pnd & (1ull << (sigs[i] - 1)))
				sig = sigs[i];
		if (!sig)
			break;
		sigemptyset(&one);
		sigaddset(&one, sig);
		if (signalfd(w->sfd, &one, 0) < 0 || read(w->sfd, &si, sizeof(si)) < 0)
			break;
		pnd = lease_thread_pending();
	}
	sigemptyset(&both);
	for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++)
		sigaddset(&both, sigs[i]);
	if (signalfd(w->sfd, &both, 0) < 0)
		log_dbg(w->ctx, "lease watcher: signalfd: %m");
	/* Still readable with nothing of ours pending: the process's own. */
	{
		struct pollfd p = { .fd = w->sfd, .events = POLLIN };

		shared = poll(&p, 1, 0) == 1 && (lease_thread_pending() &
						 ((1ull << (LEASE_SIGNAL - 1)) | (1ull << (SIGIO - 1)))) == 0;
	}
	return shared;
}

/*
 * Take up the breaks just noticed (@v: regions with a reference each, as
 * lease_collect_breaking() gives them), beside those in progress. The
 * watcher thread only.
 */
static void lease_breaks_begin(struct dp_lease_watcher *w, struct daxpool_region **v)
{
	for (size_t i = 0; v && v[i]; i++) {
		struct daxpool_region *region = v[i];
		bool known = false;

		for (size_t j = 0; j < w->n_brk && !known; j++)
			known = w->brk[j].region == region;
		if (!known && w->n_brk == w->cap_brk) {
			size_t cap = w->cap_brk ? 2 * w->cap_brk : 4;
			struct lease_break *nb = realloc(w->brk, cap * sizeof(*nb));

			if (nb) {
				w->brk = nb;
				w->cap_brk = cap;
			}
		}
		if (known) {
			/* In progress: the list's reference keeps it, this one is not the last. */
		} else if (w->n_brk < w->cap_brk) {
			if (lease_break_begin(region, &w->brk[w->n_brk])) {
				w->n_brk++;
				continue; /* the list keeps the reference */
			}
		} else {
			lease_break_now(region);
		}
		daxpool_region_unref(region);
	}
}

/*
 * Move the breaks in progress on (the watcher polls every LEASE_BREAK_POLL_MS
 * while any is left). The watcher thread only.
 */
static void lease_breaks_poll(struct dp_lease_watcher *w)
{
	uint64_t now = dp_now_ns();

	for (size_t i = 0; i < w->n_brk;) {
		struct daxpool_region *region = w->brk[i].region;

		if (!lease_break_poll(&w->brk[i], now)) {
			i++;
			continue;
		}
		w->brk[i] = w->brk[--w->n_brk];
		daxpool_region_unref(region);
	}
}

/*
 * One pass of the watcher: the peers that connected, the break signals, the
 * breaks (new ones, those in progress); then wait for the next signal, peer,
 * kick or break poll. No reference it drops here is the context's last.
 */
static int lease_pass(struct dp_service_thread *t)
{
	struct dp_lease_watcher *w = dp_container_of(t, struct dp_lease_watcher, t);
	struct daxpool_region **v;
	int timeout;

	for (size_t i = 0; i < w->n_ls_waited; i++)
		if (dp_service_thread_revents(t, w->ls_index + (int)i))
			lease_peer_accept(w, &w->ls[i]);
	/* Drain our signals; which fd they name does not matter: check them all. */
	w->shared = lease_read_signals(w);
	v = lease_collect_breaking(w->ctx);
	lease_breaks_begin(w, v);
	free(v);
	lease_breaks_poll(w);

	lease_sync_listeners(w);
	/* An application's signal pending on the process: poll for ours instead. */
	timeout = w->shared ? LEASE_SHARED_POLL_MS : -1;
	if (w->n_brk)
		timeout = LEASE_BREAK_POLL_MS;
	dp_service_thread_wait(t, timeout);
	w->n_ls_waited = 0;
	if (!w->shared && dp_service_thread_watch(t, w->sfd, POLLIN) < 0)
		goto oom;
	w->ls_index = (int)t->n_pfd;
	for (size_t i = 0; i < w->n_ls; i++)
		if (dp_service_thread_watch(t, w->ls[i].fd, POLLIN) < 0)
			goto oom;
	w->n_ls_waited = w->n_ls;
	return 0;
oom:
	log_err(w->ctx, "lease watcher: out of memory; leases are no longer watched");
	return -ENOMEM;
}

static const struct dp_service_thread_ops lease_thread_ops = {
	.name = "lease watcher",
	.pass = lease_pass,
	.free = lease_thread_free,
};

/*
 * Start the context's watcher thread if it is not running. With
 * ctx->lease_lock held. Published in ctx->lease_watcher only once it runs.
 */
static int lease_watcher_start(struct daxpool_ctx *ctx)
{
	struct dp_lease_watcher *w;
	sigset_t set;
	int r;

	if (ctx->lease_watcher)
		return 0;
	w = calloc(1, sizeof(*w));
	if (!w)
		return -ENOMEM;
	w->ctx = ctx;
	w->sfd = -1;
	r = dp_service_thread_init(&w->t, ctx, &lease_thread_ops);
	if (r < 0) {
		free(w);
		goto fail;
	}
	sigemptyset(&set);
	sigaddset(&set, LEASE_SIGNAL);
	sigaddset(&set, SIGIO);
	w->sfd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
	/* The thread runs with both blocked: the lease signal stays pending for its signalfd. */
	r = w->sfd < 0 ? -errno : dp_service_thread_start(&w->t);
	if (r < 0) {
		/* Not published: nobody else has it. */
		lease_watcher_free(w);
		goto fail;
	}
	ctx->lease_watcher = w;
	return 0;
fail:
	log_err(ctx, "cannot start the lease watcher: %s", strerror(-r));
	return r;
}

/* Direct the lease's break signal to the watcher thread @tid. With region->lock held. */
static int lease_direct(struct daxpool_region *region, pid_t tid)
{
	struct f_owner_ex owner = { .type = F_OWNER_TID, .pid = tid };

	if (fcntl(region->fd, F_SETSIG, LEASE_SIGNAL) < 0 ||
	    fcntl(region->fd, F_SETOWN_EX, &owner) < 0)
		return -errno;
	return 0;
}

static const char *lease_refusal(int err)
{
	switch (err) {
	case -EAGAIN:
		return "the file is open elsewhere";
	case -EACCES:
		return "the file is not the caller's and it lacks CAP_LEASE";
	case -EINVAL:
		return "the filesystem does not support leases";
	default:
		return strerror(-err);
	}
}

/*
 * The break signals pending on the calling thread (a mask as from
 * lease_thread_pending()): 0 when /proc cannot tell.
 */
static uint64_t lease_own_pending(void)
{
	uint64_t pnd = lease_thread_pending();

	if (pnd == UINT64_MAX)
		return 0;
	return pnd & ((1ull << (LEASE_SIGNAL - 1)) | (1ull << (SIGIO - 1)));
}

/*
 * Take (or take again) the lease of a read-write file region. Any thread but
 * the watcher. The break signal is directed before the lease is asked for: a
 * lease asked for without an owner makes the process the owner with SIGIO,
 * whose default action terminates it. With the watcher running, it goes to
 * the watcher. Otherwise the watcher is started only if the kernel grants the
 * lease (no thread for files that cannot be leased: shared ones, a forked
 * child's), and meanwhile the signal goes to the calling thread, with both
 * break signals blocked there: once the watcher runs and the lease is
 * directed to it, a signal of a break that began in between is taken off this
 * thread (sigtimedwait() takes the thread's own first) and the break is found
 * by F_GETLEASE and handled by the watcher. State and lease change under
 * region->lock. The file's lease lock is held throughout: a daxpool process
 * that announces itself finds the lease either not taken or held and
 * answered. The outcome is reported to daxpoold.
 */
static void lease_take(struct daxpool_region *region)
{
	struct daxpool_ctx *ctx = region->ctx;
	sigset_t breaks, old;
	uint64_t before = 0;
	pid_t tid, self = 0;
	int r, lock;

	lock = lease_file_lock(ctx, region->file_dev, region->file_ino);
	pthread_mutex_lock(&ctx->lease_lock);
	tid = ctx->lease_watcher ? dp_service_thread_tid(&ctx->lease_watcher->t) : 0;
	pthread_mutex_unlock(&ctx->lease_lock);
	if (!tid) {
		sigemptyset(&breaks);
		sigaddset(&breaks, LEASE_SIGNAL);
		sigaddset(&breaks, SIGIO);
		pthread_sigmask(SIG_BLOCK, &breaks, &old);
		before = lease_own_pending();
		self = (pid_t)syscall(SYS_gettid);
	}

	pthread_mutex_lock(&region->lock);
	r = region->fd < 0 ? -EBADF : 0;
	if (r == 0) {
		/* Listen before the lease exists: a peer never finds it held and unheard. */
		if (region->lease_sock < 0)
			region->lease_sock = lease_listen(region);
		/* Owner and signal first: F_SETLEASE keeps an owner that is set. */
		r = lease_direct(region, tid ? tid : self);
		if (r == 0 && fcntl(region->fd, F_SETLEASE, F_WRLCK) < 0)
			r = -errno;
	}
	lease_set_state(region, r == 0 ? DAXPOOL_LEASE_HELD : DAXPOOL_LEASE_REFUSED, r);
	pthread_mutex_unlock(&region->lock);
	dp_test_delay("DAXPOOL_TEST_LEASE_TAKE_DELAY_MS");

	if (!tid) {
		uint64_t stray;

		if (r == 0) {
			pthread_mutex_lock(&ctx->lease_lock);
			r = lease_watcher_start(ctx);
			if (r == 0)
				tid = dp_service_thread_tid(&ctx->lease_watcher->t);
			pthread_mutex_unlock(&ctx->lease_lock);
			pthread_mutex_lock(&region->lock);
			if (atomic_load_explicit(&region->lease_state, memory_order_relaxed) ==
				    DAXPOOL_LEASE_HELD &&
			    region->fd >= 0) {
				if (r == 0)
					r = lease_direct(region, tid);
				if (r < 0)
					lease_drop(region, DAXPOOL_LEASE_REFUSED, r);
			}
			pthread_mutex_unlock(&region->lock);
			if (r < 0)
				log_err(ctx, "%s: no write lease: the lease watcher cannot run (%s)",
					region->path, strerror(-r));
		}
		/* Directed elsewhere now: a break signal already sent here is ours, not the application's. */
		stray = lease_own_pending() & ~before;
		for (int sig = 1; stray && sig <= 64; sig++) {
			sigset_t one;

			if (!(stray & (1ull << (sig - 1))))
				continue;
			sigemptyset(&one);
			sigaddset(&one, sig);
			while (sigtimedwait(&one, NULL, &(struct timespec){ 0, 0 }) == sig)
				;
		}
		pthread_sigmask(SIG_SETMASK, &old, NULL);
	}
	/* Only now may another daxpool process announce itself: we hold it, and answer. */
	lease_file_unlock(lock);

	if (r < 0) {
		log_info(ctx, "%s: no write lease (%s): another process can change the file "
			      "unnoticed", region->path, lease_refusal(r));
	} else {
		/* Listen for other daxpool processes; handle a break that began meanwhile. */
		lease_kick(ctx);
		log_dbg(ctx, "%s: write lease held: another process's open or truncate revokes "
			     "the region first", region->path);
	}
	dp_services_call(region->ctx, region_state, region);
}

static void lease_region_added(struct daxpool_region *region)
{
	struct daxpool_ctx *ctx = region->ctx;

	if (region->kind == DAXPOOL_REGION_DEVDAX || region->rdonly)
		return;
	if (atomic_load_explicit(&ctx->leases, memory_order_relaxed)) {
		lease_take(region);
		return;
	}
	lease_set_state(region, DAXPOOL_LEASE_OFF, 0);
	dp_services_call(region->ctx, region_state, region);
}

/*
 * Tell the holder of a lease on the file, if it is a daxpool process, that
 * this process is about to open it: it gives the lease up instead of taking
 * our open for an outsider's. Waits up to LEASE_PEER_WAIT_MS for its answer.
 */
static void lease_announce(struct daxpool_ctx *ctx, const struct stat *st)
{
	uint32_t msg[2] = { LEASE_PEER_MAGIC, (uint32_t)getpid() };
	uint64_t deadline = dp_now_ns() + LEASE_PEER_WAIT_MS * 1000000ull, now;
	struct sockaddr_un sa;
	socklen_t len = lease_addr("lease", st->st_dev, st->st_ino, &sa);
	struct ucred cred;
	struct pollfd p;
	char ack;
	int fd, r;

	fd = lease_socket(SOCK_SEQPACKET | SOCK_NONBLOCK);
	if (fd < 0)
		return;
	/* A unix connect never blocks here: EAGAIN while the listener's backlog is full. */
	while ((r = connect(fd, (struct sockaddr *)&sa, len)) < 0 && errno == EAGAIN &&
	       dp_now_ns() < deadline)
		nanosleep(&(struct timespec){ 0, 1000000 }, NULL);
	if (r < 0) {
		if (errno == EAGAIN)
			log_info(ctx, "the lease holder of the file accepts nobody (for %d ms); opening "
				      "anyway (it will take the open for an outsider's)",
				 LEASE_PEER_WAIT_MS);
		lease_close(fd);
		return;
	}
	if (!lease_peer_trusted(fd, &cred)) {
		log_warn(ctx, "the lease listener of the file is a process of another user (pid %d, "
			      "uid %u): not waited for", (int)cred.pid, (unsigned int)cred.uid);
		lease_close(fd);
		return;
	}
	if (send(fd, msg, sizeof(msg), MSG_NOSIGNAL) == sizeof(msg)) {
		now = dp_now_ns();
		p = (struct pollfd){ .fd = fd, .events = POLLIN };
		if (now < deadline && poll(&p, 1, (int)((deadline - now) / 1000000) + 1) == 1 &&
		    recv(fd, &ack, 1, 0) == 1)
			log_dbg(ctx, "the lease holder of the file gave its lease up to us");
		else
			log_info(ctx, "the lease holder of the file did not answer in %d ms; opening "
				      "anyway (it will take the open for an outsider's)",
				 LEASE_PEER_WAIT_MS);
	}
	lease_close(fd);
}

static int lease_before_open(struct daxpool_ctx *ctx, const struct stat *st)
{
	struct dp_list *pos;
	bool ours = false;
	int lock;

	if (!S_ISREG(st->st_mode))
		return -1;
	lock = lease_file_lock(ctx, st->st_dev, st->st_ino);
	pthread_mutex_lock(&ctx->regions_lock);
	dp_list_for_each(pos, &ctx->regions) {
		struct daxpool_region *region = dp_container_of(pos, struct daxpool_region, ctx_node);

		if (region->file_dev != st->st_dev || region->file_ino != st->st_ino)
			continue;
		pthread_mutex_lock(&region->lock);
		if (atomic_load_explicit(&region->lease_state, memory_order_relaxed) ==
		    DAXPOOL_LEASE_HELD) {
			/* Our own open would break our own lease: give it up first. */
			lease_drop(region, DAXPOOL_LEASE_REFUSED, -EAGAIN);
			log_info(ctx, "%s: opened again in this process: its write lease is given up",
				 region->path);
			ours = true;
		}
		pthread_mutex_unlock(&region->lock);
	}
	pthread_mutex_unlock(&ctx->regions_lock);
	if (!ours)
		lease_announce(ctx, st);
	return lock;
}

static void lease_after_open(struct daxpool_ctx *ctx, int lock)
{
	lease_file_unlock(lock);
}

static void lease_yield(struct daxpool_region *region)
{
	bool yielded = false;

	pthread_mutex_lock(&region->lock);
	if (region->lease_yields++ == 0 &&
	    atomic_load_explicit(&region->lease_state, memory_order_relaxed) == DAXPOOL_LEASE_HELD) {
		lease_drop(region, DAXPOOL_LEASE_YIELDED, 0);
		yielded = true;
	}
	pthread_mutex_unlock(&region->lock);
	if (yielded) {
		log_dbg(region->ctx, "%s: write lease yielded to a daxpoold request", region->path);
		dp_services_call(region->ctx, region_state, region);
	}
}

static void lease_resume(struct daxpool_region *region)
{
	bool take = false;

	pthread_mutex_lock(&region->lock);
	if (region->lease_yields > 0 && --region->lease_yields == 0 &&
	    atomic_load_explicit(&region->lease_state, memory_order_relaxed) ==
		    DAXPOOL_LEASE_YIELDED)
		take = !region->released;
	pthread_mutex_unlock(&region->lock);
	if (take)
		lease_take(region);
}

static void lease_region_reopened(struct daxpool_region *region)
{
	bool take;

	pthread_mutex_lock(&region->lock);
	take = !region->released && !region->whole_zapped && region->lease_yields == 0 &&
	       atomic_load_explicit(&region->lease_state, memory_order_relaxed) ==
		       DAXPOOL_LEASE_BROKEN;
	pthread_mutex_unlock(&region->lock);
	if (take)
		lease_take(region);
}

static void lease_region_closing(struct daxpool_region *region)
{
	int state = atomic_load_explicit(&region->lease_state, memory_order_acquire);

	/* Only a held lease has a listener (lease_set_state() closes it with the lease). */
	if (state == DAXPOOL_LEASE_HELD)
		lease_drop(region, DAXPOOL_LEASE_NONE, 0);
	else if (state != DAXPOOL_LEASE_OFF)
		lease_set_state(region, DAXPOOL_LEASE_NONE, 0);
}

static void lease_fork_register(void)
{
	dp_fork_add_hooks(DP_FORK_SERVICE, lease_atfork_prepare, lease_atfork_parent,
			  lease_atfork_child);
}

void dp_lease_ctx_init(struct daxpool_ctx *ctx)
{
	static pthread_once_t once = PTHREAD_ONCE_INIT;
	const char *e = secure_getenv("DAXPOOL_LEASES");

	/* Before this process makes any rendezvous socket. */
	pthread_once(&once, lease_fork_register);

	pthread_mutex_init(&ctx->lease_lock, NULL);
	ctx->lease_watcher = NULL;
	atomic_init(&ctx->leases, !(e && strcmp(e, "0") == 0));
}

static void lease_ctx_fini(struct daxpool_ctx *ctx)
{
	/*
	 * Joined and freed; in a child of fork() the thread is the parent's
	 * and only the descriptors are ours; on the watcher itself (its pass
	 * ended the context), freed at the end of that pass.
	 */
	if (ctx->lease_watcher)
		dp_service_thread_stop(&ctx->lease_watcher->t);
	ctx->lease_watcher = NULL;
	pthread_mutex_destroy(&ctx->lease_lock);
}

_public_ int daxpool_ctx_set_leases(struct daxpool_ctx *ctx, int enable)
{
	assert_return(ctx, -EINVAL);
	assert_return(enable == 0 || enable == 1, -EINVAL);
	atomic_store_explicit(&ctx->leases, enable == 1, memory_order_relaxed);
	return 0;
}

_public_ int daxpool_region_get_lease(struct daxpool_region *region, int *ret_error)
{
	int state;

	assert_return(region, -EINVAL);
	assert_owned(region->ctx);
	state = atomic_load_explicit(&region->lease_state, memory_order_acquire);
	if (ret_error)
		*ret_error = state == DAXPOOL_LEASE_REFUSED
				     ? atomic_load_explicit(&region->lease_error, memory_order_relaxed)
				     : 0;
	return state;
}

_public_ uint64_t daxpool_region_get_lease_breaks(struct daxpool_region *region)
{
	return region ? atomic_load_explicit(&region->lease_breaks, memory_order_relaxed) : 0;
}

_public_ const char *daxpool_lease_state_name(int state)
{
	static const char *const names[] = {
		[DAXPOOL_LEASE_NONE] = "none",	       [DAXPOOL_LEASE_OFF] = "off",
		[DAXPOOL_LEASE_HELD] = "held",	       [DAXPOOL_LEASE_REFUSED] = "refused",
		[DAXPOOL_LEASE_YIELDED] = "yielded", [DAXPOOL_LEASE_BROKEN] = "broken",
	};

	if (state < 0 || state > DAXPOOL_LEASE_BROKEN)
		return NULL;
	return names[state];
}

const struct dp_service dp_lease_service = {
	.name = "file leases",
	.ctx_fini = lease_ctx_fini,
	.before_open = lease_before_open,
	.after_open = lease_after_open,
	.region_added = lease_region_added,
	.region_yield = lease_yield,
	.region_resume = lease_resume,
	.region_reopened = lease_region_reopened,
	.region_closing = lease_region_closing,
};
