/*
 * Intrusive augmented red-black interval tree; see itree.h for the model.
 *
 * Design notes:
 *
 * - Classic red-black tree with parent pointers, so that iteration
 *   (itree_next/itree_succ) needs no stack and no allocation.
 *
 * - Left/right cases are mirror images.  Rather than writing every rebalance
 *   case twice, the code works on a direction index (LEFT/RIGHT) and a child()
 *   accessor; each case is then written once.
 *
 * - Augmentation (subtree_last) follows the kernel's rbtree_augmented
 *   scheme.  Three primitives keep it exact:
 *     propagate: recompute from a node upwards, stopping as soon as a value
 *                does not change (ancestors then cannot change either);
 *     copy:      when a node takes another's place in the tree, it inherits
 *                the old subtree_last, because it now roots the same set;
 *     rotate:    a rotation does not change the set of nodes under the
 *                rotated pair, so the node moving up inherits the old top's
 *                value and only the node moving down is recomputed.
 *   Structural edits happen first and are followed by propagate, so the
 *   cache is exact before any rebalancing rotation runs; rotations then
 *   keep it exact.  This is why rebalancing never walks to the root again.
 *
 * - Ordering ties are broken by insertion (new node goes right of equal
 *   starts), so the tree is a well-defined multiset and every search can
 *   use "start < x" / "start >= x" without special cases.
 *
 * - All comparisons are on closed ranges; nothing computes last + 1, so
 *   ranges touching UINT64_MAX need no special handling.
 */
#include <errno.h>

#include "itree.h"

enum { LEFT = 0, RIGHT = 1 };

static inline struct itree_node **
child(struct itree_node *n, int dir)
{
    return dir == LEFT ? &n->left : &n->right;
}

static inline bool
is_red(const struct itree_node *n)
{
    return n != NULL && n->red;
}

static inline uint64_t
max_u64(uint64_t a, uint64_t b)
{
    return a > b ? a : b;
}

static inline uint64_t
compute_subtree_last(const struct itree_node *n)
{
    uint64_t v = n->last;

    if (n->left != NULL) {
        v = max_u64(v, n->left->subtree_last);
    }
    if (n->right != NULL) {
        v = max_u64(v, n->right->subtree_last);
    }
    return v;
}

/* Recompute subtree_last from n towards the root, excluding stop. */
static void
propagate(struct itree_node *n, const struct itree_node *stop)
{
    while (n != stop) {
        uint64_t v = compute_subtree_last(n);

        if (v == n->subtree_last) {
            break;
        }
        n->subtree_last = v;
        n = n->parent;
    }
}

/* Point whatever referenced old (parent link or root) at new instead. */
static void
replace_child(struct itree *t, struct itree_node *parent,
              const struct itree_node *old, struct itree_node *new)
{
    if (parent == NULL) {
        t->root = new;
    } else if (parent->left == old) {
        parent->left = new;
    } else {
        parent->right = new;
    }
}

/*
 * Rotate x down towards dir; its child on the other side takes its place.
 * rotate(t, x, LEFT) is the textbook left rotation.
 */
static void
rotate(struct itree *t, struct itree_node *x, int dir)
{
    struct itree_node *y = *child(x, !dir);
    struct itree_node *mid = *child(y, dir);
    struct itree_node *p = x->parent;

    *child(x, !dir) = mid;
    if (mid != NULL) {
        mid->parent = x;
    }
    *child(y, dir) = x;
    x->parent = y;
    y->parent = p;
    replace_child(t, p, x, y);

    y->subtree_last = x->subtree_last;
    x->subtree_last = compute_subtree_last(x);
}

void
itree_init(struct itree *t)
{
    t->root = NULL;
    t->count = 0;
}

/* Restore "no red node has a red child" after linking red node n. */
static void
insert_fixup(struct itree *t, struct itree_node *n)
{
    struct itree_node *p, *g, *u;
    int dir;

    while ((p = n->parent) != NULL && p->red) {
        g = p->parent;  /* p is red, so it is not the root */
        dir = p == g->right ? RIGHT : LEFT;
        u = *child(g, !dir);

        if (is_red(u)) {
            /* Push the red conflict two levels up. */
            p->red = false;
            u->red = false;
            g->red = true;
            n = g;
            continue;
        }
        if (n == *child(p, !dir)) {
            /* Inner grandchild: make it outer so one rotation at g fixes it. */
            rotate(t, p, dir);
            n = p;
            p = n->parent;
        }
        p->red = false;
        g->red = true;
        rotate(t, g, !dir);
        break;
    }
    t->root->red = false;
}

void
itree_insert(struct itree *t, struct itree_node *n)
{
    struct itree_node **link = &t->root;
    struct itree_node *parent = NULL;

    /* Every node on the way down gains n in its subtree. */
    while (*link != NULL) {
        parent = *link;
        if (parent->subtree_last < n->last) {
            parent->subtree_last = n->last;
        }
        link = n->start < parent->start ? &parent->left : &parent->right;
    }

    n->parent = parent;
    n->left = NULL;
    n->right = NULL;
    n->subtree_last = n->last;
    n->red = true;
    *link = n;
    t->count++;

    insert_fixup(t, n);
}

/*
 * Restore equal black height after a black node was unlinked from p's side
 * where x (possibly NULL) now sits.  The sibling w is never NULL: it has to
 * carry at least the black height the removed node had.
 */
static void
erase_fixup(struct itree *t, struct itree_node *x, struct itree_node *p)
{
    struct itree_node *w;
    int dir;

    while (x != t->root && !is_red(x)) {
        /* With x == NULL this still works: the sibling side is non-NULL. */
        dir = x == p->right ? RIGHT : LEFT;
        w = *child(p, !dir);

        if (w->red) {
            /* Make the sibling black so the cases below apply. */
            w->red = false;
            p->red = true;
            rotate(t, p, dir);
            w = *child(p, !dir);
        }
        if (!is_red(w->left) && !is_red(w->right)) {
            /* Shorten the sibling's side too, moving the deficit up. */
            w->red = true;
            x = p;
            p = x->parent;
            continue;
        }
        if (!is_red(*child(w, !dir))) {
            /* Only the near nephew is red: turn it into the far one. */
            (*child(w, dir))->red = false;
            w->red = true;
            rotate(t, w, !dir);
            w = *child(p, !dir);
        }
        /* Far nephew red: one rotation at p adds a black to x's side. */
        w->red = p->red;
        p->red = false;
        (*child(w, !dir))->red = false;
        rotate(t, p, dir);
        return;
    }
    if (x != NULL) {
        x->red = false;
    }
}

/*
 * Put n's in-order successor s in n's place.  Returns the node that now
 * holds the vacated slot as a parent; *childp is what fills that slot and
 * *black_removed says whether a black was taken from the slot.
 */
static struct itree_node *
splice_successor(struct itree *t, struct itree_node *n,
                 struct itree_node **childp, bool *black_removed)
{
    struct itree_node *s = n->right;
    struct itree_node *parent;

    while (s->left != NULL) {
        s = s->left;
    }
    *childp = s->right;
    *black_removed = !s->red;

    if (s == n->right) {
        parent = s;
    } else {
        parent = s->parent;
        parent->left = s->right;
        if (s->right != NULL) {
            s->right->parent = parent;
        }
        s->right = n->right;
        s->right->parent = s;
    }
    s->left = n->left;
    s->left->parent = s;
    s->parent = n->parent;
    s->red = n->red;
    replace_child(t, n->parent, n, s);

    /* s roots n's old subtree (copy), minus itself on the path below. */
    s->subtree_last = n->subtree_last;
    propagate(parent, s);
    propagate(s, NULL);
    return parent;
}

void
itree_remove(struct itree *t, struct itree_node *n)
{
    struct itree_node *parent, *c;
    bool black_removed;

    if (n->left != NULL && n->right != NULL) {
        parent = splice_successor(t, n, &c, &black_removed);
    } else {
        c = n->left != NULL ? n->left : n->right;
        parent = n->parent;
        black_removed = !n->red;
        if (c != NULL) {
            c->parent = parent;
        }
        replace_child(t, parent, n, c);
        propagate(parent, NULL);
    }
    t->count--;

    if (!black_removed) {
        return;
    }
    if (c != NULL) {
        /* A black node with a single child has a red leaf child. */
        c->red = false;
    } else if (parent != NULL) {
        erase_fixup(t, NULL, parent);
    }
}

/*
 * Lowest node under n overlapping [start, last].  Same single-path argument
 * as itree_find_point(): once we go left we never need to come back.
 */
static struct itree_node *
subtree_search(struct itree_node *n, uint64_t start, uint64_t last)
{
    for (;;) {
        struct itree_node *l = n->left;

        if (l != NULL && start <= l->subtree_last) {
            n = l;
            continue;
        }
        if (last < n->start) {
            return NULL;
        }
        if (start <= n->last) {
            return n;
        }
        n = n->right;
        if (n == NULL || n->subtree_last < start) {
            return NULL;
        }
    }
}

struct itree_node *
itree_first(const struct itree *t, uint64_t start, uint64_t last)
{
    struct itree_node *n = t->root;

    if (n == NULL || n->subtree_last < start) {
        return NULL;
    }
    return subtree_search(n, start, last);
}

struct itree_node *
itree_next(const struct itree_node *n, uint64_t start, uint64_t last)
{
    struct itree_node *r = n->right;
    struct itree_node *p;

    for (;;) {
        /*
         * Everything before n is done, so the next candidate is in n's right
         * subtree or, failing that, the first ancestor we reach from its
         * left.  That ancestor's own right subtree is tried next iteration.
         */
        if (r != NULL && start <= r->subtree_last) {
            return subtree_search(r, start, last);
        }
        for (;;) {
            p = n->parent;
            if (p == NULL) {
                return NULL;
            }
            if (p->left == n) {
                break;
            }
            n = p;
        }
        if (last < p->start) {
            return NULL;
        }
        if (start <= p->last) {
            return p;
        }
        n = p;
        r = p->right;
    }
}

struct itree_node *
itree_min(const struct itree *t)
{
    struct itree_node *n = t->root;

    if (n == NULL) {
        return NULL;
    }
    while (n->left != NULL) {
        n = n->left;
    }
    return n;
}

struct itree_node *
itree_succ(const struct itree_node *n)
{
    struct itree_node *p;

    if (n->right != NULL) {
        p = n->right;
        while (p->left != NULL) {
            p = p->left;
        }
        return p;
    }
    while ((p = n->parent) != NULL && p->right == n) {
        n = p;
    }
    return p;
}

/*
 * Invariant checking.  A valid tree has height <= 2 * log2(count + 1), so the
 * recursion is bounded by CHECK_MAX_DEPTH; the bound (and the visit count)
 * also stop the walk early on a corrupted, possibly cyclic, structure.
 */
#define CHECK_MAX_DEPTH 130

struct check_state {
    const struct itree_node *prev;  /* previous node in order */
    size_t seen;
    size_t count;
};

static int
check_node(const struct itree_node *n, const struct itree_node *parent,
           struct check_state *st, int depth, int *black_height)
{
    int lh, rh;

    if (n == NULL) {
        *black_height = 1;
        return 0;
    }
    if (depth > CHECK_MAX_DEPTH || ++st->seen > st->count ||
        n->parent != parent || n->start > n->last ||
        (n->left != NULL && n->left == n->right) ||
        (n->red && (is_red(n->left) || is_red(n->right))) ||
        n->subtree_last != compute_subtree_last(n)) {
        return -EINVAL;
    }
    if (check_node(n->left, n, st, depth + 1, &lh) != 0) {
        return -EINVAL;
    }
    if (st->prev != NULL && st->prev->start > n->start) {
        return -EINVAL;
    }
    st->prev = n;
    if (check_node(n->right, n, st, depth + 1, &rh) != 0 || lh != rh) {
        return -EINVAL;
    }
    *black_height = lh + !n->red;
    return 0;
}

int
itree_check(const struct itree *t)
{
    struct check_state st = { .prev = NULL, .seen = 0, .count = t->count };
    int bh;

    if (is_red(t->root) || check_node(t->root, NULL, &st, 0, &bh) != 0 ||
        st.seen != t->count) {
        return -EINVAL;
    }
    return 0;
}
