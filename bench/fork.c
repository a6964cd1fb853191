/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Row "fork with 10,000 pins": fork() + _exit() in the child + waitpid() in a
 * process holding 10,000 registered pins, against the same in a process of
 * the same program and the same size without daxpool state.
 *
 * Two children of this program are made first, from a small process:
 *   "daxpool"   a context, a region, one map of a 40 MiB file, 10,000 pins of
 *               4 KiB in it (whatever daxpool does at fork, e.g. handlers it
 *               registers, is timed with the fork);
 *   "baseline"  the same file mapped with mmap(2), and heap in small blocks
 *               until its resident size matches the first one's.
 * The parent then asks each in turn (alternating which goes first) for one
 * sample: the mean of many fork/_exit/waitpid, both children on CPU 0.
 * Goal: at most 1 ms more per fork.
 */
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/wait.h>

#include "bench.h"
#include "daxpool.h"

#define NPINS 10000
#define PIN_SIZE 4096u

struct child {
	pid_t pid;
	int cmd, rep; /* parent's ends: write commands, read replies */
};

static long rss_kib(void)
{
	char line[256];
	long kib = -1;
	FILE *f = fopen("/proc/self/status", "r");

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "VmRSS: %ld kB", &kib) == 1)
			break;
	fclose(f);
	return kib;
}

static void xwrite(int fd, const void *p, size_t n)
{
	if (write(fd, p, n) != (ssize_t)n)
		bench_die("pipe write: %s", strerror(errno));
}

static void xread(int fd, void *p, size_t n)
{
	if (read(fd, p, n) != (ssize_t)n)
		bench_die("pipe read: %s", strerror(errno));
}

static double fork_sample(long iters)
{
	uint64_t t0 = bench_now_ns();

	for (long i = 0; i < iters; i++) {
		pid_t pid = fork();
		int status;

		if (pid < 0)
			bench_die("fork: %s", strerror(errno));
		if (pid == 0)
			_exit(0);
		if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status))
			bench_die("waitpid failed");
	}
	return (double)(bench_now_ns() - t0) / (double)iters;
}

static void __attribute__((noreturn)) child_main(int with_daxpool, const char *path, int cmd,
						  int rep)
{
	struct daxpool_ctx *ctx = NULL;
	struct daxpool_region *region = NULL;
	struct daxpool_map *map = NULL;
	struct daxpool_pin **pins = calloc(NPINS, sizeof(*pins));
	long rss, target, iters;

	bench_pin_cpu(0);
	if (with_daxpool) {
		char *base;

		bench_check(daxpool_ctx_new(&ctx));
		/* The baseline process opens the same file: no lease to break (lease.c). */
		bench_check(daxpool_ctx_set_leases(ctx, 0));
		bench_check(daxpool_region_open(ctx, path, 0, &region));
		bench_check(daxpool_map_new(region, 0, 0, 0, &map));
		base = daxpool_map_get_address(map);
		for (int i = 0; i < NPINS; i++)
			bench_check(daxpool_pin_new(map, base + (size_t)i * PIN_SIZE, PIN_SIZE,
						    DAXPOOL_PIN_TRANSIENT, DAXPOOL_PIN_DEVICE_READ,
						    &pins[i]));
		/* Let urcu's lazy resize of the registry finish. */
		usleep(100000);
	} else {
		int fd = open(path, O_RDWR);

		if (fd < 0 || mmap(NULL, (size_t)NPINS * PIN_SIZE, PROT_READ | PROT_WRITE,
				   MAP_SHARED, fd, 0) == MAP_FAILED)
			bench_die("map %s: %s", path, strerror(errno));
	}
	rss = rss_kib();
	xwrite(rep, &rss, sizeof(rss));
	xread(cmd, &target, sizeof(target));
	/* The baseline grows to the daxpool child's size, in pin-sized blocks. */
	while (!with_daxpool && rss_kib() < target) {
		for (int i = 0; i < 256; i++) {
			char *p = malloc(320);

			if (!p)
				bench_die("out of memory");
			memset(p, 1, 320);
		}
	}
	rss = rss_kib();
	xwrite(rep, &rss, sizeof(rss));
	for (;;) {
		double ns;

		xread(cmd, &iters, sizeof(iters));
		if (iters <= 0)
			break;
		ns = fork_sample(iters);
		xwrite(rep, &ns, sizeof(ns));
	}
	for (int i = 0; i < NPINS; i++)
		daxpool_pin_unref(pins[i]);
	daxpool_map_unref(map);
	daxpool_region_unref(region);
	daxpool_ctx_unref(ctx);
	_exit(0);
}

static struct child spawn(int with_daxpool, const char *path)
{
	int c[2], r[2];
	struct child ch;

	if (pipe(c) || pipe(r))
		bench_die("pipe: %s", strerror(errno));
	ch.pid = fork();
	if (ch.pid < 0)
		bench_die("fork: %s", strerror(errno));
	if (ch.pid == 0) {
		close(c[1]);
		close(r[0]);
		child_main(with_daxpool, path, c[0], r[1]);
	}
	close(c[0]);
	close(r[1]);
	ch.cmd = c[1];
	ch.rep = r[0];
	return ch;
}

static double ask(struct child *ch, long iters)
{
	double ns;

	xwrite(ch->cmd, &iters, sizeof(iters));
	xread(ch->rep, &ns, sizeof(ns));
	return ns;
}

int main(int argc, char **argv)
{
	struct child dax, base;
	long rss_dax, rss_base, iters, stop = 0;
	double *dv, *bv, md, mb;
	char *path, note[200];
	int status;

	bench_parse(argc, argv);
	iters = bench.quick ? 100 : 400;
	dv = calloc(bench.samples, sizeof(double));
	bv = calloc(bench.samples, sizeof(double));
	if (!dv || !bv)
		bench_die("out of memory");
	path = bench_make_file(NULL, "daxpool-bench-fork", (uint64_t)NPINS * PIN_SIZE);

	dax = spawn(1, path);
	xread(dax.rep, &rss_dax, sizeof(rss_dax));
	base = spawn(0, path);
	xread(base.rep, &rss_base, sizeof(rss_base));
	xwrite(dax.cmd, &rss_dax, sizeof(rss_dax));
	xwrite(base.cmd, &rss_dax, sizeof(rss_dax));
	xread(dax.rep, &rss_dax, sizeof(rss_dax));
	xread(base.rep, &rss_base, sizeof(rss_base));

	ask(&dax, iters / 4); /* warm-up */
	ask(&base, iters / 4);
	for (int s = 0; s < bench.samples; s++) {
		if (s % 2) {
			bv[s] = ask(&base, iters);
			dv[s] = ask(&dax, iters);
		} else {
			dv[s] = ask(&dax, iters);
			bv[s] = ask(&base, iters);
		}
	}
	xwrite(dax.cmd, &stop, sizeof(stop));
	xwrite(base.cmd, &stop, sizeof(stop));
	if (waitpid(dax.pid, &status, 0) < 0 || !WIFEXITED(status) || WEXITSTATUS(status) ||
	    waitpid(base.pid, &status, 0) < 0 || !WIFEXITED(status) || WEXITSTATUS(status))
		bench_die("a child failed");

	md = bench_median(dv, bench.samples) / 1e6;
	mb = bench_median(bv, bench.samples) / 1e6;
	snprintf(note, sizeof(note), "RSS %ld KiB with daxpool, %ld KiB without", rss_dax,
		 rss_base);
	bench_result("fork_10k_pins", "fork with 10,000 pins registered", "ms", md, mb,
		     "fork of a same-size process", md - mb, "delta", "le", 1, note);
	unlink(path);
	free(path);
	free(dv);
	free(bv);
	return 0;
}
