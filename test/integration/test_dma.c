/*
 * test_dma.c - guest memory end to end: an in-process device (a thread
 * running mu_ctx_run on a socket in a private directory) with DMA map,
 * unmap and overlap callbacks, driven over the real socket by the client
 * library on the test thread.
 *
 * Each test gets a fresh device, configured by the test's prestate (overlap
 * policy or callback, eviction limits, region limit), so the callback
 * counts a test checks are its own, and the teardown can check the rule the
 * whole table is built on: every region that got a map callback got exactly
 * one unmap callback by the time the context is destroyed.
 *
 * Covered: memfd regions read and written by the device (mu_dma_get/put
 * from a device thread, mu_dma_read/write from the test thread) and seen
 * through the client's own mapping, and the other way round; transfers
 * across adjacent regions; fd-less memory served by muc_serve (device
 * thread) and while the client waits for a reply (device callback on the
 * context thread); overlap in every shape under REJECT, REPLACE and a
 * per-event callback; the DMA_UNMAP rules; malformed maps; disconnect with
 * regions mapped; DMA_UNMAP waiting for a reference held by a device
 * thread; dirty page logging; lazy mmap, budget and idle eviction, and an
 * idle limit set while serving.  Set MU_TEST_VERBOSE to see the library's
 * log.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"
#include "muser.h"
#include "muser-client.h"
#include "wire.h"

#define PG 0x1000ull
#define RW (MUC_DMA_READ | MUC_DMA_WRITE)
#define NR_REASONS (MU_UNMAP_DESTROY + 1)
#define REFUSE_IOVA 0x7fff0000ull   /* the map callback refuses this one */

/* ---------------- the device ---------------- */

struct dev_cfg {
    bool replace;               /* context default MU_OVERLAP_REPLACE */
    bool overlap_cb;            /* install the per-event callback */
    bool no_client;             /* the test connects itself */
    uint64_t mapped_budget;     /* MU_LIMIT_DMA_MAPPED_BYTES */
    uint64_t idle_ms;           /* MU_LIMIT_DMA_IDLE_MS */
    uint64_t max_regions;       /* MU_LIMIT_DMA_REGIONS, 0: default */
    uint64_t recv_timeout_ms;   /* MU_LIMIT_RECV_TIMEOUT_MS, 0: default */
};

static struct inproc srv;      /* the device, one per test */
static struct {
    muc_t *c;                   /* the test's client, if connected */
} dev;

/*
 * What the callbacks saw.  They run on the context thread; the counters
 * are atomics and the event records are under ev_lock, so the test thread
 * may read them at any time.
 */
static atomic_uint nr_maps, nr_unmaps, nr_refused, nr_overlap_calls;
static atomic_uint by_reason[NR_REASONS];

struct unmap_ev {
    uint64_t iova, size;
    enum mu_unmap_reason reason;
};

static pthread_mutex_t ev_lock = PTHREAD_MUTEX_INITIALIZER;
static struct mu_dma_info last_map;
static struct unmap_ev unmap_log[64];
static unsigned nr_unmap_log;
/* The overlap callback's last event and the answer it gives. */
struct ov_event {
    struct mu_dma_info incoming;
    uint64_t old_iova[8], old_size[8];
    size_t n;
};
static struct ov_event ov_last;
static atomic_int ov_answer;
/* Called from the unmap callback, for tests that must act at that moment. */
static void (*unmap_hook)(mu_dma_region_t *r, enum mu_unmap_reason why);

static void log_cb(mu_ctx_t *ctx, enum mu_log_level level, const char *msg)
{
    (void)ctx;
    /* Many tests provoke warnings on purpose; show them only on demand. */
    if (getenv("MU_TEST_VERBOSE") != NULL)
        fprintf(stderr, "muser[%d]: %s\n", (int)level, msg);
}

static int map_cb(mu_ctx_t *ctx, mu_dma_region_t *r)
{
    const struct mu_dma_info *info = mu_dma_region_info(r);

    (void)ctx;
    if (info->iova == REFUSE_IOVA) {
        atomic_fetch_add(&nr_refused, 1);
        return -EPERM;
    }
    pthread_mutex_lock(&ev_lock);
    last_map = *info;
    pthread_mutex_unlock(&ev_lock);
    atomic_fetch_add(&nr_maps, 1);
    return 0;
}

static void unmap_cb(mu_ctx_t *ctx, mu_dma_region_t *r,
                     enum mu_unmap_reason why)
{
    const struct mu_dma_info *info = mu_dma_region_info(r);

    (void)ctx;
    pthread_mutex_lock(&ev_lock);
    if (nr_unmap_log < sizeof(unmap_log) / sizeof(unmap_log[0]))
        unmap_log[nr_unmap_log++] = (struct unmap_ev){
            info->iova, info->size, why };
    pthread_mutex_unlock(&ev_lock);
    if ((unsigned)why < NR_REASONS)
        atomic_fetch_add(&by_reason[why], 1);
    atomic_fetch_add(&nr_unmaps, 1);
    if (unmap_hook != NULL)
        unmap_hook(r, why);
}

static enum mu_overlap_policy overlap_cb(mu_ctx_t *ctx,
                                         const struct mu_dma_info *incoming,
                                         mu_dma_region_t *const *old, size_t n)
{
    (void)ctx;
    pthread_mutex_lock(&ev_lock);
    ov_last.incoming = *incoming;
    ov_last.n = n;
    for (size_t i = 0; i < n && i < 8; i++) {
        ov_last.old_iova[i] = mu_dma_region_info(old[i])->iova;
        ov_last.old_size[i] = mu_dma_region_info(old[i])->size;
    }
    pthread_mutex_unlock(&ev_lock);
    atomic_fetch_add(&nr_overlap_calls, 1);
    return (enum mu_overlap_policy)atomic_load(&ov_answer);
}

/*
 * BAR0 is the device's doorbell for DMA from the context thread: writing
 * 1 (DMA write) or 2 (DMA read) at offset 0 starts bar_job from inside the
 * region callback, on the context thread: an asynchronous request, whose
 * fd-less pieces the client serves while it waits for its next reply.  A
 * request refused at once is the REGION_WRITE's errno; the outcome of one
 * taken is read at offset 4: 1 while it runs, else 0 and the request's
 * status at offset 8.  Writing 3 sets the idle limit to bar_job.len ms:
 * that limit may change while serving, but only from the context thread.
 * Writing 4 does bar_job with the blocking mu_dma_read(): its errno is the
 * REGION_WRITE's.
 */
enum { BAR_DMA_WRITE = 1, BAR_DMA_READ = 2, BAR_SET_IDLE = 3,
       BAR_DMA_READ_BLOCKING = 4 };
static struct {
    uint64_t iova;
    uint8_t *buf;
    size_t len;
    int32_t busy, status;       /* context thread */
} bar_job;

static void bar_job_done(mu_ctx_t *ctx, void *arg, int status)
{
    (void)ctx;
    assert_ptr_equal(arg, &bar_job);
    assert_int_equal(bar_job.busy, 1);
    bar_job.busy = 0;
    bar_job.status = status;
}

static ssize_t bar0_access(mu_ctx_t *ctx, void *buf, size_t count,
                           uint64_t offset, bool is_write)
{
    uint32_t cmd;
    int rc;

    if (!is_write) {
        memset(buf, 0, count);
        if (offset == 4 && count == 8)
            memcpy(buf, &bar_job.busy, 8);
        return (ssize_t)count;
    }
    if (offset != 0 || count != sizeof(cmd))
        return -EINVAL;
    memcpy(&cmd, buf, sizeof(cmd));
    if ((cmd == BAR_DMA_WRITE || cmd == BAR_DMA_READ) && bar_job.busy)
        rc = -EBUSY;
    else if (cmd == BAR_DMA_WRITE)
        rc = mu_dma_write_async(ctx, bar_job.iova, bar_job.buf, bar_job.len,
                                bar_job_done, &bar_job);
    else if (cmd == BAR_DMA_READ)
        rc = mu_dma_read_async(ctx, bar_job.iova, bar_job.buf, bar_job.len,
                               bar_job_done, &bar_job);
    else if (cmd == BAR_DMA_READ_BLOCKING)
        rc = mu_dma_read(ctx, bar_job.iova, bar_job.buf, bar_job.len);
    else if (cmd == BAR_SET_IDLE)
        rc = mu_ctx_set_limit(ctx, MU_LIMIT_DMA_IDLE_MS, bar_job.len);
    else
        rc = -EINVAL;
    if (rc == 0 && (cmd == BAR_DMA_WRITE || cmd == BAR_DMA_READ))
        bar_job.busy = 1;
    return rc < 0 ? rc : (ssize_t)count;
}

static int dev_setup(void **state)
{
    static const struct dev_cfg defaults;
    const struct dev_cfg *cfg = *state != NULL ? *state : &defaults;
    mu_ctx_t *ctx;
    int rc;

    atomic_store(&nr_maps, 0);
    atomic_store(&nr_unmaps, 0);
    atomic_store(&nr_refused, 0);
    atomic_store(&nr_overlap_calls, 0);
    for (unsigned i = 0; i < NR_REASONS; i++)
        atomic_store(&by_reason[i], 0);
    atomic_store(&ov_answer, MU_OVERLAP_REJECT);
    nr_unmap_log = 0;
    unmap_hook = NULL;
    memset(&dev, 0, sizeof(dev));

    if (inproc_create(&srv, "dma.sock", MU_DEV_PCI, NULL) < 0)
        return -1;
    ctx = srv.ctx;
    assert_int_equal(mu_ctx_set_log(ctx, log_cb, MU_LOG_INFO), 0);
    assert_int_equal(mu_dma_set_callbacks(ctx, map_cb, unmap_cb), 0);
    if (cfg->replace)
        assert_int_equal(mu_dma_set_overlap_policy(ctx, MU_OVERLAP_REPLACE), 0);
    if (cfg->overlap_cb)
        assert_int_equal(mu_dma_set_overlap_cb(ctx, overlap_cb), 0);
    if ((rc = mu_region_setup(ctx, MU_PCI_BAR0, 0x1000,
                              MU_REGION_RW | MU_REGION_MEM, bar0_access)) < 0 ||
        (rc = mu_ctx_set_limit(ctx, MU_LIMIT_DMA_MAPPED_BYTES,
                               cfg->mapped_budget)) < 0 ||
        (rc = mu_ctx_set_limit(ctx, MU_LIMIT_DMA_IDLE_MS, cfg->idle_ms)) < 0 ||
        (cfg->max_regions != 0 &&
         (rc = mu_ctx_set_limit(ctx, MU_LIMIT_DMA_REGIONS,
                                cfg->max_regions)) < 0) ||
        (cfg->recv_timeout_ms != 0 &&
         (rc = mu_ctx_set_limit(ctx, MU_LIMIT_RECV_TIMEOUT_MS,
                                cfg->recv_timeout_ms)) < 0)) {
        fprintf(stderr, "device setup: %s\n", strerror(-rc));
        return -1;
    }
    if (inproc_start(&srv) < 0)
        return -1;
    if (!cfg->no_client && (rc = client_connect(&dev.c, srv.sock)) < 0) {
        fprintf(stderr, "connect: %s\n", strerror(-rc));
        return -1;
    }
    return 0;
}

/*
 * Tear the device down with whatever is still mapped (the client's close
 * and the destroy each remove regions) and check the balance: one unmap
 * callback for every map callback, not one more.
 */
static int dev_teardown(void **state)
{
    unsigned maps, unmaps, sum = 0;

    (void)state;
    if (dev.c != NULL)
        muc_close(dev.c);
    dev.c = NULL;
    inproc_stop(&srv);
    maps = atomic_load(&nr_maps);
    unmaps = atomic_load(&nr_unmaps);
    for (unsigned i = 0; i < NR_REASONS; i++)
        sum += atomic_load(&by_reason[i]);
    if (maps != unmaps || sum != unmaps) {
        fprintf(stderr, "callbacks unbalanced: %u maps, %u unmaps "
                "(%u by reason)\n", maps, unmaps, sum);
        return -1;
    }
    return 0;
}

/* ---------------- helpers ---------------- */

static uint64_t now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void sleep_ms(unsigned ms)
{
    struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };

    nanosleep(&ts, NULL);
}

static void fill(uint8_t *p, size_t n, uint8_t seed)
{
    for (size_t i = 0; i < n; i++)
        p[i] = (uint8_t)(seed + i * 13 + (i >> 8));
}

/* A memfd of 'size' bytes with the client's own shared mapping of it. */
struct mem {
    int fd;
    uint8_t *p;
    size_t size;
};

static struct mem mem_new(size_t size, uint8_t seed)
{
    struct mem m = { .size = size };

    m.fd = memfd_create("guest", MFD_CLOEXEC | MFD_ALLOW_SEALING);
    assert_true(m.fd >= 0);
    assert_int_equal(ftruncate(m.fd, (off_t)size), 0);
    m.p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, m.fd, 0);
    assert_true(m.p != MAP_FAILED);
    fill(m.p, size, seed);
    return m;
}

static void mem_free(struct mem *m)
{
    if (m->p != NULL)
        munmap(m->p, m->size);
    if (m->fd >= 0)
        close(m->fd);
    m->p = NULL;
    m->fd = -1;
}

static struct mu_dma_stats stats(void)
{
    struct mu_dma_stats st;

    mu_dma_get_stats(srv.ctx, &st);
    return st;
}

static struct mu_dma_info map_info(void)
{
    struct mu_dma_info info;

    pthread_mutex_lock(&ev_lock);
    info = last_map;
    pthread_mutex_unlock(&ev_lock);
    return info;
}

/* Copies, so no assertion ever fails with ev_lock held. */
static struct ov_event overlap_event(void)
{
    struct ov_event e;

    pthread_mutex_lock(&ev_lock);
    e = ov_last;
    pthread_mutex_unlock(&ev_lock);
    return e;
}

static unsigned reason(enum mu_unmap_reason why)
{
    return atomic_load(&by_reason[why]);
}

static struct unmap_ev last_unmap(void)
{
    struct unmap_ev e = { 0, 0, NR_REASONS };

    pthread_mutex_lock(&ev_lock);
    if (nr_unmap_log > 0)
        e = unmap_log[nr_unmap_log - 1];
    pthread_mutex_unlock(&ev_lock);
    return e;
}

static unsigned unmap_log_len(void)
{
    unsigned n;

    pthread_mutex_lock(&ev_lock);
    n = nr_unmap_log;
    pthread_mutex_unlock(&ev_lock);
    return n;
}

static struct unmap_ev unmap_log_at(unsigned i)
{
    struct unmap_ev e;

    pthread_mutex_lock(&ev_lock);
    e = unmap_log[i];
    pthread_mutex_unlock(&ev_lock);
    return e;
}

/* The device reads one byte: 0..255, or the negative errno. */
static int dev_byte(uint64_t iova)
{
    uint8_t b;
    int rc = mu_dma_read(srv.ctx, iova, &b, 1);

    return rc < 0 ? rc : b;
}

/* The server must still serve this client after whatever came before. */
static void assert_serves(void)
{
    struct muc_device_info info;

    assert_int_equal(muc_device_info(dev.c, &info), 0);
    assert_int_equal(info.num_regions, 9);
}

struct thread_job {
    pthread_t th;
    atomic_bool done;
};

/* ---------------- fd-backed memory ---------------- */

/* A device thread: get, check, write through the mapping, put. */
struct sg_job {
    struct thread_job t;
    uint64_t iova;
    size_t len;
    const uint8_t *expect;      /* what the guest holds there */
    uint8_t seed;               /* what the device writes */
    int nr;                     /* mu_dma_get's result */
    bool matched;
};

static void *sg_thread(void *arg)
{
    struct sg_job *j = arg;
    mu_sg_t sg[4];

    j->nr = mu_dma_get(srv.ctx, j->iova, j->len, MU_DMA_READ | MU_DMA_WRITE,
                       sg, 4);
    if (j->nr == 1) {
        j->matched = sg[0].len == j->len &&
                     memcmp(sg[0].addr, j->expect, j->len) == 0;
        fill(sg[0].addr, j->len, j->seed);
        mu_dma_put(srv.ctx, sg, 1);
    }
    atomic_store(&j->t.done, true);
    return NULL;
}

static void test_fd_rw(void **state)
{
    const uint64_t iova = 0x100000, size = 0x10000, off = 0x8000;
    struct mem m = mem_new(0x20000, 1), ro = mem_new(0x4000, 2);
    uint8_t want[0x3000], buf[0x4000];
    struct sg_job j = { .iova = iova + 0x1000, .len = 0x2000, .seed = 77 };
    struct mu_dma_info info;
    mu_sg_t sg[2];

    (void)state;
    /* File offset 0x8000: iova maps to m.p + off. */
    assert_int_equal(muc_dma_map(dev.c, iova, size, m.fd, off, RW), 0);
    assert_int_equal(atomic_load(&nr_maps), 1);
    info = map_info();
    assert_int_equal(info.iova, iova);
    assert_int_equal(info.size, size);
    assert_int_equal(info.fd_offset, off);
    assert_int_equal(info.prot, MU_DMA_READ | MU_DMA_WRITE);
    assert_true(info.has_fd);

    /* Device thread: sees the guest's bytes, its writes reach the guest. */
    memcpy(want, m.p + off + 0x1000, 0x2000);
    j.expect = want;
    assert_int_equal(pthread_create(&j.t.th, NULL, sg_thread, &j), 0);
    pthread_join(j.t.th, NULL);
    assert_int_equal(j.nr, 1);
    assert_true(j.matched);
    fill(want, 0x2000, 77);
    assert_memory_equal(m.p + off + 0x1000, want, 0x2000);
    /* Bytes around the range are untouched. */
    fill(buf, 0x1000, 1);
    assert_memory_equal(m.p, buf, 0x1000);

    /* Test thread: copies both ways, unaligned. */
    fill(want, 0x1801, 99);
    assert_int_equal(mu_dma_write(srv.ctx, iova + 0x3003, want, 0x1801), 0);
    assert_memory_equal(m.p + off + 0x3003, want, 0x1801);
    fill(m.p + off + 0xf000, 0x1000, 5);
    assert_int_equal(mu_dma_read(srv.ctx, iova + 0xf000, buf, 0x1000), 0);
    assert_memory_equal(buf, m.p + off + 0xf000, 0x1000);
    /* The last byte of the region, and one past it. */
    assert_int_equal(dev_byte(iova + size - 1), m.p[off + size - 1]);
    assert_int_equal(dev_byte(iova + size), -ENOENT);
    assert_int_equal(mu_dma_read(srv.ctx, iova + size - 1, buf, 2), -ENOENT);
    assert_int_equal(mu_dma_get(srv.ctx, iova, 0, MU_DMA_READ, sg, 2),
                     -EINVAL);

    /* A read-only region refuses device writes. */
    assert_int_equal(muc_dma_map(dev.c, 0x200000, 0x4000, ro.fd, 0,
                                 MUC_DMA_READ), 0);
    assert_int_equal(mu_dma_get(srv.ctx, 0x200000, 8, MU_DMA_WRITE, sg, 2),
                     -EACCES);
    assert_int_equal(mu_dma_write(srv.ctx, 0x200000, want, 8), -EACCES);
    assert_int_equal(mu_dma_read(srv.ctx, 0x200000, buf, 0x4000), 0);
    assert_memory_equal(buf, ro.p, 0x4000);

    assert_int_equal(muc_dma_unmap(dev.c, iova, size), 0);
    assert_int_equal(muc_dma_unmap(dev.c, 0x200000, 0x4000), 0);
    assert_int_equal(reason(MU_UNMAP_CLIENT), 2);
    assert_int_equal(dev_byte(iova), -ENOENT);
    assert_int_equal(dev_byte(0x200000), -ENOENT);
    assert_int_equal(stats().regions, 0);
    mem_free(&m);
    mem_free(&ro);
}

/* Two regions from two files, adjacent in iova space. */
static void test_cross_regions(void **state)
{
    const uint64_t a = 0x300000, b = a + 0x4000;
    struct mem ma = mem_new(0x4000, 10), mb = mem_new(0x4000, 20);
    uint8_t buf[0x2000], want[0x2000];
    mu_sg_t sg[2];
    int nr;

    (void)state;
    assert_int_equal(muc_dma_map(dev.c, a, 0x4000, ma.fd, 0, RW), 0);
    assert_int_equal(muc_dma_map(dev.c, b, 0x4000, mb.fd, 0, RW), 0);

    /* One entry per region; too few entries is -ENOSPC. */
    nr = mu_dma_get(srv.ctx, b - 0x100, 0x300, MU_DMA_READ, sg, 2);
    assert_int_equal(nr, 2);
    assert_int_equal(sg[0].len, 0x100);
    assert_int_equal(sg[1].len, 0x200);
    assert_int_equal(sg[0].iova, b - 0x100);
    assert_int_equal(sg[1].iova, b);
    assert_memory_equal(sg[0].addr, ma.p + 0x3f00, 0x100);
    assert_memory_equal(sg[1].addr, mb.p, 0x200);
    mu_dma_put(srv.ctx, sg, 2);
    assert_int_equal(mu_dma_get(srv.ctx, b - 0x100, 0x300, MU_DMA_READ,
                                sg, 1), -ENOSPC);

    /* Copies across the boundary land in both files. */
    fill(want, sizeof(want), 123);
    assert_int_equal(mu_dma_write(srv.ctx, b - 0x1000, want, 0x2000), 0);
    assert_memory_equal(ma.p + 0x3000, want, 0x1000);
    assert_memory_equal(mb.p, want + 0x1000, 0x1000);
    fill(ma.p + 0x3800, 0x800, 3);
    fill(mb.p, 0x800, 4);
    assert_int_equal(mu_dma_read(srv.ctx, b - 0x800, buf, 0x1000), 0);
    assert_memory_equal(buf, ma.p + 0x3800, 0x800);
    assert_memory_equal(buf + 0x800, mb.p, 0x800);

    /* Running off the end into a hole fails as a whole. */
    assert_int_equal(mu_dma_read(srv.ctx, b + 0x3800, buf, 0x1000), -ENOENT);
    assert_int_equal(mu_dma_get(srv.ctx, a - 1, 2, MU_DMA_READ, sg, 2),
                     -ENOENT);

    /* One DMA_UNMAP may take both, since it cuts neither. */
    assert_int_equal(muc_dma_unmap(dev.c, a, 0x8000), 0);
    assert_int_equal(reason(MU_UNMAP_CLIENT), 2);
    assert_int_equal(stats().regions, 0);
    mem_free(&ma);
    mem_free(&mb);
}

/* ---------------- memory without an fd ---------------- */

struct rw_job {
    struct thread_job t;
    uint64_t iova;
    uint8_t *buf;
    size_t len;
    bool write;
    int rc;
};

static void *rw_thread(void *arg)
{
    struct rw_job *j = arg;

    j->rc = j->write ? mu_dma_write(srv.ctx, j->iova, j->buf, j->len)
                     : mu_dma_read(srv.ctx, j->iova, j->buf, j->len);
    atomic_store(&j->t.done, true);
    return NULL;
}

/* Run j on a device thread while the test thread serves the client. */
static int rw_served(struct rw_job *j)
{
    uint64_t deadline = now_ns() + 10000000000ull * (uint64_t)slow_factor();
    int rc = 0;

    atomic_store(&j->t.done, false);
    assert_int_equal(pthread_create(&j->t.th, NULL, rw_thread, j), 0);
    while (!atomic_load(&j->t.done) && now_ns() < deadline) {
        rc = muc_serve(dev.c, 10);
        if (rc < 0)
            break;
    }
    pthread_join(j->t.th, NULL);
    assert_true(rc >= 0);
    return j->rc;
}

static void test_fdless_device_thread(void **state)
{
    /* Bigger than the 1 MiB transfer limit, so it takes several messages. */
    const size_t size = (1u << 20) + 0x3000;
    const uint64_t iova = 0x40000000;
    uint8_t *guest = malloc(size), *buf = malloc(size);
    uint8_t ro_guest[0x1000];
    struct rw_job j = { .iova = iova + 0x10, .len = size - 0x20 };
    uint64_t served;
    mu_sg_t sg[1];

    (void)state;
    assert_non_null(guest);
    assert_non_null(buf);
    fill(guest, size, 50);
    assert_int_equal(muc_dma_map_mem(dev.c, iova, size, guest, RW), 0);
    assert_false(map_info().has_fd);
    /* Nothing to mmap: translation says so, the copy helpers cope. */
    assert_int_equal(mu_dma_get(srv.ctx, iova, 8, MU_DMA_READ, sg, 1),
                     -EFAULT);

    served = muc_dma_requests_served(dev.c);
    j.buf = buf;
    assert_int_equal(rw_served(&j), 0);
    assert_memory_equal(buf, guest + 0x10, size - 0x20);
    assert_true(muc_dma_requests_served(dev.c) >= served + 2);

    fill(buf, size, 51);
    j.write = true;
    assert_int_equal(rw_served(&j), 0);
    assert_memory_equal(guest + 0x10, buf, size - 0x20);
    fill(buf, 0x10, 50);
    assert_memory_equal(guest, buf, 0x10);  /* untouched before the range */

    /* A read-only fd-less region: refused locally, no message needed. */
    memset(ro_guest, 0x5a, sizeof(ro_guest));
    assert_int_equal(muc_dma_map_mem(dev.c, 0x50000000, sizeof(ro_guest),
                                     ro_guest, MUC_DMA_READ), 0);
    assert_int_equal(mu_dma_write(srv.ctx, 0x50000000, buf, 4), -EACCES);
    j = (struct rw_job){ .iova = 0x50000000 + 0xff0, .len = 0x10,
                         .buf = buf };
    assert_int_equal(rw_served(&j), 0);
    assert_memory_equal(buf, ro_guest, 0x10);

    assert_int_equal(muc_dma_unmap(dev.c, iova, size), 0);
    assert_int_equal(muc_dma_unmap(dev.c, 0x50000000, 0x1000), 0);
    assert_int_equal(reason(MU_UNMAP_CLIENT), 2);
    free(guest);
    free(buf);
}

/*
 * Run a BAR0 DMA command to its end: the request's status, or the
 * REGION_WRITE's errno when it was refused.  The client serves the
 * request's DMA_READ/DMA_WRITE while it waits for its replies.
 */
static int bar_dma(uint32_t cmd)
{
    int32_t st[2];
    int rc = muc_region_write(dev.c, MU_PCI_BAR0, 0, &cmd, 4);

    if (rc < 0)
        return rc;
    for (int i = 0; i < 1000; i++) {
        assert_int_equal(muc_region_read(dev.c, MU_PCI_BAR0, 4, st, 8), 0);
        if (st[0] == 0)
            return st[1];
        assert_true(muc_serve(dev.c, 10) >= 0);
    }
    fail_msg("the BAR0 DMA request never ended");
    return -ETIMEDOUT;
}

/*
 * DMA from a device callback: the context thread asks the client for
 * fd-less memory with a request and goes on serving; the client serves
 * the DMA_READ/DMA_WRITE while it waits for its next reply.  The blocking
 * copy would wait for itself there: it refuses (-EDEADLK).  Also a copy
 * that starts in fd memory and ends in fd-less memory.
 */
static void test_fdless_ctx_thread(void **state)
{
    const uint64_t a = 0x60000000, b = a + 0x4000;
    struct mem ma = mem_new(0x4000, 60);
    uint8_t guest[0x4000], buf[0x4000], want[0x4000];
    uint32_t cmd;

    (void)state;
    bar_job.busy = 0;
    fill(guest, sizeof(guest), 61);
    assert_int_equal(muc_dma_map(dev.c, a, 0x4000, ma.fd, 0, RW), 0);
    assert_int_equal(muc_dma_map_mem(dev.c, b, sizeof(guest), guest, RW), 0);

    fill(want, sizeof(want), 62);
    bar_job.iova = b + 0x100;
    bar_job.buf = want;
    bar_job.len = 0x2000;
    cmd = BAR_DMA_WRITE;
    assert_int_equal(bar_dma(cmd), 0);
    assert_memory_equal(guest + 0x100, want, 0x2000);

    memset(buf, 0, sizeof(buf));
    bar_job.iova = b + 0x3000;
    bar_job.buf = buf;
    bar_job.len = 0x1000;
    cmd = BAR_DMA_READ;
    assert_int_equal(bar_dma(cmd), 0);
    assert_memory_equal(buf, guest + 0x3000, 0x1000);

    /* fd memory, then fd-less memory, in one copy each way. */
    fill(want, sizeof(want), 63);
    bar_job.iova = b - 0x800;
    bar_job.buf = want;
    bar_job.len = 0x1000;
    cmd = BAR_DMA_WRITE;
    assert_int_equal(bar_dma(cmd), 0);
    assert_memory_equal(ma.p + 0x3800, want, 0x800);
    assert_memory_equal(guest, want + 0x800, 0x800);
    bar_job.buf = buf;
    cmd = BAR_DMA_READ;
    assert_int_equal(bar_dma(cmd), 0);
    assert_memory_equal(buf, want, 0x1000);

    /* An error from the DMA reaches the client as the reply's errno. */
    bar_job.iova = b + 0x4000;
    cmd = BAR_DMA_READ;
    assert_int_equal(bar_dma(cmd), -ENOENT);

    /* Blocking, on the context thread: fd memory is copied, memory that
     * needs the client refused at once (it would wait for itself). */
    bar_job.iova = a;
    cmd = BAR_DMA_READ_BLOCKING;
    assert_int_equal(muc_region_write(dev.c, MU_PCI_BAR0, 0, &cmd, 4), 0);
    assert_memory_equal(buf, ma.p, 0x1000);
    bar_job.iova = b;
    assert_int_equal(muc_region_write(dev.c, MU_PCI_BAR0, 0, &cmd, 4),
                     -EDEADLK);
    assert_serves();

    assert_int_equal(muc_dma_unmap_all(dev.c), 0);
    assert_int_equal(reason(MU_UNMAP_ALL), 2);
    mem_free(&ma);
}

/* ---------------- overlap ---------------- */

/*
 * Every way a new map [start, start + npg pages) can meet the base region
 * [BASE, BASE + 16 pages): the last two only touch it, which is not an
 * overlap.
 */
#define BASE 0x10000000ull
#define BASE_PAGES 16
static const struct shape {
    const char *name;
    int64_t start_pg, npg;
    bool overlaps;
} shapes[] = {
    { "inside", 4, 4, true },
    { "covering", -2, 20, true },
    { "left", -4, 8, true },
    { "right", 12, 8, true },
    { "identical", 0, BASE_PAGES, true },
    { "adjacent-left", -4, 4, false },
    { "adjacent-right", BASE_PAGES, 4, false },
};
#define NR_SHAPES (sizeof(shapes) / sizeof(shapes[0]))

static uint64_t shape_iova(const struct shape *s)
{
    return BASE + (uint64_t)(s->start_pg * (int64_t)PG);
}

static uint64_t shape_size(const struct shape *s)
{
    return (uint64_t)s->npg * PG;
}

/* A page of the shape's range outside the base region, or 0. */
static uint64_t shape_outside(const struct shape *s)
{
    if (s->start_pg < 0)
        return shape_iova(s);
    if (s->start_pg + s->npg > BASE_PAGES)
        return shape_iova(s) + shape_size(s) - PG;
    return 0;
}

static void test_overlap_reject(void **state)
{
    struct mem base = mem_new(BASE_PAGES * PG, 0), inc = mem_new(0x20 * PG, 0);
    struct mem side = mem_new(4 * PG, 0);

    (void)state;
    /* The socket transport delivers unmaps, so the default is REJECT. */
    assert_int_equal(mu_dma_get_overlap_policy(srv.ctx), MU_OVERLAP_REJECT);
    memset(base.p, 'A', base.size);
    memset(inc.p, 'B', inc.size);
    assert_int_equal(muc_dma_map(dev.c, BASE, base.size, base.fd, 0, RW), 0);

    for (size_t i = 0; i < NR_SHAPES; i++) {
        const struct shape *s = &shapes[i];
        unsigned maps = atomic_load(&nr_maps);
        struct mu_dma_stats before = stats(), after;
        uint64_t out = shape_outside(s);
        int rc;

        rc = muc_dma_map(dev.c, shape_iova(s), shape_size(s), inc.fd, 0, RW);
        after = stats();
        if (s->overlaps) {
            if (rc != -EEXIST)
                fail_msg("%s: map returned %d", s->name, rc);
            assert_int_equal(after.rejects, before.rejects + 1);
            assert_int_equal(atomic_load(&nr_maps), maps);
            assert_int_equal(after.regions, 1);
        } else {
            if (rc != 0)
                fail_msg("%s: map returned %d", s->name, rc);
            assert_int_equal(after.rejects, before.rejects);
            assert_int_equal(atomic_load(&nr_maps), maps + 1);
            assert_int_equal(after.regions, 2);
            assert_int_equal(dev_byte(out), 'B');
            assert_int_equal(muc_dma_unmap(dev.c, shape_iova(s),
                                           shape_size(s)), 0);
        }
        /* The table is as it was: the base holds its bytes, the rest of
         * the new range is unmapped. */
        assert_int_equal(dev_byte(BASE), 'A');
        assert_int_equal(dev_byte(BASE + base.size - 1), 'A');
        if (out != 0)
            assert_int_equal(dev_byte(out), -ENOENT);
    }
    assert_int_equal(atomic_load(&nr_unmaps), 2);     /* the two adjacent */

    /* A map overlapping two regions at once is refused as a whole. */
    assert_int_equal(muc_dma_map(dev.c, BASE + base.size, side.size, side.fd,
                                 0, RW), 0);
    assert_int_equal(muc_dma_map(dev.c, BASE + 8 * PG, 0x10 * PG, inc.fd, 0,
                                 RW), -EEXIST);
    assert_int_equal(stats().regions, 2);
    assert_int_equal(dev_byte(BASE + 8 * PG), 'A');
    assert_int_equal(atomic_load(&nr_overlap_calls), 0);   /* none set */
    assert_int_equal(muc_dma_unmap_all(dev.c), 0);
    assert_int_equal(reason(MU_UNMAP_ALL), 2);
    mem_free(&base);
    mem_free(&inc);
    mem_free(&side);
}

static void test_overlap_replace(void **state)
{
    struct mem base = mem_new(BASE_PAGES * PG, 0), inc = mem_new(0x20 * PG, 0);
    struct mem side = mem_new(4 * PG, 0);
    struct unmap_ev e;
    unsigned n;

    (void)state;
    assert_int_equal(mu_dma_get_overlap_policy(srv.ctx), MU_OVERLAP_REPLACE);
    memset(base.p, 'A', base.size);
    memset(inc.p, 'B', inc.size);

    for (size_t i = 0; i < NR_SHAPES; i++) {
        const struct shape *s = &shapes[i];
        unsigned overlaps = reason(MU_UNMAP_OVERLAP), clients;
        unsigned maps;
        uint64_t out = shape_outside(s);

        assert_int_equal(muc_dma_map(dev.c, BASE, base.size, base.fd, 0, RW),
                         0);
        assert_int_equal(dev_byte(BASE + 4 * PG), 'A');    /* faulted in */
        maps = atomic_load(&nr_maps);
        if (muc_dma_map(dev.c, shape_iova(s), shape_size(s), inc.fd, 0, RW))
            fail_msg("%s: map refused", s->name);
        assert_int_equal(atomic_load(&nr_maps), maps + 1);
        if (out != 0)
            assert_int_equal(dev_byte(out), 'B');
        if (s->overlaps) {
            /* The base went, with its own unmap callback, before the new
             * one was mapped. */
            assert_int_equal(reason(MU_UNMAP_OVERLAP), overlaps + 1);
            e = last_unmap();
            assert_int_equal(e.iova, BASE);
            assert_int_equal(e.size, base.size);
            assert_int_equal(e.reason, MU_UNMAP_OVERLAP);
            assert_int_equal(stats().regions, 1);
            assert_int_equal(dev_byte(shape_iova(s)), 'B');
            /* Base pages the new map does not cover are gone. */
            if (s->start_pg > 0)
                assert_int_equal(dev_byte(BASE), -ENOENT);
            if (s->start_pg + s->npg < BASE_PAGES)
                assert_int_equal(dev_byte(BASE + base.size - 1), -ENOENT);
        } else {
            assert_int_equal(reason(MU_UNMAP_OVERLAP), overlaps);
            assert_int_equal(stats().regions, 2);
            assert_int_equal(dev_byte(BASE), 'A');
            assert_int_equal(dev_byte(BASE + base.size - 1), 'A');
            assert_int_equal(muc_dma_unmap(dev.c, BASE, base.size), 0);
        }
        clients = reason(MU_UNMAP_CLIENT);
        assert_int_equal(muc_dma_unmap(dev.c, shape_iova(s), shape_size(s)),
                         0);
        assert_int_equal(reason(MU_UNMAP_CLIENT), clients + 1);
        assert_int_equal(stats().regions, 0);
    }
    assert_int_equal(reason(MU_UNMAP_OVERLAP), 5);

    /* One map replacing two regions: both get their callback. */
    assert_int_equal(muc_dma_map(dev.c, BASE, base.size, base.fd, 0, RW), 0);
    assert_int_equal(muc_dma_map(dev.c, BASE + base.size, side.size, side.fd,
                                 0, RW), 0);
    n = unmap_log_len();
    assert_int_equal(muc_dma_map(dev.c, BASE + 8 * PG, 0x10 * PG, inc.fd, 0,
                                 RW), 0);
    assert_int_equal(reason(MU_UNMAP_OVERLAP), 7);
    assert_int_equal(unmap_log_len(), n + 2);
    e = unmap_log_at(n);
    assert_int_equal(e.iova, BASE);
    assert_int_equal(e.reason, MU_UNMAP_OVERLAP);
    e = unmap_log_at(n + 1);
    assert_int_equal(e.iova, BASE + base.size);
    assert_int_equal(e.size, side.size);
    assert_int_equal(e.reason, MU_UNMAP_OVERLAP);
    assert_int_equal(stats().regions, 1);
    assert_int_equal(dev_byte(BASE + 8 * PG), 'B');
    assert_int_equal(dev_byte(BASE), -ENOENT);
    assert_int_equal(atomic_load(&nr_overlap_calls), 0);
    mem_free(&base);
    mem_free(&inc);
    mem_free(&side);
    /* The last region goes with the client, in the teardown's balance. */
}

static void test_overlap_callback(void **state)
{
    struct mem base = mem_new(BASE_PAGES * PG, 0), inc = mem_new(0x20 * PG, 0);
    struct mem side = mem_new(4 * PG, 0);
    struct ov_event ev;
    unsigned calls = 0;

    (void)state;
    memset(base.p, 'A', base.size);
    memset(inc.p, 'B', inc.size);
    for (size_t i = 0; i < NR_SHAPES; i++) {
        const struct shape *s = &shapes[i];
        /* The callback decides per event: alternate. */
        enum mu_overlap_policy p = i % 2 ? MU_OVERLAP_REPLACE
                                         : MU_OVERLAP_REJECT;
        unsigned overlaps = reason(MU_UNMAP_OVERLAP);
        int rc;

        assert_int_equal(muc_dma_map(dev.c, BASE, base.size, base.fd, 0, RW),
                         0);
        atomic_store(&ov_answer, p);
        rc = muc_dma_map(dev.c, shape_iova(s), shape_size(s), inc.fd, 0, RW);
        if (!s->overlaps) {
            /* Touching is not overlapping: no question asked. */
            assert_int_equal(rc, 0);
            assert_int_equal(atomic_load(&nr_overlap_calls), calls);
            assert_int_equal(stats().regions, 2);
            assert_int_equal(muc_dma_unmap_all(dev.c), 0);
            continue;
        }
        assert_int_equal(atomic_load(&nr_overlap_calls), ++calls);
        ev = overlap_event();
        assert_int_equal(ev.incoming.iova, shape_iova(s));
        assert_int_equal(ev.incoming.size, shape_size(s));
        assert_true(ev.incoming.has_fd);
        assert_int_equal(ev.n, 1);
        assert_int_equal(ev.old_iova[0], BASE);
        assert_int_equal(ev.old_size[0], base.size);
        if (p == MU_OVERLAP_REJECT) {
            assert_int_equal(rc, -EEXIST);
            assert_int_equal(reason(MU_UNMAP_OVERLAP), overlaps);
            assert_int_equal(dev_byte(BASE + 4 * PG), 'A');
        } else {
            assert_int_equal(rc, 0);
            assert_int_equal(reason(MU_UNMAP_OVERLAP), overlaps + 1);
            assert_int_equal(dev_byte(shape_iova(s)), 'B');
        }
        assert_int_equal(stats().regions, 1);
        assert_int_equal(muc_dma_unmap_all(dev.c), 0);
    }
    assert_int_equal(calls, 5);

    /* Two old regions: the callback sees both, in address order. */
    assert_int_equal(muc_dma_map(dev.c, BASE + base.size, side.size, side.fd,
                                 0, RW), 0);
    assert_int_equal(muc_dma_map(dev.c, BASE, base.size, base.fd, 0, RW), 0);
    atomic_store(&ov_answer, MU_OVERLAP_REPLACE);
    assert_int_equal(muc_dma_map(dev.c, BASE - PG, 0x20 * PG, inc.fd, 0, RW),
                     0);
    ev = overlap_event();
    assert_int_equal(ev.n, 2);
    assert_int_equal(ev.old_iova[0], BASE);
    assert_int_equal(ev.old_iova[1], BASE + base.size);
    assert_int_equal(ev.old_size[1], side.size);
    assert_int_equal(stats().regions, 1);
    mem_free(&base);
    mem_free(&inc);
    mem_free(&side);
}

/* ---------------- DMA_UNMAP rules ---------------- */

static void test_unmap_rules(void **state)
{
    const uint64_t a = 0x800000, size = 0x10000;
    struct mem m = mem_new(0x20000, 0);

    (void)state;
    assert_int_equal(muc_dma_map(dev.c, a, size, m.fd, 0, RW), 0);
    assert_int_equal(muc_dma_map(dev.c, a + 0x20000, size, m.fd, 0x10000, RW),
                     0);

    /* Cutting a region is refused, whichever part: nothing goes. */
    assert_int_equal(muc_dma_unmap(dev.c, a, size / 2), -EINVAL);
    assert_int_equal(muc_dma_unmap(dev.c, a + PG, size - PG), -EINVAL);
    assert_int_equal(muc_dma_unmap(dev.c, a - PG, 2 * PG), -EINVAL);
    /* ...even when the range also holds a whole region. */
    assert_int_equal(muc_dma_unmap(dev.c, a, 0x20000 + PG), -EINVAL);
    assert_int_equal(atomic_load(&nr_unmaps), 0);
    assert_int_equal(stats().regions, 2);
    assert_int_equal(dev_byte(a), m.p[0]);
    assert_int_equal(dev_byte(a + 0x20000 + size - 1), m.p[0x1ffff]);

    /* A range with nothing mapped: success, as the kernel does. */
    assert_int_equal(muc_dma_unmap(dev.c, a + size, 0x10000), 0);
    assert_int_equal(muc_dma_unmap(dev.c, 0xf00000000ull, PG), 0);
    assert_int_equal(atomic_load(&nr_unmaps), 0);
    /* Malformed: zero size, wrapping. */
    assert_int_equal(muc_dma_unmap(dev.c, a, 0), -EINVAL);
    assert_int_equal(muc_dma_unmap(dev.c, UINT64_MAX - PG + 1, 2 * PG),
                     -EINVAL);
    assert_int_equal(stats().regions, 2);

    /* A range holding the region with room to spare takes it. */
    assert_int_equal(muc_dma_unmap(dev.c, a - PG, size + 2 * PG), 0);
    assert_int_equal(reason(MU_UNMAP_CLIENT), 1);
    assert_int_equal(dev_byte(a), -ENOENT);

    /* Unmap-all: everything, each with its reason. */
    assert_int_equal(muc_dma_map(dev.c, a, PG, m.fd, 0, RW), 0);
    assert_int_equal(muc_dma_map(dev.c, a + 2 * PG, PG, m.fd, 0, RW), 0);
    assert_int_equal(stats().regions, 3);
    assert_int_equal(muc_dma_unmap_all(dev.c), 0);
    assert_int_equal(reason(MU_UNMAP_ALL), 3);
    assert_int_equal(stats().regions, 0);
    assert_int_equal(muc_dma_unmap_all(dev.c), 0);     /* empty: fine */
    assert_int_equal(reason(MU_UNMAP_ALL), 3);
    mem_free(&m);
}

/* ---------------- malformed maps ---------------- */

/* Each is refused with EINVAL (EPERM: the device's own refusal). */
static const struct bad_map {
    const char *what;
    uint64_t iova, size, offset;
    unsigned prot;
    int which;      /* 0 memfd, 1 pipe, 2 socket, 3 rdonly, 4 sealed,
                       5 directory */
} bad[] = {
    { "unaligned iova", 0x1000001, PG, 0, RW, 0 },
    { "unaligned size", 0x1000000, PG + 1, 0, RW, 0 },
    { "unaligned offset", 0x1000000, PG, 0x10, RW, 0 },
    { "zero size", 0x1000000, 0, 0, RW, 0 },
    { "wraps past 2^64", UINT64_MAX - PG + 1, 2 * PG, 0, RW, 0 },
    { "no access", 0x1000000, PG, 0, 0, 0 },
    { "pipe", 0x1000000, PG, 0, MUC_DMA_READ, 1 },
    { "directory", 0x1000000, PG, 0, MUC_DMA_READ, 5 },
    { "socket", 0x1000000, PG, 0, MUC_DMA_READ, 2 },
    { "file too small", 0x1000000, 0x8000, 0, RW, 0 },
    { "offset past the end", 0x1000000, PG, 0x4000, RW, 0 },
    { "offset+size past the end", 0x1000000, 0x2000, 0x3000, RW, 0 },
    { "offset+size wraps", 0x1000000, 0x2000, UINT64_MAX - PG + 1, RW, 0 },
    { "writable map of a read-only fd", 0x1000000, PG, 0, RW, 3 },
    { "writable map of a sealed memfd", 0x1000000, PG, 0, RW, 4 },
    { "refused by the device", REFUSE_IOVA, PG, 0, RW, 0 },
};

static void test_bad_maps(void **state)
{
    struct mem m = mem_new(0x4000, 0), sealed = mem_new(0x4000, 9);
    const uint64_t top = UINT64_MAX - PG + 1;
    struct vfu_dma_map d = { sizeof(d), VFU_DMA_FLAG_READ, 0, 0x1000000, PG };
    int pfd[2], sv[2], rdonly, dir, fds[2], base_fds;
    uint8_t sealed_last;
    char path[64];

    (void)state;
    assert_int_equal(pipe2(pfd, O_CLOEXEC), 0);
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    snprintf(path, sizeof(path), "/proc/self/fd/%d", m.fd);
    rdonly = open(path, O_RDONLY | O_CLOEXEC);
    assert_true(rdonly >= 0);
    dir = open("/", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    assert_true(dir >= 0);
    /* F_SEAL_WRITE needs no writable shared mapping: drop ours first. */
    sealed_last = sealed.p[0x3fff];
    munmap(sealed.p, sealed.size);
    sealed.p = NULL;
    assert_int_equal(fcntl(sealed.fd, F_ADD_SEALS, F_SEAL_WRITE), 0);
    base_fds = count_open_fds();

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        const int fdv[] = { m.fd, pfd[0], sv[0], rdonly, sealed.fd, dir };
        int rc = muc_dma_map(dev.c, bad[i].iova, bad[i].size, fdv[bad[i].which],
                             bad[i].offset, bad[i].prot);

        if (rc != (bad[i].iova == REFUSE_IOVA ? -EPERM : -EINVAL))
            fail_msg("%s: map returned %d", bad[i].what, rc);
        assert_int_equal(atomic_load(&nr_maps), 0);
        assert_int_equal(stats().regions, 0);
        assert_serves();
    }
    assert_int_equal(atomic_load(&nr_refused), 1);

    /* Raw messages the client library would not build. */
    fds[0] = fds[1] = m.fd;
    assert_int_equal(muc_request(dev.c, VFU_CMD_DMA_MAP, &d, sizeof(d), fds, 2,
                                 NULL, 0, NULL, NULL, 0, NULL), -EINVAL);
    d.addr = top;
    d.size = 2 * PG;
    assert_int_equal(muc_request(dev.c, VFU_CMD_DMA_MAP, &d, sizeof(d), NULL,
                                 0, NULL, 0, NULL, NULL, 0, NULL), -EINVAL);
    d.argsz = sizeof(d) - 1;
    d.size = PG;
    assert_int_equal(muc_request(dev.c, VFU_CMD_DMA_MAP, &d, sizeof(d), NULL,
                                 0, NULL, 0, NULL, NULL, 0, NULL), -EINVAL);
    assert_int_equal(atomic_load(&nr_maps), 0);

    /* Read-only maps of the read-only fd and of the sealed file are fine. */
    assert_int_equal(muc_dma_map(dev.c, 0x1000000, 0x4000, rdonly, 0,
                                 MUC_DMA_READ), 0);
    assert_int_equal(dev_byte(0x1000000 + 5), m.p[5]);
    assert_int_equal(muc_dma_map(dev.c, 0x2000000, 0x4000, sealed.fd, 0,
                                 MUC_DMA_READ), 0);
    assert_int_equal(dev_byte(0x2000000 + 0x3fff), sealed_last);
    /* The very top of the address space is a valid place. */
    assert_int_equal(muc_dma_map(dev.c, top, PG, m.fd, 0, RW), 0);
    assert_int_equal(dev_byte(UINT64_MAX), m.p[PG - 1]);
    {
        uint8_t two[2];

        assert_int_equal(mu_dma_read(srv.ctx, UINT64_MAX, two, 2), -EINVAL);
        assert_int_equal(mu_dma_read(srv.ctx, UINT64_MAX - 1, two, 2), 0);
        assert_memory_equal(two, m.p + PG - 2, 2);
    }
    assert_int_equal(muc_dma_unmap(dev.c, top, PG), 0);
    assert_int_equal(muc_dma_unmap_all(dev.c), 0);
    assert_int_equal(atomic_load(&nr_maps), 3);
    assert_int_equal(atomic_load(&nr_unmaps), 3);
    assert_serves();

    /* The server kept none of the fds it refused or released (but the
     * SIGBUS eventfd of the maps that went through, until the client
     * goes: harness.h). */
    assert_int_equal(wait_open_fds(base_fds + SERVER_FDS_DMA, 1000, 2000),
                     base_fds + SERVER_FDS_DMA);
    close(pfd[0]);
    close(pfd[1]);
    close(sv[0]);
    close(sv[1]);
    close(rdonly);
    close(dir);
    mem_free(&m);
    mem_free(&sealed);
}

static void test_region_limit(void **state)
{
    struct mem m = mem_new(0x4000, 0);

    (void)state;
    assert_int_equal(muc_server_caps(dev.c)->max_dma_maps, 2);
    assert_int_equal(muc_dma_map(dev.c, 0x10000, PG, m.fd, 0, RW), 0);
    assert_int_equal(muc_dma_map(dev.c, 0x20000, PG, m.fd, 0, RW), 0);
    assert_int_equal(muc_dma_map(dev.c, 0x30000, PG, m.fd, 0, RW), -ENOSPC);
    assert_int_equal(atomic_load(&nr_maps), 2);
    assert_int_equal(muc_dma_unmap(dev.c, 0x20000, PG), 0);
    assert_int_equal(muc_dma_map(dev.c, 0x30000, PG, m.fd, 0, RW), 0);
    mem_free(&m);
}

/* ---------------- disconnect ---------------- */

/* Mappings of our guest memfds left in the process (ours or the server's). */
static int guest_mappings(void)
{
    FILE *f = fopen("/proc/self/maps", "re");
    char line[512];
    int n = 0;

    if (f == NULL)
        return -1;
    while (fgets(line, sizeof(line), f) != NULL)
        n += strstr(line, "/memfd:guest") != NULL;
    fclose(f);
    return n;
}

static bool disconnect_done(void *arg)
{
    int base_fds = *(int *)arg;

    /* The count once the detach is over (harness.h), not on its way. */
    return !inproc_client_attached(&srv) &&
           reason(MU_UNMAP_DISCONNECT) == 6 && count_open_fds() == base_fds;
}

static void test_disconnect(void **state)
{
    uint8_t guest[0x2000];
    int base_fds = count_open_fds();
    struct mem m[5];
    mu_sg_t sg[1];

    (void)state;
    assert_true(base_fds > 0);
    assert_int_equal(client_connect(&dev.c, srv.sock), 0);
    for (int i = 0; i < 5; i++) {
        m[i] = mem_new(0x4000, (uint8_t)i);
        assert_int_equal(muc_dma_map(dev.c, 0x100000 * (uint64_t)(i + 1),
                                     0x4000, m[i].fd, 0, RW), 0);
    }
    assert_int_equal(muc_dma_map_mem(dev.c, 0x900000, sizeof(guest), guest,
                                     RW), 0);
    /* Some mapped, some not, and our own fds gone: the server's dups are
     * all that keep the files open. */
    assert_int_equal(dev_byte(0x100000), m[0].p[0]);
    assert_int_equal(dev_byte(0x300000 + 0x3fff), m[2].p[0x3fff]);
    assert_int_equal(stats().mapped_bytes, 0x8000);
    for (int i = 0; i < 5; i++)
        mem_free(&m[i]);
    assert_int_equal(guest_mappings(), 2);

    muc_close(dev.c);
    dev.c = NULL;
    if (!wait_until(disconnect_done, &base_fds, 2500, 2000))
        fail_msg("after disconnect: %u/6 unmap callbacks, %d fds (want %d)",
                 reason(MU_UNMAP_DISCONNECT), count_open_fds(), base_fds);
    assert_int_equal(atomic_load(&nr_unmaps), 6);
    assert_int_equal(stats().regions, 0);
    assert_int_equal(stats().mapped_bytes, 0);
    assert_int_equal(guest_mappings(), 0);
    assert_int_equal(mu_dma_get(srv.ctx, 0x100000, 1, MU_DMA_READ, sg, 1),
                     -ENOENT);

    /* The next client is served from a clean table. */
    assert_int_equal(client_connect(&dev.c, srv.sock), 0);
    assert_int_equal(muc_dma_map_mem(dev.c, 0x100000, sizeof(guest), guest,
                                     RW), 0);
    assert_int_equal(muc_dma_unmap(dev.c, 0x100000, sizeof(guest)), 0);
    assert_int_equal(reason(MU_UNMAP_CLIENT), 1);
}

/* ---------------- DMA_UNMAP waits for the device ---------------- */

#define HOLD_IOVA 0xa00000ull
#define HOLD_SIZE 0x4000ull
#define HOLD_MS 100

static struct {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    int stage;              /* 1: reference taken, 2: unmap callback ran */
    uint64_t t_cb, t_put;
    const uint8_t *expect;  /* the guest's bytes */
    unsigned reads, bad_reads;
    int get_rc, get_again_rc;
    enum mu_unmap_reason why;
} hold = { PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER };

static void hold_set_stage(int stage)
{
    pthread_mutex_lock(&hold.lock);
    hold.stage = stage;
    pthread_cond_broadcast(&hold.cond);
    pthread_mutex_unlock(&hold.lock);
}

static bool hold_wait_stage(int stage)
{
    struct timespec ts;
    int rc = 0;

    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += 10 * slow_factor();
    pthread_mutex_lock(&hold.lock);
    while (hold.stage < stage && rc == 0)
        rc = pthread_cond_timedwait(&hold.cond, &hold.lock, &ts);
    rc = hold.stage >= stage;
    pthread_mutex_unlock(&hold.lock);
    return rc;
}

/* The unmap callback only tells the device; it must not block. */
static void hold_unmap_hook(mu_dma_region_t *r, enum mu_unmap_reason why)
{
    if (mu_dma_region_info(r)->iova != HOLD_IOVA)
        return;
    hold.why = why;
    hold.t_cb = now_ns();
    hold_set_stage(2);
}

static void *holder(void *arg)
{
    mu_sg_t sg[1], again[1];
    uint64_t until;

    (void)arg;
    hold.get_rc = mu_dma_get(srv.ctx, HOLD_IOVA, HOLD_SIZE, MU_DMA_READ, sg,
                             1);
    if (hold.get_rc != 1) {
        hold_set_stage(3);
        return NULL;
    }
    hold_set_stage(1);
    if (!hold_wait_stage(2)) {
        mu_dma_put(srv.ctx, sg, 1);
        return NULL;
    }
    /* The region is out of the table: nobody can take a new reference. */
    hold.get_again_rc = mu_dma_get(srv.ctx, HOLD_IOVA, 8, MU_DMA_READ,
                                   again, 1);
    if (hold.get_again_rc > 0)
        mu_dma_put(srv.ctx, again, (unsigned)hold.get_again_rc);
    /* ...but ours still reads the guest's memory until we put it. */
    until = hold.t_cb + HOLD_MS * 1000000ull;
    do {
        hold.reads++;
        if (memcmp(sg[0].addr, hold.expect, HOLD_SIZE) != 0)
            hold.bad_reads++;
        sleep_ms(5);
    } while (now_ns() < until);
    hold.t_put = now_ns();
    mu_dma_put(srv.ctx, sg, 1);
    return NULL;
}

static void test_unmap_waits_for_put(void **state)
{
    struct mem m = mem_new(HOLD_SIZE, 42);
    uint64_t t0, t1;
    pthread_t th;
    int rc;

    (void)state;
    hold.stage = 0;
    hold.reads = hold.bad_reads = 0;
    hold.get_again_rc = 0;
    hold.expect = m.p;
    unmap_hook = hold_unmap_hook;
    assert_int_equal(muc_dma_map(dev.c, HOLD_IOVA, HOLD_SIZE, m.fd, 0,
                                 MUC_DMA_READ), 0);
    assert_int_equal(pthread_create(&th, NULL, holder, NULL), 0);
    assert_true(hold_wait_stage(1));
    assert_int_equal(hold.get_rc, 1);

    t0 = now_ns();
    rc = muc_dma_unmap(dev.c, HOLD_IOVA, HOLD_SIZE);
    t1 = now_ns();
    pthread_join(th, NULL);
    assert_int_equal(rc, 0);
    assert_int_equal(hold.why, MU_UNMAP_CLIENT);
    assert_int_equal(hold.get_again_rc, -ENOENT);
    /* The reply came only after the device let go. */
    assert_true(hold.t_put != 0);
    if (t1 < hold.t_put)
        fail_msg("DMA_UNMAP returned %.1f ms before the put",
                 (double)(hold.t_put - t1) / 1e6);
    assert_true(t1 - t0 >= HOLD_MS * 1000000ull);
    assert_true(hold.t_cb >= t0);
    /* And the memory stayed readable all along. */
    assert_true(hold.reads >= 2);
    assert_int_equal(hold.bad_reads, 0);
    assert_int_equal(stats().regions, 0);
    unmap_hook = NULL;
    mem_free(&m);
}

/* ---------------- dirty page logging ---------------- */

struct dirty_job {
    struct thread_job t;
    uint64_t a, b;
    int rc[6];
};

static void *dirty_writer(void *arg)
{
    struct dirty_job *j = arg;
    uint8_t buf[0x100];
    mu_sg_t sg[2];
    int nr;

    memset(buf, 0xee, sizeof(buf));
    /* Pages 1 and 2, through a mapping taken for writing. */
    nr = mu_dma_get(srv.ctx, j->a + 0x1800, 0x1000, MU_DMA_WRITE, sg, 2);
    j->rc[0] = nr;
    if (nr > 0) {
        memset(sg[0].addr, 0xdd, sg[0].len);
        mu_dma_put(srv.ctx, sg, (unsigned)nr);
    }
    /* Page 5, copied. */
    j->rc[1] = mu_dma_write(srv.ctx, j->a + 5 * PG + 10, buf, 100);
    /* Page 7 is only read: not dirty. */
    nr = mu_dma_get(srv.ctx, j->a + 7 * PG, 0x100, MU_DMA_READ, sg, 2);
    j->rc[2] = nr;
    if (nr > 0)
        mu_dma_put(srv.ctx, sg, (unsigned)nr);
    /* Page 9, written by other means and declared. */
    j->rc[3] = mu_dma_mark_dirty(srv.ctx, j->a + 9 * PG + 0xfff, 1);
    /* Pages 15 and 16 (the fd-less region's first), in one copy. */
    j->rc[4] = mu_dma_write(srv.ctx, j->b - 0x80, buf, 0x100);
    /* Page 19, the fd-less region's fourth. */
    j->rc[5] = mu_dma_write(srv.ctx, j->b + 3 * PG, buf, 8);
    atomic_store(&j->t.done, true);
    return NULL;
}

static void run_dirty_writer(struct dirty_job *j)
{
    uint64_t deadline = now_ns() + 10000000000ull * (uint64_t)slow_factor();

    atomic_store(&j->t.done, false);
    assert_int_equal(pthread_create(&j->t.th, NULL, dirty_writer, j), 0);
    while (!atomic_load(&j->t.done) && now_ns() < deadline)
        assert_true(muc_serve(dev.c, 10) >= 0);
    pthread_join(j->t.th, NULL);
    assert_int_equal(j->rc[0], 1);
    assert_int_equal(j->rc[1], 0);
    assert_int_equal(j->rc[2], 1);
    assert_int_equal(j->rc[3], 0);
    assert_int_equal(j->rc[4], 0);
    assert_int_equal(j->rc[5], 0);
}

static void test_dirty_logging(void **state)
{
    const uint64_t a = 0x40000000, b = a + 16 * PG;
    struct mem m = mem_new(16 * PG, 0);
    static uint8_t guest[16 * PG];
    struct dirty_job j = { .a = a, .b = b };
    uint64_t bits[1], lo = a, len = 8 * PG;
    uint8_t ee[0x80];
    const uint64_t expect = (1ull << 1) | (1ull << 2) | (1ull << 5) |
                            (1ull << 9) | (1ull << 15) | (1ull << 16) |
                            (1ull << 19);

    (void)state;
    assert_int_equal(muc_dma_map(dev.c, a, 16 * PG, m.fd, 0, RW), 0);
    assert_int_equal(muc_dma_map_mem(dev.c, b, sizeof(guest), guest, RW), 0);
    /* Not logging: reports are refused, writes are not recorded. */
    assert_int_equal(muc_dirty_report(dev.c, a, 32 * PG, PG, bits,
                                      sizeof(bits)), -EINVAL);
    run_dirty_writer(&j);

    assert_int_equal(muc_dirty_start(dev.c, PG, NULL, NULL, 0), 0);
    assert_int_equal(muc_dirty_start(dev.c, PG, NULL, NULL, 0), -EBUSY);
    bits[0] = ~0ull;
    assert_int_equal(muc_dirty_report(dev.c, a, 32 * PG, PG, bits,
                                      sizeof(bits)), 0);
    assert_int_equal(bits[0], 0);   /* writes before the start do not count */

    run_dirty_writer(&j);
    memset(ee, 0xee, sizeof(ee));
    assert_memory_equal(guest, ee, sizeof(ee));
    bits[0] = 0;
    assert_int_equal(muc_dirty_report(dev.c, a, 32 * PG, PG, bits,
                                      sizeof(bits)), 0);
    if (bits[0] != expect)
        fail_msg("dirty bits %#llx, want %#llx", (unsigned long long)bits[0],
                 (unsigned long long)expect);
    /* Reported once: the report cleared them. */
    assert_int_equal(muc_dirty_report(dev.c, a, 32 * PG, PG, bits,
                                      sizeof(bits)), 0);
    assert_int_equal(bits[0], 0);
    /* A report of a sub-range starts its bitmap at its own first page. */
    run_dirty_writer(&j);
    assert_int_equal(muc_dirty_report(dev.c, a + 4 * PG, 8 * PG, PG, bits,
                                      sizeof(bits)), 0);
    assert_int_equal(bits[0], (1ull << 1) | (1ull << 5));
    assert_int_equal(muc_dirty_stop(dev.c), 0);
    assert_int_equal(muc_dirty_report(dev.c, a, 32 * PG, PG, bits,
                                      sizeof(bits)), -EINVAL);

    /* Logging only pages 0..7 of the first region: the rest is not kept. */
    assert_int_equal(muc_dirty_start(dev.c, PG, &lo, &len, 1), 0);
    run_dirty_writer(&j);
    assert_int_equal(muc_dirty_report(dev.c, a, 32 * PG, PG, bits,
                                      sizeof(bits)), 0);
    assert_int_equal(bits[0], (1ull << 1) | (1ull << 2) | (1ull << 5));
    assert_int_equal(muc_dirty_stop(dev.c), 0);
    mem_free(&m);
}

/* ---------------- lazy mmap and eviction ---------------- */

#define LZ_SIZE 0x10000ull

/* Touch region i (of four, at (i + 1) MiB) from the device. */
static void touch(const struct mem *m, uint64_t i)
{
    assert_int_equal(dev_byte((i + 1) * 0x100000 + 5), m->p[i * LZ_SIZE + 5]);
}

static void assert_counts(uint64_t faults, uint64_t evictions)
{
    struct mu_dma_stats st = stats();

    if (st.faults != faults || st.evictions != evictions)
        fail_msg("%llu faults, %llu evictions; want %llu, %llu",
                 (unsigned long long)st.faults,
                 (unsigned long long)st.evictions,
                 (unsigned long long)faults, (unsigned long long)evictions);
}

/* Four regions of 64 KiB, a budget of two. */
static void test_lazy_and_budget(void **state)
{
    struct mem m = mem_new(4 * LZ_SIZE, 0);
    struct mu_dma_stats st;
    uint8_t v = 0x3c;
    mu_sg_t held[1];

    (void)state;
    for (uint64_t i = 0; i < 4; i++)
        assert_int_equal(muc_dma_map(dev.c, (i + 1) * 0x100000, LZ_SIZE, m.fd,
                                     i * LZ_SIZE, RW), 0);
    /* DMA_MAP maps nothing. */
    st = stats();
    assert_int_equal(st.regions, 4);
    assert_int_equal(st.mapped_bytes, 0);
    assert_counts(0, 0);

    /* First touch maps; later touches do not. */
    touch(&m, 0);
    assert_counts(1, 0);
    assert_int_equal(stats().mapped_bytes, LZ_SIZE);
    for (int i = 0; i < 10; i++)
        assert_int_equal(dev_byte(0x100000 + (uint64_t)i * PG),
                         m.p[(uint64_t)i * PG]);
    assert_counts(1, 0);
    assert_int_equal(mu_dma_write(srv.ctx, 0x200000 + 0x10, &v, 1), 0);
    assert_int_equal(m.p[LZ_SIZE + 0x10], 0x3c);
    assert_counts(2, 0);
    assert_int_equal(stats().mapped_bytes, 2 * LZ_SIZE);

    /* Over the budget, the region put least recently goes: touching 0
     * again makes 1 the one. */
    touch(&m, 0);
    touch(&m, 2);
    assert_counts(3, 1);
    assert_int_equal(stats().mapped_bytes, 2 * LZ_SIZE);
    touch(&m, 0);
    assert_counts(3, 1);
    /* Mapped again on demand; what the device wrote before the eviction
     * went to the file, so it is still there. */
    assert_int_equal(dev_byte(0x200000 + 0x10), 0x3c);
    assert_counts(4, 2);

    /* A region in use is never evicted, however old: hold 2 (faulting it
     * in evicts 0), then touch the others in an order where each touch
     * faults and evicts the one before. */
    assert_int_equal(mu_dma_get(srv.ctx, 0x300000, LZ_SIZE, MU_DMA_READ,
                                held, 1), 1);
    assert_counts(5, 3);
    touch(&m, 3);
    touch(&m, 0);
    touch(&m, 1);
    assert_counts(8, 6);
    assert_int_equal(stats().mapped_bytes, 2 * LZ_SIZE);
    m.p[2 * LZ_SIZE + 0x1234] = 0x77;   /* the client writes; still shared */
    assert_int_equal(((uint8_t *)held[0].addr)[0x1234], 0x77);
    assert_memory_equal(held[0].addr, m.p + 2 * LZ_SIZE, LZ_SIZE);
    mu_dma_put(srv.ctx, held, 1);

    /* Held while idle and mapped: at the head of the LRU, it is skipped
     * and the next one goes. */
    assert_int_equal(mu_dma_get(srv.ctx, 0x200000, LZ_SIZE, MU_DMA_READ,
                                held, 1), 1);
    assert_counts(8, 6);
    touch(&m, 3);
    assert_counts(9, 7);
    touch(&m, 1);                           /* still mapped */
    assert_counts(9, 7);
    touch(&m, 2);                           /* evicted for 3 */
    assert_counts(10, 8);
    assert_memory_equal(held[0].addr, m.p + LZ_SIZE, LZ_SIZE);
    mu_dma_put(srv.ctx, held, 1);
    assert_int_equal(stats().mapped_bytes, 2 * LZ_SIZE);

    assert_int_equal(muc_dma_unmap_all(dev.c), 0);
    assert_int_equal(stats().mapped_bytes, 0);
    mem_free(&m);
}

static bool idle_evicted(void *arg)
{
    struct mu_dma_stats st = stats();

    (void)arg;
    return st.evictions == 1 && st.mapped_bytes == 0;
}

static bool idle_evicted2(void *arg)
{
    struct mu_dma_stats st = stats();

    (void)arg;
    return st.evictions == 2 && st.mapped_bytes == 0;
}

static bool one_evicted(void *arg)
{
    (void)arg;
    return stats().evictions >= 1;
}

static void test_idle_eviction(void **state)
{
    struct mem m = mem_new(LZ_SIZE, 7), o = mem_new(LZ_SIZE, 9);
    mu_sg_t sg[1];

    (void)state;
    assert_int_equal(muc_dma_map(dev.c, 0x100000, LZ_SIZE, m.fd, 0, RW), 0);
    /* Held, it stays mapped past the idle limit... */
    assert_int_equal(mu_dma_get(srv.ctx, 0x100000, 8, MU_DMA_READ, sg, 1), 1);
    assert_int_equal(stats().mapped_bytes, LZ_SIZE);
    /* ...which the eviction of another region, used (and put) after it
     * was taken, shows has passed for it too, at that very tick. */
    assert_int_equal(muc_dma_map(dev.c, 0x400000, LZ_SIZE, o.fd, 0, RW), 0);
    assert_int_equal(dev_byte(0x400000 + 1), o.p[1]);
    assert_true(wait_until(one_evicted, NULL, 2500, 2000));
    assert_int_equal(stats().evictions, 1);
    assert_int_equal(stats().mapped_bytes, LZ_SIZE);
    assert_memory_equal(sg[0].addr, m.p, 8);
    assert_int_equal(muc_dma_unmap(dev.c, 0x400000, LZ_SIZE), 0);
    mem_free(&o);
    mu_dma_put(srv.ctx, sg, 1);
    /* ...and once idle the housekeeping timer drops it. */
    assert_true(wait_until(idle_evicted2, NULL, 2500, 2000));
    assert_int_equal(dev_byte(0x100000 + 2), m.p[2]);
    assert_int_equal(stats().faults, 3);
    mem_free(&m);
}

/*
 * An idle limit set while serving: a mapping in use until the moment the
 * limit is set must not be evicted before it has been idle that long, even
 * though it was faulted in long before; and it goes once it has been.
 */
static void test_idle_limit_set_later(void **state)
{
    struct mem m = mem_new(LZ_SIZE, 8);
    uint32_t cmd = BAR_SET_IDLE;
    uint64_t t0, t_used;

    (void)state;
    assert_int_equal(muc_dma_map(dev.c, 0x100000, LZ_SIZE, m.fd, 0, RW), 0);
    t0 = now_ns();
    do {
        assert_int_equal(dev_byte(0x100000 + 3), m.p[3]);
        t_used = now_ns();
        sleep_ms(10);
    } while (t_used - t0 < 300000000ull);
    assert_int_equal(stats().faults, 1);
    bar_job.len = 200;
    assert_int_equal(muc_region_write(dev.c, MU_PCI_BAR0, 0, &cmd, 4), 0);
    /* Evicted, and not before 200 ms from its last use (t_used is
     * after it: the server's age starts later still). */
    assert_true(wait_until(idle_evicted, NULL, 2500, 2000));
    if (now_ns() - t_used < 200000000ull)
        fail_msg("evicted after %.0f ms idle, under the 200 ms limit",
                 (double)(now_ns() - t_used) / 1e6);
    assert_int_equal(dev_byte(0x100000 + 2), m.p[2]);
    assert_int_equal(stats().faults, 2);
    mem_free(&m);
}

/* Sanitizers and valgrind reserve vast address space: no RLIMIT_AS there. */
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define UNDER_SANITIZER 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer) || \
    __has_feature(memory_sanitizer)
#define UNDER_SANITIZER 1
#endif
#endif

static uint64_t vm_size(void)
{
    FILE *f = fopen("/proc/self/statm", "re");
    unsigned long pages = 0;

    if (f != NULL) {
        if (fscanf(f, "%lu", &pages) != 1)
            pages = 0;
        fclose(f);
    }
    return (uint64_t)pages * (uint64_t)sysconf(_SC_PAGESIZE);
}

/*
 * mmap failing with ENOMEM (address space here; vm.max_map_count with many
 * small regions) while idle mappings could go: the translation evicts them
 * and succeeds, as the budget would have.  Eight 64 MiB regions under an
 * address-space limit with room for three and a half.
 */
static void test_enomem_evicts_idle(void **state)
{
    const uint64_t size = 64ull << 20;
    int fd = memfd_create("guest", MFD_CLOEXEC);
    struct rlimit old, rl;
    struct mu_dma_stats st;
    int rc[8];
    mu_sg_t sg[1];

    (void)state;
#ifdef UNDER_SANITIZER
    skip();
#endif
    if (under_valgrind())
        skip();
    assert_true(fd >= 0);
    assert_int_equal(ftruncate(fd, (off_t)(8 * size)), 0);     /* sparse */
    for (uint64_t i = 0; i < 8; i++)
        assert_int_equal(muc_dma_map(dev.c, (i + 1) << 32, size, fd,
                                     i * size, RW), 0);
    close(fd);
    assert_int_equal(getrlimit(RLIMIT_AS, &old), 0);
    rl = old;
    rl.rlim_cur = vm_size() + 3 * size + size / 2;
    assert_int_equal(setrlimit(RLIMIT_AS, &rl), 0);
    /* Nothing here may allocate much, and no assertion until it is over. */
    for (uint64_t i = 0; i < 8; i++) {
        rc[i] = mu_dma_get(srv.ctx, ((i + 1) << 32) + 8, 8, MU_DMA_READ, sg,
                           1);
        if (rc[i] == 1)
            mu_dma_put(srv.ctx, sg, 1);
    }
    setrlimit(RLIMIT_AS, &old);
    for (int i = 0; i < 8; i++) {
        if (rc[i] != 1)
            fail_msg("region %d: %s", i, strerror(-rc[i]));
    }
    st = stats();
    assert_int_equal(st.faults, 8);
    assert_true(st.evictions >= 5);
    assert_true(st.mapped_bytes <= 3 * size);
}

int main(void)
{
    static const struct dev_cfg replace = { .replace = true };
    static const struct dev_cfg with_cb = { .overlap_cb = true };
    static const struct dev_cfg no_client = { .no_client = true };
    static const struct dev_cfg limited = { .max_regions = 2 };
    static const struct dev_cfg budget = { .mapped_budget = 2 * LZ_SIZE };
    static const struct dev_cfg idle = { .idle_ms = 50 };
    /* A short receive timeout makes the housekeeping tick every 25 ms. */
    static const struct dev_cfg fast_tick = { .recv_timeout_ms = 100 };
#define T(f) cmocka_unit_test_setup_teardown(f, dev_setup, dev_teardown)
#define TC(f, cfg) cmocka_unit_test_prestate_setup_teardown(f, dev_setup, \
                                                            dev_teardown, \
                                                            (void *)&(cfg))
    const struct CMUnitTest tests[] = {
        T(test_fd_rw),
        T(test_cross_regions),
        T(test_fdless_device_thread),
        T(test_fdless_ctx_thread),
        T(test_overlap_reject),
        TC(test_overlap_replace, replace),
        TC(test_overlap_callback, with_cb),
        T(test_unmap_rules),
        T(test_bad_maps),
        TC(test_region_limit, limited),
        TC(test_disconnect, no_client),
        T(test_unmap_waits_for_put),
        T(test_dirty_logging),
        TC(test_lazy_and_budget, budget),
        TC(test_idle_eviction, idle),
        TC(test_idle_limit_set_later, fast_tick),
        T(test_enomem_evicts_idle),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
