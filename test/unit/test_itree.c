/*
 * Unit and randomized property tests for lib/itree.c.
 *
 * The property test replays a deterministic xorshift64 stream (seed printed;
 * override with ITREE_SEED=<n>) against a naive array model and runs
 * itree_check() after every single operation, so a failure pinpoints the
 * first operation that broke an invariant.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>

#include "itree.h"

#define MAX UINT64_MAX

struct range {
    int id;                 /* insertion sequence, for tie-order checks */
    struct itree_node node;
    bool live;
    size_t pos;             /* index in the live[] array of the model */
    unsigned mark;          /* query generation that last visited it */
};

static struct range *
to_range(const struct itree_node *n)
{
    return n == NULL ? NULL : itree_entry(n, struct range, node);
}

static bool
overlaps(const struct itree_node *n, uint64_t s, uint64_t l)
{
    return n->start <= l && s <= n->last;
}

static void
add(struct itree *t, struct range *r, int id, uint64_t s, uint64_t l)
{
    r->id = id;
    r->node.start = s;
    r->node.last = l;
    itree_insert(t, &r->node);
    assert_int_equal(itree_check(t), 0);
}

static void
del(struct itree *t, struct range *r)
{
    itree_remove(t, &r->node);
    assert_int_equal(itree_check(t), 0);
}

/* Walk first/next over [s, l]; the ids must be exactly want[], in order. */
static void
expect_query(const struct itree *t, uint64_t s, uint64_t l,
             const int *want, size_t nwant)
{
    struct itree_node *n;
    size_t k = 0;

    for (n = itree_first(t, s, l); n != NULL; n = itree_next(n, s, l)) {
        assert_true(k < nwant);
        assert_true(overlaps(n, s, l));
        assert_int_equal(to_range(n)->id, want[k++]);
    }
    assert_int_equal(k, nwant);
}

/* Ids expected from first/next over [s, l], in order. */
#define EXPECT(t, s, l, ...) do {                                       \
        const int want_[] = { __VA_ARGS__ };                            \
        expect_query(t, s, l, want_, sizeof(want_) / sizeof(want_[0])); \
    } while (0)

#define EXPECT_NONE(t, s, l) expect_query(t, s, l, NULL, 0)

/* find_point(p) must equal first(p, p) and be the expected id (-1: none). */
static void
expect_point(const struct itree *t, uint64_t p, int id)
{
    struct itree_node *n = itree_find_point(t, p);

    assert_ptr_equal(n, itree_first(t, p, p));
    assert_int_equal(n == NULL ? -1 : to_range(n)->id, id);
}

/* Descend to some leaf, preferring left children. */
static struct itree_node *
some_leaf(struct itree_node *n)
{
    while (n->left != NULL || n->right != NULL) {
        n = n->left != NULL ? n->left : n->right;
    }
    return n;
}

static void
test_empty(void **state)
{
    struct itree t = ITREE_INIT;

    (void)state;
    assert_int_equal(itree_check(&t), 0);
    assert_null(itree_min(&t));
    assert_null(itree_first(&t, 0, MAX));
    assert_null(itree_first(&t, MAX, MAX));
    assert_null(itree_find_point(&t, 0));
    assert_null(itree_find_point(&t, MAX));
}

static void
test_single(void **state)
{
    struct itree t;
    struct range r;

    (void)state;
    itree_init(&t);
    add(&t, &r, 0, 10, 20);
    assert_int_equal(t.count, 1);
    assert_ptr_equal(itree_min(&t), &r.node);
    assert_null(itree_succ(&r.node));
    EXPECT_NONE(&t, 0, 9);
    EXPECT(&t, 0, 10, 0);
    EXPECT(&t, 15, 15, 0);
    EXPECT(&t, 20, 30, 0);
    EXPECT(&t, 0, MAX, 0);
    EXPECT_NONE(&t, 21, MAX);
    expect_point(&t, 9, -1);
    expect_point(&t, 10, 0);
    expect_point(&t, 20, 0);
    expect_point(&t, 21, -1);
    del(&t, &r);
    assert_null(t.root);
    assert_int_equal(t.count, 0);
}

static void
test_adjacent(void **state)
{
    struct itree t = ITREE_INIT;
    struct range r[3];

    (void)state;
    add(&t, &r[1], 1, 10, 19);
    add(&t, &r[0], 0, 0, 9);
    add(&t, &r[2], 2, 20, 29);
    EXPECT(&t, 10, 10, 1);
    EXPECT(&t, 19, 19, 1);
    EXPECT(&t, 9, 10, 0, 1);
    EXPECT(&t, 9, 20, 0, 1, 2);
    EXPECT_NONE(&t, 30, MAX);
    expect_point(&t, 9, 0);
    expect_point(&t, 10, 1);
    expect_point(&t, 19, 1);
    expect_point(&t, 20, 2);
    expect_point(&t, 30, -1);
}

static void
test_nested(void **state)
{
    struct itree t = ITREE_INIT;
    struct range r[6];

    (void)state;
    /* Insert inner-first so the outer ranges are not simply the root path. */
    for (int i = 5; i >= 0; i--) {
        add(&t, &r[i], i, 10 * i, 100 - 10 * i);
    }
    EXPECT(&t, 50, 50, 0, 1, 2, 3, 4, 5);
    EXPECT(&t, 0, 5, 0);
    EXPECT(&t, 95, 200, 0);
    EXPECT(&t, 35, 35, 0, 1, 2, 3);
    EXPECT(&t, 61, 69, 0, 1, 2, 3);
    EXPECT_NONE(&t, 101, MAX);
    expect_point(&t, 45, 0);
    expect_point(&t, 100, 0);
    expect_point(&t, 101, -1);
}

/* A long range hidden among short ones is found only via subtree_last. */
static void
test_long_among_short(void **state)
{
    struct itree t = ITREE_INIT;
    static struct range r[201];

    (void)state;
    for (int i = 0; i < 200; i++) {
        if (i == 60) {
            add(&t, &r[200], 200, 101, 100000);
        }
        add(&t, &r[i], i, 2 * i, 2 * i);
    }
    expect_point(&t, 5000, 200);
    expect_point(&t, 100, 50);
    expect_point(&t, 101, 200);
    expect_point(&t, 102, 200);
    EXPECT(&t, 397, 400, 200, 199);
    EXPECT_NONE(&t, 100001, MAX);
}

static void
test_identical(void **state)
{
    struct itree t = ITREE_INIT;
    struct range r[8];

    (void)state;
    for (int i = 0; i < 5; i++) {
        add(&t, &r[i], i, 100, 200);
    }
    add(&t, &r[5], 5, 50, 99);
    add(&t, &r[6], 6, 150, 150);
    add(&t, &r[7], 7, 150, 150);
    EXPECT(&t, 150, 150, 0, 1, 2, 3, 4, 6, 7);
    EXPECT(&t, 99, 100, 5, 0, 1, 2, 3, 4);
    expect_point(&t, 100, 0);
    del(&t, &r[0]);
    del(&t, &r[2]);
    EXPECT(&t, 0, MAX, 5, 1, 3, 4, 6, 7);
    expect_point(&t, 100, 1);
    del(&t, &r[6]);
    EXPECT(&t, 150, 150, 1, 3, 4, 7);
}

static void
test_single_byte(void **state)
{
    struct itree t = ITREE_INIT;
    struct range r[34];

    (void)state;
    for (int i = 0; i < 32; i++) {
        add(&t, &r[i], i, 2 * i, 2 * i);
    }
    add(&t, &r[32], 32, MAX, MAX);
    add(&t, &r[33], 33, MAX - 1, MAX - 1);
    EXPECT_NONE(&t, 1, 1);
    EXPECT(&t, 2, 2, 1);
    EXPECT(&t, 1, 5, 1, 2);
    EXPECT_NONE(&t, 63, MAX - 2);
    EXPECT(&t, MAX, MAX, 32);
    EXPECT(&t, MAX - 1, MAX, 33, 32);
    expect_point(&t, 0, 0);
    expect_point(&t, 62, 31);
    expect_point(&t, 63, -1);
    expect_point(&t, MAX - 1, 33);
    expect_point(&t, MAX, 32);
}

static void
test_full_range(void **state)
{
    struct itree t = ITREE_INIT;
    struct range r[4];

    (void)state;
    add(&t, &r[1], 1, 5, 10);
    add(&t, &r[2], 2, 20, 30);
    add(&t, &r[0], 0, 0, MAX);
    add(&t, &r[3], 3, 0, 0);
    EXPECT(&t, 0, 0, 0, 3);
    EXPECT(&t, 11, 19, 0);
    EXPECT(&t, MAX, MAX, 0);
    EXPECT(&t, 0, MAX, 0, 3, 1, 2);
    expect_point(&t, 0, 0);
    expect_point(&t, MAX, 0);
    del(&t, &r[0]);
    expect_point(&t, 0, 3);
    expect_point(&t, 15, -1);
    EXPECT_NONE(&t, MAX, MAX);
}

static void
test_top_of_space(void **state)
{
    struct itree t = ITREE_INIT;
    struct range r[5];

    (void)state;
    add(&t, &r[0], 0, 0, 5);
    add(&t, &r[3], 3, MAX, MAX);
    add(&t, &r[2], 2, MAX - 10, MAX);
    add(&t, &r[1], 1, MAX - 100, MAX - 11);
    add(&t, &r[4], 4, 1000, MAX);
    EXPECT(&t, MAX, MAX, 4, 2, 3);
    EXPECT(&t, MAX - 11, MAX - 10, 4, 1, 2);
    EXPECT_NONE(&t, 6, 999);
    EXPECT(&t, 0, MAX, 0, 4, 1, 2, 3);
    expect_point(&t, MAX, 4);
    expect_point(&t, MAX - 11, 4);
    del(&t, &r[4]);
    expect_point(&t, MAX, 2);
    expect_point(&t, MAX - 11, 1);
    expect_point(&t, MAX - 101, -1);
    EXPECT_NONE(&t, 6, MAX - 101);
    EXPECT(&t, MAX - 9, MAX, 2, 3);
}

/* Remaining nodes, in order, must be exactly those with alive[i] set. */
static void
expect_contents(const struct itree *t, const struct range *r,
                const bool *alive, int n)
{
    const struct itree_node *it = itree_min(t);

    for (int i = 0; i < n; i++) {
        if (alive[i]) {
            assert_ptr_equal(it, &r[i].node);
            it = itree_succ(it);
        }
    }
    assert_null(it);
}

static void
test_remove_shapes(void **state)
{
    enum { N = 63 };
    static struct range r[N];
    bool alive[N];
    struct itree t = ITREE_INIT;
    struct itree_node *n;

    (void)state;
    for (int i = 0; i < N; i++) {
        add(&t, &r[i], i, 10 * i, 10 * i + 15);
        alive[i] = true;
    }
    /* Root, then a leaf, then an internal node with two children. */
    for (int round = 0; t.root != NULL; round++) {
        n = t.root;
        if (round % 3 == 1) {
            n = some_leaf(n);
        } else if (round % 3 == 2 && n->left != NULL &&
                   n->left->left != NULL && n->left->right != NULL) {
            n = n->left;
        }
        alive[to_range(n)->id] = false;
        del(&t, to_range(n));
        expect_contents(&t, r, alive, N);
        for (int i = 0; i < N; i++) {
            expect_point(&t, 10 * i + 5, i > 0 && alive[i - 1] ? i - 1 :
                         alive[i] ? i : -1);
        }
    }
    assert_int_equal(t.count, 0);
}

/*
 * Sorted insertion is the worst case for an unbalanced tree; itree_check()
 * proves the colouring, hence height <= 2 log2(n + 1).
 */
static void
test_sequential_bulk(void **state)
{
    enum { N = 20000 };
    struct range *r = calloc(N, sizeof(*r));
    struct itree t = ITREE_INIT;

    (void)state;
    assert_non_null(r);
    for (int pass = 0; pass < 2; pass++) {
        for (int i = 0; i < N; i++) {
            int k = pass == 0 ? i : N - 1 - i;

            r[k].id = k;
            r[k].node.start = (uint64_t)k * 4;
            r[k].node.last = (uint64_t)k * 4 + 5;
            itree_insert(&t, &r[k].node);
        }
        assert_int_equal(itree_check(&t), 0);
        expect_point(&t, 4 * 777 + 4, 777);
        expect_point(&t, 4 * (N - 1) + 5, N - 1);
        expect_point(&t, 4 * (N - 1) + 6, -1);
        for (int i = 0; i < N; i++) {
            itree_remove(&t, &r[pass == 0 ? i : N - 1 - i].node);
            if (i % 997 == 0) {
                assert_int_equal(itree_check(&t), 0);
            }
        }
        assert_null(t.root);
        assert_int_equal(itree_check(&t), 0);
    }
    free(r);
}

/* ---- randomized model test ---- */

static uint64_t rng;

static uint64_t
rnd(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

static uint64_t
rnd_below(uint64_t n)
{
    return rnd() % n;
}

/* Uniform-ish in [a, b] without ever computing MAX + 1. */
static uint64_t
rnd_between(uint64_t a, uint64_t b)
{
    return b - a == MAX ? rnd() : a + rnd_below(b - a + 1);
}

enum { POOL = 256 };

struct model {
    struct itree t;
    struct range pool[POOL];
    struct range *live[POOL];
    size_t nlive;
    int next_id;
    unsigned gen;
    size_t target;          /* size the tree is drifting towards */
    bool grow;
    bool narrow;            /* insert only short ranges, so queries miss */
};

static struct range *
random_live(struct model *m)
{
    return m->nlive == 0 ? NULL : m->live[rnd_below(m->nlive)];
}

static uint64_t
pick_point(struct model *m)
{
    struct range *r = random_live(m);

    switch (rnd_below(6)) {
    case 0: return rnd_below(80);
    case 1: return MAX - rnd_below(80);
    case 2: return rnd_below(2) ? 0 : MAX;
    case 3: return rnd();
    default:
        if (r == NULL) {
            return rnd_below(80);
        }
        switch (rnd_below(4)) {
        case 0: return r->node.start;
        case 1: return r->node.last;
        case 2: return r->node.start - (r->node.start > 0);
        default: return r->node.last + (r->node.last < MAX);
        }
    }
}

/* Ranges biased towards edge cases and frequent overlaps. */
static void
gen_range(struct model *m, uint64_t *s, uint64_t *l)
{
    struct range *r = random_live(m);
    uint64_t a, b;

    switch (rnd_below(16)) {
    case 0: a = 0; b = MAX; break;
    case 1: a = 0; b = rnd_below(2) ? rnd_below(64) : rnd(); break;
    case 2: b = MAX; a = rnd_below(2) ? MAX - rnd_below(64) : rnd(); break;
    case 3: a = b = pick_point(m); break;
    case 4: b = MAX - rnd_below(64); a = b - rnd_below(16); break;
    case 5: a = rnd(); b = rnd(); break;
    case 6: /* identical to a live range */
        a = r != NULL ? r->node.start : 3;
        b = r != NULL ? r->node.last : 3;
        break;
    case 7: /* nested in a live range */
        a = r != NULL ? rnd_between(r->node.start, r->node.last) : 7;
        b = r != NULL ? rnd_between(a, r->node.last) : 7;
        break;
    case 8: /* adjacent to a live range, on either side */
        if (r != NULL && rnd_below(2) && r->node.last < MAX) {
            a = r->node.last + 1;
            b = a + rnd_below(16);
            b = b < a ? MAX : b;
            break;
        }
        if (r != NULL && r->node.start > 0) {
            b = r->node.start - 1;
            a = b - (b < 16 ? rnd_below(b + 1) : rnd_below(16));
            break;
        }
        /* fall through */
    default: /* small and clustered, so overlaps are frequent */
        a = rnd_below(64);
        b = a + rnd_below(16);
        break;
    }
    *s = a < b ? a : b;
    *l = a < b ? b : a;
}

static void
model_insert(struct model *m)
{
    struct range *r = NULL;

    for (int i = 0; i < POOL; i++) {
        if (!m->pool[i].live) {
            r = &m->pool[i];
            break;
        }
    }
    if (r == NULL) {
        return;
    }
    do {
        gen_range(m, &r->node.start, &r->node.last);
    } while (m->narrow && r->node.last - r->node.start > 0xffff);
    r->id = m->next_id++;
    r->live = true;
    r->pos = m->nlive;
    m->live[m->nlive++] = r;
    itree_insert(&m->t, &r->node);
}

static void
model_remove(struct model *m)
{
    struct range *r;

    if (m->nlive == 0) {
        return;
    }
    /* Favour structurally interesting victims now and then. */
    switch (rnd_below(8)) {
    case 0: r = to_range(m->t.root); break;
    case 1: r = to_range(itree_min(&m->t)); break;
    default: r = random_live(m); break;
    }
    itree_remove(&m->t, &r->node);
    r->live = false;
    m->live[r->pos] = m->live[--m->nlive];
    m->live[r->pos]->pos = r->pos;
}

static void
model_query(struct model *m, uint64_t s, uint64_t l)
{
    struct itree_node *n;
    struct range *r, *prev = NULL;
    size_t found = 0, want = 0;

    m->gen++;
    for (n = itree_first(&m->t, s, l); n != NULL; n = itree_next(n, s, l)) {
        r = to_range(n);
        assert_true(r->live && overlaps(n, s, l));
        assert_true(r->mark != m->gen);     /* each node exactly once */
        /* Ascending start; equal starts in insertion order (see itree.h). */
        assert_true(prev == NULL || prev->node.start < n->start ||
                    (prev->node.start == n->start && prev->id < r->id));
        r->mark = m->gen;
        prev = r;
        found++;
    }
    for (size_t i = 0; i < m->nlive; i++) {
        want += overlaps(&m->live[i]->node, s, l);
    }
    assert_int_equal(found, want);
}

static void
model_point(struct model *m, uint64_t p)
{
    struct itree_node *n = itree_find_point(&m->t, p);
    const struct itree_node *best = NULL;

    assert_ptr_equal(n, itree_first(&m->t, p, p));
    for (size_t i = 0; i < m->nlive; i++) {
        const struct itree_node *c = &m->live[i]->node;

        if (overlaps(c, p, p) && (best == NULL || c->start < best->start)) {
            best = c;
        }
    }
    /* Any of several equal-start candidates is acceptable here. */
    assert_true(best == NULL ? n == NULL :
                n != NULL && overlaps(n, p, p) && n->start == best->start);
}

/*
 * Drift the tree size between random targets, so that empty, tiny, full and
 * mid-sized trees (and the transitions between them) all get exercised.
 */
static void
retarget(struct model *m)
{
    if (m->grow ? m->nlive < m->target : m->nlive > m->target) {
        return;
    }
    switch (rnd_below(8)) {
    case 0: m->target = 0; break;
    case 1: m->target = POOL; break;
    case 2: case 3: m->target = rnd_below(8); break;
    default: m->target = rnd_below(POOL + 1); break;
    }
    m->grow = m->target > m->nlive;
    m->narrow = rnd_below(2);
}

static void
test_random_model(void **state)
{
    enum { STEPS = 200000 };
    struct model *m = calloc(1, sizeof(*m));
    const char *env = getenv("ITREE_SEED");
    uint64_t seed = env != NULL ? strtoull(env, NULL, 0) : 0x9e3779b97f4a7c15ull;

    (void)state;
    assert_non_null(m);
    rng = seed != 0 ? seed : 1;
    print_message("itree random test seed: 0x%llx (ITREE_SEED)\n",
                  (unsigned long long)rng);
    itree_init(&m->t);
    for (int step = 0; step < STEPS; step++) {
        uint64_t op = rnd_below(100), s, l;

        retarget(m);
        if (op < (m->grow ? 45u : 15u)) {
            model_insert(m);
        } else if (op < 60) {
            model_remove(m);
        } else if (op < 80) {
            gen_range(m, &s, &l);
            model_query(m, s, l);
        } else {
            model_point(m, pick_point(m));
        }
        assert_int_equal(itree_check(&m->t), 0);
        assert_int_equal(m->t.count, m->nlive);
    }
    free(m);
}

/* ---- corruption detection ---- */

static bool
has_red_children(const struct itree_node *n)
{
    return n->left != NULL && n->left->red && n->right != NULL && n->right->red;
}

#define CORRUPT(t, lvalue, bad) do {                    \
        __typeof__(lvalue) saved_ = (lvalue);           \
        (lvalue) = (bad);                               \
        assert_int_equal(itree_check(t), -EINVAL);      \
        (lvalue) = saved_;                              \
        assert_int_equal(itree_check(t), 0);            \
    } while (0)

static void
test_check_detects_corruption(void **state)
{
    enum { N = 21 };    /* shape known to contain both node kinds below */
    static struct range r[N];
    struct itree t = ITREE_INIT;
    struct itree_node *leaf, *root, *min, *next, *bl, *flip;
    struct itree one = ITREE_INIT;
    struct range lone;

    (void)state;
    /* A lone red root breaks nothing but the root-is-black rule. */
    add(&one, &lone, 0, 5, 5);
    CORRUPT(&one, lone.node.red, true);

    for (int i = 0; i < N; i++) {
        add(&t, &r[i], i, 10 * i, 10 * i + 1000);
    }
    root = t.root;
    leaf = some_leaf(root);
    min = itree_min(&t);
    next = itree_succ(min);
    /* Black leaf under a black parent: making it red breaks only height. */
    bl = min;
    while (bl != NULL && (bl->red || bl != some_leaf(bl) || bl->parent->red)) {
        bl = itree_succ(bl);
    }
    /* Black node with red children under a red parent, for a colour flip. */
    flip = min;
    while (flip != NULL && (flip->red || !has_red_children(flip) ||
                            flip->parent == NULL || !flip->parent->red)) {
        flip = itree_succ(flip);
    }
    assert_non_null(bl);
    assert_non_null(flip);

    CORRUPT(&t, root->red, true);
    CORRUPT(&t, root->subtree_last, root->subtree_last - 1);
    CORRUPT(&t, leaf->subtree_last, leaf->last + 1);
    CORRUPT(&t, bl->red, true);                     /* black height */
    CORRUPT(&t, root->left->parent, root->left);    /* parent link */
    CORRUPT(&t, min->start, next->start + 1);       /* order */
    CORRUPT(&t, root->last, root->start - 1);       /* start > last */
    CORRUPT(&t, leaf->left, root);                  /* cycle */
    CORRUPT(&t, root->right, root->left);           /* shared child */
    CORRUPT(&t, root->parent, leaf);
    CORRUPT(&t, t.count, t.count + 1);
    CORRUPT(&t, t.count, t.count - 1);

    /* Flip keeps black heights equal but makes a red-red pair. */
    flip->red = true;
    flip->left->red = flip->right->red = false;
    assert_int_equal(itree_check(&t), -EINVAL);
    flip->red = false;
    flip->left->red = flip->right->red = true;
    assert_int_equal(itree_check(&t), 0);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_empty),
        cmocka_unit_test(test_single),
        cmocka_unit_test(test_adjacent),
        cmocka_unit_test(test_nested),
        cmocka_unit_test(test_long_among_short),
        cmocka_unit_test(test_identical),
        cmocka_unit_test(test_single_byte),
        cmocka_unit_test(test_full_range),
        cmocka_unit_test(test_top_of_space),
        cmocka_unit_test(test_remove_shapes),
        cmocka_unit_test(test_sequential_bulk),
        cmocka_unit_test(test_random_model),
        cmocka_unit_test(test_check_detects_corruption),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
