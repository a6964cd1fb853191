/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * daxpoold: knows which process holds which maps and pins of which DAX
 * device, and releases a device only after its pins drained. See daxpoold(8).
 *
 * Startup: the configuration file, then the listening socket -- passed by
 * systemd (socket activation, sd_listen_fds()) or created here -- then
 * READY=1 to systemd, then the event loop (server.c).
 */
#include <errno.h>
#include <grp.h>
#include <fcntl.h>
#include <getopt.h>
#include <libgen.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#ifdef DAXPOOL_HAVE_SYSTEMD
#include <systemd/sd-daemon.h>
#endif

#include "config.h"
#include "log.h"
#include "manager.h"
#include "server.h"

#define DEFAULT_CONFIG "/etc/daxpool/daxpoold.conf"

static void usage(FILE *f)
{
	fprintf(f, "Usage: daxpoold [-f] [-c CONFIG] [-s SOCKET] [-v]\n\n"
		   "Track which processes hold maps and pins of DAX devices; release a device only\n"
		   "after its pins drained (daxpoolctl release).\n\n"
		   "  -f, --foreground   do not detach (systemd runs it so)\n"
		   "  -c, --config PATH  configuration file (default " DEFAULT_CONFIG ")\n"
		   "  -s, --socket PATH  listen on PATH (overrides the configuration)\n"
		   "  -v, --verbose      log down to debug\n"
		   "  -h, --help         this help\n"
		   "  -V, --version      print the version\n");
}

/* mkdir -p of the socket's directory, 0755 for new levels. */
static int make_dirs(const char *sock)
{
	char tmp[sizeof(((struct dd_config *)0)->socket_path)];
	char *dir;

	snprintf(tmp, sizeof(tmp), "%s", sock);
	dir = dirname(tmp);
	for (char *p = dir + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(dir, 0755) < 0 && errno != EEXIST)
			return -errno;
		*p = '/';
	}
	if (mkdir(dir, 0755) < 0 && errno != EEXIST)
		return -errno;
	return 0;
}

static int listen_socket(const char *path, unsigned int mode, const char *group)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct stat st;
	int fd, r;

	if (strlen(path) >= sizeof(sa.sun_path))
		return -ENAMETOOLONG;
	strcpy(sa.sun_path, path);
	r = make_dirs(path);
	if (r < 0) {
		dd_log(LOG_ERR, "cannot create the directory of %s: %s", path, strerror(-r));
		return r;
	}
	/* A stale socket from a crash is replaced; a live daemon is not. */
	if (lstat(path, &st) == 0) {
		if (!S_ISSOCK(st.st_mode)) {
			dd_log(LOG_ERR, "%s exists and is not a socket", path);
			return -EEXIST;
		}
		fd = dp_proto_connect(path, DP_ROLE_CTL, 500);
		if (fd >= 0) {
			close(fd);
			dd_log(LOG_ERR, "another daxpoold listens on %s", path);
			return -EADDRINUSE;
		}
		unlink(path);
	}
	fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return -errno;
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || chmod(path, mode) < 0) {
		r = -errno;
		dd_log(LOG_ERR, "%s: %s", path, strerror(-r));
		close(fd);
		return r;
	}
	/* The group before listen(): nobody connects through a wrong one meanwhile. */
	if (group && *group) {
		struct group *gr = getgrnam(group);

		if (!gr || chown(path, (uid_t)-1, gr->gr_gid) < 0) {
			r = gr ? -errno : -ENOENT;
			dd_log(LOG_ERR, "%s: socket_group %s: %s", path, group,
			       gr ? strerror(-r) : "no such group");
			close(fd);
			unlink(path);
			return r;
		}
	}
	if (listen(fd, 128) < 0) {
		r = -errno;
		dd_log(LOG_ERR, "%s: %s", path, strerror(-r));
		close(fd);
		return r;
	}
	return fd;
}

/* The socket systemd passed, if any: > 0 the fd, 0 none, < 0 an error. */
static int activated_socket(void)
{
#ifdef DAXPOOL_HAVE_SYSTEMD
	int n = sd_listen_fds(1);

	if (n < 0) {
		dd_log(LOG_ERR, "sd_listen_fds: %s", strerror(-n));
		return n;
	}
	if (n == 0)
		return 0;
	if (n > 1 || sd_is_socket_unix(SD_LISTEN_FDS_START, SOCK_SEQPACKET, 1, NULL, 0) <= 0) {
		dd_log(LOG_ERR, "systemd passed %d sockets; expected one listening SOCK_SEQPACKET "
				"unix socket (ListenSequentialPacket=)", n);
		return -EINVAL;
	}
	/*
	 * systemd passes it blocking and inheritable; the loop needs what
	 * listen_socket() makes: an accept() after a connection vanished must
	 * not block the daemon, and no child may inherit it.
	 */
	int fl = fcntl(SD_LISTEN_FDS_START, F_GETFL);

	if (fl < 0 || fcntl(SD_LISTEN_FDS_START, F_SETFL, fl | O_NONBLOCK) < 0 ||
	    fcntl(SD_LISTEN_FDS_START, F_SETFD, FD_CLOEXEC) < 0) {
		n = -errno;
		dd_log(LOG_ERR, "the socket passed by systemd: %s", strerror(-n));
		return n;
	}
	return SD_LISTEN_FDS_START;
#else
	if (getenv("LISTEN_FDS")) {
		dd_log(LOG_ERR, "started with LISTEN_FDS, but this daxpoold was built without "
				"libsystemd: socket activation is not supported; start it without the "
				".socket unit");
		return -EOPNOTSUPP;
	}
	return 0;
#endif
}

static void notify(const char *state)
{
#ifdef DAXPOOL_HAVE_SYSTEMD
	sd_notify(0, state);
#else
	(void)state;
#endif
}

/* The path a passed socket is bound to, into cfg->socket_path: reports name the real one. */
static void passed_socket_path(struct dd_config *cfg, int fd)
{
	struct sockaddr_un sa;
	socklen_t len = sizeof(sa);

	memset(&sa, 0, sizeof(sa));
	if (getsockname(fd, (struct sockaddr *)&sa, &len) < 0 ||
	    len <= offsetof(struct sockaddr_un, sun_path))
		return;
	if (sa.sun_path[0] == '\0') /* abstract: '@' as ss(8) writes it */
		snprintf(cfg->socket_path, sizeof(cfg->socket_path), "@%.*s",
			 (int)(len - offsetof(struct sockaddr_un, sun_path) - 1), sa.sun_path + 1);
	else
		snprintf(cfg->socket_path, sizeof(cfg->socket_path), "%.*s",
			 (int)(len - offsetof(struct sockaddr_un, sun_path)), sa.sun_path);
}

static int detach(void)
{
	pid_t pid = fork();

	if (pid < 0)
		return -errno;
	if (pid > 0)
		_exit(0);
	setsid();
	pid = fork();
	if (pid < 0)
		return -errno;
	if (pid > 0)
		_exit(0);
	if (!freopen("/dev/null", "r", stdin) || !freopen("/dev/null", "w", stdout) ||
	    !freopen("/dev/null", "w", stderr))
		return -errno;
	dd_log_to_syslog();
	return 0;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "foreground", no_argument, NULL, 'f' }, { "config", required_argument, NULL, 'c' },
		{ "socket", required_argument, NULL, 's' }, { "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },	    { "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	static struct dd_manager mgr; /* the daemon's state: the loop's, then freed with the process */
	const char *config = DEFAULT_CONFIG, *sock = NULL;
	struct dd_config cfg;
	bool foreground = false, config_given = false;
	int c, fd, r;

	while ((c = getopt_long(argc, argv, "fc:s:vhV", opts, NULL)) != -1) {
		switch (c) {
		case 'f':
			foreground = true;
			break;
		case 'c':
			config = optarg;
			config_given = true;
			break;
		case 's':
			sock = optarg;
			break;
		case 'v':
			dd_log_level = LOG_DEBUG;
			break;
		case 'h':
			usage(stdout);
			return 0;
		case 'V':
			printf("daxpoold %s\n", DAXPOOL_VERSION);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind != argc) {
		usage(stderr);
		return 2;
	}
	dd_config_defaults(&cfg);
	if (dd_config_load(&cfg, config, config_given) < 0)
		return 1;
	if (sock) {
		if (strlen(sock) >= sizeof(cfg.socket_path)) {
			dd_log(LOG_ERR, "%s: socket path too long", sock);
			return 2;
		}
		snprintf(cfg.socket_path, sizeof(cfg.socket_path), "%s", sock);
	}

	fd = activated_socket();
	if (fd < 0)
		return 1;
	if (fd > 0) {
		passed_socket_path(&cfg, fd);
		dd_log(LOG_NOTICE, "listening on %s (passed by systemd), release timeout %d s",
		       cfg.socket_path, cfg.release_timeout_ms / 1000);
	} else {
		fd = listen_socket(cfg.socket_path, cfg.socket_mode, cfg.socket_group);
		if (fd < 0)
			return 1;
		if (!foreground && detach() < 0)
			return 1;
		dd_log(LOG_NOTICE, "listening on %s (mode %04o), release timeout %d s",
		       cfg.socket_path, cfg.socket_mode, cfg.release_timeout_ms / 1000);
	}
#ifndef DAXPOOL_HAVE_SYSTEMD
	dd_log(LOG_INFO, "built without libsystemd: no readiness notification");
#endif
	notify("READY=1\nSTATUS=listening");
	dd_manager_init(&mgr, &cfg);
	r = dd_server_run(&mgr, fd);
	/* The loop ended on SIGTERM/SIGINT (or a fatal error): say so before the last close. */
	notify("STOPPING=1\nSTATUS=stopping");
	close(fd);
	return r < 0 ? 1 : 0;
}
