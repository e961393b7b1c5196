/*
 * scale.c - many devices in one process: N contexts (N = 1, 64, 1024) on
 * their own sockets, all served by ONE thread through mu_ctx_fd() and
 * mu_ctx_poll() (the thread's own epoll set holds every context's fd, as
 * an SPDK reactor would), N clients connected.  Measured:
 *
 *   scale_rss_per_ctx_N   RSS the server side gains per context, from
 *                         before the contexts exist to all N realized,
 *                         connected, negotiated and idle (/proc/self/statm)
 *   scale_fds_per_ctx_N   fds per such context beyond the socket pair
 *                         (the connection itself; /proc/self/fd)
 *   scale_connect_all_N   time to connect and negotiate all N, one after
 *                         the other, against N times one connection to a
 *                         context alone in its set
 *   scale_rtt_N_p50/_p99  4-byte config REGION_READ round trip with the
 *                         requests spread round-robin over the N contexts,
 *                         against the same at 1 context in the same
 *                         repetitions
 *
 * The clients (the client library, muc_*) live in a child process forked
 * before any context or thread exists, so their memory and fds stay out of
 * the server's figures, and they run on the other CPU, as a VMM would.
 * The 1-context baseline is a second server (its own thread and set) that
 * lives through the whole run; its memory is there before the N contexts
 * are created and so is not in their deltas.  The budgets (64 KiB, 2 fds)
 * are printed as the baselines of the memory and fd figures, so their
 * ratio is the share of the budget used (target <= 1).  The memory target
 * is on N = 1024: at small N what a first context costs once (the serving
 * thread's malloc arena, the first pages of a heap) dominates the figure.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench.h"
#include "muser.h"
#include "muser-client.h"

#define MAX_N 1024
#define ITERS 20000
#define RECONNECTS 9
#define RSS_BUDGET_KIB 64.0
#define FD_BUDGET 2.0

/* ---------------- the clients (child process) ---------------- */

enum { OP_CONNECT, OP_RTT, OP_CLOSE, OP_QUIT };

struct cmd {
    int op;
    int set;            /* 0: the 1-context baseline, 1: the N contexts */
    int n;
};

struct res {
    int rc;
    double v[2];        /* OP_CONNECT: ns total, ns per reconnect (set 0);
                           OP_RTT: p50, p99 in ns */
};

static char sock_path[2][MAX_N][108];

static void path_of(int set, int i)
{
    snprintf(sock_path[set][i], sizeof(sock_path[set][i]), "%s/%c%d.sock",
             bench_tmpdir(), set ? 'n' : 'b', i);
}

static int child_rtt(muc_t **c, int n, double *p50, double *p99)
{
    static uint64_t lat[ITERS];
    uint32_t v;
    int rc;

    /* A warm-up pass touches every context once. */
    for (int i = 0; i < n; i++) {
        rc = muc_region_read(c[i], MU_PCI_CONFIG, 0, &v, sizeof(v));
        if (rc < 0)
            return rc;
    }
    for (int i = 0; i < ITERS; i++) {
        uint64_t t0 = bench_now_ns();

        rc = muc_region_read(c[i % n], MU_PCI_CONFIG, 0, &v, sizeof(v));
        if (rc < 0)
            return rc;
        lat[i] = bench_now_ns() - t0;
    }
    *p99 = bench_percentile(lat, ITERS, 0.99);
    *p50 = bench_percentile(lat, ITERS, 0.50);
    return 0;
}

static int child_connect(muc_t **c, int set, int n, struct res *res)
{
    uint64_t t0, per[RECONNECTS];
    int rc;

    if (set == 0) {
        /* The per-connection time alone: connect, negotiate, close. */
        for (int i = 0; i < RECONNECTS; i++) {
            t0 = bench_now_ns();
            rc = muc_connect(&c[0], sock_path[0][0], NULL);
            if (rc < 0)
                return rc;
            per[i] = bench_now_ns() - t0;
            muc_close(c[0]);
        }
        res->v[1] = bench_percentile(per, RECONNECTS, 0.5);
    }
    t0 = bench_now_ns();
    for (int i = 0; i < n; i++) {
        rc = muc_connect(&c[i], sock_path[set][i], NULL);
        if (rc < 0) {
            while (i-- > 0)
                muc_close(c[i]);
            return rc;
        }
    }
    res->v[0] = (double)(bench_now_ns() - t0);
    return 0;
}

static void child_main(int rd, int wr, int cpu)
{
    static muc_t *c[2][MAX_N];
    int nr[2] = { 0, 0 };
    cpu_set_t saved;
    struct cmd cmd;
    struct res res;

    prctl(PR_SET_PDEATHSIG, SIGKILL);
    bench_pin(cpu, &saved);
    while (read(rd, &cmd, sizeof(cmd)) == sizeof(cmd)) {
        memset(&res, 0, sizeof(res));
        switch (cmd.op) {
        case OP_CONNECT:
            res.rc = child_connect(c[cmd.set], cmd.set, cmd.n, &res);
            if (res.rc == 0)
                nr[cmd.set] = cmd.n;
            break;
        case OP_RTT:
            res.rc = child_rtt(c[cmd.set], nr[cmd.set], &res.v[0], &res.v[1]);
            break;
        case OP_CLOSE:
            for (int i = 0; i < nr[cmd.set]; i++)
                muc_close(c[cmd.set][i]);
            nr[cmd.set] = 0;
            break;
        case OP_QUIT:
            _exit(0);
        }
        if (write(wr, &res, sizeof(res)) != sizeof(res))
            _exit(1);
    }
    _exit(0);
}

struct child {
    pid_t pid;
    int wr, rd;
};

static int child_start(struct child *ch, int cpu)
{
    int down[2], up[2];

    if (pipe2(down, O_CLOEXEC) < 0)
        return -errno;
    if (pipe2(up, O_CLOEXEC) < 0) {
        close(down[0]);
        close(down[1]);
        return -errno;
    }
    fflush(NULL);
    ch->pid = fork();
    if (ch->pid < 0) {
        int rc = -errno;

        close(down[0]);
        close(down[1]);
        close(up[0]);
        close(up[1]);
        return rc;
    }
    if (ch->pid == 0) {
        close(down[1]);
        close(up[0]);
        child_main(down[0], up[1], cpu);
    }
    close(down[0]);
    close(up[1]);
    ch->wr = down[1];
    ch->rd = up[0];
    return 0;
}

static int child_do(struct child *ch, int op, int set, int n, struct res *res)
{
    struct cmd cmd = { .op = op, .set = set, .n = n };
    struct res dummy;

    if (res == NULL)
        res = &dummy;
    if (write(ch->wr, &cmd, sizeof(cmd)) != sizeof(cmd) ||
        read(ch->rd, res, sizeof(*res)) != sizeof(*res))
        return -EPIPE;
    return res->rc;
}

static void child_stop(struct child *ch)
{
    int st;

    if (ch->pid <= 0)
        return;
    child_do(ch, OP_QUIT, 0, 0, NULL);
    close(ch->wr);
    close(ch->rd);
    waitpid(ch->pid, &st, 0);
    ch->pid = 0;
}

/* ---------------- the server side (this process) ---------------- */

/* N contexts and the one thread that serves them all. */
struct farm {
    mu_ctx_t *ctx[MAX_N];
    int n;
    int epfd, stop_fd;
    pthread_t th;
    bool running;
    int cpu;
};

static void *farm_thread(void *arg)
{
    struct farm *f = arg;
    struct epoll_event evs[64];
    cpu_set_t saved;

    if (f->cpu >= 0)
        bench_pin(f->cpu, &saved);
    for (;;) {
        int n = epoll_wait(f->epfd, evs, 64, -1);

        if (n < 0 && errno != EINTR)
            break;
        for (int i = 0; i < n; i++) {
            if (evs[i].data.ptr == NULL)
                return NULL;
            mu_ctx_poll(evs[i].data.ptr);
        }
    }
    return NULL;
}

static void farm_stop(struct farm *f)
{
    uint64_t one = 1;

    if (f->running) {
        if (write(f->stop_fd, &one, sizeof(one)) != sizeof(one))
            perror("scale: stop");
        pthread_join(f->th, NULL);
        f->running = false;
    }
    for (int i = 0; i < f->n; i++)
        mu_ctx_destroy(f->ctx[i]);
    f->n = 0;
    if (f->epfd >= 0)
        close(f->epfd);
    if (f->stop_fd >= 0)
        close(f->stop_fd);
    f->epfd = f->stop_fd = -1;
}

/* The serving thread with its empty set, before any context. */
static int farm_start(struct farm *f, int cpu)
{
    struct epoll_event ev = { .events = EPOLLIN, .data.ptr = NULL };
    int rc;

    memset(f, 0, sizeof(*f));
    f->cpu = cpu;
    f->epfd = epoll_create1(EPOLL_CLOEXEC);
    f->stop_fd = eventfd(0, EFD_CLOEXEC);
    if (f->epfd < 0 || f->stop_fd < 0) {
        rc = -errno;
        goto fail;
    }
    if (epoll_ctl(f->epfd, EPOLL_CTL_ADD, f->stop_fd, &ev) < 0) {
        rc = -errno;
        goto fail;
    }
    if (pthread_create(&f->th, NULL, farm_thread, f) != 0) {
        rc = -EAGAIN;
        goto fail;
    }
    f->running = true;
    return 0;
fail:
    farm_stop(f);
    return rc;
}

/*
 * n contexts on set's sockets, added to the running thread's set (epoll
 * takes an fd while another thread waits on it).  The thread only polls
 * a context once its fd is in the set, i.e. after mu_ctx_realize.
 */
static int farm_add(struct farm *f, int set, int n)
{
    struct epoll_event ev = { .events = EPOLLIN };
    int rc;

    for (int i = 0; i < n; i++) {
        mu_ctx_t *ctx;

        rc = mu_ctx_create(&ctx, sock_path[set][i], MU_DEV_PCI, NULL);
        if (rc < 0)
            return rc;
        f->ctx[f->n++] = ctx;
        rc = mu_ctx_realize(ctx);
        if (rc < 0)
            return rc;
        ev.data.ptr = ctx;
        if (epoll_ctl(f->epfd, EPOLL_CTL_ADD, mu_ctx_fd(ctx), &ev) < 0)
            return -errno;
    }
    return 0;
}

static long count_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    struct dirent *e;
    long n = 0;

    if (d == NULL)
        return -1;
    while ((e = readdir(d)) != NULL)
        n += e->d_name[0] != '.';
    closedir(d);
    return n;
}

static long rss_kib(void)
{
    long size, rss;
    FILE *f = fopen("/proc/self/statm", "r");

    if (f == NULL)
        return -1;
    if (fscanf(f, "%ld %ld", &size, &rss) != 2)
        rss = -1;
    fclose(f);
    return rss < 0 ? -1 : rss * (sysconf(_SC_PAGESIZE) / 1024);
}

/* Wait until the server has seen every client through VERSION. */
static int wait_ready(struct farm *f)
{
    for (int tries = 0; tries < 10000; tries++) {
        int ready = 0;

        for (int i = 0; i < f->n; i++)
            ready += mu_ctx_client_ready(f->ctx[i]);
        if (ready == f->n)
            return 0;
        usleep(1000);
    }
    return -ETIMEDOUT;
}

static int run_n(struct child *ch, int n, int cpu_server)
{
    double m50[64], m99[64], b50[64], b99[64], conn_base;
    int reps = bench_reps > 64 ? 64 : bench_reps;
    long fds0, rss0, fds1, rss1;
    struct res res;
    struct farm f;
    char metric[64];
    int rc;

    /* The per-connection baseline, just before the N connect. */
    rc = child_do(ch, OP_CLOSE, 0, 0, NULL);
    if (rc == 0)
        rc = child_do(ch, OP_CONNECT, 0, 1, &res);
    if (rc < 0)
        return rc;
    conn_base = res.v[1];

    rc = farm_start(&f, cpu_server);
    if (rc < 0)
        return rc;
    /* Give the thread time to enter epoll_wait (its stack and the rest
     * are then in the "before" figure); a late start only adds to it. */
    usleep(10000);
    fds0 = count_fds();
    rss0 = rss_kib();
    rc = farm_add(&f, 1, n);
    if (rc == 0)
        rc = child_do(ch, OP_CONNECT, 1, n, &res);
    if (rc == 0)
        rc = wait_ready(&f);
    if (rc < 0)
        goto out;
    /* Everything is idle now: the clients wait for our command. */
    fds1 = count_fds();
    rss1 = rss_kib();

    snprintf(metric, sizeof(metric), "scale_rss_per_ctx_%d", n);
    bench_report("scale", metric, (double)(rss1 - rss0) / n, "KiB",
                 RSS_BUDGET_KIB, n == MAX_N ? "<= 1 (64 KiB)" : NULL);
    snprintf(metric, sizeof(metric), "scale_fds_per_ctx_%d", n);
    bench_report("scale", metric, (double)(fds1 - fds0) / n - 1, "fds",
                 FD_BUDGET, "<= 1 (2 fds)");
    snprintf(metric, sizeof(metric), "scale_connect_all_%d", n);
    bench_report("scale", metric, res.v[0] / 1e6, "ms",
                 conn_base * n / 1e6, NULL);

    for (int r = 0; r < reps && rc == 0; r++) {
        rc = child_do(ch, OP_RTT, 0, 0, &res);
        b50[r] = res.v[0];
        b99[r] = res.v[1];
        if (rc == 0)
            rc = child_do(ch, OP_RTT, 1, 0, &res);
        m50[r] = res.v[0];
        m99[r] = res.v[1];
    }
    if (rc == 0) {
        snprintf(metric, sizeof(metric), "scale_rtt_%d_p50", n);
        bench_report("scale", metric, bench_median(m50, (size_t)reps) / 1000,
                     "us", bench_median(b50, (size_t)reps) / 1000,
                     n == MAX_N ? "<= 1.2" : NULL);
        snprintf(metric, sizeof(metric), "scale_rtt_%d_p99", n);
        bench_report("scale", metric, bench_median(m99, (size_t)reps) / 1000,
                     "us", bench_median(b99, (size_t)reps) / 1000, NULL);
    }
out:
    child_do(ch, OP_CLOSE, 1, 0, NULL);
    farm_stop(&f);
    return rc;
}

int bench_scale(void)
{
    static const int sizes[] = { 1, 64, MAX_N };
    int cpu_client, cpu_server, rc;
    struct child ch = { 0 };
    struct rlimit rl;
    struct farm base;

    /* Each context has a few fds, and the child holds the clients'. */
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < 8 * MAX_N + 64) {
        fprintf(stderr, "scale: RLIMIT_NOFILE %llu is too low for %d contexts\n",
                (unsigned long long)rl.rlim_cur, MAX_N);
        return -EMFILE;
    }
    bench_cpus(&cpu_client, &cpu_server);
    if (cpu_client == cpu_server)
        cpu_client = cpu_server = -1;
    for (int i = 0; i < MAX_N; i++) {
        path_of(0, i);
        path_of(1, i);
    }
    /* Before any thread: the child is a plain copy of this one. */
    rc = child_start(&ch, cpu_client);
    if (rc < 0)
        return rc;
    rc = farm_start(&base, cpu_server);
    if (rc == 0)
        rc = farm_add(&base, 0, 1);
    if (rc < 0) {
        farm_stop(&base);
        goto out;
    }
    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]) && rc == 0; i++)
        rc = run_n(&ch, sizes[i], cpu_server);
    child_do(&ch, OP_CLOSE, 0, 0, NULL);
    farm_stop(&base);
out:
    child_stop(&ch);
    return rc;
}
