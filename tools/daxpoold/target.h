/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The authorization module: what a target is, by the kernel's word only, and
 * who may act on it. Every operation, status and registration of daxpoold
 * takes its identity from here and uses nothing else of the request:
 *
 *   - a name a CTL gives (dd_target_resolve): one openat2() lookup that
 *     follows no symbolic link (RESOLVE_NO_SYMLINKS, O_PATH), the identity
 *     from statx of that descriptor, a character device named by sysfs from
 *     its st_rdev (its subsystem verified as dax), never by the path; the
 *     descriptor is kept so that the operation acts on the same file;
 *   - a descriptor a client passed (dd_target_identify): the same, from the
 *     descriptor itself (proof of access: the client opened it);
 *   - the owner (dd_target_may_act): root, or the uid that owns the node or
 *     file as its descriptor says.
 *
 * Main thread; statx without a sync (a FUSE or network filesystem is not
 * asked), so nothing here waits for another process. The lookup itself
 * crosses whatever is mounted on the way: a FUSE mount of another user
 * without allow_other answers root's lookup with EACCES before its server is
 * asked (the kernel's fuse_allow_current_process()), so only a mount with
 * allow_other -- user_allow_other in /etc/fuse.conf, an administrator's
 * choice -- could make it wait; daxpoold(8) says not to allow it.
 */
#ifndef DAXPOOLD_TARGET_H
#define DAXPOOLD_TARGET_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "util/protocol.h"

#define DD_TARGET_FILE 1   /* DAXPOOL_REGION_FILE: a regular file, not DAX */
#define DD_TARGET_FSDAX 2  /* DAXPOOL_REGION_FSDAX: a regular file with STATX_ATTR_DAX */
#define DD_TARGET_DEVDAX 3 /* DAXPOOL_REGION_DEVDAX: a device-dax character device */

struct dd_target {
	int fd;			 /* the O_PATH descriptor of dd_target_resolve(); -1 otherwise */
	uint64_t dev, ino;	 /* of the node or file */
	uint64_t rdev;		 /* of a device-dax device; 0 for a file */
	uint64_t size;		 /* the file's, or the device's (sysfs); 0 if unknown */
	uint32_t kind;		 /* DD_TARGET_* */
	uid_t owner_uid;	 /* of the node or file */
	char path[PATH_MAX];	 /* as asked (resolve), or the kernel's name of the descriptor */
	char devname[DP_PROTO_MAX_DEVNAME + 1]; /* of a device-dax device (sysfs); "" else */
};

/*
 * Resolve @name -- an absolute path, or a devdax name ("dax0.0": /dev/dax0.0)
 * -- into @t, t->fd kept open (close with dd_target_close()). Return 0;
 * -EINVAL for a relative path or what is neither a regular file nor a
 * device-dax device; -ELOOP for a symbolic link on the way; another -errno
 * of the lookup. @t is left closed on failure.
 */
int dd_target_resolve(const char *name, struct dd_target *t);
/*
 * What the descriptor @fd a client passed is, into @t (t->fd -1: @fd stays
 * the caller's). Return 0, or -EINVAL (neither a regular file nor a
 * device-dax device), another -errno; @why (@size) says what was wrong.
 */
int dd_target_identify(int fd, struct dd_target *t, char *why, size_t size);
/* Whether @uid may release, truncate or punch @t, or see its holders: root or its owner. */
bool dd_target_may_act(const struct dd_target *t, uid_t uid);
static inline bool dd_target_is_devdax(const struct dd_target *t)
{
	return t->kind == DD_TARGET_DEVDAX;
}
/* Close t->fd (if open). NULL-safe. */
void dd_target_close(struct dd_target *t);

#endif /* DAXPOOLD_TARGET_H */
