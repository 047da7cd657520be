/*
 * msg.h - every message of the RPC as a plain C struct, and the table-driven
 * codec that turns fields into structs and back.
 *
 * Each struct has one schema (struct api_schema) listing its fields: tag,
 * required or optional, and where the value lives in the struct. One decoder
 * and one encoder serve every message, so a rule (no duplicate field, no
 * trailing byte, UTF-8 only) is written once and holds everywhere.
 *
 * Conventions in the structs:
 *   - an optional field `x` has a `bool has_x` beside it;
 *   - TEXT, ID and DIGITS fields are NUL-terminated char arrays of limit + 1;
 *   - BYTES fields are API_BYTES(limit): a length and an inline array;
 *   - BLOB fields (the wallet packet) borrow from the decoded frame's bytes and
 *     are valid only while those bytes are;
 *   - LIST fields are an array allocated by the decoder and a count.
 * A struct that carries a secret (PAN, holder, e-mail, CVC, cryptogram, share)
 * must be released with api_msg_cleanup, which wipes the whole struct; the
 * caller also wipes the frame bytes it decoded from.
 *
 * Thread-safe: the schemas are constant.
 */
#ifndef TOKENVAULT_API_MSG_H
#define TOKENVAULT_API_MSG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "api/proto.h"
#include "api/reader.h"
#include "api/writer.h"

/* A calendar date (DATE fields): year 2000..9999, a real month and day. */
struct api_date {
    uint16_t year;
    uint8_t month;
    uint8_t day;
};

/* Bytes borrowed from a frame (BLOB fields). */
struct api_slice {
    const uint8_t *data;
    size_t len;
};

/* Inline bytes of at most n (BYTES fields). */
#define API_BYTES(n)      \
    struct {              \
        size_t len;       \
        uint8_t data[n];  \
    }

/* A message with no fields (STATUS and KEY_STATUS requests, DELETE and MAP
 * responses). The member only keeps the struct non-empty in C. */
struct api_empty {
    uint8_t reserved_;
};

/* ---- service ---------------------------------------------------------------- */

struct api_ping_req {
    bool has_echo;
    API_BYTES(API_ECHO_MAX) echo;
};

struct api_ping_resp {
    bool has_echo;
    API_BYTES(API_ECHO_MAX) echo;
    uint64_t server_time; /* unix seconds */
};

struct api_status_resp {
    bool sealed;
    uint8_t shares_received; /* unseal progress: k of shares_needed */
    uint8_t shares_needed;   /* 0 when the service is not configured for sealed start */
    bool hsm_ready;
    char version[API_VERSION_TEXT_MAX + 1];
    uint64_t uptime; /* seconds */
    bool has_appliance_id;
    char appliance_id[API_ID_MAX + 1];
    bool has_record_count;
    uint64_t record_count;
    bool has_store_used;
    uint64_t store_used;
    bool has_store_size;
    uint64_t store_size;
    bool has_dek_version;    /* the DEK new records are sealed with */
    uint32_t dek_version;
    bool has_reencrypt_pending; /* records may remain on a retired DEK */
    bool reencrypt_pending;
    bool has_reencrypted;    /* records moved to the current DEK since start */
    uint64_t reencrypted;
    /* Progress of the re-encryption run (vault/ops/reencrypt.h): records
     * still on a retired DEK, and the run's size (moved plus remaining).
     * Absent until the service has counted once since it started. */
    bool has_reencrypt_remaining;
    uint64_t reencrypt_remaining;
    bool has_reencrypt_total;
    uint64_t reencrypt_total;
    /* Where the wallet derivations run on this HSM (enum api_kdf_path), as
     * its mechanism probe found at start: Apple EC_v1's KDF, Google's HKDF,
     * RSA-OAEP-SHA256 (Apple RSA_v1, JWE RSA-OAEP-256). Absent while the
     * HSM is not open. */
    bool has_apple_kdf_path;
    uint8_t apple_kdf_path;
    bool has_google_kdf_path;
    uint8_t google_kdf_path;
    bool has_oaep256_path;
    uint8_t oaep256_path;
};

/* ---- cards ------------------------------------------------------------------ */

struct api_card_store_req {
    char merchant[API_ID_MAX + 1];
    char customer_number[API_CUSTOMER_NUMBER_MAX + 1];
    char pan[API_PAN_MAX + 1]; /* secret */
    uint8_t exp_month;
    uint16_t exp_year;
    bool has_holder;
    char holder[API_HOLDER_MAX + 1]; /* secret */
    bool has_email;
    char email[API_EMAIL_MAX + 1]; /* secret */
    bool consent;
    uint8_t verification; /* enum api_verification */
    bool has_need_cvc;
    bool need_cvc;
    bool has_initial_txn_id;
    char initial_txn_id[API_ID_MAX + 1];
};

struct api_card_store_resp {
    char token[API_ID_MAX + 1];
    uint8_t kind;  /* enum api_card_kind */
    char bin[API_BIN_MAX + 1];
    char last4[API_LAST4_LEN + 1];
    uint8_t brand; /* enum api_brand */
    uint8_t exp_month;
    uint16_t exp_year;
    bool need_cvc;
    bool active;
    uint8_t dedup; /* enum api_dedup */
    uint64_t created_at;
};

/* A card named by merchant and token (GET, DELETE). */
struct api_card_ref {
    char merchant[API_ID_MAX + 1];
    char token[API_ID_MAX + 1];
};

/* One clientCardId mapped to a card (CARD_MAP), as CARD_GET lists it: whether
 * the mapping is bound to an e-mail, never the e-mail or its fingerprint. */
struct api_card_mapping_item {
    char client_card_id[API_ID_MAX + 1];
    bool email_bound;
};

/* A card's metadata (GET and UPDATE responses). Never the PAN. */
struct api_card_info {
    char token[API_ID_MAX + 1];
    uint8_t kind;
    char bin[API_BIN_MAX + 1];
    char last4[API_LAST4_LEN + 1];
    uint8_t brand;
    uint8_t exp_month;
    uint16_t exp_year;
    bool active;
    bool need_cvc;
    bool consent;
    uint8_t verification;
    bool has_initial_txn_id;
    char initial_txn_id[API_ID_MAX + 1];
    uint64_t created_at;
    bool has_expires_at; /* device PAN records live a short time */
    uint64_t expires_at;
    /* Optional list: absent when num_mappings is 0. CARD_GET fills it;
     * CARD_UPDATE's answer leaves it empty. Allocated by the decoder. */
    struct api_card_mapping_item *mappings;
    size_t num_mappings;
};

/* A customer named by merchant and CustomerNumber (LIST). */
struct api_customer_ref {
    char merchant[API_ID_MAX + 1];
    char customer_number[API_CUSTOMER_NUMBER_MAX + 1];
};

/* One entry of the seed's token list: token, last 4, BIN, brand, expiry,
 * active, needCVC. */
struct api_card_item {
    char token[API_ID_MAX + 1];
    char bin[API_BIN_MAX + 1];
    char last4[API_LAST4_LEN + 1];
    uint8_t brand;
    uint8_t exp_month;
    uint16_t exp_year;
    bool active;
    bool need_cvc;
};

struct api_card_list_resp {
    struct api_card_item *cards; /* allocated by the decoder */
    size_t num_cards;
};

struct api_card_update_req {
    char merchant[API_ID_MAX + 1];
    char token[API_ID_MAX + 1];
    bool has_exp_month; /* expiry changes as a pair: both or neither */
    uint8_t exp_month;
    bool has_exp_year;
    uint16_t exp_year;
    bool has_active;
    bool active;
    bool has_need_cvc;
    bool need_cvc;
    bool has_holder;
    char holder[API_HOLDER_MAX + 1]; /* secret */
    bool has_initial_txn_id;
    char initial_txn_id[API_ID_MAX + 1];
};

struct api_card_reveal_req {
    char merchant[API_ID_MAX + 1];
    char token[API_ID_MAX + 1];
    uint8_t purpose; /* enum api_purpose */
};

struct api_card_reveal_resp {
    uint8_t kind;
    char pan[API_PAN_MAX + 1]; /* secret */
    uint8_t exp_month;
    uint16_t exp_year;
    bool has_holder;
    char holder[API_HOLDER_MAX + 1]; /* secret */
};

/* ---- wallets ---------------------------------------------------------------- */

struct api_wallet_decrypt_req {
    char merchant[API_ID_MAX + 1];
    uint8_t wallet;          /* enum api_wallet */
    struct api_slice packet; /* the packet as the wallet produced it (JSON or JWE) */
    bool has_amount;         /* the amount the gateway expects, checked when given */
    uint64_t amount;
    bool has_currency;
    char currency[API_CURRENCY_LEN + 1];
    bool has_customer_number; /* save the card on file when the wallet allows */
    char customer_number[API_CUSTOMER_NUMBER_MAX + 1];
    bool has_consent;
    bool consent;
};

struct api_wallet_decrypt_resp {
    char token[API_ID_MAX + 1];
    uint8_t kind;
    uint8_t wallet;
    char wallet_version[API_WALLET_VERSION_MAX + 1];
    char bin[API_BIN_MAX + 1];
    char last4[API_LAST4_LEN + 1];
    uint8_t brand;
    uint8_t exp_month;
    uint16_t exp_year;
    bool has_cryptogram;
    char cryptogram[API_CRYPTOGRAM_MAX + 1]; /* secret; returned once, never stored */
    bool has_eci;
    char eci[API_ECI_MAX + 1];
    bool has_amount;
    uint64_t amount;
    bool has_currency;
    char currency[API_CURRENCY_LEN + 1];
    uint8_t auth_method; /* enum api_auth_method */
    char transaction_id[API_TRANSACTION_ID_MAX + 1];
    uint64_t expires_at;
};

/* ---- mobile sale sessions and card mappings ---------------------------------- */

struct api_session_init_req {
    char merchant[API_ID_MAX + 1];
    API_BYTES(API_HASH_LEN) access_token_hash; /* SHA-256 of the accessToken */
    uint64_t amount;
    char currency[API_CURRENCY_LEN + 1];
    API_BYTES(API_DEVICE_DATA_MAX) device_data;
    bool has_lifetime;
    uint32_t lifetime; /* seconds; the service's default when absent */
};

struct api_session_init_resp {
    API_BYTES(API_NONCE_MAX) nonce;
    API_BYTES(API_SIGNATURE_LEN) signature;
    uint64_t expires_at;
};

struct api_session_check_req {
    char merchant[API_ID_MAX + 1];
    API_BYTES(API_NONCE_MAX) nonce;
    API_BYTES(API_SIGNATURE_LEN) signature;
    API_BYTES(API_HASH_LEN) access_token_hash;
    uint64_t amount;
    char currency[API_CURRENCY_LEN + 1];
    API_BYTES(API_DEVICE_DATA_MAX) device_data;
    bool has_client_card_id; /* repeat sale: resolve it in the same step */
    char client_card_id[API_ID_MAX + 1];
    bool has_email;
    char email[API_EMAIL_MAX + 1]; /* secret */
};

struct api_session_check_resp {
    bool has_token; /* the serverCardId, on a repeat sale */
    char token[API_ID_MAX + 1];
};

struct api_card_map_req {
    char merchant[API_ID_MAX + 1];
    char client_card_id[API_ID_MAX + 1];
    char token[API_ID_MAX + 1];
    bool has_email;
    char email[API_EMAIL_MAX + 1]; /* secret; kept only as a keyed fingerprint */
};

struct api_map_resolve_req {
    char merchant[API_ID_MAX + 1];
    char client_card_id[API_ID_MAX + 1];
    bool has_email;
    char email[API_EMAIL_MAX + 1]; /* secret */
};

struct api_map_resolve_resp {
    char token[API_ID_MAX + 1];
};

/* ---- stored credentials: mandates, CIT, MIT ---------------------------------- */

struct api_mandate_create_req {
    char merchant[API_ID_MAX + 1];
    char token[API_ID_MAX + 1];
    char customer_number[API_CUSTOMER_NUMBER_MAX + 1];
    uint8_t kind;             /* enum api_mandate_kind */
    bool has_min_amount;      /* RecurringMinAmount; required for recurring */
    uint64_t min_amount;
    uint64_t max_amount;      /* RecurringMaxAmount */
    char currency[API_CURRENCY_LEN + 1];
    bool has_recurring_count; /* RecurringCount, days; required for recurring */
    uint16_t recurring_count;
    struct api_date recurring_max_date; /* RecurringMaxDate */
};

struct api_mandate_ref {
    char merchant[API_ID_MAX + 1];
    char token[API_ID_MAX + 1];
    char mandate_id[API_ID_MAX + 1];
};

struct api_mandate_cancel_req {
    char merchant[API_ID_MAX + 1];
    char token[API_ID_MAX + 1];
    char mandate_id[API_ID_MAX + 1];
    uint8_t cancelled_by; /* enum api_cancelled_by */
};

struct api_mandate_info {
    char mandate_id[API_ID_MAX + 1];
    char token[API_ID_MAX + 1];
    uint8_t kind;
    uint8_t status; /* enum api_mandate_status */
    bool has_min_amount;
    uint64_t min_amount;
    uint64_t max_amount;
    char currency[API_CURRENCY_LEN + 1];
    bool has_recurring_count;
    uint16_t recurring_count;
    struct api_date recurring_max_date;
    bool has_last_charge_date;
    struct api_date last_charge_date;
    uint32_t charge_count;
    bool has_cancelled_by;
    uint8_t cancelled_by;
    uint64_t created_at;
};

struct api_cit_authorize_req {
    char merchant[API_ID_MAX + 1];
    char token[API_ID_MAX + 1];
    char customer_number[API_CUSTOMER_NUMBER_MAX + 1];
    uint64_t amount;
    char currency[API_CURRENCY_LEN + 1];
    bool has_cvc; /* for this authorization only; never stored */
    char cvc[API_CVC_MAX + 1]; /* secret */
};

struct api_cit_authorize_resp {
    char approval[API_ID_MAX + 1];
    bool need_cvc;
    bool has_pan; /* to a caller with the reveal role only */
    char pan[API_PAN_MAX + 1]; /* secret */
    bool has_exp_month;
    uint8_t exp_month;
    bool has_exp_year;
    uint16_t exp_year;
    bool has_cvc; /* the CVC passed through, reveal role only */
    char cvc[API_CVC_MAX + 1]; /* secret */
    bool has_initial_txn_id;
    char initial_txn_id[API_ID_MAX + 1];
};

struct api_mit_authorize_req {
    char merchant[API_ID_MAX + 1];
    char token[API_ID_MAX + 1];
    char mandate_id[API_ID_MAX + 1];
    uint64_t amount;
    char currency[API_CURRENCY_LEN + 1];
    struct api_date date; /* the charge date */
};

struct api_mit_authorize_resp {
    char approval[API_ID_MAX + 1];
    struct api_date last_charge_date;
    uint32_t charge_count;
    bool has_pan; /* reveal role only */
    char pan[API_PAN_MAX + 1]; /* secret */
    bool has_exp_month;
    uint8_t exp_month;
    bool has_exp_year;
    uint16_t exp_year;
    bool has_initial_txn_id; /* the network id the MIT must reference */
    char initial_txn_id[API_ID_MAX + 1];
};

/* ---- QR payment requests ------------------------------------------------------ */

struct api_qr_issue_req {
    char merchant[API_ID_MAX + 1];
    char order_id[API_ID_MAX + 1];
    uint64_t amount;
    char currency[API_CURRENCY_LEN + 1];
    uint32_t lifetime;
};

struct api_qr_issue_resp {
    char qr_token[API_QR_TOKEN_MAX + 1];
    uint64_t expires_at;
};

struct api_qr_redeem_req {
    char merchant[API_ID_MAX + 1];
    char qr_token[API_QR_TOKEN_MAX + 1];
    char payer_ref[API_ID_MAX + 1];
};

struct api_qr_redeem_resp {
    char order_id[API_ID_MAX + 1];
    uint64_t amount;
    char currency[API_CURRENCY_LEN + 1];
    uint64_t paid_at;
};

struct api_qr_status_req {
    char merchant[API_ID_MAX + 1];
    char order_id[API_ID_MAX + 1];
};

struct api_qr_info {
    char order_id[API_ID_MAX + 1];
    uint64_t amount;
    char currency[API_CURRENCY_LEN + 1];
    uint8_t state; /* enum api_qr_state */
    uint64_t expires_at;
    bool has_paid_at;
    uint64_t paid_at;
    bool has_payer_ref;
    char payer_ref[API_ID_MAX + 1];
};

/* ---- officer ------------------------------------------------------------------- */

struct api_unseal_share_req {
    char officer[API_ID_MAX + 1];
    API_BYTES(API_SHARE_MAX) share; /* secret */
};

struct api_unseal_share_resp {
    bool sealed;
    uint8_t shares_received;
    uint8_t shares_needed;
};

struct api_key_item {
    char label[API_ID_MAX + 1];
    uint8_t key_class; /* enum api_key_class */
    uint32_t version;
    uint8_t state;     /* enum api_key_state */
    API_BYTES(API_KCV_MAX) kcv;
};

struct api_key_status_resp {
    struct api_key_item *keys; /* allocated by the decoder */
    size_t num_keys;
};

/* ---- errors ---------------------------------------------------------------------- */

/* The body of every response whose status is not OK, whatever the opcode. The
 * message is short and fixed by the service; it never echoes request values. */
struct api_error_resp {
    char message[API_MESSAGE_MAX + 1];
    bool has_error_tag; /* the field at fault (decode errors, MISMATCH) */
    uint16_t error_tag;
    bool has_rule;      /* LIMIT_EXCEEDED: the mandate rule */
    char rule[API_RULE_MAX + 1];
    bool has_retry_after_ms; /* OVERLOADED and the other RETRY statuses */
    uint32_t retry_after_ms;
};

/* ---- the operations' message types --------------------------------------------- */

/* X(OPNAME, lower_name, request struct, response struct). Messages that have
 * the same shape share one struct. */
#define API_MSG_LIST(X)                                                             \
    X(PING, ping, api_ping_req, api_ping_resp)                                      \
    X(STATUS, status, api_empty, api_status_resp)                                   \
    X(CARD_STORE, card_store, api_card_store_req, api_card_store_resp)              \
    X(CARD_GET, card_get, api_card_ref, api_card_info)                              \
    X(CARD_LIST, card_list, api_customer_ref, api_card_list_resp)                   \
    X(CARD_UPDATE, card_update, api_card_update_req, api_card_info)                 \
    X(CARD_DELETE, card_delete, api_card_ref, api_empty)                            \
    X(CARD_REVEAL, card_reveal, api_card_reveal_req, api_card_reveal_resp)          \
    X(WALLET_DECRYPT, wallet_decrypt, api_wallet_decrypt_req, api_wallet_decrypt_resp) \
    X(SESSION_INIT, session_init, api_session_init_req, api_session_init_resp)      \
    X(SESSION_CHECK, session_check, api_session_check_req, api_session_check_resp)  \
    X(CARD_MAP, card_map, api_card_map_req, api_empty)                              \
    X(MAP_RESOLVE, map_resolve, api_map_resolve_req, api_map_resolve_resp)          \
    X(MANDATE_CREATE, mandate_create, api_mandate_create_req, api_mandate_info)     \
    X(MANDATE_GET, mandate_get, api_mandate_ref, api_mandate_info)                  \
    X(MANDATE_CANCEL, mandate_cancel, api_mandate_cancel_req, api_mandate_info)     \
    X(CIT_AUTHORIZE, cit_authorize, api_cit_authorize_req, api_cit_authorize_resp)  \
    X(MIT_AUTHORIZE, mit_authorize, api_mit_authorize_req, api_mit_authorize_resp)  \
    X(QR_ISSUE, qr_issue, api_qr_issue_req, api_qr_issue_resp)                      \
    X(QR_REDEEM, qr_redeem, api_qr_redeem_req, api_qr_redeem_resp)                  \
    X(QR_STATUS, qr_status, api_qr_status_req, api_qr_info)                         \
    X(UNSEAL_SHARE, unseal_share, api_unseal_share_req, api_unseal_share_resp)      \
    X(KEY_STATUS, key_status, api_empty, api_key_status_resp)

/* ---- schemas ---------------------------------------------------------------------- */

/* Field flags in a schema. */
#define API_FIELD_REQUIRED 0x01u
#define API_FIELD_OPTIONAL 0x02u /* `aux` is the offset of its bool has_x */
/* LIST fields, required or optional: `aux` is the offset of the size_t count
 * instead, and an optional list is present when the count is not 0 (its tag's
 * min is 1, so it is never sent empty). */

struct api_schema;

struct api_field {
    uint16_t tag;
    uint8_t flags;
    uint16_t off;  /* offset of the value in the struct */
    uint16_t size; /* size of the struct member (a string's capacity + 1) */
    uint16_t aux;  /* see the flags */
    const struct api_schema *item; /* LIST: the schema of one item */
};

struct api_schema {
    const char *name; /* the struct's name: "api_card_store_req" */
    size_t size;      /* sizeof the struct */
    const struct api_field *fields;
    size_t num_fields;
};

/* The schema of an opcode's request or response body, or NULL for an unknown
 * opcode. */
const struct api_schema *api_schema_request(uint16_t opcode);
const struct api_schema *api_schema_response(uint16_t opcode);
/* The schema of an error response body (struct api_error_resp). */
const struct api_schema *api_schema_error(void);
/* The field of |s| with |tag|, or NULL. */
const struct api_field *api_schema_field(const struct api_schema *s, uint16_t tag);
/* The schema of every message struct, for tests and documentation. */
const struct api_schema *const *api_schema_all(size_t *out_num);
/* Whether field |f| is present in |msg|, a struct of the field's schema:
 * a required field always; an optional one when its has_x is set; an
 * optional LIST when its count is not 0. What the encoder writes. */
bool api_field_present(const struct api_field *f, const void *msg);

/* Where a decode or encode failed: the status, the tag at fault (0 when the
 * failure is not about one field) and a fixed message naming the rule. The
 * message never contains a value from the input. */
struct api_field_error {
    unsigned status;
    uint16_t tag;
    const char *message; /* static string */
};

/* api_msg_decode reads the fields in |body| (all of it) into |out|, a struct
 * of schema |s|. Returns 0 or -API_STATUS_* (TRUNCATED, TRAILING_BYTES,
 * UNKNOWN_FIELD, PROHIBITED_DATA, DUPLICATE_FIELD, MISSING_FIELD, BAD_LENGTH,
 * BAD_VALUE, TOO_MANY_FIELDS; INTERNAL for a schema over 64 fields, which the
 * schema tests rule out) or API_ERR_NO_MEMORY; |err| (may be NULL) says
 * which field and why. |out| is zeroed first and, on failure, wiped and left
 * zeroed. On success release it with api_msg_cleanup. BLOB fields point into
 * |body|'s bytes. */
API_WUR int api_msg_decode(const struct api_schema *s, struct api_reader *body, void *out,
                           struct api_field_error *err);

/* api_msg_encode appends the fields of |msg| (schema |s|) to |w|: required
 * fields always, optional ones when has_x is set, in schema order. Every value
 * is checked by the same rules as the decoder, so the encoder cannot produce a
 * frame the decoder refuses. Returns 0, -API_STATUS_BAD_LENGTH/BAD_VALUE/
 * TOO_MANY_FIELDS (|err| names the field), -API_STATUS_TOO_LARGE or
 * API_ERR_NO_MEMORY. On failure |w| holds a partial frame: reset it. */
API_WUR int api_msg_encode(struct api_writer *w, const struct api_schema *s, const void *msg,
                           struct api_field_error *err);

/* api_msg_cleanup frees the lists of |msg| and wipes the whole struct
 * (secrets included) to zero. Accepts NULL. */
void api_msg_cleanup(const struct api_schema *s, void *msg);

/* Bytes on the wire of a fixed-width type (BOOL, U8..U64, ENUM, CURRENCY,
 * DATE); 0 for the length-bounded ones. */
size_t api_type_width(enum api_type type);

/* api_field_check applies the rules of |info|'s type and limits to the value
 * bytes |v| of length |len|. Returns 0, -API_STATUS_BAD_LENGTH or
 * -API_STATUS_BAD_VALUE. Used by the codec and by callers that build fields by
 * hand. */
API_WUR int api_field_check(const struct api_tag_info *info, const uint8_t *v, size_t len);

#endif
