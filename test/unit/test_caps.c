/*
 * Unit tests for lib/caps.c: parsing and building the capabilities JSON of
 * VERSION (protocol section 3.1), with every malformed shape a peer could
 * send.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "wire.h"
#include "wire_util.h"

static void
assert_caps_equal(const struct vfu_caps *a, const struct vfu_caps *b)
{
    assert_int_equal(a->max_msg_fds, b->max_msg_fds);
    assert_int_equal(a->max_data_xfer_size, b->max_data_xfer_size);
    assert_int_equal(a->max_dma_maps, b->max_dma_maps);
    assert_int_equal(a->pgsizes, b->pgsizes);
    assert_int_equal(a->write_multiple, b->write_multiple);
    assert_int_equal(a->twin_socket, b->twin_socket);
    assert_int_equal(a->mig_pgsize, b->mig_pgsize);
}

/* Parse s, NUL included, from an exactly sized heap copy. */
static int
parse_str(const char *s, struct vfu_caps *c)
{
    size_t len = strlen(s) + 1;
    uint8_t *p = wire(s, len);
    int ret = vfu_caps_parse((const char *)p, len, c);

    unwire(p);
    return ret;
}

static void
test_caps_default(void **state)
{
    struct vfu_caps c, d;

    (void)state;
    memset(&c, 0xff, sizeof(c));
    vfu_caps_default(&c);
    assert_int_equal(c.max_msg_fds, 1);
    assert_int_equal(c.max_data_xfer_size, 1048576);
    assert_int_equal(c.max_dma_maps, 65535);
    assert_int_equal(c.pgsizes, 4096);
    assert_false(c.write_multiple);
    assert_false(c.twin_socket);
    assert_int_equal(c.mig_pgsize, 0);

    /* No JSON at all means defaults. */
    memset(&d, 0xff, sizeof(d));
    assert_int_equal(vfu_caps_parse(NULL, 0, &d), 0);
    assert_caps_equal(&d, &c);
    memset(&d, 0xff, sizeof(d));
    assert_int_equal(vfu_caps_parse("{}", 0, &d), 0);
    assert_caps_equal(&d, &c);

    static const char *const empty[] = {
        "{}", "{\"capabilities\":{}}", " \t\r\n{ } \n",
    };
    for (size_t i = 0; i < ARRAY_SIZE(empty); i++) {
        memset(&d, 0xff, sizeof(d));
        assert_int_equal(parse_str(empty[i], &d), 0);
        assert_caps_equal(&d, &c);
    }
}

/* Section 6's VERSION request, all the way from bytes to capabilities. */
static void
test_caps_doc_example(void **state)
{
    const uint8_t *payload = doc_version_req + VFU_HDR_SIZE;
    size_t len = sizeof(doc_version_req) - VFU_HDR_SIZE;
    struct vfu_version v;
    struct vfu_caps c;
    struct vfu_hdr h;
    const char *json;
    size_t json_len;
    uint8_t *p;

    (void)state;
    memcpy(&h, doc_version_req, sizeof(h));
    assert_int_equal(vfu_hdr_check(&h, 4096), 0);
    assert_int_equal(h.size - VFU_HDR_SIZE, len);

    p = wire(payload, len);
    assert_int_equal(vfu_check_version(p, len, 0, &v, &json, &json_len), 0);
    assert_int_equal(vfu_caps_parse(json, json_len, &c), 0);
    unwire(p);

    assert_int_equal(c.max_msg_fds, 8);
    assert_int_equal(c.max_data_xfer_size, VFU_DEFAULT_MAX_DATA_XFER);
    assert_int_equal(c.max_dma_maps, VFU_DEFAULT_MAX_DMA_MAPS);
    assert_int_equal(c.pgsizes, VFU_DEFAULT_PGSIZES);
    assert_false(c.write_multiple);
}

static void
test_caps_all_keys(void **state)
{
    struct vfu_caps c;

    (void)state;
    assert_int_equal(parse_str(
        "{\"capabilities\":{\"max_msg_fds\":0,"
        "\"max_data_xfer_size\":4294967295,\"max_dma_maps\":1,"
        "\"pgsizes\":18446744073709551615,\"write_multiple\":true,"
        "\"twin_socket\":{\"supported\":true,\"fd_index\":0},"
        "\"migration\":{\"pgsize\":4096,\"max_bitmap_size\":1048576}}}",
        &c), 0);
    assert_int_equal(c.max_msg_fds, 0);
    assert_int_equal(c.max_data_xfer_size, MAX32);
    assert_int_equal(c.max_dma_maps, 1);
    assert_int_equal(c.pgsizes, MAX64);
    assert_true(c.write_multiple);
    assert_true(c.twin_socket);
    assert_int_equal(c.mig_pgsize, 4096);

    /* Present but false; twin_socket without "supported". */
    assert_int_equal(parse_str(
        "{\"capabilities\":{\"write_multiple\":false,\"twin_socket\":{}}}",
        &c), 0);
    assert_false(c.write_multiple);
    assert_false(c.twin_socket);
}

static void
test_caps_unknown_keys(void **state)
{
    struct vfu_caps c;

    (void)state;
    assert_int_equal(parse_str(
        "{\"version\":\"1.0\",\"extra\":[1,{\"a\":null}],"
        "\"capabilities\":{\"future\":{\"x\":[true]},\"max_msg_fds\":4,"
        "\"twin_socket\":{\"supported\":false,\"mode\":\"fast\"},"
        "\"migration\":{\"max_bitmap_size\":\"big\"}}}", &c), 0);
    assert_int_equal(c.max_msg_fds, 4);
    assert_int_equal(c.mig_pgsize, 0);
    assert_false(c.twin_socket);
}

static const struct caps_bad_case {
    const char *what;
    const char *json;
} caps_bad_cases[] = {
    /* wrong types */
    { "capabilities array", "{\"capabilities\":[]}" },
    { "capabilities number", "{\"capabilities\":1}" },
    { "capabilities null", "{\"capabilities\":null}" },
    { "fds string", "{\"capabilities\":{\"max_msg_fds\":\"8\"}}" },
    { "fds double", "{\"capabilities\":{\"max_msg_fds\":8.0}}" },
    { "fds exponent", "{\"capabilities\":{\"max_msg_fds\":8e0}}" },
    { "fds bool", "{\"capabilities\":{\"max_msg_fds\":true}}" },
    { "fds null", "{\"capabilities\":{\"max_msg_fds\":null}}" },
    { "xfer object", "{\"capabilities\":{\"max_data_xfer_size\":{}}}" },
    { "maps array", "{\"capabilities\":{\"max_dma_maps\":[1]}}" },
    { "pgsizes string", "{\"capabilities\":{\"pgsizes\":\"4096\"}}" },
    { "write_multiple int", "{\"capabilities\":{\"write_multiple\":1}}" },
    { "write_multiple str",
      "{\"capabilities\":{\"write_multiple\":\"true\"}}" },
    { "twin_socket bool", "{\"capabilities\":{\"twin_socket\":true}}" },
    { "supported int",
      "{\"capabilities\":{\"twin_socket\":{\"supported\":1}}}" },
    { "migration number", "{\"capabilities\":{\"migration\":4096}}" },
    { "mig pgsize string",
      "{\"capabilities\":{\"migration\":{\"pgsize\":\"4k\"}}}" },
    /* out of range */
    { "fds 2^32", "{\"capabilities\":{\"max_msg_fds\":4294967296}}" },
    /* json-c clamps this to UINT64_MAX; still out of range for a u32 */
    { "fds beyond 2^64",
      "{\"capabilities\":{\"max_msg_fds\":99999999999999999999}}" },
    { "xfer 0", "{\"capabilities\":{\"max_data_xfer_size\":0}}" },
    { "xfer 2^32", "{\"capabilities\":{\"max_data_xfer_size\":4294967296}}" },
    { "maps 0", "{\"capabilities\":{\"max_dma_maps\":0}}" },
    { "pgsizes 0", "{\"capabilities\":{\"pgsizes\":0}}" },
    { "mig pgsize 0", "{\"capabilities\":{\"migration\":{\"pgsize\":0}}}" },
    /* negative */
    { "fds -1", "{\"capabilities\":{\"max_msg_fds\":-1}}" },
    { "xfer -1", "{\"capabilities\":{\"max_data_xfer_size\":-1}}" },
    { "maps -1", "{\"capabilities\":{\"max_dma_maps\":-1}}" },
    { "pgsizes -1", "{\"capabilities\":{\"pgsizes\":-1}}" },
    { "pgsizes int64 min",
      "{\"capabilities\":{\"pgsizes\":-9223372036854775808}}" },
    { "mig pgsize -4096",
      "{\"capabilities\":{\"migration\":{\"pgsize\":-4096}}}" },
    /* not an object at the top */
    { "array", "[]" },
    { "number", "1" },
    { "string", "\"capabilities\"" },
    { "null", "null" },
    { "true", "true" },
    { "empty text", "" },
    { "only spaces", "  " },
    /* not JSON, or more than one value */
    { "unterminated", "{\"capabilities\":{}" },
    { "trailing comma", "{\"capabilities\":{},}" },
    { "bad utf-8", "{\"x\":\"\xff\"}" },
    { "garbage after", "{} x" },
    { "second object", "{}{}" },
    { "comma after", "{}," },
    { "brace after", "{}}" },
};

static void
test_caps_bad(void **state)
{
    struct vfu_caps c, before;

    (void)state;
    for (size_t i = 0; i < ARRAY_SIZE(caps_bad_cases); i++) {
        memset(&c, 0x77, sizeof(c));
        before = c;
        expect_ret(caps_bad_cases[i].what,
                   parse_str(caps_bad_cases[i].json, &c), -EINVAL);
        /* *out is only written on success */
        assert_memory_equal(&c, &before, sizeof(c));
    }
}

static void
test_caps_framing(void **state)
{
    static const char two[] = "{}\0{}";     /* 6 bytes incl. final NUL */
    static const char text[] = "{\"capabilities\":{}}";
    struct vfu_caps c;
    uint8_t *p;

    (void)state;
    /* Missing NUL: the last byte counted is the closing brace... */
    p = wire(text, sizeof(text) - 1);
    assert_int_equal(vfu_caps_parse((char *)p, sizeof(text) - 1, &c),
                     -EINVAL);
    unwire(p);
    /* ...or whitespace, so that the text before it would parse. */
    p = wire("{}\n", 3);
    assert_int_equal(vfu_caps_parse((char *)p, 3, &c), -EINVAL);
    unwire(p);

    /* Embedded NUL, even with a well-formed prefix. */
    p = wire(two, sizeof(two));
    assert_int_equal(vfu_caps_parse((char *)p, sizeof(two), &c), -EINVAL);
    unwire(p);

    /* A lone NUL is empty text, not "no JSON". */
    p = wire("", 1);
    assert_int_equal(vfu_caps_parse((char *)p, 1, &c), -EINVAL);
    unwire(p);

    /* Trailing whitespace is fine. */
    assert_int_equal(parse_str("{\"capabilities\":{}} \t\r\n", &c), 0);
}

static void
test_caps_build_exact(void **state)
{
    static const char def[] =
        "{\"capabilities\":{\"max_msg_fds\":1,\"max_data_xfer_size\":1048576,"
        "\"max_dma_maps\":65535,\"pgsizes\":4096}}";
    static const char full[] =
        "{\"capabilities\":{\"max_msg_fds\":8,\"max_data_xfer_size\":4096,"
        "\"max_dma_maps\":4294967295,\"pgsizes\":18446744073709551615,"
        "\"write_multiple\":true,\"migration\":{\"pgsize\":4096}}}";
    struct vfu_caps c;
    char buf[512];

    (void)state;
    vfu_caps_default(&c);
    c.twin_socket = true;   /* never emitted */
    assert_int_equal(vfu_caps_build(&c, buf, sizeof(buf)), sizeof(def));
    assert_string_equal(buf, def);

    c.max_msg_fds = 8;
    c.max_data_xfer_size = 4096;
    c.max_dma_maps = MAX32;
    c.pgsizes = MAX64;
    c.write_multiple = true;
    c.mig_pgsize = 4096;
    assert_int_equal(vfu_caps_build(&c, buf, sizeof(buf)), sizeof(full));
    assert_string_equal(buf, full);
}

static void
test_caps_build_nospace(void **state)
{
    struct vfu_caps c;
    char buf[256];
    int need;

    (void)state;
    vfu_caps_default(&c);
    need = vfu_caps_build(&c, buf, sizeof(buf));
    assert_true(need > 1);
    assert_int_equal((size_t)need, strlen(buf) + 1);

    memset(buf, 'x', sizeof(buf));
    assert_int_equal(vfu_caps_build(&c, buf, (size_t)need - 1), -ENOSPC);
    assert_int_equal(buf[0], 'x');      /* nothing written */
    assert_int_equal(vfu_caps_build(&c, buf, 1), -ENOSPC);
    assert_int_equal(vfu_caps_build(&c, NULL, 0), -ENOSPC);
    assert_int_equal(vfu_caps_build(&c, buf, (size_t)need), need);
    assert_int_equal(buf[need - 1], '\0');
}

static void
test_caps_round_trip(void **state)
{
    static const struct vfu_caps cases[] = {
        { 1, 1048576, 65535, 4096, false, false, 0 },
        { 0, 1, 1, 1, true, false, 1 },
        { 253, 65536, 1024, 0x1000 | 0x200000 | 0x40000000, true, false,
          4096 },
        { MAX32, MAX32, MAX32, MAX64, false, false, MAX64 },
    };
    char buf[512];

    (void)state;
    for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
        struct vfu_caps back;
        int n = vfu_caps_build(&cases[i], buf, sizeof(buf));

        assert_true(n > 0);
        assert_int_equal(vfu_caps_parse(buf, (size_t)n, &back), 0);
        assert_caps_equal(&back, &cases[i]);
    }
}

/*
 * What a server advertises: its limit, capped at QEMU's 16 and at the
 * client's own offer, never 0 (issue 11: 130 broke QEMU's handshake).
 */
static void
test_caps_server_fds(void **state)
{
    struct vfu_caps peer;

    (void)state;
    vfu_caps_default(&peer);
    peer.max_msg_fds = 16;
    assert_int_equal(vfu_caps_server_fds(130, &peer), 16);
    assert_int_equal(vfu_caps_server_fds(8, &peer), 8);
    assert_int_equal(vfu_caps_server_fds(UINT64_MAX, &peer), 16);
    peer.max_msg_fds = 4;
    assert_int_equal(vfu_caps_server_fds(130, &peer), 4);
    peer.max_msg_fds = 1000;
    assert_int_equal(vfu_caps_server_fds(253, &peer), 16);
    peer.max_msg_fds = 0;
    assert_int_equal(vfu_caps_server_fds(8, &peer), 1);
    /* A client that sent no max_msg_fds takes the protocol's default 1. */
    vfu_caps_default(&peer);
    assert_int_equal(vfu_caps_server_fds(8, &peer), 1);
    assert_int_equal(vfu_caps_server_fds(0, NULL), 1);
    assert_int_equal(vfu_caps_server_fds(12, NULL), 12);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_caps_default),
        cmocka_unit_test(test_caps_doc_example),
        cmocka_unit_test(test_caps_all_keys),
        cmocka_unit_test(test_caps_unknown_keys),
        cmocka_unit_test(test_caps_bad),
        cmocka_unit_test(test_caps_framing),
        cmocka_unit_test(test_caps_build_exact),
        cmocka_unit_test(test_caps_build_nospace),
        cmocka_unit_test(test_caps_round_trip),
        cmocka_unit_test(test_caps_server_fds),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
