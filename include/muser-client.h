/*
 * muser-client.h - the client side of vfio-user: connect to a device server,
 * negotiate, discover it, access its regions, hand it memory, wire its
 * interrupts.  muser's tests, tools, benchmarks and samples use it; it is
 * also a small library for a VMM-like program.
 *
 * It is strict: every reply is checked as carefully as the server checks
 * requests (size, command, msg_id, flags, counts, fds), and a bad reply is
 * an error (-EPROTO) that leaves the connection unusable (-ENOTCONN after).
 *
 * Errors: 0 (or a count) on success, a negative errno on failure.  An error
 * reply from the server returns its errno, negated.
 *
 * Fds and structs follow muser.h's rules: an fd passed in is borrowed (sent
 * or dup'ed, never closed), an fd handed out is the caller's; a struct the
 * caller allocates ends in reserved space, 0 going in (else -EINVAL), set
 * to 0 coming out.  The library is the same libmuser as the server's:
 * mu_version() in muser.h is its version.
 *
 * Threads: a muc_t is not thread-safe; use it from one thread at a time.
 * While a call waits for its reply, DMA_READ/DMA_WRITE requests from the
 * server for memory mapped with muc_dma_map_mem() are served; between calls
 * serve them with muc_serve().
 */
#ifndef MUSER_CLIENT_H
#define MUSER_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The library is built with hidden visibility; this API is what it exports. */
#pragma GCC visibility push(default)

typedef struct muc muc_t;

/* Fields left 0 take their defaults.  Like every struct the caller
 * allocates here, it ends in reserved space: 0 in what the caller passes
 * in (else -EINVAL), set to 0 in what the library fills in, so later
 * versions can use it without changing the struct's size. */
struct muc_opts {
    uint32_t max_msg_fds;        /* what we accept per message; default 8 */
    uint32_t max_data_xfer_size; /* what we accept; default 1 MiB */
    bool write_multiple;         /* offer REGION_WRITE_MULTI */
    int timeout_ms;              /* per reply; default 5000, -1 forever */
    /*
     * Behave like QEMU's vfio-user-pci client (and, for region info,
     * libvfio-user's) where they differ from ours, so tests can show a
     * server copes with them:
     *  - max_msg_fds defaults to 16, and a server advertising more than 16
     *    is refused (-EPROTO), as QEMU refuses it ("malformed max_msg_fds");
     *    muc_irq_set_eventfds() splits to the server's value as always;
     *  - GET_REGION_INFO sends the whole argsz buffer as its payload, not
     *    just the 32-byte fixed part;
     *  - muc_region_io_fds() fails with -ENOTSUP without asking: QEMU never
     *    sends GET_REGION_IO_FDS.
     * The rest of QEMU's behaviour is the caller's to imitate: it emulates
     * the MSI-X table itself (enables MSI-X in config space, never writes
     * the table in BAR memory), stores doorbells to the mmapped areas of a
     * region without any kick, and on a remap of guest RAM unmaps all of
     * it and maps it back in pieces.
     */
    bool qemu_like;
    uint32_t reserved[8];        /* 0, or muc_connect() fails -EINVAL */
};

/*
 * Connect to the server's socket and negotiate the version and
 * capabilities.  opts may be NULL for the defaults.  Errors: -ENOENT (no
 * such socket), -ECONNREFUSED (nobody listening), -EPROTO (the peer is not
 * a vfio-user server), -ETIMEDOUT, or the server's errno.
 */
int muc_connect(muc_t **out, const char *path, const struct muc_opts *opts);

/* Close the connection; the server drops all our DMA regions and irq fds. */
void muc_close(muc_t *c);

/* The connected socket, for a poll loop to learn when muc_serve() has
 * work (readable).  Only poll it: the library does all the reading and
 * writing. */
int muc_fd(const muc_t *c);

/* What the server said in VERSION. */
struct muc_server_caps {
    uint16_t major, minor;
    uint32_t max_msg_fds;
    uint32_t max_data_xfer_size;
    uint32_t max_dma_maps;
    uint64_t pgsizes;
    bool write_multiple;
    bool migration;          /* offered migration ("migration" object) */
};
const struct muc_server_caps *muc_server_caps(const muc_t *c);

/* ---- device discovery ---- */

struct muc_device_info {
    uint32_t flags;          /* VFIO_DEVICE_FLAGS_*: bit 0 reset, bit 1 PCI */
    uint32_t num_regions;
    uint32_t num_irqs;
    uint32_t reserved[5];    /* set to 0 */
};
int muc_device_info(muc_t *c, struct muc_device_info *info);

#define MUC_REGION_READ 0x1u
#define MUC_REGION_WRITE 0x2u
#define MUC_REGION_MMAP 0x4u
#define MUC_MAX_SPARSE 64

struct muc_region_info {
    uint32_t index;
    uint32_t flags;          /* MUC_REGION_* */
    uint64_t size;
    uint64_t offset;         /* offset to give mmap() for fd */
    int fd;                  /* -1, or an fd the caller now owns */
    unsigned nr_sparse;      /* 0: whole region mmappable (if MMAP) */
    struct {
        uint64_t offset, size;
    } sparse[MUC_MAX_SPARSE];
    bool has_type;
    uint32_t type, subtype;
    uint64_t reserved[4];    /* set to 0 */
};
/* Asks again with a bigger argsz when the reply does not fit. */
int muc_region_info(muc_t *c, uint32_t index, struct muc_region_info *info);

struct muc_irq_info {
    uint32_t flags;          /* bit 0 eventfd, 1 maskable, 2 automasked, 3 noresize */
    uint32_t count;
    uint32_t reserved[6];    /* set to 0 */
};
int muc_irq_info(muc_t *c, uint32_t index, struct muc_irq_info *info);

struct muc_ioeventfd {
    uint64_t offset;
    uint64_t size;
    uint32_t type;
    uint32_t flags;
    uint64_t datamatch;
    int fd;                  /* owned by the caller after the call */
    uint32_t reserved[3];    /* set to 0 */
};
/* Returns the number of entries filled (at most max), or a negative errno.
 * Entries past max are dropped and their fds closed. */
int muc_region_io_fds(muc_t *c, uint32_t index, struct muc_ioeventfd *out,
                      unsigned max);

/* ---- region access ---- */

/* count bytes, split into pieces of at most the server's max xfer. */
int muc_region_read(muc_t *c, uint32_t index, uint64_t offset, void *buf,
                    size_t count);
int muc_region_write(muc_t *c, uint32_t index, uint64_t offset,
                     const void *buf, size_t count);

/* Config space helpers (region 7). */
int muc_config_read8(muc_t *c, uint32_t off, uint8_t *val);
int muc_config_read16(muc_t *c, uint32_t off, uint16_t *val);
int muc_config_read32(muc_t *c, uint32_t off, uint32_t *val);
int muc_config_write8(muc_t *c, uint32_t off, uint8_t val);
int muc_config_write16(muc_t *c, uint32_t off, uint16_t val);
int muc_config_write32(muc_t *c, uint32_t off, uint32_t val);

/* Size a BAR the way a guest does (write all-ones, read back, restore).
 * A size of 0 means absent; is64, is_io and prefetch describe it. */
int muc_bar_size(muc_t *c, unsigned bar, uint64_t *size, bool *is_io,
                 bool *is64, bool *prefetch);

int muc_reset(muc_t *c);

/* ---- interrupts ---- */

/* SET_IRQS with DATA_EVENTFD + ACTION_TRIGGER: fds[i] for vector start+i.
 * count 0 (fds NULL) with start 0 disables every vector of the index. */
int muc_irq_set_eventfds(muc_t *c, uint32_t index, uint32_t start,
                         uint32_t count, const int *fds);
/* Remove the eventfds of [start, start+count). */
int muc_irq_clear_eventfds(muc_t *c, uint32_t index, uint32_t start,
                           uint32_t count);
/* ACTION_MASK / ACTION_UNMASK with DATA_NONE. */
int muc_irq_mask(muc_t *c, uint32_t index, uint32_t start, uint32_t count,
                 bool mask);
/* Wait up to timeout_ms for an eventfd to fire.  Returns the counter value
 * read (> 0), 0 on timeout, or a negative errno. */
int64_t muc_eventfd_wait(int fd, int timeout_ms);

/* ---- DMA ---- */

#define MUC_DMA_READ 0x1u
#define MUC_DMA_WRITE 0x2u

/* Hand the server [iova, iova+size) backed by fd at 'offset' (fd is sent,
 * not kept: the caller still owns it).  prot is MUC_DMA_READ|WRITE. */
int muc_dma_map(muc_t *c, uint64_t iova, uint64_t size, int fd,
                uint64_t offset, unsigned prot);
/* Hand over memory without an fd: the server reaches it through DMA_READ
 * and DMA_WRITE requests, which this library serves from 'mem' (kept by the
 * caller until unmapped). */
int muc_dma_map_mem(muc_t *c, uint64_t iova, uint64_t size, void *mem,
                    unsigned prot);
/* DMA_UNMAP of [iova, iova+size). */
int muc_dma_unmap(muc_t *c, uint64_t iova, uint64_t size);
/* DMA_UNMAP with the unmap-all flag. */
int muc_dma_unmap_all(muc_t *c);

/*
 * Serve server -> client requests (DMA_READ/DMA_WRITE) for up to
 * timeout_ms (0: what is ready now; -1: until one arrives).  Returns the
 * number served, or a negative errno (-ENOTCONN when the server went away).
 */
int muc_serve(muc_t *c, int timeout_ms);

/* Counters of the server -> client requests served so far. */
uint64_t muc_dma_requests_served(const muc_t *c);

/* ---- dirty page logging (DEVICE_FEATURE) ---- */

int muc_dirty_start(muc_t *c, uint64_t page_size, const uint64_t *iova,
                    const uint64_t *len, unsigned nr_ranges);
int muc_dirty_stop(muc_t *c);
/* bitmap gets ceil(length/page_size) bits, rounded up to u64 words. */
int muc_dirty_report(muc_t *c, uint64_t iova, uint64_t length,
                     uint64_t page_size, uint64_t *bitmap, size_t bitmap_bytes);

/* ---- live migration (client_mig.c) ---- */

/* States as on the wire, VFIO migration v2 (same numbers as muser.h's
 * enum mu_mig_state). */
#define MUC_MIG_ERROR 0u
#define MUC_MIG_STOP 1u
#define MUC_MIG_RUNNING 2u
#define MUC_MIG_STOP_COPY 3u
#define MUC_MIG_RESUMING 4u
#define MUC_MIG_PRE_COPY 6u
/* DEVICE_FEATURE MIGRATION flags. */
#define MUC_MIG_F_STOP_COPY 0x1u
#define MUC_MIG_F_P2P 0x2u
#define MUC_MIG_F_PRE_COPY 0x4u

/* What the device supports (MUC_MIG_F_*); -ENOTSUP when it cannot
 * migrate. */
int muc_mig_features(muc_t *c, uint64_t *flags);
int muc_mig_get_state(muc_t *c, uint32_t *state);
/* Ask for a state; the server walks the shortest path.  On an error the
 * device may have stopped part-way: muc_mig_get_state() says where. */
int muc_mig_set_state(muc_t *c, uint32_t state);
/*
 * One MIG_DATA_READ of up to len bytes (len at most the smaller of our
 * and the server's max_data_xfer_size, else -EINVAL).  Returns the bytes
 * read; fewer than len means the stream is drained (STOP_COPY: the end;
 * PRE_COPY: nothing more for now).
 */
ssize_t muc_mig_read(muc_t *c, void *buf, size_t len);
/* The largest len muc_mig_read() takes. */
size_t muc_mig_read_max(const muc_t *c);
/* MIG_DATA_WRITE of len bytes, in pieces the server accepts. */
int muc_mig_write(muc_t *c, const void *buf, size_t len);

struct muc_migrate_opts {
    /* Rounds of PRE_COPY on the source while it runs, before stopping it
     * (0: none; ignored when either side lacks PRE_COPY): at most this
     * many, each reading until the source has nothing more for now; the
     * rounds end early after one that brought less than one read (the
     * largest muc_mig_read() takes) of data. */
    unsigned precopy_rounds;
    uint32_t reserved[7];    /* 0, or muc_migrate() fails -EINVAL */
};
struct muc_migrate_stats {
    uint64_t precopy_bytes;  /* streamed while the source ran */
    uint64_t stopcopy_bytes; /* streamed while stopped */
    uint64_t downtime_ns;    /* source leaves running .. destination runs */
    uint64_t reserved[5];    /* set to 0 */
};

/*
 * Move the device served on 'src' to the one on 'dst' (the same device
 * type, freshly started or reset): dst to RESUMING, src through PRE_COPY
 * (if asked) to STOP_COPY, the stream copied across, dst to RUNNING, src
 * left in STOP.  Guest memory does not move: the caller maps the same fds
 * (and wires interrupts) on dst, before or after the call; the device
 * will not DMA until RUNNING.  opts and stats may be NULL.
 *
 * On failure the source is put back to RUNNING when it can be (the
 * migration is abandoned, the device goes on where it was) and the
 * destination is left stopped; the error is the first one met.
 */
int muc_migrate(muc_t *src, muc_t *dst, const struct muc_migrate_opts *opts,
                struct muc_migrate_stats *stats);

#pragma GCC visibility pop

#ifdef __cplusplus
}
#endif

#endif /* MUSER_CLIENT_H */
