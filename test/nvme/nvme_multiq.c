/*
 * nvme_multiq.c - four I/O queue pairs busy at once, and queue pairs
 * deleted and created by the admin queue while the others are busy.
 *
 * With --pollers 2 (the polled-2 group) I/O CQ q is served by poller
 * q % 2, so queues 1 and 3 run on one poller and 2 and 4 on the other,
 * while the admin queue's creates and deletes run on poller 0 under the
 * controller lock: these tests are where a queue handed between pollers
 * unsafely would show (wrong data, a lost or doubled completion, a
 * command of a deleted queue run; and under ThreadSanitizer the race
 * itself, through the device's exit status).  The other groups run them
 * too: the same NVMe behaviour on one poller or none.
 *
 * test_multiq_delete_during_dma makes the handover deterministic: a
 * command of queue 1 waits for a DMA message (its data in memory without
 * an fd) that the driver holds back while the admin queue deletes and
 * creates queue 3, on the same poller.
 *
 * Each queue writes its own quarter of the first SHADOW_BYTES of ns 1
 * (the shadow follows), and every read-back goes through another queue
 * than the write did.
 */
#include <poll.h>
#include <string.h>

#include "test_nvme.h"

#define NQ 4u
#define CMDS 8u                     /* in flight per queue */
#define AREA (SHADOW_BYTES / NQ)    /* a queue's share of ns 1 */
#define CHUNK (AREA / CMDS)         /* one command: 128 KiB, MDTS */
#define WBUF(q) (E->pool + (uint64_t)((q) - 1) * CHUNK)
#define RBUF (E->pool + MIB)        /* CMDS chunks of read-back room */

/* Queues 1..NQ: the Number of Queues feature is set once, before any
 * I/O queue exists, so the group's two pairs go first. */
static void four_queues(void)
{
    uint32_t dw0;
    unsigned had = E->d->nr_ioq;

    for (unsigned q = had; q >= 1; q--)
        assert_int_equal(nvd_delete_qpair(E->d, (uint16_t)q), 0);
    assert_status(nvd_set_features(E->d, NVME_FEAT_NUM_QUEUES,
                                   (NQ - 1) | (NQ - 1) << 16, &dw0), 0);
    assert_true((dw0 & 0xffff) >= NQ - 1 && (dw0 >> 16) >= NQ - 1);
    for (unsigned q = 1; q <= NQ; q++)
        assert_int_equal(nvd_create_qpair(E->d, (uint16_t)q, 64, 64), 0);
}

/* Back to what the group had: a fresh bring-up (features reset). */
static void restore(void)
{
    assert_int_equal(nvd_disable(E->d), 0);
    assert_int_equal(nvd_bringup(E->d), 0);
    check_data();
}

static void submit_chunk(unsigned q, uint8_t opc, unsigned area, unsigned i,
                         uint64_t buf)
{
    uint64_t off = (uint64_t)area * AREA + (uint64_t)i * CHUNK;

    assert_true(nvd_submit_rw(E->d, q, opc, 1, at(off),
                              (uint32_t)at(CHUNK), buf, CHUNK) >= 0);
}

/* Reap n completions of queue q, all successful. */
static void reap_ok(unsigned q, unsigned n)
{
    struct nvme_cqe cqe[CMDS];

    while (n > 0) {
        int got = nvd_reap(E->d, q, cqe, n < CMDS ? n : CMDS,
                           E->d->o.timeout_ms);

        assert_true(got > 0);
        for (int i = 0; i < got; i++)
            assert_int_equal(NVME_CQE_ST(cqe[i].status), 0);
        n -= (unsigned)got;
    }
}

/* Queue q writes its whole area, CMDS commands of a fresh pattern (the
 * same chunk everywhere), and rings; the shadow takes the new bytes. */
static void write_area(unsigned q)
{
    uint8_t *p = va(WBUF(q));

    fill(p, CHUNK);
    for (unsigned i = 0; i < CMDS; i++) {
        submit_chunk(q, NVME_IO_WRITE, q - 1, i, WBUF(q));
        memcpy(E->shadow + (size_t)(q - 1) * AREA + (size_t)i * CHUNK, p,
               CHUNK);
    }
    assert_int_equal(nvd_ring(E->d, q), 0);
}

/* Read area a through queue q and compare with the shadow. */
static void check_area(unsigned q, unsigned a)
{
    memset(va(RBUF), 0xee, CMDS * CHUNK);
    for (unsigned i = 0; i < CMDS; i++)
        submit_chunk(q, NVME_IO_READ, a, i, RBUF + (uint64_t)i * CHUNK);
    assert_int_equal(nvd_ring(E->d, q), 0);
    reap_ok(q, CMDS);
    assert_memory_equal(va(RBUF), E->shadow + (size_t)a * AREA,
                        CMDS * CHUNK);
}

void test_multiq_io(void **state)
{
    (void)state;
    four_queues();
    for (unsigned round = 0; round < 4; round++) {
        /* Every queue busy at once: all rung before any is reaped. */
        for (unsigned q = 1; q <= NQ; q++)
            write_area(q);
        for (unsigned q = 1; q <= NQ; q++)
            reap_ok(q, CMDS);
        /* Each area read back through the next queue, on the other
         * poller with two of them. */
        for (unsigned q = 1; q <= NQ; q++)
            check_area(q % NQ + 1, q - 1);
    }
    restore();
}

void test_multiq_delete_create(void **state)
{
    const unsigned victim = 3;

    (void)state;
    four_queues();
    for (unsigned round = 0; round < 6; round++) {
        /* The others hold commands in flight (rung, not reaped) while
         * the admin queue deletes the victim's pair and creates it
         * again: the pollers serve them meanwhile. */
        for (unsigned q = 1; q <= NQ; q++) {
            if (q != victim)
                write_area(q);
        }
        assert_int_equal(nvd_delete_qpair(E->d, victim), 0);
        assert_int_equal(nvd_create_qpair(E->d, victim, 16 + round * 8,
                                          16 + round * 8), 0);
        for (unsigned q = 1; q <= NQ; q++) {
            if (q != victim)
                reap_ok(q, CMDS);
        }
        /* The new pair works, on its own area, and sees the others'. */
        write_area(victim);
        reap_ok(victim, CMDS);
        for (unsigned a = 0; a < NQ; a++)
            check_area(a == victim - 1 ? 1 : victim, a);
    }
    /* Without it the others go on, and its area keeps its bytes. */
    assert_int_equal(nvd_delete_qpair(E->d, victim), 0);
    for (unsigned q = 1; q <= NQ; q++) {
        if (q != victim)
            write_area(q);
    }
    for (unsigned q = 1; q <= NQ; q++) {
        if (q != victim)
            reap_ok(q, CMDS);
    }
    for (unsigned a = 0; a < NQ; a++)
        check_area(a == 0 ? 2 : 1, a);
    restore();
}

/*
 * A command of queue 1 waits for its data, in memory without an fd, which
 * the device asks the driver for in a DMA_READ message; the poller lets go
 * of its lock while it waits for the reply (ctrl_dma).  The driver holds
 * the reply back while the admin queue deletes queue 3 (on the same
 * poller as queue 1 with two pollers) and creates it again.  The waiting
 * command must then complete as if nothing had happened: only a teardown
 * of its own queues may abandon it.  (The device dropped it, and its
 * completion with it, in about one run in four of
 * test_multiq_delete_create under load.)  Two pollers only: with one the
 * admin commands would wait for the very thread that waits for us.
 */
void test_multiq_delete_during_dma(void **state)
{
    const unsigned victim = 3, busy = 1;
    uint64_t buf = E->d->fdless_iova;
    struct pollfd pfd = { .fd = muc_fd(E->d->c), .events = POLLIN };

    (void)state;
    if (E->pollers < 2)
        skip();
    assert_int_equal(victim % E->pollers, busy % E->pollers); /* README */
    four_queues();
    fill(va(buf), blk());
    memcpy(E->shadow + (size_t)(busy - 1) * AREA, va(buf), blk());
    E->d->hold_dma = true;
    assert_true(nvd_submit_rw(E->d, busy, NVME_IO_WRITE, 1,
                              at((uint64_t)(busy - 1) * AREA), 1, buf,
                              blk()) >= 0);
    assert_int_equal(nvd_ring(E->d, busy), 0);
    /* The device's DMA_READ for the data: the poller is inside ctrl_dma
     * now, and stays there until we answer. */
    assert_int_equal(poll(&pfd, 1, E->d->o.timeout_ms), 1);
    assert_true(pfd.revents & POLLIN);
    assert_false(nvd_cq_ready(E->d, busy));
    /* Poller 0's admin pass takes the lock the waiting poller let go of
     * (a few milliseconds: the device waits for the reply for seconds). */
    assert_int_equal(nvd_delete_qpair(E->d, victim), 0);
    assert_int_equal(nvd_create_qpair(E->d, victim, 16, 16), 0);
    /* Still waiting: nothing read the request. */
    assert_int_equal(poll(&pfd, 1, 0), 1);
    E->d->hold_dma = false;
    reap_ok(busy, 1);
    assert_int_equal(poll(&pfd, 1, 0), 0);
    /*
     * The write took, and both pairs work.  Read back on the same poller
     * only: we order a write before a read on another poller through the
     * queues' shared memory, which ThreadSanitizer does not see from the
     * device (the fd-backed transfers of the other tests meet in their
     * region's reference count; this one's data had no fd).  restore()'s
     * reset takes every poller's lock before poller 0 reads again.
     */
    check_area(busy, busy - 1);
    write_area(victim);
    reap_ok(victim, CMDS);
    check_area(busy, victim - 1);
    write_area(busy);
    reap_ok(busy, CMDS);
    check_area(victim, busy - 1);
    restore();
}
