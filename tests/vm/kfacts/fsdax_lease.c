/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Kernel facts: file leases on DAX files.  A
 * write lease needs the sole open fd (EAGAIN while the holder has another
 * one); with F_SETSIG, another process's open(O_RDWR) signals the holder
 * (si_fd = the lease fd, si_code = POLL_MSG) and blocks until the holder
 * unlocks, then proceeds.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include "kfacts.h"
#include "fsdax_dirs.h"

static int wait_ms(pid_t pid, long ms)
{
	double end = kf_now() + ms / 1000.0;
	int status;

	do {
		pid_t r = waitpid(pid, &status, WNOHANG);

		if (r == pid)
			return status;
		if (r < 0)
			return -1;
		kf_sleep_ms(5);
	} while (kf_now() < end);
	return -1;
}

static void check_dir(const char *dir, int sig)
{
	struct timespec ts = {2, 0};
	char path[4096];
	siginfo_t si;
	sigset_t set;
	int fd, fd2, r, err, status;
	double t;
	pid_t pid;

	snprintf(path, sizeof(path), "%s/kfact_lease.%d", dir, (int)getpid());
	fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (!kf_check(fd >= 0 && pwrite(fd, "lease", 5, 0) == 5, "%s: create a file", dir))
		goto out;

	fd2 = open(path, O_RDONLY | O_CLOEXEC);
	r = fcntl(fd, F_SETLEASE, F_WRLCK);
	err = errno;
	kf_check(r < 0 && err == EAGAIN,
		 "%s: write lease with a second fd open gives EAGAIN (got %s)", dir,
		 r < 0 ? strerror(err) : "a lease");
	if (r == 0)
		fcntl(fd, F_SETLEASE, F_UNLCK);
	if (fd2 >= 0)
		close(fd2);

	if (!kf_check(fcntl(fd, F_SETSIG, sig) == 0, "%s: F_SETSIG", dir))
		goto out;
	r = fcntl(fd, F_SETLEASE, F_WRLCK);
	err = errno;
	if (!kf_check(r == 0, "%s: write lease on the sole fd (%s)", dir, r ? strerror(err) : "ok"))
		goto out;

	pid = fork();
	if (pid < 0)
		goto out;
	if (pid == 0) {
		int ofd = open(path, O_RDWR | O_CLOEXEC);

		_exit(ofd >= 0 ? 0 : 1);
	}
	sigemptyset(&set);
	sigaddset(&set, sig);
	t = kf_now();
	r = sigtimedwait(&set, &si, &ts);
	t = kf_now() - t;
	if (kf_check(
		r == sig,
		"%s: the lease holder gets signal %d when another process opens O_RDWR (%.0f ms)",
		dir, sig, t * 1000)) {
		kf_check(si.si_fd == fd, "%s: si_fd is the lease fd (%d, want %d)", dir, si.si_fd,
			 fd);
		kf_check(si.si_code == POLL_MSG, "%s: si_code is POLL_MSG (%d)", dir, si.si_code);
	}
	status = wait_ms(pid, 100);
	kf_check(status == -1, "%s: the opener is blocked while the lease is held", dir);

	t = kf_now();
	r = fcntl(fd, F_SETLEASE, F_UNLCK);
	kf_check(r == 0, "%s: the holder unlocks", dir);
	if (status == -1)
		status = wait_ms(pid, 5000);
	t = kf_now() - t;
	kf_check(status != -1 && WIFEXITED(status) && WEXITSTATUS(status) == 0,
		 "%s: the opener proceeds after the unlock (%.0f ms)", dir, t * 1000);
	if (status == -1) {
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
	}
out:
	if (fd >= 0)
		close(fd);
	unlink(path);
}

int main(void)
{
	char *dirs[KF_MAX_DIRS];
	int i, n, sig = SIGRTMIN + 1;
	sigset_t set;

	n = kf_fsdax_dirs(dirs);
	/* Block the lease signal: sigtimedwait collects it with its siginfo. */
	sigemptyset(&set);
	sigaddset(&set, sig);
	sigprocmask(SIG_BLOCK, &set, NULL);
	for (i = 0; i < n; i++)
		check_dir(dirs[i], sig);
	return kf_done();
}
