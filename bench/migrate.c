/*
 * migrate.c - live migration of the nvme sample with a 64 MiB RAM
 * namespace, preconditioned with data.  The nvme sample pre-copies: in
 * PRE_COPY it streams its namespace in 64 KiB granules while it runs,
 * then the granules written since, pass after pass; STOP_COPY carries
 * the controller's state and the granules still dirty.  muc_migrate()
 * does the PRE_COPY rounds, as a VMM would: up to 8, until a round brings
 * less than one read (1 MiB) of data.
 *
 * The downtime is from the source leaving RUNNING (for STOP_COPY) to the
 * destination reaching RUNNING, as muc_migrate() measures it
 * (muser-client.h), with the STOP_COPY stream copied in between by this
 * process (the VMM's part: MIG_DATA_READ from the source, MIG_DATA_WRITE
 * to the destination).
 *
 * Baseline, measured in every repetition next to the migration: the
 * namespace's bytes (64 MiB) written by one process into a UNIX stream
 * socket, in chunks of the size the migration moves, and read by another
 * process into shared memory (a memfd mapping, as the destination's RAM
 * namespace is), until the reader acknowledges the last byte.  The reader
 * prepares that memory before the clock starts, as the nvme destination
 * does when it enters RESUMING (before the source stops), and reads each
 * chunk into one reused buffer and copies it from there, as the
 * destination does too: on the VMs here the first touch of a page by the
 * kernel costs a fault in the host even when user space touched it
 * already, so reading straight into the big mapping is several times
 * slower than going through a small buffer that stays warm.  That is the
 * floor of moving the namespace between two processes on this machine in
 * the downtime, which is what a device without pre-copy must do.
 *
 * Rows (medians over the repetitions):
 *   migrate_downtime             idle device, pre-copy first (ms; ratio
 *                                to the baseline; target <= 1.5)
 *   migrate_downtime_vs_fresh_copy  the same against a reader that reads
 *                                straight into fresh memory (for scale)
 *   migrate_downtime_bytes       what the downtime carried (the state
 *                                size: registers, queues, logs; against
 *                                the namespace's bytes)
 *   migrate_precopy_time         the migration's time before the stop
 *                                (ms: its whole time minus the downtime:
 *                                the destination preparing its memory
 *                                on RESUMING, and the PRE_COPY rounds,
 *                                the source running; against the
 *                                baseline, for scale)
 *   migrate_stream_bytes         every byte streamed, pre-copy and stop
 *   migrate_downtime_writes      the same migration with a light write
 *                                workload during pre-copy (one 4 KiB
 *                                write after each 1 MiB read, which
 *                                dirties granules behind the passes,
 *                                and 4 more before the stop), driven
 *                                here by hand as muc_migrate() does,
 *                                the stop-and-copy unpipelined
 *   migrate_downtime_writes_bytes   what that downtime carried
 *   migrate_downtime_no_precopy  without PRE_COPY: the whole namespace
 *                                in STOP_COPY (for scale)
 * Each migration moves the device one hop further, to a freshly started
 * process, and reads two blocks back there to check the data came along.
 */
#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench.h"
#include "driver.h"
#include "raw.h"

#define MIB (1024ull * 1024ull)
#define NS_BYTES (64 * MIB)
#define BLK 4096u
#define XFER (128u * 1024u)         /* MDTS: preconditioning writes */

struct mdev {
    pid_t pid;
    char sock[160], log[160];
};

static int mdev_spawn(struct mdev *v, const char *bin, unsigned n)
{
    char serial[32];
    const char *argv[] = {
        bin, "--size", "64M", "--lba-size", "4096", "--doorbells", "trapped",
        "--once", "--serial", serial, v->sock, NULL,
    };

    snprintf(serial, sizeof(serial), "MIG-%u", n);
    snprintf(v->sock, sizeof(v->sock), "%s/mig-%u.sock", bench_tmpdir(), n);
    snprintf(v->log, sizeof(v->log), "%s/mig-%u.log", bench_tmpdir(), n);
    v->pid = bench_spawn(argv, v->log, -1);
    return v->pid < 0 ? (int)v->pid : 0;
}

/* With --once the device leaves when its client does. */
static void mdev_reap(struct mdev *v)
{
    int st = bench_reap(&v->pid);

    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
        fprintf(stderr, "migrate: nvme exit status %#x (log %s)\n", st,
                v->log);
}

static int connect_retry(muc_t **c, const char *sock)
{
    struct muc_opts o = { .max_msg_fds = 2 * (NVD_MAX_IOQ + 1) };
    int rc = -ENOENT;

    for (int i = 0; i < 500; i++) {
        rc = muc_connect(c, sock, &o);
        if (rc != -ENOENT && rc != -ECONNREFUSED)
            break;
        usleep(10000);
    }
    return rc;
}

static void pattern(uint8_t *p, size_t len, uint64_t lba)
{
    for (size_t i = 0; i < len; i += 8) {
        uint64_t w = (lba + i / BLK) * 0x9e3779b97f4a7c15ull ^ (i % BLK);

        memcpy(p + i, &w, 8);
    }
}

/* Write every block with known data: the state is real data, resident. */
static int precondition(struct nvd *d, uint64_t buf)
{
    for (uint64_t off = 0; off < NS_BYTES; off += XFER) {
        int st;

        pattern(nvd_va(d, buf), XFER, off / BLK);
        st = nvd_rw(d, 1, NVME_IO_WRITE, 1, off / BLK, XFER / BLK, buf, XFER);
        if (st != 0)
            return st < 0 ? st : -EIO;
    }
    return 0;
}

/* The first and the last block read back as written. */
static int check_data(struct nvd *d, uint64_t buf)
{
    uint8_t want[BLK];
    uint64_t lbas[2] = { 0, NS_BYTES / BLK - 1 };

    for (int i = 0; i < 2; i++) {
        int st = nvd_rw(d, 1, NVME_IO_READ, 1, lbas[i], 1, buf, BLK);

        if (st != 0)
            return st < 0 ? st : -EIO;
        pattern(want, BLK, lbas[i]);
        if (memcmp(nvd_va(d, buf), want, BLK) != 0)
            return -EBADMSG;
    }
    return 0;
}

/* ---------------- the baseline ---------------- */

/*
 * bytes over a socketpair from this process to a child, chunk bytes a
 * write, the child putting them in a memfd mapping and answering one
 * byte at the end.  prepared: the child has allocated and touched every
 * page of the mapping before the clock starts, as the nvme destination
 * does with its staging memory when it enters RESUMING, and reads into a
 * warm chunk-sized buffer then copies; else it reads straight into the
 * fresh mapping.  Returns the time in ns, or 0 on failure.
 */
static uint64_t socket_copy(const uint8_t *src, uint64_t bytes, size_t chunk,
                            bool prepared)
{
    int sv[2], st;
    uint64_t t0, t1 = 0;
    uint8_t ack = 0;
    pid_t pid;

    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
        return 0;
    fflush(NULL);
    pid = fork();
    if (pid < 0) {
        close(sv[0]);
        close(sv[1]);
        return 0;
    }
    if (pid == 0) {
        int fd = memfd_create("base", MFD_CLOEXEC);
        uint8_t *dst, *bounce = malloc(chunk);

        close(sv[0]);
        if (fd < 0 || ftruncate(fd, (off_t)bytes) < 0 || bounce == NULL)
            _exit(1);
        memset(bounce, 0, chunk);
        dst = mmap(NULL, bytes, PROT_READ | PROT_WRITE,
                   MAP_SHARED | MAP_NORESERVE, fd, 0);
        if (dst == MAP_FAILED)
            _exit(1);
        /* As the destination's staging memory (ns_populate()). */
        if (prepared) {
            (void)fallocate(fd, 0, 0, (off_t)bytes);
            for (uint64_t off = 0; off < bytes; off += 4096)
                ((volatile uint8_t *)dst)[off] = 0;
        }
        /* Ready: the parent starts its clock on this byte. */
        if (bench_full_io(sv[1], &ack, 1, true) < 0)
            _exit(1);
        for (uint64_t off = 0; off < bytes; off += chunk) {
            size_t n = bytes - off < chunk ? (size_t)(bytes - off) : chunk;

            if (!prepared) {
                if (bench_full_io(sv[1], dst + off, n, false) < 0)
                    _exit(1);
                continue;
            }
            if (bench_full_io(sv[1], bounce, n, false) < 0)
                _exit(1);
            memcpy(dst + off, bounce, n);
        }
        _exit(bench_full_io(sv[1], &ack, 1, true) < 0);
    }
    close(sv[1]);
    if (bench_full_io(sv[0], &ack, 1, false) == 0) {
        t0 = bench_now_ns();
        for (uint64_t off = 0; off < bytes; off += chunk) {
            size_t n = bytes - off < chunk ? (size_t)(bytes - off) : chunk;

            if (bench_full_io(sv[0], (uint8_t *)src + off, n, true) < 0)
                break;
        }
        if (bench_full_io(sv[0], &ack, 1, false) == 0)
            t1 = bench_now_ns() - t0;
    }
    close(sv[0]);
    if (waitpid(pid, &st, 0) != pid || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
        return 0;
    return t1;
}

/* ---------------- a migration with writes during pre-copy ---------------- */

struct hop {
    uint64_t downtime_ns, total_ns, precopy_bytes, stop_bytes;
};

/* One 4 KiB write, of the data the block holds already (the check after
 * the hop stays true), somewhere in the namespace. */
static int light_write(struct nvd *d, uint64_t buf, unsigned *seed)
{
    uint64_t lba = (uint64_t)rand_r(seed) % (NS_BYTES / BLK);
    int st;

    pattern(nvd_va(d, buf), BLK, lba);
    st = nvd_rw(d, 1, NVME_IO_WRITE, 1, lba, 1, buf, BLK);
    return st == 0 ? 0 : st < 0 ? st : -EIO;
}

/* Read src until a short read, each piece written to dst; a light write
 * after each full read when writes. */
static int pump(struct nvd *d, muc_t *dst, uint8_t *io, size_t chunk,
                uint64_t buf, unsigned *seed, bool writes, uint64_t *bytes)
{
    for (;;) {
        ssize_t n = muc_mig_read(d->c, io, chunk);
        int rc;

        if (n < 0)
            return (int)n;
        if (n > 0 && (rc = muc_mig_write(dst, io, (size_t)n)) < 0)
            return rc;
        *bytes += (uint64_t)n;
        if ((size_t)n < chunk)
            return 0;
        if (writes && (rc = light_write(d, buf, seed)) < 0)
            return rc;
    }
}

/* muc_migrate()'s steps, with writes between the pre-copy reads. */
static int migrate_writes(struct nvd *d, muc_t *c, uint64_t buf,
                          unsigned *seed, struct hop *h)
{
    size_t chunk = muc_mig_read_max(d->c);
    uint8_t *io = malloc(chunk);
    uint64_t t0, t1;
    int rc;

    if (io == NULL)
        return -ENOMEM;
    memset(io, 0, chunk);
    memset(h, 0, sizeof(*h));
    rc = nvd_attach(d, c);
    if (rc == 0)
        rc = muc_mig_set_state(c, MUC_MIG_RESUMING);
    t0 = bench_now_ns();
    if (rc == 0)
        rc = muc_mig_set_state(d->c, MUC_MIG_PRE_COPY);
    for (unsigned i = 0; rc == 0 && i < 8; i++) {
        uint64_t before = h->precopy_bytes;

        rc = pump(d, c, io, chunk, buf, seed, true, &h->precopy_bytes);
        if (h->precopy_bytes - before < chunk)
            break;
    }
    /* The guest writes on until the VMM stops it: granules dirty for
     * the stop-and-copy. */
    for (unsigned i = 0; rc == 0 && i < 4; i++)
        rc = light_write(d, buf, seed);
    t1 = bench_now_ns();
    if (rc == 0)
        rc = muc_mig_set_state(d->c, MUC_MIG_STOP_COPY);
    if (rc == 0)
        rc = pump(d, c, io, chunk, buf, seed, false, &h->stop_bytes);
    if (rc == 0)
        rc = muc_mig_set_state(c, MUC_MIG_RUNNING);
    if (rc == 0) {
        h->downtime_ns = bench_now_ns() - t1;
        h->total_ns = bench_now_ns() - t0;
        rc = muc_mig_set_state(d->c, MUC_MIG_STOP);
    }
    free(io);
    if (rc < 0)
        return rc;
    nvd_adopt(d, c);
    return 0;
}

/* ---------------- the bench ---------------- */

enum { HOP_IDLE, HOP_WRITES, HOP_NO_PRECOPY, NR_HOPS };

/* One hop of the device to a fresh process, of the given kind. */
static int hop(struct nvd **dp, struct mdev *cur, const char *bin,
               unsigned n, int kind, uint64_t buf, unsigned *seed,
               struct hop *h)
{
    struct muc_migrate_opts mo = { .precopy_rounds = 8 };
    struct muc_migrate_stats st;
    struct mdev next = { 0 };
    struct nvd *d = *dp;
    muc_t *c = NULL;
    uint64_t t0;
    int rc;

    rc = mdev_spawn(&next, bin, n);
    if (rc == 0)
        rc = connect_retry(&c, next.sock);
    if (rc == 0) {
        if (kind == HOP_WRITES) {
            rc = migrate_writes(d, c, buf, seed, h);
        } else {
            t0 = bench_now_ns();
            rc = nvd_migrate(d, c, kind == HOP_IDLE ? &mo : NULL, &st);
            h->total_ns = bench_now_ns() - t0;
            h->downtime_ns = st.downtime_ns;
            h->precopy_bytes = st.precopy_bytes;
            h->stop_bytes = st.stopcopy_bytes;
        }
        if (rc < 0)
            muc_close(c);
    }
    if (rc < 0) {
        fprintf(stderr, "migrate: to %s: %s (logs %s, %s)\n", next.sock,
                strerror(-rc), cur->log, next.log);
        mdev_reap(&next);
        return rc;
    }
    mdev_reap(cur);         /* its client went: it leaves */
    *cur = next;
    if ((rc = check_data(d, buf)) < 0)
        fprintf(stderr, "migrate: data not intact after hop %u: %s\n", n,
                strerror(-rc));
    return rc;
}

static double median_of(const struct hop *h, int reps, size_t field)
{
    double v[64];
    int n = reps < 64 ? reps : 64;

    for (int i = 0; i < n; i++) {
        uint64_t x;

        memcpy(&x, (const uint8_t *)&h[i] + field, sizeof(x));
        v[i] = (double)x;
    }
    return bench_median(v, (size_t)n);
}

int bench_migrate(void)
{
    int reps = bench_reps < 64 ? bench_reps : 64, rc = 0;
    struct hop *row[NR_HOPS];
    double *base = calloc((size_t)reps, sizeof(double));
    double *fresh = calloc((size_t)reps, sizeof(double));
    char pathbuf[4096];
    const char *bin = bench_nvme_path(pathbuf, sizeof(pathbuf));
    struct nvd_opts o = {
        .mem_size = 16 * MIB, .nr_regions = 1, .db = NVD_DB_TRAPPED,
        .irq = NVD_IRQ_MSIX, .nr_io_queues = 1, .io_qsize = 64,
    };
    struct mdev cur = { 0 };
    unsigned seed = 7, n = 1;
    uint64_t buf = 0;
    uint8_t *src = NULL;
    struct nvd *d = NULL;
    size_t chunk = 0;

    for (int k = 0; k < NR_HOPS; k++)
        row[k] = calloc((size_t)reps, sizeof(struct hop));
    if (bin == NULL) {
        fprintf(stderr, "migrate: cannot find the nvme sample; give --nvme "
                "PATH\n");
        rc = -ENOENT;
    } else if (base == NULL || fresh == NULL ||
               row[0] == NULL || row[1] == NULL || row[2] == NULL ||
               (src = malloc(NS_BYTES)) == NULL) {
        rc = -ENOMEM;
    } else {
        memset(src, 0xa5, NS_BYTES);
        rc = mdev_spawn(&cur, bin, 0);
    }
    if (rc == 0) {
        o.sock = cur.sock;
        for (int i = 0; i < 500; i++) {
            rc = nvd_open(&d, &o);
            if (rc != -ENOENT && rc != -ECONNREFUSED)
                break;
            usleep(10000);
        }
    }
    if (rc == 0 && (rc = nvd_bringup(d)) == 0) {
        buf = nvd_alloc(d, XFER, BLK);
        rc = buf == 0 ? -ENOMEM : precondition(d, buf);
    }
    if (rc == 0)
        chunk = muc_mig_read_max(d->c);
    for (int r = 0; r < reps && rc == 0; r++) {
        for (int k = 0; k < NR_HOPS && rc == 0; k++)
            rc = hop(&d, &cur, bin, n++, k, buf, &seed, &row[k][r]);
        if (rc < 0)
            break;
        base[r] = (double)socket_copy(src, NS_BYTES, chunk, true);
        fresh[r] = (double)socket_copy(src, NS_BYTES, chunk, false);
        if (base[r] == 0 || fresh[r] == 0) {
            rc = -EIO;
            break;
        }
    }
    if (d != NULL)
        nvd_close(d);
    mdev_reap(&cur);
    if (rc == 0) {
        const size_t dt = offsetof(struct hop, downtime_ns);
        const size_t pb = offsetof(struct hop, precopy_bytes);
        const size_t sb = offsetof(struct hop, stop_bytes);
        double b50 = bench_median(base, (size_t)reps) / 1e6;
        double d50 = median_of(row[HOP_IDLE], reps, dt) / 1e6;
        double pre[64], all[64];

        for (int r = 0; r < reps; r++) {
            const struct hop *x = &row[HOP_IDLE][r];

            pre[r] = (double)(x->total_ns - x->downtime_ns);
            all[r] = (double)(x->precopy_bytes + x->stop_bytes);
        }
        bench_report("migrate", "migrate_downtime", d50, "ms", b50, "<= 1.5");
        bench_report("migrate", "migrate_downtime_vs_fresh_copy", d50, "ms",
                     bench_median(fresh, (size_t)reps) / 1e6, NULL);
        bench_report("migrate", "migrate_downtime_bytes",
                     median_of(row[HOP_IDLE], reps, sb), "B",
                     (double)NS_BYTES, NULL);
        bench_report("migrate", "migrate_precopy_time",
                     bench_median(pre, (size_t)reps) / 1e6, "ms", b50, NULL);
        bench_report("migrate", "migrate_stream_bytes",
                     bench_median(all, (size_t)reps), "B", (double)NS_BYTES,
                     NULL);
        bench_report("migrate", "migrate_downtime_writes",
                     median_of(row[HOP_WRITES], reps, dt) / 1e6, "ms", b50,
                     NULL);
        bench_report("migrate", "migrate_downtime_writes_bytes",
                     median_of(row[HOP_WRITES], reps, sb), "B",
                     (double)NS_BYTES, NULL);
        bench_report("migrate", "migrate_writes_precopy_bytes",
                     median_of(row[HOP_WRITES], reps, pb), "B",
                     (double)NS_BYTES, NULL);
        bench_report("migrate", "migrate_downtime_no_precopy",
                     median_of(row[HOP_NO_PRECOPY], reps, dt) / 1e6, "ms",
                     b50, NULL);
    }
    free(src);
    for (int k = 0; k < NR_HOPS; k++)
        free(row[k]);
    free(base);
    free(fresh);
    return rc;
}
