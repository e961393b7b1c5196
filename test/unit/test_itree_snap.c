/*
 * Unit tests for lib/itree_snap.c: the Eytzinger snapshot must answer every
 * point lookup exactly as a plain search of the same disjoint ranges does,
 * at every size (the implicit tree's shape changes with n), for points
 * before, inside, between and after the ranges, including ranges at 0 and
 * ending at 2^64-1.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>

#include "itree.h"
#include "itree_snap.h"

static uint64_t rng = 0x9e3779b97f4a7c15ull;

static uint64_t next(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

/* The range holding p in nodes[0..n) (sorted, disjoint), or NULL. */
static struct itree_node *model_at(struct itree_node *nodes, size_t n,
                                   uint64_t p)
{
    for (size_t i = 0; i < n; i++) {
        if (nodes[i].start <= p && p <= nodes[i].last)
            return &nodes[i];
    }
    return NULL;
}

static void check_point(const struct itree_snap *s, struct itree_node *nodes,
                        size_t n, uint64_t p)
{
    struct itree_node *want = model_at(nodes, n, p);
    struct itree_node *got = itree_snap_find(s, p);

    if (got != want)
        print_error("n=%zu p=%#llx: got %p want %p\n", n,
                    (unsigned long long)p, (void *)got, (void *)want);
    assert_ptr_equal(got, want);
}

/* n disjoint sorted ranges with gaps, the first optionally at 0 and the
 * last optionally ending at UINT64_MAX. */
static void make_ranges(struct itree_node *nodes, size_t n, bool edges)
{
    uint64_t at = edges ? 0 : 1 + next() % 64;

    for (size_t i = 0; i < n; i++) {
        uint64_t len = 1 + next() % 8;

        nodes[i].start = at;
        nodes[i].last = at + len - 1;
        at = nodes[i].last + 1 + (next() % 3);  /* gap 0..2: adjacency too */
    }
    if (edges && n > 0) {
        nodes[n - 1].last = UINT64_MAX;
        if (n > 1 && nodes[n - 1].start <= nodes[n - 2].last)
            nodes[n - 1].start = nodes[n - 2].last + 1;
    }
}

static void run_size(size_t n, bool edges)
{
    struct itree_node *nodes = calloc(n ? n : 1, sizeof(*nodes));
    size_t *order = calloc(n ? n : 1, sizeof(*order));
    struct itree t = ITREE_INIT;
    struct itree_snap s;

    assert_non_null(nodes);
    assert_non_null(order);
    make_ranges(nodes, n, edges);
    /* Insert in a shuffled order: the snapshot must not depend on it. */
    for (size_t i = 0; i < n; i++)
        order[i] = i;
    for (size_t i = n; i > 1; i--) {
        size_t j = next() % i, tmp = order[i - 1];

        order[i - 1] = order[j];
        order[j] = tmp;
    }
    for (size_t i = 0; i < n; i++)
        itree_insert(&t, &nodes[order[i]]);
    free(order);
    itree_snap_init(&s);
    assert_true(s.stale);
    assert_int_equal(itree_snap_build(&s, &t), 0);
    assert_false(s.stale);
    assert_int_equal(s.n, n);

    check_point(&s, nodes, n, 0);
    check_point(&s, nodes, n, UINT64_MAX);
    for (size_t i = 0; i < n; i++) {
        check_point(&s, nodes, n, nodes[i].start);
        check_point(&s, nodes, n, nodes[i].last);
        if (nodes[i].start > 0)
            check_point(&s, nodes, n, nodes[i].start - 1);
        if (nodes[i].last < UINT64_MAX)
            check_point(&s, nodes, n, nodes[i].last + 1);
    }
    for (int i = 0; i < 200; i++)
        check_point(&s, nodes, n, n ? next() % (nodes[n - 1].last + 2) : next());
    itree_snap_fini(&s);
    free(nodes);
}

static void test_every_small_size(void **state)
{
    (void)state;
    for (size_t n = 0; n <= 70; n++) {
        run_size(n, false);
        run_size(n, true);
    }
}

static void test_large_sizes(void **state)
{
    static const size_t sizes[] = { 127, 128, 129, 1000, 1023, 1024, 1025, 4097 };

    (void)state;
    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        run_size(sizes[i], false);
        run_size(sizes[i], true);
    }
}

/* After changes: invalidate, rebuild, and the answers follow the tree. */
static void test_rebuild_after_changes(void **state)
{
    struct itree_node nodes[300];
    struct itree t = ITREE_INIT;
    struct itree_snap s;
    bool in[300] = { false };
    size_t count = 0;

    (void)state;
    make_ranges(nodes, 300, true);
    itree_snap_init(&s);
    for (int step = 0; step < 3000; step++) {
        size_t i = next() % 300;

        if (in[i]) {
            itree_remove(&t, &nodes[i]);
            count--;
        } else {
            itree_insert(&t, &nodes[i]);
            count++;
        }
        in[i] = !in[i];
        itree_snap_invalidate(&s);
        if (step % 10 != 0)
            continue;
        assert_int_equal(itree_snap_build(&s, &t), 0);
        assert_int_equal(s.n, count);
        for (int k = 0; k < 50; k++) {
            size_t j = next() % 300;
            uint64_t p = nodes[j].start + next() % (nodes[j].last - nodes[j].start + 1);

            assert_ptr_equal(itree_snap_find(&s, p), in[j] ? &nodes[j] : NULL);
        }
    }
    itree_snap_fini(&s);
}

/* The rebuild is paid for: only after more than count / 32 stale lookups. */
static void test_want_rebuild(void **state)
{
    struct itree_snap s;
    int asked = 0;

    (void)state;
    itree_snap_init(&s);
    while (!itree_snap_want_rebuild(&s, 3200))
        asked++;
    assert_int_equal(asked, 100);
    itree_snap_invalidate(&s);
    assert_true(itree_snap_want_rebuild(&s, 1));    /* small: at once... */
    itree_snap_invalidate(&s);
    assert_false(itree_snap_want_rebuild(&s, 64));  /* ...large: later */
    itree_snap_fini(&s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_small_size),
        cmocka_unit_test(test_large_sizes),
        cmocka_unit_test(test_rebuild_after_changes),
        cmocka_unit_test(test_want_rebuild),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
