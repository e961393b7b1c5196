/*
 * irq.c - device-to-client interrupt latency: from the device raising
 * MSI-X vector 0 with mu_irq_trigger() to the client's thread, asleep in
 * poll() on the eventfd it assigned to that vector, having read it.
 *
 * Ping-pong, so each sample is one isolated latency: a "device thread"
 * takes t0 and raises the vector, the client (main thread) wakes, reads the
 * eventfd, takes t1 and acks through a second eventfd, and only then does
 * the device thread raise the next one.  The baseline is the same
 * ping-pong with the device thread writing the eventfd itself: what is
 * left between the two is the library's share (lookup, mask checks, lock),
 * the kernel's wakeup being common to both.  Both run in each repetition,
 * back to back.
 *
 * The server (a thread in mu_ctx_run) is not on the path at all: it only
 * set the eventfd up.  The client's eventfd is non-blocking in both runs,
 * because the server makes the eventfds it is given non-blocking (and the
 * flag is shared with the client's copy).
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "bench.h"
#include "muser.h"
#include "muser-client.h"
#include "server.h"

#define ITERS 20000
#define WARMUP 1000
#define WAIT_MS 5000        /* a lost interrupt fails the bench, not hangs it */
#define MSIX_IDX 2          /* vfio-user irq index of MSI-X */

struct pingpong {
    mu_ctx_t *ctx;      /* NULL: baseline, write irq_fd directly */
    int irq_fd;         /* the client's eventfd */
    int ack_fd;         /* client -> device thread: sample taken */
    uint64_t t0;        /* written by the device thread before raising */
    bool stop;          /* the client gave up: do not raise again */
    int err;
};

static void *device_thread(void *arg)
{
    struct pingpong *p = arg;
    uint64_t one = 1, v;

    for (int i = 0; i < WARMUP + ITERS; i++) {
        __atomic_store_n(&p->t0, bench_now_ns(), __ATOMIC_RELEASE);
        if (p->ctx != NULL) {
            int rc = mu_irq_trigger(p->ctx, MU_IRQ_MSIX, 0);

            if (rc != 0) {
                p->err = rc == MU_IRQ_PENDING ? -EAGAIN : rc;
                break;
            }
        } else if (write(p->irq_fd, &one, sizeof(one)) != sizeof(one)) {
            p->err = -errno;
            break;
        }
        /* The ack fd is ours and blocking: sleep until the client has
         * taken its sample. */
        if (read(p->ack_fd, &v, sizeof(v)) != sizeof(v)) {
            p->err = -errno;
            break;
        }
        if (__atomic_load_n(&p->stop, __ATOMIC_ACQUIRE))
            break;
    }
    return NULL;
}

/* The client side of one run; p50 and p99 in ns. */
static int pingpong_rep(mu_ctx_t *ctx, int irq_fd, double *p50, double *p99)
{
    static uint64_t lat[ITERS];
    struct pingpong p = { .ctx = ctx, .irq_fd = irq_fd };
    struct pollfd pfd = { .fd = irq_fd, .events = POLLIN };
    uint64_t one = 1, v;
    pthread_t th;
    int rc = 0;

    p.ack_fd = eventfd(0, EFD_CLOEXEC);
    if (p.ack_fd < 0)
        return -errno;
    if (pthread_create(&th, NULL, device_thread, &p) != 0) {
        close(p.ack_fd);
        return -EAGAIN;
    }
    for (int i = 0; i < WARMUP + ITERS; i++) {
        uint64_t t1;
        int n = poll(&pfd, 1, WAIT_MS);

        if (n < 0 && errno == EINTR) {
            i--;
            continue;
        }
        if (n <= 0) {
            rc = n == 0 ? -ETIMEDOUT : -errno;
            break;
        }
        if (read(irq_fd, &v, sizeof(v)) != sizeof(v)) {
            if (errno == EAGAIN) {
                i--;
                continue;
            }
            rc = -errno;
            break;
        }
        t1 = bench_now_ns();
        /* Exactly one interrupt per round, or the ping-pong is broken. */
        if (v != 1) {
            rc = -EPROTO;
            break;
        }
        if (i >= WARMUP)
            lat[i - WARMUP] = t1 - __atomic_load_n(&p.t0, __ATOMIC_ACQUIRE);
        if (write(p.ack_fd, &one, sizeof(one)) != sizeof(one)) {
            rc = -errno;
            break;
        }
    }
    if (rc < 0) {
        /* Stop the device thread, which may be waiting for an ack. */
        __atomic_store_n(&p.stop, true, __ATOMIC_RELEASE);
        if (write(p.ack_fd, &one, sizeof(one)) < 0)
            rc = -errno;
    }
    pthread_join(th, NULL);
    close(p.ack_fd);
    if (rc == 0)
        rc = p.err;
    if (rc < 0)
        return rc;
    *p99 = bench_percentile(lat, ITERS, 0.99);
    *p50 = bench_percentile(lat, ITERS, 0.50);
    return 0;
}

/* The baseline: a bare eventfd, as non-blocking as the client's. */
static int raw_rep(double *p50, double *p99)
{
    int fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK), rc;

    if (fd < 0)
        return -errno;
    rc = pingpong_rep(NULL, fd, p50, p99);
    close(fd);
    return rc;
}

int bench_irq(void)
{
    double rp50[64], rp99[64], mp50[64], mp99[64];
    int rc, efd = -1, reps = bench_reps > 64 ? 64 : bench_reps;
    struct bench_server srv;
    muc_t *c = NULL;

    rc = bench_server_create(&srv, "irq");
    if (rc < 0)
        return rc;
    if ((rc = mu_region_setup(srv.ctx, MU_PCI_BAR0, 4096,
                              MU_REGION_RW | MU_REGION_MEM,
                              bench_bar_zero)) < 0 ||
        (rc = mu_pci_add_msix(srv.ctx, 1, 0, 0, 0, 2048)) < 0 ||
        (rc = bench_server_start(&srv)) < 0) {
        bench_server_stop(&srv);
        return rc;
    }
    rc = muc_connect(&c, srv.path, NULL);
    if (rc < 0)
        goto out;
    efd = eventfd(0, EFD_CLOEXEC);
    if (efd < 0) {
        rc = -errno;
        goto out;
    }
    rc = muc_irq_set_eventfds(c, MSIX_IDX, 0, 1, &efd);
    for (int r = 0; r < reps && rc == 0; r++) {
        rc = raw_rep(&rp50[r], &rp99[r]);
        if (rc == 0)
            rc = pingpong_rep(srv.ctx, efd, &mp50[r], &mp99[r]);
    }
    if (rc == 0)
        bench_report_latency("irq", mp50, mp99, rp50, rp99, (size_t)reps,
                             "<= 1.2");
out:
    if (c != NULL)
        muc_close(c);
    if (efd >= 0)
        close(efd);
    bench_server_stop(&srv);
    return rc;
}
