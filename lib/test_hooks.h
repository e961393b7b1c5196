/*
 * test_hooks.h - internal calls for muser's own tests and fuzzers, which
 * link the library's objects (muser_internal_dep).  Not installed, not
 * exported (the library is built with hidden visibility and these are not
 * in the public headers).
 */
#ifndef MUSER_TEST_HOOKS_H
#define MUSER_TEST_HOOKS_H

#include "muser.h"

/*
 * Change the DMA overlap handling on a realized context, which the public
 * setters refuse (-EBUSY).  Only between clients (no DMA_MAP in flight):
 * the fuzzers vary it per input on one long-lived context.
 */
void mu_dma__set_overlap(mu_ctx_t *ctx, enum mu_overlap_policy p,
                         mu_dma_overlap_cb_t cb);

#endif
