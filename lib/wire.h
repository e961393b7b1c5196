/*
 * wire.h - the vfio-user protocol: constants, message layouts, and the pure
 * functions that decode and validate them.
 *
 * Nothing here does I/O or allocates (except the JSON capability codec, which
 * has to), so every function can be unit-tested and fuzzed on its own.  Both
 * the server (ctx.c and friends) and the client library use it: the server to
 * check requests, the client to check replies, with the same rules.
 *
 * All layouts are packed and little endian; we only build on little-endian
 * hosts (meson.build refuses others), so structures are read with memcpy and
 * no byte swapping.
 */
#ifndef MUSER_WIRE_H
#define MUSER_WIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define VFU_VERSION_MAJOR 0
#define VFU_VERSION_MINOR 1

/* Commands (protocol section 3). */
enum vfu_cmd {
    VFU_CMD_VERSION = 1,
    VFU_CMD_DMA_MAP = 2,
    VFU_CMD_DMA_UNMAP = 3,
    VFU_CMD_DEVICE_GET_INFO = 4,
    VFU_CMD_DEVICE_GET_REGION_INFO = 5,
    VFU_CMD_DEVICE_GET_REGION_IO_FDS = 6,
    VFU_CMD_DEVICE_GET_IRQ_INFO = 7,
    VFU_CMD_DEVICE_SET_IRQS = 8,
    VFU_CMD_REGION_READ = 9,
    VFU_CMD_REGION_WRITE = 10,
    VFU_CMD_DMA_READ = 11,
    VFU_CMD_DMA_WRITE = 12,
    VFU_CMD_DEVICE_RESET = 13,
    VFU_CMD_DIRTY_PAGES = 14,
    VFU_CMD_REGION_WRITE_MULTI = 15,
    VFU_CMD_DEVICE_FEATURE = 16,
    VFU_CMD_MIG_DATA_READ = 17,
    VFU_CMD_MIG_DATA_WRITE = 18,
    VFU_CMD_MAX = 18,
};

const char *vfu_cmd_name(unsigned cmd);

/* Header (16 bytes). */
struct vfu_hdr {
    uint16_t msg_id;
    uint16_t cmd;
    uint32_t size;
    uint32_t flags;
    uint32_t error;
} __attribute__((packed));

#define VFU_HDR_SIZE 16u
#define VFU_F_TYPE_MASK 0xfu
#define VFU_F_TYPE_COMMAND 0u
#define VFU_F_TYPE_REPLY 1u
#define VFU_F_NO_REPLY 0x10u
#define VFU_F_ERROR 0x20u
#define VFU_F_KNOWN (VFU_F_TYPE_MASK | VFU_F_NO_REPLY | VFU_F_ERROR)

/* VERSION */
struct vfu_version {
    uint16_t major;
    uint16_t minor;
    /* followed by optional NUL-terminated JSON */
} __attribute__((packed));

/* DMA_MAP */
#define VFU_DMA_FLAG_READ 0x1u
#define VFU_DMA_FLAG_WRITE 0x2u
struct vfu_dma_map {
    uint32_t argsz;
    uint32_t flags;
    uint64_t offset;
    uint64_t addr;
    uint64_t size;
} __attribute__((packed));

/* DMA_UNMAP */
#define VFU_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP 0x1u
#define VFU_DMA_UNMAP_FLAG_ALL 0x2u
struct vfu_dma_unmap {
    uint32_t argsz;
    uint32_t flags;
    uint64_t addr;
    uint64_t size;
} __attribute__((packed));

/* DEVICE_GET_INFO */
#define VFU_DEV_FLAG_RESET 0x1u
#define VFU_DEV_FLAG_PCI 0x2u
struct vfu_device_info {
    uint32_t argsz;
    uint32_t flags;
    uint32_t num_regions;
    uint32_t num_irqs;
} __attribute__((packed));

/* DEVICE_GET_REGION_INFO */
#define VFU_REGION_FLAG_READ 0x1u
#define VFU_REGION_FLAG_WRITE 0x2u
#define VFU_REGION_FLAG_MMAP 0x4u
#define VFU_REGION_FLAG_CAPS 0x8u
struct vfu_region_info {
    uint32_t argsz;
    uint32_t flags;
    uint32_t index;
    uint32_t cap_offset;
    uint64_t size;
    uint64_t offset;
} __attribute__((packed));

struct vfu_cap_hdr {
    uint16_t id;
    uint16_t version;
    uint32_t next;
} __attribute__((packed));

#define VFU_CAP_SPARSE_MMAP 1u
#define VFU_CAP_TYPE 2u
struct vfu_sparse_area {
    uint64_t offset;
    uint64_t size;
} __attribute__((packed));
struct vfu_cap_sparse {
    struct vfu_cap_hdr hdr;
    uint32_t nr_areas;
    uint32_t reserved;
    /* nr_areas x struct vfu_sparse_area */
} __attribute__((packed));
struct vfu_cap_type {
    struct vfu_cap_hdr hdr;
    uint32_t type;
    uint32_t subtype;
} __attribute__((packed));

/* DEVICE_GET_REGION_IO_FDS */
struct vfu_region_io_fds {
    uint32_t argsz;
    uint32_t flags;
    uint32_t index;
    uint32_t count;
} __attribute__((packed));
#define VFU_IOFD_TYPE_IOEVENTFD 0u
#define VFU_IOFD_TYPE_IOREGIONFD 1u
#define VFU_IOEVENTFD_FLAG_DATAMATCH 0x1u
#define VFU_IOEVENTFD_FLAG_PIO 0x2u
struct vfu_sub_region_ioeventfd {
    uint64_t offset;
    uint64_t size;
    uint32_t fd_index;
    uint32_t type;
    uint32_t flags;
    uint32_t padding;
    uint64_t datamatch;
} __attribute__((packed));

/* DEVICE_GET_IRQ_INFO */
#define VFU_IRQ_INFO_EVENTFD 0x1u
#define VFU_IRQ_INFO_MASKABLE 0x2u
#define VFU_IRQ_INFO_AUTOMASKED 0x4u
#define VFU_IRQ_INFO_NORESIZE 0x8u
struct vfu_irq_info {
    uint32_t argsz;
    uint32_t flags;
    uint32_t index;
    uint32_t count;
} __attribute__((packed));

/* DEVICE_SET_IRQS */
#define VFU_IRQ_SET_DATA_NONE 0x1u
#define VFU_IRQ_SET_DATA_BOOL 0x2u
#define VFU_IRQ_SET_DATA_EVENTFD 0x4u
#define VFU_IRQ_SET_DATA_MASK 0x7u
#define VFU_IRQ_SET_ACTION_MASK 0x8u
#define VFU_IRQ_SET_ACTION_UNMASK 0x10u
#define VFU_IRQ_SET_ACTION_TRIGGER 0x20u
#define VFU_IRQ_SET_ACTION_MASKS 0x38u
struct vfu_irq_set {
    uint32_t argsz;
    uint32_t flags;
    uint32_t index;
    uint32_t start;
    uint32_t count;
    /* DATA_BOOL: count bytes follow */
} __attribute__((packed));

/* REGION_READ / REGION_WRITE */
struct vfu_region_access {
    uint64_t offset;
    uint32_t region;
    uint32_t count;
    /* data follows in REGION_WRITE requests and REGION_READ replies */
} __attribute__((packed));

/* DMA_READ / DMA_WRITE (server -> client) */
struct vfu_dma_access {
    uint64_t addr;
    uint64_t count;
} __attribute__((packed));

/* REGION_WRITE_MULTI */
struct vfu_write_multi_entry {
    uint64_t offset;
    uint32_t region;
    uint32_t count;
    uint8_t data[8];
} __attribute__((packed));
#define VFU_WRITE_MULTI_MAX 1024u

/* DEVICE_FEATURE */
#define VFU_FEATURE_MASK 0xffffu
#define VFU_FEATURE_GET 0x10000u
#define VFU_FEATURE_SET 0x20000u
#define VFU_FEATURE_PROBE 0x40000u
#define VFU_FEATURE_MIGRATION 1u
#define VFU_FEATURE_MIG_DEVICE_STATE 2u
#define VFU_FEATURE_DMA_LOGGING_START 6u
#define VFU_FEATURE_DMA_LOGGING_STOP 7u
#define VFU_FEATURE_DMA_LOGGING_REPORT 8u
struct vfu_device_feature {
    uint32_t argsz;
    uint32_t flags;
    /* feature data follows */
} __attribute__((packed));
struct vfu_dma_logging_control {
    uint64_t page_size;
    uint32_t num_ranges;
    uint32_t reserved;
    /* num_ranges x struct vfu_dma_logging_range */
} __attribute__((packed));
struct vfu_dma_logging_range {
    uint64_t iova;
    uint64_t length;
} __attribute__((packed));
struct vfu_dma_logging_report {
    uint64_t iova;
    uint64_t length;
    uint64_t page_size;
    /* bitmap follows in the reply */
} __attribute__((packed));

/* PCI region and irq indexes (protocol section 4). */
enum {
    VFU_PCI_BAR0 = 0,
    VFU_PCI_BAR5 = 5,
    VFU_PCI_ROM = 6,
    VFU_PCI_CONFIG = 7,
    VFU_PCI_VGA = 8,
    VFU_PCI_NUM_REGIONS = 9,
};
enum {
    VFU_IRQ_INTX = 0,
    VFU_IRQ_MSI = 1,
    VFU_IRQ_MSIX = 2,
    VFU_IRQ_ERR = 3,
    VFU_IRQ_REQ = 4,
    VFU_IRQ_NUM = 5,
};

/* ---- capabilities negotiated in VERSION ---- */

#define VFU_DEFAULT_MAX_MSG_FDS 1u
/*
 * Most fds a server advertises for one message.  The spec sets no bound,
 * but QEMU's client refuses a VERSION reply above 16 ("malformed
 * max_msg_fds") and splits what it sends (SET_IRQS) to fit the value we
 * give, so more buys nothing and breaks the handshake.
 */
#define VFU_MAX_ADVERTISED_MSG_FDS 16u
#define VFU_DEFAULT_MAX_DATA_XFER (1u << 20)
#define VFU_DEFAULT_MAX_DMA_MAPS 65535u
#define VFU_DEFAULT_PGSIZES 4096u

/* What one side said it accepts.  Absent keys take the protocol defaults. */
struct vfu_caps {
    uint32_t max_msg_fds;
    uint32_t max_data_xfer_size;
    uint32_t max_dma_maps;
    uint64_t pgsizes;
    bool write_multiple;
    bool twin_socket;        /* peer said twin_socket.supported */
    uint64_t mig_pgsize;     /* libvfio-user's migration.pgsize, 0 if absent */
};

void vfu_caps_default(struct vfu_caps *c);

/*
 * The max_msg_fds a server puts in its VERSION reply: its own receive
 * limit, but never above VFU_MAX_ADVERTISED_MSG_FDS nor above what the
 * client said it accepts itself (a client that takes n fds a message is
 * not expected to handle a peer announcing more; QEMU offers 16 and checks
 * ours against the same 16).  At least 1, so DMA_MAP can carry its fd.
 */
uint32_t vfu_caps_server_fds(uint64_t own_limit, const struct vfu_caps *peer);

/*
 * Parse the JSON text of a VERSION payload (json/len is everything after the
 * 4-byte major/minor; len may be 0 meaning "no JSON").  The text must be
 * NUL-terminated within len, valid UTF-8 JSON with an object at the top; an
 * unknown key is ignored (forward compatibility) but a known key of the wrong
 * type or out of range is an error.  Returns 0, -EINVAL, or -ENOMEM.  On
 * failure *out is left untouched; len == 0 or json == NULL yields the
 * defaults.
 */
int vfu_caps_parse(const char *json, size_t len, struct vfu_caps *out);

/*
 * Build the JSON for our side into buf (NUL included).  Returns the length
 * including the NUL, or -ENOSPC if it does not fit (buf is then untouched).
 */
int vfu_caps_build(const struct vfu_caps *c, char *buf, size_t buflen);

/* ---- validation ---- */

/*
 * Decode and check a header read off the wire.  max_size is the largest
 * message we accept.  Checks: size >= 16, size <= max_size, no reserved flag
 * bits, type is command or reply, error field zero unless it is an error
 * reply, error replies carry no payload.  Returns 0 or a negative errno:
 * -EINVAL for a malformed header, -EMSGSIZE for size > max_size.
 */
int vfu_hdr_check(const struct vfu_hdr *h, uint32_t max_size);

static inline bool vfu_hdr_is_reply(const struct vfu_hdr *h)
{
    return (h->flags & VFU_F_TYPE_MASK) == VFU_F_TYPE_REPLY;
}

/*
 * Request checks, one per command the server receives.  Each takes the
 * payload (after the header), its length and the number of fds that came
 * with it, and checks every size, count and flag against the layout.  They
 * do not know the device (region counts, irq counts): the caller checks
 * those.  On success the fixed part is copied to *out (aligned); on failure
 * no output parameter is written.
 */
/* *json points at the JSON text and *json_len includes its NUL; NULL/0 when
 * the payload is only major/minor. */
int vfu_check_version(const void *p, size_t len, unsigned nfds,
                      struct vfu_version *out, const char **json,
                      size_t *json_len);
int vfu_check_dma_map(const void *p, size_t len, unsigned nfds,
                      struct vfu_dma_map *out);
int vfu_check_dma_unmap(const void *p, size_t len, unsigned nfds,
                        struct vfu_dma_unmap *out);
/* The four info requests: the payload holds at least the fixed struct and
 * at most argsz bytes (a client may send its whole reply buffer). */
int vfu_check_device_get_info(const void *p, size_t len, unsigned nfds,
                              struct vfu_device_info *out);
int vfu_check_region_info(const void *p, size_t len, unsigned nfds,
                          struct vfu_region_info *out);
int vfu_check_region_io_fds(const void *p, size_t len, unsigned nfds,
                            struct vfu_region_io_fds *out);
int vfu_check_irq_info(const void *p, size_t len, unsigned nfds,
                       struct vfu_irq_info *out);
/* *data points at the DATA_BOOL bytes (or NULL). */
int vfu_check_set_irqs(const void *p, size_t len, unsigned nfds,
                       struct vfu_irq_set *out, const uint8_t **data);
/* REGION_READ: no data; max_xfer bounds count. */
int vfu_check_region_read(const void *p, size_t len, unsigned nfds,
                          uint32_t max_xfer, struct vfu_region_access *out);
/* REGION_WRITE: count bytes of data follow; *data points at them. */
int vfu_check_region_write(const void *p, size_t len, unsigned nfds,
                           uint32_t max_xfer, struct vfu_region_access *out,
                           const uint8_t **data);
/* *entries is not aligned: memcpy each entry into a local before use. */
int vfu_check_write_multi(const void *p, size_t len, unsigned nfds,
                          uint64_t *wr_cnt,
                          const struct vfu_write_multi_entry **entries);
int vfu_check_device_feature(const void *p, size_t len, unsigned nfds,
                             struct vfu_device_feature *out,
                             const uint8_t **data, size_t *data_len);
int vfu_check_no_payload(const void *p, size_t len, unsigned nfds);

/*
 * The data of DEVICE_FEATURE DMA_LOGGING_START (and STOP, which may repeat
 * it): a control and exactly num_ranges ranges.  Checked: reserved 0, page
 * size a power of two of at least 4 KiB, every range non-empty and not
 * wrapping.  *ranges points at the first range in p; read them with
 * vfu_dma_logging_range_at().
 */
int vfu_check_dma_logging_control(const void *p, size_t len,
                                  struct vfu_dma_logging_control *out,
                                  const uint8_t **ranges);
/* Range i (< num_ranges) of a checked control, as [*start, *last]. */
void vfu_dma_logging_range_at(const uint8_t *ranges, uint32_t i,
                              uint64_t *start, uint64_t *last);
/*
 * The data of DEVICE_FEATURE DMA_LOGGING_REPORT: exactly the request, its
 * page size as above, its range non-empty, not wrapping and starting on a
 * page.  *nr_pages is the pages it covers, *bitmap_bytes the bytes of the
 * bitmap answering it (whole u64 words).
 */
int vfu_check_dma_logging_report(const void *p, size_t len,
                                 struct vfu_dma_logging_report *out,
                                 uint64_t *nr_pages, uint64_t *bitmap_bytes);

/*
 * Checks done by the client on server -> client commands and on replies.
 */
int vfu_check_dma_access_req(const void *p, size_t len, unsigned nfds,
                             bool is_write, uint32_t max_xfer,
                             struct vfu_dma_access *out, const uint8_t **data);

/* Overflow-safe helpers used everywhere a peer supplies offset/size pairs. */
static inline bool vfu_range_ok(uint64_t off, uint64_t len, uint64_t limit)
{
    return off <= limit && len <= limit - off;
}

/* Build a header in place. */
static inline void vfu_hdr_init(struct vfu_hdr *h, uint16_t id, uint16_t cmd,
                                uint32_t size, uint32_t flags, uint32_t err)
{
    h->msg_id = id;
    h->cmd = cmd;
    h->size = size;
    h->flags = flags;
    h->error = err;
}

#endif /* MUSER_WIRE_H */
