/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * What the RDMA middleware tests (libfabric, UCX) share in the vm tier: an
 * rxe device that rdma_cm can use, the kernel's RDMA MR table and the
 * checks of what the traffic left. Compiled into each such test with
 * devdax_fixture.c (the device's state).
 */
#ifndef DAXPOOL_TEST_MIDDLEWARE_FIXTURE_H
#define DAXPOOL_TEST_MIDDLEWARE_FIXTURE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* The rxe device on a dummy netdev, and its IPv4 address (rdma_cm cannot bind 127.0.0.1). */
#define MW_NETDEV "dpfab0"
#define MW_RXE "rxefab0"
#define MW_ADDR "10.199.0.1"
/* iproute2's rdma by its path: in the vm tier, PATH also holds the test named rdma. */
#define MW_RDMA_TOOL "/usr/bin/rdma"

/*
 * The devdax device (DAXPOOL_TEST_DEVDAX) and an rxe device with an address
 * for rdma_cm (made on first use: the rdma_ucm and dummy modules, MW_NETDEV,
 * MW_RXE); skips (or fails under DAXPOOL_TEST_REQUIRE=1) when one cannot be
 * had. Return: the devdax device's path.
 */
const char *mw_need_devdax_and_rdma_cm(void);

/* How many MRs of @pid of @min_len to @max_len bytes the kernel's RDMA MR table lists. */
int mw_mrs_of(pid_t pid, size_t min_len, size_t max_len);

/* A byte from @fd within @ms milliseconds; the byte, or 0 (end of file or timeout). */
char mw_read_within(int fd, int ms);

/*
 * What RDMA writes left in @target (@len bytes, mapped again after the
 * release): each write filled one @chunk slot, the slot of its sequence
 * number modulo the slot count, with that number (64-bit words), and the
 * writer completed @last (at least @min) of them, numbered from 1. Checks
 * that the target acknowledged @last as the writer's last, that every slot
 * holds one whole write, that none holds a write after @last, and that the
 * slot of @last holds it.
 */
void mw_check_landed(const char *target, size_t len, size_t chunk, uint64_t last, uint64_t acked,
		     uint64_t min);

#endif
