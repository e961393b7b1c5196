/*
 * dma_log.c - dirty page logging for migration (DEVICE_FEATURE
 * DMA_LOGGING_START / STOP / REPORT), the way VFIO's device DMA logging
 * works: the client names a page size and the ranges to watch, the device's
 * writes are recorded one bit per page, and each report hands the bits over
 * and clears them.
 *
 * This file owns the wire side and the bit arithmetic; dma.c owns the
 * table, its lock and the per-region bitmaps' lifetime, and calls the
 * mu_dirty_* functions with its lock held.
 *
 * A region's bitmap starts at the logging page holding its first byte, so
 * regions smaller than a logging page, or not aligned to one, still get a
 * bit for each page they touch; two such regions may share a page and both
 * report it.  Only device writes are recorded: mu_dma_put() of entries
 * taken for writing, mu_dma_write() and mu_dma_mark_dirty().  Bits of a
 * region removed before the next report are lost with it.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "private.h"
#include "mig.h"

struct log_range {
    uint64_t start, last;
};

struct mu_dma_log {
    uint64_t pgsize;
    unsigned shift;             /* log2(pgsize) */
    size_t nr_ranges;           /* 0: every address is logged */
    struct log_range ranges[];  /* sorted by start, disjoint, not adjacent */
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
    const struct log_range *x = a, *y = b;

    return x->start < y->start ? -1 : x->start > y->start;
}

/* Sort and merge overlapping or touching ranges, so a write is matched by
 * one binary search. */
static void normalize(struct mu_dma_log *log)
{
    size_t out = 0;

    qsort(log->ranges, log->nr_ranges, sizeof(log->ranges[0]), cmp_range);
    for (size_t i = 0; i < log->nr_ranges; i++) {
        struct log_range *prev = out > 0 ? &log->ranges[out - 1] : NULL;
        struct log_range cur = log->ranges[i];

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

/* struct vfu_dma_logging_control followed by exactly num_ranges ranges. */
static int parse_control(const uint8_t *data, size_t len,
                         struct mu_dma_log **out)
{
    struct vfu_dma_logging_control c;
    struct vfu_dma_logging_range rg;
    struct mu_dma_log *log;

    if (len < sizeof(c))
        return -EINVAL;
    memcpy(&c, data, sizeof(c));
    if (c.reserved != 0 || !valid_pgsize(c.page_size) ||
        len - sizeof(c) != (uint64_t)c.num_ranges * sizeof(rg))
        return -EINVAL;
    log = malloc(sizeof(*log) + c.num_ranges * sizeof(log->ranges[0]));
    if (log == NULL)
        return -ENOMEM;
    log->pgsize = c.page_size;
    log->shift = (unsigned)__builtin_ctzll(c.page_size);
    log->nr_ranges = c.num_ranges;
    for (uint32_t i = 0; i < c.num_ranges; i++) {
        memcpy(&rg, data + sizeof(c) + i * sizeof(rg), sizeof(rg));
        if (rg.length == 0 || rg.length - 1 > UINT64_MAX - rg.iova) {
            free(log);
            return -EINVAL;
        }
        log->ranges[i].start = rg.iova;
        log->ranges[i].last = rg.iova + (rg.length - 1);
    }
    normalize(log);
    *out = log;
    return 0;
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
        const struct log_range *rg = &log->ranges[lo];

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

/* ---------------- DEVICE_FEATURE ---------------- */

/* SET and PROBE replies are the request itself (protocol §3.13). */
static int echo(const struct mu_msg *msg, struct mu_reply *reply)
{
    uint8_t *p = reply->small;

    if (msg->len > sizeof(reply->small)) {
        p = malloc(msg->len);
        if (p == NULL)
            return -ENOMEM;
        reply->data = p;
        reply->data_free = true;
    }
    memcpy(p, msg->body, msg->len);
    reply->len = msg->len;
    return 0;
}

static int log_start(mu_ctx_t *ctx, const uint8_t *data, size_t len)
{
    struct mu_dma_log *log;
    int rc;

    rc = parse_control(data, len, &log);
    if (rc < 0)
        return rc;
    rc = mu_dma_log_start(ctx, log);
    if (rc == 0)
        mu_log(ctx, MU_LOG_INFO, "DMA logging started: %zu range(s), "
               "page size %#llx", log->nr_ranges,
               (unsigned long long)log->pgsize);
    return rc;
}

static int log_stop(mu_ctx_t *ctx, const uint8_t *data, size_t len)
{
    struct mu_dma_log *log;
    int rc;

    /* VFIO's STOP carries no data, QEMU's may repeat START's: take both. */
    if (len > 0) {
        rc = parse_control(data, len, &log);
        if (rc < 0)
            return rc;
        mu_dma_log_free(log);
    }
    mu_dma_log_stop(ctx);
    return 0;
}

static int log_report(mu_ctx_t *ctx, const struct vfu_device_feature *f,
                      const uint8_t *data, size_t len, struct mu_reply *reply)
{
    struct vfu_device_feature hdr = *f;
    struct vfu_dma_logging_report rq;
    uint64_t ps, nr_pages, bytes, full;
    uint8_t *buf;
    int rc;

    if (len != sizeof(rq))
        return -EINVAL;
    memcpy(&rq, data, sizeof(rq));
    ps = rq.page_size;
    if (!valid_pgsize(ps) || rq.length == 0 ||
        rq.length - 1 > UINT64_MAX - rq.iova || (rq.iova & (ps - 1)) != 0)
        return -EINVAL;
    nr_pages = (rq.length - 1) / ps + 1;
    bytes = (nr_pages / 64 + (nr_pages % 64 != 0)) * sizeof(uint64_t);
    full = sizeof(hdr) + sizeof(rq) + bytes;
    if (f->argsz < full || full > ctx->limits[MU_LIMIT_MSG_SIZE] - VFU_HDR_SIZE)
        return -EINVAL;
    buf = calloc(1, full);  /* 8-byte aligned: the bitmap at 32 is too */
    if (buf == NULL)
        return -ENOMEM;
    rc = mu_dma_log_report(ctx, rq.iova / ps, nr_pages, ps,
                           (uint64_t *)(buf + sizeof(hdr) + sizeof(rq)));
    if (rc < 0) {
        free(buf);
        return rc;
    }
    hdr.argsz = (uint32_t)full;
    memcpy(buf, &hdr, sizeof(hdr));
    memcpy(buf + sizeof(hdr), &rq, sizeof(rq));
    reply->data = buf;
    reply->data_free = true;
    reply->len = full;
    return 0;
}

int mu_handle_device_feature(mu_ctx_t *ctx, struct mu_msg *msg,
                             struct mu_reply *reply)
{
    const uint32_t get_set = VFU_FEATURE_GET | VFU_FEATURE_SET;
    struct vfu_device_feature f;
    const uint8_t *data;
    uint32_t supported;
    size_t len;
    int rc;

    rc = vfu_check_device_feature(msg->body, msg->len, msg->nfds, &f, &data,
                                  &len);
    if (rc < 0)
        return mu_refuse(ctx, rc, "malformed payload (%zu bytes, %u fds)",
                         msg->len, msg->nfds);
    switch (f.flags & VFU_FEATURE_MASK) {
    case VFU_FEATURE_DMA_LOGGING_START:
    case VFU_FEATURE_DMA_LOGGING_STOP:
        supported = VFU_FEATURE_SET;
        break;
    case VFU_FEATURE_DMA_LOGGING_REPORT:
        supported = VFU_FEATURE_GET;
        break;
    case VFU_FEATURE_MIGRATION:
    case VFU_FEATURE_MIG_DEVICE_STATE:
        return mu_mig_feature(ctx, msg, &f, data, len, reply);
    default:
        return mu_refuse(ctx, -ENOTSUP, "feature %u is not supported",
                         f.flags & VFU_FEATURE_MASK);
    }
    /* As VFIO: asking for an operation the feature lacks is EINVAL, even
     * when only probing. */
    if (f.flags & get_set & ~supported)
        return mu_refuse(ctx, -EINVAL, "feature %u does not take %s",
                         f.flags & VFU_FEATURE_MASK,
                         (f.flags & VFU_FEATURE_GET) ? "GET" : "SET");
    if (f.flags & VFU_FEATURE_PROBE)
        return echo(msg, reply);

    switch (f.flags & VFU_FEATURE_MASK) {
    case VFU_FEATURE_DMA_LOGGING_START:
        rc = log_start(ctx, data, len);
        break;
    case VFU_FEATURE_DMA_LOGGING_STOP:
        rc = log_stop(ctx, data, len);
        break;
    default:
        rc = log_report(ctx, &f, data, len, reply);
        if (rc < 0)
            return mu_refuse(ctx, rc, "DMA logging report: bad page size, "
                             "range or argsz, or logging not started");
        return rc;
    }
    if (rc < 0)
        return mu_refuse(ctx, rc, "DMA logging %s refused: bad control "
                         "(page size, ranges) or wrong state",
                         (f.flags & VFU_FEATURE_MASK) ==
                         VFU_FEATURE_DMA_LOGGING_START ? "start" : "stop");
    return echo(msg, reply);
}
