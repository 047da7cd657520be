/*
 * ops_rsa.c - RSA unwrap of a wallet's content key into the token, and the
 * host-side OAEP-SHA256 decoding for tokens that only do OAEP with SHA-1.
 */
/* RSA_padding_check_PKCS1_OAEP_mgf1 is deprecated in OpenSSL 3 but is the
 * library's constant-time OAEP decoder; EVP offers no key-less equivalent. */
#define OPENSSL_SUPPRESS_DEPRECATED
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/rsa.h>

#include "hsm/internal.h"

/* RSA-2048 .. RSA-4096: the encoded block is the modulus length. */
#define RSA_BLOCK_MIN 256
#define RSA_BLOCK_MAX 512

int
hsm_oaep_sha256_decode(const uint8_t *em, size_t em_len, uint8_t *out, size_t cap, size_t *out_len)
{
    uint8_t buf[RSA_BLOCK_MAX];
    int n;

    if (em == NULL || out == NULL || out_len == NULL)
        return HSM_ERR_INVALID_ARG;
    if (em_len < RSA_BLOCK_MIN || em_len > RSA_BLOCK_MAX)
        return HSM_ERR_VERIFY;
    n = RSA_padding_check_PKCS1_OAEP_mgf1(buf, (int)sizeof(buf), em, (int)em_len, (int)em_len, NULL,
                                          0, EVP_sha256(), EVP_sha256());
    if (n < 0 || (size_t)n > cap) {
        OPENSSL_cleanse(buf, sizeof(buf));
        /* Leave no stale error on this worker thread's OpenSSL queue: a later
         * SSL_get_error on the same thread would read it. */
        ERR_clear_error();
        return HSM_ERR_VERIFY;
    }
    memcpy(out, buf, (size_t)n);
    OPENSSL_cleanse(buf, sizeof(buf));
    *out_len = (size_t)n;
    return HSM_OK;
}

/* Template of the unwrapped content key: sensitive, one usage. It repeats
 * SENSITIVE/EXTRACTABLE because the wallet keys' CKA_UNWRAP_TEMPLATE demands
 * them (HSM-NOTES Q4). */
#define CEK_TEMPLATE(t, use)                                                                     \
    CK_ATTRIBUTE t[] = {                                                                         \
        ATTR(CKA_CLASS, &secret, sizeof(secret)), ATTR(CKA_KEY_TYPE, &aes, sizeof(aes)),         \
        BOOL_ATTR(CKA_TOKEN, 0), BOOL_ATTR(CKA_PRIVATE, 1), BOOL_ATTR(CKA_SENSITIVE, 1),         \
        BOOL_ATTR(CKA_EXTRACTABLE, 0), BOOL_ATTR(CKA_ENCRYPT, (use) == HSM_USE_AES_GCM_ENCRYPT), \
        BOOL_ATTR(CKA_DECRYPT, (use) != HSM_USE_AES_GCM_ENCRYPT), BOOL_ATTR(CKA_SIGN, 0),        \
        BOOL_ATTR(CKA_VERIFY, 0), BOOL_ATTR(CKA_WRAP, 0), BOOL_ATTR(CKA_UNWRAP, 0),              \
        BOOL_ATTR(CKA_DERIVE, 0),                                                                \
    }

static const CK_OBJECT_CLASS secret = CKO_SECRET_KEY;
static const CK_KEY_TYPE aes = CKK_AES;

/* A random AES key of the asked length: what an RSA1_5 unwrap failure turns
 * into, so that the failure shows only at the content's tag check and the
 * padding outcome is no oracle (RFC 7516 section 11.5, Bleichenbacher). */
static int
random_cek(hsm_session *s, size_t key_len, hsm_secret_use use, CK_OBJECT_HANDLE *out)
{
    CK_ULONG len = key_len;
    CEK_TEMPLATE(t, use);
    CK_ATTRIBUTE tl[sizeof(t) / sizeof(t[0]) + 1];
    CK_MECHANISM mech = { CKM_AES_KEY_GEN, NULL, 0 };
    CK_RV rv;

    memcpy(tl, t, sizeof(t));
    tl[sizeof(t) / sizeof(t[0])] = (CK_ATTRIBUTE)ATTR(CKA_VALUE_LEN, &len, sizeof(len));
    rv = s->h->p11->C_GenerateKey(s->handle, &mech, tl, sizeof(tl) / sizeof(tl[0]), out);
    return hsm__ckr(s, "C_GenerateKey", rv);
}

int
hsm_rsa_unwrap_aes(hsm_session *s, hsm_key *key, hsm_rsa_pad pad, const uint8_t *wrapped,
                   size_t wrapped_len, size_t key_len, hsm_secret_use use, hsm_obj *out,
                   int *out_path)
{
    CK_RSA_PKCS_OAEP_PARAMS oaep;
    CK_MECHANISM mech = { CKM_RSA_PKCS, NULL, 0 };
    CK_OBJECT_HANDLE k = CK_INVALID_HANDLE, cek = CK_INVALID_HANDLE, spare = CK_INVALID_HANDLE;
    uint8_t em[RSA_BLOCK_MAX], cek_bytes[32];
    CK_ULONG em_len = sizeof(em), vlen = 0;
    size_t cek_len = 0;
    CK_ATTRIBUTE vl = ATTR(CKA_VALUE_LEN, &vlen, sizeof(vlen));
    CEK_TEMPLATE(t, use);
    CK_RV rv;
    int r;

    if (s == NULL || key == NULL || wrapped == NULL || out == NULL ||
        (key_len != 16 && key_len != 32) ||
        (use != HSM_USE_AES_GCM_DECRYPT && use != HSM_USE_AES_GCM_ENCRYPT))
        return HSM_ERR_INVALID_ARG;
    if (key->kind != HSM_KIND_RSA_UNWRAP && key->kind != HSM_KIND_RSA_DECRYPT &&
        key->kind != HSM_KIND_RSA_UNWRAP_SIGN)
        return hsm__fail(HSM_ERR_KEY_TYPE, "%s is not an RSA unwrap key", key->label);
    if (wrapped_len < RSA_BLOCK_MIN || wrapped_len > RSA_BLOCK_MAX)
        return hsm__fail(HSM_ERR_INPUT, "wrapped key of %zu bytes", wrapped_len);
    if ((r = hsm__key_handle(s, key, &k)) != HSM_OK)
        return r;

    memset(&oaep, 0, sizeof(oaep));
    oaep.source = CKZ_DATA_SPECIFIED;
    switch (pad) {
    case HSM_RSA_PKCS1:
        break;
    case HSM_RSA_OAEP_SHA1:
        oaep.hashAlg = CKM_SHA_1;
        oaep.mgf = CKG_MGF1_SHA1;
        mech = (CK_MECHANISM){ CKM_RSA_PKCS_OAEP, &oaep, sizeof(oaep) };
        break;
    case HSM_RSA_OAEP_SHA256:
        oaep.hashAlg = CKM_SHA256;
        oaep.mgf = CKG_MGF1_SHA256;
        mech = (CK_MECHANISM){ CKM_RSA_PKCS_OAEP, &oaep, sizeof(oaep) };
        if (s->h->probe.rsa_oaep_sha256 == HSM_PATH_HOST_DECODE)
            goto host_decode;
        break;
    default:
        return HSM_ERR_INVALID_ARG;
    }
    /* RSA1_5: the stand-in key is made before the unwrap, whatever its
     * outcome, so a padding failure costs no extra token call (timing). */
    if (pad == HSM_RSA_PKCS1 && (r = random_cek(s, key_len, use, &spare)) != HSM_OK)
        return r;
    rv = s->h->p11->C_UnwrapKey(s->handle, &mech, k, (CK_BYTE_PTR)wrapped, wrapped_len, t,
                                sizeof(t) / sizeof(t[0]), &cek);
    r = HSM_OK;
    if (rv != CKR_OK) {
        r = hsm__ckr_verify(s, "C_UnwrapKey", rv);
        cek = CK_INVALID_HANDLE;
        /* Modules disagree on how a bad block fails (SoftHSM:
         * CKR_GENERAL_ERROR; NSS softokn: CKR_KEY_SIZE_RANGE for PKCS#1 v1.5,
         * CKR_ARGUMENTS_BAD for OAEP). The probe showed this padding works
         * on this token, so whatever is not a lost device or a key that may
         * not unwrap is a bad block, one failure for all (RFC 7516 11.5). */
        if (r != HSM_ERR_UNAVAILABLE && rv != CKR_KEY_FUNCTION_NOT_PERMITTED &&
            rv != CKR_KEY_HANDLE_INVALID && rv != CKR_KEY_TYPE_INCONSISTENT)
            r = hsm__fail(HSM_ERR_VERIFY, "C_UnwrapKey: %s (a bad block)", hsm__ckr_name(rv));
    } else if (s->h->p11->C_GetAttributeValue(s->handle, cek, &vl, 1) == CKR_OK && vlen != 0 &&
               vlen != key_len) {
        /* A token that reports the length lets us refuse a key of the wrong
         * size. SoftHSM 2.6 reads 0 and refuses CKA_VALUE_LEN in the template
         * (HSM-NOTES Q4), so there the length is not checked on this path. */
        (void)hsm__destroy_obj(s, cek);
        cek = CK_INVALID_HANDLE;
        r = hsm__fail(HSM_ERR_VERIFY, "unwrapped key of %lu bytes", (unsigned long)vlen);
    }
    if (pad == HSM_RSA_PKCS1 && r == HSM_ERR_VERIFY) {
        cek = spare;
        spare = CK_INVALID_HANDLE;
        r = HSM_OK;
    }
    if (spare != CK_INVALID_HANDLE)
        (void)hsm__destroy_obj(s, spare);
    if (r != HSM_OK)
        return r;
    *out = cek;
    if (out_path != NULL)
        *out_path = 1;
    return HSM_OK;

host_decode:
    /* Raw RSA in the token, OAEP decoding here: the content key is in host
     * memory between the decode and the import, then wiped. */
    if (key->kind != HSM_KIND_RSA_DECRYPT)
        return hsm__fail(HSM_ERR_MECHANISM, "token lacks OAEP-SHA256 and %s is unwrap-only",
                         key->label);
    mech = (CK_MECHANISM){ CKM_RSA_X_509, NULL, 0 };
    rv = s->h->p11->C_DecryptInit(s->handle, &mech, k);
    if ((r = hsm__ckr(s, "C_DecryptInit", rv)) != HSM_OK)
        return r;
    rv = s->h->p11->C_Decrypt(s->handle, (CK_BYTE_PTR)wrapped, wrapped_len, em, &em_len);
    if ((r = hsm__ckr_verify(s, "C_Decrypt(RSA_X_509)", rv)) != HSM_OK)
        goto out;
    if (em_len != wrapped_len) {
        r = hsm__fail(HSM_ERR_VERIFY, "raw RSA output of %lu bytes", (unsigned long)em_len);
        goto out;
    }
    r = hsm_oaep_sha256_decode(em, em_len, cek_bytes, sizeof(cek_bytes), &cek_len);
    if (r == HSM_OK && cek_len != key_len)
        r = HSM_ERR_VERIFY;
    if (r != HSM_OK) {
        r = hsm__fail(HSM_ERR_VERIFY, "OAEP decoding failed");
        goto out;
    }
    r = hsm_secret_import(s, use, cek_bytes, cek_len, out);
    if (r == HSM_OK && out_path != NULL)
        *out_path = 2;
out:
    OPENSSL_cleanse(em, sizeof(em));
    OPENSSL_cleanse(cek_bytes, sizeof(cek_bytes));
    return r;
}

/* The DER DigestInfo prefix of SHA-256 (RFC 8017 section 9.2, note 1): the
 * token pads and compares prefix || digest, so only the hash runs outside. */
static const uint8_t sha256_digest_info[] = { 0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86,
                                              0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01, 0x05,
                                              0x00, 0x04, 0x20 };

int
hsm_rsa_sha256_verify(hsm_session *s, hsm_obj pub, const uint8_t digest[32], const uint8_t *sig,
                      size_t sig_len)
{
    CK_MECHANISM mech = { CKM_RSA_PKCS, NULL, 0 };
    uint8_t info[sizeof(sha256_digest_info) + 32];
    CK_RV rv;
    int r;

    if (s == NULL || pub == HSM_OBJ_NONE || digest == NULL || sig == NULL)
        return HSM_ERR_INVALID_ARG;
    if (sig_len < HSM_RSA_PUBLIC_BITS_MIN / 8 || sig_len > HSM_RSA_PUBLIC_BITS_MAX / 8)
        return hsm__fail(HSM_ERR_INPUT, "RSA signature of %zu bytes", sig_len);
    memcpy(info, sha256_digest_info, sizeof(sha256_digest_info));
    memcpy(info + sizeof(sha256_digest_info), digest, 32);
    rv = s->h->p11->C_VerifyInit(s->handle, &mech, pub);
    if ((r = hsm__ckr(s, "C_VerifyInit", rv)) != HSM_OK)
        return r;
    rv = s->h->p11->C_Verify(s->handle, info, sizeof(info), (CK_BYTE_PTR)sig, sig_len);
    /* The signature is the only input that varies and its length is in
     * range: NSS softokn answers CKR_ARGUMENTS_BAD (or CKR_DATA_INVALID)
     * for a signature whose recovered block is not PKCS#1 padding. */
    if (rv == CKR_ARGUMENTS_BAD || rv == CKR_DATA_INVALID || rv == CKR_ENCRYPTED_DATA_INVALID)
        return hsm__fail(HSM_ERR_VERIFY, "C_Verify: %s (a signature that is not PKCS#1)",
                         hsm__ckr_name(rv));
    return hsm__ckr_signature(s, "C_Verify", rv);
}
