/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Holders outside daxpool: processes that map the device or file, found in
 * /proc/PID/maps by (st_dev, st_ino) -- devdax mappings show devtmpfs's device
 * and the node's inode, fsdax ones the filesystem's device and the file's
 * inode (KERNEL-FACTS.md section 6) -- and the io_uring registered buffers
 * (/proc/PID/fdinfo, "UserBufs:") that lie in those mappings. Page references
 * taken by vmsplice are visible nowhere. RDMA MRs come from RDMA netlink
 * (rdma_res.c) with a pid and a length but no address: every MR of a process
 * that maps the device or file is a possible pin of it, and so is every MR of
 * a daxpool client that daxpool did not register. MRs of processes that do
 * not map it are none of its business.
 */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <time.h>
#include <unistd.h>

#include "daxpoold.h"

struct range {
	uint64_t start, end;
};

void dd_proc_comm(pid_t pid, char *buf, size_t size)
{
	char path[64];
	ssize_t n;
	int fd;

	snprintf(buf, size, "?");
	snprintf(path, sizeof(path), "/proc/%d/comm", (int)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return;
	n = read(fd, buf, size - 1);
	close(fd);
	if (n <= 0) {
		snprintf(buf, size, "?");
		return;
	}
	buf[n] = '\0';
	buf[strcspn(buf, "\n")] = '\0';
}

/* io_uring registered buffers of @pid inside @ranges, from every fdinfo that lists them. */
static int count_uring_bufs(pid_t pid, const struct range *ranges, size_t n_ranges)
{
	char path[64], line[256];
	struct dirent *de;
	int count = 0;
	DIR *d;

	snprintf(path, sizeof(path), "/proc/%d/fdinfo", (int)pid);
	d = opendir(path);
	if (!d)
		return 0;
	while ((de = readdir(d))) {
		char fpath[320];
		bool in_bufs = false;
		FILE *f;

		if (!isdigit((unsigned char)de->d_name[0]))
			continue;
		snprintf(fpath, sizeof(fpath), "%s/%s", path, de->d_name);
		f = fopen(fpath, "re");
		if (!f)
			continue;
		while (fgets(line, sizeof(line), f)) {
			unsigned long long addr;
			unsigned int idx, len;

			if (strncmp(line, "UserBufs:", 9) == 0) {
				in_bufs = true;
				continue;
			}
			if (!in_bufs)
				continue;
			/* "%5u: 0x%llx/%u" (6.x) */
			if (sscanf(line, " %u: 0x%llx/%u", &idx, &addr, &len) != 3) {
				in_bufs = false;
				continue;
			}
			for (size_t i = 0; i < n_ranges; i++)
				if (addr < ranges[i].end && addr + len > ranges[i].start)
					count++;
		}
		fclose(f);
	}
	closedir(d);
	return count;
}

static bool excluded(pid_t pid, const pid_t *exclude, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (exclude[i] == pid)
			return true;
	return false;
}

/*
 * The mappings of (dev, ino) in @pid: a JSON array, or NULL if it maps none;
 * their ranges into *ret_ranges (malloc()ed, *ret_n of them).
 */
static json_object *pid_mappings(pid_t pid, uint64_t dev, uint64_t ino, struct range **ret_ranges,
				 size_t *ret_n)
{
	struct range *ranges = NULL;
	size_t n_ranges = 0;
	json_object *maps = NULL;
	char path[64], line[4352];
	FILE *f;

	*ret_ranges = NULL;
	*ret_n = 0;
	snprintf(path, sizeof(path), "/proc/%d/maps", (int)pid);
	f = fopen(path, "re");
	if (!f)
		return NULL;
	while (fgets(line, sizeof(line), f)) {
		unsigned long long start, end, off, inode;
		unsigned int maj, min;
		char perms[8];
		int pos = 0;

		if (sscanf(line, "%llx-%llx %7s %llx %x:%x %llu %n", &start, &end, perms, &off,
			   &maj, &min, &inode, &pos) < 7)
			continue;
		if (inode != ino || makedev(maj, min) != dev)
			continue;
		struct range *nr = realloc(ranges, (n_ranges + 1) * sizeof(*nr));
		if (!nr)
			break;
		ranges = nr;
		ranges[n_ranges++] = (struct range){ start, end };
		if (!maps)
			maps = json_object_new_array();
		json_object *m = json_object_new_object();
		json_object_object_add(m, "start", json_object_new_uint64(start));
		json_object_object_add(m, "end", json_object_new_uint64(end));
		json_object_object_add(m, "file_offset", json_object_new_uint64(off));
		json_object_object_add(m, "perms", json_object_new_string(perms));
		json_object_array_add(maps, m);
	}
	fclose(f);
	*ret_ranges = ranges;
	*ret_n = n_ranges;
	return maps;
}

bool dd_pid_holds_file(pid_t pid, uint64_t dev, uint64_t ino)
{
	struct range *ranges;
	json_object *maps;
	struct dirent *e;
	char path[64];
	size_t n;
	bool held = false;
	DIR *d;

	maps = pid_mappings(pid, dev, ino, &ranges, &n);
	free(ranges);
	if (maps) {
		json_object_put(maps);
		return true;
	}
	snprintf(path, sizeof(path), "/proc/%d/fd", (int)pid);
	d = opendir(path);
	if (!d)
		return false;
	while (!held && (e = readdir(d))) {
		struct stat st;

		if (e->d_name[0] == '.')
			continue;
		if (fstatat(dirfd(d), e->d_name, &st, 0) == 0 && st.st_dev == dev && st.st_ino == ino)
			held = true;
	}
	closedir(d);
	return held;
}

/*
 * The MRs of @pid in @mrs, less one per length in @skip (n_skip of them: the
 * lengths of what daxpool registered itself), into @o: "rdma_mrs" (device,
 * MR number, length, lkey when visible), "rdma_mr_count", "rdma_mr_bytes".
 * Return the count.
 */
static size_t add_mrs(json_object *o, pid_t pid, const struct dd_rdma_mrs *mrs, uint64_t *skip,
		      size_t n_skip)
{
	json_object *arr = json_object_new_array();
	uint64_t bytes = 0;
	size_t n = 0;

	for (size_t i = 0; mrs && i < mrs->n; i++) {
		const struct dd_rdma_mr *mr = &mrs->mr[i];
		json_object *m;
		bool skipped = false;

		if (mr->pid != pid || pid == 0)
			continue;
		for (size_t k = 0; k < n_skip && !skipped; k++) {
			if (skip[k] == mr->length) {
				skip[k] = UINT64_MAX; /* matched once */
				skipped = true;
			}
		}
		if (skipped)
			continue;
		m = json_object_new_object();
		json_object_object_add(m, "device", json_object_new_string(mr->dev_name));
		if (mr->has_mrn)
			json_object_object_add(m, "mrn", json_object_new_uint64(mr->mrn));
		json_object_object_add(m, "length", mr->has_length ? json_object_new_uint64(mr->length)
								   : NULL);
		/*
		 * The lkey names the MR to its owner; the rkey is not reported: it is
		 * what a remote peer needs to reach the memory, and status goes to
		 * device owners who are not root too.
		 */
		if (mr->has_keys)
			json_object_object_add(m, "lkey", json_object_new_uint64(mr->lkey));
		json_object_array_add(arr, m);
		bytes += mr->length;
		n++;
	}
	json_object_object_add(o, "rdma_mrs", arr);
	json_object_object_add(o, "rdma_mr_count", json_object_new_uint64(n));
	json_object_object_add(o, "rdma_mr_bytes", json_object_new_uint64(bytes));
	return n;
}

/* @t, scanned the first time it is needed (one netlink round per report). */
static const struct dd_rdma_mrs *mrs_get(struct dd_rdma_mrs *t)
{
	if (t && !t->scanned)
		dd_rdma_mrs_scan(t);
	return t;
}

static json_object *holder_json(pid_t pid, json_object *maps, const struct range *ranges,
				size_t n_ranges)
{
	json_object *o = json_object_new_object();
	char comm[32];

	dd_proc_comm(pid, comm, sizeof(comm));
	json_object_object_add(o, "pid", json_object_new_int(pid));
	json_object_object_add(o, "comm", json_object_new_string(comm));
	json_object_object_add(o, "mappings", maps);
	json_object_object_add(o, "io_uring_buffers",
			       json_object_new_int(count_uring_bufs(pid, ranges, n_ranges)));
	return o;
}

static void add_possible_pins(json_object *o)
{
	int64_t n = json_object_get_int64(json_object_object_get(o, "io_uring_buffers")) +
		    json_object_get_int64(json_object_object_get(o, "rdma_mr_count"));

	json_object_object_add(o, "possible_pins", json_object_new_int64(n));
}

bool dd_outsider_has_pins(json_object *o)
{
	return json_object_get_int64(json_object_object_get(o, "possible_pins")) > 0;
}

json_object *dd_outsiders_scan(uint64_t dev, uint64_t ino, const pid_t *exclude, size_t n_exclude,
			       struct dd_rdma_mrs *mrs)
{
	json_object *arr = json_object_new_array();
	struct dirent *de;
	DIR *proc;

	proc = opendir("/proc");
	if (!proc)
		return arr;
	while ((de = readdir(proc))) {
		struct range *ranges;
		size_t n_ranges;
		json_object *maps, *o;
		pid_t pid;

		if (!isdigit((unsigned char)de->d_name[0]))
			continue;
		pid = (pid_t)atoi(de->d_name);
		if (pid == getpid() || excluded(pid, exclude, n_exclude))
			continue;
		maps = pid_mappings(pid, dev, ino, &ranges, &n_ranges);
		if (maps) {
			o = holder_json(pid, maps, ranges, n_ranges);
			add_mrs(o, pid, mrs_get(mrs), NULL, 0);
			add_possible_pins(o);
			json_object_array_add(arr, o);
		}
		free(ranges);
	}
	closedir(proc);
	return arr;
}

bool dd_conn_has_seen(const struct dd_conn *c, uint64_t dev, uint64_t ino)
{
	if (c->seen_overflow)
		return true;
	for (size_t i = 0; i < c->n_seen; i++)
		if (c->seen[i].dev == dev && c->seen[i].ino == ino)
			return true;
	return false;
}

static uint64_t seen_since(const struct dd_conn *c, uint64_t dev, uint64_t ino)
{
	for (size_t i = 0; i < c->n_seen; i++)
		if (c->seen[i].dev == dev && c->seen[i].ino == ino)
			return c->seen[i].first_ns;
	return 0;
}

json_object *dd_client_mr_holders(uint64_t dev, uint64_t ino, struct dd_rdma_mrs *t)
{
	json_object *arr = json_object_new_array();
	const struct dd_rdma_mrs *mrs = NULL;

	for (struct dd_conn *c = dd_conns; c; c = c->next) {
		struct range *ranges;
		size_t n_ranges, n_skip = 0, n_mrs = 0;
		uint64_t *skip, since;
		json_object *maps, *o;
		bool registered = false;
		char why[256], when[32] = "?";
		time_t secs;
		struct tm tm;

		if (c->role != DP_ROLE_CLIENT || !dd_conn_has_seen(c, dev, ino))
			continue;
		mrs = mrs_get(t);
		for (size_t i = 0; mrs && i < mrs->n; i++)
			n_mrs += mrs->mr[i].pid == c->cred.pid;
		if (!n_mrs)
			continue;
		for (struct dd_region *r = c->regions; r; r = r->next)
			registered |= r->dev == dev && r->ino == ino;
		/*
		 * No mapping left is no proof of no pin: an MR pins its pages until it
		 * is deregistered, and registration caches keep MRs after the buffer
		 * went. A client that registered it is a possible holder either way.
		 */
		maps = pid_mappings(c->cred.pid, dev, ino, &ranges, &n_ranges);
		/* What daxpool registered itself is revoked with the drain: not counted. */
		skip = calloc(c->pins.n + 1, sizeof(*skip));
		dd_idmap_for_each(&c->pins, i, h)
		{
			if (skip && h->kind == 2 && n_skip < c->pins.n)
				skip[n_skip++] = h->length;
		}
		o = holder_json(c->cred.pid, maps, ranges, n_ranges);
		json_object_object_add(o, "client", json_object_new_boolean(true));
		n_mrs = add_mrs(o, c->cred.pid, mrs, skip, n_skip);
		if (n_mrs) {
			since = seen_since(c, dev, ino);
			secs = (time_t)(since / 1000000000u);
			if (since && localtime_r(&secs, &tm))
				strftime(when, sizeof(when), "%H:%M:%S", &tm);
			snprintf(why, sizeof(why),
				 "registered it with daxpool at %s, %s; %zu RDMA MR(s) not registered "
				 "through daxpool",
				 when,
				 maps ? "still maps it"
				 : registered ? "no longer maps it"
					      : "no longer maps it nor holds the region",
				 n_mrs);
			json_object_object_add(o, "reason", json_object_new_string(why));
			/* Only its MRs count here: its io_uring buffers may be daxpool's. */
			json_object_object_add(o, "possible_pins", json_object_new_uint64(n_mrs));
			json_object_array_add(arr, o);
		} else {
			json_object_put(o);
		}
		free(skip);
		free(ranges);
	}
	return arr;
}

json_object *dd_rdma_mrs_json(const struct dd_rdma_mrs *mrs)
{
	json_object *o = json_object_new_object();

	json_object_object_add(o, "scanned", json_object_new_boolean(mrs->scanned));
	if (!mrs->scanned)
		return o; /* nothing mapped it: no need to look */
	json_object_object_add(o, "devices", json_object_new_uint64(mrs->devices));
	json_object_object_add(o, "mrs", json_object_new_uint64(mrs->n));
	json_object_object_add(o, "complete",
			       json_object_new_boolean(!mrs->incomplete && !mrs->reason[0]));
	if (mrs->reason[0])
		json_object_object_add(o, "reason", json_object_new_string(mrs->reason));
	return o;
}
