/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The configuration file, /etc/daxpool/daxpoold.conf: one "key = value" a
 * line, '#' starts a comment. Keys:
 *	socket           the unix socket path (default /run/daxpool/daxpoold.sock)
 *	socket_mode      its permissions, octal (default 0660)
 *	release_timeout  seconds a release waits for holders by default (default 30)
 */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daxpoold.h"

void dd_config_defaults(struct dd_config *cfg)
{
	snprintf(cfg->socket_path, sizeof(cfg->socket_path), "%s", DP_DAEMON_SOCKET_DEFAULT);
	cfg->socket_mode = 0660;
	cfg->release_timeout_ms = 30000;
}

static char *trim(char *s)
{
	char *e;

	while (isspace((unsigned char)*s))
		s++;
	e = s + strlen(s);
	while (e > s && isspace((unsigned char)e[-1]))
		*--e = '\0';
	return s;
}

static int config_set(struct dd_config *cfg, const char *key, const char *val)
{
	char *end;
	long v;

	if (strcmp(key, "socket") == 0) {
		if (val[0] != '/' || strlen(val) >= sizeof(cfg->socket_path))
			return -EINVAL;
		snprintf(cfg->socket_path, sizeof(cfg->socket_path), "%s", val);
		return 0;
	}
	errno = 0;
	if (strcmp(key, "socket_mode") == 0) {
		v = strtol(val, &end, 8);
		if (errno || *end || v < 0 || v > 0777)
			return -EINVAL;
		cfg->socket_mode = (unsigned int)v;
		return 0;
	}
	if (strcmp(key, "release_timeout") == 0) {
		v = strtol(val, &end, 10);
		if (errno || *end || v < 0 || v > 86400)
			return -EINVAL;
		cfg->release_timeout_ms = (int)(v * 1000);
		return 0;
	}
	return -ENOENT;
}

int dd_config_load(struct dd_config *cfg, const char *path, bool required)
{
	char line[512];
	unsigned int n = 0;
	FILE *f;
	int r = 0;

	f = fopen(path, "re");
	if (!f) {
		r = -errno;
		if (r == -ENOENT && !required)
			return 0;
		dd_log(LOG_ERR, "%s: %s", path, strerror(-r));
		return r;
	}
	while (fgets(line, sizeof(line), f)) {
		char *s, *eq, *hash;

		n++;
		hash = strchr(line, '#');
		if (hash)
			*hash = '\0';
		s = trim(line);
		if (!*s)
			continue;
		eq = strchr(s, '=');
		if (!eq) {
			dd_log(LOG_ERR, "%s:%u: expected key = value", path, n);
			r = -EINVAL;
			break;
		}
		*eq = '\0';
		switch (config_set(cfg, trim(s), trim(eq + 1))) {
		case 0:
			break;
		case -ENOENT:
			dd_log(LOG_WARNING, "%s:%u: unknown key '%s' ignored", path, n, trim(s));
			break;
		default:
			dd_log(LOG_ERR, "%s:%u: bad value for '%s'", path, n, trim(s));
			r = -EINVAL;
		}
		if (r < 0)
			break;
	}
	fclose(f);
	return r;
}
