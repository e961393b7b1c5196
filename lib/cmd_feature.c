/*
 * cmd_feature.c - DEVICE_FEATURE: DMA logging start, stop and report
 * decoded here and done by the DMA table (mu_dma_log_*, with the bitmaps
 * of dma_log.h); the migration features go to cmd_mig.c.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "cmd.h"

/* SET and PROBE replies are the request itself (protocol §3.13). */
static int echo(const struct mu_msg *msg, struct mu_reply *reply)
{
    uint8_t *p = reply->small;

    if (msg->len > sizeof(reply->small)) {
        p = malloc(msg->len);
        if (p == NULL)
            return -ENOMEM;
        reply->data = p;
        reply->data_free = true;
    }
    memcpy(p, msg->body, msg->len);
    reply->len = msg->len;
    return 0;
}

/* The logging setup a START (or STOP) control describes. */
static int control_to_log(const uint8_t *data, size_t len,
                          struct mu_dma_log **out)
{
    struct vfu_dma_logging_control c;
    struct mu_log_range *rg = NULL;
    const uint8_t *raw;
    int rc;

    rc = vfu_check_dma_logging_control(data, len, &c, &raw);
    if (rc < 0)
        return rc;
    if (c.num_ranges > 0) {
        rg = malloc((size_t)c.num_ranges * sizeof(*rg));
        if (rg == NULL)
            return -ENOMEM;
    }
    for (uint32_t i = 0; i < c.num_ranges; i++)
        vfu_dma_logging_range_at(raw, i, &rg[i].start, &rg[i].last);
    rc = mu_dma_log_new(c.page_size, rg, c.num_ranges, out);
    free(rg);
    return rc;
}

static int log_start(mu_ctx_t *ctx, const uint8_t *data, size_t len)
{
    struct mu_dma_log *log;
    size_t nr;
    uint64_t ps;
    int rc;

    rc = control_to_log(data, len, &log);
    if (rc < 0)
        return rc;
    nr = mu_dma_log_nr_ranges(log);
    ps = mu_dma_log_pgsize(log);
    rc = mu_dma_log_start(ctx, log);        /* takes log */
    if (rc == 0)
        mu_log(ctx, MU_LOG_INFO, "DMA logging started: %zu range(s), "
               "page size %#llx", nr, (unsigned long long)ps);
    return rc;
}

static int log_stop(mu_ctx_t *ctx, const uint8_t *data, size_t len)
{
    struct mu_dma_log *log;
    int rc;

    /* VFIO's STOP carries no data, QEMU's may repeat START's: take both. */
    if (len > 0) {
        rc = control_to_log(data, len, &log);
        if (rc < 0)
            return rc;
        mu_dma_log_free(log);
    }
    mu_dma_log_stop(ctx);
    return 0;
}

static int log_report(mu_ctx_t *ctx, const struct vfu_device_feature *f,
                      const uint8_t *data, size_t len, struct mu_reply *reply)
{
    struct vfu_device_feature hdr = *f;
    struct vfu_dma_logging_report rq;
    uint64_t nr_pages, bytes, full;
    uint8_t *buf;
    int rc;

    rc = vfu_check_dma_logging_report(data, len, &rq, &nr_pages, &bytes);
    if (rc < 0)
        return rc;
    full = sizeof(hdr) + sizeof(rq) + bytes;
    if (f->argsz < full || full > ctx->limits[MU_LIMIT_MSG_SIZE] - VFU_HDR_SIZE)
        return -EINVAL;
    buf = calloc(1, full);  /* 8-byte aligned: the bitmap at 32 is too */
    if (buf == NULL)
        return -ENOMEM;
    rc = mu_dma_log_report(ctx, rq.iova / rq.page_size, nr_pages,
                           rq.page_size,
                           (uint64_t *)(buf + sizeof(hdr) + sizeof(rq)));
    if (rc < 0) {
        free(buf);
        return rc;
    }
    hdr.argsz = (uint32_t)full;
    memcpy(buf, &hdr, sizeof(hdr));
    memcpy(buf + sizeof(hdr), &rq, sizeof(rq));
    reply->data = buf;
    reply->data_free = true;
    reply->len = full;
    return 0;
}

int mu_cmd_device_feature(mu_ctx_t *ctx, struct mu_msg *msg,
                          struct mu_reply *reply)
{
    const uint32_t get_set = VFU_FEATURE_GET | VFU_FEATURE_SET;
    struct vfu_device_feature f;
    const uint8_t *data;
    uint32_t supported;
    size_t len;
    int rc;

    rc = vfu_check_device_feature(msg->body, msg->len, msg->nfds, &f, &data,
                                  &len);
    if (rc < 0)
        return mu_refuse(ctx, rc, "malformed payload (%zu bytes, %u fds)",
                         msg->len, msg->nfds);
    switch (f.flags & VFU_FEATURE_MASK) {
    case VFU_FEATURE_DMA_LOGGING_START:
    case VFU_FEATURE_DMA_LOGGING_STOP:
        supported = VFU_FEATURE_SET;
        break;
    case VFU_FEATURE_DMA_LOGGING_REPORT:
        supported = VFU_FEATURE_GET;
        break;
    case VFU_FEATURE_MIGRATION:
    case VFU_FEATURE_MIG_DEVICE_STATE:
        return mu_cmd_mig_feature(ctx, &f, data, len, reply);
    default:
        return mu_refuse(ctx, -ENOTSUP, "feature %u is not supported",
                         f.flags & VFU_FEATURE_MASK);
    }
    /* As VFIO: asking for an operation the feature lacks is EINVAL, even
     * when only probing. */
    if (f.flags & get_set & ~supported)
        return mu_refuse(ctx, -EINVAL, "feature %u does not take %s",
                         f.flags & VFU_FEATURE_MASK,
                         (f.flags & VFU_FEATURE_GET) ? "GET" : "SET");
    if (f.flags & VFU_FEATURE_PROBE)
        return echo(msg, reply);

    switch (f.flags & VFU_FEATURE_MASK) {
    case VFU_FEATURE_DMA_LOGGING_START:
        rc = log_start(ctx, data, len);
        break;
    case VFU_FEATURE_DMA_LOGGING_STOP:
        rc = log_stop(ctx, data, len);
        break;
    default:
        rc = log_report(ctx, &f, data, len, reply);
        if (rc < 0)
            return mu_refuse(ctx, rc, "DMA logging report: bad page size, "
                             "range or argsz, or logging not started");
        return rc;
    }
    if (rc < 0)
        return mu_refuse(ctx, rc, "DMA logging %s refused: bad control "
                         "(page size, ranges) or wrong state",
                         (f.flags & VFU_FEATURE_MASK) ==
                         VFU_FEATURE_DMA_LOGGING_START ? "start" : "stop");
    return echo(msg, reply);
}
