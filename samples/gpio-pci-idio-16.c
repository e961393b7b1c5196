/*
 * muser-gpio-pci-idio-16 - an ACCES PCI-IDIO-16 digital I/O card on muser.
 *
 * 16 isolated inputs, 16 FET outputs, one INTx, registers in BAR2 (8-bit,
 * I/O space), modelled after ../shared/reference/gpio-pci-idio-16.md closely
 * enough for the Linux gpio-pci-idio-16 driver: outputs latch and read
 * back, inputs are simulated, and an input change raises INTx while the
 * interrupt is enabled.
 *
 * Inputs change when the process gets SIGUSR1 (the value counts up) or,
 * with --toggle-ms N, every N ms.  The context is run from this program's
 * own poll loop through mu_ctx_fd()/mu_ctx_poll(), which is how a device
 * with other event sources embeds muser.
 */
#include <errno.h>
#include <getopt.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include "muser.h"

#define IDIO_VENDOR 0x494f
#define IDIO_DEVICE 0x0dc8
#define IDIO_BAR2_SIZE 0x100

/* Register offsets in BAR2. */
enum {
    REG_OUT_LO = 0,     /* r: latched outputs 0-7, w: set them */
    REG_IN_LO = 1,      /* r: inputs 0-7, w: clear pending interrupt */
    REG_IRQ_CTL = 2,    /* r: enable IRQ, w: disable IRQ */
    REG_FILTER = 3,     /* r: activate filters, w: deactivate filters */
    REG_OUT_HI = 4,     /* outputs 8-15 */
    REG_IN_HI = 5,      /* inputs 8-15 */
    REG_IRQ_STATUS = 6, /* bit 2 summary pending, bit 0 any input */
};

#define STATUS_PENDING 0x05

struct idio {
    uint16_t outputs;
    uint16_t inputs;
    bool irq_enabled;
    bool irq_pending;
    bool filters;
    unsigned irqs_raised;
    bool verbose;
};

static struct idio dev;

static void idio_reset(struct idio *d)
{
    d->outputs = 0;
    d->irq_enabled = false;
    d->irq_pending = false;
    d->filters = true;
}

static void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void say(const char *fmt, ...)
{
    va_list ap;

    if (!dev.verbose)
        return;
    va_start(ap, fmt);
    fputs("gpio: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

/* Inputs changed: latch an interrupt if enabled, and signal it once. */
static void inputs_changed(mu_ctx_t *ctx, uint16_t inputs)
{
    if (inputs == dev.inputs)
        return;
    dev.inputs = inputs;
    say("inputs now %#06x", inputs);
    if (!dev.irq_enabled || dev.irq_pending)
        return;     /* level stays asserted until the guest clears it */
    dev.irq_pending = true;
    dev.irqs_raised++;
    int rc = mu_irq_trigger(ctx, MU_IRQ_INTX, 0);
    say("INTx raised (%s)", rc == 0 ? "signalled"
                            : rc == MU_IRQ_PENDING ? "pending"
                            : strerror(-rc));
}

static ssize_t bar2_access(mu_ctx_t *ctx, void *buf, size_t count,
                           uint64_t offset, bool is_write)
{
    uint8_t *b = buf;

    (void)ctx;
    for (size_t i = 0; i < count; i++) {
        uint64_t reg = offset + i;

        if (is_write) {
            switch (reg) {
            case REG_OUT_LO:
                dev.outputs = (uint16_t)((dev.outputs & 0xff00) | b[i]);
                break;
            case REG_OUT_HI:
                dev.outputs = (uint16_t)((dev.outputs & 0x00ff) | b[i] << 8);
                break;
            case REG_IN_LO:     /* strobe: clear the pending interrupt */
                dev.irq_pending = false;
                break;
            case REG_IRQ_CTL:   /* strobe: disable, which also deasserts */
                dev.irq_enabled = false;
                dev.irq_pending = false;
                break;
            case REG_FILTER:
                dev.filters = false;
                break;
            default:
                break;          /* unused: ignored like the card does */
            }
            continue;
        }
        switch (reg) {
        case REG_OUT_LO:
            b[i] = (uint8_t)dev.outputs;
            break;
        case REG_OUT_HI:
            b[i] = (uint8_t)(dev.outputs >> 8);
            break;
        case REG_IN_LO:
            b[i] = (uint8_t)dev.inputs;
            break;
        case REG_IN_HI:
            b[i] = (uint8_t)(dev.inputs >> 8);
            break;
        case REG_IRQ_CTL:       /* the read is the action */
            dev.irq_enabled = true;
            b[i] = 0;
            break;
        case REG_FILTER:
            dev.filters = true;
            b[i] = 0;
            break;
        case REG_IRQ_STATUS:
            b[i] = dev.irq_pending ? STATUS_PENDING : 0;
            break;
        default:
            b[i] = 0;
            break;
        }
    }
    return (ssize_t)count;
}

static int on_reset(mu_ctx_t *ctx, enum mu_reset_type type)
{
    (void)ctx;
    /* vfio-user keeps device state across clients: only a real reset
     * puts the card back to its power-on state. */
    if (type == MU_RESET_LOST) {
        say("client gone; state kept (outputs %#06x)", dev.outputs);
        return 0;
    }
    say("reset (%s)", type == MU_RESET_CLIENT ? "client" : "FLR");
    idio_reset(&dev);
    return 0;
}

/*
 * Migration: the card's state is 12 bytes, saved whole in STOP_COPY.
 * Stream: magic "IDIO", u16 version, u16 length of what follows, then
 * outputs, inputs (u16 each), irq_enabled, irq_pending, filters (u8 each),
 * one pad byte.  A version this program does not know is refused.
 */
#define MIG_MAGIC 0x4f494449u
#define MIG_VERSION 1u
#define MIG_LEN 16u

static uint8_t mig_out[MIG_LEN], mig_in[MIG_LEN];
static size_t mig_out_pos = MIG_LEN, mig_in_len;

static int mig_transition(mu_ctx_t *ctx, enum mu_mig_state from,
                          enum mu_mig_state to)
{
    uint32_t magic = MIG_MAGIC;
    uint16_t ver = MIG_VERSION, len = MIG_LEN - 8;

    (void)ctx;
    if (to == MU_MIG_STOP_COPY) {
        memcpy(mig_out, &magic, 4);
        memcpy(mig_out + 4, &ver, 2);
        memcpy(mig_out + 6, &len, 2);
        memcpy(mig_out + 8, &dev.outputs, 2);
        memcpy(mig_out + 10, &dev.inputs, 2);
        mig_out[12] = dev.irq_enabled;
        mig_out[13] = dev.irq_pending;
        mig_out[14] = dev.filters;
        mig_out[15] = 0;
        mig_out_pos = 0;
    } else if (to == MU_MIG_RESUMING) {
        mig_in_len = 0;
    } else if (from == MU_MIG_RESUMING) {
        if (mig_in_len != MIG_LEN) {
            mig_in_len = 0;
            return -EINVAL;
        }
        memcpy(&dev.outputs, mig_in + 8, 2);
        memcpy(&dev.inputs, mig_in + 10, 2);
        dev.irq_enabled = mig_in[12];
        dev.irq_pending = mig_in[13];
        dev.filters = mig_in[14];
        mig_in_len = 0;
        say("state restored (outputs %#06x)", dev.outputs);
    }
    return 0;
}

static ssize_t mig_save(mu_ctx_t *ctx, void *buf, size_t n)
{
    (void)ctx;
    if (n > MIG_LEN - mig_out_pos)
        n = MIG_LEN - mig_out_pos;
    memcpy(buf, mig_out + mig_out_pos, n);
    mig_out_pos += n;
    return (ssize_t)n;
}

static int mig_load(mu_ctx_t *ctx, const void *buf, size_t n)
{
    uint32_t magic;
    uint16_t ver, len;

    (void)ctx;
    if (n > MIG_LEN - mig_in_len) {
        mig_in_len = 0;
        return -EINVAL;
    }
    memcpy(mig_in + mig_in_len, buf, n);
    mig_in_len += n;
    if (mig_in_len >= 8) {
        memcpy(&magic, mig_in, 4);
        memcpy(&ver, mig_in + 4, 2);
        memcpy(&len, mig_in + 6, 2);
        if (magic != MIG_MAGIC || ver != MIG_VERSION || len != MIG_LEN - 8 ||
            (mig_in_len > 12 && (mig_in[12] > 1 || mig_in[13] > 1)) ||
            (mig_in_len > 14 && mig_in[14] > 1)) {
            mig_in_len = 0;
            return -EPROTO;     /* not a stream this version knows */
        }
    }
    return 0;
}

static void usage(FILE *f, const char *argv0)
{
    fprintf(f,
            "usage: %s [-v] [-1] [--toggle-ms N] SOCKET\n"
            "  Serve an emulated PCI-IDIO-16 on the UNIX socket SOCKET.\n"
            "  -v, --verbose     log register and interrupt activity and every\n"
            "                    vfio-user message with its result\n"
            "  -1, --once        exit when the first client disconnects\n"
            "  --toggle-ms N     change the inputs every N milliseconds\n"
            "  SIGUSR1 changes the inputs once.\n",
            argv0);
}

static int setup(mu_ctx_t **ctxp, const char *path, bool once)
{
    struct mu_pci_ids ids = {
        .vendor_id = IDIO_VENDOR,
        .device_id = IDIO_DEVICE,
        .class_code = 0x118000,     /* signal processing controller */
        .irq_pin = 1,               /* INTA# */
    };
    const struct mu_mig_callbacks mig = {
        .size = sizeof(mig), .transition = mig_transition,
        .save = mig_save, .load = mig_load,
    };
    mu_ctx_t *ctx;
    int rc;

    rc = mu_ctx_create(&ctx, path, MU_DEV_PCI, &dev);
    if (rc < 0)
        return rc;
    if ((rc = mu_ctx_set_log(ctx, NULL, dev.verbose ? MU_LOG_DEBUG
                                                    : MU_LOG_WARN)) < 0 ||
        (once && (rc = mu_ctx_set_flags(ctx, MU_CTX_ONE_CLIENT)) < 0) ||
        (rc = mu_ctx_set_reset_cb(ctx, on_reset)) < 0 ||
        (rc = mu_pci_set_ids(ctx, &ids)) < 0 ||
        (rc = mu_region_setup(ctx, MU_PCI_BAR2, IDIO_BAR2_SIZE, MU_REGION_RW,
                              bar2_access)) < 0 ||
        (rc = mu_irq_setup(ctx, MU_IRQ_INTX, 1)) < 0 ||
        /* The library's default, said out loud: QEMU enables error
         * recovery for a device with one ERR vector. */
        (rc = mu_irq_setup(ctx, MU_IRQ_ERR, 1)) < 0 ||
        (rc = mu_mig_setup(ctx, &mig)) < 0 ||
        (rc = mu_ctx_realize(ctx)) < 0) {
        mu_ctx_destroy(ctx);
        return rc;
    }
    *ctxp = ctx;
    return 0;
}

static int make_timer(unsigned ms)
{
    struct itimerspec its = { 0 };
    int fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);

    if (fd < 0)
        return -errno;
    its.it_interval.tv_sec = ms / 1000;
    its.it_interval.tv_nsec = (long)(ms % 1000) * 1000000L;
    its.it_value = its.it_interval;
    if (timerfd_settime(fd, 0, &its, NULL) < 0) {
        close(fd);
        return -errno;
    }
    return fd;
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        { "verbose", no_argument, NULL, 'v' },
        { "once", no_argument, NULL, '1' },
        { "toggle-ms", required_argument, NULL, 't' },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    unsigned toggle_ms = 0;
    bool once = false, running = true;
    struct pollfd pfd[3];
    sigset_t sigs;
    mu_ctx_t *ctx;
    int c, rc, sfd, tfd = -1;

    while ((c = getopt_long(argc, argv, "v1h", opts, NULL)) != -1) {
        switch (c) {
        case 'v':
            dev.verbose = true;
            break;
        case '1':
            once = true;
            break;
        case 't':
            toggle_ms = (unsigned)strtoul(optarg, NULL, 0);
            break;
        case 'h':
            usage(stdout, argv[0]);
            return 0;
        default:
            usage(stderr, argv[0]);
            return 2;
        }
    }
    if (optind != argc - 1) {
        usage(stderr, argv[0]);
        return 2;
    }
    idio_reset(&dev);

    /* Signals arrive as fd events so callbacks never run in a handler. */
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGUSR1);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGTERM);
    sigprocmask(SIG_BLOCK, &sigs, NULL);
    sfd = signalfd(-1, &sigs, SFD_NONBLOCK | SFD_CLOEXEC);
    if (sfd < 0) {
        perror("signalfd");
        return 1;
    }
    rc = setup(&ctx, argv[optind], once);
    if (rc < 0) {
        fprintf(stderr, "gpio: cannot serve on %s: %s\n", argv[optind],
                strerror(-rc));
        return 1;
    }
    if (toggle_ms > 0 && (tfd = make_timer(toggle_ms)) < 0) {
        fprintf(stderr, "gpio: timer: %s\n", strerror(-tfd));
        return 1;
    }
    fprintf(stderr, "gpio: PCI-IDIO-16 serving on %s\n", argv[optind]);

    pfd[0] = (struct pollfd){ .fd = mu_ctx_fd(ctx), .events = POLLIN };
    pfd[1] = (struct pollfd){ .fd = sfd, .events = POLLIN };
    pfd[2] = (struct pollfd){ .fd = tfd, .events = POLLIN };
    while (running) {
        if (poll(pfd, 3, -1) < 0) {
            if (errno == EINTR)
                continue;
            perror("poll");
            break;
        }
        if (pfd[1].revents & POLLIN) {
            struct signalfd_siginfo si;

            while (read(sfd, &si, sizeof(si)) == sizeof(si)) {
                if (si.ssi_signo == SIGUSR1)
                    inputs_changed(ctx, (uint16_t)(dev.inputs + 1));
                else
                    running = false;
            }
        }
        if (pfd[2].revents & POLLIN) {
            uint64_t ticks;

            if (read(tfd, &ticks, sizeof(ticks)) == sizeof(ticks))
                inputs_changed(ctx, (uint16_t)~dev.inputs);
        }
        if (pfd[0].revents & POLLIN) {
            rc = mu_ctx_poll(ctx);
            if (rc == -ESHUTDOWN)
                break;
            if (rc < 0) {
                fprintf(stderr, "gpio: %s\n", strerror(-rc));
                break;
            }
        }
    }
    fprintf(stderr, "gpio: exiting (outputs %#06x, %u interrupts raised)\n",
            dev.outputs, dev.irqs_raised);
    mu_ctx_destroy(ctx);
    if (tfd >= 0)
        close(tfd);
    close(sfd);
    return 0;
}
