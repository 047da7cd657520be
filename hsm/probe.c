/*
 * probe.c - what the token can do, asked once at hsm_open, and which path each
 * wallet key derivation takes as a result. Shown by tools and in STATUS.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <openssl/rsa.h>

#include "hsm/internal.h"

#ifndef CKM_EXTRACT_KEY_FROM_KEY
#define CKM_EXTRACT_KEY_FROM_KEY 0x00000365UL
#endif
#ifndef CKM_CONCATENATE_BASE_AND_DATA
#define CKM_CONCATENATE_BASE_AND_DATA 0x00000362UL
#endif
#ifndef CKM_CONCATENATE_DATA_AND_BASE
#define CKM_CONCATENATE_DATA_AND_BASE 0x00000363UL
#endif

/* Mechanism lists of real HSMs run to a few hundred entries. */
#define MECH_LIST_MAX 1024
/* The RSA key used only to try OAEP-SHA256; its strength is irrelevant, its
 * generation time is not (this runs at every start). */
#define PROBE_RSA_BITS 1024

const char *
hsm_path_name(hsm_path p)
{
    switch (p) {
    case HSM_PATH_NONE: return "unavailable";
    case HSM_PATH_IN_TOKEN: return "in-token";
    case HSM_PATH_DIGEST_KEY: return "digest-key (Z in token, derived key on host)";
    case HSM_PATH_HOST_DECODE: return "host-decode (raw RSA in token, OAEP on host)";
    }
    return "unknown";
}

const hsm_probe *
hsm_probe_get(hsm *h)
{
    return &h->probe;
}

static bool
has_mech(const CK_MECHANISM_TYPE *list, CK_ULONG n, CK_MECHANISM_TYPE m)
{
    for (CK_ULONG i = 0; i < n; i++) {
        if (list[i] == m)
            return true;
    }
    return false;
}

static void
note_missing(hsm_probe *p, const char *name)
{
    size_t used = strlen(p->missing);

    snprintf(p->missing + used, sizeof(p->missing) - used, "%s%s", used > 0 ? " " : "", name);
}

/* C_DigestKey on a sensitive generic secret: the step both wallet KDFs rest
 * on when the token has no derivation mechanisms. */
static bool
try_digest_key(hsm_session *s)
{
    static const CK_OBJECT_CLASS secret = CKO_SECRET_KEY;
    static const CK_KEY_TYPE generic = CKK_GENERIC_SECRET;
    CK_ULONG len = 32;
    CK_ATTRIBUTE t[] = {
        ATTR(CKA_CLASS, &secret, sizeof(secret)), ATTR(CKA_KEY_TYPE, &generic, sizeof(generic)),
        ATTR(CKA_VALUE_LEN, &len, sizeof(len)), BOOL_ATTR(CKA_TOKEN, 0), BOOL_ATTR(CKA_SENSITIVE, 1),
        BOOL_ATTR(CKA_EXTRACTABLE, 0), BOOL_ATTR(CKA_SIGN, 0), BOOL_ATTR(CKA_VERIFY, 0),
    };
    CK_MECHANISM gen = { CKM_GENERIC_SECRET_KEY_GEN, NULL, 0 }, sha = { CKM_SHA256, NULL, 0 };
    CK_OBJECT_HANDLE k = CK_INVALID_HANDLE;
    uint8_t d[32];
    CK_ULONG n = sizeof(d);
    bool ok = false;

    if (s->h->p11->C_GenerateKey(s->handle, &gen, t, sizeof(t) / sizeof(t[0]), &k) != CKR_OK)
        return false;
    if (s->h->p11->C_DigestInit(s->handle, &sha) == CKR_OK) {
        ok = s->h->p11->C_DigestKey(s->handle, k) == CKR_OK;
        /* Finish the operation whatever happened, so the session is clean. */
        (void)s->h->p11->C_DigestFinal(s->handle, d, &n);
    }
    s->h->p11->C_DestroyObject(s->handle, k);
    return ok;
}

/* OAEP with SHA-256 cannot be read from the mechanism list (SoftHSM lists
 * CKM_RSA_PKCS_OAEP but refuses SHA-256 parameters): try it on a throwaway
 * session key pair with a block OpenSSL encrypted. */
static bool
try_oaep_sha256(hsm_session *s)
{
    static const uint8_t exponent[] = { 1, 0, 1 };
    static const CK_OBJECT_CLASS secret = CKO_SECRET_KEY;
    static const CK_KEY_TYPE aes = CKK_AES;
    CK_ULONG bits = PROBE_RSA_BITS;
    CK_ATTRIBUTE pub_t[] = { ATTR(CKA_MODULUS_BITS, &bits, sizeof(bits)),
                             ATTR(CKA_PUBLIC_EXPONENT, exponent, sizeof(exponent)),
                             BOOL_ATTR(CKA_TOKEN, 0), BOOL_ATTR(CKA_ENCRYPT, 1) };
    CK_ATTRIBUTE priv_t[] = { BOOL_ATTR(CKA_TOKEN, 0), BOOL_ATTR(CKA_PRIVATE, 1),
                              BOOL_ATTR(CKA_SENSITIVE, 1), BOOL_ATTR(CKA_UNWRAP, 1),
                              BOOL_ATTR(CKA_DECRYPT, 0) };
    CK_ATTRIBUTE cek_t[] = { ATTR(CKA_CLASS, &secret, sizeof(secret)),
                             ATTR(CKA_KEY_TYPE, &aes, sizeof(aes)), BOOL_ATTR(CKA_TOKEN, 0),
                             BOOL_ATTR(CKA_SENSITIVE, 1), BOOL_ATTR(CKA_EXTRACTABLE, 0) };
    CK_MECHANISM gen = { CKM_RSA_PKCS_KEY_PAIR_GEN, NULL, 0 };
    CK_RSA_PKCS_OAEP_PARAMS oaep = { CKM_SHA256, CKG_MGF1_SHA256, CKZ_DATA_SPECIFIED, NULL, 0 };
    CK_MECHANISM mech = { CKM_RSA_PKCS_OAEP, &oaep, sizeof(oaep) };
    CK_OBJECT_HANDLE pub = CK_INVALID_HANDLE, priv = CK_INVALID_HANDLE, cek = CK_INVALID_HANDLE;
    uint8_t *n = NULL, *e = NULL, key[16], ct[PROBE_RSA_BITS / 8];
    size_t n_len = 0, e_len = 0, ct_len = sizeof(ct);
    OSSL_PARAM_BLD *bld = NULL;
    OSSL_PARAM *params = NULL;
    EVP_PKEY_CTX *ctx = NULL, *ectx = NULL;
    EVP_PKEY *pkey = NULL;
    BIGNUM *bn_n = NULL, *bn_e = NULL;
    bool ok = false;

    if (s->h->p11->C_GenerateKeyPair(s->handle, &gen, pub_t, 4, priv_t, 5, &pub, &priv) != CKR_OK)
        return false;
    if (hsm__attr_read(s, pub, CKA_MODULUS, &n, &n_len) != HSM_OK ||
        hsm__attr_read(s, pub, CKA_PUBLIC_EXPONENT, &e, &e_len) != HSM_OK)
        goto out;
    bn_n = BN_bin2bn(n, (int)n_len, NULL);
    bn_e = BN_bin2bn(e, (int)e_len, NULL);
    bld = OSSL_PARAM_BLD_new();
    if (bn_n == NULL || bn_e == NULL || bld == NULL ||
        !OSSL_PARAM_BLD_push_BN(bld, "n", bn_n) || !OSSL_PARAM_BLD_push_BN(bld, "e", bn_e) ||
        (params = OSSL_PARAM_BLD_to_param(bld)) == NULL)
        goto out;
    ctx = EVP_PKEY_CTX_new_from_name(NULL, "RSA", NULL);
    if (ctx == NULL || EVP_PKEY_fromdata_init(ctx) <= 0 ||
        EVP_PKEY_fromdata(ctx, &pkey, EVP_PKEY_PUBLIC_KEY, params) <= 0)
        goto out;
    ectx = EVP_PKEY_CTX_new_from_pkey(NULL, pkey, NULL);
    if (ectx == NULL || EVP_PKEY_encrypt_init(ectx) <= 0 ||
        EVP_PKEY_CTX_set_rsa_padding(ectx, RSA_PKCS1_OAEP_PADDING) <= 0 ||
        EVP_PKEY_CTX_set_rsa_oaep_md(ectx, EVP_sha256()) <= 0 ||
        EVP_PKEY_CTX_set_rsa_mgf1_md(ectx, EVP_sha256()) <= 0 ||
        hsm_random(s, key, sizeof(key)) != HSM_OK ||
        EVP_PKEY_encrypt(ectx, ct, &ct_len, key, sizeof(key)) <= 0)
        goto out;
    ok = s->h->p11->C_UnwrapKey(s->handle, &mech, priv, ct, ct_len, cek_t, 5, &cek) == CKR_OK;
out:
    if (cek != CK_INVALID_HANDLE)
        s->h->p11->C_DestroyObject(s->handle, cek);
    s->h->p11->C_DestroyObject(s->handle, pub);
    s->h->p11->C_DestroyObject(s->handle, priv);
    OPENSSL_cleanse(key, sizeof(key));
    EVP_PKEY_CTX_free(ectx);
    EVP_PKEY_CTX_free(ctx);
    EVP_PKEY_free(pkey);
    OSSL_PARAM_free(params);
    OSSL_PARAM_BLD_free(bld);
    BN_free(bn_n);
    BN_free(bn_e);
    free(n);
    free(e);
    return ok;
}

int
hsm__probe(struct hsm *h, hsm_session *s)
{
    CK_MECHANISM_TYPE *list = NULL;
    CK_ULONG n = MECH_LIST_MAX;
    CK_MECHANISM_INFO mi;
    hsm_probe p;
    CK_RV rv;
    bool rsa_oaep_unwrap = false, rsa_pkcs_unwrap = false, rsa_raw = false;

    memset(&p, 0, sizeof(p));
    list = calloc(MECH_LIST_MAX, sizeof(*list));
    if (list == NULL)
        return HSM_ERR_NO_MEMORY;
    rv = h->p11->C_GetMechanismList(h->slot, list, &n);
    if (rv != CKR_OK) {
        free(list);
        return hsm__ckr(s, "C_GetMechanismList", rv);
    }
    p.has_gcm = has_mech(list, n, CKM_AES_GCM);
    p.has_ctr = has_mech(list, n, CKM_AES_CTR);
    p.has_kwp = has_mech(list, n, CKM_AES_KEY_WRAP_PAD);
    p.has_hmac_sha256 = has_mech(list, n, CKM_SHA256_HMAC);
    p.has_ecdsa = has_mech(list, n, CKM_ECDSA);
    p.has_ecdh = has_mech(list, n, CKM_ECDH1_DERIVE);
    p.has_concatenate = has_mech(list, n, CKM_CONCATENATE_DATA_AND_BASE) &&
                        has_mech(list, n, CKM_CONCATENATE_BASE_AND_DATA);
    p.has_sha256_key_derivation = has_mech(list, n, CKM_SHA256_KEY_DERIVATION);
    p.has_hkdf = has_mech(list, n, CKM_HKDF_DERIVE);
    p.has_extract_key = has_mech(list, n, CKM_EXTRACT_KEY_FROM_KEY);
    if (has_mech(list, n, CKM_RSA_PKCS_OAEP) &&
        h->p11->C_GetMechanismInfo(h->slot, CKM_RSA_PKCS_OAEP, &mi) == CKR_OK)
        rsa_oaep_unwrap = (mi.flags & CKF_UNWRAP) != 0;
    if (has_mech(list, n, CKM_RSA_PKCS) &&
        h->p11->C_GetMechanismInfo(h->slot, CKM_RSA_PKCS, &mi) == CKR_OK)
        rsa_pkcs_unwrap = (mi.flags & CKF_UNWRAP) != 0;
    rsa_raw = has_mech(list, n, CKM_RSA_X_509);
    free(list);
    p.has_digest_key = try_digest_key(s);

    if (!p.has_gcm)
        note_missing(&p, "CKM_AES_GCM");
    if (!p.has_ctr)
        note_missing(&p, "CKM_AES_CTR");
    if (!p.has_kwp)
        note_missing(&p, "CKM_AES_KEY_WRAP_PAD");
    if (!p.has_hmac_sha256)
        note_missing(&p, "CKM_SHA256_HMAC");
    if (!p.has_ecdsa)
        note_missing(&p, "CKM_ECDSA");
    if (!p.has_ecdh)
        note_missing(&p, "CKM_ECDH1_DERIVE");
    if (!p.has_concatenate)
        note_missing(&p, "CKM_CONCATENATE_*");
    if (!p.has_sha256_key_derivation)
        note_missing(&p, "CKM_SHA256_KEY_DERIVATION");
    if (!p.has_hkdf)
        note_missing(&p, "CKM_HKDF_DERIVE");
    if (!p.has_extract_key)
        note_missing(&p, "CKM_EXTRACT_KEY_FROM_KEY");
    if (!p.has_digest_key)
        note_missing(&p, "C_DigestKey");

    /* The paths the code takes today. The all-in-token derivations that a
     * token with CONCATENATE / SHA256_KEY_DERIVATION / HKDF_DERIVE allows are
     * reported above (has_*) and taken once that code path exists (issue:
     * "Prove the fully in-token path"); until then such a token also runs the
     * digest-key path, which it supports as well. */
    p.apple_ec_kdf = p.has_ecdh && p.has_digest_key ? HSM_PATH_DIGEST_KEY : HSM_PATH_NONE;
    p.google_hkdf = p.has_ecdh && p.has_digest_key ? HSM_PATH_DIGEST_KEY : HSM_PATH_NONE;
    p.rsa_oaep_sha1 = rsa_oaep_unwrap ? HSM_PATH_IN_TOKEN : HSM_PATH_NONE;
    p.rsa_pkcs1 = rsa_pkcs_unwrap ? HSM_PATH_IN_TOKEN : HSM_PATH_NONE;
    if (rsa_oaep_unwrap && try_oaep_sha256(s))
        p.rsa_oaep_sha256 = HSM_PATH_IN_TOKEN;
    else if (rsa_raw)
        p.rsa_oaep_sha256 = HSM_PATH_HOST_DECODE;
    else
        note_missing(&p, "OAEP-SHA256");
    h->probe = p;
    return HSM_OK;
}
