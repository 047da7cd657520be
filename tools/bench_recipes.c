/*
 * bench_recipes.c - the token's part of each wallet format, timed on one
 * thread (contract in bench_recipes.h). The messages are made the way the
 * wallets make them, on the host with OpenSSL, before the clock starts; the
 * timed part is exactly the hsm/ calls vault/wallet/ makes for them.
 */
#include "tools/bench_recipes.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/kdf.h>
#include <openssl/rand.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

#include "hsm/hsm.h"

#define PROG "tokenvault-bench"
#include "tools/tool_err.h"
/* A payment message is a few hundred bytes of JSON. */
#define PAYLOAD_LEN 256
#define OTHER_INFO_LEN 51 /* Apple's: 0x0D "id-aes256-GCM" "Apple" SHA-256(merchant id) */
#define GCM_TAG_LEN 16
#define APPLE_IV_LEN 16   /* Apple: 16 zero bytes */
#define JWE_IV_LEN 12
#define JWE_CEK_LEN 16    /* A128GCM */
#define RSA_BLOCK 256     /* RSA-2048 */
#define ECV2_KEY_LEN 32
#define SPKI_MAX 1024
#define HMAC_TAG_LEN 32

enum recipe { R_APPLE, R_GOOGLE, R_RSA1_5, R_RSA_OAEP, R_NUM };

static const char *const recipe_names[R_NUM] = {
    "Apple Pay EC_v1", "Google Pay ECv2", "Samsung JWE RSA1_5", "Samsung JWE RSA-OAEP",
};

/* One prepared message. */
struct msg {
    uint8_t point[HSM_EC_P256_POINT_LEN];  /* the ephemeral key (EC recipes) */
    uint8_t wrapped[RSA_BLOCK];            /* the wrapped CEK (RSA recipes) */
    uint8_t ct[PAYLOAD_LEN + GCM_TAG_LEN]; /* ciphertext (|| GCM tag) */
    uint8_t tag[HMAC_TAG_LEN];             /* Google's HMAC-SHA256 tag */
};

static const uint8_t zero_iv[16];
static const uint8_t jwe_aad[] = "eyJhbGciOiJSU0ExXzUiLCJlbmMiOiJBMTI4R0NNIn0";

static double
now_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* OpenSSL one-shot encryption; GCM appends its tag. */
static int
host_encrypt(const EVP_CIPHER *c, const uint8_t *key, const uint8_t *iv, int iv_len,
             const uint8_t *aad, int aad_len, const uint8_t *pt, uint8_t *out)
{
    EVP_CIPHER_CTX *x = EVP_CIPHER_CTX_new();
    int n = 0, fin = 0, ok;
    bool gcm = EVP_CIPHER_get_mode(c) == EVP_CIPH_GCM_MODE;

    ok = x != NULL && EVP_EncryptInit_ex(x, c, NULL, NULL, NULL) == 1 &&
         (!gcm || EVP_CIPHER_CTX_ctrl(x, EVP_CTRL_GCM_SET_IVLEN, iv_len, NULL) == 1) &&
         EVP_EncryptInit_ex(x, NULL, NULL, key, iv) == 1 &&
         (aad_len == 0 || EVP_EncryptUpdate(x, NULL, &n, aad, aad_len) == 1) &&
         EVP_EncryptUpdate(x, out, &n, pt, PAYLOAD_LEN) == 1 &&
         EVP_EncryptFinal_ex(x, out + n, &fin) == 1 &&
         (!gcm || EVP_CIPHER_CTX_ctrl(x, EVP_CTRL_GCM_GET_TAG, GCM_TAG_LEN, out + PAYLOAD_LEN) == 1);
    EVP_CIPHER_CTX_free(x);
    return ok ? 0 : -1;
}

/* An ephemeral P-256 key, its point, and Z with |peer|. */
static int
host_ecdh(EVP_PKEY *peer, uint8_t point[HSM_EC_P256_POINT_LEN], uint8_t z[32])
{
    EVP_PKEY *eph = EVP_EC_gen("P-256");
    EVP_PKEY_CTX *c = eph != NULL ? EVP_PKEY_CTX_new(eph, NULL) : NULL;
    size_t plen = 0, zlen = 32;
    int ok = c != NULL && EVP_PKEY_derive_init(c) == 1 && EVP_PKEY_derive_set_peer(c, peer) == 1 &&
             EVP_PKEY_derive(c, z, &zlen) == 1 && zlen == 32 &&
             EVP_PKEY_get_octet_string_param(eph, OSSL_PKEY_PARAM_ENCODED_PUBLIC_KEY, point,
                                             HSM_EC_P256_POINT_LEN, &plen) == 1 &&
             plen == HSM_EC_P256_POINT_LEN;

    EVP_PKEY_CTX_free(c);
    EVP_PKEY_free(eph);
    return ok ? 0 : -1;
}

static int
prepare_apple(EVP_PKEY *merchant, const uint8_t *other, const uint8_t *payload, struct msg *m)
{
    static const uint8_t counter[4] = { 0, 0, 0, 1 };
    uint8_t z[32], key[32];
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    int r = -1;

    if (md != NULL && host_ecdh(merchant, m->point, z) == 0 &&
        EVP_DigestInit_ex(md, EVP_sha256(), NULL) == 1 &&
        EVP_DigestUpdate(md, counter, sizeof(counter)) == 1 &&
        EVP_DigestUpdate(md, z, sizeof(z)) == 1 &&
        EVP_DigestUpdate(md, other, OTHER_INFO_LEN) == 1 && EVP_DigestFinal_ex(md, key, NULL) == 1)
        r = host_encrypt(EVP_aes_256_gcm(), key, zero_iv, APPLE_IV_LEN, NULL, 0, payload, m->ct);
    EVP_MD_CTX_free(md);
    OPENSSL_cleanse(z, sizeof(z));
    OPENSSL_cleanse(key, sizeof(key));
    return r;
}

static int
prepare_google(EVP_PKEY *recipient, const uint8_t *payload, struct msg *m)
{
    static const uint8_t zero_salt[32];
    uint8_t z[32], ikm[HSM_EC_P256_POINT_LEN + 32], okm[2 * ECV2_KEY_LEN];
    unsigned int tag_len = 0;
    EVP_KDF *kdf = EVP_KDF_fetch(NULL, "HKDF", NULL);
    EVP_KDF_CTX *k = kdf != NULL ? EVP_KDF_CTX_new(kdf) : NULL;
    OSSL_PARAM p[5];
    int r = -1;

    if (k == NULL || host_ecdh(recipient, m->point, z) != 0)
        goto out;
    memcpy(ikm, m->point, HSM_EC_P256_POINT_LEN);
    memcpy(ikm + HSM_EC_P256_POINT_LEN, z, sizeof(z));
    p[0] = OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, (char *)"SHA256", 0);
    p[1] = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY, ikm, sizeof(ikm));
    p[2] = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SALT, (void *)zero_salt,
                                             sizeof(zero_salt));
    p[3] = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO, (void *)"Google", 6);
    p[4] = OSSL_PARAM_construct_end();
    if (EVP_KDF_derive(k, okm, sizeof(okm), p) == 1 &&
        host_encrypt(EVP_aes_256_ctr(), okm, zero_iv, 16, NULL, 0, payload, m->ct) == 0 &&
        HMAC(EVP_sha256(), okm + ECV2_KEY_LEN, ECV2_KEY_LEN, m->ct, PAYLOAD_LEN, m->tag,
             &tag_len) != NULL &&
        tag_len == sizeof(m->tag))
        r = 0;
out:
    EVP_KDF_CTX_free(k);
    EVP_KDF_free(kdf);
    OPENSSL_cleanse(z, sizeof(z));
    OPENSSL_cleanse(ikm, sizeof(ikm));
    OPENSSL_cleanse(okm, sizeof(okm));
    return r;
}

static int
prepare_jwe(EVP_PKEY *rsa, int padding, const uint8_t *payload, struct msg *m)
{
    uint8_t cek[JWE_CEK_LEN];
    size_t len = sizeof(m->wrapped);
    EVP_PKEY_CTX *c = EVP_PKEY_CTX_new(rsa, NULL);
    int r = -1;

    if (c != NULL && RAND_bytes(cek, sizeof(cek)) == 1 && EVP_PKEY_encrypt_init(c) == 1 &&
        EVP_PKEY_CTX_set_rsa_padding(c, padding) == 1 &&
        (padding != RSA_PKCS1_OAEP_PADDING ||
         (EVP_PKEY_CTX_set_rsa_oaep_md(c, EVP_sha1()) == 1 &&
          EVP_PKEY_CTX_set_rsa_mgf1_md(c, EVP_sha1()) == 1)) &&
        EVP_PKEY_encrypt(c, m->wrapped, &len, cek, sizeof(cek)) == 1 && len == RSA_BLOCK)
        r = host_encrypt(EVP_aes_128_gcm(), cek, zero_iv, JWE_IV_LEN, jwe_aad,
                         (int)sizeof(jwe_aad) - 1, payload, m->ct);
    EVP_PKEY_CTX_free(c);
    OPENSSL_cleanse(cek, sizeof(cek));
    return r;
}

/* The token's part of one message, as vault/wallet/ runs it; -1 if it does
 * not open to |payload|. */
static int
open_one(hsm_session *s, enum recipe r, hsm_key *ec, hsm_key *rsa, const uint8_t *other,
         const uint8_t *payload, const struct msg *m, hsm_path *path)
{
    uint8_t pt[PAYLOAD_LEN + GCM_TAG_LEN];
    size_t n = 0;
    hsm_obj z = HSM_OBJ_NONE, k = HSM_OBJ_NONE, mac = HSM_OBJ_NONE;
    int rsa_path = 0, e = -1;

    switch (r) {
    case R_APPLE:
        if (hsm_ecdh_derive(s, ec, m->point, HSM_EC_P256_POINT_LEN, &z) == HSM_OK &&
            hsm_apple_kdf_key(s, z, other, OTHER_INFO_LEN, HSM_USE_AES_GCM_DECRYPT, &k, path) ==
                HSM_OK &&
            hsm_obj_gcm_decrypt(s, k, NULL, 0, zero_iv, APPLE_IV_LEN, m->ct, sizeof(m->ct), pt,
                                sizeof(pt), &n) == HSM_OK)
            e = 0;
        break;
    case R_GOOGLE:
        n = PAYLOAD_LEN;
        if (hsm_ecdh_derive(s, ec, m->point, HSM_EC_P256_POINT_LEN, &z) == HSM_OK &&
            hsm_hkdf_sha256_keys(s, z, NULL, 0, m->point, HSM_EC_P256_POINT_LEN,
                                 (const uint8_t *)"Google", 6, ECV2_KEY_LEN, &k, &mac,
                                 path) == HSM_OK &&
            hsm_obj_hmac_verify(s, mac, m->ct, PAYLOAD_LEN, m->tag, sizeof(m->tag)) == HSM_OK &&
            hsm_obj_ctr_decrypt(s, k, zero_iv, m->ct, PAYLOAD_LEN, pt, sizeof(pt)) == HSM_OK)
            e = 0;
        break;
    default:
        if (hsm_rsa_unwrap_aes(s, rsa, r == R_RSA1_5 ? HSM_RSA_PKCS1 : HSM_RSA_OAEP_SHA1,
                               m->wrapped, RSA_BLOCK, JWE_CEK_LEN, HSM_USE_AES_GCM_DECRYPT, &k,
                               &rsa_path) == HSM_OK &&
            hsm_obj_gcm_decrypt(s, k, jwe_aad, sizeof(jwe_aad) - 1, zero_iv, JWE_IV_LEN, m->ct,
                                sizeof(m->ct), pt, sizeof(pt), &n) == HSM_OK)
            e = 0;
        *path = rsa_path == 1 ? HSM_PATH_IN_TOKEN : HSM_PATH_HOST_DECODE;
        break;
    }
    hsm_obj_destroy(s, z);
    hsm_obj_destroy(s, k);
    hsm_obj_destroy(s, mac);
    if (e == 0 && (n != PAYLOAD_LEN || CRYPTO_memcmp(pt, payload, PAYLOAD_LEN) != 0))
        e = -1;
    OPENSSL_cleanse(pt, sizeof(pt));
    return e;
}

/* The key's public half as OpenSSL sees it. */
static EVP_PKEY *
public_of(hsm_session *s, hsm_key *key)
{
    uint8_t spki[SPKI_MAX];
    const uint8_t *p = spki;
    size_t len = 0;

    if (hsm_key_public_spki(s, key, spki, sizeof(spki), &len) != HSM_OK)
        return NULL;
    return d2i_PUBKEY(NULL, &p, (long)len);
}

int
bench_recipes(const struct recipes_opts *o)
{
    hsm_config cfg = { 0 };
    hsm_pin_source *pin = NULL;
    hsm *h = NULL;
    hsm_session *s = NULL;
    hsm_key *ec = NULL, *rsa = NULL;
    EVP_PKEY *ec_pub = NULL, *rsa_pub = NULL;
    struct msg *msgs = NULL;
    uint8_t other[OTHER_INFO_LEN], payload[PAYLOAD_LEN];
    char label[64];
    hsm_token_info ti;
    int rc = 1, e;

    cfg.module_path = o->module;
    cfg.init_args = o->module_args;
    cfg.reduced_key_attributes = o->reduced_key_attributes;
    cfg.token_label = o->token;
    if ((e = hsm_pin_source_file(&pin, o->pin_file)) != HSM_OK ||
        (e = hsm_open(&h, &cfg, pin)) != HSM_OK || (e = hsm_session_acquire(h, &s)) != HSM_OK) {
        err("open %s: %s (%s)", o->module, hsm_strerror(e), hsm_last_detail());
        goto out;
    }
    snprintf(label, sizeof(label), "recipes-ec-%ld", (long)getpid());
    if ((e = hsm_key_generate(s, HSM_KIND_EC_DERIVE, label, &ec)) != HSM_OK) {
        err("EC key: %s (%s)", hsm_strerror(e), hsm_last_detail());
        goto out;
    }
    snprintf(label, sizeof(label), "recipes-rsa-%ld", (long)getpid());
    if ((e = hsm_key_generate(s, HSM_KIND_RSA_UNWRAP, label, &rsa)) != HSM_OK) {
        err("RSA key: %s (%s)", hsm_strerror(e), hsm_last_detail());
        goto out;
    }
    ec_pub = public_of(s, ec);
    rsa_pub = public_of(s, rsa);
    msgs = calloc(o->count, sizeof(*msgs));
    if (ec_pub == NULL || rsa_pub == NULL || msgs == NULL ||
        RAND_bytes(other, sizeof(other)) != 1 || RAND_bytes(payload, sizeof(payload)) != 1) {
        err("cannot prepare the messages");
        goto out;
    }
    hsm_token_info_get(h, &ti);
    printf("== %s %s (Cryptoki %u.%u), one thread, %u messages per format\n", ti.manufacturer,
           ti.model, ti.cryptoki_major, ti.cryptoki_minor, o->count);
    printf("%-22s %-12s %10s %10s\n", "format", "path", "msgs/s", "us/msg");
    for (int r = 0; r < R_NUM; r++) {
        hsm_path path = HSM_PATH_NONE;
        double t0, t;

        for (unsigned i = 0; i < o->count; i++) {
            struct msg *m = &msgs[i];
            int p = r == R_APPLE    ? prepare_apple(ec_pub, other, payload, m)
                    : r == R_GOOGLE ? prepare_google(ec_pub, payload, m)
                                    : prepare_jwe(rsa_pub, r == R_RSA1_5 ? RSA_PKCS1_PADDING
                                                                         : RSA_PKCS1_OAEP_PADDING,
                                                  payload, m);
            if (p != 0) {
                err_ssl(recipe_names[r]);
                goto out;
            }
        }
        t0 = now_s();
        for (unsigned i = 0; i < o->count; i++) {
            if (open_one(s, (enum recipe)r, ec, rsa, other, payload, &msgs[i], &path) != 0) {
                err("%s: message %u did not open (%s)", recipe_names[r], i, hsm_last_detail());
                goto out;
            }
        }
        t = now_s() - t0;
        printf("%-22s %-12s %10.0f %10.1f\n", recipe_names[r],
               path == HSM_PATH_IN_TOKEN     ? "in-token"
               : path == HSM_PATH_DIGEST_KEY ? "digest-key"
                                             : "host-decode",
               o->count / t, t * 1e6 / o->count);
    }
    rc = 0;
out:
    if (msgs != NULL)
        OPENSSL_cleanse(msgs, (size_t)o->count * sizeof(*msgs));
    free(msgs);
    EVP_PKEY_free(ec_pub);
    EVP_PKEY_free(rsa_pub);
    hsm_session_release(s);
    hsm_close(h);
    hsm_pin_source_free(pin);
    return rc;
}
