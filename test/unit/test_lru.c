/*
 * Unit tests for the lazily ordered LRU list (lib/lru.c): after any mix of
 * uses, deletions and reads of the order, the list is exactly what moving
 * each node to the tail at each use would have made.  A reference model
 * (an array kept in that order the slow way) checks random runs.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdbool.h>
#include <string.h>

#include "lru.h"

#define N 64

static struct lru l;
static struct lru_node nodes[N];
static int model[N], model_n;       /* least recently used first */

static void model_del(int id)
{
    for (int i = 0; i < model_n; i++) {
        if (model[i] == id) {
            memmove(&model[i], &model[i + 1],
                    (size_t)(model_n - i - 1) * sizeof(model[0]));
            model_n--;
            return;
        }
    }
}

static void touch(int id)
{
    lru_touch(&l, &nodes[id]);
    model_del(id);
    model[model_n++] = id;
}

static void del(int id)
{
    lru_del(&l, &nodes[id]);
    model_del(id);
}

/* The settled list, forwards and backwards, is the model. */
static void check(void)
{
    struct lru_node *n = lru_oldest(&l), *prev = NULL;
    int i = 0;

    assert_null(l.pending);
    for (; n != NULL; prev = n, n = n->next, i++) {
        assert_true(i < model_n);
        assert_ptr_equal(n, &nodes[model[i]]);
        assert_ptr_equal(n->prev, prev);
        assert_true(n->listed);
        assert_false(n->pending);
    }
    assert_int_equal(i, model_n);
    assert_ptr_equal(l.tail, prev);
}

static void reset(void)
{
    lru_init(&l);
    for (int i = 0; i < N; i++)
        lru_node_init(&nodes[i]);
    model_n = 0;
}

static void test_basic_order(void **state)
{
    (void)state;
    reset();
    assert_null(lru_oldest(&l));
    touch(1);
    touch(2);
    touch(3);
    check();
    /* Uses without a read in between: only the last of each counts. */
    touch(1);
    touch(2);
    touch(1);
    check();                            /* 3 2 1 */
    /* The tail used again, nothing pending: stays put. */
    touch(1);
    check();
    /* The tail used again after another: behind that one. */
    touch(3);
    touch(1);
    check();                            /* 2 3 1 */
    /* Deleting a pending node and a settled one. */
    touch(2);
    del(2);
    del(3);
    check();                            /* 1 */
    del(1);
    del(1);                             /* on neither: no-op */
    check();
    assert_null(l.head);
    assert_null(l.tail);
}

static void test_random_against_model(void **state)
{
    uint64_t s = 0x2545f4914f6cdd1dull;

    (void)state;
    for (int round = 0; round < 50; round++) {
        reset();
        for (int op = 0; op < 2000; op++) {
            int id, what;

            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            id = (int)(s % N);
            what = (int)((s >> 32) % 16);
            if (what < 11)
                touch(id);
            else if (what < 14)
                del(id);
            else if (what == 14)
                check();
            else
                lru_settle(&l);
        }
        check();
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_basic_order),
        cmocka_unit_test(test_random_against_model),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
