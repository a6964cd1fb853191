/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The pin registry: "which pins cover [addr, addr + len)?", answered exactly
 * and without locks.
 *
 * Pins live in a liburcu lock-free hash table keyed by 2 MiB granule of
 * address; a pin has one node in every granule it covers. A lookup walks the
 * granules of its range under rcu_read_lock() and compares ranges, so a pin is
 * found iff it overlaps the range. Readers write nothing shared: the urcu-bp
 * read lock touches only the thread's own reader state, and lookups take no
 * reference (a visitor that wants one uses daxpool_pin_try_ref(), which is
 * get-unless-zero: a count that reached zero means the pin is going away).
 *
 * Removal is unlink, then free after a grace period (call_rcu), so a reader
 * that found a node before it was unlinked still reads valid memory.
 */
#include <assert.h>
#include <stdlib.h>

#include "private.h"

struct dp_registry {
	struct cds_lfht *ht;
};



/* A 64-bit mix (the MurmurHash3 finaliser) of the granule number. */
static unsigned long granule_hash(uintptr_t granule)
{
	uint64_t h = granule;

	h ^= h >> 33;
	h *= 0xff51afd7ed558ccdULL;
	h ^= h >> 33;
	h *= 0xc4ceb9fe1a85ec53ULL;
	h ^= h >> 33;
	return (unsigned long)h;
}

static int granule_match(struct cds_lfht_node *node, const void *key)
{
	const struct dp_pin_node *n = caa_container_of(node, struct dp_pin_node, lfnode);

	return n->granule == *(const uintptr_t *)key;
}

int dp_registry_new(struct dp_registry **ret)
{
	struct dp_registry *reg = calloc(1, sizeof(*reg));

	if (!reg)
		return -ENOMEM;
	reg->ht = cds_lfht_new(64, 64, 0, CDS_LFHT_AUTO_RESIZE | CDS_LFHT_ACCOUNTING, NULL);
	if (!reg->ht) {
		free(reg);
		return -ENOMEM;
	}
	*ret = reg;
	return 0;
}

void dp_registry_free(struct dp_registry *reg)
{
	if (!reg)
		return;
	/*
	 * Every pin holds its map, which holds its region, which holds the ctx:
	 * when the ctx goes, no pin is left. Wait for the frees of the last
	 * ones (call_rcu) before the table goes.
	 */
	rcu_barrier();
	cds_lfht_destroy(reg->ht, NULL);
	free(reg);
}

void dp_registry_insert(struct dp_registry *reg, struct daxpool_pin *pin)
{
	rcu_read_lock();
	for (size_t i = 0; i < pin->n_nodes; i++) {
		struct dp_pin_node *n = &pin->nodes[i];

		cds_lfht_node_init(&n->lfnode);
		atomic_store_explicit(&n->pin, pin, memory_order_release);
		cds_lfht_add(reg->ht, granule_hash(n->granule), &n->lfnode);
	}
	rcu_read_unlock();
}

static void pin_free_rcu(struct rcu_head *head)
{
	free(caa_container_of(head, struct daxpool_pin, rcu));
}

void dp_registry_remove_and_free(struct dp_registry *reg, struct daxpool_pin *pin)
{
	rcu_read_lock();
	for (size_t i = 0; i < pin->n_nodes; i++) {
		int r = cds_lfht_del(reg->ht, &pin->nodes[i].lfnode);

		assert(r == 0);
		(void)r;
	}
	rcu_read_unlock();
	call_rcu(&pin->rcu, pin_free_rcu);
}

_public_ int daxpool_ctx_lookup_pins(struct daxpool_ctx *ctx, const void *addr, size_t length,
				     daxpool_pin_visit_fn visit, void *userdata)
{
	uintptr_t start = (uintptr_t)addr, end, first, last;
	int n = 0;

	assert_return(ctx, -EINVAL);
	assert_return(length > 0, -EINVAL);
	assert_return(start + length > start, -EINVAL); /* no wrap-around */
	end = start + length;
	first = start >> DP_GRANULE_SHIFT;
	last = (end - 1) >> DP_GRANULE_SHIFT;

	rcu_read_lock();
	for (uintptr_t g = first; g <= last; g++) {
		struct cds_lfht_iter iter;
		struct cds_lfht_node *node;

		cds_lfht_lookup(ctx->registry->ht, granule_hash(g), granule_match, &g, &iter);
		while ((node = cds_lfht_iter_get_node(&iter))) {
			struct dp_pin_node *pn = caa_container_of(node, struct dp_pin_node, lfnode);
			struct daxpool_pin *pin = atomic_load_explicit(&pn->pin, memory_order_acquire);

			cds_lfht_next_duplicate(ctx->registry->ht, granule_match, &g, &iter);
			if (atomic_load_explicit(&pin->dead, memory_order_acquire))
				continue;
			if (!(pin->start < end && start < pin->end))
				continue;
			/*
			 * A pin spanning several granules of the range is met in
			 * each: report it in the first granule of the overlap only.
			 */
			if (g != ((pin->start > start ? pin->start : start) >> DP_GRANULE_SHIFT))
				continue;
			n++;
			if (visit && visit(pin, userdata))
				goto out;
		}
	}
out:
	rcu_read_unlock();
	return n;
}

static int stop_at_first(struct daxpool_pin *pin, void *userdata)
{
	return 1;
}

_public_ int daxpool_ctx_is_pinned(struct daxpool_ctx *ctx, const void *addr, size_t length)
{
	int r = daxpool_ctx_lookup_pins(ctx, addr, length, stop_at_first, NULL);

	return r < 0 ? r : r > 0;
}
