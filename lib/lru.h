/*
 * lru.h - an exact least-recently-used list whose "used now" costs no
 * list surgery.
 *
 * The DMA table keeps its mappings in order of last use, so eviction takes
 * the one idle longest.  Moving a node to the tail on every use touches
 * both neighbours and the tail: three more cache lines, in a large table
 * three more misses on the translation hot path, for an order that is
 * read only when something is evicted.  So a use only stamps the node
 * with a counter and, the first time since the list was last put in
 * order, pushes it on a pending stack; lru_settle() (when the order is
 * read) sorts the pending nodes by stamp and moves them to the tail in
 * that order.  Every node not pending was last used before every pending
 * one (it would be pending otherwise), so the result is exactly the list
 * that moving on every use would have built.
 *
 * Intrusive (embed struct lru_node), never allocates, no locking (the
 * owner's lock covers the list and its nodes).
 */
#ifndef MUSER_LRU_H
#define MUSER_LRU_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct lru_node {
    struct lru_node *prev, *next;   /* on the list, while listed */
    struct lru_node *pending_next;  /* on the pending stack, while pending */
    uint64_t stamp;                 /* the list's clock at the last use */
    bool listed, pending;
};

struct lru {
    struct lru_node *head, *tail;   /* least recently used first */
    struct lru_node *pending;       /* used since the last settle */
    uint64_t clock;
};

void lru_init(struct lru *l);

/* A fresh node: on neither list. */
static inline void lru_node_init(struct lru_node *n)
{
    n->prev = n->next = n->pending_next = NULL;
    n->stamp = 0;
    n->listed = n->pending = false;
}

/*
 * n was used now: from the next settle on it is the most recently used
 * (joining the list if it was not on it).  O(1), touches only n and l.
 */
static inline void lru_touch(struct lru *l, struct lru_node *n)
{
    n->stamp = ++l->clock;
    if (n->pending || (n->listed && l->tail == n && l->pending == NULL))
        return;
    n->pending = true;
    n->pending_next = l->pending;
    l->pending = n;
}

/* Put the list in order: O(p log p) for p nodes used since last time. */
void lru_settle_pending(struct lru *l);

static inline void lru_settle(struct lru *l)
{
    if (l->pending != NULL)
        lru_settle_pending(l);
}

/* The least recently used node, or NULL (settles first). */
static inline struct lru_node *lru_oldest(struct lru *l)
{
    lru_settle(l);
    return l->head;
}

/* Take n off the list and the pending stack (no-op if on neither). */
void lru_del(struct lru *l, struct lru_node *n);

/* Nodes are iterated with lru_oldest() and ->next, without changes in
 * between. */

#endif /* MUSER_LRU_H */
