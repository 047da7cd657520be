/*
 * ops_ec.c - EC operations: ECDH into a sensitive secret (the wallet KDFs
 * over it are in kdf.c), ECDSA sign and verify, EC key import;
 * and beside it the RSA wallet-key import and the undo of either import.
 */
#include <stdlib.h>
#include <string.h>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>

#include "hsm/internal.h"

#define P256_SCALAR_LEN 32
#define P384_SCALAR_LEN 48

int
hsm_ecdh_derive(hsm_session *s, hsm_key *key, const uint8_t *point, size_t point_len,
                hsm_obj *out_z)
{
    static const CK_OBJECT_CLASS secret = CKO_SECRET_KEY;
    static const CK_KEY_TYPE generic = CKK_GENERIC_SECRET;
    CK_ULONG z_len = HSM_ECDH_P256_Z_LEN;
    CK_ECDH1_DERIVE_PARAMS p;
    CK_MECHANISM mech = { CKM_ECDH1_DERIVE, &p, sizeof(p) };
    /* Z: a session object the host cannot read, fit only for digesting, or
     * for deriving where a KDF runs in the token (kdf.c). SoftHSM cannot
     * forbid a later extractable derive (HSM-NOTES Q1): that is why only
     * this code path derives from wallet keys, and why Z is derivable only
     * on a token whose probe chose an in-token KDF. */
    bool derive = s != NULL && (s->h->probe.apple_ec_kdf == HSM_PATH_IN_TOKEN ||
                                s->h->probe.google_hkdf == HSM_PATH_IN_TOKEN);
    CK_ATTRIBUTE t[] = {
        ATTR(CKA_CLASS, &secret, sizeof(secret)), ATTR(CKA_KEY_TYPE, &generic, sizeof(generic)),
        ATTR(CKA_VALUE_LEN, &z_len, sizeof(z_len)), BOOL_ATTR(CKA_TOKEN, 0),
        BOOL_ATTR(CKA_PRIVATE, 1), BOOL_ATTR(CKA_SENSITIVE, 1), BOOL_ATTR(CKA_EXTRACTABLE, 0),
        BOOL_ATTR(CKA_ENCRYPT, 0), BOOL_ATTR(CKA_DECRYPT, 0), BOOL_ATTR(CKA_WRAP, 0),
        BOOL_ATTR(CKA_UNWRAP, 0), BOOL_ATTR(CKA_SIGN, 0), BOOL_ATTR(CKA_VERIFY, 0),
        BOOL_ATTR(CKA_DERIVE, derive),
    };
    CK_OBJECT_HANDLE k = CK_INVALID_HANDLE, z = CK_INVALID_HANDLE;
    CK_RV rv;
    int r;

    if (s == NULL || key == NULL || point == NULL || out_z == NULL)
        return HSM_ERR_INVALID_ARG;
    if (key->kind != HSM_KIND_EC_DERIVE && key->kind != HSM_KIND_EC_DERIVE_SIGN)
        return hsm__fail(HSM_ERR_KEY_TYPE, "%s is not an ECDH key", key->label);
    /* Tokens differ on off-curve points (SoftHSM: CKR_GENERAL_ERROR); check
     * on the host so every token refuses them the same way. */
    if (hsm__p256_point_check(point, point_len) != HSM_OK)
        return hsm__fail(HSM_ERR_INPUT, "peer key is not a valid uncompressed P-256 point");
    if ((r = hsm__key_handle(s, key, &k)) != HSM_OK)
        return r;
    memset(&p, 0, sizeof(p));
    p.kdf = CKD_NULL;
    p.pPublicData = (CK_BYTE_PTR)point;
    p.ulPublicDataLen = point_len;
    rv = s->h->p11->C_DeriveKey(s->handle, &mech, k, t, sizeof(t) / sizeof(t[0]), &z);
    if ((r = hsm__ckr(s, "C_DeriveKey(ECDH1)", rv)) != HSM_OK)
        return r;
    *out_z = z;
    return HSM_OK;
}

/* Scalar length of the curve of a public key object, from its point. */
static int
pub_scalar_len(hsm_session *s, CK_OBJECT_HANDLE o, size_t *out)
{
    uint8_t *der = NULL;
    size_t der_len = 0, point_len = 0;
    const uint8_t *point;
    int r;

    r = hsm__attr_read(s, o, CKA_EC_POINT, &der, &der_len);
    if (r != HSM_OK)
        return r;
    r = hsm__der_octets(der, der_len, &point, &point_len);
    free(der);
    if (r != HSM_OK || (point_len != 2 * P256_SCALAR_LEN + 1 && point_len != 2 * P384_SCALAR_LEN + 1))
        return hsm__fail(HSM_ERR_KEY_TYPE, "public key object is not P-256 or P-384");
    *out = (point_len - 1) / 2;
    return HSM_OK;
}

int
hsm_ecdsa_verify(hsm_session *s, hsm_obj pub, const uint8_t *digest, size_t digest_len,
                 const uint8_t *sig, size_t sig_len)
{
    CK_MECHANISM mech = { CKM_ECDSA, NULL, 0 };
    const unsigned char *p = sig;
    unsigned char *reenc = NULL;
    uint8_t raw[2 * P384_SCALAR_LEN];
    ECDSA_SIG *es = NULL;
    const BIGNUM *br, *bs;
    size_t n = 0;
    int reenc_len, r;
    CK_RV rv;

    if (s == NULL || pub == HSM_OBJ_NONE || digest == NULL || sig == NULL || digest_len == 0 ||
        digest_len > 64)
        return HSM_ERR_INVALID_ARG;
    if (sig_len == 0 || sig_len > HSM_ECDSA_SIG_MAX)
        return hsm__fail(HSM_ERR_INPUT, "signature of %zu bytes", sig_len);
    if ((r = pub_scalar_len(s, pub, &n)) != HSM_OK)
        return r;
    /* Strict DER: it must parse, consume every byte, and re-encode to the same
     * bytes (no BER leniency, no malleable encodings). */
    es = d2i_ECDSA_SIG(NULL, &p, (long)sig_len);
    if (es == NULL || p != sig + sig_len) {
        r = hsm__fail(HSM_ERR_INPUT, "signature is not DER ECDSA-Sig-Value");
        goto out;
    }
    reenc_len = i2d_ECDSA_SIG(es, &reenc);
    if (reenc_len <= 0 || (size_t)reenc_len != sig_len || memcmp(reenc, sig, sig_len) != 0) {
        r = hsm__fail(HSM_ERR_INPUT, "signature is not canonical DER");
        goto out;
    }
    ECDSA_SIG_get0(es, &br, &bs);
    if (BN_num_bytes(br) > (int)n || BN_num_bytes(bs) > (int)n ||
        BN_bn2binpad(br, raw, (int)n) < 0 || BN_bn2binpad(bs, raw + n, (int)n) < 0) {
        r = hsm__fail(HSM_ERR_VERIFY, "signature values out of range");
        goto out;
    }
    rv = s->h->p11->C_VerifyInit(s->handle, &mech, pub);
    if ((r = hsm__ckr(s, "C_VerifyInit", rv)) != HSM_OK)
        goto out;
    rv = s->h->p11->C_Verify(s->handle, (CK_BYTE_PTR)digest, digest_len, raw, 2 * n);
    r = hsm__ckr_signature(s, "C_Verify", rv);
out:
    OPENSSL_free(reenc);
    ECDSA_SIG_free(es);
    return r;
}

int
hsm_ecdsa_sign(hsm_session *s, hsm_key *key, const uint8_t *digest, size_t digest_len,
               uint8_t *out, size_t cap, size_t *out_len)
{
    CK_MECHANISM mech = { CKM_ECDSA, NULL, 0 };
    uint8_t raw[2 * P256_SCALAR_LEN];
    CK_ULONG raw_len = sizeof(raw);
    CK_OBJECT_HANDLE k = CK_INVALID_HANDLE;
    ECDSA_SIG *es = NULL;
    BIGNUM *br = NULL, *bs = NULL;
    unsigned char *der = NULL;
    int der_len, r;
    CK_RV rv;

    if (s == NULL || key == NULL || digest == NULL || digest_len == 0 || digest_len > 64 ||
        out_len == NULL)
        return HSM_ERR_INVALID_ARG;
    if (key->kind != HSM_KIND_EC_SIGN && key->kind != HSM_KIND_EC_DERIVE_SIGN)
        return hsm__fail(HSM_ERR_KEY_TYPE, "%s is not a signing key", key->label);
    if ((r = hsm__key_handle(s, key, &k)) != HSM_OK)
        return r;
    rv = s->h->p11->C_SignInit(s->handle, &mech, k);
    if ((r = hsm__ckr(s, "C_SignInit", rv)) != HSM_OK)
        return r;
    rv = s->h->p11->C_Sign(s->handle, (CK_BYTE_PTR)digest, digest_len, raw, &raw_len);
    if ((r = hsm__ckr(s, "C_Sign", rv)) != HSM_OK)
        return r;
    if (raw_len != sizeof(raw))
        return hsm__fail(HSM_ERR_INTERNAL, "ECDSA signature of %lu bytes", (unsigned long)raw_len);
    es = ECDSA_SIG_new();
    br = BN_bin2bn(raw, P256_SCALAR_LEN, NULL);
    bs = BN_bin2bn(raw + P256_SCALAR_LEN, P256_SCALAR_LEN, NULL);
    if (es == NULL || br == NULL || bs == NULL || ECDSA_SIG_set0(es, br, bs) != 1) {
        BN_free(br);
        BN_free(bs);
        r = HSM_ERR_NO_MEMORY;
        goto out;
    }
    der_len = i2d_ECDSA_SIG(es, &der);
    if (der_len <= 0) {
        r = HSM_ERR_NO_MEMORY;
        goto out;
    }
    r = hsm__copy_out(out, cap, der, (size_t)der_len, out_len);
out:
    OPENSSL_free(der);
    ECDSA_SIG_free(es);
    return r;
}

int
hsm_ec_private_import(hsm_session *s, const char *label, const uint8_t *der, size_t der_len,
                      hsm_key **out)
{
    static const CK_OBJECT_CLASS priv = CKO_PRIVATE_KEY, pubc = CKO_PUBLIC_KEY;
    static const CK_KEY_TYPE ec = CKK_EC;
    static const CK_MECHANISM_TYPE derive_mechs[] = { CKM_ECDH1_DERIVE };
    const unsigned char *p = der;
    EVP_PKEY *pkey = NULL;
    BIGNUM *d = NULL;
    char group[32];
    uint8_t scalar[P256_SCALAR_LEN], point[HSM_EC_P256_POINT_LEN + 2];
    size_t point_len = 0;
    CK_OBJECT_HANDLE o = CK_INVALID_HANDLE, pub = CK_INVALID_HANDLE;
    hsm_key *k = NULL;
    CK_RV rv;
    int r;

    if (s == NULL || label == NULL || der == NULL || out == NULL)
        return HSM_ERR_INVALID_ARG;
    if (der_len == 0 || der_len > HSM_PRIVKEY_DER_MAX)
        return hsm__fail(HSM_ERR_INPUT, "private key of %zu bytes", der_len);
    /* d2i_AutoPrivateKey takes PKCS#8 and SEC1 (RFC 5915). */
    pkey = d2i_AutoPrivateKey(NULL, &p, (long)der_len);
    if (pkey == NULL || p != der + der_len || EVP_PKEY_get_base_id(pkey) != EVP_PKEY_EC ||
        !EVP_PKEY_get_utf8_string_param(pkey, OSSL_PKEY_PARAM_GROUP_NAME, group, sizeof(group),
                                        NULL) ||
        strcmp(group, "prime256v1") != 0) {
        r = hsm__fail(HSM_ERR_INPUT, "not a DER EC P-256 private key");
        goto out;
    }
    if (!EVP_PKEY_get_bn_param(pkey, OSSL_PKEY_PARAM_PRIV_KEY, &d) ||
        BN_bn2binpad(d, scalar, sizeof(scalar)) < 0 ||
        EVP_PKEY_set_utf8_string_param(pkey, OSSL_PKEY_PARAM_EC_POINT_CONVERSION_FORMAT,
                                       "uncompressed") != 1 ||
        !EVP_PKEY_get_octet_string_param(pkey, OSSL_PKEY_PARAM_PUB_KEY, point + 2,
                                         HSM_EC_P256_POINT_LEN, &point_len) ||
        point_len != HSM_EC_P256_POINT_LEN) {
        r = hsm__fail(HSM_ERR_INPUT, "EC private key lacks a usable scalar or public point");
        goto out;
    }
    point[0] = 0x04;
    point[1] = HSM_EC_P256_POINT_LEN;
    {
        CK_ATTRIBUTE t[] = {
            ATTR(CKA_CLASS, &priv, sizeof(priv)), ATTR(CKA_KEY_TYPE, &ec, sizeof(ec)),
            ATTR(CKA_LABEL, label, strlen(label)), ATTR(CKA_ID, label, strlen(label)),
            ATTR(CKA_EC_PARAMS, hsm__p256_oid, sizeof(hsm__p256_oid)),
            ATTR(CKA_VALUE, scalar, sizeof(scalar)), BOOL_ATTR(CKA_TOKEN, 1),
            /* Extractable only under an SO-made trusted key, as a generated
             * key (keys.c): the backup ceremony must clone it like the
             * others, and a user's own key cannot wrap it out. */
            BOOL_ATTR(CKA_PRIVATE, 1), BOOL_ATTR(CKA_SENSITIVE, 1), BOOL_ATTR(CKA_EXTRACTABLE, 1),
            BOOL_ATTR(CKA_WRAP_WITH_TRUSTED, 1), BOOL_ATTR(CKA_MODIFIABLE, 0),
            BOOL_ATTR(CKA_COPYABLE, 0), BOOL_ATTR(CKA_SIGN, 0),
            BOOL_ATTR(CKA_SIGN_RECOVER, 0), BOOL_ATTR(CKA_DECRYPT, 0), BOOL_ATTR(CKA_UNWRAP, 0),
            BOOL_ATTR(CKA_DERIVE, 1), ATTR(CKA_ALLOWED_MECHANISMS, derive_mechs, sizeof(derive_mechs)),
        };
        CK_ATTRIBUTE pt[] = {
            ATTR(CKA_CLASS, &pubc, sizeof(pubc)), ATTR(CKA_KEY_TYPE, &ec, sizeof(ec)),
            ATTR(CKA_LABEL, label, strlen(label)), ATTR(CKA_ID, label, strlen(label)),
            ATTR(CKA_EC_PARAMS, hsm__p256_oid, sizeof(hsm__p256_oid)),
            ATTR(CKA_EC_POINT, point, point_len + 2), BOOL_ATTR(CKA_TOKEN, 1),
            BOOL_ATTR(CKA_PRIVATE, 0), BOOL_ATTR(CKA_MODIFIABLE, 0), BOOL_ATTR(CKA_VERIFY, 0),
            BOOL_ATTR(CKA_ENCRYPT, 0), BOOL_ATTR(CKA_WRAP, 0), BOOL_ATTR(CKA_DERIVE, 0),
        };
        hsm_key *exists = NULL;

        r = hsm_key_find(s, label, &exists);
        if (r == HSM_OK) {
            r = hsm__fail(HSM_ERR_EXISTS, "a key labelled %s exists", label);
            goto out;
        }
        if (r != HSM_ERR_KEY_NOT_FOUND)
            goto out;
        rv = s->h->p11->C_CreateObject(s->handle, t,
                                       hsm__token_tmpl(s->h, t, sizeof(t) / sizeof(t[0])), &o);
        if ((r = hsm__ckr(s, "C_CreateObject", rv)) != HSM_OK)
            goto out;
        rv = s->h->p11->C_CreateObject(s->handle, pt, sizeof(pt) / sizeof(pt[0]), &pub);
        if ((r = hsm__ckr(s, "C_CreateObject", rv)) != HSM_OK) {
            s->h->p11->C_DestroyObject(s->handle, o);
            goto out;
        }
    }
    r = hsm_key_find(s, label, &k);
    if (r == HSM_OK)
        *out = k;
out:
    OPENSSL_cleanse(scalar, sizeof(scalar));
    BN_clear_free(d);
    EVP_PKEY_free(pkey);
    return r;
}

/* ---- RSA wallet-key import (beside the EC one: both bring a key made
 * outside the HSM in, and hsm_key_import_undo takes either back out) ------ */

/* The one RSA size and exponent the vault's wallet keys have (keys.c
 * generates RSA-2048 with F4; Samsung Pay and Apple Pay RSA_v1 use them). */
#define RSA_IMPORT_BITS 2048
#define RSA_IMPORT_LEN (RSA_IMPORT_BITS / 8)
#define RSA_IMPORT_F4 65537UL
/* The components of a two-prime RSA private key object (PKCS#11 2.40
 * section 2.1.3), with the OpenSSL parameter each comes from. The modulus
 * and public exponent come first: the public object takes those two. */
#define RSA_NUM_COMPONENTS 8
static const struct {
    const char *param;
    CK_ATTRIBUTE_TYPE type;
} rsa_components[RSA_NUM_COMPONENTS] = {
    { OSSL_PKEY_PARAM_RSA_N, CKA_MODULUS },
    { OSSL_PKEY_PARAM_RSA_E, CKA_PUBLIC_EXPONENT },
    { OSSL_PKEY_PARAM_RSA_D, CKA_PRIVATE_EXPONENT },
    { OSSL_PKEY_PARAM_RSA_FACTOR1, CKA_PRIME_1 },
    { OSSL_PKEY_PARAM_RSA_FACTOR2, CKA_PRIME_2 },
    { OSSL_PKEY_PARAM_RSA_EXPONENT1, CKA_EXPONENT_1 },
    { OSSL_PKEY_PARAM_RSA_EXPONENT2, CKA_EXPONENT_2 },
    { OSSL_PKEY_PARAM_RSA_COEFFICIENT1, CKA_COEFFICIENT },
};

/* Key components in host memory, wiped by rsa_parts_wipe on every path. */
struct rsa_parts {
    uint8_t v[RSA_NUM_COMPONENTS][RSA_IMPORT_LEN];
    CK_ULONG len[RSA_NUM_COMPONENTS];
};

static void
rsa_parts_wipe(struct rsa_parts *p)
{
    OPENSSL_cleanse(p, sizeof(*p));
}

/* Parses |der| (PKCS#8 or PKCS#1, every byte of it) and checks it is an
 * RSA-2048, two-prime, e = 65537 key whose components agree (n = pq, d and
 * the CRT values belong to e): a damaged file must not become a key that
 * decrypts wrongly. */
static int
rsa_parts_get(const uint8_t *der, size_t der_len, struct rsa_parts *out)
{
    const unsigned char *p = der;
    EVP_PKEY *pkey = NULL;
    EVP_PKEY_CTX *ctx = NULL;
    BIGNUM *bn = NULL;
    int bits = 0, r = HSM_ERR_INPUT;

    pkey = d2i_AutoPrivateKey(NULL, &p, (long)der_len);
    if (pkey == NULL || p != der + der_len || EVP_PKEY_get_base_id(pkey) != EVP_PKEY_RSA) {
        r = hsm__fail(HSM_ERR_INPUT, "not a DER RSA private key (or trailing bytes)");
        goto out;
    }
    bits = EVP_PKEY_get_bits(pkey);
    if (bits != RSA_IMPORT_BITS) {
        r = hsm__fail(HSM_ERR_INPUT, "RSA key of %d bits: only %d-bit keys are imported", bits,
                      RSA_IMPORT_BITS);
        goto out;
    }
    /* A third prime: a multi-prime key, which PKCS#11 objects cannot hold. */
    if (EVP_PKEY_get_bn_param(pkey, OSSL_PKEY_PARAM_RSA_FACTOR3, &bn)) {
        r = hsm__fail(HSM_ERR_INPUT, "multi-prime RSA key");
        goto out;
    }
    ctx = EVP_PKEY_CTX_new_from_pkey(NULL, pkey, NULL);
    if (ctx == NULL || EVP_PKEY_pairwise_check(ctx) != 1) {
        r = hsm__fail(HSM_ERR_INPUT, "RSA key components do not agree");
        goto out;
    }
    for (size_t i = 0; i < RSA_NUM_COMPONENTS; i++) {
        int n;

        BN_clear_free(bn);
        bn = NULL;
        if (!EVP_PKEY_get_bn_param(pkey, rsa_components[i].param, &bn) ||
            BN_num_bytes(bn) > RSA_IMPORT_LEN || (n = BN_bn2bin(bn, out->v[i])) <= 0) {
            r = hsm__fail(HSM_ERR_INPUT, "RSA key lacks a component (%s)", rsa_components[i].param);
            goto out;
        }
        out->len[i] = (CK_ULONG)n;
        if (i == 1 && BN_get_word(bn) != RSA_IMPORT_F4) {
            r = hsm__fail(HSM_ERR_INPUT, "RSA public exponent is not 65537");
            goto out;
        }
    }
    r = HSM_OK;
out:
    if (r != HSM_OK)
        rsa_parts_wipe(out);
    ERR_clear_error();
    BN_clear_free(bn);
    EVP_PKEY_CTX_free(ctx);
    EVP_PKEY_free(pkey); /* frees the private components with BN_clear_free */
    return r;
}

/* Destroys what an import created; a failure is only recorded (the caller
 * reports the error that made it undo). */
static void
destroy_pair(hsm_session *s, CK_OBJECT_HANDLE priv, CK_OBJECT_HANDLE pub)
{
    CK_FUNCTION_LIST_PTR p11 = s->h->p11;

    if (priv != CK_INVALID_HANDLE)
        (void)hsm__ckr(s, "C_DestroyObject(private key)", p11->C_DestroyObject(s->handle, priv));
    if (pub != CK_INVALID_HANDLE)
        (void)hsm__ckr(s, "C_DestroyObject(public key)", p11->C_DestroyObject(s->handle, pub));
}

int
hsm_rsa_private_import(hsm_session *s, hsm_key_kind kind, const char *label, const uint8_t *der,
                       size_t der_len, hsm_key **out)
{
    static const CK_OBJECT_CLASS pubc = CKO_PUBLIC_KEY;
    /* Template room: the kind's own attributes, class and type, the key. */
    CK_ATTRIBUTE t[sizeof(((struct hsm__key_tmpl *)0)->priv) / sizeof(CK_ATTRIBUTE) + 2 +
                   RSA_NUM_COMPONENTS];
    CK_ATTRIBUTE pt[sizeof(((struct hsm__key_tmpl *)0)->pub) / sizeof(CK_ATTRIBUTE) + 4];
    struct hsm__key_tmpl k, kp;
    struct rsa_parts parts;
    CK_OBJECT_HANDLE o = CK_INVALID_HANDLE, pub = CK_INVALID_HANDLE;
    CK_ULONG n = 0, pn = 0;
    hsm_key *key = NULL;
    int r;

    memset(&parts, 0, sizeof(parts));
    if (s == NULL || label == NULL || der == NULL || out == NULL)
        return HSM_ERR_INVALID_ARG;
    if (kind != HSM_KIND_RSA_UNWRAP && kind != HSM_KIND_RSA_DECRYPT)
        return hsm__fail(HSM_ERR_INVALID_ARG, "kind %s is not imported as RSA",
                         hsm_key_kind_name(kind));
    if (der_len == 0 || der_len > HSM_PRIVKEY_DER_MAX)
        return hsm__fail(HSM_ERR_INPUT, "private key of %zu bytes", der_len);
    if ((r = hsm_label_check_free(s, label)) != HSM_OK)
        return r;
    if ((r = rsa_parts_get(der, der_len, &parts)) != HSM_OK)
        return r;
    /* The private half: exactly the generated kind's template (not the
     * unwrap variant: C_CreateObject takes CKA_MODIFIABLE=FALSE), with the
     * class and type a generation gets from its mechanism. */
    hsm__key_tmpl_build(&k, kind, label, false);
    memcpy(t, k.priv, k.priv_n * sizeof(t[0]));
    n = k.priv_n;
    t[n++] = (CK_ATTRIBUTE)ATTR(CKA_CLASS, &k.klass, sizeof(k.klass));
    t[n++] = (CK_ATTRIBUTE)ATTR(CKA_KEY_TYPE, &k.type, sizeof(k.type));
    for (size_t i = 0; i < RSA_NUM_COMPONENTS; i++)
        t[n++] = (CK_ATTRIBUTE)ATTR(rsa_components[i].type, parts.v[i], parts.len[i]);
    /* The public half: the generated pair's usages (the unwrap variant
     * leaves out CKA_MODULUS_BITS, which only a generation may name), and
     * the modulus and exponent, as a restore creates it (backup.c). */
    hsm__key_tmpl_build(&kp, kind, label, true);
    memcpy(pt, kp.pub, kp.pub_n * sizeof(pt[0]));
    pn = kp.pub_n;
    pt[pn++] = (CK_ATTRIBUTE)ATTR(CKA_CLASS, &pubc, sizeof(pubc));
    pt[pn++] = (CK_ATTRIBUTE)ATTR(CKA_KEY_TYPE, &kp.type, sizeof(kp.type));
    pt[pn++] = (CK_ATTRIBUTE)ATTR(CKA_MODULUS, parts.v[0], parts.len[0]);
    pt[pn++] = (CK_ATTRIBUTE)ATTR(CKA_PUBLIC_EXPONENT, parts.v[1], parts.len[1]);

    n = hsm__token_tmpl(s->h, t, n);
    r = hsm__ckr(s, "C_CreateObject(private key)",
                 s->h->p11->C_CreateObject(s->handle, t, n, &o));
    if (r != HSM_OK) {
        o = CK_INVALID_HANDLE;
        goto out;
    }
    r = hsm__ckr(s, "C_CreateObject(public key)",
                 s->h->p11->C_CreateObject(s->handle, pt, pn, &pub));
    if (r != HSM_OK) {
        pub = CK_INVALID_HANDLE;
        goto out;
    }
    if ((r = hsm_key_find(s, label, &key)) != HSM_OK)
        goto out;
    if (key->kind != kind) {
        r = hsm__fail(HSM_ERR_INTERNAL, "imported %s reads back as %s", label,
                      hsm_key_kind_name(key->kind));
        goto out;
    }
    *out = key;
out:
    if (r != HSM_OK) {
        destroy_pair(s, o, pub);
        if (key != NULL) {
            pthread_mutex_lock(&s->h->lock);
            key->handle = CK_INVALID_HANDLE;
            pthread_mutex_unlock(&s->h->lock);
        }
    }
    rsa_parts_wipe(&parts);
    return r;
}

int
hsm_key_import_undo(hsm_session *s, hsm_key *key)
{
    static const CK_OBJECT_CLASS pubc = CKO_PUBLIC_KEY;
    CK_OBJECT_HANDLE k = CK_INVALID_HANDLE, pubs[2];
    CK_ULONG num = 0;
    int always = -1, r;

    if (s == NULL || key == NULL)
        return HSM_ERR_INVALID_ARG;
    if (key->is_wrapped || key->klass != CKO_PRIVATE_KEY ||
        (key->kind != HSM_KIND_EC_DERIVE && key->kind != HSM_KIND_RSA_UNWRAP &&
         key->kind != HSM_KIND_RSA_DECRYPT))
        return hsm__fail(HSM_ERR_KEY_TYPE, "%s is no imported wallet key", key->label);
    if ((r = hsm__key_handle(s, key, &k)) != HSM_OK ||
        (r = hsm__key_attr_bool(s, k, CKA_ALWAYS_SENSITIVE, &always)) != HSM_OK)
        return r;
    /* A generated key is always sensitive and has no copy anywhere: never
     * destroyed here, whatever a caller asks. */
    if (always != 0)
        return hsm__fail(HSM_ERR_KEY_TYPE, "%s was generated in the token: not destroyed",
                         key->label);
    {
        CK_ATTRIBUTE t[] = { ATTR(CKA_CLASS, &pubc, sizeof(pubc)),
                             ATTR(CKA_LABEL, key->label, strlen(key->label)),
                             BOOL_ATTR(CKA_TOKEN, 1) };

        if ((r = hsm__find_objects(s, t, 3, pubs, 2, &num)) != HSM_OK)
            return r;
    }
    /* The private key first: if anything fails after it, only public data
     * is left behind. */
    r = hsm__ckr(s, "C_DestroyObject(private key)", s->h->p11->C_DestroyObject(s->handle, k));
    if (r != HSM_OK)
        return r;
    pthread_mutex_lock(&s->h->lock);
    key->handle = CK_INVALID_HANDLE;
    pthread_mutex_unlock(&s->h->lock);
    for (CK_ULONG i = 0; i < num; i++) {
        r = hsm__ckr(s, "C_DestroyObject(public key)",
                     s->h->p11->C_DestroyObject(s->handle, pubs[i]));
        if (r != HSM_OK)
            return r;
    }
    return HSM_OK;
}
