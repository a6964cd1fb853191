/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * A libfabric application on daxpool memory whose MRs live in libfabric's
 * MR cache, and still give the device back when daxpoold asks.
 *
 *   DAXPOOL_DAEMON=1 fabric_cache /dev/dax0.0 10.0.0.1
 *   (elsewhere) daxpoolctl release dax0.0
 *
 * It imports daxpool's memory monitor before opening its domain, then keeps
 * registering and closing MRs on a daxpool map as a real application's data
 * path does (the cache keeps each registration after fi_close). When the
 * release zaps the map, the monitor deregisters the cached MR and the map's
 * revoke function tells the application to stop; it drops the map, goes on
 * with ordinary memory and exits. Without the monitor, daxpoold would refuse
 * the release: the cached MR outlives the map.
 *
 * Build: cc fabric_cache.c $(pkg-config --cflags --libs daxpool-fabric)
 */
#include <errno.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <rdma/fabric.h>
#include <rdma/fi_domain.h>
#include <rdma/fi_errno.h>

#include <daxpool-fabric.h>
#include <daxpool.h>

static atomic_bool revoked;

/* Runs in daxpool's client thread after the monitor deregistered the cached MRs. */
static void map_revoked(struct daxpool_map *map, void *userdata)
{
	(void)map;
	(void)userdata;
	atomic_store(&revoked, true);
}

static void __attribute__((noreturn)) die(const char *what, int r)
{
	fprintf(stderr, "fabric_cache: %s: %s\n", what, r < 0 && r > -4096 ? strerror(-r) : "failed");
	exit(1);
}

int main(int argc, char **argv)
{
	struct daxpool_fabric_monitor *mon;
	struct daxpool_region *region;
	struct fi_info *hints, *info;
	struct fid_fabric *fabric;
	struct fid_domain *domain;
	struct daxpool_ctx *ctx;
	struct daxpool_map *map;
	struct fid_mr *mr;
	size_t len = 1 << 20;
	unsigned long rounds = 0;
	void *buf;
	int r;

	if (argc != 3) {
		fprintf(stderr, "usage: %s DEVDAX-OR-FILE LOCAL-IP-OF-AN-RDMA-DEVICE\n", argv[0]);
		return 2;
	}
	if ((r = daxpool_ctx_new(&ctx)))
		die("daxpool_ctx_new", r);
	/* First: libfabric takes an imported monitor only before the first domain. */
	if ((r = daxpool_fabric_monitor_new(ctx, &mon)))
		die("daxpool_fabric_monitor_new", r);
	if ((r = daxpool_region_open(ctx, argv[1], 0, &region)))
		die(argv[1], r);
	if ((r = daxpool_map_new(region, 0, daxpool_region_get_alignment(region), 0, &map)))
		die("daxpool_map_new", r);
	daxpool_map_set_revoke_fn(map, map_revoked, NULL);
	if (len > daxpool_map_get_length(map))
		len = daxpool_map_get_length(map);

	hints = fi_allocinfo();
	if (!hints)
		die("fi_allocinfo", -ENOMEM);
	hints->ep_attr->type = FI_EP_MSG;
	hints->caps = FI_MSG | FI_RMA;
	hints->domain_attr->mr_mode = FI_MR_LOCAL | FI_MR_VIRT_ADDR | FI_MR_ALLOCATED |
				      FI_MR_PROV_KEY;
	hints->fabric_attr->prov_name = strdup("verbs");
	if ((r = fi_getinfo(FI_VERSION(1, 13), argv[2], NULL, FI_SOURCE, hints, &info)))
		die("fi_getinfo", r);
	fi_freeinfo(hints);
	if ((r = fi_fabric(info->fabric_attr, &fabric, NULL)) ||
	    (r = fi_domain(fabric, info, &domain, NULL)))
		die("fi_fabric/fi_domain", r);
	/* So that a zap can have the domain deregister what the cache let go. */
	if ((r = daxpool_fabric_monitor_add_domain(mon, domain)))
		die("daxpool_fabric_monitor_add_domain", r);

	/* The data path: register, use, close; the cache keeps the registration. */
	buf = daxpool_map_get_address(map);
	while (!atomic_load(&revoked)) {
		r = fi_mr_reg(domain, buf, len, FI_SEND | FI_RECV | FI_REMOTE_WRITE, 0, 0, 0, &mr,
			      NULL);
		if (r) /* the zap came between the check and the registration */
			break;
		memset(buf, (int)(rounds & 0xff), 64); /* ... post sends from it, etc. */
		fi_close(&mr->fid);
		if (++rounds == 1)
			printf("registered [%p, +%zu) on %s (cached); pins held by the monitor: %d\n",
			       buf, len, info->domain_attr->name,
			       daxpool_fabric_monitor_get_pin_count(mon));
		usleep(10000);
	}
	printf("revoked after %lu rounds: dropping the map; pins left: %d\n", rounds,
	       daxpool_fabric_monitor_get_pin_count(mon));
	daxpool_map_unref(map);

	/* Carry on with ordinary memory (registered, not cached while the monitor is in place). */
	buf = malloc(len);
	if (buf && fi_mr_reg(domain, buf, len, FI_SEND | FI_RECV, 0, 0, 0, &mr, NULL) == 0) {
		printf("registered ordinary memory: the application goes on\n");
		fi_close(&mr->fid);
	}
	free(buf);

	daxpool_fabric_monitor_remove_domain(mon, domain);
	fi_close(&domain->fid);
	fi_close(&fabric->fid);
	fi_freeinfo(info);
	daxpool_fabric_monitor_free(mon);
	daxpool_region_unref(region);
	daxpool_ctx_unref(ctx);
	return 0;
}
