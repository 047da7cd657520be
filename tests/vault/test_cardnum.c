/*
 * test_cardnum.c - card number rules: Luhn, brands by BIN range and their
 * lengths, the BIN shown, expiry, and both token shapes.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "tests/support/token.h"
#include "vault/cardnum.h"

/* Fixes the last digit of |pan| so the number passes Luhn. */
static void
make_luhn(char *pan)
{
    size_t len = strlen(pan);

    for (int d = '0'; d <= '9'; d++) {
        pan[len - 1] = (char)d;
        if (cardnum_luhn(pan, len))
            return;
    }
    fail();
}

static void
test_luhn(void **state)
{
    (void)state;
    assert_true(cardnum_luhn("4111111111111111", 16));
    assert_true(cardnum_luhn("79927398713", 11));
    assert_false(cardnum_luhn("4111111111111112", 16));
    assert_false(cardnum_luhn("41111111111a1111", 16));
    assert_false(cardnum_luhn("", 0));
}

static void
test_brands(void **state)
{
    static const struct {
        const char *prefix;
        size_t len;
        enum api_brand brand;
    } cases[] = {
        {"4111", 16, API_BRAND_VISA},        {"4000", 13, API_BRAND_VISA},
        {"4000", 19, API_BRAND_VISA},        {"5555", 16, API_BRAND_MASTERCARD},
        {"5105", 16, API_BRAND_MASTERCARD},  {"2223", 16, API_BRAND_MASTERCARD},
        {"2720", 16, API_BRAND_MASTERCARD},  {"3782", 15, API_BRAND_AMEX},
        {"3400", 15, API_BRAND_AMEX},        {"6011", 16, API_BRAND_DISCOVER},
        {"6445", 16, API_BRAND_DISCOVER},    {"6500", 19, API_BRAND_DISCOVER},
        {"3530", 16, API_BRAND_JCB},         {"3589", 19, API_BRAND_JCB},
        {"6200", 16, API_BRAND_UNIONPAY},    {"6221", 19, API_BRAND_UNIONPAY},
        {"3622", 14, API_BRAND_DINERS},      {"3000", 14, API_BRAND_DINERS},
        {"3095", 16, API_BRAND_DINERS},      {"3800", 16, API_BRAND_DINERS},
        {"6759", 16, API_BRAND_MAESTRO},     {"5018", 12, API_BRAND_MAESTRO},
        {"6304", 19, API_BRAND_MAESTRO},     {"2200", 16, API_BRAND_MIR},
        {"2204", 19, API_BRAND_MIR},         {"9999", 16, API_BRAND_UNKNOWN},
    };
    char pan[API_PAN_MAX + 1];
    enum api_brand b;

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        memset(pan, '0', cases[i].len);
        memcpy(pan, cases[i].prefix, 4);
        pan[cases[i].len] = '\0';
        make_luhn(pan);
        assert_int_equal(cardnum_brand(pan), cases[i].brand);
        assert_int_equal(cardnum_check(pan, &b), 0);
        assert_int_equal(b, cases[i].brand);
    }
    /* 2221..2720 is Mastercard; 2200..2204 Mir; 2205 nobody's. */
    assert_int_equal(cardnum_brand("2221000000000009"), API_BRAND_MASTERCARD);
    assert_int_equal(cardnum_brand("2721000000000000"), API_BRAND_UNKNOWN);
    assert_int_equal(cardnum_brand("2205000000000000"), API_BRAND_UNKNOWN);
}

/* A length the brand does not issue is CARD_INVALID even with a valid Luhn. */
static void
test_lengths(void **state)
{
    static const struct {
        const char *prefix;
        size_t len;
    } bad[] = {
        {"4111", 15}, {"4111", 14}, {"5555", 15}, {"5555", 19}, {"3782", 16},
        {"3782", 14}, {"6011", 15}, {"3530", 15}, {"2200", 15}, {"3622", 13},
    };
    char pan[API_PAN_MAX + 2];
    enum api_brand b = API_BRAND_UNKNOWN;

    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        memset(pan, '0', bad[i].len);
        memcpy(pan, bad[i].prefix, 4);
        pan[bad[i].len] = '\0';
        make_luhn(pan);
        assert_int_equal(cardnum_check(pan, &b), -API_STATUS_CARD_INVALID);
    }
    assert_int_equal(cardnum_check("4111111111111112", &b), -API_STATUS_CARD_INVALID);
    assert_int_equal(cardnum_check("41111111111", &b), -API_STATUS_CARD_INVALID); /* 11 digits */
    memset(pan, '0', 20);
    pan[20] = '\0';
    assert_int_equal(cardnum_check(pan, &b), -API_STATUS_CARD_INVALID); /* 20 digits */
}

static void
test_bin_len(void **state)
{
    (void)state;
    assert_int_equal(cardnum_bin_len(12), 6);
    assert_int_equal(cardnum_bin_len(15), 6);
    assert_int_equal(cardnum_bin_len(16), 8);
    assert_int_equal(cardnum_bin_len(19), 8);
}

static void
test_expiry(void **state)
{
    /* 2026-11-22 12:00 UTC, and 2027-01-01 00:00 UTC. */
    const time_t nov = 1795348800, jan = 1798761600;

    (void)state;
    assert_false(cardnum_expired(11, 2026, nov)); /* valid through its month */
    assert_true(cardnum_expired(10, 2026, nov));
    assert_false(cardnum_expired(1, 2027, nov));
    assert_true(cardnum_expired(12, 2025, nov));
    assert_true(cardnum_expired(12, 2026, jan)); /* the year boundary */
    assert_false(cardnum_expired(1, 2027, jan));
}

static void
test_opaque_token(void **state)
{
    uint8_t rnd[CARDNUM_OPAQUE_RANDOM_LEN] = {0};
    char a[API_ID_MAX + 1], b[API_ID_MAX + 1];

    (void)state;
    assert_int_equal(cardnum_token_opaque(a, sizeof(a), rnd), 0);
    assert_string_equal(a, "aaaaaaaaaaaaaaaaaaaaaaaaaa");
    memset(rnd, 0xff, sizeof(rnd));
    assert_int_equal(cardnum_token_opaque(b, sizeof(b), rnd), 0);
    assert_int_equal(strlen(b), CARDNUM_OPAQUE_LEN);
    for (size_t i = 0; i < CARDNUM_OPAQUE_LEN; i++)
        assert_non_null(strchr("abcdefghijklmnopqrstuvwxyz234567", b[i]));
    assert_string_not_equal(a, b);
    assert_int_equal(cardnum_token_opaque(a, CARDNUM_OPAQUE_LEN, rnd), -API_STATUS_INTERNAL);
}

static void
test_pan_shaped_token(void **state)
{
    static const char *pans[] = {"4111111111111111", "378282246310005", "501800000009",
                                 "4000000000000000006"};
    uint8_t rnd[CARDNUM_SHAPED_RANDOM_LEN];
    char tok[API_ID_MAX + 1];
    unsigned counts[10] = {0};
    uint64_t seed = 7;

    (void)state;
    for (int n = 0; n < 20000; n++) {
        const char *pan = pans[n % 4];
        size_t len = strlen(pan);

        for (size_t i = 0; i < sizeof(rnd); i++)
            rnd[i] = (uint8_t)tv_random_next(&seed);
        assert_int_equal(cardnum_token_pan_shaped(tok, sizeof(tok), pan, rnd), 0);
        assert_int_equal(strlen(tok), len);
        assert_memory_equal(tok, pan, CARDNUM_SHAPED_HEAD);
        assert_memory_equal(tok + len - CARDNUM_SHAPED_TAIL, pan + len - CARDNUM_SHAPED_TAIL,
                            CARDNUM_SHAPED_TAIL);
        assert_false(cardnum_luhn(tok, len));
        for (size_t i = CARDNUM_SHAPED_HEAD; i < len - CARDNUM_SHAPED_TAIL; i++) {
            assert_true(tok[i] >= '0' && tok[i] <= '9');
            counts[tok[i] - '0']++;
        }
    }
    /* Every digit appears, roughly as often as the others. */
    for (int dgt = 0; dgt < 10; dgt++)
        assert_true(counts[dgt] > 8000 && counts[dgt] < 16000);
    /* Random bytes that are all rejected (>= 250) run out. */
    memset(rnd, 0xfa, sizeof(rnd));
    assert_int_equal(cardnum_token_pan_shaped(tok, sizeof(tok), pans[0], rnd), -API_STATUS_INTERNAL);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_luhn),         cmocka_unit_test(test_brands),
        cmocka_unit_test(test_lengths),      cmocka_unit_test(test_bin_len),
        cmocka_unit_test(test_expiry),       cmocka_unit_test(test_opaque_token),
        cmocka_unit_test(test_pan_shaped_token),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
