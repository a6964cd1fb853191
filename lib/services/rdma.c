/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * RDMA memory regions as pins: the MR and its LONGTERM pin are one object.
 * Built against rdma-core's libibverbs when configure found it; otherwise
 * every entry point says so with -EOPNOTSUPP.
 */
#include <stdlib.h>
#include <string.h>

#include "services.h"

#ifdef DAXPOOL_HAVE_RDMA
#include <infiniband/verbs.h>

/* What a device can do, probed once per device context. */
struct dp_rdma_caps {
	struct ibv_context *verbs;
	bool odp_rc; /* on-demand paging for RC reads and writes */
	struct dp_rdma_caps *next;
};

static void rdma_ctx_fini(struct daxpool_ctx *ctx)
{
	struct dp_rdma_caps *caps = ctx->rdma_caps;

	while (caps) {
		struct dp_rdma_caps *next = caps->next;

		free(caps);
		caps = next;
	}
	ctx->rdma_caps = NULL;
	pthread_mutex_destroy(&ctx->rdma_lock);
}

static const struct dp_rdma_caps *rdma_caps(struct daxpool_ctx *ctx, struct ibv_context *verbs)
{
	struct ibv_device_attr_ex attr;
	struct dp_rdma_caps *c;

	pthread_mutex_lock(&ctx->rdma_lock);
	for (c = ctx->rdma_caps; c; c = c->next)
		if (c->verbs == verbs)
			goto out;
	c = calloc(1, sizeof(*c));
	if (!c)
		goto out;
	c->verbs = verbs;
	memset(&attr, 0, sizeof(attr));
	if (ibv_query_device_ex(verbs, NULL, &attr) == 0) {
		uint32_t rc = attr.odp_caps.per_transport_caps.rc_odp_caps;

		c->odp_rc = (attr.odp_caps.general_caps & IBV_ODP_SUPPORT) &&
			    (rc & IBV_ODP_SUPPORT_WRITE) && (rc & IBV_ODP_SUPPORT_READ);
	}
	log_info(ctx, "RDMA device %s: on-demand paging for RC: %s",
		 ibv_get_device_name(verbs->device), c->odp_rc ? "yes" : "no");
	c->next = ctx->rdma_caps;
	ctx->rdma_caps = c;
out:
	pthread_mutex_unlock(&ctx->rdma_lock);
	return c;
}

/* Deregister once, whether a zap, an explicit dereg or the last unref comes first. */
static int rdma_dereg(struct daxpool_pin *pin)
{
	struct ibv_mr *mr = atomic_exchange(&dp_pin_ext_get(pin)->io.rdma.mr, NULL);
	int r;

	if (!mr)
		return 0;
	r = ibv_dereg_mr(mr);
	if (r) {
		log_err(pin->ctx, "ibv_dereg_mr: %s", strerror(r));
		return -r;
	}
	log_dbg(pin->ctx, "MR of [%#llx, +%#llx) deregistered", (unsigned long long)pin->offset,
		(unsigned long long)(pin->end - pin->start));
	return 0;
}

static void rdma_revoke(struct daxpool_pin *pin)
{
	rdma_dereg(pin);
}

_public_ int daxpool_rdma_reg_mr(struct daxpool_map *map, struct ibv_pd *pd, void *addr,
				 size_t length, int ibv_access, struct daxpool_pin **ret_pin)
{
	union dp_pin_io io;
	const struct dp_rdma_caps *caps;
	struct daxpool_region *region;
	struct daxpool_pin *pin;
	unsigned int access = DAXPOOL_PIN_DEVICE_READ;
	struct ibv_mr *mr, *left;
	bool odp = false;
	int r;

	assert_return(map && pd && ret_pin, -EINVAL);
	assert_owned(map->region->ctx);
	region = map->region;

	if (region->kind == DAXPOOL_REGION_FSDAX) {
		caps = rdma_caps(region->ctx, pd->context);
		if (!caps)
			return -ENOMEM;
		if (!caps->odp_rc) {
			log_err(region->ctx, "%s: the kernel cannot pin fsdax memory long-term for RDMA "
					     "(ibv_reg_mr would fail with EOPNOTSUPP) and %s has no "
					     "on-demand paging: register a devdax region, or a bounce "
					     "buffer (anonymous or devdax) and copy",
				region->path, ibv_get_device_name(pd->context->device));
			return -EOPNOTSUPP;
		}
		odp = true;
		ibv_access |= IBV_ACCESS_ON_DEMAND;
	}
	/*
	 * A CXL namespace whose struct pages live on the CXL memory itself:
	 * the long-term pin fails in the kernel (ENOMEM, with a WARNING in
	 * try_grab_page on 6.1) -- refused here, before the kernel is asked.
	 */
	if (region->cxl_state == 1 && region->cxl.memmap == DP_MEMMAP_DEVICE) {
		log_err(region->ctx, "%s: %s on CXL %s keeps its struct pages on the CXL memory "
				     "(map=dev): the kernel cannot pin it for RDMA (ibv_reg_mr "
				     "fails with ENOMEM and warns); recreate the namespace with "
				     "ndctl create-namespace -m devdax --map=mem",
			region->path, region->cxl.nd_namespace, region->cxl.region);
		return -EOPNOTSUPP;
	}
	if (ibv_access & (IBV_ACCESS_LOCAL_WRITE | IBV_ACCESS_REMOTE_WRITE | IBV_ACCESS_REMOTE_ATOMIC))
		access |= DAXPOOL_PIN_DEVICE_WRITE;

	/* The pin first: a zapped range is refused before the kernel pins anything. */
	memset(&io, 0, sizeof(io));
	r = dp_pin_new_io(map, addr, length, DAXPOOL_PIN_LONGTERM, access, rdma_revoke,
			  rdma_revoke, &io, sizeof(io), &pin);
	if (r < 0)
		return r;
	mr = ibv_reg_mr(pd, addr, length, ibv_access);
	if (!mr) {
		r = -errno;
		log_err(region->ctx, "%s: ibv_reg_mr of [%p, +%zu): %s%s", region->path, addr, length,
			strerror(-r),
			r == -ENOMEM && region->cxl.memmap == DP_MEMMAP_DEVICE
				? " (the namespace keeps its struct pages on the device, map=dev: "
				  "the kernel may be unable to pin them; --map=mem avoids it)"
				: "");
		daxpool_pin_unref(pin);
		return r;
	}
	atomic_store(&dp_pin_ext_get(pin)->io.rdma.mr, mr);
	/*
	 * A zap that revoked the pin before the MR was stored found nothing to
	 * deregister: whoever takes the MR out of the pin deregisters it.
	 */
	if (atomic_load_explicit(&pin->revoked, memory_order_acquire)) {
		left = atomic_exchange(&dp_pin_ext_get(pin)->io.rdma.mr, NULL);
		if (left)
			ibv_dereg_mr(left);
		daxpool_pin_unref(pin);
		return -ENXIO;
	}
	if (odp) {
		struct ibv_sge sge = { .addr = (uintptr_t)addr, .length = (uint32_t)length,
				       .lkey = mr->lkey };

		r = ibv_advise_mr(pd, IBV_ADVISE_MR_ADVICE_PREFETCH_WRITE,
				  IBV_ADVISE_MR_FLAG_FLUSH, &sge, 1);
		if (r)
			log_notice(region->ctx, "%s: ODP prefetch advice: %s", region->path,
				   strerror(r));
	}
	daxpool_pin_set_owner(pin, "rdma mr");
	*ret_pin = pin;
	return 0;
}

_public_ struct ibv_mr *daxpool_pin_get_mr(struct daxpool_pin *pin)
{
	if (!pin || !dp_pin_ext_get(pin) || dp_pin_ext_get(pin)->io_revoke != rdma_revoke)
		return NULL;
	return atomic_load(&dp_pin_ext_get(pin)->io.rdma.mr);
}

_public_ int daxpool_rdma_dereg_mr(struct daxpool_pin *pin)
{
	int r;

	assert_return(pin && dp_pin_ext_get(pin) && dp_pin_ext_get(pin)->io_revoke == rdma_revoke,
		      -EINVAL);
	assert_owned(pin->ctx);
	r = rdma_dereg(pin);
	daxpool_pin_unref(pin);
	return r;
}

#else /* !DAXPOOL_HAVE_RDMA */

static void rdma_ctx_fini(struct daxpool_ctx *ctx)
{
	pthread_mutex_destroy(&ctx->rdma_lock);
}

_public_ int daxpool_rdma_reg_mr(struct daxpool_map *map, struct ibv_pd *pd, void *addr,
				 size_t length, int ibv_access, struct daxpool_pin **ret_pin)
{
	assert_return(map && pd && ret_pin, -EINVAL);
	log_err(map->region->ctx, "daxpool was built without rdma-core (libibverbs)");
	return -EOPNOTSUPP;
}

_public_ struct ibv_mr *daxpool_pin_get_mr(struct daxpool_pin *pin)
{
	return NULL;
}

_public_ int daxpool_rdma_dereg_mr(struct daxpool_pin *pin)
{
	return -EINVAL;
}

#endif /* DAXPOOL_HAVE_RDMA */

void dp_rdma_ctx_init(struct daxpool_ctx *ctx)
{
	pthread_mutex_init(&ctx->rdma_lock, NULL);
	ctx->rdma_caps = NULL;
}

const struct dp_service dp_rdma_service = {
	.name = "rdma",
	.ctx_fini = rdma_ctx_fini,
};
