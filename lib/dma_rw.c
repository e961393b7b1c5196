/*
 * dma_rw.c - mu_dma_read() and mu_dma_write(), and their asynchronous
 * forms for the context thread: copies between guest memory and a device
 * buffer.
 *
 * Regions with an fd are copied through their mapping (translate, copy,
 * put, which also logs writes); regions without one through DMA_READ and
 * DMA_WRITE messages to the client (a DMA_WRITE is logged when the
 * client's reply comes in).  Apart from mu_dma_lookup() this uses
 * only the public translation API, so it is as thread-safe as that is.
 *
 * A blocking copy waits for the client's reply, which only the context
 * thread receives: on the context thread it would wait for itself, so
 * there it fails with -EDEADLK when it needs the client.  The context
 * thread uses requests instead (mu_dma_read_async): a request copies what
 * is mapped at once, sends one message for the next fd-less piece, and
 * goes on when dispatch.c routes the reply to it (mu_dma_req_reply), until
 * it is done; then its callback runs, from the event loop, exactly once.
 * A request that ends without waiting for the client (all of it mapped,
 * or an error at the first step) is queued on ctx->reqs_done and its
 * callback run on MU_EV_DONE, never inside the call that submitted it.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "private.h"
#include "cmd.h"
#include "dma.h"
#include "mig.h"

/* Copy through mappings: translate, copy, put (which logs writes). */
static int copy_mapped(mu_ctx_t *ctx, uint64_t iova, uint8_t *buf, size_t len,
                       bool is_write)
{
    mu_sg_t sg[8];
    int nr = mu_dma_get(ctx, iova, len, is_write ? MU_DMA_WRITE : MU_DMA_READ,
                        sg, 8);

    for (int i = 0; i < nr; i++) {
        if (is_write)
            memcpy(sg[i].addr, buf, sg[i].len);
        else
            memcpy(buf, sg[i].addr, sg[i].len);
        buf += sg[i].len;
    }
    if (nr > 0)
        mu_dma_put(ctx, sg, (unsigned)nr);
    return nr < 0 ? nr : 0;
}

/*
 * The most data one message to the client may carry: the peer's transfer
 * limit, small enough that a DMA_READ reply fits the messages we accept.
 * Read under call_lock, which a new client's VERSION writes it under.
 * 0 when no client has negotiated one.
 */
static size_t remote_max(mu_ctx_t *ctx)
{
    size_t room = mu_cmd_dma_rw_room(ctx);
    uint64_t max;

    pthread_mutex_lock(&ctx->call_lock);
    max = mu_conn_ready(ctx) ? ctx->peer.max_data_xfer_size : 0;
    pthread_mutex_unlock(&ctx->call_lock);
    return max < room ? (size_t)max : room;
}

/* A region without fd: messages within remote_max(). */
static int copy_remote(mu_ctx_t *ctx, uint64_t iova, uint8_t *buf, size_t n,
                       bool is_write)
{
    int rc;

    /* It would wait for a reply only this thread can take. */
    if (mu_on_ctx_thread(ctx))
        return -EDEADLK;
    while (n > 0) {
        size_t max = remote_max(ctx), chunk;

        if (max == 0)
            return -ENOTCONN;
        chunk = n < max ? n : max;

        /* A write is logged dirty when its reply arrives (dispatch.c,
         * route_reply), on the context thread. */
        rc = mu_cmd_dma_rw_call(ctx, iova, buf, chunk, is_write);
        if (rc < 0)
            return rc;
        iova += chunk;
        buf += chunk;
        n -= chunk;
    }
    return 0;
}

/*
 * Mapped memory is one translation; otherwise go region by region.  The
 * lock is not held across copies or messages, so a failure part-way leaves
 * the earlier pieces copied, as a real DMA engine would.
 */
static int dma_rw(mu_ctx_t *ctx, uint64_t iova, uint8_t *buf, size_t len,
                  bool is_write)
{
    unsigned prot = is_write ? MU_DMA_WRITE : MU_DMA_READ;
    uint64_t last;
    bool has_fd;
    int rc;

    if (mu_mig_quiet(ctx))
        return -EPERM;      /* stopped for migration (muser.h) */
    rc = copy_mapped(ctx, iova, buf, len, is_write);
    if (rc != -EFAULT && rc != -ENOSPC)
        return rc;
    while (len > 0) {
        size_t n = len;

        rc = mu_dma_lookup(ctx, iova, prot, &last, &has_fd);
        if (rc < 0)
            return rc;
        if (last - iova < len - 1)
            n = (size_t)(last - iova + 1);
        rc = has_fd ? copy_mapped(ctx, iova, buf, n, is_write)
                    : copy_remote(ctx, iova, buf, n, is_write);
        if (rc < 0)
            return rc;
        iova += n;
        buf += n;
        len -= n;
    }
    return 0;
}

int mu_dma_read(mu_ctx_t *ctx, uint64_t iova, void *buf, size_t len)
{
    return dma_rw(ctx, iova, buf, len, false);
}

int mu_dma_write(mu_ctx_t *ctx, uint64_t iova, const void *buf, size_t len)
{
    /* Never written through: the cast only shares dma_rw's signature. */
    return dma_rw(ctx, iova, (uint8_t *)buf, len, true);
}

/* ---------------- the context thread's requests ---------------- */

struct mu_dma_req {
    struct mu_call call;        /* the message in flight, if any */
    bool in_flight;             /* call is on ctx->calls (or was routed) */
    bool is_write;
    uint64_t iova;              /* the next byte to copy */
    uint8_t *buf;
    size_t left;
    size_t chunk;               /* the message in flight's data length */
    uint64_t deadline;          /* its reply is due (ctx->clock) */
    int status;                 /* once done */
    mu_dma_done_cb_t cb;
    void *arg;
    struct mu_dma_req *next;    /* ctx->reqs, then ctx->reqs_done */
};

static void reqs_unlink(mu_ctx_t *ctx, struct mu_dma_req *r)
{
    struct mu_dma_req **pp;

    for (pp = &ctx->reqs; *pp != NULL; pp = &(*pp)->next) {
        if (*pp == r) {
            *pp = r->next;
            r->next = NULL;
            return;
        }
    }
}

/* The request's slot in MU_LIMIT_DMA_PENDING goes, then the request. */
static void req_free(mu_ctx_t *ctx, struct mu_dma_req *r)
{
    pthread_mutex_lock(&ctx->call_lock);
    ctx->nr_reqs--;
    pthread_mutex_unlock(&ctx->call_lock);
    free(r);
}

/* The request is over: its callback, once.  The callback may submit
 * more (or fail the client); r is not touched after it. */
static void req_end(mu_ctx_t *ctx, struct mu_dma_req *r, int status)
{
    mu_dma_done_cb_t cb = r->cb;
    void *arg = r->arg;

    req_free(ctx, r);
    cb(ctx, arg, status);
}

/* Done without waiting for the client: the callback runs from the loop. */
static void req_defer(mu_ctx_t *ctx, struct mu_dma_req *r, int status)
{
    r->status = status;
    r->next = NULL;
    *ctx->reqs_done_tail = r;
    ctx->reqs_done_tail = &r->next;
    if (mu_ctx_wake(ctx, MU_WAKE_DONE) < 0)
        mu_log(ctx, MU_LOG_ERR, "cannot wake the loop: a DMA request's "
               "callback waits for the next event");
}

/*
 * Copy what is mapped, up to the first piece that needs the client, and
 * send that piece's message.  Returns 1 when a message is in flight (r
 * is on ctx->reqs), or the request's outcome (0 or -errno; r is on no
 * list).
 */
static int req_step(mu_ctx_t *ctx, struct mu_dma_req *r)
{
    unsigned prot = r->is_write ? MU_DMA_WRITE : MU_DMA_READ;
    int rc;

    while (r->left > 0) {
        uint64_t last;
        size_t n = r->left, max;
        bool has_fd;

        if (mu_mig_quiet(ctx))
            return -EPERM;      /* stopped for migration meanwhile */
        rc = mu_dma_lookup(ctx, r->iova, prot, &last, &has_fd);
        if (rc < 0)
            return rc;
        if (last - r->iova < n - 1)
            n = (size_t)(last - r->iova + 1);
        if (has_fd) {
            rc = copy_mapped(ctx, r->iova, r->buf, n, r->is_write);
            if (rc < 0)
                return rc;
            r->iova += n;
            r->buf += n;
            r->left -= n;
            continue;
        }
        max = remote_max(ctx);
        if (max == 0)
            return -ENOTCONN;
        r->chunk = n < max ? n : max;
        r->call.req = r;
        r->deadline = mu_clock_ns(&ctx->clock) +
                      ctx->limits[MU_LIMIT_RECV_TIMEOUT_MS] * 1000000ull;
        rc = mu_cmd_dma_rw_send(ctx, &r->call, r->iova, r->buf, r->chunk,
                                r->is_write);
        if (rc < 0)
            return rc;
        r->in_flight = true;
        r->next = ctx->reqs;
        ctx->reqs = r;
        mu_ctx_timer_check(ctx);    /* its reply's timeout */
        return 1;
    }
    return 0;
}

void mu_dma_req_reply(mu_ctx_t *ctx, struct mu_dma_req *r)
{
    int rc;

    reqs_unlink(ctx, r);
    r->in_flight = false;
    rc = mu_cmd_dma_rw_done(r->call.result, &r->call.reply, r->iova,
                            r->buf, r->chunk, r->is_write);
    if (rc == 0) {
        r->iova += r->chunk;
        r->buf += r->chunk;
        r->left -= r->chunk;
        rc = req_step(ctx, r);
        if (rc == 1)
            return;
    }
    req_end(ctx, r, rc);
}

void mu_dma_reqs_run_done(mu_ctx_t *ctx)
{
    struct mu_dma_req *r = ctx->reqs_done;

    /* Only those done so far: a callback's new requests wait their turn. */
    ctx->reqs_done = NULL;
    ctx->reqs_done_tail = &ctx->reqs_done;
    while (r != NULL) {
        struct mu_dma_req *next = r->next;

        req_end(ctx, r, r->status);
        r = next;
    }
}

void mu_dma_reqs_tick(mu_ctx_t *ctx)
{
    uint64_t now = mu_clock_ns(&ctx->clock);
    struct mu_dma_req **pp = &ctx->reqs, *r;

    while ((r = *pp) != NULL) {
        /* Exactly the timeout is not late yet, as for a partial message. */
        if (now <= r->deadline) {
            pp = &r->next;
            continue;
        }
        /* Its reply may still come: it is dropped as a late one. */
        mu_call_unlink(ctx, &r->call);
        *pp = r->next;
        mu_log(ctx, MU_LOG_WARN, "%s of %zu bytes at %#llx: no reply in time",
               mu_cmd_dma_rw_name(r->is_write), r->chunk,
               (unsigned long long)r->iova);
        mu_msg_release(&r->call.reply);
        req_end(ctx, r, -ETIMEDOUT);
        /* A callback may have changed the list: start over. */
        pp = &ctx->reqs;
    }
}

void mu_dma_reqs_cancel(mu_ctx_t *ctx, int err)
{
    struct mu_dma_req *r = ctx->reqs;

    /* The ones there now; a callback's new ones are the caller's next
     * concern (after a disconnect they are refused). */
    ctx->reqs = NULL;
    while (r != NULL) {
        struct mu_dma_req *next = r->next;

        mu_call_unlink(ctx, &r->call);
        mu_msg_release(&r->call.reply);
        req_end(ctx, r, err);
        r = next;
    }
    mu_dma_reqs_run_done(ctx);
}

static int submit(mu_ctx_t *ctx, uint64_t iova, uint8_t *buf, size_t len,
                  bool is_write, mu_dma_done_cb_t cb, void *arg)
{
    struct mu_dma_req *r;
    int rc;

    if (cb == NULL || len == 0 || (buf == NULL && len > 0) ||
        iova + (len - 1) < iova)
        return -EINVAL;
    if (!mu_on_ctx_thread(ctx))
        return -EPERM;
    if (mu_mig_quiet(ctx))
        return -EPERM;      /* stopped for migration (muser.h) */
    pthread_mutex_lock(&ctx->call_lock);
    if (!mu_conn_ready(ctx))
        rc = -ENOTCONN;
    else if (ctx->nr_calls + ctx->nr_reqs >= ctx->limits[MU_LIMIT_DMA_PENDING])
        rc = -EBUSY;
    else
        rc = 0, ctx->nr_reqs++;
    pthread_mutex_unlock(&ctx->call_lock);
    if (rc < 0)
        return rc;
    r = calloc(1, sizeof(*r));
    if (r == NULL) {
        pthread_mutex_lock(&ctx->call_lock);
        ctx->nr_reqs--;
        pthread_mutex_unlock(&ctx->call_lock);
        return -ENOMEM;
    }
    r->is_write = is_write;
    r->iova = iova;
    r->buf = buf;
    r->left = len;
    r->cb = cb;
    r->arg = arg;
    /* The common case, all of it mapped: one translation. */
    rc = copy_mapped(ctx, iova, buf, len, is_write);
    if (rc == -EFAULT || rc == -ENOSPC)
        rc = req_step(ctx, r);
    if (rc != 1)
        req_defer(ctx, r, rc);
    return 0;
}

int mu_dma_read_async(mu_ctx_t *ctx, uint64_t iova, void *buf, size_t len,
                      mu_dma_done_cb_t cb, void *arg)
{
    return submit(ctx, iova, buf, len, false, cb, arg);
}

int mu_dma_write_async(mu_ctx_t *ctx, uint64_t iova, const void *buf,
                       size_t len, mu_dma_done_cb_t cb, void *arg)
{
    /* Never written through: the cast only shares submit's signature. */
    return submit(ctx, iova, (uint8_t *)buf, len, true, cb, arg);
}
