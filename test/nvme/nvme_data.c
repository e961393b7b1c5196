/*
 * nvme_data.c - the data path: random reads and writes checked against a
 * shadow copy, queue depth 32, every PRP shape (offsets, lists starting
 * mid-page, chained lists, scattered pages, the DMA region boundary,
 * fd-less memory), invalid PRPs, Flush, Write Zeroes, DSM, namespaces.
 */
#include <stdlib.h>
#include <string.h>

#include "test_nvme.h"

void test_rw_random(void **state)
{
    unsigned iters = slow > 1 ? 40 : 400;

    (void)state;
    for (unsigned i = 0; i < iters; i++) {
        /* Mostly fd-backed memory across the region boundary; some
         * fd-less, which the device reaches by DMA_READ/DMA_WRITE. */
        if (rnd(8) == 0)
            random_io(E->d->fdless_iova, MIB);
        else
            random_io(E->pool, 2 * MIB);
    }
}

/* QD32: 32 writes in one doorbell, then 32 reads, reaped in bulk. */
void test_rw_queue_depth(void **state)
{
    const unsigned qd = 32;
    size_t len = 8 * blk();
    struct nvme_cqe cqe[32];
    unsigned got = 0;

    (void)state;
    fill(va(E->pool), qd * len);
    for (unsigned i = 0; i < qd; i++)
        assert_true(nvd_submit_rw(E->d, 1, NVME_IO_WRITE, 1, i * 8, 8,
                                  E->pool + i * len, len) >= 0);
    assert_int_equal(nvd_ring(E->d, 1), 0);
    while (got < qd) {
        int n = nvd_reap(E->d, 1, cqe, qd - got, E->d->o.timeout_ms);

        assert_true(n > 0);
        for (int i = 0; i < n; i++)
            assert_int_equal(NVME_CQE_ST(cqe[i].status), 0);
        got += (unsigned)n;
    }
    memcpy(E->shadow, va(E->pool), qd * len);
    memset(va(E->check), 0, qd * len);
    for (unsigned i = 0; i < qd; i++)
        assert_true(nvd_submit_rw(E->d, 1, NVME_IO_READ, 1, i * 8, 8,
                                  E->check + i * len, len) >= 0);
    assert_int_equal(nvd_ring(E->d, 1), 0);
    for (got = 0; got < qd;) {
        int n = nvd_reap(E->d, 1, cqe, qd - got, E->d->o.timeout_ms);

        assert_true(n > 0);
        got += (unsigned)n;
    }
    shadow_check(0, va(E->check), qd * len);
}

/* Copy between a host buffer and the pieces an nvd_buf describes. */
static void buf_copy(const struct nvd_buf *b, uint8_t *host, bool to_buf)
{
    size_t done = 0;

    for (unsigned i = 0; done < b->len; i++) {
        uint64_t a = b->pages != NULL ? b->pages[i]
                     : i == 0 ? b->iova
                              : (b->iova & ~(uint64_t)(P - 1)) + (uint64_t)i * P;
        size_t n = P - (a & (P - 1));

        if (n > b->len - done)
            n = b->len - done;
        if (to_buf)
            memcpy(va(a), host + done, n);
        else
            memcpy(host + done, va(a), n);
        done += n;
    }
}

/* Write through buffer b, read back plainly; read through b, compare. */
static void prp_roundtrip(const struct nvd_buf *b, uint64_t slba)
{
    struct nvme_sqe cmd = {
        .opc = NVME_IO_WRITE, .nsid = 1,
        .cdw10 = (uint32_t)slba,
        .cdw12 = (uint32_t)(b->len >> E->shift) - 1,
    };
    uint8_t *data = malloc(b->len), *back = malloc(b->len);

    assert_non_null(data);
    assert_non_null(back);
    fill(data, b->len);
    buf_copy(b, data, true);
    assert_status(nvd_exec(E->d, 1, &cmd, b, NULL), 0);
    memcpy(E->shadow + (slba << E->shift), data, b->len);
    memset(va(E->check), 0, b->len);
    assert_status(rw(NVME_IO_READ, 1, slba, b->len, E->check), 0);
    assert_memory_equal(va(E->check), data, b->len);

    memset(back, 0, b->len);
    buf_copy(b, back, true);
    cmd.opc = NVME_IO_READ;
    assert_status(nvd_exec(E->d, 1, &cmd, b, NULL), 0);
    buf_copy(b, back, false);
    assert_memory_equal(back, data, b->len);
    free(data);
    free(back);
}

void test_prp_contiguous(void **state)
{
    static const unsigned offs[] = { 0, 4, 512, 2048, 4092 };
    static const unsigned list_offs[] = { 0, 256, 4096 - 256, 4096 - 16,
                                          4096 - 8 };

    (void)state;
    for (unsigned i = 0; i < sizeof(offs) / sizeof(offs[0]); i++) {
        size_t lens[] = { blk(), P, 2 * P, 3 * P, 5 * P + blk(), MAX_XFER };

        for (unsigned j = 0; j < sizeof(lens) / sizeof(lens[0]); j++) {
            struct nvd_buf b = {
                .iova = E->pool + 7 * P + offs[i],
                .len = lens[j],
                .list_off = list_offs[(i + j) % 5],
            };

            prp_roundtrip(&b, at((i * 8 + j) * (uint64_t)MAX_XFER %
                                 (SHADOW_BYTES - MAX_XFER)));
        }
    }
}

void test_prp_lists(void **state)
{
    uint64_t pages[40];
    unsigned n = MAX_XFER / P;

    (void)state;
    /* Pages in reverse order: the device must follow the list. */
    for (unsigned i = 0; i < n; i++)
        pages[i] = E->pool + (uint64_t)(n - 1 - i) * P;
    for (unsigned lo = 0; lo < P; lo += P / 8) {
        struct nvd_buf b = { .pages = pages, .nr_pages = n, .len = MAX_XFER,
                             .list_off = lo };

        prp_roundtrip(&b, at(MIB + lo * 32));
    }
    /* Chained at once (one slot left) and after a few entries. */
    for (unsigned k = 1; k <= 5; k++) {
        struct nvd_buf b = { .pages = pages, .nr_pages = n, .len = MAX_XFER,
                             .list_off = P - 8 * k };

        prp_roundtrip(&b, at(2 * MIB + k * MAX_XFER));
    }
    /* Every other page, first one unaligned: 33 pages, 32 list entries. */
    pages[0] = E->pool + 100 * P + 3 * 1024;
    for (unsigned i = 1; i <= n; i++)
        pages[i] = E->pool + (100 + 2 * i) * (uint64_t)P;
    {
        struct nvd_buf b = { .pages = pages, .nr_pages = n + 1,
                             .len = MAX_XFER, .list_off = P - 24 };

        prp_roundtrip(&b, at(3 * MIB));
    }
    /* Pages straddling the DMA region boundary, fd-backed and fd-less
     * pages mixed in one command. */
    for (unsigned i = 0; i < n; i++)
        pages[i] = (i % 3 == 2) ? E->d->fdless_iova + (uint64_t)i * P
                                : nvd_region_iova(E->d, 1) - 16 * P + i * 2 * P;
    {
        struct nvd_buf b = { .pages = pages, .nr_pages = n, .len = MAX_XFER,
                             .list_off = 512 };

        prp_roundtrip(&b, at(3 * MIB + 2 * MAX_XFER));
    }
}

void test_prp_invalid(void **state)
{
    struct nvme_sqe cmd = { .opc = NVME_IO_READ, .nsid = 1 };
    uint64_t pages[3] = { E->pool, E->pool + P, E->pool + 2 * P + 512 };
    struct nvd_buf b = { .pages = pages, .nr_pages = 3, .len = 3 * P };

    (void)state;
    cmd.cdw12 = 0;
    cmd.prp1 = E->pool + 2;             /* not dword aligned */
    assert_status(nvd_exec(E->d, 1, &cmd, NULL, NULL), NVME_SC_PRP_OFFSET);
    cmd.prp1 = 0x1000;                  /* not mapped */
    assert_status(nvd_exec(E->d, 1, &cmd, NULL, NULL),
                  NVME_SC_DATA_XFER_ERROR);
    cmd.cdw12 = (uint32_t)(3 * P >> E->shift) - 1;
    assert_status(nvd_exec(E->d, 1, &cmd, &b, NULL), NVME_SC_PRP_OFFSET);
    cmd.prp1 = E->pool;                 /* list pointer not mapped */
    cmd.prp2 = 0x2000;
    assert_status(nvd_exec(E->d, 1, &cmd, NULL, NULL),
                  NVME_SC_DATA_XFER_ERROR);
    /* Still fine afterwards. */
    assert_status(rw(NVME_IO_READ, 1, 0, blk(), E->check), 0);
}

/* ---------------- other I/O commands ---------------- */

/* 32 blocks at the end of the shadowed area: at most MDTS with 4 KiB. */
void test_flush_zeroes_dsm(void **state)
{
    const uint64_t base = (SHADOW_BYTES >> E->shift) - 32;
    size_t len = 32 * blk();
    struct nvme_sqe cmd = { .opc = NVME_IO_FLUSH, .nsid = 1 };
    struct nvme_dsm_range *r = va(E->pool + MIB);
    struct nvd_buf rb = { .iova = E->pool + MIB, .len = 2 * sizeof(*r) };
    uint8_t *p = va(E->check), *want = va(E->pool);

    (void)state;
    assert_status(nvd_exec(E->d, 1, &cmd, NULL, NULL), 0);
    cmd.nsid = 0xffffffff;
    assert_status(nvd_exec(E->d, 1, &cmd, NULL, NULL), 0);
    cmd.nsid = E->nr_ns + 1;
    assert_status(nvd_exec(E->d, 1, &cmd, NULL, NULL), NVME_SC_INVALID_NS);

    /* Write Zeroes in the middle of a written range, with and without
     * DEAC. */
    fill(want, len);
    assert_status(rw(NVME_IO_WRITE, 1, base, len, E->pool), 0);
    cmd = (struct nvme_sqe){ .opc = NVME_IO_WRITE_ZEROES, .nsid = 1,
                             .cdw10 = (uint32_t)base + 4, .cdw12 = 7 };
    assert_status(nvd_exec(E->d, 1, &cmd, NULL, NULL), 0);
    cmd.cdw10 = (uint32_t)base + 20;
    cmd.cdw12 = 1 | NVME_RW_DEAC;
    assert_status(nvd_exec(E->d, 1, &cmd, NULL, NULL), 0);
    memset(want + 4 * blk(), 0, 8 * blk());
    memset(want + 20 * blk(), 0, 2 * blk());
    assert_status(rw(NVME_IO_READ, 1, base, len, E->check), 0);
    assert_memory_equal(p, want, len);
    cmd.cdw10 = (uint32_t)E->d->ns[0].nsze - 1;
    cmd.cdw12 = 1;
    assert_status(nvd_exec(E->d, 1, &cmd, NULL, NULL), NVME_SC_LBA_RANGE);

    /* DSM deallocate two ranges: they read back as zeros. */
    r[0] = (struct nvme_dsm_range){ .nlb = 2, .slba = base };
    r[1] = (struct nvme_dsm_range){ .nlb = 3, .slba = base + 28 };
    cmd = (struct nvme_sqe){ .opc = NVME_IO_DSM, .nsid = 1, .cdw10 = 1,
                             .cdw11 = NVME_DSM_AD };
    assert_status(nvd_exec(E->d, 1, &cmd, &rb, NULL), 0);
    memset(want, 0, 2 * blk());
    memset(want + 28 * blk(), 0, 3 * blk());
    assert_status(rw(NVME_IO_READ, 1, base, len, E->check), 0);
    assert_memory_equal(p, want, len);
    memcpy(E->shadow + (base << E->shift), p, len);
    /* Hints only: nothing changes. */
    cmd.cdw11 = NVME_DSM_IDR;
    assert_status(nvd_exec(E->d, 1, &cmd, &rb, NULL), 0);
    /* A range past the end: refused, nothing deallocated. */
    r[0].slba = base + 8;
    r[1].slba = E->d->ns[0].nsze;
    cmd.cdw11 = NVME_DSM_AD;
    assert_status(nvd_exec(E->d, 1, &cmd, &rb, NULL), NVME_SC_LBA_RANGE);
    assert_status(rw(NVME_IO_READ, 1, base, len, E->check), 0);
    shadow_check(base, p, len);
}

void test_namespaces(void **state)
{
    size_t len = 4 * blk();

    (void)state;
    if (E->nr_ns < 2)
        skip();
    fill(va(E->pool), len);
    assert_status(rw(NVME_IO_WRITE, 2, 0, len, E->pool), 0);
    assert_status(rw(NVME_IO_READ, 2, 0, len, E->check), 0);
    assert_memory_equal(va(E->check), va(E->pool), len);
    /* Namespace 1 did not change. */
    assert_status(rw(NVME_IO_READ, 1, 0, len, E->check), 0);
    shadow_check(0, va(E->check), len);
    assert_status(rw(NVME_IO_READ, 2, E->d->ns[1].nsze, blk(), E->check),
                  NVME_SC_LBA_RANGE);
}
