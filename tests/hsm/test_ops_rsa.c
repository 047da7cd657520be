/*
 * test_ops_rsa.c - RSA unwrap of a wallet's content key (in the token, and with
 * the host OAEP-SHA256 decoding SoftHSM 2.6 needs) and the host OAEP decoder,
 * with OpenSSL as the independent reference: it wraps the keys, encrypts the
 * content the unwrapped key must open, and builds the encoded blocks.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <openssl/rand.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

#include "hsm/internal.h"
#include "tests/support/token.h"

/* The vault's RSA keys are RSA-2048: ciphertexts and encoded blocks are the
 * modulus length. */
#define RSA_BITS 2048
#define RSA_LEN (RSA_BITS / 8)
/* Bounds of hsm_rsa_unwrap_aes (RSA-2048 .. RSA-4096), to step just outside. */
#define RSA_BLOCK_MIN 256
#define RSA_BLOCK_MAX 512
#define AES128_LEN 16
#define AES192_LEN 24
#define AES256_LEN 32
/* A key length that is no AES size at all. */
#define KEY_LEN_NOT_AES 20
/* OAEP-SHA256: the seed is the 32 bytes after the leading zero. */
#define OAEP_SEED_OFF 1
#define OAEP_SHA256_HLEN 32

/* What a wallet's content key protects: a short record, GCM with a 96-bit IV. */
static const uint8_t content_pt[] = "4111111111111111|12/29|TOKENVAULT TEST";
static const uint8_t content_aad[] = "eyJhbGciOiJSU0EtT0FFUCJ9"; /* a JWE header */
static const uint8_t content_iv[HSM_GCM_IV_LEN] = { 0xca, 0xfe, 0xba, 0xbe, 0xfa, 0xce,
                                                    0xdb, 0xad, 0xde, 0xca, 0xf8, 0x88 };
#define CONTENT_PT_LEN (sizeof(content_pt) - 1)
#define CONTENT_AAD_LEN (sizeof(content_aad) - 1)
#define CONTENT_CT_LEN (CONTENT_PT_LEN + HSM_GCM_TAG_LEN)

/* Sentinel for "out-param not written". */
#define OBJ_UNTOUCHED ((hsm_obj)0x5a5a5a5aUL)
#define KEY_UNTOUCHED ((hsm_key *)0x5a5a5a5aUL)
#define PATH_UNTOUCHED (-77)

static tv_token tok;
static hsm_session *s;
static hsm_key *unwrap_key;  /* HSM_KIND_RSA_UNWRAP */
static hsm_key *decrypt_key; /* HSM_KIND_RSA_DECRYPT */
static hsm_key *hmac_key;
static EVP_PKEY *unwrap_pub, *decrypt_pub; /* their public halves, from the SPKI export */
static EVP_PKEY *host_rsa;                 /* host-only key for the decoder tests */

/* ---- host side (OpenSSL) -------------------------------------------------- */

static EVP_PKEY *
public_of(hsm_key *key)
{
    uint8_t spki[HSM_SPKI_MAX];
    const unsigned char *p = spki;
    size_t spki_len = 0;
    EVP_PKEY *pkey;

    if (hsm_key_public_spki(s, key, spki, sizeof(spki), &spki_len) != HSM_OK)
        return NULL;
    pkey = d2i_PUBKEY(NULL, &p, (long)spki_len);
    if (pkey == NULL || p != spki + spki_len || EVP_PKEY_get_base_id(pkey) != EVP_PKEY_RSA ||
        EVP_PKEY_get_bits(pkey) != RSA_BITS) {
        EVP_PKEY_free(pkey);
        return NULL;
    }
    return pkey;
}

/* Sets the padding of an RSA encrypt or decrypt context. */
static void
host_set_pad(EVP_PKEY_CTX *ctx, hsm_rsa_pad pad)
{
    switch (pad) {
    case HSM_RSA_PKCS1:
        assert_int_equal(EVP_PKEY_CTX_set_rsa_padding(ctx, RSA_PKCS1_PADDING), 1);
        break;
    case HSM_RSA_OAEP_SHA1:
        assert_int_equal(EVP_PKEY_CTX_set_rsa_padding(ctx, RSA_PKCS1_OAEP_PADDING), 1);
        assert_int_equal(EVP_PKEY_CTX_set_rsa_oaep_md(ctx, EVP_sha1()), 1);
        assert_int_equal(EVP_PKEY_CTX_set_rsa_mgf1_md(ctx, EVP_sha1()), 1);
        break;
    case HSM_RSA_OAEP_SHA256:
        assert_int_equal(EVP_PKEY_CTX_set_rsa_padding(ctx, RSA_PKCS1_OAEP_PADDING), 1);
        assert_int_equal(EVP_PKEY_CTX_set_rsa_oaep_md(ctx, EVP_sha256()), 1);
        assert_int_equal(EVP_PKEY_CTX_set_rsa_mgf1_md(ctx, EVP_sha256()), 1);
        break;
    default:
        fail_msg("no such padding %d", (int)pad);
    }
}

/* RSA-encrypts |len| bytes to the public key with |pad|, as a wallet does. */
static void
host_rsa_wrap(EVP_PKEY *pub, hsm_rsa_pad pad, const uint8_t *in, size_t len, uint8_t out[RSA_LEN])
{
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_pkey(NULL, pub, NULL);
    size_t out_len = RSA_LEN;

    assert_non_null(ctx);
    assert_int_equal(EVP_PKEY_encrypt_init(ctx), 1);
    host_set_pad(ctx, pad);
    assert_int_equal(EVP_PKEY_encrypt(ctx, out, &out_len, in, len), 1);
    assert_int_equal(out_len, RSA_LEN);
    EVP_PKEY_CTX_free(ctx);
}

/* AES-GCM-encrypts the content record under |key| (16 or 32 bytes). */
static void
host_gcm_encrypt(const uint8_t *key, size_t key_len, uint8_t out[CONTENT_CT_LEN])
{
    EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
    int n = 0, fin = 0;

    assert_non_null(ctx);
    assert_true(key_len == AES128_LEN || key_len == AES256_LEN);
    assert_int_equal(EVP_EncryptInit_ex(ctx, key_len == AES128_LEN ? EVP_aes_128_gcm()
                                                                   : EVP_aes_256_gcm(),
                                        NULL, NULL, NULL),
                     1);
    assert_int_equal(EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_SET_IVLEN, HSM_GCM_IV_LEN, NULL), 1);
    assert_int_equal(EVP_EncryptInit_ex(ctx, NULL, NULL, key, content_iv), 1);
    assert_int_equal(EVP_EncryptUpdate(ctx, NULL, &n, content_aad, (int)CONTENT_AAD_LEN), 1);
    assert_int_equal(EVP_EncryptUpdate(ctx, out, &n, content_pt, (int)CONTENT_PT_LEN), 1);
    assert_int_equal(EVP_EncryptFinal_ex(ctx, out + n, &fin), 1);
    assert_int_equal((size_t)(n + fin), CONTENT_PT_LEN);
    assert_int_equal(EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_GET_TAG, HSM_GCM_TAG_LEN,
                                         out + CONTENT_PT_LEN),
                     1);
    EVP_CIPHER_CTX_free(ctx);
}

/* An OAEP-SHA256 encoded block (EM) for |msg|: OpenSSL encrypts with OAEP and
 * undoes only the RSA step (RSA_NO_PADDING), which leaves the encoding. */
static void
host_oaep_sha256_em(const uint8_t *msg, size_t msg_len, uint8_t em[RSA_LEN])
{
    uint8_t ct[RSA_LEN];
    EVP_PKEY_CTX *ctx = NULL;
    size_t em_len = RSA_LEN;

    host_rsa_wrap(host_rsa, HSM_RSA_OAEP_SHA256, msg, msg_len, ct);
    ctx = EVP_PKEY_CTX_new_from_pkey(NULL, host_rsa, NULL);
    assert_non_null(ctx);
    assert_int_equal(EVP_PKEY_decrypt_init(ctx), 1);
    assert_int_equal(EVP_PKEY_CTX_set_rsa_padding(ctx, RSA_NO_PADDING), 1);
    assert_int_equal(EVP_PKEY_decrypt(ctx, em, &em_len, ct, sizeof(ct)), 1);
    assert_int_equal(em_len, RSA_LEN);
    EVP_PKEY_CTX_free(ctx);
    /* An OAEP block starts with a zero byte (RFC 8017 section 7.1.2 step 3g). */
    assert_int_equal(em[0], 0);
}

/* RFC 8017 section 7.1.1 step 2 with SHA-256, written out here so that blocks
 * of any length can be made (OpenSSL only encodes for a key it holds). Checked
 * against OpenSSL's decoder in test_oaep_host_encoder. */
static void
mgf1_sha256_xor(uint8_t *out, size_t out_len, const uint8_t *seed, size_t seed_len)
{
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    size_t done = 0;

    assert_non_null(md);
    for (uint32_t c = 0; done < out_len; c++) {
        uint8_t cnt[4] = { (uint8_t)(c >> 24), (uint8_t)(c >> 16), (uint8_t)(c >> 8), (uint8_t)c };
        uint8_t h[OAEP_SHA256_HLEN];
        unsigned int n = 0;

        assert_int_equal(EVP_DigestInit_ex(md, EVP_sha256(), NULL), 1);
        assert_int_equal(EVP_DigestUpdate(md, seed, seed_len), 1);
        assert_int_equal(EVP_DigestUpdate(md, cnt, sizeof(cnt)), 1);
        assert_int_equal(EVP_DigestFinal_ex(md, h, &n), 1);
        for (size_t i = 0; i < n && done < out_len; i++)
            out[done++] ^= h[i];
    }
    EVP_MD_CTX_free(md);
}

static void
host_oaep_sha256_encode(const uint8_t *msg, size_t msg_len, uint8_t *em, size_t k)
{
    const size_t hlen = OAEP_SHA256_HLEN, db_len = k - hlen - 1;
    uint8_t *seed = em + 1, *db = em + 1 + hlen;
    unsigned int n = 0;

    assert_true(k >= 2 * hlen + 2 && msg_len <= k - 2 * hlen - 2);
    memset(em, 0, k);
    /* DB = lHash || PS || 0x01 || M, lHash = SHA-256 of the empty label. */
    assert_int_equal(EVP_Digest("", 0, db, &n, EVP_sha256(), NULL), 1);
    db[db_len - msg_len - 1] = 0x01;
    memcpy(db + db_len - msg_len, msg, msg_len);
    assert_int_equal(RAND_bytes(seed, (int)hlen), 1);
    mgf1_sha256_xor(db, db_len, seed, hlen);   /* maskedDB */
    mgf1_sha256_xor(seed, hlen, db, db_len);   /* maskedSeed */
}

/* ---- checks on an unwrapped key ------------------------------------------- */

/* |obj| is a sensitive, non-extractable session object whose only usage is
 * |use|, and the token will not hand out its value. */
static void
assert_cek_attributes(hsm_obj obj, hsm_secret_use use)
{
    uint8_t value[AES256_LEN];
    CK_ATTRIBUTE a = { CKA_VALUE, value, sizeof(value) };
    int v = -1;

    assert_hsm(hsm__key_attr_bool(s, obj, CKA_TOKEN, &v), HSM_OK);
    assert_int_equal(v, 0);
    assert_hsm(hsm__key_attr_bool(s, obj, CKA_SENSITIVE, &v), HSM_OK);
    assert_int_equal(v, 1);
    assert_hsm(hsm__key_attr_bool(s, obj, CKA_EXTRACTABLE, &v), HSM_OK);
    assert_int_equal(v, 0);
    assert_hsm(hsm__key_attr_bool(s, obj, CKA_DECRYPT, &v), HSM_OK);
    assert_int_equal(v, use == HSM_USE_AES_GCM_DECRYPT);
    assert_hsm(hsm__key_attr_bool(s, obj, CKA_ENCRYPT, &v), HSM_OK);
    assert_int_equal(v, use == HSM_USE_AES_GCM_ENCRYPT);
    assert_hsm(hsm__key_attr_bool(s, obj, CKA_WRAP, &v), HSM_OK);
    assert_int_equal(v, 0);
    assert_hsm(hsm__key_attr_bool(s, obj, CKA_DERIVE, &v), HSM_OK);
    assert_int_equal(v, 0);
    assert_int_equal(s->h->p11->C_GetAttributeValue(s->handle, obj, &a, 1),
                     CKR_ATTRIBUTE_SENSITIVE);
}

/* |obj| is the AES key |key|: the token opens what OpenSSL sealed under
 * |key|, exactly, and refuses the same record with a flipped tag bit. */
static void
assert_cek_is(hsm_obj obj, const uint8_t *key, size_t key_len)
{
    uint8_t ct[CONTENT_CT_LEN], pt[CONTENT_CT_LEN];
    size_t pt_len = 0;

    host_gcm_encrypt(key, key_len, ct);
    assert_hsm(hsm_obj_gcm_decrypt(s, obj, content_aad, CONTENT_AAD_LEN, content_iv,
                                   sizeof(content_iv), ct, sizeof(ct), pt, sizeof(pt), &pt_len),
               HSM_OK);
    assert_int_equal(pt_len, CONTENT_PT_LEN);
    assert_memory_equal(pt, content_pt, CONTENT_PT_LEN);
    ct[CONTENT_CT_LEN - 1] ^= 0x01;
    assert_hsm(hsm_obj_gcm_decrypt(s, obj, content_aad, CONTENT_AAD_LEN, content_iv,
                                   sizeof(content_iv), ct, sizeof(ct), pt, sizeof(pt), &pt_len),
               HSM_ERR_VERIFY);
    OPENSSL_cleanse(pt, sizeof(pt));
}

/* Wraps a fresh random key of |key_len| bytes with |pad| to |pub|, unwraps it
 * with |key|, and checks the path, the attributes and the key itself. */
static void
unwrap_roundtrip(hsm_key *key, EVP_PKEY *pub, hsm_rsa_pad pad, size_t key_len, int want_path)
{
    uint8_t cek[AES256_LEN], wrapped[RSA_LEN];
    hsm_obj obj = HSM_OBJ_NONE;
    int path = PATH_UNTOUCHED;

    assert_int_equal(RAND_bytes(cek, (int)key_len), 1);
    host_rsa_wrap(pub, pad, cek, key_len, wrapped);
    assert_hsm(hsm_rsa_unwrap_aes(s, key, pad, wrapped, sizeof(wrapped), key_len,
                                  HSM_USE_AES_GCM_DECRYPT, &obj, &path),
               HSM_OK);
    assert_int_equal(path, want_path);
    assert_int_not_equal(obj, HSM_OBJ_NONE);
    assert_cek_attributes(obj, HSM_USE_AES_GCM_DECRYPT);
    assert_cek_is(obj, cek, key_len);
    hsm_obj_destroy(s, obj);
    OPENSSL_cleanse(cek, sizeof(cek));
}

/* Unwrapping |wrapped| fails with |want| and writes neither out-param. */
static void
assert_unwrap_fails(hsm_key *key, hsm_rsa_pad pad, const uint8_t *wrapped, size_t wrapped_len,
                    size_t key_len, hsm_secret_use use, int want)
{
    hsm_obj obj = OBJ_UNTOUCHED;
    int path = PATH_UNTOUCHED;

    assert_hsm(hsm_rsa_unwrap_aes(s, key, pad, wrapped, wrapped_len, key_len, use, &obj, &path),
               want);
    assert_int_equal(obj, OBJ_UNTOUCHED);
    assert_int_equal(path, PATH_UNTOUCHED);
}

/* ---- fixture ---------------------------------------------------------------- */

static int
setup(void **state)
{
    (void)state;
    if (tv_token_setup(&tok) != 0 || tv_token_open(&tok) != HSM_OK ||
        hsm_session_acquire(tok.h, &s) != HSM_OK ||
        hsm_key_generate(s, HSM_KIND_RSA_UNWRAP, "rsa-unwrap", &unwrap_key) != HSM_OK ||
        hsm_key_generate(s, HSM_KIND_RSA_DECRYPT, "rsa-decrypt", &decrypt_key) != HSM_OK ||
        hsm_key_generate(s, HSM_KIND_HMAC, "rsa-test-hmac", &hmac_key) != HSM_OK) {
        fprintf(stderr, "fixture: %s\n", hsm_last_detail());
        return -1;
    }
    unwrap_pub = public_of(unwrap_key);
    decrypt_pub = public_of(decrypt_key);
    host_rsa = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)RSA_BITS);
    if (unwrap_pub == NULL || decrypt_pub == NULL || host_rsa == NULL) {
        fprintf(stderr, "fixture: cannot load or make the RSA public keys\n");
        return -1;
    }
    return 0;
}

static int
teardown(void **state)
{
    (void)state;
    EVP_PKEY_free(unwrap_pub);
    EVP_PKEY_free(decrypt_pub);
    EVP_PKEY_free(host_rsa);
    hsm_session_release(s);
    tv_token_teardown(&tok);
    return 0;
}

/* ---- in the token ------------------------------------------------------------ */

/* The path hsm_rsa_unwrap_aes reports for OAEP-SHA256: 1 where the token
 * has it (NSS softokn), 2 where the host decodes (SoftHSM 2.6). */
static int
oaep256_path(void)
{
    return hsm_probe_get(tok.h)->rsa_oaep_sha256 == HSM_PATH_IN_TOKEN ? 1 : 2;
}

/* The host-decoding tests need a token without OAEP-SHA256 (SoftHSM, which
 * the suite runs too); on one that has it they have nothing to test. */
static void
skip_unless_host_decode(void)
{
    if (hsm_probe_get(tok.h)->rsa_oaep_sha256 != HSM_PATH_HOST_DECODE)
        skip();
}

static void
test_probe_paths(void **state)
{
    const hsm_probe *p = hsm_probe_get(tok.h);
    (void)state;

    /* SoftHSM 2.6 unwraps with PKCS#1 v1.5 and OAEP-SHA1 but refuses OAEP
     * with SHA-256 parameters, and has raw RSA: the host decodes. NSS
     * softokn unwraps with all three. */
    assert_int_equal(p->rsa_pkcs1, HSM_PATH_IN_TOKEN);
    assert_int_equal(p->rsa_oaep_sha1, HSM_PATH_IN_TOKEN);
    assert_int_equal(p->rsa_oaep_sha256, tok.nss ? HSM_PATH_IN_TOKEN : HSM_PATH_HOST_DECODE);
}

static void
test_unwrap_pkcs1(void **state)
{
    (void)state;
    unwrap_roundtrip(unwrap_key, unwrap_pub, HSM_RSA_PKCS1, AES128_LEN, 1);
    unwrap_roundtrip(unwrap_key, unwrap_pub, HSM_RSA_PKCS1, AES256_LEN, 1);
}

static void
test_unwrap_oaep_sha1(void **state)
{
    (void)state;
    unwrap_roundtrip(unwrap_key, unwrap_pub, HSM_RSA_OAEP_SHA1, AES128_LEN, 1);
    unwrap_roundtrip(unwrap_key, unwrap_pub, HSM_RSA_OAEP_SHA1, AES256_LEN, 1);
}

/* The decrypt key may unwrap too (its template allows both). */
static void
test_unwrap_oaep_sha1_decrypt_key(void **state)
{
    (void)state;
    unwrap_roundtrip(decrypt_key, decrypt_pub, HSM_RSA_OAEP_SHA1, AES128_LEN, 1);
}

/* An encrypt-use key unwrapped in the token seals what OpenSSL opens: the
 * same key, byte for byte (GCM is deterministic for a fixed IV). */
static void
test_unwrap_encrypt_use(void **state)
{
    uint8_t cek[AES128_LEN], wrapped[RSA_LEN], want[CONTENT_CT_LEN], got[CONTENT_CT_LEN];
    hsm_obj obj = HSM_OBJ_NONE;
    size_t got_len = 0;
    int path = PATH_UNTOUCHED;
    (void)state;

    for (int pad = HSM_RSA_OAEP_SHA1; pad <= HSM_RSA_OAEP_SHA256; pad++) {
        assert_int_equal(RAND_bytes(cek, sizeof(cek)), 1);
        host_rsa_wrap(decrypt_pub, (hsm_rsa_pad)pad, cek, sizeof(cek), wrapped);
        assert_hsm(hsm_rsa_unwrap_aes(s, decrypt_key, (hsm_rsa_pad)pad, wrapped, sizeof(wrapped),
                                      sizeof(cek), HSM_USE_AES_GCM_ENCRYPT, &obj, &path),
                   HSM_OK);
        assert_int_equal(path, pad == HSM_RSA_OAEP_SHA256 ? oaep256_path() : 1);
        assert_cek_attributes(obj, HSM_USE_AES_GCM_ENCRYPT);
        host_gcm_encrypt(cek, sizeof(cek), want);
        assert_hsm(hsm_obj_gcm_encrypt(s, obj, content_aad, CONTENT_AAD_LEN, content_iv,
                                       sizeof(content_iv), content_pt, CONTENT_PT_LEN, got,
                                       sizeof(got), &got_len),
                   HSM_OK);
        assert_int_equal(got_len, CONTENT_CT_LEN);
        assert_memory_equal(got, want, CONTENT_CT_LEN);
        hsm_obj_destroy(s, obj);
    }
    OPENSSL_cleanse(cek, sizeof(cek));
}

/* ---- OAEP-SHA256: raw RSA in the token, decoding on the host -------------- */

static void
test_unwrap_oaep_sha256_host_decode(void **state)
{
    (void)state;
    unwrap_roundtrip(decrypt_key, decrypt_pub, HSM_RSA_OAEP_SHA256, AES128_LEN, oaep256_path());
}

static void
test_unwrap_oaep_sha256_aes256(void **state)
{
    (void)state;
    unwrap_roundtrip(decrypt_key, decrypt_pub, HSM_RSA_OAEP_SHA256, AES256_LEN, oaep256_path());
}

/* An unwrap-only key cannot do the raw RSA the host decoding needs: refused
 * before the token is asked, whatever the block holds. */
static void
test_unwrap_oaep_sha256_unwrap_key_refused(void **state)
{
    uint8_t cek[AES128_LEN], wrapped[RSA_LEN];
    (void)state;

    skip_unless_host_decode();
    assert_int_equal(RAND_bytes(cek, sizeof(cek)), 1);
    host_rsa_wrap(unwrap_pub, HSM_RSA_OAEP_SHA256, cek, sizeof(cek), wrapped);
    assert_unwrap_fails(unwrap_key, HSM_RSA_OAEP_SHA256, wrapped, sizeof(wrapped), sizeof(cek),
                        HSM_USE_AES_GCM_DECRYPT, HSM_ERR_MECHANISM);
    OPENSSL_cleanse(cek, sizeof(cek));
}

/* ---- hostile inputs ------------------------------------------------------------ */

static void
test_oaep_sha1_tampered(void **state)
{
    uint8_t cek[AES128_LEN], wrapped[RSA_LEN];
    (void)state;

    assert_int_equal(RAND_bytes(cek, sizeof(cek)), 1);
    host_rsa_wrap(unwrap_pub, HSM_RSA_OAEP_SHA1, cek, sizeof(cek), wrapped);
    wrapped[RSA_LEN / 2] ^= 0x01;
    assert_unwrap_fails(unwrap_key, HSM_RSA_OAEP_SHA1, wrapped, sizeof(wrapped), sizeof(cek),
                        HSM_USE_AES_GCM_DECRYPT, HSM_ERR_VERIFY);
    /* The last byte too (the low end of the RSA integer). */
    wrapped[RSA_LEN / 2] ^= 0x01;
    wrapped[RSA_LEN - 1] ^= 0x80;
    assert_unwrap_fails(unwrap_key, HSM_RSA_OAEP_SHA1, wrapped, sizeof(wrapped), sizeof(cek),
                        HSM_USE_AES_GCM_DECRYPT, HSM_ERR_VERIFY);
    OPENSSL_cleanse(cek, sizeof(cek));
}

static void
test_oaep_sha256_tampered(void **state)
{
    uint8_t cek[AES128_LEN], wrapped[RSA_LEN];
    (void)state;

    assert_int_equal(RAND_bytes(cek, sizeof(cek)), 1);
    host_rsa_wrap(decrypt_pub, HSM_RSA_OAEP_SHA256, cek, sizeof(cek), wrapped);
    wrapped[RSA_LEN / 2] ^= 0x01;
    assert_unwrap_fails(decrypt_key, HSM_RSA_OAEP_SHA256, wrapped, sizeof(wrapped), sizeof(cek),
                        HSM_USE_AES_GCM_DECRYPT, HSM_ERR_VERIFY);
    /* A block wrapped with SHA-1 is no SHA-256 block. */
    host_rsa_wrap(decrypt_pub, HSM_RSA_OAEP_SHA1, cek, sizeof(cek), wrapped);
    assert_unwrap_fails(decrypt_key, HSM_RSA_OAEP_SHA256, wrapped, sizeof(wrapped), sizeof(cek),
                        HSM_USE_AES_GCM_DECRYPT, HSM_ERR_VERIFY);
    /* An all-0xff block is larger than the modulus: the raw RSA step fails. */
    memset(wrapped, 0xff, sizeof(wrapped));
    assert_unwrap_fails(decrypt_key, HSM_RSA_OAEP_SHA256, wrapped, sizeof(wrapped), sizeof(cek),
                        HSM_USE_AES_GCM_DECRYPT, HSM_ERR_VERIFY);
    OPENSSL_cleanse(cek, sizeof(cek));
}

/* A well-padded key of the wrong size is refused, not imported as AES-192. */
static void
test_oaep_sha256_wrong_key_length(void **state)
{
    uint8_t cek[AES256_LEN], wrapped[RSA_LEN];
    (void)state;

    assert_int_equal(RAND_bytes(cek, sizeof(cek)), 1);
    host_rsa_wrap(decrypt_pub, HSM_RSA_OAEP_SHA256, cek, AES192_LEN, wrapped);
    assert_unwrap_fails(decrypt_key, HSM_RSA_OAEP_SHA256, wrapped, sizeof(wrapped), AES128_LEN,
                        HSM_USE_AES_GCM_DECRYPT, HSM_ERR_VERIFY);
    /* A 32-byte key where 16 are expected, and the other way round. */
    host_rsa_wrap(decrypt_pub, HSM_RSA_OAEP_SHA256, cek, AES256_LEN, wrapped);
    assert_unwrap_fails(decrypt_key, HSM_RSA_OAEP_SHA256, wrapped, sizeof(wrapped), AES128_LEN,
                        HSM_USE_AES_GCM_DECRYPT, HSM_ERR_VERIFY);
    host_rsa_wrap(decrypt_pub, HSM_RSA_OAEP_SHA256, cek, AES128_LEN, wrapped);
    assert_unwrap_fails(decrypt_key, HSM_RSA_OAEP_SHA256, wrapped, sizeof(wrapped), AES256_LEN,
                        HSM_USE_AES_GCM_DECRYPT, HSM_ERR_VERIFY);
    OPENSSL_cleanse(cek, sizeof(cek));
}

/* RFC 7516 section 11.5: a PKCS#1 v1.5 padding failure must not show at the
 * unwrap (Bleichenbacher). It yields a random key, and the failure shows
 * only where any wrong key shows: at the content's tag check. */
static void
test_pkcs1_tampered_gives_random_key(void **state)
{
    uint8_t cek[AES128_LEN], wrapped[RSA_LEN], ct[CONTENT_CT_LEN], pt[CONTENT_CT_LEN];
    hsm_obj obj = HSM_OBJ_NONE;
    size_t pt_len = 0;
    int path = PATH_UNTOUCHED;
    (void)state;

    assert_int_equal(RAND_bytes(cek, sizeof(cek)), 1);
    host_rsa_wrap(unwrap_pub, HSM_RSA_PKCS1, cek, sizeof(cek), wrapped);
    host_gcm_encrypt(cek, sizeof(cek), ct);
    wrapped[RSA_LEN / 2] ^= 0x01;
    assert_hsm(hsm_rsa_unwrap_aes(s, unwrap_key, HSM_RSA_PKCS1, wrapped, sizeof(wrapped),
                                  sizeof(cek), HSM_USE_AES_GCM_DECRYPT, &obj, &path),
               HSM_OK);
    assert_int_equal(path, 1);
    assert_int_not_equal(obj, HSM_OBJ_NONE);
    /* The stand-in is as well guarded as a real content key. */
    assert_cek_attributes(obj, HSM_USE_AES_GCM_DECRYPT);
    assert_hsm(hsm_obj_gcm_decrypt(s, obj, content_aad, CONTENT_AAD_LEN, content_iv,
                                   sizeof(content_iv), ct, sizeof(ct), pt, sizeof(pt), &pt_len),
               HSM_ERR_VERIFY);
    hsm_obj_destroy(s, obj);
    OPENSSL_cleanse(cek, sizeof(cek));
}

static void
test_wrapped_length_bounds(void **state)
{
    uint8_t wrapped[RSA_BLOCK_MAX + 1];
    (void)state;

    memset(wrapped, 0x42, sizeof(wrapped));
    for (int pad = HSM_RSA_PKCS1; pad <= HSM_RSA_OAEP_SHA256; pad++) {
        hsm_key *key = pad == HSM_RSA_OAEP_SHA256 ? decrypt_key : unwrap_key;

        assert_unwrap_fails(key, (hsm_rsa_pad)pad, wrapped, RSA_BLOCK_MIN - 1, AES128_LEN,
                            HSM_USE_AES_GCM_DECRYPT, HSM_ERR_INPUT);
        assert_unwrap_fails(key, (hsm_rsa_pad)pad, wrapped, RSA_BLOCK_MAX + 1, AES128_LEN,
                            HSM_USE_AES_GCM_DECRYPT, HSM_ERR_INPUT);
        assert_unwrap_fails(key, (hsm_rsa_pad)pad, wrapped, 0, AES128_LEN,
                            HSM_USE_AES_GCM_DECRYPT, HSM_ERR_INPUT);
    }
}

static void
test_bad_arguments(void **state)
{
    uint8_t cek[AES128_LEN], wrapped[RSA_LEN];
    hsm_obj obj = OBJ_UNTOUCHED;
    (void)state;

    assert_int_equal(RAND_bytes(cek, sizeof(cek)), 1);
    host_rsa_wrap(unwrap_pub, HSM_RSA_OAEP_SHA1, cek, sizeof(cek), wrapped);
    /* AES keys of the vault are 16 or 32 bytes. */
    assert_unwrap_fails(unwrap_key, HSM_RSA_OAEP_SHA1, wrapped, sizeof(wrapped), KEY_LEN_NOT_AES,
                        HSM_USE_AES_GCM_DECRYPT, HSM_ERR_INVALID_ARG);
    assert_unwrap_fails(unwrap_key, HSM_RSA_OAEP_SHA1, wrapped, sizeof(wrapped), AES192_LEN,
                        HSM_USE_AES_GCM_DECRYPT, HSM_ERR_INVALID_ARG);
    assert_unwrap_fails(unwrap_key, HSM_RSA_OAEP_SHA1, wrapped, sizeof(wrapped), 0,
                        HSM_USE_AES_GCM_DECRYPT, HSM_ERR_INVALID_ARG);
    /* Only GCM uses. */
    assert_unwrap_fails(unwrap_key, HSM_RSA_OAEP_SHA1, wrapped, sizeof(wrapped), AES128_LEN,
                        HSM_USE_HMAC_VERIFY, HSM_ERR_INVALID_ARG);
    assert_unwrap_fails(unwrap_key, HSM_RSA_OAEP_SHA1, wrapped, sizeof(wrapped), AES128_LEN,
                        HSM_USE_AES_CTR_DECRYPT, HSM_ERR_INVALID_ARG);
    /* No such padding. */
    assert_unwrap_fails(unwrap_key, (hsm_rsa_pad)0, wrapped, sizeof(wrapped), AES128_LEN,
                        HSM_USE_AES_GCM_DECRYPT, HSM_ERR_INVALID_ARG);
    assert_unwrap_fails(unwrap_key, (hsm_rsa_pad)(HSM_RSA_OAEP_SHA256 + 1), wrapped,
                        sizeof(wrapped), AES128_LEN, HSM_USE_AES_GCM_DECRYPT,
                        HSM_ERR_INVALID_ARG);
    /* NULLs. */
    assert_unwrap_fails(unwrap_key, HSM_RSA_OAEP_SHA1, NULL, sizeof(wrapped), AES128_LEN,
                        HSM_USE_AES_GCM_DECRYPT, HSM_ERR_INVALID_ARG);
    assert_unwrap_fails(NULL, HSM_RSA_OAEP_SHA1, wrapped, sizeof(wrapped), AES128_LEN,
                        HSM_USE_AES_GCM_DECRYPT, HSM_ERR_INVALID_ARG);
    assert_hsm(hsm_rsa_unwrap_aes(NULL, unwrap_key, HSM_RSA_OAEP_SHA1, wrapped, sizeof(wrapped),
                                  AES128_LEN, HSM_USE_AES_GCM_DECRYPT, &obj, NULL),
               HSM_ERR_INVALID_ARG);
    assert_hsm(hsm_rsa_unwrap_aes(s, unwrap_key, HSM_RSA_OAEP_SHA1, wrapped, sizeof(wrapped),
                                  AES128_LEN, HSM_USE_AES_GCM_DECRYPT, NULL, NULL),
               HSM_ERR_INVALID_ARG);
    assert_int_equal(obj, OBJ_UNTOUCHED);
    /* |out_path| may be NULL. */
    assert_hsm(hsm_rsa_unwrap_aes(s, unwrap_key, HSM_RSA_OAEP_SHA1, wrapped, sizeof(wrapped),
                                  AES128_LEN, HSM_USE_AES_GCM_DECRYPT, &obj, NULL),
               HSM_OK);
    assert_cek_is(obj, cek, sizeof(cek));
    hsm_obj_destroy(s, obj);
    OPENSSL_cleanse(cek, sizeof(cek));
}

/* Only the two RSA kinds unwrap; an HMAC key is refused before the token is
 * asked, for every padding. */
static void
test_wrong_key_kind(void **state)
{
    uint8_t wrapped[RSA_LEN];
    (void)state;

    memset(wrapped, 0x42, sizeof(wrapped));
    for (int pad = HSM_RSA_PKCS1; pad <= HSM_RSA_OAEP_SHA256; pad++)
        assert_unwrap_fails(hmac_key, (hsm_rsa_pad)pad, wrapped, sizeof(wrapped), AES128_LEN,
                            HSM_USE_AES_GCM_DECRYPT, HSM_ERR_KEY_TYPE);
}

/* ---- hsm_oaep_sha256_decode ------------------------------------------------------ */

static const uint8_t oaep_msg[] = "content-key-0123456789abcdef!"; /* 29 bytes */
#define OAEP_MSG_LEN (sizeof(oaep_msg) - 1)
#define OUT_LEN_UNTOUCHED ((size_t)0xdeadbeef)

/* Decoding |em| fails with HSM_ERR_VERIFY and leaves |out_len| alone. */
static void
assert_decode_fails(const uint8_t *em, size_t em_len, size_t cap)
{
    uint8_t out[RSA_BLOCK_MAX];
    size_t out_len = OUT_LEN_UNTOUCHED;

    assert_true(cap <= sizeof(out));
    ERR_clear_error();
    assert_hsm(hsm_oaep_sha256_decode(em, em_len, out, cap, &out_len), HSM_ERR_VERIFY);
    assert_int_equal(out_len, OUT_LEN_UNTOUCHED);
    /* No stale error is left on the thread's OpenSSL queue. */
    assert_int_equal(ERR_peek_error(), 0);
}

/* |em| decodes to oaep_msg: the block a failure test starts from is good. */
static void
assert_decodes(const uint8_t em[RSA_LEN])
{
    uint8_t out[RSA_LEN];
    size_t out_len = OUT_LEN_UNTOUCHED;

    assert_hsm(hsm_oaep_sha256_decode(em, RSA_LEN, out, sizeof(out), &out_len), HSM_OK);
    assert_int_equal(out_len, OAEP_MSG_LEN);
    assert_memory_equal(out, oaep_msg, OAEP_MSG_LEN);
}

static void
test_oaep_decode_valid(void **state)
{
    uint8_t em[RSA_LEN], out[RSA_LEN];
    size_t out_len = OUT_LEN_UNTOUCHED;
    (void)state;

    host_oaep_sha256_em(oaep_msg, OAEP_MSG_LEN, em);
    assert_hsm(hsm_oaep_sha256_decode(em, sizeof(em), out, sizeof(out), &out_len), HSM_OK);
    assert_int_equal(out_len, OAEP_MSG_LEN);
    assert_memory_equal(out, oaep_msg, OAEP_MSG_LEN);
    /* A buffer of exactly the message length is enough. */
    memset(out, 0, sizeof(out));
    out_len = OUT_LEN_UNTOUCHED;
    assert_hsm(hsm_oaep_sha256_decode(em, sizeof(em), out, OAEP_MSG_LEN, &out_len), HSM_OK);
    assert_int_equal(out_len, OAEP_MSG_LEN);
    assert_memory_equal(out, oaep_msg, OAEP_MSG_LEN);
}

/* The longest message RSA-2048 OAEP-SHA256 carries, k - 2hLen - 2 bytes, and
 * the empty one. */
static void
test_oaep_decode_extremes(void **state)
{
    uint8_t msg[RSA_LEN - 2 * OAEP_SHA256_HLEN - 2], em[RSA_LEN], out[RSA_LEN];
    size_t out_len = OUT_LEN_UNTOUCHED;
    (void)state;

    assert_int_equal(RAND_bytes(msg, sizeof(msg)), 1);
    host_oaep_sha256_em(msg, sizeof(msg), em);
    assert_hsm(hsm_oaep_sha256_decode(em, sizeof(em), out, sizeof(out), &out_len), HSM_OK);
    assert_int_equal(out_len, sizeof(msg));
    assert_memory_equal(out, msg, sizeof(msg));

    host_oaep_sha256_em(msg, 0, em);
    out_len = OUT_LEN_UNTOUCHED;
    assert_hsm(hsm_oaep_sha256_decode(em, sizeof(em), out, sizeof(out), &out_len), HSM_OK);
    assert_int_equal(out_len, 0);
}

static void
test_oaep_decode_first_byte(void **state)
{
    uint8_t em[RSA_LEN];
    (void)state;

    host_oaep_sha256_em(oaep_msg, OAEP_MSG_LEN, em);
    assert_decodes(em);
    em[0] = 0x01;
    assert_decode_fails(em, sizeof(em), RSA_LEN);
    em[0] = 0x80;
    assert_decode_fails(em, sizeof(em), RSA_LEN);
}

static void
test_oaep_decode_masked_seed(void **state)
{
    uint8_t em[RSA_LEN];
    (void)state;

    host_oaep_sha256_em(oaep_msg, OAEP_MSG_LEN, em);
    assert_decodes(em);
    em[OAEP_SEED_OFF] ^= 0x01;
    assert_decode_fails(em, sizeof(em), RSA_LEN);
    em[OAEP_SEED_OFF] ^= 0x01;
    em[OAEP_SEED_OFF + OAEP_SHA256_HLEN - 1] ^= 0x80;
    assert_decode_fails(em, sizeof(em), RSA_LEN);
}

/* The masked DB: its label hash (right after the seed), the 0x01 separator
 * and the message itself. The seed mask is MGF1 of the whole masked DB, so
 * any change there garbles the seed and with it the label hash check: OAEP
 * is all or nothing. */
static void
test_oaep_decode_masked_db(void **state)
{
    static const size_t where[] = { OAEP_SEED_OFF + OAEP_SHA256_HLEN,  /* lHash */
                                    RSA_LEN - OAEP_MSG_LEN - 1,        /* separator */
                                    RSA_LEN - 1 };                     /* message */
    uint8_t em[RSA_LEN];
    (void)state;

    host_oaep_sha256_em(oaep_msg, OAEP_MSG_LEN, em);
    assert_decodes(em);
    for (size_t i = 0; i < sizeof(where) / sizeof(where[0]); i++) {
        em[where[i]] ^= 0x01;
        assert_decode_fails(em, sizeof(em), RSA_LEN);
        em[where[i]] ^= 0x01;
    }
}

/* The host encoder agrees with OpenSSL: its block, raw-RSA-encrypted, is
 * what OpenSSL's OAEP-SHA256 decryption opens. */
static void
test_oaep_host_encoder(void **state)
{
    uint8_t em[RSA_LEN], ct[RSA_LEN], out[RSA_LEN];
    size_t ct_len = sizeof(ct), out_len = sizeof(out);
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_pkey(NULL, host_rsa, NULL);
    (void)state;

    assert_non_null(ctx);
    host_oaep_sha256_encode(oaep_msg, OAEP_MSG_LEN, em, sizeof(em));
    assert_int_equal(EVP_PKEY_encrypt_init(ctx), 1);
    assert_int_equal(EVP_PKEY_CTX_set_rsa_padding(ctx, RSA_NO_PADDING), 1);
    assert_int_equal(EVP_PKEY_encrypt(ctx, ct, &ct_len, em, sizeof(em)), 1);
    assert_int_equal(EVP_PKEY_decrypt_init(ctx), 1);
    host_set_pad(ctx, HSM_RSA_OAEP_SHA256);
    assert_int_equal(EVP_PKEY_decrypt(ctx, out, &out_len, ct, ct_len), 1);
    assert_int_equal(out_len, OAEP_MSG_LEN);
    assert_memory_equal(out, oaep_msg, OAEP_MSG_LEN);
    EVP_PKEY_CTX_free(ctx);
    assert_decodes(em);
}

/* Only RSA-2048 .. RSA-4096 blocks: a well-formed encoding of any other
 * length is refused, and both ends of the range are accepted. */
static void
test_oaep_decode_lengths(void **state)
{
    static const size_t refused[] = { 100, RSA_BLOCK_MIN - 1, RSA_BLOCK_MAX + 1 };
    static const size_t accepted[] = { RSA_BLOCK_MIN, 384, RSA_BLOCK_MAX };
    uint8_t em[RSA_BLOCK_MAX + 1], out[RSA_BLOCK_MAX];
    (void)state;

    for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++) {
        host_oaep_sha256_encode(oaep_msg, OAEP_MSG_LEN, em, refused[i]);
        assert_decode_fails(em, refused[i], sizeof(out));
    }
    for (size_t i = 0; i < sizeof(accepted) / sizeof(accepted[0]); i++) {
        size_t out_len = OUT_LEN_UNTOUCHED;

        host_oaep_sha256_encode(oaep_msg, OAEP_MSG_LEN, em, accepted[i]);
        assert_hsm(hsm_oaep_sha256_decode(em, accepted[i], out, sizeof(out), &out_len), HSM_OK);
        assert_int_equal(out_len, OAEP_MSG_LEN);
        assert_memory_equal(out, oaep_msg, OAEP_MSG_LEN);
    }
    assert_decode_fails(em, 0, sizeof(out));

    /* A 2048-bit block read as a longer one is no longer valid. */
    memset(em, 0, sizeof(em));
    host_oaep_sha256_em(oaep_msg, OAEP_MSG_LEN, em);
    assert_decodes(em);
    assert_decode_fails(em, RSA_LEN + 1, RSA_LEN);
    /* A buffer one byte short of the message. */
    assert_decode_fails(em, RSA_LEN, OAEP_MSG_LEN - 1);
    assert_decode_fails(em, RSA_LEN, 0);
}

static void
test_oaep_decode_null(void **state)
{
    uint8_t em[RSA_LEN], out[RSA_LEN];
    size_t out_len = OUT_LEN_UNTOUCHED;
    (void)state;

    host_oaep_sha256_em(oaep_msg, OAEP_MSG_LEN, em);
    assert_hsm(hsm_oaep_sha256_decode(NULL, sizeof(em), out, sizeof(out), &out_len),
               HSM_ERR_INVALID_ARG);
    assert_hsm(hsm_oaep_sha256_decode(em, sizeof(em), NULL, sizeof(out), &out_len),
               HSM_ERR_INVALID_ARG);
    assert_hsm(hsm_oaep_sha256_decode(em, sizeof(em), out, sizeof(out), NULL),
               HSM_ERR_INVALID_ARG);
    assert_int_equal(out_len, OUT_LEN_UNTOUCHED);
}

/* ---- attributes of the RSA keys ------------------------------------------------- */

static void
test_unwrap_key_attributes(void **state)
{
    hsm_key_info info;
    CK_MECHANISM mechs[] = { { CKM_RSA_PKCS, NULL, 0 }, { CKM_RSA_X_509, NULL, 0 } };
    CK_OBJECT_HANDLE k = CK_INVALID_HANDLE;
    (void)state;

    memset(&info, 0, sizeof(info));
    assert_hsm(hsm_key_info_get(s, unwrap_key, &info), HSM_OK);
    assert_int_equal(info.kind, HSM_KIND_RSA_UNWRAP);
    assert_string_equal(info.type, "RSA-2048");
    assert_int_equal(info.decrypt, 0);
    assert_int_equal(info.unwrap, 1);
    assert_int_equal(info.sign, 0);
    assert_int_equal(info.derive, 0);
    assert_int_equal(info.sensitive, 1);
    /* Extractable only under an SO-made trusted key (the backup ceremony). */
    assert_int_equal(info.wrap_with_trusted, 1);

    memset(&info, 0, sizeof(info));
    assert_hsm(hsm_key_info_get(s, decrypt_key, &info), HSM_OK);
    assert_int_equal(info.kind, HSM_KIND_RSA_DECRYPT);
    assert_int_equal(info.decrypt, 1);
    assert_int_equal(info.sensitive, 1);
    assert_int_equal(info.wrap_with_trusted, 1);

    /* White-box: the token itself refuses to decrypt with the unwrap key, so
     * an unwrapped content key can never come out as plaintext. */
    assert_hsm(hsm__key_handle(s, unwrap_key, &k), HSM_OK);
    for (size_t i = 0; i < sizeof(mechs) / sizeof(mechs[0]); i++) {
        CK_RV rv = s->h->p11->C_DecryptInit(s->handle, &mechs[i], k);

        print_message("C_DecryptInit(%s) with the unwrap key: %s\n",
                      i == 0 ? "CKM_RSA_PKCS" : "CKM_RSA_X_509", hsm__ckr_name(rv));
        if (rv == CKR_OK) {
            s->broken = true; /* an operation is active: do not pool this session */
            fail_msg("the RSA_UNWRAP key decrypts");
        }
        assert_true(rv == CKR_KEY_FUNCTION_NOT_PERMITTED || rv == CKR_KEY_TYPE_INCONSISTENT ||
                    rv == CKR_MECHANISM_INVALID);
    }
}

/* RSA public keys for verification (Apple Pay RSA_v1 leaves): the token
 * checks a host-made sha256WithRSAEncryption signature. */
static void
test_rsa_public_verify(void **state)
{
    uint8_t digest[32], sig[RSA_LEN], spki[HSM_SPKI_MAX], *p = spki;
    size_t sig_len = sizeof(sig);
    int spki_len = i2d_PUBKEY(host_rsa, NULL);
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new(host_rsa, NULL);
    EVP_PKEY *ec = EVP_EC_gen("P-256"), *small = EVP_RSA_gen(1024);
    hsm_obj pub = HSM_OBJ_NONE, bad = HSM_OBJ_NONE;
    (void)state;

    assert_true(spki_len > 0 && spki_len <= (int)sizeof(spki));
    assert_int_equal(i2d_PUBKEY(host_rsa, &p), spki_len);
    memset(digest, 0x5a, sizeof(digest));
    assert_int_equal(EVP_PKEY_sign_init(ctx), 1);
    assert_int_equal(EVP_PKEY_CTX_set_rsa_padding(ctx, RSA_PKCS1_PADDING), 1);
    assert_int_equal(EVP_PKEY_CTX_set_signature_md(ctx, EVP_sha256()), 1);
    assert_int_equal(EVP_PKEY_sign(ctx, sig, &sig_len, digest, sizeof(digest)), 1);
    assert_hsm(hsm_rsa_public_import(s, spki, (size_t)spki_len, &pub), HSM_OK);
    assert_hsm(hsm_rsa_sha256_verify(s, pub, digest, sig, sig_len), HSM_OK);
    /* Another digest, a flipped signature bit, a short signature. */
    digest[0] ^= 1;
    assert_hsm(hsm_rsa_sha256_verify(s, pub, digest, sig, sig_len), HSM_ERR_VERIFY);
    digest[0] ^= 1;
    sig[sig_len - 1] ^= 1;
    assert_hsm(hsm_rsa_sha256_verify(s, pub, digest, sig, sig_len), HSM_ERR_VERIFY);
    assert_hsm(hsm_rsa_sha256_verify(s, pub, digest, sig, 100), HSM_ERR_INPUT);
    hsm_obj_destroy(s, pub);
    /* Not RSA, too small, not DER. */
    p = spki;
    spki_len = i2d_PUBKEY(ec, &p);
    assert_hsm(hsm_rsa_public_import(s, spki, (size_t)spki_len, &bad), HSM_ERR_INPUT);
    p = spki;
    spki_len = i2d_PUBKEY(small, &p);
    assert_hsm(hsm_rsa_public_import(s, spki, (size_t)spki_len, &bad), HSM_ERR_INPUT);
    assert_hsm(hsm_rsa_public_import(s, spki, 10, &bad), HSM_ERR_INPUT);
    assert_int_equal(bad, HSM_OBJ_NONE);
    EVP_PKEY_free(small);
    EVP_PKEY_free(ec);
    EVP_PKEY_CTX_free(ctx);
}

/* ---- importing an existing RSA key (hsm_rsa_private_import) ------------------ */

/* Sizes an import must refuse: the wallet keys are RSA-2048 only. */
#define RSA_BITS_SMALL 1024
#define RSA_BITS_LARGE 3072
/* A public exponent other than 65537 (F4). */
#define RSA_E_SMALL 3

/* An RSA key made on the host with OpenSSL, as another processor made it. */
static EVP_PKEY *
host_rsa_key(unsigned bits, unsigned e)
{
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(NULL, "RSA", NULL);
    BIGNUM *bn_e = BN_new();
    EVP_PKEY *pk = NULL;

    assert_non_null(ctx);
    assert_non_null(bn_e);
    assert_int_equal(BN_set_word(bn_e, e), 1);
    assert_int_equal(EVP_PKEY_keygen_init(ctx), 1);
    assert_int_equal(EVP_PKEY_CTX_set_rsa_keygen_bits(ctx, (int)bits), 1);
    assert_int_equal(EVP_PKEY_CTX_set1_rsa_keygen_pubexp(ctx, bn_e), 1);
    assert_int_equal(EVP_PKEY_keygen(ctx, &pk), 1);
    BN_free(bn_e);
    EVP_PKEY_CTX_free(ctx);
    return pk;
}

/* The key's DER, PKCS#8 or the type's own (PKCS#1, SEC1): OpenSSL-allocated,
 * freed with OPENSSL_clear_free. */
static unsigned char *
host_key_der(EVP_PKEY *pk, int pkcs8, size_t *out_len)
{
    unsigned char *der = NULL;
    int n;

    if (pkcs8) {
        PKCS8_PRIV_KEY_INFO *p8 = EVP_PKEY2PKCS8(pk);

        assert_non_null(p8);
        n = i2d_PKCS8_PRIV_KEY_INFO(p8, &der);
        PKCS8_PRIV_KEY_INFO_free(p8);
    } else {
        n = i2d_PrivateKey(pk, &der);
    }
    assert_true(n > 0);
    *out_len = (size_t)n;
    return der;
}

/* The token's public half of |key| is exactly the host key's. */
static void
assert_same_public(hsm_key *key, EVP_PKEY *host)
{
    uint8_t spki[HSM_SPKI_MAX];
    unsigned char *want = NULL;
    size_t spki_len = 0;
    int want_len = i2d_PUBKEY(host, &want);

    assert_true(want_len > 0);
    assert_hsm(hsm_key_public_spki(s, key, spki, sizeof(spki), &spki_len), HSM_OK);
    assert_int_equal(spki_len, (size_t)want_len);
    assert_memory_equal(spki, want, spki_len);
    OPENSSL_free(want);
}

/* |imported| has every storage and usage attribute of |generated|, a key of
 * the same kind made in the token, except the one the token sets itself:
 * an imported value was not always sensitive. Its secret cannot be read,
 * and no key a user can make wraps it out. */
static void
assert_imported_like_generated(hsm_key *imported, hsm_key *generated)
{
    static const CK_MECHANISM m_kwp = { CKM_AES_KEY_WRAP_PAD, NULL, 0 };
    uint8_t v[RSA_LEN + 16], buf[HSM_BACKUP_WRAPPED_MAX];
    CK_ATTRIBUTE a = { CKA_PRIVATE_EXPONENT, v, sizeof(v) };
    CK_ULONG n = sizeof(buf);
    CK_OBJECT_HANDLE k = CK_INVALID_HANDLE, kek = CK_INVALID_HANDLE;
    hsm_key_info gi, ii;
    hsm_key *user_kek = NULL;

    assert_hsm(hsm_key_info_get(s, generated, &gi), HSM_OK);
    assert_hsm(hsm_key_info_get(s, imported, &ii), HSM_OK);
    assert_int_equal(ii.kind, gi.kind);
    assert_string_equal(ii.type, "RSA-2048");
    assert_string_equal(ii.kcv_method, gi.kcv_method);
    assert_int_equal(ii.token, 1);
    assert_int_equal(ii.private_, 1);
    assert_int_equal(ii.sensitive, 1);
    /* Extractable only under an SO-made trusted key, as generated keys. */
    assert_int_equal(ii.extractable, gi.extractable);
    assert_int_equal(ii.wrap_with_trusted, 1);
    assert_int_equal(ii.never_extractable, tok.nss ? 0 : gi.never_extractable);
    assert_int_equal(ii.modifiable, 0);
    assert_int_equal(ii.copyable, gi.copyable);
    assert_int_equal(ii.encrypt, gi.encrypt);
    assert_int_equal(ii.decrypt, gi.decrypt);
    assert_int_equal(ii.sign, 0);
    assert_int_equal(ii.verify, gi.verify);
    assert_int_equal(ii.wrap, gi.wrap);
    assert_int_equal(ii.unwrap, 1);
    assert_int_equal(ii.derive, 0);
    assert_int_equal(gi.always_sensitive, 1);
    assert_int_equal(ii.always_sensitive, 0);

    assert_hsm(hsm__key_handle(s, imported, &k), HSM_OK);
    assert_int_equal(s->h->p11->C_GetAttributeValue(s->handle, k, &a, 1), CKR_ATTRIBUTE_SENSITIVE);
    if (hsm_key_find(s, "imp-user-kek", &user_kek) != HSM_OK)
        assert_hsm(hsm_key_generate(s, HSM_KIND_KEK, "imp-user-kek", &user_kek), HSM_OK);
    assert_hsm(hsm__key_handle(s, user_kek, &kek), HSM_OK);
    /* SoftHSM: extractable only under a trusted key. NSS softokn 3.87 wraps
     * it out under any user key although it is CKA_EXTRACTABLE=FALSE
     * (measured here, and why docs/OPERATIONS.md says never to keep real
     * keys in it): the test pins that fact so a change is seen. */
    assert_int_equal(s->h->p11->C_WrapKey(s->handle, (CK_MECHANISM_PTR)&m_kwp, kek, k, buf, &n),
                     tok.nss ? CKR_OK : CKR_KEY_NOT_WRAPPABLE);
}

/* Samsung Pay: a key made elsewhere, imported as an unwrap key, unwraps
 * what OpenSSL wrapped to its public key (JWE RSA1_5 and RSA-OAEP). */
static void
test_import_unwrap(void **state)
{
    EVP_PKEY *host = host_rsa_key(RSA_BITS, RSA_F4);
    size_t der_len = 0;
    unsigned char *der = host_key_der(host, 1, &der_len);
    hsm_key *key = NULL, *again = KEY_UNTOUCHED;
    uint8_t id[HSM_LABEL_MAX];
    CK_ATTRIBUTE a = { CKA_ID, id, sizeof(id) };
    (void)state;

    assert_hsm(hsm_rsa_private_import(s, HSM_KIND_RSA_UNWRAP, "imp-unwrap", der, der_len, &key),
               HSM_OK);
    assert_non_null(key);
    assert_string_equal(hsm_key_label(key), "imp-unwrap");
    assert_same_public(key, host);
    unwrap_roundtrip(key, host, HSM_RSA_PKCS1, AES128_LEN, 1);
    unwrap_roundtrip(key, host, HSM_RSA_PKCS1, AES256_LEN, 1);
    unwrap_roundtrip(key, host, HSM_RSA_OAEP_SHA1, AES256_LEN, 1);
    assert_imported_like_generated(key, unwrap_key);
    /* CKA_ID is the label, as for generated keys (certificates link by it). */
    assert_int_equal(s->h->p11->C_GetAttributeValue(s->handle, key->handle, &a, 1), CKR_OK);
    assert_int_equal(a.ulValueLen, strlen("imp-unwrap"));
    assert_memory_equal(id, "imp-unwrap", a.ulValueLen);
    /* Found again by label, and once only. */
    assert_hsm(hsm_key_find(s, "imp-unwrap", &again), HSM_OK);
    assert_ptr_equal(again, key);
    again = KEY_UNTOUCHED;
    assert_hsm(hsm_rsa_private_import(s, HSM_KIND_RSA_UNWRAP, "imp-unwrap", der, der_len, &again),
               HSM_ERR_EXISTS);
    assert_ptr_equal(again, KEY_UNTOUCHED);
    OPENSSL_clear_free(der, der_len);
    EVP_PKEY_free(host);
}

/* Apple Pay RSA_v1 on SoftHSM: the decrypt kind, from PKCS#1 DER, on the
 * host-decoding OAEP-SHA256 path and in the token for OAEP-SHA1. */
static void
test_import_decrypt(void **state)
{
    EVP_PKEY *host = host_rsa_key(RSA_BITS, RSA_F4);
    size_t der_len = 0;
    unsigned char *der = host_key_der(host, 0, &der_len);
    hsm_key *key = NULL;
    (void)state;

    assert_hsm(hsm_rsa_private_import(s, HSM_KIND_RSA_DECRYPT, "imp-decrypt", der, der_len, &key),
               HSM_OK);
    assert_same_public(key, host);
    unwrap_roundtrip(key, host, HSM_RSA_OAEP_SHA256, AES128_LEN, oaep256_path());
    unwrap_roundtrip(key, host, HSM_RSA_OAEP_SHA256, AES256_LEN, oaep256_path());
    unwrap_roundtrip(key, host, HSM_RSA_OAEP_SHA1, AES128_LEN, 1);
    unwrap_roundtrip(key, host, HSM_RSA_PKCS1, AES128_LEN, 1);
    assert_imported_like_generated(key, decrypt_key);
    OPENSSL_clear_free(der, der_len);
    EVP_PKEY_free(host);
}

/* A 2048-bit key whose private half belongs to another modulus: parses,
 * has the right size, and must still be refused. */
static EVP_PKEY *
host_rsa_mismatched(void)
{
    static const char *const priv[] = {
        OSSL_PKEY_PARAM_RSA_D, OSSL_PKEY_PARAM_RSA_FACTOR1, OSSL_PKEY_PARAM_RSA_FACTOR2,
        OSSL_PKEY_PARAM_RSA_EXPONENT1, OSSL_PKEY_PARAM_RSA_EXPONENT2,
        OSSL_PKEY_PARAM_RSA_COEFFICIENT1,
    };
    EVP_PKEY *a = host_rsa_key(RSA_BITS, RSA_F4), *b = host_rsa_key(RSA_BITS, RSA_F4), *out = NULL;
    OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(NULL, "RSA", NULL);
    BIGNUM *bn[8] = { NULL };
    OSSL_PARAM *params = NULL;

    assert_non_null(bld);
    assert_true(EVP_PKEY_get_bn_param(a, OSSL_PKEY_PARAM_RSA_N, &bn[0]));
    assert_true(EVP_PKEY_get_bn_param(a, OSSL_PKEY_PARAM_RSA_E, &bn[1]));
    assert_true(OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, bn[0]));
    assert_true(OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, bn[1]));
    for (size_t i = 0; i < sizeof(priv) / sizeof(priv[0]); i++) {
        assert_true(EVP_PKEY_get_bn_param(b, priv[i], &bn[i + 2]));
        assert_true(OSSL_PARAM_BLD_push_BN(bld, priv[i], bn[i + 2]));
    }
    assert_non_null(params = OSSL_PARAM_BLD_to_param(bld));
    assert_int_equal(EVP_PKEY_fromdata_init(ctx), 1);
    assert_int_equal(EVP_PKEY_fromdata(ctx, &out, EVP_PKEY_KEYPAIR, params), 1);
    for (size_t i = 0; i < 8; i++)
        BN_clear_free(bn[i]);
    OSSL_PARAM_free(params);
    OSSL_PARAM_BLD_free(bld);
    EVP_PKEY_CTX_free(ctx);
    EVP_PKEY_free(a);
    EVP_PKEY_free(b);
    return out;
}

/* Importing |der| as |kind| fails with |want|, leaves *out alone, and
 * leaves nothing on the token under the label. */
static void
assert_import_fails(hsm_key_kind kind, const char *label, const uint8_t *der, size_t der_len,
                    int want, const char *detail)
{
    hsm_key *key = KEY_UNTOUCHED;

    assert_hsm(hsm_rsa_private_import(s, kind, label, der, der_len, &key), want);
    assert_ptr_equal(key, KEY_UNTOUCHED);
    if (detail != NULL && strstr(hsm_last_detail(), detail) == NULL)
        fail_msg("detail '%s' does not say '%s'", hsm_last_detail(), detail);
    if (want != HSM_ERR_EXISTS && want != HSM_ERR_INVALID_ARG)
        assert_hsm(hsm_label_check_free(s, label), HSM_OK);
}

static void
test_import_refused(void **state)
{
    EVP_PKEY *small = host_rsa_key(RSA_BITS_SMALL, RSA_F4);
    EVP_PKEY *large = host_rsa_key(RSA_BITS_LARGE, RSA_F4);
    EVP_PKEY *e3 = host_rsa_key(RSA_BITS, RSA_E_SMALL), *ec = EVP_EC_gen("P-256");
    EVP_PKEY *good = host_rsa_key(RSA_BITS, RSA_F4), *mixed = host_rsa_mismatched();
    size_t n_small = 0, n_large = 0, n_e3 = 0, n_ec = 0, n_good = 0, n_mixed = 0;
    unsigned char *d_small = host_key_der(small, 1, &n_small);
    unsigned char *d_large = host_key_der(large, 0, &n_large);
    unsigned char *d_e3 = host_key_der(e3, 1, &n_e3), *d_ec = host_key_der(ec, 1, &n_ec);
    unsigned char *d_good = host_key_der(good, 1, &n_good);
    unsigned char *d_mixed = host_key_der(mixed, 0, &n_mixed);
    uint8_t *longer = malloc(HSM_PRIVKEY_DER_MAX + 1), junk[64];
    (void)state;

    assert_non_null(longer);
    /* The wrong size, with the exact error, in both encodings. */
    assert_import_fails(HSM_KIND_RSA_UNWRAP, "imp-1024", d_small, n_small, HSM_ERR_INPUT,
                        "RSA key of 1024 bits");
    assert_import_fails(HSM_KIND_RSA_DECRYPT, "imp-3072", d_large, n_large, HSM_ERR_INPUT,
                        "RSA key of 3072 bits");
    assert_import_fails(HSM_KIND_RSA_UNWRAP, "imp-e3", d_e3, n_e3, HSM_ERR_INPUT, "65537");
    assert_import_fails(HSM_KIND_RSA_UNWRAP, "imp-ec", d_ec, n_ec, HSM_ERR_INPUT, "not a DER RSA");
    assert_import_fails(HSM_KIND_RSA_UNWRAP, "imp-mixed", d_mixed, n_mixed, HSM_ERR_INPUT,
                        "do not agree");
    /* Bytes after the key, a cut key, noise, nothing, too much. */
    memcpy(longer, d_good, n_good);
    longer[n_good] = 0x00;
    assert_import_fails(HSM_KIND_RSA_UNWRAP, "imp-trail", longer, n_good + 1, HSM_ERR_INPUT, NULL);
    assert_import_fails(HSM_KIND_RSA_UNWRAP, "imp-cut", d_good, n_good - 1, HSM_ERR_INPUT, NULL);
    memset(junk, 0x30, sizeof(junk));
    assert_import_fails(HSM_KIND_RSA_UNWRAP, "imp-junk", junk, sizeof(junk), HSM_ERR_INPUT, NULL);
    assert_import_fails(HSM_KIND_RSA_UNWRAP, "imp-empty", d_good, 0, HSM_ERR_INPUT, NULL);
    memset(longer, 0x30, HSM_PRIVKEY_DER_MAX + 1);
    assert_import_fails(HSM_KIND_RSA_UNWRAP, "imp-long", longer, HSM_PRIVKEY_DER_MAX + 1,
                        HSM_ERR_INPUT, NULL);
    /* Kinds that are no imported RSA wallet key, a bad label, a taken one. */
    assert_import_fails(HSM_KIND_EC_DERIVE, "imp-kind-1", d_good, n_good, HSM_ERR_INVALID_ARG,
                        NULL);
    assert_import_fails(HSM_KIND_RSA_UNWRAP_SIGN, "imp-kind-2", d_good, n_good,
                        HSM_ERR_INVALID_ARG, NULL);
    assert_import_fails(HSM_KIND_KEK, "imp-kind-3", d_good, n_good, HSM_ERR_INVALID_ARG, NULL);
    assert_import_fails(HSM_KIND_RSA_UNWRAP, "bad label", d_good, n_good, HSM_ERR_INVALID_ARG,
                        NULL);
    assert_import_fails(HSM_KIND_RSA_UNWRAP, "rsa-unwrap", d_good, n_good, HSM_ERR_EXISTS, NULL);
    assert_import_fails(HSM_KIND_RSA_UNWRAP, "imp-null", NULL, n_good, HSM_ERR_INVALID_ARG, NULL);
    assert_hsm(hsm_rsa_private_import(NULL, HSM_KIND_RSA_UNWRAP, "imp-null", d_good, n_good, NULL),
               HSM_ERR_INVALID_ARG);
    /* None of them left an object; the good key still imports afterwards. */
    for (const char *const *l = (const char *const[]){ "imp-kind-1", "imp-kind-2", "imp-kind-3",
                                                        "imp-null", NULL };
         *l != NULL; l++)
        assert_hsm(hsm_label_check_free(s, *l), HSM_OK);
    {
        hsm_key *key = NULL;

        assert_hsm(hsm_rsa_private_import(s, HSM_KIND_RSA_UNWRAP, "imp-after", d_good, n_good,
                                          &key),
                   HSM_OK);
        assert_same_public(key, good);
    }
    free(longer);
    OPENSSL_clear_free(d_small, n_small);
    OPENSSL_clear_free(d_large, n_large);
    OPENSSL_clear_free(d_e3, n_e3);
    OPENSSL_clear_free(d_ec, n_ec);
    OPENSSL_clear_free(d_good, n_good);
    OPENSSL_clear_free(d_mixed, n_mixed);
    EVP_PKEY_free(small);
    EVP_PKEY_free(large);
    EVP_PKEY_free(e3);
    EVP_PKEY_free(ec);
    EVP_PKEY_free(good);
    EVP_PKEY_free(mixed);
}

/* An import is taken back whole (private and public objects), for a
 * ceremony that fails after it; a generated key never is. */
static void
test_import_undo(void **state)
{
    EVP_PKEY *host = host_rsa_key(RSA_BITS, RSA_F4), *ec = EVP_EC_gen("P-256");
    size_t der_len = 0, ec_len = 0;
    unsigned char *der = host_key_der(host, 1, &der_len), *ec_der = host_key_der(ec, 1, &ec_len);
    hsm_key *key = NULL, *found = KEY_UNTOUCHED;
    (void)state;

    for (int round = 0; round < 2; round++) {
        assert_hsm(hsm_rsa_private_import(s, HSM_KIND_RSA_DECRYPT, "imp-undo", der, der_len, &key),
                   HSM_OK);
        assert_hsm(hsm_label_check_free(s, "imp-undo"), HSM_ERR_EXISTS);
        assert_hsm(hsm_key_import_undo(s, key), HSM_OK);
        assert_hsm(hsm_key_find(s, "imp-undo", &found), HSM_ERR_KEY_NOT_FOUND);
        assert_ptr_equal(found, KEY_UNTOUCHED);
        /* The public half went too: the label is free for the next try. */
        assert_hsm(hsm_label_check_free(s, "imp-undo"), HSM_OK);
    }
    /* The EC import is taken back the same way. */
    assert_hsm(hsm_ec_private_import(s, "imp-undo-ec", ec_der, ec_len, &key), HSM_OK);
    assert_hsm(hsm_key_import_undo(s, key), HSM_OK);
    assert_hsm(hsm_label_check_free(s, "imp-undo-ec"), HSM_OK);
    /* Keys the token generated, and other kinds, are left alone. */
    assert_hsm(hsm_key_import_undo(s, unwrap_key), HSM_ERR_KEY_TYPE);
    assert_hsm(hsm_key_import_undo(s, decrypt_key), HSM_ERR_KEY_TYPE);
    assert_hsm(hsm_key_import_undo(s, hmac_key), HSM_ERR_KEY_TYPE);
    assert_hsm(hsm_key_import_undo(s, NULL), HSM_ERR_INVALID_ARG);
    assert_hsm(hsm_key_find(s, "rsa-unwrap", &found), HSM_OK);
    assert_hsm(hsm_key_find(s, "rsa-decrypt", &found), HSM_OK);
    OPENSSL_clear_free(der, der_len);
    OPENSSL_clear_free(ec_der, ec_len);
    EVP_PKEY_free(host);
    EVP_PKEY_free(ec);
}

/* The backup ceremony takes an imported key like a generated one: wrapped
 * under the SO-made trusted transport key, restored, and the copy unwraps
 * what was wrapped to the original's public key. Last: it logs the SO in
 * and out, which renews every handle. */
static void
test_import_backup(void **state)
{
    static const uint8_t tkey[HSM_TRANSPORT_KEY_LEN] = "0123456789abcdef0123456789abcdef";
    EVP_PKEY *host = NULL;
    size_t der_len = 0, wl = 0, sl = 0;
    unsigned char *der = NULL;
    uint8_t wrapped[HSM_BACKUP_WRAPPED_MAX], spki[HSM_SPKI_MAX];
    hsm_obj tw = HSM_OBJ_NONE, tu = HSM_OBJ_NONE;
    hsm_pin_source *so_pin = NULL;
    hsm_key *key = NULL, *copy = NULL;
    char path[400];
    (void)state;

    /* A clone needs the SO to make a trusted key; NSS softokn has no SO. */
    if (tok.nss)
        skip();
    host = host_rsa_key(RSA_BITS, RSA_F4);
    der = host_key_der(host, 1, &der_len);

    snprintf(path, sizeof(path), "%s/so-pin", tok.dir);
    assert_int_equal(tv_write_file(path, TV_TEST_SO_PIN "\n", 0600), 0);
    assert_hsm(hsm_pin_source_file(&so_pin, path), HSM_OK);
    assert_hsm(hsm_rsa_private_import(s, HSM_KIND_RSA_UNWRAP, "imp-backup", der, der_len, &key),
               HSM_OK);
    assert_hsm(hsm_transport_key_trusted(s, so_pin, tkey, &tw), HSM_OK);
    assert_hsm(hsm_transport_key_import(s, tkey, &tu), HSM_OK);
    assert_hsm(hsm_key_backup_wrap(s, tw, key, wrapped, sizeof(wrapped), &wl), HSM_OK);
    assert_hsm(hsm_key_public_spki(s, key, spki, sizeof(spki), &sl), HSM_OK);
    assert_hsm(hsm_key_restore(s, tu, HSM_KIND_RSA_UNWRAP, "imp-backup-copy", wrapped, wl, spki, sl,
                               &copy),
               HSM_OK);
    assert_same_public(copy, host);
    unwrap_roundtrip(copy, host, HSM_RSA_PKCS1, AES128_LEN, 1);
    hsm_obj_destroy(s, tw);
    hsm_obj_destroy(s, tu);
    hsm_pin_source_free(so_pin);
    OPENSSL_clear_free(der, der_len);
    EVP_PKEY_free(host);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_probe_paths),
        cmocka_unit_test(test_unwrap_pkcs1),
        cmocka_unit_test(test_unwrap_oaep_sha1),
        cmocka_unit_test(test_unwrap_oaep_sha1_decrypt_key),
        cmocka_unit_test(test_unwrap_encrypt_use),
        cmocka_unit_test(test_unwrap_oaep_sha256_host_decode),
        cmocka_unit_test(test_unwrap_oaep_sha256_aes256),
        cmocka_unit_test(test_unwrap_oaep_sha256_unwrap_key_refused),
        cmocka_unit_test(test_oaep_sha1_tampered),
        cmocka_unit_test(test_oaep_sha256_tampered),
        cmocka_unit_test(test_oaep_sha256_wrong_key_length),
        cmocka_unit_test(test_pkcs1_tampered_gives_random_key),
        cmocka_unit_test(test_wrapped_length_bounds),
        cmocka_unit_test(test_bad_arguments),
        cmocka_unit_test(test_wrong_key_kind),
        cmocka_unit_test(test_oaep_decode_valid),
        cmocka_unit_test(test_oaep_decode_extremes),
        cmocka_unit_test(test_oaep_decode_first_byte),
        cmocka_unit_test(test_oaep_decode_masked_seed),
        cmocka_unit_test(test_oaep_decode_masked_db),
        cmocka_unit_test(test_oaep_host_encoder),
        cmocka_unit_test(test_oaep_decode_lengths),
        cmocka_unit_test(test_oaep_decode_null),
        cmocka_unit_test(test_unwrap_key_attributes),
        cmocka_unit_test(test_rsa_public_verify),
        cmocka_unit_test(test_import_unwrap),
        cmocka_unit_test(test_import_decrypt),
        cmocka_unit_test(test_import_refused),
        cmocka_unit_test(test_import_undo),
        cmocka_unit_test(test_import_backup),
    };

    return cmocka_run_group_tests(tests, setup, teardown);
}
