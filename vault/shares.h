/*
 * shares.h - M-of-N secret sharing for the ceremonies (Shamir over GF(2^8),
 * libgfshare): the HSM user PIN for sealed start, and the transport key of a
 * key backup.
 *
 * What is split is never the bare secret: it is
 *     length (1 byte) || secret || random padding, SHARE_SECRET_LEN bytes,
 * because Shamir shares each byte on its own. Every share carries a check
 * value an officer can confirm later, and a share set (public) lists the
 * check value of every share and a hash of the padded secret, so that a
 * service can refuse a wrong share at once and check a reconstruction
 * before it tries a PIN on the token (a token may lock after a few wrong
 * PINs). Those public values reveal nothing useful because of the padding:
 * M-1 officers who guess the secret can compute the M-th share's bytes under
 * the secret, but not under the SHARE_PAD_MIN random bytes, so the hashes
 * cannot confirm a guess. The random bytes (padding and libgfshare's
 * coefficients) come from OpenSSL's private DRBG.
 *
 * A share names its set (a random 8-byte id), its kind (PIN or transport),
 * its index 1..N (libgfshare's x coordinate), M and N, so a share of another
 * set, another kind or another split is refused, and a share given twice is
 * counted once.
 *
 * Errors: 0 or a negative SHARE_ERR_*; share_strerror names them.
 * Everything that holds share values or secrets is wiped by its owner
 * (share_wipe, OPENSSL_cleanse).
 */
#ifndef TOKENVAULT_VAULT_SHARES_H
#define TOKENVAULT_VAULT_SHARES_H

#include <stddef.h>
#include <stdint.h>

/* Bytes split: length byte, secret, padding. */
#define SHARE_SECRET_LEN 64u
/* Random padding at least this long, so SHARE_PAYLOAD_MAX = 64 - 1 - 31. */
#define SHARE_PAD_MIN 31u
#define SHARE_PAYLOAD_MAX (SHARE_SECRET_LEN - 1u - SHARE_PAD_MIN)
#define SHARE_SET_ID_LEN 8u
/* A check value: 48 bits, printed as XXXX-XXXX-XXXX for an officer to read
 * aloud and compare with the ceremony transcript. */
#define SHARE_CHECK_LEN 6u
#define SHARE_CHECK_TEXT_LEN 14u
/* N: officers rarely number more than a handful; libgfshare allows 255. */
#define SHARE_COUNT_MAX 16u
/* M: a threshold of 1 would be no split at all. */
#define SHARE_THRESHOLD_MIN 2u
/* Encoding version in a share and a share set. */
#define SHARE_VERSION 1u
/* A share as bytes (on the officer socket, and hex in a share file):
 * version, kind, set id, index, threshold, count, value. */
#define SHARE_WIRE_LEN (1u + 1u + SHARE_SET_ID_LEN + 3u + SHARE_SECRET_LEN)
/* A share file or share set file is small text: a set of SHARE_COUNT_MAX
 * shares, with a comment line per share, takes about 1.1 KB. */
#define SHARE_FILE_MAX 2048u
#define SHARE_SECRET_CHECK_LEN 32u

enum share_kind {
    SHARE_KIND_PIN = 'P',       /* the HSM user PIN, for sealed start */
    SHARE_KIND_TRANSPORT = 'T', /* a backup's transport key */
};

enum {
    SHARE_ERR_ARG = -1,       /* caller error: M, N or length out of range */
    SHARE_ERR_FORMAT = -2,    /* not a share or set file; bad hex; bad field */
    SHARE_ERR_SET = -3,       /* a share of another set, kind or split */
    SHARE_ERR_CHECK = -4,     /* the share's value does not match its check value */
    SHARE_ERR_DUPLICATE = -5, /* that index was given already */
    SHARE_ERR_TOO_FEW = -6,   /* fewer than M shares */
    SHARE_ERR_COMBINE = -7,   /* the shares do not rebuild the secret */
    SHARE_ERR_RANDOM = -8,    /* the random generator failed */
    SHARE_ERR_NO_MEMORY = -9,
};

const char *share_strerror(int err);

struct share {
    uint8_t kind;
    uint8_t set_id[SHARE_SET_ID_LEN];
    uint8_t index; /* 1..count */
    uint8_t threshold, count;
    uint8_t value[SHARE_SECRET_LEN]; /* secret */
};

/* The public facts of one split. */
struct share_set {
    uint8_t kind;
    uint8_t set_id[SHARE_SET_ID_LEN];
    uint8_t threshold, count;
    uint8_t check[SHARE_COUNT_MAX][SHARE_CHECK_LEN];
    uint8_t secret_check[SHARE_SECRET_CHECK_LEN];
};

/* share_split pads |secret| (1..SHARE_PAYLOAD_MAX bytes) and splits it into
 * |count| shares (out_shares[0..count-1], indexes 1..count), any |threshold|
 * of which rebuild it. SHARE_THRESHOLD_MIN <= threshold <= count <=
 * SHARE_COUNT_MAX. On error nothing is written. */
int share_split(struct share_set *out_set, struct share *out_shares, uint8_t kind,
                unsigned threshold, unsigned count, const uint8_t *secret, size_t len);

/* The check value of a share: the first SHARE_CHECK_LEN bytes of SHA-256
 * over a domain string and the share's wire bytes. */
void share_check_value(const struct share *sh, uint8_t out[SHARE_CHECK_LEN]);
/* "XXXX-XXXX-XXXX" and a NUL into |out| (SHARE_CHECK_TEXT_LEN + 1 bytes). */
void share_check_text(const uint8_t check[SHARE_CHECK_LEN], char out[SHARE_CHECK_TEXT_LEN + 1]);

/* share_verify: |sh| belongs to |set| (kind, id, M, N, index in range) and
 * its check value matches. SHARE_ERR_SET or SHARE_ERR_CHECK. The comparison
 * is constant time. */
int share_verify(const struct share_set *set, const struct share *sh);

/* share_combine rebuilds the secret from |num| shares of |set| (each
 * verified; duplicates refused), checks it against the set's secret hash and
 * writes the payload to |out| (cap >= SHARE_PAYLOAD_MAX is always enough).
 * Errors: SHARE_ERR_TOO_FEW, SHARE_ERR_DUPLICATE, SHARE_ERR_SET,
 * SHARE_ERR_CHECK, SHARE_ERR_COMBINE, SHARE_ERR_ARG. Working copies are
 * wiped. */
int share_combine(const struct share_set *set, const struct share *shares, size_t num,
                  uint8_t *out, size_t cap, size_t *out_len);

/* Wire bytes of a share (SHARE_WIRE_LEN), and back through a cursor: wrong
 * length, version or field is SHARE_ERR_FORMAT. */
void share_encode(const struct share *sh, uint8_t out[SHARE_WIRE_LEN]);
int share_decode(struct share *out, const uint8_t *in, size_t len);

/* A share file: comment lines saying what the share is (kind, set, index,
 * M, N, check value) and one line "tokenvault-share-1:<hex of the wire
 * bytes>". share_format writes it NUL-terminated into |out| (cap >=
 * SHARE_FILE_MAX); share_parse reads one (comment and empty lines ignored;
 * anything else refused). */
int share_format(const struct share *sh, char *out, size_t cap, size_t *out_len);
int share_parse(struct share *out, const char *text, size_t len);

/* A share set file: comments and one line "tokenvault-share-set-1:<hex>". */
int share_set_format(const struct share_set *set, char *out, size_t cap, size_t *out_len);
int share_set_parse(struct share_set *out, const char *text, size_t len);

/* Wipes a share's value. */
void share_wipe(struct share *sh);

#endif
