/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The services of libdaxpool (lib/services/): what plugs into the core's
 * hooks (struct dp_service, core/private.h) and calls the core directly --
 * never the pools (pool/), and one another only through the core's hooks.
 * services.c plugs them into a new context. Nothing here is part of the ABI.
 */
#ifndef DAXPOOL_SERVICES_H
#define DAXPOOL_SERVICES_H

#include "core/private.h"
#include "services/service_thread.h"

/* RDMA (rdma.c): the device capabilities it probed, freed with the context. */
struct dp_rdma_caps;
extern const struct dp_service dp_rdma_service;
void dp_rdma_ctx_init(struct daxpool_ctx *ctx);

/*
 * File leases (lease.c): a read-write file region holds a write lease, so
 * that an outsider's open or truncate revokes the region first.
 * dp_lease_ctx_init(): DAXPOOL_LEASES, and the fork hooks (the child closes
 * the parent's rendezvous sockets).
 */
extern const struct dp_service dp_lease_service;
void dp_lease_ctx_init(struct daxpool_ctx *ctx);

/*
 * The daxpoold client (client.c): every region, map and pin is registered
 * with daxpoold, from a client thread of the context's. dp_client_ctx_init():
 * DAXPOOL_DAEMON.
 */
struct dp_client;
extern const struct dp_service dp_client_service;
void dp_client_ctx_init(struct daxpool_ctx *ctx);

#endif /* DAXPOOL_SERVICES_H */
