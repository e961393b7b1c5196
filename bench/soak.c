/*
 * soak.c - 10 000 connect / negotiate / DMA_MAP / disconnect cycles against
 * an in-process server: do resources stay flat, and what does a cycle cost?
 *
 *  - soak_open_fds: open fds after the run against after a warm-up of 1000
 *    cycles.  Must be equal (ratio 1.0): a leaked fd a cycle runs a device
 *    out of fds in a day of reconnecting clients.  A difference fails the
 *    bench.
 *  - soak_rss_kb: resident anonymous + shared memory after the run
 *    against after the warm-up (target <= 1.05: no growth with the number
 *    of cycles; see rss_kib() for what is counted and why).
 *  - soak_cycle_us: one cycle, against a raw UNIX-socket connect + accept
 *    + close, the part of a cycle no library can avoid.  Median of the
 *    repetitions the cycles are split into, both measured in each.
 */
#include <dirent.h>
#include <errno.h>
#include <malloc.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "bench.h"
#include "muser.h"
#include "muser-client.h"
#include "server.h"

#define CYCLES 10000
#define WARMUP 1000
#define MAP_SIZE (64 * 1024)
#define IOVA 0x100000ull

static int open_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    struct dirent *e;
    int n = 0;

    if (d == NULL)
        return -1;
    while ((e = readdir(d)) != NULL)
        n += e->d_name[0] != '.';
    closedir(d);
    return n - 1;   /* the directory's own */
}

/*
 * Resident memory that a leak would grow: anonymous pages (the heap, thread
 * stacks) and shared memory (mappings of memfds, DMA regions among them).
 * File-backed pages are left out: library code paging in the first time a
 * path runs is not retained memory.  The allocator's cached free memory is
 * given back first, so that only what is still allocated counts.
 */
static long rss_kib(void)
{
    char line[128];
    long kb, sum = 0;
    int found = 0;
    FILE *f;

    malloc_trim(0);
    f = fopen("/proc/self/status", "r");
    if (f == NULL)
        return -1;
    while (fgets(line, sizeof(line), f) != NULL) {
        if (sscanf(line, "RssAnon: %ld", &kb) == 1 ||
            sscanf(line, "RssShmem: %ld", &kb) == 1) {
            sum += kb;
            found++;
        }
    }
    fclose(f);
    return found == 2 ? sum : -1;
}

static int cycle(const char *path, int memfd)
{
    muc_t *c;
    int rc = muc_connect(&c, path, NULL);

    if (rc < 0)
        return rc;
    rc = muc_dma_map(c, IOVA, MAP_SIZE, memfd, 0, MUC_DMA_READ | MUC_DMA_WRITE);
    muc_close(c);
    return rc;
}

/* The baseline's server: accept and close, until told to stop. */
struct raw_srv {
    int lfd;
    volatile bool stop;
};

static void *raw_accept(void *arg)
{
    struct raw_srv *s = arg;

    while (!s->stop) {
        int fd = accept4(s->lfd, NULL, NULL, SOCK_CLOEXEC);

        if (fd >= 0)
            close(fd);
        else if (errno != EINTR && errno != ECONNABORTED)
            break;
    }
    return NULL;
}

static int raw_connect(const struct sockaddr_un *sa)
{
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int rc = 0;

    if (fd < 0)
        return -errno;
    if (connect(fd, (const struct sockaddr *)sa, sizeof(*sa)) < 0)
        rc = -errno;
    close(fd);
    return rc;
}

/* Until the server has let the last client go: its fds are back. */
static void wait_fds(int want)
{
    for (int i = 0; i < 2000 && open_fds() != want; i++)
        usleep(1000);
}

int bench_soak(void)
{
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    double mus[64], raw[64];
    int reps = bench_reps > 64 ? 64 : bench_reps;
    int per = CYCLES / reps, rc = 0, memfd = -1, fds_idle, fds_warm, fds_end;
    bool raw_running = false;
    long rss_warm, rss_end;
    struct raw_srv rs = { .lfd = -1 };
    struct bench_server srv;
    pthread_t rth;

    rc = bench_server_create(&srv, "soak");
    if (rc < 0)
        return rc;
    if ((rc = mu_region_setup(srv.ctx, MU_PCI_BAR0, 4096,
                              MU_REGION_RW | MU_REGION_MEM,
                              bench_bar_zero)) < 0 ||
        (rc = bench_server_start(&srv)) < 0) {
        bench_server_stop(&srv);
        return rc;
    }

    memfd = memfd_create("soak", MFD_CLOEXEC);
    if (memfd < 0 || ftruncate(memfd, MAP_SIZE) < 0) {
        rc = -errno;
        goto out;
    }
    /* The baseline's listener. */
    snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/soak-raw.sock",
             bench_tmpdir());
    rs.lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (rs.lfd < 0 || bind(rs.lfd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
        listen(rs.lfd, 64) < 0) {
        rc = -errno;
        goto out;
    }
    pthread_create(&rth, NULL, raw_accept, &rs);
    raw_running = true;
    fds_idle = open_fds();

    /* Both paths warm: the measured phase must touch nothing new (code,
     * stacks, socket buffers) that would look like growth. */
    for (int i = 0; i < WARMUP && rc == 0; i++) {
        rc = cycle(srv.path, memfd);
        if (rc == 0)
            rc = raw_connect(&sa);
    }
    if (rc < 0)
        goto out;
    wait_fds(fds_idle);
    fds_warm = open_fds();
    rss_warm = rss_kib();

    for (int r = 0; r < reps && rc == 0; r++) {
        uint64_t t0 = bench_now_ns();

        for (int i = 0; i < per && rc == 0; i++)
            rc = raw_connect(&sa);
        raw[r] = (double)(bench_now_ns() - t0) / per / 1000;
        t0 = bench_now_ns();
        for (int i = 0; i < per && rc == 0; i++)
            rc = cycle(srv.path, memfd);
        mus[r] = (double)(bench_now_ns() - t0) / per / 1000;
    }
    if (rc < 0)
        goto out;

    wait_fds(fds_warm);
    fds_end = open_fds();
    rss_end = rss_kib();
    bench_report("soak", "soak_open_fds", fds_end, "fds", fds_warm, "== 1.0");
    bench_report("soak", "soak_rss_kb", (double)rss_end, "KiB",
                 (double)rss_warm, "<= 1.05");
    bench_report("soak", "soak_cycle_us", bench_median(mus, (size_t)reps), "us",
                 bench_median(raw, (size_t)reps), NULL);
    if (fds_end != fds_warm) {
        fprintf(stderr, "soak: %d fds open after %d cycles, %d after warm-up\n",
                fds_end, per * reps, fds_warm);
        rc = -EMFILE;
    }
out:
    if (raw_running) {
        rs.stop = true;
        raw_connect(&sa);   /* wakes the accept loop */
        pthread_join(rth, NULL);
    }
    if (rs.lfd >= 0)
        close(rs.lfd);
    if (memfd >= 0)
        close(memfd);
    bench_server_stop(&srv);
    return rc;
}
