/*
 * fuzz_server_dev.c - the test device fuzz_server serves clients with.
 *
 * Everything a device can ask of the library, so that every handler has
 * something to act on: PCI Express ids and capabilities (PM, MSI, MSI-X,
 * PCIe, vendor), a config-space hook, a memory BAR trapped to a callback
 * with the MSI-X table and PBA in it, an I/O BAR, a 64-bit BAR backed by a
 * memfd with two sparse mmap areas, a read-only ROM, a device-specific
 * region with more sparse areas than a small reply holds, ioeventfds on
 * trapped and on mmappable ranges, INTx/ERR/REQ, and DMA, reset, command
 * and irq-state callbacks.
 *
 * The callbacks are also checkers: each abort()s when the library hands
 * it something the API promises it never will (an access outside the
 * region or into a range the library serves itself, an unmap callback for
 * a region never accepted or a second one, overlap candidates that do not
 * overlap).  They misbehave on purpose in a few places (failing or short
 * register accesses, refused maps) to exercise the library's side.
 */
#include <errno.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "fuzz_server.h"

#define REGION_PRIV ((void *)0x5eed)

mu_ctx_t *g_ctx;
char g_path[128];
bool fs_verbose;
bool fs_reset_fails;
struct fs_live fs_live[FS_MAX_LIVE];
struct fs_cnt fs_cnt;

static char g_dir[64];
static uint8_t bar0[FS_BAR0_SIZE], bar2[FS_BAR2_SIZE], bar4[FS_BAR4_SIZE];
static uint8_t rom[4096], dev9[FS_DEV9_SIZE], cfg_hook[FS_CFG_HOOK_LEN];

static bool overlaps(uint64_t off, uint64_t count, uint64_t start,
                     uint64_t len)
{
    return off < start + len && start < off + count;
}

/* The callback's side of the region contract (muser.h). */
static void access_ok(uint64_t off, size_t count, uint64_t size)
{
    check(count >= 1 && off < size && count <= size - off);
}

static ssize_t bar0_cb(mu_ctx_t *ctx, void *buf, size_t count, uint64_t off,
                       bool is_write)
{
    (void)ctx;
    access_ok(off, count, FS_BAR0_SIZE);
    /* The library serves the MSI-X table and PBA itself. */
    check(!overlaps(off, count, FS_MSIX_TABLE_OFF, FS_MSIX_VECS * 16));
    check(!overlaps(off, count, FS_MSIX_PBA_OFF, 8));
    /* A few registers misbehave, to exercise the library's side. */
    if (off >= 0xf00 && off < 0xf10)
        return -EIO;
    if (off >= 0xf10 && off < 0xf20)
        return count > 1 ? (ssize_t)count - 1 : 4096;
    if (is_write)
        memcpy(bar0 + off, buf, count);
    else
        memcpy(buf, bar0 + off, count);
    return (ssize_t)count;
}

static ssize_t bar2_cb(mu_ctx_t *ctx, void *buf, size_t count, uint64_t off,
                       bool is_write)
{
    (void)ctx;
    access_ok(off, count, FS_BAR2_SIZE);
    if (is_write)
        memcpy(bar2 + off, buf, count);
    else
        memcpy(buf, bar2 + off, count);
    return (ssize_t)count;
}

static ssize_t bar4_cb(mu_ctx_t *ctx, void *buf, size_t count, uint64_t off,
                       bool is_write)
{
    (void)ctx;
    access_ok(off, count, FS_BAR4_SIZE);
    /* The sparse areas go to the fd, never here. */
    check(!overlaps(off, count, FS_BAR4_AREA0, FS_BAR4_AREA0_LEN));
    check(!overlaps(off, count, FS_BAR4_AREA1, FS_BAR4_AREA1_LEN));
    if (is_write)
        memcpy(bar4 + off, buf, count);
    else
        memcpy(buf, bar4 + off, count);
    return (ssize_t)count;
}

static ssize_t rom_cb(mu_ctx_t *ctx, void *buf, size_t count, uint64_t off,
                      bool is_write)
{
    (void)ctx;
    access_ok(off, count, sizeof(rom));
    check(!is_write);   /* a read-only region */
    memcpy(buf, rom + off, count);
    return (ssize_t)count;
}

static ssize_t dev9_cb(mu_ctx_t *ctx, void *buf, size_t count, uint64_t off,
                       bool is_write)
{
    (void)ctx;
    access_ok(off, count, sizeof(dev9));
    /* Only its two trapping pages reach the callback. */
    check((off >= FS_DEV9_TRAP0 && off + count <= FS_DEV9_TRAP0 + 4096) ||
          (off >= FS_DEV9_TRAP1 && off + count <= FS_DEV9_TRAP1 + 4096));
    if (is_write)
        memcpy(dev9 + off, buf, count);
    else
        memcpy(buf, dev9 + off, count);
    return (ssize_t)count;
}

static ssize_t cfg_cb(mu_ctx_t *ctx, void *buf, size_t count, uint64_t off,
                      bool is_write)
{
    (void)ctx;
    check(off >= FS_CFG_HOOK_OFF);
    access_ok(off - FS_CFG_HOOK_OFF, count, FS_CFG_HOOK_LEN);
    off -= FS_CFG_HOOK_OFF;
    if (is_write)
        memcpy(cfg_hook + off, buf, count);
    else
        memcpy(buf, cfg_hook + off, count);
    return (ssize_t)count;
}

static void log_cb(mu_ctx_t *ctx, enum mu_log_level level, const char *msg)
{
    (void)ctx;
    /* Formatting every message (debug included) is part of the test:
     * a bad format argument would show here. */
    check((unsigned)level <= MU_LOG_DEBUG && strlen(msg) < 512);
    if (fs_verbose)
        fprintf(stderr, "  lib: %s\n", msg);
}

static int reset_cb(mu_ctx_t *ctx, enum mu_reset_type type)
{
    (void)ctx;
    check(type == MU_RESET_CLIENT || type == MU_RESET_FLR ||
          type == MU_RESET_LOST);
    fs_cnt.resets++;
    return type != MU_RESET_LOST && fs_reset_fails ? -EIO : 0;
}

static void command_cb(mu_ctx_t *ctx, uint16_t old_cmd, uint16_t new_cmd)
{
    (void)ctx;
    check(old_cmd != new_cmd);
}

static void irq_state_cb(mu_ctx_t *ctx, enum mu_irq_type type, bool enabled)
{
    check((unsigned)type < MU_IRQ_NUM);
    fs_cnt.irq_states++;
    /* Allowed from the callback: raise the first vector right away. */
    if (enabled)
        mu_irq_trigger(ctx, type, 0);
}

static void live_add(const struct mu_dma_info *i)
{
    for (unsigned k = 0; k < FS_MAX_LIVE; k++) {
        if (!fs_live[k].used) {
            fs_live[k] = (struct fs_live){ i->iova, i->size, i->has_fd, true };
            return;
        }
    }
}

static void live_del(const struct mu_dma_info *i)
{
    for (unsigned k = 0; k < FS_MAX_LIVE; k++) {
        if (fs_live[k].used && fs_live[k].iova == i->iova &&
            fs_live[k].size == i->size) {
            fs_live[k].used = false;
            return;
        }
    }
}

/* mu_dma_get's promise: entries cover [iova, iova + len) in order. */
void fs_check_sg(const mu_sg_t *sg, int n, uint64_t iova, size_t len,
                     unsigned max)
{
    uint64_t cur = iova;
    size_t total = 0;

    check(n >= 1 && (unsigned)n <= max);
    for (int i = 0; i < n; i++) {
        check(sg[i].iova == cur && sg[i].len > 0 && sg[i].addr != NULL);
        cur += sg[i].len;
        total += sg[i].len;
    }
    check(total == len);
}

/*
 * Read or write through a translation, so a bad mapping faults here: the
 * first and last byte of each entry (one mapping each: a wrong base, a
 * short mapping or a read-only one shows there).  Not every byte: each
 * page first touched costs a fault (~20 us on a VM), and the regions are
 * fresh memfds every input.
 */
void fs_touch(mu_sg_t *sg, int n, bool write)
{
    for (int i = 0; i < n; i++) {
        volatile uint8_t *p = sg[i].addr;

        if (write) {
            p[0] = 0x5a;
            p[sg[i].len - 1] = 0x5a;
        } else {
            (void)p[0];
            (void)p[sg[i].len - 1];
        }
    }
}

static int map_cb(mu_ctx_t *ctx, mu_dma_region_t *r)
{
    const struct mu_dma_info *i = mu_dma_region_info(r);

    check(i->size != 0 && i->size - 1 <= UINT64_MAX - i->iova);
    check(i->prot != 0 && (i->prot & ~(unsigned)(MU_DMA_READ | MU_DMA_WRITE)) == 0);
    if (i->iova & FS_MAP_REFUSE_BIT)
        return -EPERM;      /* refused: no unmap callback may follow */
    fs_cnt.maps++;
    live_add(i);
    mu_dma_region_set_priv(r, REGION_PRIV);
    /* Translate from the map callback (allowed: the region is in the
     * table already); this also faults in the mapping early. */
    if (i->has_fd && (i->iova & 0x1000) && i->size <= 0x10000) {
        mu_sg_t sg[2];
        unsigned prot = i->prot & MU_DMA_WRITE ? MU_DMA_WRITE : MU_DMA_READ;
        int n = mu_dma_get(ctx, i->iova, (size_t)i->size, prot, sg, 2);

        if (n > 0) {
            fs_check_sg(sg, n, i->iova, (size_t)i->size, 2);
            fs_touch(sg, n, prot == MU_DMA_WRITE);
            mu_dma_put(ctx, sg, (unsigned)n);
        }
    }
    return 0;
}

static void unmap_cb(mu_ctx_t *ctx, mu_dma_region_t *r,
                     enum mu_unmap_reason why)
{
    (void)ctx;
    /* Only regions whose map callback accepted them, exactly once. */
    check(mu_dma_region_priv(r) == REGION_PRIV);
    check((unsigned)why <= MU_UNMAP_DESTROY);
    mu_dma_region_set_priv(r, NULL);
    fs_cnt.unmaps++;
    live_del(mu_dma_region_info(r));
}

enum mu_overlap_policy fs_overlap_cb(mu_ctx_t *ctx,
                                     const struct mu_dma_info *in,
                                     mu_dma_region_t *const *old, size_t n)
{
    uint64_t last = in->iova + (in->size - 1);

    (void)ctx;
    check(n >= 1);
    for (size_t k = 0; k < n; k++) {
        const struct mu_dma_info *o = mu_dma_region_info(old[k]);
        uint64_t olast = o->iova + (o->size - 1);

        check(o->iova <= last && in->iova <= olast);
        if (k > 0)
            check(mu_dma_region_info(old[k - 1])->iova < o->iova);
    }
    /* Alternate, so both policies are exercised. */
    return fs_cnt.overlaps++ & 1 ? MU_OVERLAP_REPLACE : MU_OVERLAP_REJECT;
}

const struct fs_live *fs_pick_region(unsigned sel, bool want_fdless)
{
    const struct fs_live *found = NULL;

    for (unsigned k = 0; k < FS_MAX_LIVE; k++) {
        unsigned i = (sel + k) % FS_MAX_LIVE;

        if (fs_live[i].used && (!want_fdless || !fs_live[i].has_fd)) {
            found = &fs_live[i];
            break;
        }
    }
    return found;
}

/* The doorbell's fetch: one request at a time, its buffer the library's
 * until the callback. */
static struct {
    bool busy;
    uint8_t buf[64];
} db_req;

static void db_req_done(mu_ctx_t *ctx, void *arg, int status)
{
    (void)ctx;
    check(arg == &db_req && db_req.busy);
    check(status <= 0 && status >= -4095);
    db_req.busy = false;
}

/* The doorbell of a device like NVMe: an ioeventfd fires and the device
 * fetches from guest memory without an fd, on the context thread: with a
 * request (the blocking copy refuses there: it would wait for itself). */
static void ioeventfd_cb(mu_ctx_t *ctx, uint64_t which)
{
    const struct fs_live *l;
    uint8_t buf[64];
    int rc;

    check(which <= 3);
    fs_cnt.ioevents++;
    if (which == 0 && (l = fs_pick_region((unsigned)fs_cnt.ioevents, true)) != NULL) {
        size_t n = l->size < sizeof(buf) ? l->size : sizeof(buf);

        /* Never waits: refused at once (or stopped, or not readable). */
        rc = mu_dma_read(ctx, l->iova, buf, n);
        check(rc == -EDEADLK || rc == -EPERM || rc == -EACCES);
        if (!db_req.busy) {
            rc = mu_dma_read_async(ctx, l->iova, db_req.buf, n, db_req_done,
                                   &db_req);
            check(rc <= 0 && rc >= -4095);
            db_req.busy = rc == 0;
        }
    }
}

static void teardown(void)
{
    mu_ctx_destroy(g_ctx);
    g_ctx = NULL;
    rmdir(g_dir);
}

#define TRY(x)                                                          \
    do {                                                                \
        int rc_ = (x);                                                  \
        if (rc_ < 0) {                                                  \
            fprintf(stderr, "setup: %s: %s\n", #x, strerror(-rc_));     \
            abort();                                                    \
        }                                                               \
    } while (0)

void fs_device_setup(void)
{
    static const struct mu_mmap_area areas[] = {
        { FS_BAR4_AREA0, FS_BAR4_AREA0_LEN },
        { FS_BAR4_AREA1, FS_BAR4_AREA1_LEN },
    };
    static const uint8_t vendor[8] = { 'm', 'u', 's', 'e', 'r', 'f', 'z' };
    struct mu_pci_ids ids = {
        .vendor_id = 0x494f, .device_id = 0x0dc8, .subsys_vendor_id = 0x494f,
        .subsys_id = 0x1, .class_code = 0xff0000, .revision = 1, .irq_pin = 1,
    };
    struct mu_mmap_area dev9_areas[14];
    unsigned nr9 = 0;
    int fd;

    snprintf(g_dir, sizeof(g_dir), "/tmp/muser-fuzz-XXXXXX");
    check(mkdtemp(g_dir) != NULL);
    snprintf(g_path, sizeof(g_path), "%s/sock", g_dir);
    TRY(mu_ctx_create(&g_ctx, g_path, MU_DEV_PCIE, NULL));
    atexit(teardown);
    fs_link_setup(g_ctx);
    TRY(mu_ctx_set_log(g_ctx, log_cb, MU_LOG_DEBUG));

    /* Short timeouts: a stuck exchange costs milliseconds, not seconds. */
    TRY(mu_ctx_set_limit(g_ctx, MU_LIMIT_SEND_TIMEOUT_MS, FS_TIMEOUT_MS));
    TRY(mu_ctx_set_limit(g_ctx, MU_LIMIT_RECV_TIMEOUT_MS, FS_TIMEOUT_MS));
    TRY(mu_ctx_set_limit(g_ctx, MU_LIMIT_DATA_XFER, FS_DATA_XFER));
    TRY(mu_ctx_set_limit(g_ctx, MU_LIMIT_MSG_SIZE, FS_MSG_SIZE));
    TRY(mu_ctx_set_limit(g_ctx, MU_LIMIT_DMA_REGIONS, 32));
    TRY(mu_ctx_set_limit(g_ctx, MU_LIMIT_DMA_PENDING, 4));
    TRY(mu_ctx_set_limit(g_ctx, MU_LIMIT_DMA_MAPPED_BYTES, 0x20000));
    TRY(mu_ctx_set_limit(g_ctx, MU_LIMIT_DMA_IDLE_MS, 10));
    /* The client picks region sizes (2^63 bytes without an fd): with the
     * default 64 MiB budget, starting dirty logging allocated (and ASan
     * cleared and poisoned) megabytes per input.  64 KiB still gives a
     * bitmap to regions up to 2 GiB at 4 KiB pages, and refuses the rest,
     * so both sides of the budget are reached. */
    TRY(mu_ctx_set_limit(g_ctx, MU_LIMIT_DIRTY_BITMAP_BYTES, 0x10000));

    TRY(mu_pci_set_ids(g_ctx, &ids));
    TRY(mu_pci_hook_config(g_ctx, FS_CFG_HOOK_OFF, FS_CFG_HOOK_LEN, cfg_cb));
    TRY(mu_pci_add_pm(g_ctx));
    TRY(mu_pci_add_msi(g_ctx, FS_MSI_VECS, true));
    TRY(mu_pci_add_msix(g_ctx, FS_MSIX_VECS, MU_PCI_BAR0, FS_MSIX_TABLE_OFF,
                        MU_PCI_BAR0, FS_MSIX_PBA_OFF));
    TRY(mu_pci_add_pcie(g_ctx, MU_PCIE_ENDPOINT));
    TRY(mu_pci_add_vendor(g_ctx, vendor, sizeof(vendor)));
    TRY(mu_pci_set_command_cb(g_ctx, command_cb));

    TRY(mu_region_setup(g_ctx, MU_PCI_BAR0, FS_BAR0_SIZE,
                        MU_REGION_RW | MU_REGION_MEM, bar0_cb));
    TRY(mu_region_setup(g_ctx, MU_PCI_BAR2, FS_BAR2_SIZE, MU_REGION_RW,
                        bar2_cb));
    TRY(mu_region_setup(g_ctx, MU_PCI_BAR4, FS_BAR4_SIZE,
                        MU_REGION_RW | MU_REGION_MEM | MU_REGION_MEM64 |
                        MU_REGION_PREFETCH, bar4_cb));
    TRY(mu_region_setup(g_ctx, MU_PCI_ROM, sizeof(rom), MU_REGION_READ,
                        rom_cb));
    TRY(mu_region_setup(g_ctx, 9, sizeof(dev9), MU_REGION_RW, dev9_cb));
    fd = memfd_create("bar4", MFD_CLOEXEC | MFD_ALLOW_SEALING);
    check(fd >= 0 && ftruncate(fd, FS_BAR4_SIZE) == 0);
    TRY(mu_region_set_mmap(g_ctx, MU_PCI_BAR4, fd, 0, areas,
                           ARRAY_SIZE(areas)));
    close(fd);
    /* Enough sparse areas that the region info reply outgrows the
     * context's small reply buffer. */
    for (uint64_t off = 0; off < FS_DEV9_SIZE; off += 4096) {
        if (off != FS_DEV9_TRAP0 && off != FS_DEV9_TRAP1)
            dev9_areas[nr9++] = (struct mu_mmap_area){ off, 4096 };
    }
    fd = memfd_create("dev9", MFD_CLOEXEC | MFD_ALLOW_SEALING);
    check(fd >= 0 && ftruncate(fd, FS_DEV9_SIZE) == 0);
    TRY(mu_region_set_mmap(g_ctx, 9, fd, 0, dev9_areas, nr9));
    close(fd);
    TRY(mu_region_add_ioeventfd(g_ctx, MU_PCI_BAR0, FS_IOEVENTFD0_OFF, 4,
                                false, 0, -1, ioeventfd_cb, 0));
    TRY(mu_region_add_ioeventfd(g_ctx, MU_PCI_BAR2, FS_IOEVENTFD1_OFF, 2,
                                true, FS_IOEVENTFD1_VAL, -1, ioeventfd_cb, 1));
    /* In mmappable areas: a socket write there kicks them too. */
    TRY(mu_region_add_ioeventfd(g_ctx, MU_PCI_BAR4, FS_IOEVENTFD2_OFF, 4,
                                true, FS_IOEVENTFD2_VAL, -1, ioeventfd_cb, 2));
    TRY(mu_region_add_ioeventfd(g_ctx, MU_PCI_BAR4, FS_IOEVENTFD3_OFF, 0,
                                false, 0, -1, ioeventfd_cb, 3));

    TRY(mu_irq_setup(g_ctx, MU_IRQ_INTX, 1));
    TRY(mu_irq_setup(g_ctx, MU_IRQ_ERR, 1));
    TRY(mu_irq_setup(g_ctx, MU_IRQ_REQ, 1));
    TRY(mu_irq_set_state_cb(g_ctx, irq_state_cb));
    TRY(mu_ctx_set_reset_cb(g_ctx, reset_cb));
    TRY(mu_dma_set_callbacks(g_ctx, map_cb, unmap_cb));

    TRY(mu_ctx_realize(g_ctx));
}
