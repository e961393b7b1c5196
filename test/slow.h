/*
 * slow.h - how much slower than a plain build on an idle machine a test
 * runs, to scale its deadlines by (header only: the unit tests, the
 * integration harness and the nvme test share it).
 *
 * A deadline in a test is a failure bound, never the thing tested, so it
 * must be far longer than the work even where the work is slow:
 *
 *   - under valgrind (the program itself, RUNNING_ON_VALGRIND, or
 *     MU_VALGRIND=1, which `make test-valgrind` sets and which also makes
 *     the harness start device programs under valgrind): 20 times;
 *   - ThreadSanitizer builds: 5 times; ASan builds: 3 times (detected at
 *     compile time, so a sanitized test binary knows without being told);
 *   - and times MU_TEST_SLOW=N (1..1000) on top, for a machine known to
 *     be loaded or slow.
 */
#ifndef MUSER_TEST_SLOW_H
#define MUSER_TEST_SLOW_H

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#if defined(__has_include)
#if __has_include(<valgrind/valgrind.h>)
#include <valgrind/valgrind.h>
#endif
#endif

#if defined(__SANITIZE_THREAD__)
#define MU_TEST_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define MU_TEST_TSAN 1
#endif
#endif

#if defined(__SANITIZE_ADDRESS__)
#define MU_TEST_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define MU_TEST_ASAN 1
#endif
#endif

/* MU_VALGRIND=1: the run is under valgrind, device programs too. */
static inline bool mu_test_valgrind_env(void)
{
    const char *v = getenv("MU_VALGRIND");

    return v != NULL && strcmp(v, "1") == 0;
}

/* This program runs under valgrind (or was told it does). */
static inline bool mu_test_under_valgrind(void)
{
#ifdef RUNNING_ON_VALGRIND
    if (RUNNING_ON_VALGRIND)
        return true;
#endif
    return mu_test_valgrind_env();
}

static inline int mu_test_slow_factor(void)
{
    const char *env = getenv("MU_TEST_SLOW");
    int f = 1;

#if defined(MU_TEST_TSAN)
    f = 5;
#elif defined(MU_TEST_ASAN)
    f = 3;
#endif
    if (mu_test_under_valgrind())
        f = 20;
    if (env != NULL && *env != '\0') {
        char *end;
        long n = strtol(env, &end, 10);

        if (*end == '\0' && n >= 1 && n <= 1000)
            f *= (int)n;
    }
    return f;
}

#endif
