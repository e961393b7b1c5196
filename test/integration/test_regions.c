/*
 * test_regions.c - regions end to end: an in-process device (a thread
 * running mu_ctx_run on a socket in a private directory) driven over the
 * real socket by the client library.
 *
 *  - BAR0: 16 KiB memory BAR backed by a memfd, mmappable as a whole
 *    (mu_region_set_mmap with no areas), no callback;
 *  - BAR2: 16 KiB 64-bit memory BAR with a callback, backed by another
 *    memfd at file offset 64 KiB of which only the second page may be
 *    mmapped (a sparse area); two ioeventfds on it, one with datamatch.
 *
 * Covered: GET_REGION_INFO (flags, size, mmap offset, the fd being the
 * device's, the sparse areas), the argsz dance for region info and for
 * GET_REGION_IO_FDS, client mmaps seeing the device's writes through its
 * own mapping and the other way round, REGION_READ/REGION_WRITE on
 * mmappable areas going to the same bytes, everything else of BAR2 going to
 * the callback (counted), accesses straddling the two refused, ioeventfds
 * listed with their fields and reaching the device without a message, a
 * client draining an ioeventfd behind the server's back (which must not
 * stall it), and no fd left behind by a client.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"
#include "muser.h"
#include "muser-client.h"
#include "wire.h"

#define PG 0x1000u
#define BAR0_SIZE 0x4000u
#define BAR2_SIZE 0x4000u
#define BAR2_FD_OFF 0x10000u       /* where BAR2 starts in its memfd */
#define SPARSE_OFF 0x1000u
#define SPARSE_SIZE 0x1000u
#define IOEV_DM_OFF 0x10u           /* 4 bytes, datamatch */
#define IOEV_DM_DATA 0xabcdu
#define IOEV_ANY_OFF 0x20u          /* any size, no datamatch */
#define IOEV_MM_OFF 0x100u          /* BAR0 (mmappable), 4 bytes, datamatch */
#define IOEV_MM_DATA 0x5a5au

#define RW_MMAP (MUC_REGION_READ | MUC_REGION_WRITE | MUC_REGION_MMAP)

static struct inproc srv;      /* the device */
static struct {
    int memfd0, memfd2;
    uint8_t *map0;      /* the device's own view of BAR0 */
    uint8_t *map2;      /* ... and of BAR2 (the whole 16 KiB) */
} dev;

/*
 * BAR2 registers outside the sparse area.  The callback runs on the
 * context thread; the test reads what it did only after the reply to the
 * access came back.
 */
static uint8_t bar2_regs[BAR2_SIZE];
static unsigned bar2_calls;
static uint64_t bar2_last_off;
static bool bar2_last_write;
/* ioeventfd callback counts, by opaque value (1: datamatch, 2: any,
 * 3: the one in mmappable BAR0). */
static unsigned ioev_calls[4];

static ssize_t bar2_access(mu_ctx_t *ctx, void *buf, size_t count,
                           uint64_t offset, bool is_write)
{
    (void)ctx;
    if (is_write)
        memcpy(bar2_regs + offset, buf, count);
    else
        memcpy(buf, bar2_regs + offset, count);
    bar2_last_off = offset;
    bar2_last_write = is_write;
    __atomic_add_fetch(&bar2_calls, 1, __ATOMIC_SEQ_CST);
    return (ssize_t)count;
}

/*
 * A gate that holds the context thread inside the callback of ioeventfd 1,
 * so a test can arrange what the thread finds when it goes on.
 */
static struct {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    unsigned hold;      /* how many callbacks of ioeventfd 1 to hold */
    unsigned entered;   /* held callbacks that have started */
    unsigned released;  /* held callbacks allowed to return */
} gate = { PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0, 0 };

static void ioev_cb(mu_ctx_t *ctx, uint64_t opaque)
{
    (void)ctx;
    if (opaque < 4)
        __atomic_add_fetch(&ioev_calls[opaque], 1, __ATOMIC_SEQ_CST);
    if (opaque != 1)
        return;
    pthread_mutex_lock(&gate.lock);
    if (gate.entered < gate.hold) {
        unsigned me = ++gate.entered;

        pthread_cond_broadcast(&gate.cond);
        while (gate.released < me)
            pthread_cond_wait(&gate.cond, &gate.lock);
    }
    pthread_mutex_unlock(&gate.lock);
}

/* Wait (bounded) until n held callbacks have started. */
static bool gate_entered(unsigned n)
{
    struct timespec ts;
    int rc = 0;

    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += 5 * slow_factor();
    pthread_mutex_lock(&gate.lock);
    while (gate.entered < n && rc == 0)
        rc = pthread_cond_timedwait(&gate.cond, &gate.lock, &ts);
    rc = gate.entered >= n;
    pthread_mutex_unlock(&gate.lock);
    return rc;
}

static void gate_release(unsigned n)
{
    pthread_mutex_lock(&gate.lock);
    gate.released = n;
    pthread_cond_broadcast(&gate.cond);
    pthread_mutex_unlock(&gate.lock);
}

/* Let everything through, for good. */
static void gate_open(void)
{
    pthread_mutex_lock(&gate.lock);
    gate.hold = gate.entered;
    gate.released = UINT32_MAX;
    pthread_cond_broadcast(&gate.cond);
    pthread_mutex_unlock(&gate.lock);
}

static unsigned calls(void)
{
    return __atomic_load_n(&bar2_calls, __ATOMIC_SEQ_CST);
}

/* The process's fds with the server idle and no client (test_no_fds_left). */
static int idle_fds;

static int group_setup(void **state)
{
    const struct mu_mmap_area sparse = { SPARSE_OFF, SPARSE_SIZE };
    mu_ctx_t *ctx;
    int rc, efd;

    (void)state;
    dev.memfd0 = memfd_sized("bar0", BAR0_SIZE, MFD_ALLOW_SEALING);
    dev.memfd2 = memfd_sized("bar2", BAR2_FD_OFF + BAR2_SIZE,
                             MFD_ALLOW_SEALING);
    if (dev.memfd0 < 0 || dev.memfd2 < 0)
        return -1;
    dev.map0 = mmap(NULL, BAR0_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED,
                    dev.memfd0, 0);
    dev.map2 = mmap(NULL, BAR2_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED,
                    dev.memfd2, BAR2_FD_OFF);
    if (dev.map0 == MAP_FAILED || dev.map2 == MAP_FAILED)
        return -1;

    if (inproc_create(&srv, "regions.sock", MU_DEV_PCI, NULL) < 0)
        return -1;
    ctx = srv.ctx;
    /* The library dups an ioeventfd passed in; it creates the other.
     * This one is blocking, as eventfd(2) makes them by default. */
    efd = eventfd(0, EFD_CLOEXEC);
    if ((rc = mu_region_setup(ctx, MU_PCI_BAR0, BAR0_SIZE,
                              MU_REGION_RW | MU_REGION_MEM, NULL)) < 0 ||
        (rc = mu_region_set_mmap(ctx, MU_PCI_BAR0, dev.memfd0, 0, NULL, 0)) < 0 ||
        (rc = mu_region_setup(ctx, MU_PCI_BAR2, BAR2_SIZE,
                              MU_REGION_RW | MU_REGION_MEM | MU_REGION_MEM64,
                              bar2_access)) < 0 ||
        (rc = mu_region_set_mmap(ctx, MU_PCI_BAR2, dev.memfd2, BAR2_FD_OFF,
                                 &sparse, 1)) < 0 ||
        (rc = mu_region_add_ioeventfd(ctx, MU_PCI_BAR2, IOEV_DM_OFF, 4, true,
                                      IOEV_DM_DATA, -1, ioev_cb, 1)) < 0 ||
        (rc = mu_region_add_ioeventfd(ctx, MU_PCI_BAR2, IOEV_ANY_OFF, 0, false,
                                      0, efd, ioev_cb, 2)) < 0 ||
        (rc = mu_region_add_ioeventfd(ctx, MU_PCI_BAR0, IOEV_MM_OFF, 4, true,
                                      IOEV_MM_DATA, -1, ioev_cb, 3)) < 0) {
        fprintf(stderr, "device setup: %s\n", strerror(-rc));
        close(efd);
        return -1;
    }
    close(efd);     /* the library keeps its own copy */
    if (inproc_start(&srv) < 0)
        return -1;
    idle_fds = count_open_fds();
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    inproc_stop(&srv);
    munmap(dev.map0, BAR0_SIZE);
    munmap(dev.map2, BAR2_SIZE);
    close(dev.memfd0);
    close(dev.memfd2);
    return 0;
}

/* ---------------- helpers ---------------- */

static muc_t *live;     /* the test's client, closed by test_teardown */

static void nap(void)
{
    struct timespec ts = { 0, 2 * 1000 * 1000 };

    nanosleep(&ts, NULL);
}

static void wait_gone(void)
{
    assert_true(inproc_wait_not_ready(&srv, 1000, 2000));
}

static muc_t *client(void)
{
    muc_t *c = NULL;

    assert_int_equal(client_connect(&c, srv.sock), 0);
    live = c;
    return c;
}

static void client_close(muc_t *c)
{
    muc_close(c);
    live = NULL;
    wait_gone();
}

/* A failed test leaves its client connected; later tests need the
 * server free. */
static int test_teardown(void **state)
{
    (void)state;
    gate_open();
    if (live != NULL) {
        muc_close(live);
        live = NULL;
        inproc_wait_not_ready(&srv, 1000, 2000);
    }
    return 0;
}

static void wait_fd_count(int want)
{
    assert_int_equal(wait_open_fds(want, 1000, 2000), want);
}

/* The fd the server sent is the file the device backed the region with. */
static void assert_same_file(int a, int b)
{
    struct stat sa, sb;

    assert_int_equal(fstat(a, &sa), 0);
    assert_int_equal(fstat(b, &sb), 0);
    assert_int_equal(sa.st_dev, sb.st_dev);
    assert_int_equal(sa.st_ino, sb.st_ino);
}

static void fill(uint8_t *p, size_t n, uint8_t seed)
{
    for (size_t i = 0; i < n; i++)
        p[i] = (uint8_t)(seed + i * 7);
}

/* ---------------- tests ---------------- */

static void test_bar0_whole_mmap(void **state)
{
    struct muc_region_info ri;
    uint8_t buf[BAR0_SIZE], pat[256];
    uint8_t *cmap;
    muc_t *c;

    (void)state;
    c = client();
    assert_int_equal(muc_region_info(c, MU_PCI_BAR0, &ri), 0);
    assert_int_equal(ri.flags, RW_MMAP);
    assert_int_equal(ri.size, BAR0_SIZE);
    assert_int_equal(ri.offset, 0);
    assert_int_equal(ri.nr_sparse, 0);
    assert_true(ri.fd >= 0);
    assert_same_file(ri.fd, dev.memfd0);

    cmap = mmap(NULL, BAR0_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, ri.fd,
                (off_t)ri.offset);
    assert_true(cmap != MAP_FAILED);

    /* Device -> client through the shared pages. */
    fill(pat, sizeof(pat), 0x11);
    memcpy(dev.map0 + 0x123, pat, sizeof(pat));
    assert_memory_equal(cmap + 0x123, pat, sizeof(pat));
    /* Client -> device. */
    fill(pat, sizeof(pat), 0x22);
    memcpy(cmap + 0x3000, pat, sizeof(pat));
    assert_memory_equal(dev.map0 + 0x3000, pat, sizeof(pat));

    /* The socket path reads and writes the same bytes. */
    assert_int_equal(muc_region_read(c, MU_PCI_BAR0, 0x123, buf, 256), 0);
    assert_memory_equal(buf, cmap + 0x123, 256);
    fill(pat, 64, 0x33);
    assert_int_equal(muc_region_write(c, MU_PCI_BAR0, 0x2ff0, pat, 64), 0);
    assert_memory_equal(cmap + 0x2ff0, pat, 64);
    assert_memory_equal(dev.map0 + 0x2ff0, pat, 64);
    assert_int_equal(muc_region_read(c, MU_PCI_BAR0, 0, buf, BAR0_SIZE), 0);
    assert_memory_equal(buf, dev.map0, BAR0_SIZE);
    /* Inside the region only. */
    assert_int_equal(muc_region_read(c, MU_PCI_BAR0, BAR0_SIZE - 2, buf, 4),
                     -EINVAL);
    assert_int_equal(muc_region_read(c, MU_PCI_BAR0, BAR0_SIZE, buf, 1),
                     -EINVAL);

    munmap(cmap, BAR0_SIZE);
    close(ri.fd);
    client_close(c);
}

static void test_bar2_sparse_mmap(void **state)
{
    struct muc_region_info ri;
    uint8_t buf[64], pat[64], edge[8], zero[64] = { 0 };
    uint32_t v;
    unsigned n;
    uint8_t *cmap;
    muc_t *c;

    (void)state;
    c = client();
    assert_int_equal(muc_region_info(c, MU_PCI_BAR2, &ri), 0);
    assert_int_equal(ri.flags, RW_MMAP);
    assert_int_equal(ri.size, BAR2_SIZE);
    assert_int_equal(ri.offset, BAR2_FD_OFF);
    assert_int_equal(ri.nr_sparse, 1);
    assert_int_equal(ri.sparse[0].offset, SPARSE_OFF);
    assert_int_equal(ri.sparse[0].size, SPARSE_SIZE);
    assert_true(ri.fd >= 0);
    assert_same_file(ri.fd, dev.memfd2);
    /* The upper half of the 64-bit BAR is no region. */
    {
        struct muc_region_info hi;

        assert_int_equal(muc_region_info(c, MU_PCI_BAR3, &hi), 0);
        assert_int_equal(hi.size, 0);
        assert_int_equal(hi.fd, -1);
    }

    /* The client maps the area where the protocol says: region offset
     * plus area offset in the fd. */
    cmap = mmap(NULL, SPARSE_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, ri.fd,
                (off_t)(ri.offset + ri.sparse[0].offset));
    assert_true(cmap != MAP_FAILED);
    n = calls();

    fill(pat, sizeof(pat), 0x44);
    memcpy(dev.map2 + SPARSE_OFF + 0x40, pat, sizeof(pat));
    assert_memory_equal(cmap + 0x40, pat, sizeof(pat));
    fill(pat, sizeof(pat), 0x55);
    memcpy(cmap + 0xf00, pat, sizeof(pat));
    assert_memory_equal(dev.map2 + SPARSE_OFF + 0xf00, pat, sizeof(pat));

    /* Socket accesses inside the area see the same bytes, without the
     * callback. */
    assert_int_equal(muc_region_read(c, MU_PCI_BAR2, SPARSE_OFF + 0x40, buf,
                                     sizeof(buf)), 0);
    assert_memory_equal(buf, cmap + 0x40, sizeof(buf));
    fill(edge, 8, 0x66);
    assert_int_equal(muc_region_write(c, MU_PCI_BAR2,
                                      SPARSE_OFF + SPARSE_SIZE - 8, edge, 8), 0);
    assert_memory_equal(cmap + SPARSE_SIZE - 8, edge, 8);
    assert_memory_equal(dev.map2 + SPARSE_OFF + SPARSE_SIZE - 8, edge, 8);
    assert_int_equal(calls(), n);

    /* Outside it, the callback: one call an access, and the memfd's bytes
     * there are not touched. */
    v = 0x12345678;
    assert_int_equal(muc_region_write(c, MU_PCI_BAR2, 0x2000, &v, 4), 0);
    assert_int_equal(calls(), n + 1);
    assert_int_equal(bar2_last_off, 0x2000);
    assert_true(bar2_last_write);
    assert_memory_equal(dev.map2 + 0x2000, zero, 4);
    v = 0;
    assert_int_equal(muc_region_read(c, MU_PCI_BAR2, 0x2000, &v, 4), 0);
    assert_int_equal(v, 0x12345678);
    assert_int_equal(calls(), n + 2);
    assert_false(bar2_last_write);
    assert_int_equal(muc_region_read(c, MU_PCI_BAR2, 0, buf, 8), 0);
    assert_int_equal(muc_region_read(c, MU_PCI_BAR2, SPARSE_OFF - 4, buf, 4), 0);
    assert_int_equal(bar2_last_off, SPARSE_OFF - 4);
    assert_int_equal(muc_region_read(c, MU_PCI_BAR2, SPARSE_OFF + SPARSE_SIZE,
                                     buf, 4), 0);
    assert_int_equal(bar2_last_off, SPARSE_OFF + SPARSE_SIZE);
    assert_int_equal(muc_region_read(c, MU_PCI_BAR2, BAR2_SIZE - 4, buf, 4), 0);
    assert_int_equal(calls(), n + 6);

    /* Half in, half out: refused, and neither owner sees it. */
    assert_int_equal(muc_region_read(c, MU_PCI_BAR2, SPARSE_OFF - 4, buf, 8),
                     -EINVAL);
    fill(pat, 8, 0x77);
    assert_int_equal(muc_region_write(c, MU_PCI_BAR2,
                                      SPARSE_OFF + SPARSE_SIZE - 4, pat, 8),
                     -EINVAL);
    assert_memory_equal(cmap + SPARSE_SIZE - 8, edge, 8);
    assert_int_equal(calls(), n + 6);

    munmap(cmap, SPARSE_SIZE);
    close(ri.fd);
    client_close(c);
}

/* GET_REGION_INFO with a raw argsz; returns the reply length and fds. */
static int region_info_raw(muc_t *c, uint32_t index, uint32_t argsz,
                           uint8_t *reply, size_t cap, size_t *len,
                           int *fd)
{
    struct vfu_region_info q = { .argsz = argsz, .index = index };
    unsigned nfds = 0;
    int rc;

    *fd = -1;
    rc = muc_request(c, VFU_CMD_DEVICE_GET_REGION_INFO, &q, sizeof(q), NULL,
                     0, reply, cap, len, fd, 1, &nfds);
    if (nfds == 0)
        *fd = -1;
    return rc;
}

static void test_region_info_argsz(void **state)
{
    const uint32_t full = sizeof(struct vfu_region_info) +
                          sizeof(struct vfu_cap_sparse) +
                          sizeof(struct vfu_sparse_area);
    struct vfu_region_info r;
    struct vfu_cap_sparse sp;
    struct vfu_sparse_area a;
    struct muc_region_info ri;
    uint8_t reply[256];
    size_t len;
    int fd;
    muc_t *c;

    (void)state;
    c = client();
    /* Room for the fixed part only: the full size, MMAP, but neither the
     * fd nor the caps (so no CAPS flag and no cap offset either). */
    for (uint32_t argsz = sizeof(r); argsz < full; argsz += full - sizeof(r) - 1) {
        assert_int_equal(region_info_raw(c, MU_PCI_BAR2, argsz, reply,
                                         sizeof(reply), &len, &fd), 0);
        assert_int_equal(len, sizeof(r));
        assert_int_equal(fd, -1);
        memcpy(&r, reply, sizeof(r));
        assert_int_equal(r.argsz, full);
        assert_int_equal(r.index, MU_PCI_BAR2);
        assert_int_equal(r.flags, VFU_REGION_FLAG_READ | VFU_REGION_FLAG_WRITE |
                                  VFU_REGION_FLAG_MMAP);
        assert_int_equal(r.cap_offset, 0);
        assert_int_equal(r.size, BAR2_SIZE);
        assert_int_equal(r.offset, BAR2_FD_OFF);
    }

    /* Exactly enough: everything, caps right after the fixed part. */
    assert_int_equal(region_info_raw(c, MU_PCI_BAR2, full, reply,
                                     sizeof(reply), &len, &fd), 0);
    assert_int_equal(len, full);
    assert_true(fd >= 0);
    assert_same_file(fd, dev.memfd2);
    close(fd);
    memcpy(&r, reply, sizeof(r));
    assert_int_equal(r.argsz, full);
    assert_int_equal(r.flags, VFU_REGION_FLAG_READ | VFU_REGION_FLAG_WRITE |
                              VFU_REGION_FLAG_MMAP | VFU_REGION_FLAG_CAPS);
    assert_int_equal(r.cap_offset, sizeof(r));
    memcpy(&sp, reply + sizeof(r), sizeof(sp));
    assert_int_equal(sp.hdr.id, VFU_CAP_SPARSE_MMAP);
    assert_int_equal(sp.hdr.version, 1);
    assert_int_equal(sp.hdr.next, 0);
    assert_int_equal(sp.nr_areas, 1);
    memcpy(&a, reply + sizeof(r) + sizeof(sp), sizeof(a));
    assert_int_equal(a.offset, SPARSE_OFF);
    assert_int_equal(a.size, SPARSE_SIZE);

    /* A whole-region mmap has no caps: the fixed part is the answer, fd
     * included. */
    assert_int_equal(region_info_raw(c, MU_PCI_BAR0, sizeof(r), reply,
                                     sizeof(reply), &len, &fd), 0);
    assert_int_equal(len, sizeof(r));
    assert_true(fd >= 0);
    close(fd);
    memcpy(&r, reply, sizeof(r));
    assert_int_equal(r.argsz, sizeof(r));

    /* Below the fixed part is malformed. */
    assert_int_equal(region_info_raw(c, MU_PCI_BAR2, sizeof(r) - 1, reply,
                                     sizeof(reply), &len, &fd), -EINVAL);
    /* The connection is fine after all that. */
    assert_int_equal(muc_region_info(c, MU_PCI_BAR2, &ri), 0);
    assert_int_equal(ri.nr_sparse, 1);
    close(ri.fd);
    client_close(c);
}

static void wait_ioev(unsigned which, unsigned want)
{
    for (int i = 0; i < 1000 * slow_factor() &&
                    __atomic_load_n(&ioev_calls[which], __ATOMIC_SEQ_CST) < want; i++)
        nap();
    assert_int_equal(__atomic_load_n(&ioev_calls[which], __ATOMIC_SEQ_CST), want);
}

static void test_ioeventfds(void **state)
{
    struct muc_ioeventfd io[4];
    unsigned n, dm, any;
    uint64_t one = 1;
    int base;
    muc_t *c;

    (void)state;
    c = client();
    assert_int_equal(muc_region_io_fds(c, MU_PCI_BAR2, io, 4), 2);
    assert_int_equal(io[0].offset, IOEV_DM_OFF);
    assert_int_equal(io[0].size, 4);
    assert_int_equal(io[0].type, VFU_IOFD_TYPE_IOEVENTFD);
    assert_int_equal(io[0].flags, VFU_IOEVENTFD_FLAG_DATAMATCH);
    assert_int_equal(io[0].datamatch, IOEV_DM_DATA);
    assert_int_equal(io[1].offset, IOEV_ANY_OFF);
    assert_int_equal(io[1].size, 0);
    assert_int_equal(io[1].type, VFU_IOFD_TYPE_IOEVENTFD);
    assert_int_equal(io[1].flags, 0);
    assert_int_equal(io[1].datamatch, 0);
    assert_true(io[0].fd >= 0 && io[1].fd >= 0);

    /*
     * What KVM would do on a matching guest write: signal the eventfd.
     * The device hears of it on its context thread, and no REGION_WRITE
     * is involved (the client sends nothing here).
     */
    n = calls();
    dm = __atomic_load_n(&ioev_calls[1], __ATOMIC_SEQ_CST);
    any = __atomic_load_n(&ioev_calls[2], __ATOMIC_SEQ_CST);
    assert_int_equal(write(io[0].fd, &one, sizeof(one)), sizeof(one));
    wait_ioev(1, dm + 1);
    assert_int_equal(__atomic_load_n(&ioev_calls[2], __ATOMIC_SEQ_CST), any);
    assert_int_equal(write(io[1].fd, &one, sizeof(one)), sizeof(one));
    wait_ioev(2, any + 1);
    assert_int_equal(__atomic_load_n(&ioev_calls[1], __ATOMIC_SEQ_CST), dm + 1);
    assert_int_equal(calls(), n);

    /* Each region lists its own; absent ones and config space are
     * errors. */
    assert_int_equal(muc_region_io_fds(c, MU_PCI_BAR0, io + 2, 2), 1);
    assert_int_equal(io[2].offset, IOEV_MM_OFF);
    close(io[2].fd);
    assert_int_equal(muc_region_io_fds(c, MU_PCI_BAR4, io + 2, 2), -EINVAL);
    assert_int_equal(muc_region_io_fds(c, MU_PCI_CONFIG, io + 2, 2), -EINVAL);
    assert_int_equal(muc_region_io_fds(c, 40, io + 2, 2), -EINVAL);
    close(io[0].fd);
    close(io[1].fd);

    /* Taking fewer than there are leaks none of the rest. */
    base = count_open_fds();
    assert_int_equal(muc_region_io_fds(c, MU_PCI_BAR2, io, 1), 1);
    assert_int_equal(io[0].offset, IOEV_DM_OFF);
    assert_int_equal(count_open_fds(), base + 1);
    close(io[0].fd);
    client_close(c);
}

static void test_io_fds_argsz(void **state)
{
    const uint32_t esz = sizeof(struct vfu_sub_region_ioeventfd);
    const uint32_t full = sizeof(struct vfu_region_io_fds) + 2 * esz;
    struct vfu_region_io_fds q, r;
    struct vfu_sub_region_ioeventfd e;
    uint8_t reply[256];
    int fds[4];
    unsigned nfds;
    size_t len;
    muc_t *c;

    (void)state;
    assert_int_equal(esz, 40);
    c = client();
    /* Too small (nothing past the header, or one entry of two): the count
     * and the size needed, no fds. */
    for (uint32_t argsz = sizeof(q); argsz < full; argsz += full - sizeof(q) - 1) {
        q = (struct vfu_region_io_fds){ .argsz = argsz, .index = MU_PCI_BAR2 };
        assert_int_equal(muc_request(c, VFU_CMD_DEVICE_GET_REGION_IO_FDS, &q,
                                     sizeof(q), NULL, 0, reply, sizeof(reply),
                                     &len, fds, 4, &nfds), 0);
        assert_int_equal(len, sizeof(r));
        assert_int_equal(nfds, 0);
        memcpy(&r, reply, sizeof(r));
        assert_int_equal(r.argsz, full);
        assert_int_equal(r.flags, 0);
        assert_int_equal(r.index, MU_PCI_BAR2);
        assert_int_equal(r.count, 2);
    }

    /* Enough: both entries, one fd each. */
    q = (struct vfu_region_io_fds){ .argsz = full, .index = MU_PCI_BAR2 };
    assert_int_equal(muc_request(c, VFU_CMD_DEVICE_GET_REGION_IO_FDS, &q,
                                 sizeof(q), NULL, 0, reply, sizeof(reply),
                                 &len, fds, 4, &nfds), 0);
    assert_int_equal(len, full);
    assert_int_equal(nfds, 2);
    for (unsigned i = 0; i < 2; i++) {
        memcpy(&e, reply + sizeof(r) + i * esz, sizeof(e));
        assert_int_equal(e.fd_index, i);
        assert_int_equal(e.offset, i == 0 ? IOEV_DM_OFF : IOEV_ANY_OFF);
        close(fds[i]);
    }

    /* Malformed requests. */
    q = (struct vfu_region_io_fds){ .argsz = sizeof(q) - 1, .index = MU_PCI_BAR2 };
    assert_int_equal(muc_request(c, VFU_CMD_DEVICE_GET_REGION_IO_FDS, &q,
                                 sizeof(q), NULL, 0, reply, sizeof(reply),
                                 &len, fds, 4, &nfds), -EINVAL);
    q = (struct vfu_region_io_fds){ .argsz = full, .index = MU_PCI_BAR2,
                                    .count = 1 };
    assert_int_equal(muc_request(c, VFU_CMD_DEVICE_GET_REGION_IO_FDS, &q,
                                 sizeof(q), NULL, 0, reply, sizeof(reply),
                                 &len, fds, 4, &nfds), -EINVAL);
    q = (struct vfu_region_io_fds){ .argsz = full, .index = MU_PCI_BAR2,
                                    .flags = 1 };
    assert_int_equal(muc_request(c, VFU_CMD_DEVICE_GET_REGION_IO_FDS, &q,
                                 sizeof(q), NULL, 0, reply, sizeof(reply),
                                 &len, fds, 4, &nfds), -EINVAL);
    client_close(c);
}

/*
 * The client holds a copy of every ioeventfd and may read it too, so the
 * server can be told "readable" by epoll and find the counter empty.  With
 * a blocking eventfd (the device's own, as here) a plain read() would then
 * hang the context thread until the client writes again -- a client could
 * stall the device at will.  Arrange exactly that: hold the context thread
 * in ioeventfd 1's callback while both fds become ready (one batch: 1 then
 * 2), let it take 1 and hold it again, drain 2 behind its back, let go.
 */
static void test_ioeventfd_drained_by_client(void **state)
{
    struct muc_opts o = { .timeout_ms = 1000 * slow_factor() };
    struct muc_device_info di;
    struct muc_ioeventfd io[2];
    uint64_t one = 1, v;
    unsigned any;
    muc_t *c = NULL;
    int rc;

    (void)state;
    assert_int_equal(muc_connect(&c, srv.sock, &o), 0);
    live = c;
    assert_int_equal(muc_region_io_fds(c, MU_PCI_BAR2, io, 2), 2);
    any = __atomic_load_n(&ioev_calls[2], __ATOMIC_SEQ_CST);

    pthread_mutex_lock(&gate.lock);
    gate.hold = gate.entered + 2;
    gate.released = gate.entered;
    pthread_mutex_unlock(&gate.lock);
    assert_int_equal(write(io[0].fd, &one, 8), 8);
    assert_true(gate_entered(gate.hold - 1));
    assert_int_equal(write(io[0].fd, &one, 8), 8);
    assert_int_equal(write(io[1].fd, &one, 8), 8);
    gate_release(gate.hold - 1);
    assert_true(gate_entered(gate.hold));
    assert_int_equal(read(io[1].fd, &v, 8), 8);     /* the client drains it */
    gate_open();

    /* The context thread must be back serving, not asleep in read(). */
    rc = muc_device_info(c, &di);
    if (rc != 0) {
        /* Unstick it so the rest of the run can go on, then fail. */
        assert_int_equal(write(io[1].fd, &one, 8), 8);
        wait_ioev(2, any + 1);
    }
    assert_int_equal(rc, 0);
    /* Nothing to report for the drained fd. */
    assert_int_equal(__atomic_load_n(&ioev_calls[2], __ATOMIC_SEQ_CST), any);
    close(io[0].fd);
    close(io[1].fd);
    client_close(c);
}

/*
 * A client that did not arm the ioeventfds sends the doorbell write as a
 * REGION_WRITE.  Into shared memory it lands where the device only ever
 * learns of writes by a kick, so the library kicks the matching
 * ioeventfd's callback itself - and only the matching one.
 */
static void test_ioeventfd_kicked_by_socket_write(void **state)
{
    uint32_t v = IOEV_MM_DATA, other = 1;
    unsigned k;
    muc_t *c;

    (void)state;
    c = client();
    k = __atomic_load_n(&ioev_calls[3], __ATOMIC_SEQ_CST);
    assert_int_equal(muc_region_write(c, MU_PCI_BAR0, IOEV_MM_OFF, &v, 4), 0);
    /* The callback ran on the context thread before the reply was sent. */
    assert_int_equal(__atomic_load_n(&ioev_calls[3], __ATOMIC_SEQ_CST), k + 1);
    assert_memory_equal(dev.map0 + IOEV_MM_OFF, &v, 4);

    /* Other data, another offset, another size: no kick. */
    assert_int_equal(muc_region_write(c, MU_PCI_BAR0, IOEV_MM_OFF, &other, 4), 0);
    assert_int_equal(muc_region_write(c, MU_PCI_BAR0, IOEV_MM_OFF + 4, &v, 4), 0);
    assert_int_equal(muc_region_write(c, MU_PCI_BAR0, IOEV_MM_OFF, &v, 2), 0);
    /* Reads never kick. */
    assert_int_equal(muc_region_read(c, MU_PCI_BAR0, IOEV_MM_OFF, &other, 4), 0);
    assert_int_equal(__atomic_load_n(&ioev_calls[3], __ATOMIC_SEQ_CST), k + 1);
    client_close(c);
}

/* The server lends its own fds and keeps nothing of a client's. */
static void test_no_fds_left(void **state)
{
    struct muc_region_info r0, r2;
    struct muc_ioeventfd io[2];
    muc_t *c = NULL;
    int base;

    (void)state;
    /* As at the start: the previous test waited for its client's detach
     * to be over (wait_gone). */
    base = idle_fds;
    assert_int_equal(count_open_fds(), base);
    assert_int_equal(client_connect(&c, srv.sock), 0);
    live = c;
    assert_int_equal(muc_region_info(c, MU_PCI_BAR0, &r0), 0);
    assert_int_equal(muc_region_info(c, MU_PCI_BAR2, &r2), 0);
    assert_int_equal(muc_region_io_fds(c, MU_PCI_BAR2, io, 2), 2);
    /* Both ends of the socket, and the four fds we were given (the
     * server's timer went, harness.h). */
    wait_fd_count(base + 2 + SERVER_FDS_ATTACH + 4);
    close(r0.fd);
    close(r2.fd);
    close(io[0].fd);
    close(io[1].fd);
    muc_close(c);
    live = NULL;
    /* Counted once the detach is over: on the way the count passes
     * through base (our end closed, the server's not yet) and below it
     * (the server's closed, its timer not yet made again). */
    wait_gone();
    assert_int_equal(count_open_fds(), base);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_bar0_whole_mmap, test_teardown),
        cmocka_unit_test_teardown(test_bar2_sparse_mmap, test_teardown),
        cmocka_unit_test_teardown(test_region_info_argsz, test_teardown),
        cmocka_unit_test_teardown(test_ioeventfds, test_teardown),
        cmocka_unit_test_teardown(test_ioeventfd_kicked_by_socket_write,
                                  test_teardown),
        cmocka_unit_test_teardown(test_io_fds_argsz, test_teardown),
        cmocka_unit_test_teardown(test_ioeventfd_drained_by_client,
                                  test_teardown),
        cmocka_unit_test_teardown(test_no_fds_left, test_teardown),
    };

    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
