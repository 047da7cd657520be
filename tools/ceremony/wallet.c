/*
 * wallet.c - the wallet-key ceremonies: Apple Pay, Google Pay and Samsung Pay
 * merchant keys made in the HSM (with CSRs the keys sign themselves), Apple's
 * certificate for the Apple key, the trust anchors wallet signatures are
 * checked against, the listing officers record, and the import of a key a
 * merchant brings from another processor (the one wallet key not made in
 * the HSM). Every private-key operation runs in the HSM through hsm/; this
 * file reads the officers' files, checks them, and prints what goes into the
 * ceremony transcript.
 */
#include "tools/ceremony/ceremony.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/sha.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "vault/config.h"
#include "vault/wallet/anchors.h"

/* Largest certificate file read (PEM of a WALLET_CERT_MAX certificate). */
#define CERT_FILE_MAX (2 * WALLET_CERT_MAX)
/* Apple Root CA - G3, SHA-256 of the certificate, as Apple publishes it
 * (https://www.apple.com/certificateauthority/, WALLETS.md 1.2). */
static const uint8_t apple_root_g3_sha256[SHA256_DIGEST_LENGTH] = {
    0x63, 0x34, 0x3a, 0xbf, 0xb8, 0x9a, 0x6a, 0x03, 0xeb, 0xb5, 0x7e, 0x9b, 0x3f, 0x5f, 0xa7, 0xbe,
    0x7c, 0x4f, 0x5c, 0x75, 0x6f, 0x30, 0x17, 0xb3, 0xa8, 0xc4, 0x88, 0xc3, 0x65, 0x3e, 0x91, 0x79,
};
/* The longest suffix a Google root key's label gets: "-ECv2SigningOnly-16". */
#define GOOGLE_LABEL_SUFFIX_MAX 19

/* ---- small helpers ---------------------------------------------------------------- */

static void
print_b64(const uint8_t *b, size_t n)
{
    unsigned char out[2 * HSM_SPKI_MAX + 4];

    if (n > HSM_SPKI_MAX)
        return;
    EVP_EncodeBlock(out, b, (int)n);
    fputs((const char *)out, stdout);
}

/* SHA-256 of a DER SubjectPublicKeyInfo, in hex for officers (its first 3
 * bytes are the KCV `keys` prints) and, for an Apple key, in base64: the
 * publicKeyHash Apple puts in every payment token for this key. */
static void
print_spki_hash(const uint8_t *spki, size_t len, int apple)
{
    uint8_t h[SHA256_DIGEST_LENGTH];

    SHA256(spki, len, h);
    printf("    public key SHA-256 (SPKI):     ");
    ceremony_print_hex(h, sizeof(h));
    printf("\n");
    if (apple) {
        printf("    Apple publicKeyHash (base64):  ");
        print_b64(h, sizeof(h));
        printf("\n");
    }
}

static void
print_asn1_time(const char *what, const ASN1_TIME *t)
{
    struct tm tm;

    memset(&tm, 0, sizeof(tm));
    if (t != NULL && ASN1_TIME_to_tm(t, &tm) == 1)
        printf("    %-14s %04d-%02d-%02dT%02d:%02d:%02dZ\n", what, tm.tm_year + 1900, tm.tm_mon + 1,
               tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
}

static void
print_name(const char *what, const X509_NAME *name)
{
    char buf[256];

    /* X509_NAME_oneline escapes non-printable bytes: safe for a terminal. */
    if (X509_NAME_oneline(name, buf, sizeof(buf)) != NULL)
        printf("    %-14s %s\n", what, buf);
}

/* Opens |path| as a new file before the ceremony makes anything, so that an
 * existing file stops it before a key exists. The CSR is public: 0644. */
static int
open_new(const char *path, int *out_fd)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0644);

    if (fd < 0) {
        ceremony_err("%s: %s%s", path, strerror(errno),
                     errno == EEXIST ? " (a ceremony never overwrites a file)" : "");
        return EXIT_FAIL;
    }
    *out_fd = fd;
    return EXIT_OK;
}

/* Writes, fsyncs and closes; on failure (or |data| NULL: the ceremony
 * failed before it had anything to write) the file is removed. */
static int
finish_new(int fd, const char *path, const void *data, size_t len)
{
    int ok = data != NULL && write(fd, data, len) == (ssize_t)len && fsync(fd) == 0;

    close(fd);
    if (ok)
        return EXIT_OK;
    (void)unlink(path);
    if (data != NULL)
        ceremony_err("%s: write failed", path);
    return EXIT_FAIL;
}

/* DER into PEM with |name| ("CERTIFICATE REQUEST"): *out is malloc'd. */
static int
pem_encode(const char *name, const uint8_t *der, size_t len, char **out, size_t *out_len)
{
    BIO *b = BIO_new(BIO_s_mem());
    char *mem = NULL;
    long n;
    int rc = EXIT_FAIL;

    if (b == NULL || PEM_write_bio(b, name, "", der, (long)len) <= 0 ||
        (n = BIO_get_mem_data(b, &mem)) <= 0 || (*out = malloc((size_t)n)) == NULL)
        goto out;
    memcpy(*out, mem, (size_t)n);
    *out_len = (size_t)n;
    rc = EXIT_OK;
out:
    BIO_free(b);
    return rc;
}

/* The bytes after one PEM block must be blank: a second block or stray text
 * means the officer picked the wrong file. */
static int
only_blank(BIO *b)
{
    char c;

    while (BIO_read(b, &c, 1) == 1) {
        if (c != ' ' && c != '\t' && c != '\r' && c != '\n')
            return 0;
    }
    return 1;
}

/* One certificate from a file, PEM ("CERTIFICATE") or DER (Apple's portal
 * hands out DER .cer files). *out is malloc'd DER. The certificate itself is
 * parsed later, by OpenSSL, from these bytes. */
static int
read_cert_file(const char *path, uint8_t **out, size_t *out_len)
{
    char *buf = malloc(CERT_FILE_MAX);
    char *name = NULL, *header = NULL;
    unsigned char *data = NULL;
    long data_len = 0;
    size_t n = 0;
    BIO *b = NULL;
    int rc = EXIT_FAIL;

    if (buf == NULL || ceremony_read_small(path, buf, CERT_FILE_MAX, &n) != EXIT_OK)
        goto out;
    if (n >= 10 && memcmp(buf, "-----BEGIN", 10) == 0) {
        if ((b = BIO_new_mem_buf(buf, (int)n)) == NULL ||
            PEM_read_bio(b, &name, &header, &data, &data_len) != 1 ||
            strcmp(name, "CERTIFICATE") != 0 || header[0] != '\0' || data_len <= 0 ||
            (size_t)data_len > WALLET_CERT_MAX || !only_blank(b)) {
            ceremony_err("%s: not exactly one PEM CERTIFICATE", path);
            goto out;
        }
        *out = data;
        *out_len = (size_t)data_len;
        data = NULL;
    } else {
        if (n == 0 || n > WALLET_CERT_MAX || (*out = malloc(n)) == NULL) {
            ceremony_err("%s: neither a PEM nor a DER certificate", path);
            goto out;
        }
        memcpy(*out, buf, n);
        *out_len = n;
    }
    rc = EXIT_OK;
out:
    ERR_clear_error();
    BIO_free(b);
    OPENSSL_free(name);
    OPENSSL_free(header);
    OPENSSL_free(data);
    free(buf);
    return rc;
}

/* One DER certificate, every byte of it. */
static X509 *
cert_parse(const uint8_t *der, size_t len)
{
    const unsigned char *p = der;
    X509 *x = d2i_X509(NULL, &p, (long)len);

    if (x != NULL && p != der + len) {
        X509_free(x);
        x = NULL;
    }
    ERR_clear_error();
    return x;
}

/* The DER SPKI of a certificate's key: *out is OpenSSL-allocated. */
static int
cert_spki(X509 *x, unsigned char **out, size_t *out_len)
{
    int n = i2d_X509_PUBKEY(X509_get_X509_PUBKEY(x), out);

    if (n <= 0)
        return EXIT_FAIL;
    *out_len = (size_t)n;
    return EXIT_OK;
}

/* The first 3 bytes of SHA-256(SPKI): the KCV the `keys` listing gives pairs. */
static void
spki_kcv(const uint8_t *spki, size_t len, uint8_t kcv[HSM_KCV_LEN])
{
    uint8_t h[SHA256_DIGEST_LENGTH];

    SHA256(spki, len, h);
    memcpy(kcv, h, HSM_KCV_LEN);
}

static void
print_row(const char *label, const char *kind, const uint8_t kcv[HSM_KCV_LEN])
{
    printf("%-28s %-30s KCV ", label, kind);
    ceremony_print_hex(kcv, HSM_KCV_LEN);
    printf("\n");
}

static void
print_epoch_ms(uint64_t ms)
{
    time_t t = (time_t)(ms / 1000);
    struct tm tm;

    if (gmtime_r(&t, &tm) != NULL)
        printf("%04d-%02d-%02dT%02d:%02d:%02d.%03uZ", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
               tm.tm_hour, tm.tm_min, tm.tm_sec, (unsigned)(ms % 1000));
}

/* A Google root key's expiry as keys.json gives it and as a date. */
static void
print_expiry(uint64_t expiration_ms)
{
    if (expiration_ms == 0) {
        printf("    expires        never (no keyExpiration; ECv1 keys have none)\n");
        return;
    }
    printf("    expires        ");
    print_epoch_ms(expiration_ms);
    printf(" (keyExpiration %llu)\n", (unsigned long long)expiration_ms);
}

/* ---- key + CSR ceremonies -------------------------------------------------------------- */

/* A subject the HSM layer will take (printable ASCII, 1..HSM_CSR_CN_MAX),
 * checked before a key is made for it. */
static int
subject_ok(const char *cn)
{
    size_t n = strlen(cn);

    if (n == 0 || n > HSM_CSR_CN_MAX)
        return 0;
    for (size_t i = 0; i < n; i++) {
        if (cn[i] < 0x20 || cn[i] > 0x7e)
            return 0;
    }
    return 1;
}

/* Generates a key of |kind| labelled --label, has it sign its own CSR in the
 * HSM, and writes the CSR (PEM) to --out, which is created before the key so
 * that an existing file stops the ceremony before anything is made. */
static int
key_with_csr(hsm_session *s, const struct ceremony_opts *o, hsm_key_kind kind, const char *what,
             const char *role)
{
    uint8_t der[HSM_CSR_MAX], spki[HSM_SPKI_MAX];
    size_t der_len = 0, spki_len = 0, pem_len = 0;
    const char *cn = o->subject != NULL ? o->subject : o->label;
    hsm_key *key = NULL;
    char *pem = NULL;
    int fd = -1, r, rc;

    if (o->label == NULL || o->out == NULL) {
        ceremony_err("%s needs --label L and --out FILE", what);
        return EXIT_USAGE;
    }
    if (!subject_ok(cn)) {
        ceremony_err("the CSR subject must be 1 to %d printable ASCII characters", HSM_CSR_CN_MAX);
        return EXIT_USAGE;
    }
    if ((rc = open_new(o->out, &fd)) != EXIT_OK)
        return rc;
    if ((r = hsm_key_generate(s, kind, o->label, &key)) != HSM_OK) {
        key = NULL;
        rc = ceremony_report(o->label, r);
        goto out;
    }
    printf("generated in the HSM:\n\n");
    if ((rc = ceremony_print_key(s, key, role)) != EXIT_OK)
        goto out;
    if ((r = hsm_key_public_spki(s, key, spki, sizeof(spki), &spki_len)) != HSM_OK ||
        (r = hsm_csr_make(s, key, cn, der, sizeof(der), &der_len)) != HSM_OK) {
        rc = ceremony_report("certification request", r);
        goto out;
    }
    if ((rc = pem_encode("CERTIFICATE REQUEST", der, der_len, &pem, &pem_len)) != EXIT_OK)
        goto out;
    rc = finish_new(fd, o->out, pem, pem_len);
    fd = -1;
    if (rc != EXIT_OK)
        goto out;
    print_spki_hash(spki, spki_len, kind == HSM_KIND_EC_DERIVE_SIGN);
    printf("    CSR subject:                   CN=%s\n", cn);
    printf("    CSR signature:                 %s, made in the HSM by %s\n",
           kind == HSM_KIND_RSA_UNWRAP_SIGN ? "sha256WithRSAEncryption" : "ecdsa-with-SHA256",
           o->label);
    printf("\nCSR (PKCS#10, PEM) written to %s\n", o->out);
out:
    if (fd >= 0)
        (void)finish_new(fd, o->out, NULL, 0); /* removes the empty file */
    if (rc != EXIT_OK && key != NULL)
        ceremony_err("key %s exists in the HSM but no CSR was written", o->label);
    free(pem);
    return rc;
}

int
cmd_applepay_key(hsm_session *s, const struct ceremony_opts *o)
{
    return key_with_csr(s, o, HSM_KIND_EC_DERIVE_SIGN, "applepay-key",
                        "Apple Pay Payment Processing key (EC_v1: ECDH in the HSM)");
}

int
cmd_samsungpay_key(hsm_session *s, const struct ceremony_opts *o)
{
    return key_with_csr(s, o, HSM_KIND_RSA_UNWRAP_SIGN, "samsungpay-key",
                        "Samsung Pay merchant key (JWE RSA1_5 / RSA-OAEP unwrap in the HSM)");
}

/* The uncompressed point (04 || X || Y) of a P-256 SPKI. */
static int
spki_point(const uint8_t *spki, size_t len, uint8_t point[HSM_EC_P256_POINT_LEN])
{
    const unsigned char *p = spki;
    EVP_PKEY *pkey = d2i_PUBKEY(NULL, &p, (long)len);
    size_t n = 0;
    int rc = EXIT_FAIL;

    if (pkey != NULL &&
        EVP_PKEY_set_utf8_string_param(pkey, OSSL_PKEY_PARAM_EC_POINT_CONVERSION_FORMAT,
                                       "uncompressed") == 1 &&
        EVP_PKEY_get_octet_string_param(pkey, OSSL_PKEY_PARAM_PUB_KEY, point,
                                        HSM_EC_P256_POINT_LEN, &n) &&
        n == HSM_EC_P256_POINT_LEN && point[0] == 0x04)
        rc = EXIT_OK;
    EVP_PKEY_free(pkey);
    ERR_clear_error();
    return rc;
}

/* Google's console and tokenizationSpecification.parameters.publicKey take
 * the key as base64 of the X9.62 uncompressed point, not an SPKI: Tink's
 * PaymentMethodTokenSender.rawUncompressedRecipientPublicKey ("base64 encoded
 * uncompressed point format"), Tink's own test key MERCHANT_PUBLIC_KEY_BASE64
 * (65 bytes, "BOdo..."), and Google Pay's request validation ("first byte of
 * parameter publicKey must be 0x04"). */
int
cmd_googlepay_key(hsm_session *s, const struct ceremony_opts *o)
{
    uint8_t spki[HSM_SPKI_MAX], point[HSM_EC_P256_POINT_LEN];
    size_t spki_len = 0;
    hsm_key *key = NULL;
    int r, rc;

    if (o->label == NULL) {
        ceremony_err("googlepay-key needs --label L");
        return EXIT_USAGE;
    }
    if ((r = hsm_key_generate(s, HSM_KIND_EC_DERIVE, o->label, &key)) != HSM_OK)
        return ceremony_report(o->label, r);
    printf("generated in the HSM:\n\n");
    if ((rc = ceremony_print_key(s, key, "Google Pay recipient key (ECv2: ECDH in the HSM)")) !=
        EXIT_OK)
        return rc;
    if ((r = hsm_key_public_spki(s, key, spki, sizeof(spki), &spki_len)) != HSM_OK)
        return ceremony_report("public key", r);
    if (spki_point(spki, spki_len, point) != EXIT_OK) {
        ceremony_err("%s: the HSM's public key is no P-256 point", o->label);
        return EXIT_FAIL;
    }
    print_spki_hash(spki, spki_len, 0);
    printf("\nGoogle Pay public key (base64 uncompressed point; for the Google Pay & Wallet\n"
           "Console and tokenizationSpecification.parameters.publicKey, protocolVersion ECv2):\n");
    print_b64(point, sizeof(point));
    printf("\n");
    return EXIT_OK;
}

/* ---- Apple's certificate --------------------------------------------------------------- */

/* The key an Apple certificate goes with: an EC pair that may derive. */
static int
find_apple_key(hsm_session *s, const char *label, hsm_key **out)
{
    hsm_key_info info;
    int r;

    if ((r = hsm_key_find(s, label, out)) != HSM_OK ||
        (r = hsm_key_info_get(s, *out, &info)) != HSM_OK)
        return ceremony_report(label, r);
    if (info.kind != HSM_KIND_EC_DERIVE_SIGN && info.kind != HSM_KIND_EC_DERIVE) {
        ceremony_err("%s is a %s key, not an Apple Pay EC key (make one with applepay-key)", label,
                     hsm_key_kind_name(info.kind));
        return EXIT_FAIL;
    }
    return EXIT_OK;
}

/* Refuses a certificate whose key is not |spki| ("<whose> <name>": "key L",
 * "the key in FILE"), saying which keys differ. */
static int
check_cert_spki(const char *whose, const char *name, const uint8_t *spki, size_t spki_len,
                const uint8_t *cert_spki, size_t cert_spki_len)
{
    uint8_t want[HSM_KCV_LEN], got[HSM_KCV_LEN];

    if (spki_len == cert_spki_len && CRYPTO_memcmp(spki, cert_spki, spki_len) == 0)
        return EXIT_OK;
    spki_kcv(spki, spki_len, want);
    spki_kcv(cert_spki, cert_spki_len, got);
    ceremony_err("the certificate is for another key: its public key has KCV %02X%02X%02X, %s %s "
                 "has KCV %02X%02X%02X; nothing stored",
                 got[0], got[1], got[2], whose, name, want[0], want[1], want[2]);
    return EXIT_FAIL;
}

/* The same for a key already in the HSM. */
static int
check_cert_key(hsm_session *s, hsm_key *key, const uint8_t *cert_spki, size_t cert_spki_len)
{
    uint8_t spki[HSM_SPKI_MAX];
    size_t spki_len = 0;
    int r;

    if ((r = hsm_key_public_spki(s, key, spki, sizeof(spki), &spki_len)) != HSM_OK)
        return ceremony_report("public key", r);
    return check_cert_spki("key", hsm_key_label(key), spki, spki_len, cert_spki, cert_spki_len);
}

static void
print_validity(X509 *x)
{
    print_asn1_time("valid from", X509_get0_notBefore(x));
    print_asn1_time("valid until", X509_get0_notAfter(x));
    if (X509_cmp_current_time(X509_get0_notAfter(x)) < 0)
        printf("    WARNING: this certificate has expired\n");
    else if (X509_cmp_current_time(X509_get0_notBefore(x)) > 0)
        printf("    WARNING: this certificate is not valid yet\n");
}

static void
print_fingerprint(const uint8_t *der, size_t len)
{
    uint8_t h[SHA256_DIGEST_LENGTH];

    SHA256(der, len, h);
    printf("    %-14s ", "SHA-256");
    for (size_t i = 0; i < sizeof(h); i++)
        printf("%02X%s", h[i], i + 1 < sizeof(h) ? ":" : "\n");
}

int
cmd_applepay_cert(hsm_session *s, const struct ceremony_opts *o)
{
    uint8_t *der = NULL, mid[WALLET_MERCHANT_ID_LEN];
    unsigned char *spki = NULL;
    size_t der_len = 0, spki_len = 0;
    hsm_key *key = NULL;
    X509 *x = NULL;
    int r, rc;

    if (o->label == NULL || o->in == NULL) {
        ceremony_err("applepay-cert needs --label L and --in FILE");
        return EXIT_USAGE;
    }
    if ((rc = find_apple_key(s, o->label, &key)) != EXIT_OK ||
        (rc = read_cert_file(o->in, &der, &der_len)) != EXIT_OK)
        goto out;
    rc = EXIT_FAIL;
    if ((x = cert_parse(der, der_len)) == NULL || cert_spki(x, &spki, &spki_len) != EXIT_OK) {
        ceremony_err("%s: not an X.509 certificate", o->in);
        goto out;
    }
    r = wallet_cert_merchant_id(mid, der, der_len);
    if (r == WALLET_ERR_ABSENT) {
        ceremony_err("%s has no merchant id (extension 1.2.840.113635.100.6.32): not an Apple Pay "
                     "Payment Processing certificate (the Merchant Identity certificate is for "
                     "TLS, not for decryption)", o->in);
        goto out;
    }
    if (r != WALLET_OK) {
        ceremony_err("%s: malformed merchant id extension", o->in);
        goto out;
    }
    if ((rc = check_cert_key(s, key, spki, spki_len)) != EXIT_OK)
        goto out;
    if ((r = hsm_key_cert_store(s, key, der, der_len)) != HSM_OK) {
        rc = ceremony_report("certificate", r);
        goto out;
    }
    printf("stored in the HSM: certificate for key %s\n\n", o->label);
    print_name("subject", X509_get_subject_name(x));
    print_name("issuer", X509_get_issuer_name(x));
    print_validity(x);
    print_fingerprint(der, der_len);
    printf("    merchant id    ");
    ceremony_print_hex(mid, sizeof(mid));
    printf("  (SHA-256 of the merchant identifier)\n");
    print_spki_hash(spki, spki_len, 1);
    rc = EXIT_OK;
out:
    OPENSSL_free(spki);
    X509_free(x);
    free(der);
    return rc;
}

/* ---- trust anchors ----------------------------------------------------------------------- */

/* Apple Root CA - G3 or a root like it: self-signed (issuer = subject, and
 * its signature verifies with its own key) and a CA by basicConstraints. */
static int
check_root(const char *path, X509 *x)
{
    EVP_PKEY *pub = X509_get0_pubkey(x);
    int ok = pub != NULL && X509_check_issued(x, x) == X509_V_OK && X509_verify(x, pub) == 1;

    ERR_clear_error();
    if (!ok) {
        ceremony_err("%s: not a self-signed certificate", path);
        return EXIT_FAIL;
    }
    /* 1: basicConstraints cA TRUE (and keyCertSign if keyUsage is present);
     * the other non-zero answers are legacy guesses a root must not need. */
    if (X509_check_ca(x) != 1) {
        ceremony_err("%s: not a CA certificate (basicConstraints cA is not TRUE)", path);
        return EXIT_FAIL;
    }
    return EXIT_OK;
}

static int
anchor_apple_root(hsm_session *s, const struct ceremony_opts *o)
{
    uint8_t *der = NULL, h[SHA256_DIGEST_LENGTH];
    size_t der_len = 0;
    X509 *x = NULL;
    int r, rc;

    if ((rc = read_cert_file(o->in, &der, &der_len)) != EXIT_OK)
        return rc;
    rc = EXIT_FAIL;
    if ((x = cert_parse(der, der_len)) == NULL) {
        ceremony_err("%s: not an X.509 certificate", o->in);
        goto out;
    }
    if ((rc = check_root(o->in, x)) != EXIT_OK)
        goto out;
    r = hsm_anchor_cert_store(s, o->label, HSM_ANCHOR_SET_APPLE_ROOT, der, der_len);
    if (r != HSM_OK) {
        rc = ceremony_report(o->label, r);
        goto out;
    }
    printf("stored in the HSM: trust anchor %s (set %s)\n\n", o->label, HSM_ANCHOR_SET_APPLE_ROOT);
    print_name("subject", X509_get_subject_name(x));
    print_validity(x);
    print_fingerprint(der, der_len);
    SHA256(der, der_len, h);
    if (CRYPTO_memcmp(h, apple_root_g3_sha256, sizeof(h)) == 0)
        printf("    this is Apple Root CA - G3: the fingerprint matches the one Apple publishes\n");
    else
        printf("    WARNING: this is NOT Apple Root CA - G3 (the fingerprint differs from the one\n"
               "    Apple publishes); only a test appliance may trust it\n");
    rc = EXIT_OK;
out:
    X509_free(x);
    free(der);
    return rc;
}

/* "<label>-<protocolVersion>-<n>": the n-th key of that protocol. */
static int
google_label(char *out, size_t cap, const char *base, const char *protocol, unsigned n)
{
    int len = snprintf(out, cap, "%s-%s-%u", base, protocol, n);

    return len > 0 && (size_t)len < cap && len <= HSM_LABEL_MAX ? EXIT_OK : EXIT_FAIL;
}

/* Labels for every key that will be stored ("" for an expired key, which is
 * skipped), all checked free before the first is stored. */
static int
google_plan(hsm_session *s, const struct ceremony_opts *o, const struct wallet_root_keys *keys,
            uint64_t now_ms, char labels[][HSM_LABEL_MAX + 1], size_t *num_store)
{
    int r;

    *num_store = 0;
    for (size_t i = 0; i < keys->num; i++) {
        const struct wallet_root_key *k = &keys->keys[i];
        unsigned n = 1;

        labels[i][0] = '\0';
        if (k->has_expiration && k->expiration_ms <= now_ms)
            continue;
        for (size_t j = 0; j < i; j++)
            n += strcmp(keys->keys[j].protocol, k->protocol) == 0;
        if (google_label(labels[i], HSM_LABEL_MAX + 1, o->label, k->protocol, n) != EXIT_OK) {
            ceremony_err("--label %s is too long for the keys' labels (at most %d characters)",
                         o->label, HSM_LABEL_MAX - GOOGLE_LABEL_SUFFIX_MAX);
            return EXIT_USAGE;
        }
        if ((r = hsm_label_check_free(s, labels[i])) != HSM_OK)
            return ceremony_report(labels[i], r);
        (*num_store)++;
    }
    return EXIT_OK;
}

static int
google_store_one(hsm_session *s, const struct wallet_root_key *k, const char *label)
{
    char set[HSM_ANCHOR_SET_MAX + 1], kind[HSM_ANCHOR_SET_MAX + 8];
    uint8_t kcv[HSM_KCV_LEN];
    int r;

    snprintf(set, sizeof(set), "%s%s", HSM_ANCHOR_SET_GOOGLE_PREFIX, k->protocol);
    snprintf(kind, sizeof(kind), "anchor %s", set);
    if ((r = hsm_anchor_key_store(s, label, set, k->spki, k->spki_len,
                                  k->has_expiration ? k->expiration_ms : 0)) != HSM_OK)
        return ceremony_report(label, r);
    spki_kcv(k->spki, k->spki_len, kcv);
    print_row(label, kind, kcv);
    print_expiry(k->has_expiration ? k->expiration_ms : 0);
    return EXIT_OK;
}

static int
anchor_google_keys(hsm_session *s, const struct ceremony_opts *o)
{
    struct wallet_root_keys *keys = malloc(sizeof(*keys));
    char labels[WALLET_ROOT_KEYS_MAX][HSM_LABEL_MAX + 1], err[WALLET_WHY_MAX] = "";
    char *json = malloc(WALLET_KEYS_JSON_MAX);
    uint64_t now_ms = (uint64_t)time(NULL) * 1000;
    size_t len = 0, num_store = 0;
    int rc = EXIT_FAIL;

    if (keys == NULL || json == NULL ||
        ceremony_read_small(o->in, json, WALLET_KEYS_JSON_MAX, &len) != EXIT_OK)
        goto out;
    if (wallet_google_keys_parse(keys, json, len, err, sizeof(err)) != WALLET_OK) {
        ceremony_err("%s: %s; nothing stored", o->in, err);
        goto out;
    }
    if ((rc = google_plan(s, o, keys, now_ms, labels, &num_store)) != EXIT_OK)
        goto out;
    if (num_store == 0) {
        ceremony_err("%s: every key has expired; nothing stored", o->in);
        rc = EXIT_FAIL;
        goto out;
    }
    printf("stored in the HSM: Google root signing keys from %s\n\n", o->in);
    for (size_t i = 0; i < keys->num; i++) {
        if (labels[i][0] == '\0') {
            printf("skipped keys[%zu] (%s): expired at ", i, keys->keys[i].protocol);
            print_epoch_ms(keys->keys[i].expiration_ms);
            printf("\n");
            continue;
        }
        if ((rc = google_store_one(s, &keys->keys[i], labels[i])) != EXIT_OK) {
            ceremony_err("stopped at keys[%zu]: the keys listed above were stored", i);
            goto out;
        }
    }
    rc = EXIT_OK;
out:
    free(json);
    free(keys);
    return rc;
}

int
cmd_trust_anchor(hsm_session *s, const struct ceremony_opts *o)
{
    if (o->label == NULL || o->in == NULL || o->kind == NULL) {
        ceremony_err("trust-anchor needs --label L, --in FILE and --kind apple-root|google-keys");
        return EXIT_USAGE;
    }
    if (strcmp(o->kind, "apple-root") == 0)
        return anchor_apple_root(s, o);
    if (strcmp(o->kind, "google-keys") == 0)
        return anchor_google_keys(s, o);
    ceremony_err("--kind is apple-root or google-keys");
    return EXIT_USAGE;
}

/* ---- listing ------------------------------------------------------------------------------- */

static int
wallet_kind(hsm_key_kind k)
{
    return k == HSM_KIND_EC_DERIVE || k == HSM_KIND_EC_DERIVE_SIGN || k == HSM_KIND_RSA_UNWRAP ||
           k == HSM_KIND_RSA_UNWRAP_SIGN || k == HSM_KIND_RSA_DECRYPT;
}

/* Merchant id and expiry of a stored certificate, where it has them. */
static void
print_cert_facts(const uint8_t *der, size_t len)
{
    uint8_t mid[WALLET_MERCHANT_ID_LEN];
    X509 *x = cert_parse(der, len);

    if (x == NULL)
        return;
    if (wallet_cert_merchant_id(mid, der, len) == WALLET_OK) {
        printf("    merchant id    ");
        ceremony_print_hex(mid, sizeof(mid));
        printf("\n");
    }
    print_asn1_time("expires", X509_get0_notAfter(x));
    X509_free(x);
}

struct list_ctx {
    hsm_session *s;
    int rc;
};

static int
list_key(void *ctx, hsm_key *key)
{
    struct list_ctx *c = ctx;
    hsm_key_info info;
    int r;

    if ((r = hsm_key_info_get(c->s, key, &info)) != HSM_OK) {
        c->rc = ceremony_report(hsm_key_label(key), r);
        return 0;
    }
    if (wallet_kind(info.kind))
        print_row(info.label, hsm_key_kind_name(info.kind), info.kcv);
    return 0;
}

static int
list_obj(void *ctx, const hsm_wallet_obj *obj)
{
    struct list_ctx *c = ctx;
    unsigned char *spki = NULL;
    size_t spki_len = 0;
    uint8_t kcv[HSM_KCV_LEN];
    char kind[HSM_ANCHOR_SET_MAX + 16];
    X509 *x = NULL;

    if (obj->type == HSM_WOBJ_ANCHOR_KEY) {
        snprintf(kind, sizeof(kind), "anchor %s", obj->set);
        spki_kcv(obj->der, obj->der_len, kcv);
        print_row(obj->label, kind, kcv);
        print_expiry(obj->expiration_ms);
        return 0;
    }
    if ((x = cert_parse(obj->der, obj->der_len)) == NULL ||
        cert_spki(x, &spki, &spki_len) != EXIT_OK) {
        ceremony_err("%s: unreadable certificate", obj->label);
        c->rc = EXIT_FAIL;
        X509_free(x);
        return 0;
    }
    if (obj->type == HSM_WOBJ_ANCHOR_CERT)
        snprintf(kind, sizeof(kind), "anchor %s", obj->set[0] != '\0' ? obj->set : "certificate");
    else
        snprintf(kind, sizeof(kind), "certificate");
    spki_kcv(spki, spki_len, kcv);
    print_row(obj->label, kind, kcv);
    print_cert_facts(obj->der, obj->der_len);
    OPENSSL_free(spki);
    X509_free(x);
    return 0;
}

/* One key a merchant's config section names: present in the token, its
 * kind and KCV, and its certificate's expiry where it has one; MISSING
 * (and *rc EXIT_NOT_FOUND) when the token lacks it, for the service would
 * refuse that merchant's packets. */
static void
configured_key(hsm_session *s, const char *wallet, const char *label, const char *kid, int *rc)
{
    uint8_t der[HSM_CERT_MAX];
    size_t der_len = 0;
    hsm_key_info info;
    hsm_key *key = NULL;
    int r;

    printf("  %-12s %-28s", wallet, label);
    if ((r = hsm_key_find(s, label, &key)) == HSM_ERR_KEY_NOT_FOUND) {
        printf(" MISSING from the token\n");
        *rc = EXIT_NOT_FOUND;
        return;
    }
    if (r != HSM_OK || (r = hsm_key_info_get(s, key, &info)) != HSM_OK) {
        printf("\n");
        *rc = ceremony_report(label, r);
        return;
    }
    printf(" %-15s KCV ", hsm_key_kind_name(info.kind));
    ceremony_print_hex(info.kcv, sizeof(info.kcv));
    if (kid != NULL)
        printf("  kid %s", kid);
    printf("\n");
    if (hsm_key_cert_get(s, key, der, sizeof(der), &der_len) == HSM_OK)
        print_cert_facts(der, der_len);
}

/* The wallet keys tokenvaultd's config names, merchant by merchant. */
static int
list_configured(hsm_session *s, const char *path)
{
    struct vault_config *cfg = NULL;
    char err[VAULT_CONFIG_ERR_MAX];
    int rc = EXIT_OK;

    if (vault_config_load(&cfg, path, err, sizeof(err)) != 0) {
        ceremony_err("%s", err);
        return EXIT_FAIL;
    }
    printf("\nby merchant, as %s names them:\n", path);
    for (size_t i = 0; i < cfg->num_merchants; i++) {
        const struct vault_merchant *m = &cfg->merchants[i];
        const struct vault_merchant_wallets *w = m->wallets;

        if (w == NULL)
            continue;
        printf("\nmerchant %s\n", m->id);
        for (size_t k = 0; k < w->num_apple; k++)
            configured_key(s, "Apple Pay", w->apple[k], NULL, &rc);
        if (w->google_recipient[0] != '\0')
            printf("  %-12s recipient %s (keys newest first)\n", "Google Pay", w->google_recipient);
        for (size_t k = 0; k < w->num_google; k++)
            configured_key(s, "Google Pay", w->google[k], NULL, &rc);
        for (size_t k = 0; k < w->num_samsung; k++)
            configured_key(s, "Samsung Pay", w->samsung[k].label, w->samsung[k].kid, &rc);
    }
    vault_config_free(cfg);
    return rc;
}

int
cmd_wallet_keys(hsm_session *s, const struct ceremony_opts *o, const char *config)
{
    struct list_ctx c = { s, EXIT_OK };
    int r, rc;

    (void)o;
    printf("wallet keys (KCV: first 3 bytes of SHA-256 of the public key's SPKI):\n\n");
    if ((r = hsm_key_list(s, list_key, &c)) != HSM_OK)
        return ceremony_report("key list", r);
    printf("\ncertificates and trust anchors (a certificate's KCV equals its key's):\n\n");
    if ((r = hsm_wallet_obj_list(s, list_obj, &c)) != HSM_OK)
        return ceremony_report("object list", r);
    if (config != NULL && (rc = list_configured(s, config)) != EXIT_OK && c.rc == EXIT_OK)
        c.rc = rc;
    return c.rc;
}

/* ---- importing an existing key --------------------------------------------------- */

/* Largest key file read: the PEM of an HSM_PRIVKEY_DER_MAX key (base64 adds
 * a third, plus line breaks and the BEGIN and END lines). */
#define KEY_FILE_MAX (2 * HSM_PRIVKEY_DER_MAX)
/* PEM blocks one key file may hold: the key, after "EC PARAMETERS" as
 * `openssl ecparam -genkey` writes it. */
#define KEY_FILE_BLOCKS_MAX 2
/* The exponent of every wallet RSA key (F4, as the HSM generates them). */
#define IMPORT_RSA_E 65537UL
#define IMPORT_RSA_BITS 2048
/* Room for an OpenSSL curve name ("prime256v1", "brainpoolP512t1"). */
#define CURVE_NAME_MAX 32

/* What each --kind imports as, and what the key is for. */
static const struct {
    const char *name;
    hsm_key_kind kind;
    const char *role;
} import_kinds[] = {
    { "ec", HSM_KIND_EC_DERIVE,
      "imported wallet key: Apple Pay EC_v1 or Google Pay (ECDH in the HSM)" },
    { "rsa", HSM_KIND_RSA_UNWRAP,
      "imported wallet key: Samsung Pay (JWE RSA1_5 / RSA-OAEP unwrap in the HSM)" },
    { "rsa-decrypt", HSM_KIND_RSA_DECRYPT,
      "imported wallet key: Apple Pay RSA_v1 (raw RSA in the HSM, OAEP decoded on the host)" },
};

/* The key from the file, as the HSM layer takes it: |der| holds it in
 * clear (wiped and freed by import_key_wipe right after the import, and on
 * every other path by import_key_free); the public half and the file's
 * format are for the checks and the transcript. */
struct import_key {
    uint8_t *der;
    size_t der_len;
    unsigned char *spki; /* DER SubjectPublicKeyInfo, OpenSSL-allocated */
    size_t spki_len;
    const char *format;
};

static void
import_key_wipe(struct import_key *k)
{
    if (k->der != NULL)
        OPENSSL_clear_free(k->der, k->der_len);
    k->der = NULL;
    k->der_len = 0;
}

static void
import_key_free(struct import_key *k)
{
    import_key_wipe(k);
    OPENSSL_free(k->spki);
    k->spki = NULL;
}

/* Reads a private key file by the PIN file's rule (hsm/pin.c), checked on
 * the open descriptor so a rename cannot slip another file in: a regular
 * file, not a link, owned by this user, no group or other permission bits;
 * at most KEY_FILE_MAX bytes. |buf| (KEY_FILE_MAX bytes) then holds the key
 * in clear: the caller wipes it on every path. */
static int
read_key_file(const char *path, uint8_t *buf, size_t *out_len)
{
    struct stat st;
    uint8_t extra = 0;
    size_t n = 0;
    ssize_t got;
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY), rc = EXIT_FAIL;

    if (fd < 0) {
        ceremony_err("%s: %s", path, strerror(errno));
        return EXIT_FAIL;
    }
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        ceremony_err("%s: not a regular file", path);
        goto out;
    }
    if ((st.st_mode & (S_IRWXG | S_IRWXO)) != 0) {
        ceremony_err("%s: mode %04o lets others read or change it; a key file must be 0600 or "
                     "0400 (and whoever could read it may have a copy of the key)",
                     path, (unsigned)(st.st_mode & 07777));
        goto out;
    }
    if (st.st_uid != geteuid()) {
        ceremony_err("%s: owned by uid %u, not by you", path, (unsigned)st.st_uid);
        goto out;
    }
    if (st.st_size > KEY_FILE_MAX) {
        ceremony_err("%s: larger than %d bytes: not a key file", path, KEY_FILE_MAX);
        goto out;
    }
    while (n < KEY_FILE_MAX && (got = read(fd, buf + n, KEY_FILE_MAX - n)) != 0) {
        if (got < 0 && errno == EINTR)
            continue;
        if (got < 0) {
            ceremony_err("%s: %s", path, strerror(errno));
            goto out;
        }
        n += (size_t)got;
    }
    /* The file grew since fstat: refuse rather than read part of it. */
    if (n == KEY_FILE_MAX && read(fd, &extra, 1) > 0) {
        OPENSSL_cleanse(&extra, 1);
        ceremony_err("%s: larger than %d bytes: not a key file", path, KEY_FILE_MAX);
        goto out;
    }
    if (n == 0) {
        ceremony_err("%s: empty", path);
        goto out;
    }
    *out_len = n;
    rc = EXIT_OK;
out:
    close(fd);
    return rc;
}

/* One PKCS#8 PrivateKeyInfo, every byte of it, or NULL. */
static EVP_PKEY *
parse_pkcs8(const uint8_t *der, size_t len)
{
    const unsigned char *p = der;
    PKCS8_PRIV_KEY_INFO *p8 = d2i_PKCS8_PRIV_KEY_INFO(NULL, &p, (long)len);
    EVP_PKEY *pkey = NULL;

    /* PKCS8_PRIV_KEY_INFO_free wipes the key octets it held. */
    if (p8 != NULL && p == der + len)
        pkey = EVP_PKCS82PKEY(p8);
    PKCS8_PRIV_KEY_INFO_free(p8);
    return pkey;
}

/* One SEC1 (EVP_PKEY_EC) or PKCS#1 (EVP_PKEY_RSA) key, every byte of it. */
static EVP_PKEY *
parse_traditional(int type, const uint8_t *der, size_t len)
{
    const unsigned char *p = der;
    EVP_PKEY *pkey = d2i_PrivateKey(type, NULL, &p, (long)len);

    if (pkey != NULL && (p != der + len || EVP_PKEY_get_base_id(pkey) != type)) {
        EVP_PKEY_free(pkey);
        pkey = NULL;
    }
    return pkey;
}

/* Parses the key's DER as its PEM label says (|pem_name| NULL: a DER
 * file, PKCS#8 or the kind's own format). An encrypted PKCS#8 file is named
 * as such. */
static EVP_PKEY *
parse_key_der(const char *path, const uint8_t *der, size_t len, const char *pem_name,
              hsm_key_kind kind, const char **format)
{
    int type = kind == HSM_KIND_EC_DERIVE ? EVP_PKEY_EC : EVP_PKEY_RSA;
    const unsigned char *p = der;
    X509_SIG *enc = NULL;
    EVP_PKEY *pkey = NULL;

    if (pem_name == NULL || strcmp(pem_name, "PRIVATE KEY") == 0) {
        pkey = parse_pkcs8(der, len);
        *format = pem_name == NULL ? "DER, PKCS#8" : "PEM, PKCS#8";
    }
    if (pkey == NULL && (pem_name == NULL || strcmp(pem_name, "EC PRIVATE KEY") == 0 ||
                         strcmp(pem_name, "RSA PRIVATE KEY") == 0)) {
        if (pem_name != NULL)
            type = strcmp(pem_name, "EC PRIVATE KEY") == 0 ? EVP_PKEY_EC : EVP_PKEY_RSA;
        pkey = parse_traditional(type, der, len);
        *format = type == EVP_PKEY_EC ? (pem_name == NULL ? "DER, SEC1" : "PEM, SEC1")
                                      : (pem_name == NULL ? "DER, PKCS#1" : "PEM, PKCS#1");
    }
    if (pkey == NULL && pem_name == NULL && (enc = d2i_X509_SIG(NULL, &p, (long)len)) != NULL &&
        p == der + len)
        ceremony_err("%s: an encrypted key (PKCS#8 EncryptedPrivateKeyInfo); wallet-import takes "
                     "an unencrypted one", path);
    else if (pkey == NULL)
        ceremony_err("%s: not %s private key (PEM or DER: PKCS#8, %s), or bytes after it", path,
                     kind == HSM_KIND_EC_DERIVE ? "an EC" : "an RSA",
                     kind == HSM_KIND_EC_DERIVE ? "SEC1" : "PKCS#1");
    X509_SIG_free(enc);
    ERR_clear_error();
    return pkey;
}

/* The PEM labels of an unencrypted private key: PKCS#8, SEC1, PKCS#1. */
static const char *const key_pem_names[] = { "PRIVATE KEY", "EC PRIVATE KEY", "RSA PRIVATE KEY" };

/* The file's PEM block, decoded into |*out| (malloc'd, wiped by the caller):
 * exactly one private key, unencrypted, nothing but blank lines after it;
 * an "EC PARAMETERS" block may come first. *out_name is its label (one of
 * key_pem_names). */
static int
read_key_pem(const char *path, const uint8_t *buf, size_t len, const char **out_name,
             uint8_t **out, size_t *out_len)
{
    BIO *b = BIO_new_mem_buf(buf, (int)len);
    char *name = NULL, *header = NULL;
    unsigned char *data = NULL;
    const char *known = NULL;
    long data_len = 0;
    int rc = EXIT_FAIL;

    for (int i = 0; b != NULL && i < KEY_FILE_BLOCKS_MAX; i++) {
        OPENSSL_secure_free(name);
        OPENSSL_secure_free(header);
        if (data != NULL)
            OPENSSL_secure_clear_free(data, (size_t)data_len);
        name = header = NULL;
        data = NULL;
        if (PEM_read_bio_ex(b, &name, &header, &data, &data_len, PEM_FLAG_SECURE) != 1)
            break;
        if (i == 0 && strcmp(name, "EC PARAMETERS") == 0)
            continue;
        for (size_t j = 0; j < sizeof(key_pem_names) / sizeof(key_pem_names[0]); j++)
            if (strcmp(name, key_pem_names[j]) == 0)
                known = key_pem_names[j];
        break;
    }
    if (name != NULL && (strcmp(name, "ENCRYPTED PRIVATE KEY") == 0 ||
                         (known != NULL && header != NULL && header[0] != '\0'))) {
        ceremony_err("%s: an encrypted key; wallet-import takes an unencrypted one (PKCS#8, SEC1 "
                     "or PKCS#1)", path);
        goto out;
    }
    if (known == NULL || data_len <= 0 || (size_t)data_len > HSM_PRIVKEY_DER_MAX ||
        !only_blank(b)) {
        ceremony_err("%s: not exactly one PEM private key (PRIVATE KEY, EC PRIVATE KEY or RSA "
                     "PRIVATE KEY)", path);
        goto out;
    }
    if ((*out = malloc((size_t)data_len)) == NULL)
        goto out;
    memcpy(*out, data, (size_t)data_len);
    *out_len = (size_t)data_len;
    *out_name = known;
    rc = EXIT_OK;
out:
    ERR_clear_error();
    BIO_free(b);
    OPENSSL_secure_free(name);
    OPENSSL_secure_free(header);
    if (data != NULL)
        OPENSSL_secure_clear_free(data, (size_t)data_len);
    return rc;
}

/* The key is what --kind takes: EC P-256 on the named curve, or RSA-2048
 * with e = 65537. The HSM layer checks again; this says it in words. */
static int
key_fits_kind(const char *path, EVP_PKEY *pkey, hsm_key_kind kind)
{
    int ec = EVP_PKEY_get_base_id(pkey) == EVP_PKEY_EC;
    int rsa = EVP_PKEY_get_base_id(pkey) == EVP_PKEY_RSA;
    char group[CURVE_NAME_MAX] = "";
    BIGNUM *e = NULL;
    int explicit_params = 0, ok;

    if (kind == HSM_KIND_EC_DERIVE) {
        if (!ec) {
            ceremony_err("%s: %s key; --kind ec takes an EC P-256 key", path,
                         rsa ? "an RSA" : "not an EC");
            return EXIT_FAIL;
        }
        if (!EVP_PKEY_get_utf8_string_param(pkey, OSSL_PKEY_PARAM_GROUP_NAME, group, sizeof(group),
                                            NULL) ||
            (EVP_PKEY_get_int_param(pkey, OSSL_PKEY_PARAM_EC_DECODED_FROM_EXPLICIT_PARAMS,
                                    &explicit_params) && explicit_params)) {
            ERR_clear_error();
            ceremony_err("%s: an EC key without a named curve; only P-256 (prime256v1) is "
                         "imported", path);
            return EXIT_FAIL;
        }
        if (strcmp(group, "prime256v1") != 0) {
            ceremony_err("%s: an EC key on curve %s; only P-256 (prime256v1) is imported", path,
                         group);
            return EXIT_FAIL;
        }
        return EXIT_OK;
    }
    if (!rsa) {
        ceremony_err("%s: %s key; --kind %s takes an RSA-2048 key", path, ec ? "an EC" : "not an RSA",
                     kind == HSM_KIND_RSA_DECRYPT ? "rsa-decrypt" : "rsa");
        return EXIT_FAIL;
    }
    if (EVP_PKEY_get_bits(pkey) != IMPORT_RSA_BITS) {
        ceremony_err("%s: an RSA key of %d bits; only RSA-%d is imported", path,
                     EVP_PKEY_get_bits(pkey), IMPORT_RSA_BITS);
        return EXIT_FAIL;
    }
    ok = EVP_PKEY_get_bn_param(pkey, OSSL_PKEY_PARAM_RSA_E, &e) && BN_get_word(e) == IMPORT_RSA_E;
    BN_free(e);
    if (!ok) {
        ceremony_err("%s: the RSA public exponent is not 65537", path);
        return EXIT_FAIL;
    }
    return EXIT_OK;
}

/* Reads, parses and checks the key file: |k| gets the key's DER and public
 * half. Every host copy of the key but k->der is wiped before return. */
static int
import_key_read(const char *path, hsm_key_kind kind, struct import_key *k)
{
    uint8_t *buf = malloc(KEY_FILE_MAX), *pem_der = NULL;
    const char *pem_name = NULL; /* NULL: a DER file */
    const uint8_t *der = NULL;
    size_t n = 0, der_len = 0, pem_der_len = 0;
    EVP_PKEY *pkey = NULL;
    int spki_len, rc = EXIT_FAIL;

    if (buf == NULL || read_key_file(path, buf, &n) != EXIT_OK)
        goto out;
    if (n >= 10 && memcmp(buf, "-----BEGIN", 10) == 0) {
        if (read_key_pem(path, buf, n, &pem_name, &pem_der, &pem_der_len) != EXIT_OK)
            goto out;
        der = pem_der;
        der_len = pem_der_len;
    } else if (n > HSM_PRIVKEY_DER_MAX) {
        ceremony_err("%s: larger than %d bytes: not a DER private key", path, HSM_PRIVKEY_DER_MAX);
        goto out;
    } else {
        der = buf;
        der_len = n;
    }
    if ((pkey = parse_key_der(path, der, der_len, pem_name, kind, &k->format)) == NULL ||
        key_fits_kind(path, pkey, kind) != EXIT_OK)
        goto out;
    /* The public half as the HSM will give it (an EC point uncompressed). */
    if ((kind == HSM_KIND_EC_DERIVE &&
         EVP_PKEY_set_utf8_string_param(pkey, OSSL_PKEY_PARAM_EC_POINT_CONVERSION_FORMAT,
                                        "uncompressed") != 1) ||
        (spki_len = i2d_PUBKEY(pkey, &k->spki)) <= 0 || (k->der = malloc(der_len)) == NULL) {
        ceremony_err("%s: cannot encode the key's public half", path);
        goto out;
    }
    k->spki_len = (size_t)spki_len;
    memcpy(k->der, der, der_len);
    k->der_len = der_len;
    rc = EXIT_OK;
out:
    if (rc != EXIT_OK)
        import_key_free(k);
    ERR_clear_error();
    EVP_PKEY_free(pkey); /* frees the private key with BN_clear_free */
    if (pem_der != NULL)
        OPENSSL_clear_free(pem_der, pem_der_len);
    if (buf != NULL)
        OPENSSL_clear_free(buf, KEY_FILE_MAX);
    return rc;
}

/* The certificate given with --cert, checked before anything is made. */
struct import_cert {
    uint8_t *der;
    size_t der_len;
    X509 *x;
    uint8_t mid[WALLET_MERCHANT_ID_LEN];
    int has_mid; /* an Apple Pay Payment Processing certificate */
};

static void
import_cert_free(struct import_cert *c)
{
    X509_free(c->x);
    free(c->der);
}

/* One certificate (read_cert_file's rules), with a well-formed merchant id
 * if it has one, for exactly the key in the key file. */
static int
import_cert_read(const char *path, const char *key_path, const struct import_key *k,
                 struct import_cert *c)
{
    unsigned char *spki = NULL;
    size_t spki_len = 0;
    int r, rc;

    if ((rc = read_cert_file(path, &c->der, &c->der_len)) != EXIT_OK)
        return rc;
    rc = EXIT_FAIL;
    if ((c->x = cert_parse(c->der, c->der_len)) == NULL ||
        cert_spki(c->x, &spki, &spki_len) != EXIT_OK) {
        ceremony_err("%s: not an X.509 certificate", path);
        goto out;
    }
    r = wallet_cert_merchant_id(c->mid, c->der, c->der_len);
    if (r != WALLET_OK && r != WALLET_ERR_ABSENT) {
        ceremony_err("%s: malformed merchant id extension", path);
        goto out;
    }
    c->has_mid = r == WALLET_OK;
    rc = check_cert_spki("the key in", key_path, k->spki, k->spki_len, spki, spki_len);
out:
    OPENSSL_free(spki);
    return rc;
}

/* An imported key must pass the review every key passes (`keys`): only its
 * origin (never "always sensitive") differs from a generated key's, and
 * ceremony_key_unsafe names that without counting it. */
static int
imported_key_ok(const hsm_key_info *i, hsm_key_kind kind)
{
    return i->kind == kind && i->local == 0 && ceremony_key_unsafe(i, false) == 0;
}

/* The key the HSM now holds is the key of the file, with the attributes of
 * its kind; then its certificate. Any failure here is undone by the caller. */
static int
import_finish(hsm_session *s, hsm_key *key, hsm_key_kind kind, const struct import_key *k,
              const struct import_cert *c)
{
    uint8_t spki[HSM_SPKI_MAX];
    size_t spki_len = 0;
    hsm_key_info info;
    int r;

    if ((r = hsm_key_public_spki(s, key, spki, sizeof(spki), &spki_len)) != HSM_OK ||
        (r = hsm_key_info_get(s, key, &info)) != HSM_OK)
        return ceremony_report(hsm_key_label(key), r);
    if (spki_len != k->spki_len || CRYPTO_memcmp(spki, k->spki, spki_len) != 0) {
        ceremony_err("%s: the HSM's public key differs from the key file's", hsm_key_label(key));
        return EXIT_FAIL;
    }
    if (!imported_key_ok(&info, kind)) {
        ceremony_err("%s: the imported key has attributes an officer must not accept",
                     hsm_key_label(key));
        return EXIT_UNSAFE;
    }
    if (c->der != NULL && (r = hsm_key_cert_store(s, key, c->der, c->der_len)) != HSM_OK)
        return ceremony_report("certificate", r);
    return EXIT_OK;
}

/* Takes an import back after a later step failed: all or nothing. */
static void
import_undo(hsm_session *s, hsm_key *key)
{
    int r = hsm_key_import_undo(s, key);

    if (r == HSM_OK) {
        ceremony_err("key %s removed from the HSM again: nothing stored", hsm_key_label(key));
        return;
    }
    (void)ceremony_report("removing the key again", r);
    ceremony_err("key %s is in the HSM although the ceremony failed: remove it with the token's "
                 "own tool before anything uses it, and record it", hsm_key_label(key));
}

/* What the officers record: the key as `keys` shows it, its public key, the
 * certificate, and the file they must now destroy. */
static int
import_print(hsm_session *s, hsm_key *key, const struct ceremony_opts *o, const char *role,
             const struct import_key *k, const struct import_cert *c)
{
    int rc;

    printf("imported into the HSM from %s (%s):\n\n", o->in, k->format);
    if ((rc = ceremony_print_key(s, key, role)) != EXIT_OK)
        return rc;
    print_spki_hash(k->spki, k->spki_len, c->has_mid);
    printf("    public key (SPKI, base64): ");
    print_b64(k->spki, k->spki_len);
    printf("\n");
    if (c->der != NULL) {
        printf("\nstored in the HSM: certificate for key %s\n\n", o->label);
        print_name("subject", X509_get_subject_name(c->x));
        print_name("issuer", X509_get_issuer_name(c->x));
        print_validity(c->x);
        print_fingerprint(c->der, c->der_len);
        if (c->has_mid) {
            printf("    merchant id    ");
            ceremony_print_hex(c->mid, sizeof(c->mid));
            printf("  (SHA-256 of the merchant identifier)\n");
        }
    }
    printf("\nThe key file %s still holds this private key in clear: this tool does not\n"
           "delete it. Destroy it now, with every copy (backups, the previous processor's),\n"
           "as your procedure says, and record how with this transcript.\n",
           o->in);
    return EXIT_OK;
}

int
cmd_wallet_import(hsm_session *s, const struct ceremony_opts *o)
{
    struct import_key k = { 0 };
    struct import_cert c = { 0 };
    size_t ki;
    hsm_key *key = NULL;
    int r, rc;

    if (o->label == NULL || o->kind == NULL || o->in == NULL) {
        ceremony_err("wallet-import needs --label L, --kind ec|rsa|rsa-decrypt and --in KEYFILE");
        return EXIT_USAGE;
    }
    for (ki = 0; ki < sizeof(import_kinds) / sizeof(import_kinds[0]); ki++)
        if (strcmp(o->kind, import_kinds[ki].name) == 0)
            break;
    if (ki == sizeof(import_kinds) / sizeof(import_kinds[0])) {
        ceremony_err("--kind is ec, rsa or rsa-decrypt");
        return EXIT_USAGE;
    }
    /* Everything is checked before anything is made: the label, the key
     * file, the certificate against the key. */
    if ((r = hsm_label_check_free(s, o->label)) != HSM_OK)
        return ceremony_report(o->label, r);
    if ((rc = import_key_read(o->in, import_kinds[ki].kind, &k)) != EXIT_OK ||
        (o->cert != NULL && (rc = import_cert_read(o->cert, o->in, &k, &c)) != EXIT_OK))
        goto out;
    if (import_kinds[ki].kind == HSM_KIND_EC_DERIVE)
        r = hsm_ec_private_import(s, o->label, k.der, k.der_len, &key);
    else
        r = hsm_rsa_private_import(s, import_kinds[ki].kind, o->label, k.der, k.der_len, &key);
    import_key_wipe(&k); /* in the HSM now, or refused: the host copy goes */
    if (r != HSM_OK) {
        key = NULL;
        rc = ceremony_report(o->label, r);
        goto out;
    }
    if ((rc = import_finish(s, key, import_kinds[ki].kind, &k, &c)) != EXIT_OK) {
        import_undo(s, key);
        goto out;
    }
    rc = import_print(s, key, o, import_kinds[ki].role, &k, &c);
out:
    import_key_free(&k);
    import_cert_free(&c);
    return rc;
}
