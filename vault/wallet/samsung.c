/*
 * samsung.c - Samsung Pay JWE: strict parsers (cursor and codec.h) and the
 * recipient's steps, the CEK unwrapped into the HSM and AES-GCM run there
 * (HSM-NOTES "Samsung Pay JWE" recipe; RFC 7516, RFC 7518).
 */
#include "vault/wallet/samsung.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "api/reader.h"
#include "vault/wallet/codec.h"

/* A JWE compact serialization has exactly five parts (RFC 7516 7.1). */
#define JWE_PARTS 5
#define JWE_SEPARATOR '.'
/* Base64url characters of the largest decoded header. */
#define HEADER_B64_MAX ((WALLET_SAMSUNG_HEADER_MAX * 4 + 2) / 3)
/* Longest alg or enc value we could take ("RSA-OAEP-256"); a longer one is
 * no algorithm we know. */
#define ALG_NAME_MAX 16
/* CEK lengths of the content encryptions (RFC 7518 5.3). */
#define A128GCM_KEY_LEN 16
#define A256GCM_KEY_LEN 32
/* Decimal digits of WALLET_EXPIRATION_MAX_MS, the largest epoch-ms value. */
#define MS_DIGITS_MAX 15
/* Decimal digits of API_AMOUNT_MAX. */
#define AMOUNT_DIGITS_MAX 15
/* tokenPanExpiration: MMYY, and the century Samsung's two-digit year is in. */
#define EXPIRATION_LEN 4
#define EXP_CENTURY 2000
#define SHA256_LEN 32

/* The paymentCredential values this module takes (WALLETS.md section 3). */
#define CRED_METHOD "3DS"
#define CRED_TYPE "S"
#define CRED_VERSION "100"
/* Longest method, type or version value compared (a longer one is no value
 * we take). */
#define CRED_WORD_MAX 16

/* One reason for every failure that could come from the CEK: a bad tag, a
 * wrong key, and (RSA1_5, RFC 7516 11.5) a padding failure, so the reason
 * says nothing about which happened. */
static const char DECRYPT_WHY[] = "JWE does not decrypt (GCM tag check failed)";

static const char *const ALG_NAMES[] = {
    [WALLET_SAMSUNG_RSA1_5] = "RSA1_5",
    [WALLET_SAMSUNG_RSA_OAEP] = "RSA-OAEP",
    [WALLET_SAMSUNG_RSA_OAEP_256] = "RSA-OAEP-256",
};
static const char *const ENC_NAMES[] = {
    [WALLET_SAMSUNG_A128GCM] = "A128GCM",
    [WALLET_SAMSUNG_A256GCM] = "A256GCM",
};

/* The 3DS object: exactly these. */
static const char *const THREEDS_MEMBERS[] = { "type", "version", "data", NULL };
/* The paymentCredential: only these are read (others allowed, see samsung.h). */
static const char *const CRED_REQUIRED[] = { "method", "3DS", NULL };
/* The protected header: exactly these may appear (see samsung.h). */
static const char *const HEADER_KNOWN[] = { "alg", "enc", "kid", "typ", "channelSecurityContext",
                                            NULL };
static const char *const HEADER_REQUIRED[] = { "alg", "enc", "kid", NULL };
/* The plaintext: other members allowed (see samsung.h). */
static const char *const PAYLOAD_REQUIRED[] = { "tokenPAN", "tokenPanExpiration", "utc", NULL };

const char *
wallet_samsung_alg_name(int alg)
{
    if (alg < WALLET_SAMSUNG_RSA1_5 || alg > WALLET_SAMSUNG_RSA_OAEP_256)
        return NULL;
    return ALG_NAMES[alg];
}

const char *
wallet_samsung_enc_name(int enc)
{
    if (enc < WALLET_SAMSUNG_A128GCM || enc > WALLET_SAMSUNG_A256GCM)
        return NULL;
    return ENC_NAMES[enc];
}

/* Printable ASCII without space: kids and cryptograms reach logs. */
static bool
all_printable(const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        if (s[i] < 0x21 || s[i] > 0x7e)
            return false;
    }
    return true;
}

/* A member that must be a non-empty string of at most |max| characters. */
static const char *
member_str(const json_t *obj, const char *name, size_t max, size_t *out_len)
{
    return wallet_json_str(json_object_get(obj, name), max, out_len);
}

/* ---- the packet ----------------------------------------------------------------- */

static bool
json_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

/* A paymentCredential member compared with the one value we take:
 * WALLET_ERR_FORMAT if it is no string, WALLET_ERR_UNSUPPORTED if it is
 * another value. */
static int
cred_word(const json_t *obj, const char *what, const char *name, const char *want, char *why,
          size_t why_cap)
{
    const json_t *v = json_object_get(obj, name);
    const char *s;
    size_t len = 0;

    if (!json_is_string(v)) {
        wallet_why(why, why_cap, "%s.%s is not a string", what, name);
        return WALLET_ERR_FORMAT;
    }
    if ((s = wallet_json_str(v, CRED_WORD_MAX, &len)) == NULL || strcmp(s, want) != 0) {
        wallet_why(why, why_cap, "%s.%s is not \"%s\"", what, name, want);
        return WALLET_ERR_UNSUPPORTED;
    }
    return WALLET_OK;
}

int
wallet_samsung_packet_parse(struct wallet_samsung_packet *out, const char *packet, size_t len,
                            char *why, size_t why_cap)
{
    struct wallet_samsung_packet p = { 0 };
    const json_t *tds;
    int r;

    if (out == NULL || packet == NULL || len == 0) {
        wallet_why(why, why_cap, "no packet");
        return WALLET_ERR_FORMAT;
    }
    if (len > WALLET_PACKET_MAX) {
        wallet_why(why, why_cap, "packet longer than %u bytes", WALLET_PACKET_MAX);
        return WALLET_ERR_FORMAT;
    }
    if (packet[0] != '{' && !json_space(packet[0])) {
        /* A bare JWE: the compact parser checks every byte of it. */
        p.jwe = packet;
        p.jwe_len = len;
        *out = p;
        return WALLET_OK;
    }
    if ((r = wallet_json_load(&p.json, packet, len, WALLET_PACKET_MAX, why, why_cap)) != WALLET_OK)
        return r;
    if ((r = wallet_json_fields(p.json, "paymentCredential", NULL, CRED_REQUIRED, why, why_cap)) !=
            WALLET_OK ||
        (r = cred_word(p.json, "paymentCredential", "method", CRED_METHOD, why, why_cap)) !=
            WALLET_OK)
        goto out;
    tds = json_object_get(p.json, "3DS");
    if ((r = wallet_json_fields(tds, "3DS", THREEDS_MEMBERS, THREEDS_MEMBERS, why, why_cap)) !=
            WALLET_OK ||
        (r = cred_word(tds, "3DS", "type", CRED_TYPE, why, why_cap)) != WALLET_OK ||
        (r = cred_word(tds, "3DS", "version", CRED_VERSION, why, why_cap)) != WALLET_OK)
        goto out;
    r = WALLET_ERR_FORMAT;
    if ((p.jwe = member_str(tds, "data", WALLET_PACKET_MAX, &p.jwe_len)) == NULL) {
        wallet_why(why, why_cap, "3DS.data is not a non-empty string");
        goto out;
    }
    *out = p;
    p.json = NULL;
    r = WALLET_OK;
out:
    json_decref(p.json);
    return r;
}

void
wallet_samsung_packet_clear(struct wallet_samsung_packet *p)
{
    if (p == NULL)
        return;
    json_decref(p->json);
    memset(p, 0, sizeof(*p));
}

/* ---- the JWE compact serialization -------------------------------------------- */

/* Splits |r| at every '.' into |parts| (JWE_PARTS of them, exactly). */
static int
jwe_split(struct api_reader *r, struct api_reader parts[JWE_PARTS], char *why, size_t why_cap)
{
    size_t num = 0;

    for (;;) {
        struct api_reader scan = *r;
        size_t n = 0;
        uint8_t c = 0;
        bool dot = false;

        /* The part runs to the next separator or to the end. */
        while (api_reader_len(&scan) > 0) {
            if (api_reader_get_u8(&scan, &c) != 0)
                return WALLET_ERR_FORMAT;
            if (c == JWE_SEPARATOR) {
                dot = true;
                break;
            }
            n++;
        }
        if (num == JWE_PARTS) {
            wallet_why(why, why_cap, "JWE has more than %d parts", JWE_PARTS);
            return WALLET_ERR_FORMAT;
        }
        if (api_reader_get_bytes(r, &parts[num], n) != 0 || (dot && api_reader_skip(r, 1) != 0))
            return WALLET_ERR_FORMAT;
        num++;
        if (!dot)
            break;
    }
    if (num != JWE_PARTS) {
        wallet_why(why, why_cap, "JWE has %zu parts, not %d", num, JWE_PARTS);
        return WALLET_ERR_FORMAT;
    }
    return WALLET_OK;
}

/* Part |part| decoded into |out| (|cap| bytes), which it must fill to
 * between |min| and |cap| bytes. */
static int
part_decode(struct api_reader *part, const char *name, uint8_t *out, size_t cap, size_t min,
            size_t *out_len, char *why, size_t why_cap)
{
    size_t n = 0;

    if (wallet_b64url_decode(out, cap, &n, (const char *)part->data, api_reader_len(part)) !=
        WALLET_OK) {
        wallet_why(why, why_cap, "JWE %s is not unpadded base64url of at most %zu bytes", name,
                   cap);
        return WALLET_ERR_FORMAT;
    }
    if (n < min) {
        if (min == cap)
            wallet_why(why, why_cap, "JWE %s is %zu bytes, not %zu", name, n, cap);
        else
            wallet_why(why, why_cap, "JWE %s is shorter than %zu bytes", name, min);
        return WALLET_ERR_FORMAT;
    }
    *out_len = n;
    return WALLET_OK;
}

int
wallet_samsung_jwe_parse(struct wallet_samsung_jwe *out, const char *s, size_t len, char *why,
                         size_t why_cap)
{
    struct wallet_samsung_jwe j = { 0 };
    struct api_reader r, parts[JWE_PARTS];
    size_t ct_b64_len, ct_cap;
    int r_;

    if (out == NULL || s == NULL || len == 0) {
        wallet_why(why, why_cap, "no JWE");
        return WALLET_ERR_FORMAT;
    }
    if (len > WALLET_PACKET_MAX) {
        wallet_why(why, why_cap, "JWE longer than %u bytes", WALLET_PACKET_MAX);
        return WALLET_ERR_FORMAT;
    }
    api_reader_init(&r, (const uint8_t *)s, len);
    if ((r_ = jwe_split(&r, parts, why, why_cap)) != WALLET_OK)
        return r_;
    if (api_reader_len(&r) != 0)
        return WALLET_ERR_FORMAT; /* unreachable: the split takes every byte */
    if (api_reader_len(&parts[0]) > HEADER_B64_MAX) {
        wallet_why(why, why_cap, "JWE header longer than %d bytes", WALLET_SAMSUNG_HEADER_MAX);
        return WALLET_ERR_FORMAT;
    }
    j.header_b64 = (const char *)parts[0].data;
    j.header_b64_len = api_reader_len(&parts[0]);
    if ((r_ = part_decode(&parts[0], "header", j.header, sizeof(j.header), 1, &j.header_len, why,
                          why_cap)) != WALLET_OK ||
        (r_ = part_decode(&parts[1], "encrypted key", j.encrypted_key, sizeof(j.encrypted_key),
                          WALLET_SAMSUNG_ENC_KEY_LEN, &j.encrypted_key_len, why, why_cap)) !=
            WALLET_OK ||
        (r_ = part_decode(&parts[2], "IV", j.iv, sizeof(j.iv), WALLET_SAMSUNG_IV_LEN, &j.iv_len,
                          why, why_cap)) != WALLET_OK)
        goto out;
    /* Sized from the text we hold (bounded by the packet), not from a count
     * the sender declares; the tag goes right after the ciphertext. */
    ct_b64_len = api_reader_len(&parts[3]);
    ct_cap = ct_b64_len / 4 * 3 + 2;
    if (ct_cap > WALLET_SAMSUNG_CIPHERTEXT_MAX)
        ct_cap = WALLET_SAMSUNG_CIPHERTEXT_MAX;
    if ((j.sealed = malloc(ct_cap + WALLET_SAMSUNG_TAG_LEN)) == NULL) {
        r_ = WALLET_ERR_NO_MEMORY;
        goto out;
    }
    if ((r_ = part_decode(&parts[3], "ciphertext", j.sealed, ct_cap, 1, &j.ciphertext_len, why,
                          why_cap)) != WALLET_OK ||
        (r_ = part_decode(&parts[4], "tag", j.sealed + j.ciphertext_len, WALLET_SAMSUNG_TAG_LEN,
                          WALLET_SAMSUNG_TAG_LEN, &j.tag_len, why, why_cap)) != WALLET_OK)
        goto out;
    *out = j;
    j.sealed = NULL;
    r_ = WALLET_OK;
out:
    free(j.sealed);
    return r_;
}

void
wallet_samsung_jwe_clear(struct wallet_samsung_jwe *j)
{
    if (j == NULL)
        return;
    free(j->sealed);
    memset(j, 0, sizeof(*j));
}

/* ---- the protected header ------------------------------------------------------- */

/* alg or enc: WALLET_ERR_FORMAT if absent, WALLET_ERR_UNSUPPORTED if no name
 * in |names| (indices 1..|num|). */
static int
header_choice(const json_t *h, const char *name, const char *const *names, int num, int *out,
              char *why, size_t why_cap)
{
    const json_t *v = json_object_get(h, name);
    const char *s;
    size_t len = 0;

    if (v == NULL) {
        wallet_why(why, why_cap, "header has no \"%s\"", name);
        return WALLET_ERR_FORMAT;
    }
    if ((s = wallet_json_str(v, ALG_NAME_MAX, &len)) != NULL) {
        for (int i = 1; i <= num; i++) {
            if (strcmp(s, names[i]) == 0) {
                *out = i;
                return WALLET_OK;
            }
        }
    }
    wallet_why(why, why_cap, "header %s is not one this vault takes", name);
    return WALLET_ERR_UNSUPPORTED;
}

int
wallet_samsung_header_parse(struct wallet_samsung_header *out, const uint8_t *json, size_t len,
                            char *why, size_t why_cap)
{
    static const char *const words[] = { "typ", "channelSecurityContext" };
    struct wallet_samsung_header h = { 0 };
    json_t *j = NULL;
    const char *s;
    size_t slen = 0;
    int r;

    if (out == NULL || json == NULL) {
        wallet_why(why, why_cap, "no header");
        return WALLET_ERR_FORMAT;
    }
    if ((r = wallet_json_load(&j, (const char *)json, len, WALLET_SAMSUNG_HEADER_MAX, why,
                              why_cap)) != WALLET_OK)
        return r;
    /* RFC 7516 4.1.13 / 4.1.3: a reader that does not implement them must
     * refuse, not ignore. */
    if (json_object_get(j, "crit") != NULL || json_object_get(j, "zip") != NULL) {
        wallet_why(why, why_cap, "header has \"crit\" or \"zip\", which this vault does not take");
        r = WALLET_ERR_UNSUPPORTED;
        goto out;
    }
    if ((r = header_choice(j, "alg", ALG_NAMES, WALLET_SAMSUNG_RSA_OAEP_256, &h.alg, why,
                           why_cap)) != WALLET_OK ||
        (r = header_choice(j, "enc", ENC_NAMES, WALLET_SAMSUNG_A256GCM, &h.enc, why, why_cap)) !=
            WALLET_OK ||
        (r = wallet_json_fields(j, "header", HEADER_KNOWN, HEADER_REQUIRED, why, why_cap)) !=
            WALLET_OK)
        goto out;
    r = WALLET_ERR_FORMAT;
    if ((s = member_str(j, "kid", WALLET_SAMSUNG_KID_MAX, &slen)) == NULL ||
        !all_printable(s, slen)) {
        wallet_why(why, why_cap, "header kid is not 1..%d printable characters",
                   WALLET_SAMSUNG_KID_MAX);
        goto out;
    }
    memcpy(h.kid, s, slen);
    h.kid[slen] = '\0';
    for (size_t i = 0; i < sizeof(words) / sizeof(words[0]); i++) {
        const json_t *v = json_object_get(j, words[i]);

        if (v != NULL && ((s = wallet_json_str(v, WALLET_SAMSUNG_HEADER_WORD_MAX, &slen)) == NULL ||
                          !all_printable(s, slen))) {
            wallet_why(why, why_cap, "header %s is not 1..%d printable characters", words[i],
                       WALLET_SAMSUNG_HEADER_WORD_MAX);
            goto out;
        }
    }
    *out = h;
    r = WALLET_OK;
out:
    json_decref(j);
    return r;
}

/* ---- the plaintext ------------------------------------------------------------------- */

int
wallet_samsung_version(char *out, size_t cap, int alg, int enc)
{
    const char *a = wallet_samsung_alg_name(alg), *e = wallet_samsung_enc_name(enc);
    int n;

    if (out == NULL || a == NULL || e == NULL)
        return WALLET_ERR_FORMAT;
    /* "RSA-OAEP-256/A128GCM" is 20 characters, over API_WALLET_VERSION_MAX:
     * the "RSA-" goes, which still names the algorithm uniquely. */
    if (alg == WALLET_SAMSUNG_RSA_OAEP_256)
        a = "OAEP-256";
    n = snprintf(out, cap, "%s/%s", a, e);
    if (n < 0 || (size_t)n >= cap || (size_t)n > API_WALLET_VERSION_MAX)
        return WALLET_ERR_FORMAT;
    return WALLET_OK;
}

int
wallet_samsung_transaction_id(char *out, size_t cap, const char *jwe, size_t len)
{
    static const char hex[] = "0123456789abcdef";
    uint8_t digest[SHA256_LEN];
    unsigned int dlen = 0;
    size_t n;

    if (out == NULL || jwe == NULL || cap <= WALLET_SAMSUNG_ID_LEN)
        return WALLET_ERR_FORMAT;
    if (EVP_Digest(jwe, len, digest, &dlen, EVP_sha256(), NULL) != 1 || dlen != SHA256_LEN)
        return WALLET_ERR_NO_MEMORY;
    n = sizeof(WALLET_SAMSUNG_ID_PREFIX) - 1;
    memcpy(out, WALLET_SAMSUNG_ID_PREFIX, n);
    for (size_t i = 0; i < WALLET_SAMSUNG_ID_HASH_LEN; i++) {
        out[n++] = hex[digest[i] >> 4];
        out[n++] = hex[digest[i] & 0x0f];
    }
    out[n] = '\0';
    return WALLET_OK;
}

/* Decimal digits, no sign, no leading zero (but "0" itself when |zero_ok|),
 * at most |max_digits| and |max|. */
static int
decimal_parse(const char *s, size_t len, size_t max_digits, uint64_t max, bool zero_ok,
              uint64_t *out)
{
    uint64_t v = 0;

    if (s == NULL || len == 0 || len > max_digits || !wallet_all_digits(s, len) ||
        (s[0] == '0' && !(zero_ok && len == 1)))
        return WALLET_ERR_FORMAT;
    for (size_t i = 0; i < len; i++)
        v = v * 10 + (uint64_t)(s[i] - '0');
    if (v > max)
        return WALLET_ERR_FORMAT;
    *out = v;
    return WALLET_OK;
}

/* |utc| inside [now - max_age, now + max_age], computed without wrapping. */
static bool
utc_in_window(uint64_t utc, uint64_t now, uint64_t max_age)
{
    uint64_t lo = now > max_age ? now - max_age : 0;
    uint64_t hi = max_age > UINT64_MAX - now ? UINT64_MAX : now + max_age;

    return utc >= lo && utc <= hi;
}

static int
payload_card(struct wallet_card *c, const json_t *j, char *why, size_t why_cap)
{
    const json_t *crypto, *eci;
    const char *s;
    size_t len = 0;

    if ((s = member_str(j, "tokenPAN", API_PAN_MAX, &len)) == NULL || len < API_PAN_MIN ||
        !wallet_all_digits(s, len)) {
        wallet_why(why, why_cap, "tokenPAN is not a string of %u..%u digits", API_PAN_MIN,
                   API_PAN_MAX);
        return WALLET_ERR_FORMAT;
    }
    memcpy(c->pan, s, len);
    c->pan[len] = '\0';
    if ((s = member_str(j, "tokenPanExpiration", EXPIRATION_LEN, &len)) == NULL ||
        len != EXPIRATION_LEN || !wallet_all_digits(s, len) ||
        (s[0] - '0') * 10 + (s[1] - '0') < 1 || (s[0] - '0') * 10 + (s[1] - '0') > 12) {
        wallet_why(why, why_cap, "tokenPanExpiration is not MMYY with a month 01..12");
        return WALLET_ERR_FORMAT;
    }
    c->exp_month = (uint8_t)((s[0] - '0') * 10 + (s[1] - '0'));
    c->exp_year = (uint16_t)(EXP_CENTURY + (s[2] - '0') * 10 + (s[3] - '0'));
    if (json_object_get(j, "amount") != NULL) {
        s = member_str(j, "amount", AMOUNT_DIGITS_MAX, &len);
        if (decimal_parse(s, len, AMOUNT_DIGITS_MAX, API_AMOUNT_MAX, true, &c->amount) !=
            WALLET_OK) {
            wallet_why(why, why_cap, "amount is not a string of digits (minor units)");
            return WALLET_ERR_FORMAT;
        }
        c->has_amount = true;
    }
    if (json_object_get(j, "currency_code") != NULL) {
        if ((s = member_str(j, "currency_code", API_CURRENCY_LEN, &len)) == NULL ||
            len != API_CURRENCY_LEN) {
            wallet_why(why, why_cap, "currency_code is not three letters A-Z");
            return WALLET_ERR_FORMAT;
        }
        for (size_t i = 0; i < len; i++) {
            if (s[i] < 'A' || s[i] > 'Z') {
                wallet_why(why, why_cap, "currency_code is not three letters A-Z");
                return WALLET_ERR_FORMAT;
            }
        }
        memcpy(c->currency, s, len);
        c->currency[len] = '\0';
        c->has_currency = true;
    }
    crypto = json_object_get(j, "cryptogram");
    eci = json_object_get(j, "eci_indicator");
    /* An ECI without a cryptogram would be passed on as if the device had
     * authenticated the payment. */
    if (eci != NULL && crypto == NULL) {
        wallet_why(why, why_cap, "eci_indicator without a cryptogram");
        return WALLET_ERR_FORMAT;
    }
    c->auth_method = API_AUTH_PAN_ONLY;
    if (crypto != NULL) {
        if ((s = wallet_json_str(crypto, API_CRYPTOGRAM_MAX, &len)) == NULL ||
            !all_printable(s, len)) {
            wallet_why(why, why_cap, "cryptogram is not 1..%u printable characters",
                       API_CRYPTOGRAM_MAX);
            return WALLET_ERR_FORMAT;
        }
        memcpy(c->cryptogram, s, len);
        c->cryptogram[len] = '\0';
        c->has_cryptogram = true;
        c->auth_method = API_AUTH_CRYPTOGRAM_3DS;
    }
    if (eci != NULL) {
        if ((s = wallet_json_str(eci, API_ECI_MAX, &len)) == NULL || !wallet_all_digits(s, len)) {
            wallet_why(why, why_cap, "eci_indicator is not 1..%u digits", API_ECI_MAX);
            return WALLET_ERR_FORMAT;
        }
        memcpy(c->eci, s, len);
        c->eci[len] = '\0';
        c->has_eci = true;
    }
    return WALLET_OK;
}

/* The plaintext into a card whose transaction id is already known. */
static int
payload_parse(struct wallet_card *out, int alg, int enc, const char *transaction_id,
              const uint8_t *pt, size_t len, uint64_t now_ms, uint64_t max_age_ms, char *why,
              size_t why_cap)
{
    struct wallet_card c = { 0 };
    json_t *j = NULL;
    const char *s;
    size_t slen = 0;
    uint64_t utc = 0;
    int r;

    c.wallet = API_WALLET_SAMSUNG_PAY;
    if (wallet_samsung_version(c.version, sizeof(c.version), alg, enc) != WALLET_OK) {
        wallet_why(why, why_cap, "unknown alg or enc");
        return WALLET_ERR_FORMAT;
    }
    snprintf(c.transaction_id, sizeof(c.transaction_id), "%s", transaction_id);
    if ((r = wallet_json_load(&j, (const char *)pt, len, WALLET_PACKET_MAX, why, why_cap)) !=
        WALLET_OK)
        goto out;
    if ((r = wallet_json_fields(j, "plaintext", NULL, PAYLOAD_REQUIRED, why, why_cap)) != WALLET_OK)
        goto out;
    r = WALLET_ERR_FORMAT;
    s = member_str(j, "utc", MS_DIGITS_MAX, &slen);
    if (decimal_parse(s, slen, MS_DIGITS_MAX, WALLET_EXPIRATION_MAX_MS, false, &utc) != WALLET_OK) {
        wallet_why(why, why_cap, "utc is not epoch milliseconds as a string");
        goto out;
    }
    if (!utc_in_window(utc, now_ms, max_age_ms)) {
        wallet_why(why, why_cap, "utc is further than %llu ms from now",
                   (unsigned long long)max_age_ms);
        r = WALLET_ERR_EXPIRED;
        goto out;
    }
    /* A replay entry must outlive every moment the packet is accepted. */
    c.valid_until_ms = max_age_ms > UINT64_MAX - utc ? UINT64_MAX : utc + max_age_ms;
    if ((r = payload_card(&c, j, why, why_cap)) != WALLET_OK)
        goto out;
    *out = c;
    r = WALLET_OK;
out:
    wallet_card_wipe(&c);
    json_decref(j);
    return r;
}

int
wallet_samsung_payload_parse(struct wallet_card *out, int alg, int enc, const char *jwe,
                             size_t jwe_len, const uint8_t *pt, size_t len, uint64_t now_ms,
                             uint64_t max_age_ms, char *why, size_t why_cap)
{
    char id[WALLET_SAMSUNG_ID_LEN + 1];
    int r;

    if (out == NULL || pt == NULL || jwe == NULL) {
        wallet_why(why, why_cap, "no plaintext");
        return WALLET_ERR_FORMAT;
    }
    if ((r = wallet_samsung_transaction_id(id, sizeof(id), jwe, jwe_len)) != WALLET_OK) {
        wallet_why(why, why_cap, "SHA-256 failed");
        return r;
    }
    return payload_parse(out, alg, enc, id, pt, len, now_ms, max_age_ms, why, why_cap);
}

/* ---- the HSM steps ------------------------------------------------------------------ */

/* What unseal learnt that open needs after the packet is gone. */
struct opened {
    int alg, enc;
    char transaction_id[WALLET_SAMSUNG_ID_LEN + 1];
};

static const struct wallet_samsung_key *
key_for_kid(const struct wallet_samsung_ctx *ctx, const char *kid)
{
    for (size_t i = 0; i < ctx->num_keys; i++) {
        if (strcmp(ctx->keys[i].kid, kid) == 0)
            return &ctx->keys[i];
    }
    return NULL;
}

/* RSA-OAEP-256 only: hsm_rsa_unwrap_aes would decode OAEP on the host for a
 * HSM_KIND_RSA_DECRYPT key on a token without OAEP-SHA256 (SoftHSM 2.6),
 * which puts the CEK in host memory; Samsung keys are unwrap-only, so such
 * a key is refused before it is used. (RSA1_5 and RSA-OAEP always run
 * C_UnwrapKey in the token, whatever the kind.) */
static int
oaep256_key_check(hsm_session *s, hsm_key *key, char *why, size_t why_cap)
{
    hsm_key_info info;
    int hr = hsm_key_info_get(s, key, &info);

    if (hr != HSM_OK) {
        wallet_why(why, why_cap, "reading the merchant key failed (%s)", hsm_strerror(hr));
        return WALLET_ERR_HSM;
    }
    if (info.kind != HSM_KIND_RSA_UNWRAP && info.kind != HSM_KIND_RSA_UNWRAP_SIGN) {
        wallet_why(why, why_cap, "RSA-OAEP-256 with a %s key would decode the CEK on the host",
                   hsm_key_kind_name(info.kind));
        return WALLET_ERR_UNSUPPORTED;
    }
    return WALLET_OK;
}

/* The CEK into the HSM. RSA1_5 padding failures never reach here as errors
 * (hsm_rsa_unwrap_aes substitutes a random key); an RSA-OAEP padding
 * failure gives the same code and reason as a bad tag. */
static int
cek_unwrap(hsm_session *s, hsm_key *key, const struct wallet_samsung_header *h,
           const struct wallet_samsung_jwe *j, hsm_obj *out, char *why, size_t why_cap)
{
    static const hsm_rsa_pad pads[] = {
        [WALLET_SAMSUNG_RSA1_5] = HSM_RSA_PKCS1,
        [WALLET_SAMSUNG_RSA_OAEP] = HSM_RSA_OAEP_SHA1,
        [WALLET_SAMSUNG_RSA_OAEP_256] = HSM_RSA_OAEP_SHA256,
    };
    size_t key_len = h->enc == WALLET_SAMSUNG_A256GCM ? A256GCM_KEY_LEN : A128GCM_KEY_LEN;
    int path = 0, hr, r;

    if (h->alg == WALLET_SAMSUNG_RSA_OAEP_256 &&
        (r = oaep256_key_check(s, key, why, why_cap)) != WALLET_OK)
        return r;
    hr = hsm_rsa_unwrap_aes(s, key, pads[h->alg], j->encrypted_key, j->encrypted_key_len, key_len,
                            HSM_USE_AES_GCM_DECRYPT, out, &path);
    if (hr == HSM_OK && path != 1) {
        /* Defence in depth: only the in-token path may run here. */
        hsm_obj_destroy(s, *out);
        *out = HSM_OBJ_NONE;
        wallet_why(why, why_cap, "the CEK was not unwrapped inside the HSM");
        return WALLET_ERR_HSM;
    }
    if (hr == HSM_OK)
        return WALLET_OK;
    if (hr == HSM_ERR_VERIFY && h->alg != WALLET_SAMSUNG_RSA1_5) {
        wallet_why(why, why_cap, "%s", DECRYPT_WHY);
        return WALLET_ERR_DECRYPT;
    }
    if (hr == HSM_ERR_MECHANISM && h->alg == WALLET_SAMSUNG_RSA_OAEP_256) {
        wallet_why(why, why_cap,
                   "RSA-OAEP-256: the HSM lacks CKM_RSA_PKCS_OAEP with CKM_SHA256/CKG_MGF1_SHA256");
        return WALLET_ERR_UNSUPPORTED;
    }
    wallet_why(why, why_cap, "RSA unwrap of the CEK failed in the HSM (%s)", hsm_strerror(hr));
    return WALLET_ERR_HSM;
}

/* AES-GCM in the HSM. The CEK came out of the packet, so whatever the token
 * says about using it as a key, short of losing the device or its memory, is
 * the packet's fault and reads as a bad tag: RSA1_5 can yield a correctly
 * padded CEK of a length that is no AES key, which SoftHSM 2.6 creates
 * anyway and only refuses at C_DecryptInit; reporting that differently from
 * a tag failure would tell a Bleichenbacher attacker that the padding was
 * right (RFC 7516 section 11.5). */
static int
content_decrypt(hsm_session *s, hsm_obj cek, const struct wallet_samsung_jwe *j, uint8_t *out,
                size_t cap, size_t *out_len, char *why, size_t why_cap)
{
    size_t n = 0;
    int hr;

    hr = hsm_obj_gcm_decrypt(s, cek, (const uint8_t *)j->header_b64, j->header_b64_len, j->iv,
                             j->iv_len, j->sealed, j->ciphertext_len + j->tag_len, out, cap, &n);
    if (hr == HSM_ERR_UNAVAILABLE || hr == HSM_ERR_NO_MEMORY) {
        wallet_why(why, why_cap, "AES-GCM failed in the HSM (%s)", hsm_strerror(hr));
        return WALLET_ERR_HSM;
    }
    if (hr != HSM_OK) {
        wallet_why(why, why_cap, "%s", DECRYPT_WHY);
        return WALLET_ERR_DECRYPT;
    }
    if (n != j->ciphertext_len) {
        OPENSSL_cleanse(out, n < cap ? n : cap);
        wallet_why(why, why_cap, "AES-GCM returned %zu of %zu bytes", n, j->ciphertext_len);
        return WALLET_ERR_HSM;
    }
    *out_len = n;
    return WALLET_OK;
}

static int
unseal(hsm_session *s, const struct wallet_samsung_ctx *ctx, const char *packet, size_t len,
       uint8_t *out, size_t cap, size_t *out_len, struct opened *opened, char *why, size_t why_cap)
{
    struct wallet_samsung_packet p = { 0 };
    struct wallet_samsung_jwe j = { 0 };
    struct wallet_samsung_header h = { 0 };
    const struct wallet_samsung_key *k;
    hsm_obj cek = HSM_OBJ_NONE;
    size_t n = 0;
    int r;

    if (s == NULL || ctx == NULL || out == NULL || out_len == NULL ||
        ctx->num_keys > WALLET_SAMSUNG_KEYS_MAX || (ctx->num_keys > 0 && ctx->keys == NULL)) {
        wallet_why(why, why_cap, "bad arguments");
        return WALLET_ERR_FORMAT;
    }
    for (size_t i = 0; i < ctx->num_keys; i++) {
        if (ctx->keys[i].kid == NULL || ctx->keys[i].key == NULL) {
            wallet_why(why, why_cap, "bad arguments");
            return WALLET_ERR_FORMAT;
        }
    }
    if ((r = wallet_samsung_packet_parse(&p, packet, len, why, why_cap)) != WALLET_OK)
        return r;
    if ((r = wallet_samsung_jwe_parse(&j, p.jwe, p.jwe_len, why, why_cap)) != WALLET_OK ||
        (r = wallet_samsung_header_parse(&h, j.header, j.header_len, why, why_cap)) != WALLET_OK)
        goto out;
    if ((k = key_for_kid(ctx, h.kid)) == NULL) {
        wallet_why(why, why_cap, "no merchant key has the packet's kid");
        r = WALLET_ERR_UNKNOWN_KEY;
        goto out;
    }
    if (j.ciphertext_len > cap) {
        wallet_why(why, why_cap, "plaintext longer than the buffer");
        r = WALLET_ERR_FORMAT;
        goto out;
    }
    if (opened != NULL &&
        (r = wallet_samsung_transaction_id(opened->transaction_id,
                                           sizeof(opened->transaction_id), p.jwe, p.jwe_len)) !=
            WALLET_OK) {
        wallet_why(why, why_cap, "SHA-256 failed");
        goto out;
    }
    if ((r = cek_unwrap(s, k->key, &h, &j, &cek, why, why_cap)) != WALLET_OK ||
        (r = content_decrypt(s, cek, &j, out, cap, &n, why, why_cap)) != WALLET_OK)
        goto out;
    *out_len = n;
    if (opened != NULL) {
        opened->alg = h.alg;
        opened->enc = h.enc;
    }
    r = WALLET_OK;
out:
    hsm_obj_destroy(s, cek);
    wallet_samsung_jwe_clear(&j);
    wallet_samsung_packet_clear(&p);
    return r;
}

int
wallet_samsung_unseal(hsm_session *s, const struct wallet_samsung_ctx *ctx, const char *packet,
                      size_t len, uint8_t *out, size_t cap, size_t *out_len, char *why,
                      size_t why_cap)
{
    return unseal(s, ctx, packet, len, out, cap, out_len, NULL, why, why_cap);
}

int
wallet_samsung_open(hsm_session *s, const struct wallet_samsung_ctx *ctx, const char *packet,
                    size_t len, struct wallet_card *out, char *why, size_t why_cap)
{
    struct opened o = { 0 };
    uint8_t *pt = NULL;
    size_t pt_len = 0;
    int r;

    if (out == NULL || packet == NULL || ctx == NULL) {
        wallet_why(why, why_cap, "bad arguments");
        return WALLET_ERR_FORMAT;
    }
    if (len > WALLET_PACKET_MAX) {
        wallet_why(why, why_cap, "packet longer than %u bytes", WALLET_PACKET_MAX);
        return WALLET_ERR_FORMAT;
    }
    /* A plaintext is never longer than its packet. */
    if ((pt = malloc(len > 0 ? len : 1)) == NULL)
        return WALLET_ERR_NO_MEMORY;
    if ((r = unseal(s, ctx, packet, len, pt, len, &pt_len, &o, why, why_cap)) != WALLET_OK)
        goto out;
    r = payload_parse(out, o.alg, o.enc, o.transaction_id, pt, pt_len, ctx->now_ms,
                      ctx->max_age_ms, why, why_cap);
out:
    OPENSSL_cleanse(pt, pt_len);
    free(pt);
    return r;
}
