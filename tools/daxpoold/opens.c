/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The open record: which processes opened a device-dax node, or closed its
 * last reference, since daxpoold began to watch the node. An RDMA MR pins its
 * pages until it is deregistered, however long ago the process unmapped the
 * range and closed the device; the record is what lets the holder rule
 * (holder_rule.c) tell a process with MRs that once had the device from one
 * that never had it.
 *
 * fanotify (FAN_CLASS_NOTIF, FAN_REPORT_FID) with an inode mark on each
 * device node, for FAN_OPEN and FAN_CLOSE: close events name the process that
 * dropped the last reference, which catches a descriptor inherited through
 * fork or received over a socket when that process is the last to let go.
 * FID mode because fanotify reports events on device nodes only there (in fd
 * mode it reports regular files and directories alone); each event names its
 * node by file handle, matched against the handles of the watched nodes. With
 * FAN_REPORT_PIDFD (Linux 5.15) the event carries a pidfd of the very process
 * that opened, so a reused pid cannot be mistaken for it; without it, the pid
 * and its start time are read at once, and a pid reused in between can only
 * add a process to the record, never hide one.
 *
 * What the record cannot know is what happened before its mark was placed,
 * or while the queue overflowed: such a device's "since" is then the time of
 * the mark (or of the overflow), and every process that was already running
 * counts as unknown. Where fanotify is unavailable (no CAP_SYS_ADMIN), or the
 * kernel does not report opens of device nodes (checked at start with
 * /dev/null), nothing is recorded and every process counts as unknown: the
 * rule then refuses for any process with pinned pages it cannot account for.
 */
#define _GNU_SOURCE 1 /* name_to_handle_at */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/fanotify.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "opens.h"
#include "util/protocol.h"

#ifndef FAN_REPORT_PIDFD
#define FAN_REPORT_PIDFD 0x00000080
#endif
#ifndef FAN_EVENT_INFO_TYPE_PIDFD
#define FAN_EVENT_INFO_TYPE_PIDFD 4
struct fanotify_event_info_pidfd {
	struct fanotify_event_info_header hdr;
	__s32 pidfd;
};
#endif

#define OPENS_EVENTS (FAN_OPEN | FAN_CLOSE_WRITE | FAN_CLOSE_NOWRITE)

/* A watched device node: its opens are recorded since since_ns. */
struct watched {
	union {
		struct file_handle fh; /* the node's, as FID events name it */
		unsigned char fh_space[sizeof(struct file_handle) + MAX_HANDLE_SZ];
	};
	dev_t rdev;
	uint64_t ino; /* of the node: a new node is a new watch */
	char name[DP_PROTO_MAX_DEVNAME + 1];
	uint64_t since_ns; /* CLOCK_BOOTTIME, comparable with process start times */
	uint64_t since_real_ns;
	bool present; /* seen by the last refresh */
};

static int fan_fd = -1;
static bool have_pidfd;
static char off_reason[192] = "not started";
static struct watched *watched;
static size_t n_watched;
static struct dd_opener *openers;
static size_t n_openers, cap_openers;

static uint64_t clock_ns(clockid_t id)
{
	struct timespec ts;

	clock_gettime(id, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

int dd_proc_start(pid_t pid, uint64_t *ret_start_ns, pid_t *ret_ppid)
{
	char path[64], buf[1024], *p;
	unsigned long long start = 0;
	int ppid = 0, fd;
	ssize_t n;
	long tck = sysconf(_SC_CLK_TCK) > 0 ? sysconf(_SC_CLK_TCK) : 100; /* any thread */

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return -ESRCH;
	buf[n] = '\0';
	/* "pid (comm) state ppid ..." -- comm may hold spaces and ')' */
	p = strrchr(buf, ')');
	if (!p || sscanf(p + 1, " %*c %d %*d %*d %*d %*d %*u %*u %*u %*u %*u %*u %*u %*d %*d %*d "
				 "%*d %*d %*d %llu", &ppid, &start) != 2)
		return -EBADMSG;
	if (ret_start_ns)
		*ret_start_ns = start * (1000000000ull / (unsigned long long)tck);
	if (ret_ppid)
		*ret_ppid = ppid;
	return 0;
}

/* Forget every opener of @rdev (or of every device, rdev 0). */
static void forget(dev_t rdev)
{
	size_t k = 0;

	for (size_t i = 0; i < n_openers; i++)
		if (rdev && openers[i].rdev != rdev)
			openers[k++] = openers[i];
	n_openers = k;
}

/* Recording restarts now for every device (an overflow): who came before is unknown. */
static void restart_all(const char *why)
{
	uint64_t now = clock_ns(CLOCK_BOOTTIME), real = clock_ns(CLOCK_REALTIME);

	for (size_t i = 0; i < n_watched; i++) {
		watched[i].since_ns = now;
		watched[i].since_real_ns = real;
	}
	forget(0);
	dd_log(LOG_WARNING, "open record: %s; processes running before now count as possible "
			    "holders of every device-dax device", why);
}

/* Drop openers that exited (their pid is gone or names a newer process). */
static void prune(void)
{
	size_t k = 0;

	for (size_t i = 0; i < n_openers; i++) {
		uint64_t start;

		if (dd_proc_start(openers[i].pid, &start, NULL) == 0 &&
		    start == openers[i].start_ns)
			openers[k++] = openers[i];
	}
	n_openers = k;
}

static void record(pid_t pid, uint64_t start_ns, dev_t rdev)
{
	for (size_t i = 0; i < n_openers; i++)
		if (openers[i].pid == pid && openers[i].start_ns == start_ns &&
		    openers[i].rdev == rdev)
			return; /* the first open is the one that counts */
	if (n_openers == cap_openers)
		prune();
	if (n_openers == cap_openers) {
		size_t cap = cap_openers ? cap_openers * 2 : 64;
		struct dd_opener *o;

		if (cap > DD_OPENERS_MAX ||
		    !(o = realloc(openers, cap * sizeof(*o)))) {
			restart_all("more openers than the record holds");
			return;
		}
		openers = o;
		cap_openers = cap;
	}
	openers[n_openers++] = (struct dd_opener){ .pid = pid, .start_ns = start_ns, .rdev = rdev,
						   .first_ns = clock_ns(CLOCK_REALTIME) };
}

/*
 * The identity of an event's process: with a pidfd, its start time read while
 * the pidfd shows it alive (a pid is not reused before its process is reaped).
 * Return 0, or -ESRCH if it already exited (it holds nothing any more).
 */
static int event_process(pid_t pid, int pidfd, uint64_t *ret_start)
{
	struct pollfd p = { .fd = pidfd, .events = POLLIN };
	int r = dd_proc_start(pid, ret_start, NULL);

	if (r < 0)
		return -ESRCH;
	if (pidfd >= 0 && (poll(&p, 1, 0) != 0))
		return -ESRCH; /* exited: the start time may be another process's */
	return 0;
}

/*
 * The pidfd record of an event: *ret_pidfd is the pidfd (the caller closes
 * it), or -1. Return false if the process already exited (FAN_NOPIDFD).
 */
static bool event_pidfd(const struct fanotify_event_metadata *m, int *ret_pidfd)
{
	const char *p = (const char *)m + m->metadata_len, *end = (const char *)m + m->event_len;

	*ret_pidfd = -1;
	while (p + sizeof(struct fanotify_event_info_header) <= end) {
		const struct fanotify_event_info_header *h = (const void *)p;

		if (h->len < sizeof(*h) || p + h->len > end)
			break;
		if (h->info_type == FAN_EVENT_INFO_TYPE_PIDFD &&
		    h->len >= sizeof(struct fanotify_event_info_pidfd)) {
			int fd = ((const struct fanotify_event_info_pidfd *)h)->pidfd;

			if (fd == -1) /* FAN_NOPIDFD */
				return false;
			if (fd >= 0)
				*ret_pidfd = fd;
			/* FAN_EPIDFD: no pidfd for it; its pid is checked by start time */
		}
		p += h->len;
	}
	return true;
}

/* The watched node an event names by its file handle, or NULL. */
static const struct watched *event_node(const struct fanotify_event_metadata *m)
{
	const char *p = (const char *)m + m->metadata_len, *end = (const char *)m + m->event_len;

	while (p + sizeof(struct fanotify_event_info_header) <= end) {
		const struct fanotify_event_info_header *h = (const void *)p;

		if (h->len < sizeof(*h) || p + h->len > end)
			break;
		if (h->info_type == FAN_EVENT_INFO_TYPE_FID &&
		    h->len >= sizeof(struct fanotify_event_info_fid) + sizeof(struct file_handle)) {
			const struct fanotify_event_info_fid *fid = (const void *)h;
			const struct file_handle *fh = (const void *)fid->handle;
			size_t room = h->len - sizeof(*fid) - sizeof(*fh);

			if (fh->handle_bytes > room)
				break;
			for (size_t i = 0; i < n_watched; i++)
				if (watched[i].fh.handle_type == fh->handle_type &&
				    watched[i].fh.handle_bytes == fh->handle_bytes &&
				    memcmp(watched[i].fh.f_handle, fh->f_handle, fh->handle_bytes) == 0)
					return &watched[i];
			return NULL;
		}
		p += h->len;
	}
	return NULL;
}

static void handle_event(const struct fanotify_event_metadata *m)
{
	const struct watched *w = event_node(m);
	bool alive;
	int pidfd;
	uint64_t start;

	alive = event_pidfd(m, &pidfd);
	if (w && alive && m->pid != getpid() && event_process(m->pid, pidfd, &start) == 0)
		record(m->pid, start, w->rdev);
	if (pidfd >= 0)
		close(pidfd);
	if (m->fd >= 0)
		close(m->fd);
}

void dd_opens_receive(void)
{
	char buf[8192] __attribute__((aligned(__alignof__(struct fanotify_event_metadata))));
	ssize_t len;

	if (fan_fd < 0)
		return;
	while ((len = read(fan_fd, buf, sizeof(buf))) > 0) {
		const struct fanotify_event_metadata *m = (const void *)buf;

		for (; FAN_EVENT_OK(m, len); m = FAN_EVENT_NEXT(m, len)) {
			if (m->vers != FANOTIFY_METADATA_VERSION)
				continue;
			if (m->mask & FAN_Q_OVERFLOW)
				restart_all("the kernel's event queue overflowed");
			else
				handle_event(m);
		}
	}
}

/* Whether the kernel reports opens of device nodes: a child opens /dev/null. */
static int self_test(void)
{
	struct stat st;
	pid_t child;
	int status;
	bool seen = false;

	if (stat("/dev/null", &st) < 0 || !S_ISCHR(st.st_mode))
		return -ENODEV;
	/* ENODEV: devtmpfs has no fsid here; EOPNOTSUPP: no file handles. */
	if (fanotify_mark(fan_fd, FAN_MARK_ADD, FAN_OPEN, AT_FDCWD, "/dev/null") < 0)
		return -errno;
	child = fork();
	if (child < 0)
		return -errno;
	if (child == 0) {
		int fd = open("/dev/null", O_RDONLY | O_CLOEXEC);

		_exit(fd < 0);
	}
	waitpid(child, &status, 0);
	/* Events are queued by the open itself: after waitpid they are there or never. */
	for (;;) {
		char buf[4096] __attribute__((aligned(__alignof__(struct fanotify_event_metadata))));
		ssize_t len = read(fan_fd, buf, sizeof(buf));
		const struct fanotify_event_metadata *m = (const void *)buf;

		if (len <= 0)
			break;
		for (; FAN_EVENT_OK(m, len); m = FAN_EVENT_NEXT(m, len)) {
			int pidfd;

			seen |= m->pid == child;
			event_pidfd(m, &pidfd);
			if (pidfd >= 0)
				close(pidfd);
			if (m->fd >= 0)
				close(m->fd);
		}
	}
	fanotify_mark(fan_fd, FAN_MARK_REMOVE, FAN_OPEN, AT_FDCWD, "/dev/null");
	return seen ? 0 : -EOPNOTSUPP;
}

int dd_opens_start(void)
{
	int r;

	fan_fd = fanotify_init(FAN_CLASS_NOTIF | FAN_CLOEXEC | FAN_NONBLOCK | FAN_REPORT_FID |
				       FAN_REPORT_PIDFD,
			       O_RDONLY | O_CLOEXEC | O_LARGEFILE);
	have_pidfd = fan_fd >= 0;
	if (fan_fd < 0 && errno == EINVAL)
		fan_fd = fanotify_init(FAN_CLASS_NOTIF | FAN_CLOEXEC | FAN_NONBLOCK | FAN_REPORT_FID,
				       O_RDONLY | O_CLOEXEC | O_LARGEFILE);
	if (fan_fd < 0) {
		r = -errno;
		snprintf(off_reason, sizeof(off_reason), "fanotify: %s%s", strerror(-r),
			 r == -EPERM ? " (it needs CAP_SYS_ADMIN)"
			 : r == -EINVAL ? " (no FAN_REPORT_FID: Linux 5.1 or later is needed)"
					: "");
		goto off;
	}
	r = self_test();
	if (r < 0) {
		snprintf(off_reason, sizeof(off_reason), "%s%s",
			 r == -EOPNOTSUPP ? "this kernel does not report opens of device nodes to "
					    "fanotify"
					  : "fanotify cannot watch /dev: ",
			 r == -EOPNOTSUPP ? "" : strerror(-r));
		close(fan_fd);
		fan_fd = -1;
		goto off;
	}
	off_reason[0] = '\0';
	dd_opens_refresh();
	dd_log(LOG_INFO, "open record: watching %zu device-dax node(s)%s", n_watched,
	       have_pidfd ? "" : " (no FAN_REPORT_PIDFD: pids checked by start time)");
	return fan_fd;
off:
	dd_log(LOG_WARNING, "open record: off: %s; every process with pinned pages counts as a "
			    "possible holder of every device-dax device", off_reason);
	return r;
}

void dd_opens_stop(void)
{
	if (fan_fd >= 0)
		close(fan_fd);
	fan_fd = -1;
	free(watched);
	watched = NULL;
	n_watched = 0;
	free(openers);
	openers = NULL;
	n_openers = cap_openers = 0;
	snprintf(off_reason, sizeof(off_reason), "stopped");
}

/* Mark /dev/@name if it is the device-dax node @rdev; keep its since if already watched. */
static void watch(const char *name, dev_t rdev)
{
	char path[DP_PROTO_MAX_DEVNAME + 8];
	struct stat st;
	struct watched *w = NULL, *nw;

	if (strlen(name) > DP_PROTO_MAX_DEVNAME)
		return; /* no device-dax name is that long */
	snprintf(path, sizeof(path), "/dev/%s", name);
	if (lstat(path, &st) < 0 || !S_ISCHR(st.st_mode) || st.st_rdev != rdev)
		return; /* no node, or not this device's: nothing to watch */
	for (size_t i = 0; i < n_watched; i++)
		if (watched[i].rdev == rdev)
			w = &watched[i];
	if (w && w->ino == st.st_ino) {
		w->present = true;
		return;
	}
	union {
		struct file_handle fh;
		unsigned char space[sizeof(struct file_handle) + MAX_HANDLE_SZ];
	} h = { .fh.handle_bytes = MAX_HANDLE_SZ };
	int mount_id;

	if (name_to_handle_at(AT_FDCWD, path, &h.fh, &mount_id, 0) < 0) {
		dd_log(LOG_WARNING, "open record: cannot watch %s: no file handle: %m", path);
		if (w)
			w->present = false;
		return;
	}
	if (fanotify_mark(fan_fd, FAN_MARK_ADD, OPENS_EVENTS, AT_FDCWD, path) < 0) {
		dd_log(LOG_WARNING, "open record: cannot watch %s: %m", path);
		if (w)
			w->present = false;
		return;
	}
	if (!w) {
		nw = realloc(watched, (n_watched + 1) * sizeof(*nw));
		if (!nw) {
			/* Marked but not listed: it counts as never recorded. */
			return;
		}
		watched = nw;
		w = &watched[n_watched++];
	}
	*w = (struct watched){ .rdev = rdev, .ino = st.st_ino, .present = true,
			       .since_ns = clock_ns(CLOCK_BOOTTIME),
			       .since_real_ns = clock_ns(CLOCK_REALTIME) };
	memcpy(w->fh_space, h.space, sizeof(struct file_handle) + h.fh.handle_bytes);
	snprintf(w->name, sizeof(w->name), "%s", name);
	/* Who holds it open or mapped now is found by the scan; who did before is unknown. */
	dd_log(LOG_INFO, "open record: watching %s", path);
}

void dd_opens_refresh(void)
{
	struct dirent *de;
	DIR *d;
	size_t k = 0;

	if (fan_fd < 0)
		return;
	for (size_t i = 0; i < n_watched; i++)
		watched[i].present = false;
	d = opendir("/sys/bus/dax/devices");
	if (d) {
		while ((de = readdir(d))) {
			char path[320], text[32];
			unsigned int maj, min;
			ssize_t n;
			int fd;

			if (strncmp(de->d_name, "dax", 3) != 0)
				continue;
			snprintf(path, sizeof(path), "/sys/bus/dax/devices/%s/dev", de->d_name);
			fd = open(path, O_RDONLY | O_CLOEXEC);
			if (fd < 0)
				continue; /* no character device (a system-ram device, or unbound) */
			n = read(fd, text, sizeof(text) - 1);
			close(fd);
			if (n <= 0)
				continue;
			text[n] = '\0';
			if (sscanf(text, "%u:%u", &maj, &min) == 2)
				watch(de->d_name, makedev(maj, min));
		}
		closedir(d);
	}
	/* A device that went: its openers go with it (a new node is a new record). */
	for (size_t i = 0; i < n_watched; i++) {
		if (watched[i].present)
			watched[k++] = watched[i];
		else
			forget(watched[i].rdev);
	}
	n_watched = k;
	dd_opens_receive();
}

const char *dd_opens_off_reason(void)
{
	return fan_fd < 0 ? off_reason : NULL;
}

uint64_t dd_opens_since(dev_t rdev, uint64_t *ret_real_ns)
{
	if (fan_fd < 0)
		return 0;
	for (size_t i = 0; i < n_watched; i++) {
		if (watched[i].rdev == rdev) {
			if (ret_real_ns)
				*ret_real_ns = watched[i].since_real_ns;
			return watched[i].since_ns;
		}
	}
	return 0;
}

const struct dd_opener *dd_opens_find(pid_t pid, uint64_t start_ns, dev_t rdev)
{
	for (size_t i = 0; i < n_openers; i++)
		if (openers[i].pid == pid && openers[i].start_ns == start_ns &&
		    openers[i].rdev == rdev)
			return &openers[i];
	return NULL;
}

int dd_opens_copy(dev_t rdev, struct dd_opener **arr, size_t *n)
{
	for (size_t i = 0; i < n_openers; i++) {
		struct dd_opener *na;

		if (openers[i].rdev != rdev)
			continue;
		na = realloc(*arr, (*n + 1) * sizeof(*na));
		if (!na)
			return -ENOMEM;
		*arr = na;
		na[(*n)++] = openers[i];
	}
	return 0;
}

json_object *dd_opens_json(void)
{
	json_object *o = json_object_new_object(), *devs = json_object_new_array();

	json_object_object_add(o, "recording", json_object_new_boolean(fan_fd >= 0));
	if (fan_fd < 0) {
		json_object_object_add(o, "reason", json_object_new_string(off_reason));
		json_object_put(devs);
		return o;
	}
	for (size_t i = 0; i < n_watched; i++) {
		json_object *d = json_object_new_object();
		size_t n = 0;

		for (size_t k = 0; k < n_openers; k++)
			n += openers[k].rdev == watched[i].rdev;
		json_object_object_add(d, "device", json_object_new_string(watched[i].name));
		json_object_object_add(d, "since_ns",
				       json_object_new_uint64(watched[i].since_real_ns));
		json_object_object_add(d, "openers", json_object_new_uint64(n));
		json_object_array_add(devs, d);
	}
	json_object_object_add(o, "devices", devs);
	return o;
}
