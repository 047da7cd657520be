/*
 * gen_google.h - builds Google Pay payment method tokens (ECv1, ECv2,
 * ECv2SigningOnly) the way Google's servers do, with OpenSSL on the host:
 * ECIES (fresh ephemeral P-256 key, ECDH, HKDF-SHA256 "Google", AES-CTR with
 * a zero IV, HMAC-SHA256 tag), the intermediate signing key signed by a root,
 * the message signed by the intermediate (ECv1: by the root), '=' written as
 * \u003d inside signedKey and signedMessage as Gson does. It plays Google, so
 * it holds the signing keys (Tink's published test keys in the tests).
 *
 * For the tests and the demo tool: no cmocka, no HSM. Errors: 0 or -1 (with
 * OpenSSL's error queue left for the caller to print).
 */
#ifndef TOKENVAULT_TESTS_SUPPORT_GEN_GOOGLE_H
#define TOKENVAULT_TESTS_SUPPORT_GEN_GOOGLE_H

#include <stddef.h>
#include <stdint.h>

/* Ways to spoil a token, for the hostile-input tests. Each is applied before
 * the signatures are made (so the signatures still verify) unless it is a
 * signature that is spoilt. */
enum gen_google_flag {
    GEN_GOOGLE_BAD_TAG = 1u << 0,         /* one bit of the tag flipped */
    GEN_GOOGLE_BAD_CIPHERTEXT = 1u << 1,  /* one bit of encryptedMessage flipped after the MAC */
    GEN_GOOGLE_OFF_CURVE = 1u << 2,       /* the ephemeral point's Y changed: off the curve */
    GEN_GOOGLE_OTHER_POINT = 1u << 3,     /* a valid point other than the one encrypted with */
    GEN_GOOGLE_BAD_KEY_SIG = 1u << 4,     /* one bit of the intermediate key's signature flipped */
    GEN_GOOGLE_BAD_MESSAGE_SIG = 1u << 5, /* one bit of the message signature flipped */
    GEN_GOOGLE_JUNK_SIG_FIRST = 1u << 6,  /* signatures[] starts with one by an unknown key */
};

struct gen_google_params {
    const char *protocol;             /* "ECv1", "ECv2" or "ECv2SigningOnly" */
    const uint8_t *recipient_spki;    /* DER SubjectPublicKeyInfo, P-256 (not for SigningOnly) */
    size_t recipient_spki_len;
    const char *recipient_id;         /* "merchant:<id>", "gateway:<id>" */
    const uint8_t *plaintext;         /* the payment message (SigningOnly: UTF-8 JSON text) */
    size_t plaintext_len;
    uint64_t key_expiration_ms;       /* the intermediate's keyExpiration (ECv2*) */
    const uint8_t *root_pkcs8;        /* the root signing key, PKCS#8 DER */
    size_t root_pkcs8_len;
    const uint8_t *intermediate_pkcs8; /* the intermediate signing key (ECv2*), PKCS#8 DER */
    size_t intermediate_pkcs8_len;
    unsigned flags;                   /* enum gen_google_flag */
};

/* gen_google_token builds a token; *out is a malloc'd NUL-terminated JSON
 * text (free it), *out_len its length (may be NULL). */
int gen_google_token(const struct gen_google_params *p, char **out, size_t *out_len);

/* gen_google_spki: the DER SubjectPublicKeyInfo of a PKCS#8 private key
 * (a root's keyValue); *out malloc'd. */
int gen_google_spki(const uint8_t *pkcs8, size_t len, uint8_t **out, size_t *out_len);

/* gen_google_keys_json: a keys.json (as Google publishes it) of one root
 * key: {"keys":[{"keyValue","protocolVersion","keyExpiration"}]}; the
 * expiry is left out when |expiration_ms| is 0 (ECv1). *out malloc'd. */
int gen_google_keys_json(const uint8_t *pkcs8, size_t len, const char *protocol,
                         uint64_t expiration_ms, char **out);

#endif
