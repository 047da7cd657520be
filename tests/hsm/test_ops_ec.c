/*
 * test_ops_ec.c - ECDH into the token and the two wallet KDFs against the
 * published intermediate values of real vectors; ECDSA sign/verify; hostile
 * points, signatures and keys.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "hsm/internal.h"
#include "tests/support/token.h"

static tv_token tok;

static int
setup(void **state)
{
    (void)state;
    if (tv_token_setup(&tok) != 0 || tv_token_open(&tok) != HSM_OK)
        return -1;
    return 0;
}

static int
teardown(void **state)
{
    (void)state;
    tv_token_teardown(&tok);
    return 0;
}

/* The uncompressed point of a DER SubjectPublicKeyInfo, via OpenSSL. */
static void
spki_point(const uint8_t *spki, size_t len, uint8_t *point, size_t cap, size_t *out_len)
{
    const unsigned char *p = spki;
    EVP_PKEY *pk = d2i_PUBKEY(NULL, &p, (long)len);

    assert_non_null(pk);
    assert_true(EVP_PKEY_get_octet_string_param(pk, OSSL_PKEY_PARAM_PUB_KEY, point, cap, out_len));
    EVP_PKEY_free(pk);
}

static json_t *
load_json(const char *rel)
{
    char *text = tv_vector_read(rel, NULL);
    json_error_t err;
    json_t *j = json_loads(text, JSON_REJECT_DUPLICATES, &err);

    free(text);
    assert_non_null(j);
    return j;
}

/* ---- The derivation into key objects, by the probe's path ---------------- */

#define KAT_MSG "a card's worth of payment data"
#define KAT_MSG_LEN (sizeof(KAT_MSG) - 1)

/* The path each module must take: all in the token where the token has the
 * derivation mechanisms (NSS softokn), C_DigestKey where not (SoftHSM). */
static hsm_path
want_path(void)
{
    return tok.nss ? HSM_PATH_IN_TOKEN : HSM_PATH_DIGEST_KEY;
}

/* A derived key is sensitive and not extractable. On the digest-key path
 * the token says it was made from host bytes (not ALWAYS_SENSITIVE, not
 * NEVER_EXTRACTABLE); on the in-token path those two are inherited down the
 * chain from the merchant key (PKCS#11 2.40 4.14.2), which an imported
 * test key never had, so they prove nothing there and are not asserted. */
static void
assert_message_key(hsm_session *s, hsm_obj k, hsm_path path)
{
    int v = -1;

    assert_hsm(hsm__key_attr_bool(s, k, CKA_SENSITIVE, &v), HSM_OK);
    assert_int_equal(v, 1);
    assert_hsm(hsm__key_attr_bool(s, k, CKA_EXTRACTABLE, &v), HSM_OK);
    assert_int_equal(v, 0);
    if (path == HSM_PATH_DIGEST_KEY) {
        assert_hsm(hsm__key_attr_bool(s, k, CKA_ALWAYS_SENSITIVE, &v), HSM_OK);
        assert_int_equal(v, 0);
        assert_hsm(hsm__key_attr_bool(s, k, CKA_NEVER_EXTRACTABLE, &v), HSM_OK);
        assert_int_equal(v, 0);
    }
}

/* OpenSSL seals KAT_MSG under the expected key; the derived key object must
 * open it in the token. */
static void
assert_gcm_key_is(hsm_session *s, hsm_obj k, const uint8_t want[32])
{
    static const uint8_t iv[12];
    uint8_t ct[KAT_MSG_LEN + 16], pt[sizeof(ct)];
    size_t pt_len = 0;
    int n = 0, fin = 0;
    EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();

    assert_int_equal(EVP_EncryptInit_ex(c, EVP_aes_256_gcm(), NULL, want, iv), 1);
    assert_int_equal(EVP_EncryptUpdate(c, ct, &n, (const uint8_t *)KAT_MSG, (int)KAT_MSG_LEN), 1);
    assert_int_equal(EVP_EncryptFinal_ex(c, ct + n, &fin), 1);
    assert_int_equal(EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_GET_TAG, 16, ct + KAT_MSG_LEN), 1);
    EVP_CIPHER_CTX_free(c);
    assert_hsm(hsm_obj_gcm_decrypt(s, k, NULL, 0, iv, sizeof(iv), ct, sizeof(ct), pt, sizeof(pt),
                                   &pt_len),
               HSM_OK);
    assert_int_equal(pt_len, KAT_MSG_LEN);
    assert_memory_equal(pt, KAT_MSG, KAT_MSG_LEN);
}

/* The CTR key decrypts what OpenSSL encrypted under |aes|; the MAC key
 * verifies OpenSSL's HMAC under |mac| (|len| bytes each) and nothing else. */
static void
assert_google_keys_are(hsm_session *s, hsm_obj ka, hsm_obj km, const uint8_t *aes,
                       const uint8_t *mac, size_t len)
{
    static const uint8_t iv[16];
    uint8_t ct[KAT_MSG_LEN], pt[KAT_MSG_LEN], tag[32];
    unsigned int tag_len = 0;
    int n = 0;
    EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();

    assert_int_equal(EVP_EncryptInit_ex(c, len == 16 ? EVP_aes_128_ctr() : EVP_aes_256_ctr(), NULL,
                                        aes, iv),
                     1);
    assert_int_equal(EVP_EncryptUpdate(c, ct, &n, (const uint8_t *)KAT_MSG, (int)KAT_MSG_LEN), 1);
    EVP_CIPHER_CTX_free(c);
    assert_non_null(HMAC(EVP_sha256(), mac, (int)len, ct, sizeof(ct), tag, &tag_len));
    assert_hsm(hsm_obj_hmac_verify(s, km, ct, sizeof(ct), tag, tag_len), HSM_OK);
    tag[0] ^= 1;
    assert_hsm(hsm_obj_hmac_verify(s, km, ct, sizeof(ct), tag, tag_len), HSM_ERR_VERIFY);
    assert_hsm(hsm_obj_ctr_decrypt(s, ka, iv, ct, sizeof(ct), pt, sizeof(pt)), HSM_OK);
    assert_memory_equal(pt, KAT_MSG, KAT_MSG_LEN);
}

static void
test_apple_kdf_gala_2023(void **state)
{
    hsm_session *s = NULL;
    hsm_key *key = NULL;
    hsm_obj z = HSM_OBJ_NONE;
    char *pem = tv_vector_read("gala-2023/private_key.pem", NULL);
    BIO *bio = BIO_new_mem_buf(pem, -1);
    EVP_PKEY *pk = PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL);
    unsigned char *der = NULL;
    int der_len = i2d_PrivateKey(pk, &der);
    json_t *token = load_json("gala-2023/token.json"), *inter = load_json("gala-2023/intermediates.json");
    const char *eph_b64 = json_string_value(json_object_get(json_object_get(token, "header"),
                                                            "ephemeralPublicKey"));
    size_t eph_len = 0, point_len = 0, other_len = 0, want_len = 0;
    uint8_t *eph = tv_b64(eph_b64, &eph_len), point[80], got[32];
    uint8_t *other = tv_hex(json_string_value(json_object_get(inter, "kdf_otherInfo_hex")), &other_len);
    uint8_t *want = tv_b64(json_string_value(json_object_get(inter, "symmetric_key_b64")), &want_len);
    (void)state;

    assert_true(der_len > 0);
    spki_point(eph, eph_len, point, sizeof(point), &point_len);
    assert_int_equal(hsm_session_acquire(tok.h, &s), HSM_OK);
    assert_int_equal(hsm_ec_private_import(s, "kat-apple-gala", der, (size_t)der_len, &key), HSM_OK);
    assert_int_equal(hsm_ecdh_derive(s, key, point, point_len, &z), HSM_OK);

    /* Z stays in the token: sensitive, not extractable, its value refused. */
    {
        uint8_t v[64];
        CK_ATTRIBUTE a = { CKA_VALUE, v, sizeof(v) };
        int sens = 0, extr = 1;
        assert_int_equal(hsm__key_attr_bool(s, z, CKA_SENSITIVE, &sens), HSM_OK);
        assert_int_equal(hsm__key_attr_bool(s, z, CKA_EXTRACTABLE, &extr), HSM_OK);
        assert_int_equal(sens, 1);
        assert_int_equal(extr, 0);
        assert_int_equal(s->h->p11->C_GetAttributeValue(s->handle, z, &a, 1), CKR_ATTRIBUTE_SENSITIVE);
    }
    assert_int_equal(hsm_apple_kdf(s, z, other, other_len, got), HSM_OK);
    assert_int_equal(want_len, 32);
    assert_memory_equal(got, want, 32);
    /* The same key as an object, by the path the probe chose. */
    {
        hsm_obj k = HSM_OBJ_NONE;
        hsm_path path = HSM_PATH_NONE;

        assert_int_equal(hsm_probe_get(tok.h)->apple_ec_kdf, want_path());
        assert_hsm(hsm_apple_kdf_key(s, z, other, other_len, HSM_USE_AES_GCM_DECRYPT, &k, &path),
                   HSM_OK);
        assert_int_equal(path, want_path());
        assert_message_key(s, k, path);
        assert_gcm_key_is(s, k, want);
        hsm_obj_destroy(s, k);
        assert_hsm(hsm_apple_kdf_key(s, z, other, 0, HSM_USE_AES_GCM_DECRYPT, &k, &path),
                   HSM_ERR_INVALID_ARG);
        assert_hsm(hsm_apple_kdf_key(s, z, other, other_len, HSM_USE_HMAC_VERIFY, &k, &path),
                   HSM_ERR_INVALID_ARG);
    }
    /* A different otherInfo (another merchant id) gives another key. */
    other[other_len - 1] ^= 1;
    assert_int_equal(hsm_apple_kdf(s, z, other, other_len, got), HSM_OK);
    assert_memory_not_equal(got, want, 32);
    /* Bad arguments are refused before the token sees them. */
    assert_int_equal(hsm_apple_kdf(s, z, other, 0, got), HSM_ERR_INVALID_ARG);
    assert_int_equal(hsm_apple_kdf(s, HSM_OBJ_NONE, other, other_len, got), HSM_ERR_INVALID_ARG);
    hsm_obj_destroy(s, z);

    /* The imported key is derive-only and cannot be imported twice. */
    assert_int_equal(hsm_ec_private_import(s, "kat-apple-gala", der, (size_t)der_len, &key),
                     HSM_ERR_EXISTS);
    hsm_session_release(s);
    OPENSSL_free(der);
    EVP_PKEY_free(pk);
    BIO_free(bio);
    free(pem);
    free(eph);
    free(other);
    free(want);
    json_decref(token);
    json_decref(inter);
}

/* Google Pay: IKM = ephemeralPublicKey || Z, salt = 32 zero bytes, info "Google";
 * ECv1: 16-byte AES key || 16-byte HMAC key; ECv2: 32 || 32. */
static void
google_kat(const char *token_file, const char *inter_file, const char *label, size_t key_len)
{
    hsm_session *s = NULL;
    hsm_key *key = NULL;
    hsm_obj z = HSM_OBJ_NONE;
    size_t der_len = 0, eph_len = 0, aes_len = 0, mac_len = 0;
    char *b64 = tv_vector_read("googlepay-dotnet/merchant_private_key_pkcs8.b64", NULL);
    uint8_t *der = tv_b64(b64, &der_len), out[64];
    json_t *token = load_json(token_file), *inter = load_json(inter_file), *msg;
    json_error_t err;
    const char *signed_msg = json_string_value(json_object_get(token, "signedMessage"));
    uint8_t *eph, *aes, *mac;

    msg = json_loads(signed_msg, JSON_REJECT_DUPLICATES, &err);
    assert_non_null(msg);
    eph = tv_b64(json_string_value(json_object_get(msg, "ephemeralPublicKey")), &eph_len);
    aes = tv_hex(json_string_value(json_object_get(inter, "aes_ctr_key_hex")), &aes_len);
    mac = tv_hex(json_string_value(json_object_get(inter, "hmac_key_hex")), &mac_len);
    assert_int_equal(aes_len, key_len);
    assert_int_equal(mac_len, key_len);

    assert_int_equal(hsm_session_acquire(tok.h, &s), HSM_OK);
    assert_int_equal(hsm_ec_private_import(s, label, der, der_len, &key), HSM_OK);
    assert_int_equal(hsm_ecdh_derive(s, key, eph, eph_len, &z), HSM_OK);
    assert_int_equal(hsm_hkdf_sha256(s, z, NULL, 0, eph, eph_len, (const uint8_t *)"Google", 6, out,
                                     2 * key_len),
                     HSM_OK);
    assert_memory_equal(out, aes, key_len);
    assert_memory_equal(out + key_len, mac, key_len);
    /* An explicit 32-byte zero salt is the same salt (RFC 2104 padding). */
    {
        uint8_t zero[32] = { 0 }, again[64];
        assert_int_equal(hsm_hkdf_sha256(s, z, zero, sizeof(zero), eph, eph_len,
                                         (const uint8_t *)"Google", 6, again, 2 * key_len),
                         HSM_OK);
        assert_memory_equal(again, out, 2 * key_len);
    }
    /* The same keys as objects, by the path the probe chose. */
    {
        hsm_obj ka = HSM_OBJ_NONE, km = HSM_OBJ_NONE;
        hsm_path path = HSM_PATH_NONE;

        assert_int_equal(hsm_probe_get(tok.h)->google_hkdf, want_path());
        assert_hsm(hsm_hkdf_sha256_keys(s, z, NULL, 0, eph, eph_len, (const uint8_t *)"Google", 6,
                                        key_len, &ka, &km, &path),
                   HSM_OK);
        assert_int_equal(path, want_path());
        assert_message_key(s, ka, path);
        assert_message_key(s, km, path);
        assert_google_keys_are(s, ka, km, aes, mac, key_len);
        hsm_obj_destroy(s, ka);
        hsm_obj_destroy(s, km);
        assert_hsm(hsm_hkdf_sha256_keys(s, z, NULL, 0, eph, eph_len, (const uint8_t *)"Google", 6,
                                        24, &ka, &km, &path),
                   HSM_ERR_INVALID_ARG);
    }
    assert_int_equal(hsm_hkdf_sha256(s, z, NULL, 0, eph, eph_len, NULL, 0, out, 0),
                     HSM_ERR_INVALID_ARG);
    assert_int_equal(hsm_hkdf_sha256(s, z, NULL, 0, eph, eph_len, NULL, 0, out, HSM_HKDF_OUT_MAX + 1),
                     HSM_ERR_INVALID_ARG);
    hsm_obj_destroy(s, z);
    hsm_session_release(s);
    json_decref(msg);
    json_decref(token);
    json_decref(inter);
    free(b64);
    free(der);
    free(eph);
    free(aes);
    free(mac);
}

static void
test_google_hkdf_ecv1(void **state)
{
    (void)state;
    google_kat("googlepay-dotnet/ecv1_token_someRecipient.json",
               "googlepay-dotnet/intermediates_ecv1.json", "kat-google-v1", 16);
}

static void
test_google_hkdf_ecv2(void **state)
{
    (void)state;
    google_kat("googlepay-dotnet/ecv2_token_gateway_ariane.json",
               "googlepay-dotnet/intermediates_ecv2_ariane.json", "kat-google-v2", 32);
}

static void
test_ecdh_hostile_points(void **state)
{
    hsm_session *s = NULL;
    hsm_key *key = NULL, *kek = NULL;
    hsm_obj z = HSM_OBJ_NONE;
    uint8_t spki[HSM_SPKI_MAX], point[80];
    size_t spki_len = 0, point_len = 0;
    (void)state;

    assert_int_equal(hsm_session_acquire(tok.h, &s), HSM_OK);
    assert_int_equal(hsm_key_generate(s, HSM_KIND_EC_DERIVE, "ecdh-hostile", &key), HSM_OK);
    assert_int_equal(hsm_key_public_spki(s, key, spki, sizeof(spki), &spki_len), HSM_OK);
    spki_point(spki, spki_len, point, sizeof(point), &point_len);
    assert_int_equal(point_len, HSM_EC_P256_POINT_LEN);
    /* Our own public key is a valid peer point. */
    assert_int_equal(hsm_ecdh_derive(s, key, point, point_len, &z), HSM_OK);
    hsm_obj_destroy(s, z);
    z = HSM_OBJ_NONE;
    /* Off the curve: y changed. */
    point[64] ^= 1;
    assert_int_equal(hsm_ecdh_derive(s, key, point, point_len, &z), HSM_ERR_INPUT);
    point[64] ^= 1;
    /* Compressed form, wrong prefix, truncated, all zero. */
    point[0] = 0x02;
    assert_int_equal(hsm_ecdh_derive(s, key, point, 33, &z), HSM_ERR_INPUT);
    point[0] = 0x05;
    assert_int_equal(hsm_ecdh_derive(s, key, point, point_len, &z), HSM_ERR_INPUT);
    point[0] = 0x04;
    assert_int_equal(hsm_ecdh_derive(s, key, point, point_len - 1, &z), HSM_ERR_INPUT);
    memset(point + 1, 0, 64);
    assert_int_equal(hsm_ecdh_derive(s, key, point, point_len, &z), HSM_ERR_INPUT);
    /* A KEK is no ECDH key. */
    assert_int_equal(hsm_key_generate(s, HSM_KIND_KEK, "ecdh-not-a-kek", &kek), HSM_OK);
    assert_int_equal(hsm_ecdh_derive(s, kek, point, point_len, &z), HSM_ERR_KEY_TYPE);
    assert_int_equal(z, HSM_OBJ_NONE);
    hsm_session_release(s);
}

/* The canonical P-256 SubjectPublicKeyInfo (named curve, uncompressed
 * point) gives its point; every other shape and every bad point is refused,
 * and a compressed key (valid, but not the canonical form) is left to the
 * generic decoder, which still imports it. */
static void
test_p256_spki_point(void **state)
{
    hsm_session *s = NULL;
    hsm_key *key = NULL;
    hsm_obj pub = HSM_OBJ_NONE;
    uint8_t spki[HSM_SPKI_MAX], point[HSM_EC_P256_POINT_LEN], want[80];
    size_t spki_len = 0, want_len = 0;
    (void)state;

    assert_int_equal(hsm_session_acquire(tok.h, &s), HSM_OK);
    assert_int_equal(hsm_key_generate(s, HSM_KIND_EC_DERIVE, "spki-point", &key), HSM_OK);
    assert_int_equal(hsm_key_public_spki(s, key, spki, sizeof(spki), &spki_len), HSM_OK);
    assert_int_equal(spki_len, 91);
    spki_point(spki, spki_len, want, sizeof(want), &want_len);
    assert_int_equal(hsm_ec_p256_spki_point(spki, spki_len, point), HSM_OK);
    assert_memory_equal(point, want, HSM_EC_P256_POINT_LEN);
    /* Length, prefix (each byte), point off the curve, point of zeros. */
    assert_int_equal(hsm_ec_p256_spki_point(spki, spki_len - 1, point), HSM_ERR_INPUT);
    assert_int_equal(hsm_ec_p256_spki_point(spki, spki_len + 1, point), HSM_ERR_INPUT);
    for (size_t i = 0; i < 27; i++) {
        spki[i] ^= 0x01;
        assert_int_equal(hsm_ec_p256_spki_point(spki, spki_len, point), HSM_ERR_INPUT);
        spki[i] ^= 0x01;
    }
    spki[90] ^= 0x01;
    assert_int_equal(hsm_ec_p256_spki_point(spki, spki_len, point), HSM_ERR_INPUT);
    assert_int_equal(hsm_ec_public_import(s, spki, spki_len, &pub), HSM_ERR_INPUT);
    spki[90] ^= 0x01;
    {
        uint8_t zero[91];

        memcpy(zero, spki, 27);
        memset(zero + 27, 0, 64);
        assert_int_equal(hsm_ec_p256_spki_point(zero, sizeof(zero), point), HSM_ERR_INPUT);
    }
    /* A compressed P-256 key: not canonical here, imported by the generic path. */
    {
        EVP_PKEY *k = EVP_EC_gen("prime256v1");
        unsigned char *der = NULL;
        int der_len;

        assert_non_null(k);
        assert_int_equal(EVP_PKEY_set_utf8_string_param(k, OSSL_PKEY_PARAM_EC_POINT_CONVERSION_FORMAT,
                                                        "compressed"),
                         1);
        der_len = i2d_PUBKEY(k, &der);
        assert_true(der_len > 0 && der_len < 91);
        assert_int_equal(hsm_ec_p256_spki_point(der, (size_t)der_len, point), HSM_ERR_INPUT);
        assert_int_equal(hsm_ec_public_import(s, der, (size_t)der_len, &pub), HSM_OK);
        hsm_obj_destroy(s, pub);
        OPENSSL_free(der);
        EVP_PKEY_free(k);
    }
    assert_int_equal(hsm_ec_p256_spki_point(NULL, 91, point), HSM_ERR_INVALID_ARG);
    hsm_session_release(s);
}

static void
test_ecdsa_sign_verify(void **state)
{
    hsm_session *s = NULL;
    hsm_key *key = NULL;
    hsm_obj pub = HSM_OBJ_NONE;
    uint8_t spki[HSM_SPKI_MAX], digest[32], sig[HSM_ECDSA_SIG_MAX + 2];
    size_t spki_len = 0, sig_len = 0;
    const unsigned char *p;
    EVP_PKEY *pk;
    EVP_MD_CTX *md;
    (void)state;

    for (size_t i = 0; i < sizeof(digest); i++)
        digest[i] = (uint8_t)i;
    assert_int_equal(hsm_session_acquire(tok.h, &s), HSM_OK);
    assert_int_equal(hsm_key_generate(s, HSM_KIND_EC_SIGN, "audit-test", &key), HSM_OK);
    assert_int_equal(hsm_ecdsa_sign(s, key, digest, sizeof(digest), sig, sizeof(sig), &sig_len), HSM_OK);
    assert_int_equal(hsm_key_public_spki(s, key, spki, sizeof(spki), &spki_len), HSM_OK);

    /* OpenSSL agrees the signature is valid (raw digest, so verify the hash). */
    p = spki;
    pk = d2i_PUBKEY(NULL, &p, (long)spki_len);
    assert_non_null(pk);
    {
        EVP_PKEY_CTX *c = EVP_PKEY_CTX_new(pk, NULL);
        assert_int_equal(EVP_PKEY_verify_init(c), 1);
        assert_int_equal(EVP_PKEY_verify(c, sig, sig_len, digest, sizeof(digest)), 1);
        EVP_PKEY_CTX_free(c);
    }
    /* And the token verifies it through an imported SPKI. */
    assert_int_equal(hsm_ec_public_import(s, spki, spki_len, &pub), HSM_OK);
    assert_int_equal(hsm_ecdsa_verify(s, pub, digest, sizeof(digest), sig, sig_len), HSM_OK);
    digest[0] ^= 1;
    assert_int_equal(hsm_ecdsa_verify(s, pub, digest, sizeof(digest), sig, sig_len), HSM_ERR_VERIFY);
    digest[0] ^= 1;
    /* Trailing byte, truncation, empty, oversize: malformed, not a verify. */
    sig[sig_len] = 0;
    assert_int_equal(hsm_ecdsa_verify(s, pub, digest, sizeof(digest), sig, sig_len + 1), HSM_ERR_INPUT);
    assert_int_equal(hsm_ecdsa_verify(s, pub, digest, sizeof(digest), sig, sig_len - 1), HSM_ERR_INPUT);
    assert_int_equal(hsm_ecdsa_verify(s, pub, digest, sizeof(digest), sig, 0), HSM_ERR_INPUT);
    assert_int_equal(hsm_ecdsa_verify(s, pub, digest, sizeof(digest), sig, HSM_ECDSA_SIG_MAX + 1),
                     HSM_ERR_INPUT);
    hsm_obj_destroy(s, pub);

    /* P-384: an OpenSSL key and signature verify in the token. */
    {
        EVP_PKEY *k384 = EVP_EC_gen("secp384r1");
        unsigned char *der = NULL, s384[128];
        size_t s384_len = sizeof(s384);
        int der_len;
        uint8_t d48[48] = { 7 };
        EVP_PKEY_CTX *c = EVP_PKEY_CTX_new(k384, NULL);

        assert_non_null(k384);
        der_len = i2d_PUBKEY(k384, &der);
        assert_int_equal(EVP_PKEY_sign_init(c), 1);
        assert_int_equal(EVP_PKEY_sign(c, s384, &s384_len, d48, sizeof(d48)), 1);
        assert_int_equal(hsm_ec_public_import(s, der, (size_t)der_len, &pub), HSM_OK);
        assert_int_equal(hsm_ecdsa_verify(s, pub, d48, sizeof(d48), s384, s384_len), HSM_OK);
        d48[1] ^= 0x80;
        assert_int_equal(hsm_ecdsa_verify(s, pub, d48, sizeof(d48), s384, s384_len), HSM_ERR_VERIFY);
        hsm_obj_destroy(s, pub);
        EVP_PKEY_CTX_free(c);
        OPENSSL_free(der);
        EVP_PKEY_free(k384);
    }
    /* Hostile SubjectPublicKeyInfo: garbage, trailing byte, RSA, changed point. */
    {
        uint8_t junk[40] = { 0x30, 0x26 };
        EVP_PKEY *rsa = EVP_RSA_gen(1024);
        unsigned char *der = NULL;
        int der_len = i2d_PUBKEY(rsa, &der);

        assert_int_equal(hsm_ec_public_import(s, junk, sizeof(junk), &pub), HSM_ERR_INPUT);
        spki[spki_len] = 0;
        assert_int_equal(hsm_ec_public_import(s, spki, spki_len + 1, &pub), HSM_ERR_INPUT);
        assert_int_equal(hsm_ec_public_import(s, der, (size_t)der_len, &pub), HSM_ERR_INPUT);
        spki[spki_len - 1] ^= 1; /* last byte of y: off the curve */
        assert_int_equal(hsm_ec_public_import(s, spki, spki_len, &pub), HSM_ERR_INPUT);
        assert_int_equal(hsm_ec_public_import(s, spki, 0, &pub), HSM_ERR_INPUT);
        OPENSSL_free(der);
        EVP_PKEY_free(rsa);
    }
    md = NULL;
    EVP_MD_CTX_free(md);
    EVP_PKEY_free(pk);
    hsm_session_release(s);
}

static void
test_private_import_hostile(void **state)
{
    hsm_session *s = NULL;
    hsm_key *key = NULL;
    uint8_t junk[64];
    EVP_PKEY *k384 = EVP_EC_gen("secp384r1");
    unsigned char *der = NULL;
    int der_len = i2d_PrivateKey(k384, &der);
    (void)state;

    memset(junk, 0x30, sizeof(junk));
    assert_int_equal(hsm_session_acquire(tok.h, &s), HSM_OK);
    assert_int_equal(hsm_ec_private_import(s, "bad-1", junk, sizeof(junk), &key), HSM_ERR_INPUT);
    assert_int_equal(hsm_ec_private_import(s, "bad-2", der, (size_t)der_len, &key), HSM_ERR_INPUT);
    assert_int_equal(hsm_ec_private_import(s, "bad-3", der, 0, &key), HSM_ERR_INPUT);
    assert_int_equal(hsm_key_find(s, "bad-2", &key), HSM_ERR_KEY_NOT_FOUND);
    hsm_session_release(s);
    OPENSSL_free(der);
    EVP_PKEY_free(k384);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_apple_kdf_gala_2023),
        cmocka_unit_test(test_google_hkdf_ecv1),
        cmocka_unit_test(test_google_hkdf_ecv2),
        cmocka_unit_test(test_ecdh_hostile_points),
        cmocka_unit_test(test_p256_spki_point),
        cmocka_unit_test(test_ecdsa_sign_verify),
        cmocka_unit_test(test_private_import_hostile),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
