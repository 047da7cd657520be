/*
 * test_anchors.c - the wallet ceremonies' parsers on real files (Google's
 * TEST keys.json, Apple's real Payment Processing certificate, Apple Root CA -
 * G3) and one hostile input per way a file can be wrong.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "tests/support/token.h"
#include "vault/wallet/anchors.h"

/* gala-2023: SHA-256("merchant.test.spreedly.123merchant"), upstream's value. */
static const char gala_merchant_id[] =
    "358DA5890B9555C0A9EFB84B5CD6FF04BFDCD5AABF5DC14B9872D8DF51EAF439";
/* Google's TEST keys: ECv1 and the ECv2 key (also ECv2SigningOnly). */
#define TEST_ECV1 "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEIsFro6K+IUxRr4yFTOTO+kFCCEvHo7B9IOMLxah6c977oFzX/beObH4a9OfosMHmft3JJZ6B3xpjIb8kduK4/A=="
#define TEST_ECV2 "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEGnJ7Yo1sX9b4kr4Aa5uq58JRQfzD8bIJXw7WXaap/hVE+PnFxvjx4nVxt79SdRuUVeu++HZD0cGAv4IOznc96w=="

static int
parse(const char *json, struct wallet_root_keys *out, char *err, size_t cap)
{
    return wallet_google_keys_parse(out, json, strlen(json), err, cap);
}

/* Parses and expects a refusal whose reason contains |why|. */
static void
refused(const char *json, const char *why)
{
    static struct wallet_root_keys keys;
    char err[WALLET_WHY_MAX] = "";

    keys.num = 99;
    if (parse(json, &keys, err, sizeof(err)) != WALLET_ERR_FORMAT)
        fail_msg("accepted: %s", json);
    if (strstr(err, why) == NULL)
        fail_msg("reason \"%s\" lacks \"%s\" for %s", err, why, json);
    assert_int_equal(keys.num, 99); /* untouched */
}

/* ---- keys.json ---------------------------------------------------------------- */

static void
test_google_test_keys(void **state)
{
    static struct wallet_root_keys keys;
    size_t len = 0;
    char *json = tv_vector_read("google-test-root-keys/keys.json", &len);
    char err[WALLET_WHY_MAX] = "";
    (void)state;

    assert_int_equal(wallet_google_keys_parse(&keys, json, len, err, sizeof(err)), WALLET_OK);
    assert_int_equal(keys.num, 3);
    assert_string_equal(keys.keys[0].protocol, "ECv1");
    assert_int_equal(keys.keys[0].has_expiration, 0);
    assert_string_equal(keys.keys[1].protocol, "ECv2");
    assert_int_equal(keys.keys[1].has_expiration, 1);
    assert_true(keys.keys[1].expiration_ms == 2154841200000ULL);
    assert_string_equal(keys.keys[2].protocol, "ECv2SigningOnly");
    /* The same key serves ECv2 and ECv2SigningOnly: not a repeat. */
    assert_int_equal(keys.keys[1].spki_len, 91);
    assert_memory_equal(keys.keys[1].spki, keys.keys[2].spki, 91);
    free(json);
}

static void
test_google_hostile(void **state)
{
    char big[WALLET_KEYS_JSON_MAX + 2], many[4096];
    size_t n;
    (void)state;

    refused("{\"keys\":[{\"keyValue\":\"" TEST_ECV2 "\",\"keyValue\":\"" TEST_ECV2
            "\",\"protocolVersion\":\"ECv2\",\"keyExpiration\":\"2154841200000\"}]}",
            "not JSON");
    refused("{\"keys\":[],\"keys\":[]}", "not JSON");
    refused("{\"keys\":[{\"keyValue\":\"" TEST_ECV2 "\",\"protocolVersion\":\"ECv2\"}]}",
            "keyExpiration missing");
    refused("{\"keys\":[{\"keyValue\":\"" TEST_ECV2
            "\",\"protocolVersion\":\"ECv2SigningOnly\"}]}",
            "keyExpiration missing");
    refused("{\"keys\":[{\"keyValue\":\"MFkw!!!\",\"protocolVersion\":\"ECv1\"}]}", "keyValue");
    refused("{\"keys\":[{\"keyValue\":\"" TEST_ECV1 "x\",\"protocolVersion\":\"ECv1\"}]}",
            "keyValue");
    refused("{\"keys\":[{\"keyValue\":\"MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEIsFro6K+IUxRr4yFTOTO+kFCCEvHo7B9IOMLxah6c977oFzX/beObH4a9OfosMHmft3JJZ6B3xpjIb8kduK4/B==\",\"protocolVersion\":\"ECv1\"}]}",
            "keyValue"); /* non-zero bits under the padding, and off the curve */
    refused("{\"keys\":[{\"keyValue\":\"AAAA\",\"protocolVersion\":\"ECv1\"}]}", "keyValue");
    refused("{\"keys\":[{\"protocolVersion\":\"ECv1\"}]}", "keyValue");
    refused("{\"keys\":[{\"keyValue\":\"" TEST_ECV1 "\"}]}", "protocolVersion");
    refused("{\"keys\":[{\"keyValue\":\"" TEST_ECV1 "\",\"protocolVersion\":\"ECv3\"}]}",
            "protocolVersion");
    refused("{\"keys\":[{\"keyValue\":\"" TEST_ECV1 "\",\"protocolVersion\":1}]}",
            "protocolVersion");
    refused("{\"keys\":[{\"keyValue\":\"" TEST_ECV2
            "\",\"protocolVersion\":\"ECv2\",\"keyExpiration\":2154841200000}]}",
            "keyExpiration");
    refused("{\"keys\":[{\"keyValue\":\"" TEST_ECV2
            "\",\"protocolVersion\":\"ECv2\",\"keyExpiration\":\"02154841200000\"}]}",
            "keyExpiration");
    refused("{\"keys\":[{\"keyValue\":\"" TEST_ECV2
            "\",\"protocolVersion\":\"ECv2\",\"keyExpiration\":\"-1\"}]}",
            "keyExpiration");
    refused("{\"keys\":[{\"keyValue\":\"" TEST_ECV2
            "\",\"protocolVersion\":\"ECv2\",\"keyExpiration\":\"99999999999999999999\"}]}",
            "keyExpiration");
    refused("{\"keys\":[{\"keyValue\":\"" TEST_ECV2
            "\",\"protocolVersion\":\"ECv2\",\"keyExpiration\":\"253402300800000\"}]}",
            "keyExpiration"); /* year 10000 */
    refused("{\"keys\":[{\"keyValue\":\"" TEST_ECV2
            "\",\"protocolVersion\":\"ECv2\",\"keyExpiration\":\"\"}]}",
            "keyExpiration");
    refused("{\"keys\":[{\"keyValue\":\"" TEST_ECV1
            "\",\"protocolVersion\":\"ECv1\",\"comment\":\"x\"}]}",
            "unknown field");
    refused("{\"keys\":[{\"keyValue\":\"" TEST_ECV1 "\",\"protocolVersion\":\"ECv1\"},"
            "{\"keyValue\":\"" TEST_ECV1 "\",\"protocolVersion\":\"ECv1\"}]}",
            "repeats");
    refused("{\"keys\":[]}", "expected");
    refused("{\"keys\":{}}", "expected");
    refused("[]", "expected");
    refused("{\"keys\":[\"" TEST_ECV1 "\"]}", "not an object");
    refused("{\"keys\":[{\"keyValue\":\"" TEST_ECV1 "\",\"protocolVersion\":\"ECv1\"}],\"x\":1}",
            "expected");
    refused("{\"keys\":[{\"keyValue\":\"" TEST_ECV1 "\",\"protocolVersion\":\"ECv1\"}]} {}",
            "not JSON");
    refused("{\"keys\":[{\"keyValue\":\"" TEST_ECV1 "\",\"protocolVersion\":\"EC\\u0000v1\"}]}",
            "not JSON");
    refused("", "empty");
    /* More keys than any real file. */
    n = (size_t)snprintf(many, sizeof(many), "{\"keys\":[");
    for (int i = 0; i <= WALLET_ROOT_KEYS_MAX; i++)
        n += (size_t)snprintf(many + n, sizeof(many) - n, "%s{\"keyValue\":\"%s\",\"protocolVersion\":\"ECv1\"}",
                              i == 0 ? "" : ",", TEST_ECV1);
    snprintf(many + n, sizeof(many) - n, "]}");
    refused(many, "expected");
    /* Larger than the bound, even if it were valid JSON. */
    memset(big, ' ', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    memcpy(big, "{\"keys\":[]}", 11);
    refused(big, "larger");
}

/* A P-384 key is well-formed but not what Google signs with. */
static void
test_google_wrong_curve(void **state)
{
    EVP_PKEY *k = EVP_EC_gen("P-384");
    unsigned char *der = NULL, b64[256];
    int n = i2d_PUBKEY(k, &der);
    char json[512];
    (void)state;

    assert_true(n > 0);
    EVP_EncodeBlock(b64, der, n);
    snprintf(json, sizeof(json), "{\"keys\":[{\"keyValue\":\"%s\",\"protocolVersion\":\"ECv1\"}]}",
             (const char *)b64);
    refused(json, "keyValue");
    OPENSSL_free(der);
    EVP_PKEY_free(k);
}

/* ---- the merchant id ---------------------------------------------------------------- */

static unsigned char *
vector_der(const char *rel, size_t *out_len)
{
    char *pem = tv_vector_read(rel, NULL);
    BIO *b = BIO_new_mem_buf(pem, -1);
    X509 *x = PEM_read_bio_X509(b, NULL, NULL, NULL);
    unsigned char *der = NULL;
    int n = i2d_X509(x, &der);

    assert_true(n > 0);
    *out_len = (size_t)n;
    X509_free(x);
    BIO_free(b);
    free(pem);
    return der;
}

static void
test_merchant_id_real_apple(void **state)
{
    size_t len = 0, want_len = 0;
    unsigned char *der = vector_der("gala-2023/certificate.pem", &len);
    uint8_t *want = tv_hex(gala_merchant_id, &want_len), got[WALLET_MERCHANT_ID_LEN];
    (void)state;

    assert_int_equal(wallet_cert_merchant_id(got, der, len), WALLET_OK);
    assert_memory_equal(got, want, sizeof(got));
    assert_int_equal(wallet_cert_merchant_id(got, der, len - 1), WALLET_ERR_FORMAT);
    assert_int_equal(wallet_cert_merchant_id(got, der, WALLET_CERT_MAX + 1), WALLET_ERR_FORMAT);
    free(want);
    OPENSSL_free(der);
}

static void
test_merchant_id_absent(void **state)
{
    size_t len = 0;
    unsigned char *der = vector_der("apple-root-ca/AppleRootCA-G3.pem", &len);
    uint8_t got[WALLET_MERCHANT_ID_LEN];
    (void)state;

    assert_int_equal(wallet_cert_merchant_id(got, der, len), WALLET_ERR_ABSENT);
    OPENSSL_free(der);
}

static void
test_merchant_id_values(void **state)
{
    uint8_t v[80], got[WALLET_MERCHANT_ID_LEN], want[WALLET_MERCHANT_ID_LEN];
    size_t want_len = 0;
    uint8_t *w = tv_hex(gala_merchant_id, &want_len);
    (void)state;

    memcpy(want, w, sizeof(want));
    free(w);
    v[0] = 0x0c;
    v[1] = 0x40;
    memcpy(v + 2, gala_merchant_id, 64);
    assert_int_equal(wallet_merchant_id_decode(got, v, 66), WALLET_OK);
    assert_memory_equal(got, want, sizeof(want));
    v[0] = 0x16; /* IA5String */
    assert_int_equal(wallet_merchant_id_decode(got, v, 66), WALLET_OK);
    v[2] = 'a'; /* lower-case hex spells the same byte */
    v[3] = 'b';
    assert_int_equal(wallet_merchant_id_decode(got, v, 66), WALLET_OK);
    assert_int_equal(got[0], 0xab);
    v[2] = '3';
    v[3] = '5';

    memset(got, 0xee, sizeof(got));
    v[0] = 0x04; /* OCTET STRING */
    assert_int_equal(wallet_merchant_id_decode(got, v, 66), WALLET_ERR_FORMAT);
    v[0] = 0x0c;
    v[1] = 0x3f;
    assert_int_equal(wallet_merchant_id_decode(got, v, 65), WALLET_ERR_FORMAT);
    v[1] = 0x81; /* long form: not what Apple writes, and not DER for 64 */
    assert_int_equal(wallet_merchant_id_decode(got, v, 66), WALLET_ERR_FORMAT);
    v[1] = 0x40;
    v[2] = 'G';
    assert_int_equal(wallet_merchant_id_decode(got, v, 66), WALLET_ERR_FORMAT);
    v[2] = '3';
    v[66] = 0;
    assert_int_equal(wallet_merchant_id_decode(got, v, 67), WALLET_ERR_FORMAT);
    assert_int_equal(wallet_merchant_id_decode(got, v, 65), WALLET_ERR_FORMAT);
    assert_int_equal(wallet_merchant_id_decode(got, v, 0), WALLET_ERR_FORMAT);
    assert_int_equal(got[0], 0xee); /* untouched */
}

/* A certificate with the extension twice: which merchant would it be? */
static void
test_merchant_id_twice(void **state)
{
    EVP_PKEY *k = EVP_EC_gen("P-256");
    X509 *x = X509_new();
    ASN1_OBJECT *oid = OBJ_txt2obj("1.2.840.113635.100.6.32", 1);
    ASN1_OCTET_STRING *val = ASN1_OCTET_STRING_new();
    uint8_t v[66], got[WALLET_MERCHANT_ID_LEN];
    unsigned char *der = NULL;
    int n;
    (void)state;

    _Static_assert(sizeof(gala_merchant_id) - 1 == sizeof(v) - 2, "64 hex digits fill v");
    v[0] = 0x0c;
    v[1] = 0x40;
    memcpy(v + 2, gala_merchant_id, sizeof(gala_merchant_id) - 1);
    assert_int_equal(ASN1_OCTET_STRING_set(val, v, sizeof(v)), 1);
    assert_int_equal(X509_set_version(x, X509_VERSION_3), 1);
    assert_int_equal(ASN1_INTEGER_set(X509_get_serialNumber(x), 1), 1);
    X509_NAME_add_entry_by_txt(X509_get_subject_name(x), "CN", MBSTRING_ASC,
                               (const unsigned char *)"twice", -1, -1, 0);
    assert_int_equal(X509_set_issuer_name(x, X509_get_subject_name(x)), 1);
    X509_gmtime_adj(X509_getm_notBefore(x), 0);
    X509_gmtime_adj(X509_getm_notAfter(x), 3600);
    assert_int_equal(X509_set_pubkey(x, k), 1);
    for (int i = 0; i < 2; i++) {
        X509_EXTENSION *e = X509_EXTENSION_create_by_OBJ(NULL, oid, 0, val);
        assert_int_equal(X509_add_ext(x, e, -1), 1);
        X509_EXTENSION_free(e);
    }
    assert_true(X509_sign(x, k, EVP_sha256()) > 0);
    n = i2d_X509(x, &der);
    assert_true(n > 0);
    assert_int_equal(wallet_cert_merchant_id(got, der, (size_t)n), WALLET_ERR_FORMAT);
    OPENSSL_free(der);
    ASN1_OCTET_STRING_free(val);
    ASN1_OBJECT_free(oid);
    X509_free(x);
    EVP_PKEY_free(k);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_google_test_keys),
        cmocka_unit_test(test_google_hostile),
        cmocka_unit_test(test_google_wrong_curve),
        cmocka_unit_test(test_merchant_id_real_apple),
        cmocka_unit_test(test_merchant_id_absent),
        cmocka_unit_test(test_merchant_id_values),
        cmocka_unit_test(test_merchant_id_twice),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
