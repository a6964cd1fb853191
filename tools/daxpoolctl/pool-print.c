/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Printing shared by the pool subcommands (create, check, repair, info). */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <json-c/json.h>

#include "builtin.h"
#include "daxpool.h"

static void uuid_str(struct daxpool_pool *pool, char out[37])
{
	uint8_t u[16];

	daxpool_pool_get_uuid(pool, u);
	snprintf(out, 37, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x",
		 u[0], u[1], u[2], u[3], u[4], u[5], u[6], u[7], u[8], u[9], u[10], u[11], u[12],
		 u[13], u[14], u[15]);
}

json_object *daxpoolctl_pool_json(struct daxpool_pool *pool)
{
	json_object *o = json_object_new_object();
	char uuid[37];

	uuid_str(pool, uuid);
	json_object_object_add(o, "layout", json_object_new_string(daxpool_pool_get_layout(pool)));
	json_object_object_add(o, "uuid", json_object_new_string(uuid));
	json_object_object_add(o, "size", json_object_new_uint64(daxpool_pool_get_size(pool)));
	json_object_object_add(o, "alignment",
			       json_object_new_uint64(daxpool_pool_get_alignment(pool)));
	json_object_object_add(o, "data_offset",
			       json_object_new_uint64(daxpool_pool_get_data_offset(pool)));
	json_object_object_add(o, "max_extents",
			       json_object_new_int(daxpool_pool_get_max_extents(pool)));
	json_object_object_add(o, "extents",
			       json_object_new_int(daxpool_pool_get_extent_count(pool)));
	return o;
}

void daxpoolctl_pool_human(struct daxpool_pool *pool)
{
	char uuid[37];

	uuid_str(pool, uuid);
	printf("pool layout:             %s\n", daxpool_pool_get_layout(pool));
	printf("pool uuid:               %s\n", uuid);
	printf("pool size:               %llu\n", (unsigned long long)daxpool_pool_get_size(pool));
	printf("pool alignment:          %llu\n",
	       (unsigned long long)daxpool_pool_get_alignment(pool));
	printf("pool data offset:        %llu\n",
	       (unsigned long long)daxpool_pool_get_data_offset(pool));
	printf("pool extents:            %d of %d\n", daxpool_pool_get_extent_count(pool),
	       daxpool_pool_get_max_extents(pool));
}

void daxpoolctl_problem(struct daxpool_region *region, const char *where, int err,
			const char *message, int repaired, void *userdata)
{
	struct daxpoolctl_problems *p = userdata;
	const char *name = strerrorname_np(-err);

	if (p->json) {
		json_object *o = json_object_new_object();

		json_object_object_add(o, "where", json_object_new_string(where));
		json_object_object_add(o, "error", json_object_new_string(name ? name : "?"));
		json_object_object_add(o, "message", json_object_new_string(message));
		json_object_object_add(o, "repaired", json_object_new_boolean(repaired));
		json_object_array_add(p->list, o);
	} else {
		printf("%s: %s (%s)%s\n", where, message, name ? name : "?",
		       repaired ? ": repaired" : "");
	}
}
