/*
 * apple.c - Apple Pay EC_v1 / RSA_v1: parse, verify the CMS signature and
 * its chain (structure by OpenSSL, signatures in the HSM), decrypt in the HSM.
 * The steps and their order are in apple.h.
 */
#include "vault/wallet/apple.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/cms.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/sha.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "api/reader.h"
#include "vault/wallet/codec.h"
#include "vault/wallet/currency.h"

/* Marker extensions (Apple "Payment token format reference", step 1a). */
#define OID_LEAF_MARKER "1.2.840.113635.100.6.29"
#define OID_INTERMEDIATE_MARKER "1.2.840.113635.100.6.2.14"
/* A CMS with more certificates than leaf, intermediate and (sometimes) root
 * is not Apple's. */
#define CMS_CERTS_MAX 3
/* A chain of leaf, intermediate and pinned root, nothing longer. */
#define CHAIN_LEN 3
/* Cached verified chains; a merchant sees one Apple leaf at a time, rotated
 * every few years, so a handful covers every wallet signing key in use. */
/* Apple's KDF other info: 0x0D || "id-aes256-GCM" || "Apple" || SHA-256(merchant id). */
#define KDF_ALG_ID "\x0did-aes256-GCM"
#define KDF_PARTY_U "Apple"
#define OTHER_INFO_LEN (sizeof(KDF_ALG_ID) - 1 + sizeof(KDF_PARTY_U) - 1 + WALLET_APPLE_HASH_LEN)
/* GCM with a 16-byte all-zero IV (one message per key) and the 16-byte tag at the end. */
#define GCM_IV_LEN 16
#define GCM_TAG_LEN 16
/* RSA_v1 wraps an AES-128 key. */
#define RSA_V1_KEY_LEN 16
/* DER: SET OF tag; long-form length of up to 4 bytes. */
#define DER_SET 0x31
#define DER_LEN_MAX_BYTES 4
/* Signed attributes: Apple sends four (contentType, signingTime,
 * messageDigest, CMSAlgorithmProtection). */
#define SIGNED_ATTRS_MAX 8
#define SIGNED_ATTRS_DER_MAX 1024
/* Decrypted payment data: a few hundred bytes; an EMV packet a few KB. */
#define PLAIN_JSON_MAX 16384
/* PAN digits (ISO/IEC 7812). */
#define PAN_MIN 12
#define PAN_MAX 19
/* applicationExpirationDate: YYMMDD. */
#define EXPIRY_DIGITS 6
/* Amounts: integer minor units, the RPC's limit. */
#define AMOUNT_MAX API_AMOUNT_MAX

/* ---- the token --------------------------------------------------------------- */

static const char *const payment_data_fields[] = { "version", "data", "signature", "header", NULL };
static const char *const header_fields[] = { "ephemeralPublicKey", "wrappedKey", "publicKeyHash",
                                             "transactionId", "applicationData", NULL };

void
apple_packet_free(struct wallet_apple_packet *p)
{
    if (p == NULL)
        return;
    free(p->buf);
    memset(p, 0, sizeof(*p));
}

/* paymentData itself, or inside a PKPaymentToken ({"paymentData", "paymentMethod",
 * "transactionIdentifier"}) or {"token": PKPaymentToken} (both seen in gateways'
 * APIs); anything else is not a token. */
static const json_t *
find_payment_data(const json_t *root)
{
    const json_t *t;

    if (json_object_get(root, "version") != NULL)
        return root;
    if ((t = json_object_get(root, "token")) != NULL && json_is_object(t))
        root = t;
    t = json_object_get(root, "paymentData");
    return json_is_object(t) ? t : NULL;
}

/* A base64 member into |*at| (advanced), between |min| and |max| bytes. */
static int
b64_field(const json_t *obj, const char *name, size_t min, size_t max, uint8_t **at,
          uint8_t **out, size_t *out_len, char *why, size_t why_cap)
{
    const char *s;
    size_t len = 0, n = 0;

    if ((s = wallet_json_str(json_object_get(obj, name), WALLET_PACKET_MAX, &len)) == NULL ||
        wallet_b64_decode(*at, max, &n, s, len) != WALLET_OK || n < min) {
        wallet_why(why, why_cap, "%s is not base64 of %zu..%zu bytes", name, min, max);
        return WALLET_ERR_FORMAT;
    }
    *out = *at;
    *out_len = n;
    *at += n;
    return WALLET_OK;
}

static int
hex_field(const json_t *obj, const char *name, size_t min, size_t max, uint8_t *out,
          size_t *out_len, char *why, size_t why_cap)
{
    const char *s;
    size_t len = 0, n = 0;

    if ((s = wallet_json_str(json_object_get(obj, name), 2 * max, &len)) == NULL ||
        wallet_hex_decode(out, max, &n, s, len) != WALLET_OK || n < min) {
        wallet_why(why, why_cap, "%s is not hex of %zu..%zu bytes", name, min, max);
        return WALLET_ERR_FORMAT;
    }
    *out_len = n;
    return WALLET_OK;
}

int
apple_packet_parse(struct wallet_apple_packet *out, const char *json, size_t len, char *why,
                   size_t why_cap)
{
    static const char *const required[] = { "version", "data", "signature", "header", NULL };
    static const char *const header_required[] = { "publicKeyHash", "transactionId", NULL };
    struct wallet_apple_packet p = { 0 };
    json_t *root = NULL;
    const json_t *pd, *hdr;
    const char *version, *key_name;
    uint8_t *at, pkh_buf[WALLET_APPLE_HASH_LEN + 1];
    size_t vlen = 0, n = 0, key_len = 0, pkh_len = 0;
    int r;

    if (out == NULL)
        return WALLET_ERR_FORMAT;
    if ((r = wallet_json_load(&root, json, len, WALLET_PACKET_MAX, why, why_cap)) != WALLET_OK)
        return r;
    r = WALLET_ERR_FORMAT;
    if ((pd = find_payment_data(root)) == NULL) {
        wallet_why(why, why_cap, "no paymentData");
        goto out;
    }
    if (wallet_json_fields(pd, "paymentData", payment_data_fields, required, why, why_cap) != 0)
        goto out;
    hdr = json_object_get(pd, "header");
    if (wallet_json_fields(hdr, "header", header_fields, header_required, why, why_cap) != 0)
        goto out;
    if ((version = wallet_json_str(json_object_get(pd, "version"), 16, &vlen)) == NULL) {
        wallet_why(why, why_cap, "version is not a string");
        goto out;
    }
    if (strcmp(version, "EC_v1") == 0) {
        p.version = WALLET_APPLE_EC_V1;
        key_name = "ephemeralPublicKey";
    } else if (strcmp(version, "RSA_v1") == 0) {
        p.version = WALLET_APPLE_RSA_V1;
        key_name = "wrappedKey";
    } else {
        wallet_why(why, why_cap, "version \"%.16s\" is not EC_v1 or RSA_v1", version);
        r = WALLET_ERR_UNSUPPORTED;
        goto out;
    }
    /* One key field, and the one of this version. */
    if (json_object_get(hdr, "ephemeralPublicKey") != NULL &&
        json_object_get(hdr, "wrappedKey") != NULL) {
        wallet_why(why, why_cap, "header has both ephemeralPublicKey and wrappedKey");
        goto out;
    }
    /* Room for every decoded field, twice for the signed bytes; base64 is
     * longer than what it encodes, so the packet's length bounds it all. */
    if ((p.buf = malloc(2 * len)) == NULL) {
        r = WALLET_ERR_NO_MEMORY;
        goto out;
    }
    at = p.buf;
    if ((r = b64_field(hdr, key_name, 1, WALLET_APPLE_KEY_FIELD_MAX, &at, &p.key_field,
                       &p.key_field_len, why, why_cap)) != WALLET_OK ||
        (r = b64_field(pd, "data", GCM_TAG_LEN + 1, WALLET_PACKET_MAX, &at, &p.data, &p.data_len,
                       why, why_cap)) != WALLET_OK ||
        (r = b64_field(pd, "signature", 1, WALLET_APPLE_SIG_MAX, &at, &p.sig, &p.sig_len, why,
                       why_cap)) != WALLET_OK)
        goto out;
    r = WALLET_ERR_FORMAT;
    {
        const char *s = wallet_json_str(json_object_get(hdr, "publicKeyHash"), 64, &n);

        if (s == NULL || wallet_b64_decode(pkh_buf, sizeof(pkh_buf), &pkh_len, s, n) != 0 ||
            pkh_len != WALLET_APPLE_HASH_LEN) {
            wallet_why(why, why_cap, "publicKeyHash is not base64 of a SHA-256");
            goto out;
        }
        memcpy(p.pkh, pkh_buf, WALLET_APPLE_HASH_LEN);
    }
    if (hex_field(hdr, "transactionId", 1, WALLET_APPLE_TXID_MAX, p.txid, &p.txid_len, why,
                  why_cap) != WALLET_OK)
        goto out;
    for (size_t i = 0; i < p.txid_len; i++)
        snprintf(p.txid_hex + 2 * i, 3, "%02x", p.txid[i]);
    if (json_object_get(hdr, "applicationData") != NULL) {
        if (hex_field(hdr, "applicationData", WALLET_APPLE_HASH_LEN, WALLET_APPLE_HASH_LEN,
                      p.app_data, &n, why, why_cap) != WALLET_OK)
            goto out;
        p.has_app_data = true;
    }
    /* The signed bytes (Apple step 1d): the key field, the whole data (tag
     * included), the transaction id and the application data, as bytes. */
    key_len = p.key_field_len;
    p.signed_bytes = at;
    memcpy(at, p.key_field, key_len);
    memcpy(at + key_len, p.data, p.data_len);
    memcpy(at + key_len + p.data_len, p.txid, p.txid_len);
    p.signed_len = key_len + p.data_len + p.txid_len;
    if (p.has_app_data) {
        memcpy(at + p.signed_len, p.app_data, WALLET_APPLE_HASH_LEN);
        p.signed_len += WALLET_APPLE_HASH_LEN;
    }
    *out = p;
    p.buf = NULL;
    r = WALLET_OK;
out:
    apple_packet_free(&p);
    json_decref(root);
    return r;
}

/* ---- the decrypted payment data --------------------------------------------------- */

/* A string member of digits, |min|..|max| long, copied to |out|. */
static int
digits_field(const json_t *obj, const char *name, size_t min, size_t max, char *out, char *why,
             size_t why_cap)
{
    size_t len = 0;
    const char *s = wallet_json_str(json_object_get(obj, name), max, &len);

    if (s == NULL || len < min || !wallet_all_digits(s, len)) {
        wallet_why(why, why_cap, "%s is not %zu..%zu digits", name, min, max);
        return WALLET_ERR_FORMAT;
    }
    memcpy(out, s, len + 1);
    return WALLET_OK;
}

static int
plain_3ds(struct wallet_card *c, const json_t *pd, char *why, size_t why_cap)
{
    static const char *const required[] = { "onlinePaymentCryptogram", NULL };
    const char *s;
    size_t len = 0;
    uint8_t raw[API_CRYPTOGRAM_MAX];

    if (wallet_json_fields(pd, "paymentData", NULL, required, why, why_cap) != WALLET_OK)
        return WALLET_ERR_FORMAT;
    /* The cryptogram is passed on as the base64 Apple gives; it must be that. */
    s = wallet_json_str(json_object_get(pd, "onlinePaymentCryptogram"), API_CRYPTOGRAM_MAX, &len);
    if (s == NULL || wallet_b64_decode(raw, sizeof(raw), &len, s, strlen(s)) != WALLET_OK) {
        wallet_why(why, why_cap, "onlinePaymentCryptogram is not base64");
        return WALLET_ERR_FORMAT;
    }
    OPENSSL_cleanse(raw, sizeof(raw));
    memcpy(c->cryptogram, s, strlen(s) + 1);
    c->has_cryptogram = true;
    c->auth_method = API_AUTH_CRYPTOGRAM_3DS;
    /* eciIndicator is optional (absent in in-app packets). */
    if (json_object_get(pd, "eciIndicator") != NULL) {
        if (digits_field(pd, "eciIndicator", 1, API_ECI_MAX, c->eci, why, why_cap) != WALLET_OK)
            return WALLET_ERR_FORMAT;
        c->has_eci = true;
    }
    return WALLET_OK;
}

int
apple_plain_parse(struct wallet_card *out, const uint8_t *plain, size_t len, char *why,
                  size_t why_cap)
{
    static const char *const required[] = { "applicationPrimaryAccountNumber",
                                            "applicationExpirationDate",
                                            "currencyCode",
                                            "transactionAmount",
                                            "paymentDataType",
                                            "paymentData",
                                            NULL };
    struct wallet_card c = { 0 };
    char expiry[EXPIRY_DIGITS + 1], numeric[API_CURRENCY_LEN + 1];
    json_t *root = NULL;
    const json_t *amount, *v;
    const char *s, *alpha;
    size_t n = 0;
    int r = WALLET_ERR_FORMAT;

    if (out == NULL || plain == NULL)
        return WALLET_ERR_FORMAT;
    if ((r = wallet_json_load(&root, (const char *)plain, len, PLAIN_JSON_MAX, why, why_cap)) != 0)
        goto out;
    r = WALLET_ERR_FORMAT;
    if (wallet_json_fields(root, "payment data", NULL, required, why, why_cap) != WALLET_OK)
        goto out;
    c.wallet = API_WALLET_APPLE_PAY;
    if (digits_field(root, "applicationPrimaryAccountNumber", PAN_MIN, PAN_MAX, c.pan, why,
                     why_cap) != WALLET_OK ||
        digits_field(root, "applicationExpirationDate", EXPIRY_DIGITS, EXPIRY_DIGITS, expiry, why,
                     why_cap) != WALLET_OK)
        goto out;
    c.exp_year = (uint16_t)(2000 + (expiry[0] - '0') * 10 + (expiry[1] - '0'));
    c.exp_month = (uint8_t)((expiry[2] - '0') * 10 + (expiry[3] - '0'));
    if (c.exp_month < 1 || c.exp_month > 12) {
        wallet_why(why, why_cap, "applicationExpirationDate has month %u", c.exp_month);
        goto out;
    }
    if (digits_field(root, "currencyCode", API_CURRENCY_LEN, API_CURRENCY_LEN, numeric, why,
                     why_cap) != WALLET_OK)
        goto out;
    if ((alpha = wallet_currency_alpha(numeric)) == NULL) {
        wallet_why(why, why_cap, "currencyCode %s is no ISO 4217 currency", numeric);
        goto out;
    }
    memcpy(c.currency, alpha, API_CURRENCY_LEN + 1);
    c.has_currency = true;
    amount = json_object_get(root, "transactionAmount");
    if (!json_is_integer(amount) || json_integer_value(amount) < 0 ||
        (uint64_t)json_integer_value(amount) > AMOUNT_MAX) {
        wallet_why(why, why_cap, "transactionAmount is not an amount in minor units");
        goto out;
    }
    c.amount = (uint64_t)json_integer_value(amount);
    c.has_amount = true;
    if ((v = json_object_get(root, "cardholderName")) != NULL) {
        if ((s = wallet_json_str(v, API_HOLDER_MAX, &n)) == NULL) {
            wallet_why(why, why_cap, "cardholderName is not a name");
            goto out;
        }
        memcpy(c.holder, s, n + 1);
        c.has_holder = true;
    }
    s = wallet_json_str(json_object_get(root, "paymentDataType"), 16, &n);
    if (s != NULL && strcmp(s, "3DSecure") == 0) {
        if ((r = plain_3ds(&c, json_object_get(root, "paymentData"), why, why_cap)) != WALLET_OK)
            goto out;
    } else if (s != NULL && strcmp(s, "EMV") == 0) {
        /* EMV data comes with encryptedPINData: PIN data is never taken. */
        wallet_why(why, why_cap, "paymentDataType EMV is not taken (3DSecure only)");
        r = WALLET_ERR_UNSUPPORTED;
        goto out;
    } else {
        wallet_why(why, why_cap, "paymentDataType is not 3DSecure or EMV");
        goto out;
    }
    /* A merchant token (Apple Pay merchant tokens, iOS 16) may be kept on file. */
    c.cof_allowed = json_object_get(root, "merchantTokenIdentifier") != NULL;
    *out = c;
    r = WALLET_OK;
out:
    wallet_card_wipe(&c);
    json_decref(root);
    return r;
}

/* ---- certificates ------------------------------------------------------------------- */

/* Maps an hsm error: the packet's fault (a signature or input the token
 * refused) or the HSM's. */
static int
hsm_fail(int hr, int packet_err, const char *step, char *why, size_t why_cap)
{
    if (hr == HSM_ERR_VERIFY) {
        wallet_why(why, why_cap, "%s does not verify", step);
        return packet_err;
    }
    if (hr == HSM_ERR_INPUT) {
        wallet_why(why, why_cap, "%s: malformed (%s)", step, hsm_last_detail());
        return WALLET_ERR_FORMAT;
    }
    wallet_why(why, why_cap, "HSM failed at %s: %s (%s)", step, hsm_strerror(hr),
               hsm_last_detail());
    return WALLET_ERR_HSM;
}

static bool
has_ext(X509 *x, const char *oid_text)
{
    ASN1_OBJECT *oid = OBJ_txt2obj(oid_text, 1);
    bool has = oid != NULL && X509_get_ext_by_OBJ(x, oid, -1) >= 0;

    ASN1_OBJECT_free(oid);
    return has;
}

static int
asn1_time_s(const ASN1_TIME *t, int64_t *out)
{
    struct tm tm;

    if (t == NULL || ASN1_TIME_to_tm(t, &tm) != 1)
        return WALLET_ERR_FORMAT;
    *out = (int64_t)timegm(&tm);
    return WALLET_OK;
}

/* The DER SubjectPublicKeyInfo of |x| into |out| (HSM_SPKI_MAX). */
static int
cert_spki(X509 *x, uint8_t *out, size_t *out_len)
{
    unsigned char *p = out;
    int n = i2d_X509_PUBKEY(X509_get_X509_PUBKEY(x), NULL);

    if (n <= 0 || n > HSM_SPKI_MAX || i2d_X509_PUBKEY(X509_get_X509_PUBKEY(x), &p) != n)
        return WALLET_ERR_FORMAT;
    *out_len = (size_t)n;
    return WALLET_OK;
}

/* The TBSCertificate bytes of |der| exactly as signed: the first element of
 * the outer SEQUENCE, read with a cursor (DER: definite lengths only). */
static int
der_first_element(const uint8_t *der, size_t len, const uint8_t **out, size_t *out_len)
{
    struct api_reader r, body, el;
    uint8_t tag = 0, l0 = 0;
    size_t hdr_len;

    api_reader_init(&r, der, len);
    for (int depth = 0; depth < 2; depth++) {
        size_t n = 0;
        const uint8_t *start = r.data;

        if (api_reader_get_u8(&r, &tag) != 0 || tag != 0x30 || api_reader_get_u8(&r, &l0) != 0)
            return WALLET_ERR_FORMAT;
        if (l0 < 0x80) {
            n = l0;
        } else {
            size_t nb = l0 & 0x7f;

            if (nb == 0 || nb > DER_LEN_MAX_BYTES)
                return WALLET_ERR_FORMAT;
            for (size_t i = 0; i < nb; i++) {
                uint8_t b = 0;

                if (api_reader_get_u8(&r, &b) != 0)
                    return WALLET_ERR_FORMAT;
                n = n << 8 | b;
            }
        }
        hdr_len = (size_t)(r.data - start);
        if (api_reader_get_bytes(&r, depth == 0 ? &body : &el, n) != 0)
            return WALLET_ERR_FORMAT;
        if (depth == 0) {
            r = body;
        } else {
            *out = start;
            *out_len = hdr_len + n;
        }
    }
    return WALLET_OK;
}

/* Verifies in the HSM that |issuer|'s key signed |child|. */
static int
hsm_cert_verify(hsm_session *s, X509 *child, X509 *issuer, char *why, size_t why_cap)
{
    uint8_t spki[HSM_SPKI_MAX], digest[EVP_MAX_MD_SIZE];
    unsigned char *der = NULL;
    const uint8_t *tbs = NULL;
    const ASN1_BIT_STRING *sig = NULL;
    const EVP_MD *md;
    size_t spki_len = 0, tbs_len = 0;
    unsigned int dlen = 0;
    hsm_obj pub = HSM_OBJ_NONE;
    int der_len, hr, r = WALLET_ERR_CHAIN;

    switch (X509_get_signature_nid(child)) {
    case NID_ecdsa_with_SHA256:
        md = EVP_sha256();
        break;
    case NID_ecdsa_with_SHA384:
        md = EVP_sha384();
        break;
    default:
        wallet_why(why, why_cap, "a certificate is not signed with ECDSA SHA-256/384");
        return WALLET_ERR_CHAIN;
    }
    X509_get0_signature(&sig, NULL, child);
    der_len = i2d_X509(child, &der);
    if (der_len <= 0 || sig == NULL ||
        der_first_element(der, (size_t)der_len, &tbs, &tbs_len) != WALLET_OK ||
        EVP_Digest(tbs, tbs_len, digest, &dlen, md, NULL) != 1 ||
        cert_spki(issuer, spki, &spki_len) != WALLET_OK) {
        wallet_why(why, why_cap, "a certificate cannot be read");
        goto out;
    }
    if ((hr = hsm_ec_public_import(s, spki, spki_len, &pub)) != HSM_OK) {
        r = hsm_fail(hr, WALLET_ERR_CHAIN, "issuer key import", why, why_cap);
        goto out;
    }
    hr = hsm_ecdsa_verify(s, pub, digest, dlen, ASN1_STRING_get0_data(sig),
                          (size_t)ASN1_STRING_length(sig));
    if (hr != HSM_OK) {
        r = hsm_fail(hr, WALLET_ERR_CHAIN, "certificate signature (in the HSM)", why, why_cap);
        goto out;
    }
    r = WALLET_OK;
out:
    hsm_obj_destroy(s, pub);
    OPENSSL_free(der);
    return r;
}

/* Step 2: the chain leaf -> intermediate -> a pinned root, valid now. */
static int
chain_verify(hsm_session *s, const struct wallet_apple_ctx *ctx, X509 *leaf, X509 *inter,
             char *why, size_t why_cap)
{
    X509_STORE *store = NULL;
    X509_STORE_CTX *xs = NULL;
    STACK_OF(X509) *untrusted = NULL;
    STACK_OF(X509) *chain;
    uint8_t id[SHA256_DIGEST_LENGTH];
    unsigned char *ld = NULL, *id_der = NULL;
    int64_t now_s = (int64_t)(ctx->now_ms / 1000), from_s = INT64_MIN, until_s = INT64_MAX;
    int ll, il, r = WALLET_ERR_CHAIN;
    EVP_MD_CTX *md = NULL;

    ll = i2d_X509(leaf, &ld);
    il = i2d_X509(inter, &id_der);
    if (ll <= 0 || il <= 0) {
        r = WALLET_ERR_NO_MEMORY;
        goto out;
    }
    if ((md = EVP_MD_CTX_new()) == NULL || EVP_DigestInit_ex(md, EVP_sha256(), NULL) != 1 ||
        EVP_DigestUpdate(md, ld, (size_t)ll) != 1 || EVP_DigestUpdate(md, id_der, (size_t)il) != 1 ||
        EVP_DigestFinal_ex(md, id, NULL) != 1) {
        r = WALLET_ERR_NO_MEMORY;
        goto out;
    }
    if (wallet_vcache_hit(ctx->cache, id, now_s)) {
        r = WALLET_OK;
        goto out;
    }
    if ((store = X509_STORE_new()) == NULL || (xs = X509_STORE_CTX_new()) == NULL ||
        (untrusted = sk_X509_new_null()) == NULL || !sk_X509_push(untrusted, inter)) {
        r = WALLET_ERR_NO_MEMORY;
        goto out;
    }
    for (size_t i = 0; i < ctx->num_roots; i++) {
        const unsigned char *p = ctx->roots[i];
        X509 *root = d2i_X509(NULL, &p, (long)ctx->root_lens[i]);
        int added = root != NULL && X509_STORE_add_cert(store, root) == 1;

        X509_free(root);
        if (!added) {
            wallet_why(why, why_cap, "a pinned root cannot be read");
            r = WALLET_ERR_NO_ANCHOR;
            goto out;
        }
    }
    if (X509_STORE_CTX_init(xs, store, leaf, untrusted) != 1) {
        r = WALLET_ERR_NO_MEMORY;
        goto out;
    }
    /* The verification clock is the caller's (tests replay old packets at
     * their signing time); strict X.509 rules; no partial chains. */
    X509_STORE_CTX_set_time(xs, 0, (time_t)now_s);
    X509_STORE_CTX_set_flags(xs, X509_V_FLAG_X509_STRICT);
    if (X509_verify_cert(xs) != 1) {
        int e = X509_STORE_CTX_get_error(xs);

        wallet_why(why, why_cap, "certificate chain: %s", X509_verify_cert_error_string(e));
        r = (e == X509_V_ERR_CERT_HAS_EXPIRED || e == X509_V_ERR_CERT_NOT_YET_VALID)
                ? WALLET_ERR_EXPIRED
                : WALLET_ERR_CHAIN;
        goto out;
    }
    chain = X509_STORE_CTX_get0_chain(xs);
    if (chain == NULL || sk_X509_num(chain) != CHAIN_LEN || sk_X509_value(chain, 1) != inter) {
        wallet_why(why, why_cap, "certificate chain is not leaf, intermediate, pinned root");
        goto out;
    }
    /* The signatures again, in the HSM, against the root it holds. */
    for (int i = 0; i + 1 < CHAIN_LEN; i++) {
        if ((r = hsm_cert_verify(s, sk_X509_value(chain, i), sk_X509_value(chain, i + 1), why,
                                 why_cap)) != WALLET_OK)
            goto out;
    }
    for (int i = 0; i < CHAIN_LEN; i++) {
        X509 *x = sk_X509_value(chain, i);
        int64_t nb = 0, na = 0;

        if (asn1_time_s(X509_get0_notBefore(x), &nb) != WALLET_OK ||
            asn1_time_s(X509_get0_notAfter(x), &na) != WALLET_OK) {
            r = WALLET_ERR_CHAIN;
            goto out;
        }
        from_s = nb > from_s ? nb : from_s;
        until_s = na < until_s ? na : until_s;
    }
    wallet_vcache_put(ctx->cache, id, from_s, until_s);
    r = WALLET_OK;
out:
    sk_X509_free(untrusted);
    X509_STORE_CTX_free(xs);
    X509_STORE_free(store);
    EVP_MD_CTX_free(md);
    OPENSSL_free(ld);
    OPENSSL_free(id_der);
    return r;
}

/* ---- the CMS signature -------------------------------------------------------------- */

static int
attr_cmp(const void *a, const void *b)
{
    const struct {
        unsigned char *der;
        int len;
    } *x = a, *y = b;
    int n = x->len < y->len ? x->len : y->len;
    int c = memcmp(x->der, y->der, (size_t)n);

    return c != 0 ? c : x->len - y->len;
}

/* The DER of the signed attributes as signed (RFC 5652 section 5.4: the
 * EXPLICIT SET OF tag, elements in DER order), rebuilt from the attributes
 * because OpenSSL keeps no copy of the received bytes. */
static int
signed_attrs_der(CMS_SignerInfo *si, uint8_t *out, size_t cap, size_t *out_len)
{
    struct {
        unsigned char *der;
        int len;
    } el[SIGNED_ATTRS_MAX] = { { 0 } };
    int num = CMS_signed_get_attr_count(si), r = WALLET_ERR_FORMAT;
    size_t total = 0, hdr = 0, at;

    if (num <= 0 || num > SIGNED_ATTRS_MAX)
        return WALLET_ERR_FORMAT;
    for (int i = 0; i < num; i++) {
        el[i].len = i2d_X509_ATTRIBUTE(CMS_signed_get_attr(si, i), &el[i].der);
        if (el[i].len <= 0 || (size_t)el[i].len > SIGNED_ATTRS_DER_MAX)
            goto out;
        total += (size_t)el[i].len;
    }
    qsort(el, (size_t)num, sizeof(el[0]), attr_cmp);
    hdr = total < 0x80 ? 2 : total < 0x100 ? 3 : 4;
    if (total > 0xffff || hdr + total > cap)
        goto out;
    out[0] = DER_SET;
    if (hdr == 2) {
        out[1] = (uint8_t)total;
    } else if (hdr == 3) {
        out[1] = 0x81;
        out[2] = (uint8_t)total;
    } else {
        out[1] = 0x82;
        out[2] = (uint8_t)(total >> 8);
        out[3] = (uint8_t)total;
    }
    at = hdr;
    for (int i = 0; i < num; i++) {
        memcpy(out + at, el[i].der, (size_t)el[i].len);
        at += (size_t)el[i].len;
    }
    *out_len = at;
    r = WALLET_OK;
out:
    for (int i = 0; i < num && i < SIGNED_ATTRS_MAX; i++)
        OPENSSL_free(el[i].der);
    return r;
}

/* The single value of signed attribute |nid|, or NULL (absent, repeated, or
 * with other than one value). */
static ASN1_TYPE *
signed_attr_value(CMS_SignerInfo *si, int nid)
{
    int idx = CMS_signed_get_attr_by_NID(si, nid, -1);
    X509_ATTRIBUTE *a;

    if (idx < 0 || CMS_signed_get_attr_by_NID(si, nid, idx) >= 0)
        return NULL;
    a = CMS_signed_get_attr(si, idx);
    return X509_ATTRIBUTE_count(a) == 1 ? X509_ATTRIBUTE_get0_type(a, 0) : NULL;
}

/* Steps 2 and 3 on a parsed packet. */
static int
signature_verify(hsm_session *s, const struct wallet_apple_ctx *ctx,
                 const struct wallet_apple_packet *p, char *why, size_t why_cap)
{
    BIO *bio = NULL;
    CMS_ContentInfo *cms = NULL;
    STACK_OF(CMS_SignerInfo) *sis;
    STACK_OF(X509) *certs = NULL;
    CMS_SignerInfo *si;
    X509 *leaf = NULL, *inter = NULL;
    X509_ALGOR *dig_alg = NULL, *sig_alg = NULL;
    ASN1_TYPE *t;
    ASN1_OCTET_STRING *sigv;
    EVP_PKEY *leaf_key;
    uint8_t attrs[SIGNED_ATTRS_DER_MAX], md[SHA256_DIGEST_LENGTH], spki[HSM_SPKI_MAX];
    size_t attrs_len = 0, spki_len = 0;
    int64_t signed_s = 0, now_s = (int64_t)(ctx->now_ms / 1000), window_s;
    hsm_obj pub = HSM_OBJ_NONE;
    int hr, sig_nid, r = WALLET_ERR_FORMAT;

    /* The CMS is BER with indefinite lengths (WALLETS.md 1.2.1): OpenSSL's
     * d2i reads BER. Signed data, detached, one signer. */
    if ((bio = BIO_new_mem_buf(p->sig, (int)p->sig_len)) == NULL) {
        r = WALLET_ERR_NO_MEMORY;
        goto out;
    }
    cms = d2i_CMS_bio(bio, NULL);
    if (cms == NULL || OBJ_obj2nid(CMS_get0_type(cms)) != NID_pkcs7_signed ||
        CMS_is_detached(cms) != 1 || (sis = CMS_get0_SignerInfos(cms)) == NULL ||
        sk_CMS_SignerInfo_num(sis) != 1) {
        wallet_why(why, why_cap, "signature is not a detached CMS SignedData with one signer");
        goto out;
    }
    si = sk_CMS_SignerInfo_value(sis, 0);
    certs = CMS_get1_certs(cms);
    if (certs == NULL || sk_X509_num(certs) < 2 || sk_X509_num(certs) > CMS_CERTS_MAX) {
        wallet_why(why, why_cap, "signature does not carry leaf and intermediate certificates");
        r = WALLET_ERR_CHAIN;
        goto out;
    }
    for (int i = 0; i < sk_X509_num(certs); i++) {
        X509 *x = sk_X509_value(certs, i);

        if (CMS_SignerInfo_cert_cmp(si, x) == 0)
            leaf = x;
        else if (has_ext(x, OID_INTERMEDIATE_MARKER) && inter == NULL)
            inter = x;
    }
    r = WALLET_ERR_CHAIN;
    if (leaf == NULL) {
        wallet_why(why, why_cap, "the signer's certificate is not in the signature");
        goto out;
    }
    if (!has_ext(leaf, OID_LEAF_MARKER)) {
        wallet_why(why, why_cap, "leaf certificate lacks " OID_LEAF_MARKER);
        goto out;
    }
    if (inter == NULL) {
        wallet_why(why, why_cap, "no intermediate certificate with " OID_INTERMEDIATE_MARKER);
        goto out;
    }
    if ((r = chain_verify(s, ctx, leaf, inter, why, why_cap)) != WALLET_OK)
        goto out;
    /* Step 3: what the signer says it signed. */
    r = WALLET_ERR_SIGNATURE;
    CMS_SignerInfo_get0_algs(si, &leaf_key, NULL, &dig_alg, &sig_alg);
    if (dig_alg == NULL || OBJ_obj2nid(dig_alg->algorithm) != NID_sha256) {
        wallet_why(why, why_cap, "signer's digest is not SHA-256");
        goto out;
    }
    t = signed_attr_value(si, NID_pkcs9_contentType);
    if (t == NULL || t->type != V_ASN1_OBJECT || OBJ_obj2nid(t->value.object) != NID_pkcs7_data) {
        wallet_why(why, why_cap, "contentType attribute missing or not id-data");
        goto out;
    }
    t = signed_attr_value(si, NID_pkcs9_messageDigest);
    SHA256(p->signed_bytes, p->signed_len, md);
    if (t == NULL || t->type != V_ASN1_OCTET_STRING ||
        ASN1_STRING_length(t->value.octet_string) != SHA256_DIGEST_LENGTH ||
        CRYPTO_memcmp(ASN1_STRING_get0_data(t->value.octet_string), md, sizeof(md)) != 0) {
        wallet_why(why, why_cap, "messageDigest does not match the signed fields");
        goto out;
    }
    t = signed_attr_value(si, NID_pkcs9_signingTime);
    if (t == NULL || (t->type != V_ASN1_UTCTIME && t->type != V_ASN1_GENERALIZEDTIME) ||
        asn1_time_s(t->value.asn1_string, &signed_s) != WALLET_OK) {
        wallet_why(why, why_cap, "signingTime attribute missing or malformed");
        goto out;
    }
    window_s = (int64_t)(ctx->window_ms / 1000);
    if (signed_s < now_s - window_s || signed_s > now_s + window_s) {
        wallet_why(why, why_cap, "signed %lld s from the verification time (window %lld s)",
                   (long long)(signed_s - now_s), (long long)window_s);
        r = WALLET_ERR_SIGNING_TIME;
        goto out;
    }
    if (signed_attrs_der(si, attrs, sizeof(attrs), &attrs_len) != WALLET_OK) {
        wallet_why(why, why_cap, "signed attributes cannot be encoded");
        r = WALLET_ERR_FORMAT;
        goto out;
    }
    SHA256(attrs, attrs_len, md);
    sigv = CMS_SignerInfo_get0_signature(si);
    sig_nid = sig_alg != NULL ? OBJ_obj2nid(sig_alg->algorithm) : NID_undef;
    if (cert_spki(leaf, spki, &spki_len) != WALLET_OK) {
        wallet_why(why, why_cap, "leaf key cannot be read");
        goto out;
    }
    /* The leaf's key decides the scheme, and it must be the version's. */
    if (p->version == WALLET_APPLE_EC_V1 && EVP_PKEY_get_base_id(X509_get0_pubkey(leaf)) == EVP_PKEY_EC &&
        (sig_nid == NID_ecdsa_with_SHA256 || sig_nid == NID_X9_62_id_ecPublicKey)) {
        if ((hr = hsm_ec_public_import(s, spki, spki_len, &pub)) == HSM_OK)
            hr = hsm_ecdsa_verify(s, pub, md, sizeof(md), ASN1_STRING_get0_data(sigv),
                                  (size_t)ASN1_STRING_length(sigv));
    } else if (p->version == WALLET_APPLE_RSA_V1 &&
               EVP_PKEY_get_base_id(X509_get0_pubkey(leaf)) == EVP_PKEY_RSA &&
               (sig_nid == NID_sha256WithRSAEncryption || sig_nid == NID_rsaEncryption)) {
        if ((hr = hsm_rsa_public_import(s, spki, spki_len, &pub)) == HSM_OK)
            hr = hsm_rsa_sha256_verify(s, pub, md, ASN1_STRING_get0_data(sigv),
                                       (size_t)ASN1_STRING_length(sigv));
    } else {
        wallet_why(why, why_cap, "signer's key or algorithm does not fit the version");
        goto out;
    }
    if (hr != HSM_OK) {
        r = hsm_fail(hr, WALLET_ERR_SIGNATURE, "packet signature (in the HSM)", why, why_cap);
        goto out;
    }
    r = WALLET_OK;
out:
    hsm_obj_destroy(s, pub);
    sk_X509_pop_free(certs, X509_free);
    CMS_ContentInfo_free(cms);
    BIO_free(bio);
    ERR_clear_error();
    return r;
}

/* ---- decryption ----------------------------------------------------------------------- */

/* The uncompressed P-256 point of the ephemeral key's SPKI. */
static int
ephemeral_point(const struct wallet_apple_packet *p, uint8_t point[HSM_EC_P256_POINT_LEN])
{
    const unsigned char *q = p->key_field;
    EVP_PKEY *k;
    char group[32];
    size_t n = 0;
    int r = WALLET_ERR_FORMAT;

    /* Apple's form (named curve, uncompressed point) without OpenSSL's
     * generic decoder; anything else still goes through it. */
    if (hsm_ec_p256_spki_point(p->key_field, p->key_field_len, point) == HSM_OK)
        return WALLET_OK;
    k = d2i_PUBKEY(NULL, &q, (long)p->key_field_len);
    if (k != NULL && q == p->key_field + p->key_field_len &&
        EVP_PKEY_get_base_id(k) == EVP_PKEY_EC &&
        EVP_PKEY_get_utf8_string_param(k, OSSL_PKEY_PARAM_GROUP_NAME, group, sizeof(group), NULL) &&
        strcmp(group, "prime256v1") == 0 &&
        EVP_PKEY_set_utf8_string_param(k, OSSL_PKEY_PARAM_EC_POINT_CONVERSION_FORMAT,
                                       "uncompressed") == 1 &&
        EVP_PKEY_get_octet_string_param(k, OSSL_PKEY_PARAM_PUB_KEY, point,
                                        HSM_EC_P256_POINT_LEN, &n) &&
        n == HSM_EC_P256_POINT_LEN)
        r = WALLET_OK;
    EVP_PKEY_free(k);
    ERR_clear_error();
    return r;
}

/* EC_v1: Z, the KDF and the content key in the HSM (apple.h step 4). */
static int
ec_content_key(hsm_session *s, const struct wallet_apple_key *mk,
               const struct wallet_apple_packet *p, hsm_obj *out, char *why, size_t why_cap)
{
    uint8_t point[HSM_EC_P256_POINT_LEN], other[OTHER_INFO_LEN];
    hsm_obj z = HSM_OBJ_NONE;
    int hr, r;

    if (ephemeral_point(p, point) != WALLET_OK) {
        wallet_why(why, why_cap, "ephemeralPublicKey is not a P-256 key");
        return WALLET_ERR_FORMAT;
    }
    memcpy(other, KDF_ALG_ID, sizeof(KDF_ALG_ID) - 1);
    memcpy(other + sizeof(KDF_ALG_ID) - 1, KDF_PARTY_U, sizeof(KDF_PARTY_U) - 1);
    memcpy(other + sizeof(KDF_ALG_ID) - 1 + sizeof(KDF_PARTY_U) - 1, mk->merchant_id,
           WALLET_APPLE_HASH_LEN);
    if ((hr = hsm_ecdh_derive(s, mk->key, point, sizeof(point), &z)) != HSM_OK) {
        r = hsm_fail(hr, WALLET_ERR_DECRYPT, "ECDH", why, why_cap);
        goto out;
    }
    /* All in the token where the probe found the derivation mechanisms; on
     * a token without them (SoftHSM 2.6) the KDF output is in host memory for
     * as long as its import takes (hsm.h, SECURITY.md). */
    if ((hr = hsm_apple_kdf_key(s, z, other, sizeof(other), HSM_USE_AES_GCM_DECRYPT, out,
                                NULL)) != HSM_OK) {
        r = hsm_fail(hr, WALLET_ERR_DECRYPT, "key derivation", why, why_cap);
        goto out;
    }
    r = WALLET_OK;
out:
    hsm_obj_destroy(s, z);
    return r;
}

/* Steps 2-4 on a parsed packet. */
static int
unseal_parsed(hsm_session *s, const struct wallet_apple_ctx *ctx,
              const struct wallet_apple_packet *p, uint8_t *out, size_t cap, size_t *out_len,
              char *why, size_t why_cap)
{
    static const uint8_t zero_iv[GCM_IV_LEN];
    const struct wallet_apple_key *mk = NULL;
    hsm_obj cek = HSM_OBJ_NONE;
    int hr, r;

    if (ctx->num_roots == 0) {
        wallet_why(why, why_cap, "no Apple root in the HSM (trust-anchor --kind apple-root)");
        return WALLET_ERR_NO_ANCHOR;
    }
    if ((r = signature_verify(s, ctx, p, why, why_cap)) != WALLET_OK)
        return r;
    /* Step 4: the merchant key whose certificate's SPKI hash is named. */
    for (size_t i = 0; i < ctx->num_keys && mk == NULL; i++) {
        if (memcmp(ctx->keys[i].pkh, p->pkh, WALLET_APPLE_HASH_LEN) == 0)
            mk = &ctx->keys[i];
    }
    if (mk == NULL) {
        wallet_why(why, why_cap, "publicKeyHash names no key of this merchant");
        return WALLET_ERR_UNKNOWN_KEY;
    }
    if (p->version == WALLET_APPLE_EC_V1) {
        r = ec_content_key(s, mk, p, &cek, why, why_cap);
    } else {
        hr = hsm_rsa_unwrap_aes(s, mk->key, HSM_RSA_OAEP_SHA256, p->key_field, p->key_field_len,
                                RSA_V1_KEY_LEN, HSM_USE_AES_GCM_DECRYPT, &cek, NULL);
        r = hr == HSM_OK ? WALLET_OK : hsm_fail(hr, WALLET_ERR_DECRYPT, "key unwrap", why, why_cap);
    }
    if (r != WALLET_OK)
        goto out;
    hr = hsm_obj_gcm_decrypt(s, cek, NULL, 0, zero_iv, sizeof(zero_iv), p->data, p->data_len, out,
                             cap, out_len);
    if (hr != HSM_OK) {
        r = hsm_fail(hr, WALLET_ERR_DECRYPT, "GCM tag", why, why_cap);
        goto out;
    }
    r = WALLET_OK;
out:
    hsm_obj_destroy(s, cek);
    return r;
}

int
wallet_apple_unseal(hsm_session *s, const struct wallet_apple_ctx *ctx, const char *packet,
                    size_t len, uint8_t *out, size_t cap, size_t *out_len, char *why,
                    size_t why_cap)
{
    struct wallet_apple_packet p = { 0 };
    int r;

    if (s == NULL || ctx == NULL || out == NULL || out_len == NULL)
        return WALLET_ERR_FORMAT;
    if ((r = apple_packet_parse(&p, packet, len, why, why_cap)) == WALLET_OK)
        r = unseal_parsed(s, ctx, &p, out, cap, out_len, why, why_cap);
    apple_packet_free(&p);
    return r;
}

int
wallet_apple_open(hsm_session *s, const struct wallet_apple_ctx *ctx, const char *packet,
                  size_t len, struct wallet_card *out, char *why, size_t why_cap)
{
    struct wallet_apple_packet p = { 0 };
    uint8_t *plain = NULL;
    size_t plain_len = 0;
    int r;

    if (s == NULL || ctx == NULL || out == NULL)
        return WALLET_ERR_FORMAT;
    if ((r = apple_packet_parse(&p, packet, len, why, why_cap)) != WALLET_OK)
        return r;
    /* The plaintext is shorter than the ciphertext. */
    if ((plain = malloc(p.data_len)) == NULL) {
        r = WALLET_ERR_NO_MEMORY;
        goto out;
    }
    if ((r = unseal_parsed(s, ctx, &p, plain, p.data_len, &plain_len, why, why_cap)) != 0 ||
        (r = apple_plain_parse(out, plain, plain_len, why, why_cap)) != WALLET_OK)
        goto out;
    snprintf(out->version, sizeof(out->version), "%s",
             p.version == WALLET_APPLE_EC_V1 ? "EC_v1" : "RSA_v1");
    snprintf(out->transaction_id, sizeof(out->transaction_id), "%s", p.txid_hex);
    /* Accepted while |now - signingTime| <= window, and signingTime is
     * within the window of now: a replay entry kept 2 windows outlives it. */
    out->valid_until_ms = ctx->now_ms + 2 * ctx->window_ms;
    r = WALLET_OK;
out:
    if (plain != NULL) {
        OPENSSL_cleanse(plain, p.data_len);
        free(plain);
    }
    apple_packet_free(&p);
    return r;
}
