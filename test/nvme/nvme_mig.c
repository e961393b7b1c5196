/*
 * nvme_mig.c - live migration of the nvme sample between two processes,
 * driven by the driver-like client: in the middle of a QD32 random-write
 * workload (every acknowledged block checked on the destination), with
 * the stream corrupted, truncated or cut by a disconnect, and towards a
 * controller with other namespaces; and every page the controller writes
 * while the client pre-copies (PRE_COPY with DMA logging) reported.
 *
 * Usage: nvme_mig PATH_TO_muser-nvme
 */
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <setjmp.h>
#include <cmocka.h>

#include "driver.h"
#include "nvme-spec.h"
#include "../slow.h"

#define MIB (1024u * 1024u)
#define NS_SIZE (16u * MIB)
#define SLOT 4096u                  /* one write: 8 blocks of 512 */
#define NR_SLOTS (NS_SIZE / SLOT)
#define QD 32u
#define CHUNK (128u * 1024u)        /* MDTS */

static const char *nvme_bin;
static int slow = 1;
static char dir[64];

struct dev {
    pid_t pid;
    char sock[128];
};

/* Device processes alive, for the teardown of a test that failed. */
static struct dev live[8];

static void msleep(unsigned ms)
{
    struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000 };

    nanosleep(&ts, NULL);
}

static void spawn_db(struct dev *v, const char *name, const char *size,
                     const char *nr_ns, const char *db)
{
    const char *argv[18];
    int n = 0;

    if (mu_test_valgrind_env()) {
        argv[n++] = "valgrind";
        argv[n++] = "-q";
        argv[n++] = "--error-exitcode=99";
        argv[n++] = "--leak-check=full";
    }
    snprintf(v->sock, sizeof(v->sock), "%s/%s", dir, name);
    argv[n++] = nvme_bin;
    argv[n++] = "--size";
    argv[n++] = size;
    argv[n++] = "--namespaces";
    argv[n++] = nr_ns;
    argv[n++] = "--serial";
    argv[n++] = name;
    argv[n++] = "--doorbells";
    argv[n++] = db;
    argv[n++] = v->sock;
    argv[n] = NULL;
    v->pid = fork();
    assert_true(v->pid >= 0);
    for (unsigned i = 0; i < 8; i++) {
        if (live[i].pid == 0) {
            live[i] = *v;
            break;
        }
    }
    if (v->pid == 0) {
        execvp(argv[0], (char *const *)argv);
        _exit(127);
    }
}

static void spawn(struct dev *v, const char *name, const char *size,
                  const char *nr_ns)
{
    spawn_db(v, name, size, nr_ns, "trapped");
}

/* SIGTERM; the exit status must be clean (valgrind says 99 otherwise). */
static void reap_dev(struct dev *v)
{
    int st = 0;

    if (v->pid <= 0)
        return;
    pid_t pid = v->pid;

    kill(pid, SIGTERM);
    assert_int_equal(waitpid(pid, &st, 0), pid);
    v->pid = 0;
    for (unsigned i = 0; i < 8; i++)
        if (live[i].pid == pid)
            live[i].pid = 0;
    unlink(v->sock);
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 0);
}

/* Wait for the device process to listen (it binds after its setup). */
static muc_t *connect_dev(struct dev *v)
{
    struct muc_opts o = { .max_msg_fds = 2 * (NVD_MAX_IOQ + 1) };
    muc_t *c = NULL;
    int rc = -ENOENT;

    for (int i = 0; i < 500 * slow; i++) {
        rc = muc_connect(&c, v->sock, &o);
        if (rc != -ECONNREFUSED && rc != -ENOENT)
            break;
        msleep(20);
    }
    assert_int_equal(rc, 0);
    return c;
}

static struct nvd *open_driver_with(struct dev *v, enum nvd_db_mode db,
                                    size_t fdless_size)
{
    struct nvd_opts o = {
        .sock = v->sock, .db = db, .io_qsize = 64,
        .timeout_ms = 5000 * slow, .fdless_size = fdless_size,
        .nr_io_queues = fdless_size != 0 ? 2 : 1,
    };
    struct nvd *d = NULL;
    int rc = -ENOENT;

    for (int i = 0; i < 500 * slow; i++) {
        rc = nvd_open(&d, &o);
        if (rc != -ECONNREFUSED && rc != -ENOENT)
            break;
        msleep(20);
    }
    assert_int_equal(rc, 0);
    assert_int_equal(nvd_bringup(d), 0);
    return d;
}

static struct nvd *open_driver(struct dev *v)
{
    return open_driver_with(v, NVD_DB_TRAPPED, 0);
}

/* ---------------- the workload ---------------- */

struct work {
    struct nvd *d;
    uint32_t gen[NR_SLOTS];     /* acknowledged contents; 0 never written */
    bool busy[NR_SLOTS];
    uint64_t buf[QD];           /* one buffer per command slot */
    int cid_of[QD];
    struct { unsigned slot, gen, b; } cmd[4096];    /* by cid */
    bool buf_busy[QD];
    unsigned next_gen, inflight, acked;
    unsigned seed;
    unsigned qid;               /* the I/O queue used; 1 unless changed */
};

static void pattern(uint8_t *p, unsigned slot, unsigned gen)
{
    for (unsigned i = 0; i < SLOT / 8; i++) {
        uint64_t w = (uint64_t)slot << 40 | (uint64_t)gen << 12 | i;

        memcpy(p + 8 * i, &w, 8);
    }
}

static void submit_one(struct work *w)
{
    unsigned slot, b;
    int cid;

    do
        slot = (unsigned)rand_r(&w->seed) % NR_SLOTS;
    while (w->busy[slot]);
    for (b = 0; w->buf_busy[b]; b++)
        ;
    w->next_gen++;
    pattern(nvd_va(w->d, w->buf[b]), slot, w->next_gen);
    cid = nvd_submit_rw(w->d, w->qid, NVME_IO_WRITE, 1, (uint64_t)slot * 8, 8,
                        w->buf[b], SLOT);
    assert_true(cid >= 0 && cid < 4096);
    w->cmd[cid].slot = slot;
    w->cmd[cid].gen = w->next_gen;
    w->cmd[cid].b = b;
    w->busy[slot] = w->buf_busy[b] = true;
    w->inflight++;
}

static void reap_some(struct work *w)
{
    struct nvme_cqe cqe[QD];
    int n = nvd_reap(w->d, w->qid, cqe, QD, w->d->o.timeout_ms);

    assert_true(n > 0);
    for (int i = 0; i < n; i++) {
        unsigned cid = cqe[i].cid;

        assert_int_equal(NVME_CQE_ST(cqe[i].status), 0);
        assert_true(cid < 4096 && w->busy[w->cmd[cid].slot]);
        w->gen[w->cmd[cid].slot] = w->cmd[cid].gen;
        w->busy[w->cmd[cid].slot] = false;
        w->buf_busy[w->cmd[cid].b] = false;
        w->inflight--;
        w->acked++;
    }
}

/* Keep QD32 in flight until 'until' writes are acknowledged. */
static void run_until(struct work *w, unsigned until)
{
    while (w->acked < until) {
        while (w->inflight < QD)
            submit_one(w);
        assert_int_equal(nvd_ring(w->d, w->qid), 0);
        reap_some(w);
    }
}

static void drain(struct work *w)
{
    assert_int_equal(nvd_ring(w->d, w->qid), 0);
    while (w->inflight > 0)
        reap_some(w);
}

/* Every slot holds what was last acknowledged for it. */
static void verify(struct work *w)
{
    uint64_t iova = nvd_alloc(w->d, CHUNK, NVD_PAGE);
    uint8_t want[SLOT];

    assert_true(iova != 0);
    for (unsigned s0 = 0; s0 < NR_SLOTS; s0 += CHUNK / SLOT) {
        const uint8_t *got = nvd_va(w->d, iova);

        assert_int_equal(nvd_rw(w->d, 1, NVME_IO_READ, 1, (uint64_t)s0 * 8,
                                CHUNK / 512, iova, CHUNK), 0);
        for (unsigned s = s0; s < s0 + CHUNK / SLOT; s++) {
            if (w->gen[s] == 0)
                memset(want, 0, SLOT);
            else
                pattern(want, s, w->gen[s]);
            assert_memory_equal(got + (size_t)(s - s0) * SLOT, want, SLOT);
        }
    }
}

static struct work *work_new(struct nvd *d)
{
    struct work *w = calloc(1, sizeof(*w));

    assert_non_null(w);
    w->d = d;
    w->seed = 1234;
    w->qid = 1;
    for (unsigned b = 0; b < QD; b++) {
        w->buf[b] = nvd_alloc(d, SLOT, NVD_PAGE);
        assert_true(w->buf[b] != 0);
    }
    return w;
}

/*
 * One PRE_COPY pass of src (reads until a short one), each chunk written
 * to dst (if any) and appended to *acc (if any), with 'writes' more writes
 * of w acknowledged after each chunk (w may be NULL).  Returns the bytes.
 */
static uint64_t precopy_pass(muc_t *src, muc_t *dst, struct work *w,
                             unsigned writes, uint8_t *acc, size_t *acc_len,
                             size_t acc_cap)
{
    size_t chunk = muc_mig_read_max(src);
    uint8_t *buf = malloc(chunk);
    uint64_t total = 0;

    assert_non_null(buf);
    for (;;) {
        ssize_t n = muc_mig_read(src, buf, chunk);

        assert_true(n >= 0);
        if (dst != NULL && n > 0)
            assert_int_equal(muc_mig_write(dst, buf, (size_t)n), 0);
        if (acc != NULL) {
            assert_true(*acc_len + (size_t)n <= acc_cap);
            memcpy(acc + *acc_len, buf, (size_t)n);
            *acc_len += (size_t)n;
        }
        total += (uint64_t)n;
        if ((size_t)n < chunk)
            break;
        if (w != NULL)
            run_until(w, w->acked + writes);
    }
    free(buf);
    return total;
}

/*
 * Migrate with pre-copy under a QD32 random-write workload: the first
 * pass sends every granule while writes land behind and ahead of it, a
 * second pass the ones written meanwhile while more writes land, then
 * the stop, with 16 writes completed on the source but not reaped, and
 * 16 queued in the SQ but not rung: the first need the CQ's tail and
 * phase, the others the SQ's head, on the destination.  Every write
 * acknowledged after its granule was sent is only on the destination if
 * the granule went again: verify() reads every block there.
 */
static void test_mid_workload(void **state)
{
    struct dev src, dst;
    uint64_t pass1, pass2, stop;
    struct work *w;
    struct nvd *d;
    muc_t *c;

    (void)state;
    spawn(&src, "src", "16M", "1");
    spawn(&dst, "dst", "16M", "1");
    d = open_driver(&src);
    w = work_new(d);
    run_until(w, 3000);
    c = connect_dev(&dst);
    assert_int_equal(nvd_attach(d, c), 0);
    assert_int_equal(muc_mig_set_state(c, MUC_MIG_RESUMING), 0);
    assert_int_equal(muc_mig_set_state(d->c, MUC_MIG_PRE_COPY), 0);
    pass1 = precopy_pass(d->c, c, w, 8, NULL, NULL, 0);
    assert_true(pass1 > NS_SIZE);
    pass2 = precopy_pass(d->c, c, w, 8, NULL, NULL, 0);
    assert_true(pass2 > 0 && pass2 < pass1);    /* written granules only */
    drain(w);
    for (unsigned i = 0; i < QD / 2; i++)
        submit_one(w);
    assert_int_equal(nvd_ring(d, 1), 0);
    for (unsigned i = 0; i < QD / 2; i++)
        submit_one(w);
    assert_int_equal(muc_mig_set_state(d->c, MUC_MIG_STOP_COPY), 0);
    stop = precopy_pass(d->c, c, NULL, 0, NULL, NULL, 0);
    /* The state and the granules written since their last pass (the
     * last 16 writes at least), not the whole namespace. */
    assert_true(stop > 64 * 1024 && stop < NS_SIZE);
    assert_int_equal(muc_mig_set_state(c, MUC_MIG_RUNNING), 0);
    assert_int_equal(muc_mig_set_state(d->c, MUC_MIG_STOP), 0);
    nvd_adopt(d, c);
    run_until(w, w->acked + 3000);
    drain(w);
    verify(w);
    /* And the admin queue moved too. */
    uint8_t id[4096];
    assert_int_equal(nvd_identify(d, NVME_CNS_CTRL, 0, id), 0);
    assert_memory_equal(id + 4, "src", 3);      /* SN: the source's */
    nvd_close(d);
    free(w);
    reap_dev(&dst);
    reap_dev(&src);
}

/* Migrate without pre-copy, mid-workload as above: the whole namespace
 * goes in STOP_COPY. */
static void test_mid_workload_stop_copy(void **state)
{
    struct dev src, dst;
    struct muc_migrate_stats st;
    struct work *w;
    struct nvd *d;
    muc_t *c;

    (void)state;
    spawn(&src, "src", "16M", "1");
    spawn(&dst, "dst", "16M", "1");
    d = open_driver(&src);
    w = work_new(d);
    run_until(w, 3000);
    drain(w);
    for (unsigned i = 0; i < QD / 2; i++)
        submit_one(w);
    assert_int_equal(nvd_ring(d, 1), 0);
    for (unsigned i = 0; i < QD / 2; i++)
        submit_one(w);
    c = connect_dev(&dst);
    assert_int_equal(nvd_migrate(d, c, NULL, &st), 0);
    assert_int_equal(st.precopy_bytes, 0);
    assert_true(st.stopcopy_bytes > NS_SIZE);
    run_until(w, 6000);
    drain(w);
    verify(w);
    nvd_close(d);
    free(w);
    reap_dev(&dst);
    reap_dev(&src);
}

/* ---------------- the stream's records ---------------- */

#define REC_HDR 24u
enum { REC_GRAN = 1, REC_STATE = 2, REC_END = 3 };

static uint32_t get32(const uint8_t *p)
{
    uint32_t v;

    memcpy(&v, p, 4);
    return v;
}

static uint64_t get64(const uint8_t *p)
{
    uint64_t v;

    memcpy(&v, p, 8);
    return v;
}

/* Offset of the nth (from 0) record of a type in a stream. */
static size_t rec_at(const uint8_t *s, size_t len, uint32_t type,
                     unsigned nth)
{
    size_t off = get32(s + 8);      /* the begin record's length */

    while (off + REC_HDR <= len) {
        if (get32(s + off) == type && nth-- == 0)
            return off;
        off += REC_HDR + (size_t)get64(s + off + 16);
    }
    fail_msg("no record %u of type %u", nth, type);
    return 0;
}

static size_t rec_len(const uint8_t *s, size_t off)
{
    return REC_HDR + (size_t)get64(s + off + 16);
}

/*
 * The namespace's bytes as a destination would have them: every granule
 * record applied in order (the last copy wins), checked to be in range.
 */
static void stream_image(const uint8_t *s, size_t len, uint8_t *img)
{
    size_t off = get32(s + 8);
    bool end = false;

    memset(img, 0x5a, NS_SIZE);
    while (off + REC_HDR <= len && !end) {
        uint32_t type = get32(s + off);
        uint64_t at = get64(s + off + 8), n = get64(s + off + 16);

        assert_true(off + REC_HDR + n <= len);
        if (type == REC_GRAN) {
            assert_int_equal(get32(s + off + 4), 0);
            assert_true(at < NS_SIZE && n <= NS_SIZE - at);
            memcpy(img + at, s + off + REC_HDR, (size_t)n);
        }
        end = type == REC_END;
        off += REC_HDR + (size_t)n;
    }
    assert_true(end);
    assert_int_equal(off, len);
}

/* Every slot of the image holds what was last acknowledged for it. */
static void verify_image(const struct work *w, const uint8_t *img)
{
    uint8_t want[SLOT];

    for (unsigned s = 0; s < NR_SLOTS; s++) {
        if (w->gen[s] == 0)
            memset(want, 0, SLOT);
        else
            pattern(want, s, w->gen[s]);
        if (memcmp(img + (size_t)s * SLOT, want, SLOT) != 0)
            fail_msg("slot %u: not what was last acknowledged (gen %u)", s,
                     w->gen[s]);
    }
}

/*
 * Polled doorbells: the poller thread writes the namespace while the
 * context thread sends it.  Two passes under QD32 random writes, then
 * the stop; the stream, replayed, holds every write acknowledged.  Fails
 * if a granule written after it was sent is not sent again.
 */
static void test_precopy_resend_polled(void **state)
{
    size_t cap = 4 * NS_SIZE, len = 0;
    uint8_t *s = malloc(cap), *img = malloc(NS_SIZE);
    uint64_t pass1, pass2;
    struct dev src;
    struct work *w;
    struct nvd *d;

    (void)state;
    assert_true(s != NULL && img != NULL);
    spawn_db(&src, "src", "16M", "1", "polled");
    d = open_driver_with(&src, NVD_DB_POLLED, 0);
    w = work_new(d);
    run_until(w, 1000);
    assert_int_equal(muc_mig_set_state(d->c, MUC_MIG_PRE_COPY), 0);
    pass1 = precopy_pass(d->c, NULL, w, 8, s, &len, cap);
    pass2 = precopy_pass(d->c, NULL, w, 8, s, &len, cap);
    assert_true(pass1 > NS_SIZE && pass2 > 0);
    /* More writes after the last pass: only STOP_COPY can carry them. */
    run_until(w, w->acked + 200);
    drain(w);
    assert_int_equal(muc_mig_set_state(d->c, MUC_MIG_STOP_COPY), 0);
    assert_true(precopy_pass(d->c, NULL, NULL, 0, s, &len, cap) > 64 * 1024);
    stream_image(s, len, img);
    verify_image(w, img);
    /* The source runs on with its data. */
    assert_int_equal(muc_mig_set_state(d->c, MUC_MIG_RUNNING), 0);
    run_until(w, w->acked + 200);
    drain(w);
    verify(w);
    nvd_close(d);
    free(w);
    free(s);
    free(img);
    reap_dev(&src);
}

/* ---------------- bad streams ---------------- */

/* The whole STOP_COPY stream of a source. */
static uint8_t *read_stream(muc_t *c, size_t *len)
{
    size_t cap = 40 * MIB, n = 0, chunk = muc_mig_read_max(c);
    uint8_t *buf = malloc(cap);

    assert_non_null(buf);
    assert_int_equal(muc_mig_set_state(c, MUC_MIG_STOP_COPY), 0);
    for (;;) {
        ssize_t r;

        assert_true(n + chunk <= cap);
        r = muc_mig_read(c, buf + n, chunk);
        assert_true(r >= 0);
        n += (size_t)r;
        if ((size_t)r < chunk)
            break;
    }
    *len = n;
    return buf;
}

/* Source with known data; returns its stream, the source left stopped. */
static uint8_t *source_stream(struct dev *src, struct nvd **dp,
                              struct work **wp, size_t *len)
{
    struct nvd *d = open_driver(src);
    struct work *w = work_new(d);

    run_until(w, 500);
    drain(w);
    *dp = d;
    *wp = w;
    return read_stream(d->c, len);
}

static void expect_state(muc_t *c, uint32_t want)
{
    uint32_t s;

    assert_int_equal(muc_mig_get_state(c, &s), 0);
    assert_int_equal(s, want);
}

/* Write the stream and run: 0, or the first error. */
static int feed(muc_t *c, const uint8_t *buf, size_t len)
{
    int rc = muc_mig_write(c, buf, len);

    return rc < 0 ? rc : muc_mig_set_state(c, MUC_MIG_RUNNING);
}

/* s with [at, at + cut) replaced by ins/n; *out_len set; caller frees. */
static uint8_t *splice(const uint8_t *s, size_t len, size_t at, size_t cut,
                       const uint8_t *ins, size_t n, size_t *out_len)
{
    uint8_t *o = malloc(len - cut + n);

    assert_non_null(o);
    memcpy(o, s, at);
    if (n > 0)
        memcpy(o + at, ins, n);
    memcpy(o + at + n, s + at + cut, len - at - cut);
    *out_len = len - cut + n;
    return o;
}

/* A record header changed in place: refused when it comes, with rc. */
static void bad_field(muc_t *c, uint8_t *s, size_t len, size_t field,
                      uint64_t val, size_t width, int rc)
{
    uint8_t keep[8];

    memcpy(keep, s + field, width);
    memcpy(s + field, &val, width);
    assert_int_equal(muc_mig_write(c, s, len), rc);
    memcpy(s + field, keep, width);
    expect_state(c, MUC_MIG_RESUMING);
}

/*
 * Records that cannot be taken, each refused as it comes (or at the end
 * record) with its errno, the destination left in RESUMING: a version 1
 * stream, a granule out of range, of the wrong length or in a file
 * namespace... (a namespace index we do not have), an unknown record, a
 * granule twice after the state, a second state record, a granule
 * missing, the end before the state.
 */
static void bad_records(muc_t *c, uint8_t *s, size_t len)
{
    size_t g0 = rec_at(s, len, REC_GRAN, 0), g1 = rec_at(s, len, REC_GRAN, 1);
    size_t st = rec_at(s, len, REC_STATE, 0), end = rec_at(s, len, REC_END, 0);
    size_t glen = rec_len(s, g0), n;
    uint8_t *o;

    assert_true(st < g0);   /* no pre-copy: the state first */
    /* Version 1 (the whole state in STOP_COPY): refused on its header. */
    bad_field(c, s, len, 4, 1, 2, -EPROTO);
    /* Out of range: past the namespace, not on a granule, another ns. */
    bad_field(c, s, len, g0 + 8, NS_SIZE, 8, -ERANGE);
    bad_field(c, s, len, g0 + 8, 4096, 8, -ERANGE);
    bad_field(c, s, len, g0 + 4, 1, 4, -ERANGE);
    /* Short (or long) granule. */
    bad_field(c, s, len, g0 + 16, glen - REC_HDR - 4096, 8, -EINVAL);
    bad_field(c, s, len, g0 + 16, glen - REC_HDR + 4096, 8, -EINVAL);
    /* A record this version does not know. */
    bad_field(c, s, len, g0, 9, 4, -EPROTO);
    /* A state record of another size. */
    bad_field(c, s, len, st + 16, 64, 8, -EINVAL);
    /* The same granule twice after the state. */
    o = splice(s, len, g1, 0, s + g0, glen, &n);
    assert_int_equal(muc_mig_write(c, o, n), -EEXIST);
    free(o);
    expect_state(c, MUC_MIG_RESUMING);
    /* A second state record. */
    o = splice(s, len, g0, 0, s + st, rec_len(s, st), &n);
    assert_int_equal(muc_mig_write(c, o, n), -EEXIST);
    free(o);
    expect_state(c, MUC_MIG_RESUMING);
    /* A granule missing: refused at the end record. */
    o = splice(s, len, g1, rec_len(s, g1), NULL, 0, &n);
    assert_int_equal(muc_mig_write(c, o, n), -ENODATA);
    free(o);
    expect_state(c, MUC_MIG_RESUMING);
    /* The end before the state. */
    o = splice(s, len, st, 0, s + end, rec_len(s, end), &n);
    assert_int_equal(muc_mig_write(c, o, n), -ENODATA);
    free(o);
    expect_state(c, MUC_MIG_RESUMING);
}

static void test_bad_streams(void **state)
{
    struct dev src, dst;
    struct nvd *d;
    struct work *w;
    size_t len;
    uint8_t *s;
    muc_t *c;
    uint32_t v;

    (void)state;
    spawn(&src, "src", "16M", "1");
    spawn(&dst, "dst", "16M", "1");
    s = source_stream(&src, &d, &w, &len);
    c = connect_dev(&dst);
    assert_int_equal(nvd_attach(d, c), 0);
    assert_int_equal(muc_mig_set_state(c, MUC_MIG_RESUMING), 0);

    /* One byte flipped in the namespace: the hash catches it at the end. */
    s[len / 2] ^= 0x40;
    assert_int_equal(feed(c, s, len), -EBADMSG);
    expect_state(c, MUC_MIG_RESUMING);
    s[len / 2] ^= 0x40;
    /* Truncated. */
    assert_int_equal(feed(c, s, len - 100), -ENODATA);
    expect_state(c, MUC_MIG_RESUMING);
    /* Longer than it says. */
    uint8_t *longer = malloc(len + 8);
    assert_non_null(longer);
    memcpy(longer, s, len);
    memset(longer + len, 0, 8);
    assert_true(feed(c, longer, len + 8) < 0);
    free(longer);
    expect_state(c, MUC_MIG_RESUMING);
    /* A version this build does not know: refused on the header. */
    s[4] ^= 0x80;
    assert_int_equal(muc_mig_write(c, s, len), -EPROTO);
    s[4] ^= 0x80;
    expect_state(c, MUC_MIG_RESUMING);
    bad_records(c, s, len);
    /* Nothing of the refused streams stuck: the good one goes in whole,
     * and the controller is the source's, running, with its data. */
    assert_int_equal(feed(c, s, len), 0);
    nvd_adopt(d, c);
    assert_int_equal(nvd_read32(d, NVME_REG_CSTS, &v), 0);
    assert_int_equal(v & NVME_CSTS_RDY, NVME_CSTS_RDY);
    verify(w);
    free(s);
    nvd_close(d);
    free(w);
    reap_dev(&dst);
    reap_dev(&src);
}

/* Fewer or smaller namespaces on the destination: refused on the header,
 * and the destination is still a fresh controller a new stream can fill. */
static void test_other_namespaces(void **state)
{
    struct dev src, few, small;
    struct nvd *d;
    struct work *w;
    size_t len;
    uint8_t *s;
    muc_t *c;

    (void)state;
    spawn(&src, "src", "16M", "2");
    spawn(&few, "few", "16M", "1");
    spawn(&small, "small", "8M", "2");
    s = source_stream(&src, &d, &w, &len);
    c = connect_dev(&few);
    assert_int_equal(muc_mig_set_state(c, MUC_MIG_RESUMING), 0);
    assert_int_equal(muc_mig_write(c, s, len), -ENOSPC);
    assert_int_equal(muc_mig_set_state(c, MUC_MIG_RUNNING), -ENODATA);
    muc_close(c);
    c = connect_dev(&small);
    assert_int_equal(muc_mig_set_state(c, MUC_MIG_RESUMING), 0);
    assert_int_equal(muc_mig_write(c, s, len), -ENOSPC);
    muc_close(c);
    /* The source, told to run again, carries on with its data. */
    assert_int_equal(muc_mig_set_state(d->c, MUC_MIG_RUNNING), 0);
    run_until(w, 1000);
    drain(w);
    verify(w);
    free(s);
    nvd_close(d);
    free(w);
    reap_dev(&small);
    reap_dev(&few);
    reap_dev(&src);
}

/*
 * Disconnects mid-stream.  The source's client goes away half-way through
 * STOP_COPY: the source is left in STOP for the next client.  The
 * destination's client goes away half-way through its write: the
 * destination stays in RESUMING with nothing kept, and a new client
 * writes the stream from the start and runs it.
 */
static void test_disconnect_mid_stream(void **state)
{
    struct dev src, dst;
    struct nvd *d;
    struct work *w;
    size_t len, chunk;
    uint8_t *s, *half;
    muc_t *c;

    (void)state;
    spawn(&src, "src", "16M", "1");
    spawn(&dst, "dst", "16M", "1");
    s = source_stream(&src, &d, &w, &len);
    /* Save again from STOP, leave half-way. */
    assert_int_equal(muc_mig_set_state(d->c, MUC_MIG_STOP), 0);
    chunk = muc_mig_read_max(d->c);
    half = malloc(chunk);
    assert_non_null(half);
    assert_int_equal(muc_mig_set_state(d->c, MUC_MIG_STOP_COPY), 0);
    for (size_t n = 0; n < NS_SIZE / 2; n += chunk)
        assert_int_equal(muc_mig_read(d->c, half, chunk), (ssize_t)chunk);
    free(half);
    muc_close(d->c);
    d->c = NULL;
    c = connect_dev(&src);
    expect_state(c, MUC_MIG_STOP);
    muc_close(c);
    /* The destination's writer leaves half-way. */
    c = connect_dev(&dst);
    assert_int_equal(muc_mig_set_state(c, MUC_MIG_RESUMING), 0);
    assert_int_equal(muc_mig_write(c, s, len / 2), 0);
    muc_close(c);
    c = connect_dev(&dst);
    expect_state(c, MUC_MIG_RESUMING);
    assert_int_equal(nvd_attach(d, c), 0);
    assert_int_equal(feed(c, s, len), 0);
    d->c = c;
    run_until(w, 1000);
    drain(w);
    verify(w);
    free(s);
    nvd_close(d);
    free(w);
    reap_dev(&dst);
    reap_dev(&src);
}

/* ---------------- PRE_COPY: the pages the controller writes ---------------- */

#define PAGE NVD_PAGE
#define FD_POOL 256u            /* pages, across the two regions' boundary */
#define FL_POOL 240u            /* pages of fd-less memory, from page 16 */
#define READS 2000u

struct dirty_run {
    struct nvd *d;
    unsigned mem_pages, fl_pages;
    uint8_t *exp_mem, *exp_fl;      /* written by the controller */
    uint8_t *ok_mem, *ok_fl;        /* may be reported */
    uint64_t *got_mem, *got_fl;     /* reported so far */
};

static void note(struct dirty_run *r, uint64_t iova, uint64_t len, bool exp)
{
    struct nvd *d = r->d;

    for (uint64_t a = iova & ~(uint64_t)(PAGE - 1); a < iova + len; a += PAGE) {
        if (a - d->mem_iova < d->o.mem_size) {
            r->ok_mem[(a - d->mem_iova) / PAGE] = 1;
            if (exp)
                r->exp_mem[(a - d->mem_iova) / PAGE] = 1;
        } else if (a - d->fdless_iova < d->o.fdless_size) {
            r->ok_fl[(a - d->fdless_iova) / PAGE] = 1;
            if (exp)
                r->exp_fl[(a - d->fdless_iova) / PAGE] = 1;
        } else {
            fail_msg("iova %#llx outside guest memory", (unsigned long long)a);
        }
    }
}

static void fetch_dirty(struct dirty_run *r)
{
    size_t bm = (r->mem_pages + 63) / 64 * 8, bf = (r->fl_pages + 63) / 64 * 8;
    uint64_t *m = calloc(1, bm), *f = calloc(1, bf);

    assert_true(m != NULL && f != NULL);
    assert_int_equal(muc_dirty_report(r->d->c, r->d->mem_iova,
                                      r->d->o.mem_size, PAGE, m, bm), 0);
    assert_int_equal(muc_dirty_report(r->d->c, r->d->fdless_iova,
                                      r->d->o.fdless_size, PAGE, f, bf), 0);
    for (size_t i = 0; i < bm / 8; i++)
        r->got_mem[i] |= m[i];
    for (size_t i = 0; i < bf / 8; i++)
        r->got_fl[i] |= f[i];
    free(m);
    free(f);
}

static bool got(const uint64_t *b, unsigned i)
{
    return (b[i / 64] >> (i % 64)) & 1;
}

static void check_reported(const char *what, const uint64_t *g,
                           const uint8_t *exp, const uint8_t *ok, unsigned n,
                           uint64_t base)
{
    for (unsigned i = 0; i < n; i++) {
        if (exp[i] && !got(g, i))
            fail_msg("%s: page %#llx written by the controller, not "
                     "reported", what,
                     (unsigned long long)(base + (uint64_t)i * PAGE));
        if (got(g, i) && !ok[i])
            fail_msg("%s: page %#llx reported, the controller never wrote "
                     "it", what,
                     (unsigned long long)(base + (uint64_t)i * PAGE));
    }
}

/* Pages whose contents changed since the snapshot must be reported too:
 * a check that does not rely on what we think the controller wrote. */
static void check_changed(struct dirty_run *r, uint64_t iova, unsigned pages,
                          const uint8_t *before)
{
    const uint8_t *now = nvd_va(r->d, iova);
    struct nvd *d = r->d;

    for (unsigned i = 0; i < pages; i++) {
        uint64_t a = iova + (uint64_t)i * PAGE;
        bool rep = a - d->mem_iova < d->o.mem_size
                       ? got(r->got_mem, (unsigned)((a - d->mem_iova) / PAGE))
                       : got(r->got_fl, (unsigned)((a - d->fdless_iova) / PAGE));

        if (memcmp(now + (size_t)i * PAGE, before + (size_t)i * PAGE, PAGE) &&
            !rep)
            fail_msg("page %#llx changed, not reported", (unsigned long long)a);
    }
}

/*
 * A QD32 random-read workload while the source is in PRE_COPY with DMA
 * logging on: two queue pairs (one in fd-backed memory, one in memory
 * without an fd, so completions go by mapping and by DMA_WRITE), data
 * buffers in both, some straddling a page (PRP1 + PRP2), some the DMA
 * regions' boundary.  Reports are fetched as it runs and once stopped;
 * every data page and completion page written is in them, and nothing
 * the controller did not write (submission queues, PRP pages, untouched
 * buffers).  With trapped doorbells the device then migrates on (through
 * an empty PRE_COPY round) and the data is checked there.
 */
static void precopy_dirty(const char *db_name, enum nvd_db_mode db,
                          bool migrate)
{
    struct dev src, dst = { 0 };
    struct dirty_run r = { 0 };
    struct nvme_cqe cqe[QD];
    struct { uint64_t iova; } cmd[2][4096];
    unsigned inflight[3] = { 0 }, submitted = 0, done = 0, since = 0;
    unsigned seed = 99;
    uint8_t *snap_fd, *snap_fl, *snap_cq;
    uint64_t fdpool, flpool, cq2, lo[2], len[2];
    struct work *w;
    struct nvd *d;

    spawn_db(&src, "src", "16M", "1", db_name);
    if (migrate)
        spawn(&dst, "dst", "16M", "1");
    d = open_driver_with(&src, db, MIB);
    r.d = d;
    w = work_new(d);
    run_until(w, 1000);
    drain(w);
    cq2 = d->fdless_iova + PAGE;
    assert_int_equal(nvd_delete_qpair(d, 2), 0);
    assert_int_equal(nvd_create_qpair_at(d, 2, 64, 64, d->fdless_iova, cq2),
                     0);
    r.mem_pages = (unsigned)(d->o.mem_size / PAGE);
    r.fl_pages = (unsigned)(d->o.fdless_size / PAGE);
    r.exp_mem = calloc(r.mem_pages, 1);
    r.ok_mem = calloc(r.mem_pages, 1);
    r.exp_fl = calloc(r.fl_pages, 1);
    r.ok_fl = calloc(r.fl_pages, 1);
    r.got_mem = calloc((r.mem_pages + 63) / 64, 8);
    r.got_fl = calloc((r.fl_pages + 63) / 64, 8);
    snap_fd = malloc((size_t)FD_POOL * PAGE);
    snap_fl = malloc((size_t)FL_POOL * PAGE);
    snap_cq = malloc(2 * PAGE);
    assert_true(r.exp_mem && r.ok_mem && r.exp_fl && r.ok_fl && r.got_mem &&
                r.got_fl && snap_fd && snap_fl && snap_cq);
    fdpool = nvd_region_iova(d, 1) - FD_POOL / 2 * PAGE;
    flpool = d->fdless_iova + 16 * PAGE;
    memset(nvd_va(d, fdpool), 0xa5, (size_t)FD_POOL * PAGE);
    memset(nvd_va(d, flpool), 0xa5, (size_t)FL_POOL * PAGE);
    memcpy(snap_fd, nvd_va(d, fdpool), (size_t)FD_POOL * PAGE);
    memcpy(snap_fl, nvd_va(d, flpool), (size_t)FL_POOL * PAGE);
    memcpy(snap_cq, nvd_va(d, d->ioq[1].cq_iova), PAGE);
    memcpy(snap_cq + PAGE, nvd_va(d, cq2), PAGE);
    /* Completion rings may be reported whole (the controller writes them
     * through long-held mappings and marks them when it stops). */
    note(&r, d->aq.cq_iova, PAGE, false);
    note(&r, d->ioq[1].cq_iova, PAGE, false);
    note(&r, cq2, PAGE, false);

    lo[0] = d->mem_iova;
    len[0] = d->o.mem_size;
    lo[1] = d->fdless_iova;
    len[1] = d->o.fdless_size;
    assert_int_equal(muc_dirty_start(d->c, PAGE, lo, len, 2), 0);
    assert_int_equal(muc_mig_set_state(d->c, MUC_MIG_PRE_COPY), 0);
    while (done < READS) {
        for (unsigned q = 1; q <= 2; q++) {
            while (inflight[q] < QD / 2 && submitted < READS) {
                bool fl = rand_r(&seed) % 2;
                unsigned pages = fl ? FL_POOL : FD_POOL;
                uint64_t iova = (fl ? flpool : fdpool) +
                                (uint64_t)(rand_r(&seed) % (pages - 1)) * PAGE;
                int cid;

                if (rand_r(&seed) % 4 == 0)
                    iova += 512;        /* PRP1 + PRP2 */
                cid = nvd_submit_rw(d, q, NVME_IO_READ, 1,
                                    (uint64_t)(rand_r(&seed) % NR_SLOTS) * 8,
                                    8, iova, SLOT);
                assert_true(cid >= 0 && cid < 4096);
                cmd[q - 1][cid].iova = iova;
                inflight[q]++;
                submitted++;
            }
            assert_int_equal(nvd_ring(d, q), 0);
        }
        for (unsigned q = 1; q <= 2; q++) {
            int n;

            if (inflight[q] == 0)
                continue;
            n = nvd_reap(d, q, cqe, QD, d->o.timeout_ms);
            assert_true(n > 0);
            for (int i = 0; i < n; i++) {
                assert_int_equal(NVME_CQE_ST(cqe[i].status), 0);
                assert_true(cqe[i].cid < 4096);
                note(&r, cmd[q - 1][cqe[i].cid].iova, SLOT, true);
            }
            note(&r, q == 1 ? d->ioq[1].cq_iova : cq2, 16, true);
            inflight[q] -= (unsigned)n;
            done += (unsigned)n;
            since += (unsigned)n;
        }
        if (since >= 256) {
            fetch_dirty(&r);
            since = 0;
        }
    }
    /* Stopped: the last report has every page, and nothing else. */
    assert_int_equal(muc_mig_set_state(d->c, MUC_MIG_STOP_COPY), 0);
    fetch_dirty(&r);
    check_reported("memory with an fd", r.got_mem, r.exp_mem, r.ok_mem,
                   r.mem_pages, d->mem_iova);
    check_reported("memory without an fd", r.got_fl, r.exp_fl, r.ok_fl,
                   r.fl_pages, d->fdless_iova);
    check_changed(&r, fdpool, FD_POOL, snap_fd);
    check_changed(&r, flpool, FL_POOL, snap_fl);
    check_changed(&r, d->ioq[1].cq_iova, 1, snap_cq);
    check_changed(&r, cq2, 1, snap_cq + PAGE);
    assert_int_equal(muc_dirty_stop(d->c), 0);
    assert_int_equal(muc_mig_set_state(d->c, MUC_MIG_RUNNING), 0);

    if (migrate) {
        struct muc_migrate_opts mo = { .precopy_rounds = 1 };
        struct muc_migrate_stats st;
        muc_t *c = connect_dev(&dst);

        assert_int_equal(nvd_migrate(d, c, &mo, &st), 0);
        /* The namespace went while the source ran; nothing wrote it
         * since, so the downtime carried the controller's state alone. */
        assert_true(st.precopy_bytes > NS_SIZE);
        assert_true(st.stopcopy_bytes < 64 * 1024);
        /* The fd-less queue pair came along too. */
        assert_int_equal(nvd_rw(d, 2, NVME_IO_READ, 1, 0, 8, flpool, SLOT), 0);
    }
    run_until(w, 1500);
    drain(w);
    verify(w);
    nvd_close(d);
    free(w);
    free(r.exp_mem);
    free(r.ok_mem);
    free(r.exp_fl);
    free(r.ok_fl);
    free(r.got_mem);
    free(r.got_fl);
    free(snap_fd);
    free(snap_fl);
    free(snap_cq);
    if (migrate)
        reap_dev(&dst);
    reap_dev(&src);
}

static void test_precopy_dirty_trapped(void **state)
{
    (void)state;
    precopy_dirty("trapped", NVD_DB_TRAPPED, true);
}

static void test_precopy_dirty_polled(void **state)
{
    (void)state;
    precopy_dirty("polled", NVD_DB_POLLED, false);
}

/*
 * Polled doorbells, the queue pair in memory without an fd: the poller
 * drops the controller lock while it waits for each DMA reply, so a stop
 * can come in the middle of a command.  Stopped and run again twenty
 * times under a QD32 write workload: every command completes, once, and
 * the controller stays up; the data is all there at the end.
 */
static void test_stop_mid_command(void **state)
{
    struct dev src;
    struct work *w;
    struct nvd *d;
    uint32_t csts;

    (void)state;
    spawn_db(&src, "src", "16M", "1", "polled");
    d = open_driver_with(&src, NVD_DB_POLLED, MIB);
    assert_int_equal(nvd_delete_qpair(d, 2), 0);
    assert_int_equal(nvd_create_qpair_at(d, 2, 64, 64, d->fdless_iova,
                                         d->fdless_iova + PAGE), 0);
    w = work_new(d);
    w->qid = 2;
    for (unsigned i = 0; i < 20; i++) {
        run_until(w, w->acked + 100);
        while (w->inflight < QD)
            submit_one(w);
        assert_int_equal(nvd_ring(d, 2), 0);
        assert_int_equal(muc_mig_set_state(d->c, MUC_MIG_STOP), 0);
        assert_int_equal(muc_mig_set_state(d->c, MUC_MIG_RUNNING), 0);
    }
    drain(w);
    assert_int_equal(nvd_read32(d, NVME_REG_CSTS, &csts), 0);
    assert_int_equal(csts & (NVME_CSTS_CFS | NVME_CSTS_RDY), NVME_CSTS_RDY);
    w->qid = 1;
    verify(w);
    nvd_close(d);
    free(w);
    reap_dev(&src);
}

static int teardown(void **state)
{
    (void)state;
    for (unsigned i = 0; i < 8; i++) {
        if (live[i].pid > 0) {
            kill(live[i].pid, SIGKILL);
            waitpid(live[i].pid, NULL, 0);
            unlink(live[i].sock);
        }
        live[i].pid = 0;
    }
    return 0;
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_mid_workload, teardown),
        cmocka_unit_test_teardown(test_mid_workload_stop_copy, teardown),
        cmocka_unit_test_teardown(test_precopy_resend_polled, teardown),
        cmocka_unit_test_teardown(test_bad_streams, teardown),
        cmocka_unit_test_teardown(test_other_namespaces, teardown),
        cmocka_unit_test_teardown(test_disconnect_mid_stream, teardown),
        cmocka_unit_test_teardown(test_precopy_dirty_trapped, teardown),
        cmocka_unit_test_teardown(test_precopy_dirty_polled, teardown),
        cmocka_unit_test_teardown(test_stop_mid_command, teardown),
    };
    int rc;

    if (argc != 2) {
        fprintf(stderr, "usage: %s MUSER_NVME\n", argv[0]);
        return 2;
    }
    nvme_bin = argv[1];
    slow = mu_test_slow_factor();
    signal(SIGPIPE, SIG_IGN);
    snprintf(dir, sizeof(dir), "/tmp/nvme-mig.XXXXXX");
    if (mkdtemp(dir) == NULL)
        return 1;
    rc = cmocka_run_group_tests(tests, NULL, NULL);
    rmdir(dir);
    return rc;
}
