/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The step of an operation that may sleep (a device disable, a truncate or
 * punch of a leased file), on a thread of its own (worker.c). The loop
 * starts, polls and interrupts; the thread touches only its dd_work.
 */
#ifndef DAXPOOLD_WORKER_H
#define DAXPOOLD_WORKER_H

#include <limits.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "teardown.h"
#include "util/protocol.h"

enum { DD_WORK_DISABLE = 1, DD_WORK_TRUNCATE, DD_WORK_PUNCH, DD_WORK_TEARDOWN };

struct dd_work {
	/* in */
	int kind;
	int path_fd; /* truncate, punch: the O_PATH descriptor the request resolved */
	uint64_t dev, ino, offset, length;
	char devname[DP_PROTO_MAX_DEVNAME + 1]; /* disable */
	/* out */
	int result;
	char msg[PATH_MAX + 64];
	bool disabled;		     /* disable, teardown: the device was disabled */
	struct dd_teardown teardown; /* teardown: what was done */
	/* the thread's */
	pthread_t thread;
	bool started, done, interrupted;
};

/* Install the interrupt signal (SIGUSR1) and make the eventfd; its fd to poll, or -errno. */
int dd_worker_init(void);
void dd_worker_exit(void);
/* Read the eventfd (the loop's "some work ended"). */
void dd_worker_drain_event(void);
/* Run @w on a thread of its own (@w stays put until done). Return 0 or -errno. */
int dd_work_start(struct dd_work *w);
/* Whether @w ended (then joined: result and msg are set). */
bool dd_work_done(struct dd_work *w);
/* Interrupt @w's sleep in the kernel (its system call returns EINTR). */
void dd_work_interrupt(struct dd_work *w);

#endif /* DAXPOOLD_WORKER_H */
