/*
 * wire_util.h - helpers shared by the wire and caps unit tests.
 *
 * Every payload reaches a checker through wire(): a heap block holding
 * exactly len bytes, starting one byte past what malloc returned, so the
 * pointer is misaligned for every multi-byte field and ASan reports any
 * read past len.
 */
#ifndef MUSER_TEST_WIRE_UTIL_H
#define MUSER_TEST_WIRE_UTIL_H

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#define MAX64 UINT64_MAX
#define MAX32 UINT32_MAX

/*
 * The VERSION byte dump of protocol section 6.  The example there is off
 * by one: its JSON is 34 characters, 35 bytes with the NUL, so the message
 * is 55 (0x37) bytes, not 56 (0x38) as the text says.  A 56-byte message
 * would end in two NULs, which vfu_check_version rightly rejects.
 */
static const uint8_t doc_version_req[55] = {
    0x01, 0x00, 0x01, 0x00, 0x37, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x01, 0x00,
    '{', '"', 'c', 'a', 'p', 'a', 'b', 'i', 'l', 'i', 't', 'i', 'e', 's',
    '"', ':', '{', '"', 'm', 'a', 'x', '_', 'm', 's', 'g', '_', 'f', 'd',
    's', '"', ':', '8', '}', '}', 0x00,
};


/* Copy len bytes of src to a fresh, exactly sized, misaligned block. */
static inline uint8_t *
wire(const void *src, size_t len)
{
    uint8_t *base = malloc(len + 1);

    assert_non_null(base);
    if (len > 0)
        memcpy(base + 1, src, len);
    return base + 1;
}

static inline void
unwire(uint8_t *p)
{
    free(p - 1);
}

static inline void
expect_ret(const char *what, int got, int want)
{
    if (got != want)
        print_error("case \"%s\": got %d, want %d\n", what, got, want);
    assert_int_equal(got, want);
}

#endif
