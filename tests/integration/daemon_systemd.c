/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * daxpoold under systemd's own tooling, without a running systemd:
 * systemd-socket-activate hands it a listening SOCK_SEQPACKET socket
 * (LISTEN_FDS), a datagram socket of the test's plays NOTIFY_SOCKET, and
 * systemd-analyze verify checks the unit files as they are installed.
 */
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>

#include "daemon_harness.h"
#include "harness.h"

/* @name on PATH (or in /usr/bin), into @buf; false if it is nowhere. */
static bool find_tool(const char *name, char *buf, size_t size)
{
	const char *path = getenv("PATH");
	char dirs[4096];

	snprintf(dirs, sizeof(dirs), "%s:/usr/bin:/bin", path ? path : "");
	for (char *save, *d = strtok_r(dirs, ":", &save); d; d = strtok_r(NULL, ":", &save)) {
		snprintf(buf, size, "%s/%s", d, name);
		if (access(buf, X_OK) == 0)
			return true;
	}
	return false;
}

/* The program under test: the build's, or (installed elsewhere) the one on PATH. */
static const char *tool(const char *built, const char *name, char *buf, size_t size)
{
	if (access(built, X_OK) == 0)
		return built;
	if (!find_tool(name, buf, size))
		SKIP("%s is neither built (%s) nor on PATH", name, built);
	return buf;
}

/* Our NOTIFY_SOCKET: a datagram socket that receives the sender's credentials. */
static int notify_socket(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0), one = 1;

	CHECK(fd >= 0);
	CHECK(strlen(path) < sizeof(sa.sun_path));
	memcpy(sa.sun_path, path, strlen(path) + 1);
	CHECK(bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0);
	CHECK(setsockopt(fd, SOL_SOCKET, SO_PASSCRED, &one, sizeof(one)) == 0);
	return fd;
}

/*
 * Wait up to @ms for a notification containing the line @want; append every
 * message received to @log (@size). The sender's pid into *ret_pid.
 */
static bool wait_notify(int fd, const char *want, int ms, char *log, size_t size, pid_t *ret_pid)
{
	for (;;) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		union {
			struct cmsghdr h;
			char buf[CMSG_SPACE(sizeof(struct ucred))];
		} ctl;
		char msg[4096];
		struct iovec iov = { msg, sizeof(msg) - 1 };
		struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = &ctl,
				     .msg_controllen = sizeof(ctl) };
		ssize_t n;

		if (poll(&p, 1, ms) != 1)
			return false;
		n = recvmsg(fd, &mh, 0);
		CHECK(n >= 0);
		msg[n] = '\0';
		for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c)) {
			if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_CREDENTIALS) {
				struct ucred cr;

				memcpy(&cr, CMSG_DATA(c), sizeof(cr));
				*ret_pid = cr.pid;
			}
		}
		printf("# notify from %d: %s\n", (int)*ret_pid, msg);
		snprintf(log + strlen(log), size - strlen(log), "%s\n", msg);
		for (char *save, *l = strtok_r(msg, "\n", &save); l; l = strtok_r(NULL, "\n", &save))
			if (strcmp(l, want) == 0)
				return true;
	}
}

TEST_TIMEOUT(socket_activation_and_notify, 60)
{
	char activate[512], dbuf[512], cbuf[512], own[256], nsock[256], cfg[256];
	char *sock = sock_path; /* the passed socket; ctl() points daxpoolctl there */
	char logpath[256], env[300], log[8192] = "", out[65536];
	const char *daemon;
	pid_t pid, sender = 0;
	int nfd, status, rc;
	struct stat st;
	FILE *f;

#ifndef DAXPOOLD_HAVE_SYSTEMD
	SKIP("daxpoold was built without libsystemd: no socket activation to test");
#endif
	if (!find_tool("systemd-socket-activate", activate, sizeof(activate)))
		SKIP("systemd-socket-activate not found (apt-get install systemd)");
	daemon = tool(DAXPOOLD_PATH, "daxpoold", dbuf, sizeof(dbuf));
	tool(DAXPOOLCTL_PATH, "daxpoolctl", cbuf, sizeof(cbuf)); /* skips without one */
	snprintf(sock_path, sizeof(sock_path), "%s/activated.sock", fixture_dir());
	snprintf(own, sizeof(own), "%s/own.sock", fixture_dir());
	snprintf(nsock, sizeof(nsock), "%s/notify.sock", fixture_dir());
	snprintf(cfg, sizeof(cfg), "%s/daxpoold.conf", fixture_dir());
	snprintf(logpath, sizeof(logpath), "%s/daxpoold.log", fixture_dir());
	/* The configuration names another socket: a daemon that made its own would use it. */
	f = fopen(cfg, "w");
	CHECK(f);
	fprintf(f, "socket = %s\n", own);
	fclose(f);
	nfd = notify_socket(nsock);
	snprintf(env, sizeof(env), "NOTIFY_SOCKET=%s", nsock);

	pid = fork();
	CHECK(pid >= 0);
	if (pid == 0) {
		/* Without --accept it execs the daemon in this process: pid is daxpoold's. */
		char *const argv[] = { activate, (char *)"-l", sock, (char *)"--seqpacket",
				       (char *)"-E", env, (char *)daemon, (char *)"--foreground",
				       (char *)"-c", cfg, NULL };
		int lfd = open(logpath, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);

		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (lfd < 0 || dup2(lfd, 2) < 0)
			_exit(126);
		execv(activate, argv);
		_exit(127);
	}

	/*
	 * systemd-socket-activate (like a .socket unit) starts the daemon at the
	 * first connection: the socket exists first, the daemon after.
	 */
	for (int i = 0; i < 2000 && stat(sock, &st) < 0; i++)
		usleep(5000);
	CHECK(stat(sock, &st) == 0 && S_ISSOCK(st.st_mode));
	rc = ctl(out, sizeof(out), (const char *const[]){ "status", "--json", NULL });
	printf("# daxpoolctl status: rc %d: %.200s\n", rc, out);
	CHECK_EQ(rc, 0);
	CHECK(strstr(out, "\"clients\""));
	if (!wait_notify(nfd, "READY=1", 20000, log, sizeof(log), &sender)) {
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
		dp_test_fail(__FILE__, __LINE__, "no READY=1 from daxpoold (got: %s)", log);
	}
	CHECK_EQ(sender, pid);
	CHECK(strstr(log, "STATUS="));
	/* It listens on the socket it was given, not on one of its own. */
	CHECK(access(own, F_OK) < 0 && errno == ENOENT);

	/* Again: the socket stays the daemon's after a connection closed. */
	rc = ctl(out, sizeof(out), (const char *const[]){ "status", NULL });
	CHECK_EQ(rc, 0);
	CHECK(access(own, F_OK) < 0);

	CHECK(kill(pid, SIGTERM) == 0);
	CHECK(wait_notify(nfd, "STOPPING=1", 10000, log, sizeof(log), &sender));
	CHECK_EQ(waitpid(pid, &status, 0), pid);
	CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	/* What it logged names the socket it was given. */
	f = fopen(logpath, "r");
	CHECK(f);
	out[fread(out, 1, sizeof(out) - 1, f)] = '\0';
	fclose(f);
	printf("# daxpoold said:\n%s", out);
	CHECK(strstr(out, sock) && strstr(out, "passed by systemd"));
	close(nfd);
}

/* The unit files as installed (ExecStart pointing at this build) pass systemd-analyze verify. */
TEST_TIMEOUT(unit_files_verify, 60)
{
	char analyze[512], dbuf[512], cmd[4096], line[512], svc[256], dst[256];
	const char *daemon;
	FILE *in, *outf;
	int rc;

	if (!find_tool("systemd-analyze", analyze, sizeof(analyze)))
		SKIP("systemd-analyze not found (apt-get install systemd)");
	daemon = tool(DAXPOOLD_PATH, "daxpoold", dbuf, sizeof(dbuf));
	/* The configured service (the build's), ExecStart pointed at the daemon under test. */
	snprintf(svc, sizeof(svc), "%s", DAXPOOLD_SERVICE);
	snprintf(dst, sizeof(dst), "%s/daxpoold.service", fixture_dir());
	in = fopen(svc, "r");
	if (!in)
		SKIP("%s not found (not a build tree)", svc);
	outf = fopen(dst, "w");
	CHECK(outf);
	while (fgets(line, sizeof(line), in)) {
		if (strncmp(line, "ExecStart=", 10) == 0) {
			const char *args = strchr(line + 10, ' ');

			fprintf(outf, "ExecStart=%s%s", daemon, args ? args : "\n");
		} else {
			fputs(line, outf);
		}
	}
	fclose(in);
	fclose(outf);
	snprintf(cmd, sizeof(cmd), "cp %s %s/ && cd %s && %s verify --man=no daxpoold.socket "
		 "daxpoold.service 2>&1", DAXPOOLD_SOCKET, fixture_dir(), fixture_dir(), analyze);
	in = popen(cmd, "r");
	CHECK(in);
	while (fgets(line, sizeof(line), in))
		printf("# %s", line);
	rc = pclose(in);
	CHECK(WIFEXITED(rc) && WEXITSTATUS(rc) == 0);
	/* --man=no above: each Documentation= page must exist in man/ under its section. */
	in = fopen(dst, "r");
	CHECK(in);
	while (fgets(line, sizeof(line), in)) {
		char *save;

		if (strncmp(line, "Documentation=", 14) != 0)
			continue;
		for (char *w = strtok_r(line + 14, " \n", &save); w; w = strtok_r(NULL, " \n", &save)) {
			char page[128], sect[8], path[512];

			if (sscanf(w, "man:%127[^(](%7[^)])", page, sect) != 2)
				continue;
			snprintf(path, sizeof(path), "%s/man/%s.%s", DAXPOOL_SOURCE_DIR, page, sect);
			printf("# %s -> %s\n", w, path);
			CHECK(access(path, R_OK) == 0);
		}
	}
	fclose(in);
}
