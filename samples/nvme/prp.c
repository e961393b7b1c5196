/*
 * prp.c - turn PRP1/PRP2 (and the PRP lists PRP2 may point to) into the
 * list of guest address ranges a transfer covers.
 *
 * The cases, with page size P and PRP1 offset o:
 *  - o + len <= P: PRP1 alone;
 *  - one more page needed: PRP2 is that page;
 *  - more: PRP2 points to a PRP list (8-byte entries, qword aligned, maybe
 *    starting mid-page).  A list that needs more entries than remain in
 *    its page uses the page's last slot to point to the next list page.
 * Entries after PRP1 must be page aligned.  Adjacent pages are merged so
 * the translation that follows asks for as few ranges as possible.
 *
 * List pages are read with mu_dma_read(), which holds the region for the
 * copy and also works for regions without an fd.
 */
#include <errno.h>
#include <string.h>

#include "nvme.h"

/* More list pages than any legal transfer needs: a loop of chain
 * pointers must not keep us here. */
#define PRP_MAX_LIST_PAGES 8u

struct prp_out {
    struct nvme_range *r;
    unsigned nr;
};

/* False when out of room, which a transfer within MDTS cannot cause. */
static bool add_range(struct prp_out *o, uint64_t iova, size_t len)
{
    struct nvme_range *last = o->nr ? &o->r[o->nr - 1] : NULL;

    if (last != NULL && last->iova + last->len == iova) {
        last->len += len;
        return true;
    }
    if (o->nr == PRP_MAX_RANGES)
        return false;
    o->r[o->nr].iova = iova;
    o->r[o->nr].len = len;
    o->nr++;
    return true;
}

/* Read n list entries at 'list' (all in one page). */
static uint16_t read_list(struct nvme_ctrl *c, uint64_t list, uint64_t *ent,
                          unsigned n)
{
    int rc = ctrl_dma(c, list, ent, (size_t)n * sizeof(*ent), false);

    if (rc < 0) {
        ctrl_log(c, "PRP list at %#llx unreadable: %s",
                 (unsigned long long)list, strerror(-rc));
        return NVME_SC_DATA_XFER_ERROR;
    }
    return NVME_SC_SUCCESS;
}

static uint16_t walk_list(struct nvme_ctrl *c, uint64_t list, size_t rem,
                          struct prp_out *o)
{
    const uint64_t psz = c->page_size, pmask = psz - 1;
    uint64_t ent[NVME_PAGE_SIZE / sizeof(uint64_t)];

    for (unsigned pages = 0; rem > 0; pages++) {
        uint64_t need = (rem + psz - 1) / psz;
        uint64_t slots = (psz - (list & pmask)) / sizeof(uint64_t);
        bool chain = need > slots;
        unsigned n = (unsigned)(chain ? slots : need);
        unsigned ndata = chain ? n - 1 : n;
        uint16_t st;

        if ((list & 7) != 0 || pages == PRP_MAX_LIST_PAGES)
            return NVME_SC_PRP_OFFSET | NVME_ST_DNR;
        st = read_list(c, list, ent, n);
        if (st != NVME_SC_SUCCESS)
            return st;
        for (unsigned i = 0; i < ndata; i++) {
            size_t len = rem < psz ? rem : (size_t)psz;

            if (ent[i] & pmask)
                return NVME_SC_PRP_OFFSET | NVME_ST_DNR;
            if (!add_range(o, ent[i], len))
                return NVME_SC_INVALID_FIELD | NVME_ST_DNR;
            rem -= len;
        }
        if (chain)
            list = ent[n - 1];
    }
    return NVME_SC_SUCCESS;
}

uint16_t prp_walk(struct nvme_ctrl *c, uint64_t prp1, uint64_t prp2,
                  size_t len, struct nvme_range *r, unsigned *nr)
{
    const uint64_t psz = c->page_size, pmask = psz - 1;
    struct prp_out o = { r, 0 };
    size_t first, rem;
    uint16_t st = NVME_SC_SUCCESS;

    *nr = 0;
    if (len == 0)
        return NVME_SC_SUCCESS;
    if (len > NVME_MAX_XFER)
        return NVME_SC_INVALID_FIELD | NVME_ST_DNR;
    if (prp1 & 3)
        return NVME_SC_PRP_OFFSET | NVME_ST_DNR;
    first = psz - (prp1 & pmask);
    if (first > len)
        first = len;
    add_range(&o, prp1, first);
    rem = len - first;
    if (rem > 0 && rem <= psz) {
        if (prp2 & pmask)
            return NVME_SC_PRP_OFFSET | NVME_ST_DNR;
        add_range(&o, prp2, rem);       /* second of at most two */
    } else if (rem > 0) {
        st = walk_list(c, prp2, rem, &o);
    }
    *nr = o.nr;
    return st;
}
