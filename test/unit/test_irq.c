/*
 * Unit tests for lib/irq.c: DEVICE_GET_IRQ_INFO and DEVICE_SET_IRQS driven
 * with synthesized messages, triggering, the several sources of masking,
 * the MSI-X table and PBA, reset, and triggers racing fd replacement.
 *
 * Each test gets a realized context (so mask/unmask eventfds are really
 * watched in its epoll) with INTx 1, ERR 1, MSI 4 (64-bit, per-vector
 * masks) and MSI-X 70 with the table at BAR2+0 and the PBA at BAR2+0x2000;
 * REQ is left undeclared.  Messages carry dups of the test's eventfds, as
 * a socket would deliver them, so the test keeps its own end to read, and
 * every message is released after the handler as dispatch.c does: an fd
 * the handler did not take is closed there.  Leaks are caught by counting
 * /proc/self/fd.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "cmd.h"
#include "private.h"
#include "unit_util.h"

#define NMSI 4u
#define NMSIX 70u
#define TBL_BAR 2u
#define TBL_OFF 0x0u
#define PBA_OFF 0x2000u
#define BAR_SIZE 0x4000u

#define TRIG_EFD (VFU_IRQ_SET_ACTION_TRIGGER | VFU_IRQ_SET_DATA_EVENTFD)
#define TRIG_NONE (VFU_IRQ_SET_ACTION_TRIGGER | VFU_IRQ_SET_DATA_NONE)
#define TRIG_BOOL (VFU_IRQ_SET_ACTION_TRIGGER | VFU_IRQ_SET_DATA_BOOL)
#define MASK_NONE (VFU_IRQ_SET_ACTION_MASK | VFU_IRQ_SET_DATA_NONE)
#define MASK_BOOL (VFU_IRQ_SET_ACTION_MASK | VFU_IRQ_SET_DATA_BOOL)
#define MASK_EFD (VFU_IRQ_SET_ACTION_MASK | VFU_IRQ_SET_DATA_EVENTFD)
#define UNMASK_NONE (VFU_IRQ_SET_ACTION_UNMASK | VFU_IRQ_SET_DATA_NONE)
#define UNMASK_EFD (VFU_IRQ_SET_ACTION_UNMASK | VFU_IRQ_SET_DATA_EVENTFD)

struct fixture {
    char dir[64];
    char path[96];
    mu_ctx_t *ctx;
    int msi_off, msix_off;
};

/* State callback log. */
static struct {
    int type;
    bool on;
} events[64];
static unsigned nr_events;

static void state_cb(mu_ctx_t *ctx, enum mu_irq_type type, bool on)
{
    (void)ctx;
    if (nr_events < 64)
        events[nr_events++] = (typeof(events[0])){ (int)type, on };
}

static unsigned bar_cb_calls;

static ssize_t bar_cb(mu_ctx_t *ctx, void *buf, size_t count, uint64_t off,
                      bool is_write)
{
    (void)ctx;
    (void)off;
    bar_cb_calls++;
    if (!is_write)
        memset(buf, 0xab, count);
    return (ssize_t)count;
}

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    struct mu_pci_ids ids = { .vendor_id = 0x4e58, .device_id = 1,
                              .irq_pin = 1 };

    assert_non_null(f);
    strcpy(f->dir, "/tmp/mu-irq-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    snprintf(f->path, sizeof(f->path), "%s/sock", f->dir);
    assert_int_equal(mu_ctx_create(&f->ctx, f->path, MU_DEV_PCI, NULL), 0);
    assert_int_equal(mu_ctx_set_log(f->ctx, NULL, MU_LOG_ERR), 0);
    assert_int_equal(mu_pci_set_ids(f->ctx, &ids), 0);
    assert_int_equal(mu_irq_setup(f->ctx, MU_IRQ_INTX, 1), 0);
    assert_int_equal(mu_irq_setup(f->ctx, MU_IRQ_ERR, 1), 0);
    f->msi_off = mu_pci_add_msi(f->ctx, NMSI, true);
    assert_true(f->msi_off >= 0x40);
    assert_int_equal(mu_region_setup(f->ctx, TBL_BAR, BAR_SIZE,
                                     MU_REGION_RW | MU_REGION_MEM, bar_cb), 0);
    f->msix_off = mu_pci_add_msix(f->ctx, NMSIX, TBL_BAR, TBL_OFF, TBL_BAR,
                                  PBA_OFF);
    assert_true(f->msix_off >= 0x40);
    assert_int_equal(mu_irq_set_state_cb(f->ctx, state_cb), 0);
    assert_int_equal(mu_ctx_realize(f->ctx), 0);
    assert_true(f->ctx->epfd >= 0);
    nr_events = 0;
    bar_cb_calls = 0;
    *state = f;
    return 0;
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

/* Whether fd is in the context's epoll set (from /proc's fdinfo). */
static bool epoll_has(mu_ctx_t *ctx, int fd)
{
    char path[64], line[256], want[32];
    bool found = false;
    FILE *fp;

    snprintf(path, sizeof(path), "/proc/self/fdinfo/%d", mu_ctx_fd(ctx));
    snprintf(want, sizeof(want), "tfd: %8d ", fd);
    fp = fopen(path, "r");
    assert_non_null(fp);
    while (fgets(line, sizeof(line), fp) != NULL) {
        if (strncmp(line, want, strlen(want)) == 0)
            found = true;
    }
    fclose(fp);
    return found;
}

static int efd(void)
{
    int fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);

    assert_true(fd >= 0);
    return fd;
}

/* The eventfd's counter (0 if nothing was signalled); reading resets it. */
static uint64_t efd_read(int fd)
{
    uint64_t v = 0;

    if (read(fd, &v, sizeof(v)) != sizeof(v)) {
        assert_int_equal(errno, EAGAIN);
        return 0;
    }
    return v;
}

static void efd_signal(int fd)
{
    uint64_t one = 1;

    assert_int_equal(write(fd, &one, sizeof(one)), sizeof(one));
}

/*
 * Send SET_IRQS with dups of fds[0..nfds) (their numbers go to sent[] when
 * given) and release the message afterwards, as dispatch.c does.
 */
static int set_irqs_fds(mu_ctx_t *ctx, uint32_t flags, uint32_t index,
                        uint32_t start, uint32_t count, const uint8_t *bools,
                        const int *fds, unsigned nfds, int *sent)
{
    struct vfu_irq_set s = { .flags = flags, .index = index, .start = start,
                             .count = count };
    size_t blen = bools != NULL ? count : 0;
    struct mu_reply reply = { 0 };
    struct mu_msg msg = { 0 };
    int rc;

    s.argsz = (uint32_t)(sizeof(s) + blen);
    msg.len = sizeof(s) + blen;
    msg.body = malloc(msg.len);
    assert_non_null(msg.body);
    memcpy(msg.body, &s, sizeof(s));
    if (blen > 0)
        memcpy(msg.body + sizeof(s), bools, blen);
    if (nfds > 0) {
        msg.fds = malloc(nfds * sizeof(int));
        assert_non_null(msg.fds);
        for (unsigned i = 0; i < nfds; i++) {
            msg.fds[i] = fcntl(fds[i], F_DUPFD_CLOEXEC, 0);
            assert_true(msg.fds[i] >= 0);
            if (sent != NULL)
                sent[i] = msg.fds[i];
        }
    }
    msg.nfds = nfds;
    rc = mu_cmd_set_irqs(ctx, &msg, &reply);
    assert_int_equal(reply.len, 0);
    assert_int_equal(reply.nfds, 0);
    mu_msg_release(&msg);
    return rc;
}

static int set_irqs(mu_ctx_t *ctx, uint32_t flags, uint32_t index,
                    uint32_t start, uint32_t count)
{
    return set_irqs_fds(ctx, flags, index, start, count, NULL, NULL, 0, NULL);
}

static int assign(mu_ctx_t *ctx, uint32_t index, uint32_t vec, int fd)
{
    return set_irqs_fds(ctx, TRIG_EFD, index, vec, 1, NULL, &fd, 1, NULL);
}

static int irq_info(mu_ctx_t *ctx, const void *body, size_t len,
                    unsigned nfds, struct vfu_irq_info *out)
{
    struct mu_reply reply = { 0 };
    struct mu_msg msg = { 0 };
    int rc;

    msg.len = len;
    msg.body = malloc(len ? len : 1);
    assert_non_null(msg.body);
    memcpy(msg.body, body, len);
    if (nfds > 0) {
        msg.fds = malloc(nfds * sizeof(int));
        for (unsigned i = 0; i < nfds; i++)
            msg.fds[i] = efd();
        msg.nfds = nfds;
    }
    rc = mu_cmd_irq_info(ctx, &msg, &reply);
    if (rc == 0) {
        assert_int_equal(reply.len, sizeof(*out));
        memcpy(out, reply.small, sizeof(*out));
    }
    mu_msg_release(&msg);
    return rc;
}

static void cfg_write16(mu_ctx_t *ctx, unsigned off, uint16_t v)
{
    assert_int_equal(mu_pci_config_access(ctx, (uint8_t *)&v, 2, off, true), 2);
}

static void cfg_write32(mu_ctx_t *ctx, unsigned off, uint32_t v)
{
    assert_int_equal(mu_pci_config_access(ctx, (uint8_t *)&v, 4, off, true), 4);
}

static ssize_t bar_rw(mu_ctx_t *ctx, void *buf, size_t count, uint64_t off,
                      bool is_write)
{
    return mu_region_access(ctx, TBL_BAR, buf, count, off, is_write);
}

static uint32_t bar_read32(mu_ctx_t *ctx, uint64_t off)
{
    uint32_t v = 0;

    assert_int_equal(bar_rw(ctx, &v, 4, off, false), 4);
    return v;
}

static void bar_write32(mu_ctx_t *ctx, uint64_t off, uint32_t v)
{
    assert_int_equal(bar_rw(ctx, &v, 4, off, true), 4);
}

static uint64_t ctl_off(unsigned vec)
{
    return TBL_OFF + 16u * vec + 12;
}

/* Run the context's epoll until idle, so signalled irq fds are handled. */
static void poll_ctx(mu_ctx_t *ctx)
{
    for (int i = 0; i < 4; i++)
        assert_int_equal(mu_ctx_poll(ctx), 0);
}

/* ---- GET_IRQ_INFO ---- */

static void test_irq_info(void **state)
{
    struct fixture *f = *state;
    static const struct {
        uint32_t index, flags, count;
    } want[] = {
        { 0, VFU_IRQ_INFO_EVENTFD | VFU_IRQ_INFO_MASKABLE |
                 VFU_IRQ_INFO_AUTOMASKED, 1 },
        { 1, VFU_IRQ_INFO_EVENTFD | VFU_IRQ_INFO_MASKABLE |
                 VFU_IRQ_INFO_NORESIZE, NMSI },
        { 2, VFU_IRQ_INFO_EVENTFD | VFU_IRQ_INFO_MASKABLE |
                 VFU_IRQ_INFO_NORESIZE, NMSIX },
        { 3, VFU_IRQ_INFO_EVENTFD, 1 },
        { 4, VFU_IRQ_INFO_EVENTFD, 0 },
    };

    for (unsigned i = 0; i < 5; i++) {
        struct vfu_irq_info in = { .argsz = 64, .index = want[i].index }, out;

        assert_int_equal(irq_info(f->ctx, &in, sizeof(in), 0, &out), 0);
        assert_int_equal(out.argsz, 16);
        assert_int_equal(out.index, want[i].index);
        assert_int_equal(out.flags, want[i].flags);
        assert_int_equal(out.count, want[i].count);
        assert_int_equal(mu_irqs_count(f->ctx, i), want[i].count);
    }
    assert_int_equal(mu_irqs_count(f->ctx, 5), 0);
}

static void test_irq_info_bad(void **state)
{
    struct fixture *f = *state;
    struct vfu_irq_info in = { .argsz = 16, .index = 5 }, out;
    int before = count_fds();

    assert_int_equal(irq_info(f->ctx, &in, sizeof(in), 0, &out), -EINVAL);
    in.index = UINT32_MAX;
    assert_int_equal(irq_info(f->ctx, &in, sizeof(in), 0, &out), -EINVAL);
    in.index = 0;
    assert_int_equal(irq_info(f->ctx, &in, 12, 0, &out), -EINVAL);
    assert_int_equal(irq_info(f->ctx, &in, sizeof(in), 2, &out), -EINVAL);
    in.argsz = 8;
    assert_int_equal(irq_info(f->ctx, &in, sizeof(in), 0, &out), -EINVAL);
    assert_int_equal(count_fds(), before);
}

/* ---- SET_IRQS validation ---- */

static void test_set_irqs_bad(void **state)
{
    struct fixture *f = *state;
    mu_ctx_t *ctx = f->ctx;
    int fds[3] = { efd(), efd(), efd() };
    int before = count_fds();
    uint8_t two[2] = { 1, 2 };

    /* index out of range, or declared with no vectors */
    assert_int_equal(set_irqs_fds(ctx, TRIG_EFD, 5, 0, 1, NULL, fds, 1, NULL),
                     -EINVAL);
    assert_int_equal(set_irqs_fds(ctx, TRIG_EFD, MU_IRQ_REQ, 0, 1, NULL, fds,
                                  1, NULL), -EINVAL);
    assert_int_equal(set_irqs(ctx, TRIG_NONE, MU_IRQ_REQ, 0, 0), -EINVAL);
    /* range past the count */
    assert_int_equal(set_irqs_fds(ctx, TRIG_EFD, MU_IRQ_MSI, 3, 2, NULL, fds,
                                  2, NULL), -EINVAL);
    assert_int_equal(set_irqs(ctx, MASK_NONE, MU_IRQ_INTX, 1, 1), -EINVAL);
    assert_int_equal(set_irqs(ctx, MASK_NONE, MU_IRQ_MSIX, NMSIX, 1), -EINVAL);
    assert_int_equal(set_irqs(ctx, MASK_NONE, MU_IRQ_MSIX, UINT32_MAX, 2),
                     -EINVAL);
    /* fd count neither 0 nor count */
    assert_int_equal(set_irqs_fds(ctx, TRIG_EFD, MU_IRQ_MSI, 0, 3, NULL, fds,
                                  2, NULL), -EINVAL);
    assert_int_equal(set_irqs_fds(ctx, TRIG_EFD, MU_IRQ_MSI, 0, 1, NULL, fds,
                                  3, NULL), -EINVAL);
    /* fds with a data type that takes none */
    assert_int_equal(set_irqs_fds(ctx, TRIG_NONE, MU_IRQ_MSI, 0, 1, NULL, fds,
                                  1, NULL), -EINVAL);
    /* count 0 only for DATA_NONE|TRIGGER at start 0 */
    assert_int_equal(set_irqs(ctx, TRIG_NONE, MU_IRQ_MSI, 1, 0), -EINVAL);
    assert_int_equal(set_irqs(ctx, MASK_NONE, MU_IRQ_MSI, 0, 0), -EINVAL);
    assert_int_equal(set_irqs(ctx, UNMASK_NONE, MU_IRQ_MSI, 0, 0), -EINVAL);
    assert_int_equal(set_irqs(ctx, TRIG_EFD, MU_IRQ_MSI, 0, 0), -EINVAL);
    /* bad bools, two actions */
    assert_int_equal(set_irqs_fds(ctx, TRIG_BOOL, MU_IRQ_MSI, 0, 2, two, NULL,
                                  0, NULL), -EINVAL);
    assert_int_equal(set_irqs(ctx, TRIG_NONE | VFU_IRQ_SET_ACTION_MASK,
                              MU_IRQ_MSI, 0, 1), -EINVAL);

    assert_int_equal(count_fds(), before);
    assert_int_equal(nr_events, 0);
    for (int i = 0; i < 3; i++)
        close(fds[i]);
}

static void test_set_irqs_not_eventfd(void **state)
{
    struct fixture *f = *state;
    mu_ctx_t *ctx = f->ctx;
    int e0 = efd(), e1 = efd(), p[2], sv[2], devnull, before;
    int fds[2];

    assert_int_equal(pipe(p), 0);
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    devnull = open("/dev/null", O_RDWR);
    assert_true(devnull >= 0);

    assert_int_equal(assign(ctx, MU_IRQ_MSI, 0, e0), 0);
    nr_events = 0;
    before = count_fds();

    fds[0] = e1;
    fds[1] = p[1];
    assert_int_equal(set_irqs_fds(ctx, TRIG_EFD, MU_IRQ_MSI, 0, 2, NULL, fds,
                                  2, NULL), -EINVAL);
    fds[1] = sv[0];
    assert_int_equal(set_irqs_fds(ctx, TRIG_EFD, MU_IRQ_MSI, 0, 2, NULL, fds,
                                  2, NULL), -EINVAL);
    fds[0] = devnull;
    fds[1] = e1;
    assert_int_equal(set_irqs_fds(ctx, TRIG_EFD, MU_IRQ_MSI, 0, 2, NULL, fds,
                                  2, NULL), -EINVAL);
    assert_int_equal(set_irqs_fds(ctx, UNMASK_EFD, MU_IRQ_INTX, 0, 1, NULL,
                                  &p[0], 1, NULL), -EINVAL);
    assert_int_equal(count_fds(), before);
    assert_int_equal(nr_events, 0);

    /* Nothing changed: vector 0 still signals e0, vector 1 has no fd. */
    assert_int_equal(mu_irq_trigger(ctx, MU_IRQ_MSI, 0), 0);
    assert_int_equal(efd_read(e0), 1);
    assert_int_equal(efd_read(e1), 0);
    assert_int_equal(mu_irq_trigger(ctx, MU_IRQ_MSI, 1), MU_IRQ_PENDING);

    close(e0);
    close(e1);
    close(p[0]);
    close(p[1]);
    close(sv[0]);
    close(sv[1]);
    close(devnull);
}

/* ---- triggering ---- */

static void test_assign_trigger(void **state)
{
    struct fixture *f = *state;
    mu_ctx_t *ctx = f->ctx;
    int e = efd(), before = count_fds();

    assert_int_equal(assign(ctx, MU_IRQ_MSIX, 5, e), 0);
    assert_int_equal(count_fds(), before + 1);
    assert_int_equal(nr_events, 1);
    assert_int_equal(events[0].type, MU_IRQ_MSIX);
    assert_true(events[0].on);

    assert_int_equal(mu_irq_trigger(ctx, MU_IRQ_MSIX, 5), 0);
    assert_int_equal(mu_irq_trigger(ctx, MU_IRQ_MSIX, 5), 0);
    assert_int_equal(efd_read(e), 2);
    assert_false(mu_irq_masked(ctx, MU_IRQ_MSIX, 5));

    assert_int_equal(mu_irq_trigger(ctx, MU_IRQ_MSIX, 4), MU_IRQ_PENDING);
    assert_int_equal(mu_irq_trigger(ctx, MU_IRQ_MSIX, NMSIX), -EINVAL);
    assert_int_equal(mu_irq_trigger(ctx, MU_IRQ_MSI, NMSI), -EINVAL);
    assert_int_equal(mu_irq_trigger(ctx, MU_IRQ_REQ, 0), -EINVAL);
    assert_int_equal(mu_irq_trigger(ctx, (enum mu_irq_type)5, 0), -EINVAL);
    assert_false(mu_irq_masked(ctx, (enum mu_irq_type)7, 0));

    /* ERR is an ordinary single vector. */
    assert_int_equal(assign(ctx, MU_IRQ_ERR, 0, e), 0);
    assert_int_equal(mu_irq_trigger(ctx, MU_IRQ_ERR, 0), 0);
    assert_int_equal(efd_read(e), 1);
    close(e);
}

static void test_pending_until_assigned(void **state)
{
    struct fixture *f = *state;
    mu_ctx_t *ctx = f->ctx;
    int e = efd();

    assert_int_equal(mu_irq_trigger(ctx, MU_IRQ_MSI, 2), MU_IRQ_PENDING);
    /* Raised before the client was ready: delivered on assignment. */
    assert_int_equal(assign(ctx, MU_IRQ_MSI, 2, e), 0);
    assert_int_equal(efd_read(e), 1);
    assert_int_equal(mu_irq_trigger(ctx, MU_IRQ_MSI, 2), 0);
    assert_int_equal(efd_read(e), 1);
    close(e);
}

static void test_mask_unmask(void **state)
{
    struct fixture *f = *state;
    mu_ctx_t *ctx = f->ctx;
    int e = efd();

    assert_int_equal(assign(ctx, MU_IRQ_MSI, 1, e), 0);
    assert_int_equal(set_irqs(ctx, MASK_NONE, MU_IRQ_MSI, 1, 1), 0);
    assert_true(mu_irq_masked(ctx, MU_IRQ_MSI, 1));
    assert_false(mu_irq_masked(ctx, MU_IRQ_MSI, 0));
    assert_int_equal(mu_irq_trigger(ctx, MU_IRQ_MSI, 1), MU_IRQ_PENDING);
    assert_int_equal(mu_irq_trigger(ctx, MU_IRQ_MSI, 1), MU_IRQ_PENDING);
    assert_int_equal(efd_read(e), 0);

    /* Unmasking delivers the pending vector once. */
    assert_int_equal(set_irqs(ctx, UNMASK_NONE, MU_IRQ_MSI, 0, NMSI), 0);
    assert_false(mu_irq_masked(ctx, MU_IRQ_MSI, 1));
    assert_int_equal(efd_read(e), 1);
    assert_int_equal(set_irqs(ctx, UNMASK_NONE, MU_IRQ_MSI, 1, 1), 0);
    assert_int_equal(efd_read(e), 0);
    assert_int_equal(mu_irq_trigger(ctx, MU_IRQ_MSI, 1), 0);
    assert_int_equal(efd_read(e), 1);

    /* Masked without an fd: still pending (1), fires once assigned and
     * unmasked. */
    assert_int_equal(set_irqs(ctx, MASK_NONE, MU_IRQ_MSI, 3, 1), 0);
    assert_int_equal(mu_irq_trigger(ctx, MU_IRQ_MSI, 3), MU_IRQ_PENDING);
    assert_int_equal(set_irqs(ctx, UNMASK_NONE, MU_IRQ_MSI, 3, 1), 0);
    assert_int_equal(assign(ctx, MU_IRQ_MSI, 3, e), 0);
    assert_int_equal(efd_read(e), 1);

    /* SET_IRQS DATA_NONE trigger respects the mask, like mu_irq_trigger. */
    assert_int_equal(set_irqs(ctx, MASK_NONE, MU_IRQ_MSI, 1, 1), 0);
    assert_int_equal(set_irqs(ctx, TRIG_NONE, MU_IRQ_MSI, 1, 1), 0);
    assert_int_equal(efd_read(e), 0);
    assert_int_equal(set_irqs(ctx, UNMASK_NONE, MU_IRQ_MSI, 1, 1), 0);
    assert_int_equal(efd_read(e), 1);
    assert_int_equal(set_irqs(ctx, TRIG_NONE, MU_IRQ_MSI, 1, 1), 0);
    assert_int_equal(efd_read(e), 1);
    close(e);
}

static void test_intx_automask(void **state)
{
    struct fixture *f = *state;
    mu_ctx_t *ctx = f->ctx;
    int e = efd();

    assert_int_equal(assign(ctx, MU_IRQ_INTX, 0, e), 0);
    assert_false(mu_irq_masked(ctx, MU_IRQ_INTX, 0));
    assert_int_equal(mu_irq_trigger(ctx, MU_IRQ_INTX, 0), 0);
    assert_true(mu_irq_masked(ctx, MU_IRQ_INTX, 0));
    assert_int_equal(mu_irq_trigger(ctx, MU_IRQ_INTX, 0), MU_IRQ_PENDING);
    assert_int_equal(efd_read(e), 1);

    /* End of interrupt: the pending one fires and masks again. */
    assert_int_equal(set_irqs(ctx, UNMASK_NONE, MU_IRQ_INTX, 0, 1), 0);
    assert_int_equal(efd_read(e), 1);
    assert_true(mu_irq_masked(ctx, MU_IRQ_INTX, 0));
    assert_int_equal(set_irqs(ctx, UNMASK_NONE, MU_IRQ_INTX, 0, 1), 0);
    assert_int_equal(efd_read(e), 0);
    assert_false(mu_irq_masked(ctx, MU_IRQ_INTX, 0));

    /* Without an fd there is nothing to automask. */
    assert_int_equal(set_irqs(ctx, TRIG_EFD, MU_IRQ_INTX, 0, 1), 0);
    assert_int_equal(mu_irq_trigger(ctx, MU_IRQ_INTX, 0), MU_IRQ_PENDING);
    assert_false(mu_irq_masked(ctx, MU_IRQ_INTX, 0));
    close(e);
}

static void test_intx_disable_bit(void **state)
{
    struct fixture *f = *state;
    mu_ctx_t *ctx = f->ctx;
    int e = efd();

    assert_int_equal(assign(ctx, MU_IRQ_INTX, 0, e), 0);
    cfg_write16(ctx, 4, 0x0400);
    assert_true(mu_irq_masked(ctx, MU_IRQ_INTX, 0));
    assert_int_equal(mu_irq_trigger(ctx, MU_IRQ_INTX, 0), MU_IRQ_PENDING);
    assert_int_equal(efd_read(e), 0);
    /* Clearing the bit must deliver the pending INTx: pci.c tells irq.c. */
    cfg_write16(ctx, 4, 0x0000);
    assert_int_equal(efd_read(e), 1);
    assert_true(mu_irq_masked(ctx, MU_IRQ_INTX, 0));    /* automasked */
    /* The bit masks only INTx. */
    cfg_write16(ctx, 4, 0x0400);
    assert_false(mu_irq_masked(ctx, MU_IRQ_MSI, 0));
    close(e);
}

static void test_disable_index(void **state)
{
    struct fixture *f = *state;
    mu_ctx_t *ctx = f->ctx;
    int e[3] = { efd(), efd(), efd() }, m = efd();
    int before = count_fds();

    assert_int_equal(set_irqs_fds(ctx, TRIG_EFD, MU_IRQ_MSIX, 10, 3, NULL, e,
                                  3, NULL), 0);
    assert_int_equal(set_irqs_fds(ctx, MASK_EFD, MU_IRQ_MSIX, 10, 1, NULL, &m,
                                  1, NULL), 0);
    assert_int_equal(set_irqs(ctx, MASK_NONE, MU_IRQ_MSIX, 11, 1), 0);
    assert_int_equal(mu_irq_trigger(ctx, MU_IRQ_MSIX, 11), MU_IRQ_PENDING);
    assert_int_equal(count_fds(), before + 4);

    assert_int_equal(set_irqs(ctx, TRIG_NONE, MU_IRQ_MSIX, 0, 0), 0);
    assert_int_equal(count_fds(), before);
    assert_false(mu_irq_masked(ctx, MU_IRQ_MSIX, 11));
    for (unsigned v = 10; v < 13; v++)
        assert_int_equal(mu_irq_trigger(ctx, MU_IRQ_MSIX, v), MU_IRQ_PENDING);
    assert_int_equal(nr_events, 2);
    assert_true(events[0].on);
    assert_false(events[1].on);
    assert_int_equal(events[1].type, MU_IRQ_MSIX);
    /* Pending state went with it: nothing fires on a new assignment. */
    assert_int_equal(set_irqs(ctx, TRIG_NONE, MU_IRQ_MSIX, 0, 0), 0);
    for (int i = 0; i < 3; i++)
        close(e[i]);
    close(m);
}

static void test_deassign(void **state)
{
    struct fixture *f = *state;
    mu_ctx_t *ctx = f->ctx;
    int e[4] = { efd(), efd(), efd(), efd() };
    int before = count_fds();

    assert_int_equal(set_irqs_fds(ctx, TRIG_EFD, MU_IRQ_MSI, 0, 4, NULL, e, 4,
                                  NULL), 0);
    assert_int_equal(count_fds(), before + 4);
    assert_int_equal(set_irqs(ctx, TRIG_EFD, MU_IRQ_MSI, 1, 2), 0);
    assert_int_equal(count_fds(), before + 2);
    assert_int_equal(mu_irq_trigger(ctx, MU_IRQ_MSI, 0), 0);
    assert_int_equal(mu_irq_trigger(ctx, MU_IRQ_MSI, 1), MU_IRQ_PENDING);
    assert_int_equal(mu_irq_trigger(ctx, MU_IRQ_MSI, 2), MU_IRQ_PENDING);
    assert_int_equal(mu_irq_trigger(ctx, MU_IRQ_MSI, 3), 0);
    assert_int_equal(efd_read(e[0]), 1);
    assert_int_equal(efd_read(e[3]), 1);
    assert_int_equal(efd_read(e[1]), 0);
    assert_int_equal(nr_events, 1);     /* still enabled */
    assert_int_equal(set_irqs(ctx, TRIG_EFD, MU_IRQ_MSI, 0, 4), 0);
    assert_int_equal(count_fds(), before);
    assert_int_equal(nr_events, 2);
    assert_false(events[1].on);
    for (int i = 0; i < 4; i++)
        close(e[i]);
}

static void test_replace_closes_old(void **state)
{
    struct fixture *f = *state;
    mu_ctx_t *ctx = f->ctx;
    int a = efd(), b = efd(), sent_a, sent_b, before = count_fds();

    assert_int_equal(set_irqs_fds(ctx, TRIG_EFD, MU_IRQ_MSIX, 0, 1, NULL, &a,
                                  1, &sent_a), 0);
    assert_true(fd_open(sent_a));
    assert_int_equal(set_irqs_fds(ctx, TRIG_EFD, MU_IRQ_MSIX, 0, 1, NULL, &b,
                                  1, &sent_b), 0);
    assert_int_equal(count_fds(), before + 1);
    assert_true(fd_open(sent_b));
    if (sent_a != sent_b)
        assert_false(fd_open(sent_a));
    assert_int_equal(mu_irq_trigger(ctx, MU_IRQ_MSIX, 0), 0);
    assert_int_equal(efd_read(a), 0);
    assert_int_equal(efd_read(b), 1);
    close(a);
    close(b);
}

static void test_bool(void **state)
{
    struct fixture *f = *state;
    mu_ctx_t *ctx = f->ctx;
    int e[3] = { efd(), efd(), efd() };
    const uint8_t fire[3] = { 1, 0, 1 }, mask[2] = { 0, 1 };

    assert_int_equal(set_irqs_fds(ctx, TRIG_EFD, MU_IRQ_MSI, 0, 3, NULL, e, 3,
                                  NULL), 0);
    assert_int_equal(set_irqs_fds(ctx, TRIG_BOOL, MU_IRQ_MSI, 0, 3, fire, NULL,
                                  0, NULL), 0);
    assert_int_equal(efd_read(e[0]), 1);
    assert_int_equal(efd_read(e[1]), 0);
    assert_int_equal(efd_read(e[2]), 1);

    assert_int_equal(set_irqs_fds(ctx, MASK_BOOL, MU_IRQ_MSI, 1, 2, mask, NULL,
                                  0, NULL), 0);
    assert_false(mu_irq_masked(ctx, MU_IRQ_MSI, 1));
    assert_true(mu_irq_masked(ctx, MU_IRQ_MSI, 2));
    assert_int_equal(mu_irq_trigger(ctx, MU_IRQ_MSI, 2), MU_IRQ_PENDING);
    assert_int_equal(set_irqs_fds(ctx, VFU_IRQ_SET_ACTION_UNMASK |
                                  VFU_IRQ_SET_DATA_BOOL, MU_IRQ_MSI, 1, 2,
                                  mask, NULL, 0, NULL), 0);
    assert_false(mu_irq_masked(ctx, MU_IRQ_MSI, 2));
    assert_int_equal(efd_read(e[2]), 1);
    for (int i = 0; i < 3; i++)
        close(e[i]);
}

/* Mask/unmask eventfds, signalled by the client, go through the epoll. */
static void test_mask_eventfds(void **state)
{
    struct fixture *f = *state;
    mu_ctx_t *ctx = f->ctx;
    int e = efd(), unmask = efd(), mask = efd(), before = count_fds();
    int sent_t, sent_u, sent_m;

    assert_int_equal(set_irqs_fds(ctx, TRIG_EFD, MU_IRQ_INTX, 0, 1, NULL, &e,
                                  1, &sent_t), 0);
    assert_int_equal(set_irqs_fds(ctx, UNMASK_EFD, MU_IRQ_INTX, 0, 1, NULL,
                                  &unmask, 1, &sent_u), 0);
    assert_int_equal(set_irqs_fds(ctx, MASK_EFD, MU_IRQ_INTX, 0, 1, NULL,
                                  &mask, 1, &sent_m), 0);
    assert_int_equal(count_fds(), before + 3);
    /* Only what the client signals is watched. */
    assert_false(epoll_has(ctx, sent_t));
    assert_true(epoll_has(ctx, sent_u));
    assert_true(epoll_has(ctx, sent_m));

    assert_int_equal(mu_irq_trigger(ctx, MU_IRQ_INTX, 0), 0);
    assert_int_equal(mu_irq_trigger(ctx, MU_IRQ_INTX, 0), MU_IRQ_PENDING);
    assert_int_equal(efd_read(e), 1);
    /* KVM resampling: the client signals the unmask fd at EOI. */
    efd_signal(unmask);
    poll_ctx(ctx);
    assert_int_equal(efd_read(e), 1);           /* the pending one */
    assert_true(mu_irq_masked(ctx, MU_IRQ_INTX, 0));
    efd_signal(unmask);
    poll_ctx(ctx);
    assert_false(mu_irq_masked(ctx, MU_IRQ_INTX, 0));
    efd_signal(mask);
    poll_ctx(ctx);
    assert_true(mu_irq_masked(ctx, MU_IRQ_INTX, 0));
    assert_int_equal(efd_read(e), 0);

    /* Stray tags are ignored. */
    mu_irqs_fd_event(ctx, 0);
    mu_irqs_fd_event(ctx, UINT32_MAX);
    mu_irqs_fd_event(ctx, 1u << 24 | 9u << 16);
    mu_irqs_fd_event(ctx, 1u << 24 | MU_IRQ_MSIX << 16 | 0xffff);
    mu_irqs_fd_event(ctx, 2u << 24 | MU_IRQ_INTX << 16);   /* nothing to read */
    assert_true(mu_irq_masked(ctx, MU_IRQ_INTX, 0));

    /* Removed: closed, and no longer watched. */
    assert_int_equal(set_irqs(ctx, UNMASK_EFD, MU_IRQ_INTX, 0, 1), 0);
    assert_int_equal(count_fds(), before + 2);
    assert_false(epoll_has(ctx, sent_u));
    assert_true(epoll_has(ctx, sent_m));
    efd_signal(unmask);
    poll_ctx(ctx);
    assert_true(mu_irq_masked(ctx, MU_IRQ_INTX, 0));
    close(e);
    close(unmask);
    close(mask);
}

/* Without realize there is no epoll: mask fds are kept but not watched. */
static void test_unrealized(void **state)
{
    char dir[] = "/tmp/mu-irq-XXXXXX", path[64];
    mu_ctx_t *ctx;
    int e = efd(), before;

    (void)state;
    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof(path), "%s/s", dir);
    assert_int_equal(mu_ctx_create(&ctx, path, MU_DEV_PCI, NULL), 0);
    assert_int_equal(mu_irq_setup(ctx, MU_IRQ_INTX, 1), 0);
    before = count_fds();
    assert_int_equal(set_irqs_fds(ctx, UNMASK_EFD, MU_IRQ_INTX, 0, 1, NULL,
                                  &e, 1, NULL), 0);
    assert_int_equal(set_irqs_fds(ctx, TRIG_EFD, MU_IRQ_INTX, 0, 1, NULL,
                                  &e, 1, NULL), 0);
    assert_int_equal(count_fds(), before + 2);
    mu_irqs_reset(ctx);
    assert_int_equal(count_fds(), before);
    assert_int_equal(set_irqs_fds(ctx, TRIG_EFD, MU_IRQ_INTX, 0, 1, NULL,
                                  &e, 1, NULL), 0);
    mu_ctx_destroy(ctx);
    assert_int_equal(count_fds(), before);
    rmdir(dir);
    close(e);
}

static void test_setup_rules(void **state)
{
    char dir[] = "/tmp/mu-irq-XXXXXX", path[64];
    mu_ctx_t *ctx;

    (void)state;
    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof(path), "%s/s", dir);
    assert_int_equal(mu_ctx_create(&ctx, path, MU_DEV_PCI, NULL), 0);
    assert_int_equal(mu_ctx_set_log(ctx, NULL, MU_LOG_ERR), 0);
    assert_int_equal(mu_irq_setup(ctx, MU_IRQ_INTX, 2), -EINVAL);
    assert_int_equal(mu_irq_setup(ctx, MU_IRQ_ERR, 2), -EINVAL);
    assert_int_equal(mu_irq_setup(ctx, MU_IRQ_REQ, 1), 0);
    assert_int_equal(mu_irq_setup(ctx, MU_IRQ_REQ, 0), 0);
    assert_int_equal(mu_irq_setup(ctx, MU_IRQ_MSI, 0), -EINVAL);
    assert_int_equal(mu_irq_setup(ctx, MU_IRQ_MSI, 33), -EINVAL);
    assert_int_equal(mu_irq_setup(ctx, MU_IRQ_MSIX, 0), -EINVAL);
    assert_int_equal(mu_irq_setup(ctx, MU_IRQ_MSIX, 2049), -EINVAL);
    assert_int_equal(mu_irq_setup(ctx, (enum mu_irq_type)5, 1), -EINVAL);
    /* Without a capability the count may change... */
    assert_int_equal(mu_irq_setup(ctx, MU_IRQ_MSI, 2), 0);
    assert_int_equal(mu_irq_setup(ctx, MU_IRQ_MSI, 3), 0);
    assert_int_equal(mu_irq_setup(ctx, MU_IRQ_MSIX, 2048), 0);
    /* ...the capability's count wins, and then is the only one. */
    assert_true(mu_pci_add_msi(ctx, 5, false) > 0);
    assert_int_equal(mu_irqs_count(ctx, MU_IRQ_MSI), 8);
    assert_int_equal(mu_irq_setup(ctx, MU_IRQ_MSI, 4), -EINVAL);
    assert_int_equal(mu_irq_setup(ctx, MU_IRQ_MSI, 8), 0);
    assert_int_equal(mu_region_setup(ctx, 0, 0x10000,
                                     MU_REGION_RW | MU_REGION_MEM, bar_cb), 0);
    assert_true(mu_pci_add_msix(ctx, 16, 0, 0, 0, 0x1000) > 0);
    assert_int_equal(mu_irqs_count(ctx, MU_IRQ_MSIX), 16);
    assert_int_equal(mu_irq_setup(ctx, MU_IRQ_MSIX, 17), -EINVAL);
    assert_int_equal(mu_ctx_realize(ctx), 0);
    assert_int_equal(mu_irq_setup(ctx, MU_IRQ_INTX, 1), -EBUSY);
    mu_ctx_destroy(ctx);
    unlink(path);
    rmdir(dir);
}

/* ---- MSI and MSI-X through config space ---- */

static void test_msi_cfg_mask(void **state)
{
    struct fixture *f = *state;
    mu_ctx_t *ctx = f->ctx;
    unsigned ctrl = (unsigned)f->msi_off + 2, mask = (unsigned)f->msi_off + 0x10;
    int e = efd();

    assert_int_equal(assign(ctx, MU_IRQ_MSI, 0, e), 0);
    nr_events = 0;
    /* Mask bits alone (MSI disabled, as QEMU leaves our copy) do nothing. */
    cfg_write32(ctx, mask, 0x1);
    assert_false(mu_irq_masked(ctx, MU_IRQ_MSI, 0));
    assert_int_equal(mu_irq_trigger(ctx, MU_IRQ_MSI, 0), 0);
    assert_int_equal(efd_read(e), 1);

    cfg_write16(ctx, ctrl, 0x0001);
    assert_true(mu_irq_masked(ctx, MU_IRQ_MSI, 0));
    assert_false(mu_irq_masked(ctx, MU_IRQ_MSI, 1));
    assert_int_equal(mu_irq_trigger(ctx, MU_IRQ_MSI, 0), MU_IRQ_PENDING);
    assert_int_equal(efd_read(e), 0);
    cfg_write32(ctx, mask, 0x0);
    assert_int_equal(efd_read(e), 1);
    assert_false(mu_irq_masked(ctx, MU_IRQ_MSI, 0));

    /* Disabling with a vector pending does not fire it. */
    cfg_write32(ctx, mask, 0x1);
    assert_int_equal(mu_irq_trigger(ctx, MU_IRQ_MSI, 0), MU_IRQ_PENDING);
    cfg_write16(ctx, ctrl, 0x0000);
    assert_int_equal(efd_read(e), 0);
    assert_int_equal(nr_events, 0);     /* still enabled by the fd */
    close(e);
}

static void test_msix_table_access_rules(void **state)
{
    struct fixture *f = *state;
    mu_ctx_t *ctx = f->ctx;
    uint8_t buf[16] = { 0 };
    uint64_t tbl_end = TBL_OFF + 16u * NMSIX, pba_end = PBA_OFF + 16;

    /* sizes and alignment */
    assert_int_equal(bar_rw(ctx, buf, 1, 0, false), -EINVAL);
    assert_int_equal(bar_rw(ctx, buf, 2, 0, true), -EINVAL);
    assert_int_equal(bar_rw(ctx, buf, 16, 0, false), -EINVAL);
    assert_int_equal(bar_rw(ctx, buf, 4, 2, false), -EINVAL);
    assert_int_equal(bar_rw(ctx, buf, 8, 4, false), -EINVAL);
    assert_int_equal(bar_rw(ctx, buf, 8, PBA_OFF + 4, false), -EINVAL);
    assert_int_equal(bar_rw(ctx, buf, 1, PBA_OFF + 15, false), -EINVAL);
    /* straddling the edges */
    assert_int_equal(bar_rw(ctx, buf, 8, tbl_end - 4, false), -EINVAL);
    assert_int_equal(bar_rw(ctx, buf, 8, PBA_OFF - 4, false), -EINVAL);
    assert_int_equal(bar_rw(ctx, buf, 16, pba_end - 8, false), -EINVAL);
    assert_int_equal(bar_cb_calls, 0);
    /* outside both: the device's */
    assert_int_equal(mu_irqs_msix_access(ctx, TBL_BAR, buf, 4, tbl_end, false),
                     -ENOENT);
    assert_int_equal(mu_irqs_msix_access(ctx, TBL_BAR, buf, 1, pba_end, false),
                     -ENOENT);
    assert_int_equal(mu_irqs_msix_access(ctx, 0, buf, 4, 0, false), -ENOENT);
    assert_int_equal(bar_rw(ctx, buf, 2, tbl_end, false), 2);
    assert_int_equal(buf[0], 0xab);
    assert_int_equal(bar_cb_calls, 1);
    /* good ones */
    assert_int_equal(bar_rw(ctx, buf, 8, 16u * (NMSIX - 1) + 8, false), 8);
    assert_int_equal(bar_rw(ctx, buf, 4, pba_end - 4, false), 4);
    assert_int_equal(bar_rw(ctx, buf, 8, PBA_OFF + 8, true), 8);
}

static void test_msix_table_values(void **state)
{
    struct fixture *f = *state;
    mu_ctx_t *ctx = f->ctx;
    uint64_t q;

    /* Reset values: zero address/data, masked. */
    for (unsigned v = 0; v < NMSIX; v += 23) {
        assert_int_equal(bar_read32(ctx, 16u * v), 0);
        assert_int_equal(bar_read32(ctx, 16u * v + 4), 0);
        assert_int_equal(bar_read32(ctx, 16u * v + 8), 0);
        assert_int_equal(bar_read32(ctx, ctl_off(v)), 1);
    }
    bar_write32(ctx, 16 * 7, 0xfee00000);
    bar_write32(ctx, 16 * 7 + 4, 0x1);
    q = 0xffffffff00004321ull;  /* data, then vector control */
    assert_int_equal(bar_rw(ctx, &q, 8, 16 * 7 + 8, true), 8);
    assert_int_equal(bar_read32(ctx, 16 * 7), 0xfee00000);
    assert_int_equal(bar_read32(ctx, 16 * 7 + 4), 1);
    assert_int_equal(bar_read32(ctx, 16 * 7 + 8), 0x4321);
    assert_int_equal(bar_read32(ctx, ctl_off(7)), 1);   /* reserved bits 0 */
    q = 0;
    assert_int_equal(bar_rw(ctx, &q, 8, 16 * 7, false), 8);
    assert_int_equal(q, 0x1fee00000ull);
    assert_int_equal(bar_read32(ctx, ctl_off(6)), 1);   /* neighbours intact */
    assert_int_equal(bar_read32(ctx, 16 * 8), 0);
}

static void test_msix_mask_semantics(void **state)
{
    struct fixture *f = *state;
    mu_ctx_t *ctx = f->ctx;
    unsigned ctrl = (unsigned)f->msix_off + 2;
    int e = efd(), e65 = efd();
    uint64_t pba[2];

    assert_int_equal(assign(ctx, MU_IRQ_MSIX, 3, e), 0);
    assert_int_equal(assign(ctx, MU_IRQ_MSIX, 65, e65), 0);
    /* Our table says masked, but the client never enabled MSI-X through
     * our config (QEMU's way): the table must not mask. */
    assert_false(mu_irq_masked(ctx, MU_IRQ_MSIX, 3));
    assert_int_equal(mu_irq_trigger(ctx, MU_IRQ_MSIX, 3), 0);
    assert_int_equal(efd_read(e), 1);

    nr_events = 0;
    cfg_write16(ctx, ctrl, 0x8000);
    assert_int_equal(nr_events, 0);     /* already enabled by fds */
    /* Enabled, but no table write yet: the client may emulate the table
     * (QEMU forwards the enable bit, never the table), so the reset mask
     * bits still do not count. */
    assert_false(mu_irq_masked(ctx, MU_IRQ_MSIX, 3));
    assert_int_equal(mu_irq_trigger(ctx, MU_IRQ_MSIX, 3), 0);
    assert_int_equal(efd_read(e), 1);
    /* A table write (entry 0's mask bit, set as Linux does at setup)
     * shows the table is written through: now its mask bits count. */
    bar_write32(ctx, ctl_off(0), 1);
    assert_true(mu_irq_masked(ctx, MU_IRQ_MSIX, 3));
    assert_int_equal(mu_irq_trigger(ctx, MU_IRQ_MSIX, 3), MU_IRQ_PENDING);
    assert_int_equal(mu_irq_trigger(ctx, MU_IRQ_MSIX, 65), MU_IRQ_PENDING);
    assert_int_equal(efd_read(e), 0);
    assert_int_equal(bar_rw(ctx, pba, 16, PBA_OFF, false), -EINVAL);
    assert_int_equal(bar_rw(ctx, &pba[0], 8, PBA_OFF, false), 8);
    assert_int_equal(bar_rw(ctx, &pba[1], 8, PBA_OFF + 8, false), 8);
    assert_int_equal(pba[0], 1ull << 3);
    assert_int_equal(pba[1], 1ull << 1);
    assert_int_equal(bar_read32(ctx, PBA_OFF + 8), 2);
    assert_int_equal(bar_read32(ctx, PBA_OFF + 12), 0);
    /* PBA is read-only. */
    bar_write32(ctx, PBA_OFF, 0);
    assert_int_equal(bar_read32(ctx, PBA_OFF), 1u << 3);

    /* Unmasking the entry delivers the pending vector. */
    bar_write32(ctx, ctl_off(3), 0);
    assert_int_equal(efd_read(e), 1);
    assert_int_equal(bar_read32(ctx, PBA_OFF), 0);
    assert_false(mu_irq_masked(ctx, MU_IRQ_MSIX, 3));
    /* SET_IRQS mask still applies on top. */
    assert_int_equal(set_irqs(ctx, MASK_NONE, MU_IRQ_MSIX, 3, 1), 0);
    assert_true(mu_irq_masked(ctx, MU_IRQ_MSIX, 3));
    assert_int_equal(set_irqs(ctx, UNMASK_NONE, MU_IRQ_MSIX, 3, 1), 0);

    /* Function mask masks everything; clearing it delivers. */
    cfg_write16(ctx, ctrl, 0xc000);
    assert_true(mu_irq_masked(ctx, MU_IRQ_MSIX, 3));
    assert_int_equal(mu_irq_trigger(ctx, MU_IRQ_MSIX, 3), MU_IRQ_PENDING);
    bar_write32(ctx, ctl_off(65), 0);
    assert_int_equal(efd_read(e65), 0);
    cfg_write16(ctx, ctrl, 0x8000);
    assert_int_equal(efd_read(e), 1);
    assert_int_equal(efd_read(e65), 1);
    assert_int_equal(bar_read32(ctx, PBA_OFF + 8), 0);

    /* Masked again and pending, then MSI-X disabled: no burst, and the
     * table no longer masks. */
    bar_write32(ctx, ctl_off(3), 1);
    assert_int_equal(mu_irq_trigger(ctx, MU_IRQ_MSIX, 3), MU_IRQ_PENDING);
    cfg_write16(ctx, ctrl, 0x0000);
    assert_int_equal(efd_read(e), 0);
    assert_false(mu_irq_masked(ctx, MU_IRQ_MSIX, 3));
    assert_int_equal(mu_irq_trigger(ctx, MU_IRQ_MSIX, 3), 0);
    assert_int_equal(efd_read(e), 1);
    close(e);
    close(e65);
}

static void test_cfg_enable_state_cb(void **state)
{
    struct fixture *f = *state;
    mu_ctx_t *ctx = f->ctx;
    int e = efd();

    cfg_write16(ctx, (unsigned)f->msix_off + 2, 0x8000);
    assert_int_equal(nr_events, 1);
    assert_int_equal(events[0].type, MU_IRQ_MSIX);
    assert_true(events[0].on);
    assert_int_equal(assign(ctx, MU_IRQ_MSIX, 0, e), 0);
    assert_int_equal(nr_events, 1);
    cfg_write16(ctx, (unsigned)f->msix_off + 2, 0x0000);
    assert_int_equal(nr_events, 1);     /* the fd keeps it enabled */
    assert_int_equal(set_irqs(ctx, TRIG_NONE, MU_IRQ_MSIX, 0, 0), 0);
    assert_int_equal(nr_events, 2);
    assert_false(events[1].on);

    cfg_write16(ctx, (unsigned)f->msi_off + 2, 0x0001);
    cfg_write16(ctx, (unsigned)f->msi_off + 2, 0x0001);
    assert_int_equal(nr_events, 3);
    assert_int_equal(events[2].type, MU_IRQ_MSI);
    assert_true(events[2].on);
    cfg_write16(ctx, (unsigned)f->msi_off + 2, 0x0000);
    assert_int_equal(nr_events, 4);
    assert_false(events[3].on);
    close(e);
}

/* ---- reset ---- */

static void test_reset(void **state)
{
    struct fixture *f = *state;
    mu_ctx_t *ctx = f->ctx;
    int e[4] = { efd(), efd(), efd(), efd() }, m = efd(), u = efd();
    int before = count_fds(), sent_m;

    assert_int_equal(assign(ctx, MU_IRQ_INTX, 0, e[0]), 0);
    assert_int_equal(set_irqs_fds(ctx, UNMASK_EFD, MU_IRQ_INTX, 0, 1, NULL, &u,
                                  1, NULL), 0);
    assert_int_equal(set_irqs_fds(ctx, TRIG_EFD, MU_IRQ_MSIX, 0, 3, NULL,
                                  &e[1], 3, NULL), 0);
    assert_int_equal(set_irqs_fds(ctx, MASK_EFD, MU_IRQ_MSIX, 1, 1, NULL, &m,
                                  1, &sent_m), 0);
    assert_true(epoll_has(ctx, sent_m));
    cfg_write16(ctx, (unsigned)f->msix_off + 2, 0x8000);
    bar_write32(ctx, 16 * 2, 0x1234);   /* the table is written through */
    assert_int_equal(mu_irq_trigger(ctx, MU_IRQ_INTX, 0), 0);   /* automask */
    assert_int_equal(mu_irq_trigger(ctx, MU_IRQ_MSIX, 2), MU_IRQ_PENDING);
    assert_int_equal(mu_irq_trigger(ctx, MU_IRQ_MSI, 0), MU_IRQ_PENDING);
    assert_int_equal(count_fds(), before + 6);
    nr_events = 0;

    mu_irqs_reset(ctx);
    assert_int_equal(count_fds(), before);
    assert_false(epoll_has(ctx, sent_m));
    assert_false(mu_irq_masked(ctx, MU_IRQ_INTX, 0));
    assert_false(mu_irq_masked(ctx, MU_IRQ_MSIX, 2));
    assert_int_equal(bar_read32(ctx, PBA_OFF), 0);
    assert_int_equal(bar_read32(ctx, 16 * 2), 0);
    assert_int_equal(bar_read32(ctx, ctl_off(2)), 1);
    assert_int_equal(nr_events, 2);
    assert_int_equal(events[0].type, MU_IRQ_INTX);
    assert_false(events[0].on);
    assert_int_equal(events[1].type, MU_IRQ_MSIX);
    assert_false(events[1].on);
    /* Nothing pending survives: a new client's fd gets no stale fire. */
    assert_int_equal(assign(ctx, MU_IRQ_MSI, 0, e[0]), 0);
    assert_int_equal(efd_read(e[0]), 1);    /* the INTx one from before */
    assert_int_equal(efd_read(e[0]), 0);
    /* The write-through seen before the reset is forgotten: enabled
     * again with the table untouched, its mask bits do not count. */
    assert_int_equal(assign(ctx, MU_IRQ_MSIX, 2, e[1]), 0);
    cfg_write16(ctx, (unsigned)f->msix_off + 2, 0x8000);
    assert_false(mu_irq_masked(ctx, MU_IRQ_MSIX, 2));
    assert_int_equal(mu_irq_trigger(ctx, MU_IRQ_MSIX, 2), 0);
    assert_int_equal(efd_read(e[1]), 1);
    /* mu_irqs_reset twice is harmless. */
    mu_irqs_reset(ctx);
    mu_irqs_reset(ctx);
    assert_int_equal(count_fds(), before);
    for (int i = 0; i < 4; i++)
        close(e[i]);
    close(m);
    close(u);
}

/* ---- threads ---- */

struct race {
    mu_ctx_t *ctx;
    bool stop;
    unsigned fired, other;
};

static void *trigger_thread(void *arg)
{
    struct race *r = arg;

    while (!__atomic_load_n(&r->stop, __ATOMIC_RELAXED)) {
        int rc = mu_irq_trigger(r->ctx, MU_IRQ_MSIX, 0);

        if (rc == 0)
            __atomic_fetch_add(&r->fired, 1, __ATOMIC_RELAXED);
        else if (rc != MU_IRQ_PENDING)
            __atomic_fetch_add(&r->other, 1, __ATOMIC_RELAXED);
        (void)mu_irq_masked(r->ctx, MU_IRQ_MSIX, 0);
    }
    return NULL;
}

static void test_trigger_races_set_irqs(void **state)
{
    struct fixture *f = *state;
    struct race r = { .ctx = f->ctx };
    int before = count_fds(), e;
    pthread_t th[2];

    for (int i = 0; i < 2; i++)
        assert_int_equal(pthread_create(&th[i], NULL, trigger_thread, &r), 0);
    for (int i = 0; i < 2000; i++) {
        e = efd();
        if (i % 5 == 4)
            assert_int_equal(set_irqs(f->ctx, TRIG_EFD, MU_IRQ_MSIX, 0, 1), 0);
        else
            assert_int_equal(assign(f->ctx, MU_IRQ_MSIX, 0, e), 0);
        if (i % 7 == 0)
            assert_int_equal(set_irqs(f->ctx, TRIG_NONE, MU_IRQ_MSIX, 0, 0), 0);
        if (i % 11 == 0)
            mu_irqs_reset(f->ctx);
        close(e);
    }
    __atomic_store_n(&r.stop, true, __ATOMIC_RELAXED);
    for (int i = 0; i < 2; i++)
        pthread_join(th[i], NULL);
    assert_int_equal(r.other, 0);
    mu_irqs_reset(f->ctx);
    assert_int_equal(count_fds(), before);
}

/* irq.c's own entry, without a message: checks and fd ownership. */
static void test_irq_set_typed(void **state)
{
    struct fixture *f = *state;
    mu_ctx_t *ctx = f->ctx;
    int e[2] = { efd(), efd() };
    int fds[2] = { e[0], e[1] };
    const uint8_t bools[2] = { 0, 1 };
    struct mu_irq_set s = {
        .type = MU_IRQ_MSIX, .start = NMSIX - 1, .count = 2,
        .action = MU_IRQ_ACT_TRIGGER, .data = MU_IRQ_DATA_EVENTFD,
        .fds = fds, .nfds = 2,
    };

    /* Refused: nothing taken, the caller still owns both fds. */
    assert_int_equal(mu_irq_set(ctx, &s), -EINVAL);         /* past the end */
    s.start = UINT32_MAX;
    assert_int_equal(mu_irq_set(ctx, &s), -EINVAL);         /* wraps */
    s.start = 0;
    s.nfds = 1;
    assert_int_equal(mu_irq_set(ctx, &s), -EINVAL);         /* fd count */
    s.nfds = 2;
    s.data = MU_IRQ_DATA_NONE;
    assert_int_equal(mu_irq_set(ctx, &s), -EINVAL);         /* fds, no data */
    s.data = MU_IRQ_DATA_EVENTFD;
    s.type = MU_IRQ_REQ;
    assert_int_equal(mu_irq_set(ctx, &s), -EINVAL);         /* no vectors */
    s.type = MU_IRQ_NUM;
    assert_int_equal(mu_irq_set(ctx, &s), -EINVAL);
    s.type = MU_IRQ_MSIX;
    s.count = 0;
    s.nfds = 0;
    s.data = MU_IRQ_DATA_BOOL;
    assert_int_equal(mu_irq_set(ctx, &s), -EINVAL);         /* count 0 */
    assert_int_equal(fds[0], e[0]);
    assert_int_equal(fds[1], e[1]);
    assert_true(fd_open(e[0]) && fd_open(e[1]));

    /* Taken: -1 in the array, and the vectors fire into them. */
    s.count = 2;
    s.nfds = 2;
    s.data = MU_IRQ_DATA_EVENTFD;
    fds[0] = fcntl(e[0], F_DUPFD_CLOEXEC, 0);
    fds[1] = fcntl(e[1], F_DUPFD_CLOEXEC, 0);
    assert_int_equal(mu_irq_set(ctx, &s), 0);
    assert_int_equal(fds[0], -1);
    assert_int_equal(fds[1], -1);
    s.data = MU_IRQ_DATA_BOOL;
    s.bools = bools;
    s.fds = NULL;
    s.nfds = 0;
    assert_int_equal(mu_irq_set(ctx, &s), 0);
    assert_int_equal(efd_read(e[0]), 0);
    assert_int_equal(efd_read(e[1]), 1);
    /* count 0, trigger, no data: the index goes off. */
    s = (struct mu_irq_set){ .type = MU_IRQ_MSIX,
                             .action = MU_IRQ_ACT_TRIGGER };
    assert_int_equal(mu_irq_set(ctx, &s), 0);
    assert_int_equal(mu_irq_trigger(ctx, MU_IRQ_MSIX, 0), MU_IRQ_PENDING);
    close(e[0]);
    close(e[1]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
        T(test_irq_info),
        T(test_irq_info_bad),
        T(test_set_irqs_bad),
        T(test_set_irqs_not_eventfd),
        T(test_assign_trigger),
        T(test_pending_until_assigned),
        T(test_mask_unmask),
        T(test_intx_automask),
        T(test_intx_disable_bit),
        T(test_disable_index),
        T(test_deassign),
        T(test_replace_closes_old),
        T(test_bool),
        T(test_mask_eventfds),
        T(test_irq_set_typed),
        cmocka_unit_test(test_unrealized),
        cmocka_unit_test(test_setup_rules),
        T(test_msi_cfg_mask),
        T(test_msix_table_access_rules),
        T(test_msix_table_values),
        T(test_msix_mask_semantics),
        T(test_cfg_enable_state_cb),
        T(test_reset),
        T(test_trigger_races_set_irqs),
#undef T
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
