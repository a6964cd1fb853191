/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Holders outside the drain: a probe of /proc, the open record (opens.h) and
 * RDMA netlink (rdma_res.h), judged by the holder rule (holder_rule.h). It
 * reads the clients through the manager and changes nothing. Main thread;
 * every scan reads all of /proc.
 */
#ifndef DAXPOOLD_OUTSIDERS_H
#define DAXPOOLD_OUTSIDERS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <json-c/json.h>

#include "manager.h"
#include "rdma_res.h"

/*
 * Processes that map (dev, ino) -- or, @rdev not 0, any node of that
 * device-dax device (/proc/PID/map_files) -- (/proc/PID/maps), with their io_uring
 * registered buffers inside those mappings (/proc/PID/fdinfo) and their RDMA
 * MRs from @mrs (possible pins: an MR has no address), except the pids in
 * @exclude (n_exclude of them). @mrs (zeroed, or already scanned) is scanned
 * the first time a process that maps it is found; NULL: MRs are not looked
 * at. Return a JSON array (never NULL).
 */
json_object *dd_outsiders_scan(uint64_t dev, uint64_t ino, uint64_t rdev, const pid_t *exclude,
			       size_t n_exclude, struct dd_rdma_mrs *mrs);
/*
 * Possible holders by the holder rule (holder_rule.c) that do not map (dev,
 * ino) outside daxpool: processes with pinned pages daxpool did not pin --
 * RDMA MRs (@mrs, scanned when first needed), io_uring buffers, VmPin -- that
 * registered it as a client of @m, opened it (the open record), or cannot be
 * ruled out. @rdev and @devname: the device-dax device (rdev 0 for a file:
 * then only clients that registered it count; the kernel refuses long-term
 * pins of DAX files and nothing is recorded for them). Pids in @skip
 * (n_skip) are reported already. @drained: after the drain, a client's pins
 * it still claims on the target explain none of its pinned pages. A JSON
 * array of objects shaped like an outsider's, with "reason", "vm_pin_kb",
 * and "client": true for a daxpool client.
 */
json_object *dd_pinners_scan(const struct dd_manager *m, uint64_t dev, uint64_t ino, dev_t rdev,
			     const char *devname, const pid_t *skip, size_t n_skip, bool drained,
			     struct dd_rdma_mrs *mrs);
/*
 * Every possible holder of @t outside the drain: the processes that map it
 * (dd_outsiders_scan, less the clients of @m that hold it: the drain revokes
 * theirs) and the possible pinners (dd_pinners_scan), each with "target" set
 * to t->path. A JSON array (never NULL).
 */
json_object *dd_possible_holders(const struct dd_manager *m, const struct dd_target *t,
				 bool drained, struct dd_rdma_mrs *mrs);
/* VmPin of @pid in kB; 0 if it is gone. */
uint64_t dd_proc_vm_pin_kb(pid_t pid);
/* The "rdma" summary of a report: devices scanned, MRs seen, why incomplete. */
json_object *dd_rdma_mrs_json(const struct dd_rdma_mrs *mrs);
/* Whether an outsider object counts as a possible pin (io_uring buffers or MRs). */
bool dd_outsider_has_pins(json_object *o);
/* /proc/PID/comm into @buf; "?" if it cannot be read. */
void dd_proc_comm(pid_t pid, char *buf, size_t size);
/* Whether @pid maps (dev, ino) (/proc/PID/maps), or @rdev through another node. */
bool dd_pid_maps(pid_t pid, uint64_t dev, uint64_t ino, uint64_t rdev);
/* Whether @pid has (dev, ino) open (/proc/PID/fd) or mapped (/proc/PID/maps). */
bool dd_pid_holds_file(pid_t pid, uint64_t dev, uint64_t ino);

#endif /* DAXPOOLD_OUTSIDERS_H */
