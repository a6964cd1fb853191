/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* daxpoolctl's side of the daxpoold protocol: one request, a JSON answer. */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "builtin.h"
#include "daemon.h"

int daemon_request(const char *cmd, const struct daemon_opts *o, const struct dp_msg *req,
		   json_object **ret_doc, int *ret_status)
{
	const char *path = o->socket ? o->socket : getenv("DAXPOOLD_SOCKET");
	uint8_t *buf = malloc(DP_PROTO_MAX_DGRAM);
	struct dp_msg *m = malloc(sizeof(*m));
	char *text = NULL;
	size_t len = 0;
	int fd, r, status = 0;
	bool more = true;

	if (!path || !*path)
		path = DP_DAEMON_SOCKET_DEFAULT;
	if (!buf || !m) {
		r = -ENOMEM;
		goto out;
	}
	fd = dp_proto_connect(path, DP_ROLE_CTL, 5000);
	if (fd < 0) {
		r = fd;
		fprintf(stderr, "daxpoolctl %s: cannot reach daxpoold at %s: %s%s\n", cmd, path,
			strerror(-r),
			r == -ENOENT || r == -ECONNREFUSED ? " (is daxpoold running?)" : "");
		goto out;
	}
	r = dp_proto_send(fd, req, 1);
	while (r == 0 && more) {
		ssize_t n;
		int d;

		n = recv(fd, buf, DP_PROTO_MAX_DGRAM, MSG_TRUNC);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0 || n > DP_PROTO_MAX_DGRAM) {
			r = n < 0 ? -errno : n == 0 ? -ECONNRESET : -EMSGSIZE;
			break;
		}
		d = dp_proto_decode(buf, (size_t)n, m);
		if (d != n || m->type != DP_MSG_REPLY) {
			r = -EPROTO;
			break;
		}
		char *nt = realloc(text, len + m->reply.text_len + 1);
		if (!nt) {
			r = -ENOMEM;
			break;
		}
		text = nt;
		memcpy(text + len, m->reply.text, m->reply.text_len);
		len += m->reply.text_len;
		text[len] = '\0';
		status = m->reply.status;
		more = m->reply.flags & DP_REPLY_MORE;
	}
	close(fd);
	if (r < 0) {
		fprintf(stderr, "daxpoolctl %s: daxpoold went away before it answered: %s\n", cmd,
			strerror(-r));
		goto out;
	}
	*ret_doc = json_tokener_parse(text ? text : "");
	if (!*ret_doc) {
		fprintf(stderr, "daxpoolctl %s: daxpoold's answer is not JSON\n", cmd);
		r = -EPROTO;
		goto out;
	}
	*ret_status = status;
out:
	free(text);
	free(buf);
	free(m);
	return r;
}

void daemon_print_json(json_object *doc)
{
	printf("%s\n", json_object_to_json_string_ext(doc, JSON_C_TO_STRING_PRETTY |
							       JSON_C_TO_STRING_NOSLASHESCAPE));
}

const char *daemon_target(const char *arg, char *buf, size_t size)
{
	char tmp[PATH_MAX];

	if (strchr(arg, '/') && realpath(arg, tmp)) {
		snprintf(buf, size, "%s", tmp);
		return buf;
	}
	return arg;
}

int daemon_parse_size(const char *s, uint64_t *ret)
{
	unsigned long long v;
	char *end;
	int shift = 0;

	errno = 0;
	if (!*s || *s == '-')
		return -EINVAL;
	v = strtoull(s, &end, 0);
	if (errno)
		return -errno;
	switch (*end) {
	case 'k': case 'K': shift = 10; end++; break;
	case 'm': case 'M': shift = 20; end++; break;
	case 'g': case 'G': shift = 30; end++; break;
	case 't': case 'T': shift = 40; end++; break;
	}
	if (*end || (shift && v > (UINT64_MAX >> shift)))
		return -EINVAL;
	*ret = (uint64_t)v << shift;
	return 0;
}

static const char *jstr(json_object *o, const char *key)
{
	json_object *v = json_object_object_get(o, key);

	return v ? json_object_get_string(v) : "-";
}

void daemon_print_pins(json_object *clients, bool with_maps)
{
	size_t n = clients ? json_object_array_length(clients) : 0;

	printf("%-8s %-16s %-32s %-10s %-12s %-12s %-6s %-7s %s\n", "PID", "COMMAND", "PATH",
	       "WHAT", "OFFSET", "LENGTH", "ACCESS", "AGE", "OWNER");
	for (size_t i = 0; i < n; i++) {
		json_object *c = json_object_array_get_idx(clients, i);
		json_object *regions = json_object_object_get(c, "regions");

		for (size_t j = 0; regions && j < json_object_array_length(regions); j++) {
			json_object *r = json_object_array_get_idx(regions, j);
			const char *lists[2] = { "pins", "maps" };

			for (int l = 0; l < (with_maps ? 2 : 1); l++) {
				json_object *hs = json_object_object_get(r, lists[l]);

				for (size_t k = 0; hs && k < json_object_array_length(hs); k++) {
					json_object *h = json_object_array_get_idx(hs, k);
					json_object *owner = json_object_object_get(h, "owner");
					char age[32];

					snprintf(age, sizeof(age), "%.1fs",
						 json_object_get_double(
							 json_object_object_get(h, "age_s")));
					printf("%-8s %-16s %-32s %-10s %#-12llx %#-12llx %-6s %-7s %s\n",
					       jstr(c, "pid"), jstr(c, "comm"), jstr(r, "path"),
					       l ? "map" : jstr(h, "kind"),
					       (unsigned long long)json_object_get_uint64(
						       json_object_object_get(h, "offset")),
					       (unsigned long long)json_object_get_uint64(
						       json_object_object_get(h, "length")),
					       l ? "-" : jstr(h, "device_access"), age,
					       owner ? json_object_get_string(owner) : "-");
				}
			}
		}
	}
}

void daemon_print_outsiders(json_object *outsiders)
{
	size_t n = outsiders ? json_object_array_length(outsiders) : 0;

	if (!n)
		return;
	printf("\nHolders outside daxpool (processes that map it or may pin it):\n");
	printf("%-8s %-16s %-9s %-9s %-8s %s\n", "PID", "COMMAND", "MAPPINGS", "IO_URING", "RDMA_MRS",
	       "TARGET");
	for (size_t i = 0; i < n; i++) {
		json_object *o = json_object_array_get_idx(outsiders, i);
		json_object *mrs = json_object_object_get(o, "rdma_mrs");

		json_object *maps = json_object_object_get(o, "mappings");

		printf("%-8s %-16s %-9zu %-9s %-8s %s%s\n", jstr(o, "pid"), jstr(o, "comm"),
		       json_object_is_type(maps, json_type_array) ? json_object_array_length(maps)
								   : 0,
		       jstr(o, "io_uring_buffers"), jstr(o, "rdma_mr_count"), jstr(o, "target"),
		       json_object_get_boolean(json_object_object_get(o, "client"))
			       ? " (a daxpool client: MRs it registered itself)"
			       : "");
		if (json_object_object_get(o, "reason"))
			printf("         why: %s\n", jstr(o, "reason"));
		/* RDMA netlink gives no address: each MR of such a process may pin the device. */
		for (size_t j = 0; j < json_object_array_length(mrs); j++) {
			json_object *mr = json_object_array_get_idx(mrs, j);

			printf("         possible pin: RDMA MR %s on %s, length %s", jstr(mr, "mrn"),
			       jstr(mr, "device"), jstr(mr, "length"));
			if (json_object_object_get(mr, "lkey"))
				printf(", lkey %#llx", (unsigned long long)json_object_get_uint64(
							       json_object_object_get(mr, "lkey")));
			printf("\n");
		}
	}
}

void daemon_print_rdma(json_object *rdma)
{
	json_object *reason = json_object_object_get(rdma, "reason");

	if (json_object_get_boolean(json_object_object_get(rdma, "scanned")) && reason)
		printf("(RDMA MRs not seen: %s)\n", json_object_get_string(reason));
}

int daemon_run_op(const char *cmd, const struct daemon_opts *o, const struct dp_msg *req)
{
	json_object *doc, *v;
	int status;

	if (daemon_request(cmd, o, req, &doc, &status) < 0)
		return 1;
	if (o->json) {
		daemon_print_json(doc);
	} else {
		v = json_object_object_get(doc, "error");
		if (v) {
			fprintf(stderr, "daxpoolctl %s: %s\n", cmd, json_object_get_string(v));
		} else {
			printf("%s %s: %s: %s\n", jstr(doc, "operation"), jstr(doc, "target"),
			       jstr(doc, "result"), jstr(doc, "message"));
			v = json_object_object_get(doc, "outsiders");
			if (status == 0 && v && json_object_array_length(v))
				fprintf(stderr,
					"daxpoolctl %s: warning: --force overrode %zu possible "
					"holder(s) outside daxpool (listed below); the daemon "
					"logged it\n",
					cmd, json_object_array_length(v));
			printf("%s client(s) revoked; took %.1f ms", jstr(doc, "clients_revoked"),
			       json_object_get_double(json_object_object_get(doc, "duration_ms")));
			if ((v = json_object_object_get(doc, "last_idle_to_done_ms")))
				printf(" (%.3f ms from the last holder going idle to the end)",
				       json_object_get_double(v));
			printf("\n");
			if ((v = json_object_object_get(doc, "drained_ms")))
				printf("drained in %.1f ms", json_object_get_double(v));
			if ((v = json_object_object_get(doc, "teardown")))
				printf("; teardown %.1f ms (namespace destroyed: %s, CXL region "
				       "disabled: %s, deleted: %s)",
				       json_object_get_double(json_object_object_get(v, "teardown_ms")),
				       json_object_get_boolean(json_object_object_get(
					       v, "namespace_destroyed")) ? "yes" : "no",
				       json_object_get_boolean(json_object_object_get(
					       v, "region_disabled")) ? "yes" : "no",
				       json_object_get_boolean(json_object_object_get(
					       v, "region_deleted")) ? "yes" : "no");
			if (json_object_object_get(doc, "drained_ms"))
				printf("\n");
			v = json_object_object_get(doc, "holders");
			if (v && json_object_array_length(v)) {
				printf("\nStill held by:\n");
				daemon_print_pins(v, true);
			}
			daemon_print_outsiders(json_object_object_get(doc, "outsiders"));
			daemon_print_rdma(json_object_object_get(doc, "rdma"));
		}
	}
	json_object_put(doc);
	return status < 0 ? 1 : 0;
}

int daemon_parse_op(const char *cmd, uint32_t op, int argc, char **argv, void (*usage)(FILE *),
		    struct daemon_opts *o, struct dp_msg *m)
{
	static const struct option opts[] = {
		{ "timeout", required_argument, NULL, 't' }, { "force", no_argument, NULL, 'f' },
		{ "json", no_argument, NULL, 'j' },	     { "socket", required_argument, NULL, 's' },
		{ "help", no_argument, NULL, 'h' },	     { "teardown", no_argument, NULL, 'T' },
		{ NULL, 0, NULL, 0 },
	};
	char *end;
	double t;
	int c;

	memset(m, 0, sizeof(*m));
	m->type = DP_MSG_OP;
	m->op.op = op;
	m->op.timeout_ms = -1;
	optind = 1;
	while ((c = getopt_long(argc, argv, "t:fjs:h", opts, NULL)) != -1) {
		switch (c) {
		case 't':
			t = strtod(optarg, &end);
			if (*end || t < 0 || t > 86400) {
				fprintf(stderr, "daxpoolctl %s: bad timeout '%s'\n", cmd, optarg);
				return DAXPOOLCTL_EXIT_USAGE;
			}
			m->op.timeout_ms = (int)(t * 1000);
			break;
		case 'f':
			m->op.flags |= DP_OP_FORCE;
			break;
		case 'T':
			if (op != DP_OP_RELEASE) {
				fprintf(stderr, "daxpoolctl %s: --teardown is release's\n", cmd);
				return DAXPOOLCTL_EXIT_USAGE;
			}
			m->op.flags |= DP_OP_TEARDOWN;
			break;
		case 'j':
			o->json = true;
			break;
		case 's':
			o->socket = optarg;
			break;
		case 'h':
			usage(stdout);
			return DAXPOOLCTL_EXIT_OK;
		default:
			usage(stderr);
			return DAXPOOLCTL_EXIT_USAGE;
		}
	}
	return -1;
}
