/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The last step of an operation, off the event loop. Disabling a device,
 * truncating or punching a file can sleep in the kernel for as long as
 * someone else decides: the write open of a file waits for a lease holder to
 * give its lease up (up to lease-break-time), a truncate or punch on a DAX
 * filesystem waits for every page reference in the range to go (a vmsplice
 * or an O_DIRECT elsewhere). On the loop's only thread that would freeze the
 * daemon for every client; here each such step runs on a thread of its own,
 * and the loop hears of the end through an eventfd.
 *
 * Those waits are interruptible: at the operation's deadline the loop sends
 * the thread SIGUSR1 (a handler that does nothing, without SA_RESTART), and
 * the open, ftruncate or fallocate returns EINTR. A device disable does not
 * wait for pins -- that is why the drain comes first -- and is not
 * interrupted; nor is a teardown (release --teardown: the namespace
 * destroyed, the CXL region disabled and deleted, teardown.c), which writes
 * sysfs attributes after the disable.
 *
 * The thread touches nothing of the loop's: it gets a copy of what it needs
 * and writes its result into its own dd_work.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <unistd.h>

#include "device.h"
#include "log.h"
#include "worker.h"

static int done_fd = -1;

static void on_interrupt(int sig)
{
	(void)sig; /* only to make the sleeping system call return EINTR */
}

int dd_worker_init(void)
{
	struct sigaction sa = { .sa_handler = on_interrupt }; /* no SA_RESTART */

	sigemptyset(&sa.sa_mask);
	if (sigaction(SIGUSR1, &sa, NULL) < 0)
		return -errno;
	done_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	return done_fd < 0 ? -errno : done_fd;
}

void dd_worker_exit(void)
{
	if (done_fd >= 0)
		close(done_fd);
	done_fd = -1;
}

void dd_worker_drain_event(void)
{
	uint64_t n;

	if (read(done_fd, &n, sizeof(n)) < 0 && errno != EAGAIN)
		dd_log(LOG_WARNING, "worker eventfd: %m");
}

static void do_file(struct dd_work *w)
{
	char proc[64];
	struct stat st;
	int fd;

	/*
	 * Reopen the file the request resolved, through its descriptor: no path
	 * is looked up again, so a directory swapped since cannot send this open
	 * anywhere else. The open may wait for a lease holder; that is this
	 * thread's wait, not the daemon's.
	 */
	snprintf(proc, sizeof(proc), "/proc/self/fd/%d", w->path_fd);
	fd = open(proc, O_WRONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0) {
		w->result = -errno;
		return;
	}
	if (fstat(fd, &st) < 0 || st.st_dev != w->dev || st.st_ino != w->ino)
		w->result = -ESTALE;
	else if (w->kind == DD_WORK_TRUNCATE)
		w->result = ftruncate(fd, (off_t)w->offset) < 0 ? -errno : 0;
	else
		w->result = fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
				      (off_t)w->offset, (off_t)w->length) < 0
				    ? -errno
				    : 0;
	close(fd);
}

static void *work_main(void *arg)
{
	struct dd_work *w = arg;
	sigset_t usr1;
	uint64_t one = 1;

	sigemptyset(&usr1);
	sigaddset(&usr1, SIGUSR1);
	pthread_sigmask(SIG_UNBLOCK, &usr1, NULL);
	if (w->kind == DD_WORK_DISABLE || w->kind == DD_WORK_TEARDOWN) {
		w->result = dd_devdax_disable(w->devname, w->msg, sizeof(w->msg));
		w->disabled = w->result == 0;
	}
	if (w->kind == DD_WORK_TEARDOWN && w->result == 0)
		w->result = dd_teardown_run(w->devname, &w->teardown, w->msg, sizeof(w->msg));
	else if (w->kind != DD_WORK_DISABLE && w->kind != DD_WORK_TEARDOWN)
		do_file(w);
	__atomic_store_n(&w->done, true, __ATOMIC_RELEASE);
	if (write(done_fd, &one, sizeof(one)) < 0) {
		/* The counter cannot overflow with one write per work. */
	}
	return NULL;
}

int dd_work_start(struct dd_work *w)
{
	sigset_t all, old;
	int r;

	if (done_fd < 0)
		return -ENOTCONN;
	w->done = false;
	w->interrupted = false;
	/* Born with every signal blocked; it unblocks SIGUSR1 itself. */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	r = -pthread_create(&w->thread, NULL, work_main, w);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	w->started = r == 0;
	return r;
}

bool dd_work_done(struct dd_work *w)
{
	if (!w->started || !__atomic_load_n(&w->done, __ATOMIC_ACQUIRE))
		return false;
	pthread_join(w->thread, NULL);
	w->started = false;
	return true;
}

void dd_work_interrupt(struct dd_work *w)
{
	if (w->started && !__atomic_load_n(&w->done, __ATOMIC_ACQUIRE)) {
		w->interrupted = true;
		pthread_kill(w->thread, SIGUSR1);
	}
}
