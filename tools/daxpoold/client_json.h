/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* A client and what it holds, as the JSON of status and of holder reports. Main thread. */
#ifndef DAXPOOLD_CLIENT_JSON_H
#define DAXPOOLD_CLIENT_JSON_H

#include <stdbool.h>
#include <stdint.h>

#include <json-c/json.h>

#include "manager.h"

/* @c and what it holds: of (dev, ino) only when @filter. "draining" is asked of @m. */
json_object *dd_client_json(const struct dd_manager *m, const struct dd_conn *c, bool filter,
			    uint64_t dev, uint64_t ino);
/* "map", "transient", "longterm". */
const char *dd_pin_kind_name(uint32_t kind);

#endif /* DAXPOOLD_CLIENT_JSON_H */
