/*
 * admin.c - the admin command set: dispatch, I/O queue creation and
 * deletion with their status codes, Asynchronous Event Request, Abort and
 * Keep Alive.  Identify, features and logs have files of their own.
 *
 * Runs with the controller lock held, on whichever thread processes the
 * admin SQ (the context thread with trapped doorbells, the poller with
 * polled ones).
 */
#include "nvme.h"

static uint16_t qid_limit(const struct nvme_ctrl *c, bool cq)
{
    uint16_t alloc = (uint16_t)((cq ? c->feat.ncqa : c->feat.nsqa) + 1u);

    return alloc < c->max_ioq ? alloc : (uint16_t)c->max_ioq;
}

static uint16_t create_cq(struct nvme_ctrl *c, const struct nvme_sqe *cmd)
{
    uint16_t qid = cmd->cdw10 & 0xffff, iv = cmd->cdw11 >> 16;
    uint32_t qsize = cmd->cdw10 >> 16;      /* 0's based */

    if (qid == 0 || qid > qid_limit(c, true) || c->cq[qid].valid)
        return NVME_SC_QID_INVALID | NVME_ST_DNR;
    if (qsize == 0 || qsize > NVME_MQES)
        return NVME_SC_QSIZE_INVALID | NVME_ST_DNR;
    /* CAP.CQR: contiguous queues only. */
    if (!(cmd->cdw11 & NVME_CQ_PC))
        return NVME_SC_INVALID_FIELD | NVME_ST_DNR;
    if (iv >= NVME_NR_VECTORS)
        return NVME_SC_INVALID_VECTOR | NVME_ST_DNR;
    if (NVME_CC_IOCQES(c->cc) != 4 || (cmd->prp1 & (c->page_size - 1)))
        return NVME_SC_INVALID_FIELD | NVME_ST_DNR;
    if (cq_create(c, qid, cmd->prp1, qsize + 1, cmd->cdw11 & NVME_CQ_IEN,
                  iv) < 0)
        return NVME_SC_DATA_XFER_ERROR;
    if (cmd->cdw11 & NVME_CQ_IEN)
        ctrl_log(c, "CQ %u: %u entries, irq vector %u", qid, qsize + 1, iv);
    else
        ctrl_log(c, "CQ %u: %u entries, no interrupts", qid, qsize + 1);
    return NVME_SC_SUCCESS;
}

static uint16_t create_sq(struct nvme_ctrl *c, const struct nvme_sqe *cmd)
{
    uint16_t qid = cmd->cdw10 & 0xffff, cqid = cmd->cdw11 >> 16;
    uint32_t qsize = cmd->cdw10 >> 16;

    if (qid == 0 || qid > qid_limit(c, false) || c->sq[qid].valid)
        return NVME_SC_QID_INVALID | NVME_ST_DNR;
    if (qsize == 0 || qsize > NVME_MQES)
        return NVME_SC_QSIZE_INVALID | NVME_ST_DNR;
    if (cqid == 0 || cqid > c->max_ioq || !c->cq[cqid].valid)
        return NVME_SC_CQ_INVALID | NVME_ST_DNR;
    if (!(cmd->cdw11 & NVME_SQ_PC))
        return NVME_SC_INVALID_FIELD | NVME_ST_DNR;
    if (NVME_CC_IOSQES(c->cc) != 6 || (cmd->prp1 & (c->page_size - 1)))
        return NVME_SC_INVALID_FIELD | NVME_ST_DNR;
    if (sq_create(c, qid, cmd->prp1, qsize + 1, cqid) < 0)
        return NVME_SC_DATA_XFER_ERROR;
    ctrl_log(c, "SQ %u: %u entries, CQ %u", qid, qsize + 1, cqid);
    return NVME_SC_SUCCESS;
}

static uint16_t delete_sq(struct nvme_ctrl *c, const struct nvme_sqe *cmd)
{
    uint16_t qid = cmd->cdw10 & 0xffff;

    if (qid == 0 || qid > c->max_ioq || !c->sq[qid].valid)
        return NVME_SC_QID_INVALID | NVME_ST_DNR;
    /* Commands complete before the next is fetched, so nothing of this
     * SQ is in flight and none needs "aborted due to SQ deletion". */
    sq_delete(c, qid);
    return NVME_SC_SUCCESS;
}

static uint16_t delete_cq(struct nvme_ctrl *c, const struct nvme_sqe *cmd)
{
    uint16_t qid = cmd->cdw10 & 0xffff;

    if (qid == 0 || qid > c->max_ioq || !c->cq[qid].valid)
        return NVME_SC_QID_INVALID | NVME_ST_DNR;
    if (c->cq[qid].nr_sqs > 0)
        return NVME_SC_INVALID_QUEUE_DELETION | NVME_ST_DNR;
    cq_delete(c, qid);
    return NVME_SC_SUCCESS;
}

/* Held until an event comes (log.c; sq_process() delivers any already
 * queued right after); never completed by a reset. */
static uint16_t aer(struct nvme_ctrl *c, const struct nvme_sqe *cmd)
{
    if (c->nr_aer > NVME_AERL)
        return NVME_SC_AER_LIMIT | NVME_ST_DNR;
    c->aer_cid[c->nr_aer++] = cmd->cid;
    return NVME_NO_COMPLETION;
}

uint16_t admin_exec(struct nvme_ctrl *c, struct nvme_sq *sq,
                    const struct nvme_sqe *cmd, uint32_t *dw0)
{
    (void)sq;
    *dw0 = 0;
    /* No fused commands, no SGLs. */
    if (NVME_SQE_FUSE(cmd->flags) || NVME_SQE_PSDT(cmd->flags))
        return NVME_SC_INVALID_FIELD | NVME_ST_DNR;
    switch (cmd->opc) {
    case NVME_ADM_DELETE_SQ:
        return delete_sq(c, cmd);
    case NVME_ADM_CREATE_SQ:
        return create_sq(c, cmd);
    case NVME_ADM_GET_LOG:
        return log_get_page(c, cmd);
    case NVME_ADM_DELETE_CQ:
        return delete_cq(c, cmd);
    case NVME_ADM_CREATE_CQ:
        return create_cq(c, cmd);
    case NVME_ADM_IDENTIFY:
        return identify(c, cmd);
    case NVME_ADM_ABORT:
        /* Commands run to completion as they are fetched: by the time
         * an Abort is seen its target is done.  DW0 bit 0: not aborted. */
        *dw0 = 1;
        return NVME_SC_SUCCESS;
    case NVME_ADM_SET_FEATURES:
        return features_set(c, cmd, dw0);
    case NVME_ADM_GET_FEATURES:
        return features_get(c, cmd, dw0);
    case NVME_ADM_AER:
        return aer(c, cmd);
    case NVME_ADM_KEEP_ALIVE:
        return NVME_SC_SUCCESS;
    default:
        ctrl_log(c, "admin opcode %#x not supported", cmd->opc);
        return NVME_SC_INVALID_OPCODE | NVME_ST_DNR;
    }
}
