/*
 * Unit tests for lib/client.c: how the client checks replies and serves
 * server -> client requests, without a real server.
 *
 * Each test wraps one end of a socketpair as the client (muc__from_fd, an
 * internal constructor) and plays the server on the other end.  Nothing
 * runs in a thread: the client's msg_ids are predictable (1, 2, ...), so a
 * test writes the server's replies (and any DMA requests) first, makes the
 * call, and then reads back what the client sent.
 *
 * Every fixture counts the open fds before and after, so a leaked fd -
 * received from the "server" and neither handed out nor closed - fails the
 * test in teardown.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "muser-client.h"
#include "client_test.h"
#include "unit_util.h"
#include "wire.h"

extern int muc__from_fd(muc_t **out, int fd, const struct muc_opts *opts,
                        bool negotiate);

#define TIMEOUT_MS 300

struct fx {
    int nfd0;           /* fds open before the test */
    int cli, srv;       /* socketpair ends; cli goes to the client */
    muc_t *c;
    uint16_t id;        /* msg_id of the client's next request */
};

/* ---- helpers ---- */

static int setup_pair(void **state)
{
    struct fx *f = calloc(1, sizeof(*f));
    struct timeval tv = { .tv_sec = 2 };
    int sv[2];

    assert_non_null(f);
    f->nfd0 = count_fds();
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    f->cli = sv[0];
    f->srv = sv[1];
    /* A test that waits for a message that never comes fails, not hangs. */
    setsockopt(f->srv, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    f->id = 1;
    *state = f;
    return 0;
}

static int setup_raw(void **state)
{
    struct muc_opts o = { .timeout_ms = TIMEOUT_MS };
    struct fx *f;

    setup_pair(state);
    f = *state;
    assert_int_equal(muc__from_fd(&f->c, f->cli, &o, false), 0);
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;
    int n, before = f->nfd0;

    muc_close(f->c);
    close(f->srv);
    free(f);
    n = count_fds();
    if (n != before) {
        print_error("fd leak: %d open before, %d after\n", before, n);
        return -1;
    }
    return 0;
}

/* Write one message from the "server", with fds. */
static void srv_msg(struct fx *f, uint16_t id, uint16_t cmd, uint32_t flags,
                    uint32_t err, const void *p, size_t len, const int *fds,
                    unsigned nfds)
{
    union {
        char buf[CMSG_SPACE(16 * sizeof(int))];
        struct cmsghdr align;
    } ctl;
    struct vfu_hdr h;
    struct iovec iov[2] = { { &h, sizeof(h) }, { (void *)p, len } };
    struct msghdr mh = { .msg_iov = iov, .msg_iovlen = len ? 2 : 1 };

    vfu_hdr_init(&h, id, cmd, (uint32_t)(sizeof(h) + len), flags, err);
    if (nfds > 0) {
        struct cmsghdr *cm;

        memset(&ctl, 0, sizeof(ctl));
        mh.msg_control = ctl.buf;
        mh.msg_controllen = CMSG_SPACE(nfds * sizeof(int));
        cm = CMSG_FIRSTHDR(&mh);
        cm->cmsg_level = SOL_SOCKET;
        cm->cmsg_type = SCM_RIGHTS;
        cm->cmsg_len = CMSG_LEN(nfds * sizeof(int));
        memcpy(CMSG_DATA(cm), fds, nfds * sizeof(int));
    }
    assert_int_equal(sendmsg(f->srv, &mh, MSG_NOSIGNAL), sizeof(h) + len);
}

/* The reply to the client's next request. */
static void srv_reply(struct fx *f, uint16_t cmd, const void *p, size_t len)
{
    srv_msg(f, f->id++, cmd, VFU_F_TYPE_REPLY, 0, p, len, NULL, 0);
}

static void srv_reply_fds(struct fx *f, uint16_t cmd, const void *p,
                          size_t len, const int *fds, unsigned nfds)
{
    srv_msg(f, f->id++, cmd, VFU_F_TYPE_REPLY, 0, p, len, fds, nfds);
}

static void srv_error(struct fx *f, uint16_t cmd, uint32_t err)
{
    srv_msg(f, f->id++, cmd, VFU_F_TYPE_REPLY | VFU_F_ERROR, err, NULL, 0,
            NULL, 0);
}

static void srv_raw(struct fx *f, const void *p, size_t len)
{
    assert_int_equal(send(f->srv, p, len, MSG_NOSIGNAL), (ssize_t)len);
}

/*
 * Read one message the client sent: header into *h, body into body/cap
 * (returns its length); received fds are counted in *nfds and closed.
 */
static size_t srv_read(struct fx *f, struct vfu_hdr *h, void *body, size_t cap,
                       unsigned *nfds)
{
    union {
        char buf[CMSG_SPACE(64 * sizeof(int))];
        struct cmsghdr align;
    } ctl;
    struct iovec iov = { h, sizeof(*h) };
    struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1,
                         .msg_control = ctl.buf,
                         .msg_controllen = sizeof(ctl.buf) };
    struct cmsghdr *cm;
    unsigned n = 0;
    size_t len;

    assert_int_equal(recvmsg(f->srv, &mh, MSG_WAITALL), sizeof(*h));
    for (cm = CMSG_FIRSTHDR(&mh); cm != NULL; cm = CMSG_NXTHDR(&mh, cm)) {
        size_t k = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);

        for (size_t i = 0; i < k; i++) {
            int fd;

            memcpy(&fd, CMSG_DATA(cm) + i * sizeof(int), sizeof(fd));
            close(fd);
            n++;
        }
    }
    if (nfds != NULL)
        *nfds = n;
    assert_true(h->size >= sizeof(*h));
    len = h->size - sizeof(*h);
    assert_true(len <= cap);
    if (len > 0)
        assert_int_equal(recv(f->srv, body, len, MSG_WAITALL), (ssize_t)len);
    return len;
}

/* Read the client's next request and check its command. */
static size_t srv_expect(struct fx *f, uint16_t cmd, void *body, size_t cap)
{
    struct vfu_hdr h;
    size_t len = srv_read(f, &h, body, cap, NULL);

    assert_int_equal(h.cmd, cmd);
    assert_int_equal(h.flags, VFU_F_TYPE_COMMAND);
    return len;
}

static void dev_info_reply(struct fx *f)
{
    struct vfu_device_info d = { 16, VFU_DEV_FLAG_PCI, 9, 5 };

    srv_reply(f, VFU_CMD_DEVICE_GET_INFO, &d, sizeof(d));
}

/* The connection must be usable: a device info round trip works. */
static void assert_alive(struct fx *f)
{
    struct muc_device_info info;
    uint8_t buf[64];

    dev_info_reply(f);
    memset(&info, 0xa5, sizeof(info));
    assert_int_equal(muc_device_info(f->c, &info), 0);
    assert_int_equal(info.num_regions, 9);
    /* Reserved space is set to 0 in what the library fills in. */
    for (unsigned i = 0; i < sizeof(info.reserved) / sizeof(info.reserved[0]); i++)
        assert_int_equal(info.reserved[i], 0);
    srv_expect(f, VFU_CMD_DEVICE_GET_INFO, buf, sizeof(buf));
}

static void assert_dead(struct fx *f)
{
    struct muc_device_info info;

    assert_int_equal(muc_device_info(f->c, &info), -ENOTCONN);
}

/* ---- VERSION ---- */

static int version_reply(struct fx *f, uint16_t major, uint16_t minor,
                         const char *json, size_t json_len,
                         const struct muc_opts *o)
{
    struct muc_opts d = { .timeout_ms = TIMEOUT_MS };
    uint8_t buf[512];
    struct vfu_version v = { major, minor };

    memcpy(buf, &v, sizeof(v));
    memcpy(buf + sizeof(v), json, json_len);
    srv_reply(f, VFU_CMD_VERSION, buf, sizeof(v) + json_len);
    return muc__from_fd(&f->c, f->cli, o ? o : &d, true);
}

#define JSON(s) s, sizeof(s)    /* with the NUL */

static void test_version_ok(void **state)
{
    struct fx *f = *state;
    const struct muc_server_caps *sc;
    struct vfu_version v;
    struct vfu_caps ours;
    uint8_t buf[600];
    size_t len;

    assert_int_equal(version_reply(f, 0, 1, JSON(
        "{\"capabilities\":{\"max_msg_fds\":4,\"max_data_xfer_size\":4096,"
        "\"pgsizes\":4096}}"), NULL), 0);
    sc = muc_server_caps(f->c);
    assert_int_equal(sc->major, 0);
    assert_int_equal(sc->minor, 1);
    assert_int_equal(sc->max_msg_fds, 4);
    assert_int_equal(sc->max_data_xfer_size, 4096);
    assert_false(sc->write_multiple);

    /* What we offered: 0.1 and our defaults, as NUL-terminated JSON. */
    len = srv_expect(f, VFU_CMD_VERSION, buf, sizeof(buf));
    assert_true(len > sizeof(v));
    memcpy(&v, buf, sizeof(v));
    assert_int_equal(v.major, 0);
    assert_int_equal(v.minor, 1);
    assert_int_equal(vfu_caps_parse((char *)buf + 4, len - 4, &ours), 0);
    assert_int_equal(ours.max_msg_fds, 8);
    assert_int_equal(ours.max_data_xfer_size, 1u << 20);
    assert_int_equal(ours.pgsizes, 4096);
    assert_false(ours.write_multiple);
    assert_alive(f);
}

static void test_version_no_json(void **state)
{
    struct fx *f = *state;
    const struct muc_server_caps *sc;

    assert_int_equal(version_reply(f, 0, 0, "", 0, NULL), 0);
    sc = muc_server_caps(f->c);
    assert_int_equal(sc->minor, 0);
    assert_int_equal(sc->max_msg_fds, VFU_DEFAULT_MAX_MSG_FDS);
    assert_int_equal(sc->max_data_xfer_size, VFU_DEFAULT_MAX_DATA_XFER);
}

static void test_version_major1(void **state)
{
    struct fx *f = *state;

    assert_int_equal(version_reply(f, 1, 0, JSON("{}"), NULL), -EPROTO);
    assert_null(f->c);
}

static void test_version_minor2(void **state)
{
    struct fx *f = *state;

    assert_int_equal(version_reply(f, 0, 2, JSON("{}"), NULL), -EPROTO);
}

static void test_version_no_nul(void **state)
{
    struct fx *f = *state;
    const char j[] = "{\"capabilities\":{}}";

    assert_int_equal(version_reply(f, 0, 1, j, strlen(j), NULL), -EPROTO);
}

static void test_version_bad_json(void **state)
{
    struct fx *f = *state;

    assert_int_equal(version_reply(f, 0, 1, JSON("{\"capabilities\":"),
                                   NULL), -EPROTO);
}

static void test_version_write_multiple(void **state)
{
    struct fx *f = *state;
    const char j[] = "{\"capabilities\":{\"write_multiple\":true}}";

    /* Not offered: the server may not claim it. */
    assert_int_equal(version_reply(f, 0, 1, JSON(j), NULL), -EPROTO);
}

static void test_version_write_multiple_offered(void **state)
{
    struct fx *f = *state;
    struct muc_opts o = { .write_multiple = true, .timeout_ms = TIMEOUT_MS };
    const char j[] = "{\"capabilities\":{\"write_multiple\":true}}";
    struct vfu_caps ours;
    uint8_t buf[600];
    size_t len;

    assert_int_equal(version_reply(f, 0, 1, JSON(j), &o), 0);
    assert_true(muc_server_caps(f->c)->write_multiple);
    len = srv_expect(f, VFU_CMD_VERSION, buf, sizeof(buf));
    assert_int_equal(vfu_caps_parse((char *)buf + 4, len - 4, &ours), 0);
    assert_true(ours.write_multiple);
}

static void test_version_error_reply(void **state)
{
    struct fx *f = *state;
    struct muc_opts o = { .timeout_ms = TIMEOUT_MS };

    srv_error(f, VFU_CMD_VERSION, ENOTSUP);
    assert_int_equal(muc__from_fd(&f->c, f->cli, &o, true), -ENOTSUP);
}

/* Reserved space of the options must be 0: refused before any byte is
 * sent, the fd consumed as on any failure. */
static void test_opts_reserved(void **state)
{
    struct fx *f = *state;
    struct muc_opts o = { .timeout_ms = TIMEOUT_MS };
    struct muc_migrate_opts mo = { .precopy_rounds = 1 };

    o.reserved[7] = 1;
    assert_int_equal(muc__from_fd(&f->c, f->cli, &o, true), -EINVAL);
    assert_null(f->c);
    assert_false(fd_open(f->cli));
    f->cli = -1;
    /* Checked before either client is touched. */
    mo.reserved[0] = 1;
    assert_int_equal(muc_migrate(NULL, NULL, &mo, NULL), -EINVAL);
}

static void test_version_peer_closes(void **state)
{
    struct fx *f = *state;
    struct muc_opts o = { .timeout_ms = TIMEOUT_MS };

    shutdown(f->srv, SHUT_WR);
    assert_int_equal(muc__from_fd(&f->c, f->cli, &o, true), -EPROTO);
}

static void test_version_garbage(void **state)
{
    struct fx *f = *state;
    struct muc_opts o = { .timeout_ms = TIMEOUT_MS };
    const char http[] = "HTTP/1.1 400 Bad Request\r\n\r\n";

    srv_raw(f, http, strlen(http));
    assert_int_equal(muc__from_fd(&f->c, f->cli, &o, true), -EPROTO);
}

static void test_version_silent(void **state)
{
    struct fx *f = *state;
    struct muc_opts o = { .timeout_ms = 50 };

    assert_int_equal(muc__from_fd(&f->c, f->cli, &o, true), -ETIMEDOUT);
}

static void test_version_with_fd(void **state)
{
    struct fx *f = *state;
    struct muc_opts o = { .timeout_ms = TIMEOUT_MS };
    struct vfu_version v = { 0, 1 };
    int efd = eventfd(0, EFD_CLOEXEC);

    srv_reply_fds(f, VFU_CMD_VERSION, &v, sizeof(v), &efd, 1);
    close(efd);
    /* The fd that came with it is closed: teardown counts. */
    assert_int_equal(muc__from_fd(&f->c, f->cli, &o, true), -EPROTO);
}

static void test_version_command_first(void **state)
{
    struct fx *f = *state;
    struct muc_opts o = { .timeout_ms = TIMEOUT_MS };
    struct vfu_dma_access a = { 0x1000, 4 };

    srv_msg(f, 77, VFU_CMD_DMA_READ, VFU_F_TYPE_COMMAND, 0, &a, sizeof(a),
            NULL, 0);
    assert_int_equal(muc__from_fd(&f->c, f->cli, &o, true), -EPROTO);
}

/* ---- generic reply checks ---- */

static void test_reply_ok(void **state)
{
    assert_alive(*state);
}

static void test_reply_wrong_msg_id(void **state)
{
    struct fx *f = *state;
    struct vfu_device_info d = { 16, 0, 9, 5 };
    struct muc_device_info info;

    srv_msg(f, 42, VFU_CMD_DEVICE_GET_INFO, VFU_F_TYPE_REPLY, 0, &d,
            sizeof(d), NULL, 0);
    assert_int_equal(muc_device_info(f->c, &info), -EPROTO);
    assert_dead(f);
}

static void test_reply_wrong_cmd(void **state)
{
    struct fx *f = *state;
    struct vfu_device_info d = { 16, 0, 9, 5 };
    struct muc_device_info info;

    srv_reply(f, VFU_CMD_DEVICE_GET_IRQ_INFO, &d, sizeof(d));
    assert_int_equal(muc_device_info(f->c, &info), -EPROTO);
    assert_dead(f);
}

static void test_reply_truncated(void **state)
{
    struct fx *f = *state;
    struct vfu_device_info d = { 16, 0, 9, 5 };
    struct muc_device_info info;

    srv_reply(f, VFU_CMD_DEVICE_GET_INFO, &d, 12);
    assert_int_equal(muc_device_info(f->c, &info), -EPROTO);
    assert_dead(f);
}

static void test_reply_too_long(void **state)
{
    struct fx *f = *state;
    uint8_t d[20] = { 16 };
    struct muc_device_info info;

    srv_reply(f, VFU_CMD_DEVICE_GET_INFO, d, sizeof(d));
    assert_int_equal(muc_device_info(f->c, &info), -EPROTO);
}

static void test_reply_error(void **state)
{
    struct fx *f = *state;
    struct muc_device_info info;

    srv_error(f, VFU_CMD_DEVICE_GET_INFO, EINVAL);
    assert_int_equal(muc_device_info(f->c, &info), -EINVAL);
    /* An error reply is a normal answer: the connection stays. */
    assert_alive(f);
}

static void test_reply_error_huge_errno(void **state)
{
    struct fx *f = *state;
    struct muc_device_info info;

    srv_error(f, VFU_CMD_DEVICE_GET_INFO, 100000);
    assert_int_equal(muc_device_info(f->c, &info), -EPROTO);
}

static void test_reply_error_with_payload(void **state)
{
    struct fx *f = *state;
    struct muc_device_info info;
    uint32_t x = 0;

    srv_msg(f, f->id++, VFU_CMD_DEVICE_GET_INFO,
            VFU_F_TYPE_REPLY | VFU_F_ERROR, EIO, &x, sizeof(x), NULL, 0);
    assert_int_equal(muc_device_info(f->c, &info), -EPROTO);
}

static void test_reply_oversized_header(void **state)
{
    struct fx *f = *state;
    struct muc_device_info info;
    struct vfu_hdr h = { 1, VFU_CMD_DEVICE_GET_INFO, 0x7fffffff,
                         VFU_F_TYPE_REPLY, 0 };

    srv_raw(f, &h, sizeof(h));
    assert_int_equal(muc_device_info(f->c, &info), -EPROTO);
    assert_dead(f);
}

static void test_reply_garbage_header(void **state)
{
    struct fx *f = *state;
    struct muc_device_info info;
    struct vfu_hdr h = { 1, VFU_CMD_DEVICE_GET_INFO, 16, 0x1001, 0 };

    srv_raw(f, &h, sizeof(h));
    assert_int_equal(muc_device_info(f->c, &info), -EPROTO);
}

static void test_reply_unexpected_fds(void **state)
{
    struct fx *f = *state;
    struct vfu_device_info d = { 16, 0, 9, 5 };
    struct muc_device_info info;
    int fds[2] = { eventfd(0, EFD_CLOEXEC), eventfd(0, EFD_CLOEXEC) };

    srv_reply_fds(f, VFU_CMD_DEVICE_GET_INFO, &d, sizeof(d), fds, 2);
    close(fds[0]);
    close(fds[1]);
    assert_int_equal(muc_device_info(f->c, &info), -EPROTO);
    assert_dead(f);
}

static void test_reply_too_many_fds(void **state)
{
    struct fx *f = *state;
    struct muc_device_info info;
    struct vfu_device_info d = { 16, 0, 9, 5 };
    int fds[12];

    for (int i = 0; i < 12; i++)
        fds[i] = eventfd(0, EFD_CLOEXEC);
    /* More than the 8 we said we accept. */
    srv_reply_fds(f, VFU_CMD_DEVICE_GET_INFO, &d, sizeof(d), fds, 12);
    for (int i = 0; i < 12; i++)
        close(fds[i]);
    assert_int_equal(muc_device_info(f->c, &info), -EPROTO);
}

static void test_peer_closed(void **state)
{
    struct fx *f = *state;
    struct muc_device_info info;

    shutdown(f->srv, SHUT_WR);
    assert_int_equal(muc_device_info(f->c, &info), -ENOTCONN);
    assert_dead(f);
}

static void test_timeout_then_late_reply(void **state)
{
    struct fx *f = *state;
    struct muc_device_info info;
    uint8_t buf[64];

    assert_int_equal(muc_device_info(f->c, &info), -ETIMEDOUT);
    srv_expect(f, VFU_CMD_DEVICE_GET_INFO, buf, sizeof(buf));
    /* The late answer to request 1 is dropped; request 2 gets its own. */
    dev_info_reply(f);
    assert_alive(f);
}

static void test_irq_info(void **state)
{
    struct fx *f = *state;
    struct vfu_irq_info q = { 16, VFU_IRQ_INFO_EVENTFD, 2, 32 }, sent;
    struct muc_irq_info info;

    srv_reply(f, VFU_CMD_DEVICE_GET_IRQ_INFO, &q, sizeof(q));
    assert_int_equal(muc_irq_info(f->c, 2, &info), 0);
    assert_int_equal(info.count, 32);
    assert_int_equal(info.flags, VFU_IRQ_INFO_EVENTFD);
    assert_int_equal(srv_expect(f, VFU_CMD_DEVICE_GET_IRQ_INFO, &sent,
                                sizeof(sent)), sizeof(sent));
    assert_int_equal(sent.argsz, 16);
    assert_int_equal(sent.index, 2);

    q.index = 3;    /* answers another index */
    srv_reply(f, VFU_CMD_DEVICE_GET_IRQ_INFO, &q, sizeof(q));
    assert_int_equal(muc_irq_info(f->c, 2, &info), -EPROTO);
}

/* ---- region info ---- */

/* A region info reply: fixed part, then caps at 32. */
static size_t region_info_msg(uint8_t *buf, uint32_t index, uint32_t flags,
                              uint64_t size, const void *caps, size_t caps_len)
{
    struct vfu_region_info r = {
        .argsz = (uint32_t)(sizeof(r) + caps_len), .flags = flags,
        .index = index, .cap_offset = caps_len ? sizeof(r) : 0,
        .size = size, .offset = 0x10000,
    };

    memcpy(buf, &r, sizeof(r));
    if (caps_len) {
        r.flags |= VFU_REGION_FLAG_CAPS;
        memcpy(buf, &r, sizeof(r));
        memcpy(buf + sizeof(r), caps, caps_len);
    }
    return sizeof(r) + caps_len;
}

static void test_region_info_sparse_fd(void **state)
{
    struct fx *f = *state;
    struct {
        struct vfu_cap_sparse s;
        struct vfu_sparse_area a[2];
        struct vfu_cap_type t;
    } __attribute__((packed)) caps = {
        { { VFU_CAP_SPARSE_MMAP, 1, 32 + 48 }, 2, 0 },
        { { 0, 0x1000 }, { 0x3000, 0x1000 } },
        { { VFU_CAP_TYPE, 1, 0 }, 7, 9 },
    };
    struct muc_region_info ri;
    struct vfu_region_info sent;
    uint8_t buf[256];
    int efd = eventfd(0, EFD_CLOEXEC);
    size_t len = region_info_msg(buf, 2, 7, 0x4000, &caps, sizeof(caps));

    srv_reply_fds(f, VFU_CMD_DEVICE_GET_REGION_INFO, buf, len, &efd, 1);
    close(efd);
    assert_int_equal(muc_region_info(f->c, 2, &ri), 0);
    assert_int_equal(ri.size, 0x4000);
    assert_int_equal(ri.offset, 0x10000);
    assert_int_equal(ri.flags, MUC_REGION_READ | MUC_REGION_WRITE |
                               MUC_REGION_MMAP);
    assert_int_equal(ri.nr_sparse, 2);
    assert_int_equal(ri.sparse[1].offset, 0x3000);
    assert_true(ri.has_type);
    assert_int_equal(ri.type, 7);
    assert_int_equal(ri.subtype, 9);
    assert_true(ri.fd >= 0 && fd_open(ri.fd));
    close(ri.fd);
    srv_expect(f, VFU_CMD_DEVICE_GET_REGION_INFO, &sent, sizeof(sent));
    assert_int_equal(sent.argsz, 32 + 1024);
    assert_int_equal(sent.index, 2);
}

static void test_region_info_reask(void **state)
{
    struct fx *f = *state;
    struct vfu_region_info r = { 32 + 2000, 7, 1, 0, 0x1000, 0 }, sent;
    uint8_t big[32 + 2000] = { 0 };
    struct muc_region_info ri;

    /* Too small: only the fixed part, saying how much is needed. */
    srv_reply(f, VFU_CMD_DEVICE_GET_REGION_INFO, &r, sizeof(r));
    memcpy(big, &r, sizeof(r));
    srv_reply(f, VFU_CMD_DEVICE_GET_REGION_INFO, big, sizeof(big));
    assert_int_equal(muc_region_info(f->c, 1, &ri), 0);
    assert_int_equal(ri.fd, -1);
    srv_expect(f, VFU_CMD_DEVICE_GET_REGION_INFO, &sent, sizeof(sent));
    assert_int_equal(sent.argsz, 32 + 1024);
    srv_expect(f, VFU_CMD_DEVICE_GET_REGION_INFO, &sent, sizeof(sent));
    assert_int_equal(sent.argsz, 32 + 2000);
}

static void test_region_info_huge_argsz(void **state)
{
    struct fx *f = *state;
    struct vfu_region_info r = { 1u << 30, 3, 1, 0, 0x1000, 0 };
    struct muc_region_info ri;

    srv_reply(f, VFU_CMD_DEVICE_GET_REGION_INFO, &r, sizeof(r));
    assert_int_equal(muc_region_info(f->c, 1, &ri), -EPROTO);
}

static void expect_region_info(struct fx *f, const void *caps, size_t len,
                               int want)
{
    struct muc_region_info ri;
    uint8_t buf[512];
    size_t n = region_info_msg(buf, 0, 3, 0x4000, caps, len);

    srv_reply(f, VFU_CMD_DEVICE_GET_REGION_INFO, buf, n);
    assert_int_equal(muc_region_info(f->c, 0, &ri), want);
}

static void test_region_info_cap_loop(void **state)
{
    /* A type cap whose next points at itself. */
    struct vfu_cap_type t = { { VFU_CAP_TYPE, 1, 32 }, 1, 1 };

    expect_region_info(*state, &t, sizeof(t), -EPROTO);
}

static void test_region_info_cap_backwards(void **state)
{
    /* Unknown cap at 32 -> 40 -> back to 32. */
    struct vfu_cap_hdr h[2] = { { 99, 1, 40 }, { 98, 1, 32 } };

    expect_region_info(*state, h, sizeof(h), -EPROTO);
}

static void test_region_info_cap_out_of_range(void **state)
{
    struct vfu_cap_type t = { { VFU_CAP_TYPE, 1, 4096 }, 1, 1 };

    expect_region_info(*state, &t, sizeof(t), -EPROTO);
}

static void test_region_info_cap_truncated(void **state)
{
    struct vfu_cap_type t = { { VFU_CAP_TYPE, 1, 0 }, 1, 1 };

    expect_region_info(*state, &t, 12, -EPROTO);
}

static void test_region_info_sparse_overflow(void **state)
{
    struct {
        struct vfu_cap_sparse s;
        struct vfu_sparse_area a;
    } __attribute__((packed)) caps = { { { VFU_CAP_SPARSE_MMAP, 1, 0 },
                                         1000, 0 }, { 0, 0x1000 } };

    /* nr_areas does not fit the reply. */
    expect_region_info(*state, &caps, sizeof(caps), -EPROTO);
}

static void test_region_info_sparse_outside(void **state)
{
    struct {
        struct vfu_cap_sparse s;
        struct vfu_sparse_area a;
    } __attribute__((packed)) caps = { { { VFU_CAP_SPARSE_MMAP, 1, 0 },
                                         1, 0 }, { UINT64_MAX, 2 } };

    expect_region_info(*state, &caps, sizeof(caps), -EPROTO);
}

static void test_region_info_many_sparse(void **state)
{
    struct fx *f = *state;
    struct vfu_cap_sparse sp = { { VFU_CAP_SPARSE_MMAP, 1, 0 }, 65, 0 };
    static uint8_t caps[16 + 65 * 16], buf[32 + sizeof(caps)];
    struct muc_region_info ri;
    size_t n;

    memcpy(caps, &sp, sizeof(sp));
    for (unsigned i = 0; i < 65; i++) {
        struct vfu_sparse_area a = { i * 0x100ull, 0x100 };

        memcpy(caps + 16 + i * 16, &a, sizeof(a));
    }
    n = region_info_msg(buf, 0, 7, 0x10000, caps, sizeof(caps));
    /* Bigger than the first ask: the fixed part first, then all of it. */
    srv_reply(f, VFU_CMD_DEVICE_GET_REGION_INFO, buf, 32);
    srv_reply(f, VFU_CMD_DEVICE_GET_REGION_INFO, buf, n);
    /* Valid, but more areas than struct muc_region_info holds: an error
     * for this call, not for the connection. */
    assert_int_equal(muc_region_info(f->c, 0, &ri), -E2BIG);
    srv_expect(f, VFU_CMD_DEVICE_GET_REGION_INFO, buf, sizeof(buf));
    srv_expect(f, VFU_CMD_DEVICE_GET_REGION_INFO, buf, sizeof(buf));
    assert_alive(f);
}

static void test_region_info_unknown_cap(void **state)
{
    struct fx *f = *state;
    struct {
        struct vfu_cap_hdr u;
        uint32_t junk[2];
        struct vfu_cap_type t;
    } __attribute__((packed)) caps = {
        { 42, 3, 32 + 16 }, { 1, 2 }, { { VFU_CAP_TYPE, 1, 0 }, 5, 6 },
    };
    struct muc_region_info ri;
    uint8_t buf[128];
    size_t n = region_info_msg(buf, 9, 3, 0x1000, &caps, sizeof(caps));

    srv_reply(f, VFU_CMD_DEVICE_GET_REGION_INFO, buf, n);
    assert_int_equal(muc_region_info(f->c, 9, &ri), 0);
    assert_true(ri.has_type);
    assert_int_equal(ri.type, 5);
    assert_int_equal(ri.nr_sparse, 0);
}

static void test_region_info_fd_without_mmap(void **state)
{
    struct fx *f = *state;
    struct muc_region_info ri;
    uint8_t buf[64];
    int efd = eventfd(0, EFD_CLOEXEC);
    size_t n = region_info_msg(buf, 0, 3, 0x1000, NULL, 0);

    srv_reply_fds(f, VFU_CMD_DEVICE_GET_REGION_INFO, buf, n, &efd, 1);
    close(efd);
    assert_int_equal(muc_region_info(f->c, 0, &ri), -EPROTO);
}

static void test_region_info_wrong_index(void **state)
{
    struct fx *f = *state;
    struct muc_region_info ri;
    uint8_t buf[64];
    size_t n = region_info_msg(buf, 5, 3, 0x1000, NULL, 0);

    srv_reply(f, VFU_CMD_DEVICE_GET_REGION_INFO, buf, n);
    assert_int_equal(muc_region_info(f->c, 0, &ri), -EPROTO);
}

struct io_fds_reply {
    struct vfu_region_io_fds h;
    struct vfu_sub_region_ioeventfd e[3];
} __attribute__((packed));

/* The argsz dance: the client asks for room for max entries, is told it
 * needs more, and asks again; the full answer comes with two fds. */
static void io_fds_replies(struct fx *f, const struct io_fds_reply *r)
{
    int efd[2] = { eventfd(0, EFD_CLOEXEC), eventfd(0, EFD_CLOEXEC) };

    srv_reply(f, VFU_CMD_DEVICE_GET_REGION_IO_FDS, &r->h, sizeof(r->h));
    srv_reply_fds(f, VFU_CMD_DEVICE_GET_REGION_IO_FDS, r, sizeof(*r), efd, 2);
    close(efd[0]);
    close(efd[1]);
}

static void test_region_io_fds(void **state)
{
    struct fx *f = *state;
    struct io_fds_reply r = {
        { sizeof(r), 0, 1, 3 },
        { { 0x10, 4, 0, 0, 1, 0, 0xab }, { 0x20, 4, 1, 0, 0, 0, 0 },
          { 0x30, 4, 0, 0, 0, 0, 0 } },
    };
    struct vfu_region_io_fds sent;
    struct muc_ioeventfd out[2];

    io_fds_replies(f, &r);
    /* Room for 2 of 3: the third is dropped and nothing leaks. */
    assert_int_equal(muc_region_io_fds(f->c, 1, out, 2), 2);
    assert_int_equal(out[0].offset, 0x10);
    assert_int_equal(out[0].datamatch, 0xab);
    assert_int_equal(out[0].flags, 1);
    assert_int_equal(out[1].offset, 0x20);
    assert_true(out[0].fd >= 0 && out[1].fd >= 0 && out[0].fd != out[1].fd);
    close(out[0].fd);
    close(out[1].fd);
    srv_expect(f, VFU_CMD_DEVICE_GET_REGION_IO_FDS, &sent, sizeof(sent));
    assert_int_equal(sent.argsz, 16 + 2 * 40);
    srv_expect(f, VFU_CMD_DEVICE_GET_REGION_IO_FDS, &sent, sizeof(sent));
    assert_int_equal(sent.argsz, sizeof(r));

    /* An fd_index past the fds received. */
    r.e[2].fd_index = 2;
    io_fds_replies(f, &r);
    assert_int_equal(muc_region_io_fds(f->c, 1, out, 2), -EPROTO);
}

/* ---- region access ---- */

static void read_reply(struct fx *f, uint64_t off, uint32_t region,
                       const void *data, uint32_t n)
{
    uint8_t buf[256];
    struct vfu_region_access a = { off, region, n };

    memcpy(buf, &a, sizeof(a));
    memcpy(buf + sizeof(a), data, n);
    srv_reply(f, VFU_CMD_REGION_READ, buf, sizeof(a) + n);
}

static void write_reply(struct fx *f, uint64_t off, uint32_t region,
                        uint32_t n)
{
    struct vfu_region_access a = { off, region, n };

    srv_reply(f, VFU_CMD_REGION_WRITE, &a, sizeof(a));
}

static void test_region_read(void **state)
{
    struct fx *f = *state;
    struct vfu_region_access sent;
    uint32_t v;

    read_reply(f, 0, 7, "\x4f\x49\xc8\x0d", 4);
    assert_int_equal(muc_config_read32(f->c, 0, &v), 0);
    assert_int_equal(v, 0x0dc8494f);
    assert_int_equal(srv_expect(f, VFU_CMD_REGION_READ, &sent, sizeof(sent)),
                     sizeof(sent));
    assert_int_equal(sent.offset, 0);
    assert_int_equal(sent.region, 7);
    assert_int_equal(sent.count, 4);
}

static void test_region_read_chunks(void **state)
{
    struct fx *f = *state;
    uint8_t out[10];
    struct vfu_region_access sent;

    assert_int_equal(version_reply(f, 0, 1, JSON(
        "{\"capabilities\":{\"max_data_xfer_size\":4}}"), NULL), 0);
    read_reply(f, 100, 0, "abcd", 4);
    read_reply(f, 104, 0, "efgh", 4);
    read_reply(f, 108, 0, "ij", 2);
    assert_int_equal(muc_region_read(f->c, 0, 100, out, sizeof(out)), 0);
    assert_memory_equal(out, "abcdefghij", 10);
    srv_expect(f, VFU_CMD_VERSION, (uint8_t[600]){ 0 }, 600);
    for (int i = 0; i < 3; i++) {
        srv_expect(f, VFU_CMD_REGION_READ, &sent, sizeof(sent));
        assert_int_equal(sent.offset, 100 + 4 * i);
        assert_int_equal(sent.count, i < 2 ? 4 : 2);
    }
}

static void test_region_read_bad_echo(void **state)
{
    struct fx *f = *state;
    uint32_t v;

    read_reply(f, 4, 7, "\0\0\0\0", 4);     /* another offset */
    assert_int_equal(muc_config_read32(f->c, 0, &v), -EPROTO);
}

static void test_region_read_short_data(void **state)
{
    struct fx *f = *state;
    uint8_t buf[19] = { 0 };
    struct vfu_region_access a = { 0, 7, 4 };
    uint32_t v;

    memcpy(buf, &a, sizeof(a));
    srv_reply(f, VFU_CMD_REGION_READ, buf, sizeof(buf));  /* 3 data bytes */
    assert_int_equal(muc_config_read32(f->c, 0, &v), -EPROTO);
}

static void test_region_write(void **state)
{
    struct fx *f = *state;
    uint8_t buf[64];
    struct vfu_region_access a;

    write_reply(f, 4, 7, 2);
    assert_int_equal(muc_config_write16(f->c, 4, 0x0406), 0);
    assert_int_equal(srv_expect(f, VFU_CMD_REGION_WRITE, buf, sizeof(buf)), 18);
    memcpy(&a, buf, sizeof(a));
    assert_int_equal(a.offset, 4);
    assert_int_equal(a.count, 2);
    assert_memory_equal(buf + 16, "\x06\x04", 2);

    /* A write reply carrying data is not a write reply. */
    srv_msg(f, f->id++, VFU_CMD_REGION_WRITE, VFU_F_TYPE_REPLY, 0, buf, 18,
            NULL, 0);
    assert_int_equal(muc_config_write16(f->c, 4, 0x0406), -EPROTO);
}

/* Config reads/writes of one BAR dword, as a sizing guest does them. */
static void bar_dword(struct fx *f, uint32_t off, uint32_t orig, uint32_t mask)
{
    read_reply(f, off, 7, &orig, 4);
    write_reply(f, off, 7, 4);
    read_reply(f, off, 7, &mask, 4);
    write_reply(f, off, 7, 4);
}

static void test_bar_size(void **state)
{
    struct fx *f = *state;
    uint32_t prev;
    bool io, b64, pf;
    uint64_t size;

    bar_dword(f, 0x10, 0xfe000000, 0xfff00000);     /* 1 MiB, mem32 */
    assert_int_equal(muc_bar_size(f->c, 0, &size, &io, &b64, &pf), 0);
    assert_int_equal(size, 1 << 20);
    assert_false(io || b64 || pf);

    prev = 0xfe000000;                              /* BAR0 is 32-bit */
    read_reply(f, 0x10, 7, &prev, 4);
    bar_dword(f, 0x14, 0xc000000c, 0xffffc00c);     /* 16 KiB mem64 pf */
    bar_dword(f, 0x18, 0x1, 0xffffffff);
    assert_int_equal(muc_bar_size(f->c, 1, &size, &io, &b64, &pf), 0);
    assert_int_equal(size, 16384);
    assert_true(b64 && pf && !io);

    prev = 0xc000000c;                              /* BAR2: upper half */
    read_reply(f, 0x14, 7, &prev, 4);
    assert_int_equal(muc_bar_size(f->c, 2, &size, &io, &b64, &pf), 0);
    assert_int_equal(size, 0);

    prev = 0;
    read_reply(f, 0x1c, 7, &prev, 4);
    bar_dword(f, 0x20, 0xc001, 0xffffffe1);         /* 32 bytes of I/O */
    assert_int_equal(muc_bar_size(f->c, 4, &size, &io, &b64, &pf), 0);
    assert_int_equal(size, 32);
    assert_true(io && !b64 && !pf);

    prev = 0xc001;
    read_reply(f, 0x20, 7, &prev, 4);
    bar_dword(f, 0x24, 0, 0);                       /* absent */
    assert_int_equal(muc_bar_size(f->c, 5, &size, &io, &b64, &pf), 0);
    assert_int_equal(size, 0);
    assert_int_equal(muc_bar_size(f->c, 6, &size, &io, &b64, &pf), -EINVAL);
}

/* ---- server -> client DMA ---- */

static void srv_dma(struct fx *f, uint16_t id, uint16_t cmd, uint64_t addr,
                    uint64_t count, const void *data)
{
    uint8_t buf[256];
    struct vfu_dma_access a = { addr, count };
    size_t n = cmd == VFU_CMD_DMA_WRITE ? count : 0;

    memcpy(buf, &a, sizeof(a));
    if (n > 0)
        memcpy(buf + sizeof(a), data, n);
    srv_msg(f, id, cmd, VFU_F_TYPE_COMMAND, 0, buf, sizeof(a) + n, NULL, 0);
}

/* The client's answer to server request id; returns its errno (0 = ok). */
static uint32_t srv_dma_answer(struct fx *f, uint16_t id, uint16_t cmd,
                               void *body, size_t cap, size_t *len)
{
    struct vfu_hdr h;

    *len = srv_read(f, &h, body, cap, NULL);
    assert_int_equal(h.msg_id, id);
    assert_int_equal(h.cmd, cmd);
    assert_int_equal(h.flags & VFU_F_TYPE_MASK, VFU_F_TYPE_REPLY);
    if (h.flags & VFU_F_ERROR)
        assert_int_equal(*len, 0);
    return h.error;
}

static void test_dma_read_during_map(void **state)
{
    struct fx *f = *state;
    uint8_t mem[64], body[128];
    struct vfu_dma_map m;
    struct vfu_dma_access a;
    unsigned nfds;
    struct vfu_hdr h;
    size_t len;

    for (int i = 0; i < 64; i++)
        mem[i] = (uint8_t)i;
    /* The server reads the memory before it answers the map. */
    srv_dma(f, 500, VFU_CMD_DMA_READ, 0x10004, 8, NULL);
    srv_reply(f, VFU_CMD_DMA_MAP, NULL, 0);
    assert_int_equal(muc_dma_map_mem(f->c, 0x10000, sizeof(mem), mem,
                                     MUC_DMA_READ), 0);
    assert_int_equal(muc_dma_requests_served(f->c), 1);

    assert_int_equal(srv_read(f, &h, &m, sizeof(m), &nfds), sizeof(m));
    assert_int_equal(h.cmd, VFU_CMD_DMA_MAP);
    assert_int_equal(nfds, 0);
    assert_int_equal(m.argsz, 32);
    assert_int_equal(m.flags, VFU_DMA_FLAG_READ);
    assert_int_equal(m.addr, 0x10000);
    assert_int_equal(m.size, 64);
    assert_int_equal(m.offset, 0);

    assert_int_equal(srv_dma_answer(f, 500, VFU_CMD_DMA_READ, body,
                                    sizeof(body), &len), 0);
    assert_int_equal(len, 16 + 8);
    memcpy(&a, body, sizeof(a));
    assert_int_equal(a.addr, 0x10004);
    assert_int_equal(a.count, 8);
    assert_memory_equal(body + 16, mem + 4, 8);
}

static void map_mem(struct fx *f, uint64_t iova, void *mem, size_t size,
                    unsigned prot)
{
    uint8_t buf[64];

    srv_reply(f, VFU_CMD_DMA_MAP, NULL, 0);
    assert_int_equal(muc_dma_map_mem(f->c, iova, size, mem, prot), 0);
    srv_expect(f, VFU_CMD_DMA_MAP, buf, sizeof(buf));
}

static void test_dma_write_serve(void **state)
{
    struct fx *f = *state;
    uint8_t mem[32] = { 0 }, body[64];
    struct vfu_dma_access a;
    size_t len;

    map_mem(f, 0x2000, mem, sizeof(mem), MUC_DMA_READ | MUC_DMA_WRITE);
    srv_dma(f, 7, VFU_CMD_DMA_WRITE, 0x2010, 4, "WXYZ");
    assert_int_equal(muc_serve(f->c, TIMEOUT_MS), 1);
    assert_memory_equal(mem + 16, "WXYZ", 4);
    assert_int_equal(srv_dma_answer(f, 7, VFU_CMD_DMA_WRITE, body,
                                    sizeof(body), &len), 0);
    assert_int_equal(len, 16);
    memcpy(&a, body, sizeof(a));
    assert_int_equal(a.addr, 0x2010);
    assert_int_equal(a.count, 4);
    /* Nothing pending: muc_serve times out with 0. */
    assert_int_equal(muc_serve(f->c, 0), 0);
}

static void test_dma_refused(void **state)
{
    struct fx *f = *state;
    uint8_t mem[32] = { 0 }, body[64];
    size_t len;

    map_mem(f, 0x2000, mem, sizeof(mem), MUC_DMA_READ);
    srv_dma(f, 1, VFU_CMD_DMA_READ, 0x9000, 4, NULL);      /* unmapped */
    srv_dma(f, 2, VFU_CMD_DMA_READ, 0x201c, 8, NULL);      /* runs past */
    srv_dma(f, 3, VFU_CMD_DMA_WRITE, 0x2000, 4, "abcd");   /* read-only */
    srv_dma(f, 4, VFU_CMD_DMA_READ, 0x2000, 0, NULL);      /* count 0 */
    srv_msg(f, 5, VFU_CMD_DEVICE_RESET, VFU_F_TYPE_COMMAND, 0, NULL, 0,
            NULL, 0);                                     /* not for us */
    assert_int_equal(muc_serve(f->c, TIMEOUT_MS), 5);
    assert_int_equal(srv_dma_answer(f, 1, 11, body, 64, &len), EFAULT);
    assert_int_equal(srv_dma_answer(f, 2, 11, body, 64, &len), EFAULT);
    assert_int_equal(srv_dma_answer(f, 3, 12, body, 64, &len), EACCES);
    assert_int_equal(srv_dma_answer(f, 4, 11, body, 64, &len), EINVAL);
    assert_int_equal(srv_dma_answer(f, 5, 13, body, 64, &len), ENOSYS);
    assert_memory_equal(mem, (uint8_t[4]){ 0 }, 4);
    assert_int_equal(muc_dma_requests_served(f->c), 0);
    assert_alive(f);
}

static void test_dma_map_fails_unregisters(void **state)
{
    struct fx *f = *state;
    uint8_t mem[32], body[64], req[64];
    size_t len;

    srv_error(f, VFU_CMD_DMA_MAP, EEXIST);
    assert_int_equal(muc_dma_map_mem(f->c, 0x2000, sizeof(mem), mem,
                                     MUC_DMA_READ), -EEXIST);
    srv_expect(f, VFU_CMD_DMA_MAP, req, sizeof(req));
    srv_dma(f, 9, VFU_CMD_DMA_READ, 0x2000, 4, NULL);
    assert_int_equal(muc_serve(f->c, TIMEOUT_MS), 1);
    assert_int_equal(srv_dma_answer(f, 9, 11, body, 64, &len), EFAULT);
}

static void test_dma_unmap(void **state)
{
    struct fx *f = *state;
    uint8_t mem[32], body[64];
    struct vfu_dma_unmap u = { 24, 0, 0x2000, 32 }, sent;
    size_t len;

    map_mem(f, 0x2000, mem, sizeof(mem), MUC_DMA_READ);
    srv_reply(f, VFU_CMD_DMA_UNMAP, &u, sizeof(u));     /* echoed */
    assert_int_equal(muc_dma_unmap(f->c, 0x2000, 32), 0);
    srv_expect(f, VFU_CMD_DMA_UNMAP, &sent, sizeof(sent));
    assert_int_equal(sent.argsz, 24);
    assert_int_equal(sent.flags, 0);
    /* Gone locally too. */
    srv_dma(f, 9, VFU_CMD_DMA_READ, 0x2000, 4, NULL);
    assert_int_equal(muc_serve(f->c, TIMEOUT_MS), 1);
    assert_int_equal(srv_dma_answer(f, 9, 11, body, 64, &len), EFAULT);

    srv_reply(f, VFU_CMD_DMA_UNMAP, NULL, 0);           /* empty is fine */
    assert_int_equal(muc_dma_unmap_all(f->c), 0);
    srv_expect(f, VFU_CMD_DMA_UNMAP, &sent, sizeof(sent));
    assert_int_equal(sent.flags, VFU_DMA_UNMAP_FLAG_ALL);
    assert_int_equal(sent.addr, 0);
    assert_int_equal(sent.size, 0);

    u.size = 64;                                        /* wrong echo */
    srv_reply(f, VFU_CMD_DMA_UNMAP, &u, sizeof(u));
    assert_int_equal(muc_dma_unmap(f->c, 0x2000, 32), -EPROTO);
}

static void test_dma_map_fd(void **state)
{
    struct fx *f = *state;
    struct vfu_dma_map m;
    struct vfu_hdr h;
    unsigned nfds;
    int efd = eventfd(0, EFD_CLOEXEC);

    srv_reply(f, VFU_CMD_DMA_MAP, NULL, 0);
    assert_int_equal(muc_dma_map(f->c, 0x4000, 0x1000, efd, 0x2000,
                                 MUC_DMA_READ | MUC_DMA_WRITE), 0);
    assert_true(fd_open(efd));  /* still the caller's */
    close(efd);
    srv_read(f, &h, &m, sizeof(m), &nfds);
    assert_int_equal(nfds, 1);
    assert_int_equal(m.flags, 3);
    assert_int_equal(m.offset, 0x2000);
    assert_int_equal(muc_dma_map(f->c, 0, 1, -1, 0, 1), -EBADF);
}

static void test_serve_unexpected_reply(void **state)
{
    struct fx *f = *state;

    srv_reply(f, VFU_CMD_DEVICE_GET_INFO, NULL, 0);
    assert_int_equal(muc_serve(f->c, TIMEOUT_MS), -EPROTO);
    assert_int_equal(muc_serve(f->c, 0), -ENOTCONN);
}

static void test_serve_server_gone(void **state)
{
    struct fx *f = *state;

    shutdown(f->srv, SHUT_WR);
    assert_int_equal(muc_serve(f->c, TIMEOUT_MS), -ENOTCONN);
}

/* ---- interrupts ---- */

static void test_set_irqs_eventfds(void **state)
{
    struct fx *f = *state;
    struct vfu_irq_set s;
    struct vfu_hdr h;
    uint8_t buf[64];
    unsigned nfds;
    int efd[3];

    /* The server takes 2 fds a message: 3 vectors need two requests. */
    assert_int_equal(version_reply(f, 0, 1, JSON(
        "{\"capabilities\":{\"max_msg_fds\":2}}"), NULL), 0);
    srv_expect(f, VFU_CMD_VERSION, (uint8_t[600]){ 0 }, 600);
    for (int i = 0; i < 3; i++)
        efd[i] = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    srv_reply(f, VFU_CMD_DEVICE_SET_IRQS, NULL, 0);
    srv_reply(f, VFU_CMD_DEVICE_SET_IRQS, NULL, 0);
    assert_int_equal(muc_irq_set_eventfds(f->c, 2, 1, 3, efd), 0);
    for (int i = 0; i < 2; i++) {
        assert_int_equal(srv_read(f, &h, &s, sizeof(s), &nfds), 20);
        assert_int_equal(s.argsz, 20);
        assert_int_equal(s.flags, VFU_IRQ_SET_DATA_EVENTFD |
                                  VFU_IRQ_SET_ACTION_TRIGGER);
        assert_int_equal(s.index, 2);
        assert_int_equal(s.start, 1 + 2 * i);
        assert_int_equal(s.count, i ? 1 : 2);
        assert_int_equal(nfds, s.count);
    }
    assert_int_equal(muc_eventfd_wait(efd[0], 0), 0);
    assert_int_equal(eventfd_write(efd[0], 3), 0);
    assert_int_equal(muc_eventfd_wait(efd[0], TIMEOUT_MS), 3);
    for (int i = 0; i < 3; i++)
        close(efd[i]);

    /* DATA_BOOL carries count bytes. */
    srv_reply(f, VFU_CMD_DEVICE_SET_IRQS, NULL, 0);
    assert_int_equal(muc_set_irqs(f->c, VFU_IRQ_SET_DATA_BOOL |
                                  VFU_IRQ_SET_ACTION_MASK, 1, 0, 3,
                                  "\1\0\1", NULL, 0), 0);
    assert_int_equal(srv_expect(f, VFU_CMD_DEVICE_SET_IRQS, buf, 64), 23);
    memcpy(&s, buf, sizeof(s));
    assert_int_equal(s.argsz, 23);
}

/* ---- dirty logging ---- */

static void test_dirty(void **state)
{
    struct fx *f = *state;
    uint8_t buf[256];
    uint64_t iova[1] = { 0x10000 }, len[1] = { 0x100000 }, bm[2];
    struct vfu_device_feature ft;
    struct vfu_dma_logging_control ctl;
    struct {
        struct vfu_device_feature f;
        struct vfu_dma_logging_report r;
        uint64_t bm[2];
    } __attribute__((packed)) rep = {
        { 8 + 24 + 16, VFU_FEATURE_GET | VFU_FEATURE_DMA_LOGGING_REPORT },
        { 0x10000, 0x80000, 4096 }, { 0x5, 0x8000000000000000ull },
    };

    srv_reply(f, VFU_CMD_DEVICE_FEATURE, NULL, 0);
    assert_int_equal(muc_dirty_start(f->c, 4096, iova, len, 1), 0);
    assert_int_equal(srv_expect(f, VFU_CMD_DEVICE_FEATURE, buf, sizeof(buf)),
                     8 + 16 + 16);
    memcpy(&ft, buf, sizeof(ft));
    memcpy(&ctl, buf + 8, sizeof(ctl));
    assert_int_equal(ft.argsz, 40);
    assert_int_equal(ft.flags, VFU_FEATURE_SET | VFU_FEATURE_DMA_LOGGING_START);
    assert_int_equal(ctl.page_size, 4096);
    assert_int_equal(ctl.num_ranges, 1);

    /* 0x80000 / 4096 = 128 pages = 2 words. */
    srv_reply(f, VFU_CMD_DEVICE_FEATURE, &rep, sizeof(rep));
    assert_int_equal(muc_dirty_report(f->c, 0x10000, 0x80000, 4096, bm,
                                      sizeof(bm)), 0);
    assert_int_equal(bm[0], 5);
    assert_int_equal(bm[1], 0x8000000000000000ull);
    assert_int_equal(srv_expect(f, VFU_CMD_DEVICE_FEATURE, buf, sizeof(buf)),
                     32);
    memcpy(&ft, buf, sizeof(ft));
    assert_int_equal(ft.argsz, 8 + 24 + 16);

    /* A bitmap one word short. */
    srv_reply(f, VFU_CMD_DEVICE_FEATURE, &rep, sizeof(rep) - 8);
    assert_int_equal(muc_dirty_report(f->c, 0x10000, 0x80000, 4096, bm,
                                      sizeof(bm)), -EPROTO);
}

static void test_dirty_stop(void **state)
{
    struct fx *f = *state;
    struct vfu_device_feature ft = { 8, VFU_FEATURE_SET |
                                        VFU_FEATURE_DMA_LOGGING_STOP };

    srv_reply(f, VFU_CMD_DEVICE_FEATURE, &ft, sizeof(ft));
    assert_int_equal(muc_dirty_stop(f->c), 0);
    ft.flags = VFU_FEATURE_GET | VFU_FEATURE_DMA_LOGGING_STOP;
    srv_reply(f, VFU_CMD_DEVICE_FEATURE, &ft, sizeof(ft));
    assert_int_equal(muc_dirty_stop(f->c), -EPROTO);
}

/* ---- raw ---- */

static void test_request_raw(void **state)
{
    struct fx *f = *state;
    uint8_t out[8], req[4] = { 1, 2, 3, 4 };
    int efd[2] = { eventfd(0, EFD_CLOEXEC), eventfd(0, EFD_CLOEXEC) }, rfd;
    unsigned nr;
    size_t len;

    srv_reply_fds(f, 99, "hello", 5, efd, 2);
    close(efd[0]);
    close(efd[1]);
    /* One fd wanted, two sent: the other is closed. */
    assert_int_equal(muc_request(f->c, 99, req, 4, NULL, 0, out, sizeof(out),
                                 &len, &rfd, 1, &nr), 0);
    assert_int_equal(len, 5);
    assert_memory_equal(out, "hello", 5);
    assert_int_equal(nr, 1);
    close(rfd);
    assert_int_equal(srv_expect(f, 99, out, sizeof(out)), 4);

    srv_reply(f, 99, "too long for it", 15);
    assert_int_equal(muc_request(f->c, 99, NULL, 0, NULL, 0, out, sizeof(out),
                                 &len, NULL, 0, &nr), -EMSGSIZE);
    assert_int_equal(len, 15);
    assert_int_equal(srv_expect(f, 99, out, sizeof(out)), 0);
    assert_alive(f);
}

static void test_recv_msg_raw(void **state)
{
    struct fx *f = *state;
    uint8_t buf[64];
    struct vfu_hdr h;

    assert_int_equal(muc_recv_msg(f->c, buf, sizeof(buf), 10), -ETIMEDOUT);
    srv_msg(f, 3, 4, VFU_F_TYPE_REPLY, 0, "abc", 3, NULL, 0);
    assert_int_equal(muc_recv_msg(f->c, buf, sizeof(buf), TIMEOUT_MS), 19);
    memcpy(&h, buf, sizeof(h));
    assert_int_equal(h.msg_id, 3);
    assert_memory_equal(buf + 16, "abc", 3);
    assert_int_equal(muc_send_bytes(f->c, "xyz", 3, NULL, 0), 0);
    assert_int_equal(recv(f->srv, buf, 3, MSG_WAITALL), 3);
    assert_memory_equal(buf, "xyz", 3);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup_raw, teardown)
#define TP(fn) cmocka_unit_test_setup_teardown(fn, setup_pair, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        TP(test_version_ok),
        TP(test_version_no_json),
        TP(test_version_major1),
        TP(test_version_minor2),
        TP(test_version_no_nul),
        TP(test_version_bad_json),
        TP(test_version_write_multiple),
        TP(test_version_write_multiple_offered),
        TP(test_version_error_reply),
        TP(test_opts_reserved),
        TP(test_version_peer_closes),
        TP(test_version_garbage),
        TP(test_version_silent),
        TP(test_version_with_fd),
        TP(test_version_command_first),
        T(test_reply_ok),
        T(test_reply_wrong_msg_id),
        T(test_reply_wrong_cmd),
        T(test_reply_truncated),
        T(test_reply_too_long),
        T(test_reply_error),
        T(test_reply_error_huge_errno),
        T(test_reply_error_with_payload),
        T(test_reply_oversized_header),
        T(test_reply_garbage_header),
        T(test_reply_unexpected_fds),
        T(test_reply_too_many_fds),
        T(test_peer_closed),
        T(test_timeout_then_late_reply),
        T(test_irq_info),
        T(test_region_info_sparse_fd),
        T(test_region_info_reask),
        T(test_region_info_huge_argsz),
        T(test_region_info_cap_loop),
        T(test_region_info_cap_backwards),
        T(test_region_info_cap_out_of_range),
        T(test_region_info_cap_truncated),
        T(test_region_info_sparse_overflow),
        T(test_region_info_sparse_outside),
        T(test_region_info_many_sparse),
        T(test_region_info_unknown_cap),
        T(test_region_info_fd_without_mmap),
        T(test_region_info_wrong_index),
        T(test_region_io_fds),
        T(test_region_read),
        TP(test_region_read_chunks),
        T(test_region_read_bad_echo),
        T(test_region_read_short_data),
        T(test_region_write),
        T(test_bar_size),
        T(test_dma_read_during_map),
        T(test_dma_write_serve),
        T(test_dma_refused),
        T(test_dma_map_fails_unregisters),
        T(test_dma_unmap),
        T(test_dma_map_fd),
        T(test_serve_unexpected_reply),
        T(test_serve_server_gone),
        TP(test_set_irqs_eventfds),
        T(test_dirty),
        T(test_dirty_stop),
        T(test_request_raw),
        T(test_recv_msg_raw),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
