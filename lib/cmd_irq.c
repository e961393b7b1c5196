/*
 * cmd_irq.c - DEVICE_GET_IRQ_INFO and DEVICE_SET_IRQS: decoded here, done
 * by irq.c (mu_irqs_count, mu_irq_set).
 */
#include <errno.h>
#include <string.h>

#include "cmd.h"

/* What each index can do, as GET_IRQ_INFO tells the client. */
static const uint32_t info_flags[MU_IRQ_NUM] = {
    [MU_IRQ_INTX] = VFU_IRQ_INFO_EVENTFD | VFU_IRQ_INFO_MASKABLE |
                    VFU_IRQ_INFO_AUTOMASKED,
    [MU_IRQ_MSI] = VFU_IRQ_INFO_EVENTFD | VFU_IRQ_INFO_MASKABLE |
                   VFU_IRQ_INFO_NORESIZE,
    [MU_IRQ_MSIX] = VFU_IRQ_INFO_EVENTFD | VFU_IRQ_INFO_MASKABLE |
                    VFU_IRQ_INFO_NORESIZE,
    [MU_IRQ_ERR] = VFU_IRQ_INFO_EVENTFD,
    [MU_IRQ_REQ] = VFU_IRQ_INFO_EVENTFD,
};

int mu_cmd_irq_info(mu_ctx_t *ctx, struct mu_msg *msg, struct mu_reply *reply)
{
    struct vfu_irq_info in, out;
    int rc;

    rc = vfu_check_irq_info(msg->body, msg->len, msg->nfds, &in);
    if (rc < 0)
        return mu_refuse(ctx, rc, "malformed payload (%zu bytes, %u fds)",
                         msg->len, msg->nfds);
    if (in.index >= MU_IRQ_NUM)
        return mu_refuse(ctx, -EINVAL, "irq index %u does not exist",
                         in.index);
    out.argsz = sizeof(out);
    out.flags = info_flags[in.index];
    out.index = in.index;
    out.count = mu_irqs_count(ctx, in.index);
    memcpy(reply->small, &out, sizeof(out));
    reply->len = sizeof(out);
    return 0;
}

/* Fds not taken stay in msg and are closed by the caller's release. */
int mu_cmd_set_irqs(mu_ctx_t *ctx, struct mu_msg *msg, struct mu_reply *reply)
{
    struct vfu_irq_set s;
    struct mu_irq_set req;
    const uint8_t *data;
    uint32_t dtype;
    int rc;

    (void)reply;
    rc = vfu_check_set_irqs(msg->body, msg->len, msg->nfds, &s, &data);
    if (rc < 0)
        return mu_refuse(ctx, rc, "malformed payload (%zu bytes, %u fds): "
                         "argsz, flags, data size or fd count wrong",
                         msg->len, msg->nfds);
    dtype = s.flags & VFU_IRQ_SET_DATA_MASK;
    req = (struct mu_irq_set){
        .type = s.index, .start = s.start, .count = s.count,
        .action = (s.flags & VFU_IRQ_SET_ACTION_TRIGGER) ? MU_IRQ_ACT_TRIGGER
                  : (s.flags & VFU_IRQ_SET_ACTION_MASK) ? MU_IRQ_ACT_MASK
                                                        : MU_IRQ_ACT_UNMASK,
        .data = dtype == VFU_IRQ_SET_DATA_BOOL ? MU_IRQ_DATA_BOOL
                : dtype == VFU_IRQ_SET_DATA_EVENTFD ? MU_IRQ_DATA_EVENTFD
                                                    : MU_IRQ_DATA_NONE,
        .bools = dtype == VFU_IRQ_SET_DATA_BOOL ? data : NULL,
        .fds = msg->fds, .nfds = msg->nfds,
    };
    /* Said here first, in the protocol's terms; irq.c checks again. */
    if (s.index >= MU_IRQ_NUM || mu_irqs_count(ctx, s.index) == 0)
        return mu_refuse(ctx, -EINVAL, "irq index %u does not exist or has "
                         "no vectors", s.index);
    if (s.count == 0 && (dtype != VFU_IRQ_SET_DATA_NONE ||
                         req.action != MU_IRQ_ACT_TRIGGER || s.start != 0))
        return mu_refuse(ctx, -EINVAL, "count 0 is only DATA_NONE|"
                         "ACTION_TRIGGER from 0 (flags %#x, start %u)",
                         s.flags, s.start);
    /* The fds irq.c takes are -1 in msg->fds from here on. */
    return mu_irq_set(ctx, &req);
}
