/*
 * gen_apple.c - Apple Pay test tokens, the test CA that signs them and the
 * merchant certificates it issues (see gen_apple.h). Host OpenSSL only.
 */
#include "tests/support/gen_apple.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/bn.h>
#include <openssl/cms.h>
#include <openssl/core_names.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/rsa.h>
#include <openssl/sha.h>
#include <openssl/x509v3.h>

#define YEAR_S (365L * 24 * 3600)
#define GCM_IV_LEN 16
#define GCM_TAG_LEN 16
#define TXID_LEN 32

static int
add_ext(X509 *x, X509 *issuer, int nid, const char *value)
{
    X509V3_CTX ctx;
    X509_EXTENSION *e;
    int ok;

    X509V3_set_ctx(&ctx, issuer, x, NULL, NULL, 0);
    e = X509V3_EXT_conf_nid(NULL, &ctx, nid, value);
    ok = e != NULL && X509_add_ext(x, e, -1) == 1;
    X509_EXTENSION_free(e);
    return ok;
}

/* An Apple marker: the extension's presence counts, its value is NULL. */
static int
add_marker(X509 *x, const char *oid_text)
{
    static const unsigned char null_der[] = { 0x05, 0x00 };
    ASN1_OBJECT *oid = OBJ_txt2obj(oid_text, 1);
    ASN1_OCTET_STRING *v = ASN1_OCTET_STRING_new();
    X509_EXTENSION *e = NULL;
    int ok = oid != NULL && v != NULL && ASN1_OCTET_STRING_set(v, null_der, 2) == 1 &&
             (e = X509_EXTENSION_create_by_OBJ(NULL, oid, 0, v)) != NULL &&
             X509_add_ext(x, e, -1) == 1;

    X509_EXTENSION_free(e);
    ASN1_OCTET_STRING_free(v);
    ASN1_OBJECT_free(oid);
    return ok;
}

static X509 *
make_cert(const char *cn, EVP_PKEY *key, X509 *issuer, EVP_PKEY *issuer_key, int ca, long serial)
{
    X509 *x = X509_new();
    int ok = x != NULL;

    ok = ok && X509_set_version(x, 2) && ASN1_INTEGER_set(X509_get_serialNumber(x), serial) &&
         X509_gmtime_adj(X509_getm_notBefore(x), -YEAR_S) &&
         X509_gmtime_adj(X509_getm_notAfter(x), YEAR_S) && X509_set_pubkey(x, key) &&
         X509_NAME_add_entry_by_txt(X509_get_subject_name(x), "CN", MBSTRING_ASC,
                                    (const unsigned char *)cn, -1, -1, 0) &&
         X509_set_issuer_name(x, X509_get_subject_name(issuer != NULL ? issuer : x));
    ok = ok && add_ext(x, issuer != NULL ? issuer : x, NID_subject_key_identifier, "hash") &&
         add_ext(x, issuer != NULL ? issuer : x, NID_authority_key_identifier, "keyid:always") &&
         add_ext(x, NULL, NID_basic_constraints, ca ? "critical,CA:TRUE" : "critical,CA:FALSE") &&
         add_ext(x, NULL, NID_key_usage, ca ? "critical,keyCertSign,cRLSign" : "critical,digitalSignature");
    ok = ok && X509_sign(x, issuer_key, EVP_sha256()) > 0;
    if (!ok) {
        X509_free(x);
        return NULL;
    }
    return x;
}

struct gen_apple_ca *
gen_apple_ca_new(unsigned flags)
{
    struct gen_apple_ca *ca = calloc(1, sizeof(*ca));

    if (ca == NULL)
        return NULL;
    ca->root_key = EVP_EC_gen("P-256");
    ca->inter_key = EVP_EC_gen("P-256");
    ca->leaf_key = (flags & GEN_APPLE_RSA_LEAF) ? EVP_RSA_gen(2048) : EVP_EC_gen("P-256");
    if (ca->root_key == NULL || ca->inter_key == NULL || ca->leaf_key == NULL)
        goto fail;
    ca->root = make_cert("Test Root CA - G3", ca->root_key, NULL, ca->root_key, 1, 1);
    if (ca->root == NULL)
        goto fail;
    /* A marker goes in after make_cert, and the issuer signs again. */
    ca->inter = make_cert("Test Application Integration CA - G3", ca->inter_key, ca->root,
                          ca->root_key, 1, 2);
    if (ca->inter == NULL ||
        (!(flags & GEN_APPLE_NO_INTER_MARKER) &&
         (!add_marker(ca->inter, "1.2.840.113635.100.6.2.14") ||
          X509_sign(ca->inter, ca->root_key, EVP_sha256()) <= 0)))
        goto fail;
    ca->leaf = make_cert("ecc-smp-broker-sign_UC4-TEST", ca->leaf_key, ca->inter, ca->inter_key, 0, 3);
    if (ca->leaf == NULL ||
        (!(flags & GEN_APPLE_NO_LEAF_MARKER) &&
         (!add_marker(ca->leaf, "1.2.840.113635.100.6.29") ||
          X509_sign(ca->leaf, ca->inter_key, EVP_sha256()) <= 0)))
        goto fail;
    if ((ca->root_der_len = i2d_X509(ca->root, &ca->root_der)) <= 0)
        goto fail;
    return ca;
fail:
    gen_apple_ca_free(ca);
    return NULL;
}

void
gen_apple_ca_free(struct gen_apple_ca *ca)
{
    if (ca == NULL)
        return;
    X509_free(ca->root);
    X509_free(ca->inter);
    X509_free(ca->leaf);
    EVP_PKEY_free(ca->root_key);
    EVP_PKEY_free(ca->inter_key);
    EVP_PKEY_free(ca->leaf_key);
    OPENSSL_free(ca->root_der);
    free(ca);
}

/* ---- saving and loading a CA (tokenvault-walletgen makes one, then uses it) ---- */

/* The six files of a saved CA, in the order they are written. */
#define CA_FILES 6
static const char *const ca_file_names[CA_FILES] = {
    "root.pem",     "intermediate.pem",     "leaf.pem",
    "root-key.pem", "intermediate-key.pem", "leaf-key.pem",
};
/* Longest path built under a CA directory. */
#define CA_PATH_MAX 4096

static int
ca_path(char *out, const char *dir, const char *name)
{
    int n = snprintf(out, CA_PATH_MAX, "%s/%s", dir, name);

    if (n < 0 || n >= CA_PATH_MAX) {
        errno = ENAMETOOLONG;
        return -1;
    }
    return 0;
}

/* One PEM file, created new with mode 0600 (O_EXCL: never overwritten). */
static int
write_pem(const char *path, X509 *cert, EVP_PKEY *key)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    BIO *b = NULL;
    int ok;

    if (fd < 0)
        return -1;
    b = BIO_new_fd(fd, BIO_NOCLOSE);
    ok = b != NULL &&
         (cert != NULL ? PEM_write_bio_X509(b, cert)
                       : PEM_write_bio_PrivateKey(b, key, NULL, NULL, 0, NULL, NULL)) == 1 &&
         BIO_flush(b) == 1 && fsync(fd) == 0;
    BIO_free(b);
    if (close(fd) != 0)
        ok = 0;
    if (!ok) {
        (void)unlink(path);
        errno = EIO;
        return -1;
    }
    return 0;
}

int
gen_apple_ca_save(const struct gen_apple_ca *ca, const char *dir)
{
    X509 *certs[CA_FILES] = { NULL, NULL, NULL, NULL, NULL, NULL };
    EVP_PKEY *keys[CA_FILES] = { NULL, NULL, NULL, NULL, NULL, NULL };
    char path[CA_PATH_MAX];
    struct stat st;
    int made = 0, saved_errno;

    if (ca == NULL || dir == NULL) {
        errno = EINVAL;
        return -1;
    }
    certs[0] = ca->root;
    certs[1] = ca->inter;
    certs[2] = ca->leaf;
    keys[3] = ca->root_key;
    keys[4] = ca->inter_key;
    keys[5] = ca->leaf_key;
    if (mkdir(dir, 0700) != 0 && errno != EEXIST)
        return -1;
    if (lstat(dir, &st) != 0)
        return -1;
    if (!S_ISDIR(st.st_mode)) {
        errno = ENOTDIR;
        return -1;
    }
    for (made = 0; made < CA_FILES; made++) {
        if (ca_path(path, dir, ca_file_names[made]) != 0 ||
            write_pem(path, certs[made], keys[made]) != 0)
            goto fail;
    }
    return 0;
fail:
    saved_errno = errno;
    while (made-- > 0) {
        if (ca_path(path, dir, ca_file_names[made]) == 0)
            (void)unlink(path);
    }
    errno = saved_errno;
    return -1;
}

/* One PEM file of a saved CA; a private key must be readable by its owner
 * only (as ssh and signify require of theirs). */
static int
read_pem(const char *dir, const char *name, X509 **cert, EVP_PKEY **key)
{
    char path[CA_PATH_MAX];
    struct stat st;
    BIO *b = NULL;
    int fd = -1, r = -1;

    if (ca_path(path, dir, name) != 0 ||
        (fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC)) < 0 || fstat(fd, &st) != 0 ||
        !S_ISREG(st.st_mode) || (key != NULL && (st.st_mode & 077) != 0) ||
        (b = BIO_new_fd(fd, BIO_NOCLOSE)) == NULL)
        goto out;
    if (cert != NULL)
        *cert = PEM_read_bio_X509(b, NULL, NULL, NULL);
    else
        *key = PEM_read_bio_PrivateKey(b, NULL, NULL, NULL);
    r = (cert != NULL ? *cert != NULL : *key != NULL) ? 0 : -1;
out:
    BIO_free(b);
    if (fd >= 0)
        close(fd);
    return r;
}

struct gen_apple_ca *
gen_apple_ca_load(const char *dir)
{
    struct gen_apple_ca *ca = calloc(1, sizeof(*ca));

    if (ca == NULL || dir == NULL)
        goto fail;
    if (read_pem(dir, ca_file_names[0], &ca->root, NULL) != 0 ||
        read_pem(dir, ca_file_names[1], &ca->inter, NULL) != 0 ||
        read_pem(dir, ca_file_names[2], &ca->leaf, NULL) != 0 ||
        read_pem(dir, ca_file_names[3], NULL, &ca->root_key) != 0 ||
        read_pem(dir, ca_file_names[4], NULL, &ca->inter_key) != 0 ||
        read_pem(dir, ca_file_names[5], NULL, &ca->leaf_key) != 0)
        goto fail;
    /* Keys that match their certificates, and the chain the tokens name. */
    if (X509_check_private_key(ca->root, ca->root_key) != 1 ||
        X509_check_private_key(ca->inter, ca->inter_key) != 1 ||
        X509_check_private_key(ca->leaf, ca->leaf_key) != 1 ||
        X509_check_issued(ca->root, ca->inter) != X509_V_OK ||
        X509_check_issued(ca->inter, ca->leaf) != X509_V_OK ||
        X509_verify(ca->inter, ca->root_key) != 1 || X509_verify(ca->leaf, ca->inter_key) != 1)
        goto fail;
    if ((ca->root_der_len = i2d_X509(ca->root, &ca->root_der)) <= 0)
        goto fail;
    return ca;
fail:
    gen_apple_ca_free(ca);
    return NULL;
}

/* ---- the merchant's Payment Processing certificate ---------------------------------- */

/* The merchant id extension and its value's length: UTF8String, 64 hex digits. */
#define MERCHANT_ID_OID "1.2.840.113635.100.6.32"
#define MERCHANT_ID_HEX_LEN 64
#define DER_UTF8STRING 0x0c
/* Serial numbers: 16 random bytes, the top bit clear so it stays positive. */
#define SERIAL_LEN 16
/* The keys Apple certifies for payment processing. */
#define MERCHANT_RSA_BITS 2048

static int
add_merchant_id(X509 *x, const uint8_t merchant_id[32])
{
    static const char digits[] = "0123456789ABCDEF";
    uint8_t value[2 + MERCHANT_ID_HEX_LEN];
    ASN1_OBJECT *oid = OBJ_txt2obj(MERCHANT_ID_OID, 1);
    ASN1_OCTET_STRING *v = ASN1_OCTET_STRING_new();
    X509_EXTENSION *e = NULL;
    int ok;

    value[0] = DER_UTF8STRING;
    value[1] = MERCHANT_ID_HEX_LEN;
    for (size_t i = 0; i < 32; i++) {
        value[2 + 2 * i] = (uint8_t)digits[merchant_id[i] >> 4];
        value[3 + 2 * i] = (uint8_t)digits[merchant_id[i] & 0x0f];
    }
    ok = oid != NULL && v != NULL && ASN1_OCTET_STRING_set(v, value, (int)sizeof(value)) == 1 &&
         (e = X509_EXTENSION_create_by_OBJ(NULL, oid, 0, v)) != NULL && X509_add_ext(x, e, -1) == 1;
    X509_EXTENSION_free(e);
    ASN1_OCTET_STRING_free(v);
    ASN1_OBJECT_free(oid);
    return ok;
}

static int
random_serial(X509 *x)
{
    uint8_t raw[SERIAL_LEN];
    BIGNUM *bn = NULL;
    int ok;

    ok = RAND_bytes(raw, sizeof(raw)) == 1;
    raw[0] &= 0x7f;
    raw[0] |= 0x01; /* never a shorter number than SERIAL_LEN bytes, never zero */
    ok = ok && (bn = BN_bin2bn(raw, sizeof(raw), NULL)) != NULL &&
         BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x)) != NULL;
    BN_free(bn);
    return ok;
}

/* EC P-256 (EC_v1) or RSA-2048 (RSA_v1): the keys Apple's portal takes. */
static int
merchant_key_ok(EVP_PKEY *k, int *ec)
{
    char group[32];
    size_t n = 0;

    if (EVP_PKEY_get_base_id(k) == EVP_PKEY_EC) {
        *ec = 1;
        return EVP_PKEY_get_group_name(k, group, sizeof(group), &n) == 1 &&
               strcmp(group, "prime256v1") == 0;
    }
    *ec = 0;
    return EVP_PKEY_get_base_id(k) == EVP_PKEY_RSA && EVP_PKEY_get_bits(k) == MERCHANT_RSA_BITS;
}

int
gen_apple_merchant_cert(const struct gen_apple_ca *ca, const uint8_t *merchant_spki,
                        size_t spki_len, const uint8_t merchant_id[32], uint8_t **der,
                        size_t *der_len)
{
    const unsigned char *q = merchant_spki;
    EVP_PKEY *merchant = NULL;
    X509 *x = NULL;
    unsigned char *out = NULL;
    int ec = 0, n = 0, ok, r = -1;

    if (ca == NULL || merchant_spki == NULL || merchant_id == NULL || der == NULL ||
        der_len == NULL || spki_len == 0 || spki_len > LONG_MAX)
        return -1;
    merchant = d2i_PUBKEY(NULL, &q, (long)spki_len);
    if (merchant == NULL || q != merchant_spki + spki_len || !merchant_key_ok(merchant, &ec) ||
        (x = X509_new()) == NULL)
        goto out;
    /* The subject Apple gives them (less the team's names), the issuer's
     * keyid, and the key usage of the key's one job: ECDH for EC_v1, RSA-OAEP
     * key transport for RSA_v1. */
    ok = X509_set_version(x, 2) && random_serial(x) &&
         X509_gmtime_adj(X509_getm_notBefore(x), -YEAR_S) &&
         X509_gmtime_adj(X509_getm_notAfter(x), YEAR_S) && X509_set_pubkey(x, merchant) &&
         X509_NAME_add_entry_by_txt(X509_get_subject_name(x), "CN", MBSTRING_ASC,
                                    (const unsigned char *)"Apple Pay Payment Processing (test)",
                                    -1, -1, 0) &&
         X509_NAME_add_entry_by_txt(X509_get_subject_name(x), "OU", MBSTRING_ASC,
                                    (const unsigned char *)"tokenvault test merchant", -1, -1, 0) &&
         X509_set_issuer_name(x, X509_get_subject_name(ca->inter));
    ok = ok && add_ext(x, ca->inter, NID_subject_key_identifier, "hash") &&
         add_ext(x, ca->inter, NID_authority_key_identifier, "keyid:always") &&
         add_ext(x, NULL, NID_basic_constraints, "critical,CA:FALSE") &&
         add_ext(x, NULL, NID_key_usage,
                 ec ? "critical,keyAgreement" : "critical,keyEncipherment") &&
         add_merchant_id(x, merchant_id) && X509_sign(x, ca->inter_key, EVP_sha256()) > 0;
    if (!ok || (n = i2d_X509(x, &out)) <= 0 || (*der = malloc((size_t)n)) == NULL)
        goto out;
    memcpy(*der, out, (size_t)n);
    *der_len = (size_t)n;
    r = 0;
out:
    OPENSSL_free(out);
    X509_free(x);
    EVP_PKEY_free(merchant);
    return r;
}

static int
gcm_seal(const uint8_t *key, size_t key_len, const char *pt, uint8_t *out, size_t *out_len)
{
    static const uint8_t iv[GCM_IV_LEN];
    EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
    int n = 0, f = 0, ok;
    size_t len = strlen(pt);

    ok = c != NULL &&
         EVP_EncryptInit_ex(c, key_len == 16 ? EVP_aes_128_gcm() : EVP_aes_256_gcm(), NULL, NULL,
                            NULL) == 1 &&
         EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_SET_IVLEN, GCM_IV_LEN, NULL) == 1 &&
         EVP_EncryptInit_ex(c, NULL, NULL, key, iv) == 1 &&
         EVP_EncryptUpdate(c, out, &n, (const uint8_t *)pt, (int)len) == 1 &&
         EVP_EncryptFinal_ex(c, out + n, &f) == 1 &&
         EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_GET_TAG, GCM_TAG_LEN, out + n + f) == 1;
    EVP_CIPHER_CTX_free(c);
    *out_len = (size_t)n + (size_t)f + GCM_TAG_LEN;
    return ok;
}

/* EC_v1 content: the ephemeral key's SPKI into |eph|, the sealed data into |out|. */
static int
seal_ec(EVP_PKEY *merchant, const uint8_t mid[32], const char *pt, uint8_t *eph, size_t *eph_len,
        uint8_t *out, size_t *out_len)
{
    EVP_PKEY *e = EVP_EC_gen("P-256");
    EVP_PKEY_CTX *d = e != NULL ? EVP_PKEY_CTX_new(e, NULL) : NULL;
    /* The KDF input: counter 1, Z, the length-prefixed algorithm id, the
     * party "Apple", the merchant id hash. Bytes, not strings. */
    static const uint8_t counter[4] = {0, 0, 0, 1};
    static const char alg_party[] = "\x0did-aes256-GCM" "Apple";
    uint8_t z[32], kdf[4 + 32 + 1 + 13 + 5 + 32], key[32], *p = eph;
    size_t z_len = sizeof(z);
    int ok, n;

    ok = d != NULL && EVP_PKEY_derive_init(d) == 1 && EVP_PKEY_derive_set_peer(d, merchant) == 1 &&
         EVP_PKEY_derive(d, z, &z_len) == 1 && z_len == 32;
    memcpy(kdf, counter, sizeof(counter));
    memcpy(kdf + 4, z, 32);
    memcpy(kdf + 36, alg_party, sizeof(alg_party) - 1);
    memcpy(kdf + 55, mid, 32);
    SHA256(kdf, sizeof(kdf), key);
    ok = ok && (n = i2d_PUBKEY(e, &p)) > 0 && gcm_seal(key, 32, pt, out, out_len);
    *eph_len = ok ? (size_t)n : 0;
    EVP_PKEY_CTX_free(d);
    EVP_PKEY_free(e);
    return ok;
}

static int
seal_rsa(EVP_PKEY *merchant, const char *pt, uint8_t *wrapped, size_t *wrapped_len, uint8_t *out,
         size_t *out_len)
{
    EVP_PKEY_CTX *c = EVP_PKEY_CTX_new(merchant, NULL);
    uint8_t key[16];
    size_t cap = *wrapped_len;
    int ok = c != NULL && RAND_bytes(key, sizeof(key)) == 1 && EVP_PKEY_encrypt_init(c) == 1 &&
             EVP_PKEY_CTX_set_rsa_padding(c, RSA_PKCS1_OAEP_PADDING) == 1 &&
             EVP_PKEY_CTX_set_rsa_oaep_md(c, EVP_sha256()) == 1 &&
             EVP_PKEY_CTX_set_rsa_mgf1_md(c, EVP_sha256()) == 1 &&
             EVP_PKEY_encrypt(c, wrapped, &cap, key, sizeof(key)) == 1 &&
             gcm_seal(key, 16, pt, out, out_len);

    *wrapped_len = cap;
    EVP_PKEY_CTX_free(c);
    return ok;
}

/* A detached CMS over |content| signed by the leaf at |when|, DER. */
static int
cms_sign(const struct gen_apple_ca *ca, const uint8_t *content, size_t len, time_t when,
         unsigned char **out, int *out_len)
{
    unsigned flags = CMS_DETACHED | CMS_BINARY | CMS_PARTIAL;
    CMS_ContentInfo *cms = CMS_sign(NULL, NULL, NULL, NULL, flags);
    CMS_SignerInfo *si = NULL;
    ASN1_TIME *t = ASN1_UTCTIME_set(NULL, when);
    BIO *in = BIO_new_mem_buf(content, (int)len);
    int ok;

    ok = cms != NULL && t != NULL && in != NULL &&
         (si = CMS_add1_signer(cms, ca->leaf, ca->leaf_key, EVP_sha256(), flags)) != NULL &&
         CMS_signed_add1_attr_by_NID(si, NID_pkcs9_signingTime, V_ASN1_UTCTIME, t, -1) == 1 &&
         CMS_add1_cert(cms, ca->inter) == 1 && CMS_final(cms, in, NULL, flags) == 1 &&
         (*out_len = i2d_CMS_ContentInfo(cms, out)) > 0;
    BIO_free(in);
    ASN1_TIME_free(t);
    CMS_ContentInfo_free(cms);
    return ok;
}

static char *
b64(const uint8_t *in, size_t len)
{
    char *out = malloc(4 * ((len + 2) / 3) + 1);

    if (out != NULL)
        EVP_EncodeBlock((unsigned char *)out, in, (int)len);
    return out;
}

static void
hex(char *out, const uint8_t *in, size_t len)
{
    for (size_t i = 0; i < len; i++)
        snprintf(out + 2 * i, 3, "%02x", in[i]);
}

char *
gen_apple_token(const struct gen_apple_ca *ca, const char *version, const uint8_t *merchant_spki,
                size_t spki_len, const uint8_t merchant_id[32], const char *plaintext,
                time_t signing_time, const uint8_t *app_data)
{
    const unsigned char *q = merchant_spki;
    EVP_PKEY *merchant = d2i_PUBKEY(NULL, &q, (long)spki_len);
    bool ec = strcmp(version, "EC_v1") == 0;
    size_t pt_len = strlen(plaintext), data_len = 0, key_len = 1024, signed_len = 0;
    uint8_t keyf[1024], txid[TXID_LEN], pkh[32];
    uint8_t *data = malloc(pt_len + GCM_TAG_LEN), *signed_bytes = malloc(pt_len + 2048);
    unsigned char *sig = NULL;
    char *out = NULL, *b_data = NULL, *b_sig = NULL, *b_key = NULL, *b_pkh = NULL;
    char txid_hex[2 * TXID_LEN + 1], app_hex[65] = "";
    int sig_len = 0, ok;

    ok = merchant != NULL && data != NULL && signed_bytes != NULL && RAND_bytes(txid, TXID_LEN) == 1 &&
         (ec ? seal_ec(merchant, merchant_id, plaintext, keyf, &key_len, data, &data_len)
             : seal_rsa(merchant, plaintext, keyf, &key_len, data, &data_len));
    if (ok) {
        memcpy(signed_bytes, keyf, key_len);
        memcpy(signed_bytes + key_len, data, data_len);
        memcpy(signed_bytes + key_len + data_len, txid, TXID_LEN);
        signed_len = key_len + data_len + TXID_LEN;
        if (app_data != NULL) {
            memcpy(signed_bytes + signed_len, app_data, 32);
            signed_len += 32;
            hex(app_hex, app_data, 32);
        }
        SHA256(merchant_spki, spki_len, pkh);
        hex(txid_hex, txid, TXID_LEN);
        ok = cms_sign(ca, signed_bytes, signed_len, signing_time, &sig, &sig_len);
    }
    if (ok && (b_data = b64(data, data_len)) != NULL && (b_sig = b64(sig, (size_t)sig_len)) != NULL &&
        (b_key = b64(keyf, key_len)) != NULL && (b_pkh = b64(pkh, 32)) != NULL) {
        size_t cap = strlen(b_data) + strlen(b_sig) + strlen(b_key) + 512;

        if ((out = malloc(cap)) != NULL)
            snprintf(out, cap,
                     "{\"version\":\"%s\",\"data\":\"%s\",\"signature\":\"%s\",\"header\":{"
                     "\"%s\":\"%s\",\"publicKeyHash\":\"%s\",\"transactionId\":\"%s\"%s%s%s}}",
                     version, b_data, b_sig, ec ? "ephemeralPublicKey" : "wrappedKey", b_key,
                     b_pkh, txid_hex, app_data != NULL ? ",\"applicationData\":\"" : "", app_hex,
                     app_data != NULL ? "\"" : "");
    }
    free(b_data);
    free(b_sig);
    free(b_key);
    free(b_pkh);
    OPENSSL_free(sig);
    free(data);
    free(signed_bytes);
    EVP_PKEY_free(merchant);
    return out;
}
