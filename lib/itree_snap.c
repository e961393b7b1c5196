/*
 * itree_snap.c - building the Eytzinger-ordered snapshot (itree_snap.h).
 *
 * An in-order walk of the implicit tree (position k has children 2k and
 * 2k+1) visits positions in sorted order, so walking it in step with the
 * interval tree's in-order walk lays the ranges out in one pass, with no
 * sorting and no temporary array.
 */
#include <errno.h>
#include <stdlib.h>

#include "itree_snap.h"

void itree_snap_init(struct itree_snap *s)
{
    s->last = NULL;
    s->node = NULL;
    s->n = s->cap = 0;
    s->stale = true;
    s->misses = 0;
}

void itree_snap_fini(struct itree_snap *s)
{
    free(s->last);
    free(s->node);
    itree_snap_init(s);
}

static int reserve(struct itree_snap *s, size_t n)
{
    uint64_t *last;
    struct itree_node **node;
    size_t cap;

    if (n <= s->cap)
        return 0;
    cap = s->cap ? s->cap : 16;
    while (cap < n)
        cap *= 2;
    /* Slot 0 is unused: the implicit tree is 1-based. */
    last = malloc((cap + 1) * sizeof(*last));
    node = malloc((cap + 1) * sizeof(*node));
    if (last == NULL || node == NULL) {
        free(last);
        free(node);
        return -ENOMEM;
    }
    free(s->last);
    free(s->node);
    s->last = last;
    s->node = node;
    s->cap = cap;
    return 0;
}

/* Leftmost position of the subtree rooted at k. */
static size_t leftmost(size_t k, size_t n)
{
    while (2 * k <= n)
        k *= 2;
    return k;
}

int itree_snap_build(struct itree_snap *s, const struct itree *t)
{
    size_t n = t->count, k;
    struct itree_node *it;

    if (reserve(s, n) < 0)
        return -ENOMEM;
    k = leftmost(1, n);
    for (it = itree_min(t); it != NULL; it = itree_succ(it)) {
        s->last[k] = it->last;
        s->node[k] = it;
        if (2 * k + 1 <= n) {
            k = leftmost(2 * k + 1, n);
        } else {
            /* Up past every right child, then once more. */
            while (k & 1)
                k >>= 1;
            k >>= 1;
        }
    }
    s->n = n;
    s->stale = false;
    s->misses = 0;
    return 0;
}
