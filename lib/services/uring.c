/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * io_uring with pins: a per-request pin that lives until the completion is
 * reaped and whose revocation cancels the request synchronously, and a
 * registered-buffer path for kernels that allow long-term pins of the memory.
 */
#include <fcntl.h>
#include <liburing.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "services.h"

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

/*
 * Whether the kernel's unregister of a ring's buffers waits for the requests
 * still using them. Only then is an unregister a revoke: 6.1 to 6.12 wait (the
 * table is quiesced); later kernels drop the table at once and leave each
 * request its own reference, so the pages stay pinned, and the device may
 * write them, until the request ends, after the range was handed back.
 *
 * Asked of the kernel once per process, on a private ring: a read of an empty
 * pipe into a registered buffer is pending while a thread unregisters. The
 * kernel waits if the thread is seen asleep in io_uring_register() (then the
 * pipe is written and the read ends); it does not if the call returns first.
 * Anything else (no /proc, no ring, no answer within the bound) counts as
 * "does not wait": registered buffers are then not used, never trusted.
 */
enum uring_unreg { URING_UNREG_UNKNOWN, URING_UNREG_WAITS, URING_UNREG_RETURNS };

#define URING_PROBE_POLLS 2000 /* of 1 ms: the bound on the probe */

struct uring_probe {
	struct io_uring ring;
	atomic_int tid;
	atomic_bool returned;
	int result;
};

static void *uring_probe_unregister(void *arg)
{
	struct uring_probe *p = arg;
	sigset_t all;

	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, NULL);
	atomic_store(&p->tid, (int)syscall(SYS_gettid));
	p->result = io_uring_unregister_buffers(&p->ring);
	atomic_store(&p->returned, true);
	return NULL;
}

/* Whether thread @tid of this process sleeps inside io_uring_register(). */
static bool uring_probe_sleeps_in_register(int tid)
{
	char path[64], line[256], state = 0;
	long nr = -1;
	const char *paren;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/self/task/%d/syscall", tid);
	f = fopen(path, "re");
	if (!f)
		return false;
	if (!fgets(line, sizeof(line), f) || sscanf(line, "%ld", &nr) != 1)
		nr = -1;
	fclose(f);
	if (nr != SYS_io_uring_register)
		return false;
	snprintf(path, sizeof(path), "/proc/self/task/%d/stat", tid);
	f = fopen(path, "re");
	if (!f)
		return false;
	if (fgets(line, sizeof(line), f) && (paren = strrchr(line, ')')) && paren[1] == ' ')
		state = paren[2];
	fclose(f);
	return state == 'S' || state == 'D';
}

static enum uring_unreg uring_probe_unregister_waits(const char **why)
{
	struct uring_probe *p;
	struct io_uring_sqe *sqe;
	struct io_uring_cqe *cqe;
	struct iovec iov;
	enum uring_unreg answer = URING_UNREG_RETURNS;
	pthread_t thread;
	int pipefd[2], i;
	void *buf;

	*why = "the probe could not run";
	p = calloc(1, sizeof(*p));
	if (!p)
		return answer;
	buf = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (buf == MAP_FAILED)
		goto out_free;
	if (pipe2(pipefd, O_CLOEXEC) < 0)
		goto out_unmap;
	if (io_uring_queue_init(2, &p->ring, 0) < 0) {
		*why = "no io_uring ring for the probe";
		goto out_pipe;
	}
	iov.iov_base = buf;
	iov.iov_len = 4096;
	if (io_uring_register_buffers(&p->ring, &iov, 1) < 0)
		goto out_ring;
	sqe = io_uring_get_sqe(&p->ring);
	io_uring_prep_read_fixed(sqe, pipefd[0], buf, 1, 0, 0);
	if (io_uring_submit(&p->ring) != 1 || io_uring_peek_cqe(&p->ring, &cqe) == 0)
		goto out_ring;
	if (pthread_create(&thread, NULL, uring_probe_unregister, p) != 0)
		goto out_ring;

	*why = "no answer within the probe's bound (or no /proc)";
	for (i = 0; i < URING_PROBE_POLLS; i++) {
		int tid = atomic_load(&p->tid);

		if (atomic_load(&p->returned)) {
			*why = "unregister returned while a request used the buffer";
			break;
		}
		if (tid && uring_probe_sleeps_in_register(tid)) {
			answer = URING_UNREG_WAITS;
			*why = "unregister waits for the requests using the buffer";
			break;
		}
		nanosleep(&(struct timespec){ 0, 1000000L }, NULL);
	}
	/* Ends the read, and with it a waiting unregister. */
	if (write(pipefd[1], "", 1) != 1)
		answer = URING_UNREG_RETURNS;
	pthread_join(thread, NULL);
	if (p->result < 0)
		answer = URING_UNREG_RETURNS;
out_ring:
	io_uring_queue_exit(&p->ring);
out_pipe:
	close(pipefd[0]);
	close(pipefd[1]);
out_unmap:
	munmap(buf, 4096);
out_free:
	free(p);
	return answer;
}

static bool uring_unregister_waits(struct daxpool_ctx *ctx)
{
	static atomic_int known = URING_UNREG_UNKNOWN;
	static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
	enum uring_unreg answer = atomic_load(&known);
	const char *why;

	if (answer != URING_UNREG_UNKNOWN)
		return answer == URING_UNREG_WAITS;
	pthread_mutex_lock(&lock);
	answer = atomic_load(&known);
	if (answer == URING_UNREG_UNKNOWN) {
		answer = uring_probe_unregister_waits(&why);
		/* The test hook: the path of a kernel that does not wait, on one that does. */
		if (secure_getenv("DAXPOOL_TEST_URING_UNREGISTER_RETURNS"))
			answer = URING_UNREG_RETURNS, why = "DAXPOOL_TEST_URING_UNREGISTER_RETURNS";
		log_info(ctx, "io_uring: %s", why);
		atomic_store(&known, answer);
	}
	pthread_mutex_unlock(&lock);
	return answer == URING_UNREG_WAITS;
}

/*
 * Unregister once, whether a zap or the last unref comes first. The kernel
 * waits for the requests that use the buffer (uring_unregister_waits() said
 * so before anything was registered); a signal can interrupt that wait, and
 * then the buffer is still registered: ask again.
 */
static void uring_unregister(struct daxpool_pin *pin)
{
	struct dp_pin_ext *ext = dp_pin_ext_get(pin);
	bool expected = true;
	int r;

	if (!atomic_compare_exchange_strong(&ext->io.uring.registered, &expected, false))
		return;
	do
		r = io_uring_unregister_buffers(ext->io.uring.ring);
	while (r == -EINTR || r == -EAGAIN);
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
	if (!uring_unregister_waits(region->ctx)) {
		/* An unregister that does not wait for the I/O is no revoke. */
		atomic_store_explicit(probe, -1, memory_order_relaxed);
		log_notice(region->ctx, "%s: this kernel's io_uring does not wait for the requests "
					"using a buffer it unregisters, so a revoke could not stop "
					"them: use per-request pins",
			   region->path);
		return 0;
	}

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
