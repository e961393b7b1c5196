/*
 * raw.c - the raw UNIX-socket round trip baseline (see raw.h): the same
 * byte counts a muser request and reply carry, between two threads of one
 * process, with blocking reads and writes.  No library, no parsing: the
 * floor for anything that crosses the socket once each way.
 */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include "bench.h"
#include "raw.h"

#define RAW_MAX_BYTES 4096

struct raw_peer {
    int fd;
    size_t req, reply;
};

void bench_raw_serve(int fd, size_t req_bytes, size_t reply_bytes)
{
    char req[RAW_MAX_BYTES], reply[RAW_MAX_BYTES] = { 0 };

    if (req_bytes > RAW_MAX_BYTES || reply_bytes > RAW_MAX_BYTES)
        return;
    while (bench_full_io(fd, req, req_bytes, false) == 0)
        if (bench_full_io(fd, reply, reply_bytes, true) < 0)
            break;
}

static void *raw_server(void *arg)
{
    const struct raw_peer *p = arg;

    bench_raw_serve(p->fd, p->req, p->reply);
    return NULL;
}

int bench_raw_rtt(unsigned warmup, unsigned iters, size_t req_bytes,
                  size_t reply_bytes, int cpu_client, int cpu_server,
                  double *p50, double *p99)
{
    double min;

    return bench_raw_rtt_min(warmup, iters, req_bytes, reply_bytes,
                             cpu_client, cpu_server, p50, p99, &min);
}

int bench_raw_rtt_min(unsigned warmup, unsigned iters, size_t req_bytes,
                      size_t reply_bytes, int cpu_client, int cpu_server,
                      double *p50, double *p99, double *min)
{
    char req[RAW_MAX_BYTES] = { 0 }, reply[RAW_MAX_BYTES];
    struct raw_peer peer = { .req = req_bytes, .reply = reply_bytes };
    cpu_set_t old, set;
    bool pinned = false;
    pthread_attr_t attr;
    uint64_t *lat;
    unsigned done = 0;
    pthread_t th;
    int sv[2], rc;

    if (iters == 0 || req_bytes > RAW_MAX_BYTES || reply_bytes > RAW_MAX_BYTES)
        return -EINVAL;
    lat = malloc(iters * sizeof(*lat));
    if (lat == NULL)
        return -ENOMEM;
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) {
        rc = -errno;
        free(lat);
        return rc;
    }
    peer.fd = sv[1];
    pthread_attr_init(&attr);
    if (cpu_server >= 0) {
        CPU_ZERO(&set);
        CPU_SET(cpu_server, &set);
        pthread_attr_setaffinity_np(&attr, sizeof(set), &set);
    }
    rc = pthread_create(&th, &attr, raw_server, &peer);
    pthread_attr_destroy(&attr);
    if (rc != 0) {
        close(sv[0]);
        close(sv[1]);
        free(lat);
        return -rc;
    }
    pinned = bench_pin(cpu_client, &old);
    for (unsigned i = 0; i < warmup + iters; i++) {
        uint64_t t0 = bench_now_ns();

        if (bench_full_io(sv[0], req, req_bytes, true) < 0 ||
            bench_full_io(sv[0], reply, reply_bytes, false) < 0)
            break;
        if (i >= warmup)
            lat[done++] = bench_now_ns() - t0;
    }
    if (pinned)
        bench_unpin(&old);
    shutdown(sv[0], SHUT_RDWR);
    pthread_join(th, NULL);
    close(sv[0]);
    close(sv[1]);
    rc = done == iters ? 0 : -EIO;
    if (rc == 0) {
        *p99 = bench_percentile(lat, iters, 0.99);
        *p50 = bench_percentile(lat, iters, 0.50);
        *min = (double)lat[0];     /* sorted by the percentiles */
    }
    free(lat);
    return rc;
}
