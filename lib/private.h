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
 * and DMA_WRITE), they go through mu_ctx_call() (device threads) or
 * mu_call_send() (the context thread's requests, dma_rw.c).
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
 * socket is the one we ship (tran_sock.c); the in-memory one (tran_mem.c)
 * serves the fast fuzzers and unit tests; the kernel mdev bridge of the
 * original muser design would be another, with default_overlap =
 * MU_OVERLAP_REPLACE because it never reports unmaps.
 *
 * Everything a transport needs to remember (its fds, its framing) is its
 * own, behind ctx->tran_priv: the context knows only these ops and the
 * two fds it watches.  Every op but send runs on the context thread;
 * send is serialised by the context's send_lock and never runs after
 * detach.
 */
struct mu_tran_ops {
    const char *name;
    enum mu_overlap_policy default_overlap;
    /* Create the endpoint and the state at ctx->tran_priv.  0 or -errno. */
    int (*init)(mu_ctx_t *ctx);
    /* The fd to watch for new clients (between init and fini). */
    int (*accept_fd)(mu_ctx_t *ctx);
    /* The fd to watch for the attached client's traffic, -1 if none. */
    int (*poll_fd)(mu_ctx_t *ctx);
    /* Take a new client: 0, -EAGAIN when none is waiting, -EACCES when it
     * was refused (already closed), -EMFILE, ... */
    int (*accept)(mu_ctx_t *ctx);
    /* Take fd, already connected, as the client (mu_ctx_attach_fd).  The
     * fd is the transport's from here on, closed on failure.  0,
     * -EOPNOTSUPP (a transport without fds), -errno. */
    int (*attach_fd)(mu_ctx_t *ctx, int fd);
    /* Pull what the client sent: > 0 bytes, -EAGAIN, -ENOTCONN, ... */
    int (*read)(mu_ctx_t *ctx);
    /* Cut the next whole message: 1, 0 (need more) or -errno (fatal). */
    int (*next)(mu_ctx_t *ctx, struct mu_msg *msg);
    /* Start time of a message that has begun to arrive, 0 if none. */
    uint64_t (*partial_since)(mu_ctx_t *ctx);
    /* Send a whole message, fds attached. */
    int (*send)(mu_ctx_t *ctx, const struct iovec *iov, int iovcnt,
                const int *fds, unsigned nfds);
    /* Forget the client. */
    void (*detach)(mu_ctx_t *ctx);
    /* Remove the endpoint and free the state. */
    void (*fini)(mu_ctx_t *ctx);
    /*
     * The accept fd is never readable while a client is attached (no
     * second one can arrive): the context leaves it watched.
     */
    bool listen_quiet;
    /*
     * Every client has the same poll fd, and nothing makes it readable
     * between clients: the context watches it once, for good.
     */
    bool fixed_poll_fd;
};

extern const struct mu_tran_ops mu_tran_sock_ops;
extern const struct mu_tran_ops mu_tran_mem_ops;    /* tran_mem.h */
/* The socket client's framing, for harnesses (NULL when none). */
const struct msgio *mu_sock_msgio(mu_ctx_t *ctx);

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

struct mu_dma_req;

/*
 * A server -> client request waiting for its reply (DMA_READ/WRITE): a
 * device thread's blocking call (req NULL: it waits on call_cond), or the
 * message in flight of a context-thread request (dma_rw.c: the reply
 * continues the request from the event loop).
 */
struct mu_call {
    uint16_t msg_id;
    uint16_t cmd;
    uint64_t wr_iova, wr_len;   /* DMA_WRITE: what the client will write */
    bool done;
    int result;                 /* 0 or -errno */
    struct mu_msg reply;
    struct mu_dma_req *req;     /* NULL: a blocking call */
    struct mu_call *next;
};

/* The connection's states (the table and its rules: ctx.c). */
enum mu_conn_state {
    MU_CONN_IDLE,       /* no client; the accept fd is watched */
    MU_CONN_PAUSED,     /* out of fds: the timer retries accept */
    MU_CONN_ATTACHED,   /* a client, VERSION not negotiated yet */
    MU_CONN_READY,      /* negotiated: commands and DMA requests */
    MU_CONN_FAILED,     /* broken: dropped once the current message is done */
    MU_CONN_NR
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
    void *tran_priv;            /* the transport's own state (opaque) */
    enum mu_conn_state conn;    /* written under send_lock and call_lock
                                   by the context thread (ctx.c) */
    const char *drop_reason;    /* MU_CONN_FAILED: why */
    bool detaching;             /* mu_ctx_detach has begun and not yet
                                   closed everything of the client's
                                   (atomic; set before conn leaves an
                                   attached state): who waits for a
                                   detach to be over (the tests) waits
                                   for this too */
    struct vfu_caps peer;       /* what the client accepts */
    uint64_t pgsize;            /* negotiated DMA page size */
    pthread_t ctx_thread;       /* thread running the loop */
    bool have_thread;           /* atomic (mu_on_ctx_thread) */

    /* event loop */
    int epfd;
    int wake_fd;                /* eventfd: mu_ctx_wake(); -1 until the
                                   first wake (atomic: any thread) */
    unsigned wake;              /* MU_WAKE_* not yet handled (atomic) */
    int timer_fd;               /* periodic housekeeping while something
                                   needs it (mu_ctx_timer_check), closed by
                                   the first tick after; -1 meanwhile */
    uint64_t timer_ms;          /* its period, 0 while there is none */
    bool conn_watched;          /* tran->fixed_poll_fd: in the epoll set */
    /* What the loop did (ctx.c), for tests: written by the context thread
     * only, read atomically from any thread. */
    struct {
        uint64_t sleeps;        /* epoll_waits that could block */
        uint64_t spins;         /* busy polling: non-blocking reads */
        uint64_t spin_work;     /* ... rounds that found work while spinning */
        uint64_t spin_expired;  /* ... spins that ran out of time */
    } busy;

    /* server -> client calls */
    pthread_mutex_t send_lock;  /* one message at a time on the socket */
    pthread_mutex_t call_lock;  /* calls list, msg ids */
    pthread_cond_t call_cond;
    struct mu_call *calls;      /* messages waiting for their reply */
    unsigned nr_calls;          /* blocking calls among them */
    unsigned nr_reqs;           /* context-thread requests accepted and not
                                   completed (call_lock; with nr_calls
                                   held to MU_LIMIT_DMA_PENDING) */
    uint16_t next_msg_id;
    /* context-thread requests (dma_rw.c; context thread only) */
    struct mu_dma_req *reqs;    /* accepted, not done */
    struct mu_dma_req *reqs_done, **reqs_done_tail; /* done, cb not run */

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
    MU_EV_WAKE = 1,     /* ctx->wake_fd: see ctx->wake for why */
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
 * Wake the context thread for the reasons in bits: its loop sees them at
 * its next round (ctx.c, on_wake).  One eventfd carries every reason; it
 * is created at the first wake, so a context nobody wakes has no fd for
 * it.  Any thread, and async-signal-safe (mu_ctx_stop).  0, or the wake
 * is lost: -EINVAL before realize, -EMFILE etc. when the eventfd cannot
 * be created, -EIO when it cannot be written or watched.
 */
enum {
    MU_WAKE_STOP = 1u << 0,     /* mu_ctx_stop() */
    MU_WAKE_DONE = 1u << 1,     /* DMA requests done: run their callbacks */
    MU_WAKE_TIMER = 1u << 2,    /* a limit the timer's period or need
                                   depends on changed */
};
int mu_ctx_wake(mu_ctx_t *ctx, unsigned bits);

/*
 * The housekeeping timer exists only while something needs it: accept
 * paused, a partial message (receive timeout), context-thread DMA
 * requests waiting for replies, or a DMA idle limit.  Whoever may have
 * started such a need calls this (context thread; cheap when the timer
 * runs already).  The timer's first tick with no need left removes it.
 */
void mu_ctx_timer_check(mu_ctx_t *ctx);

/*
 * Send a server -> client request and wait for its reply (DMA_READ and
 * DMA_WRITE).  Safe from any thread but the context thread, which takes
 * the replies (-EDEADLK there).  On success *reply holds the reply
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

/*
 * The connection's state changes (ctx.c, which has the table): asserted in
 * debug builds.  Context thread.
 */
void mu_conn_set(mu_ctx_t *ctx, enum mu_conn_state to);
/* A client is attached (context thread, or under send_lock). */
static inline bool mu_conn_attached(const mu_ctx_t *ctx)
{
    return ctx->conn >= MU_CONN_ATTACHED;
}
/* It negotiated and may be sent requests (context thread, or under
 * call_lock). */
static inline bool mu_conn_ready(const mu_ctx_t *ctx)
{
    return ctx->conn == MU_CONN_READY;
}

/* Drop the client once the current message is done (dispatch.c). */
void mu_ctx_fail(mu_ctx_t *ctx, const char *why);
void mu_ctx_detach(mu_ctx_t *ctx, const char *why);
/* Device reset: device callback, then library state (dispatch.c). */
int mu_ctx_reset(mu_ctx_t *ctx, enum mu_reset_type type);
/*
 * Process whatever the client sent (dispatch.c): a read and the messages
 * it completed, and further reads while the client sends ahead of its
 * replies (a bounded number).  The first read's result: > 0 when
 * something came, -EAGAIN when nothing was there, -ENOTCONN without a
 * client, or another -errno (the client was dropped).
 */
int mu_ctx_process(mu_ctx_t *ctx);
void mu_calls_cancel(mu_ctx_t *ctx);
/* Take the call of a context-thread request off the list (it timed out or
 * was cancelled); false when its reply already took it. */
bool mu_call_unlink(mu_ctx_t *ctx, struct mu_call *call);
/* Send a request's message (its call registered first).  0 or -errno. */
int mu_call_send(mu_ctx_t *ctx, struct mu_call *call, const struct iovec *iov,
                 int iovcnt);

/* ---- context-thread DMA requests (dma_rw.c) ---- */
/* Its reply came (call->result, call->reply set; the call is unlinked). */
void mu_dma_req_reply(mu_ctx_t *ctx, struct mu_dma_req *req);
/* Run the callbacks of the requests that are done (MU_EV_DONE). */
void mu_dma_reqs_run_done(mu_ctx_t *ctx);
/* Fail requests whose message waited past the receive timeout (timer). */
void mu_dma_reqs_tick(mu_ctx_t *ctx);
/* End every request with err (-ENOTCONN: the client went; -ECANCELED:
 * reset), callbacks included, and those already done with theirs. */
void mu_dma_reqs_cancel(mu_ctx_t *ctx, int err);

static inline bool mu_on_ctx_thread(const mu_ctx_t *ctx)
{
    /* Set once, by the first loop round (ctx.c); a thread that reads it
     * unset is not the context thread. */
    return __atomic_load_n(&ctx->have_thread, __ATOMIC_ACQUIRE) &&
           pthread_equal(pthread_self(), ctx->ctx_thread);
}


#endif /* MUSER_PRIVATE_H */
