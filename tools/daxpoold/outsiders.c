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
 * What the files behind mappings are, as far as one scan looked: (dev, ino)
 * of a mapping -> whether it is a node of the device-dax device scanned for.
 * One per scan (a scan runs on a thread of its own).
 */
#define NODE_CACHE 512
struct node_cache {
	uint64_t rdev;
	size_t n;
	struct {
		uint64_t dev, ino;
		bool is_node;
	} e[NODE_CACHE];
};

/*
 * Whether the mapping [start, end) of @pid at (dev, ino) is another node of
 * the device @rdev (made with mknod, e.g. in a container's /dev): the mapped
 * file's own stat, through /proc/PID/map_files (CAP_SYS_ADMIN). Only files on
 * filesystems without a device (major 0: tmpfs, devtmpfs, overlay), where
 * such nodes live, are looked at; each (dev, ino) once per scan (@nc; NULL:
 * every time).
 */
static bool maps_other_node(struct node_cache *nc, pid_t pid, unsigned long long start,
			    unsigned long long end, uint64_t dev, uint64_t ino, uint64_t rdev)
{
	char path[96];
	struct stat st;
	bool is_node;

	if (!rdev || !ino || major(dev) != 0)
		return false;
	if (nc && nc->rdev != rdev) {
		nc->n = 0;
		nc->rdev = rdev;
	}
	for (size_t i = 0; nc && i < nc->n; i++)
		if (nc->e[i].dev == dev && nc->e[i].ino == ino)
			return nc->e[i].is_node;
	snprintf(path, sizeof(path), "/proc/%d/map_files/%llx-%llx", (int)pid, start, end);
	/*
	 * Not readable (map_files needs CAP_SYS_ADMIN; some kernels refuse
	 * entries of some mappings): it is looked at as the node it is named by,
	 * which the (dev, ino) match already did.
	 */
	if (stat(path, &st) < 0)
		return false;
	is_node = S_ISCHR(st.st_mode) && st.st_rdev == rdev;
	if (nc && nc->n < NODE_CACHE) {
		nc->e[nc->n].dev = dev;
		nc->e[nc->n].ino = ino;
		nc->e[nc->n].is_node = is_node;
		nc->n++;
	}
	return is_node;
}

/*
 * The mappings of (dev, ino) -- or, @rdev not 0, of any node of that
 * device-dax device -- in @pid: a JSON array, or NULL if it maps none (errno
 * set if its maps could not be read); their ranges into *ret_ranges
 * (malloc()ed, *ret_n of them).
 */
static json_object *pid_mappings(struct node_cache *nc, pid_t pid, uint64_t dev, uint64_t ino,
				 uint64_t rdev, struct range **ret_ranges, size_t *ret_n)
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
		    !maps_other_node(nc, pid, start, end, makedev(maj, min), inode, rdev))
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
	json_object *maps = pid_mappings(NULL, pid, dev, ino, rdev, &ranges, &n);

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

	maps = pid_mappings(NULL, pid, dev, ino, 0, &ranges, &n);
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
/* The number after @field (e.g. "VmPin:") in /proc/@pid/status; 0 if none or gone. */
static unsigned long long proc_status_number(pid_t pid, const char *field)
{
	char path[64], line[128];
	unsigned long long v = 0;
	size_t n = strlen(field);
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	f = fopen(path, "re");
	if (!f)
		return 0;
	while (fgets(line, sizeof(line), f))
		if (strncmp(line, field, n) == 0 && sscanf(line + n, "%llu", &v) == 1)
			break;
	fclose(f);
	return v;
}

/* The thread group of task @pid (a process or one of its threads); 0 if it is gone. */
static pid_t proc_tgid(pid_t pid)
{
	return (pid_t)proc_status_number(pid, "Tgid:");
}

/*
 * RDMA netlink names an MR's pid as the thread that registered it: an MR of
 * a process's second thread is that process's (its VmPin, its judgement).
 * A thread gone since keeps its number, which then names nobody.
 */
static void mrs_by_process(struct dd_rdma_mrs *t)
{
	pid_t last = 0, last_tgid = 0;

	for (size_t i = 0; i < t->n; i++) {
		pid_t pid = t->mr[i].pid, tgid;

		if (pid <= 0)
			continue;
		if (pid != last) {
			last = pid;
			last_tgid = proc_tgid(pid);
		}
		tgid = last_tgid;
		if (tgid > 0)
			t->mr[i].pid = tgid;
	}
}

static const struct dd_rdma_mrs *mrs_get(struct dd_rdma_mrs *t)
{
	if (t && !t->scanned) {
		dd_rdma_mrs_scan(t);
		mrs_by_process(t);
	}
	return t;
}

json_object *dd_holder_new(pid_t pid, const char *comm, json_object *maps)
{
	json_object *o = json_object_new_object();
	char buf[32] = "?";

	if (!comm && pid)
		dd_proc_comm(pid, buf, sizeof(buf));
	json_object_object_add(o, "pid", json_object_new_int(pid));
	json_object_object_add(o, "comm", json_object_new_string(comm ? comm : buf));
	json_object_object_add(o, "mappings", maps ? maps : json_object_new_array());
	json_object_object_add(o, "io_uring_buffers", json_object_new_int(0));
	json_object_object_add(o, "rdma_mrs", json_object_new_array());
	json_object_object_add(o, "rdma_mr_count", json_object_new_int(0));
	json_object_object_add(o, "rdma_mr_bytes", json_object_new_int(0));
	return o;
}

void dd_holder_finish(json_object *o, const char *why, int64_t pins)
{
	if (why)
		json_object_object_add(o, "reason", json_object_new_string(why));
	if (pins < 0)
		pins = json_object_get_int64(json_object_object_get(o, "io_uring_buffers")) +
		       json_object_get_int64(json_object_object_get(o, "rdma_mr_count"));
	json_object_object_add(o, "possible_pins", json_object_new_int64(pins));
}

bool dd_outsider_has_pins(json_object *o)
{
	return json_object_get_int64(json_object_object_get(o, "possible_pins")) > 0;
}

/* A process (pid 0: every process) whose mappings the daemon cannot read (@what). */
static json_object *unknown_holder(pid_t pid, int err, const char *what)
{
	json_object *o = dd_holder_new(pid, NULL, NULL);
	char why[256];

	if (pid)
		snprintf(why, sizeof(why),
			 "its /proc/%d/%s cannot be read (%s; daxpoold needs CAP_SYS_PTRACE, and the "
			 "process must be in its user namespace) and it has %llu kB of pinned pages: "
			 "whether they are on it cannot be ruled out", (int)pid, what, strerror(err),
			 (unsigned long long)dd_proc_vm_pin_kb(pid));
	else
		snprintf(why, sizeof(why),
			 "%s cannot be read (%s): no process can be ruled out", what, strerror(err));
	dd_holder_finish(o, why, 1);
	return o;
}

/* The client @pid of @in (its index into *ret_i), or NULL. */
static const struct dd_scan_client *client_of(const struct dd_scan_in *in, pid_t pid,
					      size_t *ret_i)
{
	size_t lo = 0, hi = in->n_clients;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (in->clients[mid].pid == pid) {
			*ret_i = mid;
			return &in->clients[mid];
		}
		if (in->clients[mid].pid < pid)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

/* Say which process the scan reads now (the loop names it if the read does not end). */
static void scan_at(struct dd_scan_in *in, pid_t pid)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	__atomic_store_n(&in->at_since_ns, (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec,
			 __ATOMIC_RELAXED);
	__atomic_store_n(&in->at_pid, (int)pid, __ATOMIC_RELEASE);
}

/* The next pid of /proc, or 0 at the end. */
static pid_t next_pid(DIR *proc, pid_t self)
{
	struct dirent *de;

	while ((de = readdir(proc))) {
		pid_t pid;

		if (!isdigit((unsigned char)de->d_name[0]))
			continue;
		pid = (pid_t)atoi(de->d_name);
		if (pid != self)
			return pid;
	}
	return 0;
}

/* Umems of @pid the MR tracer recorded on key's device; 0 when it is off. */
static size_t traced_on_dev(const struct dd_scan_in *in, const struct dd_scan_key *key, pid_t pid)
{
	size_t n = 0;

	if (in->umem_fd < 0 || !in->umems.complete || key->n_pfn <= 0)
		return 0;
	for (size_t i = 0; i < in->umems.n; i++)
		n += in->umems.u[i].rec.tgid == (uint32_t)pid &&
		     dd_umem_rec_touches(&in->umems.u[i].rec, key->pfn, (size_t)key->n_pfn);
	return n;
}

/* The processes that map key's target, less the clients that hold it (the drain's). */
static json_object *mappers_scan(struct dd_scan_in *in, const struct dd_scan_key *key,
				 struct node_cache *nc, struct dd_rdma_mrs *mrs)
{
	json_object *arr = json_object_new_array();
	DIR *proc;
	pid_t pid;

	proc = opendir("/proc");
	if (!proc) {
		json_object_array_add(arr, unknown_holder(0, errno, "/proc"));
		return arr;
	}
	while ((pid = next_pid(proc, in->self))) {
		const struct dd_scan_client *c;
		struct range *ranges;
		size_t n_ranges, ci;
		json_object *maps, *o;

		c = client_of(in, pid, &ci);
		if (c && key->reg[ci].holds)
			continue;
		scan_at(in, pid);
		errno = 0;
		maps = pid_mappings(nc, pid, key->t.dev, key->t.ino, key->t.rdev, &ranges,
				    &n_ranges);
		if (maps) {
			o = dd_holder_new(pid, NULL, maps);
			json_object_object_add(o, "io_uring_buffers",
					       json_object_new_int(
						       count_uring_bufs(pid, ranges, n_ranges)));
			add_mrs(o, pid, mrs_get(mrs), NULL, 0);
			/* an MR the tracer saw on the device counts even if netlink names a thread */
			size_t on_dev = traced_on_dev(in, key, pid);
			int64_t pins = json_object_get_int64(
					       json_object_object_get(o, "io_uring_buffers")) +
				       json_object_get_int64(json_object_object_get(o, "rdma_mr_count"));
			dd_holder_finish(o, NULL, pins > (int64_t)on_dev ? pins : (int64_t)on_dev);
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
	scan_at(in, 0);
	return arr;
}

uint64_t dd_proc_vm_pin_kb(pid_t pid)
{
	return proc_status_number(pid, "VmPin:"); /* in kB */
}


static const struct dd_opener *opener_find(const struct dd_scan_in *in, pid_t pid,
					   uint64_t start_ns, dev_t rdev)
{
	for (size_t i = 0; i < in->n_openers; i++)
		if (in->openers[i].pid == pid && in->openers[i].start_ns == start_ns &&
		    in->openers[i].rdev == rdev)
			return &in->openers[i];
	return NULL;
}

/*
 * An ancestor of @pid (started at @start) recorded as an opener of @rdev:
 * @pid may have inherited a descriptor of the device. 0: none.
 */
static pid_t opener_ancestor(const struct dd_scan_in *in, pid_t pid, uint64_t start, dev_t rdev)
{
	pid_t cur = pid, ppid;
	uint64_t child_start = start, pstart;

	for (int depth = 0; depth < 64; depth++) {
		const struct dd_opener *o;

		if (dd_proc_start(cur, NULL, &ppid) < 0 || ppid <= 1)
			return 0;
		if (dd_proc_start(ppid, &pstart, NULL) < 0)
			return 0;
		o = opener_find(in, ppid, pstart, rdev);
		if (o && pstart <= child_start)
			return ppid;
		cur = ppid;
		child_start = pstart;
	}
	return 0;
}

/*
 * The MR tracer's facts of @pid for @key (f->traced and the counts), from the
 * snapshot read before its VmPin (f->vm_pin_kb, read already): a umem off the
 * device counts only if it is still recorded now, so it was live while VmPin
 * was read; every umem on the device counts, live or not (at worst a holder
 * that just went). On-device umems of the length of one of @target_pins (the
 * lengths of the client's daxpool pins on this target, n_target; none after
 * the drain) are the drain's, each pin matched once: a pin elsewhere explains
 * no record on the device. A record whose ranges are not exact (merged over
 * gaps, or not walked) that touches the device is no proof either way: it
 * keeps the process from being cleared by the tracer (f->traced_vague) but
 * does not make it a holder whatever its history.
 */
static void gather_traced(const struct dd_scan_in *in, const struct dd_scan_key *key, pid_t pid,
			  const uint64_t *target_pins, size_t n_target, struct dd_proc_facts *f)
{
	uint64_t page_kb = (uint64_t)sysconf(_SC_PAGESIZE) / 1024, exec_seq;
	bool *used = n_target ? calloc(n_target, sizeof(*used)) : NULL;

	/* Read after its VmPin: an exec before that read is seen. */
	if (in->umem_fd < 0 || !in->umems.complete || key->n_pfn <= 0 || (n_target && !used) ||
	    dd_umem_exec_seq(in->execs_fd, pid, &exec_seq) < 0) {
		free(used);
		return;
	}
	f->traced = true;
	for (size_t i = 0; i < in->umems.n; i++) {
		const struct dd_umem *u = &in->umems.u[i];
		bool own = false;

		if (u->rec.tgid != (uint32_t)pid)
			continue;
		if (dd_umem_rec_touches(&u->rec, key->pfn, (size_t)key->n_pfn)) {
			if (u->rec.flags & (DD_UMEM_MERGED | DD_UMEM_UNKNOWN)) {
				f->traced_vague = true;
				continue;
			}
			f->traced_on_dev++;
			for (size_t k = 0; k < n_target && !own; k++) {
				if (!used[k] && target_pins[k] == u->rec.length) {
					used[k] = true;
					own = true;
				}
			}
			if (own)
				f->traced_on_dev_own++;
			else
				f->traced_on_dev_bytes += u->rec.length;
		}
		/*
		 * Of the image before its last exec: pinned in an mm that is no
		 * longer its own, so no part of the VmPin read (on the device, it
		 * was counted above all the same).
		 */
		if (u->rec.seq < exec_seq)
			continue;
		if (dd_umem_still_live(in->umem_fd, u)) {
			f->traced_umems++;
			f->traced_kb += u->rec.npages * page_kb;
		}
	}
	free(used);
}

/* The facts of @pid for the holder rule; false if it is not worth judging (no pins). */
static bool gather_facts(const struct dd_scan_in *in, const struct dd_scan_key *key, pid_t pid,
			 struct dd_rdma_mrs *t, struct dd_proc_facts *f, uint64_t **ret_skip,
			 size_t *ret_n_skip)
{
	const struct dd_rdma_mrs *mrs;
	const struct dd_scan_client *c;
	uint64_t *skip = NULL;
	size_t n_skip = 0, ci = 0;

	*f = (struct dd_proc_facts){ .pid = pid };
	*ret_skip = NULL;
	*ret_n_skip = 0;
	f->vm_pin_kb = dd_proc_vm_pin_kb(pid);
	c = client_of(in, pid, &ci);
	if (c && key->reg[ci].registered) {
		f->registered = true;
		f->registered_ns = key->reg[ci].registered_ns;
	}
	mrs = mrs_get(t);
	for (size_t i = 0; mrs && i < mrs->n; i++) {
		if (mrs->mr[i].pid == pid && pid) {
			f->mrs++;
			f->mr_bytes += mrs->mr[i].length;
		}
	}
	/*
	 * Nothing pinned long-term. Not VmPin alone: an MR is charged to the mm
	 * it was registered in, and after an exec that keeps its RDMA context
	 * the process's VmPin is 0 while the MR still pins.
	 */
	if (!f->vm_pin_kb && !f->registered && !f->mrs)
		return false;
	if (dd_proc_start(pid, &f->start_ns, NULL) < 0)
		return false; /* gone */
	if (c) {
		/*
		 * Its long-term pins (after the drain, only those off the target: one
		 * it still claims there explains nothing -- a client's word is no
		 * proof of what it pins). Transient pins are not in VmPin, nor MRs.
		 */
		f->own_pin_kb = c->own_pin_kb;
		n_skip = c->n_pins;
		skip = n_skip ? malloc(n_skip * sizeof(*skip)) : NULL;
		if (skip)
			memcpy(skip, c->pin_lengths, n_skip * sizeof(*skip));
		else
			n_skip = 0;
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
	if (key->t.rdev)
		gather_traced(in, key, pid, c ? c->target_pin_lengths : NULL,
			      c ? c->n_target_pins : 0, f);
	if (f->own_mrs > f->mrs)
		f->own_mrs = f->mrs;
	if (key->t.rdev) {
		const struct dd_opener *o = opener_find(in, pid, f->start_ns, key->t.rdev);

		f->opened_ns = o ? o->first_ns : 0;
		if (!o)
			f->opened_by_ancestor = opener_ancestor(in, pid, f->start_ns, key->t.rdev);
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
	o = dd_holder_new(0, "?", NULL);
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
	json_object_object_add(o, "rdma_mrs", list);
	json_object_object_add(o, "rdma_mr_count", json_object_new_uint64(n));
	json_object_object_add(o, "rdma_mr_bytes", json_object_new_uint64(bytes));
	dd_holder_finish(o, why, (int64_t)n);
	json_object_array_add(arr, o);
}

static bool pid_in(pid_t pid, const pid_t *pids, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (pids[i] == pid)
			return true;
	return false;
}

/*
 * Recorded umems on key's device whose process was not judged (@judged, n of
 * them, and @listed, n_listed): it exited while its MR lives on (a descriptor
 * of its RDMA context elsewhere), or its VmPin is another mm's. Their pages
 * are on the device: one holder entry per such process.
 */
static void add_unjudged_umems(json_object *arr, const struct dd_scan_in *in,
			       const struct dd_scan_key *key, const pid_t *judged, size_t n_judged,
			       const pid_t *listed, size_t n_listed, const char *devname)
{
	pid_t done[64];
	size_t n_done = 0;

	if (in->umem_fd < 0 || !in->umems.complete || key->n_pfn <= 0)
		return;
	for (size_t i = 0; i < in->umems.n; i++) {
		pid_t tgid = (pid_t)in->umems.u[i].rec.tgid;
		uint64_t bytes = 0;
		size_t n = 0;
		json_object *o;
		char why[320];

		if (!dd_umem_rec_touches(&in->umems.u[i].rec, key->pfn, (size_t)key->n_pfn) ||
		    pid_in(tgid, judged, n_judged) || pid_in(tgid, listed, n_listed) ||
		    pid_in(tgid, done, n_done))
			continue;
		for (size_t j = i; j < in->umems.n; j++) {
			if ((pid_t)in->umems.u[j].rec.tgid == tgid &&
			    dd_umem_rec_touches(&in->umems.u[j].rec, key->pfn, (size_t)key->n_pfn)) {
				n++;
				bytes += in->umems.u[j].rec.length;
			}
		}
		if (n_done < sizeof(done) / sizeof(done[0]))
			done[n_done++] = tgid;
		o = dd_holder_new(tgid, NULL, NULL);
		snprintf(why, sizeof(why),
			 "%zu RDMA MR(s) of %llu bytes registered by pid %d pin pages of %s (the MR "
			 "tracer's record); the process has exited or no longer has their memory, "
			 "and the MRs live on", n, (unsigned long long)bytes, (int)tgid, devname);
		dd_holder_finish(o, why, (int64_t)n);
		json_object_array_add(arr, o);
	}
}

/*
 * Possible holders by the holder rule that do not map key's target outside
 * daxpool (pids in @skip, n_skip of them, are reported already): processes
 * with pinned pages daxpool did not pin -- RDMA MRs, io_uring buffers, VmPin
 * -- that registered it as a client, opened it (the open record), or cannot
 * be ruled out. A file (rdev 0) has no open record: only clients that
 * registered it count (the kernel refuses long-term pins of DAX files).
 */
static json_object *pinners_scan(struct dd_scan_in *in, const struct dd_scan_key *key,
				 struct node_cache *nc, const pid_t *skip_pids, size_t n_skip_pids,
				 struct dd_rdma_mrs *t)
{
	const char *devname = key->t.devname[0] ? key->t.devname : "it";
	json_object *arr = json_object_new_array();
	pid_t *judged = NULL;
	size_t n_judged = 0;
	DIR *proc;
	pid_t pid;

	proc = opendir("/proc");
	if (!proc)
		return arr;
	while ((pid = next_pid(proc, in->self))) {
		struct dd_proc_facts f;
		struct range *ranges;
		size_t n_ranges, n_skip, ci;
		uint64_t *skip;
		json_object *maps, *o;
		char why[512];

		if (excluded(pid, skip_pids, n_skip_pids))
			continue;
		scan_at(in, pid);
		if (!gather_facts(in, key, pid, t, &f, &skip, &n_skip))
			continue;
		if (f.traced) {
			pid_t *nj = realloc(judged, (n_judged + 1) * sizeof(*nj));

			if (nj) { /* without memory it is reported as not judged: a holder */
				judged = nj;
				judged[n_judged++] = pid;
			}
		}
		if (!key->t.rdev && !f.registered) {
			free(skip);
			continue;
		}
		maps = pid_mappings(nc, pid, key->t.dev, key->t.ino, key->t.rdev, &ranges,
				    &n_ranges);
		f.maps_it = maps != NULL;
		if (f.maps_it)
			f.uring_bufs = (size_t)count_uring_bufs(pid, ranges, n_ranges);
		free(ranges);
		if (!dd_holder_judge(&f, devname, &key->rec, why, sizeof(why))) {
			json_object_put(maps);
			free(skip);
			continue;
		}
		/* "mappings" is always an array: none left is the point of this scan. */
		o = dd_holder_new(pid, NULL, maps);
		json_object_object_add(o, "io_uring_buffers", json_object_new_int((int)f.uring_bufs));
		if (client_of(in, pid, &ci))
			json_object_object_add(o, "client", json_object_new_boolean(true));
		add_mrs(o, pid, mrs_get(t), skip, n_skip);
		json_object_object_add(o, "vm_pin_kb", json_object_new_uint64(f.vm_pin_kb));
		/* Every MR, io_uring buffer, or the pinned pages as one when there are neither. */
		dd_holder_finish(o, why,
				 f.mrs - f.own_mrs + f.uring_bufs
					 ? (int64_t)(f.mrs - f.own_mrs + f.uring_bufs)
					 : 1);
		json_object_array_add(arr, o);
		free(skip);
	}
	closedir(proc);
	scan_at(in, 0);
	if (key->t.rdev) {
		add_ownerless_mrs(arr, mrs_get(t), devname);
		add_unjudged_umems(arr, in, key, judged, n_judged, skip_pids, n_skip_pids, devname);
	}
	free(judged);
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


/*
 * For a viewer that is not root: the mappings of a process of another user
 * keep their count, offsets and permissions, not their addresses (they would
 * give away its address-space layout).
 */
static void hide_addresses(json_object *o, uid_t viewer)
{
	json_object *maps = json_object_object_get(o, "mappings");
	char path[64];
	struct stat st;

	snprintf(path, sizeof(path), "/proc/%d", json_object_get_int(json_object_object_get(o, "pid")));
	if (stat(path, &st) == 0 && st.st_uid == viewer)
		return;
	for (size_t i = 0; i < json_object_array_length(maps); i++) {
		json_object *m = json_object_array_get_idx(maps, i);

		json_object_object_del(m, "start");
		json_object_object_del(m, "end");
	}
}

json_object *dd_possible_holders(struct dd_scan_in *in, size_t k, struct dd_rdma_mrs *mrs)
{
	const struct dd_scan_key *key = &in->keys[k];
	struct node_cache *nc = calloc(1, sizeof(*nc)); /* NULL: no cache, every stat made */
	json_object *all, *more;
	size_t n_listed;
	pid_t *listed;

	all = mappers_scan(in, key, nc, mrs);
	n_listed = json_object_array_length(all);
	listed = calloc(n_listed + 1, sizeof(*listed));
	for (size_t i = 0; listed && i < n_listed; i++)
		listed[i] = json_object_get_int(
			json_object_object_get(json_object_array_get_idx(all, i), "pid"));
	more = pinners_scan(in, key, nc, listed, listed ? n_listed : 0, mrs);
	for (size_t i = 0; i < json_object_array_length(more); i++)
		json_object_array_add(all, json_object_get(json_object_array_get_idx(more, i)));
	json_object_put(more);
	for (size_t i = 0; i < json_object_array_length(all); i++) {
		json_object *o = json_object_array_get_idx(all, i);

		json_object_object_add(o, "target", json_object_new_string(key->t.path));
		if (in->viewer != 0)
			hide_addresses(o, in->viewer);
	}
	free(listed);
	free(nc);
	return all;
}
