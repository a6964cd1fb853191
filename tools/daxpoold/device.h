/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Device-dax devices by the kernel's word (sysfs) and their disable (libdaxctl). */
#ifndef DAXPOOLD_DEVICE_H
#define DAXPOOLD_DEVICE_H

#include <stddef.h>
#include <sys/types.h>

/*
 * The device-dax name ("dax0.0") of the character device @rdev, from sysfs
 * (/sys/dev/char/MAJ:MIN, its subsystem verified as dax). Return 0, -ENOTTY
 * for a character device that is not device-dax, -ENODEV if sysfs does not
 * know it, or another -errno.
 */
int dd_devdax_name(dev_t rdev, char *name, size_t size);
/*
 * Disable a devdax device through libdaxctl. Return 0 or -errno; @msg says
 * what happened. May sleep (the worker thread calls it).
 */
int dd_devdax_disable(const char *devname, char *msg, size_t msg_size);

#endif /* DAXPOOLD_DEVICE_H */
