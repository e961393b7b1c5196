/*
 * gen_corpus.c - write the seed corpus of the fuzz harnesses.
 *
 *     rm -rf test/fuzz/corpus && build-fuzz/test/fuzz/gen_corpus test/fuzz/corpus
 *
 * Seeds are valid inputs in each harness's format (fuzz.h): every command
 * the server takes, alone and in whole sessions, for fuzz_server; the
 * payload of every request check, for fuzz_wire; the replies a correct
 * server sends to the client's call sequence, for fuzz_client.  The fuzzer
 * mutates from there, so it starts past the handshake and the framing.
 * The output is deterministic and committed; rerun this after changing a
 * format or the test device.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fuzz.h"
#include "wire.h"

/* Config space layout of fuzz_server's device: capabilities in the order
 * setup() adds them (PM 8, MSI 64-bit 24, MSI-X 12, PCIe 0x3c bytes). */
#define CFG_COMMAND   0x04
#define CFG_BAR0      0x10
#define CAP_MSI       0x48
#define CAP_MSIX      0x60
#define CAP_PCIE      0x6c

struct buf {
    uint8_t d[1 << 17];
    size_t n;
};

static const char *outdir;

static void put(struct buf *b, const void *p, size_t len)
{
    if (len == 0)
        return;     /* p may be NULL */
    if (b->n + len > sizeof(b->d)) {
        fprintf(stderr, "gen_corpus: seed too big\n");
        exit(1);
    }
    memcpy(b->d + b->n, p, len);
    b->n += len;
}

static void u8(struct buf *b, uint8_t v)
{
    put(b, &v, 1);
}

static void u16(struct buf *b, uint16_t v)
{
    put(b, &v, 2);
}

static void save(const char *harness, const char *name, const struct buf *b)
{
    char path[512];
    FILE *f;

    snprintf(path, sizeof(path), "%s/%s", outdir, harness);
    if (mkdir(path, 0755) < 0 && errno != EEXIST) {
        perror(path);
        exit(1);
    }
    snprintf(path, sizeof(path), "%s/%s/%s", outdir, harness, name);
    f = fopen(path, "wb");
    if (f == NULL || fwrite(b->d, 1, b->n, f) != b->n || fclose(f) != 0) {
        perror(path);
        exit(1);
    }
}

/* ---------------- payloads ---------------- */

/* A payload under construction: the fixed part and what follows. */
struct pl {
    uint8_t d[4096];
    size_t n;
};

static void pl_put(struct pl *p, const void *v, size_t len)
{
    if (len == 0)
        return;
    memcpy(p->d + p->n, v, len);
    p->n += len;
}

#define PL(p, ...)                                                      \
    do {                                                                \
        __typeof__(__VA_ARGS__) v_ = __VA_ARGS__;                       \
        pl_put((p), &v_, sizeof(v_));                                   \
    } while (0)

static const char caps_json[] =
    "{\"capabilities\":{\"max_msg_fds\":8,\"max_data_xfer_size\":65536,"
    "\"max_dma_maps\":64,\"pgsizes\":4096,\"write_multiple\":true,"
    "\"migration\":{\"pgsize\":4096,\"max_bitmap_size\":1048576},"
    "\"twin_socket\":{\"supported\":false}}}";

static struct pl version(bool json)
{
    struct pl p = { .n = 0 };

    PL(&p, (struct vfu_version){ VFU_VERSION_MAJOR, VFU_VERSION_MINOR });
    if (json)
        pl_put(&p, caps_json, sizeof(caps_json));
    return p;
}

static struct pl dma_map(uint64_t iova, uint64_t size, uint32_t flags,
                         uint64_t offset)
{
    struct pl p = { .n = 0 };

    PL(&p, (struct vfu_dma_map){ 32, flags, offset, iova, size });
    return p;
}

static struct pl dma_unmap(uint32_t flags, uint64_t iova, uint64_t size)
{
    struct pl p = { .n = 0 };

    PL(&p, (struct vfu_dma_unmap){ 24, flags, iova, size });
    return p;
}

static struct pl info16(uint32_t argsz, uint32_t index)
{
    struct pl p = { .n = 0 };

    /* device info, io fds and irq info share the layout */
    PL(&p, (struct vfu_irq_info){ argsz, 0, index, 0 });
    return p;
}

static struct pl region_info(uint32_t argsz, uint32_t index)
{
    struct pl p = { .n = 0 };

    PL(&p, (struct vfu_region_info){ .argsz = argsz, .index = index });
    return p;
}

static struct pl set_irqs(uint32_t flags, uint32_t index, uint32_t start,
                          uint32_t count, const uint8_t *data)
{
    struct pl p = { .n = 0 };
    uint32_t dlen = (flags & VFU_IRQ_SET_DATA_BOOL) ? count : 0;

    PL(&p, (struct vfu_irq_set){ 20 + dlen, flags, index, start, count });
    if (dlen)
        pl_put(&p, data, dlen);
    return p;
}

static struct pl region_rw(uint32_t region, uint64_t off, uint32_t count,
                           const void *wdata)
{
    struct pl p = { .n = 0 };

    PL(&p, (struct vfu_region_access){ off, region, count });
    if (wdata != NULL)
        pl_put(&p, wdata, count);
    return p;
}

static struct pl write_multi(void)
{
    struct pl p = { .n = 0 };
    struct vfu_write_multi_entry e[2] = {
        { 0x0, 0, 4, { 1, 2, 3, 4 } },
        { 0x20, 2, 2, { 0xaa, 0x55 } },
    };

    PL(&p, (uint64_t)2);
    pl_put(&p, e, sizeof(e));
    return p;
}

static struct pl log_start(uint32_t nr)
{
    struct pl p = { .n = 0 };

    PL(&p, (struct vfu_device_feature){
        (uint32_t)(8 + 16 + 16 * nr),
        VFU_FEATURE_SET | VFU_FEATURE_DMA_LOGGING_START });
    PL(&p, (struct vfu_dma_logging_control){ 4096, nr, 0 });
    for (uint32_t i = 0; i < nr; i++)
        PL(&p, (struct vfu_dma_logging_range){ 0x100000 + i * 0x10000,
                                               0x10000 });
    return p;
}

static struct pl log_report(uint64_t iova, uint64_t len)
{
    struct pl p = { .n = 0 };
    uint64_t pages = (len + 4095) / 4096;

    PL(&p, (struct vfu_device_feature){
        (uint32_t)(8 + 24 + (pages + 63) / 64 * 8),
        VFU_FEATURE_GET | VFU_FEATURE_DMA_LOGGING_REPORT });
    PL(&p, (struct vfu_dma_logging_report){ iova, len, 4096 });
    return p;
}

static struct pl feature(uint32_t flags)
{
    struct pl p = { .n = 0 };

    PL(&p, (struct vfu_device_feature){ 8, flags });
    return p;
}

/* DMA_UNMAP with the old scheme's dirty bitmap request. */
static struct pl p_dirty_unmap(void)
{
    struct pl p = dma_unmap(1, 0x10000, 0x2000);

    PL(&p, (uint64_t)4096);
    PL(&p, (uint64_t)8);
    return p;
}

static struct pl u32v(uint32_t v)
{
    struct pl p = { .n = 0 };

    PL(&p, v);
    return p;
}

static struct pl empty(void)
{
    struct pl p = { .n = 0 };

    return p;
}

/* ---------------- fuzz_wire ---------------- */

static void wire_seed(const char *name, enum fw_sel sel, uint8_t nfds,
                      uint8_t aux, const void *p, size_t len)
{
    struct buf b = { .n = 0 };

    u8(&b, (uint8_t)sel);
    u8(&b, nfds);
    u8(&b, aux);
    put(&b, p, len);
    save("fuzz_wire", name, &b);
}

#define WIRE(name, sel, nfds, aux, val)                                 \
    do {                                                                \
        struct pl w_ = val;                                             \
        wire_seed(name, sel, nfds, aux, w_.d, w_.n);                    \
    } while (0)

static void gen_wire(void)
{
    static const uint8_t bools[2] = { 1, 0 };
    struct vfu_hdr h;
    struct pl p;

    vfu_hdr_init(&h, 1, VFU_CMD_VERSION, 56, VFU_F_TYPE_COMMAND, 0);
    wire_seed("hdr-command", FW_HDR, 0, 2, &h, sizeof(h));
    vfu_hdr_init(&h, 2, VFU_CMD_REGION_READ, 16, VFU_F_TYPE_REPLY | VFU_F_ERROR, 22);
    wire_seed("hdr-error-reply", FW_HDR, 0, 2, &h, sizeof(h));
    vfu_hdr_init(&h, 3, VFU_CMD_DMA_READ, 32, VFU_F_NO_REPLY, 0);
    wire_seed("hdr-no-reply", FW_HDR, 0, 1, &h, sizeof(h));

    WIRE("version-json", FW_VERSION, 0, 0, version(true));
    WIRE("version-bare", FW_VERSION, 0, 0, version(false));
    WIRE("dma-map-fd", FW_DMA_MAP, 1, 0, dma_map(0x10000, 0x2000, 3, 0x1000));
    WIRE("dma-map-nofd", FW_DMA_MAP, 0, 0, dma_map(0x10000, 0x2000, 1, 0));
    WIRE("dma-map-top", FW_DMA_MAP, 0, 0,
         dma_map(0xfffffffffffff000ull, 0x1000, 2, 0));
    WIRE("dma-unmap", FW_DMA_UNMAP, 0, 0, dma_unmap(0, 0x10000, 0x2000));
    WIRE("dma-unmap-all", FW_DMA_UNMAP, 0, 0, dma_unmap(2, 0, 0));
    p = dma_unmap(1, 0x10000, 0x2000);
    PL(&p, (uint64_t)4096);
    PL(&p, (uint64_t)8);
    PL(&p, (uint64_t)0);
    WIRE("dma-unmap-dirty", FW_DMA_UNMAP, 0, 0, p);
    WIRE("device-info", FW_DEVICE_INFO, 0, 0, info16(16, 0));
    WIRE("region-info", FW_REGION_INFO, 0, 0, region_info(32 + 1024, 7));
    WIRE("io-fds", FW_IO_FDS, 0, 0, info16(16 + 2 * 40, 0));
    WIRE("irq-info", FW_IRQ_INFO, 0, 0, info16(16, 2));
    WIRE("set-irqs-eventfd", FW_SET_IRQS, 2, 0,
         set_irqs(VFU_IRQ_SET_DATA_EVENTFD | VFU_IRQ_SET_ACTION_TRIGGER, 2, 0,
                  2, NULL));
    WIRE("set-irqs-bool", FW_SET_IRQS, 0, 0,
         set_irqs(VFU_IRQ_SET_DATA_BOOL | VFU_IRQ_SET_ACTION_MASK, 2, 0, 2,
                  bools));
    WIRE("set-irqs-none", FW_SET_IRQS, 0, 0,
         set_irqs(VFU_IRQ_SET_DATA_NONE | VFU_IRQ_SET_ACTION_TRIGGER, 1, 0, 0,
                  NULL));
    WIRE("region-read", FW_REGION_READ, 0, 2, region_rw(7, 0, 4, NULL));
    WIRE("region-write", FW_REGION_WRITE, 0, 2,
         region_rw(7, 4, 4, "\x06\x04\x00\x00"));
    WIRE("write-multi", FW_WRITE_MULTI, 0, 0, write_multi());
    WIRE("feature-log-start", FW_DEVICE_FEATURE, 0, 0, log_start(2));
    WIRE("feature-log-report", FW_DEVICE_FEATURE, 0, 0,
         log_report(0x100000, 0x10000));
    WIRE("feature-log-stop", FW_DEVICE_FEATURE, 0, 0,
         feature(VFU_FEATURE_SET | VFU_FEATURE_DMA_LOGGING_STOP));
    WIRE("feature-probe", FW_DEVICE_FEATURE, 0, 0,
         feature(VFU_FEATURE_PROBE | VFU_FEATURE_GET | VFU_FEATURE_SET |
                 VFU_FEATURE_MIGRATION));
    WIRE("no-payload", FW_NO_PAYLOAD, 0, 0, empty());
    p = empty();
    PL(&p, (struct vfu_dma_access){ 0x10000, 16 });
    WIRE("dma-read-req", FW_DMA_ACCESS, 0, 2, p);
    PL(&p, (uint32_t)0xdeadbeef);
    p.n -= 16 + 4;
    PL(&p, (struct vfu_dma_access){ 0x10000, 4 });
    PL(&p, (uint32_t)0xdeadbeef);
    WIRE("dma-write-req", FW_DMA_ACCESS, 0, 0x82, p);
    wire_seed("caps-parse", FW_CAPS_PARSE, 0, 0, caps_json, sizeof(caps_json));
    wire_seed("caps-roundtrip", FW_CAPS_ROUNDTRIP, 0, 0, caps_json,
              sizeof(caps_json) - 1);
}

/* ---------------- fuzz_server ---------------- */

static void s_msg(struct buf *b, uint8_t cmd, uint8_t flagsel,
                  const struct pl *p, const uint8_t *fds, unsigned nfds)
{
    u8(b, FS_OP(FS_OP_MSG, nfds));
    u8(b, cmd);
    u8(b, flagsel);
    u16(b, (uint16_t)p->n);
    put(b, fds, nfds);
    put(b, p->d, p->n);
}

#define MSG(b, cmd, val)                                                \
    do {                                                                \
        struct pl m_ = val;                                             \
        s_msg(b, cmd, 0, &m_, NULL, 0);                                 \
    } while (0)

#define MSG_FDS(b, cmd, val, ...)                                       \
    do {                                                                \
        struct pl m_ = val;                                             \
        static const uint8_t f_[] = { __VA_ARGS__ };                    \
        s_msg(b, cmd, 0, &m_, f_, sizeof(f_));                          \
    } while (0)

static void s_poll(struct buf *b)
{
    u8(b, FS_OP(FS_OP_POLL, 1));
}

static void s_dma(struct buf *b, uint8_t sel, uint8_t off, uint8_t len,
                  uint8_t mode)
{
    u8(b, FS_OP(FS_OP_DMA, 0));
    u8(b, sel);
    u8(b, off);
    u8(b, len);
    u8(b, mode);
}

static const uint8_t flags_std = FS_F_VERSION | FS_F_WRITE_MULTI |
                                 (FS_REPLY_OK << FS_F_REPLY_SHIFT);

/* One message after the handshake; fds from a spec list. */
static void server_one(const char *name, uint8_t flags, uint8_t cmd,
                       struct pl p, const uint8_t *fds, unsigned nfds)
{
    struct buf b = { .n = 0 };

    u8(&b, flags);
    s_msg(&b, cmd, 0, &p, fds, nfds);
    s_poll(&b);
    save("fuzz_server", name, &b);
}

static void cfg_write(struct buf *b, uint32_t off, uint32_t count,
                      uint32_t val)
{
    MSG(b, VFU_CMD_REGION_WRITE, region_rw(7, off, count, &val));
}

static void session_discovery(struct buf *b)
{
    MSG(b, VFU_CMD_DEVICE_GET_INFO, info16(16, 0));
    for (uint32_t i = 0; i <= 9; i++)
        MSG(b, VFU_CMD_DEVICE_GET_REGION_INFO, region_info(32 + 1024, i));
    MSG(b, VFU_CMD_DEVICE_GET_REGION_INFO, region_info(32, 4));
    for (uint32_t i = 0; i < 5; i++)
        MSG(b, VFU_CMD_DEVICE_GET_IRQ_INFO, info16(16, i));
    MSG(b, VFU_CMD_DEVICE_GET_REGION_IO_FDS, info16(16 + 40, 0));
    MSG(b, VFU_CMD_DEVICE_GET_REGION_IO_FDS, info16(16, 2));
    s_poll(b);
    u8(b, FS_OP(FS_OP_DRAIN, 1));   /* kick the ioeventfds */
    s_poll(b);
}

static void session_irqs(struct buf *b)
{
    static const uint8_t on_off[2] = { 1, 0 };

    MSG_FDS(b, VFU_CMD_DEVICE_SET_IRQS,
            set_irqs(VFU_IRQ_SET_DATA_EVENTFD | VFU_IRQ_SET_ACTION_TRIGGER, 2,
                     0, 2, NULL),
            FZ_FD(FZ_FD_EVENTFD, 1), FZ_FD(FZ_FD_EVENTFD, 1));
    MSG_FDS(b, VFU_CMD_DEVICE_SET_IRQS,
            set_irqs(VFU_IRQ_SET_DATA_EVENTFD | VFU_IRQ_SET_ACTION_TRIGGER, 0,
                     0, 1, NULL),
            FZ_FD(FZ_FD_EVENTFD, 0));
    MSG_FDS(b, VFU_CMD_DEVICE_SET_IRQS,
            set_irqs(VFU_IRQ_SET_DATA_EVENTFD | VFU_IRQ_SET_ACTION_UNMASK, 0,
                     0, 1, NULL),
            FZ_FD(FZ_FD_EVENTFD, 1));
    MSG_FDS(b, VFU_CMD_DEVICE_SET_IRQS,
            set_irqs(VFU_IRQ_SET_DATA_EVENTFD | VFU_IRQ_SET_ACTION_TRIGGER, 1,
                     0, 1, NULL),
            FZ_FD(FZ_FD_EVENTFD, 1));
    MSG(b, VFU_CMD_DEVICE_SET_IRQS,
        set_irqs(VFU_IRQ_SET_DATA_NONE | VFU_IRQ_SET_ACTION_MASK, 2, 0, 1, NULL));
    MSG(b, VFU_CMD_DEVICE_SET_IRQS,
        set_irqs(VFU_IRQ_SET_DATA_NONE | VFU_IRQ_SET_ACTION_UNMASK, 2, 0, 1,
                 NULL));
    MSG(b, VFU_CMD_DEVICE_SET_IRQS,
        set_irqs(VFU_IRQ_SET_DATA_BOOL | VFU_IRQ_SET_ACTION_TRIGGER, 2, 0, 2,
                 on_off));
    s_poll(b);
    u8(b, FS_OP(FS_OP_IRQ, VFU_IRQ_MSIX));
    u8(b, 0);
    u8(b, FS_OP(FS_OP_IRQ, VFU_IRQ_INTX));
    u8(b, 0);
    u8(b, FS_OP(FS_OP_IRQ, VFU_IRQ_MSI));
    u8(b, 1);
    MSG(b, VFU_CMD_DEVICE_SET_IRQS,
        set_irqs(VFU_IRQ_SET_DATA_EVENTFD | VFU_IRQ_SET_ACTION_TRIGGER, 2, 1,
                 1, NULL));
    MSG(b, VFU_CMD_DEVICE_SET_IRQS,
        set_irqs(VFU_IRQ_SET_DATA_NONE | VFU_IRQ_SET_ACTION_TRIGGER, 0, 0, 0,
                 NULL));
    s_poll(b);
}

static void session_regions(struct buf *b)
{
    static const uint8_t bytes8[8] = { 1, 2, 3, 4, 5, 6, 7, 8 };

    MSG(b, VFU_CMD_REGION_READ, region_rw(7, 0, 64, NULL));
    MSG(b, VFU_CMD_REGION_READ, region_rw(7, 0x40, 0x80, NULL));
    cfg_write(b, CFG_COMMAND, 2, 0x0407);       /* IO, MEM, master, INTx off */
    cfg_write(b, CFG_COMMAND, 2, 0x0006);
    cfg_write(b, CFG_BAR0, 4, 0xffffffff);      /* BAR sizing */
    MSG(b, VFU_CMD_REGION_READ, region_rw(7, CFG_BAR0, 4, NULL));
    cfg_write(b, CFG_BAR0, 4, 0xfe000000);
    cfg_write(b, CAP_MSI + 2, 2, 0x0001);       /* MSI enable */
    cfg_write(b, CAP_MSIX + 2, 2, 0x8000);      /* MSI-X enable */
    cfg_write(b, FS_CFG_HOOK_OFF, 4, 0x12345678);
    MSG(b, VFU_CMD_REGION_READ, region_rw(7, FS_CFG_HOOK_OFF, 8, NULL));
    /* MSI-X table: address, data, unmask vector 0; PBA */
    MSG(b, VFU_CMD_REGION_WRITE,
        region_rw(0, FS_MSIX_TABLE_OFF, 8, bytes8));
    MSG(b, VFU_CMD_REGION_WRITE,
        region_rw(0, FS_MSIX_TABLE_OFF + 12, 4, "\0\0\0\0"));
    MSG(b, VFU_CMD_REGION_READ, region_rw(0, FS_MSIX_TABLE_OFF, 8, NULL));
    MSG(b, VFU_CMD_REGION_READ, region_rw(0, FS_MSIX_PBA_OFF, 8, NULL));
    /* the device's own registers */
    MSG(b, VFU_CMD_REGION_WRITE, region_rw(0, 0, 8, bytes8));
    MSG(b, VFU_CMD_REGION_READ, region_rw(0, 0, 8, NULL));
    MSG(b, VFU_CMD_REGION_WRITE, region_rw(0, FS_IOEVENTFD0_OFF, 4, bytes8));
    MSG(b, VFU_CMD_REGION_READ, region_rw(0, 0xf00, 4, NULL));
    MSG(b, VFU_CMD_REGION_READ, region_rw(0, 0xf10, 4, NULL));
    MSG(b, VFU_CMD_REGION_WRITE, region_rw(2, FS_IOEVENTFD1_OFF, 2, "\x34\x12"));
    MSG(b, VFU_CMD_REGION_READ, region_rw(2, 0, 16, NULL));
    MSG(b, VFU_CMD_REGION_WRITE, region_rw(4, FS_BAR4_AREA0, 8, bytes8));
    MSG(b, VFU_CMD_REGION_READ, region_rw(4, FS_BAR4_AREA0, 8, NULL));
    MSG(b, VFU_CMD_REGION_WRITE, region_rw(4, FS_BAR4_AREA0_LEN, 8, bytes8));
    MSG(b, VFU_CMD_REGION_READ, region_rw(4, FS_BAR4_AREA0_LEN, 8, NULL));
    MSG(b, VFU_CMD_REGION_READ, region_rw(4, FS_BAR4_AREA1 - 4, 8, NULL));
    MSG(b, VFU_CMD_REGION_READ, region_rw(6, 0, 16, NULL));
    MSG(b, VFU_CMD_REGION_WRITE, region_rw(9, 0x10, 8, bytes8));
    MSG(b, VFU_CMD_REGION_READ, region_rw(9, 0x10, 8, NULL));
    MSG(b, VFU_CMD_REGION_WRITE, region_rw(9, FS_DEV9_TRAP0, 8, bytes8));
    MSG(b, VFU_CMD_REGION_READ, region_rw(9, FS_DEV9_TRAP1 + 8, 8, NULL));
    /* socket writes into mmappable areas that hold ioeventfds */
    MSG(b, VFU_CMD_REGION_WRITE,
        region_rw(4, FS_IOEVENTFD2_OFF, 4, "\xfe\xca\x00\x00"));
    MSG(b, VFU_CMD_REGION_WRITE, region_rw(4, FS_IOEVENTFD3_OFF, 2, "\1\2"));
    MSG(b, VFU_CMD_REGION_WRITE_MULTI, write_multi());
    s_poll(b);
}

static void session_dma(struct buf *b)
{
    /* 64 KiB with an fd, 4 KiB without, then overlapping maps */
    MSG_FDS(b, VFU_CMD_DMA_MAP, dma_map(0x100000, 0x10000, 3, 0),
            FZ_FD(FZ_FD_MEMFD, 16));
    MSG(b, VFU_CMD_DMA_MAP, dma_map(0x200000, 0x1000, 3, 0));
    MSG_FDS(b, VFU_CMD_DMA_MAP, dma_map(0x301000, 0x2000, 1, 0x1000),
            FZ_FD(FZ_FD_MEMFD_RO, 4));
    s_poll(b);
    s_dma(b, 0, 0, 15, 0);                              /* get, write */
    s_dma(b, 0, 4, 31, 1 | FS_DMA_THREAD);              /* get, read */
    s_dma(b, 1, 0, 3, 2 | FS_DMA_THREAD);               /* DMA_READ */
    s_dma(b, 1, 0, 3, 3 | FS_DMA_THREAD | FS_DMA_DIRTY); /* DMA_WRITE */
    MSG(b, VFU_CMD_DEVICE_FEATURE, log_start(0));
    s_poll(b);
    s_dma(b, 0, 8, 7, 3 | FS_DMA_DIRTY);
    MSG(b, VFU_CMD_DEVICE_FEATURE, log_report(0x100000, 0x10000));
    MSG(b, VFU_CMD_DEVICE_FEATURE,
        feature(VFU_FEATURE_SET | VFU_FEATURE_DMA_LOGGING_STOP));
    MSG_FDS(b, VFU_CMD_DMA_MAP, dma_map(0x108000, 0x1000, 3, 0),
            FZ_FD(FZ_FD_MEMFD, 1));
    MSG_FDS(b, VFU_CMD_DMA_MAP, dma_map(0x108000, 0x1000, 3, 0),
            FZ_FD(FZ_FD_MEMFD, 1));
    s_poll(b);
    MSG(b, VFU_CMD_DMA_UNMAP, dma_unmap(0, 0x200000, 0x1000));
    MSG(b, VFU_CMD_DMA_UNMAP, dma_unmap(0, 0x900000, 0x1000));
    MSG(b, VFU_CMD_DEVICE_RESET, empty());
    MSG(b, VFU_CMD_DMA_UNMAP, dma_unmap(2, 0, 0));
    s_poll(b);
}

/* Logging restricted to two (adjacent) ranges, device writes, report. */
static void session_log_ranges(struct buf *b)
{
    /* two adjacent 64 KiB regions (fd spec sizes stop at 31 pages) */
    MSG_FDS(b, VFU_CMD_DMA_MAP, dma_map(0x100000, 0x10000, 3, 0),
            FZ_FD(FZ_FD_MEMFD, 16));
    MSG_FDS(b, VFU_CMD_DMA_MAP, dma_map(0x110000, 0x10000, 3, 0),
            FZ_FD(FZ_FD_MEMFD, 16));
    MSG(b, VFU_CMD_DEVICE_FEATURE, log_start(2));
    s_poll(b);
    s_dma(b, 0, 0, 255, 0 | FS_DMA_LARGE);      /* 64 KiB, across both */
    s_dma(b, 1, 200, 3, 3 | FS_DMA_DIRTY);
    MSG(b, VFU_CMD_DEVICE_FEATURE, log_report(0x100000, 0x20000));
    MSG(b, VFU_CMD_DEVICE_FEATURE, log_report(0x0, 0x1000));
    MSG(b, VFU_CMD_DEVICE_FEATURE, log_start(0));       /* already: EBUSY */
    MSG(b, VFU_CMD_DEVICE_FEATURE,
        feature(VFU_FEATURE_SET | VFU_FEATURE_DMA_LOGGING_STOP));
    MSG(b, VFU_CMD_DEVICE_FEATURE, log_start(1));
    s_poll(b);
    s_dma(b, 1, 0, 255, 0 | FS_DMA_LARGE | FS_DMA_THREAD);
    MSG(b, VFU_CMD_DEVICE_FEATURE, log_report(0x100000, 0x20000));
    s_poll(b);
}

/* Mask/unmask eventfds the client keeps and signals. */
static void session_irq_fds(struct buf *b)
{
    MSG_FDS(b, VFU_CMD_DEVICE_SET_IRQS,
            set_irqs(VFU_IRQ_SET_DATA_EVENTFD | VFU_IRQ_SET_ACTION_TRIGGER, 2,
                     0, 1, NULL),
            FZ_FD(FZ_FD_EVENTFD, 1));
    MSG_FDS(b, VFU_CMD_DEVICE_SET_IRQS,
            set_irqs(VFU_IRQ_SET_DATA_EVENTFD | VFU_IRQ_SET_ACTION_MASK, 2,
                     0, 1, NULL),
            FZ_FD(FZ_FD_EVENTFD, 1));
    MSG_FDS(b, VFU_CMD_DEVICE_SET_IRQS,
            set_irqs(VFU_IRQ_SET_DATA_EVENTFD | VFU_IRQ_SET_ACTION_UNMASK, 0,
                     0, 1, NULL),
            FZ_FD(FZ_FD_EVENTFD, 1));
    s_poll(b);
    u8(b, FS_OP(FS_OP_DRAIN, 2));       /* signal them */
    s_poll(b);
    u8(b, FS_OP(FS_OP_IRQ, VFU_IRQ_MSIX));
    u8(b, 0);
    u8(b, FS_OP(FS_OP_DRAIN, 2));
    s_poll(b);
}

static void gen_server(void)
{
    static const uint8_t efd2[] = { FZ_FD(FZ_FD_EVENTFD, 1),
                                    FZ_FD(FZ_FD_EVENTFD, 1) };
    static const uint8_t mfd[] = { FZ_FD(FZ_FD_MEMFD, 4) };
    struct buf b = { .n = 0 };
    struct pl v = version(true);
    struct vfu_hdr h;

    /* the handshake itself, as raw bytes */
    vfu_hdr_init(&h, 1, VFU_CMD_VERSION, (uint32_t)(VFU_HDR_SIZE + v.n),
                 VFU_F_TYPE_COMMAND, 0);
    u8(&b, FS_REPLY_OK << FS_F_REPLY_SHIFT);
    u8(&b, FS_OP(FS_OP_SEND, 0));
    u16(&b, (uint16_t)(VFU_HDR_SIZE + v.n));
    put(&b, &h, sizeof(h));
    put(&b, v.d, v.n);
    s_poll(&b);
    MSG(&b, VFU_CMD_DEVICE_GET_INFO, info16(16, 0));
    s_poll(&b);
    save("fuzz_server", "raw-version-json", &b);
    server_one("version-bare", 0, VFU_CMD_VERSION, version(false), NULL, 0);

    /* every command alone, after the harness's handshake */
    server_one("dma-map-fd", flags_std, VFU_CMD_DMA_MAP,
               dma_map(0x10000, 0x4000, 3, 0), mfd, 1);
    server_one("dma-map-nofd", flags_std, VFU_CMD_DMA_MAP,
               dma_map(0x10000, 0x4000, 1, 0), NULL, 0);
    server_one("dma-unmap", flags_std, VFU_CMD_DMA_UNMAP,
               dma_unmap(0, 0x10000, 0x4000), NULL, 0);
    server_one("dma-unmap-all", flags_std, VFU_CMD_DMA_UNMAP,
               dma_unmap(2, 0, 0), NULL, 0);
    server_one("device-info", flags_std, VFU_CMD_DEVICE_GET_INFO,
               info16(16, 0), NULL, 0);
    server_one("region-info", flags_std, VFU_CMD_DEVICE_GET_REGION_INFO,
               region_info(32 + 1024, 4), NULL, 0);
    server_one("io-fds", flags_std, VFU_CMD_DEVICE_GET_REGION_IO_FDS,
               info16(16 + 40, 2), NULL, 0);
    server_one("irq-info", flags_std, VFU_CMD_DEVICE_GET_IRQ_INFO,
               info16(16, 2), NULL, 0);
    server_one("set-irqs-eventfd", flags_std, VFU_CMD_DEVICE_SET_IRQS,
               set_irqs(VFU_IRQ_SET_DATA_EVENTFD | VFU_IRQ_SET_ACTION_TRIGGER,
                        2, 0, 2, NULL), efd2, 2);
    server_one("set-irqs-mask", flags_std, VFU_CMD_DEVICE_SET_IRQS,
               set_irqs(VFU_IRQ_SET_DATA_NONE | VFU_IRQ_SET_ACTION_MASK, 2, 0,
                        4, NULL), NULL, 0);
    server_one("set-irqs-disable", flags_std, VFU_CMD_DEVICE_SET_IRQS,
               set_irqs(VFU_IRQ_SET_DATA_NONE | VFU_IRQ_SET_ACTION_TRIGGER, 2,
                        0, 0, NULL), NULL, 0);
    server_one("region-read-cfg", flags_std, VFU_CMD_REGION_READ,
               region_rw(7, 0, 64, NULL), NULL, 0);
    server_one("region-write-bar0", flags_std, VFU_CMD_REGION_WRITE,
               region_rw(0, 0x10, 4, "\1\2\3\4"), NULL, 0);
    server_one("reset", flags_std, VFU_CMD_DEVICE_RESET, empty(), NULL, 0);
    server_one("write-multi", flags_std, VFU_CMD_REGION_WRITE_MULTI,
               write_multi(), NULL, 0);
    server_one("log-start", flags_std, VFU_CMD_DEVICE_FEATURE, log_start(1),
               NULL, 0);
    server_one("log-report", flags_std, VFU_CMD_DEVICE_FEATURE,
               log_report(0x100000, 0x10000), NULL, 0);
    server_one("log-stop", flags_std, VFU_CMD_DEVICE_FEATURE,
               feature(VFU_FEATURE_SET | VFU_FEATURE_DMA_LOGGING_STOP), NULL,
               0);
    server_one("flr", flags_std, VFU_CMD_REGION_WRITE,
               region_rw(7, CAP_PCIE + 8, 2, "\x00\x80"), NULL, 0);
    server_one("unknown-cmd", flags_std, VFU_CMD_MIG_DATA_READ, u32v(8), NULL,
               0);

    b.n = 0;
    u8(&b, flags_std);
    MSG(&b, VFU_CMD_DMA_UNMAP, p_dirty_unmap());
    s_poll(&b);
    save("fuzz_server", "dma-unmap-dirty-flag", &b);

    /* one map more than the context takes (MU_LIMIT_DMA_REGIONS 32) */
    b.n = 0;
    u8(&b, flags_std);
    for (uint64_t i = 0; i < 33; i++)
        MSG(&b, VFU_CMD_DMA_MAP, dma_map(0x1000000 + i * 0x1000, 0x1000, 1, 0));
    s_poll(&b);
    save("fuzz_server", "dma-map-too-many", &b);

    /* a translation held while the client unmaps its region */
    b.n = 0;
    u8(&b, flags_std);
    MSG_FDS(&b, VFU_CMD_DMA_MAP, dma_map(0x40000, 0x4000, 3, 0),
            FZ_FD(FZ_FD_MEMFD, 4));
    s_poll(&b);
    MSG(&b, VFU_CMD_DMA_UNMAP, dma_unmap(0, 0x40000, 0x4000));
    s_dma(&b, 0, 0, 63, 1 | FS_DMA_THREAD | FS_DMA_HOLD);
    s_poll(&b);
    save("fuzz_server", "dma-unmap-while-held", &b);

    /* a client that takes one fd a message asks for BAR4's two ioeventfds */
    {
        static const char j1[] = "{\"capabilities\":{\"max_msg_fds\":1}}";
        struct pl v1 = version(false);

        pl_put(&v1, j1, sizeof(j1));
        b.n = 0;
        u8(&b, FS_REPLY_OK << FS_F_REPLY_SHIFT);
        MSG(&b, VFU_CMD_VERSION, v1);
        MSG(&b, VFU_CMD_DEVICE_GET_REGION_IO_FDS, info16(16 + 2 * 40, 4));
        MSG(&b, VFU_CMD_DEVICE_GET_REGION_INFO, region_info(32 + 1024, 9));
        s_poll(&b);
        save("fuzz_server", "version-one-fd", &b);
    }

    /* whole sessions */
    b.n = 0;
    u8(&b, flags_std);
    session_log_ranges(&b);
    save("fuzz_server", "session-log-ranges", &b);

    b.n = 0;
    u8(&b, flags_std);
    session_irq_fds(&b);
    save("fuzz_server", "session-irq-fds", &b);

    b.n = 0;
    u8(&b, flags_std);
    session_discovery(&b);
    save("fuzz_server", "session-discovery", &b);

    b.n = 0;
    u8(&b, flags_std);
    session_irqs(&b);
    save("fuzz_server", "session-irqs", &b);

    b.n = 0;
    u8(&b, flags_std);
    session_regions(&b);
    save("fuzz_server", "session-regions", &b);

    b.n = 0;
    u8(&b, flags_std | FS_F_OVERLAP_CB);
    session_dma(&b);
    save("fuzz_server", "session-dma", &b);

    b.n = 0;
    u8(&b, flags_std | FS_F_REPLACE | FS_F_RESET_UNMAPS);
    session_dma(&b);
    u8(&b, FS_OP(FS_OP_RECONNECT, 0));
    session_irqs(&b);
    u8(&b, FS_OP(FS_OP_RECONNECT, 1));  /* through the listening socket */
    session_discovery(&b);
    u8(&b, FS_OP(FS_OP_WAIT, 2));
    save("fuzz_server", "session-reconnect", &b);

    b.n = 0;
    u8(&b, flags_std | FS_F_OVERLAP_CB);
    session_discovery(&b);
    session_irqs(&b);
    session_regions(&b);
    session_dma(&b);
    save("fuzz_server", "session-all", &b);
}

/* ---------------- fuzz_client ---------------- */

/* A reply (or server command) whose header the harness writes. */
static void c_msg(struct buf *b, bool barrier, uint16_t id, uint16_t cmd,
                  uint8_t flags, uint8_t err, const struct pl *p,
                  const uint8_t *fds, unsigned nfds)
{
    u8(b, (uint8_t)(FC_C_HDR | nfds | (barrier ? FC_C_BARRIER : 0)));
    u16(b, id);
    u16(b, cmd);
    u8(b, flags);
    u8(b, err);
    put(b, fds, nfds);
    u16(b, (uint16_t)p->n);
    put(b, p->d, p->n);
}

enum cmode { C_OK, C_ERR };

struct csess {
    struct buf *b;
    uint16_t id;        /* the client's next msg_id */
    enum cmode mode;
    unsigned per;       /* the server's max_msg_fds, as the client knows it */
    bool barrier;       /* next chunk starts a group */
};

static void c_reply(struct csess *s, uint16_t cmd, struct pl p,
                    const uint8_t *fds, unsigned nfds)
{
    if (s->mode == C_ERR) {
        struct pl e = empty();

        c_msg(s->b, s->barrier, s->id++, cmd, VFU_F_TYPE_REPLY | VFU_F_ERROR,
              EINVAL, &e, NULL, 0);
    } else {
        c_msg(s->b, s->barrier, s->id++, cmd, VFU_F_TYPE_REPLY, 0, &p, fds,
              nfds);
    }
    s->barrier = false;
}

static struct pl cfg_reply(uint32_t off, uint32_t val, bool read)
{
    struct pl p = region_rw(7, off, 4, NULL);

    if (read)
        PL(&p, val);
    return p;
}

/*
 * The replies to the harness's call sequence (enum fc_call) from call
 * 'from' on.  Each call's replies form a group (barrier), except that the
 * first call's join the chunks queued before it when 'join' is set.
 */
static void client_session(struct csess *s, int from, bool join)
{
    static const uint8_t memfd16[] = { FZ_FD(FZ_FD_MEMFD, 16) };
    static const uint8_t efd[] = { FZ_FD(FZ_FD_EVENTFD, 1) };
    struct pl p;

    for (int k = from; k < FC_NUM_CALLS; k++) {
        s->barrier = k > 0 && !(k == from && join);
        switch (k) {
        case FC_DEVICE_INFO:
            p = empty();
            PL(&p, (struct vfu_device_info){ 16, 3, 10, 5 });
            c_reply(s, VFU_CMD_DEVICE_GET_INFO, p, NULL, 0);
            break;
        case FC_REGION_INFO_0:
            p = empty();
            PL(&p, (struct vfu_region_info){ 32, 3, 0, 0, 4096, 0 });
            c_reply(s, VFU_CMD_DEVICE_GET_REGION_INFO, p, NULL, 0);
            break;
        case FC_REGION_INFO_4:
            /* "too small" first (argsz 0x1100): the client asks again */
            if (s->mode == C_OK) {
                p = empty();
                PL(&p, (struct vfu_region_info){ 0x1100, 7, 4, 0, 0x10000, 0 });
                c_reply(s, VFU_CMD_DEVICE_GET_REGION_INFO, p, NULL, 0);
            }
            p = empty();
            PL(&p, (struct vfu_region_info){ 80, 0xf, 4, 32, 0x10000, 0 });
            PL(&p, (struct vfu_cap_sparse){ { VFU_CAP_SPARSE_MMAP, 1, 0 }, 2, 0 });
            PL(&p, (struct vfu_sparse_area){ 0, 0x4000 });
            PL(&p, (struct vfu_sparse_area){ 0x8000, 0x8000 });
            c_reply(s, VFU_CMD_DEVICE_GET_REGION_INFO, p, memfd16, 1);
            break;
        case FC_REGION_INFO_7:
            p = empty();
            PL(&p, (struct vfu_region_info){ 48, 0xb, 7, 32, 4096, 0 });
            PL(&p, (struct vfu_cap_type){ { VFU_CAP_TYPE, 1, 0 }, 1, 2 });
            c_reply(s, VFU_CMD_DEVICE_GET_REGION_INFO, p, NULL, 0);
            break;
        case FC_IRQ_INFO_2:
            p = empty();
            PL(&p, (struct vfu_irq_info){ 16, 0xb, FC_IRQ_INDEX, 16 });
            c_reply(s, VFU_CMD_DEVICE_GET_IRQ_INFO, p, NULL, 0);
            break;
        case FC_IO_FDS_0:
            p = empty();
            PL(&p, (struct vfu_region_io_fds){ 16 + 40, 0, 0, 1 });
            PL(&p, (struct vfu_sub_region_ioeventfd){ 0x100, 4, 0, 0, 0, 0, 0 });
            c_reply(s, VFU_CMD_DEVICE_GET_REGION_IO_FDS, p, efd, 1);
            break;
        case FC_REGION_READ:
            p = region_rw(FC_REGION_READ_IDX, FC_REGION_READ_OFF,
                          FC_REGION_READ_LEN, NULL);
            for (unsigned i = 0; i < FC_REGION_READ_LEN; i++)
                PL(&p, (uint8_t)i);
            c_reply(s, VFU_CMD_REGION_READ, p, NULL, 0);
            break;
        case FC_REGION_WRITE:
            c_reply(s, VFU_CMD_REGION_WRITE,
                    region_rw(FC_REGION_WRITE_IDX, FC_REGION_WRITE_OFF,
                              FC_REGION_WRITE_LEN, NULL), NULL, 0);
            break;
        case FC_BAR_SIZE_0:
            /* read 0, write ~0, read the mask, write the value back */
            c_reply(s, VFU_CMD_REGION_READ, cfg_reply(0x10, 0, true), NULL, 0);
            if (s->mode == C_ERR)
                break;
            c_reply(s, VFU_CMD_REGION_WRITE, cfg_reply(0x10, 0, false), NULL, 0);
            c_reply(s, VFU_CMD_REGION_READ, cfg_reply(0x10, 0xfffff000, true),
                    NULL, 0);
            c_reply(s, VFU_CMD_REGION_WRITE, cfg_reply(0x10, 0, false), NULL, 0);
            break;
        case FC_BAR_SIZE_1:
            /* BAR0 is not 64-bit, so BAR1 is probed: an absent one */
            c_reply(s, VFU_CMD_REGION_READ, cfg_reply(0x10, 0, true), NULL, 0);
            if (s->mode == C_ERR)
                break;
            c_reply(s, VFU_CMD_REGION_READ, cfg_reply(0x14, 0, true), NULL, 0);
            c_reply(s, VFU_CMD_REGION_WRITE, cfg_reply(0x14, 0, false), NULL, 0);
            c_reply(s, VFU_CMD_REGION_READ, cfg_reply(0x14, 0, true), NULL, 0);
            c_reply(s, VFU_CMD_REGION_WRITE, cfg_reply(0x14, 0, false), NULL, 0);
            break;
        case FC_DMA_MAP:
        case FC_DMA_MAP_MEM:
            c_reply(s, VFU_CMD_DMA_MAP, empty(), NULL, 0);
            break;
        case FC_SERVE: {
            struct pl w = empty(), r = empty();

            /* the server reaches the fd-less memory */
            PL(&w, (struct vfu_dma_access){ FC_MEM_IOVA + 8, 8 });
            PL(&w, (uint64_t)0x0123456789abcdefull);
            c_msg(s->b, true, 0x200, VFU_CMD_DMA_WRITE, 0, 0, &w, NULL, 0);
            PL(&r, (struct vfu_dma_access){ FC_MEM_IOVA, 16 });
            c_msg(s->b, false, 0x201, VFU_CMD_DMA_READ, 0, 0, &r, NULL, 0);
            break;
        }
        case FC_IRQ_SET_EVENTFDS:
            /* split into messages of at most the server's max_msg_fds */
            for (unsigned i = 0; i < FC_IRQ_COUNT; i += s->per) {
                c_reply(s, VFU_CMD_DEVICE_SET_IRQS, empty(), NULL, 0);
                if (s->mode == C_ERR)
                    break;
            }
            break;
        case FC_IRQ_MASK:
        case FC_IRQ_CLEAR:
            c_reply(s, VFU_CMD_DEVICE_SET_IRQS, empty(), NULL, 0);
            break;
        case FC_DIRTY_START:
            p = empty();
            PL(&p, (struct vfu_device_feature){
                40, VFU_FEATURE_SET | VFU_FEATURE_DMA_LOGGING_START });
            PL(&p, (struct vfu_dma_logging_control){ FC_DIRTY_PGSIZE, 1, 0 });
            PL(&p, (struct vfu_dma_logging_range){ 0, FC_DIRTY_LEN });
            c_reply(s, VFU_CMD_DEVICE_FEATURE, p, NULL, 0);
            break;
        case FC_DIRTY_REPORT:
            p = empty();
            PL(&p, (struct vfu_device_feature){
                40, VFU_FEATURE_GET | VFU_FEATURE_DMA_LOGGING_REPORT });
            PL(&p, (struct vfu_dma_logging_report){ 0, FC_DIRTY_LEN,
                                                    FC_DIRTY_PGSIZE });
            PL(&p, (uint64_t)0x8001);
            c_reply(s, VFU_CMD_DEVICE_FEATURE, p, NULL, 0);
            break;
        case FC_DIRTY_STOP:
            c_reply(s, VFU_CMD_DEVICE_FEATURE,
                    feature(VFU_FEATURE_SET | VFU_FEATURE_DMA_LOGGING_STOP),
                    NULL, 0);
            break;
        case FC_DMA_UNMAP:
            c_reply(s, VFU_CMD_DMA_UNMAP, dma_unmap(0, FC_DMA_IOVA, FC_DMA_SIZE),
                    NULL, 0);
            break;
        case FC_RESET:
            c_reply(s, VFU_CMD_DEVICE_RESET, empty(), NULL, 0);
            break;
        case FC_REQUEST:
            p = empty();
            PL(&p, (struct vfu_device_info){ 16, 3, 10, 5 });
            c_reply(s, FC_REQUEST_CMD, p, efd, 1);
            break;
        case FC_RECV_MSG:
            p = empty();
            c_msg(s->b, true, 0x300, VFU_CMD_DEVICE_GET_INFO, VFU_F_TYPE_REPLY,
                  0, &p, NULL, 0);
            break;
        case FC_DMA_UNMAP_ALL:
            c_reply(s, VFU_CMD_DMA_UNMAP, dma_unmap(2, 0, 0), NULL, 0);
            break;
        }
    }
}

static const char server_json[] =
    "{\"capabilities\":{\"max_msg_fds\":8,\"max_data_xfer_size\":65536,"
    "\"max_dma_maps\":64,\"pgsizes\":4096}}";

static void gen_client(void)
{
    struct buf b = { .n = 0 };
    struct csess s = { .b = &b, .id = 2, .mode = C_OK, .per = 8 };
    struct pl v = version(false), p = empty();

    u8(&b, FC_F_VERSION | FC_F_WRITE_MULTI);
    client_session(&s, 0, false);
    save("fuzz_client", "session-ok", &b);

    b.n = 0;
    s = (struct csess){ .b = &b, .id = 2, .mode = C_ERR, .per = 8 };
    u8(&b, FC_F_VERSION);
    client_session(&s, 0, false);
    save("fuzz_client", "session-errors", &b);

    /* the VERSION reply from the input (a client taking one fd a
     * message), and no handshake at all */
    b.n = 0;
    s = (struct csess){ .b = &b, .id = 1, .mode = C_OK, .per = 8 };
    pl_put(&v, server_json, sizeof(server_json));
    u8(&b, FC_F_NEGOTIATE | (1 << FC_F_FDS_SHIFT));
    c_reply(&s, VFU_CMD_VERSION, v, NULL, 0);
    client_session(&s, 0, true);
    save("fuzz_client", "session-negotiate", &b);

    b.n = 0;
    s = (struct csess){ .b = &b, .id = 1, .mode = C_OK,
                        .per = VFU_DEFAULT_MAX_MSG_FDS };
    u8(&b, 0);
    client_session(&s, 0, false);
    save("fuzz_client", "session-raw", &b);

    /* Nothing for the first call, which times out; its reply comes with
     * the next call's and is dropped as stale. */
    b.n = 0;
    u8(&b, FC_F_VERSION | FC_F_KEEP_OPEN);
    u8(&b, 0);          /* an empty raw chunk: the first group */
    u16(&b, 0);
    PL(&p, (struct vfu_device_info){ 16, 3, 10, 5 });
    c_msg(&b, true, 2, VFU_CMD_DEVICE_GET_INFO, VFU_F_TYPE_REPLY, 0, &p,
          NULL, 0);
    s = (struct csess){ .b = &b, .id = 3, .mode = C_OK, .per = 8 };
    client_session(&s, FC_REGION_INFO_0, true);
    save("fuzz_client", "late-reply", &b);
}

int main(int argc, char **argv)
{
    outdir = argc > 1 ? argv[1] : "test/fuzz/corpus";
    if (mkdir(outdir, 0755) < 0 && errno != EEXIST) {
        perror(outdir);
        return 1;
    }
    gen_wire();
    gen_server();
    gen_client();
    return 0;
}
