/*
 * test_csr.c - the wallet key kinds that sign their own certification request
 * (Apple Pay: ECDH + ECDSA; Samsung Pay: unwrap + SHA256-RSA-PKCS) as the token
 * enforces them, and hsm_csr_make: requests signed inside the token, checked
 * with OpenSSL against the token's public key; hostile names and kinds.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/rand.h>
#include <openssl/sha.h>
#include <openssl/x509.h>

#include "hsm/internal.h"
#include "tests/support/token.h"

/* The Apple Pay KDF's fixed prefix: counter 1, big-endian (WALLETS.md 1.4). */
static const uint8_t kdf_counter[4] = { 0, 0, 0, 1 };
/* Any otherInfo will do for a known-answer test of the derive path. */
static const uint8_t other_info[] = "\x0did-aes256-GCMApple0123456789abcdef0123456789abcdef";
#define OTHER_INFO_LEN (sizeof(other_info) - 1)

static tv_token tok;
static hsm_session *s;

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

/* The token's public key, through the hsm layer's SPKI export. */
static EVP_PKEY *
public_of(hsm_key *key)
{
    uint8_t spki[HSM_SPKI_MAX];
    const unsigned char *p = spki;
    size_t spki_len = 0;
    EVP_PKEY *pkey;

    assert_hsm(hsm_key_public_spki(s, key, spki, sizeof(spki), &spki_len), HSM_OK);
    pkey = d2i_PUBKEY(NULL, &p, (long)spki_len);
    assert_non_null(pkey);
    return pkey;
}

/* Raw PKCS#11: what a logged-in session could try with the key directly. */
static CK_RV
raw_sign_init(hsm_key *k, CK_MECHANISM_TYPE m)
{
    CK_MECHANISM mech = { m, NULL, 0 };
    CK_RV rv = s->h->p11->C_SignInit(s->handle, &mech, k->handle);
    uint8_t sig[512];
    CK_ULONG sig_len = sizeof(sig);

    /* An operation that started must be finished before the next one. */
    if (rv == CKR_OK)
        (void)s->h->p11->C_Sign(s->handle, (CK_BYTE_PTR) "x", 1, sig, &sig_len);
    return rv;
}

static CK_RV
raw_decrypt_init(hsm_key *k, CK_MECHANISM_TYPE m)
{
    CK_MECHANISM mech = { m, NULL, 0 };
    return s->h->p11->C_DecryptInit(s->handle, &mech, k->handle);
}

/* The new kinds are stored like the wallet kinds they extend (|like|):
 * the same storage attributes (sensitive, extractable only under the
 * project's backup policy, frozen), whatever that policy is, and the token
 * never shows the private value. */
static void
assert_stored_like(hsm_key *k, hsm_key_kind like, const char *like_label)
{
    hsm_key *ref = NULL;
    hsm_key_info a, b;
    uint8_t v[512];
    CK_ATTRIBUTE attr = { like == HSM_KIND_EC_DERIVE ? CKA_VALUE : CKA_PRIVATE_EXPONENT, v,
                          sizeof(v) };

    assert_hsm(hsm_key_generate(s, like, like_label, &ref), HSM_OK);
    assert_hsm(hsm_key_info_get(s, k, &a), HSM_OK);
    assert_hsm(hsm_key_info_get(s, ref, &b), HSM_OK);
    assert_int_equal(a.sensitive, 1);
    assert_int_equal(a.token, b.token);
    assert_int_equal(a.private_, b.private_);
    assert_int_equal(a.extractable, b.extractable);
    assert_int_equal(a.always_sensitive, b.always_sensitive);
    assert_int_equal(a.never_extractable, b.never_extractable);
    assert_int_equal(a.modifiable, 0);
    assert_int_equal(a.copyable, b.copyable);
    assert_int_equal(s->h->p11->C_GetAttributeValue(s->handle, k->handle, &attr, 1),
                     CKR_ATTRIBUTE_SENSITIVE);
}

static X509_REQ *
parse_req(const uint8_t *der, size_t len)
{
    const unsigned char *p = der;
    X509_REQ *req = d2i_X509_REQ(NULL, &p, (long)len);

    assert_non_null(req);
    assert_ptr_equal(p, der + len);
    return req;
}

/* The request is PKCS#10 v1, names |cn|, carries the token's key, uses
 * |nid|, and its signature checks against the token's public key. */
static void
check_req(hsm_key *key, const uint8_t *der, size_t len, const char *cn, int nid)
{
    X509_REQ *req = parse_req(der, len);
    EVP_PKEY *pub = public_of(key), *in_req = X509_REQ_get0_pubkey(req);
    char name[128];

    assert_int_equal(X509_REQ_get_version(req), X509_REQ_VERSION_1);
    assert_int_equal(X509_REQ_get_signature_nid(req), nid);
    assert_int_equal(X509_NAME_get_text_by_NID(X509_REQ_get_subject_name(req), NID_commonName, name,
                                               sizeof(name)),
                     (int)strlen(cn));
    assert_string_equal(name, cn);
    assert_non_null(in_req);
    assert_int_equal(EVP_PKEY_eq(in_req, pub), 1);
    assert_int_equal(X509_REQ_verify(req, pub), 1);
    EVP_PKEY_free(pub);
    X509_REQ_free(req);
}

/* ---- the Apple Pay kind ---------------------------------------------------- */

static void
test_apple_kind_attributes(void **state)
{
    hsm_key *k = NULL;
    hsm_key_info info;
    (void)state;

    assert_hsm(hsm_key_generate(s, HSM_KIND_EC_DERIVE_SIGN, "ap-attr", &k), HSM_OK);
    assert_hsm(hsm_key_info_get(s, k, &info), HSM_OK);
    assert_int_equal(info.kind, HSM_KIND_EC_DERIVE_SIGN);
    assert_string_equal(hsm_key_kind_name(info.kind), "ec-derive-sign");
    assert_string_equal(info.type, "EC-P256");
    assert_stored_like(k, HSM_KIND_EC_DERIVE, "ap-attr-like");
    assert_int_equal(info.sign, 1);
    assert_int_equal(info.derive, 1);
    assert_int_equal(info.decrypt, 0);
    assert_int_equal(info.unwrap, 0);
    /* Found again by label, it is still classified as the same kind. */
    k->generation = 0;
    assert_hsm(hsm_key_find(s, "ap-attr", &k), HSM_OK);
    assert_int_equal(k->kind, HSM_KIND_EC_DERIVE_SIGN);
    /* Plain ECDSA on a host digest, nothing else: SoftHSM 2.6 has no hashing
     * ECDSA mechanisms at all; a token that has them refuses them by
     * ALLOWED_MECHANISMS (enforcement itself is shown on the Samsung key). */
    assert_int_not_equal(raw_sign_init(k, CKM_ECDSA_SHA256), CKR_OK);
    assert_int_not_equal(raw_sign_init(k, CKM_ECDSA_SHA1), CKR_OK);
    assert_int_equal(raw_sign_init(k, CKM_ECDSA), CKR_OK);
    assert_hsm(hsm_key_generate(s, HSM_KIND_EC_DERIVE_SIGN, "ap-attr", &k), HSM_ERR_EXISTS);
}

/* The derive path still works with the kind: the Apple KDF over the token's
 * Z equals the host's KDF over OpenSSL's ECDH with the peer's private key. */
static void
test_apple_kind_derives(void **state)
{
    hsm_key *k = NULL;
    hsm_obj z = HSM_OBJ_NONE;
    EVP_PKEY *peer = EVP_EC_gen("P-256"), *pub = NULL;
    EVP_PKEY_CTX *ctx = NULL;
    uint8_t point[HSM_EC_P256_POINT_LEN], zh[32], got[32], want[32];
    uint8_t kdf_in[sizeof(kdf_counter) + sizeof(zh) + OTHER_INFO_LEN];
    size_t point_len = 0, zh_len = sizeof(zh);
    (void)state;

    assert_non_null(peer);
    assert_hsm(hsm_key_generate(s, HSM_KIND_EC_DERIVE_SIGN, "ap-derive", &k), HSM_OK);
    assert_true(EVP_PKEY_get_octet_string_param(peer, OSSL_PKEY_PARAM_PUB_KEY, point,
                                                sizeof(point), &point_len));
    assert_hsm(hsm_ecdh_derive(s, k, point, point_len, &z), HSM_OK);
    assert_hsm(hsm_apple_kdf(s, z, other_info, OTHER_INFO_LEN, got), HSM_OK);
    hsm_obj_destroy(s, z);

    pub = public_of(k);
    ctx = EVP_PKEY_CTX_new(peer, NULL);
    assert_non_null(ctx);
    assert_int_equal(EVP_PKEY_derive_init(ctx), 1);
    assert_int_equal(EVP_PKEY_derive_set_peer(ctx, pub), 1);
    assert_int_equal(EVP_PKEY_derive(ctx, zh, &zh_len), 1);
    assert_int_equal(zh_len, sizeof(zh));
    memcpy(kdf_in, kdf_counter, sizeof(kdf_counter));
    memcpy(kdf_in + sizeof(kdf_counter), zh, sizeof(zh));
    memcpy(kdf_in + sizeof(kdf_counter) + sizeof(zh), other_info, OTHER_INFO_LEN);
    SHA256(kdf_in, sizeof(kdf_in), want);
    assert_memory_equal(got, want, sizeof(want));
    EVP_PKEY_CTX_free(ctx);
    EVP_PKEY_free(pub);
    EVP_PKEY_free(peer);
}

/* ---- the Samsung Pay kind -------------------------------------------------- */

static void
test_samsung_kind_attributes(void **state)
{
    hsm_key *k = NULL;
    hsm_key_info info;
    (void)state;

    assert_hsm(hsm_key_generate(s, HSM_KIND_RSA_UNWRAP_SIGN, "sp-attr", &k), HSM_OK);
    assert_hsm(hsm_key_info_get(s, k, &info), HSM_OK);
    assert_int_equal(info.kind, HSM_KIND_RSA_UNWRAP_SIGN);
    assert_string_equal(hsm_key_kind_name(info.kind), "rsa-unwrap-sign");
    assert_string_equal(info.type, "RSA-2048");
    assert_stored_like(k, HSM_KIND_RSA_UNWRAP, "sp-attr-like");
    assert_int_equal(info.sign, 1);
    assert_int_equal(info.unwrap, 1);
    assert_int_equal(info.decrypt, 0);
    assert_int_equal(info.derive, 0);
    /* No raw RSA: neither a decryption nor a "signature" with X.509 padding,
     * either of which would turn the key into a decryption oracle. */
    assert_int_not_equal(raw_decrypt_init(k, CKM_RSA_X_509), CKR_OK);
    assert_int_not_equal(raw_decrypt_init(k, CKM_RSA_PKCS), CKR_OK);
    assert_int_not_equal(raw_sign_init(k, CKM_RSA_X_509), CKR_OK);
    /* Only the CSR's signature scheme among the hashing ones. */
    assert_int_not_equal(raw_sign_init(k, CKM_SHA1_RSA_PKCS), CKR_OK);
    assert_int_not_equal(raw_sign_init(k, CKM_SHA256_RSA_PKCS_PSS), CKR_OK);
    assert_int_equal(raw_sign_init(k, CKM_SHA256_RSA_PKCS), CKR_OK);
}

/* The unwrap path still works with the kind: a content key wrapped on the
 * host (JWE RSA1_5) opens content the host encrypted. */
static void
test_samsung_kind_unwraps(void **state)
{
    static const uint8_t iv[HSM_GCM_IV_LEN] = { 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12 };
    static const uint8_t pt[] = "tokenPAN 5353756319181169";
    hsm_key *k = NULL;
    hsm_obj cek = HSM_OBJ_NONE;
    EVP_PKEY *pub = NULL;
    EVP_PKEY_CTX *pctx = NULL;
    EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
    /* |out| as large as the ciphertext: SoftHSM wants room for the tag too. */
    uint8_t key[16], wrapped[256], ct[sizeof(pt) + HSM_GCM_TAG_LEN], out[sizeof(ct)];
    size_t wrapped_len = sizeof(wrapped), out_len = 0;
    int n = 0, path = 0;
    (void)state;

    assert_hsm(hsm_key_generate(s, HSM_KIND_RSA_UNWRAP_SIGN, "sp-unwrap", &k), HSM_OK);
    pub = public_of(k);
    assert_int_equal(RAND_bytes(key, sizeof(key)), 1);
    pctx = EVP_PKEY_CTX_new(pub, NULL);
    assert_int_equal(EVP_PKEY_encrypt_init(pctx), 1);
    assert_int_equal(EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PADDING), 1);
    assert_int_equal(EVP_PKEY_encrypt(pctx, wrapped, &wrapped_len, key, sizeof(key)), 1);
    assert_non_null(c);
    assert_int_equal(EVP_EncryptInit_ex(c, EVP_aes_128_gcm(), NULL, key, iv), 1);
    assert_int_equal(EVP_EncryptUpdate(c, ct, &n, pt, (int)sizeof(pt)), 1);
    assert_int_equal(EVP_EncryptFinal_ex(c, ct + n, &n), 1);
    assert_int_equal(
        EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_GET_TAG, HSM_GCM_TAG_LEN, ct + sizeof(pt)), 1);

    assert_hsm(hsm_rsa_unwrap_aes(s, k, HSM_RSA_PKCS1, wrapped, wrapped_len, sizeof(key),
                                  HSM_USE_AES_GCM_DECRYPT, &cek, &path),
               HSM_OK);
    assert_int_equal(path, 1);
    assert_hsm(hsm_obj_gcm_decrypt(s, cek, NULL, 0, iv, sizeof(iv), ct, sizeof(ct), out,
                                   sizeof(out), &out_len),
               HSM_OK);
    assert_int_equal(out_len, sizeof(pt));
    assert_memory_equal(out, pt, sizeof(pt));
    hsm_obj_destroy(s, cek);
    EVP_CIPHER_CTX_free(c);
    EVP_PKEY_CTX_free(pctx);
    EVP_PKEY_free(pub);
}

/* ---- CSRs ---------------------------------------------------------------------- */

static void
test_csr_apple(void **state)
{
    hsm_key *k = NULL;
    uint8_t der[HSM_CSR_MAX];
    size_t len = 0;
    X509_REQ *req;
    const X509_ALGOR *alg = NULL;
    const ASN1_BIT_STRING *sig = NULL;
    int ptype = 0;
    (void)state;

    assert_hsm(hsm_key_generate(s, HSM_KIND_EC_DERIVE_SIGN, "ap-csr", &k), HSM_OK);
    assert_hsm(hsm_csr_make(s, k, "merchant.com.example processing", der, sizeof(der), &len),
               HSM_OK);
    check_req(k, der, len, "merchant.com.example processing", NID_ecdsa_with_SHA256);
    /* RFC 5758: ecdsa-with-SHA256 carries no parameters at all. */
    req = parse_req(der, len);
    X509_REQ_get0_signature(req, &sig, &alg);
    X509_ALGOR_get0(NULL, &ptype, NULL, alg);
    assert_int_equal(ptype, V_ASN1_UNDEF);
    X509_REQ_free(req);
    /* Each request is a fresh ECDSA signature; both verify. */
    {
        uint8_t again[HSM_CSR_MAX];
        size_t again_len = 0;
        assert_hsm(hsm_csr_make(s, k, "merchant.com.example processing", again, sizeof(again),
                                &again_len),
                   HSM_OK);
        check_req(k, again, again_len, "merchant.com.example processing", NID_ecdsa_with_SHA256);
    }
}

static void
test_csr_samsung(void **state)
{
    hsm_key *k = NULL;
    uint8_t der[HSM_CSR_MAX];
    size_t len = 0;
    X509_REQ *req;
    const X509_ALGOR *alg = NULL;
    const ASN1_BIT_STRING *sig = NULL;
    int ptype = 0;
    (void)state;

    assert_hsm(hsm_key_generate(s, HSM_KIND_RSA_UNWRAP_SIGN, "sp-csr", &k), HSM_OK);
    assert_hsm(hsm_csr_make(s, k, "Samsung Pay merchant 42", der, sizeof(der), &len), HSM_OK);
    check_req(k, der, len, "Samsung Pay merchant 42", NID_sha256WithRSAEncryption);
    /* RFC 4055: sha256WithRSAEncryption has NULL parameters; 256-byte sig. */
    req = parse_req(der, len);
    X509_REQ_get0_signature(req, &sig, &alg);
    X509_ALGOR_get0(NULL, &ptype, NULL, alg);
    assert_int_equal(ptype, V_ASN1_NULL);
    assert_int_equal(ASN1_STRING_length(sig), 256);
    X509_REQ_free(req);
}

/* The audit key (ECDSA only) may sign a request as well; derive-only and
 * decrypt keys may not, and nothing is signed for them. */
static void
test_csr_kinds(void **state)
{
    static const struct {
        hsm_key_kind kind;
        const char *label;
        int want;
    } cases[] = {
        { HSM_KIND_EC_SIGN, "csr-ec-sign", HSM_OK },
        { HSM_KIND_EC_DERIVE, "csr-ec-derive", HSM_ERR_KEY_TYPE },
        { HSM_KIND_RSA_UNWRAP, "csr-rsa-unwrap", HSM_ERR_KEY_TYPE },
        { HSM_KIND_RSA_DECRYPT, "csr-rsa-decrypt", HSM_ERR_KEY_TYPE },
        { HSM_KIND_HMAC, "csr-hmac", HSM_ERR_KEY_TYPE },
    };
    uint8_t der[HSM_CSR_MAX];
    (void)state;

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        hsm_key *k = NULL;
        size_t len = 0;

        assert_hsm(hsm_key_generate(s, cases[i].kind, cases[i].label, &k), HSM_OK);
        assert_hsm(hsm_csr_make(s, k, "x", der, sizeof(der), &len), cases[i].want);
        if (cases[i].want == HSM_OK)
            check_req(k, der, len, "x", NID_ecdsa_with_SHA256);
        else
            assert_int_equal(len, 0);
    }
}

static void
test_csr_hostile_names(void **state)
{
    char longest[HSM_CSR_CN_MAX + 1], too_long[HSM_CSR_CN_MAX + 2];
    const char *bad[] = { "", too_long, "tab\there", "new\nline", "caf\xc3\xa9", "\x7f" };
    hsm_key *k = NULL;
    uint8_t der[HSM_CSR_MAX];
    size_t len = 0;
    (void)state;

    memset(longest, 'a', HSM_CSR_CN_MAX);
    longest[HSM_CSR_CN_MAX] = '\0';
    memset(too_long, 'a', HSM_CSR_CN_MAX + 1);
    too_long[HSM_CSR_CN_MAX + 1] = '\0';
    assert_hsm(hsm_key_generate(s, HSM_KIND_EC_DERIVE_SIGN, "ap-names", &k), HSM_OK);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        len = 0;
        assert_hsm(hsm_csr_make(s, k, bad[i], der, sizeof(der), &len), HSM_ERR_INVALID_ARG);
        assert_int_equal(len, 0);
    }
    assert_hsm(hsm_csr_make(s, k, NULL, der, sizeof(der), &len), HSM_ERR_INVALID_ARG);
    assert_hsm(hsm_csr_make(s, k, longest, der, sizeof(der), &len), HSM_OK);
    check_req(k, der, len, longest, NID_ecdsa_with_SHA256);
}

/* A buffer too small: HSM_ERR_BUFFER and the size needed. */
static void
test_csr_buffer(void **state)
{
    hsm_key *k = NULL;
    uint8_t der[HSM_CSR_MAX], small[16];
    size_t need = 0, len = 0;
    (void)state;

    assert_hsm(hsm_key_generate(s, HSM_KIND_RSA_UNWRAP_SIGN, "sp-buffer", &k), HSM_OK);
    assert_hsm(hsm_csr_make(s, k, "buffer", small, sizeof(small), &need), HSM_ERR_BUFFER);
    assert_true(need > sizeof(small) && need <= sizeof(der));
    assert_hsm(hsm_csr_make(s, k, "buffer", der, need, &len), HSM_OK);
    assert_int_equal(len, need);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_apple_kind_attributes),
        cmocka_unit_test(test_apple_kind_derives),
        cmocka_unit_test(test_samsung_kind_attributes),
        cmocka_unit_test(test_samsung_kind_unwraps),
        cmocka_unit_test(test_csr_apple),
        cmocka_unit_test(test_csr_samsung),
        cmocka_unit_test(test_csr_kinds),
        cmocka_unit_test(test_csr_hostile_names),
        cmocka_unit_test(test_csr_buffer),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
