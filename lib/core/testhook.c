/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Test hooks: a delay the tests set through the environment to hold a race
 * window open at a point where a real system can be slow (a syscall on a
 * busy file, a thread descheduled). Unset, each costs a secure_getenv().
 */
#include <stdlib.h>
#include <time.h>

#include "private.h"

void dp_test_delay(const char *var)
{
	const char *e = secure_getenv(var);
	long ms = e ? strtol(e, NULL, 10) : 0;

	if (ms > 0)
		nanosleep(&(struct timespec){ ms / 1000, (ms % 1000) * 1000000L }, NULL);
}
