/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Synchronous I/O between a file and a map, with the range pinned for the I/O. */
#include <unistd.h>

#include "private.h"

static ssize_t io_pinned(struct daxpool_map *map, int fd, void *buf, size_t length, off_t offset,
			 bool device_writes)
{
	struct daxpool_pin *pin = NULL;
	ssize_t n;
	int r;

	assert_return(map, -EINVAL);
	assert_return(fd >= 0, -EBADF);
	assert_return(offset >= 0, -EINVAL);
	if (length == 0)
		return 0;
	r = daxpool_pin_new(map, buf, length, DAXPOOL_PIN_TRANSIENT,
			    device_writes ? DAXPOOL_PIN_DEVICE_WRITE : DAXPOOL_PIN_DEVICE_READ, &pin);
	if (r < 0)
		return r;
	daxpool_pin_set_owner(pin, device_writes ? "pread" : "pwrite");
	do {
		n = device_writes ? pread(fd, buf, length, offset) : pwrite(fd, buf, length, offset);
	} while (n < 0 && errno == EINTR);
	if (n < 0)
		n = -errno;
	/* A device-write pin persists the range as it goes. */
	daxpool_pin_unref(pin);
	return n;
}

_public_ ssize_t daxpool_map_pread(struct daxpool_map *map, int fd, void *dst, size_t length,
				   off_t offset)
{
	return io_pinned(map, fd, dst, length, offset, true);
}

_public_ ssize_t daxpool_map_pwrite(struct daxpool_map *map, int fd, const void *src,
				    size_t length, off_t offset)
{
	return io_pinned(map, fd, (void *)src, length, offset, false);
}
