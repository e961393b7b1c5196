/*
 * rtt.c - round trip of a 4-byte REGION_READ through the client library and
 * the server, against a raw UNIX-socket ping-pong of the same byte counts
 * (32-byte request, 36-byte reply) between two threads (raw.c).  Both run
 * in the same repetitions, so machine noise hits them alike.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench.h"
#include "muser.h"
#include "muser-client.h"
#include "raw.h"

#define ITERS 20000
#define WARMUP 2000

static ssize_t bar0_access(mu_ctx_t *ctx, void *buf, size_t count,
                           uint64_t offset, bool is_write)
{
    (void)ctx;
    if (!is_write)
        memset(buf, (int)offset, count);
    return (ssize_t)count;
}

struct server {
    mu_ctx_t *ctx;
    int cpu;
};

static void *run_ctx(void *arg)
{
    struct server *s = arg;
    cpu_set_t saved;

    bench_pin(s->cpu, &saved);
    mu_ctx_run(s->ctx);
    return NULL;
}

static int muser_rep(muc_t *c, double *p50, double *p99)
{
    static uint64_t lat[ITERS];
    uint32_t v;

    for (int i = 0; i < WARMUP + ITERS; i++) {
        uint64_t t0 = bench_now_ns();
        int rc = muc_region_read(c, 0, 0, &v, sizeof(v));

        if (rc < 0)
            return rc;
        if (i >= WARMUP)
            lat[i - WARMUP] = bench_now_ns() - t0;
    }
    *p99 = bench_percentile(lat, ITERS, 0.99);
    *p50 = bench_percentile(lat, ITERS, 0.50);
    return 0;
}

int bench_rtt(void)
{
    double rp50[64], rp99[64], mp50[64], mp99[64];
    char path[128];
    pthread_t th;
    mu_ctx_t *ctx;
    muc_t *c;
    int rc, reps = bench_reps > 64 ? 64 : bench_reps;
    int cpu_client, cpu_server;
    struct server srv;
    cpu_set_t saved;
    bool pinned;

    /* Client and server on different CPUs, as a VMM and a device process
     * would be, and the raw pair placed exactly the same way. */
    bench_cpus(&cpu_client, &cpu_server);
    if (cpu_client == cpu_server)
        cpu_client = cpu_server = -1;

    snprintf(path, sizeof(path), "%s/rtt.sock", bench_tmpdir());
    rc = mu_ctx_create(&ctx, path, MU_DEV_PCI, NULL);
    if (rc < 0)
        return rc;
    if ((rc = mu_region_setup(ctx, MU_PCI_BAR0, 4096,
                              MU_REGION_RW | MU_REGION_MEM, bar0_access)) < 0 ||
        (rc = mu_ctx_realize(ctx)) < 0) {
        mu_ctx_destroy(ctx);
        return rc;
    }
    srv.ctx = ctx;
    srv.cpu = cpu_server;
    pthread_create(&th, NULL, run_ctx, &srv);
    pinned = bench_pin(cpu_client, &saved);
    rc = muc_connect(&c, path, NULL);
    if (rc < 0)
        goto out;
    for (int r = 0; r < reps && rc == 0; r++) {
        rc = bench_raw_rtt(WARMUP, ITERS, RAW_REQ_BYTES, RAW_REPLY_BYTES,
                           cpu_client, cpu_server, &rp50[r], &rp99[r]);
        if (rc == 0)
            rc = muser_rep(c, &mp50[r], &mp99[r]);
    }
    muc_close(c);
    if (rc == 0) {
        double b50 = bench_median(rp50, (size_t)reps);
        double b99 = bench_median(rp99, (size_t)reps);

        bench_report("rtt", "rtt_p50", bench_median(mp50, (size_t)reps) / 1000,
                     "us", b50 / 1000, "<= 1.2");
        bench_report("rtt", "rtt_p99", bench_median(mp99, (size_t)reps) / 1000,
                     "us", b99 / 1000, NULL);
    }
out:
    if (pinned)
        bench_unpin(&saved);
    mu_ctx_stop(ctx);
    pthread_join(th, NULL);
    mu_ctx_destroy(ctx);
    return rc;
}
