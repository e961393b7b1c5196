/*
 * Unit tests for lib/pci.c: the header, the capability builder, BARs, and
 * the config-space write rules (read-only, read-write and write-1-to-clear
 * bits, BAR sizing, side effects on command, MSI/MSI-X control and FLR).
 *
 * Accesses go through mu_pci_config_access() as a REGION_READ/WRITE of
 * region 7 would; a few go through mu_region_access() to check that it
 * routes config space here.  Contexts are realized on a socket under a
 * mkdtemp directory, since realize is what lays out the BARs.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "private.h"
#include "irq.h"

struct fixture {
    char dir[64];
    char path[96];
    mu_ctx_t *ctx;
};

/* Realize failures log errors by design; keep the test output clean. */
static void quiet_log(mu_ctx_t *ctx, enum mu_log_level level, const char *msg)
{
    (void)ctx;
    (void)level;
    (void)msg;
}

static int setup_type(void **state, enum mu_dev_type type)
{
    struct fixture *f = calloc(1, sizeof(*f));

    assert_non_null(f);
    strcpy(f->dir, "/tmp/mu-pci-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    snprintf(f->path, sizeof(f->path), "%s/sock", f->dir);
    assert_int_equal(mu_ctx_create(&f->ctx, f->path, type, NULL), 0);
    assert_int_equal(mu_ctx_set_log(f->ctx, quiet_log, MU_LOG_ERR), 0);
    *state = f;
    return 0;
}

static int setup_pci(void **state)
{
    return setup_type(state, MU_DEV_PCI);
}

static int setup_pcie(void **state)
{
    return setup_type(state, MU_DEV_PCIE);
}

static int teardown(void **state)
{
    struct fixture *f = *state;

    mu_ctx_destroy(f->ctx);
    unlink(f->path);
    rmdir(f->dir);
    free(f);
    return 0;
}

/* ---- helpers ---- */

static ssize_t cfg_rw(mu_ctx_t *ctx, void *buf, size_t count, uint64_t off,
                      bool is_write)
{
    return mu_pci_config_access(ctx, buf, count, off, is_write);
}

static uint8_t rd8(mu_ctx_t *ctx, unsigned off)
{
    uint8_t v;

    assert_int_equal(cfg_rw(ctx, &v, 1, off, false), 1);
    return v;
}

static uint16_t rd16(mu_ctx_t *ctx, unsigned off)
{
    uint16_t v;

    assert_int_equal(cfg_rw(ctx, &v, 2, off, false), 2);
    return v;
}

static uint32_t rd32(mu_ctx_t *ctx, unsigned off)
{
    uint32_t v;

    assert_int_equal(cfg_rw(ctx, &v, 4, off, false), 4);
    return v;
}

static void wr8(mu_ctx_t *ctx, unsigned off, uint8_t v)
{
    assert_int_equal(cfg_rw(ctx, &v, 1, off, true), 1);
}

static void wr16(mu_ctx_t *ctx, unsigned off, uint16_t v)
{
    assert_int_equal(cfg_rw(ctx, &v, 2, off, true), 2);
}

static void wr32(mu_ctx_t *ctx, unsigned off, uint32_t v)
{
    assert_int_equal(cfg_rw(ctx, &v, 4, off, true), 4);
}

static ssize_t dummy_cb(mu_ctx_t *ctx, void *buf, size_t count, uint64_t off,
                        bool is_write)
{
    (void)ctx;
    (void)off;
    if (!is_write)
        memset(buf, 0, count);
    return (ssize_t)count;
}

static const struct mu_pci_ids test_ids = {
    .vendor_id = 0x494f, .device_id = 0x0dc8, .subsys_vendor_id = 0x1af4,
    .subsys_id = 0x1100, .class_code = 0x010802, .revision = 0x02,
    .irq_pin = 1,
};

/* Offset of the capability with this id, following the list; 0 if none. */
static unsigned find_cap(mu_ctx_t *ctx, uint8_t id)
{
    unsigned off = rd8(ctx, 0x34);

    for (int n = 0; off != 0 && n < 48; n++) {
        if (rd8(ctx, off) == id)
            return off;
        off = rd8(ctx, off + 1);
    }
    return 0;
}

/* ---- header ---- */

static void test_header_ids(void **state)
{
    struct fixture *f = *state;
    mu_ctx_t *ctx = f->ctx;
    struct mu_pci_ids bad = test_ids;
    uint32_t v;

    assert_int_equal(mu_pci_set_ids(ctx, &test_ids), 0);
    assert_int_equal(mu_ctx_realize(ctx), 0);
    assert_int_equal(rd16(ctx, 0x00), 0x494f);
    assert_int_equal(rd16(ctx, 0x02), 0x0dc8);
    assert_int_equal(rd32(ctx, 0x08), 0x01080202);  /* class, revision */
    assert_int_equal(rd16(ctx, 0x2c), 0x1af4);
    assert_int_equal(rd16(ctx, 0x2e), 0x1100);
    assert_int_equal(rd8(ctx, 0x0e), 0);            /* type 0 header */
    assert_int_equal(rd8(ctx, 0x3d), 1);
    assert_int_equal(rd8(ctx, 0x34), 0);            /* no capabilities */
    assert_int_equal(rd16(ctx, 0x06) & 0x0010, 0);
    /* Through the region layer, as REGION_READ of region 7 does. */
    assert_int_equal(mu_region_access(ctx, MU_PCI_CONFIG, (uint8_t *)&v, 4, 0,
                                      false), 4);
    assert_int_equal(v, 0x0dc8494f);
    assert_ptr_equal(mu_pci_config(ctx), ctx->pci.cfg);
    assert_int_equal(mu_pci_config_size(ctx), 256);

    bad.class_code = 0x1000000;
    assert_int_equal(mu_pci_set_ids(ctx, &bad), -EBUSY);
}

static void test_set_ids_bad(void **state)
{
    struct fixture *f = *state;
    struct mu_pci_ids bad = test_ids;

    bad.class_code = 0x1000000;
    assert_int_equal(mu_pci_set_ids(f->ctx, &bad), -EINVAL);
    bad = test_ids;
    bad.irq_pin = 5;
    assert_int_equal(mu_pci_set_ids(f->ctx, &bad), -EINVAL);
    assert_int_equal(rd16(f->ctx, 0), 0);
}

static void test_readonly_bytes(void **state)
{
    struct fixture *f = *state;
    mu_ctx_t *ctx = f->ctx;
    uint8_t before[64], after[64], ones[64];
    static const unsigned ro[] = { 0x00, 0x01, 0x02, 0x03, 0x08, 0x09, 0x0a,
                                   0x0b, 0x0e, 0x0f, 0x2c, 0x2d, 0x2e, 0x2f,
                                   0x34, 0x3d, 0x3e, 0x3f };

    assert_int_equal(mu_pci_set_ids(ctx, &test_ids), 0);
    assert_true(mu_pci_add_pm(ctx) > 0);
    assert_int_equal(mu_ctx_realize(ctx), 0);
    assert_int_equal(cfg_rw(ctx, before, 64, 0, false), 64);
    memset(ones, 0xff, sizeof(ones));
    for (unsigned i = 0; i < sizeof(ro) / sizeof(ro[0]); i++) {
        wr8(ctx, ro[i], 0xff);
        wr8(ctx, ro[i], 0x00);
    }
    /* One big write of all-ones too. */
    assert_int_equal(cfg_rw(ctx, ones, 64, 0, true), 64);
    assert_int_equal(cfg_rw(ctx, after, 64, 0, false), 64);
    for (unsigned i = 0; i < sizeof(ro) / sizeof(ro[0]); i++)
        assert_int_equal(after[ro[i]], before[ro[i]]);
    /* Capability headers are read-only as well. */
    assert_int_equal(rd8(ctx, 0x40), 0x01);
    wr16(ctx, 0x40, 0xffff);
    assert_int_equal(rd16(ctx, 0x40), 0x0001);
}

static void test_rw_bits(void **state)
{
    struct fixture *f = *state;
    mu_ctx_t *ctx = f->ctx;

    assert_int_equal(mu_ctx_realize(ctx), 0);
    wr16(ctx, 0x04, 0xffff);
    assert_int_equal(rd16(ctx, 0x04), 0x0547);
    wr16(ctx, 0x04, 0x0002);
    assert_int_equal(rd16(ctx, 0x04), 0x0002);
    wr8(ctx, 0x0c, 0x10);
    assert_int_equal(rd8(ctx, 0x0c), 0x10);
    wr8(ctx, 0x3c, 0x0b);
    assert_int_equal(rd8(ctx, 0x3c), 0x0b);
    wr8(ctx, 0x3c, 0xff);
    assert_int_equal(rd8(ctx, 0x3c), 0xff);
    /* Reserved header bytes stay 0. */
    wr32(ctx, 0x38, 0xffffffff);
    assert_int_equal(rd32(ctx, 0x38), 0);
    wr32(ctx, 0x28, 0xffffffff);    /* CardBus CIS */
    assert_int_equal(rd32(ctx, 0x28), 0);
}

static void test_status_w1c(void **state)
{
    struct fixture *f = *state;
    mu_ctx_t *ctx = f->ctx;
    uint8_t *cfg = mu_pci_config(ctx);
    uint16_t st;

    assert_true(mu_pci_add_pm(ctx) > 0);
    assert_int_equal(mu_ctx_realize(ctx), 0);
    /* The device reports errors (and a read-only DEVSEL timing). */
    st = rd16(ctx, 0x06) | 0xf900 | 0x0200;
    memcpy(cfg + 6, &st, 2);

    wr16(ctx, 0x06, 0x0000);
    assert_int_equal(rd16(ctx, 0x06), 0xfb10);
    wr16(ctx, 0x06, 0x0100);
    assert_int_equal(rd16(ctx, 0x06), 0xfa10);
    wr16(ctx, 0x06, 0x8000 | 0x0200 | 0x0010);
    assert_int_equal(rd16(ctx, 0x06), 0x7a10);
    wr8(ctx, 0x07, 0x30);
    assert_int_equal(rd16(ctx, 0x06), 0x4a10);
    wr16(ctx, 0x06, 0xffff);
    assert_int_equal(rd16(ctx, 0x06), 0x0210);
    /* Writing status leaves command alone, and the reverse. */
    wr16(ctx, 0x04, 0x0006);
    wr32(ctx, 0x04, 0xffff0006);
    assert_int_equal(rd32(ctx, 0x04), 0x02100006);
}

/* ---- BARs ---- */

static void test_bar_sizing(void **state)
{
    struct fixture *f = *state;
    mu_ctx_t *ctx = f->ctx;

    assert_int_equal(mu_region_setup(ctx, 0, 256, MU_REGION_RW, dummy_cb), 0);
    assert_int_equal(mu_region_setup(ctx, 1, 4096,
                                     MU_REGION_RW | MU_REGION_MEM, dummy_cb), 0);
    assert_int_equal(mu_region_setup(ctx, 2, 1u << 20,
                                     MU_REGION_RW | MU_REGION_MEM |
                                     MU_REGION_MEM64 | MU_REGION_PREFETCH,
                                     dummy_cb), 0);
    assert_int_equal(mu_region_setup(ctx, 3, 16, MU_REGION_RW | MU_REGION_MEM,
                                     dummy_cb), -EEXIST);
    assert_int_equal(mu_region_setup(ctx, 4, 1u << 16,
                                     MU_REGION_RW | MU_REGION_MEM |
                                     MU_REGION_PREFETCH, dummy_cb), 0);
    assert_int_equal(mu_ctx_realize(ctx), 0);

    /* Type bits before sizing. */
    assert_int_equal(rd32(ctx, 0x10), 0x1);
    assert_int_equal(rd32(ctx, 0x14), 0x0);
    assert_int_equal(rd32(ctx, 0x18), 0xc);
    assert_int_equal(rd32(ctx, 0x1c), 0x0);
    assert_int_equal(rd32(ctx, 0x20), 0x8);
    assert_int_equal(rd32(ctx, 0x24), 0x0);

    for (unsigned bar = 0; bar < 6; bar++)
        wr32(ctx, 0x10 + 4 * bar, 0xffffffff);
    assert_int_equal(rd32(ctx, 0x10), 0xffffff01);  /* I/O, 256 bytes */
    assert_int_equal(rd32(ctx, 0x14), 0xfffff000);  /* 32-bit mem 4K */
    assert_int_equal(rd32(ctx, 0x18), 0xfff0000c);  /* 64-bit pref 1M */
    assert_int_equal(rd32(ctx, 0x1c), 0xffffffff);  /* its upper half */
    assert_int_equal(rd32(ctx, 0x20), 0xffff0008);  /* 32-bit pref 64K */
    assert_int_equal(rd32(ctx, 0x24), 0);           /* absent */

    /* Programming addresses: low bits below the size stay clear. */
    wr32(ctx, 0x14, 0xfebc1234);
    assert_int_equal(rd32(ctx, 0x14), 0xfebc1000);
    wr32(ctx, 0x18, 0x12345678);
    wr32(ctx, 0x1c, 0x00000001);
    assert_int_equal(rd32(ctx, 0x18), 0x1230000c);
    assert_int_equal(rd32(ctx, 0x1c), 0x1);
    wr32(ctx, 0x10, 0x0000c0ff);
    assert_int_equal(rd32(ctx, 0x10), 0x0000c001);
}

static void test_bar_64bit_large(void **state)
{
    struct fixture *f = *state;
    mu_ctx_t *ctx = f->ctx;

    assert_int_equal(mu_region_setup(ctx, 0, 1ull << 33,
                                     MU_REGION_RW | MU_REGION_MEM |
                                     MU_REGION_MEM64, dummy_cb), 0);
    assert_int_equal(mu_ctx_realize(ctx), 0);
    wr32(ctx, 0x10, 0xffffffff);
    wr32(ctx, 0x14, 0xffffffff);
    assert_int_equal(rd32(ctx, 0x10), 0x00000004);
    assert_int_equal(rd32(ctx, 0x14), 0xfffffffe);
}

static void test_bar_bad_layouts(void **state)
{
    struct fixture *f = *state;

    /* A 64-bit BAR whose upper slot is taken. */
    assert_int_equal(mu_region_setup(f->ctx, 1, 16, MU_REGION_RW | MU_REGION_MEM,
                                     dummy_cb), 0);
    assert_int_equal(mu_region_setup(f->ctx, 0, 16,
                                     MU_REGION_RW | MU_REGION_MEM |
                                     MU_REGION_MEM64, dummy_cb), 0);
    assert_int_equal(mu_ctx_realize(f->ctx), -EINVAL);
}

static void test_bar_bad_layouts2(void **state)
{
    struct fixture *f = *state;

    /* A 64-bit BAR5 has no upper slot; an I/O BAR over 64K. */
    assert_int_equal(mu_region_setup(f->ctx, 5, 16,
                                     MU_REGION_RW | MU_REGION_MEM |
                                     MU_REGION_MEM64, dummy_cb), 0);
    assert_int_equal(mu_ctx_realize(f->ctx), -EINVAL);
    assert_int_equal(mu_region_setup(f->ctx, 5, 16,
                                     MU_REGION_RW | MU_REGION_MEM, dummy_cb), 0);
    assert_int_equal(mu_region_setup(f->ctx, 0, 1u << 17, MU_REGION_RW,
                                     dummy_cb), 0);
    assert_int_equal(mu_ctx_realize(f->ctx), -EINVAL);
}

static void test_rom_bar(void **state)
{
    struct fixture *f = *state;
    mu_ctx_t *ctx = f->ctx;

    assert_int_equal(mu_region_setup(ctx, MU_PCI_ROM, 1u << 16, MU_REGION_READ,
                                     dummy_cb), 0);
    assert_int_equal(mu_ctx_realize(ctx), 0);
    assert_int_equal(rd32(ctx, 0x30), 0);
    wr32(ctx, 0x30, 0xffffffff);
    assert_int_equal(rd32(ctx, 0x30), 0xffff0001);
    wr32(ctx, 0x30, 0xfffffffe);
    assert_int_equal(rd32(ctx, 0x30), 0xffff0000);
}

static void test_rom_too_small(void **state)
{
    struct fixture *f = *state;

    assert_int_equal(mu_region_setup(f->ctx, MU_PCI_ROM, 1024, MU_REGION_READ,
                                     dummy_cb), 0);
    assert_int_equal(mu_ctx_realize(f->ctx), -EINVAL);
}

static void test_no_rom(void **state)
{
    struct fixture *f = *state;

    assert_int_equal(mu_ctx_realize(f->ctx), 0);
    wr32(f->ctx, 0x30, 0xffffffff);
    assert_int_equal(rd32(f->ctx, 0x30), 0);
}

/* ---- capabilities ---- */

static void test_cap_list(void **state)
{
    struct fixture *f = *state;
    mu_ctx_t *ctx = f->ctx;
    static const uint8_t vdata[5] = { 0xde, 0xad, 0xbe, 0xef, 0x42 };
    int pm, msi, msix, vnd;

    assert_int_equal(mu_region_setup(ctx, 2, 0x4000,
                                     MU_REGION_RW | MU_REGION_MEM, dummy_cb), 0);
    pm = mu_pci_add_pm(ctx);
    msi = mu_pci_add_msi(ctx, 3, false);
    msix = mu_pci_add_msix(ctx, 20, 2, 0x1000, 2, 0x3000);
    vnd = mu_pci_add_vendor(ctx, vdata, sizeof(vdata));
    assert_int_equal(pm, 0x40);
    assert_int_equal(msi, 0x48);
    assert_int_equal(msix, 0x5c);
    assert_int_equal(vnd, 0x68);
    assert_int_equal(mu_ctx_realize(ctx), 0);

    /* The chain and the status bit. */
    assert_true(rd16(ctx, 0x06) & 0x0010);
    assert_int_equal(rd8(ctx, 0x34), pm);
    assert_int_equal(rd8(ctx, pm + 1), msi);
    assert_int_equal(rd8(ctx, msi + 1), msix);
    assert_int_equal(rd8(ctx, msix + 1), vnd);
    assert_int_equal(rd8(ctx, vnd + 1), 0);
    assert_int_equal(find_cap(ctx, 0x01), (unsigned)pm);
    assert_int_equal(find_cap(ctx, 0x05), (unsigned)msi);
    assert_int_equal(find_cap(ctx, 0x11), (unsigned)msix);
    assert_int_equal(find_cap(ctx, 0x09), (unsigned)vnd);
    assert_int_equal(find_cap(ctx, 0x10), 0);   /* no PCIe on PCI */

    /* PM: v1.2, D0; power state and PME_En writable, PME_Status W1C. */
    assert_int_equal(rd16(ctx, pm + 2), 0x0003);
    assert_int_equal(rd16(ctx, pm + 4), 0x0008);
    wr16(ctx, pm + 4, 0xffff);
    assert_int_equal(rd16(ctx, pm + 4), 0x010b);
    wr16(ctx, pm + 2, 0x0000);
    assert_int_equal(rd16(ctx, pm + 2), 0x0003);

    /* Vendor: length covers the header, payload copied. */
    assert_int_equal(rd8(ctx, vnd + 2), 8);
    for (unsigned i = 0; i < sizeof(vdata); i++)
        assert_int_equal(rd8(ctx, vnd + 3 + i), vdata[i]);
}

static void test_cap_msi32(void **state)
{
    struct fixture *f = *state;
    mu_ctx_t *ctx = f->ctx;
    int msi = mu_pci_add_msi(ctx, 3, false);

    assert_true(msi > 0);
    assert_int_equal(mu_irqs_count(ctx, MU_IRQ_MSI), 4);
    assert_int_equal(mu_ctx_realize(ctx), 0);
    assert_int_equal(rd8(ctx, msi), 0x05);
    /* per-vector masking, 32-bit, 4 vectors requested (MMC 2) */
    assert_int_equal(rd16(ctx, msi + 2), 0x0104);
    wr16(ctx, msi + 2, 0xffff);     /* enable and MME only */
    assert_int_equal(rd16(ctx, msi + 2), 0x0175);
    wr32(ctx, msi + 4, 0xffffffff); /* address, dword aligned */
    assert_int_equal(rd32(ctx, msi + 4), 0xfffffffc);
    wr32(ctx, msi + 8, 0xffffffff); /* data: 16 bits */
    assert_int_equal(rd32(ctx, msi + 8), 0x0000ffff);
    wr32(ctx, msi + 0x0c, 0xffffffff);  /* mask: one bit a vector */
    assert_int_equal(rd32(ctx, msi + 0x0c), 0xf);
    wr32(ctx, msi + 0x10, 0xffffffff);  /* pending: read-only */
    assert_int_equal(rd32(ctx, msi + 0x10), 0);
    /* Enabled with vector 0 masked: the irq side sees it. */
    assert_true(mu_irq_masked(ctx, MU_IRQ_MSI, 0));
    wr16(ctx, msi + 2, 0x0000);
    assert_false(mu_irq_masked(ctx, MU_IRQ_MSI, 0));
}

static void test_cap_msi64(void **state)
{
    struct fixture *f = *state;
    mu_ctx_t *ctx = f->ctx;
    int msi = mu_pci_add_msi(ctx, 32, true);

    assert_true(msi > 0);
    assert_int_equal(mu_irqs_count(ctx, MU_IRQ_MSI), 32);
    assert_int_equal(mu_ctx_realize(ctx), 0);
    assert_int_equal(rd16(ctx, msi + 2), 0x018a);   /* 64-bit, MMC 5 */
    wr32(ctx, msi + 4, 0xffffffff);
    wr32(ctx, msi + 8, 0xffffffff);
    assert_int_equal(rd32(ctx, msi + 4), 0xfffffffc);
    assert_int_equal(rd32(ctx, msi + 8), 0xffffffff);
    wr32(ctx, msi + 0x0c, 0xffffffff);
    assert_int_equal(rd32(ctx, msi + 0x0c), 0x0000ffff);
    wr32(ctx, msi + 0x10, 0xffffffff);
    assert_int_equal(rd32(ctx, msi + 0x10), 0xffffffff);
    wr32(ctx, msi + 0x14, 0xffffffff);
    assert_int_equal(rd32(ctx, msi + 0x14), 0);
}

static void test_cap_msix(void **state)
{
    struct fixture *f = *state;
    mu_ctx_t *ctx = f->ctx;
    int msix;

    assert_int_equal(mu_region_setup(ctx, 4, 0x4000,
                                     MU_REGION_RW | MU_REGION_MEM, dummy_cb), 0);
    assert_int_equal(mu_region_setup(ctx, 1, 0x1000,
                                     MU_REGION_RW | MU_REGION_MEM, dummy_cb), 0);
    msix = mu_pci_add_msix(ctx, 128, 4, 0x2000, 1, 0x800);
    assert_true(msix > 0);
    assert_int_equal(mu_irqs_count(ctx, MU_IRQ_MSIX), 128);
    assert_int_equal(mu_ctx_realize(ctx), 0);
    assert_int_equal(rd8(ctx, msix), 0x11);
    assert_int_equal(rd16(ctx, msix + 2), 127);
    assert_int_equal(rd32(ctx, msix + 4), 0x2004);
    assert_int_equal(rd32(ctx, msix + 8), 0x0801);
    wr16(ctx, msix + 2, 0xffff);
    assert_int_equal(rd16(ctx, msix + 2), 0xc000 | 127);
    wr32(ctx, msix + 4, 0);
    wr32(ctx, msix + 8, 0);
    assert_int_equal(rd32(ctx, msix + 4), 0x2004);
    assert_int_equal(rd32(ctx, msix + 8), 0x0801);
    /* Enabled with the function mask: the irq side sees it. */
    assert_true(mu_irq_masked(ctx, MU_IRQ_MSIX, 5));
    wr16(ctx, msix + 2, 0);
    assert_false(mu_irq_masked(ctx, MU_IRQ_MSIX, 5));
}

/* What irq.c asks of config space instead of reading bytes itself. */
static void test_irq_side_queries(void **state)
{
    struct fixture *f = *state;
    mu_ctx_t *ctx = f->ctx;
    struct mu_pci_msix_layout l;
    int msi, msix;

    assert_false(mu_pci_has_msi(ctx));
    assert_false(mu_pci_has_msix(ctx));
    assert_false(mu_pci_msix_layout(ctx, &l));
    assert_int_equal(mu_region_setup(ctx, 4, 0x4000,
                                     MU_REGION_RW | MU_REGION_MEM, dummy_cb), 0);
    assert_int_equal(mu_region_setup(ctx, 1, 0x1000,
                                     MU_REGION_RW | MU_REGION_MEM, dummy_cb), 0);
    msi = mu_pci_add_msi(ctx, 4, true);
    msix = mu_pci_add_msix(ctx, 16, 4, 0x2000, 1, 0x800);
    assert_true(msi > 0 && msix > 0);
    assert_true(mu_pci_has_msi(ctx));
    assert_true(mu_pci_has_msix(ctx));
    assert_true(mu_pci_msix_layout(ctx, &l));
    assert_int_equal(l.table_bar, 4);
    assert_int_equal(l.table_off, 0x2000);
    assert_int_equal(l.pba_bar, 1);
    assert_int_equal(l.pba_off, 0x800);
    assert_int_equal(mu_ctx_realize(ctx), 0);

    /* The INTx disable bit as the guest wrote it, nothing else. */
    assert_false(mu_pci_intx_disabled(ctx));
    wr16(ctx, 4, 0x0400);
    assert_true(mu_pci_intx_disabled(ctx));
    wr16(ctx, 4, 0x0003);
    assert_false(mu_pci_intx_disabled(ctx));

    /* Turning the capabilities off clears the enable and function mask
     * bits only: the vector counts and other bits stay. */
    wr16(ctx, msi + 2, 0x0001 | 0x0020);            /* enable, MME 2 */
    wr16(ctx, msix + 2, 0xc000);
    mu_pci_irq_caps_off(ctx);
    assert_int_equal(rd16(ctx, msi + 2) & 0x0071, 0x0020);
    assert_int_equal(rd16(ctx, msix + 2), 15);
}

static void test_cap_errors(void **state)
{
    struct fixture *f = *state;
    mu_ctx_t *ctx = f->ctx;
    uint8_t big[253] = { 0 };

    assert_int_equal(mu_pci_add_msi(ctx, 0, false), -EINVAL);
    assert_int_equal(mu_pci_add_msi(ctx, 33, false), -EINVAL);
    assert_int_equal(mu_pci_add_msix(ctx, 0, 0, 0, 0, 0x100), -EINVAL);
    assert_int_equal(mu_pci_add_msix(ctx, 2049, 0, 0, 0, 0x100), -EINVAL);
    assert_int_equal(mu_pci_add_msix(ctx, 4, 6, 0, 0, 0x100), -EINVAL);
    assert_int_equal(mu_pci_add_msix(ctx, 4, 0, 0, 6, 0x100), -EINVAL);
    assert_int_equal(mu_pci_add_msix(ctx, 4, 0, 4, 0, 0x100), -EINVAL);
    assert_int_equal(mu_pci_add_msix(ctx, 4, 0, 0, 0, 0x104), -EINVAL);
    assert_int_equal(mu_pci_add_vendor(ctx, big, sizeof(big)), -EINVAL);
    assert_int_equal(mu_pci_add_vendor(ctx, NULL, 4), -EINVAL);
    assert_int_equal(mu_pci_add_pcie(ctx, MU_PCIE_ENDPOINT), -EINVAL);
    /* none of that touched the list */
    assert_int_equal(rd8(ctx, 0x34), 0);
    assert_int_equal(rd16(ctx, 0x06) & 0x10, 0);

    assert_true(mu_pci_add_pm(ctx) > 0);
    assert_int_equal(mu_pci_add_pm(ctx), -EEXIST);
    assert_true(mu_pci_add_msi(ctx, 1, false) > 0);
    assert_int_equal(mu_pci_add_msi(ctx, 1, false), -EEXIST);
    assert_true(mu_pci_add_vendor(ctx, NULL, 0) > 0);
    assert_true(mu_pci_add_vendor(ctx, big, 100) > 0);
    /* Space runs out below 256. */
    assert_int_equal(mu_pci_add_vendor(ctx, big, 100), -ENOSPC);
    assert_true(mu_pci_add_vendor(ctx, big, 20) > 0);
}

static void test_cap_fill_to_end(void **state)
{
    struct fixture *f = *state;
    mu_ctx_t *ctx = f->ctx;
    uint8_t buf[252] = { 0 };
    int off;

    /* 0x40 + 3 + 189 = 256 exactly: the last byte of config space. */
    off = mu_pci_add_vendor(ctx, buf, 189);
    assert_int_equal(off, 0x40);
    assert_int_equal(mu_pci_add_vendor(ctx, NULL, 0), -ENOSPC);
    assert_int_equal(mu_pci_add_pm(ctx), -ENOSPC);
    assert_int_equal(rd8(ctx, 0x42), 192);
}

static void test_cap_after_realize(void **state)
{
    struct fixture *f = *state;

    assert_int_equal(mu_ctx_realize(f->ctx), 0);
    assert_int_equal(mu_pci_add_pm(f->ctx), -EBUSY);
    assert_int_equal(mu_pci_add_msi(f->ctx, 1, false), -EBUSY);
    assert_int_equal(mu_pci_add_vendor(f->ctx, NULL, 0), -EBUSY);
    assert_int_equal(mu_pci_hook_config(f->ctx, 0x80, 4, dummy_cb), -EBUSY);
}

/* ---- PCI Express ---- */

static void test_pcie_auto_cap(void **state)
{
    struct fixture *f = *state;
    mu_ctx_t *ctx = f->ctx;
    uint8_t b;
    unsigned pcie;

    assert_int_equal(mu_pci_config_size(ctx), 4096);
    assert_true(mu_pci_add_pm(ctx) > 0);
    assert_int_equal(mu_ctx_realize(ctx), 0);
    pcie = find_cap(ctx, 0x10);
    assert_int_not_equal(pcie, 0);
    assert_int_equal(rd16(ctx, pcie + 2), 0x0002);  /* v2, endpoint */
    assert_true(rd32(ctx, pcie + 4) & (1u << 28));  /* FLR */
    assert_int_equal(cfg_rw(ctx, &b, 1, 4095, false), 1);
    assert_int_equal(cfg_rw(ctx, &b, 1, 4096, false), -EINVAL);
    assert_int_equal(cfg_rw(ctx, &b, 2, 4095, false), -EINVAL);
    /* No extended capabilities: the header at 0x100 reads 0. */
    assert_int_equal(rd32(ctx, 0x100), 0);
}

static void test_pcie_explicit_cap(void **state)
{
    struct fixture *f = *state;
    mu_ctx_t *ctx = f->ctx;
    int off;

    assert_int_equal(mu_pci_add_pcie(ctx, (enum mu_pcie_type)4), -EINVAL);
    off = mu_pci_add_pcie(ctx, MU_PCIE_RC_INTEGRATED);
    assert_true(off > 0);
    assert_int_equal(mu_pci_add_pcie(ctx, MU_PCIE_ENDPOINT), -EEXIST);
    assert_int_equal(mu_ctx_realize(ctx), 0);
    assert_int_equal(find_cap(ctx, 0x10), (unsigned)off);
    assert_int_equal(rd16(ctx, off + 2), 0x0092);
    assert_int_equal(rd8(ctx, off + 1), 0);     /* not added twice */
}

static unsigned resets;
static enum mu_reset_type last_reset;

static int reset_cb(mu_ctx_t *ctx, enum mu_reset_type type)
{
    (void)ctx;
    resets++;
    last_reset = type;
    return 0;
}

static void test_flr(void **state)
{
    struct fixture *f = *state;
    mu_ctx_t *ctx = f->ctx;
    unsigned pcie;
    uint16_t ctl;

    resets = 0;
    assert_int_equal(mu_ctx_set_reset_cb(ctx, reset_cb), 0);
    assert_int_equal(mu_ctx_realize(ctx), 0);
    pcie = find_cap(ctx, 0x10);
    ctl = rd16(ctx, pcie + 8);
    wr16(ctx, pcie + 8, ctl | 0x0001);
    assert_int_equal(resets, 0);
    assert_int_equal(rd16(ctx, pcie + 8), ctl | 0x0001);
    wr16(ctx, 0x04, 0x0006);
    wr8(ctx, 0x0c, 0x10);

    wr16(ctx, pcie + 8, ctl | 0x8000);
    assert_int_equal(resets, 1);
    assert_int_equal(last_reset, MU_RESET_FLR);
    /* The bit reads 0 and config space is back to its reset values. */
    assert_int_equal(rd16(ctx, pcie + 8), ctl);
    assert_int_equal(rd16(ctx, 0x04), 0);
    assert_int_equal(rd8(ctx, 0x0c), 0);
    /* A byte write of the high byte works too. */
    wr8(ctx, pcie + 9, 0x80);
    assert_int_equal(resets, 2);
    /* Other bytes of the register do not reset. */
    wr8(ctx, pcie + 8, 0xff);
    assert_int_equal(resets, 2);
}

/* ---- callbacks and hooks ---- */

static unsigned cmd_calls;
static uint16_t cmd_old, cmd_new;

static void command_cb(mu_ctx_t *ctx, uint16_t o, uint16_t n)
{
    (void)ctx;
    cmd_calls++;
    cmd_old = o;
    cmd_new = n;
}

static void test_command_cb(void **state)
{
    struct fixture *f = *state;
    mu_ctx_t *ctx = f->ctx;

    cmd_calls = 0;
    assert_int_equal(mu_pci_set_command_cb(ctx, command_cb), 0);
    assert_int_equal(mu_ctx_realize(ctx), 0);
    wr16(ctx, 0x04, 0x0006);
    assert_int_equal(cmd_calls, 1);
    assert_int_equal(cmd_old, 0);
    assert_int_equal(cmd_new, 0x0006);
    wr16(ctx, 0x04, 0x0006);
    assert_int_equal(cmd_calls, 1);     /* no change, no call */
    wr16(ctx, 0x04, 0x0030);            /* read-only bits only */
    assert_int_equal(cmd_calls, 2);
    assert_int_equal(cmd_new, 0);
    wr32(ctx, 0x04, 0xffffffff);
    assert_int_equal(cmd_calls, 3);
    assert_int_equal(cmd_new, 0x0547);
    wr8(ctx, 0x05, 0x00);
    assert_int_equal(cmd_calls, 4);
    assert_int_equal(cmd_old, 0x0547);
    assert_int_equal(cmd_new, 0x0047);
    wr8(ctx, 0x0c, 0x20);               /* elsewhere: no call */
    assert_int_equal(cmd_calls, 4);
    /* A reset that changes it tells the device too. */
    mu_pci_reset(ctx);
    assert_int_equal(cmd_calls, 5);
    assert_int_equal(cmd_new, 0);
}

static unsigned hook_calls;
static uint64_t hook_off;
static size_t hook_count;
static bool hook_write;

static ssize_t hook_cb(mu_ctx_t *ctx, void *buf, size_t count, uint64_t off,
                       bool is_write)
{
    (void)ctx;
    hook_calls++;
    hook_off = off;
    hook_count = count;
    hook_write = is_write;
    if (!is_write)
        memset(buf, 0x5a, count);
    return (ssize_t)count;
}

static void test_hooks(void **state)
{
    struct fixture *f = *state;
    mu_ctx_t *ctx = f->ctx;
    uint8_t buf[16] = { 0 };

    hook_calls = 0;
    assert_int_equal(mu_pci_hook_config(ctx, 0x3c, 4, hook_cb), -EINVAL);
    assert_int_equal(mu_pci_hook_config(ctx, 0x80, 0, hook_cb), -EINVAL);
    assert_int_equal(mu_pci_hook_config(ctx, 0x80, 4, NULL), -EINVAL);
    assert_int_equal(mu_pci_hook_config(ctx, 0xfc, 8, hook_cb), -EINVAL);
    assert_int_equal(mu_pci_hook_config(ctx, 0x80, 8, hook_cb), 0);
    assert_int_equal(mu_pci_hook_config(ctx, 0x84, 8, hook_cb), -EEXIST);
    assert_int_equal(mu_pci_hook_config(ctx, 0x7c, 8, hook_cb), -EEXIST);
    assert_int_equal(mu_pci_hook_config(ctx, 0x88, 4, hook_cb), 0);
    assert_int_equal(mu_pci_hook_config(ctx, 0x40, 4, hook_cb), 0);
    /* A capability cannot land on a hooked range. */
    assert_int_equal(mu_pci_add_pm(ctx), -EEXIST);
    assert_int_equal(mu_ctx_realize(ctx), 0);

    assert_int_equal(cfg_rw(ctx, buf, 4, 0x84, false), 4);
    assert_int_equal(hook_calls, 1);
    assert_int_equal(hook_off, 0x84);
    assert_int_equal(hook_count, 4);
    assert_false(hook_write);
    assert_int_equal(buf[0], 0x5a);
    assert_int_equal(cfg_rw(ctx, buf, 8, 0x80, true), 8);
    assert_int_equal(hook_calls, 2);
    assert_true(hook_write);
    /* Partial overlaps, or two owners in one access, are refused. */
    assert_int_equal(cfg_rw(ctx, buf, 4, 0x7e, false), -EINVAL);
    assert_int_equal(cfg_rw(ctx, buf, 4, 0x86, true), -EINVAL);
    assert_int_equal(cfg_rw(ctx, buf, 12, 0x80, false), -EINVAL);
    assert_int_equal(cfg_rw(ctx, buf, 16, 0x78, false), -EINVAL);
    assert_int_equal(hook_calls, 2);
    /* Bytes next to a hook are ours. */
    assert_int_equal(cfg_rw(ctx, buf, 4, 0x7c, false), 4);
    assert_int_equal(cfg_rw(ctx, buf, 4, 0x8c, true), 4);
    assert_int_equal(hook_calls, 2);
}

/* ---- realize checks and bounds ---- */

static void test_msix_outside_bar(void **state)
{
    struct fixture *f = *state;

    /* 64 vectors = 1 KiB of table at 0x800 in a 2 KiB BAR: 1 byte over. */
    assert_int_equal(mu_region_setup(f->ctx, 0, 0x800,
                                     MU_REGION_RW | MU_REGION_MEM, dummy_cb), 0);
    assert_true(mu_pci_add_msix(f->ctx, 64, 0, 0x408, 0, 0) > 0);
    assert_int_equal(mu_ctx_realize(f->ctx), -EINVAL);
}

static void test_msix_pba_outside_bar(void **state)
{
    struct fixture *f = *state;

    assert_int_equal(mu_region_setup(f->ctx, 0, 0x800,
                                     MU_REGION_RW | MU_REGION_MEM, dummy_cb), 0);
    assert_true(mu_pci_add_msix(f->ctx, 65, 0, 0, 0, 0x7f8) > 0);
    assert_int_equal(mu_ctx_realize(f->ctx), -EINVAL);
}

static void test_msix_bar_missing_or_io(void **state)
{
    struct fixture *f = *state;

    assert_true(mu_pci_add_msix(f->ctx, 4, 2, 0, 2, 0x100) > 0);
    assert_int_equal(mu_ctx_realize(f->ctx), -EINVAL);
    assert_int_equal(mu_region_setup(f->ctx, 2, 0x200, MU_REGION_RW,
                                     dummy_cb), 0);
    assert_int_equal(mu_ctx_realize(f->ctx), -EINVAL);
    assert_int_equal(mu_region_setup(f->ctx, 2, 0x200,
                                     MU_REGION_RW | MU_REGION_MEM, dummy_cb), 0);
    assert_int_equal(mu_ctx_realize(f->ctx), 0);
}

static void test_access_bounds(void **state)
{
    struct fixture *f = *state;
    mu_ctx_t *ctx = f->ctx;
    uint8_t buf[260] = { 0 };

    assert_int_equal(mu_ctx_realize(ctx), 0);
    assert_int_equal(cfg_rw(ctx, buf, 0, 0, false), -EINVAL);
    assert_int_equal(cfg_rw(ctx, buf, 0, 0, true), -EINVAL);
    assert_int_equal(cfg_rw(ctx, buf, 1, 256, false), -EINVAL);
    assert_int_equal(cfg_rw(ctx, buf, 2, 255, true), -EINVAL);
    assert_int_equal(cfg_rw(ctx, buf, 257, 0, false), -EINVAL);
    assert_int_equal(cfg_rw(ctx, buf, 4, UINT64_MAX, false), -EINVAL);
    assert_int_equal(cfg_rw(ctx, buf, 4, UINT64_MAX - 1, true), -EINVAL);
    assert_int_equal(cfg_rw(ctx, buf, 4, 1ull << 63, false), -EINVAL);
    assert_int_equal(mu_region_access(ctx, MU_PCI_CONFIG, buf, 4, 254, false),
                     -EINVAL);
    assert_int_equal(mu_region_access(ctx, MU_PCI_CONFIG, buf, 2, UINT64_MAX,
                                      true), -EINVAL);
    assert_int_equal(cfg_rw(ctx, buf, 256, 0, false), 256);
    assert_int_equal(cfg_rw(ctx, buf, 1, 255, true), 1);
}

static void test_reset_restores(void **state)
{
    struct fixture *f = *state;
    mu_ctx_t *ctx = f->ctx;
    int msi;

    assert_int_equal(mu_pci_set_ids(ctx, &test_ids), 0);
    msi = mu_pci_add_msi(ctx, 1, false);
    assert_int_equal(mu_region_setup(ctx, 0, 4096,
                                     MU_REGION_RW | MU_REGION_MEM, dummy_cb), 0);
    assert_int_equal(mu_ctx_realize(ctx), 0);
    wr32(ctx, 0x10, 0xfe000000);
    wr16(ctx, msi + 2, 0x0001);
    wr8(ctx, 0x3c, 9);
    mu_pci_reset(ctx);
    assert_int_equal(rd32(ctx, 0x10), 0);
    assert_int_equal(rd16(ctx, msi + 2), 0x0100);
    assert_int_equal(rd8(ctx, 0x3c), 0);
    assert_int_equal(rd16(ctx, 0), 0x494f);
    assert_int_equal(rd8(ctx, 0x34), msi);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup_pci, teardown)
#define TE(fn) cmocka_unit_test_setup_teardown(fn, setup_pcie, teardown)
        T(test_header_ids),
        T(test_set_ids_bad),
        T(test_readonly_bytes),
        T(test_rw_bits),
        T(test_status_w1c),
        T(test_bar_sizing),
        T(test_bar_64bit_large),
        T(test_bar_bad_layouts),
        T(test_bar_bad_layouts2),
        T(test_rom_bar),
        T(test_rom_too_small),
        T(test_no_rom),
        T(test_cap_list),
        T(test_cap_msi32),
        T(test_cap_msi64),
        T(test_cap_msix),
        T(test_irq_side_queries),
        T(test_cap_errors),
        T(test_cap_fill_to_end),
        T(test_cap_after_realize),
        TE(test_pcie_auto_cap),
        TE(test_pcie_explicit_cap),
        TE(test_flr),
        T(test_command_cb),
        T(test_hooks),
        T(test_msix_outside_bar),
        T(test_msix_pba_outside_bar),
        T(test_msix_bar_missing_or_io),
        T(test_access_bounds),
        T(test_reset_restores),
#undef T
#undef TE
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
