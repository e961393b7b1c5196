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
 * One message in, one reply out: a handler runs to its end without reading
 * the socket again, so commands are handled strictly in the order they
 * came.  The context thread never waits for a reply of its own: its
 * DMA_READ/DMA_WRITE requests are asynchronous (dma_rw.c) and their replies
 * arrive here like any other message, matched to their request by id and
 * command (route_reply).  Device threads' blocking calls are matched the
 * same way and woken.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cmd.h"
#include "private.h"
#include "mig.h"

/*
 * Ask for the client to be dropped at the next safe point: handlers may be
 * deep in a subsystem when they find the stream broken, and tearing the
 * client down under them would pull their state away.
 */
void mu_ctx_fail(mu_ctx_t *ctx, const char *why)
{
    /* The first reason wins; without a client there is nothing to drop. */
    if (ctx->conn == MU_CONN_ATTACHED || ctx->conn == MU_CONN_READY) {
        ctx->drop_reason = why;
        mu_conn_set(ctx, MU_CONN_FAILED);
    }
}

static int send_msg(mu_ctx_t *ctx, const struct iovec *iov, int iovcnt,
                    const int *fds, unsigned nfds)
{
    int rc;

    pthread_mutex_lock(&ctx->send_lock);
    if (!mu_conn_attached(ctx))
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
    struct vfu_caps ours, peer;
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
    /* Parsed aside: device threads read ctx->peer (dma_rw.c) under
     * call_lock. */
    vfu_caps_default(&peer);
    rc = vfu_caps_parse(json, json_len, &peer);
    if (rc < 0) {
        mu_log(ctx, MU_LOG_WARN, "client capabilities are not valid JSON");
        return rc;
    }
    if (peer.max_msg_fds > MSGIO_MAX_FDS)
        peer.max_msg_fds = MSGIO_MAX_FDS;
    if (!(peer.pgsizes & 4096)) {
        mu_log(ctx, MU_LOG_WARN, "client page sizes %#llx lack 4 KiB",
               (unsigned long long)peer.pgsizes);
        return -EINVAL;
    }
    pthread_mutex_lock(&ctx->call_lock);
    ctx->peer = peer;
    pthread_mutex_unlock(&ctx->call_lock);
    ctx->pgsize = 4096;

    vfu_caps_default(&ours);
    ours.max_msg_fds = vfu_caps_server_fds(ctx->limits[MU_LIMIT_MSG_FDS],
                                           &peer);
    ours.max_data_xfer_size = (uint32_t)ctx->limits[MU_LIMIT_DATA_XFER];
    ours.max_dma_maps = (uint32_t)ctx->limits[MU_LIMIT_DMA_REGIONS];
    ours.pgsizes = 4096;
    /* The reply's capabilities must be a subset of the client's. */
    ours.write_multiple = peer.write_multiple;
    ours.mig_pgsize = mu_mig_version_pgsize(ctx);

    out.major = VFU_VERSION_MAJOR;
    out.minor = v.minor < VFU_VERSION_MINOR ? v.minor : VFU_VERSION_MINOR;
    memcpy(reply->small, &out, sizeof(out));
    rc = vfu_caps_build(&ours, (char *)reply->small + sizeof(out),
                        sizeof(reply->small) - sizeof(out));
    if (rc < 0)
        return rc;
    reply->len = sizeof(out) + (size_t)rc;

    mu_conn_set(ctx, MU_CONN_READY);
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

    /* What the device asked of the client before the reset is void. */
    mu_dma_reqs_cancel(ctx, -ECANCELED);
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
 * False when it answers nothing we wait for.
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
    struct mu_dma_req *req = NULL;
    uint64_t wr_iova = 0, wr_len = 0;

    pthread_mutex_lock(&ctx->call_lock);
    for (pp = &ctx->calls; (c = *pp) != NULL; pp = &c->next) {
        if (c->msg_id == msg->hdr.msg_id && c->cmd == msg->hdr.cmd)
            break;
    }
    if (c != NULL) {
        *pp = c->next;
        if (c->req == NULL)
            ctx->nr_calls--;
        c->reply = *msg;
        /*
         * The errno is the client's word: only 1..4095 is one.  Negating
         * anything above INT_MAX overflows, and 0xffffffff would become
         * +1, which callers take for success with no reply filled in.
         * Anything else is "the client said error": -EIO.
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
        /* A blocking call's c is gone once the lock is let go (its
         * thread returns): nothing of it is read after this. */
        req = c->req;
        c->done = true;
        if (req == NULL)
            pthread_cond_broadcast(&ctx->call_cond);
    }
    pthread_mutex_unlock(&ctx->call_lock);
    if (wr_len != 0)
        mu_dma_mark_dirty(ctx, wr_iova, (size_t)wr_len);
    /* A request of the context thread goes on from here: it was taken off
     * the list above, so nothing else can end it meanwhile. */
    if (req != NULL)
        mu_dma_req_reply(ctx, req);
    return c != NULL;
}

/* Lock held. */
static bool unlink_call(mu_ctx_t *ctx, struct mu_call *call)
{
    struct mu_call **pp;

    for (pp = &ctx->calls; *pp != NULL; pp = &(*pp)->next) {
        if (*pp == call) {
            *pp = call->next;
            if (call->req == NULL)
                ctx->nr_calls--;
            return true;
        }
    }
    return false;
}

bool mu_call_unlink(mu_ctx_t *ctx, struct mu_call *call)
{
    bool found;

    pthread_mutex_lock(&ctx->call_lock);
    found = unlink_call(ctx, call);
    pthread_mutex_unlock(&ctx->call_lock);
    return found;
}

/* The blocking calls end with -ENOTCONN; the context thread's requests are
 * ended by mu_dma_reqs_cancel(), which takes their calls off the list. */
void mu_calls_cancel(mu_ctx_t *ctx)
{
    struct mu_call **pp, *c;

    pthread_mutex_lock(&ctx->call_lock);
    for (pp = &ctx->calls; (c = *pp) != NULL;) {
        if (c->req != NULL) {
            pp = &c->next;
            continue;
        }
        *pp = c->next;
        c->result = -ENOTCONN;
        c->done = true;
    }
    ctx->nr_calls = 0;
    pthread_cond_broadcast(&ctx->call_cond);
    pthread_mutex_unlock(&ctx->call_lock);
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

/* A DMA_WRITE's target, for the dirty log when the client confirms it. */
static void note_write(struct mu_call *call, const struct iovec *iov,
                       int iovcnt)
{
    if (call->cmd == VFU_CMD_DMA_WRITE && iovcnt > 0 &&
        iov[0].iov_len >= sizeof(struct vfu_dma_access)) {
        struct vfu_dma_access a;

        memcpy(&a, iov[0].iov_base, sizeof(a));
        call->wr_iova = a.addr;
        call->wr_len = a.count;
    }
}

/* Header in front of iov[0..iovcnt), and send.  0 or -errno. */
static int send_request(mu_ctx_t *ctx, const struct mu_call *call,
                        const struct iovec *iov, int iovcnt)
{
    struct iovec v[8];
    struct vfu_hdr h;
    size_t size = VFU_HDR_SIZE;

    if (iovcnt < 0 || iovcnt > 7)
        return -EINVAL;
    for (int i = 0; i < iovcnt; i++) {
        size += iov[i].iov_len;
        v[i + 1] = iov[i];
    }
    if (size > UINT32_MAX)
        return -EINVAL;
    vfu_hdr_init(&h, call->msg_id, call->cmd, (uint32_t)size,
                 VFU_F_TYPE_COMMAND, 0);
    v[0].iov_base = &h;
    v[0].iov_len = sizeof(h);
    return send_msg(ctx, v, iovcnt + 1, NULL, 0);
}

int mu_call_send(mu_ctx_t *ctx, struct mu_call *call, const struct iovec *iov,
                 int iovcnt)
{
    int rc;

    call->done = false;
    call->wr_iova = call->wr_len = 0;
    note_write(call, iov, iovcnt);
    pthread_mutex_lock(&ctx->call_lock);
    if (!mu_conn_ready(ctx)) {
        pthread_mutex_unlock(&ctx->call_lock);
        return -ENOTCONN;
    }
    call->msg_id = ctx->next_msg_id++;
    call->next = ctx->calls;
    ctx->calls = call;
    pthread_mutex_unlock(&ctx->call_lock);
    /* On the context thread: no reply can be taken before this returns. */
    rc = send_request(ctx, call, iov, iovcnt);
    if (rc < 0)
        mu_call_unlink(ctx, call);
    return rc;
}

int mu_ctx_call(mu_ctx_t *ctx, uint16_t cmd, const struct iovec *iov,
                int iovcnt, struct mu_msg *reply)
{
    struct mu_call call = { .cmd = cmd };
    int timeout = (int)ctx->limits[MU_LIMIT_RECV_TIMEOUT_MS];
    int rc;

    /* Only the context thread takes replies: it would wait for itself. */
    if (mu_on_ctx_thread(ctx))
        return -EDEADLK;
    note_write(&call, iov, iovcnt);
    pthread_mutex_lock(&ctx->call_lock);
    if (!mu_conn_ready(ctx)) {
        pthread_mutex_unlock(&ctx->call_lock);
        return -ENOTCONN;
    }
    if (ctx->nr_calls + ctx->nr_reqs >= ctx->limits[MU_LIMIT_DMA_PENDING]) {
        pthread_mutex_unlock(&ctx->call_lock);
        return -EBUSY;
    }
    call.msg_id = ctx->next_msg_id++;
    call.next = ctx->calls;
    ctx->calls = &call;
    ctx->nr_calls++;
    pthread_mutex_unlock(&ctx->call_lock);

    rc = send_request(ctx, &call, iov, iovcnt);

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
    if (!mu_conn_ready(ctx) != (msg->hdr.cmd == VFU_CMD_VERSION)) {
        /* Handshake out of order: the protocol says close. */
        mu_log(ctx, MU_LOG_WARN, "%s msg %u refused: EINVAL (%s negotiation)",
               vfu_cmd_name(msg->hdr.cmd), msg->hdr.msg_id,
               mu_conn_ready(ctx) ? "repeated after" : "received before");
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
             * The late answer to a request of ours that timed out or was
             * cancelled (we send no other commands).  Drop it: an error
             * reply to a reply is a reply to nothing for the client, and
             * a strict one (ours) hangs up on it.
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
    if (ctx->conn == MU_CONN_FAILED)
        mu_ctx_detach(ctx, ctx->drop_reason);
}

/* Whatever whole messages are buffered, one at a time, in order: how
 * many were handled. */
static unsigned drain(mu_ctx_t *ctx)
{
    struct mu_msg msg;
    unsigned n = 0;
    int rc;

    while (mu_conn_attached(ctx)) {
        rc = ctx->tran->next(ctx, &msg);
        if (rc == 0)
            return n;
        if (rc < 0) {
            mu_log(ctx, MU_LOG_WARN, "bad message header (id %u, cmd %u, size %u): %s",
                   msg.hdr.msg_id, msg.hdr.cmd, msg.hdr.size, strerror(-rc));
            /* The stream cannot be trusted past a bad header, but the
             * client deserves to know why it is being dropped. */
            if (!vfu_hdr_is_reply(&msg.hdr))
                send_error(ctx, &msg.hdr, -rc);
            mu_ctx_fail(ctx, "malformed message");
            drop_if_failed(ctx);
            return n;
        }
        handle_msg(ctx, &msg);
        n++;
        drop_if_failed(ctx);
    }
    return n;
}

/*
 * One read and the messages it completed.  The read's result: > 0, or
 * -EAGAIN (nothing came), or another -errno, the client then dropped.
 * *served: the messages handled.
 */
static int serve_read(mu_ctx_t *ctx, unsigned *served)
{
    int rc = ctx->tran->read(ctx);

    /* Serve what arrived even if the client closed right after it. */
    *served = drain(ctx);
    if (rc < 0 && rc != -EAGAIN && mu_conn_attached(ctx)) {
        mu_ctx_detach(ctx, rc == -ENOTCONN ? "client disconnected"
                     : rc == -EPROTO ? "too many fds in one message"
                                     : "read error");
    }
    return rc;
}

/*
 * Reads after the first one, at most, before the event loop looks at its
 * other fds again: a client that keeps the socket full must not starve
 * the timer, the stop fd or the device's eventfds.  What is left stays in
 * the socket, whose fd stays readable (epoll is level-triggered), so the
 * next round, here or in an outer loop on mu_ctx_fd(), comes back for it.
 */
#define PROCESS_MORE_READS 15

int mu_ctx_process(mu_ctx_t *ctx)
{
    unsigned served;
    int first, rc;

    /*
     * epoll may still report the connection of a client dropped earlier
     * in the same batch (by the timer, say).  Reading then would make
     * msgio allocate a buffer for a closed connection, which the next
     * client's msgio_init() forgets: a leak (found by fuzz_server).
     */
    if (!mu_conn_attached(ctx))
        return -ENOTCONN;
    first = rc = serve_read(ctx, &served);

    /*
     * Read again at once, without going back to epoll_wait, only while the
     * client shows it does not wait for each reply: a read brought more
     * than one message, or one and the start of the next, or a read made
     * on that guess found something.  A client that waits for its reply
     * (the usual case: a register access) costs no read that would block.
     */
    for (unsigned i = 0; i < PROCESS_MORE_READS && rc > 0; i++) {
        bool more = i > 0 || served > 1 ||
                    (served == 1 && ctx->tran->partial_since(ctx) != 0);

        if (!more || !mu_conn_attached(ctx) || ctx->stopping)
            break;
        rc = serve_read(ctx, &served);
    }
    /* A message begun needs the timer for its receive timeout; every
     * caller (the event loop, busy polling) gets it from here. */
    mu_ctx_timer_check(ctx);
    return first;
}
