/*
 * test_api.c - the rules of the public API that hold for every call:
 *  - every setup call returns -EBUSY after mu_ctx_realize() and changes
 *    nothing (the setters that used to be void included);
 *  - fds passed in are borrowed: the library dups what it keeps and never
 *    closes the caller's fd, on success or on any failure path;
 *  - extensible structs: reserved space must be zero on input (-EINVAL
 *    otherwise) and is zeroed on output;
 *  - mu_version() matches the header it was built with.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <pthread.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "private.h"
#include "unit_util.h"

static char dir[] = "/tmp/mu-api-XXXXXX";
static char sock[64];

static int group_setup(void **state)
{
    (void)state;
    if (mkdtemp(dir) == NULL)
        return -1;
    snprintf(sock, sizeof(sock), "%s/s", dir);
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    unlink(sock);
    rmdir(dir);
    return 0;
}

static void quiet_log(mu_ctx_t *ctx, enum mu_log_level level, const char *msg)
{
    (void)ctx;
    (void)level;
    (void)msg;
}

static void log_b(mu_ctx_t *ctx, enum mu_log_level level, const char *msg)
{
    (void)ctx;
    (void)level;
    (void)msg;
}

static void command_cb(mu_ctx_t *ctx, uint16_t o, uint16_t n)
{
    (void)ctx;
    (void)o;
    (void)n;
}

static void state_cb(mu_ctx_t *ctx, enum mu_irq_type t, bool on)
{
    (void)ctx;
    (void)t;
    (void)on;
}

static int reset_cb(mu_ctx_t *ctx, enum mu_reset_type t)
{
    (void)ctx;
    (void)t;
    return 0;
}

static int map_cb(mu_ctx_t *ctx, mu_dma_region_t *r)
{
    (void)ctx;
    (void)r;
    return 0;
}

static void unmap_cb(mu_ctx_t *ctx, mu_dma_region_t *r,
                     enum mu_unmap_reason why)
{
    (void)ctx;
    (void)r;
    (void)why;
}

static enum mu_overlap_policy overlap_cb(mu_ctx_t *ctx,
                                         const struct mu_dma_info *in,
                                         mu_dma_region_t *const *old, size_t n)
{
    (void)ctx;
    (void)in;
    (void)old;
    (void)n;
    return MU_OVERLAP_REJECT;
}

static ssize_t access_cb(mu_ctx_t *ctx, void *buf, size_t count,
                         uint64_t offset, bool is_write)
{
    (void)ctx;
    (void)offset;
    if (!is_write)
        memset(buf, 0, count);
    return (ssize_t)count;
}

static void ioev_cb(mu_ctx_t *ctx, uint64_t v)
{
    (void)ctx;
    (void)v;
}

static ssize_t mig_save(mu_ctx_t *ctx, void *buf, size_t len)
{
    (void)ctx;
    (void)buf;
    (void)len;
    return 0;
}

static int mig_load(mu_ctx_t *ctx, const void *buf, size_t len)
{
    (void)ctx;
    (void)buf;
    (void)len;
    return 0;
}

static int memfd(size_t size)
{
    int fd = memfd_create("bar", MFD_CLOEXEC | MFD_ALLOW_SEALING);

    assert_true(fd >= 0);
    assert_int_equal(ftruncate(fd, (off_t)size), 0);
    return fd;
}

static mu_ctx_t *new_ctx(void)
{
    mu_ctx_t *ctx;

    assert_int_equal(mu_ctx_create(&ctx, sock, MU_DEV_PCIE, NULL), 0);
    assert_int_equal(mu_ctx_set_log(ctx, quiet_log, MU_LOG_ERR), 0);
    return ctx;
}

/* ---------------- setup calls after realize ---------------- */

static void test_setters_busy_after_realize(void **state)
{
    static const struct mu_pci_ids ids = { .vendor_id = 0x1234 };
    static const struct mu_mig_callbacks mig = {
        .size = sizeof(mig), .save = mig_save, .load = mig_load,
    };
    static const uint8_t vendor[4] = { 1, 2, 3, 4 };
    mu_ctx_t *ctx = new_ctx();
    int fd = memfd(4096), efd = eventfd(0, EFD_CLOEXEC), fds;

    (void)state;
    assert_true(efd >= 0);
    /* Before realize every setter takes its argument. */
    assert_int_equal(mu_ctx_set_flags(ctx, 0), 0);
    assert_int_equal(mu_dma_set_overlap_policy(ctx, MU_OVERLAP_REJECT), 0);
    assert_int_equal(mu_region_setup(ctx, MU_PCI_BAR0, 4096,
                                     MU_REGION_RW | MU_REGION_MEM, access_cb),
                     0);
    assert_int_equal(mu_ctx_realize(ctx), 0);

    fds = count_fds();
    assert_int_equal(mu_ctx_set_log(ctx, log_b, MU_LOG_DEBUG), -EBUSY);
    assert_ptr_equal(ctx->log_cb, quiet_log);
    assert_int_equal(ctx->log_level, MU_LOG_ERR);
    assert_int_equal(mu_ctx_set_flags(ctx, MU_CTX_ONE_CLIENT), -EBUSY);
    assert_int_equal(ctx->flags, 0);
    assert_int_equal(mu_ctx_set_reset_cb(ctx, reset_cb), -EBUSY);
    assert_null(ctx->reset_cb);
    assert_int_equal(mu_ctx_set_reset_unmaps_dma(ctx, true), -EBUSY);
    assert_false(ctx->reset_unmaps_dma);
    assert_int_equal(mu_pci_set_command_cb(ctx, command_cb), -EBUSY);
    assert_int_equal(mu_irq_set_state_cb(ctx, state_cb), -EBUSY);
    assert_int_equal(mu_dma_set_callbacks(ctx, map_cb, unmap_cb), -EBUSY);
    assert_int_equal(mu_dma_set_overlap_policy(ctx, MU_OVERLAP_REPLACE),
                     -EBUSY);
    assert_int_equal(mu_dma_get_overlap_policy(ctx), MU_OVERLAP_REJECT);
    assert_int_equal(mu_dma_set_overlap_cb(ctx, overlap_cb), -EBUSY);

    /* The setup calls that always returned int. */
    assert_int_equal(mu_ctx_set_limit(ctx, MU_LIMIT_MSG_FDS, 4), -EBUSY);
    assert_int_equal(mu_ctx_set_socket_mode(ctx, 0660), -EBUSY);
    assert_int_equal(mu_ctx_allow_uid(ctx, 0), -EBUSY);
    assert_int_equal(mu_pci_set_ids(ctx, &ids), -EBUSY);
    assert_int_equal(mu_pci_add_pm(ctx), -EBUSY);
    assert_int_equal(mu_pci_add_msi(ctx, 1, true), -EBUSY);
    assert_int_equal(mu_pci_add_msix(ctx, 4, 0, 0, 0, 2048), -EBUSY);
    assert_int_equal(mu_pci_add_pcie(ctx, MU_PCIE_ENDPOINT), -EBUSY);
    assert_int_equal(mu_pci_add_vendor(ctx, vendor, sizeof(vendor)), -EBUSY);
    assert_int_equal(mu_pci_hook_config(ctx, 0x80, 4, access_cb), -EBUSY);
    assert_int_equal(mu_region_setup(ctx, MU_PCI_BAR2, 4096, MU_REGION_RW,
                                     access_cb), -EBUSY);
    assert_int_equal(mu_region_set_mmap(ctx, MU_PCI_BAR0, fd, 0, NULL, 0),
                     -EBUSY);
    assert_int_equal(mu_region_add_ioeventfd(ctx, MU_PCI_BAR0, 0, 4, false, 0,
                                             efd, ioev_cb, 0), -EBUSY);
    assert_int_equal(mu_irq_setup(ctx, MU_IRQ_INTX, 1), -EBUSY);
    assert_int_equal(mu_mig_setup(ctx, &mig), -EBUSY);
    assert_int_equal(mu_ctx_realize(ctx), -EBUSY);
    /* Nothing was taken or closed. */
    assert_int_equal(count_fds(), fds);
    assert_true(fd_open(fd) && fd_open(efd));
    mu_ctx_destroy(ctx);
    close(fd);
    close(efd);
}

static void test_setters_refuse_bad_values(void **state)
{
    mu_ctx_t *ctx = new_ctx();

    (void)state;
    assert_int_equal(mu_ctx_set_flags(ctx, 1u << 7), -EINVAL);
    assert_int_equal(ctx->flags, 0);
    assert_int_equal(mu_dma_set_overlap_policy(ctx, (enum mu_overlap_policy)7),
                     -EINVAL);
    assert_int_equal(mu_dma_get_overlap_policy(ctx), MU_OVERLAP_REJECT);
    assert_int_equal(mu_dma_set_overlap_policy(ctx, MU_OVERLAP_REPLACE), 0);
    assert_int_equal(mu_dma_get_overlap_policy(ctx), MU_OVERLAP_REPLACE);
    mu_ctx_destroy(ctx);
}

/* ---------------- fd ownership: borrowed, dup'ed when kept ---------------- */

static void test_ioeventfd_fd_borrowed(void **state)
{
    mu_ctx_t *ctx = new_ctx();
    int efd = eventfd(0, EFD_CLOEXEC), fds, fl;

    (void)state;
    assert_true(efd >= 0);
    assert_int_equal(mu_region_setup(ctx, MU_PCI_BAR0, 4096,
                                     MU_REGION_RW | MU_REGION_MEM, access_cb),
                     0);
    fds = count_fds();
    /* Every failure leaves the caller's fd open and opens nothing. */
    assert_int_equal(mu_region_add_ioeventfd(ctx, MU_PCI_BAR2, 0, 4, false, 0,
                                             efd, ioev_cb, 0), -EINVAL);
    assert_int_equal(mu_region_add_ioeventfd(ctx, MU_PCI_CONFIG, 0, 4, false,
                                             0, efd, ioev_cb, 0), -EINVAL);
    assert_int_equal(mu_region_add_ioeventfd(ctx, MU_PCI_BAR0, 0, 3, false, 0,
                                             efd, ioev_cb, 0), -EINVAL);
    assert_int_equal(mu_region_add_ioeventfd(ctx, MU_PCI_BAR0, 4094, 4, false,
                                             0, efd, ioev_cb, 0), -EINVAL);
    assert_int_equal(mu_region_add_ioeventfd(ctx, MU_PCI_BAR0, 0, 0, true, 0,
                                             efd, ioev_cb, 0), -EINVAL);
    assert_int_equal(count_fds(), fds);
    assert_true(fd_open(efd));
    /* A bad fd is the caller's error, not a crash or a close. */
    assert_int_equal(mu_region_add_ioeventfd(ctx, MU_PCI_BAR0, 0, 4, false, 0,
                                             1000, ioev_cb, 0), -EBADF);
    assert_int_equal(count_fds(), fds);

    /* Success: the library keeps a copy, the caller's stays its own. */
    assert_int_equal(mu_region_add_ioeventfd(ctx, MU_PCI_BAR0, 0, 4, false, 0,
                                             efd, ioev_cb, 0), 0);
    assert_int_equal(count_fds(), fds + 1);
    assert_true(fd_open(efd));
    fl = fcntl(efd, F_GETFL);
    assert_true(fl >= 0 && (fl & O_NONBLOCK));     /* documented: shared */
    close(efd);
    /* One the library creates is its own too. */
    assert_int_equal(mu_region_add_ioeventfd(ctx, MU_PCI_BAR0, 8, 4, false, 0,
                                             -1, ioev_cb, 1), 0);
    assert_int_equal(count_fds(), fds + 1);
    mu_ctx_destroy(ctx);
    assert_int_equal(count_fds(), fds - 1);
}

static void test_mmap_fd_borrowed(void **state)
{
    mu_ctx_t *ctx = new_ctx();
    int fd = memfd(8192), fds, unsealable;
    struct mu_mmap_area bad = { .offset = 1, .size = 4096 };

    (void)state;
    unsealable = memfd_create("nosealing", MFD_CLOEXEC);
    assert_true(unsealable >= 0);
    assert_int_equal(ftruncate(unsealable, 8192), 0);
    assert_int_equal(mu_region_setup(ctx, MU_PCI_BAR0, 8192,
                                     MU_REGION_RW | MU_REGION_MEM, access_cb),
                     0);
    fds = count_fds();
    assert_int_equal(mu_region_set_mmap(ctx, MU_PCI_BAR2, fd, 0, NULL, 0),
                     -EINVAL);
    assert_int_equal(mu_region_set_mmap(ctx, MU_PCI_BAR0, fd, 1, NULL, 0),
                     -EINVAL);
    assert_int_equal(mu_region_set_mmap(ctx, MU_PCI_BAR0, fd, 0, &bad, 1),
                     -EINVAL);
    assert_int_equal(mu_region_set_mmap(ctx, MU_PCI_BAR0, unsealable, 0, NULL,
                                        0), -EPERM);
    assert_int_equal(count_fds(), fds);
    assert_true(fd_open(fd) && fd_open(unsealable));
    assert_int_equal(mu_region_set_mmap(ctx, MU_PCI_BAR0, fd, 0, NULL, 0), 0);
    assert_int_equal(count_fds(), fds + 1);
    assert_true(fd_open(fd));
    /* Set again: the first copy is closed, not leaked. */
    assert_int_equal(mu_region_set_mmap(ctx, MU_PCI_BAR0, fd, 0, NULL, 0), 0);
    assert_int_equal(count_fds(), fds + 1);
    mu_ctx_destroy(ctx);
    assert_int_equal(count_fds(), fds);
    close(fd);
    close(unsealable);
}

/* ---------------- extensible structs ---------------- */

static void test_reserved_space(void **state)
{
    struct mu_pci_ids ids = { .vendor_id = 0x1234, .device_id = 0x5678 };
    struct mu_dma_stats st;
    mu_ctx_t *ctx = new_ctx();

    (void)state;
    /* In: reserved must be 0, and a refusal changes nothing. */
    ids.reserved[6] = 1;
    assert_int_equal(mu_pci_set_ids(ctx, &ids), -EINVAL);
    ids.reserved[6] = 0;
    ids.reserved0 = 1;
    assert_int_equal(mu_pci_set_ids(ctx, &ids), -EINVAL);
    assert_int_equal(mu_pci_config(ctx)[0], 0);
    ids.reserved0 = 0;
    assert_int_equal(mu_pci_set_ids(ctx, &ids), 0);
    assert_int_equal(mu_pci_config(ctx)[0], 0x34);
    /* Out: reserved is set to 0. */
    memset(&st, 0xa5, sizeof(st));
    mu_dma_get_stats(ctx, &st);
    assert_int_equal(st.regions, 0);
    for (size_t i = 0; i < sizeof(st.reserved) / sizeof(st.reserved[0]); i++)
        assert_int_equal(st.reserved[i], 0);
    mu_ctx_destroy(ctx);
}

/* ---------------- context-thread-only calls ---------------- */

static int count_cb(mu_ctx_t *ctx, mu_dma_region_t *r, void *arg)
{
    (void)ctx;
    (void)r;
    (*(int *)arg)++;
    return 0;
}

static void *poll_once(void *arg)
{
    mu_ctx_t *ctx = arg;
    int n = 0;

    /* The first poll makes this the context thread; its calls pass. */
    assert_int_equal(mu_ctx_poll(ctx), 0);
    assert_int_equal(mu_dma_foreach(ctx, count_cb, &n), 0);
    assert_false(mu_region_ioeventfds_taken(ctx, MU_PCI_BAR0));
    return NULL;
}

/* Run call in a child; true if it died of SIGABRT (a failed assert). */
static bool aborts(mu_ctx_t *ctx, int which)
{
    pid_t pid = fork();
    int st, n = 0;
    uint64_t a, b;

    assert_true(pid >= 0);
    if (pid == 0) {
        signal(SIGABRT, SIG_DFL);
        close(2);           /* the assert's message is expected */
        switch (which) {
        case 0:
            mu_dma_foreach(ctx, count_cb, &n);
            break;
        case 1:
            mu_region_ioeventfds_taken(ctx, MU_PCI_BAR0);
            break;
        default:
            mu_mig_pending(ctx, &a, &b);
            break;
        }
        _exit(0);
    }
    assert_int_equal(waitpid(pid, &st, 0), pid);
    return WIFSIGNALED(st) && WTERMSIG(st) == SIGABRT;
}

static void test_ctx_thread_asserts(void **state)
{
    mu_ctx_t *ctx = new_ctx();
    pthread_t t;
    int n = 0;

    (void)state;
    assert_int_equal(mu_region_setup(ctx, MU_PCI_BAR0, 4096,
                                     MU_REGION_RW | MU_REGION_MEM, access_cb),
                     0);
    /* No context thread yet: setup code may call them. */
    assert_int_equal(mu_dma_foreach(ctx, count_cb, &n), 0);
    assert_int_equal(mu_ctx_realize(ctx), 0);
    assert_int_equal(mu_ctx_set_limit(ctx, MU_LIMIT_DMA_IDLE_MS, 0), 0);
    assert_int_equal(pthread_create(&t, NULL, poll_once, ctx), 0);
    assert_int_equal(pthread_join(t, NULL), 0);
#ifdef NDEBUG
    skip();
#else
    /* From another thread now: each one trips its assert. */
    for (int i = 0; i < 3; i++)
        assert_true(aborts(ctx, i));
#endif
    mu_ctx_destroy(ctx);
}

/* ---------------- version ---------------- */

static void test_version(void **state)
{
    char want[32];
    unsigned major, minor, patch;

    (void)state;
    /* The running library's numbers are the header's ... */
    assert_int_equal(mu_version(), MU_VERSION);
    assert_int_equal(MU_VERSION, MU_VERSION_NUM(MU_VERSION_MAJOR,
                                                 MU_VERSION_MINOR,
                                                 MU_VERSION_PATCH));
    /* ... and the string (meson's project version) says the same, so a
     * version bumped in one place and not the other fails here. */
    snprintf(want, sizeof(want), "%u.%u.%u", MU_VERSION_MAJOR,
             MU_VERSION_MINOR, MU_VERSION_PATCH);
    assert_string_equal(mu_version_string(), want);
    assert_int_equal(sscanf(mu_version_string(), "%u.%u.%u", &major, &minor,
                            &patch), 3);
    assert_int_equal(MU_VERSION_NUM(major, minor, patch), mu_version());
    assert_true(MU_VERSION_NUM(0, 1, 0) < MU_VERSION_NUM(0, 2, 0));
    assert_true(MU_VERSION_NUM(0, 255, 255) < MU_VERSION_NUM(1, 0, 0));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_setters_busy_after_realize),
        cmocka_unit_test(test_setters_refuse_bad_values),
        cmocka_unit_test(test_ioeventfd_fd_borrowed),
        cmocka_unit_test(test_mmap_fd_borrowed),
        cmocka_unit_test(test_reserved_space),
        cmocka_unit_test(test_ctx_thread_asserts),
        cmocka_unit_test(test_version),
    };

    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
