/*
 * pubkey.c - public keys between the token and OpenSSL: DER SubjectPublicKeyInfo
 * out of a key pair, and into a session object for verification. Parsing of
 * untrusted DER is OpenSSL's; this file checks lengths, curves and points.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <openssl/x509.h>

#include "hsm/internal.h"

/* id-prime256v1 and secp384r1 as DER OBJECT IDENTIFIERs (RFC 5480). */
const uint8_t hsm__p256_oid[10] = { 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07 };
const uint8_t hsm__p384_oid[7] = { 0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x22 };

/* Uncompressed points: 04 || X || Y. */
#define P256_POINT_LEN 65
#define P384_POINT_LEN 97

/* The DER of a P-256 SubjectPublicKeyInfo up to its point: SEQUENCE {
 * SEQUENCE { id-ecPublicKey, prime256v1 }, BIT STRING (0 unused bits) }.
 * Every P-256 key the wallets send is in this exact form (RFC 5480 named
 * curve, uncompressed point), 91 bytes in all. */
static const uint8_t p256_spki_prefix[26] = {
    0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01,
    0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00,
};
#define P256_SPKI_LEN (sizeof(p256_spki_prefix) + P256_POINT_LEN)

/* One P-256 group for the process: building it costs more than checking a
 * point, and it is read-only once built. */
static EC_GROUP *p256_group;
static pthread_once_t p256_once = PTHREAD_ONCE_INIT;

static void
p256_init(void)
{
    p256_group = EC_GROUP_new_by_curve_name(NID_X9_62_prime256v1);
}

int
hsm__p256_point_check(const uint8_t *point, size_t len)
{
    EC_POINT *pt;
    int ok;

    if (len != P256_POINT_LEN || point[0] != 0x04)
        return HSM_ERR_INPUT;
    pthread_once(&p256_once, p256_init);
    if (p256_group == NULL || (pt = EC_POINT_new(p256_group)) == NULL)
        return HSM_ERR_NO_MEMORY;
    /* oct2point refuses a point off the curve; the point at infinity has no
     * uncompressed encoding, but is refused explicitly all the same. */
    ok = EC_POINT_oct2point(p256_group, pt, point, len, NULL) == 1 &&
         EC_POINT_is_at_infinity(p256_group, pt) == 0 &&
         EC_POINT_is_on_curve(p256_group, pt, NULL) == 1;
    EC_POINT_free(pt);
    ERR_clear_error();
    return ok ? HSM_OK : HSM_ERR_INPUT;
}

int
hsm_ec_p256_spki_point(const uint8_t *spki, size_t len, uint8_t point[HSM_EC_P256_POINT_LEN])
{
    if (spki == NULL || point == NULL)
        return HSM_ERR_INVALID_ARG;
    if (len != P256_SPKI_LEN || memcmp(spki, p256_spki_prefix, sizeof(p256_spki_prefix)) != 0)
        return hsm__fail(HSM_ERR_INPUT, "not a named-curve P-256 SubjectPublicKeyInfo");
    if (hsm__p256_point_check(spki + sizeof(p256_spki_prefix), P256_POINT_LEN) != HSM_OK)
        return hsm__fail(HSM_ERR_INPUT, "P-256 point not on the curve");
    memcpy(point, spki + sizeof(p256_spki_prefix), P256_POINT_LEN);
    return HSM_OK;
}

/* Reads a variable-length attribute of at most |max| bytes into a malloc'd
 * buffer. An empty attribute gives *out = NULL, *out_len = 0. */
int
hsm__attr_read_max(hsm_session *s, CK_OBJECT_HANDLE o, CK_ATTRIBUTE_TYPE t, size_t max, uint8_t **out,
              size_t *out_len)
{
    CK_ATTRIBUTE a = ATTR(t, NULL, 0);
    uint8_t *buf = NULL;
    CK_RV rv;

    rv = s->h->p11->C_GetAttributeValue(s->handle, o, &a, 1);
    if (rv != CKR_OK)
        return hsm__ckr(s, "C_GetAttributeValue", rv);
    if (a.ulValueLen == CK_UNAVAILABLE_INFORMATION || a.ulValueLen > max)
        return hsm__fail(HSM_ERR_INPUT, "attribute 0x%lx of %lu bytes", (unsigned long)t,
                         (unsigned long)a.ulValueLen);
    if (a.ulValueLen == 0) {
        *out = NULL;
        *out_len = 0;
        return HSM_OK;
    }
    if ((buf = malloc(a.ulValueLen)) == NULL)
        return HSM_ERR_NO_MEMORY;
    a.pValue = buf;
    rv = s->h->p11->C_GetAttributeValue(s->handle, o, &a, 1);
    if (rv != CKR_OK) {
        free(buf);
        return hsm__ckr(s, "C_GetAttributeValue", rv);
    }
    *out = buf;
    *out_len = a.ulValueLen;
    return HSM_OK;
}

int
hsm__attr_read(hsm_session *s, CK_OBJECT_HANDLE o, CK_ATTRIBUTE_TYPE t, uint8_t **out,
               size_t *out_len)
{
    int r = hsm__attr_read_max(s, o, t, HSM_SPKI_MAX, out, out_len);

    if (r == HSM_OK && *out_len == 0)
        return hsm__fail(HSM_ERR_INTERNAL, "attribute 0x%lx is empty", (unsigned long)t);
    return r == HSM_ERR_INPUT ? HSM_ERR_INTERNAL : r;
}

int
hsm__der_octets(const uint8_t *der, size_t len, const uint8_t **out, size_t *out_len)
{
    size_t n, hdr;

    if (len < 2 || der[0] != 0x04)
        return HSM_ERR_INPUT;
    if (der[1] < 0x80) {
        n = der[1];
        hdr = 2;
    } else if (der[1] == 0x81 && len >= 3 && der[2] >= 0x80) {
        n = der[2];
        hdr = 3;
    } else {
        return HSM_ERR_INPUT;
    }
    if (n != len - hdr)
        return HSM_ERR_INPUT;
    *out = der + hdr;
    *out_len = n;
    return HSM_OK;
}

int
hsm__ec_pkey_from_point(const char *group, const uint8_t *point, size_t len, EVP_PKEY **out)
{
    OSSL_PARAM_BLD *bld = NULL;
    OSSL_PARAM *params = NULL;
    EVP_PKEY_CTX *ctx = NULL, *check = NULL;
    EVP_PKEY *pkey = NULL;
    int r = HSM_ERR_INPUT;

    bld = OSSL_PARAM_BLD_new();
    if (bld == NULL ||
        !OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME, group, 0) ||
        !OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, point, len) ||
        (params = OSSL_PARAM_BLD_to_param(bld)) == NULL) {
        r = HSM_ERR_NO_MEMORY;
        goto out;
    }
    ctx = EVP_PKEY_CTX_new_from_name(NULL, "EC", NULL);
    if (ctx == NULL || EVP_PKEY_fromdata_init(ctx) <= 0 ||
        EVP_PKEY_fromdata(ctx, &pkey, EVP_PKEY_PUBLIC_KEY, params) <= 0)
        goto out;
    /* fromdata decodes the point; public_check also rejects the point at
     * infinity and points off the curve (a classic invalid-curve attack on
     * ECDH with a static key). */
    check = EVP_PKEY_CTX_new_from_pkey(NULL, pkey, NULL);
    if (check == NULL || EVP_PKEY_public_check(check) != 1)
        goto out;
    *out = pkey;
    pkey = NULL;
    r = HSM_OK;
out:
    EVP_PKEY_free(pkey);
    EVP_PKEY_CTX_free(check);
    EVP_PKEY_CTX_free(ctx);
    OSSL_PARAM_free(params);
    OSSL_PARAM_BLD_free(bld);
    return r;
}

/* The public object of a pair shares the private key's label. */
static int
find_public(hsm_session *s, const char *label, CK_OBJECT_HANDLE *out)
{
    static const CK_OBJECT_CLASS pub = CKO_PUBLIC_KEY;
    CK_ATTRIBUTE t[] = { ATTR(CKA_CLASS, &pub, sizeof(pub)), ATTR(CKA_LABEL, label, strlen(label)),
                         BOOL_ATTR(CKA_TOKEN, 1) };
    CK_OBJECT_HANDLE o[2];
    CK_ULONG num = 0;
    CK_RV rv;
    int r;

    rv = s->h->p11->C_FindObjectsInit(s->handle, t, 3);
    if (rv != CKR_OK)
        return hsm__ckr(s, "C_FindObjectsInit", rv);
    rv = s->h->p11->C_FindObjects(s->handle, o, 2, &num);
    r = hsm__ckr(s, "C_FindObjects", rv);
    (void)s->h->p11->C_FindObjectsFinal(s->handle);
    if (r != HSM_OK)
        return r;
    if (num != 1)
        return hsm__fail(HSM_ERR_KEY_NOT_FOUND, "%lu public keys labelled %s", (unsigned long)num,
                         label);
    *out = o[0];
    return HSM_OK;
}

static int
rsa_pkey(const uint8_t *n, size_t n_len, const uint8_t *e, size_t e_len, EVP_PKEY **out)
{
    OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
    OSSL_PARAM *params = NULL;
    EVP_PKEY_CTX *ctx = NULL;
    BIGNUM *bn_n = BN_bin2bn(n, (int)n_len, NULL), *bn_e = BN_bin2bn(e, (int)e_len, NULL);
    int r = HSM_ERR_INTERNAL;

    if (bld == NULL || bn_n == NULL || bn_e == NULL ||
        !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, bn_n) ||
        !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, bn_e) ||
        (params = OSSL_PARAM_BLD_to_param(bld)) == NULL)
        goto out;
    ctx = EVP_PKEY_CTX_new_from_name(NULL, "RSA", NULL);
    if (ctx == NULL || EVP_PKEY_fromdata_init(ctx) <= 0 ||
        EVP_PKEY_fromdata(ctx, out, EVP_PKEY_PUBLIC_KEY, params) <= 0)
        goto out;
    r = HSM_OK;
out:
    EVP_PKEY_CTX_free(ctx);
    OSSL_PARAM_free(params);
    OSSL_PARAM_BLD_free(bld);
    BN_free(bn_n);
    BN_free(bn_e);
    return r;
}

int
hsm_key_public_spki(hsm_session *s, hsm_key *key, uint8_t *out, size_t cap, size_t *out_len)
{
    CK_OBJECT_HANDLE o = CK_INVALID_HANDLE;
    uint8_t *a = NULL, *b = NULL, *der = NULL;
    size_t a_len = 0, b_len = 0;
    const uint8_t *point;
    size_t point_len;
    EVP_PKEY *pkey = NULL;
    int der_len, r;

    if (s == NULL || key == NULL || out_len == NULL)
        return HSM_ERR_INVALID_ARG;
    if (key->klass != CKO_PRIVATE_KEY)
        return hsm__fail(HSM_ERR_KEY_TYPE, "%s is not a key pair", key->label);
    r = find_public(s, key->label, &o);
    if (r != HSM_OK)
        return r;
    if (key->kind == HSM_KIND_EC_SIGN || key->kind == HSM_KIND_EC_DERIVE ||
        key->kind == HSM_KIND_EC_DERIVE_SIGN) {
        r = hsm__attr_read(s, o, CKA_EC_POINT, &a, &a_len);
        if (r != HSM_OK)
            goto out;
        if (hsm__der_octets(a, a_len, &point, &point_len) != HSM_OK ||
            hsm__ec_pkey_from_point("prime256v1", point, point_len, &pkey) != HSM_OK) {
            r = hsm__fail(HSM_ERR_INTERNAL, "token holds a bad EC point for %s", key->label);
            goto out;
        }
    } else {
        if ((r = hsm__attr_read(s, o, CKA_MODULUS, &a, &a_len)) != HSM_OK ||
            (r = hsm__attr_read(s, o, CKA_PUBLIC_EXPONENT, &b, &b_len)) != HSM_OK ||
            (r = rsa_pkey(a, a_len, b, b_len, &pkey)) != HSM_OK)
            goto out;
    }
    der_len = i2d_PUBKEY(pkey, &der);
    if (der_len <= 0) {
        r = hsm__fail(HSM_ERR_INTERNAL, "cannot encode the public key of %s", key->label);
        goto out;
    }
    r = hsm__copy_out(out, cap, der, (size_t)der_len, out_len);
out:
    OPENSSL_free(der);
    EVP_PKEY_free(pkey);
    free(a);
    free(b);
    return r;
}

int
hsm_ec_public_import(hsm_session *s, const uint8_t *spki, size_t spki_len, hsm_obj *out)
{
    static const CK_OBJECT_CLASS pub = CKO_PUBLIC_KEY;
    static const CK_KEY_TYPE ec = CKK_EC;
    const unsigned char *p = spki;
    EVP_PKEY *pkey = NULL, *checked = NULL;
    char group[32];
    uint8_t point[P384_POINT_LEN], der_point[P384_POINT_LEN + 2];
    size_t point_len = 0;
    const uint8_t *oid;
    size_t oid_len;
    CK_OBJECT_HANDLE o = CK_INVALID_HANDLE;
    CK_RV rv;
    int r = HSM_ERR_INPUT;

    if (s == NULL || spki == NULL || out == NULL)
        return HSM_ERR_INVALID_ARG;
    if (spki_len == 0 || spki_len > HSM_SPKI_MAX)
        return hsm__fail(HSM_ERR_INPUT, "SubjectPublicKeyInfo of %zu bytes", spki_len);
    /* The common case (every wallet key) without OpenSSL's generic decoder,
     * which costs more than the verify the key is imported for. */
    if (spki_len == P256_SPKI_LEN && memcmp(spki, p256_spki_prefix, sizeof(p256_spki_prefix)) == 0) {
        if (hsm__p256_point_check(spki + sizeof(p256_spki_prefix), P256_POINT_LEN) != HSM_OK)
            return hsm__fail(HSM_ERR_INPUT, "invalid EC point");
        memcpy(point, spki + sizeof(p256_spki_prefix), P256_POINT_LEN);
        point_len = P256_POINT_LEN;
        oid = hsm__p256_oid;
        oid_len = sizeof(hsm__p256_oid);
        goto create;
    }
    pkey = d2i_PUBKEY(NULL, &p, (long)spki_len);
    if (pkey == NULL || p != spki + spki_len) {
        r = hsm__fail(HSM_ERR_INPUT, "not a DER SubjectPublicKeyInfo (or trailing bytes)");
        goto out;
    }
    if (EVP_PKEY_get_base_id(pkey) != EVP_PKEY_EC ||
        !EVP_PKEY_get_utf8_string_param(pkey, OSSL_PKEY_PARAM_GROUP_NAME, group, sizeof(group),
                                        NULL)) {
        r = hsm__fail(HSM_ERR_INPUT, "not an EC public key");
        goto out;
    }
    if (strcmp(group, "prime256v1") == 0) {
        oid = hsm__p256_oid;
        oid_len = sizeof(hsm__p256_oid);
    } else if (strcmp(group, "secp384r1") == 0) {
        oid = hsm__p384_oid;
        oid_len = sizeof(hsm__p384_oid);
    } else {
        r = hsm__fail(HSM_ERR_INPUT, "curve %s not accepted", group);
        goto out;
    }
    if (EVP_PKEY_set_utf8_string_param(pkey, OSSL_PKEY_PARAM_EC_POINT_CONVERSION_FORMAT,
                                       "uncompressed") != 1 ||
        !EVP_PKEY_get_octet_string_param(pkey, OSSL_PKEY_PARAM_PUB_KEY, point, sizeof(point),
                                         &point_len) ||
        hsm__ec_pkey_from_point(group, point, point_len, &checked) != HSM_OK) {
        r = hsm__fail(HSM_ERR_INPUT, "invalid EC point");
        goto out;
    }
create:
    /* CKA_EC_POINT must be the DER OCTET STRING: a raw point is accepted at
     * create by SoftHSM but then fails every verify (HSM-NOTES Q5). */
    der_point[0] = 0x04;
    der_point[1] = (uint8_t)point_len;
    memcpy(der_point + 2, point, point_len);
    CK_ATTRIBUTE t[] = {
        ATTR(CKA_CLASS, &pub, sizeof(pub)), ATTR(CKA_KEY_TYPE, &ec, sizeof(ec)),
        ATTR(CKA_EC_PARAMS, oid, oid_len), ATTR(CKA_EC_POINT, der_point, point_len + 2),
        BOOL_ATTR(CKA_TOKEN, 0), BOOL_ATTR(CKA_VERIFY, 1), BOOL_ATTR(CKA_ENCRYPT, 0),
        BOOL_ATTR(CKA_WRAP, 0), BOOL_ATTR(CKA_DERIVE, 0),
    };
    rv = s->h->p11->C_CreateObject(s->handle, t, sizeof(t) / sizeof(t[0]), &o);
    if ((r = hsm__ckr(s, "C_CreateObject", rv)) != HSM_OK)
        goto out;
    *out = o;
    r = HSM_OK;
out:
    EVP_PKEY_free(pkey);
    EVP_PKEY_free(checked);
    return r;
}

int
hsm_rsa_public_import(hsm_session *s, const uint8_t *spki, size_t spki_len, hsm_obj *out)
{
    static const CK_OBJECT_CLASS pub = CKO_PUBLIC_KEY;
    static const CK_KEY_TYPE rsa = CKK_RSA;
    const unsigned char *p = spki;
    EVP_PKEY *pkey = NULL;
    BIGNUM *n = NULL, *e = NULL;
    uint8_t mod[HSM_RSA_PUBLIC_BITS_MAX / 8], exp[8];
    int bits, mod_len, exp_len, r = HSM_ERR_INPUT;
    CK_OBJECT_HANDLE o = CK_INVALID_HANDLE;
    CK_RV rv;

    if (s == NULL || spki == NULL || out == NULL)
        return HSM_ERR_INVALID_ARG;
    if (spki_len == 0 || spki_len > HSM_SPKI_MAX)
        return hsm__fail(HSM_ERR_INPUT, "SubjectPublicKeyInfo of %zu bytes", spki_len);
    pkey = d2i_PUBKEY(NULL, &p, (long)spki_len);
    if (pkey == NULL || p != spki + spki_len || EVP_PKEY_get_base_id(pkey) != EVP_PKEY_RSA) {
        r = hsm__fail(HSM_ERR_INPUT, "not a DER RSA SubjectPublicKeyInfo (or trailing bytes)");
        goto out;
    }
    bits = EVP_PKEY_get_bits(pkey);
    if (bits < HSM_RSA_PUBLIC_BITS_MIN || bits > HSM_RSA_PUBLIC_BITS_MAX ||
        !EVP_PKEY_get_bn_param(pkey, OSSL_PKEY_PARAM_RSA_N, &n) ||
        !EVP_PKEY_get_bn_param(pkey, OSSL_PKEY_PARAM_RSA_E, &e) ||
        BN_num_bytes(e) > (int)sizeof(exp)) {
        r = hsm__fail(HSM_ERR_INPUT, "RSA key of %d bits or an odd exponent", bits);
        goto out;
    }
    mod_len = BN_bn2bin(n, mod);
    exp_len = BN_bn2bin(e, exp);
    CK_ATTRIBUTE t[] = {
        ATTR(CKA_CLASS, &pub, sizeof(pub)), ATTR(CKA_KEY_TYPE, &rsa, sizeof(rsa)),
        ATTR(CKA_MODULUS, mod, (CK_ULONG)mod_len), ATTR(CKA_PUBLIC_EXPONENT, exp, (CK_ULONG)exp_len),
        BOOL_ATTR(CKA_TOKEN, 0), BOOL_ATTR(CKA_VERIFY, 1), BOOL_ATTR(CKA_ENCRYPT, 0),
        BOOL_ATTR(CKA_WRAP, 0),
    };
    rv = s->h->p11->C_CreateObject(s->handle, t, sizeof(t) / sizeof(t[0]), &o);
    if ((r = hsm__ckr(s, "C_CreateObject", rv)) != HSM_OK)
        goto out;
    *out = o;
    r = HSM_OK;
out:
    BN_free(n);
    BN_free(e);
    EVP_PKEY_free(pkey);
    return r;
}
