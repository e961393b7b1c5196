/*
 * cmd_mig.c - migration's messages: DEVICE_FEATURE MIGRATION and
 * MIG_DEVICE_STATE (routed here by cmd_feature.c), MIG_DATA_READ and
 * MIG_DATA_WRITE (protocol §3.13, §3.14).  Decoded and encoded here, done
 * by mig.c.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "cmd.h"
#include "mig.h"
#include "mig_wire.h"

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
    uint64_t flags = mu_mig_flags(ctx);

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
        st.device_state = mu_mig_get_state(ctx);
        return feature_reply(f, &st, sizeof(st), reply);
    }
    if (len != sizeof(st))
        return -EINVAL;
    memcpy(&st, data, sizeof(st));
    rc = mu_mig_set_state(ctx, st.device_state);
    if (rc < 0)
        return rc;
    st.device_state = mu_mig_get_state(ctx);
    return feature_reply(f, &st, sizeof(st), reply);
}

int mu_cmd_mig_feature(mu_ctx_t *ctx, const struct vfu_device_feature *f,
                       const uint8_t *data, size_t len,
                       struct mu_reply *reply)
{
    if (!mu_mig_present(ctx))
        return mu_refuse(ctx, -ENOTSUP, "the device does not migrate");
    if ((f->flags & VFU_FEATURE_MASK) == VFU_FEATURE_MIGRATION)
        return feature_migration(ctx, f, len, reply);
    return feature_state(ctx, f, data, len, reply);
}

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

int mu_cmd_mig_data_read(mu_ctx_t *ctx, struct mu_msg *msg,
                         struct mu_reply *reply)
{
    struct vfu_mig_data rq, out;
    uint8_t *buf;
    size_t got = 0;
    int rc;

    if (!mu_mig_present(ctx))
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
    buf = malloc(sizeof(out) + rq.size);
    if (buf == NULL)
        return -ENOMEM;
    rc = mu_mig_save(ctx, buf + sizeof(out), rq.size, &got);
    if (rc < 0) {
        free(buf);
        return rc;
    }
    out.argsz = (uint32_t)(sizeof(out) + got);
    out.size = (uint32_t)got;
    memcpy(buf, &out, sizeof(out));
    reply->data = buf;
    reply->data_free = true;
    reply->len = sizeof(out) + got;
    return 0;
}

int mu_cmd_mig_data_write(mu_ctx_t *ctx, struct mu_msg *msg,
                          struct mu_reply *reply)
{
    struct vfu_mig_data rq;

    (void)reply;
    if (!mu_mig_present(ctx))
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
    return mu_mig_load(ctx, msg->body + sizeof(rq), rq.size);
}
