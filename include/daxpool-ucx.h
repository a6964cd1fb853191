/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * libdaxpool-ucx: UCX memory handles on daxpool memory, as pins.
 *
 * UCX keeps the memory registrations behind a memory handle in its
 * registration cache (rcache) after ucp_mem_unmap(), until its memory hooks
 * see the memory go. On DAX memory such an idle registration keeps the
 * device's pages pinned after the application unmapped them, and daxpoold
 * refuses to release the device (daxpoold(8), "The holder rule").
 *
 * daxpool_ucx_mem_map() maps a range of a daxpool map with ucp_mem_map() and
 * returns the memory handle and its daxpool pin as one object. On a zap the
 * application's revoke function runs first (stop the traffic on the handle,
 * retire the rkeys it handed out), then the library reports the range to
 * UCX's memory hooks as unmapped (ucm_vm_munmap(), which has every rcache
 * drop its registrations on it) and unmaps the handle: the registration is
 * gone at once. daxpool_ucx_mem_unmap() does the same in that order.
 *
 * The library links UCX (ucp, ucm); libdaxpool does not. See daxpool_ucx(3).
 */
#ifndef DAXPOOL_UCX_H
#define DAXPOOL_UCX_H

#include <stddef.h>

#include <daxpool.h>
#include <ucp/api/ucp.h>

#ifdef __cplusplus
extern "C" {
#endif

struct daxpool_ucx_mem;

/**
 * typedef daxpool_ucx_revoke_fn - called when a zap covers the handle's range
 * @mem: the handle; its memh is still mapped during the call
 * @userdata: as given to daxpool_ucx_mem_set_revoke_fn()
 *
 * Runs in the thread that zaps (daxpool's client thread for a release
 * through daxpoold), before the library unmaps the handle. It must stop the
 * application's use of it; the application then calls
 * daxpool_ucx_mem_unmap(), from any thread: the region is idle only then.
 */
typedef void (*daxpool_ucx_revoke_fn)(struct daxpool_ucx_mem *mem, void *userdata);

/**
 * daxpool_ucx_mem_map() - ucp_mem_map() a range of a daxpool map, as a pin
 * @map: the map
 * @context: a UCP context created with mt_workers_shared = 1 (UCS thread
 *	mode multi): a zap unmaps the handle from daxpool's thread
 * @addr: start of the range, inside @map
 * @length: its length (> 0)
 * @ret: on success, the handle
 *
 * Return: 0; -EINVAL for NULL, a zero length, or a context that is not
 * thread-safe (the library says so in its error); the errors of
 * daxpool_pin_new() (-ENXIO on a zapped range); -EIO if ucp_mem_map() fails;
 * -ENOMEM.
 */
int daxpool_ucx_mem_map(struct daxpool_map *map, ucp_context_h context, void *addr, size_t length,
			struct daxpool_ucx_mem **ret);

/**
 * daxpool_ucx_mem_get_memh() - the UCP memory handle
 * @mem: the handle
 *
 * Return: the memh, or NULL once a zap unmapped it (or for NULL).
 */
ucp_mem_h daxpool_ucx_mem_get_memh(struct daxpool_ucx_mem *mem);

/**
 * daxpool_ucx_mem_get_pin() - the daxpool pin of the handle (no reference taken)
 * @mem: the handle
 *
 * Return: the pin, or NULL for NULL.
 */
struct daxpool_pin *daxpool_ucx_mem_get_pin(struct daxpool_ucx_mem *mem);

/**
 * daxpool_ucx_mem_set_revoke_fn() - set the function called on a zap
 * @mem: the handle
 * @revoke_fn: the function, or NULL
 * @userdata: passed to it
 *
 * Return: 0, or -EINVAL for NULL @mem.
 */
int daxpool_ucx_mem_set_revoke_fn(struct daxpool_ucx_mem *mem, daxpool_ucx_revoke_fn revoke_fn,
				  void *userdata);

/**
 * daxpool_ucx_mem_unmap() - unmap the handle, deregister at once, drop the pin
 * @mem: the handle (freed)
 *
 * ucm_vm_munmap() of the range first (every rcache drops its registrations
 * on it), then ucp_mem_unmap(), unless a zap did both already; then the pin.
 *
 * Return: 0; -EIO if ucp_mem_unmap() failed (the pin is dropped anyway);
 * -EINVAL for NULL.
 */
int daxpool_ucx_mem_unmap(struct daxpool_ucx_mem *mem);

/**
 * daxpool_ucx_forget_range() - have UCX drop the cached registrations of a range
 * @addr: start of the range
 * @length: its length
 *
 * ucm_vm_munmap(): for registrations UCX made by itself (a send from memory
 * without a handle); call it from a daxpool map's revoke function
 * (daxpool_map_set_revoke_fn()) with the map's range, before the map goes.
 */
void daxpool_ucx_forget_range(void *addr, size_t length);

#ifdef __cplusplus
}
#endif

#endif /* DAXPOOL_UCX_H */
