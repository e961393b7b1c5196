/*
 * nvme.h - the emulated NVMe controller's shared state and the interfaces
 * between its files:
 *
 *   main.c      options, PCI identity, regions, interrupts, run loop
 *   regs.c      BAR0 registers, CC.EN / shutdown handshakes, resets
 *   poller.c    the controller lock and the polled-doorbell thread
 *   queues.c    SQ/CQ bookkeeping, doorbells, completions, fetching
 *   dmacb.c     DMA map/unmap callbacks (queue memory going away)
 *   intr.c      MSI-X / INTx delivery and interrupt coalescing
 *   admin.c     admin command set: queues, AER, abort, keep alive
 *   features.c  Get/Set Features
 *   identify.c  Identify
 *   log.c       log pages, error log, SMART counters, async events
 *   io.c        NVM command set: read, write, flush, write zeroes, DSM
 *   prp.c       PRP1/PRP2/PRP list walking
 *   xfer.c      moving data between guest memory and namespaces
 *   ns.c        namespaces backed by RAM (memfd) or a file
 *   mig.c       live migration: the state machine, the source's stream
 *               (pre-copy of the RAM namespaces, dirty granules)
 *   mig_load.c  live migration: the destination's checks and restore
 *
 * Threads.  The context thread runs muser (register accesses, DMA map and
 * unmap, resets, and in trapped-doorbell mode the command processing, as
 * long as all guest memory has an fd).  In polled-doorbell mode poller
 * threads (one, or --pollers N) own command processing; in trapped mode
 * the one poller takes it over while the guest has memory without an
 * fd: the context thread cannot wait for the client's DMA replies
 * (ctrl_defer).  A watcher
 * thread (main.c) handles signals and, in trapped mode, the coalescing
 * timer (intr_tick() under the lock).
 *
 * Locks.  "The controller lock" (ctrl_lock()) is every poller's mutex,
 * taken in poller order, then ctrl->lock: it guards everything below that
 * more than one thread touches.  The context thread takes it, first
 * asking the pollers to stand aside (pause_req) so that busy pollers
 * cannot starve it; in trapped and ioeventfd modes the one poller holds it
 * for one pass over the queues at a time.  In polled mode there may be
 * several pollers (--pollers N, poller.c): I/O CQ qid belongs to poller
 * qid % N, an I/O SQ to the poller of its CQ, and a poller runs its
 * queues holding only its own mutex ("an I/O pass"), so the pollers run
 * in parallel.  What an I/O pass may touch: its own queues, the
 * namespaces' bytes, its own counters (struct nvme_poller); it reads
 * controller state (registers, features, which queues exist), which
 * changes only under the controller lock, i.e. between its passes.  The
 * little shared state it writes (error log, queued events, interrupt
 * vectors' coalescing, INTx) it writes under ctrl->lock alone
 * (ctrl_common_lock()), and Controller Fatal Status with an atomic OR.
 * The admin queue, events and the coalescing clock are poller 0's, under
 * the controller lock (an "admin pass").
 */
#ifndef NVME_H
#define NVME_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "muser.h"
#include "nvme-spec.h"

#define NVME_VENDOR_ID 0x1234
#define NVME_DEVICE_ID 0x0a0e
#define NVME_CLASS_CODE 0x010802

#define NVME_BAR0_SIZE 0x4000u
#define NVME_DB_PAGE 0x1000u
#define NVME_MSIX_TABLE 0x2000u
#define NVME_MSIX_PBA 0x3000u

#define NVME_PAGE_SHIFT 12
#define NVME_PAGE_SIZE (1u << NVME_PAGE_SHIFT)
#define NVME_MAX_IOQ 64u            /* I/O queue pairs */
#define NVME_MAX_IOQ_IOEVENTFD 31u  /* 2 ioeventfds a pair, 64 fds a reply */
#define NVME_NR_QUEUES (NVME_MAX_IOQ + 1)
#define NVME_NR_VECTORS (NVME_MAX_IOQ + 1)
#define NVME_MQES 1023u             /* 0's based: 1024 entries */
#define NVME_MDTS 5u
#define NVME_MAX_XFER (NVME_PAGE_SIZE << NVME_MDTS)
#define NVME_AERL 3u                /* 0's based */
#define NVME_ACL 3u
#define NVME_ELPE 15u               /* 0's based error log entries */
#define NVME_MAX_NS 128u
#define NVME_MAX_AEN 8u
#define NVME_CAP_TO_VAL 0x0fu       /* 7.5 s */

#define NVME_TEMP_KELVIN 313u       /* the composite temperature we report */
#define NVME_WCTEMP 343u
#define NVME_CCTEMP 373u

/* An admin command answered later (AER): no completion now. */
#define NVME_NO_COMPLETION 0xffffu

#define NVME_SQE_SIZE 64u
#define NVME_CQE_SIZE 16u

/* ---- options ---- */

enum nvme_db_mode {
    NVME_DB_TRAPPED,    /* doorbell writes reach the BAR0 callback */
    NVME_DB_POLLED,     /* doorbell page shared; a thread polls it */
};

struct nvme_opts {
    const char *sock;
    const char *backing;
    const char *serial;
    uint64_t size;          /* bytes per namespace, 0: default */
    unsigned nr_ns;
    unsigned lba_shift;
    enum nvme_db_mode db_mode;
    unsigned pollers;       /* polled: poller threads, 1 by default */
    bool ioeventfd;         /* trapped: kicks through ioeventfds */
    bool once;
    bool verbose;
};

/* ---- namespaces (ns.c) ---- */

struct nvme_ns {
    uint32_t nsid;
    int fd;                 /* memfd (RAM) or the backing file */
    bool is_file;
    bool own_fd;            /* close fd at fini */
    uint64_t fd_off;        /* where this namespace starts in fd */
    uint8_t *mem;           /* RAM: the memfd mapped; NULL for files */
    uint64_t size;          /* bytes, a multiple of the block size */
    uint64_t nlb;           /* logical blocks */
    unsigned lba_shift;
    uint8_t nguid[16];
    uint8_t uuid[16];
    /* Migration (mig.c owns it): a bit per granule of NS_GRAN bytes,
     * set when the granule's bytes change; NULL when nobody tracks.
     * Read and written under the controller lock only, as the bytes are
     * (every command runs with it held). */
    uint64_t *dirty;
};

#define NS_GRAN_SHIFT 16u               /* migration granule: 64 KiB */
#define NS_GRAN (1ull << NS_GRAN_SHIFT)

int ns_init_ram(struct nvme_ns *ns, uint32_t nsid, uint64_t size,
                unsigned lba_shift);
int ns_init_file(struct nvme_ns *ns, uint32_t nsid, int fd, uint64_t off,
                 uint64_t size, unsigned lba_shift);
/* RAM: allocate and map every page now (best effort), so that writing
 * the namespace later takes no page fault. */
void ns_populate(struct nvme_ns *ns);
void ns_fini(struct nvme_ns *ns);
/* Move bytes at namespace offset off; 0 or -errno. */
int ns_rw(struct nvme_ns *ns, const struct iovec *iov, int iovcnt,
          uint64_t off, bool write);
int ns_zero(struct nvme_ns *ns, uint64_t off, uint64_t len);
/* Granules of [off, off + len) changed (a no-op when nobody tracks). */
void ns_mark_dirty(struct nvme_ns *ns, uint64_t off, uint64_t len);
int ns_flush(struct nvme_ns *ns);
void ns_make_ids(struct nvme_ns *ns, const char *serial);

/* ---- queues ---- */

#define QMEM_MAX_SG 8u

/* Guest memory of one queue, translated when the queue is created and
 * again on the first use after the client unmapped it (stale). */
struct nvme_qmem {
    uint64_t iova;
    size_t len;
    unsigned prot;
    mu_sg_t sg[QMEM_MAX_SG];
    unsigned nr_sg;         /* references held; 0 with !direct or stale */
    bool direct;            /* false: region has no fd, use messages */
    bool stale;             /* references dropped: translate on next use */
};

struct nvme_cq {
    bool valid;
    uint16_t qid;
    uint32_t size;          /* entries */
    uint32_t head, tail;
    uint8_t phase;
    bool ien;
    uint16_t iv;
    unsigned nr_sqs;        /* SQs completing here */
    bool stalled;           /* an SQ waits for room */
    unsigned irq_due;       /* posted since the last interrupt decision */
    uint32_t bad_head;      /* last invalid head reported (polled) */
    struct nvme_qmem mem;
};

struct nvme_sq {
    bool valid;
    uint16_t qid;
    uint16_t cqid;
    uint32_t size;
    uint32_t head, tail;
    bool stalled;           /* its CQ was full */
    uint32_t bad_tail;      /* last invalid tail reported (polled) */
    struct nvme_qmem mem;
};

/* ---- features (features.c) ---- */

struct nvme_features {
    uint32_t arbitration;
    uint32_t power_mgmt;
    uint16_t temp_over;     /* kelvin */
    uint16_t temp_under;
    uint32_t err_recovery;
    bool wce;               /* volatile write cache enabled */
    uint16_t nsqa, ncqa;    /* 0's based allocated I/O queues */
    uint8_t coalesce_thr;   /* 0's based */
    uint8_t coalesce_time;  /* 100 us units */
    bool vec_cd[NVME_NR_VECTORS];   /* coalescing disabled per vector */
    uint32_t write_atomic;
    uint32_t async_cfg;
};

/* ---- interrupts (intr.c) ---- */

struct nvme_vector {
    unsigned pending;       /* completions not yet signalled */
    uint64_t deadline_ns;   /* coalescing: signal by then; 0 none */
};

/* ---- log and health (log.c) ---- */

/* Counted by whoever runs the I/O command: a poller's I/O pass in its
 * struct nvme_poller, anyone else (under the controller lock) in
 * ctrl->smart.io; the SMART page adds them up (ctrl_io_stats()). */
struct nvme_io_stats {
    uint64_t units_read, units_written;     /* 512-byte units */
    uint64_t host_reads, host_writes;
    uint64_t busy_ns;
    uint64_t media_errors;
};

struct nvme_smart {
    struct nvme_io_stats io;
    uint64_t unsafe_shutdowns;
    uint64_t start_ns;
    uint8_t crit_warning;
};

/* ---- pollers (poller.c) ---- */

#define NVME_MAX_POLLERS 16u

/* A pass that left the lock for a DMA message (ctrl_dma) and found the
 * queues of its command torn down, or the controller stopped for
 * migration, meanwhile. */
struct nvme_pass {
    bool cancelled;
    bool mig_stopped;
    /* The queue pair of the command the pass runs (sq_process) or of the
     * completion it posts (aen_deliver); NULL outside.  Only their
     * teardown cancels the command: queues of other commands come and go
     * while it waits (several pollers: the admin queue's poller deletes
     * and creates queues while the others run theirs). */
    struct nvme_sq *sq;
    struct nvme_cq *cq;
};

struct nvme_ctrl;

struct nvme_poller {
    struct nvme_ctrl *c;
    unsigned id;
    pthread_t thread;
    pthread_mutex_t lock;   /* first part of the controller lock */
    /* With nothing to poll (controller not running, or ioeventfds taken)
     * the poller sleeps on wake, under its lock, until a change made
     * under the controller lock gives it work (ctrl_unlock) or it is
     * stopped: no wakeups while there is nothing to do. */
    pthread_cond_t wake;
    bool idle;              /* under lock: it is waiting on wake */
    struct nvme_pass pass;  /* of its I/O passes */
    struct nvme_io_stats io;    /* of its I/O passes */
} __attribute__((aligned(64)));

struct nvme_ctrl {
    mu_ctx_t *ctx;
    struct nvme_opts opts;

    /* The last part of the controller lock; alone, the lock of the
     * state that I/O passes share (ctrl_common_lock()). */
    pthread_mutex_t lock;
    int pause_req;          /* atomic: someone wants the controller lock */

    /* registers */
    uint64_t cap;
    uint32_t cc, csts, aqa, intms;
    uint64_t asq, acq;
    bool bme;               /* bus master enabled: DMA allowed */
    unsigned page_size;     /* from CC.MPS at enable */

    /* doorbell page shared with the client (polled or ioeventfd) */
    int db_fd;
    uint32_t *db;

    struct nvme_sq sq[NVME_NR_QUEUES];
    struct nvme_cq cq[NVME_NR_QUEUES];
    unsigned max_ioq;
    unsigned nr_ioq_live;   /* I/O SQs + CQs existing */
    /* 1 + the highest qid with a valid SQ or CQ: loops over the queues
     * (the poller's, on every pass) stop there instead of at max_ioq. */
    unsigned q_top;

    struct nvme_features feat;

    /* async events */
    uint16_t aer_cid[NVME_AERL + 1];
    unsigned nr_aer;
    uint32_t aen[NVME_MAX_AEN];     /* queued event DW0s */
    unsigned nr_aen;
    uint8_t aen_masked;             /* bit per event type awaiting log read */
    bool in_admin_cmd;              /* its completion still needs a slot */

    /* error log, newest at err[(err_next - 1) % n] */
    struct nvme_error_entry err[NVME_ELPE + 1];
    unsigned err_next;
    uint64_t err_count;

    struct nvme_smart smart;

    /* interrupts */
    bool msix;              /* the client enabled MSI-X */
    bool intx_pending;      /* asserted while masked by INTMS */
    struct nvme_vector vec[NVME_NR_VECTORS];
    unsigned coalescing;    /* vectors with a deadline */
    int timer_fd;           /* trapped mode: coalescing deadlines */

    struct nvme_ns ns[NVME_MAX_NS];
    unsigned nr_ns;

    char serial[21];
    char subnqn[224];

    /* pollers (polled mode, ioeventfd mode for its fallback, and trapped
     * mode for commands that need fd-less memory: ctrl_defer); more than
     * one in polled mode only */
    struct nvme_poller pollers[NVME_MAX_POLLERS];
    unsigned nr_pollers;
    bool poller_started;
    /* An I/O pass queued an event (aen_post): poller 0 delivers it in
     * its next admin pass.  Atomic. */
    int aen_kick;
    /* The poller serves the doorbell page: always in polled mode; in
     * ioeventfd mode from a CC.EN whose client did not take the
     * ioeventfds (QEMU never asks for them: it stores to the mapped page
     * and nothing kicks).  Under the lock. */
    bool db_poll;
    /* A poller leaves the lock while it waits for a DMA message
     * (ctrl_dma); every queue whose memory goes for good (deleted, reset,
     * its region gone: queue_mem_drop) bumps q_epoch and records the new
     * value in q_gone[2 * qid + is_cq].  A command whose own SQ or CQ was
     * dropped while it waited is abandoned (pass.cancelled); the commands
     * of other queues go on.  Under the controller lock; an I/O pass
     * reads them under its own mutex, part of that lock. */
    uint64_t q_epoch;
    uint64_t q_gone[2 * NVME_NR_QUEUES];
    /* ...and a migration stop that came meanwhile ends the pass too: the
     * command it interrupted runs again, from its fetch, once the
     * controller runs again (here or on the destination), unless its
     * completion is already posted (sq_process).  This one is the pass
     * state of whoever holds the controller lock; an I/O pass has its
     * own (ctrl_pass()). */
    struct nvme_pass pass;
    int poller_stop;        /* atomic */
    /* Trapped doorbells with guest memory that has no fd: the context
     * thread cannot copy it (it would wait for the client's reply, which
     * only it receives: muser refuses with -EDEADLK), so the poller thread
     * runs the commands instead (ctrl_defer).  Under the lock. */
    unsigned fdless_maps;   /* the client's DMA regions without an fd */
    bool work_pending;      /* the context thread left commands to it */

    /* migration (mig.c) */
    bool mig_stopped;       /* a stopped migration state: run nothing */
    bool mig_remap;         /* restored queues wait for their memory */
};

/* ---- poller.c: lock and polled doorbells ---- */
void ctrl_lock(struct nvme_ctrl *c);
void ctrl_unlock(struct nvme_ctrl *c);
/* Around writes of the state I/O passes share (error log, queued events,
 * vectors, INTx): takes ctrl->lock on an I/O pass, where only the
 * poller's own mutex is held; nothing elsewhere (the caller holds the
 * controller lock).  Nests.  Never across ctrl_dma(). */
void ctrl_common_lock(struct nvme_ctrl *c);
void ctrl_common_unlock(struct nvme_ctrl *c);
/* The calling thread runs an I/O pass (its poller's queues only). */
bool ctrl_in_io_pass(void);
/* The pass state and I/O counters of the calling thread's pass. */
struct nvme_pass *ctrl_pass(struct nvme_ctrl *c);
struct nvme_io_stats *ctrl_io_stats(struct nvme_ctrl *c);
/* The poller serving I/O CQ cqid (and the SQs completing there). */
unsigned ctrl_queue_poller(const struct nvme_ctrl *c, unsigned cqid);
/*
 * mu_dma_read/mu_dma_write for the command paths, lock held.  On the
 * poller thread the lock is released while the call waits for the
 * client's reply: only the context thread can take that reply off the
 * socket, and it may be waiting for this very lock (a register read, a
 * DMA unmap, a reset).  Returns -ECANCELED (and sets pass->cancelled)
 * when the queues of the pass's command (ctrl_pass()->sq and ->cq; any
 * queue if it names none) were torn down meanwhile: the command must not
 * complete.  Other queues' teardown does not concern it.
 */
int ctrl_dma(struct nvme_ctrl *c, uint64_t iova, void *buf, size_t len,
             bool to_guest);
/*
 * Command processing (sq_process, aen_deliver) asked for on the context
 * thread while the guest has memory without an fd: leave it to the
 * poller thread, which is woken when the lock is let go (ctrl_unlock).
 * True when the caller must not run it itself.  Lock held.
 */
bool ctrl_defer(struct nvme_ctrl *c);
/* n pollers (1 outside polled mode); their mutexes exist from here on. */
void pollers_init(struct nvme_ctrl *c, unsigned n);
void pollers_fini(struct nvme_ctrl *c);
int poller_start(struct nvme_ctrl *c);
void poller_stop(struct nvme_ctrl *c);

/* ---- regs.c ---- */
ssize_t bar0_access(mu_ctx_t *ctx, void *buf, size_t count, uint64_t offset,
                    bool is_write);
int ctrl_on_reset(mu_ctx_t *ctx, enum mu_reset_type type);
void ctrl_on_command(mu_ctx_t *ctx, uint16_t old_cmd, uint16_t new_cmd);
void ctrl_init_regs(struct nvme_ctrl *c);
/* Fatal controller status: stop processing until the host resets. */
void ctrl_fatal(struct nvme_ctrl *c, const char *why);
/* Ready: enabled, not failed, not shut down.  Running: ready and allowed
 * to master the bus, i.e. to fetch and complete commands. */
bool ctrl_ready(const struct nvme_ctrl *c);
bool ctrl_running(const struct nvme_ctrl *c);
void ctrl_log(const struct nvme_ctrl *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* ---- queues.c ---- */
int qmem_map(struct nvme_ctrl *c, struct nvme_qmem *m, uint64_t iova,
             size_t len, unsigned prot);
/* The memory of SQ (index 2 * qid) or CQ (2 * qid + 1) qid: */
struct nvme_qmem *queue_mem(struct nvme_ctrl *c, unsigned index);
/* ...dropped for good (the queue is deleted, or its memory gone): the
 * references put, and a command of that queue waiting in ctrl_dma()
 * meanwhile is cancelled.  Controller lock held. */
void queue_mem_drop(struct nvme_ctrl *c, unsigned index);
/* Drop the references but keep the queue: the next access translates
 * again, and fails only if the memory is still not mapped then. */
void qmem_release(struct nvme_ctrl *c, struct nvme_qmem *m);
bool qmem_in_region(const struct nvme_qmem *m, const mu_dma_region_t *r);
int cq_create(struct nvme_ctrl *c, uint16_t qid, uint64_t iova, uint32_t size,
              bool ien, uint16_t iv);
int sq_create(struct nvme_ctrl *c, uint16_t qid, uint64_t iova, uint32_t size,
              uint16_t cqid);
void cq_delete(struct nvme_ctrl *c, uint16_t qid);
void sq_delete(struct nvme_ctrl *c, uint16_t qid);
void queues_delete_all(struct nvme_ctrl *c);
bool cq_full(const struct nvme_cq *cq);
void cq_post(struct nvme_ctrl *c, struct nvme_cq *cq, uint32_t dw0,
             uint16_t sqhd, uint16_t sqid, uint16_t cid, uint16_t status);
/* A doorbell write: index = 2 * qid + is_cq. */
void db_write(struct nvme_ctrl *c, unsigned index, uint32_t value);
/* Run up to budget commands the SQ holds (fewer if its CQ fills up);
 * returns the number run. */
unsigned sq_process(struct nvme_ctrl *c, struct nvme_sq *sq, unsigned budget);
unsigned sq_process_all(struct nvme_ctrl *c);
void db_page_clear(struct nvme_ctrl *c, unsigned index);

/* ---- dmacb.c ---- */
int dma_on_map(mu_ctx_t *ctx, mu_dma_region_t *r);
void dma_on_unmap(mu_ctx_t *ctx, mu_dma_region_t *r,
                  enum mu_unmap_reason reason);

/* ---- intr.c ---- */
void intr_cq_flush(struct nvme_ctrl *c, struct nvme_cq *cq);
void intr_flush_all(struct nvme_ctrl *c);
void intr_tick(struct nvme_ctrl *c);
void intr_cq_consumed(struct nvme_ctrl *c, struct nvme_cq *cq);
void intr_intms_changed(struct nvme_ctrl *c);
void intr_reset(struct nvme_ctrl *c);
void intr_on_state(mu_ctx_t *ctx, enum mu_irq_type type, bool enabled);
void intr_timer_update(struct nvme_ctrl *c);
uint64_t now_ns(void);

/* ---- command sets ---- */
uint16_t admin_exec(struct nvme_ctrl *c, struct nvme_sq *sq,
                    const struct nvme_sqe *cmd, uint32_t *dw0);
uint16_t io_exec(struct nvme_ctrl *c, const struct nvme_sqe *cmd,
                 uint32_t *dw0);
uint16_t features_set(struct nvme_ctrl *c, const struct nvme_sqe *cmd,
                      uint32_t *dw0);
uint16_t features_get(struct nvme_ctrl *c, const struct nvme_sqe *cmd,
                      uint32_t *dw0);
void features_reset(struct nvme_ctrl *c);
uint16_t identify(struct nvme_ctrl *c, const struct nvme_sqe *cmd);
struct nvme_ns *ns_lookup(struct nvme_ctrl *c, uint32_t nsid);

/* ---- log.c ---- */
uint16_t log_get_page(struct nvme_ctrl *c, const struct nvme_sqe *cmd);
void log_error(struct nvme_ctrl *c, uint16_t sqid, const struct nvme_sqe *cmd,
               uint16_t status);
void aen_post(struct nvme_ctrl *c, uint8_t type, uint8_t info, uint8_t lid);
void aen_deliver(struct nvme_ctrl *c);
void aen_reset(struct nvme_ctrl *c);
void smart_check_temp(struct nvme_ctrl *c);

/* ---- mig.c ---- */
/* Offer migration (before realize); 0 or -errno. */
int mig_setup(mu_ctx_t *ctx);
/* A controller or function reset: the library is back in RUNNING. */
void mig_on_reset(struct nvme_ctrl *c);
void mig_fini(void);

/* ---- prp.c ---- */
struct nvme_range {
    uint64_t iova;
    size_t len;
};
#define PRP_MAX_RANGES (NVME_MAX_XFER / NVME_PAGE_SIZE + 1)
uint16_t prp_walk(struct nvme_ctrl *c, uint64_t prp1, uint64_t prp2,
                  size_t len, struct nvme_range *r, unsigned *nr);

/* ---- xfer.c ---- */
/* Copy len bytes between buf and the guest buffer described by PRPs. */
uint16_t xfer_to_guest(struct nvme_ctrl *c, uint64_t prp1, uint64_t prp2,
                       const void *buf, size_t len);
uint16_t xfer_from_guest(struct nvme_ctrl *c, uint64_t prp1, uint64_t prp2,
                         void *buf, size_t len);
/* Move len bytes between the PRP buffer and namespace offset off. */
uint16_t xfer_ns(struct nvme_ctrl *c, struct nvme_ns *ns, uint64_t prp1,
                 uint64_t prp2, size_t len, uint64_t off, bool write);

/* little helpers */
static inline void put_le16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}

static inline void put_le32(uint8_t *p, uint32_t v)
{
    put_le16(p, (uint16_t)v);
    put_le16(p + 2, (uint16_t)(v >> 16));
}

static inline void put_le64(uint8_t *p, uint64_t v)
{
    put_le32(p, (uint32_t)v);
    put_le32(p + 4, (uint32_t)(v >> 32));
}

#endif /* NVME_H */
