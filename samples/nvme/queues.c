/*
 * queues.c - submission and completion queues: their guest memory,
 * doorbells, fetching commands and posting completions.
 *
 * Queue memory is translated when the queue is created, with
 * mu_dma_get(): the reference keeps the region mapped and is put when the
 * queue is deleted or the client unmaps its memory (dmacb.c).  An unmap
 * does not end the queue: clients unmap guest RAM and map it back at once
 * (QEMU does when the guest changes its memory layout, e.g. SeaBIOS making
 * its ROM read-only), so the queue is only marked stale and translated
 * again when next used.  Only an access to memory that is still unmapped
 * then fails, and that is Controller Fatal Status (the callers of
 * qmem_ptr/qmem_copy): the host resets the controller.  A queue in a
 * region without an fd is still served, through
 * mu_dma_read()/mu_dma_write() for each entry.
 *
 * Every command completes before the next is fetched (AER excepted), so a
 * command is fetched only when its CQ has room for its completion: a full
 * CQ stalls the SQs that feed it until the host moves the CQ head.
 *
 * Called with the controller lock held, or (the I/O queues' fetching,
 * completions and doorbells) on an I/O pass of the poller that owns the
 * queue, which holds its own mutex only (poller.c).  Creating and deleting
 * queues always holds the controller lock: no I/O pass runs meanwhile.
 */
#include <errno.h>
#include <limits.h>
#include <string.h>

#include "nvme.h"

/* ---------------- queue memory ---------------- */

/* Translate m's range: references into fd-backed regions, or messages
 * for a region without an fd. */
static int qmem_resolve(struct nvme_ctrl *c, struct nvme_qmem *m)
{
    int n;

    m->nr_sg = 0;
    m->direct = false;
    n = mu_dma_get(c->ctx, m->iova, m->len, m->prot, m->sg, QMEM_MAX_SG);
    if (n == -EFAULT) {
        /* No fd: reachable by messages only.  Check it is mapped at all
         * by reading its first byte. */
        uint8_t probe;

        n = ctrl_dma(c, m->iova, &probe, 1, false);
        /* On the context thread (a migration's remap) muser cannot ask
         * the client: -EFAULT already said the memory is there. */
        if (n < 0 && n != -EDEADLK)
            return n;
        m->stale = false;
        return 0;
    }
    if (n < 0)
        return n;
    m->nr_sg = (unsigned)n;
    m->direct = true;
    m->stale = false;
    return 0;
}

int qmem_map(struct nvme_ctrl *c, struct nvme_qmem *m, uint64_t iova,
             size_t len, unsigned prot)
{
    int rc;

    memset(m, 0, sizeof(*m));
    m->iova = iova;
    m->len = len;
    m->prot = prot;
    rc = qmem_resolve(c, m);
    if (rc < 0)
        m->len = 0;
    return rc;
}

static void qmem_unmap(struct nvme_ctrl *c, struct nvme_qmem *m)
{
    if (m->nr_sg > 0)
        mu_dma_put(c->ctx, m->sg, m->nr_sg);
    m->nr_sg = 0;
    m->direct = false;
    m->stale = false;
    m->len = 0;
}

struct nvme_qmem *queue_mem(struct nvme_ctrl *c, unsigned index)
{
    return index & 1 ? &c->cq[index / 2].mem : &c->sq[index / 2].mem;
}

void queue_mem_drop(struct nvme_ctrl *c, unsigned index)
{
    qmem_unmap(c, queue_mem(c, index));
    /* Seen by a poller that left the lock for a DMA message (ctrl_dma):
     * its command is abandoned only if it is this queue's. */
    c->q_gone[index] = ++c->q_epoch;
}

void qmem_release(struct nvme_ctrl *c, struct nvme_qmem *m)
{
    if (m->nr_sg > 0)
        mu_dma_put(c->ctx, m->sg, m->nr_sg);
    m->nr_sg = 0;
    m->direct = false;
    m->stale = true;
}

/* Translate again if an unmap left m stale; false if it cannot be. */
static bool qmem_usable(struct nvme_ctrl *c, struct nvme_qmem *m)
{
    int rc;

    if (m->len == 0)
        return false;   /* deleted, or lost with the client */
    if (!m->stale)
        return true;
    rc = qmem_resolve(c, m);
    if (rc < 0) {
        ctrl_log(c, "queue memory at %#llx+%#zx: %s",
                 (unsigned long long)m->iova, m->len, strerror(-rc));
        return false;
    }
    return true;
}

bool qmem_in_region(const struct nvme_qmem *m, const mu_dma_region_t *r)
{
    const struct mu_dma_info *info = mu_dma_region_info(r);

    if (m->len == 0)
        return false;
    for (unsigned i = 0; i < m->nr_sg; i++) {
        if (m->sg[i].region == r)
            return true;
    }
    /* fd-less queues hold nothing: compare addresses. */
    return !m->direct && m->iova < info->iova + info->size &&
           info->iova < m->iova + m->len;
}

/* Copy between the queue and buf at byte offset off, piece by piece. */
static int qmem_copy(struct nvme_ctrl *c, struct nvme_qmem *m, size_t off,
                     void *buf, size_t len, bool to_guest)
{
    uint8_t *p = buf;

    if (!qmem_usable(c, m))
        return -EFAULT;     /* the memory went away (dmacb.c) */
    if (!m->direct)
        return ctrl_dma(c, m->iova + off, buf, len, to_guest);
    for (unsigned i = 0; i < m->nr_sg && len > 0; i++) {
        size_t n;

        if (off >= m->sg[i].len) {
            off -= m->sg[i].len;
            continue;
        }
        n = m->sg[i].len - off;
        if (n > len)
            n = len;
        if (to_guest)
            memcpy((uint8_t *)m->sg[i].addr + off, p, n);
        else
            memcpy(p, (uint8_t *)m->sg[i].addr + off, n);
        p += n;
        len -= n;
        off = 0;
    }
    return len == 0 ? 0 : -EFAULT;
}

/* Host address of a whole entry, or NULL if it is not directly mapped or
 * straddles two pieces. */
static void *qmem_ptr(struct nvme_ctrl *c, struct nvme_qmem *m, size_t off,
                      size_t len)
{
    if (!qmem_usable(c, m) || !m->direct)
        return NULL;
    for (unsigned i = 0; i < m->nr_sg; i++) {
        if (off < m->sg[i].len)
            return off + len <= m->sg[i].len
                       ? (uint8_t *)m->sg[i].addr + off : NULL;
        off -= m->sg[i].len;
    }
    return NULL;
}

/* ---------------- create / delete ---------------- */

void db_page_clear(struct nvme_ctrl *c, unsigned index)
{
    /* A new queue starts at 0 whatever the page held before. */
    if (c->db != NULL)
        __atomic_store_n(&c->db[index], 0, __ATOMIC_RELAXED);
}

/* After a create or delete of queue qid. */
static void q_top_update(struct nvme_ctrl *c, unsigned qid)
{
    if (qid >= c->q_top && (c->sq[qid].valid || c->cq[qid].valid))
        c->q_top = qid + 1;
    while (c->q_top > 0 && !c->sq[c->q_top - 1].valid &&
           !c->cq[c->q_top - 1].valid)
        c->q_top--;
}

int cq_create(struct nvme_ctrl *c, uint16_t qid, uint64_t iova, uint32_t size,
              bool ien, uint16_t iv)
{
    struct nvme_cq *cq = &c->cq[qid];
    int rc;

    rc = qmem_map(c, &cq->mem, iova, (size_t)size * NVME_CQE_SIZE,
                  MU_DMA_WRITE);
    if (rc < 0) {
        ctrl_log(c, "CQ %u at %#llx: %s", qid, (unsigned long long)iova,
                 strerror(-rc));
        return rc;
    }
    cq->qid = qid;
    cq->size = size;
    cq->head = cq->tail = 0;
    cq->phase = 1;
    cq->ien = ien;
    cq->iv = iv;
    cq->nr_sqs = 0;
    cq->stalled = false;
    cq->irq_due = 0;
    cq->bad_head = UINT32_MAX;
    cq->valid = true;
    q_top_update(c, qid);
    db_page_clear(c, 2u * qid + 1);
    if (qid != 0)
        c->nr_ioq_live++;
    return 0;
}

int sq_create(struct nvme_ctrl *c, uint16_t qid, uint64_t iova, uint32_t size,
              uint16_t cqid)
{
    struct nvme_sq *sq = &c->sq[qid];
    int rc;

    rc = qmem_map(c, &sq->mem, iova, (size_t)size * NVME_SQE_SIZE,
                  MU_DMA_READ);
    if (rc < 0) {
        ctrl_log(c, "SQ %u at %#llx: %s", qid, (unsigned long long)iova,
                 strerror(-rc));
        return rc;
    }
    sq->qid = qid;
    sq->cqid = cqid;
    sq->size = size;
    sq->head = sq->tail = 0;
    sq->stalled = false;
    sq->bad_tail = UINT32_MAX;
    sq->valid = true;
    q_top_update(c, qid);
    c->cq[cqid].nr_sqs++;
    db_page_clear(c, 2u * qid);
    if (qid != 0)
        c->nr_ioq_live++;
    return 0;
}

void sq_delete(struct nvme_ctrl *c, uint16_t qid)
{
    struct nvme_sq *sq = &c->sq[qid];

    if (!sq->valid)
        return;
    /* Nothing is in flight: commands complete before the next fetch
     * (one waiting for a DMA message is cancelled: queue_mem_drop). */
    queue_mem_drop(c, 2u * qid);
    sq->valid = false;
    q_top_update(c, qid);
    c->cq[sq->cqid].nr_sqs--;
    db_page_clear(c, 2u * qid);
    if (qid != 0)
        c->nr_ioq_live--;
}

void cq_delete(struct nvme_ctrl *c, uint16_t qid)
{
    struct nvme_cq *cq = &c->cq[qid];

    if (!cq->valid)
        return;
    queue_mem_drop(c, 2u * qid + 1);
    cq->valid = false;
    q_top_update(c, qid);
    cq->irq_due = 0;
    db_page_clear(c, 2u * qid + 1);
    if (qid != 0)
        c->nr_ioq_live--;
}

void queues_delete_all(struct nvme_ctrl *c)
{
    for (unsigned q = 0; q < NVME_NR_QUEUES; q++)
        sq_delete(c, (uint16_t)q);
    for (unsigned q = 0; q < NVME_NR_QUEUES; q++)
        cq_delete(c, (uint16_t)q);
    c->nr_ioq_live = 0;
}

/* ---------------- completions ---------------- */

bool cq_full(const struct nvme_cq *cq)
{
    return (cq->tail + 1) % cq->size == cq->head;
}

void cq_post(struct nvme_ctrl *c, struct nvme_cq *cq, uint32_t dw0,
             uint16_t sqhd, uint16_t sqid, uint16_t cid, uint16_t status)
{
    struct nvme_cqe e = {
        .dw0 = dw0,
        .sqhd = sqhd,
        .sqid = sqid,
        .cid = cid,
        .status = (uint16_t)(status << 1 | cq->phase),
    };
    size_t off = (size_t)cq->tail * NVME_CQE_SIZE;
    uint8_t *p = qmem_ptr(c, &cq->mem, off, sizeof(e));

    if (p != NULL) {
        uint32_t dw3;

        /* The host trusts the entry once it sees the new phase: the
         * phase-carrying dword goes last, after a release barrier. */
        memcpy(p, &e, 12);
        memcpy(&dw3, (uint8_t *)&e + 12, sizeof(dw3));
        __atomic_store_n((uint32_t *)(p + 12), dw3, __ATOMIC_RELEASE);
    } else if (qmem_copy(c, &cq->mem, off, &e, sizeof(e), true) < 0) {
        if (!ctrl_pass(c)->cancelled && !ctrl_pass(c)->mig_stopped)
            ctrl_fatal(c, "cannot write a completion");
        return;
    }
    if (++cq->tail == cq->size) {
        cq->tail = 0;
        cq->phase ^= 1;
    }
    cq->irq_due++;
}

/* ---------------- fetching ---------------- */

static bool fetch(struct nvme_ctrl *c, struct nvme_sq *sq,
                  struct nvme_sqe *cmd)
{
    size_t off = (size_t)sq->head * NVME_SQE_SIZE;
    const void *p = qmem_ptr(c, &sq->mem, off, sizeof(*cmd));

    /*
     * No fence needed to see the entries the host wrote before its tail:
     * a polled tail is read with an acquire load (poller.c), and a trapped
     * one arrives in a message, after the system calls that carried it.
     */
    if (p != NULL) {
        memcpy(cmd, p, sizeof(*cmd));
        return true;
    }
    if (qmem_copy(c, &sq->mem, off, cmd, sizeof(*cmd), false) < 0) {
        if (!ctrl_pass(c)->cancelled && !ctrl_pass(c)->mig_stopped)
            ctrl_fatal(c, "cannot read a submission");
        return false;
    }
    if (ctrl_pass(c)->mig_stopped)
        return false;       /* fetched as it stopped: fetch it again */
    return true;
}

unsigned sq_process(struct nvme_ctrl *c, struct nvme_sq *sq, unsigned budget)
{
    struct nvme_cq *cq = &c->cq[sq->cqid];
    struct nvme_pass *pass = ctrl_pass(c);
    struct nvme_sq *outer_sq = pass->sq;
    struct nvme_cq *outer_cq = pass->cq;
    unsigned done = 0;
    /* Busy time (SMART, in minutes) by the batch, not by the command:
     * two clock reads per 4 KiB read showed in profiles. */
    uint64_t t0;

    if (ctrl_defer(c)) {
        sq->stalled = false;    /* the poller runs it (poller.c) */
        return 0;
    }
    t0 = sq->qid != 0 ? now_ns() : 0;
    sq->stalled = false;
    /* What a DMA wait of these commands is cancelled by (ctrl_dma). */
    pass->sq = sq;
    pass->cq = cq;
    while (sq->valid && sq->head != sq->tail && done < budget &&
           ctrl_running(c)) {
        struct nvme_sqe cmd;
        uint32_t dw0 = 0, head0 = sq->head, tail0;
        uint16_t st;

        if (cq_full(cq)) {
            sq->stalled = cq->stalled = true;
            break;
        }
        if (!fetch(c, sq, &cmd))
            break;
        sq->head = (sq->head + 1) % sq->size;
        done++;
        if (sq->qid != 0) {
            st = io_exec(c, &cmd, &dw0);
        } else {
            c->in_admin_cmd = true;
            st = admin_exec(c, sq, &cmd, &dw0);
            c->in_admin_cmd = false;
        }
        if (st != NVME_NO_COMPLETION) {
            if (st != NVME_SC_SUCCESS)
                log_error(c, sq->qid, &cmd, st);
            /* The command may have taken the controller down, or the
             * context thread may have torn the queues down while the
             * poller waited for a DMA reply (ctrl_dma). */
            if (pass->mig_stopped && !pass->cancelled) {
                sq->head = head0;   /* interrupted: it runs again */
                break;
            }
            if (!cq->valid || !ctrl_running(c) || pass->cancelled)
                break;
            tail0 = cq->tail;
            cq_post(c, cq, dw0, (uint16_t)sq->head, sq->qid, cmd.cid, st);
            if (pass->mig_stopped && cq->tail == tail0) {
                sq->head = head0;   /* its completion could not go */
                break;
            }
            if (pass->mig_stopped)
                break;
        }
        /* Events the command raised or made deliverable (AER, log read,
         * thresholds) go out after its own completion. */
        if (sq->qid == 0)
            aen_deliver(c);
    }
    pass->sq = outer_sq;
    pass->cq = outer_cq;
    if (cq->valid)
        intr_cq_flush(c, cq);
    if (sq->qid != 0)
        ctrl_io_stats(c)->busy_ns += now_ns() - t0;
    return done;
}

unsigned sq_process_all(struct nvme_ctrl *c)
{
    unsigned done = 0;

    if (ctrl_defer(c))
        return 0;
    for (unsigned q = 0; q < c->q_top; q++) {
        if (c->sq[q].valid && c->sq[q].head != c->sq[q].tail)
            done += sq_process(c, &c->sq[q], UINT_MAX);
    }
    return done;
}

/* ---------------- doorbells ---------------- */

static void cq_head_write(struct nvme_ctrl *c, struct nvme_cq *cq,
                          uint32_t head)
{
    uint32_t used = (cq->tail + cq->size - cq->head) % cq->size;
    uint32_t adv = (head + cq->size - cq->head) % cq->size;

    if (adv > used) {
        /* Consuming entries never posted. */
        ctrl_log(c, "CQ %u head %u beyond tail %u", cq->qid, head, cq->tail);
        cq->bad_head = head;
        aen_post(c, NVME_AER_TYPE_ERROR, NVME_AER_ERR_INVALID_DB_VALUE,
                 NVME_LOG_ERROR);
        return;
    }
    cq->head = head;
    cq->bad_head = UINT32_MAX;
    if (cq->stalled) {
        cq->stalled = false;
        for (unsigned q = 0; q <= c->max_ioq; q++) {
            struct nvme_sq *sq = &c->sq[q];

            if (sq->valid && sq->cqid == cq->qid && sq->stalled)
                sq_process(c, sq, UINT_MAX);
        }
    }
    if (cq->qid == 0)
        aen_deliver(c);
    intr_cq_consumed(c, cq);
}

void db_write(struct nvme_ctrl *c, unsigned index, uint32_t value)
{
    unsigned qid = index / 2;
    bool is_cq = index & 1;
    uint32_t size;

    if (!ctrl_ready(c)) {
        ctrl_log(c, "doorbell %u written while not ready", index);
        return;
    }
    if (qid > c->max_ioq || !(is_cq ? c->cq[qid].valid : c->sq[qid].valid)) {
        ctrl_log(c, "doorbell of missing %s %u", is_cq ? "CQ" : "SQ", qid);
        aen_post(c, NVME_AER_TYPE_ERROR, NVME_AER_ERR_INVALID_DB,
                 NVME_LOG_ERROR);
        return;
    }
    size = is_cq ? c->cq[qid].size : c->sq[qid].size;
    if (value >= size) {
        ctrl_log(c, "%s %u doorbell %u >= size %u", is_cq ? "CQ" : "SQ",
                 qid, value, size);
        /* Polled mode sees the value on every pass: report it once. */
        if (is_cq)
            c->cq[qid].bad_head = value;
        else
            c->sq[qid].bad_tail = value;
        aen_post(c, NVME_AER_TYPE_ERROR, NVME_AER_ERR_INVALID_DB_VALUE,
                 NVME_LOG_ERROR);
        return;
    }
    if (is_cq) {
        cq_head_write(c, &c->cq[qid], value);
        return;
    }
    c->sq[qid].tail = value;
    c->sq[qid].bad_tail = UINT32_MAX;
    sq_process(c, &c->sq[qid], UINT_MAX);
}
