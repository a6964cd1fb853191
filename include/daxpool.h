/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * daxpool: pin-safe memory pools on DAX memory.
 *
 * Objects are opaque and reference counted. Ownership is one-way: a map holds
 * its region, a region holds its context. Every ..._ref() returns its argument;
 * every ..._unref() accepts NULL and returns NULL, so "x = daxpool_x_unref(x);"
 * drops a reference and clears the pointer in one statement.
 *
 * Errors: functions returning int give 0 (or a non-negative count) on success
 * and a negative errno on failure. Getters of objects that cannot fail return
 * their value directly. No function prints; diagnostics go to the context's
 * log function (see daxpool_ctx_set_log_fn()). errno is preserved by logging.
 *
 * Thread safety: every function may be called from any thread unless its
 * comment says otherwise. No function takes a lock the caller can hold.
 */
#ifndef DAXPOOL_H
#define DAXPOOL_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

struct daxpool_ctx;
struct daxpool_region;
struct daxpool_map;

/* ------------------------------------------------------------------------ */
/* Library context                                                          */
/* ------------------------------------------------------------------------ */

/**
 * daxpool_ctx_new() - create a library context
 * @ret: on success, the new context with one reference
 *
 * The log priority starts at LOG_ERR, or at the value of the environment
 * variable DAXPOOL_LOG (read with secure_getenv(): a number 0-7 or one of
 * "emerg" "alert" "crit" "err" "warning" "notice" "info" "debug"). The default
 * log function writes one line per message to stderr.
 *
 * Return: 0, or -ENOMEM, or -EINVAL if @ret is NULL. *@ret is set only on
 * success.
 */
int daxpool_ctx_new(struct daxpool_ctx **ret);

/**
 * daxpool_ctx_ref() - take a reference on a context
 * @ctx: the context, or NULL
 *
 * Return: @ctx.
 */
struct daxpool_ctx *daxpool_ctx_ref(struct daxpool_ctx *ctx);

/**
 * daxpool_ctx_unref() - drop a reference on a context
 * @ctx: the context, or NULL
 *
 * The context is freed when its last reference goes. Regions hold a reference
 * on their context, so a context outlives every region opened through it.
 *
 * Return: NULL.
 */
struct daxpool_ctx *daxpool_ctx_unref(struct daxpool_ctx *ctx);

/**
 * typedef daxpool_log_fn - a log function
 * @ctx: the context that logs
 * @priority: a syslog priority, LOG_EMERG (0) to LOG_DEBUG (7)
 * @file: source file of the message
 * @line: source line of the message
 * @fn: function that logs
 * @format: printf format of the message (no trailing newline)
 * @args: its arguments
 *
 * Called from whichever thread logs, possibly several at once; it must be
 * thread-safe and must not call back into daxpool.
 */
typedef void (*daxpool_log_fn)(struct daxpool_ctx *ctx, int priority, const char *file, int line,
			       const char *fn, const char *format, va_list args);

/**
 * daxpool_ctx_set_log_fn() - replace the log function
 * @ctx: the context
 * @log_fn: the new function, or NULL to restore the default (stderr)
 *
 * Set it before the context is shared between threads.
 *
 * Return: 0, or -EINVAL if @ctx is NULL.
 */
int daxpool_ctx_set_log_fn(struct daxpool_ctx *ctx, daxpool_log_fn log_fn);

/**
 * daxpool_ctx_get_log_priority() - the current log priority
 * @ctx: the context
 *
 * Return: the priority (0-7), messages above which are dropped; or -EINVAL.
 */
int daxpool_ctx_get_log_priority(struct daxpool_ctx *ctx);

/**
 * daxpool_ctx_set_log_priority() - set the log priority
 * @ctx: the context
 * @priority: LOG_EMERG (0) to LOG_DEBUG (7)
 *
 * Return: 0, or -EINVAL for a NULL @ctx or a priority outside 0-7.
 */
int daxpool_ctx_set_log_priority(struct daxpool_ctx *ctx, int priority);

/**
 * daxpool_ctx_set_userdata() - attach an application pointer to a context
 * @ctx: the context
 * @userdata: any pointer; daxpool never dereferences it
 */
void daxpool_ctx_set_userdata(struct daxpool_ctx *ctx, void *userdata);

/**
 * daxpool_ctx_get_userdata() - the pointer set by daxpool_ctx_set_userdata()
 * @ctx: the context
 *
 * Return: the pointer, or NULL.
 */
void *daxpool_ctx_get_userdata(struct daxpool_ctx *ctx);

/* ------------------------------------------------------------------------ */
/* Regions                                                                  */
/* ------------------------------------------------------------------------ */

/**
 * enum daxpool_region_kind - what backs a region
 * @DAXPOOL_REGION_FILE: a file on a filesystem without DAX (also tmpfs): the
 *	embedded default; persistence through msync()
 * @DAXPOOL_REGION_FSDAX: a file on a filesystem mounted with DAX
 *	(statx() reports STATX_ATTR_DAX); mapped with MAP_SYNC
 * @DAXPOOL_REGION_DEVDAX: a device-dax character device (/dev/daxX.Y)
 */
enum daxpool_region_kind {
	DAXPOOL_REGION_FILE = 1,
	DAXPOOL_REGION_FSDAX = 2,
	DAXPOOL_REGION_DEVDAX = 3,
};

/**
 * enum daxpool_granularity - smallest unit a store must be flushed in
 * @DAXPOOL_GRANULARITY_BYTE: stores are persistent once globally visible
 *	(eADR: the CPU caches are in the persistence domain)
 * @DAXPOOL_GRANULARITY_CACHE_LINE: a cache-line flush and a fence persist
 *	(DAX with MAP_SYNC)
 * @DAXPOOL_GRANULARITY_PAGE: persistence needs msync() of whole pages (no DAX)
 */
enum daxpool_granularity {
	DAXPOOL_GRANULARITY_BYTE = 1,
	DAXPOOL_GRANULARITY_CACHE_LINE = 2,
	DAXPOOL_GRANULARITY_PAGE = 3,
};

/**
 * enum daxpool_state - lifecycle of a region
 * @DAXPOOL_STATE_LIVE: new maps are accepted
 * @DAXPOOL_STATE_ZAPPING: daxpool_region_zap() ran; new maps fail with
 *	-ENXIO; maps taken before the zap still exist
 * @DAXPOOL_STATE_IDLE: zapped, and no map remains
 * @DAXPOOL_STATE_RELEASED: the backing is closed (daxpool_region_release())
 *
 * The order is LIVE -> ZAPPING -> IDLE -> RELEASED. An idle region can be
 * reopened (IDLE -> LIVE) with daxpool_region_unzap_range(); RELEASED is final.
 */
enum daxpool_state {
	DAXPOOL_STATE_LIVE = 1,
	DAXPOOL_STATE_ZAPPING = 2,
	DAXPOOL_STATE_IDLE = 3,
	DAXPOOL_STATE_RELEASED = 4,
};

/* Flags for daxpool_region_open(). */
#define DAXPOOL_REGION_RDONLY (1u << 0) /* open read-only; maps are read-only */

/**
 * daxpool_region_open() - open a path as a region
 * @ctx: the context; the region takes a reference on it
 * @path: a device-dax character device, or a regular file (DAX or not)
 * @flags: 0 or DAXPOOL_REGION_RDONLY
 * @ret: on success, the region with one reference
 *
 * Finds what @path is: a character device whose sysfs subsystem is "dax" is
 * described through libdaxctl (device name, size, alignment, NUMA node); a
 * regular file is fsdax when statx() reports STATX_ATTR_DAX, a plain file
 * otherwise. The region's size is the device's or file's size when opened.
 * A region holds the backing open until it is released or freed.
 *
 * Context: may sleep (opens and reads sysfs).
 * Return: 0 on success, or
 *	-EINVAL  NULL argument, unknown flag, or an empty file;
 *	-ENOENT  @path does not exist (other open() errors are passed on);
 *	-EISDIR  @path is a directory;
 *	-ENODEV  a character device that is not device-dax;
 *	-EOPNOTSUPP  a block device, FIFO or socket (use a devdax namespace, or
 *	         a file on a DAX mount);
 *	-EMSGSIZE  smaller than one alignment unit of the backing;
 *	-ENOMEM.
 */
int daxpool_region_open(struct daxpool_ctx *ctx, const char *path, unsigned int flags,
			struct daxpool_region **ret);

/**
 * daxpool_region_ref() - take a reference on a region
 * @region: the region, or NULL
 *
 * Return: @region.
 */
struct daxpool_region *daxpool_region_ref(struct daxpool_region *region);

/**
 * daxpool_region_unref() - drop a reference on a region
 * @region: the region, or NULL
 *
 * Maps hold a reference on their region, so the region (and its backing) is
 * freed only after its last map is gone.
 *
 * Return: NULL.
 */
struct daxpool_region *daxpool_region_unref(struct daxpool_region *region);

/**
 * daxpool_region_get_ctx() - the context of a region
 * @region: the region
 *
 * Return: the context (no reference taken).
 */
struct daxpool_ctx *daxpool_region_get_ctx(struct daxpool_region *region);

/**
 * daxpool_region_get_kind() - what backs a region
 * @region: the region
 *
 * Return: an enum daxpool_region_kind, or -EINVAL for NULL.
 */
int daxpool_region_get_kind(struct daxpool_region *region);

/**
 * daxpool_region_kind_name() - a region kind as a word
 * @kind: an enum daxpool_region_kind
 *
 * Return: "file", "fsdax", "devdax", or NULL for an unknown kind.
 */
const char *daxpool_region_kind_name(int kind);

/**
 * daxpool_region_get_size() - usable size of a region in bytes
 * @region: the region
 *
 * Return: the size, or 0 for NULL.
 */
uint64_t daxpool_region_get_size(struct daxpool_region *region);

/**
 * daxpool_region_get_alignment() - mapping alignment of a region
 * @region: the region
 *
 * Map offsets and lengths must be multiples of it: the device's alignment on
 * devdax (4 KiB, 2 MiB or 1 GiB), the page size otherwise.
 *
 * Return: the alignment in bytes, or 0 for NULL.
 */
uint64_t daxpool_region_get_alignment(struct daxpool_region *region);

/**
 * daxpool_region_get_granularity() - persistence granularity of a region
 * @region: the region
 *
 * As libpmem2 reports it for a shared mapping of the region.
 *
 * Return: an enum daxpool_granularity, or -EINVAL for NULL.
 */
int daxpool_region_get_granularity(struct daxpool_region *region);

/**
 * daxpool_granularity_name() - a granularity as a word
 * @granularity: an enum daxpool_granularity
 *
 * Return: "byte", "cache-line", "page", or NULL for an unknown value.
 */
const char *daxpool_granularity_name(int granularity);

/**
 * daxpool_region_is_dax() - whether loads and stores reach the media directly
 * @region: the region
 *
 * Return: 1 for devdax and fsdax, 0 for a plain file, -EINVAL for NULL.
 */
int daxpool_region_is_dax(struct daxpool_region *region);

/**
 * daxpool_region_get_path() - the path a region was opened by
 * @region: the region
 *
 * Return: the path, valid as long as the region; NULL for NULL.
 */
const char *daxpool_region_get_path(struct daxpool_region *region);

/**
 * daxpool_region_get_devname() - the device name of a devdax region
 * @region: the region
 *
 * Return: e.g. "dax0.0" for devdax; NULL for files or NULL.
 */
const char *daxpool_region_get_devname(struct daxpool_region *region);

/**
 * daxpool_region_get_numa_node() - NUMA node of a region's memory
 * @region: the region
 *
 * Return: the node (>= 0), -ENODATA when the kernel does not say (files,
 * non-NUMA machines), -EINVAL for NULL.
 */
int daxpool_region_get_numa_node(struct daxpool_region *region);

/**
 * daxpool_region_get_state() - lifecycle state of a region
 * @region: the region
 *
 * The value can change as soon as it is returned unless the caller controls
 * every holder; IDLE and RELEASED are final for their holders.
 *
 * Return: an enum daxpool_state, or -EINVAL for NULL.
 */
int daxpool_region_get_state(struct daxpool_region *region);

/**
 * daxpool_state_name() - a state as a word
 * @state: an enum daxpool_state
 *
 * Return: "live", "zapping", "idle", "released", or NULL.
 */
const char *daxpool_state_name(int state);

/**
 * daxpool_region_get_generation() - generation number of a region
 * @region: the region
 *
 * Starts at 1 and increases each time a range of the region is zapped. Read
 * with acquire ordering: a caller that sees a generation also sees every map
 * revocation that came with it.
 *
 * Return: the generation, or 0 for NULL.
 */
uint64_t daxpool_region_get_generation(struct daxpool_region *region);

/**
 * daxpool_region_get_map_count() - number of maps that hold a region
 * @region: the region
 *
 * Return: the count (>= 0), or -EINVAL for NULL.
 */
int daxpool_region_get_map_count(struct daxpool_region *region);

/**
 * daxpool_region_zap() - stop new use of a whole region and revoke its maps
 * @region: the region
 *
 * Same as daxpool_region_zap_range(@region, 0, 0).
 *
 * Return: see daxpool_region_zap_range().
 */
int daxpool_region_zap(struct daxpool_region *region);

/**
 * daxpool_region_zap_range() - stop new use of a range and revoke its maps
 * @region: the region
 * @offset: start of the range, in bytes from the start of the region
 * @length: length of the range; 0 means up to the end of the region
 *
 * From the moment this function starts, daxpool_map_new() of any range that
 * overlaps [@offset, @offset + @length) fails with -ENXIO. Every existing map
 * that overlaps it is marked revoked (daxpool_map_is_valid() returns 0 from
 * then on) and its revoke function, if it has one, is called once. The maps
 * themselves stay mapped: memory is never pulled away from under a holder; the
 * holder is expected to drop its references (daxpool_map_unref()), after which
 * daxpool_region_wait_idle() returns. The range stays zapped until
 * daxpool_region_unzap_range() reopens it.
 *
 * Revoke functions run in the calling thread, one after the other, with no
 * daxpool lock held: they may unref their map, and they may call any daxpool
 * function except a zap or wait of the same region.
 *
 * Context: may sleep (runs revoke functions).
 * Return: the number of maps and pins revoked by this call (>= 0); -EINVAL
 * for a NULL region or a range outside the region; -ENXIO if released;
 * -ENOMEM if the range could not be recorded (nothing was revoked).
 */
int daxpool_region_zap_range(struct daxpool_region *region, uint64_t offset, uint64_t length);

/**
 * daxpool_region_wait_idle() - wait until no map holds a zapped region
 * @region: the region
 * @timeout_ms: how long to wait; 0 checks once without sleeping; -1 waits
 *	without limit
 * @ret_report: if not NULL, on -ETIMEDOUT *@ret_report is set to a
 *	malloc()ed, NUL-terminated report naming each map still held (range,
 *	owner pid and tid, tag, age), one per line; the caller frees it
 *
 * Waits on the region's condition variable: the last map going away wakes it,
 * nothing polls. A timeout also logs the report at LOG_WARNING.
 *
 * Context: may sleep. Must not be called from a revoke function.
 * Return: 0 when no map overlaps a zapped range; -ETIMEDOUT when some still do
 * at the deadline; -EINVAL for NULL or a @timeout_ms below -1; -ESRCH if
 * nothing of the region was ever zapped (a live region never becomes idle
 * on its own); -ENOMEM if the report could not be built (the wait itself
 * still timed out).
 */
int daxpool_region_wait_idle(struct daxpool_region *region, int timeout_ms, char **ret_report);

/**
 * daxpool_region_unzap_range() - reopen an idle zapped range for new maps
 * @region: the region
 * @offset: start of the range, as given to daxpool_region_zap_range()
 * @length: its length; 0 means up to the end of the region
 *
 * The end of a layout change: a range was zapped so that its contents could
 * change (a truncate, a hole punch, a pool extent freed for reuse); once it is
 * idle and the change is done, it can be mapped again. Removes every zap that
 * lies inside [@offset, @offset + @length) (all of them, and the whole-region
 * zap, when the range is the whole region) and increments the generation. Maps
 * revoked by those zaps are gone by then, so no old handle becomes valid again.
 *
 * Context: may sleep briefly (takes the region's lock).
 * Return: the number of zaps removed (0 if none lay inside the range); -EBUSY
 * if a map still overlaps the range; -ENXIO if the region is released;
 * -EINVAL for NULL or a range outside the region.
 */
int daxpool_region_unzap_range(struct daxpool_region *region, uint64_t offset, uint64_t length);

/**
 * daxpool_region_release() - close the backing of an idle region
 * @region: the region
 *
 * The last step of the lifecycle: the whole region must have been zapped and
 * be idle. The backing file or device is closed; every later operation but
 * getters and unref fails with -ENXIO.
 *
 * Return: 0; -EBUSY if the region is not zapped as a whole or a map still
 * holds it; -EALREADY if it was released before; -EINVAL for NULL.
 */
int daxpool_region_release(struct daxpool_region *region);

/* ------------------------------------------------------------------------ */
/* Maps                                                                     */
/* ------------------------------------------------------------------------ */

/* Flags for daxpool_map_new(). */
#define DAXPOOL_MAP_PRIVATE (1u << 0) /* copy-on-write (MAP_PRIVATE); refused on devdax */
#define DAXPOOL_MAP_SYNC (1u << 1)    /* require MAP_SYNC: fail with -EOPNOTSUPP without DAX */
#define DAXPOOL_MAP_RDONLY (1u << 2)  /* PROT_READ only */

/**
 * typedef daxpool_revoke_fn - called when a map's range is zapped
 * @map: the revoked map; the caller holds a reference for the call
 * @userdata: as given to daxpool_map_set_revoke_fn()
 *
 * Runs in the thread that called daxpool_region_zap_range(), with no daxpool
 * lock held; may block briefly (e.g. to quiesce I/O) and should end with the
 * holder dropping its references to @map, possibly later from another thread.
 */
typedef void (*daxpool_revoke_fn)(struct daxpool_map *map, void *userdata);

/**
 * daxpool_map_new() - map a range of a region
 * @region: the region; the map takes a reference on it
 * @offset: start of the range; a multiple of the region's alignment
 * @length: length of the range; a multiple of the region's alignment, or 0
 *	for everything from @offset to the end of the region
 * @flags: DAXPOOL_MAP_* flags
 * @ret: on success, the map with one reference
 *
 * Maps through libpmem2 as MAP_SHARED (MAP_SYNC where the region is DAX, at
 * the device's alignment on devdax) unless DAXPOOL_MAP_PRIVATE. The calling
 * process becomes the map's exclusive owner.
 *
 * Context: may sleep.
 * Return: 0 on success, or
 *	-EINVAL  NULL argument, unknown flag, unaligned @offset or @length,
 *	         DAXPOOL_MAP_PRIVATE on devdax;
 *	-EACCES  a writable map of a read-only region (use DAXPOOL_MAP_RDONLY);
 *	-ERANGE  the range runs past the end of the region;
 *	-EOPNOTSUPP  DAXPOOL_MAP_SYNC on a region that is not DAX, or that
 *	         refused MAP_SYNC;
 *	-ENXIO   the range overlaps a zapped range, or the region is released;
 *	-ENOMEM, or the mapping error of the kernel as a negative errno.
 */
int daxpool_map_new(struct daxpool_region *region, uint64_t offset, uint64_t length,
		    unsigned int flags, struct daxpool_map **ret);

/**
 * daxpool_map_ref() - take a reference on a map
 * @map: the map, or NULL
 *
 * Return: @map.
 */
struct daxpool_map *daxpool_map_ref(struct daxpool_map *map);

/**
 * daxpool_map_unref() - drop a reference on a map
 * @map: the map, or NULL
 *
 * The last reference unmaps the range, drops the map's reference on its
 * region, and wakes daxpool_region_wait_idle() if it was the last map.
 *
 * Return: NULL.
 */
struct daxpool_map *daxpool_map_unref(struct daxpool_map *map);

/**
 * daxpool_map_get_region() - the region of a map (no reference taken)
 * @map: the map
 *
 * Return: the region, or NULL for NULL.
 */
struct daxpool_region *daxpool_map_get_region(struct daxpool_map *map);

/**
 * daxpool_map_get_address() - where a map starts in this process
 * @map: the map
 *
 * Return: the address, or NULL for NULL.
 */
void *daxpool_map_get_address(struct daxpool_map *map);

/**
 * daxpool_map_get_offset() - region offset of a map
 * @map: the map
 *
 * Return: the offset in bytes (0 for NULL).
 */
uint64_t daxpool_map_get_offset(struct daxpool_map *map);

/**
 * daxpool_map_get_length() - length of a map
 * @map: the map
 *
 * Return: the length in bytes (0 for NULL).
 */
uint64_t daxpool_map_get_length(struct daxpool_map *map);

/**
 * daxpool_map_get_granularity() - persistence granularity of this mapping
 * @map: the map
 *
 * Return: an enum daxpool_granularity, or -EINVAL for NULL.
 */
int daxpool_map_get_granularity(struct daxpool_map *map);

/**
 * daxpool_map_get_owner_pid() - process that created a map
 * @map: the map
 *
 * Return: the pid, or -EINVAL for NULL.
 */
pid_t daxpool_map_get_owner_pid(struct daxpool_map *map);

/**
 * daxpool_map_is_valid() - whether a map's range is still live
 * @map: the map
 *
 * One acquire load: 0 once the range was zapped (the holder should drop the
 * map), 1 otherwise.
 *
 * Return: 1, 0, or -EINVAL for NULL.
 */
int daxpool_map_is_valid(struct daxpool_map *map);

/**
 * daxpool_map_set_revoke_fn() - set the function called when the map is zapped
 * @map: the map
 * @revoke_fn: the function, or NULL for none
 * @userdata: passed to @revoke_fn
 *
 * Setting it on a map that was already revoked does not call it; check
 * daxpool_map_is_valid() after setting.
 *
 * Return: 0, or -EINVAL for NULL @map.
 */
int daxpool_map_set_revoke_fn(struct daxpool_map *map, daxpool_revoke_fn revoke_fn, void *userdata);

/**
 * daxpool_map_set_tag() - name the holder of a map in reports
 * @map: the map
 * @tag: a short description (copied; at most 63 bytes are kept), or NULL
 *
 * Return: 0, or -EINVAL for NULL @map.
 */
int daxpool_map_set_tag(struct daxpool_map *map, const char *tag);

/**
 * daxpool_map_get_tag() - the tag set by daxpool_map_set_tag()
 * @map: the map
 *
 * Return: the tag ("" if none), valid until the next set; NULL for NULL.
 */
const char *daxpool_map_get_tag(struct daxpool_map *map);

/**
 * daxpool_map_persist() - make a range of a map persistent
 * @map: the map
 * @addr: start of the range, inside the map
 * @length: length of the range
 *
 * Flushes and drains through libpmem2: CPU cache flushes on DAX, msync() of
 * the covering pages on plain files.
 *
 * Return: 0; -EINVAL for NULL; -EFAULT if the range is not inside the map.
 */
int daxpool_map_persist(struct daxpool_map *map, const void *addr, size_t length);

/**
 * daxpool_map_flush() - start making a range persistent
 * @map: the map
 * @addr: start of the range, inside the map
 * @length: length of the range
 *
 * Only daxpool_map_drain() completes it.
 *
 * Return: 0; -EINVAL for NULL; -EFAULT if the range is not inside the map.
 */
int daxpool_map_flush(struct daxpool_map *map, const void *addr, size_t length);

/**
 * daxpool_map_drain() - wait for earlier flushes of a map to complete
 * @map: the map
 *
 * Return: 0, or -EINVAL for NULL.
 */
int daxpool_map_drain(struct daxpool_map *map);

/* Flags for daxpool_map_memcpy() and daxpool_map_memset(), as libpmem2's. */
#define DAXPOOL_COPY_NOFLUSH (1u << 0)	   /* do not flush (the caller persists later) */
#define DAXPOOL_COPY_NODRAIN (1u << 1)	   /* flush but do not drain */
#define DAXPOOL_COPY_NONTEMPORAL (1u << 2) /* prefer non-temporal stores */
#define DAXPOOL_COPY_TEMPORAL (1u << 3)	   /* prefer temporal stores */

/**
 * daxpool_map_memcpy() - copy into a map and persist
 * @map: the destination map
 * @dst: destination, inside the map
 * @src: source; must not overlap @dst
 * @length: bytes to copy
 * @flags: DAXPOOL_COPY_* flags
 *
 * Through libpmem2's memcpy function for this mapping: the data is persistent
 * on return unless NOFLUSH or NODRAIN was given.
 *
 * Return: 0; -EINVAL for NULL or an unknown flag; -EFAULT if the destination
 * is not inside the map; -EACCES on a read-only map; -ENXIO if the map was
 * revoked when the call began (nothing is copied; a zap that lands during the
 * copy does not interrupt it).
 */
int daxpool_map_memcpy(struct daxpool_map *map, void *dst, const void *src, size_t length,
		       unsigned int flags);

/**
 * daxpool_map_memset() - fill a range of a map and persist
 * @map: the map
 * @dst: start, inside the map
 * @c: the byte value
 * @length: bytes to set
 * @flags: DAXPOOL_COPY_* flags
 *
 * Return: as daxpool_map_memcpy().
 */
int daxpool_map_memset(struct daxpool_map *map, void *dst, int c, size_t length, unsigned int flags);

/* ------------------------------------------------------------------------ */
/* Pins and the pin registry                                                */
/* ------------------------------------------------------------------------ */

struct daxpool_pin;

/**
 * enum daxpool_pin_kind - how long a device may use a pinned range
 * @DAXPOOL_PIN_TRANSIENT: for the duration of one I/O (O_DIRECT, io_uring)
 * @DAXPOOL_PIN_LONGTERM: until deregistered (an RDMA memory region, an
 *	io_uring registered buffer)
 */
enum daxpool_pin_kind {
	DAXPOOL_PIN_TRANSIENT = 1,
	DAXPOOL_PIN_LONGTERM = 2,
};

/* Device access of a pin, for daxpool_pin_new(). */
#define DAXPOOL_PIN_DEVICE_READ (1u << 0)  /* the device reads the range (DMA out of memory) */
#define DAXPOOL_PIN_DEVICE_WRITE (1u << 1) /* the device writes the range (DMA into memory) */

/**
 * typedef daxpool_pin_revoke_fn - called when a pinned range is zapped
 * @pin: the revoked pin; the caller holds a reference for the call
 * @userdata: as given to daxpool_pin_set_revoke_fn()
 *
 * Runs in the thread that called daxpool_region_zap_range(), with no daxpool
 * lock held, before the revoke functions of the maps. It must stop the device
 * from using the range (deregister the MR after retiring its rkey, cancel or
 * wait for the I/O); it may block for that long. It must end, now or later
 * from any thread, with the holder dropping its references to @pin: the
 * region becomes idle only then. It may call any daxpool function except a
 * zap or wait of the same region.
 */
typedef void (*daxpool_pin_revoke_fn)(struct daxpool_pin *pin, void *userdata);

/**
 * daxpool_pin_new() - register a range of a map as pinned for device access
 * @map: the map; the pin takes a reference on it
 * @addr: start of the range, inside the map
 * @length: length of the range (> 0), inside the map
 * @kind: an enum daxpool_pin_kind
 * @access: DAXPOOL_PIN_DEVICE_READ and/or DAXPOOL_PIN_DEVICE_WRITE
 * @ret: on success, the pin with one reference
 *
 * Registers the range in the context's pin registry. A range the device
 * writes counts as dirty for the whole life of the pin: the last unref
 * persists it (daxpool_map_persist()) before the pin goes.
 *
 * Context: any thread; takes the region's lock briefly; does not sleep
 * otherwise.
 * Return: 0; -EINVAL for NULL, zero length, an unknown kind or access bit,
 * or no access bit; -EFAULT if the range is not inside the map; -EACCES for
 * a device-write pin of a read-only map; -ENXIO if the map was revoked or
 * the range is zapped; -ENOMEM.
 */
int daxpool_pin_new(struct daxpool_map *map, void *addr, size_t length, int kind,
		    unsigned int access, struct daxpool_pin **ret);

/**
 * daxpool_pin_ref() - take a reference on a pin
 * @pin: the pin, or NULL
 *
 * Return: @pin.
 */
struct daxpool_pin *daxpool_pin_ref(struct daxpool_pin *pin);

/**
 * daxpool_pin_unref() - drop a reference on a pin (unpin on the last one)
 * @pin: the pin, or NULL
 *
 * The last reference persists a device-write range, removes the pin from the
 * registry (its memory is freed after an RCU grace period, so concurrent
 * lock-free lookups stay safe), drops the pin's reference on its map, and
 * wakes a daxpool_region_wait_idle() waiting for it.
 *
 * Return: NULL.
 */
struct daxpool_pin *daxpool_pin_unref(struct daxpool_pin *pin);

/**
 * daxpool_pin_try_ref() - take a reference on a pin found by a lookup
 * @pin: a pin passed to a daxpool_pin_visit_fn
 *
 * Lookups do not take references. A visitor that wants to use the pin after
 * its visit (or its map, at all) takes one here; it fails if the pin is
 * already being unpinned.
 *
 * Return: @pin with a new reference, or NULL if it is going away.
 */
struct daxpool_pin *daxpool_pin_try_ref(struct daxpool_pin *pin);

/**
 * daxpool_pin_set_revoke_fn() - set the function called when the pin is zapped
 * @pin: the pin
 * @revoke_fn: the function, or NULL
 * @userdata: passed to @revoke_fn
 *
 * Return: 0, or -EINVAL for NULL @pin.
 */
int daxpool_pin_set_revoke_fn(struct daxpool_pin *pin, daxpool_pin_revoke_fn revoke_fn,
			      void *userdata);

/**
 * daxpool_pin_set_owner() - describe who holds a pin, for reports
 * @pin: the pin
 * @owner: a short description (copied, at most 63 bytes kept), or NULL
 *
 * Return: 0, or -EINVAL for NULL @pin.
 */
int daxpool_pin_set_owner(struct daxpool_pin *pin, const char *owner);

/**
 * daxpool_pin_get_owner() - the description set by daxpool_pin_set_owner()
 * @pin: the pin
 *
 * Return: the description ("" if none), or NULL for NULL.
 */
const char *daxpool_pin_get_owner(struct daxpool_pin *pin);

/**
 * daxpool_pin_get_map() - the map of a pin (no reference taken)
 * @pin: the pin; the caller must hold a reference on it
 *
 * Return: the map, or NULL for NULL.
 */
struct daxpool_map *daxpool_pin_get_map(struct daxpool_pin *pin);

/**
 * daxpool_pin_get_address() - start of a pinned range
 * @pin: the pin
 *
 * Return: the address, or NULL for NULL.
 */
void *daxpool_pin_get_address(struct daxpool_pin *pin);

/**
 * daxpool_pin_get_length() - length of a pinned range
 * @pin: the pin
 *
 * Return: the length, or 0 for NULL.
 */
size_t daxpool_pin_get_length(struct daxpool_pin *pin);

/**
 * daxpool_pin_get_offset() - region offset of a pinned range
 * @pin: the pin
 *
 * Return: the offset in bytes from the start of the region (0 for NULL).
 */
uint64_t daxpool_pin_get_offset(struct daxpool_pin *pin);

/**
 * daxpool_pin_get_kind() - the kind of a pin
 * @pin: the pin
 *
 * Return: an enum daxpool_pin_kind, or -EINVAL for NULL.
 */
int daxpool_pin_get_kind(struct daxpool_pin *pin);

/**
 * daxpool_pin_get_access() - the device access of a pin
 * @pin: the pin
 *
 * Return: DAXPOOL_PIN_DEVICE_* bits, or 0 for NULL.
 */
unsigned int daxpool_pin_get_access(struct daxpool_pin *pin);

/**
 * daxpool_pin_get_owner_pid() - process that made a pin
 * @pin: the pin
 *
 * Return: the pid, or -EINVAL for NULL.
 */
pid_t daxpool_pin_get_owner_pid(struct daxpool_pin *pin);

/**
 * daxpool_pin_get_age_ns() - how long a pin has existed
 * @pin: the pin
 *
 * Return: nanoseconds since daxpool_pin_new() (CLOCK_MONOTONIC), 0 for NULL.
 */
uint64_t daxpool_pin_get_age_ns(struct daxpool_pin *pin);

/**
 * daxpool_pin_is_valid() - whether a pin's range is still live
 * @pin: the pin
 *
 * One acquire load: 0 once a zap covered the pin, 1 otherwise.
 *
 * Return: 1, 0, or -EINVAL for NULL.
 */
int daxpool_pin_is_valid(struct daxpool_pin *pin);

/**
 * typedef daxpool_pin_visit_fn - called for each pin a query finds
 * @pin: the pin; valid for the call only, with no reference taken (use
 *	daxpool_pin_try_ref() to keep it or to use its map)
 * @userdata: as given to the query
 *
 * Runs inside an RCU read-side critical section: it must not block, and must
 * not unref a pin or zap a region.
 *
 * Return: 0 to continue, non-zero to stop the query.
 */
typedef int (*daxpool_pin_visit_fn)(struct daxpool_pin *pin, void *userdata);

/**
 * daxpool_ctx_lookup_pins() - which pins cover a range of addresses
 * @ctx: the context whose registry is searched
 * @addr: start of the range
 * @length: length of the range (> 0)
 * @visit: called once for each pin that overlaps the range, or NULL to count
 * @userdata: passed to @visit
 *
 * Exact: a pin is reported iff it is registered and not yet unpinned when the
 * lookup passes it. Lock-free: takes no lock and writes no shared cache line
 * (liburcu read side; entries are freed only after a grace period).
 *
 * Context: any thread, including signal handlers' callers; never sleeps.
 * Return: the number of pins visited (>= 0), or -EINVAL.
 */
int daxpool_ctx_lookup_pins(struct daxpool_ctx *ctx, const void *addr, size_t length,
			    daxpool_pin_visit_fn visit, void *userdata);

/**
 * daxpool_ctx_is_pinned() - whether any pin covers a range of addresses
 * @ctx: the context
 * @addr: start of the range
 * @length: length of the range (> 0)
 *
 * As daxpool_ctx_lookup_pins(), stopping at the first pin.
 *
 * Return: 1 or 0, or -EINVAL.
 */
int daxpool_ctx_is_pinned(struct daxpool_ctx *ctx, const void *addr, size_t length);

/**
 * daxpool_region_get_pin_count() - pins on a region, exactly
 * @region: the region
 * @kind: an enum daxpool_pin_kind, or 0 for all kinds
 *
 * One load per counter; no lock.
 *
 * Return: the count (>= 0), or -EINVAL.
 */
int daxpool_region_get_pin_count(struct daxpool_region *region, int kind);

/**
 * daxpool_region_foreach_pin() - visit every pin of a region
 * @region: the region
 * @visit: called for each pin (see daxpool_pin_visit_fn)
 * @userdata: passed to @visit
 *
 * For introspection (the daemon, daxpoolctl): runs with the region's lock
 * held, so @visit must not pin, unpin or zap on this region.
 *
 * Return: the number of pins visited, or -EINVAL.
 */
int daxpool_region_foreach_pin(struct daxpool_region *region, daxpool_pin_visit_fn visit,
			       void *userdata);

/* ------------------------------------------------------------------------ */
/* I/O helpers that pin around the I/O                                      */
/* ------------------------------------------------------------------------ */

/**
 * daxpool_map_pread() - read from a file into a map, pinned for the I/O
 * @map: the destination map
 * @fd: the file (O_DIRECT or not)
 * @dst: destination, inside the map
 * @length: bytes to read
 * @offset: file offset
 *
 * Pins [@dst, @dst + @length) TRANSIENT for device write around one pread(2)
 * (retried on EINTR); the unpin persists the range. With O_DIRECT, the usual
 * alignment rules of the file system apply.
 *
 * Context: may sleep (the I/O).
 * Return: bytes read (>= 0, short at end of file), or as daxpool_pin_new(), or
 * the negative errno of pread(2).
 */
ssize_t daxpool_map_pread(struct daxpool_map *map, int fd, void *dst, size_t length, off_t offset);

/**
 * daxpool_map_pwrite() - write from a map to a file, pinned for the I/O
 * @map: the source map
 * @fd: the file (O_DIRECT or not)
 * @src: source, inside the map
 * @length: bytes to write
 * @offset: file offset
 *
 * Pins the source TRANSIENT for device read around one pwrite(2).
 *
 * Context: may sleep (the I/O).
 * Return: bytes written, or as daxpool_pin_new(), or the negative errno of
 * pwrite(2).
 */
ssize_t daxpool_map_pwrite(struct daxpool_map *map, int fd, const void *src, size_t length,
			   off_t offset);

#ifdef __cplusplus
}
#endif

#endif /* DAXPOOL_H */
