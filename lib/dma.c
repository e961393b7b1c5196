/*
 * dma.c - the DMA region table: guest memory the client hands the device.
 *
 * Regions live in an interval tree keyed on [iova, iova + size - 1], so an
 * overlap query costs O(log n + k).  Translations read a snapshot of the
 * tree laid out for cache-friendly search (itree_snap.h), rebuilt lazily
 * after the table changes; until then they walk the tree.  Regions never
 * overlap inside the table: an overlapping DMA_MAP is either refused or
 * replaces what it overlaps (design notes, "The problem the DMA table
 * solves").  Every region whose map callback
 * accepted it gets exactly one unmap callback, whatever removes it.
 *
 * Memory is mapped lazily: DMA_MAP only checks and keeps the fd, and the
 * first translation into a region mmaps all of it.  Mapped regions sit on
 * an LRU list in the order of their last put, and idle ones are unmapped
 * again (fd kept) when the mapped-bytes budget or the idle limit is passed;
 * the next translation maps them anew.  Regions in use stay where they were
 * on the list (the evictor drops them from it when it meets them, and the
 * last put puts them back at the tail).  get + put is the hot path, so a
 * put only stamps the region; the list is put in order when an eviction
 * reads it (lru.h), exactly as if every put had moved its region.
 *
 * Each region holds its file through the held-file table (dma_file.h): one
 * fd per file and access mode, however many regions of it are mapped.
 *
 * Threads and locking
 * -------------------
 * The table is changed only by the context thread (DMA_MAP, DMA_UNMAP,
 * disconnect, reset, destroy, dirty logging start/stop, mu_dma_tick).
 * mu_dma_get, mu_dma_put, mu_dma_read, mu_dma_write, mu_dma_mark_dirty
 * and mu_dma_get_stats may run on any thread at the same time.  One mutex,
 * dma->lock, covers the tree's shape, each region's refs, mapping, LRU
 * links, last use and dirty bits, the stats and the logging state.  The
 * context thread changes the tree only with the lock held; it may read the
 * tree without it, since no other thread writes it.  Region fields set
 * before insertion (node, info, fd) are immutable while the region is
 * findable, so readers need no more than the lock they took to find it.
 *
 * Callbacks (map, unmap, overlap) run on the context thread WITHOUT the
 * lock, so they may call any DMA function, including mu_dma_put() of
 * references they hold.  The log sink is never called with the lock held
 * either, for the same reason.
 *
 * Removal (every path: DMA_UNMAP, overlap, unmap-all, disconnect, reset,
 * destroy) goes in two steps: under the lock the regions leave the tree and
 * are marked removing, so no new translation finds them; then, unlocked,
 * their unmap callbacks run (the memory is still there, references still
 * work); then for each region we wait on the condvar until every reference
 * is put, munmap, close the fd and free.  mu_dma_put() broadcasts when a
 * removing region's last reference goes.  The wait never holds the lock
 * across a callback, so a callback that puts its references cannot
 * deadlock; a reference the context thread keeps past its unmap callback
 * would (the header says so).
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "itree.h"
#include "range.h"
#include "itree_snap.h"
#include "private.h"
#include "thread_check.h"
#include "dma.h"
#include "dma_file.h"
#include "lru.h"
#include "sigbus.h"
#include "mig.h"
#include "test_hooks.h"

#define MU_DMA_PROT_ALL (MU_DMA_READ | MU_DMA_WRITE)

struct mu_dma_region {
    struct itree_node node;         /* [iova, iova + size - 1] */
    struct mu_dma_info info;
    int fd;                         /* -1: only DMA_READ/DMA_WRITE reach it;
                                       else file->fd */
    struct mu_dma_file *file;       /* the held file, NULL without fd */
    void *priv;
    void *map;                      /* NULL until faulted in, or evicted */
    int sigbus_slot;                /* while mapped: its SIGBUS table slot */
    bool poisoned;                  /* a SIGBUS hit it: never map it again */
    bool poison_told;               /* ...and the context has acted on it */
    uint64_t poison_iova;           /* where */
    unsigned refs;                  /* sg entries handed out, not put yet */
    uint64_t last_use_ns;           /* last put, while dma->aging */
    bool removing;                  /* out of the tree, draining refs */
    bool accepted;                  /* map callback said yes: owed an unmap
                                       callback */
    struct lru_node lru;            /* on the LRU (lru.h): mapped, not
                                       removing; may be in use */
    struct mu_dma_region *doom_next;    /* removal batch (context thread) */
    struct mu_dirty *dirty;         /* pages the device wrote, if logging */
};

struct mu_dma {
    pthread_mutex_t lock;
    pthread_cond_t cond;            /* a removing region lost its last ref */
    struct itree tree;
    struct itree_snap snap;         /* the tree, laid out for lookups */
    struct mu_dma_files files;      /* the regions' fds, one a file
                                       (context thread) */
    struct lru lru;                 /* mappings, least recently put first */
    struct mu_dma_stats stats;
    enum mu_overlap_policy policy;
    mu_dma_overlap_cb_t overlap_cb;
    mu_dma_map_cb_t map_cb;
    mu_dma_unmap_cb_t unmap_cb;
    struct mu_dma_log *log;         /* NULL when not logging */
    bool logging;                   /* log != NULL, readable without lock */
    bool aging;                     /* an idle limit is in force, so puts
                                       record the time; readable without
                                       the lock */
    uint64_t dirty_bytes;           /* all dirty bitmaps (atomic: freed
                                       without the lock) */
    int poison_fd;                  /* eventfd the SIGBUS handler writes */
};

static inline struct mu_dma_region *to_region(struct itree_node *n)
{
    return n == NULL ? NULL : itree_entry(n, struct mu_dma_region, node);
}

/*
 * The region holding p, from the tree.  Regions in the table never
 * overlap, so this is a plain binary-search-tree descent: one node a level
 * (itree_find_point() must allow for overlaps and reads two), the child
 * picked with a conditional move rather than a branch.
 */
static inline struct itree_node *tree_at(const struct itree *t, uint64_t p)
{
    struct itree_node *n = t->root;

    while (n != NULL) {
        if (p - n->start <= n->last - n->start)     /* start <= p <= last */
            return n;
        n = p < n->start ? n->left : n->right;
    }
    return NULL;
}

/*
 * Up to this many regions the tree is three levels, all in cache, and
 * walking it costs less than the snapshot's setup: the snapshot is built
 * only for larger tables.
 */
#define SNAP_MIN_REGIONS 8

/* A lookup the tree answered because the snapshot is stale: rebuild the
 * snapshot once the lookups have paid for it. */
static __attribute__((noinline)) void stale_lookup(struct mu_dma *dma)
{
    if (itree_snap_want_rebuild(&dma->snap, dma->tree.count))
        itree_snap_build(&dma->snap, &dma->tree);   /* -ENOMEM: stays stale */
}

/*
 * The region holding p (lock held).  Translation is the hot path, and in a
 * large table a tree descent is a chain of cache misses, so lookups go to
 * an Eytzinger-ordered snapshot of the tree (itree_snap.h), rebuilt lazily
 * after the table changes.
 */
static inline struct mu_dma_region *region_at(struct mu_dma *dma, uint64_t p)
{
    struct itree_node *n;

    if (__builtin_expect(!dma->snap.stale, 1))
        return to_region(itree_snap_find(&dma->snap, p));
    n = tree_at(&dma->tree, p);
    if (dma->tree.count > SNAP_MIN_REGIONS)
        stale_lookup(dma);
    return to_region(n);
}

/* Idle ages need no precision: the context's clock, coarse. */
static inline uint64_t coarse_ns(const mu_ctx_t *ctx)
{
    return mu_clock_coarse_ns(&ctx->clock);
}

/* Limits may be changed by the context thread while others translate. */
static inline uint64_t limit(mu_ctx_t *ctx, enum mu_limit l)
{
    return __atomic_load_n(&ctx->limits[l], __ATOMIC_RELAXED);
}

static inline bool range_ok(uint64_t iova, size_t len)
{
    return len != 0 && len - 1 <= UINT64_MAX - iova;
}

/* ---------------- setup ---------------- */

int mu_dma_init(mu_ctx_t *ctx)
{
    struct mu_dma *dma = calloc(1, sizeof(*dma));
    pthread_condattr_t ca;

    if (dma == NULL)
        return -ENOMEM;
    pthread_mutex_init(&dma->lock, NULL);
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&dma->cond, &ca);
    pthread_condattr_destroy(&ca);
    itree_init(&dma->tree);
    itree_snap_init(&dma->snap);
    mu_dma_files_init(&dma->files);
    lru_init(&dma->lru);
    dma->poison_fd = -1;        /* mu_dma_realize() */
    dma->policy = ctx->tran != NULL ? ctx->tran->default_overlap
                                    : MU_OVERLAP_REJECT;
    ctx->dma = dma;
    return 0;
}

void mu_dma_fini(mu_ctx_t *ctx)
{
    struct mu_dma *dma = ctx->dma;

    if (dma == NULL)
        return;
    mu_dma_remove_all(ctx, MU_UNMAP_DESTROY);     /* stops logging too */
    itree_snap_fini(&dma->snap);
    mu_dma_files_fini(&dma->files);
    if (dma->poison_fd >= 0)
        close(dma->poison_fd);
    pthread_cond_destroy(&dma->cond);
    pthread_mutex_destroy(&dma->lock);
    free(dma);
    ctx->dma = NULL;
}

int mu_dma_set_callbacks(mu_ctx_t *ctx, mu_dma_map_cb_t map,
                         mu_dma_unmap_cb_t unmap)
{
    if (ctx->realized)
        return -EBUSY;
    ctx->dma->map_cb = map;
    ctx->dma->unmap_cb = unmap;
    return 0;
}

int mu_dma_set_overlap_policy(mu_ctx_t *ctx, enum mu_overlap_policy p)
{
    if (ctx->realized)
        return -EBUSY;
    if (p != MU_OVERLAP_REJECT && p != MU_OVERLAP_REPLACE)
        return -EINVAL;
    ctx->dma->policy = p;
    return 0;
}

enum mu_overlap_policy mu_dma_get_overlap_policy(const mu_ctx_t *ctx)
{
    return ctx->dma->policy;
}

int mu_dma_set_overlap_cb(mu_ctx_t *ctx, mu_dma_overlap_cb_t cb)
{
    if (ctx->realized)
        return -EBUSY;
    ctx->dma->overlap_cb = cb;
    return 0;
}

void mu_dma__set_overlap(mu_ctx_t *ctx, enum mu_overlap_policy p,
                         mu_dma_overlap_cb_t cb)
{
    ctx->dma->policy = p;
    ctx->dma->overlap_cb = cb;
}

const struct mu_dma_info *mu_dma_region_info(const mu_dma_region_t *r)
{
    return &r->info;
}

void mu_dma_region_set_priv(mu_dma_region_t *r, void *priv)
{
    r->priv = priv;
}

void *mu_dma_region_priv(const mu_dma_region_t *r)
{
    return r->priv;
}

const char *mu_unmap_reason_str(enum mu_unmap_reason reason)
{
    static const char *const names[] = {
        [MU_UNMAP_CLIENT] = "client",
        [MU_UNMAP_OVERLAP] = "overlap",
        [MU_UNMAP_ALL] = "unmap-all",
        [MU_UNMAP_DISCONNECT] = "disconnect",
        [MU_UNMAP_RESET] = "reset",
        [MU_UNMAP_DESTROY] = "destroy",
    };

    if ((unsigned)reason >= sizeof(names) / sizeof(names[0]))
        return "unknown";
    return names[reason];
}

/* ---------------- mappings and the LRU (lock held) ---------------- */

static inline struct mu_dma_region *lru_region(struct lru_node *n)
{
    return n == NULL ? NULL : itree_entry(n, struct mu_dma_region, lru);
}

/* The least recently put mapping, or NULL. */
static struct mu_dma_region *lru_head(struct mu_dma *dma)
{
    return lru_region(lru_oldest(&dma->lru));
}

/*
 * The SIGBUS slot goes first, so the handler never matches a range that is
 * no longer ours.  After a fault the range holds anonymous memory rather
 * than the file; munmap takes either.
 */
static void unmap_region(struct mu_dma *dma, struct mu_dma_region *r)
{
    uintptr_t fault = mu_sigbus_unregister(r->sigbus_slot);

    r->sigbus_slot = -1;
    if (fault != 0 && !r->poisoned) {
        r->poisoned = true;
        r->poison_iova = r->info.iova + (fault - (uintptr_t)r->map);
    }
    munmap(r->map, r->info.size);
    r->map = NULL;
    dma->stats.mapped_bytes -= r->info.size;
}

static void evict(struct mu_dma *dma, struct mu_dma_region *r)
{
    lru_del(&dma->lru, &r->lru);
    unmap_region(dma, r);
    dma->stats.evictions++;
}

/*
 * Evict the LRU head, unless it is in use: then it only leaves the list,
 * and its last put puts it back at the tail.  Either way the head moves on.
 */
static void evict_head(struct mu_dma *dma)
{
    struct mu_dma_region *r = lru_head(dma);

    if (r->refs > 0)
        lru_del(&dma->lru, &r->lru);
    else
        evict(dma, r);
}

/* Evict the least recently put idle mapping; false when there is none. */
static bool evict_one(struct mu_dma *dma)
{
    struct mu_dma_region *r;

    while ((r = lru_head(dma)) != NULL) {
        if (r->refs == 0) {
            evict(dma, r);
            return true;
        }
        evict_head(dma);    /* in use: only leaves the list */
    }
    return false;
}

/* Drop idle mappings, least recently put first, until under budget.
 * Regions in use are never evicted. */
static void enforce_budget(struct mu_dma *dma, uint64_t budget)
{
    while (budget != 0 && dma->stats.mapped_bytes > budget &&
           lru_head(dma) != NULL)
        evict_head(dma);
}

static int fault_in(mu_ctx_t *ctx, struct mu_dma_region *r)
{
    struct mu_dma *dma = ctx->dma;
    struct stat st;
    int prot = 0, slot;
    void *p;

    /* Its file failed us once (SIGBUS): zeros until the client is gone,
     * never the file again. */
    if (r->poisoned)
        return -EFAULT;
    /*
     * The client may have truncated the file since DMA_MAP.  Touching a
     * page past EOF raises SIGBUS in the device (answered with zeros, and
     * the client dropped: sigbus.c), so refuse instead.  (A truncation
     * after this point cannot be caught here.)  A file sealed against
     * shrinking cannot have shrunk below the size DMA_MAP checked, so it
     * is spared the fstat, a syscall that cost a third of the fault-in
     * (QEMU seals its memfds so).
     */
    if (!mu_dma_file_shrink_sealed(r->file) &&
        (fstat(r->fd, &st) < 0 || st.st_size < 0 ||
         !mu_range_ok(r->info.fd_offset, r->info.size,
                      (uint64_t)st.st_size)))
        return -EFAULT;
    if (r->info.prot & MU_DMA_READ)
        prot |= PROT_READ;
    if (r->info.prot & MU_DMA_WRITE)
        prot |= PROT_WRITE;
    p = mmap(NULL, r->info.size, prot, MAP_SHARED, r->fd,
             (off_t)r->info.fd_offset);
    /*
     * ENOMEM: out of address space, or of mappings (vm.max_map_count,
     * 65530 by default, is below the default region limit, and each
     * region is usually a mapping of its own).  Idle mappings are a cache:
     * drop them, least recently used first, until this one fits, rather
     * than fail a translation the budget would have allowed.
     */
    while (p == MAP_FAILED && errno == ENOMEM && evict_one(dma))
        p = mmap(NULL, r->info.size, prot, MAP_SHARED, r->fd,
                 (off_t)r->info.fd_offset);
    if (p == MAP_FAILED)
        return -errno;
    slot = mu_sigbus_register(p, r->info.size, prot, dma->poison_fd);
    if (slot < 0) {
        munmap(p, r->info.size);    /* unprotected memory: refuse it */
        return slot;
    }
    r->sigbus_slot = slot;
    r->map = p;
    dma->stats.mapped_bytes += r->info.size;
    dma->stats.faults++;
    enforce_budget(dma, limit(ctx, MU_LIMIT_DMA_MAPPED_BYTES));
    return 0;
}

/* A region in use keeps its place on the LRU: see the top of the file. */
static inline void take_ref(struct mu_dma_region *r)
{
    r->refs++;
}

/* now: the time to record as last use, or 0 when not aging. */
static inline void put_ref(struct mu_dma *dma, struct mu_dma_region *r,
                           uint64_t now)
{
    if (now != 0)
        r->last_use_ns = now;
    if (--r->refs > 0)
        return;
    if (r->removing)
        pthread_cond_broadcast(&dma->cond);
    else if (r->map != NULL)
        lru_touch(&dma->lru, &r->lru);  /* no list surgery: lru.h */
}

/* Record device writes to [start, last] in every region it touches. */
static void mark_range(struct mu_dma *dma, uint64_t start, uint64_t last)
{
    struct itree_node *n;

    if (dma->log == NULL)
        return;
    for (n = itree_first(&dma->tree, start, last); n != NULL;
         n = itree_next(n, start, last)) {
        struct mu_dma_region *r = to_region(n);

        mu_dirty_mark(r->dirty, dma->log,
                      start > n->start ? start : n->start,
                      last < n->last ? last : n->last);
    }
}

/* ---------------- removal ---------------- */

/*
 * Collect the regions overlapping [start, last] on a doom list, in address
 * order.  Nothing is changed yet: the caller may still decide not to
 * remove them.
 */
static size_t collect(struct mu_dma *dma, uint64_t start, uint64_t last,
                      struct mu_dma_region **list)
{
    struct mu_dma_region **tail = list;
    struct itree_node *n;
    size_t nr = 0;

    for (n = itree_first(&dma->tree, start, last); n != NULL;
         n = itree_next(n, start, last)) {
        *tail = to_region(n);
        tail = &(*tail)->doom_next;
        nr++;
    }
    *tail = NULL;
    return nr;
}

/* Step one: from here on no translation can find these regions. */
static void doom_unlink(struct mu_dma *dma, struct mu_dma_region *list)
{
    pthread_mutex_lock(&dma->lock);
    for (struct mu_dma_region *r = list; r != NULL; r = r->doom_next) {
        itree_remove(&dma->tree, &r->node);
        itree_snap_invalidate(&dma->snap);
        r->removing = true;
        lru_del(&dma->lru, &r->lru);
    }
    dma->stats.regions = dma->tree.count;
    pthread_mutex_unlock(&dma->lock);
}

static void dirty_free(struct mu_dma *dma, struct mu_dirty *d)
{
    __atomic_fetch_sub(&dma->dirty_bytes, mu_dirty_bytes(d), __ATOMIC_RELAXED);
    mu_dirty_free(d);
}

/*
 * A bitmap for [start, last], within MU_LIMIT_DIRTY_BITMAP_BYTES: the
 * client chooses region sizes (an fd-less region may span 2^63 bytes), so
 * without a budget it would choose how much we allocate.
 */
static struct mu_dirty *dirty_new(mu_ctx_t *ctx, const struct mu_dma_log *log,
                                  uint64_t start, uint64_t last)
{
    struct mu_dma *dma = ctx->dma;
    uint64_t size = mu_dirty_size(log, start, last);
    uint64_t used = __atomic_load_n(&dma->dirty_bytes, __ATOMIC_RELAXED);
    uint64_t budget = limit(ctx, MU_LIMIT_DIRTY_BITMAP_BYTES);
    struct mu_dirty *d;

    if (used > budget || size > budget - used)
        return NULL;
    d = mu_dirty_new(log, start, last);
    if (d != NULL)
        __atomic_fetch_add(&dma->dirty_bytes, size, __ATOMIC_RELAXED);
    return d;
}

/* Context thread (the held files are its own). */
static void region_free(struct mu_dma *dma, struct mu_dma_region *r)
{
    if (r->file != NULL)
        mu_dma_files_put(&dma->files, r->file);
    dirty_free(dma, r->dirty);
    free(r);
}

/* Wait (lock held) until the device has put every reference to r. */
static void wait_unused(mu_ctx_t *ctx, struct mu_dma_region *r)
{
    struct mu_dma *dma = ctx->dma;
    struct timespec ts;
    bool warned = false;

    while (r->refs > 0) {
        clock_gettime(CLOCK_MONOTONIC, &ts);
        ts.tv_sec += 1;
        if (pthread_cond_timedwait(&dma->cond, &dma->lock, &ts) != ETIMEDOUT ||
            warned || r->refs == 0)
            continue;
        /* Most likely a leaked mu_dma_get(): say so, then keep waiting,
         * since freeing memory the device still uses is worse. */
        warned = true;
        pthread_mutex_unlock(&dma->lock);
        mu_log(ctx, MU_LOG_WARN, "unmap of DMA region %#" PRIx64 "+%#" PRIx64
               " waits for references the device has not put",
               r->info.iova, r->info.size);
        pthread_mutex_lock(&dma->lock);
    }
}

/* Step two: unmap callbacks, then wait for references and free. */
static void doom_finish(mu_ctx_t *ctx, struct mu_dma_region *list,
                        enum mu_unmap_reason why)
{
    struct mu_dma *dma = ctx->dma;
    struct mu_dma_region *r, *next;

    for (r = list; r != NULL; r = r->doom_next) {
        if (r->accepted && dma->unmap_cb != NULL)
            dma->unmap_cb(ctx, r, why);
    }
    for (r = list; r != NULL; r = next) {
        next = r->doom_next;
        pthread_mutex_lock(&dma->lock);
        wait_unused(ctx, r);
        if (r->map != NULL)
            unmap_region(dma, r);
        if (r->accepted)
            dma->stats.unmaps++;
        pthread_mutex_unlock(&dma->lock);
        mu_dbg(ctx, "DMA region %#" PRIx64 "+%#" PRIx64 " removed (%s)",
               r->info.iova, r->info.size, mu_unmap_reason_str(why));
        region_free(dma, r);
    }
}

void mu_dma_remove_all(mu_ctx_t *ctx, enum mu_unmap_reason reason)
{
    struct mu_dma *dma = ctx->dma;
    struct mu_dma_region *list;

    if (dma == NULL)
        return;
    if (collect(dma, 0, UINT64_MAX, &list) > 0) {
        doom_unlink(dma, list);
        doom_finish(ctx, list, reason);
    }
    /* Logging belongs to the client session that started it. */
    if (reason == MU_UNMAP_DISCONNECT || reason == MU_UNMAP_DESTROY)
        mu_dma_log_stop(ctx);
}

/* ---------------- DMA_MAP ---------------- */

/*
 * The fd must be something mmap can back for the region's whole life: a
 * regular file (memfd, shm, hugetlbfs), long enough, opened and sealed so
 * that the mapping's protection is possible.  Each check is a syscall
 * (about a microsecond here: a sixth of a DMA_MAP round trip), so each
 * says why it is made:
 *
 *  - fstat: only a regular file is mapped (a device node's mmap may do
 *    anything or map something that is not memory; a socket or pipe
 *    cannot be mapped at all), and [fd_offset, fd_offset + size) must lie
 *    inside it: past its end the device's first access would raise SIGBUS.
 *    These two protect the server.  st_dev/st_ino also name the file for
 *    the held-file table (dma_file.h).
 *  - F_GETFL: an O_PATH or write-only fd passes fstat but cannot be
 *    mapped, nor a read-only one for writing.  mmap would refuse them only
 *    at the device's first access, far from the client's mistake: DMA_MAP
 *    refuses them.  The access mode also keys the held-file table.
 *  - F_GET_SEALS: a write-sealed memfd cannot back a writable shared
 *    mapping (refused here for the same reason), and a file sealed against
 *    shrinking spares every fault-in of the region an fstat.  A read-only
 *    map of a file the table holds already skips it: no write seal can
 *    matter, and what is known of the shrink seal is kept with the file.
 *
 * On success *st, *accmode (O_RDONLY or O_RDWR) and *shrink_sealed are
 * the file's.
 */
static int check_fd(mu_ctx_t *ctx, int fd, const struct mu_dma_info *m,
                    struct stat *st, int *accmode, bool *shrink_sealed)
{
    int fl, seals = 0;

    if (fstat(fd, st) < 0 || !S_ISREG(st->st_mode)) {
        mu_log(ctx, MU_LOG_WARN, "DMA_MAP fd is not a regular file");
        return mu_refuse(ctx, -EINVAL, "fd is not a regular file");
    }
    if (st->st_size < 0 ||
        !mu_range_ok(m->fd_offset, m->size, (uint64_t)st->st_size)) {
        mu_log(ctx, MU_LOG_WARN, "DMA_MAP %#" PRIx64 "+%#" PRIx64
               " at offset %#" PRIx64 " runs past the end of its file",
               m->iova, m->size, m->fd_offset);
        return mu_refuse(ctx, -EINVAL, "%#" PRIx64 "+%#" PRIx64 " at offset %#"
                         PRIx64 " runs past the end of its file (%#llx)",
                         m->iova, m->size, m->fd_offset,
                         (unsigned long long)st->st_size);
    }
    fl = fcntl(fd, F_GETFL);
    if (fl < 0 || (fl & O_PATH) || (fl & O_ACCMODE) == O_WRONLY)
        return mu_refuse(ctx, -EINVAL, "fd cannot be mapped for reading");
    *accmode = fl & O_ACCMODE;
    if ((m->prot & MU_DMA_WRITE) && *accmode != O_RDWR)
        return mu_refuse(ctx, -EINVAL, "writable mapping of a read-only fd");
    if (!(m->prot & MU_DMA_WRITE) &&
        mu_dma_files_find(&ctx->dma->files, st, *accmode) != NULL) {
        *shrink_sealed = false;     /* the held file knows better */
        return 0;
    }
    /* -EINVAL: a filesystem without seals (neither memfd nor hugetlbfs). */
    seals = fcntl(fd, F_GET_SEALS);
    if (seals < 0)
        seals = 0;
    if ((m->prot & MU_DMA_WRITE) &&
        (seals & (F_SEAL_WRITE | F_SEAL_FUTURE_WRITE)))
        return mu_refuse(ctx, -EINVAL, "writable mapping of a "
                         "write-sealed fd");
    *shrink_sealed = (seals & F_SEAL_SHRINK) != 0;
    return 0;
}

static struct mu_dma_region *region_new(mu_ctx_t *ctx,
                                        const struct mu_dma_info *m,
                                        bool has_fd)
{
    struct mu_dma *dma = ctx->dma;
    struct mu_dma_region *r = calloc(1, sizeof(*r));

    if (r == NULL)
        return NULL;
    r->node.start = m->iova;
    r->node.last = m->iova + (m->size - 1);
    r->info.iova = m->iova;
    r->info.size = m->size;
    r->info.fd_offset = has_fd ? m->fd_offset : 0;
    r->info.prot = m->prot;
    r->info.has_fd = has_fd;
    r->fd = -1;
    r->sigbus_slot = -1;
    r->last_use_ns = coarse_ns(ctx);
    if (dma->log != NULL) {
        r->dirty = dirty_new(ctx, dma->log, r->node.start, r->node.last);
        if (r->dirty == NULL) {
            free(r);
            return NULL;
        }
    }
    return r;
}

static enum mu_overlap_policy ask_policy(mu_ctx_t *ctx,
                                         const struct mu_dma_info *incoming,
                                         struct mu_dma_region *old, size_t nr,
                                         int *err)
{
    struct mu_dma *dma = ctx->dma;
    enum mu_overlap_policy p;
    mu_dma_region_t **v;
    size_t i = 0;

    *err = 0;
    if (dma->overlap_cb == NULL)
        return dma->policy;
    v = malloc(nr * sizeof(*v));
    if (v == NULL) {
        *err = -ENOMEM;
        return MU_OVERLAP_REJECT;
    }
    for (struct mu_dma_region *r = old; r != NULL; r = r->doom_next)
        v[i++] = r;
    p = dma->overlap_cb(ctx, incoming, v, nr);
    free(v);
    return p == MU_OVERLAP_REPLACE ? MU_OVERLAP_REPLACE : MU_OVERLAP_REJECT;
}

/*
 * Make room for r: settle overlaps by policy and check the region count.
 * On failure the table is unchanged.
 */
static int make_room(mu_ctx_t *ctx, const struct mu_dma_region *r)
{
    struct mu_dma *dma = ctx->dma;
    struct mu_dma_region *old;
    size_t nr = collect(dma, r->node.start, r->node.last, &old);
    enum mu_overlap_policy p = MU_OVERLAP_REPLACE;
    int rc = 0;

    if (nr > 0)
        p = ask_policy(ctx, &r->info, old, nr, &rc);
    if (rc < 0)
        return mu_refuse(ctx, rc, "out of memory asking the overlap policy");
    if (p != MU_OVERLAP_REPLACE) {
        pthread_mutex_lock(&dma->lock);
        dma->stats.rejects++;
        pthread_mutex_unlock(&dma->lock);
        mu_log(ctx, MU_LOG_WARN, "DMA_MAP %#" PRIx64 "+%#" PRIx64
               " overlaps %zu mapped region(s): refused", r->info.iova,
               r->info.size, nr);
        return mu_refuse(ctx, -EEXIST, "%#" PRIx64 "+%#" PRIx64 " overlaps "
                         "%zu mapped region(s)", r->info.iova, r->info.size, nr);
    }
    if (dma->tree.count - nr >= ctx->limits[MU_LIMIT_DMA_REGIONS]) {
        mu_log(ctx, MU_LOG_WARN, "DMA_MAP refused: %zu regions already",
               dma->tree.count);
        return mu_refuse(ctx, -ENOSPC, "%zu regions mapped already (limit "
                         "%" PRIu64 ")", (size_t)dma->tree.count,
                         ctx->limits[MU_LIMIT_DMA_REGIONS]);
    }
    if (nr > 0) {
        mu_log(ctx, MU_LOG_INFO, "DMA_MAP %#" PRIx64 "+%#" PRIx64
               " replaces %zu overlapped region(s)", r->info.iova,
               r->info.size, nr);
        doom_unlink(dma, old);
        doom_finish(ctx, old, MU_UNMAP_OVERLAP);
    }
    return 0;
}

/*
 * Add a region (DMA_MAP, decoded by cmd_dma.c).  fd is the table's from
 * the call on: kept with the region, closed on failure.  The checks are
 * the table's own (page alignment, the fd's kind, size and modes, overlaps,
 * the region count, the device's map callback), plus the shape checks the
 * wire decoder also makes, since this is the table's only way in.
 */
int mu_dma_add(mu_ctx_t *ctx, const struct mu_dma_info *info, int fd)
{
    struct mu_dma *dma = ctx->dma;
    uint64_t pg = ctx->pgsize != 0 ? ctx->pgsize : 4096;
    struct mu_dma_region *r;
    bool has_fd = fd >= 0, shrink_sealed = false;
    int rc, accmode = O_RDONLY;
    struct stat st;

    if (info->size == 0 || info->size - 1 > UINT64_MAX - info->iova ||
        (info->prot & ~MU_DMA_PROT_ALL) != 0 ||
        info->prot == 0) {
        rc = mu_refuse(ctx, -EINVAL, "%#" PRIx64 "+%#" PRIx64 " prot %#x: "
                       "empty, wrapping or without access", info->iova,
                       info->size, info->prot);
        goto fail;
    }
    if (((info->iova | info->size) & (pg - 1)) != 0 ||
        (has_fd && (info->fd_offset & (pg - 1)) != 0)) {
        mu_log(ctx, MU_LOG_WARN, "DMA_MAP %#" PRIx64 "+%#" PRIx64
               " (offset %#" PRIx64 ") is not page aligned", info->iova,
               info->size, info->fd_offset);
        rc = mu_refuse(ctx, -EINVAL, "%#" PRIx64 "+%#" PRIx64 " (offset %#"
                       PRIx64 ") is not aligned to the %#" PRIx64
                       " page size", info->iova, info->size,
                       info->fd_offset, pg);
        goto fail;
    }
    if (has_fd && (rc = check_fd(ctx, fd, info, &st, &accmode,
                                 &shrink_sealed)) < 0)
        goto fail;
    /* The SIGBUS eventfd comes with the first region that may be mapped:
     * a context without DMA holds no fd for it. */
    if (has_fd && dma->poison_fd < 0 && ctx->epfd >= 0 &&
        (rc = mu_dma_realize(ctx)) < 0) {
        rc = mu_refuse(ctx, rc, "no eventfd for SIGBUS reports");
        goto fail;
    }

    r = region_new(ctx, info, has_fd);
    if (r == NULL) {
        rc = mu_refuse(ctx, -ENOMEM, "no memory for the region");
        goto fail;
    }
    if (has_fd) {
        /* Before make_room: past it, nothing may fail. */
        rc = mu_dma_files_get(&dma->files, fd, &st, accmode, shrink_sealed,
                              &r->file);
        if (rc < 0) {
            region_free(dma, r);
            rc = mu_refuse(ctx, rc, "no memory for the region's file");
            goto fail;
        }
        if (r->file->fd != fd)
            close(fd);          /* a file held already: its fd serves */
        r->fd = r->file->fd;
        fd = -1;                /* the region's now, whatever happens */
    }
    rc = make_room(ctx, r);
    if (rc < 0) {
        region_free(dma, r);
        goto fail;
    }

    pthread_mutex_lock(&dma->lock);
    itree_insert(&dma->tree, &r->node);
    itree_snap_invalidate(&dma->snap);
    dma->stats.regions = dma->tree.count;
    pthread_mutex_unlock(&dma->lock);

    /* In the tree already, so the callback may translate into it. */
    rc = dma->map_cb != NULL ? dma->map_cb(ctx, r) : 0;
    if (rc < 0) {
        r->doom_next = NULL;
        doom_unlink(dma, r);
        doom_finish(ctx, r, MU_UNMAP_CLIENT);   /* not accepted: silent */
        return mu_refuse(ctx, rc, "the device's map callback refused "
                         "%#" PRIx64 "+%#" PRIx64, info->iova, info->size);
    }
    r->accepted = true;
    pthread_mutex_lock(&dma->lock);
    dma->stats.maps++;
    pthread_mutex_unlock(&dma->lock);
    mu_dbg(ctx, "DMA region %#" PRIx64 "+%#" PRIx64 " mapped (%s)",
           info->iova, info->size, r->fd >= 0 ? "fd" : "no fd");
    return 0;

fail:
    if (fd >= 0)
        close(fd);
    return rc;
}

/* ---------------- DMA_UNMAP ---------------- */

static int unmap_range(mu_ctx_t *ctx, uint64_t start, uint64_t last)
{
    struct mu_dma *dma = ctx->dma;
    struct mu_dma_region *list;

    if (collect(dma, start, last, &list) == 0) {
        /* Kernel VFIO answers success here, and QEMU relies on it. */
        mu_log(ctx, MU_LOG_INFO, "DMA_UNMAP %#" PRIx64 "-%#" PRIx64
               " names no mapped region", start, last);
        return 0;
    }
    /* All or nothing: a region cut in two cannot be half unmapped. */
    for (struct mu_dma_region *r = list; r != NULL; r = r->doom_next) {
        if (r->node.start < start || r->node.last > last) {
            mu_log(ctx, MU_LOG_WARN, "DMA_UNMAP %#" PRIx64 "-%#" PRIx64
                   " cuts region %#" PRIx64 "-%#" PRIx64, start, last,
                   r->node.start, r->node.last);
            return mu_refuse(ctx, -EINVAL, "%#" PRIx64 "-%#" PRIx64 " cuts "
                             "region %#" PRIx64 "-%#" PRIx64, start, last,
                             r->node.start, r->node.last);
        }
    }
    doom_unlink(dma, list);
    doom_finish(ctx, list, MU_UNMAP_CLIENT);
    return 0;
}

/*
 * Remove the regions in [iova, iova + size - 1] (DMA_UNMAP of a range):
 * all or nothing, a region cut in two is refused with -EINVAL; a range
 * naming no region succeeds.
 */
int mu_dma_remove(mu_ctx_t *ctx, uint64_t iova, uint64_t size)
{
    if (size == 0 || size - 1 > UINT64_MAX - iova)
        return mu_refuse(ctx, -EINVAL, "%#" PRIx64 "+%#" PRIx64 " is empty "
                         "or wraps", iova, size);
    return unmap_range(ctx, iova, iova + (size - 1));
}

/* ---------------- translation ---------------- */

/* Release the references of sg[0..nr) (lock held). */
static inline __attribute__((always_inline))
void put_locked(struct mu_dma *dma, mu_sg_t *sg, unsigned nr, uint64_t now)
{
    for (unsigned i = 0; i < nr; i++) {
        struct mu_dma_region *r = sg[i].region;

        if (r == NULL || r->refs == 0)
            continue;       /* already put */
        if ((sg[i].prot & MU_DMA_WRITE) && dma->log != NULL)
            mu_dirty_mark(r->dirty, dma->log, sg[i].iova,
                          sg[i].iova + (sg[i].len - 1));
        put_ref(dma, r, now);
        sg[i].region = NULL;
    }
}

/*
 * mu_dma_get with max_sg 0 (lock held): the entries [iova, iova+len)
 * needs, or the error a get of it would meet first; nothing is mapped or
 * held.
 */
static int count_sg(struct mu_dma *dma, struct mu_dma_region *r,
                    uint64_t iova, size_t len, unsigned prot)
{
    uint64_t last = iova + (len - 1);
    int nr = 0;

    for (;;) {
        if (r == NULL)
            return -ENOENT;
        if ((r->info.prot & prot) != prot)
            return -EACCES;
        if (r->fd < 0)
            return -EFAULT;
        if (nr == INT_MAX)
            return -ENOSPC;
        nr++;
        if (r->node.last >= last)
            return nr;
        r = region_at(dma, r->node.last + 1);
    }
}

/*
 * Everything but the one-mapped-region case of mu_dma_get (lock held).
 * Kept out of line so the fast path does not pay for its stack frame.
 */
static __attribute__((noinline))
int get_slow(mu_ctx_t *ctx, struct mu_dma_region *r, uint64_t iova,
             size_t len, unsigned prot, mu_sg_t *sg, unsigned max_sg)
{
    struct mu_dma *dma = ctx->dma;
    uint64_t last = iova + (len - 1), cur = iova, end;
    unsigned nr = 0;
    int rc;

    if (max_sg > INT_MAX)
        max_sg = INT_MAX;
    for (;;) {
        if (r == NULL) {
            rc = -ENOENT;
            break;
        }
        if ((r->info.prot & prot) != prot) {
            rc = -EACCES;
            break;
        }
        if (r->fd < 0) {
            rc = -EFAULT;
            break;
        }
        if (nr == max_sg) {
            rc = -ENOSPC;
            break;
        }
        if (r->map == NULL && (rc = fault_in(ctx, r)) < 0)
            break;
        take_ref(r);
        end = r->node.last < last ? r->node.last : last;
        sg[nr++] = (mu_sg_t){
            .addr = (uint8_t *)r->map + (cur - r->node.start),
            .len = (size_t)(end - cur + 1),
            .iova = cur, .region = r, .prot = prot,
        };
        if (end == last)
            return (int)nr;
        /* Regions are disjoint, so one holding end + 1 starts there. */
        cur = end + 1;
        r = region_at(dma, cur);
    }
    /* Undo: the device never saw these entries, so nothing is dirty. */
    for (unsigned i = 0; i < nr; i++)
        put_ref(dma, sg[i].region, coarse_ns(ctx));
    return rc;
}

int mu_dma_get(mu_ctx_t *ctx, uint64_t iova, size_t len, unsigned prot,
               mu_sg_t *sg, unsigned max_sg)
{
    struct mu_dma *dma = ctx->dma;
    struct mu_dma_region *r;
    int rc;

    if (!range_ok(iova, len) || (prot & ~MU_DMA_PROT_ALL) != 0)
        return -EINVAL;
    if (mu_mig_quiet(ctx))
        return -EPERM;      /* stopped for migration: no DMA */
    pthread_mutex_lock(&dma->lock);
    r = region_at(dma, iova);
    /* The hot path: one region, already mapped, access allowed. */
    if (r != NULL && r->map != NULL && len - 1 <= r->node.last - iova &&
        (r->info.prot & prot) == prot && max_sg > 0) {
        take_ref(r);
        sg[0].addr = (uint8_t *)r->map + (iova - r->node.start);
        sg[0].len = len;
        sg[0].iova = iova;
        sg[0].region = r;
        sg[0].prot = prot;
        pthread_mutex_unlock(&dma->lock);
        return 1;
    }
    if (max_sg == 0)
        rc = count_sg(dma, r, iova, len, prot);
    else
        rc = get_slow(ctx, r, iova, len, prot, sg, max_sg);
    pthread_mutex_unlock(&dma->lock);
    return rc;
}

void mu_dma_put(mu_ctx_t *ctx, mu_sg_t *sg, unsigned nr)
{
    struct mu_dma *dma = ctx->dma;
    /*
     * Only idle eviction reads the time of last use, and reading even the
     * coarse clock (a vDSO call) was a quarter of a one-region get + put:
     * skip it unless an idle limit is in force.  Read outside the lock so
     * the lock is not held longer; checked again inside, in case aging has
     * just been turned on.
     */
    uint64_t now = __atomic_load_n(&dma->aging, __ATOMIC_RELAXED) ?
                   coarse_ns(ctx) : 0;

    pthread_mutex_lock(&dma->lock);
    if (now == 0 && dma->aging)
        now = coarse_ns(ctx);
    put_locked(dma, sg, nr, now);
    pthread_mutex_unlock(&dma->lock);
}

/* ---------------- lookup for the copy helpers ---------------- */

/* The extent and kind of the region holding iova, for dma_rw.c. */
int mu_dma_lookup(mu_ctx_t *ctx, uint64_t iova, unsigned prot,
                  uint64_t *last, bool *has_fd)
{
    struct mu_dma *dma = ctx->dma;
    struct mu_dma_region *r;
    int rc = 0;

    pthread_mutex_lock(&dma->lock);
    r = region_at(dma, iova);
    if (r == NULL)
        rc = -ENOENT;
    else if ((r->info.prot & prot) != prot)
        rc = -EACCES;
    else {
        *last = r->node.last;
        *has_fd = r->fd >= 0;
    }
    pthread_mutex_unlock(&dma->lock);
    return rc;
}

/* ---------------- housekeeping and introspection ---------------- */

void mu_dma_tick(mu_ctx_t *ctx)
{
    struct mu_dma *dma = ctx->dma;
    uint64_t idle_ms = limit(ctx, MU_LIMIT_DMA_IDLE_MS);
    uint64_t now = coarse_ns(ctx);

    pthread_mutex_lock(&dma->lock);
    if (idle_ms == 0) {
        __atomic_store_n(&dma->aging, false, __ATOMIC_RELAXED);
    } else if (!dma->aging) {
        /* The limit is new: puts did not record times until now, so start
         * every idle region's age here (never evicting one too early). */
        for (struct lru_node *n = lru_oldest(&dma->lru); n != NULL;
             n = n->next)
            lru_region(n)->last_use_ns = now;
        __atomic_store_n(&dma->aging, true, __ATOMIC_RELAXED);
    }
    /* The LRU is in order of last put, so stop at the first young one. */
    while (idle_ms != 0 && lru_head(dma) != NULL &&
           now - lru_head(dma)->last_use_ns > idle_ms * 1000000ull)
        evict_head(dma);
    enforce_budget(dma, limit(ctx, MU_LIMIT_DMA_MAPPED_BYTES));
    pthread_mutex_unlock(&dma->lock);
}

/*
 * The eventfd only a realized context watches.  Before, there is no loop
 * to wake (unit tests drive the handlers directly); a fault is still
 * answered with zeros and recorded, just not announced.
 */
int mu_dma_realize(mu_ctx_t *ctx)
{
    struct mu_dma *dma = ctx->dma;
    int fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC), rc;

    if (fd < 0)
        return -errno;
    if (dma->poison_fd >= 0)    /* a realize that failed later on */
        close(dma->poison_fd);
    dma->poison_fd = -1;
    rc = mu_ctx_watch(ctx, fd, MU_EV(MU_EV_POISON, 0));
    if (rc < 0) {
        close(fd);
        return rc;
    }
    dma->poison_fd = fd;        /* before the first mappable region */
    return 0;
}

void mu_dma_client_gone(mu_ctx_t *ctx)
{
    struct mu_dma *dma = ctx->dma;

    /* No region: no mapping the SIGBUS handler could tell us about. */
    pthread_mutex_lock(&dma->lock);
    if (dma->tree.count == 0 && dma->poison_fd >= 0) {
        mu_ctx_unwatch(ctx, dma->poison_fd);
        close(dma->poison_fd);
        dma->poison_fd = -1;
    }
    pthread_mutex_unlock(&dma->lock);
}

int mu_dma_poison_fd(const mu_ctx_t *ctx)
{
    return ctx->dma->poison_fd;
}

/*
 * The SIGBUS handler answered a fault in one of our mappings (sigbus.c):
 * the client's file shrank or ran out of space under it.  The device got
 * zeros and lives on; the client that broke its memory is dropped.  Log
 * outside the lock (the sink may do anything), a few regions at most.
 */
void mu_dma_on_poison(mu_ctx_t *ctx)
{
    struct mu_dma *dma = ctx->dma;
    struct { uint64_t iova, size, at; } seen[4];
    unsigned nr = 0, total = 0;
    struct itree_node *n;
    uint64_t v;

    if (read(dma->poison_fd, &v, sizeof(v)) != sizeof(v))
        return;
    pthread_mutex_lock(&dma->lock);
    for (n = itree_min(&dma->tree); n != NULL; n = itree_succ(n)) {
        struct mu_dma_region *r = to_region(n);
        uintptr_t fault = mu_sigbus_fault_addr(r->sigbus_slot);

        if (r->poison_told || (!r->poisoned && fault == 0))
            continue;
        if (!r->poisoned)
            r->poison_iova = r->info.iova + (fault - (uintptr_t)r->map);
        r->poisoned = r->poison_told = true;
        if (nr < sizeof(seen) / sizeof(seen[0]))
            seen[nr++] = (typeof(seen[0])){ r->info.iova, r->info.size,
                                            r->poison_iova };
        total++;
    }
    pthread_mutex_unlock(&dma->lock);
    for (unsigned i = 0; i < nr; i++)
        mu_log(ctx, MU_LOG_ERR, "DMA region %#" PRIx64 "+%#" PRIx64
               ": SIGBUS at iova %#" PRIx64 " (its file shrank or ran out"
               " of space under the mapping): zeros there from now on",
               seen[i].iova, seen[i].size, seen[i].at);
    if (total > 0)
        mu_ctx_detach(ctx, "guest memory vanished under a DMA mapping");
}

void mu_dma_get_stats(mu_ctx_t *ctx, struct mu_dma_stats *st)
{
    struct mu_dma *dma = ctx->dma;

    pthread_mutex_lock(&dma->lock);
    *st = dma->stats;
    st->regions = dma->tree.count;
    memset(st->reserved, 0, sizeof(st->reserved));
    pthread_mutex_unlock(&dma->lock);
}

int mu_dma_foreach(mu_ctx_t *ctx,
                   int (*cb)(mu_ctx_t *ctx, mu_dma_region_t *r, void *arg),
                   void *arg)
{
    struct itree_node *n;
    int rc;

    MU_ASSERT_CTX_THREAD(ctx);
    if (cb == NULL)
        return -EINVAL;
    /* Context thread: the only writer of the tree, so no lock to read it. */
    for (n = itree_min(&ctx->dma->tree); n != NULL; n = itree_succ(n)) {
        rc = cb(ctx, to_region(n), arg);
        if (rc != 0)
            return rc;
    }
    return 0;
}

/* ---------------- dirty logging: the table's side ---------------- */

int mu_dma_mark_dirty(mu_ctx_t *ctx, uint64_t iova, size_t len)
{
    struct mu_dma *dma = ctx->dma;

    if (!range_ok(iova, len))
        return -EINVAL;
    if (!__atomic_load_n(&dma->logging, __ATOMIC_ACQUIRE))
        return 0;
    pthread_mutex_lock(&dma->lock);
    mark_range(dma, iova, iova + (len - 1));
    pthread_mutex_unlock(&dma->lock);
    return 0;
}

int mu_dma_log_start(mu_ctx_t *ctx, struct mu_dma_log *log)
{
    struct mu_dma *dma = ctx->dma;
    struct itree_node *n, *m;

    pthread_mutex_lock(&dma->lock);
    if (dma->log != NULL) {
        pthread_mutex_unlock(&dma->lock);
        mu_dma_log_free(log);
        return -EBUSY;
    }
    for (n = itree_min(&dma->tree); n != NULL; n = itree_succ(n)) {
        to_region(n)->dirty = dirty_new(ctx, log, n->start, n->last);
        if (to_region(n)->dirty != NULL)
            continue;
        for (m = itree_min(&dma->tree); m != n; m = itree_succ(m)) {
            dirty_free(dma, to_region(m)->dirty);
            to_region(m)->dirty = NULL;
        }
        pthread_mutex_unlock(&dma->lock);
        mu_dma_log_free(log);
        return -ENOMEM;
    }
    dma->log = log;
    __atomic_store_n(&dma->logging, true, __ATOMIC_RELEASE);
    pthread_mutex_unlock(&dma->lock);
    return 0;
}

void mu_dma_log_stop(mu_ctx_t *ctx)
{
    struct mu_dma *dma = ctx->dma;
    struct itree_node *n;

    pthread_mutex_lock(&dma->lock);
    for (n = itree_min(&dma->tree); n != NULL; n = itree_succ(n)) {
        dirty_free(dma, to_region(n)->dirty);
        to_region(n)->dirty = NULL;
    }
    mu_dma_log_free(dma->log);
    dma->log = NULL;
    __atomic_store_n(&dma->logging, false, __ATOMIC_RELEASE);
    pthread_mutex_unlock(&dma->lock);
}

int mu_dma_log_report(mu_ctx_t *ctx, uint64_t first_page, uint64_t nr_pages,
                      uint64_t pgsize, uint64_t *bitmap)
{
    struct mu_dma *dma = ctx->dma;
    uint64_t start = first_page * pgsize;
    uint64_t last = start + (nr_pages - 1) * pgsize + (pgsize - 1);
    struct itree_node *n;
    int rc = 0;

    pthread_mutex_lock(&dma->lock);
    if (dma->log == NULL || mu_dma_log_pgsize(dma->log) != pgsize) {
        rc = -EINVAL;
    } else {
        for (n = itree_first(&dma->tree, start, last); n != NULL;
             n = itree_next(n, start, last))
            mu_dirty_harvest(to_region(n)->dirty, first_page, nr_pages,
                             bitmap);
    }
    pthread_mutex_unlock(&dma->lock);
    return rc;
}
