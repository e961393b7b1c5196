/*
 * lru.c - settling the lazily ordered LRU list (lru.h).
 */
#include "lru.h"

void lru_init(struct lru *l)
{
    l->head = l->tail = l->pending = NULL;
    l->clock = 0;
}

static void unlink_node(struct lru *l, struct lru_node *n)
{
    if (n->prev != NULL)
        n->prev->next = n->next;
    else
        l->head = n->next;
    if (n->next != NULL)
        n->next->prev = n->prev;
    else
        l->tail = n->prev;
    n->prev = n->next = NULL;
    n->listed = false;
}

static void append(struct lru *l, struct lru_node *n)
{
    n->next = NULL;
    n->prev = l->tail;
    if (l->tail != NULL)
        l->tail->next = n;
    else
        l->head = n;
    l->tail = n;
    n->listed = true;
}

/* Merge two stacks sorted by ascending stamp. */
static struct lru_node *merge(struct lru_node *a, struct lru_node *b)
{
    struct lru_node *head = NULL, **tail = &head;

    while (a != NULL && b != NULL) {
        struct lru_node **min = a->stamp <= b->stamp ? &a : &b;

        *tail = *min;
        tail = &(*min)->pending_next;
        *min = (*min)->pending_next;
    }
    *tail = a != NULL ? a : b;
    return head;
}

/*
 * Bottom-up merge sort of the pending stack by stamp: runs[i] holds a
 * sorted run of 2^i nodes or nothing, as the digits of a binary counter.
 * No allocation, no recursion; 64 runs sort any stack that fits memory.
 */
static struct lru_node *sort_by_stamp(struct lru_node *list)
{
    struct lru_node *runs[64] = { NULL };
    struct lru_node *n, *carry;
    size_t i;

    while (list != NULL) {
        n = list;
        list = list->pending_next;
        n->pending_next = NULL;
        carry = n;
        for (i = 0; runs[i] != NULL; i++) {
            carry = merge(runs[i], carry);
            runs[i] = NULL;
        }
        runs[i] = carry;
    }
    carry = NULL;
    for (i = 0; i < 64; i++) {
        if (runs[i] != NULL)
            carry = merge(runs[i], carry);
    }
    return carry;
}

void lru_settle_pending(struct lru *l)
{
    struct lru_node *n = sort_by_stamp(l->pending), *next;

    l->pending = NULL;
    for (; n != NULL; n = next) {
        next = n->pending_next;
        n->pending_next = NULL;
        n->pending = false;
        if (n->listed)
            unlink_node(l, n);
        append(l, n);
    }
}

void lru_del(struct lru *l, struct lru_node *n)
{
    if (n->pending)
        lru_settle_pending(l);      /* off the stack, in the list */
    if (n->listed)
        unlink_node(l, n);
}
