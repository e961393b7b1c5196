/*
 * pci.c - the PCI configuration space the library manages for the device.
 *
 * Every byte has three attributes kept in parallel arrays: its value, the
 * bits the guest may write (wmask) and the bits the guest clears by writing
 * 1 (w1cmask).  A config write is then one rule for all registers:
 *
 *     new = (old & ~wmask) | (val & wmask);  new &= ~(val & w1cmask);
 *
 * BAR sizing falls out of it: a BAR's wmask holds only the address bits
 * above its size, so writing all-ones reads back the size mask with the
 * read-only type bits.  Registers with side effects (command, MSI and MSI-X
 * control, PCIe device control for FLR) are compared before and after the
 * write and the change is reported.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "private.h"
#include "irq.h"
#include "range.h"
#include "zero.h"

/* Type-0 header offsets. */
#define CFG_VENDOR 0x00
#define CFG_DEVICE 0x02
#define CFG_COMMAND 0x04
#define CFG_STATUS 0x06
#define CFG_REVISION 0x08
#define CFG_CLASS 0x09
#define CFG_CACHE_LINE 0x0c
#define CFG_LATENCY 0x0d
#define CFG_BAR0 0x10
#define CFG_SUBSYS_VENDOR 0x2c
#define CFG_SUBSYS 0x2e
#define CFG_ROM 0x30
#define CFG_CAP_PTR 0x34
#define CFG_INT_LINE 0x3c
#define CFG_INT_PIN 0x3d
#define CFG_CAP_START 0x40

#define STATUS_CAP_LIST 0x0010
#define STATUS_W1C 0xf900   /* parity, SERR, aborts: write 1 to clear */
#define COMMAND_WMASK 0x0547 /* IO, MEM, master, parity, SERR, INTx disable */
#define COMMAND_INTX_DISABLE 0x0400

#define MSI_CTRL 2              /* message control, from the capability */
#define MSI_CTRL_ENABLE 0x0001
#define MSIX_CTRL 2
#define MSIX_CTRL_ENABLE 0x8000
#define MSIX_CTRL_FMASK 0x4000
#define MSIX_TABLE 4            /* BIR | offset */
#define MSIX_PBA 8

#define CAP_ID_PM 0x01
#define CAP_ID_MSI 0x05
#define CAP_ID_VENDOR 0x09
#define CAP_ID_PCIE 0x10
#define CAP_ID_MSIX 0x11

#define PCIE_CAP_SIZE 0x3c
#define PCIE_DEVCAP_FLR (1u << 28)
#define PCIE_DEVCTL_FLR 0x8000

static inline void put16(uint8_t *p, uint16_t v)
{
    memcpy(p, &v, 2);
}

static inline void put32(uint8_t *p, uint32_t v)
{
    memcpy(p, &v, 4);
}

static inline uint16_t get16(const uint8_t *p)
{
    uint16_t v;

    memcpy(&v, p, 2);
    return v;
}

static inline uint32_t get32(const uint8_t *p)
{
    uint32_t v;

    memcpy(&v, p, 4);
    return v;
}

int mu_pci_init(mu_ctx_t *ctx, enum mu_dev_type type)
{
    struct mu_pci *p = &ctx->pci;

    p->type = type;
    p->size = type == MU_DEV_PCIE ? 4096 : 256;
    /* One allocation: value, wmask, w1cmask, and the image reset goes back
     * to. */
    p->cfg = calloc(4, p->size);
    if (p->cfg == NULL)
        return -ENOMEM;
    p->wmask = p->cfg + p->size;
    p->w1cmask = p->wmask + p->size;
    p->cap_end = CFG_CAP_START;

    put16(p->wmask + CFG_COMMAND, COMMAND_WMASK);
    put16(p->w1cmask + CFG_STATUS, STATUS_W1C);
    p->wmask[CFG_CACHE_LINE] = 0xff;
    p->wmask[CFG_LATENCY] = 0xff;
    p->wmask[CFG_INT_LINE] = 0xff;
    return 0;
}

void mu_pci_fini(mu_ctx_t *ctx)
{
    free(ctx->pci.cfg);
    ctx->pci.cfg = NULL;
}

static uint8_t *cfg_reset_image(struct mu_pci *p)
{
    return p->w1cmask + p->size;
}

uint8_t *mu_pci_config(mu_ctx_t *ctx)
{
    return ctx->pci.cfg;
}

size_t mu_pci_config_size(const mu_ctx_t *ctx)
{
    return ctx->pci.size;
}

int mu_pci_set_ids(mu_ctx_t *ctx, const struct mu_pci_ids *ids)
{
    uint8_t *c = ctx->pci.cfg;

    if (ctx->realized)
        return -EBUSY;
    if (ids->class_code > 0xffffff || ids->irq_pin > 4 ||
        ids->reserved0 != 0 ||
        !mu_all_zero(ids->reserved, sizeof(ids->reserved)))
        return -EINVAL;
    ctx->pci.ids = *ids;
    put16(c + CFG_VENDOR, ids->vendor_id);
    put16(c + CFG_DEVICE, ids->device_id);
    put16(c + CFG_SUBSYS_VENDOR, ids->subsys_vendor_id);
    put16(c + CFG_SUBSYS, ids->subsys_id);
    c[CFG_REVISION] = ids->revision;
    c[CFG_CLASS] = (uint8_t)ids->class_code;
    c[CFG_CLASS + 1] = (uint8_t)(ids->class_code >> 8);
    c[CFG_CLASS + 2] = (uint8_t)(ids->class_code >> 16);
    c[CFG_INT_PIN] = ids->irq_pin;
    return 0;
}

int mu_pci_set_command_cb(mu_ctx_t *ctx, mu_pci_command_cb_t cb)
{
    if (ctx->realized)
        return -EBUSY;
    ctx->pci.command_cb = cb;
    return 0;
}

int mu_pci_hook_config(mu_ctx_t *ctx, uint32_t offset, uint32_t len,
                       mu_access_cb_t cb)
{
    struct mu_pci *p = &ctx->pci;

    if (ctx->realized)
        return -EBUSY;
    if (cb == NULL || len == 0 || offset < CFG_CAP_START ||
        !mu_range_ok(offset, len, p->size))
        return -EINVAL;
    if (p->nr_hooks == sizeof(p->hooks) / sizeof(p->hooks[0]))
        return -ENOSPC;
    for (unsigned i = 0; i < p->nr_hooks; i++) {
        if (offset < p->hooks[i].offset + p->hooks[i].len &&
            p->hooks[i].offset < offset + len)
            return -EEXIST;
    }
    p->hooks[p->nr_hooks++] = (struct mu_cfg_hook){ offset, len, cb };
    return 0;
}

/* ---------------- capabilities ---------------- */

/*
 * Append a capability of 'size' bytes and link it into the list.  Returns
 * its offset.  Standard capabilities live below 256 even in PCIe config
 * space.
 */
static int cap_alloc(mu_ctx_t *ctx, uint8_t id, unsigned size)
{
    struct mu_pci *p = &ctx->pci;
    unsigned off = p->cap_end;

    if (ctx->realized)
        return -EBUSY;
    if (off + size > 256)
        return -ENOSPC;
    for (unsigned i = 0; i < p->nr_hooks; i++) {
        if (off < p->hooks[i].offset + p->hooks[i].len &&
            p->hooks[i].offset < off + size)
            return -EEXIST;
    }
    p->cfg[off] = id;
    p->cfg[off + 1] = 0;
    if (p->cap_last == 0)
        p->cfg[CFG_CAP_PTR] = (uint8_t)off;
    else
        p->cfg[p->cap_last + 1] = (uint8_t)off;
    p->cap_last = (uint8_t)off;
    p->cap_end = (uint8_t)((off + size + 3) & ~3u);
    if (p->cap_end == 0)    /* wrapped: the list is full */
        p->cap_end = 255;
    put16(p->cfg + CFG_STATUS, get16(p->cfg + CFG_STATUS) | STATUS_CAP_LIST);
    return (int)off;
}

int mu_pci_add_pm(mu_ctx_t *ctx)
{
    struct mu_pci *p = &ctx->pci;
    int off;

    if (ctx->realized)
        return -EBUSY;
    if (p->pm_off)
        return -EEXIST;
    off = cap_alloc(ctx, CAP_ID_PM, 8);
    if (off < 0)
        return off;
    put16(p->cfg + off + 2, 0x0003);            /* PMC: version 1.2 */
    put16(p->cfg + off + 4, 0x0008);            /* PMCSR: No_Soft_Reset, D0 */
    put16(p->wmask + off + 4, 0x0103);          /* power state, PME_En */
    put16(p->w1cmask + off + 4, 0x8000);        /* PME_Status */
    p->pm_off = (uint8_t)off;
    return off;
}

int mu_pci_add_msi(mu_ctx_t *ctx, unsigned nvec, bool addr64)
{
    struct mu_pci *p = &ctx->pci;
    unsigned log2n = 0, size = addr64 ? 24 : 20;
    unsigned mask_off = addr64 ? 0x10 : 0x0c;
    uint16_t ctrl;
    int off, rc;

    if (ctx->realized)
        return -EBUSY;
    if (p->msi_off)
        return -EEXIST;
    if (nvec < 1 || nvec > 32)
        return -EINVAL;
    while ((1u << log2n) < nvec)
        log2n++;
    off = cap_alloc(ctx, CAP_ID_MSI, size);
    if (off < 0)
        return off;
    ctrl = (uint16_t)(log2n << 1) | 0x0100 | (addr64 ? 0x0080 : 0);
    put16(p->cfg + off + 2, ctrl);
    put16(p->wmask + off + 2, 0x0071);          /* enable, MME */
    put32(p->wmask + off + 4, 0xfffffffc);      /* address, dword aligned */
    if (addr64)
        put32(p->wmask + off + 8, 0xffffffff);
    put16(p->wmask + off + mask_off - 4, 0xffff);   /* data */
    put32(p->wmask + off + mask_off,
          log2n == 5 ? 0xffffffffu : (1u << (1u << log2n)) - 1);
    p->msi_off = (uint8_t)off;
    rc = mu_irq_setup(ctx, MU_IRQ_MSI, 1u << log2n);
    return rc < 0 ? rc : off;
}

int mu_pci_add_msix(mu_ctx_t *ctx, unsigned nvec, unsigned table_bar,
                    uint32_t table_offset, unsigned pba_bar,
                    uint32_t pba_offset)
{
    struct mu_pci *p = &ctx->pci;
    int off, rc;

    if (ctx->realized)
        return -EBUSY;
    if (p->msix_off)
        return -EEXIST;
    if (nvec < 1 || nvec > 2048 || table_bar > 5 || pba_bar > 5 ||
        (table_offset & 7) || (pba_offset & 7))
        return -EINVAL;
    off = cap_alloc(ctx, CAP_ID_MSIX, 12);
    if (off < 0)
        return off;
    put16(p->cfg + off + 2, (uint16_t)(nvec - 1));
    put16(p->wmask + off + 2, 0xc000);          /* enable, function mask */
    put32(p->cfg + off + 4, table_offset | table_bar);
    put32(p->cfg + off + 8, pba_offset | pba_bar);
    p->msix_off = (uint8_t)off;
    rc = mu_irq_setup(ctx, MU_IRQ_MSIX, nvec);
    return rc < 0 ? rc : off;
}

int mu_pci_add_pcie(mu_ctx_t *ctx, enum mu_pcie_type type)
{
    struct mu_pci *p = &ctx->pci;
    int off;

    if (ctx->realized)
        return -EBUSY;
    if (p->type != MU_DEV_PCIE)
        return -EINVAL;
    if (p->pcie_off)
        return -EEXIST;
    if (type != MU_PCIE_ENDPOINT && type != MU_PCIE_LEGACY_ENDPOINT &&
        type != MU_PCIE_RC_INTEGRATED)
        return -EINVAL;
    off = cap_alloc(ctx, CAP_ID_PCIE, PCIE_CAP_SIZE);
    if (off < 0)
        return off;
    put16(p->cfg + off + 2, (uint16_t)(0x0002 | (type << 4)));
    put32(p->cfg + off + 4, PCIE_DEVCAP_FLR);   /* 128-byte payload, FLR */
    put16(p->cfg + off + 8, 0x2810);            /* devctl defaults */
    put16(p->wmask + off + 8, 0x7fff);          /* all but FLR (reads 0) */
    put16(p->w1cmask + off + 0xa, 0x000f);      /* error detected bits */
    put32(p->cfg + off + 0xc, 0x00000011);      /* link: 2.5GT/s x1 */
    put16(p->wmask + off + 0x10, 0x01c3);       /* link control */
    put16(p->cfg + off + 0x12, 0x0011);         /* link status: x1 */
    put16(p->wmask + off + 0x28, 0x040f);       /* devctl2 */
    p->pcie_off = (uint8_t)off;
    return off;
}

int mu_pci_add_vendor(mu_ctx_t *ctx, const void *data, size_t len)
{
    struct mu_pci *p = &ctx->pci;
    int off;

    if (len > 252 || (len > 0 && data == NULL))
        return -EINVAL;
    off = cap_alloc(ctx, CAP_ID_VENDOR, (unsigned)len + 3);
    if (off < 0)
        return off;
    p->cfg[off + 2] = (uint8_t)(len + 3);
    if (len > 0)
        memcpy(p->cfg + off + 3, data, len);
    return off;
}

/* ---------------- BARs and realize ---------------- */

static int setup_bar(mu_ctx_t *ctx, unsigned bar)
{
    struct mu_pci *p = &ctx->pci;
    struct mu_region *r = &ctx->regions[bar];
    uint8_t *v = p->cfg + CFG_BAR0 + 4 * bar;
    uint8_t *m = p->wmask + CFG_BAR0 + 4 * bar;
    uint64_t mask;

    if (!r->present || r->size == 0)
        return 0;
    mask = ~(r->size - 1);
    if (!(r->flags & MU_REGION_MEM)) {
        if (r->size > (1u << 16))
            return -EINVAL;
        put32(v, 0x1);
        put32(m, (uint32_t)mask & ~0x3u);
        return 0;
    }
    if (r->flags & MU_REGION_MEM64) {
        if (bar == 5 || ctx->regions[bar + 1].present) {
            mu_log(ctx, MU_LOG_ERR, "64-bit BAR%u needs BAR%u free", bar, bar + 1);
            return -EINVAL;
        }
        put32(v, 0x4 | ((r->flags & MU_REGION_PREFETCH) ? 0x8 : 0));
        put32(m, (uint32_t)mask & ~0xfu);
        put32(m + 4, (uint32_t)(mask >> 32));
        return 0;
    }
    if (r->size > (1ull << 31))
        return -EINVAL;
    put32(v, (r->flags & MU_REGION_PREFETCH) ? 0x8 : 0);
    put32(m, (uint32_t)mask & ~0xfu);
    return 0;
}

/* Whether [off, off+len) of region r can be mmapped by the client. */
static bool mmap_exposes(const struct mu_region *r, uint64_t off, uint64_t len)
{
    if (r->fd < 0)
        return false;
    if (r->nr_areas == 0)
        return true;
    for (unsigned i = 0; i < r->nr_areas; i++) {
        if (off < r->areas[i].offset + r->areas[i].size &&
            r->areas[i].offset < off + len)
            return true;
    }
    return false;
}

int mu_pci_realize(mu_ctx_t *ctx)
{
    struct mu_pci *p = &ctx->pci;
    int rc;

    if (p->type == MU_DEV_PCIE && p->pcie_off == 0) {
        rc = mu_pci_add_pcie(ctx, MU_PCIE_ENDPOINT);
        if (rc < 0)
            return rc;
    }
    for (unsigned bar = 0; bar < 6; bar++) {
        rc = setup_bar(ctx, bar);
        if (rc < 0) {
            mu_log(ctx, MU_LOG_ERR, "BAR%u cannot be %s of %#llx bytes", bar,
                   (ctx->regions[bar].flags & MU_REGION_MEM) ? "memory" : "I/O",
                   (unsigned long long)ctx->regions[bar].size);
            return rc;
        }
        if (ctx->regions[bar].flags & MU_REGION_MEM64)
            bar++;
    }
    if (ctx->regions[MU_PCI_ROM].present) {
        uint64_t sz = ctx->regions[MU_PCI_ROM].size;

        if (sz < 2048 || sz > (1ull << 31))
            return -EINVAL;
        put32(p->wmask + CFG_ROM, ((uint32_t)~(sz - 1) & 0xfffff800u) | 1);
    }
    if (p->msix_off) {
        uint32_t tbl = get32(p->cfg + p->msix_off + 4);
        uint32_t pba = get32(p->cfg + p->msix_off + 8);
        uint32_t n = get16(p->cfg + p->msix_off + 2) + 1u;
        const struct mu_region *tr = &ctx->regions[tbl & 7];
        const struct mu_region *pr = &ctx->regions[pba & 7];

        if (!tr->present || !(tr->flags & MU_REGION_MEM) ||
            !mu_range_ok(tbl & ~7u, 16ull * n, tr->size) ||
            !pr->present || !(pr->flags & MU_REGION_MEM) ||
            !mu_range_ok(pba & ~7u, 8ull * ((n + 63) / 64), pr->size)) {
            mu_log(ctx, MU_LOG_ERR, "MSI-X table or PBA outside its BAR");
            return -EINVAL;
        }
        if (mmap_exposes(&ctx->regions[tbl & 7], tbl & ~7u, 16ull * n) ||
            mmap_exposes(&ctx->regions[pba & 7], pba & ~7u,
                         8ull * ((n + 63) / 64))) {
            /* A client could map them and bypass the masking we do. */
            mu_log(ctx, MU_LOG_ERR, "MSI-X table or PBA in an mmappable area");
            return -EINVAL;
        }
        if ((tbl & 7) == (pba & 7) &&
            (uint64_t)(tbl & ~7u) < (pba & ~7u) + 8ull * ((n + 63) / 64) &&
            (uint64_t)(pba & ~7u) < (tbl & ~7u) + 16ull * n) {
            mu_log(ctx, MU_LOG_ERR, "MSI-X table and PBA overlap");
            return -EINVAL;
        }
    }
    memcpy(cfg_reset_image(p), p->cfg, p->size);
    return 0;
}

void mu_pci_reset(mu_ctx_t *ctx)
{
    struct mu_pci *p = &ctx->pci;
    uint16_t old = get16(p->cfg + CFG_COMMAND);

    memcpy(p->cfg, cfg_reset_image(p), p->size);
    if (old != get16(p->cfg + CFG_COMMAND) && p->command_cb != NULL)
        p->command_cb(ctx, old, get16(p->cfg + CFG_COMMAND));
}

/* ---------------- what irq.c asks of config space ---------------- */

bool mu_pci_intx_disabled(const mu_ctx_t *ctx)
{
    /* The command register is written by the context thread; a torn read
     * of the other byte would not matter, but use one atomic byte load. */
    return __atomic_load_n(&ctx->pci.cfg[CFG_COMMAND + 1], __ATOMIC_RELAXED) &
           (COMMAND_INTX_DISABLE >> 8);
}

bool mu_pci_has_msi(const mu_ctx_t *ctx)
{
    return ctx->pci.msi_off != 0;
}

bool mu_pci_has_msix(const mu_ctx_t *ctx)
{
    return ctx->pci.msix_off != 0;
}

bool mu_pci_msix_layout(const mu_ctx_t *ctx, struct mu_pci_msix_layout *l)
{
    const struct mu_pci *p = &ctx->pci;
    uint32_t t, b;

    if (p->msix_off == 0)
        return false;
    t = get32(p->cfg + p->msix_off + MSIX_TABLE);
    b = get32(p->cfg + p->msix_off + MSIX_PBA);
    *l = (struct mu_pci_msix_layout){
        .table_bar = t & 7, .table_off = t & ~7u,
        .pba_bar = b & 7, .pba_off = b & ~7u,
    };
    return true;
}

/*
 * The client went away (or a reset): the interrupt state is forgotten, so
 * our copies of the MSI enable and MSI-X enable and function mask bits go
 * back to 0 too, or the next client would read MSI/MSI-X as enabled while
 * the library ignores the masks that implies.
 */
void mu_pci_irq_caps_off(mu_ctx_t *ctx)
{
    struct mu_pci *p = &ctx->pci;

    if (p->msi_off != 0)
        put16(p->cfg + p->msi_off + MSI_CTRL,
              get16(p->cfg + p->msi_off + MSI_CTRL) & ~MSI_CTRL_ENABLE);
    if (p->msix_off != 0)
        put16(p->cfg + p->msix_off + MSIX_CTRL,
              get16(p->cfg + p->msix_off + MSIX_CTRL) &
              ~(MSIX_CTRL_ENABLE | MSIX_CTRL_FMASK));
}

/* ---------------- guest accesses ---------------- */

static const struct mu_cfg_hook *find_hook(const struct mu_pci *p,
                                           uint64_t off, size_t count,
                                           bool *partial)
{
    *partial = false;
    for (unsigned i = 0; i < p->nr_hooks; i++) {
        const struct mu_cfg_hook *h = &p->hooks[i];

        if (off < h->offset + h->len && h->offset < off + count) {
            if (off < h->offset || off + count > h->offset + h->len)
                *partial = true;
            return h;
        }
    }
    return NULL;
}

static bool touches(uint64_t off, size_t count, unsigned reg, unsigned len)
{
    return reg != 0 && off < reg + len && reg < off + count;
}

/* Side effects of a write, after the bytes are in. */
static void after_write(mu_ctx_t *ctx, uint64_t off, size_t count,
                        uint16_t old_cmd, bool flr)
{
    struct mu_pci *p = &ctx->pci;
    uint16_t cmd = get16(p->cfg + CFG_COMMAND);

    if (cmd != old_cmd) {
        /* Clearing INTx disable delivers a pending INTx. */
        if ((old_cmd & COMMAND_INTX_DISABLE) && !(cmd & COMMAND_INTX_DISABLE))
            mu_irqs_intx_unblocked(ctx);
        if (p->command_cb != NULL)
            p->command_cb(ctx, old_cmd, cmd);
    }
    if (p->msi_off &&
        touches(off, count, p->msi_off,
                (get16(p->cfg + p->msi_off + 2) & 0x0080) ? 24 : 20)) {
        uint16_t ctrl = get16(p->cfg + p->msi_off + 2);
        unsigned mask_off = (ctrl & 0x0080) ? 0x10 : 0x0c;

        mu_irqs_msi_ctrl(ctx, ctrl & 1, get32(p->cfg + p->msi_off + mask_off));
    }
    if (touches(off, count, p->msix_off, 4)) {
        uint16_t ctrl = get16(p->cfg + p->msix_off + MSIX_CTRL);

        mu_irqs_msix_ctrl(ctx, ctrl & MSIX_CTRL_ENABLE, ctrl & MSIX_CTRL_FMASK);
    }
    if (flr) {
        mu_log(ctx, MU_LOG_INFO, "function-level reset");
        mu_ctx_reset(ctx, MU_RESET_FLR);
    }
}

ssize_t mu_pci_config_access(mu_ctx_t *ctx, uint8_t *buf, size_t count,
                             uint64_t offset, bool is_write)
{
    struct mu_pci *p = &ctx->pci;
    const struct mu_cfg_hook *h;
    uint16_t old_cmd;
    bool partial, flr = false;

    if (count == 0 || !mu_range_ok(offset, count, p->size))
        return mu_refuse(ctx, -EINVAL, "config offset %#llx+%zu past config "
                         "space size %#zx", (unsigned long long)offset, count,
                         (size_t)p->size);
    h = find_hook(p, offset, count, &partial);
    if (h != NULL) {
        ssize_t n;

        /* Half the device's register and half ours would need two
         * owners to agree on one access. */
        if (partial)
            return mu_refuse(ctx, -EINVAL, "config access %#llx+%zu covers "
                             "part of a device-handled register",
                             (unsigned long long)offset, count);
        n = h->cb(ctx, buf, count, offset, is_write);
        if (n < 0)
            return mu_refuse(ctx, (int)n, "the device's config hook refused "
                             "%s of %#llx+%zu", is_write ? "write" : "read",
                             (unsigned long long)offset, count);
        return n;
    }
    if (!is_write) {
        memcpy(buf, p->cfg + offset, count);
        return (ssize_t)count;
    }

    old_cmd = get16(p->cfg + CFG_COMMAND);
    if (p->pcie_off && touches(offset, count, p->pcie_off + 9u, 1) &&
        (buf[p->pcie_off + 9 - offset] & (PCIE_DEVCTL_FLR >> 8)))
        flr = true;
    for (size_t i = 0; i < count; i++) {
        size_t o = offset + i;
        uint8_t v = (uint8_t)((p->cfg[o] & ~p->wmask[o]) | (buf[i] & p->wmask[o]));

        p->cfg[o] = v & (uint8_t)~(buf[i] & p->w1cmask[o]);
    }
    after_write(ctx, offset, count, old_cmd, flr);
    return (ssize_t)count;
}
