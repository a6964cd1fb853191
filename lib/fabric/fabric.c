/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * libdaxpool-fabric: a memory monitor imported into libfabric's MR cache
 * (rdma/fi_ext.h, struct fid_mem_monitor) that pins the daxpool ranges the
 * cache keeps and, when daxpool zaps one, invalidates and deregisters the
 * cached MRs on it before the pin goes. Only the public daxpool API is used.
 *
 * How libfabric 1.17 calls a monitor (prov/util: the MR cache):
 * - subscribe(addr, len) after the provider registered a new entry and put
 *   it in the cache, with the cache's global lock held; an error leaves the
 *   entry registered but uncached: it is deregistered at its fi_close().
 * - valid(addr, len) on a cache hit.
 * - unsubscribe(addr, len): 1.17 never calls it for host memory (measured in
 *   the vm tier: neither an invalidation nor a refused subscribe reaches
 *   it); later versions call it when an entry leaves the cache, still
 *   registered. The monitor takes it as a hint only.
 * The monitor calls notify(addr, len) (libfabric's import_ops), which takes
 * every cached entry overlapping the range out of every cache: an idle one
 * goes to the cache's dead list, deregistered at the next registration
 * through that domain; one in use is deregistered at its fi_close().
 *
 * Locks: libfabric's cache lock is held around subscribe, unsubscribe and
 * valid, which take mon->lock and daxpool's own locks only; notify and
 * fi_mr_reg are called with no lock of ours held but mon->flush_lock,
 * which nothing under libfabric's lock takes.
 */
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <rdma/fabric.h>
#include <rdma/fi_domain.h>
#include <rdma/fi_errno.h>
#include <rdma/fi_ext.h>

#include "daxpool-fabric.h"

#define _public_ __attribute__((visibility("default")))

/* One range the cache keeps (one per cache entry) on daxpool memory, and its pin. */
struct sub {
	struct sub *next;
	uintptr_t start;
	size_t len;
	struct daxpool_pin *pin; /* NULL if dropped at once (a zap raced the subscribe) */
	bool retired; /* out of the cache (invalidated, or unsubscribed): dropped by the next flush */
	bool revoked; /* daxpool zapped the range */
};

struct dom {
	struct dom *next;
	struct fid_domain *domain;
};

struct daxpool_fabric_monitor {
	struct fid_mem_monitor fid; /* libfabric owns fid.context, fid.ops, import_ops */
	struct fi_ops_mem_monitor ops;
	struct daxpool_ctx *ctx;
	pthread_mutex_t lock; /* subs, n_subs (those with a pin), doms */
	pthread_mutex_t flush_lock; /* one flush at a time; held to change doms */
	struct sub *subs;
	int n_subs;
	struct dom *doms;
	void *page; /* registered and closed through each domain by a flush */
	size_t page_size;
};

static struct daxpool_fabric_monitor *mon_of(struct fid_mem_monitor *fid)
{
	return (struct daxpool_fabric_monitor *)((char *)fid -
						 offsetof(struct daxpool_fabric_monitor, fid));
}

static int mon_start(struct fid_mem_monitor *fid)
{
	(void)fid;
	return 0;
}

static void mon_stop(struct fid_mem_monitor *fid)
{
	(void)fid;
}

static void sub_revoke(struct daxpool_pin *pin, void *userdata);

/*
 * A new cache entry. Inside one live daxpool map: pin it. Anything else
 * (memory outside daxpool, a range across maps, a zapped range) is refused,
 * so the cache does not keep it and its fi_close() deregisters it.
 */
static int mon_subscribe(struct fid_mem_monitor *fid, const void *addr, size_t len)
{
	struct daxpool_fabric_monitor *mon = mon_of(fid);
	struct daxpool_map *map;
	struct daxpool_pin *pin;
	struct sub *s;
	int r;

	if (!len || daxpool_ctx_find_map(mon->ctx, addr, len, &map) < 0)
		return -FI_ENOSYS;
	r = daxpool_pin_new(map, (void *)addr, len, DAXPOOL_PIN_LONGTERM,
			    DAXPOOL_PIN_DEVICE_READ | DAXPOOL_PIN_DEVICE_WRITE, &pin);
	daxpool_map_unref(map); /* the pin holds the map */
	if (r < 0)
		return -FI_ENOSYS;
	s = calloc(1, sizeof(*s));
	if (!s) {
		daxpool_pin_unref(pin);
		return -FI_ENOMEM;
	}
	s->start = (uintptr_t)addr;
	s->len = len;
	s->pin = pin;
	daxpool_pin_set_owner(pin, "libfabric mr cache");
	pthread_mutex_lock(&mon->lock);
	s->next = mon->subs;
	mon->subs = s;
	mon->n_subs++;
	pthread_mutex_unlock(&mon->lock);
	/*
	 * Listed first, so that a zap from now on finds it. A zap that came
	 * between daxpool_pin_new() and here revoked the pin without calling
	 * us: then the entry must not be cached (the zap may be done).
	 */
	daxpool_pin_set_revoke_fn(pin, sub_revoke, mon);
	if (daxpool_pin_is_valid(pin) != 1) {
		/*
		 * The zap waits for this pin: drop it now. The entry stays
		 * registered until the application's fi_close(), as any entry
		 * it has open. A libfabric that unsubscribes the refused entry
		 * finds this record first (the newest of its range).
		 */
		pthread_mutex_lock(&mon->lock);
		s->revoked = true;
		s->pin = NULL; /* the record goes at the next flush */
		mon->n_subs--;
		pthread_mutex_unlock(&mon->lock);
		daxpool_pin_unref(pin);
		return -FI_ENOSYS;
	}
	return 0;
}

/* The entry is out of the cache but may still be registered: its pin stays until a flush (not 1.17). */
static void mon_unsubscribe(struct fid_mem_monitor *fid, const void *addr, size_t len)
{
	struct daxpool_fabric_monitor *mon = mon_of(fid);

	pthread_mutex_lock(&mon->lock);
	for (struct sub *s = mon->subs; s; s = s->next)
		if (!s->retired && s->start == (uintptr_t)addr && s->len == len) {
			s->retired = true;
			break;
		}
	pthread_mutex_unlock(&mon->lock);
}

static bool mon_valid(struct fid_mem_monitor *fid, const void *addr, size_t len)
{
	struct daxpool_fabric_monitor *mon = mon_of(fid);
	bool valid = false;

	pthread_mutex_lock(&mon->lock);
	for (struct sub *s = mon->subs; s; s = s->next)
		if (!s->retired && s->start == (uintptr_t)addr && s->len == len) {
			valid = !s->revoked;
			break;
		}
	pthread_mutex_unlock(&mon->lock);
	return valid;
}

/*
 * Deregister what the caches let go, then drop the pins of the entries that
 * had left their cache before it (the ones that leave during it wait for the
 * next flush), and the records whose pin went at once. libfabric 1.17 frees a cache's dead entries at the start of
 * the next registration through its domain: one page of ours, registered and
 * closed (the monitor refuses to cache it).
 */
static int mon_flush(struct daxpool_fabric_monitor *mon)
{
	struct sub **pp, *gone = NULL;
	int n = 0;

	pthread_mutex_lock(&mon->flush_lock);
	pthread_mutex_lock(&mon->lock);
	for (pp = &mon->subs; *pp;) {
		struct sub *s = *pp;

		if (s->retired || !s->pin) {
			*pp = s->next;
			s->next = gone;
			gone = s;
			if (s->pin)
				mon->n_subs--;
		} else {
			pp = &s->next;
		}
	}
	pthread_mutex_unlock(&mon->lock);
	for (struct dom *d = mon->doms; d; d = d->next) {
		struct fid_mr *mr;

		if (fi_mr_reg(d->domain, mon->page, mon->page_size, FI_SEND | FI_RECV, 0, 0, 0,
			      &mr, NULL) == 0)
			fi_close(&mr->fid);
	}
	pthread_mutex_unlock(&mon->flush_lock);
	while (gone) {
		struct sub *s = gone;

		gone = s->next;
		if (s->pin) {
			daxpool_pin_unref(s->pin);
			n++;
		}
		free(s);
	}
	return n;
}

/*
 * daxpool zapped the range (any thread, no daxpool lock held): take the
 * cached entries on it out of every cache, deregister them through every
 * domain, drop the pin. An entry the application still has open (no
 * fi_close() yet) is deregistered by its own fi_close().
 * @userdata is the monitor, which outlives its pins; the range is the pin's
 * (the caller holds a reference on it for the call).
 */
static void sub_revoke(struct daxpool_pin *pin, void *userdata)
{
	struct daxpool_fabric_monitor *mon = userdata;

	pthread_mutex_lock(&mon->lock);
	for (struct sub *s = mon->subs; s; s = s->next)
		if (s->pin == pin)
			s->revoked = true; /* valid() says no from here on */
	pthread_mutex_unlock(&mon->lock);
	mon->fid.import_ops->notify(&mon->fid, daxpool_pin_get_address(pin),
				    daxpool_pin_get_length(pin));
	/* Out of every cache now: the flush deregisters it, then drops the pin. */
	pthread_mutex_lock(&mon->lock);
	for (struct sub *s = mon->subs; s; s = s->next)
		if (s->pin == pin)
			s->retired = true;
	pthread_mutex_unlock(&mon->lock);
	mon_flush(mon);
}

/* One monitor per process: libfabric keeps one imported monitor. */
static pthread_mutex_t the_monitor_lock = PTHREAD_MUTEX_INITIALIZER;
static struct daxpool_fabric_monitor *the_monitor;

_public_ int daxpool_fabric_monitor_new(struct daxpool_ctx *ctx,
					struct daxpool_fabric_monitor **ret)
{
	struct daxpool_fabric_monitor *mon;
	long page = sysconf(_SC_PAGESIZE);
	int r;

	if (!ctx || !ret)
		return -EINVAL;
	pthread_mutex_lock(&the_monitor_lock);
	if (the_monitor) {
		r = -EBUSY;
		goto out;
	}
	r = -ENOMEM;
	mon = calloc(1, sizeof(*mon));
	if (!mon)
		goto out;
	mon->page_size = page > 0 ? (size_t)page : 4096;
	if (posix_memalign(&mon->page, mon->page_size, mon->page_size)) {
		free(mon);
		goto out;
	}
	memset(mon->page, 0, mon->page_size);
	pthread_mutex_init(&mon->lock, NULL);
	pthread_mutex_init(&mon->flush_lock, NULL);
	mon->ops = (struct fi_ops_mem_monitor){
		.size = sizeof(struct fi_ops_mem_monitor),
		.start = mon_start,
		.stop = mon_stop,
		.subscribe = mon_subscribe,
		.unsubscribe = mon_unsubscribe,
		.valid = mon_valid,
	};
	mon->fid.fid.fclass = FI_CLASS_MEM_MONITOR;
	mon->fid.export_ops = &mon->ops;
	mon->ctx = daxpool_ctx_ref(ctx);
	r = fi_import(FI_VERSION(1, 13), "mr_cache", NULL, 0, 0, &mon->fid.fid, NULL);
	if (r) {
		/* -FI_EBUSY: a domain is open (or another monitor); -FI_ENOSYS: no import. */
		r = r == -FI_EBUSY ? -EBUSY : r == -FI_ENOMEM ? -ENOMEM : -EOPNOTSUPP;
		daxpool_ctx_unref(mon->ctx);
		pthread_mutex_destroy(&mon->lock);
		pthread_mutex_destroy(&mon->flush_lock);
		free(mon->page);
		free(mon);
		goto out;
	}
	the_monitor = mon;
	*ret = mon;
out:
	pthread_mutex_unlock(&the_monitor_lock);
	return r;
}

_public_ int daxpool_fabric_monitor_add_domain(struct daxpool_fabric_monitor *mon,
					       struct fid_domain *domain)
{
	struct dom *d;
	int r = 0;

	if (!mon || !domain)
		return -EINVAL;
	pthread_mutex_lock(&mon->flush_lock);
	pthread_mutex_lock(&mon->lock);
	for (d = mon->doms; d; d = d->next)
		if (d->domain == domain)
			r = -EEXIST;
	if (!r) {
		d = calloc(1, sizeof(*d));
		if (d) {
			d->domain = domain;
			d->next = mon->doms;
			mon->doms = d;
		} else {
			r = -ENOMEM;
		}
	}
	pthread_mutex_unlock(&mon->lock);
	pthread_mutex_unlock(&mon->flush_lock);
	return r;
}

_public_ int daxpool_fabric_monitor_remove_domain(struct daxpool_fabric_monitor *mon,
						  struct fid_domain *domain)
{
	struct dom **pp, *d = NULL;

	if (!mon || !domain)
		return -EINVAL;
	pthread_mutex_lock(&mon->flush_lock);
	pthread_mutex_lock(&mon->lock);
	for (pp = &mon->doms; *pp; pp = &(*pp)->next)
		if ((*pp)->domain == domain) {
			d = *pp;
			*pp = d->next;
			break;
		}
	pthread_mutex_unlock(&mon->lock);
	pthread_mutex_unlock(&mon->flush_lock);
	free(d);
	return d ? 0 : -ENOENT;
}

_public_ int daxpool_fabric_monitor_flush(struct daxpool_fabric_monitor *mon)
{
	if (!mon)
		return -EINVAL;
	return mon_flush(mon);
}

_public_ int daxpool_fabric_monitor_get_pin_count(struct daxpool_fabric_monitor *mon)
{
	int n;

	if (!mon)
		return -EINVAL;
	pthread_mutex_lock(&mon->lock);
	n = mon->n_subs;
	pthread_mutex_unlock(&mon->lock);
	return n;
}

_public_ int daxpool_fabric_monitor_free(struct daxpool_fabric_monitor *mon)
{
	struct sub *s;

	if (!mon)
		return 0;
	pthread_mutex_lock(&the_monitor_lock);
	pthread_mutex_lock(&mon->lock);
	if (mon->doms) {
		pthread_mutex_unlock(&mon->lock);
		pthread_mutex_unlock(&the_monitor_lock);
		return -EBUSY;
	}
	pthread_mutex_unlock(&mon->lock);
	/* libfabric's close of an imported monitor: it stops calling us. */
	fi_close(&mon->fid.fid);
	the_monitor = NULL;
	pthread_mutex_unlock(&the_monitor_lock);
	while ((s = mon->subs)) {
		mon->subs = s->next;
		daxpool_pin_unref(s->pin);
		free(s);
	}
	daxpool_ctx_unref(mon->ctx);
	pthread_mutex_destroy(&mon->lock);
	pthread_mutex_destroy(&mon->flush_lock);
	free(mon->page);
	free(mon);
	return 0;
}
