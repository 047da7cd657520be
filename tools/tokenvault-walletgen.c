/*
 * tokenvault-walletgen - makes wallet payment packets the way Apple, Google
 * and Samsung make them. It PLAYS THE WALLETS: it holds a test Apple CA's
 * keys, Google's signing keys (Tink's published test keys) and encrypts to a
 * merchant's public key. It exists for the tests and the demo only and is not
 * installed: an appliance that trusts the real Apple Root CA - G3 and
 * Google's production root keys accepts nothing it makes.
 *
 *   apple-ca       a test Apple CA (root, intermediate, signing leaf) into a directory
 *   apple-cert     an Apple Pay Payment Processing certificate for a merchant key
 *   apple-packet   an Apple Pay paymentData (EC_v1 or RSA_v1) for that certificate
 *   google-keys    Google's root signing keys file (keys.json) for a signing key
 *   google-packet  a Google Pay payment method token (ECv1, ECv2, ECv2SigningOnly)
 *   samsung-packet a Samsung Pay JWE (optionally inside its paymentCredential)
 *
 * Card numbers: --pan takes only the networks' published test card numbers
 * (test_pans below); any other number is read from stdin with --pan-stdin, as
 * a "pan=DIGITS" line (the way the tokenvault command line reads secrets),
 * so a card number never reaches argv, ps or shell history.
 *
 * Every output file is created new with mode 0600; an existing file is
 * refused, never overwritten. Every command is a row of commands[]: the
 * options it needs and accepts; an option a command does not take is a usage
 * error, never ignored. Exit codes: 0 ok, 1 failure, 2 usage.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/sha.h>
#include <openssl/x509.h>

#include "api/proto.h"
#include "tests/support/gen_apple.h"
#include "tests/support/gen_google.h"
#include "tests/support/gen_samsung.h"
#include "vault/wallet/anchors.h"
#include "vault/wallet/codec.h"
#include "vault/wallet/currency.h"

#define PROG "tokenvault-walletgen"
#include "tools/tool_err.h"

/* Exit codes. */
enum { EXIT_OK = 0, EXIT_FAIL = 1, EXIT_USAGE = 2 };

/* Largest file read: a key, a CSR or a certificate (PEM). */
#define FILE_MAX 65536
/* Longest Apple merchant identifier taken ("merchant." and a reverse domain). */
#define MERCHANT_ID_MAX 128
/* Apple merchant identifiers start with this (Apple's developer portal). */
#define MERCHANT_ID_PREFIX "merchant."
/* A payment plaintext: fixed members and validated values, far below this. */
#define PLAIN_MAX 2048
/* A cryptogram made when none is given: 20 bytes, as the networks' are. */
#define CRYPTOGRAM_LEN 20
/* Google messageId: 48 random bytes, 64 base64url characters. */
#define MESSAGE_ID_BYTES 48
/* Google: how long the intermediate key and the message stay valid (Google
 * signs messages valid for about a week). */
#define GOOGLE_VALIDITY_S (7u * 24 * 3600)
/* Default keyExpiration of a root key in google-keys: a year. */
#define GOOGLE_ROOT_VALIDITY_S (365u * 24 * 3600)
/* Longest --expires-in: ten years. */
#define EXPIRES_IN_MAX (10u * 365 * 24 * 3600)
/* The last epoch second a 32-bit-safe UTCTime signing time takes (2049). */
#define SIGNING_TIME_MAX 2524607999LL
/* Longest gatewayMerchantId / recipient id taken. */
#define GOOGLE_ID_MAX 128
/* Samsung's kid (base64 of a SHA-256 is 44 characters). */
#define KID_MAX 128
/* Google recipient keys and Apple EC keys: the DER SPKI of a P-256 key
 * is this prefix and the 65-byte uncompressed point (RFC 5480). */
static const uint8_t p256_spki_prefix[] = {
    0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01,
    0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00,
};
#define P256_POINT_LEN 65
/* The smallest RSA key a Samsung packet is encrypted to. */
#define SAMSUNG_RSA_MIN_BITS 2048
/* Apple's deviceManufacturerIdentifier in the generated plaintexts. */
#define DEVICE_MANUFACTURER_ID "040010030273"

/* The card numbers --pan takes on the command line: published test numbers
 * of the networks and processors (and the wallet specs' samples), which
 * identify no one. Any other card number comes from stdin (--pan-stdin). */
static const char *const test_pans[] = {
    "4111111111111111", /* Visa, the classic test number */
    "4012888888881881", /* Visa */
    "4242424242424242", /* Visa (Stripe's test card) */
    "4761120010000492", /* Visa (Visa's test card; tests/vault/wallet/test_apple.c) */
    "4895370012003478", /* Visa token PAN of Samsung's plaintext sample (WALLETS.md 3) */
    "5555555555554444", /* Mastercard */
    "5105105105105100", /* Mastercard */
    "5200828282828210", /* Mastercard debit (Stripe) */
    "2223003122003222", /* Mastercard 2-series */
    "378282246310005",  /* American Express */
    "371449635398431",  /* American Express */
    "6011111111111117", /* Discover */
    "3530111333300000", /* JCB */
    NULL,
};

/* ---- options ------------------------------------------------------------------------ */

enum opt_id {
    O_DIR, O_LEAF, O_PUBKEY, O_MERCHANT_ID, O_OUT, O_VERSION, O_CERT, O_PAN, O_PAN_STDIN,
    O_EXPIRY, O_EXP_MONTH, O_EXP_YEAR, O_AMOUNT, O_CURRENCY, O_CRYPTOGRAM, O_ECI, O_PAN_ONLY,
    O_SIGNING_TIME, O_SIGNING_KEY, O_INTERMEDIATE_KEY, O_PROTOCOL, O_EXPIRES_IN, O_RECIPIENT_ID,
    O_RECIPIENT_PUBKEY, O_GATEWAY_MERCHANT_ID, O_KID, O_ALG, O_ENC, O_CREDENTIAL, O_NUM
};
#define B(id) (1ull << (id))

static const struct option_def {
    const char *name;
    int has_arg;
} option_defs[O_NUM] = {
    [O_DIR] = { "dir", required_argument },
    [O_LEAF] = { "leaf", required_argument },
    [O_PUBKEY] = { "pubkey", required_argument },
    [O_MERCHANT_ID] = { "merchant-id", required_argument },
    [O_OUT] = { "out", required_argument },
    [O_VERSION] = { "version", required_argument },
    [O_CERT] = { "cert", required_argument },
    [O_PAN] = { "pan", required_argument },
    [O_PAN_STDIN] = { "pan-stdin", no_argument },
    [O_EXPIRY] = { "expiry", required_argument },
    [O_EXP_MONTH] = { "exp-month", required_argument },
    [O_EXP_YEAR] = { "exp-year", required_argument },
    [O_AMOUNT] = { "amount", required_argument },
    [O_CURRENCY] = { "currency", required_argument },
    [O_CRYPTOGRAM] = { "cryptogram", required_argument },
    [O_ECI] = { "eci", required_argument },
    [O_PAN_ONLY] = { "pan-only", no_argument },
    [O_SIGNING_TIME] = { "signing-time", required_argument },
    [O_SIGNING_KEY] = { "signing-key", required_argument },
    [O_INTERMEDIATE_KEY] = { "intermediate-key", required_argument },
    [O_PROTOCOL] = { "protocol", required_argument },
    [O_EXPIRES_IN] = { "expires-in", required_argument },
    [O_RECIPIENT_ID] = { "recipient-id", required_argument },
    [O_RECIPIENT_PUBKEY] = { "recipient-pubkey", required_argument },
    [O_GATEWAY_MERCHANT_ID] = { "gateway-merchant-id", required_argument },
    [O_KID] = { "kid", required_argument },
    [O_ALG] = { "alg", required_argument },
    [O_ENC] = { "enc", required_argument },
    [O_CREDENTIAL] = { "credential", no_argument },
};

struct opts {
    uint64_t given;         /* B(O_*) of every option seen */
    const char *v[O_NUM];   /* its argument ("" for a flag) */
};

static const char *
opt(const struct opts *o, enum opt_id id)
{
    return o->v[id];
}

static bool
has(const struct opts *o, enum opt_id id)
{
    return (o->given & B(id)) != 0;
}

/* ---- messages ----------------------------------------------------------------------- */

static void
print_hex(const uint8_t *b, size_t n)
{
    for (size_t i = 0; i < n; i++)
        printf("%02X", b[i]);
}

static void
print_b64(const uint8_t *b, size_t n)
{
    char out[4 * ((SHA256_DIGEST_LENGTH + 2) / 3) + 1];

    if (n > SHA256_DIGEST_LENGTH)
        return;
    EVP_EncodeBlock((unsigned char *)out, b, (int)n);
    fputs(out, stdout);
}

/* ---- files -------------------------------------------------------------------------- */

/* Opens |path| as a new file (mode 0600) before anything is made, so that an
 * existing file stops the command first. */
static int
out_open(const char *path, int *out_fd)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);

    if (fd < 0) {
        err("%s: %s%s", path, strerror(errno),
            errno == EEXIST ? " (walletgen never overwrites a file)" : "");
        return EXIT_FAIL;
    }
    *out_fd = fd;
    return EXIT_OK;
}

/* Writes, fsyncs and closes; on failure (or |data| NULL: the command failed
 * before it had anything to write) the file is removed. */
static int
out_finish(int fd, const char *path, const void *data, size_t len)
{
    int ok = data != NULL && write(fd, data, len) == (ssize_t)len && fsync(fd) == 0;

    if (close(fd) != 0)
        ok = 0;
    if (ok)
        return EXIT_OK;
    (void)unlink(path);
    if (data != NULL)
        err("%s: write failed", path);
    return EXIT_FAIL;
}

/* A regular file of at most FILE_MAX bytes, NUL-terminated (the NUL is not
 * counted); *out is malloc'd. */
static int
read_small(const char *path, char **out, size_t *out_len)
{
    struct stat st = { 0 };
    char *buf = NULL;
    size_t n = 0;
    ssize_t got;
    int fd = open(path, O_RDONLY | O_CLOEXEC), rc = EXIT_FAIL;

    if (fd < 0 || fstat(fd, &st) != 0) {
        err("%s: %s", path, strerror(errno));
        goto out;
    }
    if (!S_ISREG(st.st_mode) || st.st_size > FILE_MAX) {
        err("%s: not a regular file of at most %d bytes", path, FILE_MAX);
        goto out;
    }
    if ((buf = malloc((size_t)st.st_size + 1)) == NULL)
        goto out;
    while (n < (size_t)st.st_size && (got = read(fd, buf + n, (size_t)st.st_size - n)) > 0)
        n += (size_t)got;
    if (n != (size_t)st.st_size) {
        err("%s: short read", path);
        goto out;
    }
    buf[n] = '\0';
    *out = buf;
    *out_len = n;
    buf = NULL;
    rc = EXIT_OK;
out:
    if (fd >= 0)
        close(fd);
    if (buf != NULL) {
        OPENSSL_cleanse(buf, (size_t)st.st_size + 1);
        free(buf);
    }
    return rc;
}

static void
free_secret(char *buf, size_t len)
{
    if (buf != NULL) {
        OPENSSL_cleanse(buf, len);
        free(buf);
    }
}

/* The bytes after one PEM block must be blank: a second block or stray text
 * means the wrong file. */
static bool
only_blank(BIO *b)
{
    char c;

    while (BIO_read(b, &c, 1) == 1) {
        if (c != ' ' && c != '\t' && c != '\r' && c != '\n')
            return false;
    }
    return true;
}

static bool
is_pem(const char *buf, size_t n)
{
    return n >= 10 && memcmp(buf, "-----BEGIN", 10) == 0;
}

/* Base64 text (whitespace around it allowed) into *out (malloc'd). */
static int
b64_text_decode(const char *buf, size_t n, uint8_t **out, size_t *out_len)
{
    size_t start = 0, end = n, cap;
    uint8_t *raw;

    while (start < end && strchr(" \t\r\n", buf[start]) != NULL)
        start++;
    while (end > start && strchr(" \t\r\n", buf[end - 1]) != NULL)
        end--;
    if (end == start)
        return -1;
    cap = (end - start) / 4 * 3 + 3;
    if ((raw = malloc(cap)) == NULL)
        return -1;
    if (wallet_b64_decode(raw, cap, out_len, buf + start, end - start) != WALLET_OK) {
        free(raw);
        return -1;
    }
    *out = raw;
    return 0;
}

/* A public key from a PEM or DER SubjectPublicKeyInfo, a PEM CSR (its
 * signature checked, the key taken), or base64 of an uncompressed P-256
 * point (what `tokenvault-ceremony googlepay-key` prints). */
static EVP_PKEY *
load_pubkey(const char *path)
{
    char *buf = NULL, *name = NULL, *header = NULL;
    unsigned char *data = NULL;
    uint8_t *raw = NULL, spki[sizeof(p256_spki_prefix) + P256_POINT_LEN];
    const unsigned char *q;
    long data_len = 0;
    size_t n = 0, raw_len = 0;
    EVP_PKEY *k = NULL;
    X509_REQ *req = NULL;
    BIO *b = NULL;

    if (read_small(path, &buf, &n) != EXIT_OK)
        return NULL;
    if (is_pem(buf, n)) {
        if ((b = BIO_new_mem_buf(buf, (int)n)) == NULL ||
            PEM_read_bio(b, &name, &header, &data, &data_len) != 1 || header[0] != '\0' ||
            data_len <= 0 || !only_blank(b))
            goto bad;
        q = data;
        if (strcmp(name, "PUBLIC KEY") == 0) {
            k = d2i_PUBKEY(NULL, &q, data_len);
        } else if (strcmp(name, "CERTIFICATE REQUEST") == 0) {
            req = d2i_X509_REQ(NULL, &q, data_len);
            /* A CSR its key did not sign is not that key's. */
            if (req != NULL && q == data + data_len &&
                X509_REQ_verify(req, X509_REQ_get0_pubkey(req)) == 1)
                k = X509_REQ_get_pubkey(req);
            q = data + data_len;
        }
        if (k == NULL || q != data + data_len)
            goto bad;
        goto out;
    }
    q = (const unsigned char *)buf;
    if ((k = d2i_PUBKEY(NULL, &q, (long)n)) != NULL) {
        if (q == (const unsigned char *)buf + n)
            goto out;
        goto bad;
    }
    if (b64_text_decode(buf, n, &raw, &raw_len) == 0 && raw_len == P256_POINT_LEN &&
        raw[0] == 0x04) {
        memcpy(spki, p256_spki_prefix, sizeof(p256_spki_prefix));
        memcpy(spki + sizeof(p256_spki_prefix), raw, P256_POINT_LEN);
        q = spki;
        if ((k = d2i_PUBKEY(NULL, &q, (long)sizeof(spki))) != NULL)
            goto out;
    }
bad:
    EVP_PKEY_free(k);
    k = NULL;
    err("%s: not a public key (PEM or DER SubjectPublicKeyInfo, a PEM CSR, or base64 of an "
        "uncompressed P-256 point)", path);
out:
    ERR_clear_error();
    BIO_free(b);
    X509_REQ_free(req);
    OPENSSL_free(name);
    OPENSSL_free(header);
    OPENSSL_free(data);
    free(raw);
    free(buf);
    return k;
}

/* The DER SPKI of |k|; *out malloc'd. */
static int
spki_of(EVP_PKEY *k, uint8_t **out, size_t *out_len)
{
    unsigned char *der = NULL;
    int n = i2d_PUBKEY(k, &der);

    if (n <= 0 || (*out = malloc((size_t)n)) == NULL) {
        OPENSSL_free(der);
        return -1;
    }
    memcpy(*out, der, (size_t)n);
    *out_len = (size_t)n;
    OPENSSL_free(der);
    return 0;
}

static bool
is_p256(EVP_PKEY *k)
{
    char group[32];
    size_t n = 0;

    return EVP_PKEY_get_base_id(k) == EVP_PKEY_EC &&
           EVP_PKEY_get_group_name(k, group, sizeof(group), &n) == 1 &&
           strcmp(group, "prime256v1") == 0;
}

/* A private EC P-256 key as PKCS#8 DER (*out malloc'd, wiped by the caller):
 * from PEM, DER (PKCS#8 or SEC 1), or base64 of PKCS#8 DER (Tink's files). */
static int
load_signing_key(const char *path, uint8_t **out, size_t *out_len)
{
    char *buf = NULL;
    uint8_t *raw = NULL;
    size_t n = 0, raw_len = 0;
    const unsigned char *q;
    EVP_PKEY *k = NULL;
    PKCS8_PRIV_KEY_INFO *p8 = NULL;
    unsigned char *der = NULL;
    BIO *b = NULL;
    int len = 0, rc = EXIT_FAIL;

    if (read_small(path, &buf, &n) != EXIT_OK)
        return EXIT_FAIL;
    if (is_pem(buf, n)) {
        if ((b = BIO_new_mem_buf(buf, (int)n)) != NULL &&
            (k = PEM_read_bio_PrivateKey(b, NULL, NULL, NULL)) != NULL && !only_blank(b)) {
            EVP_PKEY_free(k);
            k = NULL;
        }
    } else {
        q = (const unsigned char *)buf;
        k = d2i_AutoPrivateKey(NULL, &q, (long)n);
        if (k != NULL && q != (const unsigned char *)buf + n) {
            EVP_PKEY_free(k);
            k = NULL;
        }
        if (k == NULL && b64_text_decode(buf, n, &raw, &raw_len) == 0) {
            q = raw;
            k = d2i_AutoPrivateKey(NULL, &q, (long)raw_len);
            if (k != NULL && q != raw + raw_len) {
                EVP_PKEY_free(k);
                k = NULL;
            }
        }
    }
    if (k == NULL || !is_p256(k)) {
        err("%s: not an EC P-256 private key (PKCS#8 PEM or DER, or base64 of PKCS#8 DER)", path);
        goto out;
    }
    if ((p8 = EVP_PKEY2PKCS8(k)) == NULL || (len = i2d_PKCS8_PRIV_KEY_INFO(p8, &der)) <= 0 ||
        (*out = malloc((size_t)len)) == NULL) {
        err_ssl("PKCS#8");
        goto out;
    }
    memcpy(*out, der, (size_t)len);
    *out_len = (size_t)len;
    rc = EXIT_OK;
out:
    ERR_clear_error();
    if (der != NULL)
        OPENSSL_clear_free(der, (size_t)len);
    PKCS8_PRIV_KEY_INFO_free(p8);
    EVP_PKEY_free(k);
    BIO_free(b);
    free_secret((char *)raw, raw_len);
    free_secret(buf, n + 1);
    return rc;
}

/* One certificate, PEM or DER, as DER (*out malloc'd) and parsed. */
static X509 *
load_cert(const char *path, uint8_t **der, size_t *der_len)
{
    char *buf = NULL, *name = NULL, *header = NULL;
    unsigned char *data = NULL;
    long data_len = 0;
    size_t n = 0;
    const unsigned char *q;
    X509 *x = NULL;
    BIO *b = NULL;

    if (read_small(path, &buf, &n) != EXIT_OK)
        return NULL;
    if (is_pem(buf, n)) {
        if ((b = BIO_new_mem_buf(buf, (int)n)) == NULL ||
            PEM_read_bio(b, &name, &header, &data, &data_len) != 1 ||
            strcmp(name, "CERTIFICATE") != 0 || header[0] != '\0' || data_len <= 0 ||
            !only_blank(b))
            goto bad;
    } else {
        if ((data = OPENSSL_malloc(n > 0 ? n : 1)) == NULL)
            goto bad;
        memcpy(data, buf, n);
        data_len = (long)n;
    }
    q = data;
    if ((x = d2i_X509(NULL, &q, data_len)) == NULL || q != data + data_len ||
        (*der = malloc((size_t)data_len)) == NULL)
        goto bad;
    memcpy(*der, data, (size_t)data_len);
    *der_len = (size_t)data_len;
    goto out;
bad:
    X509_free(x);
    x = NULL;
    err("%s: not exactly one certificate (PEM or DER)", path);
out:
    ERR_clear_error();
    BIO_free(b);
    OPENSSL_free(name);
    OPENSSL_free(header);
    OPENSSL_free(data);
    free(buf);
    return x;
}

/* ---- values ------------------------------------------------------------------------- */

static bool
all_digits(const char *s, size_t min, size_t max)
{
    size_t n = strlen(s);

    if (n < min || n > max)
        return false;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
    }
    return true;
}

/* A decimal number in [lo, hi]. */
static bool
number(const char *s, uint64_t lo, uint64_t hi, uint64_t *out)
{
    uint64_t v = 0;

    if (!all_digits(s, 1, 20))
        return false;
    for (const char *p = s; *p != '\0'; p++) {
        if (v > (UINT64_MAX - (uint64_t)(*p - '0')) / 10)
            return false;
        v = v * 10 + (uint64_t)(*p - '0');
    }
    if (v < lo || v > hi)
        return false;
    *out = v;
    return true;
}

/* Printable ASCII without space, quote or backslash: goes into JSON text
 * and signed bytes unescaped. */
static bool
plain_id(const char *s, size_t max)
{
    size_t n = strlen(s);

    if (n == 0 || n > max)
        return false;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < 0x21 || s[i] > 0x7e || s[i] == '"' || s[i] == '\\')
            return false;
    }
    return true;
}

static bool
luhn_ok(const char *pan)
{
    size_t n = strlen(pan);
    unsigned sum = 0;

    for (size_t i = 0; i < n; i++) {
        unsigned d = (unsigned)(pan[n - 1 - i] - '0');

        if (i % 2 == 1 && (d *= 2) > 9)
            d -= 9;
        sum += d;
    }
    return sum % 10 == 0;
}

/* The card number: --pan (a listed test number) or a "pan=DIGITS" line on
 * stdin (--pan-stdin). |pan| holds API_PAN_MAX + 1 bytes; the caller wipes it. */
static int
get_pan(const struct opts *o, char *pan)
{
    char line[API_PAN_MAX + 8]; /* "pan=", the digits, a newline, the NUL */
    size_t n;
    int rc = EXIT_USAGE;

    if (has(o, O_PAN) == has(o, O_PAN_STDIN)) {
        err("give the card number with --pan (a published test number) or --pan-stdin");
        return EXIT_USAGE;
    }
    if (has(o, O_PAN)) {
        for (size_t i = 0; test_pans[i] != NULL; i++) {
            if (strcmp(opt(o, O_PAN), test_pans[i]) == 0) {
                snprintf(pan, API_PAN_MAX + 1, "%s", test_pans[i]);
                return EXIT_OK;
            }
        }
        err("--pan takes only the published test card numbers (--help lists them); give any "
            "other number on stdin with --pan-stdin, never on the command line");
        return EXIT_USAGE;
    }
    if (fgets(line, sizeof(line), stdin) == NULL || strncmp(line, "pan=", 4) != 0) {
        err("--pan-stdin: stdin has no \"pan=DIGITS\" line");
        goto out;
    }
    n = strcspn(line, "\r\n");
    line[n] = '\0';
    if (!all_digits(line + 4, API_PAN_MIN, API_PAN_MAX) || !luhn_ok(line + 4)) {
        err("--pan-stdin: the card number is not %u..%u digits passing the Luhn check",
            API_PAN_MIN, API_PAN_MAX);
        goto out;
    }
    memcpy(pan, line + 4, n - 4 + 1); /* all_digits bounded it to API_PAN_MAX */
    rc = EXIT_OK;
out:
    OPENSSL_cleanse(line, sizeof(line));
    return rc;
}

/* The cryptogram: --cryptogram (strict base64, at most API_CRYPTOGRAM_MAX
 * characters) or a random one, as a device makes one per payment. */
static int
get_cryptogram(const struct opts *o, char out[API_CRYPTOGRAM_MAX + 1])
{
    uint8_t raw[API_CRYPTOGRAM_MAX];
    size_t n = 0;

    if (has(o, O_CRYPTOGRAM)) {
        const char *s = opt(o, O_CRYPTOGRAM);

        if (strlen(s) > API_CRYPTOGRAM_MAX ||
            wallet_b64_decode(raw, sizeof(raw), &n, s, strlen(s)) != WALLET_OK) {
            err("--cryptogram is not base64 of at most %u characters", API_CRYPTOGRAM_MAX);
            return EXIT_USAGE;
        }
        snprintf(out, API_CRYPTOGRAM_MAX + 1, "%s", s);
        return EXIT_OK;
    }
    if (RAND_bytes(raw, CRYPTOGRAM_LEN) != 1) {
        err_ssl("random cryptogram");
        return EXIT_FAIL;
    }
    EVP_EncodeBlock((unsigned char *)out, raw, CRYPTOGRAM_LEN);
    return EXIT_OK;
}

/* --cryptogram/--eci against --pan-only, and the ECI's shape. */
static int
auth_opts_ok(const struct opts *o)
{
    if (has(o, O_PAN_ONLY) && (has(o, O_CRYPTOGRAM) || has(o, O_ECI))) {
        err("--pan-only packets carry no cryptogram and no ECI");
        return EXIT_USAGE;
    }
    if (has(o, O_ECI) && !all_digits(opt(o, O_ECI), 1, API_ECI_MAX)) {
        err("--eci is 1 or 2 digits (05, 07, ...)");
        return EXIT_USAGE;
    }
    return EXIT_OK;
}

static const char *
last4(const char *pan)
{
    return pan + strlen(pan) - 4;
}

/* ---- apple-ca, apple-cert ----------------------------------------------------------- */

static int
cmd_apple_ca(const struct opts *o)
{
    const char *leaf = has(o, O_LEAF) ? opt(o, O_LEAF) : "ec";
    struct gen_apple_ca *ca = NULL;
    uint8_t h[SHA256_DIGEST_LENGTH];
    unsigned flags;

    if (strcmp(leaf, "ec") == 0) {
        flags = 0;
    } else if (strcmp(leaf, "rsa") == 0) {
        flags = GEN_APPLE_RSA_LEAF;
    } else {
        err("--leaf is ec (EC_v1 packets) or rsa (RSA_v1 packets)");
        return EXIT_USAGE;
    }
    if ((ca = gen_apple_ca_new(flags)) == NULL) {
        err_ssl("making the test CA");
        return EXIT_FAIL;
    }
    if (gen_apple_ca_save(ca, opt(o, O_DIR)) != 0) {
        err("%s: %s%s", opt(o, O_DIR), strerror(errno),
            errno == EEXIST ? " (a CA is there already; walletgen never overwrites a file)" : "");
        gen_apple_ca_free(ca);
        return EXIT_FAIL;
    }
    SHA256(ca->root_der, (size_t)ca->root_der_len, h);
    printf("test Apple CA written to %s (every file 0600):\n"
           "  root.pem          test root, self-signed (SHA-256 ", opt(o, O_DIR));
    print_hex(h, sizeof(h));
    printf(")\n"
           "  intermediate.pem  with Apple's marker 1.2.840.113635.100.6.2.14; signs merchant "
           "certificates (apple-cert)\n"
           "  leaf.pem          %s signing leaf with marker 1.2.840.113635.100.6.29; signs %s "
           "packets (apple-packet)\n"
           "  *-key.pem         their private keys\n"
           "root.pem is what a test appliance stores with `tokenvault-ceremony trust-anchor "
           "--kind apple-root`; it is not Apple Root CA - G3 and a production appliance must "
           "never trust it.\n",
           flags ? "RSA-2048" : "EC P-256", flags ? "RSA_v1" : "EC_v1");
    gen_apple_ca_free(ca);
    return EXIT_OK;
}

static struct gen_apple_ca *
ca_load(const char *dir)
{
    struct gen_apple_ca *ca = gen_apple_ca_load(dir);

    if (ca == NULL)
        err("%s: not a test CA made by `" PROG " apple-ca` (root.pem, intermediate.pem, leaf.pem "
            "and their -key.pem files, keys mode 0600, chain and keys matching)", dir);
    ERR_clear_error();
    return ca;
}

/* Apple's merchant identifiers: "merchant." and a reverse domain. */
static bool
merchant_id_ok(const char *s)
{
    size_t n = strlen(s);

    if (n <= strlen(MERCHANT_ID_PREFIX) || n > MERCHANT_ID_MAX ||
        strncmp(s, MERCHANT_ID_PREFIX, strlen(MERCHANT_ID_PREFIX)) != 0)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];

        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '-'))
            return false;
    }
    return true;
}

static int
cmd_apple_cert(const struct opts *o)
{
    struct gen_apple_ca *ca = NULL;
    EVP_PKEY *k = NULL;
    uint8_t *spki = NULL, *der = NULL, mid[SHA256_DIGEST_LENGTH], h[SHA256_DIGEST_LENGTH];
    size_t spki_len = 0, der_len = 0, pem_len = 0;
    const char *id = opt(o, O_MERCHANT_ID);
    char *pem = NULL;
    long n;
    BIO *b = NULL;
    int fd = -1, rc = EXIT_FAIL;

    if (!merchant_id_ok(id)) {
        err("--merchant-id is an Apple merchant identifier: \"" MERCHANT_ID_PREFIX
            "\" and a reverse domain (letters, digits, '.', '-'), at most %d characters",
            MERCHANT_ID_MAX);
        return EXIT_USAGE;
    }
    if ((ca = ca_load(opt(o, O_DIR))) == NULL)
        return EXIT_FAIL;
    if ((k = load_pubkey(opt(o, O_PUBKEY))) == NULL)
        goto out;
    if (!is_p256(k) && !(EVP_PKEY_get_base_id(k) == EVP_PKEY_RSA && EVP_PKEY_get_bits(k) == 2048)) {
        err("%s: Apple certifies EC P-256 (EC_v1) or RSA-2048 (RSA_v1) keys only",
            opt(o, O_PUBKEY));
        goto out;
    }
    if (spki_of(k, &spki, &spki_len) != 0 || out_open(opt(o, O_OUT), &fd) != EXIT_OK) {
        rc = EXIT_FAIL;
        goto out;
    }
    rc = EXIT_FAIL;
    SHA256((const uint8_t *)id, strlen(id), mid);
    if (gen_apple_merchant_cert(ca, spki, spki_len, mid, &der, &der_len) != 0) {
        err_ssl("issuing the certificate");
        goto out;
    }
    if ((b = BIO_new(BIO_s_mem())) == NULL ||
        PEM_write_bio(b, "CERTIFICATE", "", der, (long)der_len) <= 0 ||
        (n = BIO_get_mem_data(b, &pem)) <= 0) {
        err_ssl("PEM");
        goto out;
    }
    pem_len = (size_t)n;
    rc = out_finish(fd, opt(o, O_OUT), pem, pem_len);
    fd = -1;
    if (rc != EXIT_OK)
        goto out;
    SHA256(spki, spki_len, h);
    printf("Apple Pay Payment Processing certificate (test CA) written to %s\n"
           "  key            %s\n"
           "  merchant id    ",
           opt(o, O_OUT), is_p256(k) ? "EC P-256 (EC_v1)" : "RSA-2048 (RSA_v1)");
    print_hex(mid, sizeof(mid));
    printf("  (SHA-256 of \"%s\", extension 1.2.840.113635.100.6.32)\n  publicKeyHash  ", id);
    print_b64(h, sizeof(h));
    printf("\n");
out:
    if (fd >= 0)
        (void)out_finish(fd, opt(o, O_OUT), NULL, 0);
    BIO_free(b);
    free(der);
    free(spki);
    EVP_PKEY_free(k);
    gen_apple_ca_free(ca);
    return rc;
}

/* ---- apple-packet ------------------------------------------------------------------- */

/* applicationExpirationDate: YYMMDD with a real month and day. */
static bool
apple_expiry_ok(const char *s)
{
    int month, day;

    if (!all_digits(s, 6, 6))
        return false;
    month = (s[2] - '0') * 10 + (s[3] - '0');
    day = (s[4] - '0') * 10 + (s[5] - '0');
    return month >= 1 && month <= 12 && day >= 1 && day <= 31;
}

/* The payment data Apple encrypts (WALLETS.md 1; the shape of
 * tests/vectors/gala-2023/expected_plaintext.json). */
static int
apple_plaintext(const struct opts *o, const char *pan, uint64_t amount, char *out, size_t cap)
{
    char crypto[API_CRYPTOGRAM_MAX + 1], eci[32] = "";
    int n, rc;

    if ((rc = get_cryptogram(o, crypto)) != EXIT_OK)
        return rc;
    if (has(o, O_ECI))
        snprintf(eci, sizeof(eci), ",\"eciIndicator\":\"%s\"", opt(o, O_ECI));
    n = snprintf(out, cap,
                 "{\"applicationPrimaryAccountNumber\":\"%s\",\"applicationExpirationDate\":\"%s\","
                 "\"currencyCode\":\"%s\",\"transactionAmount\":%" PRIu64 ","
                 "\"deviceManufacturerIdentifier\":\"" DEVICE_MANUFACTURER_ID "\","
                 "\"paymentDataType\":\"3DSecure\",\"paymentData\":{\"onlinePaymentCryptogram\":"
                 "\"%s\"%s}}",
                 pan, opt(o, O_EXPIRY), opt(o, O_CURRENCY), amount, crypto, eci);
    OPENSSL_cleanse(crypto, sizeof(crypto));
    return n > 0 && (size_t)n < cap ? EXIT_OK : EXIT_FAIL;
}

static int
cmd_apple_packet(const struct opts *o)
{
    const char *version = opt(o, O_VERSION);
    struct gen_apple_ca *ca = NULL;
    X509 *cert = NULL;
    EVP_PKEY *merchant;
    uint8_t *der = NULL, *spki = NULL, mid[WALLET_MERCHANT_ID_LEN];
    size_t der_len = 0, spki_len = 0;
    char pan[API_PAN_MAX + 1] = "", plain[PLAIN_MAX] = "", *token = NULL;
    uint64_t amount = 0, when = (uint64_t)time(NULL);
    bool ec;
    int fd = -1, rc = EXIT_USAGE;

    if (strcmp(version, "EC_v1") != 0 && strcmp(version, "RSA_v1") != 0) {
        err("--version is EC_v1 or RSA_v1");
        return EXIT_USAGE;
    }
    ec = strcmp(version, "EC_v1") == 0;
    if (!apple_expiry_ok(opt(o, O_EXPIRY))) {
        err("--expiry is YYMMDD (applicationExpirationDate), e.g. 301231");
        return EXIT_USAGE;
    }
    if (!number(opt(o, O_AMOUNT), 0, API_AMOUNT_MAX, &amount)) {
        err("--amount is an amount in minor units, 0..%llu", (unsigned long long)API_AMOUNT_MAX);
        return EXIT_USAGE;
    }
    if (!all_digits(opt(o, O_CURRENCY), 3, 3) ||
        wallet_currency_alpha(opt(o, O_CURRENCY)) == NULL) {
        err("--currency is an ISO 4217 numeric code, as Apple gives it (840, 978, 826, ...)");
        return EXIT_USAGE;
    }
    if (has(o, O_SIGNING_TIME) &&
        !number(opt(o, O_SIGNING_TIME), 0, (uint64_t)SIGNING_TIME_MAX, &when)) {
        err("--signing-time is seconds since the epoch (before 2050)");
        return EXIT_USAGE;
    }
    if ((rc = auth_opts_ok(o)) != EXIT_OK || (rc = get_pan(o, pan)) != EXIT_OK)
        goto out;
    rc = EXIT_FAIL;
    if ((ca = ca_load(opt(o, O_DIR))) == NULL ||
        (cert = load_cert(opt(o, O_CERT), &der, &der_len)) == NULL)
        goto out;
    /* The merchant id exactly as the vault reads it from the certificate. */
    if (wallet_cert_merchant_id(mid, der, der_len) != WALLET_OK) {
        err("%s: no valid merchant id (extension 1.2.840.113635.100.6.32): not an Apple Pay "
            "Payment Processing certificate", opt(o, O_CERT));
        goto out;
    }
    merchant = X509_get0_pubkey(cert);
    if (merchant == NULL || spki_of(merchant, &spki, &spki_len) != 0 ||
        (ec ? !is_p256(merchant) : EVP_PKEY_get_base_id(merchant) != EVP_PKEY_RSA)) {
        err("%s: the certificate's key is not %s (%s needs it)", opt(o, O_CERT),
            ec ? "EC P-256" : "RSA", version);
        goto out;
    }
    if ((EVP_PKEY_get_base_id(ca->leaf_key) == EVP_PKEY_EC) != ec) {
        err("%s: the CA's signing leaf is %s; %s packets are signed by an %s leaf (make one with "
            "apple-ca --leaf %s)", opt(o, O_DIR), ec ? "RSA" : "EC", version, ec ? "EC" : "RSA",
            ec ? "ec" : "rsa");
        goto out;
    }
    if ((rc = apple_plaintext(o, pan, amount, plain, sizeof(plain))) != EXIT_OK ||
        (rc = out_open(opt(o, O_OUT), &fd)) != EXIT_OK)
        goto out;
    rc = EXIT_FAIL;
    if ((token = gen_apple_token(ca, version, spki, spki_len, mid, plain, (time_t)when, NULL)) ==
        NULL) {
        err_ssl("making the packet");
        goto out;
    }
    rc = out_finish(fd, opt(o, O_OUT), token, strlen(token));
    fd = -1;
    if (rc == EXIT_OK) {
        printf("Apple Pay %s packet written to %s: card ending %s, amount %" PRIu64 " (currency "
               "%s), signed at %" PRIu64 " by the test CA's leaf, merchant id ",
               version, opt(o, O_OUT), last4(pan), amount, opt(o, O_CURRENCY), when);
        print_hex(mid, sizeof(mid));
        printf("\n");
    }
out:
    if (fd >= 0)
        (void)out_finish(fd, opt(o, O_OUT), NULL, 0);
    OPENSSL_cleanse(pan, sizeof(pan));
    OPENSSL_cleanse(plain, sizeof(plain));
    free(token);
    free(spki);
    free(der);
    X509_free(cert);
    gen_apple_ca_free(ca);
    return rc;
}

/* ---- google-keys, google-packet ----------------------------------------------------- */

static bool
google_protocol_ok(const char *p)
{
    return strcmp(p, "ECv1") == 0 || strcmp(p, "ECv2") == 0 || strcmp(p, "ECv2SigningOnly") == 0;
}

static int
cmd_google_keys(const struct opts *o)
{
    const char *protocol = has(o, O_PROTOCOL) ? opt(o, O_PROTOCOL) : "ECv2";
    uint64_t expires_in = GOOGLE_ROOT_VALIDITY_S, expiration_ms = 0;
    uint8_t *key = NULL;
    size_t key_len = 0;
    char *json = NULL;
    int fd = -1, rc;

    if (!google_protocol_ok(protocol)) {
        err("--protocol is ECv1, ECv2 or ECv2SigningOnly");
        return EXIT_USAGE;
    }
    if (has(o, O_EXPIRES_IN) && !number(opt(o, O_EXPIRES_IN), 1, EXPIRES_IN_MAX, &expires_in)) {
        err("--expires-in is 1..%u seconds", EXPIRES_IN_MAX);
        return EXIT_USAGE;
    }
    /* ECv1 keys carry no keyExpiration unless one is asked for (Tink). */
    if (strcmp(protocol, "ECv1") != 0 || has(o, O_EXPIRES_IN))
        expiration_ms = ((uint64_t)time(NULL) + expires_in) * 1000;
    if ((rc = load_signing_key(opt(o, O_SIGNING_KEY), &key, &key_len)) != EXIT_OK)
        return rc;
    if ((rc = out_open(opt(o, O_OUT), &fd)) != EXIT_OK)
        goto out;
    if (gen_google_keys_json(key, key_len, protocol, expiration_ms, &json) != 0) {
        err_ssl("keys.json");
        rc = EXIT_FAIL;
        goto out;
    }
    rc = out_finish(fd, opt(o, O_OUT), json, strlen(json));
    fd = -1;
    if (rc == EXIT_OK) {
        printf("Google root signing keys (%s, the public half of %s) written to %s", protocol,
               opt(o, O_SIGNING_KEY), opt(o, O_OUT));
        if (expiration_ms != 0)
            printf(", keyExpiration %" PRIu64, expiration_ms);
        printf("\nfor `tokenvault-ceremony trust-anchor --kind google-keys` on a test appliance "
               "only: these are not Google's keys\n");
    }
out:
    if (fd >= 0)
        (void)out_finish(fd, opt(o, O_OUT), NULL, 0);
    free(json);
    free_secret((char *)key, key_len);
    return rc;
}

/* "merchant:<id>" or "gateway:<id>" (Google's recipientId). */
static bool
recipient_ok(const char *s)
{
    const char *id = NULL;

    if (strncmp(s, "merchant:", 9) == 0)
        id = s + 9;
    else if (strncmp(s, "gateway:", 8) == 0)
        id = s + 8;
    return id != NULL && plain_id(id, GOOGLE_ID_MAX);
}

/* base64url without padding of |n| random bytes: an opaque messageId. */
static int
random_id(char *out, size_t cap)
{
    uint8_t raw[MESSAGE_ID_BYTES];
    size_t len;

    if (cap < 4 * MESSAGE_ID_BYTES / 3 + 1 || RAND_bytes(raw, sizeof(raw)) != 1)
        return -1;
    len = (size_t)EVP_EncodeBlock((unsigned char *)out, raw, sizeof(raw));
    for (size_t i = 0; i < len; i++) {
        if (out[i] == '+')
            out[i] = '-';
        else if (out[i] == '/')
            out[i] = '_';
    }
    return 0;
}

/* The payment method token's message (WALLETS.md 2; Google's "Payment data
 * cryptography", encrypted message). */
static int
google_message(const struct opts *o, const char *pan, uint64_t month, uint64_t year,
               uint64_t expiration_ms, char *out, size_t cap)
{
    char crypto[API_CRYPTOGRAM_MAX + 1] = "", id[4 * MESSAGE_ID_BYTES / 3 + 1];
    char gw[GOOGLE_ID_MAX + 32] = "";
    char auth[API_CRYPTOGRAM_MAX + 96];
    int n, rc;

    if (random_id(id, sizeof(id)) != 0) {
        err_ssl("messageId");
        return EXIT_FAIL;
    }
    if (has(o, O_PAN_ONLY)) {
        snprintf(auth, sizeof(auth), "\"authMethod\":\"PAN_ONLY\"");
    } else {
        if ((rc = get_cryptogram(o, crypto)) != EXIT_OK)
            return rc;
        snprintf(auth, sizeof(auth),
                 "\"authMethod\":\"CRYPTOGRAM_3DS\",\"cryptogram\":\"%s\"%s%s%s", crypto,
                 has(o, O_ECI) ? ",\"eciIndicator\":\"" : "", has(o, O_ECI) ? opt(o, O_ECI) : "",
                 has(o, O_ECI) ? "\"" : "");
    }
    if (has(o, O_GATEWAY_MERCHANT_ID))
        snprintf(gw, sizeof(gw), "\"gatewayMerchantId\":\"%s\",", opt(o, O_GATEWAY_MERCHANT_ID));
    n = snprintf(out, cap,
                 "{%s\"messageExpiration\":\"%" PRIu64 "\",\"messageId\":\"%s\","
                 "\"paymentMethod\":\"CARD\",\"paymentMethodDetails\":{\"expirationYear\":%" PRIu64
                 ",\"expirationMonth\":%" PRIu64 ",\"pan\":\"%s\",%s}}",
                 gw, expiration_ms, id, year, month, pan, auth);
    OPENSSL_cleanse(crypto, sizeof(crypto));
    OPENSSL_cleanse(auth, sizeof(auth));
    return n > 0 && (size_t)n < cap ? EXIT_OK : EXIT_FAIL;
}

static int
cmd_google_packet(const struct opts *o)
{
    const char *protocol = has(o, O_PROTOCOL) ? opt(o, O_PROTOCOL) : "ECv2";
    struct gen_google_params p = { 0 };
    uint8_t *root = NULL, *inter = NULL, *spki = NULL;
    size_t root_len = 0, inter_len = 0, spki_len = 0, token_len = 0;
    EVP_PKEY *recipient = NULL, *fresh = NULL;
    PKCS8_PRIV_KEY_INFO *p8 = NULL;
    unsigned char *der = NULL;
    char pan[API_PAN_MAX + 1] = "", plain[PLAIN_MAX] = "", *token = NULL;
    uint64_t month = 0, year = 0, now_ms = (uint64_t)time(NULL) * 1000;
    bool v1, signing_only;
    int fd = -1, der_len = 0, rc = EXIT_USAGE;

    if (!google_protocol_ok(protocol)) {
        err("--protocol is ECv1, ECv2 or ECv2SigningOnly");
        return EXIT_USAGE;
    }
    v1 = strcmp(protocol, "ECv1") == 0;
    signing_only = strcmp(protocol, "ECv2SigningOnly") == 0;
    if (signing_only == has(o, O_RECIPIENT_PUBKEY)) {
        err(signing_only ? "ECv2SigningOnly messages are not encrypted: no --recipient-pubkey"
                         : "--recipient-pubkey FILE: the merchant's key to encrypt to");
        return EXIT_USAGE;
    }
    if (v1 && has(o, O_INTERMEDIATE_KEY)) {
        err("ECv1 tokens are signed by the root key itself: no --intermediate-key");
        return EXIT_USAGE;
    }
    if (!recipient_ok(opt(o, O_RECIPIENT_ID))) {
        err("--recipient-id is merchant:ID or gateway:ID (ID printable, no spaces, at most %d)",
            GOOGLE_ID_MAX);
        return EXIT_USAGE;
    }
    if (has(o, O_GATEWAY_MERCHANT_ID) && !plain_id(opt(o, O_GATEWAY_MERCHANT_ID), GOOGLE_ID_MAX)) {
        err("--gateway-merchant-id is printable, no spaces or quotes, at most %d", GOOGLE_ID_MAX);
        return EXIT_USAGE;
    }
    if (!number(opt(o, O_EXP_MONTH), 1, 12, &month) ||
        !all_digits(opt(o, O_EXP_YEAR), 4, 4) || !number(opt(o, O_EXP_YEAR), 1000, 9999, &year)) {
        err("--exp-month is 1..12 and --exp-year four digits (Google's expirationMonth and "
            "expirationYear)");
        return EXIT_USAGE;
    }
    if ((rc = auth_opts_ok(o)) != EXIT_OK || (rc = get_pan(o, pan)) != EXIT_OK)
        goto out;
    rc = EXIT_FAIL;
    if (load_signing_key(opt(o, O_SIGNING_KEY), &root, &root_len) != EXIT_OK)
        goto out;
    if (!v1 && has(o, O_INTERMEDIATE_KEY) &&
        load_signing_key(opt(o, O_INTERMEDIATE_KEY), &inter, &inter_len) != EXIT_OK)
        goto out;
    if (!v1 && !has(o, O_INTERMEDIATE_KEY)) {
        /* A fresh intermediate, as Google rotates them. */
        if ((fresh = EVP_EC_gen("P-256")) == NULL || (p8 = EVP_PKEY2PKCS8(fresh)) == NULL ||
            (der_len = i2d_PKCS8_PRIV_KEY_INFO(p8, &der)) <= 0) {
            err_ssl("intermediate key");
            goto out;
        }
        inter = der;
        inter_len = (size_t)der_len;
    }
    if (!signing_only) {
        if ((recipient = load_pubkey(opt(o, O_RECIPIENT_PUBKEY))) == NULL)
            goto out;
        if (!is_p256(recipient) || spki_of(recipient, &spki, &spki_len) != 0) {
            err("%s: Google encrypts to EC P-256 keys only", opt(o, O_RECIPIENT_PUBKEY));
            goto out;
        }
    }
    if ((rc = google_message(o, pan, month, year, now_ms + GOOGLE_VALIDITY_S * 1000ull, plain,
                             sizeof(plain))) != EXIT_OK ||
        (rc = out_open(opt(o, O_OUT), &fd)) != EXIT_OK)
        goto out;
    rc = EXIT_FAIL;
    p.protocol = protocol;
    p.recipient_spki = spki;
    p.recipient_spki_len = spki_len;
    p.recipient_id = opt(o, O_RECIPIENT_ID);
    p.plaintext = (const uint8_t *)plain;
    p.plaintext_len = strlen(plain);
    p.key_expiration_ms = now_ms + GOOGLE_VALIDITY_S * 1000ull;
    p.root_pkcs8 = root;
    p.root_pkcs8_len = root_len;
    p.intermediate_pkcs8 = inter;
    p.intermediate_pkcs8_len = inter_len;
    if (gen_google_token(&p, &token, &token_len) != 0) {
        err_ssl("making the token");
        goto out;
    }
    rc = out_finish(fd, opt(o, O_OUT), token, token_len);
    fd = -1;
    if (rc == EXIT_OK)
        printf("Google Pay %s token written to %s: card ending %s, %s, for %s\n", protocol,
               opt(o, O_OUT), last4(pan), has(o, O_PAN_ONLY) ? "PAN_ONLY" : "CRYPTOGRAM_3DS",
               opt(o, O_RECIPIENT_ID));
out:
    if (fd >= 0)
        (void)out_finish(fd, opt(o, O_OUT), NULL, 0);
    OPENSSL_cleanse(pan, sizeof(pan));
    OPENSSL_cleanse(plain, sizeof(plain));
    if (token != NULL)
        free_secret(token, token_len);
    free_secret((char *)root, root_len);
    if (inter != der)
        free_secret((char *)inter, inter_len);
    if (der != NULL)
        OPENSSL_clear_free(der, (size_t)der_len);
    PKCS8_PRIV_KEY_INFO_free(p8);
    EVP_PKEY_free(fresh);
    EVP_PKEY_free(recipient);
    free(spki);
    return rc;
}

/* ---- samsung-packet ----------------------------------------------------------------- */

/* Samsung's paymentCredential card_brand for a card number. */
static const char *
samsung_brand(const char *pan)
{
    if (pan[0] == '4')
        return "VI";
    if (pan[0] == '5' || pan[0] == '2')
        return "MC";
    if (pan[0] == '3' && (pan[1] == '4' || pan[1] == '7'))
        return "AX";
    return "DS";
}

/* The plaintext Samsung encrypts (WALLETS.md 3: every member a string). */
static int
samsung_plaintext(const struct opts *o, const char *pan, char *out, size_t cap)
{
    char crypto[API_CRYPTOGRAM_MAX + 1] = "", head[64] = "", tail[API_CRYPTOGRAM_MAX + 64] = "";
    int n, rc;

    if (has(o, O_AMOUNT))
        snprintf(head, sizeof(head), "\"amount\":\"%s\",", opt(o, O_AMOUNT));
    if (has(o, O_CURRENCY))
        snprintf(head + strlen(head), sizeof(head) - strlen(head), "\"currency_code\":\"%s\",",
                 opt(o, O_CURRENCY));
    if (!has(o, O_PAN_ONLY)) {
        if ((rc = get_cryptogram(o, crypto)) != EXIT_OK)
            return rc;
        snprintf(tail, sizeof(tail), ",\"cryptogram\":\"%s\"", crypto);
    }
    n = snprintf(out, cap,
                 "{%s\"utc\":\"%" PRIu64 "\"%s%s%s,\"tokenPAN\":\"%s\","
                 "\"tokenPanExpiration\":\"%s\"%s}",
                 head, (uint64_t)time(NULL) * 1000, has(o, O_ECI) ? ",\"eci_indicator\":\"" : "",
                 has(o, O_ECI) ? opt(o, O_ECI) : "", has(o, O_ECI) ? "\"" : "", pan,
                 opt(o, O_EXPIRY), tail);
    OPENSSL_cleanse(crypto, sizeof(crypto));
    OPENSSL_cleanse(tail, sizeof(tail));
    return n > 0 && (size_t)n < cap ? EXIT_OK : EXIT_FAIL;
}

static int
cmd_samsung_packet(const struct opts *o)
{
    const char *alg = has(o, O_ALG) ? opt(o, O_ALG) : "RSA1_5";
    const char *enc = has(o, O_ENC) ? opt(o, O_ENC) : "A128GCM";
    const char *e = opt(o, O_EXPIRY);
    struct gen_samsung_params p = { 0 };
    EVP_PKEY *k = NULL;
    uint8_t *spki = NULL;
    size_t spki_len = 0, packet_len = 0;
    char pan[API_PAN_MAX + 1] = "", plain[PLAIN_MAX] = "", *packet = NULL;
    uint64_t amount = 0;
    int fd = -1, rc = EXIT_USAGE;

    if (strcmp(alg, "RSA1_5") != 0 && strcmp(alg, "RSA-OAEP") != 0 &&
        strcmp(alg, "RSA-OAEP-256") != 0) {
        err("--alg is RSA1_5 (what Samsung sends), RSA-OAEP or RSA-OAEP-256");
        return EXIT_USAGE;
    }
    if (strcmp(enc, "A128GCM") != 0 && strcmp(enc, "A256GCM") != 0) {
        err("--enc is A128GCM (what Samsung sends) or A256GCM");
        return EXIT_USAGE;
    }
    if (!plain_id(opt(o, O_KID), KID_MAX)) {
        err("--kid is 1..%d printable characters, no spaces or quotes", KID_MAX);
        return EXIT_USAGE;
    }
    if (!all_digits(e, 4, 4) || (e[0] - '0') * 10 + (e[1] - '0') < 1 ||
        (e[0] - '0') * 10 + (e[1] - '0') > 12) {
        err("--expiry is MMYY (tokenPanExpiration), e.g. 1230");
        return EXIT_USAGE;
    }
    if (has(o, O_AMOUNT) && !number(opt(o, O_AMOUNT), 0, API_AMOUNT_MAX, &amount)) {
        err("--amount is an amount in minor units, 0..%llu", (unsigned long long)API_AMOUNT_MAX);
        return EXIT_USAGE;
    }
    if (has(o, O_CURRENCY)) {
        const char *c = opt(o, O_CURRENCY);

        if (strlen(c) != 3 || c[0] < 'A' || c[0] > 'Z' || c[1] < 'A' || c[1] > 'Z' || c[2] < 'A' ||
            c[2] > 'Z') {
            err("--currency is an ISO 4217 alphabetic code, as Samsung gives it (USD, EUR, ...)");
            return EXIT_USAGE;
        }
    }
    if ((rc = auth_opts_ok(o)) != EXIT_OK || (rc = get_pan(o, pan)) != EXIT_OK)
        goto out;
    rc = EXIT_FAIL;
    if ((k = load_pubkey(opt(o, O_PUBKEY))) == NULL)
        goto out;
    if (EVP_PKEY_get_base_id(k) != EVP_PKEY_RSA || EVP_PKEY_get_bits(k) < SAMSUNG_RSA_MIN_BITS ||
        spki_of(k, &spki, &spki_len) != 0) {
        err("%s: Samsung encrypts to RSA keys of at least %d bits", opt(o, O_PUBKEY),
            SAMSUNG_RSA_MIN_BITS);
        goto out;
    }
    if ((rc = samsung_plaintext(o, pan, plain, sizeof(plain))) != EXIT_OK ||
        (rc = out_open(opt(o, O_OUT), &fd)) != EXIT_OK)
        goto out;
    rc = EXIT_FAIL;
    p.recipient_spki = spki;
    p.recipient_spki_len = spki_len;
    p.kid = opt(o, O_KID);
    p.alg = alg;
    p.enc = enc;
    p.plaintext = (const uint8_t *)plain;
    p.plaintext_len = strlen(plain);
    p.payment_credential = has(o, O_CREDENTIAL);
    p.card_brand = samsung_brand(pan);
    p.card_last4 = last4(pan);
    if (gen_samsung_packet(&p, &packet, &packet_len) != 0) {
        err_ssl("making the packet");
        goto out;
    }
    rc = out_finish(fd, opt(o, O_OUT), packet, packet_len);
    fd = -1;
    if (rc == EXIT_OK)
        printf("Samsung Pay %s/%s %s written to %s: card ending %s, kid %s\n", alg, enc,
               has(o, O_CREDENTIAL) ? "paymentCredential" : "JWE", opt(o, O_OUT), last4(pan),
               opt(o, O_KID));
out:
    if (fd >= 0)
        (void)out_finish(fd, opt(o, O_OUT), NULL, 0);
    OPENSSL_cleanse(pan, sizeof(pan));
    OPENSSL_cleanse(plain, sizeof(plain));
    free(packet);
    free(spki);
    EVP_PKEY_free(k);
    return rc;
}

/* ---- the command table -------------------------------------------------------------- */

#define CARD (B(O_PAN) | B(O_PAN_STDIN))
#define AUTH (B(O_CRYPTOGRAM) | B(O_ECI))

static const struct command {
    const char *name;
    uint64_t needs;   /* B(O_*) that must be given */
    uint64_t accepts; /* B(O_*) that may be given (needs included) */
    int (*run)(const struct opts *o);
} commands[] = {
    { "apple-ca", B(O_DIR), B(O_DIR) | B(O_LEAF), cmd_apple_ca },
    { "apple-cert", B(O_DIR) | B(O_PUBKEY) | B(O_MERCHANT_ID) | B(O_OUT),
      B(O_DIR) | B(O_PUBKEY) | B(O_MERCHANT_ID) | B(O_OUT), cmd_apple_cert },
    { "apple-packet",
      B(O_DIR) | B(O_VERSION) | B(O_CERT) | B(O_EXPIRY) | B(O_AMOUNT) | B(O_CURRENCY) | B(O_OUT),
      B(O_DIR) | B(O_VERSION) | B(O_CERT) | B(O_EXPIRY) | B(O_AMOUNT) | B(O_CURRENCY) | B(O_OUT) |
          CARD | AUTH | B(O_SIGNING_TIME),
      cmd_apple_packet },
    { "google-keys", B(O_SIGNING_KEY) | B(O_OUT),
      B(O_SIGNING_KEY) | B(O_OUT) | B(O_PROTOCOL) | B(O_EXPIRES_IN), cmd_google_keys },
    { "google-packet",
      B(O_SIGNING_KEY) | B(O_RECIPIENT_ID) | B(O_EXP_MONTH) | B(O_EXP_YEAR) | B(O_OUT),
      B(O_SIGNING_KEY) | B(O_RECIPIENT_ID) | B(O_EXP_MONTH) | B(O_EXP_YEAR) | B(O_OUT) |
          B(O_RECIPIENT_PUBKEY) | B(O_INTERMEDIATE_KEY) | B(O_PROTOCOL) | B(O_GATEWAY_MERCHANT_ID) |
          CARD | AUTH | B(O_PAN_ONLY),
      cmd_google_packet },
    { "samsung-packet", B(O_PUBKEY) | B(O_KID) | B(O_EXPIRY) | B(O_OUT),
      B(O_PUBKEY) | B(O_KID) | B(O_EXPIRY) | B(O_OUT) | B(O_ALG) | B(O_ENC) | B(O_AMOUNT) |
          B(O_CURRENCY) | CARD | AUTH | B(O_PAN_ONLY) | B(O_CREDENTIAL),
      cmd_samsung_packet },
};

static void
usage(FILE *f)
{
    fprintf(f,
        "usage: " PROG " COMMAND [options]\n"
        "\n"
        "Makes wallet payment packets the way Apple, Google and Samsung make them. It PLAYS\n"
        "the wallets (a test Apple CA, Google's published test signing keys) and exists for\n"
        "the tests and the demo only: nothing it makes is accepted by an appliance that\n"
        "trusts only Apple Root CA - G3 and Google's production root keys.\n"
        "\n"
        "commands:\n"
        "  apple-ca --dir D [--leaf ec|rsa]\n"
        "      a new test Apple CA in D: root.pem (store it with `tokenvault-ceremony\n"
        "      trust-anchor --kind apple-root` on a test appliance), intermediate.pem,\n"
        "      leaf.pem and their -key.pem files; the leaf signs EC_v1 (ec, default) or\n"
        "      RSA_v1 (rsa) packets\n"
        "  apple-cert --dir D --pubkey FILE --merchant-id merchant.ID --out CERT\n"
        "      an Apple Pay Payment Processing certificate for the merchant's key (EC P-256\n"
        "      or RSA-2048; a PEM/DER SubjectPublicKeyInfo or the PEM CSR of\n"
        "      `tokenvault-ceremony applepay-key`), with the merchant id SHA-256(ID) in\n"
        "      extension 1.2.840.113635.100.6.32, for `tokenvault-ceremony applepay-cert`\n"
        "  apple-packet --dir D --version EC_v1|RSA_v1 --cert CERT --pan PAN|--pan-stdin\n"
        "               --expiry YYMMDD --amount MINOR --currency NUMERIC [--cryptogram B64]\n"
        "               [--eci NN] [--signing-time EPOCH] --out FILE\n"
        "      the paymentData JSON a gateway receives, encrypted to CERT's key and signed\n"
        "      by D's leaf at --signing-time (default now); Apple packets always carry a\n"
        "      cryptogram (3DSecure)\n"
        "  google-keys --signing-key FILE [--protocol ECv2] [--expires-in SECONDS] --out FILE\n"
        "      Google's root signing keys file (keys.json) for FILE's public half, for\n"
        "      `tokenvault-ceremony trust-anchor --kind google-keys`; keyExpiration now +\n"
        "      --expires-in (default a year; ECv1 keys have none unless it is given)\n"
        "  google-packet --signing-key FILE [--intermediate-key FILE] [--protocol ECv2]\n"
        "                --recipient-id merchant:ID|gateway:ID --recipient-pubkey FILE\n"
        "                --pan PAN|--pan-stdin --exp-month M --exp-year YYYY\n"
        "                [--cryptogram B64 [--eci NN] | --pan-only]\n"
        "                [--gateway-merchant-id ID] --out FILE\n"
        "      a payment method token (ECv1, ECv2 or ECv2SigningOnly) signed by the root\n"
        "      key (ECv2: through --intermediate-key, default a fresh key) and encrypted to\n"
        "      the merchant's EC P-256 key (a PEM/DER SubjectPublicKeyInfo, or the base64\n"
        "      point `tokenvault-ceremony googlepay-key` prints); message and intermediate\n"
        "      valid 7 days\n"
        "  samsung-packet --pubkey FILE --kid KID [--alg RSA1_5|RSA-OAEP|RSA-OAEP-256]\n"
        "                 [--enc A128GCM|A256GCM] --pan PAN|--pan-stdin --expiry MMYY\n"
        "                 [--amount MINOR] [--currency USD] [--cryptogram B64] [--eci N]\n"
        "                 [--pan-only] [--credential] --out FILE\n"
        "      a JWE to the merchant's RSA key (SubjectPublicKeyInfo or the PEM CSR of\n"
        "      `tokenvault-ceremony samsungpay-key`) with utc = now; --credential wraps it in\n"
        "      the paymentCredential JSON the Samsung Pay SDK hands the merchant\n"
        "\n"
        "card data:\n"
        "  --pan PAN       only a published test card number:");
    for (size_t i = 0; test_pans[i] != NULL; i++)
        fprintf(f, "%s%s", i % 4 == 0 ? "\n                  " : " ", test_pans[i]);
    fprintf(f,
        "\n"
        "  --pan-stdin     any other card number, as a line \"pan=DIGITS\" on stdin (never on\n"
        "                  the command line, where ps and shell history would keep it)\n"
        "  without --cryptogram a random 20-byte cryptogram is made; --pan-only (Google,\n"
        "  Samsung) makes a packet without one\n"
        "\n"
        "Every output file is created new with mode 0600; an existing file is refused.\n"
        "exit codes: 0 ok, 1 failure, 2 usage\n");
}

int
main(int argc, char **argv)
{
    struct option lopts[O_NUM + 2];
    const struct command *cmd = NULL;
    struct opts o;
    int c;

    memset(&o, 0, sizeof(o));
    for (int i = 0; i < O_NUM; i++)
        lopts[i] = (struct option){ option_defs[i].name, option_defs[i].has_arg, NULL, 256 + i };
    lopts[O_NUM] = (struct option){ "help", no_argument, NULL, 'h' };
    lopts[O_NUM + 1] = (struct option){ NULL, 0, NULL, 0 };
    while ((c = getopt_long(argc, argv, "h", lopts, NULL)) != -1) {
        if (c == 'h') {
            usage(stdout);
            return EXIT_OK;
        }
        if (c < 256 || c >= 256 + O_NUM) {
            usage(stderr);
            return EXIT_USAGE;
        }
        if (o.given & B(c - 256)) {
            err("--%s given twice", option_defs[c - 256].name);
            return EXIT_USAGE;
        }
        o.given |= B(c - 256);
        o.v[c - 256] = option_defs[c - 256].has_arg == required_argument ? optarg : "";
    }
    if (optind + 1 != argc) {
        usage(stderr);
        return EXIT_USAGE;
    }
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++) {
        if (strcmp(argv[optind], commands[i].name) == 0)
            cmd = &commands[i];
    }
    if (cmd == NULL) {
        err("unknown command '%s' (--help lists them)", argv[optind]);
        return EXIT_USAGE;
    }
    for (int i = 0; i < O_NUM; i++) {
        if ((cmd->needs & B(i)) && !(o.given & B(i))) {
            err("%s needs --%s (--help)", cmd->name, option_defs[i].name);
            return EXIT_USAGE;
        }
        if ((o.given & B(i)) && !(cmd->accepts & B(i))) {
            err("%s does not take --%s (--help)", cmd->name, option_defs[i].name);
            return EXIT_USAGE;
        }
    }
    return cmd->run(&o);
}
