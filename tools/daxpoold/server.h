/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The event loop (server.c). */
#ifndef DAXPOOLD_SERVER_H
#define DAXPOOLD_SERVER_H

#include "manager.h"

/*
 * Serve @listen_fd with @m until SIGTERM or SIGINT; every connection and
 * operation is ended before it returns. Return 0, or -errno of a fatal error
 * (logged).
 */
int dd_server_run(struct dd_manager *m, int listen_fd);

#endif /* DAXPOOLD_SERVER_H */
