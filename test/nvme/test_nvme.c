/*
 * test_nvme - integration test of the nvme sample: run it, drive it like
 * the Linux driver would through the test driver (driver.h), check what
 * comes back.
 *
 *   test_nvme PATH-TO-nvme
 *
 * Four groups run the same tests against differently configured
 * controllers: trapped doorbells with two RAM namespaces of 512-byte
 * blocks; polled doorbells with two namespaces in one file, 4 KiB blocks;
 * trapped doorbells kicked through ioeventfds, one RAM namespace; polled
 * doorbells served by two poller threads, one RAM namespace of 4 KiB
 * blocks (queue q on poller q % 2).  With
 * MU_VALGRIND=1 the device runs under valgrind (leaks fail it).  Waits are
 * longer and loops shorter by slow (test/slow.h: valgrind, sanitizers,
 * MU_TEST_SLOW).
 *
 * This file: the device process, group setup, shared helpers, identity
 * tests.  nvme_data.c, nvme_admin.c and nvme_reset.c hold the rest.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "test_nvme.h"
#include "../slow.h"

struct env *E;
int slow = 1;
static const char *nvme_bin;

/* ---------------- helpers ---------------- */

void msleep(unsigned ms)
{
    struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };

    nanosleep(&ts, NULL);
}

uint64_t mono_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

unsigned rnd(unsigned n)
{
    E->seed = E->seed * 1103515245u + 12345u;
    return (E->seed >> 8) % n;
}

void fill(uint8_t *p, size_t len)
{
    for (size_t i = 0; i < len; i++)
        p[i] = (uint8_t)rnd(256);
}

void *va(uint64_t iova)
{
    void *p = nvd_va(E->d, iova);

    assert_non_null(p);
    return p;
}

size_t blk(void)
{
    return (size_t)1 << E->shift;
}

/* The block at a byte offset of the namespace. */
uint64_t at(uint64_t bytes)
{
    return bytes >> E->shift;
}

int rw(uint8_t opc, uint32_t nsid, uint64_t slba, size_t len, uint64_t iova)
{
    return nvd_rw(E->d, 1, opc, nsid, slba, (uint32_t)(len >> E->shift),
                  iova, len);
}

void opts_for(struct nvd_opts *o, bool intx)
{
    *o = (struct nvd_opts){
        .sock = E->sock,
        .mem_size = 64 * MIB,
        .nr_regions = 2,
        .fdless_size = 1 * MIB,
        .db = E->db,
        .irq = intx ? NVD_IRQ_INTX : NVD_IRQ_MSIX,
        .wait_irq = intx,
        .nr_io_queues = 2,
        .timeout_ms = 5000 * slow,
    };
}

int connect_and_bringup(bool intx)
{
    struct nvd_opts o;
    int rc = -ENOENT;

    opts_for(&o, intx);
    for (int i = 0; i < 500 * slow; i++) {
        rc = nvd_open(&E->d, &o);
        if (rc != -ECONNREFUSED && rc != -ENOENT)
            break;
        msleep(20);
    }
    if (rc < 0)
        return rc;
    rc = nvd_bringup(E->d);
    if (rc < 0)
        return rc;
    /* Test buffers sit far above what the driver allocates. */
    E->pool = nvd_region_iova(E->d, 1) - MIB;
    E->check = nvd_region_iova(E->d, 1) + 2 * MIB;
    return E->d->bump < 16 * MIB ? 0 : -ENOMEM;
}

void shadow_check(uint64_t slba, const uint8_t *buf, size_t len)
{
    assert_memory_equal(buf, E->shadow + (slba << E->shift), len);
}

/* One random write or read of ns 1 against the shadow copy. */
void random_io(uint64_t buf_iova, size_t room)
{
    size_t maxb = (room < MAX_XFER ? room : MAX_XFER) >> E->shift;
    size_t nlb = 1 + rnd((unsigned)maxb), len = nlb << E->shift;
    uint64_t slba = rnd((unsigned)((SHADOW_BYTES >> E->shift) - nlb + 1));
    uint64_t off = (uint64_t)rnd((unsigned)(room - len) / 4 + 1) * 4;
    uint8_t *p = va(buf_iova + off);
    unsigned qid = 1 + rnd(E->d->nr_ioq);

    if (rnd(2)) {
        fill(p, len);
        assert_status(nvd_rw(E->d, qid, NVME_IO_WRITE, 1, slba,
                             (uint32_t)nlb, buf_iova + off, len), 0);
        memcpy(E->shadow + (slba << E->shift), p, len);
    } else {
        memset(p, 0xee, len);
        assert_status(nvd_rw(E->d, qid, NVME_IO_READ, 1, slba,
                             (uint32_t)nlb, buf_iova + off, len), 0);
        shadow_check(slba, p, len);
    }
}

void check_data(void)
{
    memset(va(E->check), 0, MAX_XFER);
    assert_status(rw(NVME_IO_READ, 1, 0, MAX_XFER, E->check), 0);
    shadow_check(0, va(E->check), MAX_XFER);
}

uint64_t le64_at(const uint8_t *p)
{
    uint64_t v;

    memcpy(&v, p, 8);
    return v;
}

/* ---------------- device process ---------------- */

static int spawn(void)
{
    const char *argv[32];
    int n = 0;

    if (mu_test_valgrind_env()) {
        argv[n++] = "valgrind";
        argv[n++] = "-q";
        argv[n++] = "--error-exitcode=99";
        argv[n++] = "--leak-check=full";
        argv[n++] = "--errors-for-leak-kinds=definite,indirect";
    }
    argv[n++] = nvme_bin;
    for (int i = 0; E->args[i] != NULL; i++) {
        if (strcmp(E->args[i], "@backing") == 0) {
            argv[n++] = "--backing";
            argv[n++] = E->backing;
        } else {
            argv[n++] = E->args[i];
        }
    }
    if (getenv("NVME_TEST_VERBOSE") != NULL)
        argv[n++] = "-v";
    argv[n++] = E->sock;
    argv[n] = NULL;
    E->pid = fork();
    if (E->pid < 0)
        return -errno;
    if (E->pid == 0) {
        execvp(argv[0], (char *const *)argv);
        _exit(127);
    }
    return 0;
}

/* SIGTERM and collect the exit status (-1 if it did not exit). */
static int stop_device(void)
{
    int st = 0;

    if (E->pid <= 0)
        return -1;
    kill(E->pid, SIGTERM);
    for (int i = 0; i < 3000 * slow; i++) {
        pid_t r = waitpid(E->pid, &st, WNOHANG);

        if (r == E->pid) {
            E->pid = 0;
            return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
        }
        msleep(10);
    }
    kill(E->pid, SIGKILL);
    waitpid(E->pid, &st, 0);
    E->pid = 0;
    return -1;
}

/* The group's env is in E (cmocka has no initial group state). */
static int group_setup(void **state)
{
    (void)state;
    snprintf(E->dir, sizeof(E->dir), "/tmp/nvme-test-XXXXXX");
    if (mkdtemp(E->dir) == NULL)
        return -1;
    snprintf(E->sock, sizeof(E->sock), "%s/nvme.sock", E->dir);
    snprintf(E->backing, sizeof(E->backing), "%s/disk.img", E->dir);
    E->shadow = calloc(1, SHADOW_BYTES);
    E->seed = 12345;
    if (E->shadow == NULL || spawn() < 0)
        return -1;
    if (connect_and_bringup(false) < 0) {
        fprintf(stderr, "%s: bring-up failed\n", E->name);
        return -1;
    }
    return 0;
}

static int group_teardown(void **state)
{
    int rc = 0, st;

    (void)state;
    if (E->d != NULL) {
        if (nvd_shutdown(E->d) != 0)
            rc = -1;
        nvd_close(E->d);
        E->d = NULL;
    }
    st = stop_device();
    if (st != 0) {
        fprintf(stderr, "%s: device exit status %d\n", E->name, st);
        rc = -1;
    }
    unlink(E->sock);
    unlink(E->backing);
    rmdir(E->dir);
    free(E->shadow);
    return rc;
}

/* ---------------- identity ---------------- */

unsigned find_cap(uint8_t id)
{
    uint8_t p = 0, cid;

    assert_int_equal(muc_config_read8(E->d->c, 0x34, &p), 0);
    while (p != 0) {
        assert_int_equal(muc_config_read8(E->d->c, p, &cid), 0);
        if (cid == id)
            return p;
        assert_int_equal(muc_config_read8(E->d->c, p + 1, &p), 0);
    }
    return 0;
}

void test_pci(void **state)
{
    uint32_t v;
    uint64_t size;
    bool io, is64, pf;
    uint8_t pin;

    (void)state;
    assert_int_equal(muc_config_read32(E->d->c, 0, &v), 0);
    assert_int_equal(v, 0x0a0e1234);
    assert_int_equal(muc_config_read32(E->d->c, 8, &v), 0);
    assert_int_equal(v >> 8, 0x010802);
    assert_int_equal(muc_config_read8(E->d->c, 0x3d, &pin), 0);
    assert_int_equal(pin, 1);
    assert_int_not_equal(find_cap(0x01), 0);    /* PM */
    assert_int_not_equal(find_cap(0x10), 0);    /* PCI Express */
    assert_int_not_equal(find_cap(0x11), 0);    /* MSI-X */
    assert_int_equal(muc_bar_size(E->d->c, 0, &size, &io, &is64, &pf), 0);
    assert_int_equal(size, 16384);
    assert_true(is64 && !io && !pf);
}

void test_identify(void **state)
{
    const uint8_t *id = E->d->idctrl;
    uint8_t ns[4096], desc[4096], list[4096];
    uint32_t nn, vs;
    char sn[21];

    (void)state;
    assert_int_equal(NVME_CAP_MQES(E->d->cap), 0x3ff);
    assert_true(E->d->cap & NVME_CAP_CQR);
    assert_true(E->d->cap & NVME_CAP_CSS_NVM);
    assert_int_not_equal(NVME_CAP_TO(E->d->cap), 0);
    assert_int_equal(nvd_read32(E->d, NVME_REG_VS, &vs), 0);
    assert_int_equal(vs, 0x00010400);
    assert_int_equal(id[NVME_IDC_VID] | id[NVME_IDC_VID + 1] << 8, 0x1234);
    memcpy(sn, id + NVME_IDC_SN, 20);
    sn[20] = 0;
    assert_true(sn[0] != ' ' && sn[0] != 0);
    assert_int_equal(id[NVME_IDC_MDTS], 5);
    assert_int_equal(id[NVME_IDC_SQES], 0x66);
    assert_int_equal(id[NVME_IDC_CQES], 0x44);
    assert_int_equal(id[NVME_IDC_CNTRLTYPE], 1);
    assert_true(id[NVME_IDC_VWC] & 1);
    assert_int_equal(id[NVME_IDC_ONCS] & 0x0c, 0x0c);
    memcpy(&nn, id + NVME_IDC_NN, 4);
    assert_int_equal(nn, E->nr_ns);
    assert_memory_equal(id + NVME_IDC_SUBNQN, "nqn.", 4);
    /* The serial is part of the SUBNQN: unique per instance. */
    for (int i = 19; i >= 0 && sn[i] == ' '; i--)
        sn[i] = 0;
    assert_non_null(strstr((const char *)id + NVME_IDC_SUBNQN, sn));

    assert_int_equal(E->d->nr_ns, E->nr_ns);
    assert_int_equal(E->d->ns[0].lba_shift, E->shift);
    assert_status(nvd_identify(E->d, NVME_CNS_NS, 1, ns), 0);
    assert_status(nvd_identify(E->d, NVME_CNS_NS_DESC_LIST, 1, desc), 0);
    /* First descriptor: the NGUID of Identify Namespace. */
    assert_int_equal(desc[0], NVME_NIDT_NGUID);
    assert_int_equal(desc[1], 16);
    assert_memory_equal(desc + 4, ns + NVME_IDN_NGUID, 16);
    assert_int_equal(desc[20], NVME_NIDT_UUID);
    assert_status(nvd_identify(E->d, NVME_CNS_NS_ACTIVE_LIST, 0, list), 0);
    assert_int_equal(list[0], 1);
    assert_status(nvd_identify(E->d, NVME_CNS_NS_ACTIVE_LIST, 1, list), 0);
    assert_int_equal(list[0], E->nr_ns > 1 ? 2 : 0);
    assert_status(nvd_identify(E->d, NVME_CNS_CS_CTRL, 0, list), 0);
    assert_status(nvd_identify(E->d, 0x1f, 0, NULL), NVME_SC_INVALID_FIELD);
    assert_status(nvd_identify(E->d, NVME_CNS_NS, E->nr_ns + 1, NULL),
                  NVME_SC_INVALID_NS);
    assert_status(nvd_identify(E->d, NVME_CNS_NS, 0, NULL), NVME_SC_INVALID_NS);
}

int main(int argc, char **argv)
{
    static struct env groups[] = {
        { .name = "trapped", .db = NVD_DB_TRAPPED, .nr_ns = 2, .shift = 9,
          .args = { "--namespaces", "2", "--size", "32M", NULL } },
        { .name = "polled", .db = NVD_DB_POLLED, .nr_ns = 2, .shift = 12,
          .intx_on_reconnect = true,
          .args = { "--doorbells", "polled", "@backing", "--namespaces", "2",
                    "--size", "16M", "--lba-size", "4096", NULL } },
        { .name = "ioeventfd", .db = NVD_DB_IOEVENTFD, .nr_ns = 1, .shift = 9,
          .intx_on_reconnect = true, .args = { "--ioeventfd", NULL } },
        { .name = "polled-2", .db = NVD_DB_POLLED, .nr_ns = 1, .shift = 12,
          .pollers = 2, .intx_on_reconnect = true,
          .args = { "--doorbells", "polled", "--pollers", "2", "--size", "16M",
                    "--lba-size", "4096", NULL } },
    };
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pci),
        cmocka_unit_test(test_identify),
        cmocka_unit_test(test_rw_random),
        cmocka_unit_test(test_rw_queue_depth),
        cmocka_unit_test(test_multiq_io),
        cmocka_unit_test(test_multiq_delete_create),
        cmocka_unit_test(test_multiq_delete_during_dma),
        cmocka_unit_test(test_prp_contiguous),
        cmocka_unit_test(test_prp_lists),
        cmocka_unit_test(test_prp_invalid),
        cmocka_unit_test(test_flush_zeroes_dsm),
        cmocka_unit_test(test_namespaces),
        cmocka_unit_test(test_admin_errors),
        cmocka_unit_test(test_queue_errors),
        cmocka_unit_test(test_io_errors),
        cmocka_unit_test(test_aer_limit),
        cmocka_unit_test(test_features),
        cmocka_unit_test(test_temperature_event),
        cmocka_unit_test(test_doorbell_events),
        cmocka_unit_test(test_logs),
        cmocka_unit_test(test_coalescing),
        cmocka_unit_test(test_cq_full),
        cmocka_unit_test(test_fdless_queues),
        cmocka_unit_test(test_guest_memory_truncated),
        cmocka_unit_test(test_guest_memory_sparse_full),
        cmocka_unit_test(test_doorbell_fd_sealed),
        cmocka_unit_test(test_fdless_io_register_reads),
        cmocka_unit_test(test_reset),
        cmocka_unit_test(test_flr),
        cmocka_unit_test(test_shutdown),
        cmocka_unit_test(test_remap_live_queues),
        cmocka_unit_test(test_unmap_live_queues),
        cmocka_unit_test(test_reconnect),
        cmocka_unit_test(test_poller_idle),
        cmocka_unit_test(test_ioeventfds_not_taken),
    };
    int failed = 0;

    if (argc != 2) {
        fprintf(stderr, "usage: %s PATH-TO-nvme\n", argv[0]);
        return 2;
    }
    nvme_bin = argv[1];
    slow = mu_test_slow_factor();
    signal(SIGPIPE, SIG_IGN);
    for (size_t g = 0; g < sizeof(groups) / sizeof(groups[0]); g++) {
        E = &groups[g];
        failed += _cmocka_run_group_tests(E->name, tests,
                                          sizeof(tests) / sizeof(tests[0]),
                                          group_setup, group_teardown);
    }
    return failed ? 1 : 0;
}
