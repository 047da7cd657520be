/*
 * gen_google.c - Google Pay tokens made on the host, as Google makes them.
 * See gen_google.h; formats in WALLETS.md section 2.
 */
#include "tests/support/gen_google.h"

#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <openssl/x509.h>

/* HKDF info and the sender id in the signed bytes. */
#define SENDER "Google"
/* ECv1: AES-128 + HMAC key of 16; ECv2: AES-256 + 32. */
#define ECV1_KEY_LEN 16
#define ECV2_KEY_LEN 32
#define POINT_LEN 65
#define TAG_LEN 32
#define SIG_MAX 80
/* Generated tokens stay far below this; it only bounds a runaway buffer. */
#define GEN_TEXT_MAX (1u << 20)

/* ---- a growing text buffer ------------------------------------------------------ */

struct text {
    char *p;
    size_t len, cap;
    bool failed;
};

static void
text_put(struct text *t, const char *s, size_t n)
{
    if (t->failed)
        return;
    if (n > GEN_TEXT_MAX - t->len - 1) {
        t->failed = true;
        return;
    }
    if (t->len + n + 1 > t->cap) {
        size_t cap = (t->len + n + 1) * 2;
        char *p = realloc(t->p, cap);

        if (p == NULL) {
            t->failed = true;
            return;
        }
        t->p = p;
        t->cap = cap;
    }
    memcpy(t->p + t->len, s, n);
    t->len += n;
    t->p[t->len] = '\0';
}

static void
text_str(struct text *t, const char *s)
{
    text_put(t, s, strlen(s));
}

/* |s| as the inside of a JSON string (quotes, backslashes, controls escaped). */
static void
text_escaped(struct text *t, const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        char esc[8];

        if (c == '"' || c == '\\') {
            esc[0] = '\\';
            esc[1] = (char)c;
            text_put(t, esc, 2);
        } else if (c < 0x20) {
            snprintf(esc, sizeof(esc), "\\u%04x", c);
            text_put(t, esc, 6);
        } else {
            text_put(t, (const char *)&c, 1);
        }
    }
}

/* Base64 of |data|; with |gson| each '=' written as \u003d, as Gson's HTML-safe
 * escaping does inside signedKey and signedMessage. */
static void
text_b64(struct text *t, const uint8_t *data, size_t n, bool gson)
{
    size_t cap = (n + 2) / 3 * 4 + 1;
    char *b = malloc(cap);
    int len;

    if (b == NULL) {
        t->failed = true;
        return;
    }
    len = EVP_EncodeBlock((unsigned char *)b, data, (int)n);
    for (int i = 0; i < len; i++) {
        if (gson && b[i] == '=')
            text_str(t, "\\u003d");
        else
            text_put(t, &b[i], 1);
    }
    free(b);
}

/* ---- crypto helpers --------------------------------------------------------------- */

static EVP_PKEY *
load_private(const uint8_t *der, size_t len)
{
    const unsigned char *p = der;

    return der == NULL ? NULL : d2i_AutoPrivateKey(NULL, &p, (long)len);
}

static int
sign(EVP_PKEY *key, const uint8_t *data, size_t len, uint8_t *sig, size_t *sig_len)
{
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    size_t n = SIG_MAX;
    int r = -1;

    if (md != NULL && EVP_DigestSignInit(md, NULL, EVP_sha256(), NULL, key) == 1 &&
        EVP_DigestSign(md, sig, &n, data, len) == 1) {
        *sig_len = n;
        r = 0;
    }
    EVP_MD_CTX_free(md);
    return r;
}

/* LV(part) || ... with 4-byte little-endian lengths (WALLETS.md 2.2). */
static int
signed_bytes(struct text *t, const char *const *parts, const size_t *lens, size_t num)
{
    for (size_t i = 0; i < num; i++) {
        char le[4] = { (char)(lens[i] & 0xff), (char)(lens[i] >> 8 & 0xff),
                       (char)(lens[i] >> 16 & 0xff), (char)(lens[i] >> 24 & 0xff) };

        text_put(t, le, 4);
        text_put(t, parts[i], lens[i]);
    }
    return t->failed ? -1 : 0;
}

static int
sign_parts(EVP_PKEY *key, const char *const *parts, const size_t *lens, size_t num, uint8_t *sig,
           size_t *sig_len)
{
    struct text b = { 0 };
    int r = -1;

    if (signed_bytes(&b, parts, lens, num) == 0)
        r = sign(key, (const uint8_t *)b.p, b.len, sig, sig_len);
    free(b.p);
    return r;
}

static int
ecdh(EVP_PKEY *priv, EVP_PKEY *peer, uint8_t z[32])
{
    EVP_PKEY_CTX *c = EVP_PKEY_CTX_new(priv, NULL);
    size_t n = 32;
    int r = -1;

    if (c != NULL && EVP_PKEY_derive_init(c) == 1 && EVP_PKEY_derive_set_peer(c, peer) == 1 &&
        EVP_PKEY_derive(c, z, &n) == 1 && n == 32)
        r = 0;
    EVP_PKEY_CTX_free(c);
    return r;
}

/* HKDF-SHA256(IKM = point || Z, no salt, info "Google"). */
static int
hkdf(const uint8_t *ikm, size_t ikm_len, uint8_t *out, size_t out_len)
{
    EVP_KDF *kdf = EVP_KDF_fetch(NULL, "HKDF", NULL);
    EVP_KDF_CTX *c = kdf != NULL ? EVP_KDF_CTX_new(kdf) : NULL;
    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, (char *)"SHA256", 0),
        OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY, (void *)ikm, ikm_len),
        OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO, (void *)SENDER, strlen(SENDER)),
        OSSL_PARAM_construct_end(),
    };
    int r = -1;

    if (c != NULL && EVP_KDF_derive(c, out, out_len, params) == 1)
        r = 0;
    EVP_KDF_CTX_free(c);
    EVP_KDF_free(kdf);
    return r;
}

static int
aes_ctr(const uint8_t *key, size_t key_len, const uint8_t *in, size_t len, uint8_t *out)
{
    static const uint8_t zero_iv[16];
    EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
    int n = 0, fin = 0, r = -1;

    if (c != NULL &&
        EVP_EncryptInit_ex(c, key_len == ECV1_KEY_LEN ? EVP_aes_128_ctr() : EVP_aes_256_ctr(), NULL,
                           key, zero_iv) == 1 &&
        EVP_EncryptUpdate(c, out, &n, in, (int)len) == 1 &&
        EVP_EncryptFinal_ex(c, out + n, &fin) == 1 && (size_t)n + (size_t)fin == len)
        r = 0;
    EVP_CIPHER_CTX_free(c);
    return r;
}

static int
point_of(EVP_PKEY *k, uint8_t point[POINT_LEN])
{
    size_t n = 0;

    return EVP_PKEY_get_octet_string_param(k, OSSL_PKEY_PARAM_PUB_KEY, point, POINT_LEN, &n) == 1 &&
                   n == POINT_LEN
               ? 0
               : -1;
}

/* The signedMessage of ECv1/ECv2: {"encryptedMessage","ephemeralPublicKey","tag"}. */
static int
seal(const struct gen_google_params *p, size_t key_len, struct text *msg)
{
    const unsigned char *q = p->recipient_spki;
    EVP_PKEY *recipient = NULL, *eph = NULL, *other = NULL;
    uint8_t ikm[POINT_LEN + 32], okm[2 * ECV2_KEY_LEN], tag[TAG_LEN], point[POINT_LEN];
    uint8_t *ct = malloc(p->plaintext_len > 0 ? p->plaintext_len : 1);
    size_t tag_len = 0;
    int r = -1;

    if (ct == NULL || q == NULL || p->plaintext == NULL || p->plaintext_len == 0)
        goto out;
    recipient = d2i_PUBKEY(NULL, &q, (long)p->recipient_spki_len);
    eph = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    if (recipient == NULL || eph == NULL || point_of(eph, ikm) != 0 ||
        ecdh(eph, recipient, ikm + POINT_LEN) != 0 || hkdf(ikm, sizeof(ikm), okm, 2 * key_len) != 0 ||
        aes_ctr(okm, key_len, p->plaintext, p->plaintext_len, ct) != 0 ||
        EVP_Q_mac(NULL, "HMAC", NULL, "SHA256", NULL, okm + key_len, key_len, ct, p->plaintext_len,
                  tag, sizeof(tag), &tag_len) == NULL ||
        tag_len != TAG_LEN)
        goto out;
    memcpy(point, ikm, POINT_LEN);
    if (p->flags & GEN_GOOGLE_BAD_TAG)
        tag[7] ^= 0x01;
    if (p->flags & GEN_GOOGLE_BAD_CIPHERTEXT)
        ct[p->plaintext_len / 2] ^= 0x01;
    if (p->flags & GEN_GOOGLE_OFF_CURVE)
        point[POINT_LEN - 1] ^= 0x01;
    if (p->flags & GEN_GOOGLE_OTHER_POINT) {
        if ((other = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256")) == NULL || point_of(other, point) != 0)
            goto out;
    }
    text_str(msg, "{\"encryptedMessage\":\"");
    text_b64(msg, ct, p->plaintext_len, true);
    text_str(msg, "\",\"ephemeralPublicKey\":\"");
    text_b64(msg, point, POINT_LEN, true);
    text_str(msg, "\",\"tag\":\"");
    text_b64(msg, tag, TAG_LEN, true);
    text_str(msg, "\"}");
    r = msg->failed ? -1 : 0;
out:
    OPENSSL_cleanse(ikm, sizeof(ikm));
    OPENSSL_cleanse(okm, sizeof(okm));
    if (ct != NULL)
        OPENSSL_cleanse(ct, p->plaintext_len);
    free(ct);
    EVP_PKEY_free(recipient);
    EVP_PKEY_free(eph);
    EVP_PKEY_free(other);
    return r;
}

int
gen_google_token(const struct gen_google_params *p, char **out, size_t *out_len)
{
    struct text msg = { 0 }, key = { 0 }, tok = { 0 };
    EVP_PKEY *root = NULL, *inter = NULL, *junk = NULL;
    uint8_t msg_sig[SIG_MAX], key_sig[SIG_MAX], junk_sig[SIG_MAX], spki[256];
    size_t msg_sig_len = 0, key_sig_len = 0, junk_sig_len = 0;
    bool v1, signing_only;
    int r = -1;

    if (p == NULL || out == NULL || p->protocol == NULL || p->recipient_id == NULL)
        return -1;
    v1 = strcmp(p->protocol, "ECv1") == 0;
    signing_only = strcmp(p->protocol, "ECv2SigningOnly") == 0;
    if ((root = load_private(p->root_pkcs8, p->root_pkcs8_len)) == NULL)
        goto out;
    if (signing_only) {
        if (p->plaintext == NULL)
            goto out;
        text_put(&msg, (const char *)p->plaintext, p->plaintext_len);
    } else if (seal(p, v1 ? ECV1_KEY_LEN : ECV2_KEY_LEN, &msg) != 0) {
        goto out;
    }
    if (!v1) {
        unsigned char *q = spki;
        int spki_len;
        char exp[24];

        if ((inter = load_private(p->intermediate_pkcs8, p->intermediate_pkcs8_len)) == NULL ||
            (spki_len = i2d_PUBKEY(inter, NULL)) <= 0 || (size_t)spki_len > sizeof(spki) ||
            i2d_PUBKEY(inter, &q) != spki_len)
            goto out;
        snprintf(exp, sizeof(exp), "%" PRIu64, p->key_expiration_ms);
        text_str(&key, "{\"keyValue\":\"");
        text_b64(&key, spki, (size_t)spki_len, true);
        text_str(&key, "\",\"keyExpiration\":\"");
        text_str(&key, exp);
        text_str(&key, "\"}");
        if (key.failed)
            goto out;
        {
            const char *parts[] = { SENDER, p->protocol, key.p };
            const size_t lens[] = { strlen(SENDER), strlen(p->protocol), key.len };

            if (sign_parts(root, parts, lens, 3, key_sig, &key_sig_len) != 0)
                goto out;
            if ((p->flags & GEN_GOOGLE_JUNK_SIG_FIRST) &&
                ((junk = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256")) == NULL ||
                 sign_parts(junk, parts, lens, 3, junk_sig, &junk_sig_len) != 0))
                goto out;
        }
        if (p->flags & GEN_GOOGLE_BAD_KEY_SIG)
            key_sig[key_sig_len - 1] ^= 0x01;
    }
    if (msg.failed)
        goto out;
    {
        const char *parts[] = { SENDER, p->recipient_id, p->protocol, msg.p };
        const size_t lens[] = { strlen(SENDER), strlen(p->recipient_id), strlen(p->protocol),
                                msg.len };

        if (sign_parts(v1 ? root : inter, parts, lens, 4, msg_sig, &msg_sig_len) != 0)
            goto out;
        if (p->flags & GEN_GOOGLE_BAD_MESSAGE_SIG)
            msg_sig[msg_sig_len - 1] ^= 0x01;
    }
    /* Google's member order. */
    text_str(&tok, "{\"signature\":\"");
    text_b64(&tok, msg_sig, msg_sig_len, false);
    text_str(&tok, "\",");
    if (!v1) {
        text_str(&tok, "\"intermediateSigningKey\":{\"signedKey\":\"");
        text_escaped(&tok, key.p, key.len);
        text_str(&tok, "\",\"signatures\":[\"");
        if (junk_sig_len > 0) {
            text_b64(&tok, junk_sig, junk_sig_len, false);
            text_str(&tok, "\",\"");
        }
        text_b64(&tok, key_sig, key_sig_len, false);
        text_str(&tok, "\"]},");
    }
    text_str(&tok, "\"protocolVersion\":\"");
    text_str(&tok, p->protocol);
    text_str(&tok, "\",\"signedMessage\":\"");
    text_escaped(&tok, msg.p, msg.len);
    text_str(&tok, "\"}");
    if (tok.failed)
        goto out;
    *out = tok.p;
    if (out_len != NULL)
        *out_len = tok.len;
    tok.p = NULL;
    r = 0;
out:
    if (msg.p != NULL)
        OPENSSL_cleanse(msg.p, msg.len);
    free(msg.p);
    free(key.p);
    free(tok.p);
    EVP_PKEY_free(root);
    EVP_PKEY_free(inter);
    EVP_PKEY_free(junk);
    return r;
}

int
gen_google_spki(const uint8_t *pkcs8, size_t len, uint8_t **out, size_t *out_len)
{
    EVP_PKEY *k = load_private(pkcs8, len);
    unsigned char *der = NULL;
    int n;

    if (k == NULL || (n = i2d_PUBKEY(k, NULL)) <= 0 || (der = malloc((size_t)n)) == NULL) {
        EVP_PKEY_free(k);
        return -1;
    }
    {
        unsigned char *q = der;

        if (i2d_PUBKEY(k, &q) != n) {
            free(der);
            EVP_PKEY_free(k);
            return -1;
        }
    }
    EVP_PKEY_free(k);
    *out = der;
    *out_len = (size_t)n;
    return 0;
}

int
gen_google_keys_json(const uint8_t *pkcs8, size_t len, const char *protocol,
                     uint64_t expiration_ms, char **out)
{
    struct text t = { 0 };
    uint8_t *spki = NULL;
    size_t spki_len = 0;
    char exp[24];

    if (protocol == NULL || out == NULL || gen_google_spki(pkcs8, len, &spki, &spki_len) != 0)
        return -1;
    text_str(&t, "{\"keys\":[{\"keyValue\":\"");
    text_b64(&t, spki, spki_len, false);
    text_str(&t, "\",\"protocolVersion\":\"");
    text_str(&t, protocol);
    text_str(&t, "\"");
    if (expiration_ms != 0) {
        snprintf(exp, sizeof(exp), "%" PRIu64, expiration_ms);
        text_str(&t, ",\"keyExpiration\":\"");
        text_str(&t, exp);
        text_str(&t, "\"");
    }
    text_str(&t, "}]}");
    free(spki);
    if (t.failed) {
        free(t.p);
        return -1;
    }
    *out = t.p;
    return 0;
}
