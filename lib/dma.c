/*
 * dma.c - placeholder until the DMA region table lands: DMA_MAP, DMA_UNMAP
 * and DEVICE_FEATURE answer a clean error (issue "foundation", item 4).
 */
#include <errno.h>
#include "private.h"

int mu_dma_init(mu_ctx_t *ctx) { (void)ctx; return 0; }
void mu_dma_fini(mu_ctx_t *ctx) { (void)ctx; }
void mu_dma_remove_all(mu_ctx_t *ctx, enum mu_unmap_reason reason) { (void)ctx; (void)reason; }
int mu_handle_dma_map(mu_ctx_t *ctx, struct mu_msg *msg, struct mu_reply *reply)
{ (void)ctx; (void)msg; (void)reply; return -ENOTSUP; }
int mu_handle_dma_unmap(mu_ctx_t *ctx, struct mu_msg *msg, struct mu_reply *reply)
{ (void)ctx; (void)msg; (void)reply; return -ENOTSUP; }
int mu_handle_device_feature(mu_ctx_t *ctx, struct mu_msg *msg, struct mu_reply *reply)
{ (void)ctx; (void)msg; (void)reply; return -ENOTSUP; }
void mu_dma_tick(mu_ctx_t *ctx) { (void)ctx; }
void mu_dma_set_overlap_policy(mu_ctx_t *ctx, enum mu_overlap_policy p) { (void)ctx; (void)p; }
