/*
 * cardnum.c - card number rules. The BIN ranges are the networks' published
 * IIN ranges (ISO/IEC 7812), as the payment processors list them.
 */
#include "vault/cardnum.h"

#include <string.h>

/* Bit n set: the brand issues n-digit PANs. */
#define LEN(n) (1u << (n))
#define LEN_RANGE(a, b) (((1u << ((b) + 1)) - 1) & ~((1u << (a)) - 1))

/* One IIN range: PANs whose first |digits| digits, read as a number, lie in
 * [lo, hi]. */
struct iin_range {
    uint32_t lo, hi;
    uint8_t digits;
    enum api_brand brand;
    uint32_t lengths;
};

static const struct iin_range ranges[] = {
    {4, 4, 1, API_BRAND_VISA, LEN(13) | LEN(16) | LEN(19)},
    {51, 55, 2, API_BRAND_MASTERCARD, LEN(16)},
    {2221, 2720, 4, API_BRAND_MASTERCARD, LEN(16)},
    {34, 34, 2, API_BRAND_AMEX, LEN(15)},
    {37, 37, 2, API_BRAND_AMEX, LEN(15)},
    {6011, 6011, 4, API_BRAND_DISCOVER, LEN_RANGE(16, 19)},
    {644, 649, 3, API_BRAND_DISCOVER, LEN_RANGE(16, 19)},
    {65, 65, 2, API_BRAND_DISCOVER, LEN_RANGE(16, 19)},
    {3528, 3589, 4, API_BRAND_JCB, LEN_RANGE(16, 19)},
    /* 622126-622925 are UnionPay cards that Discover also accepts: UnionPay
     * issues them, so they are UnionPay here. */
    {62, 62, 2, API_BRAND_UNIONPAY, LEN_RANGE(16, 19)},
    {300, 305, 3, API_BRAND_DINERS, LEN_RANGE(14, 19)},
    {3095, 3095, 4, API_BRAND_DINERS, LEN_RANGE(14, 19)},
    {36, 36, 2, API_BRAND_DINERS, LEN_RANGE(14, 19)},
    {38, 39, 2, API_BRAND_DINERS, LEN_RANGE(14, 19)},
    {50, 50, 2, API_BRAND_MAESTRO, LEN_RANGE(12, 19)},
    {56, 58, 2, API_BRAND_MAESTRO, LEN_RANGE(12, 19)},
    {63, 63, 2, API_BRAND_MAESTRO, LEN_RANGE(12, 19)},
    {67, 67, 2, API_BRAND_MAESTRO, LEN_RANGE(12, 19)},
    {2200, 2204, 4, API_BRAND_MIR, LEN_RANGE(16, 19)},
};

/* A PAN of a brand we do not know: any length the codec allows. */
#define UNKNOWN_LENGTHS LEN_RANGE(12, 19)

bool
cardnum_luhn(const char *digits, size_t len)
{
    unsigned sum = 0;
    bool dbl = false;

    for (size_t i = len; i-- > 0;) {
        unsigned d = (unsigned)(digits[i] - '0');

        if (d > 9)
            return false;
        if (dbl) {
            d *= 2;
            if (d > 9)
                d -= 9;
        }
        sum += d;
        dbl = !dbl;
    }
    return len > 0 && sum % 10 == 0;
}

static const struct iin_range *
range_of(const char *pan)
{
    const struct iin_range *best = NULL;
    size_t len = strlen(pan);

    for (size_t i = 0; i < sizeof(ranges) / sizeof(ranges[0]); i++) {
        uint32_t v = 0;

        if (ranges[i].digits > len)
            continue;
        for (unsigned k = 0; k < ranges[i].digits; k++)
            v = v * 10 + (uint32_t)(pan[k] - '0');
        if (v >= ranges[i].lo && v <= ranges[i].hi &&
            (best == NULL || ranges[i].digits > best->digits))
            best = &ranges[i];
    }
    return best;
}

enum api_brand
cardnum_brand(const char *pan)
{
    const struct iin_range *r = range_of(pan);

    return r != NULL ? r->brand : API_BRAND_UNKNOWN;
}

int
cardnum_check(const char *pan, enum api_brand *out_brand)
{
    const struct iin_range *r;
    size_t len = strlen(pan);

    if (len < API_PAN_MIN || len > API_PAN_MAX || !cardnum_luhn(pan, len))
        return -API_STATUS_CARD_INVALID;
    r = range_of(pan);
    if ((((r != NULL) ? r->lengths : UNKNOWN_LENGTHS) & LEN(len)) == 0)
        return -API_STATUS_CARD_INVALID;
    *out_brand = r != NULL ? r->brand : API_BRAND_UNKNOWN;
    return 0;
}

size_t
cardnum_bin_len(size_t pan_len)
{
    return pan_len >= 16 ? 8 : 6;
}

bool
cardnum_expired(unsigned month, unsigned year, time_t now)
{
    struct tm tm;

    if (gmtime_r(&now, &tm) == NULL)
        return true;
    return year * 12u + month < (unsigned)(tm.tm_year + 1900) * 12u + (unsigned)(tm.tm_mon + 1);
}

int
cardnum_token_opaque(char *out, size_t cap, const uint8_t random[CARDNUM_OPAQUE_RANDOM_LEN])
{
    static const char alphabet[] = "abcdefghijklmnopqrstuvwxyz234567";
    unsigned acc = 0, bits = 0;
    size_t n = 0;

    if (cap <= CARDNUM_OPAQUE_LEN)
        return -API_STATUS_INTERNAL;
    for (size_t i = 0; i < CARDNUM_OPAQUE_RANDOM_LEN; i++) {
        acc = (acc << 8) | random[i];
        bits += 8;
        while (bits >= 5) {
            out[n++] = alphabet[(acc >> (bits - 5)) & 31u];
            bits -= 5;
        }
        acc &= (1u << bits) - 1;
    }
    if (bits > 0)
        out[n++] = alphabet[(acc << (5 - bits)) & 31u];
    out[n] = '\0';
    return n == CARDNUM_OPAQUE_LEN ? 0 : -API_STATUS_INTERNAL;
}

/* Bytes 250..255 would make digit 0..5 likelier than 6..9. */
#define UNBIASED_BYTE_LIMIT 250u

int
cardnum_token_pan_shaped(char *out, size_t cap, const char *pan,
                         const uint8_t random[CARDNUM_SHAPED_RANDOM_LEN])
{
    size_t len = strlen(pan), used = 0, last_mid;

    if (len < API_PAN_MIN || len >= cap || len <= CARDNUM_SHAPED_HEAD + CARDNUM_SHAPED_TAIL)
        return -API_STATUS_INTERNAL;
    memcpy(out, pan, len + 1);
    for (size_t i = CARDNUM_SHAPED_HEAD; i < len - CARDNUM_SHAPED_TAIL; i++) {
        while (used < CARDNUM_SHAPED_RANDOM_LEN && random[used] >= UNBIASED_BYTE_LIMIT)
            used++;
        if (used == CARDNUM_SHAPED_RANDOM_LEN)
            return -API_STATUS_INTERNAL;
        out[i] = (char)('0' + random[used++] % 10u);
    }
    /* Changing one digit by one always changes the Luhn sum mod 10 (by 1 or,
     * for a doubled position, by 2 or 3), so the result fails the check. */
    if (cardnum_luhn(out, len)) {
        last_mid = len - CARDNUM_SHAPED_TAIL - 1;
        out[last_mid] = (char)('0' + (unsigned)(out[last_mid] - '0' + 1) % 10u);
    }
    return 0;
}
