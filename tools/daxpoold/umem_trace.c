/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The MR tracer's loader and reader (umem_trace.h). The BPF object is built
 * from umem_trace.bpf.c and linked into daxpoold (umem_trace_obj.S.in); the
 * loader checks what it needs first, so that the reason it gives is the
 * first thing missing, not a libbpf error code.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#ifdef DAXPOOL_HAVE_BPF
#include <pthread.h>
#include <sys/eventfd.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#endif

#include "log.h"
#include "umem_trace.h"

/* The module that has ib_umem_get (drivers/infiniband/core/umem.c is part of ib_uverbs). */
#define UMEM_MODULE "ib_uverbs"

static char reason[512] = "not started";
static bool configured_on;
static uint64_t since_ns;

static void set_off(int prio, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void set_off(int prio, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(reason, sizeof(reason), fmt, ap);
	va_end(ap);
	dd_log(prio, "MR tracer off: %s; RDMA MRs of processes are judged without it "
		     "(doc/holder-rule.md)", reason);
}

#ifdef DAXPOOL_HAVE_BPF

extern const unsigned char dd_umem_trace_obj[], dd_umem_trace_obj_end[];

static bool waiting_module; /* off only because UMEM_MODULE is not loaded */

static uint64_t realtime_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static struct bpf_object *obj;
static struct bpf_link *link_get, *link_release, *link_exec;
static int map_fd = -1, counters_fd = -1, execs_fd = -1;

/* A load in progress, on a thread of its own: the verifier and BTF take seconds under TCG. */
static struct {
	pthread_t thread;
	bool running;
	int efd; /* written when it ended */
	struct bpf_object *obj;
	struct bpf_link *link_get, *link_release, *link_exec;
	bool done;	      /* the thread ended (atomic) */
	char why[512];	      /* why it failed; "" when it worked */
	char libbpf_msg[192]; /* the last warning libbpf printed */
} ld = { .efd = -1 };

static int libbpf_print(enum libbpf_print_level level, const char *fmt, va_list ap)
	__attribute__((format(printf, 2, 0)));
static int libbpf_print(enum libbpf_print_level level, const char *fmt, va_list ap)
{
	char line[192];
	size_t n;

	if (level == LIBBPF_DEBUG)
		return 0;
	vsnprintf(line, sizeof(line), fmt, ap);
	n = strcspn(line, "\n");
	line[n] = '\0';
	if (n)
		snprintf(ld.libbpf_msg, sizeof(ld.libbpf_msg), "%s", line);
	return 0;
}

static void close_loaded(struct bpf_object **o, struct bpf_link **g, struct bpf_link **rl,
			 struct bpf_link **ex)
{
	bpf_link__destroy(*g);
	bpf_link__destroy(*rl);
	bpf_link__destroy(*ex);
	*g = *rl = *ex = NULL;
	bpf_object__close(*o);
	*o = NULL;
}

/* Attach program @name of ld.obj (@what, for the reason): 0, or -errno with ld.why set. */
static int attach(const char *name, const char *what, struct bpf_link **ret)
{
	struct bpf_program *prog = bpf_object__find_program_by_name(ld.obj, name);
	const char *lm = ld.libbpf_msg;
	int r;

	*ret = prog ? bpf_program__attach(prog) : NULL;
	if (*ret)
		return 0;
	r = prog ? -errno : -ENOENT;
	snprintf(ld.why, sizeof(ld.why), "%s does not attach: %s%s%s", what, strerror(-r),
		 lm[0] ? ": " : "", lm);
	return r;
}

/* The thread: open, load, attach; the result in ld. */
static void *load_main(void *arg)
{
	LIBBPF_OPTS(bpf_object_open_opts, opts, .object_name = "daxpool_umem");
	const char *lm = ld.libbpf_msg;
	uint64_t one = 1;
	int r;

	(void)arg;
	ld.obj = bpf_object__open_mem(dd_umem_trace_obj,
				      (size_t)(dd_umem_trace_obj_end - dd_umem_trace_obj), &opts);
	if (!ld.obj) {
		r = -errno;
		snprintf(ld.why, sizeof(ld.why), "the BPF object does not open: %s%s%s",
			 strerror(-r), lm[0] ? ": " : "", lm);
		goto out;
	}
	r = bpf_object__load(ld.obj);
	if (r < 0) {
		snprintf(ld.why, sizeof(ld.why), "the BPF program does not load: %s%s%s",
			 strerror(-r), lm[0] ? ": " : "", lm);
		goto fail;
	}
	/*
	 * release first: a umem never recorded may be forgotten, never one left
	 * behind; exec before get: no umem is recorded whose process's exec after
	 * it would go unseen.
	 */
	if (attach("dd_umem_release", "fentry on ib_umem_release", &ld.link_release) < 0 ||
	    attach("dd_exec", "tp_btf on sched_process_exec", &ld.link_exec) < 0 ||
	    attach("dd_umem_get", "fexit on ib_umem_get", &ld.link_get) < 0)
		goto fail;
	goto out;
fail:
	close_loaded(&ld.obj, &ld.link_get, &ld.link_release, &ld.link_exec);
out:
	__atomic_store_n(&ld.done, true, __ATOMIC_RELEASE);
	if (write(ld.efd, &one, sizeof(one)) < 0) {
		/* an eventfd write fails only on overflow: the loop reads it anyway */
	}
	return NULL;
}

/* Check what the tracer needs (main thread: it logs), then start the load on its thread. */
static void load_start(void)
{
	char why[256];
	int r;

	waiting_module = false;
	if (ld.running)
		return;
	r = dd_umem_trace_check("/sys", why, sizeof(why));
	if (r) {
		waiting_module = r == -ENOENT;
		set_off(waiting_module ? LOG_INFO : LOG_NOTICE, "%s", why);
		return;
	}
	ld.why[0] = ld.libbpf_msg[0] = '\0';
	ld.done = false;
	libbpf_set_print(libbpf_print);
	if (pthread_create(&ld.thread, NULL, load_main, NULL) != 0) {
		set_off(LOG_NOTICE, "no thread for the load: %s", strerror(errno));
		return;
	}
	ld.running = true;
	snprintf(reason, sizeof(reason), "attaching (the BPF program is being loaded)");
}

int dd_umem_trace_start(bool enabled)
{
	configured_on = enabled;
	if (!enabled) {
		if (!obj)
			set_off(LOG_NOTICE, "disabled in daxpoold.conf (mr_tracer = no)");
		return -1;
	}
	if (ld.efd < 0)
		ld.efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (ld.efd < 0) {
		set_off(LOG_NOTICE, "no eventfd for the load: %s", strerror(errno));
		return -1;
	}
	if (!obj)
		load_start();
	return ld.efd;
}

void dd_umem_trace_module_added(const char *name)
{
	if (!obj && !ld.running && configured_on && waiting_module &&
	    strcmp(name, UMEM_MODULE) == 0)
		load_start();
}

void dd_umem_trace_loaded(void)
{
	uint64_t v;

	if (ld.efd >= 0 && read(ld.efd, &v, sizeof(v)) < 0) {
		/* nothing queued: the thread has not ended */
	}
	if (!ld.running || !__atomic_load_n(&ld.done, __ATOMIC_ACQUIRE))
		return;
	pthread_join(ld.thread, NULL); /* it has ended: no wait */
	ld.running = false;
	if (!ld.obj) {
		set_off(LOG_NOTICE, "%s", ld.why);
		return;
	}
	obj = ld.obj;
	link_get = ld.link_get;
	link_release = ld.link_release;
	link_exec = ld.link_exec;
	ld.obj = NULL;
	map_fd = bpf_object__find_map_fd_by_name(obj, "umems");
	counters_fd = bpf_object__find_map_fd_by_name(obj, "counters");
	execs_fd = bpf_object__find_map_fd_by_name(obj, "execs");
	if (map_fd < 0 || counters_fd < 0 || execs_fd < 0) {
		close_loaded(&obj, &link_get, &link_release, &link_exec);
		map_fd = counters_fd = execs_fd = -1;
		set_off(LOG_NOTICE, "the BPF object has no record maps");
		return;
	}
	since_ns = realtime_ns();
	reason[0] = '\0';
	dd_log(LOG_NOTICE, "MR tracer on: every RDMA MR registered from now on is recorded with "
			   "what it pins");
}

bool dd_umem_trace_on(void)
{
	return obj != NULL;
}

uint64_t dd_umem_trace_missed(void)
{
	uint32_t k = 0;
	uint64_t v = 0;

	if (counters_fd < 0 || bpf_map_lookup_elem(counters_fd, &k, &v) < 0)
		return 0;
	return v;
}

int dd_umem_trace_map_dup(void)
{
	return map_fd < 0 ? -1 : fcntl(map_fd, F_DUPFD_CLOEXEC, 3);
}

int dd_umem_trace_execs_dup(void)
{
	return execs_fd < 0 ? -1 : fcntl(execs_fd, F_DUPFD_CLOEXEC, 3);
}

void dd_umem_trace_stop(void)
{
	if (ld.running) {
		pthread_join(ld.thread, NULL);
		ld.running = false;
		close_loaded(&ld.obj, &ld.link_get, &ld.link_release, &ld.link_exec);
	}
	close_loaded(&obj, &link_get, &link_release, &link_exec);
	map_fd = counters_fd = execs_fd = -1;
	since_ns = 0;
	snprintf(reason, sizeof(reason), "stopped");
}

static int key_cmp(const void *a, const void *b)
{
	const struct dd_umem *x = a, *y = b;

	if (x->key != y->key)
		return x->key < y->key ? -1 : 1;
	return x->rec.seq < y->rec.seq ? -1 : x->rec.seq > y->rec.seq;
}

/* A walk that restarted read some umems twice: keep each key's latest record. */
static void dedup(struct dd_umem_snap *s)
{
	size_t n = 0;

	qsort(s->u, s->n, sizeof(*s->u), key_cmp);
	for (size_t i = 0; i < s->n; i++) {
		if (n && s->u[n - 1].key == s->u[i].key)
			n--;
		s->u[n++] = s->u[i];
	}
	s->n = n;
}

int dd_umem_snap_read(int fd, struct dd_umem_snap *s)
{
	uint64_t key, next;
	bool first = true;
	size_t steps = 0;

	*s = (struct dd_umem_snap){ 0 };
	if (fd < 0)
		return -EBADF;
	/*
	 * get_next_key restarts from the first key when the current one was
	 * deleted meanwhile: a bound on the steps keeps a busy table from
	 * holding the scan; hitting it leaves the snapshot incomplete.
	 */
	while (steps++ < 4 * (size_t)DD_UMEM_MAX) {
		struct dd_umem *nu;

		if (bpf_map_get_next_key(fd, first ? NULL : &key, &next) < 0) {
			if (errno != ENOENT)
				return -errno;
			dedup(s);
			s->complete = true;
			return 0;
		}
		first = false;
		key = next;
		if (s->n % 256 == 0) {
			nu = realloc(s->u, (s->n + 256) * sizeof(*nu));
			if (!nu)
				return -ENOMEM;
			s->u = nu;
		}
		s->u[s->n].key = key;
		if (bpf_map_lookup_elem(fd, &key, &s->u[s->n].rec) < 0) {
			if (errno == ENOENT)
				continue; /* released meanwhile */
			return -errno;
		}
		s->n++;
	}
	return -EAGAIN;
}

bool dd_umem_still_live(int fd, const struct dd_umem *u)
{
	struct dd_umem_rec rec;

	return fd >= 0 && bpf_map_lookup_elem(fd, &u->key, &rec) == 0 && rec.seq == u->rec.seq;
}

int dd_umem_exec_seq(int fd, pid_t pid, uint64_t *ret_seq)
{
	int pidfd, r = 0;
	uint64_t v = 0;

	*ret_seq = 0;
	if (fd < 0)
		return -EBADF;
	pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
	if (pidfd < 0)
		return -errno;
	if (bpf_map_lookup_elem(fd, &pidfd, &v) < 0)
		r = errno == ENOENT ? 0 : -errno; /* ENOENT: no exec since the attach */
	close(pidfd);
	*ret_seq = v;
	return r;
}

#else /* !DAXPOOL_HAVE_BPF */

int dd_umem_trace_start(bool enabled)
{
	configured_on = enabled;
	set_off(LOG_INFO, "daxpoold was built without it (libbpf not found, or DAXPOOL_BPF=OFF)");
	return -1;
}

void dd_umem_trace_module_added(const char *name)
{
	(void)name;
}

void dd_umem_trace_loaded(void)
{
}

bool dd_umem_trace_on(void)
{
	return false;
}

uint64_t dd_umem_trace_missed(void)
{
	return 0;
}

int dd_umem_trace_map_dup(void)
{
	return -1;
}

int dd_umem_trace_execs_dup(void)
{
	return -1;
}

int dd_umem_exec_seq(int fd, pid_t pid, uint64_t *ret_seq)
{
	(void)fd;
	(void)pid;
	*ret_seq = 0;
	return -EBADF;
}

void dd_umem_trace_stop(void)
{
}

int dd_umem_snap_read(int fd, struct dd_umem_snap *s)
{
	(void)fd;
	*s = (struct dd_umem_snap){ 0 };
	return -EOPNOTSUPP;
}

bool dd_umem_still_live(int fd, const struct dd_umem *u)
{
	(void)fd;
	(void)u;
	return false;
}

#endif /* DAXPOOL_HAVE_BPF */

int dd_umem_trace_check(const char *sys, char *why, size_t size)
{
	char path[256];

	snprintf(path, sizeof(path), "%s/kernel/btf/vmlinux", sys);
	if (access(path, R_OK) < 0) {
		snprintf(why, size, "the kernel has no BTF (%s: %s; CONFIG_DEBUG_INFO_BTF)", path,
			 strerror(errno));
		return -ENOTSUP;
	}
	snprintf(path, sizeof(path), "%s/module/" UMEM_MODULE, sys);
	if (access(path, F_OK) < 0) {
		snprintf(why, size, UMEM_MODULE " is not loaded (no RDMA user verbs yet): the tracer "
					    "attaches when it is, and MRs from before are unknown");
		return -ENOENT;
	}
	snprintf(path, sizeof(path), "%s/kernel/btf/" UMEM_MODULE, sys);
	if (access(path, R_OK) < 0) {
		snprintf(why, size, UMEM_MODULE " has no BTF (%s: %s; CONFIG_DEBUG_INFO_BTF_MODULES)",
			 path, strerror(errno));
		return -ENOTSUP;
	}
	if (size)
		why[0] = '\0';
	return 0;
}

const char *dd_umem_trace_reason(void)
{
	return reason;
}

uint64_t dd_umem_trace_since_ns(void)
{
	return since_ns;
}

json_object *dd_umem_trace_json(void)
{
	json_object *o = json_object_new_object();

	json_object_object_add(o, "on", json_object_new_boolean(dd_umem_trace_on()));
	if (!dd_umem_trace_on()) {
		json_object_object_add(o, "reason", json_object_new_string(reason));
		return o;
	}
	json_object_object_add(o, "since_ns", json_object_new_uint64(since_ns));
	json_object_object_add(o, "missed", json_object_new_uint64(dd_umem_trace_missed()));
	return o;
}

void dd_umem_snap_free(struct dd_umem_snap *s)
{
	free(s->u);
	*s = (struct dd_umem_snap){ 0 };
}

bool dd_umem_rec_touches(const struct dd_umem_rec *r, const struct dd_pfn_range *ranges, size_t n)
{
	size_t nr = r->n_ranges < DD_UMEM_RANGES ? r->n_ranges : DD_UMEM_RANGES;

	if (r->flags & DD_UMEM_UNKNOWN)
		return true;
	for (size_t i = 0; i < nr; i++)
		for (size_t k = 0; k < n; k++)
			if (r->range[i].start < ranges[k].end && r->range[i].end > ranges[k].start)
				return true;
	return false;
}

static int read_u64(const char *path, int base, uint64_t *v)
{
	char buf[64], *end;
	ssize_t n;
	int fd;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return n < 0 ? -errno : -ENODATA;
	buf[n] = '\0';
	errno = 0;
	*v = strtoull(buf, &end, base);
	if (errno || end == buf)
		return -EINVAL;
	return 0;
}

int dd_dax_pfn_ranges(const char *devname, struct dd_pfn_range *ranges, size_t cap)
{
	char path[256];
	uint64_t start, end, size;
	size_t n = 0;
	int r;

	/* Each mappingN (dynamic regions): start and end (inclusive) of a physical range. */
	for (unsigned int i = 0; n < cap; i++) {
		snprintf(path, sizeof(path), "/sys/bus/dax/devices/%s/mapping%u/start", devname, i);
		if (read_u64(path, 0, &start) < 0)
			break;
		snprintf(path, sizeof(path), "/sys/bus/dax/devices/%s/mapping%u/end", devname, i);
		if ((r = read_u64(path, 0, &end)) < 0)
			return r;
		if (end < start)
			return -EINVAL;
		ranges[n].start = start >> 12;
		ranges[n].end = (end >> 12) + 1;
		n++;
	}
	if (n == cap) {
		/* More mappings than @cap: a range left unread would look off the device. */
		snprintf(path, sizeof(path), "/sys/bus/dax/devices/%s/mapping%zu/start", devname, n);
		if (access(path, F_OK) == 0)
			return -ENOSPC;
	}
	if (n)
		return (int)n;
	if (!cap)
		return -ENOSPC;
	/* A static device: one range, resource (its start) and size. */
	snprintf(path, sizeof(path), "/sys/bus/dax/devices/%s/resource", devname);
	if ((r = read_u64(path, 0, &start)) < 0)
		return r;
	snprintf(path, sizeof(path), "/sys/bus/dax/devices/%s/size", devname);
	if ((r = read_u64(path, 0, &size)) < 0)
		return r;
	if (!size)
		return -ENODATA;
	ranges[0].start = start >> 12;
	ranges[0].end = (start + size + 4095) >> 12;
	return 1;
}
