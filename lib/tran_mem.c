/*
 * tran_mem.c - the in-memory transport (see tran_mem.h).
 *
 * Two byte queues, one each way.  A write appends its bytes and dups of
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
#define MEM_KEEP_BYTES (256u << 10) /* a bigger buffer goes at q_clear */

/*
 * One direction's queue, with no allocation per write: the unread bytes
 * in one buffer, and for each write that carried fds a record of where it
 * starts and ends in the stream and how many of fds[] are its (oldest
 * first).  Writes without fds leave no trace but their bytes: a read
 * joins them, as a stream socket does.  The buffers are kept from one
 * client to the next.
 */
struct mem_fdw {
    uint64_t start, end;        /* stream offsets of the write's bytes */
    unsigned nfds;              /* fds[fh...] go with byte start */
};

struct mem_queue {
    uint8_t *buf;
    size_t cap, head, tail;     /* bytes buf[head, tail) are unread */
    uint64_t pos;               /* stream offset of buf[head] */
    struct mem_fdw *w;          /* w[wh, wt): fd-carrying writes */
    unsigned wh, wt, wcap;
    int *fds;                   /* fds[fh, ft): theirs, in order */
    unsigned fh, ft, fcap;
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

static bool q_empty(const struct mem_queue *q)
{
    return q->head == q->tail;
}

/* Forget everything unread (its fds closed); the buffers stay, unless
 * a flood made the byte buffer big. */
static void q_clear(struct mem_queue *q)
{
    for (unsigned i = q->fh; i < q->ft; i++)
        close(q->fds[i]);
    q->head = q->tail = 0;
    q->pos = 0;
    q->wh = q->wt = 0;
    q->fh = q->ft = 0;
    if (q->cap > MEM_KEEP_BYTES) {
        free(q->buf);
        q->buf = NULL;
        q->cap = 0;
    }
}

static void q_free(struct mem_queue *q)
{
    q_clear(q);
    free(q->buf);
    free(q->w);
    free(q->fds);
    memset(q, 0, sizeof(*q));
}

/* Room for len more bytes at buf[tail]: moves the unread bytes to the
 * front or grows the buffer.  0 or -ENOMEM. */
static int q_room(struct mem_queue *q, size_t len)
{
    size_t used = q->tail - q->head, ncap;
    uint8_t *n;

    if (len <= q->cap - q->tail)
        return 0;
    if (q->head > 0) {
        memmove(q->buf, q->buf + q->head, used);
        q->head = 0;
        q->tail = used;
        if (len <= q->cap - q->tail)
            return 0;
    }
    /* used + len <= MU_MEM_QUEUE_MAX (checked): no overflow. */
    ncap = q->cap < 4096 ? 4096 : q->cap;
    while (ncap < used + len)
        ncap *= 2;
    n = realloc(q->buf, ncap);
    if (n == NULL)
        return -ENOMEM;
    q->buf = n;
    q->cap = ncap;
    return 0;
}

/* Room for one more record and nfds more fds.  0 or -ENOMEM. */
static int q_room_fds(struct mem_queue *q, unsigned nfds)
{
    if (q->wh > 0 && q->wt == q->wcap) {
        memmove(q->w, q->w + q->wh, (q->wt - q->wh) * sizeof(*q->w));
        q->wt -= q->wh;
        q->wh = 0;
    }
    if (q->wt == q->wcap) {
        unsigned ncap = q->wcap == 0 ? 8 : q->wcap * 2;
        struct mem_fdw *n = realloc(q->w, ncap * sizeof(*n));

        if (n == NULL)
            return -ENOMEM;
        q->w = n;
        q->wcap = ncap;
    }
    if (q->fh > 0 && nfds > q->fcap - q->ft) {
        memmove(q->fds, q->fds + q->fh, (q->ft - q->fh) * sizeof(int));
        q->ft -= q->fh;
        q->fh = 0;
    }
    if (nfds > q->fcap - q->ft) {
        unsigned ncap = q->fcap == 0 ? 16 : q->fcap;
        int *n;

        while (ncap - q->ft < nfds)
            ncap *= 2;
        n = realloc(q->fds, ncap * sizeof(int));
        if (n == NULL)
            return -ENOMEM;
        q->fds = n;
        q->fcap = ncap;
    }
    return 0;
}

/* Append one write: iov's bytes, dups of fds.  0 or -errno. */
static int q_write(struct mem_queue *q, const struct iovec *iov, int iovcnt,
                   const int *fds, unsigned nfds)
{
    size_t len = 0, bytes = q->tail - q->head;
    unsigned got = 0;
    int rc;

    if (iovcnt < 0 || nfds > MSGIO_MAX_FDS || (nfds > 0 && fds == NULL))
        return -EINVAL;
    for (int i = 0; i < iovcnt; i++) {
        if (iov[i].iov_len > MU_MEM_QUEUE_MAX - len)
            return -ENOBUFS;
        len += iov[i].iov_len;
    }
    if (len == 0)
        return 0;       /* a stream socket sends nothing, fds included */
    if (len > MU_MEM_QUEUE_MAX - bytes)
        return -ENOBUFS;
    if ((rc = q_room(q, len)) < 0 ||
        (nfds > 0 && (rc = q_room_fds(q, nfds)) < 0))
        return rc;
    for (; got < nfds; got++) {
        int fd = fcntl(fds[got], F_DUPFD_CLOEXEC, 0);

        if (fd < 0) {
            rc = -errno;
            while (got > 0)
                close(q->fds[q->ft + --got]);
            return rc;
        }
        q->fds[q->ft + got] = fd;
    }
    if (nfds > 0) {
        q->w[q->wt++] = (struct mem_fdw){ q->pos + bytes,
                                          q->pos + bytes + len, nfds };
        q->ft += nfds;
    }
    for (int i = 0; i < iovcnt; i++) {
        if (iov[i].iov_len > 0)
            memcpy(q->buf + q->tail, iov[i].iov_base, iov[i].iov_len);
        q->tail += iov[i].iov_len;
    }
    return 0;
}

/*
 * The next piece of one read: up to 'room' bytes from the front (room >
 * 0, the queue not empty), up to the next fd-carrying write, or that
 * write itself when it is in front, with its fds.  Returns the bytes at
 * *p (len returned; q_advance after use) and points *fds at the fds
 * (*nfds; the caller takes them); *last says the read must end here.
 */
static size_t q_take(struct mem_queue *q, size_t room, const uint8_t **p,
                     int **fds, unsigned *nfds, bool *last)
{
    size_t n = q->tail - q->head;

    *p = q->buf + q->head;
    *fds = NULL;
    *nfds = 0;
    *last = false;
    if (q->wh < q->wt) {
        struct mem_fdw *w = &q->w[q->wh];

        if (w->start == q->pos) {
            n = (size_t)(w->end - w->start);
            *fds = q->fds + q->fh;
            *nfds = w->nfds;
            q->fh += w->nfds;
            q->wh++;
            *last = true;
        } else if (w->start - q->pos < n) {
            n = (size_t)(w->start - q->pos);
        }
    }
    return n < room ? n : room;
}

/* Consume n bytes from the front (after using q_take's pointer). */
static void q_advance(struct mem_queue *q, size_t n)
{
    q->head += n;
    q->pos += n;
    if (q->head == q->tail)
        q->head = q->tail = 0;
    if (q->wh == q->wt)
        q->wh = q->wt = 0;
    if (q->fh == q->ft)
        q->fh = q->ft = 0;
}

/* One read from q into io: > 0 bytes, -EAGAIN when empty, or
 * msgio_push()'s error. */
static int q_read_msgio(struct mem_queue *q, struct msgio *io)
{
    size_t total = 0;

    if (q_empty(q))
        return -EAGAIN;
    while (!q_empty(q) && total < MEM_READ_MAX) {
        const uint8_t *p;
        unsigned nfds;
        bool last;
        int *fds, rc;
        size_t n = q_take(q, MEM_READ_MAX - total, &p, &fds, &nfds, &last);

        /* msgio takes the fds, on failure too. */
        rc = msgio_push(io, p, n, fds, nfds);
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
    while (!q_empty(q) && total < cap) {
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
    bool want = !m->direct && (!q_empty(&m->in) || m->hung_up);

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

/* The waiting client becomes the attached one.  Lock held. */
static int take_client(mu_ctx_t *ctx, struct mem *m)
{
    int rc;

    if (m->state != MEM_WAITING)
        return -EAGAIN;
    rc = msgio_reset_mem(&m->io, (uint32_t)ctx->limits[MU_LIMIT_MSG_SIZE],
                         (unsigned)ctx->limits[MU_LIMIT_MSG_FDS]);
    if (rc < 0) {
        /* Refused: the client sees the server gone. */
        m->state = MEM_IDLE;
        m->dropped = true;
        q_clear(&m->in);
        return rc;
    }
    m->conn = m->spare;         /* unrung since the last detach */
    m->spare = -1;
    m->state = MEM_ATTACHED;
    m->conn_ready = false;
    conn_update(m);
    return 0;
}

/*
 * No fds here: a socket is the socket transport's.  fd -1 is
 * mu_mem_attach()'s client, waiting without the bell rung.
 */
static int mem_attach_fd(mu_ctx_t *ctx, int fd)
{
    struct mem *m = ctx->tran_priv;
    int rc;

    if (fd >= 0) {
        close(fd);
        return -EOPNOTSUPP;
    }
    pthread_mutex_lock(&m->lock);
    rc = take_client(ctx, m);
    pthread_mutex_unlock(&m->lock);
    return rc;
}

static int mem_accept(mu_ctx_t *ctx)
{
    struct mem *m = ctx->tran_priv;
    int rc;

    pthread_mutex_lock(&m->lock);
    unring(m->bell);
    rc = take_client(ctx, m);
    pthread_mutex_unlock(&m->lock);
    return rc;
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
    q_free(&m->in);
    q_free(&m->out);
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

/* A new client waits: the last one's leftovers go.  Lock held. */
static int arrive(struct mem *m)
{
    if (m->state != MEM_IDLE)
        return -EBUSY;
    q_clear(&m->in);
    q_clear(&m->out);
    m->hung_up = m->dropped = false;
    m->state = MEM_WAITING;
    return 0;
}

int mu_mem_connect(mu_ctx_t *ctx)
{
    struct mem *m = mem_of(ctx);
    int rc;

    if (m == NULL)
        return -EINVAL;
    pthread_mutex_lock(&m->lock);
    rc = arrive(m);
    if (rc == 0)
        ring(m->bell);
    pthread_mutex_unlock(&m->lock);
    return rc;
}

int mu_mem_attach(mu_ctx_t *ctx)
{
    struct mem *m = mem_of(ctx);
    int rc;

    if (m == NULL)
        return -EINVAL;
    pthread_mutex_lock(&m->lock);
    rc = arrive(m);
    pthread_mutex_unlock(&m->lock);
    if (rc < 0)
        return rc;
    /* The context's path for a connected client (mem_attach_fd, fd -1:
     * the one waiting); the lock is not held across it, as for accept. */
    rc = mu_ctx_attach_fd(ctx, -1);
    if (rc < 0) {
        pthread_mutex_lock(&m->lock);
        if (m->state == MEM_WAITING) {
            /* The context was busy or not realized: nobody came. */
            m->state = MEM_IDLE;
            m->dropped = true;
        }
        pthread_mutex_unlock(&m->lock);
    }
    return rc;
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
    if (n == 0 && q_empty(&m->out) && m->dropped)
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
    r = m->state == MEM_ATTACHED && (!q_empty(&m->in) || m->hung_up);
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
