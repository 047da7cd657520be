/*
 * test_reader.c - the cursor never reads past its end, leaves itself unchanged
 * on a failed read, and hands out sub-readers that cannot see past their own
 * end.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "api/reader.h"

static void
test_integers(void **state)
{
    static const uint8_t b[] = {0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09,
                                0x0a, 0x0b, 0x0c, 0x0d, 0x0e, 0x0f};
    struct api_reader r;
    uint8_t u8;
    uint16_t u16;
    uint32_t u32;
    uint64_t u64;
    (void)state;

    api_reader_init(&r, b, sizeof(b) - 1);
    assert_int_equal(api_reader_get_u8(&r, &u8), 0);
    assert_int_equal(u8, 0x01);
    assert_int_equal(api_reader_get_u16(&r, &u16), 0);
    assert_int_equal(u16, 0x0203);
    assert_int_equal(api_reader_get_u32(&r, &u32), 0);
    assert_int_equal(u32, 0x04050607);
    assert_int_equal(api_reader_get_u64(&r, &u64), -API_STATUS_TRUNCATED);
    assert_int_equal(api_reader_len(&r), 7); /* a failed read consumes nothing */
    api_reader_init(&r, b + 7, 8);
    u64 = 0;
    assert_int_equal(api_reader_get_u64(&r, &u64), 0);
    assert_true(u64 == 0x08090a0b0c0d0e0fULL);
    assert_int_equal(api_reader_len(&r), 0);
    assert_int_equal(api_reader_get_u8(&r, &u8), -API_STATUS_TRUNCATED);
    assert_int_equal(u8, 0x01); /* untouched on failure */
}

static void
test_bytes_and_skip(void **state)
{
    static const uint8_t b[] = {1, 2, 3};
    struct api_reader r, sub;
    (void)state;

    api_reader_init(&r, b, sizeof(b));
    assert_int_equal(api_reader_get_bytes(&r, &sub, 4), -API_STATUS_TRUNCATED);
    assert_int_equal(api_reader_len(&r), 3);
    assert_int_equal(api_reader_get_bytes(&r, &sub, SIZE_MAX), -API_STATUS_TRUNCATED);
    assert_int_equal(api_reader_get_bytes(&r, &sub, 2), 0);
    assert_int_equal(api_reader_len(&sub), 2);
    assert_ptr_equal(sub.data, b);
    assert_int_equal(api_reader_skip(&r, 2), -API_STATUS_TRUNCATED);
    assert_int_equal(api_reader_skip(&r, 1), 0);
    assert_int_equal(api_reader_len(&r), 0);
    assert_int_equal(api_reader_get_bytes(&r, &sub, 0), 0);
    assert_int_equal(api_reader_len(&sub), 0);
}

static void
test_u32_prefixed(void **state)
{
    static const uint8_t ok[] = {0, 0, 0, 2, 0xaa, 0xbb, 0xcc};
    static const uint8_t lies[] = {0xff, 0xff, 0xff, 0xff, 0xaa};
    static const uint8_t short_len[] = {0, 0, 1};
    struct api_reader r, sub;
    uint8_t v;
    (void)state;

    api_reader_init(&r, ok, sizeof(ok));
    assert_int_equal(api_reader_get_u32_prefixed(&r, &sub), 0);
    assert_int_equal(api_reader_len(&sub), 2);
    assert_int_equal(api_reader_get_u8(&sub, &v), 0);
    assert_int_equal(v, 0xaa);
    assert_int_equal(api_reader_get_u8(&sub, &v), 0);
    assert_int_equal(api_reader_get_u8(&sub, &v), -API_STATUS_TRUNCATED); /* 0xcc is not its */
    assert_int_equal(api_reader_len(&r), 1);

    /* A declared length past the end fails and rewinds past the length too. */
    api_reader_init(&r, lies, sizeof(lies));
    assert_int_equal(api_reader_get_u32_prefixed(&r, &sub), -API_STATUS_TRUNCATED);
    assert_int_equal(api_reader_len(&r), sizeof(lies));
    api_reader_init(&r, short_len, sizeof(short_len));
    assert_int_equal(api_reader_get_u32_prefixed(&r, &sub), -API_STATUS_TRUNCATED);
    assert_int_equal(api_reader_len(&r), sizeof(short_len));
}

/* u8-prefixed strings: bounds, NUL, capacity, and no move on failure. */
static void
test_str8(void **state)
{
    static const uint8_t good[] = {3, 'a', 'b', 'c', 0};
    static const uint8_t nul[] = {3, 'a', 0, 'c'};
    static const uint8_t shortv[] = {5, 'a', 'b'};
    struct api_reader r;
    char out[8];

    (void)state;
    api_reader_init(&r, good, sizeof(good));
    assert_int_equal(api_reader_get_str8(&r, out, sizeof(out), 1, 7), 0);
    assert_string_equal(out, "abc");
    assert_int_equal(api_reader_len(&r), 1);
    /* an empty string where 0 is allowed, then nothing left */
    assert_int_equal(api_reader_get_str8(&r, out, sizeof(out), 0, 7), 0);
    assert_string_equal(out, "");
    assert_int_equal(api_reader_get_str8(&r, out, sizeof(out), 0, 7), -API_STATUS_TRUNCATED);

    api_reader_init(&r, good, sizeof(good));
    assert_int_equal(api_reader_get_str8(&r, out, sizeof(out), 4, 7), -API_STATUS_BAD_VALUE);
    assert_int_equal(api_reader_len(&r), sizeof(good)); /* unchanged */
    assert_int_equal(api_reader_get_str8(&r, out, sizeof(out), 1, 2), -API_STATUS_BAD_VALUE);
    assert_int_equal(api_reader_get_str8(&r, out, 3, 1, 3), -API_STATUS_BAD_VALUE); /* no room for NUL */
    api_reader_init(&r, nul, sizeof(nul));
    assert_int_equal(api_reader_get_str8(&r, out, sizeof(out), 1, 7), -API_STATUS_BAD_VALUE);
    api_reader_init(&r, shortv, sizeof(shortv));
    assert_int_equal(api_reader_get_str8(&r, out, sizeof(out), 1, 7), -API_STATUS_TRUNCATED);
    assert_int_equal(api_reader_len(&r), sizeof(shortv));
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_integers),
        cmocka_unit_test(test_bytes_and_skip),
        cmocka_unit_test(test_u32_prefixed),
        cmocka_unit_test(test_str8),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
