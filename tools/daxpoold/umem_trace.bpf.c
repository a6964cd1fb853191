// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * The kernel's record of what every RDMA MR pins (umem_trace.h): loaded by
 * daxpoold, never by a client. fexit of ib_umem_get (ib_uverbs) records the
 * umem it returns -- the process it is charged to, its page count and the
 * physical page frames of its scatterlist, as a few merged ranges (a
 * superset of them when there are more) -- and fentry of ib_umem_release
 * forgets it; sched_process_exec numbers each exec, so that a umem of a
 * process's former image is told from its current one's. CO-RE: the structures below are the few fields read, relocated
 * against the running kernel's BTF at load time.
 */
#include <linux/types.h>
#include <linux/bpf.h>

#include <bpf/bpf_core_read.h>
#include <bpf/bpf_helpers.h>

#include "umem_trace_abi.h"

char LICENSE[] SEC("license") = "GPL";

#define SG_CHAIN 0x01UL
#define SG_END 0x02UL
#define SG_PAGE_MASK (~0x03UL)
#define PAGE_SHIFT 12
#define MAX_ERRNO 4095UL

struct scatterlist {
	unsigned long page_link;
	unsigned int offset;
	unsigned int length;
} __attribute__((preserve_access_index));

struct sg_table {
	struct scatterlist *sgl;
	unsigned int nents;
	unsigned int orig_nents;
} __attribute__((preserve_access_index));

struct sg_append_table {
	struct sg_table sgt;
} __attribute__((preserve_access_index));

struct ib_umem {
	unsigned long address;
	__kernel_size_t length;
	struct sg_append_table sgt_append;
} __attribute__((preserve_access_index));

struct page {
	unsigned long flags;
} __attribute__((preserve_access_index));

/* x86-64's base of the struct page array (SPARSEMEM_VMEMMAP): page_to_pfn. */
extern const void vmemmap_base __ksym;

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, DD_UMEM_MAX);
	__type(key, __u64); /* the struct ib_umem pointer */
	__type(value, struct dd_umem_rec);
} umems SEC(".maps");

/* The record being built (too large for the stack). */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct dd_umem_rec);
} scratch SEC(".maps");

/* [0]: umems not recorded (the table was full, or the walk failed); [1]: records made. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 2);
	__type(key, __u32);
	__type(value, __u64);
} counters SEC(".maps");

__u64 seq;

/*
 * Per process (its thread group leader's task), the sequence number at its
 * last exec since the tracer attached: a umem recorded before it belongs to
 * the mm the process had before, not to the one whose VmPin daxpoold reads.
 * Freed with the task.
 */
struct {
	__uint(type, BPF_MAP_TYPE_TASK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, __u64);
} execs SEC(".maps");

struct walk {
	__u64 sg;	/* the next entry */
	__u64 base;	/* vmemmap_base */
	__u32 sg_size;	/* sizeof(struct scatterlist) */
	__u32 page_size; /* sizeof(struct page) */
	int ended;
};

static void count(__u32 which)
{
	__u64 *c = bpf_map_lookup_elem(&counters, &which);

	if (c)
		__sync_fetch_and_add(c, 1);
}

/* Add the frames [s, e) to @r: into a range they touch, a new one, or the nearest grown. */
static void add_range(struct dd_umem_rec *r, __u64 s, __u64 e)
{
	__u32 n = r->n_ranges, best = 0;
	__u64 best_gap = ~0ULL;

	if (n > DD_UMEM_RANGES)
		return;
	if (n && n <= DD_UMEM_RANGES) {
		struct dd_umem_range *last = &r->range[(n - 1) & (DD_UMEM_RANGES - 1)];

		if (s <= last->end && e >= last->start) {
			if (s < last->start)
				last->start = s;
			if (e > last->end)
				last->end = e;
			return;
		}
	}
	if (n < DD_UMEM_RANGES) {
		r->range[n & (DD_UMEM_RANGES - 1)].start = s;
		r->range[n & (DD_UMEM_RANGES - 1)].end = e;
		r->n_ranges = n + 1;
		return;
	}
	/* Full: grow the range nearest to [s, e) over the gap (a superset, never less). */
	for (__u32 i = 0; i < DD_UMEM_RANGES; i++) {
		struct dd_umem_range *g = &r->range[i];
		__u64 gap = s >= g->end ? s - g->end : g->start >= e ? g->start - e : 0;

		if (gap < best_gap) {
			best_gap = gap;
			best = i;
		}
	}
	r->flags |= DD_UMEM_MERGED;
	if (s < r->range[best & (DD_UMEM_RANGES - 1)].start)
		r->range[best & (DD_UMEM_RANGES - 1)].start = s;
	if (e > r->range[best & (DD_UMEM_RANGES - 1)].end)
		r->range[best & (DD_UMEM_RANGES - 1)].end = e;
}

static long walk_one(__u64 index, void *ctx)
{
	struct walk *w = ctx;
	__u32 zero = 0;
	struct dd_umem_rec *r = bpf_map_lookup_elem(&scratch, &zero);
	unsigned long link;
	unsigned int off, len;
	__u64 page, pfn;

	if (!r || !w->sg)
		return 1;
	if (bpf_probe_read_kernel(&link, sizeof(link),
				  (void *)(w->sg + bpf_core_field_offset(struct scatterlist, page_link))) ||
	    bpf_probe_read_kernel(&off, sizeof(off),
				  (void *)(w->sg + bpf_core_field_offset(struct scatterlist, offset))) ||
	    bpf_probe_read_kernel(&len, sizeof(len),
				  (void *)(w->sg + bpf_core_field_offset(struct scatterlist, length))))
		return 1; /* not ended: the record is marked incomplete */
	if (link & SG_CHAIN) {
		w->sg = link & SG_PAGE_MASK; /* a chain entry holds no page */
		return 0;
	}
	page = link & SG_PAGE_MASK;
	if (page < w->base || !w->page_size)
		return 1;
	pfn = (page - w->base) / w->page_size;
	if (len)
		add_range(r, pfn + (off >> PAGE_SHIFT),
			  pfn + (((__u64)off + len + (1UL << PAGE_SHIFT) - 1) >> PAGE_SHIFT));
	if (link & SG_END) {
		w->ended = 1;
		return 1;
	}
	w->sg += w->sg_size;
	return 0;
}

SEC("fexit/ib_umem_get")
int dd_umem_get(unsigned long long *ctx)
{
	struct ib_umem *umem = (struct ib_umem *)ctx[4];
	__u64 key = (__u64)umem, pid_tgid = bpf_get_current_pid_tgid();
	unsigned long address;
	__kernel_size_t length;
	unsigned int nents;
	struct dd_umem_rec *r;
	struct walk w = {};
	__u32 zero = 0;

	if (!umem || key >= (__u64)-MAX_ERRNO)
		return 0; /* an error: nothing pinned */
	r = bpf_map_lookup_elem(&scratch, &zero);
	if (!r)
		return 0;
	__builtin_memset(r, 0, sizeof(*r));
	address = BPF_CORE_READ(umem, address);
	length = BPF_CORE_READ(umem, length);
	nents = BPF_CORE_READ(umem, sgt_append.sgt.orig_nents);
	r->tgid = pid_tgid >> 32;
	r->tid = (__u32)pid_tgid;
	r->seq = __sync_fetch_and_add(&seq, 1) + 1;
	r->length = length;
	r->npages = ((address + length + (1UL << PAGE_SHIFT) - 1) >> PAGE_SHIFT) -
		    (address >> PAGE_SHIFT);
	bpf_probe_read_kernel(&w.base, sizeof(w.base), &vmemmap_base);
	w.sg = (__u64)BPF_CORE_READ(umem, sgt_append.sgt.sgl);
	w.sg_size = bpf_core_type_size(struct scatterlist);
	w.page_size = bpf_core_type_size(struct page);
	if (nents && w.base) {
		/* orig_nents entries and their chain links; bpf_loop bounds it. */
		bpf_loop(nents + nents / 8 + 2, walk_one, &w, 0);
	} else if (!nents) {
		w.ended = 1; /* pins nothing */
	}
	if (!w.ended) {
		/* Not walked to its end: it may pin anything. */
		r->flags |= DD_UMEM_UNKNOWN;
		r->n_ranges = 1;
		r->range[0].start = 0;
		r->range[0].end = ~0ULL;
	}
	if (bpf_map_update_elem(&umems, &key, r, BPF_ANY))
		count(0);
	else
		count(1);
	return 0;
}

/* After an exec the task is its process's leader, with the new mm. */
SEC("tp_btf/sched_process_exec")
int dd_exec(unsigned long long *ctx)
{
	__u64 *v = bpf_task_storage_get(&execs, bpf_get_current_task_btf(), 0,
					BPF_LOCAL_STORAGE_GET_F_CREATE);

	(void)ctx;
	if (v)
		*v = __sync_fetch_and_add(&seq, 1) + 1;
	else
		count(0); /* not recorded: the tracer proves nothing from now on */
	return 0;
}

SEC("fentry/ib_umem_release")
int dd_umem_release(unsigned long long *ctx)
{
	__u64 key = ctx[0];

	if (key)
		bpf_map_delete_elem(&umems, &key);
	return 0;
}
