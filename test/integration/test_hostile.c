/*
 * test_hostile.c - a full-featured device against a hostile client.
 *
 * The device runs in this process (a thread in mu_ctx_run on a socket in a
 * private directory), so every fd the server holds is counted in our own
 * /proc/self/fd, and its DMA callbacks can be counted directly:
 *
 *  - BAR0: 16 KiB memory BAR with a callback (registers, and a doorbell
 *    that makes the device DMA-read guest memory from the context thread),
 *    the MSI-X table at 0x2000 and the PBA at 0x3000;
 *  - BAR2: 64 KiB memory BAR backed by a memfd, wholly mmappable;
 *  - INTx and 8 MSI-X vectors;
 *  - DMA map/unmap callbacks that count (maps == unmaps whenever no client
 *    is attached), and a log callback that keeps the last lines;
 *  - small limits: 64 KiB data transfers, 4 fds a message, 8 DMA regions,
 *    4 DMA requests in flight.
 *
 * Two groups of tests, each with its own device, differ in the send and
 * receive timeouts.  The tests of a timeout run against 300 ms ones (times
 * slow_factor()), so that waiting for them is cheap, and assert only "not
 * before the timeout", measured from before the server's clock starts.
 * Every other test - caps on counts and bytes, error replies, a device's
 * DMA answered by the test - runs against timeouts far longer than its
 * work (a minute, times slow_factor()), so that on a loaded machine no
 * timeout can fire before the thing under test does.
 *
 * One test per kind of abuse.  Each says whether the hostile client got an
 * error reply (the stream is still framed, so the server answers and goes
 * on) or was dropped (the stream can no longer be trusted, or the client
 * stopped playing its part), and each ends with "no fd leaked, map/unmap
 * balanced" and "a new client negotiates and gets full service":
 *
 *   truncated header, then EOF            dropped, no reply
 *   size < 16                             EINVAL reply, dropped
 *   size > MU_LIMIT_MSG_SIZE              EMSGSIZE reply, dropped
 *   size not what the command needs       EINVAL reply, served on
 *   unknown command                       ENOSYS reply, served on
 *   reply flag on a request               EINVAL reply, served on
 *   impossible header flags               EINVAL reply if a command; dropped
 *   reply with the wrong msg_id           refused (EINVAL reply, or
 *                                         ignored), served on; the device's
 *                                         DMA read times out
 *   more fds than MU_LIMIT_MSG_FDS        dropped (E2BIG reply if the fds
 *                                         came in pieces)
 *   fds on a command that takes none      EINVAL reply, fds closed, served on
 *   fds not what they claim to be         EINVAL reply, fds closed, served on
 *   DMA_MAP fd too small                  EINVAL reply, served on
 *   region access past the end / wrapping EINVAL reply, served on
 *   SET_IRQS with mismatched counts       EINVAL reply, served on
 *   stops reading replies                 dropped after the send timeout
 *   half a message, then silence          dropped after the receive timeout
 *   100 000 pipelined small requests      all answered in order if read
 *                                         within the send timeout, else
 *                                         dropped
 *   DMA_MAP past MU_LIMIT_DMA_REGIONS     ENOSPC reply, served on
 *   DMA reads past MU_LIMIT_DMA_PENDING   -EBUSY to the device at once
 *   hangup during a device's DMA read     -ENOTCONN to the device at once
 *   garbage while a context-thread DMA    the request still ends on time
 *   request waits for its reply           (-ETIMEDOUT to its callback)
 *   piling up commands meanwhile          served in order, nothing held
 *                                         (by count or by bytes)
 *   requests answered out of order        each gets its own data
 *   requests past MU_LIMIT_DMA_PENDING    -EBUSY at once
 *   hangup with requests in flight        -ENOTCONN to each callback, once
 *
 * Under ASan/UBSan a hostile input that reaches undefined behaviour must
 * fail the test, not just print: see __ubsan_default_options below.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"
#include "muser.h"
#include "muser-client.h"
#include "private.h"
#include "wire.h"

#define PG 4096u
#define BAR0_SIZE 0x4000u
#define REGS_SIZE 0x2000u       /* the callback's part of BAR0 */
#define TBL_OFF 0x2000u
#define PBA_OFF 0x3000u
#define NMSIX 8u
#define BAR2_SIZE 0x10000u
#define REG_SCRATCH 0x40u
/* Doorbell i at DOORBELL + i * DB_STRIDE: write an iova and the device
 * reads 8 bytes there with a request (mu_dma_read_async) from the context
 * thread; the data lands at DOORBELL_DATA (+ i * DB_STRIDE), the status at
 * DOORBELL_RC (int32: 1 while in flight). */
#define DOORBELL 0x100u
#define DOORBELL_DATA 0x108u
#define DOORBELL_RC 0x110u
#define DB_STRIDE 0x20u

#define XFER (64u * 1024)
/* Room above XFER so that a count just past XFER still fits a message:
 * the two limits must be told apart. */
#define MSG_SIZE (VFU_HDR_SIZE + 16u + XFER + 64u)
#define MSG_FDS 4u
#define DMA_REGIONS 8u
#define DMA_PENDING 4u
#define DB_SLOTS (DMA_PENDING + 1)

#define IOVA_OK 0x100000ull     /* used by assert_serves() */
#define IOVA_MEM 0x200000ull    /* fd-less memory for DMA_READ tests */

#define RID 0x7000u             /* msg_ids of raw messages */

/* UBSan only prints by default; a hostile client reaching UB is a bug. */
const char *__ubsan_default_options(void);
__attribute__((used, visibility("default")))
const char *__ubsan_default_options(void)
{
    return "halt_on_error=1:print_stacktrace=1";
}

/* ---------------- the device ---------------- */

static struct inproc srv;      /* the device */
static struct {
    int bar2_fd;
} dev;

static int tmo;                 /* the group's send and receive timeouts, ms */
static int ev_wait;             /* ms to wait for what must come, see long_wait */

/* Context thread only. */
static uint8_t regs[REGS_SIZE];
/* Written by the context thread, read by the test. */
static unsigned bar0_calls, maps, unmaps;
static unsigned unmap_why[MU_UNMAP_DESTROY + 1];
static int db_rc[DB_SLOTS];     /* as at DOORBELL_RC; callbacks run: */
static unsigned db_done;
/* The requests' buffers: the library's until their callback. */
static uint8_t db_buf[DB_SLOTS][8];

static void db_finish(mu_ctx_t *ctx, void *arg, int status)
{
    unsigned i = (unsigned)(uintptr_t)arg;
    int32_t st = status;

    (void)ctx;
    assert_true(i < DB_SLOTS);
    assert_int_equal(__atomic_load_n(&db_rc[i], __ATOMIC_SEQ_CST), 1);
    if (status == 0)
        memcpy(regs + DOORBELL_DATA + i * DB_STRIDE, db_buf[i], 8);
    memcpy(regs + DOORBELL_RC + i * DB_STRIDE, &st, sizeof(st));
    __atomic_store_n(&db_rc[i], status, __ATOMIC_SEQ_CST);
    __atomic_add_fetch(&db_done, 1, __ATOMIC_SEQ_CST);
}

static unsigned ld(const unsigned *p)
{
    return __atomic_load_n(p, __ATOMIC_SEQ_CST);
}

static ssize_t bar0_access(mu_ctx_t *ctx, void *buf, size_t count,
                           uint64_t offset, bool is_write)
{
    __atomic_add_fetch(&bar0_calls, 1, __ATOMIC_SEQ_CST);
    if (offset + count > REGS_SIZE)
        return -EINVAL;     /* the library keeps the table/PBA to itself */
    if (!is_write) {
        memcpy(buf, regs + offset, count);
        return (ssize_t)count;
    }
    if (offset >= DOORBELL && offset < DOORBELL + DB_SLOTS * DB_STRIDE &&
        (offset - DOORBELL) % DB_STRIDE == 0 && count == 8) {
        /*
         * DMA from the context thread, as a device starting the work
         * inside the register write would: a request, which the client's
         * reply completes from the event loop.
         */
        unsigned i = (offset - DOORBELL) / DB_STRIDE;
        int32_t st = 1;
        uint64_t iova;
        int rc;

        if (__atomic_load_n(&db_rc[i], __ATOMIC_SEQ_CST) == 1)
            return -EBUSY;
        memcpy(&iova, buf, sizeof(iova));
        rc = mu_dma_read_async(ctx, iova, db_buf[i], 8, db_finish,
                               (void *)(uintptr_t)i);
        if (rc < 0)
            return rc;
        __atomic_store_n(&db_rc[i], 1, __ATOMIC_SEQ_CST);
        memcpy(regs + DOORBELL_RC + i * DB_STRIDE, &st, sizeof(st));
    }
    memcpy(regs + offset, buf, count);
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
    (void)r;
    if ((unsigned)why <= MU_UNMAP_DESTROY)
        __atomic_add_fetch(&unmap_why[why], 1, __ATOMIC_SEQ_CST);
    __atomic_add_fetch(&unmaps, 1, __ATOMIC_SEQ_CST);
}

/*
 * The last log lines (the harness's ring, LOG_RING_MAX of them).  Floods
 * log a line per bogus message, so this is a ring; the lines the tests
 * look for (why a client was dropped) come last.
 */
static void log_cb(mu_ctx_t *ctx, enum mu_log_level level, const char *msg)
{
    (void)ctx;
    (void)level;
    /*
     * A real sink costs something (the default writes each line to
     * stderr; syslog or a file may block).  Make the line a client can
     * provoke at will cost enough that a client flooding bogus replies
     * outpaces the server, as it would against such a sink: the flood
     * tests must hold then too.
     */
    if (strstr(msg, "unexpected reply") != NULL ||
        strstr(msg, "late reply") != NULL)
        usleep(50);
    log_capture_line(msg);
}

/* All of this test's memfds may be sealed. */
static int memfd_sealable(const char *name, size_t size)
{
    return memfd_sized(name, size, MFD_ALLOW_SEALING);
}

static int device_setup(int timeout_ms)
{
    struct mu_pci_ids ids = {
        .vendor_id = 0x4d55, .device_id = 0x0bad, .class_code = 0xff0000,
        .irq_pin = 1,
    };
    mu_ctx_t *ctx;
    int rc;

    tmo = timeout_ms;
    log_ring_init(LOG_RING_MAX);
    dev.bar2_fd = memfd_sealable("bar2", BAR2_SIZE);
    if (dev.bar2_fd < 0 ||
        inproc_create(&srv, "hostile.sock", MU_DEV_PCI, NULL) < 0)
        return -1;
    ctx = srv.ctx;
    assert_int_equal(mu_ctx_set_log(ctx, log_cb, MU_LOG_INFO), 0);
    if ((rc = mu_pci_set_ids(ctx, &ids)) < 0 ||
        (rc = mu_region_setup(ctx, MU_PCI_BAR0, BAR0_SIZE,
                              MU_REGION_RW | MU_REGION_MEM, bar0_access)) < 0 ||
        (rc = mu_region_setup(ctx, MU_PCI_BAR2, BAR2_SIZE,
                              MU_REGION_RW | MU_REGION_MEM, NULL)) < 0 ||
        (rc = mu_region_set_mmap(ctx, MU_PCI_BAR2, dev.bar2_fd, 0, NULL,
                                 0)) < 0 ||
        (rc = mu_irq_setup(ctx, MU_IRQ_INTX, 1)) < 0 ||
        (rc = mu_pci_add_msix(ctx, NMSIX, 0, TBL_OFF, 0, PBA_OFF)) < 0 ||
        (rc = mu_ctx_set_limit(ctx, MU_LIMIT_MSG_SIZE, MSG_SIZE)) < 0 ||
        (rc = mu_ctx_set_limit(ctx, MU_LIMIT_DATA_XFER, XFER)) < 0 ||
        (rc = mu_ctx_set_limit(ctx, MU_LIMIT_MSG_FDS, MSG_FDS)) < 0 ||
        (rc = mu_ctx_set_limit(ctx, MU_LIMIT_DMA_REGIONS, DMA_REGIONS)) < 0 ||
        (rc = mu_ctx_set_limit(ctx, MU_LIMIT_DMA_PENDING, DMA_PENDING)) < 0 ||
        (rc = mu_ctx_set_limit(ctx, MU_LIMIT_SEND_TIMEOUT_MS, (uint64_t)tmo)) < 0 ||
        (rc = mu_ctx_set_limit(ctx, MU_LIMIT_RECV_TIMEOUT_MS, (uint64_t)tmo)) < 0) {
        fprintf(stderr, "device setup: %s\n", strerror(-rc));
        return -1;
    }
    assert_int_equal(mu_dma_set_callbacks(ctx, map_cb, unmap_cb), 0);
    return inproc_start(&srv) < 0 ? -1 : 0;
}

/* Timeouts that are cheap to wait for, in the tests of a timeout. */
static int group_setup_timeouts(void **state)
{
    (void)state;
    ev_wait = 10 * 300 * slow_factor() + 5000 * slow_factor();
    return device_setup(300 * slow_factor());
}

/* Timeouts that cannot fire before the work under test is done. */
static int group_setup_limits(void **state)
{
    long t = 60000L * slow_factor();

    (void)state;
    if (t > 3600L * 1000)
        t = 3600L * 1000;       /* the library's largest */
    ev_wait = (int)(t / 2);
    return device_setup((int)t);
}

static int group_teardown(void **state)
{
    (void)state;
    inproc_stop(&srv);
    close(dev.bar2_fd);
    return 0;
}

/* ---------------- fixtures and helpers ---------------- */

static int base_fds;            /* open fds with no client attached */
static unsigned maps0;          /* map callbacks before the test */
static muc_t *hc, *gc;          /* hostile and good client of a test */

/* The clock the library's timeouts run on (lib/clock.c: monotonic). */
static uint64_t now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Map callbacks during this test. */
static unsigned new_maps(void)
{
    return ld(&maps) - maps0;
}

/*
 * The client is gone (or about to be): wait (5000 naps of 2 ms), then
 * insist that the server kept nothing of it.
 */
static void settle(void)
{
    inproc_settle(&srv, base_fds, &maps, &unmaps, 5000, 2000);
}

/* Wait for the fd count to come back to n (the server closes received fds
 * after it has sent the reply). */
static void wait_fds(int n)
{
    assert_int_equal(wait_open_fds(n, 2500, 2000), n);
}

static int test_setup(void **state)
{
    (void)state;
    /* Detached and every unmap callback of the detach run, or a late one
     * would count in this test. */
    if (!inproc_wait_quiet(&srv, &maps, &unmaps, 5000, 2000))
        return -1;
    base_fds = count_open_fds();
    maps0 = ld(&maps);
    log_clear();
    /* Atomically: the server thread counts with atomics, and TSan wants
     * every access to agree. */
    for (unsigned r = 0; r <= MU_UNMAP_DESTROY; r++)
        __atomic_store_n(&unmap_why[r], 0, __ATOMIC_SEQ_CST);
    return 0;
}

static int test_teardown(void **state)
{
    (void)state;
    muc_close(hc);
    muc_close(gc);
    hc = gc = NULL;
    return 0;
}

static int long_wait(void);

static muc_t *connect_client(void)
{
    struct muc_opts o = { .timeout_ms = long_wait() };
    muc_t *c = NULL;

    assert_int_equal(muc_connect(&c, srv.sock, &o), 0);
    return c;
}

static void close_client(muc_t **c)
{
    muc_close(*c);
    *c = NULL;
}

static int efd_new(void)
{
    int fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);

    assert_true(fd >= 0);
    return fd;
}

static void close_fds(int *fds, unsigned n)
{
    for (unsigned i = 0; i < n; i++)
        close(fds[i]);
}

/* A message with a header of our choosing (the size may lie). */
static void send_raw(muc_t *c, uint16_t id, uint16_t cmd, uint32_t size,
                     uint32_t flags, uint32_t err, const void *body,
                     size_t len, const int *fds, unsigned nfds)
{
    uint8_t *buf = malloc(VFU_HDR_SIZE + len);
    struct vfu_hdr h;

    assert_non_null(buf);
    vfu_hdr_init(&h, id, cmd, size, flags, err);
    memcpy(buf, &h, sizeof(h));
    if (len > 0)
        memcpy(buf + sizeof(h), body, len);
    assert_int_equal(muc_send_bytes(c, buf, VFU_HDR_SIZE + len, fds, nfds), 0);
    free(buf);
}

static void send_cmd(muc_t *c, uint16_t id, uint16_t cmd, uint32_t flags,
                     const void *body, size_t len, const int *fds,
                     unsigned nfds)
{
    send_raw(c, id, cmd, (uint32_t)(VFU_HDR_SIZE + len), flags, 0, body, len,
             fds, nfds);
}

/* Receive one message: its total size (header copied to *h, the body to
 * body[0..cap)), or a negative errno. */
static ssize_t recv_raw(muc_t *c, struct vfu_hdr *h, void *body, size_t cap,
                        int timeout_ms)
{
    static uint8_t buf[VFU_HDR_SIZE + 16 + XFER];
    ssize_t n = muc_recv_msg(c, buf, sizeof(buf), timeout_ms);

    if (n >= (ssize_t)VFU_HDR_SIZE) {
        memcpy(h, buf, sizeof(*h));
        if (cap > 0)
            memcpy(body, buf + VFU_HDR_SIZE,
                   (size_t)n - VFU_HDR_SIZE < cap ? (size_t)n - VFU_HDR_SIZE
                                                  : cap);
    }
    return n;
}

/*
 * How long to wait for something that must come: far longer than the
 * work, so reaching it means a failure, not a slow machine.  In the group
 * with short timeouts, several of them; in the other, half its timeouts
 * (half a minute times slow_factor()), so that a reply the timeout would
 * produce is not mistaken for the one expected.
 */
static int long_wait(void)
{
    return ev_wait;
}

/* The next thing on the connection is an error reply to (id, cmd). */
static void expect_error(muc_t *c, uint16_t id, uint16_t cmd, uint32_t err)
{
    struct vfu_hdr h;

    assert_int_equal(recv_raw(c, &h, NULL, 0, long_wait()), VFU_HDR_SIZE);
    assert_int_equal(h.msg_id, id);
    assert_int_equal(h.cmd, cmd);
    assert_int_equal(h.flags, VFU_F_TYPE_REPLY | VFU_F_ERROR);
    assert_int_equal(h.error, err);
}

/* The server hung up: nothing more comes, and no reply came before. */
static void expect_dropped(muc_t *c)
{
    uint8_t buf[64];

    assert_int_equal(muc_recv_msg(c, buf, sizeof(buf), long_wait()), -ENOTCONN);
}

/* A request on a negotiated client; 0 or the server's negated errno. */
static int request(muc_t *c, uint16_t cmd, const void *p, size_t len,
                   const int *fds, unsigned nfds)
{
    uint8_t reply[256];
    size_t rlen;

    return muc_request(c, cmd, p, len, fds, nfds, reply, sizeof(reply), &rlen,
                       NULL, 0, NULL);
}

static int region_rw(muc_t *c, uint16_t cmd, uint32_t region, uint64_t off,
                     uint32_t count)
{
    static uint8_t buf[sizeof(struct vfu_region_access) + XFER + 1];
    static uint8_t reply[sizeof(struct vfu_region_access) + XFER];
    struct vfu_region_access a = { .offset = off, .region = region,
                                   .count = count };
    size_t len = sizeof(a), rlen;

    memcpy(buf, &a, sizeof(a));
    if (cmd == VFU_CMD_REGION_WRITE) {
        assert_true(count <= XFER + 1);
        memset(buf + sizeof(a), 0x5a, count);
        len += count;
    }
    return muc_request(c, cmd, buf, len, NULL, 0, reply, sizeof(reply), &rlen,
                       NULL, 0, NULL);
}

static int dma_map_raw(muc_t *c, uint64_t iova, uint64_t size, uint64_t off,
                       uint32_t flags, int fd)
{
    struct vfu_dma_map m = {
        .argsz = sizeof(m), .flags = flags, .offset = off, .addr = iova,
        .size = size,
    };

    return request(c, VFU_CMD_DMA_MAP, &m, sizeof(m), fd >= 0 ? &fd : NULL,
                   fd >= 0);
}

#define DMA_RW (VFU_DMA_FLAG_READ | VFU_DMA_FLAG_WRITE)

static void fill_pattern(uint8_t *p, size_t n, unsigned seed)
{
    for (size_t i = 0; i < n; i++)
        p[i] = (uint8_t)(seed + i * 7);
}

/*
 * After any abuse, a new client must negotiate and get everything the
 * device offers: discovery, both kinds of region, DMA through a mapping,
 * INTx and MSI-X.  Then it leaves, and the server keeps nothing of it.
 */
static void assert_serves(void)
{
    struct muc_device_info di;
    struct muc_region_info ri;
    uint8_t pat[64], back[64];
    const struct muc_server_caps *caps;
    mu_sg_t sg[1];
    uint16_t vid;
    uint32_t v = 0x12345678, r = 0;
    int mfd, efd[2];
    uint8_t *p;

    gc = connect_client();
    caps = muc_server_caps(gc);
    assert_int_equal(caps->max_msg_fds, MSG_FDS);
    assert_int_equal(caps->max_data_xfer_size, XFER);
    assert_int_equal(muc_device_info(gc, &di), 0);
    assert_int_equal(di.flags, VFU_DEV_FLAG_PCI | VFU_DEV_FLAG_RESET);
    assert_int_equal(di.num_regions, 9);
    assert_int_equal(di.num_irqs, 5);
    assert_int_equal(muc_config_read16(gc, 0, &vid), 0);
    assert_int_equal(vid, 0x4d55);

    /* The callback region. */
    assert_int_equal(muc_region_write(gc, MU_PCI_BAR0, REG_SCRATCH, &v, 4), 0);
    assert_int_equal(muc_region_read(gc, MU_PCI_BAR0, REG_SCRATCH, &r, 4), 0);
    assert_int_equal(r, v);

    /* The mmappable region: the client's mapping and REGION_READ agree. */
    assert_int_equal(muc_region_info(gc, MU_PCI_BAR2, &ri), 0);
    assert_true(ri.flags & MUC_REGION_MMAP);
    assert_true(ri.fd >= 0);
    p = mmap(NULL, BAR2_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, ri.fd,
             (off_t)ri.offset);
    assert_true(p != MAP_FAILED);
    fill_pattern(pat, sizeof(pat), (unsigned)now_ms());
    memcpy(p + 0x80, pat, sizeof(pat));
    assert_int_equal(muc_region_read(gc, MU_PCI_BAR2, 0x80, back, sizeof(back)), 0);
    assert_memory_equal(back, pat, sizeof(pat));
    munmap(p, BAR2_SIZE);
    close(ri.fd);

    /* DMA through a mapping of the client's memfd. */
    mfd = memfd_sealable("dma", 2 * PG);
    assert_true(mfd >= 0);
    fill_pattern(pat, sizeof(pat), 3);
    assert_int_equal(pwrite(mfd, pat, sizeof(pat), PG), sizeof(pat));
    assert_int_equal(muc_dma_map(gc, IOVA_OK, 2 * PG, mfd, 0,
                                 MUC_DMA_READ | MUC_DMA_WRITE), 0);
    close(mfd);
    assert_int_equal(mu_dma_get(srv.ctx, IOVA_OK + PG, sizeof(pat),
                                MU_DMA_READ, sg, 1), 1);
    assert_memory_equal(sg[0].addr, pat, sizeof(pat));
    mu_dma_put(srv.ctx, sg, 1);

    /* Interrupts. */
    efd[0] = efd_new();
    efd[1] = efd_new();
    assert_int_equal(muc_irq_set_eventfds(gc, VFU_IRQ_INTX, 0, 1, &efd[0]), 0);
    assert_int_equal(muc_irq_set_eventfds(gc, VFU_IRQ_MSIX, 3, 1, &efd[1]), 0);
    assert_int_equal(mu_irq_trigger(srv.ctx, MU_IRQ_INTX, 0), 0);
    assert_int_equal(mu_irq_trigger(srv.ctx, MU_IRQ_MSIX, 3), 0);
    assert_int_equal(muc_eventfd_wait(efd[0], 2000 * slow_factor()), 1);
    assert_int_equal(muc_eventfd_wait(efd[1], 2000 * slow_factor()), 1);

    close_client(&gc);
    close_fds(efd, 2);
    settle();
}

/* mu_dma_read from a device thread. */
struct dma_job {
    pthread_t th;
    pthread_barrier_t *start;
    uint64_t iova;
    size_t len;
    uint8_t buf[64];
    int rc;
    uint64_t ms;            /* how long mu_dma_read took */
    unsigned done;
};

static void *dma_job_fn(void *arg)
{
    struct dma_job *j = arg;
    uint64_t t0;

    if (j->start != NULL)
        pthread_barrier_wait(j->start);
    t0 = now_ms();
    j->rc = mu_dma_read(srv.ctx, j->iova, j->buf, j->len);
    j->ms = now_ms() - t0;
    __atomic_store_n(&j->done, 1, __ATOMIC_SEQ_CST);
    return NULL;
}

static void job_start(struct dma_job *j, uint64_t iova, size_t len)
{
    memset(j, 0, sizeof(*j));
    j->iova = iova;
    j->len = len;
    assert_int_equal(pthread_create(&j->th, NULL, dma_job_fn, j), 0);
}

/* The DMA_READ the device sent, as the client sees it. */
static void recv_dma_read(muc_t *c, struct vfu_hdr *h, uint64_t iova,
                          uint64_t count)
{
    struct vfu_dma_access a;

    assert_int_equal(recv_raw(c, h, &a, sizeof(a), long_wait()),
                     VFU_HDR_SIZE + sizeof(a));
    assert_int_equal(h->cmd, VFU_CMD_DMA_READ);
    assert_int_equal(h->flags, VFU_F_TYPE_COMMAND);
    assert_int_equal(a.addr, iova);
    assert_int_equal(a.count, count);
}

static void send_dma_read_reply(muc_t *c, uint16_t id, uint16_t cmd,
                                uint64_t iova, uint64_t count,
                                const void *data, size_t dlen)
{
    uint8_t body[sizeof(struct vfu_dma_access) + 64];
    struct vfu_dma_access a = { .addr = iova, .count = count };

    assert_true(dlen <= 64);
    memcpy(body, &a, sizeof(a));
    memcpy(body + sizeof(a), data, dlen);
    send_cmd(c, id, cmd, VFU_F_TYPE_REPLY, body, sizeof(a) + dlen, NULL, 0);
}

/* ---------------- framing ---------------- */

/*
 * A header cut short, then the client half-closes: the server sees EOF in
 * the middle of a message, so there is nothing to answer.  Dropped without
 * a reply; the fds that came with the fragment are closed.
 */
static void test_truncated_header(void **state)
{
    static const size_t lens[] = { 1, 8, 15 };
    uint8_t msg[32] = { 0 };
    struct vfu_hdr h;
    int efd[2];

    (void)state;
    vfu_hdr_init(&h, RID, VFU_CMD_DEVICE_GET_INFO, sizeof(msg), 0, 0);
    memcpy(msg, &h, sizeof(h));
    for (size_t i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
        hc = connect_client();
        efd[0] = efd_new();
        efd[1] = efd_new();
        assert_int_equal(muc_send_bytes(hc, msg, lens[i], efd, 2), 0);
        close_fds(efd, 2);
        assert_int_equal(shutdown(muc_fd(hc), SHUT_WR), 0);
        expect_dropped(hc);
        close_client(&hc);
        expect_log("client dropped: client disconnected");
        settle();
    }
    assert_serves();
}

/* size < 16: the framing is lost.  An error reply naming the request, then
 * the connection closes. */
static void test_size_below_header(void **state)
{
    static const uint32_t sizes[] = { 0, 1, 8, 15 };
    uint8_t body[16] = { 0 };

    (void)state;
    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        hc = connect_client();
        send_raw(hc, (uint16_t)(RID + i), VFU_CMD_DEVICE_GET_INFO, sizes[i],
                 0, 0, body, sizeof(body), NULL, 0);
        expect_error(hc, (uint16_t)(RID + i), VFU_CMD_DEVICE_GET_INFO, EINVAL);
        expect_dropped(hc);
        close_client(&hc);
        expect_log("client dropped: malformed message");
        settle();
    }
    assert_serves();
}

/*
 * A size past MU_LIMIT_MSG_SIZE is refused from the header alone (the body
 * is never buffered): EMSGSIZE, then dropped, since the rest of the stream
 * is that body.  Up to the limit the message is taken; a transfer count
 * past MU_LIMIT_DATA_XFER in a message that fits is an ordinary EINVAL.
 */
static void test_size_above_limit(void **state)
{
    static const uint32_t sizes[] = { MSG_SIZE + 1, 64u << 20, UINT32_MAX };
    struct muc_device_info di;

    (void)state;
    hc = connect_client();
    assert_int_equal(region_rw(hc, VFU_CMD_REGION_WRITE, MU_PCI_BAR2, 0, XFER), 0);
    assert_int_equal(region_rw(hc, VFU_CMD_REGION_READ, MU_PCI_BAR2, 0, XFER), 0);
    assert_int_equal(region_rw(hc, VFU_CMD_REGION_WRITE, MU_PCI_BAR2, 0,
                               XFER + 1), -EINVAL);
    assert_int_equal(region_rw(hc, VFU_CMD_REGION_READ, MU_PCI_BAR2, 0,
                               XFER + 1), -EINVAL);
    assert_int_equal(muc_device_info(hc, &di), 0);
    close_client(&hc);
    settle();

    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        struct vfu_region_access a = { 0, MU_PCI_BAR2, 16 };

        hc = connect_client();
        send_raw(hc, (uint16_t)(RID + i), VFU_CMD_REGION_WRITE, sizes[i], 0,
                 0, &a, sizeof(a), NULL, 0);
        expect_error(hc, (uint16_t)(RID + i), VFU_CMD_REGION_WRITE, EMSGSIZE);
        expect_dropped(hc);
        close_client(&hc);
        expect_log("client dropped: malformed message");
        settle();
    }
    assert_serves();
}

/*
 * The size is a valid frame but not what the command's layout needs: the
 * stream is still in step, so each gets EINVAL and the client goes on.
 * None of them reaches the device's callback.
 */
static void test_size_mismatch(void **state)
{
    uint8_t buf[64] = { 0 };
    struct vfu_device_info di = { .argsz = sizeof(di) };
    struct vfu_region_access a = { .offset = REG_SCRATCH,
                                   .region = MU_PCI_BAR0, .count = 8 };
    struct vfu_dma_map m = { .argsz = sizeof(m), .flags = DMA_RW,
                             .addr = IOVA_MEM, .size = PG };
    struct vfu_irq_set s = {
        .argsz = sizeof(s),
        .flags = VFU_IRQ_SET_DATA_NONE | VFU_IRQ_SET_ACTION_MASK,
        .index = VFU_IRQ_MSIX, .start = 0, .count = 1,
    };
    struct muc_device_info info;
    unsigned calls;
    int busy, mfd;

    (void)state;
    hc = connect_client();
    busy = count_open_fds();
    calls = ld(&bar0_calls);

    /* DEVICE_GET_INFO: 16 bytes, not 20, 12 or none. */
    memcpy(buf, &di, sizeof(di));
    assert_int_equal(request(hc, VFU_CMD_DEVICE_GET_INFO, buf, 20, NULL, 0), -EINVAL);
    assert_int_equal(request(hc, VFU_CMD_DEVICE_GET_INFO, buf, 12, NULL, 0), -EINVAL);
    assert_int_equal(request(hc, VFU_CMD_DEVICE_GET_INFO, NULL, 0, NULL, 0), -EINVAL);

    /* REGION_WRITE whose count disagrees with the data that came. */
    memcpy(buf, &a, sizeof(a));
    assert_int_equal(request(hc, VFU_CMD_REGION_WRITE, buf, sizeof(a) + 4,
                             NULL, 0), -EINVAL);
    a.count = 4;
    memcpy(buf, &a, sizeof(a));
    assert_int_equal(request(hc, VFU_CMD_REGION_WRITE, buf, sizeof(a) + 8,
                             NULL, 0), -EINVAL);
    assert_int_equal(request(hc, VFU_CMD_REGION_WRITE, buf, sizeof(a),
                             NULL, 0), -EINVAL);
    /* REGION_READ carries no data. */
    assert_int_equal(request(hc, VFU_CMD_REGION_READ, buf, sizeof(a) + 4,
                             NULL, 0), -EINVAL);
    assert_int_equal(request(hc, VFU_CMD_REGION_READ, buf, sizeof(a) - 4,
                             NULL, 0), -EINVAL);
    assert_int_equal(ld(&bar0_calls), calls);

    /* DMA_MAP: 32 bytes and argsz 32, an fd or not. */
    mfd = memfd_sealable("dma", PG);
    memcpy(buf, &m, sizeof(m));
    assert_int_equal(request(hc, VFU_CMD_DMA_MAP, buf, sizeof(m) + 8, &mfd, 1), -EINVAL);
    assert_int_equal(request(hc, VFU_CMD_DMA_MAP, buf, sizeof(m) - 8, &mfd, 1), -EINVAL);
    m.argsz = sizeof(m) + 8;
    memcpy(buf, &m, sizeof(m));
    assert_int_equal(request(hc, VFU_CMD_DMA_MAP, buf, sizeof(m) + 8, NULL, 0), -EINVAL);
    close(mfd);
    assert_int_equal(new_maps(), 0);

    /* SET_IRQS: argsz is the request's own size. */
    memcpy(buf, &s, sizeof(s));
    assert_int_equal(request(hc, VFU_CMD_DEVICE_SET_IRQS, buf, sizeof(s) + 4,
                             NULL, 0), -EINVAL);
    s.argsz = sizeof(s) + 4;
    memcpy(buf, &s, sizeof(s));
    assert_int_equal(request(hc, VFU_CMD_DEVICE_SET_IRQS, buf, sizeof(s),
                             NULL, 0), -EINVAL);

    /* DMA_UNMAP short, DEVICE_RESET with a payload, VERSION again. */
    assert_int_equal(request(hc, VFU_CMD_DMA_UNMAP, buf, 16, NULL, 0), -EINVAL);
    assert_int_equal(request(hc, VFU_CMD_DEVICE_RESET, buf, 4, NULL, 0), -EINVAL);

    /* Still in step: the same connection is served. */
    assert_int_equal(muc_device_info(hc, &info), 0);
    wait_fds(busy);
    close_client(&hc);
    settle();
    assert_serves();
}

/* Commands the server does not take: ENOSYS, fds closed, and on it goes. */
static void test_unknown_command(void **state)
{
    /* Server -> client commands, the removed DIRTY_PAGES, numbers past the
     * table: none can ever be a server command. */
    static const uint16_t cmds[] = {
        0, VFU_CMD_DMA_READ, VFU_CMD_DMA_WRITE, VFU_CMD_DIRTY_PAGES,
        VFU_CMD_MAX + 1, 0x7fff, 0xffff,
    };
    uint8_t body[100];
    struct muc_device_info info;
    int busy, efd;

    (void)state;
    hc = connect_client();
    busy = count_open_fds();
    memset(body, 0xa5, sizeof(body));
    for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++) {
        assert_int_equal(request(hc, cmds[i], NULL, 0, NULL, 0), -ENOSYS);
        efd = efd_new();
        assert_int_equal(request(hc, cmds[i], body, sizeof(body), &efd, 1),
                         -ENOSYS);
        close(efd);
        wait_fds(busy);
    }
    assert_int_equal(muc_device_info(hc, &info), 0);
    close_client(&hc);
    settle();
    assert_serves();
}

/*
 * Header flags.  A command with the reply bit is a reply to nothing: EINVAL
 * and nothing done, even with an fd (closed).  NO_REPLY on a command is
 * honoured.  Flags the header cannot have (unknown bits, the error bit on a
 * command, NO_REPLY on a reply, an error reply with a payload) break the
 * framing's trust: dropped, with an error reply when the message claimed
 * to be a command (a reply is never answered).
 */
static void test_reply_flag_on_request(void **state)
{
    struct vfu_dma_map m = { .argsz = sizeof(m), .flags = DMA_RW,
                             .addr = IOVA_MEM, .size = PG };
    uint8_t wr[sizeof(struct vfu_region_access) + 4];
    struct vfu_region_access a = { .offset = REG_SCRATCH,
                                   .region = MU_PCI_BAR0, .count = 4 };
    uint32_t val = 0xdeadbeef, back = 0;
    struct muc_device_info info;
    unsigned calls;
    int busy, mfd;

    (void)state;
    hc = connect_client();
    busy = count_open_fds();

    /* A DMA_MAP posing as a reply, with its fd. */
    mfd = memfd_sealable("dma", PG);
    send_cmd(hc, RID, VFU_CMD_DMA_MAP, VFU_F_TYPE_REPLY, &m, sizeof(m), &mfd, 1);
    close(mfd);
    expect_error(hc, RID, VFU_CMD_DMA_MAP, EINVAL);
    wait_fds(busy);
    assert_int_equal(new_maps(), 0);

    /* A REGION_WRITE posing as a reply is not applied. */
    assert_int_equal(muc_region_write(hc, MU_PCI_BAR0, REG_SCRATCH, &back, 4), 0);
    calls = ld(&bar0_calls);
    memcpy(wr, &a, sizeof(a));
    memcpy(wr + sizeof(a), &val, 4);
    send_cmd(hc, RID + 1, VFU_CMD_REGION_WRITE, VFU_F_TYPE_REPLY, wr,
             sizeof(wr), NULL, 0);
    expect_error(hc, RID + 1, VFU_CMD_REGION_WRITE, EINVAL);
    assert_int_equal(ld(&bar0_calls), calls);

    /* NO_REPLY: done, and nothing comes back (the library would choke on
     * an unexpected reply in the next call). */
    send_cmd(hc, RID + 2, VFU_CMD_REGION_WRITE, VFU_F_NO_REPLY, wr, sizeof(wr),
             NULL, 0);
    assert_int_equal(muc_region_read(hc, MU_PCI_BAR0, REG_SCRATCH, &back, 4), 0);
    assert_int_equal(back, val);
    assert_int_equal(muc_device_info(hc, &info), 0);
    close_client(&hc);
    settle();

    /* Headers that cannot be: error reply if it says command, then drop. */
    hc = connect_client();
    send_raw(hc, RID + 3, VFU_CMD_DEVICE_RESET, VFU_HDR_SIZE, 0x40, 0, NULL, 0,
             NULL, 0);
    expect_error(hc, RID + 3, VFU_CMD_DEVICE_RESET, EINVAL);
    expect_dropped(hc);
    close_client(&hc);
    settle();

    hc = connect_client();
    send_raw(hc, RID + 4, VFU_CMD_DEVICE_RESET, VFU_HDR_SIZE, VFU_F_ERROR,
             EIO, NULL, 0, NULL, 0);
    expect_error(hc, RID + 4, VFU_CMD_DEVICE_RESET, EINVAL);
    expect_dropped(hc);
    close_client(&hc);
    settle();

    hc = connect_client();
    send_raw(hc, RID + 5, VFU_CMD_DEVICE_RESET, VFU_HDR_SIZE,
             VFU_F_TYPE_REPLY | VFU_F_NO_REPLY, 0, NULL, 0, NULL, 0);
    expect_dropped(hc);
    close_client(&hc);
    settle();

    hc = connect_client();
    send_raw(hc, RID + 6, VFU_CMD_DMA_READ, VFU_HDR_SIZE + 4,
             VFU_F_TYPE_REPLY | VFU_F_ERROR, EIO, &val, 4, NULL, 0);
    expect_dropped(hc);
    close_client(&hc);
    expect_log("client dropped: malformed message");
    settle();
    assert_serves();
}

/* ---------------- replies to the server's requests ---------------- */

static bool refusal_logged(void *arg)
{
    (void)arg;
    return log_has("unexpected reply") || log_has("late reply");
}

/*
 * A reply that answers nothing may be refused with an EINVAL error reply
 * or dropped silently (a strict client hangs up on an error reply to a
 * reply it sent, so the server may prefer silence); what it must not do is
 * take it for an answer or give up on the client.  The server handles
 * messages in order, so a request sent now is answered after whatever
 * refusals are due: read up to its reply, every message before it a
 * refusal, then check the log said so.
 */
static void drain_refusals(muc_t *c)
{
    struct vfu_device_info di = { .argsz = sizeof(di) }, rdi;
    const uint16_t id = RID + 0x100;
    struct vfu_hdr h;
    ssize_t n;

    send_cmd(c, id, VFU_CMD_DEVICE_GET_INFO, 0, &di, sizeof(di), NULL, 0);
    while ((n = recv_raw(c, &h, &rdi, sizeof(rdi), long_wait())) > 0 &&
           !(h.msg_id == id && h.cmd == VFU_CMD_DEVICE_GET_INFO)) {
        assert_int_equal(n, VFU_HDR_SIZE);
        assert_int_equal(h.flags, VFU_F_TYPE_REPLY | VFU_F_ERROR);
        assert_int_equal(h.error, EINVAL);
        assert_true(h.cmd == VFU_CMD_DMA_READ || h.cmd == VFU_CMD_DMA_WRITE);
    }
    assert_int_equal(n, VFU_HDR_SIZE + sizeof(rdi));
    assert_int_equal(h.flags, VFU_F_TYPE_REPLY);
    /* Logged just after the refusal is handled: bounded wait. */
    assert_true(wait_until(refusal_logged, NULL, 5000, 2000));
}

/*
 * The device DMA-reads fd-less memory from a device thread; the client
 * answers with the wrong msg_id, then with the right one but the wrong
 * command.  The server must not take either for the answer (it refuses
 * them, see drain_refusals), and the device's read must end with
 * -ETIMEDOUT, not before the receive timeout (job.ms is measured from
 * before the call starts the server's clock).  The right answer coming
 * late is refused the same way.  The client is served on.
 */
static void test_reply_wrong_msg_id(void **state)
{
    uint8_t data[16];
    struct muc_device_info info;
    struct dma_job job;
    struct vfu_hdr h;

    (void)state;
    hc = connect_client();
    assert_int_equal(dma_map_raw(hc, IOVA_MEM, PG, 0, DMA_RW, -1), 0);
    fill_pattern(data, sizeof(data), 9);

    job_start(&job, IOVA_MEM, sizeof(data));
    recv_dma_read(hc, &h, IOVA_MEM, sizeof(data));
    send_dma_read_reply(hc, (uint16_t)(h.msg_id + 1), VFU_CMD_DMA_READ,
                        IOVA_MEM, sizeof(data), data, sizeof(data));
    send_dma_read_reply(hc, h.msg_id, VFU_CMD_DMA_WRITE, IOVA_MEM,
                        sizeof(data), data, sizeof(data));
    pthread_join(job.th, NULL);
    assert_int_equal(job.rc, -ETIMEDOUT);
    /* A condition variable's timed wait (its clock is not ours): allow
     * a millisecond of rounding between the two. */
    assert_true(job.ms + 1 >= (uint64_t)tmo);
    /* The real answer, too late: not delivered anywhere. */
    send_dma_read_reply(hc, h.msg_id, VFU_CMD_DMA_READ, IOVA_MEM,
                        sizeof(data), data, sizeof(data));
    drain_refusals(hc);
    assert_int_equal(muc_device_info(hc, &info), 0);
    close_client(&hc);
    settle();
    assert_serves();
}

/*
 * Error replies to a device's DMA read whose errno is not an errno
 * (0x80000000 would overflow a negation, 0xffffffff would turn into +1,
 * i.e. success with no data) must come out as -EIO, and a reply too short
 * for the data as -EPROTO; a proper reply still works.  (With the long
 * timeouts: the test answers each read, and must not race the server.)
 */
static void test_reply_bad_errors(void **state)
{
    static const uint32_t bad_errnos[] = { 0x80000000u, 0xffffffffu, 4096 };
    uint8_t data[16], want[16];
    struct muc_device_info info;
    struct dma_job job;
    struct vfu_hdr h;

    (void)state;
    hc = connect_client();
    assert_int_equal(dma_map_raw(hc, IOVA_MEM, PG, 0, DMA_RW, -1), 0);
    fill_pattern(data, sizeof(data), 9);

    for (size_t i = 0; i < sizeof(bad_errnos) / sizeof(bad_errnos[0]); i++) {
        job_start(&job, IOVA_MEM, sizeof(data));
        recv_dma_read(hc, &h, IOVA_MEM, sizeof(data));
        send_raw(hc, h.msg_id, VFU_CMD_DMA_READ, VFU_HDR_SIZE,
                 VFU_F_TYPE_REPLY | VFU_F_ERROR, bad_errnos[i], NULL, 0, NULL, 0);
        pthread_join(job.th, NULL);
        assert_int_equal(job.rc, -EIO);
    }

    /* The reply lacks the data. */
    job_start(&job, IOVA_MEM, sizeof(data));
    recv_dma_read(hc, &h, IOVA_MEM, sizeof(data));
    send_dma_read_reply(hc, h.msg_id, VFU_CMD_DMA_READ, IOVA_MEM,
                        sizeof(data), data, 8);
    pthread_join(job.th, NULL);
    assert_int_equal(job.rc, -EPROTO);

    /* A proper reply is still the answer. */
    job_start(&job, IOVA_MEM, sizeof(data));
    recv_dma_read(hc, &h, IOVA_MEM, sizeof(data));
    send_dma_read_reply(hc, h.msg_id, VFU_CMD_DMA_READ, IOVA_MEM,
                        sizeof(data), data, sizeof(data));
    pthread_join(job.th, NULL);
    assert_int_equal(job.rc, 0);
    memcpy(want, data, sizeof(want));
    assert_memory_equal(job.buf, want, sizeof(want));

    assert_int_equal(muc_device_info(hc, &info), 0);
    close_client(&hc);
    settle();
    assert_serves();
}

/* ---------------- fds ---------------- */

static size_t set_irqs_msg(uint8_t *buf, uint32_t flags, uint32_t index,
                           uint32_t start, uint32_t count)
{
    struct vfu_irq_set s = { .argsz = sizeof(s), .flags = flags,
                             .index = index, .start = start, .count = count };

    memcpy(buf, &s, sizeof(s));
    return sizeof(s);
}

#define TRIG_EFD (VFU_IRQ_SET_DATA_EVENTFD | VFU_IRQ_SET_ACTION_TRIGGER)

/*
 * More fds than MU_LIMIT_MSG_FDS.  In one sendmsg, the kernel cannot even
 * hand them all over (the control buffer is sized for the limit): the
 * server sees a truncated read, cannot tell which message lost what, and
 * drops the client without a reply, closing the fds it did get.  (The
 * buffer is padded to 8 bytes, so with an odd limit one fd more still fits
 * and is caught as below instead; test_access has that case.)  Spread
 * over the pieces of one message, each read is fine but the message is
 * not: E2BIG error reply, then dropped (the fds may belong to a later
 * message as far as the framing knows).  Exactly the limit is fine.
 */
static void test_too_many_fds(void **state)
{
    uint8_t msg[VFU_HDR_SIZE + sizeof(struct vfu_irq_set)];
    struct vfu_hdr h;
    int efd[6];
    size_t len;

    (void)state;
    hc = connect_client();
    for (unsigned i = 0; i < 4; i++)
        efd[i] = efd_new();
    assert_int_equal(muc_irq_set_eventfds(hc, VFU_IRQ_MSIX, 0, 4, efd), 0);
    assert_int_equal(muc_irq_clear_eventfds(hc, VFU_IRQ_MSIX, 0, 4), 0);
    close_fds(efd, 4);

    for (unsigned i = 0; i < 5; i++)
        efd[i] = efd_new();
    len = set_irqs_msg(msg + VFU_HDR_SIZE, TRIG_EFD, VFU_IRQ_MSIX, 0, 5);
    send_cmd(hc, RID, VFU_CMD_DEVICE_SET_IRQS, 0, msg + VFU_HDR_SIZE, len,
             efd, 5);
    close_fds(efd, 5);
    expect_dropped(hc);
    close_client(&hc);
    expect_log("client dropped: too many fds in one message");
    settle();

    hc = connect_client();
    for (unsigned i = 0; i < 6; i++)
        efd[i] = efd_new();
    len = set_irqs_msg(msg + VFU_HDR_SIZE, TRIG_EFD, VFU_IRQ_MSIX, 0, 6);
    vfu_hdr_init(&h, RID + 1, VFU_CMD_DEVICE_SET_IRQS,
                 (uint32_t)(VFU_HDR_SIZE + len), 0, 0);
    memcpy(msg, &h, sizeof(h));
    assert_int_equal(muc_send_bytes(hc, msg, 20, efd, 3), 0);
    assert_int_equal(muc_send_bytes(hc, msg + 20, sizeof(msg) - 20, efd + 3, 3), 0);
    close_fds(efd, 6);
    expect_error(hc, RID + 1, VFU_CMD_DEVICE_SET_IRQS, E2BIG);
    expect_dropped(hc);
    close_client(&hc);
    expect_log("client dropped: malformed message");
    settle();
    assert_serves();
}

/*
 * An fd on a command that takes none: EINVAL, the fd closed by the server
 * (counted in this process), the connection goes on.  On VERSION it is a
 * failed handshake: error reply, dropped.
 */
static void test_fds_on_fdless_commands(void **state)
{
    struct vfu_device_info di = { .argsz = sizeof(di) };
    struct vfu_region_info ri = { .argsz = sizeof(ri), .index = MU_PCI_BAR2 };
    struct vfu_irq_info ii = { .argsz = sizeof(ii), .index = VFU_IRQ_MSIX };
    struct vfu_region_access ra = { .offset = REG_SCRATCH,
                                    .region = MU_PCI_BAR0, .count = 4 };
    struct vfu_dma_unmap um = { .argsz = sizeof(um),
                                .flags = VFU_DMA_UNMAP_FLAG_ALL };
    struct vfu_device_feature df = {
        .argsz = sizeof(df),
        .flags = VFU_FEATURE_PROBE | VFU_FEATURE_GET | VFU_FEATURE_MIGRATION,
    };
    uint8_t wr[sizeof(ra) + 4] = { 0 };
    struct vfu_version v = { VFU_VERSION_MAJOR, VFU_VERSION_MINOR };
    const struct {
        uint16_t cmd;
        const void *p;
        size_t len;
    } cases[] = {
        { VFU_CMD_DEVICE_GET_INFO, &di, sizeof(di) },
        { VFU_CMD_DEVICE_GET_REGION_INFO, &ri, sizeof(ri) },
        { VFU_CMD_DEVICE_GET_IRQ_INFO, &ii, sizeof(ii) },
        { VFU_CMD_REGION_READ, &ra, sizeof(ra) },
        { VFU_CMD_REGION_WRITE, wr, sizeof(wr) },
        { VFU_CMD_DMA_UNMAP, &um, sizeof(um) },
        { VFU_CMD_DEVICE_RESET, NULL, 0 },
        { VFU_CMD_DEVICE_FEATURE, &df, sizeof(df) },
    };
    struct muc_device_info info;
    unsigned calls;
    int busy, fds[2];

    (void)state;
    memcpy(wr, &ra, sizeof(ra));
    hc = connect_client();
    busy = count_open_fds();
    calls = ld(&bar0_calls);
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        for (unsigned n = 1; n <= 2; n++) {
            fds[0] = efd_new();
            fds[1] = memfd_sealable("x", PG);
            assert_int_equal(request(hc, cases[i].cmd, cases[i].p,
                                     cases[i].len, fds, n), -EINVAL);
            close_fds(fds, 2);
            wait_fds(busy);
        }
    }
    assert_int_equal(ld(&bar0_calls), calls);
    assert_int_equal(muc_device_info(hc, &info), 0);
    close_client(&hc);
    settle();

    assert_int_equal(muc_connect_raw(&hc, srv.sock), 0);
    fds[0] = efd_new();
    send_cmd(hc, 1, VFU_CMD_VERSION, 0, &v, sizeof(v), fds, 1);
    close(fds[0]);
    expect_error(hc, 1, VFU_CMD_VERSION, EINVAL);
    expect_dropped(hc);
    close_client(&hc);
    expect_log("client dropped: version negotiation failed");
    settle();
    assert_serves();
}

/* A directory: fstat works on it, mmap does not. */
static int dir_fd(void)
{
    int fd = open(srv.dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

    assert_true(fd >= 0);
    return fd;
}

/*
 * fds that are not what the command needs.  DMA_MAP wants a regular file
 * that can be mmapped with the asked protection: a socket, a pipe (open or
 * widowed), an eventfd, a directory, a read-only file for a writable map
 * and a write-sealed memfd for a writable map are all refused at DMA_MAP,
 * not at the device's first access.  SET_IRQS wants eventfds: a memfd, a
 * pipe, a socket are refused and change nothing (the vector keeps the
 * eventfd it had).  An eventfd the client hands over blocking and with its
 * counter at the maximum must not block the device's trigger.
 */
static void test_fds_not_what_they_claim(void **state)
{
    const uint32_t dma_ro = VFU_DMA_FLAG_READ;
    int sv[2], pp[2], widow[2], busy, bad[8], nbad = 0, efd, mfd, ro, sealed;
    int opath, is_efd;
    uint8_t buf[64];
    char path[64];
    uint64_t big = UINT64_MAX - 1;
    size_t len;

    (void)state;
    hc = connect_client();
    busy = count_open_fds();

    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    assert_int_equal(pipe2(pp, O_CLOEXEC), 0);
    assert_int_equal(pipe2(widow, O_CLOEXEC), 0);
    close(widow[1]);
    bad[nbad++] = sv[1];
    bad[nbad++] = pp[0];
    bad[nbad++] = pp[1];
    bad[nbad++] = widow[0];
    is_efd = nbad;
    bad[nbad++] = efd_new();
    bad[nbad++] = dir_fd();
    for (int i = 0; i < nbad; i++) {
        assert_int_equal(dma_map_raw(hc, IOVA_MEM, PG, 0, DMA_RW, bad[i]), -EINVAL);
        assert_int_equal(dma_map_raw(hc, IOVA_MEM, PG, 0, dma_ro, bad[i]), -EINVAL);
    }
    /* A regular file, but not writable through this fd. */
    mfd = memfd_sealable("dma", PG);
    snprintf(path, sizeof(path), "/proc/self/fd/%d", mfd);
    ro = open(path, O_RDONLY | O_CLOEXEC);
    assert_true(ro >= 0);
    assert_int_equal(dma_map_raw(hc, IOVA_MEM, PG, 0, DMA_RW, ro), -EINVAL);
    /* Sealed against writes: a writable shared mapping cannot exist. */
    sealed = memfd_sealable("sealed", PG);
    assert_int_equal(fcntl(sealed, F_ADD_SEALS, F_SEAL_WRITE), 0);
    assert_int_equal(dma_map_raw(hc, IOVA_MEM, PG, 0, DMA_RW, sealed), -EINVAL);
    assert_int_equal(new_maps(), 0);
    /* Read-only maps of those are fine, and really readable. */
    assert_int_equal(dma_map_raw(hc, IOVA_MEM, PG, 0, dma_ro, ro), 0);
    assert_int_equal(mu_dma_read(srv.ctx, IOVA_MEM, buf, sizeof(buf)), 0);
    assert_int_equal(muc_dma_unmap(hc, IOVA_MEM, PG), 0);
    assert_int_equal(dma_map_raw(hc, IOVA_MEM, PG, 0, dma_ro, sealed), 0);
    assert_int_equal(mu_dma_read(srv.ctx, IOVA_MEM, buf, sizeof(buf)), 0);
    assert_int_equal(mu_dma_write(srv.ctx, IOVA_MEM, buf, 8), -EACCES);
    assert_int_equal(muc_dma_unmap(hc, IOVA_MEM, PG), 0);
    assert_int_equal(new_maps(), 2);
    assert_int_equal(unmap_why[MU_UNMAP_CLIENT], 2);

    /*
     * An O_PATH descriptor of a regular file: fstat says "regular file",
     * but nothing can be read or mapped through it, so it is refused at
     * DMA_MAP like the others, for reading as for writing.
     */
    opath = open(path, O_PATH | O_CLOEXEC);
    assert_true(opath >= 0);
    assert_int_equal(dma_map_raw(hc, IOVA_MEM, PG, 0, DMA_RW, opath), -EINVAL);
    assert_int_equal(dma_map_raw(hc, IOVA_MEM, PG, 0, dma_ro, opath), -EINVAL);
    close(opath);

    /* SET_IRQS: vector 0 keeps its eventfd through every refusal. */
    efd = efd_new();
    assert_int_equal(muc_irq_set_eventfds(hc, VFU_IRQ_MSIX, 0, 1, &efd), 0);
    bad[nbad++] = mfd;
    for (int i = 0; i < nbad; i++) {
        if (i == is_efd)
            continue;   /* that one is an eventfd */
        len = set_irqs_msg(buf, TRIG_EFD, VFU_IRQ_MSIX, 0, 1);
        assert_int_equal(request(hc, VFU_CMD_DEVICE_SET_IRQS, buf, len,
                                 &bad[i], 1), -EINVAL);
    }
    assert_int_equal(mu_irq_trigger(srv.ctx, MU_IRQ_MSIX, 0), 0);
    assert_int_equal(muc_eventfd_wait(efd, 2000 * slow_factor()), 1);
    close(efd);

    /* A blocking eventfd one short of saturation: the device's trigger
     * must not sleep in write() (the library looks before it writes). */
    efd = eventfd(0, EFD_CLOEXEC);
    assert_true(efd >= 0);
    assert_int_equal(write(efd, &big, sizeof(big)), sizeof(big));
    assert_int_equal(muc_irq_set_eventfds(hc, VFU_IRQ_MSIX, 1, 1, &efd), 0);
    assert_int_equal(mu_irq_trigger(srv.ctx, MU_IRQ_MSIX, 1), 0);
    assert_int_equal(mu_irq_trigger(srv.ctx, MU_IRQ_MSIX, 1), 0);
    close(efd);

    close_fds(bad, (unsigned)nbad);
    close(sv[0]);
    close(ro);
    close(sealed);
    assert_int_equal(muc_irq_set_eventfds(hc, VFU_IRQ_MSIX, 0, 0, NULL), 0);
    /* The maps that went through brought the client's SIGBUS eventfd. */
    wait_fds(busy + SERVER_FDS_DMA);
    close_client(&hc);
    settle();
    assert_serves();
}

/*
 * A file too small for [offset, offset + size): refused at DMA_MAP, not
 * left to fault in the device (a SIGBUS there would kill it).  A file
 * that shrinks after the map cannot be refused then; the device's first
 * translation must fail cleanly instead.
 */
static void test_dma_map_fd_too_small(void **state)
{
    const struct {
        uint64_t off, size;
    } cases[] = {
        { 0, 2 * PG },
        { PG, PG },
        { 2 * PG, PG },
        { 1ull << 63, PG },
        { UINT64_MAX - PG + 1, PG },        /* ends exactly at 2^64 */
        { UINT64_MAX - PG + 1, 2 * PG },    /* wraps */
    };
    mu_sg_t sg[1];
    uint8_t buf[16];
    int busy, mfd;

    (void)state;
    hc = connect_client();
    busy = count_open_fds();
    mfd = memfd_sealable("small", PG);
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        assert_int_equal(dma_map_raw(hc, IOVA_MEM, cases[i].size, cases[i].off,
                                     DMA_RW, mfd), -EINVAL);
    assert_int_equal(new_maps(), 0);
    close(mfd);

    mfd = memfd_sealable("shrinks", 2 * PG);
    assert_int_equal(dma_map_raw(hc, IOVA_MEM, 2 * PG, 0, DMA_RW, mfd), 0);
    assert_int_equal(ftruncate(mfd, PG), 0);
    assert_int_equal(mu_dma_get(srv.ctx, IOVA_MEM, 16, MU_DMA_READ, sg, 1),
                     -EFAULT);
    assert_int_equal(mu_dma_read(srv.ctx, IOVA_MEM + PG, buf, sizeof(buf)),
                     -EFAULT);
    close(mfd);
    /* The server still holds the mapped file, and the SIGBUS eventfd
     * that came with it. */
    wait_fds(busy + 1 + SERVER_FDS_DMA);
    close_client(&hc);
    settle();
    assert_int_equal(unmap_why[MU_UNMAP_DISCONNECT], 1);
    assert_serves();
}

/* ---------------- region access ---------------- */

/*
 * Offsets and counts that run past the end of a region or wrap 2^64, for
 * each kind of region (callback, mmappable fd, config space, MSI-X table),
 * absent regions, zero and oversized counts: EINVAL each, nothing reaches
 * the callback, the connection goes on.
 */
static void test_region_access_bounds(void **state)
{
    const struct {
        uint32_t region;
        uint64_t off;
        uint32_t count;
    } cases[] = {
        { MU_PCI_BAR0, UINT64_MAX, 1 },
        { MU_PCI_BAR0, UINT64_MAX, 2 },
        { MU_PCI_BAR0, UINT64_MAX - 2, 8 },
        { MU_PCI_BAR0, BAR0_SIZE, 1 },
        { MU_PCI_BAR0, BAR0_SIZE - 1, 2 },
        { MU_PCI_BAR0, BAR0_SIZE - 4, 8 },
        { MU_PCI_BAR0, 0, 0 },
        { MU_PCI_BAR0, 0, BAR0_SIZE + 1 },
        { MU_PCI_BAR0, 1ull << 63, 4 },
        { MU_PCI_BAR2, UINT64_MAX - 3, 4 },
        { MU_PCI_BAR2, BAR2_SIZE, 4 },
        { MU_PCI_BAR2, BAR2_SIZE - 4, 8 },
        { MU_PCI_BAR2, (uint64_t)-(int64_t)BAR2_SIZE, XFER },
        { MU_PCI_BAR2, 0, XFER + 1 },
        { MU_PCI_CONFIG, UINT64_MAX, 4 },
        { MU_PCI_CONFIG, 256, 4 },
        { MU_PCI_CONFIG, 254, 4 },
        { MU_PCI_BAR0, TBL_OFF + NMSIX * 16 - 4, 8 },   /* off the table */
        { MU_PCI_BAR0, TBL_OFF + 2, 4 },                /* misaligned */
        { MU_PCI_BAR1, 0, 4 },
        { MU_PCI_VGA, 0, 4 },
        { 9, 0, 4 },
        { 31, 0, 4 },
        { UINT32_MAX, 0, 4 },
    };
    struct muc_device_info info;
    unsigned calls;

    (void)state;
    hc = connect_client();
    calls = ld(&bar0_calls);
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        if (region_rw(hc, VFU_CMD_REGION_READ, cases[i].region, cases[i].off,
                      cases[i].count) != -EINVAL ||
            region_rw(hc, VFU_CMD_REGION_WRITE, cases[i].region, cases[i].off,
                      cases[i].count) != -EINVAL)
            fail_msg("case %zu (region %u offset %#llx count %u) not refused",
                     i, cases[i].region, (unsigned long long)cases[i].off,
                     cases[i].count);
    }
    assert_int_equal(ld(&bar0_calls), calls);
    /* The last valid byte of each is fine. */
    assert_int_equal(region_rw(hc, VFU_CMD_REGION_READ, MU_PCI_BAR0,
                               REGS_SIZE - 1, 1), 0);
    assert_int_equal(region_rw(hc, VFU_CMD_REGION_READ, MU_PCI_BAR2,
                               BAR2_SIZE - 1, 1), 0);
    assert_int_equal(region_rw(hc, VFU_CMD_REGION_READ, MU_PCI_CONFIG, 252, 4), 0);
    assert_int_equal(muc_device_info(hc, &info), 0);
    close_client(&hc);
    settle();
    assert_serves();
}

/*
 * SET_IRQS whose counts do not agree with each other or with the device:
 * EINVAL, all or nothing (a vector keeps the eventfd it had, no fd is
 * kept), and the connection goes on.
 */
static void test_set_irqs_mismatch(void **state)
{
    const struct {
        uint32_t flags, index, start, count;
        unsigned nfds;
        uint32_t nbool;     /* DATA_BOOL bytes sent */
    } cases[] = {
        { TRIG_EFD, VFU_IRQ_MSIX, 0, 2, 1, 0 },
        { TRIG_EFD, VFU_IRQ_MSIX, 0, 1, 2, 0 },
        { TRIG_EFD, VFU_IRQ_MSIX, 0, 3, 4, 0 },
        { TRIG_EFD, VFU_IRQ_MSIX, 0, 0, 1, 0 },
        { TRIG_EFD, VFU_IRQ_MSIX, 6, 4, 4, 0 },            /* past 8 */
        { TRIG_EFD, VFU_IRQ_MSIX, NMSIX, 1, 1, 0 },
        { TRIG_EFD, VFU_IRQ_MSIX, UINT32_MAX, 2, 2, 0 },   /* wraps */
        { TRIG_EFD, VFU_IRQ_INTX, 0, 2, 2, 0 },
        { TRIG_EFD, VFU_IRQ_MSI, 0, 1, 1, 0 },             /* none declared */
        { TRIG_EFD, VFU_IRQ_NUM, 0, 1, 1, 0 },
        { TRIG_EFD, UINT32_MAX, 0, 1, 1, 0 },
        { VFU_IRQ_SET_DATA_BOOL | VFU_IRQ_SET_ACTION_TRIGGER,
          VFU_IRQ_MSIX, 0, 3, 0, 2 },
        { VFU_IRQ_SET_DATA_BOOL | VFU_IRQ_SET_ACTION_TRIGGER,
          VFU_IRQ_MSIX, 0, 1, 0, 2 },
        { VFU_IRQ_SET_DATA_BOOL | VFU_IRQ_SET_ACTION_TRIGGER,
          VFU_IRQ_MSIX, 0, 2, 1, 2 },
        { VFU_IRQ_SET_DATA_NONE | VFU_IRQ_SET_ACTION_TRIGGER,
          VFU_IRQ_MSIX, 1, 0, 0, 0 },
        { VFU_IRQ_SET_DATA_NONE | VFU_IRQ_SET_ACTION_MASK,
          VFU_IRQ_MSIX, 0, 0, 0, 0 },
        { VFU_IRQ_SET_DATA_NONE | VFU_IRQ_SET_ACTION_TRIGGER,
          VFU_IRQ_MSIX, 0, 1, 1, 0 },
        { VFU_IRQ_SET_DATA_NONE | VFU_IRQ_SET_DATA_EVENTFD |
          VFU_IRQ_SET_ACTION_TRIGGER, VFU_IRQ_MSIX, 0, 1, 1, 0 },
        { VFU_IRQ_SET_DATA_EVENTFD, VFU_IRQ_MSIX, 0, 1, 1, 0 },
        { TRIG_EFD | VFU_IRQ_SET_ACTION_MASK, VFU_IRQ_MSIX, 0, 1, 1, 0 },
        { TRIG_EFD | 0x100, VFU_IRQ_MSIX, 0, 1, 1, 0 },
    };
    uint8_t buf[64];
    struct muc_device_info info;
    int busy, keep, fds[MSG_FDS];

    (void)state;
    hc = connect_client();
    keep = efd_new();
    assert_int_equal(muc_irq_set_eventfds(hc, VFU_IRQ_MSIX, 0, 1, &keep), 0);
    busy = count_open_fds();
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        size_t len = set_irqs_msg(buf, cases[i].flags, cases[i].index,
                                  cases[i].start, cases[i].count);
        struct vfu_irq_set s;

        memset(buf + len, 1, cases[i].nbool);
        len += cases[i].nbool;
        memcpy(&s, buf, sizeof(s));
        s.argsz = (uint32_t)len;
        memcpy(buf, &s, sizeof(s));
        for (unsigned f = 0; f < cases[i].nfds; f++)
            fds[f] = efd_new();
        if (request(hc, VFU_CMD_DEVICE_SET_IRQS, buf, len, fds,
                    cases[i].nfds) != -EINVAL)
            fail_msg("SET_IRQS case %zu not refused", i);
        close_fds(fds, cases[i].nfds);
        wait_fds(busy);
    }
    /* A DATA_BOOL byte that is not 0 or 1. */
    set_irqs_msg(buf, VFU_IRQ_SET_DATA_BOOL | VFU_IRQ_SET_ACTION_MASK,
                 VFU_IRQ_MSIX, 0, 1);
    buf[sizeof(struct vfu_irq_set)] = 2;
    {
        struct vfu_irq_set s;

        memcpy(&s, buf, sizeof(s));
        s.argsz = sizeof(s) + 1;
        memcpy(buf, &s, sizeof(s));
    }
    assert_int_equal(request(hc, VFU_CMD_DEVICE_SET_IRQS, buf,
                             sizeof(struct vfu_irq_set) + 1, NULL, 0), -EINVAL);

    /* Vector 0 kept its eventfd and is not masked. */
    assert_false(mu_irq_masked(srv.ctx, MU_IRQ_MSIX, 0));
    assert_int_equal(mu_irq_trigger(srv.ctx, MU_IRQ_MSIX, 0), 0);
    assert_int_equal(muc_eventfd_wait(keep, 2000 * slow_factor()), 1);
    assert_int_equal(muc_device_info(hc, &info), 0);
    close_client(&hc);
    close(keep);
    settle();
    assert_serves();
}

/* ---------------- clients that stall ---------------- */

/*
 * A client pipelines large REGION_READs and never reads a reply.  The
 * server's socket fills; it waits MU_LIMIT_SEND_TIMEOUT_MS for room, then
 * drops the client (not one timeout per queued request: the first
 * failure ends it) and serves the next, which so waits about one send
 * timeout.  The hostile client finds some replies and then the end.
 *
 * "Not one timeout per request" is bounded from above, but a quarter of
 * the way to what that would cost (NREQ / 4 timeouts): fifty times the
 * expected wait, no race with a loaded machine.
 */
static void test_stops_reading_replies(void **state)
{
    enum { NREQ = 200 };
    static uint8_t reqs[NREQ][VFU_HDR_SIZE + sizeof(struct vfu_region_access)];
    struct vfu_region_access a = { 0, MU_PCI_BAR2, XFER };
    struct muc_device_info info;
    struct vfu_hdr h;
    uint64_t t0, waited;
    ssize_t n;
    int got = 0;

    (void)state;
    for (int i = 0; i < NREQ; i++) {
        vfu_hdr_init(&h, (uint16_t)(RID + i), VFU_CMD_REGION_READ,
                     sizeof(reqs[0]), 0, 0);
        memcpy(reqs[i], &h, sizeof(h));
        memcpy(reqs[i] + sizeof(h), &a, sizeof(a));
    }
    hc = connect_client();
    assert_int_equal(muc_send_bytes(hc, reqs, sizeof(reqs), NULL, 0), 0);
    t0 = now_ms();

    gc = connect_client();
    waited = now_ms() - t0;
    assert_int_equal(muc_device_info(gc, &info), 0);
    assert_true(waited < (uint64_t)NREQ / 4 * (uint64_t)tmo);
    expect_log("client dropped: client stopped reading replies");
    close_client(&gc);

    while ((n = recv_raw(hc, &h, NULL, 0, long_wait())) > 0) {
        assert_int_equal(n, VFU_HDR_SIZE + sizeof(a) + XFER);
        assert_int_equal(h.msg_id, RID + got);
        got++;
    }
    assert_int_equal(n, -ENOTCONN);
    assert_true(got < NREQ);
    close_client(&hc);
    settle();
    assert_serves();
}

/*
 * Wait for the server to hang up on fd, sending nothing; ms waited.  A
 * client still sending when the server closes (dripping) may find a byte
 * of its own unread in the server's socket at the close: the kernel then
 * tells it ECONNRESET instead of EOF, a hangup all the same.
 */
static uint64_t wait_hangup(int fd, uint64_t t0, bool dripping)
{
    struct pollfd p = { .fd = fd, .events = POLLIN };
    ssize_t n;
    char c;

    assert_int_equal(poll(&p, 1, long_wait()), 1);
    n = recv(fd, &c, 1, MSG_DONTWAIT);
    if (n < 0 && dripping && errno == ECONNRESET)
        n = 0;
    assert_int_equal(n, 0);         /* EOF, no data */
    return now_ms() - t0;
}

/*
 * Half a message, then silence: dropped after MU_LIMIT_RECV_TIMEOUT_MS
 * (not before: t0 is taken before the first byte is sent, so before the
 * server's clock starts), with a log line saying why.  The timeout is for
 * the whole message, so a client dripping one byte at a time, each well
 * within the timeout, is dropped all the same: were the timeout per byte,
 * the whole message would arrive and the reply come instead of the
 * hangup (wait_hangup fails on data).
 */
static void test_half_message_waits(void **state)
{
    uint8_t msg[VFU_HDR_SIZE + 48] = { 0 };
    struct vfu_hdr h;
    uint64_t t0, waited;
    size_t cut[] = { 8, VFU_HDR_SIZE + 10 };

    (void)state;
    vfu_hdr_init(&h, RID, VFU_CMD_REGION_WRITE, sizeof(msg), 0, 0);
    memcpy(msg, &h, sizeof(h));
    for (size_t i = 0; i < 2; i++) {
        hc = connect_client();
        t0 = now_ms();
        assert_int_equal(muc_send_bytes(hc, msg, cut[i], NULL, 0), 0);
        waited = wait_hangup(muc_fd(hc), t0, false);
        assert_true(waited >= (uint64_t)tmo);
        close_client(&hc);
        expect_log("client dropped: message not completed within the receive timeout");
        settle();
        log_clear();
    }

    /* One byte every quarter timeout. */
    hc = connect_client();
    t0 = now_ms();
    for (size_t i = 0; i < sizeof(msg); i++) {
        struct pollfd p = { .fd = muc_fd(hc), .events = POLLIN };

        if (send(muc_fd(hc), msg + i, 1, MSG_NOSIGNAL) != 1)
            break;
        if (poll(&p, 1, tmo / 4) == 1)
            break;
    }
    waited = wait_hangup(muc_fd(hc), t0, true);
    assert_true(waited >= (uint64_t)tmo);
    close_client(&hc);
    expect_log("client dropped: message not completed within the receive timeout");
    settle();
    assert_serves();
}

struct flood {
    int fd;
    const uint8_t *buf;
    size_t len, sent;
    int err;
    unsigned stalled;       /* the socket was full at least once */
    unsigned finished;      /* the sender is done, one way or the other */
};

static void *flood_fn(void *arg)
{
    struct flood *f = arg;

    while (f->sent < f->len) {
        ssize_t n = send(f->fd, f->buf + f->sent, f->len - f->sent,
                         MSG_NOSIGNAL | MSG_DONTWAIT);
        struct pollfd p = { .fd = f->fd, .events = POLLOUT };

        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno == EAGAIN) {
            /* The server is not taking more: it is blocked on a reply. */
            __atomic_store_n(&f->stalled, 1, __ATOMIC_SEQ_CST);
            if (poll(&p, 1, long_wait()) == 0) {
                f->err = ETIMEDOUT;
                break;
            }
            continue;
        }
        if (n < 0) {
            f->err = errno;
            break;
        }
        f->sent += (size_t)n;
    }
    __atomic_store_n(&f->finished, 1, __ATOMIC_SEQ_CST);
    return NULL;
}

static bool flood_stalled(void *arg)
{
    struct flood *f = arg;

    return __atomic_load_n(&f->stalled, __ATOMIC_SEQ_CST) ||
           __atomic_load_n(&f->finished, __ATOMIC_SEQ_CST);
}

/* Reply i of the flood: DEVICE_GET_INFO, in order, correct. */
static void check_info_reply(ssize_t n, const struct vfu_hdr *h,
                             const struct vfu_device_info *di, unsigned i)
{
    if (n != VFU_HDR_SIZE + sizeof(*di) || h->msg_id != (uint16_t)(RID + i) ||
        h->cmd != VFU_CMD_DEVICE_GET_INFO || h->flags != VFU_F_TYPE_REPLY ||
        di->argsz != sizeof(*di) || di->num_regions != 9 || di->num_irqs != 5)
        fail_msg("flood reply %u: size %zd id %#x cmd %u flags %#x", i, n,
                 h->msg_id, h->cmd, h->flags);
}

/* n pipelined DEVICE_GET_INFO requests, msg_ids RID + i. */
static uint8_t *flood_requests(unsigned n, size_t msz)
{
    struct vfu_device_info di = { .argsz = sizeof(di) };
    uint8_t *buf = malloc(n * msz);
    struct vfu_hdr h;

    assert_non_null(buf);
    for (unsigned i = 0; i < n; i++) {
        vfu_hdr_init(&h, (uint16_t)(RID + i), VFU_CMD_DEVICE_GET_INFO,
                     (uint32_t)msz, 0, 0);
        memcpy(buf + i * msz, &h, sizeof(h));
        memcpy(buf + i * msz + sizeof(h), &di, sizeof(di));
    }
    return buf;
}

/*
 * 100 000 pipelined DEVICE_GET_INFO (a sender thread pushes them while
 * the test reads, or does not).  What is right: the server neither buffers
 * without bound nor gives up on a client that keeps up.  It reads a
 * request only when it has sent the previous reply, so a client that
 * does not read stalls itself (backpressure through the socket buffers).
 *
 * A client that pauses, then reads, gets every reply, correct and in
 * order (msg_ids wrap: they are not unique, order is what counts).  The
 * pause lasts until the sender finds the socket full (the server has
 * stopped reading: it is blocked on a reply), and the send timeout is the
 * long one: only a server that gives up on a client that keeps up fails.
 */
static void test_flood_keeps_up(void **state)
{
    const unsigned n = 100000 / (unsigned)slow_factor();
    const size_t msz = VFU_HDR_SIZE + sizeof(struct vfu_device_info);
    struct vfu_device_info rdi;
    struct muc_device_info info;
    struct flood f = { 0 };
    struct vfu_hdr h;
    pthread_t th;
    uint8_t *buf = flood_requests(n, msz);
    unsigned got;
    ssize_t r;

    (void)state;
    hc = connect_client();
    f = (struct flood){ .fd = muc_fd(hc), .buf = buf, .len = n * msz };
    assert_int_equal(pthread_create(&th, NULL, flood_fn, &f), 0);
    assert_true(wait_until(flood_stalled, &f, 5000, 2000));
    for (got = 0; got < n; got++) {
        r = recv_raw(hc, &h, &rdi, sizeof(rdi), long_wait());
        check_info_reply(r, &h, &rdi, got);
    }
    pthread_join(th, NULL);
    assert_int_equal(f.err, 0);
    assert_int_equal(f.sent, n * msz);
    assert_int_equal(muc_device_info(hc, &info), 0);
    close_client(&hc);
    free(buf);
    settle();
    assert_serves();
}

/*
 * The same flood from a client that does not read: dropped once a reply
 * waits longer than the send timeout (the log line is the event waited
 * for).  It finds a prefix of the replies, in order, then the end.  The
 * server holds at most a socket buffer's worth for it, and the device is
 * free for the next client.
 */
static void test_flood_not_read(void **state)
{
    const unsigned n = 100000 / (unsigned)slow_factor();
    const size_t msz = VFU_HDR_SIZE + sizeof(struct vfu_device_info);
    struct vfu_device_info rdi;
    struct flood f = { 0 };
    struct vfu_hdr h;
    pthread_t th;
    uint8_t *buf = flood_requests(n, msz);
    unsigned got;
    ssize_t r;

    (void)state;
    hc = connect_client();
    f = (struct flood){ .fd = muc_fd(hc), .buf = buf, .len = n * msz };
    assert_int_equal(pthread_create(&th, NULL, flood_fn, &f), 0);
    expect_log("client dropped: client stopped reading replies");
    for (got = 0; (r = recv_raw(hc, &h, &rdi, sizeof(rdi), long_wait())) > 0;
         got++)
        check_info_reply(r, &h, &rdi, got);
    assert_int_equal(r, -ENOTCONN);
    assert_true(got > 0 && got < n);
    pthread_join(th, NULL);
    /* The sender either got it all into the socket buffers (a small flood
     * under valgrind) or was cut off by the hangup. */
    if (f.sent < n * msz)
        assert_true(f.err == EPIPE || f.err == ECONNRESET);
    else
        assert_int_equal(f.err, 0);
    close_client(&hc);
    free(buf);
    settle();
    assert_serves();
}

/* ---------------- DMA limits ---------------- */

/*
 * MU_LIMIT_DMA_REGIONS (advertised as max_dma_maps): the map past it gets
 * ENOSPC (with or without an fd; the fd is closed) and changes nothing;
 * after an unmap there is room again.  Disconnect unmaps the rest.
 */
static void test_dma_map_limit(void **state)
{
    struct mu_dma_stats st;
    int busy, mfd;

    (void)state;
    hc = connect_client();
    assert_int_equal(muc_server_caps(hc)->max_dma_maps, DMA_REGIONS);
    busy = count_open_fds();
    for (unsigned i = 0; i < DMA_REGIONS; i++) {
        if (i % 2 == 0) {
            assert_int_equal(dma_map_raw(hc, IOVA_MEM + i * PG, PG, 0, DMA_RW,
                                         -1), 0);
            continue;
        }
        mfd = memfd_sealable("dma", PG);
        assert_int_equal(dma_map_raw(hc, IOVA_MEM + i * PG, PG, 0, DMA_RW,
                                     mfd), 0);
        close(mfd);
    }
    assert_int_equal(dma_map_raw(hc, IOVA_MEM + DMA_REGIONS * PG, PG, 0,
                                 DMA_RW, -1), -ENOSPC);
    mfd = memfd_sealable("dma", PG);
    assert_int_equal(dma_map_raw(hc, IOVA_MEM + DMA_REGIONS * PG, PG, 0,
                                 DMA_RW, mfd), -ENOSPC);
    close(mfd);
    /* Overlap is checked first: the spec's EEXIST. */
    assert_int_equal(dma_map_raw(hc, IOVA_MEM, PG, 0, DMA_RW, -1), -EEXIST);
    wait_fds(busy + (int)DMA_REGIONS / 2 + SERVER_FDS_DMA);
    mu_dma_get_stats(srv.ctx, &st);
    assert_int_equal(st.regions, DMA_REGIONS);

    assert_int_equal(muc_dma_unmap(hc, IOVA_MEM + PG, PG), 0);
    assert_int_equal(dma_map_raw(hc, IOVA_MEM + DMA_REGIONS * PG, PG, 0,
                                 DMA_RW, -1), 0);
    assert_int_equal(new_maps(), DMA_REGIONS + 1);
    close_client(&hc);
    settle();
    assert_int_equal(unmap_why[MU_UNMAP_CLIENT], 1);
    assert_int_equal(unmap_why[MU_UNMAP_DISCONNECT], DMA_REGIONS);
    assert_serves();
}

struct jobs {
    struct dma_job *j;
    unsigned n;
};

static unsigned jobs_busy(const struct jobs *js)
{
    unsigned busy = 0;

    for (unsigned i = 0; i < js->n; i++)
        busy += __atomic_load_n(&js->j[i].done, __ATOMIC_SEQ_CST) &&
                js->j[i].rc == -EBUSY;
    return busy;
}

static bool refused_all(void *arg)
{
    return jobs_busy(arg) == ((struct jobs *)arg)->n - DMA_PENDING;
}

/*
 * More device threads DMA-reading fd-less memory than
 * MU_LIMIT_DMA_PENDING while the client does not serve: the ones past the
 * limit get -EBUSY at once (they do not queue without bound); the others
 * complete when the client serves them.  "At once" is "before the client
 * serves anything", the server's timeout being the long one: the pending
 * reads stay pending until the client answers them.
 */
static void test_dma_pending_limit(void **state)
{
    enum { NJOBS = DMA_PENDING + 2 };
    static uint8_t mem[PG];
    struct dma_job jobs[NJOBS];
    pthread_barrier_t start;
    struct jobs js = { jobs, NJOBS };
    unsigned busy = 0, ok = 0;
    int left;

    (void)state;
    fill_pattern(mem, sizeof(mem), 5);
    hc = connect_client();
    assert_int_equal(muc_dma_map_mem(hc, IOVA_MEM, PG, mem,
                                     MUC_DMA_READ | MUC_DMA_WRITE), 0);
    pthread_barrier_init(&start, NULL, NJOBS);
    for (unsigned i = 0; i < NJOBS; i++) {
        memset(&jobs[i], 0, sizeof(jobs[i]));
        jobs[i].start = &start;
        jobs[i].iova = IOVA_MEM + i * 64;
        jobs[i].len = 64;
        assert_int_equal(pthread_create(&jobs[i].th, NULL, dma_job_fn,
                                        &jobs[i]), 0);
    }
    /* The refused ones return without the client doing anything. */
    wait_until(refused_all, &js, 5000, 2000);
    assert_int_equal(jobs_busy(&js), NJOBS - DMA_PENDING);
    /* Each wait ends as soon as a request is served. */
    for (left = DMA_PENDING; left > 0 &&
                             muc_dma_requests_served(hc) < DMA_PENDING; left--)
        assert_true(muc_serve(hc, long_wait()) >= 0);
    busy = 0;
    for (unsigned i = 0; i < NJOBS; i++) {
        pthread_join(jobs[i].th, NULL);
        if (jobs[i].rc == -EBUSY) {
            busy++;
        } else {
            assert_int_equal(jobs[i].rc, 0);
            assert_memory_equal(jobs[i].buf, mem + i * 64, 64);
            ok++;
        }
    }
    pthread_barrier_destroy(&start);
    assert_int_equal(busy, NJOBS - DMA_PENDING);
    assert_int_equal(ok, DMA_PENDING);
    assert_int_equal(muc_dma_requests_served(hc), DMA_PENDING);
    close_client(&hc);
    settle();
    assert_serves();
}

/*
 * The client hangs up while a device thread waits for its DMA_READ reply:
 * the read ends with -ENOTCONN as soon as the server sees the hangup, not
 * after the receive timeout.  That timeout is the long one: had the read
 * waited for it, it would end with -ETIMEDOUT, and a minute late.
 */
static void test_disconnect_during_dma_read(void **state)
{
    struct dma_job job;
    struct vfu_hdr h;

    (void)state;
    hc = connect_client();
    assert_int_equal(dma_map_raw(hc, IOVA_MEM, PG, 0, DMA_RW, -1), 0);
    job_start(&job, IOVA_MEM, 32);
    recv_dma_read(hc, &h, IOVA_MEM, 32);
    close_client(&hc);
    pthread_join(job.th, NULL);
    assert_int_equal(job.rc, -ENOTCONN);
    assert_true(job.ms < (uint64_t)tmo);
    settle();
    assert_int_equal(unmap_why[MU_UNMAP_DISCONNECT], 1);
    assert_serves();
}

/* ---------------- the context thread's DMA requests ---------------- */

struct bogus {
    int fd;
    uint16_t id;
    unsigned stop;
    unsigned long sent;
};

/* Replies to nothing, as fast as the socket takes them. */
static void *bogus_fn(void *arg)
{
    enum { BATCH = 512 };
    const size_t msz = VFU_HDR_SIZE + sizeof(struct vfu_dma_access) + 8;
    struct bogus *b = arg;
    struct vfu_dma_access a = { .addr = IOVA_MEM, .count = 8 };
    uint8_t *buf = calloc(BATCH, msz);
    struct vfu_hdr h;

    if (buf == NULL)
        return NULL;
    vfu_hdr_init(&h, b->id, VFU_CMD_DMA_READ, (uint32_t)msz, VFU_F_TYPE_REPLY, 0);
    for (unsigned i = 0; i < BATCH; i++) {
        memcpy(buf + i * msz, &h, sizeof(h));
        memcpy(buf + i * msz + sizeof(h), &a, sizeof(a));
    }
    while (!__atomic_load_n(&b->stop, __ATOMIC_SEQ_CST)) {
        struct pollfd p = { .fd = b->fd, .events = POLLOUT };
        size_t off = 0;

        while (off < BATCH * msz) {
            ssize_t n = send(b->fd, buf + off, BATCH * msz - off,
                             MSG_NOSIGNAL | MSG_DONTWAIT);

            if (n > 0) {
                off += (size_t)n;
                continue;
            }
            if (n < 0 && errno != EAGAIN && errno != EINTR)
                goto out;
            if (__atomic_load_n(&b->stop, __ATOMIC_SEQ_CST))
                goto out;
            poll(&p, 1, 10);
        }
        b->sent += BATCH;
    }
out:
    free(buf);
    return NULL;
}

/* Ring doorbell i for iova; the REGION_WRITE's reply comes after the
 * request's DMA_READ, which is returned in *req. */
static void ring(muc_t *c, unsigned i, uint64_t iova, struct vfu_hdr *req)
{
    struct vfu_region_access a = { .offset = DOORBELL + i * DB_STRIDE,
                                   .region = MU_PCI_BAR0, .count = 8 };
    uint8_t wr[sizeof(a) + 8];
    struct vfu_hdr h;

    memcpy(wr, &a, sizeof(a));
    memcpy(wr + sizeof(a), &iova, 8);
    send_cmd(c, (uint16_t)(RID + 0x100 + i), VFU_CMD_REGION_WRITE, 0, wr,
             sizeof(wr), NULL, 0);
    recv_dma_read(c, req, iova, 8);
    assert_int_equal(recv_raw(c, &h, NULL, 0, long_wait()),
                     VFU_HDR_SIZE + sizeof(a));
    assert_int_equal(h.msg_id, RID + 0x100 + i);
    assert_int_equal(h.flags, VFU_F_TYPE_REPLY);
}

static void db_reset(void)
{
    for (unsigned i = 0; i < DB_SLOTS; i++)
        __atomic_store_n(&db_rc[i], 0, __ATOMIC_SEQ_CST);
    __atomic_store_n(&db_done, 0, __ATOMIC_SEQ_CST);
}

static bool db_done_is(void *arg)
{
    return __atomic_load_n(&db_done, __ATOMIC_SEQ_CST) == *(unsigned *)arg;
}

/*
 * The device DMA-reads from inside a register write, on the context
 * thread (a request: the register write is answered at once), and the
 * client buries the server in replies with the wrong msg_id instead of
 * answering.  The request must still end at the receive timeout, its
 * callback getting -ETIMEDOUT: a stream of garbage must not extend it
 * (the flood goes on until the callback runs, so a deadline it extended
 * would never come).  Not before the timeout: t0 is taken before the
 * doorbell is rung.
 */
static void test_async_dma_reply_flood(void **state)
{
    uint64_t t0, waited;
    struct bogus b = { 0 };
    unsigned one = 1;
    struct vfu_hdr h;
    pthread_t th;

    (void)state;
    db_reset();
    hc = connect_client();
    assert_int_equal(dma_map_raw(hc, IOVA_MEM, PG, 0, DMA_RW, -1), 0);
    t0 = now_ms();
    ring(hc, 0, IOVA_MEM, &h);
    b.fd = muc_fd(hc);
    b.id = (uint16_t)(h.msg_id ^ 0x8000);
    assert_int_equal(pthread_create(&th, NULL, bogus_fn, &b), 0);
    assert_true(wait_until(db_done_is, &one, (4 * tmo + long_wait()) / 2, 2000));
    waited = now_ms() - t0;
    __atomic_store_n(&b.stop, 1, __ATOMIC_SEQ_CST);
    pthread_join(th, NULL);
    assert_true(b.sent > 0);
    assert_int_equal(__atomic_load_n(&db_rc[0], __ATOMIC_SEQ_CST), -ETIMEDOUT);
    assert_true(waited >= (uint64_t)tmo);
    expect_log("no reply in time");
    close_client(&hc);
    settle();
    assert_serves();
}

/*
 * While a context-thread request waits for its DMA_READ reply, the
 * server goes on serving: commands the client sends meanwhile are
 * answered at once, in order, however many (nothing is parked, so
 * nothing is bounded); then the reply completes the request.
 */
static void test_async_dma_command_flood(void **state)
{
    enum { NREQ = 1100 };
    const size_t msz = VFU_HDR_SIZE + sizeof(struct vfu_device_info);
    struct vfu_device_info di = { .argsz = sizeof(di) }, rdi;
    uint64_t v = 0x1122334455667788ull, got;
    struct vfu_hdr h, req;
    uint8_t *buf;
    ssize_t r;

    (void)state;
    db_reset();
    buf = malloc(NREQ * msz);
    assert_non_null(buf);
    for (unsigned i = 0; i < NREQ; i++) {
        vfu_hdr_init(&h, (uint16_t)(RID + 1 + i), VFU_CMD_DEVICE_GET_INFO,
                     (uint32_t)msz, 0, 0);
        memcpy(buf + i * msz, &h, sizeof(h));
        memcpy(buf + i * msz + sizeof(h), &di, sizeof(di));
    }
    hc = connect_client();
    assert_int_equal(dma_map_raw(hc, IOVA_MEM, PG, 0, DMA_RW, -1), 0);
    ring(hc, 0, IOVA_MEM, &req);
    assert_int_equal(muc_send_bytes(hc, buf, NREQ * msz, NULL, 0), 0);
    free(buf);
    for (unsigned i = 0; i < NREQ; i++) {
        r = recv_raw(hc, &h, &rdi, sizeof(rdi), long_wait());
        check_info_reply(r, &h, &rdi, i + 1);
    }
    assert_int_equal(__atomic_load_n(&db_rc[0], __ATOMIC_SEQ_CST), 1);
    send_dma_read_reply(hc, req.msg_id, VFU_CMD_DMA_READ, IOVA_MEM, 8, &v, 8);
    assert_int_equal(muc_region_read(hc, MU_PCI_BAR0, DOORBELL_DATA, &got, 8), 0);
    assert_int_equal(got, v);
    assert_int_equal(__atomic_load_n(&db_rc[0], __ATOMIC_SEQ_CST), 0);
    close_client(&hc);
    settle();
    assert_serves();
}

/*
 * MU_LIMIT_DMA_PENDING requests in flight from the context thread: one
 * more is refused at once (-EBUSY, the register write's errno).  The
 * client then sends a few hundred maximum-size REGION_WRITEs (tens of
 * MiB: more than a server holding them could afford) and they are served
 * as they come; then it answers the requests in reverse order, and each
 * gets its own data.  A hangup with requests in flight ends each with
 * -ENOTCONN, once.
 */
static void test_async_dma_bulk_flood(void **state)
{
    enum { NREQ = 300 };    /* 300 x 64 KiB */
    const size_t msz = VFU_HDR_SIZE + sizeof(struct vfu_region_access) + XFER;
    struct vfu_region_access w = { .offset = 0, .region = MU_PCI_BAR2,
                                   .count = XFER };
    struct vfu_region_access a = { .offset = DOORBELL + DMA_PENDING * DB_STRIDE,
                                   .region = MU_PCI_BAR0, .count = 8 };
    uint8_t wr[sizeof(a) + 8], *msg;
    uint64_t iova = IOVA_MEM, got;
    struct vfu_hdr h, req[DMA_PENDING];
    unsigned want;

    (void)state;
    db_reset();
    msg = calloc(1, msz);
    assert_non_null(msg);
    hc = connect_client();
    assert_int_equal(dma_map_raw(hc, IOVA_MEM, PG, 0, DMA_RW, -1), 0);
    for (unsigned i = 0; i < DMA_PENDING; i++)
        ring(hc, i, IOVA_MEM + 8 * i, &req[i]);
    memcpy(wr, &a, sizeof(a));
    memcpy(wr + sizeof(a), &iova, 8);
    send_cmd(hc, RID, VFU_CMD_REGION_WRITE, 0, wr, sizeof(wr), NULL, 0);
    expect_error(hc, RID, VFU_CMD_REGION_WRITE, EBUSY);

    for (unsigned i = 0; i < NREQ; i++) {
        vfu_hdr_init(&h, (uint16_t)(RID + 1 + i), VFU_CMD_REGION_WRITE,
                     (uint32_t)msz, 0, 0);
        memcpy(msg, &h, sizeof(h));
        memcpy(msg + sizeof(h), &w, sizeof(w));
        assert_int_equal(muc_send_bytes(hc, msg, msz, NULL, 0), 0);
        assert_int_equal(recv_raw(hc, &h, NULL, 0, long_wait()),
                         VFU_HDR_SIZE + sizeof(w));
        assert_int_equal(h.msg_id, RID + 1 + i);
        assert_int_equal(h.flags, VFU_F_TYPE_REPLY);
    }
    free(msg);

    for (unsigned k = DMA_PENDING; k-- > 0;) {
        uint64_t v = 0xd0d0d0d000000000ull | k;

        send_dma_read_reply(hc, req[k].msg_id, VFU_CMD_DMA_READ,
                            IOVA_MEM + 8 * k, 8, &v, 8);
    }
    for (unsigned k = 0; k < DMA_PENDING; k++) {
        assert_int_equal(muc_region_read(hc, MU_PCI_BAR0,
                                         DOORBELL_DATA + k * DB_STRIDE, &got,
                                         8), 0);
        assert_int_equal(got, 0xd0d0d0d000000000ull | k);
        assert_int_equal(__atomic_load_n(&db_rc[k], __ATOMIC_SEQ_CST), 0);
    }

    /* Two in flight, then the client hangs up. */
    ring(hc, 0, IOVA_MEM, &h);
    ring(hc, 1, IOVA_MEM + 8, &h);
    close_client(&hc);
    want = DMA_PENDING + 2;
    assert_true(wait_until(db_done_is, &want, long_wait() / 2, 2000));
    assert_int_equal(__atomic_load_n(&db_rc[0], __ATOMIC_SEQ_CST), -ENOTCONN);
    assert_int_equal(__atomic_load_n(&db_rc[1], __ATOMIC_SEQ_CST), -ENOTCONN);
    settle();
    assert_int_equal(__atomic_load_n(&db_done, __ATOMIC_SEQ_CST), want);
    assert_serves();
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, test_setup, test_teardown)

int main(void)
{
    /* Everything that is not a test of a timeout: long timeouts. */
    const struct CMUnitTest limits[] = {
        T(test_truncated_header),
        T(test_size_below_header),
        T(test_size_above_limit),
        T(test_size_mismatch),
        T(test_unknown_command),
        T(test_reply_flag_on_request),
        T(test_reply_bad_errors),
        T(test_too_many_fds),
        T(test_fds_on_fdless_commands),
        T(test_fds_not_what_they_claim),
        T(test_dma_map_fd_too_small),
        T(test_region_access_bounds),
        T(test_set_irqs_mismatch),
        T(test_flood_keeps_up),
        T(test_dma_map_limit),
        T(test_dma_pending_limit),
        T(test_disconnect_during_dma_read),
        T(test_async_dma_command_flood),
        T(test_async_dma_bulk_flood),
    };
    /* The tests of the send and receive timeouts: short ones. */
    const struct CMUnitTest timeouts[] = {
        T(test_reply_wrong_msg_id),
        T(test_stops_reading_replies),
        T(test_half_message_waits),
        T(test_flood_not_read),
        T(test_async_dma_reply_flood),
    };
    int failed;

    failed = cmocka_run_group_tests_name("limits", limits, group_setup_limits,
                                         group_teardown);
    failed += cmocka_run_group_tests_name("timeouts", timeouts,
                                          group_setup_timeouts,
                                          group_teardown);
    return failed;
}
