/*
 * fsck.h - an offline consistency check of a store: every index entry points
 * to a record that agrees with it, every record has the index entries it
 * needs, every stored structure decodes, and the audit chain is whole.
 *
 * It needs no HSM and reads nothing secret: record headers, index keys and
 * the audit chain are in clear; ciphertexts are not opened (their integrity
 * is the GCM tag's, checked at every use). For operators after an incident
 * (`tokenvault-admin check`) and for the crash tests, where "0 lost, nothing
 * half-written" is the only pass.
 *
 * What each database must satisfy:
 *   cards         every record decodes; a card (not a device PAN) has its
 *                 fingerprint entry naming it (unless the fingerprint index
 *                 is being rebuilt after a key rotation: meta "fpk.rebuild")
 *   fingerprints  merchant 0x00 fingerprint -> token: the card exists, is
 *                 that merchant's, and carries that fingerprint
 *   customers     merchant 0x00 customer -> token (dup): the card exists, is
 *                 that merchant's, and links names the customer
 *   links         token -> customer (dup): the card exists and customers
 *                 names the token under its merchant
 *   mappings      forward entries decode, name an existing card of the
 *                 merchant, and have their reverse entry; reverse entries
 *                 name an existing card and a forward entry naming it
 *   mandates      token 0x00 id -> mandate: decodes, the card exists and
 *                 is the mandate's merchant's
 *   sessions, qr  every entry decodes
 *   audit         sequence numbers without a gap, each entry chained to the
 *                 one before (signatures need the public key: audit-verify)
 */
#ifndef TOKENVAULT_VAULT_FSCK_H
#define TOKENVAULT_VAULT_FSCK_H

#include <stdint.h>

#include "vault/store.h"

/* What was checked. */
struct fsck_counts {
    uint64_t cards, dpans, fingerprints, customers, links, mappings, mandates, sessions, qr;
    uint64_t audit_entries;
    uint64_t problems;
    int fpk_rebuilding; /* 1: fingerprint checks of records were skipped */
};

/* Called once per inconsistency: the database and a sentence naming the key
 * (tokens, merchants and customer numbers; never a PAN or any secret). */
typedef void (*fsck_problem_fn)(void *ctx, const char *db, const char *what);

/* vault_fsck checks the store read in |t| (a read transaction) and calls
 * |fn| for each inconsistency found (it goes on after one). Sets *out.
 * Returns 0 when the walk finished (the store is consistent when
 * out->problems is 0), or a negated status if the store could not be read. */
int vault_fsck(struct store_txn *t, fsck_problem_fn fn, void *ctx, struct fsck_counts *out);

#endif
