/*
 * clock.c - see clock.h.
 */
#include <time.h>

#include "clock.h"
#include "private.h"

uint64_t mu_now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

void mu_ctx_set_clock(struct mu_ctx *ctx, mu_clock_fn fn, void *arg)
{
    ctx->clock.fn = fn;
    ctx->clock.arg = arg;
}
