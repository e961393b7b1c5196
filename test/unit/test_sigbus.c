/*
 * Unit tests for the SIGBUS handler (lib/sigbus.c) and its use by the DMA
 * table (lib/dma.c): a fault in a registered range is answered with zeros,
 * recorded and announced on the eventfd; anything else goes to the handler
 * installed before; a region whose file shrank under a mu_dma_get()
 * pointer reads zeros, is poisoned and is logged by the context.
 *
 * The test order matters: the first test installs a handler of its own
 * before the library installs one, to see faults chained to it.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <unistd.h>

#include "private.h"
#include "dma.h"
#include "sigbus.h"
#include "unit_util.h"

#define PG 4096ul

/* ---------------- a handler installed before the library's ------------- */

static volatile sig_atomic_t foreign_calls;

/* Stands for a device's own use of SIGBUS: it fixes its own faults. */
static void foreign_handler(int sig, siginfo_t *si, void *uc)
{
    (void)sig;
    (void)uc;
    foreign_calls++;
    if (si->si_code > 0)
        mmap((void *)((uintptr_t)si->si_addr & ~(PG - 1)), PG,
             PROT_READ | PROT_WRITE, MAP_FIXED | MAP_PRIVATE | MAP_ANONYMOUS,
             -1, 0);
}

static int shrunk_memfd_map(size_t len, uint8_t **p)
{
    int fd = memfd_create("sigbus", MFD_CLOEXEC);

    assert_true(fd >= 0);
    assert_int_equal(ftruncate(fd, (off_t)len), 0);
    *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    assert_true(*p != MAP_FAILED);
    memset(*p, 0xa5, len);
    assert_int_equal(ftruncate(fd, 0), 0);
    return fd;
}

static void test_chains_foreign_faults(void **state)
{
    struct sigaction sa = { .sa_sigaction = foreign_handler,
                            .sa_flags = SA_SIGINFO };
    uint8_t *anon, *p;
    int efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC), fd, slot;
    volatile uint8_t v;

    (void)state;
    assert_true(efd >= 0);
    sigemptyset(&sa.sa_mask);
    assert_int_equal(sigaction(SIGBUS, &sa, NULL), 0);
    anon = mmap(NULL, PG, PROT_READ | PROT_WRITE,
                MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    assert_true(anon != MAP_FAILED);
    /* The first registration installs the library's handler. */
    slot = mu_sigbus_register(anon, PG, PROT_READ | PROT_WRITE, efd);
    assert_true(slot >= 0);
    assert_int_equal(mu_sigbus_own(), -EBUSY);

    /* A sent SIGBUS and a fault outside every range: both the device's. */
    raise(SIGBUS);
    assert_int_equal(foreign_calls, 1);
    fd = shrunk_memfd_map(PG, &p);
    v = p[10];
    assert_int_equal(v, 0);
    assert_int_equal(foreign_calls, 2);
    assert_int_equal(mu_sigbus_faults(), 0);

    assert_int_equal(mu_sigbus_unregister(slot), 0);
    munmap(p, PG);
    munmap(anon, PG);
    close(fd);
    close(efd);
}

/* ---------------- the handler's logic, with synthesized siginfo -------- */

static bool handle_at(void *addr)
{
    siginfo_t si;

    memset(&si, 0, sizeof(si));
    si.si_signo = SIGBUS;
    si.si_code = BUS_ADRERR;
    si.si_addr = addr;
    return mu_sigbus_handle(&si);
}

static void test_handle_logic(void **state)
{
    int efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC), a, b;
    uint8_t *m = mmap(NULL, 5 * PG, PROT_READ | PROT_WRITE,
                      MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    uint64_t faults = mu_sigbus_faults(), v;
    siginfo_t other;

    (void)state;
    assert_true(efd >= 0 && m != MAP_FAILED);
    memset(m, 0x5a, 5 * PG);
    /* Two neighbouring ranges, one page apart from the rest of m. */
    a = mu_sigbus_register(m + PG, PG, PROT_READ | PROT_WRITE, efd);
    b = mu_sigbus_register(m + 2 * PG, 2 * PG, PROT_READ | PROT_WRITE, efd);
    assert_true(a >= 0 && b >= 0 && a != b);

    /* Outside: not ours, nothing changed, nobody woken. */
    assert_false(handle_at(m));
    assert_false(handle_at(m + 4 * PG));
    memset(&other, 0, sizeof(other));
    other.si_signo = SIGSEGV;
    other.si_addr = m + PG;
    assert_false(mu_sigbus_handle(&other));
    assert_false(mu_sigbus_handle(NULL));
    assert_int_equal(read(efd, &v, sizeof(v)), -1);
    assert_int_equal(m[PG], 0x5a);

    /* Inside b: all of b (and only b) reads zeros, the address is kept. */
    assert_true(handle_at(m + 3 * PG + 17));
    assert_int_equal(mu_sigbus_faults(), faults + 1);
    assert_int_equal(mu_sigbus_fault_addr(b), (uintptr_t)(m + 3 * PG + 17));
    assert_int_equal(mu_sigbus_fault_addr(a), 0);
    for (size_t i = 2 * PG; i < 4 * PG; i++)
        assert_int_equal(m[i], 0);
    assert_int_equal(m[PG], 0x5a);
    assert_int_equal(m[4 * PG], 0x5a);
    assert_int_equal(read(efd, &v, sizeof(v)), sizeof(v));
    assert_int_equal(v, 1);
    m[2 * PG] = 7;          /* writable still */

    /* A second fault keeps the first address. */
    assert_true(handle_at(m + 2 * PG));
    assert_int_equal(mu_sigbus_fault_addr(b), (uintptr_t)(m + 3 * PG + 17));

    /* Withdrawn ranges are not matched; their slots are reused. */
    assert_int_equal(mu_sigbus_unregister(b), (uintptr_t)(m + 3 * PG + 17));
    assert_int_equal(mu_sigbus_unregister(a), 0);
    assert_false(handle_at(m + PG));
    assert_false(handle_at(m + 2 * PG));
    a = mu_sigbus_register(m, PG, PROT_READ, efd);
    assert_true(a >= 0);
    assert_int_equal(mu_sigbus_fault_addr(a), 0);
    assert_int_equal(mu_sigbus_unregister(a), 0);
    assert_int_equal(mu_sigbus_register(NULL, PG, PROT_READ, efd), -EINVAL);
    assert_int_equal(mu_sigbus_register(m, 0, PROT_READ, efd), -EINVAL);
    munmap(m, 5 * PG);
    close(efd);
}

/* A real fault: the file under a registered mapping shrank. */
static void test_real_fault(void **state)
{
    int efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC), fd, slot;
    uint64_t faults = mu_sigbus_faults(), v;
    uint8_t *p;

    (void)state;
    fd = shrunk_memfd_map(4 * PG, &p);
    slot = mu_sigbus_register(p, 4 * PG, PROT_READ | PROT_WRITE, efd);
    assert_true(slot >= 0);
    assert_int_equal(((volatile uint8_t *)p)[2 * PG + 3], 0);
    p[3 * PG] = 1;
    assert_int_equal(p[3 * PG], 1);
    assert_int_equal(mu_sigbus_faults(), faults + 1);
    assert_int_equal(read(efd, &v, sizeof(v)), sizeof(v));
    assert_int_equal(mu_sigbus_unregister(slot), (uintptr_t)(p + 2 * PG + 3));
    assert_int_equal(munmap(p, 4 * PG), 0);    /* anonymous now: still fine */
    close(fd);
    close(efd);
}

/* ---------------- through the DMA table ---------------- */

static char last_err[512];
static unsigned nr_errs;

static void log_cb(mu_ctx_t *c, enum mu_log_level level, const char *msg)
{
    (void)c;
    if (level == MU_LOG_ERR) {
        snprintf(last_err, sizeof(last_err), "%s", msg);
        nr_errs++;
    }
}

static int dma_map(mu_ctx_t *ctx, uint64_t iova, uint64_t size, int fd)
{
    struct mu_dma_info info = { .iova = iova, .size = size,
                                .prot = MU_DMA_READ | MU_DMA_WRITE,
                                .has_fd = true };

    return mu_dma_add(ctx, &info, dup(fd));     /* the table takes the dup */
}

static void test_dma_pointer_survives_truncate(void **state)
{
    const uint64_t iova = 0x100000, size = 8 * PG;
    int base = count_fds(), fd, rc;
    struct pollfd pfd;
    uint8_t buf[64];
    char dir[] = "/tmp/mu-sigbus-XXXXXX", sock[64];
    mu_ctx_t *ctx;
    mu_sg_t sg;
    char want[64];

    (void)state;
    assert_non_null(mkdtemp(dir));
    snprintf(sock, sizeof(sock), "%s/s", dir);
    assert_int_equal(mu_ctx_create(&ctx, sock, MU_DEV_PCI, NULL), 0);
    assert_int_equal(mu_ctx_set_log(ctx, log_cb, MU_LOG_ERR), 0);
    assert_int_equal(mu_ctx_realize(ctx), 0);   /* the eventfd is watched */
    ctx->pgsize = PG;
    vfu_caps_default(&ctx->peer);
    fd = memfd_create("guest", MFD_CLOEXEC);
    assert_true(fd >= 0);
    assert_int_equal(ftruncate(fd, (off_t)size), 0);
    assert_int_equal(dma_map(ctx, iova, size, fd), 0);

    /* Fault in, use the pointer, keep it: then the client truncates. */
    assert_int_equal(mu_dma_get(ctx, iova, size, MU_DMA_READ | MU_DMA_WRITE,
                                &sg, 1), 1);
    memset(sg.addr, 0x77, size);
    assert_int_equal(ftruncate(fd, 0), 0);
    /* Direct pointer access: zeros, no signal reaches the test. */
    assert_int_equal(((volatile uint8_t *)sg.addr)[5 * PG + 9], 0);
    ((uint8_t *)sg.addr)[6 * PG] = 3;
    mu_dma_put(ctx, &sg, 1);
    /* The copy helper reads the same zeros. */
    assert_int_equal(mu_dma_read(ctx, iova + PG, buf, sizeof(buf)), 0);
    for (size_t i = 0; i < sizeof(buf); i++)
        assert_int_equal(buf[i], 0);

    /* The context is woken, names the region and the address. */
    pfd = (struct pollfd){ .fd = mu_dma_poison_fd(ctx), .events = POLLIN };
    assert_int_equal(poll(&pfd, 1, 0), 1);
    mu_dma_on_poison(ctx);
    assert_int_equal(nr_errs, 1);
    snprintf(want, sizeof(want), "SIGBUS at iova %#" PRIx64, iova + 5 * PG + 9);
    assert_non_null(strstr(last_err, want));
    assert_non_null(strstr(last_err, "DMA region 0x100000+0x8000"));
    mu_dma_on_poison(ctx);      /* nothing new: no second line */
    assert_int_equal(nr_errs, 1);

    /* Evicted, the region is never mapped from its file again. */
    assert_int_equal(mu_ctx_set_limit(ctx, MU_LIMIT_DMA_MAPPED_BYTES, PG), 0);
    mu_dma_tick(ctx);
    rc = mu_dma_get(ctx, iova, PG, MU_DMA_READ, &sg, 1);
    assert_int_equal(rc, -EFAULT);

    mu_ctx_destroy(ctx);
    rmdir(dir);
    close(fd);
    assert_int_equal(count_fds(), base);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_chains_foreign_faults),   /* must be first */
        cmocka_unit_test(test_handle_logic),
        cmocka_unit_test(test_real_fault),
        cmocka_unit_test(test_dma_pointer_survives_truncate),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
