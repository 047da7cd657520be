/*
 * anchors.c - strict parsers for the files of the wallet-key ceremonies:
 * Google's keys.json (jansson, duplicates rejected), the Apple Pay merchant id
 * extension (a bounds-checked cursor).
 */
#include "vault/wallet/anchors.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/x509.h>

#include "api/reader.h"
#include "vault/wallet/codec.h"

/* Apple's merchant id extension (WALLETS.md 1.4). */
#define MERCHANT_ID_OID "1.2.840.113635.100.6.32"
/* Its value: a string of the 64 hex digits of a SHA-256. */
#define MERCHANT_ID_HEX_LEN (2 * WALLET_MERCHANT_ID_LEN)
#define DER_UTF8STRING 0x0c
#define DER_IA5STRING 0x16
/* Decimal digits of the largest keyExpiration (WALLET_EXPIRATION_MAX_MS). */
#define EXPIRATION_DIGITS_MAX 15

/* ---- keys.json ------------------------------------------------------------- */

/* A keyValue: strict base64 of a DER EC P-256 SubjectPublicKeyInfo whose
 * point is on the curve (the key is checked here and again when the HSM
 * stores it). */
static int
parse_key_value(struct wallet_root_key *k, const char *b64, size_t len)
{
    const unsigned char *p = k->spki;
    EVP_PKEY *pkey = NULL;
    EVP_PKEY_CTX *check = NULL;
    char group[32];
    int r = WALLET_ERR_FORMAT;

    if (len > WALLET_KEY_VALUE_MAX ||
        wallet_b64_decode(k->spki, sizeof(k->spki), &k->spki_len, b64, len) != WALLET_OK)
        return WALLET_ERR_FORMAT;
    pkey = d2i_PUBKEY(NULL, &p, (long)k->spki_len);
    if (pkey == NULL || p != k->spki + k->spki_len || EVP_PKEY_get_base_id(pkey) != EVP_PKEY_EC ||
        !EVP_PKEY_get_utf8_string_param(pkey, OSSL_PKEY_PARAM_GROUP_NAME, group, sizeof(group),
                                        NULL) ||
        strcmp(group, "prime256v1") != 0)
        goto out;
    check = EVP_PKEY_CTX_new_from_pkey(NULL, pkey, NULL);
    if (check == NULL || EVP_PKEY_public_check(check) != 1)
        goto out;
    r = WALLET_OK;
out:
    EVP_PKEY_CTX_free(check);
    EVP_PKEY_free(pkey);
    ERR_clear_error();
    return r;
}

/* Epoch milliseconds as a decimal string: digits only, no sign, no leading
 * zero, 1..WALLET_EXPIRATION_MAX_MS. */
static int
parse_expiration(const char *s, size_t len, uint64_t *out)
{
    uint64_t v = 0;

    if (len == 0 || len > EXPIRATION_DIGITS_MAX || s[0] == '0')
        return WALLET_ERR_FORMAT;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return WALLET_ERR_FORMAT;
        v = v * 10 + (uint64_t)(s[i] - '0');
    }
    if (v > WALLET_EXPIRATION_MAX_MS)
        return WALLET_ERR_FORMAT;
    *out = v;
    return WALLET_OK;
}

static bool
protocol_known(const char *p)
{
    return strcmp(p, "ECv1") == 0 || strcmp(p, "ECv2") == 0 || strcmp(p, "ECv2SigningOnly") == 0;
}

static int
parse_entry(struct wallet_root_key *k, size_t i, const json_t *e, char *err, size_t err_cap)
{
    const char *name, *s;
    const json_t *v;
    const json_t *value = NULL, *proto = NULL, *exp = NULL;
    size_t len = 0;

    if (!json_is_object(e)) {
        wallet_why(err, err_cap, "keys[%zu] is not an object", i);
        return WALLET_ERR_FORMAT;
    }
    json_object_foreach((json_t *)e, name, v) {
        if (strcmp(name, "keyValue") == 0)
            value = v;
        else if (strcmp(name, "protocolVersion") == 0)
            proto = v;
        else if (strcmp(name, "keyExpiration") == 0)
            exp = v;
        else {
            wallet_why(err, err_cap, "keys[%zu] has an unknown field", i);
            return WALLET_ERR_FORMAT;
        }
    }
    memset(k, 0, sizeof(*k));
    if (proto == NULL || (s = wallet_json_str(proto, WALLET_KEYS_JSON_MAX, &len)) == NULL || len > WALLET_PROTOCOL_MAX ||
        !protocol_known(s)) {
        wallet_why(err, err_cap,
               "keys[%zu]: protocolVersion missing or not ECv1, ECv2, ECv2SigningOnly", i);
        return WALLET_ERR_FORMAT;
    }
    memcpy(k->protocol, s, len + 1);
    if (value == NULL || (s = wallet_json_str(value, WALLET_KEYS_JSON_MAX, &len)) == NULL ||
        parse_key_value(k, s, len) != WALLET_OK) {
        wallet_why(err, err_cap, "keys[%zu]: keyValue missing or not base64 of an EC P-256 public key",
               i);
        return WALLET_ERR_FORMAT;
    }
    /* Tink skips an ECv2 root without keyExpiration; a ceremony refuses the file. */
    if (exp == NULL && strcmp(k->protocol, "ECv1") != 0) {
        wallet_why(err, err_cap, "keys[%zu]: keyExpiration missing (required for %s)", i, k->protocol);
        return WALLET_ERR_FORMAT;
    }
    if (exp != NULL) {
        if ((s = wallet_json_str(exp, WALLET_KEYS_JSON_MAX, &len)) == NULL ||
            parse_expiration(s, len, &k->expiration_ms) != WALLET_OK) {
            wallet_why(err, err_cap, "keys[%zu]: keyExpiration is not epoch milliseconds as a string",
                   i);
            return WALLET_ERR_FORMAT;
        }
        k->has_expiration = 1;
    }
    return WALLET_OK;
}

/* One key listed twice for one protocol is a broken file, not a rotation. */
static int
check_repeats(const struct wallet_root_keys *keys, char *err, size_t err_cap)
{
    for (size_t i = 0; i < keys->num; i++) {
        for (size_t j = 0; j < i; j++) {
            const struct wallet_root_key *a = &keys->keys[i], *b = &keys->keys[j];

            if (strcmp(a->protocol, b->protocol) == 0 && a->spki_len == b->spki_len &&
                memcmp(a->spki, b->spki, a->spki_len) == 0) {
                wallet_why(err, err_cap, "keys[%zu] repeats keys[%zu]", i, j);
                return WALLET_ERR_FORMAT;
            }
        }
    }
    return WALLET_OK;
}

int
wallet_google_keys_parse(struct wallet_root_keys *out, const char *json, size_t len, char *err,
                         size_t err_cap)
{
    static struct wallet_root_keys empty;
    struct wallet_root_keys *keys = NULL;
    json_error_t jerr;
    json_t *root = NULL, *arr;
    size_t n;
    int r = WALLET_ERR_FORMAT;

    if (out == NULL || json == NULL || len == 0 || len > WALLET_KEYS_JSON_MAX) {
        wallet_why(err, err_cap, "keys file empty or larger than %d bytes", WALLET_KEYS_JSON_MAX);
        return WALLET_ERR_FORMAT;
    }
    root = json_loadb(json, len, JSON_REJECT_DUPLICATES, &jerr);
    if (root == NULL) {
        wallet_why(err, err_cap, "not JSON (line %d column %d): %s", jerr.line, jerr.column, jerr.text);
        return WALLET_ERR_FORMAT;
    }
    arr = json_object_get(root, "keys");
    if (!json_is_object(root) || json_object_size(root) != 1 || !json_is_array(arr) ||
        (n = json_array_size(arr)) == 0 || n > WALLET_ROOT_KEYS_MAX) {
        wallet_why(err, err_cap, "expected {\"keys\": [1..%d keys]} and nothing else",
               WALLET_ROOT_KEYS_MAX);
        goto out;
    }
    /* Built aside (it is large), copied out only when all of it parsed. */
    if ((keys = malloc(sizeof(*keys))) == NULL) {
        r = WALLET_ERR_NO_MEMORY;
        goto out;
    }
    *keys = empty;
    for (size_t i = 0; i < n; i++) {
        if ((r = parse_entry(&keys->keys[i], i, json_array_get(arr, i), err, err_cap)) != WALLET_OK)
            goto out;
        keys->num = i + 1;
    }
    if ((r = check_repeats(keys, err, err_cap)) != WALLET_OK)
        goto out;
    *out = *keys;
    r = WALLET_OK;
out:
    free(keys);
    json_decref(root);
    return r;
}

/* ---- Apple merchant id --------------------------------------------------------- */

int
wallet_merchant_id_decode(uint8_t out[WALLET_MERCHANT_ID_LEN], const uint8_t *value, size_t len)
{
    struct api_reader r, hex;
    uint8_t tag = 0, slen = 0, id[WALLET_MERCHANT_ID_LEN];
    size_t id_len = 0;

    if (out == NULL || value == NULL)
        return WALLET_ERR_FORMAT;
    api_reader_init(&r, value, len);
    /* Tag, a short-form length of exactly 64, the digits, nothing after. */
    if (api_reader_get_u8(&r, &tag) != 0 || (tag != DER_UTF8STRING && tag != DER_IA5STRING) ||
        api_reader_get_u8(&r, &slen) != 0 || slen != MERCHANT_ID_HEX_LEN ||
        api_reader_get_bytes(&r, &hex, MERCHANT_ID_HEX_LEN) != 0 || api_reader_len(&r) != 0)
        return WALLET_ERR_FORMAT;
    if (wallet_hex_decode(id, sizeof(id), &id_len, (const char *)hex.data, MERCHANT_ID_HEX_LEN) !=
        WALLET_OK)
        return WALLET_ERR_FORMAT;
    memcpy(out, id, sizeof(id));
    return WALLET_OK;
}

int
wallet_cert_merchant_id(uint8_t out[WALLET_MERCHANT_ID_LEN], const uint8_t *der, size_t len)
{
    const unsigned char *p = der;
    ASN1_OBJECT *oid = NULL;
    X509 *x = NULL;
    const ASN1_OCTET_STRING *v;
    int idx, r = WALLET_ERR_FORMAT;

    if (out == NULL || der == NULL || len == 0 || len > WALLET_CERT_MAX)
        return WALLET_ERR_FORMAT;
    x = d2i_X509(NULL, &p, (long)len);
    if (x == NULL || p != der + len)
        goto out;
    if ((oid = OBJ_txt2obj(MERCHANT_ID_OID, 1)) == NULL) {
        r = WALLET_ERR_NO_MEMORY;
        goto out;
    }
    if ((idx = X509_get_ext_by_OBJ(x, oid, -1)) < 0) {
        r = WALLET_ERR_ABSENT;
        goto out;
    }
    /* Two values would leave "which merchant?" to chance. */
    if (X509_get_ext_by_OBJ(x, oid, idx) >= 0)
        goto out;
    v = X509_EXTENSION_get_data(X509_get_ext(x, idx));
    if (v == NULL)
        goto out;
    r = wallet_merchant_id_decode(out, ASN1_STRING_get0_data(v), (size_t)ASN1_STRING_length(v));
out:
    ASN1_OBJECT_free(oid);
    X509_free(x);
    ERR_clear_error();
    return r;
}
