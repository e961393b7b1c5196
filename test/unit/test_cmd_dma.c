/*
 * Unit tests for the DMA commands (lib/cmd_dma.c): DMA_MAP and DMA_UNMAP
 * messages decoded and handed to the DMA table, as dispatch.c calls them.
 * The table's own rules are test_dma.c's; here: the message's shape, the
 * fd's way from the message to the table (never leaked, never closed
 * twice), the reply, and the error codes and refusal reasons a client and
 * the debug log see.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "cmd.h"
#include "unit_util.h"
#include "cmd_util.h"

#define PG 4096ull
#define RW (VFU_DMA_FLAG_READ | VFU_DMA_FLAG_WRITE)

static mu_ctx_t *ctx;
static int base_fds;
static unsigned nr_maps, nr_unmaps, by_reason[MU_UNMAP_DESTROY + 1];

static void log_cb(mu_ctx_t *c, enum mu_log_level level, const char *msg)
{
    (void)c;
    (void)level;
    (void)msg;
}

static int map_cb(mu_ctx_t *c, mu_dma_region_t *r)
{
    (void)c;
    (void)r;
    nr_maps++;
    return 0;
}

static void unmap_cb(mu_ctx_t *c, mu_dma_region_t *r, enum mu_unmap_reason why)
{
    (void)c;
    (void)r;
    nr_unmaps++;
    by_reason[why]++;
}

static int setup(void **state)
{
    (void)state;
    base_fds = count_fds();
    nr_maps = nr_unmaps = 0;
    memset(by_reason, 0, sizeof(by_reason));
    assert_int_equal(mu_ctx_create(&ctx, "/tmp/test_cmd_dma.sock", MU_DEV_PCI,
                                   NULL), 0);
    /* MU_LOG_DEBUG: ctx->why is filled */
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

static int run(mu_handler_t h, uint16_t cmd, const void *body, size_t len,
               int fd, struct mu_reply *reply)
{
    return unit_run_cmd(ctx, h, cmd, body, len, fd, reply);
}

static int map_msg(uint32_t argsz, uint32_t flags, uint64_t off,
                   uint64_t iova, uint64_t size, int fd, size_t len)
{
    struct vfu_dma_map m = { argsz, flags, off, iova, size };

    return run(mu_cmd_dma_map, VFU_CMD_DMA_MAP, &m, len, fd, NULL);
}

static int map(uint64_t iova, uint64_t size, uint32_t flags, int fd)
{
    return map_msg(32, flags, 0, iova, size, fd, 32);
}

static int unmap_msg(uint32_t flags, uint64_t iova, uint64_t size,
                     size_t len, struct vfu_dma_unmap *out)
{
    uint8_t b[40] = { 0 };
    struct vfu_dma_unmap u = { (uint32_t)len, flags, iova, size };
    struct mu_reply reply;
    int rc;

    memcpy(b, &u, sizeof(u));
    rc = run(mu_cmd_dma_unmap, VFU_CMD_DMA_UNMAP, b, len, -1, &reply);
    if (rc == 0) {
        assert_int_equal(reply.len, sizeof(*out));
        assert_null(reply.data);
        assert_int_equal(reply.nfds, 0);
        memcpy(out, reply.small, sizeof(*out));
    }
    return rc;
}

static int memfd(uint64_t size)
{
    int fd = memfd_create("dma", MFD_CLOEXEC | MFD_ALLOW_SEALING);

    assert_true(fd >= 0);
    assert_int_equal(ftruncate(fd, (off_t)size), 0);
    return fd;
}

static int info_cb(mu_ctx_t *c, mu_dma_region_t *r, void *arg)
{
    (void)c;
    *(struct mu_dma_info *)arg = *mu_dma_region_info(r);
    return 1;
}

/* The lowest region's info; false when the table is empty. */
static bool first_region(struct mu_dma_info *out)
{
    return mu_dma_foreach(ctx, info_cb, out) == 1;
}

static void expect_why(const char *prefix)
{
    assert_non_null(ctx->why);
    if (strncmp(ctx->why, prefix, strlen(prefix)) != 0)
        fail_msg("reason \"%s\", wanted \"%s...\"", ctx->why, prefix);
}

/* ---------------- DMA_MAP ---------------- */

static void test_map_decoded(void **state)
{
    int fd = memfd(4 * PG);
    struct mu_dma_info i;

    (void)state;
    /* With an fd: prot and offset come from the message. */
    assert_int_equal(map_msg(32, VFU_DMA_FLAG_READ, PG, 0x10000, 2 * PG, fd,
                             32), 0);
    assert_true(first_region(&i));
    assert_int_equal(i.iova, 0x10000);
    assert_int_equal(i.size, 2 * PG);
    assert_int_equal(i.fd_offset, PG);
    assert_int_equal(i.prot, MU_DMA_READ);
    assert_true(i.has_fd);
    assert_int_equal(nr_maps, 1);
    /* The fd went from the message to the table: one more open fd. */
    assert_int_equal(count_fds(), base_fds + 1 + 1);

    /* Without one, the offset means nothing and is dropped. */
    mu_dma_remove_all(ctx, MU_UNMAP_ALL);
    assert_int_equal(map_msg(32, VFU_DMA_FLAG_WRITE, 3 * PG, 0, PG, -1, 32),
                     0);
    assert_true(first_region(&i));
    assert_int_equal(i.fd_offset, 0);
    assert_int_equal(i.prot, MU_DMA_WRITE);
    assert_false(i.has_fd);
    close(fd);
}

static void test_map_malformed(void **state)
{
    int fd = memfd(4 * PG);

    (void)state;
    /* argsz, length, flags, size, wrap: refused before the table sees
     * it, the message's fd closed with the message. */
    assert_int_equal(map_msg(24, RW, 0, 0, PG, fd, 32), -EINVAL);
    expect_why("malformed payload (32 bytes, 1 fds): argsz, flags, size or "
               "fd count wrong");
    assert_int_equal(map_msg(32, RW, 0, 0, PG, -1, 24), -EINVAL);
    expect_why("malformed payload (24 bytes, 0 fds)");
    assert_int_equal(map(0, PG, 0, fd), -EINVAL);
    expect_why("malformed payload");
    assert_int_equal(map(0, PG, 4 | RW, fd), -EINVAL);
    assert_int_equal(map(0, 0, RW, fd), -EINVAL);
    assert_int_equal(map(UINT64_MAX - PG + 1, 2 * PG, RW, -1), -EINVAL);
    assert_int_equal(map_msg(32, RW, UINT64_MAX - PG + 1, 0, 2 * PG, fd, 32),
                     -EINVAL);
    expect_why("malformed payload");
    assert_int_equal(nr_maps, 0);
    assert_false(first_region(&(struct mu_dma_info){ 0 }));
    close(fd);
}

static void test_map_refused_by_table(void **state)
{
    int fd = memfd(4 * PG);

    (void)state;
    /* Well formed, refused by the table: the code and reason are the
     * table's, and the fd it was given is closed (teardown counts). */
    assert_int_equal(map(0x1234, PG, RW, fd), -EINVAL);
    expect_why("0x1234+0x1000 (offset 0) is not aligned to the 0x1000 page "
               "size");
    assert_int_equal(map_msg(32, RW, 512, 0, PG, fd, 32), -EINVAL);
    expect_why("0+0x1000 (offset 0x200) is not aligned");
    assert_int_equal(map(0, 8 * PG, RW, fd), -EINVAL);
    expect_why("0+0x8000 at offset 0 runs past the end of its file");
    assert_int_equal(map(0, PG, RW, fd), 0);
    assert_int_equal(map(0, PG, RW, fd), -EEXIST);
    expect_why("0+0x1000 overlaps 1 mapped region(s)");
    close(fd);
}

/* ---------------- DMA_UNMAP ---------------- */

static void test_unmap_decoded(void **state)
{
    struct vfu_dma_unmap out;

    (void)state;
    assert_int_equal(map(0, 2 * PG, RW, -1), 0);
    assert_int_equal(map(4 * PG, PG, RW, -1), 0);

    /* The reply is the request, argsz the fixed part's. */
    assert_int_equal(unmap_msg(0, 0, 2 * PG, 24, &out), 0);
    assert_int_equal(out.argsz, 24);
    assert_int_equal(out.flags, 0);
    assert_int_equal(out.addr, 0);
    assert_int_equal(out.size, 2 * PG);
    assert_int_equal(by_reason[MU_UNMAP_CLIENT], 1);

    /* A cut is the table's refusal, with its reason. */
    assert_int_equal(map(0, 2 * PG, RW, -1), 0);
    assert_int_equal(unmap_msg(0, 0, PG, 24, &out), -EINVAL);
    expect_why("0-0xfff cuts region 0-0x1fff");

    /* Unmap-all: every region, with its own reason. */
    assert_int_equal(unmap_msg(VFU_DMA_UNMAP_FLAG_ALL, 0, 0, 24, &out), 0);
    assert_int_equal(out.flags, VFU_DMA_UNMAP_FLAG_ALL);
    assert_int_equal(by_reason[MU_UNMAP_ALL], 2);
    assert_false(first_region(&(struct mu_dma_info){ 0 }));
}

static void test_unmap_malformed(void **state)
{
    struct vfu_dma_unmap out;

    (void)state;
    assert_int_equal(map(8 * PG, PG, RW, -1), 0);
    /* The old migration scheme: without its bitmap header, malformed;
     * with it, not supported.  Nothing is unmapped either way. */
    assert_int_equal(unmap_msg(VFU_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP, 8 * PG,
                               PG, 24, &out), -EINVAL);
    expect_why("malformed payload (24 bytes, 0 fds)");
    assert_int_equal(unmap_msg(VFU_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP, 8 * PG,
                               PG, 40, &out), -ENOTSUP);
    expect_why("GET_DIRTY_BITMAP unmap is the old migration scheme");
    assert_int_equal(unmap_msg(4, 0, 0, 24, &out), -EINVAL);
    assert_int_equal(unmap_msg(VFU_DMA_UNMAP_FLAG_ALL, 0, PG, 24, &out),
                     -EINVAL);
    assert_int_equal(unmap_msg(0, 0, 0, 24, &out), -EINVAL);
    assert_int_equal(unmap_msg(0, 0, PG, 16, &out), -EINVAL);
    assert_int_equal(nr_unmaps, 0);
    assert_true(first_region(&(struct mu_dma_info){ 0 }));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_map_decoded, setup, teardown),
        cmocka_unit_test_setup_teardown(test_map_malformed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_map_refused_by_table, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_unmap_decoded, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unmap_malformed, setup,
                                        teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
