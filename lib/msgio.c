/*
 * msgio.c - framing of vfio-user messages on a stream socket.
 *
 * We read as much as the kernel has rather than exactly one header and then
 * exactly one body: a round trip then costs one recvmsg per side instead of
 * two, which matters for small register accesses.  The price is working out
 * which message the fds of a read belong to.  The kernel attaches fds to the
 * first skb of the sendmsg that carried them and never returns data from
 * beyond an fd-carrying skb in the same recvmsg, so the fds of a read belong
 * to a message that has bytes in that read, and it is the last such message
 * starting in the read (or the one in progress).  Equivalently: a message
 * takes every fd whose read ended at or before the message's own end.  We
 * record each read's end offset in the stream with its fds and apply that
 * rule when a message is cut.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "msgio.h"

struct msgio_fdchunk {
    uint64_t end;   /* stream offset just past the read that brought fd */
    int fd;
};

#define MSGIO_INITIAL_BUF 65536u

void mu_msg_release(struct mu_msg *m)
{
    for (unsigned i = 0; i < m->nfds; i++) {
        if (m->fds[i] >= 0)
            close(m->fds[i]);
    }
    free(m->fds);
    free(m->body);
    m->fds = NULL;
    m->body = NULL;
    m->nfds = 0;
    m->len = 0;
}

int mu_msg_take_fd(struct mu_msg *m, unsigned i)
{
    int fd;

    if (i >= m->nfds)
        return -1;
    fd = m->fds[i];
    m->fds[i] = -1;
    return fd;
}

int msgio_init(struct msgio *m, int fd, uint32_t max_size, unsigned max_fds)
{
    int fl;

    memset(m, 0, sizeof(*m));
    m->fd = -1;
    if (max_size < VFU_HDR_SIZE || max_fds > MSGIO_MAX_FDS)
        return -EINVAL;
    fl = fcntl(fd, F_GETFL);
    if (fl < 0)
        return -errno;
    /* Every non-blocking operation passes MSG_DONTWAIT, so the socket's own
     * mode only decides how msgio_recv() waits: a blocking socket lets it
     * sleep in recvmsg itself (one syscall per reply instead of a failed
     * read, a poll and a read), which is what a client wants. */
    m->blocking = !(fl & O_NONBLOCK);
    m->rcvtimeo_ms = -2;
    m->fd = fd;
    m->max_size = max_size;
    m->max_fds = max_fds;
    return 0;
}

void msgio_fini(struct msgio *m)
{
    for (unsigned i = 0; i < m->nchunks; i++)
        close(m->chunks[i].fd);
    free(m->chunks);
    free(m->buf);
    if (m->fd >= 0)
        close(m->fd);
    memset(m, 0, sizeof(*m));
    m->fd = -1;
}

static int push_fd(struct msgio *m, uint64_t end, int fd)
{
    if (m->nchunks == m->chunk_cap) {
        unsigned ncap = m->chunk_cap ? m->chunk_cap * 2 : 8;
        struct msgio_fdchunk *n = realloc(m->chunks, ncap * sizeof(*n));

        if (n == NULL)
            return -ENOMEM;
        m->chunks = n;
        m->chunk_cap = ncap;
    }
    m->chunks[m->nchunks].end = end;
    m->chunks[m->nchunks].fd = fd;
    m->nchunks++;
    return 0;
}

/* Make room for at least 'want' more bytes after tail, within max_size of
 * unparsed data plus one read's worth. */
static int make_room(struct msgio *m, size_t want)
{
    size_t used = m->tail - m->head;
    size_t ncap;
    uint8_t *nb;

    if (m->cap - m->tail >= want)
        return 0;
    if (m->head > 0) {
        memmove(m->buf, m->buf + m->head, used);
        m->tail = used;
        m->head = 0;
        if (m->cap - m->tail >= want)
            return 0;
    }
    ncap = m->cap ? m->cap : MSGIO_INITIAL_BUF;
    while (ncap - used < want)
        ncap *= 2;
    nb = realloc(m->buf, ncap);
    if (nb == NULL)
        return -ENOMEM;
    m->buf = nb;
    m->cap = ncap;
    return 0;
}

/* How many bytes the next read should ask for: enough for the message in
 * front if its header is already here, otherwise a buffer's worth. */
static size_t read_want(const struct msgio *m)
{
    size_t used = m->tail - m->head;
    struct vfu_hdr h;

    if (used >= VFU_HDR_SIZE) {
        memcpy(&h, m->buf + m->head, sizeof(h));
        if (h.size > used && h.size <= m->max_size)
            return h.size - used;
    }
    return MSGIO_INITIAL_BUF / 2;
}

/*
 * Where the message still arriving starts: past every whole message in
 * the buffer (the caller cuts those next).  Stops at a bad header, which
 * msgio_next() reports.
 */
static uint64_t partial_start(const struct msgio *m)
{
    size_t off = m->head;
    uint64_t pos = m->pos;
    struct vfu_hdr h;

    while (m->tail - off >= VFU_HDR_SIZE) {
        memcpy(&h, m->buf + off, sizeof(h));
        if (h.size < VFU_HDR_SIZE || h.size > m->max_size ||
            m->tail - off < h.size)
            break;
        off += h.size;
        pos += h.size;
    }
    return pos;
}

/*
 * The fds of the message still arriving, bounded while they arrive: a
 * peer that sends a big message a byte at a time with fds on every byte
 * would otherwise fill our fd table long before the message is cut (and
 * the per-message limit checked).  Past the limit, close that message's
 * fds at once and fail: the stream cannot be trusted any more.
 */
static int bound_fds(struct msgio *m)
{
    uint64_t start = partial_start(m);
    unsigned n = 0, keep = 0;

    for (unsigned i = 0; i < m->nchunks; i++)
        n += m->chunks[i].end > start;
    if (n <= m->max_fds)
        return 0;
    for (unsigned i = 0; i < m->nchunks; i++) {
        if (m->chunks[i].end > start)
            close(m->chunks[i].fd);
        else
            m->chunks[keep++] = m->chunks[i];
    }
    m->nchunks = keep;
    return -EPROTO;
}

static int fill(struct msgio *m, int flags)
{
    union {
        char buf[CMSG_SPACE(MSGIO_MAX_FDS * sizeof(int))];
        struct cmsghdr align;
    } ctl;
    struct msghdr mh = { 0 };
    struct iovec iov;
    struct cmsghdr *cm;
    ssize_t n;
    int err = 0, rc;

    rc = make_room(m, read_want(m));
    if (rc < 0)
        return rc;
    iov.iov_base = m->buf + m->tail;
    iov.iov_len = m->cap - m->tail;
    mh.msg_iov = &iov;
    mh.msg_iovlen = 1;
    mh.msg_control = ctl.buf;
    mh.msg_controllen = CMSG_SPACE(m->max_fds * sizeof(int));
    if (m->max_fds == 0)
        mh.msg_controllen = CMSG_SPACE(sizeof(int));

    do {
        n = recvmsg(m->fd, &mh, MSG_CMSG_CLOEXEC | flags);
    } while (n < 0 && errno == EINTR);
    if (n < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK)
            return -EAGAIN;
        if (errno == ECONNRESET || errno == EPIPE)
            return -ENOTCONN;
        return -errno;
    }

    /* Collect every fd, even when we are about to fail, so none leaks. */
    for (cm = CMSG_FIRSTHDR(&mh); cm != NULL; cm = CMSG_NXTHDR(&mh, cm)) {
        size_t nfd;
        int *fds = (int *)CMSG_DATA(cm);

        if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS)
            continue;
        nfd = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        for (size_t i = 0; i < nfd; i++) {
            int fd;

            memcpy(&fd, fds + i, sizeof(fd));
            if (err == 0 && m->max_fds > 0)
                err = push_fd(m, m->pos + (m->tail - m->head) + (size_t)n, fd);
            else
                err = err ? err : -EPROTO;
            if (err < 0)
                close(fd);
        }
    }
    if (mh.msg_flags & MSG_CTRUNC)
        err = -EPROTO;
    if (err < 0)
        return err;
    if (n == 0)
        return -ENOTCONN;

    if (m->tail == m->head && m->started_ns == 0)
        m->started_ns = mu_clock_ns(m->clock);
    m->tail += (size_t)n;
    if (m->nchunks > m->max_fds && (rc = bound_fds(m)) < 0)
        return rc;
    return (int)n;
}

int msgio_fill(struct msgio *m)
{
    return fill(m, MSG_DONTWAIT);
}

/* Blocking read bounded by SO_RCVTIMEO, set only when it changes. */
static int fill_wait(struct msgio *m, int timeout_ms)
{
    if (timeout_ms != m->rcvtimeo_ms) {
        struct timeval tv = { 0, 0 };

        if (timeout_ms > 0) {
            tv.tv_sec = timeout_ms / 1000;
            tv.tv_usec = (timeout_ms % 1000) * 1000;
        } else if (timeout_ms == 0) {
            tv.tv_usec = 1;     /* 0 would mean "forever" */
        }
        if (setsockopt(m->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) < 0)
            return -errno;
        m->rcvtimeo_ms = timeout_ms;
    }
    return fill(m, 0);
}

int msgio_next(struct msgio *m, struct mu_msg *out)
{
    size_t used = m->tail - m->head;
    uint64_t end;
    unsigned nfds = 0, keep = 0;
    int rc;

    memset(out, 0, sizeof(*out));
    if (used < VFU_HDR_SIZE)
        return 0;
    memcpy(&out->hdr, m->buf + m->head, sizeof(out->hdr));
    rc = vfu_hdr_check(&out->hdr, m->max_size);
    if (rc < 0)
        return rc;
    if (used < out->hdr.size)
        return 0;

    end = m->pos + out->hdr.size;
    for (unsigned i = 0; i < m->nchunks; i++)
        nfds += m->chunks[i].end <= end;
    if (nfds > m->max_fds)
        return -E2BIG;

    out->len = out->hdr.size - VFU_HDR_SIZE;
    if (out->len > 0) {
        out->body = malloc(out->len);
        if (out->body == NULL)
            return -ENOMEM;
        memcpy(out->body, m->buf + m->head + VFU_HDR_SIZE, out->len);
    }
    if (nfds > 0) {
        out->fds = malloc(nfds * sizeof(int));
        if (out->fds == NULL) {
            free(out->body);
            out->body = NULL;
            return -ENOMEM;
        }
    }
    for (unsigned i = 0; i < m->nchunks; i++) {
        if (m->chunks[i].end <= end)
            out->fds[out->nfds++] = m->chunks[i].fd;
        else
            m->chunks[keep++] = m->chunks[i];
    }
    m->nchunks = keep;

    m->head += out->hdr.size;
    m->pos += out->hdr.size;
    if (m->head == m->tail) {
        m->head = m->tail = 0;
        m->started_ns = 0;
    } else {
        /* The next message has (partly) arrived already. */
        m->started_ns = mu_clock_ns(m->clock);
    }
    return 1;
}

static int poll_one(int fd, short events, int timeout_ms)
{
    struct pollfd p = { .fd = fd, .events = events };
    int n;

    do {
        n = poll(&p, 1, timeout_ms);
    } while (n < 0 && errno == EINTR);
    if (n < 0)
        return -errno;
    if (n == 0)
        return -ETIMEDOUT;
    return 0;
}

static int remaining_ms(uint64_t deadline)
{
    uint64_t now = mu_now_ns();

    if (now >= deadline)
        return 0;
    return (int)((deadline - now + 999999) / 1000000);
}

int msgio_recv(struct msgio *m, struct mu_msg *out, int timeout_ms)
{
    uint64_t deadline = 0;
    int rc;

    if (timeout_ms >= 0)
        deadline = mu_now_ns() + (uint64_t)timeout_ms * 1000000ull;
    for (bool first = true;; first = false) {
        rc = msgio_next(m, out);
        if (rc != 0)
            return rc;
        /*
         * A message already buffered is handed out even at timeout 0, but
         * a peer trickling bytes (one a sendmsg) never lets the reads
         * below come back empty: the deadline must end the wait itself.
         */
        if (!first && timeout_ms >= 0 && mu_now_ns() >= deadline)
            return -ETIMEDOUT;
        if (m->blocking) {
            int left = timeout_ms < 0 ? -1 : remaining_ms(deadline);

            rc = fill_wait(m, left);
            if (rc > 0)
                continue;
            if (rc != -EAGAIN)
                return rc;
            if (timeout_ms >= 0 && remaining_ms(deadline) == 0)
                return -ETIMEDOUT;
            continue;
        }
        rc = msgio_fill(m);
        if (rc > 0)
            continue;
        if (rc != -EAGAIN)
            return rc;
        rc = poll_one(m->fd, POLLIN, timeout_ms < 0 ? -1 : remaining_ms(deadline));
        if (rc < 0)
            return rc;
    }
}

int msgio_send(struct msgio *m, const struct iovec *iov_in, int iovcnt,
               const int *fds, unsigned nfds, int timeout_ms)
{
    union {
        char buf[CMSG_SPACE(MSGIO_MAX_FDS * sizeof(int))];
        struct cmsghdr align;
    } ctl;
    struct iovec iov[8];
    struct msghdr mh = { 0 };
    uint64_t deadline = 0;
    int i, rc;

    if (iovcnt < 1 || iovcnt > 8 || nfds > MSGIO_MAX_FDS)
        return -EINVAL;
    memcpy(iov, iov_in, (size_t)iovcnt * sizeof(*iov));
    mh.msg_iov = iov;
    mh.msg_iovlen = (size_t)iovcnt;
    if (nfds > 0) {
        struct cmsghdr *cm;

        memset(ctl.buf, 0, sizeof(ctl.buf));
        mh.msg_control = ctl.buf;
        mh.msg_controllen = CMSG_SPACE(nfds * sizeof(int));
        cm = CMSG_FIRSTHDR(&mh);
        cm->cmsg_level = SOL_SOCKET;
        cm->cmsg_type = SCM_RIGHTS;
        cm->cmsg_len = CMSG_LEN(nfds * sizeof(int));
        memcpy(CMSG_DATA(cm), fds, nfds * sizeof(int));
    }
    if (timeout_ms >= 0)
        deadline = mu_now_ns() + (uint64_t)timeout_ms * 1000000ull;

    i = 0;
    while (i < iovcnt) {
        ssize_t n = sendmsg(m->fd, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);

        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                rc = poll_one(m->fd, POLLOUT,
                              timeout_ms < 0 ? -1 : remaining_ms(deadline));
                if (rc < 0)
                    return rc;
                continue;
            }
            if (errno == EPIPE || errno == ECONNRESET)
                return -ENOTCONN;
            return -errno;
        }
        /* fds go with the first byte only. */
        mh.msg_control = NULL;
        mh.msg_controllen = 0;
        while (i < iovcnt && (size_t)n >= iov[i].iov_len) {
            n -= (ssize_t)iov[i].iov_len;
            i++;
        }
        if (i < iovcnt) {
            iov[i].iov_base = (char *)iov[i].iov_base + n;
            iov[i].iov_len -= (size_t)n;
        }
        mh.msg_iov = iov + i;
        mh.msg_iovlen = (size_t)(iovcnt - i);
    }
    return 0;
}

/* ---------------- framing without a socket ---------------- */

int msgio_init_mem(struct msgio *m, uint32_t max_size, unsigned max_fds)
{
    memset(m, 0, sizeof(*m));
    m->fd = -1;
    if (max_size < VFU_HDR_SIZE || max_fds > MSGIO_MAX_FDS)
        return -EINVAL;
    m->rcvtimeo_ms = -2;
    m->max_size = max_size;
    m->max_fds = max_fds;
    return 0;
}

int msgio_reset_mem(struct msgio *m, uint32_t max_size, unsigned max_fds)
{
    uint8_t *buf = m->buf;
    size_t cap = m->cap;
    struct msgio_fdchunk *chunks = m->chunks;
    unsigned chunk_cap = m->chunk_cap;
    int rc;

    for (unsigned i = 0; i < m->nchunks; i++)
        close(m->chunks[i].fd);
    m->nchunks = 0;
    rc = msgio_init_mem(m, max_size, max_fds);
    /* A client after client: the buffers of the last one serve again (a
     * fuzzer connects one per input; each allocation is page faults). */
    m->buf = buf;
    m->cap = cap;
    m->chunks = chunks;
    m->chunk_cap = chunk_cap;
    return rc;
}

int msgio_push(struct msgio *m, const void *data, size_t len, int *fds,
               unsigned nfds)
{
    /* fill() offers the kernel room for max_fds fds; what CMSG_SPACE's
     * rounding adds fits as well, more is MSG_CTRUNC. */
    size_t room = m->max_fds == 0 ? 0 :
        (CMSG_SPACE(m->max_fds * sizeof(int)) - CMSG_LEN(0)) / sizeof(int);
    int err = nfds > room ? -EPROTO : 0;

    if (err == 0 && len > 0)
        err = make_room(m, len);
    for (unsigned i = 0; i < nfds; i++) {
        if (err == 0)
            err = push_fd(m, m->pos + (m->tail - m->head) + len, fds[i]);
        if (err < 0)
            close(fds[i]);
        fds[i] = -1;
    }
    if (err < 0)
        return err;
    if (len == 0)
        return -ENOTCONN;
    if (m->tail == m->head && m->started_ns == 0)
        m->started_ns = mu_now_ns();
    memcpy(m->buf + m->tail, data, len);
    m->tail += len;
    return (int)len;
}
