/*
 * nvme.c - the NVMe sample under load: 4 KiB random reads and writes at
 * queue depth 1 and 32 against a 256 MiB RAM namespace, once with polled
 * and once with trapped doorbells, driven by the driver-like client
 * (samples/nvme/driver).
 *
 * The device runs as its own process (the nvme sample binary), as it would
 * next to a VMM; this process plays guest and driver.  Completions are
 * found by spinning on the CQ phase tag (the I/O CQ has no interrupt,
 * like a Linux poll queue), so what is measured is the device path, not
 * wake-up latency.  The CQ is large and its head doorbell is rung lazily
 * (every 512 entries, see driver.h): with trapped doorbells each ring is
 * a message round trip, and a host that rang it after every completion
 * would pay two round trips per I/O instead of one.
 *
 * Baselines, measured in every repetition next to the I/O:
 *  - memcpy of the same 4 KiB blocks with the same access pattern (random
 *    blocks of a 256 MiB shared-memory buffer to or from 32 block buffers),
 *    as a rate: the physical limit of moving these bytes on this machine.
 *    The IOPS rows are compared with it;
 *  - one raw UNIX-socket round trip (32 bytes out, 36 back; raw.c), the
 *    latency rows are compared with it: a trapped doorbell is one message
 *    round trip, so a trapped QD1 I/O cannot beat it.
 *
 * Each workload runs for a fixed time per repetition after a short warm-up
 * (which also gets the poller out of its idle naps); latency is per I/O,
 * from building the command to seeing its completion.  Medians over
 * bench_reps repetitions are reported.  The namespaces are written once
 * before, so no workload pays for first-touch page faults.
 *
 * Extra rows: QD1 IOPS, QD32 latency, p99s, and nvme_reg_read_lat, one
 * register read of the device (the muser round trip a trapped doorbell
 * rides on: the floor of a trapped QD1 I/O).
 *
 * nvme_randread_qd32_polled_fdless_iops: QD32 random reads on the polled
 * device with the queue pair and buffers in guest memory without an fd,
 * so every fetch, completion and transfer is a DMA message this process
 * serves; a register read every 10 ms rides along and its worst latency
 * is reported (..._reg_read_max_lat, against the register read p99): it
 * shows whether the poller holds up the context thread while it waits
 * for its DMA replies.
 *
 * nvme_randread_qd128_q4_polled_iops_t1/_t2: 4 KiB random reads, 32 in
 * flight on each of 4 I/O queue pairs (QD128 in all), one client thread
 * going round the queues, against a polled device with 1 and 2 poller
 * threads (--pollers; queue pair q on poller q % N).  Each against the
 * memcpy limit, and next to it the IOPS per poller thread against the
 * anchor of issue 15, SPDK's vfio-user NVMe target at 2.14 M IOPS on one
 * core (..._per_core_t1/_t2: ratio = our IOPS per poller / 2.14 M).  The
 * t1 device is pinned like the others; the t2 device may use every CPU
 * we may, so that its two pollers can run at once where there are CPUs
 * for them (a note line says what this machine gives them).
 */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"
#include "driver.h"
#include "raw.h"

#define MIB (1024ull * 1024ull)
#define NS_SIZE (256 * MIB)
#define BLK 4096u
#define NR_BLOCKS (NS_SIZE / BLK)
#define QD_MAX 32u
#define MQ_NQ 4u                    /* the multi-queue rows: 4 queues */
#define MQ_QD 32u                   /* 32 in flight on each: QD128 */
#define SPDK_CORE_IOPS 2.14e6       /* the anchor: SPDK vfio-user, 1 core */
#define IO_QSIZE 64u                /* SQ entries: room for QD_MAX */
#define IO_CQ_SIZE 1024u            /* large CQ: lazy head doorbells */
#define CQ_DB_BATCH 512u
#define PRECOND_XFER (128u * 1024u) /* MDTS */
#define PRECOND_QD 16u

#define RUN_NS 400000000ull         /* each workload, each repetition */
#define WARM_NS 30000000ull
#define MEMCPY_NS 300000000ull      /* each direction */
#define RTT_WARMUP 1000u
#define RTT_ITERS 10000u
#define MAX_LAT (4u << 20)          /* latency samples kept per run */
#define STUCK_NS 5000000000ull      /* no completion this long: give up */
#define SPIN_YIELD 20000u           /* spins (~100 us) before yielding */

/* --nvme PATH of muser-bench (muser-bench.c); NULL: find it. */
const char *bench_nvme_bin;

/*
 * Placement.  A polled doorbell needs a poller with a CPU of its own (a
 * poller sharing a CPU with the spinning host gets it only at timer
 * ticks), and a wake-up on another CPU costs more than a switch on the
 * same one (notably in a VM), so where things run decides the numbers.
 * With two CPUs or more: this thread on the first we may use, the device
 * processes on the last, and the raw baseline's two threads likewise.
 */
static int cpu_host = -1, cpu_dev = -1;
static cpu_set_t cpus_all;          /* every CPU we may use */
static int nr_cpus_all;

struct dev {
    const char *mode;
    const char *name;           /* files and serial; NULL: mode */
    unsigned pollers;           /* --pollers; 0: the device's default */
    unsigned nr_q;              /* I/O queue pairs; 0: by mode */
    bool any_cpu;               /* not pinned: every CPU we may use */
    enum nvd_db_mode db;
    pid_t pid;
    char sock[160], log[160];
    struct nvd *d;
    uint32_t nsid;
    uint64_t nlb;
    uint64_t bufs;              /* QD_MAX blocks of guest memory */
};

struct result {
    double iops;
    double p50, p99;            /* us */
};

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}

/* xorshift64*: cheap enough not to show next to a 4 KiB copy. */
static uint64_t rnd(uint64_t *s)
{
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return *s * 0x2545f4914f6cdd1dull;
}

/* ---------------- the device process ---------------- */

/*
 * The sample next to this binary in the build tree (bench/../samples/nvme/muser-nvme)
 * survives moving the build directory; the path meson gave us at build
 * time is the fallback.
 */
const char *bench_nvme_path(char *buf, size_t len)
{
    char self[PATH_MAX];
    ssize_t n;

    if (bench_nvme_bin != NULL)
        return bench_nvme_bin;
    n = readlink("/proc/self/exe", self, sizeof(self) - 1);
    if (n > 0) {
        self[n] = '\0';
        snprintf(buf, len, "%s/../samples/nvme/muser-nvme", dirname(self));
        if (access(buf, X_OK) == 0)
            return buf;
    }
#ifdef NVME_BIN
    if (access(NVME_BIN, X_OK) == 0)
        return NVME_BIN;
#endif
    return NULL;
}

static void show_log(const struct dev *v)
{
    char line[256];
    FILE *f = fopen(v->log, "r");

    if (f == NULL)
        return;
    fprintf(stderr, "nvme (%s) logged:\n", v->mode);
    while (fgets(line, sizeof(line), f) != NULL)
        fprintf(stderr, "  %s", line);
    fclose(f);
}

static int dev_spawn(struct dev *v, const char *bin)
{
    const char *name = v->name != NULL ? v->name : v->mode;
    char serial[32], pollers[16];
    const char *argv[] = {
        bin, "--size", "256M", "--lba-size", "4096", "--doorbells", v->mode,
        "--once", "--serial", serial, v->sock, NULL, NULL, NULL,
    };
    cpu_set_t saved;
    bool unpinned = false;

    if (v->pollers > 0) {
        /* Before the socket: options first. */
        snprintf(pollers, sizeof(pollers), "%u", v->pollers);
        argv[12] = argv[10];
        argv[10] = "--pollers";
        argv[11] = pollers;
    }
    snprintf(serial, sizeof(serial), "BENCH-%s", name);
    snprintf(v->sock, sizeof(v->sock), "%s/nvme-%s.sock", bench_tmpdir(),
             name);
    snprintf(v->log, sizeof(v->log), "%s/nvme-%s.log", bench_tmpdir(), name);
    /* This thread is pinned and the child inherits it: widen it for the
     * fork when the device may use every CPU. */
    if (v->any_cpu && nr_cpus_all > 0 &&
        pthread_getaffinity_np(pthread_self(), sizeof(saved), &saved) == 0)
        unpinned = pthread_setaffinity_np(pthread_self(), sizeof(cpus_all),
                                          &cpus_all) == 0;
    v->pid = bench_spawn(argv, v->log, v->any_cpu ? -1 : cpu_dev);
    if (unpinned)
        pthread_setaffinity_np(pthread_self(), sizeof(saved), &saved);
    return v->pid < 0 ? (int)v->pid : 0;
}

/* Collect the device; with --once it leaves when we disconnect. */
static void dev_reap(struct dev *v)
{
    int st = bench_reap(&v->pid);

    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
        fprintf(stderr, "nvme (%s) exit status %#x\n", v->mode, st);
        show_log(v);
    }
}

static void dev_stop(struct dev *v)
{
    if (v->d != NULL) {
        int rc = nvd_shutdown(v->d);

        if (rc != 0)
            fprintf(stderr, "nvme (%s): shutdown: %s\n", v->mode,
                    rc < 0 ? strerror(-rc) : "NVMe error");
        nvd_close(v->d);
        v->d = NULL;
    }
    dev_reap(v);
}

/*
 * Only the device being measured runs.  An idle polled device still wakes
 * every 200 us to look at its doorbells, on the CPU the other device and
 * the baselines' server thread use: noise in exactly what they measure.
 * So the devices are stopped (SIGSTOP) outside their own workloads.
 */
static void dev_run(struct dev *v, bool run)
{
    if (v->pid > 0)
        kill(v->pid, run ? SIGCONT : SIGSTOP);
}

/* Write every block once with big sequential writes: a fresh RAM
 * namespace is a sparse memfd, and the first touch of each page would
 * otherwise be a page fault inside the measurement. */
static int precondition(struct dev *v)
{
    struct nvme_cqe cqe[PRECOND_QD];
    uint64_t buf = nvd_alloc(v->d, PRECOND_XFER, BLK);
    uint32_t nlb = PRECOND_XFER / BLK;
    uint64_t next = 0, done = 0, total = v->nlb / nlb;
    unsigned inflight = 0;

    if (buf == 0)
        return -ENOMEM;
    memset(nvd_va(v->d, buf), 0x5a, PRECOND_XFER);
    while (done < total) {
        int n;

        while (inflight < PRECOND_QD && next < total) {
            n = nvd_submit_rw(v->d, 1, NVME_IO_WRITE, v->nsid, next * nlb,
                              nlb, buf, PRECOND_XFER);
            if (n < 0)
                return n;
            next++;
            inflight++;
        }
        if ((n = nvd_ring(v->d, 1)) < 0)
            return n;
        n = nvd_reap(v->d, 1, cqe, PRECOND_QD, 5000);
        if (n <= 0)
            return n < 0 ? n : -ETIMEDOUT;
        for (int i = 0; i < n; i++) {
            if (NVME_CQE_ST(cqe[i].status) != 0)
                return -EIO;
        }
        inflight -= (unsigned)n;
        done += (uint64_t)n;
    }
    return 0;
}

static int dev_start(struct dev *v, const char *bin)
{
    struct nvd_opts o = {
        .sock = v->sock,
        .mem_size = 16 * MIB,
        .nr_regions = 1,
        .db = v->db,
        .irq = NVD_IRQ_MSIX,
        .poll_queues = true,
        .cq_db_batch = CQ_DB_BATCH,
        /*
         * Queue 2 and its buffers without an fd: on the polled device only
         * (run_fdless).  Memory without an fd moves a trapped device's
         * commands to its poller thread (the context thread never waits
         * for the client), which the trapped figures must not measure.
         */
        .nr_io_queues = v->nr_q ? v->nr_q : v->db == NVD_DB_POLLED ? 2 : 1,
        .fdless_size = v->db == NVD_DB_POLLED && v->nr_q == 0 ? 1 * MIB : 0,
        .io_qsize = IO_QSIZE,
        .io_cq_size = IO_CQ_SIZE,
    };
    int rc = dev_spawn(v, bin), st;

    if (rc < 0)
        return rc;
    for (int i = 0; i < 500; i++) {
        rc = nvd_open(&v->d, &o);
        if (rc != -ENOENT && rc != -ECONNREFUSED)
            break;
        if (waitpid(v->pid, &st, WNOHANG) == v->pid) {
            v->pid = 0;
            rc = -ECHILD;
            break;
        }
        usleep(10000);
    }
    if (rc == 0)
        rc = nvd_bringup(v->d);
    if (rc == 0 && (v->d->nr_ns < 1 || v->d->ns[0].lba_shift != 12 ||
                    v->d->ns[0].nsze < QD_MAX ||
                    (v->nr_q != 0 && v->d->nr_ioq < v->nr_q)))
        rc = -EPROTO;
    if (rc == 0) {
        v->nsid = v->d->ns[0].nsid;
        v->nlb = v->d->ns[0].nsze;
        v->bufs = nvd_alloc(v->d, MQ_NQ * MQ_QD * BLK, BLK);
        rc = v->bufs == 0 ? -ENOMEM : precondition(v);
    }
    if (rc < 0) {
        fprintf(stderr, "nvme (%s) on %s: %s\n", v->mode, v->sock,
                rc == -ECHILD ? "the device exited" : strerror(-rc));
        show_log(v);
        dev_stop(v);
    }
    return rc;
}

/* ---------------- the workload ---------------- */

struct load {
    struct dev *v;
    uint8_t opc;
    unsigned qd;
    uint64_t seed;
    uint64_t *lat;              /* NULL: warm-up, keep nothing */
    size_t nr_lat;
    uint64_t ios;
    uint64_t t_sub[IO_QSIZE];   /* by CID */
    uint16_t buf_of[IO_QSIZE];  /* by CID */
    uint16_t free_buf[QD_MAX];
    unsigned nr_free;
};

static int submit(struct load *l)
{
    struct dev *v = l->v;
    unsigned b = l->free_buf[--l->nr_free];
    uint64_t lba = rnd(&l->seed) % v->nlb;
    uint64_t t = bench_now_ns();
    int cid = nvd_submit_rw(v->d, 1, l->opc, v->nsid, lba, 1,
                            v->bufs + (uint64_t)b * BLK, BLK);

    if (cid < 0 || cid >= (int)IO_QSIZE) {
        l->free_buf[l->nr_free++] = (uint16_t)b;
        return cid < 0 ? cid : -EPROTO;
    }
    l->t_sub[cid] = t;
    l->buf_of[cid] = (uint16_t)b;
    return 0;
}

/* Keep qd commands in flight for dur_ns, then drain. */
static int run_load(struct load *l, uint64_t dur_ns, struct result *res)
{
    struct nvd *d = l->v->d;
    struct nvme_cqe cqe[QD_MAX];
    uint64_t t0, t = 0, end;
    unsigned inflight = 0;
    int rc;

    l->nr_free = 0;
    for (unsigned i = 0; i < QD_MAX; i++)
        l->free_buf[l->nr_free++] = (uint16_t)i;
    l->nr_lat = 0;
    l->ios = 0;
    t0 = bench_now_ns();
    end = t0 + dur_ns;
    for (; inflight < l->qd; inflight++) {
        if ((rc = submit(l)) < 0)
            return rc;
    }
    if ((rc = nvd_ring(d, 1)) < 0)
        return rc;
    while (inflight > 0) {
        unsigned refill = 0;
        int n;

        /* The phase tag alone: no interrupt, no sleeping.  Only after
         * a long while (far beyond any polled completion) yield, in case
         * the device's poller has to share our CPU. */
        for (unsigned spins = 0; !nvd_cq_ready(d, 1); spins++) {
            cpu_relax();
            if (spins < SPIN_YIELD)
                continue;
            sched_yield();
            if ((spins & 0xfff) == 0xfff &&
                bench_now_ns() - (t != 0 ? t : t0) > STUCK_NS)
                return -ETIMEDOUT;
        }
        t = bench_now_ns();
        n = nvd_reap(d, 1, cqe, QD_MAX, 0);
        if (n < 0)
            return n;
        for (int i = 0; i < n; i++) {
            uint16_t cid = cqe[i].cid;

            if (NVME_CQE_ST(cqe[i].status) != 0 || cid >= IO_QSIZE) {
                fprintf(stderr, "nvme (%s): I/O failed, status %#x\n",
                        l->v->mode, NVME_CQE_ST(cqe[i].status));
                return -EIO;
            }
            if (l->lat != NULL && l->nr_lat < MAX_LAT)
                l->lat[l->nr_lat++] = t - l->t_sub[cid];
            l->free_buf[l->nr_free++] = l->buf_of[cid];
            l->ios++;
            inflight--;
        }
        while (t < end && inflight < l->qd) {
            if ((rc = submit(l)) < 0)
                return rc;
            inflight++;
            refill++;
        }
        if (refill > 0 && (rc = nvd_ring(d, 1)) < 0)
            return rc;
    }
    if (res != NULL) {
        res->iops = (double)l->ios * 1e9 / (double)(t - t0);
        res->p99 = bench_percentile(l->lat, l->nr_lat, 0.99) / 1000;
        res->p50 = bench_percentile(l->lat, l->nr_lat, 0.50) / 1000;
    }
    return 0;
}

/*
 * A register read (CSTS) of the device: one muser round trip to the
 * device process, the same bytes as the raw baseline.  A trapped doorbell
 * rides on exactly such a round trip, so this is the floor of a trapped
 * QD1 I/O, and the rest of it is the NVMe command.
 */
static int reg_read_lat(struct dev *v, uint64_t *lat, double *p50,
                        double *p99)
{
    for (unsigned i = 0; i < RTT_WARMUP + RTT_ITERS; i++) {
        uint64_t t0 = bench_now_ns();
        uint32_t csts;
        int rc = nvd_read32(v->d, NVME_REG_CSTS, &csts);

        if (rc < 0)
            return rc;
        if (i >= RTT_WARMUP)
            lat[i - RTT_WARMUP] = bench_now_ns() - t0;
    }
    *p99 = bench_percentile(lat, RTT_ITERS, 0.99) / 1000;
    *p50 = bench_percentile(lat, RTT_ITERS, 0.50) / 1000;
    return 0;
}

/* ---------------- fd-less guest memory ---------------- */

#define FDLESS_REG_NS 10000000ull   /* a register read this often */

/* See the top of the file.  Queue pair 2, made on first use. */
static int run_fdless(struct dev *v, uint64_t dur_ns, uint64_t seed,
                      double *iops, double *reg_max_us)
{
    struct nvd *d = v->d;
    uint64_t base = d->fdless_iova, t0, t, end, next_reg, ios = 0, worst = 0;
    struct nvme_cqe cqe[QD_MAX];
    unsigned inflight = 0;
    int rc, n;

    if (!d->ioq[2].live) {
        rc = nvd_create_qpair_at(d, 2, IO_QSIZE, IO_QSIZE, base + 512 * 1024,
                                 base + 768 * 1024);
        if (rc != 0)
            return rc < 0 ? rc : -EIO;
    }
    t0 = t = bench_now_ns();
    end = t0 + dur_ns;
    next_reg = t0 + FDLESS_REG_NS;
    do {
        unsigned added = 0;

        while (t < end && inflight < QD_MAX) {
            struct nvd_queue *q = &d->ioq[2];
            uint16_t slot = q->free_cid[q->nr_free - 1];  /* its cid */

            rc = nvd_submit_rw(d, 2, NVME_IO_READ, v->nsid, rnd(&seed) % v->nlb,
                               1, base + (uint64_t)slot * BLK, BLK);
            if (rc < 0)
                return rc;
            inflight++;
            added++;
        }
        if (added > 0 && (rc = nvd_ring(d, 2)) < 0)
            return rc;
        /* Waits serving the device's DMA requests. */
        n = nvd_reap(d, 2, cqe, QD_MAX, (int)(STUCK_NS / 1000000));
        if (n <= 0)
            return n < 0 ? n : -ETIMEDOUT;
        for (int i = 0; i < n; i++) {
            if (NVME_CQE_ST(cqe[i].status) != 0)
                return -EIO;
        }
        ios += (uint64_t)n;
        inflight -= (unsigned)n;
        t = bench_now_ns();
        if (t >= next_reg) {
            uint32_t csts;

            rc = nvd_read32(d, NVME_REG_CSTS, &csts);
            if (rc < 0)
                return rc;
            next_reg = bench_now_ns();
            if (next_reg - t > worst)
                worst = next_reg - t;
            next_reg += FDLESS_REG_NS;
        }
    } while (inflight > 0 || t < end);
    if (iops != NULL) {
        *iops = (double)ios * 1e9 / (double)(t - t0);
        *reg_max_us = (double)worst / 1000;
    }
    return 0;
}

/* ---------------- several queues ---------------- */

/* What one queue of the multi-queue load has: its buffers (MQ_QD blocks
 * of its own), which CID uses which, how many are in flight. */
struct mq_queue {
    uint16_t free_buf[MQ_QD];
    unsigned nr_free;
    uint16_t buf_of[IO_QSIZE];
    unsigned inflight;
};

static int mq_submit(struct dev *v, unsigned qid, struct mq_queue *q,
                     uint64_t *seed)
{
    unsigned b = q->free_buf[--q->nr_free];
    uint64_t buf = v->bufs + ((uint64_t)(qid - 1) * MQ_QD + b) * BLK;
    int cid = nvd_submit_rw(v->d, qid, NVME_IO_READ, v->nsid,
                            rnd(seed) % v->nlb, 1, buf, BLK);

    if (cid < 0 || cid >= (int)IO_QSIZE) {
        q->free_buf[q->nr_free++] = (uint16_t)b;
        return cid < 0 ? cid : -EPROTO;
    }
    q->buf_of[cid] = (uint16_t)b;
    q->inflight++;
    return 0;
}

/* Fill queue qid up to MQ_QD in flight (while t < end) and ring it. */
static int mq_refill(struct dev *v, unsigned qid, struct mq_queue *q,
                     uint64_t *seed, bool more)
{
    unsigned added = 0;
    int rc;

    while (more && q->inflight < MQ_QD) {
        if ((rc = mq_submit(v, qid, q, seed)) < 0)
            return rc;
        added++;
    }
    return added > 0 ? nvd_ring(v->d, qid) : 0;
}

/*
 * 4 KiB random reads, MQ_QD in flight on each of MQ_NQ queues, for dur_ns,
 * then drained: one thread going round the queues, reaping what each has
 * and refilling it.  IOPS in *iops (when not NULL).
 */
static int run_multiq(struct dev *v, uint64_t dur_ns, uint64_t seed,
                      double *iops)
{
    struct mq_queue q[MQ_NQ + 1];
    struct nvme_cqe cqe[MQ_QD];
    uint64_t t0 = bench_now_ns(), t = t0, last = t0, end = t0 + dur_ns;
    uint64_t ios = 0;
    unsigned inflight = 0, spins = 0;
    int rc;

    memset(q, 0, sizeof(q));
    for (unsigned i = 1; i <= MQ_NQ; i++) {
        for (unsigned b = 0; b < MQ_QD; b++)
            q[i].free_buf[q[i].nr_free++] = (uint16_t)b;
        if ((rc = mq_refill(v, i, &q[i], &seed, true)) < 0)
            return rc;
        inflight += q[i].inflight;
    }
    while (inflight > 0) {
        bool any = false;

        for (unsigned i = 1; i <= MQ_NQ; i++) {
            int n;

            if (q[i].inflight == 0 || !nvd_cq_ready(v->d, i))
                continue;
            n = nvd_reap(v->d, i, cqe, MQ_QD, 0);
            if (n < 0)
                return n;
            for (int k = 0; k < n; k++) {
                uint16_t cid = cqe[k].cid;

                if (NVME_CQE_ST(cqe[k].status) != 0 || cid >= IO_QSIZE) {
                    fprintf(stderr, "nvme (%s): I/O failed, status %#x\n",
                            v->name, NVME_CQE_ST(cqe[k].status));
                    return -EIO;
                }
                q[i].free_buf[q[i].nr_free++] = q[i].buf_of[cid];
                q[i].inflight--;
            }
            ios += (uint64_t)n;
            inflight -= (unsigned)n;
            any = any || n > 0;
            t = bench_now_ns();
            inflight -= q[i].inflight;
            if ((rc = mq_refill(v, i, &q[i], &seed, t < end)) < 0)
                return rc;
            inflight += q[i].inflight;
        }
        if (any) {
            last = t;
            spins = 0;
            continue;
        }
        /* As run_load: spin, and only after a long while yield, in case
         * a poller has to share our CPU. */
        cpu_relax();
        if (++spins < SPIN_YIELD)
            continue;
        sched_yield();
        if ((spins & 0xfff) == 0xfff && bench_now_ns() - last > STUCK_NS)
            return -ETIMEDOUT;
    }
    if (iops != NULL)
        *iops = (double)ios * 1e9 / (double)(t - t0);
    return 0;
}

/* ---------------- the memcpy baseline ---------------- */

struct copy_base {
    int ns_fd, buf_fd;
    uint8_t *ns;                /* NS_SIZE, like the device's namespace */
    uint8_t *bufs;              /* QD_MAX blocks, like guest buffers */
};

/* Shared memory like both sides of the device's copy: a memfd mapping
 * (the RAM namespace) and another (guest memory), all pages present. */
static int copy_base_init(struct copy_base *cb)
{
    cb->ns_fd = memfd_create("bench-ns", MFD_CLOEXEC);
    cb->buf_fd = memfd_create("bench-bufs", MFD_CLOEXEC);
    if (cb->ns_fd < 0 || cb->buf_fd < 0 ||
        ftruncate(cb->ns_fd, NS_SIZE) < 0 ||
        ftruncate(cb->buf_fd, QD_MAX * BLK) < 0)
        return -errno;
    cb->ns = mmap(NULL, NS_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED,
                  cb->ns_fd, 0);
    cb->bufs = mmap(NULL, QD_MAX * BLK, PROT_READ | PROT_WRITE, MAP_SHARED,
                    cb->buf_fd, 0);
    if (cb->ns == MAP_FAILED || cb->bufs == MAP_FAILED)
        return -errno;
    memset(cb->ns, 0x5a, NS_SIZE);
    memset(cb->bufs, 0xa5, QD_MAX * BLK);
    return 0;
}

static void copy_base_fini(struct copy_base *cb)
{
    if (cb->ns != NULL && cb->ns != MAP_FAILED)
        munmap(cb->ns, NS_SIZE);
    if (cb->bufs != NULL && cb->bufs != MAP_FAILED)
        munmap(cb->bufs, QD_MAX * BLK);
    if (cb->ns_fd >= 0)
        close(cb->ns_fd);
    if (cb->buf_fd >= 0)
        close(cb->buf_fd);
}

/* 4 KiB copies per second: a read moves a random namespace block into the
 * next buffer, a write the other way. */
static double copy_rate(struct copy_base *cb, bool write, uint64_t seed)
{
    uint64_t n = 0, t0 = bench_now_ns(), t, end = t0 + MEMCPY_NS;

    do {
        for (unsigned i = 0; i < 64; i++, n++) {
            uint8_t *blk = cb->ns + (rnd(&seed) % NR_BLOCKS) * BLK;
            uint8_t *buf = cb->bufs + (n % QD_MAX) * BLK;

            if (write)
                memcpy(blk, buf, BLK);
            else
                memcpy(buf, blk, BLK);
        }
        /* The copies are the point: do not let them be optimised out. */
        __asm__ __volatile__("" : : "r"(cb->bufs), "r"(cb->ns) : "memory");
        t = bench_now_ns();
    } while (t < end);
    return (double)n * 1e9 / (double)(t - t0);
}

/* ---------------- reporting ---------------- */

enum { OP_READ, OP_WRITE, NR_OPS };
enum { QD1, QD32, NR_QDS };
enum { POLLED, TRAPPED, NR_MODES };
/* The multi-queue devices: polled, 1 and 2 pollers (devs[NR_MODES + t]). */
enum { MQ_T1, MQ_T2, NR_MQ };
static const unsigned mq_pollers[NR_MQ] = { 1, 2 };

static const char *const op_name[NR_OPS] = { "randread", "randwrite" };
static const uint8_t op_code[NR_OPS] = { NVME_IO_READ, NVME_IO_WRITE };
static const unsigned qd_of[NR_QDS] = { 1, QD_MAX };
static const char *const mode_name[NR_MODES] = { "polled", "trapped" };

struct all {
    double *copy[NR_OPS];               /* [rep] */
    double *rtt50, *rtt99;              /* [rep], us */
    double *reg50, *reg99;              /* [rep], us */
    struct result *io[NR_OPS][NR_MODES][NR_QDS];        /* [rep] */
    double *fdless_iops, *fdless_reg_max;               /* [rep] */
    double *mq_iops[NR_MQ];                             /* [rep] */
};

static double med(double *v, int reps)
{
    return bench_median(v, (size_t)reps);
}

static double med_field(const struct result *r, int reps, size_t off)
{
    double v[1000];     /* muser-bench caps --reps at 1000 */

    for (int i = 0; i < reps; i++)
        v[i] = *(const double *)((const char *)&r[i] + off);
    return bench_median(v, (size_t)reps);
}

static void report(struct all *a, int reps)
{
    double rtt50 = med(a->rtt50, reps), rtt99 = med(a->rtt99, reps);
    char m[64];

    bench_report("nvme", "nvme_reg_read_lat_p50", med(a->reg50, reps), "us",
                 rtt50, NULL);
    bench_report("nvme", "nvme_reg_read_lat_p99", med(a->reg99, reps), "us",
                 rtt99, NULL);
    bench_report("nvme", "nvme_randread_qd32_polled_fdless_iops",
                 med(a->fdless_iops, reps), "iops",
                 med(a->copy[OP_READ], reps), NULL);
    bench_report("nvme", "nvme_randread_qd32_polled_fdless_reg_read_max_lat",
                 med(a->fdless_reg_max, reps), "us", med(a->reg99, reps),
                 NULL);
    for (int t = 0; t < NR_MQ; t++) {
        double iops = med(a->mq_iops[t], reps);

        snprintf(m, sizeof(m), "nvme_randread_qd128_q4_polled_iops_t%u",
                 mq_pollers[t]);
        bench_report("nvme", m, iops, "iops", med(a->copy[OP_READ], reps),
                     NULL);
        snprintf(m, sizeof(m),
                 "nvme_randread_qd128_q4_polled_iops_per_core_t%u",
                 mq_pollers[t]);
        bench_report("nvme", m, iops / mq_pollers[t], "iops", SPDK_CORE_IOPS,
                     NULL);
    }
    for (int op = 0; op < NR_OPS; op++) {
        double copy = med(a->copy[op], reps);

        for (int mode = 0; mode < NR_MODES; mode++) {
            const struct result *q1 = a->io[op][mode][QD1];
            const struct result *q32 = a->io[op][mode][QD32];
            const char *on = op_name[op], *mn = mode_name[mode];

#define ROW(fmt, r, field, unit, base, target)                              \
    do {                                                                    \
        snprintf(m, sizeof(m), fmt, on, mn);                                \
        bench_report("nvme", m,                                             \
                     med_field(r, reps, offsetof(struct result, field)),   \
                     unit, base, target);                                   \
    } while (0)
            ROW("nvme_%s_qd32_%s_iops", q32, iops, "iops", copy,
                mode == POLLED ? ">= 0.3" : NULL);
            ROW("nvme_%s_qd1_%s_lat_p50", q1, p50, "us", rtt50,
                mode == TRAPPED ? "<= 1.5" : NULL);
            ROW("nvme_%s_qd1_%s_lat_p99", q1, p99, "us", rtt99, NULL);
            ROW("nvme_%s_qd1_%s_iops", q1, iops, "iops", copy, NULL);
            ROW("nvme_%s_qd32_%s_lat_p50", q32, p50, "us", rtt50, NULL);
            ROW("nvme_%s_qd32_%s_lat_p99", q32, p99, "us", rtt99, NULL);
#undef ROW
        }
    }
}

/* What the multi-queue rows mean, and what this machine lets t2 show. */
static void mq_notes(void)
{
    fprintf(stderr, "nvme: note: ..._per_core_tN is IOPS per poller thread; "
            "its baseline is the anchor, SPDK's vfio-user NVMe target at "
            "%.2f M IOPS on one core (ratio = our share of it)\n",
            SPDK_CORE_IOPS / 1e6);
    if (nr_cpus_all <= 2)
        fprintf(stderr, "nvme: note: %d CPU(s) here, and this process's "
                "client thread spins on one of them (CPU %d) to keep QD128 "
                "in flight: t1's poller has the other to itself, t2's two "
                "pollers have one CPU between them plus whatever the "
                "client leaves. So t2 shows that two pollers serve four "
                "queues correctly and what sharing costs; it cannot show "
                "how IOPS scale with poller cores, which needs a CPU per "
                "poller besides the client's\n", nr_cpus_all, cpu_host);
    else
        fprintf(stderr, "nvme: note: %d CPUs: t2's pollers may run on any "
                "(the client spins on CPU %d; the t1 device is pinned to "
                "CPU %d)\n", nr_cpus_all, cpu_host, cpu_dev);
}

/* ---------------- the benchmark ---------------- */

static int all_alloc(struct all *a, int reps)
{
    memset(a, 0, sizeof(*a));
    a->rtt50 = calloc((size_t)reps, sizeof(double));
    a->rtt99 = calloc((size_t)reps, sizeof(double));
    a->reg50 = calloc((size_t)reps, sizeof(double));
    a->reg99 = calloc((size_t)reps, sizeof(double));
    a->fdless_iops = calloc((size_t)reps, sizeof(double));
    a->fdless_reg_max = calloc((size_t)reps, sizeof(double));
    for (int t = 0; t < NR_MQ; t++) {
        a->mq_iops[t] = calloc((size_t)reps, sizeof(double));
        if (a->mq_iops[t] == NULL)
            return -ENOMEM;
    }
    if (a->rtt50 == NULL || a->rtt99 == NULL || a->reg50 == NULL ||
        a->reg99 == NULL || a->fdless_iops == NULL || a->fdless_reg_max == NULL)
        return -ENOMEM;
    for (int op = 0; op < NR_OPS; op++) {
        a->copy[op] = calloc((size_t)reps, sizeof(double));
        if (a->copy[op] == NULL)
            return -ENOMEM;
        for (int mode = 0; mode < NR_MODES; mode++) {
            for (int qd = 0; qd < NR_QDS; qd++) {
                a->io[op][mode][qd] = calloc((size_t)reps,
                                             sizeof(struct result));
                if (a->io[op][mode][qd] == NULL)
                    return -ENOMEM;
            }
        }
    }
    return 0;
}

static void all_free(struct all *a)
{
    free(a->rtt50);
    free(a->rtt99);
    free(a->reg50);
    free(a->reg99);
    free(a->fdless_iops);
    free(a->fdless_reg_max);
    for (int t = 0; t < NR_MQ; t++)
        free(a->mq_iops[t]);
    for (int op = 0; op < NR_OPS; op++) {
        free(a->copy[op]);
        for (int mode = 0; mode < NR_MODES; mode++) {
            for (int qd = 0; qd < NR_QDS; qd++)
                free(a->io[op][mode][qd]);
        }
    }
}

/* One repetition: the baselines, then every workload on both devices. */
static int one_rep(struct all *a, struct dev *devs, struct copy_base *cb,
                   struct load *l, int r)
{
    double p50, p99;
    int rc;

    rc = bench_raw_rtt(RTT_WARMUP, RTT_ITERS, RAW_REQ_BYTES, RAW_REPLY_BYTES,
                       cpu_host, cpu_dev, &p50, &p99);
    if (rc < 0)
        return rc;
    a->rtt50[r] = p50 / 1000;
    a->rtt99[r] = p99 / 1000;
    dev_run(&devs[TRAPPED], true);
    rc = reg_read_lat(&devs[TRAPPED], l->lat, &a->reg50[r], &a->reg99[r]);
    dev_run(&devs[TRAPPED], false);
    if (rc < 0)
        return rc;
    for (int op = 0; op < NR_OPS; op++)
        a->copy[op][r] = copy_rate(cb, op == OP_WRITE,
                                   0x9e3779b97f4a7c15ull + (uint64_t)r);
    for (int mode = 0; mode < NR_MODES && rc == 0; mode++) {
        dev_run(&devs[mode], true);
        for (int op = 0; op < NR_OPS && rc == 0; op++) {
            for (int qd = 0; qd < NR_QDS && rc == 0; qd++) {
                uint64_t *lat = l->lat;

                l->v = &devs[mode];
                l->opc = op_code[op];
                l->qd = qd_of[qd];
                /* A different block sequence for every run. */
                l->seed = 0x853c49e6748fea9bull ^
                          ((uint64_t)r << 8 | (uint64_t)(mode * 4 + op * 2 + qd));
                /* Warm up: caches, the device's lazy DMA mappings, and a
                 * poller that may be napping after the last workload. */
                l->lat = NULL;
                rc = run_load(l, WARM_NS, NULL);
                l->lat = lat;
                if (rc == 0)
                    rc = run_load(l, RUN_NS, &a->io[op][mode][qd][r]);
                if (rc < 0) {
                    fprintf(stderr, "nvme (%s) %s qd%u: %s\n", mode_name[mode],
                            op_name[op], qd_of[qd], strerror(-rc));
                    show_log(&devs[mode]);
                }
            }
        }
        dev_run(&devs[mode], false);
    }
    if (rc == 0) {
        uint64_t seed = 0x2545f4914f6cdd1dull + (uint64_t)r;

        dev_run(&devs[POLLED], true);
        rc = run_fdless(&devs[POLLED], WARM_NS, seed, NULL, NULL);
        if (rc == 0)
            rc = run_fdless(&devs[POLLED], RUN_NS, seed, &a->fdless_iops[r],
                            &a->fdless_reg_max[r]);
        if (rc < 0) {
            fprintf(stderr, "nvme (polled) fd-less randread qd32: %s\n",
                    strerror(-rc));
            show_log(&devs[POLLED]);
        }
        dev_run(&devs[POLLED], false);
    }
    for (int t = 0; t < NR_MQ && rc == 0; t++) {
        struct dev *v = &devs[NR_MODES + t];
        uint64_t seed = 0x9e3779b97f4a7c15ull ^ ((uint64_t)r << 4 | (uint64_t)t);

        dev_run(v, true);
        rc = run_multiq(v, WARM_NS, seed, NULL);
        if (rc == 0)
            rc = run_multiq(v, RUN_NS, seed + 1, &a->mq_iops[t][r]);
        if (rc < 0) {
            fprintf(stderr, "nvme (%s) randread qd128 over %u queues: %s\n",
                    v->name, MQ_NQ, strerror(-rc));
            show_log(v);
        }
        dev_run(v, false);
    }
    return rc;
}

static void pick_cpus(void)
{
    int first, last;

    bench_cpus(&first, &last);
    if (sched_getaffinity(0, sizeof(cpus_all), &cpus_all) == 0)
        nr_cpus_all = CPU_COUNT(&cpus_all);
    if (first >= 0 && last != first) {
        cpu_host = first;
        cpu_dev = last;
    }
}

int bench_nvme(void)
{
    struct dev devs[NR_MODES + NR_MQ] = {
        [POLLED] = { .mode = "polled", .db = NVD_DB_POLLED },
        [TRAPPED] = { .mode = "trapped", .db = NVD_DB_TRAPPED },
        [NR_MODES + MQ_T1] = { .mode = "polled", .name = "polled-t1",
                               .pollers = 1, .nr_q = MQ_NQ,
                               .db = NVD_DB_POLLED },
        [NR_MODES + MQ_T2] = { .mode = "polled", .name = "polled-t2",
                               .pollers = 2, .nr_q = MQ_NQ, .any_cpu = true,
                               .db = NVD_DB_POLLED },
    };
    struct copy_base cb = { .ns_fd = -1, .buf_fd = -1 };
    int reps = bench_reps, rc;
    char pathbuf[PATH_MAX];
    const char *bin = bench_nvme_path(pathbuf, sizeof(pathbuf));
    struct load *l = calloc(1, sizeof(*l));
    cpu_set_t old_cpus;
    bool pinned = false;
    struct all a;

    if (bin == NULL) {
        fprintf(stderr, "nvme: cannot find the nvme sample; give --nvme PATH\n");
        free(l);
        return -ENOENT;
    }
    pick_cpus();
    if (cpu_host >= 0) {
        pinned = bench_pin(cpu_host, &old_cpus);
        fprintf(stderr, "nvme: host side on CPU %d, devices on CPU %d\n",
                cpu_host, cpu_dev);
    } else {
        fprintf(stderr, "nvme: one CPU: host and device share it, polled "
                "doorbells will be slow\n");
    }
    rc = all_alloc(&a, reps);
    if (rc == 0 && l == NULL)
        rc = -ENOMEM;
    if (rc == 0 && (l->lat = malloc(MAX_LAT * sizeof(uint64_t))) == NULL)
        rc = -ENOMEM;
    if (rc == 0)
        rc = copy_base_init(&cb);
    for (int mode = 0; mode < NR_MODES + NR_MQ && rc == 0; mode++) {
        rc = dev_start(&devs[mode], bin);
        dev_run(&devs[mode], false);
    }
    for (int r = 0; r < reps && rc == 0; r++)
        rc = one_rep(&a, devs, &cb, l, r);
    for (int mode = 0; mode < NR_MODES + NR_MQ; mode++) {
        dev_run(&devs[mode], true);
        dev_stop(&devs[mode]);
    }
    if (rc == 0) {
        report(&a, reps);
        mq_notes();
    }
    if (pinned)
        bench_unpin(&old_cpus);
    copy_base_fini(&cb);
    all_free(&a);
    if (l != NULL)
        free(l->lat);
    free(l);
    return rc;
}
