/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Regions: an opened backing (devdax, fsdax or plain file) and its description. */
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "private.h"

/* Ask libpmem2 what granularity a shared mapping of this backing gets. */
static int region_probe_granularity(struct daxpool_region *region)
{
	struct pmem2_config *cfg = NULL;
	struct pmem2_map *pmap = NULL;
	int r;

	r = pmem2_config_new(&cfg);
	if (r)
		return dp_pmem2_err(region->ctx, r, "pmem2 config");
	pmem2_config_set_required_store_granularity(cfg, PMEM2_GRANULARITY_PAGE);
	pmem2_config_set_length(cfg, region->alignment);
	pmem2_config_set_sharing(cfg, PMEM2_SHARED);
	if (region->rdonly)
		pmem2_config_set_protection(cfg, PMEM2_PROT_READ);
	pthread_rwlock_wrlock(&dp_pmem2_map_lock);
	r = pmem2_map_new(&pmap, cfg, region->src);
	pthread_rwlock_unlock(&dp_pmem2_map_lock);
	pmem2_config_delete(&cfg);
	if (r)
		return dp_pmem2_err(region->ctx, r, "probe mapping");

	switch (pmem2_map_get_store_granularity(pmap)) {
	case PMEM2_GRANULARITY_BYTE:
		region->granularity = DAXPOOL_GRANULARITY_BYTE;
		break;
	case PMEM2_GRANULARITY_CACHE_LINE:
		region->granularity = DAXPOOL_GRANULARITY_CACHE_LINE;
		break;
	default:
		region->granularity = DAXPOOL_GRANULARITY_PAGE;
		break;
	}
	pthread_rwlock_wrlock(&dp_pmem2_map_lock);
	pmem2_map_delete(&pmap);
	pthread_rwlock_unlock(&dp_pmem2_map_lock);
	if (region->kind != DAXPOOL_REGION_FILE && region->granularity == DAXPOOL_GRANULARITY_PAGE)
		log_notice(region->ctx, "%s: DAX without MAP_SYNC (an asynchronous DAX device?): "
					"persistence needs msync()", region->path);
	return 0;
}

static int region_check_type(struct daxpool_ctx *ctx, const char *path, const struct stat *st)
{
	if (S_ISDIR(st->st_mode)) {
		log_err(ctx, "%s: is a directory; give a file on it or a /dev/daxX.Y device", path);
		return -EISDIR;
	}
	if (S_ISBLK(st->st_mode)) {
		log_err(ctx, "%s: block devices are not regions: reconfigure the namespace as "
			     "devdax, or mount it with -o dax and use a file", path);
		return -EOPNOTSUPP;
	}
	if (!S_ISREG(st->st_mode) && !S_ISCHR(st->st_mode)) {
		log_err(ctx, "%s: neither a regular file nor a device-dax device", path);
		return -EOPNOTSUPP;
	}
	if (S_ISREG(st->st_mode) && st->st_size == 0) {
		log_err(ctx, "%s: the file is empty; size it first (e.g. ftruncate)", path);
		return -EINVAL;
	}
	return 0;
}

/*
 * Writer-preferring: the page-granularity persist path holds it for reading
 * (msync), often and from many threads; mapping, unmapping and fork() must
 * not starve behind them.
 */
pthread_rwlock_t dp_pmem2_map_lock = PTHREAD_RWLOCK_WRITER_NONRECURSIVE_INITIALIZER_NP;

/* fork(): no thread is inside libpmem2's mapping registry at the fork. */
static void pmem2_atfork_prepare(void)
{
	pthread_rwlock_wrlock(&dp_pmem2_map_lock);
}

static void pmem2_atfork_parent(void)
{
	pthread_rwlock_unlock(&dp_pmem2_map_lock);
}

static void pmem2_atfork_child(void)
{
	pthread_rwlockattr_t attr;

	/*
	 * The lock was write-locked by the forking thread, which lives on as
	 * the child's only thread but under a new thread id, which glibc's
	 * rwlock unlock checks: start the child with a fresh lock instead.
	 */
	pthread_rwlockattr_init(&attr);
	pthread_rwlockattr_setkind_np(&attr, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
	pthread_rwlock_init(&dp_pmem2_map_lock, &attr);
	pthread_rwlockattr_destroy(&attr);
}

static pthread_once_t pmem2_fork_once = PTHREAD_ONCE_INIT;

static void pmem2_fork_register(void)
{
	dp_fork_add_hooks(DP_FORK_PMEM2, pmem2_atfork_prepare, pmem2_atfork_parent,
			  pmem2_atfork_child);
}

/* The region's state that maps and pins check before they publish: its zaps, its backing. */

bool dp_region_range_zapped(struct daxpool_region *region, uint64_t start, uint64_t end)
{
	if (region->whole_zapped)
		return true;
	for (size_t i = 0; i < region->n_zaps; i++)
		if (region->zaps[i].start < end && start < region->zaps[i].end)
			return true;
	return false;
}

void dp_region_close_backing(struct daxpool_region *region)
{
	if (region->src)
		pmem2_source_delete(&region->src);
	if (region->fd >= 0) {
		dp_services_call(region->ctx, region_closing, region);
		close(region->fd);
		region->fd = -1;
	}
}

void dp_region_drop_dead_backing(struct daxpool_region *region)
{
	if (region->kind != DAXPOOL_REGION_DEVDAX || region->n_maps > 0 || region->fd < 0 ||
	    !atomic_load_explicit(&region->dead, memory_order_acquire))
		return;
	dp_region_close_backing(region);
	log_info(region->ctx, "%s: the device is gone and no map holds it: its descriptor is "
			      "closed now (before the device can be enabled again)", region->path);
}


static void region_free(struct daxpool_region *region)
{
	log_dbg(region->ctx, "%s: region freed", region->path);
	/* region_free() runs for a region that failed to open too: it was never listed. */
	if (region->ctx_node.next && region->ctx_node.next != &region->ctx_node) {
		pthread_mutex_lock(&region->ctx->regions_lock);
		dp_list_del(&region->ctx_node);
		pthread_mutex_unlock(&region->ctx->regions_lock);
		dp_services_call(region->ctx, region_removed, region);
	}
	dp_region_close_backing(region);
	pthread_cond_destroy(&region->idle_cond);
	pthread_mutex_destroy(&region->lock);
	pthread_mutex_destroy(&region->pool_locks);
	pthread_rwlock_destroy(&region->pool_table);
	free(region->zaps);
	free(region->path);
	daxpool_ctx_unref(region->ctx);
	free(region);
}

static struct daxpool_ctx *ctx_of_region(struct daxpool_region *region)
{
	return region->ctx;
}

DP_DEFINE_REF_UNREF(region, struct daxpool_region, region_free, ctx_of_region)

_public_ int daxpool_region_open(struct daxpool_ctx *ctx, const char *path, unsigned int flags,
				 struct daxpool_region **ret)
{
	struct daxpool_region *region;
	struct dp_backing backing;
	pthread_condattr_t cattr;
	struct stat st, fst;
	int tokens[DP_SERVICE_MAX];
	int r;

	assert_return(ctx, -EINVAL);
	assert_owned(ctx);
	assert_return(path && *path, -EINVAL);
	assert_return(ret, -EINVAL);
	assert_return(!(flags & ~DAXPOOL_REGION_RDONLY), -EINVAL);
	/* Before the first mapping: every map hangs off a region. */
	pthread_once(&pmem2_fork_once, pmem2_fork_register);

	if (stat(path, &st) < 0) {
		r = -errno;
		log_err(ctx, "%s: %s", path, strerror(-r));
		return r;
	}
	r = region_check_type(ctx, path, &st);
	if (r == 0 && S_ISCHR(st.st_mode))
		r = dp_backing_check_chardev(ctx, path, &st);
	if (r < 0)
		return r;

	region = calloc(1, sizeof(*region));
	if (!region)
		return -ENOMEM;
	dp_refcnt_init(&region->ref, 1);
	region->fd = -1;
	region->rdonly = flags & DAXPOOL_REGION_RDONLY;
	atomic_init(&region->generation, 1);
	atomic_init(&region->dead, false);
	atomic_init(&region->lease_state, DAXPOOL_LEASE_NONE);
	atomic_init(&region->lease_error, 0);
	atomic_init(&region->lease_breaks, 0);
	region->lease_sock = -1;
	dp_list_init(&region->maps);
	dp_list_init(&region->pins);
	for (size_t i = 0; i < sizeof(region->pin_count) / sizeof(region->pin_count[0]); i++)
		atomic_init(&region->pin_count[i], 0);
	pthread_mutex_init(&region->lock, NULL);
	pthread_mutex_init(&region->pool_locks, NULL);
	pthread_rwlock_init(&region->pool_table, NULL);
	pthread_condattr_init(&cattr);
	pthread_condattr_setclock(&cattr, CLOCK_MONOTONIC);
	pthread_cond_init(&region->idle_cond, &cattr);
	pthread_condattr_destroy(&cattr);
	region->ctx = daxpool_ctx_ref(ctx);
	region->path = strdup(path);
	if (!region->path) {
		r = -ENOMEM;
		goto fail;
	}

	/* No lease of this process or of another daxpool process must take this open for an outsider's. */
	for (int i = 0; i < DP_SERVICE_MAX; i++)
		tokens[i] = ctx->services[i] && ctx->services[i]->before_open
				    ? ctx->services[i]->before_open(ctx, &st)
				    : -1;
	region->fd = open(path, (region->rdonly ? O_RDONLY : O_RDWR) | O_CLOEXEC | O_NOCTTY);
	for (int i = 0; i < DP_SERVICE_MAX; i++)
		if (ctx->services[i] && ctx->services[i]->after_open)
			ctx->services[i]->after_open(ctx, tokens[i]);
	if (region->fd < 0) {
		r = -errno;
		log_err(ctx, "%s: open: %s", path, strerror(-r));
		goto fail;
	}
	/* The path may have been replaced between stat() and open(): check again. */
	if (fstat(region->fd, &fst) < 0) {
		r = -errno;
		goto fail;
	}
	region->file_dev = fst.st_dev;
	region->file_ino = fst.st_ino;
	region->file_rdev = fst.st_rdev;
	if (fst.st_dev != st.st_dev || fst.st_ino != st.st_ino) {
		r = region_check_type(ctx, path, &fst);
		if (r < 0)
			goto fail;
	}

	r = pmem2_source_from_fd(&region->src, region->fd);
	if (r) {
		r = dp_pmem2_err(ctx, r, path);
		goto fail;
	}
	r = dp_backing_probe(ctx, path, region->fd, region->src, &backing);
	if (r < 0) {
		if (r == -EOPNOTSUPP || r == -ENODEV)
			log_err(ctx, "%s: not a usable region (%s)", path, strerror(-r));
		goto fail;
	}
	region->kind = backing.kind;
	memcpy(region->devname, backing.devname, sizeof(region->devname));
	region->alignment = backing.alignment;
	region->numa_node = backing.numa_node;
	region->cxl = backing.cxl;
	region->cxl_state = backing.cxl_state;
	memcpy(region->cxl_why, backing.cxl_why, sizeof(region->cxl_why));
	if (!region->alignment || (region->alignment & (region->alignment - 1))) {
		log_err(ctx, "%s: unusable alignment %llu", path,
			(unsigned long long)region->alignment);
		r = -EINVAL;
		goto fail;
	}
	/* Maps cover whole alignment units: a file's partial last page is not usable. */
	region->size = backing.size & ~(region->alignment - 1);
	if (region->size == 0) {
		log_err(ctx, "%s: %llu bytes is smaller than one alignment unit (%llu)", path,
			(unsigned long long)backing.size, (unsigned long long)region->alignment);
		r = -EMSGSIZE;
		goto fail;
	}
	r = region_probe_granularity(region);
	if (r < 0)
		goto fail;

	log_info(ctx, "%s: %s region, %llu bytes, alignment %llu, granularity %s%s%s", path,
		 daxpool_region_kind_name(region->kind), (unsigned long long)region->size,
		 (unsigned long long)region->alignment,
		 daxpool_granularity_name(region->granularity), region->devname[0] ? ", device " : "",
		 region->devname);
	pthread_mutex_lock(&ctx->regions_lock);
	dp_services_call(ctx, region_listed, region);
	dp_list_add_tail(&ctx->regions, &region->ctx_node);
	pthread_mutex_unlock(&ctx->regions_lock);
	/* Listed first: the lease watcher finds it on ctx->regions. */
	dp_services_call(ctx, region_added, region);
	*ret = region;
	return 0;

fail:
	region_free(region);
	return r;
}

_public_ struct daxpool_ctx *daxpool_region_get_ctx(struct daxpool_region *region)
{
	return region ? region->ctx : NULL;
}

_public_ int daxpool_region_get_kind(struct daxpool_region *region)
{
	assert_return(region, -EINVAL);
	return region->kind;
}

_public_ const char *daxpool_region_kind_name(int kind)
{
	switch (kind) {
	case DAXPOOL_REGION_FILE:
		return "file";
	case DAXPOOL_REGION_FSDAX:
		return "fsdax";
	case DAXPOOL_REGION_DEVDAX:
		return "devdax";
	default:
		return NULL;
	}
}

_public_ uint64_t daxpool_region_get_size(struct daxpool_region *region)
{
	return region ? region->size : 0;
}

_public_ uint64_t daxpool_region_get_alignment(struct daxpool_region *region)
{
	return region ? region->alignment : 0;
}

_public_ int daxpool_region_get_granularity(struct daxpool_region *region)
{
	assert_return(region, -EINVAL);
	return region->granularity;
}

_public_ const char *daxpool_granularity_name(int granularity)
{
	switch (granularity) {
	case DAXPOOL_GRANULARITY_BYTE:
		return "byte";
	case DAXPOOL_GRANULARITY_CACHE_LINE:
		return "cache-line";
	case DAXPOOL_GRANULARITY_PAGE:
		return "page";
	default:
		return NULL;
	}
}

_public_ int daxpool_region_is_dax(struct daxpool_region *region)
{
	assert_return(region, -EINVAL);
	return region->kind != DAXPOOL_REGION_FILE;
}

_public_ const char *daxpool_region_get_path(struct daxpool_region *region)
{
	return region ? region->path : NULL;
}

_public_ const char *daxpool_region_get_devname(struct daxpool_region *region)
{
	return region && region->devname[0] ? region->devname : NULL;
}

_public_ int daxpool_region_get_numa_node(struct daxpool_region *region)
{
	assert_return(region, -EINVAL);
	return region->numa_node;
}

/*
 * The first region after @pos on ctx->regions that is not being freed, with
 * a new reference; NULL at the end. With ctx->regions_lock held: a region
 * the caller holds stays on the list (region_free() unlinks it under that
 * lock), so @pos is a valid place to go on from.
 */
static struct daxpool_region *region_next_locked(struct daxpool_ctx *ctx, struct dp_list *pos)
{
	for (pos = pos->next; pos != &ctx->regions; pos = pos->next) {
		struct daxpool_region *region = dp_container_of(pos, struct daxpool_region, ctx_node);

		/* Its last reference went: it waits for this lock to unlink itself. */
		if (dp_refcnt_get_unless_zero(&region->ref))
			return region;
	}
	return NULL;
}

_public_ struct daxpool_region *daxpool_region_get_first(struct daxpool_ctx *ctx)
{
	struct daxpool_region *region;

	if (!ctx || dp_ctx_foreign(ctx))
		return NULL;
	pthread_mutex_lock(&ctx->regions_lock);
	region = region_next_locked(ctx, &ctx->regions);
	pthread_mutex_unlock(&ctx->regions_lock);
	return region;
}

_public_ struct daxpool_region *daxpool_region_get_next(struct daxpool_region *region)
{
	struct daxpool_ctx *ctx;
	struct daxpool_region *next;

	if (!region || dp_ctx_foreign(region->ctx))
		return NULL;
	ctx = region->ctx;
	pthread_mutex_lock(&ctx->regions_lock);
	next = region_next_locked(ctx, &region->ctx_node);
	pthread_mutex_unlock(&ctx->regions_lock);
	/* After the lock: this may be the last reference, and region_free() takes it. */
	daxpool_region_unref(region);
	return next;
}
