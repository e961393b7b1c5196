/*
 * server.c - see server.h.
 */
#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>

#include "bench.h"
#include "server.h"

int bench_server_create(struct bench_server *s, const char *name)
{
    memset(s, 0, sizeof(*s));
    s->cpu = -1;
    snprintf(s->path, sizeof(s->path), "%s/%s.sock", bench_tmpdir(), name);
    return mu_ctx_create(&s->ctx, s->path, MU_DEV_PCI, NULL);
}

static void *server_thread(void *arg)
{
    struct bench_server *s = arg;
    cpu_set_t saved;

    if (s->cpu >= 0)
        bench_pin(s->cpu, &saved);
    mu_ctx_run(s->ctx);
    return NULL;
}

int bench_server_start(struct bench_server *s)
{
    int rc = mu_ctx_realize(s->ctx);

    if (rc < 0)
        return rc;
    if (pthread_create(&s->th, NULL, server_thread, s) != 0)
        return -EAGAIN;
    s->running = true;
    return 0;
}

void bench_server_stop(struct bench_server *s)
{
    if (s->running) {
        mu_ctx_stop(s->ctx);
        pthread_join(s->th, NULL);
        s->running = false;
    }
    if (s->ctx != NULL) {
        mu_ctx_destroy(s->ctx);
        s->ctx = NULL;
    }
}

ssize_t bench_bar_zero(mu_ctx_t *ctx, void *buf, size_t count,
                       uint64_t offset, bool is_write)
{
    (void)ctx;
    (void)offset;
    if (!is_write)
        memset(buf, 0, count);
    return (ssize_t)count;
}
