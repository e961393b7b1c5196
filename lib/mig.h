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
/*
 * For the commands (cmd_mig.c, context thread).  Whether the device
 * migrates (the others need it to); the migration flags it offers
 * (MIG_F_*, mig_fsm.h); the current state (enum mig_state) and a walk to
 * another (0, or -EINVAL/-errno of the device: refused); its save data,
 * up to size bytes into buf (*got: how many; 0 at the end), only in a
 * saving state (-EINVAL otherwise); and loading a piece of stream, only in
 * RESUMING.  The errors are the device's callback's, or -EIO.
 */
bool mu_mig_present(const mu_ctx_t *ctx);
uint64_t mu_mig_flags(const mu_ctx_t *ctx);
uint32_t mu_mig_get_state(const mu_ctx_t *ctx);
int mu_mig_set_state(mu_ctx_t *ctx, uint32_t to);
int mu_mig_save(mu_ctx_t *ctx, uint8_t *buf, size_t size, size_t *got);
int mu_mig_load(mu_ctx_t *ctx, const uint8_t *buf, size_t size);
/* The client went away (mu_ctx_detach): walk to a state a new client can
 * pick up from (muser.h, mu_mig_setup). */
void mu_mig_client_gone(mu_ctx_t *ctx);
/* Device reset: back to RUNNING. */
void mu_mig_reset(mu_ctx_t *ctx);
void mu_mig_fini(mu_ctx_t *ctx);

/* irq.c: deliver what was held while quiet. */
void mu_irqs_release_held(mu_ctx_t *ctx);

#endif /* MUSER_MIG_H */
