/*
 * vcache.h - verified results, remembered: a small table of 32-byte ids
 * (a hash of what was verified), each with the time window in which the
 * verification stays true. Apple Pay remembers certificate chains (the id
 * hashes leaf and intermediate; the window is where all three certificates
 * are valid); Google Pay remembers intermediate signing keys (the id is the
 * SHA-256 of the bytes Google's root signed; the window ends when the root
 * that verified them expires). So the steady state costs one signature check
 * per packet instead of two or four.
 *
 * Only a verification that passed is remembered; a miss means "verify", never
 * "refuse". The table is small and replaced round-robin: wallets change these
 * chains and keys every few days at most.
 *
 * Thread-safe: one mutex; shared by every worker.
 */
#ifndef TOKENVAULT_VAULT_WALLET_VCACHE_H
#define TOKENVAULT_VAULT_WALLET_VCACHE_H

#include <stdbool.h>
#include <stdint.h>

#include "vault/wallet/wallet.h"

#define WALLET_VCACHE_ID_LEN 32
#define WALLET_VCACHE_SLOTS 16

struct wallet_vcache;

/* WALLET_OK or WALLET_ERR_NO_MEMORY. */
WALLET_WUR int wallet_vcache_new(struct wallet_vcache **out);

/* Accepts NULL. */
void wallet_vcache_free(struct wallet_vcache *c);

/* Whether |id| was verified and |now| is inside its window [from, until]
 * (any unit, as long as the caller is consistent). False for a NULL cache. */
bool wallet_vcache_hit(struct wallet_vcache *c, const uint8_t id[WALLET_VCACHE_ID_LEN],
                       int64_t now);

/* Remembers |id| as verified for [from, until]. No-op for a NULL cache. */
void wallet_vcache_put(struct wallet_vcache *c, const uint8_t id[WALLET_VCACHE_ID_LEN],
                       int64_t from, int64_t until);

#endif
