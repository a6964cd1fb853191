/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Programs that know nothing of daxpool, unmodified, against the real daemon
 * on a real device (the vm tier): perftest's ib_write_bw with its buffer on a
 * shared mapping of /dev/dax0.0 (--mmap), moving data over RDMA to a second
 * ib_write_bw. Its MR pins the device; daxpoold has no client to ask, so a
 * release must be refused while it runs, name it, and go through once it has
 * gone; a disable under it would oops the kernel when the MR goes (the guest
 * checks dmesg after the run).
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <json-c/json.h>

#include "harness.h"
#include "daemon_harness.h"
#include "devdax_fixture.h"

/* perftest's buffer is twice the message size for one QP: one 2 MiB devdax page. */
#define MSG_SIZE "1048576"

static char out[1 << 18];

static const char *need_perftest(void)
{
	static const char *const dirs[] = { "/usr/bin", "/usr/local/bin", "/bin" };
	static char path[64];

	for (size_t i = 0; i < sizeof(dirs) / sizeof(dirs[0]); i++) {
		snprintf(path, sizeof(path), "%s/ib_write_bw", dirs[i]);
		if (access(path, X_OK) == 0)
			return path;
	}
	fixture_missing("perftest's ib_write_bw");
}

/*
 * A distinct TCP port for each run of perftest: its side channel. The
 * process id keeps two runs in one guest apart.
 */
static int perftest_port(int which)
{
	return 20000 + (getpid() % 10000) * 2 + which;
}

/*
 * Start ib_write_bw with @argv (after the program name), its output in
 * @log; returns its pid. It dies with the test.
 */
static pid_t start_perftest(const char *prog, const char *log, const char *const *args)
{
	const char *argv[24] = { "ib_write_bw" };
	pid_t pid;
	size_t n = 1;

	while (*args && n < sizeof(argv) / sizeof(argv[0]) - 1)
		argv[n++] = *args++;
	argv[n] = NULL;
	pid = fork();
	CHECK(pid >= 0);
	if (pid == 0) {
		int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);

		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (fd < 0 || dup2(fd, STDOUT_FILENO) < 0 || dup2(fd, STDERR_FILENO) < 0)
			_exit(126);
		execv(prog, (char *const *)argv);
		_exit(127);
	}
	return pid;
}

static void print_log(const char *what, const char *log)
{
	char line[256];
	FILE *f = fopen(log, "r");

	if (!f)
		return;
	while (fgets(line, sizeof(line), f))
		printf("# %s: %s", what, line);
	fclose(f);
}

/*
 * The average bandwidth in MB/s perftest printed in @log (its result line
 * begins with the message size), or -1 when it printed none.
 */
static double perftest_bw_average(const char *log)
{
	char line[256];
	double bw = -1;
	FILE *f = fopen(log, "r");

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f)) {
		unsigned long long bytes, iters;
		double peak, avg;

		if (sscanf(line, " %llu %llu %lf %lf", &bytes, &iters, &peak, &avg) == 4 &&
		    bytes == strtoull(MSG_SIZE, NULL, 10))
			bw = avg;
	}
	fclose(f);
	return bw;
}

/* Whether a socket listens on TCP @port (as perftest's server does before a client may come). */
static bool tcp_listening(int port)
{
	char line[256], want[16];
	FILE *f = fopen("/proc/net/tcp", "r");
	bool found = false;

	if (!f)
		return false;
	snprintf(want, sizeof(want), ":%04X ", port);
	while (!found && fgets(line, sizeof(line), f)) {
		char *local = strchr(line, ':'); /* "sl: local rem st" */

		/* st 0A is LISTEN */
		found = local && strstr(local + 1, want) && strstr(line, " 0A ");
	}
	fclose(f);
	return found;
}

/* The daemon's status of device @name, parsed; asserts it answered. */
static json_object *device_status(const char *name)
{
	json_object *doc;

	CHECK_EQ(ctl(out, sizeof(out), (const char *const[]){ "status", "--json", name, NULL }), 0);
	doc = json_tokener_parse(out);
	CHECK(doc);
	return doc;
}

/* Wait until the daemon sees process @pid holding an RDMA MR of @length on device @name. */
static void wait_outsider_mr(const char *name, pid_t pid, uint64_t length, const char *log)
{
	for (int i = 0; i < 600; i++) {
		json_object *doc = device_status(name);
		json_object *o = outsider_of(doc, pid);
		bool seen = o && lists_mr(o, length);

		json_object_put(doc);
		if (seen)
			return;
		if (waitpid(pid, NULL, WNOHANG) == pid) {
			print_log("ib_write_bw server", log);
			dp_test_fail(__FILE__, __LINE__, "ib_write_bw exited before its MR was seen");
		}
		msleep(100);
	}
	print_log("ib_write_bw server", log);
	dp_test_fail(__FILE__, __LINE__, "daxpoold never listed pid %d with an MR of %llu bytes",
		     (int)pid, (unsigned long long)length);
}

struct perftest_pair {
	pid_t server, client;
	char server_log[300], client_log[300];
};

/*
 * A server with its buffer on @dev and a client on anonymous memory, over
 * rxe, for @seconds; returns once the daemon sees the server's MR.
 */
static struct perftest_pair start_pair(const char *dev, const char *seconds)
{
	const char *prog = need_perftest();
	const char *rdma = getenv("DAXPOOL_TEST_RDMA_DEV");
	struct perftest_pair p;
	char mmap_arg[128], port[16];
	uint64_t t0;

	snprintf(mmap_arg, sizeof(mmap_arg), "--mmap=%s", dev);
	snprintf(port, sizeof(port), "%d", perftest_port(0));
	snprintf(p.server_log, sizeof(p.server_log), "%s/ib_write_bw-server.log", fixture_dir());
	snprintf(p.client_log, sizeof(p.client_log), "%s/ib_write_bw-client.log", fixture_dir());
	/* GID 1 is ::ffff:127.0.0.1 of the tier's rxe on lo; -F: no CPU frequency check. */
	p.server = start_perftest(prog, p.server_log,
				  (const char *const[]){ "-d", rdma, "-x", "1", "-F", "-s", MSG_SIZE,
							 "-D", seconds, "-p", port, mmap_arg, NULL });
	t0 = now_ns();
	while (!tcp_listening(perftest_port(0))) {
		if (waitpid(p.server, NULL, WNOHANG) == p.server || now_ns() - t0 > 60000000000ull) {
			print_log("ib_write_bw server", p.server_log);
			dp_test_fail(__FILE__, __LINE__, "ib_write_bw server did not listen");
		}
		msleep(50);
	}
	p.client = start_perftest(prog, p.client_log,
				  (const char *const[]){ "-d", rdma, "-x", "1", "-F", "-s", MSG_SIZE,
							 "-D", seconds, "-p", port, "127.0.0.1", NULL });
	wait_outsider_mr(devname_of(dev), p.server, 2u << 20, p.server_log);
	return p;
}

/* Reap @pid; print its log unless it ended as @want_signal or with exit status 0. */
static int reap(pid_t pid, const char *what, const char *log)
{
	int status;

	CHECK_EQ(waitpid(pid, &status, 0), pid);
	if (!(WIFEXITED(status) && WEXITSTATUS(status) == 0))
		print_log(what, log);
	return status;
}

/*
 * While perftest writes into the device, the release is refused and names it
 * (pid, command, its MR); the device stays. Once it is stopped, the release
 * goes through.
 */
TEST_TIMEOUT(release_refused_while_perftest_writes_to_the_device, 300)
{
	const char *dev = need_devdax_and_rdma();
	const char *name = devname_of(dev);
	struct perftest_pair p;
	char pidstr[32];
	json_object *doc, *o;
	int rc;

	CHECK(devdax_enabled(name));
	daemon_start(NULL);
	p = start_pair(dev, "600");
	snprintf(pidstr, sizeof(pidstr), "%d", (int)p.server);

	doc = device_status(name);
	o = outsider_of(doc, p.server);
	CHECK(o);
	CHECK(strcmp(json_object_get_string(json_object_object_get(o, "comm")), "ib_write_bw") == 0);
	CHECK(!outsider_of(doc, p.client)); /* its buffer is anonymous memory */
	json_object_put(doc);

	rc = ctl(out, sizeof(out), (const char *const[]){ "release", "--timeout", "5", name, NULL });
	printf("# %s", out);
	CHECK_EQ(rc, 1);
	CHECK(strstr(out, "refused") && strstr(out, pidstr) && strstr(out, "ib_write_bw"));
	CHECK(strstr(out, "possible pin: RDMA MR") && strstr(out, "length 2097152"));
	CHECK(devdax_enabled(name));
	/* Still moving data: the refusal changed nothing for it. */
	CHECK_EQ(waitpid(p.server, NULL, WNOHANG), 0);
	CHECK_EQ(waitpid(p.client, NULL, WNOHANG), 0);

	/* perftest has no clean stop but its end: killed, the kernel drops its MR. */
	CHECK(kill(p.client, SIGKILL) == 0 && kill(p.server, SIGKILL) == 0);
	reap(p.client, "ib_write_bw client", p.client_log);
	reap(p.server, "ib_write_bw server", p.server_log);
	rc = ctl(out, sizeof(out), (const char *const[]){ "release", "--timeout", "30", name, NULL });
	printf("# %s", out);
	CHECK_EQ(rc, 0);
	CHECK(!devdax_enabled(name));
	daemon_kill(SIGTERM);
	devdax_enable(name);
	CHECK(devdax_enabled(name));
}

/*
 * A release asked for while perftest runs, with a deadline longer than the
 * run, waits for it: it completes after perftest ended by itself (its run
 * length), and not before.
 */
TEST_TIMEOUT(release_waits_for_perftest_to_finish, 300)
{
	const char *dev = need_devdax_and_rdma();
	const char *name = devname_of(dev);
	struct perftest_pair p;
	uint64_t t_release, t_done, t_gone = 0;
	int status, rc;
	pid_t rel;

	CHECK(devdax_enabled(name));
	daemon_start(NULL);
	p = start_pair(dev, "20");
	t_release = now_ns();
	rel = fork();
	CHECK(rel >= 0);
	if (rel == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		_exit(ctl(out, sizeof(out),
			  (const char *const[]){ "release", "--timeout", "240", name, NULL }));
	}
	/* The server ends by itself after its run; the release is still waiting until then. */
	while (waitpid(p.server, &status, WNOHANG) == 0) {
		CHECK_EQ(waitpid(rel, NULL, WNOHANG), 0);
		CHECK(devdax_enabled(name));
		msleep(100);
	}
	t_gone = now_ns();
	if (!(WIFEXITED(status) && WEXITSTATUS(status) == 0))
		print_log("ib_write_bw server", p.server_log);
	reap(p.client, "ib_write_bw client", p.client_log);
	/* It moved data into the device the whole time the release waited. */
	printf("# ib_write_bw: %.2f MB/s average into %s\n", perftest_bw_average(p.client_log), dev);
	CHECK(perftest_bw_average(p.client_log) > 0);
	CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	CHECK_EQ(waitpid(rel, &rc, 0), rel);
	t_done = now_ns();
	CHECK(WIFEXITED(rc) && WEXITSTATUS(rc) == 0);
	CHECK(!devdax_enabled(name));
	printf("# release asked at 0 ms; perftest gone at %llu ms; device released by %llu ms\n",
	       (unsigned long long)((t_gone - t_release) / 1000000),
	       (unsigned long long)((t_done - t_release) / 1000000));
	daemon_kill(SIGTERM);
	devdax_enable(name);
	CHECK(devdax_enabled(name));
}
