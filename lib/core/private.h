/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Private structures of libdaxpool's core (lib/core/), which every part of
 * the library builds on. Nothing here is part of the ABI.
 *
 * lib/ is in layers, each using only those below it (and none calling
 * another in a cycle: tests/unit/check-lib-cycles checks both):
 *   util/      helpers shared with the daemon and the tools (lists, refcounts,
 *              the daxpoold protocol, a device's CXL place)
 *   core/      the context, log, fork, regions and their backing, maps, zaps
 *              and drains, pins and the registry, SIGBUS, layout changes and
 *              I/O helpers: this header
 *   services/  what plugs into the core's hooks (struct dp_service below):
 *              the daxpoold client, file leases, RDMA, io_uring, their
 *              threads' helper, and the context with its services:
 *              services/services.h
 *   pool/      pools and their extents on a region: pool/pool.h
 * The lock hierarchy of all of them is written here, once.
 */
#ifndef DAXPOOL_PRIVATE_H
#define DAXPOOL_PRIVATE_H

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <syslog.h>
#include <time.h>

#include <libpmem2.h>
/*
 * urcu-bp: readers need no registration (an application's threads look pins
 * up without telling daxpool first), and it survives fork() without exec.
 * _LGPL_SOURCE (set by the build; daxpool is LGPL) inlines the read side.
 */
#include <urcu-bp.h>
#include <urcu/rculfhash.h>

#include "daxpool.h"
#include "util/cxl.h"
#include "util/list.h"
#include "util/refcnt.h"

/*
 * The lock hierarchy, the one place it is written. A thread holding a lock
 * takes only locks after it here; the leaves take none. Outer to inner:
 *
 *   1. a registry's make_lock: daxpool_ctx_find_or_pin()'s makers (registry.c)
 *   2. pool->lock (pool/pool.h); under it the pool's table locks, region->pool_table
 *      then region->pool_locks (pool/pool.c), and its region's locks through the
 *      map and region calls
 *   3. ctx->regions_lock (the region list)
 *   4. region->lock: never held across a revoke function, a wait, a mapping
 *      or a layout syscall; under it only leaves
 *
 * Leaves: a client's qlock (the services' map and pin events come under
 * region->lock), lease_fds_lock (services/lease.c), ctx->lease_lock,
 * ctx->rdma_lock, a registry's lock and the pin slab's slab_lock (each may
 * take reclaim_lock, to ask the reclaim thread for a grace period),
 * reclaim_lock.
 * dp_pmem2_map_lock is held only around a libpmem2 map or unmap.
 *
 * fork()'s prepare handler (fork.c) takes its handler table's lock, then
 * dp_pmem2_map_lock for writing, lease_fds_lock, slab_lock, reclaim_lock
 * and urcu-bp's registry lock, in that order.
 */

#define _public_ __attribute__((visibility("default")))
#define _printf_(a, b) __attribute__((format(printf, a, b)))
#define _unlikely_(x) __builtin_expect(!!(x), 0)

/* Reject bad arguments of public entry points with a negative errno. */
#define assert_return(expr, r)                                                                     \
	do {                                                                                       \
		if (_unlikely_(!(expr)))                                                           \
			return (r);                                                                \
	} while (0)

/* ---- fork (fork.c) ---- */

/* Bumped in the child at every fork: handles made before belong to the parent. */
extern atomic_ulong dp_fork_generation;
void dp_fork_init(void);
/*
 * Fork handlers of a part that holds a lock a child could need, registered
 * once before it takes that lock the first time, never removed (a few in
 * all). The prepare handlers run by ascending @level (registration order
 * within one), parent and child in the reverse order; each may be NULL. The
 * child's run after the fork generation moved on.
 */
enum dp_fork_level {
	DP_FORK_PMEM2,	  /* libpmem2's mapping registry lock (region.c) */
	DP_FORK_SERVICE,  /* the services' (lease.c) */
	DP_FORK_REGISTRY, /* the pin registry's and liburcu's (registry.c) */
};
void dp_fork_add_hooks(int level, void (*prepare)(void), void (*parent)(void),
		       void (*child)(void));

/* ---- services: what plugs into the core ---- */

/*
 * The core (context, regions, maps, pins, zaps, the registry, fork and SIGBUS
 * handling) knows no symbol of the services built on it (lib/services/) --
 * the file leases (lease.c), the daxpoold client (client.c), RDMA's device
 * capabilities (rdma.c). It tells them what happens through these hooks: each event goes
 * to every service of the context that has a hook for it, in the order of
 * enum dp_service_id; the context's end goes to them in the reverse order.
 * daxpool_ctx_new() (services/services.c) plugs them in before the context is
 * returned; the table never changes after, so it is read without a lock.
 * The services call the core directly, and one another only through the
 * core (dp_services_call() of a hook).
 */
enum dp_service_id {
	DP_SERVICE_CLIENT, /* first: a region's REGION_ADD is queued before its lease state */
	DP_SERVICE_LEASE,
	DP_SERVICE_RDMA,
	DP_SERVICE_MAX
};

struct stat;
struct daxpool_ctx;
struct daxpool_region;
struct daxpool_map;
struct daxpool_pin;

struct dp_service {
	const char *name;
	/* The context is being freed; its regions are gone. */
	void (*ctx_fini)(struct daxpool_ctx *ctx);
	/*
	 * Around the open(2) of a new region's file @st (no lock held):
	 * before_open returns a token (or -1) that after_open gets back.
	 */
	int (*before_open)(struct daxpool_ctx *ctx, const struct stat *st);
	void (*after_open)(struct daxpool_ctx *ctx, int token);
	/* A region goes on ctx->regions: with ctx->regions_lock held; never sleeps. */
	void (*region_listed)(struct daxpool_region *region);
	/* A region was opened and listed (no lock held). */
	void (*region_added)(struct daxpool_region *region);
	/* A region is being freed, already off ctx->regions (no lock held). */
	void (*region_removed)(struct daxpool_region *region);
	/* A region's state for outsiders changed (its lease): no lock held. */
	void (*region_state)(struct daxpool_region *region);
	/*
	 * A daxpoold request is about to change the region's file (yield),
	 * or is over (resume): counted, no lock held.
	 */
	void (*region_yield)(struct daxpool_region *region);
	void (*region_resume)(struct daxpool_region *region);
	/* After an unzap: what a zap broke may be taken up again (no lock held). */
	void (*region_reopened)(struct daxpool_region *region);
	/* With region->lock held, before the region's descriptor is closed. */
	void (*region_closing)(struct daxpool_region *region);
	/*
	 * A map or pin was published (add) or unlinked (!add); a pin's owner
	 * changed. With region->lock held; never sleeps.
	 */
	void (*map_event)(struct daxpool_map *map, bool add);
	void (*pin_event)(struct daxpool_pin *pin, bool add);
	void (*pin_owner)(struct daxpool_pin *pin);
};

/* Call @hook(args) of every service of @ctx that has one, in the table's order. */
#define dp_services_call(ctx, hook, ...)                                                           \
	do {                                                                                       \
		struct daxpool_ctx *_sctx = (ctx);                                                 \
		for (int _i = 0; _i < DP_SERVICE_MAX; _i++) {                                      \
			const struct dp_service *_s = _sctx->services[_i];                         \
			if (_s && _s->hook)                                                        \
				_s->hook(__VA_ARGS__);                                             \
		}                                                                                  \
	} while (0)

/* ---- context and logging (ctx.c, log.c) ---- */

struct dp_registry;

struct daxpool_ctx {
	struct dp_refcnt ref;
	unsigned long fork_gen;	 /* dp_fork_generation when made: owned by this process iff equal */
	pid_t pid;		 /* the owner process (the pid of its pins) */
	atomic_int fork_protection; /* enum daxpool_fork_protection */
	atomic_int log_priority;
	daxpool_log_fn log_fn;
	void *userdata;
	struct dp_registry *registry; /* the pin registry (registry.c) */

	/* Every open region (region.c), and the daxpoold connection if any (client.c). */
	pthread_mutex_t regions_lock; /* protects regions; taken before a region's lock */
	struct dp_list regions;	      /* struct daxpool_region.ctx_node */
	struct dp_client *_Atomic client; /* set once by the connect call, acquire-loaded */

	/* The services plugged into this context (services.c): see struct dp_service. */
	const struct dp_service *services[DP_SERVICE_MAX];

	/* Whether the kernel takes io_uring registered buffers, per region kind: 0 unknown, 1, -1. */
	atomic_int uring_regbuf[4];
	/* RDMA device capabilities, probed once per device context (rdma.c). */
	pthread_mutex_t rdma_lock;
	struct dp_rdma_caps *rdma_caps;

	/* File leases (lease.c): whether new regions take one, and the watcher thread. */
	atomic_bool leases;
	pthread_mutex_t lease_lock; /* protects lease_watcher; taken before no other lock */
	struct dp_lease_watcher *lease_watcher;
};

/* The core part of a new context: no service plugged in yet (services.c does that). */
int dp_ctx_new(struct daxpool_ctx **ret);

void dp_log(struct daxpool_ctx *ctx, int priority, const char *file, int line, const char *fn,
	    const char *format, ...) _printf_(6, 7);

#define dp_log_cond(ctx, prio, ...)                                                                \
	do {                                                                                       \
		struct daxpool_ctx *_c = (ctx);                                                    \
		if (atomic_load_explicit(&_c->log_priority, memory_order_relaxed) >= (prio))       \
			dp_log(_c, (prio), __FILE__, __LINE__, __func__, __VA_ARGS__);             \
	} while (0)

/* Whether a context (and every object under it) was inherited from a parent process. */
static inline bool dp_ctx_foreign(const struct daxpool_ctx *ctx)
{
	return ctx->fork_gen != atomic_load_explicit(&dp_fork_generation, memory_order_relaxed);
}

/* Refuse operations on handles inherited across fork(). */
#define assert_owned(ctx)                                                                          \
	do {                                                                                       \
		if (_unlikely_(dp_ctx_foreign(ctx)))                                               \
			return -ESTALE;                                                            \
	} while (0)

bool dp_fork_protect_needed(struct daxpool_ctx *ctx);

#define log_err(ctx, ...) dp_log_cond(ctx, LOG_ERR, __VA_ARGS__)
#define log_warn(ctx, ...) dp_log_cond(ctx, LOG_WARNING, __VA_ARGS__)
#define log_notice(ctx, ...) dp_log_cond(ctx, LOG_NOTICE, __VA_ARGS__)
#define log_info(ctx, ...) dp_log_cond(ctx, LOG_INFO, __VA_ARGS__)
#define log_dbg(ctx, ...) dp_log_cond(ctx, LOG_DEBUG, __VA_ARGS__)

/* Log a refcount misuse caught by the saturating counter. */
void dp_refcnt_report(struct daxpool_ctx *ctx, enum dp_refcnt_status st, const char *what,
		      const void *obj);

/*
 * Generate daxpool_<name>_ref() and daxpool_<name>_unref() for a type with a
 * "ref" member, a free function, and an expression giving its ctx for logging.
 */
#define DP_DEFINE_REF_UNREF(name, type, free_fn, ctx_of)                                           \
	_public_ type *daxpool_##name##_ref(type *obj)                                             \
	{                                                                                          \
		enum dp_refcnt_status st;                                                          \
		if (!obj || dp_ctx_foreign(ctx_of(obj)))                                           \
			return obj;                                                                \
		st = dp_refcnt_inc(&obj->ref);                                                     \
		if (_unlikely_(st != DP_REFCNT_OK))                                                \
			dp_refcnt_report(ctx_of(obj), st, #name, obj);                             \
		return obj;                                                                        \
	}                                                                                          \
	_public_ type *daxpool_##name##_unref(type *obj)                                           \
	{                                                                                          \
		enum dp_refcnt_status st;                                                          \
		/* An inherited handle is the parent's: the child leaves it alone. */            \
		if (!obj || dp_ctx_foreign(ctx_of(obj)))                                           \
			return NULL;                                                               \
		st = dp_refcnt_dec(&obj->ref);                                                     \
		if (st == DP_REFCNT_FREE)                                                          \
			free_fn(obj);                                                              \
		else if (_unlikely_(st != DP_REFCNT_OK))                                           \
			dp_refcnt_report(ctx_of(obj), st, #name, obj);                             \
		return NULL;                                                                       \
	}

/*
 * Test hook (testhook.c): sleep as many milliseconds as the environment
 * variable @var says (DAXPOOL_TEST_<name>_MS), to hold a race window open.
 */
void dp_test_delay(const char *var);

/* Map a libpmem2 return code to a negative errno, logging libpmem2's message. */
int dp_pmem2_err(struct daxpool_ctx *ctx, int pmem2_ret, const char *what);

/* ---- regions (region.c, backing.c, lifecycle.c) ---- */

/*
 * A zapped range of a region: [start, end), and who zapped it. Each owner's
 * zaps are its own: an unzap reopens only its owner's, so one owner never
 * reopens a range another still keeps zapped. Owner 0 (DP_ZAP_APP) is the
 * public daxpool_region_zap_range()/unzap_range() (the application, and what
 * is done on its behalf: lease breaks, a device gone); its whole-region zap
 * is whole_zapped. Any other owner is one drain of daxpool's own (drain.c):
 * a truncate or hole punch, an extent being freed, a daxpoold request.
 */
#define DP_ZAP_APP 0

struct dp_zap {
	uint64_t start, end;
	uint64_t owner; /* DP_ZAP_APP or a drain's (struct dp_drain.owner) */
};

struct daxpool_region {
	struct dp_refcnt ref;
	struct daxpool_ctx *ctx;

	/* Immutable after open. */
	char *path;
	char devname[32];
	int kind;
	int fd;
	bool rdonly;
	struct pmem2_source *src;
	uint64_t size;
	uint64_t alignment;
	int granularity;
	int numa_node;
	struct dp_cxl_info cxl; /* namespace, map mode, CXL region (cxl.c) */
	int cxl_state;		/* daxpool_region_is_cxl() */
	char cxl_why[160];

	/* Incremented (release) on every zap and on release. */
	_Atomic uint64_t generation;

	/* Set once when a guarded access faulted (sigbus.c): the backing is gone. */
	atomic_bool dead;

	/* Pins per kind (index 0 unused), changed under lock, read without it. */
	atomic_int pin_count[3];

	/*
	 * lock protects everything below. It is never held across a call out
	 * of daxpool (revoke functions, log functions excepted) or a mapping.
	 */
	pthread_mutex_t lock;
	pthread_cond_t idle_cond; /* broadcast when a map of a zapped region goes */
	struct dp_list maps;	  /* struct daxpool_map.node */
	unsigned int n_maps;
	struct dp_list pins; /* struct daxpool_pin.node */
	struct dp_zap *zaps;
	size_t n_zaps;
	bool whole_zapped;
	bool released;
	/*
	 * Truncates and hole punches running on fd with the lock dropped
	 * (layout.c): while any runs, a release refuses (it would close fd).
	 */
	unsigned int layout_ops;

	/* daxpoold client (client.c): on ctx->regions under ctx->regions_lock. */
	struct dp_list ctx_node;
	uint64_t client_id; /* daxpoold id; written with regions_lock and lock held */

	/*
	 * Pools' locks (pool.c): OFD locks on fd are shared by every pool of
	 * this region, so these tell the pools of this process apart.
	 * pool_locks protects pool_writer and pool_readers; pool_table orders
	 * this process's table readers against its writer.
	 */
	pthread_mutex_t pool_locks;
	pthread_rwlock_t pool_table;
	bool pool_writer;	   /* a pool of this region holds the writer lock */
	unsigned int pool_readers; /* pools sharing the table read lock */

	/* The opened file's identity (immutable after open; the descriptor may close first). */
	uint64_t file_dev, file_ino, file_rdev;

	/* File lease (lease.c): state changes under lock, read without it. */
	atomic_int lease_state; /* enum daxpool_lease_state */
	atomic_int lease_error; /* why REFUSED (negative errno) */
	_Atomic uint64_t lease_breaks;
	unsigned int lease_yields; /* daxpoold requests in progress (lock) */
	int lease_sock;		   /* listener for daxpool peers while HELD (lock), or -1 */
};

struct dp_backing {
	int kind;
	char devname[32];
	uint64_t size;
	uint64_t alignment;
	int numa_node;
	/* devdax: namespace, map mode and CXL region (cxl.c); see daxpool_region_is_cxl() */
	struct dp_cxl_info cxl;
	int cxl_state;
	char cxl_why[160];
};

/* Fill @b's namespace and CXL fields from sysfs for its devname (cxl.c). Never fails. */
void dp_cxl_describe(struct daxpool_ctx *ctx, const char *path, struct dp_backing *b);

struct stat;

/* -ENODEV unless a character device belongs to the dax subsystem (backing.c). */
int dp_backing_check_chardev(struct daxpool_ctx *ctx, const char *path, const struct stat *st);

/* Find what an open fd is and describe it (backing.c). */
int dp_backing_probe(struct daxpool_ctx *ctx, const char *path, int fd, struct pmem2_source *src,
		     struct dp_backing *ret);

/*
 * Run fn(arg), which touches [addr, addr + length) of a mapping of @region,
 * with a SIGBUS there turned into -ENXIO (the mapping went away) or -EIO (a
 * memory error); the region is then marked dead. Returns 0 when fn returned.
 * fn must hold no lock that the unwinding would leak.
 */
int dp_sigbus_guard(struct daxpool_region *region, const void *addr, size_t length,
		    void (*fn)(void *), void *arg);

/*
 * Mark @region dead: its backing went away (@reason, a negative errno, and
 * @why for the log, which says it once). New maps and pins fail with -ENXIO
 * from then on; a devdax region no map holds closes its descriptor at once
 * (dp_region_drop_dead_backing()). Any context but a signal handler; takes
 * region->lock, so the caller must not hold it.
 */
void dp_region_mark_dead(struct daxpool_region *region, int reason, const char *why);

/* Close the region's pmem2 source and descriptor, once. With region->lock held. */
void dp_region_close_backing(struct daxpool_region *region);

/*
 * A dead device-dax region no map holds: close its descriptor now. A process
 * that still holds a descriptor of a devdax device from before it was
 * disabled, and closes it after the device was enabled again, unregisters the
 * new char device (6.12: ENXIO on open) or corrupts the kernel's list of its
 * inodes (6.1: BUG in cd_forget), measured in the vm tier
 * (tests/integration/daemon_udev.c). Closing early keeps daxpool's own
 * descriptors out of that window. With region->lock held.
 */
void dp_region_drop_dead_backing(struct daxpool_region *region);

/* Whether a map (published or being created) overlaps [start, end). With region->lock held. */
bool dp_region_range_held(struct daxpool_region *region, uint64_t start, uint64_t end);

/*
 * Wait until no map overlaps [start, end): 0, or -ETIMEDOUT after @timeout_ms
 * (0: check once; -1: no limit). Takes region->lock.
 */
int dp_region_wait_range_idle(struct daxpool_region *region, uint64_t start, uint64_t end,
			      int timeout_ms);

/* Whether [start, end) overlaps a zapped range (any owner's). Called with region->lock held. */
bool dp_region_range_zapped(struct daxpool_region *region, uint64_t start, uint64_t end);

/*
 * The zap records under the drain service (drain.c calls these, nobody
 * else). dp_region_zap_as(): zap [offset, offset + length) (length 0: to the
 * end) as daxpool_region_zap_range() does, for @owner; a drain's zap is
 * recorded even where another zap covers the range. dp_region_unzap_as():
 * remove @owner's one zap of [start, end), whether or not revoked maps still
 * hold it; the range reopens only if no other zap covers it.
 * Return: as daxpool_region_zap_range(); for the unzap 1 or 0 (no such zap).
 */
int dp_region_zap_as(struct daxpool_region *region, uint64_t offset, uint64_t length,
		     uint64_t owner);
int dp_region_unzap_as(struct daxpool_region *region, uint64_t start, uint64_t end,
		       uint64_t owner);

/* ---- drains (drain.c) ---- */

/*
 * A drain: a range of a region zapped for one of daxpool's own operations (a
 * truncate or hole punch, an extent free, a daxpoold request), as a token
 * that owns its zap. Taking it zaps the range (revoke functions run in the
 * caller's thread, with no daxpool lock held) as a zap of its own, recorded
 * even inside the application's zaps; waiting waits for that range only;
 * putting it removes that zap and no other, so a drain never reopens what the
 * application or another drain keeps zapped.
 *
 * The struct is the caller's (on its stack or in its own object); it names
 * its region without a reference: every call but dp_drain_forget() needs the
 * caller to hold the region. Not thread-safe per drain: one owner at a time.
 */
struct dp_drain {
	struct daxpool_region *region;
	uint64_t start, end;
	uint64_t owner; /* unique in the process; 0 while not taken */
};

/*
 * Zap [offset, offset + length) (length 0: to the end) of @region into @drain.
 * Context: may sleep; runs the revoke functions of the range's maps and pins.
 * Return: the number of maps and pins revoked; -EINVAL (range), -ENXIO
 * (released), -ENOMEM; on failure @drain is not taken.
 */
int dp_drain_take(struct daxpool_region *region, uint64_t offset, uint64_t length,
		  struct dp_drain *drain);
/*
 * Wait until no map overlaps the drain's range: 0, or -ETIMEDOUT after
 * @timeout_ms (0: check once, quietly; -1: no limit). Takes region->lock.
 */
int dp_drain_wait(const struct dp_drain *drain, int timeout_ms);
/* Whether @drain holds a zap (taken and neither put, kept nor forgotten). */
bool dp_drain_taken(const struct dp_drain *drain);
/* Remove the drain's own zap (reopening the range unless another zap covers it). */
void dp_drain_put(struct dp_drain *drain);
/*
 * End the drain with [@from, end) left zapped as the application's (it
 * reopens it with daxpool_region_unzap_range(), as after any zap of its own:
 * a truncated tail, a drain that timed out, a released device), and
 * [start, @from) reopened. If the application's zap cannot be recorded
 * (-ENOMEM), the drain's own stays: the range is never reopened by mistake.
 */
void dp_drain_keep(struct dp_drain *drain, uint64_t from);
/* The region is gone (its zaps with it): forget the drain without touching it. */
void dp_drain_forget(struct dp_drain *drain);

/* ---- maps (map.c) ---- */

/*
 * libpmem2 1.12 keeps a process-wide registry of its mappings keyed by address.
 * With maps created and deleted concurrently we saw a new mapping that reuses
 * an address just unmapped by another thread fail with -EEXIST, and (under
 * ThreadSanitizer) a crash inside libpmem2's page-granularity memset. So
 * pmem2_map_new() and pmem2_map_delete() take this lock for writing. No
 * access calls into libpmem2's page-granularity path (map.c persists those
 * maps with its own msync), and cache-line and byte granularity (DAX)
 * persist with CPU instructions: accesses take no lock.
 */
extern pthread_rwlock_t dp_pmem2_map_lock;

struct daxpool_map {
	struct dp_refcnt ref;
	struct daxpool_region *region;

	/* Immutable after creation. */
	struct pmem2_map *pmap;
	void *addr;
	uint64_t offset;
	uint64_t length;
	unsigned int flags;
	int granularity;
	pmem2_persist_fn persist_fn;
	pmem2_flush_fn flush_fn;
	pmem2_drain_fn drain_fn;
	pmem2_memcpy_fn memcpy_fn;
	pmem2_memset_fn memset_fn;
	pid_t owner_pid;
	pid_t owner_tid;
	struct timespec created; /* CLOCK_MONOTONIC */

	/* Set once, with release ordering, when a zap covers the map. */
	atomic_bool revoked;
	/* The exclusive-owner bit: this process made the map (and owns it outright). */
	atomic_bool exclusive;

	/* Protected by region->lock. */
	struct dp_list node;
	bool pending; /* reserved by daxpool_map_new(), not yet published */
	unsigned int dontfork_pins; /* pins that keep a private map out of children (fork.c) */
	daxpool_revoke_fn revoke_fn;
	void *revoke_data;
	char tag[64];
	/* A zap's private list of maps to call, with the function copied under the lock. */
	struct daxpool_map *revoke_next;
	daxpool_revoke_fn revoke_call_fn;
	void *revoke_call_data;
	uint64_t client_id; /* daxpoold id (client.c), 0 until registered; region->lock */
};

static inline bool dp_map_overlaps(const struct daxpool_map *map, uint64_t start, uint64_t end)
{
	return map->offset < end && start < map->offset + map->length;
}

/* The CLOCK_MONOTONIC time @timeout_ms from now (now itself for 0 or -1), for condition waits. */
static inline struct timespec dp_deadline(int timeout_ms)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	if (timeout_ms > 0) {
		ts.tv_sec += timeout_ms / 1000;
		ts.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
		if (ts.tv_nsec >= 1000000000L) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000L;
		}
	}
	return ts;
}

static inline uint64_t dp_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* ---- pins and the registry (pin.c, registry.c) ---- */

/*
 * The registry indexes each pin by granule of address, in one of three
 * levels of granule size (4 KiB, 2 MiB, 1 GiB): the smallest level at which
 * the pin covers at most DP_LEVEL_FANOUT granules. A pin has one entry per
 * granule it covers at its level, in that level's open-addressing table
 * (registry.c).
 */
#define DP_LEVELS 3
#define DP_LEVEL_FANOUT 4

/* The level of a pin and the granules it covers there. */
void dp_registry_place(uintptr_t start, size_t length, unsigned int *ret_level,
		       uintptr_t *ret_first, size_t *ret_n);

/* Memory freed after a grace period (registry.c): pins and index tables. */
struct dp_defer {
	struct dp_defer *next;
	void (*free)(struct dp_defer *d);
};

/*
 * What few pins need: revocation callbacks, an owner string, the I/O helpers'
 * state. Allocated on first need (before publication for the I/O helpers,
 * under region->lock otherwise), freed with the pin.
 */
struct dp_pin_ext {
	/* Protected by region->lock. */
	daxpool_pin_revoke_fn revoke_fn;
	void *revoke_data;
	struct daxpool_pin *revoke_next;
	daxpool_pin_revoke_fn revoke_call_fn;
	void *revoke_call_data;
	char owner[64];

	/*
	 * Pins made by the I/O helpers (uring.c, rdma.c) stop their I/O
	 * themselves: io_revoke runs on a zap after the application's revoke
	 * function; io_release runs when the pin goes, before its range is
	 * persisted (the device stops first) and before its map is
	 * dropped. Both are set before the pin is published and never change.
	 */
	void (*io_revoke)(struct daxpool_pin *pin);
	void (*io_release)(struct daxpool_pin *pin);
	union dp_pin_io {
		struct {
			struct io_uring *ring;
			struct io_uring_sqe *sqe; /* the prepared entry, until the kernel takes it */
			uint64_t user_data;
			uint64_t addr; /* the buffer address the entry was prepared with */
			atomic_bool registered; /* a registered buffer still registered */
		} uring;
		struct {
			_Atomic(struct ibv_mr *) mr; /* NULL once deregistered */
		} rdma;
	} io;
};

/*
 * 96 bytes, from the registry's pin slab (64-byte aligned chunks, so the
 * first 32 bytes, all that a lookup and daxpool_pin_try_ref() read, never
 * cross a cache line).
 */
struct daxpool_pin {
	/* Hot: read by lookups (start, end) and try_ref (ref, dead, ctx). */
	struct dp_refcnt ref;
	atomic_bool revoked; /* set once, with release ordering, by a zap */
	atomic_bool dead;    /* set when unpinning starts: daxpool_pin_try_ref() fails */
	uint8_t kind;
	uint8_t access : 4;
	uint8_t dontfork : 1; /* counted in map->dontfork_pins (fork.c) */
	uintptr_t start, end; /* immutable after creation */
	struct daxpool_ctx *ctx; /* the registry's owner (the map's region's ctx) */

	struct daxpool_map *map; /* holds a reference */
	uint64_t offset;
	uint64_t created_ns;
	pid_t owner_tid; /* the owner's pid is its ctx's (ctx->pid) */
	uint64_t client_id; /* daxpoold id (client.c), 0 until registered; region->lock */
	_Atomic(struct dp_pin_ext *) ext; /* NULL until needed */

	union {
		struct dp_list node;   /* on region->pins, under region->lock */
		struct dp_defer defer; /* once unlinked: waiting for a grace period */
	};
};

/* The pin's extension, allocated if needed (region->lock held, or before publication). */
struct dp_pin_ext *dp_pin_ext(struct daxpool_pin *pin);
static inline struct dp_pin_ext *dp_pin_ext_get(struct daxpool_pin *pin)
{
	return atomic_load_explicit(&pin->ext, memory_order_acquire);
}

/*
 * The pin slab (registry.c): fixed-size pins without malloc's header;
 * freed pins go back to it after a grace period. Zeroed on allocation.
 */
struct daxpool_pin *dp_pin_alloc(void);
void dp_pin_release_memory(struct daxpool_pin *pin);

/*
 * The process's pid and the calling thread's tid, cached (no system call
 * after the first), reset in the child at fork (fork.c).
 */
pid_t dp_getpid(void);
pid_t dp_gettid(void);
void dp_id_atfork_child(void);

/*
 * Create a pin as daxpool_pin_new(), with the I/O helpers' revoke and release
 * functions set before it is published (pin.c).
 */
int dp_pin_new_io(struct daxpool_map *map, void *addr, size_t length, int kind,
		  unsigned int access, void (*io_revoke)(struct daxpool_pin *),
		  void (*io_release)(struct daxpool_pin *), const void *io, size_t io_len,
		  struct daxpool_pin **ret);

/* A pin was added to (or removed from) a private map that must not move at fork. region->lock held. */
void dp_fork_protect_pin(struct daxpool_map *map, bool add);

int dp_registry_new(struct dp_registry **ret);
void dp_registry_free(struct dp_registry *reg);
/*
 * Insert a pin's entries (its place from dp_registry_place()); the pin is
 * visible to lookups on return. -ENOMEM: not inserted.
 */
int dp_registry_insert(struct dp_registry *reg, struct daxpool_pin *pin, unsigned int level,
		       uintptr_t first, size_t n);
/* Remove a pin's entries: from here on lookups do not report it. */
void dp_registry_remove(struct dp_registry *reg, struct daxpool_pin *pin);
/*
 * A registered pin that contains [start, end), of @kind (0: any) and with all
 * of @access, not revoked, with a new reference in *ret: 0. -ENOENT if none,
 * -ENXIO if only revoked ones. Lock-free; never sleeps.
 */
int dp_registry_find(struct dp_registry *reg, uintptr_t start, uintptr_t end, int kind,
		     unsigned int access, struct daxpool_pin **ret);
/*
 * The lock of daxpool_ctx_find_or_pin()'s makers (pin.c), so that one of
 * them makes a range's pin. Taken before any other daxpool lock. The
 * registry counts the pins its makers made: dp_registry_made() (an acquire
 * load) and dp_registry_make_lock() return that count; a maker that made
 * and inserted one says so to dp_registry_make_unlock(). A caller whose
 * lookup missed after it read the count need not look again under the lock
 * if the count did not move: no maker inserted a pin in between.
 */
unsigned long dp_registry_made(struct dp_registry *reg);
unsigned long dp_registry_make_lock(struct dp_registry *reg);
void dp_registry_make_unlock(struct dp_registry *reg, bool made);
/*
 * Give a removed pin back to the slab, which reuses it after a grace period
 * (batched: registry.c); the caller no longer touches it. Never waits for a
 * grace period.
 */
void dp_pin_defer_free(struct daxpool_pin *pin);

#endif /* DAXPOOL_PRIVATE_H */
