/*
 * muser-nvme - an emulated NVMe 1.4 controller on muser, for the stock Linux
 * nvme driver (through a vfio-user VMM) and for muser's own client.
 *
 * PCI: class 010802h, 1234h:0A0Eh, a PCIe endpoint with PM and MSI-X
 * capabilities and INTA#.  BAR0 (64-bit, 16 KiB): registers at 0h, the
 * doorbells at 1000h, the MSI-X table at 2000h and its PBA at 3000h.
 *
 * Doorbells are served one of two ways (--doorbells):
 *  - trapped (default): each doorbell write reaches the BAR0 callback as
 *    a REGION_WRITE, or with --ioeventfd the doorbell page is shared and a
 *    per-doorbell ioeventfd tells us which one to re-read; a client that
 *    never took the ioeventfds (QEMU does not ask) gets the page polled
 *    from CC.EN on, as in polled mode (mu_region_ioeventfds_taken());
 *  - polled: the doorbell page is shared memory and poller threads
 *    watch it (poller.c): one by default, N with --pollers N, each
 *    serving the I/O CQs whose qid % N is its number and the SQs that
 *    complete there; poller 0 also serves the admin queue.
 * Trapped doorbells run their commands on the context thread while all
 * guest memory has an fd, and on the poller thread while some has none
 * (the context thread never waits for the client: poller.c, ctrl_defer).
 *
 * This file: options, namespaces, PCI/region/interrupt setup, run loop
 * (the context thread in mu_ctx_run(), a helper for signals and timer).
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include "nvme.h"

#define DEFAULT_RAM_SIZE (64ull << 20)

static struct nvme_ctrl ctrl;

static void usage(FILE *f, const char *argv0)
{
    fprintf(f,
            "usage: %s [options] SOCKET\n"
            "  Serve an emulated NVMe controller on the UNIX socket SOCKET.\n"
            "  --backing FILE          namespaces live in FILE (else RAM)\n"
            "  --size BYTES            bytes per namespace (K/M/G suffix;\n"
            "                          default 64M in RAM, FILE size / N)\n"
            "  --namespaces N          number of namespaces (default 1)\n"
            "  --lba-size 512|4096     logical block size (default 512)\n"
            "  --doorbells trapped|polled   (default trapped)\n"
            "  --pollers N             polled: N poller threads (default 1);\n"
            "                          I/O CQ q and its SQs go to poller q %% N\n"
            "  --ioeventfd             trapped doorbells kick ioeventfds\n"
            "  --serial SN             serial number (default from pid+time)\n"
            "  -1, --once              exit when the client disconnects\n"
            "  -v, --verbose           log controller activity and every vfio-user\n"
            "                          message with its result\n",
            argv0);
}

static int parse_size(const char *s, uint64_t *out)
{
    char *end;
    unsigned long long v;

    errno = 0;
    v = strtoull(s, &end, 0);
    if (errno != 0 || end == s)
        return -EINVAL;
    switch (*end) {
    case 'G': case 'g': v <<= 10; /* fall through */
    case 'M': case 'm': v <<= 10; /* fall through */
    case 'K': case 'k': v <<= 10; end++; break;
    case '\0': break;
    default: return -EINVAL;
    }
    if (*end != '\0')
        return -EINVAL;
    *out = v;
    return 0;
}

static int parse_args(int argc, char **argv, struct nvme_opts *o)
{
    static const struct option longopts[] = {
        { "backing", required_argument, NULL, 'b' },
        { "size", required_argument, NULL, 's' },
        { "namespaces", required_argument, NULL, 'n' },
        { "lba-size", required_argument, NULL, 'l' },
        { "doorbells", required_argument, NULL, 'd' },
        { "ioeventfd", no_argument, NULL, 'e' },
        { "pollers", required_argument, NULL, 'p' },
        { "serial", required_argument, NULL, 'S' },
        { "once", no_argument, NULL, '1' },
        { "verbose", no_argument, NULL, 'v' },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    int c;

    *o = (struct nvme_opts){ .nr_ns = 1, .lba_shift = 9, .pollers = 1 };
    while ((c = getopt_long(argc, argv, "1vh", longopts, NULL)) != -1) {
        switch (c) {
        case 'b': o->backing = optarg; break;
        case 's':
            if (parse_size(optarg, &o->size) < 0)
                return -EINVAL;
            break;
        case 'n':
            o->nr_ns = (unsigned)strtoul(optarg, NULL, 0);
            if (o->nr_ns < 1 || o->nr_ns > NVME_MAX_NS)
                return -EINVAL;
            break;
        case 'l':
            if (strcmp(optarg, "512") == 0)
                o->lba_shift = 9;
            else if (strcmp(optarg, "4096") == 0)
                o->lba_shift = 12;
            else
                return -EINVAL;
            break;
        case 'd':
            if (strcmp(optarg, "trapped") == 0)
                o->db_mode = NVME_DB_TRAPPED;
            else if (strcmp(optarg, "polled") == 0)
                o->db_mode = NVME_DB_POLLED;
            else
                return -EINVAL;
            break;
        case 'e': o->ioeventfd = true; break;
        case 'p': {
            char *end;
            unsigned long n = strtoul(optarg, &end, 10);

            if (end == optarg || *end != '\0' || n < 1 ||
                n > NVME_MAX_POLLERS)
                return -EINVAL;
            o->pollers = (unsigned)n;
            break;
        }
        case 'S': o->serial = optarg; break;
        case '1': o->once = true; break;
        case 'v': o->verbose = true; break;
        case 'h': usage(stdout, argv[0]); exit(0);
        default: return -EINVAL;
        }
    }
    if (optind != argc - 1 || (o->ioeventfd && o->db_mode == NVME_DB_POLLED))
        return -EINVAL;
    /* Several pollers split the shared doorbell page's queues between
     * them; trapped doorbells are messages, served by the context thread. */
    if (o->pollers > 1 && o->db_mode != NVME_DB_POLLED)
        return -EINVAL;
    o->sock = argv[optind];
    return 0;
}

/* ---------------- namespaces ---------------- */

/* A regular file grows to fit; a block device must be big enough. */
static int open_backing(struct nvme_ctrl *c, uint64_t *per_ns)
{
    const struct nvme_opts *o = &c->opts;
    int fd = open(o->backing, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    struct stat st;
    off_t end;
    int rc = -EINVAL;

    if (fd < 0)
        return -errno;
    end = lseek(fd, 0, SEEK_END);
    if (fstat(fd, &st) < 0 || end < 0) {
        rc = -errno;
        goto fail;
    }
    *per_ns = o->size ? o->size : (uint64_t)end / o->nr_ns;
    *per_ns &= ~((1ull << o->lba_shift) - 1);
    if (*per_ns == 0) {
        fprintf(stderr, "nvme: %s is empty; give --size\n", o->backing);
        goto fail;
    }
    if ((uint64_t)end < *per_ns * o->nr_ns) {
        if (!S_ISREG(st.st_mode)) {
            fprintf(stderr, "nvme: %s is too small\n", o->backing);
            goto fail;
        }
        if (ftruncate(fd, (off_t)(*per_ns * o->nr_ns)) < 0) {
            rc = -errno;
            goto fail;
        }
    }
    return fd;
fail:
    close(fd);
    return rc;
}

static int ns_setup(struct nvme_ctrl *c)
{
    const struct nvme_opts *o = &c->opts;
    uint64_t size = o->size ? o->size : DEFAULT_RAM_SIZE;
    int fd = -1, rc;

    if (o->backing != NULL && (fd = open_backing(c, &size)) < 0)
        return fd;
    for (unsigned i = 0; i < o->nr_ns; i++) {
        struct nvme_ns *ns = &c->ns[i];

        rc = fd >= 0 ? ns_init_file(ns, i + 1, fd, i * size, size, o->lba_shift)
                     : ns_init_ram(ns, i + 1, size, o->lba_shift);
        if (rc < 0)
            return rc;
        /* The first file namespace closes the shared fd at the end. */
        ns->own_fd = fd < 0 || i == 0;
        ns_make_ids(ns, c->serial);
        c->nr_ns = i + 1;
    }
    return 0;
}

/* ---------------- doorbell page and ioeventfds ---------------- */

static int db_page_setup(struct nvme_ctrl *c)
{
    void *p;

    /* The client gets this fd read-write: sealed, it cannot truncate the
     * page under our feet (mu_region_set_mmap would seal it anyway). */
    c->db_fd = memfd_create("nvme-doorbells", MFD_CLOEXEC | MFD_ALLOW_SEALING);
    if (c->db_fd < 0)
        return -errno;
    if (ftruncate(c->db_fd, NVME_BAR0_SIZE) < 0 ||
        fcntl(c->db_fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW) < 0)
        return -errno;
    p = mmap(NULL, NVME_PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED,
             c->db_fd, NVME_DB_PAGE);
    if (p == MAP_FAILED)
        return -errno;
    c->db = p;
    return 0;
}

/* ioeventfd mode: a kick says which doorbell; the value is in the page. */
static void on_ioeventfd(mu_ctx_t *ctx, uint64_t index)
{
    struct nvme_ctrl *c = mu_ctx_opaque(ctx);

    ctrl_lock(c);
    db_write(c, (unsigned)index,
             __atomic_load_n(&c->db[index], __ATOMIC_ACQUIRE) & 0xffff);
    ctrl_unlock(c);
}

static int add_ioeventfds(mu_ctx_t *ctx, struct nvme_ctrl *c)
{
    for (unsigned i = 0; i < 2 * (c->max_ioq + 1); i++) {
        int rc = mu_region_add_ioeventfd(ctx, MU_PCI_BAR0, NVME_DB_PAGE + 4 * i,
                                         4, false, 0, -1, on_ioeventfd, i);

        if (rc < 0)
            return rc;
    }
    return 0;
}

/* ---------------- the context ---------------- */

static int pci_setup(mu_ctx_t *ctx, struct nvme_ctrl *c)
{
    const struct mu_pci_ids ids = {
        .vendor_id = NVME_VENDOR_ID,
        .device_id = NVME_DEVICE_ID,
        .subsys_vendor_id = NVME_VENDOR_ID,
        .subsys_id = NVME_DEVICE_ID,
        .class_code = NVME_CLASS_CODE,
        .irq_pin = 1,
    };
    const struct mu_mmap_area db_area = { NVME_DB_PAGE, NVME_PAGE_SIZE };
    int rc;

    if ((rc = mu_pci_set_ids(ctx, &ids)) < 0 ||
        (rc = mu_region_setup(ctx, MU_PCI_BAR0, NVME_BAR0_SIZE,
                              MU_REGION_RW | MU_REGION_MEM | MU_REGION_MEM64,
                              bar0_access)) < 0)
        return rc;
    if (c->db != NULL &&
        (rc = mu_region_set_mmap(ctx, MU_PCI_BAR0, c->db_fd, 0, &db_area, 1)) < 0)
        return rc;
    if (c->opts.ioeventfd && (rc = add_ioeventfds(ctx, c)) < 0)
        return rc;
    if ((rc = mu_pci_add_pm(ctx)) < 0 ||
        (rc = mu_pci_add_pcie(ctx, MU_PCIE_ENDPOINT)) < 0 ||
        (rc = mu_pci_add_msix(ctx, NVME_NR_VECTORS, MU_PCI_BAR0,
                              NVME_MSIX_TABLE, MU_PCI_BAR0, NVME_MSIX_PBA)) < 0 ||
        (rc = mu_irq_setup(ctx, MU_IRQ_INTX, 1)) < 0 ||
        /* The library's default, said out loud: QEMU enables error
         * recovery for a device with one ERR vector. */
        (rc = mu_irq_setup(ctx, MU_IRQ_ERR, 1)) < 0)
        return rc;
    return 0;
}

static int ctx_setup(struct nvme_ctrl *c)
{
    mu_ctx_t *ctx;
    int rc;

    rc = mu_ctx_create(&ctx, c->opts.sock, MU_DEV_PCIE, c);
    if (rc < 0)
        return rc;
    c->ctx = ctx;
    rc = mu_ctx_set_log(ctx, NULL, c->opts.verbose ? MU_LOG_DEBUG
                                                   : MU_LOG_WARN);
    if (rc == 0 && c->opts.once)
        rc = mu_ctx_set_flags(ctx, MU_CTX_ONE_CLIENT);
    /*
     * 16 fds a message, the most the library advertises (QEMU refuses
     * more): a client splits the 65 vectors' SET_IRQS into 5 messages.
     */
    if (rc == 0)
        rc = mu_ctx_set_limit(ctx, MU_LIMIT_MSG_FDS, 16);
    if (rc == 0)
        rc = pci_setup(ctx, c);
    if (rc == 0)
        rc = mu_dma_set_callbacks(ctx, dma_on_map, dma_on_unmap);
    if (rc == 0)
        rc = mu_ctx_set_reset_cb(ctx, ctrl_on_reset);
    if (rc == 0)
        rc = mu_pci_set_command_cb(ctx, ctrl_on_command);
    if (rc == 0)
        rc = mu_irq_set_state_cb(ctx, intr_on_state);
    if (rc < 0)
        return rc;
    rc = mig_setup(ctx);
    if (rc < 0)
        return rc;
    return mu_ctx_realize(ctx);
}

static int ctrl_setup(struct nvme_ctrl *c)
{
    int rc;

    c->db_fd = c->timer_fd = -1;
    c->max_ioq = c->opts.ioeventfd ? NVME_MAX_IOQ_IOEVENTFD : NVME_MAX_IOQ;
    pthread_mutex_init(&c->lock, NULL);
    pollers_init(c, c->opts.pollers);
    if (c->opts.serial != NULL)
        snprintf(c->serial, sizeof(c->serial), "%s", c->opts.serial);
    else
        snprintf(c->serial, sizeof(c->serial), "MU%X-%llX", (unsigned)getpid(),
                 (unsigned long long)time(NULL));
    snprintf(c->subnqn, sizeof(c->subnqn), "nqn.2019-08.org.muser:nvme-%s",
             c->serial);
    c->smart.start_ns = now_ns();
    ctrl_init_regs(c);
    features_reset(c);
    aen_reset(c);
    if ((rc = ns_setup(c)) < 0)
        return rc;
    if ((c->opts.db_mode == NVME_DB_POLLED || c->opts.ioeventfd) &&
        (rc = db_page_setup(c)) < 0)
        return rc;
    if (c->opts.db_mode == NVME_DB_TRAPPED) {
        c->timer_fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
        if (c->timer_fd < 0)
            return -errno;
    }
    return ctx_setup(c);
}

static void ctrl_teardown(struct nvme_ctrl *c)
{
    poller_stop(c);
    /* Unmap callbacks (MU_UNMAP_DESTROY) put the queues' references. */
    mu_ctx_destroy(c->ctx);
    c->ctx = NULL;
    mig_fini();
    for (unsigned i = 0; i < c->nr_ns; i++) {
        ns_flush(&c->ns[i]);
        ns_fini(&c->ns[i]);
    }
    if (c->db != NULL)
        munmap(c->db, NVME_PAGE_SIZE);
    if (c->db_fd >= 0)
        close(c->db_fd);
    if (c->timer_fd >= 0)
        close(c->timer_fd);
    pollers_fini(c);
    pthread_mutex_destroy(&c->lock);
}

/* ---------------- run loop ---------------- */

static void on_timer(struct nvme_ctrl *c)
{
    uint64_t ticks;

    if (read(c->timer_fd, &ticks, sizeof(ticks)) != sizeof(ticks))
        return;
    ctrl_lock(c);
    intr_tick(c);
    ctrl_unlock(c);
}

/*
 * The context thread blocks in mu_ctx_run(), i.e. in the library's own
 * epoll_wait(): with trapped doorbells every doorbell is a message, and
 * waiting for it there rather than in a poll() on the library's epoll fd
 * saves a system call and a nested wake-up on each of them.  A helper
 * thread watches the signals (SIGINT/SIGTERM stop the context) and, in
 * trapped mode, the interrupt coalescing timer.
 */
struct watch {
    struct nvme_ctrl *c;
    int sfd;
    int quit_fd;            /* the context stopped by itself */
};

static void *watch_main(void *arg)
{
    struct watch *w = arg;
    struct pollfd pfd[3] = {
        { .fd = w->sfd, .events = POLLIN },
        { .fd = w->quit_fd, .events = POLLIN },
        { .fd = w->c->timer_fd, .events = POLLIN },    /* -1: ignored */
    };

    for (;;) {
        if (poll(pfd, 3, -1) < 0) {
            if (errno == EINTR)
                continue;
            fprintf(stderr, "nvme: poll: %s\n", strerror(errno));
            break;
        }
        if (pfd[1].revents & POLLIN)
            return NULL;
        if (pfd[0].revents & POLLIN)
            break;          /* SIGINT / SIGTERM */
        if (pfd[2].revents & POLLIN)
            on_timer(w->c);
    }
    mu_ctx_stop(w->c->ctx);
    return NULL;
}

static int run(struct nvme_ctrl *c, int sfd)
{
    struct watch w = { .c = c, .sfd = sfd };
    uint64_t one = 1;
    pthread_t th;
    int rc;

    w.quit_fd = eventfd(0, EFD_CLOEXEC);
    if (w.quit_fd < 0)
        return -errno;
    rc = pthread_create(&th, NULL, watch_main, &w);
    if (rc != 0) {
        close(w.quit_fd);
        return -rc;
    }
    /* 0 once stopped, or with --once when the client has left. */
    rc = mu_ctx_run(c->ctx);
    if (write(w.quit_fd, &one, sizeof(one)) != sizeof(one))
        fprintf(stderr, "nvme: cannot stop the watcher: %s\n", strerror(errno));
    pthread_join(th, NULL);
    close(w.quit_fd);
    return rc;
}

int main(int argc, char **argv)
{
    struct nvme_ctrl *c = &ctrl;
    sigset_t sigs;
    int sfd, rc;

    if (parse_args(argc, argv, &c->opts) < 0) {
        usage(stderr, argv[0]);
        return 2;
    }
    /* Signals arrive as fd events; a dead client is an error, not death. */
    signal(SIGPIPE, SIG_IGN);
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGTERM);
    sigprocmask(SIG_BLOCK, &sigs, NULL);
    sfd = signalfd(-1, &sigs, SFD_NONBLOCK | SFD_CLOEXEC);
    if (sfd < 0) {
        perror("signalfd");
        return 1;
    }
    rc = ctrl_setup(c);
    c->db_poll = c->opts.db_mode == NVME_DB_POLLED;
    /* Always: in trapped mode it runs what needs fd-less memory. */
    if (rc == 0)
        rc = poller_start(c);
    if (rc < 0) {
        fprintf(stderr, "nvme: cannot serve on %s: %s\n", c->opts.sock,
                strerror(-rc));
        ctrl_teardown(c);
        close(sfd);
        return 1;
    }
    fprintf(stderr, "nvme: serial %s, %u namespace(s) of %llu blocks, "
            "%s doorbells%s, %u poller(s), on %s\n", c->serial, c->nr_ns,
            (unsigned long long)c->ns[0].nlb,
            c->opts.db_mode == NVME_DB_POLLED ? "polled" : "trapped",
            c->opts.ioeventfd ? " (ioeventfd)" : "", c->nr_pollers,
            c->opts.sock);
    rc = run(c, sfd);
    if (rc < 0)
        fprintf(stderr, "nvme: %s\n", strerror(-rc));
    ctrl_teardown(c);
    close(sfd);
    return rc < 0 ? 1 : 0;
}
