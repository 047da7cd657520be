/*
 * csr.c - PKCS#10 certification requests (RFC 2986) for wallet keys, signed
 * inside the token. OpenSSL encodes the CertificationRequestInfo; the key
 * pair signs it in the HSM, which is the proof of possession a wallet asks
 * for; the private key never reaches host memory.
 */
#include <stdbool.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/sha.h>
#include <openssl/x509.h>

#include "hsm/internal.h"

/* An RSA-2048 signature is the modulus length. */
#define RSA_SIG_MAX 512

/* Printable ASCII: the name goes into a UTF8String that wallet portals
 * display, and into the officer's transcript unescaped. */
static bool
cn_ok(const char *cn)
{
    size_t n;

    if (cn == NULL)
        return false;
    n = strlen(cn);
    if (n == 0 || n > HSM_CSR_CN_MAX)
        return false;
    for (size_t i = 0; i < n; i++) {
        if (cn[i] < 0x20 || cn[i] > 0x7e)
            return false;
    }
    return true;
}

/* sha256WithRSAEncryption by the token (CKM_SHA256_RSA_PKCS hashes inside). */
static int
rsa_sha256_sign(hsm_session *s, hsm_key *key, const uint8_t *data, size_t len, uint8_t *out,
                size_t cap, size_t *out_len)
{
    CK_MECHANISM mech = { CKM_SHA256_RSA_PKCS, NULL, 0 };
    CK_OBJECT_HANDLE k = CK_INVALID_HANDLE;
    CK_ULONG sig_len = cap;
    CK_RV rv;
    int r;

    if ((r = hsm__key_handle(s, key, &k)) != HSM_OK)
        return r;
    rv = s->h->p11->C_SignInit(s->handle, &mech, k);
    if ((r = hsm__ckr(s, "C_SignInit(SHA256_RSA_PKCS)", rv)) != HSM_OK)
        return r;
    rv = s->h->p11->C_Sign(s->handle, (CK_BYTE_PTR)data, len, out, &sig_len);
    if ((r = hsm__ckr(s, "C_Sign", rv)) != HSM_OK)
        return r;
    *out_len = sig_len;
    return HSM_OK;
}

/* Signs the encoded CertificationRequestInfo with the key's scheme and
 * names the scheme's algorithm. */
static int
tbs_sign(hsm_session *s, hsm_key *key, const uint8_t *tbs, size_t tbs_len, uint8_t *sig,
         size_t cap, size_t *sig_len, int *out_nid)
{
    uint8_t digest[SHA256_DIGEST_LENGTH];

    if (key->kind == HSM_KIND_RSA_UNWRAP_SIGN) {
        *out_nid = NID_sha256WithRSAEncryption;
        return rsa_sha256_sign(s, key, tbs, tbs_len, sig, cap, sig_len);
    }
    /* SoftHSM has no CKM_ECDSA_SHA256: the host hashes, the token signs. */
    SHA256(tbs, tbs_len, digest);
    *out_nid = NID_ecdsa_with_SHA256;
    return hsm_ecdsa_sign(s, key, digest, sizeof(digest), sig, cap, sig_len);
}

/* A request with version, subject and public key, not yet signed. */
static int
req_new(const char *cn, EVP_PKEY *pkey, X509_REQ **out)
{
    X509_REQ *req = X509_REQ_new();
    X509_NAME *name = X509_NAME_new();
    int r = HSM_ERR_NO_MEMORY;

    if (req == NULL || name == NULL || X509_REQ_set_version(req, X509_REQ_VERSION_1) != 1 ||
        X509_NAME_add_entry_by_NID(name, NID_commonName, MBSTRING_UTF8, (const unsigned char *)cn,
                                   -1, -1, 0) != 1 ||
        X509_REQ_set_subject_name(req, name) != 1 || X509_REQ_set_pubkey(req, pkey) != 1)
        goto out;
    *out = req;
    req = NULL;
    r = HSM_OK;
out:
    X509_NAME_free(name);
    X509_REQ_free(req);
    return r;
}

/* Puts the algorithm and the signature into the request. RFC 5758 section
 * 3.2: ecdsa-with-SHA256 has no parameters; RFC 4055: sha256WithRSAEncryption
 * has NULL parameters. */
static int
req_set_signature(X509_REQ *req, int nid, const uint8_t *sig, size_t sig_len)
{
    X509_ALGOR *alg = X509_ALGOR_new();
    ASN1_BIT_STRING *bits = ASN1_BIT_STRING_new();
    int r = HSM_ERR_NO_MEMORY;

    if (alg == NULL || bits == NULL ||
        X509_ALGOR_set0(alg, OBJ_nid2obj(nid),
                        nid == NID_sha256WithRSAEncryption ? V_ASN1_NULL : V_ASN1_UNDEF,
                        NULL) != 1 ||
        X509_REQ_set1_signature_algo(req, alg) != 1 ||
        ASN1_BIT_STRING_set(bits, (unsigned char *)sig, (int)sig_len) != 1)
        goto out;
    /* A signature is whole bytes: say "0 unused bits" explicitly, or the
     * encoder infers unused bits from trailing zero bits of the last byte. */
    bits->flags &= ~(ASN1_STRING_FLAG_BITS_LEFT | 0x07);
    bits->flags |= ASN1_STRING_FLAG_BITS_LEFT;
    X509_REQ_set0_signature(req, bits);
    bits = NULL;
    r = HSM_OK;
out:
    X509_ALGOR_free(alg);
    ASN1_BIT_STRING_free(bits);
    return r;
}

/* The key pair's public key, from the token, as OpenSSL's. */
static int
key_pkey(hsm_session *s, hsm_key *key, EVP_PKEY **out)
{
    uint8_t spki[HSM_SPKI_MAX];
    size_t spki_len = 0;
    const unsigned char *p = spki;
    int r;

    if ((r = hsm_key_public_spki(s, key, spki, sizeof(spki), &spki_len)) != HSM_OK)
        return r;
    *out = d2i_PUBKEY(NULL, &p, (long)spki_len);
    return *out != NULL ? HSM_OK : hsm__fail(HSM_ERR_INTERNAL, "unreadable public key");
}

int
hsm_csr_make(hsm_session *s, hsm_key *key, const char *common_name, uint8_t *out, size_t cap,
             size_t *out_len)
{
    EVP_PKEY *pkey = NULL;
    X509_REQ *req = NULL;
    unsigned char *tbs = NULL, *der = NULL;
    uint8_t sig[RSA_SIG_MAX];
    size_t sig_len = 0;
    int tbs_len, der_len, nid = NID_undef, r;

    if (s == NULL || key == NULL || out_len == NULL || !cn_ok(common_name))
        return hsm__fail(HSM_ERR_INVALID_ARG, "bad CSR arguments (common name: printable, 1..%d)",
                         HSM_CSR_CN_MAX);
    if (key->kind != HSM_KIND_EC_DERIVE_SIGN && key->kind != HSM_KIND_EC_SIGN &&
        key->kind != HSM_KIND_RSA_UNWRAP_SIGN)
        return hsm__fail(HSM_ERR_KEY_TYPE, "%s (%s) may not sign its certification request",
                         key->label, hsm_key_kind_name(key->kind));
    if ((r = key_pkey(s, key, &pkey)) != HSM_OK || (r = req_new(common_name, pkey, &req)) != HSM_OK)
        goto out;
    /* i2d_re_ re-encodes the info part: the bytes signed are the bytes sent. */
    if ((tbs_len = i2d_re_X509_REQ_tbs(req, &tbs)) <= 0) {
        r = hsm__fail(HSM_ERR_INTERNAL, "cannot encode the CertificationRequestInfo");
        goto out;
    }
    if ((r = tbs_sign(s, key, tbs, (size_t)tbs_len, sig, sizeof(sig), &sig_len, &nid)) != HSM_OK ||
        (r = req_set_signature(req, nid, sig, sig_len)) != HSM_OK)
        goto out;
    /* The token's signature must check against the token's public key before
     * an officer sends the request anywhere. */
    if (X509_REQ_verify(req, pkey) != 1) {
        r = hsm__fail(HSM_ERR_INTERNAL, "the token's CSR signature does not verify");
        goto out;
    }
    if ((der_len = i2d_X509_REQ(req, &der)) <= 0) {
        r = hsm__fail(HSM_ERR_INTERNAL, "cannot encode the CSR");
        goto out;
    }
    r = hsm__copy_out(out, cap, der, (size_t)der_len, out_len);
out:
    if (r != HSM_OK)
        ERR_clear_error(); /* leave no stale OpenSSL error on this thread */
    OPENSSL_free(der);
    OPENSSL_free(tbs);
    X509_REQ_free(req);
    EVP_PKEY_free(pkey);
    return r;
}
