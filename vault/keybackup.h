/*
 * keybackup.h - the key backup file of the backup / restore ceremonies: the
 * vault's long-term keys wrapped under a transport key (AES-KWP, in the HSM),
 * each with its label, kind, public key (pairs) and check value, the whole
 * file authenticated with an HMAC whose key is derived from the transport
 * key. The transport key itself is never in the file: it exists as M-of-N
 * officer shares (vault/shares.h, kind SHARE_KIND_TRANSPORT), whose set id
 * the file names. The file alone, or fewer than M shares, reveals nothing.
 *
 * Bytes (big-endian), docs/OPERATIONS.md "Key backup":
 *   "TVKB" | version u8 | share set id [8] | created_ms u64 | count u16
 *   count × { label str8 | kind u8 | kcv [3] | spki u16-prefixed |
 *             wrapped u16-prefixed }
 *   u16 objects × { type u8 | label str8 | set str8 | expiration_ms u64 |
 *                   der u16-prefixed }   (wallet certificates, trust anchors:
 *                                         public data, carried in clear)
 *   HMAC-SHA256(K_mac, everything before), K_mac = HMAC-SHA256(transport
 *   key, "tokenvault key backup mac v1")
 */
#ifndef TOKENVAULT_VAULT_KEYBACKUP_H
#define TOKENVAULT_VAULT_KEYBACKUP_H

#include <stddef.h>
#include <stdint.h>

#include "hsm/hsm.h"
#include "vault/shares.h"

#define KEYBACKUP_VERSION 1u
/* Keys in one backup: an appliance holds tens (vault keys, wallet keys of
 * each merchant and their rotations). */
#define KEYBACKUP_KEYS_MAX 512u
#define KEYBACKUP_MAC_LEN 32u
/* Wallet certificates and trust anchors in one backup. */
#define KEYBACKUP_OBJS_MAX 256u
/* Largest file: every key and object at its largest. */
#define KEYBACKUP_FILE_MAX                                                                         \
    (25u + KEYBACKUP_KEYS_MAX * (1u + HSM_LABEL_MAX + 4u + 4u + HSM_SPKI_MAX + HSM_BACKUP_WRAPPED_MAX) + \
     KEYBACKUP_OBJS_MAX * (1u + 1u + HSM_LABEL_MAX + 1u + HSM_ANCHOR_SET_MAX + 8u + 2u + HSM_CERT_MAX) + \
     KEYBACKUP_MAC_LEN)

struct keybackup_key {
    char label[HSM_LABEL_MAX + 1];
    uint8_t kind;             /* hsm_key_kind */
    uint8_t kcv[HSM_KCV_LEN]; /* secret: hsm_key_digest_kcv; pair: SHA-256(SPKI) */
    uint8_t spki[HSM_SPKI_MAX];
    size_t spki_len;          /* 0 for secret keys */
    uint8_t wrapped[HSM_BACKUP_WRAPPED_MAX];
    size_t wrapped_len;
};

/* A wallet object (hsm_wallet_obj): a wallet's certificate for one of the
 * keys, an anchor certificate, or an anchor key with its expiry. */
struct keybackup_obj {
    uint8_t type; /* hsm_wallet_obj_type */
    char label[HSM_LABEL_MAX + 1];
    char set[HSM_ANCHOR_SET_MAX + 1];
    uint64_t expiration_ms;
    uint8_t der[HSM_CERT_MAX];
    size_t der_len;
};

struct keybackup {
    uint8_t set_id[SHARE_SET_ID_LEN];
    uint64_t created_ms;
    size_t num;
    struct keybackup_key *keys; /* num entries, owned */
    size_t num_objs;
    struct keybackup_obj *objs; /* num_objs entries, owned; may be NULL */
};

/* Errors: 0 or a negative KEYBACKUP_ERR_*. */
enum {
    KEYBACKUP_ERR_FORMAT = -1, /* not a key backup, or a field out of range */
    KEYBACKUP_ERR_MAC = -2,    /* altered, or another transport key */
    KEYBACKUP_ERR_NO_MEMORY = -3,
};

/* keybackup_encode writes |b| and its MAC into a new buffer (*out, free it
 * with free()). */
int keybackup_encode(const struct keybackup *b, const uint8_t tkey[HSM_TRANSPORT_KEY_LEN],
                     uint8_t **out, size_t *out_len);

/* keybackup_decode checks the MAC (constant time) before it reads anything,
 * then parses through a cursor. On success *out owns its keys
 * (keybackup_free). */
int keybackup_decode(struct keybackup *out, const uint8_t *in, size_t len,
                     const uint8_t tkey[HSM_TRANSPORT_KEY_LEN]);

/* keybackup_parse parses the body without the MAC check (the fuzz target;
 * keybackup_decode calls it after the check). |len| excludes the MAC. */
int keybackup_parse(struct keybackup *out, const uint8_t *in, size_t len);

/* Frees the keys (wiping the wrapped blobs). NULL accepted. */
void keybackup_free(struct keybackup *b);

#endif
