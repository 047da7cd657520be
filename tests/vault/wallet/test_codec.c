/*
 * test_codec.c - the strict decoders under every wallet parser: one test per
 * way an input can be wrong, beside the forms that must pass.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vault/wallet/codec.h"

/* ---- base64 --------------------------------------------------------------------- */

static void
test_b64(void **state)
{
    uint8_t out[8];
    size_t n = 0;
    (void)state;

    assert_int_equal(wallet_b64_decode(out, sizeof(out), &n, "Zm9vYmFy", 8), WALLET_OK);
    assert_int_equal(n, 6);
    assert_memory_equal(out, "foobar", 6);
    assert_int_equal(wallet_b64_decode(out, sizeof(out), &n, "Zm9vYg==", 8), WALLET_OK);
    assert_int_equal(n, 4);
    assert_int_equal(wallet_b64_decode(out, sizeof(out), &n, "Zm9vYmE=", 8), WALLET_OK);
    assert_int_equal(n, 5);
    assert_int_equal(wallet_b64_decode(out, sizeof(out), &n, "Zm9vYh==", 8), WALLET_ERR_FORMAT);
    assert_int_equal(wallet_b64_decode(out, sizeof(out), &n, "Zm9vYmF=", 8), WALLET_ERR_FORMAT);
    assert_int_equal(wallet_b64_decode(out, sizeof(out), &n, "Zm9vYmF", 7), WALLET_ERR_FORMAT);
    assert_int_equal(wallet_b64_decode(out, sizeof(out), &n, "Zm9v YmF", 8), WALLET_ERR_FORMAT);
    assert_int_equal(wallet_b64_decode(out, sizeof(out), &n, "Zm=vYmFy", 8), WALLET_ERR_FORMAT);
    assert_int_equal(wallet_b64_decode(out, sizeof(out), &n, "====", 4), WALLET_ERR_FORMAT);
    assert_int_equal(wallet_b64_decode(out, sizeof(out), &n, "Zm9v-_Fy", 8), WALLET_ERR_FORMAT);
    assert_int_equal(wallet_b64_decode(out, sizeof(out), &n, "", 0), WALLET_ERR_FORMAT);
    assert_int_equal(wallet_b64_decode(out, 5, &n, "Zm9vYmFy", 8), WALLET_ERR_FORMAT);
}

static void
test_b64url(void **state)
{
    uint8_t out[8];
    size_t n = 9;
    (void)state;

    assert_int_equal(wallet_b64url_decode(out, sizeof(out), &n, "Zm9vYmFy", 8), WALLET_OK);
    assert_int_equal(n, 6);
    assert_memory_equal(out, "foobar", 6);
    assert_int_equal(wallet_b64url_decode(out, sizeof(out), &n, "Zm9vYg", 6), WALLET_OK);
    assert_int_equal(n, 4);
    assert_int_equal(wallet_b64url_decode(out, sizeof(out), &n, "Zm9vYmE", 7), WALLET_OK);
    assert_int_equal(n, 5);
    /* The URL alphabet: 0xfb 0xff is "-_8" in it and "+/8" in the standard one. */
    assert_int_equal(wallet_b64url_decode(out, sizeof(out), &n, "-_8", 3), WALLET_OK);
    assert_int_equal(n, 2);
    assert_int_equal(out[0], 0xfb);
    assert_int_equal(out[1], 0xff);
    assert_int_equal(wallet_b64url_decode(out, sizeof(out), &n, "+/8", 3), WALLET_ERR_FORMAT);
    /* Empty parts are legal in JWE. */
    assert_int_equal(wallet_b64url_decode(out, sizeof(out), &n, "", 0), WALLET_OK);
    assert_int_equal(n, 0);
    /* No padding, no lone last character, no stray bits, no whitespace. */
    assert_int_equal(wallet_b64url_decode(out, sizeof(out), &n, "Zm9vYg==", 8), WALLET_ERR_FORMAT);
    assert_int_equal(wallet_b64url_decode(out, sizeof(out), &n, "Zm9vY", 5), WALLET_ERR_FORMAT);
    assert_int_equal(wallet_b64url_decode(out, sizeof(out), &n, "Zm9vYh", 6), WALLET_ERR_FORMAT);
    assert_int_equal(wallet_b64url_decode(out, sizeof(out), &n, "Zm9vYmF", 7), WALLET_ERR_FORMAT);
    assert_int_equal(wallet_b64url_decode(out, sizeof(out), &n, "Zm9v YmF", 8), WALLET_ERR_FORMAT);
    assert_int_equal(wallet_b64url_decode(out, 5, &n, "Zm9vYmFy", 8), WALLET_ERR_FORMAT);
}

static void
test_hex(void **state)
{
    uint8_t out[4];
    size_t n = 0;
    (void)state;

    assert_int_equal(wallet_hex_decode(out, sizeof(out), &n, "00aBfF7e", 8), WALLET_OK);
    assert_int_equal(n, 4);
    assert_int_equal(out[1], 0xab);
    assert_int_equal(out[2], 0xff);
    assert_int_equal(wallet_hex_decode(out, sizeof(out), &n, "", 0), WALLET_ERR_FORMAT);
    assert_int_equal(wallet_hex_decode(out, sizeof(out), &n, "abc", 3), WALLET_ERR_FORMAT);
    assert_int_equal(wallet_hex_decode(out, sizeof(out), &n, "0g", 2), WALLET_ERR_FORMAT);
    assert_int_equal(wallet_hex_decode(out, sizeof(out), &n, "0x12", 4), WALLET_ERR_FORMAT);
    assert_int_equal(wallet_hex_decode(out, 2, &n, "001122", 6), WALLET_ERR_FORMAT);
}

/* Appends |s| to the string in |buf| (|cap| bytes); fails the test if it
 * does not fit. */
static void
append(char *buf, size_t cap, const char *s)
{
    size_t len = strlen(buf), n = strlen(s);

    assert_true(n < cap - len);
    memcpy(buf + len, s, n + 1);
}

static int
load(const char *json, char *why)
{
    json_t *v = NULL;
    int r = wallet_json_load(&v, json, strlen(json), 1024, why, WALLET_WHY_MAX);

    json_decref(v);
    return r;
}

static void
test_json(void **state)
{
    char why[WALLET_WHY_MAX] = "";
    char deep[64] = "", big[1100];
    json_t *v = NULL;
    (void)state;

    assert_int_equal(load("{\"a\": [1, {\"b\": \"}}]]\"}]}\n", why), WALLET_OK);
    /* Duplicates, trailing data, not an object, not JSON, too big. */
    assert_int_equal(load("{\"a\": 1, \"a\": 2}", why), WALLET_ERR_FORMAT);
    assert_int_equal(load("{\"a\": 1} {}", why), WALLET_ERR_FORMAT);
    assert_int_equal(load("[1]", why), WALLET_ERR_FORMAT);
    assert_non_null(strstr(why, "not an object"));
    assert_int_equal(load("{a: 1}", why), WALLET_ERR_FORMAT);
    assert_non_null(strstr(why, "not JSON"));
    memset(big, ' ', sizeof(big) - 1);
    big[0] = '{';
    big[sizeof(big) - 2] = '}';
    big[sizeof(big) - 1] = '\0';
    assert_int_equal(load(big, why), WALLET_ERR_FORMAT);
    /* Depth: WALLET_JSON_DEPTH_MAX passes, one more is refused before
     * jansson parses; brackets inside strings (escaped quotes too) do not count. */
    for (int i = 0; i < WALLET_JSON_DEPTH_MAX; i++)
        append(deep, sizeof(deep), i == 0 ? "{\"a\":" : "[");
    append(deep, sizeof(deep), "1");
    for (int i = WALLET_JSON_DEPTH_MAX - 1; i >= 0; i--)
        append(deep, sizeof(deep), i == 0 ? "}" : "]");
    assert_int_equal(load(deep, why), WALLET_OK);
    deep[strlen(deep) - 1] = ']';
    append(deep, sizeof(deep), "}");
    memmove(deep + 5, deep + 4, strlen(deep + 4) + 1);
    deep[5] = '[';
    assert_int_equal(load(deep, why), WALLET_ERR_FORMAT);
    assert_non_null(strstr(why, "nested deeper"));
    assert_int_equal(load("{\"a\": \"\\\"[[[[[[[[[[[[\"}", why), WALLET_OK);
    /* A NUL byte anywhere. */
    assert_int_equal(wallet_json_load(&v, "{\"a\":1}\0", 8, 1024, why, sizeof(why)),
                     WALLET_ERR_FORMAT);
    assert_null(v);
}

static void
test_json_fields(void **state)
{
    static const char *const known[] = { "a", "b", NULL };
    static const char *const required[] = { "a", NULL };
    char why[WALLET_WHY_MAX] = "";
    json_t *v = NULL;
    size_t n = 0;
    (void)state;

    assert_int_equal(wallet_json_load(&v, "{\"a\": \"x\", \"b\": 2}", 18, 64, why, sizeof(why)),
                     WALLET_OK);
    assert_int_equal(wallet_json_fields(v, "obj", known, required, why, sizeof(why)), WALLET_OK);
    assert_string_equal(wallet_json_str(json_object_get(v, "a"), 1, &n), "x");
    assert_int_equal(n, 1);
    /* Not a string, too long, absent. */
    assert_null(wallet_json_str(json_object_get(v, "b"), 8, &n));
    assert_null(wallet_json_str(json_object_get(v, "a"), 0, &n));
    assert_null(wallet_json_str(json_object_get(v, "c"), 8, &n));
    json_decref(v);
    assert_int_equal(wallet_json_load(&v, "{\"b\": 1, \"c\": 2}", 16, 64, why, sizeof(why)),
                     WALLET_OK);
    assert_int_equal(wallet_json_fields(v, "obj", known, NULL, why, sizeof(why)), WALLET_ERR_FORMAT);
    assert_string_equal(why, "obj has an unknown member \"c\"");
    assert_int_equal(wallet_json_fields(v, "obj", NULL, required, why, sizeof(why)),
                     WALLET_ERR_FORMAT);
    assert_string_equal(why, "obj has no \"a\"");
    assert_int_equal(wallet_json_fields(v, "obj", NULL, NULL, why, sizeof(why)), WALLET_OK);
    json_decref(v);
}

static void
test_errors(void **state)
{
    (void)state;
    assert_int_equal(wallet_status(WALLET_OK), API_STATUS_OK);
    assert_int_equal(wallet_status(WALLET_ERR_SIGNATURE), API_STATUS_SIGNATURE_INVALID);
    assert_int_equal(wallet_status(WALLET_ERR_EXPIRED), API_STATUS_EXPIRED);
    assert_int_equal(wallet_status(WALLET_ERR_UNKNOWN_KEY), API_STATUS_NOT_FOUND);
    assert_int_equal(wallet_status(WALLET_ERR_HSM), API_STATUS_HSM_UNAVAILABLE);
    assert_int_equal(wallet_status(-999), API_STATUS_INTERNAL);
    assert_string_equal(wallet_err_name(WALLET_ERR_CHAIN), "CHAIN");
    assert_string_equal(wallet_err_name(-999), "UNKNOWN");
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_b64),
        cmocka_unit_test(test_b64url),
        cmocka_unit_test(test_hex),
        cmocka_unit_test(test_json),
        cmocka_unit_test(test_json_fields),
        cmocka_unit_test(test_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
