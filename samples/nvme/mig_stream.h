/*
 * mig_stream.h - the nvme sample's migration stream, version 2 (mig.c
 * writes it, mig_load.c reads it).  Host byte order: both ends run on the
 * same host or the same architecture.
 *
 *   struct mig_begin     magic "NVMM", version, its length, the granule
 *                        size and the namespaces' shape
 *   records, each a struct mig_rec and len bytes:
 *     MIG_REC_GRAN       one granule of a RAM namespace (NS_GRAN bytes,
 *                        the namespace's last one possibly shorter): off
 *                        a multiple of NS_GRAN, len the granule's length
 *     MIG_REC_STATE      the controller: a struct mig_hdr (registers,
 *                        features, AERs, logs, vectors, queues, the
 *                        namespaces' shape, the backing file's name)
 *     MIG_REC_END        8 bytes: the hash of every byte before them
 *
 * In PRE_COPY the source sends the begin record and then passes over its
 * RAM namespaces: every granule in the first, then those written since
 * they were sent.  In STOP_COPY it sends the state record, each granule
 * still dirty once, and the end record.  A stream without a PRE_COPY
 * part is the same with every granule after the state record.  The
 * destination takes a granule any number of times before the state
 * record (the last copy wins) and once at most after it, and wants every
 * granule of every RAM namespace before the end.
 *
 * Version 1 streams (the whole state in STOP_COPY, no records) are
 * refused: a source of this version sends version 2 only.
 */
#ifndef NVME_MIG_STREAM_H
#define NVME_MIG_STREAM_H

#include <stdint.h>
#include <string.h>

#include "nvme.h"

#define MIG_MAGIC 0x4d4d564eu   /* "NVMM" */
#define MIG_VERSION 2u

enum { MIG_REC_GRAN = 1, MIG_REC_STATE = 2, MIG_REC_END = 3 };

struct mig_ns {
    uint32_t nsid, lba_shift;
    uint64_t size;
    uint8_t is_file, pad[7];
};

struct mig_begin {
    uint32_t magic;
    uint16_t version, pad0;     /* where version 1 had them too */
    uint32_t len;               /* sizeof(struct mig_begin) */
    uint32_t gran;              /* NS_GRAN */
    uint32_t nr_ns, pad1;
    struct mig_ns ns[NVME_MAX_NS];
};

struct mig_rec {
    uint32_t type;              /* MIG_REC_* */
    uint32_t ns;                /* GRAN: index of the namespace */
    uint64_t off;               /* GRAN: byte offset in it */
    uint64_t len;               /* bytes that follow */
};

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

/* Every piece is a multiple of 8 bytes (granules: of the block size), so
 * the hash carries nothing over at the end. */
_Static_assert(sizeof(struct mig_hdr) % 8 == 0, "header padding");
_Static_assert(sizeof(struct mig_begin) % 8 == 0, "begin padding");
_Static_assert(sizeof(struct mig_rec) == 24, "record header");

/* The hash works on 8-byte words; it must see the stream in any pieces. */
struct mig_hash {
    uint64_t h;
    uint8_t carry[8];
    unsigned nc;
};

static inline void mig_hash_init(struct mig_hash *s)
{
    s->h = 0xcbf29ce484222325ull;
    s->nc = 0;
}

static inline void mig_hash_word(struct mig_hash *s, uint64_t w)
{
    /* (h ^ w) * odd: a bijection in h for each w, so one changed word
     * (or byte) always changes the result. */
    s->h = (s->h ^ w) * 0x100000001b3ull;
    s->h ^= s->h >> 29;
}

static inline void mig_hash_add(struct mig_hash *s, const void *buf,
                                size_t len)
{
    const uint8_t *p = buf;
    uint64_t w;

    while (len > 0 && s->nc > 0) {
        s->carry[s->nc++] = *p++;
        len--;
        if (s->nc == 8) {
            memcpy(&w, s->carry, 8);
            mig_hash_word(s, w);
            s->nc = 0;
        }
    }
    for (; len >= 8; p += 8, len -= 8) {
        memcpy(&w, p, 8);
        mig_hash_word(s, w);
    }
    memcpy(s->carry, p, len);
    s->nc = (unsigned)len;
}

/* Granules of a namespace, and the length of granule g. */
static inline uint64_t mig_nr_gran(uint64_t size)
{
    return (size + NS_GRAN - 1) >> NS_GRAN_SHIFT;
}

static inline uint64_t mig_gran_len(uint64_t size, uint64_t g)
{
    uint64_t off = g << NS_GRAN_SHIFT;

    return size - off < NS_GRAN ? size - off : NS_GRAN;
}

/* mig_load.c, for mig.c's transitions. */
void mig_load_reset(void);              /* forget any stream */
void mig_load_prepare(struct nvme_ctrl *c);     /* entering RESUMING */
int mig_load(mu_ctx_t *ctx, const void *buf, size_t len);
int mig_load_apply(struct nvme_ctrl *c);        /* RESUMING -> STOP */

#endif
