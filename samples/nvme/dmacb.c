/*
 * dmacb.c - guest memory coming and going.
 *
 * Data buffers need no bookkeeping: each command translates its PRPs,
 * copies, and puts its references before it completes.  Queues are
 * different: they hold a reference to their region between uses.  When
 * the client unmaps a region that holds a live queue (DMA_UNMAP, unmap-all,
 * an overlapping map), we drop the queue's reference, as the library needs
 * before it can unmap, and keep the queue: clients take guest RAM away and
 * give it back at once (QEMU unmaps all RAM and maps it again in pieces
 * when SeaBIOS makes its ROM read-only), so the queue translates again on
 * its next use (queues.c) and only fails, with Controller Fatal Status, if
 * its memory is still not mapped then.  When the client goes away (or the
 * context is reset or destroyed with the queues live) nothing will map it
 * back: that is power loss to the controller, reported as CFS at once.
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
    if (!i->has_fd) {
        ctrl_lock(c);
        c->fdless_maps++;
        ctrl_unlock(c);
    }
    return 0;
}

static bool holds(const struct nvme_qmem *m, const mu_dma_region_t *r)
{
    for (unsigned i = 0; i < m->nr_sg; i++) {
        if (m->sg[i].region == r)
            return true;
    }
    return false;
}

/* The client will map it back (or not): let go, translate on next use. */
static unsigned release_queues(struct nvme_ctrl *c, const mu_dma_region_t *r)
{
    unsigned n = 0;

    for (unsigned q = 0; q < NVME_NR_QUEUES; q++) {
        if (c->sq[q].valid && holds(&c->sq[q].mem, r)) {
            qmem_release(c, &c->sq[q].mem);
            n++;
        }
        if (c->cq[q].valid && holds(&c->cq[q].mem, r)) {
            qmem_release(c, &c->cq[q].mem);
            n++;
        }
    }
    return n;
}

/* index: 2 * qid for an SQ, 2 * qid + 1 for a CQ. */
static bool drop_if_inside(struct nvme_ctrl *c, unsigned index,
                           const mu_dma_region_t *r)
{
    if (!qmem_in_region(queue_mem(c, index), r))
        return false;
    queue_mem_drop(c, index);
    return true;
}

/* Nobody will map it back: the queues are gone for good. */
static unsigned drop_queues(struct nvme_ctrl *c, const mu_dma_region_t *r)
{
    unsigned n = 0;

    for (unsigned q = 0; q < NVME_NR_QUEUES; q++) {
        if (c->sq[q].valid && drop_if_inside(c, 2 * q, r))
            n++;
        if (c->cq[q].valid && drop_if_inside(c, 2 * q + 1, r))
            n++;
    }
    return n;
}

void dma_on_unmap(mu_ctx_t *ctx, mu_dma_region_t *r,
                  enum mu_unmap_reason reason)
{
    struct nvme_ctrl *c = mu_ctx_opaque(ctx);
    const struct mu_dma_info *i = mu_dma_region_info(r);
    bool transient = reason == MU_UNMAP_CLIENT || reason == MU_UNMAP_ALL ||
                     reason == MU_UNMAP_OVERLAP;
    unsigned lost = 0, stale = 0;

    ctrl_lock(c);
    if (!i->has_fd && c->fdless_maps > 0)
        c->fdless_maps--;
    if (transient) {
        stale = release_queues(c, r);
    } else {
        lost = drop_queues(c, r);
        /* After a shutdown the host may take the memory back: the queues
         * cannot run again before a reset anyway. */
        if (lost > 0 && ctrl_ready(c)) {
            /* Memory pulled from under a live controller is power loss
             * to it: count it as an unsafe shutdown. */
            if (reason == MU_UNMAP_DISCONNECT)
                c->smart.unsafe_shutdowns++;
            ctrl_fatal(c, "queue memory unmapped");
        }
    }
    ctrl_unlock(c);
    ctrl_log(c, "DMA unmap %#llx+%#llx (%s)%s%s", (unsigned long long)i->iova,
             (unsigned long long)i->size, mu_unmap_reason_str(reason),
             lost ? ": live queues lost their memory" : "",
             stale ? ": queues translate again on next use" : "");
}
