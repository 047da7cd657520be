/*
 * wallets.h - the wallet engine: every merchant's wallet keys and the trust
 * anchors, resolved once against the token, and one call that opens a packet
 * of any wallet for a merchant. tokenvaultd (WALLET_DECRYPT) and
 * `tokenvault-ceremony wallet-check` both open packets through it, so what
 * support staff check is exactly what the service does.
 *
 * What it resolves (vault_wallets_load), from the config's [merchant M]
 * sections and the token:
 *   - applepay_keys: each label's key (EC P-256 derive for EC_v1, RSA for
 *     RSA_v1) and the Apple certificate stored for it; publicKeyHash is
 *     SHA-256 of the certificate's SubjectPublicKeyInfo and the merchant id
 *     is the certificate's 1.2.840.113635.100.6.32 extension;
 *   - googlepay_keys and googlepay_recipient: the recipient keys, newest
 *     first as listed;
 *   - samsungpay_keys: label:kid pairs;
 *   - the trust anchors: every certificate in the apple-root set (Apple Root
 *     CA - G3) and every Google root key (sets google-<protocol>), read with
 *     hsm_wallet_obj_list: private token objects only a PIN holder could
 *     have written.
 * A configured label with no key, a key of the wrong kind, or an Apple key
 * without its certificate stops the load with a message naming the merchant
 * and the label: a merchant whose packets would all fail must stop the
 * service at start, not at the first payment.
 *
 * Verified Apple chains and Google intermediate keys are cached (vcache.h);
 * the caches are shared by every thread. Everything else is read-only after load: thread-safe to read,
 * with each thread passing its own HSM session.
 *
 * Errors: 0 or a negative WALLET_ERR_* (wallet/wallet.h) for the open
 * functions; load returns 0 or -1 with a one-line reason.
 */
#ifndef TOKENVAULT_VAULT_WALLETS_H
#define TOKENVAULT_VAULT_WALLETS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hsm/hsm.h"
#include "vault/config.h"
#include "vault/wallet/wallet.h"

struct vault_wallets;

/* vault_wallets_load resolves |cfg|'s wallet settings against the token
 * through |s|. 0 with *out set (free with vault_wallets_free), or -1 with a
 * one-line reason in |err|. A config with no wallet keys at all loads (an
 * empty engine: every packet is WALLET_ERR_UNKNOWN_KEY). */
int vault_wallets_load(struct vault_wallets **out, hsm_session *s, const struct vault_config *cfg,
                       char *err, size_t err_len);

/* References: load returns one; the service hands one to each request
 * (vault_wallets_ref) so a SIGHUP can put a new engine in place while
 * requests still use the old one. vault_wallets_free drops one and frees
 * the engine with the last. Both accept NULL; any thread. */
struct vault_wallets *vault_wallets_ref(struct vault_wallets *w);
void vault_wallets_free(struct vault_wallets *w);

/* [wallet] dpan_lifetime_seconds of the config the engine was loaded from. */
unsigned vault_wallets_dpan_lifetime(const struct vault_wallets *w);

/* How many merchants have at least one wallet configured, and how many
 * anchors were loaded: for the start-up log line. */
void vault_wallets_counts(const struct vault_wallets *w, size_t *merchants, size_t *apple_roots,
                          size_t *google_roots);

/* What the caller expects the packet to say; each check runs only when the
 * packet carries the field (Google packets carry neither). */
struct vault_wallet_expect {
    bool has_amount;
    uint64_t amount;                     /* minor units */
    bool has_currency;
    char currency[API_CURRENCY_LEN + 1]; /* ISO 4217 alphabetic */
};

/* vault_wallets_open opens |packet| as a packet of |wallet| (enum
 * api_wallet) for |merchant| at the verification time |now_ms| (epoch ms):
 * every check of the format (wallet/apple.h, google.h, samsung.h), then the
 * expectations in |expect| (may be NULL): WALLET_ERR_MISMATCH naming
 * "amount" or "currency" in |why|. The card goes to |out| (the caller wipes
 * it with wallet_card_wipe); nothing is written on failure.
 * WALLET_ERR_UNKNOWN_KEY when the merchant has no key for this wallet;
 * WALLET_ERR_UNSUPPORTED for an unknown |wallet|. */
WALLET_WUR int vault_wallets_open(struct vault_wallets *w, hsm_session *s, const char *merchant,
                                  int wallet, const char *packet, size_t len, uint64_t now_ms,
                                  const struct vault_wallet_expect *expect,
                                  struct wallet_card *out, char *why, size_t why_cap);

/* vault_wallets_detect guesses which wallet produced |packet| from its
 * shape alone (no check): an object with "version" EC_v1/RSA_v1 is Apple
 * Pay, one with "protocolVersion" Google Pay, one with "3DS" or a bare JWE
 * Samsung Pay. 0 when it cannot tell. For wallet-check, where support staff
 * hold a file and not the gateway's request. */
int vault_wallets_detect(const char *packet, size_t len);

/* The checks of each format in the order the modules run them, each with
 * the error it fails with, so a tool can say which passed before the first
 * failure (wallet-check). The list ends with { NULL, 0 }. */
struct vault_wallet_check {
    const char *name; /* "CMS signature", "chain to Apple Root CA - G3", ... */
    int err;          /* the WALLET_ERR_* this check fails with */
};
const struct vault_wallet_check *vault_wallets_checks(int wallet);

#endif
