/*
 * intr.c - interrupt delivery: MSI-X (one vector per CQ, the IV given at
 * creation) when the client enabled it, otherwise INTx with level
 * semantics, and interrupt coalescing (Set Features 08h/09h).
 *
 * INTx is level-triggered on real hardware: asserted while any CQ with
 * interrupts enabled holds entries the host has not consumed, and not
 * masked by INTMS.  Over vfio-user it is an eventfd that the library
 * automasks after each fire until the client unmasks it; a trigger while
 * masked is remembered and fires on unmask.  So we trigger on every post,
 * and again when a CQ head doorbell leaves entries behind, which is what
 * "still asserted" means to a client.
 *
 * Coalescing (I/O CQs only, per the spec): a vector's completions are
 * signalled once THR+1 of them have gathered or TIME*100us after the first,
 * whichever comes first.  The deadline is checked by the poller in polled
 * mode and by a timerfd on the context thread in trapped mode.
 *
 * Called with the controller lock held, except intr_on_state(); or on an
 * I/O pass (poller.c), where what vectors and INTx share is written under
 * ctrl_common_lock(); intr_tick() with ctrl->lock alone (poller 0).
 */
#include <sys/timerfd.h>
#include <time.h>

#include "nvme.h"

uint64_t now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* Some interrupt-enabled CQ holds unconsumed entries. */
static bool intx_level(const struct nvme_ctrl *c)
{
    for (unsigned q = 0; q < c->q_top; q++) {
        const struct nvme_cq *cq = &c->cq[q];

        if (cq->valid && cq->ien && cq->head != cq->tail)
            return true;
    }
    return false;
}

static void intx_assert(struct nvme_ctrl *c)
{
    bool masked;

    ctrl_common_lock(c);
    masked = c->intms & 1;
    c->intx_pending = masked;
    ctrl_common_unlock(c);
    if (!masked)
        mu_irq_trigger(c->ctx, MU_IRQ_INTX, 0);
}

static void fire(struct nvme_ctrl *c, uint16_t iv)
{
    if (c->msix)
        mu_irq_trigger(c->ctx, MU_IRQ_MSIX, iv);
    else
        intx_assert(c);
}

static void vec_signal(struct nvme_ctrl *c, uint16_t iv)
{
    struct nvme_vector *v = &c->vec[iv];

    v->pending = 0;
    if (v->deadline_ns != 0) {
        v->deadline_ns = 0;
        c->coalescing--;
    }
    fire(c, iv);
}

static bool coalesced(const struct nvme_ctrl *c, const struct nvme_cq *cq)
{
    return cq->qid != 0 && c->feat.coalesce_time != 0 &&
           c->feat.coalesce_thr != 0 && !c->feat.vec_cd[cq->iv];
}

void intr_cq_flush(struct nvme_ctrl *c, struct nvme_cq *cq)
{
    struct nvme_vector *v = &c->vec[cq->iv];
    unsigned n = cq->irq_due;

    cq->irq_due = 0;
    if (n == 0 || !cq->ien)
        return;
    if (!coalesced(c, cq)) {
        fire(c, cq->iv);
        return;
    }
    /* Vectors may be shared by CQs of different pollers. */
    ctrl_common_lock(c);
    v->pending += n;
    if (v->pending >= (unsigned)c->feat.coalesce_thr + 1) {
        vec_signal(c, cq->iv);
    } else if (v->deadline_ns == 0) {
        v->deadline_ns = now_ns() + c->feat.coalesce_time * 100000ull;
        c->coalescing++;
        intr_timer_update(c);
    }
    ctrl_common_unlock(c);
}

void intr_flush_all(struct nvme_ctrl *c)
{
    for (unsigned q = 0; q < c->q_top; q++) {
        if (c->cq[q].valid && c->cq[q].irq_due)
            intr_cq_flush(c, &c->cq[q]);
    }
}

void intr_tick(struct nvme_ctrl *c)
{
    uint64_t now;

    if (c->coalescing == 0)
        return;
    now = now_ns();
    for (uint16_t iv = 0; iv < NVME_NR_VECTORS; iv++) {
        if (c->vec[iv].deadline_ns != 0 && c->vec[iv].deadline_ns <= now)
            vec_signal(c, iv);
    }
    intr_timer_update(c);
}

/* Trapped mode: arm the timerfd for the earliest deadline, or disarm. */
void intr_timer_update(struct nvme_ctrl *c)
{
    struct itimerspec its = { 0 };
    uint64_t first = 0;

    if (c->timer_fd < 0)
        return;
    for (unsigned iv = 0; iv < NVME_NR_VECTORS && c->coalescing; iv++) {
        uint64_t d = c->vec[iv].deadline_ns;

        if (d != 0 && (first == 0 || d < first))
            first = d;
    }
    if (first != 0) {
        its.it_value.tv_sec = (time_t)(first / 1000000000ull);
        its.it_value.tv_nsec = (long)(first % 1000000000ull);
    }
    timerfd_settime(c->timer_fd, TFD_TIMER_ABSTIME, &its, NULL);
}

void intr_cq_consumed(struct nvme_ctrl *c, struct nvme_cq *cq)
{
    if (!c->msix && cq->ien && cq->head != cq->tail)
        intx_assert(c);
}

void intr_intms_changed(struct nvme_ctrl *c)
{
    if (!c->msix && c->intx_pending && !(c->intms & 1) && intx_level(c))
        intx_assert(c);
}

void intr_reset(struct nvme_ctrl *c)
{
    for (unsigned iv = 0; iv < NVME_NR_VECTORS; iv++)
        c->vec[iv] = (struct nvme_vector){ 0 };
    c->coalescing = 0;
    c->intx_pending = false;
    intr_timer_update(c);
}

/* The client turned an interrupt type on or off: pick MSI-X or INTx the
 * way hardware does, by whether MSI-X is enabled. */
void intr_on_state(mu_ctx_t *ctx, enum mu_irq_type type, bool enabled)
{
    struct nvme_ctrl *c = mu_ctx_opaque(ctx);

    if (type != MU_IRQ_MSIX)
        return;
    ctrl_lock(c);
    c->msix = enabled;
    ctrl_unlock(c);
    ctrl_log(c, "interrupts: %s", enabled ? "MSI-X" : "INTx");
}
