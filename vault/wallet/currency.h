/*
 * currency.h - ISO 4217 numeric codes to alphabetic ones. Apple Pay gives
 * the currency as the numeric code ("840"); the RPC speaks the alphabetic
 * code ("USD"). Pure, constant data; safe from any thread.
 */
#ifndef TOKENVAULT_VAULT_WALLET_CURRENCY_H
#define TOKENVAULT_VAULT_WALLET_CURRENCY_H

/* wallet_currency_alpha: the alphabetic code of the three-digit numeric code
 * |numeric| (a NUL-terminated string), or NULL for a code that is not an
 * active ISO 4217 currency. Borrowed, static. */
const char *wallet_currency_alpha(const char *numeric);

#endif
