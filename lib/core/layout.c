/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Layout changes of a file region done safely in one process: zap the range
 * that changes, wait until no map or pin holds it, change the file, reopen.
 * The kernel's own truncate waits for page references too, but on 6.1 it can
 * miss the wakeup and hang; draining first avoids
 * that. Across processes the same is done by daxpoold (daxpoolctl truncate).
 */
#include <fcntl.h>
#include <linux/falloc.h>
#include <string.h>
#include <unistd.h>

#include "private.h"

/*
 * Begin a layout change: the region's fd, counted in layout_ops so that a
 * release cannot close it while the change runs with region->lock dropped;
 * or a negative errno (nothing counted).
 */
static int layout_begin(struct daxpool_region *region)
{
	int fd;

	pthread_mutex_lock(&region->lock);
	if (region->released)
		fd = -ENXIO;
	else if (region->kind == DAXPOOL_REGION_DEVDAX)
		fd = -EOPNOTSUPP;
	else if (region->rdonly)
		fd = -EACCES;
	else
		fd = region->fd;
	if (fd >= 0)
		region->layout_ops++;
	pthread_mutex_unlock(&region->lock);
	return fd;
}

static void layout_end(struct daxpool_region *region)
{
	pthread_mutex_lock(&region->lock);
	region->layout_ops--;
	pthread_mutex_unlock(&region->lock);
}

/*
 * Drain [offset, offset + length) into @drain: the holders of other zapped
 * ranges (the application's own zaps) do not hold the change up. On a
 * timeout the range stays zapped as the application's (it reopens it with
 * daxpool_region_unzap_range() once the holders are gone, as documented) and
 * the drain ends. A zap of the application's covering the range stays
 * whatever happens here: the drain only ever removes its own.
 */
static int layout_drain(struct daxpool_region *region, uint64_t offset, uint64_t length,
			int timeout_ms, struct dp_drain *drain)
{
	int r = dp_drain_take(region, offset, length, drain);

	if (r < 0)
		return r;
	r = dp_drain_wait(drain, timeout_ms);
	if (r < 0)
		dp_drain_keep(drain, offset);
	return r;
}

_public_ int daxpool_region_truncate(struct daxpool_region *region, uint64_t size, int timeout_ms)
{
	struct dp_drain drain = { 0 };
	int fd, r = 0;

	assert_return(region, -EINVAL);
	assert_owned(region->ctx);
	assert_return(timeout_ms >= -1, -EINVAL);
	assert_return(size <= INT64_MAX, -EINVAL);

	fd = layout_begin(region);
	if (fd < 0)
		return fd;
	/* Growing changes nothing that is mapped; shrinking drains the tail first. */
	if (size < region->size) {
		r = layout_drain(region, size, region->size - size, timeout_ms, &drain);
		if (r < 0) {
			layout_end(region);
			log_err(region->ctx, "%s: truncate to %llu refused: the tail is still held (%s)",
				region->path, (unsigned long long)size, strerror(-r));
			return r;
		}
	}
	/* No lock held: a release refuses while layout_ops counts this, nobody else closes fd. */
	dp_test_delay("DAXPOOL_TEST_LAYOUT_DELAY_MS");
	if (ftruncate(fd, (off_t)size) < 0)
		r = -errno;
	layout_end(region);
	if (r < 0) {
		log_err(region->ctx, "%s: ftruncate(%llu): %s", region->path,
			(unsigned long long)size, strerror(-r));
		dp_drain_put(&drain);
		return r;
	}
	/*
	 * The tail is gone: it stays zapped as the application's, which
	 * reopens it when it wants (as after any zap of its own).
	 */
	dp_drain_keep(&drain, size);
	log_info(region->ctx, "%s: truncated to %llu bytes", region->path, (unsigned long long)size);
	return 0;
}

_public_ int daxpool_region_punch_hole(struct daxpool_region *region, uint64_t offset,
				       uint64_t length, int timeout_ms)
{
	struct dp_drain drain;
	int fd, r = 0;

	assert_return(region, -EINVAL);
	assert_owned(region->ctx);
	assert_return(timeout_ms >= -1, -EINVAL);
	assert_return(length > 0 && offset < region->size && length <= region->size - offset,
		      -EINVAL);

	fd = layout_begin(region);
	if (fd < 0)
		return fd;
	r = layout_drain(region, offset, length, timeout_ms, &drain);
	if (r < 0) {
		layout_end(region);
		log_err(region->ctx, "%s: punch [%#llx, +%#llx) refused: still held (%s)",
			region->path, (unsigned long long)offset, (unsigned long long)length,
			strerror(-r));
		return r;
	}
	dp_test_delay("DAXPOOL_TEST_LAYOUT_DELAY_MS");
	if (fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)offset,
		      (off_t)length) < 0)
		r = -errno;
	layout_end(region);
	dp_drain_put(&drain);
	if (r < 0)
		log_err(region->ctx, "%s: punch [%#llx, +%#llx): %s", region->path,
			(unsigned long long)offset, (unsigned long long)length, strerror(-r));
	return r;
}
