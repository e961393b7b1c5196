/*
 * private.h - the context structure and the internal interfaces between the
 * layers: transport <-> context <-> command layer (cmd.h) <-> subsystems.
 * Each subsystem has its own internal header: pci.h, region.h (both
 * embedded in the context, so included here), irq.h, dma.h, dma_log.h.
 *
 * Data flows one way: the transport hands the context whole messages, the
 * context checks and dispatches them to a subsystem, the subsystem calls the
 * device, and the context encodes and sends the reply.  Subsystems never
 * touch the transport directly; when they must talk to the client (DMA_READ
 * and DMA_WRITE), they go through mu_ctx_call().
 */
#ifndef MUSER_PRIVATE_H
#define MUSER_PRIVATE_H

#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/uio.h>

#include "muser.h"
#include "msgio.h"
#include "pci.h"
#include "region.h"
#include "wire.h"

#define MU_MAX_ALLOW_UIDS 64u

/* ---- logging ---- */

void mu_log(mu_ctx_t *ctx, enum mu_log_level level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
#ifdef MU_DEBUG_LOG
#define mu_dbg(ctx, ...) mu_log((ctx), MU_LOG_DEBUG, __VA_ARGS__)
#else
#define mu_dbg(ctx, ...) do { (void)(ctx); } while (0)
#endif

/*
 * Why a request is refused, for the debug log of dispatch.c: a handler (or
 * anything it calls on the context thread) returns mu_refuse(ctx, -EINVAL,
 * "offset %#x ...", ...) instead of -EINVAL.  The first reason given for a
 * message wins (the innermost check knows most).  Formatting happens only
 * when the context logs at MU_LOG_DEBUG, so a refusal costs one comparison
 * otherwise.  Returns err.
 */
int mu_refuse(mu_ctx_t *ctx, int err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static inline bool mu_log_debug_on(const mu_ctx_t *ctx);

/* ---- transport ---- */

/*
 * A transport delivers a client's bytes and fds to the context.  The UNIX
 * socket is the one we ship; the kernel mdev bridge of the original muser
 * design would be another, with default_overlap = MU_OVERLAP_REPLACE because
 * it never reports unmaps.
 */
struct mu_tran_ops {
    const char *name;
    enum mu_overlap_policy default_overlap;
    /* Create the endpoint; returns the fd to watch for new clients. */
    int (*init)(mu_ctx_t *ctx);
    /* Take a new client: returns the fd to watch for its traffic, -EAGAIN
     * when none is waiting, -EACCES when it was refused (already closed). */
    int (*accept)(mu_ctx_t *ctx);
    /* Pull what the client sent: > 0 bytes, -EAGAIN, -ENOTCONN, ... */
    int (*read)(mu_ctx_t *ctx);
    /* Cut the next whole message: 1, 0 (need more) or -errno (fatal). */
    int (*next)(mu_ctx_t *ctx, struct mu_msg *msg);
    /* Start time of a message that has begun to arrive, 0 if none. */
    uint64_t (*partial_since)(mu_ctx_t *ctx);
    /*
     * The context thread waits for the reply to its own call (dispatch.c,
     * wait_inline) and found nothing to read: block until the client may
     * have sent more, or until mu_now_ns() reaches deadline.  0: look
     * again; -ETIMEDOUT: nothing will come in time; -errno.
     */
    int (*wait)(mu_ctx_t *ctx, uint64_t deadline);
    /* Send a whole message, fds attached. */
    int (*send)(mu_ctx_t *ctx, const struct iovec *iov, int iovcnt,
                const int *fds, unsigned nfds);
    /* Forget the client. */
    void (*detach)(mu_ctx_t *ctx);
    /* Remove the endpoint. */
    void (*fini)(mu_ctx_t *ctx);
    /*
     * The listening fd is never readable while a client is attached (no
     * second one can arrive): the context leaves it watched.
     */
    bool listen_quiet;
    /*
     * accept() gives every client the same fd, and nothing makes it
     * readable between clients: the context watches it once, for good.
     */
    bool fixed_conn_fd;
};

extern const struct mu_tran_ops mu_tran_sock_ops;
extern const struct mu_tran_ops mu_tran_mem_ops;    /* tran_mem.h */

/* ---- replies ---- */

/*
 * A reply under construction.  Handlers put the payload in 'small' when it
 * fits, or point 'data' at a buffer they own ('data_free' = free it after
 * sending).  Up to MU_REPLY_MAX_FDS fds may be attached; they are not closed
 * by the context (they belong to the subsystem that lent them).
 */
#define MU_REPLY_SMALL 256u
#define MU_REPLY_MAX_FDS 64u
struct mu_reply {
    size_t len;                 /* payload length (small or data) */
    uint8_t *data;              /* NULL: payload is small[0..len) */
    bool data_free;
    uint8_t *data2;             /* optional second piece (e.g. read data) */
    size_t len2;
    bool data2_free;
    int fds[MU_REPLY_MAX_FDS];
    unsigned nfds;
    uint8_t small[MU_REPLY_SMALL] __attribute__((aligned(8)));
};

/* ---- the context ---- */

typedef int (*mu_handler_t)(mu_ctx_t *ctx, struct mu_msg *msg,
                            struct mu_reply *reply);

struct mu_irqs;
struct mu_dma;
struct mu_mig;

/* A server -> client request waiting for its reply (DMA_READ/WRITE). */
struct mu_call {
    uint16_t msg_id;
    uint16_t cmd;
    uint64_t wr_iova, wr_len;   /* DMA_WRITE: what the client will write */
    bool done;
    int result;                 /* 0 or -errno */
    struct mu_msg reply;
    struct mu_call *next;
};

/* A command that arrived while the context thread waited for a reply. */
struct mu_backlog {
    struct mu_msg msg;
    struct mu_backlog *next;
};

struct mu_ctx {
    void *opaque;
    char *path;
    unsigned flags;
    bool realized;
    bool stopping;

    /* logging */
    mu_log_cb_t log_cb;
    enum mu_log_level log_level;

    /* limits, and the clock their timeouts (and DMA ages) run on */
    uint64_t limits[MU_LIMIT_NR];
    struct mu_clock clock;
    mode_t sock_mode;
    uid_t allow_uids[MU_MAX_ALLOW_UIDS];
    unsigned nr_allow_uids;

    /* transport and client state */
    const struct mu_tran_ops *tran;
    int listen_fd;
    bool accept_paused;         /* out of fds: the timer retries accept */
    int conn_fd;                /* -1 when no client */
    struct msgio io;            /* socket transport's framing */
    void *tran_priv;            /* other transports' state (tran_mem.c) */
    bool negotiated;
    const char *drop_reason;    /* set: drop the client at a safe point */
    struct vfu_caps peer;       /* what the client accepts */
    uint64_t pgsize;            /* negotiated DMA page size */
    pthread_t ctx_thread;       /* thread running the loop */
    bool have_thread;

    /* event loop */
    int epfd;
    int stop_fd;                /* eventfd: mu_ctx_stop() */
    int timer_fd;               /* periodic housekeeping while connected
                                   (stopped by the first tick after) */
    uint64_t timer_ms;          /* its period, 0 while disarmed */
    bool conn_watched;          /* tran->fixed_conn_fd: in the epoll set */

    /* server -> client calls */
    pthread_mutex_t send_lock;  /* one message at a time on the socket */
    pthread_mutex_t call_lock;  /* calls list, msg ids */
    pthread_cond_t call_cond;
    struct mu_call *calls;
    unsigned nr_calls;
    uint16_t next_msg_id;
    bool reading;               /* a thread is reading the socket */
    struct mu_backlog *backlog, **backlog_tail;
    unsigned nr_backlog;
    size_t backlog_bytes;       /* their bodies: bounded too (dispatch.c) */

    /* device */
    struct mu_pci pci;
    struct mu_region regions[MU_MAX_REGIONS];
    unsigned nr_regions;        /* 9 for PCI, more with device regions */
    struct mu_irqs *irqs;
    struct mu_dma *dma;
    mu_reset_cb_t reset_cb;
    bool reset_unmaps_dma;
    struct mu_mig *mig;         /* NULL: no migration (mig.c) */
    bool mig_quiet;             /* stopped for migration (mig.h) */

    /* The reason for the current message's refusal (mu_refuse), valid
     * only while dispatch.c runs a handler at MU_LOG_DEBUG.  Last, so the
     * buffer does not push the hot fields apart. */
    const char *why;
    char why_buf[192];
};

static inline bool mu_log_debug_on(const mu_ctx_t *ctx)
{
    return ctx->log_level >= MU_LOG_DEBUG;
}

/* epoll tags */
enum {
    MU_EV_STOP = 1,
    MU_EV_LISTEN,
    MU_EV_CONN,
    MU_EV_TIMER,
    MU_EV_IRQFD,        /* low 32 bits of data: irq.c's index */
    MU_EV_IOEVENTFD,    /* low 32 bits: region << 16 | ioeventfd index */
    MU_EV_POISON,       /* the SIGBUS handler hit a DMA mapping */
};
#define MU_EV(kind, idx) (((uint64_t)(kind) << 32) | (uint32_t)(idx))
int mu_ctx_watch(mu_ctx_t *ctx, int fd, uint64_t tag);
void mu_ctx_unwatch(mu_ctx_t *ctx, int fd);

/*
 * Send a server -> client request and wait for its reply (DMA_READ and
 * DMA_WRITE).  Safe from any thread.  On success *reply holds the reply
 * (release it with mu_msg_release).  Returns 0, -ENOTCONN, -ETIMEDOUT,
 * -EBUSY (too many calls in flight), the client's error negated, or -EPROTO
 * for a malformed reply.
 */
int mu_ctx_call(mu_ctx_t *ctx, uint16_t cmd, const struct iovec *iov,
                int iovcnt, struct mu_msg *reply);

/*
 * Serve an already connected socket as the client, bypassing listen/accept
 * (fuzzers and tests use a socketpair).  The context must be realized and
 * idle; fd is owned by the context from here on.  0 or -errno.
 */
int mu_ctx_attach_fd(mu_ctx_t *ctx, int fd);

/*
 * mu_ctx_poll() that waits up to timeout_ms (0: not at all, -1: forever)
 * for work and says whether there was any: the number of events handled
 * (0 when none came), or mu_ctx_poll()'s errors.  For harnesses that run
 * a context until it is idle: one epoll_wait per round, no poll() of
 * mu_ctx_fd() beforehand.
 */
int mu_ctx_poll_wait(mu_ctx_t *ctx, int timeout_ms);

/* Drop the client once the current message is done (dispatch.c). */
void mu_ctx_fail(mu_ctx_t *ctx, const char *why);
void mu_ctx_detach(mu_ctx_t *ctx, const char *why);
/* Device reset: device callback, then library state (dispatch.c). */
int mu_ctx_reset(mu_ctx_t *ctx, enum mu_reset_type type);
/* Process whatever the client sent (dispatch.c). */
void mu_ctx_process(mu_ctx_t *ctx);
void mu_calls_cancel(mu_ctx_t *ctx);
void mu_backlog_drop(mu_ctx_t *ctx);

static inline bool mu_on_ctx_thread(const mu_ctx_t *ctx)
{
    return ctx->have_thread && pthread_equal(pthread_self(), ctx->ctx_thread);
}


#endif /* MUSER_PRIVATE_H */
