/*
 * Unit tests of the context's timeouts on a fake clock (lib/clock.h).
 *
 * A realized context serves one end of a socketpair (mu_ctx_attach_fd);
 * the test is the client on the other end and drives the context itself
 * with mu_ctx_poll(), so it is also the context thread.  The context runs
 * on a clock the test sets: the decisions (has a partial message been
 * arriving for longer than MU_LIMIT_RECV_TIMEOUT_MS, has the context
 * thread's DMA request waited long enough for a reply) are checked at exact times, with
 * no sleep.  What is real is only the housekeeping timer's tick, and the
 * tests wait for it as an event.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "private.h"
#include "unit_ctx.h"
#include "unit_util.h"
#include "wire_util.h"
#include "../slow.h"

#define MS 1000000ull
#define TMO_MS 40u              /* receive timeout: the timer ticks each 10 ms */
#define IOVA 0x10000ull

static mu_ctx_t *ctx;
static int peer = -1;           /* the client's end */
static char dir[64];
static int base_fds;
static unsigned nr_unexpected;  /* "dropping late reply" lines */
static bool dropped_slow;       /* the receive timeout's line */

/* ---------------- the fake clock ---------------- */

static uint64_t fake_ns;
static uint64_t fake_step;      /* added after every read, 0: still */

static uint64_t fake_clock(void *arg)
{
    uint64_t t = fake_ns;

    (void)arg;
    fake_ns += fake_step;
    return t;
}

/* ---------------- fixture ---------------- */

static void log_cb(mu_ctx_t *c, enum mu_log_level level, const char *msg)
{
    (void)c;
    (void)level;
    if (strstr(msg, "dropping late reply") != NULL)
        nr_unexpected++;
    if (strstr(msg, "message not completed within the receive timeout"))
        dropped_slow = true;
}

static int setup(void **state)
{

    (void)state;
    base_fds = count_fds();
    nr_unexpected = 0;
    dropped_slow = false;
    fake_ns = 1000 * MS;
    fake_step = 0;
    unit_ctx_create(&ctx, dir, sizeof(dir));
    assert_int_equal(mu_ctx_set_log(ctx, log_cb, MU_LOG_DEBUG), 0);
    mu_ctx_set_clock(ctx, fake_clock, NULL);
    assert_int_equal(mu_ctx_set_limit(ctx, MU_LIMIT_RECV_TIMEOUT_MS, TMO_MS),
                     0);
    peer = unit_ctx_attach(ctx);
    assert_int_equal(mu_ctx_poll(ctx), 0);      /* the context thread: us */
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    unit_ctx_destroy(&ctx, &peer, dir, base_fds);
    return 0;
}

/* ---------------- helpers ---------------- */

static int wait_ms(int ms)
{
    return ms * mu_test_slow_factor();
}

static void send_all(const void *p, size_t len)
{
    assert_int_equal(send(peer, p, len, MSG_NOSIGNAL), (ssize_t)len);
}

/* A whole message from the server if one is there: its size, else 0. */
static ssize_t try_recv_msg(void *buf, size_t cap)
{
    struct vfu_hdr h;
    int avail = 0;

    if (ioctl(peer, FIONREAD, &avail) < 0 || avail < (int)sizeof(h))
        return 0;
    assert_int_equal(recv(peer, &h, sizeof(h), MSG_PEEK), sizeof(h));
    assert_true(h.size >= sizeof(h) && h.size <= cap);
    if (avail < (int)h.size)
        return 0;
    return recv(peer, buf, h.size, 0);
}

/* Serve the client (the context is ours) until a message comes back. */
static ssize_t pump_msg(void *buf, size_t cap)
{
    for (int i = 0; i < 1000; i++) {
        struct pollfd p = { .fd = mu_ctx_fd(ctx), .events = POLLIN };
        ssize_t n = try_recv_msg(buf, cap);

        if (n != 0)
            return n;
        poll(&p, 1, wait_ms(10));
        assert_int_equal(mu_ctx_poll(ctx), 0);
    }
    return try_recv_msg(buf, cap);
}

/* Serve what the client sent until cond holds (the context is ours). */
static void serve_until(bool (*cond)(void))
{
    for (int i = 0; i < 1000 && !cond(); i++) {
        struct pollfd p = { .fd = mu_ctx_fd(ctx), .events = POLLIN };

        poll(&p, 1, wait_ms(10));
        assert_int_equal(mu_ctx_poll(ctx), 0);
    }
    assert_true(cond());
}

/* Wait for the housekeeping timer's next (real) tick and handle it. */
static void tick(void)
{
    struct pollfd p = { .fd = ctx->timer_fd, .events = POLLIN };

    assert_int_equal(poll(&p, 1, wait_ms(5000)), 1);
    assert_int_equal(mu_ctx_poll(ctx), 0);
}

static bool attached(void)
{
    return mu_conn_attached(ctx);
}

static bool detached(void)
{
    return !mu_conn_attached(ctx);
}

static bool partial(void)
{
    return ctx->tran->partial_since(ctx) != 0;
}

static bool negotiated(void)
{
    return mu_conn_ready(ctx);
}

/* ---------------- the receive timeout ---------------- */

/*
 * Half a message: its age starts when its first byte arrives, more bytes
 * do not make it younger, and at the first tick after it is older than
 * the receive timeout (exactly the timeout is not older) the client is
 * dropped, with a log line saying why.
 */
static void test_partial_message_timeout(void **state)
{
    uint8_t msg[VFU_HDR_SIZE + 8] = { 0 };
    struct vfu_hdr h;
    char c;

    (void)state;
    vfu_hdr_init(&h, 1, VFU_CMD_VERSION, sizeof(msg), 0, 0);
    memcpy(msg, &h, sizeof(h));
    send_all(msg, 8);
    serve_until(partial);
    assert_int_equal(ctx->tran->partial_since(ctx), 1000 * MS);

    fake_ns += 30 * MS;
    send_all(msg + 8, 8);               /* the header whole, no body yet */
    tick();
    assert_true(attached());
    assert_int_equal(ctx->tran->partial_since(ctx), 1000 * MS);

    fake_ns += 10 * MS;                 /* exactly the timeout */
    tick();
    assert_true(attached());
    assert_false(dropped_slow);

    fake_ns += 1;
    tick();
    assert_false(attached());
    assert_true(dropped_slow);
    assert_int_equal(recv(peer, &c, 1, 0), 0);      /* hung up, no reply */
}

/*
 * Time on the fake clock alone drops nobody: a client that is idle
 * between whole messages has no message arriving, however long it waits.
 */
static void test_idle_client_kept(void **state)
{
    uint8_t reply[512];
    ssize_t n;

    (void)state;
    send_all(doc_version_req, sizeof(doc_version_req));
    n = pump_msg(reply, sizeof(reply));
    assert_true(n > (ssize_t)VFU_HDR_SIZE);
    assert_true(negotiated());
    assert_false(partial());
    /* Nothing to watch: no timer at all, so nothing to drop it. */
    assert_int_equal(ctx->timer_fd, -1);
    fake_ns += 1000 * TMO_MS * MS;
    /* A message begun now is young, however long the client idled:
     * ticks come again (it needs the timer) and keep it. */
    send_all(doc_version_req, 8);
    serve_until(partial);
    assert_true(ctx->timer_fd >= 0);
    tick();
    tick();
    assert_true(attached());
    assert_false(dropped_slow);
}

/*
 * What an idle negotiated client costs the server in fds: its connection,
 * and beyond it the epoll fd and the listening socket, nothing else (a
 * reactor serves a thousand such contexts: bench/scale.c).  Before the
 * client the context kept its timer instead of the connection.  The
 * fixture's socketpair is both ends of the connection.
 */
static void test_idle_context_fds(void **state)
{
    uint8_t reply[512];

    (void)state;
    send_all(doc_version_req, sizeof(doc_version_req));
    assert_true(pump_msg(reply, sizeof(reply)) > (ssize_t)VFU_HDR_SIZE);
    assert_true(negotiated());
    assert_int_equal(count_fds(), base_fds + 2 + 2);
    assert_true(ctx->epfd >= 0);
    assert_int_equal(ctx->timer_fd, -1);
    assert_int_equal(ctx->wake_fd, -1);
    /* The client goes: its connection closes, the timer comes back. */
    close(peer);
    peer = -1;
    serve_until(detached);
    assert_int_equal(count_fds(), base_fds + 3);
    assert_true(ctx->timer_fd >= 0);
}

/* ---------------- the context thread's DMA requests ---------------- */

static int req_status = 1;
static unsigned req_done;

static void req_cb(mu_ctx_t *c, void *arg, int status)
{
    (void)c;
    (void)arg;
    req_status = status;
    req_done++;
}

static bool unexpected_seen(void)
{
    return nr_unexpected >= 50;
}

/*
 * The device DMA-reads on the context thread (a request: the thread goes
 * on serving), and the client answers with replies to nothing.  They are
 * dropped, one message each, and the request waits on.  It ends with
 * -ETIMEDOUT at the first tick after its reply is older than the receive
 * timeout (exactly the timeout is not older), once; the real reply coming
 * after that is dropped too, and the client is served on, in order.
 */
static void test_request_deadline(void **state)
{
    enum { NBOGUS = 50 };
    const size_t msz = VFU_HDR_SIZE + sizeof(struct vfu_dma_access) + 8;
    struct vfu_dma_map m = { .argsz = sizeof(m),
                             .flags = VFU_DMA_FLAG_READ | VFU_DMA_FLAG_WRITE,
                             .addr = IOVA, .size = 4096 };
    struct vfu_dma_access a = { .addr = IOVA, .count = 8 };
    uint8_t buf[VFU_HDR_SIZE + sizeof(m)], reply[512], *bogus, data[8];
    struct vfu_hdr h, req;
    ssize_t n;

    (void)state;
    send_all(doc_version_req, sizeof(doc_version_req));
    assert_true(pump_msg(reply, sizeof(reply)) > (ssize_t)VFU_HDR_SIZE);
    assert_true(negotiated());
    /* Memory without an fd: the device reaches it by messages. */
    vfu_hdr_init(&h, 2, VFU_CMD_DMA_MAP, sizeof(buf), 0, 0);
    memcpy(buf, &h, sizeof(h));
    memcpy(buf + sizeof(h), &m, sizeof(m));
    send_all(buf, sizeof(buf));
    n = pump_msg(reply, sizeof(reply));
    assert_true(n >= (ssize_t)VFU_HDR_SIZE);
    memcpy(&h, reply, sizeof(h));
    assert_int_equal(h.msg_id, 2);
    assert_int_equal(h.flags, VFU_F_TYPE_REPLY);

    req_done = 0;
    assert_int_equal(mu_dma_read(ctx, IOVA, data, sizeof(data)), -EDEADLK);
    assert_int_equal(ctx->timer_fd, -1);        /* nothing to watch yet */
    assert_int_equal(mu_dma_read_async(ctx, IOVA, data, sizeof(data), req_cb,
                                       NULL), 0);
    assert_true(ctx->timer_fd >= 0);            /* the reply's deadline */
    n = try_recv_msg(reply, sizeof(reply));
    assert_int_equal(n, VFU_HDR_SIZE + sizeof(a));
    memcpy(&req, reply, sizeof(req));
    assert_int_equal(req.cmd, VFU_CMD_DMA_READ);

    bogus = calloc(NBOGUS, msz);
    assert_non_null(bogus);
    vfu_hdr_init(&h, (uint16_t)(req.msg_id + 1), VFU_CMD_DMA_READ,
                 (uint32_t)msz, VFU_F_TYPE_REPLY, 0);
    for (unsigned i = 0; i < NBOGUS; i++) {
        memcpy(bogus + i * msz, &h, sizeof(h));
        memcpy(bogus + i * msz + sizeof(h), &a, sizeof(a));
    }
    send_all(bogus, NBOGUS * msz);
    free(bogus);
    serve_until(unexpected_seen);
    assert_int_equal(nr_unexpected, NBOGUS);
    assert_int_equal(req_done, 0);

    fake_ns += TMO_MS * MS;             /* exactly the timeout */
    tick();
    assert_int_equal(req_done, 0);
    fake_ns += 1 * MS;
    tick();
    assert_int_equal(req_done, 1);
    assert_int_equal(req_status, -ETIMEDOUT);
    assert_int_equal(ctx->timer_fd, -1);        /* nothing left to watch */

    /* The real reply, late, then a command: the reply is dropped, the
     * command answered. */
    vfu_hdr_init(&h, req.msg_id, VFU_CMD_DMA_READ, (uint32_t)msz,
                 VFU_F_TYPE_REPLY, 0);
    memcpy(buf, &h, sizeof(h));
    memcpy(buf + sizeof(h), &a, sizeof(a));
    memset(buf + sizeof(h) + sizeof(a), 0x5a, 8);
    send_all(buf, msz);
    vfu_hdr_init(&h, 3, VFU_CMD_DEVICE_GET_INFO,
                 VFU_HDR_SIZE + sizeof(struct vfu_device_info), 0, 0);
    memcpy(buf, &h, sizeof(h));
    memset(buf + sizeof(h), 0, sizeof(struct vfu_device_info));
    buf[sizeof(h)] = sizeof(struct vfu_device_info);    /* argsz */
    send_all(buf, sizeof(h) + sizeof(struct vfu_device_info));
    n = pump_msg(reply, sizeof(reply));
    assert_true(n > 0);
    memcpy(&h, reply, sizeof(h));
    assert_int_equal(h.msg_id, 3);
    assert_int_equal(h.flags, VFU_F_TYPE_REPLY);
    assert_int_equal(nr_unexpected, NBOGUS + 1);
    assert_int_equal(req_done, 1);
    assert_true(attached());
}

#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_partial_message_timeout),
        T(test_idle_client_kept),
        T(test_idle_context_fds),
        T(test_request_deadline),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
