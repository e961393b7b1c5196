/*
 * test_mig.c - live migration end to end between two in-process devices
 * (each a thread in mu_ctx_run on its own socket), driven by the client
 * library: the state machine over the wire (multi-step arcs, refused arcs
 * leave the state alone), the data stream in chunks of the client's
 * max_data_xfer_size, muc_migrate() carrying a register file and a blob,
 * a corrupted stream refused with the device's contents kept, and what a
 * stopped device may not do (DMA, region access, interrupts: held).
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
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <unistd.h>

#include "harness.h"
#include "muser.h"
#include "muser-client.h"
#include "wire.h"

#define NREGS 16
#define BLOB 50000u
#define MAGIC 0x544f5931u       /* "TOY1" */

/* A toy device: a register file in BAR0 and a blob of internal state. */
struct toy {
    uint32_t regs[NREGS];
    uint8_t blob[BLOB];
    uint8_t *out;               /* stream being saved */
    size_t out_len, out_pos;
    uint8_t *in;                /* stream being received */
    size_t in_len;
    size_t max_save_len;        /* largest save() request seen */
    char arcs[256];             /* "2>1 1>3 " ... */
};

#define STREAM_LEN (8 + sizeof(((struct toy *)0)->regs) + BLOB)

static struct inproc srv[2];
static struct toy toys[2];
static muc_t *cl[2];

static ssize_t bar0(mu_ctx_t *ctx, void *buf, size_t count, uint64_t off,
                    bool is_write)
{
    struct toy *t = mu_ctx_opaque(ctx);

    if (count != 4 || off % 4 != 0)
        return -EINVAL;
    if (is_write)
        memcpy(&t->regs[off / 4], buf, 4);
    else
        memcpy(buf, &t->regs[off / 4], 4);
    return 4;
}

static int transition(mu_ctx_t *ctx, enum mu_mig_state from,
                      enum mu_mig_state to)
{
    struct toy *t = mu_ctx_opaque(ctx);
    size_t n = strlen(t->arcs);
    uint32_t hdr[2] = { MAGIC, (uint32_t)STREAM_LEN };

    snprintf(t->arcs + n, sizeof(t->arcs) - n, "%d>%d ", from, to);
    if (from == MU_MIG_STOP && to == MU_MIG_STOP_COPY) {
        free(t->out);
        t->out = malloc(STREAM_LEN);
        if (t->out == NULL)
            return -ENOMEM;
        memcpy(t->out, hdr, 8);
        memcpy(t->out + 8, t->regs, sizeof(t->regs));
        memcpy(t->out + 8 + sizeof(t->regs), t->blob, BLOB);
        t->out_len = STREAM_LEN;
        t->out_pos = 0;
    } else if (from == MU_MIG_STOP_COPY) {
        free(t->out);
        t->out = NULL;
    } else if (to == MU_MIG_RESUMING) {
        t->in_len = 0;
    } else if (from == MU_MIG_RESUMING) {
        /* Check the whole stream, then apply it; else forget it. */
        if (t->in_len != STREAM_LEN) {
            t->in_len = 0;
            return -EINVAL;
        }
        memcpy(t->regs, t->in + 8, sizeof(t->regs));
        memcpy(t->blob, t->in + 8 + sizeof(t->regs), BLOB);
        t->in_len = 0;
    }
    return 0;
}

static ssize_t save(mu_ctx_t *ctx, void *buf, size_t len)
{
    struct toy *t = mu_ctx_opaque(ctx);
    size_t n = t->out_len - t->out_pos;

    if (len > t->max_save_len)
        t->max_save_len = len;
    if (t->out == NULL)
        return 0;
    if (n > len)
        n = len;
    if (n > 1000)
        n = 1000;               /* in pieces: the library gathers them */
    memcpy(buf, t->out + t->out_pos, n);
    t->out_pos += n;
    return (ssize_t)n;
}

static int load(mu_ctx_t *ctx, const void *buf, size_t len)
{
    struct toy *t = mu_ctx_opaque(ctx);
    uint32_t hdr[2];

    if (len > STREAM_LEN - t->in_len) {
        t->in_len = 0;
        return -EINVAL;
    }
    if (t->in == NULL && (t->in = malloc(STREAM_LEN)) == NULL)
        return -ENOMEM;
    memcpy(t->in + t->in_len, buf, len);
    t->in_len += len;
    if (t->in_len >= 8) {
        memcpy(hdr, t->in, 8);
        if (hdr[0] != MAGIC || hdr[1] != STREAM_LEN) {
            t->in_len = 0;
            return -EPROTO;     /* an unknown format: refused at once */
        }
    }
    return 0;
}

static int setup(void **state)
{
    struct mu_mig_callbacks cb = {
        .size = sizeof(cb), .transition = transition, .save = save,
        .load = load,
    };
    struct muc_opts o = { .timeout_ms = 5000 * slow_factor(),
                          .max_data_xfer_size = 4096 };

    (void)state;
    for (int i = 0; i < 2; i++) {
        memset(&toys[i], 0, sizeof(toys[i]));
        if (inproc_create(&srv[i], i ? "dst.sock" : "src.sock", MU_DEV_PCI,
                          &toys[i]) < 0 ||
            mu_region_setup(srv[i].ctx, MU_PCI_BAR0, 0x1000,
                            MU_REGION_RW | MU_REGION_MEM, bar0) < 0 ||
            mu_irq_setup(srv[i].ctx, MU_IRQ_INTX, 1) < 0 ||
            mu_mig_setup(srv[i].ctx, &cb) < 0 || inproc_start(&srv[i]) < 0 ||
            muc_connect(&cl[i], srv[i].sock, &o) < 0)
            return -1;
    }
    for (unsigned i = 0; i < NREGS; i++)
        toys[0].regs[i] = 0x1000u * i + 7;
    for (unsigned i = 0; i < BLOB; i++)
        toys[0].blob[i] = (uint8_t)(i * 31 + (i >> 9));
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    for (int i = 0; i < 2; i++) {
        muc_close(cl[i]);
        cl[i] = NULL;
        inproc_stop(&srv[i]);
        free(toys[i].out);
        free(toys[i].in);
    }
    return 0;
}

static uint32_t get_state(muc_t *c)
{
    uint32_t s = 99;

    assert_int_equal(muc_mig_get_state(c, &s), 0);
    return s;
}

/* VERSION and DEVICE_FEATURE MIGRATION say what the device offers. */
static void test_offer(void **state)
{
    uint64_t f = 0;

    (void)state;
    assert_true(muc_server_caps(cl[0])->migration);
    assert_int_equal(muc_mig_features(cl[0], &f), 0);
    assert_int_equal(f, MUC_MIG_F_STOP_COPY);
    assert_int_equal(get_state(cl[0]), MUC_MIG_RUNNING);
}

/* Multi-step arcs by the shortest path; refused arcs change nothing. */
static void test_arcs(void **state)
{
    (void)state;
    assert_int_equal(muc_mig_set_state(cl[0], MUC_MIG_STOP_COPY), 0);
    assert_string_equal(toys[0].arcs, "2>1 1>3 ");
    assert_int_equal(get_state(cl[0]), MUC_MIG_STOP_COPY);
    toys[0].arcs[0] = '\0';
    assert_int_equal(muc_mig_set_state(cl[0], MUC_MIG_PRE_COPY), -EINVAL);
    assert_int_equal(muc_mig_set_state(cl[0], MUC_MIG_ERROR), -EINVAL);
    assert_int_equal(muc_mig_set_state(cl[0], 5), -EINVAL);   /* no P2P */
    assert_int_equal(muc_mig_set_state(cl[0], 99), -EINVAL);
    assert_string_equal(toys[0].arcs, "");
    assert_int_equal(get_state(cl[0]), MUC_MIG_STOP_COPY);
    assert_int_equal(muc_mig_set_state(cl[0], MUC_MIG_RUNNING), 0);
    assert_string_equal(toys[0].arcs, "3>1 1>2 ");
    /* A destination that gets an incomplete stream refuses to leave
     * RESUMING and stays there. */
    assert_int_equal(muc_mig_set_state(cl[1], MUC_MIG_RESUMING), 0);
    assert_int_equal(muc_mig_set_state(cl[1], MUC_MIG_RUNNING), -EINVAL);
    assert_int_equal(get_state(cl[1]), MUC_MIG_RESUMING);
    /* Reset goes back to RUNNING. */
    assert_int_equal(muc_reset(cl[1]), 0);
    assert_int_equal(get_state(cl[1]), MUC_MIG_RUNNING);
}

/* MIG_DATA_* in the wrong state or with bad sizes: EINVAL. */
static void test_data_rules(void **state)
{
    uint8_t buf[64] = { 0 };
    struct { uint32_t argsz, size; } rq;
    size_t rlen;

    (void)state;
    assert_int_equal(muc_mig_read(cl[0], buf, sizeof(buf)), -EINVAL);
    assert_int_equal(muc_mig_write(cl[0], buf, sizeof(buf)), -EINVAL);
    assert_int_equal(muc_mig_set_state(cl[0], MUC_MIG_STOP_COPY), 0);
    assert_int_equal(muc_mig_write(cl[0], buf, sizeof(buf)), -EINVAL);
    /* Over the client's max_data_xfer_size (4096), and argsz too small. */
    rq.size = 8192;
    rq.argsz = 8 + rq.size;
    assert_int_equal(muc_request(cl[0], VFU_CMD_MIG_DATA_READ, &rq,
                                 sizeof(rq), NULL, 0, buf, sizeof(buf), &rlen,
                                 NULL, 0, NULL), -EINVAL);
    rq.size = 16;
    rq.argsz = 8;
    assert_int_equal(muc_request(cl[0], VFU_CMD_MIG_DATA_READ, &rq,
                                 sizeof(rq), NULL, 0, buf, sizeof(buf), &rlen,
                                 NULL, 0, NULL), -EINVAL);
    /* The stream is still whole after the refusals. */
    assert_int_equal(muc_mig_read(cl[0], buf, 8), 8);
    assert_int_equal(((uint32_t *)buf)[0], MAGIC);
}

/* A stopped device: no DMA, region access refused, config space served. */
static void test_stopped_gates(void **state)
{
    uint32_t v = 0;
    uint16_t vid;
    uint8_t b = 0;

    (void)state;
    assert_int_equal(muc_mig_set_state(cl[0], MUC_MIG_STOP), 0);
    assert_int_equal(mu_dma_write(srv[0].ctx, 0x1000, &b, 1), -EPERM);
    assert_int_equal(mu_dma_read(srv[0].ctx, 0x1000, &b, 1), -EPERM);
    assert_int_equal(muc_region_read(cl[0], MU_PCI_BAR0, 0, &v, 4), -EBUSY);
    assert_int_equal(muc_config_read16(cl[0], 0, &vid), 0);
    assert_int_equal(muc_mig_set_state(cl[0], MUC_MIG_RUNNING), 0);
    assert_int_equal(muc_region_read(cl[0], MU_PCI_BAR0, 4, &v, 4), 0);
    assert_int_equal(v, toys[0].regs[1]);
    /* Running again: DMA goes as far as the table (nothing mapped). */
    assert_int_equal(mu_dma_write(srv[0].ctx, 0x1000, &b, 1), -ENOENT);
}

/* An interrupt raised while stopped is held (the trigger writes the
 * eventfd synchronously, so an empty eventfd right after it means held),
 * then delivered once on RUNNING. */
static void test_irq_held(void **state)
{
    int efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);

    (void)state;
    assert_true(efd >= 0);
    assert_int_equal(muc_irq_set_eventfds(cl[0], MU_IRQ_INTX, 0, 1, &efd), 0);
    assert_int_equal(muc_mig_set_state(cl[0], MUC_MIG_STOP), 0);
    assert_int_equal(mu_irq_trigger(srv[0].ctx, MU_IRQ_INTX, 0), MU_IRQ_PENDING);
    assert_int_equal(muc_eventfd_wait(efd, 0), 0);
    assert_int_equal(muc_mig_set_state(cl[0], MUC_MIG_RUNNING), 0);
    assert_int_equal(muc_eventfd_wait(efd, 5000 * slow_factor()), 1);
    close(efd);
}

/* The whole move: registers and blob arrive, chunks within the limit. */
static void test_migrate(void **state)
{
    struct muc_migrate_stats st;
    uint32_t v;

    (void)state;
    assert_int_equal(muc_migrate(cl[0], cl[1], NULL, &st), 0);
    assert_int_equal(st.stopcopy_bytes, STREAM_LEN);
    assert_true(toys[0].max_save_len <= 4096);
    assert_int_equal(get_state(cl[0]), MUC_MIG_STOP);
    assert_int_equal(get_state(cl[1]), MUC_MIG_RUNNING);
    for (unsigned i = 0; i < NREGS; i++) {
        assert_int_equal(muc_region_read(cl[1], MU_PCI_BAR0, i * 4, &v, 4), 0);
        assert_int_equal(v, 0x1000u * i + 7);
    }
    assert_memory_equal(toys[1].blob, toys[0].blob, BLOB);
}

/* A corrupted stream is refused and the destination keeps its state; a
 * good one after it is taken. */
static void test_corrupt_stream(void **state)
{
    uint8_t *good = malloc(STREAM_LEN), junk[64];
    size_t got = 0;
    ssize_t n;

    (void)state;
    assert_non_null(good);
    assert_int_equal(muc_mig_set_state(cl[0], MUC_MIG_STOP_COPY), 0);
    while ((n = muc_mig_read(cl[0], good + got, 4096)) == 4096)
        got += 4096;
    assert_true(n >= 0);
    got += (size_t)n;
    assert_int_equal(got, STREAM_LEN);

    toys[1].regs[3] = 0xdead;
    assert_int_equal(muc_mig_set_state(cl[1], MUC_MIG_RESUMING), 0);
    memcpy(junk, good, sizeof(junk));
    junk[0] ^= 0xff;                                /* bad magic */
    assert_int_equal(muc_mig_write(cl[1], junk, sizeof(junk)), -EPROTO);
    assert_int_equal(get_state(cl[1]), MUC_MIG_RESUMING);
    assert_int_equal(toys[1].regs[3], 0xdead);
    /* Truncated: RESUMING -> STOP refused, nothing applied. */
    assert_int_equal(muc_mig_write(cl[1], good, 1000), 0);
    assert_int_equal(muc_mig_set_state(cl[1], MUC_MIG_STOP), -EINVAL);
    assert_int_equal(toys[1].regs[3], 0xdead);
    /* The whole stream from the start is accepted. */
    assert_int_equal(muc_mig_write(cl[1], good, STREAM_LEN), 0);
    assert_int_equal(muc_mig_set_state(cl[1], MUC_MIG_RUNNING), 0);
    assert_int_equal(toys[1].regs[3], 0x3007);
    free(good);
}

static bool state_is_stop(void *arg)
{
    return mu_mig_state(arg) == MU_MIG_STOP;
}

/* A client gone mid-stream: STOP_COPY -> STOP; a new client saves again
 * from the start. */
static void test_disconnect_mid_stream(void **state)
{
    uint8_t buf[4096];

    (void)state;
    assert_int_equal(muc_mig_set_state(cl[0], MUC_MIG_STOP_COPY), 0);
    assert_int_equal(muc_mig_read(cl[0], buf, sizeof(buf)), 4096);
    muc_close(cl[0]);
    cl[0] = NULL;
    assert_true(wait_until(state_is_stop, srv[0].ctx, 2000, 1000));
    assert_int_equal(client_connect(&cl[0], srv[0].sock), 0);
    assert_int_equal(get_state(cl[0]), MUC_MIG_STOP);
    assert_int_equal(muc_mig_set_state(cl[0], MUC_MIG_STOP_COPY), 0);
    assert_int_equal(muc_mig_read(cl[0], buf, 8), 8);
    assert_int_equal(((uint32_t *)buf)[0], MAGIC);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_offer, setup, teardown),
        cmocka_unit_test_setup_teardown(test_arcs, setup, teardown),
        cmocka_unit_test_setup_teardown(test_data_rules, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stopped_gates, setup, teardown),
        cmocka_unit_test_setup_teardown(test_irq_held, setup, teardown),
        cmocka_unit_test_setup_teardown(test_migrate, setup, teardown),
        cmocka_unit_test_setup_teardown(test_corrupt_stream, setup, teardown),
        cmocka_unit_test_setup_teardown(test_disconnect_mid_stream, setup,
                                        teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
