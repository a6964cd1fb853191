/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Holders outside daxpool. Processes that map the device or file, found in
 * /proc/PID/maps by (st_dev, st_ino) -- devdax mappings show devtmpfs's device
 * and the node's inode, fsdax ones the filesystem's device and the file's
 * inode -- with the io_uring registered buffers (/proc/PID/fdinfo,
 * "UserBufs:") that lie in those mappings. And processes that do not map it
 * but may still pin it: an RDMA MR keeps its pages pinned after munmap and
 * close, until it is deregistered. RDMA netlink (rdma_res.c) gives MRs with a
 * pid and a length but no address, so an MR cannot be tied to a device; VmPin
 * (/proc/PID/status) counts every long-term pinned page of a process. Which
 * of those processes count is the holder rule's (holder_rule.c), on facts
 * gathered here and from the open record (opens.c). Page references taken by
 * vmsplice are visible nowhere.
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

#include "holder_rule.h"
#include "opens.h"
#include "outsiders.h"

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
 * What the files behind mappings are, as far as the current scan looked:
 * (dev, ino) of a mapping -> whether it is a node of the device-dax device
 * scanned for. Reset by each scan.
 */
#define NODE_CACHE 512
static struct {
	uint64_t dev, ino;
	bool is_node;
} node_cache[NODE_CACHE];
static size_t n_node_cache;
static uint64_t node_cache_rdev;

/*
 * Whether the mapping [start, end) of @pid at (dev, ino) is another node of
 * the device @rdev (made with mknod, e.g. in a container's /dev): the mapped
 * file's own stat, through /proc/PID/map_files (CAP_SYS_ADMIN). Only files on
 * filesystems without a device (major 0: tmpfs, devtmpfs, overlay), where
 * such nodes live, are looked at; each (dev, ino) once per scan.
 */
static bool maps_other_node(pid_t pid, unsigned long long start, unsigned long long end,
			    uint64_t dev, uint64_t ino, uint64_t rdev)
{
	char path[96];
	struct stat st;
	bool is_node;

	if (!rdev || !ino || major(dev) != 0)
		return false;
	if (node_cache_rdev != rdev) {
		n_node_cache = 0;
		node_cache_rdev = rdev;
	}
	for (size_t i = 0; i < n_node_cache; i++)
		if (node_cache[i].dev == dev && node_cache[i].ino == ino)
			return node_cache[i].is_node;
	snprintf(path, sizeof(path), "/proc/%d/map_files/%llx-%llx", (int)pid, start, end);
	/*
	 * Not readable (map_files needs CAP_SYS_ADMIN; some kernels refuse
	 * entries of some mappings): it is looked at as the node it is named by,
	 * which the (dev, ino) match already did.
	 */
	if (stat(path, &st) < 0)
		return false;
	is_node = S_ISCHR(st.st_mode) && st.st_rdev == rdev;
	if (n_node_cache < NODE_CACHE)
		node_cache[n_node_cache++] = (typeof(node_cache[0])){ dev, ino, is_node };
	return is_node;
}

static void node_cache_reset(void)
{
	n_node_cache = 0;
	node_cache_rdev = 0;
}

/*
 * The mappings of (dev, ino) -- or, @rdev not 0, of any node of that
 * device-dax device -- in @pid: a JSON array, or NULL if it maps none (errno
 * set if its maps could not be read); their ranges into *ret_ranges
 * (malloc()ed, *ret_n of them).
 */
static json_object *pid_mappings(pid_t pid, uint64_t dev, uint64_t ino, uint64_t rdev,
				 struct range **ret_ranges, size_t *ret_n)
{
	struct range *ranges = NULL;
	size_t n_ranges = 0;
	json_object *maps = NULL;
	char path[64], line[4352];
	int err = 0;
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
		if ((inode != ino || makedev(maj, min) != dev) &&
		    !maps_other_node(pid, start, end, makedev(maj, min), inode, rdev))
			continue;
		struct range *nr = realloc(ranges, (n_ranges + 1) * sizeof(*nr));
		if (!nr) {
			/* A partial list would look like fewer mappings: say none could be read. */
			json_object_put(maps);
			maps = NULL;
			free(ranges);
			ranges = NULL;
			n_ranges = 0;
			err = ENOMEM;
			break;
		}
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
	errno = err; /* only a failure to read says so: a stat on the way does not */
	return maps;
}

bool dd_pid_maps(pid_t pid, uint64_t dev, uint64_t ino, uint64_t rdev)
{
	struct range *ranges;
	size_t n;
	json_object *maps = pid_mappings(pid, dev, ino, rdev, &ranges, &n);

	free(ranges);
	json_object_put(maps);
	return maps != NULL;
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

	maps = pid_mappings(pid, dev, ino, 0, &ranges, &n);
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

/* A process (pid 0: every process) whose mappings the daemon cannot read (@what). */
static json_object *unknown_holder(pid_t pid, int err, const char *what)
{
	json_object *o = json_object_new_object();
	char comm[32] = "?", why[256];

	if (pid)
		dd_proc_comm(pid, comm, sizeof(comm));
	if (pid)
		snprintf(why, sizeof(why),
			 "its /proc/%d/%s cannot be read (%s; daxpoold needs CAP_SYS_PTRACE, and the "
			 "process must be in its user namespace) and it has %llu kB of pinned pages: "
			 "whether they are on it cannot be ruled out", (int)pid, what, strerror(err),
			 (unsigned long long)dd_proc_vm_pin_kb(pid));
	else
		snprintf(why, sizeof(why),
			 "%s cannot be read (%s): no process can be ruled out", what, strerror(err));
	json_object_object_add(o, "pid", json_object_new_int(pid));
	json_object_object_add(o, "comm", json_object_new_string(comm));
	json_object_object_add(o, "mappings", json_object_new_array());
	json_object_object_add(o, "io_uring_buffers", json_object_new_int(0));
	json_object_object_add(o, "rdma_mrs", json_object_new_array());
	json_object_object_add(o, "rdma_mr_count", json_object_new_int(0));
	json_object_object_add(o, "rdma_mr_bytes", json_object_new_int(0));
	json_object_object_add(o, "reason", json_object_new_string(why));
	json_object_object_add(o, "possible_pins", json_object_new_int(1));
	return o;
}

json_object *dd_outsiders_scan(uint64_t dev, uint64_t ino, uint64_t rdev, const pid_t *exclude,
			       size_t n_exclude, struct dd_rdma_mrs *mrs)
{
	json_object *arr = json_object_new_array();
	struct dirent *de;
	DIR *proc;

	proc = opendir("/proc");
	if (!proc) {
		json_object_array_add(arr, unknown_holder(0, errno, "/proc"));
		return arr;
	}
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
		errno = 0;
		maps = pid_mappings(pid, dev, ino, rdev, &ranges, &n_ranges);
		if (maps) {
			o = holder_json(pid, maps, ranges, n_ranges);
			add_mrs(o, pid, mrs_get(mrs), NULL, 0);
			add_possible_pins(o);
			json_object_array_add(arr, o);
		} else if (errno && errno != ENOENT && errno != ESRCH && errno != EACCES &&
			   errno != EPERM) {
			/* Not read for want of resources (EMFILE, ENOMEM): not ruled out. */
			json_object_array_add(arr, unknown_holder(pid, errno, "maps"));
		} else if ((errno == EACCES || errno == EPERM) && dd_proc_vm_pin_kb(pid)) {
			/*
			 * Its mappings cannot be read (no CAP_SYS_PTRACE, or it is beyond
			 * the daemon's user namespace), and it has pinned pages: they may
			 * be on it. Without pinned pages it can at most map it, and a
			 * mapping alone gets a SIGBUS, not a kernel crash.
			 */
			json_object_array_add(arr, unknown_holder(pid, errno, "maps"));
		}
		free(ranges);
	}
	closedir(proc);
	return arr;
}

uint64_t dd_proc_vm_pin_kb(pid_t pid)
{
	char path[64], line[128];
	unsigned long long kb = 0;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	f = fopen(path, "re");
	if (!f)
		return 0;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "VmPin: %llu kB", &kb) == 1)
			break;
	fclose(f);
	return kb;
}

/*
 * An ancestor of @pid (started at @start) recorded as an opener of @rdev:
 * @pid may have inherited a descriptor of the device. 0: none.
 */
static pid_t opener_ancestor(pid_t pid, uint64_t start, dev_t rdev)
{
	pid_t cur = pid, ppid;
	uint64_t child_start = start, pstart;

	for (int depth = 0; depth < 64; depth++) {
		const struct dd_opener *o;

		if (dd_proc_start(cur, NULL, &ppid) < 0 || ppid <= 1)
			return 0;
		if (dd_proc_start(ppid, &pstart, NULL) < 0)
			return 0;
		o = dd_opens_find(ppid, pstart, rdev);
		if (o && pstart <= child_start)
			return ppid;
		cur = ppid;
		child_start = pstart;
	}
	return 0;
}

/* The facts of @pid for the holder rule; false if it is not worth judging (no pins). */
static bool gather_facts(const struct dd_manager *m, pid_t pid, uint64_t dev, uint64_t ino, dev_t rdev,
			 bool drained, struct dd_rdma_mrs *t,
			 struct dd_proc_facts *f, uint64_t **ret_skip, size_t *ret_n_skip)
{
	const struct dd_rdma_mrs *mrs;
	const struct dd_conn *c;
	uint64_t *skip = NULL;
	size_t n_skip = 0, n_pins = 0;

	*f = (struct dd_proc_facts){ .pid = pid };
	*ret_skip = NULL;
	*ret_n_skip = 0;
	f->vm_pin_kb = dd_proc_vm_pin_kb(pid);
	/* A process may have several daxpool contexts: one connection each. */
	for (c = m->conns; c; c = c->next) {
		if (c->role != DP_ROLE_CLIENT || c->cred.pid != pid)
			continue;
		n_pins += c->pins.n;
		if (dd_conn_has_seen(c, dev, ino, rdev)) {
			uint64_t first = dd_conn_seen_since(c, dev, ino, rdev);

			f->registered = true;
			if (!f->registered_ns || (first && first < f->registered_ns))
				f->registered_ns = first;
		}
	}
	if (!f->vm_pin_kb && !f->registered)
		return false; /* nothing pinned long-term (an MR pins, and counts in VmPin) */
	if (dd_proc_start(pid, &f->start_ns, NULL) < 0)
		return false; /* gone */
	mrs = mrs_get(t);
	for (size_t i = 0; mrs && i < mrs->n; i++) {
		if (mrs->mr[i].pid == pid && pid) {
			f->mrs++;
			f->mr_bytes += mrs->mr[i].length;
		}
	}
	skip = n_pins ? calloc(n_pins, sizeof(*skip)) : NULL;
	for (c = m->conns; c; c = c->next) {
		if (c->role != DP_ROLE_CLIENT || c->cred.pid != pid)
			continue;
		dd_idmap_for_each(&c->pins, i, h)
		{
			const struct dd_region *r;

			if (h->kind != 2)
				continue; /* transient pins are not in VmPin, nor MRs */
			/*
			 * After the drain no pin on the target is left: one the client
			 * still claims there explains nothing (a client's word is no
			 * proof of what it pins).
			 */
			r = dd_regmap_get(&c->region_ids, h->region_id);
			if (drained && (!r || dd_region_is(r, dev, ino, rdev)))
				continue;
			f->own_pin_kb += ((h->offset & 4095) + h->length + 4095) / 4096 * 4;
			if (skip && n_skip < n_pins)
				skip[n_skip++] = h->length;
		}
	}
	/* MRs daxpool registered are matched by length, each MR to one pin. */
	for (size_t i = 0; mrs && i < mrs->n; i++) {
		if (mrs->mr[i].pid != pid)
			continue;
		for (size_t k = 0; k < n_skip; k++) {
			if (skip[k] == mrs->mr[i].length && !(skip[k] >> 63)) {
				skip[k] |= 1ull << 63; /* matched */
				f->own_mrs++;
				f->mr_bytes -= mrs->mr[i].length;
				break;
			}
		}
	}
	for (size_t k = 0; k < n_skip; k++)
		skip[k] &= ~(1ull << 63);
	if (f->own_mrs > f->mrs)
		f->own_mrs = f->mrs;
	if (rdev) {
		const struct dd_opener *o = dd_opens_find(pid, f->start_ns, rdev);

		f->opened_ns = o ? o->first_ns : 0;
		if (!o)
			f->opened_by_ancestor = opener_ancestor(pid, f->start_ns, rdev);
	}
	*ret_skip = skip;
	*ret_n_skip = n_skip;
	return true;
}

/*
 * User MRs RDMA netlink reports without a pid: their creator exited while a
 * descriptor of its RDMA context lives on elsewhere (a fork child, a
 * descriptor passed over a socket), or they belong to another PID namespace.
 * Their pages may be on the device and nobody can be named: one holder entry
 * (pid 0) says so.
 */
static void add_ownerless_mrs(json_object *arr, const struct dd_rdma_mrs *mrs,
			      const char *devname)
{
	json_object *o, *list;
	uint64_t bytes = 0;
	size_t n = 0;
	char why[320];

	for (size_t i = 0; mrs && i < mrs->n; i++)
		if (mrs->mr[i].pid == 0 && !mrs->mr[i].kern_name[0]) {
			n++;
			bytes += mrs->mr[i].length;
		}
	if (!n)
		return;
	o = json_object_new_object();
	list = json_object_new_array();
	for (size_t i = 0; i < mrs->n; i++) {
		const struct dd_rdma_mr *mr = &mrs->mr[i];
		json_object *m;

		if (mr->pid != 0 || mr->kern_name[0])
			continue;
		m = json_object_new_object();
		json_object_object_add(m, "device", json_object_new_string(mr->dev_name));
		if (mr->has_mrn)
			json_object_object_add(m, "mrn", json_object_new_uint64(mr->mrn));
		json_object_object_add(m, "length", json_object_new_uint64(mr->length));
		json_object_array_add(list, m);
	}
	snprintf(why, sizeof(why),
		 "%zu RDMA MR(s) of %llu bytes with no owner pid (its creator exited while its "
		 "RDMA context lives on elsewhere, or it is in another PID namespace): they may "
		 "pin %s, and nobody can be named",
		 n, (unsigned long long)bytes, devname);
	json_object_object_add(o, "pid", json_object_new_int(0));
	json_object_object_add(o, "comm", json_object_new_string("?"));
	json_object_object_add(o, "mappings", json_object_new_array());
	json_object_object_add(o, "io_uring_buffers", json_object_new_int(0));
	json_object_object_add(o, "rdma_mrs", list);
	json_object_object_add(o, "rdma_mr_count", json_object_new_uint64(n));
	json_object_object_add(o, "rdma_mr_bytes", json_object_new_uint64(bytes));
	json_object_object_add(o, "reason", json_object_new_string(why));
	json_object_object_add(o, "possible_pins", json_object_new_uint64(n));
	json_object_array_add(arr, o);
}

json_object *dd_pinners_scan(const struct dd_manager *m, uint64_t dev, uint64_t ino, dev_t rdev,
			     const char *devname, const pid_t *skip_pids, size_t n_skip_pids,
			     bool drained, struct dd_rdma_mrs *t)
{
	json_object *arr = json_object_new_array();
	struct dd_record_facts rec = { 0 };
	struct dirent *de;
	DIR *proc;

	if (rdev) {
		dd_opens_refresh(); /* takes the queued events too */
		rec.off_reason = dd_opens_off_reason();
		rec.recording = !rec.off_reason;
		rec.since_ns = dd_opens_since(rdev, &rec.since_real_ns);
	}
	proc = opendir("/proc");
	if (!proc)
		return arr;
	while ((de = readdir(proc))) {
		struct dd_proc_facts f;
		struct range *ranges;
		size_t n_ranges, n_skip;
		uint64_t *skip;
		json_object *maps, *o;
		char why[512];
		pid_t pid;

		if (!isdigit((unsigned char)de->d_name[0]))
			continue;
		pid = (pid_t)atoi(de->d_name);
		if (pid == getpid() || excluded(pid, skip_pids, n_skip_pids))
			continue;
		if (!gather_facts(m, pid, dev, ino, rdev, drained, t, &f, &skip, &n_skip))
			continue;
		/*
		 * A file (rdev 0) has no open record: only a client that registered
		 * it counts here; outsiders that map it are the mapping scan's.
		 */
		if (!rdev && !f.registered) {
			free(skip);
			continue;
		}
		maps = pid_mappings(pid, dev, ino, rdev, &ranges, &n_ranges);
		f.maps_it = maps != NULL;
		if (f.maps_it)
			f.uring_bufs = (size_t)count_uring_bufs(pid, ranges, n_ranges);
		if (!dd_holder_judge(&f, devname && *devname ? devname : "it", &rec, why,
				     sizeof(why))) {
			json_object_put(maps);
			free(ranges);
			free(skip);
			continue;
		}
		/* "mappings" is always an array: none left is the point of this scan. */
		o = holder_json(pid, maps ? maps : json_object_new_array(), ranges, n_ranges);
		if (dd_manager_is_client(m, pid))
			json_object_object_add(o, "client", json_object_new_boolean(true));
		add_mrs(o, pid, mrs_get(t), skip, n_skip);
		json_object_object_add(o, "vm_pin_kb", json_object_new_uint64(f.vm_pin_kb));
		json_object_object_add(o, "reason", json_object_new_string(why));
		/* Every MR, io_uring buffer, or the pinned pages as one when there are neither. */
		json_object_object_add(
			o, "possible_pins",
			json_object_new_uint64(f.mrs - f.own_mrs + f.uring_bufs
					       ? f.mrs - f.own_mrs + f.uring_bufs
					       : 1));
		json_object_array_add(arr, o);
		free(ranges);
		free(skip);
	}
	closedir(proc);
	if (rdev)
		add_ownerless_mrs(arr, mrs_get(t), devname && *devname ? devname : "it");
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

json_object *dd_possible_holders(const struct dd_manager *m, const struct dd_target *t,
				 bool drained, struct dd_rdma_mrs *mrs)
{
	size_t n_ex, n_listed;
	pid_t *ex = dd_manager_client_pids(m, t->dev, t->ino, t->rdev, &n_ex), *listed;
	json_object *all, *more;

	node_cache_reset();
	all = dd_outsiders_scan(t->dev, t->ino, t->rdev, ex, n_ex, mrs);

	n_listed = json_object_array_length(all);
	listed = calloc(n_listed + 1, sizeof(*listed));
	for (size_t i = 0; listed && i < n_listed; i++)
		listed[i] = json_object_get_int(
			json_object_object_get(json_object_array_get_idx(all, i), "pid"));
	more = dd_pinners_scan(m, t->dev, t->ino, t->rdev, t->devname, listed,
			       listed ? n_listed : 0, drained, mrs);
	for (size_t i = 0; i < json_object_array_length(more); i++)
		json_object_array_add(all, json_object_get(json_object_array_get_idx(more, i)));
	json_object_put(more);
	for (size_t i = 0; i < json_object_array_length(all); i++)
		json_object_object_add(json_object_array_get_idx(all, i), "target",
				       json_object_new_string(t->path));
	free(listed);
	free(ex);
	return all;
}
