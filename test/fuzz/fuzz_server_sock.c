/*
 * fuzz_server_sock.c - fuzz_server_sock's link: a UNIX socket.
 *
 * The slow harness (~100 inputs a second: a socket per session, a thread
 * per device-thread DMA op, real sleeps), kept for what the in-memory
 * link cannot reach:
 *  - device threads: mu_dma_read/mu_dma_write waiting on the call
 *    condition while the context thread routes the reply, and
 *    translations held across the context's work (FS_DMA_THREAD,
 *    FS_DMA_HOLD);
 *  - real time: the receive timeout that drops a client with a partial
 *    message, idle DMA eviction, the housekeeping timer (FS_OP_WAIT);
 *  - the socket transport itself: accept on the listening socket,
 *    recvmsg/sendmsg with SCM_RIGHTS, a full socket buffer.
 * Everything else is fuzzer_server's job, a hundred times faster.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "fuzz_server.h"

const bool fs_link_threads = true;

static int sv0 = -1;            /* the client end */

void fs_link_setup(mu_ctx_t *ctx)
{
    (void)ctx;      /* the socket transport is the default */
}

static void pump1(void)
{
    struct pollfd p = { .fd = mu_ctx_fd(g_ctx), .events = POLLIN };

    if (poll(&p, 1, 1) > 0)
        check(mu_ctx_poll(g_ctx) == 0);
}

/* A client through the listening socket, as a VMM connects; -1 if the
 * context did not accept it in time. */
static int connect_socket(void)
{
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

    check(fd >= 0);
    snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", g_path);
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        close(fd);
        return -1;
    }
    for (int i = 0; i < 100 && !mu_conn_attached(g_ctx); i++)
        pump1();
    if (!mu_conn_attached(g_ctx)) {
        close(fd);
        return -1;
    }
    return fd;
}

void fs_link_connect(bool via_listen)
{
    int sv[2] = { -1, -1 };

    if (via_listen)
        sv[0] = connect_socket();
    if (sv[0] < 0) {
        check(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
                         0, sv) == 0);
        check(mu_ctx_attach_fd(g_ctx, sv[1]) == 0);
    }
    sv0 = sv[0];
}

long fs_link_send(const void *buf, size_t len, const int *fds, unsigned nfds)
{
    return fz_send(sv0, buf, len, fds, nfds);
}

long fs_link_recv(uint8_t *buf, size_t cap, int *fds, unsigned max,
                  unsigned *nfds)
{
    union {
        char buf[CMSG_SPACE(64 * sizeof(int))];
        struct cmsghdr align;
    } ctl;
    struct iovec iov = { buf, cap };
    struct msghdr mh = {
        .msg_iov = &iov, .msg_iovlen = 1,
        .msg_control = ctl.buf, .msg_controllen = sizeof(ctl.buf),
    };
    struct cmsghdr *cm;
    ssize_t n;

    *nfds = 0;
    n = recvmsg(sv0, &mh, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
    if (n <= 0)
        return 0;
    for (cm = CMSG_FIRSTHDR(&mh); cm != NULL; cm = CMSG_NXTHDR(&mh, cm)) {
        size_t nfd = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);

        if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS)
            continue;
        for (size_t i = 0; i < nfd; i++) {
            int fd;

            memcpy(&fd, CMSG_DATA(cm) + i * sizeof(int), sizeof(fd));
            if (*nfds < max)
                fds[(*nfds)++] = fd;
            else
                close(fd);
        }
    }
    /* The server never sends more fds than a reply holds. */
    check(!(mh.msg_flags & MSG_CTRUNC));
    return (long)n;
}

void fs_link_close(void)
{
    close(sv0);
    sv0 = -1;
}

void fs_link_direct(bool on)
{
    (void)on;           /* the socket is always the context's to poll */
}

bool fs_link_pending(void)
{
    return false;       /* the socket's readiness is epoll's to say */
}

const struct msgio *fs_link_msgio(void)
{
    return mu_sock_msgio(g_ctx);
}
