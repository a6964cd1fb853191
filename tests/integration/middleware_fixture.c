/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* What the RDMA middleware tests share (middleware_fixture.h). */
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "daemon_harness.h"
#include "devdax_fixture.h"
#include "harness.h"
#include "middleware_fixture.h"

const char *mw_need_devdax_and_rdma_cm(void)
{
	const char *dev = need_devdax_and_rdma();

	if (geteuid() != 0)
		fixture_missing("root (to add a dummy netdev and an rxe device for rdma_cm)");
	if (access("/sys/class/infiniband/" MW_RXE, F_OK) != 0) {
		if (shell("modprobe rdma_ucm") != 0)
			fixture_missing("the rdma_ucm module (rdma_cm from user space)");
		if (access("/sys/class/net/" MW_NETDEV, F_OK) != 0 &&
		    (shell("modprobe dummy") != 0 || shell("ip link add " MW_NETDEV " type dummy") != 0))
			fixture_missing("a dummy netdev (module dummy, ip)");
		if (shell("ip addr replace " MW_ADDR "/24 dev " MW_NETDEV) != 0 ||
		    shell("ip link set " MW_NETDEV " up") != 0 ||
		    shell(MW_RDMA_TOOL " link add " MW_RXE " type rxe netdev " MW_NETDEV) != 0) {
			shell("ip addr show " MW_NETDEV "; " MW_RDMA_TOOL " link show; dmesg | tail -n 5");
			fixture_missing("an rxe device on a dummy netdev with an address (ip, rdma)");
		}
	}
	if (access("/dev/infiniband/rdma_cm", F_OK) != 0)
		fixture_missing("/dev/infiniband/rdma_cm");
	return dev;
}

int mw_mrs_of(pid_t pid, size_t min_len, size_t max_len)
{
	char line[512], p[32];
	int n = 0;
	FILE *f = popen(MW_RDMA_TOOL " resource show mr 2>/dev/null", "r");

	CHECK(f);
	snprintf(p, sizeof(p), " pid %d ", (int)pid);
	while (fgets(line, sizeof(line), f)) {
		const char *l = strstr(line, " mrlen ");
		unsigned long long len = l ? strtoull(l + 7, NULL, 10) : 0;

		if (strstr(line, p) && l && len >= min_len && len <= max_len)
			n++;
	}
	pclose(f);
	return n;
}

char mw_read_within(int fd, int ms)
{
	struct pollfd pfd = { fd, POLLIN, 0 };
	char c;

	if (poll(&pfd, 1, ms) != 1 || read(fd, &c, 1) != 1)
		return 0;
	return c;
}

void mw_check_landed(const char *target, size_t len, size_t chunk, uint64_t last, uint64_t acked,
		     uint64_t min)
{
	size_t slots = len / chunk;

	printf("# %llu writes, the last acknowledged: %llu\n", (unsigned long long)last,
	       (unsigned long long)acked);
	CHECK(last >= min);
	CHECK_EQ(acked, last); /* the writer stopped where it said it did */
	for (size_t s = 0; s < slots; s++) {
		const uint64_t *slot = (const uint64_t *)(target + s * chunk);

		for (size_t j = 0; j < chunk / sizeof(uint64_t); j++)
			CHECK_EQ(slot[j], slot[0]); /* whole writes only */
		CHECK(slot[0] <= last);		    /* nothing after the last acknowledged write */
		CHECK(slot[0] == 0 || slot[0] % slots == s);
	}
	CHECK_EQ(*(const uint64_t *)(target + (last % slots) * chunk), last);
}
