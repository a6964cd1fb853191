/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Dead client noticed by daxpoold. A client process registers a region, a
 * map and pins with a private daxpoold, then is SIGKILLed; the time from the
 * kill until the daemon's status shows no client is daxpool's figure (the
 * status is polled over the daemon's socket, so the figure includes up to
 * one status round trip). The baseline is the same kill noticed by a pidfd
 * that poll() waits on, in this process.
 */
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#include <json-c/json.h>

#include "bench.h"
#include "daxpool.h"
#include "util/protocol.h"

static char sock_path[256];

/* Clients the daemon knows, or -1 if it did not answer. */
static int daemon_clients(void)
{
	static uint8_t buf[DP_PROTO_MAX_DGRAM];
	struct dp_msg req = { .type = DP_MSG_STATUS }, m;
	char *text = NULL;
	size_t len = 0;
	bool more = true;
	int fd, n = -1;

	fd = dp_proto_connect(sock_path, DP_ROLE_CTL, 1000);
	if (fd < 0)
		return -1;
	if (dp_proto_send(fd, &req, 1) < 0)
		goto out;
	while (more) {
		ssize_t r = recv(fd, buf, sizeof(buf), 0);
		char *t;

		if (r <= 0 || dp_proto_decode(buf, (size_t)r, &m) != r || m.type != DP_MSG_REPLY)
			goto out;
		t = realloc(text, len + m.reply.text_len + 1);
		if (!t)
			goto out;
		text = t;
		memcpy(text + len, m.reply.text, m.reply.text_len);
		len += m.reply.text_len;
		text[len] = '\0';
		more = m.reply.flags & DP_REPLY_MORE;
	}
	{
		json_object *doc = json_tokener_parse(text);

		if (doc) {
			n = (int)json_object_array_length(json_object_object_get(doc, "clients"));
			json_object_put(doc);
		}
	}
out:
	free(text);
	close(fd);
	return n;
}

/* A client that holds a map and 100 pins, then waits to be killed. */
static pid_t client_start(const char *path, int ready_fd)
{
	pid_t pid = fork();

	if (pid < 0)
		bench_die("fork: %s", strerror(errno));
	if (pid == 0) {
		struct daxpool_region *region;
		struct daxpool_pin *pins[100];
		struct daxpool_ctx *ctx;
		struct daxpool_map *map;
		char *base;

		prctl(PR_SET_PDEATHSIG, SIGKILL);
		bench_check(daxpool_ctx_new(&ctx));
		bench_check(daxpool_ctx_connect_daemon(ctx, sock_path));
		bench_check(daxpool_region_open(ctx, path, 0, &region));
		bench_check(daxpool_map_new(region, 0, 0, 0, &map));
		base = daxpool_map_get_address(map);
		for (int i = 0; i < 100; i++)
			bench_check(daxpool_pin_new(map, base + i * 4096, 4096, DAXPOOL_PIN_LONGTERM,
						    DAXPOOL_PIN_DEVICE_READ, &pins[i]));
		if (write(ready_fd, "r", 1) != 1)
			_exit(1);
		for (;;)
			pause();
	}
	return pid;
}

int main(int argc, char **argv)
{
	const char *daemon = getenv("DAXPOOLD");
	double *v[2], med[2];
	pid_t dpid;
	char *path, cfg[300];
	FILE *f;

	bench_parse(argc, argv);
	if (!daemon || access(daemon, X_OK) != 0) {
		bench_skip("daemon_notice", "dead client noticed by daxpoold", "daxpoold not found");
		return 0;
	}
	path = bench_make_file(bench_shm_dir(), "bench-daemon", 1 << 20);
	snprintf(sock_path, sizeof(sock_path), "%s/bench-daxpoold.%d.sock", bench.dir, (int)getpid());
	snprintf(cfg, sizeof(cfg), "%s/bench-daxpoold.%d.conf", bench.dir, (int)getpid());
	f = fopen(cfg, "w");
	if (!f)
		bench_die("%s: %s", cfg, strerror(errno));
	fputs("socket_mode = 0600\n", f);
	fclose(f);

	dpid = fork();
	if (dpid == 0) {
		int null = open("/dev/null", O_WRONLY);

		dup2(null, 2); /* the daemon's log lines */
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		execl(daemon, "daxpoold", "-f", "-c", cfg, "-s", sock_path, (char *)NULL);
		_exit(127);
	}
	for (int i = 0; daemon_clients() < 0; i++) {
		if (i > 500)
			bench_die("daxpoold did not start");
		usleep(10000);
	}

	for (int w = 0; w < 2; w++)
		v[w] = calloc((size_t)bench.samples, sizeof(double));
	for (int s = 0; s < bench.samples; s++) {
		for (int w = 0; w < 2; w++) {
			int pfd[2];
			char c;
			uint64_t t0, t1;
			pid_t pid;

			if (pipe(pfd) < 0)
				bench_die("pipe: %s", strerror(errno));
			pid = client_start(path, pfd[1]);
			if (read(pfd[0], &c, 1) != 1)
				bench_die("the client did not start");
			close(pfd[0]);
			close(pfd[1]);
			/* Wait until the daemon knows the client (its events are batched). */
			while (daemon_clients() != 1)
				usleep(1000);
			if (w == 0) {
				int pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
				struct pollfd p = { .fd = pidfd, .events = POLLIN };

				t0 = bench_now_ns();
				kill(pid, SIGKILL);
				poll(&p, 1, 5000);
				t1 = bench_now_ns();
				close(pidfd);
			} else {
				t0 = bench_now_ns();
				kill(pid, SIGKILL);
				while (daemon_clients() != 0)
					;
				t1 = bench_now_ns();
			}
			waitpid(pid, NULL, 0);
			v[w][s] = (double)(t1 - t0);
		}
	}
	for (int w = 0; w < 2; w++)
		med[w] = bench_median(v[w], bench.samples) / 1e6;
	bench_result("daemon_notice", "dead client noticed by daxpoold", "ms", med[1], med[0],
		     "pidfd poll wake, same kill", med[1], "abs", "le", 5,
		     "includes up to one status round trip over the daemon's socket");

	kill(dpid, SIGTERM);
	waitpid(dpid, NULL, 0);
	unlink(sock_path);
	unlink(cfg);
	unlink(path);
	free(path);
	return 0;
}
