/*
 * anchors.h - what officers hand the wallet-key ceremonies, parsed strictly:
 * Google's root signing keys (keys.json) and the merchant id in an Apple Pay
 * Payment Processing certificate. The vault reads the same merchant id when
 * it opens an Apple packet. Pure: no I/O, no HSM, no global state; safe from
 * any thread.
 *
 * Errors: 0 or a negative WALLET_ERR_*. Outputs are written only on success.
 * Formats: docs in /work/shared/WALLETS.md sections 1.4 and 2.2 (condensed
 * from Apple's "Payment token format reference" and Google's "Payment data
 * cryptography").
 */
#ifndef TOKENVAULT_VAULT_WALLET_ANCHORS_H
#define TOKENVAULT_VAULT_WALLET_ANCHORS_H

#include <stddef.h>
#include <stdint.h>

#include "vault/wallet/wallet.h"

/* Largest keys.json read: Google's file is about 1 KB. */
#define WALLET_KEYS_JSON_MAX 65536
/* Most root keys in one file: Google publishes two or three. */
#define WALLET_ROOT_KEYS_MAX 16
/* Longest keyValue, base64 characters (a P-256 SPKI is 124). */
#define WALLET_KEY_VALUE_MAX 1024
/* Largest decoded keyValue (DER SubjectPublicKeyInfo). */
#define WALLET_SPKI_MAX 512
/* Longest protocolVersion accepted ("ECv2SigningOnly"). */
#define WALLET_PROTOCOL_MAX 15
/* The merchant id in the certificate: SHA-256 of the merchant identifier. */
#define WALLET_MERCHANT_ID_LEN 32
/* Largest certificate handed to wallet_cert_merchant_id. */
#define WALLET_CERT_MAX 16384

struct wallet_root_key {
    char protocol[WALLET_PROTOCOL_MAX + 1]; /* "ECv1", "ECv2" or "ECv2SigningOnly" */
    int has_expiration;                     /* ECv1 keys may have none */
    uint64_t expiration_ms;                 /* keyExpiration, epoch milliseconds */
    uint8_t spki[WALLET_SPKI_MAX];          /* keyValue decoded: an EC P-256 SPKI, DER */
    size_t spki_len;
};

struct wallet_root_keys {
    size_t num;
    struct wallet_root_key keys[WALLET_ROOT_KEYS_MAX];
};

/* wallet_google_keys_parse parses Google's root signing keys file
 * ({"keys":[{"keyValue","protocolVersion","keyExpiration"}, ...]}) with
 * jansson, strictly: |len| <= WALLET_KEYS_JSON_MAX, no duplicate object keys,
 * no field but those three, no trailing data; 1..WALLET_ROOT_KEYS_MAX keys;
 * protocolVersion one of ECv1, ECv2, ECv2SigningOnly; keyValue strict base64
 * of a DER EC P-256 SubjectPublicKeyInfo with a point on the curve;
 * keyExpiration a decimal string of epoch milliseconds, required for every
 * key but ECv1 (as Tink requires); the same key twice for one protocol is
 * refused. On WALLET_ERR_FORMAT a reason (printable ASCII, no key bytes) is
 * written to |err| (|err_cap| bytes, may be 0). |out| is untouched on error. */
WALLET_WUR int wallet_google_keys_parse(struct wallet_root_keys *out, const char *json, size_t len,
                                        char *err, size_t err_cap);

/* wallet_merchant_id_decode decodes the value (extnValue contents) of the
 * Apple Pay merchant id extension, OID 1.2.840.113635.100.6.32: a DER
 * UTF8String (or IA5String) of 64 hex digits, which decode to the 32 bytes
 * SHA-256(merchant identifier). Nothing else, no trailing bytes. */
WALLET_WUR int wallet_merchant_id_decode(uint8_t out[WALLET_MERCHANT_ID_LEN], const uint8_t *value,
                                         size_t len);

/* wallet_cert_merchant_id finds that extension in a DER certificate (one
 * certificate, no trailing bytes, at most WALLET_CERT_MAX bytes) and decodes
 * it. WALLET_ERR_ABSENT if the certificate has none (e.g. a Merchant Identity
 * certificate, which is for TLS, not for decryption); WALLET_ERR_FORMAT for a
 * bad certificate, a bad value, or the extension twice. */
WALLET_WUR int wallet_cert_merchant_id(uint8_t out[WALLET_MERCHANT_ID_LEN], const uint8_t *der,
                                       size_t len);


#endif
