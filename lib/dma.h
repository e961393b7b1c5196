/*
 * dma.h - the DMA region table (dma.c), internal.
 */
#ifndef MUSER_DMA_H
#define MUSER_DMA_H

#include <stdbool.h>
#include <stdint.h>

#include "muser.h"
#include "dma_log.h"

/* ---- DMA (dma.c) ---- */
int mu_dma_init(mu_ctx_t *ctx);
void mu_dma_fini(mu_ctx_t *ctx);
/* The eventfd the SIGBUS handler writes (created by mu_dma_add for the
 * first region with an fd, on a realized context; -1 before), and what
 * the context thread does when it is readable: log the poisoned regions,
 * drop the client. */
int mu_dma_realize(mu_ctx_t *ctx);
int mu_dma_poison_fd(const mu_ctx_t *ctx);
/* The client went and its regions with it (after mu_dma_remove_all):
 * the SIGBUS eventfd goes too, the next client's first region makes
 * another.  Context thread. */
void mu_dma_client_gone(mu_ctx_t *ctx);
void mu_dma_on_poison(mu_ctx_t *ctx);
/* Remove every region (unmap callbacks with 'reason'). */
void mu_dma_remove_all(mu_ctx_t *ctx, enum mu_unmap_reason reason);
/*
 * Add a region: info->iova/size/prot, and fd_offset when fd >= 0 (fd < 0:
 * a region only DMA_READ/DMA_WRITE reach).  fd belongs to the table from
 * the call on, also when it fails.  0, or -EINVAL (empty, wrapping, no or
 * unknown prot, not page aligned, an fd that cannot back it), -EEXIST
 * (overlap refused), -ENOSPC (region limit), -ENOMEM, or the map
 * callback's error.  Context thread.
 */
int mu_dma_add(mu_ctx_t *ctx, const struct mu_dma_info *info, int fd);
/* Remove the regions in [iova, iova + size): all of them, or -EINVAL and
 * none when the range cuts one; 0 when it names none.  Context thread. */
int mu_dma_remove(mu_ctx_t *ctx, uint64_t iova, uint64_t size);
/* Periodic housekeeping: evict mappings idle past the limit. */
void mu_dma_tick(mu_ctx_t *ctx);
/* The region holding iova: its last byte and whether it has an fd.
 * -ENOENT when unmapped, -EACCES when it lacks prot.  Thread-safe. */
int mu_dma_lookup(mu_ctx_t *ctx, uint64_t iova, unsigned prot,
                  uint64_t *last, bool *has_fd);

/*
 * Dirty page logging: the table's side.  The bitmaps are dma_log.h's;
 * DEVICE_FEATURE is decoded by cmd_feature.c.  Context thread.
 */
/* Takes log (freed on failure); -EBUSY when already logging. */
int mu_dma_log_start(mu_ctx_t *ctx, struct mu_dma_log *log);
void mu_dma_log_stop(mu_ctx_t *ctx);
/* Read-and-clear pages [first_page, first_page + nr_pages) into bitmap;
 * -EINVAL when not logging at pgsize. */
int mu_dma_log_report(mu_ctx_t *ctx, uint64_t first_page, uint64_t nr_pages,
                      uint64_t pgsize, uint64_t *bitmap);

#endif /* MUSER_DMA_H */
