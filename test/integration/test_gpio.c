/*
 * test_gpio.c - the gpio sample driven over a real socket by the client
 * library: negotiation, discovery, config header, registers, and a series of
 * malformed inputs after each of which the device must still serve the next
 * client.  Run as: test_gpio PATH-TO-muser-gpio-pci-idio-16
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"
#include "muser-client.h"
#include "wire.h"

static const char *gpio_bin;
static struct dev_proc dev;

static int group_setup(void **state)
{
    (void)state;
    return dev_start(&dev, gpio_bin, NULL) == 0 ? 0 : -1;
}

static int group_teardown(void **state)
{
    int rc;

    (void)state;
    rc = dev_stop(&dev);
    if (rc != 0)
        fprintf(stderr, "device exit status %d (99 = valgrind errors)\n", rc);
    return rc == 0 ? 0 : -1;
}

static muc_t *client(void)
{
    muc_t *c = NULL;
    struct muc_opts o = { .timeout_ms = 5000 * slow_factor() };

    assert_int_equal(muc_connect(&c, dev.sock, &o), 0);
    return c;
}

/* After any abuse, a new client must get the full service. */
static void assert_serves(void)
{
    struct muc_device_info info;
    uint16_t vid;
    muc_t *c = client();

    assert_int_equal(muc_device_info(c, &info), 0);
    assert_int_equal(muc_config_read16(c, 0, &vid), 0);
    assert_int_equal(vid, 0x494f);
    muc_close(c);
    assert_true(dev_alive(&dev));
}

static void test_negotiate(void **state)
{
    const struct muc_server_caps *caps;
    muc_t *c;

    (void)state;
    c = client();
    caps = muc_server_caps(c);
    assert_int_equal(caps->major, 0);
    assert_int_equal(caps->minor, 1);
    assert_true(caps->max_msg_fds >= 1);
    assert_int_equal(caps->max_data_xfer_size, 1u << 20);
    assert_true(caps->pgsizes & 4096);
    assert_false(caps->write_multiple);     /* we did not offer it */
    muc_close(c);
}

static void test_device_info(void **state)
{
    struct muc_device_info info;
    struct muc_region_info ri;
    struct muc_irq_info ii;
    muc_t *c;

    (void)state;
    c = client();
    assert_int_equal(muc_device_info(c, &info), 0);
    assert_int_equal(info.flags, 0x3);      /* reset + PCI */
    assert_int_equal(info.num_regions, 9);
    assert_int_equal(info.num_irqs, 5);

    assert_int_equal(muc_region_info(c, 2, &ri), 0);
    assert_int_equal(ri.size, 0x100);
    assert_int_equal(ri.flags, MUC_REGION_READ | MUC_REGION_WRITE);
    assert_int_equal(ri.fd, -1);
    assert_int_equal(muc_region_info(c, 7, &ri), 0);
    assert_int_equal(ri.size, 256);
    for (unsigned i = 0; i < 9; i++) {
        if (i == 2 || i == 7)
            continue;
        assert_int_equal(muc_region_info(c, i, &ri), 0);
        assert_int_equal(ri.size, 0);
    }
    assert_int_equal(muc_region_info(c, 9, &ri), -EINVAL);

    assert_int_equal(muc_irq_info(c, 0, &ii), 0);
    assert_int_equal(ii.count, 1);
    assert_int_equal(muc_irq_info(c, 2, &ii), 0);
    assert_int_equal(ii.count, 0);
    assert_int_equal(muc_irq_info(c, 5, &ii), -EINVAL);
    muc_close(c);
}

static void test_config_header(void **state)
{
    uint16_t vid, did, cmd;
    uint32_t cls;
    uint8_t pin, hdr;
    uint64_t size;
    bool io, is64, pf;
    muc_t *c;

    (void)state;
    c = client();
    assert_int_equal(muc_config_read16(c, 0x00, &vid), 0);
    assert_int_equal(muc_config_read16(c, 0x02, &did), 0);
    assert_int_equal(vid, 0x494f);
    assert_int_equal(did, 0x0dc8);
    assert_int_equal(muc_config_read32(c, 0x08, &cls), 0);
    assert_int_equal(cls >> 8, 0x118000);
    assert_int_equal(muc_config_read8(c, 0x0e, &hdr), 0);
    assert_int_equal(hdr, 0);
    assert_int_equal(muc_config_read8(c, 0x3d, &pin), 0);
    assert_int_equal(pin, 1);

    /* BAR sizing: all-ones reads back the size mask. */
    assert_int_equal(muc_bar_size(c, 2, &size, &io, &is64, &pf), 0);
    assert_int_equal(size, 0x100);
    assert_true(io);
    assert_false(is64);
    assert_int_equal(muc_bar_size(c, 0, &size, &io, &is64, &pf), 0);
    assert_int_equal(size, 0);

    /* Read-only ids stay; the command register takes its writable bits. */
    assert_int_equal(muc_config_write16(c, 0x00, 0x1234), 0);
    assert_int_equal(muc_config_read16(c, 0x00, &vid), 0);
    assert_int_equal(vid, 0x494f);
    assert_int_equal(muc_config_write16(c, 0x04, 0xffff), 0);
    assert_int_equal(muc_config_read16(c, 0x04, &cmd), 0);
    assert_int_equal(cmd, 0x0547);
    muc_close(c);
}

static uint8_t rd8(muc_t *c, uint64_t off)
{
    uint8_t v = 0xee;

    assert_int_equal(muc_region_read(c, 2, off, &v, 1), 0);
    return v;
}

static void wr8(muc_t *c, uint64_t off, uint8_t v)
{
    assert_int_equal(muc_region_write(c, 2, off, &v, 1), 0);
}

static void test_outputs(void **state)
{
    muc_t *c;

    (void)state;
    c = client();
    wr8(c, 0, 0xa5);
    wr8(c, 4, 0x5a);
    assert_int_equal(rd8(c, 0), 0xa5);
    assert_int_equal(rd8(c, 4), 0x5a);
    /* Read-modify-write as the older driver does. */
    wr8(c, 0, rd8(c, 0) | 0x02);
    assert_int_equal(rd8(c, 0), 0xa7);
    /* Strobes ignore data and leave the latches alone. */
    wr8(c, 1, 0xff);
    wr8(c, 3, 0xff);
    assert_int_equal(rd8(c, 0), 0xa7);
    muc_close(c);

    /* Device state outlives the client (the protocol says so)... */
    c = client();
    assert_int_equal(rd8(c, 0), 0xa7);
    /* ...and a device reset puts the card back to power-on state. */
    assert_int_equal(muc_reset(c), 0);
    assert_int_equal(rd8(c, 0), 0);
    assert_int_equal(rd8(c, 4), 0);
    muc_close(c);
}

static void test_inputs_and_status(void **state)
{
    struct timespec ts = { 0, 50 * 1000 * 1000 };
    uint8_t before, after;
    muc_t *c;

    (void)state;
    c = client();
    (void)rd8(c, 2);                    /* enable the IRQ (read strobe) */
    before = rd8(c, 1);
    kill(dev.pid, SIGUSR1);             /* the inputs change */
    for (int i = 0; i < 100 * slow_factor(); i++) {
        after = rd8(c, 1);
        if (after != before)
            break;
        nanosleep(&ts, NULL);
    }
    assert_int_not_equal(after, before);
    assert_int_equal(rd8(c, 6), 0x05);  /* pending */
    wr8(c, 1, 0);                       /* clear */
    assert_int_equal(rd8(c, 6), 0);
    wr8(c, 2, 0);                       /* disable */
    muc_close(c);
}

static void test_unknown_command(void **state)
{
    struct muc_device_info info;
    muc_t *c;

    (void)state;
    c = client();
    assert_int_equal(muc_request(c, 99, NULL, 0, NULL, 0, NULL, 0, NULL, NULL,
                                 0, NULL), -ENOSYS);
    assert_int_equal(muc_request(c, VFU_CMD_DIRTY_PAGES, NULL, 0, NULL, 0,
                                 NULL, 0, NULL, NULL, 0, NULL), -ENOSYS);
    /* Still serving this client. */
    assert_int_equal(muc_device_info(c, &info), 0);
    muc_close(c);
}

static void test_bad_region_access(void **state)
{
    uint8_t buf[8] = { 0 };
    muc_t *c;

    (void)state;
    c = client();
    assert_int_equal(muc_region_read(c, 2, 0x100, buf, 1), -EINVAL);
    assert_int_equal(muc_region_read(c, 2, 0xff, buf, 2), -EINVAL);
    assert_int_equal(muc_region_read(c, 2, UINT64_MAX, buf, 2), -EINVAL);
    assert_int_equal(muc_region_read(c, 0, 0, buf, 1), -EINVAL);
    assert_int_equal(muc_region_read(c, 7, 255, buf, 2), -EINVAL);
    assert_int_equal(muc_region_write(c, 20, 0, buf, 1), -EINVAL);
    assert_int_equal(muc_region_read(c, 2, 0, buf, 1), 0);
    muc_close(c);
}

/* Send raw bytes on a fresh negotiated or raw connection. */
static muc_t *raw_client(bool negotiate)
{
    muc_t *c = NULL;

    if (negotiate)
        return client();
    assert_int_equal(muc_connect_raw(&c, dev.sock), 0);
    return c;
}

static void test_truncated_header(void **state)
{
    uint8_t half[8] = { 1, 0, 4, 0, 16, 0, 0, 0 };
    muc_t *c;

    (void)state;
    c = raw_client(true);
    assert_int_equal(muc_send_bytes(c, half, sizeof(half), NULL, 0), 0);
    muc_close(c);
    assert_serves();
}

static void test_oversized(void **state)
{
    struct vfu_hdr h;
    uint8_t buf[64];
    ssize_t n;
    muc_t *c;

    (void)state;
    c = raw_client(true);
    vfu_hdr_init(&h, 7, VFU_CMD_REGION_WRITE, 0x7fffffff, 0, 0);
    assert_int_equal(muc_send_bytes(c, &h, sizeof(h), NULL, 0), 0);
    /* An error reply naming the problem, then the connection closes. */
    n = muc_recv_msg(c, buf, sizeof(buf), 5000 * slow_factor());
    assert_int_equal(n, 16);
    memcpy(&h, buf, sizeof(h));
    assert_int_equal(h.msg_id, 7);
    assert_true(h.flags & VFU_F_ERROR);
    assert_int_equal(h.error, EMSGSIZE);
    assert_int_equal(muc_recv_msg(c, buf, sizeof(buf), 5000 * slow_factor()),
                     -ENOTCONN);
    muc_close(c);
    assert_serves();
}

static void test_size_below_header(void **state)
{
    struct vfu_hdr h;
    uint8_t buf[64];
    muc_t *c;

    (void)state;
    c = raw_client(true);
    vfu_hdr_init(&h, 8, VFU_CMD_DEVICE_GET_INFO, 8, 0, 0);
    assert_int_equal(muc_send_bytes(c, &h, sizeof(h), NULL, 0), 0);
    assert_int_equal(muc_recv_msg(c, buf, sizeof(buf), 5000 * slow_factor()), 16);
    memcpy(&h, buf, sizeof(h));
    assert_int_equal(h.error, EINVAL);
    muc_close(c);
    assert_serves();
}

static void test_disconnect_mid_message(void **state)
{
    uint8_t msg[36] = { 0 };
    struct vfu_hdr h;
    muc_t *c;

    (void)state;
    c = raw_client(true);
    vfu_hdr_init(&h, 9, VFU_CMD_REGION_WRITE, 100, 0, 0);
    memcpy(msg, &h, sizeof(h));
    assert_int_equal(muc_send_bytes(c, msg, sizeof(msg), NULL, 0), 0);
    muc_close(c);
    assert_serves();
}

static void test_reply_flag_on_request(void **state)
{
    struct muc_device_info info;
    struct vfu_hdr h;
    uint8_t buf[64];
    muc_t *c;

    (void)state;
    c = raw_client(true);
    vfu_hdr_init(&h, 0x4242, VFU_CMD_DEVICE_RESET, 16, VFU_F_TYPE_REPLY, 0);
    assert_int_equal(muc_send_bytes(c, &h, sizeof(h), NULL, 0), 0);
    assert_int_equal(muc_recv_msg(c, buf, sizeof(buf), 5000 * slow_factor()), 16);
    memcpy(&h, buf, sizeof(h));
    assert_int_equal(h.msg_id, 0x4242);
    assert_int_equal(h.error, EINVAL);
    /* The connection stays usable. */
    assert_int_equal(muc_device_info(c, &info), 0);
    muc_close(c);
}

static void test_version_not_first(void **state)
{
    struct vfu_hdr h;
    uint8_t buf[64];
    muc_t *c;

    (void)state;
    c = raw_client(false);
    vfu_hdr_init(&h, 1, VFU_CMD_DEVICE_RESET, 16, 0, 0);
    assert_int_equal(muc_send_bytes(c, &h, sizeof(h), NULL, 0), 0);
    assert_int_equal(muc_recv_msg(c, buf, sizeof(buf), 5000 * slow_factor()), 16);
    memcpy(&h, buf, sizeof(h));
    assert_int_equal(h.error, EINVAL);
    assert_int_equal(muc_recv_msg(c, buf, sizeof(buf), 5000 * slow_factor()),
                     -ENOTCONN);
    muc_close(c);
    assert_serves();
}

static void test_bad_version(void **state)
{
    static const char bad_json[] = "{\"capabilities\": [1, 2";
    static const char wrong_type[] = "{\"capabilities\":{\"max_msg_fds\":\"x\"}}";
    const char *cases[] = { bad_json, wrong_type, NULL };
    uint8_t msg[128], buf[64];
    struct vfu_version v = { 0, 1 };
    struct vfu_hdr h;

    (void)state;
    for (int i = 0; i < 3; i++) {
        size_t jl = cases[i] ? strlen(cases[i]) + 1 : 0;
        size_t size = sizeof(h) + sizeof(v) + jl;
        muc_t *c = raw_client(false);

        v.major = cases[i] ? 0 : 1;     /* third case: wrong major */
        vfu_hdr_init(&h, 1, VFU_CMD_VERSION, (uint32_t)size, 0, 0);
        memcpy(msg, &h, sizeof(h));
        memcpy(msg + sizeof(h), &v, sizeof(v));
        if (jl)
            memcpy(msg + sizeof(h) + sizeof(v), cases[i], jl);
        assert_int_equal(muc_send_bytes(c, msg, size, NULL, 0), 0);
        assert_int_equal(muc_recv_msg(c, buf, sizeof(buf), 5000 * slow_factor()), 16);
        memcpy(&h, buf, sizeof(h));
        assert_true(h.flags & VFU_F_ERROR);
        assert_int_not_equal(h.error, 0);
        assert_int_equal(muc_recv_msg(c, buf, sizeof(buf), 5000 * slow_factor()),
                         -ENOTCONN);
        muc_close(c);
    }
    assert_serves();
}

static void test_second_client_waits(void **state)
{
    muc_t *a, *b = NULL;
    struct muc_opts o = { .timeout_ms = 300 };

    (void)state;
    a = client();
    /* While a is served, b's handshake is not answered... */
    assert_int_equal(muc_connect(&b, dev.sock, &o), -ETIMEDOUT);
    muc_close(a);
    /* ...and once a leaves, the next client is served. */
    assert_serves();
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_negotiate),
        cmocka_unit_test(test_device_info),
        cmocka_unit_test(test_config_header),
        cmocka_unit_test(test_outputs),
        cmocka_unit_test(test_inputs_and_status),
        cmocka_unit_test(test_unknown_command),
        cmocka_unit_test(test_bad_region_access),
        cmocka_unit_test(test_truncated_header),
        cmocka_unit_test(test_oversized),
        cmocka_unit_test(test_size_below_header),
        cmocka_unit_test(test_disconnect_mid_message),
        cmocka_unit_test(test_reply_flag_on_request),
        cmocka_unit_test(test_version_not_first),
        cmocka_unit_test(test_bad_version),
        cmocka_unit_test(test_second_client_waits),
    };

    if (argc != 2) {
        fprintf(stderr, "usage: %s PATH-TO-muser-gpio-pci-idio-16\n", argv[0]);
        return 2;
    }
    gpio_bin = argv[1];
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
