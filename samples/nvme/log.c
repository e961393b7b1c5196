/*
 * log.c - log pages (01h error information, 02h SMART / health, 03h
 * firmware slots, 05h commands supported and effects), the error log
 * itself, and asynchronous events.
 *
 * Asynchronous events: an AER command waits (admin.c) until an event is
 * queued here.  We raise two kinds: error events for doorbell writes that
 * name no queue or carry an impossible value, and a SMART event when the
 * composite temperature crosses the threshold the host set (feature 04h),
 * if enabled by feature 0Bh.  Once an event of a type is reported, that
 * type stays masked until the host reads the log page named in the event
 * with RAE clear, as the spec has it.
 */
#include <stdlib.h>
#include <string.h>

#include "nvme.h"

/* ---------------- error log ---------------- */

void log_error(struct nvme_ctrl *c, uint16_t sqid, const struct nvme_sqe *cmd,
               uint16_t status)
{
    struct nvme_error_entry *e;

    ctrl_common_lock(c);
    e = &c->err[c->err_next];
    c->err_next = (c->err_next + 1) % (NVME_ELPE + 1);
    memset(e, 0, sizeof(*e));
    e->error_count = ++c->err_count;
    e->sqid = sqid;
    e->cid = cmd != NULL ? cmd->cid : 0xffff;
    e->status = (uint16_t)(status << 1);
    e->param_loc = 0xffff;      /* not recorded */
    e->nsid = cmd != NULL ? cmd->nsid : 0;
    if (cmd != NULL && cmd->opc != NVME_IO_FLUSH && sqid != 0)
        e->lba = (uint64_t)cmd->cdw11 << 32 | cmd->cdw10;
    ctrl_common_unlock(c);
}

/* Newest first, as the spec orders them. */
static void error_page(const struct nvme_ctrl *c, uint8_t *page)
{
    for (unsigned i = 0; i <= NVME_ELPE; i++) {
        unsigned idx = (c->err_next + NVME_ELPE - i) % (NVME_ELPE + 1);

        memcpy(page + i * sizeof(struct nvme_error_entry), &c->err[idx],
               sizeof(struct nvme_error_entry));
    }
}

/* ---------------- SMART / health ---------------- */

void smart_check_temp(struct nvme_ctrl *c)
{
    bool over = NVME_TEMP_KELVIN > c->feat.temp_over ||
                NVME_TEMP_KELVIN < c->feat.temp_under;
    bool was = c->smart.crit_warning & NVME_SMART_WARN_TEMP;

    if (over)
        c->smart.crit_warning |= NVME_SMART_WARN_TEMP;
    else
        c->smart.crit_warning &= (uint8_t)~NVME_SMART_WARN_TEMP;
    if (over && !was && (c->feat.async_cfg & NVME_SMART_WARN_TEMP))
        aen_post(c, NVME_AER_TYPE_SMART, NVME_AER_SMART_TEMP, NVME_LOG_SMART);
}

static void put_le128(uint8_t *p, uint64_t v)
{
    put_le64(p, v);
    put_le64(p + 8, 0);
}

/* Every pass's counters (controller lock held). */
static struct nvme_io_stats io_total(const struct nvme_ctrl *c)
{
    struct nvme_io_stats t = c->smart.io;

    for (unsigned i = 0; i < c->nr_pollers; i++) {
        const struct nvme_io_stats *p = &c->pollers[i].io;

        t.units_read += p->units_read;
        t.units_written += p->units_written;
        t.host_reads += p->host_reads;
        t.host_writes += p->host_writes;
        t.busy_ns += p->busy_ns;
        t.media_errors += p->media_errors;
    }
    return t;
}

static void smart_page(const struct nvme_ctrl *c, uint8_t *p)
{
    const struct nvme_smart *s = &c->smart;
    const struct nvme_io_stats io = io_total(c);
    uint64_t up = now_ns() - s->start_ns;

    p[0] = s->crit_warning;
    put_le16(p + 1, NVME_TEMP_KELVIN);
    p[3] = 100;         /* available spare % */
    p[4] = 10;          /* spare threshold % */
    p[5] = 0;           /* percentage used */
    /* Data units are thousands of 512-byte units, rounded up. */
    put_le128(p + 32, (io.units_read + 999) / 1000);
    put_le128(p + 48, (io.units_written + 999) / 1000);
    put_le128(p + 64, io.host_reads);
    put_le128(p + 80, io.host_writes);
    put_le128(p + 96, io.busy_ns / 60000000000ull);     /* minutes */
    put_le128(p + 112, 1);                              /* power cycles */
    put_le128(p + 128, up / 3600000000000ull);          /* power-on hours */
    put_le128(p + 144, s->unsafe_shutdowns);
    put_le128(p + 160, io.media_errors);
    put_le128(p + 176, c->err_count);
    put_le16(p + 200, NVME_TEMP_KELVIN);                /* sensor 1 */
}

/* ---------------- firmware slots, command effects ---------------- */

static void fw_page(uint8_t *p)
{
    p[0] = 0x01;        /* slot 1 active, no pending activation */
    memcpy(p + 8, "0.1     ", 8);
}

#define EFF_CSUPP 0x1u
#define EFF_LBCC 0x2u

static void effects_page(uint8_t *p)
{
    static const uint8_t admin[] = {
        NVME_ADM_DELETE_SQ, NVME_ADM_CREATE_SQ, NVME_ADM_GET_LOG,
        NVME_ADM_DELETE_CQ, NVME_ADM_CREATE_CQ, NVME_ADM_IDENTIFY,
        NVME_ADM_ABORT, NVME_ADM_SET_FEATURES, NVME_ADM_GET_FEATURES,
        NVME_ADM_AER, NVME_ADM_KEEP_ALIVE,
    };

    for (size_t i = 0; i < sizeof(admin); i++)
        put_le32(p + admin[i] * 4, EFF_CSUPP);
    put_le32(p + 1024 + NVME_IO_FLUSH * 4, EFF_CSUPP);
    put_le32(p + 1024 + NVME_IO_READ * 4, EFF_CSUPP);
    put_le32(p + 1024 + NVME_IO_WRITE * 4, EFF_CSUPP | EFF_LBCC);
    put_le32(p + 1024 + NVME_IO_WRITE_ZEROES * 4, EFF_CSUPP | EFF_LBCC);
    put_le32(p + 1024 + NVME_IO_DSM * 4, EFF_CSUPP | EFF_LBCC);
}

/* ---------------- Get Log Page ---------------- */

uint16_t log_get_page(struct nvme_ctrl *c, const struct nvme_sqe *cmd)
{
    uint8_t page[4096];
    uint8_t lid = cmd->cdw10 & 0xff;
    bool rae = cmd->cdw10 & (1u << 15);
    uint64_t numd = ((uint64_t)(cmd->cdw11 & 0xffff) << 16 | cmd->cdw10 >> 16) + 1;
    uint64_t len = numd * 4, off = (uint64_t)cmd->cdw13 << 32 | cmd->cdw12;
    size_t size;
    uint8_t *buf;
    uint16_t st;

    memset(page, 0, sizeof(page));
    switch (lid) {
    case NVME_LOG_ERROR:
        size = (NVME_ELPE + 1) * sizeof(struct nvme_error_entry);
        error_page(c, page);
        break;
    case NVME_LOG_SMART:
        /* Controller-wide only (LPA bit 0 clear). */
        if (cmd->nsid != 0 && cmd->nsid != 0xffffffff)
            return NVME_SC_INVALID_FIELD | NVME_ST_DNR;
        size = 512;
        smart_page(c, page);
        break;
    case NVME_LOG_FW_SLOT:
        size = 512;
        fw_page(page);
        break;
    case NVME_LOG_CMD_EFFECTS:
        size = 4096;
        effects_page(page);
        break;
    default:
        return NVME_SC_INVALID_LOG_PAGE | NVME_ST_DNR;
    }
    if ((off & 3) || off >= size || len > NVME_MAX_XFER)
        return NVME_SC_INVALID_FIELD | NVME_ST_DNR;
    /* Past the end of the page the host gets zeros. */
    buf = calloc(1, len);
    if (buf == NULL)
        return NVME_SC_INTERNAL;
    memcpy(buf, page + off, len < size - off ? len : size - off);
    st = xfer_to_guest(c, cmd->prp1, cmd->prp2, buf, len);
    free(buf);
    /* Reading the page (RAE clear) re-arms its event type; what waited
     * goes out after this command's completion (sq_process()). */
    if (st == NVME_SC_SUCCESS && !rae) {
        if (lid == NVME_LOG_ERROR)
            c->aen_masked &= (uint8_t)~(1u << NVME_AER_TYPE_ERROR);
        if (lid == NVME_LOG_SMART)
            c->aen_masked &= (uint8_t)~(1u << NVME_AER_TYPE_SMART);
    }
    return st;
}

/* ---------------- asynchronous events ---------------- */

/* Queue an event.  On an I/O pass only the queueing (under ctrl->lock):
 * completing the AER posts to the admin CQ, poller 0's, which delivers
 * it in its next admin pass (aen_kick). */
void aen_post(struct nvme_ctrl *c, uint8_t type, uint8_t info, uint8_t lid)
{
    uint32_t dw0 = NVME_AER_DW0(type, info, lid);
    bool queued = false, dup = false;

    ctrl_common_lock(c);
    for (unsigned i = 0; i < c->nr_aen; i++) {
        if (c->aen[i] == dw0)
            dup = true;     /* already waiting to be reported */
    }
    if (!dup && c->nr_aen < NVME_MAX_AEN) {
        c->aen[c->nr_aen++] = dw0;
        queued = true;
        if (type == NVME_AER_TYPE_ERROR)
            log_error(c, 0xffff, NULL, NVME_SC_SUCCESS);
    }
    ctrl_common_unlock(c);
    if (!queued)
        return;
    if (ctrl_in_io_pass())
        __atomic_store_n(&c->aen_kick, 1, __ATOMIC_RELEASE);
    else
        aen_deliver(c);
}

/*
 * Complete outstanding AERs with queued, unmasked events, room allowing.
 * Not while an admin command runs: the admin CQ slot checked free before
 * it was fetched is its own; sq_process() calls us again after posting.
 */
void aen_deliver(struct nvme_ctrl *c)
{
    struct nvme_cq *cq = &c->cq[0];
    struct nvme_pass *pass = ctrl_pass(c);
    struct nvme_sq *outer_sq = pass->sq;
    struct nvme_cq *outer_cq = pass->cq;
    unsigned i = 0;

    if (c->in_admin_cmd)
        return;
    if (ctrl_defer(c))
        return;         /* posting is DMA: the poller's (poller.c) */
    /* AER completions are the admin pair's (ctrl_dma). */
    pass->sq = &c->sq[0];
    pass->cq = cq;
    while (i < c->nr_aen && c->nr_aer > 0 && ctrl_running(c) && cq->valid &&
           !cq_full(cq)) {
        uint32_t dw0 = c->aen[i], tail0 = cq->tail;
        uint8_t type = dw0 & 7;

        if (c->aen_masked & (1u << type)) {
            i++;
            continue;
        }
        c->aen_masked |= (uint8_t)(1u << type);
        memmove(&c->aen[i], &c->aen[i + 1],
                (c->nr_aen - i - 1) * sizeof(c->aen[0]));
        c->nr_aen--;
        c->nr_aer--;
        cq_post(c, cq, dw0, (uint16_t)c->sq[0].head, 0, c->aer_cid[c->nr_aer],
                NVME_SC_SUCCESS);
        if (cq->tail == tail0 && c->pass.mig_stopped) {
            /* Stopped for migration as it went out: keep the event and
             * the AER for when the controller runs again. */
            memmove(&c->aen[i + 1], &c->aen[i],
                    (c->nr_aen - i) * sizeof(c->aen[0]));
            c->aen[i] = dw0;
            c->nr_aen++;
            c->nr_aer++;
            c->aen_masked &= (uint8_t)~(1u << type);
            break;
        }
    }
    pass->sq = outer_sq;
    pass->cq = outer_cq;
    if (cq->valid && cq->irq_due)
        intr_cq_flush(c, cq);
}

void aen_reset(struct nvme_ctrl *c)
{
    c->nr_aer = 0;
    c->nr_aen = 0;
    c->aen_masked = 0;
}
