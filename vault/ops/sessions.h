/*
 * sessions.h - mobile sale sessions and card mappings (seed 002;
 * docs/PROTOCOL.md SESSION_INIT, SESSION_CHECK, CARD_MAP, MAP_RESOLVE): what
 * they store, how it is encoded, and the hooks other parts of the service
 * call (the sweeper, CARD_DELETE, the dispatcher).
 *
 * Sessions (STORE_DB_SESSIONS): key = the nonce (API_NONCE_MAX bytes from
 * the HSM RNG), value = a sale_session. A session is written once by
 * SESSION_INIT, changed once by the SESSION_CHECK that consumes it (state
 * OPEN -> CONSUMED, nothing else), and deleted by the sweeper once expired
 * (SWEEP_SESSION, scheduled in the transaction that creates it). A consumed
 * session stays until then, so a replay inside the lifetime is REPLAYED and
 * one after it EXPIRED or NOT_FOUND: never OK. The signature is not stored:
 * it is recomputed in the HSM over the stored fields at every check, so the
 * store holds nothing that would let its reader pass a check.
 *
 * Mappings (STORE_DB_MAPPINGS) hold two kinds of key:
 *   merchant 0x00 clientCardId        -> card_mapping (the forward entry)
 *   0x00 token 0x00 clientCardId      -> ""           (the reverse index)
 * Merchant ids are printable ASCII (0x21..0x7E), so a forward key never
 * starts with 0x00 and the two kinds cannot collide. The reverse index lets
 * CARD_DELETE find a card's mappings without scanning the merchant's; a
 * token carries at most OPS_MAPPINGS_PER_TOKEN_MAX of them, which bounds
 * what one delete does in the writer.
 *
 * A session's signature is made and checked in the HSM with the session tag
 * key (STK) version the session names (vault/keys.h): the current one at
 * SESSION_INIT; vault-session-mac for a session stored before STKs.
 *
 * The e-mail a mapping is bound to is kept only as
 *   HMAC-SHA256(vault-session-mac, str8 "tokenvault/map-email/v1" |
 *               str8 merchant | str8 clientCardId | str8 e-mail)
 * computed in the HSM. Why that token key and not the fingerprint key
 * (vault-fingerprint) or an STK: the fingerprint key's rotation rebuilds its
 * index by opening every card record and fingerprinting the PAN again, and
 * an STK version may go with its KEK once what it signed has expired; an
 * e-mail is kept nowhere, so a mapping's fingerprint could never be made
 * again. The inputs of the uses of one key start with different labels, so
 * a fingerprint can never stand for a session signature or the reverse.
 * Binding the merchant and clientCardId into the input means two mappings
 * of one consumer do not show, in the store, that they share an e-mail.
 *
 * Threads: the codecs anywhere; the hooks in the writer (inside its
 * transaction) or, for ops_session_configure, on the loop.
 */
#ifndef TOKENVAULT_VAULT_OPS_SESSIONS_H
#define TOKENVAULT_VAULT_OPS_SESSIONS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "api/msg.h"
#include "api/proto.h"
#include "api/writer.h"
#include "hsm/hsm.h"
#include "vault/store.h"

/* Layout versions; a record of another version is refused. Sessions: 1
 * was signed with vault-session-mac (key version 0), 2 names the STK
 * version that signed it (vault/keys.h). */
#define OPS_SESSION_VERSION_V1 1u
#define OPS_SESSION_VERSION 2u
#define OPS_MAPPING_VERSION 1u
/* The nonce is always the longest the protocol allows: 256 random bits. */
#define OPS_NONCE_LEN API_NONCE_MAX
/* Largest encoded session and mapping (checked by the tests against what
 * the encoders write). */
#define OPS_SESSION_MAX 256u
#define OPS_MAPPING_MAX 128u
/* clientCardIds one token may be mapped from: a card is one consumer's, and
 * the cap bounds the work CARD_DELETE does in the writer. The protocol's
 * limit, since CARD_GET lists them all. */
#define OPS_MAPPINGS_PER_TOKEN_MAX API_CARD_MAPPINGS_MAX

enum ops_session_state {
    OPS_SESSION_OPEN = 1,
    OPS_SESSION_CONSUMED = 2, /* checked OK once; every later check is REPLAYED */
};

/* A stored sale session. Every field but state and key_version is covered
 * by the signature; key_version names the key that made it. */
struct sale_session {
    uint8_t state;                          /* enum ops_session_state */
    uint32_t key_version;                   /* STK version; 0: vault-session-mac */
    char merchant[API_ID_MAX + 1];
    uint8_t access_token_hash[API_HASH_LEN]; /* as the merchant sent it: SHA-256 of the accessToken */
    uint64_t amount;                        /* minor units, <= API_AMOUNT_MAX */
    char currency[API_CURRENCY_LEN + 1];    /* ISO 4217, A-Z */
    uint8_t device_hash[API_HASH_LEN];      /* SHA-256 of deviceData; the data is not kept */
    uint64_t created_at_ms;                 /* unix milliseconds */
    uint64_t expires_at;                    /* unix seconds: refused from expires_at * 1000 ms on */
};

/* A stored mapping (forward entry). */
struct card_mapping {
    char token[API_ID_MAX + 1]; /* the serverCardId */
    bool has_email;
    uint8_t email_fp[HSM_HMAC_SHA256_LEN]; /* zero when !has_email */
    uint64_t created_at;                   /* unix seconds */
};

/* ops_session_save puts |s| as the session of |nonce| (flags as
 * store_put). Inside a write job. 0 or a negated status. */
int ops_session_save(struct store_txn *t, const uint8_t nonce[OPS_NONCE_LEN],
                     const struct sale_session *s, unsigned flags);

/* ops_session_encode appends |s|'s bytes to |w|:
 *   u8 version (2) | u8 state | u32 key version (>= 1) | str8 merchant |
 *   32 access-token hash | u64 amount | 3 currency | 32 device-data hash |
 *   u64 created (ms) | u64 expires (s)
 * Version 1 is the same without the key version; a session of key version 0
 * is written so (the codec round-trips every record it reads).
 * 0, -API_STATUS_INTERNAL for a session decode would refuse, or the
 * writer's error. */
int ops_session_encode(struct api_writer *w, const struct sale_session *s);

/* ops_session_decode parses |len| bytes at |data| into |out| (zeroed first,
 * and again on failure): every field checked, no trailing byte. 0 or
 * -API_STATUS_INTERNAL. */
int ops_session_decode(struct sale_session *out, const uint8_t *data, size_t len);

/* ops_mapping_encode appends |m|'s bytes to |w|:
 *   u8 version | str8 token | u8 has e-mail (0 or 1) | [32 e-mail fingerprint] |
 *   u64 created (s)
 * 0, -API_STATUS_INTERNAL, or the writer's error. */
int ops_mapping_encode(struct api_writer *w, const struct card_mapping *m);

/* ops_mapping_decode: as ops_session_decode, for a mapping. */
int ops_mapping_decode(struct card_mapping *out, const uint8_t *data, size_t len);

/* ops_session_mac_input writes the bytes the session signature covers:
 *   str8 "tokenvault/session/v1" | str8 nonce | str8 merchant |
 *   str8 access-token hash | u64 amount | str8 currency |
 *   str8 device-data hash | u64 expires (s)
 * 0 or the writer's error. */
int ops_session_mac_input(struct api_writer *w, const uint8_t nonce[OPS_NONCE_LEN],
                          const struct sale_session *s);

/* ops_session_sweep (writer, from the sweeper) deletes the session of the
 * nonce |key| if it has expired by |now_ms|. 0 or a negated store status;
 * a session that is gone or not yet expired is left alone (0). */
int ops_session_sweep(struct store_txn *t, const uint8_t *key, size_t key_len, uint64_t now_ms);

/* ops_mappings_delete_card (writer, from CARD_DELETE) deletes every mapping
 * of |merchant| that points to |token|, with its reverse entry. 0 or a
 * negated store status. */
int ops_mappings_delete_card(struct store_txn *t, const char *merchant, const char *token);

/* ops_mappings_list (any thread, in a read or write transaction: CARD_GET)
 * lists the mappings of |merchant| that point to |token|, in clientCardId
 * order, through the reverse index: each clientCardId and whether it is bound
 * to an e-mail (never the fingerprint). A reverse entry whose forward entry is
 * gone or points elsewhere is not a mapping and is skipped. On success
 * *out is an array of *out_num items allocated with malloc (the caller frees
 * it), or NULL when there are none; on failure both are left zero. 0,
 * -API_STATUS_INTERNAL (no memory, a malformed entry), or a negated store
 * status. */
int ops_mappings_list(struct store_txn *t, struct api_card_mapping_item **out, size_t *out_num,
                      const char *merchant, const char *token);

/* What the four operations carry from the worker to the writer and the
 * answer: a member of op_job's union. Wiped with the job. */
struct op_session_state {
    uint32_t lifetime_default_s;           /* SESSION_INIT: [sessions], copied on the loop */
    uint32_t lifetime_max_s;
    struct sale_session sess;              /* INIT: the new one; CHECK: the one the worker verified */
    uint8_t nonce[OPS_NONCE_LEN];          /* INIT */
    uint8_t signature[API_SIGNATURE_LEN];  /* INIT: the answer's */
    char nonce_hex[2 * OPS_NONCE_LEN + 1]; /* the audit entry's token: the session's id */
    uint8_t device_hash[API_HASH_LEN];     /* CHECK: of the request's deviceData */
    unsigned found;                        /* CHECK: OK, NOT_FOUND or SIGNATURE_INVALID (worker) */
    bool has_email_fp;                     /* the request's e-mail, fingerprinted in the HSM */
    uint8_t email_fp[HSM_HMAC_SHA256_LEN];
    unsigned status;                       /* the writer's verdict, audited and answered */
    uint16_t tag;                          /* its errorTag */
    const char *message;                   /* its fixed message */
    const char *detail;                    /* the audit entry's detail word */
    char token[API_ID_MAX + 1];            /* the serverCardId resolved (CHECK, RESOLVE) */
};

struct op_job;
struct vault_config;

/* ops_session_configure (loop thread, before the job is queued) copies what
 * SESSION_INIT needs from |cfg| into the job: the config may be freed by a
 * SIGHUP while the job runs. */
void ops_session_configure(struct op_job *j, const struct vault_config *cfg);

#endif
