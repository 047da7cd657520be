/*
 * apple.h - Apple Pay payment tokens, EC_v1 and RSA_v1 (WALLETS.md section 1).
 *
 * Opening a packet, in order; every step must pass:
 *  1. the token JSON, strictly (apple_packet_parse);
 *  2. the CMS signature (BER, detached): one signer, its certificate the
 *     leaf with marker OID 1.2.840.113635.100.6.29, an intermediate with
 *     1.2.840.113635.100.6.2.14, the chain leaf -> intermediate -> one of the
 *     pinned roots held in the HSM (never a root from the message), each
 *     certificate valid at the verification time; OpenSSL applies the X.509
 *     rules, and each certificate signature is verified again in the HSM;
 *  3. messageDigest = SHA-256 of the signed bytes, signingTime within the
 *     window of the verification time, the signer's signature over the
 *     signed attributes verified in the HSM with the leaf's key;
 *  4. publicKeyHash selects the merchant key; EC_v1: ECDH in the HSM (Z
 *     never leaves it), the Apple KDF over Z in the HSM, AES-256-GCM with
 *     the 16-byte zero IV in the HSM; RSA_v1: RSA-OAEP-SHA256 unwrap of the
 *     AES-128 key, AES-128-GCM in the HSM;
 *  5. the decrypted JSON (apple_plain_parse).
 * Verified chains are cached by the SHA-256 of their two certificates, so the
 * steady state costs one signature check per packet.
 *
 * Thread safety: the parsers are pure. wallet_apple_open uses the caller's
 * session; the chain cache (vcache.h) may be shared by threads (it locks).
 */
#ifndef TOKENVAULT_VAULT_WALLET_APPLE_H
#define TOKENVAULT_VAULT_WALLET_APPLE_H

#include <stddef.h>
#include <stdint.h>

#include "hsm/hsm.h"
#include "vault/wallet/vcache.h"
#include "vault/wallet/wallet.h"

/* Keys of one merchant (rotation keeps the old beside the new). */
#define WALLET_APPLE_KEYS_MAX 8
/* Pinned roots (Apple Root CA - G3, and its successor when Apple adds one). */
#define WALLET_APPLE_ROOTS_MAX 4
/* Apple's signing-time window: "more than 5 minutes ... may be a replay". */
#define WALLET_APPLE_WINDOW_MS_DEFAULT (5u * 60u * 1000u)
/* transactionId: 32 bytes in every packet seen; room for growth. */
#define WALLET_APPLE_TXID_MAX 64
/* Largest CMS signature: two certificates and a signer info are about 3.5 KB. */
#define WALLET_APPLE_SIG_MAX 16384
/* The ephemeral key (a P-256 SPKI, 91 bytes) or wrapped key (RSA-2048, 256
 * bytes; 4096-bit keys give 512). */
#define WALLET_APPLE_KEY_FIELD_MAX 512
/* The hashes: publicKeyHash, applicationData, SHA-256(merchant id). */
#define WALLET_APPLE_HASH_LEN 32

enum wallet_apple_version {
    WALLET_APPLE_EC_V1 = 1,
    WALLET_APPLE_RSA_V1,
};

/* A parsed token. The byte fields point into |buf| (one allocation). */
struct wallet_apple_packet {
    enum wallet_apple_version version;
    uint8_t *data;                /* ciphertext || 16-byte tag */
    size_t data_len;
    uint8_t *sig;                 /* the CMS signature, BER */
    size_t sig_len;
    uint8_t *key_field;           /* ephemeralPublicKey (SPKI) or wrappedKey */
    size_t key_field_len;
    uint8_t pkh[WALLET_APPLE_HASH_LEN];
    uint8_t txid[WALLET_APPLE_TXID_MAX];
    size_t txid_len;
    char txid_hex[2 * WALLET_APPLE_TXID_MAX + 1]; /* as the token gives it, lower case */
    bool has_app_data;
    uint8_t app_data[WALLET_APPLE_HASH_LEN];
    uint8_t *signed_bytes;        /* key_field || data || txid || app_data? */
    size_t signed_len;
    uint8_t *buf;
};

/* apple_packet_parse parses |len| bytes of token JSON: paymentData itself,
 * or an object holding it as "paymentData" (a PKPaymentToken) or as
 * "token"."paymentData". version, data, signature and header, nothing else;
 * header: ephemeralPublicKey (EC_v1) or wrappedKey (RSA_v1), publicKeyHash,
 * transactionId, optional applicationData, nothing else. Release with
 * apple_packet_free. WALLET_ERR_FORMAT or WALLET_ERR_UNSUPPORTED (another
 * version) with a reason in |why|. */
WALLET_WUR int apple_packet_parse(struct wallet_apple_packet *out, const char *json, size_t len,
                                  char *why, size_t why_cap);
void apple_packet_free(struct wallet_apple_packet *p);

/* apple_plain_parse reads the decrypted payment data into |out|: DPAN,
 * expiry (YYMMDD), currency (ISO 4217 numeric, given as alphabetic),
 * amount, optional cardholder name, 3DSecure cryptogram and ECI. EMV
 * payment data (with its PIN data) is WALLET_ERR_UNSUPPORTED: this vault
 * stores no PIN data and takes 3-D Secure packets only. Unknown members are
 * allowed (Apple adds them). */
WALLET_WUR int apple_plain_parse(struct wallet_card *out, const uint8_t *plain, size_t len,
                                 char *why, size_t why_cap);

/* One merchant key: the key in the HSM and what its Payment Processing
 * certificate says (the engine reads both from the token). */
struct wallet_apple_key {
    hsm_key *key;                              /* EC P-256 derive (EC_v1) or RSA (RSA_v1) */
    uint8_t pkh[WALLET_APPLE_HASH_LEN];        /* SHA-256 of the certificate's SPKI */
    uint8_t merchant_id[WALLET_APPLE_HASH_LEN];/* the 1.2.840.113635.100.6.32 value */
};


struct wallet_apple_ctx {
    const struct wallet_apple_key *keys;
    size_t num_keys;
    const uint8_t *const *roots;               /* pinned root certificates, DER */
    const size_t *root_lens;
    size_t num_roots;
    uint64_t now_ms;                           /* verification time (injectable) */
    uint64_t window_ms;                        /* signing-time window */
    struct wallet_vcache *cache;               /* verified chains (vcache.h); may be NULL */
};

/* wallet_apple_unseal runs steps 1-4 and writes the plaintext to |out| (the
 * caller wipes it); |cap| of the data's length is always enough. */
WALLET_WUR int wallet_apple_unseal(hsm_session *s, const struct wallet_apple_ctx *ctx,
                                   const char *packet, size_t len, uint8_t *out, size_t cap,
                                   size_t *out_len, char *why, size_t why_cap);

/* wallet_apple_open: all five steps, into |out| (wiped on failure). The
 * transaction id is the transactionId in hex; valid_until_ms bounds when the
 * same packet could still pass the signing-time check. */
WALLET_WUR int wallet_apple_open(hsm_session *s, const struct wallet_apple_ctx *ctx,
                                 const char *packet, size_t len, struct wallet_card *out,
                                 char *why, size_t why_cap);

#endif
