/*
 * record.h - a card record as it lies in the cards database: a header in
 * clear (what LIST and GET answer without the HSM) and the AES-256-GCM
 * ciphertext of the secrets (PAN, holder, e-mail) under a DEK.
 *
 * The GCM additional data binds the ciphertext to its place:
 *   u8 RECORD_VERSION | u8 kind | u8 len | merchant | u8 len | token | u32 DEK version
 * so a ciphertext copied into another record (another token, merchant or
 * kind) or labelled with another DEK version fails the tag check in the HSM.
 * The header itself is not covered by the tag: it holds nothing secret, and
 * what a forged header could change (expiry, active, needCVC) is what the
 * store role changes through CARD_UPDATE anyway; SECURITY.md says so.
 *
 * Records are read back through the cursor reader (api/reader.h) and every
 * field is checked; record_decode has a fuzz target.
 */
#ifndef TOKENVAULT_VAULT_RECORD_H
#define TOKENVAULT_VAULT_RECORD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "api/proto.h"
#include "api/writer.h"
#include "hsm/hsm.h"

/* Layout version of a record; a record of another version is refused. */
#define RECORD_VERSION 1u
#define RECORD_FINGERPRINT_LEN HSM_HMAC_SHA256_LEN
/* The secrets in clear: u8 len + PAN, u8 len + holder, u8 len + e-mail. */
#define RECORD_SECRET_MAX (3u + API_PAN_MAX + API_HOLDER_MAX + API_EMAIL_MAX)
#define RECORD_CT_MAX (RECORD_SECRET_MAX + HSM_GCM_TAG_LEN)
/* The largest encoded record: the header's fixed part, its strings, the
 * ciphertext. Checked by a test against what record_encode writes. */
#define RECORD_MAX 1024u

#define RECORD_F_ACTIVE 0x01u
#define RECORD_F_NEED_CVC 0x02u
#define RECORD_F_CONSENT 0x04u

struct card_record {
    uint8_t kind;         /* enum api_card_kind */
    uint8_t flags;        /* RECORD_F_* */
    uint8_t verification; /* enum api_verification */
    uint8_t brand;        /* enum api_brand */
    uint8_t exp_month;
    uint16_t exp_year;
    uint64_t created_at;  /* unix seconds */
    uint64_t expires_at;  /* unix seconds; 0: does not expire */
    char bin[API_BIN_MAX + 1];
    char last4[API_LAST4_LEN + 1];
    char merchant[API_ID_MAX + 1];
    char initial_txn_id[API_ID_MAX + 1]; /* "" when none */
    uint8_t fingerprint[RECORD_FINGERPRINT_LEN]; /* the fingerprints key, to delete it */
    uint32_t dek_version;
    uint8_t iv[HSM_GCM_IV_LEN];
    size_t ct_len;
    uint8_t ct[RECORD_CT_MAX];
};

/* The secrets of a card. Wipe with record_secret_wipe. */
struct card_secret {
    char pan[API_PAN_MAX + 1];
    char holder[API_HOLDER_MAX + 1]; /* "" when none */
    char email[API_EMAIL_MAX + 1];   /* "" when none */
};

void record_secret_wipe(struct card_secret *s);

/* record_encode appends the record's bytes to |w|. 0 or the writer's error. */
int record_encode(struct api_writer *w, const struct card_record *r);

/* record_decode parses |len| bytes at |data| into |out| (zeroed first).
 * Returns 0 or -API_STATUS_INTERNAL for anything malformed: a wrong version,
 * a bad length or value, a NUL inside a string, trailing bytes. */
int record_decode(struct card_record *out, const uint8_t *data, size_t len);

/* record_seal encrypts |sec| under |dek| (version |dek_version|) for the
 * record of |token|: sets r->dek_version, r->iv (from the HSM RNG), r->ct.
 * r->kind and r->merchant must be set. Returns 0 or a negated status
 * (HSM_UNAVAILABLE when the token is gone, INTERNAL otherwise). */
int record_seal(hsm_session *s, hsm_key *dek, uint32_t dek_version, const char *token,
                struct card_record *r, const struct card_secret *sec);

/* record_open decrypts the secrets of |r|, the record of |token|, with |dek|
 * (the key of r->dek_version). -API_STATUS_INTERNAL when the tag does not
 * verify (the record was altered or moved) or the plaintext is malformed;
 * |out| is wiped then. */
int record_open(hsm_session *s, hsm_key *dek, const char *token, const struct card_record *r,
                struct card_secret *out);

#endif
