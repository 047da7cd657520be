/*
 * objects.c - the wallet objects that are not keys: the certificate a wallet
 * issued for one of our key pairs (Apple Pay's Payment Processing
 * certificate), the trust anchors (Apple Root CA - G3 as a certificate,
 * Google's root signing keys as data objects holding an anchor record), and
 * their listing. Parsing of
 * the certificates and keys is OpenSSL's; this file checks, stores and finds.
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/x509.h>

#include "api/reader.h"
#include "api/writer.h"
#include "hsm/internal.h"

/* Objects one listing returns: an appliance holds a few per merchant. */
#define WALLET_OBJ_MAX 256
/* CKA_ID (or CKA_APPLICATION) of our objects: a key's label, or "anchor:"
 * and a set name. */
#define OBJ_ID_MAX (HSM_LABEL_MAX + sizeof(HSM_ANCHOR_ID_PREFIX))
/* PKCS#11 certificate categories (section 4.6.2): ours vs. an authority's. */
#define CERT_CATEGORY_TOKEN_USER 1UL
#define CERT_CATEGORY_AUTHORITY 2UL

static const CK_OBJECT_CLASS cert_class = CKO_CERTIFICATE;
static const CK_OBJECT_CLASS data_class = CKO_DATA;
static const CK_CERTIFICATE_TYPE x509_type = CKC_X_509;


int
hsm_label_check_free(hsm_session *s, const char *label)
{
    CK_OBJECT_HANDLE o[1];
    CK_ULONG num = 0;
    int r;

    if (s == NULL || !hsm__label_ok(label))
        return hsm__fail(HSM_ERR_INVALID_ARG, "bad label");
    CK_ATTRIBUTE t[] = { ATTR(CKA_LABEL, label, strlen(label)), BOOL_ATTR(CKA_TOKEN, 1) };
    if ((r = hsm__find_objects(s, t, 2, o, 1, &num)) != HSM_OK)
        return r;
    return num > 0 ? hsm__fail(HSM_ERR_EXISTS, "an object labelled %s exists", label) : HSM_OK;
}

/* Anchor set names follow the label rule and fit HSM_ANCHOR_SET_MAX. */
static bool
set_ok(const char *set)
{
    return hsm__label_ok(set) && strlen(set) <= HSM_ANCHOR_SET_MAX;
}

/* "anchor:<set>" into |out| (OBJ_ID_MAX bytes); returns its length. */
static size_t
anchor_id(char out[OBJ_ID_MAX], const char *set)
{
    int n = snprintf(out, OBJ_ID_MAX, "%s%s", HSM_ANCHOR_ID_PREFIX, set);

    return n > 0 && (size_t)n < OBJ_ID_MAX ? (size_t)n : 0;
}

/* ---- certificates --------------------------------------------------------- */

/* One DER certificate, every byte of it (OpenSSL's parser). */
static int
cert_parse(const uint8_t *der, size_t len, X509 **out)
{
    const unsigned char *p = der;
    X509 *x;

    if (der == NULL || len == 0 || len > HSM_CERT_MAX)
        return hsm__fail(HSM_ERR_INPUT, "certificate of %zu bytes", len);
    x = d2i_X509(NULL, &p, (long)len);
    if (x == NULL || p != der + len) {
        X509_free(x);
        return hsm__fail(HSM_ERR_INPUT, "not one DER X.509 certificate");
    }
    *out = x;
    return HSM_OK;
}

/* The DER fields a PKCS#11 X.509 certificate object carries beside its value. */
struct cert_fields {
    unsigned char *subject, *issuer, *serial;
    int subject_len, issuer_len, serial_len;
};

static void
cert_fields_free(struct cert_fields *f)
{
    OPENSSL_free(f->subject);
    OPENSSL_free(f->issuer);
    OPENSSL_free(f->serial);
}

static int
cert_fields_get(X509 *x, struct cert_fields *f)
{
    memset(f, 0, sizeof(*f));
    f->subject_len = i2d_X509_NAME(X509_get_subject_name(x), &f->subject);
    f->issuer_len = i2d_X509_NAME(X509_get_issuer_name(x), &f->issuer);
    f->serial_len = i2d_ASN1_INTEGER(X509_get0_serialNumber(x), &f->serial);
    if (f->subject_len <= 0 || f->issuer_len <= 0 || f->serial_len <= 0)
        return hsm__fail(HSM_ERR_INPUT, "certificate name or serial unreadable");
    return HSM_OK;
}

/* Creates the certificate object: private, frozen, with its category. No
 * CKA_START_DATE/CKA_END_DATE: SoftHSM 2.6 stores a date on a private object
 * but answers CKR_GENERAL_ERROR when it is read back, which would break every
 * listing; the validity is in CKA_VALUE. */
static int
cert_create(hsm_session *s, X509 *x, const uint8_t *der, size_t der_len, CK_ULONG category,
            const char *label, const void *id, size_t id_len)
{
    struct cert_fields f;
    CK_OBJECT_HANDLE o = CK_INVALID_HANDLE;
    CK_RV rv;
    int r;

    if ((r = cert_fields_get(x, &f)) != HSM_OK) {
        cert_fields_free(&f);
        return r;
    }
    CK_ATTRIBUTE t[] = {
        ATTR(CKA_CLASS, &cert_class, sizeof(cert_class)),
        ATTR(CKA_CERTIFICATE_TYPE, &x509_type, sizeof(x509_type)),
        ATTR(CKA_CERTIFICATE_CATEGORY, &category, sizeof(category)),
        BOOL_ATTR(CKA_TOKEN, 1),
        BOOL_ATTR(CKA_PRIVATE, 1),
        BOOL_ATTR(CKA_MODIFIABLE, 0),
        BOOL_ATTR(CKA_COPYABLE, 0),
        ATTR(CKA_LABEL, label, strlen(label)),
        ATTR(CKA_ID, id, id_len),
        ATTR(CKA_SUBJECT, f.subject, (CK_ULONG)f.subject_len),
        ATTR(CKA_ISSUER, f.issuer, (CK_ULONG)f.issuer_len),
        ATTR(CKA_SERIAL_NUMBER, f.serial, (CK_ULONG)f.serial_len),
        ATTR(CKA_VALUE, der, der_len),
    };
    rv = s->h->p11->C_CreateObject(s->handle, t, hsm__token_tmpl(s->h, t, sizeof(t) / sizeof(t[0])),
                                   &o);
    r = hsm__ckr(s, "C_CreateObject(certificate)", rv);
    cert_fields_free(&f);
    return r;
}

/* HSM_ERR_EXISTS if a certificate object matches |attr|. */
static int
cert_absent(hsm_session *s, CK_ATTRIBUTE attr, const char *what)
{
    CK_ATTRIBUTE t[] = { ATTR(CKA_CLASS, &cert_class, sizeof(cert_class)), attr,
                         BOOL_ATTR(CKA_TOKEN, 1) };
    CK_OBJECT_HANDLE o[1];
    CK_ULONG num = 0;
    int r = hsm__find_objects(s, t, 3, o, 1, &num);

    if (r != HSM_OK)
        return r;
    return num > 0 ? hsm__fail(HSM_ERR_EXISTS, "%s already has a certificate", what) : HSM_OK;
}

/* HSM_OK if the certificate certifies exactly the key pair's public key. */
static int
cert_matches_key(hsm_session *s, hsm_key *key, X509 *x)
{
    uint8_t spki[HSM_SPKI_MAX];
    size_t spki_len = 0;
    const unsigned char *p = spki;
    EVP_PKEY *kp = NULL;
    int r;

    if ((r = hsm_key_public_spki(s, key, spki, sizeof(spki), &spki_len)) != HSM_OK)
        return r;
    kp = d2i_PUBKEY(NULL, &p, (long)spki_len);
    if (kp == NULL)
        return hsm__fail(HSM_ERR_INTERNAL, "cannot read the public key of %s", key->label);
    /* EVP_PKEY_eq compares the keys, not their encodings: a certificate that
     * spells the same point differently still matches. */
    r = EVP_PKEY_eq(X509_get0_pubkey(x), kp) == 1
            ? HSM_OK
            : hsm__fail(HSM_ERR_VERIFY, "the certificate is for another key than %s", key->label);
    EVP_PKEY_free(kp);
    return r;
}

int
hsm_key_cert_store(hsm_session *s, hsm_key *key, const uint8_t *der, size_t der_len)
{
    CK_OBJECT_HANDLE k = CK_INVALID_HANDLE;
    uint8_t *id = NULL;
    size_t id_len = 0;
    X509 *x = NULL;
    int r;

    if (s == NULL || key == NULL)
        return HSM_ERR_INVALID_ARG;
    if (key->klass != CKO_PRIVATE_KEY)
        return hsm__fail(HSM_ERR_KEY_TYPE, "%s is not a key pair", key->label);
    if ((r = cert_parse(der, der_len, &x)) != HSM_OK ||
        (r = cert_matches_key(s, key, x)) != HSM_OK ||
        (r = hsm__key_handle(s, key, &k)) != HSM_OK ||
        (r = hsm__attr_read_max(s, k, CKA_ID, OBJ_ID_MAX, &id, &id_len)) != HSM_OK)
        goto out;
    if (id_len == 0) {
        r = hsm__fail(HSM_ERR_KEY_TYPE, "%s has no CKA_ID to link a certificate to", key->label);
        goto out;
    }
    if ((r = cert_absent(s, (CK_ATTRIBUTE)ATTR(CKA_ID, id, id_len), key->label)) != HSM_OK ||
        (r = cert_absent(s, (CK_ATTRIBUTE)ATTR(CKA_LABEL, key->label, strlen(key->label)),
                         key->label)) != HSM_OK)
        goto out;
    r = cert_create(s, x, der, der_len, CERT_CATEGORY_TOKEN_USER, key->label, id, id_len);
out:
    free(id);
    X509_free(x);
    return r;
}

int
hsm_key_cert_get(hsm_session *s, hsm_key *key, uint8_t *out, size_t cap, size_t *out_len)
{
    CK_OBJECT_HANDLE k = CK_INVALID_HANDLE, o[2];
    CK_ULONG num = 0;
    uint8_t *id = NULL, *der = NULL;
    size_t id_len = 0, der_len = 0;
    int r;

    if (s == NULL || key == NULL || out_len == NULL)
        return HSM_ERR_INVALID_ARG;
    if ((r = hsm__key_handle(s, key, &k)) != HSM_OK ||
        (r = hsm__attr_read_max(s, k, CKA_ID, OBJ_ID_MAX, &id, &id_len)) != HSM_OK)
        goto out;
    {
        CK_ATTRIBUTE t[] = { ATTR(CKA_CLASS, &cert_class, sizeof(cert_class)),
                             ATTR(CKA_ID, id, id_len), BOOL_ATTR(CKA_TOKEN, 1),
                             BOOL_ATTR(CKA_PRIVATE, 1) };
        if ((r = hsm__find_objects(s, t, 4, o, 2, &num)) != HSM_OK)
            goto out;
    }
    if (id_len == 0 || num != 1) {
        r = hsm__fail(num > 1 ? HSM_ERR_KEY_TYPE : HSM_ERR_KEY_NOT_FOUND,
                      "%lu certificates for %s", (unsigned long)num, key->label);
        goto out;
    }
    if ((r = hsm__attr_read_max(s, o[0], CKA_VALUE, HSM_CERT_MAX, &der, &der_len)) != HSM_OK)
        goto out;
    r = hsm__copy_out(out, cap, der, der_len, out_len);
out:
    free(id);
    free(der);
    return r;
}

int
hsm_anchor_cert_store(hsm_session *s, const char *label, const char *set, const uint8_t *der,
                      size_t der_len)
{
    char id[OBJ_ID_MAX];
    size_t id_len;
    X509 *x = NULL;
    int r;

    if (s == NULL || set == NULL || !set_ok(set) || (id_len = anchor_id(id, set)) == 0)
        return hsm__fail(HSM_ERR_INVALID_ARG, "bad anchor set name");
    if ((r = hsm_label_check_free(s, label)) != HSM_OK ||
        (r = cert_parse(der, der_len, &x)) != HSM_OK)
        goto out;
    r = cert_create(s, x, der, der_len, CERT_CATEGORY_AUTHORITY, label, id, id_len);
out:
    X509_free(x);
    return r;
}

/* ---- anchor keys ---------------------------------------------------------------- */

/* HSM_OK if |spki| (all of it) is a DER EC P-256 SubjectPublicKeyInfo whose
 * point is on the curve. */
static int
spki_p256_check(const uint8_t *spki, size_t len)
{
    const unsigned char *p = spki;
    EVP_PKEY *pkey = NULL, *checked = NULL;
    uint8_t point[HSM_EC_P256_POINT_LEN];
    char group[32];
    size_t point_len = 0;
    int r = HSM_ERR_INPUT;

    if (spki == NULL || len == 0 || len > HSM_SPKI_MAX)
        return hsm__fail(HSM_ERR_INPUT, "SubjectPublicKeyInfo of %zu bytes", len);
    pkey = d2i_PUBKEY(NULL, &p, (long)len);
    if (pkey == NULL || p != spki + len || EVP_PKEY_get_base_id(pkey) != EVP_PKEY_EC ||
        !EVP_PKEY_get_utf8_string_param(pkey, OSSL_PKEY_PARAM_GROUP_NAME, group, sizeof(group),
                                        NULL) ||
        strcmp(group, "prime256v1") != 0) {
        r = hsm__fail(HSM_ERR_INPUT, "not a DER EC P-256 SubjectPublicKeyInfo");
        goto out;
    }
    /* Re-derive the point and check it with the same code ECDH uses. */
    if (EVP_PKEY_set_utf8_string_param(pkey, OSSL_PKEY_PARAM_EC_POINT_CONVERSION_FORMAT,
                                       "uncompressed") != 1 ||
        !EVP_PKEY_get_octet_string_param(pkey, OSSL_PKEY_PARAM_PUB_KEY, point, sizeof(point),
                                         &point_len) ||
        hsm__ec_pkey_from_point("prime256v1", point, point_len, &checked) != HSM_OK) {
        r = hsm__fail(HSM_ERR_INPUT, "invalid P-256 point");
        goto out;
    }
    r = HSM_OK;
out:
    EVP_PKEY_free(checked);
    EVP_PKEY_free(pkey);
    return r;
}

int
hsm_anchor_record_decode(const uint8_t *rec, size_t len, uint64_t *out_expiration_ms,
                         const uint8_t **out_spki, size_t *out_spki_len)
{
    struct api_reader r, spki;
    uint8_t version = 0;
    uint64_t expiration = 0;

    if (rec == NULL || out_expiration_ms == NULL || out_spki == NULL || out_spki_len == NULL)
        return HSM_ERR_INVALID_ARG;
    api_reader_init(&r, rec, len);
    if (api_reader_get_u8(&r, &version) != 0 || version != HSM_ANCHOR_RECORD_VERSION ||
        api_reader_get_u64(&r, &expiration) != 0 || api_reader_get_u32_prefixed(&r, &spki) != 0 ||
        api_reader_len(&r) != 0 || spki_p256_check(spki.data, spki.len) != HSM_OK)
        return hsm__fail(HSM_ERR_INPUT, "malformed anchor record");
    *out_expiration_ms = expiration;
    *out_spki = spki.data;
    *out_spki_len = spki.len;
    return HSM_OK;
}

int
hsm_anchor_key_store(hsm_session *s, const char *label, const char *set, const uint8_t *spki,
                     size_t spki_len, uint64_t expiration_ms)
{
    struct api_writer w;
    char app[OBJ_ID_MAX];
    size_t app_len, mark = 0;
    const uint8_t *rec;
    CK_OBJECT_HANDLE o = CK_INVALID_HANDLE;
    CK_RV rv;
    int r;

    if (s == NULL || set == NULL || !set_ok(set) || (app_len = anchor_id(app, set)) == 0)
        return hsm__fail(HSM_ERR_INVALID_ARG, "bad anchor set name");
    if ((r = hsm_label_check_free(s, label)) != HSM_OK ||
        (r = spki_p256_check(spki, spki_len)) != HSM_OK)
        return r;
    api_writer_init(&w, HSM_ANCHOR_RECORD_MAX);
    if (api_writer_put_u8(&w, HSM_ANCHOR_RECORD_VERSION) != 0 ||
        api_writer_put_u64(&w, expiration_ms) != 0 || api_writer_begin_u32(&w, &mark) != 0 ||
        api_writer_put_bytes(&w, spki, spki_len) != 0 || api_writer_end_u32(&w, mark) != 0 ||
        (rec = api_writer_data(&w)) == NULL) {
        r = hsm__fail(HSM_ERR_NO_MEMORY, "cannot build the anchor record");
        goto out;
    }
    {
        CK_ATTRIBUTE t[] = {
            ATTR(CKA_CLASS, &data_class, sizeof(data_class)),
            BOOL_ATTR(CKA_TOKEN, 1),
            BOOL_ATTR(CKA_PRIVATE, 1),
            BOOL_ATTR(CKA_MODIFIABLE, 0),
            BOOL_ATTR(CKA_COPYABLE, 0),
            ATTR(CKA_LABEL, label, strlen(label)),
            ATTR(CKA_APPLICATION, app, app_len),
            ATTR(CKA_VALUE, rec, api_writer_len(&w)),
        };
        rv = s->h->p11->C_CreateObject(s->handle, t,
                                       hsm__token_tmpl(s->h, t, sizeof(t) / sizeof(t[0])), &o);
        r = hsm__ckr(s, "C_CreateObject(anchor key)", rv);
    }
out:
    api_writer_cleanup(&w);
    return r;
}

/* ---- listing ---------------------------------------------------------------- */

struct wobj {
    hsm_wallet_obj obj;
    uint8_t *der; /* owned */
};

/* Reads the label every listed object has. HSM_ERR_INPUT: not one of ours
 * (no label, or too long). */
static int
wobj_label(hsm_session *s, CK_OBJECT_HANDLE o, struct wobj *w)
{
    uint8_t *label = NULL;
    size_t label_len = 0;
    int r;

    if ((r = hsm__attr_read_max(s, o, CKA_LABEL, HSM_LABEL_MAX, &label, &label_len)) != HSM_OK)
        return r;
    if (label_len == 0) {
        free(label);
        return HSM_ERR_INPUT;
    }
    memcpy(w->obj.label, label, label_len);
    w->obj.label[label_len] = '\0';
    free(label);
    return HSM_OK;
}

/* The anchor set named by a CKA_ID "anchor:<set>", or HSM_ERR_INPUT. */
static int
id_anchor_set(const uint8_t *id, size_t id_len, char out[HSM_ANCHOR_SET_MAX + 1])
{
    size_t plen = strlen(HSM_ANCHOR_ID_PREFIX);

    if (id == NULL || id_len <= plen || id_len - plen > HSM_ANCHOR_SET_MAX ||
        memcmp(id, HSM_ANCHOR_ID_PREFIX, plen) != 0)
        return HSM_ERR_INPUT;
    memcpy(out, id + plen, id_len - plen);
    out[id_len - plen] = '\0';
    return set_ok(out) ? HSM_OK : HSM_ERR_INPUT;
}

static int
wobj_cert(hsm_session *s, CK_OBJECT_HANDLE o, struct wobj *w)
{
    CK_ULONG category = 0;
    CK_ATTRIBUTE a = ATTR(CKA_CERTIFICATE_CATEGORY, &category, sizeof(category));
    uint8_t *id = NULL;
    size_t id_len = 0, der_len = 0;
    CK_RV rv;
    int r;

    if ((r = wobj_label(s, o, w)) != HSM_OK ||
        (r = hsm__attr_read_max(s, o, CKA_ID, OBJ_ID_MAX, &id, &id_len)) != HSM_OK ||
        (r = hsm__attr_read_max(s, o, CKA_VALUE, HSM_CERT_MAX, &w->der, &der_len)) != HSM_OK)
        goto out;
    rv = s->h->p11->C_GetAttributeValue(s->handle, o, &a, 1);
    if ((r = hsm__ckr(s, "C_GetAttributeValue", rv)) != HSM_OK)
        goto out;
    w->obj.type = category == CERT_CATEGORY_AUTHORITY ? HSM_WOBJ_ANCHOR_CERT : HSM_WOBJ_KEY_CERT;
    if (w->obj.type == HSM_WOBJ_ANCHOR_CERT && id_anchor_set(id, id_len, w->obj.set) != HSM_OK)
        w->obj.set[0] = '\0';
    w->obj.der = w->der;
    w->obj.der_len = der_len;
    r = w->der != NULL ? HSM_OK : HSM_ERR_INPUT;
out:
    free(id);
    return r;
}

/* An anchor key record: CKA_APPLICATION names its set. */
static int
wobj_anchor_key(hsm_session *s, CK_OBJECT_HANDLE o, struct wobj *w)
{
    uint8_t *app = NULL;
    size_t app_len = 0, rec_len = 0, spki_len = 0;
    const uint8_t *spki = NULL;
    int r;

    if ((r = hsm__attr_read_max(s, o, CKA_APPLICATION, OBJ_ID_MAX, &app, &app_len)) != HSM_OK)
        goto out;
    if ((r = id_anchor_set(app, app_len, w->obj.set)) != HSM_OK ||
        (r = wobj_label(s, o, w)) != HSM_OK ||
        (r = hsm__attr_read_max(s, o, CKA_VALUE, HSM_ANCHOR_RECORD_MAX, &w->der, &rec_len)) != HSM_OK)
        goto out;
    if (w->der == NULL ||
        hsm_anchor_record_decode(w->der, rec_len, &w->obj.expiration_ms, &spki, &spki_len) !=
            HSM_OK) {
        r = HSM_ERR_INPUT;
        goto out;
    }
    w->obj.type = HSM_WOBJ_ANCHOR_KEY;
    w->obj.der = spki; /* points into the record, which w->der owns */
    w->obj.der_len = spki_len;
out:
    free(app);
    return r;
}

static int
wobj_cmp(const void *a, const void *b)
{
    const struct wobj *x = a, *y = b;

    if (x->obj.type != y->obj.type)
        return x->obj.type < y->obj.type ? -1 : 1;
    return strcmp(x->obj.label, y->obj.label);
}

/* Finds the private token objects of |klass| and reads each with |read|;
 * objects that are not ours (HSM_ERR_INPUT) are skipped. */
static int
wobj_collect(hsm_session *s, CK_OBJECT_CLASS klass,
             int (*read)(hsm_session *, CK_OBJECT_HANDLE, struct wobj *), struct wobj *out,
             size_t *num_out)
{
    CK_OBJECT_HANDLE *objs = calloc(WALLET_OBJ_MAX, sizeof(*objs));
    CK_ATTRIBUTE t[] = { ATTR(CKA_CLASS, &klass, sizeof(klass)), BOOL_ATTR(CKA_TOKEN, 1),
                         BOOL_ATTR(CKA_PRIVATE, 1) };
    CK_ULONG num = 0;
    int r;

    if (objs == NULL)
        return HSM_ERR_NO_MEMORY;
    if ((r = hsm__find_objects(s, t, 3, objs, WALLET_OBJ_MAX, &num)) != HSM_OK)
        goto out;
    for (CK_ULONG i = 0; i < num && *num_out < WALLET_OBJ_MAX; i++) {
        struct wobj *w = &out[*num_out];

        memset(w, 0, sizeof(*w));
        r = read(s, objs[i], w);
        if (r == HSM_OK) {
            (*num_out)++;
            continue;
        }
        free(w->der);
        w->der = NULL;
        if (r != HSM_ERR_INPUT)
            goto out;
    }
    r = HSM_OK;
out:
    free(objs);
    return r;
}

int
hsm_wallet_obj_list(hsm_session *s, hsm_wallet_obj_visit_fn fn, void *ctx)
{
    struct wobj *all = NULL;
    size_t num = 0;
    int r;

    if (s == NULL || fn == NULL)
        return HSM_ERR_INVALID_ARG;
    if ((all = calloc(WALLET_OBJ_MAX, sizeof(*all))) == NULL)
        return HSM_ERR_NO_MEMORY;
    if ((r = wobj_collect(s, CKO_CERTIFICATE, wobj_cert, all, &num)) != HSM_OK ||
        (r = wobj_collect(s, CKO_DATA, wobj_anchor_key, all, &num)) != HSM_OK)
        goto out;
    qsort(all, num, sizeof(*all), wobj_cmp);
    for (size_t i = 0; i < num; i++) {
        if (fn(ctx, &all[i].obj) != 0)
            break;
    }
out:
    for (size_t i = 0; i < num; i++)
        free(all[i].der);
    free(all);
    return r;
}
