/*
 * Unit tests for what region.c tells the command layer (lib/region.c:
 * mu_region_describe, mu_region_ioeventfds): plain values, no messages.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <unistd.h>

#include "private.h"
#include "unit_util.h"

static ssize_t cb(mu_ctx_t *ctx, void *buf, size_t count, uint64_t off,
                  bool is_write)
{
    (void)ctx;
    (void)off;
    if (!is_write)
        memset(buf, 0, count);
    return (ssize_t)count;
}

static void test_describe(void **state)
{
    const struct mu_mmap_area areas[2] = { { 0, 0x1000 }, { 0x3000, 0x1000 } };
    int base = count_fds(), fd = memfd_create("bar", MFD_CLOEXEC | MFD_ALLOW_SEALING), efd;
    struct mu_region_desc d;
    const struct mu_ioeventfd *list;
    unsigned n = 99;
    mu_ctx_t *ctx;

    (void)state;
    assert_true(fd >= 0);
    assert_int_equal(ftruncate(fd, 0x8000), 0);
    assert_int_equal(mu_ctx_create(&ctx, "/tmp/test_region.sock", MU_DEV_PCI,
                                   NULL), 0);
    assert_int_equal(mu_region_setup(ctx, 0, 0x4000, MU_REGION_RW |
                                     MU_REGION_MEM, cb), 0);
    assert_int_equal(mu_region_set_mmap(ctx, 0, fd, 0x2000, areas, 2), 0);
    assert_int_equal(mu_region_setup(ctx, 2, 0x100, MU_REGION_READ |
                                     MU_REGION_MEM, cb), 0);
    efd = eventfd(0, EFD_CLOEXEC);
    assert_int_equal(mu_region_add_ioeventfd(ctx, 2, 0x10, 4, true, 7, efd,
                                             NULL, 0), 0);
    close(efd);     /* borrowed: the library keeps its own copy */

    assert_int_equal(mu_region_describe(ctx, 0, &d), 0);
    assert_int_equal(d.flags, MU_REGION_READ | MU_REGION_WRITE);
    assert_int_equal(d.size, 0x4000);
    assert_true(d.fd >= 0);
    assert_int_equal(d.fd_offset, 0x2000);
    assert_int_equal(d.nr_areas, 2);
    assert_int_equal(d.areas[1].offset, 0x3000);

    /* Read-only, no fd; the MEM flag is not the client's business. */
    assert_int_equal(mu_region_describe(ctx, 2, &d), 0);
    assert_int_equal(d.flags, MU_REGION_READ);
    assert_int_equal(d.size, 0x100);
    assert_int_equal(d.fd, -1);
    assert_int_equal(d.nr_areas, 0);

    /* Not set up: nothing; config space: pci.c's size; past the end. */
    assert_int_equal(mu_region_describe(ctx, 1, &d), 0);
    assert_int_equal(d.flags, 0);
    assert_int_equal(d.size, 0);
    assert_int_equal(d.fd, -1);
    assert_int_equal(mu_region_describe(ctx, MU_PCI_CONFIG, &d), 0);
    assert_int_equal(d.flags, MU_REGION_READ | MU_REGION_WRITE);
    assert_int_equal(d.size, mu_pci_config_size(ctx));
    assert_int_equal(mu_region_describe(ctx, ctx->nr_regions, &d), -EINVAL);
    assert_int_equal(mu_region_describe(ctx, UINT32_MAX, &d), -EINVAL);

    assert_int_equal(mu_region_ioeventfds(ctx, 2, &list, &n), 0);
    assert_int_equal(n, 1);
    assert_int_equal(list[0].offset, 0x10);
    assert_int_equal(list[0].size, 4);
    assert_true(list[0].datamatch);
    assert_int_equal(list[0].data, 7);
    assert_int_equal(mu_region_ioeventfds(ctx, 0, &list, &n), 0);
    assert_int_equal(n, 0);
    assert_int_equal(mu_region_ioeventfds(ctx, 1, &list, &n), -EINVAL);
    assert_int_equal(mu_region_ioeventfds(ctx, 99, &list, &n), -EINVAL);

    assert_false(mu_region_ioeventfds_taken(ctx, 2));
    mu_region_ioeventfds_given(ctx, 2, true);
    assert_true(mu_region_ioeventfds_taken(ctx, 2));
    mu_regions_client_gone(ctx);
    assert_false(mu_region_ioeventfds_taken(ctx, 2));
    mu_region_ioeventfds_given(ctx, 1, true);       /* absent: ignored */
    assert_false(mu_region_ioeventfds_taken(ctx, 1));

    mu_ctx_destroy(ctx);
    close(fd);
    assert_int_equal(count_fds(), base);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_describe),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
