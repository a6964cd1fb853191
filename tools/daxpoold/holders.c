/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* What one client holds: regions, maps and pins by id, in chained hashes that grow. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "holders.h"

static size_t slot_of(size_t nb, uint64_t id)
{
	id ^= id >> 33;
	id *= 0xff51afd7ed558ccdULL;
	id ^= id >> 33;
	return (size_t)(id & (nb - 1));
}

static size_t slot(const struct dd_idmap *m, uint64_t id)
{
	return slot_of(m->nb, id);
}

static void idmap_grow(struct dd_idmap *m)
{
	size_t nb = m->nb ? m->nb * 2 : 64;
	struct dd_holding **b = calloc(nb, sizeof(*b));
	struct dd_idmap nm = { b, nb, 0 };

	if (!b)
		return; /* keep the longer chains */
	for (size_t i = 0; i < m->nb; i++) {
		struct dd_holding *h = m->b[i], *next;

		for (; h; h = next) {
			size_t s = slot(&nm, h->id);

			next = h->hnext;
			h->hnext = b[s];
			b[s] = h;
		}
	}
	free(m->b);
	m->b = b;
	m->nb = nb;
}

struct dd_holding *dd_idmap_take(struct dd_idmap *m, uint64_t id)
{
	struct dd_holding **pp;

	if (!m->nb)
		return NULL;
	for (pp = &m->b[slot(m, id)]; *pp; pp = &(*pp)->hnext) {
		if ((*pp)->id == id) {
			struct dd_holding *h = *pp;

			*pp = h->hnext;
			m->n--;
			return h;
		}
	}
	return NULL;
}

struct dd_holding *dd_idmap_get(const struct dd_idmap *m, uint64_t id)
{
	if (!m->nb)
		return NULL;
	for (struct dd_holding *h = m->b[slot(m, id)]; h; h = h->hnext)
		if (h->id == id)
			return h;
	return NULL;
}

void dd_holding_free(struct dd_holding *h)
{
	if (!h)
		return;
	free(h->owner);
	free(h);
}

int dd_holding_set_owner(struct dd_holding *h, const char *text)
{
	size_t n = strnlen(text, DP_PROTO_MAX_OWNER);
	char *s = NULL;

	if (n) {
		s = malloc(n + 1);
		if (!s)
			return -ENOMEM;
		for (size_t i = 0; i < n; i++)
			s[i] = text[i] >= 0x20 && text[i] < 0x7f ? text[i] : '?';
		s[n] = '\0';
	}
	free(h->owner);
	h->owner = s;
	return 0;
}

void dd_idmap_put(struct dd_idmap *m, struct dd_holding *h)
{
	size_t s;

	dd_holding_free(dd_idmap_take(m, h->id));
	if (m->n >= m->nb)
		idmap_grow(m);
	if (!m->nb) {
		dd_holding_free(h);
		return;
	}
	s = slot(m, h->id);
	h->hnext = m->b[s];
	m->b[s] = h;
	m->n++;
}

void dd_idmap_clear(struct dd_idmap *m)
{
	for (size_t i = 0; i < m->nb; i++) {
		struct dd_holding *h = m->b[i], *next;

		for (; h; h = next) {
			next = h->hnext;
			dd_holding_free(h);
		}
	}
	free(m->b);
	m->b = NULL;
	m->nb = m->n = 0;
}

struct dd_region *dd_regmap_get(const struct dd_regmap *m, uint64_t id)
{
	if (!m->nb)
		return NULL;
	for (struct dd_region *r = m->b[slot_of(m->nb, id)]; r; r = r->hnext)
		if (r->id == id)
			return r;
	return NULL;
}

static void regmap_grow(struct dd_regmap *m)
{
	size_t nb = m->nb ? m->nb * 2 : 16;
	struct dd_region **b = calloc(nb, sizeof(*b));

	if (!b)
		return; /* keep the longer chains */
	for (size_t i = 0; i < m->nb; i++) {
		for (struct dd_region *r = m->b[i], *next; r; r = next) {
			size_t s = slot_of(nb, r->id);

			next = r->hnext;
			r->hnext = b[s];
			b[s] = r;
		}
	}
	free(m->b);
	m->b = b;
	m->nb = nb;
}

int dd_regmap_add(struct dd_regmap *m, struct dd_region *r)
{
	size_t s;

	if (m->n >= m->nb)
		regmap_grow(m);
	if (!m->nb)
		return -ENOMEM;
	s = slot_of(m->nb, r->id);
	r->hnext = m->b[s];
	m->b[s] = r;
	m->n++;
	return 0;
}

void dd_regmap_del(struct dd_regmap *m, struct dd_region *r)
{
	if (!m->nb)
		return;
	for (struct dd_region **pp = &m->b[slot_of(m->nb, r->id)]; *pp; pp = &(*pp)->hnext) {
		if (*pp == r) {
			*pp = r->hnext;
			m->n--;
			return;
		}
	}
}

void dd_regmap_clear(struct dd_regmap *m)
{
	free(m->b);
	m->b = NULL;
	m->nb = m->n = 0;
}

bool dd_region_is(const struct dd_region *r, uint64_t dev, uint64_t ino, uint64_t rdev)
{
	if (r->dev == dev && r->ino == ino)
		return true;
	return rdev && r->kind == DD_REGION_DEVDAX && r->rdev == rdev;
}
