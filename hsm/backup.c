/*
 * backup.c - cloning the vault's long-term keys to a second HSM: a transport
 * key that only the SO can make trusted, the keys wrapped under it (AES key
 * wrap with padding), and unwrapped on the target with the attributes of
 * their kind.
 */
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/x509.h>

#include "hsm/internal.h"

/* Logs the keeper out and in again as |user| with the PIN from |pin|.
 * Lock held. */
static CK_RV
relogin(struct hsm *h, CK_USER_TYPE user, hsm_pin_source *pin)
{
    uint8_t buf[HSM_PIN_BUF];
    size_t len = 0;
    CK_RV rv;

    (void)h->p11->C_Logout(h->keeper);
    if (hsm_pin_source_read(pin, buf, sizeof(buf), &len) != HSM_OK)
        return CKR_PIN_INCORRECT;
    rv = h->p11->C_Login(h->keeper, user, buf, len);
    OPENSSL_cleanse(buf, sizeof(buf));
    return rv;
}

int
hsm_transport_key_trusted(hsm_session *s, hsm_pin_source *so_pin,
                          const uint8_t key[HSM_TRANSPORT_KEY_LEN], hsm_obj *out)
{
    static const CK_OBJECT_CLASS secret = CKO_SECRET_KEY;
    static const CK_KEY_TYPE aes = CKK_AES;
    static const CK_MECHANISM_TYPE kwp[] = { CKM_AES_KEY_WRAP_PAD };
    /* A public session object (the SO can make no other kind, HSM-NOTES
     * Q10): it lives only in this process, until destroyed or the module is
     * finalized, so it never reaches the token's storage. It wraps and does
     * nothing else. */
    CK_ATTRIBUTE t[] = {
        ATTR(CKA_CLASS, &secret, sizeof(secret)), ATTR(CKA_KEY_TYPE, &aes, sizeof(aes)),
        ATTR(CKA_VALUE, key, HSM_TRANSPORT_KEY_LEN), BOOL_ATTR(CKA_TOKEN, 0),
        BOOL_ATTR(CKA_PRIVATE, 0), BOOL_ATTR(CKA_SENSITIVE, 1), BOOL_ATTR(CKA_EXTRACTABLE, 0),
        BOOL_ATTR(CKA_TRUSTED, 1), BOOL_ATTR(CKA_WRAP, 1), BOOL_ATTR(CKA_UNWRAP, 0),
        BOOL_ATTR(CKA_ENCRYPT, 0), BOOL_ATTR(CKA_DECRYPT, 0), BOOL_ATTR(CKA_SIGN, 0),
        BOOL_ATTR(CKA_VERIFY, 0), BOOL_ATTR(CKA_DERIVE, 0),
        ATTR(CKA_ALLOWED_MECHANISMS, kwp, sizeof(kwp)),
    };
    struct hsm *h;
    CK_OBJECT_HANDLE o = CK_INVALID_HANDLE;
    CK_RV rv, back;
    int r;

    if (s == NULL || so_pin == NULL || key == NULL || out == NULL)
        return hsm__fail(HSM_ERR_INVALID_ARG, "hsm_transport_key_trusted: bad arguments");
    h = s->h;
    pthread_mutex_lock(&h->lock);
    /* Logging out invalidates every private handle: nobody else may be
     * using the hsm now (a ceremony tool holds one session). */
    if (h->num_lent != 1) {
        pthread_mutex_unlock(&h->lock);
        return hsm__fail(HSM_ERR_INVALID_ARG, "other sessions are in use");
    }
    rv = relogin(h, CKU_SO, so_pin);
    if (rv == CKR_OK)
        rv = h->p11->C_CreateObject(h->keeper, t, sizeof(t) / sizeof(t[0]), &o);
    r = hsm__ckr(NULL, rv == CKR_OK ? "C_CreateObject(trusted)" : "C_Login(SO)", rv);
    if (r != HSM_OK && r != HSM_ERR_UNAVAILABLE)
        r = rv == CKR_PIN_INCORRECT || rv == CKR_PIN_LOCKED ? HSM_ERR_LOGIN : r;
    /* Back to the user in every case; handles of private objects found
     * before are dead now, so they are found again (a new generation). */
    back = relogin(h, CKU_USER, h->pin);
    h->generation++;
    s->generation = h->generation;
    pthread_mutex_unlock(&h->lock);
    if (back != CKR_OK) {
        if (o != CK_INVALID_HANDLE)
            (void)h->p11->C_DestroyObject(s->handle, o);
        return hsm__fail(HSM_ERR_LOGIN, "user login after the SO step: %s", hsm__ckr_name(back));
    }
    if (r != HSM_OK)
        return r;
    *out = o;
    return HSM_OK;
}

int
hsm_transport_key_import(hsm_session *s, const uint8_t key[HSM_TRANSPORT_KEY_LEN], hsm_obj *out)
{
    static const CK_OBJECT_CLASS secret = CKO_SECRET_KEY;
    static const CK_KEY_TYPE aes = CKK_AES;
    static const CK_MECHANISM_TYPE kwp[] = { CKM_AES_KEY_WRAP_PAD };
    CK_ATTRIBUTE t[] = {
        ATTR(CKA_CLASS, &secret, sizeof(secret)), ATTR(CKA_KEY_TYPE, &aes, sizeof(aes)),
        ATTR(CKA_VALUE, key, HSM_TRANSPORT_KEY_LEN), BOOL_ATTR(CKA_TOKEN, 0),
        BOOL_ATTR(CKA_PRIVATE, 1), BOOL_ATTR(CKA_SENSITIVE, 1), BOOL_ATTR(CKA_EXTRACTABLE, 0),
        BOOL_ATTR(CKA_WRAP, 0), BOOL_ATTR(CKA_UNWRAP, 1), BOOL_ATTR(CKA_ENCRYPT, 0),
        BOOL_ATTR(CKA_DECRYPT, 0), BOOL_ATTR(CKA_SIGN, 0), BOOL_ATTR(CKA_VERIFY, 0),
        BOOL_ATTR(CKA_DERIVE, 0), ATTR(CKA_ALLOWED_MECHANISMS, kwp, sizeof(kwp)),
    };
    CK_OBJECT_HANDLE o = CK_INVALID_HANDLE;
    CK_RV rv;

    if (s == NULL || key == NULL || out == NULL)
        return hsm__fail(HSM_ERR_INVALID_ARG, "hsm_transport_key_import: bad arguments");
    rv = s->h->p11->C_CreateObject(s->handle, t, sizeof(t) / sizeof(t[0]), &o);
    if (rv != CKR_OK)
        return hsm__ckr(s, "C_CreateObject(transport)", rv);
    *out = o;
    return HSM_OK;
}

int
hsm_key_backup_wrap(hsm_session *s, hsm_obj transport, hsm_key *key, uint8_t *out, size_t cap,
                    size_t *out_len)
{
    CK_MECHANISM mech = { CKM_AES_KEY_WRAP_PAD, NULL, 0 };
    CK_OBJECT_HANDLE o = CK_INVALID_HANDLE;
    CK_ULONG len = cap;
    CK_RV rv;
    int r;

    if (s == NULL || key == NULL || out == NULL || out_len == NULL || key->is_wrapped)
        return hsm__fail(HSM_ERR_INVALID_ARG, "hsm_key_backup_wrap: bad arguments");
    if ((r = hsm__key_handle(s, key, &o)) != HSM_OK)
        return r;
    rv = s->h->p11->C_WrapKey(s->handle, &mech, transport, o, out, &len);
    if (rv == CKR_BUFFER_TOO_SMALL)
        return hsm__fail(HSM_ERR_BUFFER, "wrapped %s is larger than %zu bytes", key->label, cap);
    if (rv != CKR_OK)
        return hsm__ckr(s, "C_WrapKey", rv);
    *out_len = len;
    return HSM_OK;
}

/* The public half of a restored pair, from its SubjectPublicKeyInfo, with
 * the usages of its kind. */
static int
create_public(hsm_session *s, const struct hsm__key_tmpl *k, const uint8_t *spki, size_t spki_len)
{
    static const CK_OBJECT_CLASS pub_class = CKO_PUBLIC_KEY;
    const unsigned char *p = spki;
    EVP_PKEY *pk = d2i_PUBKEY(NULL, &p, (long)spki_len);
    uint8_t point[HSM_EC_P256_POINT_LEN + 2], n[512], e[8];
    BIGNUM *bn_n = NULL, *bn_e = NULL;
    CK_ATTRIBUTE t[24];
    CK_ULONG num = k->pub_n;
    CK_OBJECT_HANDLE o = CK_INVALID_HANDLE;
    size_t point_len = 0;
    int nl, el, r = HSM_ERR_INPUT;
    CK_RV rv;

    memcpy(t, k->pub, k->pub_n * sizeof(t[0]));
    t[num++] = (CK_ATTRIBUTE)ATTR(CKA_CLASS, &pub_class, sizeof(pub_class));
    t[num++] = (CK_ATTRIBUTE)ATTR(CKA_KEY_TYPE, &k->type, sizeof(k->type));
    if (pk == NULL || p != spki + spki_len)
        goto out;
    if (k->ec) {
        /* CKA_EC_POINT is the DER OCTET STRING of the uncompressed point. */
        if (EVP_PKEY_get_base_id(pk) != EVP_PKEY_EC ||
            EVP_PKEY_get_octet_string_param(pk, OSSL_PKEY_PARAM_ENCODED_PUBLIC_KEY, point + 2,
                                            HSM_EC_P256_POINT_LEN, &point_len) != 1 ||
            point_len != HSM_EC_P256_POINT_LEN)
            goto out;
        point[0] = 0x04;
        point[1] = HSM_EC_P256_POINT_LEN;
        t[num++] = (CK_ATTRIBUTE)ATTR(CKA_EC_PARAMS, hsm__p256_oid, sizeof(hsm__p256_oid));
        t[num++] = (CK_ATTRIBUTE)ATTR(CKA_EC_POINT, point, sizeof(point));
    } else {
        if (EVP_PKEY_get_base_id(pk) != EVP_PKEY_RSA ||
            EVP_PKEY_get_bn_param(pk, OSSL_PKEY_PARAM_RSA_N, &bn_n) != 1 ||
            EVP_PKEY_get_bn_param(pk, OSSL_PKEY_PARAM_RSA_E, &bn_e) != 1 ||
            (nl = BN_bn2bin(bn_n, n)) <= 0 || (size_t)BN_num_bytes(bn_n) > sizeof(n) ||
            BN_num_bytes(bn_e) > (int)sizeof(e) || (el = BN_bn2bin(bn_e, e)) <= 0)
            goto out;
        t[num++] = (CK_ATTRIBUTE)ATTR(CKA_MODULUS, n, (CK_ULONG)nl);
        t[num++] = (CK_ATTRIBUTE)ATTR(CKA_PUBLIC_EXPONENT, e, (CK_ULONG)el);
    }
    rv = s->h->p11->C_CreateObject(s->handle, t, num, &o);
    r = hsm__ckr(s, "C_CreateObject(public key)", rv);
out:
    if (r == HSM_ERR_INPUT)
        (void)hsm__fail(HSM_ERR_INPUT, "the backup's public key does not fit its kind");
    BN_free(bn_n);
    BN_free(bn_e);
    EVP_PKEY_free(pk);
    return r;
}

int
hsm_key_restore(hsm_session *s, hsm_obj transport, hsm_key_kind kind, const char *label,
                const uint8_t *wrapped, size_t wrapped_len, const uint8_t *spki, size_t spki_len,
                hsm_key **out)
{
    CK_MECHANISM mech = { CKM_AES_KEY_WRAP_PAD, NULL, 0 };
    CK_OBJECT_HANDLE o = CK_INVALID_HANDLE;
    struct hsm__key_tmpl k;
    hsm_key *exists = NULL;
    CK_RV rv;
    int r;

    if (s == NULL || label == NULL || wrapped == NULL || out == NULL || !hsm__label_ok(label) ||
        kind < HSM_KIND_KEK || kind > HSM_KIND_RSA_UNWRAP_SIGN || kind == HSM_KIND_DEK)
        return hsm__fail(HSM_ERR_INVALID_ARG, "hsm_key_restore: bad arguments");
    r = hsm_key_find(s, label, &exists);
    if (r == HSM_OK)
        return hsm__fail(HSM_ERR_EXISTS, "a key labelled %s exists", label);
    if (r != HSM_ERR_KEY_NOT_FOUND)
        return r;
    hsm__key_tmpl_build(&k, kind, label, true);
    if (!k.secret && (spki == NULL || spki_len == 0))
        return hsm__fail(HSM_ERR_INPUT, "a key pair needs its public key");
    k.priv_n = hsm__token_tmpl(s->h, k.priv, k.priv_n);
    rv = s->h->p11->C_UnwrapKey(s->handle, &mech, transport, (CK_BYTE_PTR)wrapped, wrapped_len,
                                k.priv, k.priv_n, &o);
    if (rv != CKR_OK)
        return hsm__ckr_verify(s, "C_UnwrapKey", rv);
    if (!k.secret && (r = create_public(s, &k, spki, spki_len)) != HSM_OK) {
        (void)s->h->p11->C_DestroyObject(s->handle, o);
        return r;
    }
    return hsm_key_find(s, label, out);
}

int
hsm_key_digest_kcv(hsm_session *s, hsm_key *key, uint8_t out[HSM_KCV_LEN])
{
    CK_MECHANISM mech = { CKM_SHA256, NULL, 0 };
    CK_OBJECT_HANDLE o = CK_INVALID_HANDLE;
    uint8_t md[32];
    CK_ULONG len = sizeof(md);
    CK_RV rv;
    int r;

    if (s == NULL || key == NULL || out == NULL || key->klass != CKO_SECRET_KEY)
        return hsm__fail(HSM_ERR_INVALID_ARG, "hsm_key_digest_kcv: a secret key is needed");
    if ((r = hsm__key_handle(s, key, &o)) != HSM_OK)
        return r;
    rv = s->h->p11->C_DigestInit(s->handle, &mech);
    if (rv == CKR_OK)
        rv = s->h->p11->C_DigestKey(s->handle, o);
    if (rv == CKR_OK)
        rv = s->h->p11->C_DigestFinal(s->handle, md, &len);
    else
        (void)s->h->p11->C_DigestFinal(s->handle, md, &len); /* ends the operation */
    if (rv != CKR_OK)
        return hsm__ckr(s, "C_DigestKey", rv);
    memcpy(out, md, HSM_KCV_LEN);
    OPENSSL_cleanse(md, sizeof(md));
    return HSM_OK;
}
