/*
 * mig.c - live migration of the controller: its state saved on the source
 * in STOP_COPY, checked and applied on the destination when RESUMING ends.
 *
 * Stream (version 1; host byte order, both ends run on the same host or
 * the same architecture):
 *   struct mig_hdr            magic "NVMM", version, its own length,
 *                             registers, features, AERs and queued events,
 *                             error log, SMART, vectors, every queue's
 *                             iova/size/head/tail/phase, the namespaces'
 *                             shape and the backing file's name
 *   RAM namespaces' bytes     in nsid order (file namespaces: none, the
 *                             destination must serve the same file)
 *   u64 hash                  over everything before it
 * A stream of another version, another header length, a shape this
 * controller does not have (fewer, smaller or other namespaces, queues it
 * cannot hold), a bad hash, missing or extra bytes is refused, and the
 * controller keeps what it had: nothing is applied until the whole stream
 * is in and checked.  RAM contents are staged in fresh memfds meanwhile.
 *
 * Queue memory is guest memory, which does not move: the destination
 * keeps the queues' addresses and translates them again when it first
 * runs (DMA is refused while stopped).  PRE_COPY is offered but carries
 * nothing (the state is small next to the namespaces, which could change
 * under it); its point is that the controller keeps running while the
 * client copies guest memory, with every page written reported dirty:
 * completion rings are written through long-held mappings, which the
 * library logs only on put, so they are marked dirty here when the
 * controller stops.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nvme.h"

#define MIG_MAGIC 0x4d4d564eu   /* "NVMM" */
#define MIG_VERSION 1u

struct mig_sq {
    uint64_t iova;
    uint32_t size, head, tail, db;
    uint16_t cqid;
    uint8_t valid, pad[5];
};

struct mig_cq {
    uint64_t iova;
    uint32_t size, head, tail, db;
    uint16_t iv;
    uint8_t valid, phase, ien, pad[3];
};

struct mig_ns {
    uint32_t nsid, lba_shift;
    uint64_t size;
    uint8_t is_file, pad[7];
};

struct mig_hdr {
    uint32_t magic;
    uint16_t version, pad0;
    uint32_t hdr_len, nr_ns;
    uint64_t cap, asq, acq;
    uint32_t cc, csts, aqa, intms;
    uint32_t page_size, max_ioq;
    uint8_t bme, msix, intx_pending, aen_masked;
    uint32_t nr_aer, nr_aen, err_next;
    uint64_t err_count;
    uint16_t aer_cid[NVME_AERL + 1];
    uint32_t aen[NVME_MAX_AEN];
    uint32_t vec_pending[NVME_NR_VECTORS];
    struct nvme_features feat;
    struct nvme_error_entry err[NVME_ELPE + 1];
    struct nvme_smart smart;
    char serial[24];
    char backing[256];
    struct mig_ns ns[NVME_MAX_NS];
    struct mig_sq sq[NVME_NR_QUEUES];
    struct mig_cq cq[NVME_NR_QUEUES];
};

/* The hash works on 8-byte words; it must see the stream in any pieces. */
struct hash {
    uint64_t h;
    uint8_t carry[8];
    unsigned nc;
};

static void hash_init(struct hash *s)
{
    s->h = 0xcbf29ce484222325ull;
    s->nc = 0;
}

static void hash_word(struct hash *s, uint64_t w)
{
    /* (h ^ w) * odd: a bijection in h for each w, so one changed word
     * (or byte) always changes the result. */
    s->h = (s->h ^ w) * 0x100000001b3ull;
    s->h ^= s->h >> 29;
}

static void hash_add(struct hash *s, const void *buf, size_t len)
{
    const uint8_t *p = buf;
    uint64_t w;

    while (len > 0 && s->nc > 0) {
        s->carry[s->nc++] = *p++;
        len--;
        if (s->nc == 8) {
            memcpy(&w, s->carry, 8);
            hash_word(s, w);
            s->nc = 0;
        }
    }
    for (; len >= 8; p += 8, len -= 8) {
        memcpy(&w, p, 8);
        hash_word(s, w);
    }
    memcpy(s->carry, p, len);
    s->nc = (unsigned)len;
}

/* Sections are multiples of 8 bytes, so nothing is carried at the end. */
_Static_assert(sizeof(struct mig_hdr) % 8 == 0, "header padding");

/* The stream in flight: one direction at a time. */
static struct {
    struct mig_hdr hdr;
    uint64_t pos;               /* bytes of the stream done */
    uint64_t total;             /* the stream's length (save: known) */
    struct hash hash;
    uint64_t sum;               /* save: the trailer once computed */
    bool hdr_ok;                /* load: header in and checked */
    bool prepared;              /* load: stage made by stage_prepare() */
    struct nvme_ns stage[NVME_MAX_NS];  /* load: RAM contents */
    unsigned nr_stage;
} S;

static uint64_t body_len(const struct mig_hdr *h)
{
    uint64_t n = 0;

    for (unsigned i = 0; i < h->nr_ns; i++)
        if (!h->ns[i].is_file)
            n += h->ns[i].size;
    return n;
}

/* Where stream offset off (>= the header) falls in the namespaces. */
static uint8_t *body_at(struct nvme_ns *ns, const struct mig_hdr *h,
                        uint64_t off, size_t *avail)
{
    off -= sizeof(*h);
    for (unsigned i = 0; i < h->nr_ns; i++) {
        if (h->ns[i].is_file)
            continue;
        if (off < h->ns[i].size) {
            *avail = h->ns[i].size - off > SIZE_MAX ? SIZE_MAX
                                                    : (size_t)(h->ns[i].size - off);
            return ns[i].mem + off;
        }
        off -= h->ns[i].size;
    }
    return NULL;
}

static void stage_drop(void)
{
    for (unsigned i = 0; i < S.nr_stage; i++)
        ns_fini(&S.stage[i]);
    S.nr_stage = 0;
    S.prepared = false;
    /* Ready for a new stream from its first byte. */
    S.hdr_ok = false;
    S.pos = 0;
    S.total = sizeof(S.hdr) + 8;    /* grows once the header is in */
    hash_init(&S.hash);
}

/* ---------------- source ---------------- */

static void save_prepare(struct nvme_ctrl *c)
{
    struct mig_hdr *h = &S.hdr;

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
    S.pos = 0;
    S.total = sizeof(*h) + body_len(h) + 8;
    hash_init(&S.hash);
}

static ssize_t mig_save(mu_ctx_t *ctx, void *buf, size_t len)
{
    struct nvme_ctrl *c = mu_ctx_opaque(ctx);
    uint8_t *out = buf;
    size_t done = 0;

    /* PRE_COPY carries nothing: see the top of the file. */
    if (mu_mig_state(ctx) != MU_MIG_STOP_COPY)
        return 0;
    while (done < len && S.pos < S.total) {
        uint64_t tail_at = S.total - 8;
        const uint8_t *src;
        size_t n = len - done, avail;

        if (S.pos < sizeof(S.hdr)) {
            src = (const uint8_t *)&S.hdr + S.pos;
            avail = sizeof(S.hdr) - (size_t)S.pos;
        } else if (S.pos < tail_at) {
            src = body_at(c->ns, &S.hdr, S.pos, &avail);
            if (src == NULL)
                return -EIO;
        } else {
            if (S.pos == tail_at)
                S.sum = S.hash.h;
            src = (const uint8_t *)&S.sum + (S.pos - tail_at);
            avail = (size_t)(S.total - S.pos);
        }
        if (n > avail)
            n = avail;
        memcpy(out + done, src, n);
        if (S.pos < tail_at)
            hash_add(&S.hash, src, n);
        done += n;
        S.pos += n;
    }
    return (ssize_t)done;
}

/* ---------------- destination ---------------- */

static int check_queues(const struct nvme_ctrl *c, const struct mig_hdr *h)
{
    for (unsigned q = 0; q < NVME_NR_QUEUES; q++) {
        const struct mig_sq *sq = &h->sq[q];
        const struct mig_cq *cq = &h->cq[q];

        if ((sq->valid || cq->valid) && q > c->max_ioq)
            return -ENOSPC;
        if (cq->valid > 1 || sq->valid > 1)
            return -EINVAL;
        if (cq->valid &&
            (cq->size < 2 || cq->size > NVME_MQES + 1 || cq->head >= cq->size ||
             cq->tail >= cq->size || cq->db >= cq->size || cq->phase > 1 ||
             cq->ien > 1 || cq->iv >= NVME_NR_VECTORS))
            return -EINVAL;
        if (sq->valid &&
            (sq->size < 2 || sq->size > NVME_MQES + 1 || sq->head >= sq->size ||
             sq->tail >= sq->size || sq->db >= sq->size ||
             sq->cqid >= NVME_NR_QUEUES || !h->cq[sq->cqid].valid ||
             (q == 0) != (sq->cqid == 0)))
            return -EINVAL;
    }
    return 0;
}

/* The header is in: is it a stream this controller can take? */
static int check_hdr(struct nvme_ctrl *c)
{
    const struct mig_hdr *h = &S.hdr;

    if (h->magic != MIG_MAGIC || h->version != MIG_VERSION ||
        h->hdr_len != sizeof(*h)) {
        ctrl_log(c, "migration: not a version %u stream", MIG_VERSION);
        return -EPROTO;
    }
    if (h->nr_ns != c->nr_ns) {
        ctrl_log(c, "migration: %u namespaces in the stream, %u here",
                 h->nr_ns, c->nr_ns);
        return -ENOSPC;
    }
    for (unsigned i = 0; i < h->nr_ns; i++) {
        const struct nvme_ns *ns = &c->ns[i];

        if (h->ns[i].nsid != ns->nsid || h->ns[i].size != ns->size ||
            h->ns[i].lba_shift != ns->lba_shift ||
            h->ns[i].is_file != ns->is_file) {
            ctrl_log(c, "migration: namespace %u differs", h->ns[i].nsid);
            return -ENOSPC;
        }
    }
    if (memchr(h->backing, 0, sizeof(h->backing)) == NULL ||
        memchr(h->serial, 0, sizeof(h->serial)) == NULL ||
        h->serial[0] == 0 || strlen(h->serial) >= sizeof(c->serial))
        return -EINVAL;
    if (h->backing[0] != 0 &&
        (c->opts.backing == NULL || strcmp(c->opts.backing, h->backing) != 0)) {
        ctrl_log(c, "migration: the stream's namespaces live in %s",
                 h->backing);
        return -ENOENT;
    }
    if (h->nr_aer > NVME_AERL + 1 || h->nr_aen > NVME_MAX_AEN ||
        h->err_next > NVME_ELPE || h->max_ioq > NVME_MAX_IOQ ||
        h->bme > 1 || h->msix > 1 || h->intx_pending > 1 ||
        (h->page_size != 0 && (h->page_size < NVME_PAGE_SIZE ||
                               (h->page_size & (h->page_size - 1)) != 0)) ||
        h->feat.nsqa > c->max_ioq || h->feat.ncqa > c->max_ioq)
        return -EINVAL;
    for (unsigned v = 0; v < NVME_NR_VECTORS; v++)
        if (h->vec_pending[v] > 2 * (NVME_MQES + 1) * NVME_NR_QUEUES)
            return -EINVAL;
    return check_queues(c, h);
}

/*
 * Entering RESUMING: memory for the RAM namespaces of the stream to come,
 * shaped as ours (check_hdr() takes no other), faulted in now.  The
 * client moves the destination to RESUMING before it stops the source,
 * so the first writes into 64 MiB of fresh memory (a quarter of a second
 * on a VM where the first touch of a page costs some 12 us) are paid
 * before the downtime, not in it.  Best effort: on any failure
 * stage_alloc() allocates when the header comes, as it would without
 * this.
 */
static void stage_prepare(struct nvme_ctrl *c)
{
    for (unsigned i = 0; i < c->nr_ns; i++) {
        struct nvme_ns *ns = &S.stage[i];

        if (c->ns[i].is_file) {
            memset(ns, 0, sizeof(*ns));
            ns->fd = -1;
        } else if (ns_init_ram(ns, c->ns[i].nsid, c->ns[i].size,
                               c->ns[i].lba_shift) < 0) {
            stage_drop();
            return;
        } else {
            ns_populate(ns);
        }
        S.nr_stage = i + 1;
    }
    S.prepared = true;
}

static int stage_alloc(struct nvme_ctrl *c)
{
    if (S.prepared) {
        /* The header matched our namespaces: so does what we made. */
        S.prepared = false;
        return 0;
    }
    for (unsigned i = 0; i < S.hdr.nr_ns; i++) {
        int rc;

        if (S.hdr.ns[i].is_file) {
            memset(&S.stage[i], 0, sizeof(S.stage[i]));
            S.stage[i].fd = -1;
        } else if ((rc = ns_init_ram(&S.stage[i], S.hdr.ns[i].nsid,
                                     S.hdr.ns[i].size,
                                     S.hdr.ns[i].lba_shift)) < 0) {
            return rc;
        }
        S.nr_stage = i + 1;
    }
    (void)c;
    return 0;
}

static int mig_load(mu_ctx_t *ctx, const void *buf, size_t len)
{
    struct nvme_ctrl *c = mu_ctx_opaque(ctx);
    const uint8_t *in = buf;
    int rc = 0;

    while (len > 0) {
        size_t n = len, avail;
        uint8_t *dst;

        if (S.pos < sizeof(S.hdr)) {
            dst = (uint8_t *)&S.hdr + S.pos;
            avail = sizeof(S.hdr) - (size_t)S.pos;
        } else if (S.pos < S.total - 8) {
            dst = body_at(S.stage, &S.hdr, S.pos, &avail);
            if (dst == NULL) {
                rc = -EIO;
                break;
            }
        } else if (S.pos < S.total) {
            dst = (uint8_t *)&S.sum + (S.pos - (S.total - 8));
            avail = (size_t)(S.total - S.pos);
        } else {
            ctrl_log(c, "migration: bytes past the end of the stream");
            rc = -EMSGSIZE;
            break;
        }
        if (n > avail)
            n = avail;
        memcpy(dst, in, n);
        if (S.pos < S.total - 8)
            hash_add(&S.hash, in, n);
        in += n;
        len -= n;
        S.pos += n;
        if (S.pos == sizeof(S.hdr) && !S.hdr_ok) {
            if ((rc = check_hdr(c)) < 0 || (rc = stage_alloc(c)) < 0)
                break;
            S.hdr_ok = true;
            S.total = sizeof(S.hdr) + body_len(&S.hdr) + 8;
        }
    }
    if (rc < 0)
        stage_drop();
    return rc;
}

/* RESUMING -> STOP: the stream is whole and checked; it replaces our state. */
static int apply(struct nvme_ctrl *c)
{
    const struct mig_hdr *h = &S.hdr;

    if (!S.hdr_ok || S.pos != S.total) {
        ctrl_log(c, "migration: stream truncated (%llu bytes)",
                 (unsigned long long)S.pos);
        return -ENODATA;
    }
    if (S.sum != S.hash.h) {
        ctrl_log(c, "migration: stream corrupted (hash)");
        return -EBADMSG;
    }
    ctrl_lock(c);
    queues_delete_all(c);
    for (unsigned i = 0; i < h->nr_ns; i++) {
        if (h->ns[i].is_file)
            continue;
        ns_fini(&c->ns[i]);
        c->ns[i] = S.stage[i];
        S.stage[i].mem = NULL;
        S.stage[i].fd = -1;
    }
    memcpy(c->serial, h->serial, strlen(h->serial) + 1);   /* checked */
    snprintf(c->subnqn, sizeof(c->subnqn), "nqn.2019-08.org.muser:nvme-%s",
             c->serial);
    for (unsigned i = 0; i < c->nr_ns; i++)
        ns_make_ids(&c->ns[i], c->serial);
    c->cap = h->cap;
    c->asq = h->asq;
    c->acq = h->acq;
    c->cc = h->cc;
    c->csts = h->csts;
    c->aqa = h->aqa;
    c->intms = h->intms;
    c->page_size = h->page_size;
    c->bme = h->bme;
    c->msix = h->msix;
    c->intx_pending = h->intx_pending;
    c->aen_masked = h->aen_masked;
    c->nr_aer = h->nr_aer;
    c->nr_aen = h->nr_aen;
    c->err_next = h->err_next;
    c->err_count = h->err_count;
    memcpy(c->aer_cid, h->aer_cid, sizeof(c->aer_cid));
    memcpy(c->aen, h->aen, sizeof(c->aen));
    c->coalescing = 0;
    for (unsigned v = 0; v < NVME_NR_VECTORS; v++)
        c->vec[v] = (struct nvme_vector){ .pending = h->vec_pending[v] };
    c->feat = h->feat;
    memcpy(c->err, h->err, sizeof(c->err));
    c->smart = h->smart;
    c->q_top = 0;
    c->nr_ioq_live = 0;
    for (unsigned q = 0; q < NVME_NR_QUEUES; q++) {
        const struct mig_cq *m = &h->cq[q];
        struct nvme_cq *cq = &c->cq[q];

        if (!m->valid)
            continue;
        /* Memory translated again on RUNNING: DMA is refused now. */
        memset(cq, 0, sizeof(*cq));
        cq->valid = true;
        cq->qid = (uint16_t)q;
        cq->size = m->size;
        cq->head = m->head;
        cq->tail = m->tail;
        cq->phase = m->phase;
        cq->ien = m->ien;
        cq->iv = m->iv;
        cq->bad_head = UINT32_MAX;
        cq->mem.iova = m->iova;
        if (c->db != NULL)
            c->db[2 * q + 1] = m->db;
        c->q_top = q + 1;
        if (q != 0)
            c->nr_ioq_live++;
    }
    for (unsigned q = 0; q < NVME_NR_QUEUES; q++) {
        const struct mig_sq *m = &h->sq[q];
        struct nvme_sq *sq = &c->sq[q];

        if (!m->valid)
            continue;
        memset(sq, 0, sizeof(*sq));
        sq->valid = true;
        sq->qid = (uint16_t)q;
        sq->cqid = m->cqid;
        sq->size = m->size;
        sq->head = m->head;
        sq->tail = m->tail;
        sq->bad_tail = UINT32_MAX;
        sq->mem.iova = m->iova;
        c->cq[m->cqid].nr_sqs++;
        if (c->db != NULL)
            c->db[2 * q] = m->db;
        if (q + 1 > c->q_top)
            c->q_top = q + 1;
        if (q != 0)
            c->nr_ioq_live++;
    }
    c->mig_remap = true;
    ctrl_unlock(c);
    S.nr_stage = 0;     /* moved into c->ns */
    stage_drop();
    ctrl_log(c, "migration: state restored (%u queues)", c->q_top);
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

                qmem_unmap(c, &c->cq[q].mem);
                c->cq[q].mem.iova = iova;
            }
            if (c->sq[q].valid && c->sq[q].mem.len != 0) {
                uint64_t iova = c->sq[q].mem.iova;

                qmem_unmap(c, &c->sq[q].mem);
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
        ctrl_lock(c);
        save_prepare(c);
        ctrl_unlock(c);
    } else if (to == MU_MIG_RESUMING) {
        stage_drop();
        stage_prepare(c);
    } else if (from == MU_MIG_RESUMING) {
        rc = apply(c);
        if (rc < 0)
            stage_drop();
    } else if (from == MU_MIG_STOP_COPY) {
        stage_drop();           /* the rest of the stream is dropped */
    }
    if (rc == 0 && !running_state(from) && running_state(to)) {
        ctrl_lock(c);
        if (c->mig_remap)
            rc = remap(c);
        if (rc == 0) {
            c->mig_stopped = false;
            c->pass_mig_stopped = false;    /* the poller's, from the stop */
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
    stage_drop();
}

int mig_setup(mu_ctx_t *ctx)
{
    const struct mu_mig_callbacks cb = {
        .size = sizeof(cb), .flags = MU_MIG_F_PRE_COPY,
        .transition = mig_transition, .save = mig_save, .load = mig_load,
    };

    return mu_mig_setup(ctx, &cb);
}

void mig_fini(void)
{
    stage_drop();
}
