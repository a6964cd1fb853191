/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* "Who holds what": the STATUS request (status.c). Main thread. */
#ifndef DAXPOOLD_STATUS_H
#define DAXPOOLD_STATUS_H

#include "manager.h"

/*
 * Answer @req's STATUS of @target ("" : everything @req's uid may see): its
 * clients and their holdings, the possible holders outside daxpool, the
 * operations, the device events and the open record.
 */
void dd_status(struct dd_manager *m, struct dd_conn *req, const char *target);

#endif /* DAXPOOLD_STATUS_H */
