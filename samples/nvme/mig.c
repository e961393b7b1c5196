/*
 * mig.c - live migration of the controller, the source's side and the
 * state machine: the stream (mig_stream.h) produced, the RAM namespaces
 * pre-copied while the controller runs, and the transitions.
 * mig_load.c is the destination's side.
 *
 * PRE_COPY: the begin record, then passes over the RAM namespaces.
 * Every granule is dirty when PRE_COPY starts; a pass sends each dirty
 * granule once, clearing its bit (under the controller lock) before its
 * bytes are copied, and ns_rw()/ns_zero() set the bit again after a
 * command changed bytes of it (under the same lock: every command runs
 * with it held, from the context thread or the poller).  So a write that
 * lands after, or while, its granule is copied leaves the bit set, and
 * the granule goes again in a later pass or in STOP_COPY.  A pass ends a
 * read ("nothing more for now"); the next read begins the next pass.
 * pending() counts the dirty granules left.
 *
 * STOP_COPY: the state record (taken when the controller stopped), every
 * granule still dirty, the end record with the hash of the whole stream.
 * Without PRE_COPY before it (STOP -> STOP_COPY), every granule is
 * dirty: the whole namespace goes in STOP_COPY.  File namespaces are not
 * streamed: the destination must serve the same file.
 *
 * Queue memory is guest memory, which does not move: the destination
 * keeps the queues' addresses and translates them again when it first
 * runs (DMA is refused while stopped).  Completion rings are written
 * through long-held mappings, which the library logs only on put, so they
 * are marked dirty here when the controller stops.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mig_stream.h"

/* What the source sends next. */
enum { E_BEGIN, E_PASS, E_STATE, E_FINAL, E_END, E_DONE };

static struct {
    bool tracking;              /* bitmaps in c->ns[].dirty */
    bool stopped;               /* STOP_COPY: no pass ends the stream */
    bool first_pass;
    bool pass_over;             /* a pass ended in this read: return 0 */
    unsigned phase;             /* E_* */
    unsigned cur_ns;            /* the passes' cursor */
    uint64_t cur_g;
    /* The item being sent: a record header (or none: the begin record),
     * then its body. */
    struct mig_rec rec;
    bool has_rec;
    const uint8_t *body;        /* NULL: a granule, from the namespace */
    uint64_t pos, total;        /* within header + body */
    bool busy;
    uint64_t sum;
    struct mig_hash hash;
    struct mig_begin begin;
    struct mig_hdr hdr;
    uint64_t *dirty[NVME_MAX_NS];
} E;

static void save_stop(struct nvme_ctrl *c)
{
    for (unsigned i = 0; i < NVME_MAX_NS; i++) {
        if (i < c->nr_ns)
            c->ns[i].dirty = NULL;
        free(E.dirty[i]);
        E.dirty[i] = NULL;
    }
    E.tracking = false;
    E.busy = false;
    E.phase = E_DONE;
}

/* A new stream, every granule dirty.  Under the controller lock. */
static int save_start(struct nvme_ctrl *c)
{
    struct mig_begin *b = &E.begin;

    save_stop(c);
    for (unsigned i = 0; i < c->nr_ns; i++) {
        uint64_t n = mig_nr_gran(c->ns[i].size);
        size_t words = (size_t)(n + 63) / 64;

        if (c->ns[i].is_file)
            continue;
        E.dirty[i] = malloc(words * 8);
        if (E.dirty[i] == NULL) {
            save_stop(c);
            return -ENOMEM;
        }
        memset(E.dirty[i], 0xff, words * 8);
        if (n % 64 != 0)
            E.dirty[i][words - 1] = (1ull << (n % 64)) - 1;
    }
    for (unsigned i = 0; i < c->nr_ns; i++)
        c->ns[i].dirty = E.dirty[i];
    memset(b, 0, sizeof(*b));
    b->magic = MIG_MAGIC;
    b->version = MIG_VERSION;
    b->len = sizeof(*b);
    b->gran = (uint32_t)NS_GRAN;
    b->nr_ns = c->nr_ns;
    for (unsigned i = 0; i < c->nr_ns; i++) {
        b->ns[i].nsid = c->ns[i].nsid;
        b->ns[i].lba_shift = c->ns[i].lba_shift;
        b->ns[i].size = c->ns[i].size;
        b->ns[i].is_file = c->ns[i].is_file;
    }
    E.tracking = true;
    E.stopped = false;
    E.first_pass = true;
    E.pass_over = false;
    E.phase = E_BEGIN;
    E.cur_ns = 0;
    E.cur_g = 0;
    E.busy = false;
    mig_hash_init(&E.hash);
    return 0;
}

/* The controller, stopped, into the state record. */
static void save_prepare(struct nvme_ctrl *c)
{
    struct mig_hdr *h = &E.hdr;

    memset(h, 0, sizeof(*h));
    h->magic = MIG_MAGIC;
    h->version = MIG_VERSION;
    h->hdr_len = sizeof(*h);
    h->nr_ns = c->nr_ns;
    h->cap = c->cap;
    h->asq = c->asq;
    h->acq = c->acq;
    h->cc = c->cc;
    h->csts = c->csts;
    h->aqa = c->aqa;
    h->intms = c->intms;
    h->page_size = c->page_size;
    h->max_ioq = c->max_ioq;
    h->bme = c->bme;
    h->msix = c->msix;
    h->intx_pending = c->intx_pending;
    h->aen_masked = c->aen_masked;
    h->nr_aer = c->nr_aer;
    h->nr_aen = c->nr_aen;
    h->err_next = c->err_next;
    h->err_count = c->err_count;
    memcpy(h->aer_cid, c->aer_cid, sizeof(h->aer_cid));
    memcpy(h->aen, c->aen, sizeof(h->aen));
    for (unsigned v = 0; v < NVME_NR_VECTORS; v++)
        h->vec_pending[v] = c->vec[v].pending;
    h->feat = c->feat;
    memcpy(h->err, c->err, sizeof(h->err));
    h->smart = c->smart;
    snprintf(h->serial, sizeof(h->serial), "%s", c->serial);
    if (c->opts.backing != NULL)
        snprintf(h->backing, sizeof(h->backing), "%s", c->opts.backing);
    for (unsigned i = 0; i < c->nr_ns; i++) {
        h->ns[i].nsid = c->ns[i].nsid;
        h->ns[i].lba_shift = c->ns[i].lba_shift;
        h->ns[i].size = c->ns[i].size;
        h->ns[i].is_file = c->ns[i].is_file;
        if (c->ns[i].is_file)
            ns_flush(&c->ns[i]);
    }
    for (unsigned q = 0; q < NVME_NR_QUEUES; q++) {
        const struct nvme_sq *sq = &c->sq[q];
        const struct nvme_cq *cq = &c->cq[q];

        if (sq->valid) {
            h->sq[q] = (struct mig_sq){
                .iova = sq->mem.iova, .size = sq->size, .head = sq->head,
                .tail = sq->tail, .cqid = sq->cqid, .valid = 1,
                .db = c->db != NULL ? c->db[2 * q] : sq->tail,
            };
        }
        if (cq->valid) {
            h->cq[q] = (struct mig_cq){
                .iova = cq->mem.iova, .size = cq->size, .head = cq->head,
                .tail = cq->tail, .iv = cq->iv, .valid = 1,
                .phase = cq->phase, .ien = cq->ien,
                .db = c->db != NULL ? c->db[2 * q + 1] : cq->head,
            };
        }
    }
}

/* The next dirty granule from the cursor on, its bit cleared; false at
 * the end of the namespaces.  Under the controller lock. */
static bool next_dirty(struct nvme_ctrl *c)
{
    for (; E.cur_ns < c->nr_ns; E.cur_ns++, E.cur_g = 0) {
        const uint64_t *d = E.dirty[E.cur_ns];
        uint64_t n = mig_nr_gran(c->ns[E.cur_ns].size);

        if (d == NULL)
            continue;
        for (; E.cur_g < n; E.cur_g++) {
            uint64_t g = E.cur_g;

            if ((d[g / 64] >> (g % 64)) & 1) {
                E.dirty[E.cur_ns][g / 64] &= ~(1ull << (g % 64));
                E.rec = (struct mig_rec){
                    .type = MIG_REC_GRAN, .ns = E.cur_ns,
                    .off = g << NS_GRAN_SHIFT,
                    .len = mig_gran_len(c->ns[E.cur_ns].size, g),
                };
                E.cur_g++;
                return true;
            }
        }
    }
    return false;
}

/* Take the next dirty granule under the lock and size its record; false
 * when none is left from the cursor on. */
static bool take_dirty(struct nvme_ctrl *c)
{
    ctrl_lock(c);
    E.busy = next_dirty(c);
    ctrl_unlock(c);
    if (E.busy)
        E.total = sizeof(E.rec) + E.rec.len;
    return E.busy;
}

/* Pick the next item; false when there is nothing more for now (PRE_COPY:
 * a pass ended) or at all (STOP_COPY: the stream ended). */
static bool next_item(struct nvme_ctrl *c)
{
    E.has_rec = true;
    E.body = NULL;
    E.pos = 0;
    for (;;) {
        switch (E.phase) {
        case E_BEGIN:
            E.has_rec = false;
            E.body = (const uint8_t *)&E.begin;
            E.total = sizeof(E.begin);
            E.phase = E.stopped ? E_STATE : E_PASS;
            E.busy = true;
            return true;
        case E_PASS:
            if (E.stopped) {
                E.phase = E_STATE;
                continue;
            }
            if (take_dirty(c))
                return true;
            /* The pass is over: this read ends here (the library calls
             * save() until it returns 0), the next begins another. */
            E.pass_over = true;
            E.first_pass = false;
            E.cur_ns = 0;
            E.cur_g = 0;
            return false;
        case E_STATE:
            E.rec = (struct mig_rec){ .type = MIG_REC_STATE,
                                      .len = sizeof(E.hdr) };
            E.body = (const uint8_t *)&E.hdr;
            E.total = sizeof(E.rec) + sizeof(E.hdr);
            E.phase = E_FINAL;
            E.cur_ns = 0;
            E.cur_g = 0;
            E.busy = true;
            return true;
        case E_FINAL:
            if (take_dirty(c))
                return true;
            E.phase = E_END;
            continue;
        case E_END:
            E.rec = (struct mig_rec){ .type = MIG_REC_END,
                                      .len = sizeof(E.sum) };
            E.body = (const uint8_t *)&E.sum;
            E.total = sizeof(E.rec) + sizeof(E.sum);
            E.phase = E_DONE;
            E.busy = true;
            return true;
        default:
            return false;
        }
    }
}

static ssize_t mig_save(mu_ctx_t *ctx, void *buf, size_t len)
{
    struct nvme_ctrl *c = mu_ctx_opaque(ctx);
    enum mu_mig_state st = mu_mig_state(ctx);
    uint8_t *out = buf;
    size_t done = 0;

    if ((st != MU_MIG_STOP_COPY && st != MU_MIG_PRE_COPY) || !E.tracking)
        return 0;
    if (E.pass_over) {
        E.pass_over = false;
        return 0;
    }
    while (done < len) {
        size_t n = len - done;
        uint64_t hl;
        bool is_end;

        if (!E.busy && !next_item(c))
            break;
        hl = E.has_rec ? sizeof(E.rec) : 0;
        is_end = E.has_rec && E.rec.type == MIG_REC_END;
        if (E.pos < hl) {
            if (n > hl - E.pos)
                n = (size_t)(hl - E.pos);
            memcpy(out + done, (const uint8_t *)&E.rec + E.pos, n);
        } else {
            uint64_t at = E.pos - hl;

            if (n > E.total - E.pos)
                n = (size_t)(E.total - E.pos);
            if (is_end && at == 0)
                E.sum = E.hash.h;   /* of every byte before it */
            if (E.body != NULL) {
                memcpy(out + done, E.body + at, n);
            } else {
                /* A granule: its bytes as they are now.  Changed after
                 * this, its bit is set again. */
                ctrl_lock(c);
                memcpy(out + done, c->ns[E.rec.ns].mem + E.rec.off + at, n);
                ctrl_unlock(c);
            }
        }
        if (!(is_end && E.pos >= hl))
            mig_hash_add(&E.hash, out + done, n);
        done += n;
        E.pos += n;
        if (E.pos == E.total)
            E.busy = false;
    }
    if (done == 0)
        E.pass_over = false;    /* this read is the short one already */
    return (ssize_t)done;
}

/* PRE_COPY: what the passes still have to send, in bytes. */
static int mig_pending(mu_ctx_t *ctx, uint64_t *initial, uint64_t *dirty)
{
    struct nvme_ctrl *c = mu_ctx_opaque(ctx);
    uint64_t first = 0, again = 0;

    if (!E.tracking)
        return -ENOTSUP;
    ctrl_lock(c);
    if (E.phase == E_BEGIN)
        first += sizeof(E.begin);
    if (E.busy)
        *(E.first_pass ? &first : &again) += E.total - E.pos;
    for (unsigned i = 0; i < c->nr_ns; i++) {
        uint64_t n = mig_nr_gran(c->ns[i].size);

        if (E.dirty[i] == NULL)
            continue;
        for (uint64_t g = 0; g < n; g++) {
            uint64_t b;
            bool ahead;

            if (!((E.dirty[i][g / 64] >> (g % 64)) & 1))
                continue;
            b = sizeof(struct mig_rec) + mig_gran_len(c->ns[i].size, g);
            /* Not reached yet by the first pass: never sent. */
            ahead = E.first_pass &&
                    (i > E.cur_ns || (i == E.cur_ns && g >= E.cur_g));
            *(ahead ? &first : &again) += b;
        }
    }
    ctrl_unlock(c);
    *initial = first;
    *dirty = again;
    return 0;
}

/* Into a running state after a restore: the queues' memory, again. */
static int remap(struct nvme_ctrl *c)
{
    int rc = 0;

    for (unsigned q = 0; q < c->q_top && rc == 0; q++) {
        struct nvme_cq *cq = &c->cq[q];
        struct nvme_sq *sq = &c->sq[q];

        if (cq->valid && cq->mem.len == 0)
            rc = qmem_map(c, &cq->mem, cq->mem.iova,
                          (size_t)cq->size * NVME_CQE_SIZE, MU_DMA_WRITE);
        if (rc == 0 && sq->valid && sq->mem.len == 0)
            rc = qmem_map(c, &sq->mem, sq->mem.iova,
                          (size_t)sq->size * NVME_SQE_SIZE, MU_DMA_READ);
    }
    if (rc < 0) {
        ctrl_log(c, "migration: queue memory not mapped: %s", strerror(-rc));
        /* Leave them all unmapped, to try again on the next RUNNING. */
        for (unsigned q = 0; q < c->q_top; q++) {
            if (c->cq[q].valid && c->cq[q].mem.len != 0) {
                uint64_t iova = c->cq[q].mem.iova;

                queue_mem_drop(c, 2 * q + 1);
                c->cq[q].mem.iova = iova;
            }
            if (c->sq[q].valid && c->sq[q].mem.len != 0) {
                uint64_t iova = c->sq[q].mem.iova;

                queue_mem_drop(c, 2 * q);
                c->sq[q].mem.iova = iova;
            }
        }
        return rc;
    }
    c->mig_remap = false;
    return 0;
}

/* Completion rings are written through mappings held for the queue's
 * life; the library logs those pages only on put. */
static void mark_rings(struct nvme_ctrl *c)
{
    for (unsigned q = 0; q < c->q_top; q++) {
        const struct nvme_cq *cq = &c->cq[q];

        if (cq->valid && cq->mem.direct)
            mu_dma_mark_dirty(c->ctx, cq->mem.iova, cq->mem.len);
    }
}

static bool running_state(enum mu_mig_state s)
{
    return s == MU_MIG_RUNNING || s == MU_MIG_PRE_COPY ||
           s == MU_MIG_RUNNING_P2P || s == MU_MIG_PRE_COPY_P2P;
}

static int mig_transition(mu_ctx_t *ctx, enum mu_mig_state from,
                          enum mu_mig_state to)
{
    struct nvme_ctrl *c = mu_ctx_opaque(ctx);
    int rc = 0;

    if (from == MU_MIG_RUNNING && to == MU_MIG_PRE_COPY) {
        /* Every granule dirty, tracked from now on. */
        ctrl_lock(c);
        rc = save_start(c);
        ctrl_unlock(c);
        if (rc < 0)
            return rc;
    } else if (from == MU_MIG_STOP && to == MU_MIG_STOP_COPY) {
        /* No pre-copy: the whole namespaces go now (nothing runs). */
        ctrl_lock(c);
        rc = save_start(c);
        ctrl_unlock(c);
        if (rc < 0)
            return rc;
    }
    if (running_state(from) && !running_state(to)) {
        /* Commands complete before the next fetch: once we hold the
         * lock nothing is in flight, and ctrl_running() keeps it so;
         * but for a command the poller was running when it left the lock
         * for a DMA message (polled mode, memory without an fd): it sees
         * the stop when it takes the lock again and leaves the command
         * to run again from its fetch (poller.c, ctrl_dma; queues.c,
         * sq_process), unless its completion went out. */
        ctrl_lock(c);
        c->mig_stopped = true;
        mark_rings(c);
        ctrl_unlock(c);
    }
    if (to == MU_MIG_STOP_COPY) {
        /* From PRE_COPY: the stream goes on, with what is left of it
         * (always tracking by then: PRE_COPY started it). */
        ctrl_lock(c);
        if (!E.tracking)
            rc = save_start(c);
        if (rc == 0) {
            save_prepare(c);
            E.stopped = true;
            E.pass_over = false;
        }
        ctrl_unlock(c);
    } else if (to == MU_MIG_RESUMING) {
        mig_load_reset();
        mig_load_prepare(c);
    } else if (from == MU_MIG_RESUMING) {
        rc = mig_load_apply(c);
        if (rc < 0)
            mig_load_reset();
    } else if (from == MU_MIG_STOP_COPY || from == MU_MIG_PRE_COPY) {
        /* The rest of the stream is dropped; a migration from here
         * starts a new one. */
        ctrl_lock(c);
        save_stop(c);
        ctrl_unlock(c);
    }
    if (rc == 0 && !running_state(from) && running_state(to)) {
        ctrl_lock(c);
        if (c->mig_remap)
            rc = remap(c);
        if (rc == 0) {
            c->mig_stopped = false;
            c->pass.mig_stopped = false;    /* the poller's, from the stop */
            if (c->opts.db_mode == NVME_DB_TRAPPED)
                sq_process_all(c);
            aen_deliver(c);
            intr_flush_all(c);
        }
        ctrl_unlock(c);
    }
    return rc;
}

void mig_on_reset(struct nvme_ctrl *c)
{
    /* The library puts the device in RUNNING after a reset. */
    c->mig_stopped = false;
    c->mig_remap = false;
    save_stop(c);
    mig_load_reset();
}

int mig_setup(mu_ctx_t *ctx)
{
    const struct mu_mig_callbacks cb = {
        .size = sizeof(cb), .flags = MU_MIG_F_PRE_COPY,
        .transition = mig_transition, .save = mig_save, .load = mig_load,
        .pending = mig_pending,
    };

    return mu_mig_setup(ctx, &cb);
}

void mig_fini(void)
{
    for (unsigned i = 0; i < NVME_MAX_NS; i++) {
        free(E.dirty[i]);
        E.dirty[i] = NULL;
    }
    E.tracking = false;
    mig_load_reset();
}
