/*
 * gen_samsung.c - Samsung Pay JWE packets made on the host, as Samsung makes
 * them. See gen_samsung.h; format in WALLETS.md section 3, RFC 7516/7518.
 */
#include "tests/support/gen_samsung.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

/* JWE content encryption: a 96-bit IV and a 128-bit tag (RFC 7518 5.3). */
#define IV_LEN 12
#define TAG_LEN 16
/* AES key sizes. */
#define AES128_LEN 16
#define AES192_LEN 24
#define AES256_LEN 32
/* Largest CEK a hostile test may ask for (RSA-2048 PKCS#1 v1.5 carries at
 * most 256 - 11 bytes). */
#define CEK_MAX 245
/* Largest RSA ciphertext (RSA-4096). */
#define RSA_MAX 512
/* Generated packets stay far below this; it only bounds a runaway buffer. */
#define GEN_TEXT_MAX (1u << 20)
/* Room for the default header: the fixed members and a kid. */
#define HEADER_MAX 1024

int
gen_samsung_b64url(const uint8_t *in, size_t len, char **out)
{
    static const char alphabet[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    char *s;
    size_t n = 0;

    if (len > GEN_TEXT_MAX || (s = malloc(len / 3 * 4 + 4 + 1)) == NULL)
        return -1;
    for (size_t i = 0; i < len; i += 3) {
        uint32_t acc = (uint32_t)in[i] << 16;
        size_t left = len - i;

        if (left > 1)
            acc |= (uint32_t)in[i + 1] << 8;
        if (left > 2)
            acc |= in[i + 2];
        s[n++] = alphabet[acc >> 18 & 63];
        s[n++] = alphabet[acc >> 12 & 63];
        if (left > 1)
            s[n++] = alphabet[acc >> 6 & 63];
        if (left > 2)
            s[n++] = alphabet[acc & 63];
    }
    s[n] = '\0';
    *out = s;
    return 0;
}

/* Encrypts |cek| to the recipient key with the padding |alg| names. */
static int
wrap_cek(const struct gen_samsung_params *p, const uint8_t *cek, size_t cek_len, uint8_t *out,
         size_t *out_len)
{
    const unsigned char *q = p->recipient_spki;
    EVP_PKEY *pub = d2i_PUBKEY(NULL, &q, (long)p->recipient_spki_len);
    EVP_PKEY_CTX *ctx = NULL;
    size_t n = RSA_MAX;
    int r = -1;

    if (pub == NULL || EVP_PKEY_get_base_id(pub) != EVP_PKEY_RSA ||
        (ctx = EVP_PKEY_CTX_new(pub, NULL)) == NULL || EVP_PKEY_encrypt_init(ctx) != 1)
        goto out;
    if (strcmp(p->alg, "RSA1_5") == 0) {
        if (EVP_PKEY_CTX_set_rsa_padding(ctx, RSA_PKCS1_PADDING) != 1)
            goto out;
    } else if (strcmp(p->alg, "RSA-OAEP") == 0 || strcmp(p->alg, "RSA-OAEP-256") == 0) {
        const EVP_MD *md = strcmp(p->alg, "RSA-OAEP") == 0 ? EVP_sha1() : EVP_sha256();

        /* RFC 7518 4.3: MGF1 with the same hash, empty label. */
        if (EVP_PKEY_CTX_set_rsa_padding(ctx, RSA_PKCS1_OAEP_PADDING) != 1 ||
            EVP_PKEY_CTX_set_rsa_oaep_md(ctx, md) != 1 || EVP_PKEY_CTX_set_rsa_mgf1_md(ctx, md) != 1)
            goto out;
    } else {
        goto out;
    }
    if (EVP_PKEY_encrypt(ctx, out, &n, cek, cek_len) != 1)
        goto out;
    *out_len = n;
    r = 0;
out:
    EVP_PKEY_CTX_free(ctx);
    EVP_PKEY_free(pub);
    return r;
}

static const EVP_CIPHER *
gcm_of(size_t key_len)
{
    switch (key_len) {
    case AES128_LEN: return EVP_aes_128_gcm();
    case AES192_LEN: return EVP_aes_192_gcm();
    case AES256_LEN: return EVP_aes_256_gcm();
    }
    return NULL;
}

/* AES-GCM of the plaintext into |ct| (plaintext_len bytes) and |tag|. */
static int
seal(const struct gen_samsung_params *p, const uint8_t *key, size_t key_len, const uint8_t *iv,
     const char *aad, uint8_t *ct, uint8_t *tag)
{
    EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
    int n = 0, fin = 0, r = -1;

    if (c == NULL || p->plaintext_len > GEN_TEXT_MAX ||
        EVP_EncryptInit_ex(c, gcm_of(key_len), NULL, NULL, NULL) != 1 ||
        EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_SET_IVLEN, IV_LEN, NULL) != 1 ||
        EVP_EncryptInit_ex(c, NULL, NULL, key, iv) != 1 ||
        EVP_EncryptUpdate(c, NULL, &n, (const uint8_t *)aad, (int)strlen(aad)) != 1 ||
        EVP_EncryptUpdate(c, ct, &n, p->plaintext, (int)p->plaintext_len) != 1 ||
        EVP_EncryptFinal_ex(c, ct + n, &fin) != 1 ||
        EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_GET_TAG, TAG_LEN, tag) != 1)
        goto out;
    r = 0;
out:
    EVP_CIPHER_CTX_free(c);
    return r;
}

/* The card_brand codes of Samsung's paymentCredential. */
static int
brand_ok(const char *b)
{
    static const char *const brands[] = { "VI", "MC", "AX", "DS", NULL };

    for (size_t i = 0; brands[i] != NULL; i++) {
        if (strcmp(b, brands[i]) == 0)
            return 1;
    }
    return 0;
}

static int
last4_ok(const char *s)
{
    if (strlen(s) != 4)
        return 0;
    for (size_t i = 0; i < 4; i++) {
        if (s[i] < '0' || s[i] > '9')
            return 0;
    }
    return 1;
}

int
gen_samsung_packet(const struct gen_samsung_params *p, char **out, size_t *out_len)
{
    uint8_t cek[CEK_MAX], content_key[AES256_LEN], iv[IV_LEN], tag[TAG_LEN], wrapped[RSA_MAX];
    uint8_t *ct = NULL;
    char header[HEADER_MAX];
    const char *header_text = NULL;
    char *h64 = NULL, *k64 = NULL, *i64 = NULL, *c64 = NULL, *t64 = NULL, *jwe = NULL, *text = NULL;
    size_t enc_len, cek_len, content_len, wrapped_len = 0, n;
    int r = -1;

    if (p == NULL || out == NULL || p->alg == NULL || p->enc == NULL || p->kid == NULL ||
        p->recipient_spki == NULL || (p->plaintext == NULL && p->plaintext_len > 0))
        return -1;
    header_text = p->header_json;
    if (strcmp(p->enc, "A128GCM") == 0)
        enc_len = AES128_LEN;
    else if (strcmp(p->enc, "A256GCM") == 0)
        enc_len = AES256_LEN;
    else
        return -1;
    cek_len = p->cek_len != 0 ? p->cek_len : enc_len;
    if (cek_len > CEK_MAX)
        return -1;
    if (header_text == NULL) {
        n = (size_t)snprintf(header, sizeof(header),
                             "{\"alg\":\"%s\",\"kid\":\"%s\",\"typ\":\"JOSE\","
                             "\"channelSecurityContext\":\"RSA_PKI\",\"enc\":\"%s\"}",
                             p->alg, p->kid, p->enc);
        if (n >= sizeof(header))
            return -1;
        header_text = header;
    }
    if (RAND_bytes(cek, (int)cek_len) != 1 || RAND_bytes(iv, sizeof(iv)) != 1)
        goto out;
    /* The content key: the CEK itself, unless a hostile test asked for a CEK
     * that is no AES key (then nothing the recipient unwraps opens it). */
    content_len = gcm_of(cek_len) != NULL ? cek_len : enc_len;
    if (gcm_of(cek_len) != NULL)
        memcpy(content_key, cek, cek_len);
    else if (RAND_bytes(content_key, (int)content_len) != 1)
        goto out;
    if (wrap_cek(p, cek, cek_len, wrapped, &wrapped_len) != 0)
        goto out;
    if (gen_samsung_b64url((const uint8_t *)header_text, strlen(header_text), &h64) != 0 ||
        (ct = malloc(p->plaintext_len + 1)) == NULL ||
        seal(p, content_key, content_len, iv, h64, ct, tag) != 0)
        goto out;
    if (gen_samsung_b64url(wrapped, wrapped_len, &k64) != 0 ||
        gen_samsung_b64url(iv, sizeof(iv), &i64) != 0 ||
        gen_samsung_b64url(ct, p->plaintext_len, &c64) != 0 ||
        gen_samsung_b64url(tag, sizeof(tag), &t64) != 0)
        goto out;
    n = strlen(h64) + strlen(k64) + strlen(i64) + strlen(c64) + strlen(t64) + 4;
    if ((jwe = malloc(n + 1)) == NULL)
        goto out;
    snprintf(jwe, n + 1, "%s.%s.%s.%s.%s", h64, k64, i64, c64, t64);
    if (p->payment_credential) {
        /* The shape of Samsung's guide sample (WALLETS.md section 3). */
        static const char head[] =
            "{\"billing_address\":{\"city\":\"BillingCity\",\"country\":\"USA\"},"
            "\"card_brand\":\"";
        static const char mid[] = "\",\"card_last4digits\":\"";
        static const char data[] = "\",\"3DS\":{\"data\":\"";
        static const char tail[] = "\",\"type\":\"S\",\"version\":\"100\"},"
                                   "\"merchant_ref\":\"tokenvault-test\",\"method\":\"3DS\","
                                   "\"recurring_payment\":false}";
        const char *brand = p->card_brand != NULL ? p->card_brand : "VI";
        const char *last4 = p->card_last4 != NULL ? p->card_last4 : "1111";

        if (!brand_ok(brand) || !last4_ok(last4))
            goto out;
        n = strlen(head) + strlen(brand) + strlen(mid) + strlen(last4) + strlen(data) +
            strlen(jwe) + strlen(tail);
        if ((text = malloc(n + 1)) == NULL)
            goto out;
        snprintf(text, n + 1, "%s%s%s%s%s%s%s", head, brand, mid, last4, data, jwe, tail);
    } else {
        text = jwe;
        jwe = NULL;
    }
    *out = text;
    if (out_len != NULL)
        *out_len = strlen(text);
    text = NULL;
    r = 0;
out:
    OPENSSL_cleanse(cek, sizeof(cek));
    OPENSSL_cleanse(content_key, sizeof(content_key));
    if (ct != NULL) {
        OPENSSL_cleanse(ct, p->plaintext_len + 1);
        free(ct);
    }
    free(h64);
    free(k64);
    free(i64);
    free(c64);
    free(t64);
    free(jwe);
    free(text);
    return r;
}
