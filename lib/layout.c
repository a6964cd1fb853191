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

/* The region's fd for a layout change, or a negative errno. With region->lock held. */
static int layout_fd(struct daxpool_region *region)
{
	if (region->released)
		return -ENXIO;
	if (region->kind == DAXPOOL_REGION_DEVDAX)
		return -EOPNOTSUPP;
	if (region->rdonly)
		return -EACCES;
	return region->fd;
}

/*
 * Zap [offset, offset + length) as the layout's own zap and wait for that
 * range to go idle: the holders of other zapped ranges (the application's
 * own zaps) do not hold the change up. On a timeout the range stays zapped
 * as the application's (it reopens it with daxpool_region_unzap_range() once
 * the holders are gone, as documented), and the layout's own zap goes. A zap
 * of the application's covering the range stays whatever happens here: the
 * layout only ever removes its own.
 */
static int layout_drain(struct daxpool_region *region, uint64_t offset, uint64_t length,
			int timeout_ms)
{
	int r = dp_region_zap_owned(region, offset, length, DP_ZAP_LAYOUT);

	if (r < 0)
		return r;
	r = dp_region_wait_range_idle(region, offset, offset + length, timeout_ms);
	if (r < 0 && daxpool_region_zap_range(region, offset, length) >= 0)
		dp_region_unzap_owned(region, offset, length, DP_ZAP_LAYOUT);
	return r;
}

_public_ int daxpool_region_truncate(struct daxpool_region *region, uint64_t size, int timeout_ms)
{
	int fd, r = 0;

	assert_return(region, -EINVAL);
	assert_owned(region->ctx);
	assert_return(timeout_ms >= -1, -EINVAL);
	assert_return(size <= INT64_MAX, -EINVAL);

	pthread_mutex_lock(&region->lock);
	fd = layout_fd(region);
	pthread_mutex_unlock(&region->lock);
	if (fd < 0)
		return fd;
	/* Growing changes nothing that is mapped; shrinking drains the tail first. */
	if (size < region->size) {
		r = layout_drain(region, size, region->size - size, timeout_ms);
		if (r < 0) {
			log_err(region->ctx, "%s: truncate to %llu refused: the tail is still held (%s)",
				region->path, (unsigned long long)size, strerror(-r));
			return r;
		}
	}
	pthread_mutex_lock(&region->lock); /* against a concurrent release closing the fd */
	fd = layout_fd(region);
	if (fd >= 0 && ftruncate(fd, (off_t)size) < 0)
		r = -errno;
	else if (fd < 0)
		r = fd;
	pthread_mutex_unlock(&region->lock);
	if (r < 0) {
		log_err(region->ctx, "%s: ftruncate(%llu): %s", region->path,
			(unsigned long long)size, strerror(-r));
		if (size < region->size)
			dp_region_unzap_owned(region, size, region->size - size, DP_ZAP_LAYOUT);
		return r;
	}
	/*
	 * The tail is gone: it stays zapped as the application's, which
	 * reopens it when it wants (as after any zap of its own), and the
	 * layout's own zap goes.
	 */
	if (size < region->size && daxpool_region_zap_range(region, size, region->size - size) >= 0)
		dp_region_unzap_owned(region, size, region->size - size, DP_ZAP_LAYOUT);
	log_info(region->ctx, "%s: truncated to %llu bytes", region->path, (unsigned long long)size);
	return 0;
}

_public_ int daxpool_region_punch_hole(struct daxpool_region *region, uint64_t offset,
				       uint64_t length, int timeout_ms)
{
	int fd, r = 0;

	assert_return(region, -EINVAL);
	assert_owned(region->ctx);
	assert_return(timeout_ms >= -1, -EINVAL);
	assert_return(length > 0 && offset < region->size && length <= region->size - offset,
		      -EINVAL);

	pthread_mutex_lock(&region->lock);
	fd = layout_fd(region);
	pthread_mutex_unlock(&region->lock);
	if (fd < 0)
		return fd;
	r = layout_drain(region, offset, length, timeout_ms);
	if (r < 0) {
		log_err(region->ctx, "%s: punch [%#llx, +%#llx) refused: still held (%s)",
			region->path, (unsigned long long)offset, (unsigned long long)length,
			strerror(-r));
		return r;
	}
	pthread_mutex_lock(&region->lock);
	fd = layout_fd(region);
	if (fd >= 0 && fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)offset,
				 (off_t)length) < 0)
		r = -errno;
	else if (fd < 0)
		r = fd;
	pthread_mutex_unlock(&region->lock);
	dp_region_unzap_owned(region, offset, length, DP_ZAP_LAYOUT);
	if (r < 0)
		log_err(region->ctx, "%s: punch [%#llx, +%#llx): %s", region->path,
			(unsigned long long)offset, (unsigned long long)length, strerror(-r));
	return r;
}
