/*
 * xfer.c - move data between guest memory (described by PRPs) and either a
 * local buffer (admin data: identify, logs, DSM ranges) or a namespace.
 *
 * Fast path: the ranges from prp_walk() are translated with mu_dma_get()
 * into host addresses, which become an iovec the namespace reads into or
 * writes from directly: memcpy for RAM, preadv/pwritev for a file, no
 * bounce buffer.  The references are put as soon as the copy is done.
 *
 * Slow path: a region without an fd (mu_dma_get() says -EFAULT), or a
 * buffer scattered over more pieces than we translate at once, goes
 * through a bounce buffer and mu_dma_read()/mu_dma_write(), which reach
 * such memory with DMA_READ/DMA_WRITE messages to the client.
 *
 * Anything untranslatable (not mapped, wrong protection) is a Data
 * Transfer Error for the command, never a crash.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "nvme.h"

#define XFER_MAX_SG 64u

struct xfer {
    struct nvme_range r[PRP_MAX_RANGES];
    unsigned nr;
    mu_sg_t sg[XFER_MAX_SG];
    struct iovec iov[XFER_MAX_SG];
    unsigned nr_sg;
};

/*
 * Translate every range.  Returns 0 with x->sg filled, 1 when the slow path
 * must be taken (nothing held), or an NVMe status.
 */
static int xfer_get(struct nvme_ctrl *c, struct xfer *x, unsigned prot)
{
    x->nr_sg = 0;
    for (unsigned i = 0; i < x->nr; i++) {
        int n = mu_dma_get(c->ctx, x->r[i].iova, x->r[i].len, prot,
                           x->sg + x->nr_sg, XFER_MAX_SG - x->nr_sg);

        if (n < 0) {
            mu_dma_put(c->ctx, x->sg, x->nr_sg);
            x->nr_sg = 0;
            if (n == -EFAULT || n == -ENOSPC)
                return 1;
            ctrl_log(c, "DMA %#llx+%zu not translatable: %s",
                     (unsigned long long)x->r[i].iova, x->r[i].len,
                     strerror(-n));
            return NVME_SC_DATA_XFER_ERROR;
        }
        x->nr_sg += (unsigned)n;
    }
    for (unsigned i = 0; i < x->nr_sg; i++) {
        x->iov[i].iov_base = x->sg[i].addr;
        x->iov[i].iov_len = x->sg[i].len;
    }
    return 0;
}

static void xfer_put(struct nvme_ctrl *c, struct xfer *x)
{
    mu_dma_put(c->ctx, x->sg, x->nr_sg);
    x->nr_sg = 0;
}

/* Slow path: guest <-> buf, range by range, through messages. */
static uint16_t bounce(struct nvme_ctrl *c, const struct xfer *x, void *buf,
                       bool to_guest)
{
    uint8_t *p = buf;

    for (unsigned i = 0; i < x->nr; i++) {
        int rc = ctrl_dma(c, x->r[i].iova, p, x->r[i].len, to_guest);

        if (rc < 0) {
            ctrl_log(c, "DMA %s %#llx+%zu failed: %s",
                     to_guest ? "write" : "read",
                     (unsigned long long)x->r[i].iova, x->r[i].len,
                     strerror(-rc));
            return NVME_SC_DATA_XFER_ERROR;
        }
        p += x->r[i].len;
    }
    return NVME_SC_SUCCESS;
}

static uint16_t xfer_buf(struct nvme_ctrl *c, uint64_t prp1, uint64_t prp2,
                         void *buf, size_t len, bool to_guest)
{
    struct xfer xs, *x = &xs;
    uint8_t *p = buf;
    uint16_t st;
    int rc;

    st = prp_walk(c, prp1, prp2, len, x->r, &x->nr);
    if (st != NVME_SC_SUCCESS)
        return st;
    rc = xfer_get(c, x, to_guest ? MU_DMA_WRITE : MU_DMA_READ);
    if (rc == 1)
        return bounce(c, x, buf, to_guest);
    if (rc != 0)
        return (uint16_t)rc;
    for (unsigned i = 0; i < x->nr_sg; i++) {
        if (to_guest)
            memcpy(x->sg[i].addr, p, x->sg[i].len);
        else
            memcpy(p, x->sg[i].addr, x->sg[i].len);
        p += x->sg[i].len;
    }
    xfer_put(c, x);
    return NVME_SC_SUCCESS;
}

uint16_t xfer_to_guest(struct nvme_ctrl *c, uint64_t prp1, uint64_t prp2,
                       const void *buf, size_t len)
{
    return xfer_buf(c, prp1, prp2, (void *)buf, len, true);
}

uint16_t xfer_from_guest(struct nvme_ctrl *c, uint64_t prp1, uint64_t prp2,
                         void *buf, size_t len)
{
    return xfer_buf(c, prp1, prp2, buf, len, false);
}

static uint16_t ns_error(struct nvme_ctrl *c, int rc, bool write)
{
    ctrl_log(c, "backing store %s failed: %s", write ? "write" : "read",
             strerror(-rc));
    ctrl_io_stats(c)->media_errors++;
    return write ? NVME_SC_WRITE_FAULT : NVME_SC_UNRECOVERED_READ;
}

/* Slow path for namespace I/O: a bounce buffer between the two copies. */
static uint16_t ns_bounce(struct nvme_ctrl *c, struct nvme_ns *ns,
                          const struct xfer *x, size_t len, uint64_t off,
                          bool write)
{
    struct iovec v = { malloc(len), len };
    uint16_t st = NVME_SC_SUCCESS;
    int rc;

    if (v.iov_base == NULL)
        return NVME_SC_INTERNAL;
    if (write) {
        st = bounce(c, x, v.iov_base, false);
        if (st == NVME_SC_SUCCESS && (rc = ns_rw(ns, &v, 1, off, true)) < 0)
            st = ns_error(c, rc, true);
    } else {
        rc = ns_rw(ns, &v, 1, off, false);
        st = rc < 0 ? ns_error(c, rc, false) : bounce(c, x, v.iov_base, true);
    }
    free(v.iov_base);
    return st;
}

uint16_t xfer_ns(struct nvme_ctrl *c, struct nvme_ns *ns, uint64_t prp1,
                 uint64_t prp2, size_t len, uint64_t off, bool write)
{
    struct xfer xs, *x = &xs;
    uint16_t st;
    int rc;

    st = prp_walk(c, prp1, prp2, len, x->r, &x->nr);
    if (st != NVME_SC_SUCCESS)
        return st;
    /* A write command reads guest memory; a read command writes it. */
    rc = xfer_get(c, x, write ? MU_DMA_READ : MU_DMA_WRITE);
    if (rc == 1) {
        st = ns_bounce(c, ns, x, len, off, write);
    } else if (rc != 0) {
        st = (uint16_t)rc;
    } else {
        rc = ns_rw(ns, x->iov, (int)x->nr_sg, off, write);
        xfer_put(c, x);
        if (rc < 0)
            st = ns_error(c, rc, write);
    }
    return st;
}
