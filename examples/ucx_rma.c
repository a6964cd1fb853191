/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * A UCX application that writes into daxpool memory with RMA puts, and still
 * gives the device back when daxpoold asks.
 *
 *   DAXPOOL_DAEMON=1 UCX_TLS=rc_verbs ucx_rma /dev/dax0.0 10.0.0.1
 *   (elsewhere) daxpoolctl release dax0.0
 *
 * The program is its own peer: a listener on the given address (client-server
 * wire-up, through rdma_cm on an RDMA device), an endpoint connected to it,
 * and the endpoint the listener accepted. The daxpool map is the target
 * memory: mapped with daxpool_ucx_mem_map() (the memory handle is a daxpool
 * pin), its rkey handed to the client endpoint, which keeps putting into it.
 *
 * When the release zaps the map, the handle's revoke function asks the data
 * path to stop and waits until it did (no put in flight, the rkey retired);
 * the library then has UCX's registration caches drop the range and unmaps
 * the handle, and the program drops the handle and the map, goes on with
 * ordinary memory and exits. Without daxpool_ucx_mem_map(), ucp_mem_unmap()
 * would leave the registration cached and daxpoold would refuse the release.
 *
 * daxpoold as it is refuses the release all the same while this program's
 * worker lives: its rc_verbs interface registers send and receive buffers of
 * its own, ordinary memory the daemon cannot tell from the device's (see
 * daxpool_ucx(3), NOTES). The revoke path above is what a release runs once
 * the daemon can; daxpool_region_zap() from another thread runs it today.
 *
 * Build: cc ucx_rma.c $(pkg-config --cflags --libs daxpool-ucx)
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <ucp/api/ucp.h>

#include <daxpool-ucx.h>
#include <daxpool.h>

#define PUT_LEN (64 * 1024)
#define MAP_LEN (4 << 20)

/* The data path's state, shared with the revoke function (daxpool's thread). */
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cond = PTHREAD_COND_INITIALIZER;
static enum { IDLE, RUNNING, STOP_ASKED, STOPPED } state = IDLE;

static ucp_worker_h worker;
static ucp_ep_h server_ep;

static void __attribute__((noreturn)) die(const char *what, const char *why)
{
	fprintf(stderr, "ucx_rma: %s: %s\n", what, why);
	exit(1);
}

static void __attribute__((noreturn)) die_ucs(const char *what, ucs_status_t st)
{
	die(what, ucs_status_string(st));
}

/*
 * Runs in the zapping thread while the handle is still mapped: stop the puts
 * and wait until the data path confirms; the library unmaps the handle after
 * this returns.
 */
static void mem_revoked(struct daxpool_ucx_mem *mem, void *userdata)
{
	(void)mem;
	(void)userdata;
	pthread_mutex_lock(&lock);
	if (state == RUNNING) {
		state = STOP_ASKED;
		while (state != STOPPED)
			pthread_cond_wait(&cond, &lock);
	} else {
		state = STOPPED;
	}
	pthread_mutex_unlock(&lock);
}

/* Progress the worker until a request (or a NULL "done at once") completes. */
static ucs_status_t wait_request(ucs_status_ptr_t req)
{
	ucs_status_t st;

	if (req == NULL)
		return UCS_OK;
	if (UCS_PTR_IS_ERR(req))
		return UCS_PTR_STATUS(req);
	do {
		ucp_worker_progress(worker);
		st = ucp_request_check_status(req);
	} while (st == UCS_INPROGRESS);
	ucp_request_free(req);
	return st;
}

static void on_connection(ucp_conn_request_h request, void *arg)
{
	ucp_ep_params_t params = { 0 };
	ucs_status_t st;

	(void)arg;
	params.field_mask = UCP_EP_PARAM_FIELD_CONN_REQUEST;
	params.conn_request = request;
	st = ucp_ep_create(worker, &params, &server_ep);
	if (st != UCS_OK)
		die_ucs("ucp_ep_create (server side)", st);
}

/* Put @len bytes of @src at @remote through @rkey and wait for completion. */
static ucs_status_t put(ucp_ep_h ep, const void *src, size_t len, void *remote, ucp_rkey_h rkey)
{
	ucp_request_param_t param = { 0 };
	ucs_status_t st;

	st = wait_request(ucp_put_nbx(ep, src, len, (uint64_t)(uintptr_t)remote, rkey, &param));
	if (st != UCS_OK)
		return st;
	return wait_request(ucp_ep_flush_nbx(ep, &param));
}

static ucp_rkey_h rkey_for(ucp_context_h context, ucp_ep_h ep, ucp_mem_h memh)
{
	void *packed;
	size_t size;
	ucp_rkey_h rkey;
	ucs_status_t st;

	st = ucp_rkey_pack(context, memh, &packed, &size);
	if (st != UCS_OK)
		die_ucs("ucp_rkey_pack", st);
	/* ... in a real application, sent to the peer, which unpacks it: */
	st = ucp_ep_rkey_unpack(ep, packed, &rkey);
	ucp_rkey_buffer_release(packed);
	if (st != UCS_OK)
		die_ucs("ucp_ep_rkey_unpack", st);
	return rkey;
}

int main(int argc, char **argv)
{
	ucp_listener_params_t lparams = { 0 };
	ucp_worker_params_t wparams = { 0 };
	ucp_listener_attr_t lattr = { 0 };
	ucp_ep_params_t eparams = { 0 };
	ucp_request_param_t close_param = { 0 };
	ucp_params_t params = { 0 };
	struct daxpool_ucx_mem *mem;
	struct daxpool_region *region;
	struct sockaddr_in sin = { 0 };
	struct daxpool_ctx *ctx;
	struct daxpool_map *map;
	unsigned long puts = 0;
	ucp_listener_h listener;
	ucp_context_h context;
	ucp_config_t *config;
	ucp_rkey_h rkey;
	ucp_ep_h ep;
	ucs_status_t st;
	char *src, *dst;
	size_t len, align;
	bool stop;
	int r;

	if (argc != 3) {
		fprintf(stderr, "usage: %s DEVDAX-OR-FILE LOCAL-IP\n", argv[0]);
		return 2;
	}
	sin.sin_family = AF_INET;
	if (inet_pton(AF_INET, argv[2], &sin.sin_addr) != 1)
		die(argv[2], "not an IPv4 address");

	/* A thread-safe context: a zap unmaps the handle from daxpool's thread. */
	if ((st = ucp_config_read(NULL, NULL, &config)) != UCS_OK)
		die_ucs("ucp_config_read", st);
	params.field_mask = UCP_PARAM_FIELD_FEATURES | UCP_PARAM_FIELD_MT_WORKERS_SHARED;
	params.features = UCP_FEATURE_RMA;
	params.mt_workers_shared = 1;
	st = ucp_init(&params, config, &context);
	ucp_config_release(config);
	if (st != UCS_OK)
		die_ucs("ucp_init", st);
	wparams.field_mask = UCP_WORKER_PARAM_FIELD_THREAD_MODE;
	wparams.thread_mode = UCS_THREAD_MODE_SINGLE; /* only this thread drives it */
	if ((st = ucp_worker_create(context, &wparams, &worker)) != UCS_OK)
		die_ucs("ucp_worker_create", st);

	/* Listener on any port of the address, and a client endpoint to it. */
	lparams.field_mask = UCP_LISTENER_PARAM_FIELD_SOCK_ADDR | UCP_LISTENER_PARAM_FIELD_CONN_HANDLER;
	lparams.sockaddr.addr = (const struct sockaddr *)&sin;
	lparams.sockaddr.addrlen = sizeof(sin);
	lparams.conn_handler.cb = on_connection;
	if ((st = ucp_listener_create(worker, &lparams, &listener)) != UCS_OK)
		die_ucs("ucp_listener_create", st);
	lattr.field_mask = UCP_LISTENER_ATTR_FIELD_SOCKADDR;
	if ((st = ucp_listener_query(listener, &lattr)) != UCS_OK)
		die_ucs("ucp_listener_query", st);
	eparams.field_mask = UCP_EP_PARAM_FIELD_FLAGS | UCP_EP_PARAM_FIELD_SOCK_ADDR;
	eparams.flags = UCP_EP_PARAMS_FLAGS_CLIENT_SERVER;
	eparams.sockaddr.addr = (const struct sockaddr *)&lattr.sockaddr;
	eparams.sockaddr.addrlen = sizeof(struct sockaddr_in);
	if ((st = ucp_ep_create(worker, &eparams, &ep)) != UCS_OK)
		die_ucs("ucp_ep_create", st);
	while (!server_ep)
		ucp_worker_progress(worker);
	{
		ucp_request_param_t p = { 0 };

		if ((st = wait_request(ucp_ep_flush_nbx(ep, &p))) != UCS_OK)
			die_ucs("connect", st);
	}

	/* The target memory: a daxpool map, its memory handle a daxpool pin. */
	if ((r = daxpool_ctx_new(&ctx)))
		die("daxpool_ctx_new", strerror(-r));
	if ((r = daxpool_region_open(ctx, argv[1], 0, &region)))
		die(argv[1], strerror(-r));
	/* 4 MiB, or the region's alignment if larger, or the region if smaller. */
	align = daxpool_region_get_alignment(region);
	len = (MAP_LEN + align - 1) / align * align;
	if (len > daxpool_region_get_size(region))
		len = daxpool_region_get_size(region) / align * align;
	if ((r = daxpool_map_new(region, 0, len, 0, &map)))
		die("daxpool_map_new", strerror(-r));
	dst = daxpool_map_get_address(map);
	if (len < PUT_LEN)
		die(argv[1], "smaller than one put");
	if ((r = daxpool_ucx_mem_map(map, context, dst, len, &mem)))
		die("daxpool_ucx_mem_map", strerror(-r));
	daxpool_ucx_mem_set_revoke_fn(mem, mem_revoked, NULL);
	rkey = rkey_for(context, ep, daxpool_ucx_mem_get_memh(mem));

	src = malloc(PUT_LEN);
	if (!src)
		die("malloc", strerror(ENOMEM));

	/* The data path: put into the daxpool memory until told to stop. */
	pthread_mutex_lock(&lock);
	if (state == IDLE)
		state = RUNNING;
	pthread_mutex_unlock(&lock);
	printf("putting %d KiB at a time into [%p, +%zu) on %s\n", PUT_LEN / 1024, (void *)dst, len,
	       argv[1]);
	fflush(stdout);
	for (;;) {
		size_t off = (puts * PUT_LEN) % (len / PUT_LEN * PUT_LEN);

		pthread_mutex_lock(&lock);
		stop = state != RUNNING;
		if (state == STOP_ASKED) {
			/* No put is in flight here: retire the rkey, then let the revoke go on. */
			ucp_rkey_destroy(rkey);
			rkey = NULL;
			state = STOPPED;
			pthread_cond_broadcast(&cond);
		}
		pthread_mutex_unlock(&lock);
		if (stop)
			break;
		memset(src, (int)(puts & 0xff), PUT_LEN);
		if ((st = put(ep, src, PUT_LEN, dst + off, rkey)) != UCS_OK)
			die_ucs("ucp_put_nbx", st);
		if (dst[off] != src[0] || dst[off + PUT_LEN - 1] != src[0])
			die("put", "the data did not arrive");
		if (++puts % 10000 == 0) {
			printf("%lu puts\n", puts);
			fflush(stdout);
		}
	}
	if (rkey)
		ucp_rkey_destroy(rkey);
	printf("revoked after %lu puts (%lu MiB): dropping the memory\n", puts,
	       puts * PUT_LEN >> 20);
	daxpool_ucx_mem_unmap(mem); /* the zap unmapped the handle already: drops the pin */
	daxpool_map_unref(map);

	/* Carry on with ordinary memory, allocated and mapped by UCX. */
	{
		ucp_mem_map_params_t mp = { 0 };
		ucp_mem_attr_t attr = { 0 };
		ucp_mem_h memh;

		mp.field_mask = UCP_MEM_MAP_PARAM_FIELD_LENGTH | UCP_MEM_MAP_PARAM_FIELD_FLAGS;
		mp.length = PUT_LEN;
		mp.flags = UCP_MEM_MAP_ALLOCATE;
		if ((st = ucp_mem_map(context, &mp, &memh)) != UCS_OK)
			die_ucs("ucp_mem_map", st);
		attr.field_mask = UCP_MEM_ATTR_FIELD_ADDRESS;
		if ((st = ucp_mem_query(memh, &attr)) != UCS_OK)
			die_ucs("ucp_mem_query", st);
		rkey = rkey_for(context, ep, memh);
		memset(src, 0x5a, PUT_LEN);
		if ((st = put(ep, src, PUT_LEN, attr.address, rkey)) != UCS_OK)
			die_ucs("ucp_put_nbx", st);
		if (((char *)attr.address)[PUT_LEN - 1] != 0x5a)
			die("put", "the data did not arrive");
		printf("put into ordinary memory: the application goes on\n");
		ucp_rkey_destroy(rkey);
		ucp_mem_unmap(context, memh);
	}

	close_param.op_attr_mask = UCP_OP_ATTR_FIELD_FLAGS;
	close_param.flags = UCP_EP_CLOSE_FLAG_FORCE;
	wait_request(ucp_ep_close_nbx(ep, &close_param));
	wait_request(ucp_ep_close_nbx(server_ep, &close_param));
	ucp_listener_destroy(listener);
	ucp_worker_destroy(worker);
	ucp_cleanup(context);
	free(src);
	daxpool_region_unref(region);
	daxpool_ctx_unref(ctx);
	return 0;
}
