/*
 * fuzz_wallet_google - the pure Google Pay parsers (no HSM): the token as a
 * gateway hands it over, the signedKey and signedMessage strings inside it,
 * the signed-bytes builder, and a decrypted payment message. Every input
 * parses or is refused with one of the parser's documented errors; what
 * parses is in range, or the target aborts.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "tests/fuzz/fuzz_check.h"
#include "vault/wallet/google.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* A clock inside the range of real messageExpiration values, so both the
 * "expired" and the "valid" paths run. */
#define FUZZ_NOW_MS 1645500000000ULL

static void
check_signed_key(const char *s, size_t len)
{
    struct wallet_google_signed_key k;
    int r = wallet_google_signed_key_parse(&k, s, len, NULL, 0);

    if (r == WALLET_ERR_FORMAT || r == WALLET_ERR_NO_MEMORY)
        return;
    if (r != WALLET_OK || k.spki_len == 0 || k.spki_len > WALLET_SPKI_MAX || k.expiration_ms == 0 ||
        k.expiration_ms > WALLET_EXPIRATION_MAX_MS)
        abort();
}

static void
check_sealed(const char *s, size_t len)
{
    struct wallet_google_sealed m = { 0 };
    char why[WALLET_WHY_MAX];
    int r = wallet_google_sealed_parse(&m, s, len, why, sizeof(why));

    if (r == WALLET_ERR_FORMAT || r == WALLET_ERR_NO_MEMORY)
        return;
    if (r != WALLET_OK || m.ephemeral[0] != 0x04 || m.ciphertext == NULL || m.ciphertext_len == 0 ||
        m.ciphertext_len > WALLET_GOOGLE_CIPHERTEXT_MAX || m.ciphertext_len > len)
        abort();
    /* Touch every byte, so a short buffer is caught. */
    {
        volatile uint8_t x = 0;

        for (size_t i = 0; i < m.ciphertext_len; i++)
            x ^= m.ciphertext[i];
        (void)x;
    }
    wallet_google_sealed_clear(&m);
}

static void
check_token(const uint8_t *data, size_t size)
{
    struct wallet_google_token t = { 0 };
    char why[WALLET_WHY_MAX];
    int r = wallet_google_token_parse(&t, (const char *)data, size, why, sizeof(why));

    if (r == WALLET_ERR_FORMAT || r == WALLET_ERR_UNSUPPORTED || r == WALLET_ERR_NO_MEMORY)
        return;
    if (r != WALLET_OK || wallet_google_protocol_name(t.protocol) == NULL ||
        t.signed_message == NULL || t.signed_message_len == 0 || t.signed_message_len > size ||
        strlen(t.signed_message) != t.signed_message_len || t.signature.len == 0 ||
        t.signature.len > WALLET_GOOGLE_SIG_MAX)
        abort();
    if (t.protocol == WALLET_GOOGLE_ECV1) {
        if (t.signed_key != NULL || t.num_key_sigs != 0)
            abort();
    } else {
        if (t.signed_key == NULL || t.signed_key_len == 0 ||
            t.signed_key_len > WALLET_GOOGLE_SIGNED_KEY_MAX || t.num_key_sigs == 0 ||
            t.num_key_sigs > WALLET_GOOGLE_SIGNATURES_MAX)
            abort();
        for (size_t i = 0; i < t.num_key_sigs; i++) {
            if (t.key_sigs[i].len == 0 || t.key_sigs[i].len > WALLET_GOOGLE_SIG_MAX)
                abort();
        }
        check_signed_key(t.signed_key, t.signed_key_len);
    }
    if (t.protocol != WALLET_GOOGLE_ECV2_SIGNING_ONLY)
        check_sealed(t.signed_message, t.signed_message_len);
    {
        /* The signed bytes: exactly 4 bytes of length per part. */
        static uint8_t buf[WALLET_GOOGLE_SIGNED_BYTES_MAX];
        const char *proto = wallet_google_protocol_name(t.protocol);
        const char *parts[] = { "Google", "merchant:1", proto, t.signed_message };
        const size_t lens[] = { 6, 10, strlen(proto), t.signed_message_len };
        size_t n = 0;

        if (wallet_google_signed_bytes(buf, sizeof(buf), &n, parts, lens, 4) != WALLET_OK ||
            n != 16 + 6 + 10 + lens[2] + lens[3] || buf[10] != 10 || buf[11] != 0 ||
            memcmp(buf + n - lens[3], t.signed_message, lens[3]) != 0)
            abort();
    }
    wallet_google_token_clear(&t);
}

static void
check_message(const uint8_t *data, size_t size)
{
    struct wallet_card c;
    char why[WALLET_WHY_MAX];
    int r = wallet_google_message_parse(&c, WALLET_GOOGLE_ECV2, data, size, FUZZ_NOW_MS, why,
                                        sizeof(why));

    if (r == WALLET_ERR_FORMAT || r == WALLET_ERR_UNSUPPORTED || r == WALLET_ERR_EXPIRED ||
        r == WALLET_ERR_NO_MEMORY)
        return;
    if (r != WALLET_OK || c.wallet != API_WALLET_GOOGLE_PAY || strcmp(c.version, "ECv2") != 0 ||
        !fuzz_digits(c.pan, API_PAN_MIN, API_PAN_MAX) || c.exp_month < 1 || c.exp_month > 12 ||
        c.exp_year < 1000 || c.exp_year > 9999 ||
        (c.auth_method != API_AUTH_PAN_ONLY && c.auth_method != API_AUTH_CRYPTOGRAM_3DS) ||
        ((c.has_cryptogram || c.has_eci) && c.auth_method != API_AUTH_CRYPTOGRAM_3DS) ||
        (c.has_eci && !fuzz_digits(c.eci, 1, API_ECI_MAX)) ||
        (c.has_cryptogram && strnlen(c.cryptogram, API_CRYPTOGRAM_MAX + 1) == 0) ||
        c.valid_until_ms <= FUZZ_NOW_MS || c.valid_until_ms > WALLET_EXPIRATION_MAX_MS ||
        c.has_amount || c.has_currency || !fuzz_printable(c.transaction_id, API_TRANSACTION_ID_MAX))
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
    check_token(copy, size);
    check_signed_key((const char *)copy, size);
    check_sealed((const char *)copy, size);
    check_message(copy, size);
    free(copy);
    return 0;
}
