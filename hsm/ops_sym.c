/*
 * ops_sym.c - symmetric operations in the token: RNG, HMAC, AES-GCM, AES-CTR,
 * and transient secret keys.
 */
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "hsm/internal.h"

int
hsm_random(hsm_session *s, uint8_t *out, size_t len)
{
    CK_RV rv;

    if (s == NULL || out == NULL || len == 0 || len > HSM_RANDOM_MAX)
        return HSM_ERR_INVALID_ARG;
    rv = s->h->p11->C_GenerateRandom(s->handle, out, len);
    return hsm__ckr(s, "C_GenerateRandom", rv);
}

static int
kind_check(const hsm_key *key, hsm_key_kind want)
{
    if (key->kind != want)
        return hsm__fail(HSM_ERR_KEY_TYPE, "%s is a %s key, not %s", key->label,
                         hsm_key_kind_name(key->kind), hsm_key_kind_name(want));
    return HSM_OK;
}

/* HMAC-SHA256 sign with a handle; shared by long-term and transient keys. */
static int
hmac_sign(hsm_session *s, CK_OBJECT_HANDLE k, const uint8_t *data, size_t len,
          uint8_t out[HSM_HMAC_SHA256_LEN])
{
    CK_MECHANISM mech = { CKM_SHA256_HMAC, NULL, 0 };
    uint8_t mac[HSM_HMAC_SHA256_LEN];
    CK_ULONG mac_len = sizeof(mac);
    CK_RV rv;
    int r;

    if (data == NULL && len != 0)
        return HSM_ERR_INVALID_ARG;
    rv = s->h->p11->C_SignInit(s->handle, &mech, k);
    if ((r = hsm__ckr(s, "C_SignInit", rv)) != HSM_OK)
        return r;
    rv = s->h->p11->C_Sign(s->handle, (CK_BYTE_PTR)data, len, mac, &mac_len);
    if ((r = hsm__ckr(s, "C_Sign", rv)) != HSM_OK)
        return r;
    if (mac_len != sizeof(mac))
        return hsm__fail(HSM_ERR_INTERNAL, "HMAC of %lu bytes", (unsigned long)mac_len);
    memcpy(out, mac, sizeof(mac));
    return HSM_OK;
}

static int
hmac_verify(hsm_session *s, CK_OBJECT_HANDLE k, const uint8_t *data, size_t len,
            const uint8_t *mac, size_t mac_len)
{
    CK_MECHANISM mech = { CKM_SHA256_HMAC, NULL, 0 };
    CK_RV rv;
    int r;

    if ((data == NULL && len != 0) || mac == NULL)
        return HSM_ERR_INVALID_ARG;
    /* A truncated MAC is a failed check, never a shorter comparison. */
    if (mac_len != HSM_HMAC_SHA256_LEN)
        return hsm__fail(HSM_ERR_VERIFY, "MAC of %zu bytes", mac_len);
    rv = s->h->p11->C_VerifyInit(s->handle, &mech, k);
    if ((r = hsm__ckr(s, "C_VerifyInit", rv)) != HSM_OK)
        return r;
    rv = s->h->p11->C_Verify(s->handle, (CK_BYTE_PTR)data, len, (CK_BYTE_PTR)mac, mac_len);
    if (rv == CKR_OK || rv == CKR_SIGNATURE_INVALID || rv == CKR_SIGNATURE_LEN_RANGE ||
        (hsm__ckr_is_loss(rv) && rv != CKR_DEVICE_ERROR))
        return hsm__ckr_signature(s, "C_Verify", rv);
    /* Any other answer is checked, not believed: NSS softokn answers a wrong
     * MAC with whatever error its thread last recorded (CKR_DEVICE_ERROR
     * among them). The token computes the MAC and the host compares it in
     * constant time: a MAC that differs is a failed check; a right one, or
     * a token that cannot compute it, leaves the token's own error. */
    {
        uint8_t own[HSM_HMAC_SHA256_LEN];
        bool differs = hmac_sign(s, k, data, len, own) == HSM_OK &&
                       CRYPTO_memcmp(own, mac, sizeof(own)) != 0;

        OPENSSL_cleanse(own, sizeof(own));
        if (differs)
            return hsm__fail(HSM_ERR_VERIFY, "C_Verify: %s; the token's own MAC differs",
                             hsm__ckr_name(rv));
    }
    return hsm__ckr_signature(s, "C_Verify", rv);
}

int
hsm_hmac_sign(hsm_session *s, hsm_key *key, const uint8_t *data, size_t len,
              uint8_t out[HSM_HMAC_SHA256_LEN])
{
    CK_OBJECT_HANDLE k = CK_INVALID_HANDLE;
    int r;

    if (s == NULL || key == NULL || out == NULL)
        return HSM_ERR_INVALID_ARG;
    if ((r = kind_check(key, HSM_KIND_HMAC)) != HSM_OK || (r = hsm__key_handle(s, key, &k)) != HSM_OK)
        return r;
    return hmac_sign(s, k, data, len, out);
}

int
hsm_hmac_verify(hsm_session *s, hsm_key *key, const uint8_t *data, size_t len, const uint8_t *mac,
                size_t mac_len)
{
    CK_OBJECT_HANDLE k = CK_INVALID_HANDLE;
    int r;

    if (s == NULL || key == NULL)
        return HSM_ERR_INVALID_ARG;
    if ((r = kind_check(key, HSM_KIND_HMAC)) != HSM_OK || (r = hsm__key_handle(s, key, &k)) != HSM_OK)
        return r;
    return hmac_verify(s, k, data, len, mac, mac_len);
}

int
hsm_obj_hmac_sign(hsm_session *s, hsm_obj key, const uint8_t *data, size_t len,
                  uint8_t out[HSM_HMAC_SHA256_LEN])
{
    if (s == NULL || key == HSM_OBJ_NONE || out == NULL)
        return HSM_ERR_INVALID_ARG;
    return hmac_sign(s, key, data, len, out);
}

int
hsm_obj_hmac_verify(hsm_session *s, hsm_obj key, const uint8_t *data, size_t len,
                    const uint8_t *mac, size_t mac_len)
{
    if (s == NULL || key == HSM_OBJ_NONE)
        return HSM_ERR_INVALID_ARG;
    return hmac_verify(s, key, data, len, mac, mac_len);
}

/* One GCM operation. SoftHSM and the 2.40 header call the IV length field
 * ulIvBits as well as ulIvLen; both are set (HSM-NOTES Q3). */
static int
gcm(hsm_session *s, CK_OBJECT_HANDLE k, bool encrypt, const uint8_t *aad, size_t aad_len,
    const uint8_t *iv, size_t iv_len, const uint8_t *in, size_t in_len, uint8_t *out, size_t cap,
    size_t *out_len)
{
    CK_GCM_PARAMS p;
    CK_MECHANISM mech = { CKM_AES_GCM, &p, sizeof(p) };
    CK_ULONG n;
    CK_RV rv;
    int r;

    if ((aad == NULL && aad_len != 0) || iv == NULL || iv_len == 0 || iv_len > 16 ||
        (in == NULL && in_len != 0) || out == NULL || out_len == NULL ||
        in_len > HSM_GCM_MAX + HSM_GCM_TAG_LEN || aad_len > HSM_GCM_MAX)
        return HSM_ERR_INVALID_ARG;
    if (!encrypt && in_len < HSM_GCM_TAG_LEN)
        return hsm__fail(HSM_ERR_VERIFY, "ciphertext shorter than its tag");
    if (encrypt ? cap < in_len + HSM_GCM_TAG_LEN : cap < in_len - HSM_GCM_TAG_LEN)
        return HSM_ERR_BUFFER;
    memset(&p, 0, sizeof(p));
    p.pIv = (CK_BYTE_PTR)iv;
    p.ulIvLen = iv_len;
    p.ulIvBits = iv_len * 8;
    p.pAAD = (CK_BYTE_PTR)aad;
    p.ulAADLen = aad_len;
    p.ulTagBits = HSM_GCM_TAG_LEN * 8;
    n = cap;
    if (encrypt) {
        rv = s->h->p11->C_EncryptInit(s->handle, &mech, k);
        if ((r = hsm__ckr(s, "C_EncryptInit", rv)) != HSM_OK)
            return r;
        rv = s->h->p11->C_Encrypt(s->handle, (CK_BYTE_PTR)in, in_len, out, &n);
        r = hsm__ckr(s, "C_Encrypt", rv);
    } else {
        /* SoftHSM wants room for ciphertext and tag in the output, and a
         * CKR_BUFFER_TOO_SMALL leaves the operation active, poisoning the
         * session: a caller buffer sized for the plaintext alone gets the
         * plaintext through a scratch buffer of the full length. */
        uint8_t *dst = out, *scratch = NULL;

        if (cap < in_len) {
            if ((scratch = malloc(in_len)) == NULL)
                return HSM_ERR_NO_MEMORY;
            dst = scratch;
            n = in_len;
        }
        rv = s->h->p11->C_DecryptInit(s->handle, &mech, k);
        if ((r = hsm__ckr(s, "C_DecryptInit", rv)) == HSM_OK) {
            rv = s->h->p11->C_Decrypt(s->handle, (CK_BYTE_PTR)in, in_len, dst, &n);
            if (rv == CKR_BUFFER_TOO_SMALL)
                s->broken = true; /* the operation is still active: close it */
            /* Any failure here is a failed tag (modules differ on the CKR). */
            r = hsm__ckr_verify(s, "C_Decrypt", rv);
        }
        if (r == HSM_OK && n > cap)
            r = HSM_ERR_BUFFER;
        if (r == HSM_OK && scratch != NULL)
            memcpy(out, scratch, n);
        if (scratch != NULL) {
            OPENSSL_cleanse(scratch, in_len);
            free(scratch);
        }
        if (r != HSM_OK)
            OPENSSL_cleanse(out, cap);
    }
    if (r != HSM_OK)
        return r;
    *out_len = n;
    return HSM_OK;
}

int
hsm_gcm_encrypt(hsm_session *s, hsm_key *key, const uint8_t *aad, size_t aad_len,
                const uint8_t *pt, size_t len, uint8_t out_iv[HSM_GCM_IV_LEN], uint8_t *out,
                size_t cap, size_t *out_len)
{
    uint8_t iv[HSM_GCM_IV_LEN];
    CK_OBJECT_HANDLE k = CK_INVALID_HANDLE;
    int r;

    if (s == NULL || key == NULL || out_iv == NULL)
        return HSM_ERR_INVALID_ARG;
    if ((r = kind_check(key, HSM_KIND_DEK)) != HSM_OK || (r = hsm__key_handle(s, key, &k)) != HSM_OK)
        return r;
    /* A fresh random 96-bit IV per record; the DEK is retired long before
     * 2^32 encryptions (NIST SP 800-38D section 8.3). */
    if ((r = hsm_random(s, iv, sizeof(iv))) != HSM_OK)
        return r;
    r = gcm(s, k, true, aad, aad_len, iv, sizeof(iv), pt, len, out, cap, out_len);
    if (r == HSM_OK)
        memcpy(out_iv, iv, sizeof(iv));
    return r;
}

int
hsm_gcm_decrypt(hsm_session *s, hsm_key *key, const uint8_t *aad, size_t aad_len,
                const uint8_t *iv, size_t iv_len, const uint8_t *ct, size_t ct_len, uint8_t *out,
                size_t cap, size_t *out_len)
{
    CK_OBJECT_HANDLE k = CK_INVALID_HANDLE;
    int r;

    if (s == NULL || key == NULL)
        return HSM_ERR_INVALID_ARG;
    if ((r = kind_check(key, HSM_KIND_DEK)) != HSM_OK || (r = hsm__key_handle(s, key, &k)) != HSM_OK)
        return r;
    return gcm(s, k, false, aad, aad_len, iv, iv_len, ct, ct_len, out, cap, out_len);
}

int
hsm_obj_gcm_decrypt(hsm_session *s, hsm_obj key, const uint8_t *aad, size_t aad_len,
                    const uint8_t *iv, size_t iv_len, const uint8_t *ct, size_t ct_len,
                    uint8_t *out, size_t cap, size_t *out_len)
{
    if (s == NULL || key == HSM_OBJ_NONE)
        return HSM_ERR_INVALID_ARG;
    return gcm(s, key, false, aad, aad_len, iv, iv_len, ct, ct_len, out, cap, out_len);
}

int
hsm_obj_gcm_encrypt(hsm_session *s, hsm_obj key, const uint8_t *aad, size_t aad_len,
                    const uint8_t *iv, size_t iv_len, const uint8_t *pt, size_t len, uint8_t *out,
                    size_t cap, size_t *out_len)
{
    if (s == NULL || key == HSM_OBJ_NONE)
        return HSM_ERR_INVALID_ARG;
    return gcm(s, key, true, aad, aad_len, iv, iv_len, pt, len, out, cap, out_len);
}

int
hsm_obj_ctr_decrypt(hsm_session *s, hsm_obj key, const uint8_t iv[16], const uint8_t *ct,
                    size_t len, uint8_t *out, size_t cap)
{
    CK_AES_CTR_PARAMS p;
    CK_MECHANISM mech = { CKM_AES_CTR, &p, sizeof(p) };
    CK_ULONG n = cap;
    CK_RV rv;
    int r;

    if (s == NULL || key == HSM_OBJ_NONE || iv == NULL || (ct == NULL && len != 0) ||
        out == NULL || len > HSM_GCM_MAX)
        return HSM_ERR_INVALID_ARG;
    if (cap < len)
        return HSM_ERR_BUFFER;
    memset(&p, 0, sizeof(p));
    p.ulCounterBits = 128;
    memcpy(p.cb, iv, 16);
    rv = s->h->p11->C_DecryptInit(s->handle, &mech, key);
    if ((r = hsm__ckr(s, "C_DecryptInit", rv)) != HSM_OK)
        return r;
    rv = s->h->p11->C_Decrypt(s->handle, (CK_BYTE_PTR)ct, len, out, &n);
    if ((r = hsm__ckr(s, "C_Decrypt", rv)) != HSM_OK)
        return r;
    if (n != len) {
        OPENSSL_cleanse(out, cap);
        return hsm__fail(HSM_ERR_INTERNAL, "CTR returned %lu of %zu bytes", (unsigned long)n, len);
    }
    return HSM_OK;
}

int
hsm__secret_tmpl_build(struct hsm__secret_tmpl *t, hsm_secret_use use, const uint8_t *value,
                       size_t len)
{
    static const CK_OBJECT_CLASS secret = CKO_SECRET_KEY;
    static const CK_MECHANISM_TYPE m_gcm[] = { CKM_AES_GCM };
    static const CK_MECHANISM_TYPE m_ctr[] = { CKM_AES_CTR };
    static const CK_MECHANISM_TYPE m_hmac[] = { CKM_SHA256_HMAC };
    bool aes = use == HSM_USE_AES_GCM_DECRYPT || use == HSM_USE_AES_GCM_ENCRYPT ||
               use == HSM_USE_AES_CTR_DECRYPT;
    const CK_MECHANISM_TYPE *m = use == HSM_USE_AES_CTR_DECRYPT ? m_ctr : aes ? m_gcm : m_hmac;

    t->n = 0;
    if (use < HSM_USE_AES_GCM_DECRYPT || use > HSM_USE_HMAC_SIGN)
        return HSM_ERR_INVALID_ARG;
    /* AES takes 128/192/256-bit keys. HMAC keys: SoftHSM refuses keys under
     * 32 bytes at C_SignInit (HSM-NOTES Q3), so they are refused here, at
     * import or derivation, the same way on every token. */
    if (aes ? (len != 16 && len != 24 && len != 32) : (len < 32 || len > HSM_SECRET_MAX))
        return hsm__fail(HSM_ERR_INPUT, "secret of %zu bytes for this use", len);
    t->type = aes ? CKK_AES : CKK_GENERIC_SECRET;
    t->len = len;
    CK_ATTRIBUTE a[] = {
        ATTR(CKA_CLASS, &secret, sizeof(secret)), ATTR(CKA_KEY_TYPE, &t->type, sizeof(t->type)),
        ATTR(value != NULL ? CKA_VALUE : CKA_VALUE_LEN,
             value != NULL ? (const void *)value : (const void *)&t->len,
             value != NULL ? len : sizeof(t->len)),
        BOOL_ATTR(CKA_TOKEN, 0), BOOL_ATTR(CKA_PRIVATE, 1),
        BOOL_ATTR(CKA_SENSITIVE, 1), BOOL_ATTR(CKA_EXTRACTABLE, 0), BOOL_ATTR(CKA_MODIFIABLE, 0),
        BOOL_ATTR(CKA_ENCRYPT, use == HSM_USE_AES_GCM_ENCRYPT),
        BOOL_ATTR(CKA_DECRYPT, use == HSM_USE_AES_GCM_DECRYPT || use == HSM_USE_AES_CTR_DECRYPT),
        /* A verifying MAC key may also sign: hmac_verify recomputes the MAC
         * when a token's failure code cannot be taken at its word. */
        BOOL_ATTR(CKA_SIGN, use == HSM_USE_HMAC_SIGN || use == HSM_USE_HMAC_VERIFY),
        BOOL_ATTR(CKA_VERIFY, use == HSM_USE_HMAC_VERIFY),
        BOOL_ATTR(CKA_WRAP, 0), BOOL_ATTR(CKA_UNWRAP, 0), BOOL_ATTR(CKA_DERIVE, 0),
        ATTR(CKA_ALLOWED_MECHANISMS, m, sizeof(CK_MECHANISM_TYPE)),
    };
    _Static_assert(sizeof(a) / sizeof(a[0]) <= HSM__SECRET_TMPL_MAX, "template fits");
    memcpy(t->a, a, sizeof(a));
    t->n = sizeof(a) / sizeof(a[0]);
    return HSM_OK;
}

int
hsm_secret_import(hsm_session *s, hsm_secret_use use, const uint8_t *value, size_t len,
                  hsm_obj *out)
{
    struct hsm__secret_tmpl t;
    CK_OBJECT_HANDLE o = CK_INVALID_HANDLE;
    CK_RV rv;
    int r;

    if (s == NULL || value == NULL || out == NULL)
        return HSM_ERR_INVALID_ARG;
    if ((r = hsm__secret_tmpl_build(&t, use, value, len)) != HSM_OK)
        return r;
    rv = s->h->p11->C_CreateObject(s->handle, t.a, t.n, &o);
    if ((r = hsm__ckr(s, "C_CreateObject", rv)) != HSM_OK)
        return r;
    *out = o;
    return HSM_OK;
}

void
hsm_obj_destroy(hsm_session *s, hsm_obj obj)
{
    if (s == NULL || obj == HSM_OBJ_NONE)
        return;
    (void)hsm__ckr(s, "C_DestroyObject", hsm__destroy_obj(s, obj));
}
