/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* io_uring with pins: per-request pins until reaped, revocation that cancels, registered buffers. */
#include <fcntl.h>
#include <liburing.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <syslog.h>
#include <unistd.h>

#include "daxpool.h"
#include "harness.h"

#define REGION_SIZE (16ull << 20)
#define IO_SIZE (64u << 10)

struct fixture {
	struct daxpool_ctx *ctx;
	struct daxpool_region *region;
	struct daxpool_map *map;
	char *base;
	struct io_uring ring;
};

static struct fixture setup(void)
{
	struct fixture f = { 0 };
	int r;

	CHECK_OK(daxpool_ctx_new(&f.ctx));
	CHECK_OK(daxpool_ctx_set_log_priority(f.ctx, LOG_CRIT));
	CHECK_OK(daxpool_region_open(f.ctx, fixture_backing(REGION_SIZE), 0, &f.region));
	CHECK_OK(daxpool_map_new(f.region, 0, daxpool_region_get_alignment(f.region) > 4 * IO_SIZE
						     ? daxpool_region_get_alignment(f.region)
						     : 4 * IO_SIZE,
				 0, &f.map));
	f.base = daxpool_map_get_address(f.map);
	r = io_uring_queue_init(8, &f.ring, 0);
	if (r == -ENOSYS || r == -EPERM)
		SKIP("io_uring is not available here (%s)", strerror(-r));
	CHECK_OK(r);
	return f;
}

static void teardown(struct fixture *f)
{
	io_uring_queue_exit(&f->ring);
	CHECK_EQ(daxpool_region_get_pin_count(f->region, 0), 0);
	daxpool_map_unref(f->map);
	daxpool_region_unref(f->region);
	daxpool_ctx_unref(f->ctx);
}

static int data_file(size_t size)
{
	char path[4096];
	int fd;

	snprintf(path, sizeof(path), "%s/uring-data", fixture_dir());
	fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	CHECK(fd >= 0);
	for (size_t i = 0; i < size; i += 4096) {
		char page[4096];

		memset(page, (int)(i / 4096) + 1, sizeof(page));
		CHECK_EQ(pwrite(fd, page, sizeof(page), (off_t)i), 4096);
	}
	return fd;
}

TEST(read_is_pinned_until_the_completion_is_reaped)
{
	struct fixture f = setup();
	struct io_uring_cqe *cqe;
	struct daxpool_pin *pin;
	int fd = data_file(IO_SIZE);

	CHECK_OK(daxpool_uring_prep_read(&f.ring, io_uring_get_sqe(&f.ring), f.map, fd, f.base,
					 IO_SIZE, 0, 42, &pin));
	CHECK_EQ(daxpool_pin_get_kind(pin), DAXPOOL_PIN_TRANSIENT);
	CHECK_EQ(daxpool_pin_get_access(pin), DAXPOOL_PIN_DEVICE_WRITE);
	CHECK_EQ(io_uring_submit(&f.ring), 1);
	CHECK_OK(io_uring_wait_cqe(&f.ring, &cqe));
	CHECK_EQ(cqe->user_data, 42);
	CHECK_EQ(cqe->res, IO_SIZE);
	/* Completed but not reaped by the application: still pinned. */
	CHECK_EQ(daxpool_ctx_is_pinned(f.ctx, f.base, IO_SIZE), 1);
	io_uring_cqe_seen(&f.ring, cqe);
	daxpool_pin_unref(pin);
	CHECK_EQ(daxpool_ctx_is_pinned(f.ctx, f.base, IO_SIZE), 0);
	CHECK_EQ(f.base[0], 1);
	CHECK_EQ(f.base[IO_SIZE - 1], IO_SIZE / 4096);
	close(fd);
	teardown(&f);
}

TEST(write_round_trip)
{
	struct fixture f = setup();
	struct io_uring_cqe *cqe;
	struct daxpool_pin *pin;
	int fd = data_file(IO_SIZE);
	char back[4096];

	memset(f.base, 0xee, 4096);
	CHECK_OK(daxpool_uring_prep_write(&f.ring, io_uring_get_sqe(&f.ring), f.map, fd, f.base,
					  4096, 4096, 7, &pin));
	CHECK_EQ(daxpool_pin_get_access(pin), DAXPOOL_PIN_DEVICE_READ);
	CHECK_EQ(io_uring_submit(&f.ring), 1);
	CHECK_OK(io_uring_wait_cqe(&f.ring, &cqe));
	CHECK_EQ(cqe->res, 4096);
	io_uring_cqe_seen(&f.ring, cqe);
	daxpool_pin_unref(pin);
	CHECK_EQ(pread(fd, back, sizeof(back), 4096), 4096);
	CHECK_EQ((unsigned char)back[100], 0xee);
	close(fd);
	teardown(&f);
}

TEST(zap_cancels_a_request_in_flight_and_reaches_idle)
{
	struct fixture f = setup();
	struct io_uring_cqe *cqe;
	struct daxpool_pin *pin;
	char *report = NULL;
	int p[2];

	/* A read from an empty pipe: in flight until cancelled. */
	CHECK_EQ(pipe(p), 0);
	CHECK_OK(daxpool_uring_prep_read(&f.ring, io_uring_get_sqe(&f.ring), f.map, p[0], f.base,
					 4096, (uint64_t)-1, 99, &pin));
	CHECK_EQ(io_uring_submit(&f.ring), 1);
	CHECK_EQ(io_uring_peek_cqe(&f.ring, &cqe), -EAGAIN);

	daxpool_map_unref(f.map); /* only the pin holds the map now */
	f.map = NULL;
	CHECK_EQ(daxpool_region_zap(f.region), 2);
	CHECK_EQ(daxpool_pin_is_valid(pin), 0);
	/* Cancelled synchronously: the completion is there now. */
	CHECK_OK(io_uring_peek_cqe(&f.ring, &cqe));
	CHECK_EQ(cqe->user_data, 99);
	CHECK_EQ(cqe->res, -ECANCELED);
	/* Not idle until the application reaps it and drops the pin. */
	CHECK_ERR(daxpool_region_wait_idle(f.region, 0, &report), ETIMEDOUT);
	CHECK(strstr(report, "transient"));
	free(report);
	io_uring_cqe_seen(&f.ring, cqe);
	daxpool_pin_unref(pin);
	CHECK_OK(daxpool_region_wait_idle(f.region, 0, NULL));
	close(p[0]);
	close(p[1]);
	io_uring_queue_exit(&f.ring);
	daxpool_region_unref(f.region);
	daxpool_ctx_unref(f.ctx);
}

/*
 * A zap between the prepare and the application's submit: the request is
 * still in the submission queue, where no cancel reaches it. It must not
 * reach the revoked range once submitted.
 */
TEST(zap_before_submit_disarms_the_request)
{
	struct fixture f = setup();
	struct io_uring_cqe *cqe;
	struct daxpool_pin *pin;
	int fd = data_file(IO_SIZE);

	memset(f.base, 0xaa, IO_SIZE);
	CHECK_OK(daxpool_uring_prep_read(&f.ring, io_uring_get_sqe(&f.ring), f.map, fd, f.base,
					 IO_SIZE, 0, 17, &pin));
	CHECK(daxpool_region_zap(f.region) >= 2);
	CHECK_EQ(daxpool_pin_is_valid(pin), 0);
	CHECK_EQ(io_uring_submit(&f.ring), 1);
	CHECK_OK(io_uring_wait_cqe(&f.ring, &cqe));
	CHECK_EQ(cqe->user_data, 17);
	CHECK_EQ(cqe->res, -EFAULT);
	io_uring_cqe_seen(&f.ring, cqe);
	/* Not a byte of the file reached the revoked range. */
	for (size_t i = 0; i < IO_SIZE; i++)
		if ((unsigned char)f.base[i] != 0xaa)
			CHECK_EQ((unsigned char)f.base[i], 0xaa);
	daxpool_pin_unref(pin);
	CHECK_EQ(daxpool_region_get_pin_count(f.region, 0), 0);
	close(fd);
	teardown(&f);
}

struct zapper {
	struct daxpool_region *region;
	int r;
	atomic_bool done;
};

static void *zap_thread(void *arg)
{
	struct zapper *z = arg;

	z->r = daxpool_region_zap(z->region);
	atomic_store(&z->done, true);
	return NULL;
}

/*
 * The application submits while the revoke runs: the pin is revoked, the
 * request enters the kernel, then daxpool disarms its entry (held open by
 * DAXPOOL_TEST_URING_REVOKE_DELAY_MS). The kernel has the request already:
 * the cancel must stop it, and the slot's bytes no longer matter.
 */
TEST(submit_during_the_revoke_is_cancelled)
{
	struct fixture f = setup();
	struct zapper z = { .region = f.region };
	struct io_uring_cqe *cqe;
	struct daxpool_pin *pin;
	pthread_t th;
	int p[2];

	CHECK_EQ(pipe(p), 0);
	memset(f.base, 0xaa, 4096);
	CHECK_OK(daxpool_uring_prep_read(&f.ring, io_uring_get_sqe(&f.ring), f.map, p[0], f.base,
					 4096, (uint64_t)-1, 23, &pin));
	CHECK_OK(setenv("DAXPOOL_TEST_URING_REVOKE_DELAY_MS", "500", 1));
	CHECK(pthread_create(&th, NULL, zap_thread, &z) == 0);
	/* Bounded: the zap marks the pin revoked before its revoke functions run. */
	for (int i = 0; i < 10000 && daxpool_pin_is_valid(pin); i++)
		usleep(1000);
	CHECK_EQ(daxpool_pin_is_valid(pin), 0);
	CHECK_EQ(io_uring_submit(&f.ring), 1);
	CHECK(pthread_join(th, NULL) == 0);
	CHECK(z.r >= 2);
	/* Data written now finds no read to land in. */
	CHECK_EQ(write(p[1], "x", 1), 1);
	CHECK_OK(io_uring_wait_cqe(&f.ring, &cqe));
	CHECK_EQ(cqe->user_data, 23);
	/* Cancelled in the kernel, or disarmed if the revoke won the race. */
	CHECK(cqe->res == -ECANCELED || cqe->res == -EFAULT);
	printf("# the request was %s\n", cqe->res == -ECANCELED ? "cancelled in the kernel"
								 : "disarmed before the kernel read it");
	io_uring_cqe_seen(&f.ring, cqe);
	CHECK_EQ((unsigned char)f.base[0], 0xaa);
	daxpool_pin_unref(pin);
	CHECK_OK(unsetenv("DAXPOOL_TEST_URING_REVOKE_DELAY_MS"));
	close(p[0]);
	close(p[1]);
	teardown(&f);
}

/*
 * With a one-entry ring, the slot of a request the kernel took holds the
 * application's next one at once. A revoke of the first must disarm
 * nothing of the second (another buffer, outside the map).
 */
TEST(revoke_after_submit_leaves_the_next_entry_alone)
{
	struct fixture f = setup();
	struct io_uring_cqe *cqe;
	struct io_uring_sqe *sqe;
	struct daxpool_pin *pin;
	struct io_uring small;
	char own[4096];
	int fd = data_file(IO_SIZE);
	int p[2], seen = 0;

	CHECK_OK(io_uring_queue_init(1, &small, 0));
	CHECK_EQ(pipe(p), 0);
	CHECK_OK(daxpool_uring_prep_read(&small, io_uring_get_sqe(&small), f.map, p[0], f.base,
					 4096, (uint64_t)-1, 31, &pin));
	CHECK_EQ(io_uring_submit(&small), 1);
	sqe = io_uring_get_sqe(&small);
	CHECK(sqe != NULL);
	io_uring_prep_read(sqe, fd, own, sizeof(own), 4096);
	io_uring_sqe_set_data64(sqe, 32);
	CHECK(daxpool_region_zap(f.region) >= 2);
	CHECK_EQ(io_uring_submit(&small), 1);
	while (seen < 2) {
		CHECK_OK(io_uring_wait_cqe(&small, &cqe));
		if (cqe->user_data == 31)
			CHECK_EQ(cqe->res, -ECANCELED);
		else
			CHECK_EQ(cqe->res, (int)sizeof(own));
		io_uring_cqe_seen(&small, cqe);
		seen++;
	}
	CHECK_EQ(own[0], 2);
	daxpool_pin_unref(pin);
	io_uring_queue_exit(&small);
	close(p[0]);
	close(p[1]);
	close(fd);
	teardown(&f);
}

TEST(zapped_range_refuses_new_requests_and_leaves_the_sqe)
{
	struct fixture f = setup();
	struct daxpool_pin *pin = NULL;
	struct io_uring_sqe *sqe = io_uring_get_sqe(&f.ring);

	memset(sqe, 0x5a, sizeof(*sqe));
	CHECK(daxpool_region_zap(f.region) >= 1);
	CHECK_ERR(daxpool_uring_prep_read(&f.ring, sqe, f.map, 0, f.base, 4096, 0, 1, &pin), ENXIO);
	CHECK_EQ(sqe->opcode, 0x5a);
	CHECK_ERR(daxpool_uring_prep_read(NULL, sqe, f.map, 0, f.base, 4096, 0, 1, &pin), EINVAL);
	CHECK(pin == NULL);
	memset(sqe, 0, sizeof(*sqe));
	io_uring_prep_nop(sqe);
	teardown(&f);
}

/*
 * Registered buffers: whether the kernel takes a long-term pin of this
 * memory depends on the kernel and the kind (devdax: 6.12 yes, 6.1 no;
 * fsdax: never), and daxpool uses them only where the kernel's unregister
 * waits for the requests (6.1 to 6.12; not later ones). Both outcomes are
 * exercised: the registered path, and the fall-back to per-request pins,
 * which must then work.
 */
TEST(register_map_or_fall_back)
{
	struct fixture f = setup();
	struct io_uring_cqe *cqe;
	struct daxpool_pin *pin = NULL, *req;
	int fd = data_file(IO_SIZE);
	int r = daxpool_uring_register_map(&f.ring, f.map, &pin);

	CHECK(r == 0 || r == 1);
	printf("# %s region: registered buffers %s\n", fixture_backing_name(),
	       r ? "accepted" : "not used (the kernel refuses long-term pins of this memory, or its "
			"unregister does not wait for requests): per-request pins");
	if (fixture_backing_kind() == FIXTURE_FSDAX)
		CHECK_EQ(r, 0); /* the kernel never pins fsdax long-term */
	if (r == 1) {
		struct io_uring_sqe *sqe = io_uring_get_sqe(&f.ring);

		CHECK_EQ(daxpool_pin_get_kind(pin), DAXPOOL_PIN_LONGTERM);
		CHECK_EQ(daxpool_region_get_pin_count(f.region, DAXPOOL_PIN_LONGTERM), 1);
		io_uring_prep_read_fixed(sqe, fd, f.base, IO_SIZE, 0, 0);
		CHECK_EQ(io_uring_submit(&f.ring), 1);
		CHECK_OK(io_uring_wait_cqe(&f.ring, &cqe));
		CHECK_EQ(cqe->res, IO_SIZE);
		io_uring_cqe_seen(&f.ring, cqe);
		CHECK_EQ(f.base[4096], 2);
		/* A second registration on the same ring is refused, not stacked. */
		{
			struct daxpool_pin *again = NULL;

			CHECK_ERR(daxpool_uring_register_map(&f.ring, f.map, &again), EBUSY);
		}
		/* A zap unregisters; the pin goes when the holder drops it. */
		CHECK(daxpool_region_zap(f.region) >= 2);
		CHECK_EQ(daxpool_pin_is_valid(pin), 0);
		/* A request on the revoked buffer, submitted after: refused, nothing read. */
		f.base[4096] = 0x77;
		sqe = io_uring_get_sqe(&f.ring);
		io_uring_prep_read_fixed(sqe, fd, f.base, IO_SIZE, 0, 0);
		CHECK_EQ(io_uring_submit(&f.ring), 1);
		CHECK_OK(io_uring_wait_cqe(&f.ring, &cqe));
		CHECK(cqe->res < 0);
		io_uring_cqe_seen(&f.ring, cqe);
		CHECK_EQ(f.base[4096], 0x77);
		daxpool_pin_unref(pin);
	} else {
		CHECK(pin == NULL);
		/* The probe is remembered: a second call answers without the kernel. */
		CHECK_EQ(daxpool_uring_register_map(&f.ring, f.map, &pin), 0);
		CHECK_OK(daxpool_uring_prep_read(&f.ring, io_uring_get_sqe(&f.ring), f.map, fd,
						 f.base, IO_SIZE, 0, 5, &req));
		CHECK_EQ(io_uring_submit(&f.ring), 1);
		CHECK_OK(io_uring_wait_cqe(&f.ring, &cqe));
		CHECK_EQ(cqe->res, IO_SIZE);
		io_uring_cqe_seen(&f.ring, cqe);
		daxpool_pin_unref(req);
	}
	close(fd);
	teardown(&f);
}

/* A read of an empty pipe into the ring's registered buffer: pending until the pipe is written. */
static void submit_pending_pipe_read(struct io_uring *ring, int pipe_rd, void *buf)
{
	struct io_uring_cqe *cqe;

	io_uring_prep_read_fixed(io_uring_get_sqe(ring), pipe_rd, buf, 1, 0, 0);
	CHECK_EQ(io_uring_submit(ring), 1);
	CHECK_ERR(io_uring_peek_cqe(ring, &cqe), EAGAIN);
}

struct late_writer {
	int fd;
	atomic_bool stop, wrote;
};

/* Writes one byte after at most 2 s, or at once when told to stop. */
static void *late_write(void *arg)
{
	struct late_writer *w = arg;
	int i;

	for (i = 0; i < 200 && !atomic_load(&w->stop); i++)
		usleep(10000);
	atomic_store(&w->wrote, true);
	CHECK_EQ(write(w->fd, "x", 1), 1);
	return NULL;
}

/*
 * daxpool registers a buffer only where the kernel's unregister waits for the
 * requests using it (else a revoke would not stop them). The test asks the
 * kernel its own way: an unregister from this thread while a read is pending,
 * with a writer that ends the read after 2 s. On a file region (which every
 * kernel pins long-term) daxpool's answer must be the kernel's.
 */
TEST(registered_buffers_only_where_unregister_waits)
{
	struct fixture f = setup();
	struct late_writer w = { 0 };
	struct daxpool_pin *pin = NULL;
	struct io_uring probe;
	struct iovec iov;
	pthread_t writer;
	bool waits;
	int p[2], r;
	void *buf;

	if (fixture_backing_kind() != FIXTURE_FILE)
		SKIP("the kernel's long-term pin rules for %s decide first", fixture_backing_name());
	buf = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	CHECK(buf != MAP_FAILED);
	CHECK_OK(pipe(p));
	CHECK_OK(io_uring_queue_init(2, &probe, 0));
	iov.iov_base = buf;
	iov.iov_len = 4096;
	CHECK_OK(io_uring_register_buffers(&probe, &iov, 1));
	submit_pending_pipe_read(&probe, p[0], buf);
	w.fd = p[1];
	CHECK_OK(-pthread_create(&writer, NULL, late_write, &w));
	CHECK_OK(io_uring_unregister_buffers(&probe));
	waits = atomic_load(&w.wrote);
	atomic_store(&w.stop, true);
	CHECK_OK(-pthread_join(writer, NULL));
	io_uring_queue_exit(&probe);
	printf("# this kernel's unregister %s\n",
	       waits ? "waited for the pending read" : "returned while a read was pending");

	r = daxpool_uring_register_map(&f.ring, f.map, &pin);
	CHECK(r == 0 || r == 1);
	CHECK_EQ(r == 1, waits);
	if (r == 1)
		daxpool_pin_unref(pin);
	close(p[0]);
	close(p[1]);
	munmap(buf, 4096);
	teardown(&f);
}

/* The other path on any kernel: told the kernel does not wait, daxpool registers nothing. */
TEST(no_registered_buffer_where_unregister_would_not_wait)
{
	struct fixture f;
	struct daxpool_pin *pin = NULL;

	setenv("DAXPOOL_TEST_URING_UNREGISTER_RETURNS", "1", 1);
	f = setup();
	CHECK_EQ(daxpool_uring_register_map(&f.ring, f.map, &pin), 0);
	CHECK(pin == NULL);
	/* Nothing is left registered on the application's ring. */
	CHECK_ERR(io_uring_unregister_buffers(&f.ring), ENXIO);
	teardown(&f);
}

/*
 * Where daxpool registers a buffer, a zap does not return while a request
 * that uses it is pending: the device could still write the range.
 */
TEST(zap_of_a_registered_buffer_waits_for_its_pending_request)
{
	struct fixture f = setup();
	struct daxpool_pin *pin = NULL;
	struct io_uring_cqe *cqe;
	struct zapper z = { .region = f.region };
	pthread_t thread;
	int p[2], i;

	if (daxpool_uring_register_map(&f.ring, f.map, &pin) != 1)
		SKIP("no registered buffers on %s here (the kernel refuses, or its unregister does "
		     "not wait)", fixture_backing_name());
	CHECK_OK(pipe(p));
	submit_pending_pipe_read(&f.ring, p[0], f.base);
	CHECK_OK(-pthread_create(&thread, NULL, zap_thread, &z));
	for (i = 0; i < 20; i++) {
		CHECK(!atomic_load(&z.done));
		usleep(10000);
	}
	CHECK_EQ(write(p[1], "x", 1), 1);
	CHECK_OK(-pthread_join(thread, NULL));
	CHECK(z.r >= 1);
	CHECK_OK(io_uring_wait_cqe(&f.ring, &cqe));
	CHECK_EQ(cqe->res, 1);
	io_uring_cqe_seen(&f.ring, cqe);
	CHECK_EQ(daxpool_pin_is_valid(pin), 0);
	daxpool_pin_unref(pin);
	close(p[0]);
	close(p[1]);
	teardown(&f);
}
