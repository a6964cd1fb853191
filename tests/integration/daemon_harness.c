/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* What the daxpoold end-to-end tests share (daemon_harness.h). */
#include <errno.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/capability.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "daemon_harness.h"
#include "harness.h"

char sock_path[108];
pid_t daemon_pid;

uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

void msleep(unsigned int ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };

	nanosleep(&ts, NULL);
}

void exec_tool(const char *built, const char *name, char *const argv[])
{
	if (access(built, X_OK) == 0)
		execv(built, argv);
	else
		execvp(name, argv);
	_exit(127);
}

bool daemon_without_ptrace;

/*
 * Sleep past the next clock tick of /proc/PID/stat's start times (1/CLK_TCK
 * of CLOCK_BOOTTIME). The daemon compares a process's start, truncated to
 * its tick, with the moment its open record began: a process started in the
 * same tick may have started before it, so it counts as one whose history is
 * unknown (a possible holder). Past the tick, every process the test starts
 * began after the record, and the test's bystanders are not named.
 */
static void sleep_past_the_start_tick(void)
{
	long tck = sysconf(_SC_CLK_TCK) > 0 ? sysconf(_SC_CLK_TCK) : 100;
	uint64_t tick_ns = 1000000000ull / (uint64_t)tck, now, until;
	struct timespec ts;

	clock_gettime(CLOCK_BOOTTIME, &ts);
	now = (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
	until = (now / tick_ns + 1) * tick_ns + 1000000; /* the next tick, and 1 ms */
	ts = (struct timespec){ .tv_sec = (time_t)(until / 1000000000ull),
				.tv_nsec = (long)(until % 1000000000ull) };
	while (clock_nanosleep(CLOCK_BOOTTIME, TIMER_ABSTIME, &ts, NULL) == EINTR)
		;
}

/* The daemon's MR tracer: {"on", "reason"} from its status. */
static json_object *mr_tracer_of(json_object *doc)
{
	return json_object_object_get(doc, "mr_tracer");
}

/*
 * Until the MR tracer's load ended, on or off: what a test registers after
 * that is recorded, or known not to be. Bounded by the test's timeout.
 */
static void wait_mr_tracer(void)
{
	for (;;) {
		json_object *doc = daemon_status();
		const char *why =
			json_object_get_string(json_object_object_get(mr_tracer_of(doc), "reason"));
		bool loading = why && strncmp(why, "attaching", 9) == 0;

		if (!loading)
			printf("# MR tracer: %s\n", why ? why : "on");
		json_object_put(doc);
		if (!loading)
			return;
		msleep(100);
	}
}

void daemon_need_mr_tracer(void)
{
	json_object *doc = daemon_status();
	json_object *tr = mr_tracer_of(doc);
	const char *why = json_object_get_string(json_object_object_get(tr, "reason"));

	if (!json_object_get_boolean(json_object_object_get(tr, "on"))) {
		char text[512];

		snprintf(text, sizeof(text), "%s", why ? why : "?");
		json_object_put(doc);
		if (strstr(text, "built without it"))
			SKIP("daxpoold was built without its MR tracer (DAXPOOL_BPF)");
		dp_test_fail(__FILE__, __LINE__, "the MR tracer is off: %s", text);
	}
	json_object_put(doc);
}

bool daemon_mr_tracer_on(void)
{
	json_object *doc = daemon_status();
	bool on = json_object_get_boolean(json_object_object_get(mr_tracer_of(doc), "on"));

	json_object_put(doc);
	return on;
}

void daemon_start(const char *config)
{
	char cfg[512];
	FILE *f;

	if (!sock_path[0])
		snprintf(sock_path, sizeof(sock_path), "%s/daxpoold.sock", fixture_dir());
	snprintf(cfg, sizeof(cfg), "%s/daxpoold.conf", fixture_dir());
	f = fopen(cfg, "w");
	CHECK(f);
	fputs(config ? config : "", f);
	fclose(f);
	daemon_pid = fork();
	CHECK(daemon_pid >= 0);
	if (daemon_pid == 0) {
		char *const argv[] = { (char *)"daxpoold", (char *)"-f", (char *)"-c", cfg,
				       (char *)"-s", sock_path, NULL };

		prctl(PR_SET_PDEATHSIG, SIGKILL); /* a failed test does not leave it behind */
		/* Root without CAP_SYS_PTRACE: other users' /proc/PID/maps are closed to it. */
		if (daemon_without_ptrace && prctl(PR_CAPBSET_DROP, CAP_SYS_PTRACE, 0, 0, 0) < 0)
			_exit(126);
		exec_tool(DAXPOOLD_PATH, "daxpoold", argv);
	}
	for (int i = 0; i < 500; i++) {
		int fd = dp_proto_connect(sock_path, DP_ROLE_CTL, 1000);

		if (fd >= 0) {
			close(fd);
			sleep_past_the_start_tick(); /* it answers from its loop: the record began */
			wait_mr_tracer();
			return;
		}
		msleep(10);
	}
	dp_test_fail(__FILE__, __LINE__, "daxpoold did not come up on %s", sock_path);
}

void daemon_kill(int sig)
{
	int status;

	kill(daemon_pid, sig);
	CHECK_EQ(waitpid(daemon_pid, &status, 0), daemon_pid);
	if (sig == SIGTERM)
		CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

int daemon_ask(const struct dp_msg *req, json_object **ret_doc)
{
	static uint8_t buf[DP_PROTO_MAX_DGRAM];
	static struct dp_msg m;
	char *text = NULL;
	size_t len = 0;
	int fd, status = 0;
	bool more = true;

	fd = dp_proto_connect(sock_path, DP_ROLE_CTL, 5000);
	if (fd < 0)
		return fd;
	CHECK_OK(dp_proto_send(fd, req, 1));
	while (more) {
		ssize_t n = recv(fd, buf, sizeof(buf), 0);

		if (n <= 0) {
			close(fd);
			free(text);
			return -ECONNRESET;
		}
		CHECK_EQ(dp_proto_decode(buf, (size_t)n, &m), n);
		CHECK_EQ(m.type, DP_MSG_REPLY);
		text = realloc(text, len + m.reply.text_len + 1);
		CHECK(text);
		memcpy(text + len, m.reply.text, m.reply.text_len);
		len += m.reply.text_len;
		text[len] = '\0';
		status = m.reply.status;
		more = m.reply.flags & DP_REPLY_MORE;
	}
	close(fd);
	*ret_doc = json_tokener_parse(text);
	if (!*ret_doc)
		dp_test_fail(__FILE__, __LINE__, "the daemon's reply is not JSON: %s", text);
	free(text);
	return status;
}

json_object *daemon_status(void)
{
	struct dp_msg req = { .type = DP_MSG_STATUS };
	json_object *doc;

	CHECK_OK(daemon_ask(&req, &doc));
	return doc;
}

int ctl(char *out, size_t out_size, const char *const *argv)
{
	const char *args[32] = { "daxpoolctl" };
	int pfd[2], status;
	size_t n = 1, len = 0;
	ssize_t r;
	pid_t pid;

	for (size_t i = 0; argv[i] && n < 28; i++)
		args[n++] = argv[i];
	args[n++] = "--socket";
	args[n++] = sock_path;
	args[n] = NULL;
	CHECK(pipe(pfd) == 0);
	pid = fork();
	CHECK(pid >= 0);
	if (pid == 0) {
		dup2(pfd[1], 1);
		close(pfd[0]);
		exec_tool(DAXPOOLCTL_PATH, "daxpoolctl", (char *const *)args);
	}
	close(pfd[1]);
	while (len + 1 < out_size && (r = read(pfd[0], out + len, out_size - 1 - len)) > 0)
		len += (size_t)r;
	out[len] = '\0';
	close(pfd[0]);
	waitpid(pid, &status, 0);
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

int shell(const char *cmd)
{
	char line[1024];
	int r;

	snprintf(line, sizeof(line), "%s 2>&1", cmd);
	fflush(stdout);
	r = system(line);
	if (r != 0)
		printf("# %s: status %d\n", cmd, r);
	return r;
}
