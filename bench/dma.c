/*
 * dma.c - the DMA region table against the simplest code doing the same
 * job, each measured in the same repetitions:
 *
 *  lookup_N    mu_dma_get() of 8 bytes at a random address in one of N
 *              mapped 4 KiB regions, plus mu_dma_put(), against a linear
 *              scan of the same regions doing the same bookkeeping (a
 *              mutex, a per-entry reference count).  The regions come from
 *              real DMA_MAP messages sent by the client library to an
 *              in-process server, all backed by one memfd, and are
 *              faulted in before timing.
 *  map_unmap   one DMA_MAP and one DMA_UNMAP of a 2 MiB memfd region through
 *              the client library, against two raw UNIX-socket round trips
 *              of the same sizes (48 bytes carrying one fd + 16, 40 + 40),
 *              all threads on one CPU (see pin_here).
 *  fault_in    a first-touch translation that mmaps a 2 MiB region and, the
 *              budget being one region, munmaps the other, against a raw
 *              mmap + munmap of the same fd and size.  The memfd is sealed
 *              against shrinking and growing, as QEMU's memfd backend seals
 *              guest RAM; fault_in_unsealed (no target) is the same with
 *              an unsealed one, which costs the server an fstat a fault
 *              (the file may have shrunk since DMA_MAP).
 *
 * Each repetition alternates baseline and muser in SLICES short slices, so
 * that a burst of noise from the rest of the machine lands on both alike.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "bench.h"
#include "muser.h"
#include "muser-client.h"
#include "raw.h"
#include "server.h"

#define MAX_REPS 64
#define SLICES 10
#define PG 4096ull
#define MB2 (2ull << 20)

/* ---------------- an in-process server ---------------- */

/* server.h's, and a client connected to it. */
struct server {
    struct bench_server srv;
    muc_t *c;
};

static void quiet_log(mu_ctx_t *ctx, enum mu_log_level level, const char *msg)
{
    (void)ctx;
    if (level <= MU_LOG_ERR)
        fprintf(stderr, "muser: %s\n", msg);
}

static int server_start(struct server *s, const char *name, uint64_t regions,
                        uint64_t budget)
{
    mu_ctx_t *ctx;
    int rc;

    rc = bench_server_create(&s->srv, name);
    if (rc < 0)
        return rc;
    ctx = s->srv.ctx;
    if ((rc = mu_ctx_set_log(ctx, quiet_log, MU_LOG_ERR)) < 0 ||
        (rc = mu_ctx_set_limit(ctx, MU_LIMIT_DMA_REGIONS, regions)) < 0 ||
        (rc = mu_ctx_set_limit(ctx, MU_LIMIT_DMA_MAPPED_BYTES, budget)) < 0 ||
        (rc = bench_server_start(&s->srv)) < 0 ||
        (rc = muc_connect(&s->c, s->srv.path, NULL)) < 0)
        bench_server_stop(&s->srv);
    return rc;
}

static void server_stop(struct server *s)
{
    muc_close(s->c);
    bench_server_stop(&s->srv);
}

static int memfd_sized(uint64_t size)
{
    int fd = memfd_create("bench-guest", MFD_CLOEXEC);

    if (fd >= 0 && ftruncate(fd, (off_t)size) < 0) {
        close(fd);
        return -1;
    }
    return fd;
}

/* Sealed against resizing, as QEMU's memory-backend-memfd (seal=on). */
static int memfd_sealed(uint64_t size)
{
    int fd = memfd_create("bench-guest", MFD_CLOEXEC | MFD_ALLOW_SEALING);

    if (fd >= 0 && (ftruncate(fd, (off_t)size) < 0 ||
                    fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW) < 0)) {
        close(fd);
        return -1;
    }
    return fd;
}

static uint64_t xorshift(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

/* ---------------- lookup ---------------- */

/*
 * The baseline: what a device would write without a search structure.
 * Same lock discipline and reference counting as mu_dma_get/put for a
 * single-entry translation; only the search differs.
 */
struct lin_entry {
    uint64_t start, last;
    uint8_t *host;
    unsigned long refs;
};

struct lin_table {
    pthread_mutex_t lock;
    struct lin_entry *e;
    size_t n;
};

static __attribute__((noinline))
void *lin_get(struct lin_table *t, uint64_t iova, size_t len,
              struct lin_entry **out)
{
    pthread_mutex_lock(&t->lock);
    for (size_t i = 0; i < t->n; i++) {
        struct lin_entry *e = &t->e[i];

        if (iova < e->start || iova > e->last)
            continue;
        if (len - 1 > e->last - iova)
            break;
        e->refs++;
        pthread_mutex_unlock(&t->lock);
        *out = e;
        return e->host + (iova - e->start);
    }
    pthread_mutex_unlock(&t->lock);
    return NULL;
}

static __attribute__((noinline))
void lin_put(struct lin_table *t, struct lin_entry *e)
{
    pthread_mutex_lock(&t->lock);
    e->refs--;
    pthread_mutex_unlock(&t->lock);
}

#define LOOKUP_BASE 0x100000000ull
#define LOOKUP_STRIDE (2 * PG)      /* a 4 KiB hole after each region */
#define LOOKUP_ITERS 200000
#define LOOKUP_MAX 65536

static uint64_t lookup_iova(size_t i)
{
    return LOOKUP_BASE + (uint64_t)i * LOOKUP_STRIDE;
}

/*
 * Region i maps page (LOOKUP_MAX - 1 - i) of the memfd.  The server
 * mmaps regions in the order we fault them in, i ascending, and the kernel
 * places each new mapping just below the previous one; with the file
 * offsets descending too, neighbouring mappings merge into one VMA.
 * Otherwise 65 536 regions would pass vm.max_map_count (65 530 by
 * default) and the last faults would fail.
 */
static uint64_t lookup_offset(size_t i)
{
    return (LOOKUP_MAX - 1 - (uint64_t)i) * PG;
}

static size_t open_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    size_t n = 0;

    if (d == NULL)
        return 64;
    while (readdir(d) != NULL)
        n++;
    closedir(d);
    return n;
}

/*
 * As many fds as the largest table could need: one per region on the
 * server side if it held each region's fd (it holds one per file, and all
 * regions here are of one memfd; see lookup_fit), plus what the process
 * has and a few the server and client open.  Root may raise the hard
 * limit up to fs.nr_open (given CAP_SYS_RESOURCE); else the soft limit
 * goes up to the hard one.  Returns the number of fds that fit.
 */
static size_t raise_nofile(size_t want)
{
    rlim_t spare = (rlim_t)open_fds() + 32;
    rlim_t need = (rlim_t)want + spare;
    struct rlimit rl;
    size_t fit;

    if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
        return 0;
    if (rl.rlim_cur < need) {
        struct rlimit nl = { need, rl.rlim_max > need ? rl.rlim_max : need };

        if (setrlimit(RLIMIT_NOFILE, &nl) < 0) {
            /* Not allowed to raise the hard limit: take what it offers. */
            nl.rlim_cur = nl.rlim_max = rl.rlim_max;
            if (setrlimit(RLIMIT_NOFILE, &nl) == 0)
                rl = nl;
        } else {
            rl = nl;
        }
    }
    fit = rl.rlim_cur > spare ? (size_t)(rl.rlim_cur - spare) : 0;
    return fit < want ? fit : want;
}

struct lookup_state {
    struct server *s;
    int memfd;
    size_t mapped;              /* regions mapped and faulted in */
    struct lin_table lin;
    uint64_t *addrs;            /* LOOKUP_ITERS random addresses */
    uint64_t seed;
};

/* Grow the table to n regions through DMA_MAP, and fault them all in. */
static int lookup_grow(struct lookup_state *st, size_t n)
{
    mu_sg_t sg[1];
    int rc;

    for (size_t i = st->mapped; i < n; i++) {
        rc = muc_dma_map(st->s->c, lookup_iova(i), PG, st->memfd,
                         lookup_offset(i), MUC_DMA_READ | MUC_DMA_WRITE);
        if (rc < 0)
            return rc;
    }
    for (size_t i = st->mapped; i < n; i++) {
        rc = mu_dma_get(st->s->srv.ctx, lookup_iova(i), 8, MU_DMA_READ, sg, 1);
        if (rc < 0) {
            fprintf(stderr, "dma: faulting in region %zu: %s\n", i,
                    strerror(-rc));
            return rc;
        }
        st->lin.e[i] = (struct lin_entry){
            .start = lookup_iova(i), .last = lookup_iova(i) + PG - 1,
            .host = sg[0].addr,
        };
        mu_dma_put(st->s->srv.ctx, sg, 1);
    }
    st->mapped = st->lin.n = n;
    for (size_t k = 0; k < LOOKUP_ITERS; k++) {
        uint64_t r = xorshift(&st->seed);

        st->addrs[k] = lookup_iova((size_t)(r % n)) +
                       (r >> 32) % (PG - 8 + 1);
    }
    return 0;
}

/* ns spent on iters translations of the addresses from a[0]. */
static int time_muser_lookup(mu_ctx_t *ctx, const uint64_t *a, size_t iters,
                             uint64_t *ns)
{
    uint64_t t0 = bench_now_ns();
    mu_sg_t sg[1];

    for (size_t k = 0; k < iters; k++) {
        if (mu_dma_get(ctx, a[k], 8, MU_DMA_READ, sg, 1) != 1)
            return -EFAULT;
        mu_dma_put(ctx, sg, 1);
    }
    *ns += bench_now_ns() - t0;
    return 0;
}

static int time_linear_lookup(struct lin_table *t, const uint64_t *a,
                              size_t iters, uint64_t *ns)
{
    uint64_t t0 = bench_now_ns();
    struct lin_entry *e;

    for (size_t k = 0; k < iters; k++) {
        if (lin_get(t, a[k], 8, &e) == NULL)
            return -EFAULT;
        lin_put(t, e);
    }
    *ns += bench_now_ns() - t0;
    return 0;
}

/* One repetition: ns per lookup of each, slices interleaved. */
static int lookup_rep(struct lookup_state *st, size_t lin_iters, double *m,
                      double *b)
{
    size_t mu_slice = LOOKUP_ITERS / SLICES, lin_slice = lin_iters / SLICES;
    uint64_t mu_ns = 0, lin_ns = 0;
    int rc = 0;

    for (size_t i = 0; i < SLICES && rc == 0; i++) {
        rc = time_linear_lookup(&st->lin, st->addrs + i * lin_slice,
                                lin_slice, &lin_ns);
        if (rc == 0)
            rc = time_muser_lookup(st->s->srv.ctx, st->addrs + i * mu_slice,
                                   mu_slice, &mu_ns);
    }
    *m = (double)mu_ns / (double)(mu_slice * SLICES);
    *b = (double)lin_ns / (double)(lin_slice * SLICES);
    return rc;
}

static int bench_lookup(void)
{
    static const size_t sizes[] = { 1, 16, 1024, 65536 };
    struct lookup_state st = { .seed = 0x9e3779b97f4a7c15ull };
    double m[MAX_REPS], b[MAX_REPS], ns16 = 0;
    int reps = bench_reps > MAX_REPS ? MAX_REPS : bench_reps;
    size_t fd_fit = raise_nofile(LOOKUP_MAX), fit = fd_fit, fds0;
    bool probed = false;
    struct server s;
    int rc;

    if (fit < 1)
        return -EMFILE;
    pthread_mutex_init(&st.lin.lock, NULL);
    st.addrs = malloc(LOOKUP_ITERS * sizeof(*st.addrs));
    st.lin.e = calloc(LOOKUP_MAX, sizeof(*st.lin.e));
    st.memfd = memfd_sized(LOOKUP_MAX * PG);
    if (st.addrs == NULL || st.lin.e == NULL || st.memfd < 0) {
        rc = -ENOMEM;
        goto out_free;
    }
    rc = server_start(&s, "lookup", LOOKUP_MAX, 0);
    if (rc < 0)
        goto out_free;
    st.s = &s;
    fds0 = open_fds();

    for (size_t si = 0; si < sizeof(sizes) / sizeof(sizes[0]); si++) {
        size_t n = sizes[si] < fit ? sizes[si] : fit;
        /* The scan at 65536 costs tens of microseconds: fewer rounds. */
        size_t lin_iters = n > 1024 ? 3000 : LOOKUP_ITERS;
        char name[32];

        rc = lookup_grow(&st, n);
        if (rc < 0)
            break;
        /*
         * A server that holds one fd per file (lib/dma_file.h) needs no
         * more for 65536 regions of one memfd than for one; one that held
         * an fd per region would be capped by the fd limit.  Look once.
         */
        if (!probed && n >= 16) {
            probed = true;
            fit = open_fds() - fds0 >= n ? fd_fit : LOOKUP_MAX;
        }
        if (n < sizes[si])
            fprintf(stderr, "dma: note: lookup_%zu used %zu regions (open "
                    "file limit)\n", sizes[si], n);
        /* A repetition to warm up both paths, then the real ones. */
        rc = lookup_rep(&st, lin_iters / 10, &m[0], &b[0]);
        for (int r = 0; r < reps && rc == 0; r++)
            rc = lookup_rep(&st, lin_iters, &m[r], &b[r]);
        if (rc < 0)
            break;
        snprintf(name, sizeof(name), "lookup_%zu", sizes[si]);
        bench_report("dma", name, bench_median(m, (size_t)reps), "ns",
                     bench_median(b, (size_t)reps),
                     sizes[si] == 1 ? "<= 1.1"
                     : sizes[si] == 1024 ? "<= 0.1" : NULL);
        if (sizes[si] == 16)
            ns16 = bench_median(m, (size_t)reps);
        if (sizes[si] == 65536 && ns16 > 0)
            bench_report("dma", "lookup_65536_vs_16",
                         bench_median(m, (size_t)reps), "ns", ns16, "<= 3");
    }
    if (rc == -EFAULT)
        fprintf(stderr, "dma: a lookup failed\n");
    /* Unmap explicitly: 65536 unmaps is also the teardown's job, but this
     * way a failure shows up here. */
    if (muc_dma_unmap_all(s.c) < 0 && rc == 0)
        rc = -EIO;
    server_stop(&s);
out_free:
    if (st.memfd >= 0)
        close(st.memfd);
    free(st.addrs);
    free(st.lin.e);
    pthread_mutex_destroy(&st.lin.lock);
    return rc;
}

/* ---------------- map + unmap ---------------- */

#define MAP_ITERS 2000
#define MAP_WARMUP 200

/* Byte counts of the messages muc_dma_map and muc_dma_unmap exchange. */
#define MAP_REQ 48          /* header + struct vfu_dma_map, one fd */
#define MAP_REPLY 16        /* header */
#define UNMAP_REQ 40        /* header + struct vfu_dma_unmap */
#define UNMAP_REPLY 40      /* header + the entry echoed */

static int send_with_fd(int sock, const void *buf, size_t len, int fd)
{
    union {
        char buf[CMSG_SPACE(sizeof(int))];
        struct cmsghdr align;
    } u;
    struct iovec iov = { (void *)buf, len };
    struct msghdr mh = {
        .msg_iov = &iov, .msg_iovlen = 1,
        .msg_control = u.buf, .msg_controllen = sizeof(u.buf),
    };
    struct cmsghdr *c = CMSG_FIRSTHDR(&mh);

    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(c), &fd, sizeof(int));
    return sendmsg(sock, &mh, MSG_NOSIGNAL) == (ssize_t)len ? 0 : -1;
}

/* Whole message; the fd that came with it, or -1. */
static int recv_with_fd(int sock, void *buf, size_t len, int *fd)
{
    union {
        char buf[CMSG_SPACE(sizeof(int))];
        struct cmsghdr align;
    } u;
    struct iovec iov = { buf, len };
    struct msghdr mh = {
        .msg_iov = &iov, .msg_iovlen = 1,
        .msg_control = u.buf, .msg_controllen = sizeof(u.buf),
    };
    struct cmsghdr *c;
    ssize_t n = recvmsg(sock, &mh, MSG_CMSG_CLOEXEC);

    *fd = -1;
    if (n <= 0)
        return -1;
    c = CMSG_FIRSTHDR(&mh);
    if (c != NULL && c->cmsg_type == SCM_RIGHTS)
        memcpy(fd, CMSG_DATA(c), sizeof(int));
    if ((size_t)n < len)
        return bench_full_io(sock, (char *)buf + n, len - (size_t)n, false);
    return 0;
}

/* The raw peer: take the map (closing its fd, as the server does at
 * unmap), answer; take the unmap, answer. */
static void *raw_map_server(void *arg)
{
    int sock = (int)(intptr_t)arg, fd;
    char req[MAP_REQ], reply[UNMAP_REPLY] = { 0 };

    for (;;) {
        if (recv_with_fd(sock, req, MAP_REQ, &fd) < 0)
            break;
        if (fd >= 0)
            close(fd);
        if (bench_full_io(sock, reply, MAP_REPLY, true) < 0 ||
            bench_full_io(sock, req, UNMAP_REQ, false) < 0 ||
            bench_full_io(sock, reply, UNMAP_REPLY, true) < 0)
            break;
    }
    return NULL;
}

/* iters raw map + unmap round trips; latencies into lat. */
static int raw_map_slice(int sock, int memfd, uint64_t *lat, int iters)
{
    char req[MAP_REQ] = { 0 }, reply[UNMAP_REPLY];

    for (int i = 0; i < iters; i++) {
        uint64_t t0 = bench_now_ns();

        if (send_with_fd(sock, req, MAP_REQ, memfd) < 0 ||
            bench_full_io(sock, reply, MAP_REPLY, false) < 0 ||
            bench_full_io(sock, req, UNMAP_REQ, true) < 0 ||
            bench_full_io(sock, reply, UNMAP_REPLY, false) < 0)
            return -EIO;
        lat[i] = bench_now_ns() - t0;
    }
    return 0;
}

static int muser_map_slice(struct server *s, int memfd, uint64_t *lat,
                           int iters)
{
    const uint64_t iova = 0x40000000;
    int rc;

    for (int i = 0; i < iters; i++) {
        uint64_t t0 = bench_now_ns();

        rc = muc_dma_map(s->c, iova, MB2, memfd, 0,
                         MUC_DMA_READ | MUC_DMA_WRITE);
        if (rc == 0)
            rc = muc_dma_unmap(s->c, iova, MB2);
        if (rc < 0)
            return rc;
        lat[i] = bench_now_ns() - t0;
    }
    return 0;
}

/* One repetition: p50 of each in ns, slices interleaved. */
static int map_rep(struct server *s, int memfd, double *m, double *b)
{
    static uint64_t mlat[MAP_ITERS], blat[MAP_ITERS];
    const int slice = MAP_ITERS / SLICES;
    pthread_t th;
    int sv[2], rc;

    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
        return -errno;
    pthread_create(&th, NULL, raw_map_server, (void *)(intptr_t)sv[1]);
    /* Warm up both, then measure. */
    rc = raw_map_slice(sv[0], memfd, blat, MAP_WARMUP);
    if (rc == 0)
        rc = muser_map_slice(s, memfd, mlat, MAP_WARMUP);
    for (int i = 0; i < SLICES && rc == 0; i++) {
        rc = raw_map_slice(sv[0], memfd, blat + i * slice, slice);
        if (rc == 0)
            rc = muser_map_slice(s, memfd, mlat + i * slice, slice);
    }
    shutdown(sv[0], SHUT_RDWR);
    pthread_join(th, NULL);
    close(sv[0]);
    close(sv[1]);
    *m = bench_percentile(mlat, MAP_ITERS, 0.5);
    *b = bench_percentile(blat, MAP_ITERS, 0.5);
    return rc;
}

/*
 * Round trips between two threads cost very different amounts depending on
 * whether the scheduler put the threads on one CPU or two (on this kind of
 * VM, waking an idle vCPU costs tens of microseconds), and it does not
 * place the raw pair and the muser pair alike: runs came out bimodal, with
 * either side 4x slower.  So both pairs run on the CPU we are on: every
 * wake-up is a local context switch, for the raw peer and the context
 * thread alike.  Threads inherit the mask from their creator.
 */
/* Pin the calling thread (and the threads it creates) where it is now. */
static bool pin_here(cpu_set_t *saved)
{
    return bench_pin(sched_getcpu(), saved);
}

static int bench_map_unmap(void)
{
    double m[MAX_REPS], b[MAX_REPS];
    int reps = bench_reps > MAX_REPS ? MAX_REPS : bench_reps;
    int memfd = memfd_sized(MB2), rc;
    struct server s;
    cpu_set_t saved;
    bool pinned;

    if (memfd < 0)
        return -errno;
    pinned = pin_here(&saved);
    rc = server_start(&s, "map", 16, 0);
    if (rc < 0) {
        if (pinned)
            bench_unpin(&saved);
        close(memfd);
        return rc;
    }
    for (int r = 0; r < reps && rc == 0; r++)
        rc = map_rep(&s, memfd, &m[r], &b[r]);
    if (rc == 0)
        bench_report("dma", "map_unmap", bench_median(m, (size_t)reps) / 1000,
                     "us", bench_median(b, (size_t)reps) / 1000, "<= 1.3");
    server_stop(&s);
    if (pinned)
        bench_unpin(&saved);
    close(memfd);
    return rc;
}

/* ---------------- fault-in ---------------- */

#define FAULT_ITERS 2000
#define FAULT_WARMUP 100

static int raw_fault_slice(int memfd, uint64_t *lat, int iters)
{
    for (int i = 0; i < iters; i++) {
        uint64_t t0 = bench_now_ns();
        void *p = mmap(NULL, MB2, PROT_READ | PROT_WRITE, MAP_SHARED, memfd,
                       (off_t)((i & 1) * MB2));

        if (p == MAP_FAILED)
            return -errno;
        munmap(p, MB2);
        lat[i] = bench_now_ns() - t0;
    }
    return 0;
}

/*
 * Regions A and B with a budget of one region: each get of the one not
 * mapped mmaps it and evicts (munmaps) the other, which was put before.
 */
static int muser_fault_slice(struct server *s, const uint64_t iova[2],
                             uint64_t *lat, int iters)
{
    mu_sg_t sg[1];

    for (int i = 0; i < iters; i++) {
        uint64_t t0 = bench_now_ns();
        int rc = mu_dma_get(s->srv.ctx, iova[i & 1], 8, MU_DMA_READ, sg, 1);

        if (rc != 1)
            return rc < 0 ? rc : -EIO;
        mu_dma_put(s->srv.ctx, sg, 1);
        lat[i] = bench_now_ns() - t0;
    }
    return 0;
}

/* One repetition: p50 of each in ns, slices interleaved. */
static int fault_rep(struct server *s, int memfd, const uint64_t iova[2],
                     double *m, double *b)
{
    static uint64_t mlat[FAULT_ITERS], blat[FAULT_ITERS];
    const int slice = FAULT_ITERS / SLICES;     /* even: A, B alternate */
    struct mu_dma_stats before, after;
    int rc;

    mu_dma_get_stats(s->srv.ctx, &before);
    rc = raw_fault_slice(memfd, blat, FAULT_WARMUP);
    if (rc == 0)
        rc = muser_fault_slice(s, iova, mlat, FAULT_WARMUP);
    for (int i = 0; i < SLICES && rc == 0; i++) {
        rc = raw_fault_slice(memfd, blat + i * slice, slice);
        if (rc == 0)
            rc = muser_fault_slice(s, iova, mlat + i * slice, slice);
    }
    if (rc < 0)
        return rc;
    mu_dma_get_stats(s->srv.ctx, &after);
    /* Make sure every translation did map one region and evict the other
     * (the very first of the run found nothing to evict). */
    if (after.faults - before.faults != FAULT_WARMUP + FAULT_ITERS ||
        after.evictions - before.evictions < FAULT_WARMUP + FAULT_ITERS - 1) {
        fprintf(stderr, "dma: fault_in: %llu faults, %llu evictions\n",
                (unsigned long long)(after.faults - before.faults),
                (unsigned long long)(after.evictions - before.evictions));
        return -EIO;
    }
    *m = bench_percentile(mlat, FAULT_ITERS, 0.5);
    *b = bench_percentile(blat, FAULT_ITERS, 0.5);
    return 0;
}

static int bench_fault_in(bool sealed)
{
    const uint64_t iova[2] = { 0x40000000, 0x80000000 };
    double m[MAX_REPS], b[MAX_REPS];
    int reps = bench_reps > MAX_REPS ? MAX_REPS : bench_reps;
    int memfd = sealed ? memfd_sealed(2 * MB2) : memfd_sized(2 * MB2), rc;
    struct server s;

    if (memfd < 0)
        return -errno;
    rc = server_start(&s, "fault", 16, MB2);
    if (rc < 0) {
        close(memfd);
        return rc;
    }
    for (int i = 0; i < 2 && rc == 0; i++)
        rc = muc_dma_map(s.c, iova[i], MB2, memfd, (uint64_t)i * MB2,
                         MUC_DMA_READ | MUC_DMA_WRITE);
    for (int r = 0; r < reps && rc == 0; r++)
        rc = fault_rep(&s, memfd, iova, &m[r], &b[r]);
    if (rc == 0)
        bench_report("dma", sealed ? "fault_in" : "fault_in_unsealed",
                     bench_median(m, (size_t)reps) / 1000, "us",
                     bench_median(b, (size_t)reps) / 1000,
                     sealed ? "<= 1.2" : NULL);
    server_stop(&s);
    close(memfd);
    return rc;
}

int bench_dma(void)
{
    int rc;

    if ((rc = bench_lookup()) < 0)
        return rc;
    if ((rc = bench_map_unmap()) < 0)
        return rc;
    if ((rc = bench_fault_in(true)) < 0)
        return rc;
    return bench_fault_in(false);
}
