/*
 * test_reconnect.c - what a client leaves behind when it goes, however it
 * goes.
 *
 * The protocol (section 1): on disconnect the server unmaps and forgets
 * every DMA region, closes every interrupt eventfd of that client, keeps
 * the rest of the device state, and serves the next client, which sets up
 * memory and interrupts again.  The device runs in this process (a thread
 * in mu_ctx_run), so the fds the server holds for a client are counted in
 * our own /proc/self/fd; clients are either in-process (clean close) or
 * forked children that are SIGKILLed while holding mapped regions and
 * eventfds, or in the middle of sending a message.
 *
 * A client that connects while the process is out of fds waits (the
 * server neither spins nor floods the log) and is served once fds are
 * free.
 *
 * Then a soak: N connect / negotiate / map a memfd / set an irq eventfd /
 * disconnect cycles (N from MU_RECONNECT_CYCLES, default 1000) must leave
 * the open-fd count exactly where it was after a warm-up, and the RSS
 * within a small slack.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <malloc.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"
#include "muser.h"
#include "muser-client.h"
#include "private.h"
#include "wire.h"

#define PG 4096u
#define BAR0_SIZE 0x4000u
#define REGS_SIZE 0x2000u
#define TBL_OFF 0x2000u
#define PBA_OFF 0x3000u
#define NMSIX 8u
#define REG_STATE 0x10u         /* device state the next client must see */

#define IOVA_A 0x100000ull      /* memfd, 2 pages */
#define IOVA_B 0x200000ull      /* memfd, 1 page */
#define IOVA_C 0x300000ull      /* no fd */

#define MASK_EFD (VFU_IRQ_SET_DATA_EVENTFD | VFU_IRQ_SET_ACTION_MASK)

/* ---------------- the device ---------------- */

static struct inproc srv;      /* the device */

static uint8_t regs[REGS_SIZE];         /* context thread only */
static unsigned maps, unmaps, lost;
static unsigned unmap_why[MU_UNMAP_DESTROY + 1];
static bool irq_on[MU_IRQ_NUM];

/* A device thread holding a translation across a crash (see the test). */
static struct {
    unsigned quiesce;       /* set by the unmap callback */
    unsigned put_done;      /* set by the device thread after its put */
    unsigned put_before_free;
} hold;

static unsigned ld(const unsigned *p)
{
    return __atomic_load_n(p, __ATOMIC_SEQ_CST);
}

static bool ldb(const bool *p)
{
    return __atomic_load_n(p, __ATOMIC_SEQ_CST);
}

static ssize_t bar0_access(mu_ctx_t *ctx, void *buf, size_t count,
                           uint64_t offset, bool is_write)
{
    (void)ctx;
    if (offset + count > REGS_SIZE)
        return -EINVAL;
    if (is_write)
        memcpy(regs + offset, buf, count);
    else
        memcpy(buf, regs + offset, count);
    return (ssize_t)count;
}

static int map_cb(mu_ctx_t *ctx, mu_dma_region_t *r)
{
    (void)ctx;
    (void)r;
    __atomic_add_fetch(&maps, 1, __ATOMIC_SEQ_CST);
    return 0;
}

static void unmap_cb(mu_ctx_t *ctx, mu_dma_region_t *r,
                     enum mu_unmap_reason why)
{
    (void)ctx;
    if ((unsigned)why <= MU_UNMAP_DESTROY)
        __atomic_add_fetch(&unmap_why[why], 1, __ATOMIC_SEQ_CST);
    if (mu_dma_region_info(r)->iova == IOVA_A)
        __atomic_store_n(&hold.quiesce, 1, __ATOMIC_SEQ_CST);
    __atomic_add_fetch(&unmaps, 1, __ATOMIC_SEQ_CST);
}

static void state_cb(mu_ctx_t *ctx, enum mu_irq_type type, bool on)
{
    (void)ctx;
    __atomic_store_n(&irq_on[type], on, __ATOMIC_SEQ_CST);
}

static int reset_cb(mu_ctx_t *ctx, enum mu_reset_type type)
{
    (void)ctx;
    if (type == MU_RESET_LOST)
        __atomic_add_fetch(&lost, 1, __ATOMIC_SEQ_CST);
    return 0;
}

static unsigned accept_warnings;

static void log_cb(mu_ctx_t *ctx, enum mu_log_level level, const char *msg)
{
    (void)ctx;
    if (strstr(msg, "accept failed") != NULL) {
        __atomic_add_fetch(&accept_warnings, 1, __ATOMIC_SEQ_CST);
        return;
    }
    if (level <= MU_LOG_WARN)
        fprintf(stderr, "server: %s\n", msg);
}

static int group_setup(void **state)
{
    struct mu_pci_ids ids = {
        .vendor_id = 0x4d55, .device_id = 0x0c0c, .class_code = 0xff0000,
        .irq_pin = 1,
    };
    mu_ctx_t *ctx;
    int rc;

    (void)state;
    if (inproc_create(&srv, "reconnect.sock", MU_DEV_PCI, NULL) < 0)
        return -1;
    ctx = srv.ctx;
    assert_int_equal(mu_ctx_set_log(ctx, log_cb, MU_LOG_WARN), 0);
    if ((rc = mu_pci_set_ids(ctx, &ids)) < 0 ||
        (rc = mu_region_setup(ctx, MU_PCI_BAR0, BAR0_SIZE,
                              MU_REGION_RW | MU_REGION_MEM, bar0_access)) < 0 ||
        (rc = mu_irq_setup(ctx, MU_IRQ_INTX, 1)) < 0 ||
        (rc = mu_pci_add_msix(ctx, NMSIX, 0, TBL_OFF, 0, PBA_OFF)) < 0) {
        fprintf(stderr, "device setup: %s\n", strerror(-rc));
        return -1;
    }
    assert_int_equal(mu_dma_set_callbacks(ctx, map_cb, unmap_cb), 0);
    assert_int_equal(mu_irq_set_state_cb(ctx, state_cb), 0);
    assert_int_equal(mu_ctx_set_reset_cb(ctx, reset_cb), 0);
    return inproc_start(&srv) < 0 ? -1 : 0;
}

static int group_teardown(void **state)
{
    (void)state;
    inproc_stop(&srv);
    return 0;
}

/* ---------------- helpers ---------------- */

static int base_fds;
static unsigned maps0, lost0;
static muc_t *live;
static pid_t child = -1;

/* Wait (10000 naps of 1 ms) for the server to let the client go; it must
 * keep nothing of it. */
static void settle(void)
{
    inproc_settle(&srv, base_fds, &maps, &unmaps, 10000, 1000);
}

static void wait_fds(int n)
{
    assert_int_equal(wait_open_fds(n, 5000, 1000), n);
}

static int test_setup(void **state)
{
    (void)state;
    /* Detached and every unmap callback of the detach run, or a late one
     * would count in this test. */
    if (!inproc_wait_quiet(&srv, &maps, &unmaps, 10000, 1000))
        return -1;
    base_fds = count_open_fds();
    maps0 = ld(&maps);
    lost0 = ld(&lost);
    /* Atomically: the server thread counts with atomics, and TSan wants
     * every access to agree. */
    for (unsigned r = 0; r <= MU_UNMAP_DESTROY; r++)
        __atomic_store_n(&unmap_why[r], 0, __ATOMIC_SEQ_CST);
    return 0;
}

static int test_teardown(void **state)
{
    (void)state;
    muc_close(live);
    live = NULL;
    if (child > 0) {
        kill(child, SIGKILL);
        waitpid(child, NULL, 0);
        child = -1;
    }
    return 0;
}

/* A memfd of 'size' bytes, every one 'fill'. */
static int memfd_filled(const char *name, size_t size, uint8_t fill)
{
    int fd = memfd_sized(name, size, MFD_ALLOW_SEALING);
    uint8_t *p;

    if (fd < 0)
        return -1;
    p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (p == MAP_FAILED) {
        close(fd);
        return -1;
    }
    memset(p, fill, size);
    munmap(p, size);
    return fd;
}

/*
 * What every client here sets up: two memfd regions and one without an
 * fd, INTx and MSI-X 0..2 trigger eventfds, a mask eventfd on MSI-X 3
 * (watched by the server's epoll), and a device register.  Returns 0 or
 * a negative errno, with no assert: children run it too.  The fds are
 * sent, then closed here: afterwards only the server holds them.
 */
/* 2 memfds, 4 trigger + 1 mask eventfd; the server's SIGBUS eventfd for
 * the memfds' regions, less its timer while attached (harness.h). */
#define SETUP_SERVER_FDS (7 + SERVER_FDS_DMA + SERVER_FDS_ATTACH)
static uint8_t fdless_mem[PG];

static int client_setup(muc_t *c, uint32_t state)
{
    int a = memfd_filled("a", 2 * PG, 0xaa), b = memfd_filled("b", PG, 0xbb);
    int efd[5], rc;

    for (int i = 0; i < 5; i++)
        efd[i] = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    rc = a < 0 || b < 0 ? -EBADF : 0;
    for (int i = 0; i < 5 && rc == 0; i++)
        rc = efd[i] < 0 ? -EBADF : 0;
    if (rc == 0)
        rc = muc_dma_map(c, IOVA_A, 2 * PG, a, 0, MUC_DMA_READ | MUC_DMA_WRITE);
    if (rc == 0)
        rc = muc_dma_map(c, IOVA_B, PG, b, 0, MUC_DMA_READ);
    if (rc == 0)
        rc = muc_dma_map_mem(c, IOVA_C, PG, fdless_mem,
                             MUC_DMA_READ | MUC_DMA_WRITE);
    if (rc == 0)
        rc = muc_irq_set_eventfds(c, VFU_IRQ_INTX, 0, 1, &efd[0]);
    if (rc == 0)
        rc = muc_irq_set_eventfds(c, VFU_IRQ_MSIX, 0, 3, &efd[1]);
    if (rc == 0)
        rc = muc_set_irqs(c, MASK_EFD, VFU_IRQ_MSIX, 3, 1, NULL, &efd[4], 1);
    if (rc == 0)
        rc = muc_region_write(c, MU_PCI_BAR0, REG_STATE, &state, 4);
    for (int i = 0; i < 5; i++)
        if (efd[i] >= 0)
            close(efd[i]);
    if (a >= 0)
        close(a);
    if (b >= 0)
        close(b);
    return rc;
}

/* The server holds what client_setup() handed over.  A client in this
 * process adds its own socket to the count. */
static void expect_set_up(bool local_client)
{
    struct mu_dma_stats st;

    /* +1: the server's end of the connection. */
    wait_fds(base_fds + 1 + SETUP_SERVER_FDS + local_client);
    mu_dma_get_stats(srv.ctx, &st);
    assert_int_equal(st.regions, 3);
    assert_int_equal(ld(&maps) - maps0, 3);
    assert_true(ldb(&irq_on[MU_IRQ_INTX]));
    assert_true(ldb(&irq_on[MU_IRQ_MSIX]));
}

/* ...and let go of all of it when the client went. */
static void expect_released(void)
{
    struct mu_dma_stats st;

    settle();
    assert_int_equal(unmap_why[MU_UNMAP_DISCONNECT], 3);
    for (unsigned r = 0; r <= MU_UNMAP_DESTROY; r++)
        if (r != MU_UNMAP_DISCONNECT)
            assert_int_equal(unmap_why[r], 0);
    mu_dma_get_stats(srv.ctx, &st);
    assert_int_equal(st.regions, 0);
    assert_int_equal(st.mapped_bytes, 0);
    assert_false(ldb(&irq_on[MU_IRQ_INTX]));
    assert_false(ldb(&irq_on[MU_IRQ_MSIX]));
    assert_int_equal(ld(&lost) - lost0, 1);
}

/*
 * The next client negotiates again from scratch, finds the device state
 * the last one left (a register), no DMA region and no eventfd of the old
 * one (a trigger is now pending, not delivered anywhere), and can set
 * everything up again.
 */
static void expect_next_client(uint32_t state)
{
    struct muc_device_info di;
    uint32_t v = 0;
    mu_sg_t sg[1];
    int efd;

    assert_int_equal(client_connect(&live, srv.sock), 0);
    assert_int_equal(muc_device_info(live, &di), 0);
    assert_int_equal(muc_region_read(live, MU_PCI_BAR0, REG_STATE, &v, 4), 0);
    assert_int_equal(v, state);
    assert_int_equal(mu_dma_get(srv.ctx, IOVA_A, 8, MU_DMA_READ, sg, 1), -ENOENT);
    assert_int_equal(mu_irq_trigger(srv.ctx, MU_IRQ_MSIX, 0), MU_IRQ_PENDING);
    /* The pending vector fires as soon as it has an eventfd again. */
    efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    assert_true(efd >= 0);
    assert_int_equal(muc_irq_set_eventfds(live, VFU_IRQ_MSIX, 0, 1, &efd), 0);
    assert_int_equal(muc_eventfd_wait(efd, 2000 * slow_factor()), 1);
    close(efd);
    maps0 = ld(&maps);
    assert_int_equal(client_setup(live, state + 1), 0);
    expect_set_up(true);
    muc_close(live);
    live = NULL;
    settle();
}

static void read_exact(int fd, void *buf, size_t len)
{
    size_t done = 0;

    while (done < len) {
        ssize_t n = read(fd, (char *)buf + done, len - done);

        if (n < 0 && errno == EINTR)
            continue;
        assert_true(n > 0);
        done += (size_t)n;
    }
}

enum child_mode {
    CHILD_HOLD,         /* set up, then wait to be killed */
    CHILD_HALF_MSG,     /* set up, send half a DMA_MAP with its fd, wait */
};

/*
 * A client in another process.  It reports 0 or its error on 'ready' and
 * waits for SIGKILL.  No cmocka here: it must never return into the test.
 */
static void child_run(enum child_mode mode, int ready)
{
    muc_t *c = NULL;
    int rc;

    prctl(PR_SET_PDEATHSIG, SIGKILL);
    rc = client_connect(&c, srv.sock);
    if (rc == 0)
        rc = client_setup(c, 0xc0ffee);
    if (rc == 0 && mode == CHILD_HALF_MSG) {
        struct vfu_dma_map m = {
            .argsz = sizeof(m), .flags = VFU_DMA_FLAG_READ,
            .addr = 0x400000, .size = PG,
        };
        uint8_t msg[VFU_HDR_SIZE + sizeof(m)];
        struct vfu_hdr h;
        int fd = memfd_filled("half", PG, 0);

        vfu_hdr_init(&h, 0x4242, VFU_CMD_DMA_MAP, sizeof(msg), 0, 0);
        memcpy(msg, &h, sizeof(h));
        memcpy(msg + sizeof(h), &m, sizeof(m));
        rc = fd < 0 ? -EBADF : muc_send_bytes(c, msg, 24, &fd, 1);
        if (fd >= 0)
            close(fd);
    }
    if (write(ready, &rc, sizeof(rc)) != sizeof(rc))
        _exit(1);
    for (;;)
        pause();
}

static void child_start(enum child_mode mode)
{
    int p[2], rc = -1;

    assert_int_equal(pipe2(p, O_CLOEXEC), 0);
    child = fork();
    assert_true(child >= 0);
    if (child == 0) {
        close(p[0]);
        child_run(mode, p[1]);
        _exit(1);
    }
    close(p[1]);
    read_exact(p[0], &rc, sizeof(rc));
    close(p[0]);
    assert_int_equal(rc, 0);
}

static void child_kill(void)
{
    int st;

    assert_int_equal(kill(child, SIGKILL), 0);
    assert_int_equal(waitpid(child, &st, 0), child);
    child = -1;
    assert_true(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);
}

/* ---------------- tests ---------------- */

static void test_clean_disconnect(void **state)
{
    mu_sg_t sg[1];

    (void)state;
    assert_int_equal(client_connect(&live, srv.sock), 0);
    assert_int_equal(client_setup(live, 0x1234), 0);
    expect_set_up(true);
    /* Mapped by the device, so the disconnect has a mapping to undo. */
    assert_int_equal(mu_dma_get(srv.ctx, IOVA_A, 64, MU_DMA_READ, sg, 1), 1);
    assert_int_equal(((uint8_t *)sg[0].addr)[0], 0xaa);
    mu_dma_put(srv.ctx, sg, 1);
    muc_close(live);
    live = NULL;
    expect_released();
    expect_next_client(0x1234);
}

/* A device thread holding a translation when the client dies. */
static void *holder_fn(void *arg)
{
    mu_sg_t *sg = arg;
    volatile uint8_t *p = sg->addr;
    unsigned sum = 0;

    /* The unmap callback runs before the memory goes: the device may
     * still touch it until it puts its reference. */
    while (!__atomic_load_n(&hold.quiesce, __ATOMIC_SEQ_CST))
        usleep(1000);
    for (size_t i = 0; i < sg->len; i++)
        sum += p[i] == 0xaa;
    __atomic_store_n(&hold.put_before_free, sum == sg->len, __ATOMIC_SEQ_CST);
    mu_dma_put(srv.ctx, sg, 1);
    __atomic_store_n(&hold.put_done, 1, __ATOMIC_SEQ_CST);
    return NULL;
}

/*
 * A client process dies (SIGKILL) holding two mapped memfd regions, one
 * fd-less region, four trigger eventfds and a mask eventfd, while a device
 * thread holds a translation into one of the regions.  The server sees
 * the socket close and releases all of it: unmap callbacks with
 * MU_UNMAP_DISCONNECT (the device thread finishing with the memory after
 * its callback, before it goes), every fd closed, MU_RESET_LOST told.
 */
static void test_crash_disconnect(void **state)
{
    pthread_t th;
    mu_sg_t sg[1];

    (void)state;
    __atomic_store_n(&hold.quiesce, 0, __ATOMIC_SEQ_CST);
    __atomic_store_n(&hold.put_done, 0, __ATOMIC_SEQ_CST);
    __atomic_store_n(&hold.put_before_free, 0, __ATOMIC_SEQ_CST);
    child_start(CHILD_HOLD);
    expect_set_up(false);
    assert_int_equal(mu_dma_get(srv.ctx, IOVA_A + PG, PG, MU_DMA_READ, sg, 1), 1);
    assert_int_equal(pthread_create(&th, NULL, holder_fn, sg), 0);
    child_kill();
    pthread_join(th, NULL);
    assert_true(ld(&hold.put_done));
    assert_true(ld(&hold.put_before_free));
    expect_released();
    expect_next_client(0xc0ffee);
}

/*
 * A client process killed after sending half a DMA_MAP (with its fd, which
 * travels with the first byte): the message is never completed, so never
 * run; the fd that came with it is closed along with everything else.
 */
static void test_killed_mid_message(void **state)
{
    (void)state;
    child_start(CHILD_HALF_MSG);
    /* +1 for the fd that came with the fragment, +1 for the timer that
     * watches the fragment's receive timeout. */
    wait_fds(base_fds + 1 + SETUP_SERVER_FDS + 1 + 1);
    assert_int_equal(ld(&maps) - maps0, 3);
    child_kill();
    expect_released();
    expect_next_client(0xc0ffee);
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

/*
 * RSS means something only with the plain allocator: ASan's quarantine
 * and valgrind's freed-block queue hold on to freed memory by design, so
 * RSS grows with churn there until they are full.  The fd count is exact
 * everywhere.
 */
static bool rss_meaningful(void)
{
#if defined(__SANITIZE_ADDRESS__)
    return false;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
    return false;
#endif
#endif
    return !under_valgrind();
}

static void one_cycle(unsigned i)
{
    muc_t *c = NULL;
    mu_sg_t sg[1];
    int mfd, efd;

    assert_int_equal(client_connect(&c, srv.sock), 0);
    mfd = memfd_filled("cycle", 4 * PG, (uint8_t)i);
    efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    assert_true(mfd >= 0 && efd >= 0);
    assert_int_equal(muc_dma_map(c, IOVA_A, 4 * PG, mfd, 0,
                                 MUC_DMA_READ | MUC_DMA_WRITE), 0);
    assert_int_equal(muc_irq_set_eventfds(c, VFU_IRQ_MSIX, i % NMSIX, 1, &efd), 0);
    /* The device uses both, so the mmap and the eventfd are live. */
    assert_int_equal(mu_dma_get(srv.ctx, IOVA_A, 16, MU_DMA_READ, sg, 1), 1);
    assert_int_equal(((uint8_t *)sg[0].addr)[0], (uint8_t)i);
    mu_dma_put(srv.ctx, sg, 1);
    assert_int_equal(mu_irq_trigger(srv.ctx, MU_IRQ_MSIX, i % NMSIX), 0);
    assert_int_equal(muc_eventfd_wait(efd, 2000 * slow_factor()), 1);
    muc_close(c);
    close(mfd);
    close(efd);
}

static void test_cycles(void **state)
{
    const char *env = getenv("MU_RECONNECT_CYCLES");
    unsigned n = env != NULL ? (unsigned)strtoul(env, NULL, 0) : 1000;
    unsigned warm;
    long rss_warm, rss_end;
    int fds_warm, fds_end;

    (void)state;
    n /= (unsigned)slow_factor();
    if (n < 20)
        n = 20;
    warm = n >= 200 ? 100 : n / 2;
    for (unsigned i = 0; i < warm; i++)
        one_cycle(i);
    settle();
    fds_warm = count_open_fds();
    rss_warm = rss_kib();
    for (unsigned i = warm; i < n; i++)
        one_cycle(i);
    settle();
    fds_end = count_open_fds();
    rss_end = rss_kib();
    print_message("reconnect: %u cycles, fds %d -> %d, RSS %ld -> %ld KiB\n", n,
                  fds_warm, fds_end, rss_warm, rss_end);
    assert_int_equal(fds_end, fds_warm);
    assert_int_equal(ld(&maps), ld(&unmaps));
    assert_int_equal(ld(&maps) - maps0, n);
    assert_int_equal(unmap_why[MU_UNMAP_DISCONNECT], n);
    if (rss_meaningful()) {
        assert_true(rss_warm > 0 && rss_end > 0);
        assert_true(rss_end <= rss_warm + 512);
    }
}

struct conn_job {
    muc_t *c;
    int rc;
};

static void *connect_fn(void *arg)
{
    struct conn_job *j = arg;

    j->rc = client_connect(&j->c, srv.sock);
    return NULL;
}

/* CPU time of the server's thread alone: the test's own threads (and a
 * sanitizer's) do not count. */
static long server_cpu_ms(void)
{
    struct timespec ts;
    clockid_t cid;

    assert_int_equal(pthread_getcpuclockid(srv.thread, &cid), 0);
    assert_int_equal(clock_gettime(cid, &ts), 0);
    return (long)ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

static long wall_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long)ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

static bool accept_warned(void *arg)
{
    (void)arg;
    return __atomic_load_n(&accept_warnings, __ATOMIC_SEQ_CST) >= 1;
}

/*
 * The process runs out of fds while a client waits to be accepted (the
 * device's own fds, other clients' leftovers: anything).  The server must
 * neither spin on the listening socket, which stays readable while the
 * connection is queued, nor flood the log; once fds are free again it
 * accepts the client, which negotiates as if nothing happened.
 */
static void test_accept_out_of_fds(void **state)
{
    enum { SPARE = 16 };
    struct rlimit old, lim;
    struct conn_job job = { 0 };
    struct muc_device_info di;
    int *fill, nfill = 0, cap;
    long cpu0, cpu, wall0, wall;
    pthread_t th;

    (void)state;
    /* valgrind enforces RLIMIT_NOFILE itself, after the fact: accept4
     * succeeds in the kernel and valgrind closes the new fd, so the
     * queued client is hung up on instead of waiting. */
    if (under_valgrind())
        skip();
    assert_int_equal(getrlimit(RLIMIT_NOFILE, &old), 0);
    lim = old;
    lim.rlim_cur = (rlim_t)base_fds + SPARE + 64;
    cap = (int)lim.rlim_cur;
    fill = calloc((size_t)cap, sizeof(*fill));
    assert_non_null(fill);
    assert_int_equal(setrlimit(RLIMIT_NOFILE, &lim), 0);
    while (nfill < cap && (fill[nfill] = dup(0)) >= 0)
        nfill++;
    assert_true(nfill < cap);
    /* One slot: the client's socket.  None for the server's accept. */
    close(fill[--nfill]);
    __atomic_store_n(&accept_warnings, 0, __ATOMIC_SEQ_CST);
    assert_int_equal(pthread_create(&th, NULL, connect_fn, &job), 0);
    /*
     * The server has met the queued client and failed to accept it (the
     * event waited for); from there, watch its thread's CPU for a while.
     * A spinning loop would burn what it is given of that window, a
     * waiting one next to nothing, however loaded the machine: the bound
     * is half the wall time actually watched.
     */
    assert_true(wait_until(accept_warned, NULL, 5000, 2000));
    cpu0 = server_cpu_ms();
    wall0 = wall_ms();
    usleep(300 * 1000);
    cpu = server_cpu_ms() - cpu0;
    wall = wall_ms() - wall0;

    while (nfill > 0)
        close(fill[--nfill]);
    free(fill);
    assert_int_equal(setrlimit(RLIMIT_NOFILE, &old), 0);
    pthread_join(th, NULL);
    live = job.c;
    assert_int_equal(job.rc, 0);
    assert_int_equal(muc_device_info(live, &di), 0);
    print_message("out of fds: server thread %ld ms of CPU in %ld ms, %u "
                  "warnings\n", cpu, wall, ld(&accept_warnings));
    /* A spinning loop burns its share of the window and logs a line a
     * turn. */
    assert_true(cpu < wall / 2);
    assert_true(ld(&accept_warnings) >= 1 && ld(&accept_warnings) <= 3);
    muc_close(live);
    live = NULL;
    settle();
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, test_setup, test_teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_clean_disconnect),
        T(test_crash_disconnect),
        T(test_killed_mid_message),
        T(test_accept_out_of_fds),
        T(test_cycles),
    };

    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
