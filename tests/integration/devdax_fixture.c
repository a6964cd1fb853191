/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The vm tier's devdax device for the daxpoold end-to-end tests (devdax_fixture.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include "devdax_fixture.h"
#include "harness.h"

const char *need_devdax(void)
{
	const char *dev = getenv("DAXPOOL_TEST_DEVDAX");

	if (!dev || !*dev || access(dev, R_OK) != 0)
		fixture_missing("a devdax device (DAXPOOL_TEST_DEVDAX)");
	return dev;
}

const char *need_devdax_and_rdma(void)
{
	const char *dev = need_devdax();

	if (!getenv("DAXPOOL_TEST_RDMA_DEV"))
		fixture_missing("an RDMA device (DAXPOOL_TEST_RDMA_DEV)");
	return dev;
}

const char *devname_of(const char *path)
{
	const char *slash = strrchr(path, '/');

	return slash ? slash + 1 : path;
}

bool devdax_enabled(const char *name)
{
	char p[128];

	snprintf(p, sizeof(p), "/sys/bus/dax/devices/%s/driver", name);
	return access(p, F_OK) == 0;
}

void devdax_enable(const char *name)
{
	char cmd[128];

	snprintf(cmd, sizeof(cmd), "daxctl enable-device %s >/dev/null 2>&1", name);
	if (system(cmd) != 0)
		printf("# daxctl enable-device %s failed\n", name);
}

json_object *outsider_of(json_object *doc, pid_t pid)
{
	json_object *outs = json_object_object_get(doc, "outsiders");

	for (size_t i = 0; i < json_object_array_length(outs); i++) {
		json_object *o = json_object_array_get_idx(outs, i);

		if (json_object_get_int(json_object_object_get(o, "pid")) == pid)
			return o;
	}
	return NULL;
}

bool lists_mr(json_object *o, uint64_t length)
{
	json_object *mrs = json_object_object_get(o, "rdma_mrs");

	for (size_t i = 0; i < json_object_array_length(mrs); i++)
		if (json_object_get_uint64(json_object_object_get(json_object_array_get_idx(mrs, i),
								  "length")) == length)
			return true;
	return false;
}

#ifdef DAXPOOL_HAVE_RDMA
#include "kfacts_rdma.h" /* the loopback helpers of the kernel-fact tests */

/*
 * A process outside daxpool holding an RDMA MR, named @comm: on the first
 * @mr_len bytes of a shared mapping of device @dev, or with @dev NULL on
 * anonymous memory. @unmap: once the MR is registered it unmaps the device
 * and closes it, keeping the MR (a registration cache's idle entry): the
 * pages stay pinned with nothing mapping them. Returns once the MR is
 * registered (and, @unmap, the device let go); a byte on *ret_go makes it
 * deregister (while the device is still there: the safe order) and exit 0.
 */
enum holder_kind {
	MR_MAPPED,	 /* the MR on the mapped device */
	MR_UNMAPPED,	 /* the MR on the device, which it then unmapped and closed */
	MR_ELSEWHERE,	 /* it had the device and let it go, then an MR on anonymous memory */
	MR_ELSEWHERE_EXEC, /* the same, then an exec that keeps the MR (a shell waits for go) */
};

static pid_t start_holder(const char *dev, size_t mr_len, const char *comm, enum holder_kind kind,
			  int *ret_go)
{
	int pfd[2], go[2];
	char c;
	pid_t pid;

	CHECK(pipe(pfd) == 0 && pipe(go) == 0);
	pid = fork();
	CHECK(pid >= 0);
	if (pid == 0) {
		struct ibv_context *verbs = kf_rdma_open(getenv("DAXPOOL_TEST_RDMA_DEV"));
		struct ibv_pd *pd = verbs ? ibv_alloc_pd(verbs) : NULL;
		size_t map_len = dev ? 2u << 20 : mr_len;
		int fd = dev ? open(dev, O_RDWR) : -1;
		char *p = mmap(NULL, map_len, PROT_READ | PROT_WRITE,
			       dev ? MAP_SHARED : MAP_PRIVATE | MAP_ANONYMOUS, fd, 0);
		struct ibv_mr *mr;

		prctl(PR_SET_NAME, comm);
		prctl(PR_SET_PDEATHSIG, SIGKILL); /* a failed test leaves no pin behind */
		CHECK(pd && p != MAP_FAILED);
		if (kind == MR_ELSEWHERE || kind == MR_ELSEWHERE_EXEC) {
			CHECK(dev);
			p[0] = 1;
			CHECK(munmap(p, map_len) == 0);
			CHECK(close(fd) == 0);
			map_len = mr_len;
			p = mmap(NULL, map_len, PROT_READ | PROT_WRITE,
				 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
			CHECK(p != MAP_FAILED);
		}
		mr = ibv_reg_mr(pd, p, mr_len, MR_ACCESS);
		CHECK(mr);
		if (kind == MR_UNMAPPED) {
			CHECK(dev);
			CHECK(munmap(p, map_len) == 0);
			CHECK(close(fd) == 0);
		}
		if (kind == MR_ELSEWHERE_EXEC) {
			/*
			 * The RDMA context survives the exec (its descriptor is
			 * not close-on-exec), and with it the MR, pinned in the
			 * mm of the image before: the new image says it is ready.
			 */
			CHECK(fcntl(verbs->cmd_fd, F_SETFD, 0) == 0);
			CHECK(dup2(pfd[1], 3) == 3 && dup2(go[0], 0) == 0);
			execl("/bin/sh", "sh", "-c", "echo r >&3; read x; exit 0", (char *)NULL);
			_exit(127);
		}
		CHECK(write(pfd[1], "r", 1) == 1);
		CHECK(read(go[0], &c, 1) == 1);
		CHECK(ibv_dereg_mr(mr) == 0);
		if (kind != MR_UNMAPPED)
			munmap(p, map_len);
		ibv_dealloc_pd(pd);
		ibv_close_device(verbs);
		_exit(0);
	}
	close(pfd[1]);
	close(go[0]);
	CHECK(read(pfd[0], &c, 1) == 1);
	close(pfd[0]);
	*ret_go = go[1];
	return pid;
}

pid_t start_mr_holder(const char *dev, size_t mr_len, const char *comm, bool unmap, int *ret_go)
{
	return start_holder(dev, mr_len, comm, unmap ? MR_UNMAPPED : MR_MAPPED, ret_go);
}

pid_t start_opener_with_mr_elsewhere(const char *dev, size_t mr_len, const char *comm,
				     int *ret_go)
{
	return start_holder(dev, mr_len, comm, MR_ELSEWHERE, ret_go);
}

pid_t start_opener_with_mr_elsewhere_then_exec(const char *dev, size_t mr_len, int *ret_go)
{
	return start_holder(dev, mr_len, "opener-exec", MR_ELSEWHERE_EXEC, ret_go);
}
#endif
