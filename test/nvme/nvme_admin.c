/*
 * nvme_admin.c - admin side: error status codes (admin, queues, I/O), the
 * AER limit, features, logs, async events (temperature, doorbells),
 * interrupt coalescing, and a full completion queue.
 */
#include <string.h>
#include <unistd.h>

#include "test_nvme.h"

/* ---------------- errors ---------------- */

void test_admin_errors(void **state)
{
    struct nvme_sqe cmd = { .opc = 0xc1 };      /* vendor specific */
    struct nvme_cqe cqe;
    uint32_t dw0;

    (void)state;
    assert_status(nvd_exec(E->d, 0, &cmd, NULL, NULL), NVME_SC_INVALID_OPCODE);
    cmd = (struct nvme_sqe){ .opc = NVME_ADM_DBBUF };   /* not advertised */
    assert_status(nvd_exec(E->d, 0, &cmd, NULL, NULL), NVME_SC_INVALID_OPCODE);
    /* ...and the controller keeps working. */
    assert_status(nvd_identify(E->d, NVME_CNS_CTRL, 0, NULL), 0);
    cmd = (struct nvme_sqe){ .opc = NVME_ADM_IDENTIFY, .flags = 0x40,
                             .cdw10 = NVME_CNS_CTRL };     /* SGL */
    assert_status(nvd_exec(E->d, 0, &cmd, NULL, NULL), NVME_SC_INVALID_FIELD);
    assert_status(nvd_get_log(E->d, 0x70, 0, NULL, 512),
                  NVME_SC_INVALID_LOG_PAGE);
    assert_status(nvd_get_log(E->d, NVME_LOG_SMART, 1, NULL, 512),
                  NVME_SC_INVALID_FIELD);
    assert_status(nvd_get_features(E->d, 0x7f, 0, 0, NULL),
                  NVME_SC_INVALID_FIELD);
    cmd = (struct nvme_sqe){ .opc = NVME_ADM_SET_FEATURES,
                             .cdw10 = NVME_FEAT_ARBITRATION | 1u << 31 };
    assert_status(nvd_exec(E->d, 0, &cmd, NULL, NULL),
                  NVME_SC_FEATURE_NOT_SAVEABLE);
    assert_status(nvd_set_features(E->d, NVME_FEAT_NUM_QUEUES, 0xffff, NULL),
                  NVME_SC_INVALID_FIELD);
    assert_status(nvd_set_features(E->d, NVME_FEAT_NUM_QUEUES, 0, NULL),
                  NVME_SC_CMD_SEQ_ERROR);   /* I/O queues exist */
    assert_status(nvd_get_features(E->d, NVME_FEAT_NUM_QUEUES, 0, 0, &dw0), 0);
    assert_int_equal(dw0, 0x00010001);
    cmd = (struct nvme_sqe){ .opc = NVME_ADM_ABORT, .cdw10 = 1 | 5u << 16 };
    assert_status(nvd_exec(E->d, 0, &cmd, NULL, &cqe), 0);
    assert_int_equal(cqe.dw0 & 1, 1);       /* not aborted */
    cmd = (struct nvme_sqe){ .opc = NVME_ADM_KEEP_ALIVE };
    assert_status(nvd_exec(E->d, 0, &cmd, NULL, NULL), 0);
}

static int create_q(uint8_t opc, uint16_t qid, uint32_t qsize, uint32_t dw11,
                    uint64_t base)
{
    struct nvme_sqe cmd = { .opc = opc, .prp1 = base,
                            .cdw10 = qid | (qsize - 1) << 16, .cdw11 = dw11 };

    return nvd_exec(E->d, 0, &cmd, NULL, NULL);
}

static int delete_q(uint8_t opc, uint16_t qid)
{
    struct nvme_sqe cmd = { .opc = opc, .cdw10 = qid };

    return nvd_exec(E->d, 0, &cmd, NULL, NULL);
}

void test_queue_errors(void **state)
{
    const uint32_t cq_ok = NVME_CQ_PC | NVME_CQ_IEN;
    uint64_t mem = E->pool + MIB;
    const uint8_t C = NVME_ADM_CREATE_CQ, S = NVME_ADM_CREATE_SQ;

    (void)state;
    assert_status(create_q(C, 0, 16, cq_ok, mem), NVME_SC_QID_INVALID);
    assert_status(create_q(C, 1, 16, cq_ok, mem), NVME_SC_QID_INVALID);
    assert_status(create_q(C, 3, 16, cq_ok, mem), NVME_SC_QID_INVALID);
    assert_int_equal(nvd_delete_qpair(E->d, 2), 0);
    assert_status(create_q(C, 2, 1, cq_ok, mem), NVME_SC_QSIZE_INVALID);
    assert_status(create_q(C, 2, 1025, cq_ok, mem), NVME_SC_QSIZE_INVALID);
    assert_status(create_q(C, 2, 16, NVME_CQ_IEN, mem), NVME_SC_INVALID_FIELD);
    assert_status(create_q(C, 2, 16, cq_ok | 200u << 16, mem),
                  NVME_SC_INVALID_VECTOR);
    assert_status(create_q(C, 2, 16, cq_ok, mem + 64), NVME_SC_INVALID_FIELD);
    assert_status(create_q(C, 2, 16, cq_ok, 0x10000),
                  NVME_SC_DATA_XFER_ERROR);
    assert_status(create_q(S, 2, 16, NVME_SQ_PC, mem), NVME_SC_CQ_INVALID);
    assert_status(create_q(S, 2, 16, NVME_SQ_PC | 2u << 16, mem),
                  NVME_SC_CQ_INVALID);
    assert_status(create_q(S, 1, 16, NVME_SQ_PC | 1u << 16, mem),
                  NVME_SC_QID_INVALID);
    assert_status(create_q(S, 2, 1, NVME_SQ_PC | 1u << 16, mem),
                  NVME_SC_QSIZE_INVALID);
    assert_status(delete_q(NVME_ADM_DELETE_CQ, 1),
                  NVME_SC_INVALID_QUEUE_DELETION);
    assert_status(delete_q(NVME_ADM_DELETE_CQ, 0), NVME_SC_QID_INVALID);
    assert_status(delete_q(NVME_ADM_DELETE_SQ, 0), NVME_SC_QID_INVALID);
    assert_status(delete_q(NVME_ADM_DELETE_SQ, 2), NVME_SC_QID_INVALID);
    assert_status(delete_q(NVME_ADM_DELETE_CQ, 2), NVME_SC_QID_INVALID);
    assert_int_equal(nvd_create_qpair(E->d, 2, 64, 64), 0);
    assert_status(rw(NVME_IO_READ, 1, 0, blk(), E->check), 0);
}

void test_io_errors(void **state)
{
    struct nvme_sqe cmd = { .opc = 0x05, .nsid = 1 };   /* Compare */
    uint64_t nsze = E->d->ns[0].nsze;

    (void)state;
    assert_status(nvd_exec(E->d, 1, &cmd, NULL, NULL), NVME_SC_INVALID_OPCODE);
    assert_status(rw(NVME_IO_READ, 0, 0, blk(), E->check), NVME_SC_INVALID_NS);
    assert_status(rw(NVME_IO_READ, E->nr_ns + 1, 0, blk(), E->check),
                  NVME_SC_INVALID_NS);
    assert_status(rw(NVME_IO_WRITE, 1, nsze - 1, 2 * blk(), E->check),
                  NVME_SC_LBA_RANGE);
    assert_status(rw(NVME_IO_READ, 1, nsze, blk(), E->check),
                  NVME_SC_LBA_RANGE);
    assert_status(rw(NVME_IO_READ, 1, 1ull << 40, blk(), E->check),
                  NVME_SC_LBA_RANGE);
    assert_status(rw(NVME_IO_READ, 1, 0, MAX_XFER + blk(), E->check),
                  NVME_SC_INVALID_FIELD);     /* beyond MDTS */
    cmd = (struct nvme_sqe){ .opc = NVME_IO_READ, .nsid = 1, .flags = 0x40,
                             .prp1 = E->check };
    assert_status(nvd_exec(E->d, 1, &cmd, NULL, NULL), NVME_SC_INVALID_FIELD);
    assert_status(rw(NVME_IO_READ, 1, nsze - 1, blk(), E->check), 0);
}

/* Four AERs may wait (AERL 3); a fifth is refused. */
void test_aer_limit(void **state)
{
    struct nvme_sqe cmd = { .opc = NVME_ADM_AER };
    struct nvme_error_entry log[16];

    (void)state;
    while (E->d->nr_aer < 4)
        assert_int_equal(nvd_aer_submit(E->d), 0);
    assert_status(nvd_exec(E->d, 0, &cmd, NULL, NULL), NVME_SC_AER_LIMIT);
    /* The error log has it first, and counts up. */
    assert_status(nvd_get_log(E->d, NVME_LOG_ERROR, 0, log, sizeof(log)), 0);
    assert_int_equal(log[0].sqid, 0);
    assert_int_equal(NVME_ST_CODE(log[0].status >> 1), NVME_SC_AER_LIMIT);
    assert_true(log[0].error_count > log[1].error_count);
    assert_true(log[1].error_count > 0);
}

/* ---------------- features, logs, events ---------------- */

/* Wait for the async event after the 'before'th (it may have come with
 * the completion of what caused it); keep an AER outstanding, as Linux
 * does. */
static uint32_t wait_aen(unsigned before)
{
    struct nvme_cqe e;

    for (int i = 0; i < 1000 * slow && E->d->nr_aen == before; i++)
        nvd_reap(E->d, 0, &e, 1, 5);
    assert_int_equal(E->d->nr_aen, before + 1);
    if (E->d->nr_aer == 0)
        assert_int_equal(nvd_aer_submit(E->d), 0);
    return E->d->aen[E->d->nr_aen - 1];
}

void test_features(void **state)
{
    uint32_t dw0;

    (void)state;
    assert_status(nvd_get_features(E->d, NVME_FEAT_TEMP_THRESH, 0, 0, &dw0), 0);
    assert_int_equal(dw0, 343);
    assert_status(nvd_get_features(E->d, NVME_FEAT_TEMP_THRESH, 1, 0, &dw0), 0);
    assert_int_equal(dw0, 343);
    assert_status(nvd_get_features(E->d, NVME_FEAT_TEMP_THRESH, 3, 0, &dw0), 0);
    assert_int_equal(dw0 & 0x4, 0x4);   /* changeable */
    assert_status(nvd_get_features(E->d, NVME_FEAT_VOLATILE_WC, 0, 0, &dw0), 0);
    assert_int_equal(dw0, 1);
    /* Write-through for a while: I/O still right. */
    assert_status(nvd_set_features(E->d, NVME_FEAT_VOLATILE_WC, 0, NULL), 0);
    assert_status(nvd_get_features(E->d, NVME_FEAT_VOLATILE_WC, 0, 0, &dw0), 0);
    assert_int_equal(dw0, 0);
    fill(va(E->pool), 8 * blk());
    assert_status(rw(NVME_IO_WRITE, 1, 0, 8 * blk(), E->pool), 0);
    memcpy(E->shadow, va(E->pool), 8 * blk());
    assert_status(nvd_set_features(E->d, NVME_FEAT_VOLATILE_WC, 1, NULL), 0);
    assert_status(nvd_set_features(E->d, NVME_FEAT_IRQ_COALESCE, 0x0a07, NULL), 0);
    assert_status(nvd_get_features(E->d, NVME_FEAT_IRQ_COALESCE, 0, 0, &dw0), 0);
    assert_int_equal(dw0, 0x0a07);
    assert_status(nvd_set_features(E->d, NVME_FEAT_IRQ_COALESCE, 0, NULL), 0);
    assert_status(nvd_get_features(E->d, NVME_FEAT_IRQ_CONFIG, 0, 1, &dw0), 0);
    assert_int_equal(dw0, 1);
    assert_status(nvd_set_features(E->d, NVME_FEAT_IRQ_CONFIG, 200, NULL),
                  NVME_SC_INVALID_FIELD);
    assert_status(nvd_set_features(E->d, NVME_FEAT_POWER_MGMT, 1, NULL),
                  NVME_SC_INVALID_FIELD);
    assert_status(nvd_set_features(E->d, NVME_FEAT_ASYNC_EVENT, 0x2, NULL), 0);
    assert_status(nvd_get_features(E->d, NVME_FEAT_ASYNC_EVENT, 0, 0, &dw0), 0);
    assert_int_equal(dw0, 0x2);
}

void test_temperature_event(void **state)
{
    uint8_t smart[512];
    uint32_t aen;
    unsigned mark;

    (void)state;
    assert_status(nvd_set_features(E->d, NVME_FEAT_ASYNC_EVENT, 0x2, NULL), 0);
    if (E->d->nr_aer == 0)
        assert_int_equal(nvd_aer_submit(E->d), 0);
    /* Over-temperature threshold below the 313 K we run at. */
    mark = E->d->nr_aen;
    assert_status(nvd_set_features(E->d, NVME_FEAT_TEMP_THRESH, 300, NULL), 0);
    aen = wait_aen(mark);
    assert_int_equal(aen, NVME_AER_DW0(NVME_AER_TYPE_SMART,
                                       NVME_AER_SMART_TEMP, NVME_LOG_SMART));
    assert_status(nvd_get_log(E->d, NVME_LOG_SMART, 0xffffffff, smart, 512), 0);
    assert_int_equal(smart[0], NVME_SMART_WARN_TEMP);
    assert_int_equal(smart[1] | smart[2] << 8, 313);
    /* The log read (RAE clear) re-armed the event: under-temperature. */
    assert_status(nvd_set_features(E->d, NVME_FEAT_TEMP_THRESH, 343, NULL), 0);
    assert_status(nvd_get_log(E->d, NVME_LOG_SMART, 0xffffffff, smart, 512), 0);
    assert_int_equal(smart[0], 0);
    mark = E->d->nr_aen;
    assert_status(nvd_set_features(E->d, NVME_FEAT_TEMP_THRESH,
                                   350 | 1u << 20, NULL), 0);
    aen = wait_aen(mark);
    assert_int_equal(aen & 0xffff, NVME_AER_TYPE_SMART | NVME_AER_SMART_TEMP << 8);
    assert_status(nvd_set_features(E->d, NVME_FEAT_TEMP_THRESH, 0 | 1u << 20,
                                   NULL), 0);
    assert_status(nvd_get_log(E->d, NVME_LOG_SMART, 0xffffffff, smart, 512), 0);
    assert_int_equal(smart[0], 0);
}

void test_doorbell_events(void **state)
{
    struct nvme_error_entry log[16];
    struct nvd_queue *q = &E->d->ioq[1];
    uint32_t aen;
    unsigned mark;

    (void)state;
    /* Reading the error log (RAE clear) unmasks error events. */
    assert_status(nvd_get_log(E->d, NVME_LOG_ERROR, 0, log, sizeof(log)), 0);
    if (E->d->nr_aer == 0)
        assert_int_equal(nvd_aer_submit(E->d), 0);
    mark = E->d->nr_aen;
    assert_int_equal(nvd_doorbell(E->d, 2, 0xfff0), 0);  /* SQ 1, >= size */
    aen = wait_aen(mark);
    assert_int_equal(aen, NVME_AER_DW0(NVME_AER_TYPE_ERROR,
                                       NVME_AER_ERR_INVALID_DB_VALUE,
                                       NVME_LOG_ERROR));
    assert_int_equal(nvd_doorbell(E->d, 2, q->sq_tail), 0);
    assert_status(rw(NVME_IO_READ, 1, 0, blk(), E->check), 0);
    assert_status(nvd_get_log(E->d, NVME_LOG_ERROR, 0, log, sizeof(log)), 0);
    assert_int_equal(log[0].sqid, 0xffff);
    /* A queue that does not exist: the poller never looks there. */
    if (E->db == NVD_DB_POLLED)
        return;
    mark = E->d->nr_aen;
    assert_int_equal(nvd_doorbell(E->d, 2 * 20, 1), 0);
    aen = wait_aen(mark);
    assert_int_equal(aen, NVME_AER_DW0(NVME_AER_TYPE_ERROR,
                                       NVME_AER_ERR_INVALID_DB,
                                       NVME_LOG_ERROR));
    assert_status(nvd_get_log(E->d, NVME_LOG_ERROR, 0, log, sizeof(log)), 0);
}

void test_logs(void **state)
{
    uint8_t page[4096];
    uint32_t eff;

    (void)state;
    assert_status(nvd_get_log(E->d, NVME_LOG_SMART, 0xffffffff, page, 512), 0);
    assert_true(le64_at(page + 32) > 0);    /* data units read */
    assert_true(le64_at(page + 48) > 0);    /* data units written */
    assert_true(le64_at(page + 64) > 0);    /* read commands */
    assert_true(le64_at(page + 80) > 0);    /* write commands */
    assert_true(le64_at(page + 176) > 0);   /* error log entries */
    assert_int_equal(page[3], 100);
    assert_status(nvd_get_log(E->d, NVME_LOG_FW_SLOT, 0, page, 512), 0);
    assert_int_equal(page[0], 1);
    assert_memory_equal(page + 8, "0.1     ", 8);
    assert_status(nvd_get_log(E->d, NVME_LOG_CMD_EFFECTS, 0, page, 4096), 0);
    memcpy(&eff, page + 1024 + 4 * NVME_IO_WRITE, 4);
    assert_int_equal(eff, 0x3);
    memcpy(&eff, page + 1024 + 4 * NVME_IO_READ, 4);
    assert_int_equal(eff, 0x1);
    memcpy(&eff, page + 4 * NVME_ADM_IDENTIFY, 4);
    assert_int_equal(eff, 0x1);
    memcpy(&eff, page + 4 * NVME_ADM_DBBUF, 4);
    assert_int_equal(eff, 0);
}

/* ---------------- interrupts ---------------- */

static void drain(int fd)
{
    uint64_t v;

    while (read(fd, &v, sizeof(v)) == sizeof(v))
        ;
}

/*
 * A round trip through the admin queue: the device handles queues in
 * turn, so whatever it was to do for an I/O command completed before
 * (post, signal or hold the interrupt) is done once this returns.
 */
static void admin_round_trip(void)
{
    uint32_t dw0;

    for (int i = 0; i < 2; i++)     /* two: the poller may be mid-pass */
        assert_status(nvd_get_features(E->d, NVME_FEAT_NUM_QUEUES, 0, 0,
                                       &dw0), 0);
}

/*
 * Coalescing: 8 completions or 25.5 ms, whichever first.  The time is
 * checked one-sided (not before 25.5 ms from before the command was
 * submitted, so from before the device's clock started); "at once" with
 * coalescing off as "signalled before a later admin round trip ends".
 */
void test_coalescing(void **state)
{
    int fd = E->d->irqfd[1];
    const int t = 1000 * slow;
    uint64_t t0;

    (void)state;
    drain(fd);
    assert_status(rw(NVME_IO_READ, 1, 0, blk(), E->check), 0);
    assert_true(muc_eventfd_wait(fd, t) > 0);
    assert_status(nvd_set_features(E->d, NVME_FEAT_IRQ_COALESCE,
                                   7 | 255u << 8, NULL), 0);
    drain(fd);
    t0 = mono_ns();
    assert_status(rw(NVME_IO_READ, 1, 0, blk(), E->check), 0);
    assert_true(muc_eventfd_wait(fd, t) > 0);   /* the time limit */
    assert_true(mono_ns() - t0 >= 25500000ull);
    for (unsigned i = 0; i < 8; i++)
        assert_true(nvd_submit_rw(E->d, 1, NVME_IO_READ, 1, i, 1,
                                  E->check + i * blk(), blk()) >= 0);
    assert_int_equal(nvd_ring(E->d, 1), 0);
    for (unsigned got = 0; got < 8;) {
        struct nvme_cqe cqe[8];
        int n = nvd_reap(E->d, 1, cqe, 8, E->d->o.timeout_ms);

        assert_true(n > 0);
        got += (unsigned)n;
    }
    assert_true(muc_eventfd_wait(fd, t) > 0);
    /* Coalescing disabled for vector 1: at once again. */
    assert_status(nvd_set_features(E->d, NVME_FEAT_IRQ_CONFIG, 1 | 1u << 16,
                                   NULL), 0);
    drain(fd);
    assert_status(rw(NVME_IO_READ, 1, 0, blk(), E->check), 0);
    admin_round_trip();
    assert_true(muc_eventfd_wait(fd, 0) > 0);
    assert_status(nvd_set_features(E->d, NVME_FEAT_IRQ_CONFIG, 1, NULL), 0);
    assert_status(nvd_set_features(E->d, NVME_FEAT_IRQ_COALESCE, 0, NULL), 0);
}

/* ---------------- queue full ---------------- */

void test_cq_full(void **state)
{
    struct nvd_queue *q = &E->d->ioq[2];
    struct nvme_cqe cqe[16];
    unsigned got = 0;

    (void)state;
    assert_int_equal(nvd_delete_qpair(E->d, 2), 0);
    /* A 4-entry CQ holds 3 completions; 10 commands wait for room. */
    assert_int_equal(nvd_create_qpair(E->d, 2, 16, 4), 0);
    for (unsigned i = 0; i < 10; i++)
        assert_true(nvd_submit_rw(E->d, 2, NVME_IO_READ, 1, i, 1,
                                  E->check + i * blk(), blk()) >= 0);
    assert_int_equal(nvd_ring(E->d, 2), 0);
    for (int i = 0; i < 1000 * slow && !(q->cq[2].status & 1); i++)
        msleep(1);
    /* Whatever the device would post after the third is posted by the
     * end of a later round trip. */
    admin_round_trip();
    assert_int_equal(q->cq[0].status & 1, 1);
    assert_int_equal(q->cq[2].status & 1, 1);
    assert_int_equal(q->cq[3].status, 0);   /* never overwritten */
    while (got < 10) {
        int n = nvd_reap(E->d, 2, cqe, 16, E->d->o.timeout_ms);

        assert_true(n > 0);
        for (int i = 0; i < n; i++)
            assert_int_equal(NVME_CQE_ST(cqe[i].status), 0);
        got += (unsigned)n;
    }
    assert_int_equal(nvd_delete_qpair(E->d, 2), 0);
    assert_int_equal(nvd_create_qpair(E->d, 2, 64, 64), 0);
    shadow_check(0, va(E->check), 10 * blk());
}

/* Queues in memory without an fd: every entry travels by message. */
void test_fdless_queues(void **state)
{
    uint64_t base = E->d->fdless_iova;
    size_t len = 4 * blk();

    (void)state;
    assert_int_equal(nvd_delete_qpair(E->d, 2), 0);
    assert_int_equal(nvd_create_qpair_at(E->d, 2, 16, 16, base + 256 * 1024,
                                         base + 512 * 1024), 0);
    for (unsigned i = 0; i < 8; i++) {
        uint64_t slba = at(MIB) + i * 4;

        fill(va(E->pool), len);
        assert_status(nvd_rw(E->d, 2, NVME_IO_WRITE, 1, slba, 4, E->pool,
                             len), 0);
        memcpy(E->shadow + (slba << E->shift), va(E->pool), len);
        assert_status(nvd_rw(E->d, 2, NVME_IO_READ, 1, slba, 4, E->check,
                             len), 0);
        shadow_check(slba, va(E->check), len);
    }
    assert_int_equal(nvd_delete_qpair(E->d, 2), 0);
    assert_int_equal(nvd_create_qpair(E->d, 2, 64, 64), 0);
}
