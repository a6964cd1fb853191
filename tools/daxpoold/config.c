/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The configuration file, /etc/daxpool/daxpoold.conf: one "key = value" a
 * line, '#' starts a comment. Keys:
 *	socket           the unix socket path (default /run/daxpool/daxpoold.sock)
 *	socket_mode      its permissions, octal (default 0660)
 *	socket_group     its group, by name (default: the daemon's)
 *	release_timeout  seconds a release waits for holders by default (default 30)
 *	hello_timeout    seconds a new connection has to send HELLO (default 10)
 *	scan_timeout     seconds a scan of /proc has before it is answered without (default 5)
 *	max_connections, max_connections_per_uid, max_regions, max_maps,
 *	max_pins, max_output, max_operations_per_uid, max_scans_per_uid: the limits (daxpoold.conf(5) says why these
 *	defaults)
 */
#include <ctype.h>
#include <stddef.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "log.h"
#include "util/protocol.h"

void dd_config_defaults(struct dd_config *cfg)
{
	*cfg = (struct dd_config){ 0 };
	snprintf(cfg->socket_path, sizeof(cfg->socket_path), "%s", DP_DAEMON_SOCKET_DEFAULT);
	cfg->socket_mode = 0660;
	cfg->release_timeout_ms = 30000;
	cfg->max_connections = 512;
	cfg->max_connections_per_uid = 128;
	cfg->max_regions = 1024;
	cfg->max_maps = 65536;
	cfg->max_pins = 65536;
	cfg->max_output = 64u << 20;
	cfg->max_operations_per_uid = 8;
	cfg->max_scans_per_uid = 4;
	cfg->hello_timeout_ms = 10000;
	cfg->scan_timeout_ms = 5000;
	cfg->mr_tracer = true;
}

/* Whole seconds in [@min, @max] as milliseconds into *@ret_ms. Return 0 or -EINVAL. */
static int parse_seconds(const char *val, long min, long max, int *ret_ms)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(val, &end, 10);
	if (errno || end == val || *end || v < min || v > max)
		return -EINVAL;
	*ret_ms = (int)(v * 1000);
	return 0;
}

/* A count in [1, @max]; *ret set. Return 0 or -EINVAL. */
static int parse_count(const char *val, unsigned long max, unsigned long *ret)
{
	char *end;
	unsigned long v;

	if (!isdigit((unsigned char)*val))
		return -EINVAL;
	errno = 0;
	v = strtoul(val, &end, 10);
	if (errno || v < 1 || v > max)
		return -EINVAL;
	switch (*end) {
	case '\0':
		break;
	case 'K':
	case 'k':
		v = v > max >> 10 ? max + 1 : v << 10;
		end++;
		break;
	case 'M':
		v = v > max >> 20 ? max + 1 : v << 20;
		end++;
		break;
	case 'G':
		v = v > max >> 30 ? max + 1 : v << 30;
		end++;
		break;
	default:
		return -EINVAL;
	}
	if (*end || v > max)
		return -EINVAL;
	*ret = v;
	return 0;
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
	if (strcmp(key, "socket_group") == 0) {
		if (!val[0] || strlen(val) >= sizeof(cfg->socket_group))
			return -EINVAL;
		snprintf(cfg->socket_group, sizeof(cfg->socket_group), "%s", val);
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
	static const struct {
		const char *key;
		size_t off;
		unsigned long min, max;
	} counts[] = {
		{ "max_connections", offsetof(struct dd_config, max_connections), 1, 1u << 20 },
		{ "max_connections_per_uid", offsetof(struct dd_config, max_connections_per_uid), 1,
		  1u << 20 },
		{ "max_regions", offsetof(struct dd_config, max_regions), 1, 1u << 20 },
		{ "max_maps", offsetof(struct dd_config, max_maps), 1, 1u << 24 },
		{ "max_pins", offsetof(struct dd_config, max_pins), 1, 1u << 24 },
		{ "max_operations_per_uid", offsetof(struct dd_config, max_operations_per_uid), 1,
		  4096 },
		{ "max_scans_per_uid", offsetof(struct dd_config, max_scans_per_uid), 1, 64 },
	};
	unsigned long u;

	for (size_t i = 0; i < sizeof(counts) / sizeof(counts[0]); i++) {
		if (strcmp(key, counts[i].key) != 0)
			continue;
		if (parse_count(val, counts[i].max, &u) < 0 || u < counts[i].min)
			return -EINVAL;
		*(unsigned int *)((char *)cfg + counts[i].off) = (unsigned int)u;
		return 0;
	}
	if (strcmp(key, "max_output") == 0) {
		/* At least one whole datagram, so any single message can be queued. */
		if (parse_count(val, 1ul << 34, &u) < 0 || u < DP_PROTO_MAX_DGRAM)
			return -EINVAL;
		cfg->max_output = (size_t)u;
		return 0;
	}
	if (strcmp(key, "mr_tracer") == 0) {
		if (strcmp(val, "yes") == 0 || strcmp(val, "on") == 0)
			cfg->mr_tracer = true;
		else if (strcmp(val, "no") == 0 || strcmp(val, "off") == 0)
			cfg->mr_tracer = false;
		else
			return -EINVAL;
		return 0;
	}
	if (strcmp(key, "hello_timeout") == 0)
		return parse_seconds(val, 1, 3600, &cfg->hello_timeout_ms);
	if (strcmp(key, "scan_timeout") == 0)
		return parse_seconds(val, 1, 3600, &cfg->scan_timeout_ms);
	if (strcmp(key, "release_timeout") == 0)
		return parse_seconds(val, 0, 86400, &cfg->release_timeout_ms);
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
