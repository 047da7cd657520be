/*
 * test_apple.c - Apple Pay packets on real tokens (spreedly/gala 2015 and
 * 2023, tests/vectors) opened in SoftHSM: every check of apple.h passes at
 * the token's signing time, and each one refuses when its input is wrong.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/sha.h>
#include <openssl/x509.h>

#include "tests/support/gen_apple.h"
#include "tests/support/spy.h"
#include "tests/support/token.h"
#include "vault/wallet/anchors.h"
#include "vault/wallet/apple.h"

/* The tokens' CMS signingTime (READMEs), epoch seconds. */
#define GALA_2023_SIGNED_S 1630522986ull
#define GALA_2015_SIGNED_S 1414439503ull
/* 2026-11-22: both leaves long expired. */
#define TODAY_S 1795305600ull
#define MS 1000ull

static tv_token tok;
static hsm_session *s;

static int
setup(void **state)
{
    (void)state;
    return tv_token_session_setup_spied(&tok, &s);
}

static int
teardown(void **state)
{
    (void)state;
    tv_token_session_teardown(&tok, &s);
    return 0;
}

/* ---- fixtures ------------------------------------------------------------------ */

static X509 *
pem_cert(const char *rel)
{
    char *pem = tv_vector_read(rel, NULL);
    BIO *bio = BIO_new_mem_buf(pem, -1);
    X509 *x = PEM_read_bio_X509(bio, NULL, NULL, NULL);

    BIO_free(bio);
    free(pem);
    assert_non_null(x);
    return x;
}

/* A vector's merchant: its key imported into the token, and what its
 * certificate says (the engine reads the same from the token). */
struct merchant {
    struct wallet_apple_key key;
    uint8_t *root;
    size_t root_len;
    const uint8_t *roots[1];
    size_t root_lens[1];
    struct wallet_apple_ctx ctx;
};

static void
merchant_load(struct merchant *m, const char *dir, const char *label, uint64_t now_s)
{
    char path[128];
    X509 *cert, *root;
    unsigned char *der = NULL, *spki = NULL;
    int der_len, spki_len;
    char *pem;
    BIO *bio;
    EVP_PKEY *pk;

    memset(m, 0, sizeof(*m));
    snprintf(path, sizeof(path), "%s/private_key.pem", dir);
    pem = tv_vector_read(path, NULL);
    bio = BIO_new_mem_buf(pem, -1);
    pk = PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL);
    der_len = i2d_PrivateKey(pk, &der);
    assert_true(der_len > 0);
    assert_hsm(hsm_ec_private_import(s, label, der, (size_t)der_len, &m->key.key), HSM_OK);
    OPENSSL_free(der);
    der = NULL;
    EVP_PKEY_free(pk);
    BIO_free(bio);
    free(pem);

    snprintf(path, sizeof(path), "%s/certificate.pem", dir);
    cert = pem_cert(path);
    spki_len = i2d_X509_PUBKEY(X509_get_X509_PUBKEY(cert), &spki);
    SHA256(spki, (size_t)spki_len, m->key.pkh);
    der_len = i2d_X509(cert, &der);
    assert_int_equal(wallet_cert_merchant_id(m->key.merchant_id, der, (size_t)der_len), WALLET_OK);
    OPENSSL_free(der);
    OPENSSL_free(spki);
    X509_free(cert);

    root = pem_cert("apple-root-ca/AppleRootCA-G3.pem");
    der = NULL;
    m->root_len = (size_t)i2d_X509(root, &der);
    m->root = der;
    X509_free(root);
    m->roots[0] = m->root;
    m->root_lens[0] = m->root_len;
    m->ctx = (struct wallet_apple_ctx){
        .keys = &m->key,
        .num_keys = 1,
        .roots = m->roots,
        .root_lens = m->root_lens,
        .num_roots = 1,
        .now_ms = now_s * MS,
        .window_ms = WALLET_APPLE_WINDOW_MS_DEFAULT,
    };
}

static void
merchant_free(struct merchant *m)
{
    OPENSSL_free(m->root);
}

static int
open_token(struct merchant *m, const char *token, struct wallet_card *card, char *why)
{
    return wallet_apple_open(s, &m->ctx, token, strlen(token), card, why, WALLET_WHY_MAX);
}

/* The token with one member of paymentData or header replaced. */
static char *
token_with(const char *rel, const char *obj, const char *name, const char *value)
{
    char *text = tv_vector_read(rel, NULL);
    json_t *t = json_loads(text, 0, NULL), *o;
    char *out;

    assert_non_null(t);
    o = obj == NULL ? t : json_object_get(t, obj);
    if (value == NULL)
        json_object_del(o, name);
    else
        json_object_set_new(o, name, json_string(value));
    out = json_dumps(t, JSON_COMPACT);
    json_decref(t);
    free(text);
    return out;
}

/* The token with byte |at| of base64 member |name| XOR-ed with |mask|. */
static char *
token_flip(const char *rel, const char *obj, const char *name, long at, uint8_t mask)
{
    char *text = tv_vector_read(rel, NULL);
    json_t *t = json_loads(text, 0, NULL), *o;
    size_t n = 0;
    uint8_t *raw;
    char *b64, *out;

    o = obj == NULL ? t : json_object_get(t, obj);
    raw = tv_b64(json_string_value(json_object_get(o, name)), &n);
    raw[at < 0 ? (long)n + at : at] ^= mask;
    b64 = malloc(4 * n / 3 + 8);
    EVP_EncodeBlock((unsigned char *)b64, raw, (int)n);
    json_object_set_new(o, name, json_string(b64));
    out = json_dumps(t, JSON_COMPACT);
    json_decref(t);
    free(text);
    free(raw);
    free(b64);
    return out;
}

/* ---- the real tokens ---------------------------------------------------------------- */

static void
test_gala_2023(void **state)
{
    struct merchant m;
    struct wallet_card c;
    char why[WALLET_WHY_MAX] = "";
    char *token = tv_vector_read("gala-2023/token.json", NULL);
    char *want = tv_vector_read("gala-2023/expected_plaintext.json", NULL);
    json_t *want_json = json_loads(want, 0, NULL), *got_json;
    uint8_t plain[1024];
    size_t plain_len = 0;
    tv_spy spy;
    (void)state;

    merchant_load(&m, "gala-2023", "gala-2023", GALA_2023_SIGNED_S);
    /* Opened by the path the probe chose, and nothing more crosses the
     * module boundary than that path allows (spy.h). */
    tv_spy_begin(&spy);
    assert_int_equal(wallet_apple_unseal(s, &m.ctx, token, strlen(token), plain, sizeof(plain),
                                         &plain_len, why, sizeof(why)),
                     WALLET_OK);
    tv_spy_check(&spy, hsm_probe_get(tok.h)->apple_ec_kdf, true);
    got_json = json_loadb((const char *)plain, plain_len, 0, NULL);
    assert_non_null(got_json);
    assert_true(json_equal(got_json, want_json));
    json_decref(got_json);

    assert_int_equal(open_token(&m, token, &c, why), WALLET_OK);
    assert_int_equal(c.wallet, API_WALLET_APPLE_PAY);
    assert_string_equal(c.version, "EC_v1");
    assert_string_equal(c.pan, "5353756319181169");
    assert_int_equal(c.exp_month, 9);
    assert_int_equal(c.exp_year, 2024);
    assert_true(c.has_amount);
    assert_int_equal(c.amount, 100);
    assert_string_equal(c.currency, "USD");
    assert_int_equal(c.auth_method, API_AUTH_CRYPTOGRAM_3DS);
    assert_string_equal(c.cryptogram, "AMwBRjPWDnAgAA7Rls7mAoABFA==");
    assert_false(c.has_eci);
    assert_false(c.has_holder);
    assert_false(c.cof_allowed);
    assert_int_equal(strlen(c.transaction_id), 64);
    assert_true(c.valid_until_ms > m.ctx.now_ms);
    wallet_card_wipe(&c);
    assert_string_equal(c.pan, "");
    merchant_free(&m);
    json_decref(want_json);
    free(token);
    free(want);
}

static void
test_gala_2015(void **state)
{
    struct merchant m;
    struct wallet_card c;
    char why[WALLET_WHY_MAX] = "";
    char *token = tv_vector_read("gala-2015/token.json", NULL);
    (void)state;

    merchant_load(&m, "gala-2015", "gala-2015", GALA_2015_SIGNED_S);
    assert_int_equal(open_token(&m, token, &c, why), WALLET_OK);
    assert_string_equal(c.pan, "4109370251004320");
    assert_int_equal(c.exp_month, 7);
    assert_int_equal(c.exp_year, 2020);
    assert_string_equal(c.cryptogram, "Af9x/QwAA/DjmU65oyc1MAABAAA=");
    assert_true(c.has_eci);
    assert_string_equal(c.eci, "5");
    /* The verified chain is cached: still good, still one signature per packet. */
    assert_int_equal(wallet_vcache_new(&m.ctx.cache), WALLET_OK);
    assert_int_equal(open_token(&m, token, &c, why), WALLET_OK);
    assert_int_equal(open_token(&m, token, &c, why), WALLET_OK);
    /* A cached chain does not outlive its certificates. */
    m.ctx.now_ms = TODAY_S * MS;
    assert_int_equal(open_token(&m, token, &c, why), WALLET_ERR_EXPIRED);
    wallet_vcache_free(m.ctx.cache);
    merchant_free(&m);
    free(token);
}

/* ---- each check refuses ---------------------------------------------------------------- */

static void
test_clock(void **state)
{
    struct merchant m;
    struct wallet_card c;
    char why[WALLET_WHY_MAX] = "";
    char *token = tv_vector_read("gala-2023/token.json", NULL);
    (void)state;

    merchant_load(&m, "gala-2023", "gala-clock", TODAY_S);
    /* Today the leaf has expired. */
    assert_int_equal(open_token(&m, token, &c, why), WALLET_ERR_EXPIRED);
    assert_non_null(strstr(why, "expired"));
    /* Inside the window on either side, and one second past it. */
    m.ctx.now_ms = (GALA_2023_SIGNED_S + 300) * MS;
    assert_int_equal(open_token(&m, token, &c, why), WALLET_OK);
    m.ctx.now_ms = (GALA_2023_SIGNED_S - 300) * MS;
    assert_int_equal(open_token(&m, token, &c, why), WALLET_OK);
    m.ctx.now_ms = (GALA_2023_SIGNED_S + 301) * MS;
    assert_int_equal(open_token(&m, token, &c, why), WALLET_ERR_SIGNING_TIME);
    m.ctx.now_ms = (GALA_2023_SIGNED_S - 301) * MS;
    assert_int_equal(open_token(&m, token, &c, why), WALLET_ERR_SIGNING_TIME);
    /* The window is the operator's to widen. */
    m.ctx.window_ms = 3600 * MS;
    assert_int_equal(open_token(&m, token, &c, why), WALLET_OK);
    wallet_card_wipe(&c);
    merchant_free(&m);
    free(token);
}

static void
test_tampered(void **state)
{
    struct merchant m;
    struct wallet_card c;
    char why[WALLET_WHY_MAX] = "";
    char *t;
    (void)state;

    merchant_load(&m, "gala-2023", "gala-tamper", GALA_2023_SIGNED_S);
    /* Every signed field: the content's digest no longer matches. */
    t = token_flip("gala-2023/token.json", NULL, "data", 10, 0x01);
    assert_int_equal(open_token(&m, t, &c, why), WALLET_ERR_SIGNATURE);
    assert_non_null(strstr(why, "messageDigest"));
    free(t);
    t = token_flip("gala-2023/token.json", NULL, "data", -1, 0x80);
    assert_int_equal(open_token(&m, t, &c, why), WALLET_ERR_SIGNATURE);
    free(t);
    t = token_flip("gala-2023/token.json", "header", "ephemeralPublicKey", -2, 0x01);
    assert_int_equal(open_token(&m, t, &c, why), WALLET_ERR_SIGNATURE);
    free(t);
    t = token_with("gala-2023/token.json", "header", "transactionId",
                   "0000000000000000000000000000000000000000000000000000000000000000");
    assert_int_equal(open_token(&m, t, &c, why), WALLET_ERR_SIGNATURE);
    free(t);
    /* applicationData the signer did not sign. */
    t = token_with("gala-2023/token.json", "header", "applicationData",
                   "c0ffee00c0ffee00c0ffee00c0ffee00c0ffee00c0ffee00c0ffee00c0ffee00");
    assert_int_equal(open_token(&m, t, &c, why), WALLET_ERR_SIGNATURE);
    free(t);
    /* The signature bytes themselves: the last bytes of the signer info's
     * ECDSA value (before the BER end-of-contents octets). */
    {
        char *text = tv_vector_read("gala-2023/token.json", NULL);
        json_t *j = json_loads(text, 0, NULL);
        size_t n = 0;
        uint8_t *raw = tv_b64(json_string_value(json_object_get(j, "signature")), &n);
        int flipped = 0;

        /* The signature is the last OCTET STRING: find its header from the end. */
        for (size_t i = n - 8; i > 0 && !flipped; i--) {
            if (raw[i] == 0x04 && (raw[i + 1] == 0x46 || raw[i + 1] == 0x47 || raw[i + 1] == 0x48) &&
                raw[i + 2] == 0x30) {
                raw[i + 20] ^= 0x01;
                flipped = 1;
            }
        }
        assert_true(flipped);
        {
            char *b64 = malloc(4 * n / 3 + 8);

            EVP_EncodeBlock((unsigned char *)b64, raw, (int)n);
            json_object_set_new(j, "signature", json_string(b64));
            free(b64);
        }
        t = json_dumps(j, JSON_COMPACT);
        assert_int_equal(open_token(&m, t, &c, why), WALLET_ERR_SIGNATURE);
        assert_non_null(strstr(why, "packet signature"));
        free(t);
        free(raw);
        json_decref(j);
        free(text);
    }
    merchant_free(&m);
}

static void
test_keys_and_roots(void **state)
{
    struct merchant m, other;
    struct wallet_card c;
    char why[WALLET_WHY_MAX] = "";
    char *token = tv_vector_read("gala-2023/token.json", NULL);
    struct wallet_apple_key two[2];
    (void)state;

    merchant_load(&m, "gala-2023", "gala-keys", GALA_2023_SIGNED_S);
    merchant_load(&other, "gala-2015", "gala-keys-other", GALA_2023_SIGNED_S);
    /* publicKeyHash names a key this merchant does not have. */
    m.ctx.keys = &other.key;
    assert_int_equal(open_token(&m, token, &c, why), WALLET_ERR_UNKNOWN_KEY);
    /* Rotation: old and new keys side by side; the hash picks the right one. */
    two[0] = other.key;
    two[1] = m.key;
    m.ctx.keys = two;
    m.ctx.num_keys = 2;
    assert_int_equal(open_token(&m, token, &c, why), WALLET_OK);
    /* A right hash on the wrong key (a misconfigured certificate) fails at the tag. */
    two[1].key = other.key.key;
    assert_int_equal(open_token(&m, token, &c, why), WALLET_ERR_DECRYPT);
    two[1] = m.key;
    /* The merchant id is part of the KDF: the wrong one fails at the tag. */
    two[1].merchant_id[0] ^= 1;
    assert_int_equal(open_token(&m, token, &c, why), WALLET_ERR_DECRYPT);
    two[1] = m.key;
    /* No root, or a root that is not Apple's: the message's chain is not trusted. */
    m.ctx.num_roots = 0;
    assert_int_equal(open_token(&m, token, &c, why), WALLET_ERR_NO_ANCHOR);
    {
        /* A self-signed P-256 "root". */
        EVP_PKEY *k = EVP_EC_gen("P-256");
        X509 *x = X509_new();
        unsigned char *der = NULL;
        int der_len;

        ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
        X509_gmtime_adj(X509_getm_notBefore(x), -3600L * 24 * 365 * 20);
        X509_gmtime_adj(X509_getm_notAfter(x), 3600L * 24 * 365 * 20);
        X509_set_pubkey(x, k);
        X509_NAME_add_entry_by_txt(X509_get_subject_name(x), "CN", MBSTRING_ASC,
                                   (const unsigned char *)"Not Apple Root", -1, -1, 0);
        X509_set_issuer_name(x, X509_get_subject_name(x));
        X509_sign(x, k, EVP_sha256());
        der_len = i2d_X509(x, &der);
        m.roots[0] = der;
        m.root_lens[0] = (size_t)der_len;
        m.ctx.num_roots = 1;
        assert_int_equal(open_token(&m, token, &c, why), WALLET_ERR_CHAIN);
        assert_non_null(strstr(why, "certificate chain"));
        OPENSSL_free(der);
        X509_free(x);
        EVP_PKEY_free(k);
    }
    wallet_card_wipe(&c);
    merchant_free(&m);
    merchant_free(&other);
    free(token);
}

/* ---- generated tokens (tests/support/gen_apple) at the real clock ------------------ */

static const char gen_plain[] =
    "{\"applicationPrimaryAccountNumber\":\"4761120010000492\","
    "\"applicationExpirationDate\":\"301231\",\"currencyCode\":\"826\","
    "\"transactionAmount\":4250,\"deviceManufacturerIdentifier\":\"040010030273\","
    "\"paymentDataType\":\"3DSecure\","
    "\"paymentData\":{\"onlinePaymentCryptogram\":\"AgAAAAAABk4DWZ4C28yUQAAAAAA=\","
    "\"eciIndicator\":\"7\"}}";

/* A merchant whose key was made in the HSM, and a test CA pinned as its root. */
struct gen_merchant {
    struct gen_apple_ca *ca;
    struct wallet_apple_key key;
    uint8_t spki[HSM_SPKI_MAX];
    size_t spki_len;
    const uint8_t *roots[1];
    size_t root_lens[1];
    struct wallet_apple_ctx ctx;
};

static void
gen_merchant_make(struct gen_merchant *g, unsigned flags, hsm_key_kind kind, const char *label)
{
    memset(g, 0, sizeof(*g));
    g->ca = gen_apple_ca_new(flags);
    assert_non_null(g->ca);
    assert_hsm(hsm_key_generate(s, kind, label, &g->key.key), HSM_OK);
    assert_hsm(hsm_key_public_spki(s, g->key.key, g->spki, sizeof(g->spki), &g->spki_len), HSM_OK);
    SHA256(g->spki, g->spki_len, g->key.pkh);
    SHA256((const uint8_t *)"merchant.com.example.test", 25, g->key.merchant_id);
    g->roots[0] = g->ca->root_der;
    g->root_lens[0] = (size_t)g->ca->root_der_len;
    g->ctx = (struct wallet_apple_ctx){ .keys = &g->key, .num_keys = 1, .roots = g->roots,
                                        .root_lens = g->root_lens, .num_roots = 1,
                                        .now_ms = (uint64_t)time(NULL) * MS,
                                        .window_ms = WALLET_APPLE_WINDOW_MS_DEFAULT };
}

static int
gen_open(struct gen_merchant *g, const char *version, const uint8_t *app_data,
         struct wallet_card *c, char *why)
{
    char *t = gen_apple_token(g->ca, version, g->spki, g->spki_len, g->key.merchant_id, gen_plain,
                              time(NULL), app_data);
    int r;

    assert_non_null(t);
    r = wallet_apple_open(s, &g->ctx, t, strlen(t), c, why, WALLET_WHY_MAX);
    free(t);
    return r;
}

static void
test_generated_ec(void **state)
{
    struct gen_merchant g;
    struct wallet_card c;
    char why[WALLET_WHY_MAX] = "";
    static const uint8_t app_data[32] = { 0xa5, 1, 2, 3 };
    (void)state;

    gen_merchant_make(&g, 0, HSM_KIND_EC_DERIVE_SIGN, "gen-ec");
    assert_int_equal(gen_open(&g, "EC_v1", NULL, &c, why), WALLET_OK);
    assert_string_equal(c.pan, "4761120010000492");
    assert_string_equal(c.currency, "GBP");
    assert_int_equal(c.amount, 4250);
    assert_string_equal(c.eci, "7");
    /* applicationData is part of the signed bytes. */
    assert_int_equal(gen_open(&g, "EC_v1", app_data, &c, why), WALLET_OK);
    wallet_card_wipe(&c);
    gen_apple_ca_free(g.ca);
}

static void
test_generated_rsa(void **state)
{
    struct gen_merchant g;
    struct wallet_card c;
    char why[WALLET_WHY_MAX] = "";
    (void)state;

    /* RSA_v1: an RSA leaf signs; the merchant key unwraps with OAEP-SHA256
     * (on SoftHSM: raw RSA in the token, OAEP decoding on the host). */
    gen_merchant_make(&g, GEN_APPLE_RSA_LEAF, HSM_KIND_RSA_DECRYPT, "gen-rsa");
    assert_int_equal(gen_open(&g, "RSA_v1", NULL, &c, why), WALLET_OK);
    assert_string_equal(c.version, "RSA_v1");
    assert_string_equal(c.pan, "4761120010000492");
    /* An RSA leaf cannot sign an EC_v1 token. */
    {
        struct gen_merchant ec;
        struct gen_apple_ca *ec_ca;

        gen_merchant_make(&ec, 0, HSM_KIND_EC_DERIVE_SIGN, "gen-rsa-leaf-ec");
        ec_ca = ec.ca;
        ec.ca = g.ca;
        ec.roots[0] = g.ca->root_der;
        ec.root_lens[0] = (size_t)g.ca->root_der_len;
        assert_int_equal(gen_open(&ec, "EC_v1", NULL, &c, why), WALLET_ERR_SIGNATURE);
        assert_non_null(strstr(why, "does not fit the version"));
        gen_apple_ca_free(ec_ca);
    }
    wallet_card_wipe(&c);
    gen_apple_ca_free(g.ca);
}

static void
test_generated_markers(void **state)
{
    struct gen_merchant g;
    struct wallet_card c;
    char why[WALLET_WHY_MAX] = "";
    (void)state;

    gen_merchant_make(&g, GEN_APPLE_NO_LEAF_MARKER, HSM_KIND_EC_DERIVE_SIGN, "gen-no-leaf");
    assert_int_equal(gen_open(&g, "EC_v1", NULL, &c, why), WALLET_ERR_CHAIN);
    assert_non_null(strstr(why, "1.2.840.113635.100.6.29"));
    gen_apple_ca_free(g.ca);
    gen_merchant_make(&g, GEN_APPLE_NO_INTER_MARKER, HSM_KIND_EC_DERIVE_SIGN, "gen-no-inter");
    assert_int_equal(gen_open(&g, "EC_v1", NULL, &c, why), WALLET_ERR_CHAIN);
    assert_non_null(strstr(why, "1.2.840.113635.100.6.2.14"));
    gen_apple_ca_free(g.ca);
}

/* ---- the token's shape --------------------------------------------------------------- */

static void
test_packet_shape(void **state)
{
    struct wallet_apple_packet p;
    char why[WALLET_WHY_MAX] = "";
    char *token = tv_vector_read("gala-2023/token.json", NULL), *t, wrapped[8192];
    (void)state;

    assert_int_equal(apple_packet_parse(&p, token, strlen(token), why, sizeof(why)), WALLET_OK);
    assert_int_equal(p.version, WALLET_APPLE_EC_V1);
    assert_int_equal(p.key_field_len, 91);
    assert_int_equal(p.txid_len, 32);
    assert_false(p.has_app_data);
    assert_int_equal(p.signed_len, 91 + p.data_len + 32);
    apple_packet_free(&p);
    /* Wrapped the ways gateways pass it on. */
    snprintf(wrapped, sizeof(wrapped), "{\"paymentData\":%s,\"transactionIdentifier\":\"x\"}", token);
    assert_int_equal(apple_packet_parse(&p, wrapped, strlen(wrapped), why, sizeof(why)), WALLET_OK);
    apple_packet_free(&p);
    snprintf(wrapped, sizeof(wrapped), "{\"token\":{\"paymentData\":%s}}", token);
    assert_int_equal(apple_packet_parse(&p, wrapped, strlen(wrapped), why, sizeof(why)), WALLET_OK);
    apple_packet_free(&p);
    /* Each way it can be wrong. */
    t = token_with("gala-2023/token.json", NULL, "version", "EC_v2");
    assert_int_equal(apple_packet_parse(&p, t, strlen(t), why, sizeof(why)), WALLET_ERR_UNSUPPORTED);
    free(t);
    t = token_with("gala-2023/token.json", NULL, "extra", "x");
    assert_int_equal(apple_packet_parse(&p, t, strlen(t), why, sizeof(why)), WALLET_ERR_FORMAT);
    assert_non_null(strstr(why, "unknown member"));
    free(t);
    t = token_with("gala-2023/token.json", NULL, "signature", NULL);
    assert_int_equal(apple_packet_parse(&p, t, strlen(t), why, sizeof(why)), WALLET_ERR_FORMAT);
    free(t);
    t = token_with("gala-2023/token.json", "header", "wrappedKey", "AAAA");
    assert_int_equal(apple_packet_parse(&p, t, strlen(t), why, sizeof(why)), WALLET_ERR_FORMAT);
    free(t);
    t = token_with("gala-2023/token.json", "header", "publicKeyHash", "AAAA");
    assert_int_equal(apple_packet_parse(&p, t, strlen(t), why, sizeof(why)), WALLET_ERR_FORMAT);
    free(t);
    t = token_with("gala-2023/token.json", "header", "transactionId", "xyz");
    assert_int_equal(apple_packet_parse(&p, t, strlen(t), why, sizeof(why)), WALLET_ERR_FORMAT);
    free(t);
    t = token_with("gala-2023/token.json", NULL, "data", "not base64!");
    assert_int_equal(apple_packet_parse(&p, t, strlen(t), why, sizeof(why)), WALLET_ERR_FORMAT);
    free(t);
    t = token_with("gala-2023/token.json", "header", "applicationData", "00");
    assert_int_equal(apple_packet_parse(&p, t, strlen(t), why, sizeof(why)), WALLET_ERR_FORMAT);
    free(t);
    assert_int_equal(apple_packet_parse(&p, "[]", 2, why, sizeof(why)), WALLET_ERR_FORMAT);
    assert_int_equal(apple_packet_parse(&p, "{}", 2, why, sizeof(why)), WALLET_ERR_FORMAT);
    free(token);
}

static void
test_plain(void **state)
{
    struct wallet_card c;
    char why[WALLET_WHY_MAX] = "";
    char buf[1024];
    static const char good[] =
        "{\"applicationPrimaryAccountNumber\":\"4111111111111111\","
        "\"applicationExpirationDate\":\"291231\",\"currencyCode\":\"978\","
        "\"transactionAmount\":1999,\"cardholderName\":\"A Holder\","
        "\"paymentDataType\":\"3DSecure\",\"merchantTokenIdentifier\":\"DNITHE\","
        "\"paymentData\":{\"onlinePaymentCryptogram\":\"AAECAw==\",\"eciIndicator\":\"7\"},"
        "\"newerMember\":{\"x\":1}}";
    (void)state;

    assert_int_equal(apple_plain_parse(&c, (const uint8_t *)good, strlen(good), why, sizeof(why)),
                     WALLET_OK);
    assert_string_equal(c.currency, "EUR");
    assert_int_equal(c.amount, 1999);
    assert_true(c.has_holder);
    assert_string_equal(c.holder, "A Holder");
    assert_string_equal(c.eci, "7");
    assert_true(c.cof_allowed);
    wallet_card_wipe(&c);
#define REFUSED(from, to, want)                                                                 \
    do {                                                                                        \
        const char *at_ = strstr(good, from);                                                   \
        assert_non_null(at_);                                                                   \
        snprintf(buf, sizeof(buf), "%.*s%s%s", (int)(at_ - good), good, to, at_ + strlen(from)); \
        assert_int_equal(apple_plain_parse(&c, (const uint8_t *)buf, strlen(buf), why,           \
                                           sizeof(why)),                                        \
                         want);                                                                 \
    } while (0)
    REFUSED("\"291231\"", "\"291331\"", WALLET_ERR_FORMAT);           /* month 13 */
    REFUSED("\"978\"", "\"999\"", WALLET_ERR_FORMAT);                 /* no currency */
    REFUSED("\"4111111111111111\"", "\"41111\"", WALLET_ERR_FORMAT);  /* short PAN */
    REFUSED("1999,", "-1,", WALLET_ERR_FORMAT);                       /* negative amount */
    REFUSED("1999,", "19.99,", WALLET_ERR_FORMAT);                    /* not minor units */
    REFUSED("\"3DSecure\"", "\"EMV\"", WALLET_ERR_UNSUPPORTED);       /* PIN data never taken */
    REFUSED("\"AAECAw==\"", "\"AAEC*w==\"", WALLET_ERR_FORMAT);       /* cryptogram not base64 */
    REFUSED("\"7\"", "\"123\"", WALLET_ERR_FORMAT);                   /* ECI too long */
    REFUSED("\"currencyCode\"", "\"currency\"", WALLET_ERR_FORMAT);   /* required member */
#undef REFUSED
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_gala_2023, setup, teardown),
        cmocka_unit_test_setup_teardown(test_gala_2015, setup, teardown),
        cmocka_unit_test_setup_teardown(test_clock, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tampered, setup, teardown),
        cmocka_unit_test_setup_teardown(test_keys_and_roots, setup, teardown),
        cmocka_unit_test_setup_teardown(test_generated_ec, setup, teardown),
        cmocka_unit_test_setup_teardown(test_generated_rsa, setup, teardown),
        cmocka_unit_test_setup_teardown(test_generated_markers, setup, teardown),
        cmocka_unit_test(test_packet_shape),
        cmocka_unit_test(test_plain),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
