/*
 * tran_mem.c - the in-memory transport (see tran_mem.h).
 *
 * Two queues of writes, one each way.  A write keeps its bytes and dups of
 * its fds; a read takes whole or partial writes up to MEM_READ_MAX bytes
 * and stops after one that carried fds, which is how a UNIX stream socket
 * returns them (msgio.c relies on that to give each message its fds).
 * The "listening" fd is an eventfd the harness rings by connecting, and
 * the client fd another one (the same for every client), readable while
 * the client has sent something the server has not read (or hung up): the
 * context's epoll loop, accept path and timers run unchanged.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "client_priv.h"
#include "private.h"
#include "tran_mem.h"

#define MEM_READ_MAX 65536u     /* bytes one read returns at most */

struct mem_write {
    struct mem_write *next;
    size_t len, off;            /* bytes [off, len) are still unread */
    unsigned nfds;              /* fds[] go with byte 0 */
    int *fds;
    uint8_t data[];
};

struct mem_queue {
    struct mem_write *head, **tail;
    size_t bytes;               /* unread */
};

enum mem_state { MEM_IDLE, MEM_WAITING, MEM_ATTACHED };

struct mem {
    pthread_mutex_t lock;       /* everything below */
    int bell;                   /* eventfd: a client waits to be accepted */
    int conn;                   /* eventfd: the client's fd, -1 if none */
    int spare;                  /* conn while no client is attached: one
                                   eventfd for the transport's life, not
                                   one per client */
    bool conn_ready;            /* conn is signalled */
    enum mem_state state;
    bool hung_up;               /* the client closed its end */
    bool dropped;               /* the server closed its end */
    bool direct;                /* the caller serves pending bytes itself
                                   (mu_mem_set_direct): conn stays quiet */
    struct msgio io;            /* framing of what the server read */
    struct mem_queue in, out;   /* client -> server, server -> client */
};

/* ---------------- queues ---------------- */

static void q_init(struct mem_queue *q)
{
    q->head = NULL;
    q->tail = &q->head;
    q->bytes = 0;
}

static void w_free(struct mem_write *w)
{
    for (unsigned i = 0; i < w->nfds; i++) {
        if (w->fds[i] >= 0)
            close(w->fds[i]);
    }
    free(w->fds);
    free(w);
}

static void q_clear(struct mem_queue *q)
{
    while (q->head != NULL) {
        struct mem_write *w = q->head;

        q->head = w->next;
        w_free(w);
    }
    q_init(q);
}

/* Append one write: iov's bytes, dups of fds.  0 or -errno. */
static int q_write(struct mem_queue *q, const struct iovec *iov, int iovcnt,
                   const int *fds, unsigned nfds)
{
    struct mem_write *w;
    size_t len = 0, off = 0;

    if (iovcnt < 0 || nfds > MSGIO_MAX_FDS || (nfds > 0 && fds == NULL))
        return -EINVAL;
    for (int i = 0; i < iovcnt; i++) {
        if (iov[i].iov_len > MU_MEM_QUEUE_MAX - len)
            return -ENOBUFS;
        len += iov[i].iov_len;
    }
    if (len == 0)
        return 0;       /* a stream socket sends nothing, fds included */
    if (len > MU_MEM_QUEUE_MAX - q->bytes)
        return -ENOBUFS;
    w = malloc(sizeof(*w) + len);
    if (w == NULL)
        return -ENOMEM;
    w->next = NULL;
    w->len = len;
    w->off = 0;
    w->nfds = 0;
    w->fds = NULL;
    if (nfds > 0 && (w->fds = malloc(nfds * sizeof(int))) == NULL) {
        free(w);
        return -ENOMEM;
    }
    for (unsigned i = 0; i < nfds; i++) {
        int fd = fcntl(fds[i], F_DUPFD_CLOEXEC, 0);

        if (fd < 0) {
            int err = -errno;

            w_free(w);
            return err;
        }
        w->fds[w->nfds++] = fd;
    }
    for (int i = 0; i < iovcnt; i++) {
        if (iov[i].iov_len > 0)
            memcpy(w->data + off, iov[i].iov_base, iov[i].iov_len);
        off += iov[i].iov_len;
    }
    *q->tail = w;
    q->tail = &w->next;
    q->bytes += len;
    return 0;
}

/*
 * The next piece of one read: up to 'room' bytes of the write in front,
 * with its fds when this is its first byte.  Returns the write's bytes at
 * *p (len returned) and moves its fds to *fds (count *nfds, the array is
 * the caller's to free); *last says the read must end here.
 */
static size_t q_take(struct mem_queue *q, size_t room, const uint8_t **p,
                     int **fds, unsigned *nfds, bool *last)
{
    struct mem_write *w = q->head;
    size_t n = w->len - w->off;

    if (n > room)
        n = room;
    *p = w->data + w->off;
    *fds = NULL;
    *nfds = 0;
    *last = false;
    if (w->off == 0 && w->nfds > 0) {
        *fds = w->fds;
        *nfds = w->nfds;
        w->fds = NULL;
        w->nfds = 0;
        *last = true;
    }
    return n;
}

/* Consume n bytes of the write in front (after using q_take's pointer). */
static void q_advance(struct mem_queue *q, size_t n)
{
    struct mem_write *w = q->head;

    w->off += n;
    q->bytes -= n;
    if (w->off == w->len) {
        q->head = w->next;
        if (q->head == NULL)
            q->tail = &q->head;
        w_free(w);
    }
}

/* One read from q into io: > 0 bytes, -EAGAIN when empty, or
 * msgio_push()'s error. */
static int q_read_msgio(struct mem_queue *q, struct msgio *io)
{
    size_t total = 0;

    if (q->head == NULL)
        return -EAGAIN;
    while (q->head != NULL && total < MEM_READ_MAX) {
        const uint8_t *p;
        unsigned nfds;
        bool last;
        int *fds, rc;
        size_t n = q_take(q, MEM_READ_MAX - total, &p, &fds, &nfds, &last);

        rc = msgio_push(io, p, n, fds, nfds);
        free(fds);
        if (rc < 0)
            return rc;
        q_advance(q, n);
        total += n;
        if (last)
            break;
    }
    return (int)total;
}

/* One read from q into buf and fds[] (see mu_mem_recv). */
static size_t q_read(struct mem_queue *q, uint8_t *buf, size_t cap, int *fds,
                     unsigned max_fds, unsigned *nfds)
{
    size_t total = 0;

    *nfds = 0;
    while (q->head != NULL && total < cap) {
        const uint8_t *p;
        unsigned got;
        bool last;
        int *wfds;
        size_t n = q_take(q, cap - total, &p, &wfds, &got, &last);

        memcpy(buf + total, p, n);
        for (unsigned i = 0; i < got; i++) {
            if (*nfds < max_fds)
                fds[(*nfds)++] = wfds[i];
            else
                close(wfds[i]);
        }
        free(wfds);
        q_advance(q, n);
        total += n;
        if (last)
            break;
    }
    return total;
}

/* ---------------- the client's fd ---------------- */

static void ring(int fd)
{
    uint64_t one = 1;

    if (write(fd, &one, sizeof(one)) < 0) {
        /* cannot overflow: we read it back before it gets anywhere */
    }
}

static void unring(int fd)
{
    uint64_t v;

    if (read(fd, &v, sizeof(v)) < 0) {
        /* EAGAIN: was not rung */
    }
}

/* Keep conn readable exactly while the server has something to read
 * (never in direct mode).  Lock held. */
static void conn_update(struct mem *m)
{
    bool want = !m->direct && (m->in.head != NULL || m->hung_up);

    if (m->conn < 0 || want == m->conn_ready)
        return;
    if (want)
        ring(m->conn);
    else
        unring(m->conn);
    m->conn_ready = want;
}

/* ---------------- transport ops ---------------- */

static struct mem *mem_of(mu_ctx_t *ctx)
{
    return ctx->tran == &mu_tran_mem_ops ? ctx->tran_priv : NULL;
}

static int mem_init(mu_ctx_t *ctx)
{
    struct mem *m = calloc(1, sizeof(*m));

    if (m == NULL)
        return -ENOMEM;
    m->bell = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    m->spare = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (m->bell < 0 || m->spare < 0) {
        int err = -errno;

        if (m->bell >= 0)
            close(m->bell);
        if (m->spare >= 0)
            close(m->spare);
        free(m);
        return err;
    }
    pthread_mutex_init(&m->lock, NULL);
    m->conn = -1;
    msgio_init_mem(&m->io, 0xffffffffu, 0);
    q_init(&m->in);
    q_init(&m->out);
    ctx->tran_priv = m;
    return 0;
}

static int mem_accept_fd(mu_ctx_t *ctx)
{
    return ((struct mem *)ctx->tran_priv)->bell;
}

/* Only the context thread attaches and detaches, so conn is stable here. */
static int mem_poll_fd(mu_ctx_t *ctx)
{
    return ((struct mem *)ctx->tran_priv)->conn;
}

/* No fds here: a socket is the socket transport's. */
static int mem_attach_fd(mu_ctx_t *ctx, int fd)
{
    (void)ctx;
    close(fd);
    return -EOPNOTSUPP;
}

static int mem_accept(mu_ctx_t *ctx)
{
    struct mem *m = ctx->tran_priv;
    int rc;

    pthread_mutex_lock(&m->lock);
    unring(m->bell);
    if (m->state != MEM_WAITING) {
        pthread_mutex_unlock(&m->lock);
        return -EAGAIN;
    }
    rc = msgio_reset_mem(&m->io, (uint32_t)ctx->limits[MU_LIMIT_MSG_SIZE],
                         (unsigned)ctx->limits[MU_LIMIT_MSG_FDS]);
    if (rc < 0) {
        /* Refused: the client sees the server gone. */
        m->state = MEM_IDLE;
        m->dropped = true;
        q_clear(&m->in);
        pthread_mutex_unlock(&m->lock);
        return rc;
    }
    m->conn = m->spare;         /* unrung since the last detach */
    m->spare = -1;
    m->state = MEM_ATTACHED;
    m->conn_ready = false;
    conn_update(m);
    pthread_mutex_unlock(&m->lock);
    return 0;
}

static int mem_read(mu_ctx_t *ctx)
{
    struct mem *m = ctx->tran_priv;
    int rc;

    pthread_mutex_lock(&m->lock);
    rc = q_read_msgio(&m->in, &m->io);
    if (rc == -EAGAIN && m->hung_up)
        rc = -ENOTCONN;
    conn_update(m);
    pthread_mutex_unlock(&m->lock);
    return rc;
}

/* Only the context thread reads, so next and partial_since need no lock
 * against mem_read; detach (which frees io) is the context thread's too. */
static int mem_next(mu_ctx_t *ctx, struct mu_msg *msg)
{
    struct mem *m = ctx->tran_priv;

    return msgio_next(&m->io, msg);
}

static uint64_t mem_partial_since(mu_ctx_t *ctx)
{
    struct mem *m = ctx->tran_priv;

    return msgio_partial(&m->io) ? m->io.started_ns : 0;
}

static int mem_send(mu_ctx_t *ctx, const struct iovec *iov, int iovcnt,
                    const int *fds, unsigned nfds)
{
    struct mem *m = ctx->tran_priv;
    int rc;

    pthread_mutex_lock(&m->lock);
    if (m->hung_up)
        rc = -ENOTCONN;
    else
        rc = q_write(&m->out, iov, iovcnt, fds, nfds);
    pthread_mutex_unlock(&m->lock);
    /* A client that lets that much pile up is not reading: a socket
     * would block for the send timeout and then fail the same way. */
    return rc == -ENOBUFS ? -ETIMEDOUT : rc;
}

static void mem_detach(mu_ctx_t *ctx)
{
    struct mem *m = ctx->tran_priv;

    pthread_mutex_lock(&m->lock);
    q_clear(&m->in);
    /* Forgets the client's bytes and closes its fds; the buffer stays
     * for the next client (msgio_fini in mem_fini frees it). */
    msgio_reset_mem(&m->io, m->io.max_size, m->io.max_fds);
    /* The context no longer watches it: quiet, it serves the next. */
    if (m->conn >= 0 && m->conn_ready)
        unring(m->conn);
    if (m->conn >= 0)
        m->spare = m->conn;
    m->conn = -1;
    m->conn_ready = false;
    m->state = MEM_IDLE;
    m->dropped = true;      /* what was sent stays readable */
    pthread_mutex_unlock(&m->lock);
}

static void mem_fini(mu_ctx_t *ctx)
{
    struct mem *m = ctx->tran_priv;

    if (m == NULL)
        return;
    q_clear(&m->in);
    q_clear(&m->out);
    msgio_fini(&m->io);
    if (m->conn >= 0)
        close(m->conn);
    if (m->spare >= 0)
        close(m->spare);
    close(m->bell);
    pthread_mutex_destroy(&m->lock);
    free(m);
    ctx->tran_priv = NULL;
}

const struct mu_tran_ops mu_tran_mem_ops = {
    .name = "memory",
    .default_overlap = MU_OVERLAP_REJECT,   /* DMA_UNMAP is delivered */
    .init = mem_init,
    .accept_fd = mem_accept_fd,
    .poll_fd = mem_poll_fd,
    .accept = mem_accept,
    .attach_fd = mem_attach_fd,
    .read = mem_read,
    .next = mem_next,
    .partial_since = mem_partial_since,
    .send = mem_send,
    .detach = mem_detach,
    .fini = mem_fini,
    /* The bell rings only from mu_mem_connect(), which waits for the
     * last client to be gone; conn is the same eventfd for every client,
     * unrung at detach and rung only while one is attached. */
    .listen_quiet = true,
    .fixed_poll_fd = true,
};

/* ---------------- the client's side ---------------- */

int mu_ctx_use_mem(mu_ctx_t *ctx)
{
    if (ctx->realized)
        return -EBUSY;
    ctx->tran = &mu_tran_mem_ops;
    return 0;
}

int mu_mem_connect(mu_ctx_t *ctx)
{
    struct mem *m = mem_of(ctx);

    if (m == NULL)
        return -EINVAL;
    pthread_mutex_lock(&m->lock);
    if (m->state != MEM_IDLE) {
        pthread_mutex_unlock(&m->lock);
        return -EBUSY;
    }
    q_clear(&m->in);
    q_clear(&m->out);
    m->hung_up = m->dropped = false;
    m->state = MEM_WAITING;
    ring(m->bell);
    pthread_mutex_unlock(&m->lock);
    return 0;
}

int mu_mem_sendv(mu_ctx_t *ctx, const struct iovec *iov, int iovcnt,
                 const int *fds, unsigned nfds)
{
    struct mem *m = mem_of(ctx);
    int rc;

    if (m == NULL)
        return -EINVAL;
    pthread_mutex_lock(&m->lock);
    if (m->state == MEM_IDLE || m->hung_up) {
        rc = -ENOTCONN;
    } else {
        rc = q_write(&m->in, iov, iovcnt, fds, nfds);
        conn_update(m);
    }
    pthread_mutex_unlock(&m->lock);
    return rc;
}

int mu_mem_send(mu_ctx_t *ctx, const void *buf, size_t len, const int *fds,
                unsigned nfds)
{
    struct iovec iov = { (void *)buf, len };

    if (len > 0 && buf == NULL)
        return -EINVAL;
    return mu_mem_sendv(ctx, &iov, 1, fds, nfds);
}

ssize_t mu_mem_recv(mu_ctx_t *ctx, void *buf, size_t cap, int *fds,
                    unsigned max_fds, unsigned *nfds)
{
    struct mem *m = mem_of(ctx);
    ssize_t n;

    *nfds = 0;
    if (m == NULL || (cap > 0 && buf == NULL) || (max_fds > 0 && fds == NULL))
        return -EINVAL;
    pthread_mutex_lock(&m->lock);
    n = (ssize_t)q_read(&m->out, buf, cap, fds, max_fds, nfds);
    if (n == 0 && m->out.head == NULL && m->dropped)
        n = -ENOTCONN;
    pthread_mutex_unlock(&m->lock);
    return n;
}

void mu_mem_hang_up(mu_ctx_t *ctx)
{
    struct mem *m = mem_of(ctx);

    if (m == NULL)
        return;
    pthread_mutex_lock(&m->lock);
    /* Nobody will read what the server sent, even after it dropped the
     * client: its fds go, as a closed socket's would. */
    q_clear(&m->out);
    if (m->state != MEM_IDLE) {
        m->hung_up = true;
        conn_update(m);
    }
    pthread_mutex_unlock(&m->lock);
}

bool mu_mem_attached(mu_ctx_t *ctx)
{
    struct mem *m = mem_of(ctx);
    bool r;

    if (m == NULL)
        return false;
    pthread_mutex_lock(&m->lock);
    r = m->state == MEM_ATTACHED;
    pthread_mutex_unlock(&m->lock);
    return r;
}

bool mu_mem_pending(mu_ctx_t *ctx)
{
    struct mem *m = mem_of(ctx);
    bool r;

    if (m == NULL)
        return false;
    pthread_mutex_lock(&m->lock);
    r = m->state == MEM_ATTACHED && (m->in.head != NULL || m->hung_up);
    pthread_mutex_unlock(&m->lock);
    return r;
}

void mu_mem_set_direct(mu_ctx_t *ctx, bool on)
{
    struct mem *m = mem_of(ctx);

    if (m == NULL)
        return;
    pthread_mutex_lock(&m->lock);
    m->direct = on;
    conn_update(m);
    pthread_mutex_unlock(&m->lock);
}

const struct msgio *mu_mem_msgio(mu_ctx_t *ctx)
{
    struct mem *m = mem_of(ctx);

    return m != NULL && m->state == MEM_ATTACHED ? &m->io : NULL;
}

/* ---------------- a client library connection over it ---------------- */

/* Rounds of mu_ctx_poll() a read tries before it calls it a timeout: an
 * accept and a message take one each; the rest is margin. */
#define MEM_LINK_POLLS 64

static int link_fill(void *arg, struct msgio *io, int timeout_ms)
{
    mu_ctx_t *ctx = arg;
    struct mem *m = mem_of(ctx);

    (void)timeout_ms;       /* nothing can arrive but what polls produce */
    if (m == NULL)
        return -ENOTCONN;
    for (int i = 0; i <= MEM_LINK_POLLS; i++) {
        int rc;

        pthread_mutex_lock(&m->lock);
        rc = q_read_msgio(&m->out, io);
        if (rc == -EAGAIN && m->dropped)
            rc = -ENOTCONN;
        pthread_mutex_unlock(&m->lock);
        if (rc != -EAGAIN)
            return rc;
        if (i < MEM_LINK_POLLS && (rc = mu_ctx_poll(ctx)) < 0)
            return rc == -ESHUTDOWN ? -ENOTCONN : rc;
    }
    return -ETIMEDOUT;
}

static int link_send(void *arg, const struct iovec *iov, int iovcnt,
                     const int *fds, unsigned nfds)
{
    return mu_mem_sendv(arg, iov, iovcnt, fds, nfds);
}

const struct muc_link mu_mem_muc_link = {
    .fill = link_fill,
    .send = link_send,
};
