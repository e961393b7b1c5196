/*
 * migrate.c - live migration of the nvme sample with a 64 MiB RAM
 * namespace: the downtime, from the source leaving RUNNING (for
 * STOP_COPY) to the destination reaching RUNNING, as muc_migrate()
 * measures it (muser-client.h), with the whole state stream copied in
 * between by this process (the VMM's part: MIG_DATA_READ from the source,
 * MIG_DATA_WRITE to the destination).
 *
 * Baseline, measured in every repetition next to the migration: the same
 * number of bytes written by one process into a UNIX stream socket, in
 * chunks of the size the migration moves, and read by another process
 * into shared memory (a memfd mapping, as the destination's RAM
 * namespace is), until the reader acknowledges the last byte.  The
 * reader prepares that memory before the clock starts, as the nvme
 * destination does when it enters RESUMING (before the source stops),
 * and reads each chunk into one reused buffer and copies it from there,
 * as the destination does too: on the VMs here the first touch of a page
 * by the kernel costs a fault in the host even when user space touched it
 * already, so reading straight into the big mapping is several times
 * slower than going through a small buffer that stays warm.  That is the
 * floor of moving the state between two processes on this machine; a
 * migration also relays it through this process (two socket hops, which
 * muc_migrate() overlaps with a second thread), takes a request/reply
 * turn per chunk, and copies and hashes it on both devices.
 *
 * Rows: migrate_downtime (ms, ratio to the baseline; target <= 1.5);
 * migrate_downtime_vs_fresh_copy, the same against a reader that reads
 * straight into fresh memory, unprepared (what a naive copy costs here:
 * for scale); migrate_state_bytes (the stream's length against the
 * namespace's bytes: the overhead of the registers, queues and hash).
 * Each repetition migrates the device one hop further, to a freshly
 * started process, and reads two blocks back there to check the data
 * came along.
 */
#include <errno.h>
#include <fcntl.h>
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
    fflush(NULL);
    v->pid = fork();
    if (v->pid < 0)
        return -errno;
    if (v->pid == 0) {
        int fd = open(v->log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);

        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (fd >= 0) {
            dup2(fd, STDOUT_FILENO);
            dup2(fd, STDERR_FILENO);
        }
        execv(bin, (char *const *)argv);
        _exit(127);
    }
    return 0;
}

/* With --once the device leaves when its client does. */
static void mdev_reap(struct mdev *v)
{
    int st;

    if (v->pid <= 0)
        return;
    for (int i = 0; i < 500; i++) {
        if (waitpid(v->pid, &st, WNOHANG) == v->pid) {
            if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
                fprintf(stderr, "migrate: nvme exit status %#x (log %s)\n",
                        st, v->log);
            v->pid = 0;
            return;
        }
        if (i == 300)
            kill(v->pid, SIGTERM);
        usleep(10000);
    }
    kill(v->pid, SIGKILL);
    waitpid(v->pid, &st, 0);
    v->pid = 0;
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

/* ---------------- the bench ---------------- */

int bench_migrate(void)
{
    int reps = bench_reps, rc = 0;
    double *down = calloc((size_t)reps, sizeof(double));
    double *base = calloc((size_t)reps, sizeof(double));
    double *fresh = calloc((size_t)reps, sizeof(double));
    char pathbuf[4096];
    const char *bin = bench_nvme_path(pathbuf, sizeof(pathbuf));
    struct nvd_opts o = {
        .mem_size = 16 * MIB, .nr_regions = 1, .db = NVD_DB_TRAPPED,
        .irq = NVD_IRQ_MSIX, .nr_io_queues = 1, .io_qsize = 64,
    };
    struct mdev cur = { 0 }, next = { 0 };
    uint64_t state_bytes = 0, buf = 0;
    uint8_t *src = NULL;
    struct nvd *d = NULL;
    size_t chunk = 0;

    if (bin == NULL) {
        fprintf(stderr, "migrate: cannot find the nvme sample; give --nvme "
                "PATH\n");
        rc = -ENOENT;
    } else if (down == NULL || base == NULL || fresh == NULL) {
        rc = -ENOMEM;
    } else {
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
    for (int r = 0; r < reps && rc == 0; r++) {
        struct muc_migrate_stats st;
        muc_t *c = NULL;

        rc = mdev_spawn(&next, bin, (unsigned)r + 1);
        if (rc == 0)
            rc = connect_retry(&c, next.sock);
        if (rc == 0) {
            chunk = muc_mig_read_max(d->c);
            rc = nvd_migrate(d, c, NULL, &st);
            if (rc < 0)
                muc_close(c);
        }
        if (rc < 0) {
            fprintf(stderr, "migrate: to %s: %s (logs %s, %s)\n", next.sock,
                    strerror(-rc), cur.log, next.log);
            break;
        }
        mdev_reap(&cur);        /* its client went: it leaves */
        cur = next;
        next.pid = 0;
        if ((rc = check_data(d, buf)) < 0) {
            fprintf(stderr, "migrate: data not intact after hop %d: %s\n",
                    r + 1, strerror(-rc));
            break;
        }
        down[r] = (double)st.downtime_ns;
        state_bytes = st.precopy_bytes + st.stopcopy_bytes;
        if (src == NULL) {
            src = malloc(state_bytes);
            if (src == NULL) {
                rc = -ENOMEM;
                break;
            }
            memset(src, 0xa5, state_bytes);
        }
        base[r] = (double)socket_copy(src, state_bytes, chunk, true);
        fresh[r] = (double)socket_copy(src, state_bytes, chunk, false);
        if (base[r] == 0 || fresh[r] == 0) {
            rc = -EIO;
            break;
        }
    }
    if (d != NULL)
        nvd_close(d);
    mdev_reap(&cur);
    mdev_reap(&next);
    if (rc == 0) {
        double d50 = bench_median(down, reps) / 1e6;

        bench_report("migrate", "migrate_downtime", d50, "ms",
                     bench_median(base, reps) / 1e6, "<= 1.5");
        bench_report("migrate", "migrate_downtime_vs_fresh_copy", d50, "ms",
                     bench_median(fresh, reps) / 1e6, NULL);
        bench_report("migrate", "migrate_state_bytes", (double)state_bytes, "B",
                     (double)NS_BYTES, NULL);
    }
    free(src);
    free(down);
    free(base);
    free(fresh);
    return rc;
}
