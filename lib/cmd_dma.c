/*
 * cmd_dma.c - DMA_MAP and DMA_UNMAP: decoded here, done by the DMA table
 * (mu_dma_add, mu_dma_remove, mu_dma_remove_all in dma.c).
 */
#include <errno.h>
#include <string.h>

#include "cmd.h"

int mu_cmd_dma_map(mu_ctx_t *ctx, struct mu_msg *msg, struct mu_reply *reply)
{
    struct mu_dma_info info;
    struct vfu_dma_map m;
    int rc;

    (void)reply;
    rc = vfu_check_dma_map(msg->body, msg->len, msg->nfds, &m);
    if (rc < 0)
        return mu_refuse(ctx, rc, "malformed payload (%zu bytes, %u fds): "
                         "argsz, flags, size or fd count wrong", msg->len,
                         msg->nfds);
    info = (struct mu_dma_info){
        .iova = m.addr,
        .size = m.size,
        .fd_offset = msg->nfds == 1 ? m.offset : 0,
        .prot = ((m.flags & VFU_DMA_FLAG_READ) ? MU_DMA_READ : 0) |
                ((m.flags & VFU_DMA_FLAG_WRITE) ? MU_DMA_WRITE : 0),
        .has_fd = msg->nfds == 1,
    };
    /* The table takes the fd whatever the outcome. */
    return mu_dma_add(ctx, &info, msg->nfds == 1 ? mu_msg_take_fd(msg, 0)
                                                 : -1);
}

int mu_cmd_dma_unmap(mu_ctx_t *ctx, struct mu_msg *msg,
                     struct mu_reply *reply)
{
    struct vfu_dma_unmap u;
    int rc;

    rc = vfu_check_dma_unmap(msg->body, msg->len, msg->nfds, &u);
    if (rc < 0)
        return mu_refuse(ctx, rc, "malformed payload (%zu bytes, %u fds)",
                         msg->len, msg->nfds);
    if (u.flags & VFU_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP)
        /* old migration scheme: DEVICE_FEATURE instead */
        return mu_refuse(ctx, -ENOTSUP, "GET_DIRTY_BITMAP unmap is the old "
                         "migration scheme; use DEVICE_FEATURE");
    if (u.flags & VFU_DMA_UNMAP_FLAG_ALL)
        mu_dma_remove_all(ctx, MU_UNMAP_ALL);
    else if ((rc = mu_dma_remove(ctx, u.addr, u.size)) < 0)
        return rc;
    u.argsz = sizeof(u);
    memcpy(reply->small, &u, sizeof(u));
    reply->len = sizeof(u);
    return 0;
}
