/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * daxpoold against clients that do not play along: a holder SIGKILLed in the
 * middle of a drain, registrations without proof of access, a connection
 * flood, a client over its limits, a client that never reads. The daemon runs
 * as root (as the tests do); the adversaries run as the user nobody
 * (setgroups, setgid, setuid in a child) where it matters, and speak the wire
 * protocol directly.
 */
#include <dirent.h>
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <pthread.h>
#include <pwd.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>

#include <json-c/json.h>

#include "daxpool.h"
#include "harness.h"
#include "daemon_harness.h"
#include "util/protocol.h"

#define REGION_SIZE (8u << 20)

/* ---- the wire ---- */

/* A socket to the daemon, HELLO answered; or -errno (a REFUSED's status). */
static int raw_connect(uint32_t role)
{
	return dp_proto_connect(sock_path, role, 5000);
}

/* Send @m as one datagram with @n_fds descriptors. */
static int raw_send(int fd, const struct dp_msg *m, const int *fds, size_t n_fds)
{
	static uint8_t buf[DP_PROTO_MAX_DGRAM];
	int n = dp_proto_encode(m, 0, buf, sizeof(buf));

	CHECK(n > 0);
	return dp_proto_send_fds(fd, buf, (size_t)n, fds, n_fds, 0);
}

/* The next message from the daemon within @timeout_ms: 1, 0 at a hangup, -ETIMEDOUT. */
static int raw_recv(int fd, struct dp_msg *m, int timeout_ms)
{
	static uint8_t buf[DP_PROTO_MAX_DGRAM];
	struct pollfd pfd = { .fd = fd, .events = POLLIN };
	ssize_t n;

	if (poll(&pfd, 1, timeout_ms) != 1)
		return -ETIMEDOUT;
	n = recv(fd, buf, sizeof(buf), 0);
	if (n <= 0)
		return 0;
	CHECK_EQ(dp_proto_decode(buf, (size_t)n, m), n);
	return 1;
}

static int region_add(int fd, uint64_t id, int region_fd)
{
	struct dp_msg m = { .type = DP_MSG_REGION_ADD, .region_add.id = id };

	return raw_send(fd, &m, &region_fd, region_fd >= 0 ? 1 : 0);
}

/* Wait for a REFUSED (other messages skipped); false if none came in @timeout_ms. */
static bool wait_refused(int fd, struct dp_msg *m, int timeout_ms)
{
	uint64_t end = now_ns() + (uint64_t)timeout_ms * 1000000u;

	while (now_ns() < end) {
		if (raw_recv(fd, m, 100) == 1 && m->type == DP_MSG_REFUSED)
			return true;
	}
	return false;
}

/* ---- the daemon's side ---- */

/*
 * ThreadSanitizer's shadow memory and history grow the daemon's resident set
 * by many times what it allocates: there the memory budgets are reported,
 * not enforced (the limits' other effects still are).
 */
#if defined(__SANITIZE_THREAD__)
#define RSS_BUDGETS 0
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define RSS_BUDGETS 0
#endif
#endif
#ifndef RSS_BUDGETS
#define RSS_BUDGETS 1
#endif

/* A field of /proc/PID/status in kB (VmRSS:). */
static long proc_status_kb(pid_t pid, const char *field)
{
	char path[64], line[256];
	long v = -1;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	f = fopen(path, "re");
	CHECK(f);
	while (fgets(line, sizeof(line), f))
		if (strncmp(line, field, strlen(field)) == 0)
			v = strtol(line + strlen(field), NULL, 10);
	fclose(f);
	return v;
}

/* CPU time the process used so far, in ms (utime + stime). */
static long proc_cpu_ms(pid_t pid)
{
	char path[64], buf[1024], *p;
	unsigned long ut, st;
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	CHECK(fd >= 0);
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	CHECK(n > 0);
	buf[n] = '\0';
	p = strrchr(buf, ')');
	CHECK(p);
	/* After "pid (comm)": state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt utime stime */
	CHECK(sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st) == 2);
	return (long)((ut + st) * 1000 / (unsigned long)sysconf(_SC_CLK_TCK));
}

static int proc_fd_count(pid_t pid);

/* The daemon's count of descriptors once it is @want, or after a second whatever it is. */
static int daemon_fds_settle(int want)
{
	int n = -1;

	/* The daemon closes a connection just after its answer is sent: let it. */
	for (int i = 0; i < 100 && (n = proc_fd_count(daemon_pid)) != want; i++)
		msleep(10);
	return n;
}

static int proc_fd_count(pid_t pid)
{
	char path[64];
	int n = 0;
	DIR *d;

	snprintf(path, sizeof(path), "/proc/%d/fd", (int)pid);
	d = opendir(path);
	CHECK(d);
	while (readdir(d))
		n++;
	closedir(d);
	return n - 2;
}

/*
 * Start the daemon for a measure of its memory: under AddressSanitizer its
 * quarantine keeps what it frees (hundreds of MB by default); without it the
 * setting means nothing.
 */
static void daemon_start_measured(const char *config)
{
	const char *asan = getenv("ASAN_OPTIONS");
	char *saved = asan ? strdup(asan) : NULL, opts[1024];

	snprintf(opts, sizeof(opts), "%s%squarantine_size_mb=0", asan ? asan : "",
		 asan && *asan ? ":" : "");
	setenv("ASAN_OPTIONS", opts, 1);
	daemon_start(config);
	if (saved)
		setenv("ASAN_OPTIONS", saved, 1);
	else
		unsetenv("ASAN_OPTIONS");
	free(saved);
}

/* The clients of the daemon's status, and of them the one with @pid (NULL: none). */
static json_object *status_client(json_object *doc, pid_t pid)
{
	json_object *clients = json_object_object_get(doc, "clients");

	for (size_t i = 0; i < json_object_array_length(clients); i++) {
		json_object *c = json_object_array_get_idx(clients, i);

		if (json_object_get_int(json_object_object_get(c, "pid")) == pid)
			return c;
	}
	return NULL;
}

/* ---- the user nobody ---- */

static uid_t nobody_uid;
static gid_t nobody_gid;

/* Let nobody reach the socket: the test's directory is mkdtemp()'s 0700. */
static void nobody_setup(void)
{
	struct passwd *pw = getpwnam("nobody");

	if (!pw || geteuid() != 0)
		SKIP("needs root and a user nobody");
	nobody_uid = pw->pw_uid;
	nobody_gid = pw->pw_gid;
	CHECK(chmod(fixture_dir(), 0755) == 0);
}

/* In a child: become nobody for good (what setpriv --reuid --regid --clear-groups does). */
static void become_nobody(void)
{
	CHECK(setgroups(0, NULL) == 0);
	CHECK(setgid(nobody_gid) == 0);
	CHECK(setuid(nobody_uid) == 0);
	CHECK(getuid() == nobody_uid && geteuid() == nobody_uid);
	prctl(PR_SET_PDEATHSIG, SIGKILL); /* the change of credentials cleared it */
}

/* A file of @size in the test's directory, owned by @uid, mode @mode. */
static const char *owned_file(const char *name, uid_t uid, mode_t mode, off_t size)
{
	static char paths[4][PATH_MAX];
	static int next;
	char *p = paths[next++ % 4];
	int fd;

	snprintf(p, PATH_MAX, "%s/%s", fixture_dir(), name);
	fd = open(p, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
	CHECK(fd >= 0);
	CHECK(ftruncate(fd, size) == 0);
	CHECK(fchown(fd, uid, (gid_t)-1) == 0);
	CHECK(fchmod(fd, mode) == 0);
	close(fd);
	return p;
}

static void root_status_answers(void);

/* ---- a holder SIGKILLed mid-drain ---- */

struct holder_shared {
	atomic_int ready;
};

/*
 * A library client that maps @path and holds 1000 pins with no revoke
 * functions: it never drains by itself. Returns its pid.
 *
 * Like a server, it has many descriptors open, from before it connected.
 * That is what makes its SIGKILL hang up its daxpoold socket well before its
 * pidfd turns readable: an exiting process releases its files in the reverse
 * order of their numbers, after closing them all, and only then exits; so
 * everything numbered below the socket (here up to 10,000 eventfds; in the field
 * an io_uring with registered buffers, or ASan's teardown) is released after
 * the daemon saw the hangup.
 */
static pid_t start_holder(const char *path, struct holder_shared *sh)
{
	pid_t pid = fork();

	CHECK(pid >= 0);
	if (pid == 0) {
		static struct daxpool_pin *pins[1000];
		struct daxpool_region *region;
		struct daxpool_map *map;
		struct daxpool_ctx *ctx;

		struct rlimit rl;

		prctl(PR_SET_PDEATHSIG, SIGKILL);
		prctl(PR_SET_NAME, "stubborn");
		CHECK(getrlimit(RLIMIT_NOFILE, &rl) == 0);
		rl.rlim_cur = rl.rlim_max;
		CHECK(setrlimit(RLIMIT_NOFILE, &rl) == 0);
		for (rlim_t i = 0; i < 10000 && i + 200 < rl.rlim_cur; i++)
			CHECK(eventfd(0, EFD_CLOEXEC) >= 0);
		CHECK_OK(daxpool_ctx_new(&ctx));
		CHECK_OK(daxpool_ctx_connect_daemon(ctx, sock_path));
		CHECK_OK(daxpool_region_open(ctx, path, 0, &region));
		CHECK_OK(daxpool_map_new(region, 0, 1u << 20, 0, &map));
		for (int i = 0; i < 1000; i++)
			CHECK_OK(daxpool_pin_new(map, (char *)daxpool_map_get_address(map) + i * 512,
						 512,
						 i % 2 ? DAXPOOL_PIN_LONGTERM : DAXPOOL_PIN_TRANSIENT,
						 DAXPOOL_PIN_DEVICE_READ, &pins[i]));
		atomic_store(&sh->ready, 1);
		for (;;)
			pause();
	}
	return pid;
}

/* Until status shows @pid with 1000 pins; then until the target is draining (@draining). */
static void wait_holder(pid_t pid, bool draining)
{
	for (int i = 0; i < 3000; i++) {
		json_object *doc = daemon_status(), *c = status_client(doc, pid), *r = NULL;
		bool ok = false;

		if (c && json_object_array_length(json_object_object_get(c, "regions")) == 1)
			r = json_object_array_get_idx(json_object_object_get(c, "regions"), 0);
		if (r && json_object_array_length(json_object_object_get(r, "pins")) == 1000)
			ok = !draining ||
			     json_object_get_boolean(json_object_object_get(r, "draining"));
		json_object_put(doc);
		if (ok)
			return;
		msleep(1);
	}
	dp_test_fail(__FILE__, __LINE__, "pid %d: not registered%s in time", (int)pid,
		     draining ? " and draining" : "");
}

/* Read a whole REPLY; its status, *ret_doc its JSON. */
static int read_reply(int fd, json_object **ret_doc, int timeout_ms)
{
	static struct dp_msg m;
	char *text = NULL;
	size_t len = 0;
	bool more = true;
	int status = 0;

	while (more) {
		if (raw_recv(fd, &m, timeout_ms) != 1) {
			free(text);
			return -ETIMEDOUT;
		}
		CHECK_EQ(m.type, DP_MSG_REPLY);
		text = realloc(text, len + m.reply.text_len + 1);
		CHECK(text);
		memcpy(text + len, m.reply.text, m.reply.text_len);
		len += m.reply.text_len;
		text[len] = '\0';
		status = m.reply.status;
		more = m.reply.flags & DP_REPLY_MORE;
	}
	*ret_doc = json_tokener_parse(text);
	CHECK(*ret_doc);
	free(text);
	return status;
}

TEST_TIMEOUT(holder_sigkilled_mid_drain_counts_as_drained, 600)
{
	struct holder_shared *sh = fixture_shared(sizeof(*sh));
	const char *path = fixture_plain_file(REGION_SIZE);
	int failed = 0;

	daemon_start(NULL);
	for (int round = 0; round < 100; round++) {
		struct dp_msg op = { .type = DP_MSG_OP };
		json_object *doc;
		pid_t pid;
		int fd, r, status;

		atomic_store(&sh->ready, 0);
		pid = start_holder(path, sh);
		wait_holder(pid, false);
		fd = raw_connect(DP_ROLE_CTL);
		CHECK(fd >= 0);
		op.op.op = DP_OP_RELEASE;
		op.op.timeout_ms = 20000;
		snprintf(op.op.target, sizeof(op.op.target), "%s", path);
		CHECK_OK(raw_send(fd, &op, NULL, 0));
		/* The holder got its REVOKE and will not answer: kill it mid-drain. */
		wait_holder(pid, true);
		CHECK(kill(pid, SIGKILL) == 0);
		r = read_reply(fd, &doc, 10000);
		CHECK(r != -ETIMEDOUT);
		if (r != 0) {
			fprintf(stderr, "round %d: %s\n", round,
				json_object_to_json_string_ext(doc, JSON_C_TO_STRING_PLAIN));
			failed++;
		} else {
			CHECK(strcmp(json_object_get_string(json_object_object_get(doc, "result")),
				     "released") == 0);
		}
		json_object_put(doc);
		close(fd);
		CHECK_EQ(waitpid(pid, &status, 0), pid);
	}
	if (failed)
		dp_test_fail(__FILE__, __LINE__, "%d of 100 releases failed after their holder was "
						 "killed mid-drain", failed);
	daemon_kill(SIGTERM);
}

/*
 * The other side of it: a holder that hangs up mid-drain but lives on may
 * still hold what it mapped; the release fails, after the daemon waited for
 * its pidfd in vain, with that said, and the daemon serves on.
 */
TEST(holder_hanging_up_alive_fails_the_release_clearly)
{
	const char *path = fixture_plain_file(REGION_SIZE);
	struct dp_msg op = { .type = DP_MSG_OP }, m;
	json_object *doc;
	uint64_t t0;
	int cfd, fd, rfd;

	daemon_start(NULL);
	/* This process is the holder: registered by descriptor, then silent. */
	cfd = raw_connect(DP_ROLE_CLIENT);
	CHECK(cfd >= 0);
	rfd = open(path, O_RDWR | O_CLOEXEC);
	CHECK(rfd >= 0);
	CHECK_OK(region_add(cfd, 1, rfd));
	close(rfd);
	fd = raw_connect(DP_ROLE_CTL);
	CHECK(fd >= 0);
	op.op.op = DP_OP_RELEASE;
	op.op.timeout_ms = 20000;
	snprintf(op.op.target, sizeof(op.op.target), "%s", path);
	CHECK_OK(raw_send(fd, &op, NULL, 0));
	CHECK_EQ(raw_recv(cfd, &m, 5000), 1);
	CHECK_EQ(m.type, DP_MSG_REVOKE);
	t0 = now_ns();
	close(cfd);
	CHECK_EQ(read_reply(fd, &doc, 10000), -ECONNRESET);
	CHECK(now_ns() - t0 > 1000000000ull); /* it waited for the pidfd */
	CHECK(strstr(json_object_get_string(json_object_object_get(doc, "message")),
		     "did not exit"));
	json_object_put(doc);
	close(fd);
	root_status_answers();
	daemon_kill(SIGTERM);
}

/*
 * A holder that hung up mid-drain and lives on is still a holder: when the
 * release times out before the daemon gives up waiting for its pidfd, the
 * report names it among the holders (it once listed only the connected ones,
 * so the timeout named nobody).
 */
TEST(holder_hung_up_alive_is_named_at_the_timeout)
{
	const char *path = fixture_plain_file(REGION_SIZE);
	struct dp_msg op = { .type = DP_MSG_OP }, m;
	json_object *doc, *holders;
	bool named = false;
	int cfd, fd, rfd;

	daemon_start(NULL);
	cfd = raw_connect(DP_ROLE_CLIENT);
	CHECK(cfd >= 0);
	rfd = open(path, O_RDWR | O_CLOEXEC);
	CHECK(rfd >= 0);
	CHECK_OK(region_add(cfd, 1, rfd));
	close(rfd);
	fd = raw_connect(DP_ROLE_CTL);
	CHECK(fd >= 0);
	op.op.op = DP_OP_RELEASE;
	op.op.timeout_ms = 500; /* well before the 2 s the daemon waits for a hung-up pidfd */
	snprintf(op.op.target, sizeof(op.op.target), "%s", path);
	CHECK_OK(raw_send(fd, &op, NULL, 0));
	CHECK_EQ(raw_recv(cfd, &m, 5000), 1);
	CHECK_EQ(m.type, DP_MSG_REVOKE);
	close(cfd);
	CHECK_EQ(read_reply(fd, &doc, 10000), -ETIMEDOUT);
	CHECK(strcmp(json_object_get_string(json_object_object_get(doc, "result")), "timeout") == 0);
	holders = json_object_object_get(doc, "holders");
	printf("# holders: %s\n", json_object_to_json_string(holders));
	for (size_t i = 0; i < json_object_array_length(holders); i++)
		named |= json_object_get_int(json_object_object_get(
				 json_object_array_get_idx(holders, i), "pid")) == getpid();
	CHECK(named);
	json_object_put(doc);
	close(fd);
	root_status_answers();
	daemon_kill(SIGTERM);
}

/* ---- connections that never say hello ---- */

/* A connection to the daemon that sends nothing. */
static int silent_connect(void)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);

	CHECK(fd >= 0);
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", sock_path);
	CHECK(connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0);
	return fd;
}

/*
 * A connection that never sends HELLO is closed after hello_timeout: it
 * would hold a slot of max_connections for ever. One that said hello stays.
 */
TEST(connection_without_hello_is_closed)
{
	struct pollfd pfd[3];
	uint64_t t0;
	int n;

	daemon_start("hello_timeout = 1\n");
	pfd[0] = (struct pollfd){ .fd = silent_connect(), .events = POLLRDHUP };
	pfd[1] = (struct pollfd){ .fd = silent_connect(), .events = POLLRDHUP };
	pfd[2] = (struct pollfd){ .fd = raw_connect(DP_ROLE_CLIENT), .events = POLLRDHUP };
	CHECK(pfd[2].fd >= 0);
	t0 = now_ns();
	/* Both silent ones go within the second and a bit; never the one that said hello. */
	while (now_ns() - t0 < 5000000000ull) {
		n = poll(pfd, 2, 100);
		CHECK(n >= 0);
		if ((pfd[0].revents & (POLLRDHUP | POLLHUP)) && (pfd[1].revents & (POLLRDHUP | POLLHUP)))
			break;
	}
	printf("# the silent connections were closed after %llu ms\n",
	       (unsigned long long)((now_ns() - t0) / 1000000u));
	CHECK(pfd[0].revents & (POLLRDHUP | POLLHUP));
	CHECK(pfd[1].revents & (POLLRDHUP | POLLHUP));
	CHECK(now_ns() - t0 >= 900000000ull); /* not before the timeout */
	CHECK_EQ(poll(&pfd[2], 1, 0), 0);
	for (int i = 0; i < 3; i++)
		close(pfd[i].fd);
	root_status_answers();
	daemon_kill(SIGTERM);
}

/* ---- registrations prove access ---- */

/* nobody's forger: what it does, reported through the exit status (0: as expected). */
static void forger(const char *own, const char *roots)
{
	struct dp_msg m;
	int fd, ofd, pfd[2];

	become_nobody();
	/* It cannot open root's file: the only proof it could give. */
	CHECK(open(roots, O_RDONLY | O_CLOEXEC) < 0 && errno == EACCES);
	fd = raw_connect(DP_ROLE_CLIENT);
	CHECK(fd >= 0);

	/* Without a descriptor: refused, nothing recorded, the connection stays. */
	CHECK_OK(region_add(fd, 1, -1));
	CHECK(wait_refused(fd, &m, 2000));
	CHECK_EQ(m.refused.type, DP_MSG_REGION_ADD);
	CHECK(m.refused.id == 1);
	CHECK_EQ(m.refused.status, -EBADF);
	CHECK(strstr(m.refused.reason, "descriptor"));
	/* Its maps and pins are not recorded either, and do not end the connection. */
	struct dp_msg pin = { .type = DP_MSG_PIN_ADD };
	pin.pin_add = (typeof(pin.pin_add)){ 2, 1, 0, 4096, 1, 1, 1, 1 };
	CHECK_OK(raw_send(fd, &pin, NULL, 0));

	/* A pipe, and a character device that is not device-dax: refused. */
	CHECK(pipe(pfd) == 0);
	CHECK_OK(region_add(fd, 3, pfd[0]));
	CHECK(wait_refused(fd, &m, 2000));
	CHECK(m.refused.id == 3 && m.refused.status == -EINVAL);
	ofd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	CHECK(ofd >= 0);
	CHECK_OK(region_add(fd, 4, ofd));
	CHECK(wait_refused(fd, &m, 2000));
	CHECK(m.refused.id == 4 && m.refused.status == -EINVAL);
	CHECK(strstr(m.refused.reason, "not device-dax"));
	close(ofd);

	/* Its own file: recorded, as the kernel knows it. */
	ofd = open(own, O_RDWR | O_CLOEXEC);
	CHECK(ofd >= 0);
	CHECK_OK(region_add(fd, 5, ofd));
	close(ofd);
	close(pfd[0]);
	close(pfd[1]);
	/* Then it stays, answers nothing (no REVOKE_DONE), until killed. */
	for (;;)
		pause();
}

TEST(forged_registration_is_refused)
{
	const char *own, *roots;
	json_object *doc, *c, *regions, *r;
	struct stat st;
	pid_t pid;
	int status, n_fds, fd;

	nobody_setup();
	daemon_start("socket_mode = 0666\n");
	own = owned_file("nobodys", nobody_uid, 0600, 3 * 4096);
	roots = owned_file("roots", 0, 0600, REGION_SIZE);
	/* daemon_start()'s probe may still be closing: wait for the count to settle. */
	for (int i = 0, last = -1; i < 100; i++, msleep(10)) {
		n_fds = proc_fd_count(daemon_pid);
		if (n_fds == last)
			break;
		last = n_fds;
	}

	pid = fork();
	CHECK(pid >= 0);
	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		forger(own, roots);
	}
	/* Its one region is its own file, with the size the kernel gives (the message has none). */
	for (int i = 0;; i++) {
		doc = daemon_status();
		c = status_client(doc, pid);
		regions = c ? json_object_object_get(c, "regions") : NULL;
		if (regions && json_object_array_length(regions) == 1)
			break;
		CHECK(waitpid(pid, &status, WNOHANG) == 0); /* the forger failed a check */
		CHECK(i < 2000);
		json_object_put(doc);
		msleep(5);
	}
	r = json_object_array_get_idx(regions, 0);
	CHECK(strcmp(json_object_get_string(json_object_object_get(r, "path")), own) == 0);
	CHECK(strcmp(json_object_get_string(json_object_object_get(r, "kind")), "file") == 0);
	CHECK_EQ(json_object_get_uint64(json_object_object_get(r, "size")), 3 * 4096);
	CHECK_EQ(json_object_array_length(json_object_object_get(r, "pins")), 0);
	CHECK_EQ(json_object_get_int(json_object_object_get(c, "uid")), (int)nobody_uid);
	json_object_put(doc);
	/* Every descriptor it passed was closed again: only its connection's two are new. */
	CHECK_EQ(daemon_fds_settle(n_fds + 2), n_fds + 2);

	/* It registered nothing of root's file: root's release does not wait for it. */
	{
		const char *argv[] = { "release", roots, "--timeout", "5", NULL };
		static char out[1 << 16];
		uint64_t t0 = now_ns();

		CHECK(stat(roots, &st) == 0);
		CHECK_EQ(ctl(out, sizeof(out), argv), 0);
		CHECK(now_ns() - t0 < 3000000000ull);
	}
	/* A CTL connection that passes descriptors has them closed, every one. */
	fd = raw_connect(DP_ROLE_CTL);
	CHECK(fd >= 0);
	{
		struct dp_msg m = { .type = DP_MSG_STATUS };
		int many[DP_PROTO_MAX_FDS];

		for (int i = 0; i < DP_PROTO_MAX_FDS; i++)
			many[i] = open("/dev/null", O_RDONLY | O_CLOEXEC);
		CHECK_OK(raw_send(fd, &m, many, DP_PROTO_MAX_FDS));
		CHECK_OK(read_reply(fd, &doc, 5000));
		json_object_put(doc);
		for (int i = 0; i < DP_PROTO_MAX_FDS; i++)
			close(many[i]);
	}
	close(fd);
	CHECK_EQ(daemon_fds_settle(n_fds + 2), n_fds + 2);
	kill(pid, SIGKILL);
	CHECK_EQ(waitpid(pid, &status, 0), pid);
	CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
	daemon_kill(SIGTERM);
}

/* ---- connection flood ---- */

/*
 * As nobody, open @n connections and keep them; *accepted and *refused
 * (-EUSERS) through @sh. Non-blocking connects: a full backlog is no wait.
 */
struct flood_shared {
	atomic_int done, accepted, refused_users, other;
};

static pid_t start_flood(int n, struct flood_shared *sh, bool hello)
{
	pid_t pid = fork();

	CHECK(pid >= 0);
	if (pid == 0) {
		struct rlimit rl = { 4096, 4096 };

		prctl(PR_SET_PDEATHSIG, SIGKILL);
		setrlimit(RLIMIT_NOFILE, &rl);
		become_nobody();
		for (int i = 0; i < n; i++) {
			if (hello) {
				int fd = raw_connect(DP_ROLE_CTL);

				if (fd >= 0)
					atomic_fetch_add(&sh->accepted, 1);
				else if (fd == -EUSERS)
					atomic_fetch_add(&sh->refused_users, 1);
				else
					atomic_fetch_add(&sh->other, 1);
			} else {
				struct sockaddr_un sa = { .sun_family = AF_UNIX };
				int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK,
						0);

				snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", sock_path);
				if (fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0)
					atomic_fetch_add(&sh->accepted, 1);
				else
					atomic_fetch_add(&sh->other, 1);
			}
		}
		atomic_store(&sh->done, 1);
		for (;;)
			pause();
	}
	for (int i = 0; i < 30000 && !atomic_load(&sh->done); i++)
		msleep(1);
	CHECK(atomic_load(&sh->done));
	return pid;
}

/*
 * Root's status answers while what the test set up still holds on (the
 * processes it started stay until the test ends): a loop held by them would
 * never answer. The bound only ends the test; it is no speed claim.
 */
#define ROOT_STATUS_BOUND_MS 15000u

static void root_status_answers(void)
{
	struct dp_msg req = { .type = DP_MSG_STATUS };
	uint64_t t0 = now_ns();
	json_object *doc = NULL;

	CHECK_OK(daemon_ask(&req, &doc));
	json_object_put(doc);
	if (now_ns() - t0 > (uint64_t)ROOT_STATUS_BOUND_MS * 1000000u)
		dp_test_fail(__FILE__, __LINE__, "root's status took %llu ms",
			     (unsigned long long)((now_ns() - t0) / 1000000u));
}

/* The daemon gets @n descriptors at most, from now on (lowered under it: prlimit). */
static void daemon_start_nofile(const char *config, rlim_t n)
{
	struct rlimit rl = { n, n };

	daemon_start(config);
	CHECK(prlimit(daemon_pid, RLIMIT_NOFILE, &rl, NULL) == 0);
}

TEST(connection_flood_root_still_answers)
{
	struct flood_shared *sh = fixture_shared(sizeof(*sh));
	pid_t pid;
	int status;

	nobody_setup();
	/* 400 connections of two descriptors each would need 800 of the 256. */
	daemon_start_nofile("socket_mode = 0666\nmax_connections_per_uid = 64\n", 256);
	pid = start_flood(400, sh, true);
	CHECK_EQ(atomic_load(&sh->accepted), 64);
	CHECK_EQ(atomic_load(&sh->refused_users), 400 - 64);
	CHECK_EQ(atomic_load(&sh->other), 0);
	root_status_answers();
	kill(pid, SIGKILL);
	CHECK_EQ(waitpid(pid, &status, 0), pid);
	daemon_kill(SIGTERM);
}

TEST(out_of_descriptors_is_not_spun_on)
{
	struct flood_shared *sh = fixture_shared(sizeof(*sh));
	long cpu0, cpu1;
	pid_t pid;
	int status;

	nobody_setup();
	/* Limits over what 96 descriptors hold: accept4() itself runs out. */
	daemon_start_nofile("socket_mode = 0666\nmax_connections = 1000\n"
			    "max_connections_per_uid = 1000\n",
			    96);
	pid = start_flood(300, sh, false);
	msleep(200);
	cpu0 = proc_cpu_ms(daemon_pid);
	msleep(1000);
	cpu1 = proc_cpu_ms(daemon_pid);
	/* Spinning on EMFILE burns the whole second; answering it costs next to nothing. */
	if (cpu1 - cpu0 > 200)
		dp_test_fail(__FILE__, __LINE__, "the daemon used %ld ms of CPU in 1 s of EMFILE",
			     cpu1 - cpu0);
	kill(pid, SIGKILL);
	CHECK_EQ(waitpid(pid, &status, 0), pid);
	/* The flood gone, root gets in again. */
	for (int i = 0; i < 200; i++) {
		int fd = raw_connect(DP_ROLE_CTL);

		if (fd >= 0) {
			close(fd);
			break;
		}
		msleep(10);
	}
	root_status_answers();
	daemon_kill(SIGTERM);
}

/* ---- per-client limits ---- */

struct pin_reader {
	int fd;
	atomic_long refused;
	atomic_bool stop;
	struct dp_msg first;
	atomic_bool have_first;
};

static void *pin_reader_main(void *arg)
{
	static uint8_t buf[DP_PROTO_MAX_DGRAM];
	static struct dp_msg m;
	struct pin_reader *pr = arg;

	while (!atomic_load(&pr->stop)) {
		struct pollfd pfd = { .fd = pr->fd, .events = POLLIN };
		ssize_t n;

		if (poll(&pfd, 1, 50) != 1)
			continue;
		n = recv(pr->fd, buf, sizeof(buf), MSG_DONTWAIT);
		if (n <= 0)
			break;
		CHECK_EQ(dp_proto_decode(buf, (size_t)n, &m), n);
		if (m.type != DP_MSG_REFUSED)
			continue;
		if (!atomic_load(&pr->have_first)) {
			pr->first = m;
			atomic_store(&pr->have_first, true);
		}
		atomic_fetch_add(&pr->refused, 1);
	}
	return NULL;
}

TEST_TIMEOUT(per_client_limits_clear_error_rss_bounded, 180)
{
	const char *path = fixture_plain_file(REGION_SIZE);
	static uint8_t batch[DP_PROTO_MAX_DGRAM];
	struct pin_reader pr = { 0 };
	json_object *doc, *c, *r;
	pthread_t th;
	long rss0, rss1;
	const long n_pins = 400000;
	uint64_t id = 100;
	int fd, rfd;

	daemon_start_measured("max_pins = 1000\nmax_maps = 1000\nmax_regions = 8\n");
	rss0 = proc_status_kb(daemon_pid, "VmRSS:");
	fd = raw_connect(DP_ROLE_CLIENT);
	CHECK(fd >= 0);

	/* Regions: the ninth is refused, with the limit named. */
	for (uint64_t i = 1; i <= 9; i++) {
		rfd = open(path, O_RDWR | O_CLOEXEC);
		CHECK(rfd >= 0);
		CHECK_OK(region_add(fd, i, rfd));
		close(rfd);
	}
	{
		struct dp_msg m;

		CHECK(wait_refused(fd, &m, 2000));
		CHECK(m.refused.type == DP_MSG_REGION_ADD && m.refused.id == 9);
		CHECK_EQ(m.refused.status, -EDQUOT);
		CHECK(strstr(m.refused.reason, "max_regions"));
	}

	/* 400,000 pins in full datagrams, the REFUSED answers read as they come. */
	pr.fd = fd;
	CHECK(pthread_create(&th, NULL, pin_reader_main, &pr) == 0);
	for (long sent = 0; sent < n_pins;) {
		size_t off = 0;
		int n;

		while (sent < n_pins) {
			struct dp_msg pin = { .type = DP_MSG_PIN_ADD };

			pin.pin_add = (typeof(pin.pin_add)){ id++, 1, 0, 4096, 1, 1, 1, 1 };
			n = dp_proto_encode(&pin, 0, batch + off, sizeof(batch) - off);
			if (n == -ENOBUFS)
				break;
			CHECK(n > 0);
			off += (size_t)n;
			sent++;
		}
		CHECK_OK(dp_proto_send_fds(fd, batch, off, NULL, 0, 0));
		/* Keep up with the answers: what the daemon queues stays small. */
		for (int i = 0; i < 10000 && atomic_load(&pr.refused) < sent - 1000 - 2000; i++)
			msleep(1);
	}
	for (int i = 0; i < 30000 && atomic_load(&pr.refused) < n_pins - 1000; i++)
		msleep(1);
	CHECK_EQ(atomic_load(&pr.refused), n_pins - 1000);
	atomic_store(&pr.stop, true);
	pthread_join(th, NULL);
	CHECK(pr.first.refused.type == DP_MSG_PIN_ADD);
	CHECK_EQ(pr.first.refused.status, -EDQUOT);
	CHECK(strstr(pr.first.refused.reason, "max_pins"));

	/* Recorded: the first 1000; the daemon did not grow with the rest. */
	doc = daemon_status();
	c = status_client(doc, getpid());
	CHECK(c);
	CHECK_EQ(json_object_array_length(json_object_object_get(c, "regions")), 8);
	r = NULL;
	for (size_t i = 0; i < 8; i++) {
		json_object *ri = json_object_array_get_idx(json_object_object_get(c, "regions"), i);

		if (json_object_array_length(json_object_object_get(ri, "pins")))
			r = ri;
	}
	CHECK(r);
	CHECK_EQ(json_object_array_length(json_object_object_get(r, "pins")), 1000);
	json_object_put(doc);
	rss1 = proc_status_kb(daemon_pid, "VmRSS:");
	fprintf(stderr, "daemon VmRSS %ld kB before, %ld kB after %ld pins\n", rss0, rss1, n_pins);
	if (RSS_BUDGETS && rss1 - rss0 > 8 * 1024)
		dp_test_fail(__FILE__, __LINE__, "the daemon grew by %ld kB", rss1 - rss0);
	close(fd);
	daemon_kill(SIGTERM);
}

/* ---- a client that never reads ---- */

/* Send @n PIN_ADDs of region 1 from @next_id on (over max_pins: each answered with REFUSED). */
static int send_pins(int fd, uint64_t *next_id, long n, int flags)
{
	static uint8_t batch[DP_PROTO_MAX_DGRAM];
	int r = 0;

	while (n > 0 && r == 0) {
		size_t off = 0;

		while (n > 0) {
			struct dp_msg pin = { .type = DP_MSG_PIN_ADD };
			int k;

			pin.pin_add = (typeof(pin.pin_add)){ *next_id, 1, 0, 4096, 1, 1, 1, 1 };
			k = dp_proto_encode(&pin, 0, batch + off, sizeof(batch) - off);
			if (k == -ENOBUFS)
				break;
			CHECK(k > 0);
			off += (size_t)k;
			(*next_id)++;
			n--;
		}
		r = dp_proto_send_fds(fd, batch, off, NULL, 0, flags);
	}
	return r;
}

TEST(client_that_never_reads_is_dropped)
{
	const char *path = fixture_plain_file(REGION_SIZE);
	struct pollfd pfd;
	long rss0, rss1, rss2;
	uint64_t id = 100, t0;
	int fd, rfd, r;

	daemon_start_measured("max_pins = 10\nmax_output = 4M\n");
	rss0 = proc_status_kb(daemon_pid, "VmRSS:");
	fd = raw_connect(DP_ROLE_CLIENT);
	CHECK(fd >= 0);
	rfd = open(path, O_RDWR | O_CLOEXEC);
	CHECK(rfd >= 0);
	CHECK_OK(region_add(fd, 1, rfd));
	close(rfd);
	pfd = (struct pollfd){ .fd = fd, .events = POLLRDHUP };

	/*
	 * 20,000 REFUSED it does not read, some 2 MB, under max_output: held,
	 * each in a buffer of its own size (a 64 KiB buffer a message cost some
	 * 8 kB each of resident memory: 160 MB).
	 */
	CHECK_OK(send_pins(fd, &id, 20000 + 10, 0));
	msleep(500);
	rss1 = proc_status_kb(daemon_pid, "VmRSS:");
	CHECK(poll(&pfd, 1, 0) == 0); /* not dropped yet */
	if (RSS_BUDGETS && rss1 - rss0 > 8 * 1024)
		dp_test_fail(__FILE__, __LINE__, "2 MB of unread messages cost the daemon %ld kB",
			     rss1 - rss0);

	/* More, until what it does not read passes max_output: dropped. */
	t0 = now_ns();
	while (now_ns() - t0 < 10000000000ull) {
		r = send_pins(fd, &id, 1000, MSG_DONTWAIT);
		if (r < 0 && r != -EAGAIN)
			break; /* EPIPE, ECONNRESET: it was dropped */
		if (poll(&pfd, 1, 1) == 1 && (pfd.revents & (POLLRDHUP | POLLHUP)))
			break;
	}
	CHECK(poll(&pfd, 1, 0) == 1 && (pfd.revents & (POLLRDHUP | POLLHUP)));
	rss2 = proc_status_kb(daemon_pid, "VmRSS:");
	fprintf(stderr, "daemon VmRSS %ld kB, %ld kB with 20,000 unread, %ld kB after the drop "
			"(%llu pins sent in all)\n",
		rss0, rss1, rss2, (unsigned long long)(id - 100));
	CHECK(!RSS_BUDGETS || rss2 - rss0 < 16 * 1024);
	close(fd);
	/* The daemon forgot it, and answers others. */
	root_status_answers();
	daemon_kill(SIGTERM);
}

/* ---- scans of /proc off the loop ---- */

struct scan_flood {
	atomic_int sent, answered, ok, again, other, released;
	char other_text[512];
};

/*
 * A process that maps @path and holds as many descriptors of it as its hard
 * limit lets it: every scan of /proc that finds its mapping reads each
 * descriptor's fdinfo (for io_uring buffers), so each takes a while. It adds
 * one to *@ready when it has them.
 */
static pid_t start_slow_mapper(const char *path, atomic_int *ready)
{
	pid_t pid = fork();

	CHECK(pid >= 0);
	if (pid == 0) {
		struct rlimit rl;
		int fd;

		prctl(PR_SET_PDEATHSIG, SIGKILL);
		prctl(PR_SET_NAME, "slow-mapper");
		CHECK(getrlimit(RLIMIT_NOFILE, &rl) == 0);
		rl.rlim_cur = rl.rlim_max;
		CHECK(setrlimit(RLIMIT_NOFILE, &rl) == 0);
		fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd < 0)
			dp_test_fail(__FILE__, __LINE__, "open %s: %m", path);
		CHECK(mmap(NULL, 1u << 20, PROT_READ, MAP_SHARED, fd, 0) != MAP_FAILED);
		for (rlim_t i = 0; i + 64 < rl.rlim_cur && i < 100000; i++)
			CHECK(dup(fd) >= 0);
		atomic_fetch_add(ready, 1);
		for (;;)
			pause();
	}
	return pid;
}

/* @n slow mappers of @path into @pids, each with its descriptors (bounded wait). */
static void start_slow_mappers(const char *path, int n, pid_t *pids, atomic_int *ready)
{
	int status;

	for (int i = 0; i < n; i++)
		pids[i] = start_slow_mapper(path, ready);
	for (int i = 0; i < 6000 && atomic_load(ready) < n; i++) {
		for (int k = 0; k < n; k++)
			CHECK(waitpid(pids[k], &status, WNOHANG) == 0); /* none failed */
		msleep(10);
	}
	CHECK_EQ(atomic_load(ready), n);
}

/* Root's status of @target; how long it took into *@ret_ns. */
static json_object *timed_status(const char *target, uint64_t *ret_ns)
{
	struct dp_msg req = { .type = DP_MSG_STATUS };
	uint64_t t0 = now_ns();
	json_object *doc;

	snprintf(req.status.target, sizeof(req.status.target), "%s", target);
	CHECK_OK(daemon_ask(&req, &doc));
	*ret_ns = now_ns() - t0;
	return doc;
}

/* STATUS of @target, or OP release of it with @timeout_ms (>= 0), on @fd. */
static void send_request(int fd, const char *target, int timeout_ms)
{
	struct dp_msg m = { .type = timeout_ms >= 0 ? DP_MSG_OP : DP_MSG_STATUS };

	if (timeout_ms >= 0) {
		m.op.op = DP_OP_RELEASE;
		m.op.timeout_ms = timeout_ms;
		snprintf(m.op.target, sizeof(m.op.target), "%s", target);
	} else {
		snprintf(m.status.target, sizeof(m.status.target), "%s", target);
	}
	CHECK_OK(raw_send(fd, &m, NULL, 0));
}

/*
 * As nobody: a release of @path that waits for its outsider, then @n statuses
 * of it, all at once; then every answer. The statuses are refused beyond
 * max_scans_per_uid (EAGAIN, saying so) or answered.
 */
static pid_t start_scan_flood(const char *path, int n, struct scan_flood *sh)
{
	pid_t pid = fork();

	CHECK(pid >= 0);
	if (pid == 0) {
		int fds[64], rel;
		json_object *doc;

		become_nobody();
		/* Connected first, so that every request is there at once. */
		rel = raw_connect(DP_ROLE_CTL);
		CHECK(rel >= 0);
		for (int i = 0; i < n; i++) {
			fds[i] = raw_connect(DP_ROLE_CTL);
			CHECK(fds[i] >= 0);
		}
		send_request(rel, path, 120000);
		for (int i = 0; i < n; i++)
			send_request(fds[i], path, -1);
		atomic_store(&sh->sent, 1);
		for (int i = 0; i < n; i++) {
			int r = read_reply(fds[i], &doc, 60000);
			const char *err = json_object_get_string(json_object_object_get(doc, "error"));

			CHECK(r != -ETIMEDOUT);
			if (r == 0 && json_object_is_type(json_object_object_get(doc, "outsiders"),
							  json_type_array))
				atomic_fetch_add(&sh->ok, 1);
			else if (r == -EAGAIN && err && strstr(err, "max_scans_per_uid"))
				atomic_fetch_add(&sh->again, 1);
			else if (atomic_fetch_add(&sh->other, 1) == 0)
				snprintf(sh->other_text, sizeof(sh->other_text), "%d %s", r,
					 json_object_to_json_string(doc));
			json_object_put(doc);
			close(fds[i]);
		}
		atomic_store(&sh->answered, 1);
		/* The release waits for the mapper: it goes when the test kills it. */
		if (read_reply(rel, &doc, 120000) == 0 &&
		    strcmp(json_object_get_string(json_object_object_get(doc, "result")),
			   "released") == 0)
			atomic_store(&sh->released, 1);
		else
			snprintf(sh->other_text, sizeof(sh->other_text), "release: %s",
				 json_object_to_json_string(doc));
		_exit(0);
	}
	return pid;
}

/*
 * Every status and operation scans /proc for holders, and a scan can be
 * slow: processes with many descriptors (here four, with some 20,000 each)
 * make it read as many fdinfo files, and one that keeps its mmap lock busy makes its maps sleep.
 * Scans run off the event loop: while a user's statuses and waiting release
 * scan, root's status answers at once, before those scans end, where a loop
 * that scanned itself would answer it after all of them (they came first).
 * Shown by order, not by a time bound: root's first status is back while
 * nobody's statuses still wait for their scans.
 */
TEST_TIMEOUT(slow_scans_do_not_hold_up_root_status, 300)
{
	struct scan_flood *sh = fixture_shared(sizeof(*sh));
	atomic_int *ready = fixture_shared(sizeof(*ready));
	struct dp_msg req = { .type = DP_MSG_STATUS };
	const char *path;
	json_object *doc;
	uint64_t t0, one_scan, all = 0;
	int asked = 0;
	pid_t mappers[4], flood;
	int status;

	nobody_setup();
	path = owned_file("slow-scan", nobody_uid, 0600, 1u << 20);
	/* Slow scans, not stuck ones: each ends, however loaded the machine. */
	daemon_start("socket_mode = 0666\nscan_timeout = 600\n");
	start_slow_mappers(path, 4, mappers, ready);

	/* One scan: root's status of the file (it finds the mappers). */
	doc = timed_status(path, &one_scan);
	CHECK_EQ(json_object_array_length(json_object_object_get(doc, "outsiders")), 4u);
	json_object_put(doc);

	flood = start_scan_flood(path, 12, sh);
	while (!atomic_load(&sh->sent))
		msleep(1);
	/*
	 * Root's statuses of everything (no target: nothing to scan), one after
	 * the other, while they scan: all of them together take less than one
	 * scan. A loop that scanned itself serves each after a scan or more.
	 */
	req.status.target[0] = '\0';
	t0 = now_ns();
	for (; asked < 5 && !atomic_load(&sh->answered); asked++) {
		CHECK_OK(daemon_ask(&req, &doc));
		json_object_put(doc);
		if (asked == 0 && atomic_load(&sh->answered))
			dp_test_fail(__FILE__, __LINE__, "root's status came back only after all of "
							 "nobody's scans: it waited for them");
	}
	all = now_ns() - t0;
	fprintf(stderr, "one scan %.3f s; %d statuses of root took %.3f s while nobody's 12 "
			"statuses and a release scanned\n",
		(double)one_scan / 1e9, asked, (double)all / 1e9);
	CHECK(asked >= 1);

	while (!atomic_load(&sh->answered))
		msleep(10);
	fprintf(stderr, "nobody's statuses: %d answered, %d refused over max_scans_per_uid\n",
		atomic_load(&sh->ok), atomic_load(&sh->again));
	if (atomic_load(&sh->other))
		dp_test_fail(__FILE__, __LINE__, "%d statuses answered otherwise, e.g. %s",
			     atomic_load(&sh->other), sh->other_text);
	CHECK_EQ(atomic_load(&sh->ok) + atomic_load(&sh->again), 12);
	CHECK(atomic_load(&sh->ok) >= 1);

	/* The outsiders go: the waiting release drains (nobody registered it) and releases. */
	for (int k = 0; k < 4; k++) {
		CHECK(kill(mappers[k], SIGKILL) == 0);
		CHECK_EQ(waitpid(mappers[k], &status, 0), mappers[k]);
	}
	CHECK_EQ(waitpid(flood, &status, 0), flood);
	if (!atomic_load(&sh->released))
		dp_test_fail(__FILE__, __LINE__, "%s", sh->other_text);
	daemon_kill(SIGTERM);
}

/* Whether @outs has a holder whose reason says the scan did not end (its pid into *ret_pid). */
static bool names_a_stuck_scan(json_object *outs, int *ret_pid)
{
	for (size_t i = 0; i < json_object_array_length(outs); i++) {
		json_object *o = json_object_array_get_idx(outs, i);
		const char *why = json_object_get_string(json_object_object_get(o, "reason"));

		if (why && strstr(why, "has not returned for")) {
			*ret_pid = json_object_get_int(json_object_object_get(o, "pid"));
			return true;
		}
	}
	return false;
}

/*
 * A scan that has not ended by scan_timeout: a status answers without it and
 * a release is refused, both naming the process the scan is stuck on as a
 * possible holder (what it maps or pins cannot be ruled out). The scan here
 * is slow, not stuck (descriptors to read, as above); on a machine where it
 * takes less than scan_timeout (1 s) there is nothing to see and the test
 * says so.
 */
TEST_TIMEOUT(a_scan_past_its_bound_names_what_it_is_stuck_on, 300)
{
	atomic_int *ready = fixture_shared(sizeof(*ready));
	struct dp_msg req = { .type = DP_MSG_STATUS };
	const char *path = fixture_plain_file(1u << 20);
	pid_t mappers[8];
	json_object *doc;
	uint64_t took;
	int status, pid = 0, r;

	daemon_start("scan_timeout = 1\n");
	start_slow_mappers(path, 8, mappers, ready);

	doc = timed_status(path, &took);
	if (!names_a_stuck_scan(json_object_object_get(doc, "outsiders"), &pid)) {
		size_t n = json_object_array_length(json_object_object_get(doc, "outsiders"));

		json_object_put(doc);
		for (int k = 0; k < 8; k++)
			kill(mappers[k], SIGKILL);
		CHECK_EQ(n, 8u); /* it ended in time: then it found them all */
		daemon_kill(SIGTERM);
		SKIP("a scan of 8 processes with many descriptors took only %.3f s here, within "
		     "scan_timeout", (double)took / 1e9);
	}
	fprintf(stderr, "the status answered after %.3f s, naming pid %d\n", (double)took / 1e9,
		pid);
	CHECK(pid > 0);
	json_object_put(doc);

	/* A release of it: refused at the bound, naming it too; nothing was changed. */
	req = (struct dp_msg){ .type = DP_MSG_OP };
	req.op.op = DP_OP_RELEASE;
	req.op.timeout_ms = 0;
	snprintf(req.op.target, sizeof(req.op.target), "%s", path);
	r = daemon_ask(&req, &doc);
	if (r != -EBUSY)
		dp_test_fail(__FILE__, __LINE__, "release: %d %s", r,
			     json_object_to_json_string(doc));
	CHECK(strcmp(json_object_get_string(json_object_object_get(doc, "result")), "refused") == 0);
	CHECK(names_a_stuck_scan(json_object_object_get(doc, "outsiders"), &pid));
	json_object_put(doc);

	for (int k = 0; k < 8; k++) {
		CHECK(kill(mappers[k], SIGKILL) == 0);
		CHECK_EQ(waitpid(mappers[k], &status, 0), mappers[k]);
	}
	/* The scans ran on and ended: root's status of it is whole again, with nobody. */
	req = (struct dp_msg){ .type = DP_MSG_STATUS };
	snprintf(req.status.target, sizeof(req.status.target), "%s", path);
	CHECK_OK(daemon_ask(&req, &doc));
	CHECK_EQ(json_object_array_length(json_object_object_get(doc, "outsiders")), 0u);
	json_object_put(doc);
	daemon_kill(SIGTERM);
}

/* ---- the library's connect ---- */

struct connect_race {
	pthread_barrier_t go;
	struct daxpool_ctx *ctx;
	int r[2];
};

static void *connect_main(void *arg)
{
	struct connect_race *cr = arg;
	int i = pthread_barrier_wait(&cr->go) == PTHREAD_BARRIER_SERIAL_THREAD;

	cr->r[i] = daxpool_ctx_connect_daemon(cr->ctx, sock_path);
	return NULL;
}

/*
 * Two threads connect one context at once: one client is installed, the other
 * call says -EALREADY (both used to pass the check, one client then leaked).
 */
TEST(concurrent_connects_install_one_client)
{
	static struct connect_race cr;
	int both = 0;

	unsetenv("DAXPOOL_DAEMON");
	daemon_start(NULL);
	for (int round = 0; round < 500; round++) {
		pthread_t t[2];

		CHECK_OK(daxpool_ctx_new(&cr.ctx));
		CHECK(pthread_barrier_init(&cr.go, NULL, 2) == 0);
		for (int i = 0; i < 2; i++)
			CHECK(pthread_create(&t[i], NULL, connect_main, &cr) == 0);
		for (int i = 0; i < 2; i++)
			pthread_join(t[i], NULL);
		pthread_barrier_destroy(&cr.go);
		both += cr.r[0] == 0 && cr.r[1] == 0;
		CHECK((cr.r[0] == 0 && cr.r[1] == -EALREADY) || (cr.r[1] == 0 && cr.r[0] == -EALREADY) ||
		      (cr.r[0] == 0 && cr.r[1] == 0));
		CHECK_EQ(daxpool_ctx_is_daemon_connected(cr.ctx), 1);
		daxpool_ctx_unref(cr.ctx);
	}
	if (both)
		dp_test_fail(__FILE__, __LINE__, "both connects succeeded in %d of 500 rounds", both);
	daemon_kill(SIGTERM);
}


/*
 * A client that answers REVOKE with a failed zap ends the release as failed,
 * named, with nothing changed -- and the daemon lives on (an answer without
 * outsiders once made it abort). The device or file stays usable; a second
 * release, with the client gone, goes through.
 */
TEST(a_failed_zap_fails_the_release_and_the_daemon_lives)
{
	const char *path = fixture_plain_file(1 << 20);
	struct dp_msg m, ans = { .type = DP_MSG_REVOKE_DONE };
	int cfd, rfd, rc;
	char out[8192];

	daemon_start(NULL);
	cfd = raw_connect(DP_ROLE_CLIENT);
	CHECK(cfd >= 0);
	rfd = open(path, O_RDWR | O_CLOEXEC);
	CHECK(rfd >= 0);
	CHECK(region_add(cfd, 1, rfd) >= 0);
	close(rfd);
	msleep(100);
	pid_t req = fork();

	CHECK(req >= 0);
	if (req == 0) {
		rc = ctl(out, sizeof(out), (const char *const[]){ "release", "--timeout", "5", path,
								  NULL });
		printf("# %s", out);
		_exit(rc == 1 && strstr(out, "could not zap its region") ? 0 : 1);
	}
	/* The REVOKE comes; answer that the zap failed. */
	do {
		CHECK_EQ(raw_recv(cfd, &m, 5000), 1);
	} while (m.type != DP_MSG_REVOKE);
	ans.revoke_done.req = m.revoke.req;
	ans.revoke_done.region_id = m.revoke.region_id;
	ans.revoke_done.status = -EIO;
	CHECK(raw_send(cfd, &ans, NULL, 0) >= 0);
	int status;

	CHECK_EQ(waitpid(req, &status, 0), req);
	CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	/* Alive: it answers, and once the client went the release goes through. */
	CHECK_EQ(kill(daemon_pid, 0), 0);
	close(cfd);
	msleep(100);
	rc = ctl(out, sizeof(out), (const char *const[]){ "release", path, NULL });
	printf("# %s", out);
	CHECK_EQ(rc, 0);
	daemon_kill(SIGTERM);
}
