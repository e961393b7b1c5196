/*
 * driver.h - a small NVMe "driver" on muser's client library, for the nvme
 * sample's integration test and the benchmark.
 *
 * It plays the part of a VMM plus the Linux nvme driver: guest memory is a
 * memfd mapped here and handed to the device as one or more adjacent DMA
 * regions (so transfers can cross region boundaries), optionally with an
 * extra region without an fd; the controller is brought up in the order
 * Linux uses; commands are built with PRP1/PRP2/PRP lists in that memory;
 * doorbells are rung trapped (REGION_WRITE), polled (stores into the
 * mmapped doorbell page) or through ioeventfds (store + kick); completions
 * are reaped by phase tag, optionally after waiting on MSI-X or INTx.
 *
 * Usage:  nvd_open(); nvd_bringup(); iova = nvd_alloc(); then
 *   QD1:   nvd_rw(d, 1, NVME_IO_READ, nsid, lba, nlb, iova, len)
 *   QD32:  32 x nvd_submit_rw(); nvd_ring(); nvd_reap() until all are
 *          back, resubmitting as completions arrive (a queue of io_qsize
 *          entries holds io_qsize - 1 commands);
 *   nvd_shutdown(); nvd_close().
 *
 * Functions return 0 (or a count, or an NVMe status >= 0 where noted) on
 * success and a negative errno on failure.  Not thread-safe.
 */
#ifndef NVME_TEST_DRIVER_H
#define NVME_TEST_DRIVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "muser-client.h"
#include "nvme-spec.h"

#define NVD_MAX_IOQ 64u
#define NVD_MAX_NS 128u
#define NVD_MAX_AEN 16u
#define NVD_PAGE 4096u
#define NVD_IRQ_INTX_INDEX 0u
#define NVD_IRQ_MSIX_INDEX 2u

enum nvd_db_mode {
    NVD_DB_TRAPPED,     /* REGION_WRITE to BAR0 */
    NVD_DB_POLLED,      /* store into the mmapped doorbell page */
    NVD_DB_IOEVENTFD,   /* store, then signal the doorbell's ioeventfd */
    NVD_DB_AUTO,        /* whatever the device offers: ioeventfds, else
                         * a shared doorbell page (polled), else trapped;
                         * nvd_open() puts the choice in d->o.db */
};

enum nvd_irq_mode {
    NVD_IRQ_MSIX,       /* one eventfd a vector, vector n for queue n */
    NVD_IRQ_INTX,       /* one eventfd, unmasked after each interrupt */
};

struct nvd_opts {
    const char *sock;
    size_t mem_size;        /* guest memory; default 64 MiB */
    unsigned nr_regions;    /* adjacent DMA regions it is split into; 2 */
    size_t fdless_size;     /* extra DMA region without an fd; 0: none */
    const char *mem_path;   /* guest memory in this file (created sparse,
                             * truncated to mem_size) instead of a memfd */
    enum nvd_db_mode db;
    enum nvd_irq_mode irq;
    bool wait_irq;          /* reap waits on the interrupt, not by spinning */
    unsigned nr_io_queues;  /* asked for; default 1 */
    unsigned io_qsize;      /* entries; default 64 */
    unsigned io_cq_size;    /* I/O CQ entries; default io_qsize */
    unsigned admin_qsize;   /* entries; default 32 */
    int timeout_ms;         /* any single wait; default 5000 */
    bool qemu_like;         /* connect as QEMU would (muc_opts.qemu_like):
                             * no ioeventfds, so NVD_DB_AUTO picks polled */
    /*
     * Performance knobs for the benchmark and the demo client:
     *  - poll_queues: I/O CQs are created without interrupts (IEN = 0),
     *    like Linux's poll queues; completions are found by spinning on
     *    the phase tag only, and the device skips the MSI-X signal.
     *  - cq_db_batch: ring a CQ head doorbell only once this many
     *    entries were consumed since the last ring (0 or 1: every reap,
     *    as Linux does).  A trapped doorbell is a message round trip, so
     *    this saves one round trip per reap.  It is clamped to what the
     *    CQ can absorb (cq_size - sq_size + 1) so the device never finds
     *    the CQ full because of us, and nvd_reap() rings whatever is
     *    pending before it waits or comes back empty-handed.
     */
    bool poll_queues;
    unsigned cq_db_batch;
};

struct nvd_queue {
    uint16_t qid;
    uint32_t size;          /* SQ entries */
    uint32_t cq_size;       /* CQ entries */
    uint32_t sq_cap, cq_cap;    /* entries our own queue memory holds */
    uint32_t slots;             /* CIDs and PRP list pages we have */
    struct nvme_sqe *sq;
    struct nvme_cqe *cq;
    uint64_t sq_iova, cq_iova;
    uint32_t sq_tail;       /* next free slot */
    uint32_t sq_head;       /* from the last SQHD seen */
    uint32_t cq_head;
    uint32_t cq_unrung;     /* consumed entries the device was not told of */
    uint8_t phase;
    uint16_t vector;
    bool live;
    /* Command slots: a CID is a slot; each slot owns two pages for its
     * PRP list (the second takes a chained list). */
    uint16_t *free_cid;
    unsigned nr_free;
    uint64_t prp_iova;      /* slot s: prp_iova + s * 2 pages */
    unsigned inflight;
};

struct nvd_ns {
    uint32_t nsid;
    uint64_t nsze;          /* blocks */
    unsigned lba_shift;
};

struct nvd {
    muc_t *c;
    struct nvd_opts o;

    /* guest memory */
    int memfd;
    uint8_t *mem;
    uint64_t mem_iova;
    size_t bump;            /* allocator: next free offset */
    uint8_t *fdless;
    uint64_t fdless_iova;
    /* Tests: while set, waits for completions leave the device's DMA
     * requests (fd-less memory) unanswered, so that a device thread
     * stays inside its mu_dma_read/mu_dma_write meanwhile. */
    bool hold_dma;

    /* doorbells */
    void *db_map;
    size_t db_map_len;
    uint32_t *db;           /* BAR0 + 1000h, when mapped */
    int iofd[2 * (NVD_MAX_IOQ + 1)];

    /* interrupts */
    int irqfd[NVD_MAX_IOQ + 1];
    unsigned nr_irqfd;
    uint64_t irqs_seen;

    /* controller */
    uint64_t cap;
    uint32_t vs;
    uint8_t idctrl[4096];
    struct nvd_ns ns[NVD_MAX_NS];
    unsigned nr_ns;
    struct nvd_queue aq;
    struct nvd_queue ioq[NVD_MAX_IOQ + 1];  /* [1..nr_ioq] */
    unsigned nr_ioq;
    uint64_t scratch;       /* 8 KiB for admin data */

    /* async events: AERs outstanding, and the events they brought */
    uint16_t aer_cid[NVD_MAX_AEN];
    unsigned nr_aer;
    uint32_t aen[NVD_MAX_AEN];
    unsigned nr_aen;
};

/* Connect, set up guest memory, doorbell access and interrupt fds. */
int nvd_open(struct nvd **out, const struct nvd_opts *o);
/*
 * Live-migrate the controller to the (fresh) one on connection dst (made
 * with max_msg_fds >= 2 * (NVD_MAX_IOQ + 1)): hand it the same guest
 * memory and interrupt fds, muc_migrate() from the current connection,
 * then close the old one and carry on with dst, which d now owns.
 * Queues, commands in flight and AERs stay as they were: the caller just
 * keeps reaping and submitting.  Trapped doorbells only (-ENOTSUP).  On
 * an error the old connection is kept and dst stays the caller's (the
 * source may be stopped: see muc_migrate()).
 */
int nvd_migrate(struct nvd *d, muc_t *dst, const struct muc_migrate_opts *mo,
                struct muc_migrate_stats *stats);
/* nvd_migrate()'s pieces, for callers that move the stream themselves:
 * set dst up as the destination (memory, bus master, interrupt fds), and
 * switch d over to dst (closing the old connection). */
int nvd_attach(struct nvd *d, muc_t *dst);
void nvd_adopt(struct nvd *d, muc_t *dst);
/* Disconnect (queues stay live in the device) and free everything. */
void nvd_close(struct nvd *d);

/* The Linux probe sequence, up to live I/O queues and known namespaces. */
int nvd_bringup(struct nvd *d);
/* CC.EN = 0 and wait for RDY = 0; forgets queues and outstanding AERs. */
int nvd_disable(struct nvd *d);
/* Disable then bring up again. */
int nvd_reset(struct nvd *d);
/* Delete I/O SQs then CQs, CC.SHN = 01b, wait for SHST = 10b. */
int nvd_shutdown(struct nvd *d);

/* Registers. */
int nvd_read32(struct nvd *d, uint32_t off, uint32_t *v);
int nvd_write32(struct nvd *d, uint32_t off, uint32_t v);
int nvd_wait_csts(struct nvd *d, uint32_t mask, uint32_t want, int timeout_ms);

/* Guest memory: allocate from the fd-backed area (returns an IOVA, 0 when
 * full); translate an IOVA (fd-backed or fd-less) to our pointer. */
uint64_t nvd_alloc(struct nvd *d, size_t len, size_t align);
void *nvd_va(struct nvd *d, uint64_t iova);
/* IOVA where DMA region i starts (i < nr_regions). */
uint64_t nvd_region_iova(const struct nvd *d, unsigned i);

/* ---- commands ---- */

/*
 * A data buffer for a command.  Either contiguous (pages NULL: iova, len)
 * or scattered over nr_pages pages, pages[0] possibly with an offset.
 * list_off places the PRP list inside the slot's first list page (a
 * multiple of 8; a list that does not fit chains into the second page).
 */
struct nvd_buf {
    uint64_t iova;
    size_t len;
    const uint64_t *pages;
    unsigned nr_pages;
    unsigned list_off;
};

/* Queue cmd on queue qid (0 = admin) without ringing; PRPs from buf (may
 * be NULL).  Sets cmd->cid and returns it, -EBUSY when the SQ is full. */
int nvd_submit(struct nvd *d, unsigned qid, struct nvme_sqe *cmd,
               const struct nvd_buf *buf);
/* Read/Write/Write Zeroes/... of nlb blocks at slba, buffer at iova. */
int nvd_submit_rw(struct nvd *d, unsigned qid, uint8_t opc, uint32_t nsid,
                  uint64_t slba, uint32_t nlb, uint64_t iova, size_t len);
/* Write doorbell idx (2 * qid + is_cq) the configured way, any value. */
int nvd_doorbell(struct nvd *d, unsigned idx, uint32_t v);
/* Ring the SQ tail doorbell of qid. */
int nvd_ring(struct nvd *d, unsigned qid);
/* Collect up to max completions of qid, waiting up to timeout_ms for the
 * first (0: only what is there), then ring the CQ head doorbell.  Returns
 * the count.  Admin queue: AER completions are kept in d->aen instead. */
int nvd_reap(struct nvd *d, unsigned qid, struct nvme_cqe *out, unsigned max,
             int timeout_ms);
/* Whether the next CQ entry of qid is new (its phase tag flipped), without
 * taking it: lets a caller timestamp a completion before nvd_reap(). */
bool nvd_cq_ready(struct nvd *d, unsigned qid);
/* Ring the CQ head doorbell of qid if consumed entries are unreported. */
int nvd_cq_flush(struct nvd *d, unsigned qid);
/* Submit, ring, wait for that command: returns its status (>= 0), or
 * -ETIMEDOUT, or -EPROTO when another completion came first (keep no
 * other command of that queue in flight across nvd_exec/nvd_rw). */
int nvd_exec(struct nvd *d, unsigned qid, struct nvme_sqe *cmd,
             const struct nvd_buf *buf, struct nvme_cqe *cqe);
int nvd_rw(struct nvd *d, unsigned qid, uint8_t opc, uint32_t nsid,
           uint64_t slba, uint32_t nlb, uint64_t iova, size_t len);

/* Admin helpers; return the NVMe status (>= 0) or -errno. */
int nvd_identify(struct nvd *d, uint8_t cns, uint32_t nsid, void *out4k);
int nvd_get_log(struct nvd *d, uint8_t lid, uint32_t nsid, void *out,
                size_t len);
int nvd_set_features(struct nvd *d, uint8_t fid, uint32_t dw11, uint32_t *dw0);
int nvd_get_features(struct nvd *d, uint8_t fid, unsigned sel, uint32_t dw11,
                     uint32_t *dw0);
/* Create I/O CQ qid then SQ qid (vector qid with MSI-X, else 0) and
 * record them in d->ioq[qid].  Returns the first failing status. */
int nvd_create_qpair(struct nvd *d, uint16_t qid, uint32_t sq_size,
                     uint32_t cq_size);
/* The same with the queues at given IOVAs (page aligned; e.g. in fd-less
 * memory, which the device reaches by messages only). */
int nvd_create_qpair_at(struct nvd *d, uint16_t qid, uint32_t sq_size,
                        uint32_t cq_size, uint64_t sq_iova, uint64_t cq_iova);
int nvd_delete_qpair(struct nvd *d, uint16_t qid);
/* Send one more AER and leave it outstanding (the bring-up sends one).
 * Completed ones land in d->aen. */
int nvd_aer_submit(struct nvd *d);

/* Wait for the interrupt of a vector (INTx: the one), then re-arm INTx.
 * Returns > 0 when it fired, 0 on timeout. */
int nvd_wait_irq(struct nvd *d, unsigned vector, int timeout_ms);

/* Internal, shared by driver.c and driver_cmd.c. */
void nvd__queue_init(struct nvd_queue *q, uint16_t qid, uint32_t sq_size,
                     uint32_t cq_size);

#endif
