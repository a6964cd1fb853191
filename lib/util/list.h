/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* An intrusive circular doubly linked list, as in the kernel's list.h. */
#ifndef DAXPOOL_UTIL_LIST_H
#define DAXPOOL_UTIL_LIST_H

#include <stdbool.h>
#include <stddef.h>

struct dp_list {
	struct dp_list *next, *prev;
};

#define dp_container_of(ptr, type, member) ((type *)((char *)(ptr)-offsetof(type, member)))

static inline void dp_list_init(struct dp_list *head)
{
	head->next = head->prev = head;
}

static inline bool dp_list_empty(const struct dp_list *head)
{
	return head->next == head;
}

static inline void dp_list_add_tail(struct dp_list *head, struct dp_list *node)
{
	node->prev = head->prev;
	node->next = head;
	head->prev->next = node;
	head->prev = node;
}

static inline void dp_list_del(struct dp_list *node)
{
	node->prev->next = node->next;
	node->next->prev = node->prev;
	node->next = node->prev = node;
}

#define dp_list_for_each(pos, head) for ((pos) = (head)->next; (pos) != (head); (pos) = (pos)->next)

#endif /* DAXPOOL_UTIL_LIST_H */
