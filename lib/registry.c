/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The pin registry: "which pins cover [addr, addr + len)?", answered exactly
 * and without locks.
 *
 * Pins live in liburcu lock-free hash tables keyed by granule of address.
 * There are three levels of granule size (4 KiB, 2 MiB, 1 GiB), each its own
 * table; a pin goes to the smallest level at which it covers at most
 * DP_LEVEL_FANOUT granules, with one node per granule. So a small pin never
 * shares a hash key with hundreds of neighbours, and a large one needs few
 * nodes. A lookup visits, at each level that holds pins, either the granules
 * of its range (one hash lookup each) or, when that would be more work, every
 * pin of the level; it compares ranges, so a pin is found iff it overlaps.
 *
 * Readers write nothing shared: the urcu-bp read lock touches only the
 * thread's own reader state, the per-level counts are only read, and lookups
 * take no reference (a visitor that wants one uses daxpool_pin_try_ref(),
 * which is get-unless-zero: a count that reached zero means the pin is going
 * away).
 *
 * Removal is unlink, then free after a grace period, so a reader that found a
 * node before it was unlinked still reads valid memory. Frees are batched:
 * the unpin that fills a batch hands it to daxpool's reclaim thread (one per
 * process, started with the first batch), which waits for the grace period
 * (synchronize_rcu, 1-25 us here) and frees it. An unpin never waits for a
 * grace period itself: urcu-bp is process-wide, so an application that uses
 * it too may unpin inside its own read-side section, where synchronize_rcu
 * would wait for ever for the caller. liburcu's call_rcu would do the same
 * with its own thread, but its threads must be paused around every fork
 * (about 1 ms each); the reclaim thread needs one lock at the fork. The tables
 * use no resize thread either (no automatic resize: they grow by doubling
 * from the inserting thread).
 */
#include <assert.h>
#include <signal.h>
#include <stdlib.h>

#include "private.h"

/*
 * ThreadSanitizer cannot see an RCU grace period (liburcu is not built for
 * it): in TSan builds, each read-side section ends with a release on the
 * registry and each reclamation begins, after synchronize_rcu(), with an
 * acquire of it, which is what a grace period guarantees. Nothing in other
 * builds.
 */
#if defined(__SANITIZE_THREAD__)
#define DP_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define DP_TSAN 1
#endif
#endif
/* One for the process: the reclaim thread frees batches of every registry. */
static char dp_grace;
#ifdef DP_TSAN
void __tsan_acquire(void *addr);
void __tsan_release(void *addr);
#define dp_tsan_reader_done(reg) ((void)(reg), __tsan_release(&dp_grace))
#define dp_tsan_grace_passed() __tsan_acquire(&dp_grace)
#else
#define dp_tsan_reader_done(reg) ((void)(reg), (void)dp_grace)
#define dp_tsan_grace_passed() ((void)0)
#endif

#define DP_TABLE_MIN (1ul << 10)
#define DP_DEFER_BATCH 64

static const unsigned int level_shift[DP_LEVELS] = { 12, 21, 30 };

struct dp_level {
	struct cds_lfht *ht;
	atomic_long count;		/* pins at this level */
	unsigned long size;		/* buckets; under grow_lock */
};

struct dp_registry {
	struct dp_level levels[DP_LEVELS];
	pthread_mutex_t grow_lock;
	pthread_mutex_t defer_lock;
	struct daxpool_pin *deferred; /* unlinked, waiting for a full batch */
	unsigned int n_deferred;
};

void dp_registry_place(uintptr_t start, size_t length, unsigned int *ret_level,
		       uintptr_t *ret_first, size_t *ret_n)
{
	unsigned int l;
	uintptr_t first = 0, last = 0;

	for (l = 0; l < DP_LEVELS; l++) {
		first = start >> level_shift[l];
		last = (start + length - 1) >> level_shift[l];
		if (last - first + 1 <= DP_LEVEL_FANOUT)
			break;
	}
	if (l == DP_LEVELS)
		l = DP_LEVELS - 1; /* beyond 4 GiB: more nodes at the top level */
	*ret_level = l;
	*ret_first = first;
	*ret_n = last - first + 1;
}

/* A 64-bit mix (the MurmurHash3 finaliser) of the granule number. */
static unsigned long granule_hash(uintptr_t granule)
{
	uint64_t h = granule;

	h ^= h >> 33;
	h *= 0xff51afd7ed558ccdULL;
	h ^= h >> 33;
	h *= 0xc4ceb9fe1a85ec53ULL;
	h ^= h >> 33;
	return (unsigned long)h;
}

static int granule_match(struct cds_lfht_node *node, const void *key)
{
	const struct dp_pin_node *n = caa_container_of(node, struct dp_pin_node, lfnode);

	return n->granule == *(const uintptr_t *)key;
}

int dp_registry_new(struct dp_registry **ret)
{
	struct dp_registry *reg = calloc(1, sizeof(*reg));

	if (!reg)
		return -ENOMEM;
	pthread_mutex_init(&reg->grow_lock, NULL);
	pthread_mutex_init(&reg->defer_lock, NULL);
	for (unsigned int l = 0; l < DP_LEVELS; l++) {
		atomic_init(&reg->levels[l].count, 0);
		reg->levels[l].size = DP_TABLE_MIN;
		reg->levels[l].ht = cds_lfht_new(DP_TABLE_MIN, DP_TABLE_MIN, 0, 0, NULL);
		if (!reg->levels[l].ht) {
			dp_registry_free(reg);
			return -ENOMEM;
		}
	}
	*ret = reg;
	return 0;
}

static void free_batch(struct daxpool_pin *list)
{
	while (list) {
		struct daxpool_pin *next = list->defer_next;

		free(list);
		list = next;
	}
}

/*
 * The reclaim thread: batches of unlinked pins (chained by defer_next) wait
 * on reclaim_list for it. reclaim_lock is taken by the atfork prepare
 * handler; the child starts with no thread and an empty list (what was
 * listed is the parent's).
 */
static pthread_mutex_t reclaim_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t reclaim_cond = PTHREAD_COND_INITIALIZER;
static struct daxpool_pin *reclaim_list;
static bool reclaim_running;

static void *reclaim_thread(void *arg)
{
	(void)arg;
	for (;;) {
		struct daxpool_pin *list;

		pthread_mutex_lock(&reclaim_lock);
		while (!reclaim_list)
			pthread_cond_wait(&reclaim_cond, &reclaim_lock);
		list = reclaim_list;
		reclaim_list = NULL;
		pthread_mutex_unlock(&reclaim_lock);
		/* Every reader that could see a node of these batches has finished. */
		synchronize_rcu();
		dp_tsan_grace_passed();
		free_batch(list);
	}
	return NULL;
}

/*
 * Hand a batch to the reclaim thread, starting it if needed (with every
 * signal blocked: it never takes the application's). Never waits for a grace
 * period. If the thread cannot start, the batch stays listed for the next try.
 */
static void reclaim_batch(struct daxpool_pin *batch)
{
	struct daxpool_pin *tail = batch;

	while (tail->defer_next)
		tail = tail->defer_next;
	pthread_mutex_lock(&reclaim_lock);
	tail->defer_next = reclaim_list;
	reclaim_list = batch;
	if (!reclaim_running) {
		pthread_attr_t attr;
		sigset_t all, old;
		pthread_t t;

		sigfillset(&all);
		pthread_sigmask(SIG_SETMASK, &all, &old);
		pthread_attr_init(&attr);
		pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
		reclaim_running = pthread_create(&t, &attr, reclaim_thread, NULL) == 0;
		pthread_attr_destroy(&attr);
		pthread_sigmask(SIG_SETMASK, &old, NULL);
	}
	pthread_cond_signal(&reclaim_cond);
	pthread_mutex_unlock(&reclaim_lock);
}

void dp_registry_atfork_prepare(void)
{
	pthread_mutex_lock(&reclaim_lock);
}

void dp_registry_atfork_parent(void)
{
	pthread_mutex_unlock(&reclaim_lock);
}

void dp_registry_atfork_child(void)
{
	pthread_mutex_init(&reclaim_lock, NULL);
	pthread_cond_init(&reclaim_cond, NULL);
	reclaim_list = NULL;
	reclaim_running = false;
}

void dp_registry_free(struct dp_registry *reg)
{
	if (!reg)
		return;
	/*
	 * Every pin holds its map, which holds its region, which holds the ctx:
	 * when the ctx goes, no pin is registered. The last batch holds nothing
	 * of the registry: freed here after a grace period (freeing a context
	 * may sleep), or by the reclaim thread if this thread is inside a
	 * read-side section of its own, where a grace period would wait for it.
	 * So a process that frees few pins never starts that thread.
	 */
	if (reg->deferred && !rcu_read_ongoing()) {
		synchronize_rcu();
		dp_tsan_grace_passed();
		free_batch(reg->deferred);
	} else if (reg->deferred) {
		reclaim_batch(reg->deferred);
	}
	for (unsigned int l = 0; l < DP_LEVELS; l++)
		if (reg->levels[l].ht)
			cds_lfht_destroy(reg->levels[l].ht, NULL);
	pthread_mutex_destroy(&reg->defer_lock);
	pthread_mutex_destroy(&reg->grow_lock);
	free(reg);
}

/* Keep chains short: grow a level's table fourfold when it holds more nodes than buckets. */
static void level_maybe_grow(struct dp_registry *reg, struct dp_level *lv)
{
	unsigned long nodes = (unsigned long)atomic_load_explicit(&lv->count, memory_order_relaxed);

	if (nodes <= __atomic_load_n(&lv->size, __ATOMIC_RELAXED))
		return;
	pthread_mutex_lock(&reg->grow_lock);
	if (nodes > lv->size) {
		lv->size *= 4;
		/* Called outside any read-side critical section, as liburcu requires. */
		cds_lfht_resize(lv->ht, lv->size);
	}
	pthread_mutex_unlock(&reg->grow_lock);
}

void dp_registry_insert(struct dp_registry *reg, struct daxpool_pin *pin)
{
	struct dp_level *lv = &reg->levels[pin->nodes[0].level];

	rcu_read_lock();
	for (size_t i = 0; i < pin->n_nodes; i++) {
		struct dp_pin_node *n = &pin->nodes[i];

		cds_lfht_node_init(&n->lfnode);
		atomic_store_explicit(&n->pin, pin, memory_order_release);
		cds_lfht_add(lv->ht, granule_hash(n->granule), &n->lfnode);
	}
	rcu_read_unlock();
	atomic_fetch_add_explicit(&lv->count, (long)pin->n_nodes, memory_order_relaxed);
	level_maybe_grow(reg, lv);
}

void dp_registry_remove(struct dp_registry *reg, struct daxpool_pin *pin)
{
	struct dp_level *lv = &reg->levels[pin->nodes[0].level];

	rcu_read_lock();
	for (size_t i = 0; i < pin->n_nodes; i++) {
		int r = cds_lfht_del(lv->ht, &pin->nodes[i].lfnode);

		assert(r == 0);
		(void)r;
	}
	rcu_read_unlock();
	atomic_fetch_sub_explicit(&lv->count, (long)pin->n_nodes, memory_order_relaxed);
}

void dp_registry_defer_free(struct dp_registry *reg, struct daxpool_pin *pin)
{
	struct daxpool_pin *batch = NULL;

	pthread_mutex_lock(&reg->defer_lock);
	pin->defer_next = reg->deferred;
	reg->deferred = pin;
	if (++reg->n_deferred >= DP_DEFER_BATCH) {
		batch = reg->deferred;
		reg->deferred = NULL;
		reg->n_deferred = 0;
	}
	pthread_mutex_unlock(&reg->defer_lock);
	if (batch)
		reclaim_batch(batch);
}

/*
 * Report a node's pin to the visitor if it overlaps [start, end); non-zero
 * stops the lookup. A node is in its table from the moment its pin is
 * registered until the unpin removes it: that removal is the point after
 * which lookups no longer report the pin, so no flag of the pin is read.
 */
static int visit_one(struct dp_pin_node *pn, uintptr_t start, uintptr_t end, unsigned int shift,
		     uintptr_t g, daxpool_pin_visit_fn visit, void *userdata, int *n)
{
	/*
	 * First the acquire load that pairs with the release store made when
	 * the node was published (registry insert): it orders the node's
	 * other fields for ThreadSanitizer too, which cannot see the
	 * publication inside liburcu. On x86 it is a plain load of the same
	 * cache line.
	 */
	struct daxpool_pin *pin = atomic_load_explicit(&pn->pin, memory_order_acquire);

	if (g == UINTPTR_MAX) {
		/* A scan of the level: only nodes of the range's granules count. */
		g = pn->granule;
		if (g < start >> shift || g > (end - 1) >> shift)
			return 0;
	}
	if (!(pn->start < end && start < pn->end))
		return 0;
	/*
	 * A pin spanning several granules of the range is met in each: report
	 * it in the first granule of the overlap only.
	 */
	if (g != ((pn->start > start ? pn->start : start) >> shift))
		return 0;
	(*n)++;
	return visit ? visit(pin, userdata) : 0;
}

_public_ int daxpool_ctx_lookup_pins(struct daxpool_ctx *ctx, const void *addr, size_t length,
				     daxpool_pin_visit_fn visit, void *userdata)
{
	uintptr_t start = (uintptr_t)addr, end;
	int n = 0;

	assert_return(ctx, -EINVAL);
	assert_owned(ctx);
	assert_return(length > 0, -EINVAL);
	assert_return(start + length > start, -EINVAL); /* no wrap-around */
	end = start + length;

	rcu_read_lock();
	for (unsigned int l = 0; l < DP_LEVELS; l++) {
		struct dp_level *lv = &ctx->registry->levels[l];
		unsigned int shift = level_shift[l];
		uintptr_t first = start >> shift, last = (end - 1) >> shift;
		long nodes = atomic_load_explicit(&lv->count, memory_order_relaxed);
		struct cds_lfht_iter iter;
		struct cds_lfht_node *node;

		if (nodes <= 0)
			continue;
		if ((unsigned long)(last - first) >= (unsigned long)nodes) {
			/* Fewer nodes than granules to probe: scan the level. */
			cds_lfht_for_each(lv->ht, &iter, node) {
				struct dp_pin_node *pn = caa_container_of(node, struct dp_pin_node, lfnode);

				if (visit_one(pn, start, end, shift, UINTPTR_MAX, visit, userdata, &n))
					goto out;
			}
			continue;
		}
		for (uintptr_t g = first; g <= last; g++) {
			cds_lfht_lookup(lv->ht, granule_hash(g), granule_match, &g, &iter);
			while ((node = cds_lfht_iter_get_node(&iter))) {
				struct dp_pin_node *pn = caa_container_of(node, struct dp_pin_node, lfnode);

				if (visit_one(pn, start, end, shift, g, visit, userdata, &n))
					goto out;
				cds_lfht_next_duplicate(lv->ht, granule_match, &g, &iter);
			}
		}
	}
out:
	dp_tsan_reader_done(ctx->registry);
	rcu_read_unlock();
	return n;
}

static int stop_at_first(struct daxpool_pin *pin, void *userdata)
{
	return 1;
}

_public_ int daxpool_ctx_is_pinned(struct daxpool_ctx *ctx, const void *addr, size_t length)
{
	int r = daxpool_ctx_lookup_pins(ctx, addr, length, stop_at_first, NULL);

	return r < 0 ? r : r > 0;
}
