/*
 * google.c - Google Pay ECv1 / ECv2 / ECv2SigningOnly: strict parsers (jansson
 * through codec.h) and the recipient's checks, every signature and key
 * operation in the HSM (HSM-NOTES "Google Pay ECv2" recipe).
 */
#include "vault/wallet/google.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "vault/wallet/codec.h"

/* The sender id Google puts first in every signed-bytes string, and the HKDF
 * info of ECv1/ECv2 ("Android" was legacy Android Pay, never taken here). */
#define GOOGLE_SENDER_ID "Google"
#define GOOGLE_SENDER_ID_LEN 6
/* Base64 characters of the largest signature (4 per 3 bytes, padded). */
#define SIG_B64_MAX ((WALLET_GOOGLE_SIG_MAX + 2) / 3 * 4)
/* Base64 characters of the point and of the tag (padded). */
#define POINT_B64_LEN ((WALLET_GOOGLE_POINT_LEN + 2) / 3 * 4)
#define TAG_B64_LEN ((WALLET_GOOGLE_TAG_LEN + 2) / 3 * 4)
/* Base64 characters of the largest keyValue. */
#define KEY_VALUE_B64_MAX ((WALLET_SPKI_MAX + 2) / 3 * 4)
/* Decimal digits of WALLET_EXPIRATION_MAX_MS, the largest epoch-ms value. */
#define MS_DIGITS_MAX 15
/* The uncompressed-point prefix (SEC 1 section 2.3.3). */
#define POINT_UNCOMPRESSED 0x04
/* ECv1 derives AES-128 + a 16-byte HMAC key (L = 32); ECv2 AES-256 + a
 * 32-byte HMAC key (L = 64). WALLETS.md 2.3. */
#define ECV1_KEY_LEN 16
#define ECV2_KEY_LEN 32
/* AES-CTR counter block: Google uses an all-zero IV (each key encrypts one
 * message only, so the counter never repeats under one key). */
#define CTR_IV_LEN 16
#define SHA256_LEN 32

static const char *const PROTOCOL_NAMES[] = {
    [WALLET_GOOGLE_ECV1] = "ECv1",
    [WALLET_GOOGLE_ECV2] = "ECv2",
    [WALLET_GOOGLE_ECV2_SIGNING_ONLY] = "ECv2SigningOnly",
};

/* Exact member sets (Tink: ECv1 has 3 top-level members, ECv2 4). Each list
 * is given as both "known" and "required" to wallet_json_fields. */
static const char *const TOKEN_V1_MEMBERS[] = { "protocolVersion", "signature", "signedMessage",
                                                NULL };
static const char *const TOKEN_V2_MEMBERS[] = { "protocolVersion", "signature",
                                                "intermediateSigningKey", "signedMessage", NULL };
static const char *const INTERMEDIATE_MEMBERS[] = { "signedKey", "signatures", NULL };
static const char *const SIGNED_KEY_MEMBERS[] = { "keyValue", "keyExpiration", NULL };
static const char *const SEALED_MEMBERS[] = { "encryptedMessage", "ephemeralPublicKey", "tag",
                                              NULL };
/* The plaintext: wallets add members over time, so only these are required. */
static const char *const MESSAGE_REQUIRED[] = { "messageExpiration", "messageId", "paymentMethod",
                                                "paymentMethodDetails", NULL };
static const char *const DETAILS_REQUIRED[] = { "pan", "expirationMonth", "expirationYear",
                                                "authMethod", NULL };

const char *
wallet_google_protocol_name(int protocol)
{
    if (protocol < WALLET_GOOGLE_ECV1 || protocol > WALLET_GOOGLE_ECV2_SIGNING_ONLY)
        return NULL;
    return PROTOCOL_NAMES[protocol];
}

static int
protocol_from_name(const char *s)
{
    for (int p = WALLET_GOOGLE_ECV1; p <= WALLET_GOOGLE_ECV2_SIGNING_ONLY; p++) {
        if (strcmp(s, PROTOCOL_NAMES[p]) == 0)
            return p;
    }
    return 0;
}

/* Epoch milliseconds as a decimal string (keyExpiration, messageExpiration):
 * digits only, no sign, no leading zero, 1..WALLET_EXPIRATION_MAX_MS. */
static int
ms_parse(const char *s, size_t len, uint64_t *out)
{
    uint64_t v = 0;

    if (s == NULL || len == 0 || len > MS_DIGITS_MAX || s[0] == '0')
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

/* A member that must be a non-empty string of at most |max| characters. */
static const char *
member_str(const json_t *obj, const char *name, size_t max, size_t *out_len)
{
    return wallet_json_str(json_object_get(obj, name), max, out_len);
}

/* A member that is strict base64 of exactly |want| bytes (0: 1..cap). */
static int
member_b64(const json_t *obj, const char *name, size_t b64_max, uint8_t *out, size_t cap,
           size_t want, size_t *out_len)
{
    const char *s;
    size_t len = 0, n = 0;

    if ((s = member_str(obj, name, b64_max, &len)) == NULL ||
        wallet_b64_decode(out, cap, &n, s, len) != WALLET_OK || (want != 0 && n != want))
        return WALLET_ERR_FORMAT;
    *out_len = n;
    return WALLET_OK;
}

static int
sig_decode(struct wallet_google_sig *out, const json_t *v)
{
    const char *s;
    size_t len = 0;

    if ((s = wallet_json_str(v, SIG_B64_MAX, &len)) == NULL ||
        wallet_b64_decode(out->der, sizeof(out->der), &out->len, s, len) != WALLET_OK)
        return WALLET_ERR_FORMAT;
    return WALLET_OK;
}

/* ---- the token ---------------------------------------------------------------- */

static int
parse_intermediate(struct wallet_google_token *t, const json_t *isk, char *why, size_t why_cap)
{
    const json_t *sigs;
    int r;

    if ((r = wallet_json_fields(isk, "intermediateSigningKey", INTERMEDIATE_MEMBERS,
                                INTERMEDIATE_MEMBERS, why, why_cap)) != WALLET_OK)
        return r;
    t->signed_key = member_str(isk, "signedKey", WALLET_GOOGLE_SIGNED_KEY_MAX, &t->signed_key_len);
    if (t->signed_key == NULL) {
        wallet_why(why, why_cap, "signedKey is not a string of 1..%d characters",
                   WALLET_GOOGLE_SIGNED_KEY_MAX);
        return WALLET_ERR_FORMAT;
    }
    sigs = json_object_get(isk, "signatures");
    if (!json_is_array(sigs) || json_array_size(sigs) == 0 ||
        json_array_size(sigs) > WALLET_GOOGLE_SIGNATURES_MAX) {
        wallet_why(why, why_cap, "signatures is not an array of 1..%d entries",
                   WALLET_GOOGLE_SIGNATURES_MAX);
        return WALLET_ERR_FORMAT;
    }
    for (size_t i = 0; i < json_array_size(sigs); i++) {
        if (sig_decode(&t->key_sigs[i], json_array_get(sigs, i)) != WALLET_OK) {
            wallet_why(why, why_cap, "signatures[%zu] is not base64 of at most %d bytes", i,
                       WALLET_GOOGLE_SIG_MAX);
            return WALLET_ERR_FORMAT;
        }
        t->num_key_sigs = i + 1;
    }
    return WALLET_OK;
}

int
wallet_google_token_parse(struct wallet_google_token *out, const char *packet, size_t len,
                          char *why, size_t why_cap)
{
    struct wallet_google_token t = { 0 };
    const char *proto;
    size_t proto_len = 0;
    int r;

    if (out == NULL || packet == NULL) {
        wallet_why(why, why_cap, "no packet");
        return WALLET_ERR_FORMAT;
    }
    if ((r = wallet_json_load(&t.json, packet, len, WALLET_PACKET_MAX, why, why_cap)) != WALLET_OK)
        return r;
    r = WALLET_ERR_FORMAT;
    if ((proto = member_str(t.json, "protocolVersion", WALLET_PROTOCOL_MAX, &proto_len)) == NULL) {
        wallet_why(why, why_cap, "protocolVersion missing or not a short string");
        /* A long or non-string version is no version we take either. */
        if (json_object_get(t.json, "protocolVersion") != NULL)
            r = WALLET_ERR_UNSUPPORTED;
        goto out;
    }
    if ((t.protocol = protocol_from_name(proto)) == 0) {
        wallet_why(why, why_cap, "protocolVersion is not ECv1, ECv2 or ECv2SigningOnly");
        r = WALLET_ERR_UNSUPPORTED;
        goto out;
    }
    if ((r = wallet_json_fields(t.json, "token",
                                t.protocol == WALLET_GOOGLE_ECV1 ? TOKEN_V1_MEMBERS : TOKEN_V2_MEMBERS,
                                t.protocol == WALLET_GOOGLE_ECV1 ? TOKEN_V1_MEMBERS : TOKEN_V2_MEMBERS,
                                why, why_cap)) != WALLET_OK)
        goto out;
    r = WALLET_ERR_FORMAT;
    if (sig_decode(&t.signature, json_object_get(t.json, "signature")) != WALLET_OK) {
        wallet_why(why, why_cap, "signature is not base64 of at most %d bytes",
                   WALLET_GOOGLE_SIG_MAX);
        goto out;
    }
    /* Kept exactly as received: these bytes are what Google signed. */
    t.signed_message = member_str(t.json, "signedMessage", WALLET_PACKET_MAX, &t.signed_message_len);
    if (t.signed_message == NULL) {
        wallet_why(why, why_cap, "signedMessage is not a non-empty string");
        goto out;
    }
    if (t.protocol != WALLET_GOOGLE_ECV1 &&
        (r = parse_intermediate(&t, json_object_get(t.json, "intermediateSigningKey"), why,
                                why_cap)) != WALLET_OK)
        goto out;
    *out = t;
    t.json = NULL;
    r = WALLET_OK;
out:
    json_decref(t.json);
    return r;
}

void
wallet_google_token_clear(struct wallet_google_token *t)
{
    if (t == NULL)
        return;
    json_decref(t->json);
    memset(t, 0, sizeof(*t));
}

/* ---- signedKey and signedMessage ------------------------------------------------ */

int
wallet_google_signed_key_parse(struct wallet_google_signed_key *out, const char *s, size_t len,
                               char *why, size_t why_cap)
{
    struct wallet_google_signed_key k = { 0 };
    json_t *j = NULL;
    const char *exp;
    size_t exp_len = 0;
    int r;

    if (out == NULL || s == NULL) {
        wallet_why(why, why_cap, "no signedKey");
        return WALLET_ERR_FORMAT;
    }
    if ((r = wallet_json_load(&j, s, len, WALLET_GOOGLE_SIGNED_KEY_MAX, why, why_cap)) != WALLET_OK)
        return r;
    if ((r = wallet_json_fields(j, "signedKey", SIGNED_KEY_MEMBERS, SIGNED_KEY_MEMBERS, why,
                                why_cap)) != WALLET_OK)
        goto out;
    r = WALLET_ERR_FORMAT;
    if (member_b64(j, "keyValue", KEY_VALUE_B64_MAX, k.spki, sizeof(k.spki), 0, &k.spki_len) !=
        WALLET_OK) {
        wallet_why(why, why_cap, "signedKey.keyValue is not base64 of 1..%d bytes", WALLET_SPKI_MAX);
        goto out;
    }
    exp = member_str(j, "keyExpiration", MS_DIGITS_MAX, &exp_len);
    if (ms_parse(exp, exp_len, &k.expiration_ms) != WALLET_OK) {
        wallet_why(why, why_cap, "signedKey.keyExpiration is not epoch milliseconds as a string");
        goto out;
    }
    *out = k;
    r = WALLET_OK;
out:
    json_decref(j);
    return r;
}

int
wallet_google_sealed_parse(struct wallet_google_sealed *out, const char *s, size_t len, char *why,
                           size_t why_cap)
{
    struct wallet_google_sealed m = { 0 };
    json_t *j = NULL;
    size_t n = 0, b64_len = 0;
    const char *b64;
    int r;

    if (out == NULL || s == NULL) {
        wallet_why(why, why_cap, "no signedMessage");
        return WALLET_ERR_FORMAT;
    }
    if ((r = wallet_json_load(&j, s, len, WALLET_PACKET_MAX, why, why_cap)) != WALLET_OK)
        return r;
    if ((r = wallet_json_fields(j, "signedMessage", SEALED_MEMBERS, SEALED_MEMBERS, why,
                                why_cap)) != WALLET_OK)
        goto out;
    r = WALLET_ERR_FORMAT;
    if (member_b64(j, "ephemeralPublicKey", POINT_B64_LEN, m.ephemeral, sizeof(m.ephemeral),
                   WALLET_GOOGLE_POINT_LEN, &n) != WALLET_OK ||
        m.ephemeral[0] != POINT_UNCOMPRESSED) {
        wallet_why(why, why_cap, "ephemeralPublicKey is not base64 of an uncompressed P-256 point");
        goto out;
    }
    if (member_b64(j, "tag", TAG_B64_LEN, m.tag, sizeof(m.tag), WALLET_GOOGLE_TAG_LEN, &n) !=
        WALLET_OK) {
        wallet_why(why, why_cap, "tag is not base64 of %d bytes", WALLET_GOOGLE_TAG_LEN);
        goto out;
    }
    /* Sized from the text we hold (bounded by the packet), not from a count
     * the sender declares. */
    if ((b64 = member_str(j, "encryptedMessage", WALLET_PACKET_MAX, &b64_len)) == NULL) {
        wallet_why(why, why_cap, "encryptedMessage is not a non-empty string");
        goto out;
    }
    if ((m.ciphertext = malloc(b64_len / 4 * 3 + 3)) == NULL) {
        r = WALLET_ERR_NO_MEMORY;
        goto out;
    }
    if (wallet_b64_decode(m.ciphertext, b64_len / 4 * 3 + 3, &m.ciphertext_len, b64, b64_len) !=
            WALLET_OK ||
        m.ciphertext_len > WALLET_GOOGLE_CIPHERTEXT_MAX) {
        wallet_why(why, why_cap, "encryptedMessage is not base64");
        goto out;
    }
    *out = m;
    m.ciphertext = NULL;
    r = WALLET_OK;
out:
    free(m.ciphertext);
    json_decref(j);
    return r;
}

void
wallet_google_sealed_clear(struct wallet_google_sealed *m)
{
    if (m == NULL)
        return;
    free(m->ciphertext);
    memset(m, 0, sizeof(*m));
}

/* ---- signed bytes ---------------------------------------------------------------- */

int
wallet_google_signed_bytes(uint8_t *out, size_t cap, size_t *out_len, const char *const *parts,
                           const size_t *lens, size_t num)
{
    /* The length prefix: 4 bytes, low byte first. */
    enum { LEN_PREFIX = 4 };
    size_t off = 0;

    if (out == NULL || out_len == NULL || (num > 0 && (parts == NULL || lens == NULL)))
        return WALLET_ERR_FORMAT;
    for (size_t i = 0; i < num; i++) {
        uint32_t n;

        if (lens[i] > UINT32_MAX || (lens[i] > 0 && parts[i] == NULL) || cap - off < LEN_PREFIX ||
            lens[i] > cap - off - LEN_PREFIX)
            return WALLET_ERR_FORMAT;
        n = (uint32_t)lens[i];
        out[off++] = (uint8_t)n;
        out[off++] = (uint8_t)(n >> 8);
        out[off++] = (uint8_t)(n >> 16);
        out[off++] = (uint8_t)(n >> 24);
        if (n > 0)
            memcpy(out + off, parts[i], n);
        off += n;
    }
    *out_len = off;
    return WALLET_OK;
}

/* SHA-256 of the signed bytes of |num| parts, built in |buf|
 * (WALLET_GOOGLE_SIGNED_BYTES_MAX bytes). */
static int
signed_digest(uint8_t *buf, const char *const *parts, const size_t *lens, size_t num,
              uint8_t digest[SHA256_LEN], char *why, size_t why_cap)
{
    size_t n = 0;
    unsigned int dlen = 0;

    if (wallet_google_signed_bytes(buf, WALLET_GOOGLE_SIGNED_BYTES_MAX, &n, parts, lens, num) !=
        WALLET_OK) {
        wallet_why(why, why_cap, "signed bytes longer than %d", WALLET_GOOGLE_SIGNED_BYTES_MAX);
        return WALLET_ERR_FORMAT;
    }
    if (EVP_Digest(buf, n, digest, &dlen, EVP_sha256(), NULL) != 1 || dlen != SHA256_LEN) {
        wallet_why(why, why_cap, "SHA-256 failed");
        return WALLET_ERR_NO_MEMORY;
    }
    return WALLET_OK;
}

/* ---- the payment message ----------------------------------------------------------- */

/* Printable ASCII without space: ids reach logs and replay keys. */
static bool
all_printable(const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        if (s[i] < 0x21 || s[i] > 0x7e)
            return false;
    }
    return true;
}

/* An integer member in [lo, hi]. */
static bool
member_int(const json_t *obj, const char *name, json_int_t lo, json_int_t hi, json_int_t *out)
{
    const json_t *v = json_object_get(obj, name);

    if (!json_is_integer(v) || json_integer_value(v) < lo || json_integer_value(v) > hi)
        return false;
    *out = json_integer_value(v);
    return true;
}

/* Four-digit years (wallet_card.exp_year). */
#define EXP_YEAR_MIN 1000
#define EXP_YEAR_MAX 9999

static int
parse_details(struct wallet_card *c, const json_t *d, char *why, size_t why_cap)
{
    const char *s;
    size_t len = 0;
    json_int_t month = 0, year = 0;
    const json_t *crypto, *eci;
    int r;

    if ((r = wallet_json_fields(d, "paymentMethodDetails", NULL, DETAILS_REQUIRED, why,
                                why_cap)) != WALLET_OK)
        return r;
    if ((s = member_str(d, "pan", API_PAN_MAX, &len)) == NULL || len < API_PAN_MIN ||
        !wallet_all_digits(s, len)) {
        wallet_why(why, why_cap, "paymentMethodDetails.pan is not %u..%u digits", API_PAN_MIN,
                   API_PAN_MAX);
        return WALLET_ERR_FORMAT;
    }
    memcpy(c->pan, s, len);
    c->pan[len] = '\0';
    if (!member_int(d, "expirationMonth", 1, 12, &month)) {
        wallet_why(why, why_cap, "paymentMethodDetails.expirationMonth is not an integer 1..12");
        return WALLET_ERR_FORMAT;
    }
    if (!member_int(d, "expirationYear", EXP_YEAR_MIN, EXP_YEAR_MAX, &year)) {
        wallet_why(why, why_cap, "paymentMethodDetails.expirationYear is not a four-digit integer");
        return WALLET_ERR_FORMAT;
    }
    c->exp_month = (uint8_t)month;
    c->exp_year = (uint16_t)year;
    if ((s = member_str(d, "authMethod", WALLET_PROTOCOL_MAX, &len)) == NULL) {
        wallet_why(why, why_cap, "paymentMethodDetails.authMethod is not a string");
        return WALLET_ERR_FORMAT;
    }
    if (strcmp(s, "PAN_ONLY") == 0) {
        c->auth_method = API_AUTH_PAN_ONLY;
    } else if (strcmp(s, "CRYPTOGRAM_3DS") == 0) {
        c->auth_method = API_AUTH_CRYPTOGRAM_3DS;
    } else {
        wallet_why(why, why_cap, "paymentMethodDetails.authMethod is not PAN_ONLY or CRYPTOGRAM_3DS");
        return WALLET_ERR_UNSUPPORTED;
    }
    crypto = json_object_get(d, "cryptogram");
    eci = json_object_get(d, "eciIndicator");
    /* A cryptogram on a PAN_ONLY card would be passed on as if the device
     * had authenticated the payment. */
    if ((crypto != NULL || eci != NULL) && c->auth_method != API_AUTH_CRYPTOGRAM_3DS) {
        wallet_why(why, why_cap, "cryptogram or eciIndicator with authMethod PAN_ONLY");
        return WALLET_ERR_FORMAT;
    }
    if (crypto != NULL) {
        if ((s = wallet_json_str(crypto, API_CRYPTOGRAM_MAX, &len)) == NULL ||
            !all_printable(s, len)) {
            wallet_why(why, why_cap, "paymentMethodDetails.cryptogram is not 1..%u printable characters",
                       API_CRYPTOGRAM_MAX);
            return WALLET_ERR_FORMAT;
        }
        memcpy(c->cryptogram, s, len);
        c->cryptogram[len] = '\0';
        c->has_cryptogram = true;
    }
    if (eci != NULL) {
        if ((s = wallet_json_str(eci, API_ECI_MAX, &len)) == NULL || !wallet_all_digits(s, len)) {
            wallet_why(why, why_cap, "paymentMethodDetails.eciIndicator is not 1..%u digits",
                       API_ECI_MAX);
            return WALLET_ERR_FORMAT;
        }
        memcpy(c->eci, s, len);
        c->eci[len] = '\0';
        c->has_eci = true;
    }
    return WALLET_OK;
}

int
wallet_google_message_parse(struct wallet_card *out, int protocol, const uint8_t *pt, size_t len,
                            uint64_t now_ms, char *why, size_t why_cap)
{
    struct wallet_card c = { 0 };
    json_t *j = NULL;
    const char *s, *name = wallet_google_protocol_name(protocol);
    size_t slen = 0;
    int r;

    if (out == NULL || pt == NULL || name == NULL) {
        wallet_why(why, why_cap, "no message or no protocol");
        return WALLET_ERR_FORMAT;
    }
    if ((r = wallet_json_load(&j, (const char *)pt, len, WALLET_PACKET_MAX, why, why_cap)) !=
        WALLET_OK)
        goto out;
    if ((r = wallet_json_fields(j, "message", NULL, MESSAGE_REQUIRED, why, why_cap)) != WALLET_OK)
        goto out;
    r = WALLET_ERR_FORMAT;
    c.wallet = API_WALLET_GOOGLE_PAY;
    /* The longest name, "ECv2SigningOnly", fits API_WALLET_VERSION_MAX. */
    snprintf(c.version, sizeof(c.version), "%s", name);
    if ((s = member_str(j, "messageId", API_TRANSACTION_ID_MAX, &slen)) == NULL ||
        !all_printable(s, slen)) {
        wallet_why(why, why_cap, "messageId is not 1..%u printable characters",
                   API_TRANSACTION_ID_MAX);
        goto out;
    }
    memcpy(c.transaction_id, s, slen);
    c.transaction_id[slen] = '\0';
    s = member_str(j, "messageExpiration", MS_DIGITS_MAX, &slen);
    if (ms_parse(s, slen, &c.valid_until_ms) != WALLET_OK) {
        wallet_why(why, why_cap, "messageExpiration is not epoch milliseconds as a string");
        goto out;
    }
    if (c.valid_until_ms <= now_ms) {
        wallet_why(why, why_cap, "message expired (messageExpiration not after now)");
        r = WALLET_ERR_EXPIRED;
        goto out;
    }
    if ((s = member_str(j, "paymentMethod", API_ID_MAX, &slen)) == NULL) {
        wallet_why(why, why_cap, "paymentMethod is not a string");
        goto out;
    }
    if (strcmp(s, "CARD") != 0) {
        wallet_why(why, why_cap, "paymentMethod is not CARD");
        r = WALLET_ERR_UNSUPPORTED;
        goto out;
    }
    if ((r = parse_details(&c, json_object_get(j, "paymentMethodDetails"), why, why_cap)) !=
        WALLET_OK)
        goto out;
    *out = c;
    r = WALLET_OK;
out:
    wallet_card_wipe(&c);
    json_decref(j);
    return r;
}

/* ---- the HSM steps ------------------------------------------------------------------ */

/* Is root |k| one that may verify a packet of |proto| at |now_ms|? ECv1 roots
 * may have no expiry; any other root without one is skipped (as Tink). */
static bool
root_usable(const struct wallet_root_key *k, int proto, uint64_t now_ms)
{
    if (strcmp(k->protocol, PROTOCOL_NAMES[proto]) != 0)
        return false;
    if (!k->has_expiration)
        return proto == WALLET_GOOGLE_ECV1;
    return k->expiration_ms > now_ms;
}

static int
roots_check(const struct wallet_root_keys *roots, int proto, uint64_t now_ms, char *why,
            size_t why_cap)
{
    size_t of_proto = 0, usable = 0;

    for (size_t i = 0; i < roots->num && i < WALLET_ROOT_KEYS_MAX; i++) {
        if (strcmp(roots->keys[i].protocol, PROTOCOL_NAMES[proto]) == 0)
            of_proto++;
        if (root_usable(&roots->keys[i], proto, now_ms))
            usable++;
    }
    if (of_proto == 0) {
        wallet_why(why, why_cap, "no Google root key for %s", PROTOCOL_NAMES[proto]);
        return WALLET_ERR_NO_ANCHOR;
    }
    if (usable == 0) {
        wallet_why(why, why_cap, "every Google root key for %s has expired", PROTOCOL_NAMES[proto]);
        return WALLET_ERR_SIGNATURE;
    }
    return WALLET_OK;
}

/* One signature against one public key object: 1 verified, 0 not (a bad or
 * malformed signature: both are the sender's), negative WALLET_ERR_HSM. */
static int
verify_one(hsm_session *s, hsm_obj pub, const uint8_t digest[SHA256_LEN],
           const struct wallet_google_sig *sig, char *why, size_t why_cap)
{
    int hr = hsm_ecdsa_verify(s, pub, digest, SHA256_LEN, sig->der, sig->len);

    if (hr == HSM_OK)
        return 1;
    if (hr == HSM_ERR_VERIFY || hr == HSM_ERR_INPUT)
        return 0;
    wallet_why(why, why_cap, "ECDSA verify failed in the HSM (%s)", hsm_strerror(hr));
    return WALLET_ERR_HSM;
}

/* Any usable root of |proto| verifying any of |sigs| (Google's step 2: one
 * good pair is enough, so a root rotation can add a signature). WALLET_OK,
 * WALLET_ERR_SIGNATURE, WALLET_ERR_HSM. With |cache|, a digest a root
 * verified before is taken while that root is still usable (the cache
 * window ends at the root's expiry): what was proven is that Google signed
 * these bytes, whatever signatures the next packet carries beside them. */
static int
verify_with_roots(hsm_session *s, const struct wallet_google_ctx *ctx, int proto,
                  const uint8_t digest[SHA256_LEN], const struct wallet_google_sig *sigs,
                  size_t num_sigs, struct wallet_vcache *cache, const char *what, char *why,
                  size_t why_cap)
{
    const struct wallet_root_keys *roots = ctx->roots;
    int r = WALLET_ERR_SIGNATURE;
    const struct wallet_root_key *by = NULL;

    if (wallet_vcache_hit(cache, digest, (int64_t)ctx->now_ms))
        return WALLET_OK;

    for (size_t i = 0; i < roots->num && i < WALLET_ROOT_KEYS_MAX && r == WALLET_ERR_SIGNATURE; i++) {
        const struct wallet_root_key *k = &roots->keys[i];
        hsm_obj pub = HSM_OBJ_NONE;
        int hr;

        if (!root_usable(k, proto, ctx->now_ms))
            continue;
        /* The roots came from our own anchors: one the HSM refuses is the
         * vault's fault, not the packet's. */
        if ((hr = hsm_ec_public_import(s, k->spki, k->spki_len, &pub)) != HSM_OK) {
            wallet_why(why, why_cap, "root key %zu refused by the HSM (%s)", i, hsm_strerror(hr));
            return WALLET_ERR_HSM;
        }
        for (size_t j = 0; j < num_sigs && r == WALLET_ERR_SIGNATURE; j++) {
            int v = verify_one(s, pub, digest, &sigs[j], why, why_cap);

            if (v < 0)
                r = v;
            else if (v == 1)
                r = WALLET_OK;
        }
        hsm_obj_destroy(s, pub);
        if (r == WALLET_OK)
            by = k;
    }
    if (r == WALLET_ERR_SIGNATURE)
        wallet_why(why, why_cap, "%s: no Google root key verifies it", what);
    /* root_usable: a root with an expiry is usable strictly before it. */
    if (r == WALLET_OK && by->has_expiration)
        wallet_vcache_put(cache, digest, INT64_MIN, (int64_t)by->expiration_ms - 1);
    return r;
}

/* ECDH with one recipient key, HKDF, the tag checked in the HSM, then AES-CTR
 * in the HSM into |out| (ciphertext_len bytes). WALLET_ERR_DECRYPT if this
 * key's tag does not verify (the caller tries the next key);
 * WALLET_ERR_FORMAT for an ephemeral point off the curve. */
static int
open_with_key(hsm_session *s, hsm_key *key, const struct wallet_google_sealed *m, size_t key_len,
              uint8_t *out, char *why, size_t why_cap)
{
    static const uint8_t zero_iv[CTR_IV_LEN];
    hsm_obj z = HSM_OBJ_NONE, mac = HSM_OBJ_NONE, aes = HSM_OBJ_NONE;
    int hr, r = WALLET_ERR_HSM;

    hr = hsm_ecdh_derive(s, key, m->ephemeral, sizeof(m->ephemeral), &z);
    if (hr == HSM_ERR_INPUT) {
        wallet_why(why, why_cap, "ephemeralPublicKey is not a valid P-256 point");
        r = WALLET_ERR_FORMAT;
        goto out;
    }
    if (hr != HSM_OK) {
        wallet_why(why, why_cap, "ECDH failed in the HSM (%s)", hsm_strerror(hr));
        goto out;
    }
    /* IKM = ephemeral point || Z, salt none (= 32 zero bytes), info "Google";
     * the AES key, then the MAC key. All in the token where the probe found
     * the derivation mechanisms; elsewhere the keys pass through host memory
     * for as long as their import takes (hsm.h, SECURITY.md). ECv1's 16-byte
     * MAC key comes zero-padded, the same HMAC key (RFC 2104 section 2), as
     * SoftHSM refuses shorter HMAC keys. */
    hr = hsm_hkdf_sha256_keys(s, z, NULL, 0, m->ephemeral, sizeof(m->ephemeral),
                              (const uint8_t *)GOOGLE_SENDER_ID, GOOGLE_SENDER_ID_LEN, key_len,
                              &aes, &mac, NULL);
    hsm_obj_destroy(s, z);
    z = HSM_OBJ_NONE;
    if (hr != HSM_OK) {
        wallet_why(why, why_cap, "HKDF failed in the HSM (%s)", hsm_strerror(hr));
        goto out;
    }
    /* The tag is checked (constant time, in the HSM) before anything is
     * decrypted: an altered ciphertext never reaches AES. */
    hr = hsm_obj_hmac_verify(s, mac, m->ciphertext, m->ciphertext_len, m->tag, sizeof(m->tag));
    if (hr == HSM_ERR_VERIFY) {
        r = WALLET_ERR_DECRYPT;
        goto out;
    }
    if (hr != HSM_OK) {
        wallet_why(why, why_cap, "HMAC verify failed in the HSM (%s: %s)", hsm_strerror(hr),
                   hsm_last_detail());
        goto out;
    }
    hr = hsm_obj_ctr_decrypt(s, aes, zero_iv, m->ciphertext, m->ciphertext_len, out,
                             m->ciphertext_len);
    if (hr != HSM_OK) {
        OPENSSL_cleanse(out, m->ciphertext_len);
        wallet_why(why, why_cap, "AES-CTR failed in the HSM (%s)", hsm_strerror(hr));
        goto out;
    }
    r = WALLET_OK;
out:
    hsm_obj_destroy(s, z);
    hsm_obj_destroy(s, mac);
    hsm_obj_destroy(s, aes);
    return r;
}

/* Tries each recipient key in order; the one whose tag verifies decrypts. */
static int
decrypt(hsm_session *s, const struct wallet_google_ctx *ctx, int proto, const char *signed_message,
        size_t signed_message_len, uint8_t *out, size_t cap, size_t *out_len, char *why,
        size_t why_cap)
{
    struct wallet_google_sealed m = { 0 };
    size_t key_len = proto == WALLET_GOOGLE_ECV1 ? ECV1_KEY_LEN : ECV2_KEY_LEN;
    int r;

    if ((r = wallet_google_sealed_parse(&m, signed_message, signed_message_len, why, why_cap)) !=
        WALLET_OK)
        return r;
    if (m.ciphertext_len > cap) {
        wallet_why(why, why_cap, "plaintext longer than the buffer");
        r = WALLET_ERR_FORMAT;
        goto out;
    }
    r = WALLET_ERR_DECRYPT;
    for (size_t i = 0; i < ctx->num_keys && r == WALLET_ERR_DECRYPT; i++)
        r = open_with_key(s, ctx->keys[i], &m, key_len, out, why, why_cap);
    if (r == WALLET_ERR_DECRYPT)
        wallet_why(why, why_cap, "tag does not verify under any recipient key");
    if (r == WALLET_OK)
        *out_len = m.ciphertext_len;
out:
    wallet_google_sealed_clear(&m);
    return r;
}

/* Tink's last step: a plaintext that is a JSON object with messageExpiration
 * must not have expired. One that is not JSON ("plaintext" in the published
 * vectors) carries no expiry. */
static int
plaintext_expiry(const uint8_t *pt, size_t len, uint64_t now_ms, char *why, size_t why_cap)
{
    json_t *j = NULL;
    const json_t *v;
    const char *s;
    size_t slen = 0;
    uint64_t exp = 0;
    int r = WALLET_OK;

    if (wallet_json_load(&j, (const char *)pt, len, WALLET_PACKET_MAX, NULL, 0) != WALLET_OK)
        return WALLET_OK;
    if ((v = json_object_get(j, "messageExpiration")) == NULL)
        goto out;
    s = wallet_json_str(v, MS_DIGITS_MAX, &slen);
    if (ms_parse(s, slen, &exp) != WALLET_OK) {
        wallet_why(why, why_cap, "messageExpiration is not epoch milliseconds as a string");
        r = WALLET_ERR_FORMAT;
    } else if (exp <= now_ms) {
        wallet_why(why, why_cap, "message expired (messageExpiration not after now)");
        r = WALLET_ERR_EXPIRED;
    }
out:
    json_decref(j);
    return r;
}

static int
unseal(hsm_session *s, const struct wallet_google_ctx *ctx, const char *packet, size_t len,
       uint8_t *out, size_t cap, size_t *out_len, int *out_protocol, char *why, size_t why_cap)
{
    struct wallet_google_token t = { 0 };
    struct wallet_google_signed_key ikey = { 0 };
    uint8_t *buf = NULL, digest[SHA256_LEN];
    const char *proto;
    size_t recipient_len, proto_len, n = 0;
    hsm_obj ipub = HSM_OBJ_NONE;
    bool decrypted = false;
    int hr, r;

    if (s == NULL || ctx == NULL || ctx->recipient_id == NULL || ctx->roots == NULL ||
        out == NULL || out_len == NULL ||
        (recipient_len = strlen(ctx->recipient_id)) == 0 ||
        recipient_len > WALLET_GOOGLE_RECIPIENT_MAX || ctx->num_keys > WALLET_GOOGLE_KEYS_MAX ||
        (ctx->num_keys > 0 && ctx->keys == NULL)) {
        wallet_why(why, why_cap, "bad arguments");
        return WALLET_ERR_FORMAT;
    }
    for (size_t i = 0; i < ctx->num_keys; i++) {
        if (ctx->keys[i] == NULL) {
            wallet_why(why, why_cap, "bad arguments");
            return WALLET_ERR_FORMAT;
        }
    }
    if ((r = wallet_google_token_parse(&t, packet, len, why, why_cap)) != WALLET_OK)
        return r;
    proto = PROTOCOL_NAMES[t.protocol];
    proto_len = strlen(proto);
    if ((r = roots_check(ctx->roots, t.protocol, ctx->now_ms, why, why_cap)) != WALLET_OK)
        goto out;
    if ((buf = malloc(WALLET_GOOGLE_SIGNED_BYTES_MAX)) == NULL) {
        r = WALLET_ERR_NO_MEMORY;
        goto out;
    }
    if (t.protocol != WALLET_GOOGLE_ECV1) {
        const char *parts[] = { GOOGLE_SENDER_ID, proto, t.signed_key };
        const size_t lens[] = { GOOGLE_SENDER_ID_LEN, proto_len, t.signed_key_len };

        /* Steps 2 and 3: the intermediate key, signed by a root (the
         * recipient id is not in these bytes), unexpired. It is parsed only
         * once it is known to be Google's. */
        if ((r = signed_digest(buf, parts, lens, 3, digest, why, why_cap)) != WALLET_OK ||
            (r = verify_with_roots(s, ctx, t.protocol, digest, t.key_sigs, t.num_key_sigs,
                                   ctx->cache, "intermediate signing key", why, why_cap)) !=
                WALLET_OK ||
            (r = wallet_google_signed_key_parse(&ikey, t.signed_key, t.signed_key_len, why,
                                                why_cap)) != WALLET_OK)
            goto out;
        if (ikey.expiration_ms <= ctx->now_ms) {
            wallet_why(why, why_cap, "intermediate signing key expired");
            r = WALLET_ERR_EXPIRED;
            goto out;
        }
        if ((hr = hsm_ec_public_import(s, ikey.spki, ikey.spki_len, &ipub)) != HSM_OK) {
            wallet_why(why, why_cap, "intermediate keyValue is not an EC P-256 key (%s)",
                       hsm_strerror(hr));
            r = hr == HSM_ERR_INPUT ? WALLET_ERR_FORMAT : WALLET_ERR_HSM;
            goto out;
        }
    }
    {
        /* Step 4: the message, signed for this recipient. */
        const char *parts[] = { GOOGLE_SENDER_ID, ctx->recipient_id, proto, t.signed_message };
        const size_t lens[] = { GOOGLE_SENDER_ID_LEN, recipient_len, proto_len,
                                t.signed_message_len };

        if ((r = signed_digest(buf, parts, lens, 4, digest, why, why_cap)) != WALLET_OK)
            goto out;
        if (t.protocol == WALLET_GOOGLE_ECV1) {
            /* ECv1 has no intermediate: the roots sign the message. */
            /* Never cached: each message is verified. */
            r = verify_with_roots(s, ctx, t.protocol, digest, &t.signature, 1, NULL,
                                  "message signature", why, why_cap);
        } else {
            int v = verify_one(s, ipub, digest, &t.signature, why, why_cap);

            r = v < 0 ? v : v == 1 ? WALLET_OK : WALLET_ERR_SIGNATURE;
            if (r == WALLET_ERR_SIGNATURE)
                wallet_why(why, why_cap, "message signature does not verify (recipient id?)");
        }
        if (r != WALLET_OK)
            goto out;
    }
    /* Step 5: the plaintext. */
    if (t.protocol == WALLET_GOOGLE_ECV2_SIGNING_ONLY) {
        if (t.signed_message_len > cap) {
            wallet_why(why, why_cap, "plaintext longer than the buffer");
            r = WALLET_ERR_FORMAT;
            goto out;
        }
        memcpy(out, t.signed_message, t.signed_message_len);
        n = t.signed_message_len;
    } else {
        if (ctx->num_keys == 0) {
            wallet_why(why, why_cap, "no recipient key");
            r = WALLET_ERR_UNKNOWN_KEY;
            goto out;
        }
        if ((r = decrypt(s, ctx, t.protocol, t.signed_message, t.signed_message_len, out, cap, &n,
                         why, why_cap)) != WALLET_OK)
            goto out;
    }
    decrypted = true;
    /* Step 6. */
    if ((r = plaintext_expiry(out, n, ctx->now_ms, why, why_cap)) != WALLET_OK)
        goto out;
    *out_len = n;
    *out_protocol = t.protocol;
    r = WALLET_OK;
out:
    if (r != WALLET_OK && decrypted)
        OPENSSL_cleanse(out, n);
    hsm_obj_destroy(s, ipub);
    OPENSSL_cleanse(digest, sizeof(digest));
    free(buf);
    wallet_google_token_clear(&t);
    return r;
}

int
wallet_google_unseal(hsm_session *s, const struct wallet_google_ctx *ctx, const char *packet,
                     size_t len, uint8_t *out, size_t cap, size_t *out_len, char *why,
                     size_t why_cap)
{
    int protocol = 0;

    return unseal(s, ctx, packet, len, out, cap, out_len, &protocol, why, why_cap);
}

int
wallet_google_open(hsm_session *s, const struct wallet_google_ctx *ctx, const char *packet,
                   size_t len, struct wallet_card *out, char *why, size_t why_cap)
{
    uint8_t *pt = NULL;
    size_t pt_len = 0;
    int protocol = 0, r;

    if (out == NULL || packet == NULL) {
        wallet_why(why, why_cap, "bad arguments");
        return WALLET_ERR_FORMAT;
    }
    if (len > WALLET_PACKET_MAX) {
        wallet_why(why, why_cap, "packet longer than %d bytes", WALLET_PACKET_MAX);
        return WALLET_ERR_FORMAT;
    }
    /* A plaintext is never longer than its packet. */
    if ((pt = malloc(len > 0 ? len : 1)) == NULL)
        return WALLET_ERR_NO_MEMORY;
    if ((r = unseal(s, ctx, packet, len, pt, len, &pt_len, &protocol, why, why_cap)) != WALLET_OK)
        goto out;
    r = wallet_google_message_parse(out, protocol, pt, pt_len, ctx->now_ms, why, why_cap);
out:
    OPENSSL_cleanse(pt, pt_len);
    free(pt);
    return r;
}
