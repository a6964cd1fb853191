/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * io_uring with pins: a per-request pin that lives until the completion is
 * reaped and whose revocation cancels the request synchronously, and a
 * registered-buffer path for kernels that allow long-term pins of the memory.
 */
#include <liburing.h>
#include <string.h>

#include "private.h"

/*
 * The buffer address a request revoked before its submission is left with:
 * above every user address, so the kernel's access check fails it with
 * -EFAULT before any byte moves (on every architecture Linux runs on).
 */
#define URING_DEAD_ADDR UINT64_C(0xfffffffffffff000)

/*
 * Revoke of a per-request pin: a request still in the submission queue is
 * disarmed, one the kernel took is cancelled and waited for.
 *
 * Disarm: the entry's buffer address becomes URING_DEAD_ADDR, with one
 * compare-and-swap, so the kernel reads either the whole old address or the
 * whole dead one. Only an entry that still names this pin's buffer changes:
 * once the kernel took ours, the slot may hold a newer request of the
 * application's; one on the same address is inside the revoked range (the
 * pin holds its map, so the address is still the map's) and is refused too.
 * The kernel reads entries only under the ring's submission lock, and the
 * synchronous cancel takes that lock: a read of the old address before the
 * swap is a request the cancel finds (or one that completed), a read after
 * it fails with -EFAULT.
 */
static void uring_cancel(struct daxpool_pin *pin)
{
	struct dp_pin_ext *ext = dp_pin_ext_get(pin);
	struct io_uring_sync_cancel_reg reg;
	__u64 expected = ext->io.uring.addr;
	bool disarmed;
	int r;

	/* The test hook: a revoke that begins while the application submits. */
	dp_test_delay("DAXPOOL_TEST_URING_REVOKE_DELAY_MS");
	disarmed = __atomic_compare_exchange_n(&ext->io.uring.sqe->addr, &expected,
					       URING_DEAD_ADDR, false, __ATOMIC_SEQ_CST,
					       __ATOMIC_SEQ_CST);
	memset(&reg, 0, sizeof(reg));
	reg.addr = ext->io.uring.user_data;
	reg.timeout.tv_sec = -1;
	reg.timeout.tv_nsec = -1;
	r = io_uring_register_sync_cancel(ext->io.uring.ring, &reg);
	/*
	 * -ENOENT: not submitted (disarmed), completed (its completion waits
	 * to be reaped), or issued to a device that cannot cancel it: then the
	 * pin holds the range until the application reaps the completion.
	 */
	if (r < 0 && r != -ENOENT)
		log_err(pin->ctx, "io_uring cancel of request %#llx: %s",
			(unsigned long long)ext->io.uring.user_data, strerror(-r));
	else
		log_dbg(pin->ctx, "io_uring request %#llx %s (%d)",
			(unsigned long long)ext->io.uring.user_data,
			disarmed ? "disarmed before its submission: it fails with EFAULT"
				 : "cancelled",
			r);
}

static int uring_prep(struct io_uring *ring, struct io_uring_sqe *sqe, struct daxpool_map *map,
		      int fd, void *buf, unsigned int length, uint64_t offset, uint64_t user_data,
		      bool device_writes, struct daxpool_pin **ret_pin)
{
	struct io_uring_sqe saved;
	struct daxpool_pin *pin;
	union dp_pin_io io;
	int r;

	assert_return(ring && sqe && ret_pin, -EINVAL);
	/*
	 * The entry first, then the pin: a zap that finds the pin finds the
	 * entry prepared and can disarm it (uring_cancel()). The entry is the
	 * caller's until it submits; on failure it gets its old bytes back.
	 */
	saved = *sqe;
	if (device_writes)
		io_uring_prep_read(sqe, fd, buf, length, offset);
	else
		io_uring_prep_write(sqe, fd, buf, length, offset);
	io_uring_sqe_set_data64(sqe, user_data);

	memset(&io, 0, sizeof(io));
	io.uring.ring = ring;
	io.uring.sqe = sqe;
	io.uring.user_data = user_data;
	io.uring.addr = (uintptr_t)buf;
	r = dp_pin_new_io(map, buf, length, DAXPOOL_PIN_TRANSIENT,
			  device_writes ? DAXPOOL_PIN_DEVICE_WRITE : DAXPOOL_PIN_DEVICE_READ,
			  uring_cancel, NULL, &io, sizeof(io), &pin);
	if (r < 0) {
		*sqe = saved;
		return r;
	}
	*ret_pin = pin;
	return 0;
}

_public_ int daxpool_uring_prep_read(struct io_uring *ring, struct io_uring_sqe *sqe,
				     struct daxpool_map *map, int fd, void *dst,
				     unsigned int length, uint64_t offset, uint64_t user_data,
				     struct daxpool_pin **ret_pin)
{
	return uring_prep(ring, sqe, map, fd, dst, length, offset, user_data, true, ret_pin);
}

_public_ int daxpool_uring_prep_write(struct io_uring *ring, struct io_uring_sqe *sqe,
				      struct daxpool_map *map, int fd, const void *src,
				      unsigned int length, uint64_t offset, uint64_t user_data,
				      struct daxpool_pin **ret_pin)
{
	return uring_prep(ring, sqe, map, fd, (void *)src, length, offset, user_data, false,
			  ret_pin);
}

/* Unregister once, whether a zap or the last unref comes first. */
static void uring_unregister(struct daxpool_pin *pin)
{
	bool expected = true;
	int r;

	if (!atomic_compare_exchange_strong(&dp_pin_ext_get(pin)->io.uring.registered, &expected, false))
		return;
	/* The kernel waits for requests that still use the buffer. */
	r = io_uring_unregister_buffers(dp_pin_ext_get(pin)->io.uring.ring);
	if (r < 0)
		log_err(pin->ctx, "io_uring unregister buffers: %s", strerror(-r));
}

_public_ int daxpool_uring_register_map(struct io_uring *ring, struct daxpool_map *map,
					struct daxpool_pin **ret_pin)
{
	union dp_pin_io io;
	struct daxpool_region *region;
	struct daxpool_pin *pin;
	struct iovec iov;
	atomic_int *probe;
	int r;

	assert_return(ring && map && ret_pin, -EINVAL);
	assert_owned(map->region->ctx);
	region = map->region;
	probe = &region->ctx->uring_regbuf[region->kind];
	if (atomic_load_explicit(probe, memory_order_relaxed) < 0)
		return 0;
	if (atomic_load_explicit(&map->revoked, memory_order_acquire))
		return -ENXIO;

	iov.iov_base = map->addr;
	iov.iov_len = map->length;
	r = io_uring_register_buffers(ring, &iov, 1);
	if (r == -EOPNOTSUPP || r == -EFAULT) {
		/* Refused for this kind of memory (fsdax; devdax before 6.12): remember. */
		atomic_store_explicit(probe, -1, memory_order_relaxed);
		log_notice(region->ctx, "%s: the kernel refuses io_uring registered buffers on %s "
					"memory (%s): use per-request pins",
			   region->path, daxpool_region_kind_name(region->kind), strerror(-r));
		return 0;
	}
	if (r == -EBUSY) {
		log_err(region->ctx, "io_uring ring %p already has registered buffers", (void *)ring);
		return r;
	}
	if (r < 0) {
		log_err(region->ctx, "%s: io_uring register buffers: %s", region->path,
			strerror(-r));
		return r;
	}
	atomic_store_explicit(probe, 1, memory_order_relaxed);

	/*
	 * Registered before the pin exists: a zap in between makes the pin
	 * fail with -ENXIO, and then nothing may stay registered.
	 */
	memset(&io, 0, sizeof(io));
	io.uring.ring = ring;
	atomic_init(&io.uring.registered, true);
	r = dp_pin_new_io(map, map->addr, map->length, DAXPOOL_PIN_LONGTERM,
			  DAXPOOL_PIN_DEVICE_READ | DAXPOOL_PIN_DEVICE_WRITE, uring_unregister,
			  uring_unregister, &io, sizeof(io), &pin);
	if (r < 0) {
		io_uring_unregister_buffers(ring);
		return r;
	}
	daxpool_pin_set_owner(pin, "io_uring registered buffer");
	*ret_pin = pin;
	return 1;
}
