/*
 * test_qemu_like.c - the server against a client that behaves like QEMU's
 * vfio-user-pci where QEMU differs from muser's own client (issue 11): the
 * client library's qemu_like mode (max_msg_fds 16 and a refusal of any
 * server advertising more, argsz-sized GET_REGION_INFO payloads, no
 * GET_REGION_IO_FDS), plus what the test itself does as QEMU would (MSI-X
 * enabled in config space with the table never written, SET_IRQS split
 * 16 + 1).
 *
 * The device is an in-process PCIe function: BAR0 (16 KiB) with 17 MSI-X
 * vectors (table at 2000h, PBA at 3000h) and a register callback; BAR2 an
 * mmappable memfd with one sparse area.  It raises its fd limit to 130, as
 * the nvme sample once did, which QEMU refused ("malformed max_msg_fds").
 *
 * Timing: a trigger writes the eventfd before mu_irq_trigger() returns, so
 * "did not fire" is a non-blocking look; waits for a fire are bounded and
 * scaled by slow_factor().
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <unistd.h>

#include "harness.h"
#include "muser.h"
#include "muser-client.h"
#include "wire.h"

#define NVEC 17u                /* one more than QEMU's 16 fds a message */
#define BAR0_SIZE 0x4000u
#define TBL_OFF 0x2000u
#define PBA_OFF 0x3000u
#define BAR2_SIZE 0x4000u
#define BIG_FD_LIMIT 130u

#define MSIX_CTRL 2
#define MSIX_CTRL_ENABLE 0x8000
#define MSIX_CTRL_FMASK 0x4000
#define MSIX_ENTRY 16u
#define MSIX_VCTRL 12u

static struct inproc srv;
static int msix_off;
static int bar2_fd = -1;
static muc_t *live;

static ssize_t bar0_access(mu_ctx_t *ctx, void *buf, size_t count,
                           uint64_t offset, bool is_write)
{
    (void)ctx;
    (void)offset;
    if (!is_write)
        memset(buf, 0, count);
    return (ssize_t)count;
}

static int group_setup(void **state)
{
    const struct mu_pci_ids ids = {
        .vendor_id = 0x4d55, .device_id = 0x0011, .class_code = 0xff0000,
    };
    const struct mu_mmap_area area = { 0x1000, 0x2000 };
    mu_ctx_t *ctx;
    int rc;

    (void)state;
    if (inproc_create(&srv, "qemu.sock", MU_DEV_PCIE, NULL) < 0)
        return -1;
    ctx = srv.ctx;
    bar2_fd = memfd_sized("bar2", BAR2_SIZE, MFD_ALLOW_SEALING);
    if (bar2_fd < 0)
        return -1;
    if ((rc = mu_pci_set_ids(ctx, &ids)) < 0 ||
        (rc = mu_region_setup(ctx, MU_PCI_BAR0, BAR0_SIZE,
                              MU_REGION_RW | MU_REGION_MEM, bar0_access)) < 0 ||
        (rc = mu_region_setup(ctx, MU_PCI_BAR2, BAR2_SIZE,
                              MU_REGION_RW | MU_REGION_MEM, bar0_access)) < 0 ||
        (rc = mu_region_set_mmap(ctx, MU_PCI_BAR2, bar2_fd, 0, &area, 1)) < 0 ||
        (rc = msix_off = mu_pci_add_msix(ctx, NVEC, MU_PCI_BAR0, TBL_OFF,
                                         MU_PCI_BAR0, PBA_OFF)) < 0 ||
        (rc = mu_pci_add_pcie(ctx, MU_PCIE_ENDPOINT)) < 0 ||
        (rc = mu_irq_setup(ctx, MU_IRQ_INTX, 1)) < 0 ||
        (rc = mu_ctx_set_limit(ctx, MU_LIMIT_MSG_FDS, BIG_FD_LIMIT)) < 0) {
        fprintf(stderr, "device setup: %s\n", strerror(-rc));
        return -1;
    }
    return inproc_start(&srv) < 0 ? -1 : 0;
}

static int group_teardown(void **state)
{
    (void)state;
    inproc_stop(&srv);
    if (bar2_fd >= 0)
        close(bar2_fd);
    return 0;
}

static int test_teardown(void **state)
{
    (void)state;
    if (live != NULL) {
        muc_close(live);
        live = NULL;
    }
    inproc_wait_not_ready(&srv, 1000, 2000);
    return 0;
}

static int connect_opts(muc_t **c, const struct muc_opts *in)
{
    struct muc_opts o = *in;

    o.timeout_ms = 5000 * slow_factor();
    return muc_connect(c, srv.sock, &o);
}

/* A QEMU-like client on a device just reset. */
static muc_t *qemu_client(void)
{
    const struct muc_opts o = { .qemu_like = true };
    muc_t *c = NULL;

    assert_int_equal(connect_opts(&c, &o), 0);
    live = c;
    assert_int_equal(muc_reset(c), 0);
    return c;
}

static void client_done(muc_t *c)
{
    assert_int_equal(muc_reset(c), 0);
    muc_close(c);
    live = NULL;
    assert_true(inproc_wait_not_ready(&srv, 1000, 2000));
}

/* ---------------- max_msg_fds ---------------- */

/*
 * A device whose own limit is 130 must still advertise at most 16 (QEMU
 * refuses more: the qemu_like client does too), and never more than the
 * client said it takes itself.
 */
static void test_advertised_fds(void **state)
{
    static const struct {
        uint32_t offer, want;
    } cases[] = {
        { 16, 16 }, { 4, 4 }, { 1, 1 }, { 200, 16 },
    };
    muc_t *c = qemu_client();

    (void)state;
    assert_int_equal(muc_server_caps(c)->max_msg_fds, 16);
    client_done(c);

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct muc_opts o = { .max_msg_fds = cases[i].offer };

        print_message("client offers %u\n", cases[i].offer);
        assert_int_equal(connect_opts(&c, &o), 0);
        live = c;
        assert_int_equal(muc_server_caps(c)->max_msg_fds, cases[i].want);
        client_done(c);
    }
}

static void expect_fired(int fd)
{
    assert_int_equal(muc_eventfd_wait(fd, 2000 * slow_factor()), 1);
}

/*
 * 17 vectors through a server that takes 16 fds a message: the client
 * sends SET_IRQS for [0, 16) and then [16, 17), as QEMU does; each vector
 * must end up on its own eventfd.
 */
static void test_set_irqs_split(void **state)
{
    int efd[NVEC];
    muc_t *c = qemu_client();

    (void)state;
    assert_int_equal(muc_server_caps(c)->max_msg_fds, 16);
    for (unsigned i = 0; i < NVEC; i++) {
        efd[i] = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        assert_true(efd[i] >= 0);
    }
    assert_int_equal(muc_irq_set_eventfds(c, VFU_IRQ_MSIX, 0, NVEC, efd), 0);
    for (unsigned i = 0; i < NVEC; i++) {
        assert_int_equal(mu_irq_trigger(srv.ctx, MU_IRQ_MSIX, i), 0);
        expect_fired(efd[i]);
        for (unsigned j = 0; j < NVEC; j++) {
            if (j != i)
                assert_int_equal(muc_eventfd_wait(efd[j], 0), 0);
        }
    }
    /* Re-assign only the last vector, alone, the way QEMU's second
     * message does: the first 16 keep theirs. */
    {
        int extra = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);

        assert_true(extra >= 0);
        assert_int_equal(muc_irq_set_eventfds(c, VFU_IRQ_MSIX, NVEC - 1, 1,
                                              &extra), 0);
        assert_int_equal(mu_irq_trigger(srv.ctx, MU_IRQ_MSIX, NVEC - 1), 0);
        expect_fired(extra);
        assert_int_equal(muc_eventfd_wait(efd[NVEC - 1], 0), 0);
        assert_int_equal(mu_irq_trigger(srv.ctx, MU_IRQ_MSIX, 0), 0);
        expect_fired(efd[0]);
        close(extra);
    }
    client_done(c);
    for (unsigned i = 0; i < NVEC; i++)
        close(efd[i]);
}

/* ---------------- MSI-X with the table emulated ---------------- */

/*
 * QEMU's way: SET_IRQS for every vector, MSI-X enabled (and the function
 * mask toggled) through config space, the table in BAR0 never written.
 * The reset mask bits of the library's copy must not hold anything back;
 * the function mask does.  A read of the table is no write-through.
 */
static void test_msix_table_emulated(void **state)
{
    uint32_t vctrl = 0;
    int efd[NVEC];
    muc_t *c = qemu_client();

    (void)state;
    for (unsigned i = 0; i < NVEC; i++) {
        efd[i] = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        assert_true(efd[i] >= 0);
    }
    assert_int_equal(muc_irq_set_eventfds(c, VFU_IRQ_MSIX, 0, NVEC, efd), 0);
    /* Linux: enable with the function mask set, program, unmask. */
    assert_int_equal(muc_config_write16(c, msix_off + MSIX_CTRL,
                                        MSIX_CTRL_ENABLE | MSIX_CTRL_FMASK), 0);
    assert_int_equal(mu_irq_trigger(srv.ctx, MU_IRQ_MSIX, 3), MU_IRQ_PENDING);
    assert_int_equal(muc_eventfd_wait(efd[3], 0), 0);
    assert_int_equal(muc_config_write16(c, msix_off + MSIX_CTRL,
                                        MSIX_CTRL_ENABLE), 0);
    expect_fired(efd[3]);           /* the pending one, on function unmask */

    assert_int_equal(muc_region_read(c, MU_PCI_BAR0,
                                     TBL_OFF + MSIX_VCTRL, &vctrl, 4), 0);
    assert_int_equal(vctrl, 1);     /* our copy: still the reset value */
    for (unsigned i = 0; i < NVEC; i++) {
        assert_false(mu_irq_masked(srv.ctx, MU_IRQ_MSIX, i));
        assert_int_equal(mu_irq_trigger(srv.ctx, MU_IRQ_MSIX, i), 0);
        expect_fired(efd[i]);
    }

    /* A client that does write the table (muser's, libvfio-user's) gets
     * its mask bits honoured from that write on: entry 0 written masked
     * holds vector 0, and the untouched entries keep their reset mask. */
    vctrl = 1;
    assert_int_equal(muc_region_write(c, MU_PCI_BAR0, TBL_OFF + MSIX_VCTRL,
                                      &vctrl, 4), 0);
    assert_true(mu_irq_masked(srv.ctx, MU_IRQ_MSIX, 0));
    assert_true(mu_irq_masked(srv.ctx, MU_IRQ_MSIX, NVEC - 1));
    assert_int_equal(mu_irq_trigger(srv.ctx, MU_IRQ_MSIX, 0), MU_IRQ_PENDING);
    vctrl = 0;
    assert_int_equal(muc_region_write(c, MU_PCI_BAR0, TBL_OFF + MSIX_VCTRL,
                                      &vctrl, 4), 0);
    expect_fired(efd[0]);

    /* A reset forgets the write-through: emulated again. */
    assert_int_equal(muc_reset(c), 0);
    assert_int_equal(muc_irq_set_eventfds(c, VFU_IRQ_MSIX, 0, NVEC, efd), 0);
    assert_int_equal(muc_config_write16(c, msix_off + MSIX_CTRL,
                                        MSIX_CTRL_ENABLE), 0);
    assert_int_equal(mu_irq_trigger(srv.ctx, MU_IRQ_MSIX, NVEC - 1), 0);
    expect_fired(efd[NVEC - 1]);
    client_done(c);
    for (unsigned i = 0; i < NVEC; i++)
        close(efd[i]);
}

/* ---------------- region info ---------------- */

/*
 * GET_REGION_INFO whose payload is the whole argsz buffer: answered like a
 * 32-byte one, fd and sparse-mmap cap included.
 */
static void test_region_info_argsz_payload(void **state)
{
    struct muc_region_info ri;
    muc_t *c = qemu_client();

    (void)state;
    assert_int_equal(muc_region_info(c, MU_PCI_BAR2, &ri), 0);
    assert_int_equal(ri.size, BAR2_SIZE);
    assert_true(ri.flags & MUC_REGION_MMAP);
    assert_true(ri.fd >= 0);
    assert_int_equal(ri.nr_sparse, 1);
    assert_int_equal(ri.sparse[0].offset, 0x1000);
    assert_int_equal(ri.sparse[0].size, 0x2000);
    close(ri.fd);

    assert_int_equal(muc_region_info(c, MU_PCI_CONFIG, &ri), 0);
    assert_int_equal(ri.size, 4096);
    assert_int_equal(ri.fd, -1);

    /* Raw: 80 bytes of payload with argsz 80, as libvfio-user sends. */
    {
        uint8_t req[80] = { 0 }, reply[256];
        struct vfu_region_info out;
        uint32_t argsz = sizeof(req), index = MU_PCI_BAR0;
        size_t rlen = 0;
        unsigned nr = 0;
        int rfd[2];

        memcpy(req, &argsz, 4);
        memcpy(req + 8, &index, 4);
        assert_int_equal(muc_request(c, VFU_CMD_DEVICE_GET_REGION_INFO, req,
                                     sizeof(req), NULL, 0, reply,
                                     sizeof(reply), &rlen, rfd, 2, &nr), 0);
        assert_int_equal(rlen, sizeof(out));
        memcpy(&out, reply, sizeof(out));
        assert_int_equal(out.size, BAR0_SIZE);
        assert_int_equal(nr, 0);
        /* More payload than argsz: refused, and the server serves on. */
        argsz = 64;
        memcpy(req, &argsz, 4);
        assert_int_equal(muc_request(c, VFU_CMD_DEVICE_GET_REGION_INFO, req,
                                     sizeof(req), NULL, 0, reply,
                                     sizeof(reply), &rlen, rfd, 2, &nr),
                         -EINVAL);
    }
    /* QEMU never asks for ioeventfds; in its mode neither do we. */
    assert_int_equal(muc_region_io_fds(c, MU_PCI_BAR0, NULL, 0), -ENOTSUP);
    client_done(c);
}

/* ---------------- the client's fds keep their flags ---------------- */

static int blocking_efd(void)
{
    int fd = eventfd(0, EFD_CLOEXEC);

    assert_true(fd >= 0);
    assert_false(fcntl(fd, F_GETFL) & O_NONBLOCK);
    return fd;
}

static void expect_blocking(int fd)
{
    assert_false(fcntl(fd, F_GETFL) & O_NONBLOCK);
}

/* Wait (bounded) until the eventfd is readable, then read it with the
 * client's own blocking read(): it must not fail with EAGAIN. */
static uint64_t blocking_read(int fd)
{
    struct pollfd p = { .fd = fd, .events = POLLIN };
    uint64_t v = 0;

    assert_int_equal(poll(&p, 1, 2000 * slow_factor()), 1);
    assert_int_equal(read(fd, &v, sizeof(v)), sizeof(v));
    return v;
}

static bool intx_unmasked(void *arg)
{
    (void)arg;
    return !mu_irq_masked(srv.ctx, MU_IRQ_INTX, 0);
}

/*
 * The file flags of an eventfd are shared by every process holding it:
 * the server must not make the client's eventfds non-blocking (a client
 * blocking in read() of its own eventfd got EAGAIN).  Triggers, INTx
 * unmask eventfds and a saturated blocking eventfd all still work.
 */
static void test_client_fd_flags(void **state)
{
    const uint32_t unmask_efd = VFU_IRQ_SET_DATA_EVENTFD |
                                VFU_IRQ_SET_ACTION_UNMASK;
    uint64_t big = 0xfffffffffffffffeull, one = 1;
    int trig, intx, unmask, full;
    muc_t *c = qemu_client();

    (void)state;
    trig = blocking_efd();
    assert_int_equal(muc_irq_set_eventfds(c, VFU_IRQ_MSIX, 0, 1, &trig), 0);
    expect_blocking(trig);
    assert_int_equal(mu_irq_trigger(srv.ctx, MU_IRQ_MSIX, 0), 0);
    assert_int_equal(blocking_read(trig), 1);
    expect_blocking(trig);

    /* INTx with an unmask eventfd, both blocking. */
    intx = blocking_efd();
    unmask = blocking_efd();
    assert_int_equal(muc_irq_set_eventfds(c, VFU_IRQ_INTX, 0, 1, &intx), 0);
    assert_int_equal(muc_set_irqs(c, unmask_efd, VFU_IRQ_INTX, 0, 1, NULL,
                                  &unmask, 1), 0);
    expect_blocking(intx);
    expect_blocking(unmask);
    assert_int_equal(mu_irq_trigger(srv.ctx, MU_IRQ_INTX, 0), 0);
    assert_int_equal(blocking_read(intx), 1);
    assert_true(mu_irq_masked(srv.ctx, MU_IRQ_INTX, 0));   /* automask */
    assert_int_equal(write(unmask, &one, sizeof(one)), sizeof(one));
    assert_true(wait_until(intx_unmasked, NULL, 1000, 2000));
    /* The server drained the unmask fd (a poll says empty), and the
     * unmask delivered nothing new. */
    {
        struct pollfd p = { .fd = unmask, .events = POLLIN };

        assert_int_equal(poll(&p, 1, 0), 0);
    }
    assert_int_equal(mu_irq_trigger(srv.ctx, MU_IRQ_INTX, 0), 0);
    assert_int_equal(blocking_read(intx), 1);
    expect_blocking(unmask);

    /* A blocking eventfd one short of saturation: the trigger must not
     * sleep in write(), and counts as delivered. */
    full = blocking_efd();
    assert_int_equal(write(full, &big, sizeof(big)), sizeof(big));
    assert_int_equal(muc_irq_set_eventfds(c, VFU_IRQ_MSIX, 1, 1, &full), 0);
    assert_int_equal(mu_irq_trigger(srv.ctx, MU_IRQ_MSIX, 1), 0);
    assert_int_equal(mu_irq_trigger(srv.ctx, MU_IRQ_MSIX, 1), 0);
    expect_blocking(full);
    assert_int_equal(blocking_read(full), big);
    assert_int_equal(mu_irq_trigger(srv.ctx, MU_IRQ_MSIX, 1), 0);
    assert_int_equal(blocking_read(full), 1);

    client_done(c);
    close(trig);
    close(intx);
    close(unmask);
    close(full);
}

/* ---------------- ERR ---------------- */

/*
 * QEMU enables error recovery only if GET_IRQ_INFO reports exactly one
 * ERR vector; it then gives it an eventfd.  The device here declared no
 * ERR: the library's default must. REQ stays absent unless declared.
 */
static void test_err_declared(void **state)
{
    struct muc_irq_info ii;
    int efd;
    muc_t *c = qemu_client();

    (void)state;
    assert_int_equal(muc_irq_info(c, VFU_IRQ_ERR, &ii), 0);
    assert_int_equal(ii.count, 1);
    assert_true(ii.flags & VFU_IRQ_INFO_EVENTFD);
    assert_int_equal(muc_irq_info(c, VFU_IRQ_REQ, &ii), 0);
    assert_int_equal(ii.count, 0);

    efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    assert_true(efd >= 0);
    assert_int_equal(muc_irq_set_eventfds(c, VFU_IRQ_ERR, 0, 1, &efd), 0);
    assert_int_equal(mu_irq_trigger(srv.ctx, MU_IRQ_ERR, 0), 0);
    expect_fired(efd);
    client_done(c);
    close(efd);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_advertised_fds, test_teardown),
        cmocka_unit_test_teardown(test_set_irqs_split, test_teardown),
        cmocka_unit_test_teardown(test_msix_table_emulated, test_teardown),
        cmocka_unit_test_teardown(test_region_info_argsz_payload,
                                  test_teardown),
        cmocka_unit_test_teardown(test_client_fd_flags, test_teardown),
        cmocka_unit_test_teardown(test_err_declared, test_teardown),
    };

    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
