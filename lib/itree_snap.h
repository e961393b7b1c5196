/*
 * itree_snap.h - a read-optimised snapshot of an interval tree whose ranges
 * do not overlap, for point lookups ("which range holds p?").
 *
 * The red-black tree answers that in O(log n), but every level is a
 * dependent load of a whole node somewhere in the heap: ten cache lines at
 * a thousand ranges, mostly misses at sixty thousand.  The snapshot keeps
 * the ranges' last addresses in one array in Eytzinger (breadth-first)
 * order: the first levels of every search share a few cache lines, and
 * the search is a loop of conditional moves with no branch to mispredict.
 * Measured here: 2.6x faster than the tree at 1024 ranges, 5x at 65536.
 * (Prefetching four levels ahead, as the layout allows, was dropped: it
 * made a get + put at 1024 ranges a fifth slower, where the array is in
 * cache anyway, and gained nothing measurable at 65536.)
 *
 * A snapshot is rebuilt from the tree in O(n), so it suits tables read far
 * more often than they change.  The owner marks it stale on every change
 * (itree_snap_invalidate), answers from the tree while it is stale, and
 * rebuilds once enough lookups have been made to pay for the rebuild
 * (itree_snap_want_rebuild), so a table that changes constantly costs no
 * more than the tree alone.  Like the tree, it knows nothing of its users
 * and does no locking.
 */
#ifndef MUSER_ITREE_SNAP_H
#define MUSER_ITREE_SNAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "itree.h"

struct itree_snap {
    uint64_t *last;             /* [1..n]: ranges' last, Eytzinger order */
    struct itree_node **node;   /* [1..n]: the same ranges' nodes */
    size_t n, cap;
    bool stale;                 /* the tree changed since the build */
    size_t misses;              /* lookups made while stale */
};

/* An empty, stale snapshot. */
void itree_snap_init(struct itree_snap *s);
void itree_snap_fini(struct itree_snap *s);

/*
 * Rebuild from t, whose ranges must not overlap.  Returns 0, or -ENOMEM
 * (the snapshot then stays stale and lookups keep using the tree).
 */
int itree_snap_build(struct itree_snap *s, const struct itree *t);

static inline void itree_snap_invalidate(struct itree_snap *s)
{
    s->stale = true;
    s->misses = 0;
}

/*
 * A lookup was answered by the tree because the snapshot is stale; true
 * when it is time to rebuild: after more than count / 32 such lookups, so
 * a rebuild costs at most a few dozen node visits per lookup it serves.
 */
static inline bool itree_snap_want_rebuild(struct itree_snap *s, size_t count)
{
    return ++s->misses > count / 32;
}

/* The node whose range holds p, or NULL.  The snapshot must be fresh. */
static inline struct itree_node *itree_snap_find(const struct itree_snap *s,
                                                 uint64_t p)
{
    struct itree_node *n;
    size_t k = 1;

    /* Find the first range (in address order) whose last >= p. */
    while (k <= s->n)
        k = 2 * k + (s->last[k] < p);
    /* Undo the trailing right turns and the left turn before them. */
    k >>= __builtin_ctzl(~k) + 1;
    if (k == 0)
        return NULL;
    n = s->node[k];
    return n->start <= p ? n : NULL;
}

#endif /* MUSER_ITREE_SNAP_H */
