/*
 * clock.h - the one clock the library reads time from.
 *
 * Every timeout and age the library decides on - a message not completed
 * within the receive timeout, the context thread's wait for a reply to its
 * own DMA request, how long a DMA mapping has been idle - compares times
 * read here, so a test can put a context on a clock of its own and step
 * it: the decision logic is then exercised with no sleep and no race.
 *
 * By default the clock is CLOCK_MONOTONIC, the clock the real waits run
 * on (poll, the housekeeping timerfd, the client's deadlines: those always
 * use mu_now_ns(), since a sleep cannot be faked).  A context's clock is
 * replaced only by mu_ctx_set_clock(), an internal hook for tests, not
 * part of the installed API.
 */
#ifndef MUSER_CLOCK_H
#define MUSER_CLOCK_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

/* Nanoseconds on the test's clock; never 0 (0 means "no time" to the
 * library: no partial message, not aging), and never going back. */
typedef uint64_t (*mu_clock_fn)(void *arg);

struct mu_clock {
    mu_clock_fn fn;     /* NULL: the system's monotonic clock */
    void *arg;
};

/* CLOCK_MONOTONIC in nanoseconds. */
uint64_t mu_now_ns(void);

/* The time on c (NULL: the system's). */
static inline uint64_t mu_clock_ns(const struct mu_clock *c)
{
    if (c != NULL && c->fn != NULL)
        return c->fn(c->arg);
    return mu_now_ns();
}

/*
 * The same, where a few milliseconds of error do not matter and the read
 * is on a hot path (DMA idle ages): CLOCK_MONOTONIC_COARSE is a plain
 * memory read.  It lags the precise clock by up to a tick, so never mix
 * the two in one comparison.
 */
static inline uint64_t mu_clock_coarse_ns(const struct mu_clock *c)
{
    struct timespec ts;

    if (c != NULL && c->fn != NULL)
        return c->fn(c->arg);
    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/*
 * Test hook: put a context (its timeouts, its DMA ages) on fn(arg), or
 * back on the system's clock with fn NULL.  Before mu_ctx_realize() and
 * before any DMA region exists: it is not synchronized with the threads
 * that read the clock.
 */
struct mu_ctx;
void mu_ctx_set_clock(struct mu_ctx *ctx, mu_clock_fn fn, void *arg);

#endif
