/*
 * proto.h - the numbers of the tokenvault RPC: framing constants, limits,
 * status codes, opcodes, field tags and field types.
 *
 * docs/PROTOCOL.md is the specification; this header is its single source in
 * code. Every list below is an X-macro so that names, tables and the generated
 * parts of PROTOCOL.md come from one place. Numbers are stable: a value, once
 * released, is never reused for another meaning.
 *
 * Pure definitions; no I/O, no allocation. Thread-safe.
 */
#ifndef TOKENVAULT_API_PROTO_H
#define TOKENVAULT_API_PROTO_H

#include <stddef.h>
#include <stdint.h>

#define API_WUR __attribute__((warn_unused_result))

/* ---- framing ------------------------------------------------------------ */

/* "TV" in ASCII: a frame from anything else (HTTP, TLS to the wrong port, a
 * desynchronised stream) fails at its first two bytes. */
#define API_MAGIC 0x5456u
/* Protocol version carried in every header. A server answers a version it does
 * not speak with UNSUPPORTED_VERSION; any change to a message bumps it. */
#define API_VERSION 1u
/* Every frame starts with a u32 big-endian length of what follows it. */
#define API_LEN_PREFIX 4u
/* Fixed header after the length: magic u16, version u8, flags u8, opcode u16,
 * status u16, request id u64. */
#define API_HEADER_LEN 16u
/* A field: tag u16, length u32, value. */
#define API_FIELD_HEADER_LEN 6u

/* Header flags. Bits not defined here must be zero (BAD_REQUEST otherwise), so
 * a later meaning can be given to them without being silently ignored today. */
#define API_FLAG_RESPONSE 0x01u
#define API_FLAGS_KNOWN API_FLAG_RESPONSE

/* ---- limits ------------------------------------------------------------- */

/* Largest value of the length prefix (header + fields). A wallet packet is a
 * few KiB; 64 KiB leaves room for the largest while bounding what one frame can
 * make a peer buffer. */
#define API_FRAME_MAX 65536u
/* Most fields in one message or one list item. The largest message has 16;
 * a bound keeps a frame of a thousand empty fields from costing a thousand
 * lookups. */
#define API_FIELDS_MAX 32u
/* Most items in one list field (a customer's cards, the key list). The count
 * is taken from the bytes actually present, never from a declared count. */
#define API_LIST_ITEMS_MAX 128u
/* Lists do not nest: an item may not itself contain a list. */
#define API_LIST_DEPTH_MAX 1u
/* clientCardIds one card may be mapped from (CARD_MAP), and so the most
 * items of CARD_GET's mappings list: a card is one consumer's, and the cap
 * bounds what CARD_DELETE does in the writer. At most API_LIST_ITEMS_MAX
 * (tested). */
#define API_CARD_MAPPINGS_MAX 128u

/* Per-field length limits (bytes of value). Strings are stored decoded in
 * char arrays of limit + 1, so these are also struct member sizes. */
#define API_MESSAGE_MAX 200u        /* error message text */
#define API_ID_MAX 64u              /* merchant, token, ids */
#define API_CUSTOMER_NUMBER_MAX 32u /* seed 003: CustomerNumber, 32 characters */
#define API_RULE_MAX 32u
#define API_ECHO_MAX 64u
#define API_VERSION_TEXT_MAX 64u
#define API_PAN_MIN 12u             /* ISO/IEC 7812: 12..19 digits */
#define API_PAN_MAX 19u
#define API_HOLDER_MAX 128u
#define API_EMAIL_MIN 3u
#define API_EMAIL_MAX 254u          /* RFC 5321 path limit */
#define API_BIN_MIN 6u
#define API_BIN_MAX 8u
#define API_LAST4_LEN 4u
#define API_CVC_MIN 3u
#define API_CVC_MAX 4u
#define API_PIN_BLOCK_MIN 8u
#define API_PIN_BLOCK_MAX 16u
#define API_TRACK_MAX 128u
#define API_PACKET_MAX 60000u       /* wallet packet, JSON or JWE text */
#define API_WALLET_VERSION_MAX 16u
#define API_CRYPTOGRAM_MAX 128u     /* base64 of the online cryptogram */
#define API_ECI_MAX 2u
#define API_TRANSACTION_ID_MAX 256u  /* Google messageIds run to 140 characters */
#define API_HASH_LEN 32u            /* SHA-256 */
#define API_DEVICE_DATA_MAX 1024u
#define API_NONCE_MIN 16u
#define API_NONCE_MAX 32u
#define API_SIGNATURE_LEN 32u       /* HMAC-SHA256 */
#define API_QR_TOKEN_MAX 256u
#define API_SHARE_MIN 2u            /* libgfshare: index byte + secret */
#define API_SHARE_MAX 256u
#define API_KCV_MIN 3u
#define API_KCV_MAX 32u
#define API_CURRENCY_LEN 3u         /* ISO 4217 alphabetic code */
/* Amounts are integer minor units; seed 003 allows 15 digits. */
#define API_AMOUNT_MAX 999999999999999ull
/* RecurringCount: frequency in days, 3 digits (seed 003). */
#define API_RECURRING_COUNT_MAX 999u
/* Sessions and QR requests live at most 30 days. */
#define API_LIFETIME_MAX 2592000u
#define API_RETRY_AFTER_MAX 600000u /* milliseconds */
/* Times are unix seconds, at most 9999-12-31T23:59:59Z. */
#define API_TIME_MAX 253402300799ull
/* Counters and sizes stay within 2^53 - 1, which JSON numbers (and so
 * JavaScript clients of the CLI's --json output) hold exactly. */
#define API_COUNT_MAX 9007199254740991ull

/* ---- status codes ------------------------------------------------------- */

/* X(NAME, number, class, description). The class groups statuses for callers
 * (the CLI maps classes to exit codes):
 *   OK        success
 *   PROTOCOL  the frame or a field is malformed; resending it cannot succeed
 *   INPUT     well formed, but a value is refused by a rule of the operation
 *   DENIED    the caller may not do this
 *   NOTFOUND  the named object does not exist (for this merchant)
 *   REFUSED   a business rule refused it (conflict, replay, limits, ...)
 *   RETRY     the service cannot serve it now; the same request may succeed later
 *   INTERNAL  a fault in the service */
#define API_STATUS_LIST(X)                                                                  \
    X(OK, 0, OK, "success")                                                                 \
    X(BAD_REQUEST, 1, PROTOCOL, "malformed frame header (magic, flags, status, opcode use)") \
    X(UNSUPPORTED_VERSION, 2, PROTOCOL, "protocol version not spoken by the server")       \
    X(UNKNOWN_OPCODE, 3, PROTOCOL, "no such operation")                                     \
    X(TOO_LARGE, 4, PROTOCOL, "frame longer than API_FRAME_MAX")                            \
    X(TRUNCATED, 5, PROTOCOL, "a frame or field ends before its declared length")           \
    X(TRAILING_BYTES, 6, PROTOCOL, "bytes left after the last whole field")                 \
    X(UNKNOWN_FIELD, 7, PROTOCOL, "a field tag not defined for this message")               \
    X(DUPLICATE_FIELD, 8, PROTOCOL, "a field appears twice")                                \
    X(MISSING_FIELD, 9, PROTOCOL, "a required field is absent")                             \
    X(BAD_LENGTH, 10, PROTOCOL, "a field's length is wrong for its type or limit")          \
    X(BAD_VALUE, 11, PROTOCOL, "a field's value is invalid for its type")                   \
    X(TOO_MANY_FIELDS, 12, PROTOCOL, "more fields or list items than the limits allow")     \
    X(PROHIBITED_DATA, 13, PROTOCOL, "CVC, PIN block or track data where it is never accepted") \
    X(CARD_INVALID, 20, INPUT, "card number fails its length, digit or Luhn check")         \
    X(CARD_EXPIRED, 21, INPUT, "card expiry is in the past")                                \
    X(INVALID_ARGUMENT, 22, INPUT, "a value breaks a rule of the operation")                \
    X(CONSENT_REQUIRED, 23, INPUT, "the payer's consent is required and absent")            \
    X(CVC_REQUIRED, 24, INPUT, "this card needs a CVC for the operation")                   \
    X(DENIED, 30, DENIED, "the caller's roles or merchants do not allow this")              \
    X(NOT_FOUND, 40, NOTFOUND, "no such object for this merchant")                          \
    X(CONFLICT, 50, REFUSED, "the object exists in another state or binding")               \
    X(EXPIRED, 51, REFUSED, "the session, request, key or message has expired")             \
    X(REPLAYED, 52, REFUSED, "already used once")                                           \
    X(SIGNATURE_INVALID, 53, REFUSED, "a signature or MAC does not verify")                 \
    X(LIMIT_EXCEEDED, 54, REFUSED, "a mandate rule refuses it; RULE names the rule")        \
    X(MISMATCH, 55, REFUSED, "data differs from what was bound; ERROR_TAG names the field") \
    X(INACTIVE, 56, REFUSED, "the card or mandate is not active")                           \
    X(SHARE_REJECTED, 57, REFUSED, "an unseal share was refused")                           \
    X(OVERLOADED, 60, RETRY, "too many requests in flight; retry later")                    \
    X(HSM_UNAVAILABLE, 61, RETRY, "the HSM cannot be reached now")                          \
    X(SEALED, 62, RETRY, "the service waits for officers' unseal shares")                   \
    X(AUDIT_UNAVAILABLE, 63, RETRY, "the audit log cannot be written; operation refused")   \
    X(STORE_UNAVAILABLE, 64, RETRY, "the data store cannot be written")                     \
    X(SHUTTING_DOWN, 65, RETRY, "the service is draining for shutdown")                     \
    X(INTERNAL, 70, INTERNAL, "an internal fault; see the service log")

enum api_status {
#define API__STATUS_ENUM(name, num, cls, desc) API_STATUS_##name = num,
    API_STATUS_LIST(API__STATUS_ENUM)
#undef API__STATUS_ENUM
};

enum api_status_class {
    API_CLASS_OK,
    API_CLASS_PROTOCOL,
    API_CLASS_INPUT,
    API_CLASS_DENIED,
    API_CLASS_NOTFOUND,
    API_CLASS_REFUSED,
    API_CLASS_RETRY,
    API_CLASS_INTERNAL,
    API_CLASS_LOCAL, /* not a wire status: a client-side error (below) */
};

/* Client-side errors, never on the wire. Functions of this library return 0,
 * a negated wire status (-API_STATUS_*), or one of these. */
enum {
    API_ERR_NO_MEMORY = -1001,
    API_ERR_INVALID_ARG = -1002, /* caller error: NULL, a value the encoder refuses */
    API_ERR_CONNECT = -1003,     /* cannot connect (refused, unreachable, DNS) */
    API_ERR_TLS = -1004,         /* handshake or certificate verification failed */
    API_ERR_TIMEOUT = -1005,     /* connect, handshake or request deadline passed */
    API_ERR_CONNECTION = -1006,  /* the connection broke; the request's outcome is unknown */
    API_ERR_PROTOCOL = -1007,    /* the server sent a frame this client cannot accept */
    API_ERR_BUSY = -1008,        /* in-flight limit reached, or blocking call mixed with pipelining */
    API_ERR_CONFIG = -1009,      /* unreadable certificate, key or CA file */
};

/* Name of a wire status ("NOT_FOUND"), or NULL for an undefined number. */
const char *api_status_name(unsigned status);
/* One-line description of a wire status, or NULL. */
const char *api_status_description(unsigned status);
/* Class of a wire status; API_CLASS_INTERNAL for an undefined number. */
enum api_status_class api_status_class(unsigned status);
/* Name of any return value of this library: "OK", a wire status name, or a
 * client error name ("API_ERR_TIMEOUT"). Never NULL. */
const char *api_strerror(int r);
/* Wire status number for the name, or -1. */
int api_status_from_name(const char *name);

/* ---- roles -------------------------------------------------------------- */

/* X(NAME, name). The role an operation needs; the service maps each client
 * certificate to a set of roles (DESIGN.md section 7). ANY means every
 * authenticated client; OFFICER means the local officer socket only. */
#define API_ROLE_LIST(X) \
    X(ANY, "any")        \
    X(STORE, "store")    \
    X(LIST, "list")      \
    X(REVEAL, "reveal")  \
    X(WALLET, "wallet")  \
    X(SESSION, "session") \
    X(MANDATE, "mandate") \
    X(QR, "qr")          \
    X(ADMIN, "admin")    \
    X(OFFICER, "officer")

enum api_role {
#define API__ROLE_ENUM(name, str) API_ROLE_##name,
    API_ROLE_LIST(API__ROLE_ENUM)
#undef API__ROLE_ENUM
    API_ROLE_COUNT_
};

/* "store" for API_ROLE_STORE; NULL if out of range. */
const char *api_role_name(enum api_role role);
/* Role for a name, or -1. */
int api_role_from_name(const char *name);

/* ---- opcodes ------------------------------------------------------------ */

/* X(NAME, number, area, verb, role, lower_name, summary). area and verb name
 * the CLI subcommand ("tokenvault card store"); lower_name names the request
 * and response structs and the client call (api_card_store_req,
 * api_call_card_store). */
#define API_OP_LIST(X)                                                                        \
    X(PING, 0x0001, "service", "ping", ANY, ping, "check the connection; echoes bytes")       \
    X(STATUS, 0x0002, "service", "status", ANY, status, "sealed state, HSM and store health") \
    X(CARD_STORE, 0x0101, "card", "store", STORE, card_store,                                 \
      "store a card on file for a customer; returns its token")                               \
    X(CARD_GET, 0x0102, "card", "get", LIST, card_get, "a card's metadata (never the PAN)")   \
    X(CARD_LIST, 0x0103, "card", "list", LIST, card_list, "a customer's cards")               \
    X(CARD_UPDATE, 0x0104, "card", "update", STORE, card_update,                              \
      "change expiry, active, needCVC, holder or initial transaction id")                     \
    X(CARD_DELETE, 0x0105, "card", "delete", STORE, card_delete,                              \
      "delete a card and its index entries")                                                  \
    X(CARD_REVEAL, 0x0106, "card", "reveal", REVEAL, card_reveal,                             \
      "PAN, expiry and holder of a token, for a stated purpose")                              \
    X(WALLET_DECRYPT, 0x0201, "wallet", "decrypt", WALLET, wallet_decrypt,                    \
      "verify and decrypt an Apple/Google/Samsung Pay packet; vault the device PAN")          \
    X(SESSION_INIT, 0x0301, "session", "init", SESSION, session_init,                         \
      "start a mobile sale: nonce and signature from the HSM")                                \
    X(SESSION_CHECK, 0x0302, "session", "check", SESSION, session_check,                      \
      "check a sale against its session; consumes the session")                               \
    X(CARD_MAP, 0x0303, "map", "create", SESSION, card_map,                                   \
      "map a clientCardId to a serverCardId, optionally bound to an e-mail")                  \
    X(MAP_RESOLVE, 0x0304, "map", "resolve", SESSION, map_resolve,                            \
      "the serverCardId of a clientCardId (e-mail must match)")                               \
    X(MANDATE_CREATE, 0x0401, "mandate", "create", MANDATE, mandate_create,                   \
      "create a recurring or unscheduled MIT mandate on a token")                             \
    X(MANDATE_GET, 0x0402, "mandate", "get", MANDATE, mandate_get, "a mandate and its state") \
    X(MANDATE_CANCEL, 0x0403, "mandate", "cancel", MANDATE, mandate_cancel,                   \
      "cancel a mandate (by the merchant or the payer)")                                      \
    X(CIT_AUTHORIZE, 0x0404, "cit", "authorize", MANDATE, cit_authorize,                      \
      "customer-initiated charge on a stored card (one click)")                               \
    X(MIT_AUTHORIZE, 0x0405, "mit", "authorize", MANDATE, mit_authorize,                      \
      "merchant-initiated charge, allowed only inside its mandate")                           \
    X(QR_ISSUE, 0x0501, "qr", "issue", QR, qr_issue, "issue a signed, expiring QR payment request") \
    X(QR_REDEEM, 0x0502, "qr", "redeem", QR, qr_redeem, "mark a QR payment request paid, once") \
    X(QR_STATUS, 0x0503, "qr", "status", QR, qr_status, "state of a QR payment request")      \
    X(UNSEAL_SHARE, 0x0601, "officer", "unseal", OFFICER, unseal_share,                       \
      "submit one officer's PIN share to a sealed service")                                   \
    X(KEY_STATUS, 0x0602, "officer", "keys", ADMIN, key_status,                               \
      "labels, versions, states and KCVs of the vault's keys")

enum api_opcode {
#define API__OP_ENUM(name, num, area, verb, role, lower, summary) API_OP_##name = num,
    API_OP_LIST(API__OP_ENUM)
#undef API__OP_ENUM
};

/* What the protocol says of an opcode. */
struct api_op_info {
    uint16_t opcode;
    const char *name;  /* "CARD_STORE" */
    const char *lower; /* "card_store": logs, metrics labels, struct names */
    enum api_role role;
};

/* The opcode's description, or NULL for an unknown opcode. */
const struct api_op_info *api_op_info(uint16_t opcode);

/* ---- field types -------------------------------------------------------- */

/* X(NAME, name). Wire form and decoded C type:
 *   BOOL      1 byte, 0 or 1                          bool
 *   U8..U64   1/2/4/8 bytes big-endian, range-checked  uint8_t..uint64_t
 *   ENUM      1 byte, 1..max (0 is never valid)       uint8_t
 *   TEXT      UTF-8 (RFC 3629, shortest form), no C0
 *             or C1 control character, no DEL         char[max + 1], NUL-terminated
 *   ID        printable ASCII 0x21..0x7E              char[max + 1]
 *   DIGITS    ASCII 0-9                               char[max + 1]
 *   CURRENCY  3 bytes A-Z (ISO 4217 alphabetic)       char[4]
 *   DATE      u16 year, u8 month, u8 day; a real date struct api_date
 *   BYTES     opaque                                  struct { size_t len; uint8_t data[max]; }
 *   BLOB      opaque, borrowed from the frame         struct api_slice
 *   LIST      items, each a u32 length + fields       pointer + count, allocated */
#define API_TYPE_LIST(X) \
    X(BOOL, "bool")      \
    X(U8, "u8")          \
    X(U16, "u16")        \
    X(U32, "u32")        \
    X(U64, "u64")        \
    X(ENUM, "enum")      \
    X(TEXT, "text")      \
    X(ID, "id")          \
    X(DIGITS, "digits")  \
    X(CURRENCY, "currency") \
    X(DATE, "date")      \
    X(BYTES, "bytes")    \
    X(BLOB, "blob")      \
    X(LIST, "list")

enum api_type {
#define API__TYPE_ENUM(name, str) API_T_##name,
    API_TYPE_LIST(API__TYPE_ENUM)
#undef API__TYPE_ENUM
};

/* Tag flags. */
#define API_TAG_SECRET 0x01u       /* wiped by api_msg_cleanup; never logged */
#define API_TAG_NEVER_STORED 0x02u /* CVC, PIN, track, cryptogram: PROHIBITED_DATA where not allowed */

/* ---- enumerations carried in ENUM fields ---------------------------------- */

/* Each X(NAME, number, "wire name"). Numbers start at 1: 0 means "unset". */
#define API_VERIFICATION_LIST(X)                  \
    X(NONE, 1, "none")                            \
    X(CVC2_3DS, 2, "cvc2_3ds")                    \
    X(THREE_DS, 3, "3ds")                         \
    X(CVC2, 4, "cvc2")                            \
    X(DEVICE, 5, "device")
#define API_BRAND_LIST(X)      \
    X(UNKNOWN, 1, "unknown")   \
    X(VISA, 2, "visa")         \
    X(MASTERCARD, 3, "mastercard") \
    X(AMEX, 4, "amex")         \
    X(DISCOVER, 5, "discover") \
    X(JCB, 6, "jcb")           \
    X(UNIONPAY, 7, "unionpay") \
    X(DINERS, 8, "diners")     \
    X(MAESTRO, 9, "maestro")   \
    X(MIR, 10, "mir")
#define API_CARD_KIND_LIST(X) \
    X(CARD, 1, "card")        \
    X(DPAN, 2, "dpan")
#define API_DEDUP_LIST(X)                     \
    X(NEW, 1, "new")                          \
    X(EXISTING, 2, "existing")                \
    X(EXPIRY_UPDATED, 3, "expiry_updated")    \
    X(LINKED, 4, "linked")
#define API_PURPOSE_LIST(X)                   \
    X(AUTHORIZATION, 1, "authorization")      \
    X(REFUND, 2, "refund")                    \
    X(ACCOUNT_UPDATE, 3, "account_update")
#define API_WALLET_LIST(X)         \
    X(APPLE_PAY, 1, "apple_pay")   \
    X(GOOGLE_PAY, 2, "google_pay") \
    X(SAMSUNG_PAY, 3, "samsung_pay")
#define API_AUTH_METHOD_LIST(X)            \
    X(PAN_ONLY, 1, "PAN_ONLY")             \
    X(CRYPTOGRAM_3DS, 2, "CRYPTOGRAM_3DS")
#define API_MANDATE_KIND_LIST(X)     \
    X(RECURRING, 1, "recurring")     \
    X(UNSCHEDULED, 2, "unscheduled")
#define API_MANDATE_STATUS_LIST(X) \
    X(ACTIVE, 1, "active")         \
    X(CANCELLED, 2, "cancelled")   \
    X(ENDED, 3, "ended")
#define API_CANCELLED_BY_LIST(X) \
    X(MERCHANT, 1, "merchant")   \
    X(PAYER, 2, "payer")
#define API_QR_STATE_LIST(X) \
    X(ISSUED, 1, "issued")   \
    X(PAID, 2, "paid")       \
    X(EXPIRED, 3, "expired")
#define API_KEY_STATE_LIST(X) \
    X(CURRENT, 1, "current")  \
    X(RETIRED, 2, "retired")
#define API_KEY_CLASS_LIST(X) \
    X(AES, 1, "aes")          \
    X(HMAC, 2, "hmac")        \
    X(EC, 3, "ec")            \
    X(RSA, 4, "rsa")
/* Where a wallet key derivation or decoding runs on this HSM (hsm_path):
 * every step in the token; Z in the token and the KDF output on the host
 * (C_DigestKey); raw RSA in the token and OAEP decoding on the host; not
 * possible on this token. */
#define API_KDF_PATH_LIST(X)            \
    X(IN_TOKEN, 1, "in-token")          \
    X(DIGEST_KEY, 2, "digest-key")      \
    X(HOST_DECODE, 3, "host-decode")    \
    X(UNAVAILABLE, 4, "unavailable")

/* Values run 1..n without gaps (tested), so the count is the largest value. */
#define API__ENUM_ONE(name, num, str) +1
#define API_ENUM_MAX(list) (0 API_##list##_LIST(API__ENUM_ONE))

#define API__ENUM_MEMBER(prefix, name, num, str) prefix##name = num,
#define API__VERIFICATION(name, num, str) API__ENUM_MEMBER(API_VERIFICATION_, name, num, str)
#define API__BRAND(name, num, str) API__ENUM_MEMBER(API_BRAND_, name, num, str)
#define API__CARD_KIND(name, num, str) API__ENUM_MEMBER(API_CARD_KIND_, name, num, str)
#define API__DEDUP(name, num, str) API__ENUM_MEMBER(API_DEDUP_, name, num, str)
#define API__PURPOSE(name, num, str) API__ENUM_MEMBER(API_PURPOSE_, name, num, str)
#define API__WALLET(name, num, str) API__ENUM_MEMBER(API_WALLET_, name, num, str)
#define API__AUTH_METHOD(name, num, str) API__ENUM_MEMBER(API_AUTH_, name, num, str)
#define API__MANDATE_KIND(name, num, str) API__ENUM_MEMBER(API_MANDATE_KIND_, name, num, str)
#define API__MANDATE_STATUS(name, num, str) API__ENUM_MEMBER(API_MANDATE_, name, num, str)
#define API__CANCELLED_BY(name, num, str) API__ENUM_MEMBER(API_CANCELLED_BY_, name, num, str)
#define API__QR_STATE(name, num, str) API__ENUM_MEMBER(API_QR_, name, num, str)
#define API__KEY_STATE(name, num, str) API__ENUM_MEMBER(API_KEY_STATE_, name, num, str)
#define API__KEY_CLASS(name, num, str) API__ENUM_MEMBER(API_KEY_CLASS_, name, num, str)
#define API__KDF_PATH(name, num, str) API__ENUM_MEMBER(API_KDF_PATH_, name, num, str)
enum api_verification { API_VERIFICATION_LIST(API__VERIFICATION) };
enum api_brand { API_BRAND_LIST(API__BRAND) };
enum api_card_kind { API_CARD_KIND_LIST(API__CARD_KIND) };
enum api_dedup { API_DEDUP_LIST(API__DEDUP) };
enum api_purpose { API_PURPOSE_LIST(API__PURPOSE) };
enum api_wallet { API_WALLET_LIST(API__WALLET) };
enum api_auth_method { API_AUTH_METHOD_LIST(API__AUTH_METHOD) };
enum api_mandate_kind { API_MANDATE_KIND_LIST(API__MANDATE_KIND) };
enum api_mandate_status { API_MANDATE_STATUS_LIST(API__MANDATE_STATUS) };
enum api_cancelled_by { API_CANCELLED_BY_LIST(API__CANCELLED_BY) };
enum api_qr_state { API_QR_STATE_LIST(API__QR_STATE) };
enum api_key_state { API_KEY_STATE_LIST(API__KEY_STATE) };
enum api_key_class { API_KEY_CLASS_LIST(API__KEY_CLASS) };
enum api_kdf_path { API_KDF_PATH_LIST(API__KDF_PATH) };

/* ---- field tags ----------------------------------------------------------- */

/* X(NAME, number, type, min, max, flags, enum_list, "wire name").
 * One tag has one meaning and one type in every message that carries it.
 * min/max bound the value for integer types and the length in bytes for
 * TEXT/ID/DIGITS/BYTES/BLOB; ENUM fields take 1..max, named by enum_list;
 * LIST fields hold min..max items (an optional list has min 1: it is absent
 * when it has no items, never sent empty).
 * Wire names follow the source documents where they exist (CustomerNumber,
 * serverCardId, clientCardId, RecurringMinAmount, needCVC, ...). */
#define API_TAG_LIST(X)                                                                           \
    X(MESSAGE, 0x0001, TEXT, 1, API_MESSAGE_MAX, 0, NONE, "message")                             \
    X(ERROR_TAG, 0x0002, U16, 0, 0xFFFF, 0, NONE, "errorTag")                                    \
    X(RULE, 0x0003, ID, 1, API_RULE_MAX, 0, NONE, "rule")                                        \
    X(RETRY_AFTER_MS, 0x0004, U32, 0, API_RETRY_AFTER_MAX, 0, NONE, "retryAfterMs")             \
    X(ECHO, 0x0005, BYTES, 0, API_ECHO_MAX, 0, NONE, "echo")                                     \
    X(SERVER_TIME, 0x0006, U64, 0, API_TIME_MAX, 0, NONE, "serverTime")                            \
    X(VERSION_TEXT, 0x0007, TEXT, 1, API_VERSION_TEXT_MAX, 0, NONE, "version")                   \
    X(MERCHANT, 0x0010, ID, 1, API_ID_MAX, 0, NONE, "merchant")                                  \
    X(CUSTOMER_NUMBER, 0x0011, ID, 1, API_CUSTOMER_NUMBER_MAX, 0, NONE, "CustomerNumber")       \
    X(TOKEN, 0x0012, ID, 1, API_ID_MAX, 0, NONE, "serverCardId")                                 \
    X(CLIENT_CARD_ID, 0x0013, ID, 1, API_ID_MAX, 0, NONE, "clientCardId")                        \
    X(ORDER_ID, 0x0014, ID, 1, API_ID_MAX, 0, NONE, "orderId")                                   \
    X(MANDATE_ID, 0x0015, ID, 1, API_ID_MAX, 0, NONE, "mandateId")                               \
    X(PAYER_REF, 0x0016, ID, 1, API_ID_MAX, 0, NONE, "payerRef")                                 \
    X(AMOUNT, 0x0020, U64, 0, API_AMOUNT_MAX, 0, NONE, "amount")                                 \
    X(CURRENCY, 0x0021, CURRENCY, 3, 3, 0, NONE, "currency")                                     \
    X(MIN_AMOUNT, 0x0022, U64, 0, API_AMOUNT_MAX, 0, NONE, "RecurringMinAmount")                 \
    X(MAX_AMOUNT, 0x0023, U64, 0, API_AMOUNT_MAX, 0, NONE, "RecurringMaxAmount")                 \
    X(RECURRING_COUNT, 0x0024, U16, 1, API_RECURRING_COUNT_MAX, 0, NONE, "RecurringCount")      \
    X(RECURRING_MAX_DATE, 0x0025, DATE, 4, 4, 0, NONE, "RecurringMaxDate")                       \
    X(DATE, 0x0026, DATE, 4, 4, 0, NONE, "date")                                                 \
    X(EXPIRES_AT, 0x0027, U64, 0, API_TIME_MAX, 0, NONE, "expiresAt")                              \
    X(LIFETIME, 0x0028, U32, 1, API_LIFETIME_MAX, 0, NONE, "lifetime")                           \
    X(CREATED_AT, 0x0029, U64, 0, API_TIME_MAX, 0, NONE, "createdAt")                              \
    X(LAST_CHARGE_DATE, 0x002A, DATE, 4, 4, 0, NONE, "lastChargeDate")                           \
    X(CHARGE_COUNT, 0x002B, U32, 0, UINT32_MAX, 0, NONE, "chargeCount")                          \
    X(PAN, 0x0100, DIGITS, API_PAN_MIN, API_PAN_MAX, API_TAG_SECRET, NONE, "pan")                \
    X(EXP_MONTH, 0x0101, U8, 1, 12, 0, NONE, "expMonth")                                         \
    X(EXP_YEAR, 0x0102, U16, 2000, 2099, 0, NONE, "expYear")                                     \
    X(HOLDER, 0x0103, TEXT, 1, API_HOLDER_MAX, API_TAG_SECRET, NONE, "holder")                   \
    X(EMAIL, 0x0104, TEXT, API_EMAIL_MIN, API_EMAIL_MAX, API_TAG_SECRET, NONE, "email")          \
    X(CONSENT, 0x0105, BOOL, 0, 1, 0, NONE, "consent")                                           \
    X(VERIFICATION, 0x0106, ENUM, 1, API_ENUM_MAX(VERIFICATION), 0, VERIFICATION, "verification")                         \
    X(NEED_CVC, 0x0107, BOOL, 0, 1, 0, NONE, "needCVC")                                          \
    X(INITIAL_TXN_ID, 0x0108, ID, 1, API_ID_MAX, 0, NONE, "initialTransactionId")                \
    X(ACTIVE, 0x0109, BOOL, 0, 1, 0, NONE, "active")                                             \
    X(BIN, 0x010A, DIGITS, API_BIN_MIN, API_BIN_MAX, 0, NONE, "bin")                             \
    X(LAST4, 0x010B, DIGITS, API_LAST4_LEN, API_LAST4_LEN, 0, NONE, "last4")                     \
    X(BRAND, 0x010C, ENUM, 1, API_ENUM_MAX(BRAND), 0, BRAND, "brand")                                             \
    X(CARD_KIND, 0x010D, ENUM, 1, API_ENUM_MAX(CARD_KIND), 0, CARD_KIND, "kind")                                       \
    X(DEDUP, 0x010E, ENUM, 1, API_ENUM_MAX(DEDUP), 0, DEDUP, "dedup")                                              \
    X(PURPOSE, 0x010F, ENUM, 1, API_ENUM_MAX(PURPOSE), 0, PURPOSE, "purpose")                                        \
    X(CVC, 0x0110, DIGITS, API_CVC_MIN, API_CVC_MAX, API_TAG_SECRET | API_TAG_NEVER_STORED, NONE, "cvc") \
    X(PIN_BLOCK, 0x0111, BYTES, API_PIN_BLOCK_MIN, API_PIN_BLOCK_MAX,                            \
      API_TAG_SECRET | API_TAG_NEVER_STORED, NONE, "pinBlock")                                   \
    X(TRACK_DATA, 0x0112, TEXT, 1, API_TRACK_MAX, API_TAG_SECRET | API_TAG_NEVER_STORED, NONE,    \
      "trackData")                                                                               \
    X(CARDS, 0x0113, LIST, 0, API_LIST_ITEMS_MAX, 0, NONE, "cards")                              \
    X(WALLET, 0x0200, ENUM, 1, API_ENUM_MAX(WALLET), 0, WALLET, "wallet")                                           \
    X(PACKET, 0x0201, BLOB, 1, API_PACKET_MAX, 0, NONE, "packet")                                \
    X(WALLET_VERSION, 0x0202, ID, 1, API_WALLET_VERSION_MAX, 0, NONE, "walletVersion")           \
    X(CRYPTOGRAM, 0x0203, TEXT, 1, API_CRYPTOGRAM_MAX, API_TAG_SECRET | API_TAG_NEVER_STORED,     \
      NONE, "cryptogram")                                                                        \
    X(ECI, 0x0204, DIGITS, 1, API_ECI_MAX, 0, NONE, "eci")                                       \
    X(AUTH_METHOD, 0x0205, ENUM, 1, API_ENUM_MAX(AUTH_METHOD), 0, AUTH_METHOD, "authMethod")                             \
    X(TRANSACTION_ID, 0x0206, ID, 1, API_TRANSACTION_ID_MAX, 0, NONE, "transactionId")           \
    X(ACCESS_TOKEN_HASH, 0x0300, BYTES, API_HASH_LEN, API_HASH_LEN, 0, NONE, "accessTokenHash")  \
    X(DEVICE_DATA, 0x0301, BYTES, 1, API_DEVICE_DATA_MAX, 0, NONE, "deviceData")                 \
    X(NONCE, 0x0302, BYTES, API_NONCE_MIN, API_NONCE_MAX, 0, NONE, "nonce")                      \
    X(SIGNATURE, 0x0303, BYTES, API_SIGNATURE_LEN, API_SIGNATURE_LEN, 0, NONE, "signature")      \
    X(MAPPINGS, 0x0304, LIST, 1, API_CARD_MAPPINGS_MAX, 0, NONE, "mappings")                    \
    X(EMAIL_BOUND, 0x0305, BOOL, 0, 1, 0, NONE, "emailBound")                                    \
    X(MANDATE_KIND, 0x0400, ENUM, 1, API_ENUM_MAX(MANDATE_KIND), 0, MANDATE_KIND, "mandateKind")                          \
    X(MANDATE_STATUS, 0x0401, ENUM, 1, API_ENUM_MAX(MANDATE_STATUS), 0, MANDATE_STATUS, "mandateStatus")                    \
    X(CANCELLED_BY, 0x0402, ENUM, 1, API_ENUM_MAX(CANCELLED_BY), 0, CANCELLED_BY, "cancelledBy")                          \
    X(APPROVAL, 0x0403, ID, 1, API_ID_MAX, 0, NONE, "approval")                                  \
    X(QR_TOKEN, 0x0500, ID, 1, API_QR_TOKEN_MAX, 0, NONE, "qrToken")                             \
    X(QR_STATE, 0x0501, ENUM, 1, API_ENUM_MAX(QR_STATE), 0, QR_STATE, "qrState")                                      \
    X(PAID_AT, 0x0502, U64, 0, API_TIME_MAX, 0, NONE, "paidAt")                                    \
    X(SHARE, 0x0600, BYTES, API_SHARE_MIN, API_SHARE_MAX, API_TAG_SECRET, NONE, "share")         \
    X(SHARES_NEEDED, 0x0601, U8, 0, 255, 0, NONE, "sharesNeeded")                                \
    X(SHARES_RECEIVED, 0x0602, U8, 0, 255, 0, NONE, "sharesReceived")                            \
    X(SEALED, 0x0603, BOOL, 0, 1, 0, NONE, "sealed")                                             \
    X(OFFICER, 0x0604, ID, 1, API_ID_MAX, 0, NONE, "officer")                                    \
    X(HSM_READY, 0x0605, BOOL, 0, 1, 0, NONE, "hsmReady")                                        \
    X(RECORD_COUNT, 0x0606, U64, 0, API_COUNT_MAX, 0, NONE, "recordCount")                          \
    X(STORE_USED, 0x0607, U64, 0, API_COUNT_MAX, 0, NONE, "storeUsedBytes")                         \
    X(STORE_SIZE, 0x0608, U64, 0, API_COUNT_MAX, 0, NONE, "storeSizeBytes")                         \
    X(UPTIME, 0x0609, U64, 0, API_COUNT_MAX, 0, NONE, "uptime")                                     \
    X(APPLIANCE_ID, 0x060A, ID, 1, API_ID_MAX, 0, NONE, "applianceId")                           \
    X(KEYS, 0x060B, LIST, 0, API_LIST_ITEMS_MAX, 0, NONE, "keys")                                \
    X(LABEL, 0x060C, ID, 1, API_ID_MAX, 0, NONE, "label")                                        \
    X(KEY_VERSION, 0x060D, U32, 0, UINT32_MAX, 0, NONE, "keyVersion")                            \
    X(KCV, 0x060E, BYTES, API_KCV_MIN, API_KCV_MAX, 0, NONE, "kcv")                              \
    X(KEY_STATE, 0x060F, ENUM, 1, API_ENUM_MAX(KEY_STATE), 0, KEY_STATE, "keyState")                                   \
    X(KEY_CLASS, 0x0610, ENUM, 1, API_ENUM_MAX(KEY_CLASS), 0, KEY_CLASS, "keyClass")              \
    X(REENCRYPT_PENDING, 0x0611, BOOL, 0, 1, 0, NONE, "reencryptPending")                      \
    X(REENCRYPTED, 0x0612, U64, 0, API_COUNT_MAX, 0, NONE, "reencrypted")                       \
    X(REENCRYPT_REMAINING, 0x0613, U64, 0, API_COUNT_MAX, 0, NONE, "reencryptRemaining")        \
    X(REENCRYPT_TOTAL, 0x0614, U64, 0, API_COUNT_MAX, 0, NONE, "reencryptTotal")              \
    X(APPLE_KDF_PATH, 0x0615, ENUM, 1, API_ENUM_MAX(KDF_PATH), 0, KDF_PATH, "appleKdfPath")     \
    X(GOOGLE_KDF_PATH, 0x0616, ENUM, 1, API_ENUM_MAX(KDF_PATH), 0, KDF_PATH, "googleKdfPath")   \
    X(OAEP256_PATH, 0x0617, ENUM, 1, API_ENUM_MAX(KDF_PATH), 0, KDF_PATH, "rsaOaepSha256Path")

enum api_tag {
#define API__TAG_ENUM(name, num, type, min, max, flags, enums, wire) API_TAG_##name = num,
    API_TAG_LIST(API__TAG_ENUM)
#undef API__TAG_ENUM
};

/* What the codec knows of a tag. */
struct api_tag_info {
    uint16_t tag;
    enum api_type type;
    uint8_t flags;        /* API_TAG_* */
    uint64_t min, max;    /* value range (integers, ENUM) or length range (bytes) */
    const char *name;     /* "CUSTOMER_NUMBER": the C and documentation name */
    const char *wire;     /* "CustomerNumber": the name in JSON output and the CLI */
    const char *const *enum_names; /* ENUM: names indexed by value, [0] NULL */
};

/* The tag's description, or NULL for an undefined tag. */
const struct api_tag_info *api_tag_info(uint16_t tag);
/* Every tag, in number order; *out_num set to the count. */
const struct api_tag_info *api_tag_all(size_t *out_num);
/* Name of an ENUM value of the tag ("visa"), or NULL if out of range. */
const char *api_enum_name(uint16_t tag, unsigned value);
/* Value of the ENUM tag for a name, or -1. */
int api_enum_from_name(uint16_t tag, const char *name);
/* Name of a type ("digits"). */
const char *api_type_name(enum api_type type);

#endif
