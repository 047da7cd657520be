/*
 * qr.h - QR payment requests (seeds 001 and 004): the token a gateway puts in
 * a QR URL, the request record kept in STORE_DB_QR, and that database's keys.
 * The operations themselves (QR_ISSUE, QR_REDEEM, QR_STATUS) are in qr.c and
 * declared in ops.h.
 *
 * The token, 57 bytes in base64url without padding (RFC 4648 section 5), so
 * exactly QR_TOKEN_TEXT_LEN (76) characters:
 *   u8 QR_TOKEN_VERSION | request id (16 bytes) | u64 expiresAt | tag (32 bytes)
 * tag = HMAC-SHA256(STK, qr_mac_input), made and verified in the HSM with
 * the session tag key version the record names (vault/keys.h; version 0,
 * records from before STKs: vault-session-mac), over
 *   QR_MAC_LABEL (with its NUL) | u8 version | request id | u8 len | merchant |
 *   u8 len | order id | u64 amount | currency (3 bytes) | u64 expiresAt
 * The label keeps a QR tag from ever being a valid sale-session signature
 * (the same key makes both). The token carries only what is needed to find
 * the request and check the tag; merchant, order id, amount and currency
 * come from the stored record, so the tag also proves the record was not
 * altered since it was issued.
 *
 * The record (value of key 'R' | request id), versioned, read back only
 * through the cursor reader and checked field by field:
 *   u8 QR_RECORD_VERSION (2) | u8 state (issued 1, paid 2) |
 *   u32 key version (>= 1) | u64 createdAt | u64 expiresAt |
 *   u64 paidAt (0 unless paid) | u64 amount | currency (3) |
 *   str8 merchant | str8 order id | str8 payerRef ("" unless paid)
 * Version 1, without the key version, is a record of key version 0 (and is
 * how such a record is written back).
 * "expired" is never stored: it is an issued request whose expiresAt has
 * passed (qr_record_state).
 *
 * The order index (key 'O' | merchant | 0x00 | order id) holds the request
 * id of the merchant's latest request for that order. Merchant ids are
 * printable ASCII, so the 0x00 cannot occur inside one; the one-byte prefix
 * keeps the two kinds of keys apart in one database.
 *
 * Pure: no I/O, no HSM, no global state; any thread. qr_token_parse and
 * qr_record_decode have fuzz targets (tests/fuzz/fuzz_qr_token.c,
 * fuzz_qr_record.c).
 */
#ifndef TOKENVAULT_VAULT_OPS_QR_H
#define TOKENVAULT_VAULT_OPS_QR_H

#include <stddef.h>
#include <stdint.h>

#include "api/proto.h"
#include "api/writer.h"
#include "hsm/hsm.h"

#define QR_TOKEN_VERSION 1u
/* 128 bits from the HSM RNG: never guessed, never drawn twice. */
#define QR_REQUEST_ID_LEN 16u
/* The whole HMAC-SHA256: hsm_hmac_verify compares exactly 32 bytes inside
 * the token, and the token still fits a small QR code. */
#define QR_TAG_LEN HSM_HMAC_SHA256_LEN
#define QR_TOKEN_BIN_LEN (1u + QR_REQUEST_ID_LEN + 8u + QR_TAG_LEN)
/* 57 bytes are 19 groups of 3: base64url without padding and without
 * partial groups, so every one of the 76 characters carries 6 bits. */
#define QR_TOKEN_TEXT_LEN (QR_TOKEN_BIN_LEN / 3u * 4u)
/* Request ids in audit entries: lower-case hex. */
#define QR_REQUEST_ID_TEXT_LEN (2u * QR_REQUEST_ID_LEN)

/* Domain separation from the other inputs of the same keys (sale sessions;
 * e-mail fingerprints under vault-session-mac). */
#define QR_MAC_LABEL "tokenvault/qr-request"
#define QR_MAC_INPUT_MAX \
    (sizeof(QR_MAC_LABEL) + 1u + QR_REQUEST_ID_LEN + 1u + API_ID_MAX + 1u + API_ID_MAX + 8u + \
     API_CURRENCY_LEN + 8u)

#define QR_RECORD_VERSION_V1 1u
#define QR_RECORD_VERSION 2u
/* The largest encoded record: fixed part and three strings at their limit. */
#define QR_RECORD_MAX (2u + 4u + 4u * 8u + API_CURRENCY_LEN + 3u * (1u + API_ID_MAX))

/* Key prefixes in STORE_DB_QR. */
#define QR_KEY_RECORD 'R'
#define QR_KEY_ORDER 'O'
#define QR_RECORD_KEY_LEN (1u + QR_REQUEST_ID_LEN)
#define QR_ORDER_KEY_MAX (1u + API_ID_MAX + 1u + API_ID_MAX)

struct qr_token {
    uint8_t version;                 /* QR_TOKEN_VERSION */
    uint8_t id[QR_REQUEST_ID_LEN];
    uint64_t expires_at;             /* unix seconds, <= API_TIME_MAX */
    uint8_t tag[QR_TAG_LEN];
};

struct qr_record {
    uint8_t state;                   /* API_QR_ISSUED or API_QR_PAID */
    uint32_t key_version;            /* STK version of the tag; 0: vault-session-mac */
    uint64_t created_at;             /* unix seconds */
    uint64_t expires_at;
    uint64_t paid_at;                /* 0 unless paid */
    uint64_t amount;                 /* minor units, 1..API_AMOUNT_MAX */
    char currency[API_CURRENCY_LEN + 1];
    char merchant[API_ID_MAX + 1];
    char order_id[API_ID_MAX + 1];
    char payer_ref[API_ID_MAX + 1];  /* "" unless paid */
};

/* qr_token_encode writes |t| as QR_TOKEN_TEXT_LEN base64url characters and a
 * NUL into |out|. 0, or -API_STATUS_INTERNAL for a token parse would refuse
 * (another version, an expiry past API_TIME_MAX). */
int qr_token_encode(char out[QR_TOKEN_TEXT_LEN + 1], const struct qr_token *t);

/* qr_token_parse reads the |len| characters at |text| (untrusted) into |out|:
 * exactly QR_TOKEN_TEXT_LEN characters of the base64url alphabet, version
 * QR_TOKEN_VERSION, an expiry within API_TIME_MAX. 0, or
 * -API_STATUS_BAD_VALUE (|out| untouched). It proves nothing about who made
 * the token: that is the tag's check, in the HSM. */
int qr_token_parse(struct qr_token *out, const char *text, size_t len);

/* qr_mac_input writes the bytes the tag covers for request |id| as issued
 * in |rec| (merchant, order id, amount, currency, expiry) and token version
 * |version| into |out|; *out_len is their count. 0, or -API_STATUS_INTERNAL
 * when a string of |rec| is empty or too long. */
int qr_mac_input(uint8_t out[QR_MAC_INPUT_MAX], size_t *out_len, uint8_t version,
                 const uint8_t id[QR_REQUEST_ID_LEN], const struct qr_record *rec);

/* qr_record_encode appends |r| to |w|. 0, the writer's error, or
 * -API_STATUS_INTERNAL for a record decode would refuse. */
int qr_record_encode(struct api_writer *w, const struct qr_record *r);

/* qr_record_decode parses |len| bytes at |data| into |out| (zeroed first,
 * and zeroed again on failure). 0, or -API_STATUS_INTERNAL for anything
 * malformed: another version, a state, time, amount, currency or string out
 * of range, a paid record without its payer or time (or an issued one with
 * them), trailing bytes. */
int qr_record_decode(struct qr_record *out, const uint8_t *data, size_t len);

/* The state a request is in at |now| (unix seconds): paid, issued, or
 * expired once now >= expires_at and it was never paid. */
uint8_t qr_record_state(const struct qr_record *r, uint64_t now);

/* The store keys. Each returns the key's length. |merchant| and |order_id|
 * are 1..API_ID_MAX printable characters (the codec's id type). */
size_t qr_record_key(uint8_t out[QR_RECORD_KEY_LEN], const uint8_t id[QR_REQUEST_ID_LEN]);
size_t qr_order_key(uint8_t out[QR_ORDER_KEY_MAX], const char *merchant, const char *order_id);

/* qr_request_id_text: |id| in lower-case hex with a NUL (the audit entry's
 * token field). */
void qr_request_id_text(char out[QR_REQUEST_ID_TEXT_LEN + 1], const uint8_t id[QR_REQUEST_ID_LEN]);

#endif
