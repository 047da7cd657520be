/*
 * cardnum.h - what the vault knows about card numbers without any key: the
 * Luhn check, the brand from the BIN ranges, the lengths each brand issues,
 * the BIN to disclose, expiry, and the two token shapes.
 *
 * Pure functions on NUL-terminated digit strings the codec has already held
 * to API_PAN_MIN..API_PAN_MAX ASCII digits. No I/O, no allocation;
 * thread-safe. The random bytes the token functions use come from the HSM RNG
 * (the caller draws them).
 */
#ifndef TOKENVAULT_VAULT_CARDNUM_H
#define TOKENVAULT_VAULT_CARDNUM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "api/proto.h"

/* Random bits in an opaque token (DESIGN.md: 128 bits from the HSM). */
#define CARDNUM_OPAQUE_RANDOM_LEN 16u
/* An opaque token: RFC 4648 base32, lower case, no padding: 26 characters. */
#define CARDNUM_OPAQUE_LEN 26u
/* Random bytes a PAN-shaped token may consume: one per middle digit, with
 * rejection of bytes >= 250 (so each digit is uniform), and room to spare. */
#define CARDNUM_SHAPED_RANDOM_LEN 64u
/* Digits of the PAN a PAN-shaped token keeps at each end. The BIN kept is
 * the 6-digit one, whatever length cardnum_bin_len discloses, to leave more
 * random digits in the middle. */
#define CARDNUM_SHAPED_HEAD 6u
#define CARDNUM_SHAPED_TAIL 4u

/* Whether |digits| (|len| ASCII digits) passes the Luhn (mod 10) check. */
bool cardnum_luhn(const char *digits, size_t len);

/* The brand of |pan| by its leading digits (longest matching range wins), or
 * API_BRAND_UNKNOWN. */
enum api_brand cardnum_brand(const char *pan);

/* cardnum_check: |pan| is a card number the vault accepts: 12..19 digits,
 * the Luhn check, and a length its brand issues (Visa 13, 16 or 19; Amex 15;
 * Mastercard 16; ...). Returns 0 with the brand, or -API_STATUS_CARD_INVALID. */
int cardnum_check(const char *pan, enum api_brand *out_brand);

/* Digits of the BIN that may be shown beside the last 4 (PCI DSS 3.4.1): the
 * first 8 of a PAN of 16 digits or more, the first 6 of a shorter one. */
size_t cardnum_bin_len(size_t pan_len);

/* Whether expiry |month|/|year| has passed at |now|: a card is valid through
 * the last day of its expiry month, so only an earlier month (UTC) is past. */
bool cardnum_expired(unsigned month, unsigned year, time_t now);

/* cardnum_token_opaque writes the opaque token of |random| into |out|
 * (cap > CARDNUM_OPAQUE_LEN). Returns 0 or -API_STATUS_INTERNAL. */
int cardnum_token_opaque(char *out, size_t cap, const uint8_t random[CARDNUM_OPAQUE_RANDOM_LEN]);

/* cardnum_token_pan_shaped writes a token as long as |pan|, with its first
 * CARDNUM_SHAPED_HEAD and last CARDNUM_SHAPED_TAIL digits, the middle digits
 * drawn from |random|, and failing the Luhn check (one middle digit is
 * changed if the draw passes it), so a token can never be taken for a card.
 * Returns 0, or -API_STATUS_INTERNAL when |random| ran out (vanishingly
 * unlikely: it needs over 50 rejected bytes) or |out| is too small. */
int cardnum_token_pan_shaped(char *out, size_t cap, const char *pan,
                             const uint8_t random[CARDNUM_SHAPED_RANDOM_LEN]);

#endif
