/*
 * dma_log.c - dirty page bitmaps (dma_log.h): the logging setup and the bit
 * arithmetic, the way VFIO's device DMA logging works: the client names a
 * page size and the ranges to watch, the device's writes are recorded one
 * bit per page, and each report hands the bits over and clears them.
 *
 * No context and no protocol here: cmd_feature.c decodes DEVICE_FEATURE,
 * dma.c owns the table, its lock and the per-region bitmaps' lifetime.
 * Only device writes are recorded: mu_dma_put() of entries taken for
 * writing, mu_dma_write() and mu_dma_mark_dirty().  Bits of a region
 * removed before the next report are lost with it.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "dma_log.h"

struct mu_dma_log {
    uint64_t pgsize;
    unsigned shift;             /* log2(pgsize) */
    size_t nr_ranges;           /* 0: every address is logged */
    struct mu_log_range ranges[];  /* sorted by start, disjoint, not adjacent */
};

struct mu_dirty {
    uint64_t first_page;        /* page number (iova >> shift) of bit 0 */
    uint64_t nr_pages;
    unsigned shift;
    uint64_t bits[];
};

static uint64_t mu_dirty_size_of(const struct mu_dirty *d)
{
    return sizeof(*d) + (d->nr_pages / 64 + (d->nr_pages % 64 != 0)) *
                        sizeof(uint64_t);
}

/* ---------------- logging parameters ---------------- */

void mu_dma_log_free(struct mu_dma_log *log)
{
    free(log);
}

uint64_t mu_dma_log_pgsize(const struct mu_dma_log *log)
{
    return log->pgsize;
}

static bool valid_pgsize(uint64_t ps)
{
    return ps >= 4096 && (ps & (ps - 1)) == 0;
}

static int cmp_range(const void *a, const void *b)
{
    const struct mu_log_range *x = a, *y = b;

    return x->start < y->start ? -1 : x->start > y->start;
}

/* Sort and merge overlapping or touching ranges, so a write is matched by
 * one binary search. */
static void normalize(struct mu_dma_log *log)
{
    size_t out = 0;

    qsort(log->ranges, log->nr_ranges, sizeof(log->ranges[0]), cmp_range);
    for (size_t i = 0; i < log->nr_ranges; i++) {
        struct mu_log_range *prev = out > 0 ? &log->ranges[out - 1] : NULL;
        struct mu_log_range cur = log->ranges[i];

        if (prev != NULL && (prev->last == UINT64_MAX ||
                             cur.start <= prev->last + 1)) {
            if (cur.last > prev->last)
                prev->last = cur.last;
            continue;
        }
        log->ranges[out++] = cur;
    }
    log->nr_ranges = out;
}

int mu_dma_log_new(uint64_t pgsize, const struct mu_log_range *ranges,
                   size_t n, struct mu_dma_log **out)
{
    struct mu_dma_log *log;

    if (!valid_pgsize(pgsize) ||
        n > (SIZE_MAX - sizeof(*log)) / sizeof(log->ranges[0]))
        return -EINVAL;
    for (size_t i = 0; i < n; i++) {
        if (ranges[i].last < ranges[i].start)
            return -EINVAL;
    }
    log = malloc(sizeof(*log) + n * sizeof(log->ranges[0]));
    if (log == NULL)
        return -ENOMEM;
    log->pgsize = pgsize;
    log->shift = (unsigned)__builtin_ctzll(pgsize);
    log->nr_ranges = n;
    if (n > 0)
        memcpy(log->ranges, ranges, n * sizeof(log->ranges[0]));
    normalize(log);
    *out = log;
    return 0;
}

size_t mu_dma_log_nr_ranges(const struct mu_dma_log *log)
{
    return log->nr_ranges;
}

/* ---------------- bitmaps ---------------- */

uint64_t mu_dirty_size(const struct mu_dma_log *log, uint64_t start,
                       uint64_t last)
{
    uint64_t nr = (last >> log->shift) - (start >> log->shift) + 1;

    /* nr <= 2^52, so the byte count cannot wrap. */
    return sizeof(struct mu_dirty) + (nr / 64 + (nr % 64 != 0)) * sizeof(uint64_t);
}

size_t mu_dirty_bytes(const struct mu_dirty *d)
{
    return d == NULL ? 0 : (size_t)mu_dirty_size_of(d);
}

struct mu_dirty *mu_dirty_new(const struct mu_dma_log *log, uint64_t start,
                              uint64_t last)
{
    uint64_t first = start >> log->shift;
    uint64_t nr = (last >> log->shift) - first + 1;
    uint64_t size = mu_dirty_size(log, start, last);
    struct mu_dirty *d;

    if (size > SIZE_MAX)
        return NULL;
    d = calloc(1, (size_t)size);
    if (d == NULL)
        return NULL;
    d->first_page = first;
    d->nr_pages = nr;
    d->shift = log->shift;
    return d;
}

void mu_dirty_free(struct mu_dirty *d)
{
    free(d);
}

/* Set bits [from, to] (inclusive), a word at a time where possible. */
static void set_bits(uint64_t *w, uint64_t from, uint64_t to)
{
    while (from <= to) {
        if (from % 64 == 0 && to - from >= 63) {
            w[from / 64] = UINT64_MAX;
            from += 64;
        } else {
            w[from / 64] |= 1ull << (from % 64);
            from++;
        }
    }
}

static void mark_pages(struct mu_dirty *d, uint64_t start, uint64_t last)
{
    uint64_t lo = start >> d->shift, hi = last >> d->shift;
    uint64_t end = d->first_page + (d->nr_pages - 1);

    /* The caller clips to the region; clip again rather than trust it. */
    if (lo < d->first_page)
        lo = d->first_page;
    if (hi > end)
        hi = end;
    if (lo <= hi)
        set_bits(d->bits, lo - d->first_page, hi - d->first_page);
}

void mu_dirty_mark(struct mu_dirty *d, const struct mu_dma_log *log,
                   uint64_t start, uint64_t last)
{
    size_t lo = 0, hi = log->nr_ranges;

    if (d == NULL)
        return;
    if (log->nr_ranges == 0) {
        mark_pages(d, start, last);
        return;
    }
    /* First logged range ending at or after start. */
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;

        if (log->ranges[mid].last < start)
            lo = mid + 1;
        else
            hi = mid;
    }
    for (; lo < log->nr_ranges && log->ranges[lo].start <= last; lo++) {
        const struct mu_log_range *rg = &log->ranges[lo];

        mark_pages(d, start > rg->start ? start : rg->start,
                   last < rg->last ? last : rg->last);
    }
}

/*
 * OR the bits of pages [first, first + nr) into out (bit 0 = page first)
 * and clear them in d: each dirtying is reported once.
 */
void mu_dirty_harvest(struct mu_dirty *d, uint64_t first, uint64_t nr,
                      uint64_t *out)
{
    uint64_t lo, hi, j;

    if (d == NULL)
        return;
    lo = first > d->first_page ? first : d->first_page;
    hi = first + (nr - 1);
    if (hi > d->first_page + (d->nr_pages - 1))
        hi = d->first_page + (d->nr_pages - 1);
    for (j = lo - d->first_page; lo <= hi; lo++, j++) {
        uint64_t *w = &d->bits[j / 64];

        if (*w == 0 && j % 64 == 0 && hi - lo >= 63) {
            lo += 63;       /* a clean word: skip it */
            j += 63;
            continue;
        }
        if (*w & (1ull << (j % 64))) {
            *w &= ~(1ull << (j % 64));
            out[(lo - first) / 64] |= 1ull << ((lo - first) % 64);
        }
    }
}
