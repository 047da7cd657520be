/*
 * codec.h - the strict decoders every wallet format is read through: base64
 * (RFC 4648 section 4), base64url without padding (section 5, as JWS/JWE use
 * it), hex, and JSON (jansson with duplicate keys refused, bounded size and
 * nesting, no trailing data).
 *
 * Pure: no I/O, no HSM, no global state; safe from any thread. Errors are
 * WALLET_ERR_FORMAT (or WALLET_ERR_NO_MEMORY); outputs are written only on
 * success.
 */
#ifndef TOKENVAULT_VAULT_WALLET_CODEC_H
#define TOKENVAULT_VAULT_WALLET_CODEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "vault/wallet/wallet.h"

/* wallet_b64_decode decodes strict standard base64: length a multiple of 4,
 * padding only at the end, no whitespace, zero unused bits. |len| characters
 * at |b64| (need not be NUL-terminated). An empty input is refused. */
WALLET_WUR int wallet_b64_decode(uint8_t *out, size_t cap, size_t *out_len, const char *b64,
                                 size_t len);

/* wallet_b64url_decode decodes strict base64url without padding (RFC 7515
 * section 2): alphabet A-Z a-z 0-9 - _, no '=', a length that is not 1 mod
 * 4, zero unused bits. An empty input decodes to nothing (JWE allows empty
 * parts); callers that need bytes check *out_len. */
WALLET_WUR int wallet_b64url_decode(uint8_t *out, size_t cap, size_t *out_len, const char *s,
                                    size_t len);

/* wallet_hex_decode decodes an even number of hex digits (either case). An
 * empty input is refused. */
WALLET_WUR int wallet_hex_decode(uint8_t *out, size_t cap, size_t *out_len, const char *hex,
                                 size_t len);

/* wallet_json_load parses |len| bytes as one JSON value: at most |max_len|
 * bytes, nesting at most WALLET_JSON_DEPTH_MAX (checked by a scan before
 * jansson sees the text, so a hostile packet cannot make it recurse deep),
 * no NUL byte, duplicate object keys refused, nothing after the value but
 * JSON whitespace. The top value must be an object. The first call makes
 * jansson wipe every allocation it frees (process-wide), so parsed secrets
 * do not stay in the heap. On success *out is a new
 * reference (json_decref it); on WALLET_ERR_FORMAT a reason goes to |why|. */
WALLET_WUR int wallet_json_load(json_t **out, const char *json, size_t len, size_t max_len,
                                char *why, size_t why_cap);

/* wallet_json_str: the string value of |v| and its length, or NULL if |v| is
 * no string, is empty, or is longer than |max|. Borrowed from |v|. */
const char *wallet_json_str(const json_t *v, size_t max, size_t *out_len);

/* wallet_all_digits: whether the |len| bytes at |s| are all ASCII 0-9
 * (true for len 0; callers check the length). */
bool wallet_all_digits(const char *s, size_t len);

/* wallet_json_fields checks that object |obj| has no member outside the
 * NULL-terminated list |known| (NULL: any member allowed, for plaintexts
 * whose wallets add members over time), and every member of the
 * NULL-terminated list |required|. WALLET_ERR_FORMAT with the member's name in |why| otherwise.
 * |what| names the object in the reason ("header"). */
WALLET_WUR int wallet_json_fields(const json_t *obj, const char *what, const char *const *known,
                                  const char *const *required, char *why, size_t why_cap);

/* wallet_why writes a printf-style reason to |why| (cap bytes, may be 0),
 * replacing anything outside printable ASCII: reasons may quote a parser's
 * words and reach a terminal or a log. */
void wallet_why(char *why, size_t cap, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

#endif
