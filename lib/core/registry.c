/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The pin registry: "which pins cover [addr, addr + len)?", answered exactly
 * and without locks.
 *
 * Three levels of granule size (4 KiB, 2 MiB, 1 GiB); a pin goes to the
 * smallest level at which it covers at most DP_LEVEL_FANOUT granules, with
 * one entry per granule in that level's table. A table is open addressing
 * with linear probing, one 8-byte word per slot: the pin's address with, in
 * its top 16 bits, a tag (hash bits of the granule, and the granule's low
 * bits exactly: two entries of one pin never share a tag). The granules of
 * an aligned group of DP_GROUP share their hash and have neighbouring home
 * slots, in one cache line: pins of neighbouring ranges, made or looked up
 * one after the other, touch one line of the table. A hit is then two
 * cache lines: the slot and the first 32 bytes of the pin (its range, its
 * count, its ctx: all that a lookup and daxpool_pin_try_ref() read). A
 * lookup visits, at each level that holds pins, either the granules of its
 * range (one probe each) or, when that would be more work, every slot of the
 * level; it compares ranges, so a pin is found iff it overlaps.
 *
 * Writers (pin, unpin) take the registry's lock. A slot goes from empty to a
 * pin, from a pin to a tombstone, from a tombstone to a pin, and back to
 * empty only at the end of a probe run (nothing behind it to hide), so a
 * reader never misses an entry that stays in place during its probe. A table
 * that fills (3/4 of its slots used, tombstones included) is rebuilt into a
 * new one, published with a release store; the old one is freed after a
 * grace period. Where pin addresses do not fit in 48 bits (never on today's
 * Linux, but checked), the tables hold bare pointers and readers tell entries
 * apart through the pins.
 *
 * Readers write nothing shared: the urcu-bp read lock touches only the
 * thread's own reader state, the per-level counts are only read, and lookups
 * take no reference (a visitor that wants one uses daxpool_pin_try_ref(),
 * which is get-unless-zero: a count that reached zero means the pin is going
 * away).
 *
 * Pins come from a process-wide slab of 96-byte objects (no malloc header,
 * no cache-line crossing). Removal is unlink, then reuse after a grace
 * period, so a reader that found a pin before it was unlinked still reads
 * valid memory. Grace periods are counted: daxpool's reclaim thread (one per
 * process, started with the first request) runs one when asked
 * (synchronize_rcu, 1-25 us here) and publishes its number when it ends.
 * Unlinked pins gather in batches of DP_PIN_BATCH; a full batch asks for the
 * next grace period and waits, stamped with its number, on the slab, which
 * reuses it once that grace period has ended. So the pins never leave the
 * threads that pin and unpin (the reclaim thread touches none), and an unpin
 * or a pin never waits for a grace period: urcu-bp is process-wide, so an
 * application that uses it too may unpin inside its own read-side section,
 * where synchronize_rcu would wait for ever for the caller (the slab then
 * takes new memory). liburcu's call_rcu would need its own thread too, which
 * must be paused around every fork (about 1 ms each); the reclaim thread
 * needs one lock at the fork. Old index tables go to the reclaim thread,
 * which frees them after a grace period.
 */
#include <assert.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

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
/*
 * Under LeakSanitizer, the slab's mapped chunks are scanned like the heap:
 * a waiting or free pin there still points at its extension (freed when the
 * pin is reused), which is no leak.
 */
#if defined(__SANITIZE_ADDRESS__)
#define DP_LSAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define DP_LSAN 1
#endif
#endif
#ifdef DP_LSAN
void __lsan_register_root_region(const void *p, size_t size);
#define dp_lsan_root(p, size) __lsan_register_root_region(p, size)
#else
#define dp_lsan_root(p, size) ((void)(p), (void)(size))
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


#define DP_TABLE_MIN 64ul /* slots */
#define DP_SLOT_EMPTY ((uintptr_t)0)
#define DP_SLOT_TOMB ((uintptr_t)1)
#define DP_TAG_SHIFT 48
#define DP_PTR_MASK ((UINT64_C(1) << DP_TAG_SHIFT) - 1)
/* Tables of at least this size are mapped on their own, with transparent huge pages. */
#define DP_TABLE_MAP_BYTES (2ul << 20)
/* Replaced small tables wait on their registry until they are this many bytes together. */
#define DP_TABLE_DEFER_BYTES (64ul << 10)

/* Granules per group: half of the 8 slots of a 64-byte line. */
#define DP_GROUP_SHIFT 2
#define DP_GROUP (1u << DP_GROUP_SHIFT)

static const unsigned int level_shift[DP_LEVELS] = { 12, 21, 30 };
/*
 * The low bits of the granule a tag keeps exactly: a pin's granules at a
 * level are consecutive, at most DP_LEVEL_FANOUT of them below the top level
 * and fewer than 2^16 at the top (pins below 64 TiB, checked by pin.c), so
 * they differ in these bits and two entries of a pin never share a tag; at
 * least the bits of the granule in its group, so that the entries of a
 * group (which share their hash) do not share tags either.
 */
static const uint64_t level_tag_exact[DP_LEVELS] = { DP_GROUP - 1, DP_GROUP - 1, 0xffff };
_Static_assert(DP_LEVEL_FANOUT <= DP_GROUP, "a pin's entries have distinct tags");

struct dp_table {
	struct dp_defer defer;
	size_t bytes;	     /* of the allocation */
	bool mapped;	     /* by mmap (else malloc) */
	bool tagged;	     /* slots hold tags; else bare pin pointers */
	unsigned long mask;  /* slots - 1 */
	unsigned long live;  /* entries; under the registry's lock */
	unsigned long used;  /* entries and tombstones; under the registry's lock */
	_Atomic uintptr_t slot[] __attribute__((aligned(64)));
};

struct dp_level {
	_Atomic(struct dp_table *) table; /* release-stored by writers, acquire-loaded by readers */
	atomic_long count;	/* entries at this level */
};

struct dp_registry {
	struct dp_level levels[DP_LEVELS];
	pthread_mutex_t lock; /* writers */
	pthread_mutex_t make_lock; /* daxpool_ctx_find_or_pin()'s makers; before lock */
	atomic_ulong made;	   /* pins they made; written under make_lock */
	bool tagged;	      /* false once a pin's address did not fit in DP_TAG_SHIFT bits */
	/* Replaced small tables, under lock, until DP_TABLE_DEFER_BYTES of them. */
	struct dp_defer *deferred;
	size_t deferred_bytes;
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
		l = DP_LEVELS - 1; /* beyond 4 GiB: more entries at the top level */
	*ret_level = l;
	*ret_first = first;
	*ret_n = last - first + 1;
}

/* A 64-bit mix (the MurmurHash3 finaliser) of the granule's group. */
static inline uint64_t granule_hash(uintptr_t granule)
{
	uint64_t h = granule >> DP_GROUP_SHIFT;

	h ^= h >> 33;
	h *= 0xff51afd7ed558ccdULL;
	h ^= h >> 33;
	h *= 0xc4ceb9fe1a85ec53ULL;
	h ^= h >> 33;
	return h;
}

/* The slot where the probe of granule @g (of hash @h) starts. */
static inline unsigned long granule_home(const struct dp_table *t, uint64_t h, uintptr_t g)
{
	return (unsigned long)((h << DP_GROUP_SHIFT) | (g & (DP_GROUP - 1))) & t->mask;
}

static inline uintptr_t granule_tag(uint64_t h, uintptr_t g, unsigned int l)
{
	return (uintptr_t)(((h >> DP_TAG_SHIFT) & ~level_tag_exact[l]) | (g & level_tag_exact[l]));
}

static inline uintptr_t slot_encode(const struct dp_table *t, const struct daxpool_pin *pin,
				    uintptr_t tag)
{
	return t->tagged ? (uintptr_t)pin | (tag << DP_TAG_SHIFT) : (uintptr_t)pin;
}

static inline struct daxpool_pin *slot_pin(const struct dp_table *t, uintptr_t s)
{
	return (struct daxpool_pin *)(t->tagged ? s & DP_PTR_MASK : s);
}

/* Does @pin (of level @l) cover granule @g? */
static inline bool pin_covers(const struct daxpool_pin *pin, uintptr_t g, unsigned int shift)
{
	return pin->start >> shift <= g && g <= (pin->end - 1) >> shift;
}

/*
 * The probe of one granule in a table, for readers: the entries whose tag
 * matches (every entry where the table holds bare pointers), one at a time,
 * up to the first empty slot.
 */
struct probe {
	const struct dp_table *t;
	uintptr_t tag;
	unsigned long i; /* the slot of the entry returned last */
	uintptr_t s;	 /* its value */
};

static inline void probe_start(struct probe *p, const struct dp_table *t, uintptr_t g,
			       unsigned int l)
{
	uint64_t h = granule_hash(g);

	p->t = t;
	p->tag = granule_tag(h, g, l);
	p->i = (granule_home(t, h, g) - 1) & t->mask;
}

static inline struct daxpool_pin *probe_next(struct probe *p)
{
	const struct dp_table *t = p->t;

	for (;;) {
		uintptr_t s;

		p->i = (p->i + 1) & t->mask;
		s = atomic_load_explicit(&t->slot[p->i], memory_order_acquire);
		if (s == DP_SLOT_EMPTY)
			return NULL;
		if (s == DP_SLOT_TOMB || (t->tagged && s >> DP_TAG_SHIFT != p->tag))
			continue;
		p->s = s;
		return slot_pin(t, s);
	}
}

/* ---- memory ---- */

#define DP_HUGE (2ul << 20)

/*
 * @bytes (a multiple of 4096) of zeroed anonymous memory, resident on return
 * where the kernel can (MADV_POPULATE_WRITE, Linux 5.14): one system call
 * instead of a page fault per page, the larger part of registering many
 * ranges where faults are slow (a virtual machine's). From DP_HUGE up,
 * aligned to DP_HUGE and advised for transparent huge pages. NULL if the
 * mapping fails. Freed with munmap(p, bytes).
 */
static void *map_resident(size_t bytes)
{
	size_t align = bytes >= DP_HUGE ? DP_HUGE : 4096, span = bytes + align - 4096, head;
	char *p = mmap(NULL, span, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (p == MAP_FAILED)
		return NULL;
	head = (align - ((uintptr_t)p & (align - 1))) & (align - 1);
	if (head)
		munmap(p, head);
	if (span - head > bytes)
		munmap(p + head + bytes, span - head - bytes);
	p += head;
#ifdef MADV_HUGEPAGE
	if (align == DP_HUGE)
		madvise(p, bytes, MADV_HUGEPAGE);
#endif
#ifdef MADV_POPULATE_WRITE
	/* An older kernel refuses it (EINVAL): the pages come by faults instead. */
	madvise(p, bytes, MADV_POPULATE_WRITE);
#endif
	return p;
}

/* ---- grace periods ---- */

/*
 * Grace periods are numbered from 1. gp_started is the number of the last
 * one the reclaim thread started, gp_wanted the highest one asked for (both
 * under reclaim_lock); gp_completed the last one that ended, store-released
 * by the reclaim thread after its synchronize_rcu().
 */
static pthread_mutex_t reclaim_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t reclaim_cond = PTHREAD_COND_INITIALIZER;
static struct dp_defer *reclaim_list; /* freed by the thread after its next grace period */
static bool reclaim_running;
static unsigned long gp_started, gp_wanted;
static atomic_ulong gp_completed;

static void reclaim_wake_locked(void);

/*
 * Ask for a grace period that starts after this call: its number, which
 * gp_completed reaches once every reader that began before the call has
 * finished. Never waits.
 */
static unsigned long gp_request(void)
{
	unsigned long cookie;

	pthread_mutex_lock(&reclaim_lock);
	/* One is running (gp_started): it may have begun before the caller's unlinks. */
	cookie = gp_started + 1;
	if (gp_wanted < cookie)
		gp_wanted = cookie;
	reclaim_wake_locked();
	pthread_mutex_unlock(&reclaim_lock);
	return cookie;
}

static inline bool gp_passed(unsigned long cookie)
{
	return atomic_load_explicit(&gp_completed, memory_order_acquire) >= cookie;
}

/* ---- the pin slab ---- */

/*
 * Slab chunks: 64 KiB from malloc at first; then mapped, resident, twice as
 * large each time the slab holds 32 times the current size, up to 2 MiB (a
 * huge page). So the part of the last chunk not used yet stays below a
 * thirty-second of the pins' memory, and a million pins take 126 chunks (94
 * mappings), not 24,000 page faults.
 */
#define DP_SLAB_CHUNK (64ul << 10)
#define DP_SLAB_CHUNK_MAX DP_HUGE
/* Unlinked pins per grace period asked for. */
#define DP_PIN_BATCH 256
/* Full batches waiting for their grace period; more join the newest. */
#define DP_PIN_WAIT 4

/* Pins chained by dp_defer.next, head to tail, that wait for grace period @cookie. */
struct pin_batch {
	struct dp_defer *head, *tail;
	unsigned int n;
	unsigned int n_ext; /* of them with an extension to free */
	unsigned long cookie;
};

/*
 * Free pins are chained by their dp_defer.next too, so that a batch joins
 * them in one step. All under slab_lock.
 */
static pthread_mutex_t slab_lock = PTHREAD_MUTEX_INITIALIZER;
static struct dp_defer *slab_free;
static char *slab_cur, *slab_end;
static size_t slab_bytes; /* in chunks */
static struct pin_batch slab_open;		/* unlinked pins, filling */
static struct pin_batch slab_wait[DP_PIN_WAIT]; /* full, oldest first */
static unsigned int slab_n_wait;

static inline struct daxpool_pin *pin_of_defer(struct dp_defer *d)
{
	return caa_container_of(d, struct daxpool_pin, defer);
}

/* The oldest waiting batch, whose grace period has ended, becomes free pins. */
static void slab_reuse_oldest_locked(void)
{
	struct pin_batch *b = &slab_wait[0];

	if (b->n_ext) {
		for (struct dp_defer *d = b->head; d; d = d->next) {
			struct daxpool_pin *pin = pin_of_defer(d);

			free(atomic_load_explicit(&pin->ext, memory_order_relaxed));
			atomic_store_explicit(&pin->ext, NULL, memory_order_relaxed);
		}
	}
	b->tail->next = slab_free;
	slab_free = b->head;
	memmove(&slab_wait[0], &slab_wait[1], (slab_n_wait - 1) * sizeof(slab_wait[0]));
	slab_n_wait--;
}

struct daxpool_pin *dp_pin_alloc(void)
{
	struct daxpool_pin *pin;

	pthread_mutex_lock(&slab_lock);
	if (!slab_free && slab_n_wait && gp_passed(slab_wait[0].cookie))
		slab_reuse_oldest_locked();
	if (slab_free) {
		pin = pin_of_defer(slab_free);
		slab_free = slab_free->next;
	} else {
		if (!slab_cur || (size_t)(slab_end - slab_cur) < sizeof(*pin)) {
			size_t bytes = DP_SLAB_CHUNK;
			void *chunk = NULL;

			while (bytes < DP_SLAB_CHUNK_MAX && 32 * bytes <= slab_bytes)
				bytes <<= 1;
			/* Chunks are never returned: freed pins are reused. */
			if (bytes > DP_SLAB_CHUNK) {
				chunk = map_resident(bytes);
				if (chunk)
					dp_lsan_root(chunk, bytes);
			} else if (posix_memalign(&chunk, 64, bytes)) {
				chunk = NULL;
			}
			if (!chunk) {
				pthread_mutex_unlock(&slab_lock);
				return NULL;
			}
			slab_cur = chunk;
			slab_end = slab_cur + bytes;
			slab_bytes += bytes;
		}
		pin = (struct daxpool_pin *)slab_cur;
		slab_cur += sizeof(*pin);
	}
	pthread_mutex_unlock(&slab_lock);
	memset(pin, 0, sizeof(*pin));
	return pin;
}

void dp_pin_release_memory(struct daxpool_pin *pin)
{
	pthread_mutex_lock(&slab_lock);
	free(atomic_load_explicit(&pin->ext, memory_order_relaxed));
	pin->defer.next = slab_free;
	slab_free = &pin->defer;
	pthread_mutex_unlock(&slab_lock);
}

/* The filling batch waits for grace period @cookie. slab_lock held. */
static void slab_close_open_locked(unsigned long cookie)
{
	struct pin_batch *b = &slab_open;

	b->cookie = cookie;
	if (slab_n_wait < DP_PIN_WAIT) {
		slab_wait[slab_n_wait++] = *b;
	} else {
		/* The grace periods lag behind: the newest waiting batch waits for this one's too. */
		struct pin_batch *w = &slab_wait[DP_PIN_WAIT - 1];

		w->tail->next = b->head;
		w->tail = b->tail;
		w->n += b->n;
		w->n_ext += b->n_ext;
		w->cookie = b->cookie;
	}
	*b = (struct pin_batch){ 0 };
}

void dp_pin_defer_free(struct daxpool_pin *pin)
{
	struct pin_batch *b = &slab_open;

	pthread_mutex_lock(&slab_lock);
	pin->defer.next = NULL;
	if (b->tail)
		b->tail->next = &pin->defer;
	else
		b->head = &pin->defer;
	b->tail = &pin->defer;
	b->n_ext += atomic_load_explicit(&pin->ext, memory_order_relaxed) != NULL;
	if (++b->n >= DP_PIN_BATCH)
		slab_close_open_locked(gp_request());
	pthread_mutex_unlock(&slab_lock);
}

_Static_assert(sizeof(struct daxpool_pin) % 32 == 0 && offsetof(struct daxpool_pin, ctx) < 32,
	       "a pin's hot fields stay in one cache line");

/* ---- cached ids ---- */

static pid_t dp_pid_cache;
static __thread pid_t dp_tid_cache __attribute__((tls_model("initial-exec")));

pid_t dp_getpid(void)
{
	pid_t p = __atomic_load_n(&dp_pid_cache, __ATOMIC_RELAXED);

	if (_unlikely_(!p)) {
		p = getpid();
		__atomic_store_n(&dp_pid_cache, p, __ATOMIC_RELAXED);
	}
	return p;
}

pid_t dp_gettid(void)
{
	if (_unlikely_(!dp_tid_cache))
		dp_tid_cache = (pid_t)syscall(SYS_gettid);
	return dp_tid_cache;
}

void dp_id_atfork_child(void)
{
	/* The forking thread is the child's only thread. */
	__atomic_store_n(&dp_pid_cache, 0, __ATOMIC_RELAXED);
	dp_tid_cache = 0;
}

/* ---- tables ---- */

static void reclaim_batch(struct dp_defer *batch);

static void table_release(struct dp_defer *d)
{
	struct dp_table *t = caa_container_of(d, struct dp_table, defer);

	if (t->mapped)
		munmap(t, t->bytes);
	else
		free(t);
}

static struct dp_table *table_new(unsigned long slots, bool tagged)
{
	size_t bytes = sizeof(struct dp_table) + slots * sizeof(uintptr_t);
	struct dp_table *t;
	bool mapped = bytes >= DP_TABLE_MAP_BYTES;

	if (mapped) {
		bytes = (bytes + 4095) & ~(size_t)4095;
		t = map_resident(bytes);
		if (!t)
			return NULL;
	} else {
		t = aligned_alloc(64, (bytes + 63) & ~(size_t)63);
		if (!t)
			return NULL;
		memset(t, 0, bytes);
	}
	t->defer.free = table_release;
	t->bytes = bytes;
	t->mapped = mapped;
	t->tagged = tagged;
	t->mask = slots - 1;
	t->live = t->used = 0;
	return t;
}

/* Add an entry to a table of the writer's own (the registry's lock held). */
static void table_put(struct dp_table *t, uintptr_t g, unsigned int l, struct daxpool_pin *pin)
{
	uint64_t h = granule_hash(g);
	unsigned long i = granule_home(t, h, g);

	for (;; i = (i + 1) & t->mask) {
		uintptr_t s = atomic_load_explicit(&t->slot[i], memory_order_relaxed);

		if (s == DP_SLOT_EMPTY || s == DP_SLOT_TOMB) {
			if (s == DP_SLOT_EMPTY)
				t->used++;
			t->live++;
			/* Publishes the pin's fields to the readers that load the slot. */
			atomic_store_explicit(&t->slot[i], slot_encode(t, pin, granule_tag(h, g, l)),
					      memory_order_release);
			return;
		}
	}
}

/*
 * Replace a level's table by one sized for @extra more entries, with no
 * tombstones (tagged as the registry now is). The registry's lock held.
 */
static int level_rebuild(struct dp_registry *reg, unsigned int l, unsigned long extra)
{
	struct dp_level *lv = &reg->levels[l];
	struct dp_table *old = atomic_load_explicit(&lv->table, memory_order_relaxed), *t;
	unsigned long want = old->live + extra, slots = DP_TABLE_MIN;
	unsigned int shift = level_shift[l];

	/* At most half full after the rebuild. */
	while (slots < 2 * want)
		slots <<= 1;
	t = table_new(slots, reg->tagged);
	if (!t)
		return -ENOMEM;
	for (unsigned long i = 0; i <= old->mask; i++) {
		uintptr_t s = atomic_load_explicit(&old->slot[i], memory_order_relaxed);
		struct daxpool_pin *pin;
		uintptr_t first, g;

		if (i + 8 <= old->mask) {
			uintptr_t ahead = atomic_load_explicit(&old->slot[i + 8], memory_order_relaxed);

			if (ahead > DP_SLOT_TOMB)
				__builtin_prefetch(slot_pin(old, ahead));
		}
		if (s == DP_SLOT_EMPTY || s == DP_SLOT_TOMB)
			continue;
		pin = slot_pin(old, s);
		first = pin->start >> shift;
		if (old->tagged) {
			/* The granule of this entry, from the exact bits of its tag. */
			g = first + (((s >> DP_TAG_SHIFT) - first) & level_tag_exact[l]);
			table_put(t, g, l, pin);
		} else {
			/*
			 * Bare pointers: a pin's entries cannot be told apart.
			 * Put all of them once, at its entry met first in the
			 * probe of its first granule.
			 */
			unsigned long j = granule_home(old, granule_hash(first), first);

			while (atomic_load_explicit(&old->slot[j], memory_order_relaxed) != s)
				j = (j + 1) & old->mask;
			if (j != i)
				continue;
			for (g = first; g <= (pin->end - 1) >> shift; g++)
				table_put(t, g, l, pin);
		}
	}
	atomic_store_explicit(&lv->table, t, memory_order_release);
	/*
	 * Readers may still be probing the old table: it is freed after a
	 * grace period, by the reclaim thread. Small ones (below 2 MiB) wait
	 * on the registry until there are DP_TABLE_DEFER_BYTES of them (or
	 * the ctx ends), so that a process with a few pins does not start that
	 * thread for a few KiB; more would stay resident for nothing.
	 */
	old->defer.next = reg->deferred;
	reg->deferred = &old->defer;
	reg->deferred_bytes += old->bytes;
	if (old->mapped || reg->deferred_bytes >= DP_TABLE_DEFER_BYTES) {
		reclaim_batch(reg->deferred);
		reg->deferred = NULL;
		reg->deferred_bytes = 0;
	}
	return 0;
}

static void registry_atfork_prepare(void);
static void registry_atfork_parent(void);
static void registry_atfork_child(void);

static void registry_fork_register(void)
{
	dp_fork_add_hooks(DP_FORK_REGISTRY, registry_atfork_prepare, registry_atfork_parent,
			  registry_atfork_child);
}

int dp_registry_new(struct dp_registry **ret)
{
	static pthread_once_t once = PTHREAD_ONCE_INIT;
	struct dp_registry *reg;

	/* Before the first pin: the slab and the reclaim thread come with them. */
	pthread_once(&once, registry_fork_register);
	reg = calloc(1, sizeof(*reg));
	if (!reg)
		return -ENOMEM;
	pthread_mutex_init(&reg->lock, NULL);
	pthread_mutex_init(&reg->make_lock, NULL);
	reg->tagged = UINTPTR_MAX == UINT64_MAX;
	for (unsigned int l = 0; l < DP_LEVELS; l++) {
		atomic_init(&reg->levels[l].count, 0);
		atomic_init(&reg->levels[l].table, table_new(DP_TABLE_MIN, reg->tagged));
		if (!reg->levels[l].table) {
			dp_registry_free(reg);
			return -ENOMEM;
		}
	}
	*ret = reg;
	return 0;
}

static void free_batch(struct dp_defer *list)
{
	while (list) {
		struct dp_defer *next = list->next;

		list->free(list);
		list = next;
	}
}

/*
 * The reclaim thread: runs a grace period whenever one is wanted that has
 * not started, or objects (chained by dp_defer.next) wait on reclaim_list,
 * and frees those after it. reclaim_lock is taken by the atfork prepare
 * handler, never held across a grace period; the child starts with no
 * thread and an empty list (what was listed is the parent's).
 */
static void *reclaim_thread(void *arg)
{
	(void)arg;
	for (;;) {
		struct dp_defer *list;
		unsigned long gp;

		pthread_mutex_lock(&reclaim_lock);
		while (!reclaim_list && gp_wanted <= gp_started)
			pthread_cond_wait(&reclaim_cond, &reclaim_lock);
		list = reclaim_list;
		reclaim_list = NULL;
		gp = ++gp_started;
		pthread_mutex_unlock(&reclaim_lock);
		/* Every reader that could see an object unlinked before gp started has finished. */
		synchronize_rcu();
		dp_tsan_grace_passed();
		atomic_store_explicit(&gp_completed, gp, memory_order_release);
		free_batch(list);
	}
	return NULL;
}

/*
 * Start the reclaim thread if needed (with every signal blocked: it never
 * takes the application's) and wake it. If it cannot start, what it should
 * do stays listed for the next try. reclaim_lock held.
 */
static void reclaim_wake_locked(void)
{
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
}

/* Hand objects (chained by dp_defer.next) to the reclaim thread. Never waits for a grace period. */
static void reclaim_batch(struct dp_defer *batch)
{
	struct dp_defer *tail = batch;

	while (tail->next)
		tail = tail->next;
	pthread_mutex_lock(&reclaim_lock);
	tail->next = reclaim_list;
	reclaim_list = batch;
	reclaim_wake_locked();
	pthread_mutex_unlock(&reclaim_lock);
}

/*
 * fork(): the slab's lock and the reclaim thread's (slab_lock is taken
 * before reclaim_lock); the child starts without the thread, and with the
 * grace periods asked for before the fork ended (see the child handler).
 * daxpool uses no call_rcu and no lfht resize thread, so of liburcu's fork
 * protocol only the urcu-bp part applies: its reader registry lock, which
 * must not be held by another thread at the fork. The reclaim thread takes
 * its lock outside any grace period wait.
 */
static void registry_atfork_prepare(void)
{
	pthread_mutex_lock(&slab_lock);
	pthread_mutex_lock(&reclaim_lock);
	rcu_bp_before_fork();
}

static void registry_atfork_parent(void)
{
	rcu_bp_after_fork_parent();
	pthread_mutex_unlock(&reclaim_lock);
	pthread_mutex_unlock(&slab_lock);
}

static void registry_atfork_child(void)
{
	rcu_bp_after_fork_child();
	pthread_mutex_init(&slab_lock, NULL);
	pthread_mutex_init(&reclaim_lock, NULL);
	pthread_cond_init(&reclaim_cond, NULL);
	reclaim_list = NULL;
	reclaim_running = false;
	/*
	 * The readers of the parent's other threads are gone with them: unless
	 * this one forked inside a read-side section, every grace period asked
	 * for has ended, and the pins unlinked before the fork (the filling
	 * batch too) are free. So a child that pins and unpins a little never
	 * needs the reclaim thread (a thread started in the child of a
	 * multi-threaded process is what some runtimes cannot follow).
	 */
	if (!rcu_read_ongoing()) {
		gp_started = gp_wanted;
		atomic_store_explicit(&gp_completed, gp_wanted, memory_order_relaxed);
		if (slab_open.n)
			slab_close_open_locked(gp_wanted);
	}
	dp_id_atfork_child();
}

void dp_registry_free(struct dp_registry *reg)
{
	if (!reg)
		return;
	/*
	 * Every pin holds its map, which holds its region, which holds the ctx:
	 * when the ctx goes, no pin is registered (the unpinned ones wait on
	 * the slab, which is the process's). The replaced tables that still
	 * wait are freed here after a grace period (freeing a context may
	 * sleep), or by the reclaim thread if this thread is inside a
	 * read-side section of its own, where a grace period would wait for it.
	 * So a process with few pins never starts that thread for them.
	 */
	if (reg->deferred && !rcu_read_ongoing()) {
		synchronize_rcu();
		dp_tsan_grace_passed();
		free_batch(reg->deferred);
	} else if (reg->deferred) {
		reclaim_batch(reg->deferred);
	}
	/* No lookup can run on a registry whose ctx is being freed. */
	for (unsigned int l = 0; l < DP_LEVELS; l++)
		if (reg->levels[l].table)
			table_release(&reg->levels[l].table->defer);
	pthread_mutex_destroy(&reg->make_lock);
	pthread_mutex_destroy(&reg->lock);
	free(reg);
}

/* Readers of every table stop trusting tags: rebuild all levels with bare pointers. */
static int registry_untag(struct dp_registry *reg)
{
	reg->tagged = false;
	for (unsigned int l = 0; l < DP_LEVELS; l++) {
		int r = level_rebuild(reg, l, 0);

		if (r < 0)
			return r;
	}
	return 0;
}

int dp_registry_insert(struct dp_registry *reg, struct daxpool_pin *pin, unsigned int level,
		       uintptr_t first, size_t n)
{
	struct dp_level *lv = &reg->levels[level];
	struct dp_table *t;
	int r = 0;

	pthread_mutex_lock(&reg->lock);
	if (reg->tagged && ((uintptr_t)pin & ~(uintptr_t)DP_PTR_MASK)) {
		r = registry_untag(reg);
		if (r < 0)
			goto out;
	}
	t = atomic_load_explicit(&lv->table, memory_order_relaxed);
	if ((t->used + n) * 4 > (t->mask + 1) * 3) {
		r = level_rebuild(reg, level, n);
		if (r < 0)
			goto out;
		t = atomic_load_explicit(&lv->table, memory_order_relaxed);
	}
	for (size_t i = 0; i < n; i++)
		table_put(t, first + i, level, pin);
	atomic_fetch_add_explicit(&lv->count, (long)n, memory_order_relaxed);
out:
	pthread_mutex_unlock(&reg->lock);
	return r;
}

void dp_registry_remove(struct dp_registry *reg, struct daxpool_pin *pin)
{
	unsigned int level;
	uintptr_t first;
	size_t n;
	struct dp_level *lv;
	struct dp_table *t;

	dp_registry_place(pin->start, pin->end - pin->start, &level, &first, &n);
	lv = &reg->levels[level];
	pthread_mutex_lock(&reg->lock);
	t = atomic_load_explicit(&lv->table, memory_order_relaxed);
	for (size_t k = 0; k < n; k++) {
		uintptr_t g = first + k;
		uint64_t h = granule_hash(g);
		uintptr_t want = slot_encode(t, pin, granule_tag(h, g, level));
		unsigned long i = granule_home(t, h, g);

		while (atomic_load_explicit(&t->slot[i], memory_order_relaxed) != want) {
			if (atomic_load_explicit(&t->slot[i], memory_order_relaxed) == DP_SLOT_EMPTY) {
				/*
				 * Bare pointers only: this pin's entry in the probe
				 * of g was taken for another of its granules. Any
				 * entry of the pin will do.
				 */
				assert(!t->tagged);
				i = 0;
				while (atomic_load_explicit(&t->slot[i], memory_order_relaxed) != want)
					i++;
				break;
			}
			i = (i + 1) & t->mask;
		}
		t->live--;
		if (atomic_load_explicit(&t->slot[(i + 1) & t->mask], memory_order_relaxed) !=
		    DP_SLOT_EMPTY) {
			atomic_store_explicit(&t->slot[i], DP_SLOT_TOMB, memory_order_relaxed);
			continue;
		}
		/*
		 * The end of a probe run: this slot and the tombstones just
		 * before it hide nothing, they become empty.
		 */
		do {
			atomic_store_explicit(&t->slot[i], DP_SLOT_EMPTY, memory_order_relaxed);
			t->used--;
			i = (i - 1) & t->mask;
		} while (atomic_load_explicit(&t->slot[i], memory_order_relaxed) == DP_SLOT_TOMB);
	}
	atomic_fetch_sub_explicit(&lv->count, (long)n, memory_order_relaxed);
	pthread_mutex_unlock(&reg->lock);
}

/*
 * Bare pointers: is slot @i, holding @s, the first slot holding @s in the
 * probe of granule @g (its one entry there, of the pin's entries)?
 */
static bool first_in_probe(const struct dp_table *t, uintptr_t g, uintptr_t s, unsigned long i)
{
	unsigned long j = granule_home(t, granule_hash(g), g);

	for (; j != i; j = (j + 1) & t->mask) {
		uintptr_t v = atomic_load_explicit(&t->slot[j], memory_order_acquire);

		if (v == s)
			return false;
		if (v == DP_SLOT_EMPTY)
			return false; /* @i is past the end of the probe */
	}
	return true;
}

/*
 * The lookup. With @visit NULL and @stop_first, the first overlapping pin
 * ends it. Returns the number of pins reported; *ret_pin the last one.
 */
static int registry_lookup(struct dp_registry *reg, uintptr_t start, uintptr_t end,
			   daxpool_pin_visit_fn visit, void *userdata, bool stop_first,
			   struct daxpool_pin **ret_pin)
{
	int n = 0;

	for (unsigned int l = 0; l < DP_LEVELS; l++) {
		struct dp_level *lv = &reg->levels[l];
		unsigned int shift = level_shift[l];
		uintptr_t first = start >> shift, last = (end - 1) >> shift;
		long nodes = atomic_load_explicit(&lv->count, memory_order_relaxed);
		struct dp_table *t;

		if (nodes <= 0)
			continue;
		t = atomic_load_explicit(&lv->table, memory_order_acquire);
		if ((unsigned long)(last - first) >= (unsigned long)nodes) {
			/* Fewer entries than granules to probe: scan the level. */
			for (unsigned long i = 0; i <= t->mask; i++) {
				uintptr_t s = atomic_load_explicit(&t->slot[i], memory_order_acquire);
				struct daxpool_pin *pin;
				uintptr_t gf;

				if (s == DP_SLOT_EMPTY || s == DP_SLOT_TOMB)
					continue;
				pin = slot_pin(t, s);
				if (!(pin->start < end && start < pin->end))
					continue;
				/* Report a pin at its entry of the first granule of the overlap. */
				gf = (pin->start > start ? pin->start : start) >> shift;
				if (t->tagged ? ((s >> DP_TAG_SHIFT) & level_tag_exact[l]) !=
							(gf & level_tag_exact[l])
					      : !first_in_probe(t, gf, s, i))
					continue;
				n++;
				*ret_pin = pin;
				if (stop_first || (visit && visit(pin, userdata)))
					return n;
			}
			continue;
		}
		for (uintptr_t g = first; g <= last; g++) {
			struct daxpool_pin *pin;
			struct probe p;

			probe_start(&p, t, g, l);
			while ((pin = probe_next(&p))) {
				if (!pin_covers(pin, g, shift) || !(pin->start < end && start < pin->end))
					continue;
				/*
				 * A pin spanning several granules of the range is met
				 * in each: report it in the first granule of the
				 * overlap only.
				 */
				if (g != ((pin->start > start ? pin->start : start) >> shift))
					continue;
				if (!t->tagged && !first_in_probe(t, g, p.s, p.i))
					continue;
				n++;
				*ret_pin = pin;
				if (stop_first || (visit && visit(pin, userdata)))
					return n;
			}
		}
	}
	return n;
}

_public_ int daxpool_ctx_lookup_pins(struct daxpool_ctx *ctx, const void *addr, size_t length,
				     daxpool_pin_visit_fn visit, void *userdata)
{
	uintptr_t start = (uintptr_t)addr;
	struct daxpool_pin *last = NULL;
	int n;

	assert_return(ctx, -EINVAL);
	assert_owned(ctx);
	assert_return(length > 0, -EINVAL);
	assert_return(start + length > start, -EINVAL); /* no wrap-around */

	rcu_read_lock();
	n = registry_lookup(ctx->registry, start, start + length, visit, userdata, false, &last);
	dp_tsan_reader_done(ctx->registry);
	rcu_read_unlock();
	return n;
}

_public_ int daxpool_ctx_is_pinned(struct daxpool_ctx *ctx, const void *addr, size_t length)
{
	uintptr_t start = (uintptr_t)addr;
	struct daxpool_pin *last = NULL;
	int n;

	assert_return(ctx, -EINVAL);
	assert_owned(ctx);
	assert_return(length > 0, -EINVAL);
	assert_return(start + length > start, -EINVAL);

	rcu_read_lock();
	n = registry_lookup(ctx->registry, start, start + length, NULL, NULL, true, &last);
	dp_tsan_reader_done(ctx->registry);
	rcu_read_unlock();
	return n > 0;
}

unsigned long dp_registry_made(struct dp_registry *reg)
{
	return atomic_load_explicit(&reg->made, memory_order_acquire);
}

unsigned long dp_registry_make_lock(struct dp_registry *reg)
{
	pthread_mutex_lock(&reg->make_lock);
	return atomic_load_explicit(&reg->made, memory_order_relaxed);
}

void dp_registry_make_unlock(struct dp_registry *reg, bool made)
{
	/* After the pin's insertion: whoever loads the new count finds the pin. */
	if (made)
		atomic_store_explicit(&reg->made,
				      atomic_load_explicit(&reg->made, memory_order_relaxed) + 1,
				      memory_order_release);
	pthread_mutex_unlock(&reg->make_lock);
}

/*
 * A pin that contains [start, end) has an entry for the granule of @start at
 * its own level: one probe per level finds every candidate.
 */
int dp_registry_find(struct dp_registry *reg, uintptr_t start, uintptr_t end, int kind,
		     unsigned int access, struct daxpool_pin **ret)
{
	int r = -ENOENT;

	rcu_read_lock();
	for (unsigned int l = 0; l < DP_LEVELS; l++) {
		struct dp_level *lv = &reg->levels[l];
		struct daxpool_pin *pin;
		struct probe p;

		if (atomic_load_explicit(&lv->count, memory_order_relaxed) <= 0)
			continue;
		probe_start(&p, atomic_load_explicit(&lv->table, memory_order_acquire),
			    start >> level_shift[l], l);
		while ((pin = probe_next(&p))) {
			if (pin->start > start || end > pin->end || (kind && pin->kind != kind) ||
			    (pin->access & access) != access)
				continue;
			if (atomic_load_explicit(&pin->revoked, memory_order_acquire)) {
				r = -ENXIO;
				continue;
			}
			/*
			 * Get-unless-zero inside the read-side section: a pin
			 * unlinked meanwhile is freed only after the grace
			 * period, and a count that reached zero is never taken
			 * again (dead is set first, so most of those are not
			 * even tried).
			 */
			if (atomic_load_explicit(&pin->dead, memory_order_acquire) ||
			    !dp_refcnt_get_unless_zero(&pin->ref))
				continue;
			*ret = pin;
			r = 0;
			goto out;
		}
	}
out:
	dp_tsan_reader_done(reg);
	rcu_read_unlock();
	return r;
}
