/*
 * test_mig_precopy.c - PRE_COPY, on an in-process device that saves its
 * state incrementally: while the device runs in PRE_COPY and a device
 * thread keeps writing guest memory (copies through the mapping, through
 * translations it took itself, through one taken before logging started,
 * through a long-held one it marks by hand, and by DMA_WRITE messages to
 * memory without an fd), every page it wrote is in the dirty bitmaps the
 * client fetches, and nothing it did not write (or wrote before logging
 * started, or outside the logged ranges) is.  The device's own state goes
 * over in PRE_COPY (initial pages, then pages changed since they were
 * sent, with mu_mig_pending() telling how much remains) and the rest in
 * STOP_COPY, and the destination ends up with all of it.  A DMA_WRITE to
 * memory without an fd is in the report that follows its reply even when
 * the device thread that made it has not run again.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <sys/syscall.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"
#include "muser.h"
#include "muser-client.h"
#include "wire.h"

#define PG 4096u
#define NREGS 8u
#define NPAGES 64u                  /* the device's internal state pages */
#define REC_HDR 8u
#define REC_PAGE (REC_HDR + PG)
#define REC_END (REC_HDR + NREGS * 4)
#define TAG_PAGE 0x45474150u        /* "PAGE" */
#define TAG_END 0x21444e45u         /* "END!" */
#define XFER 4096u                  /* the client's max_data_xfer_size */

/* BAR0: registers, then a poke register and the pending counts. */
#define R_POKE 0x40u                /* write v: state page v % NPAGES changes */
#define R_INITIAL 0x48u             /* mu_mig_pending(), 0xffffffff if refused */
#define R_DIRTY 0x4cu

/* Guest memory: A1, A2 (one memfd, adjacent regions), B right after them
 * without an fd, C far away and not logged. */
#define A1 0x10000000ull
#define NA 64u                      /* pages in A1, and in A2 */
#define A2 (A1 + NA * PG)
#define B (A2 + NA * PG)
#define NB 32u
#define SPAN (2 * NA + NB)          /* logged pages, from A1 */
#define C 0x20000000ull
#define NC 16u
#define H_PAGE (NA + 8)             /* translation held from before logging */
#define H_LEN 4u
#define L_PAGE 40u                  /* long-held, marked by hand */
#define L_LEN 2u

struct pc {
    uint32_t regs[NREGS];
    uint8_t blob[NPAGES][PG];
    /* saving */
    bool todo[NPAGES];              /* to send (again) */
    bool fresh[NPAGES];             /* not sent yet in this save */
    uint8_t rec[REC_HDR + PG];      /* the record being handed out */
    size_t rec_len, rec_pos;
    bool rec_fresh;
    bool end_sent;
    /* loading */
    uint8_t stage[NPAGES][PG];
    uint32_t stage_regs[NREGS];
    uint8_t in[REC_HDR + PG];
    size_t in_len;
    bool got_end;
    /* the guest writer's translations */
    mu_sg_t h_sg[2], l_sg[2];
    int h_nr, l_nr;
    bool h_put_on_stop;
    bool writer_busy;               /* read by the transition callback */
};

static struct inproc srv[2];
static struct pc *pcs[2];
static muc_t *cl[2];
/* test_fdless_write_in_next_report's device thread, parked by a signal */
static int parked, unpark;        /* atomics: the handler runs on a thread */
static pthread_t fdless_th;
static bool fdless_started;

/* ---------------- the device ---------------- */

static ssize_t bar0(mu_ctx_t *ctx, void *buf, size_t count, uint64_t off,
                    bool is_write)
{
    struct pc *d = mu_ctx_opaque(ctx);
    uint64_t initial = 0, dirty = 0;
    uint32_t v = 0;

    if (count != 4 || off % 4 != 0)
        return -EINVAL;
    if (is_write)
        memcpy(&v, buf, 4);
    if (off < NREGS * 4) {
        if (is_write)
            d->regs[off / 4] = v;
        else
            v = d->regs[off / 4];
    } else if (off == R_POKE && is_write) {
        unsigned p = v % NPAGES;

        d->blob[p][(v / NPAGES) % PG]++;
        d->todo[p] = true;      /* only looked at while saving */
    } else if ((off == R_INITIAL || off == R_DIRTY) && !is_write) {
        if (mu_mig_pending(ctx, &initial, &dirty) < 0)
            v = UINT32_MAX;
        else
            v = (uint32_t)(off == R_INITIAL ? initial : dirty);
    } else if (!is_write) {
        v = 0;
    }
    if (!is_write)
        memcpy(buf, &v, 4);
    return 4;
}

static void save_begin(struct pc *d)
{
    for (unsigned p = 0; p < NPAGES; p++)
        d->todo[p] = d->fresh[p] = true;
    d->rec_len = d->rec_pos = 0;
    d->end_sent = false;
}

static int transition(mu_ctx_t *ctx, enum mu_mig_state from,
                      enum mu_mig_state to)
{
    struct pc *d = mu_ctx_opaque(ctx);
    bool was_running = from == MU_MIG_RUNNING || from == MU_MIG_PRE_COPY;
    bool runs = to == MU_MIG_RUNNING || to == MU_MIG_PRE_COPY;

    if (was_running && !runs) {
        /* Quiesce: the writer must be idle (the test makes sure), and
         * the translation held from before logging is let go of. */
        if (__atomic_load_n(&d->writer_busy, __ATOMIC_ACQUIRE))
            return -EBUSY;
        if (d->h_put_on_stop && d->h_nr > 0) {
            mu_dma_put(ctx, d->h_sg, (unsigned)d->h_nr);
            d->h_nr = 0;
        }
    }
    if (to == MU_MIG_PRE_COPY || (from == MU_MIG_STOP &&
                                  to == MU_MIG_STOP_COPY)) {
        save_begin(d);
    } else if (to == MU_MIG_RESUMING) {
        memset(d->stage, 0, sizeof(d->stage));
        d->in_len = 0;
        d->got_end = false;
    } else if (from == MU_MIG_RESUMING) {
        if (!d->got_end) {
            /* Refused: forget the stream, as muser.h asks. */
            memset(d->stage, 0, sizeof(d->stage));
            d->in_len = 0;
            return -ENODATA;
        }
        memcpy(d->blob, d->stage, sizeof(d->blob));
        memcpy(d->regs, d->stage_regs, sizeof(d->regs));
        d->got_end = false;
    }
    return 0;
}

/* The next record into d->rec, or false when there is none for now. */
static bool next_record(struct pc *d, bool stopped)
{
    uint32_t hdr[2];

    for (unsigned p = 0; p < NPAGES; p++) {
        if (!d->todo[p])
            continue;
        hdr[0] = TAG_PAGE;
        hdr[1] = p;
        memcpy(d->rec, hdr, REC_HDR);
        memcpy(d->rec + REC_HDR, d->blob[p], PG);
        d->rec_len = REC_PAGE;
        d->rec_fresh = d->fresh[p];
        d->todo[p] = d->fresh[p] = false;
        d->rec_pos = 0;
        return true;
    }
    if (!stopped || d->end_sent)
        return false;
    hdr[0] = TAG_END;
    hdr[1] = NREGS;
    memcpy(d->rec, hdr, REC_HDR);
    memcpy(d->rec + REC_HDR, d->regs, NREGS * 4);
    d->rec_len = REC_END;
    d->rec_fresh = false;
    d->rec_pos = 0;
    d->end_sent = true;
    return true;
}

static ssize_t save(mu_ctx_t *ctx, void *buf, size_t len)
{
    struct pc *d = mu_ctx_opaque(ctx);
    bool stopped = mu_mig_state(ctx) == MU_MIG_STOP_COPY;
    size_t n;

    if (d->rec_pos == d->rec_len && !next_record(d, stopped))
        return 0;
    n = d->rec_len - d->rec_pos;
    if (n > len)
        n = len;
    memcpy(buf, d->rec + d->rec_pos, n);
    d->rec_pos += n;
    return (ssize_t)n;
}

static int pending(mu_ctx_t *ctx, uint64_t *initial, uint64_t *dirty)
{
    struct pc *d = mu_ctx_opaque(ctx);
    uint64_t left = d->rec_len - d->rec_pos;

    *initial = d->rec_fresh ? left : 0;
    *dirty = d->rec_fresh ? 0 : left;
    for (unsigned p = 0; p < NPAGES; p++) {
        if (d->todo[p] && d->fresh[p])
            *initial += REC_PAGE;
        else if (d->todo[p])
            *dirty += REC_PAGE;
    }
    return 0;
}

static int load(mu_ctx_t *ctx, const void *buf, size_t len)
{
    struct pc *d = mu_ctx_opaque(ctx);
    const uint8_t *p = buf;

    while (len > 0) {
        uint32_t hdr[2];
        size_t want = REC_HDR, n;

        if (d->got_end)
            return -EMSGSIZE;       /* nothing may follow the end */
        if (d->in_len >= REC_HDR) {
            memcpy(hdr, d->in, REC_HDR);
            want = hdr[0] == TAG_PAGE ? REC_PAGE : REC_END;
        }
        n = want - d->in_len < len ? want - d->in_len : len;
        memcpy(d->in + d->in_len, p, n);
        d->in_len += n;
        p += n;
        len -= n;
        if (d->in_len == REC_HDR) {
            memcpy(hdr, d->in, REC_HDR);
            if ((hdr[0] != TAG_PAGE || hdr[1] >= NPAGES) &&
                (hdr[0] != TAG_END || hdr[1] != NREGS)) {
                d->in_len = 0;
                return -EPROTO;
            }
            continue;
        }
        if (d->in_len < want)
            continue;
        memcpy(hdr, d->in, REC_HDR);
        if (hdr[0] == TAG_PAGE) {
            memcpy(d->stage[hdr[1]], d->in + REC_HDR, PG);
        } else {
            memcpy(d->stage_regs, d->in + REC_HDR, NREGS * 4);
            d->got_end = true;
        }
        d->in_len = 0;
    }
    return 0;
}

/* ---------------- the guest writer (a device thread) ---------------- */

static struct writer {
    pthread_t th;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    unsigned want, done;            /* batches asked for, finished */
    bool quit, started;
    bool record;                    /* logging is on: keep track */
    unsigned seed;
    unsigned ops_per_batch;
    char err[160];                  /* the first unexpected result */
    uint8_t written[SPAN];          /* pages written since logging began */
    uint8_t written_now[SPAN];      /* ...not through H (marked at put) */
    uint8_t allowed[SPAN];          /* pages that may be reported */
    uint64_t fd_ops, fdless_ops, get_ops, h_ops, l_ops, c_ops;
} W;

static unsigned rnd(unsigned n)
{
    return (unsigned)rand_r(&W.seed) % n;
}

static void note(uint64_t iova, uint64_t len, bool via_h, bool write)
{
    if (!W.record)
        return;
    for (uint64_t pg = (iova - A1) / PG; pg <= (iova + len - 1 - A1) / PG;
         pg++) {
        if (pg >= SPAN)
            continue;
        W.allowed[pg] = 1;
        if (write) {
            W.written[pg] = 1;
            if (!via_h)
                W.written_now[pg] = 1;
        }
    }
}

static void fail_once(const char *what, int rc)
{
    if (W.err[0] == '\0')
        snprintf(W.err, sizeof(W.err), "%s: %s", what, strerror(-rc));
}

/* Other writes keep off the pages of H and L, so that what they do is
 * seen alone. */
static bool clear_of_hl(uint64_t iova, uint64_t len)
{
    uint64_t first = (iova - A1) / PG, last = (iova + len - 1 - A1) / PG;

    return (last < H_PAGE || first >= H_PAGE + H_LEN) &&
           (last < L_PAGE || first >= L_PAGE + L_LEN);
}

static void one_op(mu_ctx_t *ctx, struct pc *d)
{
    uint8_t buf[3 * PG];
    unsigned kind = rnd(10);
    uint64_t iova, len;
    mu_sg_t sg[2];
    int rc, nr;

    memset(buf, rand_r(&W.seed), sizeof(buf));
    if (kind <= 3 || kind == 9) {
        /* A copy anywhere in A1..B, crossing regions at times; or one
         * into B alone (DMA_WRITE messages). */
        do {
            len = 1 + rnd(kind == 3 ? 3 * PG : 700);
            iova = kind == 9 ? B + rnd(NB * PG - (unsigned)len)
                             : A1 + rnd(SPAN * PG - (unsigned)len);
        } while (!clear_of_hl(iova, len));
        rc = mu_dma_write(ctx, iova, buf, len);
        if (rc < 0)
            fail_once("mu_dma_write", rc);
        note(iova, len, false, true);
        if (iova + len > B)
            W.fdless_ops++;
        else
            W.fd_ops++;
    } else if (kind <= 5) {
        /* Our own translation of A1..A2, one byte written through it:
         * put logs the whole entry. */
        do {
            len = 1 + rnd(2 * PG);
            iova = A1 + rnd(2 * NA * PG - (unsigned)len);
        } while (!clear_of_hl(iova, len));
        nr = mu_dma_get(ctx, iova, len, MU_DMA_WRITE, sg, 2);
        if (nr < 0) {
            fail_once("mu_dma_get", nr);
            return;
        }
        uint64_t at = rnd((unsigned)len);
        uint64_t skip = at;
        int i = 0;

        while (skip >= sg[i].len)
            skip -= sg[i++].len;
        ((uint8_t *)sg[i].addr)[skip] = buf[0];
        mu_dma_put(ctx, sg, (unsigned)nr);
        note(iova, len, false, false);
        note(iova + at, 1, false, true);
        W.get_ops++;
    } else if (kind == 6) {
        /* Through H, held since before logging started: logged when it is
         * put, as the device stops. */
        uint64_t at = rnd(H_LEN * PG);

        if (d->h_nr <= 0 || (size_t)d->h_sg[0].len != H_LEN * PG) {
            fail_once("H", -EINVAL);
            return;
        }
        ((uint8_t *)d->h_sg[0].addr)[at] = buf[0];
        note(A1 + (uint64_t)H_PAGE * PG + at, 1, true, true);
        W.h_ops++;
    } else if (kind == 7) {
        /* Through L, held for good: marked by hand, as muser.h asks. */
        uint64_t at = rnd(L_LEN * PG);

        ((uint8_t *)d->l_sg[0].addr)[at] = buf[0];
        rc = mu_dma_mark_dirty(ctx, A1 + (uint64_t)L_PAGE * PG + at, 1);
        if (rc < 0)
            fail_once("mu_dma_mark_dirty", rc);
        note(A1 + (uint64_t)L_PAGE * PG + at, 1, false, true);
        W.l_ops++;
    } else {
        /* C is not logged. */
        len = 1 + rnd(PG);
        rc = mu_dma_write(ctx, C + rnd(NC * PG - (unsigned)len), buf, len);
        if (rc < 0)
            fail_once("mu_dma_write C", rc);
        W.c_ops++;
    }
}

static void *writer_main(void *arg)
{
    struct inproc *s = arg;
    struct pc *d = mu_ctx_opaque(s->ctx);

    pthread_mutex_lock(&W.lock);
    for (;;) {
        while (!W.quit && W.want == W.done)
            pthread_cond_wait(&W.cond, &W.lock);
        if (W.quit)
            break;
        __atomic_store_n(&d->writer_busy, true, __ATOMIC_RELEASE);
        pthread_mutex_unlock(&W.lock);
        for (unsigned i = 0; i < W.ops_per_batch; i++)
            one_op(s->ctx, d);
        pthread_mutex_lock(&W.lock);
        __atomic_store_n(&d->writer_busy, false, __ATOMIC_RELEASE);
        W.done++;
        pthread_cond_broadcast(&W.cond);
    }
    pthread_mutex_unlock(&W.lock);
    return NULL;
}

static bool batch_done(void)
{
    bool done;

    pthread_mutex_lock(&W.lock);
    done = W.done == W.want;
    pthread_mutex_unlock(&W.lock);
    return done;
}

/* ---------------- setup ---------------- */

static int memfd_a = -1, memfd_c = -1;
static uint8_t *fdless;

static int setup(void **state)
{
    struct mu_mig_callbacks cb = {
        .size = sizeof(cb), .flags = MU_MIG_F_PRE_COPY,
        .transition = transition, .save = save, .load = load,
        .pending = pending,
    };
    struct muc_opts o = { .timeout_ms = 5000 * slow_factor(),
                          .max_data_xfer_size = XFER };

    (void)state;
    memset(&W, 0, sizeof(W));
    pthread_mutex_init(&W.lock, NULL);
    pthread_cond_init(&W.cond, NULL);
    W.seed = 4321;
    for (int i = 0; i < 2; i++) {
        pcs[i] = calloc(1, sizeof(*pcs[i]));
        if (pcs[i] == NULL ||
            inproc_create(&srv[i], i ? "dst.sock" : "src.sock", MU_DEV_PCI,
                          pcs[i]) < 0 ||
            mu_region_setup(srv[i].ctx, MU_PCI_BAR0, 0x1000,
                            MU_REGION_RW | MU_REGION_MEM, bar0) < 0 ||
            mu_mig_setup(srv[i].ctx, &cb) < 0 || inproc_start(&srv[i]) < 0 ||
            muc_connect(&cl[i], srv[i].sock, &o) < 0)
            return -1;
    }
    for (unsigned i = 0; i < NREGS; i++)
        pcs[0]->regs[i] = 0x100u * i + 3;
    for (unsigned p = 0; p < NPAGES; p++)
        for (unsigned i = 0; i < PG; i++)
            pcs[0]->blob[p][i] = (uint8_t)(p * 7 + i * 13 + (i >> 8));
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    __atomic_store_n(&unpark, 1, __ATOMIC_RELEASE);   /* a failed test's */
    if (W.started) {
        pthread_mutex_lock(&W.lock);
        W.quit = true;
        pthread_cond_broadcast(&W.cond);
        pthread_mutex_unlock(&W.lock);
        /* A writer stuck in a DMA_WRITE needs its reply served. */
        while (!batch_done() && cl[0] != NULL && muc_serve(cl[0], 10) >= 0)
            ;
        pthread_join(W.th, NULL);
        W.started = false;
    }
    for (int i = 0; i < 2; i++) {
        struct pc *d = pcs[i];

        /* References must be put before the regions can go. */
        if (d != NULL && d->h_nr > 0)
            mu_dma_put(srv[i].ctx, d->h_sg, (unsigned)d->h_nr);
        if (d != NULL && d->l_nr > 0)
            mu_dma_put(srv[i].ctx, d->l_sg, (unsigned)d->l_nr);
        muc_close(cl[i]);
        cl[i] = NULL;
        if (i == 0 && fdless_started) {
            /* Its call fails now that the client is gone. */
            pthread_join(fdless_th, NULL);
            fdless_started = false;
        }
        inproc_stop(&srv[i]);
        free(d);
        pcs[i] = NULL;
    }
    if (memfd_a >= 0)
        close(memfd_a);
    if (memfd_c >= 0)
        close(memfd_c);
    memfd_a = memfd_c = -1;
    free(fdless);
    fdless = NULL;
    pthread_cond_destroy(&W.cond);
    pthread_mutex_destroy(&W.lock);
    return 0;
}

static uint32_t reg(muc_t *c, uint32_t off)
{
    uint32_t v = 0xdeadbeef;

    assert_int_equal(muc_region_read(c, MU_PCI_BAR0, off, &v, 4), 0);
    return v;
}

static void poke(muc_t *c, uint32_t v)
{
    assert_int_equal(muc_region_write(c, MU_PCI_BAR0, R_POKE, &v, 4), 0);
}

static uint32_t get_state(muc_t *c)
{
    uint32_t s = 99;

    assert_int_equal(muc_mig_get_state(c, &s), 0);
    return s;
}

/* Read what src has now into dst; returns the bytes moved. */
static uint64_t pump(size_t chunk)
{
    uint8_t buf[XFER];
    uint64_t moved = 0;

    for (;;) {
        ssize_t n = muc_mig_read(cl[0], buf, chunk);

        assert_true(n >= 0);
        if (n > 0)
            assert_int_equal(muc_mig_write(cl[1], buf, (size_t)n), 0);
        moved += (uint64_t)n;
        if ((size_t)n < chunk)
            return moved;
    }
}

static void expect_same_state(void)
{
    assert_memory_equal(pcs[1]->regs, pcs[0]->regs, sizeof(pcs[0]->regs));
    assert_memory_equal(pcs[1]->blob, pcs[0]->blob, sizeof(pcs[0]->blob));
}

/* ---------------- the device's state in PRE_COPY ---------------- */

/*
 * The stream in PRE_COPY: every page once, then those changed after they
 * went; the pending counts follow it byte for byte; a short read means
 * "nothing more for now"; STOP_COPY sends what changed since and the
 * registers; the destination has all of it.
 */
static void test_precopy_stream(void **state)
{
    const uint32_t all = NPAGES * REC_PAGE;
    uint64_t pre = 0, stop;
    uint8_t buf[XFER];

    (void)state;
    /* Outside PRE_COPY there is no pending count. */
    assert_int_equal(reg(cl[0], R_INITIAL), UINT32_MAX);
    assert_int_equal(muc_mig_set_state(cl[1], MUC_MIG_RESUMING), 0);
    assert_int_equal(muc_mig_set_state(cl[0], MUC_MIG_PRE_COPY), 0);
    assert_int_equal(reg(cl[0], R_INITIAL), all);
    assert_int_equal(reg(cl[0], R_DIRTY), 0);

    /* Ten reads in: the initial count went down by what was read. */
    for (unsigned i = 0; i < 10; i++) {
        assert_int_equal(muc_mig_read(cl[0], buf, XFER), XFER);
        assert_int_equal(muc_mig_write(cl[1], buf, XFER), 0);
        pre += XFER;
    }
    assert_int_equal(reg(cl[0], R_INITIAL), all - pre);
    assert_int_equal(reg(cl[0], R_DIRTY), 0);
    /* Page 1 went already: dirty again.  Page 40 has not: still initial. */
    poke(cl[0], 1);
    poke(cl[0], 40 + NPAGES * 100);
    assert_int_equal(reg(cl[0], R_INITIAL), all - pre);
    assert_int_equal(reg(cl[0], R_DIRTY), REC_PAGE);
    /* Registers change while running, too. */
    uint32_t v = 0x5a5a;
    assert_int_equal(muc_region_write(cl[0], MU_PCI_BAR0, 8, &v, 4), 0);

    /* Drained: a short read, nothing pending. */
    pre += pump(XFER);
    assert_int_equal(pre, all + REC_PAGE);
    assert_int_equal(reg(cl[0], R_INITIAL), 0);
    assert_int_equal(reg(cl[0], R_DIRTY), 0);
    assert_int_equal(muc_mig_read(cl[0], buf, XFER), 0);

    /* Changed again after the round: sent in the next one, in small
     * reads (the library gathers records split across them). */
    poke(cl[0], 7);
    poke(cl[0], 7 + NPAGES);
    poke(cl[0], 63);
    assert_int_equal(reg(cl[0], R_DIRTY), 2 * REC_PAGE);
    pre += pump(100);
    assert_int_equal(pre, all + 3 * REC_PAGE);

    /* Stop: one more page changed after the last round, and the end. */
    poke(cl[0], 2);
    assert_int_equal(muc_mig_set_state(cl[0], MUC_MIG_STOP_COPY), 0);
    assert_int_equal(get_state(cl[1]), MUC_MIG_RESUMING);
    stop = pump(XFER);
    assert_int_equal(stop, REC_PAGE + REC_END);
    assert_int_equal(muc_mig_set_state(cl[1], MUC_MIG_RUNNING), 0);
    expect_same_state();
    assert_int_equal(pcs[1]->regs[2], 0x5a5a);
}

/* Abandoned PRE_COPY: back to RUNNING, and a new one starts over. */
static void test_precopy_abandoned(void **state)
{
    uint8_t buf[XFER];

    (void)state;
    assert_int_equal(muc_mig_set_state(cl[0], MUC_MIG_PRE_COPY), 0);
    assert_int_equal(muc_mig_read(cl[0], buf, XFER), XFER);
    assert_int_equal(muc_mig_set_state(cl[0], MUC_MIG_RUNNING), 0);
    assert_int_equal(reg(cl[0], R_INITIAL), UINT32_MAX);
    /* The destination is fed only by the second attempt. */
    assert_int_equal(muc_mig_set_state(cl[1], MUC_MIG_RESUMING), 0);
    assert_int_equal(muc_mig_set_state(cl[0], MUC_MIG_PRE_COPY), 0);
    assert_int_equal(reg(cl[0], R_INITIAL), NPAGES * REC_PAGE);
    assert_int_equal(pump(XFER), NPAGES * REC_PAGE);
    assert_int_equal(muc_mig_set_state(cl[0], MUC_MIG_STOP_COPY), 0);
    assert_int_equal(pump(XFER), REC_END);
    assert_int_equal(muc_mig_set_state(cl[1], MUC_MIG_RUNNING), 0);
    expect_same_state();
}

/* muc_migrate() with PRE_COPY rounds: the state goes while the source
 * runs; only the registers are left for the downtime. */
static void test_precopy_migrate(void **state)
{
    struct muc_migrate_opts mo = { .precopy_rounds = 2 };
    struct muc_migrate_stats st;

    (void)state;
    poke(cl[0], 5);
    assert_int_equal(muc_migrate(cl[0], cl[1], &mo, &st), 0);
    assert_int_equal(st.precopy_bytes, NPAGES * REC_PAGE);
    assert_int_equal(st.stopcopy_bytes, REC_END);
    assert_int_equal(get_state(cl[0]), MUC_MIG_STOP);
    assert_int_equal(get_state(cl[1]), MUC_MIG_RUNNING);
    expect_same_state();
}

/* ---------------- guest pages dirtied in PRE_COPY ---------------- */

static void map_guest(void)
{
    const unsigned rw = MUC_DMA_READ | MUC_DMA_WRITE;
    struct pc *d = pcs[0];

    memfd_a = memfd_sized("a", 2 * NA * PG, 0);
    memfd_c = memfd_sized("c", NC * PG, 0);
    fdless = aligned_alloc(PG, NB * PG);
    assert_true(memfd_a >= 0 && memfd_c >= 0 && fdless != NULL);
    memset(fdless, 0, NB * PG);
    assert_int_equal(muc_dma_map(cl[0], A1, NA * PG, memfd_a, 0, rw), 0);
    assert_int_equal(muc_dma_map(cl[0], A2, NA * PG, memfd_a, NA * PG, rw), 0);
    assert_int_equal(muc_dma_map_mem(cl[0], B, NB * PG, fdless, rw), 0);
    assert_int_equal(muc_dma_map(cl[0], C, NC * PG, memfd_c, 0, rw), 0);
    /* The device holds these from before logging starts. */
    d->h_nr = mu_dma_get(srv[0].ctx, A1 + (uint64_t)H_PAGE * PG, H_LEN * PG,
                         MU_DMA_WRITE, d->h_sg, 2);
    d->l_nr = mu_dma_get(srv[0].ctx, A1 + (uint64_t)L_PAGE * PG, L_LEN * PG,
                         MU_DMA_WRITE, d->l_sg, 2);
    assert_int_equal(d->h_nr, 1);
    assert_int_equal(d->l_nr, 1);
    d->h_put_on_stop = true;
}

static void start_writer(unsigned ops)
{
    W.ops_per_batch = ops;
    assert_int_equal(pthread_create(&W.th, NULL, writer_main, &srv[0]), 0);
    W.started = true;
}

/* got |= one report of the logged span. */
static void report(uint64_t *got)
{
    uint64_t bits[(SPAN + 63) / 64] = { 0 };

    assert_int_equal(muc_dirty_report(cl[0], A1, SPAN * PG, PG, bits,
                                      sizeof(bits)), 0);
    for (unsigned i = 0; i < sizeof(bits) / 8; i++)
        got[i] |= bits[i];
}

/*
 * One batch of writes on the device thread while this thread serves its
 * DMA_WRITEs and fetches reports meanwhile (every few serves), so writes
 * and reports interleave.
 */
static void run_batch(uint64_t *got)
{
    uint64_t deadline;
    struct timespec ts;
    unsigned turn = 0;

    pthread_mutex_lock(&W.lock);
    W.want++;
    pthread_cond_broadcast(&W.cond);
    pthread_mutex_unlock(&W.lock);
    clock_gettime(CLOCK_MONOTONIC, &ts);
    deadline = (uint64_t)ts.tv_sec + 60u * (uint64_t)slow_factor();
    while (!batch_done()) {
        assert_true(muc_serve(cl[0], 2) >= 0);
        if (got != NULL && ++turn % 3 == 0)
            report(got);
        clock_gettime(CLOCK_MONOTONIC, &ts);
        if ((uint64_t)ts.tv_sec > deadline)
            fail_msg("the writer did not finish its batch");
    }
    if (W.err[0] != '\0')
        fail_msg("writer: %s", W.err);
}

static bool bit(const uint64_t *b, unsigned i)
{
    return (b[i / 64] >> (i % 64)) & 1;
}

/* Every page in want is in got; with allowed, nothing else is. */
static void check_pages(const uint64_t *got, const uint8_t *want,
                        const uint8_t *allowed, const char *when)
{
    for (unsigned i = 0; i < SPAN; i++) {
        if (want[i] && !bit(got, i))
            fail_msg("%s: page %u (iova %#llx) written, not reported", when,
                     i, (unsigned long long)(A1 + (uint64_t)i * PG));
        if (allowed != NULL && bit(got, i) && !allowed[i])
            fail_msg("%s: page %u (iova %#llx) reported, never written",
                     when, i, (unsigned long long)(A1 + (uint64_t)i * PG));
    }
}

static void test_precopy_dirty_pages(void **state)
{
    uint64_t got[(SPAN + 63) / 64] = { 0 }, cbits[1] = { 0 };
    uint64_t lo = A1, len = SPAN * PG;
    uint64_t moved = 0;
    unsigned nwritten = 0;

    (void)state;
    map_guest();
    start_writer(8);
    /* Writes before logging: not reported (but H, put later, is). */
    run_batch(NULL);
    assert_int_equal(muc_dirty_start(cl[0], PG, &lo, &len, 1), 0);
    W.record = true;
    for (unsigned i = 0; i < H_LEN; i++)
        W.allowed[H_PAGE + i] = 1;
    assert_int_equal(muc_mig_set_state(cl[1], MUC_MIG_RESUMING), 0);
    assert_int_equal(muc_mig_set_state(cl[0], MUC_MIG_PRE_COPY), 0);

    for (unsigned k = 0; k < 12; k++) {
        run_batch(got);
        /* A report after the batch: everything it wrote is in by now,
         * but for H, which the device logs when it puts it. */
        report(got);
        check_pages(got, W.written_now, W.allowed, "PRE_COPY");
        /* The device's own state goes meanwhile; it changes too. */
        poke(cl[0], k * 5);
        moved += pump(XFER);
    }
    assert_int_equal(muc_mig_set_state(cl[0], MUC_MIG_STOP_COPY), 0);
    report(got);
    check_pages(got, W.written, W.allowed, "STOP_COPY");
    for (unsigned i = 0; i < SPAN; i++)
        nwritten += W.written[i];
    /* The writer did all kinds of writes, not a few pages. */
    assert_true(W.fd_ops > 0 && W.fdless_ops > 0 && W.get_ops > 0 &&
                W.h_ops > 0 && W.l_ops > 0 && W.c_ops > 0);
    /* ...and left pages alone, which must not be reported. */
    assert_true(nwritten > SPAN / 4 && nwritten < SPAN - SPAN / 8);
    /* Reported once: nothing is left. */
    memset(got, 0, sizeof(got));
    report(got);
    for (unsigned i = 0; i < sizeof(got) / 8; i++)
        assert_int_equal(got[i], 0);
    /* C was written and not logged. */
    assert_int_equal(muc_dirty_report(cl[0], C, NC * PG, PG, cbits,
                                      sizeof(cbits)), 0);
    assert_int_equal(cbits[0], 0);
    assert_int_equal(muc_dirty_stop(cl[0]), 0);

    /* And the device's state went whole. */
    moved += pump(XFER);
    assert_true(moved >= NPAGES * REC_PAGE + REC_END);
    assert_int_equal(muc_mig_set_state(cl[1], MUC_MIG_RUNNING), 0);
    expect_same_state();
}

/*
 * A device thread's DMA_WRITE to memory without an fd is in the report the
 * client asks for right after its reply, even when the device thread has
 * not run again by then (it may well not have: the client can send its
 * last report at once).  The thread is parked in a signal handler while
 * it waits for the reply, and let go only after the report.
 */

static void park(int sig)
{
    struct timespec ts = { 0, 100000 };

    (void)sig;
    __atomic_store_n(&parked, 1, __ATOMIC_RELEASE);
    while (!__atomic_load_n(&unpark, __ATOMIC_ACQUIRE))
        nanosleep(&ts, NULL);
}

static int fdless_rc = 1, fdless_tid;

/* The system call the thread is in, from /proc; -1 if unknown. */
static long thread_syscall(int tid)
{
    char path[64];
    long nr = -1;
    FILE *f;

    snprintf(path, sizeof(path), "/proc/self/task/%d/syscall", tid);
    f = fopen(path, "r");
    if (f != NULL) {
        if (fscanf(f, "%ld", &nr) != 1)
            nr = -1;
        fclose(f);
    }
    return nr;
}

static void *fdless_writer(void *arg)
{
    uint8_t b = 0x3c;

    __atomic_store_n(&fdless_tid, (int)gettid(), __ATOMIC_RELEASE);
    __atomic_store_n(&fdless_rc,
                     mu_dma_write(arg, B + 5 * PG + 7, &b, 1), __ATOMIC_RELEASE);
    return NULL;
}

static void test_fdless_write_in_next_report(void **state)
{
    struct sigaction sa = { .sa_handler = park }, old;
    struct vfu_hdr h;
    struct {
        struct vfu_hdr h;
        uint64_t addr, count;
        uint8_t data[8];
    } __attribute__((packed)) rq;
    struct {
        struct vfu_hdr h;
        uint64_t addr, count;
    } __attribute__((packed)) rp;
    uint64_t bits[1] = { 0 };
    pthread_t th;
    ssize_t n;

    (void)state;
    fdless = aligned_alloc(PG, NB * PG);
    assert_non_null(fdless);
    memset(fdless, 0, NB * PG);
    assert_int_equal(muc_dma_map_mem(cl[0], B, NB * PG, fdless,
                                     MUC_DMA_READ | MUC_DMA_WRITE), 0);
    assert_int_equal(muc_dirty_start(cl[0], PG, NULL, NULL, 0), 0);
    sigemptyset(&sa.sa_mask);
    assert_int_equal(sigaction(SIGUSR1, &sa, &old), 0);
    __atomic_store_n(&parked, 0, __ATOMIC_RELEASE);
    __atomic_store_n(&unpark, 0, __ATOMIC_RELEASE);
    assert_int_equal(pthread_create(&th, NULL, fdless_writer, srv[0].ctx), 0);
    fdless_th = th;
    fdless_started = true;

    /* The request is out: the device thread waits for the reply.  Park
     * it there, then answer as the client library would. */
    n = muc_recv_msg(cl[0], &rq, sizeof(rq), 5000 * slow_factor());
    assert_int_equal(n, sizeof(rq.h) + 16 + 1);
    assert_int_equal(rq.h.cmd, VFU_CMD_DMA_WRITE);
    assert_int_equal(rq.addr, B + 5 * PG + 7);
    /* Past its send (which holds a lock the reply needs): waiting. */
    for (int t = 0; thread_syscall(__atomic_load_n(&fdless_tid,
                                                   __ATOMIC_ACQUIRE)) !=
                    SYS_futex && t < 10000 * slow_factor(); t++)
        usleep(100);
    assert_int_equal(thread_syscall(fdless_tid), SYS_futex);
    assert_int_equal(pthread_kill(th, SIGUSR1), 0);
    for (int t = 0; !__atomic_load_n(&parked, __ATOMIC_ACQUIRE) &&
                    t < 10000 * slow_factor(); t++)
        usleep(100);
    assert_true(__atomic_load_n(&parked, __ATOMIC_ACQUIRE));
    fdless[5 * PG + 7] = rq.data[0];
    h = rq.h;
    h.size = sizeof(rp);
    h.flags = VFU_F_TYPE_REPLY;
    h.error = 0;
    rp.h = h;
    rp.addr = rq.addr;
    rp.count = rq.count;
    assert_int_equal(muc_send_bytes(cl[0], &rp, sizeof(rp), NULL, 0), 0);
    assert_int_equal(muc_dirty_report(cl[0], B, NB * PG, PG, bits,
                                      sizeof(bits)), 0);
    __atomic_store_n(&unpark, 1, __ATOMIC_RELEASE);
    pthread_join(th, NULL);
    fdless_started = false;
    sigaction(SIGUSR1, &old, NULL);
    assert_int_equal(fdless_rc, 0);
    assert_int_equal(bits[0], 1u << 5);
    assert_int_equal(muc_dirty_stop(cl[0]), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_precopy_stream, setup, teardown),
        cmocka_unit_test_setup_teardown(test_precopy_abandoned, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_precopy_migrate, setup, teardown),
        cmocka_unit_test_setup_teardown(test_precopy_dirty_pages, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_fdless_write_in_next_report,
                                        setup, teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
