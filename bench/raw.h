/*
 * raw.h - the raw UNIX-socket round trip that several benchmarks use as
 * their latency baseline: what one vfio-user request/reply costs with no
 * library at all.
 */
#ifndef MUSER_BENCH_RAW_H
#define MUSER_BENCH_RAW_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>
#include <unistd.h>

/* Read or write (wr) all of len bytes; 0, or -1 on error or EOF. */
static inline int bench_full_io(int fd, void *buf, size_t len, bool wr)
{
    size_t done = 0;

    while (done < len) {
        ssize_t n = wr ? write(fd, (char *)buf + done, len - done)
                       : read(fd, (char *)buf + done, len - done);

        if (n <= 0)
            return -1;
        done += (size_t)n;
    }
    return 0;
}

/* Request and reply sizes of a 4-byte REGION_READ on the wire. */
#define RAW_REQ_BYTES 32
#define RAW_REPLY_BYTES 36

/*
 * Ping-pong over a socketpair between this thread and a helper thread:
 * warmup + iters round trips of req_bytes out, reply_bytes back.  Stores
 * the p50 and p99 of the last iters in ns; 0 or -errno.
 *
 * cpu_client and cpu_server, when >= 0, pin this thread (for the
 * duration) and the helper to those CPUs, so the baseline can be taken
 * with the same placement as the thing it is compared with: a wake-up on
 * another CPU costs more than a switch on the same one, notably in VMs.
 */
int bench_raw_rtt(unsigned warmup, unsigned iters, size_t req_bytes,
                  size_t reply_bytes, int cpu_client, int cpu_server,
                  double *p50, double *p99);
/* The same, and the fastest round trip in ns. */
int bench_raw_rtt_min(unsigned warmup, unsigned iters, size_t req_bytes,
                      size_t reply_bytes, int cpu_client, int cpu_server,
                      double *p50, double *p99, double *min);

/* The helper's side: answer each req_bytes read on fd with reply_bytes
 * (zeros) until EOF or an error. */
void bench_raw_serve(int fd, size_t req_bytes, size_t reply_bytes);

#endif
