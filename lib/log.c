/*
 * log.c - the context's log sink.
 *
 * A device needs to know why a client was dropped, so every refusal in the
 * library goes through here with a level; the device picks where it goes.
 * Formatting happens only for messages that will be kept, so debug lines
 * cost a comparison when they are off.
 */
#include <errno.h>
#include <stdio.h>

#include "private.h"

static const char *const level_names[] = {
    [MU_LOG_ERR] = "error",
    [MU_LOG_WARN] = "warning",
    [MU_LOG_INFO] = "info",
    [MU_LOG_DEBUG] = "debug",
};

void mu_log(mu_ctx_t *ctx, enum mu_log_level level, const char *fmt, ...)
{
    char buf[512];
    va_list ap;

    if (ctx == NULL || level > ctx->log_level)
        return;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    if (ctx->log_cb != NULL) {
        ctx->log_cb(ctx, level, buf);
        return;
    }
    fprintf(stderr, "muser[%s] %s: %s\n", ctx->path ? ctx->path : "?",
            level_names[level], buf);
}

int mu_ctx_set_log(mu_ctx_t *ctx, mu_log_cb_t cb, enum mu_log_level level)
{
    if (ctx->realized)
        return -EBUSY;
    ctx->log_cb = cb;
    ctx->log_level = level > MU_LOG_DEBUG ? MU_LOG_DEBUG : level;
    return 0;
}

int mu_refuse(mu_ctx_t *ctx, int err, const char *fmt, ...)
{
    va_list ap;

    if (ctx == NULL || !mu_log_debug_on(ctx) || ctx->why != NULL)
        return err;
    va_start(ap, fmt);
    vsnprintf(ctx->why_buf, sizeof(ctx->why_buf), fmt, ap);
    va_end(ap);
    ctx->why = ctx->why_buf;
    return err;
}
