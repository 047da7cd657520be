/*
 * fuzz_wallet_samsung - the pure Samsung Pay parsers (no HSM): the packet as a
 * gateway hands it over (paymentCredential JSON or bare JWE), the JWE compact
 * serialization, its protected header, and a decrypted payment plaintext.
 * Every input parses or is refused with one of the parser's documented
 * errors; what parses is in range, or the target aborts.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "tests/fuzz/fuzz_check.h"
#include "vault/wallet/samsung.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* A clock and window around real utc values, so both the "expired" and the
 * "valid" paths run. */
#define FUZZ_NOW_MS 1614158346494ULL
#define FUZZ_MAX_AGE_MS (15ULL * 60 * 1000)

static void
check_header(const uint8_t *data, size_t size)
{
    struct wallet_samsung_header h;
    int r = wallet_samsung_header_parse(&h, data, size, NULL, 0);

    if (r == WALLET_ERR_FORMAT || r == WALLET_ERR_UNSUPPORTED || r == WALLET_ERR_NO_MEMORY)
        return;
    if (r != WALLET_OK || wallet_samsung_alg_name(h.alg) == NULL ||
        wallet_samsung_enc_name(h.enc) == NULL || !fuzz_printable(h.kid, WALLET_SAMSUNG_KID_MAX))
        abort();
    {
        char v[API_WALLET_VERSION_MAX + 1];

        if (wallet_samsung_version(v, sizeof(v), h.alg, h.enc) != WALLET_OK ||
            !fuzz_printable(v, API_WALLET_VERSION_MAX))
            abort();
    }
}

static void
check_jwe(const char *s, size_t len)
{
    struct wallet_samsung_jwe j = { 0 };
    char why[WALLET_WHY_MAX];
    int r = wallet_samsung_jwe_parse(&j, s, len, why, sizeof(why));

    if (r == WALLET_ERR_FORMAT || r == WALLET_ERR_NO_MEMORY)
        return;
    if (r != WALLET_OK || j.header_b64 != s || j.header_b64_len == 0 || j.header_b64_len >= len ||
        j.header_len == 0 || j.header_len > WALLET_SAMSUNG_HEADER_MAX ||
        j.encrypted_key_len != WALLET_SAMSUNG_ENC_KEY_LEN || j.iv_len != WALLET_SAMSUNG_IV_LEN ||
        j.tag_len != WALLET_SAMSUNG_TAG_LEN || j.sealed == NULL || j.ciphertext_len == 0 ||
        j.ciphertext_len > WALLET_SAMSUNG_CIPHERTEXT_MAX || j.ciphertext_len > len)
        abort();
    {
        /* Touch every byte, so a short buffer is caught. */
        volatile uint8_t x = 0;

        for (size_t i = 0; i < j.ciphertext_len + j.tag_len; i++)
            x ^= j.sealed[i];
        (void)x;
    }
    check_header(j.header, j.header_len);
    wallet_samsung_jwe_clear(&j);
}

static void
check_packet(const uint8_t *data, size_t size)
{
    struct wallet_samsung_packet p = { 0 };
    char why[WALLET_WHY_MAX];
    int r = wallet_samsung_packet_parse(&p, (const char *)data, size, why, sizeof(why));

    if (r == WALLET_ERR_FORMAT || r == WALLET_ERR_UNSUPPORTED || r == WALLET_ERR_NO_MEMORY)
        return;
    /* A bare JWE is the packet itself (its syntax is the JWE parser's to
     * check); 3DS.data is a JSON string, which cannot hold a NUL. */
    if (r != WALLET_OK || p.jwe == NULL || p.jwe_len == 0 || p.jwe_len > WALLET_PACKET_MAX ||
        (p.json == NULL && (p.jwe != (const char *)data || p.jwe_len != size)) ||
        (p.json != NULL && memchr(p.jwe, 0, p.jwe_len) != NULL))
        abort();
    check_jwe(p.jwe, p.jwe_len);
    {
        char id[API_TRANSACTION_ID_MAX + 1];

        if (wallet_samsung_transaction_id(id, sizeof(id), p.jwe, p.jwe_len) != WALLET_OK ||
            strlen(id) != WALLET_SAMSUNG_ID_LEN ||
            memcmp(id, WALLET_SAMSUNG_ID_PREFIX, sizeof(WALLET_SAMSUNG_ID_PREFIX) - 1) != 0)
            abort();
    }
    wallet_samsung_packet_clear(&p);
}

static void
check_payload(const uint8_t *data, size_t size)
{
    static const char jwe[] = "a.b.c.d.e";
    struct wallet_card c;
    char why[WALLET_WHY_MAX];
    int r = wallet_samsung_payload_parse(&c, WALLET_SAMSUNG_RSA1_5, WALLET_SAMSUNG_A128GCM, jwe,
                                         sizeof(jwe) - 1, data, size, FUZZ_NOW_MS,
                                         FUZZ_MAX_AGE_MS, why, sizeof(why));

    if (r == WALLET_ERR_FORMAT || r == WALLET_ERR_EXPIRED || r == WALLET_ERR_NO_MEMORY)
        return;
    if (r != WALLET_OK || c.wallet != API_WALLET_SAMSUNG_PAY ||
        strcmp(c.version, "RSA1_5/A128GCM") != 0 || !fuzz_digits(c.pan, API_PAN_MIN, API_PAN_MAX) ||
        c.exp_month < 1 || c.exp_month > 12 || c.exp_year < 2000 || c.exp_year > 2099 ||
        (c.auth_method != API_AUTH_PAN_ONLY && c.auth_method != API_AUTH_CRYPTOGRAM_3DS) ||
        (c.has_cryptogram != (c.auth_method == API_AUTH_CRYPTOGRAM_3DS)) ||
        (c.has_eci && !c.has_cryptogram) || (c.has_eci && !fuzz_digits(c.eci, 1, API_ECI_MAX)) ||
        (c.has_amount && c.amount > API_AMOUNT_MAX) ||
        (c.has_currency && strnlen(c.currency, 4) != 3) ||
        c.valid_until_ms < FUZZ_NOW_MS || c.valid_until_ms > FUZZ_NOW_MS + 2 * FUZZ_MAX_AGE_MS ||
        !fuzz_printable(c.transaction_id, API_TRANSACTION_ID_MAX))
        abort();
    wallet_card_wipe(&c);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* A copy of exactly |size| bytes, so reading past it is caught. */
    uint8_t *copy = malloc(size > 0 ? size : 1);

    if (copy == NULL)
        return 0;
    memcpy(copy, data, size);
    check_packet(copy, size);
    check_jwe((const char *)copy, size);
    check_header(copy, size);
    check_payload(copy, size);
    free(copy);
    return 0;
}
