/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The vm tier's devdax device for the daxpoold end-to-end tests (devdax_fixture.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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
