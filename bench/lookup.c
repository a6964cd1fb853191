/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Rows "registry hit lookup" and "lookup read scaling".
 *
 * N pins are registered in one map, then random addresses inside pins are
 * looked up (every lookup is a hit, and each implementation must say so):
 *
 *   daxpool  daxpool_ctx_is_pinned(ctx, addr, 1), through the shared library;
 *   lfht     the same keys in a liburcu cds_lfht of our own, urcu-bp flavour
 *            with the read side inlined, keyed by 4 KiB page with the same
 *            hash function (the MurmurHash3 finaliser of lib/core/registry.c);
 *   rwlock   pthread_rwlock_rdlock() + a binary search in a sorted array of
 *            the ranges + unlock.
 *
 * Two layouts of the pins: "dense", 4 KiB pins side by side (I/O buffers: 512
 * pins share each 2 MiB granule of the registry), and "sparse", one 4 KiB pin
 * per 2 MiB granule (every granule chain holds one pin: the hash alone).
 *
 * Timing: T threads, each pinned to its own CPU, start together at a barrier
 * and do the same number of lookups; the cost of one lookup is the wall time
 * over the lookups of one thread; throughput is T times its inverse.
 */
#define _LGPL_SOURCE
#include <pthread.h>
#include <stdatomic.h>
#include <urcu-bp.h>
#include <urcu/rculfhash.h>

#include "bench.h"
#include "daxpool.h"

#define PIN_SIZE 4096u
#define PAGE_SHIFT 12
#define GRANULE (2ull << 20)
#define NQ (1u << 16) /* random queries, replayed */

enum impl { IMPL_DAX, IMPL_LFHT, IMPL_RWLOCK, N_IMPL };
static const char *const impl_name[N_IMPL] = {"daxpool", "lfht", "rwlock"};

struct range {
	uintptr_t start, end;
};

struct lnode {
	struct cds_lfht_node node;
	uintptr_t page;
	uintptr_t start, end;
};

struct setup {
	size_t n;
	int sparse;
	char *path;
	struct daxpool_ctx *ctx;
	struct daxpool_region *region;
	struct daxpool_map *map;
	struct daxpool_pin **pins;
	struct range *ranges; /* sorted by start: also the rwlock baseline's array */
	uint32_t *q;	      /* indices of the pins to look up, in random order */
	struct cds_lfht *ht;
	struct lnode *lnodes;
	pthread_rwlock_t rw;
	double ns_est[N_IMPL]; /* calibration: ns per lookup at one thread */
};

/* The hash of lib/core/registry.c: the MurmurHash3 64-bit finaliser. */
static unsigned long mix(uint64_t h)
{
	h ^= h >> 33;
	h *= 0xff51afd7ed558ccdULL;
	h ^= h >> 33;
	h *= 0xc4ceb9fe1a85ec53ULL;
	h ^= h >> 33;
	return (unsigned long)h;
}

static int lmatch(struct cds_lfht_node *node, const void *key)
{
	return caa_container_of(node, struct lnode, node)->page == *(const uintptr_t *)key;
}

static inline int lookup_lfht(struct setup *s, uintptr_t addr)
{
	uintptr_t page = addr >> PAGE_SHIFT;
	struct cds_lfht_iter iter;
	struct cds_lfht_node *node;
	int hit = 0;

	rcu_read_lock();
	cds_lfht_lookup(s->ht, mix(page), lmatch, &page, &iter);
	node = cds_lfht_iter_get_node(&iter);
	if (node) {
		struct lnode *ln = caa_container_of(node, struct lnode, node);

		hit = ln->start <= addr && addr < ln->end;
	}
	rcu_read_unlock();
	return hit;
}

static inline int lookup_rwlock(struct setup *s, uintptr_t addr)
{
	size_t lo = 0, hi = s->n;
	int hit;

	pthread_rwlock_rdlock(&s->rw);
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (s->ranges[mid].start <= addr)
			lo = mid + 1;
		else
			hi = mid;
	}
	hit = lo > 0 && addr < s->ranges[lo - 1].end;
	pthread_rwlock_unlock(&s->rw);
	return hit;
}

/* The address of query i: inside the pin, not always at its start. */
static inline uintptr_t query_addr(const struct setup *s, uint32_t i)
{
	return s->ranges[s->q[i & (NQ - 1)]].start + ((i & 63u) << 6);
}

struct worker {
	pthread_t thread;
	struct setup *s;
	enum impl impl;
	int cpu;
	long ops;
	uint32_t qoff;
	pthread_barrier_t *barrier;
	uint64_t t0, t1;
	long hits;
};

static void *worker_fn(void *arg)
{
	struct worker *w = arg;
	struct setup *s = w->s;
	long hits = 0;

	bench_pin_cpu(w->cpu);
	/* Register this thread with urcu-bp before the clock starts. */
	rcu_read_lock();
	rcu_read_unlock();
	daxpool_ctx_is_pinned(s->ctx, (void *)s->ranges[0].start, 1);
	pthread_barrier_wait(w->barrier);
	w->t0 = bench_now_ns();
	switch (w->impl) {
	case IMPL_DAX:
		for (long i = 0; i < w->ops; i++)
			hits += daxpool_ctx_is_pinned(s->ctx,
						      (void *)query_addr(s, w->qoff + (uint32_t)i), 1);
		break;
	case IMPL_LFHT:
		for (long i = 0; i < w->ops; i++)
			hits += lookup_lfht(s, query_addr(s, w->qoff + (uint32_t)i));
		break;
	case IMPL_RWLOCK:
		for (long i = 0; i < w->ops; i++)
			hits += lookup_rwlock(s, query_addr(s, w->qoff + (uint32_t)i));
		break;
	default:
		break;
	}
	w->t1 = bench_now_ns();
	w->hits = hits;
	return NULL;
}

/* Nanoseconds per lookup per thread with @threads threads doing @ops lookups each. */
static double run(struct setup *s, enum impl impl, int threads, long ops)
{
	struct worker w[16];
	pthread_barrier_t barrier;
	uint64_t t0 = UINT64_MAX, t1 = 0;

	pthread_barrier_init(&barrier, NULL, threads);
	for (int t = 0; t < threads; t++) {
		w[t] = (struct worker){.s = s,
				       .impl = impl,
				       .cpu = t,
				       .ops = ops,
				       .qoff = (uint32_t)t * 7919u,
				       .barrier = &barrier};
		if (pthread_create(&w[t].thread, NULL, worker_fn, &w[t]))
			bench_die("pthread_create failed");
	}
	for (int t = 0; t < threads; t++) {
		pthread_join(w[t].thread, NULL);
		if (w[t].hits != ops)
			bench_die("%s: %ld hits in %ld lookups of pinned addresses", impl_name[impl],
				  w[t].hits, ops);
		t0 = w[t].t0 < t0 ? w[t].t0 : t0;
		t1 = w[t].t1 > t1 ? w[t].t1 : t1;
	}
	pthread_barrier_destroy(&barrier);
	return (double)(t1 - t0) / (double)ops;
}

static void setup_make(struct setup *s, size_t n, int sparse)
{
	uint64_t stride = sparse ? GRANULE : PIN_SIZE, x = 0x9e3779b97f4a7c15ull;
	unsigned long init;
	double prev, cur;
	char *base;

	memset(s, 0, sizeof(*s));
	s->n = n;
	s->sparse = sparse;
	/* Never touched: pins register addresses, they do not fault pages in. */
	s->path = bench_make_file(NULL, "daxpool-bench-lookup", n * stride);
	bench_check(daxpool_ctx_new(&s->ctx));
	bench_check(daxpool_region_open(s->ctx, s->path, 0, &s->region));
	bench_check(daxpool_map_new(s->region, 0, 0, 0, &s->map));
	base = daxpool_map_get_address(s->map);

	s->pins = calloc(n, sizeof(*s->pins));
	s->ranges = calloc(n, sizeof(*s->ranges));
	s->lnodes = calloc(n, sizeof(*s->lnodes));
	s->q = calloc(NQ, sizeof(*s->q));
	if (!s->pins || !s->ranges || !s->lnodes || !s->q)
		bench_die("out of memory");
	/*
	 * The baseline is sized for its contents from the start: its lazy
	 * resizes would queue behind the registry's on liburcu's one resize
	 * worker, and time them instead of the lookups.
	 */
	for (init = 64; init < n; init <<= 1)
		;
	s->ht = cds_lfht_new(init, 64, 0, CDS_LFHT_AUTO_RESIZE | CDS_LFHT_ACCOUNTING, NULL);
	if (!s->ht)
		bench_die("cds_lfht_new failed");
	pthread_rwlock_init(&s->rw, NULL);

	for (size_t i = 0; i < n; i++) {
		char *a = base + i * stride;
		struct lnode *ln = &s->lnodes[i];

		bench_check(daxpool_pin_new(s->map, a, PIN_SIZE, DAXPOOL_PIN_TRANSIENT,
					    DAXPOOL_PIN_DEVICE_READ, &s->pins[i]));
		s->ranges[i] = (struct range){(uintptr_t)a, (uintptr_t)a + PIN_SIZE};
		ln->page = (uintptr_t)a >> PAGE_SHIFT;
		ln->start = (uintptr_t)a;
		ln->end = (uintptr_t)a + PIN_SIZE;
		cds_lfht_node_init(&ln->node);
		rcu_read_lock();
		cds_lfht_add(s->ht, mix(ln->page), &ln->node);
		rcu_read_unlock();
	}
	for (uint32_t i = 0; i < NQ; i++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		s->q[i] = (uint32_t)(x % n);
	}
	/*
	 * The registry grows lazily, in liburcu's resize worker: wait until
	 * its lookups stop getting faster (at most 3 s) before timing them.
	 */
	prev = run(s, IMPL_DAX, 1, 2000);
	for (int i = 0; i < 30; i++) {
		usleep(100000);
		cur = run(s, IMPL_DAX, 1, 2000);
		if (i >= 4 && cur > 0.95 * prev)
			break;
		prev = cur;
	}
	for (int i = 0; i < N_IMPL; i++) {
		run(s, i, 1, 20000); /* warm-up */
		s->ns_est[i] = run(s, i, 1, 20000);
	}
}

static void setup_free(struct setup *s)
{
	for (size_t i = 0; i < s->n; i++) {
		rcu_read_lock();
		cds_lfht_del(s->ht, &s->lnodes[i].node);
		rcu_read_unlock();
		daxpool_pin_unref(s->pins[i]);
	}
	synchronize_rcu();
	cds_lfht_destroy(s->ht, NULL);
	pthread_rwlock_destroy(&s->rw);
	daxpool_map_unref(s->map);
	daxpool_region_unref(s->region);
	daxpool_ctx_unref(s->ctx);
	unlink(s->path);
	free(s->path);
	free(s->pins);
	free(s->ranges);
	free(s->lnodes);
	free(s->q);
}

/* Median ns per lookup of each implementation at @threads threads, samples interleaved. */
static void measure(struct setup *s, int threads, double ret[N_IMPL])
{
	double *v[N_IMPL];
	double target_ns = bench.quick ? 4e6 : 15e6; /* per sample and implementation */

	for (int i = 0; i < N_IMPL; i++) {
		v[i] = calloc(bench.samples, sizeof(double));
		if (!v[i])
			bench_die("out of memory");
	}
	for (int smp = 0; smp < bench.samples; smp++) {
		for (int k = 0; k < N_IMPL; k++) {
			/* Rotate the order from sample to sample. */
			int i = (k + smp) % N_IMPL;
			long ops = (long)(target_ns / s->ns_est[i]);

			if (ops < 1000)
				ops = 1000;
			v[i][smp] = run(s, i, threads, ops);
		}
	}
	for (int i = 0; i < N_IMPL; i++) {
		ret[i] = bench_median(v[i], bench.samples);
		free(v[i]);
	}
}

static const char *layout_line(int sparse)
{
	return sparse ? "daxpool, 1 pin per 2 MiB (sparse)" : "daxpool, 4 KiB pins side by side (dense)";
}

int main(int argc, char **argv)
{
	static const size_t full_ns[] = {100, 1000, 10000, 100000}, quick_ns[] = {1000, 100000};
	const size_t *ns;
	size_t n_ns;
	int ncpu, max_threads;

	bench_parse(argc, argv);
	ns = bench.quick ? quick_ns : full_ns;
	n_ns = bench.quick ? 2 : 4;
	ncpu = bench_ncpus();
	/* The thread plot goes past the CPUs in the full run, to show oversubscription. */
	max_threads = bench.quick ? 2 : 2 * ncpu;
	if (max_threads > 16)
		max_threads = 16;

	for (int sparse = 0; sparse <= 1; sparse++) {
		for (size_t k = 0; k < n_ns; k++) {
			size_t n = ns[k];
			char name[64], desc[160], note[200];
			const char *lay = sparse ? "sparse" : "dense";
			const char *laydesc = sparse ? "1 pin/2 MiB" : "4 KiB pins";
			struct setup s;
			double t1[N_IMPL], t2[N_IMPL];
			int row = n == 1000 || n == 100000;

			setup_make(&s, n, sparse);
			measure(&s, 1, t1);
			bench_series("pins", layout_line(sparse), (double)n, t1[IMPL_DAX]);
			if (!sparse) {
				bench_series("pins", "lfht (urcu-bp), same keys", (double)n, t1[IMPL_LFHT]);
				bench_series("pins", "rwlock + bsearch", (double)n, t1[IMPL_RWLOCK]);
			}
			if (!row) {
				setup_free(&s);
				continue;
			}
			snprintf(name, sizeof(name), "lookup_hit_%s_%zuk", lay, n / 1000);
			snprintf(desc, sizeof(desc), "registry hit lookup, %zu pins (%s)", n, laydesc);
			bench_result(name, desc, "ns", t1[IMPL_DAX], t1[IMPL_LFHT],
				     "cds_lfht lookup, same keys", t1[IMPL_DAX] / t1[IMPL_LFHT], "ratio",
				     "le", 2, NULL);

			if (ncpu < 2)
				snprintf(note, sizeof(note), "only %d CPU: threads share it", ncpu);
			else
				note[0] = 0;
			measure(&s, 2, t2);
			if (!sparse || n == 100000) {
				snprintf(name, sizeof(name), "lookup_vs_rwlock_%s_%zuk_2t", lay,
					 n / 1000);
				snprintf(desc, sizeof(desc), "registry lookup at 2 threads, %zu pins (%s)",
					 n, laydesc);
				bench_result(name, desc, "ns", t2[IMPL_DAX], t2[IMPL_RWLOCK],
					     "rwlock + bsearch, 2 threads",
					     t2[IMPL_RWLOCK] / t2[IMPL_DAX], "speedup", "ge", 3, note);
				snprintf(name, sizeof(name), "lookup_scaling_%s_%zuk", lay, n / 1000);
				snprintf(desc, sizeof(desc), "lookup read scaling 1->2 threads, %zu pins (%s)",
					 n, laydesc);
				/* Throughput in millions of lookups a second. */
				bench_result(name, desc, "Mlookups/s", 2e3 / t2[IMPL_DAX],
					     1e3 / t1[IMPL_DAX], "same code, 1 thread",
					     (2e3 / t2[IMPL_DAX]) / (1e3 / t1[IMPL_DAX]), "ratio", "ge",
					     1.9, note);
			}
			if (n == 100000) {
				for (int th = 1; th <= max_threads; th++) {
					double t[N_IMPL];

					if (th == 1)
						memcpy(t, t1, sizeof(t));
					else if (th == 2)
						memcpy(t, t2, sizeof(t));
					else
						measure(&s, th, t);
					bench_series("threads", layout_line(sparse), th, t[IMPL_DAX]);
					if (!sparse) {
						bench_series("threads", "lfht (urcu-bp), same keys", th,
							     t[IMPL_LFHT]);
						bench_series("threads", "rwlock + bsearch", th,
							     t[IMPL_RWLOCK]);
					}
				}
			}
			setup_free(&s);
		}
	}
	return 0;
}
