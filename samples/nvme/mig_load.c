/*
 * mig_load.c - the destination's side of a migration: the stream
 * (mig_stream.h) parsed as it comes in RESUMING, checked, and applied
 * when RESUMING ends.
 *
 * Nothing reaches the controller before the whole stream is in and
 * checked: granules go into staging memfds shaped as our namespaces, the
 * controller's state into a copy of its record; a stream of another
 * version, a shape this controller does not have (fewer, smaller or other
 * namespaces, queues it cannot hold), a bad record (unknown type, a
 * granule out of range or of the wrong length, a second state record, a
 * granule twice after it), a granule never sent, a bad hash, missing or
 * extra bytes is refused, and the controller keeps what it had.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mig_stream.h"

enum { L_BEGIN, L_REC, L_BODY, L_DONE };

static struct {
    unsigned phase;             /* L_* */
    uint64_t pos;               /* bytes of the current piece in */
    struct mig_begin begin;
    struct mig_rec rec;
    struct mig_hdr hdr;
    uint64_t sum;               /* the END record's hash */
    struct mig_hash hash;
    bool state_seen;
    bool prepared;              /* stage made by mig_load_prepare() */
    struct nvme_ns stage[NVME_MAX_NS];  /* RAM contents */
    unsigned nr_stage;
    uint64_t *seen[NVME_MAX_NS];        /* granules received */
    uint64_t *late[NVME_MAX_NS];        /* ... after the state record */
} L;

static bool bit(const uint64_t *b, uint64_t i)
{
    return (b[i / 64] >> (i % 64)) & 1;
}

void mig_load_reset(void)
{
    for (unsigned i = 0; i < L.nr_stage; i++)
        ns_fini(&L.stage[i]);
    for (unsigned i = 0; i < NVME_MAX_NS; i++) {
        free(L.seen[i]);
        free(L.late[i]);
        L.seen[i] = L.late[i] = NULL;
    }
    L.nr_stage = 0;
    L.prepared = false;
    L.phase = L_BEGIN;
    L.pos = 0;
    L.state_seen = false;
    mig_hash_init(&L.hash);
}

/*
 * Entering RESUMING: memory for the RAM namespaces of the stream to come,
 * shaped as ours (the begin record must match them), faulted in now.
 * The client moves the destination to RESUMING before it stops the
 * source, so the first writes into fresh memory (a quarter of a second
 * for 64 MiB on a VM where the first touch of a page costs some 12 us)
 * are paid before the downtime, not in it.  Best effort: on any failure
 * stage_alloc() allocates when the begin record comes.
 */
void mig_load_prepare(struct nvme_ctrl *c)
{
    for (unsigned i = 0; i < c->nr_ns; i++) {
        struct nvme_ns *ns = &L.stage[i];

        if (c->ns[i].is_file) {
            memset(ns, 0, sizeof(*ns));
            ns->fd = -1;
        } else if (ns_init_ram(ns, c->ns[i].nsid, c->ns[i].size,
                               c->ns[i].lba_shift) < 0) {
            mig_load_reset();
            return;
        } else {
            ns_populate(ns);
        }
        L.nr_stage = i + 1;
    }
    L.prepared = true;
}

static int stage_alloc(void)
{
    const struct mig_begin *b = &L.begin;

    for (unsigned i = 0; i < b->nr_ns; i++) {
        size_t words = (size_t)(mig_nr_gran(b->ns[i].size) + 63) / 64;
        int rc;

        if (!b->ns[i].is_file) {
            L.seen[i] = calloc(words, 8);
            L.late[i] = calloc(words, 8);
            if (L.seen[i] == NULL || L.late[i] == NULL)
                return -ENOMEM;
        }
        if (L.prepared)
            continue;   /* the begin record matched ours: so does it */
        if (b->ns[i].is_file) {
            memset(&L.stage[i], 0, sizeof(L.stage[i]));
            L.stage[i].fd = -1;
        } else if ((rc = ns_init_ram(&L.stage[i], b->ns[i].nsid,
                                     b->ns[i].size, b->ns[i].lba_shift)) < 0) {
            return rc;
        }
        L.nr_stage = i + 1;
    }
    L.prepared = false;
    return 0;
}

/* The namespaces of a begin or state record against ours. */
static int check_shape(struct nvme_ctrl *c, uint32_t nr,
                       const struct mig_ns *m)
{
    if (nr != c->nr_ns) {
        ctrl_log(c, "migration: %u namespaces in the stream, %u here", nr,
                 c->nr_ns);
        return -ENOSPC;
    }
    for (unsigned i = 0; i < nr; i++) {
        const struct nvme_ns *ns = &c->ns[i];

        if (m[i].nsid != ns->nsid || m[i].size != ns->size ||
            m[i].lba_shift != ns->lba_shift || m[i].is_file != ns->is_file) {
            ctrl_log(c, "migration: namespace %u differs", m[i].nsid);
            return -ENOSPC;
        }
    }
    return 0;
}

static int check_begin(struct nvme_ctrl *c)
{
    const struct mig_begin *b = &L.begin;

    if (b->magic != MIG_MAGIC || b->version != MIG_VERSION ||
        b->len != sizeof(*b)) {
        ctrl_log(c, "migration: not a version %u stream (version %u)",
                 MIG_VERSION, b->magic == MIG_MAGIC ? b->version : 0);
        return -EPROTO;
    }
    if (b->gran != NS_GRAN) {
        ctrl_log(c, "migration: granules of %u bytes, %llu here", b->gran,
                 (unsigned long long)NS_GRAN);
        return -EPROTO;
    }
    return check_shape(c, b->nr_ns, b->ns);
}

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

/* The state record is in: is it one this controller can take? */
static int check_hdr(struct nvme_ctrl *c)
{
    const struct mig_hdr *h = &L.hdr;
    int rc;

    if (h->magic != MIG_MAGIC || h->version != MIG_VERSION ||
        h->hdr_len != sizeof(*h)) {
        ctrl_log(c, "migration: not a version %u state record", MIG_VERSION);
        return -EPROTO;
    }
    if ((rc = check_shape(c, h->nr_ns, h->ns)) < 0)
        return rc;
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

/* Every granule of every RAM namespace came. */
static int check_complete(struct nvme_ctrl *c)
{
    for (unsigned i = 0; i < L.begin.nr_ns; i++) {
        uint64_t n = mig_nr_gran(L.begin.ns[i].size);

        if (L.begin.ns[i].is_file)
            continue;
        for (uint64_t g = 0; g < n; g++) {
            if (!bit(L.seen[i], g)) {
                ctrl_log(c, "migration: granule %llu of namespace %u never "
                         "sent", (unsigned long long)g, L.begin.ns[i].nsid);
                return -ENODATA;
            }
        }
    }
    return 0;
}

/* A record header is in: can we take what it announces? */
static int check_rec(struct nvme_ctrl *c)
{
    const struct mig_rec *r = &L.rec;
    const struct mig_begin *b = &L.begin;
    uint64_t g;

    switch (r->type) {
    case MIG_REC_GRAN:
        if (r->ns >= b->nr_ns || b->ns[r->ns].is_file ||
            r->off >= b->ns[r->ns].size || (r->off & (NS_GRAN - 1)) != 0) {
            ctrl_log(c, "migration: granule out of range (namespace %u, "
                     "offset %#llx)", r->ns, (unsigned long long)r->off);
            return -ERANGE;
        }
        g = r->off >> NS_GRAN_SHIFT;
        if (r->len != mig_gran_len(b->ns[r->ns].size, g)) {
            ctrl_log(c, "migration: granule of %llu bytes, not %llu",
                     (unsigned long long)r->len,
                     (unsigned long long)mig_gran_len(b->ns[r->ns].size, g));
            return -EINVAL;
        }
        if (L.state_seen && bit(L.late[r->ns], g)) {
            ctrl_log(c, "migration: granule %llu of namespace %u twice "
                     "after the state", (unsigned long long)g, r->ns);
            return -EEXIST;
        }
        return 0;
    case MIG_REC_STATE:
        if (r->len != sizeof(L.hdr)) {
            ctrl_log(c, "migration: state record of %llu bytes",
                     (unsigned long long)r->len);
            return -EINVAL;
        }
        if (L.state_seen) {
            ctrl_log(c, "migration: a second state record");
            return -EEXIST;
        }
        return 0;
    case MIG_REC_END:
        if (r->len != sizeof(L.sum))
            return -EINVAL;
        if (!L.state_seen) {
            ctrl_log(c, "migration: stream ends without the state");
            return -ENODATA;
        }
        return check_complete(c);
    default:
        ctrl_log(c, "migration: unknown record type %u", r->type);
        return -EPROTO;
    }
}

/* Where the current record's body goes, and how much of it is left. */
static uint8_t *body_dst(size_t *avail)
{
    uint64_t left = L.rec.len - L.pos;

    *avail = left > SIZE_MAX ? SIZE_MAX : (size_t)left;
    switch (L.rec.type) {
    case MIG_REC_GRAN:
        return L.stage[L.rec.ns].mem + L.rec.off + L.pos;
    case MIG_REC_STATE:
        return (uint8_t *)&L.hdr + L.pos;
    default:
        return (uint8_t *)&L.sum + L.pos;
    }
}

/* The current record's body is in. */
static int rec_done(struct nvme_ctrl *c)
{
    const struct mig_rec *r = &L.rec;
    uint64_t g = r->off >> NS_GRAN_SHIFT;
    int rc;

    switch (r->type) {
    case MIG_REC_GRAN:
        L.seen[r->ns][g / 64] |= 1ull << (g % 64);
        if (L.state_seen)
            L.late[r->ns][g / 64] |= 1ull << (g % 64);
        break;
    case MIG_REC_STATE:
        if ((rc = check_hdr(c)) < 0)
            return rc;
        L.state_seen = true;
        break;
    default:
        L.phase = L_DONE;
        return 0;
    }
    L.phase = L_REC;
    return 0;
}

int mig_load(mu_ctx_t *ctx, const void *buf, size_t len)
{
    struct nvme_ctrl *c = mu_ctx_opaque(ctx);
    const uint8_t *in = buf;
    int rc = 0;

    while (len > 0 && rc == 0) {
        size_t n = len, avail;
        uint8_t *dst;
        bool hashed = true;

        switch (L.phase) {
        case L_BEGIN:
            dst = (uint8_t *)&L.begin + L.pos;
            avail = sizeof(L.begin) - (size_t)L.pos;
            break;
        case L_REC:
            dst = (uint8_t *)&L.rec + L.pos;
            avail = sizeof(L.rec) - (size_t)L.pos;
            break;
        case L_BODY:
            dst = body_dst(&avail);
            hashed = L.rec.type != MIG_REC_END;
            break;
        default:
            ctrl_log(c, "migration: bytes past the end of the stream");
            rc = -EMSGSIZE;
            continue;
        }
        if (n > avail)
            n = avail;
        memcpy(dst, in, n);
        if (hashed)
            mig_hash_add(&L.hash, in, n);
        in += n;
        len -= n;
        L.pos += n;
        if (n < avail)
            break;
        /* This piece is whole. */
        L.pos = 0;
        if (L.phase == L_BEGIN) {
            if ((rc = check_begin(c)) == 0 && (rc = stage_alloc()) == 0)
                L.phase = L_REC;
        } else if (L.phase == L_REC) {
            if ((rc = check_rec(c)) == 0)
                L.phase = L_BODY;
        } else {
            rc = rec_done(c);
        }
    }
    if (rc < 0)
        mig_load_reset();
    return rc;
}

/* RESUMING -> STOP: the stream is whole and checked; it replaces our state. */
int mig_load_apply(struct nvme_ctrl *c)
{
    const struct mig_hdr *h = &L.hdr;

    if (L.phase != L_DONE) {
        ctrl_log(c, "migration: stream truncated");
        return -ENODATA;
    }
    if (L.sum != L.hash.h) {
        ctrl_log(c, "migration: stream corrupted (hash)");
        return -EBADMSG;
    }
    ctrl_lock(c);
    queues_delete_all(c);
    for (unsigned i = 0; i < h->nr_ns; i++) {
        if (h->ns[i].is_file)
            continue;
        ns_fini(&c->ns[i]);
        c->ns[i] = L.stage[i];
        L.stage[i].mem = NULL;
        L.stage[i].fd = -1;
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
    L.nr_stage = 0;     /* moved into c->ns */
    mig_load_reset();
    ctrl_log(c, "migration: state restored (%u queues)", c->q_top);
    return 0;
}
