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
 *
 * fork(): handles belong to the process that made them. In a child, every
 * handle inherited from the parent is foreign: each function that acts on
 * one (or on anything under an inherited context) fails with -ESTALE at the
 * cost of one comparison, ..._ref() and ..._unref() of one do nothing, and
 * getters of plain values still answer. The child makes its own context for
 * its own regions, maps and pins. See daxpool_ctx_set_fork_protection().
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

/**
 * enum daxpool_fork_protection - keeping pinned private memory out of children
 * @DAXPOOL_FORK_PROTECT_AUTO: protect only where the running kernel does not
 *	copy pinned pages into the child at fork itself (detected once, through
 *	the RDMA core's copy-on-fork report; Debian's 6.1 and 6.12 copy them)
 * @DAXPOOL_FORK_PROTECT_ALWAYS: always protect
 * @DAXPOOL_FORK_PROTECT_NEVER: never protect
 *
 * Only private maps (DAXPOOL_MAP_PRIVATE) can have their pinned pages moved
 * by copy-on-write after a fork; shared maps (all DAX memory) never. A
 * protected private map is marked MADV_DONTFORK while it carries pins (a
 * child that touches that range gets SIGSEGV: the child must not use its
 * parent's DMA targets) and MADV_DOFORK again after its last pin.
 */
enum daxpool_fork_protection {
	DAXPOOL_FORK_PROTECT_AUTO = 0,
	DAXPOOL_FORK_PROTECT_ALWAYS = 1,
	DAXPOOL_FORK_PROTECT_NEVER = 2,
};

/**
 * daxpool_ctx_set_fork_protection() - choose how pinned private maps survive fork()
 * @ctx: the context
 * @mode: an enum daxpool_fork_protection
 *
 * Applies to pins made from then on.
 *
 * Return: 0; -EINVAL for NULL or an unknown mode; -ESTALE in a child.
 */
int daxpool_ctx_set_fork_protection(struct daxpool_ctx *ctx, int mode);

/**
 * daxpool_ctx_get_fork_protection() - whether pinned private maps are protected
 * @ctx: the context
 *
 * Return: 1 if new pins of private maps mark them MADV_DONTFORK, 0 if not;
 * -EINVAL for NULL; -ESTALE in a child.
 */
int daxpool_ctx_get_fork_protection(struct daxpool_ctx *ctx);

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
 * daxpool_region_get_namespace() - the libnvdimm namespace under a devdax region
 * @region: the region
 *
 * Found at open from sysfs (libndctl): the namespace whose device-dax
 * instance the region's device is.
 *
 * Return: e.g. "namespace1.0"; NULL for files, for a device-dax device that
 * is no namespace's (hmem), or NULL.
 */
const char *daxpool_region_get_namespace(struct daxpool_region *region);

/**
 * daxpool_region_get_memmap() - where a devdax namespace keeps its struct pages
 * @region: the region
 *
 * Return: "mem" (in system RAM: ndctl --map=mem), "dev" (on the device
 * itself: --map=dev), or NULL when not known (see
 * daxpool_region_get_namespace()).
 */
const char *daxpool_region_get_memmap(struct daxpool_region *region);

/**
 * daxpool_region_is_cxl() - whether a devdax region is CXL memory
 * @region: the region
 *
 * A device-dax device on a CXL persistent-memory region (cxl-cli's
 * create-region -t pmem, then ndctl create-namespace -m devdax on it) is
 * found at open by walking the device to its libnvdimm namespace and region
 * (libndctl, libdaxctl) and that region to the CXL region with the same host
 * physical range (libcxl). Nothing is claimed that sysfs does not show: when
 * the return is not 1, daxpool_region_get_cxl_why() says why.
 *
 * Return: 1 on a CXL region (the daxpool_region_get_cxl_*() functions
 * describe it); 0 not (e.g. an NVDIMM's namespace); -ENODATA not a devdax
 * region; -ENODEV a device-dax device that is no libnvdimm namespace's, so
 * nothing is known; -EOPNOTSUPP libdaxpool was built without libcxl; -EINVAL
 * for NULL.
 */
int daxpool_region_is_cxl(struct daxpool_region *region);

/**
 * daxpool_region_get_cxl_why() - why a region is not described as CXL memory
 * @region: the region
 *
 * Return: a sentence ("dax0.0 is on region0 of libnvdimm bus ACPI.NFIT,
 * which is no CXL region's"); NULL when daxpool_region_is_cxl() is 1 or
 * @region is NULL.
 */
const char *daxpool_region_get_cxl_why(struct daxpool_region *region);

/**
 * daxpool_region_get_cxl_region() - the CXL region under a devdax region
 * @region: the region
 *
 * Return: its name under /sys/bus/cxl/devices, e.g. "region1"; NULL unless
 * daxpool_region_is_cxl() is 1.
 */
const char *daxpool_region_get_cxl_region(struct daxpool_region *region);

/**
 * daxpool_region_get_cxl_decoder() - the root decoder of the CXL region
 * @region: the region
 *
 * Return: e.g. "decoder0.0" (the CXL fixed memory window the region is
 * carved from); NULL unless daxpool_region_is_cxl() is 1.
 */
const char *daxpool_region_get_cxl_decoder(struct daxpool_region *region);

/**
 * daxpool_region_get_cxl_memdevs() - the CXL memory devices behind a region
 * @region: the region
 *
 * Return: their names in interleave position order, separated by one space
 * ("mem0", "mem0 mem1"); NULL unless daxpool_region_is_cxl() is 1.
 */
const char *daxpool_region_get_cxl_memdevs(struct daxpool_region *region);

/**
 * daxpool_region_get_cxl_interleave() - the interleave of the CXL region
 * @region: the region
 * @ret_ways: the number of interleave ways (may be NULL)
 * @ret_granularity: the interleave granularity in bytes (may be NULL)
 *
 * Return: 0; -ENODATA unless daxpool_region_is_cxl() is 1; -EINVAL for NULL.
 */
int daxpool_region_get_cxl_interleave(struct daxpool_region *region, unsigned int *ret_ways,
				      unsigned int *ret_granularity);

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
 * daxpool_region_is_dead() - whether a region's backing went away
 * @region: the region
 *
 * Set when one of daxpool's guarded accesses faulted (see
 * daxpool_map_memcpy()): the device was disabled or the file truncated
 * without daxpool; or daxpoold reported the device gone (removed or unbound
 * without a release through it: see "Daemon client" below). New maps and
 * pins fail with -ENXIO; the holders should drop theirs, soon: a dead
 * device-dax region closes its descriptor as soon as no map holds it,
 * because a descriptor from before a disable that is closed after the device
 * was enabled again upsets the kernel (6.12 unregisters the new device node;
 * 6.1 corrupts its inode list). Final.
 *
 * Return: 1 or 0; -EINVAL for NULL; -ESTALE in a child.
 */
int daxpool_region_is_dead(struct daxpool_region *region);

/**
 * enum daxpool_lease_state - whether daxpool watches a file region's file
 * @DAXPOOL_LEASE_NONE: nothing to watch: a devdax region, or a read-only one
 * @DAXPOOL_LEASE_OFF: leases are turned off for the context
 *	(daxpool_ctx_set_leases(), or DAXPOOL_LEASES=0 in the environment)
 * @DAXPOOL_LEASE_HELD: daxpool holds a write lease (F_SETLEASE) on the
 *	region's file: when another process opens or truncates the file, the
 *	kernel makes it wait while daxpool zaps the whole region, waits for its
 *	maps and pins to drain, then gives the lease up so the other process
 *	goes on. The region stays zapped (state BROKEN).
 * @DAXPOOL_LEASE_REFUSED: the kernel refused the lease (the reason from
 *	daxpool_region_get_lease()): the file is open elsewhere (-EAGAIN),
 *	the caller does not own it (-EACCES), leases are disabled in
 *	/proc/sys/fs/leases-enable or unsupported by the filesystem. Another
 *	process can then change the file under the region's pins unnoticed.
 * @DAXPOOL_LEASE_YIELDED: given up for a change made through daxpoold (a
 *	routed truncate or hole punch) and taken again when it ends
 * @DAXPOOL_LEASE_BROKEN: given up to another process, as described above
 */
enum daxpool_lease_state {
	DAXPOOL_LEASE_NONE = 0,
	DAXPOOL_LEASE_OFF = 1,
	DAXPOOL_LEASE_HELD = 2,
	DAXPOOL_LEASE_REFUSED = 3,
	DAXPOOL_LEASE_YIELDED = 4,
	DAXPOOL_LEASE_BROKEN = 5,
};

/**
 * daxpool_ctx_set_leases() - whether new file regions take a write lease
 * @ctx: the context
 * @enable: 1 (the default, unless DAXPOOL_LEASES=0 is in the environment
 *	when the context is made) or 0
 *
 * Applies to regions opened afterwards. A read-write region on a regular
 * file takes a write lease when it is opened, where the kernel grants one
 * (the file must be open nowhere else, and owned by the caller or the caller
 * must have CAP_LEASE); the lease is signalled to a thread of daxpool's own
 * that blocks the signal, so the application's signal handling is untouched.
 * The lease is tied to the region's file descriptor: a second
 * daxpool_region_open() of the same file in this process gives it up first
 * (two opens cannot hold one). Pools keep it (their locks use the region's
 * own descriptor). Another daxpool process
 * that opens the file is not an outsider: it asks the holder first, which
 * gives the lease up without revoking anything. An open(2) or truncate(2) of
 * the file by this same process outside daxpool is an outsider's: if the
 * thread that makes it holds the region's maps, the drain waits for them
 * until just before the kernel's lease-break time.
 *
 * Return: 0, or -EINVAL for NULL or an @enable other than 0 or 1.
 */
int daxpool_ctx_set_leases(struct daxpool_ctx *ctx, int enable);

/**
 * daxpool_region_get_lease() - the state of a region's file lease
 * @region: the region
 * @ret_error: if not NULL, set to 0, or for DAXPOOL_LEASE_REFUSED to the
 *	negative errno the kernel gave
 *
 * After a break (DAXPOOL_LEASE_BROKEN) the region stays zapped until the
 * application calls daxpool_region_unzap_range(@region, 0, 0) once the other
 * process is done (idle first: daxpool_region_wait_idle());
 * the unzap takes the lease again if the kernel grants it.
 *
 * Return: an enum daxpool_lease_state; -EINVAL for NULL; -ESTALE in a child.
 */
int daxpool_region_get_lease(struct daxpool_region *region, int *ret_error);

/**
 * daxpool_region_get_lease_breaks() - how often the lease went to an outsider
 * @region: the region
 *
 * Return: the number of lease breaks handled since the region was opened,
 * 0 for NULL.
 */
uint64_t daxpool_region_get_lease_breaks(struct daxpool_region *region);

/**
 * daxpool_lease_state_name() - a lease state as a word
 * @state: an enum daxpool_lease_state
 *
 * Return: "none", "off", "held", "refused", "yielded", "broken", or NULL.
 */
const char *daxpool_lease_state_name(int state);

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
 * daxpool_region_get_first() - the first region of a context
 * @ctx: the context
 *
 * Enumeration in the libdaxctl style, safe against other threads: each
 * region it gives comes with a new reference, and daxpool_region_get_next()
 * drops it while it takes the next one, so a loop to the end leaves nothing
 * to release. A loop that stops early unrefs the region it stopped at. The
 * regions opened and freed by other threads meanwhile may or may not be
 * seen; none is seen twice, and a region being freed is never returned.
 *
 * Context: any thread but a daxpool_pin_visit_fn (it may run with a region's
 * lock held, and the list lock comes first; see there); takes the context's
 * region list lock briefly.
 * Also from revoke and log functions: daxpool holds no lock around them.
 * Return: a region with a new reference, or NULL (none, NULL @ctx, or a
 * child of fork(): the parent's regions are not the child's).
 */
struct daxpool_region *daxpool_region_get_first(struct daxpool_ctx *ctx);

/**
 * daxpool_region_get_next() - the region after @region, and @region unrefed
 * @region: a region from daxpool_region_get_first() or _get_next(); the
 *	caller's reference to it is dropped
 *
 * Context: as daxpool_region_get_first(); may free @region (if the
 * caller's was its last reference).
 * Return: the next region with a new reference, or NULL at the end.
 */
struct daxpool_region *daxpool_region_get_next(struct daxpool_region *region);

/* Visit every region of @ctx; a loop left with break must unref @region. */
#define daxpool_region_foreach(ctx, region)                                                        \
	for ((region) = daxpool_region_get_first(ctx); (region);                                  \
	     (region) = daxpool_region_get_next(region))

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
 * nothing polls. A wait that times out (@timeout_ms not 0) also logs the
 * report at LOG_WARNING; a check (@timeout_ms 0) logs nothing and builds the
 * report only for @ret_report.
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
 * idle and the change is done, it can be mapped again. Removes every zap of
 * the application's (made with daxpool_region_zap_range(), by a lease break,
 * or for a daxpoold request) that lies inside [@offset, @offset + @length)
 * (all of them, and the whole-region zap, when the range is the whole region)
 * and increments the generation. The zaps daxpool's own operations hold while
 * they run (a truncate or hole punch draining its range, an extent being
 * freed) are theirs: they stay, and those operations never remove the
 * application's. Maps revoked by those zaps are gone by then, so no old
 * handle becomes valid again.
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
 * Return: 0; -EBUSY if the region is not zapped as a whole, a map still
 * holds it, or a daxpool_region_truncate() or daxpool_region_punch_hole() of
 * another thread is changing its file (then nothing changes: try again once
 * it returns); -EALREADY if it was released before; -EINVAL for NULL.
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
 * daxpool_map_is_exclusive() - whether this process owns a map outright
 * @map: the map
 *
 * The exclusive-owner bit: set for the process that made the map; a child
 * that inherited the handle across fork() sees 0 (one comparison, nothing
 * walked), whatever the parent does.
 *
 * Return: 1 or 0, or -EINVAL for NULL.
 */
int daxpool_map_is_exclusive(struct daxpool_map *map);

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
 * daxpool_ctx_find_map() - the map of this context that holds a range of addresses
 * @ctx: the context
 * @addr: start of the range
 * @length: its length (> 0)
 * @ret: on success, the map with a new reference
 *
 * For code that is handed addresses, not maps (a registration cache, a
 * memory monitor): finds a live map (not revoked) of a region of @ctx that
 * contains all of [@addr, @addr + @length). A map being freed is never
 * returned. Walks the context's regions and their maps under their locks:
 * linear in the number of maps.
 *
 * Context: any thread, also with locks of the caller's held: takes only
 * daxpool's own locks, briefly, and never calls out.
 * Return: 0; -ENOENT if no live map contains the range (-ENXIO if only a
 * revoked one does); -EINVAL for NULL or zero length; -ESTALE in a child.
 */
int daxpool_ctx_find_map(struct daxpool_ctx *ctx, const void *addr, size_t length,
			 struct daxpool_map **ret);

/**
 * daxpool_map_get_first() - the first map of a region
 * @region: the region
 *
 * Enumeration in the libdaxctl style, as daxpool_region_get_first(): each
 * map comes with a new reference, which daxpool_map_get_next() drops. Every
 * published map of the region is given, the revoked ones too (check
 * daxpool_map_is_valid()); one being made or freed meanwhile is not.
 *
 * Context: any thread; takes the region's lock briefly (not from a
 * daxpool_pin_visit_fn).
 * Return: a map with a new reference, or NULL (none, NULL @region, or a
 * child of fork()).
 */
struct daxpool_map *daxpool_map_get_first(struct daxpool_region *region);

/**
 * daxpool_map_get_next() - the map after @map of its region, and @map unrefed
 * @map: a map from daxpool_map_get_first() or _get_next(); the caller's
 *	reference to it is dropped
 *
 * Context: as daxpool_map_get_first(); may unmap @map (if the caller's was
 * its last reference).
 * Return: the next map with a new reference, or NULL at the end.
 */
struct daxpool_map *daxpool_map_get_next(struct daxpool_map *map);

/* Visit every map of @region; a loop left with break must unref @map. */
#define daxpool_map_foreach(region, map)                                                           \
	for ((map) = daxpool_map_get_first(region); (map); (map) = daxpool_map_get_next(map))

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

/**
 * daxpool_map_read() - copy out of a map, surviving a mapping that went away
 * @map: the source map
 * @dst: destination (ordinary memory)
 * @src: source, inside the map
 * @length: bytes to copy
 *
 * A plain load from a mapping that the kernel tore down (a devdax device
 * disabled behind daxpool's back, a file truncated by another process, a
 * memory error) kills the process with SIGBUS. This copy does not: see the
 * guard described at daxpool_map_memcpy().
 *
 * Return: 0; -EFAULT if the source is not inside the map; -ENXIO if the
 * mapping went away (the region is then dead: daxpool_region_is_dead());
 * -EIO on a memory error; -EINVAL for NULL.
 */
int daxpool_map_read(struct daxpool_map *map, void *dst, const void *src, size_t length);

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
 * The copy, fill, read and persist helpers run under a SIGBUS guard: if the
 * mapping goes away under them (the device was disabled, the file truncated
 * by someone else, a memory error), they return -ENXIO (or -EIO for a memory
 * error) instead of the process being killed, and the region is marked dead:
 * new maps and pins of it fail with -ENXIO. The guard's handler is installed
 * the first time a helper runs and passes every other SIGBUS on to the
 * handler that was there before (or to the default action). A handler the
 * application installs afterwards replaces it.
 *
 * Return: 0; -EINVAL for NULL or an unknown flag; -EFAULT if the destination
 * is not inside the map; -EACCES on a read-only map; -ENXIO if the map was
 * revoked when the call began (nothing is copied; a zap that lands during the
 * copy does not interrupt it), or if the mapping went away (the region is
 * then dead); -EIO on a memory error.
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
 * The last reference stops the device (an I/O helper's MR is deregistered,
 * its io_uring buffer unregistered), then persists a device-write range,
 * removes the pin from the registry (its memory is freed after an RCU grace
 * period by a thread of daxpool's own, so concurrent lock-free lookups stay
 * safe), drops the pin's reference on its map, and wakes a
 * daxpool_region_wait_idle() waiting for it.
 *
 * Context: any thread, also inside the application's own urcu-bp read-side
 * section: it never waits for a grace period. Takes the region's lock
 * briefly; the I/O helpers' release waits for the device.
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
 * Return: 0, -EINVAL for NULL @pin, or -ENOMEM.
 */
int daxpool_pin_set_revoke_fn(struct daxpool_pin *pin, daxpool_pin_revoke_fn revoke_fn,
			      void *userdata);

/**
 * daxpool_pin_set_owner() - describe who holds a pin, for reports
 * @pin: the pin
 * @owner: a short description (copied, at most 63 bytes kept), or NULL
 *
 * Return: 0, -EINVAL for NULL @pin, or -ENOMEM.
 */
int daxpool_pin_set_owner(struct daxpool_pin *pin, const char *owner);

/**
 * daxpool_pin_get_owner() - the description set by daxpool_pin_set_owner()
 * @pin: the pin
 *
 * The string is the pin's own, valid while the caller holds a reference to
 * the pin and no daxpool_pin_set_owner() of it runs (the description is
 * rewritten in place). A thread that may race a set_owner() uses
 * daxpool_pin_copy_owner() instead; a pin visitor of
 * daxpool_region_foreach_pin() may use this one (it runs under the lock
 * set_owner() takes).
 *
 * Return: the description ("" if none), or NULL for NULL.
 */
const char *daxpool_pin_get_owner(struct daxpool_pin *pin);

/**
 * daxpool_pin_copy_owner() - copy the description set by daxpool_pin_set_owner()
 * @pin: the pin; the caller holds a reference
 * @buf: where to copy it, NUL-terminated and truncated to @size
 * @size: size of @buf (0: nothing is written, the length is still returned)
 *
 * The copy is taken under the lock set_owner() takes, so it is one whole
 * description, whatever other threads do.
 *
 * Context: takes the region's lock, so not from a pin visitor (it may run
 * under that lock); a revoke function may call it.
 * Return: the length of the description (as snprintf(): a value >= @size
 * means it was truncated), or -EINVAL for NULL @pin, or NULL @buf with
 * @size > 0.
 */
int daxpool_pin_copy_owner(struct daxpool_pin *pin, char *buf, size_t size);

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
 * From daxpool_ctx_lookup_pins() and daxpool_ctx_is_pinned() it runs inside
 * an RCU read-side critical section, where it must not block; from
 * daxpool_region_foreach_pin() it runs with that region's lock held. So it
 * may call only these, which take no lock, never sleep and free nothing:
 *
 * - the getters of the pin, its map and region: daxpool_pin_get_map(),
 *   _address(), _length(), _offset(), _kind(), _access(), _owner(),
 *   _owner_pid(), _age_ns(), _mr(), daxpool_pin_is_valid();
 *   daxpool_map_get_region(), _address(), _offset(), _length(),
 *   _granularity(), _owner_pid(), _tag(), daxpool_map_is_valid();
 *   daxpool_region_get_ctx(), _kind(), _size(), _alignment(), _granularity(),
 *   _path(), _devname(), _numa_node(), _generation(), _pin_count(), _lease(),
 *   _lease_breaks(), daxpool_region_is_dax(), daxpool_region_is_dead();
 * - daxpool_pin_try_ref(), to keep the pin (or use its map) after the visit:
 *   the reference is dropped after the query returns, never inside it;
 * - the lock-free lookups daxpool_ctx_find_pin(), daxpool_ctx_lookup_pins()
 *   and daxpool_ctx_is_pinned() (a nested query follows these rules too).
 *
 * Nothing else: in particular not daxpool_region_get_state() or
 * daxpool_region_get_map_count() (they take the region's lock), the
 * enumerations (daxpool_region_get_first()/_next(), daxpool_map_get_first()/
 * _next(), daxpool_region_foreach_pin(): locks, and _next() drops a
 * reference), daxpool_ctx_find_map() and daxpool_ctx_find_or_pin() (the
 * context's and a region's locks), any unref (the last one frees and takes
 * locks), map or pin creation, the setters (revoke functions, owners, tags),
 * zap, unzap, wait, release, truncate or punch, the pool and extent calls
 * (a pool's lock, then its region's), the I/O helpers, or the daemon calls.
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
 * daxpool_ctx_find_pin() - a pin that holds a whole range, with a reference
 * @ctx: the context whose registry is searched
 * @addr: start of the range
 * @length: length of the range (> 0)
 * @kind: the enum daxpool_pin_kind the pin must have, or 0 for any
 * @access: the DAXPOOL_PIN_DEVICE_* bits the pin must have (all of them), or 0
 * @ret: on success, the pin with a new reference (drop it with daxpool_pin_unref())
 *
 * The lookup of a registration cache: finds a pin whose range contains all of
 * [@addr, @addr + @length), that is not revoked (daxpool_pin_is_valid()) and
 * not being unpinned, and takes a reference on it as daxpool_pin_try_ref()
 * does (get-unless-zero, under the registry's RCU read side: a pin whose last
 * reference went is never returned). With several such pins, any one of them.
 * A pin that only overlaps the range does not count.
 *
 * Lock-free like daxpool_ctx_lookup_pins(): one probe per granule level that
 * holds pins, one atomic increment on the pin found.
 *
 * Context: any thread; never sleeps, takes no lock, calls nothing of the
 * caller's; may be called from a daxpool_pin_visit_fn or a revoke function.
 * Return: 0; -ENOENT if no such pin; -ENXIO if only revoked pins hold the
 * range; -EINVAL for NULL @ctx or @ret, zero @length, a range that wraps, an
 * unknown @kind or @access bit; -ESTALE in a child.
 */
int daxpool_ctx_find_pin(struct daxpool_ctx *ctx, const void *addr, size_t length, int kind,
			 unsigned int access, struct daxpool_pin **ret);

/**
 * daxpool_ctx_find_or_pin() - the pin that holds a range, made if there is none
 * @ctx: the context
 * @addr: start of the range
 * @length: length of the range (> 0)
 * @kind: an enum daxpool_pin_kind: the pin found has this kind, the pin made gets it
 * @access: the DAXPOOL_PIN_DEVICE_* bits: the pin found has all of them, the pin made gets them
 * @ret: on success, the pin with a new reference (drop it with daxpool_pin_unref())
 *
 * As ucs_rcache_get(): returns a pin as daxpool_ctx_find_pin(@kind, @access)
 * finds it, or else pins the range (daxpool_pin_new() on the live map of @ctx
 * that contains it, found as daxpool_ctx_find_map() does). Atomic among the
 * callers of this function on @ctx: when threads ask for the same range
 * together, one of them makes the pin and the others get it, as long as the
 * maker holds its reference. (daxpool_pin_new() does not take part: a pin it
 * makes meanwhile may be found, or a second pin made.) The lookup is
 * lock-free; only the makers are serialized, on a lock of the context's
 * registry, taken after the lookup missed.
 *
 * Context: any thread, also from a revoke function; a hit never sleeps; a
 * miss may sleep briefly (daxpool's own locks: the registry's, the
 * context's, the region's), so not from a daxpool_pin_visit_fn.
 * Return: 1 if a new pin was made, 0 if an existing pin was found; -ENOENT if
 * no live map of @ctx contains the whole range; -ENXIO if it is in a revoked
 * map or a zapped range; -EACCES for device write access to a read-only map;
 * -E2BIG for a range of 64 TiB or more; -ENOMEM; -EINVAL as
 * daxpool_ctx_find_pin() and for @kind 0 or @access 0; -ESTALE in a child.
 */
int daxpool_ctx_find_or_pin(struct daxpool_ctx *ctx, void *addr, size_t length, int kind,
			    unsigned int access, struct daxpool_pin **ret);

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
 * held, so @visit calls only what daxpool_pin_visit_fn allows (no pin, unpin,
 * map or unmap, zap, unzap, wait, setter, unref or enumeration); a pin it
 * keeps with daxpool_pin_try_ref() is dropped after the call returns.
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

/* ---- io_uring (liburing) ---- */

struct io_uring;
struct io_uring_sqe;

/**
 * daxpool_uring_prep_read() - prepare an io_uring read into a map, pinned until reaped
 * @ring: the ring the request is submitted on; it must outlive the pin
 * @sqe: a submission entry from io_uring_get_sqe(@ring)
 * @map: the destination map
 * @fd: the file to read
 * @dst: destination, inside the map
 * @length: bytes to read
 * @offset: file offset (-1 for the current position of a stream)
 * @user_data: the request's user_data (set on @sqe); the completion carries it
 * @ret_pin: on success, a TRANSIENT device-write pin of the destination
 *
 * Pins first, then prepares @sqe (IORING_OP_READ); the caller submits it and,
 * when it reaps the completion with @user_data, drops the pin with
 * daxpool_pin_unref() (which persists the range). If a zap revokes the pin
 * while the request is in flight, daxpool cancels it synchronously
 * (IORING_REGISTER_SYNC_CANCEL on @user_data, waiting until it is no longer
 * running) after the pin's own revoke function; the caller still reaps its
 * completion (-ECANCELED, or the result if it finished first) and drops the
 * pin. If the zap comes before the caller submitted @sqe, daxpool disarms the
 * entry (its buffer address becomes one no process can own), so once
 * submitted it completes with -EFAULT and moves no byte; the caller reaps and
 * drops the pin as always (an entry the kernel took meanwhile is cancelled as
 * above; a newer request of the caller's in the same slot, on another
 * address, is left alone). A request the device cannot cancel (already issued to a disk) runs to its
 * end: the pin holds the range until its completion is reaped. On failure
 * @sqe is left untouched.
 *
 * Return: 0, or as daxpool_pin_new(), or -EINVAL for NULL @ring, @sqe or
 * @ret_pin.
 */
int daxpool_uring_prep_read(struct io_uring *ring, struct io_uring_sqe *sqe,
			    struct daxpool_map *map, int fd, void *dst, unsigned int length,
			    uint64_t offset, uint64_t user_data, struct daxpool_pin **ret_pin);

/**
 * daxpool_uring_prep_write() - prepare an io_uring write from a map, pinned until reaped
 * @ring: as daxpool_uring_prep_read()
 * @sqe: as daxpool_uring_prep_read()
 * @map: the source map
 * @fd: the file to write
 * @src: source, inside the map
 * @length: bytes to write
 * @offset: file offset (-1 for the current position of a stream)
 * @user_data: the request's user_data
 * @ret_pin: on success, a TRANSIENT device-read pin of the source
 *
 * As daxpool_uring_prep_read(), for IORING_OP_WRITE.
 *
 * Return: as daxpool_uring_prep_read().
 */
int daxpool_uring_prep_write(struct io_uring *ring, struct io_uring_sqe *sqe,
			     struct daxpool_map *map, int fd, const void *src, unsigned int length,
			     uint64_t offset, uint64_t user_data, struct daxpool_pin **ret_pin);

/**
 * daxpool_uring_register_map() - register a whole map as a fixed buffer of a ring
 * @ring: the ring; daxpool owns its registered-buffer table from now on (the
 *	map is buffer index 0); the ring must outlive the pin
 * @map: the map to register
 * @ret_pin: on success (1), a LONGTERM pin of the whole map, device read and
 *	write
 *
 * Long-term pins of DAX memory are refused by some kernels (fsdax always;
 * devdax before 6.12). daxpool probes once per context and region kind: where
 * the kernel refused, this returns 0 at once without a system call, and the
 * caller uses per-request pins (daxpool_uring_prep_read()) instead. A revoke
 * of a registered buffer is its unregister, so daxpool also asks the kernel,
 * once per process, whether an unregister waits for the requests still using
 * the buffer (6.1 to 6.12 do; later kernels return at once and leave the
 * pages pinned until each request ends): where it does not, or the answer
 * cannot be had, this returns 0 as well. Requests on the registered buffer
 * use io_uring_prep_read_fixed() with buffer index 0. A zap unregisters the
 * buffers, and returns when the requests using them have ended, after the
 * pin's own revoke function; so does the last unref.
 *
 * Context: may sleep.
 * Return: 1 when registered; 0 when the kernel refuses long-term pins of this
 * kind of memory, or its unregister does not wait for requests (nothing
 * registered, *@ret_pin untouched); -EINVAL for NULL;
 * -EBUSY if the ring already has registered buffers; -ENXIO if the map is
 * revoked; or the negative errno of the registration.
 */
int daxpool_uring_register_map(struct io_uring *ring, struct daxpool_map *map,
			       struct daxpool_pin **ret_pin);

/* ---- RDMA (rdma-core's libibverbs) ---- */

struct ibv_pd;
struct ibv_mr;

/**
 * daxpool_rdma_reg_mr() - register a range of a map as an RDMA memory region
 * @map: the map
 * @pd: the protection domain
 * @addr: start of the range, inside the map
 * @length: length of the range
 * @ibv_access: IBV_ACCESS_* flags for ibv_reg_mr()
 * @ret_pin: on success, a LONGTERM pin that is also the MR: device read, and
 *	device write when @ibv_access allows local or remote writes
 *
 * The MR and its pin are one object: daxpool_pin_get_mr() gives the MR,
 * daxpool_rdma_dereg_mr() deregisters it and drops the pin. On a zap, the
 * pin's revoke function runs first (retire the rkey, stop posting to it),
 * then daxpool deregisters the MR; the caller still calls
 * daxpool_rdma_dereg_mr() to drop the pin.
 *
 * fsdax memory cannot be pinned long-term (the kernel says EOPNOTSUPP): that
 * is decided before calling the kernel. Where the device supports on-demand
 * paging for RC, the MR is registered with IBV_ACCESS_ON_DEMAND and a
 * prefetch is advised; otherwise the call fails with -EOPNOTSUPP and a log
 * message that names the ways out (a devdax region, or a bounce buffer).
 * Device capabilities are probed once per device context. A devdax
 * namespace on a CXL region with its struct pages on the device (map=dev,
 * daxpool_region_get_memmap()) cannot be pinned either (6.1: ENOMEM and a
 * kernel WARNING): refused before the kernel is asked, the log message
 * naming the namespace and --map=mem.
 *
 * Context: may sleep.
 * Return: 0; -EOPNOTSUPP for fsdax without on-demand paging, for a CXL
 * namespace with map=dev, or when daxpool
 * was built without rdma-core; as daxpool_pin_new(); or the negative errno of
 * ibv_reg_mr().
 */
int daxpool_rdma_reg_mr(struct daxpool_map *map, struct ibv_pd *pd, void *addr, size_t length,
			int ibv_access, struct daxpool_pin **ret_pin);

/**
 * daxpool_pin_get_mr() - the memory region of a pin made by daxpool_rdma_reg_mr()
 * @pin: the pin
 *
 * Return: the MR; NULL for other pins, NULL once deregistered (by a zap or
 * daxpool_rdma_dereg_mr()).
 */
struct ibv_mr *daxpool_pin_get_mr(struct daxpool_pin *pin);

/**
 * daxpool_rdma_dereg_mr() - deregister an MR made by daxpool_rdma_reg_mr() and unpin
 * @pin: the pin; the caller's reference is dropped
 *
 * Return: 0, or the negative errno of ibv_dereg_mr() (the pin is dropped
 * anyway), or -EINVAL for NULL or a pin that is not an MR.
 */
int daxpool_rdma_dereg_mr(struct daxpool_pin *pin);

/* ------------------------------------------------------------------------ */
/* Pools and extents                                                        */
/* ------------------------------------------------------------------------ */

/*
 * A pool is a region formatted with a header (kept in two copies, each with a
 * checksum, so one torn or corrupt copy is recovered from the other) and a
 * table of named extents. Every allocation and free commits with one 8-byte
 * store: after a power cut at any instant the pool opens, its check passes,
 * and each alloc or free is wholly there or wholly absent.
 *
 * One writer at a time across processes (an OFD lock on the backing); any
 * number of read-only openers. A read-only pool is a snapshot of the table
 * taken at open. A pool holds a reference on its region; an extent handle
 * holds a reference on its extent and on its pool.
 *
 * Errors about the media, logged with what was found (open, check, repair):
 *	-ENOMSG  no pool header (no magic in either copy);
 *	-EBADMSG a header checksum mismatch (in both copies);
 *	-EPROTO  a format version or flag newer than this library, or a pool
 *	         alignment the region cannot map;
 *	-ERANGE  the region is smaller than the pool its header describes
 *	         (a truncated backing);
 *	-EUCLEAN the header is impossible, or the extent table has a bad entry
 *	         (checksum, name not NUL-terminated, bad alignment, out of range,
 *	         overlapping, duplicate name): see daxpool_pool_repair().
 */
struct daxpool_pool;
struct daxpool_pool_opts;
struct daxpool_extent;

/**
 * daxpool_pool_opts_new() - options for daxpool_pool_create()
 * @ret: on success, options with their defaults (1024 extent slots, no
 *	overwrite); free them with daxpool_pool_opts_free()
 *
 * Return: 0, -EINVAL for NULL, -ENOMEM.
 */
int daxpool_pool_opts_new(struct daxpool_pool_opts **ret);

/**
 * daxpool_pool_opts_free() - free options
 * @opts: the options, or NULL
 *
 * Return: NULL.
 */
struct daxpool_pool_opts *daxpool_pool_opts_free(struct daxpool_pool_opts *opts);

/**
 * daxpool_pool_opts_set_max_extents() - size of the extent table
 * @opts: the options
 * @max_extents: 1 to 1048576 (each takes 128 bytes of metadata)
 *
 * Return: 0, or -EINVAL.
 */
int daxpool_pool_opts_set_max_extents(struct daxpool_pool_opts *opts, unsigned int max_extents);

/**
 * daxpool_pool_opts_set_overwrite() - allow create over an existing pool
 * @opts: the options
 * @overwrite: non-zero to destroy whatever pool (or remains of one) is there
 *
 * Return: 0, or -EINVAL.
 */
int daxpool_pool_opts_set_overwrite(struct daxpool_pool_opts *opts, int overwrite);

/**
 * daxpool_pool_create() - format a region as an empty pool, open for writing
 * @region: a region opened read-write; the pool takes a reference on it
 * @layout: the application's name for its layout, 1 to 63 bytes
 * @opts: options, or NULL for the defaults
 * @ret: on success, the pool with one reference, open for writing
 *
 * The pool covers the whole region. Its metadata (headers and the extent
 * table) takes the first bytes, rounded up to the region's alignment; extents
 * follow. The pool's UUID is random.
 *
 * Context: may sleep (maps, persists).
 * Return: 0, or -EINVAL (NULL, empty layout), -ENAMETOOLONG (layout), -EACCES
 * (read-only region), -EEXIST (the region holds a pool, or a damaged one, and
 * overwrite is not set), -EBUSY (another writer holds the pool), -ENOSPC (the
 * region cannot hold the metadata), -ENXIO (zapped), -ENOMEM, or a map error.
 */
int daxpool_pool_create(struct daxpool_region *region, const char *layout,
			const struct daxpool_pool_opts *opts, struct daxpool_pool **ret);

/* Flags for daxpool_pool_open(). */
#define DAXPOOL_POOL_RDONLY (1u << 0) /* read-only snapshot; no writer lock */

/*
 * A pool is a holder of its region like any other: it keeps a map of its
 * header and extent table. A zap of the region revokes that map too; from then
 * on allocations and frees fail with -ENXIO, and the region becomes idle only
 * when the pool's last reference (and those of its extents) is dropped: the
 * application drops them when it is told to let go (a revoke function of one
 * of its maps or pins).
 */

/**
 * daxpool_pool_open() - open the pool a region holds
 * @region: the region; the pool takes a reference on it. A writer needs a
 *	read-write region.
 * @flags: 0 (open for writing) or DAXPOOL_POOL_RDONLY
 * @ret: on success, the pool with one reference
 *
 * Validates both header copies and every table entry; nothing is written
 * (a writer records its pid in an advisory, unchecksummed field). With one bad
 * header copy the pool opens from the good one and logs a warning.
 *
 * Context: may sleep; a reader may wait briefly for a table change of the
 * writer process to finish.
 * Return: 0; -EINVAL; -EACCES (writer on a read-only region); -EBUSY (another
 * writer, in this or another process: its pid is logged when known); the media
 * errors listed above; -ENXIO (zapped); -ENOMEM.
 */
int daxpool_pool_open(struct daxpool_region *region, unsigned int flags,
		      struct daxpool_pool **ret);

/**
 * daxpool_pool_ref() - take a reference on a pool
 * @pool: the pool, or NULL
 *
 * Return: @pool.
 */
struct daxpool_pool *daxpool_pool_ref(struct daxpool_pool *pool);

/**
 * daxpool_pool_unref() - drop a reference on a pool
 * @pool: the pool, or NULL
 *
 * The last reference closes the pool: unmaps its metadata, drops the writer
 * lock and the region reference. Extent handles hold pool references, so a
 * pool closes only after its last extent handle is gone.
 *
 * Return: NULL.
 */
struct daxpool_pool *daxpool_pool_unref(struct daxpool_pool *pool);

/**
 * daxpool_pool_get_region() - the region of a pool (no reference taken)
 * @pool: the pool
 *
 * Return: the region, or NULL for NULL.
 */
struct daxpool_region *daxpool_pool_get_region(struct daxpool_pool *pool);

/**
 * daxpool_pool_get_uuid() - the pool's UUID
 * @pool: the pool
 * @ret_uuid: 16 bytes, filled on success
 *
 * Return: 0, or -EINVAL.
 */
int daxpool_pool_get_uuid(struct daxpool_pool *pool, uint8_t ret_uuid[16]);

/**
 * daxpool_pool_get_layout() - the layout name given at create
 * @pool: the pool
 *
 * Return: the name, valid as long as the pool; NULL for NULL.
 */
const char *daxpool_pool_get_layout(struct daxpool_pool *pool);

/**
 * daxpool_pool_get_size() - bytes of the region the pool covers
 * @pool: the pool
 *
 * Return: the size, or 0 for NULL.
 */
uint64_t daxpool_pool_get_size(struct daxpool_pool *pool);

/**
 * daxpool_pool_get_alignment() - the smallest extent alignment
 * @pool: the pool
 *
 * The region's alignment at create (2 MiB on a 2 MiB devdax device). Extent
 * offsets and sizes are multiples of it.
 *
 * Return: the alignment, or 0 for NULL.
 */
uint64_t daxpool_pool_get_alignment(struct daxpool_pool *pool);

/**
 * daxpool_pool_get_data_offset() - where extent space starts
 * @pool: the pool
 *
 * Return: the offset (the size of the metadata), or 0 for NULL.
 */
uint64_t daxpool_pool_get_data_offset(struct daxpool_pool *pool);

/**
 * daxpool_pool_get_max_extents() - slots in the extent table
 * @pool: the pool
 *
 * Return: the count, or -EINVAL.
 */
int daxpool_pool_get_max_extents(struct daxpool_pool *pool);

/**
 * daxpool_pool_get_extent_count() - allocated extents
 * @pool: the pool
 *
 * Counts extents whose free has not completed.
 *
 * Return: the count, or -EINVAL.
 */
int daxpool_pool_get_extent_count(struct daxpool_pool *pool);

/**
 * daxpool_pool_is_rdonly() - whether a pool was opened read-only
 * @pool: the pool
 *
 * Return: 1, 0, or -EINVAL.
 */
int daxpool_pool_is_rdonly(struct daxpool_pool *pool);

/**
 * typedef daxpool_pool_problem_fn - one finding of a check or a repair
 * @region: the region checked
 * @where: "header A", "header B" or "extent slot N"
 * @err: a negative errno classifying it (see the list above)
 * @message: what is wrong, one line
 * @repaired: 1 if daxpool_pool_repair() fixed it, 0 otherwise
 * @userdata: as given
 */
typedef void (*daxpool_pool_problem_fn)(struct daxpool_region *region, const char *where, int err,
					const char *message, int repaired, void *userdata);

/**
 * daxpool_pool_check() - check the pool a region holds, without writing
 * @region: the region (may be read-only)
 * @fn: called for each problem found, or NULL
 * @userdata: passed to @fn
 *
 * Never writes to the region: maps it read-only and takes only a shared lock.
 *
 * Context: may sleep.
 * Return: the number of problems found (0: the pool is good); or a negative
 * errno when there is no usable pool (-ENOMSG, -EBADMSG, -EPROTO, -ERANGE,
 * -EUCLEAN for both header copies; @fn is then called once per copy), -ENOMEM,
 * -ENXIO.
 */
int daxpool_pool_check(struct daxpool_region *region, daxpool_pool_problem_fn fn, void *userdata);

/**
 * daxpool_pool_repair() - fix what daxpool_pool_check() finds
 * @region: a read-write region
 * @fn: called once for each problem fixed (with @repaired 1), or NULL
 * @userdata: passed to @fn
 *
 * Writes only what it reports: a bad header copy is rewritten from the good
 * one; a bad extent entry is dropped (its commit word cleared; the extent's
 * data is left alone). Takes the writer lock.
 *
 * Context: may sleep.
 * Return: the number of fixes (0: nothing to do); -EBUSY if a writer holds the
 * pool; the errors of daxpool_pool_check() when no header copy is good (then
 * nothing is written).
 */
int daxpool_pool_repair(struct daxpool_region *region, daxpool_pool_problem_fn fn, void *userdata);

/**
 * daxpool_extent_alloc() - allocate a named extent
 * @pool: a pool open for writing
 * @name: 1 to 63 bytes, unique in the pool
 * @size: bytes; rounded up to the pool's alignment
 * @align: 0, or a power of two: the extent's offset is a multiple of the
 *	larger of it and the pool's alignment
 * @ret: on success, a handle on the new extent
 *
 * Persistent when it returns. First fit from the start of extent space.
 *
 * Context: may sleep (persists); serialized with other changes of the pool.
 * Return: 0; -EINVAL; -ENAMETOOLONG; -EACCES (read-only pool); -EEXIST (the
 * name is taken, also by an extent being freed); -ENOSPC (no room, or the
 * table is full); -ENXIO (the pool's metadata was zapped); -ENOMEM.
 */
int daxpool_extent_alloc(struct daxpool_pool *pool, const char *name, uint64_t size,
			 uint64_t align, struct daxpool_extent **ret);

/**
 * daxpool_extent_lookup() - find an extent by name
 * @pool: the pool
 * @name: its name
 * @ret: on success, a handle on it
 *
 * Return: 0; -ENOENT (no such extent, or it is being freed); -EINVAL.
 */
int daxpool_extent_lookup(struct daxpool_pool *pool, const char *name,
			  struct daxpool_extent **ret);

/* Flags for daxpool_extent_free(). */
#define DAXPOOL_EXTENT_FREE_NOWAIT (1u << 0) /* -EBUSY instead of revoking maps */

/**
 * daxpool_extent_free() - free an extent
 * @ext: a handle on the extent (still to be unref'ed by the caller)
 * @timeout_ms: how long to wait for maps of the extent to go: 0 not at all,
 *	-1 without limit
 * @flags: 0 or DAXPOOL_EXTENT_FREE_NOWAIT
 *
 * With no map of the extent, frees it at once. Otherwise, without NOWAIT:
 * zaps the extent's range (new maps of it fail with -ENXIO; its maps are
 * revoked and their revoke functions called, in this thread), waits until no
 * map covers it, frees it, and reopens the range for reuse (its own zap: a
 * zap of the application's over the range stays). Memory is never unmapped under a holder. With NOWAIT and a map of
 * the extent, nothing changes and -EBUSY is returned.
 *
 * Context: may sleep; runs revoke functions with no daxpool lock held. Must
 * not be called from a revoke function.
 * Return: 0; -ETIMEDOUT (still mapped at the deadline: the extent stays
 * allocated and its range zapped; free it again once the holders are gone);
 * -EBUSY (NOWAIT and mapped, or another thread is freeing it); -ENOENT
 * (already freed); -EACCES (read-only pool); -ENXIO; -EINVAL.
 */
int daxpool_extent_free(struct daxpool_extent *ext, int timeout_ms, unsigned int flags);

/**
 * daxpool_extent_free_by_name() - free an extent by name
 * @pool: the pool
 * @name: its name
 * @timeout_ms: as for daxpool_extent_free()
 * @flags: as for daxpool_extent_free()
 *
 * Return: as daxpool_extent_free(); -ENOENT if there is no such extent.
 */
int daxpool_extent_free_by_name(struct daxpool_pool *pool, const char *name, int timeout_ms,
				unsigned int flags);

/**
 * daxpool_extent_ref() - take a reference on an extent (and on its pool)
 * @ext: the extent, or NULL
 *
 * Return: @ext.
 */
struct daxpool_extent *daxpool_extent_ref(struct daxpool_extent *ext);

/**
 * daxpool_extent_unref() - drop a reference on an extent (and on its pool)
 * @ext: the extent, or NULL
 *
 * A handle stays a valid object after the extent is freed: getters work,
 * daxpool_extent_map() fails with -ENOENT.
 *
 * Return: NULL.
 */
struct daxpool_extent *daxpool_extent_unref(struct daxpool_extent *ext);

/**
 * typedef daxpool_extent_fn - called by daxpool_extent_foreach()
 * @ext: an extent; the call holds a reference (take one to keep it)
 * @userdata: as given
 *
 * Return: 0 to go on; anything else stops the iteration and is returned.
 */
typedef int (*daxpool_extent_fn)(struct daxpool_extent *ext, void *userdata);

/**
 * daxpool_extent_foreach() - call a function for each allocated extent
 * @pool: the pool
 * @fn: the function
 * @userdata: passed to @fn
 *
 * Visits a snapshot of the extents, in offset order, with no lock held: @fn
 * may allocate, free and map.
 *
 * Return: 0, the first non-zero value of @fn, -EINVAL, or -ENOMEM.
 */
int daxpool_extent_foreach(struct daxpool_pool *pool, daxpool_extent_fn fn, void *userdata);

/**
 * daxpool_extent_map() - map exactly an extent's range
 * @ext: the extent
 * @flags: DAXPOOL_MAP_* flags, as for daxpool_map_new()
 * @ret: on success, the map with one reference (it holds the region, not the
 *	extent)
 *
 * Context: may sleep.
 * Return: 0; -ENXIO (the extent is being freed); -ENOENT (freed); the errors
 * of daxpool_map_new().
 */
int daxpool_extent_map(struct daxpool_extent *ext, unsigned int flags, struct daxpool_map **ret);

/**
 * daxpool_extent_get_pool() - the pool of an extent (no reference taken)
 * @ext: the extent
 *
 * Return: the pool, or NULL for NULL.
 */
struct daxpool_pool *daxpool_extent_get_pool(struct daxpool_extent *ext);

/**
 * daxpool_extent_get_name() - the name of an extent
 * @ext: the extent
 *
 * Return: the name, valid as long as the handle; NULL for NULL.
 */
const char *daxpool_extent_get_name(struct daxpool_extent *ext);

/**
 * daxpool_extent_get_offset() - region offset of an extent
 * @ext: the extent
 *
 * Return: the offset, or 0 for NULL.
 */
uint64_t daxpool_extent_get_offset(struct daxpool_extent *ext);

/**
 * daxpool_extent_get_size() - size of an extent (a multiple of the pool's alignment)
 * @ext: the extent
 *
 * Return: the size, or 0 for NULL.
 */
uint64_t daxpool_extent_get_size(struct daxpool_extent *ext);

/**
 * daxpool_extent_get_alignment() - alignment of an extent's offset
 * @ext: the extent
 *
 * Return: the alignment, or 0 for NULL.
 */
uint64_t daxpool_extent_get_alignment(struct daxpool_extent *ext);

/**
 * daxpool_extent_is_allocated() - whether an extent is still allocated
 * @ext: the extent
 *
 * Return: 1 until its free completes, then 0; -EINVAL for NULL.
 */
int daxpool_extent_is_allocated(struct daxpool_extent *ext);

/* ------------------------------------------------------------------------ */
/* Daemon client                                                            */
/* ------------------------------------------------------------------------ */

/*
 * daxpoold keeps, per device, which processes hold which maps and pins, and
 * releases a device (or truncates a file) only after every holder has drained
 * (see daxpoold(8) and daxpoolctl). A context takes part when the application
 * opts in: daxpool_ctx_connect_daemon(), or the environment variable
 * DAXPOOL_DAEMON read by daxpool_ctx_new() with secure_getenv() ("1": the
 * default socket /run/daxpool/daxpoold.sock; an absolute path: that socket).
 *
 * Once connected, the context registers every region, map and pin with the
 * daemon and keeps that up to date from a client thread of its own: map and
 * pin calls only queue an event (no socket I/O on those paths). When the
 * daemon revokes a range (a release, a truncate or a hole punch), the client
 * thread zaps it as daxpool_region_zap_range() does, with a zap of the
 * request's own -- so the revoke functions of maps and pins run in that
 * thread, and new maps and pins of the range fail with -ENXIO -- and reports
 * back once no map or pin holds that range. If the request ends without a
 * release (a timeout, a refusal, or the daemon went away), the request's zap
 * goes as soon as the range is idle, and only that one: a range the
 * application zapped itself stays zapped. After a release the range stays
 * zapped as the application's. After a daemon restart the client reconnects (every 100 ms)
 * and registers everything again.
 *
 * The daemon also follows udev. When a device under a region goes away
 * without a release through it (someone ran daxctl or ndctl directly, a
 * device failed), the kernel has already torn the mappings down and does not
 * wait for pins; the daemon tells each client that holds a region on it, and
 * the client thread marks the region dead (daxpool_region_is_dead() returns
 * 1, as after a SIGBUS in a guarded access) and zaps it as a whole: the
 * revoke functions of its maps and pins run in that thread, and new maps and
 * pins fail with -ENXIO. The region stays dead when the device comes back:
 * open it again.
 */

/**
 * daxpool_ctx_connect_daemon() - register this context with daxpoold
 * @ctx: the context
 * @socket_path: the daemon's socket, or NULL for /run/daxpool/daxpoold.sock
 *
 * Connects and says hello synchronously (up to 2 s), registers the regions,
 * maps and pins that already exist, then starts the client thread. On
 * failure the context works on without the daemon.
 *
 * Context: may sleep. Call it once per context.
 * Return: 0; -EALREADY (already connected, also through DAXPOOL_DAEMON);
 * -ENOENT or -ECONNREFUSED (no daemon listens there); -EACCES (the socket's
 * permissions); -ETIMEDOUT or -EPROTO (the daemon did not answer, or not as a
 * daxpoold of this protocol version); -ENAMETOOLONG; -ENOMEM; -EINVAL.
 */
int daxpool_ctx_connect_daemon(struct daxpool_ctx *ctx, const char *socket_path);

/**
 * daxpool_ctx_is_daemon_connected() - whether the daemon connection is up
 * @ctx: the context
 *
 * Return: 1 connected (and registered); 0 reconnecting; -ENOTCONN if the
 * context never connected; -EINVAL for NULL.
 */
int daxpool_ctx_is_daemon_connected(struct daxpool_ctx *ctx);

/**
 * daxpool_region_truncate() - change a file region's file size, safely
 * @region: a read-write file or fsdax region
 * @size: the new file size in bytes
 * @timeout_ms: how long to wait for holders of the range that goes: 0 not at
 *	all, -1 without limit
 *
 * Shrinking zaps [@size, end of region) (revoke functions run in this thread),
 * waits until no map or pin of this process holds it, then ftruncate()s. The
 * region's size is fixed when it is opened: after a shrink that tail stays
 * zapped (a map there would only fault past the end of the file); growing
 * does not grow the region (open the file again to use the new space). Only
 * this process's holders are drained: with other processes, use daxpoold
 * (daxpoolctl truncate).
 *
 * The ftruncate() runs with no lock of the region held: a slow file (or one
 * whose lease is breaking) holds up this call only, never the region's other
 * users; a daxpool_region_release() meanwhile is refused with -EBUSY.
 *
 * Context: may sleep. Must not be called from a revoke function.
 * Return: 0; -ETIMEDOUT (still held: nothing changed, the tail stays zapped
 * until daxpool_region_unzap_range() after its holders are gone);
 * -EOPNOTSUPP on devdax; -EACCES read-only; -ENXIO released; -EINVAL; or the
 * error of ftruncate(2) (then the tail is reopened).
 */
int daxpool_region_truncate(struct daxpool_region *region, uint64_t size, int timeout_ms);

/**
 * daxpool_region_punch_hole() - deallocate a range of a file region, safely
 * @region: a read-write file or fsdax region
 * @offset: start of the range
 * @length: its length (> 0), inside the region
 * @timeout_ms: as for daxpool_region_truncate()
 *
 * Zaps the range, waits until this process holds nothing of it,
 * fallocate(PUNCH_HOLE | KEEP_SIZE), then reopens the range (it reads zeros).
 * Only the punch's own zap goes: a zap of the application's over the range
 * stays. The fallocate() runs with no lock of the region held, as the
 * truncate's ftruncate() does.
 *
 * Context: may sleep. Must not be called from a revoke function.
 * Return: as daxpool_region_truncate(), or the error of fallocate(2).
 */
int daxpool_region_punch_hole(struct daxpool_region *region, uint64_t offset, uint64_t length,
			      int timeout_ms);

#ifdef __cplusplus
}
#endif

#endif /* DAXPOOL_H */
