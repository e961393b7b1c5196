/*
 * rtt.c - round trip of a 4-byte REGION_READ through the client library and
 * the server, against a raw UNIX-socket ping-pong of the same byte counts
 * (32-byte request, 36-byte reply) between two threads (raw.c).  Both run
 * in the same repetitions, so machine noise hits them alike: the raw
 * ping-pong, muser as it comes, and muser with busy polling on
 * (MU_LIMIT_BUSY_POLL_US), one after the other in each repetition.
 *
 * And, counted rather than timed, the system calls the server makes per
 * request: the same server in a child process, traced with ptrace (sysc.c)
 * over SYSC_ITERS requests, against the raw ping-pong's helper traced the
 * same way.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench.h"
#include "muser.h"
#include "muser-client.h"
#include "raw.h"
#include "server.h"
#include "sysc.h"

#define ITERS 20000
#define WARMUP 2000
/* Busy polling: long enough to cover the client's turn between two
 * requests, many times over. */
#define SPIN_US 200
#define SYSC_WARMUP 200
#define SYSC_ITERS 5000

static ssize_t bar0_access(mu_ctx_t *ctx, void *buf, size_t count,
                           uint64_t offset, bool is_write)
{
    (void)ctx;
    if (!is_write)
        memset(buf, (int)offset, count);
    return (ssize_t)count;
}

static int muser_rep(muc_t *c, double *p50, double *p99, double *min)
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
    *min = (double)lat[0];     /* sorted by the percentiles */
    return 0;
}

/* ---------------- system calls per request ---------------- */

/*
 * The bench's server in a child process (forked, not exec'd: the same
 * code as the in-process one), on its own socket.  Its pid, once it
 * listens, or -errno.
 */
static pid_t fork_server(const char *path)
{
    int pfd[2];
    char ok = 0;
    pid_t pid;

    if (pipe2(pfd, O_CLOEXEC) < 0)
        return -errno;
    fflush(NULL);
    pid = fork();
    if (pid < 0) {
        close(pfd[0]);
        close(pfd[1]);
        return -errno;
    }
    if (pid == 0) {
        mu_ctx_t *ctx;
        int rc;

        prctl(PR_SET_PDEATHSIG, SIGKILL);
        close(pfd[0]);
        rc = mu_ctx_create(&ctx, path, MU_DEV_PCI, NULL);
        if (rc == 0)
            rc = mu_region_setup(ctx, MU_PCI_BAR0, 4096,
                                 MU_REGION_RW | MU_REGION_MEM, bar0_access);
        if (rc == 0)
            rc = mu_ctx_realize(ctx);
        ok = rc == 0;
        if (write(pfd[1], &ok, 1) == 1 && ok)
            mu_ctx_run(ctx);
        _exit(0);
    }
    close(pfd[1]);
    if (read(pfd[0], &ok, 1) != 1 || !ok) {
        close(pfd[0]);
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
        return -EIO;
    }
    close(pfd[0]);
    return pid;
}

/* The raw ping-pong's helper in a child: its pid, or -errno. */
static pid_t fork_raw(int fd, int other)
{
    pid_t pid;

    fflush(NULL);
    pid = fork();
    if (pid < 0)
        return -errno;
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        close(other);
        bench_raw_serve(fd, RAW_REQ_BYTES, RAW_REPLY_BYTES);
        _exit(0);
    }
    return pid;
}

/* What the traced child did over n requests: per request. */
static double per_request(const struct sysc_counts *a,
                          const struct sysc_counts *b, unsigned n,
                          char *detail, size_t len)
{
    size_t off = 0;

    detail[0] = '\0';
    for (unsigned nr = 0; nr < SYSC_NR_MAX; nr++) {
        double k = (double)(b->by_nr[nr] - a->by_nr[nr]) / n;
        const char *name = sysc_name(nr);
        int w;

        if (k < 0.005 || off >= len)
            continue;
        if (name != NULL)
            w = snprintf(detail + off, len - off, " %s %.2f", name, k);
        else
            w = snprintf(detail + off, len - off, " #%u %.2f", nr, k);
        if (w > 0)
            off += (size_t)w;
    }
    return (double)(b->total - a->total) / n;
}

/* The raw helper's syscalls per round trip: > 0, or -errno. */
static double count_raw(char *detail, size_t len)
{
    char req[RAW_REQ_BYTES] = { 0 }, reply[RAW_REPLY_BYTES];
    struct sysc_counts a, b;
    struct sysc_tracer t;
    double v = -EIO;
    int sv[2], rc;
    pid_t pid;

    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
        return -errno;
    pid = fork_raw(sv[1], sv[0]);
    close(sv[1]);
    if (pid < 0) {
        close(sv[0]);
        return pid;
    }
    rc = sysc_start(&t, pid);
    for (unsigned i = 0; rc == 0 && i < SYSC_WARMUP + SYSC_ITERS; i++) {
        if (i == SYSC_WARMUP)
            sysc_read(&t, &a);
        if (bench_full_io(sv[0], req, sizeof(req), true) < 0 ||
            bench_full_io(sv[0], reply, sizeof(reply), false) < 0)
            rc = -EIO;
    }
    if (rc == 0) {
        sysc_read(&t, &b);
        v = per_request(&a, &b, SYSC_ITERS, detail, len);
    }
    close(sv[0]);
    sysc_stop(&t);
    return rc < 0 ? rc : v;
}

/* The server's syscalls per request: > 0, or -errno. */
static double count_muser(char *detail, size_t len)
{
    struct sysc_counts a, b;
    struct sysc_tracer t;
    char path[128];
    double v = -EIO;
    muc_t *c = NULL;
    uint32_t val;
    pid_t pid;
    int rc;

    snprintf(path, sizeof(path), "%s/rtt-count.sock", bench_tmpdir());
    pid = fork_server(path);
    if (pid < 0)
        return pid;
    rc = sysc_start(&t, pid);
    if (rc == 0)
        rc = muc_connect(&c, path, NULL);
    for (unsigned i = 0; rc == 0 && i < SYSC_WARMUP + SYSC_ITERS; i++) {
        if (i == SYSC_WARMUP)
            sysc_read(&t, &a);
        rc = muc_region_read(c, 0, 0, &val, sizeof(val));
    }
    if (rc == 0) {
        sysc_read(&t, &b);
        v = per_request(&a, &b, SYSC_ITERS, detail, len);
    }
    if (c != NULL)
        muc_close(c);
    sysc_stop(&t);
    unlink(path);
    return rc < 0 ? rc : v;
}

/* syscalls_per_request, or a note saying why it is not there. */
static void report_syscalls(void)
{
    char dm[256], dr[256];
    double m, r;

    m = count_muser(dm, sizeof(dm));
    r = m > 0 ? count_raw(dr, sizeof(dr)) : m;
    if (m < 0 || r < 0) {
        int err = (int)-(m < 0 ? m : r);

        fprintf(stderr, "rtt: note: syscalls_per_request skipped: %s%s\n",
                strerror(err), err == EPERM || err == EACCES ?
                " (ptrace is not allowed here: seccomp, a container, or "
                "kernel.yama.ptrace_scope)" : "");
        return;
    }
    fprintf(stderr, "rtt: note: server syscalls per request:%s; raw "
            "ping-pong helper:%s (counted with ptrace over %u requests)\n",
            dm, dr, SYSC_ITERS);
    bench_report("rtt", "syscalls_per_request", m, "calls", r, "value <= 3");
}

int bench_rtt(void)
{
    double rp50[64], rp99[64], rmin[64], mp50[64], mp99[64], mmin[64];
    double sp50[64], sp99[64], smin[64];
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

    /* Counted first, while this process has no other thread (it forks). */
    report_syscalls();

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
        rc = bench_raw_rtt_min(WARMUP, ITERS, RAW_REQ_BYTES, RAW_REPLY_BYTES,
                               cpu_client, cpu_server, &rp50[r], &rp99[r],
                               &rmin[r]);
        if (rc == 0)
            rc = muser_rep(c, &mp50[r], &mp99[r], &mmin[r]);
        /* Busy polling, set while the server runs (it may be). */
        if (rc == 0)
            rc = mu_ctx_set_limit(srv.ctx, MU_LIMIT_BUSY_POLL_US, SPIN_US);
        if (rc == 0)
            rc = muser_rep(c, &sp50[r], &sp99[r], &smin[r]);
        if (rc == 0)
            rc = mu_ctx_set_limit(srv.ctx, MU_LIMIT_BUSY_POLL_US, 0);
    }
    muc_close(c);
    if (rc == 0) {
        double b50;

        bench_report_latency("rtt", mp50, mp99, rp50, rp99, (size_t)reps,
                             "<= 1.1");
        bench_report("rtt", "rtt_min", bench_median(mmin, (size_t)reps) / 1000,
                     "us", bench_median(rmin, (size_t)reps) / 1000, "<= 1.1");
        b50 = bench_median(rp50, (size_t)reps);
        bench_report("rtt", "rtt_p50_spin",
                     bench_median(sp50, (size_t)reps) / 1000, "us", b50 / 1000,
                     "< 1.0");
    }
out:
    if (pinned)
        bench_unpin(&saved);
    bench_server_stop(&srv);
    return rc;
}
