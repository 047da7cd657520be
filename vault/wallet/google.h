/*
 * google.h - Google Pay payment method tokens: ECv1, ECv2 and ECv2SigningOnly
 * (WALLETS.md section 2; Google's "Payment data cryptography").
 *
 * Two layers:
 *   - pure parsers (no I/O, no HSM, no global state; safe from any thread),
 *     exposed for the fuzz target and the tests: the token, its signedKey and
 *     signedMessage, the length-prefixed signed bytes, and the decrypted
 *     payment message into a struct wallet_card;
 *   - wallet_google_unseal / wallet_google_open, which run every signature
 *     check and every key operation in the HSM through hsm/ (one session,
 *     used by the calling thread only; every object they make is destroyed
 *     before they return).
 *
 * Errors: 0 or a negative WALLET_ERR_*; outputs are written only on success.
 * A failure writes a reason to |why| (|why_cap| bytes, may be 0): the check
 * that failed, never a key, PAN or cryptogram byte.
 */
#ifndef TOKENVAULT_VAULT_WALLET_GOOGLE_H
#define TOKENVAULT_VAULT_WALLET_GOOGLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "hsm/hsm.h"
#include "vault/wallet/anchors.h"
#include "vault/wallet/vcache.h"
#include "vault/wallet/wallet.h"

/* Recipient keys of one merchant tried on one packet (rotation: the new key
 * is published while packets for the old one are still in flight). */
#define WALLET_GOOGLE_KEYS_MAX 8
/* Entries of intermediateSigningKey.signatures taken: Google sends one per
 * root it signed with (one or two during a root rotation). */
#define WALLET_GOOGLE_SIGNATURES_MAX 8
/* Largest DER ECDSA P-256 signature: SEQUENCE of two INTEGERs of up to 33
 * bytes each, 2 + 2 * (2 + 33) = 72. */
#define WALLET_GOOGLE_SIG_MAX 72
/* Longest signedKey string: the real one is about 180 characters (a 124-char
 * keyValue, a 13-digit keyExpiration). */
#define WALLET_GOOGLE_SIGNED_KEY_MAX 2048
/* The ephemeral public key: an uncompressed P-256 point, 04 || X || Y. */
#define WALLET_GOOGLE_POINT_LEN 65
/* The tag: a full HMAC-SHA256 (never truncated). */
#define WALLET_GOOGLE_TAG_LEN 32
/* Largest decoded encryptedMessage: base64 of it fits in one packet. */
#define WALLET_GOOGLE_CIPHERTEXT_MAX (WALLET_PACKET_MAX / 4 * 3)
/* Longest recipient id taken from the configuration: "merchant:" or
 * "gateway:" and an id (Google's TEST merchant id has 20 digits). */
#define WALLET_GOOGLE_RECIPIENT_MAX 256
/* Largest signed-bytes buffer: the longest signed string (a whole packet at
 * most) plus "Google", the recipient id, the protocol and four LE32 lengths. */
#define WALLET_GOOGLE_SIGNED_BYTES_MAX \
    (WALLET_PACKET_MAX + WALLET_GOOGLE_RECIPIENT_MAX + WALLET_PROTOCOL_MAX + 6 + 4 * 4)

enum wallet_google_protocol {
    WALLET_GOOGLE_ECV1 = 1,
    WALLET_GOOGLE_ECV2,
    WALLET_GOOGLE_ECV2_SIGNING_ONLY,
};

/* wallet_google_protocol_name: "ECv1", "ECv2", "ECv2SigningOnly" (NULL for
 * anything else). */
const char *wallet_google_protocol_name(int protocol);

struct wallet_google_sig {
    uint8_t der[WALLET_GOOGLE_SIG_MAX]; /* DER ECDSA-Sig-Value, as sent */
    size_t len;
};

/* A parsed token. signed_key and signed_message are the exact string values
 * as received (one level of JSON unescaping, never re-serialized: they are
 * what Google signed), borrowed from |json|, which the token owns. */
struct wallet_google_token {
    json_t *json;
    int protocol;                                /* enum wallet_google_protocol */
    struct wallet_google_sig signature;          /* over the message */
    const char *signed_message;
    size_t signed_message_len;
    /* ECv2 and ECv2SigningOnly only (ECv1 has no intermediate key). */
    const char *signed_key;
    size_t signed_key_len;
    size_t num_key_sigs;
    struct wallet_google_sig key_sigs[WALLET_GOOGLE_SIGNATURES_MAX];
};

/* wallet_google_token_parse parses a token strictly (WALLETS.md 2.1, as Tink
 * does): |len| <= WALLET_PACKET_MAX, JSON nested at most
 * WALLET_JSON_DEPTH_MAX, no duplicate member, nothing after the object;
 * exactly {protocolVersion, signature, signedMessage} for ECv1 and exactly
 * those plus intermediateSigningKey {signedKey, signatures} for ECv2 and
 * ECv2SigningOnly; 1..WALLET_GOOGLE_SIGNATURES_MAX signatures; every
 * signature strict base64 of at most WALLET_GOOGLE_SIG_MAX bytes.
 * WALLET_ERR_UNSUPPORTED for another protocolVersion, WALLET_ERR_FORMAT for
 * anything else wrong. On success release |out| with
 * wallet_google_token_clear. */
WALLET_WUR int wallet_google_token_parse(struct wallet_google_token *out, const char *packet,
                                         size_t len, char *why, size_t why_cap);

/* wallet_google_token_clear releases what a parsed token holds and zeroes
 * it. Accepts NULL and a zeroed token. */
void wallet_google_token_clear(struct wallet_google_token *t);

/* The intermediate signing key (signedKey). */
struct wallet_google_signed_key {
    uint8_t spki[WALLET_SPKI_MAX]; /* keyValue decoded: DER SubjectPublicKeyInfo */
    size_t spki_len;
    uint64_t expiration_ms;        /* keyExpiration */
};

/* wallet_google_signed_key_parse parses a signedKey string: exactly
 * {keyValue, keyExpiration}; keyValue strict base64 of 1..WALLET_SPKI_MAX
 * bytes (whether it is a P-256 key is the HSM import's to say);
 * keyExpiration a string of decimal epoch milliseconds, no sign, no leading
 * zero, 1..WALLET_EXPIRATION_MAX_MS. WALLET_ERR_FORMAT otherwise. */
WALLET_WUR int wallet_google_signed_key_parse(struct wallet_google_signed_key *out, const char *s,
                                              size_t len, char *why, size_t why_cap);

/* The encrypted message (signedMessage of ECv1 and ECv2). */
struct wallet_google_sealed {
    uint8_t ephemeral[WALLET_GOOGLE_POINT_LEN]; /* 04 || X || Y, not yet checked on the curve */
    uint8_t tag[WALLET_GOOGLE_TAG_LEN];
    uint8_t *ciphertext;                        /* owned; 1..WALLET_GOOGLE_CIPHERTEXT_MAX bytes */
    size_t ciphertext_len;
};

/* wallet_google_sealed_parse parses a signedMessage string of ECv1 or ECv2:
 * exactly {encryptedMessage, ephemeralPublicKey, tag}, each strict base64;
 * the point 65 bytes starting 04, the tag 32 bytes. WALLET_ERR_FORMAT
 * otherwise, WALLET_ERR_NO_MEMORY. On success release |out| with
 * wallet_google_sealed_clear. */
WALLET_WUR int wallet_google_sealed_parse(struct wallet_google_sealed *out, const char *s,
                                          size_t len, char *why, size_t why_cap);

/* Frees and zeroes; accepts NULL and a zeroed struct. */
void wallet_google_sealed_clear(struct wallet_google_sealed *m);

/* wallet_google_signed_bytes writes the bytes Google signs: for each of the
 * |num| parts, its length as 4 bytes little-endian (Tink's
 * Bytes.intToByteArray writes the low byte first), then its bytes.
 *   intermediate key: "Google", protocolVersion, signedKey
 *   message:          "Google", recipientId, protocolVersion, signedMessage
 * WALLET_ERR_FORMAT if a part is longer than UINT32_MAX or the result does
 * not fit in |cap|. */
WALLET_WUR int wallet_google_signed_bytes(uint8_t *out, size_t cap, size_t *out_len,
                                          const char *const *parts, const size_t *lens,
                                          size_t num);

/* wallet_google_message_parse reads a decrypted payment message (WALLETS.md
 * 2.4) into |out|: members outside those read are allowed (Google adds some
 * over time); paymentMethod "CARD" (WALLET_ERR_UNSUPPORTED otherwise);
 * paymentMethodDetails.pan 12..19 digits, expirationMonth an integer 1..12,
 * expirationYear an integer of four digits; authMethod PAN_ONLY or
 * CRYPTOGRAM_3DS (WALLET_ERR_UNSUPPORTED otherwise); cryptogram (printable,
 * at most API_CRYPTOGRAM_MAX) and eciIndicator (1..API_ECI_MAX digits)
 * optional and only with CRYPTOGRAM_3DS; messageId printable ASCII
 * 0x21..0x7E, at most API_TRANSACTION_ID_MAX, becomes transaction_id;
 * messageExpiration epoch milliseconds as a string becomes valid_until_ms
 * and must be later than |now_ms| (WALLET_ERR_EXPIRED). |protocol| becomes
 * the version. Anything else wrong: WALLET_ERR_FORMAT. Wipe |out| with
 * wallet_card_wipe when done. */
WALLET_WUR int wallet_google_message_parse(struct wallet_card *out, int protocol,
                                           const uint8_t *pt, size_t len, uint64_t now_ms,
                                           char *why, size_t why_cap);

/* What one merchant (or gateway) opens packets with. Everything borrowed. */
struct wallet_google_ctx {
    const char *recipient_id;             /* "merchant:<id>" or "gateway:<id>" (from config) */
    const struct wallet_root_keys *roots; /* Google's root signing keys, all protocols, from the HSM's anchors */
    hsm_key *const *keys;                 /* the merchant's recipient keys (EC P-256 derive), newest first */
    size_t num_keys;                      /* 1..WALLET_GOOGLE_KEYS_MAX */
    uint64_t now_ms;                      /* verification time, epoch ms (injectable clock) */
    struct wallet_vcache *cache;          /* verified intermediate keys (vcache.h); may be NULL */
};

/* wallet_google_unseal checks a token the way Google's recipe says, in its
 * order: the intermediate key signed by any unexpired root of the token's
 * protocol (ECv1: no intermediate), the intermediate key's keyExpiration
 * later than now, the message signature over the recipient id, then
 * (ECv1, ECv2) ECDH with each recipient key in turn, HKDF, the tag checked
 * in the HSM and AES-CTR in the HSM with the key whose tag verifies;
 * ECv2SigningOnly: the plaintext is signedMessage itself. A plaintext that
 * is a JSON object with messageExpiration must not have expired (as Tink).
 * The plaintext goes to |out| (|cap| >= |len| always suffices; the caller
 * wipes it), its length to |out_len|.
 * Errors: WALLET_ERR_FORMAT (malformed packet, an invalid ephemeral or
 * intermediate key, |cap| too small), WALLET_ERR_UNSUPPORTED (protocol),
 * WALLET_ERR_NO_ANCHOR (|ctx->roots| has no key of the protocol),
 * WALLET_ERR_SIGNATURE (no root verifies the intermediate key, every root
 * expired, the message signature fails: a wrong recipient id, an altered
 * signedMessage), WALLET_ERR_EXPIRED (intermediate key or message),
 * WALLET_ERR_DECRYPT (no recipient key's tag verifies), WALLET_ERR_HSM,
 * WALLET_ERR_NO_MEMORY. */
WALLET_WUR int wallet_google_unseal(hsm_session *s, const struct wallet_google_ctx *ctx,
                                    const char *packet, size_t len, uint8_t *out, size_t cap,
                                    size_t *out_len, char *why, size_t why_cap);

/* wallet_google_open: wallet_google_unseal, then wallet_google_message_parse
 * of the plaintext into |out| (wallet API_WALLET_GOOGLE_PAY, version the
 * protocolVersion). The plaintext is wiped before return; the caller wipes
 * |out| with wallet_card_wipe. Errors: those of both. */
WALLET_WUR int wallet_google_open(hsm_session *s, const struct wallet_google_ctx *ctx,
                                  const char *packet, size_t len, struct wallet_card *out,
                                  char *why, size_t why_cap);

#endif
