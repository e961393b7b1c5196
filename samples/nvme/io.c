/*
 * io.c - the NVM command set: Read, Write, Flush, Write Zeroes and Dataset
 * Management (deallocate).
 *
 * Checks come in the order a host can act on: the namespace must exist
 * (Invalid Namespace), the fields must make sense (Invalid Field: SGLs,
 * fused commands, more than MDTS), the blocks must exist (LBA Out of
 * Range).  All carry DNR: retrying cannot help.
 */
#include <stdlib.h>

#include "nvme.h"

#define ALL_NS 0xffffffffu

static bool lba_ok(const struct nvme_ns *ns, uint64_t slba, uint64_t nlb)
{
    return slba < ns->nlb && nlb <= ns->nlb - slba;
}

static void account(struct nvme_ctrl *c, size_t len, bool write)
{
    struct nvme_io_stats *s = ctrl_io_stats(c);

    if (write) {
        s->host_writes++;
        s->units_written += len / 512;
    } else {
        s->host_reads++;
        s->units_read += len / 512;
    }
}

static uint16_t rw(struct nvme_ctrl *c, struct nvme_ns *ns,
                   const struct nvme_sqe *cmd, bool write)
{
    uint64_t slba = (uint64_t)cmd->cdw11 << 32 | cmd->cdw10;
    uint32_t nlb = NVME_RW_NLB(cmd->cdw12);
    size_t len = (size_t)nlb << ns->lba_shift;
    uint16_t st;

    if (len > NVME_MAX_XFER)
        return NVME_SC_INVALID_FIELD | NVME_ST_DNR;
    if (!lba_ok(ns, slba, nlb))
        return NVME_SC_LBA_RANGE | NVME_ST_DNR;
    st = xfer_ns(c, ns, cmd->prp1, cmd->prp2, len, slba << ns->lba_shift,
                 write);
    /* FUA, or no volatile cache: durable before we say done. */
    if (st == NVME_SC_SUCCESS && write &&
        ((cmd->cdw12 & NVME_RW_FUA) || !c->feat.wce) && ns_flush(ns) < 0)
        st = NVME_SC_WRITE_FAULT;
    if (st == NVME_SC_SUCCESS)
        account(c, len, write);
    return st;
}

static uint16_t write_zeroes(struct nvme_ctrl *c, struct nvme_ns *ns,
                             const struct nvme_sqe *cmd)
{
    uint64_t slba = (uint64_t)cmd->cdw11 << 32 | cmd->cdw10;
    uint32_t nlb = NVME_RW_NLB(cmd->cdw12);

    if (!lba_ok(ns, slba, nlb))
        return NVME_SC_LBA_RANGE | NVME_ST_DNR;
    /* With or without DEAC the blocks read back as zeros; a hole is the
     * cheapest way to get there on both backings. */
    if (ns_zero(ns, slba << ns->lba_shift, (uint64_t)nlb << ns->lba_shift) < 0)
        return NVME_SC_WRITE_FAULT;
    if (((cmd->cdw12 & NVME_RW_FUA) || !c->feat.wce) && ns_flush(ns) < 0)
        return NVME_SC_WRITE_FAULT;
    ctrl_io_stats(c)->host_writes++;
    return NVME_SC_SUCCESS;
}

static uint16_t dsm(struct nvme_ctrl *c, struct nvme_ns *ns,
                    const struct nvme_sqe *cmd)
{
    unsigned nr = NVME_DSM_NR(cmd->cdw10);
    struct nvme_dsm_range *r;
    uint16_t st;

    /* Only deallocation does anything; the hints need no action. */
    if (!(cmd->cdw11 & NVME_DSM_AD))
        return NVME_SC_SUCCESS;
    r = calloc(nr, sizeof(*r));
    if (r == NULL)
        return NVME_SC_INTERNAL;
    st = xfer_from_guest(c, cmd->prp1, cmd->prp2, r, nr * sizeof(*r));
    /* Check every range before changing anything. */
    for (unsigned i = 0; i < nr && st == NVME_SC_SUCCESS; i++) {
        if (!lba_ok(ns, r[i].slba, r[i].nlb))
            st = NVME_SC_LBA_RANGE | NVME_ST_DNR;
    }
    for (unsigned i = 0; i < nr && st == NVME_SC_SUCCESS; i++) {
        if (ns_zero(ns, r[i].slba << ns->lba_shift,
                    (uint64_t)r[i].nlb << ns->lba_shift) < 0)
            st = NVME_SC_INTERNAL;
    }
    free(r);
    return st;
}

static uint16_t flush(struct nvme_ctrl *c, uint32_t nsid)
{
    struct nvme_ns *ns;

    if (nsid == ALL_NS) {
        for (unsigned i = 0; i < c->nr_ns; i++) {
            if (ns_flush(&c->ns[i]) < 0)
                return NVME_SC_WRITE_FAULT;
        }
        return NVME_SC_SUCCESS;
    }
    ns = ns_lookup(c, nsid);
    if (ns == NULL)
        return NVME_SC_INVALID_NS | NVME_ST_DNR;
    return ns_flush(ns) < 0 ? NVME_SC_WRITE_FAULT : NVME_SC_SUCCESS;
}

uint16_t io_exec(struct nvme_ctrl *c, const struct nvme_sqe *cmd,
                 uint32_t *dw0)
{
    struct nvme_ns *ns;

    *dw0 = 0;
    if (cmd->opc == NVME_IO_FLUSH)
        return flush(c, cmd->nsid);
    if (cmd->opc != NVME_IO_READ && cmd->opc != NVME_IO_WRITE &&
        cmd->opc != NVME_IO_WRITE_ZEROES && cmd->opc != NVME_IO_DSM)
        return NVME_SC_INVALID_OPCODE | NVME_ST_DNR;
    ns = ns_lookup(c, cmd->nsid);
    if (ns == NULL)
        return NVME_SC_INVALID_NS | NVME_ST_DNR;
    if (NVME_SQE_FUSE(cmd->flags) || NVME_SQE_PSDT(cmd->flags))
        return NVME_SC_INVALID_FIELD | NVME_ST_DNR;
    switch (cmd->opc) {
    case NVME_IO_READ:
        return rw(c, ns, cmd, false);
    case NVME_IO_WRITE:
        return rw(c, ns, cmd, true);
    case NVME_IO_WRITE_ZEROES:
        return write_zeroes(c, ns, cmd);
    default:
        return dsm(c, ns, cmd);
    }
}
