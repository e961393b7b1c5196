/*
 * irq.h - interrupts (irq.c), internal.
 */
#ifndef MUSER_IRQ_H
#define MUSER_IRQ_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "muser.h"

/* ---- interrupts (irq.c) ---- */
int mu_irqs_init(mu_ctx_t *ctx);
void mu_irqs_fini(mu_ctx_t *ctx);
/* Close every client fd and clear masks/pending (disconnect and reset). */
void mu_irqs_reset(mu_ctx_t *ctx);
/*
 * The client's setup of a range of vectors (SET_IRQS, decoded by
 * cmd_irq.c): fire, mask or unmask them (data NONE: all, BOOL: those whose
 * byte is non-zero), or give them eventfds for that action (EVENTFD: one
 * fd a vector, or none to remove them).  count 0 with a trigger and no
 * data from vector 0 turns the whole index off.
 */
enum mu_irq_action { MU_IRQ_ACT_TRIGGER, MU_IRQ_ACT_MASK, MU_IRQ_ACT_UNMASK };
enum mu_irq_data { MU_IRQ_DATA_NONE, MU_IRQ_DATA_BOOL, MU_IRQ_DATA_EVENTFD };
struct mu_irq_set {
    unsigned type;              /* enum mu_irq_type */
    uint32_t start, count;
    enum mu_irq_action action;
    enum mu_irq_data data;
    const uint8_t *bools;       /* DATA_BOOL: count bytes */
    int *fds;                   /* DATA_EVENTFD: nfds (0 or count) fds */
    unsigned nfds;
};
/*
 * Apply it.  On success the fds are irq.c's (each set to -1 in s->fds);
 * on failure none is taken and the caller closes them.  0 or -EINVAL
 * (index without vectors, range past them, an inconsistent request, an
 * fd that is not an eventfd), -errno of epoll.  Context thread.
 */
int mu_irq_set(mu_ctx_t *ctx, struct mu_irq_set *s);
/* An irq mask/unmask eventfd registered by the client fired. */
void mu_irqs_fd_event(mu_ctx_t *ctx, uint32_t idx);
/* Guest config writes to the MSI / MSI-X capability. */
void mu_irqs_msi_ctrl(mu_ctx_t *ctx, bool enable, uint32_t mask_bits);
void mu_irqs_msix_ctrl(mu_ctx_t *ctx, bool enable, bool function_mask);
/* The guest cleared INTx disable in the command register: a pending INTx
 * is delivered. */
void mu_irqs_intx_unblocked(mu_ctx_t *ctx);
/* BAR accesses to the MSI-X table or PBA; returns -ENOENT when the access
 * is not in either (the device's callback takes it). */
ssize_t mu_irqs_msix_access(mu_ctx_t *ctx, unsigned bar, uint8_t *buf,
                            size_t count, uint64_t offset, bool is_write);
uint32_t mu_irqs_count(mu_ctx_t *ctx, unsigned type);

#endif /* MUSER_IRQ_H */
