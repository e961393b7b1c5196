/*
 * wire.c - validation of vfio-user headers and request payloads.
 *
 * Every function here looks at bytes that came from an untrusted peer, so
 * the same few rules hold throughout:
 *
 * - A length is checked before the bytes it covers are touched; nothing
 *   reads past len, and p may be NULL when len is 0.
 *
 * - p has no alignment guarantee (it points just past a 16-byte header in
 *   a receive buffer, or anywhere at all when fuzzed), so the fixed part is
 *   copied out with memcpy into a local and only written to *out once every
 *   check has passed.  On failure no output parameter is touched.
 *
 * - Peer-supplied sums are never computed directly.  "addr + size - 1 does
 *   not wrap" is tested as "size - 1 <= UINT64_MAX - addr" (size is known to
 *   be non-zero first), so a region ending exactly at 2^64 - 1 is accepted
 *   and one byte more is not.  Lengths are compared by subtracting the
 *   fixed part from len once len is known to cover it.
 *
 * - Only the layout is checked: indexes, region sizes and negotiated limits
 *   other than max_xfer belong to the caller, which knows the device.
 */
#include <errno.h>
#include <string.h>

#include "wire.h"

static const char *const cmd_names[VFU_CMD_MAX + 1] = {
    [VFU_CMD_VERSION] = "VERSION",
    [VFU_CMD_DMA_MAP] = "DMA_MAP",
    [VFU_CMD_DMA_UNMAP] = "DMA_UNMAP",
    [VFU_CMD_DEVICE_GET_INFO] = "DEVICE_GET_INFO",
    [VFU_CMD_DEVICE_GET_REGION_INFO] = "DEVICE_GET_REGION_INFO",
    [VFU_CMD_DEVICE_GET_REGION_IO_FDS] = "DEVICE_GET_REGION_IO_FDS",
    [VFU_CMD_DEVICE_GET_IRQ_INFO] = "DEVICE_GET_IRQ_INFO",
    [VFU_CMD_DEVICE_SET_IRQS] = "DEVICE_SET_IRQS",
    [VFU_CMD_REGION_READ] = "REGION_READ",
    [VFU_CMD_REGION_WRITE] = "REGION_WRITE",
    [VFU_CMD_DMA_READ] = "DMA_READ",
    [VFU_CMD_DMA_WRITE] = "DMA_WRITE",
    [VFU_CMD_DEVICE_RESET] = "DEVICE_RESET",
    [VFU_CMD_DIRTY_PAGES] = "DIRTY_PAGES",
    [VFU_CMD_REGION_WRITE_MULTI] = "REGION_WRITE_MULTI",
    [VFU_CMD_DEVICE_FEATURE] = "DEVICE_FEATURE",
    [VFU_CMD_MIG_DATA_READ] = "MIG_DATA_READ",
    [VFU_CMD_MIG_DATA_WRITE] = "MIG_DATA_WRITE",
};

const char *
vfu_cmd_name(unsigned cmd)
{
    if (cmd > VFU_CMD_MAX || cmd_names[cmd] == NULL)
        return "UNKNOWN";
    return cmd_names[cmd];
}

/* ---- helpers ---- */

/*
 * True if the closed range [start, start + size - 1] fits below 2^64.
 * size must be non-zero; callers reject size 0 first.
 */
static inline bool
end_ok(uint64_t start, uint64_t size)
{
    return size - 1 <= UINT64_MAX - start;
}

static inline bool
one_bit(uint32_t v)
{
    return v != 0 && (v & (v - 1)) == 0;
}

static inline const uint8_t *
bytes(const void *p)
{
    return (const uint8_t *)p;
}

/* ---- header ---- */

int
vfu_hdr_check(const struct vfu_hdr *h, uint32_t max_size)
{
    uint32_t type = h->flags & VFU_F_TYPE_MASK;

    if (h->size < VFU_HDR_SIZE)
        return -EINVAL;
    if (h->size > max_size)
        return -EMSGSIZE;
    if (h->flags & ~VFU_F_KNOWN)
        return -EINVAL;
    if (type != VFU_F_TYPE_COMMAND && type != VFU_F_TYPE_REPLY)
        return -EINVAL;

    if (type == VFU_F_TYPE_COMMAND)
        return h->error == 0 && !(h->flags & VFU_F_ERROR) ? 0 : -EINVAL;

    /* Nobody waits for a reply to a reply. */
    if (h->flags & VFU_F_NO_REPLY)
        return -EINVAL;
    /* An error reply is the header alone and says which errno (§2). */
    if (h->flags & VFU_F_ERROR)
        return h->size == VFU_HDR_SIZE && h->error != 0 ? 0 : -EINVAL;
    return h->error == 0 ? 0 : -EINVAL;
}

/* ---- VERSION ---- */

int
vfu_check_version(const void *p, size_t len, unsigned nfds,
                  struct vfu_version *out, const char **json,
                  size_t *json_len)
{
    struct vfu_version v;
    const char *text = NULL;
    size_t text_len = 0;

    if (nfds != 0 || len < sizeof(v))
        return -EINVAL;
    memcpy(&v, p, sizeof(v));

    if (len > sizeof(v)) {
        text = (const char *)bytes(p) + sizeof(v);
        text_len = len - sizeof(v);
        /*
         * QEMU insists on a NUL-terminated JSON text (§5); insist on
         * exactly one, at the end, so the parser and the length agree.
         */
        if (text[text_len - 1] != '\0' ||
            memchr(text, '\0', text_len - 1) != NULL)
            return -EINVAL;
    }

    *out = v;
    *json = text;
    *json_len = text_len;
    return 0;
}

/* ---- DMA_MAP / DMA_UNMAP ---- */

int
vfu_check_dma_map(const void *p, size_t len, unsigned nfds,
                  struct vfu_dma_map *out)
{
    const uint32_t rw = VFU_DMA_FLAG_READ | VFU_DMA_FLAG_WRITE;
    struct vfu_dma_map m;

    if (len != sizeof(m) || nfds > 1)
        return -EINVAL;
    memcpy(&m, p, sizeof(m));

    if (m.argsz != sizeof(m))
        return -EINVAL;
    /* A mapping nobody may read or write is meaningless. */
    if ((m.flags & ~rw) != 0 || (m.flags & rw) == 0)
        return -EINVAL;
    /*
     * libvfio-user lets zero-size and wrapping maps through (§5); they
     * would poison the DMA address tree, so refuse them here.
     */
    if (m.size == 0 || !end_ok(m.addr, m.size))
        return -EINVAL;
    /* The offset only means something when there is a file to mmap. */
    if (nfds == 1 && !end_ok(m.offset, m.size))
        return -EINVAL;

    *out = m;
    return 0;
}

int
vfu_check_dma_unmap(const void *p, size_t len, unsigned nfds,
                    struct vfu_dma_unmap *out)
{
    const uint32_t known = VFU_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP |
                           VFU_DMA_UNMAP_FLAG_ALL;
    /* The old migration scheme's bitmap header: u64 pgsize; u64 size. */
    const size_t bitmap_hdr = 2 * sizeof(uint64_t);
    struct vfu_dma_unmap u;
    bool dirty, all;

    if (nfds != 0 || len < sizeof(u))
        return -EINVAL;
    memcpy(&u, p, sizeof(u));

    if (u.argsz < sizeof(u) || (u.flags & ~known) != 0)
        return -EINVAL;
    dirty = u.flags & VFU_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP;
    all = u.flags & VFU_DMA_UNMAP_FLAG_ALL;

    /*
     * Both flags are outside the current spec text but libvfio-user takes
     * them (§3.3).  The bitmap that follows GET_DIRTY_BITMAP is the
     * caller's to interpret; we only make sure its header is there.
     */
    if (dirty) {
        if (len - sizeof(u) < bitmap_hdr)
            return -EINVAL;
    } else if (len != sizeof(u)) {
        return -EINVAL;
    }

    if (all) {
        /* "Unmap everything" names no range, and has no single bitmap. */
        if (dirty || u.addr != 0 || u.size != 0)
            return -EINVAL;
    } else if (u.size == 0 || !end_ok(u.addr, u.size)) {
        return -EINVAL;
    }

    *out = u;
    return 0;
}

/* ---- info requests ---- */

/*
 * The info requests mirror ioctls whose argument is a buffer of argsz
 * bytes: the kernel reads the fixed part and ignores the rest, and
 * libvfio-user's client sends the whole buffer (80 bytes for a region
 * info with room for caps) where QEMU sends the fixed part only.  So a
 * payload may be longer than the fixed part, up to argsz; the extra bytes
 * are the client's reply buffer and mean nothing.  A payload longer than
 * argsz is a contradiction and refused.
 */
static bool
info_len_ok(size_t len, size_t fixed, uint32_t argsz)
{
    return len >= fixed && argsz >= fixed && len <= argsz;
}

int
vfu_check_device_get_info(const void *p, size_t len, unsigned nfds,
                          struct vfu_device_info *out)
{
    struct vfu_device_info d;

    if (nfds != 0 || len < sizeof(d))
        return -EINVAL;
    memcpy(&d, p, sizeof(d));
    /* argsz is the room for the reply; anything smaller cannot hold it. */
    if (!info_len_ok(len, sizeof(d), d.argsz))
        return -EINVAL;

    *out = d;
    return 0;
}

int
vfu_check_region_info(const void *p, size_t len, unsigned nfds,
                      struct vfu_region_info *out)
{
    struct vfu_region_info r;

    if (nfds != 0 || len < sizeof(r))
        return -EINVAL;
    memcpy(&r, p, sizeof(r));
    /* A larger argsz just means "room for caps and the fd" (§5). */
    if (!info_len_ok(len, sizeof(r), r.argsz))
        return -EINVAL;

    *out = r;
    return 0;
}

int
vfu_check_region_io_fds(const void *p, size_t len, unsigned nfds,
                        struct vfu_region_io_fds *out)
{
    struct vfu_region_io_fds r;

    if (nfds != 0 || len < sizeof(r))
        return -EINVAL;
    memcpy(&r, p, sizeof(r));
    /* flags and count are reply-only fields and must be 0 (§3.6). */
    if (!info_len_ok(len, sizeof(r), r.argsz) || r.flags != 0 || r.count != 0)
        return -EINVAL;

    *out = r;
    return 0;
}

int
vfu_check_irq_info(const void *p, size_t len, unsigned nfds,
                   struct vfu_irq_info *out)
{
    struct vfu_irq_info i;

    if (nfds != 0 || len < sizeof(i))
        return -EINVAL;
    memcpy(&i, p, sizeof(i));
    if (!info_len_ok(len, sizeof(i), i.argsz))
        return -EINVAL;

    *out = i;
    return 0;
}

/* ---- DEVICE_SET_IRQS ---- */

static bool
irq_data_ok(const struct vfu_irq_set *s, size_t data_len, unsigned nfds,
            const uint8_t *data)
{
    switch (s->flags & VFU_IRQ_SET_DATA_MASK) {
    case VFU_IRQ_SET_DATA_NONE:
        return data_len == 0 && nfds == 0;
    case VFU_IRQ_SET_DATA_BOOL:
        if (data_len != s->count || nfds != 0)
            return false;
        for (size_t i = 0; i < data_len; i++) {
            if (data[i] > 1)
                return false;
        }
        return true;
    case VFU_IRQ_SET_DATA_EVENTFD:
        /* count fds assign, no fds de-assign; nothing else (§3.8). */
        return data_len == 0 && (nfds == 0 || nfds == s->count);
    default:
        return false;
    }
}

int
vfu_check_set_irqs(const void *p, size_t len, unsigned nfds,
                   struct vfu_irq_set *out, const uint8_t **data)
{
    const uint32_t known = VFU_IRQ_SET_DATA_MASK | VFU_IRQ_SET_ACTION_MASKS;
    struct vfu_irq_set s;
    const uint8_t *tail;

    if (len < sizeof(s))
        return -EINVAL;
    memcpy(&s, p, sizeof(s));
    tail = bytes(p) + sizeof(s);

    /* Here argsz is the request's own size, data included (§3). */
    if (s.argsz != len)
        return -EINVAL;
    if ((s.flags & ~known) != 0 ||
        !one_bit(s.flags & VFU_IRQ_SET_DATA_MASK) ||
        !one_bit(s.flags & VFU_IRQ_SET_ACTION_MASKS))
        return -EINVAL;
    /* start + count is a vector bound; it must not wrap 32 bits. */
    if (s.count > UINT32_MAX - s.start)
        return -EINVAL;
    if (!irq_data_ok(&s, len - sizeof(s), nfds, tail))
        return -EINVAL;

    *out = s;
    *data = (s.flags & VFU_IRQ_SET_DATA_BOOL) ? tail : NULL;
    return 0;
}

/* ---- REGION_READ / REGION_WRITE / REGION_WRITE_MULTI ---- */

static bool
xfer_count_ok(uint64_t count, uint32_t max_xfer)
{
    return count >= 1 && count <= max_xfer;
}

int
vfu_check_region_read(const void *p, size_t len, unsigned nfds,
                      uint32_t max_xfer, struct vfu_region_access *out)
{
    struct vfu_region_access a;

    if (nfds != 0 || len != sizeof(a))
        return -EINVAL;
    memcpy(&a, p, sizeof(a));
    if (!xfer_count_ok(a.count, max_xfer))
        return -EINVAL;

    *out = a;
    return 0;
}

int
vfu_check_region_write(const void *p, size_t len, unsigned nfds,
                       uint32_t max_xfer, struct vfu_region_access *out,
                       const uint8_t **data)
{
    struct vfu_region_access a;

    if (nfds != 0 || len < sizeof(a))
        return -EINVAL;
    memcpy(&a, p, sizeof(a));
    if (!xfer_count_ok(a.count, max_xfer) || len - sizeof(a) != a.count)
        return -EINVAL;

    *out = a;
    *data = bytes(p) + sizeof(a);
    return 0;
}

/*
 * *entries points into the receive buffer at offset 8 of the payload, so
 * it is not aligned for the uint64_t inside each entry: callers must
 * memcpy each entry into a local struct before using its fields (and must
 * never take the address of a member).
 */
int
vfu_check_write_multi(const void *p, size_t len, unsigned nfds,
                      uint64_t *wr_cnt,
                      const struct vfu_write_multi_entry **entries)
{
    const size_t esz = sizeof(struct vfu_write_multi_entry);
    struct vfu_write_multi_entry e;
    const uint8_t *arr;
    uint64_t n;

    if (nfds != 0 || len < sizeof(n))
        return -EINVAL;
    memcpy(&n, p, sizeof(n));
    /* n is bounded before the multiplication, which therefore cannot wrap. */
    if (n < 1 || n > VFU_WRITE_MULTI_MAX)
        return -EINVAL;
    if (len - sizeof(n) != n * esz)
        return -EINVAL;

    arr = bytes(p) + sizeof(n);
    for (uint64_t i = 0; i < n; i++) {
        memcpy(&e, arr + i * esz, esz);
        if (e.count < 1 || e.count > sizeof(e.data))
            return -EINVAL;
    }

    *wr_cnt = n;
    *entries = (const struct vfu_write_multi_entry *)arr;
    return 0;
}

/* ---- DEVICE_FEATURE ---- */

int
vfu_check_device_feature(const void *p, size_t len, unsigned nfds,
                         struct vfu_device_feature *out,
                         const uint8_t **data, size_t *data_len)
{
    const uint32_t ops = VFU_FEATURE_GET | VFU_FEATURE_SET |
                         VFU_FEATURE_PROBE;
    struct vfu_device_feature f;

    if (nfds != 0 || len < sizeof(f))
        return -EINVAL;
    memcpy(&f, p, sizeof(f));

    if (f.argsz < sizeof(f))
        return -EINVAL;
    if ((f.flags & ~(VFU_FEATURE_MASK | ops)) != 0 || (f.flags & ops) == 0)
        return -EINVAL;
    /* GET and SET are exclusive unless probing for both (§3.13). */
    if ((f.flags & VFU_FEATURE_GET) && (f.flags & VFU_FEATURE_SET) &&
        !(f.flags & VFU_FEATURE_PROBE))
        return -EINVAL;

    *out = f;
    *data = bytes(p) + sizeof(f);
    *data_len = len - sizeof(f);
    return 0;
}

/* ---- DEVICE_FEATURE: DMA logging ---- */

static bool
log_pgsize_ok(uint64_t ps)
{
    return ps >= 4096 && (ps & (ps - 1)) == 0;
}

int
vfu_check_dma_logging_control(const void *p, size_t len,
                              struct vfu_dma_logging_control *out,
                              const uint8_t **ranges)
{
    struct vfu_dma_logging_control c;
    struct vfu_dma_logging_range rg;

    if (len < sizeof(c))
        return -EINVAL;
    memcpy(&c, p, sizeof(c));
    if (c.reserved != 0 || !log_pgsize_ok(c.page_size) ||
        len - sizeof(c) != (uint64_t)c.num_ranges * sizeof(rg))
        return -EINVAL;
    for (uint32_t i = 0; i < c.num_ranges; i++) {
        memcpy(&rg, bytes(p) + sizeof(c) + (size_t)i * sizeof(rg), sizeof(rg));
        if (rg.length == 0 || rg.length - 1 > UINT64_MAX - rg.iova)
            return -EINVAL;
    }
    *out = c;
    *ranges = bytes(p) + sizeof(c);
    return 0;
}

void
vfu_dma_logging_range_at(const uint8_t *ranges, uint32_t i, uint64_t *start,
                         uint64_t *last)
{
    struct vfu_dma_logging_range rg;

    memcpy(&rg, ranges + (size_t)i * sizeof(rg), sizeof(rg));
    *start = rg.iova;
    *last = rg.iova + (rg.length - 1);
}

int
vfu_check_dma_logging_report(const void *p, size_t len,
                             struct vfu_dma_logging_report *out,
                             uint64_t *nr_pages, uint64_t *bitmap_bytes)
{
    struct vfu_dma_logging_report rq;
    uint64_t ps, nr;

    if (len != sizeof(rq))
        return -EINVAL;
    memcpy(&rq, p, sizeof(rq));
    ps = rq.page_size;
    if (!log_pgsize_ok(ps) || rq.length == 0 ||
        rq.length - 1 > UINT64_MAX - rq.iova || (rq.iova & (ps - 1)) != 0)
        return -EINVAL;
    nr = (rq.length - 1) / ps + 1;
    *out = rq;
    *nr_pages = nr;
    *bitmap_bytes = (nr / 64 + (nr % 64 != 0)) * sizeof(uint64_t);
    return 0;
}

/* ---- no payload (DEVICE_RESET and the like) ---- */

int
vfu_check_no_payload(const void *p, size_t len, unsigned nfds)
{
    (void)p;
    return len == 0 && nfds == 0 ? 0 : -EINVAL;
}

/* ---- DMA_READ / DMA_WRITE, as received by the client ---- */

int
vfu_check_dma_access_req(const void *p, size_t len, unsigned nfds,
                         bool is_write, uint32_t max_xfer,
                         struct vfu_dma_access *out, const uint8_t **data)
{
    struct vfu_dma_access a;

    if (nfds != 0 || len < sizeof(a))
        return -EINVAL;
    memcpy(&a, p, sizeof(a));

    if (!xfer_count_ok(a.count, max_xfer))
        return -EINVAL;
    /* DMA_WRITE carries the data; DMA_READ's comes back in the reply. */
    if (len - sizeof(a) != (is_write ? a.count : 0))
        return -EINVAL;
    if (!end_ok(a.addr, a.count))
        return -EINVAL;

    *out = a;
    *data = is_write ? bytes(p) + sizeof(a) : NULL;
    return 0;
}
