/*
 * The client library keeps its deadlines and its fd table whatever a
 * hostile server sends.  The server is a thread of the test with a raw
 * socket (one end of a socketpair); the client under test is the other
 * end (muc__from_fd, no negotiation).
 *
 *  - a flood of DMA_READ requests, each served at once: the call still
 *    ends, with -ETIMEDOUT;
 *  - the reply trickled a byte at a time, never whole: -ETIMEDOUT;
 *  - no reply at all: -ETIMEDOUT;
 *  - a big message a byte per sendmsg with 8 fds on each byte: -EPROTO,
 *    and the process never holds more than the per-message limit plus a
 *    constant of those fds.
 *
 * Assertions are one-sided: the call returns (an alarm far past the
 * timeout kills a test that hangs) with the right error; no duration is
 * asserted.
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
#include <sys/socket.h>
#include <unistd.h>

#include "muser-client.h"
#include "unit_util.h"
#include "wire.h"

extern int muc__from_fd(muc_t **out, int fd, const struct muc_opts *opts,
                        bool negotiate);

#define TIMEOUT_MS 200
#define WATCHDOG_S 120      /* a hang fails the test, long after any timeout */
#define FLOOD_FDS 8u

enum attack { FLOOD_REQUESTS, TRICKLE_REPLY, NO_REPLY, FD_FLOOD };

struct hostile {
    int sock;
    enum attack what;
    bool stop;              /* atomic */
    bool primed;            /* atomic: the trickle's first byte is sent */
    unsigned long sent;     /* messages or pieces sent */
    int base_fds;           /* process fds before the attack */
    int peak_fds;           /* most seen while it ran (FD_FLOOD) */
    pthread_t th;
};

/* Throw away whatever the client sends (its request, its DMA replies). */
static void drain(int fd)
{
    char buf[4096];

    while (recv(fd, buf, sizeof(buf), MSG_DONTWAIT) > 0)
        ;
}

static bool stopped(struct hostile *h)
{
    return __atomic_load_n(&h->stop, __ATOMIC_ACQUIRE);
}

static void flood_requests(struct hostile *h)
{
    struct {
        struct vfu_hdr h;
        struct vfu_dma_access a;
    } req;
    uint16_t id = 0x8000;

    while (!stopped(h)) {
        /* Keep the client's socket full: it always has one to serve. */
        for (;;) {
            vfu_hdr_init(&req.h, id++, VFU_CMD_DMA_READ, sizeof(req),
                         VFU_F_TYPE_COMMAND, 0);
            req.a = (struct vfu_dma_access){ .addr = 0x1000, .count = 8 };
            if (send(h->sock, &req, sizeof(req),
                     MSG_DONTWAIT | MSG_NOSIGNAL) != sizeof(req))
                break;
            h->sent++;
        }
        drain(h->sock);
    }
}

/* A reply header announcing 64 KiB, then its bytes, one at a time. */
static void trickle(struct hostile *h, bool with_fds)
{
    union {
        char buf[CMSG_SPACE(FLOOD_FDS * sizeof(int))];
        struct cmsghdr align;
    } ctl;
    int fds[FLOOD_FDS];
    struct vfu_hdr hdr;
    uint8_t *p = (uint8_t *)&hdr;
    struct pollfd pfd = { .fd = h->sock, .events = POLLIN };

    for (unsigned i = 0; i < FLOOD_FDS; i++) {
        fds[i] = eventfd(0, EFD_CLOEXEC);
        assert_true(fds[i] >= 0);
    }
    /* The reply to the client's request (msg_id 1 on a fresh client).
     * Its first byte goes before the client's call starts (attack waits
     * for it), so that however late this thread runs, the client's
     * deadline passes while it holds part of a message; the rest after
     * the request. */
    vfu_hdr_init(&hdr, 1, VFU_CMD_REGION_READ, 64 * 1024, VFU_F_TYPE_REPLY, 0);
    for (size_t i = 0; !stopped(h); i++) {     /* byte i, once sent */
        uint8_t b = i < sizeof(hdr) ? p[i] : 0;
        struct iovec iov = { &b, 1 };
        struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
        struct pollfd out = { .fd = h->sock, .events = POLLOUT };
        int n;

        if (with_fds) {
            struct cmsghdr *cm;

            memset(&ctl, 0, sizeof(ctl));
            mh.msg_control = ctl.buf;
            mh.msg_controllen = CMSG_SPACE(sizeof(fds));
            cm = CMSG_FIRSTHDR(&mh);
            cm->cmsg_level = SOL_SOCKET;
            cm->cmsg_type = SCM_RIGHTS;
            cm->cmsg_len = CMSG_LEN(sizeof(fds));
            memcpy(CMSG_DATA(cm), fds, sizeof(fds));
        }
        if (poll(&out, 1, 100) <= 0) {
            i--;            /* not sent: byte i again */
            continue;
        }
        if (sendmsg(h->sock, &mh, MSG_DONTWAIT | MSG_NOSIGNAL) != 1)
            break;          /* the client hung up or its queue is full */
        h->sent++;
        if (with_fds) {
            n = count_fds();
            if (n > h->peak_fds)
                h->peak_fds = n;
        }
        if (i == 0) {
            __atomic_store_n(&h->primed, true, __ATOMIC_RELEASE);
            poll(&pfd, 1, 10000);
            drain(h->sock);
        }
        if (i >= 64 * 1024 - 1)
            break;          /* never send the whole message */
    }
    for (unsigned i = 0; i < FLOOD_FDS; i++)
        close(fds[i]);
}

static void *hostile_main(void *arg)
{
    struct hostile *h = arg;

    switch (h->what) {
    case FLOOD_REQUESTS:
        flood_requests(h);
        break;
    case TRICKLE_REPLY:
        trickle(h, false);
        break;
    case FD_FLOOD:
        trickle(h, true);
        break;
    case NO_REPLY:
        while (!stopped(h)) {
            struct pollfd pfd = { .fd = h->sock, .events = POLLIN };

            poll(&pfd, 1, 50);
            drain(h->sock);
        }
        break;
    }
    return NULL;
}

/* Run one attack against one muc_region_read; its result. */
static int attack(enum attack what, struct hostile *h, uint32_t max_fds)
{
    struct muc_opts o = { .timeout_ms = TIMEOUT_MS, .max_msg_fds = max_fds };
    uint32_t v;
    muc_t *c;
    int sv[2], rc;

    memset(h, 0, sizeof(*h));
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    assert_int_equal(muc__from_fd(&c, sv[0], &o, false), 0);
    h->sock = sv[1];
    h->what = what;
    h->base_fds = h->peak_fds = count_fds();
    assert_int_equal(pthread_create(&h->th, NULL, hostile_main, h), 0);
    alarm(WATCHDOG_S);
    if (what == TRICKLE_REPLY || what == FD_FLOOD) {
        while (!__atomic_load_n(&h->primed, __ATOMIC_ACQUIRE))
            poll(NULL, 0, 1);   /* the watchdog ends a hang */
    }
    rc = muc_region_read(c, 0, 0, &v, sizeof(v));
    alarm(0);
    __atomic_store_n(&h->stop, true, __ATOMIC_RELEASE);
    pthread_join(h->th, NULL);
    muc_close(c);
    close(h->sock);
    return rc;
}

static void test_request_flood(void **state)
{
    struct hostile h;
    int base = count_fds();

    (void)state;
    assert_int_equal(attack(FLOOD_REQUESTS, &h, 0), -ETIMEDOUT);
    assert_true(h.sent > 0);
    assert_int_equal(count_fds(), base);
}

static void test_trickled_reply(void **state)
{
    struct hostile h;
    int base = count_fds();

    (void)state;
    assert_int_equal(attack(TRICKLE_REPLY, &h, 0), -ETIMEDOUT);
    assert_true(h.sent > 0);
    assert_int_equal(count_fds(), base);
}

static void test_no_reply(void **state)
{
    struct hostile h;

    (void)state;
    assert_int_equal(attack(NO_REPLY, &h, 0), -ETIMEDOUT);
}

static void test_fd_flood(void **state)
{
    const uint32_t limit = 8;   /* the client's default per-message limit */
    struct hostile h;
    int base = count_fds();

    (void)state;
    assert_int_equal(attack(FD_FLOOD, &h, limit), -EPROTO);
    /* Beyond the flood's own 8 and the pair: the limit and one batch. */
    printf("fd flood: %lu pieces sent, fds %d before, peak %d\n", h.sent,
           h.base_fds, h.peak_fds);
    assert_true(h.peak_fds <= h.base_fds + (int)FLOOD_FDS + (int)limit +
                                  (int)FLOOD_FDS + 2);
    assert_int_equal(count_fds(), base);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_request_flood),
        cmocka_unit_test(test_trickled_reply),
        cmocka_unit_test(test_no_reply),
        cmocka_unit_test(test_fd_flood),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
