/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The record umem_trace.bpf.c keeps of each live umem, as daxpoold reads it (umem_trace.h). */
#ifndef DAXPOOLD_UMEM_TRACE_ABI_H
#define DAXPOOLD_UMEM_TRACE_ABI_H

#include <linux/types.h>

#define DD_UMEM_MAX 65536 /* umems recorded at once; beyond, they are counted as missed */
#define DD_UMEM_RANGES 16 /* merged frame ranges per umem (a power of two) */

enum {
	DD_UMEM_MERGED = 1,  /* more ranges than DD_UMEM_RANGES: some grown over gaps */
	DD_UMEM_UNKNOWN = 2, /* the scatterlist was not walked to its end: range is everything */
};

struct dd_umem_range {
	__u64 start, end; /* page frame numbers, [start, end) */
};

struct dd_umem_rec {
	__u32 tgid, tid; /* the process it is charged to (VmPin), the thread that registered it */
	__u64 seq;	 /* unique per record: a reused umem address is another record */
	__u64 npages;	 /* pages charged to the process's VmPin */
	__u64 length;	 /* bytes registered */
	__u32 n_ranges, flags;
	struct dd_umem_range range[DD_UMEM_RANGES];
};

#endif /* DAXPOOLD_UMEM_TRACE_ABI_H */
