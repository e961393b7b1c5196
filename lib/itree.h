/*
 * Intrusive augmented red-black interval tree.
 *
 * Stores closed ranges [start, last] over the full 64-bit space.  Closed
 * ranges (rather than [start, end)) are used so that a range ending at
 * UINT64_MAX is representable and no code ever needs to compute last + 1.
 *
 * The tree is ordered by start; each node also caches the largest 'last' in
 * its subtree (subtree_last).  That cache lets a search discard any subtree
 * that ends before the query begins, giving O(log n) lookups even though
 * ranges may overlap arbitrarily.
 *
 * The node is embedded in the caller's structure (recover it with
 * itree_entry()), so the tree never allocates and never fails; the caller
 * owns all memory and all locking.
 */
#ifndef MUSER_ITREE_H
#define MUSER_ITREE_H

#include <stdint.h>
#include <stddef.h>
#include <stdbool.h>

struct itree_node {
    struct itree_node *parent, *left, *right;
    uint64_t start;          /* closed range [start, last]; caller sets before insert */
    uint64_t last;
    uint64_t subtree_last;   /* max 'last' in this subtree (augmentation) */
    bool red;
};

struct itree {
    struct itree_node *root;
    size_t count;
};

#define ITREE_INIT { NULL, 0 }

#define itree_entry(ptr, type, member) \
    ((type *)((char *)(ptr) - offsetof(type, member)))

void itree_init(struct itree *t);

/*
 * Insert n (start <= last required; the caller checks, since only it knows
 * how to report the error).  Duplicates and overlaps are allowed: nodes are
 * ordered by start, and a node goes after existing nodes with an equal start,
 * so iteration order among equal starts is insertion order.  O(log n).
 * The node's link fields and subtree_last are overwritten.
 */
void itree_insert(struct itree *t, struct itree_node *n);

/*
 * Remove n, which must be in t.  O(log n).  n's link fields are left stale;
 * it may be re-inserted (into any tree) afterwards.
 */
void itree_remove(struct itree *t, struct itree_node *n);

/*
 * Lowest-start node overlapping [start, last] (inclusive, start <= last),
 * or NULL.  Among equal starts, the earliest in tree order.  O(log n).
 */
struct itree_node *itree_first(const struct itree *t, uint64_t start,
                               uint64_t last);

/*
 * Next node after n (in tree order) that overlaps [start, last], or NULL.
 * Pass the same query as to itree_first().  Visiting k results costs
 * O(k log n) worst case, amortised O(log n + k).  The tree must not be
 * modified during the walk.
 */
struct itree_node *itree_next(const struct itree_node *n, uint64_t start,
                              uint64_t last);

/* Plain in-order traversal over all nodes, ignoring ranges. */
struct itree_node *itree_min(const struct itree *t);
struct itree_node *itree_succ(const struct itree_node *n);

/*
 * Verify every invariant (order, colouring, black height, parent links,
 * subtree_last, count).  O(n); for tests and fuzzers, not production paths.
 * Returns 0 if all hold, else -EINVAL.
 */
int itree_check(const struct itree *t);

/*
 * Node containing the point p (the same node itree_first(t, p, p) returns),
 * or NULL.
 *
 * This is the hot path of DMA address translation, so it is inline: with
 * one or two regions the whole lookup is a few loads and compares, on par
 * with scanning a tiny array.  It walks a single root-to-leaf path:
 *  - if the left subtree reaches p, the answer is there or nowhere, because
 *    everything to the right starts at or after the left subtree's nodes;
 *  - otherwise this node is the answer if it contains p;
 *  - otherwise, if it starts after p, so does everything to its right.
 */
static inline struct itree_node *
itree_find_point(const struct itree *t, uint64_t p)
{
    struct itree_node *n = t->root;

    while (n != NULL) {
        struct itree_node *l = n->left;

        if (l != NULL && p <= l->subtree_last) {
            n = l;
            continue;
        }
        if (p < n->start) {
            return NULL;
        }
        if (p <= n->last) {
            return n;
        }
        n = n->right;
    }
    return NULL;
}

#endif /* MUSER_ITREE_H */
