/*
 * test_ops_sym.c - RNG, HMAC, AES-GCM, AES-CTR and DEK wrapping against
 * published vectors, and every way a caller or an attacker can get them wrong.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "hsm/hsm.h"
#include "tests/support/token.h"

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

static void
test_random(void **state)
{
    uint8_t a[32] = { 0 }, b[32] = { 0 }, zero[32] = { 0 };
    (void)state;

    assert_int_equal(hsm_random(s, a, sizeof(a)), HSM_OK);
    assert_int_equal(hsm_random(s, b, sizeof(b)), HSM_OK);
    assert_memory_not_equal(a, zero, sizeof(a));
    assert_memory_not_equal(a, b, sizeof(a));
    assert_int_equal(hsm_random(s, a, 0), HSM_ERR_INVALID_ARG);
    assert_int_equal(hsm_random(s, a, HSM_RANDOM_MAX + 1), HSM_ERR_INVALID_ARG);
    assert_int_equal(hsm_random(s, NULL, 4), HSM_ERR_INVALID_ARG);
}

/* RFC 4231 test case 6: a 131-byte key (SoftHSM refuses HMAC keys under 32
 * bytes, which rules out cases 1-5). */
static void
test_hmac_rfc4231_case6(void **state)
{
    static const char msg[] = "Test Using Larger Than Block-Size Key - Hash Key First";
    size_t want_len = 0;
    uint8_t *want = tv_hex("60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54",
                           &want_len);
    uint8_t key[131], mac[32];
    hsm_obj sign = HSM_OBJ_NONE, verify = HSM_OBJ_NONE;
    (void)state;

    memset(key, 0xaa, sizeof(key));
    assert_int_equal(hsm_secret_import(s, HSM_USE_HMAC_SIGN, key, sizeof(key), &sign), HSM_OK);
    assert_int_equal(hsm_secret_import(s, HSM_USE_HMAC_VERIFY, key, sizeof(key), &verify), HSM_OK);
    assert_int_equal(hsm_obj_hmac_sign(s, sign, (const uint8_t *)msg, strlen(msg), mac), HSM_OK);
    assert_memory_equal(mac, want, 32);
    assert_int_equal(hsm_obj_hmac_verify(s, verify, (const uint8_t *)msg, strlen(msg), want, 32), HSM_OK);
    want[31] ^= 1;
    assert_int_equal(hsm_obj_hmac_verify(s, verify, (const uint8_t *)msg, strlen(msg), want, 32),
                     HSM_ERR_VERIFY);
    /* A truncated MAC is a failed check, not a shorter comparison. */
    assert_int_equal(hsm_obj_hmac_verify(s, verify, (const uint8_t *)msg, strlen(msg), mac, 16),
                     HSM_ERR_VERIFY);
    /* A verifying key may sign too (the verify recomputes the MAC when a
     * token's failure code cannot be believed, NSS softokn's); a signing
     * key may not verify. */
    assert_int_equal(hsm_obj_hmac_sign(s, verify, (const uint8_t *)msg, strlen(msg), mac), HSM_OK);
    assert_int_equal(hsm_obj_hmac_verify(s, sign, (const uint8_t *)msg, strlen(msg), mac, 32),
                     HSM_ERR_KEY_TYPE);
    /* Too short for the token, too long for us. */
    assert_int_equal(hsm_secret_import(s, HSM_USE_HMAC_SIGN, key, 16, &sign), HSM_ERR_INPUT);
    assert_int_equal(hsm_secret_import(s, HSM_USE_HMAC_SIGN, key, HSM_SECRET_MAX + 1, &sign),
                     HSM_ERR_INPUT);
    hsm_obj_destroy(s, sign);
    hsm_obj_destroy(s, verify);
    free(want);
}

static void
test_hmac_long_term_key(void **state)
{
    hsm_key *fpk = NULL, *kek = NULL;
    uint8_t mac1[32], mac2[32], mac3[32];
    static const uint8_t pan_a[] = "4111111111111111", pan_b[] = "4111111111111112";
    (void)state;

    assert_int_equal(hsm_key_generate(s, HSM_KIND_HMAC, "sym-fpk", &fpk), HSM_OK);
    assert_int_equal(hsm_hmac_sign(s, fpk, pan_a, 16, mac1), HSM_OK);
    assert_int_equal(hsm_hmac_sign(s, fpk, pan_a, 16, mac2), HSM_OK);
    assert_int_equal(hsm_hmac_sign(s, fpk, pan_b, 16, mac3), HSM_OK);
    assert_memory_equal(mac1, mac2, 32);        /* deterministic: dedup works */
    assert_memory_not_equal(mac1, mac3, 32);
    assert_int_equal(hsm_hmac_verify(s, fpk, pan_a, 16, mac1, 32), HSM_OK);
    assert_int_equal(hsm_hmac_verify(s, fpk, pan_b, 16, mac1, 32), HSM_ERR_VERIFY);
    assert_int_equal(hsm_hmac_verify(s, fpk, pan_a, 16, mac1, 31), HSM_ERR_VERIFY);
    /* A KEK is not an HMAC key: refused before the token is asked. */
    assert_int_equal(hsm_key_generate(s, HSM_KIND_KEK, "sym-kek", &kek), HSM_OK);
    assert_int_equal(hsm_hmac_sign(s, kek, pan_a, 16, mac1), HSM_ERR_KEY_TYPE);
}

/* The GCM specification (McGrew & Viega), test case 16: AES-256, 96-bit IV,
 * 20 bytes of AAD, 60 bytes of plaintext. */
#define GCM16_KEY "feffe9928665731c6d6a8f9467308308feffe9928665731c6d6a8f9467308308"
#define GCM16_IV "cafebabefacedbaddecaf888"
#define GCM16_AAD "feedfacedeadbeeffeedfacedeadbeefabaddad2"
#define GCM16_PT "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a72" \
                 "1c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b39"
#define GCM16_CT "522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa" \
                 "8cb08e48590dbb3da7b08b1056828838c5f61e6393ba7a0abcc9f662"
#define GCM16_TAG "76fc6ece0f4e1768cddf8853bb2d551b"

static void
test_gcm_known_answer(void **state)
{
    size_t key_len, iv_len, aad_len, pt_len, ct_len, tag_len, n = 0;
    uint8_t *key = tv_hex(GCM16_KEY, &key_len), *iv = tv_hex(GCM16_IV, &iv_len);
    uint8_t *aad = tv_hex(GCM16_AAD, &aad_len), *pt = tv_hex(GCM16_PT, &pt_len);
    uint8_t *ct = tv_hex(GCM16_CT, &ct_len), *tag = tv_hex(GCM16_TAG, &tag_len);
    uint8_t out[128], ct_tag[128];
    hsm_obj enc = HSM_OBJ_NONE, dec = HSM_OBJ_NONE;
    (void)state;

    memcpy(ct_tag, ct, ct_len);
    memcpy(ct_tag + ct_len, tag, tag_len);
    assert_int_equal(hsm_secret_import(s, HSM_USE_AES_GCM_ENCRYPT, key, key_len, &enc), HSM_OK);
    assert_int_equal(hsm_secret_import(s, HSM_USE_AES_GCM_DECRYPT, key, key_len, &dec), HSM_OK);
    assert_int_equal(hsm_obj_gcm_encrypt(s, enc, aad, aad_len, iv, iv_len, pt, pt_len, out,
                                         sizeof(out), &n),
                     HSM_OK);
    assert_int_equal(n, ct_len + tag_len);
    assert_memory_equal(out, ct_tag, n);
    assert_int_equal(hsm_obj_gcm_decrypt(s, dec, aad, aad_len, iv, iv_len, ct_tag, ct_len + tag_len,
                                         out, sizeof(out), &n),
                     HSM_OK);
    assert_int_equal(n, pt_len);
    assert_memory_equal(out, pt, pt_len);

    /* Tampered tag, tampered ciphertext, other AAD, other IV, truncation. */
    ct_tag[ct_len + 3] ^= 1;
    assert_int_equal(hsm_obj_gcm_decrypt(s, dec, aad, aad_len, iv, iv_len, ct_tag, ct_len + tag_len,
                                         out, sizeof(out), &n),
                     HSM_ERR_VERIFY);
    ct_tag[ct_len + 3] ^= 1;
    ct_tag[0] ^= 0x80;
    assert_int_equal(hsm_obj_gcm_decrypt(s, dec, aad, aad_len, iv, iv_len, ct_tag, ct_len + tag_len,
                                         out, sizeof(out), &n),
                     HSM_ERR_VERIFY);
    ct_tag[0] ^= 0x80;
    assert_int_equal(hsm_obj_gcm_decrypt(s, dec, aad, aad_len - 1, iv, iv_len, ct_tag,
                                         ct_len + tag_len, out, sizeof(out), &n),
                     HSM_ERR_VERIFY);
    iv[0] ^= 1;
    assert_int_equal(hsm_obj_gcm_decrypt(s, dec, aad, aad_len, iv, iv_len, ct_tag, ct_len + tag_len,
                                         out, sizeof(out), &n),
                     HSM_ERR_VERIFY);
    iv[0] ^= 1;
    assert_int_equal(hsm_obj_gcm_decrypt(s, dec, aad, aad_len, iv, iv_len, ct_tag, ct_len + tag_len - 1,
                                         out, sizeof(out), &n),
                     HSM_ERR_VERIFY);
    assert_int_equal(hsm_obj_gcm_decrypt(s, dec, aad, aad_len, iv, iv_len, ct_tag, 15, out,
                                         sizeof(out), &n),
                     HSM_ERR_VERIFY);
    /* Output buffer too small is the caller's error, reported as such. */
    assert_int_equal(hsm_obj_gcm_decrypt(s, dec, aad, aad_len, iv, iv_len, ct_tag, ct_len + tag_len,
                                         out, pt_len - 1, &n),
                     HSM_ERR_BUFFER);
    /* A buffer of exactly the plaintext's length is enough (SoftHSM wants
     * room for the tag too; the layer hides that), and the session works
     * after it. */
    memset(out, 0, sizeof(out));
    assert_int_equal(hsm_obj_gcm_decrypt(s, dec, aad, aad_len, iv, iv_len, ct_tag, ct_len + tag_len,
                                         out, pt_len, &n),
                     HSM_OK);
    assert_int_equal(n, pt_len);
    assert_memory_equal(out, pt, pt_len);
    /* The decrypt-only key cannot encrypt. */
    assert_int_equal(hsm_obj_gcm_encrypt(s, dec, aad, aad_len, iv, iv_len, pt, pt_len, out,
                                         sizeof(out), &n),
                     HSM_ERR_KEY_TYPE);
    /* And the session still works after all those failures. */
    assert_int_equal(hsm_obj_gcm_decrypt(s, dec, aad, aad_len, iv, iv_len, ct_tag, ct_len + tag_len,
                                         out, sizeof(out), &n),
                     HSM_OK);
    assert_int_equal(hsm_secret_import(s, HSM_USE_AES_GCM_DECRYPT, key, 20, &dec), HSM_ERR_INPUT);
    hsm_obj_destroy(s, enc);
    hsm_obj_destroy(s, dec);
    free(key), free(iv), free(aad), free(pt), free(ct), free(tag);
}

/* NIST SP 800-38A F.5.5, CTR-AES256.Decrypt, first block. */
static void
test_ctr_known_answer(void **state)
{
    size_t kl, cl, pl, il;
    uint8_t *key = tv_hex("603deb1015ca71be2b73aef0857d77811f352c073b6108d72d9810a30914dff4", &kl);
    uint8_t *iv = tv_hex("f0f1f2f3f4f5f6f7f8f9fafbfcfdfeff", &il);
    uint8_t *ct = tv_hex("601ec313775789a5b7a7f504bbf3d228", &cl);
    uint8_t *pt = tv_hex("6bc1bee22e409f96e93d7e117393172a", &pl);
    uint8_t out[16];
    hsm_obj k = HSM_OBJ_NONE;
    (void)state;

    assert_int_equal(hsm_secret_import(s, HSM_USE_AES_CTR_DECRYPT, key, kl, &k), HSM_OK);
    assert_int_equal(hsm_obj_ctr_decrypt(s, k, iv, ct, cl, out, sizeof(out)), HSM_OK);
    assert_memory_equal(out, pt, pl);
    assert_int_equal(hsm_obj_ctr_decrypt(s, k, iv, ct, cl, out, cl - 1), HSM_ERR_BUFFER);
    /* A CTR key is not a GCM key: CKA_ALLOWED_MECHANISMS says so. NSS
     * softokn takes the attribute and does not enforce it: GCM runs and the
     * tag fails. */
    {
        size_t n = 0;
        uint8_t iv12[12] = { 0 }, buf[32] = { 0 };
        assert_int_equal(hsm_obj_gcm_decrypt(s, k, NULL, 0, iv12, 12, buf, 32, out, 16, &n),
                         tok.nss ? HSM_ERR_VERIFY : HSM_ERR_MECHANISM);
    }
    hsm_obj_destroy(s, k);
    free(key), free(iv), free(ct), free(pt);
}

static void
test_dek_wrap_unwrap(void **state)
{
    hsm_key *kek = NULL, *kek2 = NULL, *dek = NULL, *fpk = NULL;
    uint8_t wrapped[HSM_WRAPPED_DEK_LEN], kcv[HSM_KCV_LEN], wrapped2[HSM_WRAPPED_DEK_LEN],
        kcv2[HSM_KCV_LEN];
    static const uint8_t pan[] = "5353756319181169", aad[] = "card|merchant-1|tok_1|v1";
    uint8_t iv[HSM_GCM_IV_LEN], iv2[HSM_GCM_IV_LEN], ct[64], ct2[64], pt[64];
    size_t ct_len = 0, ct2_len = 0, pt_len = 0;
    hsm_key_info info;
    (void)state;

    /* The vault's DEKs carry a CKA_CHECK_VALUE (PKCS#11 3.0), which NSS
     * softokn 3.87 does not have: the card-data keys run on SoftHSM and on
     * production HSMs; NSS is the wallet derivations' second module. */
    if (tok.nss)
        skip();

    assert_int_equal(hsm_key_generate(s, HSM_KIND_KEK, "dek-kek-v1", &kek), HSM_OK);
    assert_int_equal(hsm_key_generate(s, HSM_KIND_KEK, "dek-kek-other", &kek2), HSM_OK);
    assert_hsm(hsm_dek_generate(s, kek, wrapped, kcv), HSM_OK);
    assert_hsm(hsm_dek_generate(s, kek, wrapped2, kcv2), HSM_OK);
    assert_memory_not_equal(wrapped, wrapped2, sizeof(wrapped)); /* fresh key each time */
    assert_int_equal(hsm_dek_load(s, kek, "dek-v1", wrapped, sizeof(wrapped), kcv, &dek), HSM_OK);
    assert_int_equal(hsm_key_info_get(s, dek, &info), HSM_OK);
    assert_memory_equal(info.kcv, kcv, HSM_KCV_LEN);
    assert_int_equal(info.sensitive, 1);
    assert_int_equal(info.extractable, 0);
    assert_int_equal(info.token, 0);

    /* Records: random IV each time, AAD binds the ciphertext to its place. */
    assert_int_equal(hsm_gcm_encrypt(s, dek, aad, sizeof(aad) - 1, pan, 16, iv, ct, sizeof(ct), &ct_len),
                     HSM_OK);
    assert_int_equal(hsm_gcm_encrypt(s, dek, aad, sizeof(aad) - 1, pan, 16, iv2, ct2, sizeof(ct2),
                                     &ct2_len),
                     HSM_OK);
    assert_int_equal(ct_len, 16 + HSM_GCM_TAG_LEN);
    assert_memory_not_equal(iv, iv2, sizeof(iv));
    assert_memory_not_equal(ct, ct2, ct_len);
    assert_int_equal(hsm_gcm_decrypt(s, dek, aad, sizeof(aad) - 1, iv, sizeof(iv), ct, ct_len, pt,
                                     sizeof(pt), &pt_len),
                     HSM_OK);
    assert_int_equal(pt_len, 16);
    assert_memory_equal(pt, pan, 16);
    /* Moved to another record (other AAD): refused. */
    assert_int_equal(hsm_gcm_decrypt(s, dek, aad, sizeof(aad) - 2, iv, sizeof(iv), ct, ct_len, pt,
                                     sizeof(pt), &pt_len),
                     HSM_ERR_VERIFY);
    assert_int_equal(hsm_gcm_encrypt(s, dek, aad, 4, pan, 16, iv, ct, 16, &ct_len), HSM_ERR_BUFFER);

    /* The wrong KEK, a tampered blob, a short blob, a wrong KCV: refused. */
    assert_int_equal(hsm_dek_load(s, kek2, "dek-x", wrapped, sizeof(wrapped), kcv, &dek),
                     HSM_ERR_VERIFY);
    wrapped[5] ^= 1;
    assert_int_equal(hsm_dek_load(s, kek, "dek-x", wrapped, sizeof(wrapped), kcv, &dek),
                     HSM_ERR_VERIFY);
    wrapped[5] ^= 1;
    assert_int_equal(hsm_dek_load(s, kek, "dek-x", wrapped, sizeof(wrapped) - 8, kcv, &dek),
                     HSM_ERR_INVALID_ARG);
    /* Only a KEK unwraps, only a DEK encrypts records. */
    assert_int_equal(hsm_key_generate(s, HSM_KIND_HMAC, "dek-fpk", &fpk), HSM_OK);
    assert_int_equal(hsm_dek_load(s, fpk, "dek-x", wrapped, sizeof(wrapped), kcv, &dek),
                     HSM_ERR_KEY_TYPE);
    assert_int_equal(hsm_dek_generate(s, fpk, wrapped, kcv), HSM_ERR_KEY_TYPE);
    assert_int_equal(hsm_gcm_encrypt(s, kek, aad, 4, pan, 16, iv, ct, sizeof(ct), &ct_len),
                     HSM_ERR_KEY_TYPE);
}

/* The session tag keys: HMAC keys generated in the token, kept wrapped under
 * the KEK and used as session objects, like the DEKs. */
static void
test_wrapped_hmac(void **state)
{
    hsm_key *kek = NULL, *a = NULL, *a2 = NULL, *b = NULL, *none = NULL;
    uint8_t wa[HSM_WRAPPED_KEY_LEN], ka[HSM_KCV_LEN], wb[HSM_WRAPPED_KEY_LEN], kb[HSM_KCV_LEN];
    static const uint8_t msg[] = "tokenvault/session/v1|nonce|m-1|12345|EUR";
    uint8_t mac[HSM_HMAC_SHA256_LEN], mac2[HSM_HMAC_SHA256_LEN], macb[HSM_HMAC_SHA256_LEN];
    uint8_t iv[HSM_GCM_IV_LEN], ct[64];
    size_t ct_len = 0;
    hsm_key_info info;
    (void)state;

    if (tok.nss)
        skip(); /* no CKA_CHECK_VALUE, as for the DEKs above */
    assert_hsm(hsm_key_generate(s, HSM_KIND_KEK, "stk-kek-v1", &kek), HSM_OK);
    assert_hsm(hsm_wrapped_generate(s, kek, HSM_KIND_HMAC, wa, ka), HSM_OK);
    assert_hsm(hsm_wrapped_generate(s, kek, HSM_KIND_HMAC, wb, kb), HSM_OK);
    assert_memory_not_equal(wa, wb, sizeof(wa));
    assert_hsm(hsm_wrapped_load(s, kek, HSM_KIND_HMAC, "stk-a", wa, sizeof(wa), ka, &a), HSM_OK);
    assert_hsm(hsm_wrapped_load(s, kek, HSM_KIND_HMAC, "stk-a2", wa, sizeof(wa), ka, &a2), HSM_OK);
    assert_hsm(hsm_wrapped_load(s, kek, HSM_KIND_HMAC, "stk-b", wb, sizeof(wb), kb, &b), HSM_OK);

    /* A sensitive, non-extractable session object with its generation KCV. */
    assert_hsm(hsm_key_info_get(s, a, &info), HSM_OK);
    assert_int_equal(info.kind, HSM_KIND_HMAC);
    assert_string_equal(info.type, "GENERIC-SECRET-256");
    assert_memory_equal(info.kcv, ka, HSM_KCV_LEN);
    assert_int_equal(info.token, 0);
    assert_int_equal(info.sensitive, 1);
    assert_int_equal(info.extractable, 0);
    assert_int_equal(info.sign, 1);
    assert_int_equal(info.verify, 1);
    assert_int_equal(info.encrypt, 0);
    assert_int_equal(info.wrap, 0);

    /* One blob is one key: the same MAC from both loads, another from the
     * other key; verified in the token, a flipped bit refused. */
    assert_hsm(hsm_hmac_sign(s, a, msg, sizeof(msg) - 1, mac), HSM_OK);
    assert_hsm(hsm_hmac_sign(s, a2, msg, sizeof(msg) - 1, mac2), HSM_OK);
    assert_hsm(hsm_hmac_sign(s, b, msg, sizeof(msg) - 1, macb), HSM_OK);
    assert_memory_equal(mac, mac2, sizeof(mac));
    assert_memory_not_equal(mac, macb, sizeof(mac));
    assert_hsm(hsm_hmac_verify(s, a2, msg, sizeof(msg) - 1, mac, sizeof(mac)), HSM_OK);
    assert_hsm(hsm_hmac_verify(s, b, msg, sizeof(msg) - 1, mac, sizeof(mac)), HSM_ERR_VERIFY);
    mac[31] ^= 1;
    assert_hsm(hsm_hmac_verify(s, a, msg, sizeof(msg) - 1, mac, sizeof(mac)), HSM_ERR_VERIFY);

    /* It MACs and does nothing else; only the two wrapped kinds exist; a
     * tampered blob does not unwrap. */
    assert_hsm(hsm_gcm_encrypt(s, a, msg, 4, msg, 16, iv, ct, sizeof(ct), &ct_len),
               HSM_ERR_KEY_TYPE);
    assert_hsm(hsm_wrapped_generate(s, kek, HSM_KIND_KEK, wa, ka), HSM_ERR_INVALID_ARG);
    assert_hsm(hsm_wrapped_load(s, kek, HSM_KIND_EC_SIGN, "stk-x", wa, sizeof(wa), ka, &none),
               HSM_ERR_INVALID_ARG);
    wa[7] ^= 1;
    assert_hsm(hsm_wrapped_load(s, kek, HSM_KIND_HMAC, "stk-x", wa, sizeof(wa), ka, &none),
               HSM_ERR_VERIFY);
    assert_null(none);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_random),
        cmocka_unit_test(test_hmac_rfc4231_case6),
        cmocka_unit_test(test_hmac_long_term_key),
        cmocka_unit_test(test_gcm_known_answer),
        cmocka_unit_test(test_ctr_known_answer),
        cmocka_unit_test(test_dek_wrap_unwrap),
        cmocka_unit_test(test_wrapped_hmac),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
