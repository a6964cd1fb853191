/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * libdaxpool-ucx: ucp_mem_map() handles on daxpool memory as pins (only the
 * public daxpool API). Measured on UCX 1.13 in the vm tier: ucm_vm_munmap()
 * of the range first, then ucp_mem_unmap(), deregisters at once; the other
 * order leaves the registration in the rcache until the next ucp_mem_map().
 */
#include <errno.h>
#include <stdbool.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>

#include <ucm/api/ucm.h>

#include "daxpool-ucx.h"

#define _public_ __attribute__((visibility("default")))

struct daxpool_ucx_mem {
	ucp_context_h context;
	_Atomic(ucp_mem_h) memh; /* NULL once unmapped */
	struct daxpool_pin *pin;
	void *addr;
	size_t length;
	pthread_mutex_t lock; /* revoke_fn, userdata */
	daxpool_ucx_revoke_fn revoke_fn;
	void *userdata;
	/* On the list of live handles (g_lock): how a revoke finds its handle. */
	struct daxpool_ucx_mem *next;
	unsigned int busy;	 /* revokes running on it */
	pthread_t revoker;	 /* the thread of the last one */
	bool free_after_revoke; /* daxpool_ucx_mem_unmap() from inside the revoke function */
};

/*
 * A zap calls the revoke function of a pin it found, possibly after the
 * application's daxpool_ucx_mem_unmap() began: the handle is looked up by its
 * pin here, and freed only once no revoke runs on it.
 */
static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t g_cond = PTHREAD_COND_INITIALIZER;
static struct daxpool_ucx_mem *g_mems;

/* Unmap once, whichever of a zap and daxpool_ucx_mem_unmap() comes first. */
static int mem_unmap_once(struct daxpool_ucx_mem *mem)
{
	ucp_mem_h memh = atomic_exchange(&mem->memh, NULL);

	if (!memh)
		return 0;
	/* The rcache first: ucp_mem_unmap() alone leaves its registration. */
	ucm_vm_munmap(mem->addr, mem->length);
	return ucp_mem_unmap(mem->context, memh) == UCS_OK ? 0 : -EIO;
}

static void mem_free(struct daxpool_ucx_mem *mem)
{
	daxpool_pin_unref(mem->pin);
	pthread_mutex_destroy(&mem->lock);
	free(mem);
}

static void mem_revoke(struct daxpool_pin *pin, void *userdata)
{
	struct daxpool_ucx_mem *mem;
	daxpool_ucx_revoke_fn fn;
	bool free_it;
	void *data;

	(void)userdata;
	pthread_mutex_lock(&g_lock);
	for (mem = g_mems; mem && mem->pin != pin; mem = mem->next)
		;
	if (mem) {
		mem->busy++;
		mem->revoker = pthread_self();
	}
	pthread_mutex_unlock(&g_lock);
	if (!mem)
		return; /* already unmapped by the application */
	pthread_mutex_lock(&mem->lock);
	fn = mem->revoke_fn;
	data = mem->userdata;
	pthread_mutex_unlock(&mem->lock);
	if (fn)
		fn(mem, data);
	mem_unmap_once(mem);
	pthread_mutex_lock(&g_lock);
	mem->busy--;
	free_it = mem->free_after_revoke && !mem->busy;
	pthread_cond_broadcast(&g_cond);
	pthread_mutex_unlock(&g_lock);
	if (free_it)
		mem_free(mem);
}

_public_ int daxpool_ucx_mem_map(struct daxpool_map *map, ucp_context_h context, void *addr,
				 size_t length, struct daxpool_ucx_mem **ret)
{
	ucp_mem_map_params_t params = { 0 };
	ucp_context_attr_t attr = { 0 };
	struct daxpool_ucx_mem *mem;
	ucp_mem_h memh;
	int r;

	if (!map || !context || !addr || !length || !ret)
		return -EINVAL;
	attr.field_mask = UCP_ATTR_FIELD_THREAD_MODE;
	if (ucp_context_query(context, &attr) != UCS_OK || attr.thread_mode != UCS_THREAD_MODE_MULTI) {
		fprintf(stderr, "daxpool-ucx: the UCP context is not thread-safe: a zap unmaps "
				"handles from daxpool's thread; create it with mt_workers_shared = 1\n");
		return -EINVAL;
	}
	mem = calloc(1, sizeof(*mem));
	if (!mem)
		return -ENOMEM;
	pthread_mutex_init(&mem->lock, NULL);
	mem->context = context;
	mem->addr = addr;
	mem->length = length;
	/* The pin first: a zapped range is refused before UCX registers anything. */
	r = daxpool_pin_new(map, addr, length, DAXPOOL_PIN_LONGTERM,
			    DAXPOOL_PIN_DEVICE_READ | DAXPOOL_PIN_DEVICE_WRITE, &mem->pin);
	if (r < 0)
		goto fail;
	daxpool_pin_set_owner(mem->pin, "ucx memh");
	params.field_mask = UCP_MEM_MAP_PARAM_FIELD_ADDRESS | UCP_MEM_MAP_PARAM_FIELD_LENGTH;
	params.address = addr;
	params.length = length;
	if (ucp_mem_map(context, &params, &memh) != UCS_OK) {
		r = -EIO;
		goto fail;
	}
	atomic_store(&mem->memh, memh);
	pthread_mutex_lock(&g_lock);
	mem->next = g_mems;
	g_mems = mem;
	pthread_mutex_unlock(&g_lock);
	daxpool_pin_set_revoke_fn(mem->pin, mem_revoke, NULL);
	/* A zap between the pin and here found no revoke function: unmap now. */
	if (daxpool_pin_is_valid(mem->pin) != 1) {
		daxpool_ucx_mem_unmap(mem);
		return -ENXIO;
	}
	*ret = mem;
	return 0;
fail:
	daxpool_pin_unref(mem->pin);
	pthread_mutex_destroy(&mem->lock);
	free(mem);
	return r;
}

_public_ ucp_mem_h daxpool_ucx_mem_get_memh(struct daxpool_ucx_mem *mem)
{
	return mem ? atomic_load(&mem->memh) : NULL;
}

_public_ struct daxpool_pin *daxpool_ucx_mem_get_pin(struct daxpool_ucx_mem *mem)
{
	return mem ? mem->pin : NULL;
}

_public_ int daxpool_ucx_mem_set_revoke_fn(struct daxpool_ucx_mem *mem,
					   daxpool_ucx_revoke_fn revoke_fn, void *userdata)
{
	if (!mem)
		return -EINVAL;
	pthread_mutex_lock(&mem->lock);
	mem->revoke_fn = revoke_fn;
	mem->userdata = userdata;
	pthread_mutex_unlock(&mem->lock);
	return 0;
}

_public_ int daxpool_ucx_mem_unmap(struct daxpool_ucx_mem *mem)
{
	struct daxpool_ucx_mem **pp;
	bool defer;
	int r;

	if (!mem)
		return -EINVAL;
	r = mem_unmap_once(mem);
	pthread_mutex_lock(&g_lock);
	for (pp = &g_mems; *pp; pp = &(*pp)->next)
		if (*pp == mem) {
			*pp = mem->next;
			break;
		}
	/* From inside its own revoke function: that revoke frees it when it returns. */
	defer = mem->busy && pthread_equal(mem->revoker, pthread_self());
	if (defer)
		mem->free_after_revoke = true;
	while (!defer && mem->busy)
		pthread_cond_wait(&g_cond, &g_lock);
	pthread_mutex_unlock(&g_lock);
	if (!defer)
		mem_free(mem);
	return r;
}

_public_ void daxpool_ucx_forget_range(void *addr, size_t length)
{
	if (addr && length)
		ucm_vm_munmap(addr, length);
}
