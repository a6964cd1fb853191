/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The test runner: registration, fork per test, backings. See harness.h. */
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>

#include "harness.h"

static struct dp_test *tests_head, **tests_tail = &tests_head;
static char scratch_dir[PATH_MAX];	/* on the host filesystem */
static char scratch_dax_dir[PATH_MAX]; /* on the fsdax mount, for the fsdax backing */
static unsigned int scratch_files;

void dp_test_register(struct dp_test *t)
{
	*tests_tail = t;
	tests_tail = &t->next;
}

void dp_test_fail(const char *file, int line, const char *fmt, ...)
{
	va_list ap;

	printf("# FAIL %s:%d: ", file, line);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	fflush(NULL);
	_exit(T_EXIT_FAIL);
}

void dp_test_skip(const char *fmt, ...)
{
	va_list ap;

	printf("SKIP: ");
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	fflush(NULL);
	_exit(T_EXIT_SKIP);
}

bool fixture_require(void)
{
	const char *s = getenv("DAXPOOL_TEST_REQUIRE");

	return s && strcmp(s, "1") == 0;
}

void fixture_missing(const char *what)
{
	if (fixture_require())
		dp_test_fail(__FILE__, __LINE__, "%s is required here (DAXPOOL_TEST_REQUIRE=1) but missing",
			     what);
	dp_test_skip("%s not available on this machine (the vm tier provides it)", what);
}

enum fixture_backing_kind fixture_backing_kind(void)
{
	const char *s = getenv("DAXPOOL_TEST_BACKING");

	if (!s || !*s || strcmp(s, "file") == 0)
		return FIXTURE_FILE;
	if (strcmp(s, "devdax") == 0)
		return FIXTURE_DEVDAX;
	if (strcmp(s, "fsdax") == 0)
		return FIXTURE_FSDAX;
	fprintf(stderr, "DAXPOOL_TEST_BACKING=%s: expected file, devdax or fsdax\n", s);
	exit(T_EXIT_FAIL);
}

const char *fixture_backing_name(void)
{
	switch (fixture_backing_kind()) {
	case FIXTURE_DEVDAX:
		return "devdax";
	case FIXTURE_FSDAX:
		return "fsdax";
	default:
		return "file";
	}
}

void *fixture_shared(size_t size)
{
	void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);

	if (p == MAP_FAILED)
		dp_test_fail(__FILE__, __LINE__, "mmap of %zu shared bytes: %s", size, strerror(errno));
	return p; /* anonymous memory is zeroed */
}

const char *fixture_dir(void)
{
	return scratch_dir;
}

static const char *make_file(const char *dir, uint64_t size)
{
	static char path[PATH_MAX];
	int fd;

	if ((size_t)snprintf(path, sizeof(path), "%s/backing-%u", dir, scratch_files++) >=
	    sizeof(path))
		dp_test_fail(__FILE__, __LINE__, "%s: the scratch path is too long", dir);
	fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0)
		dp_test_fail(__FILE__, __LINE__, "create %s: %s", path, strerror(errno));
	if (ftruncate(fd, (off_t)size) < 0)
		dp_test_fail(__FILE__, __LINE__, "size %s: %s", path, strerror(errno));
	close(fd);
	return path;
}

const char *fixture_plain_file(uint64_t size)
{
	return make_file(scratch_dir, size);
}

const char *fixture_backing(uint64_t min_size)
{
	const char *dev;
	struct stat st;

	switch (fixture_backing_kind()) {
	case FIXTURE_DEVDAX:
		dev = getenv("DAXPOOL_TEST_DEVDAX");
		if (!dev || stat(dev, &st) < 0 || !S_ISCHR(st.st_mode))
			fixture_missing("a devdax device (DAXPOOL_TEST_DEVDAX)");
		return dev;
	case FIXTURE_FSDAX:
		if (!scratch_dax_dir[0])
			fixture_missing("an fsdax directory (DAXPOOL_TEST_FSDAX_DIR)");
		return make_file(scratch_dax_dir, min_size);
	default:
		return make_file(scratch_dir, min_size);
	}
}

static int odirect_in(const char *dir, uint64_t size)
{
	char path[PATH_MAX];
	int fd;

	snprintf(path, sizeof(path), "%s/odirect-%d-%u", dir, (int)getpid(), scratch_files++);
	fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_DIRECT | O_CLOEXEC, 0600);
	if (fd < 0)
		return -errno;
	unlink(path);
	if (ftruncate(fd, (off_t)size) < 0)
		dp_test_fail(__FILE__, __LINE__, "size %s: %s", path, strerror(errno));
	return fd;
}

int fixture_odirect_file(uint64_t size)
{
	const char *dirs = getenv("DAXPOOL_TEST_FSDAX_DIRS");
	char dir[PATH_MAX];
	int fd = odirect_in(scratch_dir, size);

	while (fd == -EINVAL && dirs && *dirs) {
		size_t n = strcspn(dirs, ":");

		snprintf(dir, sizeof(dir), "%.*s", (int)n, dirs);
		fd = odirect_in(dir, size);
		dirs += n + (dirs[n] == ':');
	}
	if (fd == -EINVAL)
		fixture_missing("a filesystem that takes O_DIRECT");
	if (fd < 0)
		dp_test_fail(__FILE__, __LINE__, "O_DIRECT file: %s", strerror(-fd));
	return fd;
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

static void scratch_make(void)
{
	const char *tmp = getenv("TMPDIR");
	const char *dax = getenv("DAXPOOL_TEST_FSDAX_DIR");

	snprintf(scratch_dir, sizeof(scratch_dir), "%s/daxpool-test-XXXXXX", tmp && *tmp ? tmp : "/tmp");
	if (!mkdtemp(scratch_dir)) {
		perror("mkdtemp");
		exit(T_EXIT_FAIL);
	}
	scratch_dax_dir[0] = '\0';
	if (fixture_backing_kind() == FIXTURE_FSDAX && dax && *dax) {
		snprintf(scratch_dax_dir, sizeof(scratch_dax_dir), "%s/daxpool-test-XXXXXX", dax);
		if (!mkdtemp(scratch_dax_dir)) {
			fprintf(stderr, "mkdtemp in %s: %s\n", dax, strerror(errno));
			scratch_dax_dir[0] = '\0';
		}
	}
}

static void scratch_remove(void)
{
	nftw(scratch_dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
	if (scratch_dax_dir[0])
		nftw(scratch_dax_dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

static bool selected(const char *name, int argc, char **argv)
{
	if (argc <= 1)
		return true;
	for (int i = 1; i < argc; i++)
		if (strcmp(argv[i], name) == 0)
			return true;
	return false;
}

/*
 * A test's own timeout times DAXPOOL_TEST_TIMEOUT_SCALE (a whole number, default 1): the vm
 * tier sets it, its guests run the tests under software emulation on a machine that may be
 * slow or busy.
 */
static unsigned int timeout_of(const struct dp_test *t)
{
	const char *s = getenv("DAXPOOL_TEST_TIMEOUT_SCALE");
	char *end;
	unsigned long scale = s ? strtoul(s, &end, 10) : 1;

	if (!s || *end || scale < 1 || scale > 100)
		scale = 1;
	return t->timeout_s * (unsigned int)scale;
}

/* Run one test in a child; return T_EXIT_PASS, T_EXIT_FAIL or T_EXIT_SKIP. */
static int run_one(struct dp_test *t, int index)
{
	struct timespec t0, t1;
	int status, rc;
	pid_t pid;

	scratch_make();
	fflush(NULL);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	pid = fork();
	if (pid < 0) {
		perror("fork");
		return T_EXIT_FAIL;
	}
	if (pid == 0) {
		/* The expected signal must kill: sanitizers install their own handlers. */
		if (t->expect_signal)
			signal(t->expect_signal, SIG_DFL);
		alarm(timeout_of(t));
		t->fn();
		fflush(NULL);
		exit(T_EXIT_PASS);
	}
	while (waitpid(pid, &status, 0) < 0) {
		if (errno != EINTR) {
			perror("waitpid");
			return T_EXIT_FAIL;
		}
	}
	clock_gettime(CLOCK_MONOTONIC, &t1);
	scratch_remove();

	double secs = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
	if (WIFSIGNALED(status)) {
		int sig = WTERMSIG(status);

		if (t->expect_signal && sig == t->expect_signal) {
			rc = T_EXIT_PASS;
			printf("ok %d - %s (died of %s, as expected) %.3fs\n", index, t->name,
			       strsignal(sig), secs);
		} else {
			rc = T_EXIT_FAIL;
			printf("not ok %d - %s (killed by %s%s) %.3fs\n", index, t->name,
			       strsignal(sig), sig == SIGALRM ? ": timeout" : "", secs);
			if (sig == SIGALRM)
				printf("# %s: its timeout is %u s\n", t->name, timeout_of(t));
		}
	} else if (WEXITSTATUS(status) == T_EXIT_SKIP) {
		rc = T_EXIT_SKIP;
		printf("ok %d - %s # SKIP %.3fs\n", index, t->name, secs);
	} else if (WEXITSTATUS(status) == 0 && !t->expect_signal) {
		rc = T_EXIT_PASS;
		printf("ok %d - %s %.3fs\n", index, t->name, secs);
	} else {
		rc = T_EXIT_FAIL;
		if (WEXITSTATUS(status) == 0)
			printf("not ok %d - %s (exited; expected %s) %.3fs\n", index, t->name,
			       strsignal(t->expect_signal), secs);
		else
			printf("not ok %d - %s (exit %d) %.3fs\n", index, t->name,
			       WEXITSTATUS(status), secs);
	}
	fflush(stdout);
	return rc;
}

/* Print CTest registrations: one CTest test per TEST(). */
static int print_ctest(const char *prefix, const char *labels)
{
	char exe[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);

	if (n < 0)
		return T_EXIT_FAIL;
	exe[n] = '\0';
	for (struct dp_test *t = tests_head; t; t = t->next) {
		printf("add_test([=[%s.%s]=] [=[%s]=] [=[%s]=])\n", prefix, t->name, exe, t->name);
		printf("set_tests_properties([=[%s.%s]=] PROPERTIES LABELS \"%s\" SKIP_RETURN_CODE 77 "
		       "TIMEOUT %u)\n",
		       prefix, t->name, labels, t->timeout_s + 30);
	}
	return 0;
}

int main(int argc, char **argv)
{
	int pass = 0, fail = 0, skip = 0, index = 0;

	if (argc == 2 && strcmp(argv[1], "--list") == 0) {
		for (struct dp_test *t = tests_head; t; t = t->next)
			printf("%s\n", t->name);
		return 0;
	}
	if (argc == 4 && strcmp(argv[1], "--ctest") == 0)
		return print_ctest(argv[2], argv[3]);

	setvbuf(stdout, NULL, _IOLBF, 0);
	printf("# %s on backing %s\n", argv[0], fixture_backing_name());
	for (struct dp_test *t = tests_head; t; t = t->next) {
		if (!selected(t->name, argc, argv))
			continue;
		switch (run_one(t, ++index)) {
		case T_EXIT_PASS:
			pass++;
			break;
		case T_EXIT_SKIP:
			skip++;
			break;
		default:
			fail++;
			break;
		}
	}
	if (index == 0) {
		fprintf(stderr, "no test matches\n");
		return T_EXIT_FAIL;
	}
	printf("# %d passed, %d failed, %d skipped\n", pass, fail, skip);
	if (fail)
		return T_EXIT_FAIL;
	return pass ? T_EXIT_PASS : T_EXIT_SKIP;
}
