/*
 * wallet.h - what the wallet modules share: their error codes, the limits of
 * a packet, and what a decrypted packet yields (struct wallet_card).
 *
 * The modules under vault/wallet/:
 *   codec.h    strict base64, base64url, hex and JSON (pure)
 *   anchors.h  what officers hand the wallet-key ceremonies: Google's
 *              keys.json, the merchant id in an Apple certificate (pure)
 *   apple.h    Apple Pay EC_v1 / RSA_v1
 *   google.h   Google Pay ECv1 / ECv2 / ECv2SigningOnly
 *   samsung.h  Samsung Pay JWE
 * Each format module has a pure parser (packet -> fields, decrypted JSON ->
 * wallet_card; fuzzed) and an open function that runs every signature check
 * and every key operation in the HSM through hsm/.
 *
 * Errors: 0 or a negative WALLET_ERR_*; wallet_status() maps each to the
 * stable API status a caller sees. A failing function may write a reason to
 * a caller's |why| buffer (WALLET_WHY_MAX): printable ASCII, naming the check
 * that failed, never a key, PAN or cryptogram byte.
 *
 * Formats: ../shared/WALLETS.md (condensed from Apple's "Payment token format
 * reference", Google's "Payment data cryptography", RFC 7516).
 */
#ifndef TOKENVAULT_VAULT_WALLET_WALLET_H
#define TOKENVAULT_VAULT_WALLET_WALLET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "api/proto.h"

#define WALLET_WUR __attribute__((warn_unused_result))

enum {
    WALLET_OK = 0,
    WALLET_ERR_FORMAT = -1,      /* malformed: JSON, base64, ASN.1, a field missing or unknown */
    WALLET_ERR_ABSENT = -2,      /* well formed, but the asked-for item is not there */
    WALLET_ERR_NO_MEMORY = -3,
    WALLET_ERR_UNSUPPORTED = -4, /* a version, algorithm or encryption this vault does not take */
    WALLET_ERR_UNKNOWN_KEY = -5, /* no key of this merchant matches publicKeyHash, kid, recipient */
    WALLET_ERR_SIGNATURE = -6,   /* a signature does not verify (CMS, intermediate, message) */
    WALLET_ERR_CHAIN = -7,       /* certificates: marker OID missing, not to the pinned root */
    WALLET_ERR_EXPIRED = -8,     /* a certificate, key or message out of its validity */
    WALLET_ERR_SIGNING_TIME = -9, /* CMS signing time too far from the verification time */
    WALLET_ERR_DECRYPT = -10,    /* tag or MAC wrong, key does not open the packet */
    WALLET_ERR_MISMATCH = -11,   /* amount or currency differs from what the gateway expects */
    WALLET_ERR_HSM = -12,        /* the HSM failed (not the packet) */
    WALLET_ERR_NO_ANCHOR = -13,  /* no trust anchor of this kind in the HSM */
};

/* Room for a reason (see above). */
#define WALLET_WHY_MAX 160
/* Largest packet taken (the RPC's limit: JSON or JWE text). */
#define WALLET_PACKET_MAX API_PACKET_MAX
/* JSON nesting accepted in a packet or its plaintext: the deepest real
 * packet (Google's billingAddress inside paymentMethodDetails inside the
 * message) is 3. */
#define WALLET_JSON_DEPTH_MAX 8
/* Wallet times (Google's keyExpiration and messageExpiration, Samsung's
 * utc) are epoch milliseconds as decimal strings; anything past
 * 9999-12-31T23:59:59.999Z is no date. */
#define WALLET_EXPIRATION_MAX_MS 253402300799999ULL

/* wallet_strerror: a constant description of |err|. */
const char *wallet_strerror(int err);

/* wallet_err_name: the code's stable name ("SIGNATURE", "EXPIRED", ...). */
const char *wallet_err_name(int err);

/* wallet_status: the API status a caller gets for |err| (API_STATUS_OK for 0). */
enum api_status wallet_status(int err);

/* What one decrypted packet says about the card and the payment. Fields
 * marked secret are wiped with wallet_card_wipe when done. */
struct wallet_card {
    uint8_t wallet;                                /* enum api_wallet */
    char version[API_WALLET_VERSION_MAX + 1];      /* "EC_v1", "ECv2", "RSA1_5/A128GCM" ... */
    char pan[API_PAN_MAX + 1];                     /* secret: the device PAN (or FPAN) */
    uint8_t exp_month;                             /* 1..12 */
    uint16_t exp_year;                             /* four digits */
    bool has_holder;
    char holder[API_HOLDER_MAX + 1];               /* secret */
    uint8_t auth_method;                           /* enum api_auth_method */
    bool has_cryptogram;
    char cryptogram[API_CRYPTOGRAM_MAX + 1];       /* secret; returned once, never stored */
    bool has_eci;
    char eci[API_ECI_MAX + 1];                     /* digits */
    bool has_amount;
    uint64_t amount;                               /* minor units */
    bool has_currency;
    char currency[API_CURRENCY_LEN + 1];           /* ISO 4217 alphabetic */
    /* The id a replay is recognised by: Apple transactionId (hex), Google
     * messageId; Samsung packets carry none, so the caller makes one. */
    char transaction_id[API_TRANSACTION_ID_MAX + 1];
    /* Until when (epoch ms) the packet could be presented again: a replay
     * entry must live at least this long. */
    uint64_t valid_until_ms;
    /* The wallet lets the card be kept on file (Apple merchant token). */
    bool cof_allowed;
};

/* wallet_card_wipe clears every field of |c| (secrets included). NULL is accepted. */
void wallet_card_wipe(struct wallet_card *c);

#endif
