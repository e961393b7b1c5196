/*
 * mig.c - live migration, server side: DEVICE_FEATURE MIGRATION and
 * MIG_DEVICE_STATE, MIG_DATA_READ and MIG_DATA_WRITE (protocol §3.13,
 * §3.14), on the state machine of mig_fsm.c and the device's callbacks
 * (muser.h).
 *
 * The state is written only on the context thread; device threads read
 * it, and the "quiet" flag that gates their DMA and interrupts, without a
 * lock.  The flag changes on the edge between running and stopped states:
 * cleared before the device's callback into a running state (its threads
 * may start at once), set after its callback into a stopped state (it may
 * still need DMA to finish what is in flight).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "mig.h"
#include "mig_fsm.h"
#include "thread_check.h"

struct mu_mig {
    struct mu_mig_callbacks cb;
    uint32_t wire_flags;        /* DEVICE_FEATURE MIGRATION answer */
    uint32_t state;             /* enum mig_state; atomic for readers */
};

int mu_mig_setup(mu_ctx_t *ctx, const struct mu_mig_callbacks *cb)
{
    struct mu_mig *m;

    if (ctx->realized)
        return -EBUSY;
    if (cb == NULL || cb->size != sizeof(*cb) ||
        (cb->flags & ~(unsigned)MU_MIG_F_PRE_COPY) != 0 ||
        cb->save == NULL || cb->load == NULL)
        return -EINVAL;
    m = ctx->mig != NULL ? ctx->mig : calloc(1, sizeof(*m));
    if (m == NULL)
        return -ENOMEM;
    m->cb = *cb;
    m->wire_flags = MIG_F_STOP_COPY |
                    (cb->flags & MU_MIG_F_PRE_COPY ? MIG_F_PRE_COPY : 0);
    m->state = MIG_RUNNING;
    ctx->mig = m;
    return 0;
}

void mu_mig_fini(mu_ctx_t *ctx)
{
    free(ctx->mig);
    ctx->mig = NULL;
}

enum mu_mig_state mu_mig_state(const mu_ctx_t *ctx)
{
    if (ctx->mig == NULL)
        return MU_MIG_RUNNING;
    return (enum mu_mig_state)__atomic_load_n(&ctx->mig->state,
                                              __ATOMIC_ACQUIRE);
}

static uint32_t cur_state(const mu_ctx_t *ctx)
{
    return ctx->mig->state;     /* context thread: the only writer */
}

int mu_mig_pending(mu_ctx_t *ctx, uint64_t *initial, uint64_t *dirty)
{
    struct mu_mig *m = ctx->mig;
    int rc;

    MU_ASSERT_CTX_THREAD(ctx);
    if (m == NULL || m->cb.pending == NULL ||
        (cur_state(ctx) != MIG_PRE_COPY && cur_state(ctx) != MIG_PRE_COPY_P2P))
        return -ENOTSUP;
    rc = m->cb.pending(ctx, initial, dirty);
    return rc > 0 || rc < -4095 ? -EIO : rc;
}

uint64_t mu_mig_version_pgsize(const mu_ctx_t *ctx)
{
    /* Only a subset of the client's capabilities may be offered. */
    return ctx->mig != NULL && ctx->peer.mig_pgsize != 0 ? ctx->pgsize : 0;
}

/* ---------------- moving through the states ---------------- */

static void set_state(mu_ctx_t *ctx, uint32_t s)
{
    __atomic_store_n(&ctx->mig->state, s, __ATOMIC_RELEASE);
}

static void set_quiet(mu_ctx_t *ctx, bool quiet)
{
    __atomic_store_n(&ctx->mig_quiet, quiet, __ATOMIC_RELEASE);
}

/* One direct arc: the device's callback, then our bookkeeping. */
static int step(mu_ctx_t *ctx, uint32_t to)
{
    struct mu_mig *m = ctx->mig;
    uint32_t from = cur_state(ctx);
    bool starting = mig_state_running(to) && !mig_state_running(from);
    bool stopping = !mig_state_running(to) && mig_state_running(from);
    int rc = 0;

    if (starting)
        set_quiet(ctx, false);
    if (m->cb.transition != NULL)
        rc = m->cb.transition(ctx, (enum mu_mig_state)from,
                              (enum mu_mig_state)to);
    if (rc > 0 || rc < -4095)
        rc = -EIO;      /* a callback returning nonsense */
    if (rc < 0) {
        if (starting)
            set_quiet(ctx, true);
        mu_log(ctx, MU_LOG_WARN, "migration: device refused %s -> %s: %s",
               mig_state_name(from), mig_state_name(to), strerror(-rc));
        return rc;
    }
    set_state(ctx, to);
    if (stopping)
        set_quiet(ctx, true);
    if (starting)
        mu_irqs_release_held(ctx);
    mu_dbg(ctx, "migration: %s -> %s", mig_state_name(from),
           mig_state_name(to));
    return 0;
}

/* The whole way to goal, or refused before any step when there is none. */
static int go_to(mu_ctx_t *ctx, uint32_t goal)
{
    uint32_t path[MIG_MAX_PATH];
    int n = mig_path(ctx->mig->wire_flags, cur_state(ctx), goal, path);

    if (n < 0) {
        mu_log(ctx, MU_LOG_INFO, "migration: no way from %s to %s",
               mig_state_name(cur_state(ctx)), mig_state_name(goal));
        return n;
    }
    for (int i = 0; i < n; i++) {
        int rc = step(ctx, path[i]);

        if (rc < 0)
            return rc;
    }
    return 0;
}

void mu_mig_client_gone(mu_ctx_t *ctx)
{
    uint32_t s;

    if (ctx->mig == NULL)
        return;
    s = cur_state(ctx);
    if (s == MIG_PRE_COPY || s == MIG_PRE_COPY_P2P) {
        if (go_to(ctx, MIG_RUNNING) < 0)
            goto broken;
    } else if (s == MIG_STOP_COPY) {
        if (go_to(ctx, MIG_STOP) < 0)
            goto broken;
    } else if (s == MIG_RESUMING) {
        /* A refusal leaves RESUMING with the stream dropped: fine too. */
        go_to(ctx, MIG_STOP);
    }
    return;
broken:
    /* A device that can neither finish nor abandon a save. */
    mu_log(ctx, MU_LOG_ERR, "migration: device left in ERROR");
    set_state(ctx, MIG_ERROR);
    set_quiet(ctx, true);
}

void mu_mig_reset(mu_ctx_t *ctx)
{
    if (ctx->mig == NULL)
        return;
    set_state(ctx, MIG_RUNNING);
    set_quiet(ctx, false);
}

/* ---------------- DEVICE_FEATURE ---------------- */

/* The reply: the request's header with argsz = 8 + data, then data. */
static int feature_reply(const struct vfu_device_feature *f, const void *data,
                         size_t len, struct mu_reply *reply)
{
    struct vfu_device_feature h = *f;

    h.argsz = (uint32_t)(sizeof(h) + len);
    memcpy(reply->small, &h, sizeof(h));
    memcpy(reply->small + sizeof(h), data, len);
    reply->len = sizeof(h) + len;
    return 0;
}

static int feature_migration(mu_ctx_t *ctx, const struct vfu_device_feature *f,
                             size_t len, struct mu_reply *reply)
{
    uint64_t flags = ctx->mig->wire_flags;

    if (f->flags & VFU_FEATURE_SET)
        return mu_refuse(ctx, -EINVAL, "MIGRATION feature is read-only");
    /* QEMU sends room for the answer, VFIO's ioctl-like shape; take
     * both an empty request and one with the 8 bytes. */
    if (len != 0 && len != sizeof(flags))
        return -EINVAL;
    if (f->flags & VFU_FEATURE_PROBE)
        return feature_reply(f, NULL, 0, reply);
    if (f->argsz < sizeof(*f) + sizeof(flags))
        return -EINVAL;
    return feature_reply(f, &flags, sizeof(flags), reply);
}

static int feature_state(mu_ctx_t *ctx, const struct vfu_device_feature *f,
                         const uint8_t *data, size_t len,
                         struct mu_reply *reply)
{
    struct vfu_mig_device_state st = { .data_fd = UINT32_MAX };
    int rc;

    if (f->flags & VFU_FEATURE_PROBE) {
        if (len != 0 && len != sizeof(st))
            return -EINVAL;
        return feature_reply(f, NULL, 0, reply);
    }
    if (f->flags & VFU_FEATURE_GET) {
        if ((len != 0 && len != sizeof(st)) ||
            f->argsz < sizeof(*f) + sizeof(st))
            return -EINVAL;
        st.device_state = cur_state(ctx);
        return feature_reply(f, &st, sizeof(st), reply);
    }
    if (len != sizeof(st))
        return -EINVAL;
    memcpy(&st, data, sizeof(st));
    rc = go_to(ctx, st.device_state);
    if (rc < 0)
        return mu_refuse(ctx, rc, "migration state %u -> %u refused",
                         cur_state(ctx), st.device_state);
    st.device_state = cur_state(ctx);
    return feature_reply(f, &st, sizeof(st), reply);
}

int mu_mig_feature(mu_ctx_t *ctx, const struct mu_msg *msg,
                   const struct vfu_device_feature *f, const uint8_t *data,
                   size_t len, struct mu_reply *reply)
{
    (void)msg;
    if (ctx->mig == NULL)
        return mu_refuse(ctx, -ENOTSUP, "the device does not migrate");
    if ((f->flags & VFU_FEATURE_MASK) == VFU_FEATURE_MIGRATION)
        return feature_migration(ctx, f, len, reply);
    return feature_state(ctx, f, data, len, reply);
}

/* ---------------- the data stream ---------------- */

/* Largest MIG_DATA_READ/WRITE size: what the client takes (reads) and what
 * we take or are willing to buffer (both). */
static uint64_t xfer_limit(const mu_ctx_t *ctx, bool is_read)
{
    uint64_t lim = ctx->limits[MU_LIMIT_DATA_XFER];
    uint64_t room = ctx->limits[MU_LIMIT_MSG_SIZE] - VFU_HDR_SIZE -
                    sizeof(struct vfu_mig_data);

    if (is_read && ctx->peer.max_data_xfer_size < lim)
        lim = ctx->peer.max_data_xfer_size;
    return lim < room ? lim : room;
}

int mu_handle_mig_data_read(mu_ctx_t *ctx, struct mu_msg *msg,
                            struct mu_reply *reply)
{
    struct mu_mig *m = ctx->mig;
    struct vfu_mig_data rq, out;
    uint8_t *buf;
    size_t got = 0;

    if (m == NULL)
        return mu_refuse(ctx, -ENOTSUP, "the device does not migrate");
    if (msg->nfds != 0 || msg->len != sizeof(rq))
        return mu_refuse(ctx, -EINVAL, "malformed payload (%zu bytes, %u "
                         "fds)", msg->len, msg->nfds);
    memcpy(&rq, msg->body, sizeof(rq));
    if (rq.size == 0 || rq.size > xfer_limit(ctx, true) ||
        rq.argsz < sizeof(rq) + (uint64_t)rq.size)
        return mu_refuse(ctx, -EINVAL, "size %u (argsz %u) is 0, over the "
                         "limit %llu or past argsz", rq.size, rq.argsz,
                         (unsigned long long)xfer_limit(ctx, true));
    if (!mig_state_saving(cur_state(ctx)))
        return mu_refuse(ctx, -EINVAL, "migration state %u is not a saving "
                         "state", cur_state(ctx));
    buf = malloc(sizeof(out) + rq.size);
    if (buf == NULL)
        return -ENOMEM;
    while (got < rq.size) {
        ssize_t n = m->cb.save(ctx, buf + sizeof(out) + got, rq.size - got);

        if (n < 0 || n > (ssize_t)(rq.size - got)) {
            free(buf);
            mu_log(ctx, MU_LOG_WARN, "migration: save failed: %s",
                   n < 0 ? strerror((int)-n) : "returned too much");
            return n < 0 && n >= -4095 ? (int)n : -EIO;
        }
        if (n == 0)
            break;
        got += (size_t)n;
    }
    out.argsz = (uint32_t)(sizeof(out) + got);
    out.size = (uint32_t)got;
    memcpy(buf, &out, sizeof(out));
    reply->data = buf;
    reply->data_free = true;
    reply->len = sizeof(out) + got;
    return 0;
}

int mu_handle_mig_data_write(mu_ctx_t *ctx, struct mu_msg *msg,
                             struct mu_reply *reply)
{
    struct mu_mig *m = ctx->mig;
    struct vfu_mig_data rq;
    int rc;

    (void)reply;
    if (m == NULL)
        return mu_refuse(ctx, -ENOTSUP, "the device does not migrate");
    if (msg->nfds != 0 || msg->len < sizeof(rq))
        return mu_refuse(ctx, -EINVAL, "malformed payload (%zu bytes, %u "
                         "fds)", msg->len, msg->nfds);
    memcpy(&rq, msg->body, sizeof(rq));
    if (rq.size == 0 || rq.size > xfer_limit(ctx, false) ||
        msg->len - sizeof(rq) != rq.size ||
        rq.argsz < sizeof(rq) + (uint64_t)rq.size)
        return mu_refuse(ctx, -EINVAL, "size %u (argsz %u, %zu bytes sent) "
                         "is 0, over the limit or does not match", rq.size,
                         rq.argsz, msg->len - sizeof(rq));
    if (cur_state(ctx) != MIG_RESUMING)
        return mu_refuse(ctx, -EINVAL, "migration state %u is not RESUMING",
                         cur_state(ctx));
    rc = m->cb.load(ctx, msg->body + sizeof(rq), rq.size);
    if (rc > 0 || rc < -4095)
        rc = -EIO;
    if (rc < 0) {
        mu_log(ctx, MU_LOG_WARN, "migration: device rejected the stream: %s",
               strerror(-rc));
        return mu_refuse(ctx, rc, "the device rejected %u bytes of stream",
                         rq.size);
    }
    return rc;
}
