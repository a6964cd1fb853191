/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Holders outside daxpool: processes that map the device or file, found in
 * /proc/PID/maps by (st_dev, st_ino) -- devdax mappings show devtmpfs's device
 * and the node's inode, fsdax ones the filesystem's device and the file's
 * inode (KERNEL-FACTS.md section 6) -- and the io_uring registered buffers
 * (/proc/PID/fdinfo, "UserBufs:") that lie in those mappings. Page references
 * taken by vmsplice are visible nowhere; RDMA MRs of non-daxpool processes
 * (RDMA netlink) are not scanned yet.
 */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/sysmacros.h>
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

json_object *dd_outsiders_scan(uint64_t dev, uint64_t ino, const pid_t *exclude, size_t n_exclude)
{
	json_object *arr = json_object_new_array();
	struct dirent *de;
	DIR *proc;

	proc = opendir("/proc");
	if (!proc)
		return arr;
	while ((de = readdir(proc))) {
		struct range *ranges = NULL;
		size_t n_ranges = 0;
		json_object *maps = NULL;
		char path[64], line[4352];
		pid_t pid;
		FILE *f;

		if (!isdigit((unsigned char)de->d_name[0]))
			continue;
		pid = (pid_t)atoi(de->d_name);
		if (pid == getpid() || excluded(pid, exclude, n_exclude))
			continue;
		snprintf(path, sizeof(path), "/proc/%d/maps", (int)pid);
		f = fopen(path, "re");
		if (!f)
			continue;
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
		if (maps) {
			json_object *o = json_object_new_object();
			char comm[32];

			dd_proc_comm(pid, comm, sizeof(comm));
			json_object_object_add(o, "pid", json_object_new_int(pid));
			json_object_object_add(o, "comm", json_object_new_string(comm));
			json_object_object_add(o, "mappings", maps);
			json_object_object_add(o, "io_uring_buffers",
					       json_object_new_int(count_uring_bufs(pid, ranges, n_ranges)));
			json_object_array_add(arr, o);
		}
		free(ranges);
	}
	closedir(proc);
	return arr;
}
