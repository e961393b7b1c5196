/*
 * tran_sock.c - the UNIX stream socket transport.
 *
 * The socket file is the only access control vfio-user has, so it is
 * created with a restrictive mode (0600 unless told otherwise) by binding
 * under a umask that already gives that mode: a chmod after bind would leave
 * a window where the file is open to others.  An optional allow-list of peer
 * uids, checked with SO_PEERCRED, narrows it further.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "private.h"

/* The socket transport's state (ctx->tran_priv). */
struct sock {
    int listen_fd;
    int conn_fd;                /* -1 when no client */
    struct msgio io;            /* the client's framing */
};

static struct sock *sock_of(mu_ctx_t *ctx)
{
    return ctx->tran_priv;
}

/*
 * Whether somebody listens on the socket file at path.  A connect that
 * succeeds, or finds the backlog full, says so; ECONNREFUSED says the file
 * is stale.  Non-blocking, so a busy listener cannot stall us; the
 * listener sees a client that leaves at once.
 */
static bool sock_live(const char *path)
{
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    bool live;
    int fd;

    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return false;
    snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
    live = connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0 ||
           errno == EAGAIN || errno == EINPROGRESS;
    close(fd);
    return live;
}

/*
 * Replace a stale socket file, but never anything else: a typo in the path
 * must not delete somebody's file, and a socket somebody listens on is
 * another server's (-EADDRINUSE).  Unlinking that one would leave it
 * running and unreachable, and when it went away it would in turn remove
 * ours.
 */
static int clear_path(mu_ctx_t *ctx)
{
    struct stat st;

    if (lstat(ctx->path, &st) < 0)
        return errno == ENOENT ? 0 : -errno;
    if (!S_ISSOCK(st.st_mode)) {
        mu_log(ctx, MU_LOG_ERR, "%s exists and is not a socket; not replacing it",
               ctx->path);
        return -EEXIST;
    }
    if (sock_live(ctx->path))
        return -EADDRINUSE;
    if (unlink(ctx->path) < 0)
        return -errno;
    return 0;
}

static int sock_listen(mu_ctx_t *ctx)
{
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    mode_t old_umask;
    int fd, rc;

    if (strlen(ctx->path) >= sizeof(sa.sun_path))
        return -ENAMETOOLONG;
    strcpy(sa.sun_path, ctx->path);

    rc = clear_path(ctx);
    if (rc == -EADDRINUSE)
        mu_log(ctx, MU_LOG_ERR, "%s is in use by another server; not replacing it",
               ctx->path);
    if (rc < 0)
        return rc;
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    old_umask = umask(~ctx->sock_mode & 0777);
    rc = bind(fd, (struct sockaddr *)&sa, sizeof(sa));
    umask(old_umask);
    if (rc < 0) {
        rc = -errno;
        close(fd);
        return rc;
    }
    /* bind honours the umask; make the mode exact in case the umask was
     * stricter than asked (the file is ours and not listening yet). */
    if (chmod(ctx->path, ctx->sock_mode) < 0 || listen(fd, 16) < 0) {
        rc = -errno;
        close(fd);
        unlink(ctx->path);
        return rc;
    }
    return fd;
}

static int sock_init(mu_ctx_t *ctx)
{
    struct sock *s = calloc(1, sizeof(*s));
    int fd;

    if (s == NULL)
        return -ENOMEM;
    fd = sock_listen(ctx);
    if (fd < 0) {
        free(s);
        return fd;
    }
    s->listen_fd = fd;
    s->conn_fd = -1;
    s->io.fd = -1;
    ctx->tran_priv = s;
    return 0;
}

static int sock_accept_fd(mu_ctx_t *ctx)
{
    return sock_of(ctx)->listen_fd;
}

static int sock_poll_fd(mu_ctx_t *ctx)
{
    return sock_of(ctx)->conn_fd;
}

/* Frame fd as the client's connection; fd is closed on failure. */
static int sock_attach_fd(mu_ctx_t *ctx, int fd)
{
    struct sock *s = sock_of(ctx);
    int rc;

    if (s->conn_fd >= 0) {
        close(fd);
        return -EBUSY;
    }
    rc = msgio_init(&s->io, fd, (uint32_t)ctx->limits[MU_LIMIT_MSG_SIZE],
                    (unsigned)ctx->limits[MU_LIMIT_MSG_FDS]);
    if (rc < 0) {
        close(fd);
        return rc;
    }
    /* Partial messages' age runs on the context's clock. */
    s->io.clock = &ctx->clock;
    s->conn_fd = fd;
    return 0;
}

static bool peer_allowed(mu_ctx_t *ctx, int fd)
{
    struct ucred cred;
    socklen_t len = sizeof(cred);

    if (ctx->nr_allow_uids == 0)
        return true;
    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0) {
        mu_log(ctx, MU_LOG_WARN, "refusing client: SO_PEERCRED failed: %s",
               strerror(errno));
        return false;
    }
    for (unsigned i = 0; i < ctx->nr_allow_uids; i++) {
        if (ctx->allow_uids[i] == cred.uid)
            return true;
    }
    mu_log(ctx, MU_LOG_WARN,
           "refusing client pid %d uid %u: uid not in the allow-list",
           (int)cred.pid, (unsigned)cred.uid);
    return false;
}

static int sock_accept(mu_ctx_t *ctx)
{
    int fd;

    do {
        fd = accept4(sock_of(ctx)->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    } while (fd < 0 && errno == EINTR);
    if (fd < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK || errno == ECONNABORTED)
            return -EAGAIN;
        return -errno;
    }
    if (!peer_allowed(ctx, fd)) {
        close(fd);
        return -EACCES;
    }
    return sock_attach_fd(ctx, fd);
}

static int sock_read(mu_ctx_t *ctx)
{
    return msgio_fill(&sock_of(ctx)->io);
}

static int sock_next(mu_ctx_t *ctx, struct mu_msg *msg)
{
    return msgio_next(&sock_of(ctx)->io, msg);
}

static uint64_t sock_partial_since(mu_ctx_t *ctx)
{
    struct sock *s = sock_of(ctx);

    return msgio_partial(&s->io) ? s->io.started_ns : 0;
}

static int sock_send(mu_ctx_t *ctx, const struct iovec *iov, int iovcnt,
                     const int *fds, unsigned nfds)
{
    return msgio_send(&sock_of(ctx)->io, iov, iovcnt, fds, nfds,
                      (int)ctx->limits[MU_LIMIT_SEND_TIMEOUT_MS]);
}

static void sock_detach(mu_ctx_t *ctx)
{
    struct sock *s = sock_of(ctx);

    msgio_fini(&s->io);     /* closes conn_fd */
    s->conn_fd = -1;
}

const struct msgio *mu_sock_msgio(mu_ctx_t *ctx)
{
    struct sock *s = ctx->tran == &mu_tran_sock_ops ? ctx->tran_priv : NULL;

    return s != NULL && s->conn_fd >= 0 ? &s->io : NULL;
}

static void sock_fini(mu_ctx_t *ctx)
{
    struct sock *s = sock_of(ctx);

    if (s == NULL)
        return;
    if (s->conn_fd >= 0)
        sock_detach(ctx);
    if (s->listen_fd >= 0) {
        int rc;

        close(s->listen_fd);
        s->listen_fd = -1;
        /* Only remove the file if it is still ours: a socket nobody
         * listens on now that we stopped.  One with a listener was put
         * there by somebody else since. */
        rc = clear_path(ctx);
        if (rc == -EADDRINUSE)
            mu_log(ctx, MU_LOG_WARN, "%s belongs to another server now; left alone",
                   ctx->path);
        else if (rc < 0)
            mu_log(ctx, MU_LOG_WARN, "could not remove %s", ctx->path);
    }
    free(s);
    ctx->tran_priv = NULL;
}

const struct mu_tran_ops mu_tran_sock_ops = {
    .name = "unix-socket",
    /* vfio-user delivers DMA_UNMAP, so an overlapping map is a client bug
     * the spec answers with EEXIST. */
    .default_overlap = MU_OVERLAP_REJECT,
    .init = sock_init,
    .accept_fd = sock_accept_fd,
    .poll_fd = sock_poll_fd,
    .accept = sock_accept,
    .attach_fd = sock_attach_fd,
    .read = sock_read,
    .next = sock_next,
    .partial_since = sock_partial_since,
    .send = sock_send,
    .detach = sock_detach,
    .fini = sock_fini,
};
