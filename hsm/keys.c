/*
 * keys.c - key templates, generation, lookup by label/ID/version, facts and
 * key check values, and the DEKs kept as session objects.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/sha.h>

#include "hsm/internal.h"

/* Largest number of keys one listing returns; an appliance holds tens. */
#define KEY_LIST_MAX 1024
/* Highest key version; rotation is yearly, so six digits is ample. */
#define KEY_VERSION_MAX 999999u

const char *
hsm_key_kind_name(hsm_key_kind kind)
{
    switch (kind) {
    case HSM_KIND_KEK: return "kek";
    case HSM_KIND_HMAC: return "hmac";
    case HSM_KIND_EC_SIGN: return "ec-sign";
    case HSM_KIND_EC_DERIVE: return "ec-derive";
    case HSM_KIND_RSA_UNWRAP: return "rsa-unwrap";
    case HSM_KIND_RSA_DECRYPT: return "rsa-decrypt";
    case HSM_KIND_DEK: return "dek";
    case HSM_KIND_EC_DERIVE_SIGN: return "ec-derive-sign";
    case HSM_KIND_RSA_UNWRAP_SIGN: return "rsa-unwrap-sign";
    }
    return "unknown";
}

const char *
hsm_key_label(const hsm_key *key)
{
    return key->label;
}

/* Labels are short printable ASCII without spaces: they go into logs,
 * transcripts and PKCS#11 URIs unescaped. */
static bool
label_ok(const char *label)
{
    size_t n;

    if (label == NULL)
        return false;
    n = strlen(label);
    if (n == 0 || n > HSM_LABEL_MAX)
        return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)label[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '_' || c == '.' || c == ':'))
            return false;
    }
    return true;
}

bool
hsm__label_ok(const char *label)
{
    return label_ok(label);
}

int
hsm_key_versioned_label(char *out, size_t cap, const char *base, unsigned version)
{
    int n;

    if (out == NULL || version == 0 || version > KEY_VERSION_MAX || !label_ok(base))
        return HSM_ERR_INVALID_ARG;
    n = snprintf(out, cap, "%s-v%u", base, version);
    if (n < 0 || (size_t)n >= cap || (size_t)n > HSM_LABEL_MAX)
        return HSM_ERR_INVALID_ARG;
    return HSM_OK;
}

int
hsm__find_objects(hsm_session *s, CK_ATTRIBUTE *tmpl, CK_ULONG n, CK_OBJECT_HANDLE *out, CK_ULONG cap,
             CK_ULONG *out_num)
{
    CK_FUNCTION_LIST_PTR p11 = s->h->p11;
    CK_ULONG num = 0;
    CK_RV rv;
    int r;

    rv = p11->C_FindObjectsInit(s->handle, tmpl, n);
    if (rv != CKR_OK)
        return hsm__ckr(s, "C_FindObjectsInit", rv);
    rv = p11->C_FindObjects(s->handle, out, cap, &num);
    r = hsm__ckr(s, "C_FindObjects", rv);
    rv = p11->C_FindObjectsFinal(s->handle);
    if (r == HSM_OK)
        r = hsm__ckr(s, "C_FindObjectsFinal", rv);
    if (r == HSM_OK)
        *out_num = num;
    return r;
}

int
hsm__key_attr_bool(hsm_session *s, CK_OBJECT_HANDLE o, CK_ATTRIBUTE_TYPE t, int *out)
{
    CK_BBOOL v = CK_FALSE;
    CK_ATTRIBUTE a = ATTR(t, &v, sizeof(v));
    CK_RV rv = s->h->p11->C_GetAttributeValue(s->handle, o, &a, 1);

    if (rv == CKR_ATTRIBUTE_TYPE_INVALID) {
        *out = -1; /* the token does not know the attribute */
        return HSM_OK;
    }
    if (rv != CKR_OK)
        return hsm__ckr(s, "C_GetAttributeValue", rv);
    *out = v == CK_TRUE;
    return HSM_OK;
}

static int
attr_ulong(hsm_session *s, CK_OBJECT_HANDLE o, CK_ATTRIBUTE_TYPE t, CK_ULONG *out)
{
    CK_ULONG v = 0;
    CK_ATTRIBUTE a = ATTR(t, &v, sizeof(v));
    CK_RV rv = s->h->p11->C_GetAttributeValue(s->handle, o, &a, 1);

    if (rv != CKR_OK)
        return hsm__ckr(s, "C_GetAttributeValue", rv);
    *out = v;
    return HSM_OK;
}

/* Names the kind of a token object from its class, type and usage flags. */
static int
classify(hsm_session *s, CK_OBJECT_HANDLE o, CK_OBJECT_CLASS *out_class, hsm_key_kind *out_kind)
{
    CK_ULONG klass = 0, type = 0;
    int wrap = 0, sign = 0, derive = 0, decrypt = 0, r;

    if ((r = attr_ulong(s, o, CKA_CLASS, &klass)) != HSM_OK ||
        (r = attr_ulong(s, o, CKA_KEY_TYPE, &type)) != HSM_OK)
        return r;
    if ((r = hsm__key_attr_bool(s, o, CKA_WRAP, &wrap)) != HSM_OK ||
        (r = hsm__key_attr_bool(s, o, CKA_SIGN, &sign)) != HSM_OK ||
        (r = hsm__key_attr_bool(s, o, CKA_DERIVE, &derive)) != HSM_OK ||
        (r = hsm__key_attr_bool(s, o, CKA_DECRYPT, &decrypt)) != HSM_OK)
        return r;
    if (klass == CKO_SECRET_KEY && type == CKK_AES)
        *out_kind = wrap == 1 ? HSM_KIND_KEK : HSM_KIND_DEK;
    else if (klass == CKO_SECRET_KEY && type == CKK_GENERIC_SECRET)
        *out_kind = HSM_KIND_HMAC;
    else if (klass == CKO_PRIVATE_KEY && type == CKK_EC && derive == 1 && sign == 1)
        *out_kind = HSM_KIND_EC_DERIVE_SIGN;
    else if (klass == CKO_PRIVATE_KEY && type == CKK_EC)
        *out_kind = derive == 1 ? HSM_KIND_EC_DERIVE : HSM_KIND_EC_SIGN;
    else if (klass == CKO_PRIVATE_KEY && type == CKK_RSA && decrypt != 1 && sign == 1)
        *out_kind = HSM_KIND_RSA_UNWRAP_SIGN;
    else if (klass == CKO_PRIVATE_KEY && type == CKK_RSA)
        *out_kind = decrypt == 1 ? HSM_KIND_RSA_DECRYPT : HSM_KIND_RSA_UNWRAP;
    else
        return hsm__fail(HSM_ERR_KEY_TYPE, "object of class %lu type %lu is no vault key",
                         (unsigned long)klass, (unsigned long)type);
    *out_class = (CK_OBJECT_CLASS)klass;
    return HSM_OK;
}

/* Returns the cached reference for |label|, adding one. Lock held by caller. */
static int
key_ref(struct hsm *h, const char *label, hsm_key **out)
{
    hsm_key *k;

    for (k = h->keys; k != NULL; k = k->next) {
        if (strcmp(k->label, label) == 0) {
            *out = k;
            return HSM_OK;
        }
    }
    k = calloc(1, sizeof(*k));
    if (k == NULL)
        return HSM_ERR_NO_MEMORY;
    snprintf(k->label, sizeof(k->label), "%s", label);
    k->next = h->keys;
    h->keys = k;
    *out = k;
    return HSM_OK;
}

void
hsm__keys_free(struct hsm *h)
{
    while (h->keys != NULL) {
        hsm_key *k = h->keys;
        h->keys = k->next;
        OPENSSL_cleanse(k->wrapped, sizeof(k->wrapped));
        free(k);
    }
}

/* Finds the one private or secret token object with this label (or ID). */
static int
find_private(hsm_session *s, CK_ATTRIBUTE_TYPE by, const void *val, size_t len,
             CK_OBJECT_HANDLE *out)
{
    static const CK_OBJECT_CLASS classes[] = { CKO_SECRET_KEY, CKO_PRIVATE_KEY };
    CK_OBJECT_HANDLE found[2], only = CK_INVALID_HANDLE;
    CK_ULONG num = 0, total = 0;
    int r;

    for (size_t i = 0; i < 2; i++) {
        CK_ATTRIBUTE t[] = { ATTR(CKA_CLASS, &classes[i], sizeof(classes[i])),
                             ATTR(by, val, len), BOOL_ATTR(CKA_TOKEN, 1) };
        r = hsm__find_objects(s, t, 3, found, 2, &num);
        if (r != HSM_OK)
            return r;
        total += num;
        if (num > 0)
            only = found[0];
    }
    if (total == 0)
        return hsm__fail(HSM_ERR_KEY_NOT_FOUND, "no key %s %.*s",
                         by == CKA_LABEL ? "labelled" : "with id", by == CKA_LABEL ? (int)len : 0,
                         (const char *)val);
    if (total > 1)
        return hsm__fail(HSM_ERR_KEY_TYPE, "more than one key %s %.*s: ambiguous",
                         by == CKA_LABEL ? "labelled" : "with that id",
                         by == CKA_LABEL ? (int)len : 0, (const char *)val);
    *out = only;
    return HSM_OK;
}

static int
bind_key(hsm_session *s, CK_OBJECT_HANDLE o, const char *label, hsm_key **out)
{
    struct hsm *h = s->h;
    CK_OBJECT_CLASS klass = 0;
    hsm_key_kind kind = 0;
    hsm_key *k = NULL;
    int r;

    r = classify(s, o, &klass, &kind);
    if (r != HSM_OK)
        return r;
    pthread_mutex_lock(&h->lock);
    r = key_ref(h, label, &k);
    if (r == HSM_OK) {
        k->kind = kind;
        k->klass = klass;
        k->handle = o;
        k->generation = s->generation;
    }
    pthread_mutex_unlock(&h->lock);
    if (r == HSM_OK)
        *out = k;
    return r;
}

/* Reads an object's label into |out| (NUL-terminated). */
static int
read_label(hsm_session *s, CK_OBJECT_HANDLE o, char out[HSM_LABEL_MAX + 1])
{
    CK_ATTRIBUTE a = ATTR(CKA_LABEL, NULL, 0);
    CK_RV rv = s->h->p11->C_GetAttributeValue(s->handle, o, &a, 1);

    if (rv != CKR_OK)
        return hsm__ckr(s, "C_GetAttributeValue", rv);
    if (a.ulValueLen == 0 || a.ulValueLen > HSM_LABEL_MAX)
        return HSM_ERR_KEY_NOT_FOUND; /* not one of ours */
    a.pValue = out;
    rv = s->h->p11->C_GetAttributeValue(s->handle, o, &a, 1);
    if (rv != CKR_OK)
        return hsm__ckr(s, "C_GetAttributeValue", rv);
    out[a.ulValueLen] = '\0';
    return HSM_OK;
}

int
hsm_key_find(hsm_session *s, const char *label, hsm_key **out)
{
    CK_OBJECT_HANDLE o = CK_INVALID_HANDLE;
    int r;

    if (s == NULL || out == NULL || !label_ok(label))
        return hsm__fail(HSM_ERR_INVALID_ARG, "bad key label");
    /* A cached handle of this generation needs no round trip. */
    pthread_mutex_lock(&s->h->lock);
    for (hsm_key *k = s->h->keys; k != NULL; k = k->next) {
        if (strcmp(k->label, label) == 0 && k->generation == s->generation &&
            k->handle != CK_INVALID_HANDLE) {
            pthread_mutex_unlock(&s->h->lock);
            *out = k;
            return HSM_OK;
        }
    }
    pthread_mutex_unlock(&s->h->lock);
    r = find_private(s, CKA_LABEL, label, strlen(label), &o);
    if (r != HSM_OK)
        return r;
    return bind_key(s, o, label, out);
}

int
hsm_key_find_by_id(hsm_session *s, const uint8_t *id, size_t id_len, hsm_key **out)
{
    char label[HSM_LABEL_MAX + 1];
    CK_OBJECT_HANDLE o = CK_INVALID_HANDLE;
    int r;

    if (s == NULL || out == NULL || id == NULL || id_len == 0 || id_len > HSM_LABEL_MAX)
        return HSM_ERR_INVALID_ARG;
    r = find_private(s, CKA_ID, id, id_len, &o);
    if (r != HSM_OK)
        return r;
    r = read_label(s, o, label);
    if (r != HSM_OK)
        return r;
    return bind_key(s, o, label, out);
}

/* Parses "<base>-v<N>"; returns N or 0. */
static unsigned
label_version(const char *label, const char *base)
{
    size_t bl = strlen(base);
    unsigned long v = 0;
    const char *p;

    if (strncmp(label, base, bl) != 0 || label[bl] != '-' || label[bl + 1] != 'v')
        return 0;
    p = label + bl + 2;
    if (*p < '1' || *p > '9')
        return 0;
    for (; *p != '\0'; p++) {
        if (*p < '0' || *p > '9')
            return 0;
        v = v * 10 + (unsigned long)(*p - '0');
        if (v > KEY_VERSION_MAX)
            return 0;
    }
    return (unsigned)v;
}

struct latest_ctx {
    const char *base;
    unsigned best;
    hsm_key *key;
};

static int
latest_visit(void *ctx, hsm_key *key)
{
    struct latest_ctx *c = ctx;
    unsigned v = label_version(key->label, c->base);

    if (v > c->best) {
        c->best = v;
        c->key = key;
    }
    return 0;
}

int
hsm_key_find_latest(hsm_session *s, const char *base, hsm_key **out, unsigned *out_version)
{
    struct latest_ctx c = { base, 0, NULL };
    int r;

    if (s == NULL || out == NULL || !label_ok(base))
        return HSM_ERR_INVALID_ARG;
    r = hsm_key_list(s, latest_visit, &c);
    if (r != HSM_OK)
        return r;
    if (c.key == NULL)
        return hsm__fail(HSM_ERR_KEY_NOT_FOUND, "no key %s-v<N>", base);
    *out = c.key;
    if (out_version != NULL)
        *out_version = c.best;
    return HSM_OK;
}

static int
cmp_label(const void *a, const void *b)
{
    return strcmp((*(hsm_key *const *)a)->label, (*(hsm_key *const *)b)->label);
}

int
hsm_key_list(hsm_session *s, hsm_key_visit_fn fn, void *ctx)
{
    static const CK_OBJECT_CLASS classes[] = { CKO_SECRET_KEY, CKO_PRIVATE_KEY };
    CK_OBJECT_HANDLE *objs = NULL;
    hsm_key **keys = NULL;
    size_t num_keys = 0;
    char label[HSM_LABEL_MAX + 1];
    int r = HSM_OK;

    if (s == NULL || fn == NULL)
        return HSM_ERR_INVALID_ARG;
    objs = calloc(KEY_LIST_MAX, sizeof(*objs));
    /* keys is an array of pointers: sizeof(*keys) is a pointer's size. */
    keys = calloc(2 * KEY_LIST_MAX, sizeof(*keys)); /* NOLINT(bugprone-sizeof-expression) */
    if (objs == NULL || keys == NULL) {
        r = HSM_ERR_NO_MEMORY;
        goto out;
    }
    for (size_t c = 0; c < 2; c++) {
        CK_ATTRIBUTE t[] = { ATTR(CKA_CLASS, &classes[c], sizeof(classes[c])),
                             BOOL_ATTR(CKA_TOKEN, 1) };
        CK_ULONG num = 0;

        r = hsm__find_objects(s, t, 2, objs, KEY_LIST_MAX, &num);
        if (r != HSM_OK)
            goto out;
        for (CK_ULONG i = 0; i < num; i++) {
            hsm_key *k = NULL;

            r = read_label(s, objs[i], label);
            if (r == HSM_ERR_KEY_NOT_FOUND || (r == HSM_OK && !label_ok(label)))
                continue; /* unlabelled or foreign object: not ours to list */
            if (r != HSM_OK)
                goto out;
            r = bind_key(s, objs[i], label, &k);
            if (r == HSM_ERR_KEY_TYPE)
                continue;
            if (r != HSM_OK)
                goto out;
            keys[num_keys++] = k;
        }
    }
    qsort(keys, num_keys, sizeof(*keys), cmp_label); /* NOLINT(bugprone-sizeof-expression) */
    for (size_t i = 0; i < num_keys; i++) {
        if (fn(ctx, keys[i]) != 0)
            break;
    }
    r = HSM_OK;
out:
    free(objs);
    free(keys);
    return r;
}

int
hsm__key_handle(hsm_session *s, hsm_key *key, CK_OBJECT_HANDLE *out)
{
    struct hsm *h = s->h;
    CK_OBJECT_HANDLE o = CK_INVALID_HANDLE;
    uint64_t gen;
    hsm_key *again = NULL;
    int r;

    pthread_mutex_lock(&h->lock);
    gen = key->generation;
    o = key->handle;
    pthread_mutex_unlock(&h->lock);
    if (gen == s->generation && o != CK_INVALID_HANDLE) {
        *out = o;
        return HSM_OK;
    }
    /* The token came back since this handle was found: find it again. */
    if (key->is_wrapped) {
        hsm_key *kek = NULL;
        r = hsm_key_find(s, key->kek_label, &kek);
        if (r == HSM_OK)
            r = hsm_wrapped_load(s, kek, key->kind, key->label, key->wrapped,
                                 sizeof(key->wrapped), key->kcv, &again);
    } else {
        r = hsm_key_find(s, key->label, &again);
    }
    if (r != HSM_OK)
        return r;
    pthread_mutex_lock(&h->lock);
    o = key->handle;
    pthread_mutex_unlock(&h->lock);
    *out = o;
    return HSM_OK;
}

/* ---- generation ---------------------------------------------------------- */

static int
label_taken(hsm_session *s, const char *label)
{
    CK_OBJECT_HANDLE o[1];
    CK_ATTRIBUTE t[] = { ATTR(CKA_LABEL, label, strlen(label)), BOOL_ATTR(CKA_TOKEN, 1) };
    CK_ULONG num = 0;
    int r = hsm__find_objects(s, t, 2, o, 1, &num);

    if (r != HSM_OK)
        return r;
    return num > 0 ? hsm__fail(HSM_ERR_EXISTS, "a key labelled %s exists", label) : HSM_OK;
}

/* Mechanisms each kind may use (CKA_ALLOWED_MECHANISMS). */
static const CK_MECHANISM_TYPE kek_mechs[] = { CKM_AES_KEY_WRAP_PAD };
static const CK_MECHANISM_TYPE hmac_mechs[] = { CKM_SHA256_HMAC };
static const CK_MECHANISM_TYPE sign_mechs[] = { CKM_ECDSA };
static const CK_MECHANISM_TYPE derive_mechs[] = { CKM_ECDH1_DERIVE };
static const CK_MECHANISM_TYPE unwrap_mechs[] = { CKM_RSA_PKCS, CKM_RSA_PKCS_OAEP };
static const CK_MECHANISM_TYPE decrypt_mechs[] = { CKM_RSA_PKCS, CKM_RSA_PKCS_OAEP, CKM_RSA_X_509 };
/* Wallet keys that sign their own CSR: proof of possession needs the
 * private key to sign, and a key generated in the token cannot be given
 * SIGN for one operation only (MODIFIABLE=F freezes the flags; leaving it
 * modifiable would let any PIN holder re-enable anything). So they keep
 * SIGN, narrowed by ALLOWED_MECHANISMS to the one signature scheme the
 * CSR needs. The cost: whoever holds the PIN can sign with a wallet key.
 * Nobody relies on such signatures (the wallets only encrypt to the key),
 * and no decryption mechanism is added, so no decryption oracle:
 * CKM_RSA_X_509 (raw RSA) stays forbidden on the Samsung key. */
static const CK_MECHANISM_TYPE derive_sign_mechs[] = { CKM_ECDH1_DERIVE, CKM_ECDSA };
static const CK_MECHANISM_TYPE unwrap_sign_mechs[] = { CKM_RSA_PKCS, CKM_RSA_PKCS_OAEP,
                                                       CKM_SHA256_RSA_PKCS };
static const uint8_t rsa_exponent[] = { 0x01, 0x00, 0x01 };

/* Sets |mechs| and |mechs_len| in hsm__key_tmpl_build. */
#define MECHS(a) (mechs = (a), mechs_len = sizeof(a))

bool
hsm__kind_is_ec(hsm_key_kind kind)
{
    return kind == HSM_KIND_EC_SIGN || kind == HSM_KIND_EC_DERIVE ||
           kind == HSM_KIND_EC_DERIVE_SIGN;
}

/* Templates. Every usage attribute is set explicitly: SoftHSM defaults most of
 * them to TRUE (HSM-NOTES Q10). Long-term keys are SENSITIVE and EXTRACTABLE
 * only under a CKA_TRUSTED key (CKA_WRAP_WITH_TRUSTED): only the SO can make
 * a trusted key, so a user who holds the PIN cannot wrap them under a key of
 * their own (HSM-NOTES Q10: CKR_KEY_NOT_WRAPPABLE), while the backup ceremony,
 * with the SO present, can clone them to a second HSM. A restore (unwrap)
 * gets the same attributes, less the two SoftHSM refuses in an unwrap
 * template: CKA_VALUE_LEN and CKA_MODIFIABLE. */
void
hsm__key_tmpl_build(struct hsm__key_tmpl *k, hsm_key_kind kind, const char *label, bool unwrap)
{
    bool ec = hsm__kind_is_ec(kind), secret = kind == HSM_KIND_KEK || kind == HSM_KIND_HMAC;
    bool kek = kind == HSM_KIND_KEK;
    const CK_MECHANISM_TYPE *mechs;
    size_t mechs_len;
    CK_ULONG n = 0;

    memset(k, 0, sizeof(*k));
    k->secret = secret;
    k->ec = ec;
    k->value_len = 32;
    k->bits = 2048;
    switch (kind) {
    case HSM_KIND_KEK: MECHS(kek_mechs); break;
    case HSM_KIND_HMAC: MECHS(hmac_mechs); break;
    case HSM_KIND_EC_SIGN: MECHS(sign_mechs); break;
    case HSM_KIND_EC_DERIVE: MECHS(derive_mechs); break;
    case HSM_KIND_RSA_UNWRAP: MECHS(unwrap_mechs); break;
    case HSM_KIND_EC_DERIVE_SIGN: MECHS(derive_sign_mechs); break;
    case HSM_KIND_RSA_UNWRAP_SIGN: MECHS(unwrap_sign_mechs); break;
    default: MECHS(decrypt_mechs); break;
    }
    /* What a KEK or an RSA key unwraps must stay sensitive and
     * non-extractable. */
    k->unwrap_tmpl[0] = (CK_ATTRIBUTE)BOOL_ATTR(CKA_SENSITIVE, 1);
    k->unwrap_tmpl[1] = (CK_ATTRIBUTE)BOOL_ATTR(CKA_EXTRACTABLE, 0);
    k->klass = secret ? CKO_SECRET_KEY : CKO_PRIVATE_KEY;
    k->type = kek ? CKK_AES : secret ? CKK_GENERIC_SECRET : ec ? CKK_EC : CKK_RSA;
    k->gen_mech = kek ? CKM_AES_KEY_GEN : secret ? CKM_GENERIC_SECRET_KEY_GEN
                : ec ? CKM_EC_KEY_PAIR_GEN : CKM_RSA_PKCS_KEY_PAIR_GEN;

    /* The secret or private half. */
    if (secret || unwrap) {
        k->priv[n++] = (CK_ATTRIBUTE)ATTR(CKA_CLASS, &k->klass, sizeof(k->klass));
        k->priv[n++] = (CK_ATTRIBUTE)ATTR(CKA_KEY_TYPE, &k->type, sizeof(k->type));
    }
    if (secret && !unwrap)
        k->priv[n++] = (CK_ATTRIBUTE)ATTR(CKA_VALUE_LEN, &k->value_len, sizeof(k->value_len));
    k->priv[n++] = (CK_ATTRIBUTE)ATTR(CKA_LABEL, label, strlen(label));
    k->priv[n++] = (CK_ATTRIBUTE)ATTR(CKA_ID, label, strlen(label));
    k->priv[n++] = (CK_ATTRIBUTE)BOOL_ATTR(CKA_TOKEN, 1);
    k->priv[n++] = (CK_ATTRIBUTE)BOOL_ATTR(CKA_PRIVATE, 1);
    k->priv[n++] = (CK_ATTRIBUTE)BOOL_ATTR(CKA_SENSITIVE, 1);
    k->priv[n++] = (CK_ATTRIBUTE)BOOL_ATTR(CKA_EXTRACTABLE, 1);
    k->priv[n++] = (CK_ATTRIBUTE)BOOL_ATTR(CKA_WRAP_WITH_TRUSTED, 1);
    if (!unwrap)
        k->priv[n++] = (CK_ATTRIBUTE)BOOL_ATTR(CKA_MODIFIABLE, 0);
    k->priv[n++] = (CK_ATTRIBUTE)BOOL_ATTR(CKA_COPYABLE, 0);
    if (secret) {
        k->priv[n++] = (CK_ATTRIBUTE)BOOL_ATTR(CKA_ENCRYPT, 0);
        k->priv[n++] = (CK_ATTRIBUTE)BOOL_ATTR(CKA_DECRYPT, 0);
        k->priv[n++] = (CK_ATTRIBUTE)BOOL_ATTR(CKA_SIGN, !kek);
        k->priv[n++] = (CK_ATTRIBUTE)BOOL_ATTR(CKA_VERIFY, !kek);
        k->priv[n++] = (CK_ATTRIBUTE)BOOL_ATTR(CKA_WRAP, kek);
        k->priv[n++] = (CK_ATTRIBUTE)BOOL_ATTR(CKA_UNWRAP, kek);
        k->priv[n++] = (CK_ATTRIBUTE)BOOL_ATTR(CKA_DERIVE, 0);
    } else {
        k->priv[n++] = (CK_ATTRIBUTE)BOOL_ATTR(CKA_SIGN, kind == HSM_KIND_EC_SIGN ||
                                                             kind == HSM_KIND_EC_DERIVE_SIGN ||
                                                             kind == HSM_KIND_RSA_UNWRAP_SIGN);
        k->priv[n++] = (CK_ATTRIBUTE)BOOL_ATTR(CKA_SIGN_RECOVER, 0);
        k->priv[n++] = (CK_ATTRIBUTE)BOOL_ATTR(CKA_DERIVE, kind == HSM_KIND_EC_DERIVE ||
                                                               kind == HSM_KIND_EC_DERIVE_SIGN);
        k->priv[n++] = (CK_ATTRIBUTE)BOOL_ATTR(CKA_DECRYPT, kind == HSM_KIND_RSA_DECRYPT);
        k->priv[n++] = (CK_ATTRIBUTE)BOOL_ATTR(CKA_UNWRAP, !ec);
    }
    k->priv[n++] = (CK_ATTRIBUTE)ATTR(CKA_ALLOWED_MECHANISMS, mechs, mechs_len);
    if (kek || (!secret && !ec))
        k->priv[n++] = (CK_ATTRIBUTE)ATTR(CKA_UNWRAP_TEMPLATE, k->unwrap_tmpl,
                                          sizeof(k->unwrap_tmpl));
    k->priv_n = n;

    /* The public half: its usages; the curve or modulus is added by the
     * caller (generation: the curve or modulus size; restore: the key). */
    if (secret)
        return;
    n = 0;
    k->pub[n++] = (CK_ATTRIBUTE)ATTR(CKA_LABEL, label, strlen(label));
    k->pub[n++] = (CK_ATTRIBUTE)ATTR(CKA_ID, label, strlen(label));
    k->pub[n++] = (CK_ATTRIBUTE)BOOL_ATTR(CKA_TOKEN, 1);
    k->pub[n++] = (CK_ATTRIBUTE)BOOL_ATTR(CKA_PRIVATE, 0);
    k->pub[n++] = (CK_ATTRIBUTE)BOOL_ATTR(CKA_MODIFIABLE, 0);
    /* A pair whose private half signs has a public half that verifies:
     * NSS softokn checks a new pair's consistency with the pair's own usages
     * and refuses a signing key whose public key may not verify
     * (CKR_KEY_TYPE_INCONSISTENT). Verifying grants nothing secret. */
    k->pub[n++] = (CK_ATTRIBUTE)BOOL_ATTR(CKA_VERIFY, kind == HSM_KIND_EC_SIGN ||
                                                          kind == HSM_KIND_EC_DERIVE_SIGN ||
                                                          kind == HSM_KIND_RSA_UNWRAP_SIGN);
    k->pub[n++] = (CK_ATTRIBUTE)BOOL_ATTR(CKA_ENCRYPT, !ec);
    k->pub[n++] = (CK_ATTRIBUTE)BOOL_ATTR(CKA_WRAP, !ec);
    k->pub[n++] = (CK_ATTRIBUTE)BOOL_ATTR(CKA_DERIVE, 0);
    if (!unwrap) {
        if (ec) {
            k->pub[n++] = (CK_ATTRIBUTE)ATTR(CKA_EC_PARAMS, hsm__p256_oid, sizeof(hsm__p256_oid));
        } else {
            k->pub[n++] = (CK_ATTRIBUTE)ATTR(CKA_MODULUS_BITS, &k->bits, sizeof(k->bits));
            k->pub[n++] = (CK_ATTRIBUTE)ATTR(CKA_PUBLIC_EXPONENT, rsa_exponent,
                                             sizeof(rsa_exponent));
        }
    }
    k->pub_n = n;
}

CK_ULONG
hsm__token_tmpl(const struct hsm *h, CK_ATTRIBUTE *t, CK_ULONG n)
{
    CK_ULONG kept = 0;

    if (!h->reduced_attrs)
        return n;
    for (CK_ULONG i = 0; i < n; i++) {
        if (t[i].type == CKA_COPYABLE || t[i].type == CKA_ALLOWED_MECHANISMS)
            continue;
        /* Such a token does not enforce CKA_WRAP_WITH_TRUSTED either (NSS
         * softokn wraps the key under any user key), so nothing may leave:
         * no clone, the key is never extractable. */
        if (t[i].type == CKA_EXTRACTABLE)
            t[i].pValue = &hsm__false;
        t[kept++] = t[i];
    }
    return kept;
}

static int
generate(hsm_session *s, hsm_key_kind kind, const char *label, CK_OBJECT_HANDLE *out)
{
    struct hsm__key_tmpl k;
    CK_OBJECT_HANDLE pub = CK_INVALID_HANDLE;
    CK_MECHANISM mech = { 0, NULL, 0 };
    CK_RV rv;

    hsm__key_tmpl_build(&k, kind, label, false);
    k.priv_n = hsm__token_tmpl(s->h, k.priv, k.priv_n);
    mech.mechanism = k.gen_mech;
    if (k.secret) {
        rv = s->h->p11->C_GenerateKey(s->handle, &mech, k.priv, k.priv_n, out);
        return hsm__ckr(s, "C_GenerateKey", rv);
    }
    rv = s->h->p11->C_GenerateKeyPair(s->handle, &mech, k.pub, k.pub_n, k.priv, k.priv_n, &pub, out);
    return hsm__ckr(s, "C_GenerateKeyPair", rv);
}

int
hsm_key_generate(hsm_session *s, hsm_key_kind kind, const char *label, hsm_key **out)
{
    CK_OBJECT_HANDLE o = CK_INVALID_HANDLE;
    int r;

    if (s == NULL || out == NULL || !label_ok(label))
        return hsm__fail(HSM_ERR_INVALID_ARG, "bad key label");
    if (kind < HSM_KIND_KEK || kind > HSM_KIND_RSA_UNWRAP_SIGN || kind == HSM_KIND_DEK)
        return hsm__fail(HSM_ERR_INVALID_ARG, "kind %d cannot be generated as a token key", kind);
    r = label_taken(s, label);
    if (r != HSM_OK)
        return r;
    r = generate(s, kind, label, &o);
    if (r != HSM_OK)
        return r;
    return bind_key(s, o, label, out);
}

/* ---- facts and KCV -------------------------------------------------------- */

int
hsm_key_info_get(hsm_session *s, hsm_key *key, hsm_key_info *out)
{
    hsm_key_info info;
    CK_OBJECT_HANDLE o = CK_INVALID_HANDLE;
    uint8_t spki[HSM_SPKI_MAX], digest[SHA256_DIGEST_LENGTH];
    size_t spki_len = 0;
    CK_ULONG len = 0;
    int r;

    if (s == NULL || key == NULL || out == NULL)
        return HSM_ERR_INVALID_ARG;
    memset(&info, 0, sizeof(info));
    r = hsm__key_handle(s, key, &o);
    if (r != HSM_OK)
        return r;
    snprintf(info.label, sizeof(info.label), "%s", key->label);
    info.kind = key->kind;
    struct { CK_ATTRIBUTE_TYPE t; int *v; } flags[] = {
        { CKA_TOKEN, &info.token }, { CKA_PRIVATE, &info.private_ },
        { CKA_SENSITIVE, &info.sensitive }, { CKA_EXTRACTABLE, &info.extractable },
        { CKA_ALWAYS_SENSITIVE, &info.always_sensitive },
        { CKA_NEVER_EXTRACTABLE, &info.never_extractable },
        { CKA_WRAP_WITH_TRUSTED, &info.wrap_with_trusted },
        { CKA_MODIFIABLE, &info.modifiable }, { CKA_COPYABLE, &info.copyable },
        { CKA_ENCRYPT, &info.encrypt }, { CKA_DECRYPT, &info.decrypt }, { CKA_SIGN, &info.sign },
        { CKA_VERIFY, &info.verify }, { CKA_WRAP, &info.wrap }, { CKA_UNWRAP, &info.unwrap },
        { CKA_DERIVE, &info.derive }, { CKA_LOCAL, &info.local },
    };
    for (size_t i = 0; i < sizeof(flags) / sizeof(flags[0]); i++) {
        r = hsm__key_attr_bool(s, o, flags[i].t, flags[i].v);
        if (r != HSM_OK)
            return r;
    }
    if (key->is_wrapped) {
        /* Tokens compute no KCV for unwrapped keys: report the one the token
         * computed when it generated the key (kept beside the wrapped blob). */
        memcpy(info.kcv, key->kcv, sizeof(info.kcv));
        info.type = key->kind == HSM_KIND_HMAC ? "GENERIC-SECRET-256" : "AES-256";
        info.kcv_method = key->kind == HSM_KIND_HMAC ? "SHA-1(value), at generation"
                                                     : "AES-ECB(0^128), at generation";
    } else if (key->klass == CKO_SECRET_KEY) {
        CK_ATTRIBUTE a = ATTR(CKA_CHECK_VALUE, info.kcv, sizeof(info.kcv));
        CK_RV rv = s->h->p11->C_GetAttributeValue(s->handle, o, &a, 1);

        bool token_kcv = rv == CKR_OK && a.ulValueLen == sizeof(info.kcv);

        /* A key restored from a backup was unwrapped, and SoftHSM 2.6 keeps no
         * CKA_CHECK_VALUE for those: the token's digest of the value stands
         * in (the backup records the same digest, so they compare). */
        if (!token_kcv && (r = hsm_key_digest_kcv(s, key, info.kcv)) != HSM_OK)
            return r;
        r = attr_ulong(s, o, CKA_VALUE_LEN, &len);
        if (r != HSM_OK)
            return r;
        if (!token_kcv) {
            /* VALUE_LEN reads 0 on unwrapped keys; ours are all 32 bytes. */
            info.type = key->kind == HSM_KIND_HMAC ? "GENERIC-SECRET-256" : "AES-256";
            info.kcv_method = "SHA-256(value), C_DigestKey";
        } else if (key->kind == HSM_KIND_HMAC) {
            info.type = len == 32 ? "GENERIC-SECRET-256" : "GENERIC-SECRET";
            info.kcv_method = "SHA-1(value)";
        } else {
            /* SoftHSM reads VALUE_LEN 0 on unwrapped keys (HSM-NOTES Q1). */
            info.type = len == 32 || len == 0 ? "AES-256" : len == 16 ? "AES-128" : "AES";
            info.kcv_method = "AES-ECB(0^128)";
        }
    } else {
        r = hsm_key_public_spki(s, key, spki, sizeof(spki), &spki_len);
        if (r != HSM_OK)
            return r;
        SHA256(spki, spki_len, digest);
        memcpy(info.kcv, digest, sizeof(info.kcv));
        info.kcv_method = "SHA-256(SPKI)";
        info.type = key->kind == HSM_KIND_EC_SIGN || key->kind == HSM_KIND_EC_DERIVE ||
                            key->kind == HSM_KIND_EC_DERIVE_SIGN
                        ? "EC-P256"
                        : "RSA-2048";
    }
    *out = info;
    return HSM_OK;
}

/* ---- wrapped keys (DEKs, HMAC session keys) ---------------------------------- */

static const CK_MECHANISM_TYPE wrapped_gcm[] = { CKM_AES_GCM };
static const CK_MECHANISM_TYPE wrapped_hmac[] = { CKM_SHA256_HMAC };

/* What a wrapped key is in the token: its type, how it is generated, and
 * the one use it is unwrapped for. */
struct wrapped_kind {
    CK_KEY_TYPE type;
    CK_MECHANISM_TYPE gen;
    bool cipher; /* encrypt and decrypt (DEK) rather than sign and verify */
    const CK_MECHANISM_TYPE *mechs;
    size_t mechs_len;
};

static int
wrapped_kind_get(hsm_key_kind kind, struct wrapped_kind *out)
{
    if (kind == HSM_KIND_DEK) {
        *out = (struct wrapped_kind){ CKK_AES, CKM_AES_KEY_GEN, true, wrapped_gcm,
                                      sizeof(wrapped_gcm) };
        return HSM_OK;
    }
    if (kind == HSM_KIND_HMAC) {
        *out = (struct wrapped_kind){ CKK_GENERIC_SECRET, CKM_GENERIC_SECRET_KEY_GEN, false,
                                      wrapped_hmac, sizeof(wrapped_hmac) };
        return HSM_OK;
    }
    return hsm__fail(HSM_ERR_INVALID_ARG, "kind %d is not kept wrapped", kind);
}

int
hsm_wrapped_generate(hsm_session *s, hsm_key *kek, hsm_key_kind kind,
                     uint8_t out_wrapped[HSM_WRAPPED_KEY_LEN], uint8_t out_kcv[HSM_KCV_LEN])
{
    static const CK_OBJECT_CLASS secret = CKO_SECRET_KEY;
    struct wrapped_kind wk = { 0 };
    CK_ULONG value_len = 32, wrapped_len = HSM_WRAPPED_KEY_LEN;
    CK_MECHANISM gen = { 0, NULL, 0 };
    CK_MECHANISM wrap = { CKM_AES_KEY_WRAP_PAD, NULL, 0 };
    CK_OBJECT_HANDLE key = CK_INVALID_HANDLE, k = CK_INVALID_HANDLE;
    uint8_t buf[HSM_WRAPPED_KEY_LEN], kcv[HSM_KCV_LEN];
    CK_ATTRIBUTE kcv_attr = ATTR(CKA_CHECK_VALUE, kcv, sizeof(kcv));
    CK_RV rv;
    int r;

    if (s == NULL || kek == NULL || out_wrapped == NULL || out_kcv == NULL)
        return HSM_ERR_INVALID_ARG;
    if ((r = wrapped_kind_get(kind, &wk)) != HSM_OK)
        return r;
    if (kek->kind != HSM_KIND_KEK)
        return hsm__fail(HSM_ERR_KEY_TYPE, "%s is not a KEK", kek->label);
    r = hsm__key_handle(s, kek, &k);
    if (r != HSM_OK)
        return r;
    gen.mechanism = wk.gen;
    /* The fresh key is a session object, extractable only so that the KEK can
     * wrap it, usable for nothing else, and destroyed right after. */
    CK_ATTRIBUTE t[] = {
        ATTR(CKA_CLASS, &secret, sizeof(secret)), ATTR(CKA_KEY_TYPE, &wk.type, sizeof(wk.type)),
        ATTR(CKA_VALUE_LEN, &value_len, sizeof(value_len)), BOOL_ATTR(CKA_TOKEN, 0),
        BOOL_ATTR(CKA_PRIVATE, 1), BOOL_ATTR(CKA_SENSITIVE, 1), BOOL_ATTR(CKA_EXTRACTABLE, 1),
        BOOL_ATTR(CKA_ENCRYPT, 0), BOOL_ATTR(CKA_DECRYPT, 0), BOOL_ATTR(CKA_SIGN, 0),
        BOOL_ATTR(CKA_VERIFY, 0), BOOL_ATTR(CKA_WRAP, 0), BOOL_ATTR(CKA_UNWRAP, 0),
        BOOL_ATTR(CKA_DERIVE, 0),
    };
    rv = s->h->p11->C_GenerateKey(s->handle, &gen, t, sizeof(t) / sizeof(t[0]), &key);
    if ((r = hsm__ckr(s, "C_GenerateKey", rv)) != HSM_OK)
        return r;
    rv = s->h->p11->C_GetAttributeValue(s->handle, key, &kcv_attr, 1);
    r = hsm__ckr(s, "C_GetAttributeValue(CKA_CHECK_VALUE)", rv);
    if (r == HSM_OK && kcv_attr.ulValueLen != HSM_KCV_LEN)
        r = hsm__fail(HSM_ERR_MECHANISM, "token gives no 3-byte CKA_CHECK_VALUE");
    if (r == HSM_OK) {
        rv = s->h->p11->C_WrapKey(s->handle, &wrap, k, key, buf, &wrapped_len);
        r = hsm__ckr(s, "C_WrapKey", rv);
    }
    if (r == HSM_OK && wrapped_len != HSM_WRAPPED_KEY_LEN)
        r = hsm__fail(HSM_ERR_INTERNAL, "wrapped key is %lu bytes", (unsigned long)wrapped_len);
    hsm__destroy_obj(s, key);
    if (r == HSM_OK) {
        memcpy(out_wrapped, buf, HSM_WRAPPED_KEY_LEN);
        memcpy(out_kcv, kcv, HSM_KCV_LEN);
    }
    OPENSSL_cleanse(buf, sizeof(buf));
    return r;
}

int
hsm_wrapped_load(hsm_session *s, hsm_key *kek, hsm_key_kind kind, const char *label,
                 const uint8_t *wrapped, size_t wrapped_len, const uint8_t kcv[HSM_KCV_LEN],
                 hsm_key **out)
{
    static const CK_OBJECT_CLASS secret = CKO_SECRET_KEY;
    struct wrapped_kind wk = { 0 };
    struct hsm *h;
    CK_OBJECT_HANDLE k = CK_INVALID_HANDLE, obj = CK_INVALID_HANDLE, old = CK_INVALID_HANDLE;
    CK_MECHANISM mech = { CKM_AES_KEY_WRAP_PAD, NULL, 0 };
    hsm_key *ref = NULL;
    uint64_t old_gen = 0;
    CK_RV rv;
    int r;

    if (s == NULL || kek == NULL || out == NULL || wrapped == NULL || kcv == NULL ||
        wrapped_len != HSM_WRAPPED_KEY_LEN || !label_ok(label))
        return hsm__fail(HSM_ERR_INVALID_ARG, "bad wrapped-key label or length");
    if ((r = wrapped_kind_get(kind, &wk)) != HSM_OK)
        return r;
    if (kek->kind != HSM_KIND_KEK)
        return hsm__fail(HSM_ERR_KEY_TYPE, "%s is not a KEK", kek->label);
    h = s->h;
    CK_ATTRIBUTE t[] = {
        ATTR(CKA_CLASS, &secret, sizeof(secret)), ATTR(CKA_KEY_TYPE, &wk.type, sizeof(wk.type)),
        ATTR(CKA_LABEL, label, strlen(label)), BOOL_ATTR(CKA_TOKEN, 0),
        BOOL_ATTR(CKA_PRIVATE, 1), BOOL_ATTR(CKA_SENSITIVE, 1), BOOL_ATTR(CKA_EXTRACTABLE, 0),
        BOOL_ATTR(CKA_ENCRYPT, wk.cipher), BOOL_ATTR(CKA_DECRYPT, wk.cipher),
        BOOL_ATTR(CKA_SIGN, !wk.cipher), BOOL_ATTR(CKA_VERIFY, !wk.cipher),
        BOOL_ATTR(CKA_WRAP, 0), BOOL_ATTR(CKA_UNWRAP, 0), BOOL_ATTR(CKA_DERIVE, 0),
        ATTR(CKA_ALLOWED_MECHANISMS, wk.mechs, wk.mechs_len),
    };
    uint8_t got_kcv[HSM_KCV_LEN];
    CK_ATTRIBUTE kcv_attr = ATTR(CKA_CHECK_VALUE, got_kcv, sizeof(got_kcv));
    r = hsm__key_handle(s, kek, &k);
    if (r != HSM_OK)
        return r;
    /* Unwrapped in the keeper session so it outlives the caller's session;
     * session objects are visible to every session of this application. The
     * keeper is shared, so it is used under the lock. */
    pthread_mutex_lock(&h->lock);
    if (s->generation != h->generation || h->down) {
        pthread_mutex_unlock(&h->lock);
        return hsm__fail(HSM_ERR_UNAVAILABLE, "HSM re-login in progress");
    }
    rv = h->p11->C_UnwrapKey(h->keeper, &mech, k, (CK_BYTE_PTR)wrapped, wrapped_len, t,
                             sizeof(t) / sizeof(t[0]), &obj);
    /* AES-KWP already authenticates the blob under the KEK. A token that
     * computes the KCV of unwrapped keys lets us also check it against the one
     * recorded at generation; SoftHSM 2.6 computes none (and refuses it in
     * the template with CKR_ATTRIBUTE_VALUE_INVALID). */
    if (rv == CKR_OK && h->p11->C_GetAttributeValue(h->keeper, obj, &kcv_attr, 1) == CKR_OK &&
        kcv_attr.ulValueLen == HSM_KCV_LEN && CRYPTO_memcmp(got_kcv, kcv, HSM_KCV_LEN) != 0) {
        h->p11->C_DestroyObject(h->keeper, obj);
        pthread_mutex_unlock(&h->lock);
        return hsm__fail(HSM_ERR_VERIFY, "unwrapped key %s does not match its KCV", label);
    }
    if (rv == CKR_OK)
        r = key_ref(h, label, &ref);
    if (rv == CKR_OK && r == HSM_OK) {
        old = ref->handle;
        old_gen = ref->generation;
        ref->kind = kind;
        ref->klass = CKO_SECRET_KEY;
        ref->is_wrapped = true;
        ref->handle = obj;
        ref->generation = h->generation;
        memcpy(ref->wrapped, wrapped, HSM_WRAPPED_KEY_LEN);
        memcpy(ref->kcv, kcv, HSM_KCV_LEN);
        snprintf(ref->kek_label, sizeof(ref->kek_label), "%s", kek->label);
        /* A reload in the same generation replaces the old object. */
        if (old != CK_INVALID_HANDLE && old_gen == h->generation && old != obj)
            h->p11->C_DestroyObject(h->keeper, old);
    } else if (rv == CKR_OK) {
        h->p11->C_DestroyObject(h->keeper, obj);
    }
    pthread_mutex_unlock(&h->lock);
    if (rv != CKR_OK) {
        r = hsm__ckr_verify(s, "C_UnwrapKey", rv);
        return r;
    }
    if (r != HSM_OK)
        return r;
    *out = ref;
    return HSM_OK;
}

int
hsm_dek_generate(hsm_session *s, hsm_key *kek, uint8_t out_wrapped[HSM_WRAPPED_DEK_LEN],
                 uint8_t out_kcv[HSM_KCV_LEN])
{
    return hsm_wrapped_generate(s, kek, HSM_KIND_DEK, out_wrapped, out_kcv);
}

int
hsm_dek_load(hsm_session *s, hsm_key *kek, const char *label, const uint8_t *wrapped,
             size_t wrapped_len, const uint8_t kcv[HSM_KCV_LEN], hsm_key **out)
{
    return hsm_wrapped_load(s, kek, HSM_KIND_DEK, label, wrapped, wrapped_len, kcv, out);
}
