/*
 * test_log.c - the run-time debug log of the message loop: at MU_LOG_DEBUG
 * (what the samples' -v selects) the server logs every message it receives
 * and its result, and each refusal names the command, msg_id, errno and
 * the reason in words; below DEBUG none of those lines is written.
 *
 * Each test starts its own in-process device with the level it needs (the
 * level is not changed while the server thread runs).  Requests are sent
 * raw, with msg_ids of the test's choosing, so the lines can be matched
 * exactly.  The server logs a message's result before it sends the reply,
 * so once the reply is read its lines are there; expect_log still waits
 * (bounded) as the harness does everywhere.
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
#include <sys/mman.h>
#include <unistd.h>

#include "harness.h"
#include "muser.h"
#include "muser-client.h"
#include "wire.h"

#define BAR0_SIZE 0x100u

static struct inproc srv;
static muc_t *live;
static unsigned debug_lines;        /* lines logged at MU_LOG_DEBUG */
static pthread_mutex_t count_lock = PTHREAD_MUTEX_INITIALIZER;

static void log_cb(mu_ctx_t *ctx, enum mu_log_level level, const char *msg)
{
    (void)ctx;
    pthread_mutex_lock(&count_lock);
    if (level == MU_LOG_DEBUG)
        debug_lines++;
    pthread_mutex_unlock(&count_lock);
    log_capture_line(msg);
}

static unsigned nr_debug_lines(void)
{
    unsigned n;

    pthread_mutex_lock(&count_lock);
    n = debug_lines;
    pthread_mutex_unlock(&count_lock);
    return n;
}

static ssize_t bar0_access(mu_ctx_t *ctx, void *buf, size_t count,
                           uint64_t offset, bool is_write)
{
    (void)ctx;
    (void)offset;
    if (!is_write)
        memset(buf, 0xab, count);
    return (ssize_t)count;
}

static void start(enum mu_log_level level)
{
    log_ring_init(0);
    pthread_mutex_lock(&count_lock);
    debug_lines = 0;
    pthread_mutex_unlock(&count_lock);
    assert_int_equal(inproc_create(&srv, "log.sock", MU_DEV_PCI, NULL), 0);
    assert_int_equal(mu_ctx_set_log(srv.ctx, log_cb, level), 0);
    assert_int_equal(mu_region_setup(srv.ctx, MU_PCI_BAR0, BAR0_SIZE,
                                     MU_REGION_RW | MU_REGION_MEM,
                                     bar0_access), 0);
    assert_int_equal(mu_irq_setup(srv.ctx, MU_IRQ_INTX, 1), 0);
    assert_int_equal(inproc_start(&srv), 0);
    assert_int_equal(client_connect(&live, srv.sock), 0);
}

static int teardown(void **state)
{
    (void)state;
    if (live != NULL)
        muc_close(live);
    live = NULL;
    inproc_stop(&srv);
    return 0;
}

/* Send one command with msg_id 'id'; return the reply's errno (0: ok). */
static uint32_t request(uint16_t id, uint16_t cmd, const void *body,
                        size_t len, const int *fds, unsigned nfds)
{
    uint8_t buf[4096];
    struct vfu_hdr h;
    ssize_t n;

    assert_true(len <= sizeof(buf) - VFU_HDR_SIZE);
    vfu_hdr_init(&h, id, cmd, (uint32_t)(VFU_HDR_SIZE + len),
                 VFU_F_TYPE_COMMAND, 0);
    memcpy(buf, &h, sizeof(h));
    if (len > 0)
        memcpy(buf + sizeof(h), body, len);
    assert_int_equal(muc_send_bytes(live, buf, VFU_HDR_SIZE + len, fds, nfds),
                     0);
    n = muc_recv_msg(live, buf, sizeof(buf), 5000 * slow_factor());
    assert_true(n >= (ssize_t)VFU_HDR_SIZE);
    memcpy(&h, buf, sizeof(h));
    assert_int_equal(h.msg_id, id);
    assert_int_equal(h.cmd, cmd);
    return (h.flags & VFU_F_ERROR) ? h.error : 0;
}

static void test_read_ok(void **state)
{
    struct vfu_region_access a = { .offset = 0x10, .region = MU_PCI_BAR0,
                                   .count = 4 };

    (void)state;
    start(MU_LOG_DEBUG);
    assert_int_equal(request(0x701, VFU_CMD_REGION_READ, &a, sizeof(a),
                             NULL, 0), 0);
    expect_log("REGION_READ msg 1793 received: 16 bytes, 0 fds");
    expect_log("REGION_READ msg 1793 ok: reply 20 bytes, 0 fds");
}

static void test_read_past_region(void **state)
{
    struct vfu_region_access a = { .offset = 0x1000, .region = MU_PCI_BAR0,
                                   .count = 4 };

    (void)state;
    start(MU_LOG_DEBUG);
    assert_int_equal(request(7, VFU_CMD_REGION_READ, &a, sizeof(a), NULL, 0),
                     EINVAL);
    expect_log("REGION_READ msg 7 refused: EINVAL (offset 0x1000+4 past "
               "region 0 size 0x100)");
    /* A region that does not exist is a different reason. */
    a.region = MU_PCI_BAR3;
    a.offset = 0;
    assert_int_equal(request(8, VFU_CMD_REGION_READ, &a, sizeof(a), NULL, 0),
                     EINVAL);
    expect_log("REGION_READ msg 8 refused: EINVAL (region 3 does not exist)");
}

static void test_config_past_end(void **state)
{
    struct vfu_region_access a = { .offset = 0x1000,
                                   .region = MU_PCI_CONFIG, .count = 4 };

    (void)state;
    start(MU_LOG_DEBUG);
    assert_int_equal(request(9, VFU_CMD_REGION_READ, &a, sizeof(a), NULL, 0),
                     EINVAL);
    expect_log("REGION_READ msg 9 refused: EINVAL (config offset 0x1000+4 "
               "past config space size 0x100)");
}

static void test_bad_dma_map(void **state)
{
    struct vfu_dma_map m = { .argsz = sizeof(m),
                             .flags = VFU_DMA_FLAG_READ | VFU_DMA_FLAG_WRITE,
                             .offset = 0, .addr = 0x1234, .size = 0x1000 };
    int fd;

    (void)state;
    start(MU_LOG_DEBUG);
    fd = memfd_sized("log-dma", 0x2000, 0);
    assert_true(fd >= 0);
    /* Not page aligned. */
    assert_int_equal(request(21, VFU_CMD_DMA_MAP, &m, sizeof(m), &fd, 1),
                     EINVAL);
    expect_log("DMA_MAP msg 21 received: 32 bytes, 1 fds");
    expect_log("DMA_MAP msg 21 refused: EINVAL (0x1234+0x1000 (offset 0) is "
               "not aligned");
    /* Past the end of its file. */
    m.addr = 0x10000;
    m.offset = 0x1000;
    m.size = 0x2000;
    assert_int_equal(request(22, VFU_CMD_DMA_MAP, &m, sizeof(m), &fd, 1),
                     EINVAL);
    expect_log("DMA_MAP msg 22 refused: EINVAL (0x10000+0x2000 at offset "
               "0x1000 runs past the end of its file");
    /* Malformed: argsz too small. */
    m.argsz = 8;
    assert_int_equal(request(23, VFU_CMD_DMA_MAP, &m, sizeof(m), &fd, 1),
                     EINVAL);
    expect_log("DMA_MAP msg 23 refused: EINVAL (malformed payload (32 bytes, "
               "1 fds)");
    close(fd);
}

static void test_bad_set_irqs(void **state)
{
    struct vfu_irq_set s = { .argsz = sizeof(s),
                             .flags = VFU_IRQ_SET_DATA_NONE |
                                      VFU_IRQ_SET_ACTION_TRIGGER,
                             .index = MU_IRQ_INTX, .start = 0, .count = 3 };

    (void)state;
    start(MU_LOG_DEBUG);
    assert_int_equal(request(31, VFU_CMD_DEVICE_SET_IRQS, &s, sizeof(s),
                             NULL, 0), EINVAL);
    expect_log("DEVICE_SET_IRQS msg 31 refused: EINVAL (vectors 0+3 past irq "
               "index 0's 1)");
    s.index = MU_IRQ_MSIX;      /* declared with no vectors */
    s.count = 1;
    assert_int_equal(request(32, VFU_CMD_DEVICE_SET_IRQS, &s, sizeof(s),
                             NULL, 0), EINVAL);
    expect_log("DEVICE_SET_IRQS msg 32 refused: EINVAL (irq index 2 does not "
               "exist or has no vectors)");
}

static void test_unknown_command(void **state)
{
    (void)state;
    start(MU_LOG_DEBUG);
    assert_int_equal(request(41, 200, NULL, 0, NULL, 0), ENOSYS);
    expect_log("msg 41 received: 0 bytes, 0 fds");
    expect_log("msg 41 refused: ENOSYS (unknown command 200)");
}

/* A refusal no handler explains still names the errno and its text. */
static void test_generic_reason(void **state)
{
    (void)state;
    start(MU_LOG_DEBUG);
    /* DEVICE_RESET takes no payload: refused by the wire check alone. */
    assert_int_equal(request(51, VFU_CMD_DEVICE_RESET, "x", 1, NULL, 0),
                     EINVAL);
    expect_log("DEVICE_RESET msg 51 refused: EINVAL (Invalid argument)");
}

static void test_info_has_no_debug_lines(void **state)
{
    struct vfu_region_access a = { .offset = 0x1000, .region = MU_PCI_BAR0,
                                   .count = 4 };

    (void)state;
    start(MU_LOG_INFO);
    a.offset = 0;
    assert_int_equal(request(61, VFU_CMD_REGION_READ, &a, sizeof(a), NULL, 0),
                     0);
    a.offset = 0x1000;
    assert_int_equal(request(62, VFU_CMD_REGION_READ, &a, sizeof(a), NULL, 0),
                     EINVAL);
    /* Logged at INFO after the point where a debug line would have been. */
    assert_int_equal(request(63, 200, NULL, 0, NULL, 0), ENOSYS);
    expect_log("unsupported command 200");
    assert_false(log_has("msg 61"));
    assert_false(log_has("msg 62"));
    assert_int_equal(nr_debug_lines(), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_read_ok, teardown),
        cmocka_unit_test_teardown(test_read_past_region, teardown),
        cmocka_unit_test_teardown(test_config_past_end, teardown),
        cmocka_unit_test_teardown(test_bad_dma_map, teardown),
        cmocka_unit_test_teardown(test_bad_set_irqs, teardown),
        cmocka_unit_test_teardown(test_unknown_command, teardown),
        cmocka_unit_test_teardown(test_generic_reason, teardown),
        cmocka_unit_test_teardown(test_info_has_no_debug_lines, teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
