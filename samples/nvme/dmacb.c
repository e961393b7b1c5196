/*
 * dmacb.c - guest memory coming and going.
 *
 * Data buffers need no bookkeeping: each command translates its PRPs,
 * copies, and puts its references before it completes.  Queues are
 * different: they hold a reference to their region for as long as they
 * exist.  When the client unmaps (or disconnects, or replaces by an
 * overlapping map) a region that holds a live queue, the controller can no
 * longer work: we drop the queue's reference, as the library needs before
 * it can unmap, and report Controller Fatal Status, which makes a host
 * reset the controller.
 *
 * The unmap callback runs on the context thread.  ctrl_lock() first makes
 * the poller stand aside (polled mode), and the poller holds references
 * only within a pass, so once we have the lock no other thread holds
 * anything in the region except through the queues we release here.
 */
#include "nvme.h"

int dma_on_map(mu_ctx_t *ctx, mu_dma_region_t *r)
{
    struct nvme_ctrl *c = mu_ctx_opaque(ctx);
    const struct mu_dma_info *i = mu_dma_region_info(r);

    ctrl_log(c, "DMA map %#llx+%#llx%s", (unsigned long long)i->iova,
             (unsigned long long)i->size, i->has_fd ? "" : " (no fd)");
    return 0;
}

static bool drop_if_inside(struct nvme_ctrl *c, struct nvme_qmem *m,
                           const mu_dma_region_t *r)
{
    if (!qmem_in_region(m, r))
        return false;
    qmem_unmap(c, m);
    return true;
}

void dma_on_unmap(mu_ctx_t *ctx, mu_dma_region_t *r,
                  enum mu_unmap_reason reason)
{
    struct nvme_ctrl *c = mu_ctx_opaque(ctx);
    const struct mu_dma_info *i = mu_dma_region_info(r);
    unsigned lost = 0;

    ctrl_lock(c);
    for (unsigned q = 0; q < NVME_NR_QUEUES; q++) {
        if (c->sq[q].valid && drop_if_inside(c, &c->sq[q].mem, r))
            lost++;
        if (c->cq[q].valid && drop_if_inside(c, &c->cq[q].mem, r))
            lost++;
    }
    /* After a shutdown the host may take the memory back: the queues
     * cannot run again before a reset anyway. */
    if (lost > 0 && ctrl_ready(c)) {
        /* Memory pulled from under a live controller is power loss to
         * it: count it as an unsafe shutdown. */
        if (reason == MU_UNMAP_DISCONNECT)
            c->smart.unsafe_shutdowns++;
        ctrl_fatal(c, "queue memory unmapped");
    }
    ctrl_unlock(c);
    ctrl_log(c, "DMA unmap %#llx+%#llx (%s)%s", (unsigned long long)i->iova,
             (unsigned long long)i->size, mu_unmap_reason_str(reason),
             lost ? ": live queues lost their memory" : "");
}
