/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Rows "registry vs UCX rcache" (issue 16): daxpool's pin registry against
 * UCX's registration cache (ucs_rcache), in the same process, on the same
 * addresses: N dense 4 KiB ranges side by side in one map, N = 1k, 100k, 1M.
 *
 *   hit          daxpool_ctx_is_pinned(addr, 64)   vs ucs_rcache_get + put of a cached range;
 *   hit + ref    daxpool_ctx_find_pin + unref vs the same get + put (a get takes a
 *                reference);
 *   reg + unreg  daxpool_pin_new + unref of a range not registered vs ucs_rcache_get of a
 *                new range + ucs_rcache_region_invalidate + put (no device behind either:
 *                the rcache's mem_reg/mem_dereg do nothing);
 *   get new      daxpool_ctx_find_or_pin + unref of a range not registered (a lookup that
 *                misses, then the pin) vs the same rcache get + invalidate + put;
 *   1M ranges    registering 1M ranges, seconds;
 *   bytes        resident memory per registered range (pin and index together; the
 *                rcache's regions and page table), each measured in a fresh child;
 *   2 threads    lookup throughput at 2 threads over 1 thread, and against the rcache;
 *                a scaling figure only if every worker had its CPU to itself (on a CPU
 *                at least 90 % of its wall time, from its thread CPU clock): else the
 *                row says so, with the load average, and is not judged.
 *
 * Queries are not replayed: they walk a random permutation of all N ranges
 * with a moving cursor (every range once per N queries), at a moving
 * 64-byte offset inside the range.
 */
#include <limits.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdatomic.h>
#include <sys/mman.h>
#include <ucs/memory/rcache.h>

#include "bench.h"
#include "daxpool.h"

#define RANGE 4096u

struct setup {
	size_t n;
	char *path;
	struct daxpool_ctx *ctx;
	struct daxpool_region *region;
	struct daxpool_map *map;
	char *base;
	struct daxpool_pin **pins;
	ucs_rcache_t *rc;
	ucs_rcache_region_t **regions;
	uint32_t *perm;
};

static ucs_status_t rc_reg(void *context, ucs_rcache_t *rcache, void *arg,
			   ucs_rcache_region_t *region, uint16_t flags)
{
	return UCS_OK;
}

static void rc_dereg(void *context, ucs_rcache_t *rcache, ucs_rcache_region_t *region)
{
}

static void rc_dump(void *context, ucs_rcache_t *rcache, ucs_rcache_region_t *region, char *buf,
		    size_t max)
{
	if (max)
		buf[0] = 0;
}

static const ucs_rcache_ops_t rc_ops = { rc_reg, rc_dereg, rc_dump };

static ucs_rcache_t *rc_new(void)
{
	ucs_rcache_params_t p = {
		.region_struct_size = sizeof(ucs_rcache_region_t),
		.alignment = UCS_RCACHE_MIN_ALIGNMENT,
		.max_alignment = 4096,
		.ucm_events = 0,
		.ucm_event_priority = 1000,
		.ops = &rc_ops,
		.context = NULL,
		.flags = UCS_RCACHE_FLAG_NO_PFN_CHECK,
		.max_regions = ULONG_MAX,
		.max_size = SIZE_MAX,
		.max_unreleased = SIZE_MAX,
	};
	ucs_rcache_t *rc;

	if (ucs_rcache_create(&p, "bench", NULL, &rc) != UCS_OK)
		bench_die("ucs_rcache_create failed");
	return rc;
}

static void rc_invalidated(void *arg)
{
	(void)arg;
}

static inline uintptr_t query(const struct setup *s, uint64_t i)
{
	return (uintptr_t)s->base + (uintptr_t)s->perm[i % s->n] * RANGE + ((i * 64) & (RANGE - 1));
}

enum op { OP_HIT, OP_HIT_REF, OP_REG, OP_GET_NEW, N_OP };

/* ns per operation of @op, daxpool (dax) or the rcache, @ops operations from cursor *cur. */
static double run_op(struct setup *s, enum op op, bool dax, long ops, uint64_t *cur)
{
	uint64_t t0 = bench_now_ns(), c = *cur;
	long hits = 0;

	for (long k = 0; k < ops; k++, c++) {
		if (op == OP_REG || op == OP_GET_NEW) {
			/* A range of the second half of the map: never registered. */
			char *a = s->base + (s->n + c % s->n) * RANGE;

			if (dax) {
				struct daxpool_pin *pin;

				if (op == OP_REG)
					bench_check(daxpool_pin_new(s->map, a, RANGE,
								    DAXPOOL_PIN_TRANSIENT,
								    DAXPOOL_PIN_DEVICE_READ, &pin));
				else if (daxpool_ctx_find_or_pin(s->ctx, a, RANGE,
								 DAXPOOL_PIN_TRANSIENT,
								 DAXPOOL_PIN_DEVICE_READ, &pin) != 1)
					bench_die("daxpool_ctx_find_or_pin made no new pin");
				daxpool_pin_unref(pin);
			} else {
				ucs_rcache_region_t *r;

				if (ucs_rcache_get(s->rc, a, RANGE, PROT_READ, NULL, &r) != UCS_OK)
					bench_die("ucs_rcache_get failed");
				ucs_rcache_region_invalidate(s->rc, r, rc_invalidated, NULL);
				ucs_rcache_region_put(s->rc, r);
			}
			hits++;
			continue;
		}
		if (dax && op == OP_HIT) {
			hits += daxpool_ctx_is_pinned(s->ctx, (void *)query(s, c), 64) == 1;
		} else if (dax) {
			struct daxpool_pin *pin;

			if (daxpool_ctx_find_pin(s->ctx, (void *)query(s, c), 64, 0,
						 DAXPOOL_PIN_DEVICE_READ, &pin) == 0) {
				hits++;
				daxpool_pin_unref(pin);
			}
		} else {
			ucs_rcache_region_t *r;

			if (ucs_rcache_get(s->rc, (void *)query(s, c), 64, PROT_READ, NULL, &r) ==
			    UCS_OK) {
				hits++;
				ucs_rcache_region_put(s->rc, r);
			}
		}
	}
	*cur = c;
	if (hits != ops)
		bench_die("%s: %ld hits in %ld operations", dax ? "daxpool" : "rcache", hits, ops);
	return (double)(bench_now_ns() - t0) / (double)ops;
}

static void setup_make(struct setup *s, size_t n)
{
	uint64_t x = 0x9e3779b97f4a7c15ull;

	memset(s, 0, sizeof(*s));
	s->n = n;
	/* Twice the ranges: the second half for the registration rows. Never touched. */
	s->path = bench_make_file(NULL, "daxpool-bench-rcache", 2 * n * (uint64_t)RANGE);
	bench_check(daxpool_ctx_new(&s->ctx));
	bench_check(daxpool_region_open(s->ctx, s->path, 0, &s->region));
	bench_check(daxpool_map_new(s->region, 0, 0, 0, &s->map));
	s->base = daxpool_map_get_address(s->map);
	s->pins = calloc(n, sizeof(*s->pins));
	s->regions = calloc(n, sizeof(*s->regions));
	s->perm = calloc(n, sizeof(*s->perm));
	if (!s->pins || !s->regions || !s->perm)
		bench_die("out of memory");
	for (size_t i = 0; i < n; i++)
		s->perm[i] = (uint32_t)i;
	for (size_t i = n - 1; i > 0; i--) {
		size_t j;
		uint32_t t;

		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		j = x % (i + 1);
		t = s->perm[i];
		s->perm[i] = s->perm[j];
		s->perm[j] = t;
	}
	s->rc = rc_new();
}

/* Register the first half's ranges: daxpool or the rcache; seconds it took. */
static double setup_register(struct setup *s, bool dax)
{
	uint64_t t0 = bench_now_ns();

	for (size_t i = 0; i < s->n; i++) {
		char *a = s->base + i * RANGE;

		if (dax)
			bench_check(daxpool_pin_new(s->map, a, RANGE, DAXPOOL_PIN_TRANSIENT,
						    DAXPOOL_PIN_DEVICE_READ, &s->pins[i]));
		else if (ucs_rcache_get(s->rc, a, RANGE, PROT_READ, NULL, &s->regions[i]) != UCS_OK)
			bench_die("ucs_rcache_get failed");
	}
	return (double)(bench_now_ns() - t0) / 1e9;
}

static void setup_free(struct setup *s)
{
	for (size_t i = 0; i < s->n; i++) {
		if (s->pins[i])
			daxpool_pin_unref(s->pins[i]);
		if (s->regions[i])
			ucs_rcache_region_put(s->rc, s->regions[i]);
	}
	ucs_rcache_destroy(s->rc);
	daxpool_map_unref(s->map);
	daxpool_region_unref(s->region);
	daxpool_ctx_unref(s->ctx);
	unlink(s->path);
	free(s->path);
	free(s->pins);
	free(s->regions);
	free(s->perm);
}

static long rss_bytes(void)
{
	long size, res;
	FILE *f = fopen("/proc/self/statm", "r");

	if (!f || fscanf(f, "%ld %ld", &size, &res) != 2)
		bench_die("cannot read /proc/self/statm");
	fclose(f);
	return res * sysconf(_SC_PAGESIZE);
}

/*
 * Resident bytes per range of @n ranges registered in daxpool or the rcache,
 * in a fresh process (this program again, with --bytes): a forked child
 * would reuse memory this process freed.
 */
static double bytes_per_range(size_t n, bool dax)
{
	char cmd[4200];
	double v = 0;
	FILE *f;

	snprintf(cmd, sizeof(cmd), "/proc/%d/exe --bytes %zu %d --dir '%s'", (int)getpid(), n,
		 dax ? 1 : 0, bench.dir);
	f = popen(cmd, "r");
	if (!f || fscanf(f, "%lf", &v) != 1)
		bench_die("the memory child failed");
	pclose(f);
	return v;
}

static int bytes_main(size_t n, bool dax)
{
	struct setup s;
	long before;

	setup_make(&s, n);
	/* The benchmark's own arrays of handles are neither side's memory: resident before. */
	memset(s.pins, 0, n * sizeof(*s.pins));
	memset(s.regions, 0, n * sizeof(*s.regions));
	before = rss_bytes();
	setup_register(&s, dax);
	printf("%.2f\n", (double)(rss_bytes() - before) / (double)n);
	unlink(s.path);
	return 0;
}

struct worker {
	pthread_t thread;
	struct setup *s;
	bool dax;
	int cpu;
	long ops;
	uint64_t cur;
	pthread_barrier_t *barrier;
	double ns;
	double on_cpu; /* thread CPU time over wall time of the timed run */
};

static uint64_t thread_cpu_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void *worker_fn(void *arg)
{
	struct worker *w = arg;

	bench_pin_cpu(w->cpu);
	run_op(w->s, OP_HIT, w->dax, 1000, &w->cur); /* registers the thread, warms up */
	pthread_barrier_wait(w->barrier);
	{
		uint64_t c0 = thread_cpu_ns(), t0 = bench_now_ns();

		w->ns = run_op(w->s, OP_HIT, w->dax, w->ops, &w->cur);
		w->on_cpu = (double)(thread_cpu_ns() - c0) / (double)(bench_now_ns() - t0);
	}
	return NULL;
}

/*
 * Lookup throughput (Mlookups/s, all threads) at @threads threads; in
 * *on_cpu (if not NULL) the lowest share of its wall time a worker spent on a
 * CPU.
 */
static double throughput(struct setup *s, bool dax, int threads, long ops, double *on_cpu)
{
	struct worker w[2];
	pthread_barrier_t barrier;
	double mops = 0;

	pthread_barrier_init(&barrier, NULL, threads);
	for (int t = 0; t < threads; t++) {
		w[t] = (struct worker){ .s = s, .dax = dax, .cpu = t, .ops = ops,
					.cur = (uint64_t)t * (s->n / 2 + 7919), .barrier = &barrier };
		if (pthread_create(&w[t].thread, NULL, worker_fn, &w[t]))
			bench_die("pthread_create failed");
	}
	for (int t = 0; t < threads; t++) {
		pthread_join(w[t].thread, NULL);
		mops += 1e3 / w[t].ns;
		if (on_cpu && (t == 0 || w[t].on_cpu < *on_cpu))
			*on_cpu = w[t].on_cpu;
	}
	pthread_barrier_destroy(&barrier);
	return mops;
}

static const char *const op_name[N_OP] = { "hit", "hit_ref", "reg", "get_new" };
static const char *const op_desc[N_OP] = { "hit lookup", "hit lookup with a reference",
					   "register + unregister a new range",
					   "find-or-pin + unpin a new range" };
static const char *const op_base[N_OP] = { "ucs_rcache_get + put", "ucs_rcache_get + put",
					   "rcache get + invalidate + put",
					   "rcache get + invalidate + put" };
static const double op_goal[N_OP] = { 0.8, 0.9, 1.0, 1.0 };

int main(int argc, char **argv)
{
	static const size_t full_ns[] = { 1000, 100000, 1000000 }, quick_ns[] = { 1000, 100000 };
	const size_t *ns;
	size_t n_ns;
	int ncpu;

	if (argc >= 4 && !strcmp(argv[1], "--bytes")) {
		size_t n = strtoul(argv[2], NULL, 10);
		bool dax = atoi(argv[3]);

		bench_parse(argc - 3, argv + 3);
		return bytes_main(n, dax);
	}
	bench_parse(argc, argv);
	ns = bench.quick ? quick_ns : full_ns;
	n_ns = bench.quick ? 2 : 3;
	ncpu = bench_ncpus();

	for (size_t k = 0; k < n_ns; k++) {
		size_t n = ns[k];
		struct setup s;
		char name[64], desc[160], note[200];
		double treg_dax, treg_rc, mdax, mrc, one, two, rc_two, cpu_one, cpu_two;
		double target_ns = bench.quick ? 4e6 : 20e6;

		setup_make(&s, n);
		treg_dax = setup_register(&s, true);
		treg_rc = setup_register(&s, false);
		for (int op = 0; op < N_OP; op++) {
			double *v[2], est[2];
			uint64_t cur[2] = { 0, 0 };

			for (int d = 0; d < 2; d++) {
				v[d] = calloc(bench.samples, sizeof(double));
				if (!v[d])
					bench_die("out of memory");
				run_op(&s, op, d == 0, 2000, &cur[d]); /* warm-up */
				est[d] = run_op(&s, op, d == 0, 20000, &cur[d]);
			}
			for (int smp = 0; smp < bench.samples; smp++)
				for (int j = 0; j < 2; j++) {
					int d = (j + smp) % 2;
					long ops = (long)(target_ns / est[d]);

					v[d][smp] = run_op(&s, op, d == 0, ops < 1000 ? 1000 : ops,
							   &cur[d]);
				}
			mdax = bench_median(v[0], bench.samples);
			mrc = bench_median(v[1], bench.samples);
			free(v[0]);
			free(v[1]);
			snprintf(name, sizeof(name), "rcache_%s_%zuk", op_name[op], n / 1000);
			snprintf(desc, sizeof(desc), "%s vs rcache, %zu ranges", op_desc[op], n);
			bench_result(name, desc, "ns", mdax, mrc, op_base[op], mdax / mrc, "ratio", "le",
				     op_goal[op], NULL);
		}
		if (n == 1000000) {
			snprintf(note, sizeof(note), "rcache: %.3f s", treg_rc);
			bench_result("rcache_register_1m", "registering 1M ranges", "s", treg_dax,
				     treg_rc, "rcache, same ranges", treg_dax, "abs", "le", 0.3, note);
		}

		/* Scaling: throughput at 2 threads over 1 (daxpool), and the rcache at 2. */
		{
			long ops = (long)((bench.quick ? 4e6 : 20e6) / 100.0);

			one = throughput(&s, true, 1, ops, &cpu_one);
			two = throughput(&s, true, 2, ops, &cpu_two);
			rc_two = throughput(&s, false, 2, ops, NULL);
		}
		snprintf(name, sizeof(name), "rcache_scaling_%zuk", n / 1000);
		snprintf(desc, sizeof(desc), "hit lookup scaling 1->2 threads, %zu ranges", n);
		if (ncpu < 2) {
			snprintf(note, sizeof(note), "only %d CPU: threads share it", ncpu);
			bench_skip(name, desc, note);
		} else if (cpu_one < 0.9 || cpu_two < 0.9) {
			double load = -1;
			FILE *f = fopen("/proc/loadavg", "r");

			if (!f || fscanf(f, "%lf", &load) != 1)
				load = -1;
			if (f)
				fclose(f);
			snprintf(note, sizeof(note),
				 "not measurable: other work had the CPUs (a worker ran %.0f %% of the "
				 "time at 1 thread, %.0f %% at 2; load average %.2f on %d CPUs); "
				 "measured %.2fx, rcache at 2 threads %.1f M/s",
				 100 * cpu_one, 100 * cpu_two, load, ncpu, two / one, rc_two);
			bench_skip(name, desc, note);
		} else {
			snprintf(note, sizeof(note), "rcache at 2 threads: %.1f M/s", rc_two);
			bench_result(name, desc, "Mlookups/s", two, one, "same code, 1 thread",
				     two / one, "ratio", "ge", 1.9, note);
		}
		setup_free(&s);

		snprintf(name, sizeof(name), "rcache_bytes_%zuk", n / 1000);
		snprintf(desc, sizeof(desc), "resident bytes per range, %zu ranges", n);
		{
			double bd = bytes_per_range(n, true), br = bytes_per_range(n, false);

			snprintf(note, sizeof(note), "rcache: %.0f bytes", br);
			bench_result(name, desc, "bytes", bd, br, "rcache regions + page table", bd,
				     "abs", "le", 128, note);
		}
	}
	return 0;
}
