/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Kernel facts: what a devdax unplug does to a mapping that holds no pin.
 * "daxctl disable-device" does not wait for the mapping; touching it
 * afterwards raises SIGBUS with BUS_ADRERR at the touched address; mmap on an
 * fd opened before the disable gives ENXIO. "daxctl enable-device" brings the
 * device back for the tests after this one.
 *
 * Only the safe facts run here.  Never disable the device while an MR or
 * another long-term pin is held, and never open + mmap the node after the
 * disable: both oops the kernel.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <fcntl.h>
#include <libgen.h>
#include <setjmp.h>
#include <signal.h>
#include <stdint.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "kfacts.h"
#include "devdax_sysfs.h"

static sigjmp_buf touch_env;
static volatile sig_atomic_t bus_code;
static void *volatile bus_addr;

static void on_sigbus(int sig, siginfo_t *si, void *uc)
{
	(void)sig;
	(void)uc;
	bus_code = si->si_code;
	bus_addr = si->si_addr;
	siglongjmp(touch_env, 1);
}

/*
 * Read one byte at @p in a forked child, so that a SIGBUS hits the child
 * only.  Returns the child's report: 0 = read fine, 1 = SIGBUS with
 * BUS_ADRERR at @p, 2 = SIGBUS with another code or address, -1 = died
 * otherwise.
 */
static int touch_in_child(volatile unsigned char *p, unsigned char expect, bool *matched)
{
	int pipefd[2], status;
	unsigned char got = 0;
	pid_t pid;

	*matched = false;
	if (pipe(pipefd))
		return -1;
	pid = fork();
	if (pid < 0)
		return -1;
	if (pid == 0) {
		struct sigaction sa;
		unsigned char v;

		close(pipefd[0]);
		memset(&sa, 0, sizeof(sa));
		sa.sa_sigaction = on_sigbus;
		sa.sa_flags = SA_SIGINFO;
		sigaction(SIGBUS, &sa, NULL);
		if (sigsetjmp(touch_env, 1)) {
			if (bus_code == BUS_ADRERR && bus_addr == (void *)p)
				_exit(1);
			_exit(2);
		}
		v = *p;
		if (write(pipefd[1], &v, 1) != 1)
			_exit(3);
		_exit(0);
	}
	close(pipefd[1]);
	if (read(pipefd[0], &got, 1) == 1)
		*matched = got == expect;
	close(pipefd[0]);
	if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status))
		return -1;
	return WEXITSTATUS(status) <= 2 ? WEXITSTATUS(status) : -1;
}

static int daxctl(const char *verb, const char *name)
{
	char cmd[256];
	int r;

	snprintf(cmd, sizeof(cmd), "daxctl %s %s 2>&1", verb, name);
	kf_note("running: %s", cmd);
	fflush(stdout);
	r = system(cmd);
	return r == -1 ? -1 : WIFEXITED(r) ? WEXITSTATUS(r) : 128;
}

int main(void)
{
	const char *dev = kf_env("DAXPOOL_TEST_DEVDAX");
	unsigned long long align;
	unsigned char *p, *q;
	char *name, *tmp;
	bool matched;
	double t;
	int fd, r, err;

	fd = open(dev, O_RDWR | O_CLOEXEC);
	if (fd < 0)
		kf_missing("open %s: %s", dev, strerror(errno));
	tmp = strdup(dev);
	name = tmp ? basename(tmp) : NULL;
	if (!name)
		return KF_EXIT_FAIL;
	align = kf_devdax_attr(fd, "align");
	if (!align)
		align = 2ULL << 20;

	p = mmap(NULL, align, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (!kf_check(p != MAP_FAILED, "MAP_SHARED mmap of %s", dev))
		return kf_done();
	p[100] = 0xa5;
	r = touch_in_child(p + 100, 0xa5, &matched);
	kf_check(r == 0 && matched, "a child reads the mapping before the unplug");

	/* The unplug must not wait for a mere mapping. */
	t = kf_now();
	r = daxctl("disable-device", name);
	t = kf_now() - t;
	kf_check(r == 0, "daxctl disable-device %s with a mapping (no pin) exits 0 (rc %d, %.2f s)",
		 name, r, t);
	if (r != 0)
		goto restore;

	r = touch_in_child(p + 100, 0xa5, &matched);
	kf_check(r == 1,
		 "touching the old mapping after the unplug raises SIGBUS/BUS_ADRERR at the "
		 "address (child %d)",
		 r);

	/* An fd opened before the disable: mmap fails cleanly (do not open a new one). */
	q = mmap(NULL, align, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	err = errno;
	kf_check(q == MAP_FAILED && err == ENXIO,
		 "mmap on an fd opened before the unplug gives ENXIO (got %s)",
		 q == MAP_FAILED ? strerror(err) : "a mapping");
	if (q != MAP_FAILED)
		munmap(q, align);

restore:
	/* Drop every reference to the old instance, then bring the device back. */
	munmap(p, align);
	close(fd);
	r = daxctl("enable-device", name);
	kf_check(r == 0, "daxctl enable-device %s exits 0 (rc %d)", name, r);
	for (t = kf_now(); kf_now() - t < 5; kf_sleep_ms(50))
		if (!access(dev, F_OK))
			break;
	fd = open(dev, O_RDWR | O_CLOEXEC);
	err = errno;
	kf_check(fd >= 0, "%s opens again after enable-device (%s)", dev,
		 fd < 0 ? strerror(err) : "ok");
	if (fd >= 0) {
		q = mmap(NULL, align, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
		kf_check(q != MAP_FAILED, "a new mapping of the re-enabled device works");
		if (q != MAP_FAILED) {
			kf_check(q[100] == 0xa5, "the data survived the disable/enable cycle");
			munmap(q, align);
		}
		close(fd);
	}
	free(tmp);
	return kf_done();
}
