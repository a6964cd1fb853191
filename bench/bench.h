/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Helpers shared by the benchmark programs in bench/.
 *
 * Every program measures daxpool and its baseline in the same process run,
 * alternating the order of their samples so that drift (frequency, a noisy
 * neighbour on the VM) hits both alike, and prints one machine-readable line
 * per row for bench/run:
 *
 *   RESULT name=<id> desc="<operation>" unit=<ns|ms|us|GB/s>
 *          daxpool=<median> baseline=<median> baseline_desc="<what>"
 *          metric=<number> kind=<ratio|fraction|delta|abs|speedup>
 *          goal_op=<le|ge> goal=<number> [note="..."]
 *   RESULT name=<id> desc="..." status=skip reason="..."
 *   SERIES plot=<pins|threads> line="<impl>" x=<n> y=<ns per lookup>
 *
 * Values are medians of the samples; each sample is the mean over many
 * iterations, timed with CLOCK_MONOTONIC.
 *
 * Options common to every program:
 *   --quick          fewer samples and iterations (bench/run --quick)
 *   --samples N      samples per measurement (default 11, quick 3)
 *   --dir DIR        where to create the files the benchmark needs (default .)
 */
#ifndef DAXPOOL_BENCH_H
#define DAXPOOL_BENCH_H

#include <errno.h>
#include <sched.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

struct bench_opts {
	int quick;
	int samples;
	const char *dir;
};

static struct bench_opts bench;

static inline uint64_t bench_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Keep a value alive without the compiler seeing through it. */
#define bench_keep(x) __asm__ volatile("" : : "r"(x) : "memory")

static void __attribute__((format(printf, 1, 2), noreturn)) bench_die(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	fputs("bench: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
	exit(1);
}

/* Die on a negative errno return of daxpool. */
#define bench_check(expr)                                                                          \
	do {                                                                                       \
		long _r = (long)(expr);                                                            \
		if (_r < 0)                                                                        \
			bench_die("%s:%d: %s: %s", __FILE__, __LINE__, #expr, strerror((int)-_r)); \
	} while (0)

static inline void bench_parse(int argc, char **argv)
{
	bench.samples = 0;
	bench.dir = ".";
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--quick"))
			bench.quick = 1;
		else if (!strcmp(argv[i], "--samples") && i + 1 < argc)
			bench.samples = atoi(argv[++i]);
		else if (!strcmp(argv[i], "--dir") && i + 1 < argc)
			bench.dir = argv[++i];
		else
			bench_die("usage: %s [--quick] [--samples N] [--dir DIR]", argv[0]);
	}
	if (bench.samples <= 0)
		bench.samples = bench.quick ? 3 : 11;
	/* A result line must not be lost in a crash that follows it. */
	setvbuf(stdout, NULL, _IOLBF, 0);
}

/* Pin the calling thread to one CPU (modulo the CPUs there are). */
static inline void bench_pin_cpu(int cpu)
{
	long n = sysconf(_SC_NPROCESSORS_ONLN);
	cpu_set_t set;

	CPU_ZERO(&set);
	CPU_SET(cpu % (n > 0 ? n : 1), &set);
	/* Not fatal: a container may forbid it; the numbers are then noisier. */
	sched_setaffinity(0, sizeof(set), &set);
}

static inline int bench_ncpus(void)
{
	long n = sysconf(_SC_NPROCESSORS_ONLN);

	return n > 0 ? (int)n : 1;
}

static int bench_cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

/* Median of n values (sorts them in place). */
static inline double bench_median(double *v, int n)
{
	qsort(v, n, sizeof(*v), bench_cmp_double);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static inline void bench_result(const char *name, const char *desc, const char *unit,
				double daxpool, double baseline, const char *baseline_desc,
				double metric, const char *kind, const char *goal_op, double goal,
				const char *note)
{
	printf("RESULT name=%s desc=\"%s\" unit=%s daxpool=%.6g baseline=%.6g "
	       "baseline_desc=\"%s\" metric=%.6g kind=%s goal_op=%s goal=%g",
	       name, desc, unit, daxpool, baseline, baseline_desc, metric, kind, goal_op, goal);
	if (note && *note)
		printf(" note=\"%s\"", note);
	putchar('\n');
}

static inline void bench_skip(const char *name, const char *desc, const char *reason)
{
	printf("RESULT name=%s desc=\"%s\" status=skip reason=\"%s\"\n", name, desc, reason);
}

static inline void bench_series(const char *plot, const char *line, double x, double y)
{
	printf("SERIES plot=%s line=\"%s\" x=%g y=%.6g\n", plot, line, x, y);
}

/* A file of @size bytes under bench.dir (or @dir), sparse; returns its malloc()ed path. */
static inline char *bench_make_file(const char *dir, const char *name, uint64_t size)
{
	char *path;
	FILE *f;

	if (asprintf(&path, "%s/%s.%d", dir ? dir : bench.dir, name, (int)getpid()) < 0)
		bench_die("out of memory");
	f = fopen(path, "w");
	if (!f)
		bench_die("create %s: %s", path, strerror(errno));
	if (ftruncate(fileno(f), (off_t)size) < 0)
		bench_die("truncate %s to %llu: %s", path, (unsigned long long)size,
			  strerror(errno));
	fclose(f);
	return path;
}

/* tmpfs if there is one: msync() there costs a system call, not a disk write. */
static inline const char *bench_shm_dir(void)
{
	return access("/dev/shm", W_OK) == 0 ? "/dev/shm" : bench.dir;
}

#endif /* DAXPOOL_BENCH_H */
