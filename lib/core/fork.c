/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * fork() safety.
 *
 * An application may fork at any moment, from any thread, while other threads
 * pin and unpin. The rules (from the exclusive-ownership discussion: a bit
 * set when you own the memory outright, cleared at fork; counts are not
 * ownership):
 *
 * - In the child every inherited handle is foreign. Each context records the
 *   process's fork generation when it is made; the child handler bumps the
 *   generation, so "is this handle mine?" is one load and a compare, with
 *   nothing purged or walked. Operations on foreign handles fail with
 *   -ESTALE; ref and unref of them do nothing (the child's copies are dropped
 *   with its address space), so a child can never deregister its parent's
 *   MR or unregister its parent's io_uring buffers.
 * - The locks a child could need are consistent: the prepare handler takes
 *   daxpool's global lock first (no thread is inside libpmem2's mapping
 *   registry at the fork: region.c), then the services' (lease.c), then the
 *   registry's and liburcu's fork protocol for the urcu-bp flavour
 *   (registry.c); each part registers its handlers (dp_fork_add_hooks())
 *   before it takes its lock the first time. Locks of individual objects
 *   are never needed in the child: those objects are foreign there.
 * - Pinned pages must not move. MAP_SHARED mappings (all DAX) are never
 *   copied on write. Private mappings can be: where the kernel does not copy
 *   pinned pages at fork itself, a private map that carries pins is marked
 *   MADV_DONTFORK while pinned (the whole map, which is its own VMA: no
 *   split), and MADV_DOFORK again when its last pin goes. Detected once.
 * - vfork() and posix_spawn() run no handler; fork() (also before exec)
 *   runs these, which take a few locks: O(1) in the number of pins. The
 *   child closes the parent's lease rendezvous sockets (lease.c): O(number
 *   of leased regions).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/utsname.h>

#ifdef DAXPOOL_HAVE_RDMA
#include <infiniband/verbs.h>
#endif

#include "private.h"

atomic_ulong dp_fork_generation;

/*
 * The handlers of the parts that hold locks a child could need: the
 * mapping lock (region.c), the services' (lease.c), the registry's with
 * liburcu's (registry.c). Kept sorted by level, registered once each, never
 * removed; fork_hooks_lock orders a registration against a fork.
 */
#define FORK_HOOKS_MAX 8
static struct {
	int level;
	void (*prepare)(void);
	void (*parent)(void);
	void (*child)(void);
} fork_hooks[FORK_HOOKS_MAX];
static int fork_n_hooks;
static pthread_mutex_t fork_hooks_lock = PTHREAD_MUTEX_INITIALIZER;

void dp_fork_add_hooks(int level, void (*prepare)(void), void (*parent)(void),
		       void (*child)(void))
{
	int i;

	pthread_mutex_lock(&fork_hooks_lock);
	assert(fork_n_hooks < FORK_HOOKS_MAX);
	for (i = fork_n_hooks; i > 0 && fork_hooks[i - 1].level > level; i--)
		fork_hooks[i] = fork_hooks[i - 1];
	fork_hooks[i].level = level;
	fork_hooks[i].prepare = prepare;
	fork_hooks[i].parent = parent;
	fork_hooks[i].child = child;
	fork_n_hooks++;
	pthread_mutex_unlock(&fork_hooks_lock);
}

static void fork_prepare(void)
{
	pthread_mutex_lock(&fork_hooks_lock);
	for (int i = 0; i < fork_n_hooks; i++)
		if (fork_hooks[i].prepare)
			fork_hooks[i].prepare();
}

static void fork_parent(void)
{
	for (int i = fork_n_hooks - 1; i >= 0; i--)
		if (fork_hooks[i].parent)
			fork_hooks[i].parent();
	pthread_mutex_unlock(&fork_hooks_lock);
}

static void fork_child(void)
{
	/* Everything made before this point belongs to the parent. */
	atomic_fetch_add_explicit(&dp_fork_generation, 1, memory_order_relaxed);
	for (int i = fork_n_hooks - 1; i >= 0; i--)
		if (fork_hooks[i].child)
			fork_hooks[i].child();
	pthread_mutex_init(&fork_hooks_lock, NULL);
}

static void fork_register(void)
{
	pthread_atfork(fork_prepare, fork_parent, fork_child);
}

void dp_fork_init(void)
{
	static pthread_once_t once = PTHREAD_ONCE_INIT;

	pthread_once(&once, fork_register);
}

/*
 * Whether this kernel copies pinned pages into the child at fork, so that a
 * pinned page stays with the parent. The RDMA core reports it (netlink
 * COPY_ON_FORK, read by ibv_is_fork_initialized(), which never applies
 * MADV_DONTFORK itself; ibv_fork_init() would, and daxpool never calls it),
 * but only while the RDMA core is loaded. Otherwise: the report appeared
 * with 5.13, and every kernel since copies pinned pages.
 */
static bool kernel_copies_pinned_pages(void)
{
	struct utsname u;
	unsigned int major = 0, minor = 0;

#ifdef DAXPOOL_HAVE_RDMA
	if (ibv_is_fork_initialized() == IBV_FORK_UNNEEDED)
		return true;
#endif
	if (uname(&u) < 0 || sscanf(u.release, "%u.%u", &major, &minor) != 2)
		return false;
	return major > 5 || (major == 5 && minor >= 13);
}

static int kernel_copies_cached(void)
{
	static atomic_int cached; /* 0 unknown, 1 copies, -1 does not */
	int v = atomic_load_explicit(&cached, memory_order_relaxed);

	if (!v) {
		v = kernel_copies_pinned_pages() ? 1 : -1;
		atomic_store_explicit(&cached, v, memory_order_relaxed);
	}
	return v;
}

bool dp_fork_protect_needed(struct daxpool_ctx *ctx)
{
	switch (atomic_load_explicit(&ctx->fork_protection, memory_order_relaxed)) {
	case DAXPOOL_FORK_PROTECT_ALWAYS:
		return true;
	case DAXPOOL_FORK_PROTECT_NEVER:
		return false;
	default:
		return kernel_copies_cached() < 0;
	}
}

/* Called with the map's region lock held, for each pin added to or removed from a private map. */
void dp_fork_protect_pin(struct daxpool_map *map, bool add)
{
	struct daxpool_ctx *ctx = map->region->ctx;
	int advice;

	if (add ? map->dontfork_pins++ > 0 : --map->dontfork_pins > 0)
		return;
	advice = add ? MADV_DONTFORK : MADV_DOFORK;
	if (madvise(map->addr, map->length, advice) < 0)
		log_err(ctx, "%s: madvise(%s) of a pinned private map: %s", map->region->path,
			add ? "MADV_DONTFORK" : "MADV_DOFORK", strerror(errno));
	else
		log_dbg(ctx, "%s: private map [%#llx, +%#llx) %s", map->region->path,
			(unsigned long long)map->offset, (unsigned long long)map->length,
			add ? "kept out of children (MADV_DONTFORK) while pinned"
			    : "inherited by children again");
}

_public_ int daxpool_ctx_set_fork_protection(struct daxpool_ctx *ctx, int mode)
{
	assert_return(ctx, -EINVAL);
	assert_owned(ctx);
	assert_return(mode == DAXPOOL_FORK_PROTECT_AUTO || mode == DAXPOOL_FORK_PROTECT_ALWAYS ||
			      mode == DAXPOOL_FORK_PROTECT_NEVER,
		      -EINVAL);
	atomic_store_explicit(&ctx->fork_protection, mode, memory_order_relaxed);
	return 0;
}

_public_ int daxpool_ctx_get_fork_protection(struct daxpool_ctx *ctx)
{
	assert_return(ctx, -EINVAL);
	assert_owned(ctx);
	return dp_fork_protect_needed(ctx);
}

_public_ int daxpool_map_is_exclusive(struct daxpool_map *map)
{
	assert_return(map, -EINVAL);
	if (dp_ctx_foreign(map->region->ctx))
		return 0;
	return atomic_load_explicit(&map->exclusive, memory_order_acquire);
}
