/*
 * driver_cmd.c - the command side of the test driver: PRPs, submission,
 * doorbells, reaping completions by phase tag, admin helpers, queue pairs.
 * See driver.h.
 */
#include <errno.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "driver.h"

#define P NVD_PAGE

static uint64_t now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static struct nvd_queue *queue(struct nvd *d, unsigned qid)
{
    if (qid == 0)
        return &d->aq;
    if (qid > NVD_MAX_IOQ)
        return NULL;
    return &d->ioq[qid];
}

/* ---------------- doorbells ---------------- */

int nvd_doorbell(struct nvd *d, unsigned idx, uint32_t v)
{
    uint64_t one = 1;

    if (idx >= P / 4)
        return -EINVAL;
    if (d->o.db == NVD_DB_TRAPPED)
        return muc_region_write(d->c, 0, NVME_REG_DBS + 4 * idx, &v, 4);
    /* Entries before doorbell: the release store orders them. */
    __atomic_store_n(&d->db[idx], v, __ATOMIC_RELEASE);
    if (d->o.db == NVD_DB_IOEVENTFD && idx < 2 * (NVD_MAX_IOQ + 1) &&
        d->iofd[idx] >= 0 &&
        write(d->iofd[idx], &one, sizeof(one)) != sizeof(one))
        return -errno;
    return 0;
}

int nvd_ring(struct nvd *d, unsigned qid)
{
    struct nvd_queue *q = queue(d, qid);

    if (q == NULL || !q->live)
        return -ENODEV;
    return nvd_doorbell(d, 2 * qid, q->sq_tail);
}

/* ---------------- PRPs ---------------- */

static uint64_t page_of(const struct nvd_buf *b, unsigned i)
{
    if (b->pages != NULL)
        return b->pages[i];
    return i == 0 ? b->iova : (b->iova & ~(uint64_t)(P - 1)) + (uint64_t)i * P;
}

static unsigned pages_of(const struct nvd_buf *b)
{
    if (b->pages != NULL)
        return b->nr_pages;
    return (unsigned)(((b->iova & (P - 1)) + b->len + P - 1) / P);
}

/*
 * PRP1 is the first byte, PRP2 the second page or a list in the slot's
 * list pages, starting list_off into the first; when the entries left
 * outrun the slots left in that page, its last slot chains to the second.
 */
static int build_prps(struct nvd *d, struct nvd_queue *q, uint16_t slot,
                      struct nvme_sqe *cmd, const struct nvd_buf *b)
{
    unsigned n = pages_of(b), pos = b->list_off;
    uint64_t list = q->prp_iova + (uint64_t)slot * 2 * P, cur = list;

    if (b->len == 0 || n == 0)
        return 0;
    cmd->prp1 = page_of(b, 0);
    cmd->prp2 = 0;
    if (n == 1)
        return 0;
    if (n == 2) {
        cmd->prp2 = page_of(b, 1);
        return 0;
    }
    if (pos >= P || (pos & 7))
        return -EINVAL;
    cmd->prp2 = cur + pos;
    for (unsigned i = 1; i < n; i++) {
        unsigned left = (P - pos) / 8, remaining = n - i;
        uint64_t *slotp;

        if (left == 1 && remaining > 1) {
            if (cur != list)
                return -E2BIG;      /* only two list pages a slot */
            slotp = nvd_va(d, cur + pos);
            *slotp = list + P;
            cur = list + P;
            pos = 0;
        }
        slotp = nvd_va(d, cur + pos);
        *slotp = page_of(b, i);
        pos += 8;
    }
    return 0;
}

/* ---------------- submission and completion ---------------- */

int nvd_submit(struct nvd *d, unsigned qid, struct nvme_sqe *cmd,
               const struct nvd_buf *buf)
{
    struct nvd_queue *q = queue(d, qid);
    uint16_t cid;
    int rc;

    if (q == NULL || !q->live)
        return -ENODEV;
    if ((q->sq_tail + 1) % q->size == q->sq_head || q->nr_free == 0)
        return -EBUSY;
    cid = q->free_cid[--q->nr_free];
    cmd->cid = cid;
    if (buf != NULL && (rc = build_prps(d, q, cid, cmd, buf)) < 0) {
        q->free_cid[q->nr_free++] = cid;
        return rc;
    }
    memcpy(&q->sq[q->sq_tail], cmd, sizeof(*cmd));
    q->sq_tail = (q->sq_tail + 1) % q->size;
    q->inflight++;
    return cid;
}

/* A Read, Write or other LBA-range command: SLBA in CDW10-11, NLB
 * (0's based) in CDW12. */
static struct nvme_sqe rw_cmd(uint8_t opc, uint32_t nsid, uint64_t slba,
                              uint32_t nlb)
{
    return (struct nvme_sqe){
        .opc = opc,
        .nsid = nsid,
        .cdw10 = (uint32_t)slba,
        .cdw11 = (uint32_t)(slba >> 32),
        .cdw12 = nlb - 1,
    };
}

int nvd_submit_rw(struct nvd *d, unsigned qid, uint8_t opc, uint32_t nsid,
                  uint64_t slba, uint32_t nlb, uint64_t iova, size_t len)
{
    struct nvme_sqe cmd = rw_cmd(opc, nsid, slba, nlb);
    struct nvd_buf b = { .iova = iova, .len = len };

    return nvd_submit(d, qid, &cmd, len ? &b : NULL);
}

/* Wait a little for a completion to show up: serve the device's DMA
 * requests for fd-less memory, wait on the interrupt, or spin politely. */
static void reap_wait(struct nvd *d, struct nvd_queue *q, unsigned *spins)
{
    if (d->fdless != NULL && !d->hold_dma)
        muc_serve(d->c, 0);
    if (d->o.wait_irq) {
        nvd_wait_irq(d, q->vector, 1);
        return;
    }
    if (++*spins < 200) {
#if defined(__x86_64__) || defined(__i386__)
        __builtin_ia32_pause();
#endif
    } else if (*spins < 2000) {
        sched_yield();
    } else {
        struct timespec ts = { 0, 20000 };

        nanosleep(&ts, NULL);
    }
}

static bool cq_new(const struct nvd_queue *q)
{
    const struct nvme_cqe *slot = &q->cq[q->cq_head];

    /* Acquire: the rest of the entry is read after its phase. */
    return (__atomic_load_n(&slot->status, __ATOMIC_ACQUIRE) & 1) == q->phase;
}

bool nvd_cq_ready(struct nvd *d, unsigned qid)
{
    struct nvd_queue *q = queue(d, qid);

    return q != NULL && q->live && cq_new(q);
}

/* Take one entry if its phase says it is new. */
static bool take(struct nvd *d, struct nvd_queue *q, struct nvme_cqe *e)
{
    struct nvme_cqe *slot = &q->cq[q->cq_head];

    if (!cq_new(q))
        return false;
    memcpy(e, slot, sizeof(*e));
    if (++q->cq_head == q->cq_size) {
        q->cq_head = 0;
        q->phase ^= 1;
    }
    q->cq_unrung++;
    q->sq_head = e->sqhd;
    if (e->cid < q->size && q->nr_free < q->size)
        q->free_cid[q->nr_free++] = e->cid;
    q->inflight--;
    (void)d;
    return true;
}

/* An AER completion: keep the event, not the completion. */
static bool aer_done(struct nvd *d, const struct nvme_cqe *e)
{
    for (unsigned i = 0; i < d->nr_aer; i++) {
        if (d->aer_cid[i] != e->cid)
            continue;
        d->aer_cid[i] = d->aer_cid[--d->nr_aer];
        if (NVME_CQE_ST(e->status) == 0 && d->nr_aen < NVD_MAX_AEN)
            d->aen[d->nr_aen++] = e->dw0;
        return true;
    }
    return false;
}

/*
 * Consumed entries we may leave unreported.  Entries the device counts as
 * used are those unreported plus those not yet consumed (at most one a
 * command in flight, size - 1); keeping that below the CQ's capacity means
 * a lazy head never makes the device stall on a full CQ.
 */
static unsigned cq_batch(const struct nvd *d, const struct nvd_queue *q)
{
    unsigned b = d->o.cq_db_batch, room;

    if (b <= 1 || q->cq_size <= q->size)
        return 1;
    room = q->cq_size - q->size + 1;
    return b < room ? b : room;
}

int nvd_reap(struct nvd *d, unsigned qid, struct nvme_cqe *out, unsigned max,
             int timeout_ms)
{
    struct nvd_queue *q = queue(d, qid);
    uint64_t deadline = now_ms() + (uint64_t)(timeout_ms > 0 ? timeout_ms : 0);
    unsigned n = 0, spins = 0, batch;

    if (q == NULL || !q->live)
        return -ENODEV;
    batch = cq_batch(d, q);
    for (;;) {
        unsigned taken = 0;
        struct nvme_cqe e;
        int rc;

        while (n < max && take(d, q, &e)) {
            taken++;
            if (qid == 0 && aer_done(d, &e))
                continue;
            out[n++] = e;
        }
        /* Lazily, but never leave the head unreported while we wait or
         * return empty-handed: the device may be waiting for room. */
        if (q->cq_unrung >= batch || (taken == 0 && q->cq_unrung > 0)) {
            rc = nvd_cq_flush(d, qid);
            if (rc < 0)
                return rc;
        }
        if (n > 0 || timeout_ms == 0 || now_ms() >= deadline)
            return (int)n;
        reap_wait(d, q, &spins);
    }
}

int nvd_cq_flush(struct nvd *d, unsigned qid)
{
    struct nvd_queue *q = queue(d, qid);

    if (q == NULL || !q->live)
        return -ENODEV;
    if (q->cq_unrung == 0)
        return 0;
    q->cq_unrung = 0;
    return nvd_doorbell(d, 2 * qid + 1, q->cq_head);
}

int nvd_exec(struct nvd *d, unsigned qid, struct nvme_sqe *cmd,
             const struct nvd_buf *buf, struct nvme_cqe *cqe)
{
    struct nvme_cqe e;
    int cid, rc;

    cid = nvd_submit(d, qid, cmd, buf);
    if (cid < 0)
        return cid;
    rc = nvd_ring(d, qid);
    if (rc < 0)
        return rc;
    rc = nvd_reap(d, qid, &e, 1, d->o.timeout_ms);
    if (rc < 0)
        return rc;
    if (rc == 0)
        return -ETIMEDOUT;
    if (e.cid != cid)
        return -EPROTO;     /* callers keep one command in flight */
    if (cqe != NULL)
        *cqe = e;
    return NVME_CQE_ST(e.status);
}

int nvd_rw(struct nvd *d, unsigned qid, uint8_t opc, uint32_t nsid,
           uint64_t slba, uint32_t nlb, uint64_t iova, size_t len)
{
    struct nvme_sqe cmd = rw_cmd(opc, nsid, slba, nlb);
    struct nvd_buf b = { .iova = iova, .len = len };

    return nvd_exec(d, qid, &cmd, len ? &b : NULL, NULL);
}

/* ---------------- admin helpers ---------------- */

int nvd_identify(struct nvd *d, uint8_t cns, uint32_t nsid, void *out4k)
{
    struct nvme_sqe cmd = { .opc = NVME_ADM_IDENTIFY, .nsid = nsid,
                            .cdw10 = cns };
    struct nvd_buf b = { .iova = d->scratch, .len = 4096 };
    int st;

    memset(nvd_va(d, d->scratch), 0, 4096);
    st = nvd_exec(d, 0, &cmd, &b, NULL);
    if (st == 0 && out4k != NULL)
        memcpy(out4k, nvd_va(d, d->scratch), 4096);
    return st;
}

int nvd_get_log(struct nvd *d, uint8_t lid, uint32_t nsid, void *out,
                size_t len)
{
    uint32_t numd = (uint32_t)(len / 4 - 1);
    struct nvme_sqe cmd = {
        .opc = NVME_ADM_GET_LOG,
        .nsid = nsid,
        .cdw10 = lid | (numd & 0xffff) << 16,
        .cdw11 = numd >> 16,
    };
    struct nvd_buf b = { .iova = d->scratch, .len = len };
    int st;

    if (len == 0 || len > 2 * P || (len & 3))
        return -EINVAL;
    st = nvd_exec(d, 0, &cmd, &b, NULL);
    if (st == 0 && out != NULL)
        memcpy(out, nvd_va(d, d->scratch), len);
    return st;
}

int nvd_set_features(struct nvd *d, uint8_t fid, uint32_t dw11, uint32_t *dw0)
{
    struct nvme_sqe cmd = { .opc = NVME_ADM_SET_FEATURES, .cdw10 = fid,
                            .cdw11 = dw11 };
    struct nvme_cqe e;
    int st = nvd_exec(d, 0, &cmd, NULL, &e);

    if (st >= 0 && dw0 != NULL)
        *dw0 = e.dw0;
    return st;
}

int nvd_get_features(struct nvd *d, uint8_t fid, unsigned sel, uint32_t dw11,
                     uint32_t *dw0)
{
    struct nvme_sqe cmd = { .opc = NVME_ADM_GET_FEATURES,
                            .cdw10 = fid | sel << 8, .cdw11 = dw11 };
    struct nvme_cqe e;
    int st = nvd_exec(d, 0, &cmd, NULL, &e);

    if (st >= 0 && dw0 != NULL)
        *dw0 = e.dw0;
    return st;
}

int nvd_aer_submit(struct nvd *d)
{
    struct nvme_sqe cmd = { .opc = NVME_ADM_AER };
    int cid;

    if (d->nr_aer == NVD_MAX_AEN)
        return -ENOSPC;
    cid = nvd_submit(d, 0, &cmd, NULL);
    if (cid < 0)
        return cid;
    d->aer_cid[d->nr_aer++] = (uint16_t)cid;
    return nvd_ring(d, 0);
}

/* ---------------- I/O queue pairs ---------------- */

/* Slots (CIDs, PRP list pages) and queue memory, reused when big enough;
 * queues placed by the caller (sq_at/cq_at) are never reused. */
static int qpair_memory(struct nvd *d, struct nvd_queue *q, uint32_t sq_size,
                        uint32_t cq_size, uint64_t sq_at, uint64_t cq_at)
{
    if (q->slots < sq_size) {
        q->prp_iova = nvd_alloc(d, (size_t)sq_size * 2 * P, P);
        free(q->free_cid);
        q->free_cid = calloc(sq_size, sizeof(*q->free_cid));
        if (q->prp_iova == 0 || q->free_cid == NULL)
            return -ENOMEM;
        q->slots = sq_size;
    }
    if (sq_at != 0) {
        q->sq_iova = sq_at;
        q->sq_cap = 0;
    } else if (q->sq_cap < sq_size) {
        q->sq_iova = nvd_alloc(d, (size_t)sq_size * 64, P);
        q->sq_cap = sq_size;
    }
    if (cq_at != 0) {
        q->cq_iova = cq_at;
        q->cq_cap = 0;
    } else if (q->cq_cap < cq_size) {
        q->cq_iova = nvd_alloc(d, (size_t)cq_size * 16, P);
        q->cq_cap = cq_size;
    }
    q->sq = nvd_va(d, q->sq_iova);
    q->cq = nvd_va(d, q->cq_iova);
    return q->sq != NULL && q->cq != NULL ? 0 : -ENOMEM;
}

/* Fresh queue state: the host zeroes a new CQ and starts at phase 1. */
void nvd__queue_init(struct nvd_queue *q, uint16_t qid, uint32_t sq_size,
                     uint32_t cq_size)
{
    q->qid = qid;
    q->size = sq_size;
    q->cq_size = cq_size;
    q->sq_tail = q->sq_head = q->cq_head = 0;
    q->cq_unrung = 0;
    q->phase = 1;
    q->inflight = 0;
    memset(q->cq, 0, (size_t)cq_size * sizeof(*q->cq));
    q->nr_free = 0;
    /* Hand out low CIDs first. */
    for (uint32_t i = sq_size; i-- > 0;)
        q->free_cid[q->nr_free++] = (uint16_t)i;
}

int nvd_create_qpair(struct nvd *d, uint16_t qid, uint32_t sq_size,
                     uint32_t cq_size)
{
    return nvd_create_qpair_at(d, qid, sq_size, cq_size, 0, 0);
}

int nvd_create_qpair_at(struct nvd *d, uint16_t qid, uint32_t sq_size,
                        uint32_t cq_size, uint64_t sq_iova, uint64_t cq_iova)
{
    struct nvd_queue *q = queue(d, qid);
    struct nvme_sqe cmd;
    int rc;

    if (q == NULL || qid == 0 || q->live || sq_size < 2 || cq_size < 2)
        return -EINVAL;
    rc = qpair_memory(d, q, sq_size, cq_size, sq_iova, cq_iova);
    if (rc < 0)
        return rc;
    nvd__queue_init(q, qid, sq_size, cq_size);
    q->vector = d->o.irq == NVD_IRQ_MSIX && qid < d->nr_irqfd ? qid : 0;
    cmd = (struct nvme_sqe){
        .opc = NVME_ADM_CREATE_CQ,
        .prp1 = q->cq_iova,
        .cdw10 = qid | (cq_size - 1) << 16,
        .cdw11 = NVME_CQ_PC | (d->o.poll_queues ? 0 : NVME_CQ_IEN) |
                 (uint32_t)q->vector << 16,
    };
    rc = nvd_exec(d, 0, &cmd, NULL, NULL);
    if (rc != 0)
        return rc;
    cmd = (struct nvme_sqe){
        .opc = NVME_ADM_CREATE_SQ,
        .prp1 = q->sq_iova,
        .cdw10 = qid | (sq_size - 1) << 16,
        .cdw11 = NVME_SQ_PC | (uint32_t)qid << 16,
    };
    rc = nvd_exec(d, 0, &cmd, NULL, NULL);
    if (rc != 0) {
        cmd = (struct nvme_sqe){ .opc = NVME_ADM_DELETE_CQ, .cdw10 = qid };
        nvd_exec(d, 0, &cmd, NULL, NULL);
        return rc;
    }
    q->live = true;
    return 0;
}

int nvd_delete_qpair(struct nvd *d, uint16_t qid)
{
    struct nvd_queue *q = queue(d, qid);
    struct nvme_sqe cmd = { .opc = NVME_ADM_DELETE_SQ, .cdw10 = qid };
    int rc;

    if (q == NULL || qid == 0 || !q->live)
        return -EINVAL;
    rc = nvd_exec(d, 0, &cmd, NULL, NULL);
    if (rc != 0)
        return rc;
    cmd = (struct nvme_sqe){ .opc = NVME_ADM_DELETE_CQ, .cdw10 = qid };
    rc = nvd_exec(d, 0, &cmd, NULL, NULL);
    q->live = false;
    return rc;
}
