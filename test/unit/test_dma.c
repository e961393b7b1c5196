/*
 * Unit tests for the DMA region table (lib/dma.c, lib/dma_log.c).
 *
 * The context is created but never realized: the handlers are driven with
 * synthesized messages, the way dispatch.c would call them, and memory is
 * memfds.  Every test checks at teardown that no fd leaked and that every
 * accepted map got exactly one unmap callback.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "cmd.h"
#include "private.h"
#include "unit_util.h"
#include "cmd_util.h"

#define PG 4096ull
#define RW (MU_DMA_READ | MU_DMA_WRITE)

/* ---------------- fixture ---------------- */

static mu_ctx_t *ctx;
static int base_fds;
static unsigned nr_maps, nr_unmaps, by_reason[MU_UNMAP_DESTROY + 1];
static int map_result;                  /* what map_cb returns */
static int nr_info_logs;
static void (*unmap_hook)(mu_dma_region_t *r);

static void log_cb(mu_ctx_t *c, enum mu_log_level level, const char *msg)
{
    (void)c;
    (void)msg;
    if (level == MU_LOG_INFO)
        nr_info_logs++;
}

static int map_cb(mu_ctx_t *c, mu_dma_region_t *r)
{
    (void)c;
    (void)r;
    if (map_result == 0)
        nr_maps++;
    return map_result;
}

static void unmap_cb(mu_ctx_t *c, mu_dma_region_t *r, enum mu_unmap_reason why)
{
    (void)c;
    nr_unmaps++;
    by_reason[why]++;
    if (unmap_hook != NULL)
        unmap_hook(r);
}

static int setup(void **state)
{
    (void)state;
    base_fds = count_fds();
    nr_maps = nr_unmaps = 0;
    memset(by_reason, 0, sizeof(by_reason));
    map_result = 0;
    nr_info_logs = 0;
    unmap_hook = NULL;
    assert_int_equal(mu_ctx_create(&ctx, "/tmp/test_dma.sock", MU_DEV_PCI,
                                   NULL), 0);
    assert_int_equal(mu_ctx_set_log(ctx, log_cb, MU_LOG_DEBUG), 0);
    ctx->pgsize = PG;
    vfu_caps_default(&ctx->peer);
    assert_int_equal(mu_dma_set_callbacks(ctx, map_cb, unmap_cb), 0);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    mu_ctx_destroy(ctx);
    ctx = NULL;
    assert_int_equal(nr_maps, nr_unmaps);
    assert_int_equal(count_fds(), base_fds);
    return 0;
}

/* ---------------- message helpers ---------------- */

static int run(mu_handler_t h, uint16_t cmd, const void *body, size_t len,
               int fd, struct mu_reply *reply)
{
    return unit_run_cmd(ctx, h, cmd, body, len, fd, reply);
}

/* The table gets its own copy of fd, as DMA_MAP gives it the message's. */
static int map_off(uint64_t iova, uint64_t size, unsigned prot, int fd,
                   uint64_t off)
{
    struct mu_dma_info info = {
        .iova = iova, .size = size, .fd_offset = fd >= 0 ? off : 0,
        .prot = prot, .has_fd = fd >= 0,
    };

    return mu_dma_add(ctx, &info, fd >= 0 ? dup(fd) : -1);
}

static int map(uint64_t iova, uint64_t size, unsigned prot, int fd)
{
    return map_off(iova, size, prot, fd, 0);
}

static int unmap(uint64_t iova, uint64_t size)
{
    return mu_dma_remove(ctx, iova, size);
}

static void unmap_all(void)
{
    mu_dma_remove_all(ctx, MU_UNMAP_ALL);
}

static int memfd(uint64_t size)
{
    int fd = memfd_create("dma", MFD_CLOEXEC | MFD_ALLOW_SEALING);

    assert_true(fd >= 0);
    assert_int_equal(ftruncate(fd, (off_t)size), 0);
    return fd;
}

static struct mu_dma_stats stats(void)
{
    struct mu_dma_stats st;

    mu_dma_get_stats(ctx, &st);
    return st;
}

static uint64_t now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* Collect (iova, size) of every region, in address order. */
struct dump {
    unsigned n;
    uint64_t iova[16], size[16];
};

static int dump_cb(mu_ctx_t *c, mu_dma_region_t *r, void *arg)
{
    struct dump *d = arg;

    (void)c;
    d->iova[d->n] = mu_dma_region_info(r)->iova;
    d->size[d->n++] = mu_dma_region_info(r)->size;
    return 0;
}

static struct dump dump(void)
{
    struct dump d = { 0 };

    assert_int_equal(mu_dma_foreach(ctx, dump_cb, &d), 0);
    return d;
}

/* ---------------- DMA_MAP validation ---------------- */

static void test_map_validation(void **state)
{
    int fd = memfd(4 * PG), sv[2], pp[2], efd, rofd;
    char path[64];

    (void)state;
    /* The message's shape (argsz, flags) is cmd_dma.c's: test_cmd_dma.c.
     * The table makes its own checks on what it is given. */
    assert_int_equal(map(0, 0, RW, fd), -EINVAL);               /* size 0 */
    assert_int_equal(map(UINT64_MAX - PG + 1, 2 * PG, RW, -1), -EINVAL);
    assert_int_equal(map(100, PG, RW, fd), -EINVAL);            /* iova */
    assert_int_equal(map(0, PG + 1, RW, fd), -EINVAL);          /* size */
    assert_int_equal(map_off(0, PG, RW, fd, 512), -EINVAL);     /* offset */
    assert_int_equal(map(0, PG, 0, fd), -EINVAL);               /* no prot */
    assert_int_equal(map(0, PG, 4 | RW, fd), -EINVAL);          /* unknown */
    assert_int_equal(map(0, 8 * PG, RW, fd), -EINVAL);          /* too big */
    assert_int_equal(map_off(0, 2 * PG, RW, fd, 3 * PG), -EINVAL);

    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    assert_int_equal(pipe(pp), 0);
    efd = eventfd(0, 0);
    assert_int_equal(map(0, PG, RW, sv[0]), -EINVAL);
    assert_int_equal(map(0, PG, RW, pp[0]), -EINVAL);
    assert_int_equal(map(0, PG, RW, efd), -EINVAL);
    close(sv[0]), close(sv[1]), close(pp[0]), close(pp[1]), close(efd);
    /* Sockets and pipes also fail the size check; a directory has a size. */
    efd = open("/", O_RDONLY | O_DIRECTORY);
    assert_true(efd >= 0);
    assert_int_equal(map(0, PG, MU_DMA_READ, efd), -EINVAL);
    close(efd);

    /* Writable map of a read-only fd, and of a write-sealed memfd. */
    snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
    rofd = open(path, O_RDONLY);
    assert_true(rofd >= 0);
    assert_int_equal(map(0, PG, RW, rofd), -EINVAL);
    assert_int_equal(map(0, PG, MU_DMA_READ, rofd), 0);
    assert_int_equal(unmap(0, PG), 0);
    close(rofd);
    assert_int_equal(fcntl(fd, F_ADD_SEALS, F_SEAL_WRITE), 0);
    assert_int_equal(map(0, PG, RW, fd), -EINVAL);
    assert_int_equal(map(0, PG, MU_DMA_READ, fd), 0);
    assert_int_equal(unmap(0, PG), 0);

    assert_int_equal(stats().regions, 0);
    assert_int_equal(stats().maps, 2);
    close(fd);
}

static void test_map_unmap_basic(void **state)
{
    int fd = memfd(4 * PG);
    struct dump d;

    (void)state;
    assert_int_equal(map_off(0x10000, 2 * PG, RW, fd, PG), 0);
    assert_int_equal(map(0x20000, PG, MU_DMA_READ, -1), 0);
    d = dump();
    assert_int_equal(d.n, 2);
    assert_int_equal(d.iova[0], 0x10000);
    assert_int_equal(d.size[0], 2 * PG);
    assert_int_equal(d.iova[1], 0x20000);
    assert_int_equal(stats().regions, 2);
    assert_int_equal(stats().mapped_bytes, 0);      /* lazy */
    assert_int_equal(nr_maps, 2);

    assert_int_equal(unmap(0x10000, 2 * PG), 0);
    assert_int_equal(by_reason[MU_UNMAP_CLIENT], 1);
    assert_int_equal(unmap(0x20000, PG), 0);
    assert_int_equal(stats().regions, 0);
    assert_int_equal(stats().unmaps, 2);
    close(fd);
}

static void test_map_limit_and_cb_refusal(void **state)
{
    int fd = memfd(PG), fd2 = memfd(PG), fds = count_fds();

    (void)state;
    assert_int_equal(mu_ctx_set_limit(ctx, MU_LIMIT_DMA_REGIONS, 2), 0);
    assert_int_equal(map(0, PG, RW, fd), 0);
    assert_int_equal(map(PG, PG, RW, fd2), 0);
    assert_int_equal(map(2 * PG, PG, RW, fd), -ENOSPC);
    assert_int_equal(count_fds(), fds + 2);     /* one held a file */
    /* Replacing at capacity frees a slot first. */
    assert_int_equal(mu_dma_set_overlap_policy(ctx, MU_OVERLAP_REPLACE), 0);
    assert_int_equal(map(0, PG, RW, -1), 0);
    assert_int_equal(count_fds(), fds + 1);

    /* A refused map leaves nothing behind and gets no unmap callback. */
    assert_int_equal(unmap(0, 2 * PG), 0);
    map_result = -EPERM;
    assert_int_equal(map(0, PG, RW, fd), -EPERM);
    assert_int_equal(stats().regions, 0);
    assert_int_equal(count_fds(), fds);
    map_result = 0;
    close(fd);
    close(fd2);
}

/*
 * Regions of one file share one held fd per access mode (dma_file.h): the
 * duplicates each DMA_MAP brings are closed, the held fd stays until the
 * last region of that file and mode goes, and every region keeps reaching
 * its own part of the file meanwhile.  A read-only fd of the same file is
 * held apart (it must not gain write access from the other), as is
 * another file.  A refused map of a held file leaves the holding as it
 * was.
 */
static void test_shared_file_fds(void **state)
{
    int fd = memfd(4 * PG), other = memfd(PG), ro, fds;
    char path[64];
    uint8_t b[4];

    (void)state;
    snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
    ro = open(path, O_RDONLY | O_CLOEXEC);
    assert_true(ro >= 0);
    for (int i = 0; i < 4; i++)
        assert_int_equal(pwrite(fd, "abcd" + i, 1, (off_t)i * PG), 1);
    fds = count_fds();

    for (int i = 0; i < 3; i++)
        assert_int_equal(map_off((uint64_t)(i + 1) << 20, PG, RW, fd,
                                 (uint64_t)i * PG), 0);
    assert_int_equal(count_fds(), fds + 1);
    /* Read-only through a read-write fd: the same held fd serves. */
    assert_int_equal(map_off(4 << 20, PG, MU_DMA_READ, fd, 3 * PG), 0);
    assert_int_equal(count_fds(), fds + 1);
    /* A read-only fd of the file, and another file: held apart. */
    assert_int_equal(map_off(5 << 20, PG, MU_DMA_READ, ro, 0), 0);
    assert_int_equal(count_fds(), fds + 2);
    assert_int_equal(map(6 << 20, PG, RW, other), 0);
    assert_int_equal(count_fds(), fds + 3);
    /* An overlap refused: the file stays held as it was. */
    assert_int_equal(map_off(1 << 20, PG, RW, fd, PG), -EEXIST);
    assert_int_equal(count_fds(), fds + 3);
    assert_int_equal(stats().regions, 6);

    /* Unmapping regions of the file one by one: the others still read
     * their own page, and the fd goes with the last of them. */
    for (int i = 0; i < 4; i++) {
        assert_int_equal(count_fds(), fds + 3);
        for (int j = i; j < 4; j++) {
            assert_int_equal(mu_dma_read(ctx, (uint64_t)(j + 1) << 20, b, 1),
                             0);
            assert_int_equal(b[0], "abcd"[j]);
        }
        assert_int_equal(unmap((uint64_t)(i + 1) << 20, PG), 0);
    }
    assert_int_equal(count_fds(), fds + 2);
    assert_int_equal(mu_dma_read(ctx, 5 << 20, b, 1), 0);
    assert_int_equal(b[0], 'a');
    assert_int_equal(unmap(5 << 20, PG), 0);
    assert_int_equal(count_fds(), fds + 1);
    /* Held again from scratch once all were gone. */
    assert_int_equal(map(7 << 20, PG, RW, fd), 0);
    assert_int_equal(count_fds(), fds + 2);
    unmap_all();
    assert_int_equal(count_fds(), fds);
    close(ro);
    close(other);
    close(fd);
}

/* ---------------- overlap ---------------- */

/* Existing region [4, 8) pages; shapes relative to it. */
static const struct {
    uint64_t iova, size;
    bool overlaps;
} shapes[] = {
    { 5 * PG, 2 * PG, true },   /* inside */
    { 2 * PG, 10 * PG, true },  /* covering */
    { 2 * PG, 3 * PG, true },   /* left */
    { 7 * PG, 3 * PG, true },   /* right */
    { 4 * PG, 4 * PG, true },   /* identical */
    { 2 * PG, 2 * PG, false },  /* touching on the left */
    { 8 * PG, 2 * PG, false },  /* touching on the right */
};

static void test_overlap_reject(void **state)
{
    (void)state;
    assert_int_equal(mu_dma_get_overlap_policy(ctx), MU_OVERLAP_REJECT);
    assert_int_equal(map(4 * PG, 4 * PG, RW, -1), 0);
    for (size_t i = 0; i < sizeof(shapes) / sizeof(shapes[0]); i++) {
        int rc = map(shapes[i].iova, shapes[i].size, RW, -1);

        assert_int_equal(rc, shapes[i].overlaps ? -EEXIST : 0);
        if (rc == 0)
            assert_int_equal(unmap(shapes[i].iova, shapes[i].size), 0);
        assert_int_equal(dump().n, 1);
        assert_int_equal(dump().iova[0], 4 * PG);
    }
    assert_int_equal(stats().rejects, 5);
    assert_int_equal(by_reason[MU_UNMAP_OVERLAP], 0);
}

static void test_overlap_replace(void **state)
{
    int fd = memfd(16 * PG);
    unsigned before;

    (void)state;
    assert_int_equal(mu_dma_set_overlap_policy(ctx, MU_OVERLAP_REPLACE), 0);
    for (size_t i = 0; i < sizeof(shapes) / sizeof(shapes[0]); i++) {
        struct dump d;

        before = by_reason[MU_UNMAP_OVERLAP];
        assert_int_equal(map(4 * PG, 4 * PG, RW, fd), 0);
        assert_int_equal(map(shapes[i].iova, shapes[i].size, RW, fd), 0);
        d = dump();
        assert_int_equal(by_reason[MU_UNMAP_OVERLAP] - before,
                         shapes[i].overlaps);
        assert_int_equal(d.n, shapes[i].overlaps ? 1 : 2);
        unmap_all();
    }
    /* One map replacing three, with gaps among them. */
    assert_int_equal(map(0, PG, RW, fd), 0);
    assert_int_equal(map(PG, PG, RW, fd), 0);
    assert_int_equal(map(4 * PG, PG, RW, fd), 0);
    assert_int_equal(map(6 * PG, PG, RW, fd), 0);
    before = by_reason[MU_UNMAP_OVERLAP];
    assert_int_equal(map(PG, 6 * PG, RW, fd), 0);
    assert_int_equal(by_reason[MU_UNMAP_OVERLAP] - before, 3);
    assert_int_equal(dump().n, 2);
    assert_int_equal(dump().iova[1], PG);
    assert_int_equal(dump().size[1], 6 * PG);
    assert_int_equal(stats().rejects, 0);
    close(fd);
}

static unsigned cb_calls;
static size_t cb_n;
static uint64_t cb_old[4], cb_incoming;
static enum mu_overlap_policy cb_answer;

static enum mu_overlap_policy overlap_cb(mu_ctx_t *c,
                                         const struct mu_dma_info *incoming,
                                         mu_dma_region_t *const *old, size_t n)
{
    (void)c;
    cb_calls++;
    cb_n = n;
    cb_incoming = incoming->iova;
    for (size_t i = 0; i < n && i < 4; i++)
        cb_old[i] = mu_dma_region_info(old[i])->iova;
    return cb_answer;
}

static void test_overlap_cb(void **state)
{
    (void)state;
    assert_int_equal(mu_dma_set_overlap_cb(ctx, overlap_cb), 0);
    assert_int_equal(map(4 * PG, PG, RW, -1), 0);
    assert_int_equal(map(2 * PG, PG, RW, -1), 0);
    assert_int_equal(map(5 * PG, PG, RW, -1), 0);   /* adjacent: no call */
    assert_int_equal(cb_calls, 0);

    cb_answer = MU_OVERLAP_REJECT;
    assert_int_equal(map(0, 8 * PG, RW, -1), -EEXIST);
    assert_int_equal(cb_calls, 1);
    assert_int_equal(cb_n, 3);
    assert_int_equal(cb_incoming, 0);
    assert_int_equal(cb_old[0], 2 * PG);
    assert_int_equal(cb_old[1], 4 * PG);
    assert_int_equal(cb_old[2], 5 * PG);
    assert_int_equal(dump().n, 3);

    cb_answer = (enum mu_overlap_policy)42;          /* nonsense: reject */
    assert_int_equal(map(4 * PG, PG, RW, -1), -EEXIST);
    cb_answer = MU_OVERLAP_REPLACE;
    assert_int_equal(map(3 * PG, 2 * PG, RW, -1), 0);
    assert_int_equal(cb_n, 1);
    assert_int_equal(by_reason[MU_UNMAP_OVERLAP], 1);
    assert_int_equal(dump().n, 3);
    assert_int_equal(stats().rejects, 2);
}

/* ---------------- DMA_UNMAP ---------------- */

static void test_unmap_rules(void **state)
{
    (void)state;
    assert_int_equal(map(0, 2 * PG, RW, -1), 0);
    assert_int_equal(map(2 * PG, 2 * PG, RW, -1), 0);
    assert_int_equal(map(8 * PG, PG, RW, -1), 0);

    /* Cuts a region: nothing goes, not even the ones fully inside. */
    assert_int_equal(unmap(0, 3 * PG), -EINVAL);
    assert_int_equal(unmap(PG, PG), -EINVAL);
    assert_int_equal(dump().n, 3);

    nr_info_logs = 0;
    assert_int_equal(unmap(16 * PG, PG), 0);        /* names nothing */
    assert_int_equal(nr_info_logs, 1);
    assert_int_equal(unmap(0, 4 * PG), 0);          /* two at once */
    assert_int_equal(dump().n, 1);
    assert_int_equal(by_reason[MU_UNMAP_CLIENT], 2);

    /* The flags (unmap-all, the old GET_DIRTY_BITMAP) are DMA_UNMAP's:
     * test_cmd_dma.c. */
    assert_int_equal(unmap(0, 0), -EINVAL);
    assert_int_equal(unmap(UINT64_MAX - PG + 1, 2 * PG), -EINVAL);
    unmap_all();
    assert_int_equal(by_reason[MU_UNMAP_ALL], 1);
    assert_int_equal(stats().regions, 0);
}

static void test_callbacks_balance(void **state)
{
    int fd = memfd(8 * PG);

    (void)state;
    assert_int_equal(mu_dma_set_overlap_policy(ctx, MU_OVERLAP_REPLACE), 0);
    for (int i = 0; i < 6; i++)
        assert_int_equal(map(i * PG, PG, RW, i % 2 ? fd : -1), 0);
    assert_int_equal(unmap(0, PG), 0);                      /* client */
    assert_int_equal(map(PG, 2 * PG, RW, fd), 0);           /* 2 overlap */
    mu_dma_remove_all(ctx, MU_UNMAP_DISCONNECT);            /* 4 */
    assert_int_equal(map(0, PG, RW, fd), 0);
    assert_int_equal(map(PG, PG, RW, fd), 0);
    unmap_all();
    assert_int_equal(map(0, PG, RW, fd), 0);
    mu_dma_remove_all(ctx, MU_UNMAP_RESET);
    assert_int_equal(map(0, PG, RW, fd), 0);                /* destroy */
    close(fd);
    assert_int_equal(by_reason[MU_UNMAP_CLIENT], 1);
    assert_int_equal(by_reason[MU_UNMAP_OVERLAP], 2);
    assert_int_equal(by_reason[MU_UNMAP_DISCONNECT], 4);
    assert_int_equal(by_reason[MU_UNMAP_ALL], 2);
    assert_int_equal(by_reason[MU_UNMAP_RESET], 1);
    mu_ctx_destroy(ctx);
    ctx = NULL;
    assert_int_equal(by_reason[MU_UNMAP_DESTROY], 1);
    assert_int_equal(nr_maps, 11);
    assert_int_equal(nr_unmaps, 11);
    assert_int_equal(mu_ctx_create(&ctx, "/tmp/test_dma.sock", MU_DEV_PCI,
                                   NULL), 0);      /* for teardown */
    assert_string_equal(mu_unmap_reason_str(MU_UNMAP_OVERLAP), "overlap");
    assert_string_equal(mu_unmap_reason_str((enum mu_unmap_reason)99),
                        "unknown");
}

/*
 * Destroying a context that still has a client: the regions go first and
 * say so (MU_UNMAP_DESTROY), not as a disconnect, as muser.h promises; the
 * client is dropped after.
 */
static void test_destroy_with_client(void **state)
{
    int fd = memfd(4 * PG), sv[2];
    char b;

    (void)state;
    assert_int_equal(mu_ctx_realize(ctx), 0);
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    assert_int_equal(mu_ctx_attach_fd(ctx, sv[1]), 0);      /* ctx owns it */
    assert_int_equal(map(0, PG, RW, fd), 0);
    assert_int_equal(map(PG, PG, RW, -1), 0);
    close(fd);
    mu_ctx_destroy(ctx);
    ctx = NULL;
    assert_int_equal(by_reason[MU_UNMAP_DESTROY], 2);
    assert_int_equal(by_reason[MU_UNMAP_DISCONNECT], 0);
    assert_int_equal(read(sv[0], &b, 1), 0);                /* hung up */
    close(sv[0]);
    assert_int_equal(mu_ctx_create(&ctx, "/tmp/test_dma.sock", MU_DEV_PCI,
                                   NULL), 0);      /* for teardown */
}

/* ---------------- translation ---------------- */

static void test_translate(void **state)
{
    int fd = memfd(8 * PG);
    mu_sg_t sg[4];
    uint8_t b[8];
    uint64_t faults;

    (void)state;
    /* [0x100000, +2 pages) at offset 0 and [+2 pages, +4) at offset 4 pages:
     * adjacent in iova, not in the file. */
    assert_int_equal(map_off(0x100000, 2 * PG, RW, fd, 0), 0);
    assert_int_equal(map_off(0x100000 + 2 * PG, 2 * PG, RW, fd, 4 * PG), 0);
    assert_int_equal(map(0x200000, PG, MU_DMA_READ, fd), 0);
    assert_int_equal(map(0x300000, PG, RW, -1), 0);

    assert_int_equal(mu_dma_get(ctx, 0x100010, 16, MU_DMA_WRITE, sg, 4), 1);
    assert_int_equal(sg[0].len, 16);
    assert_int_equal(sg[0].iova, 0x100010);
    memcpy(sg[0].addr, "hello", 5);
    mu_dma_put(ctx, sg, 1);
    assert_int_equal(pread(fd, b, 5, 0x10), 5);
    assert_memory_equal(b, "hello", 5);

    /* Spans the two adjacent regions: one entry each. */
    assert_int_equal(mu_dma_get(ctx, 0x100000 + 2 * PG - 2, 4, MU_DMA_WRITE,
                                sg, 4), 2);
    assert_int_equal(sg[0].len, 2);
    assert_int_equal(sg[1].len, 2);
    assert_int_equal(sg[1].iova, 0x100000 + 2 * PG);
    memcpy(sg[0].addr, "ab", 2);
    memcpy(sg[1].addr, "cd", 2);
    mu_dma_put(ctx, sg, 2);
    assert_int_equal(pread(fd, b, 2, 2 * PG - 2), 2);
    assert_memory_equal(b, "ab", 2);
    assert_int_equal(pread(fd, b, 2, 4 * PG), 2);
    assert_memory_equal(b, "cd", 2);

    assert_int_equal(mu_dma_get(ctx, 0x100000, 4 * PG, MU_DMA_READ, sg, 1),
                     -ENOSPC);
    /* max_sg 0 says how many it needs, holding nothing; then it fits. */
    faults = stats().faults;
    assert_int_equal(mu_dma_get(ctx, 0x100000, 4 * PG, MU_DMA_READ, NULL, 0),
                     2);
    assert_int_equal(mu_dma_get(ctx, 0x100000, 4 * PG, MU_DMA_READ, sg, 2),
                     2);
    mu_dma_put(ctx, sg, 2);
    assert_int_equal(mu_dma_get(ctx, 0x100000, 4 * PG + 1, MU_DMA_READ, NULL,
                                0), -ENOENT);
    assert_int_equal(mu_dma_get(ctx, 0x200000, 1, MU_DMA_WRITE, NULL, 0),
                     -EACCES);
    assert_int_equal(mu_dma_get(ctx, 0x300000, 1, MU_DMA_READ, NULL, 0),
                     -EFAULT);
    assert_int_equal(mu_dma_get(ctx, 0x200000, 1, MU_DMA_READ, NULL, 0), 1);
    assert_int_equal(stats().faults, faults);   /* counting maps nothing */
    assert_int_equal(mu_dma_get(ctx, 0x100000, 4 * PG + 1, MU_DMA_READ, sg, 4),
                     -ENOENT);                      /* runs into a gap */
    assert_int_equal(mu_dma_get(ctx, 0x50000, 1, MU_DMA_READ, sg, 4), -ENOENT);
    assert_int_equal(mu_dma_get(ctx, 0x200000, 1, MU_DMA_WRITE, sg, 4),
                     -EACCES);
    assert_int_equal(mu_dma_get(ctx, 0x200000, 1, MU_DMA_READ, sg, 4), 1);
    mu_dma_put(ctx, sg, 1);
    mu_dma_put(ctx, sg, 1);                     /* double put: ignored */
    assert_int_equal(mu_dma_get(ctx, 0x300000, 1, MU_DMA_READ, sg, 4), -EFAULT);
    assert_int_equal(mu_dma_get(ctx, 0x100000, 0, MU_DMA_READ, sg, 4), -EINVAL);
    assert_int_equal(mu_dma_get(ctx, UINT64_MAX, 2, MU_DMA_READ, sg, 4),
                     -EINVAL);
    assert_int_equal(mu_dma_get(ctx, 0x100000, 1, 4, sg, 4), -EINVAL);

    /* A file shrunk after DMA_MAP is refused at fault-in, not SIGBUS. */
    assert_int_equal(unmap(0x200000, PG), 0);
    assert_int_equal(map_off(0x200000, PG, MU_DMA_READ, fd, 7 * PG), 0);
    assert_int_equal(ftruncate(fd, 7 * PG), 0);
    assert_int_equal(mu_dma_get(ctx, 0x200000, 1, MU_DMA_READ, sg, 4), -EFAULT);
    assert_int_equal(mu_dma_read(ctx, 0x200000, b, 1), -EFAULT);

    /* Failed gets left no reference behind: unmapping does not wait. */
    unmap_all();
    assert_int_equal(stats().mapped_bytes, 0);
    close(fd);
}

static void test_lazy_and_budget(void **state)
{
    int fd = memfd(4 * PG);
    mu_sg_t a, b, c;

    (void)state;
    for (int i = 0; i < 4; i++)
        assert_int_equal(map_off(i * 0x10000, PG, RW, fd, i * PG), 0);
    assert_int_equal(stats().faults, 0);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(mu_dma_get(ctx, 0, 8, MU_DMA_READ, &a, 1), 1);
        mu_dma_put(ctx, &a, 1);
    }
    assert_int_equal(stats().faults, 1);
    assert_int_equal(stats().mapped_bytes, PG);

    /* Budget of two regions; use 0, 1, then 0 again, then 2: 1 is LRU. */
    assert_int_equal(mu_ctx_set_limit(ctx, MU_LIMIT_DMA_MAPPED_BYTES, 2 * PG),
                     0);
    assert_int_equal(mu_dma_get(ctx, 0x10000, 8, MU_DMA_READ, &b, 1), 1);
    mu_dma_put(ctx, &b, 1);
    assert_int_equal(mu_dma_get(ctx, 0, 8, MU_DMA_READ, &a, 1), 1);
    mu_dma_put(ctx, &a, 1);
    assert_int_equal(mu_dma_get(ctx, 0x20000, 8, MU_DMA_READ, &c, 1), 1);
    mu_dma_put(ctx, &c, 1);
    assert_int_equal(stats().faults, 3);
    assert_int_equal(stats().evictions, 1);
    assert_int_equal(stats().mapped_bytes, 2 * PG);
    assert_int_equal(mu_dma_get(ctx, 0, 8, MU_DMA_READ, &a, 1), 1);
    mu_dma_put(ctx, &a, 1);
    assert_int_equal(stats().faults, 3);            /* 0 stayed mapped */
    assert_int_equal(mu_dma_get(ctx, 0x10000, 8, MU_DMA_READ, &b, 1), 1);
    mu_dma_put(ctx, &b, 1);
    assert_int_equal(stats().faults, 4);            /* 1 was evicted */

    /* Regions in use are never evicted, even over budget. */
    assert_int_equal(mu_ctx_set_limit(ctx, MU_LIMIT_DMA_MAPPED_BYTES, PG), 0);
    mu_dma_tick(ctx);
    assert_int_equal(stats().mapped_bytes, PG);
    assert_int_equal(mu_dma_get(ctx, 0, 8, MU_DMA_WRITE, &a, 1), 1);
    assert_int_equal(mu_dma_get(ctx, 0x10000, 8, MU_DMA_WRITE, &b, 1), 1);
    assert_int_equal(mu_dma_get(ctx, 0x20000, 8, MU_DMA_WRITE, &c, 1), 1);
    assert_int_equal(stats().mapped_bytes, 3 * PG);
    memcpy(a.addr, "A", 1), memcpy(b.addr, "B", 1), memcpy(c.addr, "C", 1);
    mu_dma_tick(ctx);
    assert_int_equal(stats().mapped_bytes, 3 * PG);
    mu_dma_put(ctx, &a, 1);
    mu_dma_put(ctx, &b, 1);
    mu_dma_put(ctx, &c, 1);
    mu_dma_tick(ctx);
    assert_int_equal(stats().mapped_bytes, PG);
    close(fd);
}

/*
 * Idle eviction runs on the context's clock (lib/clock.h): these tests put
 * the context on a fake one and step it, so the ages are exact and no
 * test sleeps.  The fake time starts well above 0 (0 means "no time").
 */
static uint64_t fake_ns;

static uint64_t fake_clock(void *arg)
{
    (void)arg;
    return __atomic_load_n(&fake_ns, __ATOMIC_SEQ_CST);
}

static void fake_clock_start(void)
{
    __atomic_store_n(&fake_ns, 1000000000ull, __ATOMIC_SEQ_CST);
    mu_ctx_set_clock(ctx, fake_clock, NULL);
}

static void fake_advance_ns(uint64_t ns)
{
    __atomic_add_fetch(&fake_ns, ns, __ATOMIC_SEQ_CST);
}

#define MS 1000000ull

/* Touch [iova, iova + 8) through a get/put: the region's last use is now. */
static void touch(uint64_t iova)
{
    mu_sg_t sg;

    assert_int_equal(mu_dma_get(ctx, iova, 8, MU_DMA_READ, &sg, 1), 1);
    mu_dma_put(ctx, &sg, 1);
}

/*
 * A mapping idle for longer than MU_LIMIT_DMA_IDLE_MS is evicted at the
 * next tick - not one idle for exactly the limit, one a nanosecond older
 * - and the next use maps the same bytes again.
 */
static void test_idle_eviction(void **state)
{
    int fd = memfd(PG);
    mu_sg_t sg;
    char b[6];

    (void)state;
    fake_clock_start();
    assert_int_equal(mu_ctx_set_limit(ctx, MU_LIMIT_DMA_IDLE_MS, 30), 0);
    assert_int_equal(map(0, PG, RW, fd), 0);
    assert_int_equal(mu_dma_get(ctx, 100, 6, MU_DMA_WRITE, &sg, 1), 1);
    memcpy(sg.addr, "before", 6);
    mu_dma_put(ctx, &sg, 1);
    /* The first tick under the limit starts every idle region's age. */
    mu_dma_tick(ctx);
    assert_int_equal(stats().evictions, 0);
    fake_advance_ns(30 * MS);
    mu_dma_tick(ctx);
    assert_int_equal(stats().evictions, 0);
    assert_int_equal(stats().mapped_bytes, PG);
    fake_advance_ns(1);
    mu_dma_tick(ctx);
    assert_int_equal(stats().evictions, 1);
    assert_int_equal(stats().mapped_bytes, 0);

    /* The fd stays: the next use maps the same bytes again. */
    assert_int_equal(pwrite(fd, "after!", 6, 200), 6);
    assert_int_equal(mu_dma_get(ctx, 100, 106, MU_DMA_READ, &sg, 1), 1);
    assert_memory_equal(sg.addr, "before", 6);
    assert_memory_equal((char *)sg.addr + 100, "after!", 6);
    mu_dma_put(ctx, &sg, 1);
    assert_int_equal(stats().faults, 2);
    assert_int_equal(mu_dma_read(ctx, 100, b, 6), 0);
    assert_memory_equal(b, "before", 6);
    close(fd);
}

/*
 * Ages run from the last put: a use makes a region young again, the
 * oldest go first (and only they), and a region in use is never evicted
 * however long it is held.
 */
static void test_idle_ages(void **state)
{
    int fd = memfd(3 * PG);
    mu_sg_t held;

    (void)state;
    fake_clock_start();
    assert_int_equal(mu_ctx_set_limit(ctx, MU_LIMIT_DMA_IDLE_MS, 100), 0);
    mu_dma_tick(ctx);                           /* aging from here */
    for (uint64_t i = 0; i < 3; i++)
        assert_int_equal(map_off(i * 0x10000, PG, RW, fd, i * PG), 0);
    touch(0);                                   /* A at t */
    fake_advance_ns(40 * MS);
    touch(0x10000);                             /* B at t + 40 */
    assert_int_equal(mu_dma_get(ctx, 0x20000, 8, MU_DMA_READ, &held, 1), 1);
    assert_int_equal(stats().mapped_bytes, 3 * PG);

    fake_advance_ns(60 * MS + 1);               /* t + 100 + 1 ns */
    mu_dma_tick(ctx);
    assert_int_equal(stats().evictions, 1);     /* A */
    assert_int_equal(stats().mapped_bytes, 2 * PG);

    touch(0x10000);                             /* B young again */
    fake_advance_ns(100 * MS);
    mu_dma_tick(ctx);
    assert_int_equal(stats().evictions, 1);
    fake_advance_ns(1);
    mu_dma_tick(ctx);
    assert_int_equal(stats().evictions, 2);     /* B */

    /* C, held all along, stays; once put, its age starts then. */
    fake_advance_ns(1000 * MS);
    mu_dma_tick(ctx);
    assert_int_equal(stats().mapped_bytes, PG);
    mu_dma_put(ctx, &held, 1);
    fake_advance_ns(100 * MS);
    mu_dma_tick(ctx);
    assert_int_equal(stats().mapped_bytes, PG);
    fake_advance_ns(1);
    mu_dma_tick(ctx);
    assert_int_equal(stats().evictions, 3);
    assert_int_equal(stats().mapped_bytes, 0);
    close(fd);
}

/*
 * An idle limit set while mappings sit idle: their age starts at the first
 * tick under the limit, not at their last put (puts record no time while
 * no limit is in force), so none goes early; turning the limit off stops
 * eviction.
 */
static void test_idle_limit_set_later(void **state)
{
    int fd = memfd(PG);

    (void)state;
    fake_clock_start();
    assert_int_equal(map(0, PG, RW, fd), 0);
    touch(0);
    fake_advance_ns(1000 * MS);                 /* long idle, no limit */
    mu_dma_tick(ctx);
    assert_int_equal(mu_ctx_set_limit(ctx, MU_LIMIT_DMA_IDLE_MS, 50), 0);
    fake_advance_ns(10 * MS);
    mu_dma_tick(ctx);                           /* age starts here */
    fake_advance_ns(50 * MS);
    mu_dma_tick(ctx);
    assert_int_equal(stats().evictions, 0);
    assert_int_equal(mu_ctx_set_limit(ctx, MU_LIMIT_DMA_IDLE_MS, 0), 0);
    fake_advance_ns(1000 * MS);
    mu_dma_tick(ctx);
    assert_int_equal(stats().evictions, 0);
    assert_int_equal(stats().mapped_bytes, PG);
    assert_int_equal(mu_ctx_set_limit(ctx, MU_LIMIT_DMA_IDLE_MS, 50), 0);
    mu_dma_tick(ctx);                           /* starts again */
    fake_advance_ns(50 * MS + 1);
    mu_dma_tick(ctx);
    assert_int_equal(stats().evictions, 1);
    close(fd);
}

/* ---------------- get/put against removal ---------------- */

static pthread_mutex_t hold_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t hold_cond = PTHREAD_COND_INITIALIZER;
static int hold_stage;          /* 1: got, 2: unmap callback ran */
static uint64_t t_cb, t_put;

static void hold_unmap_hook(mu_dma_region_t *r)
{
    (void)r;
    pthread_mutex_lock(&hold_lock);
    t_cb = now_ns();
    hold_stage = 2;
    pthread_cond_broadcast(&hold_cond);
    pthread_mutex_unlock(&hold_lock);
}

static void *holder(void *arg)
{
    mu_sg_t sg;

    (void)arg;
    assert_int_equal(mu_dma_get(ctx, 0, PG, MU_DMA_WRITE, &sg, 1), 1);
    pthread_mutex_lock(&hold_lock);
    hold_stage = 1;
    pthread_cond_broadcast(&hold_cond);
    while (hold_stage != 2)
        pthread_cond_wait(&hold_cond, &hold_lock);
    pthread_mutex_unlock(&hold_lock);
    usleep(50 * 1000);
    memset(sg.addr, 0x5a, PG);          /* still mapped: no SIGSEGV */
    __atomic_store_n(&t_put, now_ns(), __ATOMIC_SEQ_CST);
    mu_dma_put(ctx, &sg, 1);
    return NULL;
}

static void test_unmap_waits_for_put(void **state)
{
    int fd = memfd(PG);
    pthread_t t;
    uint8_t b;
    uint64_t t_done;

    (void)state;
    assert_int_equal(map(0, PG, RW, fd), 0);
    unmap_hook = hold_unmap_hook;
    assert_int_equal(pthread_create(&t, NULL, holder, NULL), 0);
    pthread_mutex_lock(&hold_lock);
    while (hold_stage != 1)
        pthread_cond_wait(&hold_cond, &hold_lock);
    pthread_mutex_unlock(&hold_lock);

    assert_int_equal(unmap(0, PG), 0);
    t_done = now_ns();
    assert_true(t_cb < __atomic_load_n(&t_put, __ATOMIC_SEQ_CST));
    assert_true(__atomic_load_n(&t_put, __ATOMIC_SEQ_CST) <= t_done);
    assert_true(t_done - t_cb >= 45 * 1000000ull);
    assert_int_equal(pread(fd, &b, 1, PG - 1), 1);
    assert_int_equal(b, 0x5a);
    assert_int_equal(stats().mapped_bytes, 0);
    pthread_join(t, NULL);
    close(fd);
}

/* The unmap callback puts the context thread's own reference. */
static mu_sg_t own_sg;

static void put_own_hook(mu_dma_region_t *r)
{
    (void)r;
    mu_dma_put(ctx, &own_sg, 1);
}

static void test_unmap_cb_puts(void **state)
{
    int fd = memfd(PG);

    (void)state;
    assert_int_equal(map(0, PG, RW, fd), 0);
    assert_int_equal(mu_dma_get(ctx, 0, 8, MU_DMA_READ, &own_sg, 1), 1);
    unmap_hook = put_own_hook;
    assert_int_equal(unmap(0, PG), 0);
    close(fd);
}

/* ---------------- stress ---------------- */

#define STRESS_SLOTS 16
static atomic_bool stress_stop;
static atomic_uint stress_ops;          /* device-side operations done */

static uint64_t xorshift(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

static void *stresser(void *arg)
{
    uint64_t seed = (uintptr_t)arg * 0x9e3779b97f4a7c15ull + 1;
    uint8_t buf[3 * PG];
    mu_sg_t sg[4];

    /* Each thread's data stays in its quarter of the space (regions are
     * identity-mapped onto the file), so the bytes never race, while the
     * regions, shared by all, are mapped and unmapped under everyone. */
    uint64_t base = (uintptr_t)arg * (STRESS_SLOTS / 4) * PG;

    for (unsigned iter = 1; !atomic_load(&stress_stop); iter++) {
        uint64_t off = xorshift(&seed) % (STRESS_SLOTS / 4 * PG);
        uint64_t iova = base + off;
        size_t len = 1 + xorshift(&seed) % (2 * PG);
        unsigned op = xorshift(&seed) % 3;
        int rc;

        if (off + len > STRESS_SLOTS / 4 * PG)
            len = (size_t)(STRESS_SLOTS / 4 * PG - off);

        if (op == 0) {
            rc = mu_dma_get(ctx, iova, len, MU_DMA_WRITE, sg, 4);
            for (int i = 0; i < rc; i++)
                memset(sg[i].addr, (int)i, sg[i].len);
            if (rc > 0)
                mu_dma_put(ctx, sg, (unsigned)rc);
        } else if (op == 1) {
            rc = mu_dma_read(ctx, iova, buf, len);
        } else {
            rc = mu_dma_write(ctx, iova, buf, len);
        }
        if (iter % 64 == 0) {
            atomic_fetch_add(&stress_ops, 64);
            sched_yield();      /* let the table thread in under valgrind */
        }
        /* Regions come and go under us: any of these is a fair answer. */
        assert_true(rc >= 0 || rc == -ENOENT || rc == -EACCES ||
                    rc == -EFAULT || rc == -ENOTCONN);
    }
    return NULL;
}

static void test_stress(void **state)
{
    int fd = memfd(STRESS_SLOTS * PG);
    uint64_t seed = 42, start;
    pthread_t t[4];
    unsigned ops = 0;

    (void)state;
    assert_int_equal(mu_dma_set_overlap_policy(ctx, MU_OVERLAP_REPLACE), 0);
    assert_int_equal(mu_ctx_set_limit(ctx, MU_LIMIT_DMA_MAPPED_BYTES, 6 * PG),
                     0);
    atomic_store(&stress_stop, false);
    for (uintptr_t i = 0; i < 4; i++)
        assert_int_equal(pthread_create(&t[i], NULL, stresser, (void *)i), 0);
    /* About a second, but enough table work even when the scheduler
     * starves this thread (valgrind runs one thread at a time). */
    start = now_ns();
    atomic_store(&stress_ops, 0);
    while ((now_ns() - start < 1000000000ull || ops < 200 ||
            atomic_load(&stress_ops) < 20000) &&
           now_ns() - start < 20000000000ull) {
        uint64_t slot = xorshift(&seed) % STRESS_SLOTS;
        uint64_t n = 1 + xorshift(&seed) % 3;
        unsigned op = xorshift(&seed) % 8;
        uint32_t prot = op == 0 ? MU_DMA_READ : RW;

        if (slot + n > STRESS_SLOTS)
            n = STRESS_SLOTS - slot;
        if (op < 5) {
            assert_int_equal(map_off(slot * PG, n * PG, prot,
                                     op == 4 ? -1 : fd, slot * PG), 0);
        } else if (op < 7) {
            int rc = unmap(slot * PG, n * PG);

            assert_true(rc == 0 || rc == -EINVAL);
        } else if (xorshift(&seed) % 16 == 0) {
            unmap_all();
        } else {
            mu_dma_tick(ctx);
        }
        if (++ops % 16 == 0)
            sched_yield();
    }
    atomic_store(&stress_stop, true);
    for (int i = 0; i < 4; i++)
        pthread_join(t[i], NULL);
    close(fd);
    assert_true(ops >= 200);
    assert_true(atomic_load(&stress_ops) >= 20000);
    assert_int_equal(stats().maps - stats().unmaps, stats().regions);
    print_message("stress: %u table ops, %u device ops, %" PRIu64
                  " faults, %" PRIu64 " evictions\n", ops,
                  atomic_load(&stress_ops), stats().faults,
                  stats().evictions);
}

/* ---------------- copies ---------------- */

static void test_rw_mapped(void **state)
{
    int fd = memfd(4 * PG);
    uint8_t in[3 * PG], out[3 * PG];

    (void)state;
    for (size_t i = 0; i < sizeof(in); i++)
        in[i] = (uint8_t)(i * 7);
    assert_int_equal(map_off(0, PG, RW, fd, 3 * PG), 0);
    assert_int_equal(map_off(PG, 2 * PG, RW, fd, 0), 0);
    assert_int_equal(map_off(3 * PG, PG, MU_DMA_READ, fd, 2 * PG), 0);
    assert_int_equal(mu_dma_write(ctx, 10, in, 3 * PG - 10), 0);
    assert_int_equal(mu_dma_read(ctx, 10, out, 3 * PG - 10), 0);
    assert_memory_equal(in, out, 3 * PG - 10);
    assert_int_equal(pread(fd, out, 10, 0), 10);      /* 2nd region */
    assert_memory_equal(out, in + PG - 10, 10);
    assert_int_equal(mu_dma_write(ctx, 3 * PG, in, 1), -EACCES);
    assert_int_equal(mu_dma_write(ctx, 2 * PG, in, 2 * PG), -EACCES);
    assert_int_equal(mu_dma_read(ctx, 2 * PG, out, 2 * PG), 0);
    assert_int_equal(mu_dma_read(ctx, 2 * PG, out, 2 * PG + 1), -ENOENT);
    assert_int_equal(mu_dma_read(ctx, 0, out, 0), -EINVAL);
    close(fd);
}

/* A fake client on the other end of a socketpair, answering DMA_READ and
 * DMA_WRITE from 'guest' memory. */
enum { CLIENT_OK, CLIENT_BAD_COUNT, CLIENT_ERROR, CLIENT_SHORT_WRITE };
static uint8_t guest[64 * 1024];
static int client_mode;
static unsigned client_msgs;
static uint64_t client_max;

static void *fake_client(void *arg)
{
    struct msgio io;
    struct mu_msg m;

    assert_int_equal(msgio_init(&io, (int)(intptr_t)arg, 4u << 20, 8), 0);
    while (msgio_recv(&io, &m, 5000) == 1) {
        struct vfu_dma_access a;
        struct vfu_hdr h;
        struct iovec iov[3] = { { &h, sizeof(h) }, { &a, sizeof(a) } };
        int n = 2;

        memcpy(&a, m.body, sizeof(a));
        client_msgs++;
        if (a.count > client_max)
            client_max = a.count;
        assert_true(a.addr - 0x1000 + a.count <= sizeof(guest));
        if (m.hdr.cmd == VFU_CMD_DMA_WRITE) {
            memcpy(guest + a.addr - 0x1000, m.body + sizeof(a), a.count);
            iov[1].iov_len = client_mode == CLIENT_SHORT_WRITE ? 8 : 12;
        } else {
            iov[2].iov_base = guest + a.addr - 0x1000;
            iov[2].iov_len = a.count;
            n = 3;
        }
        if (client_mode == CLIENT_BAD_COUNT)
            a.count--;
        vfu_hdr_init(&h, m.hdr.msg_id, m.hdr.cmd, 0, VFU_F_TYPE_REPLY, 0);
        if (client_mode == CLIENT_ERROR) {
            h.flags |= VFU_F_ERROR;
            h.error = EFAULT;
            n = 1;
        }
        for (int i = 0; i < n; i++)
            h.size += (uint32_t)iov[i].iov_len;
        assert_int_equal(msgio_send(&io, iov, n, NULL, 0, 5000), 0);
        mu_msg_release(&m);
    }
    msgio_fini(&io);
    return NULL;
}

/* A blocking copy made by a device thread, while this thread runs the
 * context (which takes the client's replies). */
struct rw_job {
    bool write;
    uint64_t iova;
    void *buf;
    size_t len;
    int rc;
    int done;
};

static void *rw_thread(void *arg)
{
    struct rw_job *j = arg;

    j->rc = j->write ? mu_dma_write(ctx, j->iova, j->buf, j->len)
                     : mu_dma_read(ctx, j->iova, j->buf, j->len);
    __atomic_store_n(&j->done, 1, __ATOMIC_RELEASE);
    return NULL;
}

static int dev_rw(bool write, uint64_t iova, void *buf, size_t len)
{
    struct rw_job j = { write, iova, buf, len, 0, 0 };
    pthread_t t;

    assert_int_equal(pthread_create(&t, NULL, rw_thread, &j), 0);
    while (!__atomic_load_n(&j.done, __ATOMIC_ACQUIRE))
        assert_true(mu_ctx_poll_wait(ctx, 100) >= 0);
    pthread_join(t, NULL);
    return j.rc;
}

static void test_rw_remote(void **state)
{
    static uint8_t in[10000], out[10000];
    int sv[2];
    pthread_t t;

    (void)state;
    assert_int_equal(map(0x1000, 0x8000, RW, -1), 0);
    assert_int_equal(map(0x9000, 0x1000, MU_DMA_READ, -1), 0);
    assert_int_equal(mu_dma_read(ctx, 0x1000, out, 16), -ENOTCONN);

    assert_int_equal(mu_ctx_realize(ctx), 0);
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
    assert_int_equal(mu_ctx_attach_fd(ctx, sv[0]), 0);
    /* As if VERSION had been negotiated. */
    ctx->peer.max_data_xfer_size = 4096;
    mu_conn_set(ctx, MU_CONN_READY);
    assert_int_equal(pthread_create(&t, NULL, fake_client,
                                    (void *)(intptr_t)sv[1]), 0);

    for (size_t i = 0; i < sizeof(in); i++)
        in[i] = (uint8_t)(i * 13 + 1);
    assert_int_equal(dev_rw(true, 0x1100, in, sizeof(in)), 0);
    assert_int_equal(client_msgs, 3);               /* 4096-byte chunks */
    assert_int_equal(client_max, 4096);
    assert_memory_equal(guest + 0x100, in, sizeof(in));
    assert_int_equal(dev_rw(false, 0x1100, out, sizeof(out)), 0);
    assert_memory_equal(out, in, sizeof(out));
    assert_int_equal(dev_rw(false, 0x9000 - 8, out, 16), 0);   /* spans */
    assert_int_equal(dev_rw(true, 0x9000 - 8, in, 16), -EACCES);

    client_mode = CLIENT_BAD_COUNT;
    assert_int_equal(dev_rw(false, 0x1000, out, 64), -EPROTO);
    assert_int_equal(dev_rw(true, 0x1000, in, 64), -EPROTO);
    client_mode = CLIENT_SHORT_WRITE;
    assert_int_equal(dev_rw(true, 0x1000, in, 64), -EPROTO);
    client_mode = CLIENT_ERROR;
    assert_int_equal(dev_rw(false, 0x1000, out, 64), -EIO);

    /* Closes sv[0]: the client sees EOF.  The regions go with it. */
    mu_ctx_detach(ctx, "test done");
    pthread_join(t, NULL);
}

/* ---------------- dirty logging ---------------- */

static int feature(uint32_t flags, const void *data, size_t len,
                   uint32_t argsz, struct mu_reply *reply)
{
    uint8_t b[256];
    struct vfu_device_feature f = { argsz, flags };

    memcpy(b, &f, sizeof(f));
    if (len > 0)
        memcpy(b + sizeof(f), data, len);
    return run(mu_cmd_device_feature, VFU_CMD_DEVICE_FEATURE, b,
               sizeof(f) + len, -1, reply);
}

static int log_start(uint64_t ps, unsigned n, const uint64_t *ranges)
{
    uint8_t b[16 + 4 * 16];
    struct vfu_dma_logging_control c = { ps, n, 0 };

    memcpy(b, &c, sizeof(c));
    if (n > 0)
        memcpy(b + sizeof(c), ranges, n * 16);
    return feature(VFU_FEATURE_SET | VFU_FEATURE_DMA_LOGGING_START, b,
                   sizeof(c) + n * 16, 256, NULL);
}

/* Report [iova, iova + len) at page size ps; the first bitmap word. */
static int report(uint64_t iova, uint64_t len, uint64_t ps, uint64_t *bits)
{
    struct vfu_dma_logging_report rq = { iova, len, ps };
    struct vfu_device_feature f;
    struct mu_reply reply;
    int rc;

    rc = feature(VFU_FEATURE_GET | VFU_FEATURE_DMA_LOGGING_REPORT, &rq,
                 sizeof(rq), 4096, &reply);
    if (rc < 0)
        return rc;
    memcpy(&f, reply.data, sizeof(f));
    assert_int_equal(f.argsz, reply.len);
    assert_int_equal(f.flags, VFU_FEATURE_GET | VFU_FEATURE_DMA_LOGGING_REPORT);
    assert_int_equal(reply.len, 32 + ((len / ps + 63) / 64) * 8);
    memcpy(bits, reply.data + 32, 8);
    free(reply.data);
    return 0;
}

static void test_dirty_logging(void **state)
{
    int fd = memfd(8 * PG);
    uint64_t bits, ranges[2] = { 0x10000 + 6 * PG, PG };
    mu_sg_t sg[2];
    uint8_t b[16] = { 0 };

    (void)state;
    assert_int_equal(map(0x10000, 4 * PG, RW, fd), 0);
    assert_int_equal(report(0x10000, 8 * PG, PG, &bits), -EINVAL);
    assert_int_equal(log_start(PG, 0, NULL), 0);
    assert_int_equal(log_start(PG, 0, NULL), -EBUSY);
    assert_int_equal(map_off(0x10000 + 4 * PG, 4 * PG, RW, fd, 4 * PG), 0);

    /* Reads and read-only gets do not log; write puts, writes and marks do. */
    assert_int_equal(mu_dma_get(ctx, 0x10000, PG, MU_DMA_READ, sg, 2), 1);
    mu_dma_put(ctx, sg, 1);
    assert_int_equal(mu_dma_read(ctx, 0x10000, b, 16), 0);
    assert_int_equal(mu_dma_get(ctx, 0x10000 + PG + 8, 2 * PG, MU_DMA_WRITE,
                                sg, 2), 1);
    mu_dma_put(ctx, sg, 1);                                 /* pages 1-3 */
    assert_int_equal(mu_dma_write(ctx, 0x10000 + 5 * PG - 1, b, 2), 0);
    assert_int_equal(mu_dma_mark_dirty(ctx, 0x10000 + 7 * PG, 1), 0);
    assert_int_equal(mu_dma_mark_dirty(ctx, 0x90000, PG), 0);   /* unmapped */
    assert_int_equal(report(0x10000, 8 * PG, PG, &bits), 0);
    assert_int_equal(bits, 0xbe);               /* pages 1, 2, 3, 4, 5, 7 */
    assert_int_equal(report(0x10000, 8 * PG, PG, &bits), 0);
    assert_int_equal(bits, 0);                  /* read and cleared */

    /* A sub-range report only clears what it reports. */
    assert_int_equal(mu_dma_mark_dirty(ctx, 0x10000, 8 * PG), 0);
    assert_int_equal(report(0x10000 + 2 * PG, 3 * PG - 1, PG, &bits), 0);
    assert_int_equal(bits, 0x7);
    assert_int_equal(report(0x10000, 8 * PG, PG, &bits), 0);
    assert_int_equal(bits, 0xe3);

    /* Stop, then start on one range at 8 KiB pages. */
    assert_int_equal(feature(VFU_FEATURE_SET | VFU_FEATURE_DMA_LOGGING_STOP,
                             NULL, 0, 8, NULL), 0);
    assert_int_equal(report(0x10000, 8 * PG, PG, &bits), -EINVAL);
    assert_int_equal(mu_dma_mark_dirty(ctx, 0x10000, PG), 0);   /* no-op */
    assert_int_equal(log_start(2 * PG, 1, ranges), 0);
    assert_int_equal(mu_dma_mark_dirty(ctx, 0x10000, 8 * PG), 0);
    assert_int_equal(report(0x10000, 8 * PG, PG, &bits), -EINVAL);
    assert_int_equal(report(0x10000, 8 * PG, 2 * PG, &bits), 0);
    assert_int_equal(bits, 0x8);                /* only the logged range */
    {
        /* STOP may repeat START's data; the reply echoes the request. */
        struct vfu_dma_logging_control c = { 2 * PG, 1, 0 };
        struct mu_reply reply;
        uint8_t d[32];

        memcpy(d, &c, 16);
        memcpy(d + 16, ranges, 16);
        assert_int_equal(feature(VFU_FEATURE_SET |
                                 VFU_FEATURE_DMA_LOGGING_STOP, d, 32, 40,
                                 &reply), 0);
        assert_int_equal(reply.len, 40);
        assert_memory_equal(reply.small + 8, d, 32);
    }
    assert_int_equal(report(0x10000, 8 * PG, 2 * PG, &bits), -EINVAL);
    close(fd);
}

/*
 * Dirty bitmaps are sized by the regions the client maps, and an fd-less
 * region can span most of the address space, so they are held to
 * MU_LIMIT_DIRTY_BITMAP_BYTES: starting to log, or mapping while logging,
 * past it fails with ENOMEM and changes nothing.  (The server fuzzer found
 * the unbounded version allocating gigabytes.)
 */
static void test_dirty_budget(void **state)
{
    const uint64_t at = 1ull << 32, gib = 1ull << 30, tib = 1ull << 40;
    uint64_t bits;

    (void)state;
    /* 64 KiB of bitmap covers a little under 2 GiB at 4 KiB pages. */
    assert_int_equal(mu_ctx_set_limit(ctx, MU_LIMIT_DIRTY_BITMAP_BYTES,
                                      64 << 10), 0);
    assert_int_equal(map(at, tib, RW, -1), 0);
    assert_int_equal(log_start(PG, 0, NULL), -ENOMEM);
    assert_int_equal(report(at, 64 * PG, PG, &bits), -EINVAL);  /* not logging */
    assert_int_equal(stats().regions, 1);
    assert_int_equal(unmap(at, tib), 0);

    assert_int_equal(log_start(PG, 0, NULL), 0);
    assert_int_equal(map(at, tib, RW, -1), -ENOMEM);
    assert_int_equal(stats().regions, 0);
    assert_int_equal(map(at, gib, RW, -1), 0);                 /* 32 KiB */
    assert_int_equal(map(at + gib, gib, RW, -1), -ENOMEM);     /* 64 KiB + */
    assert_int_equal(unmap(at, gib), 0);
    assert_int_equal(map(at + gib, gib, RW, -1), 0);   /* freed, reusable */
    assert_int_equal(mu_dma_mark_dirty(ctx, at + gib, PG), 0);
    assert_int_equal(report(at + gib, 64 * PG, PG, &bits), 0);
    assert_int_equal(bits, 1);
    assert_int_equal(feature(VFU_FEATURE_SET | VFU_FEATURE_DMA_LOGGING_STOP,
                             NULL, 0, 8, NULL), 0);
    assert_int_equal(map(at + 2 * gib, tib, RW, -1), 0);  /* no log, no bitmap */
    unmap_all();
}

static void test_logging_bad(void **state)
{
    struct vfu_dma_logging_control c = { PG, 1, 0 };
    struct vfu_dma_logging_report rq = { 0, 64 * PG, PG };
    uint64_t rg[2] = { 0, PG }, bits;
    struct mu_reply reply;
    uint8_t b[40];

    (void)state;
    assert_int_equal(log_start(2048, 0, NULL), -EINVAL);
    assert_int_equal(log_start(3 * PG, 0, NULL), -EINVAL);
    memcpy(b, &c, 16);
    assert_int_equal(feature(VFU_FEATURE_SET | VFU_FEATURE_DMA_LOGGING_START,
                             b, 16, 64, NULL), -EINVAL);  /* ranges missing */
    c.reserved = 1;
    memcpy(b, &c, 16);
    memcpy(b + 16, rg, 16);
    assert_int_equal(feature(VFU_FEATURE_SET | VFU_FEATURE_DMA_LOGGING_START,
                             b, 32, 64, NULL), -EINVAL);
    rg[1] = 0;
    assert_int_equal(log_start(PG, 1, rg), -EINVAL);        /* empty */
    rg[0] = UINT64_MAX - PG, rg[1] = 2 * PG;
    assert_int_equal(log_start(PG, 1, rg), -EINVAL);        /* wraps */
    assert_int_equal(feature(VFU_FEATURE_GET | VFU_FEATURE_DMA_LOGGING_START,
                             NULL, 0, 8, NULL), -EINVAL);
    assert_int_equal(feature(VFU_FEATURE_SET | VFU_FEATURE_MIGRATION,
                             NULL, 0, 8, NULL), -ENOTSUP);
    assert_int_equal(feature(VFU_FEATURE_PROBE | VFU_FEATURE_MIG_DEVICE_STATE,
                             NULL, 0, 8, NULL), -ENOTSUP);
    assert_int_equal(feature(VFU_FEATURE_PROBE | 0x1234, NULL, 0, 8, NULL),
                     -ENOTSUP);
    assert_int_equal(feature(VFU_FEATURE_PROBE | VFU_FEATURE_SET |
                             VFU_FEATURE_DMA_LOGGING_START, NULL, 0, 8,
                             &reply), 0);
    assert_int_equal(reply.len, 8);
    assert_int_equal(feature(VFU_FEATURE_PROBE | VFU_FEATURE_GET |
                             VFU_FEATURE_DMA_LOGGING_START, NULL, 0, 8, NULL),
                     -EINVAL);
    assert_int_equal(feature(VFU_FEATURE_PROBE | VFU_FEATURE_GET |
                             VFU_FEATURE_DMA_LOGGING_REPORT, NULL, 0, 8, NULL),
                     0);

    assert_int_equal(log_start(PG, 0, NULL), 0);
    assert_int_equal(report(PG / 2, PG, PG, &bits), -EINVAL);   /* unaligned */
    assert_int_equal(report(0, 0, PG, &bits), -EINVAL);
    assert_int_equal(report(UINT64_MAX - PG + 1, 2 * PG, PG, &bits), -EINVAL);
    assert_int_equal(report(UINT64_MAX - PG + 1, PG, PG, &bits), 0);
    assert_int_equal(feature(VFU_FEATURE_GET | VFU_FEATURE_DMA_LOGGING_REPORT,
                             &rq, sizeof(rq), 32 + 7, NULL), -EINVAL);
    assert_int_equal(feature(VFU_FEATURE_GET | VFU_FEATURE_DMA_LOGGING_REPORT,
                             &rq, sizeof(rq), 32 + 8, NULL), 0);
    assert_int_equal(feature(VFU_FEATURE_GET | VFU_FEATURE_DMA_LOGGING_REPORT,
                             &rq, 16, 64, NULL), -EINVAL);
    rq.length = 1ull << 40;                     /* 32 MiB of bitmap */
    assert_int_equal(feature(VFU_FEATURE_GET | VFU_FEATURE_DMA_LOGGING_REPORT,
                             &rq, sizeof(rq), UINT32_MAX, NULL), -EINVAL);
    assert_int_equal(feature(VFU_FEATURE_SET | VFU_FEATURE_DMA_LOGGING_STOP,
                             b, 3, 8, NULL), -EINVAL);
    /* Logging ends with the client. */
    mu_dma_remove_all(ctx, MU_UNMAP_DISCONNECT);
    assert_int_equal(report(0, PG, PG, &bits), -EINVAL);
}

/* The bitmap module alone (dma_log.c): no context, no messages. */
static void test_dirty_bitmap_module(void **state)
{
    const struct mu_log_range rg[] = {
        { 0x5000, 0x5fff }, { 0x1000, 0x1fff }, { 0x2000, 0x2fff },
        { 0x1800, 0x1900 },
    };
    const struct mu_log_range bad = { 0x2000, 0x1fff };
    struct mu_dma_log *log;
    struct mu_dirty *d;
    uint64_t bits[1] = { 0 };

    (void)state;
    assert_int_equal(mu_dma_log_new(0x800, NULL, 0, &log), -EINVAL);
    assert_int_equal(mu_dma_log_new(0x3000, NULL, 0, &log), -EINVAL);
    assert_int_equal(mu_dma_log_new(PG, &bad, 1, &log), -EINVAL);
    /* Overlapping and touching ranges merge: two remain. */
    assert_int_equal(mu_dma_log_new(PG, rg, 4, &log), 0);
    assert_int_equal(mu_dma_log_nr_ranges(log), 2);
    assert_int_equal(mu_dma_log_pgsize(log), PG);

    d = mu_dirty_new(log, 0, 8 * PG - 1);
    assert_non_null(d);
    assert_int_equal(mu_dirty_bytes(d), mu_dirty_size(log, 0, 8 * PG - 1));
    /* Only what is logged is marked: pages 1, 2 and 5, not 3 or 7. */
    mu_dirty_mark(d, log, 0x1000, 0x3fff);
    mu_dirty_mark(d, log, 0x5100, 0x5100);
    mu_dirty_mark(d, log, 0x7000, 0x7fff);
    mu_dirty_harvest(d, 0, 8, bits);
    assert_int_equal(bits[0], 0x26);
    bits[0] = 0;
    mu_dirty_harvest(d, 0, 8, bits);        /* reported once */
    assert_int_equal(bits[0], 0);
    mu_dirty_free(d);
    mu_dma_log_free(log);

    /* No ranges: every address. */
    assert_int_equal(mu_dma_log_new(PG, NULL, 0, &log), 0);
    d = mu_dirty_new(log, 2 * PG, 4 * PG - 1);
    mu_dirty_mark(d, log, 0, UINT64_MAX);
    mu_dirty_harvest(d, 0, 8, bits);
    assert_int_equal(bits[0], 0x0c);
    mu_dirty_free(d);
    mu_dma_log_free(log);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_dirty_bitmap_module),
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
        T(test_map_validation),
        T(test_map_unmap_basic),
        T(test_map_limit_and_cb_refusal),
        T(test_shared_file_fds),
        T(test_overlap_reject),
        T(test_overlap_replace),
        T(test_overlap_cb),
        T(test_unmap_rules),
        T(test_callbacks_balance),
        T(test_destroy_with_client),
        T(test_translate),
        T(test_lazy_and_budget),
        T(test_idle_eviction),
        T(test_idle_ages),
        T(test_idle_limit_set_later),
        T(test_unmap_waits_for_put),
        T(test_unmap_cb_puts),
        T(test_stress),
        T(test_rw_mapped),
        T(test_rw_remote),
        T(test_dirty_logging),
        T(test_logging_bad),
        T(test_dirty_budget),
#undef T
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
