/*
 * hsm.h - the vault's only door to PKCS#11.
 *
 * Every key the vault owns lives in the token; this interface offers named
 * operations on them ("HMAC under the fingerprint key", "unwrap a DEK under the
 * KEK") and never hands out key material, with two documented exceptions where a
 * PKCS#11 2.40 token cannot keep a per-message key inside (the wallet KDF outputs
 * of hsm_apple_kdf and hsm_hkdf_sha256, and the OAEP decoding fallback of
 * hsm_rsa_unwrap_aes). SECURITY.md lists where each step runs.
 *
 * Objects:
 *   hsm          one loaded module, one token, one login. Thread-safe.
 *   hsm_session  one PKCS#11 session, taken from the pool by one thread at a time.
 *   hsm_key      a named long-term key (or the DEK session object); owned by the
 *                hsm, valid until hsm_close, survives re-login (it is re-found by
 *                label, or re-unwrapped, after the token comes back).
 *   hsm_obj      a transient object (derived secret, imported per-message key)
 *                that lives in the session that made it; destroy it with
 *                hsm_obj_destroy before releasing the session.
 *
 * Errors: every function returns 0 or a negative HSM_ERR_* code. Out-params are
 * written only on success. hsm_last_detail() gives the failing PKCS#11 call and
 * its CKR_ name for the log (never key material).
 */
#ifndef TOKENVAULT_HSM_HSM_H
#define TOKENVAULT_HSM_HSM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define HSM_WUR __attribute__((warn_unused_result))

/* Key check values are 3 bytes (PKCS#11 3.0 CKA_CHECK_VALUE, ANSI X9.24). */
#define HSM_KCV_LEN 3

/* Error codes. Stable: tools print them and later layers map them to statuses. */
enum {
    HSM_OK = 0,
    HSM_ERR_INVALID_ARG = -1,  /* caller error: NULL, bad length, bad label */
    HSM_ERR_MODULE = -2,       /* module cannot be loaded or initialized */
    HSM_ERR_TOKEN = -3,        /* no token matches the label or URI */
    HSM_ERR_PIN_SOURCE = -4,   /* PIN source unusable (mode, owner, size) */
    HSM_ERR_LOGIN = -5,        /* PIN refused, locked, or not initialized */
    HSM_ERR_UNAVAILABLE = -6,  /* device or session lost; retried with backoff */
    HSM_ERR_KEY_NOT_FOUND = -7,
    HSM_ERR_KEY_TYPE = -8,     /* key of the wrong type or not permitted for the use */
    HSM_ERR_VERIFY = -9,       /* MAC, signature, tag or padding check failed */
    HSM_ERR_MECHANISM = -10,   /* the token lacks the mechanism or parameters */
    HSM_ERR_BUFFER = -11,      /* output buffer too small */
    HSM_ERR_NO_MEMORY = -12,
    HSM_ERR_EXISTS = -13,      /* a key with that label already exists */
    HSM_ERR_INPUT = -14,       /* malformed data (bad point, bad length, bad DER) */
    HSM_ERR_INTERNAL = -15,    /* a CKR_ the vault does not expect; see detail */
};

/* Short, stable name of an HSM_ERR_* code ("HSM_ERR_VERIFY"). Never NULL. */
const char *hsm_strerror(int err);

/* The last failure on this thread: "C_Sign: CKR_KEY_TYPE_INCONSISTENT" or a
 * message from the hsm layer itself. Borrowed, thread-local, valid until the next
 * hsm call on this thread. Contains no secret. */
const char *hsm_last_detail(void);

/* ---- PIN sources ------------------------------------------------------- */

/* A PIN source yields the user PIN when the hsm logs in (at open and at every
 * re-login). The PIN is copied into a buffer that the hsm wipes right after
 * C_Login. A source never stores the PIN as a string literal. */
typedef struct hsm_pin_source hsm_pin_source;

/* Largest PIN accepted, bytes. PKCS#11 tokens use far less; the bound keeps a
 * wrongly chosen file (a key, a log) from being read into memory. */
#define HSM_PIN_MAX 256
/* Buffer for reading one: a PIN, its newline, and one byte to detect excess. */
#define HSM_PIN_BUF (HSM_PIN_MAX + 3)

/* hsm_pin_source_file returns a source that reads the PIN from |path| on each
 * login. The file must be a regular file owned by the effective user, with no
 * group or other permission bits (0600 or 0400), 1..HSM_PIN_MAX bytes, one
 * trailing newline allowed. Checked at every read, so a file whose mode was
 * widened later is refused at the next login. *out is owned; the path is
 * copied. */
HSM_WUR int hsm_pin_source_file(hsm_pin_source **out, const char *path);

/* hsm_pin_source_callback returns a source that calls |get| to fill |buf| with
 * up to |cap| bytes and store the length in |*out_len|; |get| returns 0 or a
 * negative HSM_ERR_*. Used by sealed start (PIN reconstructed from officer
 * shares). |ctx| is borrowed. */
typedef int (*hsm_pin_get_fn)(void *ctx, uint8_t *buf, size_t cap, size_t *out_len);
HSM_WUR int hsm_pin_source_callback(hsm_pin_source **out, hsm_pin_get_fn get, void *ctx);

/* hsm_pin_source_read fills |buf| (cap >= HSM_PIN_BUF) with the PIN. The caller
 * wipes |buf|. Exposed for tools that must hand the PIN to another program. */
HSM_WUR int hsm_pin_source_read(hsm_pin_source *src, uint8_t *buf, size_t cap, size_t *out_len);

/* Frees a source; NULL is accepted. */
void hsm_pin_source_free(hsm_pin_source *src);

/* ---- Module, token, login ---------------------------------------------- */

typedef struct hsm hsm;
typedef struct hsm_session hsm_session;
typedef struct hsm_key hsm_key;
typedef unsigned long hsm_obj;
#define HSM_OBJ_NONE 0UL

/* Default number of pooled sessions: one per worker thread plus the tools'. */
#define HSM_SESSIONS_DEFAULT 8
/* Backoff between re-open attempts after the device is lost. */
#define HSM_BACKOFF_INITIAL_MS 100
#define HSM_BACKOFF_MAX_MS 10000
/* hsm_config.recycle_after_objects: decided by the module (see there). */
#define HSM_RECYCLE_AUTO UINT64_MAX
/* What AUTO picks for a SoftHSM before 2.7: about 200-300 MB of retained
 * object shells between recycles (measured: 196 bytes per bare AES key,
 * about 850 bytes per wallet packet). */
#define HSM_RECYCLE_SOFTHSM_OBJECTS 1000000u
/* How long a recycle waits for the lent sessions to come back before it
 * gives up for now (a thread may hold one while it waits for another). */
#define HSM_RECYCLE_DRAIN_MS 2000u

typedef struct hsm_config {
    const char *module_path;  /* PKCS#11 module, e.g. /usr/lib/softhsm/libsofthsm2.so */
    const char *token_label;  /* exact token label; or NULL when token_uri is set */
    const char *token_uri;    /* RFC 7512 URI ("pkcs11:token=tokenvault"); or NULL */
    const char *init_args;    /* module-specific C_Initialize pReserved string, or NULL */
    unsigned max_sessions;    /* 0 = HSM_SESSIONS_DEFAULT */
    unsigned backoff_initial_ms; /* 0 = HSM_BACKOFF_INITIAL_MS */
    unsigned backoff_max_ms;     /* 0 = HSM_BACKOFF_MAX_MS */
    /* Token objects (long-term keys, certificates, anchors) are made
     * without CKA_COPYABLE and CKA_ALLOWED_MECHANISMS, for a module that
     * cannot store them: NSS softokn's database refuses either with
     * CKR_GENERAL_ERROR. Such a module does not enforce
     * CKA_WRAP_WITH_TRUSTED either, so long-term keys are made never
     * extractable (no backup clone). The usage flags still limit each key,
     * but the token no longer forbids a copy or pins the mechanism: an
     * opt-in for a test or evidence token, shown by hsm_probe and `keys`,
     * never the default. Session objects keep both. */
    bool reduced_key_attributes;
    /* SoftHSM before 2.7 never frees a destroyed session object: its shell
     * stays in the module's store until C_Finalize (SoftHSMv2 issues 562,
     * 563), so every per-message key (an ECDH secret, a content key) grows
     * the process by a few hundred bytes for good. After this many
     * temporary objects destroyed, the next hsm_session_acquire recycles
     * the module: it waits for the lent sessions to come back, closes them,
     * C_Finalize, C_Initialize, logs in again and bumps the generation (key
     * handles are found again and DEKs unwrapped again on first use, as
     * after a lost token). 0 (a zeroed config: the tools): never.
     * HSM_RECYCLE_AUTO (what tokenvaultd passes unless configured):
     * HSM_RECYCLE_SOFTHSM_OBJECTS for SoftHSM 2.6 and older, never for any
     * other module. */
    uint64_t recycle_after_objects;
} hsm_config;

/* hsm_open loads the module (dlopen + C_GetFunctionList), calls C_Initialize
 * with CKF_OS_LOCKING_OK (SoftHSM corrupts memory under threads without it),
 * finds the token, opens a keeper session, logs in as CKU_USER with a PIN read
 * from |pin| (wiped right after), and probes the token's mechanisms.
 * |pin| stays borrowed for the life of the hsm (it is read again on re-login).
 * One hsm per module per process: PKCS#11 allows one C_Initialize per
 * application, so a second hsm_open of the same module fails HSM_ERR_MODULE.
 * Errors: HSM_ERR_MODULE, HSM_ERR_TOKEN, HSM_ERR_PIN_SOURCE, HSM_ERR_LOGIN,
 * HSM_ERR_UNAVAILABLE, HSM_ERR_NO_MEMORY. On error nothing stays loaded. */
HSM_WUR int hsm_open(hsm **out, const hsm_config *cfg, hsm_pin_source *pin);

/* hsm_close closes every session, logs out, C_Finalize, dlclose. All sessions
 * must have been released. NULL is accepted. */
void hsm_close(hsm *h);

/* Token facts for STATUS and tools. Strings are borrowed from |h|. */
typedef struct hsm_token_info {
    const char *label;
    const char *manufacturer;
    const char *model;
    const char *serial;
    unsigned cryptoki_major, cryptoki_minor; /* of the module */
    unsigned long slot_id;
    uint64_t generation; /* bumped at every successful re-login */
    uint64_t recycles;   /* planned re-initializations (recycle_after_objects) */
    uint64_t recycle_after_objects; /* in force: 0 never */
    uint64_t temp_objects_destroyed; /* since hsm_open */
} hsm_token_info;
void hsm_token_info_get(hsm *h, hsm_token_info *out);

/* hsm_session_acquire takes a session from the pool, opening one if fewer than
 * max_sessions exist, waiting for one otherwise. If the token was lost it first
 * tries to recover (re-open, re-login) unless the backoff period is running;
 * then it returns HSM_ERR_UNAVAILABLE at once. The session belongs to the
 * calling thread until hsm_session_release. */
HSM_WUR int hsm_session_acquire(hsm *h, hsm_session **out);

/* Returns a session to the pool (or closes it if it failed). NULL accepted. */
void hsm_session_release(hsm_session *s);

/* hsm_user_pin_change sets a new user PIN (C_SetPIN; the old one is read
 * from the hsm's PIN source) on the logged-in token. The login stays valid;
 * the PIN source is from now on stale, so a re-login with it fails: the
 * caller (pin-split) closes the hsm soon after. HSM_ERR_INPUT if the token
 * refuses the new PIN's length or characters, HSM_ERR_LOGIN if it refuses
 * the old one. The caller wipes |new_pin|. */
HSM_WUR int hsm_user_pin_change(hsm_session *s, const uint8_t *new_pin, size_t new_len);

/* ---- Keys --------------------------------------------------------------- */

/* The kinds of long-term key in DESIGN.md section 4, each with its template. */
typedef enum hsm_key_kind {
    HSM_KIND_KEK = 1,     /* AES-256: wrap/unwrap with AES-KWP only */
    HSM_KIND_HMAC,        /* generic secret, 32 bytes: HMAC-SHA256 sign/verify only */
    HSM_KIND_EC_SIGN,     /* EC P-256 pair: ECDSA sign (private), verify (public) */
    HSM_KIND_EC_DERIVE,   /* EC P-256 pair: ECDH derive only (wallet EC keys) */
    HSM_KIND_RSA_UNWRAP,  /* RSA-2048 pair: unwrap only, sensitive results */
    HSM_KIND_RSA_DECRYPT, /* RSA-2048 pair: raw decrypt for the OAEP-SHA256 fallback */
    HSM_KIND_DEK,         /* AES-256 session object unwrapped from the KEK: GCM only */
    /* Wallet keys that must sign their own certificate request (proof of
     * possession); the trade-off is explained at their templates (keys.c). */
    HSM_KIND_EC_DERIVE_SIGN,  /* EC P-256 pair: ECDH derive + ECDSA (Apple Pay EC_v1) */
    HSM_KIND_RSA_UNWRAP_SIGN, /* RSA-2048 pair: unwrap + SHA256-RSA-PKCS sign (Samsung Pay) */
} hsm_key_kind;

/* Name of a kind ("kek", "hmac", ...). Never NULL. */
const char *hsm_key_kind_name(hsm_key_kind kind);

/* Longest label accepted (PKCS#11 imposes none; ours are short and printable). */
#define HSM_LABEL_MAX 64

/* hsm_key_generate creates a token key (or key pair) of |kind| labelled
 * |label| (also its CKA_ID), with every usage attribute set explicitly:
 * SENSITIVE, not EXTRACTABLE, not MODIFIABLE, only the usages of the kind, and
 * CKA_ALLOWED_MECHANISMS. HSM_KIND_DEK is refused (see hsm_dek_generate).
 * Errors: HSM_ERR_EXISTS if the label is taken, HSM_ERR_INVALID_ARG for a bad
 * label. *out is borrowed from the hsm. */
HSM_WUR int hsm_key_generate(hsm_session *s, hsm_key_kind kind, const char *label, hsm_key **out);

/* hsm_key_find finds the private or secret key labelled |label| (exactly one
 * must exist) and caches its handle. HSM_ERR_KEY_NOT_FOUND if none. */
HSM_WUR int hsm_key_find(hsm_session *s, const char *label, hsm_key **out);

/* hsm_key_find_by_id: the same, by CKA_ID bytes. */
HSM_WUR int hsm_key_find_by_id(hsm_session *s, const uint8_t *id, size_t id_len, hsm_key **out);

/* hsm_key_find_latest finds the highest version of a versioned key: labels
 * "<base>-v<N>" (N decimal, 1..999999, no leading zero). Versions let the vault
 * rotate: the newest encrypts, older ones only decrypt. */
HSM_WUR int hsm_key_find_latest(hsm_session *s, const char *base, hsm_key **out, unsigned *out_version);

/* hsm_key_versioned_label writes "<base>-v<version>" into |out|. */
HSM_WUR int hsm_key_versioned_label(char *out, size_t cap, const char *base, unsigned version);

/* Facts about a key, read from the token. Strings are in the struct. */
typedef struct hsm_key_info {
    char label[HSM_LABEL_MAX + 1];
    hsm_key_kind kind;
    const char *type;        /* "AES-256", "GENERIC-SECRET-256", "EC-P256", "RSA-2048" */
    int token, private_, sensitive, extractable, always_sensitive, never_extractable;
    int wrap_with_trusted; /* extractable only under an SO-made trusted key */
    int modifiable, copyable;
    int encrypt, decrypt, sign, verify, wrap, unwrap, derive;
    int local; /* CKA_LOCAL: made in this token (1), or imported or unwrapped (0) */
    /* Key check value: for secret keys CKA_CHECK_VALUE as computed by the token
     * (AES: first 3 bytes of AES-ECB of a zero block; generic secret: first 3
     * bytes of SHA-1 of the value, PKCS#11 3.0 section 4.10). For key pairs: the
     * first 3 bytes of SHA-256 of the public key's DER SubjectPublicKeyInfo. */
    uint8_t kcv[HSM_KCV_LEN];
    const char *kcv_method;  /* "AES-ECB(0^128)", "SHA-1(value)", "SHA-256(SPKI)" */
} hsm_key_info;

HSM_WUR int hsm_key_info_get(hsm_session *s, hsm_key *key, hsm_key_info *out);

/* hsm_key_list visits every private or secret token key with a label; |fn|
 * returns 0 to continue. Order: by label. */
typedef int (*hsm_key_visit_fn)(void *ctx, hsm_key *key);
HSM_WUR int hsm_key_list(hsm_session *s, hsm_key_visit_fn fn, void *ctx);

/* hsm_key_label returns the key's label (borrowed from the key). */
const char *hsm_key_label(const hsm_key *key);

/* hsm_key_public_spki writes the DER SubjectPublicKeyInfo of a key pair's
 * public half. HSM_ERR_BUFFER with *out_len set to the size needed. */
HSM_WUR int hsm_key_public_spki(hsm_session *s, hsm_key *key, uint8_t *out, size_t cap, size_t *out_len);

/* ---- Wrapped keys: generated in the token, stored wrapped, used as session objects
 *
 * Two kinds of key live outside the token between starts, wrapped under a
 * KEK, and inside it only as non-extractable session objects: the DEKs
 * (HSM_KIND_DEK: AES-256, GCM only) and the vault's session tag keys
 * (HSM_KIND_HMAC: a 32-byte generic secret, HMAC-SHA256 sign and verify
 * only). A session object is also the fast kind: SoftHSM 2.6 re-reads a
 * token object's file before every operation that uses it, and not a
 * session object's (BENCHMARKS.md). */

/* Size of a 32-byte key wrapped with AES-KWP (RFC 5649): key + 8-byte ICV. */
#define HSM_WRAPPED_KEY_LEN 40
#define HSM_WRAPPED_DEK_LEN HSM_WRAPPED_KEY_LEN

/* hsm_wrapped_generate makes a fresh 32-byte key of |kind| (HSM_KIND_DEK or
 * HSM_KIND_HMAC) in the token and returns it wrapped under |kek| with
 * CKM_AES_KEY_WRAP_PAD, with its key check value as the token computed it at
 * generation (CKA_CHECK_VALUE: AES-ECB of a zero block for a DEK, SHA-1 of
 * the value for a generic secret). Store both: tokens do not compute the KCV
 * of an unwrapped key. The clear key never leaves the token; the generated
 * object, usable for nothing but being wrapped, is destroyed before return.
 * HSM_ERR_INVALID_ARG for another kind. */
HSM_WUR int hsm_wrapped_generate(hsm_session *s, hsm_key *kek, hsm_key_kind kind,
                                 uint8_t out_wrapped[HSM_WRAPPED_KEY_LEN],
                                 uint8_t out_kcv[HSM_KCV_LEN]);

/* hsm_wrapped_load unwraps |wrapped| under |kek| into a sensitive,
 * non-extractable session object of |kind| kept by the hsm's own keeper
 * session (so it outlives the caller's session) and named |label|: a DEK
 * that may only do AES-GCM, or an HMAC key that may only sign and verify
 * with CKM_SHA256_HMAC. |kcv| (HSM_KCV_LEN bytes) is the value
 * hsm_wrapped_generate returned: checked against the token's when the token
 * computes one for unwrapped keys, and reported by hsm_key_info_get. After a
 * re-login or a module recycle the key is unwrapped again on first use.
 * HSM_ERR_VERIFY if the blob does not unwrap or the KCV does not match
 * (wrong KEK, tampered blob). *out is borrowed from the hsm. */
HSM_WUR int hsm_wrapped_load(hsm_session *s, hsm_key *kek, hsm_key_kind kind, const char *label,
                             const uint8_t *wrapped, size_t wrapped_len,
                             const uint8_t kcv[HSM_KCV_LEN], hsm_key **out);

/* The DEK forms of the two above (kind HSM_KIND_DEK). */
HSM_WUR int hsm_dek_generate(hsm_session *s, hsm_key *kek, uint8_t out_wrapped[HSM_WRAPPED_DEK_LEN],
                             uint8_t out_kcv[HSM_KCV_LEN]);
HSM_WUR int hsm_dek_load(hsm_session *s, hsm_key *kek, const char *label,
                         const uint8_t *wrapped, size_t wrapped_len,
                         const uint8_t kcv[HSM_KCV_LEN], hsm_key **out);

/* ---- Operations ----------------------------------------------------------- */

/* Random bytes from the token RNG (C_GenerateRandom). len <= HSM_RANDOM_MAX. */
#define HSM_RANDOM_MAX 4096
HSM_WUR int hsm_random(hsm_session *s, uint8_t *out, size_t len);

#define HSM_HMAC_SHA256_LEN 32
/* HMAC-SHA256 with a HSM_KIND_HMAC key. */
HSM_WUR int hsm_hmac_sign(hsm_session *s, hsm_key *key, const uint8_t *data, size_t len,
                          uint8_t out[HSM_HMAC_SHA256_LEN]);
/* Verifies |mac| (exactly 32 bytes) in the token (C_Verify compares in constant
 * time inside the token). HSM_ERR_VERIFY on mismatch. */
HSM_WUR int hsm_hmac_verify(hsm_session *s, hsm_key *key, const uint8_t *data, size_t len,
                            const uint8_t *mac, size_t mac_len);

#define HSM_GCM_IV_LEN 12
#define HSM_GCM_TAG_LEN 16
/* Longest plaintext for one record; records are small (a PAN, a name, an e-mail). */
#define HSM_GCM_MAX 65536

/* AES-256-GCM encrypt with a DEK (or any key permitted CKM_AES_GCM). The IV is
 * drawn from the token RNG and returned in |out_iv|; |out| receives
 * ciphertext || 16-byte tag, so cap >= len + HSM_GCM_TAG_LEN. */
HSM_WUR int hsm_gcm_encrypt(hsm_session *s, hsm_key *key, const uint8_t *aad, size_t aad_len,
                            const uint8_t *pt, size_t len, uint8_t out_iv[HSM_GCM_IV_LEN],
                            uint8_t *out, size_t cap, size_t *out_len);

/* AES-GCM decrypt of ciphertext || tag. Any failure of the token's tag check is
 * HSM_ERR_VERIFY (modules disagree on the CKR). |out| cap >= ct_len - 16; the
 * plaintext is secret: the caller wipes it. */
HSM_WUR int hsm_gcm_decrypt(hsm_session *s, hsm_key *key, const uint8_t *aad, size_t aad_len,
                            const uint8_t *iv, size_t iv_len, const uint8_t *ct, size_t ct_len,
                            uint8_t *out, size_t cap, size_t *out_len);

/* The same two, with a transient key object (per-message wallet keys). */
HSM_WUR int hsm_obj_gcm_decrypt(hsm_session *s, hsm_obj key, const uint8_t *aad, size_t aad_len,
                                const uint8_t *iv, size_t iv_len, const uint8_t *ct,
                                size_t ct_len, uint8_t *out, size_t cap, size_t *out_len);
HSM_WUR int hsm_obj_gcm_encrypt(hsm_session *s, hsm_obj key, const uint8_t *aad, size_t aad_len,
                                const uint8_t *iv, size_t iv_len, const uint8_t *pt, size_t len,
                                uint8_t *out, size_t cap, size_t *out_len);

/* Transient secret keys created from bytes (a per-message key that a 2.40
 * token had to return to the host): sensitive, non-extractable session objects
 * with one usage. The caller wipes its copy right after. */
typedef enum hsm_secret_use {
    HSM_USE_AES_GCM_DECRYPT = 1, /* CKK_AES, DECRYPT only, GCM only */
    HSM_USE_AES_GCM_ENCRYPT,     /* CKK_AES, ENCRYPT only (tests, wallet fixtures) */
    HSM_USE_AES_CTR_DECRYPT,     /* CKK_AES, DECRYPT only, CTR only */
    HSM_USE_HMAC_VERIFY,         /* CKK_GENERIC_SECRET, VERIFY (and SIGN: a verify
                                  * recomputes the MAC to check a token's failure) */
    HSM_USE_HMAC_SIGN,           /* CKK_GENERIC_SECRET, SIGN only */
} hsm_secret_use;
/* HMAC keys are 32..HSM_SECRET_MAX bytes (longer than the SHA-256 block is
 * legal: HMAC hashes it); AES keys 16, 24 or 32. HSM_ERR_INPUT otherwise. */
#define HSM_SECRET_MAX 256
HSM_WUR int hsm_secret_import(hsm_session *s, hsm_secret_use use, const uint8_t *value, size_t len,
                              hsm_obj *out);

/* AES-CTR decrypt (128-bit big-endian counter from |iv|, 16 bytes). */
HSM_WUR int hsm_obj_ctr_decrypt(hsm_session *s, hsm_obj key, const uint8_t iv[16],
                                const uint8_t *ct, size_t len, uint8_t *out, size_t cap);

/* HMAC-SHA256 with a transient key. verify: HSM_ERR_VERIFY on mismatch. */
HSM_WUR int hsm_obj_hmac_sign(hsm_session *s, hsm_obj key, const uint8_t *data, size_t len,
                              uint8_t out[HSM_HMAC_SHA256_LEN]);
HSM_WUR int hsm_obj_hmac_verify(hsm_session *s, hsm_obj key, const uint8_t *data, size_t len,
                                const uint8_t *mac, size_t mac_len);

/* Destroys a transient object made in |s|; HSM_OBJ_NONE is accepted. */
void hsm_obj_destroy(hsm_session *s, hsm_obj obj);

/* Which path each key derivation takes on this token, chosen at hsm_open. */
typedef enum hsm_path {
    HSM_PATH_NONE = 0,            /* the token cannot do it at all */
    HSM_PATH_IN_TOKEN,            /* every step in the token, no key on the host */
    HSM_PATH_DIGEST_KEY,          /* Z in the token, KDF output on the host (C_DigestKey) */
    HSM_PATH_HOST_DECODE,         /* raw RSA in the token, OAEP decoding on the host */
} hsm_path;

/* ---- EC ----------------------------------------------------------------- */

#define HSM_EC_P256_POINT_LEN 65  /* 04 || X || Y */
#define HSM_ECDH_P256_Z_LEN 32

/* hsm_ecdh_derive runs ECDH (CKM_ECDH1_DERIVE, CKD_NULL) between the private
 * key |key| (HSM_KIND_EC_DERIVE or HSM_KIND_EC_DERIVE_SIGN) and the peer's uncompressed P-256 point, into
 * a 32-byte generic secret session object that is SENSITIVE and not
 * EXTRACTABLE. Z never reaches host memory. HSM_ERR_INPUT if the point is not
 * a valid P-256 point (checked on the host first: tokens disagree on whether
 * they reject off-curve points). */
HSM_WUR int hsm_ecdh_derive(hsm_session *s, hsm_key *key, const uint8_t *point, size_t point_len,
                            hsm_obj *out_z);

/* hsm_apple_kdf: the Apple Pay EC_v1 key derivation (NIST SP 800-56A
 * single-step KDF with SHA-256): key = SHA-256(00000001 || Z || otherInfo),
 * computed in the token with C_DigestKey so Z stays inside. The 32-byte result
 * IS in host memory: the caller wipes it (or imports it with
 * hsm_secret_import and wipes it). */
HSM_WUR int hsm_apple_kdf(hsm_session *s, hsm_obj z, const uint8_t *other_info, size_t other_len,
                          uint8_t out_key[32]);

/* hsm_hkdf_sha256: HKDF (RFC 5869) with IKM = |ikm_prefix| || Z, as Google Pay
 * uses (prefix = ephemeral public key). Extract's inner hash
 * SHA-256((salt ^ ipad) || prefix || Z) runs in the token (C_DigestKey); the
 * outer hash and Expand run on the host over a value that no longer reveals Z.
 * |salt| NULL means HashLen zero bytes. Output up to 255*32 bytes; the caller
 * wipes it. */
#define HSM_HKDF_OUT_MAX 128
HSM_WUR int hsm_hkdf_sha256(hsm_session *s, hsm_obj z, const uint8_t *salt, size_t salt_len,
                            const uint8_t *ikm_prefix, size_t prefix_len, const uint8_t *info,
                            size_t info_len, uint8_t *out, size_t out_len);

/* hsm_apple_kdf_key: the same derivation into a per-message AES-256 key
 * object for HSM_USE_AES_GCM_DECRYPT (or another AES use), by the path the
 * probe chose (hsm_probe.apple_ec_kdf):
 *   HSM_PATH_IN_TOKEN  Z -> CKM_CONCATENATE_DATA_AND_BASE(counter) ->
 *                      CKM_CONCATENATE_BASE_AND_DATA(otherInfo) ->
 *                      CKM_SHA256_KEY_DERIVATION -> AES key; nothing of the
 *                      key or of Z is ever in host memory.
 *   HSM_PATH_DIGEST_KEY hsm_apple_kdf, then hsm_secret_import; the key is in
 *                      host memory for that long and wiped.
 * |out_path| (may be NULL) tells which ran. Z must come from hsm_ecdh_derive
 * of this hsm (it is derivable only when a path needs it to be). */
HSM_WUR int hsm_apple_kdf_key(hsm_session *s, hsm_obj z, const uint8_t *other_info,
                              size_t other_len, hsm_secret_use use, hsm_obj *out_key,
                              hsm_path *out_path);

/* hsm_hkdf_sha256_keys: HKDF-SHA256 (IKM = |ikm_prefix| || Z, salt NULL =
 * 32 zero bytes, |info|) into two per-message keys of |key_len| bytes (16 or
 * 32), as Google Pay splits its output: the first for AES-CTR decryption,
 * the second for HMAC-SHA256 verification. A 16-byte MAC key is zero-padded
 * to 32 bytes, which HMAC treats as the same key (RFC 2104: keys shorter
 * than the block are zero-padded) and which every token accepts. By the
 * probe's path (hsm_probe.google_hkdf):
 *   HSM_PATH_IN_TOKEN  Z -> CKM_CONCATENATE_DATA_AND_BASE(prefix) ->
 *                      CKM_HKDF_DERIVE (extract and expand) ->
 *                      CKM_EXTRACT_KEY_FROM_KEY at bit 0 and at bit
 *                      8*key_len (-> CKM_CONCATENATE_BASE_AND_DATA(zeros)
 *                      for a short MAC key); no key in host memory.
 *   HSM_PATH_DIGEST_KEY hsm_hkdf_sha256, then two hsm_secret_import; PRK
 *                      and both keys are in host memory that long, wiped.
 * Both objects are the caller's to destroy. */
HSM_WUR int hsm_hkdf_sha256_keys(hsm_session *s, hsm_obj z, const uint8_t *salt, size_t salt_len,
                                 const uint8_t *ikm_prefix, size_t prefix_len,
                                 const uint8_t *info, size_t info_len, size_t key_len,
                                 hsm_obj *out_aes, hsm_obj *out_mac, hsm_path *out_path);

/* hsm_ec_p256_spki_point takes the point out of a P-256 SubjectPublicKeyInfo
 * in its one canonical form (named curve, uncompressed point, 91 bytes) and
 * checks it is on the curve. HSM_ERR_INPUT for anything else (a caller that
 * must take other encodings falls back to OpenSSL's decoder). Pure: no
 * token. */
HSM_WUR int hsm_ec_p256_spki_point(const uint8_t *spki, size_t len,
                                   uint8_t point[HSM_EC_P256_POINT_LEN]);

/* hsm_ec_public_import parses a DER SubjectPublicKeyInfo (P-256 or P-384) on the
 * host with OpenSSL, checks the point is on the curve, and creates a public
 * key session object for ECDSA verification. HSM_ERR_INPUT on bad DER, wrong
 * curve or an invalid point. */
#define HSM_SPKI_MAX 1024
HSM_WUR int hsm_ec_public_import(hsm_session *s, const uint8_t *spki, size_t spki_len, hsm_obj *out);

/* hsm_ecdsa_verify verifies an ECDSA signature over |digest| (the caller hashes:
 * SoftHSM has no CKM_ECDSA_SHA256) with a public key object. |sig| is DER
 * (ECDSA-Sig-Value, as in CMS and Google Pay) and converted to r||s on the host.
 * HSM_ERR_VERIFY on a bad signature, HSM_ERR_INPUT on malformed DER. */
#define HSM_ECDSA_SIG_MAX 160
HSM_WUR int hsm_ecdsa_verify(hsm_session *s, hsm_obj pub, const uint8_t *digest, size_t digest_len,
                             const uint8_t *sig, size_t sig_len);

/* hsm_rsa_public_import parses a DER SubjectPublicKeyInfo of an RSA key of
 * HSM_RSA_PUBLIC_BITS_MIN..HSM_RSA_PUBLIC_BITS_MAX bits on the host and
 * creates a public key session object for verification only (Apple Pay
 * RSA_v1 leaves). HSM_ERR_INPUT on bad DER, another key type or a size out
 * of range. */
#define HSM_RSA_PUBLIC_BITS_MIN 2048
#define HSM_RSA_PUBLIC_BITS_MAX 4096
HSM_WUR int hsm_rsa_public_import(hsm_session *s, const uint8_t *spki, size_t spki_len,
                                  hsm_obj *out);

/* hsm_rsa_sha256_verify verifies an RSASSA-PKCS1-v1_5 signature
 * (sha256WithRSAEncryption) over a SHA-256 |digest| the caller computed, with
 * a public key object from hsm_rsa_public_import: the token checks the
 * signature (CKM_RSA_PKCS over the DigestInfo). HSM_ERR_VERIFY on a bad
 * signature, HSM_ERR_INPUT for a signature of the wrong length. */
HSM_WUR int hsm_rsa_sha256_verify(hsm_session *s, hsm_obj pub, const uint8_t digest[32],
                                  const uint8_t *sig, size_t sig_len);

/* hsm_ecdsa_sign signs |digest| with a HSM_KIND_EC_SIGN (or, for its CSR, a
 * HSM_KIND_EC_DERIVE_SIGN) key; the signature is written as DER
 * ECDSA-Sig-Value. */
HSM_WUR int hsm_ecdsa_sign(hsm_session *s, hsm_key *key, const uint8_t *digest, size_t digest_len,
                           uint8_t *out, size_t cap, size_t *out_len);

/* hsm_ec_private_import: imports an existing EC P-256 private key (DER,
 * PKCS#8 or SEC1) as a token key of HSM_KIND_EC_DERIVE, for wallet keys made
 * outside the HSM (a processor migrating merchants) and for the known-answer
 * tests. The private key gets the attributes hsm_key_generate gives the kind
 * (extractable only under a trusted key, so the backup ceremony clones it);
 * CKA_ID is the label; a public key object with the same label and ID is
 * created beside it. The host copy is the caller's to wipe. */
#define HSM_PRIVKEY_DER_MAX 4096
HSM_WUR int hsm_ec_private_import(hsm_session *s, const char *label, const uint8_t *der, size_t der_len,
                                  hsm_key **out);

/* hsm_rsa_private_import: imports an existing RSA private key (DER, PKCS#8
 * or PKCS#1) as a token key pair of |kind|, HSM_KIND_RSA_UNWRAP (Samsung
 * Pay) or HSM_KIND_RSA_DECRYPT (Apple Pay RSA_v1 on a token without
 * OAEP-SHA256), for wallet keys made outside the HSM. The private key gets
 * the template hsm_key_generate gives that kind (hsm__key_tmpl_build:
 * SENSITIVE, EXTRACTABLE only under a trusted key, not MODIFIABLE or
 * COPYABLE, the kind's usages and mechanisms, CKA_UNWRAP_TEMPLATE), the
 * label as CKA_LABEL and CKA_ID; a public key object with the same label and
 * ID is created beside it, as for a generated pair, so hsm_key_public_spki,
 * hsm_key_cert_store and the backup take it like a generated key. The token
 * marks it not CKA_ALWAYS_SENSITIVE: its value existed outside. Only
 * RSA-2048 with two primes and public exponent 65537, whose components are
 * consistent (checked on the host): HSM_ERR_INPUT otherwise, and for bad
 * DER or trailing bytes. HSM_ERR_INVALID_ARG for another kind or a bad
 * label, HSM_ERR_EXISTS if a token object already has the label. On error
 * nothing is left on the token. The caller wipes |der|; every host copy of
 * a key component made here is wiped. *out is borrowed from the hsm. */
HSM_WUR int hsm_rsa_private_import(hsm_session *s, hsm_key_kind kind, const char *label,
                                   const uint8_t *der, size_t der_len, hsm_key **out);

/* hsm_key_import_undo destroys a wallet key pair that hsm_ec_private_import
 * or hsm_rsa_private_import created (private and public objects), for a
 * ceremony that must leave nothing behind when a later step fails. A key
 * the token generated (CKA_ALWAYS_SENSITIVE TRUE: it exists nowhere else) or
 * of another kind than those imports make is refused with HSM_ERR_KEY_TYPE
 * and left alone. Certificates are not touched. |key| stays allocated (the
 * hsm owns it) but no longer names an object: hsm_key_find reports
 * HSM_ERR_KEY_NOT_FOUND. */
HSM_WUR int hsm_key_import_undo(hsm_session *s, hsm_key *key);

/* ---- RSA ------------------------------------------------------------------ */

typedef enum hsm_rsa_pad {
    HSM_RSA_PKCS1 = 1,    /* RSAES-PKCS1-v1_5 (JWE RSA1_5) */
    HSM_RSA_OAEP_SHA1,    /* OAEP, SHA-1, MGF1-SHA1 (JWE RSA-OAEP) */
    HSM_RSA_OAEP_SHA256,  /* OAEP, SHA-256, MGF1-SHA256 (Apple RSA_v1, JWE RSA-OAEP-256) */
} hsm_rsa_pad;

/* hsm_rsa_unwrap_aes unwraps an RSA-encrypted AES key of |key_len| bytes (16 or
 * 32) into a sensitive, non-extractable session object usable for |use|.
 * In the token when the token supports the padding (C_UnwrapKey); for
 * OAEP-SHA256 on a token without it (SoftHSM 2.6), the key must be
 * HSM_KIND_RSA_DECRYPT: the token does the raw RSA private operation and the
 * host does the OAEP decoding (constant time, OpenSSL), imports the key, and
 * wipes every copy. |out_path| (may be NULL) tells which path ran:
 * 1 = in token, 2 = host OAEP decoding. HSM_ERR_VERIFY on a padding failure
 * (RSA1_5: a random key instead, see RFC 7516 section 11.5) or a key of the
 * wrong length. The length is always checked on path 2; on path 1 only where
 * the token reports CKA_VALUE_LEN of unwrapped keys (SoftHSM 2.6 does not, so
 * there the content's GCM tag check is what catches a wrong key). */
HSM_WUR int hsm_rsa_unwrap_aes(hsm_session *s, hsm_key *key, hsm_rsa_pad pad, const uint8_t *wrapped,
                               size_t wrapped_len, size_t key_len, hsm_secret_use use,
                               hsm_obj *out, int *out_path);

/* hsm_oaep_sha256_decode decodes an RSA-OAEP (SHA-256, MGF1-SHA256, empty
 * label) encoded block |em| of |em_len| bytes (the modulus length) into |out|.
 * Host-side, constant time; exposed for the fuzz target. HSM_ERR_VERIFY on any
 * padding error (one error for all, so no oracle). */
HSM_WUR int hsm_oaep_sha256_decode(const uint8_t *em, size_t em_len, uint8_t *out, size_t cap,
                                   size_t *out_len);

/* ---- Backup and restore (clone to a second HSM) ------------------------- */

/* The transport key of a key backup: AES-256, made from bytes the ceremony
 * drew from the HSM's RNG and split among officers. */
#define HSM_TRANSPORT_KEY_LEN 32
/* Largest wrapped key in a backup (an RSA-2048 PKCS#8 is about 1.2 KB). */
#define HSM_BACKUP_WRAPPED_MAX 4096

/* hsm_transport_key_trusted logs the token's SO in (PIN from |so_pin|),
 * creates the transport key as a CKA_TRUSTED, wrap-only, public session
 * object (only the SO may set CKA_TRUSTED, and only a trusted key may wrap
 * the vault's keys, which carry CKA_WRAP_WITH_TRUSTED), and logs the user
 * back in. |s| must be the only session lent; key handles are found again
 * afterwards. HSM_ERR_LOGIN if the SO PIN is refused. Destroy the object
 * with hsm_obj_destroy as soon as the backup is written. */
HSM_WUR int hsm_transport_key_trusted(hsm_session *s, hsm_pin_source *so_pin,
                                      const uint8_t key[HSM_TRANSPORT_KEY_LEN], hsm_obj *out);

/* hsm_transport_key_import creates the transport key on the restoring token
 * as an unwrap-only, sensitive session object (no SO needed to unwrap). */
HSM_WUR int hsm_transport_key_import(hsm_session *s, const uint8_t key[HSM_TRANSPORT_KEY_LEN],
                                     hsm_obj *out);

/* hsm_key_backup_wrap wraps a long-term key (secret or private) under the
 * transport key with CKM_AES_KEY_WRAP_PAD. A DEK is refused: DEKs travel
 * wrapped under the KEK in the store. HSM_ERR_BUFFER if |cap| is short. */
HSM_WUR int hsm_key_backup_wrap(hsm_session *s, hsm_obj transport, hsm_key *key, uint8_t *out,
                                size_t cap, size_t *out_len);

/* hsm_key_restore unwraps |wrapped| under the transport key as a token key
 * of |kind| labelled |label|, with the attributes hsm_key_generate gives that
 * kind (less CKA_MODIFIABLE, which SoftHSM refuses in an unwrap template),
 * and for a key pair creates its public half from |spki| (DER
 * SubjectPublicKeyInfo). HSM_ERR_EXISTS if the label is taken,
 * HSM_ERR_VERIFY if the blob does not unwrap (wrong transport key, altered
 * blob), HSM_ERR_INPUT for a public key that does not fit the kind. */
HSM_WUR int hsm_key_restore(hsm_session *s, hsm_obj transport, hsm_key_kind kind, const char *label,
                            const uint8_t *wrapped, size_t wrapped_len, const uint8_t *spki,
                            size_t spki_len, hsm_key **out);

/* hsm_key_digest_kcv: the first HSM_KCV_LEN bytes of SHA-256 of a secret
 * key's value, computed in the token (C_DigestKey). The same on every token
 * that holds the key, so a backup and its restore can be compared even where
 * a token keeps no CKA_CHECK_VALUE for keys it unwrapped (SoftHSM 2.6). */
HSM_WUR int hsm_key_digest_kcv(hsm_session *s, hsm_key *key, uint8_t out[HSM_KCV_LEN]);

/* ---- Mechanism probe ------------------------------------------------------ */

/* What hsm_open found the token can do. The wallet derivations' paths are
 * decided by running them: each all-in-token chain runs once on known
 * values and its keys must decrypt and verify what OpenSSL made with the
 * expected keys; a token may list a mechanism it refuses, or (NSS softokn's
 * key slot) take one it does not list. */
#define HSM_PROBE_DETAIL_MAX 160
typedef struct hsm_probe {
    hsm_path apple_ec_kdf;        /* ECDH + SHA-256 concatenation KDF */
    hsm_path google_hkdf;         /* ECDH + HKDF-SHA256 */
    hsm_path rsa_oaep_sha256;     /* Apple RSA_v1, JWE RSA-OAEP-256 */
    hsm_path rsa_oaep_sha1;       /* JWE RSA-OAEP */
    hsm_path rsa_pkcs1;           /* JWE RSA1_5 */
    int has_gcm, has_ctr, has_kwp, has_hmac_sha256, has_ecdsa, has_ecdh, has_digest_key;
    int has_concatenate, has_sha256_key_derivation, has_hkdf, has_extract_key;
    char missing[256];            /* names of needed mechanisms the token lacks */
    bool reduced_key_attributes;  /* hsm_config.reduced_key_attributes was set */
    /* Why the all-in-token chain is not taken ("" when it is): the failing
     * call and its CKR_, or the known answer that did not match. */
    char apple_in_token_why[HSM_PROBE_DETAIL_MAX];
    char google_in_token_why[HSM_PROBE_DETAIL_MAX];
} hsm_probe;

/* The probe result from hsm_open (borrowed; constant until hsm_close). */
const hsm_probe *hsm_probe_get(hsm *h);

/* Human name of a path ("in-token", "digest-key", ...). */
const char *hsm_path_name(hsm_path p);

/* ---- Wallet objects: certificates, trust anchors, CSRs -------------------
 *
 * (objects.c, csr.c; used by the wallet-key ceremonies, tools/ceremony/wallet.c)
 *
 * Wallet keys come with objects that are not keys: the certificate a wallet
 * issued for one of our key pairs (Apple Pay's Payment Processing
 * certificate), and the trust anchors that wallet signatures are checked
 * against (Apple Root CA - G3; Google's root signing keys). All are token
 * objects with CKA_PRIVATE=TRUE, CKA_MODIFIABLE=FALSE and CKA_COPYABLE=FALSE:
 * PKCS#11 lets a session that never logged in create *public* token objects,
 * so only private ones prove that a PIN holder put them there, and whoever
 * looks an anchor up must put CKA_PRIVATE=TRUE in the template. CKA_TRUSTED is
 * not set: only the SO may set it, and the SO can create only public objects
 * (HSM-NOTES Q10), so it would prove less, not more. */

/* Every trust anchor belongs to a set named by HSM_ANCHOR_ID_PREFIX and the
 * set name: "anchor:apple-root", "anchor:google-ECv2" (Google's keys are
 * grouped by protocolVersion, which decides what they may verify). The set id
 * is the CKA_ID of an anchor certificate and the CKA_APPLICATION of an anchor
 * key's data object, so one C_FindObjects finds a whole set. */
#define HSM_ANCHOR_ID_PREFIX "anchor:"
#define HSM_ANCHOR_SET_APPLE_ROOT "apple-root"
#define HSM_ANCHOR_SET_GOOGLE_PREFIX "google-"
/* Longest set name (the CKA_ID is the prefix and this). */
#define HSM_ANCHOR_SET_MAX 32
/* Largest certificate stored; Apple's are about 1 KB. */
#define HSM_CERT_MAX 8192

/* hsm_label_check_free returns HSM_OK if no token object of any class is
 * labelled |label|, HSM_ERR_EXISTS if one is, HSM_ERR_INVALID_ARG for a label
 * that breaks the label rule. A ceremony that stores several objects checks
 * every label first, so it refuses before it stores any. */
HSM_WUR int hsm_label_check_free(hsm_session *s, const char *label);

/* hsm_key_cert_store stores |der|, an X.509 certificate a wallet issued for
 * the key pair |key|, as a CKO_CERTIFICATE token object of category "token
 * user" with the key's label and the key's CKA_ID, and the certificate's
 * subject, issuer and serial number. No CKA_START_DATE/CKA_END_DATE: on
 * SoftHSM 2.6 reading a date of a private object fails (CKR_GENERAL_ERROR),
 * and the validity is in the certificate. The certificate must be DER
 * without trailing bytes (HSM_ERR_INPUT) and certify exactly the key's public
 * key (HSM_ERR_VERIFY). One certificate per key (a wallet renews a
 * certificate for a new key): HSM_ERR_EXISTS if the key has one.
 * HSM_ERR_KEY_TYPE if |key| is no key pair or has no CKA_ID. */
HSM_WUR int hsm_key_cert_store(hsm_session *s, hsm_key *key, const uint8_t *der, size_t der_len);

/* hsm_key_cert_get copies the certificate stored for |key| (DER) to |out|.
 * HSM_ERR_KEY_NOT_FOUND if there is none; HSM_ERR_BUFFER with *out_len set to
 * the size needed. */
HSM_WUR int hsm_key_cert_get(hsm_session *s, hsm_key *key, uint8_t *out, size_t cap,
                             size_t *out_len);

/* hsm_anchor_cert_store stores a trust anchor certificate (DER, category
 * "authority") labelled |label| in the anchor set |set|. It checks only that
 * the bytes are one certificate (HSM_ERR_INPUT): what the certificate must be
 * (self-signed, a CA, the expected fingerprint) is the caller's policy.
 * HSM_ERR_EXISTS if the label is taken. */
HSM_WUR int hsm_anchor_cert_store(hsm_session *s, const char *label, const char *set,
                                  const uint8_t *der, size_t der_len);

/* hsm_anchor_key_store stores an EC P-256 public key (DER
 * SubjectPublicKeyInfo) with its expiry (epoch milliseconds, 0 for none) as a
 * trust anchor labelled |label| in the set |set|: a CKO_DATA object whose
 * CKA_VALUE is an anchor record (below). Not a CKO_PUBLIC_KEY with
 * CKA_END_DATE: a date has a day's resolution where Google's keyExpiration has
 * milliseconds, and SoftHSM 2.6 cannot read a date back from a private object.
 * The vault imports the key with hsm_ec_public_import and verifies with it
 * inside the token. HSM_ERR_INPUT for a bad SPKI, another curve or a point off
 * the curve; HSM_ERR_EXISTS if the label is taken. */
HSM_WUR int hsm_anchor_key_store(hsm_session *s, const char *label, const char *set,
                                 const uint8_t *spki, size_t spki_len, uint64_t expiration_ms);

/* The anchor record: version (u8, 1), expiry in epoch milliseconds (u64
 * big-endian, 0: none), then a u32-prefixed DER SubjectPublicKeyInfo. */
#define HSM_ANCHOR_RECORD_VERSION 1
#define HSM_ANCHOR_RECORD_MAX (1 + 8 + 4 + HSM_SPKI_MAX)

/* hsm_anchor_record_decode parses an anchor record (as read from a token,
 * where anyone logged in could have written it): exact length, known
 * version, an EC P-256 SPKI with its point on the curve. *out_spki points
 * into |rec|. HSM_ERR_INPUT on anything else. For the vault's anchor loader
 * and the fuzz target. */
HSM_WUR int hsm_anchor_record_decode(const uint8_t *rec, size_t len, uint64_t *out_expiration_ms,
                                     const uint8_t **out_spki, size_t *out_spki_len);

typedef enum hsm_wallet_obj_type {
    HSM_WOBJ_KEY_CERT = 1, /* a wallet's certificate for one of our key pairs */
    HSM_WOBJ_ANCHOR_CERT,  /* a trust anchor certificate */
    HSM_WOBJ_ANCHOR_KEY,   /* a trust anchor public key (anchor record) */
} hsm_wallet_obj_type;

typedef struct hsm_wallet_obj {
    hsm_wallet_obj_type type;
    char label[HSM_LABEL_MAX + 1];
    char set[HSM_ANCHOR_SET_MAX + 1]; /* anchors: the set name; "" otherwise */
    const uint8_t *der;               /* the certificate, or the anchor key's SPKI (DER);
                                       * borrowed, valid during the visit only */
    size_t der_len;
    uint64_t expiration_ms;           /* anchor keys: expiry (0: none); certificates: 0,
                                       * their validity is in |der| */
} hsm_wallet_obj;

/* hsm_wallet_obj_list visits every private certificate object and every
 * anchor key record on the token, ordered by type, then label; |fn| returns 0
 * to continue. Objects it cannot read as one of ours are skipped. */
typedef int (*hsm_wallet_obj_visit_fn)(void *ctx, const hsm_wallet_obj *obj);
HSM_WUR int hsm_wallet_obj_list(hsm_session *s, hsm_wallet_obj_visit_fn fn, void *ctx);

/* Longest subject common name (RFC 5280 ub-common-name). */
#define HSM_CSR_CN_MAX 64
/* Largest DER CSR: RSA-2048 requests are under 1 KB. */
#define HSM_CSR_MAX 4096

/* hsm_csr_make builds a PKCS#10 certification request (RFC 2986) for the key
 * pair |key| with the subject CN=|common_name| (printable ASCII, 1 to
 * HSM_CSR_CN_MAX characters) and no attributes. OpenSSL encodes the
 * CertificationRequestInfo; the key signs it inside the token (proof of
 * possession: the private key never leaves the HSM): ecdsa-with-SHA256 over
 * its SHA-256 for HSM_KIND_EC_DERIVE_SIGN and HSM_KIND_EC_SIGN,
 * sha256WithRSAEncryption (CKM_SHA256_RSA_PKCS) for HSM_KIND_RSA_UNWRAP_SIGN;
 * HSM_ERR_KEY_TYPE for any other kind. The signed request is verified against
 * the key's public key before it is returned (HSM_ERR_INTERNAL if it fails).
 * DER in |out|; HSM_ERR_BUFFER with *out_len set to the size needed. */
HSM_WUR int hsm_csr_make(hsm_session *s, hsm_key *key, const char *common_name, uint8_t *out,
                         size_t cap, size_t *out_len);

#endif /* TOKENVAULT_HSM_HSM_H */
