/*
 * ctx.c - context lifecycle and the event loop.
 *
 * Everything the context waits on sits in one epoll set: the listening
 * socket (only while no client is attached, so a second client waits in the
 * backlog instead of being half-served), the client connection, a wake
 * eventfd (stop, DMA requests done), a housekeeping timer, and fds the
 * subsystems register (irq mask eventfds, ioeventfds, the SIGBUS eventfd).
 * The epoll fd is what mu_ctx_fd() hands out, so a device can nest the
 * whole context in its own loop.
 *
 * Many contexts live in one process (a reactor serves a thousand devices
 * through their mu_ctx_fd()s), so an idle one holds no fd it does not
 * need: beyond the epoll fd, the listening socket and the client's
 * connection, the wake eventfd appears at the first wake (mu_ctx_wake),
 * the timerfd only while a timeout or an age is being watched
 * (mu_ctx_timer_check; without a client it is kept, disarmed, for a
 * paused accept), the SIGBUS eventfd with the client's first DMA region.
 *
 * The connection.  ctx->conn is one of these states, changed only by the
 * context thread through mu_conn_set(), which asserts (in debug builds)
 * that the change is one of the transitions below:
 *
 *   state     meaning                          watched fd
 *   IDLE      no client                        the transport's accept fd
 *   PAUSED    accept failed for want of fds    none (the timer retries)
 *   ATTACHED  a client, VERSION still to come  the client's poll fd
 *   READY     negotiated: every command, and   the client's poll fd
 *             DMA requests to the client
 *   FAILED    broken (bad header, handshake,   the client's poll fd
 *             reply not sent): dropped once
 *             the current message is done
 *
 *   from      to        when                          where
 *   IDLE      ATTACHED  accept or mu_ctx_attach_fd    attach_conn()
 *   IDLE      PAUSED    accept: EMFILE/ENFILE         attach()
 *   PAUSED    IDLE      the timer's accept goes       resume_accept()
 *                       through (then IDLE->ATTACHED)
 *   ATTACHED  READY     VERSION negotiated            dispatch.c
 *   ATTACHED  FAILED    mu_ctx_fail()                 dispatch.c
 *   READY     FAILED    mu_ctx_fail()                 dispatch.c
 *   ATTACHED  IDLE      mu_ctx_detach(): EOF, timeout, destroy, ...
 *   READY     IDLE      mu_ctx_detach()
 *   FAILED    IDLE      mu_ctx_detach(), after the message (dispatch.c)
 *
 * Leaving ATTACHED, READY or FAILED for IDLE ends everything the client
 * had: blocking DMA calls (-ENOTCONN), the context thread's DMA requests
 * (their callbacks, -ENOTCONN), DMA regions, irq fds, migration.  Nothing
 * but READY sends requests to the client or serves commands other than
 * VERSION.  Device threads read the state under send_lock (may we send?)
 * or call_lock (may we ask?); both are held to change it.
 */
#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/timerfd.h>
#include <sys/un.h>
#include <unistd.h>

#include "private.h"
#include "dma.h"
#include "irq.h"
#include "mig.h"

static const uint64_t limit_defaults[] = {
    [MU_LIMIT_MSG_SIZE] = VFU_HDR_SIZE + 16 + (1u << 20),
    [MU_LIMIT_MSG_FDS] = 8,
    [MU_LIMIT_DATA_XFER] = 1u << 20,
    [MU_LIMIT_DMA_REGIONS] = 65535,
    [MU_LIMIT_DMA_MAPPED_BYTES] = 0,
    [MU_LIMIT_DMA_IDLE_MS] = 0,
    [MU_LIMIT_DMA_PENDING] = 64,
    [MU_LIMIT_SEND_TIMEOUT_MS] = 5000,
    [MU_LIMIT_RECV_TIMEOUT_MS] = 5000,
    [MU_LIMIT_DIRTY_BITMAP_BYTES] = 64u << 20,
    [MU_LIMIT_BUSY_POLL_US] = 0,
};

static const struct {
    uint64_t min, max;
} limit_range[] = {
    [MU_LIMIT_MSG_SIZE] = { VFU_HDR_SIZE + 64, 64u << 20 },
    [MU_LIMIT_MSG_FDS] = { 1, MSGIO_MAX_FDS },
    [MU_LIMIT_DATA_XFER] = { 4, 16u << 20 },
    [MU_LIMIT_DMA_REGIONS] = { 1, 1u << 20 },
    [MU_LIMIT_DMA_MAPPED_BYTES] = { 0, UINT64_MAX },
    [MU_LIMIT_DMA_IDLE_MS] = { 0, 24ull * 3600 * 1000 },
    [MU_LIMIT_DMA_PENDING] = { 1, 4096 },
    [MU_LIMIT_SEND_TIMEOUT_MS] = { 1, 3600 * 1000 },
    [MU_LIMIT_RECV_TIMEOUT_MS] = { 1, 3600 * 1000 },
    [MU_LIMIT_DIRTY_BITMAP_BYTES] = { 4096, 1ull << 40 },
    [MU_LIMIT_BUSY_POLL_US] = { 0, MU_BUSY_POLL_MAX_US },
};
_Static_assert(sizeof(limit_defaults) / sizeof(limit_defaults[0]) == MU_LIMIT_NR &&
               sizeof(limit_range) / sizeof(limit_range[0]) == MU_LIMIT_NR,
               "every limit needs a default and a range");

static const bool conn_moves[MU_CONN_NR][MU_CONN_NR] = {
    [MU_CONN_IDLE] = { [MU_CONN_ATTACHED] = true, [MU_CONN_PAUSED] = true },
    [MU_CONN_PAUSED] = { [MU_CONN_IDLE] = true },
    [MU_CONN_ATTACHED] = { [MU_CONN_READY] = true, [MU_CONN_FAILED] = true,
                           [MU_CONN_IDLE] = true },
    [MU_CONN_READY] = { [MU_CONN_FAILED] = true, [MU_CONN_IDLE] = true },
    [MU_CONN_FAILED] = { [MU_CONN_IDLE] = true },
};

void mu_conn_set(mu_ctx_t *ctx, enum mu_conn_state to)
{
    assert((unsigned)to < MU_CONN_NR && conn_moves[ctx->conn][to]);
    pthread_mutex_lock(&ctx->send_lock);
    pthread_mutex_lock(&ctx->call_lock);
    ctx->conn = to;
    pthread_mutex_unlock(&ctx->call_lock);
    pthread_mutex_unlock(&ctx->send_lock);
}

int mu_ctx_create(mu_ctx_t **ctxp, const char *path, enum mu_dev_type type,
                  void *opaque)
{
    struct sockaddr_un sa;
    mu_ctx_t *ctx;
    int rc;

    *ctxp = NULL;
    if (path == NULL || path[0] == '\0' || strlen(path) >= sizeof(sa.sun_path))
        return -EINVAL;
    if (type != MU_DEV_PCI && type != MU_DEV_PCIE)
        return -EINVAL;
    ctx = calloc(1, sizeof(*ctx));
    if (ctx == NULL)
        return -ENOMEM;
    ctx->path = strdup(path);
    if (ctx->path == NULL) {
        free(ctx);
        return -ENOMEM;
    }
    ctx->opaque = opaque;
    ctx->log_level = MU_LOG_WARN;
    memcpy(ctx->limits, limit_defaults, sizeof(limit_defaults));
    ctx->sock_mode = 0600;
    ctx->tran = &mu_tran_sock_ops;
    ctx->epfd = ctx->wake_fd = ctx->timer_fd = -1;
    ctx->conn = MU_CONN_IDLE;
    ctx->nr_regions = MU_PCI_NUM_REGIONS;
    ctx->reqs_done_tail = &ctx->reqs_done;
    for (unsigned i = 0; i < MU_MAX_REGIONS; i++)
        ctx->regions[i].fd = -1;
    pthread_mutex_init(&ctx->send_lock, NULL);
    pthread_mutex_init(&ctx->call_lock, NULL);
    pthread_cond_init(&ctx->call_cond, NULL);

    rc = mu_pci_init(ctx, type);
    if (rc == 0)
        rc = mu_irqs_init(ctx);
    if (rc == 0)
        rc = mu_dma_init(ctx);
    if (rc < 0) {
        mu_ctx_destroy(ctx);
        return rc;
    }
    *ctxp = ctx;
    return 0;
}

static void close_fd(int *fd)
{
    if (*fd >= 0) {
        close(*fd);
        *fd = -1;
    }
}

void mu_ctx_destroy(mu_ctx_t *ctx)
{
    if (ctx == NULL)
        return;
    /* The regions first, so their unmap callbacks say why they go (the
     * detach below would report a disconnect). */
    if (ctx->dma != NULL)
        mu_dma_remove_all(ctx, MU_UNMAP_DESTROY);
    if (mu_conn_attached(ctx))
        mu_ctx_detach(ctx, "context destroyed");
    if (ctx->realized)
        ctx->tran->fini(ctx);
    close_fd(&ctx->epfd);
    close_fd(&ctx->wake_fd);
    close_fd(&ctx->timer_fd);
    mu_dma_fini(ctx);
    mu_irqs_fini(ctx);
    mu_mig_fini(ctx);
    mu_regions_fini(ctx);
    mu_pci_fini(ctx);
    pthread_cond_destroy(&ctx->call_cond);
    pthread_mutex_destroy(&ctx->call_lock);
    pthread_mutex_destroy(&ctx->send_lock);
    free(ctx->path);
    free(ctx);
}

void *mu_ctx_opaque(const mu_ctx_t *ctx)
{
    return ctx->opaque;
}

int mu_ctx_set_limit(mu_ctx_t *ctx, enum mu_limit limit, uint64_t value)
{
    if ((unsigned)limit >= MU_LIMIT_NR)
        return -EINVAL;
    if (value < limit_range[limit].min || value > limit_range[limit].max)
        return -EINVAL;
    if (ctx->realized && limit != MU_LIMIT_DMA_MAPPED_BYTES &&
        limit != MU_LIMIT_DMA_IDLE_MS && limit != MU_LIMIT_BUSY_POLL_US)
        return -EBUSY;
    /* The two DMA limits are read by device threads while translating,
     * the busy-poll time by the context thread at each round. */
    __atomic_store_n(&ctx->limits[limit], value, __ATOMIC_RELAXED);
    /* The idle limit needs the timer, and sets its period. */
    /* (Should the wake be lost, out of fds, the next message from the
     * client checks the timer's need again.) */
    if (ctx->realized && limit == MU_LIMIT_DMA_IDLE_MS)
        (void)mu_ctx_wake(ctx, MU_WAKE_TIMER);
    return 0;
}

uint64_t mu_ctx_get_limit(const mu_ctx_t *ctx, enum mu_limit limit)
{
    if ((unsigned)limit >= MU_LIMIT_NR)
        return 0;
    return ctx->limits[limit];
}

int mu_ctx_set_socket_mode(mu_ctx_t *ctx, mode_t mode)
{
    if (ctx->realized)
        return -EBUSY;
    if (mode & ~0777u)
        return -EINVAL;
    ctx->sock_mode = mode;
    return 0;
}

int mu_ctx_allow_uid(mu_ctx_t *ctx, uid_t uid)
{
    if (ctx->realized)
        return -EBUSY;
    if (ctx->nr_allow_uids == MU_MAX_ALLOW_UIDS)
        return -ENOSPC;
    ctx->allow_uids[ctx->nr_allow_uids++] = uid;
    return 0;
}

int mu_ctx_set_flags(mu_ctx_t *ctx, unsigned flags)
{
    if (ctx->realized)
        return -EBUSY;
    if ((flags & ~(unsigned)MU_CTX_ONE_CLIENT) != 0)
        return -EINVAL;
    ctx->flags = flags;
    return 0;
}

int mu_ctx_set_reset_cb(mu_ctx_t *ctx, mu_reset_cb_t cb)
{
    if (ctx->realized)
        return -EBUSY;
    ctx->reset_cb = cb;
    return 0;
}

int mu_ctx_set_reset_unmaps_dma(mu_ctx_t *ctx, bool unmap)
{
    if (ctx->realized)
        return -EBUSY;
    ctx->reset_unmaps_dma = unmap;
    return 0;
}

bool mu_ctx_client_ready(const mu_ctx_t *ctx)
{
    mu_ctx_t *c = (mu_ctx_t *)ctx;  /* the lock, not the context, changes */
    bool ready;

    /* The state only changes under call_lock (mu_conn_set). */
    pthread_mutex_lock(&c->call_lock);
    ready = mu_conn_ready(c);
    pthread_mutex_unlock(&c->call_lock);
    return ready;
}

int mu_ctx_watch(mu_ctx_t *ctx, int fd, uint64_t tag)
{
    struct epoll_event ev = { .events = EPOLLIN, .data.u64 = tag };

    if (epoll_ctl(ctx->epfd, EPOLL_CTL_ADD, fd, &ev) < 0)
        return -errno;
    return 0;
}

void mu_ctx_unwatch(mu_ctx_t *ctx, int fd)
{
    if (fd >= 0 && ctx->epfd >= 0)
        epoll_ctl(ctx->epfd, EPOLL_CTL_DEL, fd, NULL);
}

/*
 * The housekeeping timerfd, disarmed, in the set.  A context without a
 * client keeps one ready: a paused accept (out of fds) is retried by it,
 * and could not create it then.  With a client it exists only while
 * needed (timer_needed).
 */
static int timer_create_fd(mu_ctx_t *ctx)
{
    int fd, rc;

    if (ctx->timer_fd >= 0)
        return 0;
    fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    if (fd < 0)
        return -errno;
    rc = mu_ctx_watch(ctx, fd, MU_EV(MU_EV_TIMER, 0));
    if (rc < 0) {
        close(fd);
        return rc;
    }
    ctx->timer_fd = fd;
    ctx->timer_ms = 0;
    return 0;
}

int mu_ctx_realize(mu_ctx_t *ctx)
{
    int rc;

    if (ctx->realized)
        return -EBUSY;
    /* A message must hold the largest transfer plus its headers. */
    if (ctx->limits[MU_LIMIT_MSG_SIZE] <
        VFU_HDR_SIZE + sizeof(struct vfu_region_access) +
            ctx->limits[MU_LIMIT_DATA_XFER]) {
        mu_log(ctx, MU_LOG_ERR,
               "message size limit too small for the data transfer limit");
        return -EINVAL;
    }
    rc = mu_pci_realize(ctx);
    if (rc < 0)
        return rc;

    /* The epoll fd and, while no client is attached, the timer: the
     * fds of its own a context has from the start (see the top of the
     * file for the others). */
    ctx->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (ctx->epfd < 0)
        return -errno;
    rc = timer_create_fd(ctx);
    if (rc < 0)
        goto fail;

    /* Device ioeventfds are the device's, watched for the whole life. */
    for (unsigned r = 0; r < ctx->nr_regions; r++) {
        for (unsigned i = 0; i < ctx->regions[r].nr_ioeventfds; i++) {
            rc = mu_ctx_watch(ctx, ctx->regions[r].ioeventfds[i].fd,
                              MU_EV(MU_EV_IOEVENTFD, r << 16 | i));
            if (rc < 0)
                goto fail;
        }
    }

    rc = ctx->tran->init(ctx);
    if (rc < 0)
        goto fail;
    rc = mu_ctx_watch(ctx, ctx->tran->accept_fd(ctx), MU_EV(MU_EV_LISTEN, 0));
    if (rc < 0) {
        ctx->tran->fini(ctx);
        goto fail;
    }
    ctx->realized = true;
    mu_log(ctx, MU_LOG_INFO, "listening on %s (%s)", ctx->path, ctx->tran->name);
    return 0;

fail:
    close_fd(&ctx->timer_fd);
    close_fd(&ctx->epfd);
    return rc;
}

/*
 * What the housekeeping timer is for (on_timer): retrying a paused accept,
 * the receive timeout of a message begun, the replies the context
 * thread's DMA requests wait for, the ages of idle DMA mappings.
 */
static bool timer_needed(mu_ctx_t *ctx)
{
    if (ctx->conn == MU_CONN_PAUSED)
        return true;
    if (!mu_conn_attached(ctx))
        return false;
    return ctx->reqs != NULL ||
           __atomic_load_n(&ctx->limits[MU_LIMIT_DMA_IDLE_MS],
                           __ATOMIC_RELAXED) != 0 ||
           ctx->tran->partial_since(ctx) != 0;
}

/*
 * Housekeeping period: fine enough for the shortest timeout in force.
 * Armed while the timer is needed, stopped at the first tick with no need
 * left (not at once: a need that comes back soon costs no new timerfd).
 * Context thread.
 */
static void timer_on(mu_ctx_t *ctx)
{
    struct itimerspec its = { 0 };
    uint64_t ms = __atomic_load_n(&ctx->limits[MU_LIMIT_RECV_TIMEOUT_MS],
                                  __ATOMIC_RELAXED), idle_ms;
    int rc;

    idle_ms = __atomic_load_n(&ctx->limits[MU_LIMIT_DMA_IDLE_MS],
                              __ATOMIC_RELAXED);
    if (idle_ms != 0 && idle_ms < ms)
        ms = idle_ms;
    ms /= 4;
    if (ms < 10)
        ms = 10;
    if (ms > 500)
        ms = 500;
    if (ms == ctx->timer_ms)
        return;
    rc = timer_create_fd(ctx);
    if (rc < 0) {
        /* The next check tries again. */
        mu_log(ctx, MU_LOG_ERR, "no housekeeping timer: %s", strerror(-rc));
        return;
    }
    its.it_interval.tv_sec = (time_t)(ms / 1000);
    its.it_interval.tv_nsec = (long)(ms % 1000) * 1000000L;
    its.it_value = its.it_interval;
    if (timerfd_settime(ctx->timer_fd, 0, &its, NULL) == 0)
        ctx->timer_ms = ms;
}

/* No need left: with a client the timerfd goes (an idle connected
 * context holds no fd for it), without one it stays, disarmed. */
static void timer_off(mu_ctx_t *ctx)
{
    struct itimerspec its = { 0 };

    if (ctx->timer_fd >= 0 && mu_conn_attached(ctx)) {
        mu_ctx_unwatch(ctx, ctx->timer_fd);
        close_fd(&ctx->timer_fd);
    } else if (ctx->timer_fd >= 0 && ctx->timer_ms != 0) {
        timerfd_settime(ctx->timer_fd, 0, &its, NULL);
    }
    ctx->timer_ms = 0;
}

void mu_ctx_timer_check(mu_ctx_t *ctx)
{
    if (ctx->timer_ms == 0 && timer_needed(ctx))
        timer_on(ctx);
}

/* Make the client the transport just took the current one. */
static int attach_conn(mu_ctx_t *ctx)
{
    int rc = 0;

    if (!ctx->tran->fixed_poll_fd || !ctx->conn_watched)
        rc = mu_ctx_watch(ctx, ctx->tran->poll_fd(ctx), MU_EV(MU_EV_CONN, 0));
    if (rc < 0) {
        mu_log(ctx, MU_LOG_ERR, "cannot watch client fd: %s", strerror(-rc));
        ctx->tran->detach(ctx);
        return rc;
    }
    ctx->conn_watched = ctx->tran->fixed_poll_fd;
    /* One client at a time: later ones wait in the listen backlog. */
    if (!ctx->tran->listen_quiet)
        mu_ctx_unwatch(ctx, ctx->tran->accept_fd(ctx));
    pthread_mutex_lock(&ctx->call_lock);
    vfu_caps_default(&ctx->peer);
    pthread_mutex_unlock(&ctx->call_lock);
    mu_conn_set(ctx, MU_CONN_ATTACHED);
    /* A DMA idle limit needs it; else it goes until a need comes. */
    if (timer_needed(ctx))
        timer_on(ctx);
    else
        timer_off(ctx);
    mu_log(ctx, MU_LOG_INFO, "client connected");
    return 0;
}

static void attach(mu_ctx_t *ctx)
{
    int rc = ctx->tran->accept(ctx);

    if (rc == -EMFILE || rc == -ENFILE) {
        /*
         * Out of fds: the connection stays queued, so the socket stays
         * readable and epoll would hand it back at once, forever (a busy
         * loop logging a line a turn).  Stop watching it; the timer tries
         * again (resume_accept).
         */
        mu_log(ctx, MU_LOG_WARN, "accept failed: %s; retrying on the timer",
               strerror(-rc));
        mu_ctx_unwatch(ctx, ctx->tran->accept_fd(ctx));
        mu_conn_set(ctx, MU_CONN_PAUSED);
        timer_on(ctx);
        return;
    }
    if (rc < 0) {
        if (rc != -EAGAIN && rc != -EACCES)
            mu_log(ctx, MU_LOG_WARN, "accept failed: %s", strerror(-rc));
        return;
    }
    attach_conn(ctx);
}

/* Timer tick while accept is paused (see attach): try again, quietly. */
static void resume_accept(mu_ctx_t *ctx)
{
    int got = ctx->tran->accept(ctx), rc;

    if (got == -EMFILE || got == -ENFILE)
        return;
    mu_conn_set(ctx, MU_CONN_IDLE);
    /* (The timer stops at its next tick if no client came.) */
    /* Watched again first: attach_conn() unwatches it once the client's
     * fd is watched, and leaves it watched if that fails. */
    rc = mu_ctx_watch(ctx, ctx->tran->accept_fd(ctx), MU_EV(MU_EV_LISTEN, 0));
    if (rc < 0)
        mu_log(ctx, MU_LOG_ERR, "cannot watch the socket again: %s",
               strerror(-rc));
    if (got == 0)
        attach_conn(ctx);
    else if (got != -EAGAIN && got != -EACCES)
        mu_log(ctx, MU_LOG_WARN, "accept failed: %s", strerror(-got));
}

int mu_ctx_attach_fd(mu_ctx_t *ctx, int fd)
{
    int rc;

    if (!ctx->realized || ctx->conn != MU_CONN_IDLE) {
        close(fd);
        return -EBUSY;
    }
    rc = ctx->tran->attach_fd(ctx, fd);
    if (rc < 0)
        return rc;
    return attach_conn(ctx);
}

/*
 * Forget the client: everything it gave us goes (DMA regions with their
 * unmap callbacks, irq eventfds), the device state stays, and the listening
 * socket is watched again for the next client.
 */
void mu_ctx_detach(mu_ctx_t *ctx, const char *why)
{
    if (!mu_conn_attached(ctx))
        return;
    mu_log(ctx, MU_LOG_INFO, "client dropped: %s", why);
    __atomic_store_n(&ctx->detaching, true, __ATOMIC_SEQ_CST);
    if (!ctx->tran->fixed_poll_fd)
        mu_ctx_unwatch(ctx, ctx->tran->poll_fd(ctx));
    /* No send after this, from any thread: the state says so first. */
    mu_conn_set(ctx, MU_CONN_IDLE);
    pthread_mutex_lock(&ctx->send_lock);
    ctx->tran->detach(ctx);
    pthread_mutex_unlock(&ctx->send_lock);
    /* The timer is kept ready again while nobody is attached (the fd the
     * client's connection had is free now). */
    if (timer_create_fd(ctx) < 0)
        mu_log(ctx, MU_LOG_ERR, "no housekeeping timer: a paused accept "
               "will not be retried");
    mu_calls_cancel(ctx);
    ctx->drop_reason = NULL;
    /* Before the regions go: a request's buffer is the device's until its
     * callback says the request is over. */
    mu_dma_reqs_cancel(ctx, -ENOTCONN);
    /* The timer stops at its next tick, unless a client comes first. */

    mu_mig_client_gone(ctx);
    mu_dma_remove_all(ctx, MU_UNMAP_DISCONNECT);
    mu_dma_client_gone(ctx);
    mu_irqs_reset(ctx);
    mu_regions_client_gone(ctx);
    if (ctx->reset_cb != NULL)
        ctx->reset_cb(ctx, MU_RESET_LOST);

    if (!ctx->tran->listen_quiet &&
        mu_ctx_watch(ctx, ctx->tran->accept_fd(ctx), MU_EV(MU_EV_LISTEN, 0)) < 0)
        mu_log(ctx, MU_LOG_ERR, "cannot watch the socket again: %s",
               strerror(errno));
    if (ctx->flags & MU_CTX_ONE_CLIENT)
        ctx->stopping = true;
    __atomic_store_n(&ctx->detaching, false, __ATOMIC_SEQ_CST);
}

static void on_timer(mu_ctx_t *ctx)
{
    uint64_t ticks, since;

    if (ctx->timer_fd < 0 || read(ctx->timer_fd, &ticks, sizeof(ticks)) < 0)
        return;
    if (ctx->conn == MU_CONN_PAUSED) {
        resume_accept(ctx);
        return;
    }
    if (mu_conn_attached(ctx)) {
        since = ctx->tran->partial_since(ctx);
        if (since != 0 &&
            mu_clock_ns(&ctx->clock) - since >
                ctx->limits[MU_LIMIT_RECV_TIMEOUT_MS] * 1000000ull) {
            mu_ctx_detach(ctx,
                          "message not completed within the receive timeout");
        } else {
            mu_dma_reqs_tick(ctx);
            mu_dma_tick(ctx);
        }
    }
    if (!timer_needed(ctx))
        timer_off(ctx);     /* nothing (left) to keep house for */
}

/* The wake eventfd, created by the first wake (any thread). */
static int wake_fd_get(mu_ctx_t *ctx)
{
    int fd = __atomic_load_n(&ctx->wake_fd, __ATOMIC_ACQUIRE), none = -1;
    struct epoll_event ev = { .events = EPOLLIN,
                              .data.u64 = MU_EV(MU_EV_WAKE, 0) };

    if (fd >= 0)
        return fd;
    fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (fd < 0)
        return -errno;
    if (!__atomic_compare_exchange_n(&ctx->wake_fd, &none, fd, false,
                                     __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) {
        close(fd);          /* another waker's is there */
        return none;
    }
    /*
     * Wakers that find it before it is in the set write it all the
     * same: epoll reports an fd that is readable when it is added.
     * (Not mu_ctx_watch: no errno from here, a signal handler may run
     * this.)
     */
    if (epoll_ctl(ctx->epfd, EPOLL_CTL_ADD, fd, &ev) < 0)
        return -1;
    return fd;
}

int mu_ctx_wake(mu_ctx_t *ctx, unsigned bits)
{
    uint64_t one = 1;
    int fd, saved = errno, rc = 0;

    if (ctx->epfd < 0)
        return -EINVAL;     /* not realized: nothing listens */
    __atomic_fetch_or(&ctx->wake, bits, __ATOMIC_RELEASE);
    fd = wake_fd_get(ctx);
    /* The write cannot overflow: the loop reads the count back first. */
    if (fd < 0 || write(fd, &one, sizeof(one)) != sizeof(one))
        rc = fd < 0 && fd != -1 ? fd : -EIO;
    errno = saved;
    return rc;
}

/* The reasons a wake brought.  The eventfd is read first: a waker sets
 * its bit before it writes, so a bit set after the read comes with a
 * write after it, which the next round sees. */
static void on_wake(mu_ctx_t *ctx)
{
    unsigned bits;
    uint64_t v;

    if (read(ctx->wake_fd, &v, sizeof(v)) != sizeof(v))
        return;
    bits = __atomic_exchange_n(&ctx->wake, 0, __ATOMIC_ACQUIRE);
    if (bits & MU_WAKE_TIMER) {
        /* A new period or a new need; none left ends at the next tick. */
        if (ctx->timer_ms != 0 || timer_needed(ctx))
            timer_on(ctx);
    }
    if (bits & MU_WAKE_DONE)
        mu_dma_reqs_run_done(ctx);
    if (bits & MU_WAKE_STOP)
        ctx->stopping = true;
}

static void on_ioeventfd(mu_ctx_t *ctx, uint32_t idx)
{
    unsigned r = idx >> 16, i = idx & 0xffff;
    struct mu_ioeventfd *e;
    uint64_t v;

    if (r >= ctx->nr_regions || i >= ctx->regions[r].nr_ioeventfds)
        return;
    e = &ctx->regions[r].ioeventfds[i];
    if (read(e->fd, &v, sizeof(v)) == sizeof(v) && e->cb != NULL)
        e->cb(ctx, e->opaque_value);
}

static void handle_event(mu_ctx_t *ctx, uint64_t tag)
{
    uint32_t idx = (uint32_t)tag;

    switch (tag >> 32) {
    case MU_EV_WAKE:
        on_wake(ctx);
        break;
    case MU_EV_LISTEN:
        if (ctx->conn == MU_CONN_IDLE)
            attach(ctx);
        break;
    case MU_EV_CONN:
        mu_ctx_process(ctx);   /* (and the timer for a message begun) */
        break;
    case MU_EV_TIMER:
        on_timer(ctx);
        break;
    case MU_EV_IRQFD:
        mu_irqs_fd_event(ctx, idx);
        break;
    case MU_EV_IOEVENTFD:
        on_ioeventfd(ctx, idx);
        break;
    case MU_EV_POISON:
        mu_dma_on_poison(ctx);
        break;
    }
}

/* A counter of the loop's (struct mu_busy_stats): one writer, the context
 * thread; tests read it from other threads. */
static inline void count(uint64_t *c)
{
    __atomic_store_n(c, *c + 1, __ATOMIC_RELAXED);
}

/* One epoll_wait and what it reports: the events handled, or -errno. */
static int wait_events(mu_ctx_t *ctx, int timeout_ms)
{
    struct epoll_event evs[16];
    int n;

    if (timeout_ms != 0)
        count(&ctx->busy.sleeps);
    n = epoll_wait(ctx->epfd, evs, 16, timeout_ms);
    if (n < 0)
        return errno == EINTR ? 0 : -errno;
    for (int i = 0; i < n && !ctx->stopping; i++)
        handle_event(ctx, evs[i].data.u64);
    return n;
}

/* Non-blocking reads between two looks at the whole epoll set. */
#define SPIN_CHECK 16

/*
 * Busy polling (MU_LIMIT_BUSY_POLL_US): the client's socket is read
 * without blocking, again and again, for up to spin_us (never past
 * timeout_ms), before the thread sleeps in epoll_wait; a client that
 * sends its next request within that time finds the thread awake.  The
 * whole epoll set is looked at before, and every SPIN_CHECK reads, so the
 * stop fd, the timer and the device's fds are served while it spins, and
 * a client that keeps sending cannot keep them waiting.  Returns as
 * loop_once.
 */
static int spin_then_wait(mu_ctx_t *ctx, int timeout_ms, uint64_t spin_us)
{
    uint64_t start = mu_now_ns(), until = start + spin_us * 1000, now;
    uint64_t deadline = UINT64_MAX;     /* timeout_ms < 0: none */
    int n;

    if (timeout_ms >= 0)
        deadline = start + (uint64_t)timeout_ms * 1000000ull;
    if (deadline < until)
        until = deadline;
    n = wait_events(ctx, 0);
    if (n != 0)
        return n;
    for (unsigned i = 1; mu_conn_attached(ctx) && !ctx->stopping; i++) {
        count(&ctx->busy.spins);
        if (mu_ctx_process(ctx) != -EAGAIN) {
            count(&ctx->busy.spin_work);
            return 1;
        }
        if (i % SPIN_CHECK == 0 && (n = wait_events(ctx, 0)) != 0) {
            if (n > 0)
                count(&ctx->busy.spin_work);
            return n;
        }
        if (mu_now_ns() >= until) {
            count(&ctx->busy.spin_expired);
            break;
        }
    }
    if (ctx->stopping)
        return 0;
    if (timeout_ms < 0)
        return wait_events(ctx, -1);
    now = mu_now_ns();
    if (now >= deadline)
        return 0;
    return wait_events(ctx, (int)((deadline - now + 999999) / 1000000));
}

/* One round: the number of events handled, or -errno (-ESHUTDOWN once
 * stopping). */
static int loop_once(mu_ctx_t *ctx, int timeout_ms)
{
    uint64_t spin_us;
    int n;

    if (!ctx->realized)
        return -EINVAL;
    if (!ctx->have_thread) {
        /* Device threads ask mu_on_ctx_thread() meanwhile. */
        ctx->ctx_thread = pthread_self();
        __atomic_store_n(&ctx->have_thread, true, __ATOMIC_RELEASE);
    }
    if (ctx->stopping)
        return -ESHUTDOWN;
    /* Spinning needs a client to read, and a caller that may wait. */
    spin_us = __atomic_load_n(&ctx->limits[MU_LIMIT_BUSY_POLL_US],
                              __ATOMIC_RELAXED);
    if (spin_us != 0 && timeout_ms != 0 && mu_conn_attached(ctx))
        n = spin_then_wait(ctx, timeout_ms, spin_us);
    else
        n = wait_events(ctx, timeout_ms);
    if (n < 0)
        return n;
    return ctx->stopping ? -ESHUTDOWN : n;
}

int mu_ctx_poll(mu_ctx_t *ctx)
{
    int rc = loop_once(ctx, 0);

    return rc < 0 ? rc : 0;
}

int mu_ctx_poll_wait(mu_ctx_t *ctx, int timeout_ms)
{
    return loop_once(ctx, timeout_ms);
}

int mu_ctx_run(mu_ctx_t *ctx)
{
    int rc;

    do {
        rc = loop_once(ctx, -1);
    } while (rc >= 0);
    if (rc == -ESHUTDOWN) {
        /* Leave the context reusable: a later run serves again. */
        ctx->stopping = false;
        return 0;
    }
    return rc;
}

int mu_ctx_fd(const mu_ctx_t *ctx)
{
    return ctx->epfd;
}

void mu_ctx_stop(mu_ctx_t *ctx)
{
    (void)mu_ctx_wake(ctx, MU_WAKE_STOP);   /* void: nobody to tell */
}
