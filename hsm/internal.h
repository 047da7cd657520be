/*
 * internal.h - private declarations shared by the hsm/ sources. Not installed.
 */
#ifndef TOKENVAULT_HSM_INTERNAL_H
#define TOKENVAULT_HSM_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>

#include <p11-kit/pkcs11.h>

/* p11-kit's header maps its lower-case field names onto the standard ones with
 * macros ("value", "count", "iv_len", ...). Those words are ordinary names in
 * our code; the structs are already declared, so the macros can go. */
#undef value
#undef value_len
#undef count
#undef params
#undef parameter
#undef parameter_len
#undef reserved
#undef slot_id
#undef hash_alg
#undef s_len
#undef source_data
#undef source_data_len
#undef counter_bits
#undef iv_ptr
#undef iv_len
#undef iv_bits
#undef aad_ptr
#undef aad_len
#undef tag_bits
#undef shared_data
#undef shared_data_len
#undef public_data
#undef public_data_len
#undef string_data
#undef string_data_len
#undef data_params

#include "hsm/hsm.h"

/* PKCS#11 3.0 mechanisms the 2.40 header lacks; numbers from the OASIS 3.0
 * specification, used only to ask the token whether it has them. */
#ifndef CKM_HKDF_DERIVE
#define CKM_HKDF_DERIVE 0x0000402aUL
#endif
#ifndef CKM_SHA256_KEY_DERIVATION
#define CKM_SHA256_KEY_DERIVATION 0x00000393UL
#endif
#ifndef CKM_CONCATENATE_BASE_AND_DATA
#define CKM_CONCATENATE_BASE_AND_DATA 0x00000362UL
#endif
#ifndef CKM_CONCATENATE_DATA_AND_BASE
#define CKM_CONCATENATE_DATA_AND_BASE 0x00000363UL
#endif
#ifndef CKM_EXTRACT_KEY_FROM_KEY
#define CKM_EXTRACT_KEY_FROM_KEY 0x00000365UL
#endif
/* CK_HKDF_PARAMS of PKCS#11 3.0 (section 2.43.3), which the 2.40 header
 * lacks; the field order is the specification's. */
struct hsm__hkdf_params {
    CK_BBOOL bExtract;
    CK_BBOOL bExpand;
    CK_MECHANISM_TYPE prfHashMechanism;
    CK_ULONG ulSaltType;
    CK_BYTE_PTR pSalt;
    CK_ULONG ulSaltLen;
    CK_OBJECT_HANDLE hSaltKey;
    CK_BYTE_PTR pInfo;
    CK_ULONG ulInfoLen;
};
#define HSM__HKDF_SALT_DATA 0x00000002UL

/* Template helpers: every file builds CK_ATTRIBUTE arrays the same way. */
extern CK_BBOOL hsm__true, hsm__false;
#define ATTR(type, ptr, len) { (type), (void *)(ptr), (len) }
#define BOOL_ATTR(type, v) ATTR(type, (v) ? &hsm__true : &hsm__false, sizeof(CK_BBOOL))

/* Copies |len| bytes to a caller's buffer: *out_len is always set, so a caller
 * that got HSM_ERR_BUFFER learns the size it needs. */
int hsm__copy_out(uint8_t *out, size_t cap, const uint8_t *src, size_t len, size_t *out_len);

/* A long-term key reference, owned by the hsm (list hsm.keys). */
struct hsm_key {
    struct hsm_key *next;
    char label[HSM_LABEL_MAX + 1];
    hsm_key_kind kind;
    CK_OBJECT_CLASS klass;           /* private or secret */
    CK_OBJECT_HANDLE handle;         /* valid while generation == hsm.generation */
    uint64_t generation;
    /* A wrapped key (hsm_wrapped_load: a DEK, or an HMAC session object):
     * the blob and the KEK, to unwrap it again after a re-login. */
    bool is_wrapped;
    uint8_t wrapped[HSM_WRAPPED_DEK_LEN];
    uint8_t kcv[HSM_KCV_LEN];
    char kek_label[HSM_LABEL_MAX + 1];
};

struct hsm_session {
    struct hsm_session *next;        /* pool free list */
    struct hsm *h;
    CK_SESSION_HANDLE handle;
    uint64_t generation;             /* hsm generation it was opened in */
    bool broken;                     /* a session/device error: close on release */
};

struct hsm {
    void *dl;
    CK_FUNCTION_LIST_PTR p11;
    CK_SLOT_ID slot;
    hsm_pin_source *pin;
    char *module_path;
    char *token_label;
    char *token_uri;
    char *init_args;                 /* C_Initialize pReserved, kept for re-init */
    bool reduced_attrs;              /* hsm_config.reduced_key_attributes */
    unsigned max_sessions, backoff_initial_ms, backoff_max_ms;

    pthread_mutex_t lock;            /* guards everything below */
    pthread_cond_t cond;             /* a pooled session became free */
    struct hsm_session *free_list;
    unsigned num_open;               /* sessions open (pooled or lent) */
    unsigned num_lent;
    uint64_t generation;             /* bumped at each successful (re)login */
    bool down;                       /* device lost; recover before lending */
    unsigned backoff_ms;
    uint64_t retry_at_ms;            /* monotonic ms before which we do not retry */
    CK_SESSION_HANDLE keeper;        /* holds the login and the DEK session objects */
    struct hsm_key *keys;
    /* The recycle (hsm_config.recycle_after_objects): objects destroyed
     * (hsm__destroy_obj; atomic, counted outside the lock), the count at
     * the last recycle or deferral, and whether one is draining now. */
    uint64_t recycle_after;
    _Atomic uint64_t temp_destroyed;
    uint64_t recycle_mark;
    uint64_t recycles;
    bool recycling;

    CK_TOKEN_INFO token_info;
    CK_INFO module_info;
    char info_label[33], info_manufacturer[33], info_model[17], info_serial[17];
    hsm_probe probe;
};

/* error.c */
/* Maps a CKR_ to an HSM_ERR_, records "<call>: <CKR name>" as the thread's
 * detail, and, when the code means the session or device is gone, marks |s|
 * broken and the hsm down. |s| may be NULL. Returns HSM_OK for CKR_OK. */
int hsm__ckr(hsm_session *s, const char *call, CK_RV rv);
/* The same with a fixed mapping for calls that check an authentication tag
 * or a wrapped blob (GCM decrypt, unwrap, raw RSA): every failure that is
 * not a device/session loss or a usage error becomes HSM_ERR_VERIFY (modules
 * differ: SoftHSM says CKR_GENERAL_ERROR for a bad GCM tag, NSS
 * CKR_ENCRYPTED_DATA_INVALID). */
int hsm__ckr_verify(hsm_session *s, const char *call, CK_RV rv);
/* For C_Verify: only CKR_SIGNATURE_INVALID and CKR_SIGNATURE_LEN_RANGE mean
 * the signature or MAC is wrong (every module says so, as the specification
 * does); any other failure is the token's (HSM_ERR_UNAVAILABLE or
 * HSM_ERR_INTERNAL), never reported to a caller as a forged signature. */
int hsm__ckr_signature(hsm_session *s, const char *call, CK_RV rv);
/* Records a message of the hsm layer as the thread's detail and returns err. */
int hsm__fail(int err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
const char *hsm__ckr_name(CK_RV rv);
bool hsm__ckr_is_loss(CK_RV rv);

/* module.c */
uint64_t hsm__now_ms(void);
/* Marks the token lost (called from hsm__ckr with the session's hsm). */
void hsm__mark_down(struct hsm *h, uint64_t generation);

/* Destroys the temporary object |o| of session |s| (an ECDH secret, a
 * content key, a key made from host bytes) and counts it toward the next
 * recycle. C_DestroyObject's result, for the caller to map or ignore. */
CK_RV hsm__destroy_obj(hsm_session *s, CK_OBJECT_HANDLE o);

/* keys.c */
/* Finds up to |cap| objects matching |tmpl|. */
int hsm__find_objects(hsm_session *s, CK_ATTRIBUTE *tmpl, CK_ULONG n, CK_OBJECT_HANDLE *out,
                      CK_ULONG cap, CK_ULONG *out_num);
/* Resolves the key's handle for this session's generation, re-finding it (or
 * re-unwrapping a DEK) after a re-login. */
int hsm__key_handle(hsm_session *s, hsm_key *key, CK_OBJECT_HANDLE *out);
void hsm__keys_free(struct hsm *h);
/* Labels are short printable ASCII without spaces (keys.c has the rule). */
bool hsm__label_ok(const char *label);
/* Reads CKA_KEY_TYPE etc. to name a key's kind. */
int hsm__key_attr_bool(hsm_session *s, CK_OBJECT_HANDLE o, CK_ATTRIBUTE_TYPE t, int *out);

/* A key kind's template, for generation and for restore (unwrap): the
 * storage its attributes point to, the secret or private half, and the
 * public half's usages (without the curve or modulus when |unwrap|). */
struct hsm__key_tmpl {
    bool secret, ec;
    CK_OBJECT_CLASS klass;
    CK_KEY_TYPE type;
    CK_ULONG value_len, bits;
    CK_MECHANISM_TYPE gen_mech;
    CK_ATTRIBUTE unwrap_tmpl[2];
    CK_ATTRIBUTE priv[28];
    CK_ULONG priv_n;
    CK_ATTRIBUTE pub[16];
    CK_ULONG pub_n;
};
void hsm__key_tmpl_build(struct hsm__key_tmpl *k, hsm_key_kind kind, const char *label, bool unwrap);
bool hsm__kind_is_ec(hsm_key_kind kind);
/* The template of a token object as this token can store it: with
 * hsm_config.reduced_key_attributes, CKA_COPYABLE and CKA_ALLOWED_MECHANISMS
 * are taken out of |t| in place. Returns the new count. */
CK_ULONG hsm__token_tmpl(const struct hsm *h, CK_ATTRIBUTE *t, CK_ULONG n);

/* ops_sym.c: the template of a transient secret key for |use|: with
 * CKA_VALUE when |value| is not NULL (import), with CKA_VALUE_LEN = |len|
 * otherwise (derivation in the token). Sensitive, not extractable, one
 * usage, one mechanism. HSM_ERR_INPUT for a length the use does not take. */
#define HSM__SECRET_TMPL_MAX 20
struct hsm__secret_tmpl {
    CK_KEY_TYPE type;
    CK_ULONG len;
    CK_ATTRIBUTE a[HSM__SECRET_TMPL_MAX];
    CK_ULONG n;
};
int hsm__secret_tmpl_build(struct hsm__secret_tmpl *t, hsm_secret_use use, const uint8_t *value,
                           size_t len);

/* kdf.c: the all-in-token wallet derivations, exposed for the probe (which
 * runs them on known values) and used by hsm_apple_kdf_key and
 * hsm_hkdf_sha256_keys when the probe found them working. */
int hsm__apple_kdf_in_token(hsm_session *s, CK_OBJECT_HANDLE z, const uint8_t *other_info,
                            size_t other_len, hsm_secret_use use, hsm_obj *out_key);
int hsm__hkdf_in_token(hsm_session *s, CK_OBJECT_HANDLE z, const uint8_t *salt, size_t salt_len,
                       const uint8_t *ikm_prefix, size_t prefix_len, const uint8_t *info,
                       size_t info_len, size_t key_len, hsm_obj *out_aes, hsm_obj *out_mac);

/* probe.c */
int hsm__probe(struct hsm *h, hsm_session *s);

/* pubkey.c: curve OIDs (DER) for templates, and public-key helpers. */
/* hsm__p256_point_check: |point| is an uncompressed P-256 point on the
 * curve (not infinity). HSM_OK or HSM_ERR_INPUT; no detail is set. */
int hsm__p256_point_check(const uint8_t *point, size_t len);
extern const uint8_t hsm__p256_oid[10];
extern const uint8_t hsm__p384_oid[7];
struct evp_pkey_st;
/* Builds an OpenSSL EC public key from a raw uncompressed point on the named
 * group ("prime256v1", "secp384r1") and checks the point is on the curve. */
int hsm__ec_pkey_from_point(const char *group, const uint8_t *point, size_t len,
                            struct evp_pkey_st **out);
/* Unwraps a DER OCTET STRING (CKA_EC_POINT) in place: *out points into |der|. */
int hsm__der_octets(const uint8_t *der, size_t len, const uint8_t **out, size_t *out_len);
/* Reads a variable-length attribute of at most |max| bytes into a malloc'd
 * buffer (caller frees); an empty one gives NULL and 0; a longer one is
 * HSM_ERR_INPUT. */
int hsm__attr_read_max(hsm_session *s, CK_OBJECT_HANDLE o, CK_ATTRIBUTE_TYPE t, size_t max,
                       uint8_t **out, size_t *out_len);
/* The same for attributes that must be present, up to HSM_SPKI_MAX bytes
 * (HSM_ERR_INTERNAL otherwise). */
int hsm__attr_read(hsm_session *s, CK_OBJECT_HANDLE o, CK_ATTRIBUTE_TYPE t, uint8_t **out,
                   size_t *out_len);

#endif /* TOKENVAULT_HSM_INTERNAL_H */
