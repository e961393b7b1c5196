/*
 * mig.h - live migration, the library's side (mig.c): the hooks the rest
 * of the library calls.  Each is a no-op, or says "not quiet", for a
 * device that did not call mu_mig_setup().
 */
#ifndef MUSER_MIG_H
#define MUSER_MIG_H

#include <stdbool.h>
#include <stdint.h>

#include "private.h"
#include "mig_wire.h"

/*
 * True while the device is stopped for migration (STOP, STOP_COPY,
 * RESUMING, ERROR): DMA is refused (-EPERM), interrupts are held, region
 * accesses but config space get EBUSY.  Thread-safe, lock-free.
 */
static inline bool mu_mig_quiet(const mu_ctx_t *ctx)
{
    return __atomic_load_n(&ctx->mig_quiet, __ATOMIC_ACQUIRE);
}

/* The page size to put under "migration" in VERSION, 0 for none. */
uint64_t mu_mig_version_pgsize(const mu_ctx_t *ctx);
/* DEVICE_FEATURE MIGRATION and MIG_DEVICE_STATE (dma_log.c routes them). */
int mu_mig_feature(mu_ctx_t *ctx, const struct mu_msg *msg,
                   const struct vfu_device_feature *f, const uint8_t *data,
                   size_t len, struct mu_reply *reply);
int mu_handle_mig_data_read(mu_ctx_t *ctx, struct mu_msg *msg,
                            struct mu_reply *reply);
int mu_handle_mig_data_write(mu_ctx_t *ctx, struct mu_msg *msg,
                             struct mu_reply *reply);
/* The client went away (mu_ctx_detach): walk to a state a new client can
 * pick up from (muser.h, mu_mig_setup). */
void mu_mig_client_gone(mu_ctx_t *ctx);
/* Device reset: back to RUNNING. */
void mu_mig_reset(mu_ctx_t *ctx);
void mu_mig_fini(mu_ctx_t *ctx);

/* irq.c: deliver what was held while quiet. */
void mu_irqs_release_held(mu_ctx_t *ctx);

#endif /* MUSER_MIG_H */
