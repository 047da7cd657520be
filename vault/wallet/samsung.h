/*
 * samsung.h - Samsung Pay packets: a JWE compact serialization (RFC 7516),
 * bare or as 3DS.data of the paymentCredential JSON the Samsung Pay SDK
 * returns (WALLETS.md section 3; HSM-NOTES "Samsung Pay JWE" recipe).
 *
 * Two layers:
 *   - pure parsers (no I/O, no HSM, no global state; safe from any thread),
 *     exposed for the fuzz target and the tests: the packet, the JWE compact
 *     serialization, its protected header, and the decrypted plaintext into
 *     a struct wallet_card;
 *   - wallet_samsung_unseal / wallet_samsung_open: the content key (CEK) is
 *     unwrapped with the merchant's RSA key INTO the HSM (a sensitive,
 *     non-extractable, decrypt-only session object) and AES-GCM runs in the
 *     HSM; no key byte is in host memory on this path. One session, used by
 *     the calling thread only; every object they make is destroyed before
 *     they return.
 *
 * Samsung signs nothing: what authenticates a packet is that it decrypts
 * (the GCM tag) under the merchant key its kid names. The protected header
 * is the GCM AAD exactly as received (RFC 7516 section 5.2 step 14);
 * WALLETS.md section 3 keeps this open until a Samsung sandbox packet
 * confirms Samsung does the same.
 *
 * Errors: 0 or a negative WALLET_ERR_*; outputs are written only on success.
 * A failure writes a reason to |why| (|why_cap| bytes, may be 0): the check
 * that failed, never a key, PAN or cryptogram byte.
 */
#ifndef TOKENVAULT_VAULT_WALLET_SAMSUNG_H
#define TOKENVAULT_VAULT_WALLET_SAMSUNG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "hsm/hsm.h"
#include "vault/wallet/wallet.h"

/* Merchant keys tried on one packet: the kid picks one; more than one are
 * configured while Samsung rotates the short-lived encryption certificate
 * (old and new kid both in flight). */
#define WALLET_SAMSUNG_KEYS_MAX 8
/* Longest kid taken: Samsung's is base64 of a SHA-256 (44 characters). */
#define WALLET_SAMSUNG_KID_MAX 128
/* Largest decoded protected header: Samsung's is 133 bytes; the rest is
 * room for a longer kid, never for content. */
#define WALLET_SAMSUNG_HEADER_MAX 1024
/* The encrypted CEK is one RSA block: the merchant keys are RSA-2048 (the
 * ceremony makes no other size), so exactly the 256-byte modulus. */
#define WALLET_SAMSUNG_ENC_KEY_LEN 256
/* AES-GCM in JWE: a 96-bit IV and a full 128-bit tag (RFC 7518 5.3). */
#define WALLET_SAMSUNG_IV_LEN 12
#define WALLET_SAMSUNG_TAG_LEN 16
/* Largest ciphertext: what base64url of it can occupy in one packet. The
 * real plaintext is about 190 bytes. */
#define WALLET_SAMSUNG_CIPHERTEXT_MAX (WALLET_PACKET_MAX / 4 * 3)
/* The id a Samsung packet is recognised by (it carries none): this prefix,
 * then the first WALLET_SAMSUNG_ID_HASH_LEN bytes of SHA-256 of the JWE
 * compact string in lower-case hex. */
#define WALLET_SAMSUNG_ID_PREFIX "jwe-"
#define WALLET_SAMSUNG_ID_HASH_LEN 16
#define WALLET_SAMSUNG_ID_LEN (sizeof(WALLET_SAMSUNG_ID_PREFIX) - 1 + 2 * WALLET_SAMSUNG_ID_HASH_LEN)

/* Key management (RFC 7518 section 4): how the CEK is encrypted. */
enum wallet_samsung_alg {
    WALLET_SAMSUNG_RSA1_5 = 1,    /* RSAES-PKCS1-v1_5; what Samsung sends */
    WALLET_SAMSUNG_RSA_OAEP,      /* OAEP, SHA-1, MGF1-SHA1 */
    WALLET_SAMSUNG_RSA_OAEP_256,  /* OAEP, SHA-256, MGF1-SHA256 */
};

/* Content encryption (RFC 7518 section 5.3). */
enum wallet_samsung_enc {
    WALLET_SAMSUNG_A128GCM = 1,
    WALLET_SAMSUNG_A256GCM,
};

/* "RSA1_5", "RSA-OAEP", "RSA-OAEP-256" / "A128GCM", "A256GCM"; NULL for
 * anything else. */
const char *wallet_samsung_alg_name(int alg);
const char *wallet_samsung_enc_name(int enc);

/* A parsed packet: the JWE compact string, borrowed from |json| (the
 * paymentCredential, owned) or, for a bare JWE, from the caller's packet. */
struct wallet_samsung_packet {
    json_t *json;
    const char *jwe;
    size_t jwe_len;
};

/* wallet_samsung_packet_parse takes either
 *   - the paymentCredential JSON (first byte '{' or JSON whitespace):
 *     |len| <= WALLET_PACKET_MAX, nesting at most WALLET_JSON_DEPTH_MAX, no
 *     duplicate member, nothing after the object; "method" "3DS" and "3DS"
 *     exactly {"type":"S","version":"100","data"}, data a non-empty string.
 *     Other top-level members (card_brand, card_last4digits,
 *     billing_address, merchant_ref, recurring_payment, and what later SDKs
 *     add) are allowed and not read: nothing authenticates them, so
 *     refusing them would protect nothing and break on SDK updates;
 *   - or the bare JWE compact string (anything else), 1..WALLET_PACKET_MAX
 *     bytes; its syntax is wallet_samsung_jwe_parse's to check.
 * WALLET_ERR_UNSUPPORTED for another method, type or version;
 * WALLET_ERR_FORMAT otherwise. Release |out| with
 * wallet_samsung_packet_clear (also when |packet| was bare: a no-op). */
WALLET_WUR int wallet_samsung_packet_parse(struct wallet_samsung_packet *out, const char *packet,
                                           size_t len, char *why, size_t why_cap);

/* Releases and zeroes; accepts NULL and a zeroed struct. */
void wallet_samsung_packet_clear(struct wallet_samsung_packet *p);

/* A parsed JWE compact serialization. header_b64 is the first part exactly
 * as received (the GCM AAD), borrowed from the parsed string. */
struct wallet_samsung_jwe {
    const char *header_b64;
    size_t header_b64_len;
    uint8_t header[WALLET_SAMSUNG_HEADER_MAX]; /* decoded protected header (JSON text) */
    size_t header_len;
    uint8_t encrypted_key[WALLET_SAMSUNG_ENC_KEY_LEN];
    size_t encrypted_key_len;                  /* always WALLET_SAMSUNG_ENC_KEY_LEN */
    uint8_t iv[WALLET_SAMSUNG_IV_LEN];
    size_t iv_len;                             /* always WALLET_SAMSUNG_IV_LEN */
    /* Owned: the ciphertext (ciphertext_len bytes, 1..
     * WALLET_SAMSUNG_CIPHERTEXT_MAX) followed by the tag (tag_len bytes),
     * the layout PKCS#11 GCM decrypts. */
    uint8_t *sealed;
    size_t ciphertext_len;
    size_t tag_len;                            /* always WALLET_SAMSUNG_TAG_LEN */
};

/* wallet_samsung_jwe_parse splits |s| (|len| <= WALLET_PACKET_MAX) into
 * exactly five parts at '.', each strict base64url without padding
 * (codec.h): header of 1..WALLET_SAMSUNG_HEADER_MAX bytes, encrypted key of
 * exactly WALLET_SAMSUNG_ENC_KEY_LEN, IV of WALLET_SAMSUNG_IV_LEN,
 * ciphertext of 1..WALLET_SAMSUNG_CIPHERTEXT_MAX, tag of
 * WALLET_SAMSUNG_TAG_LEN. The header's content is not read here.
 * WALLET_ERR_FORMAT, WALLET_ERR_NO_MEMORY. On success release |out| with
 * wallet_samsung_jwe_clear; |s| must outlive it. */
WALLET_WUR int wallet_samsung_jwe_parse(struct wallet_samsung_jwe *out, const char *s, size_t len,
                                        char *why, size_t why_cap);

/* Frees and zeroes; accepts NULL and a zeroed struct. */
void wallet_samsung_jwe_clear(struct wallet_samsung_jwe *j);

/* The protected header. */
struct wallet_samsung_header {
    int alg;                                /* enum wallet_samsung_alg */
    int enc;                                /* enum wallet_samsung_enc */
    char kid[WALLET_SAMSUNG_KID_MAX + 1];   /* printable ASCII 0x21..0x7E */
};

/* wallet_samsung_header_parse reads a decoded protected header: a JSON
 * object (codec.h rules: no duplicates, bounded nesting, nothing after it)
 * of at most WALLET_SAMSUNG_HEADER_MAX bytes.
 *   - "crit" or "zip" present: WALLET_ERR_UNSUPPORTED (RFC 7516 4.1.3/4.1.13:
 *     we implement no extension and no compression, and must not ignore
 *     either);
 *   - "alg" not a string in {RSA1_5, RSA-OAEP, RSA-OAEP-256}, "enc" not a
 *     string in {A128GCM, A256GCM}: WALLET_ERR_UNSUPPORTED;
 *   - "kid" required, 1..WALLET_SAMSUNG_KID_MAX printable characters;
 *     "typ" and "channelSecurityContext" (Samsung sends "JOSE" and
 *     "RSA_PKI") allowed as strings of 1..WALLET_SAMSUNG_HEADER_WORD_MAX
 *     printable characters, not interpreted;
 *   - any other member: WALLET_ERR_FORMAT. RFC 7515 4 would let a reader
 *     ignore it, but the members that could matter (jku, jwk, x5u, x5c,
 *     epk, cty, p2s ...) each change how a packet must be processed, and
 *     Samsung sends none: an unexpected one means a packet of some other
 *     kind, or a new Samsung format that needs reviewing before it is
 *     taken (the header is the AAD, so nobody can add one to a real packet).
 * WALLET_ERR_FORMAT for anything else wrong. */
#define WALLET_SAMSUNG_HEADER_WORD_MAX 32
WALLET_WUR int wallet_samsung_header_parse(struct wallet_samsung_header *out, const uint8_t *json,
                                           size_t len, char *why, size_t why_cap);

/* wallet_samsung_version writes the card's version for |alg|/|enc|:
 * "<alg>/<enc>" ("RSA1_5/A128GCM", "RSA-OAEP/A256GCM"), except that
 * RSA-OAEP-256, whose "RSA-OAEP-256/A128GCM" is longer than
 * API_WALLET_VERSION_MAX, is written "OAEP-256/A128GCM" / "OAEP-256/A256GCM".
 * |cap| >= API_WALLET_VERSION_MAX + 1. WALLET_ERR_FORMAT for an unknown
 * alg or enc or a short buffer. */
WALLET_WUR int wallet_samsung_version(char *out, size_t cap, int alg, int enc);

/* wallet_samsung_transaction_id writes WALLET_SAMSUNG_ID_PREFIX and the hex
 * of the first WALLET_SAMSUNG_ID_HASH_LEN bytes of SHA-256(|jwe|) to |out|
 * (cap > WALLET_SAMSUNG_ID_LEN), NUL-terminated: the same packet always
 * gets the same id, so the vault's replay cache refuses it the second time.
 * WALLET_ERR_FORMAT for a short buffer, WALLET_ERR_NO_MEMORY if the hash
 * fails. */
WALLET_WUR int wallet_samsung_transaction_id(char *out, size_t cap, const char *jwe, size_t len);

/* wallet_samsung_payload_parse reads a decrypted plaintext (WALLETS.md
 * section 3; every value a JSON string) into |out|:
 *   tokenPAN            12..19 digits                 -> pan
 *   tokenPanExpiration  MMYY, month 01..12            -> exp_month, exp_year 20YY
 *   utc                 epoch ms, digits, no leading zero, at most
 *                       WALLET_EXPIRATION_MAX_MS; outside
 *                       [now - max_age, now + max_age]: WALLET_ERR_EXPIRED;
 *                       valid_until_ms = utc + max_age (saturating)
 *   amount (optional)   digits, no leading zero but "0", at most
 *                       API_AMOUNT_MAX                -> amount (minor units)
 *   currency_code (opt) three letters A-Z             -> currency
 *   cryptogram (opt)    1..API_CRYPTOGRAM_MAX printable -> cryptogram;
 *                       auth_method CRYPTOGRAM_3DS with it, PAN_ONLY without
 *   eci_indicator (opt) 1..API_ECI_MAX digits, only with a cryptogram
 * The three first are required. Other members are allowed (the plaintext is
 * authenticated by the tag, and wallets add members over time). wallet
 * API_WALLET_SAMSUNG_PAY; version from wallet_samsung_version(|alg|,
 * |enc|); transaction_id from wallet_samsung_transaction_id(|jwe|).
 * WALLET_ERR_FORMAT for anything else wrong. Wipe |out| with
 * wallet_card_wipe when done. */
WALLET_WUR int wallet_samsung_payload_parse(struct wallet_card *out, int alg, int enc,
                                            const char *jwe, size_t jwe_len, const uint8_t *pt,
                                            size_t len, uint64_t now_ms, uint64_t max_age_ms,
                                            char *why, size_t why_cap);

/* One merchant key: kid as in the JWE header (compared exactly), and the
 * RSA-2048 unwrap key the wallet-key ceremony made
 * (HSM_KIND_RSA_UNWRAP_SIGN, or HSM_KIND_RSA_UNWRAP). Borrowed. */
struct wallet_samsung_key {
    const char *kid;
    hsm_key *key;
};

/* What one merchant opens packets with. Everything borrowed. */
struct wallet_samsung_ctx {
    const struct wallet_samsung_key *keys;
    size_t num_keys;       /* 0..WALLET_SAMSUNG_KEYS_MAX */
    uint64_t now_ms;       /* injectable clock, epoch ms */
    uint64_t max_age_ms;   /* a packet whose "utc" is older than now - max_age, or newer than
                            * now + max_age, is WALLET_ERR_EXPIRED */
};

/* wallet_samsung_unseal: packet, JWE and header parsed (above); the key
 * whose kid equals the header's; the CEK unwrapped into the HSM
 * (hsm_rsa_unwrap_aes, 16 bytes for A128GCM, 32 for A256GCM, decrypt-only
 * GCM session object); AES-GCM in the HSM with AAD = the header's base64url
 * as received, the 12-byte IV and the 16-byte tag; the CEK object
 * destroyed. The plaintext goes to |out| (|cap| >= the ciphertext length;
 * |cap| >= |len| always suffices; the caller wipes it), its length to
 * |out_len|.
 * RSA1_5 (RFC 7516 section 11.5): a padding failure is not reported at the
 * unwrap: the HSM continues with a random CEK, so it fails at the tag like
 * any wrong key, with the same code and reason. A CEK of a length the
 * token cannot use as an AES key fails the same way.
 * RSA-OAEP-256: the token must do OAEP with SHA-256 itself (SoftHSM 2.6
 * cannot: WALLET_ERR_UNSUPPORTED naming the mechanism). The host OAEP
 * decoding hsm/ offers for HSM_KIND_RSA_DECRYPT keys is never used here (it
 * would put the CEK in host memory): such a key is refused.
 * Errors: WALLET_ERR_FORMAT (malformed packet, JWE or header, |cap| too
 * small), WALLET_ERR_UNSUPPORTED (method, type, version, alg, enc, crit,
 * zip; RSA-OAEP-256 without the mechanism), WALLET_ERR_UNKNOWN_KEY (no key
 * with this kid), WALLET_ERR_DECRYPT (tag: wrong key, altered header, key,
 * IV, ciphertext or tag), WALLET_ERR_HSM (the HSM failed, or the configured
 * key cannot unwrap), WALLET_ERR_NO_MEMORY. */
WALLET_WUR int wallet_samsung_unseal(hsm_session *s, const struct wallet_samsung_ctx *ctx,
                                     const char *packet, size_t len, uint8_t *out, size_t cap,
                                     size_t *out_len, char *why, size_t why_cap);

/* wallet_samsung_open: wallet_samsung_unseal, then
 * wallet_samsung_payload_parse of the plaintext into |out| with the
 * packet's alg/enc, its JWE compact string, ctx->now_ms and
 * ctx->max_age_ms. The plaintext is wiped before return; the caller wipes
 * |out| with wallet_card_wipe. Errors: those of both
 * (WALLET_ERR_EXPIRED for utc out of the window). */
WALLET_WUR int wallet_samsung_open(hsm_session *s, const struct wallet_samsung_ctx *ctx,
                                   const char *packet, size_t len, struct wallet_card *out,
                                   char *why, size_t why_cap);

#endif
