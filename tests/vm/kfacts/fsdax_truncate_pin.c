/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Kernel facts: fsdax truncate waits for page references.  A page reference
 * taken by vmsplice()ing the mapping into a pipe nobody reads makes another
 * process's truncate to 0 block in the filesystem's break-layouts wait;
 * draining the pipe lets it return.
 *
 * The mapping stays in place until the truncate has returned: on 6.12,
 * unmapping first and then draining can trigger WARNING in
 * dax_disassociate_entry, which the vm tier counts as a failure.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

#include "kfacts.h"
#include "fsdax_dirs.h"

#define LEN    (2UL << 20)
#define PINNED (4 * 4096UL)

/* wait for @pid up to @ms milliseconds; returns its status or -1. */
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

static void read_wchan(pid_t pid, char *buf, size_t len)
{
	char path[64];
	ssize_t n;
	int fd;

	buf[0] = 0;
	snprintf(path, sizeof(path), "/proc/%d/wchan", (int)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return;
	n = read(fd, buf, len - 1);
	buf[n > 0 ? n : 0] = 0;
	close(fd);
}

static void check_dir(const char *dir)
{
	char path[4096], wchan[128], sink[PINNED];
	struct iovec iov;
	int pipefd[2] = {-1, -1};
	struct stat st;
	double t;
	pid_t pid;
	char *p;
	int fd, status;
	ssize_t n;

	snprintf(path, sizeof(path), "%s/kfact_trunc.%d", dir, (int)getpid());
	fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (!kf_check(fd >= 0 && !ftruncate(fd, LEN), "%s: create a 2 MiB file", dir))
		goto out;
	p = mmap(NULL, LEN, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (!kf_check(p != MAP_FAILED, "%s: MAP_SHARED mmap", dir))
		goto out;
	memset(p, 0x77, LEN);
	if (!kf_check(!pipe(pipefd), "pipe"))
		goto unmap;
	iov.iov_base = p;
	iov.iov_len = PINNED;
	n = vmsplice(pipefd[1], &iov, 1, 0);
	if (!kf_check(n == (ssize_t)PINNED,
		      "%s: vmsplice %lu bytes of the mapping into a pipe (%zd)", dir, PINNED, n))
		goto unmap;

	pid = fork();
	if (pid < 0)
		goto unmap;
	if (pid == 0) {
		int tfd = open(path, O_RDWR | O_CLOEXEC);

		_exit(tfd >= 0 && !ftruncate(tfd, 0) ? 0 : 1);
	}
	status = wait_ms(pid, 300);
	kf_check(status == -1, "%s: another process's truncate to 0 is still blocked after 300 ms",
		 dir);
	if (status == -1) {
		read_wchan(pid, wchan, sizeof(wchan));
		if (!wchan[0] || !strcmp(wchan, "0"))
			kf_note("%s: wchan of the truncating process not readable", dir);
		else
			kf_check(strstr(wchan, "break") && strstr(wchan, "layouts"),
				 "%s: the truncating process waits in %s (break layouts)", dir,
				 wchan);
	}

	/* Drain the pipe: the page references go away, truncate goes on. */
	t = kf_now();
	n = read(pipefd[0], sink, sizeof(sink));
	kf_check(n == (ssize_t)PINNED, "%s: drain the pipe (%zd bytes)", dir, n);
	if (status == -1)
		status = wait_ms(pid, 5000);
	t = kf_now() - t;
	if (kf_check(status != -1, "%s: truncate returns after the drain (%.0f ms)", dir,
		     t * 1000)) {
		kf_check(WIFEXITED(status) && WEXITSTATUS(status) == 0, "%s: truncate succeeded",
			 dir);
	} else {
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
	}
	kf_check(!fstat(fd, &st) && st.st_size == 0, "%s: file size is 0 afterwards", dir);
unmap:
	munmap(p, LEN);
out:
	if (pipefd[0] >= 0) {
		close(pipefd[0]);
		close(pipefd[1]);
	}
	if (fd >= 0)
		close(fd);
	unlink(path);
}

int main(void)
{
	char *dirs[KF_MAX_DIRS];
	int i, n;

	n = kf_fsdax_dirs(dirs);
	for (i = 0; i < n; i++)
		check_dir(dirs[i]);
	return kf_done();
}
