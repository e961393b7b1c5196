/*
 * dispatch.c - from whole messages to handlers and back to replies.
 *
 * Rules the client can rely on:
 *  - every command gets exactly one reply (none with no_reply), in order;
 *  - an invalid command gets an error reply and the server carries on; only
 *    a broken stream (bad header, truncated fds, send timeout) or a failed
 *    handshake drops the client;
 *  - VERSION must come first and only once.
 *
 * The context thread may itself wait for a reply to a server -> client
 * request (DMA_READ/DMA_WRITE issued from a device callback).  Commands the
 * client sends meanwhile are parked in a backlog and run, in order, once the
 * current command is finished, so the protocol's in-order rule holds and
 * nothing deadlocks.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/timerfd.h>

#include "cmd.h"
#include "private.h"
#include "mig.h"

/*
 * Commands parked while the context thread waits for a reply: at most this
 * many, and at most this many bytes of them (or one message of the largest
 * size, if that is more).  A count alone would let a client make the
 * server hold 1024 maximum-size messages, a GiB with the default limits.
 */
#define MU_BACKLOG_MAX 1024u
#define MU_BACKLOG_MAX_BYTES (16u << 20)

/*
 * Ask for the client to be dropped at the next safe point: handlers may be
 * deep in a subsystem when they find the stream broken, and tearing the
 * client down under them would pull their state away.
 */
void mu_ctx_fail(mu_ctx_t *ctx, const char *why)
{
    if (ctx->drop_reason == NULL)
        ctx->drop_reason = why;
}

static int send_msg(mu_ctx_t *ctx, const struct iovec *iov, int iovcnt,
                    const int *fds, unsigned nfds)
{
    int rc;

    pthread_mutex_lock(&ctx->send_lock);
    if (ctx->conn_fd < 0)
        rc = -ENOTCONN;
    else
        rc = ctx->tran->send(ctx, iov, iovcnt, fds, nfds);
    pthread_mutex_unlock(&ctx->send_lock);
    return rc;
}

static void send_reply(mu_ctx_t *ctx, const struct vfu_hdr *req, int err,
                       struct mu_reply *r)
{
    struct vfu_hdr h;
    struct iovec iov[3];
    int n = 1, rc;
    size_t size = VFU_HDR_SIZE;

    iov[0].iov_base = &h;
    iov[0].iov_len = sizeof(h);
    if (err == 0 && r->len > 0) {
        iov[n].iov_base = r->data != NULL ? r->data : r->small;
        iov[n++].iov_len = r->len;
        size += r->len;
    }
    if (err == 0 && r->len2 > 0) {
        iov[n].iov_base = r->data2;
        iov[n++].iov_len = r->len2;
        size += r->len2;
    }
    vfu_hdr_init(&h, req->msg_id, req->cmd, (uint32_t)size,
                 VFU_F_TYPE_REPLY | (err ? VFU_F_ERROR : 0), (uint32_t)err);
    rc = send_msg(ctx, iov, n, err ? NULL : r->fds, err ? 0 : r->nfds);
    if (rc < 0) {
        mu_log(ctx, MU_LOG_WARN, "reply to %s failed: %s",
               vfu_cmd_name(req->cmd), strerror(-rc));
        mu_ctx_fail(ctx, rc == -ETIMEDOUT ? "client stopped reading replies"
                                          : "reply could not be sent");
    }
}

/* Error reply to a message we could not even decode (header only). */
static void send_error(mu_ctx_t *ctx, const struct vfu_hdr *req, int err)
{
    struct mu_reply r;

    r.len = r.len2 = 0;
    r.data = r.data2 = NULL;
    r.nfds = 0;
    send_reply(ctx, req, err, &r);
}

/* ---------------- handlers owned by the context ---------------- */

static int handle_version(mu_ctx_t *ctx, struct mu_msg *msg,
                          struct mu_reply *reply)
{
    struct vfu_version v, out;
    struct vfu_caps ours;
    const char *json;
    size_t json_len;
    int rc;

    rc = vfu_check_version(msg->body, msg->len, msg->nfds, &v, &json,
                           &json_len);
    if (rc < 0)
        return rc;
    if (v.major != VFU_VERSION_MAJOR) {
        mu_log(ctx, MU_LOG_WARN, "client wants protocol %u.%u; we speak %u.%u",
               v.major, v.minor, VFU_VERSION_MAJOR, VFU_VERSION_MINOR);
        return -ENOTSUP;
    }
    rc = vfu_caps_parse(json, json_len, &ctx->peer);
    if (rc < 0) {
        mu_log(ctx, MU_LOG_WARN, "client capabilities are not valid JSON");
        return rc;
    }
    if (ctx->peer.max_msg_fds > MSGIO_MAX_FDS)
        ctx->peer.max_msg_fds = MSGIO_MAX_FDS;
    if (!(ctx->peer.pgsizes & 4096)) {
        mu_log(ctx, MU_LOG_WARN, "client page sizes %#llx lack 4 KiB",
               (unsigned long long)ctx->peer.pgsizes);
        return -EINVAL;
    }
    ctx->pgsize = 4096;

    vfu_caps_default(&ours);
    ours.max_msg_fds = vfu_caps_server_fds(ctx->limits[MU_LIMIT_MSG_FDS],
                                           &ctx->peer);
    ours.max_data_xfer_size = (uint32_t)ctx->limits[MU_LIMIT_DATA_XFER];
    ours.max_dma_maps = (uint32_t)ctx->limits[MU_LIMIT_DMA_REGIONS];
    ours.pgsizes = 4096;
    /* The reply's capabilities must be a subset of the client's. */
    ours.write_multiple = ctx->peer.write_multiple;
    ours.mig_pgsize = mu_mig_version_pgsize(ctx);

    out.major = VFU_VERSION_MAJOR;
    out.minor = v.minor < VFU_VERSION_MINOR ? v.minor : VFU_VERSION_MINOR;
    memcpy(reply->small, &out, sizeof(out));
    rc = vfu_caps_build(&ours, (char *)reply->small + sizeof(out),
                        sizeof(reply->small) - sizeof(out));
    if (rc < 0)
        return rc;
    reply->len = sizeof(out) + (size_t)rc;

    pthread_mutex_lock(&ctx->call_lock);
    ctx->negotiated = true;
    pthread_mutex_unlock(&ctx->call_lock);
    mu_log(ctx, MU_LOG_INFO, "negotiated vfio-user %u.%u", out.major, out.minor);
    return 0;
}

static int handle_device_info(mu_ctx_t *ctx, struct mu_msg *msg,
                              struct mu_reply *reply)
{
    struct vfu_device_info in, out;
    int rc;

    rc = vfu_check_device_get_info(msg->body, msg->len, msg->nfds, &in);
    if (rc < 0)
        return rc;
    out.argsz = sizeof(out);
    out.flags = VFU_DEV_FLAG_PCI | VFU_DEV_FLAG_RESET;
    out.num_regions = ctx->nr_regions;
    out.num_irqs = VFU_IRQ_NUM;
    memcpy(reply->small, &out, sizeof(out));
    reply->len = sizeof(out);
    return 0;
}

int mu_ctx_reset(mu_ctx_t *ctx, enum mu_reset_type type)
{
    int rc = 0;

    if (ctx->reset_cb != NULL)
        rc = ctx->reset_cb(ctx, type);
    if (ctx->reset_unmaps_dma)
        mu_dma_remove_all(ctx, MU_UNMAP_RESET);
    mu_irqs_reset(ctx);
    mu_mig_reset(ctx);
    mu_pci_reset(ctx);
    return rc;
}

static int handle_reset(mu_ctx_t *ctx, struct mu_msg *msg,
                        struct mu_reply *reply)
{
    int rc;

    (void)reply;
    rc = vfu_check_no_payload(msg->body, msg->len, msg->nfds);
    if (rc < 0)
        return rc;
    return mu_ctx_reset(ctx, MU_RESET_CLIENT);
}

static const mu_handler_t handlers[VFU_CMD_MAX + 1] = {
    [VFU_CMD_VERSION] = handle_version,
    [VFU_CMD_DMA_MAP] = mu_cmd_dma_map,
    [VFU_CMD_DMA_UNMAP] = mu_cmd_dma_unmap,
    [VFU_CMD_DEVICE_GET_INFO] = handle_device_info,
    [VFU_CMD_DEVICE_GET_REGION_INFO] = mu_cmd_region_info,
    [VFU_CMD_DEVICE_GET_REGION_IO_FDS] = mu_cmd_region_io_fds,
    [VFU_CMD_DEVICE_GET_IRQ_INFO] = mu_cmd_irq_info,
    [VFU_CMD_DEVICE_SET_IRQS] = mu_cmd_set_irqs,
    [VFU_CMD_REGION_READ] = mu_cmd_region_rw,
    [VFU_CMD_REGION_WRITE] = mu_cmd_region_rw,
    [VFU_CMD_DEVICE_RESET] = handle_reset,
    [VFU_CMD_REGION_WRITE_MULTI] = mu_cmd_write_multi,
    [VFU_CMD_DEVICE_FEATURE] = mu_cmd_device_feature,
    [VFU_CMD_MIG_DATA_READ] = mu_cmd_mig_data_read,
    [VFU_CMD_MIG_DATA_WRITE] = mu_cmd_mig_data_write,
};

/* ---------------- server -> client calls ---------------- */

/*
 * Hand a reply to the call waiting for it.  Takes ownership of msg.
 *
 * A DMA_WRITE the client says it did is logged dirty here, on the
 * context thread, before it reads the client's next message: the client
 * may ask for a dirty report right after its reply (the last one, once
 * the device is stopped), and the device thread that made the call may
 * not have run again by then.
 */
static bool route_reply(mu_ctx_t *ctx, struct mu_msg *msg)
{
    struct mu_call **pp, *c;
    uint64_t wr_iova = 0, wr_len = 0;

    pthread_mutex_lock(&ctx->call_lock);
    for (pp = &ctx->calls; (c = *pp) != NULL; pp = &c->next) {
        if (c->msg_id == msg->hdr.msg_id && c->cmd == msg->hdr.cmd)
            break;
    }
    if (c != NULL) {
        *pp = c->next;
        ctx->nr_calls--;
        c->reply = *msg;
        /*
         * The errno is the client's word: only 1..4095 is one.  Negating
         * anything above INT_MAX overflows, and 0xffffffff would become
         * +1, which mu_ctx_call's callers take for success with no reply
         * filled in.  Anything else is "the client said error": -EIO.
         */
        if (!(msg->hdr.flags & VFU_F_ERROR))
            c->result = 0;
        else if (msg->hdr.error >= 1 && msg->hdr.error <= 4095)
            c->result = -(int)msg->hdr.error;
        else
            c->result = -EIO;
        if (c->cmd == VFU_CMD_DMA_WRITE && c->result == 0) {
            wr_iova = c->wr_iova;
            wr_len = c->wr_len;
        }
        c->done = true;
        pthread_cond_broadcast(&ctx->call_cond);
    }
    pthread_mutex_unlock(&ctx->call_lock);
    if (wr_len != 0)
        mu_dma_mark_dirty(ctx, wr_iova, (size_t)wr_len);
    return c != NULL;
}

static void unlink_call(mu_ctx_t *ctx, struct mu_call *call)
{
    struct mu_call **pp;

    for (pp = &ctx->calls; *pp != NULL; pp = &(*pp)->next) {
        if (*pp == call) {
            *pp = call->next;
            ctx->nr_calls--;
            return;
        }
    }
}

void mu_calls_cancel(mu_ctx_t *ctx)
{
    struct mu_call *c;

    pthread_mutex_lock(&ctx->call_lock);
    while ((c = ctx->calls) != NULL) {
        ctx->calls = c->next;
        c->result = -ENOTCONN;
        c->done = true;
    }
    ctx->nr_calls = 0;
    pthread_cond_broadcast(&ctx->call_cond);
    pthread_mutex_unlock(&ctx->call_lock);
}

static int backlog_push(mu_ctx_t *ctx, struct mu_msg *msg)
{
    size_t cap = MU_BACKLOG_MAX_BYTES;
    struct mu_backlog *b;

    if (ctx->limits[MU_LIMIT_MSG_SIZE] > cap)
        cap = (size_t)ctx->limits[MU_LIMIT_MSG_SIZE];
    /* backlog_bytes <= cap always, so the subtraction cannot wrap. */
    if (ctx->nr_backlog >= MU_BACKLOG_MAX ||
        msg->len > cap - ctx->backlog_bytes)
        return -ENOBUFS;
    b = malloc(sizeof(*b));
    if (b == NULL)
        return -ENOMEM;
    b->msg = *msg;
    b->next = NULL;
    *ctx->backlog_tail = b;
    ctx->backlog_tail = &b->next;
    ctx->nr_backlog++;
    ctx->backlog_bytes += msg->len;
    return 0;
}

static bool backlog_pop(mu_ctx_t *ctx, struct mu_msg *msg)
{
    struct mu_backlog *b = ctx->backlog;

    if (b == NULL)
        return false;
    ctx->backlog = b->next;
    if (ctx->backlog == NULL)
        ctx->backlog_tail = &ctx->backlog;
    ctx->nr_backlog--;
    ctx->backlog_bytes -= b->msg.len;
    *msg = b->msg;
    free(b);
    return true;
}

void mu_backlog_drop(mu_ctx_t *ctx)
{
    struct mu_msg m;

    while (backlog_pop(ctx, &m))
        mu_msg_release(&m);
}

/*
 * The context thread waits for its own call: read the socket ourselves,
 * route replies, park commands.
 */
static int wait_inline(mu_ctx_t *ctx, struct mu_call *call, int timeout_ms)
{
    uint64_t deadline = mu_clock_ns(&ctx->clock) +
                        (uint64_t)timeout_ms * 1000000ull;
    struct mu_msg m;
    int rc;

    while (!call->done) {
        /*
         * Checked on every turn, not only when the socket runs dry: a
         * client that keeps it full of replies to nothing would otherwise
         * hold the context thread here for as long as it likes.
         */
        if (mu_clock_ns(&ctx->clock) >= deadline)
            return -ETIMEDOUT;
        rc = ctx->tran->next(ctx, &m);
        if (rc == 1) {
            if (vfu_hdr_is_reply(&m.hdr)) {
                if (!route_reply(ctx, &m)) {
                    mu_log(ctx, MU_LOG_WARN, "dropping unexpected reply id %u",
                           m.hdr.msg_id);
                    mu_msg_release(&m);
                }
            } else if ((rc = backlog_push(ctx, &m)) < 0) {
                mu_msg_release(&m);
                mu_ctx_fail(ctx, "too many commands while waiting for a reply");
                return rc;
            }
            continue;
        }
        if (rc < 0) {
            mu_ctx_fail(ctx, "malformed message while waiting for a reply");
            return rc;
        }
        rc = ctx->tran->read(ctx);
        if (rc > 0)
            continue;
        if (rc != -EAGAIN) {
            mu_ctx_fail(ctx, "connection lost while waiting for a reply");
            return rc;
        }
        rc = ctx->tran->wait(ctx, deadline);
        if (rc < 0)
            return rc;
    }
    return 0;
}

static int wait_cond(mu_ctx_t *ctx, struct mu_call *call, int timeout_ms)
{
    struct timespec ts;
    int rc = 0;

    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += timeout_ms / 1000;
    ts.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    while (!call->done && rc == 0)
        rc = pthread_cond_timedwait(&ctx->call_cond, &ctx->call_lock, &ts);
    return call->done ? 0 : -ETIMEDOUT;
}

/*
 * wait_inline() parks the commands it reads and may leave whole messages
 * in the receive buffer.  When the call was made from a handler, drain()
 * runs them right after.  A call made anywhere else on the context thread
 * - an ioeventfd callback (a doorbell that makes the device fetch from
 * guest memory), or the device's own loop between mu_ctx_poll()s - left
 * them with nothing to run them: their bytes are off the socket, so epoll
 * never wakes the loop for them again, and the client waits forever for
 * the replies (found by fuzz_server).  Fire the housekeeping timer now;
 * on_timer() runs what is parked.  A fire the drain got to first is
 * harmless.
 */
static void kick_if_parked(mu_ctx_t *ctx)
{
    struct itimerspec its;

    if ((ctx->backlog == NULL && ctx->tran->partial_since(ctx) == 0) ||
        timerfd_gettime(ctx->timer_fd, &its) < 0)
        return;
    its.it_value.tv_sec = 0;
    its.it_value.tv_nsec = 1;       /* as soon as possible; period kept */
    timerfd_settime(ctx->timer_fd, 0, &its, NULL);
}

int mu_ctx_call(mu_ctx_t *ctx, uint16_t cmd, const struct iovec *iov,
                int iovcnt, struct mu_msg *reply)
{
    struct mu_call call = { .cmd = cmd };
    struct iovec v[8];
    struct vfu_hdr h;
    size_t size = VFU_HDR_SIZE;
    int timeout = (int)ctx->limits[MU_LIMIT_RECV_TIMEOUT_MS];
    int rc;

    if (iovcnt < 0 || iovcnt > 7)
        return -EINVAL;
    for (int i = 0; i < iovcnt; i++) {
        size += iov[i].iov_len;
        v[i + 1] = iov[i];
    }
    if (size > UINT32_MAX)
        return -EINVAL;
    if (cmd == VFU_CMD_DMA_WRITE && iovcnt > 0 &&
        iov[0].iov_len >= sizeof(struct vfu_dma_access)) {
        struct vfu_dma_access a;

        memcpy(&a, iov[0].iov_base, sizeof(a));
        call.wr_iova = a.addr;
        call.wr_len = a.count;
    }

    pthread_mutex_lock(&ctx->call_lock);
    if (ctx->conn_fd < 0 || !ctx->negotiated) {
        pthread_mutex_unlock(&ctx->call_lock);
        return -ENOTCONN;
    }
    if (ctx->nr_calls >= ctx->limits[MU_LIMIT_DMA_PENDING]) {
        pthread_mutex_unlock(&ctx->call_lock);
        return -EBUSY;
    }
    call.msg_id = ctx->next_msg_id++;
    call.next = ctx->calls;
    ctx->calls = &call;
    ctx->nr_calls++;
    pthread_mutex_unlock(&ctx->call_lock);

    vfu_hdr_init(&h, call.msg_id, cmd, (uint32_t)size, VFU_F_TYPE_COMMAND, 0);
    v[0].iov_base = &h;
    v[0].iov_len = sizeof(h);
    rc = send_msg(ctx, v, iovcnt + 1, NULL, 0);

    if (rc == 0 && mu_on_ctx_thread(ctx)) {
        rc = wait_inline(ctx, &call, timeout);
        kick_if_parked(ctx);
    }
    pthread_mutex_lock(&ctx->call_lock);
    if (rc == 0 && !call.done)
        rc = wait_cond(ctx, &call, timeout);
    if (!call.done)
        unlink_call(ctx, &call);
    else if (rc == 0)
        rc = call.result;
    pthread_mutex_unlock(&ctx->call_lock);

    if (rc == 0) {
        *reply = call.reply;
        return 0;
    }
    mu_msg_release(&call.reply);
    return rc;
}

/* ---------------- the message loop ---------------- */

static const char *errno_name(int err)
{
    const char *n = strerrorname_np(err);

    return n != NULL ? n : "E?";
}

/*
 * The debug log of the message loop: a line per command received, a line
 * per result.  A refusal names the reason the handler gave through
 * mu_refuse(), or the errno's text when it gave none.  Called only at
 * MU_LOG_DEBUG; ctx->why is reset here for the handler to fill.
 */
static void log_received(mu_ctx_t *ctx, const struct mu_msg *msg)
{
    ctx->why = NULL;
    mu_log(ctx, MU_LOG_DEBUG, "%s msg %u received: %zu bytes, %u fds%s",
           vfu_cmd_name(msg->hdr.cmd), msg->hdr.msg_id, msg->len, msg->nfds,
           (msg->hdr.flags & VFU_F_NO_REPLY) ? ", no reply wanted" : "");
}

static void log_result(mu_ctx_t *ctx, const struct mu_msg *msg, int rc,
                       const struct mu_reply *r, bool no_reply)
{
    const char *cmd = vfu_cmd_name(msg->hdr.cmd);

    if (rc < 0) {
        mu_log(ctx, MU_LOG_DEBUG, "%s msg %u refused: %s (%s)", cmd,
               msg->hdr.msg_id, errno_name(-rc),
               ctx->why != NULL ? ctx->why : strerror(-rc));
    } else if (no_reply) {
        mu_log(ctx, MU_LOG_DEBUG, "%s msg %u ok (no reply sent)", cmd,
               msg->hdr.msg_id);
    } else {
        mu_log(ctx, MU_LOG_DEBUG, "%s msg %u ok: reply %zu bytes, %u fds",
               cmd, msg->hdr.msg_id, r->len + r->len2, r->nfds);
    }
    ctx->why = NULL;
}

static void handle_command(mu_ctx_t *ctx, struct mu_msg *msg)
{
    struct mu_reply reply;
    mu_handler_t h = NULL;
    bool no_reply = msg->hdr.flags & VFU_F_NO_REPLY;
    bool dbg;
    int rc;

    reply.len = reply.len2 = 0;
    reply.data = reply.data2 = NULL;
    reply.data_free = reply.data2_free = false;
    reply.nfds = 0;

    if (msg->hdr.cmd <= VFU_CMD_MAX)
        h = handlers[msg->hdr.cmd];
    if (!ctx->negotiated != (msg->hdr.cmd == VFU_CMD_VERSION)) {
        /* Handshake out of order: the protocol says close. */
        mu_log(ctx, MU_LOG_WARN, "%s msg %u refused: EINVAL (%s negotiation)",
               vfu_cmd_name(msg->hdr.cmd), msg->hdr.msg_id,
               ctx->negotiated ? "repeated after" : "received before");
        send_error(ctx, &msg->hdr, EINVAL);
        mu_ctx_fail(ctx, "bad handshake");
        return;
    }
    /* The only cost of the debug log when it is off: this comparison. */
    dbg = mu_log_debug_on(ctx);
    if (dbg)
        log_received(ctx, msg);
    if (h == NULL) {
        mu_log(ctx, MU_LOG_INFO, "unsupported command %u", msg->hdr.cmd);
        rc = mu_refuse(ctx, -ENOSYS, "unknown command %u", msg->hdr.cmd);
    } else {
        rc = h(ctx, msg, &reply);
    }
    if (rc > 0 || rc < -4095)
        rc = mu_refuse(ctx, -EIO, "handler returned %d", rc);
    if (dbg)
        log_result(ctx, msg, rc, &reply, no_reply);
    if (!no_reply)
        send_reply(ctx, &msg->hdr, -rc, &reply);
    if (reply.data_free)
        free(reply.data);
    if (reply.data2_free)
        free(reply.data2);
    if (rc < 0 && msg->hdr.cmd == VFU_CMD_VERSION)
        mu_ctx_fail(ctx, "version negotiation failed");
}

static void handle_msg(mu_ctx_t *ctx, struct mu_msg *msg)
{
    if (vfu_hdr_is_reply(&msg->hdr)) {
        if (route_reply(ctx, msg))
            return;
        if (msg->hdr.cmd == VFU_CMD_DMA_READ ||
            msg->hdr.cmd == VFU_CMD_DMA_WRITE) {
            /*
             * The late answer to a call of ours that timed out (we send
             * no other commands).  Drop it as wait_inline() does: an
             * error reply to a reply is a reply to nothing for the
             * client, and a strict one (ours) hangs up on it (found by
             * fuzz_server).
             */
            mu_log(ctx, MU_LOG_INFO, "dropping late reply (id %u, %s)",
                   msg->hdr.msg_id, vfu_cmd_name(msg->hdr.cmd));
            mu_msg_release(msg);
            return;
        }
        /* A reply to nothing: most likely a request with the reply bit
         * set by mistake.  Refuse it and go on. */
        mu_log(ctx, MU_LOG_WARN, "unexpected reply (id %u, %s)",
               msg->hdr.msg_id, vfu_cmd_name(msg->hdr.cmd));
        send_error(ctx, &msg->hdr, EINVAL);
    } else {
        handle_command(ctx, msg);
    }
    mu_msg_release(msg);
}

static void drop_if_failed(mu_ctx_t *ctx)
{
    const char *why = ctx->drop_reason;

    if (why != NULL) {
        ctx->drop_reason = NULL;
        mu_ctx_detach(ctx, why);
    }
}

/* Run parked commands, then whatever whole messages are buffered. */
static void drain(mu_ctx_t *ctx)
{
    struct mu_msg msg;
    int rc;

    while (ctx->conn_fd >= 0) {
        if (!backlog_pop(ctx, &msg)) {
            rc = ctx->tran->next(ctx, &msg);
            if (rc == 0)
                return;
            if (rc < 0) {
                mu_log(ctx, MU_LOG_WARN, "bad message header (id %u, cmd %u, size %u): %s",
                       msg.hdr.msg_id, msg.hdr.cmd, msg.hdr.size, strerror(-rc));
                /* The stream cannot be trusted past a bad header, but the
                 * client deserves to know why it is being dropped. */
                if (!vfu_hdr_is_reply(&msg.hdr))
                    send_error(ctx, &msg.hdr, -rc);
                mu_ctx_fail(ctx, "malformed message");
                drop_if_failed(ctx);
                return;
            }
        }
        handle_msg(ctx, &msg);
        drop_if_failed(ctx);
    }
}

void mu_ctx_process(mu_ctx_t *ctx)
{
    int rc;

    /*
     * epoll may still report the connection of a client dropped earlier
     * in the same batch (by the timer, say).  Reading then would make
     * msgio allocate a buffer for a closed connection, which the next
     * client's msgio_init() forgets: a leak (found by fuzz_server).
     */
    if (ctx->conn_fd < 0)
        return;
    rc = ctx->tran->read(ctx);

    /* Serve what arrived even if the client closed right after it. */
    drain(ctx);
    if (rc < 0 && rc != -EAGAIN && ctx->conn_fd >= 0) {
        mu_ctx_detach(ctx, rc == -ENOTCONN ? "client disconnected"
                     : rc == -EPROTO ? "too many fds in one message"
                                     : "read error");
    }
}
