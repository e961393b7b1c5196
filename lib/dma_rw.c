/*
 * dma_rw.c - mu_dma_read() and mu_dma_write(): copies between guest memory
 * and a device buffer.
 *
 * Regions with an fd are copied through their mapping (translate, copy,
 * put, which also logs writes); regions without one through DMA_READ and
 * DMA_WRITE messages to the client (a DMA_WRITE is logged when the
 * client's reply comes in).  Apart from mu_dma_lookup() this uses
 * only the public translation API, so it is as thread-safe as that is.
 */
#include <errno.h>
#include <string.h>

#include "private.h"
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
 * One DMA_READ or DMA_WRITE to the client.  mu_ctx_call cannot tell an
 * error reply from a local failure: keep the local errnos the header
 * documents and report the rest as the client's (-EIO).
 */
static int remote_rw(mu_ctx_t *ctx, uint64_t iova, uint8_t *buf, size_t n,
                     bool is_write)
{
    struct vfu_dma_access a = { .addr = iova, .count = n }, ra = { 0 };
    struct iovec iov[2] = {
        { .iov_base = &a, .iov_len = sizeof(a) },
        { .iov_base = buf, .iov_len = n },
    };
    struct mu_msg reply = { 0 };
    int rc;

    rc = mu_ctx_call(ctx, is_write ? VFU_CMD_DMA_WRITE : VFU_CMD_DMA_READ,
                     iov, is_write ? 2 : 1, &reply);
    if (rc > 0)
        rc = -EIO;      /* never a success without a reply */
    if (rc < 0) {
        return rc == -ENOTCONN || rc == -ETIMEDOUT || rc == -EBUSY ||
               rc == -EPROTO || rc == -ENOMEM ? rc : -EIO;
    }
    /* DMA_READ: {addr, count, data}.  DMA_WRITE: {addr, count} where the
     * spec makes count 4 bytes wide; accept either width. */
    if (reply.nfds != 0 || reply.len < 12 ||
        reply.len != (is_write ? (reply.len == 12 ? 12 : 16) : 16 + n)) {
        rc = -EPROTO;
    } else {
        memcpy(&ra, reply.body, reply.len < 16 ? reply.len : 16);
        rc = ra.addr == iova && ra.count == n ? 0 : -EPROTO;
    }
    if (rc == 0 && !is_write)
        memcpy(buf, reply.body + 16, n);
    mu_msg_release(&reply);
    return rc;
}

/* A region without fd: messages within the peer's transfer limit, small
 * enough that a DMA_READ reply fits the messages we accept. */
static int copy_remote(mu_ctx_t *ctx, uint64_t iova, uint8_t *buf, size_t n,
                       bool is_write)
{
    uint64_t max = ctx->peer.max_data_xfer_size;
    uint64_t room = ctx->limits[MU_LIMIT_MSG_SIZE] - VFU_HDR_SIZE -
                    sizeof(struct vfu_dma_access);
    int rc;

    if (room < max)
        max = room;
    if (max == 0)
        return -EINVAL;
    while (n > 0) {
        size_t chunk = n < max ? n : (size_t)max;

        /* A write is logged dirty when its reply arrives (dispatch.c,
         * route_reply), on the context thread. */
        rc = remote_rw(ctx, iova, buf, chunk, is_write);
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
