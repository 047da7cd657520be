/*
 * test_objects.c - the wallet objects that are not keys: Apple's real Payment
 * Processing certificate stored for its own key and refused for any other,
 * Apple Root CA - G3 and Google's test root keys stored as trust anchors, the
 * anchor record, and the listing, which must ignore objects a session without
 * the PIN could have planted (public ones).
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "hsm/internal.h"
#include "tests/support/token.h"

static tv_token tok;
static hsm_session *s;

/* Google's TEST root keys expire at this instant (keys.json). */
#define GOOGLE_TEST_EXPIRY_MS 2154841200000ULL

static int
setup(void **state)
{
    (void)state;
    return tv_token_session_setup(&tok, &s);
}

static int
teardown(void **state)
{
    (void)state;
    tv_token_session_teardown(&tok, &s);
    return 0;
}

/* ---- fixtures ---------------------------------------------------------------- */

/* A PEM vector as DER; *out is OpenSSL-allocated. */
static size_t
vector_cert_der(const char *rel, unsigned char **out)
{
    char *pem = tv_vector_read(rel, NULL);
    BIO *b = BIO_new_mem_buf(pem, -1);
    X509 *x = PEM_read_bio_X509(b, NULL, NULL, NULL);
    int n;

    assert_non_null(x);
    *out = NULL;
    n = i2d_X509(x, out);
    assert_true(n > 0);
    X509_free(x);
    BIO_free(b);
    free(pem);
    return (size_t)n;
}

/* The gala-2023 merchant key (the private half of its certificate). */
static hsm_key *
import_gala_key(const char *label)
{
    char *pem = tv_vector_read("gala-2023/private_key.pem", NULL);
    BIO *b = BIO_new_mem_buf(pem, -1);
    EVP_PKEY *pk = PEM_read_bio_PrivateKey(b, NULL, NULL, NULL);
    unsigned char *der = NULL;
    int n = i2d_PrivateKey(pk, &der);
    hsm_key *k = NULL;

    assert_true(n > 0);
    assert_hsm(hsm_ec_private_import(s, label, der, (size_t)n, &k), HSM_OK);
    OPENSSL_clear_free(der, (size_t)n);
    EVP_PKEY_free(pk);
    BIO_free(b);
    free(pem);
    return k;
}

/* keys.json's key |i|, decoded: *out is malloc'd. */
static size_t
google_spki(size_t i, uint8_t **out)
{
    char *text = tv_vector_read("google-test-root-keys/keys.json", NULL);
    json_error_t err;
    json_t *j = json_loads(text, JSON_REJECT_DUPLICATES, &err);
    const char *b64;
    size_t len = 0;

    assert_non_null(j);
    b64 = json_string_value(
        json_object_get(json_array_get(json_object_get(j, "keys"), i), "keyValue"));
    assert_non_null(b64);
    *out = tv_b64(b64, &len);
    json_decref(j);
    free(text);
    return len;
}

static CK_ULONG
raw_ulong(CK_OBJECT_HANDLE o, CK_ATTRIBUTE_TYPE t)
{
    CK_ULONG v = 0;
    CK_ATTRIBUTE a = { t, &v, sizeof(v) };

    assert_int_equal(s->h->p11->C_GetAttributeValue(s->handle, o, &a, 1), CKR_OK);
    return v;
}

static CK_BBOOL
raw_bool(CK_OBJECT_HANDLE o, CK_ATTRIBUTE_TYPE t)
{
    CK_BBOOL v = CK_FALSE;
    CK_ATTRIBUTE a = { t, &v, sizeof(v) };

    assert_int_equal(s->h->p11->C_GetAttributeValue(s->handle, o, &a, 1), CKR_OK);
    return v;
}

/* The one token object of |klass| labelled |label|. */
static CK_OBJECT_HANDLE
raw_find(CK_OBJECT_CLASS klass, const char *label)
{
    CK_ATTRIBUTE t[] = { { CKA_CLASS, &klass, sizeof(klass) },
                         { CKA_LABEL, (void *)label, strlen(label) } };
    CK_OBJECT_HANDLE o[2];
    CK_ULONG n = 0;

    assert_int_equal(s->h->p11->C_FindObjectsInit(s->handle, t, 2), CKR_OK);
    assert_int_equal(s->h->p11->C_FindObjects(s->handle, o, 2, &n), CKR_OK);
    assert_int_equal(s->h->p11->C_FindObjectsFinal(s->handle), CKR_OK);
    assert_int_equal(n, 1);
    return o[0];
}

/* Stored objects are private and frozen: no session can relabel them. */
static void
assert_frozen(CK_OBJECT_HANDLE o)
{
    CK_ATTRIBUTE a = { CKA_LABEL, (void *)"renamed", 7 };

    assert_int_equal(raw_bool(o, CKA_TOKEN), CK_TRUE);
    assert_int_equal(raw_bool(o, CKA_PRIVATE), CK_TRUE);
    assert_int_equal(raw_bool(o, CKA_MODIFIABLE), CK_FALSE);
    assert_int_not_equal(s->h->p11->C_SetAttributeValue(s->handle, o, &a, 1), CKR_OK);
}

/* ---- certificates for our keys --------------------------------------------- */

static void
test_key_cert_real_apple(void **state)
{
    unsigned char *der = NULL;
    size_t len = vector_cert_der("gala-2023/certificate.pem", &der), got_len = 0;
    hsm_key *k = import_gala_key("gala-merchant");
    uint8_t got[HSM_CERT_MAX], small[8];
    CK_OBJECT_HANDLE o;
    uint8_t id[HSM_LABEL_MAX];
    CK_ATTRIBUTE a = { CKA_ID, id, sizeof(id) };
    (void)state;

    assert_hsm(hsm_key_cert_get(s, k, got, sizeof(got), &got_len), HSM_ERR_KEY_NOT_FOUND);
    assert_hsm(hsm_key_cert_store(s, k, der, len), HSM_OK);
    assert_hsm(hsm_key_cert_get(s, k, got, sizeof(got), &got_len), HSM_OK);
    assert_int_equal(got_len, len);
    assert_memory_equal(got, der, len);
    assert_hsm(hsm_key_cert_get(s, k, small, sizeof(small), &got_len), HSM_ERR_BUFFER);
    assert_int_equal(got_len, len);

    o = raw_find(CKO_CERTIFICATE, "gala-merchant");
    assert_frozen(o);
    assert_int_equal(raw_ulong(o, CKA_CERTIFICATE_TYPE), CKC_X_509);
    assert_int_equal(raw_ulong(o, CKA_CERTIFICATE_CATEGORY), 1); /* token user */
    assert_int_equal(s->h->p11->C_GetAttributeValue(s->handle, o, &a, 1), CKR_OK);
    assert_int_equal(a.ulValueLen, strlen("gala-merchant")); /* the key's CKA_ID */
    assert_memory_equal(id, "gala-merchant", a.ulValueLen);

    /* One certificate per key. */
    assert_hsm(hsm_key_cert_store(s, k, der, len), HSM_ERR_EXISTS);
    OPENSSL_free(der);
}

/* Apple's certificate for another key than ours is refused, whatever kind
 * of EC key ours is, and nothing is stored. */
static void
test_key_cert_other_key(void **state)
{
    unsigned char *der = NULL;
    size_t len = vector_cert_der("gala-2023/certificate.pem", &der), got_len = 0;
    hsm_key *apple = NULL, *rsa = NULL;
    uint8_t got[HSM_CERT_MAX];
    (void)state;

    assert_hsm(hsm_key_generate(s, HSM_KIND_EC_DERIVE_SIGN, "other-apple", &apple), HSM_OK);
    assert_hsm(hsm_key_cert_store(s, apple, der, len), HSM_ERR_VERIFY);
    assert_hsm(hsm_key_cert_get(s, apple, got, sizeof(got), &got_len), HSM_ERR_KEY_NOT_FOUND);
    assert_hsm(hsm_key_generate(s, HSM_KIND_RSA_UNWRAP_SIGN, "other-rsa", &rsa), HSM_OK);
    assert_hsm(hsm_key_cert_store(s, rsa, der, len), HSM_ERR_VERIFY);
    OPENSSL_free(der);
}

static void
test_key_cert_hostile_der(void **state)
{
    unsigned char *der = NULL;
    size_t len = vector_cert_der("gala-2023/certificate.pem", &der);
    uint8_t *longer = malloc(len + 1);
    hsm_key *k = import_gala_key("gala-hostile"), *secret = NULL;
    (void)state;

    assert_non_null(longer);
    memcpy(longer, der, len);
    longer[len] = 0;
    assert_hsm(hsm_key_cert_store(s, k, longer, len + 1), HSM_ERR_INPUT); /* trailing byte */
    assert_hsm(hsm_key_cert_store(s, k, der, len - 1), HSM_ERR_INPUT);    /* truncated */
    assert_hsm(hsm_key_cert_store(s, k, der, 0), HSM_ERR_INPUT);
    assert_hsm(hsm_key_cert_store(s, k, NULL, len), HSM_ERR_INPUT);
    assert_hsm(hsm_key_cert_store(s, k, (const uint8_t *)"-----BEGIN CERTIFICATE-----", 27),
               HSM_ERR_INPUT);
    assert_hsm(hsm_key_cert_store(s, k, der, HSM_CERT_MAX + 1), HSM_ERR_INPUT);
    /* A secret key has no certificate. */
    assert_hsm(hsm_key_generate(s, HSM_KIND_HMAC, "cert-for-hmac", &secret), HSM_OK);
    assert_hsm(hsm_key_cert_store(s, secret, der, len), HSM_ERR_KEY_TYPE);
    /* Still nothing stored for the key after all that. */
    assert_hsm(hsm_key_cert_store(s, k, der, len), HSM_OK);
    free(longer);
    OPENSSL_free(der);
}

/* ---- trust anchors -------------------------------------------------------------- */

static void
test_anchor_cert_apple_root(void **state)
{
    unsigned char *der = NULL;
    size_t len = vector_cert_der("apple-root-ca/AppleRootCA-G3.pem", &der);
    CK_OBJECT_HANDLE o;
    char id[64];
    CK_ATTRIBUTE a = { CKA_ID, id, sizeof(id) };
    (void)state;

    assert_hsm(hsm_anchor_cert_store(s, "apple-root-g3", HSM_ANCHOR_SET_APPLE_ROOT, der, len),
               HSM_OK);
    o = raw_find(CKO_CERTIFICATE, "apple-root-g3");
    assert_frozen(o);
    assert_int_equal(raw_ulong(o, CKA_CERTIFICATE_CATEGORY), 2); /* authority */
    assert_int_equal(s->h->p11->C_GetAttributeValue(s->handle, o, &a, 1), CKR_OK);
    assert_int_equal(a.ulValueLen, strlen("anchor:apple-root"));
    assert_memory_equal(id, "anchor:apple-root", a.ulValueLen);

    assert_hsm(hsm_anchor_cert_store(s, "apple-root-g3", HSM_ANCHOR_SET_APPLE_ROOT, der, len),
               HSM_ERR_EXISTS);
    assert_hsm(hsm_anchor_cert_store(s, "bad set", HSM_ANCHOR_SET_APPLE_ROOT, der, len),
               HSM_ERR_INVALID_ARG);
    assert_hsm(hsm_anchor_cert_store(s, "root-2", "", der, len), HSM_ERR_INVALID_ARG);
    assert_hsm(hsm_anchor_cert_store(s, "root-2", "has space", der, len), HSM_ERR_INVALID_ARG);
    assert_hsm(hsm_anchor_cert_store(s, "root-2", "a-set-name-that-is-longer-than-32", der, len),
               HSM_ERR_INVALID_ARG);
    assert_hsm(hsm_anchor_cert_store(s, "root-2", HSM_ANCHOR_SET_APPLE_ROOT, der, len / 2),
               HSM_ERR_INPUT);
    OPENSSL_free(der);
}

static void
test_anchor_key_google(void **state)
{
    uint8_t *spki = NULL, *rec = NULL;
    size_t len = google_spki(1, &spki), rec_len = 0, got_spki_len = 0;
    const uint8_t *got_spki = NULL;
    uint64_t exp = 0;
    CK_OBJECT_HANDLE o;
    char app[64];
    CK_ATTRIBUTE a = { CKA_APPLICATION, app, sizeof(app) };
    (void)state;

    assert_hsm(hsm_anchor_key_store(s, "g-ECv2-1", "google-ECv2", spki, len, GOOGLE_TEST_EXPIRY_MS),
               HSM_OK);
    o = raw_find(CKO_DATA, "g-ECv2-1");
    assert_frozen(o);
    assert_int_equal(s->h->p11->C_GetAttributeValue(s->handle, o, &a, 1), CKR_OK);
    assert_int_equal(a.ulValueLen, strlen("anchor:google-ECv2"));
    assert_memory_equal(app, "anchor:google-ECv2", a.ulValueLen);
    /* The record the token holds decodes to what was stored. */
    {
        CK_ATTRIBUTE v = { CKA_VALUE, NULL, 0 };
        assert_int_equal(s->h->p11->C_GetAttributeValue(s->handle, o, &v, 1), CKR_OK);
        rec_len = v.ulValueLen;
        rec = malloc(rec_len);
        v.pValue = rec;
        assert_int_equal(s->h->p11->C_GetAttributeValue(s->handle, o, &v, 1), CKR_OK);
    }
    assert_hsm(hsm_anchor_record_decode(rec, rec_len, &exp, &got_spki, &got_spki_len), HSM_OK);
    assert_true(exp == GOOGLE_TEST_EXPIRY_MS);
    assert_int_equal(got_spki_len, len);
    assert_memory_equal(got_spki, spki, len);
    assert_hsm(hsm_anchor_key_store(s, "g-ECv2-1", "google-ECv2", spki, len, 0), HSM_ERR_EXISTS);
    free(rec);
    free(spki);
}

static void
test_anchor_key_hostile(void **state)
{
    uint8_t *spki = NULL, *longer;
    size_t len = google_spki(0, &spki);
    EVP_PKEY *p384 = EVP_EC_gen("P-384");
    unsigned char *p384_der = NULL;
    int p384_len = i2d_PUBKEY(p384, &p384_der);
    (void)state;

    assert_true(p384_len > 0);
    assert_hsm(hsm_anchor_key_store(s, "h-1", "google-ECv2", p384_der, (size_t)p384_len, 0),
               HSM_ERR_INPUT);
    longer = malloc(len + 1);
    memcpy(longer, spki, len);
    longer[len] = 0;
    assert_hsm(hsm_anchor_key_store(s, "h-1", "google-ECv2", longer, len + 1, 0), HSM_ERR_INPUT);
    /* The last byte of Y changed: the point leaves the curve. */
    longer[len - 1] ^= 1;
    assert_hsm(hsm_anchor_key_store(s, "h-1", "google-ECv2", longer, len, 0), HSM_ERR_INPUT);
    assert_hsm(hsm_anchor_key_store(s, "h-1", "google-ECv2", spki, 0, 0), HSM_ERR_INPUT);
    assert_hsm(hsm_anchor_key_store(s, "h 1", "google-ECv2", spki, len, 0), HSM_ERR_INVALID_ARG);
    assert_hsm(hsm_anchor_key_store(s, "h-1", "google/ECv2", spki, len, 0), HSM_ERR_INVALID_ARG);
    assert_hsm(hsm_label_check_free(s, "h-1"), HSM_OK);
    free(longer);
    free(spki);
    OPENSSL_free(p384_der);
    EVP_PKEY_free(p384);
}

static void
test_anchor_record_decode(void **state)
{
    uint8_t *spki = NULL, rec[HSM_ANCHOR_RECORD_MAX + 1];
    size_t len = google_spki(1, &spki), rec_len, got_len = 0;
    const uint8_t *got = NULL;
    uint64_t exp = 0;
    (void)state;

    /* version, expiry (big-endian), u32 length, SPKI */
    rec[0] = HSM_ANCHOR_RECORD_VERSION;
    for (int i = 0; i < 8; i++)
        rec[1 + i] = (uint8_t)(GOOGLE_TEST_EXPIRY_MS >> (56 - 8 * i));
    rec[9] = 0;
    rec[10] = 0;
    rec[11] = (uint8_t)(len >> 8);
    rec[12] = (uint8_t)len;
    memcpy(rec + 13, spki, len);
    rec_len = 13 + len;
    assert_hsm(hsm_anchor_record_decode(rec, rec_len, &exp, &got, &got_len), HSM_OK);
    assert_true(exp == GOOGLE_TEST_EXPIRY_MS);
    assert_ptr_equal(got, rec + 13);
    assert_int_equal(got_len, len);

    exp = 7;
    assert_hsm(hsm_anchor_record_decode(rec, rec_len - 1, &exp, &got, &got_len), HSM_ERR_INPUT);
    rec[rec_len] = 0;
    assert_hsm(hsm_anchor_record_decode(rec, rec_len + 1, &exp, &got, &got_len), HSM_ERR_INPUT);
    assert_hsm(hsm_anchor_record_decode(rec, 0, &exp, &got, &got_len), HSM_ERR_INPUT);
    rec[0] = HSM_ANCHOR_RECORD_VERSION + 1;
    assert_hsm(hsm_anchor_record_decode(rec, rec_len, &exp, &got, &got_len), HSM_ERR_INPUT);
    rec[0] = HSM_ANCHOR_RECORD_VERSION;
    rec[12] ^= 0x01; /* the SPKI length no longer fits the record */
    assert_hsm(hsm_anchor_record_decode(rec, rec_len, &exp, &got, &got_len), HSM_ERR_INPUT);
    rec[12] ^= 0x01;
    rec[rec_len - 1] ^= 0x01; /* the point leaves the curve */
    assert_hsm(hsm_anchor_record_decode(rec, rec_len, &exp, &got, &got_len), HSM_ERR_INPUT);
    assert_true(exp == 7); /* outputs untouched on error */
    free(spki);
}

/* ---- listing ----------------------------------------------------------------- */

struct seen {
    size_t num;
    hsm_wallet_obj_type type[16];
    char label[16][HSM_LABEL_MAX + 1];
    char set[16][HSM_ANCHOR_SET_MAX + 1];
    uint64_t exp[16];
    size_t der_len[16];
};

static int
record(void *ctx, const hsm_wallet_obj *obj)
{
    struct seen *w = ctx;

    assert_true(w->num < 16);
    w->type[w->num] = obj->type;
    snprintf(w->label[w->num], sizeof(w->label[0]), "%s", obj->label);
    snprintf(w->set[w->num], sizeof(w->set[0]), "%s", obj->set);
    w->exp[w->num] = obj->expiration_ms;
    w->der_len[w->num] = obj->der_len;
    w->num++;
    return 0;
}

/* Planted by a session that never logged in: public objects that look like
 * an anchor. The listing (and so the vault) must not see them. */
static void
plant_public_lookalikes(void)
{
    static const CK_OBJECT_CLASS data = CKO_DATA, cert = CKO_CERTIFICATE;
    static const CK_CERTIFICATE_TYPE x509 = CKC_X_509;
    static const CK_ULONG authority = 2;
    CK_BBOOL yes = CK_TRUE, no = CK_FALSE;
    uint8_t *spki = NULL;
    size_t len = google_spki(1, &spki);
    uint8_t rec[HSM_ANCHOR_RECORD_MAX];
    unsigned char *der = NULL;
    size_t der_len = vector_cert_der("apple-root-ca/AppleRootCA-G3.pem", &der);
    CK_OBJECT_HANDLE o;

    memset(rec, 0, 13);
    rec[0] = HSM_ANCHOR_RECORD_VERSION;
    rec[12] = (uint8_t)len;
    memcpy(rec + 13, spki, len);
    CK_ATTRIBUTE d[] = {
        { CKA_CLASS, (void *)&data, sizeof(data) }, { CKA_TOKEN, &yes, 1 }, { CKA_PRIVATE, &no, 1 },
        { CKA_LABEL, (void *)"planted-key", 11 },
        { CKA_APPLICATION, (void *)"anchor:google-ECv2", 18 }, { CKA_VALUE, rec, 13 + len },
    };
    CK_ATTRIBUTE c[] = {
        { CKA_CLASS, (void *)&cert, sizeof(cert) }, { CKA_TOKEN, &yes, 1 }, { CKA_PRIVATE, &no, 1 },
        { CKA_CERTIFICATE_TYPE, (void *)&x509, sizeof(x509) },
        { CKA_CERTIFICATE_CATEGORY, (void *)&authority, sizeof(authority) },
        { CKA_LABEL, (void *)"planted-root", 12 }, { CKA_ID, (void *)"anchor:apple-root", 17 },
        { CKA_SUBJECT, (void *)"\x30\x00", 2 }, { CKA_VALUE, der, der_len },
    };
    assert_int_equal(s->h->p11->C_CreateObject(s->handle, d, sizeof(d) / sizeof(d[0]), &o), CKR_OK);
    assert_int_equal(s->h->p11->C_CreateObject(s->handle, c, sizeof(c) / sizeof(c[0]), &o), CKR_OK);
    OPENSSL_free(der);
    free(spki);
}

static void
test_list(void **state)
{
    unsigned char *der = NULL;
    size_t len = vector_cert_der("gala-2023/certificate.pem", &der);
    uint8_t *ecv1 = NULL;
    size_t ecv1_len = google_spki(0, &ecv1);
    struct seen w;
    (void)state;

    /* The earlier tests of this group stored: gala-merchant and gala-hostile
     * certificates, apple-root-g3, g-ECv2-1. Add one key without expiry and
     * the lookalikes. */
    assert_hsm(hsm_anchor_key_store(s, "g-ECv1-1", "google-ECv1", ecv1, ecv1_len, 0), HSM_OK);
    plant_public_lookalikes();
    memset(&w, 0, sizeof(w));
    assert_hsm(hsm_wallet_obj_list(s, record, &w), HSM_OK);
    assert_int_equal(w.num, 5);
    assert_int_equal(w.type[0], HSM_WOBJ_KEY_CERT);
    assert_string_equal(w.label[0], "gala-hostile");
    assert_int_equal(w.type[1], HSM_WOBJ_KEY_CERT);
    assert_string_equal(w.label[1], "gala-merchant");
    assert_int_equal(w.der_len[1], len);
    assert_string_equal(w.set[1], "");
    assert_int_equal(w.type[2], HSM_WOBJ_ANCHOR_CERT);
    assert_string_equal(w.label[2], "apple-root-g3");
    assert_string_equal(w.set[2], "apple-root");
    assert_int_equal(w.type[3], HSM_WOBJ_ANCHOR_KEY);
    assert_string_equal(w.label[3], "g-ECv1-1");
    assert_string_equal(w.set[3], "google-ECv1");
    assert_true(w.exp[3] == 0);
    assert_int_equal(w.der_len[3], ecv1_len);
    assert_string_equal(w.label[4], "g-ECv2-1");
    assert_true(w.exp[4] == GOOGLE_TEST_EXPIRY_MS);
    free(ecv1);
    OPENSSL_free(der);
}

static void
test_label_check_free(void **state)
{
    (void)state;
    assert_hsm(hsm_label_check_free(s, "never-used"), HSM_OK);
    assert_hsm(hsm_label_check_free(s, "apple-root-g3"), HSM_ERR_EXISTS); /* a certificate */
    assert_hsm(hsm_label_check_free(s, "gala-merchant"), HSM_ERR_EXISTS); /* key and cert */
    assert_hsm(hsm_label_check_free(s, "g-ECv2-1"), HSM_ERR_EXISTS);      /* a data object */
    assert_hsm(hsm_label_check_free(s, ""), HSM_ERR_INVALID_ARG);
    assert_hsm(hsm_label_check_free(s, "sp ace"), HSM_ERR_INVALID_ARG);
    assert_hsm(hsm_label_check_free(s, NULL), HSM_ERR_INVALID_ARG);
}

int
main(void)
{
    /* In order: the listing test counts what the earlier ones stored. */
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_key_cert_real_apple),
        cmocka_unit_test(test_key_cert_other_key),
        cmocka_unit_test(test_key_cert_hostile_der),
        cmocka_unit_test(test_anchor_cert_apple_root),
        cmocka_unit_test(test_anchor_key_google),
        cmocka_unit_test(test_anchor_key_hostile),
        cmocka_unit_test(test_anchor_record_decode),
        cmocka_unit_test(test_list),
        cmocka_unit_test(test_label_check_free),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
