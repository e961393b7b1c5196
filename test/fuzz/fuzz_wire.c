/*
 * fuzz_wire.c - the pure decoders of lib/wire.c and lib/caps.c.
 *
 * Input: [selector] [nfds] [aux] [payload...] (fuzz.h, FW_*).  The payload
 * is copied into a heap block of exactly its size, one byte past malloc's
 * alignment, so ASan sees any read past the end and UBSan any misaligned
 * load, just as a payload sitting 16 bytes into a receive buffer would be
 * at the mercy of its sender.
 *
 * Besides "no crash, no leak" each checker is held to its contract in
 * wire.h: on failure no output is written (outputs are pre-filled with a
 * pattern and compared), on success the output is the fixed part of the
 * payload and the properties the checks promise hold (no wrapping range,
 * data pointers inside the payload, lengths that add up).  The caps codec
 * must round-trip: whatever parses, once built and parsed again, gives the
 * same capabilities.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "wire.h"

#define FILL 0xa5

#define check(cond)                                                     \
    do {                                                                \
        if (!(cond)) {                                                  \
            fprintf(stderr, "%s:%d: property failed: %s\n", __FILE__,   \
                    __LINE__, #cond);                                   \
            abort();                                                    \
        }                                                               \
    } while (0)

static const uint32_t max_sizes[] = { 16, 16 + 64, 16 + 16 + (1u << 20),
                                      UINT32_MAX };
static const uint32_t max_xfers[] = { 1, 8, 4096, 1u << 20 };

static bool untouched(const void *p, size_t len)
{
    const uint8_t *b = p;

    for (size_t i = 0; i < len; i++) {
        if (b[i] != FILL)
            return false;
    }
    return true;
}

/* [a, a + n) lies inside [base, base + len). */
static bool inside(const uint8_t *a, size_t n, const uint8_t *base,
                   size_t len)
{
    return a >= base && (size_t)(a - base) <= len &&
           n <= len - (size_t)(a - base);
}

static bool no_wrap(uint64_t start, uint64_t size)
{
    return size != 0 && size - 1 <= UINT64_MAX - start;
}

static void fuzz_hdr(const uint8_t *p, size_t len, uint8_t aux)
{
    struct vfu_hdr h;
    uint32_t max = max_sizes[aux % 4];
    int rc;

    if (len < sizeof(h))
        return;
    memcpy(&h, p, sizeof(h));
    rc = vfu_hdr_check(&h, max);
    check(rc == 0 || rc == -EINVAL || rc == -EMSGSIZE);
    if (rc == 0) {
        check(h.size >= VFU_HDR_SIZE && h.size <= max);
        check((h.flags & ~VFU_F_KNOWN) == 0);
        if (h.flags & VFU_F_ERROR)
            check(vfu_hdr_is_reply(&h) && h.size == VFU_HDR_SIZE &&
                  h.error != 0);
        else
            check(h.error == 0);
    }
    (void)vfu_cmd_name(h.cmd);
}

static void fuzz_version(const uint8_t *p, size_t len, unsigned nfds)
{
    struct vfu_version v;
    const char *json;
    size_t json_len;
    int rc;

    memset(&v, FILL, sizeof(v));
    memset(&json, FILL, sizeof(json));
    memset(&json_len, FILL, sizeof(json_len));
    rc = vfu_check_version(p, len, nfds, &v, &json, &json_len);
    if (rc < 0) {
        check(untouched(&v, sizeof(v)) && untouched(&json, sizeof(json)) &&
              untouched(&json_len, sizeof(json_len)));
        return;
    }
    check(nfds == 0 && memcmp(&v, p, sizeof(v)) == 0);
    if (json == NULL) {
        check(json_len == 0 && len == sizeof(v));
    } else {
        check(inside((const uint8_t *)json, json_len, p, len));
        check(json_len == len - sizeof(v) && json[json_len - 1] == '\0' &&
              strlen(json) == json_len - 1);
    }
}

static void fuzz_dma_map(const uint8_t *p, size_t len, unsigned nfds)
{
    struct vfu_dma_map m;

    memset(&m, FILL, sizeof(m));
    if (vfu_check_dma_map(p, len, nfds, &m) < 0) {
        check(untouched(&m, sizeof(m)));
        return;
    }
    check(len == sizeof(m) && memcmp(&m, p, sizeof(m)) == 0 && nfds <= 1);
    check(m.argsz == sizeof(m) && no_wrap(m.addr, m.size));
    check((m.flags & ~3u) == 0 && (m.flags & 3u) != 0);
    if (nfds == 1)
        check(no_wrap(m.offset, m.size));
}

static void fuzz_dma_unmap(const uint8_t *p, size_t len, unsigned nfds)
{
    struct vfu_dma_unmap u;

    memset(&u, FILL, sizeof(u));
    if (vfu_check_dma_unmap(p, len, nfds, &u) < 0) {
        check(untouched(&u, sizeof(u)));
        return;
    }
    check(nfds == 0 && memcmp(&u, p, sizeof(u)) == 0);
    if (u.flags & VFU_DMA_UNMAP_FLAG_ALL)
        check(u.addr == 0 && u.size == 0);
    else
        check(no_wrap(u.addr, u.size));
    if (!(u.flags & VFU_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP))
        check(len == sizeof(u));
}

/* Three 16-byte "info" requests share one shape (region info is 32). */
static void fuzz_info(int sel, const uint8_t *p, size_t len, unsigned nfds)
{
    uint8_t out[16];
    int rc;

    memset(out, FILL, sizeof(out));
    switch (sel) {
    case FW_DEVICE_INFO:
        rc = vfu_check_device_get_info(p, len, nfds,
                                       (struct vfu_device_info *)out);
        break;
    case FW_IO_FDS:
        rc = vfu_check_region_io_fds(p, len, nfds,
                                     (struct vfu_region_io_fds *)out);
        break;
    default:
        rc = vfu_check_irq_info(p, len, nfds, (struct vfu_irq_info *)out);
        break;
    }
    if (rc < 0) {
        check(untouched(out, sizeof(out)));
        return;
    }
    /* Accepted: the fixed part is copied out, and the payload may be the
     * client's whole argsz buffer (len up to argsz), never past it. */
    uint32_t argsz;
    memcpy(&argsz, out, sizeof(argsz));
    check(nfds == 0 && len >= sizeof(out) && memcmp(out, p, sizeof(out)) == 0 &&
          argsz >= sizeof(out) && len <= argsz);
    check(rc == 0);
}

static void fuzz_region_info(const uint8_t *p, size_t len, unsigned nfds)
{
    struct vfu_region_info r;

    memset(&r, FILL, sizeof(r));
    if (vfu_check_region_info(p, len, nfds, &r) < 0) {
        check(untouched(&r, sizeof(r)));
        return;
    }
    check(nfds == 0 && len >= sizeof(r) && memcmp(&r, p, sizeof(r)) == 0 &&
          r.argsz >= sizeof(r) && len <= r.argsz);
}

static void fuzz_set_irqs(const uint8_t *p, size_t len, unsigned nfds)
{
    struct vfu_irq_set s;
    const uint8_t *data;
    uint32_t d, a;

    memset(&s, FILL, sizeof(s));
    memset(&data, FILL, sizeof(data));
    if (vfu_check_set_irqs(p, len, nfds, &s, &data) < 0) {
        check(untouched(&s, sizeof(s)) && untouched(&data, sizeof(data)));
        return;
    }
    check(memcmp(&s, p, sizeof(s)) == 0 && s.argsz == len);
    d = s.flags & VFU_IRQ_SET_DATA_MASK;
    a = s.flags & VFU_IRQ_SET_ACTION_MASKS;
    check(d != 0 && (d & (d - 1)) == 0 && a != 0 && (a & (a - 1)) == 0);
    check((s.flags & ~(VFU_IRQ_SET_DATA_MASK | VFU_IRQ_SET_ACTION_MASKS)) == 0);
    check(s.count <= UINT32_MAX - s.start);
    if (d == VFU_IRQ_SET_DATA_BOOL) {
        check(data == p + sizeof(s) && len - sizeof(s) == s.count &&
              nfds == 0);
        for (uint32_t i = 0; i < s.count; i++)
            check(data[i] <= 1);
    } else {
        check(data == NULL && len == sizeof(s));
        if (d == VFU_IRQ_SET_DATA_EVENTFD)
            check(nfds == 0 || nfds == s.count);
        else
            check(nfds == 0);
    }
}

static void fuzz_region_rw(bool write, const uint8_t *p, size_t len,
                           unsigned nfds, uint8_t aux)
{
    uint32_t max = max_xfers[aux % 4];
    struct vfu_region_access a;
    const uint8_t *data;
    int rc;

    memset(&a, FILL, sizeof(a));
    memset(&data, FILL, sizeof(data));
    if (write)
        rc = vfu_check_region_write(p, len, nfds, max, &a, &data);
    else
        rc = vfu_check_region_read(p, len, nfds, max, &a);
    if (rc < 0) {
        check(untouched(&a, sizeof(a)) && untouched(&data, sizeof(data)));
        return;
    }
    check(nfds == 0 && memcmp(&a, p, sizeof(a)) == 0);
    check(a.count >= 1 && a.count <= max);
    if (write)
        check(data == p + sizeof(a) && len - sizeof(a) == a.count);
    else
        check(len == sizeof(a) && untouched(&data, sizeof(data)));
}

static void fuzz_write_multi(const uint8_t *p, size_t len, unsigned nfds)
{
    const struct vfu_write_multi_entry *e;
    uint64_t n;

    memset(&n, FILL, sizeof(n));
    memset(&e, FILL, sizeof(e));
    if (vfu_check_write_multi(p, len, nfds, &n, &e) < 0) {
        check(untouched(&n, sizeof(n)) && untouched(&e, sizeof(e)));
        return;
    }
    check(nfds == 0 && n >= 1 && n <= VFU_WRITE_MULTI_MAX);
    check((const uint8_t *)e == p + 8 && len == 8 + n * sizeof(*e));
    for (uint64_t i = 0; i < n; i++) {
        struct vfu_write_multi_entry w;

        /* as the header says: copy out, the array is not aligned */
        memcpy(&w, (const uint8_t *)e + i * sizeof(w), sizeof(w));
        check(w.count >= 1 && w.count <= sizeof(w.data));
    }
}

static void fuzz_feature(const uint8_t *p, size_t len, unsigned nfds)
{
    struct vfu_device_feature f;
    const uint8_t *data;
    size_t dlen;

    memset(&f, FILL, sizeof(f));
    memset(&data, FILL, sizeof(data));
    memset(&dlen, FILL, sizeof(dlen));
    if (vfu_check_device_feature(p, len, nfds, &f, &data, &dlen) < 0) {
        check(untouched(&f, sizeof(f)) && untouched(&data, sizeof(data)) &&
              untouched(&dlen, sizeof(dlen)));
        return;
    }
    check(nfds == 0 && memcmp(&f, p, sizeof(f)) == 0 && f.argsz >= sizeof(f));
    check(data == p + sizeof(f) && dlen == len - sizeof(f));
    check((f.flags & (VFU_FEATURE_GET | VFU_FEATURE_SET |
                      VFU_FEATURE_PROBE)) != 0);
}

static void fuzz_dma_access(const uint8_t *p, size_t len, unsigned nfds,
                            uint8_t aux)
{
    bool is_write = aux & 0x80;
    uint32_t max = max_xfers[aux % 4];
    struct vfu_dma_access a;
    const uint8_t *data;

    memset(&a, FILL, sizeof(a));
    memset(&data, FILL, sizeof(data));
    if (vfu_check_dma_access_req(p, len, nfds, is_write, max, &a, &data) < 0) {
        check(untouched(&a, sizeof(a)) && untouched(&data, sizeof(data)));
        return;
    }
    check(nfds == 0 && memcmp(&a, p, sizeof(a)) == 0);
    check(a.count >= 1 && a.count <= max && no_wrap(a.addr, a.count));
    if (is_write)
        check(data == p + sizeof(a) && len - sizeof(a) == a.count);
    else
        check(data == NULL && len == sizeof(a));
}

static bool caps_equal(const struct vfu_caps *a, const struct vfu_caps *b)
{
    return a->max_msg_fds == b->max_msg_fds &&
           a->max_data_xfer_size == b->max_data_xfer_size &&
           a->max_dma_maps == b->max_dma_maps && a->pgsizes == b->pgsizes &&
           a->write_multiple == b->write_multiple &&
           a->mig_pgsize == b->mig_pgsize;
}

static void fuzz_caps_parse(const uint8_t *p, size_t len)
{
    struct vfu_caps c;
    int rc;

    memset(&c, FILL, sizeof(c));
    rc = vfu_caps_parse((const char *)p, len, &c);
    check(rc == 0 || rc == -EINVAL || rc == -ENOMEM);
    if (rc < 0)
        check(untouched(&c, sizeof(c)));
}

/*
 * Whatever parses must survive build + parse unchanged.  twin_socket is
 * the exception the builder documents: it is never built (its reply form
 * needs an fd index only the connection code knows).
 */
static void fuzz_caps_roundtrip(const uint8_t *p, size_t len)
{
    struct vfu_caps a, b;
    char *text = malloc(len + 1);
    char out[1024];
    int n;

    if (text == NULL)
        return;
    memcpy(text, p, len);
    text[len] = '\0';
    if (vfu_caps_parse(text, len + 1, &a) == 0) {
        n = vfu_caps_build(&a, out, sizeof(out));
        check(n > 0 && (size_t)n <= sizeof(out) && out[n - 1] == '\0' &&
              strlen(out) == (size_t)n - 1);
        memset(&b, FILL, sizeof(b));
        check(vfu_caps_parse(out, (size_t)n, &b) == 0);
        check(caps_equal(&a, &b) && !b.twin_socket);
        /* A buffer one byte short must be refused, not overrun. */
        check(vfu_caps_build(&a, out, (size_t)n - 1) == -ENOSPC);
    }
    free(text);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint8_t *base, *p;
    size_t len;
    unsigned nfds;
    uint8_t aux;
    int sel;

    if (size < FW_HDR_BYTES)
        return 0;
    sel = data[0] % FW_NUM;
    nfds = data[1];
    aux = data[2];
    len = size - FW_HDR_BYTES;

    /* Exactly len bytes, misaligned, so overreads and unaligned loads are
     * caught.  p is not NULL even for len 0: the checkers may not care. */
    base = malloc(len + 1);
    if (base == NULL)
        return 0;
    p = base + 1;
    memcpy(p, data + FW_HDR_BYTES, len);

    switch (sel) {
    case FW_HDR:
        fuzz_hdr(p, len, aux);
        break;
    case FW_VERSION:
        fuzz_version(p, len, nfds);
        break;
    case FW_DMA_MAP:
        fuzz_dma_map(p, len, nfds);
        break;
    case FW_DMA_UNMAP:
        fuzz_dma_unmap(p, len, nfds);
        break;
    case FW_REGION_INFO:
        fuzz_region_info(p, len, nfds);
        break;
    case FW_DEVICE_INFO:
    case FW_IO_FDS:
    case FW_IRQ_INFO:
        fuzz_info(sel, p, len, nfds);
        break;
    case FW_SET_IRQS:
        fuzz_set_irqs(p, len, nfds);
        break;
    case FW_REGION_READ:
    case FW_REGION_WRITE:
        fuzz_region_rw(sel == FW_REGION_WRITE, p, len, nfds, aux);
        break;
    case FW_WRITE_MULTI:
        fuzz_write_multi(p, len, nfds);
        break;
    case FW_DEVICE_FEATURE:
        fuzz_feature(p, len, nfds);
        break;
    case FW_NO_PAYLOAD:
        check((vfu_check_no_payload(p, len, nfds) == 0) ==
              (len == 0 && nfds == 0));
        break;
    case FW_DMA_ACCESS:
        fuzz_dma_access(p, len, nfds, aux);
        break;
    case FW_CAPS_PARSE:
        fuzz_caps_parse(p, len);
        break;
    case FW_CAPS_ROUNDTRIP:
        fuzz_caps_roundtrip(p, len);
        break;
    }
    free(base);
    return 0;
}
