/*
 * server.h - the in-process server the rtt, irq, dma and soak benchmarks
 * measure against: a PCI device context on a socket in bench_tmpdir(),
 * served by a thread of the bench in mu_ctx_run.
 */
#ifndef MUSER_BENCH_SERVER_H
#define MUSER_BENCH_SERVER_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "muser.h"

struct bench_server {
    char path[108];
    mu_ctx_t *ctx;
    pthread_t th;
    int cpu;            /* >= 0: the thread pins itself there (bench_pin) */
    bool running;
};

/*
 * Create the context on bench_tmpdir()/<name>.sock, not pinned (cpu -1);
 * the caller configures s->ctx (and s->cpu), then bench_server_start.
 * 0 or -errno.
 */
int bench_server_create(struct bench_server *s, const char *name);
/* Realize and start the thread.  0 or -errno; bench_server_stop either
 * way. */
int bench_server_start(struct bench_server *s);
/* Stop and join the thread if it runs, destroy the context if any. */
void bench_server_stop(struct bench_server *s);

/* A region callback that reads zeros and ignores writes. */
ssize_t bench_bar_zero(mu_ctx_t *ctx, void *buf, size_t count,
                       uint64_t offset, bool is_write);

#endif
