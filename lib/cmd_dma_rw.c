/*
 * cmd_dma_rw.c - the server's own commands, DMA_READ and DMA_WRITE: their
 * encoding and the check of the client's reply.
 *
 * dma_rw.c decides what to copy and when (blocking for device threads,
 * requests for the context thread); this file is the only part of that
 * which knows the wire layout.
 */
#include <errno.h>
#include <string.h>

#include "cmd.h"

size_t mu_cmd_dma_rw_room(const mu_ctx_t *ctx)
{
    uint64_t room = ctx->limits[MU_LIMIT_MSG_SIZE];
    uint64_t over = VFU_HDR_SIZE + sizeof(struct vfu_dma_access);

    room = room > over ? room - over : 0;
    return room > SIZE_MAX ? SIZE_MAX : (size_t)room;
}

const char *mu_cmd_dma_rw_name(bool is_write)
{
    return vfu_cmd_name(is_write ? VFU_CMD_DMA_WRITE : VFU_CMD_DMA_READ);
}

/* Header of the request; the data (DMA_WRITE) is the second piece. */
static int encode(struct vfu_dma_access *a, struct iovec iov[2],
                  uint64_t iova, uint8_t *buf, size_t n, bool is_write)
{
    a->addr = iova;
    a->count = n;
    iov[0].iov_base = a;
    iov[0].iov_len = sizeof(*a);
    iov[1].iov_base = buf;
    iov[1].iov_len = n;
    return is_write ? 2 : 1;
}

int mu_cmd_dma_rw_done(int rc, struct mu_msg *reply, uint64_t iova,
                       uint8_t *buf, size_t n, bool is_write)
{
    struct vfu_dma_access ra = { 0 };

    if (rc > 0)
        rc = -EIO;      /* never a success without a reply */
    if (rc < 0) {
        mu_msg_release(reply);
        /* The call cannot tell an error reply from a local failure: keep
         * the local errnos muser.h documents, the rest is the client's. */
        return rc == -ENOTCONN || rc == -ETIMEDOUT || rc == -EBUSY ||
               rc == -EPROTO || rc == -ENOMEM ? rc : -EIO;
    }
    /* DMA_READ: {addr, count, data}.  DMA_WRITE: {addr, count} where the
     * spec makes count 4 bytes wide; accept either width. */
    if (reply->nfds != 0 || reply->len < 12 ||
        reply->len != (is_write ? (reply->len == 12 ? 12 : 16) : 16 + n)) {
        rc = -EPROTO;
    } else {
        memcpy(&ra, reply->body, reply->len < 16 ? reply->len : 16);
        rc = ra.addr == iova && ra.count == n ? 0 : -EPROTO;
    }
    if (rc == 0 && !is_write)
        memcpy(buf, reply->body + 16, n);
    mu_msg_release(reply);
    return rc;
}

int mu_cmd_dma_rw_call(mu_ctx_t *ctx, uint64_t iova, uint8_t *buf, size_t n,
                       bool is_write)
{
    struct vfu_dma_access a;
    struct iovec iov[2];
    struct mu_msg reply = { 0 };
    int iovcnt = encode(&a, iov, iova, buf, n, is_write), rc;

    rc = mu_ctx_call(ctx, is_write ? VFU_CMD_DMA_WRITE : VFU_CMD_DMA_READ,
                     iov, iovcnt, &reply);
    if (rc == -EDEADLK)
        return rc;
    return mu_cmd_dma_rw_done(rc, &reply, iova, buf, n, is_write);
}

int mu_cmd_dma_rw_send(mu_ctx_t *ctx, struct mu_call *call, uint64_t iova,
                       uint8_t *buf, size_t n, bool is_write)
{
    struct vfu_dma_access a;
    struct iovec iov[2];
    int iovcnt = encode(&a, iov, iova, buf, n, is_write);

    memset(&call->reply, 0, sizeof(call->reply));
    call->cmd = is_write ? VFU_CMD_DMA_WRITE : VFU_CMD_DMA_READ;
    return mu_call_send(ctx, call, iov, iovcnt);
}
