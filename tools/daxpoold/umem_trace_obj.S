/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The MR tracer's BPF object (umem_trace.bpf.c, built by clang), linked into daxpoold. */
	.section .rodata
	.balign 8
	.globl dd_umem_trace_obj
	.type dd_umem_trace_obj, @object
dd_umem_trace_obj:
	.incbin "umem_trace.bpf.o"
	.globl dd_umem_trace_obj_end
	.type dd_umem_trace_obj_end, @object
dd_umem_trace_obj_end:
	.section .note.GNU-stack, "", @progbits
