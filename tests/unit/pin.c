/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Pins and the registry: exact lookups and counts, revocation, misuse. */
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <syslog.h>

#include "daxpool.h"
#include "harness.h"
#include "pin_fixture.h"

static int collect(struct daxpool_pin *pin, void *userdata)
{
	struct daxpool_pin **seen = userdata;

	for (int i = 0; i < 16; i++) {
		CHECK(seen[i] != pin); /* each pin reported once */
		if (!seen[i]) {
			seen[i] = pin;
			break;
		}
	}
	return 0;
}

TEST(pin_describes_itself_and_counts)
{
	struct fixture f = setup();
	struct daxpool_pin *p, *q;

	CHECK_OK(daxpool_pin_new(f.map, f.base + 4096, 8192, DAXPOOL_PIN_TRANSIENT,
				 DAXPOOL_PIN_DEVICE_READ, &p));
	CHECK_OK(daxpool_pin_new(f.map, f.base, 3 * MIB, DAXPOOL_PIN_LONGTERM,
				 DAXPOOL_PIN_DEVICE_READ | DAXPOOL_PIN_DEVICE_WRITE, &q));
	CHECK(daxpool_pin_get_map(p) == f.map);
	CHECK(daxpool_pin_get_address(p) == f.base + 4096);
	CHECK_EQ(daxpool_pin_get_length(p), 8192);
	CHECK_EQ(daxpool_pin_get_offset(p), 4096);
	CHECK_EQ(daxpool_pin_get_kind(q), DAXPOOL_PIN_LONGTERM);
	CHECK_EQ(daxpool_pin_get_access(q), DAXPOOL_PIN_DEVICE_READ | DAXPOOL_PIN_DEVICE_WRITE);
	CHECK_EQ(daxpool_pin_get_owner_pid(p), getpid());
	CHECK_EQ(daxpool_pin_is_valid(p), 1);
	CHECK_OK(daxpool_pin_set_owner(q, "rdma mr 7"));
	CHECK(strcmp(daxpool_pin_get_owner(q), "rdma mr 7") == 0);
	{
		char small[5], whole[64];

		CHECK_EQ(daxpool_pin_copy_owner(q, small, sizeof(small)), 9);
		CHECK(strcmp(small, "rdma") == 0);
		CHECK_EQ(daxpool_pin_copy_owner(q, whole, sizeof(whole)), 9);
		CHECK(strcmp(whole, "rdma mr 7") == 0);
		CHECK_EQ(daxpool_pin_copy_owner(q, NULL, 0), 9);
		CHECK_EQ(daxpool_pin_copy_owner(p, whole, sizeof(whole)), 0);
		CHECK(whole[0] == 0);
		CHECK_ERR(daxpool_pin_copy_owner(NULL, whole, sizeof(whole)), EINVAL);
		CHECK_ERR(daxpool_pin_copy_owner(q, NULL, 1), EINVAL);
	}
	CHECK(daxpool_pin_get_age_ns(p) < 60ull * 1000000000ull);

	CHECK_EQ(daxpool_region_get_pin_count(f.region, 0), 2);
	CHECK_EQ(daxpool_region_get_pin_count(f.region, DAXPOOL_PIN_TRANSIENT), 1);
	CHECK_EQ(daxpool_region_get_pin_count(f.region, DAXPOOL_PIN_LONGTERM), 1);
	CHECK_ERR(daxpool_region_get_pin_count(f.region, 7), EINVAL);
	daxpool_pin_unref(p);
	CHECK_EQ(daxpool_region_get_pin_count(f.region, DAXPOOL_PIN_TRANSIENT), 0);
	daxpool_pin_unref(q);
	CHECK_EQ(daxpool_region_get_pin_count(f.region, 0), 0);
	teardown(&f);
}

#define OWNER_A "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
#define OWNER_B "bbbbbbbbbbbbbbbb"

struct owner_writer {
	struct daxpool_pin *pin;
	atomic_bool stop;
};

static void *rewrite_owner(void *arg)
{
	struct owner_writer *w = arg;
	unsigned int i;

	for (i = 0; !atomic_load(&w->stop); i++)
		CHECK_OK(daxpool_pin_set_owner(w->pin, i % 2 ? OWNER_A : OWNER_B));
	return NULL;
}

/* A copy is one whole description while another thread rewrites it (TSan: no race). */
TEST(copy_owner_is_whole_under_a_concurrent_set_owner)
{
	struct fixture f = setup();
	struct owner_writer w = { 0 };
	pthread_t writer;
	char buf[64];
	int i, n;

	CHECK_OK(daxpool_pin_new(f.map, f.base, 4096, DAXPOOL_PIN_TRANSIENT,
				 DAXPOOL_PIN_DEVICE_READ, &w.pin));
	CHECK_OK(daxpool_pin_set_owner(w.pin, OWNER_A));
	CHECK_OK(-pthread_create(&writer, NULL, rewrite_owner, &w));
	for (i = 0; i < 20000; i++) {
		n = daxpool_pin_copy_owner(w.pin, buf, sizeof(buf));
		CHECK(n == (int)strlen(OWNER_A) || n == (int)strlen(OWNER_B));
		CHECK(strcmp(buf, OWNER_A) == 0 || strcmp(buf, OWNER_B) == 0);
	}
	atomic_store(&w.stop, true);
	CHECK_OK(-pthread_join(writer, NULL));
	daxpool_pin_unref(w.pin);
	teardown(&f);
}

TEST(lookup_is_exact_across_granules)
{
	struct fixture f = setup();
	struct daxpool_pin *a, *b, *c, *seen[16] = { 0 };

	if (f.len < 16 * MIB)
		SKIP("needs a 16 MiB map");
	/* a: [1 MiB, 5 MiB) spans three granules; b: one page at 8 MiB; c: [12 MiB, 12 MiB + 1). */
	CHECK_OK(daxpool_pin_new(f.map, f.base + MIB, 4 * MIB, DAXPOOL_PIN_LONGTERM,
				 DAXPOOL_PIN_DEVICE_READ, &a));
	CHECK_OK(daxpool_pin_new(f.map, f.base + 8 * MIB, 4096, DAXPOOL_PIN_TRANSIENT,
				 DAXPOOL_PIN_DEVICE_WRITE, &b));
	CHECK_OK(daxpool_pin_new(f.map, f.base + 12 * MIB, 1, DAXPOOL_PIN_TRANSIENT,
				 DAXPOOL_PIN_DEVICE_READ, &c));

	CHECK_EQ(daxpool_ctx_lookup_pins(f.ctx, f.base, f.len, collect, seen), 3);
	CHECK(seen[0] && seen[1] && seen[2] && !seen[3]);
	CHECK_EQ(daxpool_ctx_lookup_pins(f.ctx, f.base, MIB, NULL, NULL), 0);
	CHECK_EQ(daxpool_ctx_lookup_pins(f.ctx, f.base + MIB - 1, 1, NULL, NULL), 0);
	CHECK_EQ(daxpool_ctx_lookup_pins(f.ctx, f.base + MIB - 1, 2, NULL, NULL), 1);
	CHECK_EQ(daxpool_ctx_lookup_pins(f.ctx, f.base + 5 * MIB - 1, 1, NULL, NULL), 1);
	CHECK_EQ(daxpool_ctx_lookup_pins(f.ctx, f.base + 5 * MIB, 3 * MIB, NULL, NULL), 0);
	CHECK_EQ(daxpool_ctx_lookup_pins(f.ctx, f.base + 4 * MIB, 4 * MIB + 1, NULL, NULL), 2);
	CHECK_EQ(daxpool_ctx_lookup_pins(f.ctx, f.base + 12 * MIB + 1, 4096, NULL, NULL), 0);
	CHECK_EQ(daxpool_ctx_is_pinned(f.ctx, f.base + 12 * MIB, 1), 1);
	CHECK_EQ(daxpool_ctx_is_pinned(f.ctx, f.base + 9 * MIB, MIB), 0);
	CHECK_ERR(daxpool_ctx_lookup_pins(f.ctx, f.base, 0, NULL, NULL), EINVAL);
	CHECK_ERR(daxpool_ctx_lookup_pins(NULL, f.base, 1, NULL, NULL), EINVAL);
	CHECK_ERR(daxpool_ctx_lookup_pins(f.ctx, (void *)UINTPTR_MAX, 2, NULL, NULL), EINVAL);

	/* Unpinned pins are gone from lookups at once. */
	daxpool_pin_unref(a);
	CHECK_EQ(daxpool_ctx_lookup_pins(f.ctx, f.base, f.len, NULL, NULL), 2);
	daxpool_pin_unref(b);
	daxpool_pin_unref(c);
	CHECK_EQ(daxpool_ctx_lookup_pins(f.ctx, f.base, f.len, NULL, NULL), 0);
	teardown(&f);
}

static int take_ref(struct daxpool_pin *pin, void *userdata)
{
	*(struct daxpool_pin **)userdata = daxpool_pin_try_ref(pin);
	return 1;
}

TEST(try_ref_from_a_lookup_keeps_the_pin)
{
	struct fixture f = setup();
	struct daxpool_pin *p, *found = NULL;

	CHECK_OK(daxpool_pin_new(f.map, f.base, 4096, DAXPOOL_PIN_TRANSIENT,
				 DAXPOOL_PIN_DEVICE_READ, &p));
	CHECK_EQ(daxpool_ctx_lookup_pins(f.ctx, f.base, 1, take_ref, &found), 1);
	CHECK(found == p);
	daxpool_pin_unref(p);
	/* Still registered: the lookup's reference keeps it. */
	CHECK_EQ(daxpool_ctx_is_pinned(f.ctx, f.base, 1), 1);
	CHECK(daxpool_pin_get_map(found) == f.map);
	daxpool_pin_unref(found);
	CHECK_EQ(daxpool_ctx_is_pinned(f.ctx, f.base, 1), 0);
	CHECK(daxpool_pin_try_ref(NULL) == NULL);
	teardown(&f);
}

TEST(misuse_is_refused)
{
	struct fixture f = setup();
	struct daxpool_pin *p = NULL;

	CHECK_ERR(daxpool_pin_new(NULL, f.base, 1, DAXPOOL_PIN_TRANSIENT, DAXPOOL_PIN_DEVICE_READ, &p), EINVAL);
	CHECK_ERR(daxpool_pin_new(f.map, f.base, 1, DAXPOOL_PIN_TRANSIENT, DAXPOOL_PIN_DEVICE_READ, NULL), EINVAL);
	CHECK_ERR(daxpool_pin_new(f.map, f.base, 0, DAXPOOL_PIN_TRANSIENT, DAXPOOL_PIN_DEVICE_READ, &p), EINVAL);
	CHECK_ERR(daxpool_pin_new(f.map, f.base, 1, 0, DAXPOOL_PIN_DEVICE_READ, &p), EINVAL);
	CHECK_ERR(daxpool_pin_new(f.map, f.base, 1, 3, DAXPOOL_PIN_DEVICE_READ, &p), EINVAL);
	CHECK_ERR(daxpool_pin_new(f.map, f.base, 1, DAXPOOL_PIN_TRANSIENT, 0, &p), EINVAL);
	CHECK_ERR(daxpool_pin_new(f.map, f.base, 1, DAXPOOL_PIN_TRANSIENT, 4, &p), EINVAL);
	CHECK_ERR(daxpool_pin_new(f.map, f.base - 1, 2, DAXPOOL_PIN_TRANSIENT, DAXPOOL_PIN_DEVICE_READ, &p), EFAULT);
	CHECK_ERR(daxpool_pin_new(f.map, f.base + f.len, 1, DAXPOOL_PIN_TRANSIENT, DAXPOOL_PIN_DEVICE_READ, &p), EFAULT);
	CHECK_ERR(daxpool_pin_new(f.map, f.base + 1, f.len, DAXPOOL_PIN_TRANSIENT, DAXPOOL_PIN_DEVICE_READ, &p), EFAULT);
	CHECK_ERR(daxpool_pin_new(f.map, f.base + 1, SIZE_MAX, DAXPOOL_PIN_TRANSIENT, DAXPOOL_PIN_DEVICE_READ, &p), EFAULT);
	CHECK(p == NULL);
	CHECK(daxpool_pin_unref(NULL) == NULL);
	CHECK_ERR(daxpool_pin_get_kind(NULL), EINVAL);
	CHECK_ERR(daxpool_pin_is_valid(NULL), EINVAL);
	CHECK_ERR(daxpool_pin_set_revoke_fn(NULL, NULL, NULL), EINVAL);
	CHECK_ERR(daxpool_region_foreach_pin(f.region, NULL, NULL), EINVAL);
	{
		struct daxpool_map *ro;

		CHECK_OK(daxpool_map_new(f.region, 0, daxpool_region_get_alignment(f.region),
					 DAXPOOL_MAP_RDONLY, &ro));
		CHECK_ERR(daxpool_pin_new(ro, daxpool_map_get_address(ro), 1, DAXPOOL_PIN_TRANSIENT,
					  DAXPOOL_PIN_DEVICE_WRITE, &p), EACCES);
		CHECK_OK(daxpool_pin_new(ro, daxpool_map_get_address(ro), 1, DAXPOOL_PIN_TRANSIENT,
					 DAXPOOL_PIN_DEVICE_READ, &p));
		daxpool_pin_unref(p);
		daxpool_map_unref(ro);
	}
	teardown(&f);
}

struct revoker {
	struct daxpool_pin *pin;
	int calls;
};

static void revoke_pin(struct daxpool_pin *pin, void *userdata)
{
	struct revoker *rv = userdata;

	CHECK(rv->pin == pin);
	CHECK_EQ(daxpool_pin_is_valid(pin), 0);
	rv->calls++;
	rv->pin = daxpool_pin_unref(rv->pin);
}

static int map_revokes;

static void revoke_map(struct daxpool_map *map, void *userdata)
{
	struct revoker *rv = userdata;

	/* Pins are revoked before maps. */
	CHECK_EQ(rv->calls, 1);
	map_revokes++;
}

TEST(zap_revokes_pins_of_every_kind_then_maps_and_reaches_idle)
{
	struct fixture f = setup();
	struct revoker t = { 0 }, l = { 0 };
	struct daxpool_pin *late = NULL;
	char *report = NULL;

	CHECK_OK(daxpool_pin_new(f.map, f.base, 4096, DAXPOOL_PIN_TRANSIENT,
				 DAXPOOL_PIN_DEVICE_WRITE, &t.pin));
	CHECK_OK(daxpool_pin_new(f.map, f.base + 8192, 4096, DAXPOOL_PIN_LONGTERM,
				 DAXPOOL_PIN_DEVICE_READ, &l.pin));
	CHECK_OK(daxpool_pin_set_revoke_fn(t.pin, revoke_pin, &t));
	CHECK_OK(daxpool_pin_set_revoke_fn(l.pin, revoke_pin, &l));
	CHECK_OK(daxpool_map_set_revoke_fn(f.map, revoke_map, &t));
	CHECK_EQ(daxpool_region_zap(f.region), 3);
	CHECK_EQ(t.calls, 1);
	CHECK_EQ(l.calls, 1);
	CHECK_EQ(map_revokes, 1);
	CHECK(t.pin == NULL && l.pin == NULL);
	CHECK_EQ(daxpool_region_get_pin_count(f.region, 0), 0);
	CHECK_EQ(daxpool_ctx_is_pinned(f.ctx, f.base, f.len), 0);
	CHECK_ERR(daxpool_pin_new(f.map, f.base, 1, DAXPOOL_PIN_TRANSIENT, DAXPOOL_PIN_DEVICE_READ,
				  &late), ENXIO);
	/* The map is still held by the fixture: not idle, and the report says so. */
	CHECK_ERR(daxpool_region_wait_idle(f.region, 0, &report), ETIMEDOUT);
	free(report);
	f.map = daxpool_map_unref(f.map);
	CHECK_OK(daxpool_region_wait_idle(f.region, 0, NULL));
	teardown(&f);
}

TEST(wait_idle_report_names_pins)
{
	struct fixture f = setup();
	struct daxpool_pin *p;
	char *report = NULL;

	CHECK_OK(daxpool_pin_new(f.map, f.base, 4096, DAXPOOL_PIN_LONGTERM,
				 DAXPOOL_PIN_DEVICE_WRITE, &p));
	CHECK_OK(daxpool_pin_set_owner(p, "stuck rdma mr"));
	CHECK_EQ(daxpool_region_zap_range(f.region, 0, daxpool_region_get_alignment(f.region)), 2);
	CHECK_ERR(daxpool_region_wait_idle(f.region, 10, &report), ETIMEDOUT);
	printf("# %s", report);
	CHECK(strstr(report, "stuck rdma mr"));
	CHECK(strstr(report, "longterm"));
	CHECK(strstr(report, "device-write"));
	free(report);
	daxpool_pin_unref(p);
	teardown(&f);
}

static int persisted_logs;

__attribute__((format(printf, 6, 0))) static void
count_persists(struct daxpool_ctx *ctx, int priority, const char *file, int line, const char *fn,
	       const char *format, va_list args)
{
	char msg[256];

	vsnprintf(msg, sizeof(msg), format, args);
	if (strstr(msg, "unpin persisted device-written"))
		persisted_logs++;
}

TEST(device_write_pins_persist_on_unpin)
{
	struct fixture f = setup();
	struct daxpool_pin *w, *r;

	CHECK_OK(daxpool_ctx_set_log_fn(f.ctx, count_persists));
	CHECK_OK(daxpool_ctx_set_log_priority(f.ctx, LOG_DEBUG));
	CHECK_OK(daxpool_pin_new(f.map, f.base, 4096, DAXPOOL_PIN_TRANSIENT,
				 DAXPOOL_PIN_DEVICE_WRITE, &w));
	CHECK_OK(daxpool_pin_new(f.map, f.base, 4096, DAXPOOL_PIN_TRANSIENT,
				 DAXPOOL_PIN_DEVICE_READ, &r));
	memset(f.base, 0x77, 4096); /* what a device would have written */
	daxpool_pin_unref(r);
	CHECK_EQ(persisted_logs, 0);
	daxpool_pin_unref(w);
	CHECK_EQ(persisted_logs, 1);
	teardown(&f);
}

static int count_visit(struct daxpool_pin *pin, void *userdata)
{
	(*(int *)userdata)++;
	return 0;
}

TEST(foreach_pin_visits_every_pin_of_the_region)
{
	struct fixture f = setup();
	struct daxpool_pin *p[5];
	int n = 0;

	for (int i = 0; i < 5; i++)
		CHECK_OK(daxpool_pin_new(f.map, f.base + i * 4096, 4096, DAXPOOL_PIN_TRANSIENT,
					 DAXPOOL_PIN_DEVICE_READ, &p[i]));
	CHECK_EQ(daxpool_region_foreach_pin(f.region, count_visit, &n), 5);
	CHECK_EQ(n, 5);
	for (int i = 0; i < 5; i++)
		daxpool_pin_unref(p[i]);
	teardown(&f);
}

TEST(a_pin_keeps_its_map_and_region)
{
	struct fixture f = setup();
	struct daxpool_region *region = f.region;
	struct daxpool_pin *p;

	CHECK_OK(daxpool_pin_new(f.map, f.base, 4096, DAXPOOL_PIN_LONGTERM,
				 DAXPOOL_PIN_DEVICE_WRITE, &p));
	daxpool_map_unref(f.map);
	daxpool_region_unref(f.region);
	CHECK_EQ(daxpool_region_get_map_count(region), 1);
	memset(daxpool_pin_get_address(p), 1, 4096); /* still mapped */
	daxpool_pin_unref(p);
	daxpool_ctx_unref(f.ctx);
}

/*
 * Exactness against brute force: random pins of every size class (one byte
 * to 8 MiB, so every registry level and both lookup strategies are used) and
 * random queries; the registry's count must equal the count of overlapping
 * live pins, every time.
 */
TEST(lookup_matches_brute_force)
{
	struct fixture f = setup();
	enum { NPINS = 600, QUERIES = 3000 };
	struct daxpool_pin *pins[NPINS] = { 0 };
	uintptr_t s[NPINS], e[NPINS];
	unsigned int seed = 12345;

	for (int round = 0; round < 4; round++) {
		for (int i = 0; i < NPINS; i++) {
			if (pins[i] && rand_r(&seed) % 2) {
				pins[i] = daxpool_pin_unref(pins[i]);
				continue;
			}
			if (pins[i])
				continue;
			size_t len = (rand_r(&seed) % 4) == 0 ? 1 + (size_t)rand_r(&seed) % (8u << 20)
							       : 1 + (size_t)rand_r(&seed) % 20000;
			if (len > f.len)
				len = f.len;
			size_t off = (size_t)rand_r(&seed) % (f.len - len + 1);

			CHECK_OK(daxpool_pin_new(f.map, f.base + off, len, DAXPOOL_PIN_TRANSIENT,
						 DAXPOOL_PIN_DEVICE_READ, &pins[i]));
			s[i] = (uintptr_t)f.base + off;
			e[i] = s[i] + len;
		}
		for (int q = 0; q < QUERIES; q++) {
			size_t qlen = (q % 3) == 0 ? 1 + (size_t)rand_r(&seed) % f.len
						   : 1 + (size_t)rand_r(&seed) % 65536;
			if (qlen > f.len)
				qlen = f.len;
			uintptr_t qs = (uintptr_t)f.base + (size_t)rand_r(&seed) % (f.len - qlen + 1);
			int want = 0;

			for (int i = 0; i < NPINS; i++)
				if (pins[i] && s[i] < qs + qlen && qs < e[i])
					want++;
			CHECK_EQ(daxpool_ctx_lookup_pins(f.ctx, (void *)qs, qlen, NULL, NULL), want);
		}
	}
	for (int i = 0; i < NPINS; i++)
		daxpool_pin_unref(pins[i]);
	CHECK_EQ(daxpool_ctx_lookup_pins(f.ctx, f.base, f.len, NULL, NULL), 0);
	teardown(&f);
}
