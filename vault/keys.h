/*
 * keys.h - the vault's keys as the service uses them: found in the HSM by
 * label at start (the KEK, the session MAC key, the audit key), and three
 * kinds that live wrapped under the KEK in the store's meta database and are
 * unwrapped into non-extractable session objects: the DEKs, the fingerprint
 * keys (FPK) and the session tag keys (STK).
 *
 * The FPK and STK are kept like the DEKs rather than as token keys because
 * SoftHSM 2.6 re-reads a token object's file before every operation that
 * uses it, which cost a fifth of the daemon's CPU on the sale-session path
 * and more on CARD_STORE's (BENCHMARKS.md); a session object is used from
 * memory, and the secret stays in the HSM either way.
 *
 * The STK signs sale sessions and tags QR payment requests (HMAC-SHA256).
 * Sessions and QR requests live minutes to days, and each record names the
 * STK version that made it, so a rotation needs no rebuild: older versions
 * stay loaded to check what they signed. The FPK keys the PAN fingerprints
 * of the dedup index; a rotation rebuilds the index under the new one (a
 * store indexed by an earlier build under the token key vault-fingerprint
 * keeps it until then). The token key vault-session-mac keeps the one use
 * whose results live for ever and cannot be remade: the e-mail fingerprints
 * of card mappings (and it checks sessions and QR requests stored before
 * STKs).
 *
 * The first start on an empty store generates DEK version 1 and FPK version
 * 1 in the HSM, stores them wrapped (with the KEK version and the KCV the
 * token computed) and audits them, all in one transaction; the first start
 * without an STK (a new store, or one from before STKs) does the same for
 * STK version 1. The KEK and the other long-term keys come from the key
 * ceremony (tokenvault-ceremony init); without them the service refuses to
 * start.
 *
 * Read-only after keys_load; thread-safe to read.
 */
#ifndef TOKENVAULT_VAULT_KEYS_H
#define TOKENVAULT_VAULT_KEYS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hsm/hsm.h"
#include "vault/audit.h"
#include "vault/store.h"

#define KEYS_KEK_BASE "vault-kek"
#define KEYS_DEK_BASE "vault-dek"
#define KEYS_FPK_LABEL "vault-fingerprint"
/* Fingerprint keys kept wrapped under the KEK (every FPK a store makes since
 * they exist): session objects "vault-fpk-v<N>". */
#define KEYS_FPK_WRAPPED_BASE "vault-fpk"
#define KEYS_AUDIT_LABEL "vault-audit-sign"
/* HMAC-SHA256 token key: mapping e-mail fingerprints; sale sessions and QR
 * requests stored before STKs (their key version 0). */
#define KEYS_SESSION_MAC_LABEL "vault-session-mac"
/* HMAC-SHA256 session objects "vault-stk-v<N>": sale-session signatures and
 * QR payment-request tags. */
#define KEYS_STK_BASE "vault-stk"
#define KEYS_STK_MAX 64u
/* DEK versions the service keeps loaded (current and retired ones that
 * records may still name). */
#define KEYS_DEK_MAX 64u
/* meta value of "dek.v<N>" and "stk.v<N>": u32 KEK version | wrapped key | KCV */
#define KEYS_WRAPPED_META_LEN (4u + HSM_WRAPPED_KEY_LEN + HSM_KCV_LEN)
#define KEYS_DEK_META_LEN KEYS_WRAPPED_META_LEN
#define KEYS_APPLIANCE_ID_LEN 32u /* hex of 16 random bytes */

struct vault_keys {
    hsm_key *kek;
    uint32_t kek_version;
    hsm_key *fpk;      /* current fingerprint key (atomic pointer: keys_fpk) */
    hsm_key *fpk_prev; /* the one before, while the index is being rebuilt; else NULL */
    uint32_t fpk_version;
    hsm_key *aud;
    hsm_key *smk;      /* vault-session-mac */
    hsm_key *dek[KEYS_DEK_MAX + 1]; /* by version; NULL when absent */
    uint32_t dek_current;
    hsm_key *stk[KEYS_STK_MAX + 1]; /* by version; NULL when absent */
    uint32_t stk_current;
    char appliance_id[KEYS_APPLIANCE_ID_LEN + 1];
};

/* keys_load finds the long-term keys (and makes the audit key |a|'s signing
 * key), creates DEK 1 and the appliance id on
 * a new store (through |s|'s writer, which must be running, audited with
 * |a|), and unwraps every DEK version the store names. Returns 0, or a negated
 * status with a one-line reason in |err|. */
int keys_load(struct vault_keys *out, hsm *h, struct vault_store *s,
              struct vault_audit *a, char *err, size_t err_len);

/* The version new records are sealed with. Any thread (the version moves
 * forward when keys_refresh loads a rotated DEK). */
uint32_t keys_dek_current(const struct vault_keys *k);

/* The newest KEK version (moves forward with keys_refresh). Any thread. */
uint32_t keys_kek_current(const struct vault_keys *k);

/* The fingerprint key (FPK) versions. A store keeps each version it made
 * wrapped under the KEK in meta ("fpk.v<N>": KEK version | wrapped key |
 * KCV), unwrapped at start into a session object "vault-fpk-v<N>", as the
 * DEKs are: a new store makes version 1 so at its first start, and every
 * rotation makes the next so. A store from before keeps using the token key
 * the init ceremony made, "vault-fingerprint" (v1; token rotations then
 * made "vault-fingerprint-v<N>"), until its next rotation moves the index
 * to a wrapped key. The store's meta names the current version
 * ("fpk.current", absent: 1) and, while the fingerprint index is rebuilt
 * under it, the version before ("fpk.rebuild"). keys_fpk returns the
 * current key and its version, and the previous key (or NULL) while a
 * rebuild runs; any thread. */
hsm_key *keys_fpk(const struct vault_keys *k, uint32_t *out_version, hsm_key **out_prev);

/* keys_fpk_label writes the label of FPK |version|: the session object's
 * when the store keeps it |wrapped|, else the token key's. */
int keys_fpk_label(char *out, size_t cap, uint32_t version, bool wrapped);

/* keys_fpk_rotate generates FPK version current+1 in the HSM, wrapped under
 * the newest KEK, and makes it current in |s|'s meta with the rebuild
 * marker and an audit entry, in one transaction. CONFLICT while a rebuild
 * is still running. */
int keys_fpk_rotate(hsm *h, struct vault_store *s, const struct vault_audit *a, const char *who,
                    uint32_t *out_version, char *err, size_t err_len);

/* keys_fpk_rebuilt, inside the write job that finished the rebuild: removes
 * the marker and audits it; keys_fpk_retire then drops the previous key
 * (any thread, after the commit). */
int keys_fpk_rebuilt(const struct vault_audit *a, struct store_txn *t, uint32_t version);
void keys_fpk_retire(struct vault_keys *k);

/* keys_kek_rotate generates KEK version newest+1 in the HSM (the KEK
 * template: wrap and unwrap only). It does not rewrap the DEKs or STKs: they
 * are unwrapped as non-extractable objects (the KEK's CKA_UNWRAP_TEMPLATE),
 * so none can ever be wrapped again, under a new KEK or any other key. A KEK
 * rotation is therefore completed by a DEK and an STK rotation
 * (keys_dek_rotate and keys_stk_rotate wrap the new keys under the newest
 * KEK) and the re-encryption that follows; once no record uses a DEK wrapped
 * under the old KEK, and the sessions and QR requests the old STK signed
 * have expired, that KEK protects nothing and is retired. 0 with
 * *out_version, or a negated status. */
int keys_kek_rotate(hsm_session *hs, uint32_t *out_version, char *err, size_t err_len);

/* keys_dek_rotate makes DEK version current+1 in the HSM, wrapped under the
 * newest KEK, and stores it as the current version in |s|'s meta with its
 * audit entry (event dek_rotate, client |who|), in one transaction through
 * |s|'s writer (which must run). Older versions are retired: records sealed
 * with them still open, new records use the new one. For the rotate
 * ceremony (beside a running service: it picks the version up with
 * keys_refresh) and for automatic rotation. 0 with *out_version, or a negated
 * status with a reason (CONFLICT when another rotation won the race). */
int keys_dek_rotate(hsm *h, struct vault_store *s, const struct vault_audit *a, const char *who,
                    uint32_t *out_version, char *err, size_t err_len);

/* keys_dek_usage_add adds |delta| records sealed to DEK |version|'s usage in
 * meta (inside a write job) and returns the totals: records sealed and the
 * time the version was made (unix ms; a version from before usage was kept
 * counts from |now_ms|). For automatic rotation. */
int keys_dek_usage_add(struct store_txn *t, uint32_t version, uint64_t delta, uint64_t now_ms,
                       uint64_t *out_sealed, uint64_t *out_created_ms);

/* keys_refresh loads the DEK and STK versions the store names beyond those
 * |k| holds, then moves k's current versions forward (*out_loaded: how many
 * DEK versions).
 * A worker thread; never two at once. */
int keys_refresh(struct vault_keys *k, hsm *h, struct vault_store *s, uint32_t *out_loaded, char *err,
                 size_t err_len);

/* The DEK of |version|, or NULL. */
hsm_key *keys_dek(const struct vault_keys *k, uint32_t version);

/* The STK version new sale sessions and QR requests are signed with. Any
 * thread (moves forward when keys_refresh loads a rotated STK). */
uint32_t keys_stk_current(const struct vault_keys *k);

/* The key that checks a session or QR request stored with key |version|:
 * the STK of that version, or vault-session-mac for version 0 (stored
 * before STKs); NULL when the service holds no such key. */
hsm_key *keys_stk(const struct vault_keys *k, uint32_t version);

/* keys_stk_rotate makes STK version current+1 in the HSM, wrapped under the
 * newest KEK, current in |s|'s meta with its audit entry (event stk_rotate,
 * client |who|), in one transaction through |s|'s writer (which must run).
 * Older versions keep checking what they signed. For the rotate ceremony
 * (--kind stk, and --kind kek); the service picks it up with keys_refresh.
 * 0 with *out_version, or a negated status with a reason (CONFLICT when
 * another rotation won the race). */
int keys_stk_rotate(hsm *h, struct vault_store *s, const struct vault_audit *a, const char *who,
                    uint32_t *out_version, char *err, size_t err_len);

/* Maps an HSM_ERR_* code to the status a request gets: HSM_UNAVAILABLE when
 * the token is gone (retry later), INTERNAL otherwise. */
int vault_hsm_status(int hsm_err);

#endif
