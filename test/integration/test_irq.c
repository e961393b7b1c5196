/*
 * test_irq.c - interrupts end to end: an in-process device (a thread running
 * mu_ctx_run on a socket in a private directory) with INTx, MSI (4 vectors,
 * 64-bit, per-vector masks) and MSI-X (8 vectors, table and PBA in memory
 * BAR0) on a PCI Express function, driven over the real socket by the client
 * library.  The device side raises vectors with mu_irq_trigger() from the
 * test thread (it is thread-safe) and the client sees its eventfds fire.
 *
 * Covered: DEVICE_GET_IRQ_INFO per index; eventfds for INTx, MSI and MSI-X;
 * masking by SET_IRQS, by the INTx automask, by the INTx-disable bit, by the
 * MSI mask bits and by the MSI-X table and function mask once the client
 * enables the capability in config space; pending vectors firing on unmask
 * (and on eventfd assignment); mask/unmask eventfds; teardown, de-assign and
 * replacement of eventfds; malformed SET_IRQS requests that must change
 * nothing; and that disconnect, DEVICE_RESET and FLR close every eventfd the
 * client handed over (counted in /proc/self/fd: client and server share this
 * process).
 *
 * Timing: a trigger writes the eventfd before mu_irq_trigger() returns, and
 * a SET_IRQS or config write is done before its reply comes back, so "did
 * not fire" is a plain non-blocking check.  Only what the server thread does
 * on its own (a mask/unmask eventfd, a disconnect) needs a bounded wait,
 * scaled by slow_factor() for valgrind.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"
#include "muser.h"
#include "muser-client.h"
#include "wire.h"

#define NMSI 4u
#define NMSIX 8u
#define BAR0_SIZE 0x4000u
#define TBL_OFF 0x0u
#define PBA_OFF 0x2000u

#define CFG_COMMAND 0x04
#define CMD_INTX_DISABLE 0x0400

/* Offsets inside the capabilities. */
#define MSI_CTRL 2
#define MSI_MASK64 0x10
#define MSI_CTRL_ENABLE 0x0001
#define MSIX_CTRL 2
#define MSIX_CTRL_ENABLE 0x8000
#define MSIX_CTRL_FMASK 0x4000
#define MSIX_ENTRY 16u
#define MSIX_VCTRL 12u
#define PCIE_DEVCTL 8
#define PCIE_DEVCTL_FLR 0x8000

#define TRIG_EFD (VFU_IRQ_SET_DATA_EVENTFD | VFU_IRQ_SET_ACTION_TRIGGER)
#define TRIG_NONE (VFU_IRQ_SET_DATA_NONE | VFU_IRQ_SET_ACTION_TRIGGER)
#define TRIG_BOOL (VFU_IRQ_SET_DATA_BOOL | VFU_IRQ_SET_ACTION_TRIGGER)
#define MASK_EFD (VFU_IRQ_SET_DATA_EVENTFD | VFU_IRQ_SET_ACTION_MASK)
#define MASK_BOOL (VFU_IRQ_SET_DATA_BOOL | VFU_IRQ_SET_ACTION_MASK)
#define UNMASK_EFD (VFU_IRQ_SET_DATA_EVENTFD | VFU_IRQ_SET_ACTION_UNMASK)

static struct inproc srv;      /* the device */
static struct {
    int msi_off, msix_off, pcie_off;
} dev;

/* Written on the context thread, read on the test thread. */
static unsigned bar0_calls;
static bool irq_state[MU_IRQ_NUM];
static unsigned resets;

static ssize_t bar0_access(mu_ctx_t *ctx, void *buf, size_t count,
                           uint64_t offset, bool is_write)
{
    (void)ctx;
    (void)offset;
    __atomic_add_fetch(&bar0_calls, 1, __ATOMIC_SEQ_CST);
    if (!is_write)
        memset(buf, 0x5a, count);
    return (ssize_t)count;
}

static void state_cb(mu_ctx_t *ctx, enum mu_irq_type type, bool on)
{
    (void)ctx;
    __atomic_store_n(&irq_state[type], on, __ATOMIC_SEQ_CST);
}

static int reset_cb(mu_ctx_t *ctx, enum mu_reset_type type)
{
    (void)ctx;
    (void)type;
    __atomic_add_fetch(&resets, 1, __ATOMIC_SEQ_CST);
    return 0;
}

static int group_setup(void **state)
{
    struct mu_pci_ids ids = {
        .vendor_id = 0x4d55, .device_id = 0x0001, .class_code = 0xff0000,
        .irq_pin = 1,
    };
    mu_ctx_t *ctx;
    int rc;

    (void)state;
    if (inproc_create(&srv, "irq.sock", MU_DEV_PCIE, NULL) < 0)
        return -1;
    ctx = srv.ctx;
    if ((rc = mu_pci_set_ids(ctx, &ids)) < 0 ||
        (rc = mu_region_setup(ctx, MU_PCI_BAR0, BAR0_SIZE,
                              MU_REGION_RW | MU_REGION_MEM, bar0_access)) < 0 ||
        (rc = mu_irq_setup(ctx, MU_IRQ_INTX, 1)) < 0 ||
        (rc = dev.msi_off = mu_pci_add_msi(ctx, NMSI, true)) < 0 ||
        (rc = dev.msix_off = mu_pci_add_msix(ctx, NMSIX, 0, TBL_OFF, 0,
                                             PBA_OFF)) < 0 ||
        (rc = dev.pcie_off = mu_pci_add_pcie(ctx, MU_PCIE_ENDPOINT)) < 0) {
        fprintf(stderr, "device setup: %s\n", strerror(-rc));
        return -1;
    }
    assert_int_equal(mu_irq_set_state_cb(ctx, state_cb), 0);
    assert_int_equal(mu_ctx_set_reset_cb(ctx, reset_cb), 0);
    return inproc_start(&srv) < 0 ? -1 : 0;
}

static int group_teardown(void **state)
{
    (void)state;
    inproc_stop(&srv);
    return 0;
}

/* ---------------- helpers ---------------- */

static int wait_ms(int ms)
{
    return ms * slow_factor();
}

static void nap(void)
{
    struct timespec ts = { 0, 2 * 1000 * 1000 };

    nanosleep(&ts, NULL);
}

static muc_t *live;     /* the test's client, closed by test_teardown */

/*
 * Each test starts from a device just reset, so tests do not depend on
 * what an earlier one left in config space (which outlives a client).
 */
static muc_t *client(void)
{
    muc_t *c = NULL;

    assert_int_equal(client_connect(&c, srv.sock), 0);
    live = c;
    assert_int_equal(muc_reset(c), 0);
    return c;
}

/*
 * Reset (so the server holds no eventfd of ours), close, and wait until the
 * server has let the client go: after that it touches no fd until the next
 * client, so fd counts taken then are stable.  test_disconnect_* covers
 * what a disconnect without the reset closes.
 */
static void client_close(muc_t *c)
{
    assert_int_equal(muc_reset(c), 0);
    muc_close(c);
    live = NULL;
    assert_true(inproc_wait_not_ready(&srv, 1000, 2000));
}

/* A failed test leaves its client connected; later tests need the
 * server free. */
static int test_teardown(void **state)
{
    (void)state;
    if (live != NULL) {
        muc_close(live);
        live = NULL;
        inproc_wait_not_ready(&srv, 1000, 2000);
    }
    return 0;
}

static int efd_new(void)
{
    int fd = eventfd(0, EFD_CLOEXEC);

    assert_true(fd >= 0);
    return fd;
}

static void efds_new(int *fds, unsigned n)
{
    for (unsigned i = 0; i < n; i++)
        fds[i] = efd_new();
}

static void efds_close(int *fds, unsigned n)
{
    for (unsigned i = 0; i < n; i++)
        close(fds[i]);
}

/* The eventfd fired exactly once since it was last read. */
static void expect_fired(int fd)
{
    assert_int_equal(muc_eventfd_wait(fd, wait_ms(2000)), 1);
}

/* Nothing was signalled: the server writes before it answers, so a short
 * look is enough. */
static void expect_silent(int fd)
{
    assert_int_equal(muc_eventfd_wait(fd, 10), 0);
}

static void expect_masked(enum mu_irq_type t, uint32_t v, bool masked)
{
    assert_int_equal(mu_irq_masked(srv.ctx, t, v), masked);
}

/* For what the server thread does on its own time (mask/unmask eventfds). */
static void wait_masked(enum mu_irq_type t, uint32_t v, bool masked)
{
    for (int i = 0; i < 1000 * slow_factor(); i++) {
        if (mu_irq_masked(srv.ctx, t, v) == masked)
            return;
        nap();
    }
    expect_masked(t, v, masked);
}

static int trig(enum mu_irq_type t, uint32_t v)
{
    return mu_irq_trigger(srv.ctx, t, v);
}

static void signal_efd(int fd)
{
    uint64_t one = 1;

    assert_int_equal(write(fd, &one, sizeof(one)), sizeof(one));
}

static uint64_t pba_read(muc_t *c)
{
    uint64_t pba = ~0ull;

    assert_int_equal(muc_region_read(c, MU_PCI_BAR0, PBA_OFF, &pba, 8), 0);
    return pba;
}

static void msix_vctrl(muc_t *c, uint32_t v, uint32_t val)
{
    assert_int_equal(muc_region_write(c, MU_PCI_BAR0,
                                      v * MSIX_ENTRY + MSIX_VCTRL, &val, 4), 0);
}

static void wait_fd_count(int want)
{
    assert_int_equal(wait_open_fds(want, 1000, 2000), want);
}

/* ---------------- tests ---------------- */

static void test_irq_info(void **state)
{
    static const struct {
        uint32_t flags, count;
    } want[MU_IRQ_NUM] = {
        [MU_IRQ_INTX] = { VFU_IRQ_INFO_EVENTFD | VFU_IRQ_INFO_MASKABLE |
                          VFU_IRQ_INFO_AUTOMASKED, 1 },
        [MU_IRQ_MSI] = { VFU_IRQ_INFO_EVENTFD | VFU_IRQ_INFO_MASKABLE |
                         VFU_IRQ_INFO_NORESIZE, NMSI },
        [MU_IRQ_MSIX] = { VFU_IRQ_INFO_EVENTFD | VFU_IRQ_INFO_MASKABLE |
                          VFU_IRQ_INFO_NORESIZE, NMSIX },
        [MU_IRQ_ERR] = { VFU_IRQ_INFO_EVENTFD, 1 },    /* the default */
        [MU_IRQ_REQ] = { VFU_IRQ_INFO_EVENTFD, 0 },
    };
    struct muc_device_info di;
    struct muc_region_info ri;
    struct muc_irq_info ii;
    uint16_t ctrl;
    uint32_t tbl, pba;
    uint8_t id, next, seen = 0;
    muc_t *c;

    (void)state;
    c = client();
    assert_int_equal(muc_device_info(c, &di), 0);
    assert_int_equal(di.num_irqs, MU_IRQ_NUM);
    for (unsigned i = 0; i < MU_IRQ_NUM; i++) {
        assert_int_equal(muc_irq_info(c, i, &ii), 0);
        assert_int_equal(ii.flags, want[i].flags);
        assert_int_equal(ii.count, want[i].count);
    }
    assert_int_equal(muc_irq_info(c, MU_IRQ_NUM, &ii), -EINVAL);
    assert_int_equal(muc_irq_info(c, UINT32_MAX, &ii), -EINVAL);

    /* PCI Express: 4 KiB of config space, and the capabilities a guest
     * driver would look for are on the list. */
    assert_int_equal(muc_region_info(c, MU_PCI_CONFIG, &ri), 0);
    assert_int_equal(ri.size, 4096);
    assert_int_equal(muc_config_read8(c, 0x34, &next), 0);
    for (int hops = 0; next != 0 && hops < 48; hops++) {
        assert_int_equal(muc_config_read8(c, next, &id), 0);
        if (id == 0x05) {
            assert_int_equal(next, dev.msi_off);
            seen |= 1;
        } else if (id == 0x11) {
            assert_int_equal(next, dev.msix_off);
            seen |= 2;
        } else if (id == 0x10) {
            assert_int_equal(next, dev.pcie_off);
            seen |= 4;
        }
        assert_int_equal(muc_config_read8(c, next + 1, &next), 0);
    }
    assert_int_equal(seen, 7);
    assert_int_equal(muc_config_read16(c, dev.msix_off + MSIX_CTRL, &ctrl), 0);
    assert_int_equal(ctrl, NMSIX - 1);
    assert_int_equal(muc_config_read32(c, dev.msix_off + 4, &tbl), 0);
    assert_int_equal(muc_config_read32(c, dev.msix_off + 8, &pba), 0);
    assert_int_equal(tbl, TBL_OFF | 0);
    assert_int_equal(pba, PBA_OFF | 0);
    client_close(c);
}

static void test_intx_automask(void **state)
{
    int efd;
    muc_t *c;

    (void)state;
    c = client();
    efd = efd_new();
    /* Raised before the client gave an fd: remembered, delivered on
     * assignment. */
    assert_int_equal(trig(MU_IRQ_INTX, 0), MU_IRQ_PENDING);
    assert_int_equal(muc_irq_set_eventfds(c, VFU_IRQ_INTX, 0, 1, &efd), 0);
    expect_fired(efd);
    assert_true(__atomic_load_n(&irq_state[MU_IRQ_INTX], __ATOMIC_SEQ_CST));

    /* Level-like: masked after firing until the client unmasks it. */
    expect_masked(MU_IRQ_INTX, 0, true);
    assert_int_equal(trig(MU_IRQ_INTX, 0), MU_IRQ_PENDING);
    expect_silent(efd);
    /* Unmask delivers the pending one, which masks it again. */
    assert_int_equal(muc_irq_mask(c, VFU_IRQ_INTX, 0, 1, false), 0);
    expect_fired(efd);
    expect_masked(MU_IRQ_INTX, 0, true);
    /* Unmask with nothing pending: open, and the next trigger goes. */
    assert_int_equal(muc_irq_mask(c, VFU_IRQ_INTX, 0, 1, false), 0);
    expect_silent(efd);
    expect_masked(MU_IRQ_INTX, 0, false);
    assert_int_equal(trig(MU_IRQ_INTX, 0), 0);
    expect_fired(efd);

    /* A client mask holds even an unmasked-by-EOI vector back. */
    assert_int_equal(muc_irq_mask(c, VFU_IRQ_INTX, 0, 1, false), 0);
    assert_int_equal(muc_irq_mask(c, VFU_IRQ_INTX, 0, 1, true), 0);
    assert_int_equal(trig(MU_IRQ_INTX, 0), MU_IRQ_PENDING);
    expect_silent(efd);
    assert_int_equal(muc_irq_mask(c, VFU_IRQ_INTX, 0, 1, false), 0);
    expect_fired(efd);

    /* The command register's INTx-disable bit gates it as well, and
     * clearing the bit delivers what was held. */
    assert_int_equal(muc_irq_mask(c, VFU_IRQ_INTX, 0, 1, false), 0);
    assert_int_equal(muc_config_write16(c, CFG_COMMAND, CMD_INTX_DISABLE), 0);
    expect_masked(MU_IRQ_INTX, 0, true);
    assert_int_equal(trig(MU_IRQ_INTX, 0), MU_IRQ_PENDING);
    expect_silent(efd);
    assert_int_equal(muc_config_write16(c, CFG_COMMAND, 0), 0);
    expect_fired(efd);
    expect_masked(MU_IRQ_INTX, 0, true);    /* automasked by that fire */

    client_close(c);
    close(efd);
}

static void test_intx_unmask_eventfd(void **state)
{
    int efd, ufd, mfd;
    muc_t *c;

    (void)state;
    c = client();
    efd = efd_new();
    ufd = efd_new();
    mfd = efd_new();
    assert_int_equal(muc_irq_set_eventfds(c, VFU_IRQ_INTX, 0, 1, &efd), 0);
    /* KVM's resampler style: the client signals an eventfd at EOI. */
    assert_int_equal(muc_set_irqs(c, UNMASK_EFD, VFU_IRQ_INTX, 0, 1, NULL,
                                  &ufd, 1), 0);
    assert_int_equal(muc_set_irqs(c, MASK_EFD, VFU_IRQ_INTX, 0, 1, NULL,
                                  &mfd, 1), 0);

    assert_int_equal(trig(MU_IRQ_INTX, 0), 0);
    expect_fired(efd);
    expect_masked(MU_IRQ_INTX, 0, true);
    /* No message: the server thread sees the eventfd and unmasks. */
    signal_efd(ufd);
    wait_masked(MU_IRQ_INTX, 0, false);
    expect_silent(efd);
    assert_int_equal(trig(MU_IRQ_INTX, 0), 0);
    expect_fired(efd);

    /* Raised while automasked: the unmask eventfd delivers it. */
    assert_int_equal(trig(MU_IRQ_INTX, 0), MU_IRQ_PENDING);
    expect_silent(efd);
    signal_efd(ufd);
    expect_fired(efd);
    wait_masked(MU_IRQ_INTX, 0, true);

    /* And the mask eventfd masks an open vector. */
    signal_efd(ufd);
    wait_masked(MU_IRQ_INTX, 0, false);
    signal_efd(mfd);
    wait_masked(MU_IRQ_INTX, 0, true);
    assert_int_equal(trig(MU_IRQ_INTX, 0), MU_IRQ_PENDING);
    expect_silent(efd);

    /* De-assigning the unmask eventfd stops it from acting. */
    assert_int_equal(muc_set_irqs(c, UNMASK_EFD, VFU_IRQ_INTX, 0, 1, NULL,
                                  NULL, 0), 0);
    signal_efd(ufd);
    /*
     * A (wrongly) still-watched fd would be acted on by now: the context
     * thread handles every fd ready at one epoll_wait before it waits
     * again, so the second of two round trips started after the signal
     * is answered only after the batch that saw it.
     */
    for (int i = 0; i < 2; i++) {
        struct muc_device_info di;

        assert_int_equal(muc_device_info(c, &di), 0);
    }
    expect_masked(MU_IRQ_INTX, 0, true);
    expect_silent(efd);

    client_close(c);
    close(efd);
    close(ufd);
    close(mfd);
}

static void test_msi(void **state)
{
    const uint8_t mask_bits[NMSI] = { 1, 0, 1, 0 };
    const uint8_t fire_bits[NMSI] = { 0, 1, 0, 1 };
    int efd[NMSI];
    muc_t *c;

    (void)state;
    c = client();
    efds_new(efd, NMSI);
    assert_int_equal(muc_irq_set_eventfds(c, VFU_IRQ_MSI, 0, NMSI, efd), 0);
    /* Each vector reaches its own eventfd and no other. */
    for (uint32_t v = 0; v < NMSI; v++) {
        assert_int_equal(trig(MU_IRQ_MSI, v), 0);
        for (uint32_t w = 0; w < NMSI; w++) {
            if (w == v)
                expect_fired(efd[w]);
            else
                expect_silent(efd[w]);
        }
    }
    /* MSI does not automask. */
    expect_masked(MU_IRQ_MSI, 0, false);

    /* SET_IRQS mask: pending, then delivered by unmask. */
    assert_int_equal(muc_irq_mask(c, VFU_IRQ_MSI, 2, 1, true), 0);
    expect_masked(MU_IRQ_MSI, 2, true);
    expect_masked(MU_IRQ_MSI, 1, false);
    assert_int_equal(trig(MU_IRQ_MSI, 2), MU_IRQ_PENDING);
    assert_int_equal(trig(MU_IRQ_MSI, 2), MU_IRQ_PENDING);
    expect_silent(efd[2]);
    assert_int_equal(muc_irq_mask(c, VFU_IRQ_MSI, 2, 1, false), 0);
    expect_fired(efd[2]);   /* one interrupt, however often raised */
    assert_int_equal(trig(MU_IRQ_MSI, 2), 0);
    expect_fired(efd[2]);

    /* DATA_BOOL picks vectors. */
    assert_int_equal(muc_set_irqs(c, MASK_BOOL, VFU_IRQ_MSI, 0, NMSI,
                                  mask_bits, NULL, 0), 0);
    for (uint32_t v = 0; v < NMSI; v++)
        expect_masked(MU_IRQ_MSI, v, mask_bits[v]);
    assert_int_equal(muc_irq_mask(c, VFU_IRQ_MSI, 0, NMSI, false), 0);
    /* The client may ask the device to fire vectors itself. */
    assert_int_equal(muc_set_irqs(c, TRIG_BOOL, VFU_IRQ_MSI, 0, NMSI,
                                  fire_bits, NULL, 0), 0);
    for (uint32_t v = 0; v < NMSI; v++) {
        if (fire_bits[v])
            expect_fired(efd[v]);
        else
            expect_silent(efd[v]);
    }
    assert_int_equal(muc_set_irqs(c, TRIG_NONE, VFU_IRQ_MSI, 3, 1, NULL,
                                  NULL, 0), 0);
    expect_fired(efd[3]);

    /* Through our MSI capability: the mask bits count once enabled. */
    assert_int_equal(muc_config_write32(c, dev.msi_off + MSI_MASK64, 0x2), 0);
    assert_int_equal(trig(MU_IRQ_MSI, 1), 0);   /* not enabled: no effect */
    expect_fired(efd[1]);
    assert_int_equal(muc_config_write16(c, dev.msi_off + MSI_CTRL,
                                        MSI_CTRL_ENABLE | (2 << 4)), 0);
    assert_true(__atomic_load_n(&irq_state[MU_IRQ_MSI], __ATOMIC_SEQ_CST));
    expect_masked(MU_IRQ_MSI, 1, true);
    assert_int_equal(trig(MU_IRQ_MSI, 1), MU_IRQ_PENDING);
    expect_silent(efd[1]);
    assert_int_equal(trig(MU_IRQ_MSI, 0), 0);
    expect_fired(efd[0]);
    assert_int_equal(muc_config_write32(c, dev.msi_off + MSI_MASK64, 0), 0);
    expect_fired(efd[1]);
    assert_int_equal(muc_config_write16(c, dev.msi_off + MSI_CTRL, 0), 0);

    client_close(c);
    efds_close(efd, NMSI);
}

static void test_msix_config_space(void **state)
{
    uint32_t entry[4] = { 0xfee00000, 0, 0x4021, 0xffffffff }, back[4];
    uint16_t ctrl;
    int efd[NMSIX];
    muc_t *c;

    (void)state;
    c = client();
    efds_new(efd, NMSIX);
    assert_int_equal(muc_irq_set_eventfds(c, VFU_IRQ_MSIX, 0, NMSIX, efd), 0);
    assert_true(__atomic_load_n(&irq_state[MU_IRQ_MSIX], __ATOMIC_SEQ_CST));

    /* Until the client enables MSI-X in our config space, the table's
     * reset mask bits do not count (QEMU never forwards them). */
    for (uint32_t v = 0; v < NMSIX; v++)
        expect_masked(MU_IRQ_MSIX, v, false);
    assert_int_equal(trig(MU_IRQ_MSIX, 5), 0);
    expect_fired(efd[5]);

    /* Enabled, but the table never written: the client emulates it (as
     * QEMU does), so its reset mask bits still hold nothing. */
    assert_int_equal(muc_config_write16(c, dev.msix_off + MSIX_CTRL,
                                        MSIX_CTRL_ENABLE), 0);
    assert_int_equal(muc_config_read16(c, dev.msix_off + MSIX_CTRL, &ctrl), 0);
    assert_int_equal(ctrl, MSIX_CTRL_ENABLE | (NMSIX - 1));
    for (uint32_t v = 0; v < NMSIX; v++)
        expect_masked(MU_IRQ_MSIX, v, false);
    assert_int_equal(trig(MU_IRQ_MSIX, 5), 0);
    expect_fired(efd[5]);

    /* The first table write shows the client writes the table through:
     * from then on every vector starts masked, as the table says. */
    msix_vctrl(c, NMSIX - 1, 1);
    for (uint32_t v = 0; v < NMSIX; v++)
        expect_masked(MU_IRQ_MSIX, v, true);
    assert_int_equal(pba_read(c), 0);
    assert_int_equal(trig(MU_IRQ_MSIX, 0), MU_IRQ_PENDING);
    assert_int_equal(trig(MU_IRQ_MSIX, 6), MU_IRQ_PENDING);
    expect_silent(efd[0]);
    expect_silent(efd[6]);
    assert_int_equal(pba_read(c), (1u << 0) | (1u << 6));
    /* A dword read of the PBA is its low half. */
    {
        uint32_t lo = 0;

        assert_int_equal(muc_region_read(c, MU_PCI_BAR0, PBA_OFF, &lo, 4), 0);
        assert_int_equal(lo, (1u << 0) | (1u << 6));
    }

    /* Clearing a vector's mask bit in the table delivers its pending
     * interrupt and clears its PBA bit. */
    msix_vctrl(c, 0, 0);
    expect_fired(efd[0]);
    expect_silent(efd[6]);
    expect_masked(MU_IRQ_MSIX, 0, false);
    assert_int_equal(pba_read(c), 1u << 6);
    assert_int_equal(trig(MU_IRQ_MSIX, 0), 0);
    expect_fired(efd[0]);

    /* The table holds what the guest programs; vector control keeps only
     * its mask bit. */
    assert_int_equal(muc_region_write(c, MU_PCI_BAR0, 3 * MSIX_ENTRY, entry,
                                      sizeof(entry)), -EINVAL); /* 16 bytes */
    assert_int_equal(muc_region_write(c, MU_PCI_BAR0, 3 * MSIX_ENTRY, entry,
                                      8), 0);
    assert_int_equal(muc_region_write(c, MU_PCI_BAR0, 3 * MSIX_ENTRY + 8,
                                      &entry[2], 8), 0);
    assert_int_equal(muc_region_read(c, MU_PCI_BAR0, 3 * MSIX_ENTRY, back, 8), 0);
    assert_int_equal(muc_region_read(c, MU_PCI_BAR0, 3 * MSIX_ENTRY + 8,
                                     &back[2], 8), 0);
    assert_int_equal(back[0], entry[0]);
    assert_int_equal(back[1], entry[1]);
    assert_int_equal(back[2], entry[2]);
    assert_int_equal(back[3], 1);
    /* Only aligned dword/qword accesses inside the table. */
    assert_int_equal(muc_region_read(c, MU_PCI_BAR0, 2, back, 2), -EINVAL);
    assert_int_equal(muc_region_read(c, MU_PCI_BAR0, 4, back, 8), -EINVAL);
    /* The PBA is read-only. */
    {
        uint64_t ones = ~0ull;

        assert_int_equal(muc_region_write(c, MU_PCI_BAR0, PBA_OFF, &ones, 8), 0);
        assert_int_equal(pba_read(c), 1u << 6);
    }
    /* Neither area reached the device's callback; the rest of the BAR
     * does. */
    {
        unsigned before = __atomic_load_n(&bar0_calls, __ATOMIC_SEQ_CST);
        uint32_t v;

        assert_int_equal(muc_region_read(c, MU_PCI_BAR0, 0x1000, &v, 4), 0);
        assert_int_equal(v, 0x5a5a5a5a);
        assert_int_equal(__atomic_load_n(&bar0_calls, __ATOMIC_SEQ_CST),
                         before + 1);
    }

    /* Function mask holds every vector; clearing it delivers. */
    assert_int_equal(muc_config_write16(c, dev.msix_off + MSIX_CTRL,
                                        MSIX_CTRL_ENABLE | MSIX_CTRL_FMASK), 0);
    expect_masked(MU_IRQ_MSIX, 0, true);
    assert_int_equal(trig(MU_IRQ_MSIX, 0), MU_IRQ_PENDING);
    expect_silent(efd[0]);
    assert_int_equal(muc_config_write16(c, dev.msix_off + MSIX_CTRL,
                                        MSIX_CTRL_ENABLE), 0);
    expect_fired(efd[0]);
    expect_silent(efd[6]);  /* still masked in the table */

    /* A SET_IRQS mask is another source: the table bit clear is not
     * enough. */
    assert_int_equal(muc_irq_mask(c, VFU_IRQ_MSIX, 0, 1, true), 0);
    assert_int_equal(trig(MU_IRQ_MSIX, 0), MU_IRQ_PENDING);
    expect_silent(efd[0]);
    assert_int_equal(muc_irq_mask(c, VFU_IRQ_MSIX, 0, 1, false), 0);
    expect_fired(efd[0]);

    /* Disabling MSI-X: table masks stop counting; vector 6 stays pending
     * without a burst, and the next trigger goes straight out. */
    assert_int_equal(muc_config_write16(c, dev.msix_off + MSIX_CTRL, 0), 0);
    expect_silent(efd[6]);
    assert_int_equal(trig(MU_IRQ_MSIX, 6), 0);
    expect_fired(efd[6]);

    client_close(c);
    efds_close(efd, NMSIX);
}

static void test_teardown_count0(void **state)
{
    int efd[NMSIX], late;
    int before;
    muc_t *c;

    (void)state;
    c = client();
    efds_new(efd, NMSIX);
    assert_int_equal(muc_irq_set_eventfds(c, VFU_IRQ_MSIX, 0, NMSIX, efd), 0);
    assert_int_equal(trig(MU_IRQ_MSIX, 1), 0);
    expect_fired(efd[1]);
    assert_int_equal(muc_irq_mask(c, VFU_IRQ_MSIX, 2, 1, true), 0);
    assert_int_equal(trig(MU_IRQ_MSIX, 2), MU_IRQ_PENDING);  /* pending */

    /* count 0: DATA_NONE | ACTION_TRIGGER, start 0 -- the index is off. */
    before = count_open_fds();
    assert_int_equal(muc_set_irqs(c, TRIG_NONE, VFU_IRQ_MSIX, 0, 0, NULL,
                                  NULL, 0), 0);
    assert_int_equal(count_open_fds(), before - (int)NMSIX);
    assert_false(__atomic_load_n(&irq_state[MU_IRQ_MSIX], __ATOMIC_SEQ_CST));
    for (uint32_t v = 0; v < NMSIX; v++) {
        expect_masked(MU_IRQ_MSIX, v, false);   /* masks forgotten too */
        assert_int_equal(trig(MU_IRQ_MSIX, v), MU_IRQ_PENDING);
    }
    for (uint32_t v = 0; v < NMSIX; v++)
        expect_silent(efd[v]);

    /* What was raised since is pending and fires on assignment. */
    late = efd_new();
    assert_int_equal(muc_irq_set_eventfds(c, VFU_IRQ_MSIX, 7, 1, &late), 0);
    expect_fired(late);
    expect_silent(efd[7]);

    /* Only DATA_NONE | TRIGGER from vector 0 may have count 0. */
    assert_int_equal(muc_set_irqs(c, TRIG_NONE, VFU_IRQ_MSIX, 1, 0, NULL,
                                  NULL, 0), -EINVAL);
    assert_int_equal(muc_set_irqs(c, TRIG_EFD, VFU_IRQ_MSIX, 0, 0, NULL,
                                  NULL, 0), -EINVAL);
    assert_int_equal(muc_set_irqs(c, VFU_IRQ_SET_DATA_NONE |
                                  VFU_IRQ_SET_ACTION_MASK, VFU_IRQ_MSIX, 0, 0,
                                  NULL, NULL, 0), -EINVAL);
    assert_int_equal(trig(MU_IRQ_MSIX, 7), 0);
    expect_fired(late);

    client_close(c);
    efds_close(efd, NMSIX);
    close(late);
}

static void test_deassign_and_replace(void **state)
{
    int efd[NMSI], repl, n;
    muc_t *c;

    (void)state;
    c = client();
    efds_new(efd, NMSI);
    assert_int_equal(muc_irq_set_eventfds(c, VFU_IRQ_MSI, 0, NMSI, efd), 0);

    /* TRIGGER + EVENTFD without fds de-assigns the range only. */
    n = count_open_fds();
    assert_int_equal(muc_irq_clear_eventfds(c, VFU_IRQ_MSI, 1, 2), 0);
    assert_int_equal(count_open_fds(), n - 2);
    assert_int_equal(trig(MU_IRQ_MSI, 1), MU_IRQ_PENDING);
    assert_int_equal(trig(MU_IRQ_MSI, 2), MU_IRQ_PENDING);
    expect_silent(efd[1]);
    expect_silent(efd[2]);
    assert_int_equal(trig(MU_IRQ_MSI, 0), 0);
    assert_int_equal(trig(MU_IRQ_MSI, 3), 0);
    expect_fired(efd[0]);
    expect_fired(efd[3]);
    assert_true(__atomic_load_n(&irq_state[MU_IRQ_MSI], __ATOMIC_SEQ_CST));

    /* Replacing an eventfd: the old one is closed by the server and no
     * longer fires. */
    repl = efd_new();
    n = count_open_fds();
    assert_int_equal(muc_irq_set_eventfds(c, VFU_IRQ_MSI, 0, 1, &repl), 0);
    assert_int_equal(count_open_fds(), n);      /* one in, one out */
    assert_int_equal(trig(MU_IRQ_MSI, 0), 0);
    expect_fired(repl);
    expect_silent(efd[0]);

    /* Removing the last ones turns the index off for the device. */
    assert_int_equal(muc_irq_clear_eventfds(c, VFU_IRQ_MSI, 0, NMSI), 0);
    assert_false(__atomic_load_n(&irq_state[MU_IRQ_MSI], __ATOMIC_SEQ_CST));
    for (uint32_t v = 0; v < NMSI; v++)
        assert_int_equal(trig(MU_IRQ_MSI, v), MU_IRQ_PENDING);
    expect_silent(repl);

    client_close(c);
    efds_close(efd, NMSI);
    close(repl);
}

/* After a refused SET_IRQS: vectors 0 and 1 still signal 'keep' alone,
 * and nothing was written to the newcomers. */
static void expect_unchanged(int keep, int other, int pipe_rd)
{
    struct pollfd p = { .fd = pipe_rd, .events = POLLIN };

    for (uint32_t v = 0; v < 2; v++) {
        assert_int_equal(trig(MU_IRQ_MSIX, v), 0);
        expect_fired(keep);
    }
    expect_silent(other);
    assert_int_equal(poll(&p, 1, 0), 0);
}

static void test_bad_requests(void **state)
{
    const uint32_t two_data = VFU_IRQ_SET_DATA_NONE | VFU_IRQ_SET_DATA_BOOL |
                              VFU_IRQ_SET_ACTION_TRIGGER;
    const uint8_t bad_bool[2] = { 1, 2 };
    struct muc_device_info di;
    int keep, other, pfd[2], mixed[2], n;
    muc_t *c;

    (void)state;
    c = client();
    keep = efd_new();
    other = efd_new();
    assert_int_equal(pipe2(pfd, O_CLOEXEC | O_NONBLOCK), 0);
    /* Vectors 0 and 1 both on 'keep'. */
    {
        int two[2] = { keep, keep };

        assert_int_equal(muc_irq_set_eventfds(c, VFU_IRQ_MSIX, 0, 2, two), 0);
    }
    n = count_open_fds();

    /* Index past the last, and an index with no vectors. */
    assert_int_equal(muc_irq_set_eventfds(c, MU_IRQ_NUM, 0, 1, &other), -EINVAL);
    assert_int_equal(muc_irq_set_eventfds(c, VFU_IRQ_REQ, 0, 1, &other), -EINVAL);
    assert_int_equal(muc_irq_mask(c, 77, 0, 1, true), -EINVAL);
    /* Ranges past the vector count. */
    assert_int_equal(muc_irq_set_eventfds(c, VFU_IRQ_MSIX, NMSIX, 1, &other),
                     -EINVAL);
    mixed[0] = mixed[1] = other;
    assert_int_equal(muc_irq_set_eventfds(c, VFU_IRQ_MSIX, NMSIX - 1, 2, mixed),
                     -EINVAL);
    assert_int_equal(muc_irq_mask(c, VFU_IRQ_MSIX, 0, NMSIX + 1, true), -EINVAL);
    assert_int_equal(muc_irq_set_eventfds(c, VFU_IRQ_INTX, 1, 1, &other),
                     -EINVAL);
    assert_int_equal(muc_set_irqs(c, TRIG_EFD, VFU_IRQ_MSIX, UINT32_MAX, 2,
                                  NULL, mixed, 2), -EINVAL);
    /* An fd count that is neither 0 nor count. */
    assert_int_equal(muc_set_irqs(c, TRIG_EFD, VFU_IRQ_MSIX, 0, 2, NULL,
                                  &other, 1), -EINVAL);
    assert_int_equal(muc_set_irqs(c, TRIG_EFD, VFU_IRQ_MSIX, 0, 1, NULL,
                                  mixed, 2), -EINVAL);
    /* Fds with DATA_NONE. */
    assert_int_equal(muc_set_irqs(c, TRIG_NONE, VFU_IRQ_MSIX, 0, 1, NULL,
                                  &other, 1), -EINVAL);
    /* Not an eventfd, alone or with a good one (all or nothing). */
    assert_int_equal(muc_irq_set_eventfds(c, VFU_IRQ_MSIX, 0, 1, &pfd[1]),
                     -EINVAL);
    mixed[0] = other;
    mixed[1] = pfd[1];
    assert_int_equal(muc_irq_set_eventfds(c, VFU_IRQ_MSIX, 0, 2, mixed),
                     -EINVAL);
    assert_int_equal(muc_set_irqs(c, UNMASK_EFD, VFU_IRQ_MSIX, 0, 1, NULL,
                                  &pfd[0], 1), -EINVAL);
    /* Flag combinations. */
    assert_int_equal(muc_set_irqs(c, two_data, VFU_IRQ_MSIX, 0, 1, NULL, NULL,
                                  0), -EINVAL);
    assert_int_equal(muc_set_irqs(c, VFU_IRQ_SET_DATA_NONE, VFU_IRQ_MSIX, 0, 1,
                                  NULL, NULL, 0), -EINVAL);
    assert_int_equal(muc_set_irqs(c, VFU_IRQ_SET_DATA_NONE |
                                  VFU_IRQ_SET_ACTION_MASK |
                                  VFU_IRQ_SET_ACTION_UNMASK, VFU_IRQ_MSIX, 0,
                                  1, NULL, NULL, 0), -EINVAL);
    assert_int_equal(muc_set_irqs(c, TRIG_EFD | 0x100, VFU_IRQ_MSIX, 0, 1,
                                  NULL, &other, 1), -EINVAL);
    assert_int_equal(muc_set_irqs(c, TRIG_BOOL, VFU_IRQ_MSIX, 0, 2, bad_bool,
                                  NULL, 0), -EINVAL);

    /* Every fd sent with a refused request was closed by the server, the
     * old assignment holds, and nothing reached the newcomers. */
    assert_int_equal(count_open_fds(), n);
    expect_unchanged(keep, other, pfd[0]);
    expect_masked(MU_IRQ_MSIX, 0, false);

    /* The connection still serves. */
    assert_int_equal(muc_device_info(c, &di), 0);
    assert_int_equal(muc_irq_set_eventfds(c, VFU_IRQ_MSIX, 1, 1, &other), 0);
    assert_int_equal(trig(MU_IRQ_MSIX, 1), 0);
    expect_fired(other);
    expect_silent(keep);

    client_close(c);
    close(keep);
    close(other);
    close(pfd[0]);
    close(pfd[1]);
}

/* Hand over one eventfd per vector of every type, plus mask/unmask fds
 * for INTx.  Returns how many fds the server now holds. */
static int assign_all(muc_t *c, int *fds)
{
    assert_int_equal(muc_irq_set_eventfds(c, VFU_IRQ_INTX, 0, 1, fds), 0);
    assert_int_equal(muc_set_irqs(c, UNMASK_EFD, VFU_IRQ_INTX, 0, 1, NULL,
                                  fds + 1, 1), 0);
    assert_int_equal(muc_set_irqs(c, MASK_EFD, VFU_IRQ_INTX, 0, 1, NULL,
                                  fds + 2, 1), 0);
    assert_int_equal(muc_irq_set_eventfds(c, VFU_IRQ_MSI, 0, NMSI, fds + 3), 0);
    assert_int_equal(muc_irq_set_eventfds(c, VFU_IRQ_MSIX, 0, NMSIX,
                                          fds + 3 + NMSI), 0);
    return 3 + NMSI + NMSIX;
}

#define NALL (3 + NMSI + NMSIX)

static void expect_all_gone(const int *fds)
{
    assert_int_equal(trig(MU_IRQ_INTX, 0), MU_IRQ_PENDING);
    for (uint32_t v = 0; v < NMSI; v++)
        assert_int_equal(trig(MU_IRQ_MSI, v), MU_IRQ_PENDING);
    for (uint32_t v = 0; v < NMSIX; v++)
        assert_int_equal(trig(MU_IRQ_MSIX, v), MU_IRQ_PENDING);
    for (unsigned i = 0; i < NALL; i++)
        expect_silent(fds[i]);
}

static void test_reset_closes_eventfds(void **state)
{
    unsigned r0;
    int fds[NALL], n;
    muc_t *c;

    (void)state;
    c = client();
    efds_new(fds, NALL);
    n = count_open_fds();
    assert_int_equal(assign_all(c, fds), NALL);
    assert_int_equal(count_open_fds(), n + NALL);
    assert_int_equal(muc_config_write16(c, dev.msix_off + MSIX_CTRL,
                                        MSIX_CTRL_ENABLE), 0);

    r0 = __atomic_load_n(&resets, __ATOMIC_SEQ_CST);
    assert_int_equal(muc_reset(c), 0);
    assert_int_equal(__atomic_load_n(&resets, __ATOMIC_SEQ_CST), r0 + 1);
    assert_int_equal(count_open_fds(), n);
    expect_all_gone(fds);
    for (unsigned t = 0; t < MU_IRQ_NUM; t++)
        assert_false(__atomic_load_n(&irq_state[t], __ATOMIC_SEQ_CST));
    /* The capability is back to its reset value too, so the table masks
     * no longer count. */
    {
        uint16_t ctrl;

        assert_int_equal(muc_config_read16(c, dev.msix_off + MSIX_CTRL,
                                           &ctrl), 0);
        assert_int_equal(ctrl, NMSIX - 1);
    }

    /* A function-level reset through the PCIe capability does the same.
     * What expect_all_gone() raised meanwhile is delivered on assignment
     * (INTx, MSI and MSI-X trigger fds; not the INTx mask/unmask ones). */
    assert_int_equal(assign_all(c, fds), NALL);
    assert_int_equal(count_open_fds(), n + NALL);
    expect_fired(fds[0]);
    expect_silent(fds[1]);
    expect_silent(fds[2]);
    for (unsigned i = 3; i < NALL; i++)
        expect_fired(fds[i]);
    assert_int_equal(muc_config_write16(c, dev.pcie_off + PCIE_DEVCTL,
                                        PCIE_DEVCTL_FLR), 0);
    assert_int_equal(count_open_fds(), n);
    expect_all_gone(fds);

    /* And the device takes new eventfds after either. */
    assert_int_equal(muc_irq_set_eventfds(c, VFU_IRQ_MSIX, 4, 1, fds), 0);
    /* (vector 4 was raised above while unassigned: delivered now) */
    expect_fired(fds[0]);
    assert_int_equal(trig(MU_IRQ_MSIX, 4), 0);
    expect_fired(fds[0]);

    client_close(c);
    efds_close(fds, NALL);
}

static void test_disconnect_closes_eventfds(void **state)
{
    int fds[NALL], base, ours;
    muc_t *c = NULL;

    (void)state;
    /* The server is idle here, between clients. */
    base = count_open_fds();
    efds_new(fds, NALL);
    ours = base + NALL;
    assert_int_equal(client_connect(&c, srv.sock), 0);
    live = c;
    /* Both ends of the connection now live in this process (and the
     * server's timer went, harness.h). */
    wait_fd_count(ours + 2 + SERVER_FDS_ATTACH);
    assert_int_equal(assign_all(c, fds), NALL);
    assert_int_equal(count_open_fds(), ours + 2 + SERVER_FDS_ATTACH + NALL);

    muc_close(c);
    live = NULL;
    /* The server notices on its own thread; nothing of the client's may
     * stay with it once it has (its detach is over: harness.h). */
    assert_true(inproc_wait_not_ready(&srv, 1000, 2000));
    assert_int_equal(count_open_fds(), ours);
    expect_all_gone(fds);
    efds_close(fds, NALL);
    assert_int_equal(count_open_fds(), base);

    /* The next client is served as usual. */
    {
        struct muc_device_info di;

        c = client();
        assert_int_equal(muc_device_info(c, &di), 0);
        client_close(c);
    }
}

/*
 * A disconnect puts the interrupt state back to its reset values (the MSI-X
 * table masks every vector again, the enable state is forgotten); the
 * capability's control register a new client reads must say the same, or
 * it would believe MSI-X on, with every vector masked, while the device's
 * interrupts go straight out.
 */
static void test_disconnect_resets_msi_enable(void **state)
{
    uint16_t msix_ctrl, msi_ctrl;
    uint32_t vctrl;
    int efd;
    muc_t *c = NULL;

    (void)state;
    c = client();
    assert_int_equal(muc_config_write16(c, dev.msix_off + MSIX_CTRL,
                                        MSIX_CTRL_ENABLE), 0);
    assert_int_equal(muc_config_write16(c, dev.msi_off + MSI_CTRL,
                                        MSI_CTRL_ENABLE), 0);
    msix_vctrl(c, 2, 0);
    expect_masked(MU_IRQ_MSIX, 1, true);
    muc_close(c);   /* no reset: just gone */
    live = NULL;

    /* The next client, as QEMU would, does not reset first. */
    assert_int_equal(client_connect(&c, srv.sock), 0);
    live = c;
    assert_int_equal(muc_config_read16(c, dev.msix_off + MSIX_CTRL,
                                       &msix_ctrl), 0);
    assert_int_equal(muc_config_read16(c, dev.msi_off + MSI_CTRL,
                                       &msi_ctrl), 0);
    assert_int_equal(muc_region_read(c, MU_PCI_BAR0,
                                     2 * MSIX_ENTRY + MSIX_VCTRL, &vctrl, 4), 0);
    assert_int_equal(vctrl, 1);     /* the table is back to reset */
    assert_int_equal(msix_ctrl & MSIX_CTRL_ENABLE, 0);
    assert_int_equal(msi_ctrl & MSI_CTRL_ENABLE, 0);
    /* ...which is what the interrupt state does. */
    efd = efd_new();
    assert_int_equal(muc_irq_set_eventfds(c, VFU_IRQ_MSIX, 1, 1, &efd), 0);
    expect_masked(MU_IRQ_MSIX, 1, false);
    assert_int_equal(trig(MU_IRQ_MSIX, 1), 0);
    expect_fired(efd);
    /* Enabling again: this client has not written the table (the last
     * one's writes do not count for it), so it is taken as emulating the
     * table; its first table write gives real PCI semantics again. */
    assert_int_equal(muc_config_write16(c, dev.msix_off + MSIX_CTRL,
                                        MSIX_CTRL_ENABLE), 0);
    expect_masked(MU_IRQ_MSIX, 1, false);
    msix_vctrl(c, 3, 1);
    expect_masked(MU_IRQ_MSIX, 1, true);
    client_close(c);
    close(efd);
}

/*
 * Triggers from a device thread while the client keeps replacing the
 * eventfd: the server closes old fds under its lock, so a trigger never
 * writes to a closed (or reused) fd.  Under ASan/valgrind this would show
 * up as an error; here every trigger must return 0 (the vector always has
 * an fd), and afterwards only the last fd assigned may see interrupts.
 */
struct storm {
    bool stop;
    unsigned fired, bad;
};

static void *trigger_storm(void *arg)
{
    struct storm *s = arg;

    while (!__atomic_load_n(&s->stop, __ATOMIC_SEQ_CST)) {
        if (trig(MU_IRQ_MSIX, 3) == 0)
            __atomic_add_fetch(&s->fired, 1, __ATOMIC_SEQ_CST);
        else
            __atomic_add_fetch(&s->bad, 1, __ATOMIC_SEQ_CST);
    }
    return NULL;
}

static void test_trigger_races_replace(void **state)
{
    struct storm s = { 0 };
    unsigned during = 0;
    pthread_t th;
    int efd[2], i;
    muc_t *c;

    (void)state;
    c = client();
    efds_new(efd, 2);
    assert_int_equal(muc_irq_set_eventfds(c, VFU_IRQ_MSIX, 3, 1, &efd[0]), 0);
    assert_int_equal(pthread_create(&th, NULL, trigger_storm, &s), 0);
    /* Wait for the storm to be under way, so the replacements below meet
     * it even on a loaded machine. */
    for (i = 0; i < 1000 * slow_factor() &&
                __atomic_load_n(&s.fired, __ATOMIC_SEQ_CST) == 0; i++)
        nap();
    /* At least 200 replacements, and on until the storm got some triggers
     * in among them (bounded: a starved thread only weakens the test). */
    for (i = 0; i < 200 || (during < 1000 && i < 5000); i++) {
        unsigned before = __atomic_load_n(&s.fired, __ATOMIC_SEQ_CST);

        assert_int_equal(muc_irq_set_eventfds(c, VFU_IRQ_MSIX, 3, 1,
                                              &efd[i & 1]), 0);
        during += __atomic_load_n(&s.fired, __ATOMIC_SEQ_CST) - before;
    }
    /* End on efd[1]. */
    if (i & 1)
        assert_int_equal(muc_irq_set_eventfds(c, VFU_IRQ_MSIX, 3, 1, &efd[1]),
                         0);
    __atomic_store_n(&s.stop, true, __ATOMIC_SEQ_CST);
    pthread_join(th, NULL);
    assert_int_equal(s.bad, 0);
    assert_true(s.fired > 0);
    (void)muc_eventfd_wait(efd[1], 0);
    (void)muc_eventfd_wait(efd[0], 0);
    assert_int_equal(trig(MU_IRQ_MSIX, 3), 0);
    expect_fired(efd[1]);
    expect_silent(efd[0]);
    client_close(c);
    efds_close(efd, 2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_irq_info, test_teardown),
        cmocka_unit_test_teardown(test_intx_automask, test_teardown),
        cmocka_unit_test_teardown(test_intx_unmask_eventfd, test_teardown),
        cmocka_unit_test_teardown(test_msi, test_teardown),
        cmocka_unit_test_teardown(test_msix_config_space, test_teardown),
        cmocka_unit_test_teardown(test_teardown_count0, test_teardown),
        cmocka_unit_test_teardown(test_deassign_and_replace, test_teardown),
        cmocka_unit_test_teardown(test_bad_requests, test_teardown),
        cmocka_unit_test_teardown(test_reset_closes_eventfds, test_teardown),
        cmocka_unit_test_teardown(test_disconnect_closes_eventfds, test_teardown),
        cmocka_unit_test_teardown(test_disconnect_resets_msi_enable, test_teardown),
        cmocka_unit_test_teardown(test_trigger_races_replace, test_teardown),
    };

    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
