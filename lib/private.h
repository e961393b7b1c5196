/*
 * private.h - the context structure and the internal interfaces between the
 * layers: transport <-> context <-> subsystems (pci, regions, irq, dma).
 *
 * Data flows one way: the transport hands the context whole messages, the
 * context checks and dispatches them to a subsystem, the subsystem calls the
 * device, and the context encodes and sends the reply.  Subsystems never
 * touch the transport directly; when they must talk to the client (DMA_READ
 * and DMA_WRITE), they go through mu_ctx_call().
 */
#ifndef MUSER_PRIVATE_H
#define MUSER_PRIVATE_H

#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/uio.h>

#include "muser.h"
#include "dma_log.h"
#include "msgio.h"
#include "wire.h"

#define MU_MAX_REGIONS 32u
#define MU_MAX_ALLOW_UIDS 64u

/* ---- logging ---- */

void mu_log(mu_ctx_t *ctx, enum mu_log_level level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
#ifdef MU_DEBUG_LOG
#define mu_dbg(ctx, ...) mu_log((ctx), MU_LOG_DEBUG, __VA_ARGS__)
#else
#define mu_dbg(ctx, ...) do { (void)(ctx); } while (0)
#endif

/*
 * Why a request is refused, for the debug log of dispatch.c: a handler (or
 * anything it calls on the context thread) returns mu_refuse(ctx, -EINVAL,
 * "offset %#x ...", ...) instead of -EINVAL.  The first reason given for a
 * message wins (the innermost check knows most).  Formatting happens only
 * when the context logs at MU_LOG_DEBUG, so a refusal costs one comparison
 * otherwise.  Returns err.
 */
int mu_refuse(mu_ctx_t *ctx, int err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static inline bool mu_log_debug_on(const mu_ctx_t *ctx);

/* ---- transport ---- */

/*
 * A transport delivers a client's bytes and fds to the context.  The UNIX
 * socket is the one we ship; the kernel mdev bridge of the original muser
 * design would be another, with default_overlap = MU_OVERLAP_REPLACE because
 * it never reports unmaps.
 */
struct mu_tran_ops {
    const char *name;
    enum mu_overlap_policy default_overlap;
    /* Create the endpoint; returns the fd to watch for new clients. */
    int (*init)(mu_ctx_t *ctx);
    /* Take a new client: returns the fd to watch for its traffic, -EAGAIN
     * when none is waiting, -EACCES when it was refused (already closed). */
    int (*accept)(mu_ctx_t *ctx);
    /* Pull what the client sent: > 0 bytes, -EAGAIN, -ENOTCONN, ... */
    int (*read)(mu_ctx_t *ctx);
    /* Cut the next whole message: 1, 0 (need more) or -errno (fatal). */
    int (*next)(mu_ctx_t *ctx, struct mu_msg *msg);
    /* Start time of a message that has begun to arrive, 0 if none. */
    uint64_t (*partial_since)(mu_ctx_t *ctx);
    /*
     * The context thread waits for the reply to its own call (dispatch.c,
     * wait_inline) and found nothing to read: block until the client may
     * have sent more, or until mu_now_ns() reaches deadline.  0: look
     * again; -ETIMEDOUT: nothing will come in time; -errno.
     */
    int (*wait)(mu_ctx_t *ctx, uint64_t deadline);
    /* Send a whole message, fds attached. */
    int (*send)(mu_ctx_t *ctx, const struct iovec *iov, int iovcnt,
                const int *fds, unsigned nfds);
    /* Forget the client. */
    void (*detach)(mu_ctx_t *ctx);
    /* Remove the endpoint. */
    void (*fini)(mu_ctx_t *ctx);
    /*
     * The listening fd is never readable while a client is attached (no
     * second one can arrive): the context leaves it watched.
     */
    bool listen_quiet;
    /*
     * accept() gives every client the same fd, and nothing makes it
     * readable between clients: the context watches it once, for good.
     */
    bool fixed_conn_fd;
};

extern const struct mu_tran_ops mu_tran_sock_ops;
extern const struct mu_tran_ops mu_tran_mem_ops;    /* tran_mem.h */

/* ---- PCI config space ---- */

struct mu_cfg_hook {
    uint32_t offset, len;
    mu_access_cb_t cb;
};

struct mu_pci {
    enum mu_dev_type type;
    size_t size;            /* 256 or 4096 */
    uint8_t *cfg;           /* what the guest reads */
    uint8_t *wmask;         /* bits the guest may write */
    uint8_t *w1cmask;       /* bits the guest clears by writing 1 */
    uint8_t cap_last;       /* offset of the last capability, 0 if none */
    uint8_t cap_end;        /* first free byte for the next capability */
    uint8_t pm_off, msi_off, msix_off, pcie_off;
    struct mu_pci_ids ids;
    struct mu_cfg_hook hooks[16];
    unsigned nr_hooks;
    mu_pci_command_cb_t command_cb;
};

int mu_pci_init(mu_ctx_t *ctx, enum mu_dev_type type);
void mu_pci_fini(mu_ctx_t *ctx);
/* Build BAR registers and masks from the declared regions. */
int mu_pci_realize(mu_ctx_t *ctx);
/* Guest access to config space (region 7). */
ssize_t mu_pci_config_access(mu_ctx_t *ctx, uint8_t *buf, size_t count,
                             uint64_t offset, bool is_write);
/* Put the config space back to its state after realize (reset). */
void mu_pci_reset(mu_ctx_t *ctx);
/*
 * What irq.c asks of config space (pci.c owns every byte of it).  The
 * guest's INTx disable bit (any thread); whether an MSI / MSI-X capability
 * was added; where the MSI-X capability puts its table and PBA (false when
 * there is none); and clearing the MSI enable and MSI-X enable and
 * function mask bits (client gone).
 */
struct mu_pci_msix_layout {
    unsigned table_bar, pba_bar;
    uint64_t table_off, pba_off;
};
bool mu_pci_intx_disabled(const mu_ctx_t *ctx);
bool mu_pci_has_msi(const mu_ctx_t *ctx);
bool mu_pci_has_msix(const mu_ctx_t *ctx);
bool mu_pci_msix_layout(const mu_ctx_t *ctx, struct mu_pci_msix_layout *l);
void mu_pci_irq_caps_off(mu_ctx_t *ctx);

/* ---- regions ---- */

struct mu_ioeventfd {
    uint64_t offset;
    uint32_t size;
    bool datamatch;
    uint64_t data;
    int fd;
    mu_ioeventfd_cb_t cb;
    uint64_t opaque_value;
};

struct mu_region {
    bool present;
    uint64_t size;
    unsigned flags;         /* MU_REGION_* */
    mu_access_cb_t cb;
    int fd;                 /* -1 when not mmappable */
    uint64_t fd_offset;
    struct mu_mmap_area *areas;
    unsigned nr_areas;      /* 0 with fd >= 0: the whole region */
    struct mu_ioeventfd *ioeventfds;
    unsigned nr_ioeventfds;
    /* The current client was sent the ioeventfds (GET_REGION_IO_FDS
     * served with its fds); cleared when it goes away. */
    bool io_fds_taken;
};

/* Guest access to region idx at [offset, offset+count), checked. */
ssize_t mu_region_access(mu_ctx_t *ctx, unsigned idx, uint8_t *buf,
                         size_t count, uint64_t offset, bool is_write);
void mu_regions_fini(mu_ctx_t *ctx);
/*
 * What a client is told of region idx (GET_REGION_INFO): its access flags
 * (MU_REGION_READ/WRITE) and size, zero for an index not set up; config
 * space is read/write and sized by pci.c.  fd >= 0 (lent, not given) when
 * it is mmappable, with the offset and the mmappable areas (none: all of
 * it).  -EINVAL when idx is past the regions.
 */
struct mu_region_desc {
    unsigned flags;
    uint64_t size;
    int fd;
    uint64_t fd_offset;
    const struct mu_mmap_area *areas;
    unsigned nr_areas;
};
int mu_region_describe(mu_ctx_t *ctx, unsigned idx, struct mu_region_desc *d);
/* The ioeventfds of region idx (lent); -EINVAL when it does not exist. */
int mu_region_ioeventfds(mu_ctx_t *ctx, unsigned idx,
                         const struct mu_ioeventfd **list, unsigned *n);
/* Whether the current client was given them (GET_REGION_IO_FDS). */
void mu_region_ioeventfds_given(mu_ctx_t *ctx, unsigned idx, bool given);
/* The client went away: what it took from the regions is forgotten. */
void mu_regions_client_gone(mu_ctx_t *ctx);

/* ---- replies ---- */

/*
 * A reply under construction.  Handlers put the payload in 'small' when it
 * fits, or point 'data' at a buffer they own ('data_free' = free it after
 * sending).  Up to MU_REPLY_MAX_FDS fds may be attached; they are not closed
 * by the context (they belong to the subsystem that lent them).
 */
#define MU_REPLY_SMALL 256u
#define MU_REPLY_MAX_FDS 64u
struct mu_reply {
    size_t len;                 /* payload length (small or data) */
    uint8_t *data;              /* NULL: payload is small[0..len) */
    bool data_free;
    uint8_t *data2;             /* optional second piece (e.g. read data) */
    size_t len2;
    bool data2_free;
    int fds[MU_REPLY_MAX_FDS];
    unsigned nfds;
    uint8_t small[MU_REPLY_SMALL] __attribute__((aligned(8)));
};

/* ---- the context ---- */

typedef int (*mu_handler_t)(mu_ctx_t *ctx, struct mu_msg *msg,
                            struct mu_reply *reply);

struct mu_irqs;
struct mu_dma;
struct mu_mig;

/* A server -> client request waiting for its reply (DMA_READ/WRITE). */
struct mu_call {
    uint16_t msg_id;
    uint16_t cmd;
    uint64_t wr_iova, wr_len;   /* DMA_WRITE: what the client will write */
    bool done;
    int result;                 /* 0 or -errno */
    struct mu_msg reply;
    struct mu_call *next;
};

/* A command that arrived while the context thread waited for a reply. */
struct mu_backlog {
    struct mu_msg msg;
    struct mu_backlog *next;
};

struct mu_ctx {
    void *opaque;
    char *path;
    unsigned flags;
    bool realized;
    bool stopping;

    /* logging */
    mu_log_cb_t log_cb;
    enum mu_log_level log_level;

    /* limits, and the clock their timeouts (and DMA ages) run on */
    uint64_t limits[MU_LIMIT_NR];
    struct mu_clock clock;
    mode_t sock_mode;
    uid_t allow_uids[MU_MAX_ALLOW_UIDS];
    unsigned nr_allow_uids;

    /* transport and client state */
    const struct mu_tran_ops *tran;
    int listen_fd;
    bool accept_paused;         /* out of fds: the timer retries accept */
    int conn_fd;                /* -1 when no client */
    struct msgio io;            /* socket transport's framing */
    void *tran_priv;            /* other transports' state (tran_mem.c) */
    bool negotiated;
    const char *drop_reason;    /* set: drop the client at a safe point */
    struct vfu_caps peer;       /* what the client accepts */
    uint64_t pgsize;            /* negotiated DMA page size */
    pthread_t ctx_thread;       /* thread running the loop */
    bool have_thread;

    /* event loop */
    int epfd;
    int stop_fd;                /* eventfd: mu_ctx_stop() */
    int timer_fd;               /* periodic housekeeping while connected
                                   (stopped by the first tick after) */
    uint64_t timer_ms;          /* its period, 0 while disarmed */
    bool conn_watched;          /* tran->fixed_conn_fd: in the epoll set */

    /* server -> client calls */
    pthread_mutex_t send_lock;  /* one message at a time on the socket */
    pthread_mutex_t call_lock;  /* calls list, msg ids */
    pthread_cond_t call_cond;
    struct mu_call *calls;
    unsigned nr_calls;
    uint16_t next_msg_id;
    bool reading;               /* a thread is reading the socket */
    struct mu_backlog *backlog, **backlog_tail;
    unsigned nr_backlog;
    size_t backlog_bytes;       /* their bodies: bounded too (dispatch.c) */

    /* device */
    struct mu_pci pci;
    struct mu_region regions[MU_MAX_REGIONS];
    unsigned nr_regions;        /* 9 for PCI, more with device regions */
    struct mu_irqs *irqs;
    struct mu_dma *dma;
    mu_reset_cb_t reset_cb;
    bool reset_unmaps_dma;
    struct mu_mig *mig;         /* NULL: no migration (mig.c) */
    bool mig_quiet;             /* stopped for migration (mig.h) */

    /* The reason for the current message's refusal (mu_refuse), valid
     * only while dispatch.c runs a handler at MU_LOG_DEBUG.  Last, so the
     * buffer does not push the hot fields apart. */
    const char *why;
    char why_buf[192];
};

static inline bool mu_log_debug_on(const mu_ctx_t *ctx)
{
    return ctx->log_level >= MU_LOG_DEBUG;
}

/* epoll tags */
enum {
    MU_EV_STOP = 1,
    MU_EV_LISTEN,
    MU_EV_CONN,
    MU_EV_TIMER,
    MU_EV_IRQFD,        /* low 32 bits of data: irq.c's index */
    MU_EV_IOEVENTFD,    /* low 32 bits: region << 16 | ioeventfd index */
    MU_EV_POISON,       /* the SIGBUS handler hit a DMA mapping */
};
#define MU_EV(kind, idx) (((uint64_t)(kind) << 32) | (uint32_t)(idx))
int mu_ctx_watch(mu_ctx_t *ctx, int fd, uint64_t tag);
void mu_ctx_unwatch(mu_ctx_t *ctx, int fd);

/*
 * Send a server -> client request and wait for its reply (DMA_READ and
 * DMA_WRITE).  Safe from any thread.  On success *reply holds the reply
 * (release it with mu_msg_release).  Returns 0, -ENOTCONN, -ETIMEDOUT,
 * -EBUSY (too many calls in flight), the client's error negated, or -EPROTO
 * for a malformed reply.
 */
int mu_ctx_call(mu_ctx_t *ctx, uint16_t cmd, const struct iovec *iov,
                int iovcnt, struct mu_msg *reply);

/*
 * Serve an already connected socket as the client, bypassing listen/accept
 * (fuzzers and tests use a socketpair).  The context must be realized and
 * idle; fd is owned by the context from here on.  0 or -errno.
 */
int mu_ctx_attach_fd(mu_ctx_t *ctx, int fd);

/*
 * mu_ctx_poll() that waits up to timeout_ms (0: not at all, -1: forever)
 * for work and says whether there was any: the number of events handled
 * (0 when none came), or mu_ctx_poll()'s errors.  For harnesses that run
 * a context until it is idle: one epoll_wait per round, no poll() of
 * mu_ctx_fd() beforehand.
 */
int mu_ctx_poll_wait(mu_ctx_t *ctx, int timeout_ms);

/* Drop the client once the current message is done (dispatch.c). */
void mu_ctx_fail(mu_ctx_t *ctx, const char *why);
void mu_ctx_detach(mu_ctx_t *ctx, const char *why);
/* Device reset: device callback, then library state (dispatch.c). */
int mu_ctx_reset(mu_ctx_t *ctx, enum mu_reset_type type);
/* Process whatever the client sent (dispatch.c). */
void mu_ctx_process(mu_ctx_t *ctx);
void mu_calls_cancel(mu_ctx_t *ctx);
void mu_backlog_drop(mu_ctx_t *ctx);

static inline bool mu_on_ctx_thread(const mu_ctx_t *ctx)
{
    return ctx->have_thread && pthread_equal(pthread_self(), ctx->ctx_thread);
}


/* ---- interrupts (irq.c) ---- */
int mu_irqs_init(mu_ctx_t *ctx);
void mu_irqs_fini(mu_ctx_t *ctx);
/* Close every client fd and clear masks/pending (disconnect and reset). */
void mu_irqs_reset(mu_ctx_t *ctx);
/*
 * The client's setup of a range of vectors (SET_IRQS, decoded by
 * cmd_irq.c): fire, mask or unmask them (data NONE: all, BOOL: those whose
 * byte is non-zero), or give them eventfds for that action (EVENTFD: one
 * fd a vector, or none to remove them).  count 0 with a trigger and no
 * data from vector 0 turns the whole index off.
 */
enum mu_irq_action { MU_IRQ_ACT_TRIGGER, MU_IRQ_ACT_MASK, MU_IRQ_ACT_UNMASK };
enum mu_irq_data { MU_IRQ_DATA_NONE, MU_IRQ_DATA_BOOL, MU_IRQ_DATA_EVENTFD };
struct mu_irq_set {
    unsigned type;              /* enum mu_irq_type */
    uint32_t start, count;
    enum mu_irq_action action;
    enum mu_irq_data data;
    const uint8_t *bools;       /* DATA_BOOL: count bytes */
    int *fds;                   /* DATA_EVENTFD: nfds (0 or count) fds */
    unsigned nfds;
};
/*
 * Apply it.  On success the fds are irq.c's (each set to -1 in s->fds);
 * on failure none is taken and the caller closes them.  0 or -EINVAL
 * (index without vectors, range past them, an inconsistent request, an
 * fd that is not an eventfd), -errno of epoll.  Context thread.
 */
int mu_irq_set(mu_ctx_t *ctx, struct mu_irq_set *s);
/* An irq mask/unmask eventfd registered by the client fired. */
void mu_irqs_fd_event(mu_ctx_t *ctx, uint32_t idx);
/* Guest config writes to the MSI / MSI-X capability. */
void mu_irqs_msi_ctrl(mu_ctx_t *ctx, bool enable, uint32_t mask_bits);
void mu_irqs_msix_ctrl(mu_ctx_t *ctx, bool enable, bool function_mask);
/* The guest cleared INTx disable in the command register: a pending INTx
 * is delivered. */
void mu_irqs_intx_unblocked(mu_ctx_t *ctx);
/* BAR accesses to the MSI-X table or PBA; returns -ENOENT when the access
 * is not in either (the device's callback takes it). */
ssize_t mu_irqs_msix_access(mu_ctx_t *ctx, unsigned bar, uint8_t *buf,
                            size_t count, uint64_t offset, bool is_write);
uint32_t mu_irqs_count(mu_ctx_t *ctx, unsigned type);

/* ---- DMA (dma.c) ---- */
int mu_dma_init(mu_ctx_t *ctx);
void mu_dma_fini(mu_ctx_t *ctx);
/* The eventfd the SIGBUS handler writes, and what the context thread does
 * when it is readable: log the poisoned regions, drop the client. */
int mu_dma_realize(mu_ctx_t *ctx);
int mu_dma_poison_fd(const mu_ctx_t *ctx);
void mu_dma_on_poison(mu_ctx_t *ctx);
/* Remove every region (unmap callbacks with 'reason'). */
void mu_dma_remove_all(mu_ctx_t *ctx, enum mu_unmap_reason reason);
/*
 * Add a region: info->iova/size/prot, and fd_offset when fd >= 0 (fd < 0:
 * a region only DMA_READ/DMA_WRITE reach).  fd belongs to the table from
 * the call on, also when it fails.  0, or -EINVAL (empty, wrapping, no or
 * unknown prot, not page aligned, an fd that cannot back it), -EEXIST
 * (overlap refused), -ENOSPC (region limit), -ENOMEM, or the map
 * callback's error.  Context thread.
 */
int mu_dma_add(mu_ctx_t *ctx, const struct mu_dma_info *info, int fd);
/* Remove the regions in [iova, iova + size): all of them, or -EINVAL and
 * none when the range cuts one; 0 when it names none.  Context thread. */
int mu_dma_remove(mu_ctx_t *ctx, uint64_t iova, uint64_t size);
/* Periodic housekeeping: evict mappings idle past the limit. */
void mu_dma_tick(mu_ctx_t *ctx);
/* The region holding iova: its last byte and whether it has an fd.
 * -ENOENT when unmapped, -EACCES when it lacks prot.  Thread-safe. */
int mu_dma_lookup(mu_ctx_t *ctx, uint64_t iova, unsigned prot,
                  uint64_t *last, bool *has_fd);

/*
 * Dirty page logging: the table's side.  The bitmaps are dma_log.h's;
 * DEVICE_FEATURE is decoded by cmd_feature.c.  Context thread.
 */
/* Takes log (freed on failure); -EBUSY when already logging. */
int mu_dma_log_start(mu_ctx_t *ctx, struct mu_dma_log *log);
void mu_dma_log_stop(mu_ctx_t *ctx);
/* Read-and-clear pages [first_page, first_page + nr_pages) into bitmap;
 * -EINVAL when not logging at pgsize. */
int mu_dma_log_report(mu_ctx_t *ctx, uint64_t first_page, uint64_t nr_pages,
                      uint64_t pgsize, uint64_t *bitmap);

#endif /* MUSER_PRIVATE_H */
