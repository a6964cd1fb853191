/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* A client and what it holds, as JSON (client_json.h). */
#include <stdio.h>
#include <string.h>

#include "client_json.h"
#include "log.h"
#include "udev.h"

const char *dd_pin_kind_name(uint32_t kind)
{
	return kind == 2 ? "longterm" : kind == 1 ? "transient" : "map";
}

static const char *region_kind_name(uint32_t kind)
{
	return kind == 3 ? "devdax" : kind == 2 ? "fsdax" : "file";
}

static json_object *holding_json(const struct dd_holding *h, uint64_t now)
{
	json_object *o = json_object_new_object();

	json_object_object_add(o, "offset", json_object_new_uint64(h->offset));
	json_object_object_add(o, "length", json_object_new_uint64(h->length));
	json_object_object_add(o, "tid", json_object_new_int((int)h->tid));
	json_object_object_add(o, "age_s", json_object_new_double(
						   now > h->created_ns ? (double)(now - h->created_ns) / 1e9 : 0));
	if (h->kind) {
		char access[4] = "";

		if (h->access & 1)
			strcat(access, "r");
		if (h->access & 2)
			strcat(access, "w");
		json_object_object_add(o, "kind", json_object_new_string(dd_pin_kind_name(h->kind)));
		json_object_object_add(o, "device_access", json_object_new_string(access));
		if (h->owner)
			json_object_object_add(o, "owner", json_object_new_string(h->owner));
	}
	return o;
}

/* A region's file lease as the client reported it (REGION_STATE). */
static json_object *lease_json(const struct dd_region *r)
{
	static const char *const states[] = { "none",	 "off",	    "held",
					      "refused", "yielded", "broken" };
	json_object *o = json_object_new_object();

	json_object_object_add(o, "state", json_object_new_string(
						   r->lease < sizeof(states) / sizeof(states[0])
							   ? states[r->lease]
							   : "?"));
	json_object_object_add(o, "error", r->lease_error ? json_object_new_string(
								    strerror(-r->lease_error))
							  : NULL);
	json_object_object_add(o, "breaks", json_object_new_uint64(r->lease_breaks));
	return o;
}

json_object *dd_client_json(const struct dd_manager *m, const struct dd_conn *c, bool filter,
			    uint64_t dev, uint64_t ino)
{
	json_object *o = json_object_new_object(), *regions = json_object_new_array();
	uint64_t now = dd_now_ns();

	json_object_object_add(o, "pid", json_object_new_int(c->cred.pid));
	json_object_object_add(o, "uid", json_object_new_int((int)c->cred.uid));
	json_object_object_add(o, "comm", json_object_new_string(c->comm));
	json_object_object_add(o, "connected_s",
			       json_object_new_double((double)(now - c->connected_ns) / 1e9));
	for (struct dd_region *r = c->regions; r; r = r->next) {
		json_object *jr, *maps, *pins;

		if (filter && (r->dev != dev || r->ino != ino))
			continue;
		jr = json_object_new_object();
		maps = json_object_new_array();
		pins = json_object_new_array();
		json_object_object_add(jr, "path", json_object_new_string(r->path));
		json_object_object_add(jr, "device", r->devname[0] ? json_object_new_string(r->devname)
								   : NULL);
		json_object_object_add(jr, "kind", json_object_new_string(region_kind_name(r->kind)));
		json_object_object_add(jr, "size", json_object_new_uint64(r->size));
		json_object_object_add(jr, "draining", json_object_new_boolean(dd_manager_region_draining(m, r)));
		json_object_object_add(jr, "gone", json_object_new_boolean(dd_region_gone(r) < 0));
		json_object_object_add(jr, "lease", lease_json(r));
		dd_idmap_for_each(&c->maps, i, h)
		{
			if (h->region_id == r->id)
				json_object_array_add(maps, holding_json(h, now));
		}
		dd_idmap_for_each(&c->pins, j, h)
		{
			if (h->region_id == r->id)
				json_object_array_add(pins, holding_json(h, now));
		}
		json_object_object_add(jr, "maps", maps);
		json_object_object_add(jr, "pins", pins);
		json_object_array_add(regions, jr);
	}
	json_object_object_add(o, "regions", regions);
	return o;
}
