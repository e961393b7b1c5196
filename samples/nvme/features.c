/*
 * features.c - Get Features / Set Features.
 *
 * Every feature here is live: arbitration and error recovery are only
 * stored (one arbitration scheme, no retries to limit), but the number of
 * queues bounds Create I/O SQ/CQ, temperature thresholds drive the SMART
 * critical warning and its async event, the write cache setting makes
 * writes durable before completion when off, coalescing and per-vector
 * coalescing-disable drive intr.c, and the async event configuration
 * gates the SMART event.  Nothing is saveable (no SV, SEL 2 = defaults).
 */
#include <string.h>

#include "nvme.h"

enum { SEL_CURRENT = 0, SEL_DEFAULT = 1, SEL_SAVED = 2, SEL_CAPS = 3 };
#define CAP_CHANGEABLE 0x4u

static void defaults(const struct nvme_ctrl *c, struct nvme_features *f)
{
    memset(f, 0, sizeof(*f));
    f->temp_over = NVME_WCTEMP;
    f->temp_under = 0;
    f->wce = true;
    f->nsqa = f->ncqa = (uint16_t)(c->max_ioq - 1);
}

void features_reset(struct nvme_ctrl *c)
{
    defaults(c, &c->feat);
    smart_check_temp(c);
}

static bool known(uint8_t fid)
{
    return fid >= NVME_FEAT_ARBITRATION && fid <= NVME_FEAT_ASYNC_EVENT &&
           fid != 0x03;     /* 03h LBA range type: not supported */
}

/* Temperature threshold: only the composite temperature (TMPSEL 0). */
static uint16_t set_temp(struct nvme_ctrl *c, uint32_t dw11)
{
    unsigned tmpsel = (dw11 >> 16) & 0xf, thsel = (dw11 >> 20) & 0x3;

    if (tmpsel != 0 || thsel > 1)
        return NVME_SC_INVALID_FIELD | NVME_ST_DNR;
    if (thsel == 0)
        c->feat.temp_over = (uint16_t)dw11;
    else
        c->feat.temp_under = (uint16_t)dw11;
    smart_check_temp(c);
    return NVME_SC_SUCCESS;
}

static uint16_t set_queues(struct nvme_ctrl *c, uint32_t dw11, uint32_t *dw0)
{
    uint32_t nsqr = dw11 & 0xffff, ncqr = dw11 >> 16;

    if (nsqr == 0xffff || ncqr == 0xffff)
        return NVME_SC_INVALID_FIELD | NVME_ST_DNR;
    /* Only before any I/O queue exists. */
    if (c->nr_ioq_live > 0)
        return NVME_SC_CMD_SEQ_ERROR | NVME_ST_DNR;
    c->feat.nsqa = (uint16_t)(nsqr < c->max_ioq - 1 ? nsqr : c->max_ioq - 1);
    c->feat.ncqa = (uint16_t)(ncqr < c->max_ioq - 1 ? ncqr : c->max_ioq - 1);
    *dw0 = c->feat.nsqa | (uint32_t)c->feat.ncqa << 16;
    return NVME_SC_SUCCESS;
}

static void flush_all(struct nvme_ctrl *c)
{
    for (unsigned i = 0; i < c->nr_ns; i++)
        ns_flush(&c->ns[i]);
}

uint16_t features_set(struct nvme_ctrl *c, const struct nvme_sqe *cmd,
                      uint32_t *dw0)
{
    uint8_t fid = cmd->cdw10 & 0xff;
    uint32_t dw11 = cmd->cdw11;

    if (!known(fid))
        return NVME_SC_INVALID_FIELD | NVME_ST_DNR;
    if (cmd->cdw10 & (1u << 31))
        return NVME_SC_FEATURE_NOT_SAVEABLE | NVME_ST_DNR;
    switch (fid) {
    case NVME_FEAT_ARBITRATION:
        c->feat.arbitration = dw11;
        break;
    case NVME_FEAT_POWER_MGMT:
        if ((dw11 & 0x1f) != 0)     /* only power state 0 exists */
            return NVME_SC_INVALID_FIELD | NVME_ST_DNR;
        c->feat.power_mgmt = dw11 & 0xff;
        break;
    case NVME_FEAT_TEMP_THRESH:
        return set_temp(c, dw11);
    case NVME_FEAT_ERR_RECOVERY:
        if (dw11 & (1u << 16))      /* DULBE needs NSFEAT bit 2 */
            return NVME_SC_INVALID_FIELD | NVME_ST_DNR;
        c->feat.err_recovery = dw11 & 0xffff;
        break;
    case NVME_FEAT_VOLATILE_WC:
        /* Turning the cache off makes what it held durable first. */
        if (c->feat.wce && !(dw11 & 1))
            flush_all(c);
        c->feat.wce = dw11 & 1;
        break;
    case NVME_FEAT_NUM_QUEUES:
        return set_queues(c, dw11, dw0);
    case NVME_FEAT_IRQ_COALESCE:
        c->feat.coalesce_thr = dw11 & 0xff;
        c->feat.coalesce_time = (dw11 >> 8) & 0xff;
        break;
    case NVME_FEAT_IRQ_CONFIG:
        if ((dw11 & 0xffff) >= NVME_NR_VECTORS)
            return NVME_SC_INVALID_FIELD | NVME_ST_DNR;
        c->feat.vec_cd[dw11 & 0xffff] = dw11 & (1u << 16);
        break;
    case NVME_FEAT_WRITE_ATOMIC:
        c->feat.write_atomic = dw11 & 1;
        break;
    case NVME_FEAT_ASYNC_EVENT:
        c->feat.async_cfg = dw11;
        break;
    }
    return NVME_SC_SUCCESS;
}

static uint16_t get_value(const struct nvme_features *f, uint8_t fid,
                          uint32_t dw11, uint32_t *dw0)
{
    switch (fid) {
    case NVME_FEAT_ARBITRATION:
        *dw0 = f->arbitration;
        break;
    case NVME_FEAT_POWER_MGMT:
        *dw0 = f->power_mgmt;
        break;
    case NVME_FEAT_TEMP_THRESH: {
        unsigned tmpsel = (dw11 >> 16) & 0xf, thsel = (dw11 >> 20) & 0x3;

        if (tmpsel != 0 || thsel > 1)
            return NVME_SC_INVALID_FIELD | NVME_ST_DNR;
        *dw0 = thsel == 0 ? f->temp_over : f->temp_under;
        break;
    }
    case NVME_FEAT_ERR_RECOVERY:
        *dw0 = f->err_recovery;
        break;
    case NVME_FEAT_VOLATILE_WC:
        *dw0 = f->wce;
        break;
    case NVME_FEAT_NUM_QUEUES:
        *dw0 = f->nsqa | (uint32_t)f->ncqa << 16;
        break;
    case NVME_FEAT_IRQ_COALESCE:
        *dw0 = f->coalesce_thr | (uint32_t)f->coalesce_time << 8;
        break;
    case NVME_FEAT_IRQ_CONFIG: {
        uint32_t iv = dw11 & 0xffff;

        if (iv >= NVME_NR_VECTORS)
            return NVME_SC_INVALID_FIELD | NVME_ST_DNR;
        *dw0 = iv | (f->vec_cd[iv] ? 1u << 16 : 0);
        break;
    }
    case NVME_FEAT_WRITE_ATOMIC:
        *dw0 = f->write_atomic;
        break;
    case NVME_FEAT_ASYNC_EVENT:
        *dw0 = f->async_cfg;
        break;
    }
    return NVME_SC_SUCCESS;
}

uint16_t features_get(struct nvme_ctrl *c, const struct nvme_sqe *cmd,
                      uint32_t *dw0)
{
    uint8_t fid = cmd->cdw10 & 0xff;
    unsigned sel = (cmd->cdw10 >> 8) & 0x7;
    struct nvme_features def;

    if (!known(fid))
        return NVME_SC_INVALID_FIELD | NVME_ST_DNR;
    switch (sel) {
    case SEL_CURRENT:
        return get_value(&c->feat, fid, cmd->cdw11, dw0);
    case SEL_DEFAULT:
    case SEL_SAVED:     /* nothing is saveable: saved = default */
        defaults(c, &def);
        return get_value(&def, fid, cmd->cdw11, dw0);
    case SEL_CAPS:
        *dw0 = CAP_CHANGEABLE;
        return NVME_SC_SUCCESS;
    default:
        return NVME_SC_INVALID_FIELD | NVME_ST_DNR;
    }
}
