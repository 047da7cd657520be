/*
 * fuzz_wallet_apple - Apple Pay tokens as a gateway hands them over, and the
 * decrypted payment data: every input parses or is refused with a parser's
 * error; what parses is in range. The first byte picks the parser.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "vault/wallet/apple.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
check_packet(const uint8_t *data, size_t size)
{
    struct wallet_apple_packet p;
    char why[WALLET_WHY_MAX];
    int r = apple_packet_parse(&p, (const char *)data, size, why, sizeof(why));

    if (r == WALLET_ERR_FORMAT || r == WALLET_ERR_UNSUPPORTED || r == WALLET_ERR_NO_MEMORY)
        return;
    if (r != WALLET_OK)
        abort();
    /* The signed bytes are exactly the four fields. */
    if (p.txid_len == 0 || p.txid_len > WALLET_APPLE_TXID_MAX || p.data_len <= 16 ||
        p.key_field_len == 0 || p.key_field_len > WALLET_APPLE_KEY_FIELD_MAX ||
        p.sig_len == 0 || p.sig_len > WALLET_APPLE_SIG_MAX ||
        p.signed_len != p.key_field_len + p.data_len + p.txid_len +
                            (p.has_app_data ? WALLET_APPLE_HASH_LEN : 0) ||
        memcmp(p.signed_bytes, p.key_field, p.key_field_len) != 0 ||
        strlen(p.txid_hex) != 2 * p.txid_len)
        abort();
    apple_packet_free(&p);
}

static void
check_plain(const uint8_t *data, size_t size)
{
    struct wallet_card c;
    char why[WALLET_WHY_MAX];
    int r = apple_plain_parse(&c, data, size, why, sizeof(why));

    if (r == WALLET_ERR_FORMAT || r == WALLET_ERR_UNSUPPORTED || r == WALLET_ERR_NO_MEMORY)
        return;
    if (r != WALLET_OK || strlen(c.pan) < 12 || strlen(c.pan) > 19 || c.exp_month < 1 ||
        c.exp_month > 12 || c.exp_year < 2000 || c.exp_year > 2099 || strlen(c.currency) != 3 ||
        c.amount > API_AMOUNT_MAX || !c.has_cryptogram || c.auth_method != API_AUTH_CRYPTOGRAM_3DS)
        abort();
    wallet_card_wipe(&c);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    if (data[0] & 1)
        check_plain(data + 1, size - 1);
    else
        check_packet(data + 1, size - 1);
    return 0;
}
