/*
 * audit.h - the audit log: append-only entries in the store's audit
 * database, each holding the SHA-256 of the one before (a hash chain), and
 * every so often a checkpoint entry whose signature the HSM makes with the
 * audit key (vault-audit-sign, EC P-256), so the chain can be checked offline
 * with the exported public key. docs/AUDIT.md has the bytes.
 *
 * An entry is appended inside the write transaction of the operation it
 * records: the operation's changes and its audit entry commit together or
 * not at all. An operation whose audit entry cannot be written is refused
 * with AUDIT_UNAVAILABLE (fail closed, SECURITY.md rule 4).
 *
 * What an entry holds: time, client, operation, merchant, token, status,
 * request id and a short detail word (a reveal's purpose, a store's dedup
 * outcome). Never a PAN, holder, e-mail or any other request value.
 *
 * Threads: audit_append and audit_checkpoint run in the writer (they write);
 * audit_decode and audit_verify anywhere.
 */
#ifndef TOKENVAULT_VAULT_AUDIT_H
#define TOKENVAULT_VAULT_AUDIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "api/proto.h"
#include "hsm/hsm.h"
#include "vault/store.h"

#define AUDIT_VERSION 1u
#define AUDIT_HASH_LEN 32u
#define AUDIT_DETAIL_MAX 32u
/* An encoded entry is at most this long (the checkpoint's DER signature
 * included). */
#define AUDIT_ENTRY_MAX 512u
/* Defaults of [audit] checkpoint_entries / checkpoint_seconds. */
#define AUDIT_CHECKPOINT_ENTRIES_DEFAULT 1000u
#define AUDIT_CHECKPOINT_SECONDS_DEFAULT 300u

enum audit_type {
    AUDIT_EVENT = 1,      /* an operation, a denial, a key operation */
    AUDIT_CHECKPOINT = 2, /* signs the chain up to here */
};

/* What to record. Strings may be NULL (written empty); they are copied. */
struct audit_event {
    const char *event;    /* "request" for RPC operations, else e.g. "dek_generate" */
    const char *client;
    uint16_t opcode;      /* 0 when not an RPC operation */
    uint16_t status;      /* the answer's status */
    uint64_t request_id;
    const char *merchant;
    const char *token;
    const char *detail;   /* fixed word: purpose, dedup outcome; <= AUDIT_DETAIL_MAX */
};

/* A decoded entry (audit_decode). Strings point into the decoded bytes'
 * copy inside the struct. */
struct audit_entry {
    uint8_t type;
    uint64_t seq;
    uint64_t time_ms;
    uint8_t prev_hash[AUDIT_HASH_LEN];
    /* AUDIT_EVENT */
    uint16_t opcode, status;
    uint64_t request_id;
    char event[AUDIT_DETAIL_MAX + 1];
    char client[API_ID_MAX + 1];
    char merchant[API_ID_MAX + 1];
    char token[API_ID_MAX + 1];
    char detail[AUDIT_DETAIL_MAX + 1];
    /* AUDIT_CHECKPOINT */
    char key_label[HSM_LABEL_MAX + 1];
    uint8_t sig[HSM_ECDSA_SIG_MAX];
    size_t sig_len;
    size_t signed_len; /* bytes of the entry the signature covers (its prefix) */
};

struct vault_audit {
    hsm_key *sign_key;           /* vault-audit-sign */
    unsigned checkpoint_entries; /* a checkpoint after this many entries */
};

/* audit_append writes |e| as the next entry of the chain in |t| (a job's
 * nested transaction), then a checkpoint when checkpoint_entries events have
 * passed since the last one (signed with t->hsm; without a session the
 * checkpoint waits for the next append). Returns 0 or
 * -API_STATUS_AUDIT_UNAVAILABLE; the caller's job must then fail so nothing
 * of it commits. */
int audit_append(const struct vault_audit *a, struct store_txn *t, const struct audit_event *e);

/* audit_record appends |num| events in one write job through |s|'s writer
 * and waits for the commit: for events outside a request (start-up, unseal,
 * ceremonies). Never on the event loop. 0 or a negated status. */
int audit_record(const struct vault_audit *a, struct vault_store *s, const struct audit_event *events,
                 size_t num);

/* audit_checkpoint appends a checkpoint now, if any event came after the last
 * one (the timer's checkpoint). 0 or -API_STATUS_AUDIT_UNAVAILABLE. */
int audit_checkpoint(const struct vault_audit *a, struct store_txn *t);

/* Wall-clock time in unix milliseconds, as entries record it (also the
 * clock of DEK ages). */
uint64_t audit_now_ms(void);

/* audit_decode parses an entry. 0 or -API_STATUS_INTERNAL if malformed. */
int audit_decode(struct audit_entry *out, const uint8_t *data, size_t len);

/* audit_verify walks the whole audit database in |t|: sequence numbers count
 * up from 1 without a gap, each entry's prev_hash is the SHA-256 of the one
 * before, and each checkpoint's signature verifies under |spki| (the audit
 * key's DER SubjectPublicKeyInfo; NULL skips signatures). Sets the counts
 * (each may be NULL). 0, or -API_STATUS_SIGNATURE_INVALID with the failing
 * sequence number in *out_bad_seq, or -API_STATUS_INTERNAL for a malformed
 * entry. */
int audit_verify(struct store_txn *t, const uint8_t *spki, size_t spki_len, uint64_t *out_entries,
                 uint64_t *out_checkpoints, uint64_t *out_bad_seq);

#endif
