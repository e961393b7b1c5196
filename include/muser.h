/*
 * muser.h - emulate a PCI device in userspace, served over vfio-user.
 *
 * A device emulator creates a context, describes its PCI identity, regions,
 * interrupts and callbacks, realizes it (which creates the listening UNIX
 * socket) and then runs it, either with the blocking mu_ctx_run() or from
 * its own event loop with mu_ctx_fd() and mu_ctx_poll().  One client (a VMM
 * such as QEMU, or muser's client library) is served at a time; when it goes
 * away the context forgets its DMA regions and interrupt fds and waits for
 * the next one.
 *
 * Errors: every function that can fail returns 0 (or a non-negative count)
 * on success and a negative errno on failure.  Nothing a client sends makes
 * the library exit or abort.
 *
 * Setup calls: every call that describes the device (the mu_ctx_set_*,
 * mu_pci_*, mu_region_*, mu_irq_setup/_set_*, mu_dma_set_* and
 * mu_mig_setup calls, and mu_ctx_allow_uid) is made between
 * mu_ctx_create() and mu_ctx_realize(), and returns -EBUSY, changing
 * nothing, after it.  The exceptions are mu_ctx_set_limit() for the two
 * DMA eviction limits and the busy-poll time, which may also change later
 * (from any thread).
 *
 * File descriptors: an fd passed to the library is borrowed.  The library
 * dups what it keeps and never closes the caller's fd, whether the call
 * succeeds or fails; the caller closes its own when it likes.  An fd the
 * library hands out (muser-client.h's region and ioeventfd fds) is the
 * caller's to close.
 *
 * Structs and ABI: structs the library allocates are reached through
 * pointers (mu_ctx_t, mu_dma_region_t, and const struct mu_dma_info *) and
 * may grow at their end.  A struct the caller allocates either starts with
 * a size field the caller sets to sizeof the struct (struct
 * mu_mig_callbacks), or ends in reserved space: reserved fields must be 0
 * in what the caller passes in (-EINVAL otherwise, so a later version can
 * give them a meaning) and are set to 0 in what the library fills in.
 * struct mu_mmap_area and mu_sg_t are array elements of a fixed size;
 * mu_sg_t's fields other than addr and len are the library's.  The
 * library's version is mu_version() (the header's is MU_VERSION_*); the
 * symbols are versioned (MUSER_0) and their ABI is checked by `make test`
 * against test/abi/libmuser.abi.
 *
 * The header needs POSIX's declarations (siginfo_t, uid_t, mode_t):
 * compile with _POSIX_C_SOURCE >= 200809L or a GNU dialect (gnu11).
 *
 * Threads: a context is driven by one thread, the "context thread": the one
 * calling mu_ctx_run() or mu_ctx_poll().  All callbacks run on it.  Setup
 * calls (everything before mu_ctx_realize()) must come from one thread.
 * Functions documented "thread-safe" may be called from any thread at any
 * time after realize: mu_ctx_stop(), mu_ctx_client_ready(), mu_irq_trigger(),
 * mu_irq_masked(), the DMA translation and copy functions (mu_dma_get(),
 * mu_dma_put(), mu_dma_read(), mu_dma_write(), mu_dma_mark_dirty()) and
 * mu_dma_get_stats() and mu_mig_state().  The calls documented "context
 * thread" (mu_dma_foreach(), mu_region_ioeventfds_taken(),
 * mu_mig_pending()) assert it in builds
 * without NDEBUG, once the context has been run or polled (before, the
 * setup thread may call them).
 *
 * Locks and calls to the client: mu_dma_read() and mu_dma_write() on
 * memory without an fd send a DMA_READ/DMA_WRITE message and wait for the
 * client's reply, and only the context thread receives it.  The context
 * thread itself therefore never waits: there those calls fail with
 * -EDEADLK when the memory needs the client, and a device that copies
 * from its callbacks uses mu_dma_read_async()/mu_dma_write_async(),
 * whose completion callback the event loop runs.  A device
 * thread must therefore never hold, across such a call, a lock that any
 * callback on the context thread may take (a register access, a DMA
 * unmap, a reset): the context thread would block on the lock instead of
 * taking the reply, and the call would end only at the receive timeout
 * (MU_LIMIT_RECV_TIMEOUT_MS), failing.  Drop the lock around the call and
 * re-check afterwards what may have changed meanwhile (the nvme sample's
 * ctrl_dma() in samples/nvme/poller.c does this).
 */
#ifndef MUSER_H
#define MUSER_H

#include <stdbool.h>
#include <stddef.h>
#include <signal.h>
#include <stdint.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The library is built with hidden visibility; this API is what it exports. */
#pragma GCC visibility push(default)

#define MU_API_VERSION 1

/*
 * The library's version, MAJOR.MINOR.PATCH.  The macros say which version
 * the program was compiled against; mu_version() which library it runs
 * with (MU_VERSION_NUM of its numbers), mu_version_string() the same as
 * "MAJOR.MINOR.PATCH".  A program built against an older minor of the same
 * major runs with a newer library.
 */
#define MU_VERSION_MAJOR 0
#define MU_VERSION_MINOR 1
#define MU_VERSION_PATCH 0
#define MU_VERSION_NUM(major, minor, patch) \
    (((unsigned)(major) << 16) | ((unsigned)(minor) << 8) | (unsigned)(patch))
#define MU_VERSION \
    MU_VERSION_NUM(MU_VERSION_MAJOR, MU_VERSION_MINOR, MU_VERSION_PATCH)
unsigned mu_version(void);
const char *mu_version_string(void);

typedef struct mu_ctx mu_ctx_t;
typedef struct mu_dma_region mu_dma_region_t;

/* ------------------------------------------------------------------ */
/* Context                                                            */
/* ------------------------------------------------------------------ */

enum mu_dev_type {
    MU_DEV_PCI = 0,     /* conventional PCI: 256 bytes of config space */
    MU_DEV_PCIE = 1,    /* PCI Express: 4 KiB of config space */
};

/*
 * Create a context that will listen on the UNIX socket 'path'.  'opaque' is
 * handed back by mu_ctx_opaque() for use in callbacks.  Nothing is created on
 * the file system until mu_ctx_realize().
 *
 * Returns 0 and sets *ctxp, or -EINVAL (bad type, path too long for a
 * sockaddr_un) or -ENOMEM.
 */
int mu_ctx_create(mu_ctx_t **ctxp, const char *path, enum mu_dev_type type,
                  void *opaque);

/*
 * Tear down: the client (if any) is dropped with every DMA region unmapped
 * (unmap callbacks run with MU_UNMAP_DESTROY), every fd closed, the socket
 * file removed.  Safe on NULL.  Call it on the context thread after
 * mu_ctx_run() has returned, or on any thread once no thread runs or polls
 * the context any more (e.g. after joining the one that did).
 */
void mu_ctx_destroy(mu_ctx_t *ctx);

void *mu_ctx_opaque(const mu_ctx_t *ctx);

/* Logging.  The default writes lines at MU_LOG_WARN and above to stderr. */
enum mu_log_level {
    MU_LOG_ERR = 0,
    MU_LOG_WARN = 1,
    MU_LOG_INFO = 2,
    MU_LOG_DEBUG = 3,
};
typedef void (*mu_log_cb_t)(mu_ctx_t *ctx, enum mu_log_level level,
                            const char *msg);
/* cb NULL restores the stderr default.  Messages above 'level' are dropped. */
int mu_ctx_set_log(mu_ctx_t *ctx, mu_log_cb_t cb, enum mu_log_level level);

/*
 * Limits, with safe defaults.  Each may be set before mu_ctx_realize();
 * MU_LIMIT_DMA_MAPPED_BYTES, MU_LIMIT_DMA_IDLE_MS and MU_LIMIT_BUSY_POLL_US
 * also later, from any thread: translation, eviction and the event loop
 * read them atomically (a new busy-poll time applies from the loop's next
 * round).  Returns -EINVAL for an unknown limit or a value out of range (0
 * is out of range for all but the two DMA eviction limits, where it means
 * "no limit", and the busy-poll time, where it means "do not spin"),
 * -EBUSY for the others after realize.
 */
enum mu_limit {
    MU_LIMIT_MSG_SIZE,          /* largest message accepted, header included;
                                   default 16 + 16 + 1 MiB */
    MU_LIMIT_MSG_FDS,           /* most fds in one message; default 8 */
    MU_LIMIT_DATA_XFER,         /* largest REGION/DMA read or write count;
                                   default 1 MiB */
    MU_LIMIT_DMA_REGIONS,       /* most DMA regions at once; default 65535 */
    MU_LIMIT_DMA_MAPPED_BYTES,  /* budget of mmapped guest memory; idle
                                   mappings beyond it are evicted; default 0
                                   (no budget) */
    MU_LIMIT_DMA_IDLE_MS,       /* idle mappings older than this are evicted;
                                   default 0 (never) */
    MU_LIMIT_DMA_PENDING,       /* most DMA_READ/DMA_WRITE requests to the
                                   client in flight at once (blocking calls
                                   and mu_dma_*_async requests); default 64 */
    MU_LIMIT_SEND_TIMEOUT_MS,   /* a client that does not take a reply within
                                   this time is dropped; default 5000 */
    MU_LIMIT_RECV_TIMEOUT_MS,   /* a message started but not finished within
                                   this time drops the client; default 5000 */
    MU_LIMIT_DIRTY_BITMAP_BYTES, /* memory for dirty page bitmaps while the
                                   client logs DMA writes; default 64 MiB (2
                                   TiB of guest memory at 4 KiB pages).
                                   Starting to log, or a DMA_MAP while
                                   logging, that would pass it fails with
                                   ENOMEM and changes nothing */
    MU_LIMIT_BUSY_POLL_US,      /* busy polling: microseconds the context
                                   thread spins on a non-blocking read of
                                   the client's socket before it sleeps
                                   (see mu_ctx_run()); 0 to
                                   MU_BUSY_POLL_MAX_US, default 0 (never
                                   spin) */
    MU_LIMIT_NR,                /* the number of limits, not a limit */
};
int mu_ctx_set_limit(mu_ctx_t *ctx, enum mu_limit limit, uint64_t value);
/* The largest MU_LIMIT_BUSY_POLL_US: 10 s. */
#define MU_BUSY_POLL_MAX_US 10000000u
uint64_t mu_ctx_get_limit(const mu_ctx_t *ctx, enum mu_limit limit);

/* Socket file mode (default 0600).  Before realize. */
int mu_ctx_set_socket_mode(mu_ctx_t *ctx, mode_t mode);

/*
 * Add a uid to the allow-list checked with SO_PEERCRED on each new client.
 * With an empty list (the default) any peer that can open the socket file is
 * served.  Before realize.  -ENOSPC past 64 entries.
 */
int mu_ctx_allow_uid(mu_ctx_t *ctx, uid_t uid);

enum mu_ctx_flags {
    /* Return from mu_ctx_run() (with 0) when the first client disconnects,
     * instead of waiting for the next one. */
    MU_CTX_ONE_CLIENT = 1u << 0,
};
/* Before realize; -EINVAL for an unknown flag. */
int mu_ctx_set_flags(mu_ctx_t *ctx, unsigned flags);

/*
 * Finish setup: check it is consistent (e.g. MSI-X table inside a BAR),
 * build the config space, create and listen on the socket.  Refuses to
 * replace a path that exists and is not a socket (-EEXIST), or a socket
 * another server listens on (-EADDRINUSE); a stale socket file is
 * replaced.  After this, setup calls return -EBUSY.
 */
int mu_ctx_realize(mu_ctx_t *ctx);

/*
 * Serve clients until mu_ctx_stop() is called (returns 0), or with
 * MU_CTX_ONE_CLIENT until the client leaves (returns 0).  A misbehaving
 * client is dropped, never fatal.  Returns a negative errno only for local
 * failures (e.g. epoll_wait failing).
 *
 * A request costs the context thread one read and one write of the
 * socket when it is awake, plus the epoll_wait it sleeps in otherwise.
 * With MU_LIMIT_BUSY_POLL_US set (busy polling, as SPDK's reactors do),
 * the thread does not sleep as soon as it has nothing to do: while a
 * client is attached it keeps reading the socket without blocking for
 * that many microseconds after its last work, and sleeps only when
 * nothing came meanwhile.  A client that sends its next request within
 * that time does not wait for the thread to wake up; the price is a CPU
 * kept busy while the device is idle (at most that long after each
 * request).  While spinning, the thread still looks at its other fds every
 * few reads: mu_ctx_stop(), the timeouts, interrupt and ioeventfd
 * callbacks and DMA completions are served as when it sleeps.
 */
int mu_ctx_run(mu_ctx_t *ctx);

/*
 * Embedding: mu_ctx_fd() is one fd (an epoll fd) that becomes readable when
 * the context has work: a connection to accept, a message, a timer, a stop
 * request.  Call mu_ctx_poll() then; it does the ready work without blocking
 * and returns 0, or -ESHUTDOWN once mu_ctx_stop() was called (or, with
 * MU_CTX_ONE_CLIENT, the client left), or another negative errno for a
 * local failure.  mu_ctx_poll() never spins, whatever
 * MU_LIMIT_BUSY_POLL_US says: a loop that wants to busy-poll calls it
 * again itself.  A client that sends ahead of its replies may leave
 * messages unread when it returns; mu_ctx_fd() then stays readable.
 */
int mu_ctx_fd(const mu_ctx_t *ctx);
int mu_ctx_poll(mu_ctx_t *ctx);

/* Ask mu_ctx_run() to return.  Thread-safe and async-signal-safe. */
void mu_ctx_stop(mu_ctx_t *ctx);

/* True while a client is connected and has completed VERSION negotiation.
 * Thread-safe. */
bool mu_ctx_client_ready(const mu_ctx_t *ctx);

/* ------------------------------------------------------------------ */
/* PCI identity and config space                                      */
/* ------------------------------------------------------------------ */

struct mu_pci_ids {
    uint16_t vendor_id;
    uint16_t device_id;
    uint16_t subsys_vendor_id;
    uint16_t subsys_id;
    uint32_t class_code;    /* 24 bits: base class << 16 | sub << 8 | prog-if */
    uint8_t revision;
    uint8_t irq_pin;        /* 0 none, 1 INTA# .. 4 INTD# */
    uint16_t reserved0;     /* 0 */
    uint32_t reserved[7];   /* 0 */
};
/* Before realize.  -EINVAL for a class code past 24 bits, a pin past 4 or
 * a reserved field not 0. */
int mu_pci_set_ids(mu_ctx_t *ctx, const struct mu_pci_ids *ids);

/*
 * The config space as the guest sees it (256 or 4096 bytes), for the device
 * to read; the device may also write fields it owns from the context thread
 * (e.g. a status bit).  Valid from creation to destroy.
 */
uint8_t *mu_pci_config(mu_ctx_t *ctx);
size_t mu_pci_config_size(const mu_ctx_t *ctx);

/*
 * Capabilities.  Each adds one entry to the capability list (the library
 * keeps the list pointers and the status bit) and returns its config-space
 * offset, or a negative errno (-ENOSPC when config space is full, -EINVAL
 * for bad arguments, -EEXIST for a second capability of a kind that must be
 * unique, -EBUSY after realize).
 */
int mu_pci_add_pm(mu_ctx_t *ctx);
/* nvec 1..32 (rounded up to a power of two); per-vector masking offered. */
int mu_pci_add_msi(mu_ctx_t *ctx, unsigned nvec, bool addr64);
/*
 * nvec 1..2048.  Table and PBA live in memory BARs the device declares;
 * the library serves those ranges of the BAR (the device's callback never
 * sees them) and routes the guest's mask bits to the interrupt state.
 *
 * Some clients emulate the table themselves: QEMU forwards the MSI-X
 * enable and function mask bits of config space but never writes the
 * table in BAR memory, so the library's copy keeps its reset mask bits.
 * Others (muser's client, libvfio-user's) write the table through.  The
 * library decides from what the client does: until the client writes any
 * table entry, the table's vector mask bits do not hold interrupts (the
 * function mask and SET_IRQS masks still do); from its first table write
 * until the next reset or client, they do, as on real hardware.
 */
int mu_pci_add_msix(mu_ctx_t *ctx, unsigned nvec, unsigned table_bar,
                    uint32_t table_offset, unsigned pba_bar,
                    uint32_t pba_offset);
enum mu_pcie_type {
    MU_PCIE_ENDPOINT = 0x0,
    MU_PCIE_LEGACY_ENDPOINT = 0x1,
    MU_PCIE_RC_INTEGRATED = 0x9,
};
/* Requires MU_DEV_PCIE.  Advertises function-level reset. */
int mu_pci_add_pcie(mu_ctx_t *ctx, enum mu_pcie_type type);
/* Vendor-specific capability: 'len' bytes of payload after the 3-byte
 * header (id, next, length), len <= 252. */
int mu_pci_add_vendor(mu_ctx_t *ctx, const void *data, size_t len);

/*
 * Config-space access hook: accesses to [offset, offset+len) are handed to
 * cb instead of the library's register rules, so the device can own
 * device-specific registers (offset >= 0x40).  The callback has the region
 * access signature below.  Before realize.
 */
typedef ssize_t (*mu_access_cb_t)(mu_ctx_t *ctx, void *buf, size_t count,
                                  uint64_t offset, bool is_write);
int mu_pci_hook_config(mu_ctx_t *ctx, uint32_t offset, uint32_t len,
                       mu_access_cb_t cb);

/* Told when the guest changes the command register (memory/IO decode, bus
 * master, INTx disable...). */
typedef void (*mu_pci_command_cb_t)(mu_ctx_t *ctx, uint16_t old_cmd,
                                    uint16_t new_cmd);
int mu_pci_set_command_cb(mu_ctx_t *ctx, mu_pci_command_cb_t cb);

/* ------------------------------------------------------------------ */
/* Regions                                                            */
/* ------------------------------------------------------------------ */

/* Region indexes for PCI devices. */
enum {
    MU_PCI_BAR0 = 0,
    MU_PCI_BAR1,
    MU_PCI_BAR2,
    MU_PCI_BAR3,
    MU_PCI_BAR4,
    MU_PCI_BAR5,
    MU_PCI_ROM = 6,
    MU_PCI_CONFIG = 7,
    MU_PCI_VGA = 8,
    MU_PCI_NUM_REGIONS = 9,
};

enum mu_region_flags {
    MU_REGION_READ = 1u << 0,
    MU_REGION_WRITE = 1u << 1,
    MU_REGION_RW = MU_REGION_READ | MU_REGION_WRITE,
    /* BARs: memory space (default is I/O space, as on PCI for a BAR that
     * does not say otherwise). */
    MU_REGION_MEM = 1u << 2,
    MU_REGION_MEM64 = 1u << 3,      /* 64-bit memory BAR: takes two slots */
    MU_REGION_PREFETCH = 1u << 4,   /* prefetchable memory BAR */
};

/*
 * Access callback for a region (and for hooked config space).  Reads fill
 * buf, writes consume it; offset is within the region, count >= 1, and
 * [offset, offset+count) is inside the region.  Return count on success or a
 * negative errno, which the client receives.  Called on the context thread.
 */
/*
 * Declare region idx (0..8 for PCI, more for device-specific regions up to
 * 31) of 'size' bytes.  BAR sizes must be powers of two (>= 16 for memory,
 * >= 4 for I/O); config space (MU_PCI_CONFIG) is managed by the library and
 * cannot be declared.  cb may be NULL only for a region whose every byte is
 * mmappable or served by the library (MSI-X table).  Before realize.
 */
int mu_region_setup(mu_ctx_t *ctx, unsigned idx, uint64_t size,
                    unsigned flags, mu_access_cb_t cb);

struct mu_mmap_area {
    uint64_t offset;    /* within the region, page aligned */
    uint64_t size;      /* page multiple */
};
/*
 * Back region idx with 'fd' at file offset 'fd_offset', so the client may
 * mmap it.  The library dups fd (the caller keeps its own).  With areas NULL
 * the whole region is mmappable; otherwise only the listed areas are
 * (sparse mmap) and the rest of the region still traps to the callback.
 * Accesses through the socket to mmappable parts go straight to the fd, so
 * they see the same bytes as a client's mmap.  Before realize.
 *
 * The client receives the fd with write access and could truncate it,
 * making the device's own next access a SIGBUS.  So a regular file must be
 * at least fd_offset + the region's size long, and is sealed here with
 * F_SEAL_SHRINK | F_SEAL_GROW (this applies to the caller's fd too: the
 * device cannot resize it afterwards either).  A file that cannot be
 * sealed and is not sealed against shrinking already (a memfd created
 * without MFD_ALLOW_SEALING, a file on disk) is refused with -EPERM;
 * create BAR memory with memfd_create(..., MFD_ALLOW_SEALING).  Non-regular
 * fds (device nodes) are taken as they are.  Returns 0, -EINVAL, -EPERM,
 * -EBUSY (after realize), -ENOMEM or the dup errno.
 */
int mu_region_set_mmap(mu_ctx_t *ctx, unsigned idx, int fd,
                       uint64_t fd_offset, const struct mu_mmap_area *areas,
                       unsigned nr_areas);

/*
 * ioeventfds: ask the client to signal 'fd' (an eventfd) on writes of
 * 'size' bytes (0 = any size) at 'offset' in region idx, optionally only
 * when the written value equals datamatch.  The library watches the fd and
 * calls cb(ctx, opaque_value) when it fires, on the context thread, so the
 * device sees the doorbell without a message round trip.  fd < 0 makes the
 * library create the eventfd.  Otherwise the library dups fd (the caller
 * keeps and closes its own, on success and on failure) and makes the open
 * file non-blocking, which the caller's copy shares (the client holds a
 * copy too and may drain it).  Returns 0, -EINVAL (bad idx, offset, size
 * or datamatch without a size), -ENOSPC (65535 on the region), -ENOMEM,
 * the fcntl/eventfd errno, or -EBUSY after realize.
 */
typedef void (*mu_ioeventfd_cb_t)(mu_ctx_t *ctx, uint64_t opaque_value);
int mu_region_add_ioeventfd(mu_ctx_t *ctx, unsigned idx, uint64_t offset,
                            uint32_t size, bool datamatch, uint64_t data,
                            int fd, mu_ioeventfd_cb_t cb,
                            uint64_t opaque_value);
/*
 * Whether the client on the current connection took region idx's
 * ioeventfds: true once a GET_REGION_IO_FDS for it was answered with its
 * fds, false again when the client goes away (before the reset callback
 * with MU_RESET_LOST runs).  Clients need not ask: QEMU never sends
 * GET_REGION_IO_FDS, it mmaps the region's mmappable areas and stores to
 * them, and no ioeventfd fires.  A device whose doorbells live in such an
 * area should check this when the guest starts the device (e.g. on an
 * enable bit) and, when false, find the doorbells another way (poll the
 * shared page) or not offer the area for mmap.  Context thread (device
 * callbacks); false for a bad idx.
 */
bool mu_region_ioeventfds_taken(mu_ctx_t *ctx, unsigned idx);

/* ------------------------------------------------------------------ */
/* Interrupts                                                         */
/* ------------------------------------------------------------------ */

enum mu_irq_type {
    MU_IRQ_INTX = 0,
    MU_IRQ_MSI = 1,
    MU_IRQ_MSIX = 2,
    MU_IRQ_ERR = 3,
    MU_IRQ_REQ = 4,
    MU_IRQ_NUM = 5,
};
/*
 * Declare 'count' vectors of a type (INTx, ERR and REQ: 0 or 1).  Before
 * realize.  MSI and MSI-X counts also come from mu_pci_add_msi/msix.
 *
 * ERR starts with 1 vector: QEMU enables error recovery (and registers an
 * eventfd for it) only when GET_IRQ_INFO says ERR has exactly one vector,
 * and warns "Could not enable error recovery for the device" otherwise.
 * Raising it (mu_irq_trigger(ctx, MU_IRQ_ERR, 0)) reports an
 * unrecoverable device error; QEMU stops the VM.  mu_irq_setup(ctx,
 * MU_IRQ_ERR, 0) takes it away.  REQ starts with 0: declare 1 to be able
 * to ask the VMM to release the device (QEMU then unplugs it); QEMU
 * silently does without it.
 */
int mu_irq_setup(mu_ctx_t *ctx, enum mu_irq_type type, uint32_t count);

/*
 * Raise a vector.  Returns one of:
 *   0               the client's eventfd was signalled;
 *   MU_IRQ_PENDING  not delivered now but remembered as pending: the
 *                   vector is masked, the client gave no eventfd for it
 *                   yet, or the device is stopped for migration.  It fires
 *                   when what held it back goes (unmask, eventfd assigned,
 *                   device running again); mu_irq_masked() tells masked
 *                   from the rest;
 *   -EINVAL         a bad type or vector;
 *   another -errno  writing the eventfd failed (the vector stays pending).
 * Thread-safe.
 */
#define MU_IRQ_PENDING 1
int mu_irq_trigger(mu_ctx_t *ctx, enum mu_irq_type type, uint32_t vector);

/* Masked state as the guest/client set it.  Thread-safe. */
bool mu_irq_masked(mu_ctx_t *ctx, enum mu_irq_type type, uint32_t vector);

/*
 * Told when the client enables or disables an interrupt type (assigns the
 * first / removes the last eventfd of it, or the guest flips MSI/MSI-X
 * enable), so a device can pick INTx, MSI or MSI-X like real hardware.
 */
typedef void (*mu_irq_state_cb_t)(mu_ctx_t *ctx, enum mu_irq_type type,
                                  bool enabled);
int mu_irq_set_state_cb(mu_ctx_t *ctx, mu_irq_state_cb_t cb);

/* ------------------------------------------------------------------ */
/* Reset                                                              */
/* ------------------------------------------------------------------ */

enum mu_reset_type {
    MU_RESET_CLIENT = 0,    /* DEVICE_RESET message */
    MU_RESET_FLR = 1,       /* function-level reset through config space */
    MU_RESET_LOST = 2,      /* the client went away: a notification; the
                               protocol keeps device state across clients,
                               so most devices change nothing */
};
/* Return 0 or a negative errno (sent to the client for DEVICE_RESET). */
typedef int (*mu_reset_cb_t)(mu_ctx_t *ctx, enum mu_reset_type type);
int mu_ctx_set_reset_cb(mu_ctx_t *ctx, mu_reset_cb_t cb);
/* Whether a reset (client or FLR) also unmaps every DMA region (with
 * MU_UNMAP_RESET).  Default false: vfio keeps DMA mappings across reset. */
int mu_ctx_set_reset_unmaps_dma(mu_ctx_t *ctx, bool unmap);

/* ------------------------------------------------------------------ */
/* DMA: guest memory handed over by the client                       */
/* ------------------------------------------------------------------ */

enum mu_dma_prot {
    MU_DMA_READ = 1u << 0,      /* the device may read the region */
    MU_DMA_WRITE = 1u << 1,     /* the device may write it */
};

struct mu_dma_info {
    uint64_t iova;          /* guest (DMA) address */
    uint64_t size;          /* bytes */
    uint64_t fd_offset;     /* offset in the client's fd */
    unsigned prot;          /* MU_DMA_READ | MU_DMA_WRITE */
    bool has_fd;            /* false: reachable only by DMA_READ/DMA_WRITE */
};

/* Region accessors, valid from its map callback until its unmap callback
 * returns. */
const struct mu_dma_info *mu_dma_region_info(const mu_dma_region_t *r);
void mu_dma_region_set_priv(mu_dma_region_t *r, void *priv);
void *mu_dma_region_priv(const mu_dma_region_t *r);

enum mu_unmap_reason {
    MU_UNMAP_CLIENT = 0,    /* DMA_UNMAP naming the region */
    MU_UNMAP_OVERLAP,       /* replaced by an overlapping DMA_MAP */
    MU_UNMAP_ALL,           /* DMA_UNMAP with the unmap-all flag */
    MU_UNMAP_DISCONNECT,    /* the client went away */
    MU_UNMAP_RESET,         /* reset, with mu_ctx_set_reset_unmaps_dma() */
    MU_UNMAP_DESTROY,       /* mu_ctx_destroy() */
};
const char *mu_unmap_reason_str(enum mu_unmap_reason reason);

/*
 * Map callback: a region was added.  Return 0 to accept; a negative errno
 * refuses the map (the client gets that errno, the region is dropped and no
 * unmap callback follows).
 *
 * Unmap callback: the region is going away.  It runs before the memory is
 * unmapped, while the region can still be translated by references already
 * held, so the device can quiesce.  Every region whose map callback
 * succeeded gets exactly one unmap callback, whatever removes it.  After
 * the callback returns, the library waits until every mu_dma_get()
 * reference to the region has been put (from other threads); a reference
 * held by the context thread itself must be put in the callback, or the
 * wait never ends.  Only then is the memory unmapped, the fd closed and the
 * reply sent.
 */
typedef int (*mu_dma_map_cb_t)(mu_ctx_t *ctx, mu_dma_region_t *r);
typedef void (*mu_dma_unmap_cb_t)(mu_ctx_t *ctx, mu_dma_region_t *r,
                                  enum mu_unmap_reason reason);
int mu_dma_set_callbacks(mu_ctx_t *ctx, mu_dma_map_cb_t map,
                         mu_dma_unmap_cb_t unmap);

/*
 * What a DMA_MAP that overlaps mapped regions does.  REJECT answers EEXIST
 * and changes nothing.  REPLACE removes every overlapped region as an
 * implicit unmap (unmap callback with MU_UNMAP_OVERLAP) and maps the new
 * one.  A map identical to an existing region is an overlap too.
 */
enum mu_overlap_policy {
    MU_OVERLAP_REJECT = 0,
    MU_OVERLAP_REPLACE = 1,
};
/* Default for when no overlap callback is set.  Its initial value comes from
 * the transport: the socket delivers unmaps, so REJECT. */
int mu_dma_set_overlap_policy(mu_ctx_t *ctx, enum mu_overlap_policy p);
enum mu_overlap_policy mu_dma_get_overlap_policy(const mu_ctx_t *ctx);
/* Per-event choice: 'incoming' is the new map, old[0..n) the regions it
 * overlaps, in address order. */
typedef enum mu_overlap_policy (*mu_dma_overlap_cb_t)(
    mu_ctx_t *ctx, const struct mu_dma_info *incoming,
    mu_dma_region_t *const *old, size_t n);
int mu_dma_set_overlap_cb(mu_ctx_t *ctx, mu_dma_overlap_cb_t cb);

/*
 * Translation.  A scatter-gather entry describes one host-virtual piece of a
 * guest range.  Only addr and len are for the device; the rest is the
 * library's bookkeeping for mu_dma_put().
 */
typedef struct mu_sg {
    void *addr;
    size_t len;
    /* The library's (their layout may change within this size): */
    uint64_t iova;
    mu_dma_region_t *region;
    unsigned prot;
    uint32_t reserved0;
    uint64_t reserved[2];
} mu_sg_t;

/*
 * Translate [iova, iova+len) for 'prot' access into at most max_sg entries,
 * one per region the range crosses (adjacent regions are spanned).  Each
 * region involved is mmapped on first use (lazy) and held: it will not be
 * evicted or unmapped until mu_dma_put().  Returns the number of entries, or
 * -EINVAL (len 0 or wrap), -ENOENT (a byte of the range is not mapped),
 * -EACCES (region lacks prot), -EFAULT (region has no fd: use
 * mu_dma_read/write), -ENOSPC (needs more than max_sg entries; nothing is
 * held), -ENOMEM or the mmap errno.  Thread-safe.
 *
 * With max_sg 0 (sg may be NULL) nothing is mapped or held: it returns the
 * number of entries the range needs, or the error a get would meet (the
 * same list but -ENOSPC, -ENOMEM and the mmap errno).  So after -ENOSPC,
 * ask with max_sg 0, size the array and get again (the table may change
 * in between if the client maps or unmaps meanwhile: a get can still say
 * -ENOSPC, and is then asked again).
 */
int mu_dma_get(mu_ctx_t *ctx, uint64_t iova, size_t len, unsigned prot,
               mu_sg_t *sg, unsigned max_sg);
/*
 * Release what mu_dma_get() returned; entries taken with MU_DMA_WRITE mark
 * their whole range dirty when dirty logging is on (also for a reference
 * taken before logging started).  Writes through a reference are logged
 * only when it is put: a device that keeps one across dirty reports (a
 * queue mapped for its life) marks what it writes with mu_dma_mark_dirty(),
 * at the latest when it stops for migration.  Thread-safe.
 */
void mu_dma_put(mu_ctx_t *ctx, mu_sg_t *sg, unsigned nr);

/*
 * Copy between guest memory and buf, blocking.  Works for regions with an
 * fd (through the mapping, on any thread) and without one (through
 * DMA_READ/DMA_WRITE messages to the client, waiting for its replies).
 * Thread-safe.  The fd-less path needs the context thread to keep serving
 * (mu_ctx_run, or mu_ctx_poll when mu_ctx_fd is readable), since it
 * receives the reply: on the context thread itself it fails with -EDEADLK
 * instead of waiting (use mu_dma_read_async there).  A failure part-way
 * leaves the pieces before it copied.  Returns 0 or a negative errno (as
 * mu_dma_get, plus -ENOTCONN without a client, -EIO for an error reply,
 * -EPROTO for a malformed one, -ETIMEDOUT when none came within
 * MU_LIMIT_RECV_TIMEOUT_MS, -EBUSY past MU_LIMIT_DMA_PENDING, -EDEADLK).
 */
int mu_dma_read(mu_ctx_t *ctx, uint64_t iova, void *buf, size_t len);
int mu_dma_write(mu_ctx_t *ctx, uint64_t iova, const void *buf, size_t len);

/*
 * Copy between guest memory and buf without waiting: the context
 * thread's way to reach memory that needs the client.
 *
 * Call from the context thread only (a callback, or the device's own loop
 * around mu_ctx_poll(), once the loop has run).  The request copies what
 * has an fd at once and sends DMA_READ/DMA_WRITE messages (within the
 * client's transfer limit, one at a time) for the rest; when it is over,
 * cb(ctx, arg, status) runs on the context thread, from the event loop:
 * never inside the call that submitted it.  status is 0, or what
 * mu_dma_read() would return, or:
 *   -ETIMEDOUT  a reply did not come within MU_LIMIT_RECV_TIMEOUT_MS (a
 *               reply that comes later is dropped);
 *   -ENOTCONN   the client went away, or the context is being destroyed;
 *   -ECANCELED  the device was reset (DEVICE_RESET, FLR) meanwhile;
 *   -EPERM      the device was stopped for migration meanwhile.
 * A request that fails part-way leaves the pieces before it copied.
 *
 * Returns 0 when the request was taken: cb then runs exactly once, on
 * every path (including mu_ctx_destroy()).  Otherwise cb never runs and
 * the call returns -EINVAL (len 0, a range that wraps, cb NULL), -EPERM
 * (not on the context thread, or stopped for migration), -ENOTCONN (no
 * negotiated client), -EBUSY (MU_LIMIT_DMA_PENDING requests and blocking
 * calls are in flight: try again from a later callback) or -ENOMEM.
 *
 * buf is the caller's and must stay valid, untouched by anyone else,
 * until cb runs; the library keeps its own record of the request.  cb may
 * submit requests and may call anything a callback may, but not
 * mu_ctx_destroy().
 */
typedef void (*mu_dma_done_cb_t)(mu_ctx_t *ctx, void *arg, int status);
int mu_dma_read_async(mu_ctx_t *ctx, uint64_t iova, void *buf, size_t len,
                      mu_dma_done_cb_t cb, void *arg);
int mu_dma_write_async(mu_ctx_t *ctx, uint64_t iova, const void *buf,
                       size_t len, mu_dma_done_cb_t cb, void *arg);

/* Mark guest pages written by other means.  Thread-safe.  (A write to
 * memory without an fd is logged by the library, when the client's reply
 * to the DMA_WRITE arrives: before any report the client asks for after
 * it.) */
int mu_dma_mark_dirty(mu_ctx_t *ctx, uint64_t iova, size_t len);

struct mu_dma_stats {
    uint64_t regions;        /* regions in the table now */
    uint64_t mapped_bytes;   /* bytes mmapped now */
    uint64_t maps;           /* DMA_MAP accepted (map callbacks) */
    uint64_t unmaps;         /* regions removed (unmap callbacks) */
    uint64_t faults;         /* lazy mmaps done by translation */
    uint64_t evictions;      /* idle mappings dropped (budget or age) */
    uint64_t rejects;        /* DMA_MAP refused for overlap */
    uint64_t reserved[9];    /* set to 0 */
};
/* Thread-safe. */
void mu_dma_get_stats(mu_ctx_t *ctx, struct mu_dma_stats *st);

/*
 * Guest memory that vanishes.  The client owns the files behind its DMA
 * regions and may truncate them, or hand over a sparse file on a full
 * filesystem; touching such a page raises SIGBUS in the device.  The
 * library keeps a lock-free table of the ranges it has mapped and handles
 * SIGBUS itself: a fault inside a mapped region (through any pointer,
 * mu_dma_get() ones included) gets anonymous zero memory mapped over the
 * whole region, so the access completes (reads see zeros, writes are
 * lost); the region is poisoned (never mapped from its file again) and the
 * context drops the client at its next turn, logging the region and the
 * faulting address.  The device sees zeros, never a signal; its state
 * survives and the next client is served.  A fault anywhere else goes to
 * the handler that was installed before (or the default action).
 *
 * The handler is installed (SA_SIGINFO | SA_ONSTACK) when a region is
 * mapped, again on top if another handler has replaced it since (chaining
 * to that one).  A device that owns SIGBUS itself calls mu_sigbus_own()
 * before that (-EBUSY once the library's handler is in) and calls
 * mu_sigbus_handle() first thing in its own handler: true means the fault
 * was in guest memory and has been dealt with, so return at once.
 * mu_sigbus_handle() is async-signal-safe and takes no lock.
 */
int mu_sigbus_own(void);
bool mu_sigbus_handle(siginfo_t *si);

/* Iterate the table from the context thread (e.g. for a debug dump):
 * cb is called for each region in address order; stop with non-zero. */
int mu_dma_foreach(mu_ctx_t *ctx,
                   int (*cb)(mu_ctx_t *ctx, mu_dma_region_t *r, void *arg),
                   void *arg);

/* ------------------------------------------------------------------ */
/* Live migration (VFIO migration v2 over vfio-user)                  */
/* ------------------------------------------------------------------ */

/*
 * Migration states, numbered as on the wire (MIG_DEVICE_STATE).  RUNNING,
 * PRE_COPY (and the P2P forms, never offered by this library) are running
 * states: the device works, DMAs and raises interrupts.  STOP, STOP_COPY
 * and RESUMING are stopped states: the device must not change guest memory
 * or raise interrupts, and the library enforces it:
 *   - mu_irq_trigger() holds the vector as pending and returns
 *     MU_IRQ_PENDING; every held vector is delivered (if unmasked, with a
 *     trigger fd) when the device runs again.  A client that goes away
 *     meanwhile takes its pending interrupts with it, as on any
 *     disconnect;
 *   - mu_dma_get(), mu_dma_read() and mu_dma_write() fail with -EPERM
 *     (from any thread).  References taken before stay valid: a device
 *     that holds a queue mapping keeps it, and is trusted not to write
 *     through it while stopped;
 *   - REGION_READ/REGION_WRITE of any region but config space get EBUSY
 *     and the device's access callback is not called, so the saved state
 *     cannot change under the client's feet.  Config space stays served
 *     (the library's own state; VMMs restore it while RESUMING).  mmapped
 *     areas of a region and ioeventfds cannot be refused: the client must
 *     not touch them while the device is stopped.
 * ERROR is entered only when a device callback fails on the way out of a
 * state it cannot stay in (see below); a DEVICE_RESET leaves it for
 * RUNNING.
 */
enum mu_mig_state {
    MU_MIG_ERROR = 0,
    MU_MIG_STOP = 1,
    MU_MIG_RUNNING = 2,
    MU_MIG_STOP_COPY = 3,
    MU_MIG_RESUMING = 4,
    MU_MIG_RUNNING_P2P = 5,
    MU_MIG_PRE_COPY = 6,
    MU_MIG_PRE_COPY_P2P = 7,
};

/* Feature flags for struct mu_mig_callbacks. */
enum {
    /* The device can save while running (PRE_COPY): save() is then also
     * called in PRE_COPY, and may return less than the whole state. */
    MU_MIG_F_PRE_COPY = 1u << 0,
};

/*
 * The device's side of a migration.  All callbacks run on the context
 * thread, one at a time, and must not block for long (the client waits).
 *
 * transition(ctx, from, to): one direct arc of the state machine.  A
 *   requested change that needs several arcs (RUNNING -> STOP_COPY is
 *   RUNNING -> STOP -> STOP_COPY) comes as several calls, shortest path
 *   first.  Into a stopped state: quiesce (finish or park in-flight work;
 *   no DMA, no interrupt after returning).  STOP -> STOP_COPY: prepare the
 *   full state for save().  STOP -> RESUMING: forget any stream received
 *   before.  RESUMING -> STOP: the stream is complete; check it whole and
 *   apply it.  Into a running state: start again.  Return 0, or a negative
 *   errno to refuse the arc; the device must then be as it was before the
 *   call.  The library stops at the state reached so far and sends the
 *   errno; a refused RESUMING -> STOP also drops the stream received (the
 *   device forgets it; the next MIG_DATA_WRITE begins a new stream) and
 *   leaves the device's previous contents.
 *   May be NULL (then every arc succeeds).
 *
 * save(ctx, buf, len): in STOP_COPY (and PRE_COPY with MU_MIG_F_PRE_COPY),
 *   copy the next bytes of the state stream into buf, at most len; return
 *   how many, 0 when there is nothing more (STOP_COPY: the end of the
 *   stream; PRE_COPY: nothing more for now), or a negative errno.  The
 *   library calls it until buf is full or it returns 0, so a device may
 *   hand the stream over in pieces of any size.  Required.
 *
 * load(ctx, buf, len): in RESUMING, the next len bytes (len >= 1) of the
 *   stream written by the client, in order.  Keep them (applying nothing
 *   to the running state yet), check what can be checked (format, version,
 *   sizes), return 0, or a negative errno to reject: the client gets it
 *   and the device forgets the stream so far, as above.  Required.
 *
 * pending(ctx, &initial, &dirty): optional; in PRE_COPY, how many bytes
 *   save() still has of the initial state and of the state changed since
 *   (VFIO's PRE_COPY_INFO).  The protocol has no message for it, so it is
 *   what mu_mig_pending() returns to the device's own code and to tests.
 */
struct mu_mig_callbacks {
    size_t size;            /* sizeof(struct mu_mig_callbacks) */
    unsigned flags;         /* MU_MIG_F_* */
    int (*transition)(mu_ctx_t *ctx, enum mu_mig_state from,
                      enum mu_mig_state to);
    ssize_t (*save)(mu_ctx_t *ctx, void *buf, size_t len);
    int (*load)(mu_ctx_t *ctx, const void *buf, size_t len);
    int (*pending)(mu_ctx_t *ctx, uint64_t *initial_bytes,
                   uint64_t *dirty_bytes);
};

/*
 * Offer migration.  The table is copied.  Before realize.  -EINVAL for a
 * size the library does not know, unknown flags or a missing save/load,
 * -EBUSY after realize.  Without it the device answers DEVICE_FEATURE
 * MIGRATION with ENOTSUP and VERSION offers no migration capability.
 *
 * The device starts in RUNNING.  DEVICE_RESET (and FLR) puts it back in
 * RUNNING after the reset callback, dropping any stream.
 *
 * When the client goes away the state machine is walked, with the usual
 * callbacks, to where a new client can pick up: PRE_COPY -> RUNNING (the
 * migration is abandoned, the device runs on), STOP_COPY -> STOP (the rest
 * of the stream is dropped; a new client may save again from STOP, or run
 * the device), RESUMING -> STOP if the device accepts the stream it has
 * (else RESUMING, with the stream dropped, for a new client to write from
 * the start).  STOP and RUNNING stay as they are.
 */
int mu_mig_setup(mu_ctx_t *ctx, const struct mu_mig_callbacks *cb);

/* The current state.  Thread-safe. */
enum mu_mig_state mu_mig_state(const mu_ctx_t *ctx);

/*
 * PRE_COPY bytes remaining, from the device's pending callback: 0, or
 * -ENOTSUP without one or outside PRE_COPY.  Context thread.
 */
int mu_mig_pending(mu_ctx_t *ctx, uint64_t *initial_bytes,
                   uint64_t *dirty_bytes);

#pragma GCC visibility pop

#ifdef __cplusplus
}
#endif

#endif /* MUSER_H */
