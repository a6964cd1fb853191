/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * libdaxpool-fabric: libfabric's MR cache on daxpool memory.
 *
 * libfabric's providers (verbs among them) keep memory registrations in a
 * cache after fi_close() of the MR, so that the next fi_mr_reg() of the same
 * buffer is free. On DAX memory such an idle cached MR keeps the device's
 * pages pinned after the application unmapped them, and daxpoold then
 * refuses to release the device (see daxpoold(8), "The holder rule").
 *
 * A daxpool fabric monitor is a memory monitor imported into libfabric's MR
 * cache (fi_import() of "mr_cache", libfabric 1.13 and later). For every
 * range the cache keeps that lies inside one daxpool map of the monitor's
 * context, it holds a daxpool pin (long-term, device read and write, owner
 * "libfabric mr cache" in daxpool_pin_get_owner(); daxpoolctl pins lists it
 * as a long-term pin of the process); when daxpool zaps the
 * range (a release through daxpoold, daxpool_region_zap_range(), a free of
 * an extent), the pin's revoke function invalidates the cached MRs on it
 * and has every attached domain deregister them, before the pin goes: the
 * range counts as idle only after they are deregistered.
 *
 * An MR the application still has open at the zap (no fi_close() yet) is
 * deregistered only by its fi_close(), and the monitor cannot tell it from
 * an idle one: its pin goes with the zap. Close such MRs from the map's
 * revoke function (daxpool_map_set_revoke_fn(), called after the monitor's)
 * once the traffic on them has stopped, and keep the map until then: the
 * region is idle only when its maps are gone too.
 *
 * Memory outside daxpool is not cached at all while the monitor is imported:
 * libfabric 1.17 takes the imported monitor as the monitor of all host
 * memory, in place of its own (memhooks or userfaultfd), and exposes neither
 * to chain to. Registrations of such memory still work; each is
 * deregistered at its fi_close(). See daxpool_fabric(3).
 *
 * The library links libfabric; libdaxpool does not.
 */
#ifndef DAXPOOL_FABRIC_H
#define DAXPOOL_FABRIC_H

#include <daxpool.h>

#ifdef __cplusplus
extern "C" {
#endif

struct fid_domain;
struct daxpool_fabric_monitor;

/**
 * daxpool_fabric_monitor_new() - import a daxpool monitor into libfabric's MR cache
 * @ctx: the daxpool context whose maps the monitor pins; the monitor takes
 *	a reference on it
 * @ret: on success, the monitor
 *
 * Must run before the process opens its first libfabric domain: libfabric
 * takes an imported monitor only while no cache uses a monitor, and (1.17)
 * only once in the life of a process. From then on the monitor watches all host memory of the MR
 * caches of every domain the process opens.
 *
 * Context: any thread, once.
 * Return: 0; -EBUSY (a monitor was already imported, or a domain is already
 * open); -EOPNOTSUPP (this libfabric cannot import a memory monitor);
 * -ENOMEM; -EINVAL for NULL; -ESTALE in a child of @ctx's process.
 */
int daxpool_fabric_monitor_new(struct daxpool_ctx *ctx, struct daxpool_fabric_monitor **ret);

/**
 * daxpool_fabric_monitor_add_domain() - let the monitor deregister through a domain
 * @mon: the monitor
 * @domain: an open domain (fi_domain()) whose MR cache may hold daxpool memory
 *
 * libfabric 1.17 deregisters invalidated cache entries only at the next
 * registration through the same domain: after invalidating a zapped range,
 * the monitor registers and closes one page of its own through each
 * attached domain, which deregisters them at once. The domain must accept
 * fi_mr_reg() from the thread that runs daxpool's revoke functions (the
 * daxpool client thread, or whoever zaps): verbs' MR registration is
 * thread-safe at any threading level. Attach every domain before
 * registering daxpool memory through it; detach it before fi_close().
 *
 * Return: 0; -EEXIST (already attached); -ENOMEM; -EINVAL for NULL.
 */
int daxpool_fabric_monitor_add_domain(struct daxpool_fabric_monitor *mon,
				      struct fid_domain *domain);

/**
 * daxpool_fabric_monitor_remove_domain() - detach a domain before closing it
 * @mon: the monitor
 * @domain: an attached domain
 *
 * Waits for a deregistration through @domain in progress to end.
 *
 * Return: 0; -ENOENT (not attached); -EINVAL for NULL.
 */
int daxpool_fabric_monitor_remove_domain(struct daxpool_fabric_monitor *mon,
					 struct fid_domain *domain);

/**
 * daxpool_fabric_monitor_flush() - deregister what the caches let go, drop its pins
 * @mon: the monitor
 *
 * Has every attached domain deregister the entries its cache invalidated,
 * then drops the pins of the ranges the caches told the monitor they let go
 * (a libfabric that calls the monitor's unsubscribe; 1.17 never does, so
 * there the pin of an entry the cache evicted on its own stays until a zap
 * of its range, which then finds nothing left to deregister). A zap does
 * this itself.
 *
 * Context: not from inside libfabric (a monitor or provider callback).
 * Return: the number of pins dropped (>= 0); -EINVAL for NULL.
 */
int daxpool_fabric_monitor_flush(struct daxpool_fabric_monitor *mon);

/**
 * daxpool_fabric_monitor_get_pin_count() - ranges the monitor holds pins for
 * @mon: the monitor
 *
 * Return: the count (>= 0); -EINVAL for NULL.
 */
int daxpool_fabric_monitor_get_pin_count(struct daxpool_fabric_monitor *mon);

/**
 * daxpool_fabric_monitor_free() - take the monitor out of libfabric and free it
 * @mon: the monitor, or NULL
 *
 * Only after every domain of the process is closed: libfabric calls the
 * monitor as long as a cache uses it. With a domain still attached nothing
 * changes and -EBUSY is returned. Drops the monitor's remaining pins and its
 * reference on the context. libfabric 1.17 refuses a second import for the
 * rest of the process (-EBUSY from daxpool_fabric_monitor_new()), and its MR
 * caches of domains opened later have no monitor: free the monitor only on
 * the way out.
 *
 * Return: 0 (also for NULL); -EBUSY (a domain is still attached).
 */
int daxpool_fabric_monitor_free(struct daxpool_fabric_monitor *mon);

#ifdef __cplusplus
}
#endif

#endif /* DAXPOOL_FABRIC_H */
