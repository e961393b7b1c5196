/*
 * Unit tests for lib/mig_fsm.c: every (current, goal) pair of the eight
 * VFIO v2 states plus an out-of-range one, for each of the four feature
 * sets a device can offer (STOP_COPY alone, + P2P, + PRE_COPY, + both).
 *
 * The reference is VFIO's own formulation, written here independently of
 * the breadth-first search under test: a next-hop table for the device
 * offering every state (the kernel's vfio_mig_get_next_state() table,
 * transcribed from its rules), and for devices offering fewer states, the
 * hop is followed again while it lands on a state the device lacks.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>

#include "mig_fsm.h"

enum { E = MIG_ERROR, S = MIG_STOP, R = MIG_RUNNING, SC = MIG_STOP_COPY,
       RS = MIG_RESUMING, RP = MIG_RUNNING_P2P, PC = MIG_PRE_COPY,
       PP = MIG_PRE_COPY_P2P };

/* next_full[cur][goal] with every feature. */
static const uint32_t next_full[8][8] = {
    /*        goal:  E  S   R   SC  RS  RP  PC  PP */
    [E]  = {         E, E,  E,  E,  E,  E,  E,  E },
    [S]  = {         E, S,  RP, SC, RS, RP, RP, RP },
    [R]  = {         E, RP, R,  RP, RP, RP, PC, RP },
    [SC] = {         E, S,  S,  SC, S,  S,  E,  E },
    [RS] = {         E, S,  S,  S,  RS, S,  E,  E },
    [RP] = {         E, S,  R,  S,  S,  RP, R,  PP },
    [PC] = {         E, R,  R,  PP, R,  R,  PC, PP },
    [PP] = {         E, RP, RP, SC, RP, RP, PC, PP },
};

static const uint32_t feature_sets[] = {
    MIG_F_STOP_COPY,
    MIG_F_STOP_COPY | MIG_F_P2P,
    MIG_F_STOP_COPY | MIG_F_PRE_COPY,
    MIG_F_STOP_COPY | MIG_F_P2P | MIG_F_PRE_COPY,
};

static bool ref_offered(uint32_t f, uint32_t s)
{
    if (s >= 8)
        return false;
    if ((s == RP || s == PP) && !(f & MIG_F_P2P))
        return false;
    if ((s == PC || s == PP) && !(f & MIG_F_PRE_COPY))
        return false;
    return true;
}

/* VFIO's rule: 0 and *next, or -EINVAL. */
static int ref_next(uint32_t f, uint32_t cur, uint32_t goal, uint32_t *next)
{
    uint32_t n;

    if (!ref_offered(f, cur) || !ref_offered(f, goal))
        return -EINVAL;
    n = next_full[cur][goal];
    while (!ref_offered(f, n))
        n = next_full[n][goal];
    if (n == E)
        return -EINVAL;
    *next = n;
    return 0;
}

/* Every pair, every feature set: same answer as VFIO's table. */
static void test_next_step_matches_vfio(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(feature_sets) / sizeof(feature_sets[0]); i++) {
        uint32_t f = feature_sets[i];

        for (uint32_t cur = 0; cur <= 8; cur++) {
            for (uint32_t goal = 0; goal <= 8; goal++) {
                uint32_t want = 99, got = 99;
                int rw = ref_next(f, cur, goal, &want);
                int rg = mig_next_step(f, cur, goal, &got);

                if (rw != rg || want != got)
                    fail_msg("flags %#x %s -> %s: want %d/%s, got %d/%s", f,
                             mig_state_name(cur), mig_state_name(goal), rw,
                             mig_state_name(want), rg, mig_state_name(got));
                if (rg < 0)
                    assert_int_equal(got, 99);      /* untouched */
            }
        }
    }
}

/* The whole path: direct arcs only, interior states never RESUMING and
 * saving only inside the saving group, and stepping with mig_next_step
 * walks the same states. */
static void test_paths_are_direct_arcs(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(feature_sets) / sizeof(feature_sets[0]); i++) {
        uint32_t f = feature_sets[i];

        for (uint32_t cur = 0; cur < 8; cur++) {
            for (uint32_t goal = 0; goal < 8; goal++) {
                uint32_t path[MIG_MAX_PATH], at = cur, nx = 0;
                int n = mig_path(f, cur, goal, path);

                if (n < 0) {
                    assert_int_equal(mig_next_step(f, cur, goal, &nx), n);
                    continue;
                }
                for (int k = 0; k < n; k++) {
                    assert_true(mig_arc_direct(f, at, path[k]));
                    if (k < n - 1) {
                        if (!mig_state_saving(cur) || !mig_state_saving(goal))
                            assert_false(mig_state_saving(path[k]));
                        assert_int_not_equal(path[k], MIG_RESUMING);
                    }
                    assert_int_equal(mig_next_step(f, at, goal, &nx), 0);
                    assert_int_equal(nx, path[k]);
                    at = path[k];
                }
                assert_int_equal(at, goal);
            }
        }
    }
}

/* Without P2P the direct arcs are exactly the protocol's nine (§3.13). */
static void test_direct_arcs_no_p2p(void **state)
{
    static const uint32_t arcs[][2] = {
        { R, S }, { SC, S }, { RS, S }, { PC, R }, { S, R }, { R, PC },
        { S, SC }, { PC, SC }, { S, RS },
    };
    uint32_t f = MIG_F_STOP_COPY | MIG_F_PRE_COPY;

    (void)state;
    for (uint32_t a = 0; a <= 8; a++) {
        for (uint32_t b = 0; b <= 8; b++) {
            bool want = false;

            for (size_t k = 0; k < sizeof(arcs) / sizeof(arcs[0]); k++)
                want |= arcs[k][0] == a && arcs[k][1] == b;
            if (mig_arc_direct(f, a, b) != want)
                fail_msg("%s -> %s", mig_state_name(a), mig_state_name(b));
        }
    }
}

/* With P2P, RUNNING and STOP are two arcs apart, through RUNNING_P2P. */
static void test_p2p_arcs(void **state)
{
    uint32_t f = MIG_F_STOP_COPY | MIG_F_P2P | MIG_F_PRE_COPY;
    uint32_t path[MIG_MAX_PATH];

    (void)state;
    assert_false(mig_arc_direct(f, R, S));
    assert_false(mig_arc_direct(f, S, R));
    assert_false(mig_arc_direct(f, PC, SC));
    assert_int_equal(mig_path(f, R, S, path), 2);
    assert_int_equal(path[0], RP);
    assert_int_equal(mig_path(f, PC, SC, path), 2);
    assert_int_equal(path[0], PP);
}

/* Some paths spelled out: multi-step arcs and the refused ones. */
static void test_named_paths(void **state)
{
    uint32_t f = MIG_F_STOP_COPY | MIG_F_PRE_COPY;
    uint32_t path[MIG_MAX_PATH];

    (void)state;
    assert_int_equal(mig_path(f, R, SC, path), 2);
    assert_int_equal(path[0], S);
    assert_int_equal(path[1], SC);
    assert_int_equal(mig_path(f, SC, R, path), 2);
    assert_int_equal(path[0], S);
    assert_int_equal(mig_path(f, RS, R, path), 2);
    assert_int_equal(mig_path(f, PC, RS, path), 3);
    assert_int_equal(path[0], R);
    assert_int_equal(path[1], S);
    assert_int_equal(mig_path(f, S, PC, path), 2);
    assert_int_equal(path[0], R);
    assert_int_equal(mig_path(f, S, S, path), 0);
    assert_int_equal(mig_path(f, SC, PC, path), -EINVAL);
    assert_int_equal(mig_path(f, RS, PC, path), -EINVAL);
    assert_int_equal(mig_path(f, R, E, path), -EINVAL);
    assert_int_equal(mig_path(f, E, R, path), -EINVAL);
    assert_int_equal(mig_path(f, E, E, path), -EINVAL);
    assert_int_equal(mig_path(f, R, 5, path), -EINVAL);     /* not offered */
    assert_int_equal(mig_path(f, R, 7, path), -EINVAL);
    assert_int_equal(mig_path(f, R, 8, path), -EINVAL);
    assert_int_equal(mig_path(f, 0xffffffffu, R, path), -EINVAL);
    /* PRE_COPY not offered */
    assert_int_equal(mig_path(MIG_F_STOP_COPY, R, PC, path), -EINVAL);
    /* STOP_COPY is mandatory: nothing works without it. */
    assert_int_equal(mig_path(0, R, S, path), -EINVAL);
    assert_int_equal(mig_path(MIG_F_PRE_COPY, R, S, path), -EINVAL);
}

static void test_predicates(void **state)
{
    (void)state;
    assert_true(mig_state_running(R));
    assert_true(mig_state_running(RP));
    assert_true(mig_state_running(PC));
    assert_true(mig_state_running(PP));
    assert_false(mig_state_running(S));
    assert_false(mig_state_running(SC));
    assert_false(mig_state_running(RS));
    assert_false(mig_state_running(E));
    assert_true(mig_state_saving(SC));
    assert_true(mig_state_saving(PC));
    assert_true(mig_state_saving(PP));
    assert_false(mig_state_saving(RS));
    assert_string_equal(mig_state_name(99), "invalid");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_next_step_matches_vfio),
        cmocka_unit_test(test_paths_are_direct_arcs),
        cmocka_unit_test(test_direct_arcs_no_p2p),
        cmocka_unit_test(test_p2p_arcs),
        cmocka_unit_test(test_named_paths),
        cmocka_unit_test(test_predicates),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
