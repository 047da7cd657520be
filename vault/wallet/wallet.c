/*
 * wallet.c - the wallet modules' error codes and their API statuses.
 */
#include "vault/wallet/wallet.h"

#include <openssl/crypto.h>

/* X(code, name, status, description) */
#define WALLET_ERR_LIST(X)                                                                      \
    X(WALLET_OK, "OK", OK, "success")                                                           \
    X(WALLET_ERR_FORMAT, "FORMAT", BAD_VALUE, "malformed packet")                                \
    X(WALLET_ERR_ABSENT, "ABSENT", BAD_VALUE, "a required item is absent")                       \
    X(WALLET_ERR_NO_MEMORY, "NO_MEMORY", INTERNAL, "out of memory")                              \
    X(WALLET_ERR_UNSUPPORTED, "UNSUPPORTED", BAD_VALUE, "unsupported version or algorithm")      \
    X(WALLET_ERR_UNKNOWN_KEY, "UNKNOWN_KEY", NOT_FOUND, "no key of this merchant matches")       \
    X(WALLET_ERR_SIGNATURE, "SIGNATURE", SIGNATURE_INVALID, "a signature does not verify")       \
    X(WALLET_ERR_CHAIN, "CHAIN", SIGNATURE_INVALID, "certificate chain refused")                 \
    X(WALLET_ERR_EXPIRED, "EXPIRED", EXPIRED, "certificate, key or message expired")             \
    X(WALLET_ERR_SIGNING_TIME, "SIGNING_TIME", EXPIRED, "signing time outside the window")       \
    X(WALLET_ERR_DECRYPT, "DECRYPT", SIGNATURE_INVALID, "the packet does not decrypt")           \
    X(WALLET_ERR_MISMATCH, "MISMATCH", MISMATCH, "amount or currency differs")                   \
    X(WALLET_ERR_HSM, "HSM", HSM_UNAVAILABLE, "the HSM failed")                                  \
    X(WALLET_ERR_NO_ANCHOR, "NO_ANCHOR", INTERNAL, "no trust anchor in the HSM")

const char *
wallet_strerror(int err)
{
    switch (err) {
#define WALLET__DESC(code, name, status, desc) \
    case code:                                 \
        return desc;
        WALLET_ERR_LIST(WALLET__DESC)
#undef WALLET__DESC
    }
    return "unknown wallet error";
}

const char *
wallet_err_name(int err)
{
    switch (err) {
#define WALLET__NAME(code, name, status, desc) \
    case code:                                 \
        return name;
        WALLET_ERR_LIST(WALLET__NAME)
#undef WALLET__NAME
    }
    return "UNKNOWN";
}

enum api_status
wallet_status(int err)
{
    switch (err) {
#define WALLET__STATUS(code, name, status, desc) \
    case code:                                   \
        return API_STATUS_##status;
        /* Codes with the same status make identical cases: one per table row. */
        WALLET_ERR_LIST(WALLET__STATUS) /* NOLINT(bugprone-branch-clone): generated */
#undef WALLET__STATUS
    }
    return API_STATUS_INTERNAL;
}

void
wallet_card_wipe(struct wallet_card *c)
{
    if (c != NULL)
        OPENSSL_cleanse(c, sizeof(*c));
}
