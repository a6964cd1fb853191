/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Scans of /proc on threads of their own (scan.h): the copy of the daemon's
 * state a scan reads, its thread, its end heard through an eventfd, its bound.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "opens.h"
#include "scan.h"

static int done_fd = -1;

int dd_scan_init(void)
{
	done_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	return done_fd < 0 ? -errno : done_fd;
}

static unsigned int running_of(const struct dd_manager *m, uid_t uid)
{
	unsigned int n = 0;

	for (const struct dd_scan *s = m->scans; s; s = s->next)
		n += s->uid == uid;
	return n;
}

int dd_scan_admit(const struct dd_manager *m, uid_t uid, char *why, size_t size)
{
	if (uid != 0 && running_of(m, uid) >= m->cfg.max_scans_per_uid) {
		const struct dd_scan *oldest = NULL;

		for (const struct dd_scan *o = m->scans; o; o = o->next)
			if (o->uid == uid && (!oldest || o->started_ns < oldest->started_ns))
				oldest = o;
		snprintf(why, size,
			 "uid %u has %u scans of /proc running (max_scans_per_uid), the oldest for "
			 "%.1f s (reading pid %d): try again when one ended", (unsigned)uid,
			 running_of(m, uid),
			 oldest ? (double)(dd_now_ns() - oldest->started_ns) / 1e9 : 0.0,
			 oldest ? __atomic_load_n(&oldest->in.at_pid, __ATOMIC_ACQUIRE) : 0);
		return -EAGAIN;
	}
	return 0;
}

struct dd_scan *dd_scan_new(int kind, uid_t uid)
{
	struct dd_scan *s = calloc(1, sizeof(*s));

	if (!s)
		return NULL;
	s->kind = kind;
	s->uid = uid; /* every scan counts while it runs, abandoned or not */
	s->in.viewer = 0;
	s->in.self = getpid();
	/*
	 * A tracer that could not record every umem (its table was full) proves
	 * nothing of any process: a missed MR is no record, and another's
	 * records could make up for its pages in VmPin.
	 */
	s->in.umem_fd = dd_umem_trace_missed() ? -1 : dd_umem_trace_map_dup();
	s->in.execs_fd = s->in.umem_fd >= 0 ? dd_umem_trace_execs_dup() : -1;
	if (s->in.execs_fd < 0 && s->in.umem_fd >= 0) {
		close(s->in.umem_fd); /* without the exec numbers a record proves nothing */
		s->in.umem_fd = -1;
	}
	return s;
}

void dd_scan_free(struct dd_scan *s)
{
	if (!s)
		return;
	for (size_t k = 0; k < s->in.n_keys; k++)
		free(s->in.keys[k].reg);
	free(s->in.keys);
	for (size_t i = 0; i < s->in.n_clients; i++) {
		free(s->in.clients[i].pin_lengths);
		free(s->in.clients[i].target_pin_lengths);
	}
	free(s->in.clients);
	free(s->in.openers);
	if (s->in.umem_fd >= 0)
		close(s->in.umem_fd);
	if (s->in.execs_fd >= 0)
		close(s->in.execs_fd);
	dd_umem_snap_free(&s->in.umems);
	free(s->waited);
	free(s->checks);
	json_object_put(s->holders);
	json_object_put(s->rdma);
	json_object_put(s->doc);
	free(s);
}

static int pid_cmp(const void *a, const void *b)
{
	pid_t x = *(const pid_t *)a, y = *(const pid_t *)b;

	return x < y ? -1 : x > y;
}

static struct dd_scan_client *client_find(struct dd_scan_in *in, pid_t pid)
{
	return bsearch(&pid, in->clients, in->n_clients, sizeof(*in->clients), pid_cmp);
}

/*
 * One entry per client process, sorted by pid, with its long-term pins
 * (@drained: less those on @t: after the drain a pin it still claims there
 * explains none of its pinned pages).
 */
static int copy_clients(struct dd_manager *m, struct dd_scan_in *in, const struct dd_target *t,
			bool drained)
{
	size_t n = 0, k = 0;

	for (const struct dd_conn *c = m->conns; c; c = c->next)
		n += c->role == DP_ROLE_CLIENT;
	in->clients = calloc(n + 1, sizeof(*in->clients));
	if (!in->clients)
		return -ENOMEM;
	for (const struct dd_conn *c = m->conns; c; c = c->next)
		if (c->role == DP_ROLE_CLIENT)
			in->clients[k++].pid = c->cred.pid; /* pid first: pid_cmp reads it */
	qsort(in->clients, k, sizeof(*in->clients), pid_cmp);
	n = 0;
	for (size_t i = 0; i < k; i++)
		if (!n || in->clients[n - 1].pid != in->clients[i].pid)
			in->clients[n++] = in->clients[i];
	in->n_clients = n;
	for (const struct dd_conn *c = m->conns; c; c = c->next) {
		struct dd_scan_client *sc;
		uint64_t *nl;

		if (c->role != DP_ROLE_CLIENT || !c->pins.n)
			continue;
		sc = client_find(in, c->cred.pid);
		nl = realloc(sc->pin_lengths, (sc->n_pins + c->pins.n) * sizeof(*nl));
		if (!nl)
			return -ENOMEM;
		sc->pin_lengths = nl;
		nl = realloc(sc->target_pin_lengths, (sc->n_target_pins + c->pins.n) * sizeof(*nl));
		if (!nl)
			return -ENOMEM;
		sc->target_pin_lengths = nl;
		dd_idmap_for_each(&c->pins, i, h)
		{
			const struct dd_region *r;
			bool on_target;

			if (h->kind != 2)
				continue; /* transient pins are not in VmPin, nor MRs */
			r = dd_regmap_get(&c->region_ids, h->region_id);
			on_target = !r || dd_region_is(r, t->dev, t->ino, t->rdev);
			if (drained && on_target)
				continue;
			sc->own_pin_kb += ((h->offset & 4095) + h->length + 4095) / 4096 * 4;
			sc->pin_lengths[sc->n_pins++] = h->length;
			if (on_target && r)
				sc->target_pin_lengths[sc->n_target_pins++] = h->length;
		}
	}
	return 0;
}

int dd_scan_add_key(struct dd_manager *m, struct dd_scan *s, const struct dd_target *t,
		    bool drained)
{
	struct dd_scan_in *in = &s->in;
	struct dd_scan_key *nk, *key;

	if (!in->clients) {
		if (copy_clients(m, in, t, drained) < 0)
			return -ENOMEM;
		in->drained = drained;
	}
	nk = realloc(in->keys, (in->n_keys + 1) * sizeof(*nk));
	if (!nk)
		return -ENOMEM;
	in->keys = nk;
	key = &nk[in->n_keys];
	*key = (struct dd_scan_key){ .t = *t };
	key->t.fd = -1;
	key->reg = calloc(in->n_clients + 1, sizeof(*key->reg));
	if (!key->reg)
		return -ENOMEM;
	in->n_keys++;
	for (const struct dd_conn *c = m->conns; c; c = c->next) {
		struct dd_scan_client *sc;
		struct dd_scan_reg *reg;

		if (c->role != DP_ROLE_CLIENT)
			continue;
		sc = client_find(in, c->cred.pid);
		reg = &key->reg[sc - in->clients];
		for (const struct dd_region *r = c->regions; r && !reg->holds; r = r->next)
			reg->holds = dd_region_is(r, t->dev, t->ino, t->rdev);
		if (dd_conn_has_seen(c, t->dev, t->ino, t->rdev)) {
			uint64_t first = dd_conn_seen_since(c, t->dev, t->ino, t->rdev);

			reg->registered = true;
			if (!reg->registered_ns || (first && first < reg->registered_ns))
				reg->registered_ns = first;
		}
	}
	if (t->rdev) {
		const char *off;

		dd_opens_refresh(); /* takes the queued events too */
		off = dd_opens_off_reason();
		if (off)
			snprintf(key->off_reason, sizeof(key->off_reason), "%s", off);
		key->rec.off_reason = off ? key->off_reason : NULL;
		key->rec.recording = !off;
		key->rec.since_ns = dd_opens_since(t->rdev, &key->rec.since_real_ns);
		if (dd_opens_copy(t->rdev, &in->openers, &in->n_openers) < 0)
			return -ENOMEM;
		if (in->umem_fd >= 0 && t->devname[0])
			key->n_pfn = dd_dax_pfn_ranges(t->devname, key->pfn, 8);
	}
	return 0;
}

/* Whether a holder waited on may still hold: alive, and still pinning or mapping. */
static bool waited_still_there(const struct dd_scan *s, const struct dd_waited *w)
{
	const struct dd_target *t = &s->in.keys[0].t;
	uint64_t start;

	if (dd_proc_start(w->pid, &start, NULL) < 0 || start != w->start_ns)
		return false; /* exited */
	return dd_proc_vm_pin_kb(w->pid) > 0 || dd_pid_maps(w->pid, t->dev, t->ino, t->rdev);
}

static void run_holders(struct dd_scan *s)
{
	struct dd_rdma_mrs mrs = { 0 };

	s->holders = json_object_new_array();
	/* Before any VmPin is read: a umem is trusted only if still live after its read. */
	if (s->in.umem_fd >= 0 && dd_umem_snap_read(s->in.umem_fd, &s->in.umems) < 0)
		s->in.umems.complete = false;
	for (size_t k = 0; k < s->in.n_keys; k++) {
		json_object *found = dd_possible_holders(&s->in, k, &mrs);

		for (size_t i = 0; i < json_object_array_length(found); i++)
			json_object_array_add(s->holders,
					      json_object_get(json_object_array_get_idx(found, i)));
		json_object_put(found);
	}
	s->rdma = dd_rdma_mrs_json(&mrs);
	dd_rdma_mrs_free(&mrs);
}

static void *scan_main(void *arg)
{
	struct dd_scan *s = arg;
	uint64_t one = 1;

	switch (s->kind) {
	case DD_SCAN_POLL:
		/* The cheap check first: no full scan while one is surely there. */
		for (size_t i = 0; i < s->n_waited && !s->waited_there; i++) {
			__atomic_store_n(&s->in.at_pid, (int)s->waited[i].pid, __ATOMIC_RELEASE);
			s->waited_there = waited_still_there(s, &s->waited[i]);
		}
		__atomic_store_n(&s->in.at_pid, 0, __ATOMIC_RELEASE);
		if (!s->waited_there)
			run_holders(s);
		break;
	case DD_SCAN_HOLDS_FILE:
		for (size_t i = 0; i < s->n_checks; i++) {
			__atomic_store_n(&s->in.at_pid, (int)s->checks[i].pid, __ATOMIC_RELEASE);
			s->checks[i].holds = dd_pid_holds_file(s->checks[i].pid, s->checks[i].dev,
							       s->checks[i].ino);
		}
		break;
	default:
		run_holders(s);
		break;
	}
	__atomic_store_n(&s->done, true, __ATOMIC_RELEASE);
	if (write(done_fd, &one, sizeof(one)) < 0) {
		/* The counter cannot overflow with one write per scan. */
	}
	return NULL;
}

int dd_scan_start(struct dd_manager *m, struct dd_scan *s, void *owner, dd_scan_fn done_fn,
		  dd_scan_fn late_fn, uint64_t bound_ns)
{
	sigset_t all, old;
	int r;

	if (done_fd < 0) {
		dd_scan_free(s);
		return -ENOTCONN;
	}
	if (s->kind == DD_SCAN_POLL && !s->in.n_keys) {
		dd_scan_free(s);
		return -EINVAL;
	}
	s->owner = owner;
	s->done_fn = done_fn;
	s->late_fn = late_fn;
	s->bound_ns = bound_ns;
	s->started_ns = dd_now_ns();
	/* Born with every signal blocked: the loop's signals are the loop's. */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	r = -pthread_create(&s->thread, NULL, scan_main, s);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (r < 0) {
		dd_scan_free(s);
		return r;
	}
	s->started = true;
	s->next = m->scans;
	m->scans = s;
	return 0;
}

void dd_scan_abandon(struct dd_scan *s)
{
	if (!s)
		return;
	s->owner = NULL;
	s->done_fn = s->late_fn = NULL;
	json_object_put(s->doc);
	s->doc = NULL;
}

/* The first scan of @m that ended, unlinked and joined; NULL if none. */
static struct dd_scan *take_ended(struct dd_manager *m)
{
	for (struct dd_scan **pp = &m->scans; *pp; pp = &(*pp)->next) {
		struct dd_scan *s = *pp;

		if (!__atomic_load_n(&s->done, __ATOMIC_ACQUIRE))
			continue;
		*pp = s->next;
		pthread_join(s->thread, NULL);
		return s;
	}
	return NULL;
}

void dd_scans_done(struct dd_manager *m)
{
	struct dd_scan *s;
	uint64_t n;

	if (read(done_fd, &n, sizeof(n)) < 0 && errno != EAGAIN)
		dd_log(LOG_WARNING, "scan eventfd: %m");
	/* One at a time: a done function may start another scan. */
	while ((s = take_ended(m))) {
		if (s->owner && s->done_fn)
			s->done_fn(m, s);
		dd_scan_free(s);
	}
}

int dd_scans_tick(struct dd_manager *m)
{
	uint64_t now = dd_now_ns(), next = UINT64_MAX;
	bool again = true;

	while (again) {
		again = false;
		for (struct dd_scan *s = m->scans; s; s = s->next) {
			if (!s->owner || !s->late_fn || __atomic_load_n(&s->done, __ATOMIC_ACQUIRE))
				continue;
			if (now >= s->bound_ns) {
				dd_scan_fn late = s->late_fn;

				/* The owner answers without it, and it runs on unowned. */
				late(m, s);
				dd_scan_abandon(s);
				again = true; /* the late function may have changed the list */
				break;
			}
			if (s->bound_ns < next)
				next = s->bound_ns;
		}
	}
	return next == UINT64_MAX ? -1 : (int)((next - now + 999999) / 1000000);
}

json_object *dd_scan_stuck_holder(const struct dd_scan *s)
{
	pid_t pid = __atomic_load_n(&s->in.at_pid, __ATOMIC_ACQUIRE);
	uint64_t since = __atomic_load_n(&s->in.at_since_ns, __ATOMIC_RELAXED), now;
	struct timespec ts;
	json_object *o;
	char why[320];

	clock_gettime(CLOCK_MONOTONIC, &ts);
	now = (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
	o = dd_holder_new(pid, NULL, NULL);
	if (pid)
		snprintf(why, sizeof(why),
			 "daxpoold's read of /proc/%d (its maps: the process's mmap lock) has not "
			 "returned for %.1f s; what it maps or pins cannot be ruled out, nor what the "
			 "rest of the scan would have found", (int)pid,
			 since && now > since ? (double)(now - since) / 1e9 : 0.0);
	else
		snprintf(why, sizeof(why),
			 "daxpoold's scan of /proc and RDMA netlink has not ended after %.1f s: no "
			 "process can be ruled out", (double)(dd_now_ns() - s->started_ns) / 1e9);
	dd_holder_finish(o, why, 1);
	return o;
}

void dd_scan_exit(struct dd_manager *m)
{
	struct dd_scan *s;

	/* Up to a second for the scans still reading; the rest are left to the exit. */
	for (int i = 0; i < 50 && m->scans; i++) {
		while ((s = take_ended(m)))
			dd_scan_free(s);
		if (m->scans)
			usleep(20000);
	}
	for (s = m->scans; s; s = s->next)
		pthread_detach(s->thread); /* still in the kernel: its memory stays its own */
	m->scans = NULL;
	if (done_fd >= 0)
		close(done_fd);
	done_fd = -1;
}
