/*
 * cmd_region.c - DEVICE_GET_REGION_INFO, DEVICE_GET_REGION_IO_FDS,
 * REGION_READ, REGION_WRITE and REGION_WRITE_MULTI: decoded and encoded
 * here, done by region.c (mu_region_describe, mu_region_ioeventfds,
 * mu_region_access).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "cmd.h"

int mu_cmd_region_info(mu_ctx_t *ctx, struct mu_msg *msg,
                       struct mu_reply *reply)
{
    struct vfu_region_info in, out = { 0 };
    struct mu_region_desc d;
    size_t caps_len = 0;
    bool mmap;
    int rc;

    rc = vfu_check_region_info(msg->body, msg->len, msg->nfds, &in);
    if (rc < 0)
        return mu_refuse(ctx, rc, "malformed payload (%zu bytes, %u fds)",
                         msg->len, msg->nfds);
    if (mu_region_describe(ctx, in.index, &d) < 0)
        return mu_refuse(ctx, -EINVAL, "region %u does not exist (%u regions)",
                         in.index, ctx->nr_regions);
    out.index = in.index;
    out.flags = ((d.flags & MU_REGION_READ) ? VFU_REGION_FLAG_READ : 0) |
                ((d.flags & MU_REGION_WRITE) ? VFU_REGION_FLAG_WRITE : 0);
    out.size = d.size;
    /* No fd can travel to a client that takes none. */
    mmap = d.fd >= 0 && ctx->peer.max_msg_fds >= 1;
    if (mmap) {
        out.flags |= VFU_REGION_FLAG_MMAP;
        out.offset = d.fd_offset;
        if (d.nr_areas > 0)
            caps_len = sizeof(struct vfu_cap_sparse) +
                       d.nr_areas * sizeof(struct vfu_sparse_area);
    }
    out.argsz = (uint32_t)(sizeof(out) + caps_len);

    /*
     * As libvfio-user does: when the client's buffer is too small, say how
     * big the answer is and send only the fixed part, without fd or caps;
     * the client asks again.
     */
    if (mmap && in.argsz >= out.argsz) {
        reply->fds[reply->nfds++] = d.fd;
        if (caps_len > 0) {
            struct vfu_cap_sparse sp = {
                .hdr = { .id = VFU_CAP_SPARSE_MMAP, .version = 1, .next = 0 },
                .nr_areas = d.nr_areas,
            };
            uint8_t *p = reply->small + sizeof(out);

            if (sizeof(out) + caps_len > sizeof(reply->small)) {
                reply->data = malloc(sizeof(out) + caps_len);
                if (reply->data == NULL)
                    return -ENOMEM;
                reply->data_free = true;
                p = reply->data + sizeof(out);
            }
            out.flags |= VFU_REGION_FLAG_CAPS;
            out.cap_offset = sizeof(out);
            memcpy(p, &sp, sizeof(sp));
            for (unsigned i = 0; i < d.nr_areas; i++) {
                struct vfu_sparse_area a = { d.areas[i].offset,
                                             d.areas[i].size };

                memcpy(p + sizeof(sp) + i * sizeof(a), &a, sizeof(a));
            }
            reply->len = sizeof(out) + caps_len;
        }
    }
    memcpy(reply->data != NULL ? reply->data : reply->small, &out, sizeof(out));
    if (reply->len == 0)
        reply->len = sizeof(out);
    return 0;
}

int mu_cmd_region_rw(mu_ctx_t *ctx, struct mu_msg *msg, struct mu_reply *reply)
{
    uint32_t max = (uint32_t)ctx->limits[MU_LIMIT_DATA_XFER];
    struct vfu_region_access a;
    const uint8_t *wdata;
    uint8_t *buf;
    ssize_t n;
    int rc;

    if (msg->hdr.cmd == VFU_CMD_REGION_WRITE) {
        rc = vfu_check_region_write(msg->body, msg->len, msg->nfds, max, &a,
                                    &wdata);
        if (rc < 0)
            return mu_refuse(ctx, rc, "malformed payload (%zu bytes, %u fds, "
                             "limit %u data bytes)", msg->len, msg->nfds, max);
        /* The body is ours: the callback may scribble on its buffer. */
        n = mu_region_access(ctx, a.region, (uint8_t *)wdata, a.count,
                             a.offset, true);
        if (n < 0)
            return (int)n;
        memcpy(reply->small, &a, sizeof(a));
        reply->len = sizeof(a);
        return 0;
    }

    rc = vfu_check_region_read(msg->body, msg->len, msg->nfds, max, &a);
    if (rc < 0)
        return mu_refuse(ctx, rc, "malformed payload (%zu bytes, %u fds, "
                         "limit %u data bytes)", msg->len, msg->nfds, max);
    if (sizeof(a) + a.count <= sizeof(reply->small)) {
        buf = reply->small + sizeof(a);
    } else {
        reply->data2 = malloc(a.count);
        if (reply->data2 == NULL)
            return -ENOMEM;
        buf = reply->data2;
    }
    n = mu_region_access(ctx, a.region, buf, a.count, a.offset, false);
    if (n < 0) {
        free(reply->data2);
        reply->data2 = NULL;
        return (int)n;
    }
    memcpy(reply->small, &a, sizeof(a));
    if (reply->data2 != NULL) {
        /* Header piece in small, data in data2: sent as two iovecs. */
        reply->len = sizeof(a);
        reply->len2 = a.count;
        reply->data2_free = true;
    } else {
        reply->len = sizeof(a) + a.count;
    }
    return 0;
}

int mu_cmd_write_multi(mu_ctx_t *ctx, struct mu_msg *msg,
                       struct mu_reply *reply)
{
    const struct vfu_write_multi_entry *e;
    uint64_t cnt;
    int rc;

    if (!ctx->peer.write_multiple)  /* only when both sides said so */
        return mu_refuse(ctx, -ENOTSUP, "write_multiple not negotiated");
    rc = vfu_check_write_multi(msg->body, msg->len, msg->nfds, &cnt, &e);
    if (rc < 0)
        return mu_refuse(ctx, rc, "malformed payload (%zu bytes, %u fds)",
                         msg->len, msg->nfds);
    for (uint64_t i = 0; i < cnt; i++) {
        struct vfu_write_multi_entry w;
        ssize_t n;

        memcpy(&w, (const uint8_t *)e + i * sizeof(w), sizeof(w));
        n = mu_region_access(ctx, w.region, w.data, w.count, w.offset, true);
        if (n < 0)
            return (int)n;
    }
    memcpy(reply->small, &cnt, sizeof(cnt));
    reply->len = sizeof(cnt);
    return 0;
}

int mu_cmd_region_io_fds(mu_ctx_t *ctx, struct mu_msg *msg,
                         struct mu_reply *reply)
{
    struct vfu_region_io_fds in, out;
    const struct mu_ioeventfd *list;
    unsigned n, max_fds = ctx->peer.max_msg_fds;
    size_t full;
    uint8_t *p;
    int rc;

    rc = vfu_check_region_io_fds(msg->body, msg->len, msg->nfds, &in);
    if (rc < 0)
        return mu_refuse(ctx, rc, "malformed payload (%zu bytes, %u fds)",
                         msg->len, msg->nfds);
    if (mu_region_ioeventfds(ctx, in.index, &list, &n) < 0)
        return mu_refuse(ctx, -EINVAL, "region %u does not exist", in.index);
    if (n > max_fds || n > MU_REPLY_MAX_FDS) {
        mu_log(ctx, MU_LOG_WARN, "region %u has %u ioeventfds, client takes %u",
               in.index, n, max_fds);
        return mu_refuse(ctx, -E2BIG, "region %u has %u ioeventfds, client "
                         "takes %u", in.index, n, max_fds);
    }
    full = sizeof(out) + n * sizeof(struct vfu_sub_region_ioeventfd);
    out.argsz = (uint32_t)full;
    out.flags = 0;
    out.index = in.index;
    out.count = n;
    if (in.argsz < full) {
        /* Too small: the count and needed size only, no fds. */
        memcpy(reply->small, &out, sizeof(out));
        reply->len = sizeof(out);
        return 0;
    }
    reply->data = malloc(full);
    if (reply->data == NULL)
        return -ENOMEM;
    reply->data_free = true;
    p = reply->data;
    memcpy(p, &out, sizeof(out));
    for (unsigned i = 0; i < n; i++) {
        const struct mu_ioeventfd *e = &list[i];
        struct vfu_sub_region_ioeventfd s = {
            .offset = e->offset,
            .size = e->size,
            .fd_index = i,
            .type = VFU_IOFD_TYPE_IOEVENTFD,
            .flags = e->datamatch ? VFU_IOEVENTFD_FLAG_DATAMATCH : 0,
            .datamatch = e->data,
        };

        memcpy(p + sizeof(out) + i * sizeof(s), &s, sizeof(s));
        reply->fds[reply->nfds++] = e->fd;
    }
    reply->len = full;
    /* Taken as soon as the reply goes out: a send failure drops the
     * client, and with it the flag. */
    mu_region_ioeventfds_given(ctx, in.index, n > 0);
    return 0;
}
