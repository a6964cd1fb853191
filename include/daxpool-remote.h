/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * libdaxpool-remote: daxpool memory served to remote peers over RDMA
 * (rdma_cm and verbs), revoked before any drain completes.
 *
 * A server exports named ranges of daxpool maps (an extent of a pool, a
 * range of a region). A peer connects, asks for an export by name and gets a
 * grant: (address, length, rkey) it reads and writes with RDMA. On a device
 * with type-2 memory windows each grant is a window bound on the export's MR
 * (IBV_WR_BIND_MW); on one without, the server says so and registers one MR
 * per grant. Every grant is held as a daxpool pin on the export's range
 * (long-term; daxpool_pin_get_owner() says "peer ADDR:PORT rkey 0x... NAME"),
 * so when daxpool zaps the range (a release through daxpoold, a truncate, an
 * extent's free, daxpool_region_zap_range()) the pin's revoke runs in the
 * zapping thread and, for every grant of the export:
 *
 *   1. makes the rkey stop working: IBV_WR_LOCAL_INV of the window (or
 *      ibv_dereg_mr() of the grant's MR);
 *   2. tells the peer (a REVOKE message on its connection, sent after the
 *      invalidation on the same send queue, so a peer that is told can no
 *      longer reach the memory: its next operation with the old rkey fails
 *      with a remote access error);
 *   3. waits for the peer's acknowledgement (it has no operation on the
 *      grant in flight any more) or the revoke deadline, and disconnects a
 *      peer that did not answer, which ends its access: its queue pair goes
 *      to the error state;
 *   4. deallocates the window and only then drops the pin, so that the
 *      local drain goes on; the export's MR is deregistered after its last
 *      window (ibv_dereg_mr() refuses an MR with a bound window).
 *
 * The export is dead from then on: new grant requests for it are refused
 * with -ENXIO. A peer that goes away (its connection ends) loses its grants
 * the same way, without the message.
 *
 * Peers are untrusted: their messages are checked before use (a malformed
 * one disconnects the peer), they can act only on their own grants, and the
 * number of peers and of grants per peer is bounded. Nothing a peer sends
 * or fails to send crashes the application or blocks the zap beyond the
 * revoke deadline.
 *
 * On rxe (Soft-RoCE, Linux 6.1 and 6.12) a window's bounds are not enforced:
 * rxe checks an access against the whole MR, so a peer can reach the rest of
 * the export's MR through its window's rkey. Each export has an MR of its
 * own, so the reach ends at the export; see daxpool_remote(3).
 *
 * The library links librdmacm and libibverbs; libdaxpool does not.
 */
#ifndef DAXPOOL_REMOTE_H
#define DAXPOOL_REMOTE_H

#include <stddef.h>
#include <stdint.h>

#include <daxpool.h>

#ifdef __cplusplus
extern "C" {
#endif

struct daxpool_remote_server;
struct daxpool_remote_peer;
struct daxpool_remote_grant;

/**
 * enum daxpool_remote_grant_mode - what a grant is on the server's device
 * @DAXPOOL_REMOTE_WINDOW: a type-2 memory window on the export's MR
 * @DAXPOOL_REMOTE_MR: an MR of its own (a device without memory windows)
 */
enum daxpool_remote_grant_mode {
	DAXPOOL_REMOTE_WINDOW = 1,
	DAXPOOL_REMOTE_MR = 2,
};

/* Remote access of an export or a grant. */
#define DAXPOOL_REMOTE_READ (1u << 0)  /* peers may RDMA READ it */
#define DAXPOOL_REMOTE_WRITE (1u << 1) /* peers may RDMA WRITE it */

/* daxpool_remote_server_new() flags. */
#define DAXPOOL_REMOTE_SERVER_NO_WINDOWS (1u << 0) /* one MR per grant even where windows exist */

/**
 * typedef daxpool_remote_log_fn - where a server or peer logs
 * @priority: a syslog priority (LOG_ERR ... LOG_DEBUG)
 * @msg: the message, without a newline
 * @userdata: as given to the setter
 *
 * Called from any of the object's threads (its own, or a zapping thread),
 * with the object's lock held: it must not call back into the object.
 * Without a log function nothing is printed, unless DAXPOOL_LOG (read with
 * secure_getenv(), "err", "info", "debug" or a number) asks for stderr.
 */
typedef void (*daxpool_remote_log_fn)(int priority, const char *msg, void *userdata);

/* ---- the server ---- */

/**
 * daxpool_remote_server_new() - listen for peers on an address
 * @addr: the local address to listen on (numeric IPv4 or IPv6): it picks the
 *	RDMA device, whose protection domain every export and peer uses
 * @service: the port, "0" for any (daxpool_remote_server_get_port())
 * @flags: 0 or DAXPOOL_REMOTE_SERVER_NO_WINDOWS
 * @ret: on success, the server; its thread already accepts peers
 *
 * Probes the device once: type-2 memory windows or one MR per grant
 * (daxpool_remote_server_get_grant_mode() says which and why).
 *
 * Context: any thread; may sleep. Starts a thread of its own.
 * Return: 0; -EINVAL for NULL or unknown flags; -ENODEV when no RDMA device
 * has @addr (or rdma_cm is not available: no /dev/infiniband/rdma_cm);
 * -EADDRINUSE; -ENOMEM; or the negative errno of the rdma_cm call that failed.
 */
int daxpool_remote_server_new(const char *addr, const char *service, unsigned int flags,
			      struct daxpool_remote_server **ret);

/**
 * daxpool_remote_server_free() - disconnect every peer, drop every export, stop
 * @srv: the server, or NULL
 *
 * Revokes every grant as a zap would (the peers are told and acknowledge or
 * are disconnected after the revoke deadline), deregisters the exports' MRs,
 * drops their pins and stops the thread.
 *
 * Context: not from a log function; may sleep up to the revoke deadline.
 * Return: NULL.
 */
struct daxpool_remote_server *daxpool_remote_server_free(struct daxpool_remote_server *srv);

/**
 * daxpool_remote_server_set_log_fn() - set the server's log function
 * @srv: the server
 * @log_fn: the function, or NULL for none
 * @userdata: passed to @log_fn
 *
 * Return: 0, or -EINVAL for NULL @srv.
 */
int daxpool_remote_server_set_log_fn(struct daxpool_remote_server *srv,
				     daxpool_remote_log_fn log_fn, void *userdata);

/**
 * daxpool_remote_server_get_port() - the port the server listens on
 * @srv: the server
 *
 * Return: the port (> 0), or -EINVAL for NULL.
 */
int daxpool_remote_server_get_port(struct daxpool_remote_server *srv);

/**
 * daxpool_remote_server_get_grant_mode() - windows or one MR per grant, and why
 * @srv: the server
 * @ret_reason: if not NULL, a sentence on what the device reports (valid as
 *	long as @srv)
 *
 * Return: an enum daxpool_remote_grant_mode, or -EINVAL for NULL @srv.
 */
int daxpool_remote_server_get_grant_mode(struct daxpool_remote_server *srv,
					 const char **ret_reason);

/**
 * daxpool_remote_server_set_revoke_timeout() - how long a revoke waits for a peer
 * @srv: the server
 * @timeout_ms: milliseconds (> 0; default 2000) a revoke waits for the peers'
 *	acknowledgements before it disconnects those that did not answer
 *
 * Return: 0, or -EINVAL.
 */
int daxpool_remote_server_set_revoke_timeout(struct daxpool_remote_server *srv, int timeout_ms);

/**
 * daxpool_remote_server_export() - offer a range of a map to peers under a name
 * @srv: the server
 * @name: 1 to 39 bytes, unique among the server's exports
 * @map: the map (for a pool's extent, a map of its range); the export holds
 *	it through its pin
 * @addr: start of the range, inside @map
 * @length: length of the range (> 0)
 * @access: DAXPOOL_REMOTE_READ and/or DAXPOOL_REMOTE_WRITE: the most a
 *	grant of it may allow
 *
 * With windows, registers the range as the export's MR with
 * daxpool_rdma_reg_mr() (so an fsdax range without on-demand paging is
 * refused with its reason); with one MR per grant, holds a long-term pin of
 * it (each grant registers its own MR). Sets the pin's revoke function: a zap of the range revokes every grant of the
 * export as described at the top of this header.
 *
 * Context: any thread but a log function; may sleep (the registration).
 * Return: 0; -EINVAL (NULL, a bad name, no or unknown access bits);
 * -EEXIST (the name is taken); -ENXIO (the range is zapped); as
 * daxpool_rdma_reg_mr(); -ENOMEM.
 */
int daxpool_remote_server_export(struct daxpool_remote_server *srv, const char *name,
				 struct daxpool_map *map, void *addr, size_t length,
				 unsigned int access);

/**
 * daxpool_remote_server_get_peer_count() - peers connected now
 * @srv: the server
 *
 * Return: the count (>= 0), or -EINVAL for NULL.
 */
int daxpool_remote_server_get_peer_count(struct daxpool_remote_server *srv);

/**
 * daxpool_remote_server_get_grant_count() - grants held by peers now
 * @srv: the server
 * @name: an export's name, or NULL for all exports
 *
 * Return: the count (>= 0), -ENOENT for an unknown export, -EINVAL for NULL
 * @srv.
 */
int daxpool_remote_server_get_grant_count(struct daxpool_remote_server *srv, const char *name);

/**
 * daxpool_remote_server_get_last_revoke() - what the last revoke of an export took
 * @srv: the server
 * @name: the export's name
 * @ret_invalidated_ns: time from the revoke's start until every rkey of the
 *	export stopped working (the local invalidations completed), or NULL
 * @ret_done_ns: time from its start until every grant's pin was dropped
 *	(acknowledged or disconnected), or NULL
 *
 * Return: the number of peers the revoke disconnected (>= 0); -ENOENT for an
 * unknown export; -EAGAIN if it was not revoked; -EINVAL for NULL.
 */
int daxpool_remote_server_get_last_revoke(struct daxpool_remote_server *srv, const char *name,
					  uint64_t *ret_invalidated_ns, uint64_t *ret_done_ns);

/* ---- peers ---- */

/**
 * typedef daxpool_remote_revoke_fn - called when the server revoked a grant
 * @grant: the grant; its rkey no longer works
 * @userdata: as given to daxpool_remote_peer_set_revoke_fn()
 *
 * Runs in the peer's thread. It should stop posting to the grant; the
 * acknowledgement goes to the server when it returns and no
 * daxpool_remote_grant_read() or _write() on the grant is in flight. A
 * function that takes longer than the server's revoke deadline gets the
 * peer disconnected. It may call daxpool_remote_grant_is_revoked() and the
 * getters, nothing else of this library.
 */
typedef void (*daxpool_remote_revoke_fn)(struct daxpool_remote_grant *grant, void *userdata);

/**
 * daxpool_remote_peer_connect() - connect to a server
 * @addr: the server's address (numeric)
 * @service: its port
 * @src_addr: the local address to connect from (picks the RDMA device), or
 *	NULL to let rdma_cm choose
 * @timeout_ms: for each step of the connection (> 0)
 * @ret: on success, the peer; its thread already runs
 *
 * Context: any thread; may sleep. Starts a thread of its own.
 * Return: 0; -EINVAL; -ENODEV (no RDMA device for the address, or no
 * rdma_cm); -ETIMEDOUT; -ECONNREFUSED (the server refused: it has as many
 * peers as it takes, or nobody listens); -ENOMEM; or the negative errno of
 * the rdma_cm call that failed.
 */
int daxpool_remote_peer_connect(const char *addr, const char *service, const char *src_addr,
				int timeout_ms, struct daxpool_remote_peer **ret);

/**
 * daxpool_remote_peer_free() - disconnect and free a peer
 * @peer: the peer, or NULL
 *
 * Its grants must have been released (daxpool_remote_grant_release());
 * those left are released here. Not from a revoke function.
 *
 * Return: NULL.
 */
struct daxpool_remote_peer *daxpool_remote_peer_free(struct daxpool_remote_peer *peer);

/**
 * daxpool_remote_peer_set_log_fn() - set the peer's log function
 * @peer: the peer
 * @log_fn: the function, or NULL
 * @userdata: passed to @log_fn
 *
 * Return: 0, or -EINVAL for NULL @peer.
 */
int daxpool_remote_peer_set_log_fn(struct daxpool_remote_peer *peer,
				   daxpool_remote_log_fn log_fn, void *userdata);

/**
 * daxpool_remote_peer_set_revoke_fn() - be told when a grant is revoked
 * @peer: the peer
 * @revoke_fn: the function, or NULL
 * @userdata: passed to @revoke_fn
 *
 * Return: 0, or -EINVAL for NULL @peer.
 */
int daxpool_remote_peer_set_revoke_fn(struct daxpool_remote_peer *peer,
				      daxpool_remote_revoke_fn revoke_fn, void *userdata);

/**
 * daxpool_remote_peer_is_connected() - whether the connection still works
 * @peer: the peer
 *
 * Return: 1, 0 once it ended (the server disconnected, an operation failed
 * and put the queue pair in the error state), -EINVAL for NULL.
 */
int daxpool_remote_peer_is_connected(struct daxpool_remote_peer *peer);

/**
 * daxpool_remote_peer_get_grant() - ask the server for an export
 * @peer: the peer
 * @name: the export's name
 * @access: DAXPOOL_REMOTE_READ and/or DAXPOOL_REMOTE_WRITE
 * @timeout_ms: how long to wait for the answer (> 0)
 * @ret: on success, the grant
 *
 * Context: any thread but the peer's (a revoke function); one request at a
 * time per peer (others wait their turn).
 * Return: 0; the server's refusal: -ENOENT (no such export), -ENXIO (it is
 * being revoked or was), -EACCES (more access than the export allows),
 * -EDQUOT (the peer holds as many grants as the server allows), or the
 * errno of the registration; -ETIMEDOUT; -ENOTCONN; -EINVAL; -ENOMEM.
 */
int daxpool_remote_peer_get_grant(struct daxpool_remote_peer *peer, const char *name,
				  unsigned int access, int timeout_ms,
				  struct daxpool_remote_grant **ret);

/**
 * daxpool_remote_grant_release() - give a grant back and free it
 * @grant: the grant, or NULL
 *
 * Tells the server (which invalidates the window and drops its pin) unless
 * the grant was revoked. Not from a revoke function, nor while an operation
 * on it runs in another thread.
 *
 * Return: 0, or -EINVAL.
 */
int daxpool_remote_grant_release(struct daxpool_remote_grant *grant);

/* The grant's fields as the server sent them; 0 or NULL for a NULL @grant. */
uint64_t daxpool_remote_grant_get_address(struct daxpool_remote_grant *grant);
uint64_t daxpool_remote_grant_get_length(struct daxpool_remote_grant *grant);
uint32_t daxpool_remote_grant_get_rkey(struct daxpool_remote_grant *grant);
const char *daxpool_remote_grant_get_name(struct daxpool_remote_grant *grant);
/* An enum daxpool_remote_grant_mode, or -EINVAL for NULL. */
int daxpool_remote_grant_get_mode(struct daxpool_remote_grant *grant);

/**
 * daxpool_remote_grant_is_revoked() - whether the server revoked the grant
 * @grant: the grant
 *
 * Return: 1 once the server's REVOKE arrived or the connection ended, else
 * 0; -EINVAL for NULL.
 */
int daxpool_remote_grant_is_revoked(struct daxpool_remote_grant *grant);

/* daxpool_remote_grant_read() and _write() flags. */
/*
 * Post the operation even when the grant is known to be revoked or the range
 * lies outside it: the server's device then decides (a check of what the
 * device enforces; the connection does not survive a refused operation).
 */
#define DAXPOOL_REMOTE_IO_UNCHECKED (1u << 0)

/**
 * daxpool_remote_grant_write() - RDMA WRITE into a grant, and wait for it
 * @grant: the grant
 * @offset: where in the grant
 * @buf: the data (copied through the peer's own registered buffer)
 * @length: bytes (> 0)
 * @flags: 0 or DAXPOOL_REMOTE_IO_UNCHECKED
 *
 * Context: any thread but the peer's; operations of one peer run one at a
 * time. Return: 0 once the server's device acknowledged the data;
 * -ENXIO (the grant is revoked: nothing posted); -ERANGE (outside the
 * grant); -EACCES (the server's device refused the rkey: remote access
 * error); -ECONNRESET (the connection ended); -ETIMEDOUT (no completion in
 * 30 s); -EINVAL.
 */
int daxpool_remote_grant_write(struct daxpool_remote_grant *grant, uint64_t offset,
			       const void *buf, size_t length, unsigned int flags);

/**
 * daxpool_remote_grant_read() - RDMA READ from a grant, and wait for it
 * @grant: the grant
 * @offset: where in the grant
 * @buf: where the data goes
 * @length: bytes (> 0)
 * @flags: 0 or DAXPOOL_REMOTE_IO_UNCHECKED
 *
 * Context and return: as daxpool_remote_grant_write().
 */
int daxpool_remote_grant_read(struct daxpool_remote_grant *grant, uint64_t offset, void *buf,
			      size_t length, unsigned int flags);

#ifdef __cplusplus
}
#endif

#endif /* DAXPOOL_REMOTE_H */
