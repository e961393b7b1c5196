/*
 * dma_log.h - dirty page bitmaps for migration: a logging setup (page size,
 * the ranges to watch) and one bitmap per DMA region.
 *
 * Pure: no context, no protocol, no locking.  dma.c owns the bitmaps'
 * lifetime and calls these with its lock held; cmd_feature.c builds the
 * setup from DEVICE_FEATURE DMA_LOGGING_START.
 *
 * A region's bitmap starts at the logging page holding its first byte, so
 * regions smaller than a logging page, or not aligned to one, still get a
 * bit for each page they touch; two such regions may share a page and both
 * report it.
 */
#ifndef MUSER_DMA_LOG_H
#define MUSER_DMA_LOG_H

#include <stddef.h>
#include <stdint.h>

struct mu_dma_log;      /* logging page size and ranges */
struct mu_dirty;        /* one region's dirty pages */

/* A range to log, [start, last] (last >= start). */
struct mu_log_range {
    uint64_t start, last;
};

/*
 * A logging setup for page size pgsize (a power of two, at least 4 KiB)
 * and the n ranges given (copied; any order, may overlap; n == 0: every
 * address).  0, -EINVAL (page size, or a range with last < start) or
 * -ENOMEM.
 */
int mu_dma_log_new(uint64_t pgsize, const struct mu_log_range *ranges,
                   size_t n, struct mu_dma_log **out);
void mu_dma_log_free(struct mu_dma_log *log);
uint64_t mu_dma_log_pgsize(const struct mu_dma_log *log);
/* Ranges after merging the overlapping and touching ones. */
size_t mu_dma_log_nr_ranges(const struct mu_dma_log *log);

/* Bytes a bitmap for [start, last] takes, and the size of an existing one
 * (0 for NULL): the DMA table holds them to MU_LIMIT_DIRTY_BITMAP_BYTES. */
uint64_t mu_dirty_size(const struct mu_dma_log *log, uint64_t start,
                       uint64_t last);
size_t mu_dirty_bytes(const struct mu_dirty *d);
/* A clean bitmap for [start, last]; NULL when out of memory. */
struct mu_dirty *mu_dirty_new(const struct mu_dma_log *log, uint64_t start,
                              uint64_t last);
void mu_dirty_free(struct mu_dirty *d);
/* Record a write to [start, last] (clipped to d and to the logged
 * ranges); d NULL: nothing. */
void mu_dirty_mark(struct mu_dirty *d, const struct mu_dma_log *log,
                   uint64_t start, uint64_t last);
/* OR the bits of pages [first_page, first_page + nr_pages) into bitmap
 * (bit 0 = first_page) and clear them in d: each dirtying is reported
 * once. */
void mu_dirty_harvest(struct mu_dirty *d, uint64_t first_page,
                      uint64_t nr_pages, uint64_t *bitmap);

#endif /* MUSER_DMA_LOG_H */
