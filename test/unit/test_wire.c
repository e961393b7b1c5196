/*
 * Unit tests for lib/wire.c (header and request checks); the VERSION
 * capability JSON of lib/caps.c is tested in test_caps.c.
 *
 * Every payload reaches a checker through wire(): a heap block holding
 * exactly len bytes, starting one byte past what malloc returned.  The
 * pointer is therefore misaligned for every multi-byte field, and ASan
 * reports any read past len.  test_unaligned_stack additionally feeds a
 * plain char array at every offset 0..7.
 *
 * Most checkers are tested from a table of { what, message, len, nfds,
 * expected } rows; when a row fails, its "what" is printed.
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

#define XFER 4096u          /* max_xfer used throughout */

#include "wire_util.h"

static void
put32(uint8_t *buf, size_t off, uint32_t v)
{
    memcpy(buf + off, &v, sizeof(v));
}

static void
put64(uint8_t *buf, size_t off, uint64_t v)
{
    memcpy(buf + off, &v, sizeof(v));
}

/* ---- vfu_cmd_name ---- */

static void
test_cmd_name(void **state)
{
    (void)state;
    assert_string_equal(vfu_cmd_name(VFU_CMD_VERSION), "VERSION");
    assert_string_equal(vfu_cmd_name(VFU_CMD_DMA_MAP), "DMA_MAP");
    assert_string_equal(vfu_cmd_name(VFU_CMD_REGION_WRITE_MULTI),
                        "REGION_WRITE_MULTI");
    assert_string_equal(vfu_cmd_name(VFU_CMD_MIG_DATA_WRITE),
                        "MIG_DATA_WRITE");
    for (unsigned i = 1; i <= VFU_CMD_MAX; i++) {
        assert_non_null(vfu_cmd_name(i));
        assert_string_not_equal(vfu_cmd_name(i), "UNKNOWN");
        for (unsigned j = 1; j < i; j++)
            assert_string_not_equal(vfu_cmd_name(i), vfu_cmd_name(j));
    }
    assert_string_equal(vfu_cmd_name(0), "UNKNOWN");
    assert_string_equal(vfu_cmd_name(VFU_CMD_MAX + 1), "UNKNOWN");
    assert_string_equal(vfu_cmd_name(0xffff), "UNKNOWN");
    assert_string_equal(vfu_cmd_name(~0u), "UNKNOWN");
}

/* ---- header ---- */

#define T_CMD VFU_F_TYPE_COMMAND
#define T_REP VFU_F_TYPE_REPLY
#define NOREP VFU_F_NO_REPLY
#define ERR VFU_F_ERROR

static const struct hdr_case {
    const char *what;
    uint32_t size, flags, error, max;
    int ret;
} hdr_cases[] = {
    { "command, header only", 16, T_CMD, 0, 4096, 0 },
    { "command with payload", 56, T_CMD, 0, 4096, 0 },
    { "command, no_reply", 16, T_CMD | NOREP, 0, 4096, 0 },
    { "size == max", 4096, T_CMD, 0, 4096, 0 },
    { "size 15", 15, T_CMD, 0, 4096, -EINVAL },
    { "size 0", 0, T_CMD, 0, 4096, -EINVAL },
    { "size max + 1", 4097, T_CMD, 0, 4096, -EMSGSIZE },
    { "size UINT32_MAX", MAX32, T_CMD, 0, 4096, -EMSGSIZE },
    { "size UINT32_MAX, max too", MAX32, T_CMD, 0, MAX32, 0 },
    { "short beats too big", 15, T_CMD, 0, 8, -EINVAL },
    { "command with errno", 16, T_CMD, 22, 4096, -EINVAL },
    { "command with error bit", 16, T_CMD | ERR, 22, 4096, -EINVAL },
    { "command with error bit, no errno", 16, T_CMD | ERR, 0, 4096,
      -EINVAL },
    { "reply, header only", 16, T_REP, 0, 4096, 0 },
    { "reply with payload", 36, T_REP, 0, 4096, 0 },
    { "reply too big", 4097, T_REP, 0, 4096, -EMSGSIZE },
    { "reply with no_reply", 16, T_REP | NOREP, 0, 4096, -EINVAL },
    { "error reply", 16, T_REP | ERR, 22, 4096, 0 },
    { "error reply, errno 0", 16, T_REP | ERR, 0, 4096, -EINVAL },
    { "error reply with payload", 20, T_REP | ERR, 22, 4096, -EINVAL },
    { "error reply with no_reply", 16, T_REP | ERR | NOREP, 22, 4096,
      -EINVAL },
    { "reply with errno, no error bit", 16, T_REP, 22, 4096, -EINVAL },
};

static void
test_hdr_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < ARRAY_SIZE(hdr_cases); i++) {
        const struct hdr_case *c = &hdr_cases[i];
        struct vfu_hdr h;

        vfu_hdr_init(&h, 7, VFU_CMD_REGION_READ, c->size, c->flags,
                     c->error);
        expect_ret(c->what, vfu_hdr_check(&h, c->max), c->ret);
    }
}

static void
test_hdr_reserved_flags(void **state)
{
    struct vfu_hdr h;

    (void)state;
    for (unsigned bit = 6; bit < 32; bit++) {
        vfu_hdr_init(&h, 1, 1, 16, 1u << bit, 0);
        assert_int_equal(vfu_hdr_check(&h, 4096), -EINVAL);
        vfu_hdr_init(&h, 1, 1, 16, T_REP | (1u << bit), 0);
        assert_int_equal(vfu_hdr_check(&h, 4096), -EINVAL);
    }
}

static void
test_hdr_types(void **state)
{
    struct vfu_hdr h;

    (void)state;
    for (uint32_t type = 0; type <= VFU_F_TYPE_MASK; type++) {
        vfu_hdr_init(&h, 1, 1, 16, type, 0);
        assert_int_equal(vfu_hdr_check(&h, 4096), type <= 1 ? 0 : -EINVAL);
        assert_int_equal(vfu_hdr_is_reply(&h), type == 1);
    }
}

/* msg_id and cmd are not the header check's business. */
static void
test_hdr_any_cmd(void **state)
{
    static const uint16_t cmds[] = { 0, 1, VFU_CMD_MAX, VFU_CMD_MAX + 1,
                                     0xffff };
    struct vfu_hdr h;

    (void)state;
    for (size_t i = 0; i < ARRAY_SIZE(cmds); i++) {
        vfu_hdr_init(&h, 0xffff, cmds[i], 16, T_CMD, 0);
        assert_int_equal(vfu_hdr_check(&h, 4096), 0);
    }
}

/* The byte dumps of protocol section 6 (VERSION: see wire_util.h). */
static const uint8_t doc_read_req[32] = {
    0x02, 0x00, 0x09, 0x00, 0x20, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x07, 0x00, 0x00, 0x00, 0x04, 0x00, 0x00, 0x00,
};
static const uint8_t doc_read_reply[36] = {
    0x02, 0x00, 0x09, 0x00, 0x24, 0x00, 0x00, 0x00,
    0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x07, 0x00, 0x00, 0x00, 0x04, 0x00, 0x00, 0x00,
    0x4f, 0x49, 0xc8, 0x0d,
};
static const uint8_t doc_error_reply[16] = {
    0x02, 0x00, 0x09, 0x00, 0x10, 0x00, 0x00, 0x00,
    0x21, 0x00, 0x00, 0x00, 0x16, 0x00, 0x00, 0x00,
};

static void
test_hdr_doc_examples(void **state)
{
    struct vfu_hdr h;

    (void)state;
    memcpy(&h, doc_version_req, sizeof(h));
    assert_int_equal(vfu_hdr_check(&h, 4096), 0);
    assert_int_equal(h.msg_id, 1);
    assert_int_equal(h.cmd, VFU_CMD_VERSION);
    assert_int_equal(h.size, sizeof(doc_version_req));
    assert_false(vfu_hdr_is_reply(&h));

    memcpy(&h, doc_read_req, sizeof(h));
    assert_int_equal(vfu_hdr_check(&h, 4096), 0);
    assert_int_equal(h.size, sizeof(doc_read_req));

    memcpy(&h, doc_read_reply, sizeof(h));
    assert_int_equal(vfu_hdr_check(&h, 4096), 0);
    assert_true(vfu_hdr_is_reply(&h));
    assert_int_equal(h.size, sizeof(doc_read_reply));

    memcpy(&h, doc_error_reply, sizeof(h));
    assert_int_equal(vfu_hdr_check(&h, 4096), 0);
    assert_true(vfu_hdr_is_reply(&h));
    assert_int_equal(h.error, EINVAL);
}

/* ---- VERSION ---- */

static int
run_version(const void *src, size_t len, unsigned nfds,
            struct vfu_version *v, const char **json, size_t *json_len,
            const uint8_t **wired)
{
    uint8_t *p = wire(src, len);
    int ret = vfu_check_version(p, len, nfds, v, json, json_len);

    /* json points into p: hand p back so the caller can check, then free */
    *wired = p;
    return ret;
}

static void
test_version_good(void **state)
{
    const uint8_t *payload = doc_version_req + VFU_HDR_SIZE;
    size_t len = sizeof(doc_version_req) - VFU_HDR_SIZE;
    struct vfu_version v;
    const uint8_t *p;
    const char *json;
    size_t json_len;

    (void)state;
    /* No JSON at all. */
    assert_int_equal(run_version(payload, 4, 0, &v, &json, &json_len, &p),
                     0);
    assert_int_equal(v.major, 0);
    assert_int_equal(v.minor, 1);
    assert_null(json);
    assert_int_equal(json_len, 0);
    unwire((uint8_t *)p);

    /* The worked example: 35 bytes of JSON, NUL included. */
    assert_int_equal(run_version(payload, len, 0, &v, &json, &json_len, &p),
                     0);
    assert_ptr_equal(json, (const char *)p + 4);
    assert_int_equal(json_len, 35);
    assert_string_equal(json, "{\"capabilities\":{\"max_msg_fds\":8}}");
    unwire((uint8_t *)p);

    /* A lone NUL is well formed here; caps parsing rejects it later. */
    static const uint8_t lone[5] = { 0, 0, 1, 0, 0 };
    assert_int_equal(run_version(lone, 5, 0, &v, &json, &json_len, &p), 0);
    assert_int_equal(json_len, 1);
    unwire((uint8_t *)p);
}

static const struct version_case {
    const char *what;
    uint8_t bytes[12];
    size_t len;
    unsigned nfds;
    int ret;
} version_cases[] = {
    { "len 3", { 0, 0, 1, 0 }, 3, 0, -EINVAL },
    { "len 0", { 0 }, 0, 0, -EINVAL },
    { "with an fd", { 0, 0, 1, 0 }, 4, 1, -EINVAL },
    { "json without NUL", { 0, 0, 1, 0, '{', '}' }, 6, 0, -EINVAL },
    { "json, NUL cut off", { 0, 0, 1, 0, '{', '}', 0 }, 6, 0, -EINVAL },
    { "json, one byte extra", { 0, 0, 1, 0, '{', '}', 0, ' ' }, 8, 0,
      -EINVAL },
    { "embedded NUL", { 0, 0, 1, 0, '{', 0, '}', 0 }, 8, 0, -EINVAL },
    { "two NULs at the end", { 0, 0, 1, 0, '{', '}', 0, 0 }, 8, 0,
      -EINVAL },
    { "json and an fd", { 0, 0, 1, 0, '{', '}', 0 }, 7, 1, -EINVAL },
    { "good json", { 0, 0, 1, 0, '{', '}', 0 }, 7, 0, 0 },
};

static void
test_version_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < ARRAY_SIZE(version_cases); i++) {
        const struct version_case *c = &version_cases[i];
        struct vfu_version v;
        const uint8_t *p;
        const char *json;
        size_t json_len;

        expect_ret(c->what, run_version(c->bytes, c->len, c->nfds, &v, &json,
                                        &json_len, &p), c->ret);
        unwire((uint8_t *)p);
    }
}

/* ---- DMA_MAP ---- */

#define RW (VFU_DMA_FLAG_READ | VFU_DMA_FLAG_WRITE)
#define MAP(fl, off, a, sz) \
    { .argsz = 32, .flags = (fl), .offset = (off), .addr = (a), .size = (sz) }

static const struct dma_map_case {
    const char *what;
    struct vfu_dma_map m;
    size_t len;
    unsigned nfds;
    int ret;
} dma_map_cases[] = {
    { "read only", MAP(1, 0, 0x1000, 0x1000), 32, 0, 0 },
    { "write only", MAP(2, 0, 0x1000, 0x1000), 32, 0, 0 },
    { "read-write with fd", MAP(RW, 0x2000, 0x1000, 0x1000), 32, 1, 0 },
    { "len 31", MAP(RW, 0, 0x1000, 0x1000), 31, 0, -EINVAL },
    { "len 0", MAP(RW, 0, 0x1000, 0x1000), 0, 0, -EINVAL },
    { "len 33", MAP(RW, 0, 0x1000, 0x1000), 33, 0, -EINVAL },
    { "two fds", MAP(RW, 0, 0x1000, 0x1000), 32, 2, -EINVAL },
    { "no access flags", MAP(0, 0, 0x1000, 0x1000), 32, 0, -EINVAL },
    { "size 0", MAP(RW, 0, 0x1000, 0), 32, 0, -EINVAL },
    { "size 0 with fd", MAP(RW, 0, 0x1000, 0), 32, 1, -EINVAL },
    { "ends at 2^64-1", MAP(RW, 0, MAX64 - 99, 100), 32, 0, 0 },
    { "wraps past 2^64", MAP(RW, 0, MAX64 - 10, 100), 32, 0, -EINVAL },
    { "ends one past 2^64-1", MAP(RW, 0, MAX64 - 98, 100), 32, 0, -EINVAL },
    { "last byte only", MAP(RW, 0, MAX64, 1), 32, 0, 0 },
    { "last two bytes from MAX", MAP(RW, 0, MAX64, 2), 32, 0, -EINVAL },
    { "whole space", MAP(RW, 0, 0, MAX64), 32, 0, 0 },
    { "whole space from 1", MAP(RW, 0, 1, MAX64), 32, 0, 0 },
    { "whole space from 2", MAP(RW, 0, 2, MAX64), 32, 0, -EINVAL },
    { "fd offset ends at 2^64-1", MAP(RW, MAX64 - 99, 0, 100), 32, 1, 0 },
    { "fd offset wraps", MAP(RW, MAX64 - 10, 0, 100), 32, 1, -EINVAL },
    { "offset ignored without fd", MAP(RW, MAX64 - 10, 0, 100), 32, 0, 0 },
};

static int
run_dma_map(const struct vfu_dma_map *m, size_t len, unsigned nfds,
            struct vfu_dma_map *out)
{
    uint8_t raw[sizeof(*m) + 8] = { 0 };
    uint8_t *p;
    int ret;

    memcpy(raw, m, sizeof(*m));
    p = wire(raw, len);
    ret = vfu_check_dma_map(p, len, nfds, out);
    unwire(p);
    return ret;
}

static void
test_dma_map_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < ARRAY_SIZE(dma_map_cases); i++) {
        const struct dma_map_case *c = &dma_map_cases[i];
        struct vfu_dma_map out;
        int ret = run_dma_map(&c->m, c->len, c->nfds, &out);

        expect_ret(c->what, ret, c->ret);
        if (ret == 0)
            assert_memory_equal(&out, &c->m, sizeof(out));
    }
}

static void
test_dma_map_argsz(void **state)
{
    static const uint32_t bad[] = { 0, 24, 31, 33, 4096, MAX32 };
    struct vfu_dma_map m = MAP(RW, 0, 0x1000, 0x1000), out;

    (void)state;
    for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
        m.argsz = bad[i];
        assert_int_equal(run_dma_map(&m, 32, 0, &out), -EINVAL);
    }
}

static void
test_dma_map_flags(void **state)
{
    struct vfu_dma_map m = MAP(RW, 0, 0x1000, 0x1000), out;

    (void)state;
    for (unsigned bit = 2; bit < 32; bit++) {
        m.flags = RW | (1u << bit);
        assert_int_equal(run_dma_map(&m, 32, 0, &out), -EINVAL);
    }
}

/* ---- DMA_UNMAP ---- */

#define DIRTY VFU_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP
#define ALL VFU_DMA_UNMAP_FLAG_ALL
#define UNMAP(asz, fl, a, sz) \
    { .argsz = (asz), .flags = (fl), .addr = (a), .size = (sz) }

static const struct dma_unmap_case {
    const char *what;
    struct vfu_dma_unmap u;
    size_t len;
    unsigned nfds;
    int ret;
} dma_unmap_cases[] = {
    { "plain", UNMAP(24, 0, 0x1000, 0x1000), 24, 0, 0 },
    { "big argsz", UNMAP(4096, 0, 0x1000, 0x1000), 24, 0, 0 },
    { "argsz 23", UNMAP(23, 0, 0x1000, 0x1000), 24, 0, -EINVAL },
    { "argsz 0", UNMAP(0, 0, 0x1000, 0x1000), 24, 0, -EINVAL },
    { "len 23", UNMAP(24, 0, 0x1000, 0x1000), 23, 0, -EINVAL },
    { "len 0", UNMAP(24, 0, 0x1000, 0x1000), 0, 0, -EINVAL },
    { "len 25", UNMAP(24, 0, 0x1000, 0x1000), 25, 0, -EINVAL },
    { "with an fd", UNMAP(24, 0, 0x1000, 0x1000), 24, 1, -EINVAL },
    { "size 0", UNMAP(24, 0, 0x1000, 0), 24, 0, -EINVAL },
    { "ends at 2^64-1", UNMAP(24, 0, MAX64 - 99, 100), 24, 0, 0 },
    { "wraps past 2^64", UNMAP(24, 0, MAX64 - 10, 100), 24, 0, -EINVAL },
    { "all", UNMAP(24, ALL, 0, 0), 24, 0, 0 },
    { "all with addr", UNMAP(24, ALL, 0x1000, 0), 24, 0, -EINVAL },
    { "all with size", UNMAP(24, ALL, 0, 0x1000), 24, 0, -EINVAL },
    { "all with dirty", UNMAP(64, ALL | DIRTY, 0, 0), 40, 0, -EINVAL },
    { "all, len 25", UNMAP(24, ALL, 0, 0), 25, 0, -EINVAL },
    { "dirty, bitmap header", UNMAP(64, DIRTY, 0x1000, 0x1000), 40, 0, 0 },
    { "dirty, bitmap data", UNMAP(64, DIRTY, 0x1000, 0x1000), 48, 0, 0 },
    { "dirty, header short", UNMAP(64, DIRTY, 0x1000, 0x1000), 39, 0,
      -EINVAL },
    { "dirty, no header", UNMAP(64, DIRTY, 0x1000, 0x1000), 24, 0, -EINVAL },
    { "dirty, size 0", UNMAP(64, DIRTY, 0x1000, 0), 40, 0, -EINVAL },
    { "dirty, wraps", UNMAP(64, DIRTY, MAX64 - 10, 100), 40, 0, -EINVAL },
};

static int
run_dma_unmap(const struct vfu_dma_unmap *u, size_t len, unsigned nfds,
              struct vfu_dma_unmap *out)
{
    uint8_t raw[sizeof(*u) + 32] = { 0 };
    uint8_t *p;
    int ret;

    memcpy(raw, u, sizeof(*u));
    p = wire(raw, len);
    ret = vfu_check_dma_unmap(p, len, nfds, out);
    unwire(p);
    return ret;
}

static void
test_dma_unmap_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < ARRAY_SIZE(dma_unmap_cases); i++) {
        const struct dma_unmap_case *c = &dma_unmap_cases[i];
        struct vfu_dma_unmap out;
        int ret = run_dma_unmap(&c->u, c->len, c->nfds, &out);

        expect_ret(c->what, ret, c->ret);
        if (ret == 0)
            assert_memory_equal(&out, &c->u, sizeof(out));
    }
}

static void
test_dma_unmap_flags(void **state)
{
    struct vfu_dma_unmap u = UNMAP(24, 0, 0x1000, 0x1000), out;

    (void)state;
    for (unsigned bit = 2; bit < 32; bit++) {
        u.flags = 1u << bit;
        assert_int_equal(run_dma_unmap(&u, 24, 0, &out), -EINVAL);
    }
}

/* ---- the fixed-size "info" requests ---- */

/*
 * DEVICE_GET_INFO, DEVICE_GET_REGION_INFO, DEVICE_GET_REGION_IO_FDS and
 * DEVICE_GET_IRQ_INFO share their shape: a fixed struct starting with
 * argsz, which is the room for the reply and so at least the struct size.
 */
typedef int (*info_fn)(const void *p, size_t len, unsigned nfds);

static int
call_dev_info(const void *p, size_t len, unsigned nfds)
{
    struct vfu_device_info out;

    return vfu_check_device_get_info(p, len, nfds, &out);
}

static int
call_region_info(const void *p, size_t len, unsigned nfds)
{
    struct vfu_region_info out;

    return vfu_check_region_info(p, len, nfds, &out);
}

static int
call_io_fds(const void *p, size_t len, unsigned nfds)
{
    struct vfu_region_io_fds out;

    return vfu_check_region_io_fds(p, len, nfds, &out);
}

static int
call_irq_info(const void *p, size_t len, unsigned nfds)
{
    struct vfu_irq_info out;

    return vfu_check_irq_info(p, len, nfds, &out);
}

static const struct info_kind {
    const char *name;
    info_fn fn;
    size_t size;
} info_kinds[] = {
    { "DEVICE_GET_INFO", call_dev_info, sizeof(struct vfu_device_info) },
    { "DEVICE_GET_REGION_INFO", call_region_info,
      sizeof(struct vfu_region_info) },
    { "DEVICE_GET_REGION_IO_FDS", call_io_fds,
      sizeof(struct vfu_region_io_fds) },
    { "DEVICE_GET_IRQ_INFO", call_irq_info, sizeof(struct vfu_irq_info) },
};

/* Run an info request whose argsz is asz, the rest zero but for index. */
static int
run_info(const struct info_kind *k, uint32_t asz, size_t len, unsigned nfds)
{
    uint8_t raw[128] = { 0 };
    uint8_t *p;
    int ret;

    put32(raw, 0, asz);
    put32(raw, 8, 1234);  /* index: range is the caller's business */
    p = wire(raw, len);
    ret = k->fn(p, len, nfds);
    unwire(p);
    return ret;
}

static void
test_info_requests(void **state)
{
    (void)state;
    for (size_t i = 0; i < ARRAY_SIZE(info_kinds); i++) {
        const struct info_kind *k = &info_kinds[i];
        uint32_t sz = (uint32_t)k->size;

        print_message("%s\n", k->name);
        assert_int_equal(run_info(k, sz, sz, 0), 0);
        assert_int_equal(run_info(k, 65536, sz, 0), 0);
        assert_int_equal(run_info(k, sz - 1, sz, 0), -EINVAL);
        assert_int_equal(run_info(k, 0, sz, 0), -EINVAL);
        assert_int_equal(run_info(k, sz, sz - 1, 0), -EINVAL);
        assert_int_equal(run_info(k, sz, 0, 0), -EINVAL);
        assert_int_equal(run_info(k, sz, sz + 1, 0), -EINVAL);
        assert_int_equal(run_info(k, sz, sz, 1), -EINVAL);
        /* The client's whole argsz buffer as payload, as libvfio-user's
         * client sends a region info (issue 11): the tail is ignored. */
        assert_int_equal(run_info(k, 80, 80, 0), 0);
        assert_int_equal(run_info(k, 128, 128, 0), 0);
        assert_int_equal(run_info(k, 80, sz + 1, 0), 0);
        /* ...but never more payload than argsz says the buffer holds. */
        assert_int_equal(run_info(k, 80, 81, 0), -EINVAL);
        assert_int_equal(run_info(k, 80, 80, 1), -EINVAL);
    }
}

static void
test_info_outputs(void **state)
{
    const struct vfu_region_info ri = {
        .argsz = 200, .flags = 0, .index = 7,
    };
    const struct vfu_irq_info ii = { .argsz = 16, .index = 2 };
    const struct vfu_device_info di = { .argsz = 16 };
    struct vfu_region_info ro;
    struct vfu_irq_info io;
    struct vfu_device_info dout;
    uint8_t *p;

    (void)state;
    p = wire(&ri, sizeof(ri));
    assert_int_equal(vfu_check_region_info(p, sizeof(ri), 0, &ro), 0);
    assert_memory_equal(&ro, &ri, sizeof(ri));
    unwire(p);

    p = wire(&ii, sizeof(ii));
    assert_int_equal(vfu_check_irq_info(p, sizeof(ii), 0, &io), 0);
    assert_memory_equal(&io, &ii, sizeof(ii));
    unwire(p);

    p = wire(&di, sizeof(di));
    assert_int_equal(vfu_check_device_get_info(p, sizeof(di), 0, &dout), 0);
    assert_memory_equal(&dout, &di, sizeof(di));
    unwire(p);
}

/* flags and count are reply fields of REGION_IO_FDS; requests carry 0. */
static void
test_io_fds_fields(void **state)
{
    struct vfu_region_io_fds r = { .argsz = 16, .index = 1 }, out;
    uint8_t *p;

    (void)state;
    p = wire(&r, sizeof(r));
    assert_int_equal(vfu_check_region_io_fds(p, sizeof(r), 0, &out), 0);
    assert_memory_equal(&out, &r, sizeof(r));
    unwire(p);

    for (unsigned bit = 0; bit < 32; bit++) {
        r.flags = 1u << bit;
        p = wire(&r, sizeof(r));
        assert_int_equal(vfu_check_region_io_fds(p, sizeof(r), 0, &out),
                         -EINVAL);
        unwire(p);
    }
    r.flags = 0;
    r.count = 1;
    p = wire(&r, sizeof(r));
    assert_int_equal(vfu_check_region_io_fds(p, sizeof(r), 0, &out),
                     -EINVAL);
    unwire(p);
}

/* ---- DEVICE_SET_IRQS ---- */

#define D_NONE VFU_IRQ_SET_DATA_NONE
#define D_BOOL VFU_IRQ_SET_DATA_BOOL
#define D_EFD VFU_IRQ_SET_DATA_EVENTFD
#define A_MASK VFU_IRQ_SET_ACTION_MASK
#define A_UNMASK VFU_IRQ_SET_ACTION_UNMASK
#define A_TRIG VFU_IRQ_SET_ACTION_TRIGGER
#define IRQS(asz, fl, st, cnt) \
    { .argsz = (asz), .flags = (fl), .index = 1, .start = (st), \
      .count = (cnt) }

static const struct set_irqs_case {
    const char *what;
    struct vfu_irq_set s;
    uint8_t data[8];
    size_t len;
    unsigned nfds;
    int ret;
} set_irqs_cases[] = {
    { "disable all", IRQS(20, D_NONE | A_TRIG, 0, 0), { 0 }, 20, 0, 0 },
    { "mask 4", IRQS(20, D_NONE | A_MASK, 0, 4), { 0 }, 20, 0, 0 },
    { "none with data", IRQS(21, D_NONE | A_MASK, 0, 4), { 0 }, 21, 0,
      -EINVAL },
    { "none with an fd", IRQS(20, D_NONE | A_TRIG, 0, 1), { 0 }, 20, 1,
      -EINVAL },
    { "bool x3", IRQS(23, D_BOOL | A_TRIG, 0, 3), { 1, 0, 1 }, 23, 0, 0 },
    { "bool x0", IRQS(20, D_BOOL | A_UNMASK, 0, 0), { 0 }, 20, 0, 0 },
    { "bool, one byte short", IRQS(22, D_BOOL | A_TRIG, 0, 3), { 1, 0 }, 22,
      0, -EINVAL },
    { "bool, one byte extra", IRQS(24, D_BOOL | A_TRIG, 0, 3), { 1, 0, 1 },
      24, 0, -EINVAL },
    { "bool, byte 2", IRQS(23, D_BOOL | A_TRIG, 0, 3), { 1, 2, 1 }, 23, 0,
      -EINVAL },
    { "bool, byte 0xff", IRQS(23, D_BOOL | A_TRIG, 0, 3), { 1, 0, 0xff },
      23, 0, -EINVAL },
    { "bool, huge count", IRQS(23, D_BOOL | A_TRIG, 0, MAX32), { 1, 1, 1 },
      23, 0, -EINVAL },
    { "bool with an fd", IRQS(21, D_BOOL | A_TRIG, 0, 1), { 1 }, 21, 1,
      -EINVAL },
    { "eventfd x2", IRQS(20, D_EFD | A_TRIG, 0, 2), { 0 }, 20, 2, 0 },
    { "eventfd de-assign", IRQS(20, D_EFD | A_TRIG, 0, 2), { 0 }, 20, 0, 0 },
    { "eventfd, 1 of 2 fds", IRQS(20, D_EFD | A_TRIG, 0, 2), { 0 }, 20, 1,
      -EINVAL },
    { "eventfd, 3 for 2", IRQS(20, D_EFD | A_TRIG, 0, 2), { 0 }, 20, 3,
      -EINVAL },
    { "eventfd count 0", IRQS(20, D_EFD | A_TRIG, 0, 0), { 0 }, 20, 0, 0 },
    { "eventfd count 0, 1 fd", IRQS(20, D_EFD | A_TRIG, 0, 0), { 0 }, 20, 1,
      -EINVAL },
    { "eventfd with data", IRQS(21, D_EFD | A_TRIG, 0, 1), { 0 }, 21, 1,
      -EINVAL },
    { "eventfd for masking", IRQS(20, D_EFD | A_MASK, 3, 1), { 0 }, 20, 1, 0 },
    { "argsz > len", IRQS(21, D_NONE | A_TRIG, 0, 0), { 0 }, 20, 0, -EINVAL },
    { "argsz < len", IRQS(19, D_NONE | A_TRIG, 0, 0), { 0 }, 20, 0, -EINVAL },
    { "len 19", IRQS(19, D_NONE | A_TRIG, 0, 0), { 0 }, 19, 0, -EINVAL },
    { "len 0", IRQS(0, D_NONE | A_TRIG, 0, 0), { 0 }, 0, 0, -EINVAL },
    { "no flags", IRQS(20, 0, 0, 0), { 0 }, 20, 0, -EINVAL },
    { "no data bit", IRQS(20, A_TRIG, 0, 0), { 0 }, 20, 0, -EINVAL },
    { "no action bit", IRQS(20, D_NONE, 0, 0), { 0 }, 20, 0, -EINVAL },
    { "two data bits", IRQS(20, D_NONE | D_EFD | A_TRIG, 0, 0), { 0 }, 20, 0,
      -EINVAL },
    { "all data bits", IRQS(20, 0x7 | A_TRIG, 0, 0), { 0 }, 20, 0, -EINVAL },
    { "two action bits", IRQS(20, D_NONE | A_MASK | A_UNMASK, 0, 0), { 0 },
      20, 0, -EINVAL },
    { "start+count = 2^32-1", IRQS(20, D_NONE | A_MASK, 0xfffffff0, 0xf),
      { 0 }, 20, 0, 0 },
    { "start+count = 2^32", IRQS(20, D_NONE | A_MASK, 0xfffffff0, 0x10),
      { 0 }, 20, 0, -EINVAL },
    { "start max, count 1", IRQS(20, D_NONE | A_MASK, MAX32, 1), { 0 }, 20,
      0, -EINVAL },
    { "start max, count 0", IRQS(20, D_NONE | A_MASK, MAX32, 0), { 0 }, 20,
      0, 0 },
    { "eventfd wraps", IRQS(20, D_EFD | A_TRIG, MAX32, 2), { 0 }, 20, 2,
      -EINVAL },
};

static int
run_set_irqs(const struct vfu_irq_set *s, const uint8_t *data, size_t len,
             unsigned nfds, struct vfu_irq_set *out, const uint8_t **outdata,
             ptrdiff_t *data_off)
{
    uint8_t raw[sizeof(*s) + 8] = { 0 };
    uint8_t *p;
    int ret;

    memcpy(raw, s, sizeof(*s));
    memcpy(raw + sizeof(*s), data, 8);
    p = wire(raw, len);
    ret = vfu_check_set_irqs(p, len, nfds, out, outdata);
    *data_off = ret == 0 && *outdata != NULL ? *outdata - p : -1;
    unwire(p);
    return ret;
}

static void
test_set_irqs_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < ARRAY_SIZE(set_irqs_cases); i++) {
        const struct set_irqs_case *c = &set_irqs_cases[i];
        struct vfu_irq_set out;
        const uint8_t *data;
        ptrdiff_t off;
        int ret = run_set_irqs(&c->s, c->data, c->len, c->nfds, &out, &data,
                               &off);

        expect_ret(c->what, ret, c->ret);
        if (ret != 0)
            continue;
        assert_memory_equal(&out, &c->s, sizeof(out));
        /* data points just past the fixed part for BOOL, else NULL. */
        assert_int_equal(off, (c->s.flags & D_BOOL) ? 20 : -1);
    }
}

static void
test_set_irqs_flags(void **state)
{
    struct vfu_irq_set s = IRQS(20, D_NONE | A_TRIG, 0, 0), out;
    static const uint8_t none[8];
    const uint8_t *data;
    ptrdiff_t off;

    (void)state;
    for (unsigned bit = 6; bit < 32; bit++) {
        s.flags = D_NONE | A_TRIG | (1u << bit);
        assert_int_equal(run_set_irqs(&s, none, 20, 0, &out, &data, &off),
                         -EINVAL);
    }
    /* Every data x action combination is fine on its own. */
    for (unsigned d = 0; d < 3; d++) {
        for (unsigned a = 3; a < 6; a++) {
            s.flags = (1u << d) | (1u << a);
            assert_int_equal(run_set_irqs(&s, none, 20, 0, &out, &data,
                                          &off), 0);
        }
    }
}

/* ---- REGION_READ / REGION_WRITE ---- */

static const struct region_case {
    const char *what;
    uint32_t count;
    size_t data_len;        /* bytes after the 16-byte fixed part */
    bool trunc;             /* len = 16 + data_len - 1 */
    unsigned nfds;
    int rd, wr;             /* expected for REGION_READ / REGION_WRITE */
} region_cases[] = {
    { "count 4, no data", 4, 0, false, 0, 0, -EINVAL },
    { "count 4, 4 bytes", 4, 4, false, 0, -EINVAL, 0 },
    { "count 4, 3 bytes", 4, 3, false, 0, -EINVAL, -EINVAL },
    { "count 4, 5 bytes", 4, 5, false, 0, -EINVAL, -EINVAL },
    { "count 1, 1 byte", 1, 1, false, 0, -EINVAL, 0 },
    { "count 1, no data", 1, 0, false, 0, 0, -EINVAL },
    { "count 0", 0, 0, false, 0, -EINVAL, -EINVAL },
    { "count max", XFER, XFER, false, 0, -EINVAL, 0 },
    { "count max, no data", XFER, 0, false, 0, 0, -EINVAL },
    { "count max + 1", XFER + 1, XFER + 1, false, 0, -EINVAL, -EINVAL },
    { "count max + 1, no data", XFER + 1, 0, false, 0, -EINVAL, -EINVAL },
    { "count UINT32_MAX", MAX32, 0, false, 0, -EINVAL, -EINVAL },
    { "fixed part short", 4, 0, true, 0, -EINVAL, -EINVAL },
    { "read with an fd", 4, 0, false, 1, -EINVAL, -EINVAL },
    { "write with an fd", 4, 4, false, 1, -EINVAL, -EINVAL },
};

static int
run_region(bool write, uint32_t count, size_t len, unsigned nfds,
           uint32_t max_xfer, struct vfu_region_access *out,
           ptrdiff_t *data_off)
{
    uint8_t *raw = calloc(1, 16 + XFER + 8);
    const uint8_t *data = NULL;
    uint8_t *p;
    int ret;

    assert_non_null(raw);
    put64(raw, 0, 0x100);
    put32(raw, 8, VFU_PCI_CONFIG);
    put32(raw, 12, count);
    p = wire(raw, len);
    if (write)
        ret = vfu_check_region_write(p, len, nfds, max_xfer, out, &data);
    else
        ret = vfu_check_region_read(p, len, nfds, max_xfer, out);
    *data_off = data != NULL ? data - p : -1;
    unwire(p);
    free(raw);
    return ret;
}

static void
test_region_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < ARRAY_SIZE(region_cases); i++) {
        const struct region_case *c = &region_cases[i];
        size_t len = 16 + c->data_len - (c->trunc ? 1 : 0);
        struct vfu_region_access out;
        ptrdiff_t off;
        int ret;

        ret = run_region(false, c->count, len, c->nfds, XFER, &out, &off);
        expect_ret(c->what, ret, c->rd);
        if (ret == 0) {
            assert_int_equal(out.offset, 0x100);
            assert_int_equal(out.region, VFU_PCI_CONFIG);
            assert_int_equal(out.count, c->count);
        }

        ret = run_region(true, c->count, len, c->nfds, XFER, &out, &off);
        expect_ret(c->what, ret, c->wr);
        if (ret == 0) {
            assert_int_equal(out.count, c->count);
            assert_int_equal(off, 16);
        }
    }
}

static void
test_region_edges(void **state)
{
    struct vfu_region_access out;
    ptrdiff_t off;

    (void)state;
    /* len 0 */
    assert_int_equal(run_region(false, 4, 0, 0, XFER, &out, &off), -EINVAL);
    assert_int_equal(run_region(true, 4, 0, 0, XFER, &out, &off), -EINVAL);
    /* max_xfer 0 allows nothing; max_xfer 1 exactly one byte */
    assert_int_equal(run_region(false, 1, 16, 0, 0, &out, &off), -EINVAL);
    assert_int_equal(run_region(true, 1, 17, 0, 0, &out, &off), -EINVAL);
    assert_int_equal(run_region(true, 1, 17, 0, 1, &out, &off), 0);
    assert_int_equal(run_region(true, 2, 18, 0, 1, &out, &off), -EINVAL);
}

static void
test_region_read_doc_example(void **state)
{
    struct vfu_region_access out;
    uint8_t *p = wire(doc_read_req + VFU_HDR_SIZE, 16);

    (void)state;
    assert_int_equal(vfu_check_region_read(p, 16, 0, XFER, &out), 0);
    assert_int_equal(out.offset, 0);
    assert_int_equal(out.region, VFU_PCI_CONFIG);
    assert_int_equal(out.count, 4);
    unwire(p);
}

/* ---- REGION_WRITE_MULTI ---- */

#define WM_ESZ sizeof(struct vfu_write_multi_entry)

/* Lay out n entries; entry i writes (i % 8) + 1 bytes of value i. */
static uint8_t *
multi_build(uint64_t wr_cnt, size_t n, size_t *len)
{
    uint8_t *raw = calloc(1, 8 + n * WM_ESZ + 1);
    struct vfu_write_multi_entry e;

    assert_non_null(raw);
    put64(raw, 0, wr_cnt);
    for (size_t i = 0; i < n; i++) {
        memset(&e, 0, sizeof(e));
        e.offset = 4 * i;
        e.region = (uint32_t)(i % 6);
        e.count = (uint32_t)(i % 8) + 1;
        memset(e.data, (int)i, e.count);
        memcpy(raw + 8 + i * WM_ESZ, &e, sizeof(e));
    }
    *len = 8 + n * WM_ESZ;
    return raw;
}

static int
run_multi(const uint8_t *raw, size_t len, unsigned nfds, uint64_t *wr_cnt,
          ptrdiff_t *entries_off)
{
    const struct vfu_write_multi_entry *entries = NULL;
    uint8_t *p = wire(raw, len);
    int ret = vfu_check_write_multi(p, len, nfds, wr_cnt, &entries);

    *entries_off = entries != NULL ? (const uint8_t *)entries - p : -1;
    unwire(p);
    return ret;
}

static void
test_write_multi_good(void **state)
{
    static const size_t counts[] = { 1, 3, VFU_WRITE_MULTI_MAX };
    const struct vfu_write_multi_entry *entries;
    struct vfu_write_multi_entry e;
    uint64_t n;
    size_t len;

    (void)state;
    for (size_t k = 0; k < ARRAY_SIZE(counts); k++) {
        uint8_t *raw = multi_build(counts[k], counts[k], &len);
        uint8_t *p = wire(raw, len);

        assert_int_equal(vfu_check_write_multi(p, len, 0, &n, &entries), 0);
        assert_int_equal(n, counts[k]);
        assert_ptr_equal(entries, p + 8);
        /* Entries are misaligned: read each through memcpy. */
        for (size_t i = 0; i < n; i++) {
            memcpy(&e, &entries[i], sizeof(e));
            assert_int_equal(e.offset, 4 * i);
            assert_int_equal(e.count, (i % 8) + 1);
            assert_int_equal(e.data[0], (uint8_t)i);
        }
        unwire(p);
        free(raw);
    }
}

static void
test_write_multi_bad(void **state)
{
    struct vfu_write_multi_entry e;
    uint64_t n;
    ptrdiff_t off;
    size_t len;
    uint8_t *raw;

    (void)state;
    raw = multi_build(3, 3, &len);
    assert_int_equal(run_multi(raw, len, 0, &n, &off), 0);
    assert_int_equal(run_multi(raw, len - 1, 0, &n, &off), -EINVAL);
    assert_int_equal(run_multi(raw, len + 1, 0, &n, &off), -EINVAL);
    assert_int_equal(run_multi(raw, len - WM_ESZ, 0, &n, &off), -EINVAL);
    assert_int_equal(run_multi(raw, 7, 0, &n, &off), -EINVAL);
    assert_int_equal(run_multi(raw, 0, 0, &n, &off), -EINVAL);
    assert_int_equal(run_multi(raw, len, 1, &n, &off), -EINVAL);

    /* Entry counts 0 and 9 are out of range, in any position. */
    for (size_t i = 0; i < 3; i++) {
        static const uint32_t bad[] = { 0, 9, MAX32 };

        for (size_t b = 0; b < 3; b++) {
            memcpy(&e, raw + 8 + i * WM_ESZ, sizeof(e));
            e.count = bad[b];
            memcpy(raw + 8 + i * WM_ESZ, &e, sizeof(e));
            assert_int_equal(run_multi(raw, len, 0, &n, &off), -EINVAL);
        }
        e.count = 8;
        memcpy(raw + 8 + i * WM_ESZ, &e, sizeof(e));
        assert_int_equal(run_multi(raw, len, 0, &n, &off), 0);
    }
    free(raw);

    /* wr_cnt 0, and wr_cnt disagreeing with len. */
    raw = multi_build(0, 0, &len);
    assert_int_equal(run_multi(raw, len, 0, &n, &off), -EINVAL);
    free(raw);
    raw = multi_build(2, 3, &len);
    assert_int_equal(run_multi(raw, len, 0, &n, &off), -EINVAL);
    free(raw);
    raw = multi_build(4, 3, &len);
    assert_int_equal(run_multi(raw, len, 0, &n, &off), -EINVAL);
    free(raw);
}

static void
test_write_multi_too_many(void **state)
{
    uint64_t n;
    ptrdiff_t off;
    size_t len;
    uint8_t *raw;

    (void)state;
    raw = multi_build(VFU_WRITE_MULTI_MAX + 1, VFU_WRITE_MULTI_MAX + 1, &len);
    assert_int_equal(run_multi(raw, len, 0, &n, &off), -EINVAL);
    free(raw);

    /*
     * wr_cnt * 24 wraps to 8 for this wr_cnt: a checker multiplying
     * before bounding wr_cnt would accept a 16-byte payload.
     */
    raw = multi_build(0x0aaaaaaaaaaaaaabull, 1, &len);
    assert_int_equal(run_multi(raw, 16, 0, &n, &off), -EINVAL);
    put64(raw, 0, MAX64);
    assert_int_equal(run_multi(raw, len, 0, &n, &off), -EINVAL);
    free(raw);
}

/* ---- DEVICE_FEATURE ---- */

#define F_GET VFU_FEATURE_GET
#define F_SET VFU_FEATURE_SET
#define F_PROBE VFU_FEATURE_PROBE

static const struct feature_case {
    const char *what;
    uint32_t argsz, flags;
    size_t len;
    unsigned nfds;
    int ret;
} feature_cases[] = {
    { "get migration", 16, F_GET | VFU_FEATURE_MIGRATION, 8, 0, 0 },
    { "set device state", 16, F_SET | VFU_FEATURE_MIG_DEVICE_STATE, 16, 0,
      0 },
    { "probe", 8, F_PROBE | VFU_FEATURE_DMA_LOGGING_START, 8, 0, 0 },
    { "probe get+set", 8, F_PROBE | F_GET | F_SET | 1, 8, 0, 0 },
    { "probe get", 8, F_PROBE | F_GET | 1, 8, 0, 0 },
    { "index 0xffff", 8, F_GET | 0xffff, 8, 0, 0 },
    { "index 0", 8, F_GET, 8, 0, 0 },
    { "get+set", 8, F_GET | F_SET | 1, 8, 0, -EINVAL },
    { "no operation", 8, VFU_FEATURE_MIGRATION, 8, 0, -EINVAL },
    { "flags 0", 8, 0, 8, 0, -EINVAL },
    { "argsz 7", 7, F_GET | 1, 8, 0, -EINVAL },
    { "argsz 0", 0, F_GET | 1, 8, 0, -EINVAL },
    { "len 7", 8, F_GET | 1, 7, 0, -EINVAL },
    { "len 0", 8, F_GET | 1, 0, 0, -EINVAL },
    { "with an fd", 8, F_GET | 1, 8, 1, -EINVAL },
};

static int
run_feature(uint32_t argsz, uint32_t flags, size_t len, unsigned nfds,
            struct vfu_device_feature *out, ptrdiff_t *data_off,
            size_t *data_len)
{
    uint8_t raw[32] = { 0 };
    const uint8_t *data = NULL;
    uint8_t *p;
    int ret;

    put32(raw, 0, argsz);
    put32(raw, 4, flags);
    p = wire(raw, len);
    ret = vfu_check_device_feature(p, len, nfds, out, &data, data_len);
    *data_off = data != NULL ? data - p : -1;
    unwire(p);
    return ret;
}

static void
test_feature_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < ARRAY_SIZE(feature_cases); i++) {
        const struct feature_case *c = &feature_cases[i];
        struct vfu_device_feature out;
        ptrdiff_t off;
        size_t dlen;
        int ret = run_feature(c->argsz, c->flags, c->len, c->nfds, &out,
                              &off, &dlen);

        expect_ret(c->what, ret, c->ret);
        if (ret != 0)
            continue;
        assert_int_equal(out.argsz, c->argsz);
        assert_int_equal(out.flags, c->flags);
        assert_int_equal(off, 8);
        assert_int_equal(dlen, c->len - 8);
    }
}

static void
test_feature_flags(void **state)
{
    struct vfu_device_feature out;
    ptrdiff_t off;
    size_t dlen;

    (void)state;
    for (unsigned bit = 19; bit < 32; bit++) {
        assert_int_equal(run_feature(8, F_GET | 1 | (1u << bit), 8, 0, &out,
                                     &off, &dlen), -EINVAL);
    }
}

/* ---- no payload ---- */

static void
test_no_payload(void **state)
{
    uint8_t byte = 0;

    (void)state;
    assert_int_equal(vfu_check_no_payload(NULL, 0, 0), 0);
    assert_int_equal(vfu_check_no_payload(&byte, 0, 0), 0);
    assert_int_equal(vfu_check_no_payload(&byte, 1, 0), -EINVAL);
    assert_int_equal(vfu_check_no_payload(NULL, 0, 1), -EINVAL);
}

/* ---- DMA_READ / DMA_WRITE (client side) ---- */

static const struct dma_access_case {
    const char *what;
    bool write;
    uint64_t addr, count;
    size_t len;
    unsigned nfds;
    int ret;
} dma_access_cases[] = {
    { "read 8", false, 0x1000, 8, 16, 0, 0 },
    { "read with data", false, 0x1000, 8, 24, 0, -EINVAL },
    { "read, len 17", false, 0x1000, 8, 17, 0, -EINVAL },
    { "read, len 15", false, 0x1000, 8, 15, 0, -EINVAL },
    { "read, len 0", false, 0x1000, 8, 0, 0, -EINVAL },
    { "read count 0", false, 0x1000, 0, 16, 0, -EINVAL },
    { "read count max", false, 0x1000, XFER, 16, 0, 0 },
    { "read count max + 1", false, 0x1000, XFER + 1, 16, 0, -EINVAL },
    { "read count 2^32 + 1", false, 0x1000, (1ull << 32) + 1, 16, 0,
      -EINVAL },
    { "read with an fd", false, 0x1000, 8, 16, 1, -EINVAL },
    { "read ends at 2^64-1", false, MAX64 - 99, 100, 16, 0, 0 },
    { "read wraps", false, MAX64 - 10, 100, 16, 0, -EINVAL },
    { "read last byte", false, MAX64, 1, 16, 0, 0 },
    { "write 8", true, 0x1000, 8, 24, 0, 0 },
    { "write, one byte short", true, 0x1000, 8, 23, 0, -EINVAL },
    { "write, one byte extra", true, 0x1000, 8, 25, 0, -EINVAL },
    { "write without data", true, 0x1000, 8, 16, 0, -EINVAL },
    { "write count 0", true, 0x1000, 0, 16, 0, -EINVAL },
    { "write count max + 1", true, 0x1000, XFER + 1, 16 + XFER + 1, 0,
      -EINVAL },
    { "write with an fd", true, 0x1000, 8, 24, 1, -EINVAL },
    { "write ends at 2^64-1", true, MAX64 - 99, 100, 116, 0, 0 },
    { "write wraps", true, MAX64 - 10, 100, 116, 0, -EINVAL },
};

static void
test_dma_access_table(void **state)
{
    uint8_t *raw = calloc(1, 16 + XFER + 8);

    (void)state;
    assert_non_null(raw);
    for (size_t i = 0; i < ARRAY_SIZE(dma_access_cases); i++) {
        const struct dma_access_case *c = &dma_access_cases[i];
        struct vfu_dma_access out;
        const uint8_t *data = (const uint8_t *)"junk";
        uint8_t *p;
        int ret;

        put64(raw, 0, c->addr);
        put64(raw, 8, c->count);
        p = wire(raw, c->len);
        ret = vfu_check_dma_access_req(p, c->len, c->nfds, c->write, XFER,
                                       &out, &data);
        expect_ret(c->what, ret, c->ret);
        if (ret == 0) {
            assert_int_equal(out.addr, c->addr);
            assert_int_equal(out.count, c->count);
            assert_ptr_equal(data, c->write ? p + 16 : NULL);
        }
        unwire(p);
    }
    free(raw);
}

/* ---- cross-cutting properties ---- */

/*
 * The same messages from a plain char array, at every alignment: the
 * checkers must not assume anything about p.
 */
static void
test_unaligned_stack(void **state)
{
    const struct vfu_dma_map m = MAP(RW, 0, 0x1000, 0x2000);
    const struct vfu_irq_set s = IRQS(22, D_BOOL | A_TRIG, 0, 2);
    char buf[256 + 8];

    (void)state;
    for (size_t a = 0; a < 8; a++) {
        char *p = buf + a;
        struct vfu_dma_map mo;
        struct vfu_irq_set so;
        struct vfu_region_access ro;
        const uint8_t *data;

        memcpy(p, &m, sizeof(m));
        assert_int_equal(vfu_check_dma_map(p, sizeof(m), 1, &mo), 0);
        assert_int_equal(mo.size, 0x2000);

        memcpy(p, &s, sizeof(s));
        p[20] = 1;
        p[21] = 0;
        assert_int_equal(vfu_check_set_irqs(p, 22, 0, &so, &data), 0);
        assert_ptr_equal(data, (uint8_t *)p + 20);

        memcpy(p, doc_read_req + VFU_HDR_SIZE, 16);
        assert_int_equal(vfu_check_region_read(p, 16, 0, XFER, &ro), 0);
        assert_int_equal(ro.region, VFU_PCI_CONFIG);
    }
}

/* A failing check leaves every output alone. */
static void
test_outputs_untouched(void **state)
{
    const struct vfu_dma_map bad_map = MAP(RW, 0, MAX64 - 10, 100);
    struct vfu_dma_map mo, mo_before;
    struct vfu_region_access ro, ro_before;
    const uint8_t *data = (const uint8_t *)&ro;
    uint8_t raw[32] = { 0 };
    uint8_t *p;

    (void)state;
    memset(&mo, 0xa5, sizeof(mo));
    mo_before = mo;
    p = wire(&bad_map, sizeof(bad_map));
    assert_int_equal(vfu_check_dma_map(p, sizeof(bad_map), 0, &mo), -EINVAL);
    assert_memory_equal(&mo, &mo_before, sizeof(mo));
    unwire(p);

    memset(&ro, 0x5a, sizeof(ro));
    ro_before = ro;
    put32(raw, 12, 8);  /* count 8, only 7 data bytes */
    p = wire(raw, 23);
    assert_int_equal(vfu_check_region_write(p, 23, 0, XFER, &ro, &data),
                     -EINVAL);
    assert_memory_equal(&ro, &ro_before, sizeof(ro));
    assert_ptr_equal(data, (const uint8_t *)&ro);
    unwire(p);
}

/* ---- DEVICE_FEATURE DMA logging data ---- */

static int
run_log_control(uint64_t ps, uint32_t n, uint32_t reserved,
                const uint64_t *ranges, size_t nr_given, size_t extra,
                struct vfu_dma_logging_control *out, ptrdiff_t *ranges_off)
{
    struct vfu_dma_logging_control c = { ps, n, reserved };
    size_t len = sizeof(c) + nr_given * 16 + extra;
    uint8_t *p = calloc(1, len + 1);
    const uint8_t *rg = NULL;
    int ret;

    assert_non_null(p);
    memcpy(p + 1, &c, sizeof(c));       /* misaligned on purpose */
    if (nr_given > 0)
        memcpy(p + 1 + sizeof(c), ranges, nr_given * 16);
    ret = vfu_check_dma_logging_control(p + 1, len, out, &rg);
    if (ret == 0)
        *ranges_off = rg - (p + 1);
    free(p);
    return ret;
}

static void
test_log_control(void **state)
{
    const uint64_t two[4] = { 0x1000, 0x2000, 0x10000, 1 };
    const uint64_t empty[2] = { 0x1000, 0 };
    const uint64_t wraps[2] = { MAX64 - 0xfff, 0x2000 };
    const uint64_t top[2] = { MAX64 - 0xfff, 0x1000 };
    struct vfu_dma_logging_control out;
    ptrdiff_t off = -1;
    uint64_t start, last;
    uint8_t raw[32];

    (void)state;
    assert_int_equal(run_log_control(0x1000, 2, 0, two, 2, 0, &out, &off), 0);
    assert_int_equal(out.page_size, 0x1000);
    assert_int_equal(out.num_ranges, 2);
    assert_int_equal(off, 16);
    memcpy(raw, two, sizeof(raw));
    vfu_dma_logging_range_at(raw, 0, &start, &last);
    assert_int_equal(start, 0x1000);
    assert_int_equal(last, 0x2fff);
    vfu_dma_logging_range_at(raw, 1, &start, &last);
    assert_int_equal(start, 0x10000);
    assert_int_equal(last, 0x10000);
    /* No ranges: everything.  The last byte of the space is a range. */
    assert_int_equal(run_log_control(1 << 21, 0, 0, NULL, 0, 0, &out, &off), 0);
    assert_int_equal(run_log_control(0x1000, 1, 0, top, 1, 0, &out, &off), 0);

    /* Page size: a power of two, 4 KiB at least. */
    assert_int_equal(run_log_control(0, 0, 0, NULL, 0, 0, &out, &off), -EINVAL);
    assert_int_equal(run_log_control(0x800, 0, 0, NULL, 0, 0, &out, &off),
                     -EINVAL);
    assert_int_equal(run_log_control(0x3000, 0, 0, NULL, 0, 0, &out, &off),
                     -EINVAL);
    assert_int_equal(run_log_control(1ull << 63, 0, 0, NULL, 0, 0, &out, &off),
                     0);
    /* Reserved, count against length (short, long, huge count). */
    assert_int_equal(run_log_control(0x1000, 0, 1, NULL, 0, 0, &out, &off),
                     -EINVAL);
    assert_int_equal(run_log_control(0x1000, 2, 0, two, 1, 0, &out, &off),
                     -EINVAL);
    assert_int_equal(run_log_control(0x1000, 1, 0, two, 2, 0, &out, &off),
                     -EINVAL);
    assert_int_equal(run_log_control(0x1000, 1, 0, two, 1, 8, &out, &off),
                     -EINVAL);
    assert_int_equal(run_log_control(0x1000, UINT32_MAX, 0, two, 2, 0, &out,
                                     &off), -EINVAL);
    /* Each range: non-empty, not wrapping. */
    assert_int_equal(run_log_control(0x1000, 1, 0, empty, 1, 0, &out, &off),
                     -EINVAL);
    assert_int_equal(run_log_control(0x1000, 1, 0, wraps, 1, 0, &out, &off),
                     -EINVAL);
    {
        struct vfu_dma_logging_control c = { 0x1000, 0, 0 };
        const uint8_t *rg = NULL;

        assert_int_equal(vfu_check_dma_logging_control(&c, sizeof(c) - 1,
                                                       &out, &rg), -EINVAL);
    }
}

static void
test_log_report(void **state)
{
    struct vfu_dma_logging_report rq, out;
    uint64_t nr = 0, bytes = 0;
    uint8_t b[sizeof(rq) + 1];

    (void)state;
    rq = (struct vfu_dma_logging_report){ 0x10000, 0x1000, 0x1000 };
    assert_int_equal(vfu_check_dma_logging_report(&rq, sizeof(rq), &out, &nr,
                                                  &bytes), 0);
    assert_int_equal(out.iova, 0x10000);
    assert_int_equal(nr, 1);
    assert_int_equal(bytes, 8);
    /* A partial last page counts; 65 pages take two words. */
    rq = (struct vfu_dma_logging_report){ 0, 64 * 0x1000 + 1, 0x1000 };
    assert_int_equal(vfu_check_dma_logging_report(&rq, sizeof(rq), &out, &nr,
                                                  &bytes), 0);
    assert_int_equal(nr, 65);
    assert_int_equal(bytes, 16);
    /* The whole space at the largest page size: no overflow. */
    rq = (struct vfu_dma_logging_report){ 0, MAX64, 1ull << 63 };
    assert_int_equal(vfu_check_dma_logging_report(&rq, sizeof(rq), &out, &nr,
                                                  &bytes), 0);
    assert_int_equal(nr, 2);
    assert_int_equal(bytes, 8);

    rq = (struct vfu_dma_logging_report){ 0x10000, 0x1000, 0x1000 };
    memset(b, 0, sizeof(b));
    memcpy(b, &rq, sizeof(rq));
    assert_int_equal(vfu_check_dma_logging_report(b, sizeof(b), &out, &nr,
                                                  &bytes), -EINVAL);
    assert_int_equal(vfu_check_dma_logging_report(b, sizeof(rq) - 1, &out,
                                                  &nr, &bytes), -EINVAL);
    rq.page_size = 0x1800;
    assert_int_equal(vfu_check_dma_logging_report(&rq, sizeof(rq), &out, &nr,
                                                  &bytes), -EINVAL);
    rq.page_size = 0x800;
    assert_int_equal(vfu_check_dma_logging_report(&rq, sizeof(rq), &out, &nr,
                                                  &bytes), -EINVAL);
    rq = (struct vfu_dma_logging_report){ 0x10800, 0x1000, 0x1000 };
    assert_int_equal(vfu_check_dma_logging_report(&rq, sizeof(rq), &out, &nr,
                                                  &bytes), -EINVAL);
    rq = (struct vfu_dma_logging_report){ 0x10000, 0, 0x1000 };
    assert_int_equal(vfu_check_dma_logging_report(&rq, sizeof(rq), &out, &nr,
                                                  &bytes), -EINVAL);
    rq = (struct vfu_dma_logging_report){ MAX64 - 0xfff, 0x2000, 0x1000 };
    assert_int_equal(vfu_check_dma_logging_report(&rq, sizeof(rq), &out, &nr,
                                                  &bytes), -EINVAL);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cmd_name),
        cmocka_unit_test(test_hdr_table),
        cmocka_unit_test(test_hdr_reserved_flags),
        cmocka_unit_test(test_hdr_types),
        cmocka_unit_test(test_hdr_any_cmd),
        cmocka_unit_test(test_hdr_doc_examples),
        cmocka_unit_test(test_version_good),
        cmocka_unit_test(test_version_table),
        cmocka_unit_test(test_dma_map_table),
        cmocka_unit_test(test_dma_map_argsz),
        cmocka_unit_test(test_dma_map_flags),
        cmocka_unit_test(test_dma_unmap_table),
        cmocka_unit_test(test_dma_unmap_flags),
        cmocka_unit_test(test_info_requests),
        cmocka_unit_test(test_info_outputs),
        cmocka_unit_test(test_io_fds_fields),
        cmocka_unit_test(test_set_irqs_table),
        cmocka_unit_test(test_set_irqs_flags),
        cmocka_unit_test(test_region_table),
        cmocka_unit_test(test_region_edges),
        cmocka_unit_test(test_region_read_doc_example),
        cmocka_unit_test(test_write_multi_good),
        cmocka_unit_test(test_write_multi_bad),
        cmocka_unit_test(test_write_multi_too_many),
        cmocka_unit_test(test_feature_table),
        cmocka_unit_test(test_feature_flags),
        cmocka_unit_test(test_log_control),
        cmocka_unit_test(test_log_report),
        cmocka_unit_test(test_no_payload),
        cmocka_unit_test(test_dma_access_table),
        cmocka_unit_test(test_unaligned_stack),
        cmocka_unit_test(test_outputs_untouched),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
