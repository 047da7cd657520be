/*
 * kdf.c - the two wallet key derivations over an ECDH secret Z, by the two
 * paths a token may allow (hsm.h, hsm_apple_kdf_key and
 * hsm_hkdf_sha256_keys):
 *   in the token   chains of C_DeriveKey (CONCATENATE, SHA256_KEY_DERIVATION,
 *                  HKDF_DERIVE, EXTRACT_KEY_FROM_KEY) whose every
 *                  intermediate and final key is a sensitive, non-extractable
 *                  session object; no key value reaches the host;
 *   digest-key     the hash over Z runs in the token with C_DigestKey (Z stays
 *                  inside), the KDF's output comes to the host and is imported
 *                  back and wiped (PKCS#11 2.40 tokens such as SoftHSM 2.6).
 * The probe (probe.c) runs the in-token chains on known values at hsm_open
 * and decides which path each derivation takes; callers never choose.
 */
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <openssl/sha.h>

#include "hsm/internal.h"

/* HMAC-SHA256 block size: the key is padded to it (RFC 2104). */
#define SHA256_BLOCK 64
/* otherInfo for Apple is 1 + 13 + 5 + 32 bytes; Google's prefix is a 65-byte
 * point. Bounds keep a caller's mistake from becoming a huge token call. */
#define KDF_INPUT_MAX 1024
/* The MAC key the token is given: shorter keys are zero-padded to it. */
#define HMAC_KEY_MIN 32
/* Wallet message keys: AES-128 (Google ECv1) or AES-256. */
#define MSG_KEY_MAX 32

/* RFC 2104's pads. */
#define HMAC_IPAD 0x36
#define HMAC_OPAD 0x5c

/* K0 ^ pad: the salt as HMAC key (at most one block), zero-padded to the
 * SHA-256 block, each byte XORed with |pad|. */
static void
hmac_key_block(uint8_t out[SHA256_BLOCK], const uint8_t *salt, size_t salt_len, uint8_t pad)
{
    memset(out, 0, SHA256_BLOCK);
    if (salt_len > 0)
        memcpy(out, salt, salt_len);
    for (size_t i = 0; i < SHA256_BLOCK; i++)
        out[i] ^= pad;
}

/* SP 800-56A concatenation KDF, one round: counter = 1, big-endian. */
static const uint8_t kdf_counter[4] = { 0, 0, 0, 1 };

/* Ends a digest operation left open by a failed step, so the session can run
 * the next operation (PKCS#11: an error from C_DigestFinal ends it). */
static void
digest_abort(hsm_session *s)
{
    uint8_t junk[SHA256_DIGEST_LENGTH];
    CK_ULONG n = sizeof(junk);

    (void)s->h->p11->C_DigestFinal(s->handle, junk, &n);
    OPENSSL_cleanse(junk, sizeof(junk));
}

/* SHA-256(pre || Z || post) in the token. */
static int
digest_around_key(hsm_session *s, CK_OBJECT_HANDLE z, const uint8_t *pre, size_t pre_len,
                  const uint8_t *post, size_t post_len, uint8_t out[SHA256_DIGEST_LENGTH])
{
    CK_MECHANISM mech = { CKM_SHA256, NULL, 0 };
    CK_ULONG n = SHA256_DIGEST_LENGTH;
    CK_RV rv;
    int r;

    rv = s->h->p11->C_DigestInit(s->handle, &mech);
    if ((r = hsm__ckr(s, "C_DigestInit", rv)) != HSM_OK)
        return r;
    rv = s->h->p11->C_DigestUpdate(s->handle, (CK_BYTE_PTR)pre, pre_len);
    if ((r = hsm__ckr(s, "C_DigestUpdate", rv)) != HSM_OK)
        goto fail;
    rv = s->h->p11->C_DigestKey(s->handle, z);
    if ((r = hsm__ckr(s, "C_DigestKey", rv)) != HSM_OK)
        goto fail;
    if (post_len > 0) {
        rv = s->h->p11->C_DigestUpdate(s->handle, (CK_BYTE_PTR)post, post_len);
        if ((r = hsm__ckr(s, "C_DigestUpdate", rv)) != HSM_OK)
            goto fail;
    }
    rv = s->h->p11->C_DigestFinal(s->handle, out, &n);
    if ((r = hsm__ckr(s, "C_DigestFinal", rv)) != HSM_OK)
        return r;
    if (n != SHA256_DIGEST_LENGTH) {
        OPENSSL_cleanse(out, SHA256_DIGEST_LENGTH);
        return hsm__fail(HSM_ERR_INTERNAL, "digest of %lu bytes", (unsigned long)n);
    }
    return HSM_OK;
fail:
    digest_abort(s);
    return r;
}

int
hsm_apple_kdf(hsm_session *s, hsm_obj z, const uint8_t *other_info, size_t other_len,
              uint8_t out_key[32])
{
    if (s == NULL || z == HSM_OBJ_NONE || other_info == NULL || out_key == NULL ||
        other_len == 0 || other_len > KDF_INPUT_MAX)
        return HSM_ERR_INVALID_ARG;
    return digest_around_key(s, z, kdf_counter, sizeof(kdf_counter), other_info, other_len, out_key);
}

int
hsm_hkdf_sha256(hsm_session *s, hsm_obj z, const uint8_t *salt, size_t salt_len,
                const uint8_t *ikm_prefix, size_t prefix_len, const uint8_t *info, size_t info_len,
                uint8_t *out, size_t out_len)
{
    uint8_t pad[SHA256_BLOCK + KDF_INPUT_MAX];
    uint8_t inner[SHA256_DIGEST_LENGTH], prk[SHA256_DIGEST_LENGTH];
    EVP_KDF *kdf = NULL;
    EVP_KDF_CTX *kctx = NULL;
    OSSL_PARAM params[5];
    int mode = EVP_KDF_HKDF_MODE_EXPAND_ONLY;
    EVP_MD_CTX *outer = NULL;
    unsigned int prk_len = 0;
    int r;

    if (s == NULL || z == HSM_OBJ_NONE || (salt == NULL && salt_len != 0) ||
        salt_len > SHA256_BLOCK || (ikm_prefix == NULL && prefix_len != 0) ||
        prefix_len > KDF_INPUT_MAX || (info == NULL && info_len != 0) ||
        info_len > KDF_INPUT_MAX || out == NULL || out_len == 0 || out_len > HSM_HKDF_OUT_MAX)
        return HSM_ERR_INVALID_ARG;
    /* Extract = HMAC(salt, prefix || Z). The inner hash covers Z and runs in
     * the token: SHA-256((K0 ^ ipad) || prefix || Z). */
    hmac_key_block(pad, salt, salt_len, HMAC_IPAD);
    if (prefix_len > 0)
        memcpy(pad + SHA256_BLOCK, ikm_prefix, prefix_len);
    r = digest_around_key(s, z, pad, SHA256_BLOCK + prefix_len, NULL, 0, inner);
    if (r != HSM_OK)
        goto out;
    /* Outer hash on the host: SHA-256((K0 ^ opad) || inner) = PRK. */
    hmac_key_block(pad, salt, salt_len, HMAC_OPAD);
    outer = EVP_MD_CTX_new();
    if (outer == NULL || EVP_DigestInit_ex(outer, EVP_sha256(), NULL) != 1 ||
        EVP_DigestUpdate(outer, pad, SHA256_BLOCK) != 1 ||
        EVP_DigestUpdate(outer, inner, sizeof(inner)) != 1 ||
        EVP_DigestFinal_ex(outer, prk, &prk_len) != 1 || prk_len != sizeof(prk)) {
        r = hsm__fail(HSM_ERR_INTERNAL, "SHA-256 failed");
        goto out;
    }

    kdf = EVP_KDF_fetch(NULL, "HKDF", NULL);
    kctx = kdf != NULL ? EVP_KDF_CTX_new(kdf) : NULL;
    if (kctx == NULL) {
        r = hsm__fail(HSM_ERR_INTERNAL, "OpenSSL HKDF unavailable");
        goto out;
    }
    params[0] = OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, (char *)"SHA256", 0);
    params[1] = OSSL_PARAM_construct_int(OSSL_KDF_PARAM_MODE, &mode);
    params[2] = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY, prk, sizeof(prk));
    params[3] = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO, (void *)info, info_len);
    params[4] = OSSL_PARAM_construct_end();
    if (EVP_KDF_derive(kctx, out, out_len, params) != 1) {
        OPENSSL_cleanse(out, out_len);
        r = hsm__fail(HSM_ERR_INTERNAL, "HKDF-Expand failed");
        goto out;
    }
    r = HSM_OK;
out:
    EVP_MD_CTX_free(outer);
    EVP_KDF_CTX_free(kctx);
    EVP_KDF_free(kdf);
    OPENSSL_cleanse(pad, sizeof(pad));
    OPENSSL_cleanse(inner, sizeof(inner));
    OPENSSL_cleanse(prk, sizeof(prk));
    return r;
}

/* ---- All in the token ---------------------------------------------------- */

/* An intermediate secret of a derivation chain: sensitive, not extractable,
 * fit only to derive the next one. */
static int
derive_step(hsm_session *s, CK_MECHANISM *mech, const char *call, CK_OBJECT_HANDLE base,
            CK_ULONG value_len, CK_OBJECT_HANDLE *out)
{
    static const CK_OBJECT_CLASS secret = CKO_SECRET_KEY;
    static const CK_KEY_TYPE generic = CKK_GENERIC_SECRET;
    CK_ATTRIBUTE t[] = {
        ATTR(CKA_CLASS, &secret, sizeof(secret)), ATTR(CKA_KEY_TYPE, &generic, sizeof(generic)),
        BOOL_ATTR(CKA_TOKEN, 0), BOOL_ATTR(CKA_PRIVATE, 1), BOOL_ATTR(CKA_SENSITIVE, 1),
        BOOL_ATTR(CKA_EXTRACTABLE, 0), BOOL_ATTR(CKA_ENCRYPT, 0), BOOL_ATTR(CKA_DECRYPT, 0),
        BOOL_ATTR(CKA_SIGN, 0), BOOL_ATTR(CKA_VERIFY, 0), BOOL_ATTR(CKA_WRAP, 0),
        BOOL_ATTR(CKA_UNWRAP, 0), BOOL_ATTR(CKA_DERIVE, 1),
        /* Last, so the concatenations (whose length the token computes) can
         * leave it out. */
        ATTR(CKA_VALUE_LEN, &value_len, sizeof(value_len)),
    };
    CK_ULONG n = sizeof(t) / sizeof(t[0]) - (value_len == 0 ? 1 : 0);

    return hsm__ckr(s, call, s->h->p11->C_DeriveKey(s->handle, mech, base, t, n, out));
}

/* A final key of a chain, with the template hsm_secret_import would give it
 * (one usage, one mechanism), derived instead of created from bytes. */
static int
derive_final(hsm_session *s, CK_MECHANISM *mech, const char *call, CK_OBJECT_HANDLE base,
             hsm_secret_use use, size_t len, hsm_obj *out)
{
    struct hsm__secret_tmpl t;
    CK_OBJECT_HANDLE o = CK_INVALID_HANDLE;
    int r;

    if ((r = hsm__secret_tmpl_build(&t, use, NULL, len)) != HSM_OK)
        return r;
    if ((r = hsm__ckr(s, call, s->h->p11->C_DeriveKey(s->handle, mech, base, t.a, t.n, &o))) !=
        HSM_OK)
        return r;
    *out = o;
    return HSM_OK;
}

static void
destroy_handle(hsm_session *s, CK_OBJECT_HANDLE *o)
{
    if (*o != CK_INVALID_HANDLE)
        (void)hsm__destroy_obj(s, *o);
    *o = CK_INVALID_HANDLE;
}

/* base || data (append) or data || base (prepend) into a new secret. */
static int
concat(hsm_session *s, CK_OBJECT_HANDLE base, const uint8_t *data, size_t len, bool prepend,
       CK_OBJECT_HANDLE *out)
{
    CK_KEY_DERIVATION_STRING_DATA d = { (CK_BYTE_PTR)data, len };
    CK_MECHANISM m = { prepend ? CKM_CONCATENATE_DATA_AND_BASE : CKM_CONCATENATE_BASE_AND_DATA,
                       &d, sizeof(d) };

    return derive_step(s, &m,
                       prepend ? "C_DeriveKey(CKM_CONCATENATE_DATA_AND_BASE)"
                               : "C_DeriveKey(CKM_CONCATENATE_BASE_AND_DATA)",
                       base, 0, out);
}

int
hsm__apple_kdf_in_token(hsm_session *s, CK_OBJECT_HANDLE z, const uint8_t *other_info,
                        size_t other_len, hsm_secret_use use, hsm_obj *out_key)
{
    CK_MECHANISM sha = { CKM_SHA256_KEY_DERIVATION, NULL, 0 };
    CK_OBJECT_HANDLE a = CK_INVALID_HANDLE, b = CK_INVALID_HANDLE;
    int r;

    /* counter || Z, then || otherInfo, then SHA-256 of it all as the key. */
    if ((r = concat(s, z, kdf_counter, sizeof(kdf_counter), true, &a)) != HSM_OK ||
        (r = concat(s, a, other_info, other_len, false, &b)) != HSM_OK)
        goto out;
    r = derive_final(s, &sha, "C_DeriveKey(CKM_SHA256_KEY_DERIVATION)", b, use,
                     SHA256_DIGEST_LENGTH, out_key);
out:
    destroy_handle(s, &a);
    destroy_handle(s, &b);
    return r;
}

int
hsm__hkdf_in_token(hsm_session *s, CK_OBJECT_HANDLE z, const uint8_t *salt, size_t salt_len,
                   const uint8_t *ikm_prefix, size_t prefix_len, const uint8_t *info,
                   size_t info_len, size_t key_len, hsm_obj *out_aes, hsm_obj *out_mac)
{
    static const uint8_t zeros[SHA256_BLOCK];
    struct hsm__hkdf_params hp;
    CK_MECHANISM hkdf = { CKM_HKDF_DERIVE, &hp, sizeof(hp) };
    CK_ULONG bit = 0; /* CK_EXTRACT_PARAMS: the first bit to take */
    CK_MECHANISM extract = { CKM_EXTRACT_KEY_FROM_KEY, &bit, sizeof(bit) };
    CK_OBJECT_HANDLE ikm = CK_INVALID_HANDLE, okm = CK_INVALID_HANDLE, mac_raw = CK_INVALID_HANDLE;
    hsm_obj aes = HSM_OBJ_NONE, mac = HSM_OBJ_NONE;
    CK_KEY_DERIVATION_STRING_DATA pad = { (CK_BYTE_PTR)zeros, HMAC_KEY_MIN - key_len };
    CK_MECHANISM pad_mech = { CKM_CONCATENATE_BASE_AND_DATA, &pad, sizeof(pad) };
    int r;

    if (prefix_len > 0) {
        if ((r = concat(s, z, ikm_prefix, prefix_len, true, &ikm)) != HSM_OK)
            goto out;
    }
    memset(&hp, 0, sizeof(hp));
    hp.bExtract = CK_TRUE;
    hp.bExpand = CK_TRUE;
    hp.prfHashMechanism = CKM_SHA256;
    /* No salt is HashLen zero bytes (RFC 5869 2.2), given as data: every
     * token reads that one way. */
    hp.ulSaltType = HSM__HKDF_SALT_DATA;
    hp.pSalt = (CK_BYTE_PTR)(salt_len > 0 ? salt : zeros);
    hp.ulSaltLen = salt_len > 0 ? salt_len : SHA256_DIGEST_LENGTH;
    hp.hSaltKey = CK_INVALID_HANDLE;
    hp.pInfo = (CK_BYTE_PTR)info;
    hp.ulInfoLen = info_len;
    if ((r = derive_step(s, &hkdf, "C_DeriveKey(CKM_HKDF_DERIVE)",
                         ikm != CK_INVALID_HANDLE ? ikm : z, 2 * key_len, &okm)) != HSM_OK)
        goto out;
    /* The first key_len bytes are the AES key, the next the MAC key. */
    if ((r = derive_final(s, &extract, "C_DeriveKey(CKM_EXTRACT_KEY_FROM_KEY)", okm,
                          HSM_USE_AES_CTR_DECRYPT, key_len, &aes)) != HSM_OK)
        goto out;
    bit = 8 * key_len;
    if (key_len >= HMAC_KEY_MIN) {
        r = derive_final(s, &extract, "C_DeriveKey(CKM_EXTRACT_KEY_FROM_KEY)", okm,
                         HSM_USE_HMAC_VERIFY, key_len, &mac);
    } else if ((r = derive_step(s, &extract, "C_DeriveKey(CKM_EXTRACT_KEY_FROM_KEY)", okm,
                                key_len, &mac_raw)) == HSM_OK) {
        r = derive_final(s, &pad_mech, "C_DeriveKey(CKM_CONCATENATE_BASE_AND_DATA)", mac_raw,
                         HSM_USE_HMAC_VERIFY, HMAC_KEY_MIN, &mac);
    }
    if (r != HSM_OK)
        goto out;
    *out_aes = aes;
    *out_mac = mac;
    aes = mac = HSM_OBJ_NONE;
out:
    destroy_handle(s, &ikm);
    destroy_handle(s, &okm);
    destroy_handle(s, &mac_raw);
    hsm_obj_destroy(s, aes);
    hsm_obj_destroy(s, mac);
    return r;
}

/* ---- The path the probe chose -------------------------------------------- */

int
hsm_apple_kdf_key(hsm_session *s, hsm_obj z, const uint8_t *other_info, size_t other_len,
                  hsm_secret_use use, hsm_obj *out_key, hsm_path *out_path)
{
    uint8_t key[SHA256_DIGEST_LENGTH];
    hsm_path path;
    int r;

    if (s == NULL || z == HSM_OBJ_NONE || other_info == NULL || other_len == 0 ||
        other_len > KDF_INPUT_MAX || out_key == NULL ||
        (use != HSM_USE_AES_GCM_DECRYPT && use != HSM_USE_AES_GCM_ENCRYPT))
        return HSM_ERR_INVALID_ARG;
    path = s->h->probe.apple_ec_kdf;
    if (path == HSM_PATH_IN_TOKEN) {
        r = hsm__apple_kdf_in_token(s, z, other_info, other_len, use, out_key);
    } else if (path != HSM_PATH_NONE) {
        /* The key is in host memory from here to the wipe (SECURITY.md). */
        path = HSM_PATH_DIGEST_KEY;
        r = hsm_apple_kdf(s, z, other_info, other_len, key);
        if (r == HSM_OK)
            r = hsm_secret_import(s, use, key, sizeof(key), out_key);
        OPENSSL_cleanse(key, sizeof(key));
    } else {
        r = hsm__fail(HSM_ERR_MECHANISM, "the token can run neither Apple KDF path (%s)",
                      s->h->probe.apple_in_token_why);
    }
    if (r == HSM_OK && out_path != NULL)
        *out_path = path;
    return r;
}

int
hsm_hkdf_sha256_keys(hsm_session *s, hsm_obj z, const uint8_t *salt, size_t salt_len,
                     const uint8_t *ikm_prefix, size_t prefix_len, const uint8_t *info,
                     size_t info_len, size_t key_len, hsm_obj *out_aes, hsm_obj *out_mac,
                     hsm_path *out_path)
{
    uint8_t okm[2 * MSG_KEY_MAX], mac_key[HMAC_KEY_MIN];
    hsm_obj aes = HSM_OBJ_NONE, mac = HSM_OBJ_NONE;
    hsm_path path;
    int r;

    if (s == NULL || z == HSM_OBJ_NONE || (salt == NULL && salt_len != 0) ||
        salt_len > SHA256_BLOCK || (ikm_prefix == NULL && prefix_len != 0) ||
        prefix_len > KDF_INPUT_MAX || (info == NULL && info_len != 0) ||
        info_len > KDF_INPUT_MAX || (key_len != 16 && key_len != MSG_KEY_MAX) ||
        out_aes == NULL || out_mac == NULL)
        return HSM_ERR_INVALID_ARG;
    path = s->h->probe.google_hkdf;
    if (path == HSM_PATH_IN_TOKEN) {
        r = hsm__hkdf_in_token(s, z, salt, salt_len, ikm_prefix, prefix_len, info, info_len,
                               key_len, out_aes, out_mac);
        if (r == HSM_OK && out_path != NULL)
            *out_path = path;
        return r;
    }
    if (path == HSM_PATH_NONE)
        return hsm__fail(HSM_ERR_MECHANISM, "the token can run neither HKDF path (%s)",
                         s->h->probe.google_in_token_why);
    /* PRK and both keys are in host memory from here to the wipes. */
    memset(mac_key, 0, sizeof(mac_key));
    r = hsm_hkdf_sha256(s, z, salt, salt_len, ikm_prefix, prefix_len, info, info_len, okm,
                        2 * key_len);
    if (r != HSM_OK)
        goto out;
    memcpy(mac_key, okm + key_len, key_len);
    if ((r = hsm_secret_import(s, HSM_USE_AES_CTR_DECRYPT, okm, key_len, &aes)) != HSM_OK ||
        (r = hsm_secret_import(s, HSM_USE_HMAC_VERIFY, mac_key, sizeof(mac_key), &mac)) != HSM_OK)
        goto out;
    *out_aes = aes;
    *out_mac = mac;
    aes = mac = HSM_OBJ_NONE;
    if (out_path != NULL)
        *out_path = HSM_PATH_DIGEST_KEY;
out:
    OPENSSL_cleanse(okm, sizeof(okm));
    OPENSSL_cleanse(mac_key, sizeof(mac_key));
    hsm_obj_destroy(s, aes);
    hsm_obj_destroy(s, mac);
    return r;
}
