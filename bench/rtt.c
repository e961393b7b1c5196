/*
 * rtt.c - round trip of a 4-byte REGION_READ through the client library and
 * the server, against a raw UNIX-socket ping-pong of the same byte counts
 * (32-byte request, 36-byte reply) between two threads (raw.c).  Both run
 * in the same repetitions, so machine noise hits them alike.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench.h"
#include "muser.h"
#include "muser-client.h"
#include "raw.h"
#include "server.h"

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
    muc_t *c;
    int rc, reps = bench_reps > 64 ? 64 : bench_reps;
    int cpu_client, cpu_server;
    struct bench_server srv;
    cpu_set_t saved;
    bool pinned;

    /* Client and server on different CPUs, as a VMM and a device process
     * would be, and the raw pair placed exactly the same way. */
    bench_cpus(&cpu_client, &cpu_server);
    if (cpu_client == cpu_server)
        cpu_client = cpu_server = -1;

    rc = bench_server_create(&srv, "rtt");
    if (rc < 0)
        return rc;
    /* The context thread pins itself to cpu_server. */
    srv.cpu = cpu_server;
    if ((rc = mu_region_setup(srv.ctx, MU_PCI_BAR0, 4096,
                              MU_REGION_RW | MU_REGION_MEM, bar0_access)) < 0 ||
        (rc = bench_server_start(&srv)) < 0) {
        bench_server_stop(&srv);
        return rc;
    }
    pinned = bench_pin(cpu_client, &saved);
    rc = muc_connect(&c, srv.path, NULL);
    if (rc < 0)
        goto out;
    for (int r = 0; r < reps && rc == 0; r++) {
        rc = bench_raw_rtt(WARMUP, ITERS, RAW_REQ_BYTES, RAW_REPLY_BYTES,
                           cpu_client, cpu_server, &rp50[r], &rp99[r]);
        if (rc == 0)
            rc = muser_rep(c, &mp50[r], &mp99[r]);
    }
    muc_close(c);
    if (rc == 0)
        bench_report_latency("rtt", mp50, mp99, rp50, rp99, (size_t)reps,
                             "<= 1.2");
out:
    if (pinned)
        bench_unpin(&saved);
    bench_server_stop(&srv);
    return rc;
}
