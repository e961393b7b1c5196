/*
 * Unit tests of the event loop's request path (lib/ctx.c, lib/dispatch.c):
 * the reads it makes on its own while a client sends ahead of its
 * replies, and busy polling (MU_LIMIT_BUSY_POLL_US).
 *
 * A realized context serves one end of a socketpair (mu_ctx_attach_fd);
 * the test is the client on the other end and the context thread too.
 * Where the client must send while the context thread is in a given
 * place (spinning, asleep), a helper thread sends once the loop's
 * counters (ctx->busy) say it is there: an event, not a delay.  The
 * busy-poll time is the largest there is (10 s), far longer than any
 * wait here, so "did not sleep" holds by construction.
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
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "private.h"
#include "unit_ctx.h"
#include "unit_util.h"
#include "wire_util.h"
#include "../slow.h"

#define MSG_BYTES (VFU_HDR_SIZE + sizeof(struct vfu_region_access))

static mu_ctx_t *ctx;
static int peer = -1;           /* the client's end (non-blocking) */
static char dir[64];
static int base_fds;
static uint16_t next_id;

static ssize_t bar0(mu_ctx_t *c, void *buf, size_t count, uint64_t offset,
                    bool is_write)
{
    (void)c;
    if (!is_write)
        memset(buf, (int)offset, count);
    return (ssize_t)count;
}

static int wait_ms(int ms)
{
    return ms * mu_test_slow_factor();
}

static uint64_t counter(const uint64_t *c)
{
    return __atomic_load_n(c, __ATOMIC_RELAXED);
}

/* ---------------- the client's side ---------------- */

/* A 4-byte REGION_READ of BAR0 at offset id, as bytes. */
static void build_read(uint8_t *buf, uint16_t id)
{
    struct vfu_region_access a = { .offset = id, .region = 0, .count = 4 };
    struct vfu_hdr h;

    vfu_hdr_init(&h, id, VFU_CMD_REGION_READ, MSG_BYTES, 0, 0);
    memcpy(buf, &h, sizeof(h));
    memcpy(buf + sizeof(h), &a, sizeof(a));
}

/* One sendmsg of len bytes, with an fd attached when with_fd: the kernel
 * ends a read after such a write, so it takes a read of its own. */
static void send_bytes(const void *buf, size_t len, bool with_fd)
{
    union {
        char b[CMSG_SPACE(sizeof(int))];
        struct cmsghdr align;
    } ctl;
    struct iovec iov = { .iov_base = (void *)buf, .iov_len = len };
    struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
    int fd = -1;

    if (with_fd) {
        struct cmsghdr *cm;

        fd = eventfd(0, EFD_CLOEXEC);
        assert_true(fd >= 0);
        memset(&ctl, 0, sizeof(ctl));
        mh.msg_control = ctl.b;
        mh.msg_controllen = sizeof(ctl.b);
        cm = CMSG_FIRSTHDR(&mh);
        cm->cmsg_level = SOL_SOCKET;
        cm->cmsg_type = SCM_RIGHTS;
        cm->cmsg_len = CMSG_LEN(sizeof(int));
        memcpy(CMSG_DATA(cm), &fd, sizeof(fd));
    }
    assert_int_equal(sendmsg(peer, &mh, MSG_NOSIGNAL), (ssize_t)len);
    if (fd >= 0)
        close(fd);
}

/* n REGION_READs in one write (ids from next_id on). */
static void send_reads(unsigned n, bool with_fd)
{
    uint8_t buf[8 * MSG_BYTES];

    assert_true(n >= 1 && n <= 8);
    for (unsigned i = 0; i < n; i++)
        build_read(buf + i * MSG_BYTES, next_id++);
    send_bytes(buf, n * MSG_BYTES, with_fd);
}

/* The next whole reply if one is there (its id and size), else false. */
static bool take_reply(uint16_t *id)
{
    uint8_t buf[512];
    struct vfu_hdr h;
    int avail = 0;

    if (ioctl(peer, FIONREAD, &avail) < 0 || avail < (int)sizeof(h))
        return false;
    assert_int_equal(recv(peer, &h, sizeof(h), MSG_PEEK), sizeof(h));
    assert_true(h.size >= sizeof(h) && h.size <= sizeof(buf));
    if (avail < (int)h.size)
        return false;
    assert_int_equal(recv(peer, buf, h.size, 0), (ssize_t)h.size);
    assert_true(h.flags & VFU_F_TYPE_REPLY);
    *id = h.msg_id;
    return true;
}

/* Take every reply that is there, checking they come in order. */
static unsigned take_replies(uint16_t *expect)
{
    unsigned n = 0;
    uint16_t id;

    while (take_reply(&id)) {
        assert_int_equal(id, *expect);
        (*expect)++;
        n++;
    }
    return n;
}

static bool ctx_fd_readable(void)
{
    struct pollfd p = { .fd = mu_ctx_fd(ctx), .events = POLLIN };

    return poll(&p, 1, 0) == 1;
}

/* ---------------- fixture ---------------- */

static int setup(void **state)
{
    uint8_t reply[512];

    (void)state;
    base_fds = count_fds();
    next_id = 100;
    unit_ctx_create(&ctx, dir, sizeof(dir));
    assert_int_equal(mu_region_setup(ctx, MU_PCI_BAR0, 4096,
                                     MU_REGION_RW | MU_REGION_MEM, bar0), 0);
    peer = unit_ctx_attach(ctx);
    /* Negotiate: the loop serves VERSION, the reply comes back. */
    assert_int_equal(send(peer, doc_version_req, sizeof(doc_version_req),
                          MSG_NOSIGNAL), (ssize_t)sizeof(doc_version_req));
    for (int i = 0; i < 100 && !mu_conn_ready(ctx); i++)
        assert_true(mu_ctx_poll_wait(ctx, wait_ms(1000)) >= 0);
    assert_true(mu_conn_ready(ctx));
    assert_true(recv(peer, reply, sizeof(reply), 0) > (ssize_t)VFU_HDR_SIZE);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    unit_ctx_destroy(&ctx, &peer, dir, base_fds);
    return 0;
}

/* ---------------- reading on while the client sends ahead ---------------- */

/*
 * Two requests in one write, a third in a write of its own (its fd ends
 * the kernel's read before it): the first read brings two messages, so
 * the client does not wait for replies, and the context reads again in
 * the same round rather than leaving the third for another epoll_wait.
 * One mu_ctx_poll() answers all three, and nothing is left unread.
 */
static void test_reads_on_while_client_sends_ahead(void **state)
{
    uint16_t expect = next_id;

    (void)state;
    send_reads(2, true);
    send_reads(1, true);
    assert_int_equal(mu_ctx_poll(ctx), 0);
    assert_int_equal(take_replies(&expect), 3);
    assert_false(ctx_fd_readable());
    assert_true(mu_conn_ready(ctx));
}

/*
 * A client that waits for each reply gets one read a request: the round
 * that served it does not guess at a next one.  (A guess would find the
 * second request below, sent before the round, and answer it too.)
 */
static void test_one_message_one_read(void **state)
{
    uint16_t expect = next_id;

    (void)state;
    send_reads(1, true);
    send_reads(1, true);
    assert_int_equal(mu_ctx_poll(ctx), 0);
    assert_int_equal(take_replies(&expect), 1);
    /* The second one is still in the socket, and the fd says so. */
    assert_true(ctx_fd_readable());
    assert_int_equal(mu_ctx_poll(ctx), 0);
    assert_int_equal(take_replies(&expect), 1);
    assert_false(ctx_fd_readable());
}

/*
 * The reads on are bounded: a client that keeps the socket full leaves
 * the round after a few, with the rest still in the socket and
 * mu_ctx_fd() readable (level-triggered: an outer loop comes back), and
 * every request is answered, in order, in later rounds.
 */
static void test_reads_on_are_bounded(void **state)
{
    enum { NLATER = 40 };
    uint16_t expect = next_id;
    unsigned got;

    (void)state;
    send_reads(2, true);
    for (unsigned i = 0; i < NLATER; i++)
        send_reads(1, true);
    assert_int_equal(mu_ctx_poll(ctx), 0);
    got = take_replies(&expect);
    assert_true(got > 2);
    assert_true(got < 2 + NLATER);
    assert_true(ctx_fd_readable());
    for (int i = 0; i < 2 + NLATER && got < 2 + NLATER; i++) {
        assert_int_equal(mu_ctx_poll(ctx), 0);
        got += take_replies(&expect);
    }
    assert_int_equal(got, 2 + NLATER);
    assert_false(ctx_fd_readable());
}

/* ---------------- busy polling ---------------- */

/* A helper thread: once *watch has passed its value at the start, do
 * the action (send a request, or stop the context). */
struct helper {
    pthread_t th;
    const uint64_t *watch;
    uint64_t from;
    enum { SEND_READ, STOP } action;
    bool seen;
};

static void *helper_main(void *arg)
{
    struct helper *h = arg;
    struct timespec ts = { 0, 100000 };
    long rounds = 100000L * mu_test_slow_factor();  /* >= 10 s */

    for (long i = 0; i < rounds && counter(h->watch) == h->from; i++)
        nanosleep(&ts, NULL);       /* waiting for the event, bounded */
    h->seen = counter(h->watch) != h->from;
    if (h->action == STOP)
        mu_ctx_stop(ctx);
    else
        send_reads(1, false);
    return NULL;
}

static void helper_start(struct helper *h, const uint64_t *watch, int action)
{
    h->watch = watch;
    h->from = counter(watch);
    h->action = action;
    h->seen = false;
    assert_int_equal(pthread_create(&h->th, NULL, helper_main, h), 0);
}

static void helper_join(struct helper *h)
{
    assert_int_equal(pthread_join(h->th, NULL), 0);
    assert_true(h->seen);
}

static void set_spin(uint64_t us)
{
    assert_int_equal(mu_ctx_set_limit(ctx, MU_LIMIT_BUSY_POLL_US, us), 0);
    assert_int_equal(mu_ctx_get_limit(ctx, MU_LIMIT_BUSY_POLL_US), us);
}

/*
 * Off by default: the loop sleeps in epoll_wait and the request that
 * comes while it sleeps wakes it; it never spins.
 */
static void test_no_spin_by_default(void **state)
{
    uint16_t expect = next_id;
    struct helper h;
    unsigned got = 0;

    (void)state;
    assert_int_equal(mu_ctx_get_limit(ctx, MU_LIMIT_BUSY_POLL_US), 0);
    helper_start(&h, &ctx->busy.sleeps, SEND_READ);
    for (int i = 0; i < 100 && got == 0; i++) {
        assert_true(mu_ctx_poll_wait(ctx, wait_ms(10000)) >= 0);
        got = take_replies(&expect);
    }
    helper_join(&h);
    assert_int_equal(got, 1);
    assert_int_equal(counter(&ctx->busy.spins), 0);
}

/*
 * Spinning: the request that comes while the context thread spins is
 * read by the spin and answered without the thread ever sleeping.  (The
 * timer may tick meanwhile: it is served from the spin too.)
 */
static void test_spin_serves_without_sleeping(void **state)
{
    uint16_t expect = next_id;
    uint64_t sleeps, work;
    struct helper h;
    unsigned got = 0;

    (void)state;
    set_spin(MU_BUSY_POLL_MAX_US);
    sleeps = counter(&ctx->busy.sleeps);
    work = counter(&ctx->busy.spin_work);
    helper_start(&h, &ctx->busy.spins, SEND_READ);
    for (int i = 0; i < 1000 && got == 0; i++) {
        assert_true(mu_ctx_poll_wait(ctx, wait_ms(10000)) > 0);
        got = take_replies(&expect);
    }
    helper_join(&h);
    assert_int_equal(got, 1);
    assert_int_equal(counter(&ctx->busy.sleeps), sleeps);
    assert_true(counter(&ctx->busy.spin_work) > work);
    assert_int_equal(counter(&ctx->busy.spin_expired), 0);
    /* Back off: the next round sleeps again, and serves as before. */
    set_spin(0);
    send_reads(1, false);
    assert_int_equal(mu_ctx_poll_wait(ctx, wait_ms(10000)), 1);
    assert_int_equal(take_replies(&expect), 1);
}

/*
 * mu_ctx_stop() from another thread ends mu_ctx_run() while it spins:
 * it returns 0, without having slept and before its spin ran out.  A
 * later run serves again.
 */
static void test_spin_honours_stop(void **state)
{
    uint16_t expect = next_id;
    uint64_t sleeps;
    struct helper h;

    (void)state;
    set_spin(MU_BUSY_POLL_MAX_US);
    sleeps = counter(&ctx->busy.sleeps);
    helper_start(&h, &ctx->busy.spins, STOP);
    assert_int_equal(mu_ctx_run(ctx), 0);
    helper_join(&h);
    assert_int_equal(counter(&ctx->busy.sleeps), sleeps);
    assert_int_equal(counter(&ctx->busy.spin_expired), 0);
    send_reads(1, false);
    assert_int_equal(mu_ctx_poll_wait(ctx, wait_ms(10000)), 1);
    assert_int_equal(take_replies(&expect), 1);
}

/*
 * Timers fire while the thread spins: half a message, and the receive
 * timeout (on the housekeeping timer) drops the client, the thread never
 * having slept.
 */
static void test_spin_runs_timers(void **state)
{
    uint8_t half[MSG_BYTES];
    uint64_t sleeps;
    char c;

    (void)state;
    /* The shortest timeout (frozen at realize for the API, but this is the
     * context thread): the next tick drops the client. */
    ctx->limits[MU_LIMIT_RECV_TIMEOUT_MS] = 1;
    build_read(half, next_id++);
    send_bytes(half, 8, false);
    set_spin(MU_BUSY_POLL_MAX_US);
    sleeps = counter(&ctx->busy.sleeps);
    for (int i = 0; i < 100000 && mu_conn_attached(ctx); i++)
        assert_true(mu_ctx_poll_wait(ctx, wait_ms(10000)) > 0);
    assert_false(mu_conn_attached(ctx));
    assert_int_equal(counter(&ctx->busy.sleeps), sleeps);
    assert_int_equal(counter(&ctx->busy.spin_expired), 0);
    assert_int_equal(recv(peer, &c, 1, 0), 0);      /* hung up */
}

/*
 * mu_ctx_poll() never spins, whatever the limit says; mu_ctx_poll_wait()
 * spins no longer than its timeout (1 ms here, against 10 s of spin), and
 * then returns without sleeping.
 */
static void test_spin_bounded_by_caller(void **state)
{
    uint64_t t0, sleeps;
    int rc = 1;

    (void)state;
    set_spin(MU_BUSY_POLL_MAX_US);
    sleeps = counter(&ctx->busy.sleeps);
    assert_int_equal(mu_ctx_poll(ctx), 0);
    assert_int_equal(counter(&ctx->busy.spins), 0);
    assert_int_equal(counter(&ctx->busy.sleeps), sleeps);

    t0 = mu_now_ns();
    /* (A timer tick would be work: try again.) */
    for (int i = 0; i < 100 && rc != 0; i++)
        rc = mu_ctx_poll_wait(ctx, 1);
    assert_int_equal(rc, 0);
    assert_true(counter(&ctx->busy.spin_expired) >= 1);
    assert_true(counter(&ctx->busy.spins) >= 1);
    assert_int_equal(counter(&ctx->busy.sleeps), sleeps);
    /* Far less than the 10 s the limit would spin. */
    assert_true(mu_now_ns() - t0 < 5000000000ull);
}

int main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_reads_on_while_client_sends_ahead),
        T(test_one_message_one_read),
        T(test_reads_on_are_bounded),
        T(test_no_spin_by_default),
        T(test_spin_serves_without_sleeping),
        T(test_spin_honours_stop),
        T(test_spin_runs_timers),
        T(test_spin_bounded_by_caller),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
#undef T
}
