/*
 * Unit tests for the DMA table's held files (lib/dma_file.c): one entry
 * per (st_dev, st_ino, access mode), counted users, the fd closed with the
 * last one, the shrink seal sticky, and the table growing past many files
 * with every entry still found.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "dma_file.h"

static int memfd(void)
{
    int fd = memfd_create("dma_file", MFD_CLOEXEC);

    assert_true(fd >= 0);
    return fd;
}

static struct stat st_of(int fd)
{
    struct stat st;

    assert_int_equal(fstat(fd, &st), 0);
    return st;
}

static bool is_open(int fd)
{
    return fcntl(fd, F_GETFD) >= 0;
}

static void test_share_and_release(void **state)
{
    struct mu_dma_files t;
    struct mu_dma_file *a, *b, *c, *d;
    int fd = memfd(), dup1 = dup(fd), other = memfd();
    struct stat st = st_of(fd);

    (void)state;
    mu_dma_files_init(&t);
    assert_null(mu_dma_files_find(&t, &st, O_RDWR));
    assert_int_equal(mu_dma_files_get(&t, fd, &st, O_RDWR, false, &a), 0);
    assert_int_equal(a->fd, fd);
    assert_int_equal(a->users, 1);
    assert_false(mu_dma_file_shrink_sealed(a));
    assert_ptr_equal(mu_dma_files_find(&t, &st, O_RDWR), a);

    /* Same file, same mode: the held one, the new fd left to the caller. */
    assert_int_equal(mu_dma_files_get(&t, dup1, &st, O_RDWR, true, &b), 0);
    assert_ptr_equal(b, a);
    assert_int_equal(a->users, 2);
    assert_true(mu_dma_file_shrink_sealed(a));      /* learnt, and sticky */
    assert_true(is_open(dup1));
    close(dup1);

    /* Same file, other mode; other file: entries of their own. */
    assert_null(mu_dma_files_find(&t, &st, O_RDONLY));
    dup1 = dup(fd);
    assert_int_equal(mu_dma_files_get(&t, dup1, &st, O_RDONLY, false, &c), 0);
    assert_ptr_not_equal(c, a);
    assert_int_equal(c->fd, dup1);
    st = st_of(other);
    assert_int_equal(mu_dma_files_get(&t, other, &st, O_RDWR, false, &d), 0);
    assert_ptr_not_equal(d, a);
    assert_int_equal(t.count, 3);

    /* The last user closes. */
    mu_dma_files_put(&t, a);
    assert_true(is_open(fd));
    assert_true(mu_dma_file_shrink_sealed(a));
    mu_dma_files_put(&t, a);
    assert_false(is_open(fd));
    mu_dma_files_put(&t, c);
    assert_false(is_open(dup1));
    assert_true(is_open(other));
    mu_dma_files_put(&t, d);
    assert_false(is_open(other));
    assert_int_equal(t.count, 0);
    mu_dma_files_fini(&t);
}

/* Enough files to double the buckets several times; each is found, and
 * releasing them in another order than taken unlinks the right one. */
static void test_many_files(void **state)
{
    enum { N = 200 };
    struct mu_dma_files t;
    struct mu_dma_file *f[N];
    struct stat st[N];
    int fd[N];

    (void)state;
    mu_dma_files_init(&t);
    for (int i = 0; i < N; i++) {
        fd[i] = memfd();
        st[i] = st_of(fd[i]);
        assert_int_equal(mu_dma_files_get(&t, fd[i], &st[i], O_RDWR, false,
                                          &f[i]), 0);
    }
    assert_int_equal(t.count, N);
    assert_true(t.nbuckets >= N);
    for (int i = 0; i < N; i++)
        assert_ptr_equal(mu_dma_files_find(&t, &st[i], O_RDWR), f[i]);
    for (int i = 0; i < N; i += 2)
        mu_dma_files_put(&t, f[i]);
    for (int i = 0; i < N; i++) {
        assert_ptr_equal(mu_dma_files_find(&t, &st[i], O_RDWR),
                         i % 2 ? f[i] : NULL);
        assert_int_equal(is_open(fd[i]), i % 2 == 1);
    }
    for (int i = N - 1; i > 0; i -= 2)
        mu_dma_files_put(&t, f[i]);
    assert_int_equal(t.count, 0);
    mu_dma_files_fini(&t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_share_and_release),
        cmocka_unit_test(test_many_files),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
