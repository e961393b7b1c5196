/*
 * nvme_reset.c - life cycle: controller reset, FLR and DEVICE_RESET,
 * shutdown and restart, and a client leaving with queues live followed by
 * a new one.
 */
#include <string.h>

#include "test_nvme.h"

/* ---------------- resets ---------------- */

void test_reset(void **state)
{
    struct nvme_sqe cmd = { .opc = NVME_ADM_AER };

    (void)state;
    assert_int_equal(nvd_reset(E->d), 0);
    check_data();
    /* Outstanding AERs went with the reset: four fit again. */
    assert_int_equal(E->d->nr_aer, 1);
    while (E->d->nr_aer < 4)
        assert_int_equal(nvd_aer_submit(E->d), 0);
    assert_status(nvd_exec(E->d, 0, &cmd, NULL, NULL), NVME_SC_AER_LIMIT);
}

/* After FLR or DEVICE_RESET: registers cleared, then a normal bring-up. */
static void check_full_reset(void)
{
    uint32_t v;
    uint16_t cmd;

    assert_int_equal(muc_config_read16(E->d->c, 4, &cmd), 0);
    assert_int_equal(cmd & 0x6, 0);
    assert_int_equal(nvd_read32(E->d, NVME_REG_CSTS, &v), 0);
    assert_int_equal(v, 0xffffffff);        /* memory decoding off */
    assert_int_equal(muc_config_write16(E->d->c, 4, 0x2), 0);
    assert_int_equal(nvd_read32(E->d, NVME_REG_CC, &v), 0);
    assert_int_equal(v, 0);
    assert_int_equal(nvd_read32(E->d, NVME_REG_CSTS, &v), 0);
    assert_int_equal(v, 0);
    assert_int_equal(nvd_read32(E->d, NVME_REG_AQA, &v), 0);
    assert_int_equal(v, 0);
    assert_int_equal(nvd_bringup(E->d), 0);
    check_data();
}

void test_flr(void **state)
{
    unsigned pcie = find_cap(0x10);
    uint16_t devctl;

    (void)state;
    assert_int_not_equal(pcie, 0);
    assert_int_equal(muc_config_read16(E->d->c, pcie + 8, &devctl), 0);
    assert_int_equal(muc_config_write16(E->d->c, pcie + 8, devctl | 0x8000), 0);
    check_full_reset();
    assert_int_equal(muc_reset(E->d->c), 0);
    check_full_reset();
}

void test_shutdown(void **state)
{
    uint32_t csts;

    (void)state;
    assert_int_equal(nvd_shutdown(E->d), 0);
    assert_int_equal(nvd_read32(E->d, NVME_REG_CSTS, &csts), 0);
    assert_int_equal(csts & (NVME_CSTS_RDY | NVME_CSTS_SHST_MASK),
                     NVME_CSTS_RDY | NVME_CSTS_SHST_CMPLT);
    /* EN 1 -> 0 -> 1 restarts it. */
    assert_int_equal(nvd_bringup(E->d), 0);
    assert_int_equal(nvd_read32(E->d, NVME_REG_CSTS, &csts), 0);
    assert_int_equal(csts, NVME_CSTS_RDY);
    check_data();
}

/* Unmap the fd-backed guest memory, as one unmap per region, and map it
 * back at once in 'pieces' regions at the same offsets of the memfd. */
static void remap_all(unsigned pieces)
{
    struct nvd *d = E->d;
    size_t per = d->o.mem_size / d->o.nr_regions;
    size_t piece = d->o.mem_size / pieces;

    for (unsigned i = 0; i < d->o.nr_regions; i++)
        assert_int_equal(muc_dma_unmap(d->c, nvd_region_iova(d, 0) + i * per,
                                       per), 0);
    for (unsigned i = 0; i < pieces; i++)
        assert_int_equal(muc_dma_map(d->c, nvd_region_iova(d, 0) + i * piece,
                                     piece, d->memfd, (off_t)(i * piece),
                                     MUC_DMA_READ | MUC_DMA_WRITE), 0);
}

/* QEMU unmaps all guest RAM and maps it back in pieces when the guest
 * changes its memory layout (SeaBIOS making its ROM read-only): live
 * queues translate their memory again and I/O carries on, data intact. */
void test_remap_live_queues(void **state)
{
    uint32_t csts;

    (void)state;
    check_data();
    remap_all(8);       /* pieces straddle the old region boundary */
    for (unsigned i = 0; i < 50; i++)
        random_io(E->pool, 2 * MIB);
    check_data();
    /* And back to the layout the other tests expect. */
    remap_all(E->d->o.nr_regions);
    for (unsigned i = 0; i < 50; i++)
        random_io(E->pool, 2 * MIB);
    check_data();
    assert_int_equal(nvd_read32(E->d, NVME_REG_CSTS, &csts), 0);
    assert_int_equal(csts & NVME_CSTS_CFS, 0);
}

/* The client takes back the memory holding the queues and does not give
 * it back: the unmap itself is survived, but the next doorbell makes the
 * controller touch the queue, and that is Controller Fatal Status; a reset
 * brings it back once the memory is mapped again. */
void test_unmap_live_queues(void **state)
{
    uint64_t r0 = nvd_region_iova(E->d, 0);
    size_t size = E->d->o.mem_size / E->d->o.nr_regions;
    uint32_t csts;

    (void)state;
    assert_int_equal(muc_dma_unmap(E->d->c, r0, size), 0);
    assert_int_equal(nvd_read32(E->d, NVME_REG_CSTS, &csts), 0);
    assert_int_equal(csts & NVME_CSTS_CFS, 0);
    assert_true(nvd_submit_rw(E->d, 1, NVME_IO_READ, 1, 0, 1, E->check,
                              blk()) >= 0);
    assert_int_equal(nvd_ring(E->d, 1), 0);
    assert_int_equal(nvd_wait_csts(E->d, NVME_CSTS_CFS, NVME_CSTS_CFS,
                                   10000 * slow), 0);
    assert_int_equal(muc_dma_map(E->d->c, r0, size, E->d->memfd, 0,
                                 MUC_DMA_READ | MUC_DMA_WRITE), 0);
    assert_int_equal(nvd_reset(E->d), 0);
    check_data();
}

/* Leave with queues live; the next client finds a failed controller
 * (its queue memory went away), resets it and carries on. */
void test_reconnect(void **state)
{
    struct nvd_opts o;
    uint8_t smart[512];
    uint64_t unsafe;
    uint32_t csts;

    (void)state;
    assert_status(nvd_get_log(E->d, NVME_LOG_SMART, 0xffffffff, smart, 512), 0);
    unsafe = le64_at(smart + 144);
    assert_true(nvd_submit_rw(E->d, 1, NVME_IO_READ, 1, 0, 1, E->check,
                              blk()) >= 0);
    nvd_close(E->d);
    E->d = NULL;

    opts_for(&o, E->intx_on_reconnect);
    assert_int_equal(nvd_open(&E->d, &o), 0);
    assert_int_equal(nvd_read32(E->d, NVME_REG_CSTS, &csts), 0);
    assert_true(csts & NVME_CSTS_CFS);
    assert_int_equal(nvd_bringup(E->d), 0);
    E->pool = nvd_region_iova(E->d, 1) - MIB;
    E->check = nvd_region_iova(E->d, 1) + 2 * MIB;
    check_data();
    assert_status(nvd_get_log(E->d, NVME_LOG_SMART, 0xffffffff, smart, 512), 0);
    assert_int_equal(le64_at(smart + 144), unsafe + 1);
    if (!E->intx_on_reconnect)
        return;
    /* INTx now (no MSI-X eventfds): each completion raises it, and it is
     * automasked until the driver unmasks it (nvd_wait_irq does; so does
     * reaping, when it has to wait for a completion). */
    for (unsigned i = 0; i < 20; i++) {
        uint64_t seen;

        nvd_wait_irq(E->d, 0, 0);
        seen = E->d->irqs_seen;
        random_io(E->pool, 2 * MIB);
        if (E->d->irqs_seen == seen)
            assert_int_equal(nvd_wait_irq(E->d, 0, 1000 * slow), 1);
    }
}

/*
 * ioeventfd mode (issue 11, item 3).  A client that took the ioeventfds
 * is served by its kicks alone: a doorbell stored to the page without a
 * kick stays unseen while a kicked admin command behind it completes.
 * A client that never asks for them (QEMU, the qemu_like client) stores
 * to the mapped page and kicks nothing: the device polls the page then,
 * and I/O works.
 */
void test_ioeventfds_not_taken(void **state)
{
    struct nvme_cqe cqe;
    struct nvd_opts o;
    uint32_t v;

    (void)state;
    if (E->db != NVD_DB_IOEVENTFD)
        return;
    /* Taken: a store without a kick is not a doorbell. */
    assert_true(nvd_submit_rw(E->d, 1, NVME_IO_READ, 1, 0, 1, E->check,
                              blk()) >= 0);
    E->d->o.db = NVD_DB_POLLED;             /* store, no kick */
    assert_int_equal(nvd_ring(E->d, 1), 0);
    E->d->o.db = NVD_DB_IOEVENTFD;
    assert_status(nvd_get_features(E->d, NVME_FEAT_NUM_QUEUES, 0, 0, &v), 0);
    assert_false(nvd_cq_ready(E->d, 1));
    assert_int_equal(nvd_ring(E->d, 1), 0);  /* the kick */
    assert_int_equal(nvd_reap(E->d, 1, &cqe, 1, 5000 * slow), 1);
    assert_status(cqe.status >> 1, 0);
    check_data();

    /* Not taken: QEMU's way. */
    nvd_close(E->d);
    E->d = NULL;
    opts_for(&o, false);
    o.qemu_like = true;
    o.db = NVD_DB_AUTO;
    assert_int_equal(nvd_open(&E->d, &o), 0);
    assert_int_equal(E->d->o.db, NVD_DB_POLLED);    /* mapped, no fds */
    assert_int_equal(nvd_bringup(E->d), 0);
    E->pool = nvd_region_iova(E->d, 1) - MIB;
    E->check = nvd_region_iova(E->d, 1) + 2 * MIB;
    check_data();
    for (unsigned i = 0; i < 50; i++)
        random_io(E->pool, 2 * MIB);
    check_data();
}
