/*
 * test_writer.c - the writer produces big-endian integers, fills in nested
 * length prefixes, never grows past its maximum, keeps its first error, and
 * rolls back cleanly.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <string.h>

#include "api/writer.h"

static void
test_integers_and_prefixes(void **state)
{
    static const uint8_t want[] = {0x01, 0x02, 0x03, 0, 0, 0, 10, 0x04, 0x05, 0x06, 0x07,
                                   0, 0, 0, 2, 0xaa, 0xbb};
    struct api_writer w;
    size_t outer, inner;
    (void)state;

    api_writer_init(&w, 1024);
    assert_int_equal(api_writer_put_u8(&w, 0x01), 0);
    assert_int_equal(api_writer_put_u16(&w, 0x0203), 0);
    assert_int_equal(api_writer_begin_u32(&w, &outer), 0);
    assert_int_equal(api_writer_put_u32(&w, 0x04050607), 0);
    assert_int_equal(api_writer_begin_u32(&w, &inner), 0);
    assert_int_equal(api_writer_put_bytes(&w, (const uint8_t *)"\xaa\xbb", 2), 0);
    assert_int_equal(api_writer_end_u32(&w, inner), 0);
    assert_int_equal(api_writer_end_u32(&w, outer), 0);
    assert_int_equal(api_writer_len(&w), sizeof(want));
    assert_memory_equal(api_writer_data(&w), want, sizeof(want));
    assert_int_equal(api_writer_end_u32(&w, sizeof(want) - 2), API_ERR_INVALID_ARG);
    api_writer_cleanup(&w);
    assert_null(w.buf);
}

static void
test_u64(void **state)
{
    static const uint8_t want[] = {1, 2, 3, 4, 5, 6, 7, 8};
    struct api_writer w;
    (void)state;

    api_writer_init(&w, 8);
    assert_int_equal(api_writer_put_u64(&w, 0x0102030405060708ULL), 0);
    assert_memory_equal(api_writer_data(&w), want, 8);
    api_writer_cleanup(&w);
}

static void
test_max_and_sticky_error(void **state)
{
    struct api_writer w;
    uint8_t big[600];
    (void)state;

    memset(big, 0x5a, sizeof(big));
    api_writer_init(&w, 1000);
    assert_int_equal(api_writer_put_bytes(&w, big, sizeof(big)), 0); /* grows past 512 */
    assert_int_equal(api_writer_put_bytes(&w, big, 400), 0);
    assert_int_equal(api_writer_len(&w), 1000);
    assert_int_equal(api_writer_put_u8(&w, 1), -API_STATUS_TOO_LARGE);
    /* Sticky: even a write that would fit now fails, and nothing is written. */
    api_writer_truncate(&w, 999);
    assert_int_equal(api_writer_len(&w), 999);
    assert_int_equal(api_writer_put_u16(&w, 1), -API_STATUS_TOO_LARGE);
    assert_int_equal(api_writer_put_u8(&w, 7), -API_STATUS_TOO_LARGE);
    assert_int_equal(api_writer_len(&w), 999);
    api_writer_reset(&w);
    assert_int_equal(api_writer_len(&w), 0);
    assert_int_equal(api_writer_put_u8(&w, 7), 0);
    api_writer_cleanup(&w);
    api_writer_cleanup(&w); /* twice is fine */
}

static void
test_truncate_rolls_back(void **state)
{
    struct api_writer w;
    size_t mark;
    (void)state;

    api_writer_init(&w, 64);
    assert_int_equal(api_writer_put_u16(&w, 0xbeef), 0);
    assert_int_equal(api_writer_begin_u32(&w, &mark), 0);
    assert_int_equal(api_writer_put_u32(&w, 1), 0);
    api_writer_truncate(&w, 2);
    assert_int_equal(api_writer_len(&w), 2);
    api_writer_truncate(&w, 10); /* beyond what was written: ignored */
    assert_int_equal(api_writer_len(&w), 2);
    api_writer_cleanup(&w);
}

static void
test_str8(void **state)
{
    struct api_writer w;
    char long_s[300];

    (void)state;
    api_writer_init(&w, 64);
    assert_int_equal(api_writer_put_str8(&w, "abc"), 0);
    assert_int_equal(api_writer_put_str8(&w, NULL), 0);
    assert_int_equal(api_writer_len(&w), 5);
    assert_memory_equal(api_writer_data(&w), "\x03" "abc" "\x00", 5);
    memset(long_s, 'x', sizeof(long_s) - 1);
    long_s[sizeof(long_s) - 1] = '\0';
    assert_int_equal(api_writer_put_str8(&w, long_s), -API_STATUS_BAD_LENGTH);
    assert_int_equal(api_writer_len(&w), 5);
    api_writer_cleanup(&w);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_integers_and_prefixes),
        cmocka_unit_test(test_u64),
        cmocka_unit_test(test_max_and_sticky_error),
        cmocka_unit_test(test_truncate_rolls_back),
        cmocka_unit_test(test_str8),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
