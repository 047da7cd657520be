/*
 * wallet_check.h - `tokenvault-ceremony wallet-check`: support staff open a
 * disputed or rejected wallet packet with the service's own wallet engine
 * (vault/wallets.h) on the HSM, at a verification time they choose, and see
 * which check passed and which failed; on success the card, masked (BIN and
 * last 4, never the PAN, holder or cryptogram).
 *
 * It decrypts a card packet, so it always runs as a recorded ceremony (a
 * signed transcript; with --store, an audit-log entry): main.c's table marks
 * it so. The transcript records the merchant, the packet's SHA-256, the
 * wallet, the verification time and the result.
 */
#ifndef TOKENVAULT_TOOLS_CEREMONY_WALLET_CHECK_H
#define TOKENVAULT_TOOLS_CEREMONY_WALLET_CHECK_H

#include "tools/ceremony/ceremony.h"

/* The options only wallet-check takes (main.c parses them). */
struct wallet_check_opts {
    const char *config;   /* --config FILE: tokenvaultd's config (vault_config_load) */
    const char *packet;   /* --packet FILE: the packet as the gateway sent it */
    const char *merchant; /* --merchant M */
    const char *wallet;   /* --wallet apple_pay|google_pay|samsung_pay; NULL: detect */
    const char *at;       /* --at TIME: RFC 3339 UTC or epoch ms; NULL: now */
    int json;             /* --json: one JSON object instead of text */
};

/* cmd_wallet_check runs the check with the logged-in session |s|; the HSM
 * is named by |o| like every ceremony. Returns EXIT_OK when the packet
 * opens, EXIT_FAIL when a check fails (or a file or the config cannot be
 * used), EXIT_USAGE for a bad command line or a packet whose wallet cannot
 * be told, EXIT_NOT_FOUND for a merchant the config does not name. */
int cmd_wallet_check(hsm_session *s, const struct ceremony_opts *o,
                     const struct wallet_check_opts *w);

/* wallet_check_parse_time reads --at: RFC 3339 in UTC
 * ("2021-09-01T19:03:06Z", "2021-09-01T19:03:06.250Z"; fractions past
 * milliseconds are cut) or epoch milliseconds (digits only), into *out_ms.
 * 0, or -1 for anything else (another offset than Z, a field out of range,
 * a time before 1970 or after WALLET_EXPIRATION_MAX_MS). */
int wallet_check_parse_time(const char *text, uint64_t *out_ms);

#endif
