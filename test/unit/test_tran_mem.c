/*
 * test_tran_mem.c - the in-memory transport (lib/tran_mem.h) on its own:
 * a context served with no socket, driven from the test's thread.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <poll.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include <cmocka.h>

#include "client_priv.h"
#include "private.h"
#include "tran_mem.h"
#include "../slow.h"
#include "unit_util.h"

static uint8_t bar0[256];

static ssize_t bar0_cb(mu_ctx_t *ctx, void *buf, size_t count, uint64_t off,
                       bool is_write)
{
    (void)ctx;
    if (is_write)
        memcpy(bar0 + off, buf, count);
    else
        memcpy(buf, bar0 + off, count);
    return (ssize_t)count;
}

static mu_ctx_t *new_ctx(void)
{
    mu_ctx_t *ctx;

    for (unsigned i = 0; i < sizeof(bar0); i++)
        bar0[i] = (uint8_t)(i ^ 0x5a);
    assert_int_equal(mu_ctx_create(&ctx, "/nonexistent/unused", MU_DEV_PCI,
                                   NULL), 0);
    assert_int_equal(mu_ctx_use_mem(ctx), 0);
    assert_int_equal(mu_region_setup(ctx, MU_PCI_BAR0, sizeof(bar0),
                                     MU_REGION_RW | MU_REGION_MEM, bar0_cb), 0);
    assert_int_equal(mu_ctx_realize(ctx), 0);
    assert_int_equal(mu_ctx_use_mem(ctx), -EBUSY);
    /* No socket file: the path was never touched. */
    assert_int_equal(access("/nonexistent/unused", F_OK), -1);
    return ctx;
}

static void connect_client(mu_ctx_t *ctx)
{
    assert_false(mu_mem_attached(ctx));
    assert_int_equal(mu_mem_connect(ctx), 0);
    assert_int_equal(mu_mem_connect(ctx), -EBUSY);
    assert_int_equal(mu_ctx_poll(ctx), 0);     /* the bell: accept */
    assert_true(mu_mem_attached(ctx));
}

static void hang_up(mu_ctx_t *ctx)
{
    mu_mem_hang_up(ctx);
    assert_int_equal(mu_ctx_poll(ctx), 0);     /* EOF: detach */
    assert_false(mu_mem_attached(ctx));
}

/* Send one command; run the context; return its reply's body length. */
static size_t call(mu_ctx_t *ctx, uint16_t id, uint16_t cmd, const void *body,
                   size_t len, uint8_t *reply, size_t cap)
{
    struct vfu_hdr h, r;
    unsigned nfds;
    ssize_t n;

    vfu_hdr_init(&h, id, cmd, (uint32_t)(VFU_HDR_SIZE + len),
                 VFU_F_TYPE_COMMAND, 0);
    /* Header and body as two writes: framing must join them. */
    assert_int_equal(mu_mem_send(ctx, &h, sizeof(h), NULL, 0), 0);
    assert_int_equal(mu_mem_send(ctx, body, len, NULL, 0), 0);
    assert_int_equal(mu_mem_recv(ctx, reply, cap, NULL, 0, &nfds), 0);
    assert_int_equal(mu_ctx_poll(ctx), 0);
    n = mu_mem_recv(ctx, reply, cap, NULL, 0, &nfds);
    assert_true(n >= (ssize_t)VFU_HDR_SIZE);
    memcpy(&r, reply, sizeof(r));
    assert_int_equal(r.size, n);
    assert_int_equal(r.msg_id, id);
    assert_int_equal(r.cmd, cmd);
    assert_int_equal(r.flags & VFU_F_ERROR, 0);
    assert_true(vfu_hdr_is_reply(&r));
    return (size_t)n - VFU_HDR_SIZE;
}

static void send_version(mu_ctx_t *ctx)
{
    static const char json[] = "{\"capabilities\":{\"pgsizes\":4096}}";
    uint8_t req[sizeof(struct vfu_version) + sizeof(json)], reply[512];
    struct vfu_version v = { VFU_VERSION_MAJOR, VFU_VERSION_MINOR };

    memcpy(req, &v, sizeof(v));
    memcpy(req + sizeof(v), json, sizeof(json));
    assert_true(call(ctx, 1, VFU_CMD_VERSION, req, sizeof(req), reply,
                     sizeof(reply)) > sizeof(v));
    memcpy(&v, reply + VFU_HDR_SIZE, sizeof(v));
    assert_int_equal(v.major, VFU_VERSION_MAJOR);
    assert_true(mu_ctx_client_ready(ctx));
}

/* VERSION and a REGION_READ as raw messages through the transport. */
static void test_raw_version_and_region_read(void **state)
{
    struct vfu_region_access a = { 0x10, MU_PCI_BAR0, 8 };
    uint8_t reply[128];
    int fds = count_fds();
    mu_ctx_t *ctx = new_ctx();

    (void)state;
    connect_client(ctx);
    send_version(ctx);
    assert_int_equal(call(ctx, 2, VFU_CMD_REGION_READ, &a, sizeof(a), reply,
                          sizeof(reply)), sizeof(a) + 8);
    assert_memory_equal(reply + VFU_HDR_SIZE + sizeof(a), bar0 + 0x10, 8);
    hang_up(ctx);
    /* A second client is served the same way. */
    connect_client(ctx);
    send_version(ctx);
    hang_up(ctx);
    mu_ctx_destroy(ctx);
    assert_int_equal(count_fds(), fds);
}

/* The client library over the transport: its reads run the context. */
static void test_client_over_mem(void **state)
{
    uint8_t buf[16];
    int fds = count_fds();
    mu_ctx_t *ctx = new_ctx();
    muc_t *c;

    (void)state;
    assert_int_equal(mu_mem_connect(ctx), 0);
    assert_int_equal(muc__from_link(&c, &mu_mem_muc_link, ctx, NULL, true), 0);
    assert_true(mu_ctx_client_ready(ctx));
    assert_int_equal(muc_region_read(c, MU_PCI_BAR0, 0x20, buf, sizeof(buf)), 0);
    assert_memory_equal(buf, bar0 + 0x20, sizeof(buf));
    memset(buf, 0xee, sizeof(buf));
    assert_int_equal(muc_region_write(c, MU_PCI_BAR0, 0x40, buf, 4), 0);
    assert_memory_equal(bar0 + 0x40, buf, 4);
    muc_close(c);
    hang_up(ctx);
    mu_ctx_destroy(ctx);
    assert_int_equal(count_fds(), fds);
}

/* The scripted client answers the context thread's DMA_READ request. */
static uint8_t turn_data[16];
static int async_status = 1;
static unsigned async_done;

static void answer_read(mu_ctx_t *ctx)
{
    uint8_t buf[256];
    struct vfu_dma_access a;
    struct vfu_hdr h;
    unsigned nfds;
    ssize_t n = mu_mem_recv(ctx, buf, sizeof(buf), NULL, 0, &nfds);

    assert_int_equal(n, VFU_HDR_SIZE + sizeof(a));
    memcpy(&h, buf, sizeof(h));
    memcpy(&a, buf + sizeof(h), sizeof(a));
    assert_int_equal(h.cmd, VFU_CMD_DMA_READ);
    assert_int_equal(a.count, sizeof(turn_data));
    vfu_hdr_init(&h, h.msg_id, h.cmd,
                 (uint32_t)(VFU_HDR_SIZE + sizeof(a) + sizeof(turn_data)),
                 VFU_F_TYPE_REPLY, 0);
    assert_int_equal(mu_mem_send(ctx, &h, sizeof(h), NULL, 0), 0);
    assert_int_equal(mu_mem_send(ctx, &a, sizeof(a), NULL, 0), 0);
    assert_int_equal(mu_mem_send(ctx, turn_data, sizeof(turn_data), NULL, 0),
                     0);
}

static void async_cb(mu_ctx_t *ctx, void *arg, int status)
{
    (void)ctx;
    assert_ptr_equal(arg, &async_status);
    async_status = status;
    async_done++;
}

/*
 * On the context thread a blocking copy that needs the client fails at
 * once (it would wait for itself); the asynchronous one sends the
 * request, returns, and completes from the loop when the reply comes.
 * The client going away ends one still in flight, once.
 */
static void test_async_dma_read(void **state)
{
    struct vfu_dma_map m = { sizeof(m), VFU_DMA_FLAG_READ | VFU_DMA_FLAG_WRITE,
                             0, 0x100000, 0x1000 };
    uint8_t reply[64], got[sizeof(turn_data)];
    unsigned nfds;
    mu_ctx_t *ctx = new_ctx();

    (void)state;
    for (unsigned i = 0; i < sizeof(turn_data); i++)
        turn_data[i] = (uint8_t)(0xa0 + i);
    connect_client(ctx);
    send_version(ctx);
    assert_int_equal(call(ctx, 2, VFU_CMD_DMA_MAP, &m, sizeof(m), reply,
                          sizeof(reply)), 0);
    assert_int_equal(mu_dma_read(ctx, 0x100000, got, sizeof(got)), -EDEADLK);
    assert_int_equal(mu_mem_recv(ctx, reply, sizeof(reply), NULL, 0, &nfds), 0);

    async_done = 0;
    assert_int_equal(mu_dma_read_async(ctx, 0x100000, got, sizeof(got),
                                       async_cb, &async_status), 0);
    assert_int_equal(async_done, 0);
    answer_read(ctx);
    assert_int_equal(mu_ctx_poll(ctx), 0);
    assert_int_equal(async_done, 1);
    assert_int_equal(async_status, 0);
    assert_memory_equal(got, turn_data, sizeof(got));

    /* Unmapped: the error comes through the callback, from the loop. */
    async_status = 1;
    assert_int_equal(mu_dma_read_async(ctx, 0x900000, got, sizeof(got),
                                       async_cb, &async_status), 0);
    assert_int_equal(async_done, 1);
    assert_int_equal(mu_ctx_poll(ctx), 0);
    assert_int_equal(async_done, 2);
    assert_int_equal(async_status, -ENOENT);

    /* In flight when the client hangs up: -ENOTCONN, once. */
    assert_int_equal(mu_dma_read_async(ctx, 0x100000, got, sizeof(got),
                                       async_cb, &async_status), 0);
    hang_up(ctx);
    assert_int_equal(async_done, 3);
    assert_int_equal(async_status, -ENOTCONN);
    assert_int_equal(mu_dma_read_async(ctx, 0x100000, got, sizeof(got),
                                       async_cb, &async_status), -ENOTCONN);
    mu_ctx_destroy(ctx);
    assert_int_equal(async_done, 3);
}

/*
 * What a client leaves behind (part of a message, with an fd) goes with
 * it: the fd is closed at detach and the next client's stream starts
 * clean, although the framing keeps its buffer from one to the next.
 */
static void test_next_client_starts_clean(void **state)
{
    uint8_t partial[VFU_HDR_SIZE + 4];
    struct vfu_hdr h;
    int fds = count_fds(), idle, efd;
    mu_ctx_t *ctx = new_ctx();

    (void)state;
    idle = count_fds();
    connect_client(ctx);
    /* The client's eventfd is the transport's, made once; the timer
     * goes while the client needs none (test_timer_only_while_needed). */
    assert_int_equal(count_fds(), idle - 1);
    send_version(ctx);
    vfu_hdr_init(&h, 2, VFU_CMD_DMA_MAP, VFU_HDR_SIZE + 32,
                 VFU_F_TYPE_COMMAND, 0);
    memcpy(partial, &h, sizeof(h));
    memset(partial + sizeof(h), 0, 4);
    efd = eventfd(0, EFD_CLOEXEC);
    assert_true(efd >= 0);
    assert_int_equal(mu_mem_send(ctx, partial, sizeof(partial), &efd, 1), 0);
    close(efd);
    assert_int_equal(mu_ctx_poll(ctx), 0);      /* read, not complete */
    assert_true(mu_mem_msgio(ctx)->tail > mu_mem_msgio(ctx)->head);
    /* The dup of efd, and the timer back for the receive timeout. */
    assert_int_equal(count_fds(), idle + 1);
    hang_up(ctx);
    assert_int_equal(count_fds(), idle);
    /* The next client's first bytes are a header, not the rest of the
     * last one's message. */
    connect_client(ctx);
    assert_int_equal(mu_mem_msgio(ctx)->tail, mu_mem_msgio(ctx)->head);
    send_version(ctx);
    hang_up(ctx);
    mu_ctx_destroy(ctx);
    assert_int_equal(count_fds(), fds);
}

/* Bytes buffered in the context's framing (what its reads took). */
static size_t buffered(mu_ctx_t *ctx)
{
    const struct msgio *io = mu_mem_msgio(ctx);

    assert_non_null(io);
    return io->tail - io->head;
}

/*
 * As a stream socket: a read joins writes and stops after one that
 * carried fds, which come with its first byte; a client gone leaves no
 * fd behind, read or not.
 */
static void test_reads_stop_after_fds(void **state)
{
    uint8_t bytes[8] = { 0 };
    struct vfu_hdr h;
    int fds = count_fds(), idle, efd, two[2];
    mu_ctx_t *ctx = new_ctx();

    (void)state;
    connect_client(ctx);
    send_version(ctx);
    idle = count_fds();
    /* One message that never completes: nothing is cut from it. */
    vfu_hdr_init(&h, 2, VFU_CMD_REGION_WRITE, VFU_HDR_SIZE + 64,
                 VFU_F_TYPE_COMMAND, 0);
    efd = eventfd(0, EFD_CLOEXEC);
    assert_true(efd >= 0);
    two[0] = two[1] = efd;
    assert_int_equal(mu_mem_send(ctx, &h, sizeof(h), NULL, 0), 0);
    assert_int_equal(mu_mem_send(ctx, bytes, 8, &efd, 1), 0);
    assert_int_equal(mu_mem_send(ctx, bytes, 8, NULL, 0), 0);
    assert_int_equal(mu_mem_send(ctx, bytes, 8, two, 2), 0);
    assert_int_equal(mu_mem_send(ctx, bytes, 8, NULL, 0), 0);
    close(efd);
    assert_int_equal(count_fds(), idle + 3);    /* the transport's dups */
    assert_int_equal(mu_ctx_poll(ctx), 0);
    assert_int_equal(buffered(ctx), VFU_HDR_SIZE + 8);
    assert_int_equal(mu_ctx_poll(ctx), 0);
    assert_int_equal(buffered(ctx), VFU_HDR_SIZE + 24);
    assert_int_equal(mu_ctx_poll(ctx), 0);
    assert_int_equal(buffered(ctx), VFU_HDR_SIZE + 32);
    assert_int_equal(mu_ctx_poll(ctx), 0);      /* nothing more */
    assert_int_equal(buffered(ctx), VFU_HDR_SIZE + 32);
    /* The three fds are now the framing's; the message begun brought the
     * housekeeping timer (its receive timeout). */
    assert_int_equal(count_fds(), idle + 3 + 1);
    hang_up(ctx);
    /* The timer stays, disarmed, while no client is attached (a paused
     * accept needs it). */
    assert_int_equal(count_fds(), idle + 1);

    /* More fd-carrying writes than the queue first has room for, none
     * read: the hang-up closes them all. */
    connect_client(ctx);
    send_version(ctx);
    assert_int_equal(mu_mem_send(ctx, &h, sizeof(h), NULL, 0), 0);
    for (int i = 0; i < 40; i++) {
        efd = eventfd(0, EFD_CLOEXEC);
        assert_true(efd >= 0);
        assert_int_equal(mu_mem_send(ctx, bytes, 1, &efd, 1), 0);
        close(efd);
    }
    assert_int_equal(count_fds(), idle + 40);
    /* A read takes one at a time; the message's ninth fd is one too
     * many for it (MU_LIMIT_MSG_FDS), and the client is dropped. */
    mu_mem_hang_up(ctx);
    for (int i = 0; i < 64 && mu_mem_attached(ctx); i++)
        assert_int_equal(mu_ctx_poll(ctx), 0);
    assert_false(mu_mem_attached(ctx));
    assert_int_equal(count_fds(), idle + 1);    /* the timer, as above */
    mu_ctx_destroy(ctx);
    assert_int_equal(count_fds(), fds);
}

/*
 * Whole messages, each one write with an fd, sent while earlier ones
 * are being read (the queue reuses its room): every one is served, in
 * order, and a reply read in small pieces comes whole.
 */
static void test_writes_interleaved_with_reads(void **state)
{
    struct vfu_region_access a = { 0x10, MU_PCI_BAR0, 4 };
    uint8_t msg[VFU_HDR_SIZE + sizeof(a)], reply[512];
    unsigned nfds, served = 0;
    int fds = count_fds(), idle;
    mu_ctx_t *ctx = new_ctx();

    (void)state;
    connect_client(ctx);
    send_version(ctx);
    idle = count_fds();
    for (uint16_t id = 2; id < 2 + 30; id++) {
        struct vfu_hdr h;
        int efd = eventfd(0, EFD_CLOEXEC);

        assert_true(efd >= 0);
        vfu_hdr_init(&h, id, VFU_CMD_REGION_READ, sizeof(msg),
                     VFU_F_TYPE_COMMAND, 0);
        memcpy(msg, &h, sizeof(h));
        memcpy(msg + sizeof(h), &a, sizeof(a));
        assert_int_equal(mu_mem_send(ctx, msg, sizeof(msg), &efd, 1), 0);
        close(efd);
        /* Read one in three as they come, the rest after. */
        if (id % 3 == 0)
            assert_int_equal(mu_ctx_poll(ctx), 0);
    }
    for (int i = 0; i < 64 && mu_mem_pending(ctx); i++)
        assert_int_equal(mu_ctx_poll(ctx), 0);
    assert_false(mu_mem_pending(ctx));
    for (uint16_t id = 2; id < 2 + 30; id++) {
        struct vfu_hdr r;
        size_t got = 0;
        ssize_t n;

        /* At most seven bytes a read, never past this reply: the
         * header comes in pieces. */
        for (;;) {
            size_t want = VFU_HDR_SIZE - got;

            if (got >= VFU_HDR_SIZE) {
                memcpy(&r, reply, sizeof(r));
                assert_true(r.size >= VFU_HDR_SIZE && r.size <= sizeof(reply));
                want = r.size - got;
            }
            if (want == 0)
                break;
            n = mu_mem_recv(ctx, reply + got, want < 7 ? want : 7, NULL, 0,
                            &nfds);
            assert_true(n > 0 && n <= 7 && (size_t)n <= want);
            assert_int_equal(nfds, 0);
            got += (size_t)n;
        }
        assert_int_equal(got, r.size);
        assert_int_equal(r.msg_id, id);
        assert_true(vfu_hdr_is_reply(&r));
        served++;
    }
    assert_int_equal(served, 30);
    assert_int_equal(mu_mem_recv(ctx, reply, sizeof(reply), NULL, 0, &nfds),
                     0);
    /* The fds the commands did not take are closed. */
    assert_int_equal(count_fds(), idle);
    hang_up(ctx);
    mu_ctx_destroy(ctx);
    assert_int_equal(count_fds(), fds);
}

/*
 * mu_mem_attach(): the client is attached when it returns, with nothing
 * left for a poll to do (the bell is not rung); clients attached so and
 * accepted through the bell follow each other alike.
 */
static void test_attach_without_bell(void **state)
{
    struct vfu_region_access a = { 0x10, MU_PCI_BAR0, 8 };
    uint8_t reply[128];
    int fds = count_fds();
    mu_ctx_t *ctx = new_ctx();

    (void)state;
    for (int i = 0; i < 3; i++) {
        assert_false(mu_mem_attached(ctx));
        assert_int_equal(mu_mem_attach(ctx), 0);
        assert_true(mu_mem_attached(ctx));
        assert_true(mu_conn_attached(ctx));
        assert_int_equal(mu_mem_attach(ctx), -EBUSY);
        assert_int_equal(mu_mem_connect(ctx), -EBUSY);
        assert_int_equal(mu_ctx_poll_wait(ctx, 0), 0);     /* no bell */
        send_version(ctx);
        assert_int_equal(call(ctx, 2, VFU_CMD_REGION_READ, &a, sizeof(a),
                              reply, sizeof(reply)), sizeof(a) + 8);
        assert_memory_equal(reply + VFU_HDR_SIZE + sizeof(a), bar0 + 0x10, 8);
        hang_up(ctx);
        assert_false(mu_conn_attached(ctx));
        /* The bell's way in between. */
        connect_client(ctx);
        send_version(ctx);
        hang_up(ctx);
    }
    /* A client waiting at the bell is not taken over. */
    assert_int_equal(mu_mem_connect(ctx), 0);
    assert_int_equal(mu_mem_attach(ctx), -EBUSY);
    assert_int_equal(mu_ctx_poll(ctx), 0);
    assert_true(mu_mem_attached(ctx));
    hang_up(ctx);
    mu_ctx_destroy(ctx);
    assert_int_equal(count_fds(), fds);
}

static bool timer_armed(mu_ctx_t *ctx)
{
    struct itimerspec its;

    assert_true(ctx->timer_fd >= 0);
    assert_int_equal(timerfd_gettime(ctx->timer_fd, &its), 0);
    return its.it_interval.tv_sec != 0 || its.it_interval.tv_nsec != 0 ||
           its.it_value.tv_sec != 0 || its.it_value.tv_nsec != 0;
}

/* Wait for the timer's next (real) tick and handle it. */
static void timer_tick(mu_ctx_t *ctx)
{
    struct pollfd p = { .fd = ctx->timer_fd, .events = POLLIN };

    assert_int_equal(poll(&p, 1, 5000 * mu_test_slow_factor()), 1);
    assert_int_equal(mu_ctx_poll_wait(ctx, 0), 1);
}

/*
 * The housekeeping timer exists while it has something to watch, so that
 * an idle connected context holds no fd for it.  Without a client it is
 * kept, disarmed (a paused accept needs it, when no fd may be left to
 * make one).  A client idle between messages has none; a message begun
 * brings it, armed, and its first tick after the message is whole
 * removes it.  A client that leaves mid-message takes the need along:
 * the timer is disarmed at its next tick and kept.
 */
static void test_timer_only_while_needed(void **state)
{
    struct vfu_region_access a = { 0, MU_PCI_CONFIG, 4 };
    uint8_t reply[128];
    unsigned nfds;
    struct vfu_hdr h;
    int fds;
    mu_ctx_t *ctx;

    (void)state;
    assert_int_equal(mu_ctx_create(&ctx, "/nonexistent/unused", MU_DEV_PCI,
                                   NULL), 0);
    assert_int_equal(mu_ctx_use_mem(ctx), 0);
    /* A 10 ms period (a quarter of the receive timeout, at least 10). */
    assert_int_equal(mu_ctx_set_limit(ctx, MU_LIMIT_RECV_TIMEOUT_MS, 40), 0);
    assert_int_equal(mu_ctx_realize(ctx), 0);
    assert_false(timer_armed(ctx));
    fds = count_fds();

    connect_client(ctx);
    assert_int_equal(ctx->timer_fd, -1);
    assert_int_equal(count_fds(), fds - 1);
    send_version(ctx);
    assert_int_equal(ctx->timer_fd, -1);

    /* Half a REGION_READ: the timer watches its receive timeout. */
    vfu_hdr_init(&h, 2, VFU_CMD_REGION_READ,
                 (uint32_t)(VFU_HDR_SIZE + sizeof(a)), VFU_F_TYPE_COMMAND, 0);
    assert_int_equal(mu_mem_send(ctx, &h, sizeof(h), NULL, 0), 0);
    assert_int_equal(mu_ctx_poll(ctx), 0);
    assert_true(timer_armed(ctx));
    assert_int_equal(count_fds(), fds);
    /* Whole and answered: the next tick finds nothing to watch. */
    assert_int_equal(mu_mem_send(ctx, &a, sizeof(a), NULL, 0), 0);
    assert_int_equal(mu_ctx_poll(ctx), 0);
    assert_int_equal(mu_mem_recv(ctx, reply, sizeof(reply), NULL, 0, &nfds),
                     (ssize_t)(VFU_HDR_SIZE + sizeof(a) + 4));
    assert_true(timer_armed(ctx));      /* until its next tick */
    timer_tick(ctx);
    assert_int_equal(ctx->timer_fd, -1);
    assert_true(mu_mem_attached(ctx));
    assert_int_equal(count_fds(), fds - 1);

    /* Gone mid-message: the timer is disarmed at its next tick, kept. */
    assert_int_equal(mu_mem_send(ctx, &h, sizeof(h), NULL, 0), 0);
    assert_int_equal(mu_ctx_poll(ctx), 0);
    assert_true(timer_armed(ctx));
    hang_up(ctx);
    assert_true(timer_armed(ctx));
    timer_tick(ctx);
    assert_false(timer_armed(ctx));
    assert_int_equal(count_fds(), fds);

    /* A client after that one starts without it again. */
    connect_client(ctx);
    assert_int_equal(ctx->timer_fd, -1);
    hang_up(ctx);
    assert_false(timer_armed(ctx));
    mu_ctx_destroy(ctx);
}

/*
 * Stop and "DMA requests done" share one eventfd, made by the first wake:
 * a context nobody woke has none.  Both reasons of one wake are handled
 * in the same round: the callback runs, and the loop stops.
 */
static void test_stop_and_done_share_wake_fd(void **state)
{
    uint8_t got[8];
    int fds;
    mu_ctx_t *ctx = new_ctx();

    (void)state;
    connect_client(ctx);
    send_version(ctx);
    assert_int_equal(ctx->wake_fd, -1);
    fds = count_fds();

    /* Unmapped: done at once, its callback run from the loop. */
    async_done = 0;
    async_status = 1;
    assert_int_equal(mu_dma_read_async(ctx, 0x900000, got, sizeof(got),
                                       async_cb, &async_status), 0);
    assert_true(ctx->wake_fd >= 0);
    assert_int_equal(count_fds(), fds + 1);
    mu_ctx_stop(ctx);
    mu_ctx_stop(ctx);
    assert_int_equal(count_fds(), fds + 1);     /* the same eventfd */
    assert_int_equal(async_done, 0);
    assert_int_equal(mu_ctx_poll(ctx), -ESHUTDOWN);
    assert_int_equal(async_done, 1);
    assert_int_equal(async_status, -ENOENT);
    /* mu_ctx_run() takes the stop and returns; another one wakes it. */
    assert_int_equal(mu_ctx_run(ctx), 0);
    mu_ctx_stop(ctx);
    assert_int_equal(mu_ctx_run(ctx), 0);
    hang_up(ctx);
    mu_ctx_destroy(ctx);
}

/* mu_ctx_poll_wait() tells a context with work from an idle one. */
static void test_poll_wait_counts_events(void **state)
{
    static const char json[] = "{\"capabilities\":{\"pgsizes\":4096}}";
    uint8_t msg[VFU_HDR_SIZE + sizeof(struct vfu_version) + sizeof(json)];
    struct vfu_version v = { VFU_VERSION_MAJOR, VFU_VERSION_MINOR };
    struct vfu_hdr h;
    uint8_t reply[512];
    unsigned nfds;
    mu_ctx_t *ctx = new_ctx();

    (void)state;
    assert_int_equal(mu_ctx_poll_wait(ctx, 0), 0);      /* nothing yet */
    assert_int_equal(mu_mem_connect(ctx), 0);
    assert_int_equal(mu_ctx_poll_wait(ctx, 0), 1);      /* the bell */
    assert_true(mu_mem_attached(ctx));
    assert_int_equal(mu_ctx_poll_wait(ctx, 0), 0);
    /* The bell stays watched while a client is attached: a second client
     * cannot ring it. */
    assert_int_equal(mu_mem_connect(ctx), -EBUSY);
    assert_int_equal(mu_ctx_poll_wait(ctx, 0), 0);

    vfu_hdr_init(&h, 1, VFU_CMD_VERSION, sizeof(msg), VFU_F_TYPE_COMMAND, 0);
    memcpy(msg, &h, sizeof(h));
    memcpy(msg + sizeof(h), &v, sizeof(v));
    memcpy(msg + sizeof(h) + sizeof(v), json, sizeof(json));
    assert_int_equal(mu_mem_send(ctx, msg, sizeof(msg), NULL, 0), 0);
    /* A wait that may block returns as soon as the work is done. */
    assert_int_equal(mu_ctx_poll_wait(ctx, -1), 1);
    assert_true(mu_ctx_client_ready(ctx));
    assert_true(mu_mem_recv(ctx, reply, sizeof(reply), NULL, 0, &nfds) >
                (ssize_t)VFU_HDR_SIZE);
    assert_int_equal(mu_ctx_poll_wait(ctx, 0), 0);

    mu_mem_hang_up(ctx);
    assert_int_equal(mu_ctx_poll_wait(ctx, 0), 1);      /* EOF: detach */
    assert_false(mu_mem_attached(ctx));
    assert_int_equal(mu_ctx_poll_wait(ctx, 0), 0);
    /* After a stop request it fails the way mu_ctx_poll() does. */
    mu_ctx_stop(ctx);
    assert_int_equal(mu_ctx_poll_wait(ctx, 0), -ESHUTDOWN);
    mu_ctx_destroy(ctx);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_raw_version_and_region_read),
        cmocka_unit_test(test_client_over_mem),
        cmocka_unit_test(test_async_dma_read),
        cmocka_unit_test(test_poll_wait_counts_events),
        cmocka_unit_test(test_next_client_starts_clean),
        cmocka_unit_test(test_reads_stop_after_fds),
        cmocka_unit_test(test_writes_interleaved_with_reads),
        cmocka_unit_test(test_attach_without_bell),
        cmocka_unit_test(test_timer_only_while_needed),
        cmocka_unit_test(test_stop_and_done_share_wake_fd),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
